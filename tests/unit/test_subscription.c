/*
 * Unit tests for xmppd/core/subscription.c: every (state, stanza type,
 * direction) of RFC 6121 Appendix A with the expected new state and
 * actions, written from the RFC tables and text, plus two-roster sequences
 * (request and approval, mutual subscription, cancellation, denial,
 * pre-approval) and the roster attribute helpers.
 */
#include <stdio.h>
#include <string.h>

#include "core/subscription.h"
#include "unit.h"

/* Short names for the expected rows. */
#define I SUB_ITEM
#define T SUB_TO
#define F SUB_FROM
#define PO SUB_PENDING_OUT
#define PI SUB_PENDING_IN
#define PA SUB_PREAPPROVED

#define FWD SUB_ACT_FORWARD
#define PUSH SUB_ACT_PUSH
#define REPLY SUB_ACT_REPLY_SUBSCRIBED
#define PRES SUB_ACT_SEND_PRESENCE
#define UNAV SUB_ACT_SEND_UNAVAILABLE
#define NEW SUB_ACT_CREATE_ITEM

#define SUBSCRIBE SUBSCRIPTION_SUBSCRIBE
#define SUBSCRIBED SUBSCRIPTION_SUBSCRIBED
#define UNSUBSCRIBE SUBSCRIPTION_UNSUBSCRIBE
#define UNSUBSCRIBED SUBSCRIPTION_UNSUBSCRIBED

enum direction { OUT, IN };

struct expect {
	enum direction dir;
	enum subscription_type type;
	unsigned state;
	unsigned want_state;
	unsigned want_actions;
};

/*
 * The fourteen valid states: the nine A.1 defined states, with "None" and
 * "None + Pending In" both with and without a roster item (§3.1.3), and
 * the three defined states that can carry a pre-approval (§3.4).
 */
static const unsigned valid_states[] = {
    0,
    I,
    PI,
    I | PI,
    I | PO,
    I | PO | PI,
    I | T,
    I | T | PI,
    I | F,
    I | F | PO,
    I | T | F,
    I | PA,
    I | PO | PA,
    I | T | PA,
};
#define NVALID (sizeof(valid_states) / sizeof(valid_states[0]))

