/*
 * Routing of stanzas from local sessions and of stanzas the server
 * generates: 'from' stamping, 'to' classification, RFC 6121 §8.5 delivery
 * rules, delivery filters and error replies.  Presence goes to presence.c.
 */
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "core/disco.h"
#include "core/hooks.h"
#include "core/iq.h"
#include "jid.h"
#include "log.h"
#include "core/presence.h"
#include "core/router.h"
#include "core/session.h"
#include "core/stanza.h"
#include "xmalloc.h"
#include "xmppd.h"
#include "xml.h"

/* The service domains (few: a linear scan beats a map). */
struct service {
	char *domain;
	char *host;
	router_service_fn fn;
	unsigned owner;
	unsigned component : 1;  /* subdomains too; errors come back */
	unsigned unlisted : 1;   /* not in disco#items (not connected) */
};

static struct service *services;
static size_t nservices;
static router_remote_fn remote_fn;

void
router_set_remote(router_remote_fn fn)
{
	remote_fn = fn;
}

/* Whether d is a subdomain of parent ("a.b" of "b"). */
static int
is_subdomain(const char *d, const char *parent)
{
	size_t n = strlen(d), m = strlen(parent);

	return n > m + 1 && d[n - m - 1] == '.' &&
	    strcmp(d + n - m, parent) == 0;
}

/* The service of domain: its own, else a component's whose subdomain it
 * is. */
static const struct service *
service_find(const char *domain)
{
	for (size_t i = 0; i < nservices; i++)
		if (strcmp(services[i].domain, domain) == 0)
			return &services[i];
	for (size_t i = 0; i < nservices; i++)
		if (services[i].component &&
		    is_subdomain(domain, services[i].domain))
			return &services[i];
	return NULL;
}

static struct service *
service_add(const char *domain, const char *host, router_service_fn fn)
{
	struct service *sv;

	for (size_t i = 0; i < nservices; i++)
		if (strcmp(services[i].domain, domain) == 0)
			return NULL;
	if (conf_host_find(xmppd_conf, domain) != NULL)
		return NULL;
	services = xreallocarray(services, nservices + 1, sizeof(*services));
	sv = &services[nservices++];
	memset(sv, 0, sizeof(*sv));
	sv->domain = xstrdup(domain);
	sv->host = xstrdup(host);
	sv->fn = fn;
	sv->owner = hook_owner();
	return sv;
}

int
router_is_service(const char *domain)
{
	return service_find(domain) != NULL;
}

const char *
router_service_host(const char *domain)
{
	const struct service *sv = nservices > 0 ? service_find(domain) :
	    NULL;

	return sv != NULL ? sv->host : NULL;
}

int
router_add_service(const char *domain, const char *host,
    router_service_fn fn)
{
	return service_add(domain, host, fn) != NULL ? 0 : -1;
}

int
router_add_component(const char *domain, const char *host,
    router_service_fn fn)
{
	struct service *sv = service_add(domain, host, fn);

	if (sv == NULL)
		return -1;
	sv->component = 1;
	sv->unlisted = 1;
	return 0;
}

int
router_is_component(const char *domain)
{
	const struct service *sv;

	return nservices > 0 && (sv = service_find(domain)) != NULL &&
	    sv->component;
}

void
router_service_set_listed(const char *domain, int listed)
{
	for (size_t i = 0; i < nservices; i++)
		if (strcmp(services[i].domain, domain) == 0)
			services[i].unlisted = !listed;
}

static void
service_remove_at(size_t i)
{
	free(services[i].domain);
	free(services[i].host);
	memmove(&services[i], &services[i + 1],
	    (nservices - i - 1) * sizeof(*services));
	if (--nservices == 0) {
		free(services);
		services = NULL;
	}
}

void
router_remove_service(const char *domain)
{
	for (size_t i = 0; i < nservices; i++)
		if (strcmp(services[i].domain, domain) == 0) {
			service_remove_at(i);
			return;
		}
}

