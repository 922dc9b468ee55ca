/*
 * Named hook chains that modules and the control plane attach to
 * (ARCHITECTURE.md: "a few named hook chains").  A filter returns
 * HOOK_HANDLED to stop the chain (the stanza was consumed, answered or
 * dropped) or HOOK_PASS to let the next one and then the default run.
 * Stanza arguments belong to the caller; copy what you keep.
 *
 * Everything registered (hooks here, IQ handlers in iq.h, disco entries in
 * disco.h) belongs to an owner: the module being initialised (modules.c
 * sets its index in the module table around the init call), or
 * HOOK_OWNER_CORE for code that hooks in at start-up (the control plane).
 * Chains run in owner order (the module table's, the core last), then in
 * registration order, whatever order modules were (re)initialised in; a
 * module switched off by a reload loses what it registered with
 * hook_remove_owner (modules_reload).
 */
#ifndef XMPPD_HOOKS_H
#define XMPPD_HOOKS_H

#include <limits.h>
#include <stddef.h>

struct jid;
struct session;
struct transport;
struct xel;

enum hook_result { HOOK_PASS, HOOK_HANDLED };

#define HOOK_OWNER_CORE UINT_MAX
/* The owner of what is registered from now on (HOOK_OWNER_CORE at
 * start). */
void hook_set_owner(unsigned owner);
unsigned hook_owner(void);
/* Remove every hook of owner from every chain. */
void hook_remove_owner(unsigned owner);

enum hook_session {
	HOOK_SESSION_BOUND,     /* a resource was bound */
	HOOK_SESSION_END,       /* about to be unbound (still routable) */
	HOOK_SESSION_INITIAL,   /* sent its initial available presence
	                           (RFC 6121 §4.2): deliver offline data */
	HOOK_SESSION__COUNT
};
typedef void (*hook_session_fn)(struct session *s);
void hook_add_session(enum hook_session which, hook_session_fn fn);
void hook_run_session(enum hook_session which, struct session *s);

/*
 * A stanza from a local session, 'from' already stamped, before routing.
 * to is the parsed 'to' (NULL when absent).  E.g. XEP-0191 refuses
 * messages to a blocked JID here.
 */
typedef enum hook_result (*hook_outbound_fn)(struct session *from,
    struct xel *st, const struct jid *to);
void hook_add_outbound(hook_outbound_fn fn);
enum hook_result hook_run_outbound(struct session *from, struct xel *st,
    const struct jid *to);

/*
 * An IQ result or error from an entity that is no local session (a
 * component, another server's user or server) to the server or to a
 * local bare JID: an answer to a query the server sent for itself or on
 * an account's behalf (a push notification).  HOOK_HANDLED consumes it;
 * unclaimed answers are dropped (RFC 6120 §8.2.3).  (Local sessions'
 * answers pass through hook_outbound.)
 */
typedef enum hook_result (*hook_iq_answer_fn)(struct xel *iq,
    const struct jid *from, const struct jid *to);
void hook_add_iq_answer(hook_iq_answer_fn fn);
enum hook_result hook_run_iq_answer(struct xel *iq, const struct jid *from,
    const struct jid *to);

/*
 * A stanza about to be delivered to a local session (any kind, including
 * presence broadcasts).  from is the stanza's 'from' parsed.  HOOK_HANDLED
 * drops it (XEP-0191: either side blocked the other).
 */
typedef enum hook_result (*hook_deliver_fn)(struct session *to,
    struct xel *st, const struct jid *from);
void hook_add_deliver(hook_deliver_fn fn);
enum hook_result hook_run_deliver(struct session *to, struct xel *st,
    const struct jid *from);

/*
 * A message of type normal/chat (or none) to a local user with no
 * available resource of non-negative priority (RFC 6121 §8.5.2.2.1).
 * from is the sending session, or NULL for a stanza the server generated.
 * HOOK_HANDLED means it was stored (XEP-0160) or answered.
 */
typedef enum hook_result (*hook_offline_fn)(struct session *from,
    struct xel *msg, const struct jid *to);
void hook_add_offline(hook_offline_fn fn);
enum hook_result hook_run_offline(struct session *from, struct xel *msg,
    const struct jid *to);

