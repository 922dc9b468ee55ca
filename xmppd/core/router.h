/*
 * The router: stamps 'from' on what a client sends, classifies 'to' (the
 * server, a local bare JID, a local full JID, a remote domain) and delivers
 * per RFC 6121 §8.5.
 */
#ifndef XMPPD_ROUTER_H
#define XMPPD_ROUTER_H

struct session;
struct xel;

/* A stanza from a bound session.  The caller keeps st's arena.  Returns 0,
 * or -1 when the stanza is not a stanza at all (the caller answers with
 * <unsupported-stanza-type/>). */
int router_from_client(struct session *from, struct xel *st);
/* Deliver st to a local session through the delivery filters
 * (hook_run_deliver). */
void router_deliver(struct session *to, struct xel *st);
/* Route a stanza the server generated ('from' and 'to' set) to a local
 * user per RFC 6121 §8.5 (from_session NULL); remote domains are dropped
 * until server-to-server exists. */
void router_route(struct xel *st);
/*
 * A message that reached a session whose client never acknowledged it
 * (XEP-0198), delivered again to the bare JID user@host by RFC 6121
 * §8.5.2: the user's available resources, else offline storage, else an
 * error to its sender.  The message hooks do not run again (it is
 * archived already and keeps its stanza-id, by which clients tell a copy
 * they have).
 */
void router_redeliver(struct xel *msg, const char *user, const char *host);
/* An error reply for st to its sender, if that is a local session. */
void router_bounce_to_sender(const struct xel *st, const char *condition);
/* Send an error reply for st back to the session that sent it. */
void router_bounce(struct session *from, const struct xel *st,
    const char *condition);

#endif
