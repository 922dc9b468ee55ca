/*
 * Unit tests for the session API (xmppd/core/session.c) over a transport
 * made here, with the session manager (sm.c) and hook chains (hooks.c)
 * it uses: sends, fan-out copies, holds that nest and survive a change of
 * transport, a detached session's queue and its limit, ends with and
 * without a transport; and hook chains in module order whatever the order
 * of registration, with removal by owner.
 */
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "buf.h"
#include "conf.h"
#include "core/hooks.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/transport.h"
#include "jid.h"
#include "unit.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

struct ev_loop *xmppd_loop;
struct conf *xmppd_conf;
double xmppd_started;

/* A transport that records what the session layer asked of it. */
struct test_transport {
	struct transport t;
	struct buf out;             /* what was sent, serialized */
	int holds;                  /* hold depth */
	int ends;
	char condition[64];
	size_t queued;              /* reported by status */
};

static void
tt_send(struct transport *t, const struct xel *st)
{
	struct test_transport *tt = container_of(t, struct test_transport, t);

	xel_serialize(st, &tt->out, NS_CLIENT);
}

static void
tt_send_raw(struct transport *t, const char *data, size_t len)
{
	struct test_transport *tt = container_of(t, struct test_transport, t);

	buf_add(&tt->out, data, len);
}

static void
tt_hold(struct transport *t)
{
	container_of(t, struct test_transport, t)->holds++;
}

static void
tt_release(struct transport *t)
{
	container_of(t, struct test_transport, t)->holds--;
}

static void
tt_end(struct transport *t, const char *condition, const char *text)
{
	struct test_transport *tt = container_of(t, struct test_transport, t);

	tt->ends++;
	snprintf(tt->condition, sizeof(tt->condition), "%s", condition);
	/* As c2s does: the stream's end unbinds its session. */
	if (t->session != NULL)
		sm_unbind(t->session);
}

static void
tt_status(const struct transport *t, struct transport_status *st)
{
	const struct test_transport *tt =
	    container_of(t, const struct test_transport, t);

	st->queued = tt->queued;
	st->last_input = 42.0;
	st->tls_version = "TLSv1.3";
	st->tls_cipher = "TEST";
	st->close_reason = NULL;
}

static const struct transport_ops tt_ops = {
	.kind = "test",
	.send = tt_send,
	.send_raw = tt_send_raw,
	.hold = tt_hold,
	.release = tt_release,
	.end = tt_end,
	.status = tt_status,
};

static void
tt_init(struct test_transport *tt, uint64_t id)
{
	memset(tt, 0, sizeof(*tt));
	tt->t.ops = &tt_ops;
	tt->t.id = id;
	tt->t.ip = "192.0.2.1";
	tt->t.addr = "192.0.2.1:5555";
	tt->t.tls = 1;
}

static const char *
sent(struct test_transport *tt)
{
	buf_addc(&tt->out, '\0');
	tt->out.len--;
	return buf_head(&tt->out);
}

static struct session *
bind_session(struct test_transport *tt, const char *full)
{
	struct jid j;
	struct session *s;

	if (jid_parse(&j, full) < 0)
		return NULL;
	s = sm_bind(&tt->t, &j, 0);
	jid_free(&j);
	return s;
}

static struct xel *
message(const char *body)
{
	struct xel *m = xel_new(arena_new(256), "message", NS_CLIENT);

	xel_text_set(xel_add(m, "body", NULL), body);
	return m;
}

static void
test_send_and_hold(void)
{
	struct test_transport a;
	struct session *s;
	struct xel *m;

	tt_init(&a, 1);
	s = bind_session(&a, "alice@example.org/one");
	CHECK(s != NULL && a.t.session == s && s->t == &a.t);
	m = message("hi");
	session_send(s, m);
	arena_free(m->arena);
	CHECK_STR(sent(&a), "<message><body>hi</body></message>");
	CHECK(s->stanzas_out == 1);
	buf_reset(&a.out);
	/* One serialization shared by a fan-out, 'to' escaped here. */
	session_send_fanout(s, "presence", "b'c@example.org", "/>", 2);
	CHECK_STR(sent(&a), "<presence to='b&apos;c@example.org'/>");
	session_hold(s);
	session_hold(s);
	CHECK(a.holds == 2 && s->held == 2);
	session_release(s);
	session_release(s);
	session_release(s);         /* one too many: ignored */
	CHECK(a.holds == 0 && s->held == 0);
	CHECK(session_is_tls(s));
	CHECK(!session_gone(s));
	CHECK(session_last_input(s) == 42.0);
	a.queued = xmppd_conf->limits.output_high + 1;
	CHECK(session_output_full(s));
	a.queued = 0;
	CHECK(!session_output_full(s));
	session_end(s, "conflict", "text");
	CHECK(a.ends == 1 && strcmp(a.condition, "conflict") == 0);
	CHECK(s->closing && a.t.session == NULL);
	CHECK_STR(session_end_reason(s), "conflict");
	CHECK(sm_find_id(s->id) == NULL);
	buf_free(&a.out);
}

