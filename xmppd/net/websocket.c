/*
 * WebSocket (RFC 6455), server side: the opening handshake on an HTTP
 * Upgrade request, then a conn handler that reads masked client frames,
 * joins fragments into messages for the layer above and writes unmasked
 * frames.  Text only: the XMPP subprotocol (RFC 7395 §3.3.3) has no use
 * for binary messages.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "net/websocket.h"
#include "base64.h"
#include "buf.h"
#include "log.h"
#include "net/conn.h"
#include "net/http.h"
#include "xmalloc.h"

/* RFC 6455 §1.3. */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_CONTROL_MAX 125      /* §5.5: control frame payload */

struct ws {
	struct conn *conn;
	const struct ws_upper *up;
	void *upper;
	struct buf in;              /* bytes not yet a whole frame */
	struct buf msg;             /* the fragments of a message so far */
	int msg_open;               /* a fragmented text message is open */
	size_t max_message;
	int close_sent;
	int in_data;                /* inside on_data */
};

static size_t nws;

/*
 * The pure codec.
 */

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

/*
 * The connection.
 */

static void
send_frame(struct ws *ws, enum ws_opcode op, const void *data, size_t len)
{
	unsigned char hdr[10];
	size_t hl = ws_frame_header(hdr, op, len);

	conn_write(ws->conn, hdr, hl);
	if (len > 0)
		conn_write(ws->conn, data, len);
}

void
websocket_send(struct ws *ws, const char *data, size_t len)
{
	if (ws->close_sent)
		return;
	send_frame(ws, WS_TEXT, data, len);
}

void
websocket_close(struct ws *ws, enum ws_close_code code)
{
	unsigned char p[2] = {(unsigned char)(code >> 8),
	    (unsigned char)code};

	if (ws->close_sent)
		return;
	send_frame(ws, WS_CLOSE, p, sizeof(p));
	ws->close_sent = 1;
	conn_close(ws->conn);
}

struct conn *
websocket_conn(const struct ws *ws)
{
	return ws->conn;
}

size_t
websocket_count(void)
{
	return nws;
}

/* A breach of the protocol by the peer: log it and close with code. */
static void
fail(struct ws *ws, enum ws_close_code code, const char *why)
{
	log_info("ws %" PRIu64 " %s: closing with %d: %s", ws->conn->id,
	    ws->conn->addr, (int)code, why);
	websocket_close(ws, code);
}

/* A close frame from the peer (§5.5.1): answered with its code, then the
 * connection closes. */
static void
peer_close(struct ws *ws, const unsigned char *p, size_t len)
{
	unsigned code = WS_CLOSE_NORMAL;

	if (len == 1) {
		fail(ws, WS_CLOSE_PROTOCOL, "close frame of one byte");
		return;
	}
	if (len >= 2)
		code = (unsigned)p[0] << 8 | p[1];
	log_debug("ws %" PRIu64 " %s: close frame %u from the peer",
	    ws->conn->id, ws->conn->addr, code);
	/* §7.4.1: 1005, 1006 and 1015 are never sent in a frame. */
	if (code < 1000 || code == 1005 || code == 1006 || code == 1015 ||
	    code >= 5000) {
		fail(ws, WS_CLOSE_PROTOCOL, "invalid close code");
		return;
	}
	websocket_close(ws, code < 3000 && code != 1004 && code <= 1014 ?
	    (enum ws_close_code)code : WS_CLOSE_NORMAL);
}

/* One whole frame (payload unmasked); 0 to go on, -1 once closing. */
static int
frame(struct ws *ws, const struct ws_frame *f, unsigned char *p)
{
	size_t len = (size_t)f->len;

	switch (f->opcode) {
	case WS_TEXT:
	case WS_CONTINUATION:
		if ((f->opcode == WS_TEXT) == ws->msg_open) {
			fail(ws, WS_CLOSE_PROTOCOL, ws->msg_open ?
			    "a new message inside a fragmented one" :
			    "continuation without a message");
			return -1;
		}
		if (f->fin && !ws->msg_open) {
			ws->up->on_message(ws->upper, (const char *)p, len);
			break;
		}
		if (buf_avail(&ws->msg) + len > ws->max_message) {
			fail(ws, WS_CLOSE_TOO_BIG, "message too big");
			return -1;
		}
		buf_add(&ws->msg, p, len);
		ws->msg_open = !f->fin;
		if (f->fin) {
			ws->up->on_message(ws->upper, buf_head(&ws->msg),
			    buf_avail(&ws->msg));
			buf_free(&ws->msg);
		}
		break;
	case WS_BINARY:
		fail(ws, WS_CLOSE_UNSUPPORTED, "binary message");
		return -1;
	case WS_CLOSE:
		peer_close(ws, p, len);
		return -1;
	case WS_PING:
		send_frame(ws, WS_PONG, p, len);
		break;
	case WS_PONG:
		break;
	default:
		fail(ws, WS_CLOSE_PROTOCOL, "unknown opcode");
		return -1;
	}
	return ws->conn->state == CONN_OPEN ? 0 : -1;
}