static const struct expect table[] = {
    /*
     * A.2.1 outbound subscribe: routed in every state (§3.1.2); the
     * item is created with ask='subscribe' if absent.
     */
    {OUT, SUBSCRIBE, 0, I | PO, FWD | PUSH | NEW},
    {OUT, SUBSCRIBE, I, I | PO, FWD | PUSH},
    {OUT, SUBSCRIBE, PI, I | PO | PI, FWD | PUSH | NEW},
    {OUT, SUBSCRIBE, I | PI, I | PO | PI, FWD | PUSH},
    {OUT, SUBSCRIBE, I | PO, I | PO, FWD},
    {OUT, SUBSCRIBE, I | PO | PI, I | PO | PI, FWD},
    {OUT, SUBSCRIBE, I | T, I | T, FWD},
    {OUT, SUBSCRIBE, I | T | PI, I | T | PI, FWD},
    {OUT, SUBSCRIBE, I | F, I | F | PO, FWD | PUSH},
    {OUT, SUBSCRIBE, I | F | PO, I | F | PO, FWD},
    {OUT, SUBSCRIBE, I | T | F, I | T | F, FWD},
    {OUT, SUBSCRIBE, I | PA, I | PO | PA, FWD | PUSH},
    {OUT, SUBSCRIBE, I | PO | PA, I | PO | PA, FWD},
    {OUT, SUBSCRIBE, I | T | PA, I | T | PA, FWD},

    /* A.2.2 outbound unsubscribe: routed in every state (§3.3.2). */
    {OUT, UNSUBSCRIBE, 0, 0, FWD},
    {OUT, UNSUBSCRIBE, I, I, FWD},
    {OUT, UNSUBSCRIBE, PI, PI, FWD},
    {OUT, UNSUBSCRIBE, I | PI, I | PI, FWD},
    {OUT, UNSUBSCRIBE, I | PO, I, FWD | PUSH},
    {OUT, UNSUBSCRIBE, I | PO | PI, I | PI, FWD | PUSH},
    {OUT, UNSUBSCRIBE, I | T, I, FWD | PUSH},
    {OUT, UNSUBSCRIBE, I | T | PI, I | PI, FWD | PUSH},
    {OUT, UNSUBSCRIBE, I | F, I | F, FWD},
    {OUT, UNSUBSCRIBE, I | F | PO, I | F, FWD | PUSH},
    {OUT, UNSUBSCRIBE, I | T | F, I | F, FWD | PUSH},
    {OUT, UNSUBSCRIBE, I | PA, I | PA, FWD},
    {OUT, UNSUBSCRIBE, I | PO | PA, I | PA, FWD | PUSH},
    {OUT, UNSUBSCRIBE, I | T | PA, I | PA, FWD | PUSH},

    /*
     * A.2.3 outbound subscribed: routed only when answering a pending
     * request, then the contact gets our presence (§3.1.5); in None,
     * None + Pending Out and To it is a pre-approval, not routed, item
     * created if absent (§3.4); otherwise silently ignored.
     */
    {OUT, SUBSCRIBED, 0, I | PA, PUSH | NEW},
    {OUT, SUBSCRIBED, I, I | PA, PUSH},
    {OUT, SUBSCRIBED, PI, I | F, FWD | PUSH | NEW | PRES},
    {OUT, SUBSCRIBED, I | PI, I | F, FWD | PUSH | PRES},
    {OUT, SUBSCRIBED, I | PO, I | PO | PA, PUSH},
    {OUT, SUBSCRIBED, I | PO | PI, I | F | PO, FWD | PUSH | PRES},
    {OUT, SUBSCRIBED, I | T, I | T | PA, PUSH},
    {OUT, SUBSCRIBED, I | T | PI, I | T | F, FWD | PUSH | PRES},
    {OUT, SUBSCRIBED, I | F, I | F, 0},
    {OUT, SUBSCRIBED, I | F | PO, I | F | PO, 0},
    {OUT, SUBSCRIBED, I | T | F, I | T | F, 0},
    {OUT, SUBSCRIBED, I | PA, I | PA, 0},
    {OUT, SUBSCRIBED, I | PO | PA, I | PO | PA, 0},
    {OUT, SUBSCRIBED, I | T | PA, I | T | PA, 0},

    /*
     * A.2.4 outbound unsubscribed: routed when denying a request or
     * cancelling 'from', unavailable presence first (§3.2.2); a request
     * without an item just disappears; a pre-approval is removed, not
     * routed, pushed (§3.2.2).
     */
    {OUT, UNSUBSCRIBED, 0, 0, 0},
    {OUT, UNSUBSCRIBED, I, I, 0},
    {OUT, UNSUBSCRIBED, PI, 0, FWD},
    {OUT, UNSUBSCRIBED, I | PI, I, FWD},
    {OUT, UNSUBSCRIBED, I | PO, I | PO, 0},
    {OUT, UNSUBSCRIBED, I | PO | PI, I | PO, FWD},
    {OUT, UNSUBSCRIBED, I | T, I | T, 0},
    {OUT, UNSUBSCRIBED, I | T | PI, I | T, FWD},
    {OUT, UNSUBSCRIBED, I | F, I, UNAV | FWD | PUSH},
    {OUT, UNSUBSCRIBED, I | F | PO, I | PO, UNAV | FWD | PUSH},
    {OUT, UNSUBSCRIBED, I | T | F, I | T, UNAV | FWD | PUSH},
    {OUT, UNSUBSCRIBED, I | PA, I, PUSH},
    {OUT, UNSUBSCRIBED, I | PO | PA, I | PO, PUSH},
    {OUT, UNSUBSCRIBED, I | T | PA, I | T, PUSH},

    /*
     * A.3.1 inbound subscribe: delivered in None, None + Pending Out
     * and To; no item is created for it (§3.1.3) and pending-in is not
     * shown, so no push; a repeated request is dropped; already 'from':
     * answered 'subscribed' by the server (A.3.1 footnote) with current
     * presence (our choice); pre-approved: answered and consumed (§3.4).
     */
    {IN, SUBSCRIBE, 0, PI, FWD},
    {IN, SUBSCRIBE, I, I | PI, FWD},
    {IN, SUBSCRIBE, PI, PI, 0},
    {IN, SUBSCRIBE, I | PI, I | PI, 0},
    {IN, SUBSCRIBE, I | PO, I | PO | PI, FWD},
    {IN, SUBSCRIBE, I | PO | PI, I | PO | PI, 0},
    {IN, SUBSCRIBE, I | T, I | T | PI, FWD},
    {IN, SUBSCRIBE, I | T | PI, I | T | PI, 0},
    {IN, SUBSCRIBE, I | F, I | F, REPLY | PRES},
    {IN, SUBSCRIBE, I | F | PO, I | F | PO, REPLY | PRES},
    {IN, SUBSCRIBE, I | T | F, I | T | F, REPLY | PRES},
    {IN, SUBSCRIBE, I | PA, I | F, REPLY | PUSH | PRES},
    {IN, SUBSCRIBE, I | PO | PA, I | F | PO, REPLY | PUSH | PRES},
    {IN, SUBSCRIBE, I | T | PA, I | T | F, REPLY | PUSH | PRES},

    /*
     * A.3.2 inbound unsubscribe: delivered when it withdraws a request
     * or a subscription; losing 'from' means a push and unavailable
     * presence to the contact (§3.3.3).
     */
    {IN, UNSUBSCRIBE, 0, 0, 0},
    {IN, UNSUBSCRIBE, I, I, 0},
    {IN, UNSUBSCRIBE, PI, 0, FWD},
    {IN, UNSUBSCRIBE, I | PI, I, FWD},
    {IN, UNSUBSCRIBE, I | PO, I | PO, 0},
    {IN, UNSUBSCRIBE, I | PO | PI, I | PO, FWD},
    {IN, UNSUBSCRIBE, I | T, I | T, 0},
    {IN, UNSUBSCRIBE, I | T | PI, I | T, FWD},
    {IN, UNSUBSCRIBE, I | F, I, FWD | PUSH | UNAV},
    {IN, UNSUBSCRIBE, I | F | PO, I | PO, FWD | PUSH | UNAV},
    {IN, UNSUBSCRIBE, I | T | F, I | T, FWD | PUSH | UNAV},
    {IN, UNSUBSCRIBE, I | PA, I | PA, 0},
    {IN, UNSUBSCRIBE, I | PO | PA, I | PO | PA, 0},
    {IN, UNSUBSCRIBE, I | T | PA, I | T | PA, 0},

    /*
     * A.3.3 inbound subscribed: delivered and pushed only if the user
     * asked (ask='subscribe'), otherwise silently ignored (§3.1.6).
     */
    {IN, SUBSCRIBED, 0, 0, 0},
    {IN, SUBSCRIBED, I, I, 0},
    {IN, SUBSCRIBED, PI, PI, 0},
    {IN, SUBSCRIBED, I | PI, I | PI, 0},
    {IN, SUBSCRIBED, I | PO, I | T, FWD | PUSH},
    {IN, SUBSCRIBED, I | PO | PI, I | T | PI, FWD | PUSH},
    {IN, SUBSCRIBED, I | T, I | T, 0},
    {IN, SUBSCRIBED, I | T | PI, I | T | PI, 0},
    {IN, SUBSCRIBED, I | F, I | F, 0},
    {IN, SUBSCRIBED, I | F | PO, I | T | F, FWD | PUSH},
    {IN, SUBSCRIBED, I | T | F, I | T | F, 0},
    {IN, SUBSCRIBED, I | PA, I | PA, 0},
    {IN, SUBSCRIBED, I | PO | PA, I | T | PA, FWD | PUSH},
    {IN, SUBSCRIBED, I | T | PA, I | T | PA, 0},

    /*
     * A.3.4 inbound unsubscribed: delivered and pushed if it denies the
     * user's request or cancels 'to' (§3.2.3), otherwise ignored; our
     * own pre-approval of the contact is unaffected.
     */
    {IN, UNSUBSCRIBED, 0, 0, 0},
    {IN, UNSUBSCRIBED, I, I, 0},
    {IN, UNSUBSCRIBED, PI, PI, 0},
    {IN, UNSUBSCRIBED, I | PI, I | PI, 0},
    {IN, UNSUBSCRIBED, I | PO, I, FWD | PUSH},
    {IN, UNSUBSCRIBED, I | PO | PI, I | PI, FWD | PUSH},
    {IN, UNSUBSCRIBED, I | T, I, FWD | PUSH},
    {IN, UNSUBSCRIBED, I | T | PI, I | PI, FWD | PUSH},
    {IN, UNSUBSCRIBED, I | F, I | F, 0},
    {IN, UNSUBSCRIBED, I | F | PO, I | F, FWD | PUSH},
    {IN, UNSUBSCRIBED, I | T | F, I | F, FWD | PUSH},
    {IN, UNSUBSCRIBED, I | PA, I | PA, 0},
    {IN, UNSUBSCRIBED, I | PO | PA, I | PA, FWD | PUSH},
    {IN, UNSUBSCRIBED, I | T | PA, I | PA, FWD | PUSH},
};
#define NROWS (sizeof(table) / sizeof(table[0]))

