/*
 * Message Carbons (XEP-0280 1.0, urn:xmpp:carbons:2): a resource that
 * enabled carbons gets a copy of every instant message its account
 * receives on another resource (<received/>) or sends from another
 * resource (<sent/>), wrapped with XEP-0297 and sent from the account's
 * bare JID.  Also keeps clients from passing off anything as a carbon:
 * carbons come from the account's bare JID only (§11).
 *
 * State: which sessions enabled carbons, in a table keyed by session id
 * (dropped at session end), and per account with at least one such
 * session a small record for the error rule of §6.1.  A message to or
 * from an account without carbons costs one hash lookup and allocates
 * nothing.
 *
 * Sections cited are those of XEP-0280 1.0.1: §4 enabling, §5 disabling,
 * §6 eligible messages (§6.1 the recommended rules we follow), §7
 * receiving, §8 sending, §9 avoiding carbons, §10.1 repeated enable or
 * disable, §11 security.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/disco.h"
#include "core/hooks.h"
#include "core/iq.h"
#include "jid.h"
#include "log.h"
#include "store/mam.h"
#include "core/router.h"
#include "core/session.h"
#include "core/stanza.h"
#include "strmap.h"
#include "xmalloc.h"
#include "xml.h"

#define NS_CARBONS "urn:xmpp:carbons:2"
/* Any version of the protocol, for what a peer may not forge. */
#define NS_CARBONS_ANY "urn:xmpp:carbons:"
#define NS_HINTS "urn:xmpp:hints"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"
#define NS_CONFERENCE "jabber:x:conference"
#define NS_RECEIPTS "urn:xmpp:receipts"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define NS_MARKERS "urn:xmpp:chat-markers:0"

/* Room for "node@domain" (RFC 6122 §2.1 part limits). */
#define BARE_MAX (2 * JID_PART_MAX + 2)

/* Eligible messages remembered per account for the error rule. */
#define RECENT_MAX 64

void mod_carbons_init(void);
void mod_carbons_deinit(void);

enum direction { CARBON_RECEIVED, CARBON_SENT };

/*
 * An account with at least one carbons-enabled session.  recent holds
 * hashes of (direction, peer's bare JID, id) of the last eligible
 * messages it exchanged, so that an error answering one of them is
 * copied too (§6.1) without keeping the messages.
 */
struct carbons_user {
	size_t enabled; /* carbons-enabled sessions */
	uint64_t recent[RECENT_MAX];
	size_t next; /* where the next hash goes */
};

static struct strmap *users;    /* bare JID -> struct carbons_user */
static struct strmap *sessions; /* decimal session id -> its user */

/* The table. */

static void
session_key(const struct session *s, char *key, size_t len)
{
	snprintf(key, len, "%" PRIu64, s->id);
}

static int
enabled(const struct session *s)
{
	char key[24];

	session_key(s, key, sizeof(key));
	return strmap_get(sessions, key) != NULL;
}

/* The account's record, or NULL when none of its sessions enabled
 * carbons: the one lookup every message pays. */
static struct carbons_user *
user_find(const char *bare)
{
	if (strmap_count(users) == 0)
		return NULL;
	return strmap_get(users, bare);
}

/* §4, §10.1: enabling twice is no error. */
static void
carbons_enable(struct session *s)
{
	struct carbons_user *u;
	char key[24];

	session_key(s, key, sizeof(key));
	if (strmap_get(sessions, key) != NULL)
		return;
	if ((u = strmap_get(users, s->bare)) == NULL) {
		u = xcalloc(1, sizeof(*u));
		strmap_put(users, s->bare, u);
	}
	u->enabled++;
	strmap_put(sessions, key, u);
}

/* §5, §10.1: disabling what is not enabled is no error either. */
static void
carbons_disable(struct session *s)
{
	struct carbons_user *u;
	char key[24];

	session_key(s, key, sizeof(key));
	if ((u = strmap_del(sessions, key)) == NULL)
		return;
	if (--u->enabled == 0)
		free(strmap_del(users, s->bare));
}

static void
on_session_end(struct session *s)
{
	carbons_disable(s);
}

