/*
 * Hook chains: small arrays of handlers per hook, run in order.
 */
#include <stddef.h>

#include "core/hooks.h"
#include "log.h"

#define HOOK_MAX 16

#define CHAIN(type, name)                                        \
	static type name##_v[HOOK_MAX];                          \
	static size_t name##_n;                                  \
	static void name##_add(type fn)                          \
	{                                                        \
		if (name##_n == HOOK_MAX)                        \
			fatalx("too many " #name " hooks");      \
		name##_v[name##_n++] = fn;                       \
	}

CHAIN(hook_session_fn, bound)
CHAIN(hook_session_fn, end)
CHAIN(hook_session_fn, initial)
CHAIN(hook_outbound_fn, outbound)
CHAIN(hook_deliver_fn, deliver)
CHAIN(hook_offline_fn, offline)
CHAIN(hook_user_fn, deleted)
CHAIN(hook_features_fn, features)
CHAIN(hook_presence_fn, presence_out)
CHAIN(hook_preauth_iq_fn, preauth_iq)
CHAIN(hook_message_out_fn, message_out)
CHAIN(hook_message_in_fn, message_in)
CHAIN(hook_message_delivered_fn, message_delivered)

void
hook_add_message_out(hook_message_out_fn fn)
{
	message_out_add(fn);
}

enum hook_result
hook_run_message_out(struct session *from, struct xel *msg,
    const struct jid *to)
{
	for (size_t i = 0; i < message_out_n; i++)
		if (message_out_v[i](from, msg, to) == HOOK_HANDLED)
			return HOOK_HANDLED;
	return HOOK_PASS;
}

void
hook_add_message_in(hook_message_in_fn fn)
{
	message_in_add(fn);
}

enum hook_result
hook_run_message_in(struct session *from_session, struct xel *msg,
    const struct jid *to)
{
	for (size_t i = 0; i < message_in_n; i++)
		if (message_in_v[i](from_session, msg, to) == HOOK_HANDLED)
			return HOOK_HANDLED;
	return HOOK_PASS;
}

void
hook_add_message_delivered(hook_message_delivered_fn fn)
{
	message_delivered_add(fn);
}

void
hook_run_message_delivered(struct xel *msg, const struct jid *to,
    struct session **sessions, size_t n)
{
	for (size_t i = 0; i < message_delivered_n; i++)
		message_delivered_v[i](msg, to, sessions, n);
}

void
hook_add_preauth_iq(hook_preauth_iq_fn fn)
{
	preauth_iq_add(fn);
}

enum hook_result
hook_run_preauth_iq(struct c2s *c, struct xel *iq)
{
	for (size_t i = 0; i < preauth_iq_n; i++)
		if (preauth_iq_v[i](c, iq) == HOOK_HANDLED)
			return HOOK_HANDLED;
	return HOOK_PASS;
}

void
hook_add_session(enum hook_session which, hook_session_fn fn)
{
	if (which == HOOK_SESSION_BOUND)
		bound_add(fn);
	else if (which == HOOK_SESSION_END)
		end_add(fn);
	else
		initial_add(fn);
}

void
hook_run_session(enum hook_session which, struct session *s)
{
	hook_session_fn *v = which == HOOK_SESSION_BOUND ? bound_v :
	    which == HOOK_SESSION_END ? end_v : initial_v;
	size_t n = which == HOOK_SESSION_BOUND ? bound_n :
	    which == HOOK_SESSION_END ? end_n : initial_n;

	for (size_t i = 0; i < n; i++)
		v[i](s);
}

void
hook_add_outbound(hook_outbound_fn fn)
{
	outbound_add(fn);
}

enum hook_result
hook_run_outbound(struct session *from, struct xel *st, const struct jid *to)
{
	for (size_t i = 0; i < outbound_n; i++)
		if (outbound_v[i](from, st, to) == HOOK_HANDLED)
			return HOOK_HANDLED;
	return HOOK_PASS;
}

void
hook_add_deliver(hook_deliver_fn fn)
{
	deliver_add(fn);
}

enum hook_result
hook_run_deliver(struct session *to, struct xel *st, const struct jid *from)
{
	for (size_t i = 0; i < deliver_n; i++)
		if (deliver_v[i](to, st, from) == HOOK_HANDLED)
			return HOOK_HANDLED;
	return HOOK_PASS;
}

void
hook_add_offline(hook_offline_fn fn)
{
	offline_add(fn);
}

enum hook_result
hook_run_offline(struct session *from, struct xel *msg, const struct jid *to)
{
	for (size_t i = 0; i < offline_n; i++)
		if (offline_v[i](from, msg, to) == HOOK_HANDLED)
			return HOOK_HANDLED;
	return HOOK_PASS;
}

void
hook_add_user_deleted(hook_user_fn fn)
{
	deleted_add(fn);
}

void
hook_run_user_deleted(const char *user, const char *host)
{
	for (size_t i = 0; i < deleted_n; i++)
		deleted_v[i](user, host);
}

void
hook_add_features(hook_features_fn fn)
{
	features_add(fn);
}

void
hook_run_features(struct c2s *c, struct xel *features, int authed)
{
	for (size_t i = 0; i < features_n; i++)
		features_v[i](c, features, authed);
}

void
hook_add_presence_out(hook_presence_fn fn)
{
	presence_out_add(fn);
}

void
hook_run_presence_out(struct session *s, struct xel *presence)
{
	for (size_t i = 0; i < presence_out_n; i++)
		presence_out_v[i](s, presence);
}
