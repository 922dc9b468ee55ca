/*
 * Static files of a web client under "webchat PATH DIRECTORY": the path
 * is checked on the loop (percent-decoded per segment; "." and ".."
 * segments, encoded '/' and NUL refused with 400, hidden names 404),
 * the file is opened on a worker beneath the directory (openat2(2)
 * RESOLVE_BENEATH: symbolic links may point anywhere inside, nowhere
 * outside; without openat2 no link is followed at all), and its bytes
 * are sent by web/file_body.c.  A directory is answered by its
 * index.html (a redirect adds the '/' its relative links need); there
 * are no listings.  Answers carry ETag and Last-Modified (304 for
 * If-None-Match / If-Modified-Since, RFC 9110 §13), Cache-Control
 * (HTML revalidated every time, the rest cached for max-age), a single
 * Range (206, 416), and X-Content-Type-Options: nosniff.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/openat2.h>
#endif

#include "conf.h"
#include "log.h"
#include "net/http.h"
#include "web/file_body.h"
#include "web/webchat.h"
#include "work.h"
#include "xmalloc.h"

#define INDEX_NAME "index.html"

/* One route: owned here, freed when the route goes. */
struct route {
	char *prefix;
	char *dir;
	unsigned max_age;
};

static struct route *routes;
static size_t nroutes;

/* A request between its handler and its answer. */
struct webchat_req {
	uint64_t id; /* http_request_find */
	char *dir;   /* the route's directory (a reload may free it) */
	char *rel;   /* the file beneath dir, decoded */
	unsigned max_age;
	/* worker results */
	int fd;
	int err;    /* errno of opening, 0 */
	int is_dir; /* rel names a directory: redirect */
	struct stat st;
};

static void
req_free(struct webchat_req *w)
{
	if (w->fd >= 0)
		close(w->fd);
	free(w->dir);
	free(w->rel);
	free(w);
}

const char *
webchat_content_type(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
	    {"html", "text/html; charset=utf-8"},
	    {"htm", "text/html; charset=utf-8"},
	    {"js", "text/javascript; charset=utf-8"},
	    {"mjs", "text/javascript; charset=utf-8"},
	    {"css", "text/css; charset=utf-8"},
	    {"json", "application/json"},
	    {"map", "application/json"},
	    {"svg", "image/svg+xml"},
	    {"png", "image/png"},
	    {"jpg", "image/jpeg"},
	    {"jpeg", "image/jpeg"},
	    {"gif", "image/gif"},
	    {"webp", "image/webp"},
	    {"ico", "image/vnd.microsoft.icon"},
	    {"woff", "font/woff"},
	    {"woff2", "font/woff2"},
	    {"ttf", "font/ttf"},
	    {"otf", "font/otf"},
	    {"wasm", "application/wasm"},
	    {"txt", "text/plain; charset=utf-8"},
	    {"mp3", "audio/mpeg"},
	    {"ogg", "audio/ogg"},
	    {"webmanifest", "application/manifest+json"},
	};
	const char *slash = strrchr(name, '/'), *dot;

	dot = strrchr(slash != NULL ? slash + 1 : name, '.');
	if (dot != NULL)
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (strcasecmp(dot + 1, types[i].ext) == 0)
				return types[i].type;
	return "application/octet-stream";
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * rest, the path after the route's prefix ("/a/b.js", "/dir/", "/"),
 * into the file to open beneath the directory ("a/b.js",
 * "dir/index.html", "index.html").  0, or the status to answer: 400 for
 * a malformed escape, an encoded NUL or '/', an empty, "." or ".."
 * segment (RFC 3986 §5.2.4 would resolve them; a client that sends
 * them is not a browser following links), 404 for a hidden name.
 */
static int
decode_path(const char *rest, char **out)
{
	size_t n = strlen(rest);
	char *rel = xmalloc(n + sizeof(INDEX_NAME) + 1), *o = rel;
	const char *p = rest;
	int status = 0;

	while (*p == '/') {
		char *seg = o;

		p++;
		if (*p == '\0') { /* a directory: its index */
			memcpy(o, INDEX_NAME, sizeof(INDEX_NAME) - 1);
			o += sizeof(INDEX_NAME) - 1;
			break;
		}
		for (; *p != '\0' && *p != '/'; p++) {
			int hi, lo;

			if (*p != '%') {
				*o++ = *p;
				continue;
			}
			hi = hexval((unsigned char)p[1]);
			lo = hexval(hi >= 0 ? (unsigned char)p[2] : 0);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0) ||
			    (hi << 4 | lo) == '/') {
				status = 400;
				goto out;
			}
			*o++ = (char)(hi << 4 | lo);
			p += 2;
		}
		if (o == seg || (o - seg == 1 && seg[0] == '.') ||
		    (o - seg == 2 && seg[0] == '.' && seg[1] == '.')) {
			status = 400;
			goto out;
		}
		if (seg[0] == '.') {
			status = 404;
			goto out;
		}
		if (*p == '/')
			*o++ = '/';
	}
	*o = '\0';
	if (*p != '\0') /* rest did not start with '/' */
		status = 404;
