/*
 * XEP-0077 In-Band Registration: account creation on an encrypted stream
 * before authentication (with a per-IP hourly limit), and password change
 * and account removal after it.  "registration on" enables it; off (the
 * default), the module registers and advertises nothing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "core/account.h"
#include "conf.h"
#include "core/disco.h"
#include "core/hooks.h"
#include "core/iq.h"
#include "jid.h"
#include "log.h"
#include "mono.h"
#include "netkey.h"
#include "core/roster.h"
#include "core/session.h"
#include "core/stanza.h"
#include "core/transport.h"
#include "store/store.h"
#include "strmap.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_REGISTER         "jabber:iq:register"
#define NS_REGISTER_FEATURE "http://jabber.org/features/iq-register"

#define RATE_WINDOW 3600.0      /* "registrations-per-ip" is per hour */
#define PURGE_INTERVAL 300.0    /* forget expired per-IP counts */
/* XEP-0077 §3.1.1: <not-acceptable/> for "too many times"; type 'wait'
 * since it will work again later. */
#define RATE_TEXT "Too many registrations from your address; try again later"

void mod_register_init(void);
void mod_register_deinit(void);
void mod_register_init_off(void);

/* Registration disabled: refuse jabber:iq:register before auth. */
static enum hook_result
preauth_iq_off(struct transport *t, struct xel *iq)
{
	struct xel *payload = xel_first_elem(iq);

	if (xmppd_conf->registration || payload == NULL ||
	    strcmp(payload->ns, NS_REGISTER) != 0)
		return HOOK_PASS;
	transport_reply(t, stanza_error(iq, "cancel", "service-unavailable",
	    NULL));
	return HOOK_HANDLED;
}

enum reg_kind { REG_CREATE, REG_PASSWORD, REG_REMOVE };

/*
 * A request waiting for the worker pool or the store.  Completions find
 * it by id (the store's and the pool's tag) and its requester by owner:
 * the c2s id before authentication, the session id after.
 */
struct reg_req {
	uint64_t id;
	enum reg_kind kind;
	uint64_t owner;
	char key[24];               /* decimal id, in pending */
	char busy_key[24];          /* "c<c2s id>" or "s<session id>" */
	char *user, *host;
	char *password;             /* REG_CREATE until the existence check
	                               is done; wiped before free */
	struct xel *iq;             /* the request without its payload (own
	                               arena): id, to, from for the reply */
	uint64_t conn_id;           /* for log lines */
	char net[NETKEY_LEN];       /* the network registrations-per-ip
	                               counts it under */
	char addr[64];
};

/* Registrations from one network (conn.net) in the current window. */
struct ip_count {
	unsigned count;
	double since;
};

static struct {
	struct strmap *pending;     /* key -> struct reg_req; NULL: off */
	struct strmap *busy;        /* busy_key -> struct reg_req */
	struct strmap *per_ip;      /* network -> struct ip_count (kept
	                               while off: a reload that turns
	                               registration off and on again does not
	                               reset the hourly counts) */
	uint64_t next_id;
	ev_timer purge_w;
} reg;

/* Requests and replies. */

/* A copy of iq's attributes only: replies must not echo a password
 * (XEP-0077 §3.3: no original XML in password-change errors). */
static struct xel *
skeleton(const struct xel *iq)
{
	struct arena *a = arena_new(256);
	struct xel *s = xel_new(a, "iq", NS_CLIENT);
	static const char *const attrs[] = { "id", "to", "from", "type" };

	for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
		if (xel_attr(iq, attrs[i]) != NULL)
			xel_set_attr(s, attrs[i], xel_attr(iq, attrs[i]));
	return s;
}

/* An error reply to iq (payload left out) in a new arena. */
static struct xel *
error_reply(const struct xel *iq, const char *type, const char *cond,
    const char *text)
{
	struct xel *s = skeleton(iq), *e;

	e = stanza_error(s, type, cond, text);
	arena_free(s->arena);
	return e;
}