static struct subscription_change
run(enum direction dir, enum subscription_type type, unsigned state)
{
	return dir == OUT ? subscription_outbound(state, type)
	                  : subscription_inbound(state, type);
}

/* Every row gives the expected state and actions. */
static void
test_table(void)
{
	size_t i;

	for (i = 0; i < NROWS; i++) {
		const struct expect *e = &table[i];
		struct subscription_change c = run(e->dir, e->type, e->state);

		if (c.state == e->want_state && c.actions == e->want_actions)
			unit_passed++;
		else {
			unit_failed++;
			fprintf(stderr,
			    "FAIL %s: %s %s in 0x%02x (%s): got state 0x%02x "
			    "actions 0x%02x, want 0x%02x 0x%02x\n",
			    __FILE__, e->dir == OUT ? "outbound" : "inbound",
			    subscription_type_name(e->type), e->state,
			    subscription_state_name(e->state), c.state,
			    c.actions, e->want_state, e->want_actions);
		}
		CHECK(subscription_valid(c.state));
	}
}

/* The table holds each valid (state, type, direction) exactly once. */
static void
test_table_complete(void)
{
	unsigned s;
	size_t i, n = 0;
	int dir, type;

	for (s = 0; s < 64; s++)
		n += subscription_valid(s) ? 1 : 0;
	CHECK(n == NVALID);
	for (i = 0; i < NVALID; i++)
		CHECK(subscription_valid(valid_states[i]));
	CHECK(NROWS == NVALID * 4 * 2);

	for (i = 0; i < NVALID; i++)
		for (dir = OUT; dir <= IN; dir++)
			for (type = SUBSCRIBE; type <= UNSUBSCRIBED; type++) {
				size_t j, found = 0;

				for (j = 0; j < NROWS; j++)
					if (table[j].state == valid_states[i] &&
					    (int)table[j].dir == dir &&
					    (int)table[j].type == type)
						found++;
				CHECK(found == 1);
			}
}

