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

#include "net/websocket.h"
#include "base64.h"
#include "buf.h"
#include "log.h"
#include "net/conn.h"
#include "net/http.h"
#include "xmalloc.h"

struct ws {
	struct conn *conn;
	const struct ws_upper *up;
	void *upper;
	struct ws_reader rd;
	int close_sent;
};

static size_t nws;

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

static void
on_data(struct conn *c, const char *data, size_t len)
{
	struct ws *ws = c->upper;
	struct ws_read ev;

	if (ws->close_sent || c->state != CONN_OPEN)
		return;
	ws_reader_add(&ws->rd, data, len);
	while (!ws->close_sent && c->state == CONN_OPEN &&
	    ws_reader_next(&ws->rd, &ev) != WS_EV_NONE) {
		switch (ev.event) {
		case WS_EV_MESSAGE:
			ws->up->on_message(ws->upper, ev.data, ev.len);
			break;
		case WS_EV_PING:
			send_frame(ws, WS_PONG, ev.data, ev.len);
			break;
		case WS_EV_CLOSE:
			/* §5.5.1: answered with the same code, then the
			 * connection closes. */
			log_debug("ws %" PRIu64 " %s: close frame %u from the "
			    "peer", c->id, c->addr, ev.code);
			websocket_close(ws, ev.code == WS_CLOSE_NO_STATUS ?
			    WS_CLOSE_NORMAL : (enum ws_close_code)ev.code);
			break;
		case WS_EV_FAIL:
			log_info("ws %" PRIu64 " %s: closing with %u: %s",
			    c->id, c->addr, ev.code, ev.why);
			websocket_close(ws, (enum ws_close_code)ev.code);
			break;
		case WS_EV_NONE:
			break;
		}
	}
	if (ws->close_sent || c->state != CONN_OPEN)
		ws_reader_free(&ws->rd);
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
	ws_reader_free(&ws->rd);
	free(ws);
	nws--;
}

static const struct conn_handler ws_conn_handler = {
	.on_data = on_data,
	.on_close = on_close,
	.on_timeout = on_timeout,
	.gated = 1,     /* a c2s stream: c2s_storage_congested resumes */
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
	ws_reader_init(&ws->rd, rules->max_message);
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
