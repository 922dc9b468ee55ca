/*
 * BOSH (XEP-0124, XEP-0206) at /http-bind: sessions that outlive the
 * HTTP requests carrying them.  Each session is a c2s stream on a
 * virtual connection (net/conn.h, conn_new_virtual): the elements of a
 * request's <body/> are fed to it in rid order, and what it writes
 * leaves in the body of a held request (long polling) or waits for the
 * next one.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "stream/bosh.h"
#include "arena.h"
#include "buf.h"
#include "conf.h"
#include "log.h"
#include "mono.h"
#include "net/conn.h"
#include "net/http.h"
#include "scram.h"
#include "stream/c2s.h"
#include "xml.h"
#include "xmalloc.h"
#include "xmppd.h"

#define NS_HTTPBIND "http://jabber.org/protocol/httpbind"
#define NS_XBOSH "urn:xmpp:xbosh"
#define NS_FRAMING "urn:ietf:params:xml:ns:xmpp-framing"

#define BOSH_REQUESTS 2         /* XEP-0124 §7.1 'requests' */
#define BOSH_HOLD 1
#define BOSH_WAIT_MAX 60
#define BOSH_POLLING 2
#define BOSH_MAXPAUSE 120
#define BOSH_RESENT 4           /* responses kept for retransmission */

struct held {
	uint64_t req;           /* http_request id */
	uint64_t rid;
	double until;           /* answered empty then (mono time) */
};

struct pending {                /* a request ahead of its turn */
	uint64_t rid;
	uint64_t req;
	char *payload;          /* serialized children */
	size_t len;
	int restart, terminate;
};

struct sent {
	uint64_t rid;
	char *body;
	size_t len;
};

struct bosh {
	char sid[33];
	char authid[17];
	char *host;
	struct conn *vc;
	uint64_t rid;                   /* the last rid processed */
	struct held held[BOSH_REQUESTS + 1];
	size_t nheld;
	struct pending pend[BOSH_REQUESTS];
	struct sent sent[BOSH_RESENT];
	size_t nsent;
	struct buf in;                  /* bytes waiting while paused */
	double wait;
	double last_activity;
	int creating;                   /* the creation response is due */
	unsigned pause;                 /* s of inactivity allowed after a
	                                   pause request (XEP-0124 §12), 0:
	                                   the configured inactivity */
	ev_timer timer;
	struct bosh *next;
};

static struct bosh *sessions;

static void rearm(struct bosh *s);

static struct bosh *
session_find(const char *sid)
{
	for (struct bosh *s = sessions; s != NULL; s = s->next)
		if (strcmp(s->sid, sid) == 0)
			return s;
	return NULL;
}

static void
cors(struct http_request *r)
{
	http_add_header(r, "Access-Control-Allow-Origin", "*");
	http_add_header(r, "Access-Control-Allow-Methods",
	    "GET, HEAD, POST, OPTIONS");
	http_add_header(r, "Access-Control-Allow-Headers", "Content-Type");
	http_add_header(r, "Access-Control-Max-Age", "86400");
}

static void
respond_body(struct http_request *r, const char *body, size_t len)
{
	cors(r);
	http_respond(r, 200, "text/xml; charset=utf-8", body, len);
}

/* A terminal error without a session (XEP-0124 §17). */
static void
respond_terminate(struct http_request *r, const char *condition)
{
	char b[256];
	int n = snprintf(b, sizeof(b), "<body xmlns='" NS_HTTPBIND
	    "' type='terminate' condition='%s'/>", condition);

	respond_body(r, b, (size_t)n);
}

static void
remember(struct bosh *s, uint64_t rid, const char *body, size_t len)
{
	struct sent *e;

	if (s->nsent == BOSH_RESENT) {
		free(s->sent[0].body);
		memmove(&s->sent[0], &s->sent[1],
		    (BOSH_RESENT - 1) * sizeof(s->sent[0]));
		s->nsent--;
	}
	e = &s->sent[s->nsent++];
	e->rid = rid;
	e->body = xmalloc(len + 1);
	memcpy(e->body, body, len);
	e->len = len;
}

/* Answer the oldest held request with what the stream wrote (all of
 * it), as a terminate body if terminate. */
