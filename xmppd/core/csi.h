/*
 * XEP-0352 client state indication, the session's side: while a client
 * says it is inactive, what can wait is held back (serialized) instead
 * of being written to it, presence updates coalesced to the newest per
 * contact resource, and everything held goes out in order, before it,
 * when something urgent comes, when the client becomes active again, or
 * when the hold is full (limits { csi-queue, csi-queue-size }).  The
 * stream layer parses <active/> and <inactive/> and calls csi_set; the
 * session API (session.c) asks csi_hold before it sends.
 */
#ifndef XMPPD_CORE_CSI_H
#define XMPPD_CORE_CSI_H

#include <stddef.h>

#define NS_CSI "urn:xmpp:csi:0"

struct session;
struct xel;

/* How a stanza to an inactive client is treated. */
enum csi_class {
	CSI_URGENT,      /* goes now, and everything held before it */
	CSI_HOLD,        /* can wait */
	CSI_COALESCE,    /* can wait; replaces what its sender sent before */
};

/*
 * The class of stanza (its name, type and payload; pure, no session):
 * presence without a type or unavailable coalesces by its 'from';
 * subscription and error presence is urgent.  A message is urgent when
 * a person would want to know now: a body, a subject, an encrypted
 * payload (OMEMO, OpenPGP), a call (XEP-0353), an invitation (XEP-0249,
 * XEP-0045 mediated), an error; a carbon copy (XEP-0280) is what it
 * carries.  Chat states, receipts, markers and PEP events wait.  A
 * groupchat message waits too, whatever it carries: the room's chatter
 * is no reason to wake a phone; the one that mentions the recipient's
 * nick is, and only the room knows the nick, so mod_muc sends that
 * copy with session_send_fanout_urgent (session.h).  IQs are urgent:
 * someone waits for their answer.
 */
enum csi_class csi_classify(const struct xel *stanza);

/* Record <active/> (0) or <inactive/> (1) from the client; what is held
 * is left alone (session_set_inactive flushes it). */
void csi_set(struct session *s, int inactive);
int csi_inactive(const struct session *s);
/* For the control plane: "active" or "inactive". */
const char *csi_state(const struct session *s);
/* Stanzas held now. */
size_t csi_held(const struct session *s);

/*
 * s sends the stanza serialized as data (class c, 'from' the key for
 * CSI_COALESCE): 1 if it is held (the caller sends nothing), 0 if it is
 * to go now (everything held has then been sent, through send).
 */
int csi_hold(struct session *s, enum csi_class c, const char *from,
    const char *data, size_t len,
    void (*send)(struct session *, const char *, size_t));
/* Send everything held, in order, through send. */
void csi_flush(struct session *s,
    void (*send)(struct session *, const char *, size_t));
/* The session ends: each held message is handled as undelivered. */
void csi_end(struct session *s);
void csi_free(struct session *s);

#endif
