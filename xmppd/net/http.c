/*
 * HTTP/1.1 connections on conn (http.h): bytes to requests through
 * http_parse.c, requests to routes, answers back to bytes, and the
 * timeouts and errors a server owes its clients.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "log.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/http_parse.h"
#include "strmap.h"
#include "xmalloc.h"

#define ROUTES_MAX 64
#define LOG_TARGET_MAX 200       /* bytes of a target in a log line */
#define HELD_INPUT_MAX 65536     /* bytes read behind a held request
                                    (or a paused body) before reading
                                    stops */

struct route {
	char *prefix;
	size_t len;
	size_t max_body;
	char *error_fields;        /* http_route_set_error_fields */
	http_handler_fn handler;
	void *arg;
	unsigned methods;
	int stream;                /* http_route_add_stream */
};

/* What the connection is waiting for, which says what its deadline
 * means when it passes. */
enum http_wait {
	WAIT_NONE,         /* a request is being answered */
	WAIT_IDLE,         /* between requests: close quietly */
	WAIT_HEADERS,      /* a request has begun: 408 */
	WAIT_BODY,         /* its body stalls: 408 */
};

struct http_conn;

struct req {
	struct http_request r;     /* first: what handlers see */
	struct http_conn *hc;
	char key[24];              /* the id in decimal, for held */
	char *path;                /* path NUL query, one allocation */
	char host[256];
	struct buf fields;         /* response fields added */
	int status;
	int started, chunked, no_body, keep;
	int64_t left;              /* declared length still to write */
	size_t sent;               /* body bytes written */
	int held;
	http_abort_fn abort;
	void *abort_arg;
	/* A streaming route's request: */
	int streaming;
	int parsed_all;            /* the parser has the whole body */
	int body_done;             /* its last piece was delivered */
	int body_paused;
	http_body_fn body_fn;      /* NULL until http_body_start */
	void *body_arg;
};

struct http_conn {
	struct conn *conn;
	struct http_parse hp;
	struct buf in;             /* read, not yet parsed */
	struct req *cur;           /* being answered, or held */
	enum http_wait wait;
	unsigned allow;            /* methods of a 405's route */
	unsigned processing : 1;   /* inside process() */
	unsigned closing : 1;      /* no more requests */
	unsigned upgraded : 1;     /* handed over by http_upgrade */
	unsigned paused : 1;       /* reading stopped: input waits */
	unsigned discarding : 1;   /* dropping the body of a request
	                              answered before it was read */
	struct buf piece;          /* a body piece being delivered */
	char client_ip[46];        /* of the request being parsed */
	char host[256];
	int host_is_name;
	const struct route *route;
	struct http_conn *prev, *next;   /* all */
};

static struct route routes[ROUTES_MAX];
static size_t nroutes;
static struct strmap *held;        /* id -> struct req */
static uint64_t next_req_id = 1;
static const struct conf *cur_conf;
static struct http_stats stats;
static struct http_conn *all;

static void process(struct http_conn *hc);
static void unlink_conn(struct http_conn *hc);

void
http_set_conf(const struct conf *conf)
{
	cur_conf = conf;
}

void
http_get_stats(struct http_stats *st)
{
	*st = stats;
}

