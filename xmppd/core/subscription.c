/*
 * The RFC 6121 presence-subscription state machine: the Appendix A tables
 * transcribed row by row, plus what the tables leave to the text (roster
 * pushes, presence sent on approval and cancellation, pre-approval, items
 * that exist only as a pending inbound request).
 */
#include <stddef.h>
#include <string.h>

#include "core/subscription.h"

/* The bits that make up an RFC 6121 A.1 defined state. */
#define DEFINED_MASK (SUB_TO | SUB_FROM | SUB_PENDING_OUT | SUB_PENDING_IN)
/* The bits that show in a roster item (§2.1.2): a change means a push. */
#define VISIBLE_MASK                                                           \
	(SUB_ITEM | SUB_TO | SUB_FROM | SUB_PENDING_OUT | SUB_PREAPPROVED)
#define ALL_MASK (DEFINED_MASK | SUB_PREAPPROVED | SUB_ITEM)

/* The nine defined states, named as in RFC 6121 A.1. */
#define NONE 0u
#define NONE_OUT SUB_PENDING_OUT
#define NONE_IN SUB_PENDING_IN
#define NONE_OUT_IN (SUB_PENDING_OUT | SUB_PENDING_IN)
#define TO SUB_TO
#define TO_IN (SUB_TO | SUB_PENDING_IN)
#define FROM SUB_FROM
#define FROM_OUT (SUB_FROM | SUB_PENDING_OUT)
#define BOTH (SUB_TO | SUB_FROM)

/* One row of an Appendix A table: existing state, route/deliver, new. */
struct row {
	unsigned existing;
	int forward;
	unsigned next;
};

#define ROWS 9

/* A.2.1: outbound subscribe is always routed (§3.1.2). */
static const struct row out_subscribe[ROWS] = {
    {NONE, 1, NONE_OUT},
    {NONE_OUT, 1, NONE_OUT},
    {NONE_IN, 1, NONE_OUT_IN},
    {NONE_OUT_IN, 1, NONE_OUT_IN},
    {TO, 1, TO},
    {TO_IN, 1, TO_IN},
    {FROM, 1, FROM_OUT},
    {FROM_OUT, 1, FROM_OUT},
    {BOTH, 1, BOTH},
};

/* A.2.2: outbound unsubscribe is always routed (§3.3.2). */
static const struct row out_unsubscribe[ROWS] = {
    {NONE, 1, NONE},
    {NONE_OUT, 1, NONE},
    {NONE_IN, 1, NONE_IN},
    {NONE_OUT_IN, 1, NONE_IN},
    {TO, 1, NONE},
    {TO_IN, 1, NONE_IN},
    {FROM, 1, FROM},
    {FROM_OUT, 1, FROM},
    {BOTH, 1, FROM},
};

/*
 * A.2.3: outbound subscribed is routed only as the answer to a pending
 * request (§3.1.5); in "None", "None + Pending Out" and "To" it is a
 * pre-approval instead (§3.4, handled in subscription_outbound).
 */
static const struct row out_subscribed[ROWS] = {
    {NONE, 0, NONE},
    {NONE_OUT, 0, NONE_OUT},
    {NONE_IN, 1, FROM},
    {NONE_OUT_IN, 1, FROM_OUT},
    {TO, 0, TO},
    {TO_IN, 1, BOTH},
    {FROM, 0, FROM},
    {FROM_OUT, 0, FROM_OUT},
    {BOTH, 0, BOTH},
};

/*
 * A.2.4: outbound unsubscribed is routed only if it denies a pending
 * request or cancels the contact's subscription (§3.2.2).
 */
static const struct row out_unsubscribed[ROWS] = {
    {NONE, 0, NONE},
    {NONE_OUT, 0, NONE_OUT},
    {NONE_IN, 1, NONE},
    {NONE_OUT_IN, 1, NONE_OUT},
    {TO, 0, TO},
    {TO_IN, 1, TO},
    {FROM, 1, NONE},
    {FROM_OUT, 1, NONE_OUT},
    {BOTH, 1, TO},
};

/*
 * A.3.1: an inbound subscribe is delivered unless a request is already
 * pending or the contact is already subscribed; in the latter case the
 * server answers 'subscribed' itself (footnote to A.3.1, §3.1.3 step 2).
 */
static const struct row in_subscribe[ROWS] = {
    {NONE, 1, NONE_IN},
    {NONE_OUT, 1, NONE_OUT_IN},
    {NONE_IN, 0, NONE_IN},
    {NONE_OUT_IN, 0, NONE_OUT_IN},
    {TO, 1, TO_IN},
    {TO_IN, 0, TO_IN},
    {FROM, 0, FROM},
    {FROM_OUT, 0, FROM_OUT},
    {BOTH, 0, BOTH},
};

