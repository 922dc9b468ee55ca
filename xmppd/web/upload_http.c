/*
 * XEP-0363 HTTP file upload over HTTP: a PUT to the signed URL of a
 * slot stores the file (written to a temporary name, linked into place
 * when complete, so a GET never sees half a file); GET and HEAD serve it
 * with Range, and with the headers that keep a browser from running
 * what it fetched; every answer carries CORS headers for web clients.
 * Disk I/O runs on the worker pool: a PUT's body is written as it
 * arrives, CHUNK at a time (reading stops while a piece is written), and
 * a GET is sent in pieces as the connection drains.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "buf.h"
#include "conf.h"
#include "log.h"
#include "mod/upload.h"
#include "net/http.h"
#include "store/upload.h"
#include "strmap.h"
#include "web/upload_http.h"
#include "work.h"
#include "xmalloc.h"
#include "xmppd.h"

#define CHUNK (256 * 1024)       /* bytes read or written per worker job */
#define QUEUE_HIGH (1024 * 1024) /* wait while more is queued */
#define DRAIN_POLL 0.01          /* s between looks at the queue */

static int routed;
static size_t routed_max;
static struct strmap *parked; /* requests at the store, by id */

/* A request between the handler and its answer (PUT or GET/HEAD). */
struct upload_req {
	uint64_t id;     /* http_request_find */
	char *segment;   /* the name as in the URL */
	char *name;      /* percent-decoded */
	int64_t expires; /* PUT: e= */
	/* PUT: the body as it arrives; the loop fills pending while a
	 * worker writes job (into fd, the temporary file tmp). */
	int64_t expect;   /* the slot's size */
	int64_t received;
	struct buf pending, job;
	char *tmp, *path;
	/* GET: */
	char *content_type;
	char *disposition;
	int64_t first, last; /* the range asked for; last -1: to the end */
	int64_t size, off, left;
	char *chunk;
	size_t nchunk;
	ev_timer drain_w;
	unsigned method; /* HTTP_M_* */
	int busy;         /* PUT: a worker has job */
	int body_last;    /* PUT: pending ends the body */
	int final;        /* PUT: job ends it: fsync, link */
	int err;          /* errno of the write, EEXIST: taken */
	int has_range;    /* GET */
	int fd;           /* PUT: being written; GET: being read */
	int status;       /* GET: of the answer begun */
	int parked;       /* waiting for the store */
	char token[UPLOAD_TOKEN_LEN + 1];
	char sig[65];    /* PUT: s= */
};

static void
req_free(struct upload_req *u)
{
	if (u->fd >= 0)
		close(u->fd); /* GET: a regular file opened read-only
		                 (a PUT's is closed by a worker) */
	free(u->segment);
	free(u->name);
	buf_free(&u->pending);
	buf_free(&u->job);
	free(u->tmp);
	free(u->path);
	free(u->content_type);
	free(u->disposition);
	free(u->chunk);
	free(u);
}

/* u waits for the store: completions carry its id, never a pointer
 * (store.h), and find it here again. */
static uint64_t
park(struct upload_req *u)
{
	char key[24];

	if (parked == NULL)
		parked = strmap_new();
	snprintf(key, sizeof(key), "%" PRIu64, u->id);
	strmap_put(parked, key, u);
	u->parked = 1;
	return u->id;
}

static struct upload_req *
unpark(uint64_t id)
{
	char key[24];
	struct upload_req *u;

	snprintf(key, sizeof(key), "%" PRIu64, id);
	u = parked != NULL ? strmap_del(parked, key) : NULL;
	if (u != NULL)
		u->parked = 0;
	return u;
}

/* CORS (Fetch standard): any origin may upload and fetch, as the URLs
 * themselves are the capability. */
static const struct {
	const char *name, *value;
} cors[] = {
    {"Access-Control-Allow-Origin", "*"},
    {"Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS"},
    {"Access-Control-Allow-Headers", "Content-Type, Range"},
    {"Access-Control-Expose-Headers",
        "Content-Length, Content-Range, Accept-Ranges"},
    {"Access-Control-Max-Age", "86400"},
};

static void
add_cors(struct http_request *r)
{
	for (size_t i = 0; i < sizeof(cors) / sizeof(cors[0]); i++)
		http_add_header(r, cors[i].name, cors[i].value);
}

/* The same on the HTTP layer's own refusals (405, 413, 400, 408), so
 * that a web client can read why its upload failed. */
static void
route_cors(void)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < sizeof(cors) / sizeof(cors[0]); i++)
		buf_printf(&b, "%s: %s\r\n", cors[i].name, cors[i].value);
	buf_addc(&b, '\0');
	http_route_set_error_fields(UPLOAD_PATH, buf_head(&b));
	buf_free(&b);
}

