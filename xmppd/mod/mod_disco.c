/*
 * XEP-0030 service discovery for the server and for users' bare JIDs,
 * answered from the registry in disco.c; XEP-0115 entity capabilities of
 * the server in the stream features; XEP-0157 contact addresses in the
 * server's XEP-0128 form.  Also the access rule for IQs to a bare JID
 * that other modules share (disco_account_access).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "core/disco.h"
#include "core/hooks.h"
#include "core/iq.h"
#include "jid.h"
#include "log.h"
#include "core/roster.h"
#include "core/router.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/stanza.h"
#include "core/subscription.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

void mod_disco_init(void);
void mod_disco_reload(void);

/* An IQ to a bare JID waiting for the account's roster. */
struct access_wait {
	struct access_wait *next;
	uint64_t tag;
	struct xel *iq;          /* own arena */
	disco_access_fn fn;
};

static struct access_wait *waiting;
static uint64_t next_tag = 1;

/* Whether iq (from s) is addressed to s's own account: no 'to', or the
 * bare JID of s (RFC 6120 §10.3.3). */
static int
to_own_account(const struct session *s, const struct xel *iq)
{
	const char *to = xel_attr(iq, "to");
	struct jid j = { 0 };
	int own;

	if (to == NULL)
		return 1;
	if (jid_parse(&j, to) < 0)
		return 0;
	own = j.node && strcmp(j.node, s->jid.node) == 0 &&
	    strcmp(j.domain, s->jid.domain) == 0;
	jid_free(&j);
	return own;
}

static void
access_done(uint64_t owner, uint64_t tag, int found, unsigned sub)
{
	struct access_wait **pp, *w;
	struct session *s;

	for (pp = &waiting; *pp; pp = &(*pp)->next)
		if ((*pp)->tag == tag)
			break;
	if ((w = *pp) == NULL)
		return;
	*pp = w->next;
	if ((s = sm_find_id(owner)) != NULL && !s->closing)
		w->fn(s, w->iq, found && (sub & SUB_FROM) != 0);
	arena_free(w->iq->arena);
	free(w);
}

void
disco_account_access(struct session *from, struct xel *iq,
    disco_access_fn fn)
{
	struct access_wait *w;
	struct jid to = { 0 };
	const char *tostr = xel_attr(iq, "to");

	if (to_own_account(from, iq)) {
		fn(from, iq, 1);
		return;
	}
	/* The router only hands us bare JIDs of our own hosts. */
	if (tostr == NULL || jid_parse(&to, tostr) < 0 || to.node == NULL) {
		jid_free(&to);
		fn(from, iq, 0);
		return;
	}
	w = xcalloc(1, sizeof(*w));
	w->tag = next_tag++;
	w->iq = xel_copy(arena_new(1024), iq);
	w->fn = fn;
	w->next = waiting;
	waiting = w;
	/* The account's item for the requester must carry 'from'. */
	roster_subscription(to.node, to.domain, from->bare, access_done,
	    from->id, w->tag);
	jid_free(&to);
}

static void
send_reply(struct session *s, struct xel *r)
{
	if (r == NULL)
		return;
	session_send(s, r);
	arena_free(r->arena);
}

static void
reply_info(struct session *s, const struct xel *iq, const char *node,
    enum disco_scope scope)
{
	struct xel *r = stanza_iq_result(iq);
	struct xel *q = xel_add(r, "query", NS_DISCO_INFO);

	if (node)
		xel_set_attr(q, "node", node);
	disco_fill_info(q, scope);
	send_reply(s, r);
}

static void
add_service_item(const char *domain, void *arg)
{
	xel_set_attr(xel_add(arg, "item", NS_DISCO_ITEMS), "jid", domain);
}

/* A bare JID's items are none; the server's (no node) are the services
 * hosted for its domain (router.h), e.g. the XEP-0045 service. */
static void
reply_items(struct session *s, const struct xel *iq, const char *node,
    enum iq_target target)
{
	struct xel *r = stanza_iq_result(iq);
	struct xel *q = xel_add(r, "query", NS_DISCO_ITEMS);
	const char *to = xel_attr(iq, "to");

	if (node)
		xel_set_attr(q, "node", node);
	else if (target == IQ_TO_SERVER)
		router_foreach_service(to ? to : s->jid.domain,
		    add_service_item, q);
	send_reply(s, r);
}

