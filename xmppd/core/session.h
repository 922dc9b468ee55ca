/*
 * A bound client session: the identity and state that routing needs, and
 * the session API through which the core and the modules reach a client.
 * A session is not its transport (struct transport, transport.h): the
 * session forwards to whatever carries it, a c2s stream today, later a
 * WebSocket or a BOSH session, or nothing while it waits to be resumed
 * (XEP-0198), when sends are queued and an end is recorded.
 */
#ifndef XMPPD_SESSION_H
#define XMPPD_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "jid.h"

struct transport;
struct xel;
struct sm_user;
struct smacks;
struct csi;
struct caps;

struct session {
	uint64_t id;
	struct transport *t;      /* what carries it, NULL when detached */
	struct jid jid;           /* full JID, prepared */
	char *full;               /* "user@host/resource" */
	char *bare;               /* "user@host" */
	int priority;             /* from the last available presence */
	int available;            /* sent available presence (RFC 6121 §4.2) */
	int interested;           /* requested the roster (RFC 6121 §2.1.6) */
	struct xel *presence;     /* last available presence as broadcast
	                             (own arena), NULL if unavailable */
	char **directed;          /* JIDs sent directed presence (§4.6) */
	size_t ndirected;
	double since;             /* ev_time() when bound */
	double last_active;
	uint64_t stanzas_in, stanzas_out;
	int closing;              /* unlinked from routing, being freed */
	unsigned held;            /* session_hold depth */
	struct buf pending;       /* stanzas sent while detached, serialized */
	char *end_reason;         /* for the control plane (sm_set_end_reason) */
	struct session *next;     /* in its user's list */
	struct sm_user *user;
	struct smacks *smacks;    /* XEP-0198 state, NULL until enabled */
	struct csi *csi;          /* XEP-0352 state, NULL until inactive */
	const struct caps *caps;  /* XEP-0115 capabilities as verified
	                             (mod/caps.h), NULL while unknown */
	/* How its client authenticated, for the control plane: the SASL
	 * profile ("SASL1": RFC 6120 §6, "SASL2": XEP-0388), the mechanism
	 * and "FAST" for a XEP-0484 token, e.g. "SASL2 HT-SHA-256-EXPR FAST";
	 * "" if unknown.  Set by the stream layer at binding and again at
	 * each resumption. */
	char auth[48];
};

/* Bind a new session for jid (full, prepared) on t.  An existing session
 * with the same full JID is ended with <conflict/> (RFC 6120 §7.7.2.2).
 * Returns NULL if the user already has the maximum number of sessions. */
struct session *sm_bind(struct transport *t, const struct jid *jid,
    unsigned max_sessions);
/* Unlink from routing at once; freed in the before-sleep hook. */
void sm_unbind(struct session *s);
struct session *sm_find_full(const struct jid *jid);
/* First session of a bare JID (iterate with ->next), or NULL. */
struct session *sm_find_bare(const char *user, const char *host);
/* The same for a prepared bare JID string "node@domain". */
struct session *sm_find_bare_str(const char *bare);
struct session *sm_find_id(uint64_t id);
/*
 * A requester on another server (an IQ that came over server-to-server):
 * a session object that is not bound, not listed and not routable, whose
 * sends go to its full JID through the router.  Handlers that answer
 * later find it by id (sm_find_id) for REMOTE_SESSION_TTL seconds; then
 * it is freed.  For read-only handlers only (the router lets through
 * gets of a few namespaces).
 */
#define REMOTE_SESSION_TTL 30.0
struct session *sm_remote_session(const struct jid *from);
/*
 * The same for an entity that stays a while (an occupant of a room on
 * another server): one per full JID, found again by it, kept while held
 * (sm_remote_hold, sm_remote_release nest: mod_muc holds it once per
 * room joined), then REMOTE_SESSION_TTL seconds more.  Its sends, fan-out
 * copies included, go to its full JID through the router.  Never bound,
 * listed or ended: whoever holds it lets it go.
 */