static void
answer(struct http_request *r, int status)
{
	add_cors(r);
	http_respond_status(r, status);
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

/* Percent-decoded (RFC 3986 §2.1), NULL if malformed or with a NUL. */
static char *
decode(const char *s)
{
	char *out = xmalloc(strlen(s) + 1), *o = out;

	for (; *s; s++) {
		if (*s != '%') {
			*o++ = *s;
			continue;
		}
		if (hexval(s[1]) < 0 || hexval(s[2]) < 0 ||
		    (hexval(s[1]) | hexval(s[2])) == 0) {
			free(out);
			return NULL;
		}
		*o++ = (char)(hexval(s[1]) << 4 | hexval(s[2]));
		s += 2;
	}
	*o = '\0';
	return out;
}

/* "/upload/TOKEN/NAME" into u; -1 if the path is not one. */
static int
parse_path(const char *path, struct upload_req *u)
{
	const char *p = path + strlen(UPLOAD_PATH), *slash;

	if (*p++ != '/' || (slash = strchr(p, '/')) == NULL ||
	    slash - p != UPLOAD_TOKEN_LEN)
		return -1;
	for (const char *c = p; c < slash; c++)
		if (hexval(*c) < 0 || (*c >= 'A' && *c <= 'F'))
			return -1;
	memcpy(u->token, p, UPLOAD_TOKEN_LEN);
	u->token[UPLOAD_TOKEN_LEN] = '\0';
	if (slash[1] == '\0' || strchr(slash + 1, '/') != NULL)
		return -1;
	u->segment = xstrdup(slash + 1);
	if ((u->name = decode(u->segment)) == NULL)
		return -1;
	return 0;
}

/* The value of key in a query string "a=1&b=2" (malloc'ed), or NULL. */
static char *
query_param(const char *q, const char *key)
{
	size_t k = strlen(key);

	while (q != NULL && *q) {
		size_t n = strcspn(q, "&");

		if (n > k && strncmp(q, key, k) == 0 && q[k] == '=')
			return xstrndup(q + k + 1, n - k - 1);
		q += n;
		if (*q == '&')
			q++;
	}
	return NULL;
}

static int
parse_int(const char *s, int64_t *out)
{
	int64_t n = 0;

	if (s == NULL || *s == '\0' || strlen(s) > 18)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		n = n * 10 + (*s - '0');
	}
	*out = n;
	return 0;
}

/* PUT */

/* The file is in place and its row says so now, or the row went
 * (purged while the body arrived): then the file goes too. */
static void
completed(uint64_t owner, enum store_status st)
{
	struct upload_req *u = unpark(owner);
	struct http_request *r;
	const char *token;

	if (u == NULL)
		return;
	r = http_request_find(u->id);
	token = u->token;

	if (st == STORE_NOT_FOUND)
		upload_remove_files(&token, 1);
	if (r != NULL)
		answer(r, st == STORE_OK          ? 201
		          : st == STORE_EXISTS    ? 409
		          : st == STORE_NOT_FOUND ? 404
		                                  : 500);
	req_free(u);
}

/* The temporary file goes (a PUT that failed or whose client left):
 * on a worker, then u is freed. */
static void
discard_run(void *arg)
{
	struct upload_req *u = arg;

	if (u->fd >= 0) {
		close(u->fd);
		u->fd = -1;
	}
	if (u->tmp != NULL)
		unlink(u->tmp);
}

static void
discard_done(void *arg, uint64_t owner, uint64_t tag)
{
	req_free(arg);
}

static void
put_discard(struct upload_req *u)
{
	work_submit(discard_run, discard_done, u, u->id, 0);
}

/* Answer a PUT that fails while its body arrives, and drop its file
 * (once no worker has it). */
static void
put_fail(struct upload_req *u, struct http_request *r, int status)
{
	answer(r, status);
	if (!u->busy)
		put_discard(u);
}

/* A worker: job appended to the temporary file; after the last piece
 * the file is synced and linked into place. */