void
router_remove_services_of(unsigned owner)
{
	for (size_t i = nservices; i-- > 0;)
		if (services[i].owner == owner)
			service_remove_at(i);
}

void
router_foreach_service(const char *host,
    void (*fn)(const char *domain, void *arg), void *arg)
{
	for (size_t i = 0; i < nservices; i++)
		if (!services[i].unlisted && strcmp(services[i].host, host) == 0)
			fn(services[i].domain, arg);
}

/* An error for what a component sent goes back to it (from is NULL for
 * anything that is not a local session). */
/* An error reply for st to a sender that is no local session: a
 * component (through its stream), or another server's entity (through
 * the remote sender).  Services of ours and the server itself get none. */
static void
bounce_to_nonlocal(const struct xel *st, const char *cond)
{
	const char *f = xel_attr(st, "from");
	const struct service *sv;
	struct jid j = { 0 };
	struct xel *r;

	if (f == NULL || jid_parse(&j, f) < 0)
		return;
	sv = nservices > 0 ? service_find(j.domain) : NULL;
	if (sv != NULL && !sv->component)
		;
	else if ((sv != NULL || (remote_fn != NULL &&
	    conf_host_find(xmppd_conf, j.domain) == NULL)) &&
	    (r = stanza_error(st, NULL, cond, NULL)) != NULL) {
		if (sv != NULL)
			sv->fn(NULL, r, &j);
		else
			remote_fn(r, j.domain);
		arena_free(r->arena);
	}
	jid_free(&j);
}

void
router_bounce(struct session *from, const struct xel *st, const char *cond)
{
	struct xel *r, *c, *next;

	if (from == NULL) {
		bounce_to_nonlocal(st, cond);
		return;
	}
	if ((r = stanza_error(st, NULL, cond, NULL)) == NULL)
		return;
	/* The recipient's archive id names nothing for the sender. */
	for (c = xel_child(r, "stanza-id", "urn:xmpp:sid:0"); c; c = next) {
		next = xel_next(c, "stanza-id", "urn:xmpp:sid:0");
		xel_remove(c);
	}
	session_send(from, r);
	arena_free(r->arena);
}

void
router_deliver(struct session *to, struct xel *st)
{
	const char *f = xel_attr(st, "from");
	struct jid from = { 0 };

	if (f && jid_parse(&from, f) == 0 &&
	    hook_run_deliver(to, st, &from) == HOOK_HANDLED) {
		jid_free(&from);
		return;
	}
	jid_free(&from);
	session_send(to, st);
}

static int
attr_is(const struct xel *el, const char *name, const char *value)
{
	const char *v = xel_attr(el, name);

	return v && strcmp(v, value) == 0;
}

static int
iq_request(const struct xel *iq)
{
	return attr_is(iq, "type", "get") || attr_is(iq, "type", "set");
}

/* RFC 6120 §8.2.3: IQ type must be get/set/result/error; get and set carry
 * exactly one payload, result at most one; id is required. */
static int
iq_valid(const struct xel *iq)
{
	const char *type = xel_attr(iq, "type");
	int n = xel_count_elems(iq);

	if (xel_attr(iq, "id") == NULL || type == NULL)
		return 0;
	if (strcmp(type, "get") == 0 || strcmp(type, "set") == 0)
		return n == 1;
	if (strcmp(type, "result") == 0)
		return n <= 1;
	return strcmp(type, "error") == 0;
}

/* Highest non-negative priority among available resources, or -1. */
static int
top_priority(struct session *list)
{
	int best = -1;

	for (struct session *s = list; s; s = s->next)
		if (s->available && s->priority >= 0 && s->priority > best)
			best = s->priority;
	return best;
}

/* Sessions a message went to, for hook_run_message_delivered. */
struct delivered {
	struct session **v;
	size_t n, cap;
};

