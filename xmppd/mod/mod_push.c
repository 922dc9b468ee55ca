/*
 * Push notifications (XEP-0357 0.4, urn:xmpp:push:0): a client registers
 * an app server (a JID and a node, with a publish-options form carrying
 * e.g. its secret); when a message that matters reaches the account while
 * no session of it can take it (all offline, detached waiting for
 * XEP-0198 resumption, or XEP-0352 inactive), the server publishes a
 * summary (message count, last sender, the body only if the
 * administrator allows) to each registered node, at most once per
 * registration per push-interval.  An error from the app server removes
 * that registration, unless it is of type wait (temporary), and so does
 * the app server's notice that it took away the account's affiliation.
 *
 * State: registrations are stored (store/push.h) and cached per account
 * once needed (loaded asynchronously, written through); the count of
 * messages since the account last had an active session lives in the
 * cache only.  Notifications awaiting their answer are kept by IQ id for
 * PENDING_TIMEOUT seconds.
 *
 * Sections cited are those of XEP-0357 0.4.1: §5 enabling, §6 disabling,
 * §7 publishing (§7.1 publish errors), §8 remote disabling.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "arena.h"
#include "buf.h"
#include "conf.h"
#include "core/csi.h"
#include "core/disco.h"
#include "core/hooks.h"
#include "core/iq.h"
#include "core/router.h"
#include "core/session.h"
#include "core/stanza.h"
#include "jid.h"
#include "log.h"
#include "mono.h"
#include "store/push.h"
#include "strmap.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_PUSH "urn:xmpp:push:0"
#define NS_PUBSUB "http://jabber.org/protocol/pubsub"
#define NS_PUBLISH_OPTIONS "http://jabber.org/protocol/pubsub#publish-options"
#define NS_PUSH_SUMMARY "urn:xmpp:push:summary"

#define PUSH_ID_PREFIX "push-"
#define PENDING_TIMEOUT 60.0  /* s to wait for the app server's answer */
#define FORM_MAX 8192         /* bytes of a publish-options form */
#define NODE_MAX 1024         /* bytes of a node name */
#define BODY_MAX 512          /* bytes of a body kept for the summary */
#define CACHE_MAX 10000       /* accounts cached before idle ones go */

void mod_push_init(void);
void mod_push_deinit(void);

struct push_user;

/* One registration as cached. */
struct push_reg {
	struct push_user *u;
	char *jid, *node;
	char *form;          /* serialized <x/>, "" for none */
	double last_sent;    /* mono_now() of the last notification, 0 */
	ev_timer timer;      /* the deferred notification (rate limit) */
};

/* An account whose registrations are cached (or loading). */
struct push_user {
	char *user, *host, *bare;
	uint64_t load_id;    /* the load in flight, 0 if none */
	int loaded;
	struct push_reg **regs;
	size_t nregs;
	/* Since the account last had an active session: */
	unsigned count;      /* messages that would have woken it */
	char *last_sender;   /* full JID, NULL if none */
	char *last_body;     /* kept only with push-include-body on */
};

/* A notification waiting for the app server's answer, by IQ id. */
struct pending {
	char *id, *bare, *jid, *node;
	ev_timer timer;
};

/* An enable or disable waiting for the store, by request id. */
struct request {
	uint64_t id;        /* the store's owner */
	uint64_t session;   /* who asked */
	struct xel *skel;   /* stanza_iq_skeleton of the request */
	char *user, *host, *bare, *jid, *node, *form;
	int enable;
};

static struct strmap *users;    /* bare JID -> struct push_user; NULL while
                                   the module is off */
static struct strmap *loads;    /* load id -> struct push_user */
static struct strmap *pendings; /* IQ id -> struct pending */
static struct strmap *requests; /* request id -> struct request */
static uint64_t next_id = 1;
static double tokens, tokens_at; /* the global bucket (push-rate) */

static void reg_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

static void
id_key(uint64_t id, char *key, size_t len)
{
	snprintf(key, len, "%" PRIu64, id);
}

/* Registrations in memory. */

