/*
 * libFuzzer target for the WebSocket reader (xmppd/net/websocket_frame.c):
 * the input is a client's bytes, fed in pieces whose size the first byte
 * picks, as a connection's reads would come.  Every event must keep the
 * reader's promises: messages and pings within their limits, close and
 * failure codes among those RFC 6455 allows, nothing after either.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/websocket.h"

#define MAX_MESSAGE 4096

static void
check(const struct ws_read *ev, int *ended)
{
	switch (ev->event) {
	case WS_EV_MESSAGE:
		if (*ended || ev->len > MAX_MESSAGE ||
		    (ev->len > 0 && ev->data == NULL))
			abort();
		break;
	case WS_EV_PING:
		if (*ended || ev->len > 125)
			abort();
		break;
	case WS_EV_CLOSE:
		if (*ended || (ev->code != WS_CLOSE_NO_STATUS &&
			(ev->code < 1000 || ev->code >= 5000)))
			abort();
		*ended = 1;
		break;
	case WS_EV_FAIL:
		if (*ended || (ev->code != WS_CLOSE_PROTOCOL &&
			ev->code != WS_CLOSE_UNSUPPORTED &&
			ev->code != WS_CLOSE_TOO_BIG) || ev->why == NULL)
			abort();
		*ended = 1;
		break;
	case WS_EV_NONE:
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_reader rd;
	struct ws_read ev;
	size_t piece, off = 1;
	int ended = 0;

	if (size == 0)
		return 0;
	piece = data[0] ? data[0] : size;
	ws_reader_init(&rd, MAX_MESSAGE);
	while (off < size) {
		size_t n = size - off < piece ? size - off : piece;

		ws_reader_add(&rd, data + off, n);
		off += n;
		while (ws_reader_next(&rd, &ev) != WS_EV_NONE)
			check(&ev, &ended);
	}
	ws_reader_free(&rd);
	return 0;
}