static void
answer_oldest(struct bosh *s, int terminate)
{
	struct buf b = {0};
	struct http_request *r;
	struct held h;
	struct conn *vc = s->vc;
	size_t n = vc != NULL ? buf_avail(&vc->out) : 0;
	char num[32];

	if (s->nheld == 0)
		return;
	h = s->held[0];
	memmove(&s->held[0], &s->held[1], (s->nheld - 1) * sizeof(h));
	s->nheld--;
	buf_adds(&b, "<body xmlns='" NS_HTTPBIND "' xmlns:xmpp='" NS_XBOSH
	    "' xmlns:stream='http://etherx.jabber.org/streams'");
	if (s->creating) {
		s->creating = 0;
		buf_adds(&b, " sid='");
		buf_adds(&b, s->sid);
		snprintf(num, sizeof(num), "%.0f", s->wait);
		buf_adds(&b, "' wait='");
		buf_adds(&b, num);
		snprintf(num, sizeof(num), "' hold='%d' requests='%d'",
		    BOSH_HOLD, BOSH_REQUESTS);
		buf_adds(&b, num);
		snprintf(num, sizeof(num), " polling='%d'", BOSH_POLLING);
		buf_adds(&b, num);
		snprintf(num, sizeof(num), " inactivity='%u'",
		    xmppd_conf->limits.bosh_inactivity);
		buf_adds(&b, num);
		snprintf(num, sizeof(num), " maxpause='%d'", BOSH_MAXPAUSE);
		buf_adds(&b, num);
		buf_adds(&b, " ver='1.11' from='");
		buf_add_xml_escaped(&b, s->host, strlen(s->host), 1);
		buf_adds(&b, "' authid='");
		buf_adds(&b, s->authid);
		buf_adds(&b, "' xmpp:version='1.0' xmpp:restartlogic='true'");
	}
	if (terminate)
		buf_adds(&b, n > 0 ? " type='terminate' "
		    "condition='remote-stream-error'" : " type='terminate'");
	if (n > 0) {
		buf_adds(&b, ">");
		buf_add(&b, buf_head(&vc->out), n);
		buf_consume(&vc->out, n);
		buf_adds(&b, "</body>");
	} else
		buf_adds(&b, "/>");
	remember(s, h.rid, buf_head(&b), buf_avail(&b));
	if ((r = http_request_find(h.req)) != NULL)
		respond_body(r, buf_head(&b), buf_avail(&b));
	buf_free(&b);
	s->last_activity = mono_now(xmppd_loop);
}

static void
feed(struct bosh *s, const char *data, size_t len)
{
	if (s->vc == NULL || s->vc->state != CONN_OPEN)
		return;
	if (s->vc->paused || buf_avail(&s->in) > 0) {
		/* c2s stopped reading (a SASL round trip, the rate
		 * limits): kept, as a socket would keep it, up to a bound. */
		if (buf_avail(&s->in) + len >
		    4 * xmppd_conf->limits.stanza_size) {
			log_info("bosh %s: input over the limit while the "
			    "stream waits", s->sid);
			conn_kill(s->vc, "BOSH input over the limit");
			return;
		}
		buf_add(&s->in, data, len);
		return;
	}
	s->vc->last_read = mono_now(xmppd_loop);
	s->vc->h->on_data(s->vc, data, len);
}

static void
feed_open(struct bosh *s)
{
	struct buf b = {0};

	buf_adds(&b, "<open xmlns='" NS_FRAMING "' version='1.0' to='");
	buf_add_xml_escaped(&b, s->host, strlen(s->host), 1);
	buf_adds(&b, "'/>");
	feed(s, buf_head(&b), buf_avail(&b));
	buf_free(&b);
}

/* The conn told us what it wrote: answer a held request with it. */
static void
vc_flush(struct conn *vc, void *arg)
{
	struct bosh *s = arg;

	if (vc->state == CONN_CLOSING || vc->state == CONN_DEAD) {
		if (s->nheld > 0) {
			answer_oldest(s, 1);
			conn_kill(vc, "BOSH session terminated");
		} else if (vc->state == CONN_CLOSING)
			conn_kill(vc, "BOSH session terminated");
		return;
	}
	if (buf_avail(&vc->out) > 0 && s->nheld > 0)
		answer_oldest(s, 0);
	rearm(s);
}

static void
vc_resumed(struct conn *vc, void *arg)
{
	struct bosh *s = arg;
	struct buf in = s->in;

	if (buf_avail(&in) == 0)
		return;
	memset(&s->in, 0, sizeof(s->in));
	vc->last_read = mono_now(xmppd_loop);
	vc->h->on_data(vc, buf_head(&in), buf_avail(&in));
	buf_free(&in);
}

