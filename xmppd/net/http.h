/*
 * HTTP/1.1 on the event loop (RFC 9110, RFC 9112): the upper layer of
 * conn for "http" and "https" listeners.  Keep-alive, pipelined
 * requests answered in order (one at a time: the next is parsed once
 * the current one is answered), the limits of the "limits" block
 * (http-*), virtual hosts by Host, the client behind trusted proxies,
 * and a registry of routes by path prefix that higher layers fill.
 *
 * A handler gets a request and answers it before it returns
 * (http_respond, or http_begin/http_write/http_end), or holds it
 * (http_hold) and answers it later, found again by its id
 * (http_request_find): BOSH long-polling.  An Upgrade request may be
 * handed with its connection to another conn handler (http_upgrade):
 * WebSocket.  Everything else (parse errors, unknown routes, methods,
 * hosts, limits) this file answers itself.
 */
#ifndef XMPPD_HTTP_H
#define XMPPD_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* Where BOSH (XEP-0206) is served: stream/bosh.c routes it,
 * net/hostmeta.c announces it. */
#define BOSH_PATH "/http-bind"

struct conf;
struct conn;
struct conn_handler;
struct http_request;

/* The methods a route takes (a GET route takes HEAD too, RFC 9110
 * §9.3.2: its handler sees HEAD and answers as for GET; the body is
 * left out here). */
enum http_method_bit {
	HTTP_M_GET = 1,
	HTTP_M_HEAD = 2,
	HTTP_M_POST = 4,
	HTTP_M_PUT = 8,
	HTTP_M_DELETE = 16,
	HTTP_M_OPTIONS = 32,
};

struct http_request {
	uint64_t id;               /* unique; http_request_find(id) */
	uint64_t conn_id;          /* the connection's, for logs */
	const char *method;        /* "GET" */
	unsigned method_bit;       /* enum http_method_bit */
	const char *target;        /* the request-target as received */
	const char *path;          /* its path (not percent-decoded) */
	const char *query;         /* after '?', "" if none */
	const char *host;          /* the configured host the Host field
	                              (or an absolute target) names, NULL
	                              when that was an IP address or when
	                              an HTTP/1.0 request named none */
	const char *client_ip;     /* the client: the peer, or the address
	                              a trusted proxy names */
	const char *peer_addr;     /* the peer's "ip:port" */
	int tls;                   /* arrived over TLS (an https listener) */
	int listen_port;           /* the listener's port */
	unsigned http_minor;       /* HTTP/1.x */
	const char *body;          /* body_len bytes, NUL-terminated (a
	                              streaming route: "", 0) */
	size_t body_len;
	int64_t content_length;    /* as declared; -1 if chunked or none */
	int upgrade;               /* Upgrade + Connection: upgrade */
};

/* A route's handler: r is valid until it is answered (or until the
 * abort callback of a held request has run).  arg is the route's. */
typedef void (*http_handler_fn)(struct http_request *r, void *arg);
/* A held request's connection went away: the request is freed after
 * this returns. */
typedef void (*http_abort_fn)(struct http_request *r, void *arg);

/* Route requests whose path is prefix or starts with prefix + "/"
 * (prefix "/" takes every path) to handler; the longest prefix wins.
 * Methods outside methods get 405 with Allow, a body over max_body
 * 413.  -1 if the prefix is taken already. */
int http_route_add(const char *prefix, unsigned methods, size_t max_body,
    http_handler_fn handler, void *arg);
void http_route_remove(const char *prefix);

/*
 * A route whose bodies are not collected in memory: its handler runs
 * once the fields are in (r->body is empty), holds or answers the
 * request, and takes the body with http_body_start as it arrives, in
 * pieces, pausing it while it cannot take more.  An answer before the
 * last piece: the rest of the body is read and dropped, then the
 * connection goes on (or closes, if the body is broken).
 */