/* Invalid states and types change nothing and do nothing. */
static void
test_invalid(void)
{
	static const unsigned bad[] = {
	    T | PO | I,  /* pending out while already subscribed */
	    F | PI | I,  /* pending in while already 'from' */
	    PA,          /* pre-approval without an item */
	    I | F | PA,  /* pre-approval with 'from' */
	    I | PI | PA, /* pre-approval with a pending request */
	    T,           /* subscription without an item */
	    PO,          /* ask without an item */
	    0x40,        /* unknown bit */
	    I | 0x80,
	};
	struct subscription_change c;
	size_t i;
	int type;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(!subscription_valid(bad[i]));
		CHECK_STR(subscription_state_name(bad[i]), "invalid");
		for (type = SUBSCRIBE; type <= UNSUBSCRIBED; type++) {
			c = subscription_outbound(bad[i], type);
			CHECK(c.state == bad[i] && c.actions == 0);
			c = subscription_inbound(bad[i], type);
			CHECK(c.state == bad[i] && c.actions == 0);
		}
	}
	c = subscription_outbound(0, (enum subscription_type)42);
	CHECK(c.state == 0 && c.actions == 0);
	c = subscription_inbound(I | T, (enum subscription_type) - 1);
	CHECK(c.state == (I | T) && c.actions == 0);
}

/* Roster attributes and presence helpers for every valid state. */
static void
test_helpers(void)
{
	static const struct {
		unsigned state;
		const char *attr, *name;
		int ask, approved, to, from;
	} rows[] = {
	    {0, "none", "None", 0, 0, 0, 0},
	    {I, "none", "None", 0, 0, 0, 0},
	    {PI, "none", "None + Pending In", 0, 0, 0, 0},
	    {I | PI, "none", "None + Pending In", 0, 0, 0, 0},
	    {I | PO, "none", "None + Pending Out", 1, 0, 0, 0},
	    {I | PO | PI, "none", "None + Pending Out+In", 1, 0, 0, 0},
	    {I | T, "to", "To", 0, 0, 1, 0},
	    {I | T | PI, "to", "To + Pending In", 0, 0, 1, 0},
	    {I | F, "from", "From", 0, 0, 0, 1},
	    {I | F | PO, "from", "From + Pending Out", 1, 0, 0, 1},
	    {I | T | F, "both", "Both", 0, 0, 1, 1},
	    {I | PA, "none", "None", 0, 1, 0, 0},
	    {I | PO | PA, "none", "None + Pending Out", 1, 1, 0, 0},
	    {I | T | PA, "to", "To", 0, 1, 1, 0},
	};
	size_t i;

	CHECK(sizeof(rows) / sizeof(rows[0]) == NVALID);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		unsigned s = rows[i].state;

		CHECK_STR(subscription_attr(s), rows[i].attr);
		CHECK_STR(subscription_state_name(s), rows[i].name);
		CHECK(subscription_ask(s) == rows[i].ask);
		CHECK(subscription_approved(s) == rows[i].approved);
		CHECK(subscription_receives_presence(s) == rows[i].to);
		CHECK(subscription_sends_presence(s) == rows[i].from);
		CHECK(subscription_stored(s) == (s != 0));
	}

	/* The stored integer values are part of the database format. */
	CHECK(SUB_TO == 1 && SUB_FROM == 2 && SUB_PENDING_OUT == 4 &&
	      SUB_PENDING_IN == 8 && SUB_PREAPPROVED == 16 && SUB_ITEM == 32);
}

