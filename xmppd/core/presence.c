/*
 * Presence (RFC 6121 §3, §4): availability broadcasts to subscribers and
 * to the user's own resources, probes answered from memory for local
 * contacts, directed presence, and the subscription state machine
 * (subscription.c) applied to both rosters with its pushes and stanzas.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conf.h"
#include "core/hooks.h"
#include "jid.h"
#include "log.h"
#include "core/presence.h"
#include "core/roster.h"
#include "core/router.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/stanza.h"
#include "strmap.h"
#include "core/subscription.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

static void route_presence(struct xel *p);

static int
is_local(const struct jid *j)
{
	return j->node && conf_host_find(xmppd_conf, j->domain) != NULL;
}

/* A domain whose users' presence another server processes: a component's
 * (XEP-0114), or any other that is neither a host nor a service of ours
 * (a room has no roster). */
static int
remote_domain(const char *domain)
{
	return router_is_component(domain) ||
	    (conf_host_find(xmppd_conf, domain) == NULL &&
	    !router_is_service(domain));
}

/* A presence stanza from 'from' to 'to' (either may be bare or full). */
static struct xel *
new_presence(const char *from, const char *to, const char *type)
{
	struct xel *p = xel_new(arena_new(512), "presence", NS_CLIENT);

	xel_set_attr(p, "from", from);
	xel_set_attr(p, "to", to);
	if (type)
		xel_set_attr(p, "type", type);
	return p;
}

/* Send a copy of s's current presence (or unavailable) to 'to'. */
static void
send_session_presence(struct session *s, const char *to, int unavailable)
{
	struct xel *p;

	if (s->presence == NULL || (unavailable &&
		!xel_attr(s->presence, "type")))
		p = new_presence(s->full, to, "unavailable");
	else {
		p = xel_copy(arena_new(1024), s->presence);
		xel_set_attr(p, "to", to);
	}
	route_presence(p);
	arena_free(p->arena);
}

/*
 * Deliver presence to its 'to': a local bare JID reaches every available
 * resource, a full JID that session only; remote domains have no route
 * yet (server-to-server).
 */
static void
route_presence(struct xel *p)
{
	router_route(p);
}

/* Contacts of a loaded roster with a given subscription bit. */
struct each_ctx {
	unsigned bit;
	void (*fn)(const char *contact, void *arg);
	void *arg;
	char **list;
	size_t n;
};

static void
collect(const struct roster_item *it, void *arg)
{
	struct each_ctx *e = arg;

	if (it->sub & e->bit) {
		e->list = xreallocarray(e->list, e->n + 1, sizeof(char *));
		e->list[e->n++] = xstrdup(it->jid);
	}
}

/* Call fn for each contact with bit set; safe if fn changes the roster. */
static void
each_contact(const char *user, const char *host, unsigned bit,
    void (*fn)(const char *, void *), void *arg)
{
	struct roster *r = roster_cached(user, host);
	struct each_ctx e = { bit, fn, arg, NULL, 0 };

	if (r == NULL)
		return;
	roster_foreach(r, collect, &e);
	for (size_t i = 0; i < e.n; i++) {
		fn(e.list[i], arg);
		free(e.list[i]);
	}
	free(e.list);
}

/*
 * A broadcast serializes the presence once (without 'to'); each copy is
 * "<presence to='RECIPIENT'" and that serialization's rest, written
 * straight to the recipient's connection.  The delivery hooks (blocking)
 * still see each copy as a stanza with its 'to'.
 */
struct bcast {
	struct session *s;
	struct xel *p;          /* the presence, 'to' set per copy */
	struct buf bytes;       /* its serialization without 'to' */
	size_t rest;            /* offset of what follows "<presence" */
};

static void
bcast_init(struct bcast *b, struct session *s, int unavailable)
{
	b->s = s;
	if (s->presence == NULL || (unavailable &&
		!xel_attr(s->presence, "type")))
		b->p = new_presence(s->full, NULL, "unavailable");
	else {
		b->p = xel_copy(arena_new(1024), s->presence);
		xel_set_attr(b->p, "to", NULL);
	}
	buf_init(&b->bytes);
	xel_serialize(b->p, &b->bytes, NS_CLIENT);
	b->rest = sizeof("<presence") - 1;
}

