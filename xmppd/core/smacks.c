/*
 * XEP-0198 stream management, the session's side (smacks.h): counters,
 * the queue of stanzas not yet acknowledged, resumption, hibernation and
 * what happens to the unacknowledged stanzas of a session that ends.
 *
 * Counting (§4): h_in counts the stanzas handled from the client, h_out
 * those sent to it, both modulo 2^32; acked is the last h the client
 * acknowledged, so the queue holds the stanzas acked+1 .. h_out in order.
 * The queue keeps each stanza as it was serialized, with the time it was
 * sent, so that a resumption resends the same bytes (a message with a
 * XEP-0203 delay) and an end can parse it again.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "base64.h"
#include "conf.h"
#include "core/router.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/smacks.h"
#include "core/stanza.h"
#include "core/transport.h"
#include "jid.h"
#include "log.h"
#include "mono.h"
#include "scram.h"
#include "store/store_engine.h"
#include "strmap.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_DELAY "urn:xmpp:delay"
#define TICK_SECONDS 1.0

struct sm_item {
	char *data;
	uint32_t len;
	time_t stamp;           /* when it was sent (for the delay) */
};

struct smacks {
	struct session *s;
	char id[SMACKS_ID_LEN + 1];     /* "" without resumption */
	uint32_t h_in, h_out, acked;
	struct sm_item *q;              /* ring: acked+1 .. h_out */
	size_t head, n, cap;
	size_t bytes;                   /* in the queue */
	unsigned since_request;         /* sent since our last <r/> */
	int awaiting;                   /* our <r/> is unanswered */
	double oldest;                  /* mono_now() at the first unacked */
	int waiting;                    /* hibernating */
	int ended;                      /* smacks_end ran */
	ev_timer timer;                 /* resume-timeout while waiting */
	struct smacks *prev, *next;     /* listed while n > 0 */
	int listed;
};

static struct strmap *by_id;            /* resumption id -> struct smacks */
static struct smacks *unacked_head;     /* sessions with stanzas unacked */
static ev_timer tick_w;

static void
list_add(struct smacks *sm)
{
	if (sm->listed)
		return;
	sm->listed = 1;
	sm->prev = NULL;
	sm->next = unacked_head;
	if (unacked_head != NULL)
		unacked_head->prev = sm;
	unacked_head = sm;
}

static void
list_del(struct smacks *sm)
{
	if (!sm->listed)
		return;
	if (sm->prev != NULL)
		sm->prev->next = sm->next;
	else
		unacked_head = sm->next;
	if (sm->next != NULL)
		sm->next->prev = sm->prev;
	sm->listed = 0;
	sm->prev = sm->next = NULL;
}

static struct sm_item *
item(struct smacks *sm, size_t i)
{
	return &sm->q[(sm->head + i) % sm->cap];
}

static void
push(struct smacks *sm, const char *data, size_t len)
{
	struct sm_item *it;

	if (sm->n == sm->cap) {
		size_t cap = sm->cap ? sm->cap * 2 : 8;
		struct sm_item *q = xreallocarray(NULL, cap, sizeof(*q));

		for (size_t i = 0; i < sm->n; i++)
			q[i] = *item(sm, i);
		free(sm->q);
		sm->q = q;
		sm->head = 0;
		sm->cap = cap;
	}
	it = &sm->q[(sm->head + sm->n) % sm->cap];
	it->data = xmalloc(len);
	memcpy(it->data, data, len);
	it->len = (uint32_t)len;
	it->stamp = time(NULL);
	sm->n++;
	sm->bytes += len;
}

static void
pop(struct smacks *sm)
{
	struct sm_item *it = item(sm, 0);

	sm->bytes -= it->len;
	free(it->data);
	sm->head = (sm->head + 1) % sm->cap;
	sm->n--;
}

/* An empty queue gives its memory back: most sessions are idle. */
static void
queue_trim(struct smacks *sm)
{
	if (sm->n != 0)
		return;
	free(sm->q);
	sm->q = NULL;
	sm->head = sm->cap = 0;
	list_del(sm);
}

static void
send_r(struct smacks *sm)
{
	static const char r[] = "<r xmlns='" NS_SM "'/>";

	session_send_nonza(sm->s, r, sizeof(r) - 1);
	sm->awaiting = 1;
	sm->since_request = 0;
}

static void tick_cb(struct ev_loop *l, ev_timer *w, int revents);

