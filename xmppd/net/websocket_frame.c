/*
 * The WebSocket framing of RFC 6455 as pure code, no sockets: frame
 * headers read and written, masking, the accept key, and the reader
 * that turns a client's bytes into messages, pings and closes
 * (tests/fuzz/fuzz_websocket.c and tests/unit/test_websocket.c drive
 * it; net/websocket.c puts it on a connection).
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "net/websocket.h"
#include "base64.h"
#include "buf.h"

/* RFC 6455 §1.3. */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_CONTROL_MAX 125      /* §5.5: control frame payload */


int
ws_frame_parse(const unsigned char *p, size_t n, struct ws_frame *f)
{
	size_t need = 2;
	uint64_t len;

	if (n < 2)
		return 0;
	if ((p[0] & 0x70) != 0)
		return -1;      /* RSV1-3: no extension is negotiated */
	f->fin = (p[0] & 0x80) != 0;
	f->opcode = p[0] & 0x0f;
	f->masked = (p[1] & 0x80) != 0;
	len = p[1] & 0x7f;
	if (len == 126)
		need += 2;
	else if (len == 127)
		need += 8;
	if (f->masked)
		need += 4;
	if (n < need)
		return 0;
	if (len == 126) {
		len = (uint64_t)p[2] << 8 | p[3];
		if (len < 126)
			return -1;      /* §5.2: the minimal number of bytes */
	} else if (len == 127) {
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | p[2 + i];
		if (len >> 63 != 0 || len <= 0xffff)
			return -1;
	}
	if ((f->opcode & 0x8) != 0 && (!f->fin || len > WS_CONTROL_MAX))
		return -1;      /* §5.5 */
	if (f->masked)
		memcpy(f->mask, p + need - 4, 4);
	else
		memset(f->mask, 0, 4);
	f->len = len;
	f->header_len = need;
	return (int)need;
}

void
ws_unmask(unsigned char *p, size_t len, const unsigned char mask[4],
    uint64_t offset)
{
	for (size_t i = 0; i < len; i++)
		p[i] ^= mask[(offset + i) & 3];
}

size_t
ws_frame_header(unsigned char *out, enum ws_opcode op, uint64_t len)
{
	out[0] = (unsigned char)(0x80 | op);
	if (len < 126) {
		out[1] = (unsigned char)len;
		return 2;
	}
	if (len <= 0xffff) {
		out[1] = 126;
		out[2] = (unsigned char)(len >> 8);
		out[3] = (unsigned char)len;
		return 4;
	}
	out[1] = 127;
	for (int i = 0; i < 8; i++)
		out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
	return 10;
}

void
ws_accept_key(const char *key, char out[29])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct buf b = BUF_INIT;

	buf_adds(&b, key);
	buf_adds(&b, WS_GUID);
	EVP_Digest(buf_head(&b), buf_avail(&b), md, &mdlen, EVP_sha1(), NULL);
	buf_free(&b);
	base64_encode(md, mdlen, out);
}

int
ws_list_has(const char *value, const char *token, int nocase)
{
	size_t tl = strlen(token);
	const char *p = value;

	while (*p != '\0') {
		const char *e;
		size_t n;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		e = p;
		while (*e != '\0' && *e != ',')
			e++;
		n = (size_t)(e - p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == tl && (nocase ? strncasecmp(p, token, n) == 0 :
			strncmp(p, token, n) == 0))
			return 1;
		p = e;
	}
	return 0;
}

void
ws_reader_init(struct ws_reader *rd, size_t max_message)
{
	memset(rd, 0, sizeof(*rd));
	rd->max_message = max_message;
}

void
ws_reader_free(struct ws_reader *rd)
{
	buf_free(&rd->in);
	buf_free(&rd->msg);
}

void
ws_reader_add(struct ws_reader *rd, const void *data, size_t len)
{
	buf_add(&rd->in, data, len);
}

static enum ws_event
fail(struct ws_reader *rd, struct ws_read *ev, enum ws_close_code code,
    const char *why)
{
	rd->failed = 1;
	ev->code = code;
	ev->why = why;
	return ev->event = WS_EV_FAIL;
}