static void
bcast_done(struct bcast *b)
{
	buf_free(&b->bytes);
	arena_free(b->p->arena);
}

/* One copy to session o, addressed to 'to' (o's bare or full JID). */
static void
bcast_session(struct bcast *b, struct session *o, const char *to)
{
	xel_set_attr(b->p, "to", to);
	if (hook_run_deliver(o, b->p, &b->s->jid) == HOOK_HANDLED)
		return;
	session_send_fanout(o, b->p, to, buf_head(&b->bytes) + b->rest,
	    buf_avail(&b->bytes) - b->rest);
}

/* A contact: RFC 6121 §8.5.2.1.1, presence to a local bare JID goes to
 * each available resource.  Others (no server-to-server yet) take the
 * router's path. */
static void
bcast_one(const char *contact, void *arg)
{
	struct bcast *b = arg;
	const char *at = strchr(contact, '@');

	if (at == NULL || strchr(at, '/') != NULL ||
	    conf_host_find(xmppd_conf, at + 1) == NULL) {
		struct xel *p = xel_copy(arena_new(1024), b->p);

		xel_set_attr(p, "to", contact);
		route_presence(p);
		arena_free(p->arena);
		return;
	}
	for (struct session *o = sm_find_bare_str(contact), *n; o; o = n) {
		n = o->next;
		if (o->available)
			bcast_session(b, o, contact);
	}
}

/* RFC 6121 §4.2.2, §4.4.2, §4.5.2: to subscribers (from/both) and to all
 * of the user's available resources (including s itself unless it just
 * went unavailable). */
static void
broadcast(struct session *s, int unavailable, int to_self)
{
	struct bcast b;

	bcast_init(&b, s, unavailable);
	each_contact(s->jid.node, s->jid.domain, SUB_FROM, bcast_one, &b);
	for (struct session *o = sm_find_bare(s->jid.node, s->jid.domain), *n;
	    o; o = n) {
		n = o->next;
		if (o == s ? to_self : o->available)
			bcast_session(&b, o, o->full);
	}
	bcast_done(&b);
}

/* Answer a probe (RFC 6121 §4.3.2) from local user 'prober' for the
 * available resources of contact user@host, delivering to 'to'. */
static void
answer_probe(const char *user, const char *host, const char *prober,
    const char *to)
{
	struct roster *r = roster_cached(user, host);

	/* Not online: nothing available to report.  Online: only a
	 * subscriber ('from') may see it. */
	if (r == NULL || !(roster_state(r, prober) & SUB_FROM))
		return;
	for (struct session *c = sm_find_bare(user, host); c; c = c->next)
		if (c->available && c->presence)
			send_session_presence(c, to, 0);
}

struct probe_ctx {
	struct session *s;
};

static void
probe_one(const char *contact, void *arg)
{
	struct probe_ctx *pc = arg;
	struct jid j = { 0 };

	if (jid_parse(&j, contact) == 0 && is_local(&j))
		answer_probe(j.node, j.domain, pc->s->bare, pc->s->full);
	else if (j.domain != NULL && j.node != NULL && remote_domain(j.domain)) {
		/* §4.3.1: the contact's server (or component, XEP-0114)
		 * answers for it, to the user's bare JID. */
		struct xel *p = new_presence(pc->s->bare, contact, "probe");

		route_presence(p);
		arena_free(p->arena);
	}
	jid_free(&j);
}

static void
directed_add(struct session *s, const char *to)
{
	for (size_t i = 0; i < s->ndirected; i++)
		if (strcmp(s->directed[i], to) == 0)
			return;
	s->directed = xreallocarray(s->directed, s->ndirected + 1,
	    sizeof(char *));
	s->directed[s->ndirected++] = xstrdup(to);
}