/* The id table and the ack timer start with the first enable. */
static void
init_once(void)
{
	if (by_id != NULL)
		return;
	by_id = strmap_new();
	ev_timer_init(&tick_w, tick_cb, TICK_SECONDS, TICK_SECONDS);
	ev_timer_start(xmppd_loop, &tick_w);
	ev_unref(xmppd_loop);
}

int
smacks_enable(struct session *s, int resume, const char **id, unsigned *max)
{
	struct smacks *sm;
	unsigned char rnd[16];
	char *b64;

	if (s->smacks != NULL)
		return -1;
	init_once();
	sm = xcalloc(1, sizeof(*sm));
	sm->s = s;
	s->smacks = sm;
	if (resume && xmppd_conf->limits.resume_timeout > 0) {
		/* §5: an id that cannot be guessed; base64url of 128 random
		 * bits, without padding. */
		scram_random_salt(rnd, sizeof(rnd));
		b64 = base64_encode_alloc(rnd, sizeof(rnd));
		for (char *p = b64; *p != '\0'; p++)
			*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
		snprintf(sm->id, sizeof(sm->id), "%.*s", SMACKS_ID_LEN, b64);
		free(b64);
		strmap_put(by_id, sm->id, sm);
		*id = sm->id;
		*max = xmppd_conf->limits.resume_timeout;
	}
	log_debug("session %s: stream management on%s", s->full,
	    sm->id[0] ? ", resumable" : "");
	return 0;
}

int
smacks_on(const struct session *s)
{
	return s->smacks != NULL;
}

int
smacks_resumable(const struct session *s)
{
	return s->smacks != NULL && s->smacks->id[0] != '\0' && !s->closing &&
	    !s->smacks->ended;
}

int
smacks_waiting(const struct session *s)
{
	return s->smacks != NULL && s->smacks->waiting;
}

const char *
smacks_state(const struct session *s)
{
	if (s->smacks == NULL || s->smacks->ended)
		return "off";
	if (s->smacks->waiting)
		return "waiting";
	return s->smacks->id[0] != '\0' ? "resumable" : "on";
}

size_t
smacks_unacked(const struct session *s)
{
	return s->smacks != NULL ? s->smacks->n : 0;
}

uint32_t
smacks_sent_count(const struct session *s)
{
	return s->smacks != NULL ? s->smacks->h_out : 0;
}

uint32_t
smacks_handled_count(const struct session *s)
{
	return s->smacks != NULL ? s->smacks->h_in : 0;
}

void
smacks_handled(struct session *s)
{
	if (s->smacks != NULL)
		s->smacks->h_in++;
}

int
smacks_sent(struct session *s, const char *data, size_t len)
{
	struct smacks *sm = s->smacks;
	const struct conf_limits *l = &xmppd_conf->limits;

	if (sm == NULL || sm->ended)
		return 0;
	sm->h_out++;
	if (sm->n == 0)
		sm->oldest = mono_now(xmppd_loop);
	push(sm, data, len);
	list_add(sm);
	if (l->sm_queue != 0 && sm->bytes > l->sm_queue)
		return -1;
	sm->since_request++;
	if (s->t != NULL && !sm->awaiting && l->sm_ack_stanzas != 0 &&
	    sm->since_request >= l->sm_ack_stanzas)
		send_r(sm);
	return 0;
}

/* Drop what h acknowledges; -1 if h is more than was sent. */
/* h is behind what the client acknowledged already (a repeated or
 * reordered <a/>): it changes nothing.  Modulo 2^32 (§4), "behind" is
 * within half the counter's range. */
static int
behind(const struct smacks *sm, uint32_t h)
{
	return (int32_t)(h - sm->acked) < 0;
}

static int
acknowledge(struct smacks *sm, uint32_t h)
{
	uint32_t k = h - sm->acked;     /* modulo 2^32 (§4) */

	if (behind(sm, h))
		return 0;
	if (k > sm->n)
		return -1;
	while (k-- > 0)
		pop(sm);
	sm->acked = h;
	sm->oldest = mono_now(xmppd_loop);
	queue_trim(sm);
	return 0;
}

int
smacks_ack(struct session *s, uint32_t h)
{
	struct smacks *sm = s->smacks;

	if (sm == NULL)
		return 0;
	sm->awaiting = 0;
	return acknowledge(sm, h);
}

/* The answer to <r/> waits for a storage request queued behind every
 * write the counted stanzas caused: the store runs requests in order and
 * completes them only after their transaction committed. */