int http_route_add_stream(const char *prefix, unsigned methods,
    size_t max_body, http_handler_fn handler, void *arg);

/* Fields ("Name: value\r\n" lines, copied) added to the answers this
 * layer makes itself to requests for the route: 400, 405, 408, 413...
 * (CORS fields, so that a browser lets its page read them).  -1 if the
 * route is not there. */
int http_route_set_error_fields(const char *prefix, const char *fields);

enum http_body_status {
	HTTP_BODY_MORE,     /* a piece; more follow */
	HTTP_BODY_LAST,     /* the last piece (len may be 0) */
	HTTP_BODY_FAILED,   /* the body is broken: this layer has answered
	                       (400, 413) and closes the connection; r is
	                       freed when the callback returns */
};
/* A piece of a request's body: data is valid during the call.  The
 * callback may pause, answer, or (HTTP_BODY_LAST) hold on. */
typedef void (*http_body_fn)(struct http_request *r, const char *data,
    size_t len, enum http_body_status st, void *arg);
/* Deliver r's body to fn (from now on, and what arrived already).
 * Nothing arrives between http_body_pause and http_body_resume; past
 * 64 KiB waiting, the connection's reading stops. */
void http_body_start(struct http_request *r, http_body_fn fn, void *arg);
void http_body_pause(struct http_request *r);
void http_body_resume(struct http_request *r);

/* The first value of a request field (case-insensitive name), or NULL. */
const char *http_header(const struct http_request *r, const char *name);

/* Add a response field (before the answer starts); the layer writes
 * Date, Content-Length or Transfer-Encoding and Connection itself. */
void http_add_header(struct http_request *r, const char *name,
    const char *value);
/* Answer in one piece.  For HEAD the body is not sent (its length is). */
void http_respond(struct http_request *r, int status,
    const char *content_type, const void *body, size_t len);
/* A short text/plain answer naming the status ("404 Not Found"). */
void http_respond_status(struct http_request *r, int status);
/* Answer in pieces: length is the body's, or -1 for chunked coding
 * (closing the connection at the end for an HTTP/1.0 client). */
void http_begin(struct http_request *r, int status,
    const char *content_type, int64_t length);
void http_write(struct http_request *r, const void *data, size_t len);
/* The answer is complete; r is freed. */
void http_end(struct http_request *r);
/* Bytes queued on the request's connection, not yet written: a handler
 * streaming a large body waits when this is high. */
size_t http_output_queued(const struct http_request *r);

/* Keep r open after the handler returns; abort (may be NULL) runs if
 * the connection goes away first (the client closing it is noticed).
 * Requests pipelined behind r wait, unparsed, until r is answered. */
void http_hold(struct http_request *r, http_abort_fn abort, void *arg);
/* A held request by id, or NULL if its connection has gone. */
struct http_request *http_request_find(uint64_t id);

/*
 * Inside the handler of an Upgrade request: send "101 Switching
 * Protocols" with the fields added (Upgrade, and the new protocol's),
 * and hand the connection to h with upper as its state.  The bytes read
 * after the request are passed to h->on_data at once.  r is freed; the
 * connection is h's from then on (its on_close included).
 */
void http_upgrade(struct http_request *r, const struct conn_handler *h,
    void *upper);

/* The connection a request arrived on (for an upgrade: the layer it is
 * handed to keeps it). */
struct conn *http_request_conn(const struct http_request *r);

/* The conn handler of http and https listeners. */
extern const struct conn_handler http_conn_handler;

/* Shutdown: close every HTTP connection once what is queued is sent;
 * held requests are aborted. */
void http_shutdown_all(void);

/* Start-up and reload: limits, trusted proxies, hosts. */
void http_set_conf(const struct conf *conf);

/* Responses sent, by status code (100..599). */
struct http_stats {
	uint64_t responses[600];
	uint64_t open;             /* connections */
};
void http_get_stats(struct http_stats *st);

#endif