static void
session_free(struct bosh *s)
{
	struct bosh **p;

	for (p = &sessions; *p != NULL; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	ev_timer_stop(xmppd_loop, &s->timer);
	for (size_t i = 0; i < BOSH_REQUESTS; i++)
		free(s->pend[i].payload);
	for (size_t i = 0; i < s->nsent; i++)
		free(s->sent[i].body);
	buf_free(&s->in);
	free(s->host);
	free(s);
}

static void
vc_gone(struct conn *vc, void *arg)
{
	struct bosh *s = arg;

	s->vc = NULL;
	while (s->nheld > 0)
		answer_oldest(s, 1);
	log_info("bosh %s: session ended (%s)", s->sid,
	    vc->close_reason ? vc->close_reason : "closed");
	session_free(s);
}

static const struct conn_virtual_ops bosh_vops = {
	.flush = vc_flush,
	.resumed = vc_resumed,
	.gone = vc_gone,
};

static unsigned
inactivity(const struct bosh *s)
{
	return s->pause > 0 ? s->pause : xmppd_conf->limits.bosh_inactivity;
}

/* Held requests past their wait get an empty body; a session with none
 * held for inactivity seconds ends (XEP-0124 §7.1). */
static void
timer_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct bosh *s = (struct bosh *)((char *)w -
	    offsetof(struct bosh, timer));
	double now = mono_now(l);
	unsigned limit = inactivity(s);

	while (s->nheld > 0 && s->held[0].until <= now)
		answer_oldest(s, 0);
	if (s->nheld == 0 && now >= s->last_activity + limit &&
	    s->vc != NULL) {
		log_info("bosh %s: inactive for %u s", s->sid, limit);
		conn_kill(s->vc, "BOSH inactivity");
		return;
	}
	rearm(s);
}

static void
rearm(struct bosh *s)
{
	double now = mono_now(xmppd_loop);
	double at = s->nheld > 0 ? s->held[0].until :
	    s->last_activity + inactivity(s);

	ev_timer_stop(xmppd_loop, &s->timer);
	ev_timer_set(&s->timer, at > now ? at - now : 0.001, 0.);
	ev_timer_start(xmppd_loop, &s->timer);
}

static void
held_abort(struct http_request *r, void *arg)
{
	struct bosh *s = arg;

	for (size_t i = 0; i < s->nheld; i++)
		if (s->held[i].req == r->id) {
			memmove(&s->held[i], &s->held[i + 1],
			    (s->nheld - i - 1) * sizeof(s->held[0]));
			s->nheld--;
			break;
		}
}

static void
hold(struct bosh *s, struct http_request *r, uint64_t rid)
{
	/* XEP-0124 §10: past 'hold', the oldest is answered. */
	while (s->nheld >= BOSH_HOLD)
		answer_oldest(s, 0);
	s->held[s->nheld].req = r->id;
	s->held[s->nheld].rid = rid;
	s->held[s->nheld].until = mono_now(xmppd_loop) + s->wait;
	s->nheld++;
	s->pause = 0;
	http_hold(r, held_abort, s);
	s->last_activity = mono_now(xmppd_loop);
	rearm(s);
}

/* Elements that inherited the body's namespace are the client's
 * stanzas written without their own xmlns: jabber:client (XEP-0206 §8
 * asks clients to qualify them; Strophe.js does, others rely on this). */
static void
requalify(struct xel *el)
{
	for (struct xel *e = el->children; e != NULL; e = e->next)
		if (e->name != NULL) {
			if (strcmp(e->ns, NS_HTTPBIND) == 0)
				e->ns = NS_CLIENT;
			requalify(e);
		}
}

/* The children of body serialized, each declaring its namespace. */
static void
payload_of(struct xel *body, struct buf *b)
{
	requalify(body);
	for (const struct xel *e = xel_first_elem(body); e != NULL;
	     e = e->next)
		if (e->name != NULL)
			xel_serialize(e, b, "");
}

/* Where an early request waits: a free slot, or NULL when one with the
 * same rid waits already (a retransmission: the first is processed once,
 * in its turn, and the held request is answered as any).  The window
 * (BOSH_REQUESTS) leaves at most BOSH_REQUESTS - 1 rids ahead, so a free
 * slot exists otherwise. */