struct barrier {
	struct store_job job;
};

static enum store_status
barrier_run(struct store_job *j)
{
	return STORE_OK;
}

static void
barrier_complete(struct store_job *j)
{
	struct session *s = sm_find_id(j->owner);
	char a[64];
	int n;

	if (s == NULL || s->closing || s->smacks == NULL)
		return;
	n = snprintf(a, sizeof(a), "<a xmlns='" NS_SM "' h='%" PRIu32 "'/>",
	    (uint32_t)j->tag);
	session_send_nonza(s, a, (size_t)n);
}

static void
barrier_free(struct store_job *j)
{
	free(j);
}

static const struct store_job_ops barrier_ops = {
	.name = "sm ack",
	.writes = 0,
	.run = barrier_run,
	.complete = barrier_complete,
	.free = barrier_free,
};

void
smacks_request(struct session *s)
{
	struct barrier *b;

	if (s->smacks == NULL)
		return;
	b = xcalloc(1, sizeof(*b));
	b->job.ops = &barrier_ops;
	b->job.owner = s->id;
	b->job.tag = s->smacks->h_in;
	store_job_submit(&b->job);
}

static void
resume_timeout_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct smacks *sm = container_of(w, struct smacks, timer);
	struct session *s = sm->s;

	log_info("session %s: not resumed within %u s; it ends (%zu "
	    "stanzas unacknowledged)", s->full,
	    xmppd_conf->limits.resume_timeout, sm->n);
	sm_set_end_reason(s, "not resumed");
	session_end(s, "connection-timeout", NULL);
}

void
smacks_hibernate(struct session *s)
{
	struct smacks *sm = s->smacks;

	if (sm == NULL || sm->waiting)
		return;
	sm->waiting = 1;
	sm->awaiting = 0;
	ev_timer_init(&sm->timer, resume_timeout_cb,
	    xmppd_conf->limits.resume_timeout, 0.);
	ev_timer_start(xmppd_loop, &sm->timer);
	log_info("session %s: connection lost; waiting %u s for the client to "
	    "resume (%zu stanzas unacknowledged)", s->full,
	    xmppd_conf->limits.resume_timeout, sm->n);
}

struct session *
smacks_find(const char *id, const char *bare)
{
	struct smacks *sm = id != NULL ? strmap_get(by_id, id) : NULL;

	if (sm == NULL || sm->ended || sm->s->closing ||
	    strcmp(sm->s->bare, bare) != 0)
		return NULL;
	return sm->s;
}

/*
 * The bytes of a queued stanza as they go out again: a message gets a
 * delay stamped when it was first sent (XEP-0198 §5, XEP-0203), put
 * before its end tag; the rest goes unchanged.
 */