static struct reg_req *
req_new(enum reg_kind kind, uint64_t owner, const char *busy_key,
    const struct xel *iq, const struct transport *t)
{
	struct reg_req *r = xcalloc(1, sizeof(*r));

	r->id = ++reg.next_id;
	r->kind = kind;
	r->owner = owner;
	snprintf(r->key, sizeof(r->key), "%" PRIu64, r->id);
	snprintf(r->busy_key, sizeof(r->busy_key), "%s", busy_key);
	r->iq = skeleton(iq);
	r->conn_id = t->id;
	snprintf(r->net, sizeof(r->net), "%s", t->net);
	snprintf(r->addr, sizeof(r->addr), "%s", t->addr);
	strmap_put(reg.pending, r->key, r);
	strmap_put(reg.busy, r->busy_key, r);
	return r;
}

static struct reg_req *
req_find(uint64_t id)
{
	char key[24];

	if (reg.pending == NULL)
		return NULL;    /* switched off since: the answer is dropped */
	snprintf(key, sizeof(key), "%" PRIu64, id);
	return strmap_get(reg.pending, key);
}

static void
req_free(struct reg_req *r)
{
	strmap_del(reg.pending, r->key);
	if (strmap_get(reg.busy, r->busy_key) == r)
		strmap_del(reg.busy, r->busy_key);
	account_password_free(r->password);
	free(r->user);
	free(r->host);
	arena_free(r->iq->arena);
	free(r);
}

/*
 * The stream that asked for a registration, if it can still take the
 * answer: once it has authenticated it restarted (RFC 6120 §6.4.6), and
 * an IQ result from before would land ahead of the new stream header.
 */
static struct transport *
req_stream(const struct reg_req *r)
{
	struct transport *t = transport_find(r->owner);

	return t != NULL && !t->authed ? t : NULL;
}

/* Answer r: an empty result when cond is NULL, else that error (type
 * NULL: the condition's usual one). */
static void
req_answer(struct reg_req *r, const char *type, const char *cond,
    const char *text)
{
	struct xel *reply = cond ? stanza_error(r->iq, type, cond, text) :
	    stanza_iq_result(r->iq);
	struct transport *t;
	struct session *s;

	if (reply == NULL)
		return;
	if (r->kind == REG_CREATE) {
		if ((t = req_stream(r)) != NULL)
			t->ops->send(t, reply);
	} else if ((s = sm_find_id(r->owner)) != NULL)
		session_send(s, reply);
	arena_free(reply->arena);
}

/* Per-network limit ("registrations-per-ip" per hour): net is the
 * transport's key (limits ipv4-prefix and ipv6-prefix). */

static struct ip_count *
rate_entry(const char *net)
{
	struct ip_count *e = strmap_get(reg.per_ip, net);
	double now = mono_now(xmppd_loop);

	if (e != NULL && now - e->since >= RATE_WINDOW) {
		e->count = 0;
		e->since = now;
	}
	return e;
}

static int
rate_exceeded(const char *net)
{
	struct ip_count *e = rate_entry(net);

	return e != NULL &&
	    e->count >= xmppd_conf->limits.registrations_per_ip;
}

static void
rate_charge(const char *net)
{
	struct ip_count *e = rate_entry(net);

	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		e->since = mono_now(xmppd_loop);
		strmap_put(reg.per_ip, net, e);
	}
	e->count++;
}

struct expired {
	char **keys;
	size_t n, cap;
	double now;
};

static void
collect_expired(const char *ip, void *value, void *arg)
{
	struct ip_count *e = value;
	struct expired *x = arg;

	if (x->now - e->since < RATE_WINDOW)
		return;
	if (x->n == x->cap) {
		x->cap = x->cap ? x->cap * 2 : 16;
		x->keys = xreallocarray(x->keys, x->cap, sizeof(*x->keys));
	}
	x->keys[x->n++] = xstrdup(ip);
}

static void
purge_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct expired x = { .now = mono_now(l) };

	strmap_foreach(reg.per_ip, collect_expired, &x);
	for (size_t i = 0; i < x.n; i++) {
		free(strmap_del(reg.per_ip, x.keys[i]));
		free(x.keys[i]);
	}
	free(x.keys);
}

/* Helpers for both stages. */

static int
iq_type_is(const struct xel *iq, const char *type)
{
	const char *t = xel_attr(iq, "type");

	return t != NULL && strcmp(t, type) == 0;
}