static void
write_run(void *arg)
{
	struct upload_req *u = arg;
	size_t done = 0, len = buf_avail(&u->job);
	const char *p = buf_head(&u->job);

	u->err = 0;
	if (u->fd < 0 && (u->fd = open(u->tmp,
	                      O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) ==
	                     -1) {
		u->err = errno;
		return;
	}
	while (done < len) {
		ssize_t n = write(u->fd, p + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			u->err = n < 0 ? errno : EIO;
			return;
		}
		done += (size_t)n;
	}
	if (!u->final)
		return;
	if (fsync(u->fd) == -1)
		u->err = errno;
	if (close(u->fd) == -1 && u->err == 0)
		u->err = errno;
	u->fd = -1;
	/* link(2), not rename(2): of two PUTs racing for one slot, the
	 * second finds the name taken instead of replacing the first. */
	if (u->err == 0 && link(u->tmp, u->path) == -1)
		u->err = errno;
	unlink(u->tmp);
}

static void write_done(void *arg, uint64_t owner, uint64_t tag);

/* Hand what arrived to a worker: a full CHUNK, or the end. */
static void
put_pump(struct upload_req *u, struct http_request *r)
{
	struct buf t;

	if (u->busy) {
		if (buf_avail(&u->pending) >= CHUNK)
			http_body_pause(r);
		return;
	}
	if (buf_avail(&u->pending) < CHUNK && !u->body_last)
		return;
	t = u->job; /* the pieces swap buffers, no copy */
	u->job = u->pending;
	u->pending = t;
	buf_reset(&u->pending);
	u->final = u->body_last;
	u->busy = 1;
	work_submit(write_run, write_done, u, u->id, 0);
	http_body_resume(r);
}

static void
write_done(void *arg, uint64_t owner, uint64_t tag)
{
	struct upload_req *u = arg;
	struct http_request *r = http_request_find(u->id);

	u->busy = 0;
	buf_reset(&u->job);
	if (u->err == 0 && u->final) {
		/* The file is there: its row says so, whether or not the
		 * client still waits.  u goes with the completion. */
		buf_free(&u->pending);
		buf_free(&u->job);
		store_upload_complete(
		    u->token, (int64_t)time(NULL), completed, park(u));
		return;
	}
	if (r == NULL) { /* the client left, or the body broke */
		put_discard(u);
		return;
	}
	if (u->err != 0) {
		if (u->err != EEXIST)
			log_warnx("upload: writing %s: %s", u->tmp,
			    strerror(u->err));
		put_fail(u, r, u->err == EEXIST ? 409 : 500);
		return;
	}
	put_pump(u, r);
}

/* A piece of the body (http_body_start). */
static void
put_body(struct http_request *r, const char *data, size_t len,
    enum http_body_status st, void *arg)
{
	struct upload_req *u = arg;

	if (st == HTTP_BODY_FAILED) { /* answered by the HTTP layer */
		if (!u->busy)
			put_discard(u);
		return;
	}
	u->received += (int64_t)len;
	if (u->received > u->expect) {
		/* §4: a body of another size than the slot's (chunked, or
		 * longer than its Content-Length said). */
		put_fail(u, r, 413);
		return;
	}
	if (st == HTTP_BODY_LAST && u->received < u->expect) {
		put_fail(u, r, 400);
		return;
	}
	buf_add(&u->pending, data, len);
	u->body_last = st == HTTP_BODY_LAST;
	put_pump(u, r);
}

/* The connection went while the body was arriving or being written. */
static void
put_abort(struct http_request *r, void *arg)
{
	struct upload_req *u = arg;

	/* Parked at the store or with a worker: their completion finds
	 * the request gone and cleans up. */
	if (u->parked || u->busy)
		return;
	put_discard(u);
}

static void
put_found(struct upload_req *u, struct http_request *r,
    const struct store_upload *row)
{
	char *path = xasprintf("%s/%s", u->token, u->segment);
	const char *type = http_header(r, "Content-Type");
	int ok = upload_signature_ok(
	    path, row->size, row->content_type, u->expires, u->sig);

	free(path);
	if (!ok || u->expires < (int64_t)time(NULL)) {
		answer(r, 403);
		goto out;
	}
	if (row->completed) {
		answer(r, 409);
		goto out;
	}
	if (r->content_length >= 0 && r->content_length != row->size) {
		/* §4: a body of another size than the slot's. */
		answer(r, r->content_length > row->size ? 413 : 400);
		goto out;
	}
	if (row->content_type[0] != '\0' &&
	    (type == NULL || strcasecmp(type, row->content_type) != 0)) {
		answer(r, 400);
		goto out;
	}
	u->expect = row->size;
	u->path = upload_file_path(u->token);
	u->tmp = upload_tmp_path(u->token, u->id);
	http_body_start(r, put_body, u);
	return;
out:
	req_free(u);
}

/* GET and HEAD */

/* Whether a browser shows the type without running anything in it:
 * every other type is sent as an attachment. */
static int
inline_safe(const char *type)
{
	static const char *const safe[] = {"image/png", "image/jpeg",
	    "image/gif", "image/webp", "image/avif", "image/bmp", "text/plain",
	    NULL};
	size_t n = strcspn(type, ";");

	if (strncasecmp(type, "audio/", 6) == 0 ||
	    strncasecmp(type, "video/", 6) == 0)
		return 1;
	for (size_t i = 0; safe[i] != NULL; i++)
		if (strlen(safe[i]) == n && strncasecmp(type, safe[i], n) == 0)
			return 1;
	return 0;
}

/* RFC 9110 §14.2: one "bytes=" range, else the whole file. */
static void
parse_range(const char *v, struct upload_req *u)
{
	const char *dash;
	char *a, *b;
	int64_t x = 0, y = -1;

	u->has_range = 0;
	if (v == NULL || strncasecmp(v, "bytes=", 6) != 0 ||
	    strchr(v, ',') != NULL || (dash = strchr(v + 6, '-')) == NULL)
		return;
	a = xstrndup(v + 6, (size_t)(dash - v - 6));
	b = xstrdup(dash + 1);
	if (*a == '\0') { /* suffix: the last b bytes */
		if (parse_int(b, &y) == 0) {
			u->has_range = 1;
			u->first = -1;
			u->last = y;
		}
	} else if (parse_int(a, &x) == 0 &&
	           (*b == '\0' || (parse_int(b, &y) == 0 && y >= x))) {
		u->has_range = 1;
		u->first = x;
		u->last = *b ? y : -1;
	}
	free(a);
	free(b);
}

static void
read_run(void *arg)
{
	struct upload_req *u = arg;
	struct stat sb;

	u->err = 0;
	if (u->fd < 0) {
		if ((u->fd = open(u->path, O_RDONLY | O_CLOEXEC)) == -1 ||
		    fstat(u->fd, &sb) == -1) {
			u->err = errno;
			return;
		}
		u->size = sb.st_size;
		return; /* the answer's fields come first */
	}
	u->nchunk = u->left < CHUNK ? (size_t)u->left : CHUNK;
	if (u->chunk == NULL)
		u->chunk = xmalloc(CHUNK);
	{
		size_t got = 0;

		while (got < u->nchunk) {
			ssize_t n = pread(u->fd, u->chunk + got,
			    u->nchunk - got, u->off + (int64_t)got);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				u->err = n < 0 ? errno : EIO;
				return;
			}
			got += (size_t)n;
		}
	}
}