/* RFC 9110 §15: the reason phrases of the codes this server sends. */
static const char *
reason_phrase(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 421: return "Misdirected Request";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

/* RFC 9110 §5.6.7 IMF-fixdate, spelled out (no locale). */
static void
add_date(struct buf *b)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu",
	    "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	buf_printf(b, "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
	    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void
count_response(int status)
{
	if (status >= 100 && status < 600)
		stats.responses[status]++;
}

/*
 * Routes.
 */

static int
route_add(const char *prefix, unsigned methods, size_t max_body,
    int stream, http_handler_fn handler, void *arg)
{
	if (nroutes == ROUTES_MAX || prefix[0] != '/')
		return -1;
	for (size_t i = 0; i < nroutes; i++)
		if (strcmp(routes[i].prefix, prefix) == 0)
			return -1;
	if (methods & HTTP_M_GET)
		methods |= HTTP_M_HEAD;
	routes[nroutes].prefix = xstrdup(prefix);
	routes[nroutes].len = strlen(prefix);
	/* "/" matches every path: its length counts as 0 below. */
	if (strcmp(prefix, "/") == 0)
		routes[nroutes].len = 0;
	routes[nroutes].methods = methods;
	routes[nroutes].max_body = max_body;
	routes[nroutes].stream = stream;
	routes[nroutes].error_fields = NULL;
	routes[nroutes].handler = handler;
	routes[nroutes].arg = arg;
	nroutes++;
	return 0;
}

int
http_route_add(const char *prefix, unsigned methods, size_t max_body,
    http_handler_fn handler, void *arg)
{
	return route_add(prefix, methods, max_body, 0, handler, arg);
}

int
http_route_add_stream(const char *prefix, unsigned methods,
    size_t max_body, http_handler_fn handler, void *arg)
{
	return route_add(prefix, methods, max_body, 1, handler, arg);
}

void
http_route_remove(const char *prefix)
{
	for (size_t i = 0; i < nroutes; i++)
		if (strcmp(routes[i].prefix, prefix) == 0) {
			free(routes[i].prefix);
			free(routes[i].error_fields);
			routes[i] = routes[--nroutes];
			return;
		}
}

int
http_route_set_error_fields(const char *prefix, const char *fields)
{
	for (size_t i = 0; i < nroutes; i++)
		if (strcmp(routes[i].prefix, prefix) == 0) {
			free(routes[i].error_fields);
			routes[i].error_fields = fields ? xstrdup(fields) : NULL;
			return 0;
		}
	return -1;
}

static const struct route *
route_find(const char *path, size_t pathlen)
{
	const struct route *best = NULL;

	for (size_t i = 0; i < nroutes; i++) {
		const struct route *rt = &routes[i];

		if (rt->len > pathlen || strncmp(path, rt->prefix, rt->len) != 0 ||
		    (rt->len < pathlen && rt->len > 0 && path[rt->len] != '/' &&
		    rt->prefix[rt->len - 1] != '/'))
			continue;
		if (best == NULL || rt->len > best->len)
			best = rt;
	}
	return best;
}

/*
 * The request-target (RFC 9112 §3.2): origin-form, or absolute-form
 * (whose authority then replaces Host, §3.2.2).  *path_off and
 * *path_len locate the path and query in the target; *authority is
 * the absolute-form's authority, copied into auth.
 */
static int
split_target(const char *target, size_t *path_off, size_t *path_len,
    char *auth, size_t authlen, int *has_authority)
{
	struct http_parser_url u;
	size_t n = strlen(target);

	*has_authority = 0;
	if (target[0] == '/') {
		*path_off = 0;
		*path_len = n;
		return 0;
	}
	http_parser_url_init(&u);
	if (http_parser_parse_url(target, n, 0, &u) != 0 ||
	    !(u.field_set & (1 << UF_SCHEMA)) ||
	    !(u.field_set & (1 << UF_HOST)))
		return -1;
	if ((size_t)u.field_data[UF_HOST].len + 8 >= authlen)
		return -1;
	/* The host as written, IPv6 brackets included, and the port. */
	{
		size_t off = u.field_data[UF_HOST].off;
		size_t len = u.field_data[UF_HOST].len;

		if (off > 0 && target[off - 1] == '[' && target[off + len] ==
		    ']')
			off--, len += 2;
		snprintf(auth, authlen, "%.*s", (int)len, target + off);
	}
	*has_authority = 1;
	if (u.field_set & (1 << UF_PATH)) {
		*path_off = u.field_data[UF_PATH].off;
		*path_len = n - *path_off;
	} else {
		*path_off = n;      /* "http://host": the path is "/" */
		*path_len = 0;
	}
	return 0;
}

static int
trusted(void *arg, const char *ip)
{
	return conf_trusted_proxy(cur_conf, ip);
}

/* The request's client: the peer, or whom its trusted proxy names. */
static void
find_client(struct http_conn *hc, const struct http_msg *m)
{
	const char *peer = hc->conn->ip;

	snprintf(hc->client_ip, sizeof(hc->client_ip), "%s", peer);
	if (cur_conf == NULL || !conf_trusted_proxy(cur_conf, peer))
		return;
	if (http_forwarded_client(http_msg_field(m, "Forwarded"),
	    http_msg_field(m, "X-Forwarded-For"), trusted, NULL,
	    hc->client_ip, sizeof(hc->client_ip)) == -1)
		snprintf(hc->client_ip, sizeof(hc->client_ip), "%s", peer);
}

/* Host (RFC 9110 §7.2, RFC 9112 §3.2): 0, or the status to refuse. */
static int
check_host(struct http_conn *hc, const struct http_msg *m, const char *auth,
    int has_authority)
{
	size_t nhost = http_msg_field_count(m, "Host");
	const char *value = http_msg_field(m, "Host");
	int is_ip;

	hc->host[0] = '\0';
	hc->host_is_name = 0;
	/* RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, and
	 * for any with more than one or an invalid one. */
	if (nhost > 1 || (nhost == 0 && m->minor >= 1))
		return 400;
	if (value != NULL && http_host_parse(value, hc->host,
	    sizeof(hc->host), &is_ip) == -1)
		return 400;
	if (has_authority && http_host_parse(auth, hc->host,
	    sizeof(hc->host), &is_ip) == -1)
		return 400;
	if (hc->host[0] == '\0' || is_ip)
		return 0;
	/* RFC 9110 §15.5.20: a name this server does not serve. */
	if (cur_conf == NULL || !conf_http_host_known(cur_conf, hc->host))
		return 421;
	hc->host_is_name = 1;
	return 0;
}

static unsigned
method_of(int id)
{
	switch ((enum http_method)id) {
	case HTTP_GET:
		return HTTP_M_GET;
	case HTTP_HEAD:
		return HTTP_M_HEAD;
	case HTTP_POST:
		return HTTP_M_POST;
	case HTTP_PUT:
		return HTTP_M_PUT;
	case HTTP_DELETE:
		return HTTP_M_DELETE;
	case HTTP_OPTIONS:
		return HTTP_M_OPTIONS;
	default:
		return 0;
	}
}

/* http_parse's question once the fields are in: may this request go
 * on, and with how large a body? */
static int
on_headers(void *arg, struct http_msg *m, size_t *max_body)
{
	struct http_conn *hc = arg;
	char auth[300];
	size_t off, len;
	int has_auth, st;
	unsigned bit;

	hc->route = NULL;
	hc->allow = 0;
	find_client(hc, m);
	if (split_target(m->target, &off, &len, auth, sizeof(auth),
	    &has_auth) == -1)
		return 400;
	{
		const char *path = m->target + off;
		const char *q = memchr(path, '?', len);
		size_t plen = q ? (size_t)(q - path) : len;

		/* Found first so that the refusals below carry its
		 * error fields. */
		hc->route = plen ? route_find(path, plen) : route_find("/", 1);
	}
	if ((st = check_host(hc, m, auth, has_auth)) != 0)
		return st;
	/* RFC 9110 §9.1: a method we do not implement is 501. */
	if ((bit = method_of(m->method_id)) == 0)
		return 501;
	if (hc->route == NULL)
		return 404;
	if (!(hc->route->methods & bit)) {
		hc->allow = hc->route->methods;  /* §15.5.6: Allow */
		return 405;
	}
	*max_body = hc->route->max_body;
	return 0;
}

/* The Allow field of a 405. */
static void
add_allow(struct buf *b, unsigned methods)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {{HTTP_M_GET, "GET"}, {HTTP_M_HEAD, "HEAD"},
	    {HTTP_M_POST, "POST"}, {HTTP_M_PUT, "PUT"},
	    {HTTP_M_DELETE, "DELETE"}, {HTTP_M_OPTIONS, "OPTIONS"}};
	const char *sep = "";

	buf_adds(b, "Allow: ");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (methods & names[i].bit) {
			buf_printf(b, "%s%s", sep, names[i].name);
			sep = ", ";
		}
	buf_adds(b, "\r\n");
}

