/*
 * Routing of stanzas from local sessions: 'from' stamping, 'to'
 * classification, RFC 6121 §8.5 delivery rules, and error replies.
 */
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "iq.h"
#include "jid.h"
#include "log.h"
#include "router.h"
#include "session.h"
#include "stanza.h"
#include "xmppd.h"
#include "xml.h"

static void
bounce(struct session *from, const struct xel *st, const char *cond)
{
	struct xel *r = stanza_error(st, NULL, cond, NULL);

	if (r == NULL)
		return;
	session_send(from, r);
	arena_free(r->arena);
}

static int
attr_is(const struct xel *el, const char *name, const char *value)
{
	const char *v = xel_attr(el, name);

	return v && strcmp(v, value) == 0;
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

/* RFC 6121 §8.5.2: a message to a local bare JID (or to an unknown
 * resource, §8.5.3.2.1). */
static void
message_to_bare(struct session *from, struct xel *msg, struct jid *to)
{
	const char *type = xel_attr(msg, "type");
	struct session *list = sm_find_bare(to->node, to->domain);
	int best = top_priority(list), delivered = 0;

	if (type == NULL)
		type = "normal";
	if (strcmp(type, "error") == 0)
		return;                              /* §8.5.2.1.1: drop */
	if (strcmp(type, "groupchat") == 0) {
		bounce(from, msg, "service-unavailable");
		return;
	}
	if (best >= 0) {
		int headline = strcmp(type, "headline") == 0;

		for (struct session *s = list; s; s = s->next) {
			if (!s->available || s->priority < 0)
				continue;
			if (!headline && s->priority != best)
				continue;
			session_send(s, msg);
			delivered++;
		}
	}
	if (delivered == 0 && strcmp(type, "headline") != 0)
		/* §8.5.2.2: no available resource; offline storage comes
		 * with the IM core, until then the message bounces. */
		bounce(from, msg, "service-unavailable");
}

static void
presence_to_user(struct xel *pres, struct jid *to)
{
	if (to->resource) {
		struct session *s = sm_find_full(to);

		if (s)
			session_send(s, pres);
		return;
	}
	for (struct session *s = sm_find_bare(to->node, to->domain); s;
	    s = s->next)
		if (s->available)
			session_send(s, pres);
}

/* Presence without 'to' (RFC 6121 §4.2, §4.4): the session's own
 * availability and priority, which message delivery depends on. */
static void
presence_own(struct session *from, struct xel *pres)
{
	const char *type = xel_attr(pres, "type");
	struct xel *p;

	if (type == NULL) {
		from->available = 1;
		from->priority = 0;
		if ((p = xel_child(pres, "priority", NS_CLIENT)) != NULL) {
			long v = strtol(xel_text(p), NULL, 10);
			/* RFC 6121 §4.7.2.3: -128..127 */
			from->priority = v < -128 ? -128 : v > 127 ? 127 : v;
		}
	} else if (strcmp(type, "unavailable") == 0)
		from->available = 0;
}

static void
to_local_user(struct session *from, struct xel *st, enum stanza_kind kind,
    struct jid *to)
{
	struct session *target = to->resource ? sm_find_full(to) : NULL;

	switch (kind) {
	case STANZA_MESSAGE:
		if (target)
			session_send(target, st);
		else
			message_to_bare(from, st, to);
		break;
	case STANZA_PRESENCE:
		presence_to_user(st, to);
		break;
	case STANZA_IQ:
		if (target)
			session_send(target, st);
		else if (to->resource)
			bounce(from, st, "service-unavailable");
		else if (attr_is(st, "type", "get") || attr_is(st, "type", "set"))
			iq_dispatch(from, st, IQ_TO_BARE);
		/* results and errors to a bare JID are dropped */
		break;
	default:
		break;
	}
}

int
router_from_client(struct session *from, struct xel *st)
{
	enum stanza_kind kind = stanza_kind(st);
	const char *tostr = xel_attr(st, "to");
	struct jid to = { 0 };

	if (kind == STANZA_OTHER)
		return -1;
	from->stanzas_in++;
	/* RFC 6120 §8.1.2.1: the server stamps the full JID; whatever the
	 * client put there is replaced. */
	xel_set_attr(st, "from", from->full);
	if (kind == STANZA_IQ && !iq_valid(st)) {
		bounce(from, st, "bad-request");
		return 0;
	}
	if (tostr == NULL) {
		/* RFC 6120 §10.3: no 'to' means the user's own account. */
		if (kind == STANZA_PRESENCE)
			presence_own(from, st);
		else if (kind == STANZA_MESSAGE)
			message_to_bare(from, st, &from->jid);
		else if (attr_is(st, "type", "get") || attr_is(st, "type", "set"))
			iq_dispatch(from, st, IQ_TO_BARE);
		return 0;
	}
	if (jid_parse(&to, tostr) < 0) {
		bounce(from, st, "jid-malformed");
		return 0;
	}
	if (conf_host_find(xmppd_conf, to.domain) == NULL) {
		/* Server-to-server comes later: remote domains are
		 * unreachable for now (RFC 6120 §8.3.3.16). */
		if (kind != STANZA_PRESENCE)
			bounce(from, st, "remote-server-not-found");
	} else if (to.node == NULL) {
		if (to.resource == NULL && kind == STANZA_IQ &&
		    (attr_is(st, "type", "get") || attr_is(st, "type", "set")))
			iq_dispatch(from, st, IQ_TO_SERVER);
		else if (kind == STANZA_MESSAGE || (kind == STANZA_IQ &&
			     to.resource != NULL))
			bounce(from, st, "service-unavailable");
		/* presence to the server and IQ results are dropped */
	} else
		to_local_user(from, st, kind, &to);
	jid_free(&to);
	return 0;
}
