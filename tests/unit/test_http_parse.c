/*
 * Unit tests for xmppd/net/http_parse.c: requests fed whole and one
 * byte at a time (fields split across reads), pipelined requests,
 * chunked and sized bodies, every limit and its status, the checks
 * http-parser leaves to us; the Host parser and the Forwarded /
 * X-Forwarded-For walk.
 */
#include <string.h>

#include "net/http_parse.h"
#include "unit.h"

static size_t body_max = 100;
static int refuse;

static int
on_headers(void *arg, struct http_msg *m, size_t *max)
{
	*max = body_max;
	return refuse;
}

/* Feed text to hp step bytes at a time until DONE or ERROR; the bytes
 * used in *used.  */
static enum http_parse_result
feed(struct http_parse *hp, const char *text, size_t step, size_t *used)
{
	size_t len = strlen(text), off = 0, u;
	enum http_parse_result r = HTTP_PARSE_MORE;

	while (off < len) {
		size_t n = len - off < step ? len - off : step;

		r = http_parse_feed(hp, text + off, n, &u);
		off += u;
		if (r != HTTP_PARSE_MORE)
			break;
	}
	*used = off;
	return r;
}

static void
test_simple(size_t step)
{
	struct http_parse hp;
	const char *req = "GET /metrics?x=1 HTTP/1.1\r\nHost: localhost:80\r\n"
	    "X-Long:   spaced value  \r\nAccept: */*\r\n\r\n"
	    "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
	size_t used, used2;

	http_parse_init(&hp, 1024, 8, on_headers, NULL);
	CHECK(feed(&hp, req, step, &used) == HTTP_PARSE_DONE);
	CHECK_STR(hp.msg.method, "GET");
	CHECK_STR(hp.msg.target, "/metrics?x=1");
	CHECK(hp.msg.major == 1 && hp.msg.minor == 1);
	CHECK(hp.msg.nfields == 3);
	CHECK_STR(http_msg_field(&hp.msg, "host"), "localhost:80");
	CHECK_STR(http_msg_field(&hp.msg, "X-LONG"), "spaced value");
	CHECK(http_msg_field(&hp.msg, "nope") == NULL);
	CHECK(hp.msg.keep_alive && !hp.msg.has_body && hp.msg.body_len == 0);
	http_parse_next(&hp);
	CHECK(feed(&hp, req + used, step, &used2) == HTTP_PARSE_DONE);
	CHECK_STR(hp.msg.method, "POST");
	CHECK(hp.msg.has_body && hp.msg.body_len == 5);
	CHECK(memcmp(hp.msg.body, "hello", 5) == 0);
	CHECK(used + used2 == strlen(req));
	http_parse_free(&hp);
}

static void
test_chunked(size_t step)
{
	struct http_parse hp;
	const char *req = "PUT /u HTTP/1.1\r\nHost: h\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n6\r\n world\r\n"
	    "0\r\nTrailer-Field: x\r\n\r\n";
	size_t used;

	http_parse_init(&hp, 1024, 8, on_headers, NULL);
	CHECK(feed(&hp, req, step, &used) == HTTP_PARSE_DONE);
	CHECK(used == strlen(req));
	CHECK(hp.msg.body_len == 11 && strcmp(hp.msg.body, "hello world") ==
	    0);
	CHECK(hp.msg.nfields == 2);    /* the trailer is not a field */
	http_parse_free(&hp);
}

/* The status a request ends with. */
static int
status_of(const char *req, size_t header_max, unsigned fields)
{
	struct http_parse hp;
	size_t used;
	int st;

	http_parse_init(&hp, header_max, fields, on_headers, NULL);
	st = feed(&hp, req, strlen(req), &used) == HTTP_PARSE_ERROR ?
	    hp.status : hp.done ? 0 : -1;
	if (st == 0 && hp.refused)
		st = 1000 + hp.refused;
	http_parse_free(&hp);
	return st;
}

