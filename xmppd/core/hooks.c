/*
 * Hook chains: a small array of handlers per hook, kept in owner order
 * (see hooks.h), run in order.
 */
#include <stddef.h>
#include <string.h>

#include "core/hooks.h"
#include "log.h"

#define HOOK_MAX 16

enum chain_id {
	CH_BOUND, CH_END, CH_INITIAL, CH_OUTBOUND, CH_DELIVER, CH_OFFLINE,
	CH_DELETED, CH_FEATURES, CH_PRESENCE_OUT, CH_PREAUTH_IQ,
	CH_MESSAGE_OUT, CH_MESSAGE_IN, CH_MESSAGE_DELIVERED,
	CH_PRESENCE_CHANGED, CH_AUTH_FAILURE, CH_OFFLINE_CHANGED,
	CH_BIND2_FEATURES, CH_BIND2, CH_CAPS_CHANGED, CH_PEP_EVENT,
	CH_ADMIN_CHANGE, CH_SUBSCRIBED, CH_SHUTDOWN, CH_IQ_ANSWER, CH_REMOTE_PRESENCE,
	CH_REMOTE_CAPS_CHANGED, CH__COUNT
};

/* Handlers are stored as one function pointer type and called through
 * their own (C11 §6.3.2.3 ¶8: a round trip keeps the pointer). */
typedef void (*hook_fn)(void);

struct chain {
	struct {
		hook_fn fn;
		unsigned owner;
	} v[HOOK_MAX];
	size_t n;
};

static struct chain chains[CH__COUNT];
static unsigned current_owner = HOOK_OWNER_CORE;

void
hook_set_owner(unsigned owner)
{
	current_owner = owner;
}

unsigned
hook_owner(void)
{
	return current_owner;
}

/* After the last handler of an owner not above the current one. */
static void
chain_add(enum chain_id id, hook_fn fn)
{
	struct chain *c = &chains[id];
	size_t at = c->n;

	if (c->n == HOOK_MAX)
		fatalx("too many handlers on hook chain %d", (int)id);
	while (at > 0 && c->v[at - 1].owner > current_owner)
		at--;
	memmove(&c->v[at + 1], &c->v[at], (c->n - at) * sizeof(c->v[0]));
	c->v[at].fn = fn;
	c->v[at].owner = current_owner;
	c->n++;
}

void
hook_remove_owner(unsigned owner)
{
	for (size_t id = 0; id < CH__COUNT; id++) {
		struct chain *c = &chains[id];
		size_t k = 0;

		for (size_t i = 0; i < c->n; i++)
			if (c->v[i].owner != owner)
				c->v[k++] = c->v[i];
		c->n = k;
	}
}

/* For each handler f (of type type) of chain id, in order. */
#define EACH(id, type, f)                                                \
	for (size_t i_ = 0; i_ < chains[id].n; i_++)                     \
		for (type f = (type)chains[id].v[i_].fn; (f) != NULL;    \
		     (f) = NULL)

void
hook_add_session(enum hook_session which, hook_session_fn fn)
{
	chain_add(which == HOOK_SESSION_BOUND ? CH_BOUND :
	    which == HOOK_SESSION_END ? CH_END : CH_INITIAL, (hook_fn)fn);
}

void
hook_run_session(enum hook_session which, struct session *s)
{
	enum chain_id id = which == HOOK_SESSION_BOUND ? CH_BOUND :
	    which == HOOK_SESSION_END ? CH_END : CH_INITIAL;

	EACH(id, hook_session_fn, f)
		f(s);
}

void
hook_add_outbound(hook_outbound_fn fn)
{
	chain_add(CH_OUTBOUND, (hook_fn)fn);
}

enum hook_result
hook_run_outbound(struct session *from, struct xel *st, const struct jid *to)
{
	EACH(CH_OUTBOUND, hook_outbound_fn, f)
		if (f(from, st, to) == HOOK_HANDLED)
			return HOOK_HANDLED;
	return HOOK_PASS;
}

void
hook_add_iq_answer(hook_iq_answer_fn fn)
{
	chain_add(CH_IQ_ANSWER, (hook_fn)fn);
}

