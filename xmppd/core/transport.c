/*
 * The transports by id, so that an asynchronous completion (a storage job
 * or a SASL step) that carries a connection id finds its transport again,
 * or learns that it has gone.
 */
#include <inttypes.h>
#include <stdio.h>

#include "core/transport.h"
#include "strmap.h"
#include "xml.h"

static struct strmap *by_id;        /* decimal id -> struct transport */

static void
id_key(uint64_t id, char *key, size_t len)
{
	snprintf(key, len, "%" PRIu64, id);
}

void
transport_register(struct transport *t)
{
	char key[24];

	if (by_id == NULL)
		by_id = strmap_new();
	id_key(t->id, key, sizeof(key));
	strmap_put(by_id, key, t);
}

void
transport_unregister(struct transport *t)
{
	char key[24];

	id_key(t->id, key, sizeof(key));
	strmap_del(by_id, key);
}

struct transport *
transport_find(uint64_t id)
{
	struct transport *t;
	char key[24];

	if (by_id == NULL)
		return NULL;
	id_key(id, key, sizeof(key));
	t = strmap_get(by_id, key);
	return t != NULL && !t->closing ? t : NULL;
}

void
transport_reply(struct transport *t, struct xel *r)
{
	if (r == NULL)
		return;
	t->ops->send(t, r);
	arena_free(r->arena);
}