/* The text of child name of query; "" when absent or empty. */
static const char *
field(const struct xel *query, const char *name)
{
	struct xel *f = xel_child(query, name, NS_REGISTER);

	return f ? xel_text(f) : "";
}

/* Best effort: wipe the password's text in the received stanza, and
 * pw, what field() returned for it (a copy when the text was split). */
static void
wipe_password(struct xel *query, const char *pw)
{
	struct xel *f = xel_child(query, "password", NS_REGISTER);

	if (pw != NULL)
		explicit_bzero((char *)pw, strlen(pw));
	if (f == NULL)
		return;
	for (struct xel *t = f->children; t; t = t->next)
		if (t->name == NULL)
			explicit_bzero((char *)t->text, t->textlen);
}

/* The completion of a worker job: drop it if the requester has gone. */
static int
req_wanted(uint64_t owner, uint64_t tag)
{
	struct reg_req *r = req_find(tag);
	int alive;

	if (r == NULL)
		return 0;
	alive = r->kind == REG_CREATE ? req_stream(r) != NULL :
	    sm_find_id(r->owner) != NULL;
	if (!alive) {
		log_info("c2s %" PRIu64 " %s: %s of %s@%s dropped: the %s "
		    "has gone", r->conn_id, r->addr,
		    r->kind == REG_CREATE ? "registration" : "password change",
		    r->user, r->host,
		    r->kind == REG_CREATE ? "stream" : "session");
		req_free(r);
	}
	return alive;
}

/* Before authentication: registration (XEP-0077 §3.1). */

static void
send_fields(struct transport *t, const struct xel *iq)
{
	struct xel *r = stanza_iq_result(iq), *q;

	q = xel_add(r, "query", NS_REGISTER);
	xel_text_set(xel_add(q, "instructions", NULL), "Choose a username "
	    "and password to register with this server.");
	xel_add(q, "username", NULL);
	xel_add(q, "password", NULL);
	transport_reply(t, r);
}

static void
create_done(uint64_t owner, uint64_t tag, enum store_status st)
{
	struct reg_req *r = req_find(tag);

	if (r == NULL)
		return;
	log_info("c2s %" PRIu64 " %s: registration of %s@%s: %s", r->conn_id,
	    r->addr, r->user, r->host,
	    st == STORE_OK ? "created" : store_status_str(st));
	switch (st) {
	case STORE_OK:
		req_answer(r, NULL, NULL, NULL);
		break;
	case STORE_EXISTS:
		/* Taken since the check (XEP-0077 §3.1, Example 6). */
		req_answer(r, NULL, "conflict", "The username is taken");
		break;
	default:
		req_answer(r, NULL, "internal-server-error", NULL);
		break;
	}
	req_free(r);
}

/* The store said whether the username is free. */
static void
create_checked(uint64_t owner, uint64_t tag, enum store_status st,
    const struct store_user *u)
{
	struct reg_req *r = req_find(tag);
	char *password;

	if (r == NULL)
		return;
	if (req_stream(r) == NULL) {
		log_info("c2s %" PRIu64 " %s: registration of %s@%s dropped: "
		    "the stream has gone", r->conn_id, r->addr, r->user,
		    r->host);
		req_free(r);
		return;
	}
	if (st == STORE_OK) {
		req_answer(r, NULL, "conflict", "The username is taken");
		req_free(r);
		return;
	}
	if (st != STORE_NOT_FOUND) {
		req_answer(r, NULL, "internal-server-error", NULL);
		req_free(r);
		return;
	}
	/* Checked again here: requests from one address may have been
	 * waiting on the store together. */
	if (rate_exceeded(r->net)) {
		log_info("c2s %" PRIu64 " %s: registration refused: more "
		    "than %u from %s in an hour", r->conn_id, r->addr,
		    xmppd_conf->limits.registrations_per_ip, r->net);
		req_answer(r, "wait", "not-acceptable", RATE_TEXT);
		req_free(r);
		return;
	}
	rate_charge(r->net);
	password = r->password;
	r->password = NULL;
	account_set_password(ACCOUNT_CREATE, r->user, r->host, password,
	    req_wanted, create_done, r->owner, r->id);
}

