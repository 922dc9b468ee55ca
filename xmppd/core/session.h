/*
 * A bound client session: the identity and state that routing needs.  It
 * is separate from its connection (struct c2s), so that stream management
 * (XEP-0198) can later move it onto a new connection.
 */
#ifndef XMPPD_SESSION_H
#define XMPPD_SESSION_H

#include <stdint.h>

#include "jid.h"

struct c2s;
struct xel;
struct sm_user;

struct session {
	uint64_t id;
	struct c2s *c2s;          /* NULL when detached */
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
	char *end_reason;         /* for the control plane (sm_set_end_reason) */
	struct session *next;     /* in its user's list */
	struct sm_user *user;
};

/* Bind a new session for jid (full, prepared) on c2s.  An existing session
 * with the same full JID is closed with <conflict/> (RFC 6120 §7.7.2.2).
 * Returns NULL if the user already has the maximum number of sessions. */
struct session *sm_bind(struct c2s *c2s, const struct jid *jid,
    unsigned max_sessions);
/* Unlink from routing at once; freed in the before-sleep hook. */
void sm_unbind(struct session *s);
struct session *sm_find_full(const struct jid *jid);
/* First session of a bare JID (iterate with ->next), or NULL. */
struct session *sm_find_bare(const char *user, const char *host);
/* The same for a prepared bare JID string "node@domain". */
struct session *sm_find_bare_str(const char *bare);
struct session *sm_find_id(uint64_t id);

/* Serialize and queue a stanza to the session's client. */
void session_send(struct session *s, const struct xel *stanza);
/* One copy of a fan-out serialized once: "<name to='to'" + rest. */
void session_send_fanout(struct session *s, const char *name, const char *to,
    const char *rest, size_t len);
/* The log line of a per-user limit refused to s (conf limits name). */
void session_log_limit(const struct session *s, const char *limit,
    unsigned value);
/* Send r (may be NULL) to s, then free r's arena. */
void session_reply(struct session *s, struct xel *r);

#endif