static void
test_detached(void)
{
	struct test_transport a, b;
	struct session *s;
	struct xel *m;
	size_t before;

	tt_init(&a, 2);
	tt_init(&b, 3);
	s = bind_session(&a, "alice@example.org/two");
	CHECK(s != NULL);
	session_hold(s);
	session_detach(s);
	CHECK(s->t == NULL && a.t.session == NULL);
	CHECK(a.holds == 0);        /* the old transport's hold ends */
	CHECK(session_gone(s));     /* not known to reach the client */
	CHECK(session_input_paused(s));
	CHECK(!session_is_tls(s));
	m = message("while away");
	session_send(s, m);
	arena_free(m->arena);
	session_send_fanout(s, "presence", "x@example.org", "/>", 2);
	CHECK(a.out.len == 0);      /* nothing reached the old one */
	CHECK(buf_avail(&s->pending) > 0);
	before = buf_avail(&s->pending);
	CHECK(!session_output_full(s));
	session_attach(s, &b.t);
	CHECK(s->t == &b.t && b.t.session == s);
	CHECK(b.holds == 1);        /* the hold goes on on the new one */
	CHECK(buf_avail(&b.out) == before);
	CHECK_STR(sent(&b), "<message><body>while away</body></message>"
	    "<presence to='x@example.org'/>");
	CHECK(buf_avail(&s->pending) == 0);
	session_release(s);
	CHECK(b.holds == 0);
	/* Ended while detached: recorded, unbound, nothing sent. */
	session_detach(s);
	session_end(s, "connection-timeout", NULL);
	CHECK(s->closing && sm_find_id(s->id) == NULL);
	CHECK_STR(session_end_reason(s), "connection-timeout");
	CHECK(b.ends == 0);
	buf_free(&a.out);
	buf_free(&b.out);
}

static void
test_detached_limit(void)
{
	struct test_transport a;
	struct session *s;
	char body[1024];

	tt_init(&a, 4);
	s = bind_session(&a, "bob@example.org/r");
	CHECK(s != NULL);
	session_detach(s);
	memset(body, 'x', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	/* output-max is 4096 here: the fifth copy does not fit. */
	for (int i = 0; i < 5 && !s->closing; i++) {
		struct xel *m = message(body);

		session_send(s, m);
		arena_free(m->arena);
	}
	CHECK(s->closing);
	CHECK_STR(session_end_reason(s), "policy-violation");
	CHECK(buf_avail(&s->pending) <= 4096);
	buf_free(&a.out);
}

static void
test_conflict(void)
{
	struct test_transport a, b;
	struct session *s1, *s2;

	tt_init(&a, 5);
	tt_init(&b, 6);
	s1 = bind_session(&a, "carol@example.org/same");
	s2 = bind_session(&b, "carol@example.org/same");
	/* RFC 6120 §7.7.2.2: the new one wins. */
	CHECK(s1 != NULL && s2 != NULL && s1 != s2);
	CHECK(a.ends == 1 && strcmp(a.condition, "conflict") == 0);
	CHECK(s1->closing && !s2->closing);
	CHECK(sm_find_bare("carol", "example.org") == s2);
	session_end(s2, "system-shutdown", NULL);
	CHECK(sm_find_bare("carol", "example.org") == NULL);
	buf_free(&a.out);
	buf_free(&b.out);
}

/* Hook chains in owner order. */

static char order[16];
static size_t norder;

#define RECORDER(c)                                                       \
	static void rec_##c(const char *jid, const char *ip,              \
	    const char *mech, const char *cond)                           \
	{                                                                 \
		(void)jid, (void)ip, (void)mech, (void)cond;              \
		if (norder + 1 < sizeof(order))                           \
			order[norder++] = #c[0];                          \
	}
RECORDER(a)
RECORDER(b)
RECORDER(c)
RECORDER(d)
RECORDER(e)

static const char *
run_chain(void)
{
	norder = 0;
	hook_run_auth_failure("x@example.org", "192.0.2.1", "PLAIN",
	    "not-authorized");
	order[norder] = '\0';
	return order;
}

static void
test_hook_owners(void)
{
	hook_set_owner(HOOK_OWNER_CORE);
	hook_add_auth_failure(rec_e);           /* core: last */
	hook_set_owner(3);
	hook_add_auth_failure(rec_c);
	hook_set_owner(1);
	hook_add_auth_failure(rec_a);
	hook_set_owner(2);
	hook_add_auth_failure(rec_b);
	hook_add_auth_failure(rec_d);           /* same owner: in order */
	hook_set_owner(HOOK_OWNER_CORE);
	CHECK_STR(run_chain(), "abdce");
	hook_remove_owner(2);
	CHECK_STR(run_chain(), "ace");
	/* Switched on again later: back in its place. */
	hook_set_owner(2);
	hook_add_auth_failure(rec_b);
	hook_set_owner(HOOK_OWNER_CORE);
	CHECK_STR(run_chain(), "abce");
	hook_remove_owner(1);
	hook_remove_owner(2);
	hook_remove_owner(3);
	hook_remove_owner(HOOK_OWNER_CORE);
	CHECK_STR(run_chain(), "");
}

int
main(void)
{
	static struct conf conf;

	xmppd_loop = ev_default_loop(0);
	conf.limits.output_high = 1000;
	conf.limits.output_max = 4096;
	xmppd_conf = &conf;
	test_send_and_hold();
	test_detached();
	test_detached_limit();
	test_conflict();
	test_hook_owners();
	/* The graveyard is freed in the loop's before-sleep hook. */
	ev_run(xmppd_loop, EVRUN_NOWAIT);
	return UNIT_DONE("session");
}