/* pw is the <password/> text (the caller wipes it). */
static void
handle_create(struct transport *t, struct xel *iq, struct xel *query,
    const char *pw)
{
	const char *host = t->host;
	uint64_t cid = t->id;
	enum account_password pr;
	struct reg_req *r;
	char busy_key[24], *user, *password;

	/* XEP-0077 §3.1: every field asked for must be there and not
	 * empty, else <not-acceptable/>. */
	if (field(query, "username")[0] == '\0' || pw[0] == '\0') {
		transport_reply(t, error_reply(iq, NULL, "not-acceptable",
		    "A username and a password are required"));
		return;
	}
	/* §3.1 names no condition for a username that cannot be a
	 * localpart: RFC 6120 §8.3.3.8's. */
	user = account_username_prepare(field(query, "username"));
	if (user == NULL) {
		transport_reply(t, error_reply(iq, NULL, "jid-malformed",
		    "The username is not a valid localpart (RFC 6122 "
		    "Nodeprep, at most 1023 bytes)"));
		return;
	}
	if ((pr = account_password_prepare(pw, &password)) !=
	    ACCOUNT_PASSWORD_OK) {
		transport_reply(t, error_reply(iq, NULL, "not-acceptable",
		    account_password_reason(pr)));
		free(user);
		return;
	}
	snprintf(busy_key, sizeof(busy_key), "c%" PRIu64, cid);
	if (strmap_get(reg.busy, busy_key) != NULL)
		/* One at a time; the answer to the first is still due. */
		transport_reply(t, error_reply(iq, NULL, "resource-constraint",
		    "A registration is already in progress on this stream"));
	else if (rate_exceeded(t->net)) {
		log_info("c2s %" PRIu64 " %s: registration refused: more "
		    "than %u from %s in an hour", cid, t->addr,
		    xmppd_conf->limits.registrations_per_ip, t->net);
		transport_reply(t, error_reply(iq, "wait", "not-acceptable",
		    RATE_TEXT));
	} else {
		r = req_new(REG_CREATE, cid, busy_key, iq, t);
		r->user = user;
		r->host = xstrdup(host);
		r->password = password;
		store_user_get(r->user, r->host, create_checked, r->owner,
		    r->id);
		return;
	}
	account_password_free(password);
	free(user);
}

/* 'to' of a pre-authentication IQ: absent, or the stream's domain. */
static int
to_is_stream_host(struct transport *t, const struct xel *iq)
{
	const char *to = xel_attr(iq, "to");
	struct jid j = { 0 };
	int ok;

	if (to == NULL)
		return 1;
	if (jid_parse(&j, to) < 0)
		return 0;
	ok = j.node == NULL && j.resource == NULL &&
	    strcmp(j.domain, t->host) == 0;
	jid_free(&j);
	return ok;
}

static enum hook_result
preauth_iq(struct transport *t, struct xel *iq)
{
	struct xel *query = xel_first_elem(iq);
	int get = iq_type_is(iq, "get"), set = iq_type_is(iq, "set");
	const char *pw;

	if (!xmppd_conf->registration || query == NULL ||
	    !xel_is(query, "query", NS_REGISTER) || (!get && !set) ||
	    xel_attr(iq, "id") == NULL)
		return HOOK_PASS;       /* c2s ends the stream */
	/* No JID yet: a 'from' is the client's invention (RFC 6120
	 * §8.1.2.1), not an address for the answer. */
	xel_set_attr(iq, "from", NULL);
	pw = field(query, "password");
	if (xel_count_elems(iq) != 1)
		transport_reply(t, error_reply(iq, NULL, "bad-request", NULL));
	else if (!t->tls)
		/* XEP-0077 §10: not over a channel that is not secured;
		 * with "starttls required" c2s never gets here. */
		transport_reply(t, error_reply(iq, "modify", "not-authorized",
		    "Registration needs an encrypted stream: use STARTTLS"));
	else if (!to_is_stream_host(t, iq))
		transport_reply(t, error_reply(iq, NULL, "service-unavailable",
		    NULL));
	else if (get)
		send_fields(t, iq);
	else if (xel_child(query, "remove", NS_REGISTER) != NULL)
		/* §3.2: nothing to cancel before authentication. */
		transport_reply(t, error_reply(iq, NULL, "unexpected-request",
		    NULL));
	else
		handle_create(t, iq, query, pw);
	wipe_password(query, pw);
	return HOOK_HANDLED;
}

