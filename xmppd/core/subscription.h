/*
 * Presence subscriptions (RFC 6121 §3 and Appendix A) as a pure state
 * machine: the subscription state one roster item carries, and what the
 * server must do when a subscribe, subscribed, unsubscribe or unsubscribed
 * stanza leaves or reaches the user who owns that roster.  No I/O and no
 * allocation: the caller stores the state and carries out the actions.
 */
#ifndef XMPPD_SUBSCRIPTION_H
#define XMPPD_SUBSCRIPTION_H

/*
 * A subscription state is a bit set over the relation between the user
 * (who owns the roster) and one contact.  The values are stored as an
 * INTEGER column in SQLite: never renumber them.
 *
 *   SUB_TO          1  the user receives the contact's presence
 *   SUB_FROM        2  the contact receives the user's presence
 *   SUB_PENDING_OUT 4  the user asked the contact, no answer yet
 *                      (shown as ask='subscribe', RFC 6121 §2.1.2.2)
 *   SUB_PENDING_IN  8  the contact asked the user, no answer yet
 *                      (never shown in the roster, RFC 6121 §3.1.3)
 *   SUB_PREAPPROVED 16 the user approved the contact before it asked
 *                      (shown as approved='true', RFC 6121 §3.4)
 *   SUB_ITEM        32 a roster item exists, so it is returned by a
 *                      roster get and pushed on change
 *
 * TO/FROM/PENDING_OUT/PENDING_IN give the nine "defined states" of
 * RFC 6121 Appendix A.1 ("None", "None + Pending Out", ..., "Both").  A
 * state is valid (subscription_valid) only if:
 *   - PENDING_OUT is clear when TO is set, PENDING_IN clear when FROM is;
 *   - PREAPPROVED is set only with ITEM, and with neither FROM nor
 *     PENDING_IN (an inbound subscribe consumes a pre-approval at once);
 *   - without ITEM nothing but PENDING_IN may be set: an inbound request
 *     from someone not in the roster is remembered without creating an
 *     item (RFC 6121 §3.1.3, A.1 "None + Pending In").
 * SUB_NONE (0) means there is nothing to remember: no item, no request.
 */
#define SUB_NONE 0u
#define SUB_TO 0x01u
#define SUB_FROM 0x02u
#define SUB_PENDING_OUT 0x04u
#define SUB_PENDING_IN 0x08u
#define SUB_PREAPPROVED 0x10u
#define SUB_ITEM 0x20u
#define SUB_BOTH (SUB_TO | SUB_FROM)

/*
 * What the server does after a transition, in this order:
 *
 *   SUB_ACT_SEND_UNAVAILABLE  send presence type='unavailable' from each
 *       of the user's available resources to the contact; before the
 *       stanza is routed, "while the user is still subscribed"
 *       (RFC 6121 §3.2.2, §3.3.3 step 3).
 *   SUB_ACT_FORWARD  outbound: stamp 'from' with the user's bare JID and
 *       route the stanza to the contact (§3.1.2); inbound: deliver it to
 *       the user's interested resources, or for a subscribe keep it until
 *       one is available (§3.1.3).  When clear, silently drop the stanza.
 *   SUB_ACT_REPLY_SUBSCRIBED  inbound subscribe only: answer on the
 *       user's behalf with presence type='subscribed' from the user's bare
 *       JID to the contact's bare JID (§3.1.3 step 2, §3.4).
 *   SUB_ACT_CREATE_ITEM  the roster had no item for the contact and one
 *       must be added now (the new state has SUB_ITEM; the push carries
 *       it).
 *   SUB_ACT_PUSH  send a roster push of the item in its new state to the
 *       user's interested resources (§2.1.6): the item was created, or its
 *       subscription, ask or approved attribute changed.
 *   SUB_ACT_SEND_PRESENCE  send the current presence of each of the
 *       user's available resources to the contact, who now receives it
 *       (§3.1.5).
 *
 * Whether to store the new state: compare it with the old one; when the
 * new state is SUB_NONE, delete any stored record (subscription_stored).
 */
#define SUB_ACT_FORWARD 0x01u
#define SUB_ACT_PUSH 0x02u
#define SUB_ACT_REPLY_SUBSCRIBED 0x04u
#define SUB_ACT_SEND_PRESENCE 0x08u
#define SUB_ACT_SEND_UNAVAILABLE 0x10u
#define SUB_ACT_CREATE_ITEM 0x20u

/* The presence types that manage subscriptions (RFC 6121 §3). */
enum subscription_type {
	SUBSCRIPTION_SUBSCRIBE,
	SUBSCRIPTION_SUBSCRIBED,
	SUBSCRIPTION_UNSUBSCRIBE,
	SUBSCRIPTION_UNSUBSCRIBED,
};

struct subscription_change {
	unsigned state;   /* the new state (SUB_*) */
	unsigned actions; /* SUB_ACT_* */
};

/*
 * The stanza of the given type was sent BY the user (the roster owner) TO
 * the contact: RFC 6121 Appendix A.2 and §3.1.2, §3.1.5, §3.2.2, §3.3.2,
 * §3.4.  An outbound 'subscribed' without a pending inbound request is a
 * pre-approval (we advertise urn:xmpp:features:pre-approval).  An invalid
 * state or type yields the state unchanged and no action.
 */
struct subscription_change subscription_outbound(
    unsigned state, enum subscription_type type);

/*
 * The stanza of the given type was sent by the contact and reaches the
 * user (the roster owner): RFC 6121 Appendix A.3 and §3.1.3, §3.1.6,
 * §3.2.3, §3.3.3.  The caller has already checked that the user exists.
 * An invalid state or type yields the state unchanged and no action.
 */
struct subscription_change subscription_inbound(
    unsigned state, enum subscription_type type);

/* Whether state is one of the valid combinations described above. */
int subscription_valid(unsigned state);
/* Whether anything must be stored for the contact (state != SUB_NONE). */
int subscription_stored(unsigned state);

/*
 * Roster item attributes (RFC 6121 §2.1.2): the 'subscription' value
 * ("none", "to", "from" or "both"; static string), whether to show
 * ask='subscribe' and whether to show approved='true'.
 */
const char *subscription_attr(unsigned state);
int subscription_ask(unsigned state);
int subscription_approved(unsigned state);

/* Whether the user receives the contact's presence (has 'to'). */
int subscription_receives_presence(unsigned state);
/* Whether the contact receives the user's presence (has 'from'). */
int subscription_sends_presence(unsigned state);

/*
 * The RFC 6121 A.1 name of the defined state ("None + Pending Out+In"),
 * ignoring SUB_ITEM and SUB_PREAPPROVED, or "invalid"; for logs.
 */
const char *subscription_state_name(unsigned state);

/*
 * The presence 'type' value of a subscription stanza: parse returns 0 and
 * sets *type, or -1 for anything else (available, unavailable, probe,
 * error, NULL).  name returns a static string, "?" if out of range.
 */
int subscription_type_parse(const char *s, enum subscription_type *type);
const char *subscription_type_name(enum subscription_type type);

#endif
