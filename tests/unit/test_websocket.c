/*
 * The WebSocket codec (xmppd/net/websocket_frame.c): the accept key of
 * RFC 6455 §1.3, frame headers both ways, and the reader's messages,
 * fragments, control frames and close codes.
 */
#include <stdlib.h>
#include <string.h>

#include "net/websocket.h"
#include "unit.h"

/* A masked client frame into out; returns its length. */
static size_t
client_frame(unsigned char *out, int fin, int op, const char *payload,
    size_t len, int masked)
{
	static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
	size_t n = ws_frame_header(out, op, len);

	if (!fin)
		out[0] &= 0x7f;
	if (masked) {
		out[1] |= 0x80;
		memcpy(out + n, mask, 4);
		n += 4;
	}
	memcpy(out + n, payload, len);
	if (masked)
		ws_unmask(out + n, len, mask, 0);
	return n + len;
}

static enum ws_event
feed_one(struct ws_reader *rd, const unsigned char *p, size_t n,
    struct ws_read *ev)
{
	ws_reader_add(rd, p, n);
	return ws_reader_next(rd, ev);
}

static void
test_accept_key(void)
{
	char out[29];

	/* RFC 6455 §1.3's example. */
	ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out);
	CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void
test_headers(void)
{
	unsigned char h[10];
	struct ws_frame f;

	CHECK(ws_frame_header(h, WS_TEXT, 5) == 2 && h[0] == 0x81 &&
	    h[1] == 5);
	CHECK(ws_frame_header(h, WS_TEXT, 300) == 4 && h[1] == 126 &&
	    h[2] == 1 && h[3] == 44);
	CHECK(ws_frame_header(h, WS_BINARY, 70000) == 10 && h[1] == 127);
	CHECK(ws_frame_parse(h, 10, &f) == 10 && f.len == 70000 &&
	    !f.masked && f.opcode == WS_BINARY && f.fin);
	CHECK(ws_frame_parse(h, 9, &f) == 0);
	/* 126 for a length that fits in 7 bits: not minimal. */
	h[0] = 0x81; h[1] = 126; h[2] = 0; h[3] = 5;
	CHECK(ws_frame_parse(h, 4, &f) == -1);
	/* RSV bits. */
	h[0] = 0xc1; h[1] = 0;
	CHECK(ws_frame_parse(h, 2, &f) == -1);
	/* A fragmented ping, a long ping. */
	h[0] = 0x09; h[1] = 0;
	CHECK(ws_frame_parse(h, 2, &f) == -1);
	h[0] = 0x89; h[1] = 126; h[2] = 0; h[3] = 200;
	CHECK(ws_frame_parse(h, 4, &f) == -1);
	CHECK(ws_list_has("chat, xmpp", "xmpp", 0));
	CHECK(!ws_list_has("chat, XMPP", "xmpp", 0));
	CHECK(ws_list_has("keep-alive, Upgrade", "upgrade", 1));
	CHECK(!ws_list_has("xmpp2", "xmpp", 0));
}

static void
test_reader(void)
{
	unsigned char b[256];
	struct ws_reader rd;
	struct ws_read ev;
	size_t n;

	ws_reader_init(&rd, 64);
	/* A whole message, delivered once its last byte is in. */
	n = client_frame(b, 1, WS_TEXT, "<open/>", 7, 1);
	ws_reader_add(&rd, b, n - 1);
	CHECK(ws_reader_next(&rd, &ev) == WS_EV_NONE);
	CHECK(feed_one(&rd, b + n - 1, 1, &ev) == WS_EV_MESSAGE &&
	    ev.len == 7 && memcmp(ev.data, "<open/>", 7) == 0);
	CHECK(ws_reader_next(&rd, &ev) == WS_EV_NONE);
	/* Fragments with a ping between them. */
	n = client_frame(b, 0, WS_TEXT, "<a>", 3, 1);
	n += client_frame(b + n, 1, WS_PING, "p", 1, 1);
	n += client_frame(b + n, 0, WS_CONTINUATION, "x", 1, 1);
	n += client_frame(b + n, 1, WS_CONTINUATION, "</a>", 4, 1);
	ws_reader_add(&rd, b, n);
	CHECK(ws_reader_next(&rd, &ev) == WS_EV_PING && ev.len == 1 &&
	    ev.data[0] == 'p');
	CHECK(ws_reader_next(&rd, &ev) == WS_EV_MESSAGE && ev.len == 8 &&
	    memcmp(ev.data, "<a>x</a>", 8) == 0);
	CHECK(ws_reader_next(&rd, &ev) == WS_EV_NONE);
	/* A close with its code, then nothing more. */
	n = client_frame(b, 1, WS_CLOSE, "\x03\xe8", 2, 1);
	n += client_frame(b + n, 1, WS_TEXT, "x", 1, 1);
	CHECK(feed_one(&rd, b, n, &ev) == WS_EV_CLOSE && ev.code == 1000);
	CHECK(ws_reader_next(&rd, &ev) == WS_EV_NONE);
	ws_reader_free(&rd);

	/* The failures and their codes. */
	ws_reader_init(&rd, 64);
	n = client_frame(b, 1, WS_TEXT, "x", 1, 0);
	CHECK(feed_one(&rd, b, n, &ev) == WS_EV_FAIL && ev.code == 1002);
	ws_reader_free(&rd);
	ws_reader_init(&rd, 64);
	n = client_frame(b, 1, WS_BINARY, "x", 1, 1);
	CHECK(feed_one(&rd, b, n, &ev) == WS_EV_FAIL && ev.code == 1003);
	ws_reader_free(&rd);
	ws_reader_init(&rd, 64);
	n = client_frame(b, 1, WS_CONTINUATION, "x", 1, 1);
	CHECK(feed_one(&rd, b, n, &ev) == WS_EV_FAIL && ev.code == 1002);
	ws_reader_free(&rd);
	ws_reader_init(&rd, 64);
	memset(b + 100, 'x', 65);
	n = client_frame(b, 1, WS_TEXT, (char *)b + 100, 65, 1);
	/* The header alone is enough to refuse it. */
	CHECK(feed_one(&rd, b, 6, &ev) == WS_EV_FAIL && ev.code == 1009);
	ws_reader_free(&rd);
	ws_reader_init(&rd, 64);
	n = client_frame(b, 0, WS_TEXT, (char *)b + 100, 40, 1);
	n += client_frame(b + n, 1, WS_CONTINUATION, (char *)b + 100, 40, 1);
	CHECK(feed_one(&rd, b, n, &ev) == WS_EV_FAIL && ev.code == 1009);
	ws_reader_free(&rd);
	ws_reader_init(&rd, 64);
	n = client_frame(b, 1, WS_CLOSE, "\x03\xed", 2, 1);   /* 1005 */
	CHECK(feed_one(&rd, b, n, &ev) == WS_EV_FAIL && ev.code == 1002);
	ws_reader_free(&rd);
	ws_reader_init(&rd, 64);
	n = client_frame(b, 1, 0x3, "", 0, 1);
	CHECK(feed_one(&rd, b, n, &ev) == WS_EV_FAIL && ev.code == 1002);
	ws_reader_free(&rd);
}

int
main(void)
{
	test_accept_key();
	test_headers();
	test_reader();
	return UNIT_DONE("websocket");
}