static struct pending *
pending_slot(struct bosh *s, uint64_t rid)
{
	struct pending *free_slot = NULL;

	for (size_t i = 0; i < BOSH_REQUESTS; i++) {
		struct pending *p = &s->pend[i];

		if (p->payload != NULL && p->rid == rid)
			return NULL;
		if (p->payload == NULL && free_slot == NULL)
			free_slot = p;
	}
	return free_slot;
}

/* Process one request in rid order. */
static void
process(struct bosh *s, uint64_t rid, const char *payload, size_t len,
    int restart, int terminate)
{
	s->rid = rid;
	if (restart)
		feed_open(s);
	if (len > 0)
		feed(s, payload, len);
	if (terminate) {
		static const char close_el[] =
		    "<close xmlns='" NS_FRAMING "'/>";

		feed(s, close_el, sizeof(close_el) - 1);
	}
}

static void
create_session(struct http_request *r, const struct xel *body, uint64_t rid)
{
	const char *to = xel_attr(body, "to");
	const char *w = xel_attr(body, "wait");
	const struct conf_host *h;
	struct bosh *s;
	struct conn *vc;
	char addr[64];

	if (to == NULL || (h = conf_host_find(xmppd_conf, to)) == NULL) {
		respond_terminate(r, to == NULL ? "bad-request" :
		    "host-unknown");
		return;
	}
	if (h->see_other_bosh != NULL) {
		/* The host has moved (XEP-0124 §17.3). */
		struct buf b = {0};

		buf_adds(&b, "<body xmlns='" NS_HTTPBIND "' type='terminate' "
		    "condition='see-other-uri'><uri>");
		buf_add_xml_escaped(&b, h->see_other_bosh,
		    strlen(h->see_other_bosh), 0);
		buf_adds(&b, "</uri></body>");
		respond_body(r, buf_head(&b), buf_avail(&b));
		buf_free(&b);
		return;
	}
	s = xcalloc(1, sizeof(*s));
	scram_random_hex(s->sid, 16);
	scram_random_hex(s->authid, 8);
	s->host = xstrdup(to);
	s->rid = rid;
	s->wait = w != NULL ? strtod(w, NULL) : BOSH_WAIT_MAX;
	if (!(s->wait >= 1) || s->wait > BOSH_WAIT_MAX)
		s->wait = BOSH_WAIT_MAX;
	s->creating = 1;
	s->last_activity = mono_now(xmppd_loop);
	ev_init(&s->timer, timer_cb);
	snprintf(addr, sizeof(addr), "%s (bosh)", r->peer_addr);
	vc = conn_new_virtual(&c2s_conn_handler, &bosh_vops, s,
	    r->client_ip, addr, r->tls ? LISTEN_HTTPS : LISTEN_HTTP,
	    r->listen_port);
	s->vc = vc;
	if (c2s_bosh_attach(vc, r->client_ip, r->tls) == NULL) {
		/* Banned (c2s logged it); vc_gone frees s. */
		respond_terminate(r, "policy-violation");
		conn_kill(vc, "refused");
		return;
	}
	s->next = sessions;
	sessions = s;
	log_info("bosh %s: session for %s from %s", s->sid, to, r->client_ip);
	hold(s, r, rid);
	feed_open(s);
}

