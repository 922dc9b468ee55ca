/*
 * XEP-0352 client state indication (csi.h).  The hold is a list of
 * serialized stanzas in the order they were sent; a coalescing one
 * (presence) carries its sender's full JID, and a newer one from the
 * same sender takes its place at the end (XEP-0352 §3 leaves what to
 * hold to the server; this is what Prosody's mod_csi_simple and
 * ejabberd's mod_client_state do).  Nothing is allocated until a client
 * first says it is inactive.
 */
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "core/csi.h"
#include "core/session.h"
#include "core/smacks.h"
#include "core/stanza.h"
#include "log.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

struct csi_item {
	char *data;
	size_t len;
	char *from;             /* coalescing key, NULL if none */
};

struct csi {
	int inactive;
	struct csi_item *v;
	size_t n, cap;
	size_t bytes;
};

/* Payloads that make a message worth waking the client for. */
static const struct {
	const char *name, *ns;
} urgent_payloads[] = {
	{ "encrypted", "eu.siacs.conversations.axolotl" },  /* OMEMO 0.3 */
	{ "encrypted", "urn:xmpp:omemo:2" },                 /* XEP-0384 */
	{ "openpgp", "urn:xmpp:openpgp:0" },                 /* XEP-0373 */
	{ "x", "jabber:x:encrypted" },                       /* XEP-0027 */
	{ NULL, "urn:xmpp:jingle-message:0" },               /* XEP-0353 */
	{ "x", "jabber:x:conference" },                      /* XEP-0249 */
};

static int
message_urgent(const struct xel *m, int depth)
{
	const char *type = xel_attr(m, "type");
	const struct xel *c;

	if (type != NULL && strcmp(type, "error") == 0)
		return 1;
	/* A room's chatter; a mention is urgent, told by the room. */
	if (type != NULL && strcmp(type, "groupchat") == 0)
		return 0;
	if (xel_child(m, "body", m->ns) != NULL ||
	    xel_child(m, "subject", m->ns) != NULL)
		return 1;
	for (size_t i = 0; i < nitems(urgent_payloads); i++)
		if (xel_child(m, urgent_payloads[i].name,
		    urgent_payloads[i].ns) != NULL)
			return 1;
	/* XEP-0045 §7.8.2: a mediated invitation. */
	c = xel_child(m, "x", "http://jabber.org/protocol/muc#user");
	if (c != NULL && xel_child(c, "invite", NULL) != NULL)
		return 1;
	/* XEP-0280: a carbon copy is as urgent as the message it carries
	 * (<sent|received><forwarded><message>). */
	if (depth == 0 &&
	    ((c = xel_child(m, "received", "urn:xmpp:carbons:2")) != NULL ||
	    (c = xel_child(m, "sent", "urn:xmpp:carbons:2")) != NULL)) {
		c = xel_child(c, "forwarded", "urn:xmpp:forward:0");
		c = xel_child(c, "message", NULL);
		return c != NULL && message_urgent(c, 1);
	}
	return 0;
}

enum csi_class
csi_classify(const struct xel *st)
{
	const char *type = xel_attr(st, "type");

	switch (stanza_kind(st)) {
	case STANZA_PRESENCE:
		if (type == NULL || strcmp(type, "unavailable") == 0)
			return xel_attr(st, "from") != NULL ? CSI_COALESCE :
			    CSI_HOLD;
		return CSI_URGENT;
	case STANZA_MESSAGE:
		return message_urgent(st, 0) ? CSI_URGENT : CSI_HOLD;
	default:
		return CSI_URGENT;
	}
}

void
csi_set(struct session *s, int inactive)
{
	if (s->csi == NULL) {
		if (!inactive)
			return;
		s->csi = xcalloc(1, sizeof(*s->csi));
	}
	s->csi->inactive = inactive;
}

int
csi_inactive(const struct session *s)
{
	return s->csi != NULL && s->csi->inactive;
}

const char *
csi_state(const struct session *s)
{
	return csi_inactive(s) ? "inactive" : "active";
}

size_t
csi_held(const struct session *s)
{
	return s->csi != NULL ? s->csi->n : 0;
}

static void
item_free(struct csi_item *it)
{
	free(it->data);
	free(it->from);
}

void
csi_flush(struct session *s,
    void (*send)(struct session *, const char *, size_t))
{
	struct csi *c = s->csi;
	struct csi_item *v;
	size_t n;

	if (c == NULL || c->n == 0)
		return;
	/* Taken out first: send may end the session (an output or
	 * sm-queue limit), and what is left is then undelivered here. */
	v = c->v;
	n = c->n;
	c->v = NULL;
	c->n = c->cap = c->bytes = 0;
	for (size_t i = 0; i < n; i++) {
		if (!s->closing)
			send(s, v[i].data, v[i].len);
		else
			smacks_undelivered(s, v[i].data, v[i].len);
		item_free(&v[i]);
	}
	free(v);
}

int
csi_hold(struct session *s, enum csi_class cls, const char *from,
    const char *data, size_t len,
    void (*send)(struct session *, const char *, size_t))
{
	const struct conf_limits *l = &xmppd_conf->limits;
	struct csi *c = s->csi;
	struct csi_item *it;

	if (c == NULL || !c->inactive || l->csi_queue == 0)
		return 0;
	if (cls == CSI_URGENT) {
		csi_flush(s, send);
		return 0;
	}
	if (cls == CSI_COALESCE && from != NULL)
		for (size_t i = 0; i < c->n; i++)
			if (c->v[i].from != NULL &&
			    strcmp(c->v[i].from, from) == 0) {
				c->bytes -= c->v[i].len;
				item_free(&c->v[i]);
				memmove(&c->v[i], &c->v[i + 1],
				    (c->n - i - 1) * sizeof(*c->v));
				c->n--;
				break;
			}
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->v = xreallocarray(c->v, c->cap, sizeof(*c->v));
	}
	it = &c->v[c->n++];
	it->data = xmalloc(len);
	memcpy(it->data, data, len);
	it->len = len;
	it->from = cls == CSI_COALESCE && from != NULL ? xstrdup(from) : NULL;
	c->bytes += len;
	if (c->n >= l->csi_queue || c->bytes >= l->csi_queue_size)
		csi_flush(s, send);
	return 1;
}

void
csi_end(struct session *s)
{
	struct csi *c = s->csi;

	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		smacks_undelivered(s, c->v[i].data, c->v[i].len);
		item_free(&c->v[i]);
	}
	c->n = 0;
	c->bytes = 0;
}

void
csi_free(struct session *s)
{
	if (s->csi == NULL)
		return;
	csi_end(s);
	free(s->csi->v);
	free(s->csi);
	s->csi = NULL;
}