enum hook_result
hook_run_iq_answer(struct xel *iq, const struct jid *from,
    const struct jid *to)
{
	EACH(CH_IQ_ANSWER, hook_iq_answer_fn, f)
		if (f(iq, from, to) == HOOK_HANDLED)
			return HOOK_HANDLED;
	return HOOK_PASS;
}

void
hook_add_deliver(hook_deliver_fn fn)
{
	chain_add(CH_DELIVER, (hook_fn)fn);
}

enum hook_result
hook_run_deliver(struct session *to, struct xel *st, const struct jid *from)
{
	EACH(CH_DELIVER, hook_deliver_fn, f)
		if (f(to, st, from) == HOOK_HANDLED)
			return HOOK_HANDLED;
	return HOOK_PASS;
}

void
hook_add_offline(hook_offline_fn fn)
{
	chain_add(CH_OFFLINE, (hook_fn)fn);
}

enum hook_result
hook_run_offline(struct session *from, struct xel *msg, const struct jid *to)
{
	EACH(CH_OFFLINE, hook_offline_fn, f)
		if (f(from, msg, to) == HOOK_HANDLED)
			return HOOK_HANDLED;
	return HOOK_PASS;
}

void
hook_add_message_out(hook_message_out_fn fn)
{
	chain_add(CH_MESSAGE_OUT, (hook_fn)fn);
}

enum hook_result
hook_run_message_out(struct session *from, struct xel *msg,
    const struct jid *to)
{
	EACH(CH_MESSAGE_OUT, hook_message_out_fn, f)
		if (f(from, msg, to) == HOOK_HANDLED)
			return HOOK_HANDLED;
	return HOOK_PASS;
}

void
hook_add_message_in(hook_message_in_fn fn)
{
	chain_add(CH_MESSAGE_IN, (hook_fn)fn);
}

enum hook_result
hook_run_message_in(struct session *from_session, struct xel *msg,
    const struct jid *to)
{
	EACH(CH_MESSAGE_IN, hook_message_in_fn, f)
		if (f(from_session, msg, to) == HOOK_HANDLED)
			return HOOK_HANDLED;
	return HOOK_PASS;
}

void
hook_add_message_delivered(hook_message_delivered_fn fn)
{
	chain_add(CH_MESSAGE_DELIVERED, (hook_fn)fn);
}

void
hook_run_message_delivered(struct xel *msg, const struct jid *to,
    struct session **sessions, size_t n)
{
	EACH(CH_MESSAGE_DELIVERED, hook_message_delivered_fn, f)
		f(msg, to, sessions, n);
}

void
hook_add_user_deleted(hook_user_fn fn)
{
	chain_add(CH_DELETED, (hook_fn)fn);
}

void
hook_run_user_deleted(const char *user, const char *host)
{
	EACH(CH_DELETED, hook_user_fn, f)
		f(user, host);
}

void
hook_add_features(hook_features_fn fn)
{
	chain_add(CH_FEATURES, (hook_fn)fn);
}

void
hook_run_features(struct transport *t, struct xel *features, int authed)
{
	EACH(CH_FEATURES, hook_features_fn, f)
		f(t, features, authed);
}

void
hook_add_preauth_iq(hook_preauth_iq_fn fn)
{
	chain_add(CH_PREAUTH_IQ, (hook_fn)fn);
}

enum hook_result
hook_run_preauth_iq(struct transport *t, struct xel *iq)
{
	EACH(CH_PREAUTH_IQ, hook_preauth_iq_fn, f)
		if (f(t, iq) == HOOK_HANDLED)
			return HOOK_HANDLED;
	return HOOK_PASS;
}

void
hook_add_presence_out(hook_presence_fn fn)
{
	chain_add(CH_PRESENCE_OUT, (hook_fn)fn);
}

void
hook_run_presence_out(struct session *s, struct xel *presence)
{
	EACH(CH_PRESENCE_OUT, hook_presence_fn, f)
		f(s, presence);
}

void
hook_add_presence_changed(hook_presence_changed_fn fn)
{
	chain_add(CH_PRESENCE_CHANGED, (hook_fn)fn);
}