/* Enable and disable. */

/*
 * Whether the IQ is for the sender's own server or account: to its
 * domain, to its bare JID, or without 'to' (RFC 6120 §10.3.3).
 */
static int
to_own_account(struct session *s, struct xel *iq, enum iq_target target)
{
	const char *to = xel_attr(iq, "to");
	struct jid j = {0};
	int own;

	if (to == NULL)
		return 1;
	if (jid_parse(&j, to) < 0)
		return 0;
	if (target == IQ_TO_SERVER)
		own = j.node == NULL && j.resource == NULL &&
		      strcmp(j.domain, s->jid.domain) == 0;
	else
		own = j.node && j.resource == NULL && jid_eq_bare(&j, &s->jid);
	jid_free(&j);
	return own;
}

/*
 * §4 and §5: an IQ set with <enable/> or <disable/>, answered with an
 * empty result.  Another account's carbons are <not-allowed/> (§5's
 * example and recommended condition); the protocol has no get.
 */
static enum hook_result
handle_carbons(struct session *s, struct xel *iq, enum iq_target target)
{
	const char *type = xel_attr(iq, "type");
	struct xel *payload = xel_first_elem(iq), *r;

	if (type == NULL || strcmp(type, "set") != 0)
		r = stanza_error(iq, "modify", "bad-request", NULL);
	else if (!to_own_account(s, iq, target))
		r = stanza_error(iq, "cancel", "not-allowed", NULL);
	else {
		if (xel_is(payload, "enable", NS_CARBONS))
			carbons_enable(s);
		else
			carbons_disable(s);
		r = stanza_iq_result(iq);
	}
	if (r != NULL) {
		session_send(s, r);
		arena_free(r->arena);
	}
	return HOOK_HANDLED;
}

/* Forged carbons (§11). */

static int
ns_has_prefix(const struct xel *el, const char *prefix)
{
	return strncmp(el->ns, prefix, strlen(prefix)) == 0;
}

static int
is_wrapper(const struct xel *el)
{
	return (strcmp(el->name, "received") == 0 ||
	           strcmp(el->name, "sent") == 0) &&
	       ns_has_prefix(el, NS_CARBONS_ANY);
}

/* Remove the carbons wrappers among msg's children; returns how many. */
static int
strip_wrappers(struct xel *msg)
{
	struct xel *c, *next;
	int n = 0;

	for (c = xel_first_elem(msg); c != NULL; c = next) {
		next = xel_next(c, NULL, NULL);
		if (is_wrapper(c)) {
			xel_remove(c);
			n++;
		}
	}
	return n;
}

/*
 * A client never sends a carbon: "any forwarded copies received by a
 * Carbons-enabled client MUST be from that user's bare JID" (§11), and
 * what a client sends carries its full JID.  So a wrapper in any message
 * a client sends, to anyone, is removed before anything (the archive,
 * the router) sees it; the rest of the message goes on.
 */
static enum hook_result
carbons_outbound(struct session *from, struct xel *st, const struct jid *to)
{
	int n;

	if (stanza_kind(st) != STANZA_MESSAGE || (n = strip_wrappers(st)) == 0)
		return HOOK_PASS;
	log_debug(SESSION_LOG_FMT ": removed %d carbons wrapper(s) from a "
	    "message it sent", SESSION_LOG_ARGS(from), n);
	return HOOK_PASS;
}

/* "node@domain" of j into buf (BARE_MAX bytes); 0, or -1 without node. */
static int
bare_of(const struct jid *j, char *buf)
{
	if (j->node == NULL)
		return -1;
	snprintf(buf, BARE_MAX, "%s@%s", j->node, j->domain);
	return 0;
}

/* Whether a JID string's bare part is exactly bare. */
static int
same_bare(const char *jid, const char *bare)
{
	size_t n = strlen(bare);

	return jid != NULL && strncmp(jid, bare, n) == 0 &&
	       (jid[n] == '\0' || jid[n] == '/');
}

/*
 * A message about to reach a local user: a carbons wrapper in it is
 * genuine only from the user's own bare JID (§11); from anyone else it
 * is removed, so it can never pass for a carbon.  Local senders lost
 * theirs in carbons_outbound already; this catches what the server
 * routes for others.
 */