static void read_done(void *arg, uint64_t owner, uint64_t tag);

static void
drain_check(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct upload_req *u = container_of(w, struct upload_req, drain_w);
	struct http_request *r = http_request_find(u->id);

	if (r == NULL) {
		ev_timer_stop(loop, w);
		req_free(u);
		return;
	}
	if (http_output_queued(r) > QUEUE_HIGH)
		return;
	ev_timer_stop(loop, w);
	work_submit(read_run, read_done, u, u->id, 0);
}

/* Fields, then the body piece by piece as the connection drains. */
static void
read_done(void *arg, uint64_t owner, uint64_t tag)
{
	struct upload_req *u = arg;
	struct http_request *r = http_request_find(u->id);

	if (r == NULL) {
		req_free(u);
		return;
	}
	if (u->err != 0) {
		if (u->status == 0) {
			if (u->err != ENOENT)
				log_warnx("upload: reading %s: %s", u->path,
				    strerror(u->err));
			answer(r, u->err == ENOENT ? 404 : 500);
		} else
			http_end(r); /* cut short: the client sees it */
		req_free(u);
		return;
	}
	if (u->status == 0) {
		char v[96];

		u->off = 0;
		u->left = u->size;
		u->status = 200;
		add_cors(r);
		http_add_header(r, "X-Content-Type-Options", "nosniff");
		http_add_header(r, "Content-Security-Policy",
		    "default-src 'none'; frame-ancestors 'none'; sandbox");
		http_add_header(r, "Accept-Ranges", "bytes");
		http_add_header(r, "Cache-Control", "public, max-age=86400");
		if (u->disposition != NULL)
			http_add_header(
			    r, "Content-Disposition", u->disposition);
		if (u->has_range) {
			int64_t first = u->first, last = u->last;

			if (first < 0) { /* suffix */
				first = last >= u->size ? 0 : u->size - last;
				last = u->size - 1;
			} else if (last < 0 || last >= u->size)
				last = u->size - 1;
			if (first >= u->size ||
			    (u->first < 0 && u->last == 0)) {
				snprintf(
				    v, sizeof(v), "bytes */%" PRId64, u->size);
				http_add_header(r, "Content-Range", v);
				http_respond_status(r, 416);
				req_free(u);
				return;
			}
			snprintf(v, sizeof(v),
			    "bytes %" PRId64 "-%" PRId64 "/%" PRId64, first,
			    last, u->size);
			http_add_header(r, "Content-Range", v);
			u->status = 206;
			u->off = first;
			u->left = last - first + 1;
		}
		http_begin(r, u->status, u->content_type, u->left);
		if (u->method == HTTP_M_HEAD)
			u->left = 0;
	} else {
		http_write(r, u->chunk, u->nchunk);
		u->off += (int64_t)u->nchunk;
		u->left -= (int64_t)u->nchunk;
	}
	if (u->left == 0) {
		http_end(r);
		req_free(u);
		return;
	}
	if (http_output_queued(r) > QUEUE_HIGH) {
		ev_timer_init(&u->drain_w, drain_check, DRAIN_POLL, DRAIN_POLL);
		ev_timer_start(xmppd_loop, &u->drain_w);
		return;
	}
	work_submit(read_run, read_done, u, u->id, 0);
}