static struct push_reg *
reg_new(struct push_user *u, const char *jid, const char *node,
    const char *form)
{
	struct push_reg *r = xcalloc(1, sizeof(*r));

	r->u = u;
	r->jid = xstrdup(jid);
	r->node = xstrdup(node);
	r->form = xstrdup(form != NULL ? form : "");
	ev_timer_init(&r->timer, reg_timer_cb, 0, 0);
	u->regs = xreallocarray(u->regs, u->nregs + 1, sizeof(*u->regs));
	u->regs[u->nregs++] = r;
	return r;
}

static void
reg_free(struct push_reg *r)
{
	ev_timer_stop(xmppd_loop, &r->timer);
	free(r->jid);
	free(r->node);
	free(r->form);
	free(r);
}

static struct push_reg *
reg_find(const struct push_user *u, const char *jid, const char *node)
{
	for (size_t i = 0; i < u->nregs; i++)
		if (strcmp(u->regs[i]->jid, jid) == 0 &&
		    strcmp(u->regs[i]->node, node) == 0)
			return u->regs[i];
	return NULL;
}

/* Forget the cached registrations of u matching jid and node (every node
 * of jid with node NULL). */
static void
reg_remove(struct push_user *u, const char *jid, const char *node)
{
	for (size_t i = 0; i < u->nregs;) {
		struct push_reg *r = u->regs[i];

		if (strcmp(r->jid, jid) == 0 &&
		    (node == NULL || strcmp(r->node, node) == 0)) {
			reg_free(r);
			u->regs[i] = u->regs[--u->nregs];
		} else
			i++;
	}
}

static void
reg_clear(struct push_user *u)
{
	for (size_t i = 0; i < u->nregs; i++)
		reg_free(u->regs[i]);
	free(u->regs);
	u->regs = NULL;
	u->nregs = 0;
}

/* The summary. */

static void
summary_reset(struct push_user *u)
{
	u->count = 0;
	free(u->last_sender);
	free(u->last_body);
	u->last_sender = u->last_body = NULL;
}

/* At most BODY_MAX bytes of text, cut at a UTF-8 character boundary. */
static char *
body_copy(const char *text)
{
	size_t n = strlen(text);

	if (n > BODY_MAX) {
		n = BODY_MAX;
		while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
			n--;
	}
	return xstrndup(text, n);
}

/* The cache of accounts. */

static void
user_free(struct push_user *u)
{
	char key[24];

	if (u->load_id != 0 && loads != NULL) {
		id_key(u->load_id, key, sizeof(key));
		strmap_del(loads, key);
	}
	reg_clear(u);
	summary_reset(u);
	free(u->user);
	free(u->host);
	free(u->bare);
	free(u);
}

static int
user_busy(const struct push_user *u)
{
	if (u->load_id != 0)
		return 1;
	for (size_t i = 0; i < u->nregs; i++)
		if (ev_is_active(&u->regs[i]->timer))
			return 1;
	return 0;
}

/* Past CACHE_MAX accounts, drop idle ones (no load, no deferred
 * notification) until a quarter of the room is free again: they load
 * again when needed, and lose only their message count. */
static void
cache_trim(void)
{
	void **v;
	size_t n, left;

	if (strmap_count(users) <= CACHE_MAX)
		return;
	v = strmap_values(users, &n);
	left = n;
	for (size_t i = 0; i < n && left > CACHE_MAX * 3 / 4; i++) {
		struct push_user *u = v[i];

		if (user_busy(u))
			continue;
		strmap_del(users, u->bare);
		user_free(u);
		left--;
	}
	free(v);
}

static void load_done(uint64_t owner, enum store_status st,
    const struct store_push *rows, size_t n);

static void
user_load(struct push_user *u)
{
	char key[24];

	u->load_id = next_id++;
	id_key(u->load_id, key, sizeof(key));
	strmap_put(loads, key, u);
	store_push_list(u->host, u->user, load_done, u->load_id);
}

/* The cached account user@host, created (and its load started) if need
 * be. */
