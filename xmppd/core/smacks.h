/*
 * XEP-0198 stream management, the session's side: the counts of stanzas
 * handled from the client and sent to it, the stanzas sent and not yet
 * acknowledged, resumption ids, the wait for a client to come back
 * (hibernation), and what becomes of unacknowledged stanzas when the
 * session ends without being resumed.  The stream layer parses the
 * nonzas (<enable/>, <r/>, <a/>, <resume/>) and calls in here; the
 * session API (session.c) counts and queues what it sends.
 */
#ifndef XMPPD_CORE_SMACKS_H
#define XMPPD_CORE_SMACKS_H

#include <stddef.h>
#include <stdint.h>

#define NS_SM "urn:xmpp:sm:3"
#define SMACKS_ID_LEN 22        /* 16 random bytes, base64url */

struct session;
struct transport;

/*
 * Turn stream management on for s (after bind, once: -1 if it is on
 * already).  With resume, *id is set to the session's resumption id and
 * *max to the seconds it waits for the client (resume-timeout); both
 * left alone otherwise.
 */
int smacks_enable(struct session *s, int resume, const char **id,
    unsigned *max);
int smacks_on(const struct session *s);
/* On, with resumption, and not ending: what a lost transport leaves
 * waiting rather than ended. */
int smacks_resumable(const struct session *s);
/* Waiting for its client to resume. */
int smacks_waiting(const struct session *s);
/* For the control plane: "off", "on", "resumable" or "waiting". */
const char *smacks_state(const struct session *s);
/* Stanzas sent and not yet acknowledged. */
size_t smacks_unacked(const struct session *s);

/* A stanza from the client has been handled (XEP-0198 §4). */
void smacks_handled(struct session *s);
/* The session sends a stanza, serialized as data: counted and kept until
 * acknowledged.  Returns -1 when the queue is past limits { sm-queue }:
 * the caller ends the session. */
int smacks_sent(struct session *s, const char *data, size_t len);
/* <a h/> from the client: 0, or -1 when h acknowledges more than was
 * sent (the caller ends the stream: <handled-count-too-high/>). */
int smacks_ack(struct session *s, uint32_t h);
uint32_t smacks_sent_count(const struct session *s);
uint32_t smacks_handled_count(const struct session *s);
/*
 * <r/> from the client: <a h/> goes out once storage has committed
 * whatever the stanzas counted so far made it write (ARCHITECTURE.md,
 * Storage: an ack promises durability).
 */
void smacks_request(struct session *s);

/* The transport of a resumable session is gone: wait for the client
 * (resume-timeout), detached, routable and present to its contacts. */
void smacks_hibernate(struct session *s);
/* The session with this resumption id, if it belongs to bare. */
struct session *smacks_find(const char *id, const char *bare);
/*
 * Resume s on t with the client's count h: its old transport (if the
 * server had not noticed it was dead) is closed, the session attached to
 * t, and what the client did not acknowledge sent again (messages with a
 * XEP-0203 delay).  -1 if h is more than was sent (s is not touched).
 * announce: send <resumed/> first (XEP-0198 §5); 0 when the caller has
 * answered already (XEP-0388: <resumed/> inside the SASL2 <success/>).
 */
int smacks_resume(struct session *s, struct transport *t, uint32_t h,
    int announce);
/* Whether smacks_resume(s, ..., h) would succeed. */
int smacks_can_resume(const struct session *s, uint32_t h);
/* The resumption id of s, NULL if it has none. */
const char *smacks_id(const struct session *s);
/* A stanza for s, serialized as data, that its client never got (the
 * session ends): a message goes elsewhere by RFC 6121 §8.5 (another
 * resource, offline storage, a bounce), a request gets an error back,
 * the rest is dropped.  Carbon copies are dropped. */
void smacks_undelivered(struct session *s, const char *data, size_t len);
/* s has been unlinked from routing (sm_unbind): what it did not
 * acknowledge is handled as if it had never been delivered. */
void smacks_end(struct session *s);
/* The server stops: sessions waiting to be resumed end (what they hold
 * unacknowledged goes to offline storage before the store closes). */
void smacks_shutdown(void);
/* Release the state (sm.c, when the session is freed). */
void smacks_free(struct session *s);

#endif
