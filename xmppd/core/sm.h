/*
 * The session manager: the table of bound client sessions by full and bare
 * JID, used by the router for delivery and by the control plane.
 */
#ifndef XMPPD_SM_H
#define XMPPD_SM_H

#include <stddef.h>
#include <stdint.h>

struct session;

/* What the control plane may read about a session. */
struct sm_session_info {
	uint64_t id;
	const char *jid;          /* full JID */
	const char *ip;           /* peer address */
	const char *tls_version;  /* "TLSv1.3" or "" */
	const char *tls_cipher;
	const char *show;         /* available, chat, away, xa, dnd or
	                             unavailable */
	const char *status;       /* presence <status/> text or "" */
	const char *client;       /* XEP-0115 caps node of the last
	                             presence, or "" */
	int priority;
	int available;            /* has sent available presence */
	double since;             /* ev_time() when bound */
	double last_active;       /* ev_time() of last stanza in */
	uint64_t stanzas_in, stanzas_out;
	const char *sm;           /* XEP-0198: off, on, resumable or
	                             waiting (for its client to resume) */
	size_t sm_unacked;        /* stanzas sent and not acknowledged */
	const char *csi;          /* XEP-0352: active or inactive */
	const char *auth;         /* how it authenticated (session.auth) */
	const char *transport;    /* c2s, websocket, bosh; "" detached */
};

size_t sm_session_count(void);
size_t sm_user_count(void);           /* distinct bare JIDs bound */
/* Calls fn for each bound session, in binding order. */
void sm_foreach(void (*fn)(const struct sm_session_info *, void *),
    void *arg);
/*
 * Close the sessions of user@host (resource NULL: all of them) with the
 * stream error condition (e.g. "policy-violation", "not-authorized") and
 * an optional text.  Returns the number closed.  Safe from any callback:
 * the sessions are freed later, in the loop's before-sleep hook.
 */
int sm_kick(const char *user, const char *host, const char *resource,
    const char *condition, const char *text);

/* Calls fn for each bound session, in binding order; fn must not bind
 * or unbind sessions. */
void sm_foreach_session(void (*fn)(struct session *, void *), void *arg);
/* The show of user@host's most available session ("unavailable" if none
 * is available; NULL if the user has no session). */
const char *sm_user_show(const char *user, const char *host);

/* Stanzas received from and sent to clients since start, all sessions. */
void sm_stanza_totals(uint64_t *in, uint64_t *out);
/*
 * Why s ends, for the control plane's session-down event (e.g. the stream
 * error condition); the first reason given wins, "closed" if none.
 */
void sm_set_end_reason(struct session *s, const char *reason);
/* The info of one session (pointers into s, valid while it is). */
void sm_session_info(const struct session *s, struct sm_session_info *info);
/* How the control plane names a presence: its <show/> (available, chat,
 * away, xa, dnd; "unavailable" if !available or pres is NULL) and its
 * <status/> text ("" if none). */
struct xel;
const char *sm_presence_show(const struct xel *pres, int available);
const char *sm_presence_status(const struct xel *pres);

#endif