static void
delivered_add(struct delivered *d, struct session *s)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 4;
		d->v = xreallocarray(d->v, d->cap, sizeof(*d->v));
	}
	d->v[d->n++] = s;
}

/* RFC 6121 §8.5.2: a message to a local bare JID (or to an unknown
 * resource, §8.5.3.2.1).  from is NULL for server-generated stanzas. */
static void
message_to_bare(struct session *from, struct xel *msg, const struct jid *to,
    struct delivered *d)
{
	const char *type = xel_attr(msg, "type");
	struct session *list = sm_find_bare(to->node, to->domain);
	int best = top_priority(list), delivered = 0;

	if (type == NULL)
		type = "normal";
	if (strcmp(type, "error") == 0)
		return;                              /* §8.5.2.1.1: drop */
	if (strcmp(type, "groupchat") == 0) {
		router_bounce(from, msg, "service-unavailable");
		return;
	}
	if (best >= 0) {
		int headline = strcmp(type, "headline") == 0;

		for (struct session *s = list, *next; s; s = next) {
			next = s->next;
			if (!s->available || s->priority < 0)
				continue;
			if (!headline && s->priority != best)
				continue;
			router_deliver(s, msg);
			delivered_add(d, s);
			delivered++;
		}
	}
	if (delivered || strcmp(type, "headline") == 0)
		return;
	/* §8.5.2.2.1: no available resource; XEP-0160 may store it. */
	if (hook_run_offline(from, msg, to) == HOOK_PASS)
		router_bounce(from, msg, "service-unavailable");
}

/* A message for a local user: the message hooks around delivery. */
static void
message_to_local(struct session *from, struct xel *msg, const struct jid *to)
{
	struct session *target = to->resource ? sm_find_full(to) : NULL;
	struct delivered d = { NULL, 0, 0 };

	if (hook_run_message_in(from, msg, to) == HOOK_HANDLED)
		return;
	if (target) {
		router_deliver(target, msg);
		delivered_add(&d, target);
	} else
		message_to_bare(from, msg, to, &d);
	hook_run_message_delivered(msg, to, d.v, d.n);
	free(d.v);
}

/* The local session that sent st ('from', a full JID), or NULL. */
static struct session *
sender_session(const struct xel *st)
{
	const char *f = xel_attr(st, "from");
	struct jid j = { 0 };
	struct session *s = NULL;

	if (f != NULL && jid_parse(&j, f) == 0 && j.node != NULL &&
	    conf_host_find(xmppd_conf, j.domain) != NULL)
		s = sm_find_full(&j);
	jid_free(&j);
	return s;
}

void
router_redeliver(struct xel *msg, const char *user, const char *host)
{
	struct jid to = { .node = (char *)user, .domain = (char *)host };
	struct delivered d = { NULL, 0, 0 };

	/* Archived and stamped already (message_in ran when it first
	 * came): only the delivery is done again. */
	message_to_bare(sender_session(msg), msg, &to, &d);
	free(d.v);
}

void
router_bounce_to_sender(const struct xel *st, const char *condition)
{
	router_bounce(sender_session(st), st, condition);
}

static void
to_local_user(struct session *from, struct xel *st, enum stanza_kind kind,
    const struct jid *to)
{
	struct session *target = to->resource ? sm_find_full(to) : NULL;

	switch (kind) {
	case STANZA_MESSAGE:
		message_to_local(from, st, to);
		break;
	case STANZA_IQ:
		if (target)
			router_deliver(target, st);
		else if (to->resource)
			router_bounce(from, st, "service-unavailable");
		else if (iq_request(st) && from)
			iq_dispatch(from, st, IQ_TO_BARE);
		/* results and errors to a bare JID are dropped */
		break;
	default:
		break;
	}
}

