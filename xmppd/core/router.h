/*
 * The router: stamps 'from' on what a client sends, classifies 'to' (the
 * server, a local bare JID, a local full JID, a remote domain) and delivers
 * per RFC 6121 §8.5.
 */
#ifndef XMPPD_ROUTER_H
#define XMPPD_ROUTER_H

struct jid;
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
/* An error reply for st to its sender, wherever that is (a local user, a
 * service, a remote domain); none for an error (RFC 6120 §8.3.1) nor for
 * presence, except to a service of ours (not a component), which gets
 * presence errors too: a conference service learns that an occupant is
 * out of reach.  What the server sent from an account's bare JID or a
 * host (no session) gets it as the remote entity's own error: the
 * message hooks, or hook_iq_answer. */
void router_bounce_remote(const struct xel *st, const char *condition);

/*
 * Server-to-server.  The remote sender takes a stanza whose 'to' is on
 * no domain of ours (its domain is remote); set by stream/s2s.c, NULL:
 * remote domains are unreachable (<remote-server-not-found/>).
 */
typedef void (*router_remote_fn)(struct xel *st, const char *domain);
void router_set_remote(router_remote_fn fn);
/* A stanza from a remote server, 'from' authenticated by the stream and
 * 'to' (parsed by the stream, which checked its domain) on a domain of
 * ours, requalified to jabber:client. */
void router_from_remote(struct xel *st, const struct jid *to);
/* Whether domain is a service domain (router_add_service). */
int router_is_service(const char *domain);
/* The host a service domain belongs to (whose certificate it shows to
 * other servers), or NULL if domain is no service. */
const char *router_service_host(const char *domain);
/* Send an error reply for st back to the session that sent it. */
void router_bounce(struct session *from, const struct xel *st,
    const char *condition);

/*
 * Service domains hosted by modules (XEP-0045 conference services; later
 * components): every stanza whose 'to' domain is a registered service
 * reaches its handler instead of the "remote domain" path, whatever its
 * node and resource (service@, room@service, room@service/nick).  from
 * is the local session that sent st ('from' stamped), or NULL when the
 * server generated it; to is st's 'to' parsed.  st and to belong to the
 * caller.  A service belongs to the owner registering it (hook_owner(),
 * hooks.h) and to the host it serves (listed in that host's
 * disco#items).
 */
typedef void (*router_service_fn)(struct session *from, struct xel *st,
    const struct jid *to);
/* -1 if domain is a host or a service already. */
int router_add_service(const char *domain, const char *host,
    router_service_fn fn);
void router_remove_service(const char *domain);
/*
 * A component's domain (XEP-0114): a service that also takes every
 * subdomain of domain, that is listed in disco#items only while
 * router_service_set_listed says so (connected), and to which the error
 * replies to what it sent are routed (router_bounce with no session).
 * -1 as router_add_service.
 */
int router_add_component(const char *domain, const char *host,
    router_service_fn fn);
void router_service_set_listed(const char *domain, int listed);
/* Whether domain is a component's (its own or a subdomain). */
int router_is_component(const char *domain);
/*
 * A stanza from a component, whose 'from' the stream checked (a JID of
 * its domain or a subdomain) and whose 'to' is set: delivered as one
 * from any entity that is not a local session (RFC 6121 §8.5 for local
 * users, presence through presence.c, services), errors back to the
 * component.  The caller keeps st's arena.  Returns 0, or -1 when st is
 * not a stanza (the caller answers <unsupported-stanza-type/>).
 */
int router_from_component(struct xel *st);
/* Remove every service of owner (a module switched off). */
void router_remove_services_of(unsigned owner);
/* Call fn for each service of host (a prepared domain), in registration
 * order. */
void router_foreach_service(const char *host,
    void (*fn)(const char *domain, void *arg), void *arg);

#endif