static void
test_type_names(void)
{
	static const char *names[] = {
	    "subscribe", "subscribed", "unsubscribe", "unsubscribed"};
	enum subscription_type t;
	int i;

	for (i = 0; i < 4; i++) {
		t = (enum subscription_type) - 1;
		CHECK(subscription_type_parse(names[i], &t) == 0);
		CHECK(t == (enum subscription_type)i);
		CHECK_STR(subscription_type_name(t), names[i]);
	}
	CHECK(subscription_type_parse("unavailable", &t) == -1);
	CHECK(subscription_type_parse("probe", &t) == -1);
	CHECK(subscription_type_parse("Subscribe", &t) == -1);
	CHECK(subscription_type_parse("", &t) == -1);
	CHECK(subscription_type_parse(NULL, &t) == -1);
	CHECK_STR(subscription_type_name((enum subscription_type)4), "?");
}

/*
 * Two users each with a roster item for the other: alice's view of bob and
 * bob's view of alice.  exchange() runs a stanza through the sender's outbound
 * and, if routed, the receiver's inbound processing, including a reply
 * 'subscribed' generated by the receiver's server; it returns the actions
 * of both sides for the caller to inspect.
 */
struct pair {
	unsigned alice, bob;
	unsigned out_actions, in_actions, reply_actions;
};

static void
exchange(struct pair *p, int from_alice, enum subscription_type type)
{
	unsigned *sender = from_alice ? &p->alice : &p->bob;
	unsigned *receiver = from_alice ? &p->bob : &p->alice;
	struct subscription_change c;

	p->in_actions = p->reply_actions = 0;
	c = subscription_outbound(*sender, type);
	*sender = c.state;
	p->out_actions = c.actions;
	if (!(c.actions & SUB_ACT_FORWARD))
		return;
	c = subscription_inbound(*receiver, type);
	*receiver = c.state;
	p->in_actions = c.actions;
	if (c.actions & SUB_ACT_REPLY_SUBSCRIBED) {
		c = subscription_inbound(*sender, SUBSCRIPTION_SUBSCRIBED);
		*sender = c.state;
		p->reply_actions = c.actions;
	}
}

#define ALICE 1
#define BOB 0