static struct push_user *
user_get(const char *user, const char *host)
{
	char bare[2 * JID_PART_MAX + 2];
	struct push_user *u;

	snprintf(bare, sizeof(bare), "%s@%s", user, host);
	if ((u = strmap_get(users, bare)) != NULL)
		return u;
	cache_trim();
	u = xcalloc(1, sizeof(*u));
	u->user = xstrdup(user);
	u->host = xstrdup(host);
	u->bare = xstrdup(bare);
	strmap_put(users, u->bare, u);
	user_load(u);
	return u;
}

/* Sending notifications. */

/* Take a token from the global bucket (limits { push-rate }). */
static int
global_take(void)
{
	unsigned rate = xmppd_conf->limits.push_rate;
	double now = mono_now(xmppd_loop);

	if (rate == 0)
		return 1;
	tokens += (now - tokens_at) * rate;
	tokens_at = now;
	if (tokens > rate)
		tokens = rate;
	if (tokens < 1)
		return 0;
	tokens--;
	return 1;
}

static void
add_field(struct xel *x, const char *var, const char *value)
{
	struct xel *f = xel_add(x, "field", NS_XDATA);

	xel_set_attr(f, "var", var);
	xel_text_set(xel_add(f, "value", NS_XDATA), value);
}

static void pending_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

static void
pending_free(struct pending *p)
{
	ev_timer_stop(xmppd_loop, &p->timer);
	free(p->id);
	free(p->bare);
	free(p->jid);
	free(p->node);
	free(p);
}

/* Remember the notification id sent for r until its answer comes. */
static void
pending_add(const struct push_reg *r, const char *id)
{
	struct pending *p = xcalloc(1, sizeof(*p));

	p->id = xstrdup(id);
	p->bare = xstrdup(r->u->bare);
	p->jid = xstrdup(r->jid);
	p->node = xstrdup(r->node);
	ev_timer_init(&p->timer, pending_timer_cb, PENDING_TIMEOUT, 0);
	ev_timer_start(xmppd_loop, &p->timer);
	strmap_put(pendings, p->id, p);
}

/*
 * §7: publish the summary of r's account to r's node at the app server,
 * with the publish-options the client gave.  The summary is a data form
 * of type form (XEP-0004 requires a type, §7's example has none; app
 * servers read the fields only).
 */
static void
notify(struct push_reg *r)
{
	const struct push_user *u = r->u;
	struct arena *a = arena_new(1024);
	struct xel *iq, *pubsub, *publish, *item, *x;
	char id[32], count[16];

	snprintf(id, sizeof(id), PUSH_ID_PREFIX "%" PRIu64, next_id++);
	snprintf(count, sizeof(count), "%u", u->count);
	iq = xel_new(a, "iq", NS_CLIENT);
	xel_set_attr(iq, "type", "set");
	xel_set_attr(iq, "from", u->bare);
	xel_set_attr(iq, "to", r->jid);
	xel_set_attr(iq, "id", id);
	pubsub = xel_add(iq, "pubsub", NS_PUBSUB);
	publish = xel_add(pubsub, "publish", NS_PUBSUB);
	xel_set_attr(publish, "node", r->node);
	item = xel_add(publish, "item", NS_PUBSUB);
	x = xel_add(xel_add(item, "notification", NS_PUSH), "x", NS_XDATA);
	xel_set_attr(x, "type", "form");
	add_field(x, "FORM_TYPE", NS_PUSH_SUMMARY);
	add_field(x, "message-count", count);
	if (xmppd_conf->push_include_sender && u->last_sender != NULL)
		add_field(x, "last-message-sender", u->last_sender);
	if (xmppd_conf->push_include_body && u->last_body != NULL)
		add_field(x, "last-message-body", u->last_body);
	if (r->form[0] != '\0') {
		struct xml_limits lim = {strlen(r->form) + 1, 64, 64,
		    SIZE_MAX};
		struct xel *form = xml_parse_element(r->form, strlen(r->form),
		    NS_XDATA, &lim);

		if (form != NULL) {
			xel_append_copy(xel_add(pubsub, "publish-options",
			    NS_PUBSUB), form);
			arena_free(form->arena);
		} else
			log_warnx("push: %s: the stored publish-options for "
			    "%s node %s do not parse; sent without",
			    u->bare, r->jid, r->node);
	}
	r->last_sent = mono_now(xmppd_loop);
	pending_add(r, id);
	log_debug("push: %s: notification %s to %s node %s (%u messages)",
	    u->bare, id, r->jid, r->node, u->count);
	/* A local JID or a service domain gets it now; a remote domain
	 * is dropped until server-to-server exists (router_route), and
	 * the pending entry then just times out. */
	router_route(iq);
	arena_free(a);
}