out:
	if (status != 0) {
		free(rel);
		return status;
	}
	*out = rel;
	return 0;
}

/* Without openat2: one component at a time, following no link. */
static int
open_walk(int dirfd, const char *rel)
{
	char *copy = xstrdup(rel), *seg = copy, *slash;
	int fd = dirfd, next;

	while ((slash = strchr(seg, '/')) != NULL) {
		*slash = '\0';
		next = openat(
		    fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd != dirfd)
			close(fd);
		if (next == -1) {
			free(copy);
			return -1;
		}
		fd = next;
		seg = slash + 1;
	}
	next = openat(
	    fd, seg, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd != dirfd) {
		int e = errno;

		close(fd);
		errno = e;
	}
	free(copy);
	return next;
}

/* rel beneath dirfd, links allowed while they stay beneath it. */
static int
open_beneath(int dirfd, const char *rel)
{
#if defined(SYS_openat2) && defined(RESOLVE_BENEATH)
	static atomic_int no_openat2; /* set by whichever worker learns it */
	struct open_how how;
	long fd;

	if (!atomic_load(&no_openat2)) {
		memset(&how, 0, sizeof(how));
		how.flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
		fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if (errno != ENOSYS && errno != EPERM)
			return -1;
		atomic_store(&no_openat2, 1); /* old kernel, or seccomp */
	}
#endif
	return open_walk(dirfd, rel);
}

/* Worker: open w->rel beneath w->dir and stat it. */
static void
open_run(void *arg)
{
	struct webchat_req *w = arg;
	int dirfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	w->err = 0;
	if (dirfd == -1) {
		w->err = errno;
		return;
	}
	if ((w->fd = open_beneath(dirfd, w->rel)) == -1 ||
	    fstat(w->fd, &w->st) == -1)
		w->err = errno;
	close(dirfd);
	if (w->err == 0 && S_ISDIR(w->st.st_mode))
		w->is_dir = 1;
	else if (w->err == 0 && !S_ISREG(w->st.st_mode))
		w->err = ENOENT; /* a device, a FIFO: nothing to serve */
}

/* RFC 9110 §8.8.3: a strong tag of what changes with the content. */
static void
make_etag(const struct stat *st, char *out, size_t len)
{
	snprintf(out, len, "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "\"",
	    (uint64_t)st->st_ino, (uint64_t)st->st_size,
	    (uint64_t)st->st_mtim.tv_sec * 1000000000u +
	        (uint64_t)st->st_mtim.tv_nsec);
}

/* RFC 9110 §13.1.2: whether If-None-Match's list names etag (weak
 * comparison: a W/ prefix is ignored), or is "*". */
static int
etag_listed(const char *list, const char *etag)
{
	size_t n = strlen(etag);
	const char *p = list;

	while (*p != '\0') {
		size_t len;

		p += strspn(p, " \t,");
		if (*p == '*')
			return 1;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		if (*p != '"')
			return 0; /* malformed: no match */
		len = strcspn(p + 1, "\"");
		if (p[1 + len] != '"')
			return 0;
		if (len + 2 == n && strncmp(p, etag, n) == 0)
			return 1;
		p += len + 2;
	}
	return 0;
}

/* Digits s[0..n-1] as a number, -1 if any is not a digit. */
static int
digits(const char *s, size_t n)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* An IMF-fixdate (RFC 9110 §5.6.7), "Sun, 06 Nov 1994 08:49:37 GMT",
 * as time; -1 if it is none (the obsolete forms included: §13.1.3
 * lets a server ignore a date it cannot parse). */