/* Route st (from set) to 'to', which is local or remote. */
static void
route_to(struct session *from, struct xel *st, enum stanza_kind kind,
    const struct jid *to)
{
	const struct service *sv;

	if (conf_host_find(xmppd_conf, to->domain) == NULL) {
		if ((sv = service_find(to->domain)) != NULL)
			sv->fn(from, st, to);
		else if (remote_fn != NULL)
			remote_fn(st, to->domain);
		/* Without server-to-server remote domains are unreachable
		 * (RFC 6120 §8.3.3.16). */
		else if (kind != STANZA_PRESENCE)
			router_bounce(from, st, "remote-server-not-found");
	} else if (to->node == NULL) {
		if (to->resource == NULL && kind == STANZA_IQ && iq_request(st)) {
			if (from)
				iq_dispatch(from, st, IQ_TO_SERVER);
		} else if (kind == STANZA_MESSAGE || (kind == STANZA_IQ &&
			       to->resource != NULL && iq_request(st)))
			router_bounce(from, st, "service-unavailable");
		/* presence to the server and IQ results are dropped */
	} else
		to_local_user(from, st, kind, to);
}

void
router_route(struct xel *st)
{
	const char *tostr = xel_attr(st, "to");
	struct jid to = { 0 };
	enum stanza_kind kind = stanza_kind(st);
	const struct service *sv;

	if (tostr == NULL || jid_parse(&to, tostr) < 0)
		return;
	if (nservices > 0 && (sv = service_find(to.domain)) != NULL)
		sv->fn(sender_session(st), st, &to);
	else if (conf_host_find(xmppd_conf, to.domain) == NULL) {
		if (remote_fn != NULL)
			remote_fn(st, to.domain);
	} else if (kind == STANZA_PRESENCE) {
		/* Server-generated presence goes straight to the target's
		 * sessions (the caller applied the rules already). */
		if (conf_host_find(xmppd_conf, to.domain) && to.node) {
			struct session *s;

			if (to.resource) {
				if ((s = sm_find_full(&to)) != NULL)
					router_deliver(s, st);
			} else
				for (s = sm_find_bare(to.node, to.domain); s;
				    s = s->next)
					if (s->available)
						router_deliver(s, st);
		}
	} else
		route_to(NULL, st, kind, &to);
	jid_free(&to);
}

/*
 * st, sent by a service of ours (not a component) to another server,
 * could not leave: the error goes back to the service as if that server
 * had answered it, presence included, so that a conference service
 * learns an occupant is out of reach (XEP-0045 §18.1, errors from an
 * occupant).  Returns 0 if st's sender is no such service.
 */
static int
bounce_to_service(const struct xel *st, const char *condition)
{
	const char *f = xel_attr(st, "from");
	const struct service *sv;
	struct jid j = { 0 };
	struct xel *r;

	if (nservices == 0 || f == NULL || jid_parse(&j, f) < 0)
		return 0;
	sv = service_find(j.domain);
	if (sv == NULL || sv->component) {
		jid_free(&j);
		return 0;
	}
	if ((r = stanza_error(st, NULL, condition, NULL)) != NULL) {
		struct jid to = { 0 };

		if (jid_parse(&to, xel_attr(r, "to")) == 0)
			sv->fn(NULL, r, &to);
		jid_free(&to);
		arena_free(r->arena);
	}
	jid_free(&j);
	return 1;
}

static void nonlocal_to_host(struct xel *st, enum stanza_kind kind,
    const struct jid *to);

/* A local bare JID or host that sent st (not a session): the server on
 * an account's behalf (a PEP notification) or its own. */
static int
from_local_entity(const struct xel *st)
{
	struct jid j = { 0 };
	int yes;

	yes = jid_parse(&j, xel_attr(st, "from")) == 0 &&
	    j.resource == NULL && conf_host_find(xmppd_conf, j.domain) != NULL;
	jid_free(&j);
	return yes;
}