/* A notification is due for r: now, or when the rate limits allow (the
 * timer sends the summary as it is then). */
static void
reg_notify(struct push_reg *r)
{
	double interval = xmppd_conf->limits.push_interval, wait;

	if (ev_is_active(&r->timer))
		return;
	wait = r->last_sent + interval - mono_now(xmppd_loop);
	if (r->last_sent == 0 || wait <= 0) {
		if (global_take()) {
			notify(r);
			return;
		}
		wait = xmppd_conf->limits.push_rate > 0 ?
		    1.0 / xmppd_conf->limits.push_rate : 1.0;
	}
	ev_timer_set(&r->timer, wait, 0);
	ev_timer_start(xmppd_loop, &r->timer);
}

static void
reg_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct push_reg *r = container_of(w, struct push_reg, timer);

	(void)loop;
	(void)revents;
	/* The account came back in the meantime: nothing to tell. */
	if (r->u->count > 0)
		reg_notify(r);
}

static void
user_notify(struct push_user *u)
{
	for (size_t i = 0; i < u->nregs; i++)
		reg_notify(u->regs[i]);
}

static void
load_done(uint64_t owner, enum store_status st, const struct store_push *rows,
    size_t n)
{
	char key[24];
	struct push_user *u;

	if (loads == NULL)
		return;
	id_key(owner, key, sizeof(key));
	if ((u = strmap_del(loads, key)) == NULL)
		return;
	u->load_id = 0;
	if (st != STORE_OK) {
		log_warnx("push: %s: cannot load the registrations", u->bare);
		strmap_del(users, u->bare);
		user_free(u);
		return;
	}
	reg_clear(u);
	for (size_t i = 0; i < n; i++)
		reg_new(u, rows[i].jid, rows[i].node, rows[i].form);
	u->loaded = 1;
	if (u->count > 0)
		user_notify(u);
}

/* When to push. */

/* A message that would make a person look (§4 leaves it to the
 * server): of type chat or normal, and what XEP-0352 calls urgent
 * (csi_classify: a body, an OMEMO or OpenPGP payload that may come
 * without one, a call (XEP-0353), an invitation).  Not chat states,
 * receipts or markers alone; not groupchat: the room's traffic reaches
 * a user's sessions, never its bare JID, and only the room knows which
 * message mentions the user. */
static int
worth_push(const struct xel *msg)
{
	const char *type = xel_attr(msg, "type");

	if (type != NULL && strcmp(type, "chat") != 0 &&
	    strcmp(type, "normal") != 0)
		return 0;
	return csi_classify(msg) == CSI_URGENT;
}

/* A session able to take a message now: attached and not inactive. */
static int
session_awake(const struct session *s)
{
	return s->t != NULL && !s->closing && !csi_inactive(s);
}

static void
push_message_delivered(struct xel *msg, const struct jid *to,
    struct session **sessions, size_t n)
{
	struct push_user *u;
	const char *from, *body;
	struct xel *b;

	if (to->node == NULL || !worth_push(msg))
		return;
	for (size_t i = 0; i < n; i++)
		if (session_awake(sessions[i]))
			return;
	u = user_get(to->node, to->domain);
	u->count++;
	if ((from = xel_attr(msg, "from")) != NULL) {
		free(u->last_sender);
		u->last_sender = xstrdup(from);
	}
	free(u->last_body);
	u->last_body = NULL;
	if (xmppd_conf->push_include_body &&
	    (b = xel_child(msg, "body", NS_CLIENT)) != NULL &&
	    (body = xel_text(b)) != NULL)
		u->last_body = body_copy(body);
	if (u->loaded)
		user_notify(u);
}