static int64_t
parse_http_date(const char *s)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	struct tm tm;
	const char *m;

	if (strlen(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' ||
	    s[11] != ' ' || s[16] != ' ' || s[19] != ':' || s[22] != ':' ||
	    strcmp(s + 25, " GMT") != 0)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_mday = digits(s + 5, 2);
	tm.tm_year = digits(s + 12, 4);
	tm.tm_hour = digits(s + 17, 2);
	tm.tm_min = digits(s + 20, 2);
	tm.tm_sec = digits(s + 23, 2);
	for (m = months; *m != '\0'; m += 3)
		if (strncmp(m, s + 8, 3) == 0)
			break;
	if (*m == '\0' || tm.tm_year < 1970 || tm.tm_mday < 1 ||
	    tm.tm_mday > 31 || tm.tm_hour < 0 || tm.tm_hour > 23 ||
	    tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 || tm.tm_sec > 60)
		return -1;
	tm.tm_mon = (int)(m - months) / 3;
	tm.tm_year -= 1900;
	return (int64_t)timegm(&tm);
}

static void
format_http_date(time_t t, char *out, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static int
parse_uint(const char *s, size_t n, int64_t *out)
{
	int64_t v = 0;

	if (n == 0 || n > 18)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/*
 * RFC 9110 §14.2: one "bytes=" range of a file of size bytes into
 * [*first, *last].  1: satisfiable, 0: not (416), -1: ignore the field
 * (malformed, or several ranges: the whole file is sent).
 */
static int
parse_range(const char *v, int64_t size, int64_t *first, int64_t *last)
{
	const char *dash;
	int64_t a, b;

	if (strncasecmp(v, "bytes=", 6) != 0 || strchr(v, ',') != NULL ||
	    (dash = strchr(v + 6, '-')) == NULL)
		return -1;
	v += 6;
	if (dash == v) { /* the last b bytes */
		if (parse_uint(dash + 1, strlen(dash + 1), &b) == -1)
			return -1;
		if (b == 0 || size == 0)
			return 0;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return 1;
	}
	if (parse_uint(v, (size_t)(dash - v), &a) == -1)
		return -1;
	if (dash[1] == '\0')
		b = size - 1;
	else if (parse_uint(dash + 1, strlen(dash + 1), &b) == -1 || b < a)
		return -1;
	if (a >= size)
		return 0;
	*first = a;
	*last = b >= size ? size - 1 : b;
	return 1;
}

/* 301 to the directory's URL with its '/' (and the query kept). */
static void
redirect_to_dir(struct http_request *r)
{
	char *loc = *r->query != '\0' ? xasprintf("%s/?%s", r->path, r->query)
	                              : xasprintf("%s/", r->path);

	http_add_header(r, "Location", loc);
	http_respond_status(r, 301);
	free(loc);
}

static void
answer_error(struct http_request *r, const struct webchat_req *w)
{
	int status;

	switch (w->err) {
	case ENOENT:
	case ENOTDIR:
	case ELOOP: /* a link, followed by no walk */
	case EXDEV: /* a link leaving the directory */
	case ENAMETOOLONG:
		status = 404;
		break;
	case EACCES:
	case EPERM:
		status = 403;
		break;
	default:
		log_warnx("http %" PRIu64 " %s: webchat: opening %s/%s: %s",
		    r->conn_id, r->peer_addr, w->dir, w->rel, strerror(w->err));
		status = 500;
		break;
	}
	http_add_header(r, "X-Content-Type-Options", "nosniff");
	http_respond_status(r, status);
}

/* Whether r's validators say the client's copy is current (§13.2.2:
 * If-None-Match, when present, decides alone). */
static int
not_modified(struct http_request *r, const char *etag, time_t mtime)
{
	const char *inm = http_header(r, "If-None-Match");
	const char *ims = http_header(r, "If-Modified-Since");
	int64_t t;

	if (inm != NULL)
		return etag_listed(inm, etag);
	return ims != NULL && (t = parse_http_date(ims)) >= 0 &&
	       (int64_t)mtime <= t;
}

/* Loop: the file is open (or not); the fields, then its bytes. */
static void
open_done(void *arg, uint64_t owner, uint64_t tag)
{
	struct webchat_req *w = arg;
	struct http_request *r = http_request_find(w->id);
	const char *type, *range, *if_range;
	char etag[80], date[64], cc[64], cr[96];
	int64_t first = 0, last = w->st.st_size - 1;
	int status = 200, fd;

	(void)owner;
	(void)tag;
	if (r == NULL)
		goto out;
	if (w->err != 0) {
		answer_error(r, w);
		goto out;
	}
	if (w->is_dir) {
		redirect_to_dir(r);
		goto out;
	}
	type = webchat_content_type(w->rel);
	make_etag(&w->st, etag, sizeof(etag));
	format_http_date(w->st.st_mtime, date, sizeof(date));
	if (strncmp(type, "text/html", 9) == 0 || w->max_age == 0)
		snprintf(cc, sizeof(cc), "no-cache");
	else
		snprintf(cc, sizeof(cc), "public, max-age=%u", w->max_age);
	http_add_header(r, "ETag", etag);
	http_add_header(r, "Last-Modified", date);
	http_add_header(r, "Cache-Control", cc);
	http_add_header(r, "X-Content-Type-Options", "nosniff");
	if (not_modified(r, etag, w->st.st_mtime)) {
		http_respond(r, 304, NULL, NULL, 0);
		goto out;
	}
	http_add_header(r, "Accept-Ranges", "bytes");
	range = http_header(r, "Range");
	if_range = http_header(r, "If-Range");
	/* §13.1.5: a range only of the representation the client has. */
	if (range != NULL && if_range != NULL && strcmp(if_range, etag) != 0 &&
	    strcmp(if_range, date) != 0)
		range = NULL;
	if (range != NULL) {
		switch (parse_range(range, w->st.st_size, &first, &last)) {
		case 0:
			snprintf(cr, sizeof(cr), "bytes */%" PRId64,
			    (int64_t)w->st.st_size);
			http_add_header(r, "Content-Range", cr);
			http_respond_status(r, 416);
			goto out;
		case 1:
			snprintf(cr, sizeof(cr),
			    "bytes %" PRId64 "-%" PRId64 "/%" PRId64, first,
			    last, (int64_t)w->st.st_size);
			http_add_header(r, "Content-Range", cr);
			status = 206;
			break;
		default:
			break;
		}
	}
	http_begin(r, status, type, last - first + 1);
	fd = w->fd;
	w->fd = -1;
	file_body_send(
	    r, fd, first, r->method_bit == HTTP_M_HEAD ? 0 : last - first + 1);
out:
	req_free(w);
}

static void
handle_webchat(struct http_request *r, void *arg)
{
	const struct route *rt = arg;
	const char *rest = r->path;
	struct webchat_req *w;
	char *rel;
	int status;

	if (strcmp(rt->prefix, "/") != 0)
		rest += strlen(rt->prefix);
	if (*rest == '\0') {
		redirect_to_dir(r);
		return;
	}
	if ((status = decode_path(rest, &rel)) != 0) {
		http_respond_status(r, status);
		return;
	}
	w = xcalloc(1, sizeof(*w));
	w->id = r->id;
	w->fd = -1;
	w->dir = xstrdup(rt->dir);
	w->rel = rel;
	w->max_age = rt->max_age;
	http_hold(r, NULL, NULL);
	work_submit(open_run, open_done, w, w->id, 0);
}

int
webchat_check_conf(const struct conf *conf, char *err, size_t errlen)
{
	for (size_t i = 0; i < conf->nwebchats; i++) {
		const struct conf_webchat *wc = &conf->webchats[i];
		/* Start-up or reload, not a request: one open of each
		 * directory is a bounded metadata read. */
		int fd = open(wc->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd == -1) {
			snprintf(err, errlen,
			    "%s: webchat %s: cannot open "
			    "directory %s: %s",
			    conf->source, wc->path, wc->dir, strerror(errno));
			return -1;
		}
		close(fd);
	}
	return 0;
}

void
webchat_set_conf(const struct conf *conf)
{
	for (size_t i = 0; i < nroutes; i++) {
		http_route_remove(routes[i].prefix);
		free(routes[i].prefix);
		free(routes[i].dir);
	}
	free(routes);
	routes = NULL;
	nroutes = 0;
	if (conf->nwebchats == 0)
		return;
	/* Each route's arg points into the array: it is not resized. */
	routes = xcalloc(conf->nwebchats, sizeof(*routes));
	for (size_t i = 0; i < conf->nwebchats; i++) {
		const struct conf_webchat *wc = &conf->webchats[i];
		struct route *rt = &routes[nroutes];

		rt->prefix = xstrdup(wc->path);
		rt->dir = xstrdup(wc->dir);
		rt->max_age = wc->max_age;
		if (http_route_add(rt->prefix, HTTP_M_GET | HTTP_M_HEAD, 0,
		        handle_webchat, rt) == -1) {
			log_warnx("webchat: cannot route %s: the path is "
			          "taken",
			    rt->prefix);
			free(rt->prefix);
			free(rt->dir);
			continue;
		}
		nroutes++;
	}
}
