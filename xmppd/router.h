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

#endif