/* A.3.2: delivered if it withdraws a request or a subscription (§3.3.3). */
static const struct row in_unsubscribe[ROWS] = {
    {NONE, 0, NONE},
    {NONE_OUT, 0, NONE_OUT},
    {NONE_IN, 1, NONE},
    {NONE_OUT_IN, 1, NONE_OUT},
    {TO, 0, TO},
    {TO_IN, 1, TO},
    {FROM, 1, NONE},
    {FROM_OUT, 1, NONE_OUT},
    {BOTH, 1, TO},
};

/* A.3.3: delivered only if the user asked (ask='subscribe', §3.1.6). */
static const struct row in_subscribed[ROWS] = {
    {NONE, 0, NONE},
    {NONE_OUT, 1, TO},
    {NONE_IN, 0, NONE_IN},
    {NONE_OUT_IN, 1, TO_IN},
    {TO, 0, TO},
    {TO_IN, 0, TO_IN},
    {FROM, 0, FROM},
    {FROM_OUT, 1, BOTH},
    {BOTH, 0, BOTH},
};

/*
 * A.3.4: delivered if it denies the user's request or cancels the user's
 * subscription (§3.2.3).
 */
static const struct row in_unsubscribed[ROWS] = {
    {NONE, 0, NONE},
    {NONE_OUT, 1, NONE},
    {NONE_IN, 0, NONE_IN},
    {NONE_OUT_IN, 1, NONE_IN},
    {TO, 1, NONE},
    {TO_IN, 1, NONE_IN},
    {FROM, 0, FROM},
    {FROM_OUT, 1, FROM},
    {BOTH, 1, FROM},
};

int
subscription_valid(unsigned state)
{
	if (state & ~ALL_MASK)
		return 0;
	if ((state & SUB_TO) && (state & SUB_PENDING_OUT))
		return 0;
	if ((state & SUB_FROM) && (state & SUB_PENDING_IN))
		return 0;
	if ((state & SUB_PREAPPROVED) &&
	    (state & (SUB_FROM | SUB_PENDING_IN) || !(state & SUB_ITEM)))
		return 0;
	if (!(state & SUB_ITEM) && (state & ~SUB_PENDING_IN))
		return 0;
	return 1;
}

int
subscription_stored(unsigned state)
{
	return state != SUB_NONE;
}

/* Apply a table to the defined-state part of a valid state. */
static struct subscription_change
apply_row(unsigned state, const struct row table[ROWS])
{
	struct subscription_change c = {state, 0};
	unsigned defined = state & DEFINED_MASK;
	size_t i;

	for (i = 0; i < ROWS; i++) {
		if (table[i].existing != defined)
			continue;
		c.state = (state & ~DEFINED_MASK) | table[i].next;
		if (table[i].forward)
			c.actions |= SUB_ACT_FORWARD;
		break;
	}
	return c;
}

/*
 * What follows from the difference between old and new state, whatever
 * the stanza: anything beyond a pending inbound request needs an item;
 * visible changes are pushed; gaining 'from' means the contact now gets
 * our presence (§3.1.5) and losing it means it gets our unavailable
 * presence first (§3.2.2, §3.3.3).
 */
static struct subscription_change
finish(unsigned old, struct subscription_change c)
{
	if (c.state & ~(SUB_PENDING_IN | SUB_ITEM))
		c.state |= SUB_ITEM;
	if (!(old & SUB_ITEM) && (c.state & SUB_ITEM))
		c.actions |= SUB_ACT_CREATE_ITEM | SUB_ACT_PUSH;
	else if ((c.state & SUB_ITEM) &&
	         (old & VISIBLE_MASK) != (c.state & VISIBLE_MASK))
		c.actions |= SUB_ACT_PUSH;
	if (!(old & SUB_FROM) && (c.state & SUB_FROM))
		c.actions |= SUB_ACT_SEND_PRESENCE;
	if ((old & SUB_FROM) && !(c.state & SUB_FROM))
		c.actions |= SUB_ACT_SEND_UNAVAILABLE;
	return c;
}