static void
route(struct http_request *r, void *arg)
{
	struct xml_limits lim = {
		.max_stanza = xmppd_conf->limits.stanza_size + 4096,
		.max_depth = 32,
		.max_attrs = 64,
	};
	struct xel *body;
	const char *sid, *rids;
	char *end;
	uint64_t rid;
	struct bosh *s;
	struct buf payload = {0};

	if (r->method_bit == HTTP_M_OPTIONS) {
		cors(r);
		http_respond(r, 204, NULL, NULL, 0);
		return;
	}
	if (r->method_bit != HTTP_M_POST) {
		/* GET, HEAD: a person with a browser, a checker following
		 * host-meta; what Prosody and ejabberd answer too. */
		static const char page[] =
		    "<!DOCTYPE html>\n<html><head><title>XMPP over BOSH"
		    "</title></head><body><p>This is the BOSH endpoint "
		    "(XEP-0124, XEP-0206) of this server: point a web XMPP "
		    "client at this URL.</p></body></html>\n";

		cors(r);
		http_add_header(r, "X-Content-Type-Options", "nosniff");
		http_respond(r, 200, "text/html; charset=utf-8", page,
		    sizeof(page) - 1);
		return;
	}
	body = xml_parse_element(r->body, r->body_len, NS_HTTPBIND, &lim);
	if (body == NULL || !xel_is(body, "body", NS_HTTPBIND) ||
	    (rids = xel_attr(body, "rid")) == NULL ||
	    (rid = strtoull(rids, &end, 10), *end != '\0' || end == rids)) {
		respond_terminate(r, "bad-request");
		if (body != NULL)
			arena_free(body->arena);
		return;
	}
	if ((sid = xel_attr(body, "sid")) == NULL) {
		create_session(r, body, rid);
		arena_free(body->arena);
		return;
	}
	if ((s = session_find(sid)) == NULL || s->vc == NULL) {
		respond_terminate(r, "item-not-found");
		arena_free(body->arena);
		return;
	}
	if (rid <= s->rid) {
		/* XEP-0124 §14.3: a repeated rid gets its response again. */
		for (size_t i = 0; i < s->nsent; i++)
			if (s->sent[i].rid == rid) {
				respond_body(r, s->sent[i].body,
				    s->sent[i].len);
				arena_free(body->arena);
				return;
			}
		respond_terminate(r, "item-not-found");
		conn_kill(s->vc, "BOSH rid outside the window");
		arena_free(body->arena);
		return;
	}
	if (rid > s->rid + BOSH_REQUESTS) {
		respond_terminate(r, "item-not-found");
		conn_kill(s->vc, "BOSH rid outside the window");
		arena_free(body->arena);
		return;
	}
	payload_of(body, &payload);
	if (rid == s->rid + 1 && (rids = xel_attr(body, "pause")) != NULL) {
		unsigned long pause = strtoul(rids, &end, 10);

		/* XEP-0124 §12: every held request is answered; a pause
		 * longer than maxpause is a policy violation. */
		if (*end != '\0' || pause == 0 || pause > BOSH_MAXPAUSE) {
			respond_terminate(r, "policy-violation");
			conn_kill(s->vc, "BOSH pause over maxpause");
			buf_free(&payload);
			arena_free(body->arena);
			return;
		}
		hold(s, r, rid);
		process(s, rid, buf_head(&payload), buf_avail(&payload), 0,
		    0);
		while (s->nheld > 0)
			answer_oldest(s, 0);
		s->pause = (unsigned)pause;
		rearm(s);
		buf_free(&payload);
		arena_free(body->arena);
		return;
	}
	{
		const char *restart = xel_attr_ns(body, NS_XBOSH, "restart");
		const char *type = xel_attr(body, "type");
		int rs = restart != NULL && strcmp(restart, "true") == 0;
		int tm = type != NULL && strcmp(type, "terminate") == 0;

		hold(s, r, rid);
		if (rid == s->rid + 1) {
			process(s, rid, buf_head(&payload),
			    buf_avail(&payload), rs, tm);
			/* Requests that came early, now in order. */
			for (int again = 1; again;) {
				again = 0;
				for (size_t i = 0; i < BOSH_REQUESTS; i++) {
					struct pending *p = &s->pend[i];

					if (p->payload == NULL ||
					    p->rid != s->rid + 1)
						continue;
					process(s, p->rid, p->payload, p->len,
					    p->restart, p->terminate);
					free(p->payload);
					p->payload = NULL;
					again = 1;
				}
			}
		} else {
			struct pending *p = pending_slot(s, rid);

			if (p != NULL) {
				p->rid = rid;
				p->req = r->id;
				p->len = buf_avail(&payload);
				p->payload = xmalloc(p->len + 1);
				memcpy(p->payload, buf_head(&payload), p->len);
				p->restart = rs;
				p->terminate = tm;
			}
		}
	}
	/* What the stream wrote while no request was held goes out with
	 * this one: nothing else would flush it before 'wait' runs out
	 * (the connection is on the flush list only when it writes). */
	if (s->vc != NULL && s->nheld > 0 && buf_avail(&s->vc->out) > 0)
		answer_oldest(s, 0);
	buf_free(&payload);
	arena_free(body->arena);
}

void
bosh_set_conf(const struct conf *conf)
{
	static int routed;

	if (conf->bosh && !routed) {
		if (http_route_add(BOSH_PATH, HTTP_M_POST | HTTP_M_OPTIONS |
			HTTP_M_GET, conf->limits.stanza_size + 4096, route,
			NULL) == -1)
			log_warnx("bosh: cannot route %s", BOSH_PATH);
		else
			routed = 1;
	} else if (!conf->bosh && routed) {
		http_route_remove(BOSH_PATH);
		routed = 0;
	}
}