static int
is_get(const struct xel *iq)
{
	const char *type = xel_attr(iq, "type");

	return type && strcmp(type, "get") == 0;
}

/* XEP-0115 §6.2: the caps node "node#ver" names the server's info. */
static int
is_caps_node(const char *node)
{
	size_t n = strlen(DISCO_CAPS_NODE);

	return strncmp(node, DISCO_CAPS_NODE, n) == 0 && node[n] == '#' &&
	    strcmp(node + n + 1, disco_caps_ver()) == 0;
}

static void
account_info(struct session *s, struct xel *iq, int allowed)
{
	const char *node = xel_attr(xel_first_elem(iq), "node");

	/* XEP-0030 §8 rule 1: <service-unavailable/> when the account does
	 * not exist or the requester may not see its presence; no node
	 * exists on accounts yet. */
	if (!allowed)
		send_reply(s, stanza_error(iq, NULL, "service-unavailable",
		    NULL));
	else if (node)
		send_reply(s, stanza_error(iq, NULL, "item-not-found", NULL));
	else
		reply_info(s, iq, NULL, DISCO_ACCOUNT);
}

static enum hook_result
handle_info(struct session *from, struct xel *iq, enum iq_target target)
{
	const char *node = xel_attr(xel_first_elem(iq), "node");

	if (!is_get(iq))
		return HOOK_PASS;
	if (target == IQ_TO_BARE)
		disco_account_access(from, iq, account_info);
	else if (node && !is_caps_node(node))
		send_reply(from, stanza_error(iq, NULL, "item-not-found",
		    NULL));
	else
		reply_info(from, iq, node, DISCO_SERVER);
	return HOOK_HANDLED;
}

static enum hook_result
handle_items(struct session *from, struct xel *iq, enum iq_target target)
{
	const char *node = xel_attr(xel_first_elem(iq), "node");

	if (!is_get(iq))
		return HOOK_PASS;
	/* XEP-0030 §8 rule 2: a bare JID's items are an empty set for
	 * anyone, whether the account exists or not (no items yet: no
	 * PEP nodes, and resources are never listed).  The server's items
	 * are its services; an unknown node does not exist. */
	if (target == IQ_TO_SERVER && node)
		send_reply(from, stanza_error(iq, NULL, "item-not-found",
		    NULL));
	else
		reply_items(from, iq, node, target);
	return HOOK_HANDLED;
}

/* XEP-0115 §6.3: capabilities of the server as a stream feature. */
static void
add_caps(struct transport *t, struct xel *features, int authed)
{
	struct xel *caps = xel_add(features, "c", NS_CAPS);

	xel_set_attr(caps, "hash", "sha-1");
	xel_set_attr(caps, "node", DISCO_CAPS_NODE);
	xel_set_attr(caps, "ver", disco_caps_ver());
}

/* The registry entries of this module, contacts from the configuration
 * included. */
static void
add_entries(void)
{
	const struct conf *conf = xmppd_conf;

	disco_add_identity(DISCO_SERVER, "server", "im", "xmppd");
	disco_add_feature(DISCO_SERVER, NS_DISCO_INFO);
	disco_add_feature(DISCO_SERVER, NS_DISCO_ITEMS);
	/* The server answers for accounts (registrar "account" category). */
	disco_add_identity(DISCO_ACCOUNT, "account", "registered", NULL);
	disco_add_feature(DISCO_ACCOUNT, NS_DISCO_INFO);
	disco_add_feature(DISCO_ACCOUNT, NS_DISCO_ITEMS);
	/* XEP-0157: one field per kind, one value per address. */
	for (size_t i = 0; i < conf->ncontacts; i++) {
		char *var = xasprintf("%s-addresses", conf->contacts[i].type);

		disco_add_server_info(var, conf->contacts[i].uri);
		free(var);
	}
}

void
mod_disco_init(void)
{
	add_entries();
	iq_register(NS_DISCO_INFO, "query", handle_info);
	iq_register(NS_DISCO_ITEMS, "query", handle_items);
	hook_add_features(add_caps);
}

/* A reload may change the contact addresses. */
void
mod_disco_reload(void)
{
	disco_remove_owner(hook_owner());
	add_entries();
}