/* §5.5.1, §7.4: a close frame's payload: nothing, or a code and text. */
static enum ws_event
close_frame(struct ws_reader *rd, struct ws_read *ev, const unsigned char *p,
    size_t len)
{
	unsigned code = WS_CLOSE_NO_STATUS;

	if (len == 1)
		return fail(rd, ev, WS_CLOSE_PROTOCOL, "close frame of one byte");
	if (len >= 2) {
		code = (unsigned)p[0] << 8 | p[1];
		/* §7.4.1, §7.4.2: 1004-1006, 1015 and other unassigned
		 * codes below 3000 are never sent. */
		if (code < 1000 || code >= 5000 || (code < 3000 &&
			(code == 1004 || code == 1005 || code == 1006 ||
			    code > 1014)))
			return fail(rd, ev, WS_CLOSE_PROTOCOL,
			    "invalid close code");
	}
	rd->closed = 1;
	ev->code = code;
	return ev->event = WS_EV_CLOSE;
}

enum ws_event
ws_reader_next(struct ws_reader *rd, struct ws_read *ev)
{
	memset(ev, 0, sizeof(*ev));
	buf_consume(&rd->in, rd->consume);
	rd->consume = 0;
	if (rd->msg_done) {
		buf_free(&rd->msg);
		rd->msg_done = 0;
	}
	if (rd->failed || rd->closed)
		return ev->event = WS_EV_NONE;
	for (;;) {
		unsigned char *p = (unsigned char *)rd->in.data + rd->in.off;
		size_t avail = buf_avail(&rd->in), len;
		struct ws_frame f;
		int r;

		if (avail == 0)
			break;
		if ((r = ws_frame_parse(p, avail, &f)) < 0)
			return fail(rd, ev, WS_CLOSE_PROTOCOL,
			    "malformed frame header");
		if (r == 0)
			break;
		if (!f.masked)  /* §5.1: a server MUST close */
			return fail(rd, ev, WS_CLOSE_PROTOCOL,
			    "unmasked frame");
		if (f.len > rd->max_message)
			return fail(rd, ev, WS_CLOSE_TOO_BIG, "frame too big");
		if (avail - f.header_len < f.len)
			break;
		len = (size_t)f.len;
		p += f.header_len;
		ws_unmask(p, len, f.mask, 0);
		rd->consume = f.header_len + len;
		switch (f.opcode) {
		case WS_TEXT:
		case WS_CONTINUATION:
			if ((f.opcode == WS_TEXT) == rd->msg_open)
				return fail(rd, ev, WS_CLOSE_PROTOCOL,
				    rd->msg_open ? "a new message inside a "
				    "fragmented one" : "continuation without "
				    "a message");
			if (f.fin && !rd->msg_open) {
				ev->data = (const char *)p;
				ev->len = len;
				return ev->event = WS_EV_MESSAGE;
			}
			if (buf_avail(&rd->msg) + len > rd->max_message)
				return fail(rd, ev, WS_CLOSE_TOO_BIG,
				    "message too big");
			buf_add(&rd->msg, p, len);
			rd->msg_open = !f.fin;
			if (f.fin) {
				rd->msg_done = 1;
				ev->data = buf_head(&rd->msg);
				ev->len = buf_avail(&rd->msg);
				return ev->event = WS_EV_MESSAGE;
			}
			break;
		case WS_BINARY:
			return fail(rd, ev, WS_CLOSE_UNSUPPORTED,
			    "binary message");
		case WS_CLOSE:
			return close_frame(rd, ev, p, len);
		case WS_PING:
			ev->data = (const char *)p;
			ev->len = len;
			return ev->event = WS_EV_PING;
		case WS_PONG:
			break;
		default:
			return fail(rd, ev, WS_CLOSE_PROTOCOL,
			    "unknown opcode");
		}
		buf_consume(&rd->in, rd->consume);
		rd->consume = 0;
	}
	buf_trim(&rd->in);
	return ev->event = WS_EV_NONE;
}
