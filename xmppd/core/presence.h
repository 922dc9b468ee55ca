/*
 * Presence (RFC 6121 §3, §4): subscriptions, probes, broadcasts, directed
 * presence, and the availability and priority that message delivery
 * uses.  Stanzas of kind presence from local sessions, and presence for
 * local users, are handled here.
 */
#ifndef XMPPD_PRESENCE_H
#define XMPPD_PRESENCE_H

struct jid;
struct session;
struct xel;

/* A presence stanza from a local session ('from' stamped; to may be
 * NULL). */
void presence_from_client(struct session *from, struct xel *pres,
    const struct jid *to);
/* Presence from an entity that is not a local session (a component or
 * another server, 'from' checked by its stream) to to, a JID of a local
 * host:
 * subscription stanzas are processed for the user (RFC 6121 §3), probes
 * answered, other presence delivered (§4.3.3, §4.5.3).  The caller
 * keeps pres. */
void presence_from_remote(struct xel *pres, const struct jid *to);
/* Send unavailable presence from every available resource of
 * user@host to contact (XEP-0191 §3.3 when blocking). */
void presence_unavailable_to(const char *user, const char *host,
    const struct jid *contact);
/* Send the current presence of every available resource of user@host
 * to contact (when unblocking, or after approval). */
void presence_current_to(const char *user, const char *host,
    const struct jid *contact);
/*
 * What the available resources of user@host see of c, a local contact's
 * session: its current presence (unavailable: an unavailable one), if
 * c's roster lets the user see it ('from', RFC 6121 §4.3.2, as for a
 * probe).  XEP-0191 from the contact's side: when the user blocks c it
 * goes offline for the user (§3.3), when the user unblocks it its current
 * presence comes back (§3.4).
 */
void presence_session_to_user(struct session *c, const char *user,
    const char *host, int unavailable);
/* The user of s removed contact from the roster (RFC 6121 §2.5.2):
 * send unsubscribe and/or unsubscribed as old_state requires. */
void presence_item_removed(struct session *s, const char *contact,
    unsigned old_state);
/* Broadcast s's current presence again (an extension changed, e.g. a new
 * avatar hash from hook_presence_out). */
void presence_rebroadcast(struct session *s);
void presence_init(void);

#endif