static void
directed_del(struct session *s, const char *to)
{
	for (size_t i = 0; i < s->ndirected; i++)
		if (strcmp(s->directed[i], to) == 0) {
			free(s->directed[i]);
			s->directed[i] = s->directed[--s->ndirected];
			return;
		}
}

/* Deliver the pending subscription requests stored for the user
 * (RFC 6121 §3.1.3: kept until a resource is available). */
struct pending_ctx {
	struct session *s;
};

static void
pending_one(const struct roster_item *it, void *arg)
{
	struct pending_ctx *pc = arg;
	struct xel *p = NULL;

	if (!(it->sub & SUB_PENDING_IN))
		return;
	if (it->request)
		p = xml_parse_element(it->request, strlen(it->request),
		    NS_CLIENT, NULL);
	if (p == NULL)
		p = new_presence(it->jid, pc->s->bare, "subscribe");
	xel_set_attr(p, "to", pc->s->full);
	router_deliver(pc->s, p);
	arena_free(p->arena);
}

/* Available or unavailable presence without 'to' (broadcast). */
static void
presence_broadcast(struct session *s, struct xel *pres, int unavailable,
    int ending)
{
	int initial = !s->available && !unavailable;

	if (unavailable) {
		if (!s->available)
			return;
		s->available = 0;
		hook_run_presence_changed(s, pres, 0);
		if (s->presence)
			arena_free(s->presence->arena);
		/* The client's own unavailable presence (with its status) is
		 * what everyone gets; at session end a plain one. */
		s->presence = NULL;
		if (pres) {
			s->presence = xel_copy_fit(pres, 0);
			xel_set_attr(s->presence, "to", NULL);
		}
		broadcast(s, 1, !ending);
		/* §4.6.3: and to those it sent directed presence. */
		for (size_t i = 0; i < s->ndirected; i++) {
			send_session_presence(s, s->directed[i], 1);
			free(s->directed[i]);
		}
		s->ndirected = 0;
		if (s->presence)
			arena_free(s->presence->arena);
		s->presence = NULL;
		return;
	}
	if (s->presence)
		arena_free(s->presence->arena);
	/* Kept while the session is available, so copied to an arena of
	 * just its size once the hooks have added to it (the XEP-0153
	 * avatar hash). */
	xel_set_attr(pres, "to", NULL);
	hook_run_presence_out(s, pres);
	s->presence = xel_copy_fit(pres, 0);
	s->available = 1;
	s->priority = 0;
	{
		struct xel *p = xel_child(pres, "priority", NS_CLIENT);

		if (p) {
			long v = strtol(xel_text(p), NULL, 10);
			/* RFC 6121 §4.7.2.3: -128..127 */
			s->priority = v < -128 ? -128 : v > 127 ? 127 : (int)v;
		}
	}
	hook_run_presence_changed(s, s->presence, 1);
	broadcast(s, 0, 1);
	if (initial) {
		struct probe_ctx pc = { s };
		struct pending_ctx pe = { s };
		struct roster *r = roster_cached(s->jid.node, s->jid.domain);

		/* §4.2.1: probe the contacts we are subscribed to. */
		each_contact(s->jid.node, s->jid.domain, SUB_TO, probe_one,
		    &pc);
		/* The user's other resources are "contacts" too (§4.2.2). */
		for (struct session *o = sm_find_bare(s->jid.node,
			 s->jid.domain); o; o = o->next)
			if (o != s && o->available && o->presence)
				send_session_presence(o, s->full, 0);
		if (r)
			roster_foreach(r, pending_one, &pe);
		hook_run_session(HOOK_SESSION_INITIAL, s);
	}
}