struct session *sm_remote_peer(const struct jid *from);
void sm_remote_hold(struct session *s);
void sm_remote_release(struct session *s);
int session_is_remote(const struct session *s);

/*
 * The session API.  Sends to a closing session are dropped; to a detached
 * one they are queued (up to limits { output-max } bytes, past which the
 * session ends) and go out when it is attached again.
 */
/* Serialize and queue a stanza to the session's client. */
void session_send(struct session *s, const struct xel *stanza);
/* One copy of a fan-out serialized once: "<name to='to'" + rest, where
 * stanza is that copy parsed (its name, and what XEP-0352 looks at). */
void session_send_fanout(struct session *s, const struct xel *stanza,
    const char *to, const char *rest, size_t len);
/* The same, urgent for XEP-0352 whatever csi_classify says of stanza
 * (everything held goes first, then it): for what only the sender
 * knows matters to this recipient, as mod_muc knows a groupchat
 * message that mentions the recipient's nick in that room. */
void session_send_fanout_urgent(struct session *s, const struct xel *stanza,
    const char *to, const char *rest, size_t len);
/* A nonza (XEP-0198 <r/>, <a/>): not counted, not queued, dropped while
 * detached. */
void session_send_nonza(struct session *s, const char *data, size_t len);
/* XEP-0352: the client says it is inactive (1) or active (0); becoming
 * active sends what was held meanwhile. */
void session_set_inactive(struct session *s, int inactive);
/* Send r (may be NULL) to s, then free r's arena. */
void session_reply(struct session *s, struct xel *r);
/*
 * Hold the session's input while something it depends on loads (the
 * user's roster): reading pauses and stanzas already parsed wait; release
 * replays them in order and resumes reading.  Holds nest, and survive a
 * change of transport.
 */
void session_hold(struct session *s);
void session_release(struct session *s);
/*
 * End the session with a stream error condition and optional text: its
 * transport sends the error and closes; a detached session records the
 * condition as its end reason.  Either way s is unbound at once (still a
 * valid pointer until the loop sleeps).
 */
void session_end(struct session *s, const char *condition, const char *text);
/*
 * The client is gone without a word (its connection died, or stopped
 * answering pings).  A session that can be resumed (XEP-0198) is
 * detached and waits for its client, its transport ended with condition
 * (if not NULL) and text; returns 1.  Otherwise nothing is done and 0
 * is returned: the caller ends the session as before.
 */
int session_lost(struct session *s, const char *condition, const char *text);
/* Output waits above limits { output-high }: hold back what can wait. */
int session_output_full(const struct session *s);
/* Closing, detached, or its transport is gone: what is sent now is not
 * known to reach the client (while detached it waits in the queue). */
int session_gone(const struct session *s);
/* Input: whether reading is paused, and when its client was last heard
 * from (mono_now() time, mono.h; while detached, now: there is nothing
 * to hear from). */
int session_input_paused(const struct session *s);
double session_last_input(const struct session *s);
int session_is_tls(const struct session *s);
/* Why s ends, for the control plane: the first reason recorded
 * (sm_set_end_reason), else its transport's, else "closed". */
const char *session_end_reason(const struct session *s);
/*
 * Move the session off its transport (t->session is cleared), keeping it
 * routable, or onto a new one: what was queued is sent, holds are applied.
 */
void session_detach(struct session *s);
void session_attach(struct session *s, struct transport *t);
/* The log line of a per-user limit refused to s (conf limits name). */
void session_log_limit(const struct session *s, const char *limit,
    unsigned value);
/* The first words of a log line about s: "c2s ID ADDR: JID" or, detached,
 * "session JID". */
#define SESSION_LOG_FMT "%s %" PRIu64 " %s: %s"
#define SESSION_LOG_ARGS(s) session_log_kind(s), session_log_id(s), \
	session_log_addr(s), (s)->full
const char *session_log_kind(const struct session *s);
uint64_t session_log_id(const struct session *s);
const char *session_log_addr(const struct session *s);

#endif