/*
 * Messages (for XEP-0313 archiving, XEP-0359 ids, XEP-0280 carbons).
 *
 * message_out: a message a local session sends, after the outbound
 * filters and before it is routed; to is its parsed 'to' (the sender's own
 * bare JID when it had none).  Handlers may add children to msg (they
 * travel with it).  Return HOOK_HANDLED to stop it from being routed.
 *
 * message_in: a message about to reach a local user (to: that user's bare
 * or full JID), once per message and user, before delivery to resources
 * or offline storage; from_session is the local sender or NULL.  Handlers
 * may rewrite msg (add <stanza-id/>, strip forged elements); HOOK_HANDLED
 * drops it.
 *
 * message_delivered: after a message_in message went to the sessions
 * listed (none when it was stored offline or bounced).
 */
typedef enum hook_result (*hook_message_out_fn)(struct session *from,
    struct xel *msg, const struct jid *to);
void hook_add_message_out(hook_message_out_fn fn);
enum hook_result hook_run_message_out(struct session *from, struct xel *msg,
    const struct jid *to);
typedef enum hook_result (*hook_message_in_fn)(struct session *from_session,
    struct xel *msg, const struct jid *to);
void hook_add_message_in(hook_message_in_fn fn);
enum hook_result hook_run_message_in(struct session *from_session,
    struct xel *msg, const struct jid *to);
typedef void (*hook_message_delivered_fn)(struct xel *msg,
    const struct jid *to, struct session **sessions, size_t n);
void hook_add_message_delivered(hook_message_delivered_fn fn);
void hook_run_message_delivered(struct xel *msg, const struct jid *to,
    struct session **sessions, size_t n);

/*
 * An account was deleted (after its rows are gone): drop caches.
 */
typedef void (*hook_user_fn)(const char *user, const char *host);
void hook_add_user_deleted(hook_user_fn fn);
void hook_run_user_deleted(const char *user, const char *host);

/*
 * Stream features for a client stream: authed says which stage (0 before
 * SASL success, 1 after).  Add children to features.
 */
typedef void (*hook_features_fn)(struct transport *t, struct xel *features,
    int authed);
void hook_add_features(hook_features_fn fn);
void hook_run_features(struct transport *t, struct xel *features,
    int authed);

/*
 * An IQ received before authentication (XEP-0077 registration).  Return
 * HOOK_HANDLED when answered (transport_reply); otherwise the stream ends
 * with <not-authorized/>.
 */
typedef enum hook_result (*hook_preauth_iq_fn)(struct transport *t,
    struct xel *iq);
void hook_add_preauth_iq(hook_preauth_iq_fn fn);
enum hook_result hook_run_preauth_iq(struct transport *t, struct xel *iq);

/*
 * An outgoing presence of a local session (available or unavailable)
 * before it is broadcast: modules add their extensions (XEP-0153 photo
 * hash).  The element is the server's own copy.
 */
typedef void (*hook_presence_fn)(struct session *s, struct xel *presence);
void hook_add_presence_out(hook_presence_fn fn);
void hook_run_presence_out(struct session *s, struct xel *presence);

/*
 * A local session's broadcast presence changed (after it went out): pres
 * is the available presence now kept, or the unavailable one (NULL at
 * session end).  For observers (the control plane's presence event).
 */
typedef void (*hook_presence_changed_fn)(struct session *s,
    const struct xel *pres, int available);
void hook_add_presence_changed(hook_presence_changed_fn fn);
void hook_run_presence_changed(struct session *s, const struct xel *pres,
    int available);

/*
 * A client failed to authenticate with wrong credentials: jid is the
 * account tried as the log shows it (stream/sasl.c's log_name at the
 * stream's domain: one word, no control characters, bounded), ip the
 * client's address, mechanism the SASL mechanism and condition the
 * failure's (RFC 6120 §6.5).  For observers (the control plane's
 * counters and events); the strings are the caller's.
 */
typedef void (*hook_auth_failure_fn)(const char *jid, const char *ip,
    const char *mechanism, const char *condition);
void hook_add_auth_failure(hook_auth_failure_fn fn);
void hook_run_auth_failure(const char *jid, const char *ip,
    const char *mechanism, const char *condition);

/*
 * Messages were added to (delta > 0) or removed from (delta < 0) the
 * offline store (XEP-0160).  For observers (the control plane's count).
 */
typedef void (*hook_offline_changed_fn)(long long delta);
void hook_add_offline_changed(hook_offline_changed_fn fn);
void hook_run_offline_changed(long long delta);