void
hook_run_presence_changed(struct session *s, const struct xel *pres,
    int available)
{
	EACH(CH_PRESENCE_CHANGED, hook_presence_changed_fn, f)
		f(s, pres, available);
}

void
hook_add_auth_failure(hook_auth_failure_fn fn)
{
	chain_add(CH_AUTH_FAILURE, (hook_fn)fn);
}

void
hook_run_auth_failure(const char *jid, const char *ip,
    const char *mechanism, const char *condition)
{
	EACH(CH_AUTH_FAILURE, hook_auth_failure_fn, f)
		f(jid, ip, mechanism, condition);
}

void
hook_add_offline_changed(hook_offline_changed_fn fn)
{
	chain_add(CH_OFFLINE_CHANGED, (hook_fn)fn);
}

void
hook_run_offline_changed(long long delta)
{
	EACH(CH_OFFLINE_CHANGED, hook_offline_changed_fn, f)
		f(delta);
}

void
hook_add_bind2(hook_bind2_features_fn features, hook_bind2_fn fn)
{
	chain_add(CH_BIND2_FEATURES, (hook_fn)features);
	chain_add(CH_BIND2, (hook_fn)fn);
}

void
hook_run_bind2_features(struct xel *inline_features)
{
	EACH(CH_BIND2_FEATURES, hook_bind2_features_fn, f)
		f(inline_features);
}

enum hook_result
hook_run_bind2(struct session *s, const struct xel *req, struct xel *bound)
{
	EACH(CH_BIND2, hook_bind2_fn, f)
		if (f(s, req, bound) == HOOK_HANDLED)
			return HOOK_HANDLED;
	return HOOK_PASS;
}

void
hook_add_caps_changed(hook_caps_fn fn)
{
	chain_add(CH_CAPS_CHANGED, (hook_fn)fn);
}

void
hook_run_caps_changed(struct session *s, const struct caps *old)
{
	EACH(CH_CAPS_CHANGED, hook_caps_fn, f)
		f(s, old);
}

void
hook_add_pep_event(hook_pep_fn fn)
{
	chain_add(CH_PEP_EVENT, (hook_fn)fn);
}

void
hook_run_pep_event(const char *user, const char *host, const char *node,
    const char *id, const struct xel *payload, int by_server)
{
	EACH(CH_PEP_EVENT, hook_pep_fn, f)
		f(user, host, node, id, payload, by_server);
}

void
hook_add_admin_change(hook_admin_change_fn fn)
{
	chain_add(CH_ADMIN_CHANGE, (hook_fn)fn);
}

void
hook_run_admin_change(const char *kind, const char *user, const char *host,
    const char *what)
{
	EACH(CH_ADMIN_CHANGE, hook_admin_change_fn, f)
		f(kind, user, host, what);
}

void
hook_add_subscribed(hook_subscribed_fn fn)
{
	chain_add(CH_SUBSCRIBED, (hook_fn)fn);
}

void
hook_run_subscribed(const char *user, const char *host, const char *contact)
{
	EACH(CH_SUBSCRIBED, hook_subscribed_fn, f)
		f(user, host, contact);
}

void
hook_add_shutdown(hook_shutdown_fn fn)
{
	chain_add(CH_SHUTDOWN, (hook_fn)fn);
}

void
hook_run_shutdown(void)
{
	EACH(CH_SHUTDOWN, hook_shutdown_fn, f)
		f();
}

void
hook_add_remote_presence(hook_remote_presence_fn fn)
{
	chain_add(CH_REMOTE_PRESENCE, (hook_fn)fn);
}

void
hook_run_remote_presence(const struct jid *to, const struct jid *from,
    const struct xel *pres)
{
	EACH(CH_REMOTE_PRESENCE, hook_remote_presence_fn, f)
		f(to, from, pres);
}

void
hook_add_remote_caps_changed(hook_remote_caps_fn fn)
{
	chain_add(CH_REMOTE_CAPS_CHANGED, (hook_fn)fn);
}

void
hook_run_remote_caps_changed(const char *user, const char *host,
    const char *contact, const struct caps *now, const struct caps *old)
{
	EACH(CH_REMOTE_CAPS_CHANGED, hook_remote_caps_fn, f)
		f(user, host, contact, now, old);
}