/* The account has an active session again: the count starts over. */
static void
account_awake(const struct session *s)
{
	struct push_user *u;

	if (users != NULL && strmap_count(users) > 0 &&
	    (u = strmap_get(users, s->bare)) != NULL && u->count > 0)
		summary_reset(u);
}

static void
push_session_bound(struct session *s)
{
	account_awake(s);
}

/* The app server's answer to a notification: from (its JID as the
 * answer came, from a local session, a component or another server) to
 * the account the notification came from. */
static enum hook_result
push_answer(struct xel *st, const struct jid *from, const struct jid *to)
{
	const char *type, *id, *err;
	struct pending *p;
	struct push_user *u;
	struct jid pj = {0};
	char bare[2 * JID_PART_MAX + 2];
	int match;

	if (!xel_is(st, "iq", NS_CLIENT) ||
	    (type = xel_attr(st, "type")) == NULL ||
	    (strcmp(type, "result") != 0 && strcmp(type, "error") != 0) ||
	    (id = xel_attr(st, "id")) == NULL ||
	    strncmp(id, PUSH_ID_PREFIX, sizeof(PUSH_ID_PREFIX) - 1) != 0 ||
	    to == NULL || to->node == NULL || to->resource != NULL ||
	    (p = strmap_get(pendings, id)) == NULL)
		return HOOK_PASS;
	/* From the app server (its full JID, or any resource of a bare
	 * one) to the account the notification came from. */
	if (jid_parse(&pj, p->jid) < 0)
		return HOOK_PASS;
	match = pj.resource ? jid_eq_full(&pj, from) : jid_eq_bare(&pj, from);
	jid_free(&pj);
	snprintf(bare, sizeof(bare), "%s@%s", to->node, to->domain);
	if (!match || strcmp(bare, p->bare) != 0)
		return HOOK_PASS;
	strmap_del(pendings, id);
	if (strcmp(type, "error") == 0) {
		struct xel *e = xel_child(st, "error", NS_CLIENT);
		struct xel *c = e ? xel_first_elem(e) : NULL;
		const char *etype = e ? xel_attr(e, "type") : NULL;

		err = c != NULL ? c->name : "error";
		if (etype != NULL && strcmp(etype, "wait") == 0)
			/* §7.1: a transient error may keep it (RFC 6120
			 * §8.3.2: wait is a temporary condition). */
			log_info("push: %s: app server %s answered <%s/> "
			    "(wait) for node %s: registration kept", p->bare,
			    p->jid, err, p->node);
		else {
			log_info("push: %s: app server %s answered <%s/> "
			    "for node %s: registration removed", p->bare,
			    p->jid, err, p->node);
			if ((u = strmap_get(users, p->bare)) != NULL)
				reg_remove(u, p->jid, p->node);
			store_push_delete(to->domain, to->node, p->jid,
			    p->node, NULL, 0);
		}
	}
	pending_free(p);
	return HOOK_HANDLED;
}

/* Any stanza of an active session (which resets the account's count),
 * and the answers of app servers that are local accounts. */
static enum hook_result
push_outbound(struct session *from, struct xel *st, const struct jid *to)
{
	if (session_awake(from))
		account_awake(from);
	return push_answer(st, &from->jid, to);
}

/*
 * §8: the app server took the account's affiliation away from a node and
 * tells the account: <message from=APPSERVER><pubsub node=NODE>
 * <affiliation jid=ACCOUNT affiliation='none'/></pubsub></message>.  The
 * registration of that JID (as stored: the sender's full JID, or its bare
 * JID) and node is removed; the notice is consumed.
 */