void
router_bounce_remote(const struct xel *st, const char *condition)
{
	struct session *from = sender_session(st);
	struct xel *r;
	struct jid to = { 0 };

	if (from == NULL && bounce_to_service(st, condition))
		return;
	if (stanza_kind(st) == STANZA_PRESENCE)
		return;
	if (from != NULL || !from_local_entity(st)) {
		router_bounce(from, st, condition);
		return;
	}
	/* What the server sent for an account or for itself fails as if
	 * the remote entity had answered with the error, so that whoever
	 * waits hears it (hook_iq_answer; the message hooks: XEP-0163
	 * notifications stop going to a contact that cannot be reached). */
	if ((r = stanza_error(st, NULL, condition, NULL)) == NULL)
		return;
	if (jid_parse(&to, xel_attr(r, "to")) == 0)
		nonlocal_to_host(r, stanza_kind(r), &to);
	jid_free(&to);
	arena_free(r->arena);
}

/*
 * IQ gets from other servers' entities to the server or to an account,
 * answered by the modules' handlers for a requester that is not a local
 * session (sm_remote_session): only those that read what anyone may see
 * (the handlers check who asks as for a local contact).  Everything else
 * is <service-unavailable/>.
 */
static int
remote_iq_allowed(const struct xel *iq, enum iq_target target)
{
	static const char *const both[] = {
		NS_DISCO_INFO, NS_DISCO_ITEMS, "urn:xmpp:ping",
		"vcard-temp", "jabber:iq:last",
	};
	static const char *const server[] = {
		"jabber:iq:version", "urn:xmpp:time",
	};
	static const char *const account[] = {
		"http://jabber.org/protocol/pubsub",
	};
	const struct xel *q = xel_first_elem(iq);
	const char *type = xel_attr(iq, "type");

	if (q == NULL || type == NULL || strcmp(type, "get") != 0)
		return 0;
	for (size_t i = 0; i < sizeof(both) / sizeof(both[0]); i++)
		if (strcmp(q->ns, both[i]) == 0)
			return 1;
	if (target == IQ_TO_SERVER) {
		for (size_t i = 0; i < sizeof(server) / sizeof(server[0]); i++)
			if (strcmp(q->ns, server[i]) == 0)
				return 1;
	} else
		for (size_t i = 0; i < sizeof(account) / sizeof(account[0]);
		     i++)
			if (strcmp(q->ns, account[i]) == 0)
				return 1;
	return 0;
}

static void
remote_iq(struct xel *st, enum iq_target target)
{
	struct jid from = { 0 };

	if (!remote_iq_allowed(st, target) ||
	    jid_parse(&from, xel_attr(st, "from")) < 0) {
		router_bounce_remote(st, "service-unavailable");
		jid_free(&from);
		return;
	}
	iq_dispatch(sm_remote_session(&from), st, target);
	jid_free(&from);
}

/*
 * A stanza from an entity that is no local session (another server's,
 * or a component's) to a JID of a local host: presence through
 * presence.c, IQ gets to the server or an account answered for such a
 * requester where allowed (remote_iq), answers to queries the server
 * sent handed to whoever waits for them (hook_iq_answer), the rest to
 * the user as from anyone.
 */
static void
nonlocal_to_host(struct xel *st, enum stanza_kind kind, const struct jid *to)
{
	if (kind == STANZA_PRESENCE)
		presence_from_remote(st, to);
	else if (kind == STANZA_IQ && to->resource == NULL) {
		if (iq_request(st))
			remote_iq(st, to->node == NULL ? IQ_TO_SERVER :
			    IQ_TO_BARE);
		else {
			/* RFC 6120 §8.2.3: never answered with an error;
			 * unclaimed, dropped. */
			struct jid from = { 0 };

			if (jid_parse(&from, xel_attr(st, "from")) == 0)
				hook_run_iq_answer(st, &from, to);
			jid_free(&from);
		}
	} else if (to->node == NULL) {
		if (kind == STANZA_MESSAGE || iq_request(st))
			router_bounce(NULL, st, "service-unavailable");
	} else
		to_local_user(NULL, st, kind, to);
}