static void
get_found(struct upload_req *u, struct http_request *r,
    const struct store_upload *row)
{
	if (!row->completed || strcmp(row->filename, u->name) != 0) {
		answer(r, 404);
		req_free(u);
		return;
	}
	u->content_type =
	    xstrdup(row->content_type[0] ? row->content_type
	                                 : "application/octet-stream");
	if (!inline_safe(u->content_type))
		u->disposition =
		    xasprintf("attachment; filename*=UTF-8''%s", u->segment);
	parse_range(http_header(r, "Range"), u);
	u->path = upload_file_path(u->token);
	work_submit(read_run, read_done, u, u->id, 0);
}

static void
found(uint64_t owner, enum store_status st, const struct store_upload *rows,
    size_t n)
{
	struct upload_req *u = unpark(owner);
	struct http_request *r;

	if (u == NULL)
		return;
	if ((r = http_request_find(u->id)) == NULL) {
		req_free(u);
		return;
	}
	if (st != STORE_OK || n == 0) {
		answer(r, st == STORE_NOT_FOUND
		              ? (u->method == HTTP_M_PUT ? 403 : 404)
		              : 500);
		req_free(u);
		return;
	}
	if (u->method == HTTP_M_PUT)
		put_found(u, r, &rows[0]);
	else
		get_found(u, r, &rows[0]);
}

static void
handle_upload(struct http_request *r, void *arg)
{
	struct upload_req *u;
	char *e, *s;

	if (!upload_running()) {
		http_respond_status(r, 404);
		return;
	}
	if (r->method_bit == HTTP_M_OPTIONS) { /* CORS preflight */
		add_cors(r);
		http_respond(r, 204, NULL, NULL, 0);
		return;
	}
	u = xcalloc(1, sizeof(*u));
	u->id = r->id;
	u->method = r->method_bit;
	u->fd = -1;
	if (parse_path(r->path, u) == -1) {
		answer(r, 404);
		req_free(u);
		return;
	}
	if (u->method == HTTP_M_PUT) {
		e = query_param(r->query, "e");
		s = query_param(r->query, "s");
		if (parse_int(e, &u->expires) == -1 || s == NULL ||
		    strlen(s) != 64 || u->expires < (int64_t)time(NULL)) {
			free(e);
			free(s);
			answer(r, 403);
			req_free(u);
			return;
		}
		memcpy(u->sig, s, 65);
		free(e);
		free(s);
	}
	/* A PUT's body waits (unread) until the slot is checked. */
	http_hold(r, u->method == HTTP_M_PUT ? put_abort : NULL, u);
	store_upload_get(u->token, found, park(u));
}

void
upload_http_set_conf(const struct conf *conf)
{
	size_t max = conf->limits.upload_file_size;

	if (conf->upload_url == NULL) {
		if (routed)
			http_route_remove(UPLOAD_PATH);
		routed = 0;
		return;
	}
	/* Start-up or reload, not a request: one mkdir of the directory
	 * is a bounded metadata write. */
	if (mkdir(conf->upload_dir, 0750) == -1 && errno != EEXIST)
		log_warn("upload: creating %s", conf->upload_dir);
	if (routed && routed_max == max)
		return;
	if (routed)
		http_route_remove(UPLOAD_PATH);
	if (http_route_add_stream(UPLOAD_PATH,
	        HTTP_M_GET | HTTP_M_HEAD | HTTP_M_PUT | HTTP_M_OPTIONS, max,
	        handle_upload, NULL) == -1) {
		log_warnx("upload: cannot route %s", UPLOAD_PATH);
		routed = 0;
		return;
	}
	route_cors();
	routed = 1;
	routed_max = max;
}