static void
test_errors(void)
{
	char big[4096];

	CHECK(status_of("GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1024, 8) == 0);
	CHECK(status_of("GET / HTTP/1.1\r\nHost: h\r\n", 1024, 8) == -1);
	/* request line */
	CHECK(status_of("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 1024, 8) == 400);
	CHECK(status_of("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 1024, 8) == 400);
	CHECK(status_of("GET /\r\n\r\n", 1024, 8) == 400);
	CHECK(status_of("get / HTTP/1.1\r\nHost: h\r\n\r\n", 1024, 8) == 400);
	CHECK(status_of("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 1024, 8) == 505);
	CHECK(status_of("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 1024,
	    8) == 0);           /* RFC 9112 §2.2: leading empty lines */
	/* fields */
	CHECK(status_of("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 1024, 8) == 400);
	CHECK(status_of("GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n c\r\n\r\n",
	    1024, 8) == 400);
	CHECK(status_of("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n",
	    1024, 2) == 431);
	CHECK(status_of("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n\r\n", 1024,
	    2) == 0);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	{
		char req[5000];

		snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX: %s\r\n\r\n",
		    big);
		CHECK(status_of(req, 1024, 8) == 431);
		CHECK(status_of(req, 8192, 8) == 0);
		snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\n\r\n", big);
		CHECK(status_of(req, 1024, 8) == 414);
	}
	/* bodies */
	body_max = 4;
	CHECK(status_of("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
	    1024, 8) == 413);
	CHECK(status_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n0\r\n\r\n", 1024, 8) == 413);
	body_max = 100;
	CHECK(status_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "zz\r\nhello\r\n0\r\n\r\n", 1024, 8) == 400);
	CHECK(status_of("POST / HTTP/1.1\r\nContent-Length: 1\r\n"
	    "Content-Length: 2\r\n\r\nxx", 1024, 8) == 400);
	CHECK(status_of("POST / HTTP/1.1\r\nContent-Length: 2\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1024, 8) == 400);
	/* a refusal: completes without a body, ends the parse with one */
	refuse = 404;
	CHECK(status_of("GET / HTTP/1.1\r\n\r\n", 1024, 8) == 1404);
	CHECK(status_of("POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", 1024,
	    8) == 404);
	refuse = 0;
}

static void
test_host(void)
{
	char h[64];
	int ip;

	CHECK(http_host_parse("LocalHost", h, sizeof(h), &ip) == 0);
	CHECK_STR(h, "localhost");
	CHECK(!ip);
	CHECK(http_host_parse("example.org:5280", h, sizeof(h), &ip) == 0);
	CHECK_STR(h, "example.org");
	CHECK(http_host_parse("127.0.0.1:80", h, sizeof(h), &ip) == 0);
	CHECK(ip && strcmp(h, "127.0.0.1") == 0);
	CHECK(http_host_parse("[2001:db8::1]:443", h, sizeof(h), &ip) == 0);
	CHECK(ip && strcmp(h, "2001:db8::1") == 0);
	CHECK(http_host_parse("host:", h, sizeof(h), &ip) == 0);
	CHECK(http_host_parse("", h, sizeof(h), &ip) == -1);
	CHECK(http_host_parse("a b", h, sizeof(h), &ip) == -1);
	CHECK(http_host_parse("host:80x", h, sizeof(h), &ip) == -1);
	CHECK(http_host_parse("host:123456", h, sizeof(h), &ip) == -1);
	CHECK(http_host_parse("[::1", h, sizeof(h), &ip) == -1);
	CHECK(http_host_parse("[nope]", h, sizeof(h), &ip) == -1);
	CHECK(http_host_parse("[::1]x", h, sizeof(h), &ip) == -1);
	CHECK(http_host_parse("user@host", h, sizeof(h), &ip) == -1);
	CHECK(http_host_parse("aaaaaaaa", h, 4, &ip) == -1);
}

static int
trust_10(void *arg, const char *ip)
{
	return strncmp(ip, "10.", 3) == 0;
}

static void
test_forwarded(void)
{
	char out[64];

	CHECK(http_forwarded_client(NULL, "203.0.113.7", trust_10, NULL, out,
	    sizeof(out)) == 0);
	CHECK_STR(out, "203.0.113.7");
	/* the nearest untrusted hop, not what the client claims */
	CHECK(http_forwarded_client(NULL, "1.2.3.4, 203.0.113.7, 10.0.0.2",
	    trust_10, NULL, out, sizeof(out)) == 0);
	CHECK_STR(out, "203.0.113.7");
	CHECK(http_forwarded_client(NULL, "10.0.0.3, 10.0.0.2", trust_10,
	    NULL, out, sizeof(out)) == 0);
	CHECK_STR(out, "10.0.0.3");
	CHECK(http_forwarded_client(NULL, " 192.0.2.1:1234 ", trust_10, NULL,
	    out, sizeof(out)) == 0);
	CHECK_STR(out, "192.0.2.1");
	CHECK(http_forwarded_client(NULL, "[2001:DB8::1]:80", trust_10, NULL,
	    out, sizeof(out)) == 0);
	CHECK_STR(out, "2001:db8::1");
	CHECK(http_forwarded_client(NULL, "::ffff:192.0.2.9", trust_10, NULL,
	    out, sizeof(out)) == 0);
	CHECK_STR(out, "192.0.2.9");
	/* Forwarded wins, for= among other parameters, quoted IPv6 */
	CHECK(http_forwarded_client("for=192.0.2.60;proto=http;by=203.0.113.43,"
	    " proto=https;For=\"[2001:db8:cafe::17]:4711\"", "198.51.100.1",
	    trust_10, NULL, out, sizeof(out)) == 0);
	CHECK_STR(out, "2001:db8:cafe::17");
	/* nothing usable: the peer stays the client */
	CHECK(http_forwarded_client("for=unknown", NULL, trust_10, NULL, out,
	    sizeof(out)) == -1);
	CHECK(http_forwarded_client("for=_hidden, for=10.0.0.1", NULL,
	    trust_10, NULL, out, sizeof(out)) == -1);
	CHECK(http_forwarded_client("proto=https", NULL, trust_10, NULL, out,
	    sizeof(out)) == -1);
	CHECK(http_forwarded_client(NULL, "not-an-ip", trust_10, NULL, out,
	    sizeof(out)) == -1);
	CHECK(http_forwarded_client(NULL, "", trust_10, NULL, out,
	    sizeof(out)) == -1);
	CHECK(http_forwarded_client(NULL, NULL, trust_10, NULL, out,
	    sizeof(out)) == -1);
}

int
main(void)
{
	test_simple(1 << 20);
	test_simple(1);
	test_simple(7);
	test_chunked(1 << 20);
	test_chunked(1);
	test_errors();
	test_host();
	test_forwarded();
	return UNIT_DONE("http_parse");
}
