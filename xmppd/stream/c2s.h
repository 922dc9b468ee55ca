/*
 * Client-to-server streams (RFC 6120): the stream header and features,
 * STARTTLS, SASL, resource binding, stream errors, and handing bound
 * sessions' stanzas to the router.  The core reaches a stream only as a
 * struct transport (core/transport.h); this header is for start-up.
 */
#ifndef XMPPD_C2S_H
#define XMPPD_C2S_H

#include <stddef.h>

struct conf;
struct conn_handler;

extern const struct conn_handler c2s_conn_handler;

void c2s_init(void);
/* store_set_backlog_limit()'s callback. */
void c2s_storage_congested(int congested);
/* Close every stream with <system-shutdown/> (SIGTERM). */
void c2s_shutdown_all(void);
size_t c2s_count(void);
/* Start-up and reload: route GET /xmpp-websocket (RFC 7395) to c2s
 * streams over WebSocket while "websocket on". */
void c2s_websocket_set_conf(const struct conf *conf);

struct conn;
/* A BOSH session's stream on the virtual connection conn (whose handler
 * is c2s_conn_handler): sets conn->upper; NULL if the client's network
 * is banned.  The carrier feeds <open/> (RFC 7395 framing) to start and
 * restart the stream, then the elements of each body. */
void *c2s_bosh_attach(struct conn *conn, const char *client_ip, int tls);

#endif
