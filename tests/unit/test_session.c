/*
 * Unit tests for the session API (xmppd/core/session.c) over a transport
 * made here, with the session manager (sm.c) and hook chains (hooks.c)
 * it uses: sends, fan-out copies, holds that nest and survive a change of
 * transport, a detached session's queue and its limit, ends with and
 * without a transport; hook chains in module order whatever the order
 * of registration, with removal by owner; and XEP-0198 (smacks.c,
 * included here to reach its counters): counting and acks modulo 2^32,
 * the server's ack requests, the queue bound, hibernation, resumption
 * with the unacknowledged stanzas sent again with a delay, and what an
 * end does with them (recorded by the router and storage doubles below).
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
#include "store/store_engine.h"
#include "unit.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

struct ev_loop *xmppd_loop;
struct conf *xmppd_conf;
double xmppd_started;

/* smacks.c's collaborators: the router records what it is given, the
 * store runs a job at once (its queue is empty here). */
static char redelivered[4096], bounced[1024];

void
router_redeliver(struct xel *msg, const char *user, const char *host)
{
	struct buf b = BUF_INIT;

	xel_serialize(msg, &b, NS_CLIENT);
	buf_addc(&b, '\0');
	snprintf(redelivered + strlen(redelivered), sizeof(redelivered) -
	    strlen(redelivered), "%s@%s:%s;", user, host, buf_head(&b));
	buf_free(&b);
}

void
router_bounce_to_sender(const struct xel *st, const char *condition)
{
	snprintf(bounced + strlen(bounced), sizeof(bounced) - strlen(bounced),
	    "%s:%s;", xel_attr(st, "id"), condition);
}

/* sm.c's requesters on other servers send through it; none here. */
void
router_route(struct xel *st)
{
	abort();
}

void
store_job_submit(struct store_job *j)
{
	j->status = j->ops->run(j);
	j->ops->complete(j);
	j->ops->free(j);
}

