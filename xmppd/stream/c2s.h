/*
 * Client-to-server streams (RFC 6120): the stream header and features,
 * STARTTLS, SASL, resource binding, stream errors, and handing bound
 * sessions' stanzas to the router.
 */
#ifndef XMPPD_C2S_H
#define XMPPD_C2S_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct c2s;
struct conn;
struct conn_handler;
struct session;
struct xel;

extern const struct conn_handler c2s_conn_handler;

void c2s_init(void);
/* store_set_backlog_limit()'s callback. */
void c2s_storage_congested(int congested);
/* Queue a stanza (serialized in the jabber:client namespace). */
void c2s_send(struct c2s *c, const struct xel *el);
void c2s_send_raw(struct c2s *c, const char *data, size_t len);
/* "<name to='to'" (to escaped here) and then rest, len bytes. */
void c2s_send_fanout(struct c2s *c, const char *name, const char *to,
    const char *rest, size_t len);
/* Send a stream error (RFC 6120 §4.9) with optional text, close the
 * stream and the connection. */
void c2s_stream_error(struct c2s *c, const char *condition, const char *text);
/* Close every stream with <system-shutdown/> (SIGTERM). */
void c2s_shutdown_all(void);
size_t c2s_count(void);
/*
 * Hold a bound stream while something it depends on loads (the user's
 * roster): reading pauses and stanzas already parsed are queued; release
 * replays them in order and resumes reading.  Holds nest.
 */
void c2s_hold(struct c2s *c);
void c2s_release(struct c2s *c);
/* Facts about a stream for modules.  A stream's id is its connection's;
 * pass it across asynchronous calls and look the stream up again. */
uint64_t c2s_id(const struct c2s *c);
struct c2s *c2s_find_id(uint64_t id);   /* NULL if gone */
int c2s_is_tls(const struct c2s *c);
int c2s_is_authed(const struct c2s *c);
const char *c2s_host(const struct c2s *c);   /* the stream's domain */
const char *c2s_ip(const struct c2s *c);
/* The session bound on c was unbound by the session manager. */
void c2s_forget_session(struct c2s *c);
struct conn *c2s_conn(struct c2s *c);

#endif