static enum hook_result
push_message_in(struct session *from_session, struct xel *msg,
    const struct jid *to)
{
	struct xel *ps = xel_child(msg, "pubsub", NS_PUBSUB), *aff;
	const char *node, *a, *fromstr = xel_attr(msg, "from");
	struct jid who = {0}, from = {0};
	char key[2 * JID_PART_MAX + 2], *full, *bare;
	struct push_user *u;
	int mine;

	(void)from_session;
	if (ps == NULL || to->node == NULL || to->resource != NULL ||
	    fromstr == NULL || (node = xel_attr(ps, "node")) == NULL ||
	    (aff = xel_child(ps, "affiliation", NS_PUBSUB)) == NULL ||
	    (a = xel_attr(aff, "affiliation")) == NULL ||
	    strcmp(a, "none") != 0 || xel_attr(aff, "jid") == NULL ||
	    jid_parse(&who, xel_attr(aff, "jid")) < 0)
		return HOOK_PASS;
	mine = jid_eq_bare(&who, to) && who.resource == NULL;
	jid_free(&who);
	if (!mine || jid_parse(&from, fromstr) < 0)
		return HOOK_PASS;
	full = jid_full(&from);
	bare = jid_bare(&from);
	jid_free(&from);
	snprintf(key, sizeof(key), "%s@%s", to->node, to->domain);
	log_info("push: %s: app server %s ended node %s: its registration "
	    "removed (XEP-0357 §8)", key, full, node);
	if ((u = strmap_get(users, key)) != NULL) {
		reg_remove(u, full, node);
		reg_remove(u, bare, node);
	}
	store_push_delete(to->domain, to->node, full, node, NULL, 0);
	if (strcmp(full, bare) != 0)
		store_push_delete(to->domain, to->node, bare, node, NULL, 0);
	free(full);
	free(bare);
	return HOOK_HANDLED;
}

static void
pending_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pending *p = container_of(w, struct pending, timer);

	(void)loop;
	(void)revents;
	log_debug("push: %s: no answer from %s to notification %s", p->bare,
	    p->jid, p->id);
	strmap_del(pendings, p->id);
	pending_free(p);
}

static void
push_user_deleted(const char *user, const char *host)
{
	char bare[2 * JID_PART_MAX + 2];
	struct push_user *u;

	snprintf(bare, sizeof(bare), "%s@%s", user, host);
	if ((u = strmap_del(users, bare)) != NULL)
		user_free(u);
}

/* Enabling and disabling (§5, §6). */

static void
request_free(struct request *q)
{
	if (q->skel != NULL)
		arena_free(q->skel->arena);
	free(q->user);
	free(q->host);
	free(q->bare);
	free(q->jid);
	free(q->node);
	free(q->form);
	free(q);
}

static void
error_reply(struct session *s, const struct xel *iq, const char *cond,
    const char *text)
{
	session_reply(s, stanza_error(iq, NULL, cond, text));
}

/* The request's answer to its session, if that is still there. */
static void
request_answer(struct request *q, const char *cond, const char *text)
{
	struct session *s = sm_find_id(q->session);

	if (s == NULL || s->closing)
		return;
	if (cond == NULL)
		session_reply(s, stanza_iq_result(q->skel));
	else
		error_reply(s, q->skel, cond, text);
}

static struct request *
request_take(uint64_t owner)
{
	char key[24];

	if (requests == NULL)
		return NULL;
	id_key(owner, key, sizeof(key));
	return strmap_del(requests, key);
}

static void
enable_done(uint64_t owner, enum store_status st)
{
	struct request *q = request_take(owner);
	struct push_user *u;
	struct push_reg *r;
	char text[96];

	if (q == NULL)
		return;
	switch (st) {
	case STORE_OK:
		if ((u = strmap_get(users, q->bare)) != NULL && u->loaded) {
			if ((r = reg_find(u, q->jid, q->node)) != NULL) {
				free(r->form);
				r->form = xstrdup(q->form);
			} else
				reg_new(u, q->jid, q->node, q->form);
		}
		log_info("push: %s: enabled %s node %s", q->bare, q->jid,
		    q->node);
		request_answer(q, NULL, NULL);
		break;
	case STORE_EXISTS:
		snprintf(text, sizeof(text), "At most %u push registrations "
		    "per account", xmppd_conf->limits.push_registrations);
		request_answer(q, "not-allowed", text);
		break;
	default:
		request_answer(q, "internal-server-error", NULL);
		break;
	}
	request_free(q);
}