static enum hook_result
carbons_message_in(
    struct session *from_session, struct xel *msg, const struct jid *to)
{
	const char *from = xel_attr(msg, "from");
	char bare[BARE_MAX];
	int n;

	if (bare_of(to, bare) == 0 && from != NULL && strcmp(from, bare) == 0)
		return HOOK_PASS;
	if ((n = strip_wrappers(msg)) > 0)
		log_debug("carbons: removed %d forged wrapper(s) from a "
		          "message from %s to %s",
		    n, from ? from : "(none)", to->node ? bare : to->domain);
	return HOOK_PASS;
}

/* Eligibility (§6.1). */

enum eligibility { NOT_ELIGIBLE, ELIGIBLE, ELIGIBLE_IF_ANSWER };

static int
has_child(const struct xel *msg, const char *name, const char *ns)
{
	return xel_child(msg, name, ns) != NULL;
}

/* "Payload elements typically used in IM" (§6.1): receipts (XEP-0184),
 * chat states (XEP-0085), chat markers (XEP-0333). */
static int
has_im_payload(const struct xel *msg)
{
	return has_child(msg, "request", NS_RECEIPTS) ||
	       has_child(msg, "received", NS_RECEIPTS) ||
	       has_child(msg, NULL, NS_CHATSTATES) ||
	       has_child(msg, NULL, NS_MARKERS);
}

/*
 * Whether msg, going in direction dir for the account, is copied.
 * XEP-0280 §6.1: eligible if it has no <private/> and is of type chat,
 * or normal with a <body/>, or carries IM payloads, or is an error
 * answering an eligible message (ELIGIBLE_IF_ANSWER: the caller checks
 * its record), or matches the MUC rules: groupchat never; direct
 * (XEP-0249) and mediated invitations always; private messages to an
 * occupant yes, from an occupant (marked with the muc#user <x/>, which
 * XEP-0045 §7.5 has the service add) no, since the room already gives
 * them to every joined client.  XEP-0334 §4.3: <no-copy/> is not
 * copied either (§9 has clients send it with <private/>).  A carbon is
 * never copied again.
 */
static enum eligibility
eligibility(const struct xel *msg, enum direction dir)
{
	const char *type = xel_attr(msg, "type");
	struct xel *muc;

	if (type == NULL)
		type = "normal";
	if (has_child(msg, "private", NS_CARBONS) ||
	    has_child(msg, "no-copy", NS_HINTS) ||
	    has_child(msg, "received", NS_CARBONS) ||
	    has_child(msg, "sent", NS_CARBONS))
		return NOT_ELIGIBLE;
	if (strcmp(type, "groupchat") == 0)
		return NOT_ELIGIBLE;
	muc = xel_child(msg, "x", NS_MUC_USER);
	if (has_child(msg, "x", NS_CONFERENCE) ||
	    (muc && has_child(muc, "invite", NS_MUC_USER)))
		return ELIGIBLE;
	if (muc && dir == CARBON_RECEIVED)
		return NOT_ELIGIBLE;
	if (strcmp(type, "error") == 0)
		return ELIGIBLE_IF_ANSWER;
	if (strcmp(type, "chat") == 0)
		return ELIGIBLE;
	if (strcmp(type, "normal") == 0 && has_child(msg, "body", NS_CLIENT))
		return ELIGIBLE;
	return has_im_payload(msg) ? ELIGIBLE : NOT_ELIGIBLE;
}

/* The record of eligible messages, for errors that answer them. */