static void
resend_one(struct session *s, const struct sm_item *it, struct buf *b)
{
	static const char end[] = "</message>";
	const char *host = s->jid.domain;
	char stamp[32];
	struct tm tm;
	size_t el = sizeof(end) - 1;

	buf_reset(b);
	if (it->len > 9 && memcmp(it->data, "<message", 8) == 0 &&
	    it->len >= el && memcmp(it->data + it->len - el, end, el) == 0 &&
	    memmem(it->data, it->len, NS_DELAY, sizeof(NS_DELAY) - 1) == NULL) {
		gmtime_r(&it->stamp, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
		buf_add(b, it->data, it->len - el);
		buf_printf(b, "<delay xmlns='" NS_DELAY "' from='");
		buf_add_xml_escaped(b, host, strlen(host), 1);
		buf_printf(b, "' stamp='%s'/>%s", stamp, end);
	} else
		buf_add(b, it->data, it->len);
	session_send_nonza(s, buf_head(b), buf_avail(b));
}

int
smacks_can_resume(const struct session *s, uint32_t h)
{
	const struct smacks *sm = s->smacks;

	return sm != NULL && (behind(sm, h) || (uint32_t)(h - sm->acked) <=
	    sm->n);
}

const char *
smacks_id(const struct session *s)
{
	return s->smacks != NULL ? s->smacks->id : NULL;
}

int
smacks_resume(struct session *s, struct transport *t, uint32_t h,
    int announce)
{
	struct smacks *sm = s->smacks;
	struct transport *old = s->t;
	struct buf b = BUF_INIT;
	char head[128];
	int n;

	if (!smacks_can_resume(s, h))
		return -1;
	acknowledge(sm, h);
	if (old != NULL) {
		/* The server had not noticed that the old connection was
		 * dead, or the client left it open: it goes. */
		session_detach(s);
		old->ops->end(old, "conflict", "Session resumed elsewhere");
	}
	if (sm->waiting)
		ev_timer_stop(xmppd_loop, &sm->timer);
	sm->waiting = 0;
	sm->awaiting = 0;
	session_attach(s, t);
	if (announce) {
		n = snprintf(head, sizeof(head), "<resumed xmlns='" NS_SM "' "
		    "previd='%s' h='%" PRIu32 "'/>", sm->id, sm->h_in);
		session_send_nonza(s, head, (size_t)n);
	}
	for (size_t i = 0; i < sm->n; i++)
		resend_one(s, item(sm, i), &b);
	buf_free(&b);
	log_info("session %s: resumed on %s %" PRIu64 " %s (%zu stanzas sent "
	    "again)", s->full, t->ops->kind, t->id, t->addr, sm->n);
	if (sm->n > 0)
		send_r(sm);
	/* XEP-0352 §5.2: client state is not restored on resumption; the
	 * resumed stream is active (what waited is sent now, after what is
	 * sent again) until the client says otherwise. */
	session_set_inactive(s, 0);
	return 0;
}

/*
 * What the client never acknowledged is handled as if it had never been
 * delivered (XEP-0198 §5, "the server SHOULD treat unacknowledged
 * stanzas as undelivered"): a message goes to the user's other resources
 * or to offline storage by RFC 6121 §8.5.2 (router_redeliver: it keeps
 * its stanza-id, by which a client tells a copy it already has); a
 * request gets an error back; the rest (presence, results, errors, carbon
 * copies) had no other way to go.
 */
void
smacks_undelivered(struct session *s, const char *data, size_t len)
{
	struct xml_limits lim = { len + 1, 1024, 1024, SIZE_MAX };
	struct xel *st = xml_parse_element(data, len, NS_CLIENT, &lim);
	const char *type;

	if (st == NULL)
		return;
	type = xel_attr(st, "type");
	switch (stanza_kind(st)) {
	case STANZA_MESSAGE:
		if (xel_child(st, "received", "urn:xmpp:carbons:2") == NULL &&
		    xel_child(st, "sent", "urn:xmpp:carbons:2") == NULL)
			router_redeliver(st, s->jid.node, s->jid.domain);
		break;
	case STANZA_IQ:
		if (type != NULL && (strcmp(type, "get") == 0 ||
		    strcmp(type, "set") == 0))
			router_bounce_to_sender(st, "service-unavailable");
		break;
	default:
		break;
	}
	arena_free(st->arena);
}

void
smacks_end(struct session *s)
{
	struct smacks *sm = s->smacks;
	size_t n;

	if (sm == NULL || sm->ended)
		return;
	sm->ended = 1;
	if (sm->id[0] != '\0')
		strmap_del(by_id, sm->id);
	if (sm->waiting)
		ev_timer_stop(xmppd_loop, &sm->timer);
	sm->waiting = 0;
	if ((n = sm->n) > 0)
		log_info("session %s: ends with %zu stanzas unacknowledged: "
		    "handled as undelivered", s->full, n);
	while (sm->n > 0) {
		smacks_undelivered(s, item(sm, 0)->data, item(sm, 0)->len);
		pop(sm);
	}
	queue_trim(sm);
}

void
smacks_free(struct session *s)
{
	struct smacks *sm = s->smacks;

	if (sm == NULL)
		return;
	smacks_end(s);
	free(sm->q);
	free(sm);
	s->smacks = NULL;
}

void
smacks_shutdown(void)
{
	struct smacks **v;
	size_t n;

	if (by_id == NULL)
		return;
	v = (struct smacks **)strmap_values(by_id, &n);
	for (size_t i = 0; i < n; i++)
		if (v[i]->waiting)
			session_end(v[i]->s, "system-shutdown", NULL);
	free(v);
}

/* Ask for an ack when stanzas have waited sm-ack-seconds without one. */
static void
tick_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	unsigned after = xmppd_conf->limits.sm_ack_seconds;
	double now = mono_now(l);

	if (after == 0)
		return;
	for (struct smacks *sm = unacked_head; sm != NULL; sm = sm->next)
		if (sm->n > 0 && !sm->awaiting && sm->s->t != NULL &&
		    !sm->s->closing && now - sm->oldest >= after)
			send_r(sm);
}


