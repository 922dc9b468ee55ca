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
	int priority;
	int available;            /* has sent available presence */
	double since;             /* ev_time() when bound */
	double last_active;       /* ev_time() of last stanza in */
	uint64_t stanzas_in, stanzas_out;
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

#endif