static uint64_t
fnv1a(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* (dir, peer's bare JID, id); peer is a JID string whose resource, if
 * any, is ignored.  Prepared JIDs throughout, as the router stamps
 * them. */
static uint64_t
exchange_hash(enum direction dir, const char *peer, const char *id)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	char d = dir == CARBON_SENT ? 'S' : 'R';
	const char *slash = strchr(peer, '/');

	h = fnv1a(h, &d, 1);
	h = fnv1a(h, peer, slash ? (size_t)(slash - peer) : strlen(peer));
	h = fnv1a(h, "", 1);
	return fnv1a(h, id, strlen(id));
}

static void
remember(struct carbons_user *u, enum direction dir, const char *peer,
    const struct xel *msg)
{
	const char *id = xel_attr(msg, "id");

	if (id == NULL || peer == NULL)
		return;
	u->recent[u->next] = exchange_hash(dir, peer, id);
	u->next = (u->next + 1) % RECENT_MAX;
}

/* Whether an error going in direction dir answers an eligible message
 * that went the other way: the same peer and id (RFC 6120 §8.3.1). */
static int
answers_eligible(const struct carbons_user *u, enum direction dir,
    const char *peer, const struct xel *msg)
{
	const char *id = xel_attr(msg, "id");
	uint64_t h;

	if (id == NULL || peer == NULL)
		return 0;
	h = exchange_hash(
	    dir == CARBON_SENT ? CARBON_RECEIVED : CARBON_SENT, peer, id);
	for (size_t i = 0; i < RECENT_MAX; i++)
		if (u->recent[i] == h)
			return 1;
	return 0;
}

/* Whether msg is copied, remembering it when it is. */
static int
check_eligible(struct carbons_user *u, enum direction dir, const char *peer,
    const struct xel *msg)
{
	switch (eligibility(msg, dir)) {
	case ELIGIBLE:
		remember(u, dir, peer, msg);
		return 1;
	case ELIGIBLE_IF_ANSWER:
		return answers_eligible(u, dir, peer, msg);
	default:
		return 0;
	}
}

/* The copies. */

/*
 * The wrapper (§7, §8): from the account's bare JID, the same type as
 * the original, <received/> or <sent/> holding <forwarded/> (XEP-0297)
 * holding a copy of msg.  A received message carries the recipient's
 * archive id already (mod_mam adds it in message_in, before us); a sent
 * one gets the sender's, sent_id, on the copy only (XEP-0313 §3.5: never
 * on the routed message).  In a new arena; 'to' is set per copy.
 */
static struct xel *
wrap(const struct xel *msg, const char *bare, enum direction dir,
    const char *sent_id)
{
	struct xel *w = xel_new(arena_new(1024), "message", NS_CLIENT);
	const char *type = xel_attr(msg, "type");
	struct xel *c, *inner, *sid;

	xel_set_attr(w, "from", bare);
	if (type != NULL)
		xel_set_attr(w, "type", type);
	c = xel_add(w, dir == CARBON_SENT ? "sent" : "received", NS_CARBONS);
	inner = xel_append_copy(xel_add(c, "forwarded", NS_FORWARD), msg);
	if (sent_id != NULL) {
		sid = xel_add(inner, "stanza-id", NS_SID);
		xel_set_attr(sid, "by", bare);
		xel_set_attr(sid, "id", sent_id);
	}
	return w;
}

static int
listed(const struct session *s, struct session **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == s)
			return 1;
	return 0;
}

/*
 * A copy of msg to each carbons-enabled session of the account j except
 * skip (the sender, or NULL) and the sessions that got the original
 * (got, n).  sent_id: see wrap().  The wrapper is built at the first
 * copy, and never when no session needs one.
 */
static void
send_copies(const struct jid *j, const char *bare, const struct xel *msg,
    enum direction dir, const char *sent_id, const struct session *skip,
    struct session **got, size_t n)
{
	struct xel *w = NULL;

	for (struct session *s = sm_find_bare(j->node, j->domain), *next; s;
	     s = next) {
		next = s->next;
		if (s == skip || !enabled(s) || listed(s, got, n))
			continue;
		if (w == NULL)
			w = wrap(msg, bare, dir, sent_id);
		xel_set_attr(w, "to", s->full);
		router_deliver(s, w);
	}
	if (w != NULL)
		arena_free(w->arena);
}

/*
 * §8: a message a local session sends goes, as <sent/>, to the other
 * carbons-enabled sessions of its account, whether or not the sender
 * enabled carbons.  A message to the account itself waits for its
 * delivery (carbons_message_delivered), where the resources that get
 * the original are known.
 */
