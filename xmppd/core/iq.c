/*
 * IQ dispatch by payload namespace and element, and the built-in handler
 * for the legacy session establishment IQ (RFC 3921 §3, kept optional by
 * draft-cridland-xmpp-session-01).
 */
#include <string.h>

#include "core/iq.h"
#include "core/session.h"
#include "core/stanza.h"
#include "xmalloc.h"
#include "xml.h"

struct iq_entry {
	const char *ns, *name;
	iq_handler h;
	unsigned owner;             /* hooks.h: who registered it */
};

static struct iq_entry *table;      /* in owner order (hooks.h) */
static size_t ntable;

void
iq_register(const char *ns, const char *name, iq_handler h)
{
	unsigned owner = hook_owner();
	size_t at = ntable;

	while (at > 0 && table[at - 1].owner > owner)
		at--;
	table = xreallocarray(table, ntable + 1, sizeof(*table));
	memmove(&table[at + 1], &table[at], (ntable - at) * sizeof(*table));
	table[at].ns = ns;
	table[at].name = name;
	table[at].h = h;
	table[at].owner = owner;
	ntable++;
}

void
iq_unregister_owner(unsigned owner)
{
	size_t k = 0;

	for (size_t i = 0; i < ntable; i++)
		if (table[i].owner != owner)
			table[k++] = table[i];
	ntable = k;
}

static void
reply(struct session *s, struct xel *r)
{
	if (r == NULL)
		return;
	session_send(s, r);
	arena_free(r->arena);
}

void
iq_dispatch(struct session *from, struct xel *iq, enum iq_target target)
{
	struct xel *payload = xel_first_elem(iq);

	if (payload) {
		for (size_t i = 0; i < ntable; i++) {
			if (strcmp(table[i].ns, payload->ns) != 0 ||
			    strcmp(table[i].name, payload->name) != 0)
				continue;
			if (table[i].h(from, iq, target) == HOOK_HANDLED)
				return;
		}
	}
	reply(from, stanza_error(iq, "cancel", "service-unavailable", NULL));
}

static enum hook_result
handle_session(struct session *from, struct xel *iq, enum iq_target target)
{
	const char *type = xel_attr(iq, "type");

	/* Sent to the server or, without 'to', to the account (RFC 6120
	 * §10.3.3): both mean the server here. */
	if (type == NULL || strcmp(type, "set") != 0 ||
	    (target == IQ_TO_BARE && xel_attr(iq, "to") != NULL))
		return HOOK_PASS;
	reply(from, stanza_iq_result(iq));
	return HOOK_HANDLED;
}

void
iq_init(void)
{
	iq_register(NS_SESSION, "session", handle_session);
}