#include "../../xmppd/core/smacks.c"
#include "../../xmppd/core/csi.c"

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
parse(const char *xml)
{
	struct xml_limits lim = { 65536, 1024, 1024, SIZE_MAX };

	return xml_parse_element(xml, strlen(xml), NS_CLIENT, &lim);
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
	m = parse("<presence to='b&apos;c@example.org'/>");
	session_send_fanout(s, m, "b'c@example.org", "/>", 2);
	arena_free(m->arena);
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
	m = parse("<presence to='x@example.org'/>");
	session_send_fanout(s, m, "x@example.org", "/>", 2);
	arena_free(m->arena);
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

/* XEP-0198. */

static struct xel *
addressed(const char *kind, const char *id, const char *type)
{
	struct xel *m = xel_new(arena_new(256), kind, NS_CLIENT);

	xel_set_attr(m, "from", "bob@example.org/b");
	xel_set_attr(m, "to", "dave@example.org/phone");
	xel_set_attr(m, "id", id);
	if (type != NULL)
		xel_set_attr(m, "type", type);
	if (strcmp(kind, "message") == 0)
		xel_text_set(xel_add(m, "body", NULL), id);
	else if (strcmp(kind, "iq") == 0)
		xel_add(m, "query", "jabber:iq:version");
	return m;
}

static void
send_one(struct session *s, const char *kind, const char *id,
    const char *type)
{
	struct xel *m = addressed(kind, id, type);

	session_send(s, m);
	arena_free(m->arena);
}

static void
test_sm_counting(void)
{
	struct test_transport a;
	struct session *s;
	const char *id = NULL;
	unsigned max = 0;

	xmppd_conf->limits.sm_ack_stanzas = 3;
	tt_init(&a, 10);
	s = bind_session(&a, "dave@example.org/phone");
	CHECK(smacks_enable(s, 1, &id, &max) == 0);
	CHECK(id != NULL && strlen(id) == SMACKS_ID_LEN && max == 300);
	CHECK(strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_") == SMACKS_ID_LEN);
	CHECK(smacks_enable(s, 1, &id, &max) == -1);    /* once */
	CHECK(smacks_find(id, "dave@example.org") == s);
	CHECK(smacks_find(id, "eve@example.org") == NULL);
	CHECK_STR(smacks_state(s), "resumable");
	send_one(s, "message", "m1", "chat");
	send_one(s, "message", "m2", "chat");
	CHECK(strstr(sent(&a), "<r xmlns") == NULL);
	send_one(s, "message", "m3", "chat");
	/* sm-ack-stanzas 3: the third is followed by <r/>, once. */
	CHECK(strstr(sent(&a), "</message><r xmlns='urn:xmpp:sm:3'/>") != NULL);
	send_one(s, "message", "m4", "chat");
	CHECK(strstr(strstr(sent(&a), "<r ") + 1, "<r ") == NULL);
	CHECK(smacks_unacked(s) == 4 && smacks_sent_count(s) == 4);
	CHECK(smacks_ack(s, 2) == 0 && smacks_unacked(s) == 2);
	CHECK(smacks_ack(s, 2) == 0 && smacks_unacked(s) == 2);  /* again */
	CHECK(smacks_ack(s, 5) == -1 && smacks_unacked(s) == 2); /* too high */
	CHECK(smacks_ack(s, 4) == 0 && smacks_unacked(s) == 0);
	CHECK(s->smacks->q == NULL);        /* an empty queue is given back */
	/* Counting from the client, and <r/> answered with it. */
	smacks_handled(s);
	smacks_handled(s);
	buf_reset(&a.out);
	smacks_request(s);
	CHECK_STR(sent(&a), "<a xmlns='urn:xmpp:sm:3' h='2'/>");
	/* Nonzas are not counted. */
	session_send_nonza(s, "<r/>", 4);
	CHECK(smacks_sent_count(s) == 4);
	session_end(s, "system-shutdown", NULL);
	CHECK(smacks_find(id, "dave@example.org") == NULL);
	buf_free(&a.out);
}

/* §4: "h" wraps to 0 after 2^32 - 1. */
static void
test_sm_wrap(void)
{
	struct test_transport a;
	struct session *s;
	const char *id = NULL;
	unsigned max = 0;

	xmppd_conf->limits.sm_ack_stanzas = 0;
	tt_init(&a, 11);
	s = bind_session(&a, "dave@example.org/wrap");
	CHECK(smacks_enable(s, 0, &id, &max) == 0 && id == NULL);
	CHECK_STR(smacks_state(s), "on");
	s->smacks->h_out = s->smacks->acked = UINT32_MAX - 1;
	s->smacks->h_in = UINT32_MAX;
	send_one(s, "message", "w1", "chat");   /* number 2^32 - 1 */
	send_one(s, "message", "w2", "chat");   /* number 0 */
	send_one(s, "message", "w3", "chat");   /* number 1 */
	CHECK(smacks_sent_count(s) == 1 && smacks_unacked(s) == 3);
	CHECK(smacks_ack(s, 2) == -1);
	CHECK(smacks_ack(s, 0) == 0 && smacks_unacked(s) == 1);
	/* Behind what was acknowledged, across the wrap: nothing changes. */
	CHECK(smacks_ack(s, UINT32_MAX) == 0 && smacks_unacked(s) == 1);
	CHECK(smacks_ack(s, UINT32_MAX - 5) == 0 && smacks_unacked(s) == 1);
	CHECK(smacks_ack(s, 1) == 0 && smacks_unacked(s) == 0);
	smacks_handled(s);
	CHECK(smacks_handled_count(s) == 0);
	session_end(s, "system-shutdown", NULL);
	buf_free(&a.out);
}

static void
test_sm_resume_and_end(void)
{
	struct test_transport a, b, c;
	struct session *s;
	const char *id = NULL;
	unsigned max = 0;
	char sid[SMACKS_ID_LEN + 1];

	xmppd_conf->limits.sm_ack_stanzas = 0;
	tt_init(&a, 12);
	tt_init(&b, 13);
	tt_init(&c, 14);
	s = bind_session(&a, "dave@example.org/phone");
	CHECK(smacks_enable(s, 1, &id, &max) == 0);
	snprintf(sid, sizeof(sid), "%s", id);
	send_one(s, "message", "r1", "chat");
	send_one(s, "iq", "q1", "get");
	/* The connection dies: the session waits, detached. */
	CHECK(session_lost(s, "connection-timeout", NULL) == 1);
	CHECK(a.ends == 1 && strcmp(a.condition, "connection-timeout") == 0);
	CHECK(s->t == NULL && !s->closing && smacks_waiting(s));
	CHECK_STR(smacks_state(s), "waiting");
	CHECK(sm_find_id(s->id) == s);          /* still routable */
	send_one(s, "message", "r2", "chat");    /* queued while waiting */
	CHECK(buf_avail(&s->pending) == 0 && smacks_unacked(s) == 3);
	/* Resumed on b with h = 1: r1 is acknowledged, the rest comes again,
	 * the message with a delay. */
	CHECK(smacks_resume(s, &b.t, 9, 1) == -1 && s->t == NULL);
	CHECK(smacks_resume(s, &b.t, 1, 1) == 0);
	CHECK(s->t == &b.t && !smacks_waiting(s));
	CHECK(strncmp(sent(&b), "<resumed xmlns='urn:xmpp:sm:3' previd='", 39)
	    == 0);
	CHECK(strstr(sent(&b), "h='0'/>") != NULL);
	CHECK(strstr(sent(&b), "<body>r1</body>") == NULL);
	CHECK(strstr(sent(&b), "<iq from='bob@example.org/b' "
	    "to='dave@example.org/phone' id='q1' type='get'>") != NULL);
	CHECK(strstr(sent(&b), "<body>r2</body><delay xmlns='urn:xmpp:delay' "
	    "from='example.org' stamp='") != NULL);
	CHECK(strstr(sent(&b), "<r xmlns='urn:xmpp:sm:3'/>") != NULL);
	CHECK(smacks_unacked(s) == 2);
	/* The old connection of a second resumption is still there: it is
	 * closed with <conflict/>. */
	CHECK(smacks_can_resume(s, 1) && !smacks_can_resume(s, 9));
	CHECK_STR(smacks_id(s), sid);
	/* Without announce (SASL2 inline, XEP-0388: the caller put
	 * <resumed/> in its <success/>): the stanzas come, not <resumed/>. */
	CHECK(smacks_resume(s, &c.t, 1, 0) == 0);
	CHECK(b.ends == 1 && strcmp(b.condition, "conflict") == 0);
	CHECK(s->t == &c.t && !s->closing);
	CHECK(strstr(sent(&c), "<resumed") == NULL);
	CHECK(strstr(sent(&c), "<body>r2</body>") != NULL);
	/* The session ends: the message is delivered again by the router,
	 * the request answered with an error. */
	redelivered[0] = bounced[0] = '\0';
	session_end(s, "system-shutdown", NULL);
	CHECK(strstr(redelivered, "dave@example.org:<message from='bob@"
	    "example.org/b' to='dave@example.org/phone' id='r2' type='chat'>"
	    "<body>r2</body></message>;") == redelivered);
	CHECK_STR(bounced, "q1:service-unavailable;");
	CHECK(smacks_find(sid, "dave@example.org") == NULL);
	buf_free(&a.out);
	buf_free(&b.out);
	buf_free(&c.out);
}

static void
test_sm_queue_limit_and_timeout(void)
{
	struct test_transport a;
	struct session *s;
	const char *id = NULL;
	unsigned max = 0;
	char body[1024];

	xmppd_conf->limits.sm_queue = 4096;
	tt_init(&a, 15);
	s = bind_session(&a, "dave@example.org/full");
	CHECK(smacks_enable(s, 1, &id, &max) == 0);
	memset(body, 'x', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	redelivered[0] = '\0';
	for (int i = 0; i < 5 && !s->closing; i++) {
		struct xel *m = message(body);

		session_send(s, m);
		arena_free(m->arena);
	}
	CHECK(s->closing && a.ends == 1);
	CHECK_STR(a.condition, "policy-violation");
	/* All five went back to the router, none lost. */
	CHECK(strlen(redelivered) > 0);
	xmppd_conf->limits.sm_queue = 1048576;
	/* resume-timeout: the waiting session ends when it passes. */
	xmppd_conf->limits.resume_timeout = 1;
	buf_free(&a.out);
	tt_init(&a, 16);
	s = bind_session(&a, "dave@example.org/late");
	CHECK(smacks_enable(s, 1, &id, &max) == 0 && max == 1);
	CHECK(session_lost(s, NULL, NULL) == 1 && a.ends == 0);
	ev_run(xmppd_loop, 0);      /* until the timer: nothing else runs */
	CHECK(s->closing);
	CHECK_STR(session_end_reason(s), "not resumed");
	xmppd_conf->limits.resume_timeout = 300;
	/* Without resumption a lost connection is an end. */
	buf_free(&a.out);
	tt_init(&a, 17);
	s = bind_session(&a, "dave@example.org/plain");
	CHECK(smacks_enable(s, 0, &id, &max) == 0);
	CHECK(session_lost(s, NULL, NULL) == 0 && s->t == &a.t);
	session_end(s, "system-shutdown", NULL);
	buf_free(&a.out);
}

/* XEP-0352: what waits for an inactive client, and what wakes it. */

static int
classify(const char *xml)
{
	struct xel *st = parse(xml);
	int c;

	if (st == NULL)
		return -1;
	c = (int)csi_classify(st);
	arena_free(st->arena);
	return c;
}

static void
test_csi_classify(void)
{
	CHECK(classify("<presence from='a@x/r'/>") == CSI_COALESCE);
	CHECK(classify("<presence from='a@x/r' type='unavailable'/>") ==
	    CSI_COALESCE);
	CHECK(classify("<presence/>") == CSI_HOLD);
	CHECK(classify("<presence from='a@x' type='subscribe'/>") ==
	    CSI_URGENT);
	CHECK(classify("<presence from='a@x' type='error'/>") == CSI_URGENT);
	CHECK(classify("<message><body>hi</body></message>") == CSI_URGENT);
	CHECK(classify("<message><subject>topic</subject></message>") ==
	    CSI_URGENT);
	CHECK(classify("<message type='error'/>") == CSI_URGENT);
	CHECK(classify("<message><composing xmlns='http://jabber.org/protocol"
	    "/chatstates'/></message>") == CSI_HOLD);
	CHECK(classify("<message><received xmlns='urn:xmpp:receipts' "
	    "id='1'/></message>") == CSI_HOLD);
	CHECK(classify("<message><displayed xmlns='urn:xmpp:chat-markers:0' "
	    "id='1'/></message>") == CSI_HOLD);
	CHECK(classify("<message><event xmlns='http://jabber.org/protocol/"
	    "pubsub#event'/></message>") == CSI_HOLD);
	/* A body in another namespace is no body. */
	CHECK(classify("<message><body xmlns='urn:example'>x</body>"
	    "</message>") == CSI_HOLD);
	CHECK(classify("<message><encrypted xmlns='eu.siacs.conversations."
	    "axolotl'/></message>") == CSI_URGENT);
	CHECK(classify("<message><encrypted xmlns='urn:xmpp:omemo:2'/>"
	    "</message>") == CSI_URGENT);
	CHECK(classify("<message><propose xmlns='urn:xmpp:jingle-message:0' "
	    "id='c'/></message>") == CSI_URGENT);
	CHECK(classify("<message><x xmlns='jabber:x:conference' jid='r@m'/>"
	    "</message>") == CSI_URGENT);
	CHECK(classify("<message><x xmlns='http://jabber.org/protocol/"
	    "muc#user'><invite from='a@x'/></x></message>") == CSI_URGENT);
	CHECK(classify("<message><x xmlns='http://jabber.org/protocol/"
	    "muc#user'/></message>") == CSI_HOLD);
	/* A carbon copy is what it carries. */
	CHECK(classify("<message><received xmlns='urn:xmpp:carbons:2'>"
	    "<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:"
	    "client'><body>hi</body></message></forwarded></received>"
	    "</message>") == CSI_URGENT);
	CHECK(classify("<message><sent xmlns='urn:xmpp:carbons:2'>"
	    "<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:"
	    "client'><active xmlns='http://jabber.org/protocol/chatstates'/>"
	    "</message></forwarded></sent></message>") == CSI_HOLD);
	CHECK(classify("<iq type='result' id='1'/>") == CSI_URGENT);
	/* A room's chatter waits (a mention is mod_muc's to tell). */
	CHECK(classify("<message type='groupchat'><body>hi</body></message>")
	    == CSI_HOLD);
	CHECK(classify("<message type='groupchat'><subject>t</subject>"
	    "</message>") == CSI_HOLD);
	CHECK(classify("<message type='error'><body>hi</body></message>") ==
	    CSI_URGENT);
}

static void
send_xml(struct session *s, const char *xml)
{
	struct xel *st = parse(xml);

	session_send(s, st);
	arena_free(st->arena);
}

static void
test_csi_hold(void)
{
	struct test_transport a;
	struct session *s;
	const char *id = NULL, *out;
	unsigned max = 0;

	xmppd_conf->limits.sm_ack_stanzas = 0;
	tt_init(&a, 20);
	s = bind_session(&a, "erin@example.org/phone");
	CHECK(smacks_enable(s, 1, &id, &max) == 0);
	CHECK_STR(csi_state(s), "active");
	session_set_inactive(s, 1);
	CHECK_STR(csi_state(s), "inactive");
	send_xml(s, "<presence from='a@x/1'><show>away</show></presence>");
	send_xml(s, "<presence from='b@x/1'/>");
	send_xml(s, "<message from='b@x/1'><composing xmlns='http://jabber."
	    "org/protocol/chatstates'/></message>");
	send_xml(s, "<presence from='a@x/1'><show>dnd</show></presence>");
	/* Nothing written, nothing counted; a's first presence replaced. */
	CHECK(a.out.len == 0 && smacks_sent_count(s) == 0);
	CHECK(csi_held(s) == 3);
	/* A message with a body: everything held goes first, in order. */
	send_xml(s, "<message from='b@x/1'><body>wake</body></message>");
	out = sent(&a);
	CHECK(strstr(out, "away") == NULL);
	CHECK(strstr(out, "b@x/1'/>") != NULL &&
	    strstr(out, "b@x/1'/>") < strstr(out, "composing") &&
	    strstr(out, "composing") < strstr(out, "dnd") &&
	    strstr(out, "dnd") < strstr(out, "wake"));
	CHECK(csi_held(s) == 0 && smacks_sent_count(s) == 4);
	CHECK(smacks_unacked(s) == 4);
	/* Becoming active sends what was held. */
	buf_reset(&a.out);
	send_xml(s, "<presence from='c@x/1'/>");
	CHECK(a.out.len == 0 && csi_held(s) == 1);
	session_set_inactive(s, 0);
	CHECK(strstr(sent(&a), "c@x/1") != NULL && csi_held(s) == 0);
	CHECK(smacks_sent_count(s) == 5);
	/* Active: nothing waits. */
	buf_reset(&a.out);
	send_xml(s, "<presence from='d@x/1'/>");
	CHECK(strstr(sent(&a), "d@x/1") != NULL);
	/* A groupchat message waits; sent as urgent (a mention), it goes
	 * after what was held. */
	{
		static const char rest1[] = " from='r@m/x' type='groupchat'>"
		    "<body>chatter</body></message>";
		static const char rest2[] = " from='r@m/x' type='groupchat'>"
		    "<body>hey erin</body></message>";
		struct xel *st = parse("<message from='r@m/x' "
		    "type='groupchat'><body>chatter</body></message>");

		session_set_inactive(s, 1);
		buf_reset(&a.out);
		session_send_fanout(s, st, s->full, rest1, sizeof(rest1) - 1);
		CHECK(a.out.len == 0 && csi_held(s) == 1);
		session_send_fanout_urgent(s, st, s->full, rest2,
		    sizeof(rest2) - 1);
		out = sent(&a);
		CHECK(strstr(out, "chatter") != NULL &&
		    strstr(out, "chatter") < strstr(out, "hey erin"));
		CHECK(csi_held(s) == 0);
		session_set_inactive(s, 0);
		arena_free(st->arena);
	}
	/* A full hold goes out at once. */
	xmppd_conf->limits.csi_queue = 3;
	session_set_inactive(s, 1);
	buf_reset(&a.out);
	send_xml(s, "<presence from='e@x/1'/>");
	send_xml(s, "<presence from='f@x/1'/>");
	CHECK(a.out.len == 0);
	send_xml(s, "<presence from='g@x/1'/>");
	CHECK(strstr(sent(&a), "g@x/1") != NULL && csi_held(s) == 0);
	xmppd_conf->limits.csi_queue = 256;
	/* Held while waiting to be resumed, kept through the resumption. */
	buf_reset(&a.out);
	send_xml(s, "<message from='b@x/1' id='cs1'><paused xmlns='http://"
	    "jabber.org/protocol/chatstates'/></message>");
	CHECK(session_lost(s, NULL, NULL) == 1);
	send_xml(s, "<message from='b@x/1' id='cs2'><gone xmlns='http://"
	    "jabber.org/protocol/chatstates'/></message>");
	CHECK(csi_held(s) == 2 && csi_inactive(s));
	/* The session ends: the held messages go back to the router like
	 * the unacknowledged ones, after them. */
	redelivered[0] = '\0';
	session_end(s, "system-shutdown", NULL);
	CHECK(strstr(redelivered, "cs1") != NULL &&
	    strstr(redelivered, "cs2") != NULL &&
	    strstr(redelivered, "wake") < strstr(redelivered, "cs1"));
	CHECK(csi_held(s) == 0);
	buf_free(&a.out);
	xmppd_conf->limits.sm_ack_stanzas = 5;
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
	conf.limits.resume_timeout = 300;
	conf.limits.sm_queue = 1048576;
	conf.limits.csi_queue = 256;
	conf.limits.csi_queue_size = 131072;
	xmppd_conf = &conf;
	test_send_and_hold();
	test_detached();
	test_detached_limit();
	test_conflict();
	test_sm_counting();
	test_sm_wrap();
	test_sm_resume_and_end();
	test_sm_queue_limit_and_timeout();
	test_csi_classify();
	test_csi_hold();
	test_hook_owners();
	/* The graveyard is freed in the loop's before-sleep hook. */
	ev_run(xmppd_loop, EVRUN_NOWAIT);
	return UNIT_DONE("session");
}
