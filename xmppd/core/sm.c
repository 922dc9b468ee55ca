/*
 * The session manager: bound sessions indexed by bare JID (each user's
 * sessions in a short list), by id, and in binding order for listings.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "core/csi.h"
#include "core/router.h"
#include "core/hooks.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/smacks.h"
#include "core/transport.h"
#include "jid.h"
#include "log.h"
#include "mono.h"
#include "strmap.h"
#include "xmalloc.h"
#include "xmppd.h"
#include "xml.h"

struct sm_user {
	struct session *sessions;
	size_t count;
};

static struct strmap *users;      /* bare JID -> struct sm_user */
static struct session **order;    /* bound sessions in binding order */
static size_t norder, order_cap;
static struct session *graveyard; /* unbound, freed before sleep */
static ev_prepare reap_w;
static uint64_t next_id = 1;
/* Stanza counts of the sessions already gone (sm_stanza_totals). */
static uint64_t gone_in, gone_out;

/* The index in order[] of the session with this id, or norder.  Ids are
 * handed out increasing at bind and order[] keeps binding order through
 * removals, so it is sorted by id. */
static size_t
order_index(uint64_t id)
{
	size_t lo = 0, hi = norder;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (order[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < norder && order[lo]->id == id ? lo : norder;
}

static void
reap_cb(struct ev_loop *l, ev_prepare *w, int revents)
{
	while (graveyard) {
		struct session *s = graveyard;

		graveyard = s->next;
		smacks_free(s);
		csi_free(s);
		jid_free(&s->jid);
		free(s->full);
		free(s->bare);
		free(s->end_reason);
		buf_free(&s->pending);
		if (s->presence)
			arena_free(s->presence->arena);
		for (size_t i = 0; i < s->ndirected; i++)
			free(s->directed[i]);
		free(s->directed);
		free(s);
	}
}

static void
sm_init(void)
{
	users = strmap_new();
	ev_prepare_init(&reap_w, reap_cb);
	ev_prepare_start(xmppd_loop, &reap_w);
	ev_unref(xmppd_loop);
}

const char *
sm_presence_show(const struct xel *pres, int available)
{
	const struct xel *e;
	const char *t;

	if (!available || pres == NULL)
		return "unavailable";
	if ((e = xel_child(pres, "show", NS_CLIENT)) == NULL)
		return "available";
	t = xel_text(e);
	if (strcmp(t, "chat") == 0 || strcmp(t, "away") == 0 ||
	    strcmp(t, "xa") == 0 || strcmp(t, "dnd") == 0)
		return t;
	return "available";
}

const char *
sm_presence_status(const struct xel *pres)
{
	const struct xel *e = pres ? xel_child(pres, "status", NS_CLIENT) :
	    NULL;

	return e ? xel_text(e) : "";
}

/* XEP-0115: the caps node names the client software. */
static const char *
presence_client(const struct xel *pres)
{
	const struct xel *e = pres ? xel_child(pres, "c",
	    "http://jabber.org/protocol/caps") : NULL;
	const char *node = e ? xel_attr(e, "node") : NULL;

	return node ? node : "";
}

void
sm_session_info(const struct session *s, struct sm_session_info *info)
{
	struct transport_status st = { 0 };
	const struct xel *p = s->available ? s->presence : NULL;

	if (s->t != NULL)
		s->t->ops->status(s->t, &st);
	memset(info, 0, sizeof(*info));
	info->id = s->id;
	info->jid = s->full;
	info->ip = s->t != NULL ? s->t->ip : "";
	info->tls_version = st.tls_version ? st.tls_version : "";
	info->tls_cipher = st.tls_cipher ? st.tls_cipher : "";
	info->show = sm_presence_show(p, s->available);
	info->status = sm_presence_status(p);
	info->client = presence_client(p);
	info->priority = s->priority;
	info->available = s->available;
	info->since = s->since;
	info->last_active = s->last_active;
	info->stanzas_in = s->stanzas_in;
	info->stanzas_out = s->stanzas_out;
	info->sm = smacks_state(s);
	info->sm_unacked = smacks_unacked(s);
	info->csi = csi_state(s);
	info->auth = s->auth;
	info->transport = s->t != NULL ? s->t->ops->kind : "";
}

struct session *
sm_find_bare(const char *user, const char *host)
{
	char key[2 * 1024 + 2];
	struct sm_user *u;

	if (users == NULL)
		return NULL;
	snprintf(key, sizeof(key), "%s@%s", user, host);
	u = strmap_get(users, key);
	return u ? u->sessions : NULL;
}

struct session *
sm_find_bare_str(const char *bare)
{
	struct sm_user *u = users ? strmap_get(users, bare) : NULL;

	return u ? u->sessions : NULL;
}

struct session *
sm_find_full(const struct jid *j)
{
	struct session *s;

	if (j->node == NULL || j->resource == NULL)
		return NULL;
	for (s = sm_find_bare(j->node, j->domain); s; s = s->next)
		if (strcmp(s->jid.resource, j->resource) == 0)
			return s;
	return NULL;
}

/*
 * Entities on other servers as sessions (sm_remote_session,
 * sm_remote_peer), newest first.  A requester's lives REMOTE_SESSION_TTL
 * seconds; a peer's (a MUC occupant's) as long as it is held, then as
 * long again, so that an answer that was waiting still finds it.
 */
struct remote_session {
	struct session s;       /* first */
	struct transport t;
	double expires;
	unsigned holds;         /* sm_remote_hold */
	unsigned peer : 1;      /* in peers, by its full JID */
	struct remote_session *next;
};

static struct remote_session *remotes;
static struct strmap *peers;            /* full JID -> remote_session */
static ev_timer remote_timer;

/* The stanza to its full JID, wherever the router finds it (another
 * server, through the remote sender). */
static void
remote_send(struct transport *t, const struct xel *st)
{
	struct xel *copy = xel_copy(arena_new(1024), st);

	if (xel_attr(copy, "to") == NULL)
		xel_set_attr(copy, "to", t->session ? t->session->full :
		    t->addr);
	router_route(copy);
	arena_free(copy->arena);
}

/*
 * A fan-out copy (session_send_fanout: its own 'to', the rest serialized
 * once for every occupant, the default namespace jabber:client omitted)
 * to a peer on another server.  It is parsed again and routed like any
 * stanza of the server: the remote sender needs its 'from' and 'to' to
 * pick the route (and its queue, and the bounces of a failed route,
 * take trees).  Only copies for remote occupants pay for it; local
 * sessions get the shared bytes as before.
 */
static void
remote_send_raw(struct transport *t, const char *data, size_t len)
{
	struct xml_limits lim = { len + 1, 1024, 1024, SIZE_MAX };
	struct xel *st;

	if (t->session == NULL)
		return;
	if ((st = xml_parse_element(data, len, NS_CLIENT, &lim)) == NULL) {
		/* Nonzas (XEP-0198) are never sent to these. */
		log_warnx("s2s peer %s: a copy that does not parse dropped",
		    t->session->full);
		return;
	}
	router_route(st);
	arena_free(st->arena);
}

static void
remote_nothing(struct transport *t)
{
}

static void
remote_end(struct transport *t, const char *condition, const char *text)
{
}

static void
remote_status(const struct transport *t, struct transport_status *st)
{
	memset(st, 0, sizeof(*st));
}

static const struct transport_ops remote_ops = {
	.kind = "s2s",
	.send = remote_send,
	.send_raw = remote_send_raw,
	.hold = remote_nothing,
	.release = remote_nothing,
	.end = remote_end,
	.status = remote_status,
};

static void
remote_free(struct remote_session *r)
{
	if (r->peer)
		strmap_del(peers, r->s.full);
	jid_free(&r->s.jid);
	free(r->s.full);
	free(r->s.bare);
	free(r);
}

static void
remote_sweep(struct ev_loop *l, ev_timer *w, int revents)
{
	double now = mono_now(l);
	struct remote_session **p = &remotes, *r;

	while ((r = *p) != NULL) {
		if (r->holds == 0 && r->expires <= now) {
			*p = r->next;
			remote_free(r);
		} else
			p = &r->next;
	}
	if (remotes == NULL)
		ev_timer_stop(l, w);
}

struct session *
sm_remote_session(const struct jid *from)
{
	struct remote_session *r = xcalloc(1, sizeof(*r));

	r->s.id = next_id++;
	r->s.jid.node = from->node ? xstrdup(from->node) : NULL;
	r->s.jid.domain = xstrdup(from->domain);
	r->s.jid.resource = from->resource ? xstrdup(from->resource) : NULL;
	r->s.full = jid_full(from);
	r->s.bare = jid_bare(from);
	r->s.since = ev_time();
	r->t.ops = &remote_ops;
	r->t.id = r->s.id;
	r->t.ip = "";
	r->t.net = "";
	r->t.addr = r->s.full;
	r->t.session = &r->s;
	r->s.t = &r->t;
	r->expires = mono_now(xmppd_loop) + REMOTE_SESSION_TTL;
	r->next = remotes;
	remotes = r;
	if (!ev_is_active(&remote_timer)) {
		ev_timer_init(&remote_timer, remote_sweep, 5., 5.);
		ev_timer_start(xmppd_loop, &remote_timer);
	}
	return &r->s;
}

struct session *
sm_remote_peer(const struct jid *from)
{
	struct remote_session *r;
	char *full = jid_full(from);

	if (peers == NULL)
		peers = strmap_new();
	r = strmap_get(peers, full);
	free(full);
	if (r != NULL) {
		r->expires = mono_now(xmppd_loop) + REMOTE_SESSION_TTL;
		return &r->s;
	}
	r = (struct remote_session *)sm_remote_session(from);
	r->peer = 1;
	strmap_put(peers, r->s.full, r);
	return &r->s;
}

void
sm_remote_hold(struct session *s)
{
	if (session_is_remote(s))
		((struct remote_session *)s)->holds++;
}

void
sm_remote_release(struct session *s)
{
	struct remote_session *r = (struct remote_session *)s;

	if (!session_is_remote(s) || r->holds == 0)
		return;
	if (--r->holds == 0)
		r->expires = mono_now(xmppd_loop) + REMOTE_SESSION_TTL;
}

int
session_is_remote(const struct session *s)
{
	return s->t != NULL && s->t->ops == &remote_ops;
}

struct session *
sm_find_id(uint64_t id)
{
	size_t i = order_index(id);

	if (i < norder)
		return order[i];
	for (struct remote_session *r = remotes; r != NULL; r = r->next)
		if (r->s.id == id)
			return &r->s;
	return NULL;
}

struct session *
sm_bind(struct transport *t, const struct jid *j, unsigned max_sessions)
{
	struct session *s, *old;
	struct sm_user *u;
	double now = ev_time();

	if (users == NULL)
		sm_init();
	if ((old = sm_find_full(j)) != NULL) {
		/* RFC 6120 §7.7.2.2: the new session wins; the old one
		 * gets <conflict/>. */
		log_info("session %s replaced by a new bind", old->full);
		session_end(old, "conflict", "Replaced by new connection");
	}
	s = xcalloc(1, sizeof(*s));
	jid_copy(&s->jid, j);
	s->full = jid_full(j);
	s->bare = jid_bare(j);
	u = strmap_get(users, s->bare);
	if (u && max_sessions && u->count >= max_sessions) {
		jid_free(&s->jid);
		free(s->full);
		free(s->bare);
		free(s);
		return NULL;
	}
	if (u == NULL) {
		u = xcalloc(1, sizeof(*u));
		strmap_put(users, s->bare, u);
	}
	s->id = next_id++;
	s->t = t;
	t->session = s;
	s->since = s->last_active = now;
	s->user = u;
	s->next = u->sessions;
	u->sessions = s;
	u->count++;
	if (norder == order_cap) {
		order_cap = order_cap ? order_cap * 2 : 64;
		order = xreallocarray(order, order_cap, sizeof(*order));
	}
	order[norder++] = s;
	return s;
}

void
sm_unbind(struct session *s)
{
	struct sm_user *u = s->user;
	struct session **pp;

	if (s->closing)
		return;
	/* Still routable: presence can say goodbye (RFC 6121 §4.5.1). */
	hook_run_session(HOOK_SESSION_END, s);
	s->closing = 1;
	gone_in += s->stanzas_in;
	gone_out += s->stanzas_out;
	for (pp = &u->sessions; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	if (--u->count == 0) {
		strmap_del(users, s->bare);
		free(u);
	}
	{
		size_t i = order_index(s->id);

		if (i < norder) {
			memmove(order + i, order + i + 1,
			    (norder - i - 1) * sizeof(*order));
			norder--;
		}
	}
	s->user = NULL;
	if (s->t != NULL)
		s->t->session = NULL;
	s->t = NULL;
	s->next = graveyard;
	graveyard = s;
	/* Unlinked: what its client never acknowledged goes elsewhere
	 * (XEP-0198 §5), never back to it. */
	smacks_end(s);
	csi_end(s);
}

size_t
sm_session_count(void)
{
	return norder;
}

size_t
sm_user_count(void)
{
	return users ? strmap_count(users) : 0;
}

void
sm_foreach(void (*fn)(const struct sm_session_info *, void *), void *arg)
{
	for (size_t i = 0; i < norder; i++) {
		struct sm_session_info info;

		sm_session_info(order[i], &info);
		fn(&info, arg);
	}
}

void
sm_foreach_session(void (*fn)(struct session *, void *), void *arg)
{
	for (size_t i = 0; i < norder; i++)
		fn(order[i], arg);
}

const char *
sm_user_show(const char *user, const char *host)
{
	struct session *s = sm_find_bare(user, host), *best = NULL;

	if (s == NULL)
		return NULL;
	for (; s; s = s->next)
		if (s->available && s->presence && (best == NULL ||
		    s->priority > best->priority))
			best = s;
	return best ? sm_presence_show(best->presence, 1) : "unavailable";
}

void
sm_stanza_totals(uint64_t *in, uint64_t *out)
{
	*in = gone_in;
	*out = gone_out;
	for (size_t i = 0; i < norder; i++) {
		*in += order[i]->stanzas_in;
		*out += order[i]->stanzas_out;
	}
}

void
sm_set_end_reason(struct session *s, const char *reason)
{
	if (s->end_reason == NULL && reason != NULL)
		s->end_reason = xstrdup(reason);
}

int
sm_kick(const char *user, const char *host, const char *resource,
    const char *condition, const char *text)
{
	struct session *s = sm_find_bare(user, host), *next;
	int n = 0;

	for (; s; s = next) {
		next = s->next;
		if (resource && strcmp(s->jid.resource, resource) != 0)
			continue;
		if (s->end_reason == NULL)
			s->end_reason = text ? xasprintf("kicked: %s", text) :
			    xstrdup("kicked");
		session_end(s, condition, text);
		n++;
	}
	return n;
}