static void
test_sequences(void)
{
	struct pair p = {0, 0, 0, 0, 0};

	/* Alice asks; bob's server remembers the request without an item. */
	exchange(&p, ALICE, SUBSCRIBE);
	CHECK(p.alice == (I | PO));
	CHECK(p.out_actions == (FWD | PUSH | NEW));
	CHECK(p.bob == PI);
	CHECK(p.in_actions == FWD);
	CHECK(subscription_ask(p.alice));
	CHECK_STR(subscription_attr(p.alice), "none");

	/* Bob approves: to / from, bob's presence goes to alice. */
	exchange(&p, BOB, SUBSCRIBED);
	CHECK(p.bob == (I | F));
	CHECK(p.out_actions == (FWD | PUSH | NEW | PRES));
	CHECK(p.alice == (I | T));
	CHECK(p.in_actions == (FWD | PUSH));
	CHECK_STR(subscription_attr(p.alice), "to");
	CHECK_STR(subscription_attr(p.bob), "from");
	CHECK(subscription_receives_presence(p.alice));
	CHECK(subscription_sends_presence(p.bob));
	CHECK(!subscription_ask(p.alice));

	/* Bob asks back and alice approves: both / both. */
	exchange(&p, BOB, SUBSCRIBE);
	CHECK(p.bob == (I | F | PO));
	CHECK(p.alice == (I | T | PI));
	CHECK(p.in_actions == FWD);
	exchange(&p, ALICE, SUBSCRIBED);
	CHECK(p.alice == (I | T | F));
	CHECK(p.out_actions == (FWD | PUSH | PRES));
	CHECK(p.bob == (I | T | F));
	CHECK(p.in_actions == (FWD | PUSH));
	CHECK_STR(subscription_attr(p.alice), "both");
	CHECK_STR(subscription_attr(p.bob), "both");

	/* A repeated subscribe from bob is answered by alice's server. */
	exchange(&p, BOB, SUBSCRIBE);
	CHECK(p.out_actions == FWD);
	CHECK(p.in_actions == (REPLY | PRES));
	CHECK(p.reply_actions == 0);
	CHECK(p.alice == (I | T | F) && p.bob == (I | T | F));

	/* Alice unsubscribes from bob: bob sends unavailable. */
	exchange(&p, ALICE, UNSUBSCRIBE);
	CHECK(p.alice == (I | F));
	CHECK(p.out_actions == (FWD | PUSH));
	CHECK(p.bob == (I | T));
	CHECK(p.in_actions == (FWD | PUSH | UNAV));
	CHECK_STR(subscription_attr(p.alice), "from");
	CHECK_STR(subscription_attr(p.bob), "to");

	/* Alice cancels bob's subscription too: none / none. */
	exchange(&p, ALICE, UNSUBSCRIBED);
	CHECK(p.alice == I);
	CHECK(p.out_actions == (UNAV | FWD | PUSH));
	CHECK(p.bob == I);
	CHECK(p.in_actions == (FWD | PUSH));
	CHECK_STR(subscription_attr(p.alice), "none");
	CHECK_STR(subscription_attr(p.bob), "none");
}

/* A request denied before any item existed leaves no trace at bob. */
static void
test_denied_request(void)
{
	struct pair p = {0, 0, 0, 0, 0};

	exchange(&p, ALICE, SUBSCRIBE);
	CHECK(p.bob == PI && subscription_stored(p.bob));
	exchange(&p, BOB, UNSUBSCRIBED);
	CHECK(p.bob == SUB_NONE);
	CHECK(!subscription_stored(p.bob));
	CHECK(p.out_actions == FWD);
	CHECK(p.alice == I);
	CHECK(p.in_actions == (FWD | PUSH));
	CHECK(!subscription_ask(p.alice));

	/* Alice withdraws a second request herself. */
	exchange(&p, ALICE, SUBSCRIBE);
	CHECK(p.bob == PI);
	exchange(&p, ALICE, UNSUBSCRIBE);
	CHECK(p.alice == I);
	CHECK(p.bob == SUB_NONE);
	CHECK(p.in_actions == FWD);
}

/* Bob pre-approves alice; her later request is approved by his server. */
static void
test_preapproval(void)
{
	struct pair p = {0, 0, 0, 0, 0};

	exchange(&p, BOB, SUBSCRIBED);
	CHECK(p.bob == (I | PA));
	CHECK(p.out_actions == (PUSH | NEW));
	CHECK(subscription_approved(p.bob));
	CHECK(p.alice == 0); /* never routed */

	exchange(&p, ALICE, SUBSCRIBE);
	CHECK(p.alice == (I | T));
	CHECK(p.out_actions == (FWD | PUSH | NEW));
	CHECK(p.bob == (I | F));
	CHECK(p.in_actions == (REPLY | PUSH | PRES));
	CHECK(!(p.in_actions & FWD));
	CHECK(p.reply_actions == (FWD | PUSH));
	CHECK(!subscription_approved(p.bob));
	CHECK_STR(subscription_attr(p.alice), "to");
	CHECK_STR(subscription_attr(p.bob), "from");

	/* A cancelled pre-approval lets the next request through. */
	p.alice = p.bob = 0;
	exchange(&p, BOB, SUBSCRIBED);
	exchange(&p, BOB, UNSUBSCRIBED);
	CHECK(p.bob == I);
	CHECK(p.out_actions == PUSH);
	exchange(&p, ALICE, SUBSCRIBE);
	CHECK(p.bob == (I | PI));
	CHECK(p.in_actions == FWD);
	CHECK(p.alice == (I | PO));
}

int
main(void)
{
	test_table();
	test_table_complete();
	test_invalid();
	test_helpers();
	test_type_names();
	test_sequences();
	test_denied_request();
	test_preapproval();
	return UNIT_DONE("subscription");
}