/* Directed presence (RFC 6121 §4.6). */
static void
presence_directed(struct session *s, struct xel *pres, const struct jid *to,
    const char *type)
{
	int unavailable = type && strcmp(type, "unavailable") == 0;
	char *bare = jid_bare(to);

	if (unavailable)
		directed_del(s, xel_attr(pres, "to"));
	else if (!(roster_cached(s->jid.node, s->jid.domain) &&
		       (roster_state(roster_cached(s->jid.node,
			    s->jid.domain), bare) & SUB_FROM)))
		/* remembered only when not already a subscriber */
		directed_add(s, xel_attr(pres, "to"));
	free(bare);
	route_presence(pres);
}

/* Inbound subscription processing at a local user (RFC 6121 §3,
 * Appendix A.3). */

static void do_inbound(const char *user, const char *host,
    const char *from_bare, enum subscription_type type, struct xel *st);

/* Send a subscription stanza from a local user's bare JID to 'to' and
 * process it at the recipient. */
static void
send_subscription(const char *from_bare, const char *to_bare,
    enum subscription_type type, struct xel *orig)
{
	struct jid j = { 0 };
	struct xel *p;

	if (jid_parse(&j, to_bare) < 0)
		return;
	if (!is_local(&j) && !remote_domain(j.domain)) {
		jid_free(&j);   /* a room or another service: no roster */
		return;
	}
	if (orig)
		p = xel_copy(arena_new(1024), orig);
	else
		p = new_presence(from_bare, to_bare,
		    subscription_type_name(type));
	/* §3.1.2: stamped with the bare JID, addressed to the bare JID. */
	xel_set_attr(p, "from", from_bare);
	xel_set_attr(p, "to", to_bare);
	if (is_local(&j))
		do_inbound(j.node, j.domain, from_bare, type, p);
	else
		route_presence(p);      /* the contact's server processes it */
	arena_free(p->arena);
	jid_free(&j);
}

/* Deliver an inbound subscription stanza to the user's interested (or,
 * for requests, available) resources. */
static void
deliver_subscription(const char *user, const char *host, struct xel *st,
    enum subscription_type type)
{
	for (struct session *s = sm_find_bare(user, host), *n; s; s = n) {
		n = s->next;
		if (type == SUBSCRIPTION_SUBSCRIBE ? s->available :
		    s->interested) {
			xel_set_attr(st, "to", s->full);
			router_deliver(s, st);
		}
	}
}

static void
presence_all_to(const char *user, const char *host, const char *to,
    int unavailable)
{
	for (struct session *s = sm_find_bare(user, host), *n; s; s = n) {
		n = s->next;
		if (s->available)
			send_session_presence(s, to, unavailable);
	}
}

struct inbound_tag {
	char *user, *host, *from;
};

static void
inbound_stored_done(uint64_t owner, uint64_t tag, int found, unsigned actions,
    unsigned state)
{
	struct inbound_tag *t = (struct inbound_tag *)(uintptr_t)tag;
	struct roster *r;

	if (found && (actions & SUB_ACT_REPLY_SUBSCRIBED)) {
		char *bare = xasprintf("%s@%s", t->user, t->host);

		send_subscription(bare, t->from, SUBSCRIPTION_SUBSCRIBED,
		    NULL);
		free(bare);
	}
	/* The user may have come online meanwhile: refresh its cache. */
	if (found && (r = roster_cached(t->user, t->host)) != NULL &&
	    roster_state(r, t->from) != state)
		roster_set_state(r, t->from, state, NULL,
		    (actions & SUB_ACT_PUSH) != 0);
	free(t->user);
	free(t->host);
	free(t->from);
	free(t);
}

static void
do_inbound(const char *user, const char *host, const char *from_bare,
    enum subscription_type type, struct xel *st)
{
	struct roster *r = roster_cached(user, host);
	struct subscription_change ch;
	unsigned old;
	char *bare, *request = NULL;