static void
features(struct transport *t, struct xel *f, int authed)
{
	/* XEP-0077 §8, only where registration is possible. */
	if (!authed && xmppd_conf->registration && t->tls)
		xel_add(f, "register", NS_REGISTER_FEATURE);
}

/* After authentication: password change (§3.3) and removal (§3.2). */

static void
password_done(uint64_t owner, uint64_t tag, enum store_status st)
{
	struct reg_req *r = req_find(tag);

	if (r == NULL)
		return;
	log_info("c2s %" PRIu64 " %s: password change of %s@%s: %s",
	    r->conn_id, r->addr, r->user, r->host, store_status_str(st));
	if (st == STORE_OK)
		req_answer(r, NULL, NULL, NULL);
	else if (st == STORE_NOT_FOUND)
		req_answer(r, NULL, "registration-required", NULL);
	else
		req_answer(r, NULL, "internal-server-error", NULL);
	req_free(r);
}

/*
 * roster_delete_account has deleted the account with everything stored
 * for it and taken it out of other users' rosters (pushing that to them),
 * in one transaction.  It calls this before it closes the account's
 * sessions with <not-authorized/> and runs the user-deleted hooks, so the
 * result goes out first, as XEP-0077 §3.2 has it.
 */
static void
remove_done(uint64_t owner, uint64_t tag, enum store_status st)
{
	struct reg_req *r = req_find(tag);

	if (r == NULL)
		return;
	log_info("c2s %" PRIu64 " %s: removal of %s@%s: %s", r->conn_id,
	    r->addr, r->user, r->host,
	    st == STORE_OK ? "removed" : store_status_str(st));
	if (st == STORE_OK)
		req_answer(r, NULL, NULL, NULL);
	else
		req_answer(r, NULL, st == STORE_NOT_FOUND ?
		    "registration-required" : "internal-server-error", NULL);
	req_free(r);
}

static void
send_registered(struct session *s, const struct xel *iq)
{
	struct xel *r = stanza_iq_result(iq), *q;

	/* §3.1: already registered: <registered/> and what is on file. */
	q = xel_add(r, "query", NS_REGISTER);
	xel_add(q, "registered", NULL);
	xel_text_set(xel_add(q, "username", NULL), s->jid.node);
	session_reply(s, r);
}

static void
handle_remove(struct session *s, struct xel *iq, struct xel *query,
    const char *busy_key)
{
	struct reg_req *r;

	/* §3.2: <remove/> must be the only child. */
	if (xel_count_elems(query) != 1) {
		session_reply(s, error_reply(iq, NULL, "bad-request", NULL));
		return;
	}
	r = req_new(REG_REMOVE, s->id, busy_key, iq, s->t);
	r->user = xstrdup(s->jid.node);
	r->host = xstrdup(s->jid.domain);
	log_info("c2s %" PRIu64 " %s: %s asks to remove the account",
	    r->conn_id, r->addr, s->full);
	roster_delete_account(r->user, r->host, remove_done, r->owner, r->id);
}

/* pw is the <password/> text (the caller wipes it). */
static void
handle_password(struct session *s, struct xel *iq, struct xel *query,
    const char *busy_key, const char *pw)
{
	enum account_password pr;
	struct reg_req *r;
	char *user, *password;
	int has_password = xel_child(query, "password", NS_REGISTER) != NULL;

	/* §3.3: the request names the account; it must be the sender's. */
	user = account_username_prepare(field(query, "username"));
	if (user == NULL || strcmp(user, s->jid.node) != 0 ||
	    !has_password) {
		free(user);
		session_reply(s, error_reply(iq, NULL, "bad-request",
		    "Send your own username and the new password"));
		return;
	}
	free(user);
	/* §3.3: an empty password keeps the existing one. */
	if ((pr = account_password_prepare(pw, &password)) !=
	    ACCOUNT_PASSWORD_OK) {
		session_reply(s, error_reply(iq, NULL, "bad-request",
		    account_password_reason(pr)));
		return;
	}
	r = req_new(REG_PASSWORD, s->id, busy_key, iq, s->t);
	r->user = xstrdup(s->jid.node);
	r->host = xstrdup(s->jid.domain);
	account_set_password(ACCOUNT_SET_KEYS, r->user, r->host, password,
	    req_wanted, password_done, r->owner, r->id);
}