static void
disable_done(uint64_t owner, enum store_status st,
    const struct store_push *rows, size_t n)
{
	struct request *q = request_take(owner);
	struct push_user *u;

	if (q == NULL)
		return;
	if (st == STORE_OK) {
		if ((u = strmap_get(users, q->bare)) != NULL)
			reg_remove(u, q->jid, q->node);
		log_info("push: %s: disabled %s%s%s (%zu registrations)",
		    q->bare, q->jid, q->node ? " node " : "",
		    q->node ? q->node : "", n);
		request_answer(q, NULL, NULL);
	} else
		request_answer(q, "internal-server-error", NULL);
	(void)rows;
	request_free(q);
}

/* The enable or disable element's 'jid', prepared, or NULL after
 * answering <bad-request/>. */
static char *
request_jid(struct session *from, struct xel *iq, const struct xel *el)
{
	const char *v = xel_attr(el, "jid");
	struct jid j = {0};
	char *out;

	if (v == NULL || *v == '\0') {
		error_reply(from, iq, "bad-request", "Missing 'jid'");
		return NULL;
	}
	if (jid_parse(&j, v) < 0) {
		error_reply(from, iq, "bad-request", "Invalid 'jid'");
		return NULL;
	}
	out = jid_full(&j);
	jid_free(&j);
	return out;
}

/* The value of the FORM_TYPE field of form, or NULL. */
static const char *
form_type(const struct xel *form)
{
	for (struct xel *f = xel_child(form, "field", NS_XDATA); f;
	    f = xel_next(f, "field", NS_XDATA)) {
		const char *var = xel_attr(f, "var");
		struct xel *v;

		if (var != NULL && strcmp(var, "FORM_TYPE") == 0)
			return (v = xel_child(f, "value", NS_XDATA)) ? xel_text(v)
			                                             : NULL;
	}
	return NULL;
}

/* The checks all requests share: a set, from the account itself. */
static int
request_allowed(struct session *from, struct xel *iq, enum iq_target target)
{
	const char *type = xel_attr(iq, "type"), *tostr = xel_attr(iq, "to");
	struct jid to = {0};
	int own;

	if (target != IQ_TO_BARE)
		return 0;
	if (tostr != NULL) {
		if (jid_parse(&to, tostr) < 0)
			return 0;
		own = jid_eq_bare(&to, &from->jid);
		jid_free(&to);
		if (!own) {
			error_reply(from, iq, "forbidden",
			    "Push is enabled for one's own account only");
			return -1;
		}
	}
	if (type == NULL || strcmp(type, "set") != 0) {
		error_reply(from, iq, "bad-request", "Push is enabled and "
		    "disabled with an IQ set");
		return -1;
	}
	return 1;
}

static struct request *
request_new(struct session *from, struct xel *iq, char *jid, int enable)
{
	struct request *q = xcalloc(1, sizeof(*q));
	char key[24];

	q->id = next_id++;
	q->session = from->id;
	q->skel = stanza_iq_skeleton(iq);
	q->user = xstrdup(from->jid.node);
	q->host = xstrdup(from->jid.domain);
	q->bare = xstrdup(from->bare);
	q->jid = jid;
	q->enable = enable;
	id_key(q->id, key, sizeof(key));
	strmap_put(requests, key, q);
	return q;
}