	if (r == NULL) {
		/* Not online: apply it in storage. */
		struct inbound_tag *t = xcalloc(1, sizeof(*t));
		struct buf b = BUF_INIT;

		t->user = xstrdup(user);
		t->host = xstrdup(host);
		t->from = xstrdup(from_bare);
		if (type == SUBSCRIPTION_SUBSCRIBE)
			xel_serialize(st, &b, NS_CLIENT);
		roster_inbound_stored(user, host, from_bare, type,
		    b.len ? buf_head(&b) : NULL, inbound_stored_done, 0,
		    (uint64_t)(uintptr_t)t);
		buf_free(&b);
		return;
	}
	old = roster_state(r, from_bare);
	ch = subscription_inbound(old, type);
	bare = xasprintf("%s@%s", user, host);
	if (ch.actions & SUB_ACT_SEND_UNAVAILABLE)
		presence_all_to(user, host, from_bare, 1);
	if (type == SUBSCRIPTION_SUBSCRIBE && (ch.actions & SUB_ACT_FORWARD)) {
		struct buf b = BUF_INIT;

		xel_serialize(st, &b, NS_CLIENT);
		request = buf_strdup(&b);
		buf_free(&b);
	}
	if (ch.state != old || request)
		roster_set_state(r, from_bare, ch.state,
		    (ch.state & SUB_PENDING_IN) ?
			(request ? request : roster_find(r, from_bare) ?
			    roster_find(r, from_bare)->request : NULL) : NULL,
		    (ch.actions & SUB_ACT_PUSH) != 0);
	if (ch.actions & SUB_ACT_FORWARD)
		deliver_subscription(user, host, st, type);
	if (ch.actions & SUB_ACT_REPLY_SUBSCRIBED)
		send_subscription(bare, from_bare, SUBSCRIPTION_SUBSCRIBED,
		    NULL);
	if (ch.actions & SUB_ACT_SEND_PRESENCE) {
		presence_all_to(user, host, from_bare, 0);
		hook_run_subscribed(user, host, from_bare);
	}
	free(request);
	free(bare);
}

/* Outbound subscription stanzas (RFC 6121 Appendix A.2). */
static void
presence_subscription(struct session *s, struct xel *pres,
    const struct jid *to, enum subscription_type type)
{
	struct roster *r = roster_cached(s->jid.node, s->jid.domain);
	char *contact = jid_bare(to);
	struct subscription_change ch;
	unsigned old;

	if (r == NULL) {
		free(contact);
		return;
	}
	old = roster_state(r, contact);
	ch = subscription_outbound(old, type);
	if (ch.actions & SUB_ACT_SEND_UNAVAILABLE)
		presence_all_to(s->jid.node, s->jid.domain, contact, 1);
	if (ch.state != old) {
		const struct roster_item *it = roster_find(r, contact);

		roster_set_state(r, contact, ch.state,
		    (ch.state & SUB_PENDING_IN) && it ? it->request : NULL,
		    (ch.actions & SUB_ACT_PUSH) != 0);
	}
	if (ch.actions & SUB_ACT_FORWARD)
		send_subscription(s->bare, contact, type, pres);
	if (ch.actions & SUB_ACT_SEND_PRESENCE) {
		presence_all_to(s->jid.node, s->jid.domain, contact, 0);
		hook_run_subscribed(s->jid.node, s->jid.domain, contact);
	}
	free(contact);
}

void
presence_item_removed(struct session *s, const char *contact, unsigned old)
{
	struct jid j = { 0 };

	if (jid_parse(&j, contact) < 0)
		return;
	/* §2.5.2: unsubscribed if the contact had 'from', unsubscribe if
	 * we had 'to' or asked for it. */
	if (old & (SUB_FROM | SUB_PENDING_IN)) {
		presence_all_to(s->jid.node, s->jid.domain, contact, 1);
		send_subscription(s->bare, contact, SUBSCRIPTION_UNSUBSCRIBED,
		    NULL);
	}
	if (old & (SUB_TO | SUB_PENDING_OUT))
		send_subscription(s->bare, contact, SUBSCRIPTION_UNSUBSCRIBE,
		    NULL);
	jid_free(&j);
}

