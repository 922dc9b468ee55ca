/*
 * The SOCKS5 handshake of the XEP-0065 proxy (xmppd/net/socks5.c): the
 * greeting, the CONNECT request fed whole and byte by byte, what follows
 * it, and each refusal with its RFC 1928 reply code.
 */
#include <string.h>

#include "net/socks5.h"
#include "unit.h"

#define HASH "0123456789abcdef0123456789abcdef01234567"

/* Feed len bytes in pieces of step; returns the last event and adds up
 * what was used; stops at an event other than MORE. */
static enum socks5_event
feed(struct socks5 *s, const unsigned char *p, size_t len, size_t step,
    size_t *used_total)
{
	enum socks5_event ev = SOCKS5_MORE;
	size_t off = 0;

	*used_total = 0;
	while (off < len) {
		size_t n = len - off < step ? len - off : step, used = 0;

		ev = socks5_parse(s, p + off, n, &used);
		off += used;
		*used_total += used;
		if (ev != SOCKS5_MORE)
			return ev;
		if (used != n)
			return SOCKS5_FAIL; /* MORE must take everything */
	}
	return ev;
}

static size_t
connect_request(unsigned char *out, const char *host, unsigned port)
{
	size_t n = 0, len = strlen(host);

	out[n++] = 5;
	out[n++] = 1;
	out[n++] = 0;
	out[n++] = 3;
	out[n++] = (unsigned char)len;
	memcpy(out + n, host, len);
	n += len;
	out[n++] = (unsigned char)(port >> 8);
	out[n++] = (unsigned char)port;
	return n;
}

static void
test_handshake(void)
{
	static const unsigned char greet[] = {5, 2, 2, 0};
	unsigned char req[300], all[400];
	struct socks5 s;
	size_t used, n, step;

	for (step = 1; step <= 8; step++) {
		socks5_init(&s);
		CHECK(feed(&s, greet, sizeof(greet), step, &used) ==
		      SOCKS5_METHOD);
		CHECK(used == sizeof(greet));
		n = connect_request(req, HASH, 0);
		CHECK(feed(&s, req, n, step, &used) == SOCKS5_REQUEST);
		CHECK(used == n);
		CHECK_STR(s.hash, HASH);
		CHECK(s.port == 0);
	}
	/* Greeting, request and payload in one read: the parser stops at
	 * each event and leaves the payload. */
	socks5_init(&s);
	memcpy(all, greet, sizeof(greet));
	n = sizeof(greet);
	n += connect_request(
	    all + n, "0123456789ABCDEF0123456789ABCDEF01234567", 7777);
	memcpy(all + n, "payload", 7);
	CHECK(socks5_parse(&s, all, n + 7, &used) == SOCKS5_METHOD);
	CHECK(used == sizeof(greet));
	{
		size_t used2 = 0;

		CHECK(socks5_parse(&s, all + used, n + 7 - used, &used2) ==
		      SOCKS5_REQUEST);
		CHECK(used + used2 == n);
		CHECK_STR(s.hash, HASH); /* upper case folded */
		CHECK(s.port == 7777);
		/* Done: takes nothing more. */
		CHECK(socks5_parse(&s, "x", 1, &used2) == SOCKS5_MORE &&
		      used2 == 0);
	}
}

/* A refused greeting (reply 0xff) or request (reply code). */
static void
check_refused(const unsigned char *greet, size_t glen, const char *host,
    unsigned atyp, unsigned cmd, unsigned want)
{
	struct socks5 s;
	unsigned char req[300];
	size_t used, n;
	enum socks5_event ev;

	socks5_init(&s);
	ev = feed(&s, greet, glen, 1, &used);
	if (want == 0xff) {
		CHECK(ev == SOCKS5_FAIL && s.reply == 0xff && s.error != NULL);
		return;
	}
	CHECK(ev == SOCKS5_METHOD);
	n = connect_request(req, host, 0);
	req[1] = (unsigned char)cmd;
	req[3] = (unsigned char)atyp;
	ev = feed(&s, req, n, 1, &used);
	CHECK(ev == SOCKS5_FAIL);
	CHECK(s.reply == want);
	CHECK(s.error != NULL);
}

static void
test_refusals(void)
{
	static const unsigned char ok[] = {5, 1, 0};
	static const unsigned char v4[] = {4, 1, 0};
	static const unsigned char userpass[] = {5, 1, 2};
	static const unsigned char none[] = {5, 0};

	check_refused(v4, sizeof(v4), HASH, 3, 1, 0xff);
	check_refused(userpass, sizeof(userpass), HASH, 3, 1, 0xff);
	check_refused(none, sizeof(none), HASH, 3, 1, 0xff);
	check_refused(ok, sizeof(ok), HASH, 3, 2, SOCKS5_COMMAND_UNSUPPORTED);
	check_refused(ok, sizeof(ok), HASH, 1, 1, SOCKS5_ATYP_UNSUPPORTED);
	check_refused(ok, sizeof(ok), HASH, 4, 1, SOCKS5_ATYP_UNSUPPORTED);
	check_refused(
	    ok, sizeof(ok), "example.org", 3, 1, SOCKS5_HOST_UNREACHABLE);
	check_refused(ok, sizeof(ok),
	    "0123456789abcdef0123456789abcdef0123456g", 3, 1,
	    SOCKS5_HOST_UNREACHABLE);
	{
		/* A wrong version in the request, a reserved byte set. */
		struct socks5 s;
		size_t used;
		unsigned char req[64];

		socks5_init(&s);
		CHECK(socks5_parse(&s, ok, sizeof(ok), &used) == SOCKS5_METHOD);
		connect_request(req, HASH, 0);
		req[0] = 4;
		CHECK(socks5_parse(&s, req, 10, &used) == SOCKS5_FAIL &&
		      used == 1 && s.reply == SOCKS5_GENERAL_FAILURE);
		socks5_init(&s);
		CHECK(socks5_parse(&s, ok, sizeof(ok), &used) == SOCKS5_METHOD);
		connect_request(req, HASH, 0);
		req[2] = 1;
		CHECK(socks5_parse(&s, req, 10, &used) == SOCKS5_FAIL &&
		      used == 3 && s.reply == SOCKS5_GENERAL_FAILURE);
	}
}

static void
test_replies(void)
{
	unsigned char out[SOCKS5_REPLY_MAX], m[2];
	size_t n;

	socks5_method_reply(m, 1);
	CHECK(m[0] == 5 && m[1] == 0);
	socks5_method_reply(m, 0);
	CHECK(m[0] == 5 && m[1] == 0xff);
	n = socks5_reply(out, SOCKS5_SUCCEEDED, HASH, 0x1e61);
	CHECK(n == 47);
	CHECK(memcmp(out, "\x05\x00\x00\x03\x28", 5) == 0);
	CHECK(memcmp(out + 5, HASH, 40) == 0);
	CHECK(out[45] == 0x1e && out[46] == 0x61);
	n = socks5_reply(out, SOCKS5_NOT_ALLOWED, NULL, 0);
	CHECK(n == 10);
	CHECK(memcmp(out, "\x05\x02\x00\x01\0\0\0\0\0\0", 10) == 0);
}

int
main(void)
{
	test_handshake();
	test_refusals();
	test_replies();
	return UNIT_DONE("socks5");
}