/* The IQ is for the sender's own server: no 'to' (RFC 6120 §10.3.3, the
 * account, served by the server) or the server's domain. */
static int
for_own_server(const struct session *s, const struct xel *iq,
    enum iq_target target)
{
	const char *to = xel_attr(iq, "to");
	struct jid j = { 0 };
	int ok;

	if (target == IQ_TO_BARE)
		return to == NULL;
	if (to == NULL || jid_parse(&j, to) < 0)
		return 0;
	ok = strcmp(j.domain, s->jid.domain) == 0;
	jid_free(&j);
	return ok;
}

static enum hook_result
handle_iq(struct session *s, struct xel *iq, enum iq_target target)
{
	struct xel *query = xel_first_elem(iq);
	char busy_key[24];
	const char *pw;

	if (!xmppd_conf->registration || !for_own_server(s, iq, target))
		return HOOK_PASS;
	pw = field(query, "password");
	snprintf(busy_key, sizeof(busy_key), "s%" PRIu64, s->id);
	if (xel_count_elems(iq) != 1)
		session_reply(s, error_reply(iq, NULL, "bad-request", NULL));
	else if (iq_type_is(iq, "get"))
		send_registered(s, iq);
	else if (s->t == NULL)
		;       /* detached (XEP-0198): nowhere to answer */
	else if (strmap_get(reg.busy, busy_key) != NULL)
		session_reply(s, error_reply(iq, NULL, "resource-constraint",
		    "A change to this account is in progress"));
	else if (xel_child(query, "remove", NS_REGISTER) != NULL)
		handle_remove(s, iq, query, busy_key);
	else if (!s->t->tls)
		/* §3.3: the channel is not safe for a new password. */
		session_reply(s, error_reply(iq, "modify", "not-authorized",
		    "Password changes need an encrypted stream"));
	else
		handle_password(s, iq, query, busy_key, pw);
	wipe_password(query, pw);
	return HOOK_HANDLED;
}

void
mod_register_init(void)
{
	reg.pending = strmap_new();
	reg.busy = strmap_new();
	if (reg.per_ip == NULL)
		reg.per_ip = strmap_new();
	disco_add_feature(DISCO_SERVER, NS_REGISTER);
	hook_add_preauth_iq(preauth_iq);
	hook_add_features(features);
	iq_register(NS_REGISTER, "query", handle_iq);
	ev_timer_init(&reg.purge_w, purge_cb, PURGE_INTERVAL, PURGE_INTERVAL);
	ev_timer_start(xmppd_loop, &reg.purge_w);
	ev_unref(xmppd_loop);
}

/* XEP-0077 §3.1: a server without registration answers
 * <service-unavailable/> before authentication (and advertises nothing). */
void
mod_register_init_off(void)
{
	hook_add_preauth_iq(preauth_iq_off);
}

/* Requests in flight are dropped: their completions find nothing
 * (req_find), and the client gets no answer, as when its stream goes. */
void
mod_register_deinit(void)
{
	size_t n;
	void **v = strmap_values(reg.pending, &n);

	for (size_t i = 0; i < n; i++) {
		struct reg_req *r = v[i];

		log_info("c2s %" PRIu64 " %s: %s of %s@%s dropped: "
		    "registration was switched off", r->conn_id, r->addr,
		    r->kind == REG_CREATE ? "registration" :
		    r->kind == REG_PASSWORD ? "password change" : "removal",
		    r->user, r->host);
		req_free(r);
	}
	free(v);
	strmap_free(reg.pending);
	strmap_free(reg.busy);
	reg.pending = reg.busy = NULL;
	ev_ref(xmppd_loop);
	ev_timer_stop(xmppd_loop, &reg.purge_w);
}