static void
log_request(struct http_conn *hc, const char *method, const char *target,
    int status, size_t bytes)
{
	if (!log_debug_on())
		return;
	log_debug("http %" PRIu64 " %s: client %s: %s %.*s%s -> %d (%zu "
	    "bytes)", hc->conn->id, hc->conn->addr, hc->client_ip,
	    method ? method : "-", LOG_TARGET_MAX, target ? target : "-",
	    target && strlen(target) > LOG_TARGET_MAX ? "..." : "", status,
	    bytes);
}

/*
 * An answer this file makes itself, not tied to a handler: errors of
 * the parse, refused requests, timeouts.  close: end the connection
 * after it.
 */
static void
send_plain(struct http_conn *hc, int status, int keep, int head)
{
	struct buf b = BUF_INIT;
	char body[128];
	int n = snprintf(body, sizeof(body), "%d %s\n", status,
	    reason_phrase(status));

	buf_printf(&b, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
	add_date(&b);
	if (status == 405)
		add_allow(&b, hc->allow);
	/* The route of this request (its fields were read), if any. */
	if (hc->hp.headers_done && hc->route != NULL &&
	    hc->route->error_fields != NULL)
		buf_adds(&b, hc->route->error_fields);
	buf_printf(&b, "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: %d\r\n", n);
	if (!keep)
		buf_adds(&b, "Connection: close\r\n");
	buf_adds(&b, "\r\n");
	if (!head)
		buf_add(&b, body, (size_t)n);
	conn_write(hc->conn, buf_head(&b), buf_avail(&b));
	buf_free(&b);
	count_response(status);
	if (!keep) {
		hc->closing = 1;
		conn_close(hc->conn);
	}
}

/* The request is broken or over a limit: say so, close (RFC 9112
 * §2.2: a server that cannot frame a request cannot go on). */
static void
fail_request(struct http_conn *hc, int status)
{
	const struct http_msg *m = &hc->hp.msg;

	log_info("http %" PRIu64 " %s: client %s: %d %s, closing",
	    hc->conn->id, hc->conn->addr, hc->client_ip[0] ? hc->client_ip :
	    hc->conn->ip, status, reason_phrase(status));
	log_request(hc, m->method, m->target, status, 0);
	send_plain(hc, status, 0, 0);
}

/* Arm the deadline for what the connection now waits for. */
static void
set_wait(struct http_conn *hc, enum http_wait w)
{
	const struct conf_limits *l = &cur_conf->limits;

	if (hc->wait == w && w != WAIT_BODY)
		return;
	hc->wait = w;
	switch (w) {
	case WAIT_NONE:
		conn_set_timeout(hc->conn, 0, NULL);
		break;
	case WAIT_IDLE:
		conn_set_timeout(hc->conn, l->http_idle_timeout,
		    "http keep-alive idle");
		break;
	case WAIT_HEADERS:
		conn_set_timeout(hc->conn, l->http_header_timeout,
		    "http request header timeout");
		break;
	case WAIT_BODY:
		conn_set_timeout(hc->conn, l->http_idle_timeout,
		    "http request body timeout");
		break;
	}
}

static void
req_free(struct req *q)
{
	if (q->held)
		strmap_del(held, q->key);
	buf_free(&q->fields);
	free(q->path);
	free(q);
}

/* The request is answered: go on with the next one, or close. */
static void
req_done(struct req *q)
{
	struct http_conn *hc = q->hc;
	int was_held = q->held, keep = q->keep;

	hc->cur = NULL;
	/* Answered before its body was read: the rest is read and
	 * dropped (process()), then the next request is parsed. */
	if (q->streaming && !q->parsed_all) {
		hc->discarding = 1;
		buf_reset(&hc->hp.body);
	} else
		http_parse_next(&hc->hp);
	req_free(q);
	if (!keep) {
		hc->closing = 1;
		conn_close(hc->conn);
		return;
	}
	(void)was_held;
	if (!hc->processing)
		process(hc);
}

static struct req *
req_new(struct http_conn *hc)
{
	const struct http_msg *m = &hc->hp.msg;
	struct req *q = xcalloc(1, sizeof(*q));
	char auth[300];
	size_t off = 0, len = 0;
	int has_auth;
	char *qm;

	q->hc = hc;
	q->r.id = next_req_id++;
	snprintf(q->key, sizeof(q->key), "%" PRIu64, q->r.id);
	q->r.conn_id = hc->conn->id;
	q->r.method = m->method;
	q->r.method_bit = method_of(m->method_id);
	q->r.target = m->target;
	/* on_headers accepted the target. */
	(void)split_target(m->target, &off, &len, auth, sizeof(auth),
	    &has_auth);
	q->path = len ? xstrndup(m->target + off, len) : xstrdup("/");
	if ((qm = strchr(q->path, '?')) != NULL) {
		*qm = '\0';
		q->r.query = qm + 1;
	} else
		q->r.query = "";
	q->r.path = q->path;
	snprintf(q->host, sizeof(q->host), "%s", hc->host);
	q->r.host = hc->host_is_name ? q->host : NULL;
	q->r.client_ip = hc->client_ip;
	q->r.peer_addr = hc->conn->addr;
	q->r.tls = hc->conn->ssl != NULL;
	q->r.listen_port = hc->conn->local_port;
	q->r.http_minor = m->minor;
	q->r.body = m->body;
	q->r.body_len = m->body_len;
	q->r.content_length = m->content_length;
	q->r.upgrade = m->upgrade;
	/* An upgrade not taken leaves bytes we cannot parse: close. */
	q->keep = m->keep_alive && !m->upgrade && !hc->closing;
	return q;
}

/* A whole request (for a streaming route: its fields), answer a
 * refusal, or hand it to its route. */
static void
dispatch(struct http_conn *hc, int streaming, int parsed_all)
{
	const struct http_msg *m = &hc->hp.msg;
	struct req *q;

	set_wait(hc, WAIT_NONE);
	if (hc->hp.refused) {
		int st = hc->hp.refused, keep = m->keep_alive && !m->upgrade;

		log_request(hc, m->method, m->target, st, 0);
		send_plain(hc, st, keep, m->method_id == HTTP_HEAD);
		http_parse_next(&hc->hp);
		return;
	}
	q = req_new(hc);
	if (streaming) {
		q->streaming = 1;
		q->parsed_all = parsed_all;
		q->body_paused = 1;        /* until http_body_start */
		q->r.body = "";
		q->r.body_len = 0;
	}
	hc->cur = q;
	hc->route->handler(&q->r, hc->route->arg);
	if (hc->cur == q && !q->held && !hc->upgraded) {
		log_warnx("http %" PRIu64 " %s: %s %s: the handler neither "
		    "answered nor held the request", hc->conn->id,
		    hc->conn->addr, q->r.method, q->r.path);
		if (q->started) {
			q->keep = 0;
			http_end(&q->r);
		} else
			http_respond_status(&q->r, 500);
	}
}

/* Hand the connection to the handler of http_upgrade (in process(),
 * once nothing of hc is used any more). */
static void
finish_upgrade(struct http_conn *hc)
{
	struct conn *c = hc->conn;
	size_t n = buf_avail(&hc->in);
	char *rest = n ? xmalloc(n) : NULL;

	if (n)
		memcpy(rest, buf_head(&hc->in), n);
	http_parse_free(&hc->hp);
	buf_free(&hc->in);
	buf_free(&hc->piece);
	unlink_conn(hc);
	free(hc);
	if (n && c->state == CONN_OPEN)
		c->h->on_data(c, rest, n);
	free(rest);
}

/* Hand the body parsed so far to the consumer of q: 0, or -1 if
 * nothing was there to hand. */
static int
deliver_body(struct http_conn *hc, struct req *q)
{
	struct buf tmp;
	enum http_body_status st;

	if (buf_avail(&hc->hp.body) == 0 && !q->parsed_all)
		return -1;
	st = q->parsed_all ? HTTP_BODY_LAST : HTTP_BODY_MORE;
	if (st == HTTP_BODY_LAST)
		q->body_done = 1;
	/* The piece leaves the parser's buffer: the callback may answer,
	 * which readies the parser for the next request. */
	tmp = hc->piece;
	hc->piece = hc->hp.body;
	hc->hp.body = tmp;
	buf_reset(&hc->hp.body);
	q->body_fn(&q->r, buf_head(&hc->piece), buf_avail(&hc->piece), st,
	    q->body_arg);
	buf_reset(&hc->piece);
	return 0;
}

/* The body of a streaming request broke (too large, bad chunking):
 * its consumer is told, the request freed, the status sent. */
static void
body_failed(struct http_conn *hc, struct req *q)
{
	if (q->body_fn != NULL)
		q->body_fn(&q->r, NULL, 0, HTTP_BODY_FAILED, q->body_arg);
	else if (q->held && q->abort != NULL)
		q->abort(&q->r, q->abort_arg);
	hc->cur = NULL;
	req_free(q);
	fail_request(hc, hc->hp.status);
}

/* One step of reading a streaming request's body; 0 to go on. */
static int
step_body(struct http_conn *hc, struct req *q)
{
	size_t used;
	enum http_parse_result r;

	if (q->body_done || q->body_fn == NULL || q->body_paused)
		return -1;
	if (deliver_body(hc, q) == 0)
		return 0;
	r = http_parse_feed(&hc->hp, buf_head(&hc->in), buf_avail(&hc->in),
	    &used);
	buf_consume(&hc->in, used);
	if (r == HTTP_PARSE_ERROR) {
		body_failed(hc, q);
		return -1;
	}
	if (r == HTTP_PARSE_DONE)
		q->parsed_all = 1;
	else if (buf_avail(&hc->hp.body) == 0) {
		set_wait(hc, WAIT_BODY);
		return -1;
	}
	return 0;
}

/* One step of dropping the body of an answered request; 0 to go on. */
static int
step_discard(struct http_conn *hc)
{
	size_t used;
	enum http_parse_result r = http_parse_feed(&hc->hp,
	    buf_head(&hc->in), buf_avail(&hc->in), &used);

	buf_consume(&hc->in, used);
	buf_reset(&hc->hp.body);
	if (r == HTTP_PARSE_ERROR) {
		hc->closing = 1;
		conn_close(hc->conn);
		return -1;
	}
	if (r == HTTP_PARSE_MORE) {
		set_wait(hc, WAIT_BODY);
		return -1;
	}
	hc->discarding = 0;
	http_parse_next(&hc->hp);
	return 0;
}

/* Stop reading while more than HELD_INPUT_MAX waits unparsed (behind
 * a held request or a paused body), go on once it is taken. */
static void
input_flow(struct http_conn *hc)
{
	if (!hc->paused && buf_avail(&hc->in) > HELD_INPUT_MAX &&
	    hc->conn->state == CONN_OPEN) {
		hc->paused = 1;
		conn_pause(hc->conn, CONN_PAUSE_UPPER);
	} else if (hc->paused && buf_avail(&hc->in) <= HELD_INPUT_MAX) {
		hc->paused = 0;
		conn_resume(hc->conn, CONN_PAUSE_UPPER);
	}
}

/* Parse and answer what is buffered, one request at a time. */
static void
process(struct http_conn *hc)
{
	hc->processing = 1;
	while (!hc->closing && hc->conn->state == CONN_OPEN) {
		size_t used;
		enum http_parse_result r;

		if (hc->cur != NULL) {
			if (!hc->cur->streaming || step_body(hc, hc->cur) != 0)
				break;
			continue;
		}
		if (hc->discarding) {
			if (step_discard(hc) != 0)
				break;
			continue;
		}
		r = http_parse_feed(&hc->hp, buf_head(&hc->in),
		    buf_avail(&hc->in), &used);
		buf_consume(&hc->in, used);
		if (r == HTTP_PARSE_ERROR) {
			fail_request(hc, hc->hp.status);
			break;
		}
		if (hc->hp.headers_done && !hc->hp.refused &&
		    hc->route != NULL && hc->route->stream &&
		    !hc->hp.msg.upgrade) {
			dispatch(hc, 1, r == HTTP_PARSE_DONE);
			continue;
		}
		if (r == HTTP_PARSE_MORE) {
			set_wait(hc, hc->hp.headers_done ? WAIT_BODY :
			    hc->hp.begun ? WAIT_HEADERS : WAIT_IDLE);
			break;
		}
		dispatch(hc, 0, 1);
		if (hc->upgraded) {
			finish_upgrade(hc);
			return;
		}
	}
	buf_trim(&hc->in);
	hc->processing = 0;
	input_flow(hc);
}

/*
 * Answers.
 */

const char *
http_header(const struct http_request *r, const char *name)
{
	const struct req *q = (const struct req *)r;

	return http_msg_field(&q->hc->hp.msg, name);
}

void
http_add_header(struct http_request *r, const char *name, const char *value)
{
	struct req *q = (struct req *)r;

	if (q->started)
		return;
	buf_printf(&q->fields, "%s: %s\r\n", name, value);
}

void
http_begin(struct http_request *r, int status, const char *content_type,
    int64_t length)
{
	struct req *q = (struct req *)r;
	struct http_conn *hc = q->hc;
	struct buf b = BUF_INIT;

	if (q->started)
		return;
	q->started = 1;
	q->status = status;
	/* RFC 9110 §9.3.2: HEAD gets the fields of GET without the body;
	 * §15.3.5, §15.4.5: 204 and 304 have none. */
	q->no_body = r->method_bit == HTTP_M_HEAD || status == 204 ||
	    status == 304;
	if (length < 0 && r->http_minor == 0)
		q->keep = 0;   /* HTTP/1.0: the close ends the body */
	q->chunked = length < 0 && r->http_minor >= 1;
	q->left = length;
	buf_printf(&b, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
	add_date(&b);
	if (content_type != NULL)
		buf_printf(&b, "Content-Type: %s\r\n", content_type);
	buf_add(&b, buf_head(&q->fields), buf_avail(&q->fields));
	if (status != 204 && status != 304) {
		if (length >= 0)
			buf_printf(&b, "Content-Length: %" PRId64 "\r\n",
			    length);
		else if (q->chunked)
			buf_adds(&b, "Transfer-Encoding: chunked\r\n");
	}
	if (!q->keep)
		buf_adds(&b, "Connection: close\r\n");
	else if (r->http_minor == 0)
		buf_adds(&b, "Connection: keep-alive\r\n");
	buf_adds(&b, "\r\n");
	conn_write(hc->conn, buf_head(&b), buf_avail(&b));
	buf_free(&b);
}

void
http_write(struct http_request *r, const void *data, size_t len)
{
	struct req *q = (struct req *)r;
	char size[32];

	if (!q->started || q->no_body || len == 0)
		return;
	q->sent += len;
	if (q->chunked) {
		int n = snprintf(size, sizeof(size), "%zx\r\n", len);

		conn_write(q->hc->conn, size, (size_t)n);
		conn_write(q->hc->conn, data, len);
		conn_write(q->hc->conn, "\r\n", 2);
		return;
	}
	if (q->left >= 0) {
		if ((uint64_t)len > (uint64_t)q->left) {
			/* More than declared would be read as the next
			 * response: cut it, and the connection after. */
			len = (size_t)q->left;
			q->keep = 0;
		}
		q->left -= (int64_t)len;
	}
	conn_write(q->hc->conn, data, len);
}

void
http_end(struct http_request *r)
{
	struct req *q = (struct req *)r;
	struct http_conn *hc = q->hc;

	if (!q->started)
		http_begin(r, 200, NULL, 0);
	if (q->chunked && !q->no_body)
		conn_write(hc->conn, "0\r\n\r\n", 5);
	else if (q->left > 0 && !q->no_body)
		q->keep = 0;   /* short of the declared length */
	count_response(q->status);
	log_request(hc, r->method, r->target, q->status, q->sent);
	req_done(q);
}

void
http_respond(struct http_request *r, int status, const char *content_type,
    const void *body, size_t len)
{
	http_begin(r, status, content_type, (int64_t)len);
	http_write(r, body, len);
	http_end(r);
}

void
http_respond_status(struct http_request *r, int status)
{
	char body[128];
	int n = snprintf(body, sizeof(body), "%d %s\n", status,
	    reason_phrase(status));

	http_respond(r, status, "text/plain; charset=utf-8", body, (size_t)n);
}

size_t
http_output_queued(const struct http_request *r)
{
	const struct req *q = (const struct req *)r;

	return buf_avail(&q->hc->conn->out);
}

void
http_hold(struct http_request *r, http_abort_fn abort, void *arg)
{
	struct req *q = (struct req *)r;

	if (q->held)
		return;
	q->held = 1;
	q->abort = abort;
	q->abort_arg = arg;
	strmap_put(held, q->key, q);
	/* Nothing more is parsed until this is answered: the responses
	 * go out in the order of the requests (RFC 9112 §9.3.2).  Reading
	 * goes on (buffered, up to HELD_INPUT_MAX) so that a client that
	 * leaves is noticed and the request aborted. */
}

void
http_body_start(struct http_request *r, http_body_fn fn, void *arg)
{
	struct req *q = (struct req *)r;

	if (!q->streaming || q->body_fn != NULL)
		return;
	q->body_fn = fn;
	q->body_arg = arg;
	http_body_resume(r);
}

void
http_body_pause(struct http_request *r)
{
	struct req *q = (struct req *)r;

	q->body_paused = 1;
	/* The wait is ours now, not the client's: no body deadline. */
	set_wait(q->hc, WAIT_NONE);
}

void
http_body_resume(struct http_request *r)
{
	struct req *q = (struct req *)r;
	struct http_conn *hc = q->hc;

	if (!q->streaming || q->body_fn == NULL || !q->body_paused)
		return;
	q->body_paused = 0;
	/* Inside process() (a callback of it), its loop goes on. */
	if (!hc->processing)
		process(hc);
}

struct http_request *
http_request_find(uint64_t id)
{
	char key[24];
	struct req *q;

	snprintf(key, sizeof(key), "%" PRIu64, id);
	q = strmap_get(held, key);
	if (q == NULL || q->hc->conn->state == CONN_DEAD)
		return NULL;
	return &q->r;
}

void
http_upgrade(struct http_request *r, const struct conn_handler *h,
    void *upper)
{
	struct req *q = (struct req *)r;
	struct http_conn *hc = q->hc;
	struct buf b = BUF_INIT;

	if (!hc->processing || hc->cur != q || !r->upgrade || q->started) {
		log_warnx("http %" PRIu64 " %s: upgrade refused: not inside "
		    "the handler of an Upgrade request", hc->conn->id,
		    hc->conn->addr);
		if (!q->started)
			http_respond_status(r, 500);
		return;
	}
	buf_adds(&b, "HTTP/1.1 101 Switching Protocols\r\n");
	add_date(&b);
	buf_add(&b, buf_head(&q->fields), buf_avail(&q->fields));
	buf_adds(&b, "Connection: Upgrade\r\n\r\n");
	conn_write(hc->conn, buf_head(&b), buf_avail(&b));
	buf_free(&b);
	count_response(101);
	log_request(hc, r->method, r->target, 101, 0);
	hc->cur = NULL;
	req_free(q);
	set_wait(hc, WAIT_NONE);
	conn_set_handler(hc->conn, h, upper);
	hc->upgraded = 1;       /* process() hands over the rest */
}

struct conn *
http_request_conn(const struct http_request *r)
{
	return ((const struct req *)r)->hc->conn;
}

/*
 * The conn handler.
 */

static void *
on_accept(struct conn *c)
{
	struct http_conn *hc = xcalloc(1, sizeof(*hc));
	const struct conf_limits *l = &cur_conf->limits;

	if (held == NULL)
		held = strmap_new();
	hc->conn = c;
	http_parse_init(&hc->hp, l->http_header_size, l->http_headers,
	    on_headers, hc);
	snprintf(hc->client_ip, sizeof(hc->client_ip), "%s", c->ip);
	hc->wait = WAIT_NONE;
	set_wait(hc, WAIT_IDLE);
	hc->next = all;
	if (all != NULL)
		all->prev = hc;
	all = hc;
	stats.open++;
	return hc;
}

static void
on_tls(struct conn *c)
{
	struct http_conn *hc = c->upper;

	set_wait(hc, WAIT_NONE);
	set_wait(hc, WAIT_IDLE);
}

static void
on_data(struct conn *c, const char *data, size_t len)
{
	struct http_conn *hc = c->upper;

	if (hc->closing)
		return;
	buf_add(&hc->in, data, len);
	if (!hc->processing)
		process(hc);
}

static void
unlink_conn(struct http_conn *hc)
{
	if (hc->prev != NULL)
		hc->prev->next = hc->next;
	else
		all = hc->next;
	if (hc->next != NULL)
		hc->next->prev = hc->prev;
	stats.open--;
}

void
http_shutdown_all(void)
{
	for (struct http_conn *hc = all; hc != NULL; hc = hc->next) {
		hc->closing = 1;
		conn_close(hc->conn);
	}
}

static void
on_close(struct conn *c)
{
	struct http_conn *hc = c->upper;
	struct req *q = hc->cur;

	if (q != NULL) {
		if (q->held && q->abort != NULL)
			q->abort(&q->r, q->abort_arg);
		req_free(q);
	}
	http_parse_free(&hc->hp);
	buf_free(&hc->in);
	buf_free(&hc->piece);
	unlink_conn(hc);
	free(hc);
}

/* A deadline passed: a request that has begun gets 408 (RFC 9110
 * §15.5.9, with "close"); an idle keep-alive connection just closes
 * (RFC 9112 §9.5). */
static void
on_timeout(struct conn *c, const char *reason)
{
	struct http_conn *hc = c->upper;

	if (hc->wait == WAIT_HEADERS || hc->wait == WAIT_BODY) {
		log_info("http %" PRIu64 " %s: client %s: %s", c->id, c->addr,
		    hc->client_ip, reason);
		send_plain(hc, 408, 0, 0);
		return;
	}
	hc->closing = 1;
	conn_close(c);
}

const struct conn_handler http_conn_handler = {
	.on_data = on_data,
	.on_tls = on_tls,
	.on_close = on_close,
	.on_accept = on_accept,
	.on_timeout = on_timeout,
};