static enum hook_result
carbons_message_out(struct session *from, struct xel *msg, const struct jid *to)
{
	struct carbons_user *u;
	char peer[BARE_MAX];

	if ((u = user_find(from->bare)) == NULL)
		return HOOK_PASS;
	if (to->node != NULL && jid_eq_bare(to, &from->jid))
		return HOOK_PASS;
	if (to->node != NULL)
		bare_of(to, peer);
	else
		snprintf(peer, sizeof(peer), "%s", to->domain);
	if (check_eligible(u, CARBON_SENT, peer, msg))
		send_copies(&from->jid, from->bare, msg, CARBON_SENT,
		    mam_sent_id(msg), from, NULL, 0);
	return HOOK_PASS;
}

/* The sending session of a message a user sent to its own account. */
static struct session *
sender_of(const struct jid *to, const char *from)
{
	for (struct session *s = sm_find_bare(to->node, to->domain); s;
	     s = s->next)
		if (strcmp(s->full, from) == 0)
			return s;
	return NULL;
}

/*
 * §7: after a message reached a local user, a <received/> copy to each
 * carbons-enabled session of the user that did not get it.  Only when
 * some session got it: a message stored offline reaches the user later
 * from storage (and a copy now would be a second one), and a bounced
 * one never reached the user at all.
 *
 * A message the user sent to its own account (another resource, or the
 * bare JID) is copied as <sent/> to the sessions that neither sent nor
 * got it, once (mod_mam archived it once, as sent, and put that id on
 * it already).
 */
static void
carbons_message_delivered(
    struct xel *msg, const struct jid *to, struct session **got, size_t n)
{
	const char *from = xel_attr(msg, "from");
	struct carbons_user *u;
	char bare[BARE_MAX];

	if (bare_of(to, bare) < 0 || (u = user_find(bare)) == NULL)
		return;
	if (same_bare(from, bare)) {
		if (eligibility(msg, CARBON_SENT) == ELIGIBLE)
			send_copies(to, bare, msg, CARBON_SENT, NULL,
			    sender_of(to, from), got, n);
		return;
	}
	if (n > 0 && check_eligible(u, CARBON_RECEIVED, from, msg))
		send_copies(to, bare, msg, CARBON_RECEIVED, NULL, NULL, got, n);
}

/* XEP-0386 §3.2: <enable xmlns='urn:xmpp:carbons:2'/> inside a Bind 2
 * request enables carbons for the new session; it cannot fail, so
 * nothing answers it in <bound/>. */
static void
bind2_features(struct xel *inline_features)
{
	xel_set_attr(xel_add(inline_features, "feature", NULL), "var",
	    NS_CARBONS);
}

static enum hook_result
bind2_enable(struct session *s, const struct xel *req, struct xel *bound)
{
	(void)bound;
	if (!xel_is(req, "enable", NS_CARBONS))
		return HOOK_PASS;
	carbons_enable(s);
	return HOOK_HANDLED;
}

void
mod_carbons_init(void)
{
	/* In the module table after the archive (XEP-0313), so that the
	 * copies carry the <stanza-id/> it adds. */
	users = strmap_new();
	sessions = strmap_new();
	iq_register(NS_CARBONS, "enable", handle_carbons);
	iq_register(NS_CARBONS, "disable", handle_carbons);
	hook_add_session(HOOK_SESSION_END, on_session_end);
	hook_add_outbound(carbons_outbound);
	hook_add_message_in(carbons_message_in);
	hook_add_message_out(carbons_message_out);
	hook_add_message_delivered(carbons_message_delivered);
	hook_add_bind2(bind2_features, bind2_enable);
	/* §3 */
	disco_add_feature(DISCO_SERVER, NS_CARBONS);
}

static void
free_user(const char *key, void *value, void *arg)
{
	free(value);
}

/* Every session's carbons end with the module: a client that enabled
 * them finds the feature gone from disco and enables them again if it
 * comes back. */
void
mod_carbons_deinit(void)
{
	strmap_foreach(users, free_user, NULL);
	strmap_free(users);
	strmap_free(sessions);
	users = sessions = NULL;
}