void
presence_from_client(struct session *s, struct xel *pres,
    const struct jid *to)
{
	const char *type = xel_attr(pres, "type");
	enum subscription_type st;

	if (to == NULL) {
		if (type == NULL || strcmp(type, "unavailable") == 0)
			presence_broadcast(s, pres, type != NULL, 0);
		/* probes, errors and subscriptions need a 'to' */
		return;
	}
	if (type && subscription_type_parse(type, &st) == 0) {
		presence_subscription(s, pres, to, st);
		return;
	}
	if (type && strcmp(type, "probe") == 0) {
		/* §4.3: clients should not probe, but the answer is the
		 * same as for a server probe. */
		if (is_local(to))
			answer_probe(to->node, to->domain, s->bare, s->full);
		return;
	}
	if (type && strcmp(type, "error") != 0 &&
	    strcmp(type, "unavailable") != 0)
		return;                 /* unknown type: ignore */
	presence_directed(s, pres, to, type);
}

void
presence_from_remote(struct xel *pres, const struct jid *to)
{
	const char *type = xel_attr(pres, "type");
	struct jid from = { 0 };
	enum subscription_type st;
	char *bare, *to_bare;

	if (to->node == NULL || jid_parse(&from, xel_attr(pres, "from")) < 0)
		return;         /* presence to the server is dropped */
	bare = jid_bare(&from);
	if (type && subscription_type_parse(type, &st) == 0) {
		/* §3.1.3: processed for the bare JIDs on both sides. */
		to_bare = xasprintf("%s@%s", to->node, to->domain);
		xel_set_attr(pres, "from", bare);
		xel_set_attr(pres, "to", to_bare);
		do_inbound(to->node, to->domain, bare, st, pres);
		free(to_bare);
	} else if (type && strcmp(type, "probe") == 0) {
		char *full = jid_full(&from);

		answer_probe(to->node, to->domain, bare, full);
		free(full);
	} else if (type == NULL || strcmp(type, "unavailable") == 0 ||
	    strcmp(type, "error") == 0) {
		struct session *s;

		hook_run_remote_presence(to, &from, pres);
		/* §4.3.3, §4.5.3: a full JID reaches that session (error
		 * presence only there), a bare JID each available
		 * resource. */
		if (to->resource) {
			if ((s = sm_find_full(to)) != NULL)
				router_deliver(s, pres);
		} else if (type == NULL || strcmp(type, "error") != 0)
			for (s = sm_find_bare(to->node, to->domain); s;
			    s = s->next)
				if (s->available)
					router_deliver(s, pres);
	}
	/* other types are ignored (§4.7.1) */
	free(bare);
	jid_free(&from);
}

void
presence_unavailable_to(const char *user, const char *host,
    const struct jid *contact)
{
	char *to = jid_full(contact);

	presence_all_to(user, host, to, 1);
	free(to);
}

void
presence_current_to(const char *user, const char *host,
    const struct jid *contact)
{
	char *to = jid_full(contact);

	presence_all_to(user, host, to, 0);
	free(to);
}

void
presence_session_to_user(struct session *c, const char *user,
    const char *host, int unavailable)
{
	struct roster *r = roster_cached(c->jid.node, c->jid.domain);
	char bare[2 * JID_PART_MAX + 2];

	if (!c->available || c->closing || r == NULL)
		return;
	snprintf(bare, sizeof(bare), "%s@%s", user, host);
	if (!(roster_state(r, bare) & SUB_FROM))
		return;
	for (struct session *s = sm_find_bare(user, host), *n; s; s = n) {
		n = s->next;
		if (s->available && !s->closing)
			send_session_presence(c, s->full, unavailable);
	}
}

void
presence_rebroadcast(struct session *s)
{
	if (!s->available || s->presence == NULL)
		return;
	hook_run_presence_out(s, s->presence);
	broadcast(s, 0, 1);
}

/* The session goes away: unavailable to everyone who saw it (§4.5). */
static void
on_end(struct session *s)
{
	if (s->available)
		presence_broadcast(s, NULL, 1, 1);
}

void
presence_init(void)
{
	hook_add_session(HOOK_SESSION_END, on_end);
}