void
router_from_remote(struct xel *st, const struct jid *to)
{
	enum stanza_kind kind = stanza_kind(st);
	const struct service *sv;

	if (kind == STANZA_OTHER)
		return;
	if (kind == STANZA_IQ && !iq_valid(st)) {
		const char *t = xel_attr(st, "type");

		if (t == NULL || (strcmp(t, "result") != 0 &&
			strcmp(t, "error") != 0))
			router_bounce_remote(st, "bad-request");
		return;
	}
	if ((sv = service_find(to->domain)) != NULL)
		sv->fn(NULL, st, to);
	else
		nonlocal_to_host(st, kind, to);
}

int
router_from_component(struct xel *st)
{
	enum stanza_kind kind = stanza_kind(st);
	struct jid to = { 0 };
	const struct service *sv;
	const char *t;

	if (kind == STANZA_OTHER)
		return -1;
	if (kind == STANZA_IQ && !iq_valid(st)) {
		/* RFC 6120 §8.2.3, as for a client. */
		t = xel_attr(st, "type");
		if (t == NULL || (strcmp(t, "result") != 0 &&
			strcmp(t, "error") != 0))
			router_bounce(NULL, st, "bad-request");
		return 0;
	}
	if (jid_parse(&to, xel_attr(st, "to")) < 0) {
		router_bounce(NULL, st, "jid-malformed");
		return 0;
	}
	if (conf_host_find(xmppd_conf, to.domain) == NULL) {
		if ((sv = service_find(to.domain)) != NULL)
			sv->fn(NULL, st, &to);
		else if (remote_fn != NULL)
			remote_fn(st, to.domain);  /* another server's */
		else if (kind != STANZA_PRESENCE)
			router_bounce(NULL, st, "remote-server-not-found");
	} else
		nonlocal_to_host(st, kind, &to);
	jid_free(&to);
	return 0;
}

int
router_from_client(struct session *from, struct xel *st)
{
	enum stanza_kind kind = stanza_kind(st);
	const char *tostr = xel_attr(st, "to");
	struct jid to = { 0 }, *top = NULL;

	if (kind == STANZA_OTHER)
		return -1;
	from->stanzas_in++;
	/* RFC 6120 §8.1.2.1: the server stamps the full JID; whatever the
	 * client put there is replaced. */
	xel_set_attr(st, "from", from->full);
	if (kind == STANZA_IQ && !iq_valid(st)) {
		/* RFC 6120 §8.2.3: never answer a result or error with an
		 * error; those are dropped. */
		const char *t = xel_attr(st, "type");

		if (t == NULL || (strcmp(t, "result") != 0 &&
			strcmp(t, "error") != 0))
			router_bounce(from, st, "bad-request");
		return 0;
	}
	if (tostr != NULL) {
		if (jid_parse(&to, tostr) < 0) {
			router_bounce(from, st, "jid-malformed");
			return 0;
		}
		top = &to;
	}
	if (hook_run_outbound(from, st, top) == HOOK_HANDLED)
		goto done;
	if (kind == STANZA_MESSAGE &&
	    hook_run_message_out(from, st, top ? top : &from->jid) ==
		HOOK_HANDLED)
		goto done;
	if (kind == STANZA_PRESENCE)
		presence_from_client(from, st, top);
	else if (top == NULL) {
		/* RFC 6120 §10.3: no 'to' means the user's own account. */
		if (kind == STANZA_MESSAGE) {
			/* §10.3.1: as if addressed to the bare JID. */
			struct jid bare = from->jid;

			bare.resource = NULL;
			message_to_local(from, st, &bare);
		}
		else if (iq_request(st))
			iq_dispatch(from, st, IQ_TO_BARE);
	} else
		route_to(from, st, kind, top);
done:
	jid_free(&to);
	return 0;
}