/*
 * XEP-0386 Bind 2 (§3.1, §3.2): features a module lets a client enable
 * inline, in the same request as SASL2 authentication and binding.
 * features adds a <feature var/> to the <inline/> of the <bind/> stream
 * feature for each such feature of the module (a module that is off
 * registers nothing, so it advertises nothing).  fn gets each child of
 * the client's <bind/> with the new session (bound, not yet announced to
 * the client): HOOK_HANDLED if it was the module's, after enabling it
 * and adding any answer to bound (the <bound/> of the SASL2 success).
 */
typedef void (*hook_bind2_features_fn)(struct xel *inline_features);
typedef enum hook_result (*hook_bind2_fn)(struct session *s,
    const struct xel *req, struct xel *bound);
void hook_add_bind2(hook_bind2_features_fn features, hook_bind2_fn fn);
void hook_run_bind2_features(struct xel *inline_features);
enum hook_result hook_run_bind2(struct session *s, const struct xel *req,
    struct xel *bound);

/*
 * XEP-0115: the capabilities of a local session became known or changed
 * (s->caps, set by mod_caps.c once a 'ver' is verified; old is what it
 * was, NULL the first time).  For PEP's "interest appears" (XEP-0163
 * §4.3.4).
 */
struct caps;
typedef void (*hook_caps_fn)(struct session *s, const struct caps *old);
void hook_add_caps_changed(hook_caps_fn fn);
void hook_run_caps_changed(struct session *s, const struct caps *old);
/*
 * XEP-0163: an item of user@host's PEP node was published (payload: the
 * item's payload element) or retracted (payload NULL), or the node was
 * purged or deleted (id NULL, payload NULL), after the change is stored.
 * by_server is set when a module published it on the user's behalf
 * (mod_pep.h pep_server_publish), so that conversions do not loop.
 */
typedef void (*hook_pep_fn)(const char *user, const char *host,
    const char *node, const char *id, const struct xel *payload,
    int by_server);
void hook_add_pep_event(hook_pep_fn fn);
void hook_run_pep_event(const char *user, const char *host, const char *node,
    const char *id, const struct xel *payload, int by_server);
/*
 * user@host approved contact's subscription to its presence (RFC 6121
 * §3.1.5; contact: a bare JID), after the roster change and the
 * presence sent to the contact.  PEP's "interest appears".
 */
typedef void (*hook_subscribed_fn)(const char *user, const char *host,
    const char *contact);
void hook_add_subscribed(hook_subscribed_fn fn);
void hook_run_subscribed(const char *user, const char *host,
    const char *contact);
/*
 * An administrator changed what a module keeps for user@host behind its
 * back (the control socket's "pep delete": kind "pep", what the node):
 * the module drops what it caches and tells the user's clients.
 */
typedef void (*hook_admin_change_fn)(const char *kind, const char *user,
    const char *host, const char *what);
void hook_add_admin_change(hook_admin_change_fn fn);
void hook_run_admin_change(const char *kind, const char *user,
    const char *host, const char *what);
/*
 * Presence from another server's entity (or a component's) to a local
 * user (to: the user's bare or full JID): available (no type),
 * unavailable or error, before it is delivered.  For observers that
 * keep which remote resources are available to a user (mod_caps.c,
 * XEP-0115 of remote contacts for PEP, XEP-0163 §4).  The stanza is the
 * caller's.
 */
typedef void (*hook_remote_presence_fn)(const struct jid *to,
    const struct jid *from, const struct xel *pres);
void hook_add_remote_presence(hook_remote_presence_fn fn);
void hook_run_remote_presence(const struct jid *to, const struct jid *from,
    const struct xel *pres);
/*
 * XEP-0115: the verified capabilities of contact (a full JID on another
 * server, available to user@host) became known or changed (old NULL the
 * first time; now NULL never: the contact leaving is not told).  Like
 * hook_caps_changed for local sessions; the strings are the caller's.
 */
typedef void (*hook_remote_caps_fn)(const char *user, const char *host,
    const char *contact, const struct caps *now, const struct caps *old);
void hook_add_remote_caps_changed(hook_remote_caps_fn fn);
void hook_run_remote_caps_changed(const char *user, const char *host,
    const char *contact, const struct caps *now, const struct caps *old);
/*
 * The daemon is stopping (SIGTERM, xmppctl stop): run before the client
 * streams are closed, while every session can still be told (XEP-0045
 * status 332).
 */
typedef void (*hook_shutdown_fn)(void);
void hook_add_shutdown(hook_shutdown_fn fn);
void hook_run_shutdown(void);
#endif
