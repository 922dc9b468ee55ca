/*
 * WebSocket (RFC 6455) on conn, server side: the opening handshake
 * checked on an HTTP Upgrade request, then frames in and out.  The layer
 * above sees whole text messages; fragments are joined here, pings are
 * answered here, and every breach of the framing rules ends the
 * connection with its close code.  The pure frame codec below is what
 * tests/fuzz/fuzz_websocket.c and tests/unit/test_websocket.c drive.
 */
#ifndef XMPPD_WEBSOCKET_H
#define XMPPD_WEBSOCKET_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Where XMPP over WebSocket (RFC 7395) is served: stream/c2s.c routes
 * it, net/hostmeta.c announces it. */
#define WS_XMPP_PATH "/xmpp-websocket"

struct conn;
struct http_request;
struct ws;

/* RFC 6455 §5.2 opcodes. */
enum ws_opcode {
	WS_CONTINUATION = 0x0,
	WS_TEXT = 0x1,
	WS_BINARY = 0x2,
	WS_CLOSE = 0x8,
	WS_PING = 0x9,
	WS_PONG = 0xA,
};

/* RFC 6455 §7.4.1 close codes. */
enum ws_close_code {
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_GOING_AWAY = 1001,
	WS_CLOSE_PROTOCOL = 1002,       /* a framing error */
	WS_CLOSE_UNSUPPORTED = 1003,    /* a data type not taken (binary) */
	WS_CLOSE_NO_STATUS = 1005,      /* a close frame without a code (never
	                                   sent) */
	WS_CLOSE_TOO_BIG = 1009,        /* a frame or message over the limit */
};

/* A frame header as read (RFC 6455 §5.2). */
struct ws_frame {
	int fin;
	int opcode;                     /* enum ws_opcode, or unknown */
	int masked;
	unsigned char mask[4];
	uint64_t len;                   /* payload bytes */
	size_t header_len;              /* bytes before the payload */
};

/*
 * Read the frame header at p (n bytes available): header_len if it is
 * all there, 0 if more bytes are needed, -1 if it breaks RFC 6455 §5.2
 * (reserved bits set with no extension negotiated, a 64-bit length with
 * its top bit set, a length not in its shortest form, a control frame
 * fragmented or longer than 125 bytes).  Opcodes are not judged here.
 */
int ws_frame_parse(const unsigned char *p, size_t n, struct ws_frame *f);
/* Unmask len payload bytes in place; offset is the payload position of
 * p[0] (the mask repeats every 4 bytes). */
void ws_unmask(unsigned char *p, size_t len, const unsigned char mask[4],
    uint64_t offset);
/* Write the header of an unmasked server frame (fin set) into out, at
 * least 10 bytes; returns its length. */
size_t ws_frame_header(unsigned char *out, enum ws_opcode op, uint64_t len);
/* RFC 6455 §4.2.2: Sec-WebSocket-Accept for a client's key: base64 of
 * SHA-1 over the key and the protocol's GUID; out has 29 bytes. */
void ws_accept_key(const char *key, char out[29]);
/* Whether a comma-separated header value lists token (RFC 9110 §5.6.1),
 * compared case-insensitively when nocase, else exactly. */
int ws_list_has(const char *value, const char *token, int nocase);

/*
 * What a client sends, read frame by frame (ws_reader_add the bytes,
 * then ws_reader_next until WS_EV_NONE): whole text messages with their
 * fragments joined, pings, the close frame, or the first breach of RFC
 * 6455 with the close code it calls for (unmasked frame, bad header,
 * unknown opcode, stray continuation: 1002; binary: 1003; a frame or
 * message over max_message: 1009).  After a close or a failure nothing
 * more is read.
 */
enum ws_event {
	WS_EV_NONE,             /* more bytes needed (or nothing more read) */
	WS_EV_MESSAGE,          /* data, len: a text message */
	WS_EV_PING,             /* data, len: to be echoed in a pong */
	WS_EV_CLOSE,            /* code: the peer's (WS_CLOSE_NO_STATUS) */
	WS_EV_FAIL,             /* code, why: close the connection so */
};

struct ws_read {
	enum ws_event event;
	const char *data;       /* valid until the next ws_reader_next */
	size_t len;
	unsigned code;
	const char *why;
};

struct ws_reader {
	struct buf in;          /* bytes not yet consumed */
	struct buf msg;         /* the fragments of a message so far */
	size_t max_message;
	size_t consume;         /* the frame returned last, consumed at the
	                           next call */
	unsigned msg_open : 1;  /* a fragmented message is open */
	unsigned msg_done : 1;  /* msg was returned: emptied next call */
	unsigned closed : 1, failed : 1;
};

void ws_reader_init(struct ws_reader *rd, size_t max_message);
void ws_reader_free(struct ws_reader *rd);
void ws_reader_add(struct ws_reader *rd, const void *data, size_t len);
enum ws_event ws_reader_next(struct ws_reader *rd, struct ws_read *ev);

/* The layer above one WebSocket connection.  upper is what create
 * returned. */
struct ws_upper {
	/* The 101 is queued and the connection is the WebSocket layer's:
	 * arm deadlines here (HTTP's are cleared by the upgrade). */
	void (*on_open)(void *upper);
	/* A complete text message (fragments joined, unmasked).  It may
	 * call websocket_send and websocket_close. */
	void (*on_message)(void *upper, const char *data, size_t len);
	/* The conn deadline passed (conn_set_timeout on websocket_conn). */
	void (*on_timeout)(void *upper, const char *reason);
	/* The connection is gone (from conn's before-sleep hook); the
	 * upper layer frees its state.  The ws is freed after this. */
	void (*on_close)(void *upper);
};

/* What websocket_upgrade requires of a handshake. */
struct ws_accept_rules {
	const char *protocol;           /* the subprotocol the client must
	                                   offer ("xmpp") */
	char *const *origins;           /* if norigins: Origin must be one */
	size_t norigins;
	size_t max_message;             /* bytes of one message (1009) */
};

/*
 * In the handler of a GET request: check the opening handshake (RFC
 * 6455 §4.2.1) against rules; if it is one, create the upper layer
 * (create gets the ws and its conn and returns upper, or NULL to refuse:
 * it then answers r itself with an error status and returns NULL), send
 * "101 Switching Protocols" and hand the connection to the WebSocket
 * layer.  Otherwise r is answered with 400 (not a WebSocket handshake,
 * or the subprotocol missing), 426 (not an Upgrade, or another version)
 * or 403 (an Origin not allowed).  Returns 0 if upgraded, -1 if not.
 */
int websocket_upgrade(struct http_request *r,
    const struct ws_accept_rules *rules, const struct ws_upper *up,
    void *(*create)(struct ws *ws, struct conn *c,
        struct http_request *r, void *arg),
    void *arg);

/* Queue one text message (one unfragmented frame).  Nothing is sent
 * once a close frame went out. */
void websocket_send(struct ws *ws, const char *data, size_t len);
/* Send a close frame with code (and no reason text), then close the
 * connection once the output is flushed (conn_close). */
void websocket_close(struct ws *ws, enum ws_close_code code);
struct conn *websocket_conn(const struct ws *ws);

/* WebSocket connections open (for stats). */
size_t websocket_count(void);

#endif
