/*
 * HTTP/1.1 requests parsed from bytes (RFC 9112) with Debian's
 * http-parser, one request at a time, with our limits on top: the
 * request line and fields (414, 431), the number of fields (431), the
 * body (a maximum the caller picks once it has seen the headers, 413),
 * and the checks http-parser leaves to its user (obs-fold, the version,
 * Host).  Also the pure helpers the HTTP layer needs: the Host field's
 * host, and the client named by Forwarded / X-Forwarded-For.  No I/O:
 * net/http.c feeds a connection's bytes, tests/fuzz/fuzz_http.c anything.
 */
#ifndef XMPPD_HTTP_PARSE_H
#define XMPPD_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "buf.h"

struct http_field {
	const char *name;          /* as received (compare case-insensitively) */
	const char *value;         /* leading and trailing blanks removed */
};

/* One request; valid from HTTP_PARSE_DONE (fields already in
 * on_headers) to http_parse_next(). */
struct http_msg {
	const char *method;        /* "GET" */
	int method_id;             /* enum http_method */
	const char *target;        /* the request-target as received */
	unsigned major, minor;     /* HTTP version */
	struct http_field *fields; /* nfields, trailers not included */
	size_t nfields;
	const char *body;          /* body_len bytes, NUL-terminated */
	size_t body_len;
	int has_body;              /* Content-Length > 0 or chunked */
	int64_t content_length;    /* as declared; -1 if chunked or none */
	int keep_alive;            /* the connection may carry another
	                              request after this one (RFC 9112 §9.3) */
	int upgrade;               /* an Upgrade request: http-parser
	                              stopped after its headers, the bytes
	                              after them are another protocol's */
};

enum http_parse_result {
	HTTP_PARSE_MORE,    /* all bytes used, the request is not complete */
	HTTP_PARSE_DONE,    /* a whole request is in msg */
	HTTP_PARSE_ERROR,   /* a bad request: answer status and close */
};

/* Called once the fields of a request are in: set *max_body (0 by
 * default) and return 0, or return a status (4xx) to refuse the
 * request; a refused request without a body still completes (DONE,
 * with refused set) so that the connection can go on, one with a body
 * ends the parse with that status. */
typedef int (*http_headers_fn)(void *arg, struct http_msg *m,
    size_t *max_body);

struct http_parse {
	http_parser p;
	size_t header_max;         /* request line and field bytes */
	unsigned fields_max;
	http_headers_fn on_headers;
	void *arg;
	struct buf text;           /* target, then name NUL value NUL ... */
	size_t *offs;              /* per field: name and value offsets */
	size_t noffs, capoffs;
	size_t header_bytes;
	size_t body_max;
	size_t body_seen;          /* body bytes parsed, taken or not */
	struct buf body;           /* parsed body bytes; the caller may
	                              take them as they come (buf_reset) */
	int in_value;              /* the last piece was a value */
	int headers_done;          /* what follows are body and trailers */
	int begun;                 /* a byte of this request was seen */
	int status;                /* the error, once known */
	int refused;               /* on_headers refused a request with no
	                              body: answer it and go on */
	int done;
	/* Our own pass over the raw bytes up to the end of the fields,
	 * for what http-parser (as Debian builds it) lets through. */
	struct buf line;           /* the request line */
	unsigned line_no;          /* 0: the request line */
	size_t line_len;           /* bytes of the current line, no CR */
	int scan_done;             /* the empty line was seen */
	struct http_msg msg;
};

void http_parse_init(struct http_parse *hp, size_t header_max,
    unsigned fields_max, http_headers_fn on_headers, void *arg);
void http_parse_free(struct http_parse *hp);
/* Parse from data; *used is what it took (all of it unless DONE or
 * ERROR).  After DONE, the bytes not used belong to the next request
 * (pipelining) or, after an upgrade, to the new protocol. */
enum http_parse_result http_parse_feed(struct http_parse *hp,
    const char *data, size_t len, size_t *used);
/* After DONE: forget the request, get ready for the next one. */
void http_parse_next(struct http_parse *hp);

/* The first value of field name (case-insensitive), or NULL; the
 * number of fields of that name. */
const char *http_msg_field(const struct http_msg *m, const char *name);
size_t http_msg_field_count(const struct http_msg *m, const char *name);

/* The host of a Host field value or an authority (RFC 9110 §7.2,
 * RFC 3986 §3.2.2): lowercased, without the port, an IPv6 literal
 * without its brackets; *is_ip says it was an IP literal.  -1 if it is
 * not a valid uri-host [ ":" port ]. */
int http_host_parse(const char *value, char *host, size_t len, int *is_ip);

/* The client a chain of trusted proxies names (RFC 7239 Forwarded "for=",
 * else X-Forwarded-For; either may be NULL): walking from the nearest
 * hop back, the first address trusted() does not trust.  Writes it
 * (numeric) into out and returns 0; -1 if the fields name no usable
 * address (missing, obfuscated, malformed), and the peer stays the
 * client. */
int http_forwarded_client(const char *forwarded, const char *xff,
    int (*trusted)(void *arg, const char *ip), void *arg, char *out,
    size_t len);

#endif