/* §5: <enable jid node>, with an optional publish-options form. */
static enum hook_result
handle_enable(struct session *from, struct xel *iq, enum iq_target target)
{
	struct xel *el = xel_child(iq, "enable", NS_PUSH), *form;
	const char *node, *ft;
	struct store_push p = {0};
	struct request *q;
	struct buf b;
	char *jid;
	int ok;

	if ((ok = request_allowed(from, iq, target)) <= 0)
		return ok == 0 ? HOOK_PASS : HOOK_HANDLED;
	if ((jid = request_jid(from, iq, el)) == NULL)
		return HOOK_HANDLED;
	node = xel_attr(el, "node");
	if (node == NULL || *node == '\0' || strlen(node) > NODE_MAX) {
		free(jid);
		error_reply(from, iq, "bad-request", node == NULL ||
		    *node == '\0' ? "Missing 'node'" : "'node' too long");
		return HOOK_HANDLED;
	}
	buf_init(&b);
	if ((form = xel_child(el, "x", NS_XDATA)) != NULL) {
		if ((ft = form_type(form)) == NULL ||
		    strcmp(ft, NS_PUBLISH_OPTIONS) != 0) {
			free(jid);
			error_reply(from, iq, "bad-request", "The form's "
			    "FORM_TYPE must be " NS_PUBLISH_OPTIONS);
			return HOOK_HANDLED;
		}
		xel_serialize(form, &b, "");
		if (b.len > FORM_MAX) {
			buf_free(&b);
			free(jid);
			error_reply(from, iq, "bad-request",
			    "publish-options form too large");
			return HOOK_HANDLED;
		}
	}
	buf_addc(&b, '\0');
	q = request_new(from, iq, jid, 1);
	q->node = xstrdup(node);
	q->form = xstrdup(b.data);
	buf_free(&b);
	p.host = q->host;
	p.user = q->user;
	p.jid = q->jid;
	p.node = q->node;
	p.form = q->form;
	p.created = (int64_t)time(NULL);
	store_push_put(&p, xmppd_conf->limits.push_registrations, enable_done,
	    q->id);
	return HOOK_HANDLED;
}

/* §6: <disable jid [node]>: that node, or every node of jid. */
static enum hook_result
handle_disable(struct session *from, struct xel *iq, enum iq_target target)
{
	struct xel *el = xel_child(iq, "disable", NS_PUSH);
	const char *node;
	struct request *q;
	char *jid;
	int ok;

	if ((ok = request_allowed(from, iq, target)) <= 0)
		return ok == 0 ? HOOK_PASS : HOOK_HANDLED;
	if ((jid = request_jid(from, iq, el)) == NULL)
		return HOOK_HANDLED;
	node = xel_attr(el, "node");
	if (node != NULL && *node == '\0')
		node = NULL;
	q = request_new(from, iq, jid, 0);
	q->node = node ? xstrdup(node) : NULL;
	store_push_delete(q->host, q->user, q->jid, q->node, disable_done,
	    q->id);
	return HOOK_HANDLED;
}

void
mod_push_init(void)
{
	users = strmap_new();
	loads = strmap_new();
	pendings = strmap_new();
	requests = strmap_new();
	tokens = xmppd_conf->limits.push_rate;
	tokens_at = mono_now(xmppd_loop);
	disco_add_feature(DISCO_ACCOUNT, NS_PUSH);
	iq_register(NS_PUSH, "enable", handle_enable);
	iq_register(NS_PUSH, "disable", handle_disable);
	hook_add_message_in(push_message_in);
	hook_add_message_delivered(push_message_delivered);
	hook_add_session(HOOK_SESSION_BOUND, push_session_bound);
	hook_add_outbound(push_outbound);
	hook_add_iq_answer(push_answer);
	hook_add_user_deleted(push_user_deleted);
}

static void
free_user_value(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	user_free(value);
}

static void
free_pending_value(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	pending_free(value);
}

static void
free_request_value(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	request_free(value);
}

void
mod_push_deinit(void)
{
	/* Loads and writes still in flight find nothing and do nothing. */
	strmap_free(loads);
	loads = NULL;
	strmap_foreach(users, free_user_value, NULL);
	strmap_free(users);
	users = NULL;
	strmap_foreach(pendings, free_pending_value, NULL);
	strmap_free(pendings);
	pendings = NULL;
	strmap_foreach(requests, free_request_value, NULL);
	strmap_free(requests);
	requests = NULL;
}