struct subscription_change
subscription_outbound(unsigned state, enum subscription_type type)
{
	struct subscription_change c = {state, 0};

	if (!subscription_valid(state))
		return c;
	switch (type) {
	case SUBSCRIPTION_SUBSCRIBE:
		/* §3.1.2: the item is created with ask='subscribe'. */
		c = apply_row(state, out_subscribe);
		break;
	case SUBSCRIPTION_UNSUBSCRIBE:
		c = apply_row(state, out_unsubscribe);
		break;
	case SUBSCRIPTION_SUBSCRIBED:
		if (state & (SUB_FROM | SUB_PENDING_IN)) {
			c = apply_row(state, out_subscribed);
			break;
		}
		/*
		 * §3.4: no request to answer, so note a pre-approval, creating
		 * the item if need be, and do not route the stanza.
		 */
		c.state = state | SUB_PREAPPROVED | SUB_ITEM;
		break;
	case SUBSCRIPTION_UNSUBSCRIBED:
		c = apply_row(state, out_unsubscribed);
		/*
		 * §3.2.2: cancelling a pre-approval only removes it; the
		 * stanza is neither routed nor delivered (A.2.4 gives "no"
		 * for every state that can hold one).
		 */
		if (state & SUB_PREAPPROVED) {
			c.state &= ~SUB_PREAPPROVED;
			c.actions &= ~SUB_ACT_FORWARD;
		}
		break;
	default:
		return c;
	}
	return finish(state, c);
}

struct subscription_change
subscription_inbound(unsigned state, enum subscription_type type)
{
	struct subscription_change c = {state, 0};

	if (!subscription_valid(state))
		return c;
	switch (type) {
	case SUBSCRIPTION_SUBSCRIBE:
		if (state & SUB_PREAPPROVED) {
			/*
			 * §3.4, §3.1.3 step 2: the user approved in advance;
			 * approve on their behalf instead of delivering, and
			 * the pre-approval is used up.
			 */
			c.state = (state & ~SUB_PREAPPROVED) | SUB_FROM;
			c.actions = SUB_ACT_REPLY_SUBSCRIBED;
			break;
		}
		c = apply_row(state, in_subscribe);
		if (state & SUB_FROM) {
			/*
			 * A.3.1 footnote, §3.1.3 step 2: already subscribed,
			 * answer 'subscribed' ourselves.  Sending current
			 * presence too is our choice, not the RFC's: the
			 * requester's server moves to "To" on that answer and
			 * would otherwise wait for the next broadcast.
			 */
			c.actions |=
			    SUB_ACT_REPLY_SUBSCRIBED | SUB_ACT_SEND_PRESENCE;
		}
		break;
	case SUBSCRIPTION_UNSUBSCRIBE:
		c = apply_row(state, in_unsubscribe);
		break;
	case SUBSCRIPTION_SUBSCRIBED:
		c = apply_row(state, in_subscribed);
		break;
	case SUBSCRIPTION_UNSUBSCRIBED:
		c = apply_row(state, in_unsubscribed);
		break;
	default:
		return c;
	}
	return finish(state, c);
}

const char *
subscription_attr(unsigned state)
{
	switch (state & SUB_BOTH) {
	case SUB_TO:
		return "to";
	case SUB_FROM:
		return "from";
	case SUB_BOTH:
		return "both";
	default:
		return "none";
	}
}

int
subscription_ask(unsigned state)
{
	return (state & SUB_PENDING_OUT) != 0;
}

int
subscription_approved(unsigned state)
{
	return (state & SUB_PREAPPROVED) != 0;
}

int
subscription_receives_presence(unsigned state)
{
	return (state & SUB_TO) != 0;
}

int
subscription_sends_presence(unsigned state)
{
	return (state & SUB_FROM) != 0;
}

const char *
subscription_state_name(unsigned state)
{
	if (!subscription_valid(state))
		return "invalid";
	switch (state & DEFINED_MASK) {
	case NONE:
		return "None";
	case NONE_OUT:
		return "None + Pending Out";
	case NONE_IN:
		return "None + Pending In";
	case NONE_OUT_IN:
		return "None + Pending Out+In";
	case TO:
		return "To";
	case TO_IN:
		return "To + Pending In";
	case FROM:
		return "From";
	case FROM_OUT:
		return "From + Pending Out";
	default:
		return "Both";
	}
}

static const char *const type_names[] = {
    [SUBSCRIPTION_SUBSCRIBE] = "subscribe",
    [SUBSCRIPTION_SUBSCRIBED] = "subscribed",
    [SUBSCRIPTION_UNSUBSCRIBE] = "unsubscribe",
    [SUBSCRIPTION_UNSUBSCRIBED] = "unsubscribed",
};

int
subscription_type_parse(const char *s, enum subscription_type *type)
{
	size_t i;

	if (s == NULL)
		return -1;
	for (i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
		if (strcmp(s, type_names[i]) == 0) {
			*type = (enum subscription_type)i;
			return 0;
		}
	}
	return -1;
}

const char *
subscription_type_name(enum subscription_type type)
{
	if ((unsigned)type >= sizeof(type_names) / sizeof(type_names[0]))
		return "?";
	return type_names[type];
}
