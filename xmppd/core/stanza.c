/*
 * Stanza kinds and error replies.
 */
#include <string.h>

#include "core/stanza.h"

enum stanza_kind
stanza_kind(const struct xel *st)
{
	if (strcmp(st->ns, NS_CLIENT) != 0)
		return STANZA_OTHER;
	if (strcmp(st->name, "message") == 0)
		return STANZA_MESSAGE;
	if (strcmp(st->name, "presence") == 0)
		return STANZA_PRESENCE;
	if (strcmp(st->name, "iq") == 0)
		return STANZA_IQ;
	return STANZA_OTHER;
}

/* RFC 6120 §8.3.3: the usual type for each defined condition. */
const char *
stanza_error_type(const char *cond)
{
	static const struct {
		const char *cond, *type;
	} t[] = {
		{ "bad-request", "modify" },
		{ "conflict", "cancel" },
		{ "feature-not-implemented", "cancel" },
		{ "forbidden", "auth" },
		{ "gone", "cancel" },
		{ "internal-server-error", "cancel" },
		{ "item-not-found", "cancel" },
		{ "jid-malformed", "modify" },
		{ "not-acceptable", "modify" },
		{ "not-allowed", "cancel" },
		{ "not-authorized", "auth" },
		{ "policy-violation", "modify" },
		{ "recipient-unavailable", "wait" },
		{ "redirect", "modify" },
		{ "registration-required", "auth" },
		{ "remote-server-not-found", "cancel" },
		{ "remote-server-timeout", "wait" },
		{ "resource-constraint", "wait" },
		{ "service-unavailable", "cancel" },
		{ "subscription-required", "auth" },
		{ "undefined-condition", "cancel" },
		{ "unexpected-request", "wait" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(t[i].cond, cond) == 0)
			return t[i].type;
	return "cancel";
}

static struct xel *
reply_base(const struct xel *st, const char *type)
{
	struct arena *a = arena_new(1024);
	struct xel *r = xel_new(a, st->name, NS_CLIENT);
	const char *v;

	if ((v = xel_attr(st, "from")) != NULL)
		xel_set_attr(r, "to", v);
	if ((v = xel_attr(st, "to")) != NULL)
		xel_set_attr(r, "from", v);
	if ((v = xel_attr(st, "id")) != NULL)
		xel_set_attr(r, "id", v);
	xel_set_attr(r, "type", type);
	return r;
}

struct xel *
stanza_error(const struct xel *st, const char *type, const char *cond,
    const char *text)
{
	const char *t = xel_attr(st, "type");
	struct xel *r, *e;

	if (t && strcmp(t, "error") == 0)
		return NULL;
	r = reply_base(st, "error");
	for (struct xel *c = st->children; c; c = c->next)
		if (c->name && strcmp(c->name, "error") != 0)
			xel_append_copy(r, c);
	e = xel_add(r, "error", NS_CLIENT);
	xel_set_attr(e, "type", type ? type : stanza_error_type(cond));
	xel_add(e, cond, NS_STANZA_ERR);
	if (text)
		xel_text_set(xel_add(e, "text", NS_STANZA_ERR), text);
	return r;
}

struct xel *
stanza_iq_skeleton(const struct xel *iq)
{
	static const char *const attrs[] = { "from", "to", "id", "type" };
	const struct xel *payload = xel_first_elem(iq);
	struct xel *st = xel_new(arena_new(256), "iq", NS_CLIENT);
	const char *v;

	for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
		if ((v = xel_attr(iq, attrs[i])) != NULL)
			xel_set_attr(st, attrs[i], v);
	if (payload)
		xel_add(st, payload->name, payload->ns);
	return st;
}

struct xel *
stanza_iq_result(const struct xel *st)
{
	return reply_base(st, "result");
}