static void
on_data(struct conn *c, const char *data, size_t len)
{
	struct ws *ws = c->upper;

	if (ws->close_sent || c->state != CONN_OPEN)
		return;
	buf_add(&ws->in, data, len);
	ws->in_data = 1;
	while (buf_avail(&ws->in) > 0) {
		unsigned char *p = (unsigned char *)ws->in.data + ws->in.off;
		struct ws_frame f;
		int r = ws_frame_parse(p, buf_avail(&ws->in), &f);

		if (r < 0) {
			fail(ws, WS_CLOSE_PROTOCOL, "malformed frame header");
			break;
		}
		if (r == 0)
			break;
		if (!f.masked) {
			/* §5.1: a server MUST close on an unmasked frame. */
			fail(ws, WS_CLOSE_PROTOCOL, "unmasked frame");
			break;
		}
		if (f.len > ws->max_message) {
			fail(ws, WS_CLOSE_TOO_BIG, "frame too big");
			break;
		}
		if (buf_avail(&ws->in) - f.header_len < f.len)
			break;
		ws_unmask(p + f.header_len, (size_t)f.len, f.mask, 0);
		if (frame(ws, &f, p + f.header_len) < 0)
			break;
		buf_consume(&ws->in, f.header_len + (size_t)f.len);
	}
	ws->in_data = 0;
	if (ws->close_sent || c->state != CONN_OPEN)
		buf_free(&ws->in);
	else
		buf_trim(&ws->in);
}

static void
on_timeout(struct conn *c, const char *reason)
{
	struct ws *ws = c->upper;

	if (ws->up->on_timeout != NULL)
		ws->up->on_timeout(ws->upper, reason);
	else
		websocket_close(ws, WS_CLOSE_GOING_AWAY);
}

static void
on_close(struct conn *c)
{
	struct ws *ws = c->upper;

	ws->up->on_close(ws->upper);
	buf_free(&ws->in);
	buf_free(&ws->msg);
	free(ws);
	nws--;
}

static const struct conn_handler ws_conn_handler = {
	.on_data = on_data,
	.on_close = on_close,
	.on_timeout = on_timeout,
};

/*
 * The opening handshake (RFC 6455 §4.2.1, §4.2.2).
 */

/* Sec-WebSocket-Key: base64 of 16 bytes (§4.1, item 7). */
static int
key_valid(const char *key)
{
	unsigned char raw[32];
	size_t n = strlen(key);

	return n == 24 && base64_decode(key, n, raw) == 16;
}

static int
origin_allowed(const struct ws_accept_rules *rules, const char *origin)
{
	if (rules->norigins == 0)
		return 1;
	if (origin == NULL)
		return 0;
	for (size_t i = 0; i < rules->norigins; i++)
		if (strcasecmp(rules->origins[i], origin) == 0)
			return 1;
	return 0;
}

int
websocket_upgrade(struct http_request *r,
    const struct ws_accept_rules *rules, const struct ws_upper *up,
    void *(*create)(struct ws *ws, struct conn *c, struct http_request *r,
        void *arg),
    void *arg)
{
	const char *upgrade = http_header(r, "Upgrade");
	const char *version = http_header(r, "Sec-WebSocket-Version");
	const char *key = http_header(r, "Sec-WebSocket-Key");
	const char *proto = http_header(r, "Sec-WebSocket-Protocol");
	struct conn *c = http_request_conn(r);
	char accept[29];
	struct ws *ws;

	if (r->method_bit != HTTP_M_GET || !r->upgrade || upgrade == NULL ||
	    !ws_list_has(upgrade, "websocket", 1)) {
		/* RFC 9110 §15.5.22: say what would be understood. */
		http_add_header(r, "Upgrade", "websocket");
		http_respond_status(r, 426);
		return -1;
	}
	if (version == NULL || strcmp(version, "13") != 0) {
		/* RFC 6455 §4.4. */
		http_add_header(r, "Sec-WebSocket-Version", "13");
		http_respond_status(r, 426);
		return -1;
	}
	if (key == NULL || !key_valid(key)) {
		http_respond_status(r, 400);
		return -1;
	}
	if (proto == NULL || !ws_list_has(proto, rules->protocol, 0)) {
		log_info("ws %" PRIu64 " %s: refused: subprotocol %s not "
		    "offered", r->conn_id, r->peer_addr, rules->protocol);
		http_respond_status(r, 400);
		return -1;
	}
	if (!origin_allowed(rules, http_header(r, "Origin"))) {
		log_info("ws %" PRIu64 " %s: refused: origin not allowed",
		    r->conn_id, r->peer_addr);
		http_respond_status(r, 403);
		return -1;
	}
	ws = xcalloc(1, sizeof(*ws));
	ws->conn = c;
	ws->up = up;
	ws->max_message = rules->max_message;
	if ((ws->upper = create(ws, c, r, arg)) == NULL) {
		free(ws);
		return -1;
	}
	nws++;
	ws_accept_key(key, accept);
	http_add_header(r, "Upgrade", "websocket");
	http_add_header(r, "Sec-WebSocket-Accept", accept);
	http_add_header(r, "Sec-WebSocket-Protocol", rules->protocol);
	/* The upper layer arms its own deadlines; HTTP's idle one ends. */
	conn_set_idle(c, 0);
	http_upgrade(r, &ws_conn_handler, ws);
	if (up->on_open != NULL)
		up->on_open(ws->upper);
	return 0;
}
