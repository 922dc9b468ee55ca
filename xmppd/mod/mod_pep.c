/*
 * Personal eventing (XEP-0163) on every account's bare JID: the subset
 * of publish-subscribe (XEP-0060) that PEP needs, with XEP-0223
 * publish-options.  Storage and access decisions against stored rosters
 * and block lists are store/pep.h; this file is the protocol:
 *
 * - requests (NS_PUBSUB publish, retract, items, create; NS_PUBSUB_OWNER
 *   configure, delete, purge, default) answered after their storage job;
 * - notifications of publishes and retractions to the owner's available
 *   resources and to contacts who receive the owner's presence and
 *   whose access the node's model admits, each only to resources whose
 *   verified XEP-0115 capabilities (mod_caps.c, s->caps) carry
 *   NODE+notify ("filtered notifications", XEP-0163 §4.3.2), serialized
 *   once per publish;
 * - the last published items when a session's capabilities first become
 *   known (it came online with interest) or gain a NODE+notify (interest
 *   appears), for its own nodes and those of its contacts (XEP-0163
 *   §4.3.4 / XEP-0060 §6.1.7), read with their access checks in one job;
 * - disco#items of the bare JID: the nodes the requester may see.
 *
 * Subscriptions are implicit (presence plus caps), so explicit
 * subscribe/unsubscribe, subscription options and affiliations answer
 * <feature-not-implemented/> with the pubsub#errors <unsupported/>
 * feature, and none of those features is advertised.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "conf.h"
#include "core/disco.h"
#include "core/hooks.h"
#include "core/iq.h"
#include "core/roster.h"
#include "core/router.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/stanza.h"
#include "jid.h"
#include "log.h"
#include "mod/blocking.h"
#include "mod/caps.h"
#include "mod/pep.h"
#include "strmap.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

void mod_pep_init(void);
void mod_pep_deinit(void);

#define NS_DELAY "urn:xmpp:delay"
#define FORM_NODE_CONFIG "http://jabber.org/protocol/pubsub#node_config"
#define FORM_PUBLISH_OPTIONS "http://jabber.org/protocol/pubsub#publish-options"

/* What a request waits for in storage; found again by its tag. */
enum op_kind {
	OP_PUBLISH, OP_RETRACT, OP_ITEMS, OP_CREATE, OP_CONFIGURE_GET,
	OP_CONFIGURE_SET, OP_DELETE, OP_PURGE, OP_DISCO_ITEMS, OP_LAST,
	OP_LOAD,
};

struct op {
	enum op_kind kind;
	uint64_t sid;              /* the requesting session, 0: the server */
	struct xel *iq;            /* the request (own arena), NULL: none */
	char *user, *host, *node, *id;
	char *payload;             /* publish: serialized */
	size_t len;
	struct xel *payload_el;    /* publish: a copy (iq's arena or own) */
	struct arena *a;           /* payload_el's arena if not iq's */
	int notify;                /* retract: notify="true" */
	int64_t stamp;             /* publish: ms since the epoch */
};

/*
 * The nodes of online users, each with its newest item, loaded when the
 * user's first session binds and dropped with the last; written through
 * by every change this module makes, and loaded again where a change
 * leaves the newest item unknown (a retraction of it).  The last items
 * sent when a contact comes online come from here for online owners, and
 * from storage (pep_last_items) for the others.
 */
/* The largest newest item kept in the cache: what clients ask to be
 * notified of (nicknames, device lists, avatar metadata, bookmarks) is
 * far smaller; larger ones (avatar data, bundles) are read from storage
 * when needed, so that an online user costs at most pep-nodes times
 * this much. */
#define CACHE_ITEM_MAX 2048

struct cnode {
	char *name;
	struct pep_config cfg;
	int big;                   /* the newest item is larger than
	                              CACHE_ITEM_MAX: not here */
	char *last_id;             /* NULL: no item (or big) */
	char *last;                /* its payload, serialized */
	size_t last_len;
	int64_t last_stamp;        /* ms */
};

struct powner {
	char *user, *host;
	struct cnode *v;
	size_t n;
	int loaded;                /* 0 while its load is queued */
	uint64_t load_tag;         /* the load whose answer counts */
	int remotes_told;          /* the first load sent the last items
	                              to contacts on other servers */
};

static void remote_after_load(struct powner *po);
static void remote_last_all(const char *user, const char *host,
    const char *bare, int presence);

static struct strmap *owners;  /* bare JID -> struct powner */
static pep_legacy_bookmarks_fn legacy_bookmarks;
static struct strmap *ops;     /* tag as decimal -> struct op */
static uint64_t next_tag = 1;
static int enabled;
static unsigned id_serial;

static void
op_free(struct op *o)
{
	if (o->iq)
		arena_free(o->iq->arena);
	if (o->a)
		arena_free(o->a);
	free(o->user);
	free(o->host);
	free(o->node);
	free(o->id);
	free(o->payload);
	free(o);
}

static uint64_t
op_add(struct op *o)
{
	char key[24];
	uint64_t tag = next_tag++;

	snprintf(key, sizeof(key), "%" PRIu64, tag);
	strmap_put(ops, key, o);
	return tag;
}

/* The op of tag, taken out of the table; NULL if the module went off. */
static struct op *
op_take(uint64_t tag)
{
	char key[24];

	if (ops == NULL)
		return NULL;
	snprintf(key, sizeof(key), "%" PRIu64, tag);
	return strmap_del(ops, key);
}

static struct op *
op_new(enum op_kind kind, struct session *s, const struct xel *iq,
    const char *user, const char *host, const char *node)
{
	struct op *o = xcalloc(1, sizeof(*o));

	o->kind = kind;
	o->sid = s ? s->id : 0;
	o->iq = iq ? xel_copy(arena_new(512), iq) : NULL;
	o->user = xstrdup(user);
	o->host = xstrdup(host);
	o->node = node ? xstrdup(node) : NULL;
	return o;
}

/* Errors. */

/* An error reply with a pubsub#errors condition (XEP-0060 §7.1.3 and
 * the like); app may be NULL, feature names the <unsupported/> one. */
static void
reply_error(struct session *s, const struct xel *iq, const char *cond,
    const char *app, const char *feature)
{
	struct xel *r = stanza_error(iq, NULL, cond, NULL), *e;

	if (r == NULL)
		return;
	if (app && (e = xel_child(r, "error", NS_CLIENT)) != NULL) {
		struct xel *x = xel_add(e, app, NS_PUBSUB_ERRORS);

		if (feature)
			xel_set_attr(x, "feature", feature);
	}
	session_reply(s, r);
}

/* The same, for the op's session if it is still there. */
static void
op_error(struct op *o, const char *cond, const char *app)
{
	struct session *s = o->sid ? sm_find_id(o->sid) : NULL;

	if (s && o->iq)
		reply_error(s, o->iq, cond, app, NULL);
}

static void
op_reply(struct op *o, struct xel *r)
{
	struct session *s = o->sid ? sm_find_id(o->sid) : NULL;

	if (s)
		session_reply(s, r);
	else
		arena_free(r->arena);
}

/* The common answers of a storage status other than STORE_OK. */
static void
op_store_error(struct op *o, enum store_status st)
{
	if (st == STORE_NOT_FOUND)
		op_error(o, "item-not-found", NULL);
	else
		op_error(o, "internal-server-error", NULL);
}

/* Configuration forms (XEP-0060 §8.2, XEP-0223). */

static int
parse_bool(const char *v, int *out)
{
	if (v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0))
		*out = 1;
	else if (v && (strcmp(v, "0") == 0 || strcmp(v, "false") == 0))
		*out = 0;
	else
		return -1;
	return 0;
}

static const char *
field_value(const struct xel *f)
{
	const char *v = xel_text(xel_child(f, "value", NS_XDATA));

	return v ? v : "";
}

/*
 * Read a submitted form into c (which holds the starting values) and
 * *mask (the fields set).  form_type is the FORM_TYPE it must have.
 * Returns NULL, or the error condition ("bad-request" for a malformed
 * form, "not-acceptable" for a value this service does not support).
 */
static const char *
form_read(const struct xel *x, const char *form_type, struct pep_config *c,
    unsigned *mask)
{
	const char *type = xel_attr(x, "type");

	*mask = 0;
	if (type == NULL || strcmp(type, "submit") != 0)
		return "bad-request";
	for (struct xel *f = xel_child(x, "field", NS_XDATA); f;
	    f = xel_next(f, "field", NS_XDATA)) {
		const char *var = xel_attr(f, "var"), *v = field_value(f);
		int b, k;

		if (var == NULL)
			continue;
		if (strcmp(var, "FORM_TYPE") == 0) {
			if (strcmp(v, form_type) != 0)
				return "bad-request";
		} else if (strcmp(var, "pubsub#access_model") == 0) {
			if ((k = pep_access_parse(v)) < 0)
				return "not-acceptable";
			c->access = (enum pep_access)k;
			*mask |= PEP_CFG_ACCESS;
		} else if (strcmp(var, "pubsub#roster_groups_allowed") == 0) {
			for (size_t i = 0; i < c->ngroups; i++)
				free(c->groups[i]);
			free(c->groups);
			c->groups = NULL;
			c->ngroups = 0;
			for (struct xel *e = xel_child(f, "value", NS_XDATA);
			    e; e = xel_next(e, "value", NS_XDATA)) {
				const char *g = xel_text(e);

				if (g == NULL || *g == '\0')
					continue;
				if (c->ngroups == 64)
					return "not-acceptable";
				c->groups = xreallocarray(c->groups,
				    c->ngroups + 1, sizeof(*c->groups));
				c->groups[c->ngroups++] = xstrdup(g);
			}
			*mask |= PEP_CFG_GROUPS;
		} else if (strcmp(var, "pubsub#max_items") == 0) {
			char *end;
			unsigned long n;

			if (strcmp(v, "max") == 0)
				c->max_items = 0;
			else {
				n = strtoul(v, &end, 10);
				if (*v < '0' || *v > '9' || *end != '\0' ||
				    n == 0)
					return "not-acceptable";
				if (n > xmppd_conf->limits.pep_items) {
					log_info("pep: max_items %lu refused "
					    "(pep-items %u)", n,
					    xmppd_conf->limits.pep_items);
					return "not-acceptable";
				}
				c->max_items = (unsigned)n;
			}
			*mask |= PEP_CFG_MAX_ITEMS;
		} else if (strcmp(var, "pubsub#persist_items") == 0) {
			if (parse_bool(v, &b) < 0)
				return "not-acceptable";
			c->persist = b;
			*mask |= PEP_CFG_PERSIST;
		} else if (strcmp(var, "pubsub#send_last_published_item") ==
		    0) {
			if ((k = pep_send_last_parse(v)) < 0)
				return "not-acceptable";
			c->send_last = (enum pep_send_last)k;
			*mask |= PEP_CFG_SEND_LAST;
		} else if (strcmp(var, "pubsub#notify_retract") == 0) {
			if (parse_bool(v, &b) < 0)
				return "not-acceptable";
			c->notify_retract = b;
			*mask |= PEP_CFG_NOTIFY_RETRACT;
		} else if (strcmp(var, "pubsub#notify_delete") == 0) {
			if (parse_bool(v, &b) < 0)
				return "not-acceptable";
			c->notify_delete = b;
			*mask |= PEP_CFG_NOTIFY_DELETE;
		} else if (strcmp(var, "pubsub#title") == 0) {
			if (strlen(v) > PEP_NAME_MAX)
				return "not-acceptable";
			free(c->title);
			c->title = *v ? xstrdup(v) : NULL;
			*mask |= PEP_CFG_TITLE;
		} else if (strcmp(var, "pubsub#deliver_payloads") == 0 ||
		    strcmp(var, "pubsub#deliver_notifications") == 0 ||
		    strcmp(var, "pubsub#presence_based_delivery") == 0) {
			/* Fixed: always (presence-based, with payloads). */
			if (parse_bool(v, &b) < 0 || !b)
				return "not-acceptable";
		} else if (strcmp(var, "pubsub#publish_model") == 0) {
			if (strcmp(v, "publishers") != 0)
				return "not-acceptable";
		}
		/* Other fields are options this service does not have:
		 * ignored, as the form it sends does not list them. */
	}
	return NULL;
}

static void
add_field(struct xel *x, const char *var, const char *type,
    const char *label, const char *value)
{
	struct xel *f = xel_add(x, "field", NS_XDATA);

	xel_set_attr(f, "var", var);
	if (type)
		xel_set_attr(f, "type", type);
	if (label)
		xel_set_attr(f, "label", label);
	if (value)
		xel_text_set(xel_add(f, "value", NS_XDATA), value);
}

static void
add_options(struct xel *f, const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		xel_text_set(xel_add(xel_add(f, "option", NS_XDATA), "value",
		    NS_XDATA), v[i]);
}

/* The node_config form of c (XEP-0060 §16.4.4), under parent. */
static void
form_write(struct xel *parent, const struct pep_config *c)
{
	static const char *const access[] = { "open", "presence", "roster",
	    "whitelist" };
	static const char *const send_last[] = { "never", "on_sub",
	    "on_sub_and_presence" };
	struct xel *x = xel_add(parent, "x", NS_XDATA), *f;
	char num[16];

	xel_set_attr(x, "type", "form");
	add_field(x, "FORM_TYPE", "hidden", NULL, FORM_NODE_CONFIG);
	add_field(x, "pubsub#title", "text-single", "A friendly name for "
	    "the node", c->title);
	add_field(x, "pubsub#access_model", "list-single", "Who may "
	    "subscribe and retrieve items", pep_access_name(c->access));
	f = x->last;
	add_options(f, access, nitems(access));
	add_field(x, "pubsub#roster_groups_allowed", "list-multi", "Roster "
	    "groups allowed to subscribe", NULL);
	f = x->last;
	for (size_t i = 0; i < c->ngroups; i++)
		xel_text_set(xel_add(f, "value", NS_XDATA), c->groups[i]);
	if (c->max_items == 0)
		snprintf(num, sizeof(num), "max");
	else
		snprintf(num, sizeof(num), "%u", c->max_items);
	add_field(x, "pubsub#max_items", "text-single", "Max # of items to "
	    "persist (or max)", num);
	add_field(x, "pubsub#persist_items", "boolean", "Persist items to "
	    "storage", c->persist ? "1" : "0");
	add_field(x, "pubsub#send_last_published_item", "list-single",
	    "When to send the last published item",
	    pep_send_last_name(c->send_last));
	f = x->last;
	add_options(f, send_last, nitems(send_last));
	add_field(x, "pubsub#notify_retract", "boolean", "Notify subscribers "
	    "when items are removed from the node", c->notify_retract ? "1" :
	    "0");
	add_field(x, "pubsub#notify_delete", "boolean", "Notify subscribers "
	    "when the node is deleted", c->notify_delete ? "1" : "0");
	add_field(x, "pubsub#deliver_payloads", "boolean", "Deliver payloads "
	    "with event notifications", "1");
	add_field(x, "pubsub#deliver_notifications", "boolean", "Deliver "
	    "event notifications", "1");
	add_field(x, "pubsub#presence_based_delivery", "boolean", "Deliver "
	    "notifications only to available users", "1");
	add_field(x, "pubsub#publish_model", "list-single", "Who may "
	    "publish", "publishers");
}

/* Names and ids: non-empty, bounded. */
static int
name_ok(const char *s)
{
	return s != NULL && *s != '\0' && strlen(s) <= PEP_NAME_MAX;
}

/* The owner a request is for: 'to' (a local user's bare JID) or the
 * requester's own account. */
struct owner {
	struct jid jid;
	char *bare;
	int self;
};

static int
owner_of(struct session *s, const struct xel *iq, struct owner *ow)
{
	const char *to = xel_attr(iq, "to");

	memset(ow, 0, sizeof(*ow));
	if (to == NULL) {
		if (jid_parse(&ow->jid, s->bare) < 0)
			return -1;
	} else if (jid_parse(&ow->jid, to) < 0 || ow->jid.node == NULL) {
		jid_free(&ow->jid);
		return -1;
	}
	ow->bare = jid_bare(&ow->jid);
	ow->self = strcmp(ow->bare, s->bare) == 0;
	return 0;
}

static void
owner_free(struct owner *ow)
{
	jid_free(&ow->jid);
	free(ow->bare);
}

/* The forms of s's JID a block list item can match (XEP-0191 §4). */
static void
requester_forms(const struct session *s, char *forms[4])
{
	forms[0] = xstrdup(s->full);
	forms[1] = xstrdup(s->bare);
	forms[2] = xasprintf("%s/%s", s->jid.domain, s->jid.resource);
	forms[3] = xstrdup(s->jid.domain);
}

static void
forms_free(char *forms[4])
{
	for (int i = 0; i < 4; i++)
		free(forms[i]);
}

/* The cache of online owners' nodes. */

static void
cnode_clear_last(struct cnode *c)
{
	free(c->last_id);
	free(c->last);
	c->last_id = c->last = NULL;
	c->last_len = 0;
	c->big = 0;
}

/* Keep id's payload as the newest item of c, unless it is too big. */
static void
cnode_set_last(struct cnode *c, const char *id, const char *payload,
    size_t len, int64_t stamp)
{
	cnode_clear_last(c);
	if (len > CACHE_ITEM_MAX) {
		c->big = 1;
		return;
	}
	c->last_id = xstrdup(id);
	c->last = xstrndup(payload, len);
	c->last_len = len;
	c->last_stamp = stamp;
}

static void
powner_clear(struct powner *po)
{
	for (size_t i = 0; i < po->n; i++) {
		free(po->v[i].name);
		pep_config_free(&po->v[i].cfg);
		cnode_clear_last(&po->v[i]);
	}
	free(po->v);
	po->v = NULL;
	po->n = 0;
}

static void
powner_free(struct powner *po)
{
	powner_clear(po);
	free(po->user);
	free(po->host);
	free(po);
}

static struct powner *
powner_find(const char *user, const char *host)
{
	char key[3 * 1024 + 2];

	if (owners == NULL)
		return NULL;
	snprintf(key, sizeof(key), "%s@%s", user, host);
	return strmap_get(owners, key);
}

static struct cnode *
cnode_find(struct powner *po, const char *node)
{
	for (size_t i = 0; i < po->n; i++)
		if (strcmp(po->v[i].name, node) == 0)
			return &po->v[i];
	return NULL;
}

static void
load_done(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_node_info *nodes, size_t n, const struct pep_item *last,
    const char *legacy)
{
	struct op *o = op_take(tag);
	struct powner *po;

	(void)owner;
	if (o == NULL)
		return;
	po = powner_find(o->user, o->host);
	if (st == STORE_OK && legacy != NULL && legacy_bookmarks != NULL)
		legacy_bookmarks(o->user, o->host, legacy, strlen(legacy));
	op_free(o);
	if (po == NULL || po->load_tag != tag || st != STORE_OK)
		return;
	powner_clear(po);
	po->v = n ? xcalloc(n, sizeof(*po->v)) : NULL;
	for (size_t i = 0; i < n; i++) {
		struct cnode *c = &po->v[i];

		c->name = xstrdup(nodes[i].node);
		pep_config_copy(&c->cfg, &nodes[i].cfg);
		if (last[i].id != NULL && last[i].payload != NULL)
			cnode_set_last(c, last[i].id, last[i].payload,
			    last[i].len, last[i].stamp_ms);
	}
	po->n = n;
	po->loaded = 1;
	if (!po->remotes_told) {
		po->remotes_told = 1;
		remote_after_load(po);
	}
}

/* (Re)load what storage has for po; until then storage answers. */
static void
powner_load(struct powner *po)
{
	struct op *o = op_new(OP_LOAD, NULL, NULL, po->user, po->host, NULL);

	po->loaded = 0;
	po->load_tag = op_add(o);
	pep_load(po->user, po->host, load_done, 0, po->load_tag);
}

static void
pep_session_bound(struct session *s)
{
	struct powner *po;

	if (powner_find(s->jid.node, s->jid.domain) != NULL)
		return;
	po = xcalloc(1, sizeof(*po));
	po->user = xstrdup(s->jid.node);
	po->host = xstrdup(s->jid.domain);
	strmap_put(owners, s->bare, po);
	powner_load(po);
}

static void
pep_session_end(struct session *s)
{
	struct powner *po;

	for (struct session *o = sm_find_bare(s->jid.node, s->jid.domain); o;
	    o = o->next)
		if (o != s && !o->closing)
			return;
	if ((po = strmap_del(owners, s->bare)) != NULL)
		powner_free(po);
}


/* Write-through after a stored change (nothing while a load is queued:
 * it reads the change, being later in the queue). */
static void
cache_publish(const char *user, const char *host, const char *node,
    const struct pep_config *cfg, const char *id, const char *payload,
    size_t len, int64_t stamp)
{
	struct powner *po = powner_find(user, host);
	struct cnode *c;

	if (po == NULL || !po->loaded)
		return;
	if ((c = cnode_find(po, node)) == NULL) {
		po->v = xreallocarray(po->v, po->n + 1, sizeof(*po->v));
		c = &po->v[po->n++];
		memset(c, 0, sizeof(*c));
		c->name = xstrdup(node);
	} else
		pep_config_free(&c->cfg);
	pep_config_copy(&c->cfg, cfg);
	cnode_set_last(c, id, payload, len, stamp);
}

/* A node created empty. */
static void
cache_publish_node(const char *user, const char *host, const char *node,
    const struct pep_config *cfg)
{
	struct powner *po = powner_find(user, host);
	struct cnode *c;

	if (po == NULL || !po->loaded || cnode_find(po, node) != NULL)
		return;
	po->v = xreallocarray(po->v, po->n + 1, sizeof(*po->v));
	c = &po->v[po->n++];
	memset(c, 0, sizeof(*c));
	c->name = xstrdup(node);
	pep_config_copy(&c->cfg, cfg);
}

/* A retraction, purge, deletion or configuration: dropped nodes go, and
 * where the newest item may have changed the owner is loaded again. */
static void
cache_change(const char *user, const char *host, const char *node,
    enum op_kind kind, const char *id)
{
	struct powner *po = powner_find(user, host);
	struct cnode *c;

	if (po == NULL || !po->loaded || (c = cnode_find(po, node)) == NULL)
		return;
	if (kind == OP_DELETE) {
		free(c->name);
		pep_config_free(&c->cfg);
		cnode_clear_last(c);
		*c = po->v[--po->n];
	} else if (kind == OP_PURGE)
		cnode_clear_last(c);
	else if (kind != OP_RETRACT || (c->last_id != NULL && id != NULL &&
	             strcmp(c->last_id, id) == 0))
		powner_load(po);
}

/*
 * Notifications.  One event is serialized once: "<message" and the rest,
 * which each copy gets after its own " to='...'" (session_send_fanout);
 * the delivery hooks (blocking) see it as a stanza with its 'to'.
 */
struct event {
	struct xel *st;            /* the message, 'to' set per copy */
	struct buf bytes;          /* its serialization without 'to' */
	char *notify;              /* NODE "+notify" */
	const struct jid *from;    /* the owner */
	unsigned sent;
	struct xel *whole;         /* the message parsed whole, for
	                              contacts on other servers (NULL
	                              until one needs it) */
};

/* A pubsub#event message from owner; inner is the serialized content
 * of <event/> (trusted: our own serialization). */
static void
event_init(struct event *ev, const struct jid *owner, const char *bare,
    const char *node, const char *inner, size_t len)
{
	char id[40];

	memset(ev, 0, sizeof(ev[0]));
	ev->from = owner;
	ev->notify = xasprintf("%s+notify", node);
	snprintf(id, sizeof(id), "pep-%" PRIx64 "-%x",
	    (uint64_t)time(NULL), ++id_serial);
	ev->st = xel_new(arena_new(512), "message", NS_CLIENT);
	xel_set_attr(ev->st, "from", bare);
	xel_set_attr(ev->st, "type", "headline");
	xel_set_attr(ev->st, "id", id);
	xel_add(ev->st, "event", NS_PUBSUB_EVENT);
	buf_init(&ev->bytes);
	buf_adds(&ev->bytes, " from='");
	buf_add_xml_escaped(&ev->bytes, bare, strlen(bare), 1);
	buf_printf(&ev->bytes, "' type='headline' id='%s'><event xmlns='"
	    NS_PUBSUB_EVENT "'>", id);
	buf_add(&ev->bytes, inner, len);
	buf_adds(&ev->bytes, "</event></message>");
}

static void
event_done(struct event *ev)
{
	if (ev->whole)
		arena_free(ev->whole->arena);
	buf_free(&ev->bytes);
	arena_free(ev->st->arena);
	free(ev->notify);
}

/* One copy to o if it is available and interested. */
static void
event_send(struct event *ev, struct session *o)
{
	if (!o->available || o->closing || !caps_has(o->caps, ev->notify))
		return;
	xel_set_attr(ev->st, "to", o->full);
	if (hook_run_deliver(o, ev->st, ev->from) == HOOK_HANDLED)
		return;
	session_send_fanout(o, ev->st, o->full, buf_head(&ev->bytes),
	    buf_avail(&ev->bytes));
	ev->sent++;
}

/* The parser's limits for len bytes of our own serialization. */
static struct xml_limits
own_limits(size_t len)
{
	const struct conf_limits *lim = &xmppd_conf->limits;
	struct xml_limits xl = { 0 };

	xl.max_stanza = len + 1;
	xl.max_depth = lim->depth;
	xl.max_attrs = lim->attributes;
	xl.max_memory = 64 * len + 65536;
	return xl;
}

/* Our own serialization (a message, or a stored payload) parsed back
 * into an element, or NULL (logged). */
static struct xel *
parse_own(const char *data, size_t len)
{
	struct xml_limits xl = own_limits(len);
	struct xel *p;

	if ((p = xml_parse_element(data, len, NS_CLIENT, &xl)) == NULL)
		log_warnx("pep: an event of ours does not parse");
	return p;
}

/* One copy to full, a contact's resource on another server, over
 * server-to-server (its caps carry NODE+notify, checked by the caller).
 * The element is parsed once per event from its serialization. */
static void
event_send_remote(struct event *ev, const char *full)
{
	if (ev->whole == NULL) {
		struct buf b;

		buf_init(&b);
		buf_adds(&b, "<message xmlns='" NS_CLIENT "'");
		buf_add(&b, buf_head(&ev->bytes), buf_avail(&ev->bytes));
		ev->whole = parse_own(buf_head(&b), buf_avail(&b));
		buf_free(&b);
		if (ev->whole == NULL)
			return;
	}
	xel_set_attr(ev->whole, "to", full);
	router_route(ev->whole);
	ev->sent++;
}

/* The resources of contacts on other servers that want ev (NODE+notify
 * in their verified caps), copied. */
struct remote_fan {
	const char *notify;
	char **v;
	size_t n;
};

static void
collect_remote(const char *full, const struct caps *c, void *arg)
{
	struct remote_fan *rf = arg;

	if (!caps_has(c, rf->notify))
		return;
	rf->v = xreallocarray(rf->v, rf->n + 1, sizeof(*rf->v));
	rf->v[rf->n++] = xstrdup(full);
}

/* Whether the contact whose resource full is (a full JID) receives
 * the owner's presence and is admitted by cfg's access model, by the
 * owner's roster r: what collect_contact asks of a local contact. */
static int
remote_admitted(const struct roster *r, const struct pep_config *cfg,
    const char *full)
{
	const char *slash = strchr(full, '/');
	const struct roster_item *it;
	struct pep_standing st = { 0 };
	char *bare;

	if (r == NULL || slash == NULL)
		return 0;
	bare = xstrndup(full, (size_t)(slash - full));
	it = roster_find(r, bare);
	free(bare);
	if (it == NULL || !(it->sub & SUB_FROM))
		return 0;
	st.item = (it->sub & SUB_ITEM) != 0;
	st.from = 1;
	st.groups = it->groups;
	st.ngroups = it->ngroups;
	return pep_access_check(cfg, &st) == PEP_ALLOWED;
}

struct fan {
	struct event *ev;
	const struct pep_config *cfg;
	char **list;
	size_t n;
};

static void
collect_contact(const struct roster_item *it, void *arg)
{
	struct fan *f = arg;
	struct pep_standing st = { 0 };

	if (!(it->sub & SUB_FROM))
		return;
	st.item = (it->sub & SUB_ITEM) != 0;
	st.from = 1;
	st.groups = it->groups;
	st.ngroups = it->ngroups;
	if (pep_access_check(f->cfg, &st) != PEP_ALLOWED)
		return;
	f->list = xreallocarray(f->list, f->n + 1, sizeof(*f->list));
	f->list[f->n++] = xstrdup(it->jid);
}

/*
 * XEP-0163 §4.3.2: to the owner's available resources and to the
 * contacts who receive the owner's presence and whom the access model
 * admits, each resource with NODE+notify: local sessions, and the
 * resources of contacts on other servers whose available presence
 * reached the owner (mod_caps.c keeps them, with their caps resolved
 * over server-to-server), addressed to their full JIDs.
 */
static void
event_fan_out(struct event *ev, const char *user, const char *host,
    const struct pep_config *cfg)
{
	struct roster *r = roster_cached(user, host);
	struct fan f = { ev, cfg, NULL, 0 };
	struct remote_fan rf = { ev->notify, NULL, 0 };

	for (struct session *o = sm_find_bare(user, host), *n; o; o = n) {
		n = o->next;
		event_send(ev, o);
	}
	if (r != NULL && cfg->access != PEP_ACCESS_WHITELIST)
		roster_foreach(r, collect_contact, &f);
	/* Collected before anything is sent: a send that fails at once
	 * drops a remote resource (caps_remote_drop). */
	if (r != NULL && cfg->access != PEP_ACCESS_WHITELIST)
		caps_remote_foreach(user, host, collect_remote, &rf);
	for (size_t i = 0; i < rf.n; i++) {
		/* XEP-0191 §3.3: nothing to a JID the owner blocks (local
		 * copies meet the delivery filter instead). */
		if (remote_admitted(r, cfg, rf.v[i]) &&
		    !blocking_blocks(user, host, rf.v[i]))
			event_send_remote(ev, rf.v[i]);
		free(rf.v[i]);
	}
	free(rf.v);
	for (size_t i = 0; i < f.n; i++) {
		const char *at = strchr(f.list[i], '@');

		if (at != NULL && conf_host_find(xmppd_conf, at + 1) != NULL)
			for (struct session *o = sm_find_bare_str(f.list[i]),
			    *n; o; o = n) {
				n = o->next;
				event_send(ev, o);
			}
		free(f.list[i]);
	}
	free(f.list);
}

/* "<items node='N'>" + body + "</items>" into b. */
static void
items_open(struct buf *b, const char *node)
{
	buf_adds(b, "<items node='");
	buf_add_xml_escaped(b, node, strlen(node), 1);
	buf_adds(b, "'>");
}

static void
notify_publish(const char *user, const char *host, const char *node,
    const struct pep_config *cfg, const char *id, const char *payload,
    size_t len)
{
	struct jid owner = { 0 };
	struct event ev;
	struct buf b;
	char *bare = xasprintf("%s@%s", user, host);

	if (jid_parse(&owner, bare) < 0) {
		free(bare);
		return;
	}
	buf_init(&b);
	items_open(&b, node);
	buf_adds(&b, "<item id='");
	buf_add_xml_escaped(&b, id, strlen(id), 1);
	buf_adds(&b, "'>");
	buf_add(&b, payload, len);
	buf_adds(&b, "</item></items>");
	event_init(&ev, &owner, bare, node, buf_head(&b), buf_avail(&b));
	event_fan_out(&ev, user, host, cfg);
	event_done(&ev);
	buf_free(&b);
	free(bare);
	jid_free(&owner);
}

/* A retraction, purge or deletion event (inner: the <event/> child). */
static void
notify_other(const char *user, const char *host, const char *node,
    const struct pep_config *cfg, const char *inner, size_t len)
{
	struct jid owner = { 0 };
	struct event ev;
	char *bare = xasprintf("%s@%s", user, host);

	if (jid_parse(&owner, bare) < 0) {
		free(bare);
		return;
	}
	event_init(&ev, &owner, bare, node, inner, len);
	event_fan_out(&ev, user, host, cfg);
	event_done(&ev);
	free(bare);
	jid_free(&owner);
}

static void
notify_retract(const char *user, const char *host, const char *node,
    const struct pep_config *cfg, const char *id)
{
	struct buf b;

	buf_init(&b);
	items_open(&b, node);
	buf_adds(&b, "<retract id='");
	buf_add_xml_escaped(&b, id, strlen(id), 1);
	buf_adds(&b, "'/></items>");
	notify_other(user, host, node, cfg, buf_head(&b), buf_avail(&b));
	buf_free(&b);
}

/* <purge node/> or <delete node/> (XEP-0060 §8.4.2, §8.5.2). */
static void
notify_node(const char *user, const char *host, const char *node,
    const struct pep_config *cfg, const char *what)
{
	struct buf b;

	buf_init(&b);
	buf_printf(&b, "<%s node='", what);
	buf_add_xml_escaped(&b, node, strlen(node), 1);
	buf_adds(&b, "'/>");
	notify_other(user, host, node, cfg, buf_head(&b), buf_avail(&b));
	buf_free(&b);
}

/* Publish. */

static void
publish_done(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_write_result *r)
{
	struct op *o = op_take(tag);
	struct xel *res, *p;

	(void)owner;
	if (o == NULL)
		return;
	if (st == STORE_EXISTS) {
		const char *why = r->refused == PEP_REFUSED_PRECONDITION ?
		    "precondition" : r->refused == PEP_REFUSED_NODES ?
		    "pep-nodes" : "pep-size";

		log_info("pep: %s@%s: publish to %s refused (%s)", o->user,
		    o->host, o->node, why);
		if (r->refused == PEP_REFUSED_PRECONDITION)
			op_error(o, "conflict", "precondition-not-met");
		else if (r->refused == PEP_REFUSED_NODES)
			op_error(o, "policy-violation", "max-nodes-exceeded");
		else
			op_error(o, "not-acceptable", "payload-too-big");
	} else if (st != STORE_OK) {
		op_store_error(o, st);
	} else {
		if (o->iq) {
			res = stanza_iq_result(o->iq);
			p = xel_add(xel_add(res, "pubsub", NS_PUBSUB),
			    "publish", NS_PUBSUB);
			xel_set_attr(p, "node", o->node);
			xel_set_attr(xel_add(p, "item", NS_PUBSUB), "id",
			    o->id);
			op_reply(o, res);
		}
		cache_publish(o->user, o->host, o->node, &r->cfg, o->id,
		    o->payload, o->len, o->stamp);
		notify_publish(o->user, o->host, o->node, &r->cfg, o->id,
		    o->payload, o->len);
		hook_run_pep_event(o->user, o->host, o->node, o->id,
		    o->payload_el, o->sid == 0);
	}
	op_free(o);
}

/* A new item id: the time and a counter, unique on this server. */
static char *
new_item_id(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return xasprintf("%" PRIx64 "%04x", (uint64_t)ts.tv_sec * 1000000 +
	    (uint64_t)ts.tv_nsec / 1000, ++id_serial & 0xffff);
}

/* Submit a publish of payload (an element) for op o. */
static void
publish_submit(struct op *o, const struct xel *payload,
    const struct pep_config *cfg, unsigned require)
{
	const struct conf_limits *lim = &xmppd_conf->limits;
	struct pep_publish p = { 0 };
	struct buf b;

	if (o->payload == NULL) {
		buf_init(&b);
		xel_serialize(payload, &b, "");
		o->len = buf_avail(&b);
		o->payload = buf_strdup(&b);
		buf_free(&b);
	}
	p.user = o->user;
	p.host = o->host;
	p.node = o->node;
	p.create = cfg;
	p.id = o->id;
	p.publisher = NULL;
	p.payload = o->payload;
	p.len = o->len;
	o->stamp = (int64_t)time(NULL) * 1000;
	p.stamp_ms = o->stamp;
	p.require = require;
	p.items_max = lim->pep_items;
	p.nodes_max = lim->pep_nodes;
	p.account_max = lim->pep_size;
	pep_publish(&p, publish_done, o->sid, op_add(o));
}

static void
handle_publish(struct session *s, struct xel *iq, const struct owner *ow,
    struct xel *pubsub, struct xel *pub)
{
	const char *node = xel_attr(pub, "node");
	struct xel *item = xel_child(pub, "item", NS_PUBSUB), *payload;
	struct xel *opts = xel_child(pubsub, "publish-options", NS_PUBSUB);
	struct pep_config cfg;
	unsigned mask = 0;
	const char *err, *id;
	struct op *o;
	struct buf b;

	if (!ow->self) {
		reply_error(s, iq, "forbidden", NULL, NULL);
		return;
	}
	if (!name_ok(node)) {
		reply_error(s, iq, "bad-request", "nodeid-required", NULL);
		return;
	}
	/* XEP-0060 §7.1.3.6, §7.1.3.7: one item with one payload. */
	if (item == NULL) {
		reply_error(s, iq, "bad-request", "item-required", NULL);
		return;
	}
	if (xel_next(item, "item", NS_PUBSUB) != NULL ||
	    xel_count_elems(pub) != 1 || xel_count_elems(item) > 1) {
		reply_error(s, iq, "bad-request", "invalid-payload", NULL);
		return;
	}
	if ((payload = xel_first_elem(item)) == NULL) {
		reply_error(s, iq, "bad-request", "payload-required", NULL);
		return;
	}
	if (payload->ns[0] == '\0') {
		reply_error(s, iq, "bad-request", "invalid-payload", NULL);
		return;
	}
	id = xel_attr(item, "id");
	if (id != NULL && !name_ok(id)) {
		reply_error(s, iq, "bad-request", NULL, NULL);
		return;
	}
	pep_config_default(&cfg);
	if (opts != NULL) {
		struct xel *x = xel_child(opts, "x", NS_XDATA);

		if (x == NULL || xel_count_elems(opts) != 1) {
			pep_config_free(&cfg);
			reply_error(s, iq, "bad-request", NULL, NULL);
			return;
		}
		if ((err = form_read(x, FORM_PUBLISH_OPTIONS, &cfg, &mask)) !=
		    NULL) {
			pep_config_free(&cfg);
			/* XEP-0060 §7.1.5: options the service cannot
			 * apply are an unmet precondition. */
			reply_error(s, iq, strcmp(err, "bad-request") == 0 ?
			    "bad-request" : "conflict",
			    strcmp(err, "bad-request") == 0 ? NULL :
			    "precondition-not-met", NULL);
			return;
		}
	}
	/* The size counted is the payload as stored (serialized). */
	buf_init(&b);
	xel_serialize(payload, &b, "");
	if (buf_avail(&b) > xmppd_conf->limits.pep_item_size) {
		log_info(SESSION_LOG_FMT ": pep: item of %zu bytes for %s "
		    "refused (pep-item-size %zu)", SESSION_LOG_ARGS(s),
		    buf_avail(&b), node, xmppd_conf->limits.pep_item_size);
		buf_free(&b);
		pep_config_free(&cfg);
		reply_error(s, iq, "not-acceptable", "payload-too-big", NULL);
		return;
	}
	/* The answer needs the request's addressing only; observers
	 * (hook_run_pep_event) get a copy of the payload. */
	o = op_new(OP_PUBLISH, s, NULL, ow->jid.node, ow->jid.domain, node);
	o->iq = stanza_iq_skeleton(iq);
	o->id = id ? xstrdup(id) : new_item_id();
	o->len = buf_avail(&b);
	o->payload = buf_strdup(&b);
	buf_free(&b);
	o->a = arena_new(o->len + 256);
	o->payload_el = xel_copy(o->a, payload);
	publish_submit(o, payload, &cfg, mask);
	pep_config_free(&cfg);
}

void
pep_server_publish(const char *user, const char *host, const char *node,
    const char *id, const struct xel *payload, const struct pep_config *cfg,
    unsigned require)
{
	struct pep_config def;
	struct op *o;

	if (!enabled)
		return;
	o = op_new(OP_PUBLISH, NULL, NULL, user, host, node);
	o->id = xstrdup(id);
	o->a = arena_new(1024);
	o->payload_el = xel_copy(o->a, payload);
	pep_config_default(&def);
	publish_submit(o, payload, cfg ? cfg : &def, require);
}

/* Retract. */

static void
retract_done(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_write_result *r)
{
	struct op *o = op_take(tag);

	(void)owner;
	if (o == NULL)
		return;
	if (st != STORE_OK)
		op_store_error(o, st);
	else if (!r->found)
		op_error(o, "item-not-found", NULL);
	else {
		if (o->iq)
			op_reply(o, stanza_iq_result(o->iq));
		cache_change(o->user, o->host, o->node, OP_RETRACT, o->id);
		/* XEP-0060 §7.2.2.1: notify="true" asks for it, and the
		 * node's notify_retract does too. */
		if (o->notify || r->cfg.notify_retract)
			notify_retract(o->user, o->host, o->node, &r->cfg,
			    o->id);
		hook_run_pep_event(o->user, o->host, o->node, o->id, NULL,
		    o->sid == 0);
	}
	op_free(o);
}

static void
handle_retract(struct session *s, struct xel *iq, const struct owner *ow,
    struct xel *ret)
{
	const char *node = xel_attr(ret, "node"), *notify;
	struct xel *item = xel_child(ret, "item", NS_PUBSUB);
	struct op *o;
	int n = 0;

	if (!ow->self) {
		reply_error(s, iq, "forbidden", NULL, NULL);
		return;
	}
	if (!name_ok(node)) {
		reply_error(s, iq, "bad-request", "nodeid-required", NULL);
		return;
	}
	if (item == NULL || !name_ok(xel_attr(item, "id"))) {
		reply_error(s, iq, "bad-request", "item-required", NULL);
		return;
	}
	o = op_new(OP_RETRACT, s, iq, ow->jid.node, ow->jid.domain, node);
	o->id = xstrdup(xel_attr(item, "id"));
	if ((notify = xel_attr(ret, "notify")) != NULL &&
	    parse_bool(notify, &n) == 0)
		o->notify = n;
	pep_retract(o->user, o->host, o->node, o->id, retract_done, o->sid,
	    op_add(o));
}

void
pep_server_retract(const char *user, const char *host, const char *node,
    const char *id)
{
	struct op *o;

	if (!enabled)
		return;
	o = op_new(OP_RETRACT, NULL, NULL, user, host, node);
	o->id = xstrdup(id);
	pep_retract(user, host, node, id, retract_done, 0, op_add(o));
}

int
pep_enabled(void)
{
	return enabled;
}

void
pep_set_legacy_bookmarks(pep_legacy_bookmarks_fn fn)
{
	legacy_bookmarks = fn;
}

/* Reads. */

/* The error for a verdict other than PEP_ALLOWED (XEP-0060 §6.5.9). */
static void
verdict_error(struct op *o, enum pep_verdict v)
{
	switch (v) {
	case PEP_PRESENCE_REQUIRED:
		op_error(o, "not-authorized", "presence-subscription-required");
		break;
	case PEP_NOT_IN_GROUP:
		op_error(o, "not-authorized", "not-in-roster-group");
		break;
	default:
		op_error(o, "not-allowed", "closed-node");
		break;
	}
}

/* Append a stored payload (our own serialization) to parent. */
static void
append_payload(struct xel *parent, const char *payload, size_t len)
{
	struct xml_limits xl = own_limits(len);
	struct xel *p;

	if ((p = xml_parse_element(payload, len, "", &xl)) == NULL) {
		log_warnx("pep: a stored item does not parse");
		return;
	}
	xel_append_copy(parent, p);
	arena_free(p->arena);
}

static void
items_done(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_read_result *r)
{
	struct op *o = op_take(tag);
	struct xel *res, *items;

	(void)owner;
	if (o == NULL)
		return;
	if (st == STORE_NOT_FOUND || (st == STORE_OK && r->blocked))
		/* Nothing to reveal (XEP-0191 §3.3, RFC 6121 §8.5.1). */
		op_error(o, "service-unavailable", NULL);
	else if (st != STORE_OK)
		op_store_error(o, st);
	else if (r->nnodes == 0)
		op_error(o, "item-not-found", NULL);
	else if (r->nodes[0].verdict != PEP_ALLOWED)
		verdict_error(o, r->nodes[0].verdict);
	else {
		res = stanza_iq_result(o->iq);
		items = xel_add(xel_add(res, "pubsub", NS_PUBSUB), "items",
		    NS_PUBSUB);
		xel_set_attr(items, "node", o->node);
		for (size_t i = 0; i < r->nitems; i++) {
			struct xel *it = xel_add(items, "item", NS_PUBSUB);

			xel_set_attr(it, "id", r->items[i].id);
			if (r->items[i].payload)
				append_payload(it, r->items[i].payload,
				    r->items[i].len);
		}
		op_reply(o, res);
	}
	op_free(o);
}

static void
handle_items(struct session *s, struct xel *iq, const struct owner *ow,
    struct xel *items)
{
	const char *node = xel_attr(items, "node"), *max;
	struct pep_read q = { 0 };
	const char **ids = NULL;
	char *forms[4];
	struct op *o;

	if (!name_ok(node)) {
		reply_error(s, iq, "bad-request", "nodeid-required", NULL);
		return;
	}
	if ((max = xel_attr(items, "max_items")) != NULL) {
		char *end;
		unsigned long n = strtoul(max, &end, 10);

		if (*max < '0' || *max > '9' || *end != '\0' || n == 0) {
			reply_error(s, iq, "bad-request", NULL, NULL);
			return;
		}
		q.max_items = n > 1000000 ? 1000000 : (unsigned)n;
	}
	for (struct xel *it = xel_child(items, "item", NS_PUBSUB); it;
	    it = xel_next(it, "item", NS_PUBSUB)) {
		if (!name_ok(xel_attr(it, "id")) ||
		    q.nids == xmppd_conf->limits.pep_items) {
			free(ids);
			reply_error(s, iq, "bad-request", NULL, NULL);
			return;
		}
		ids = xreallocarray(ids, q.nids + 1, sizeof(*ids));
		ids[q.nids++] = xel_attr(it, "id");
	}
	requester_forms(s, forms);
	q.user = ow->jid.node;
	q.host = ow->jid.domain;
	q.kind = PEP_READ_ITEMS;
	q.node = node;
	q.requester = s->bare;
	for (int i = 0; i < 4; i++)
		q.forms[i] = forms[i];
	q.ids = ids;
	/* What fits in one stanza, the newest first. */
	q.max_bytes = xmppd_conf->limits.stanza_size / 2;
	o = op_new(OP_ITEMS, s, iq, ow->jid.node, ow->jid.domain, node);
	pep_read(&q, items_done, s->id, op_add(o));
	forms_free(forms);
	free(ids);
}

/* Node creation, configuration, deletion, purge. */

static void
node_done(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_write_result *r)
{
	struct op *o = op_take(tag);

	(void)owner;
	if (o == NULL)
		return;
	if (st == STORE_EXISTS && r->refused == PEP_REFUSED_NODES) {
		log_info("pep: %s@%s: node %s refused (pep-nodes)", o->user,
		    o->host, o->node);
		op_error(o, "policy-violation", "max-nodes-exceeded");
	} else if (st == STORE_EXISTS)
		op_error(o, "conflict", NULL);
	else if (st != STORE_OK)
		op_store_error(o, st);
	else {
		if (o->iq)
			op_reply(o, stanza_iq_result(o->iq));
		if (o->kind == OP_CREATE)
			cache_publish_node(o->user, o->host, o->node, &r->cfg);
		else
			cache_change(o->user, o->host, o->node, o->kind, NULL);
		if (o->kind == OP_PURGE) {
			notify_node(o->user, o->host, o->node, &r->cfg,
			    "purge");
			hook_run_pep_event(o->user, o->host, o->node, NULL,
			    NULL, o->sid == 0);
		} else if (o->kind == OP_DELETE) {
			if (r->cfg.notify_delete)
				notify_node(o->user, o->host, o->node,
				    &r->cfg, "delete");
			hook_run_pep_event(o->user, o->host, o->node, NULL,
			    NULL, o->sid == 0);
		}
	}
	op_free(o);
}

static void
node_op(struct session *s, struct xel *iq, const struct owner *ow,
    const char *node, enum op_kind kind, enum pep_node_op op,
    const struct pep_config *cfg)
{
	struct op *o = op_new(kind, s, iq, ow->jid.node, ow->jid.domain,
	    node);

	pep_node_write(o->user, o->host, o->node, op, cfg,
	    xmppd_conf->limits.pep_items, xmppd_conf->limits.pep_nodes,
	    node_done, s->id, op_add(o));
}

/* A configuration from an optional <configure><x/></configure> over
 * the defaults: 0, or -1 after answering with the error. */
static int
config_from(struct session *s, struct xel *iq, const struct xel *configure,
    struct pep_config *cfg)
{
	struct xel *x = configure ? xel_child(configure, "x", NS_XDATA) :
	    NULL;
	const char *err;
	unsigned mask;

	if (x == NULL)
		return 0;
	if ((err = form_read(x, FORM_NODE_CONFIG, cfg, &mask)) != NULL) {
		reply_error(s, iq, err, NULL, NULL);
		return -1;
	}
	return 0;
}

static void
handle_create(struct session *s, struct xel *iq, const struct owner *ow,
    struct xel *pubsub, struct xel *create)
{
	const char *node = xel_attr(create, "node");
	struct pep_config cfg;

	if (!ow->self) {
		reply_error(s, iq, "forbidden", NULL, NULL);
		return;
	}
	/* XEP-0163: no instant nodes. */
	if (!name_ok(node)) {
		reply_error(s, iq, "not-acceptable", "nodeid-required", NULL);
		return;
	}
	pep_config_default(&cfg);
	if (config_from(s, iq, xel_child(pubsub, "configure", NS_PUBSUB),
	        &cfg) == 0)
		node_op(s, iq, ow, node, OP_CREATE, PEP_NODE_CREATE, &cfg);
	pep_config_free(&cfg);
}

static void
configure_get_done(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_read_result *r)
{
	struct op *o = op_take(tag);
	struct xel *res, *c;

	(void)owner;
	if (o == NULL)
		return;
	if (st != STORE_OK)
		op_store_error(o, st);
	else if (r->nnodes == 0)
		op_error(o, "item-not-found", NULL);
	else {
		res = stanza_iq_result(o->iq);
		c = xel_add(xel_add(res, "pubsub", NS_PUBSUB_OWNER),
		    "configure", NS_PUBSUB_OWNER);
		xel_set_attr(c, "node", o->node);
		form_write(c, &r->nodes[0].cfg);
		op_reply(o, res);
	}
	op_free(o);
}

/* A configuration set: the node's current configuration read first, so
 * that the fields not submitted keep their values. */
static void
configure_read_done(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_read_result *r)
{
	struct op *o = op_take(tag);
	struct pep_config cfg;
	struct xel *conf;
	const char *err;
	unsigned mask;

	(void)owner;
	if (o == NULL)
		return;
	if (st != STORE_OK || r->nnodes == 0) {
		if (st == STORE_OK)
			op_error(o, "item-not-found", NULL);
		else
			op_store_error(o, st);
		op_free(o);
		return;
	}
	if (sm_find_id(o->sid) == NULL) {
		op_free(o);
		return;
	}
	conf = xel_child(xel_first_elem(o->iq), "configure", NS_PUBSUB_OWNER);
	pep_config_copy(&cfg, &r->nodes[0].cfg);
	if ((err = form_read(xel_child(conf, "x", NS_XDATA),
	         FORM_NODE_CONFIG, &cfg, &mask)) != NULL) {
		op_error(o, err, NULL);
		op_free(o);
	} else {
		o->kind = OP_CONFIGURE_SET;
		pep_node_write(o->user, o->host, o->node,
		    PEP_NODE_CONFIGURE, &cfg, xmppd_conf->limits.pep_items,
		    0, node_done, o->sid, op_add(o));
	}
	pep_config_free(&cfg);
}

static void
handle_configure(struct session *s, struct xel *iq, const struct owner *ow,
    struct xel *conf, int set)
{
	const char *node = xel_attr(conf, "node");
	struct pep_read q = { 0 };
	struct xel *x = xel_child(conf, "x", NS_XDATA);
	struct op *o;

	if (!ow->self) {
		reply_error(s, iq, "forbidden", NULL, NULL);
		return;
	}
	if (!name_ok(node)) {
		reply_error(s, iq, "bad-request", "nodeid-required", NULL);
		return;
	}
	if (set && x == NULL) {
		reply_error(s, iq, "bad-request", NULL, NULL);
		return;
	}
	if (set && x && (xel_attr(x, "type") != NULL &&
	        strcmp(xel_attr(x, "type"), "cancel") == 0)) {
		session_reply(s, stanza_iq_result(iq));
		return;
	}
	q.user = ow->jid.node;
	q.host = ow->jid.domain;
	q.kind = PEP_READ_NODE;
	q.node = node;
	q.requester = s->bare;
	o = op_new(set ? OP_CONFIGURE_SET : OP_CONFIGURE_GET, s, iq,
	    ow->jid.node, ow->jid.domain, node);
	pep_read(&q, set ? configure_read_done : configure_get_done, s->id,
	    op_add(o));
}

static void
handle_default(struct session *s, struct xel *iq)
{
	struct xel *r = stanza_iq_result(iq), *d;
	struct pep_config cfg;

	pep_config_default(&cfg);
	d = xel_add(xel_add(r, "pubsub", NS_PUBSUB_OWNER), "default",
	    NS_PUBSUB_OWNER);
	form_write(d, &cfg);
	session_reply(s, r);
}

/* Dispatch. */

static int
is_type(const struct xel *iq, const char *type)
{
	const char *t = xel_attr(iq, "type");

	return t && strcmp(t, type) == 0;
}

/* XEP-0060 requests this service does not implement, with the feature
 * each would need (§7.1.3 style <unsupported feature/>). */
static const struct {
	const char *name, *feature;
} unsupported[] = {
	{ "subscribe", "subscribe" },
	{ "unsubscribe", "subscribe" },
	{ "options", "subscription-options" },
	{ "subscriptions", "retrieve-subscriptions" },
	{ "affiliations", "retrieve-affiliations" },
};

static enum hook_result
handle_pubsub(struct session *s, struct xel *iq, enum iq_target target)
{
	struct xel *pubsub = xel_first_elem(iq), *act = NULL;
	int set = is_type(iq, "set");
	struct owner ow;

	if (target != IQ_TO_BARE)
		return HOOK_PASS;
	if (owner_of(s, iq, &ow) < 0) {
		reply_error(s, iq, "jid-malformed", NULL, NULL);
		return HOOK_HANDLED;
	}
	/* The action is the first child that is not an option of it. */
	for (struct xel *c = xel_first_elem(pubsub); c; c = c->next)
		if (c->name && strcmp(c->ns, NS_PUBSUB) == 0 &&
		    strcmp(c->name, "publish-options") != 0 &&
		    strcmp(c->name, "configure") != 0) {
			act = c;
			break;
		}
	if (act == NULL && (act = xel_child(pubsub, "configure",
	                        NS_PUBSUB)) == NULL) {
		reply_error(s, iq, "bad-request", NULL, NULL);
		goto done;
	}
	if (set && strcmp(act->name, "publish") == 0)
		handle_publish(s, iq, &ow, pubsub, act);
	else if (set && strcmp(act->name, "retract") == 0)
		handle_retract(s, iq, &ow, act);
	else if (!set && strcmp(act->name, "items") == 0)
		handle_items(s, iq, &ow, act);
	else if (set && strcmp(act->name, "create") == 0)
		handle_create(s, iq, &ow, pubsub, act);
	else {
		const char *feature = NULL;

		for (size_t i = 0; i < nitems(unsupported); i++)
			if (strcmp(act->name, unsupported[i].name) == 0)
				feature = unsupported[i].feature;
		if (strcmp(act->name, "configure") == 0)
			feature = "subscription-options";
		if (feature)
			reply_error(s, iq, "feature-not-implemented",
			    "unsupported", feature);
		else
			reply_error(s, iq, "bad-request", NULL, NULL);
	}
done:
	owner_free(&ow);
	return HOOK_HANDLED;
}

static enum hook_result
handle_owner(struct session *s, struct xel *iq, enum iq_target target)
{
	struct xel *act = xel_first_elem(xel_first_elem(iq));
	int set = is_type(iq, "set");
	const char *node;
	struct owner ow;

	if (target != IQ_TO_BARE)
		return HOOK_PASS;
	if (owner_of(s, iq, &ow) < 0) {
		reply_error(s, iq, "jid-malformed", NULL, NULL);
		return HOOK_HANDLED;
	}
	if (act == NULL || strcmp(act->ns, NS_PUBSUB_OWNER) != 0) {
		reply_error(s, iq, "bad-request", NULL, NULL);
		goto done;
	}
	node = xel_attr(act, "node");
	if (strcmp(act->name, "configure") == 0)
		handle_configure(s, iq, &ow, act, set);
	else if (!set && strcmp(act->name, "default") == 0)
		handle_default(s, iq);
	else if (set && (strcmp(act->name, "delete") == 0 ||
	             strcmp(act->name, "purge") == 0)) {
		int del = act->name[0] == 'd';

		if (!ow.self)
			reply_error(s, iq, "forbidden", NULL, NULL);
		else if (!name_ok(node))
			reply_error(s, iq, "bad-request", "nodeid-required",
			    NULL);
		else
			node_op(s, iq, &ow, node, del ? OP_DELETE : OP_PURGE,
			    del ? PEP_NODE_DELETE : PEP_NODE_PURGE, NULL);
	} else if (strcmp(act->name, "subscriptions") == 0 ||
	    strcmp(act->name, "affiliations") == 0)
		reply_error(s, iq, "feature-not-implemented", "unsupported",
		    act->name[0] == 's' ? "manage-subscriptions" :
		    "modify-affiliations");
	else
		reply_error(s, iq, "bad-request", NULL, NULL);
done:
	owner_free(&ow);
	return HOOK_HANDLED;
}

/* disco#items on a bare JID: the nodes the requester may see. */
static void
disco_items_done(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_read_result *r)
{
	struct op *o = op_take(tag);
	struct xel *res, *q;
	char *bare;

	(void)owner;
	if (o == NULL)
		return;
	if (st != STORE_OK && st != STORE_NOT_FOUND) {
		op_store_error(o, st);
		op_free(o);
		return;
	}
	bare = xasprintf("%s@%s", o->user, o->host);
	res = stanza_iq_result(o->iq);
	q = xel_add(res, "query", NS_DISCO_ITEMS);
	/* XEP-0030 §8 rule 2: an empty set for a missing account and for
	 * one that blocks the requester. */
	for (size_t i = 0; st == STORE_OK && !r->blocked && i < r->nnodes;
	    i++) {
		struct xel *it = xel_add(q, "item", NS_DISCO_ITEMS);

		xel_set_attr(it, "jid", bare);
		xel_set_attr(it, "node", r->nodes[i].node);
		if (r->nodes[i].cfg.title)
			xel_set_attr(it, "name", r->nodes[i].cfg.title);
	}
	free(bare);
	op_reply(o, res);
	op_free(o);
}

static enum hook_result
handle_disco_items(struct session *s, struct xel *iq, enum iq_target target)
{
	struct pep_read q = { 0 };
	char *forms[4];
	struct owner ow;
	struct op *o;

	if (target != IQ_TO_BARE || !is_type(iq, "get") ||
	    xel_attr(xel_first_elem(iq), "node") != NULL)
		return HOOK_PASS;
	if (owner_of(s, iq, &ow) < 0)
		return HOOK_PASS;
	requester_forms(s, forms);
	q.user = ow.jid.node;
	q.host = ow.jid.domain;
	q.kind = PEP_READ_NODES;
	q.requester = s->bare;
	for (int i = 0; i < 4; i++)
		q.forms[i] = forms[i];
	o = op_new(OP_DISCO_ITEMS, s, iq, ow.jid.node, ow.jid.domain, NULL);
	pep_read(&q, disco_items_done, s->id, op_add(o));
	forms_free(forms);
	owner_free(&ow);
	return HOOK_HANDLED;
}

/*
 * Last published items (XEP-0163 §4.3.4): when a session's capabilities
 * become known or gain a NODE+notify, the newest item of each such node
 * of its own account and of each local contact whose presence it
 * receives, as the node's send_last_published_item and access model
 * allow.
 */
struct last_ctx {
	const char **owners;
	size_t n;
};

static void
collect_to(const struct roster_item *it, void *arg)
{
	struct last_ctx *c = arg;
	const char *at = strchr(it->jid, '@');

	if (!(it->sub & SUB_TO) || at == NULL ||
	    conf_host_find(xmppd_conf, at + 1) == NULL)
		return;
	c->owners = xreallocarray(c->owners, c->n + 1, sizeof(*c->owners));
	c->owners[c->n++] = it->jid;
}

static void
stamp_format(char *stamp, size_t size, int64_t stamp_ms)
{
	time_t t = (time_t)(stamp_ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(stamp, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A last item's message from " from=" on (after "<message" and its
 * 'to'): the event and the time it was published (XEP-0060 §6.1.7). */
static void
last_bytes(struct buf *b, const char *owner, const char *node,
    const char *id, const char *payload, size_t len, const char *stamp)
{
	buf_adds(b, " from='");
	buf_add_xml_escaped(b, owner, strlen(owner), 1);
	buf_adds(b, "' type='headline'><event xmlns='" NS_PUBSUB_EVENT "'>");
	items_open(b, node);
	buf_adds(b, "<item id='");
	buf_add_xml_escaped(b, id, strlen(id), 1);
	buf_adds(b, "'>");
	buf_add(b, payload, len);
	buf_printf(b, "</item></items></event><delay xmlns='" NS_DELAY
	    "' stamp='%s'/></message>", stamp);
}

/*
 * One last item to s, from owner (a bare JID), as an event with the
 * time it was published (XEP-0060 §6.1.7), if s still wants the node.
 * The stored payload is our own serialization: it goes out as it is,
 * like a fan-out copy, and the delivery hooks see the message without
 * it (the filter drops it if the owner blocks s).
 */
static void
send_last(struct session *s, const char *owner, const char *node,
    const char *id, const char *payload, size_t len, int64_t stamp_ms)
{
	struct xel *m, *items;
	struct jid from = { 0 };
	char *notify, stamp[32];
	struct buf b;

	notify = xasprintf("%s+notify", node);
	if (!caps_has(s->caps, notify) || jid_parse(&from, owner) < 0) {
		free(notify);
		return;
	}
	free(notify);
	stamp_format(stamp, sizeof(stamp), stamp_ms);
	m = xel_new(arena_new(512), "message", NS_CLIENT);
	xel_set_attr(m, "from", owner);
	xel_set_attr(m, "to", s->full);
	xel_set_attr(m, "type", "headline");
	items = xel_add(xel_add(m, "event", NS_PUBSUB_EVENT), "items",
	    NS_PUBSUB_EVENT);
	xel_set_attr(items, "node", node);
	xel_set_attr(xel_add(m, "delay", NS_DELAY), "stamp", stamp);
	if (hook_run_deliver(s, m, &from) != HOOK_HANDLED) {
		buf_init(&b);
		last_bytes(&b, owner, node, id, payload, len, stamp);
		session_send_fanout(s, m, s->full, buf_head(&b),
		    buf_avail(&b));
		buf_free(&b);
	}
	arena_free(m->arena);
	jid_free(&from);
}

/* The same to full, a contact's resource on another server (its caps
 * checked by the caller), over server-to-server. */
static void
send_last_remote(const char *owner, const char *full, const char *node,
    const char *id, const char *payload, size_t len, int64_t stamp_ms)
{
	struct xel *m;
	struct buf b;
	char stamp[32];

	stamp_format(stamp, sizeof(stamp), stamp_ms);
	buf_init(&b);
	buf_adds(&b, "<message xmlns='" NS_CLIENT "' to='");
	buf_add_xml_escaped(&b, full, strlen(full), 1);
	buf_adds(&b, "'");
	last_bytes(&b, owner, node, id, payload, len, stamp);
	if ((m = parse_own(buf_head(&b), buf_avail(&b))) != NULL) {
		router_route(m);
		arena_free(m->arena);
	}
	buf_free(&b);
}

static void
last_done(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_last *v, size_t n)
{
	struct op *o = op_take(tag);
	struct session *s = sm_find_id(owner);

	if (o)
		op_free(o);
	if (o == NULL || st != STORE_OK || s == NULL || s->closing)
		return;
	for (size_t i = 0; i < n; i++)
		if (v[i].item.payload != NULL)
			send_last(s, v[i].owner, v[i].item.node, v[i].item.id,
			    v[i].item.payload, v[i].item.len,
			    v[i].item.stamp_ms);
}

/*
 * The same from the cache for an online owner: 1 when done, 0 when
 * storage must answer (the owner's nodes or roster are not loaded).
 * Blocks by the owner are the delivery filter's.
 */
static int
last_cached(struct session *s, const char *owner, char *const *nodes,
    size_t nn, int presence)
{
	const char *at = strchr(owner, '@');
	char user[1024];
	struct powner *po;
	struct pep_standing st = { 0 };
	struct roster *r = NULL;
	const struct roster_item *it = NULL;

	if (at == NULL || (size_t)(at - owner) >= sizeof(user))
		return 0;
	memcpy(user, owner, (size_t)(at - owner));
	user[at - owner] = '\0';
	if ((po = powner_find(user, at + 1)) == NULL || !po->loaded)
		return 0;
	if (strcmp(owner, s->bare) == 0)
		st.self = 1;
	else if ((r = roster_cached(user, at + 1)) == NULL)
		return 0;
	else if ((it = roster_find(r, s->bare)) != NULL) {
		st.item = (it->sub & SUB_ITEM) != 0;
		st.from = (it->sub & SUB_FROM) != 0;
		st.groups = it->groups;
		st.ngroups = it->ngroups;
	}
	/* A wanted node whose newest item is not cached: storage answers
	 * for the whole owner. */
	for (size_t i = 0; i < po->n; i++)
		for (size_t k = 0; po->v[i].big && k < nn; k++)
			if (strcmp(nodes[k], po->v[i].name) == 0)
				return 0;
	for (size_t i = 0; i < po->n; i++) {
		const struct cnode *c = &po->v[i];
		size_t k;

		if (c->last_id == NULL || c->cfg.send_last == PEP_SEND_NEVER ||
		    (presence &&
		        c->cfg.send_last != PEP_SEND_ON_SUB_AND_PRESENCE) ||
		    pep_access_check(&c->cfg, &st) != PEP_ALLOWED)
			continue;
		for (k = 0; k < nn && strcmp(nodes[k], c->name) != 0; k++)
			;
		if (k < nn)
			send_last(s, owner, c->name, c->last_id, c->last,
			    c->last_len, c->last_stamp);
	}
	return 1;
}

/* The nodes caps want (NODE+notify) that old's did not (old NULL:
 * all), malloc'ed, *n of them. */
static char **
wanted_nodes(const struct caps *caps, const struct caps *old, size_t *n)
{
	char **nodes = NULL;

	*n = 0;
	for (size_t i = 0; i < caps_count(caps); i++) {
		const char *f = caps_feature(caps, i);
		size_t len = strlen(f);

		if (len <= 7 || strcmp(f + len - 7, "+notify") != 0 ||
		    caps_has(old, f))
			continue;
		nodes = xreallocarray(nodes, *n + 1, sizeof(*nodes));
		nodes[(*n)++] = xstrndup(f, len - 7);
	}
	return nodes;
}

static void
nodes_free(char **nodes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(nodes[i]);
	free(nodes);
}

/*
 * Send s the last items of the nodes of from[] (bare JIDs, local) that it
 * wants: from the cache for online owners, in one storage job for the
 * others.  presence: s came online (on_sub_and_presence nodes only);
 * else interest appeared (on_sub nodes too).
 */
static void
send_last_items(struct session *s, const char *const *from, size_t no,
    char *const *nodes, size_t nn, int presence)
{
	struct pep_last_query q = { 0 };
	const char **stored = NULL;
	char *forms[4];
	size_t ns = 0;
	struct op *o;

	for (size_t i = 0; i < no; i++)
		if (!last_cached(s, from[i], nodes, nn, presence)) {
			stored = xreallocarray(stored, ns + 1,
			    sizeof(*stored));
			stored[ns++] = from[i];
		}
	if (ns == 0)
		return;
	requester_forms(s, forms);
	q.requester = s->bare;
	for (int i = 0; i < 4; i++)
		q.forms[i] = forms[i];
	q.owners = stored;
	q.nowners = ns;
	q.nodes = (const char *const *)nodes;
	q.nnodes = nn;
	q.presence = presence;
	o = op_new(OP_LAST, s, NULL, s->jid.node, s->jid.domain, NULL);
	pep_last_items(&q, last_done, s->id, op_add(o));
	forms_free(forms);
	free(stored);
}

static void
caps_changed(struct session *s, const struct caps *old)
{
	struct roster *r;
	struct last_ctx c = { NULL, 0 };
	char **nodes;
	size_t nn;

	if (s->caps == NULL || s->closing ||
	    (nodes = wanted_nodes(s->caps, old, &nn)) == NULL)
		return;
	c.owners = xreallocarray(NULL, 1, sizeof(*c.owners));
	c.owners[c.n++] = s->bare;
	if ((r = roster_cached(s->jid.node, s->jid.domain)) != NULL)
		roster_foreach(r, collect_to, &c);
	/* Capabilities known where there were none: the session came
	 * online (on_sub_and_presence nodes); a +notify gained by a new
	 * ver (mod_caps keeps the old one until it is verified): interest
	 * appeared (on_sub nodes too). */
	send_last_items(s, c.owners, c.n, nodes, nn, old == NULL);
	nodes_free(nodes, nn);
	free(c.owners);
}

/*
 * user@host approved contact's subscription (RFC 6121 §3.1.5): the
 * contact's sessions now receive the user's presence, so interest in
 * its nodes appears (XEP-0163 §4.3.4, XEP-0060 on_sub).
 */
static void
subscribed(const char *user, const char *host, const char *contact)
{
	char *owner = xasprintf("%s@%s", user, host);
	const char *from[1] = { owner };
	const char *at = strchr(contact, '@');

	if (at != NULL && conf_host_find(xmppd_conf, at + 1) == NULL) {
		/* A contact on another server: its resources that are
		 * available to the user (XEP-0060 on_sub). */
		remote_last_all(user, host, contact, 0);
		free(owner);
		return;
	}

	for (struct session *o = sm_find_bare_str(contact); o; o = o->next) {
		char **nodes;
		size_t nn;

		if (!o->available || o->closing || o->caps == NULL ||
		    (nodes = wanted_nodes(o->caps, NULL, &nn)) == NULL)
			continue;
		send_last_items(o, from, 1, nodes, nn, 0);
		nodes_free(nodes, nn);
	}
	free(owner);
}

/* The wanted caps of full (a remote resource available to
 * user@host) carry notify. */
struct remote_probe {
	const char *full, *notify;
	int yes;
};

static void
probe_remote(const char *full, const struct caps *c, void *arg)
{
	struct remote_probe *p = arg;

	if (strcmp(full, p->full) == 0 && caps_has(c, p->notify))
		p->yes = 1;
}

static int
remote_wants(const char *user, const char *host, const char *full,
    const char *node)
{
	char *notify = xasprintf("%s+notify", node);
	struct remote_probe p = { full, notify, 0 };

	caps_remote_foreach(user, host, probe_remote, &p);
	free(notify);
	return p.yes;
}

/* The last items storage read for a remote resource (o->id: its full
 * JID), if it still wants them. */
static void
last_remote_done(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_last *v, size_t n)
{
	struct op *o = op_take(tag);

	(void)owner;
	if (o == NULL)
		return;
	for (size_t i = 0; st == STORE_OK && i < n; i++)
		if (v[i].item.payload != NULL &&
		    !blocking_blocks(o->user, o->host, o->id) &&
		    remote_wants(o->user, o->host, o->id, v[i].item.node))
			send_last_remote(v[i].owner, o->id, v[i].item.node,
			    v[i].item.id, v[i].item.payload, v[i].item.len,
			    v[i].item.stamp_ms);
	op_free(o);
}

/* Read the newest items of nodes[nn] of user@host for full from storage
 * (with the access checks of pep_last_items against the stored roster),
 * then send them. */
static void
remote_last_stored(const char *user, const char *host, const char *full,
    const char *const *nodes, size_t nn, int presence)
{
	struct pep_last_query q = { 0 };
	struct jid j = { 0 };
	char *owner, *bare, *forms[4];
	const char *owner_list[1];
	struct op *o;

	if (jid_parse(&j, full) < 0 || j.resource == NULL) {
		jid_free(&j);
		return;
	}
	owner = xasprintf("%s@%s", user, host);
	owner_list[0] = owner;
	bare = jid_bare(&j);
	forms[0] = jid_full(&j);
	forms[1] = xstrdup(bare);
	forms[2] = xasprintf("%s/%s", j.domain, j.resource);
	forms[3] = xstrdup(j.domain);
	q.requester = bare;
	for (int i = 0; i < 4; i++)
		q.forms[i] = forms[i];
	q.owners = owner_list;
	q.nowners = 1;
	q.nodes = nodes;
	q.nnodes = nn;
	q.presence = presence;
	o = op_new(OP_LAST, NULL, NULL, user, host, NULL);
	o->id = xstrdup(full);
	pep_last_items(&q, last_remote_done, 0, op_add(o));
	forms_free(forms);
	free(bare);
	free(owner);
	jid_free(&j);
}

/*
 * The last items of user@host's nodes to full, a contact's resource on
 * another server that wants nodes[nn] (XEP-0163 §4.3.1, XEP-0060 §6.1.7):
 * presence: it became available (on_sub_and_presence nodes only), else
 * interest appeared.  Only to a contact who receives the owner's
 * presence (subscription 'from', as for notifications) and whom the
 * access model admits.  From the owner's cache (remote resources are
 * known only while the owner is online, and the first load sends them
 * what it missed: remote_after_load); items larger than the cache keeps
 * are read from storage.
 */
static void
remote_last_items(const char *user, const char *host, const char *full,
    char *const *nodes, size_t nn, int presence)
{
	struct powner *po = powner_find(user, host);
	struct roster *r = roster_cached(user, host);
	const char **big = NULL;
	size_t nbig = 0;
	char *owner;

	if (po == NULL || !po->loaded || r == NULL ||
	    blocking_blocks(user, host, full))
		return;
	owner = xasprintf("%s@%s", user, host);
	for (size_t i = 0; i < po->n; i++) {
		const struct cnode *c = &po->v[i];
		size_t k;

		for (k = 0; k < nn && strcmp(nodes[k], c->name) != 0; k++)
			;
		if (k == nn || c->cfg.send_last == PEP_SEND_NEVER ||
		    (presence &&
		        c->cfg.send_last != PEP_SEND_ON_SUB_AND_PRESENCE) ||
		    !remote_admitted(r, &c->cfg, full))
			continue;
		if (c->big) {
			big = xreallocarray(big, nbig + 1, sizeof(*big));
			big[nbig++] = c->name;
		} else if (c->last_id != NULL)
			send_last_remote(owner, full, c->name, c->last_id,
			    c->last, c->last_len, c->last_stamp);
	}
	/* big[] points into the cache, which nothing above changes; the
	 * query copies the names. */
	if (nbig > 0)
		remote_last_stored(user, host, full, big, nbig, presence);
	free(big);
	free(owner);
}

/* hook_remote_caps_changed: a remote resource available to user@host
 * has caps now (old NULL: it came online with them, XEP-0163 §4.3.1)
 * or new ones (a +notify gained: interest appeared, §4.3.4). */
static void
remote_caps_changed(const char *user, const char *host, const char *contact,
    const struct caps *now, const struct caps *old)
{
	char **nodes;
	size_t nn;

	if ((nodes = wanted_nodes(now, old, &nn)) == NULL)
		return;
	remote_last_items(user, host, contact, nodes, nn, old == NULL);
	nodes_free(nodes, nn);
}

/* The remote resources with caps (bare: of one contact only, else
 * all), each with the nodes it wants, copied before anything is sent. */
struct remote_want {
	char *full;
	char **nodes;
	size_t nn;
};

struct remote_list {
	const char *bare;
	struct remote_want *v;
	size_t n;
};

static void
collect_remote_want(const char *full, const struct caps *c, void *arg)
{
	struct remote_list *l = arg;
	size_t len = l->bare ? strlen(l->bare) : 0;
	struct remote_want w;

	if (c == NULL || (l->bare != NULL &&
	    (strncmp(full, l->bare, len) != 0 || full[len] != '/')))
		return;
	if ((w.nodes = wanted_nodes(c, NULL, &w.nn)) == NULL)
		return;
	w.full = xstrdup(full);
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = w;
}

/* The wanted last items to the remote resources of user@host (bare:
 * one contact's only); presence as for remote_last_items. */
static void
remote_last_all(const char *user, const char *host, const char *bare,
    int presence)
{
	struct remote_list l = { bare, NULL, 0 };

	caps_remote_foreach(user, host, collect_remote_want, &l);
	for (size_t i = 0; i < l.n; i++) {
		remote_last_items(user, host, l.v[i].full, l.v[i].nodes,
		    l.v[i].nn, presence);
		nodes_free(l.v[i].nodes, l.v[i].nn);
		free(l.v[i].full);
	}
	free(l.v);
}

/* The owner's nodes are loaded for the first time since it came online:
 * the remote resources whose caps became known before that get what
 * remote_caps_changed could not send them then. */
static void
remote_after_load(struct powner *po)
{
	remote_last_all(po->user, po->host, NULL, 1);
}

/* xmppctl pep delete: the node is gone; the owner's clients hear it. */
static void
admin_change(const char *kind, const char *user, const char *host,
    const char *what)
{
	struct pep_config cfg;

	if (strcmp(kind, "pep") != 0 || what == NULL)
		return;
	cache_change(user, host, what, OP_DELETE, NULL);
	pep_config_default(&cfg);
	cfg.access = PEP_ACCESS_WHITELIST;  /* the owner's resources only */
	notify_node(user, host, what, &cfg, "delete");
	hook_run_pep_event(user, host, what, NULL, NULL, 1);
}

static void
op_drop(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	op_free(value);
}

static void
owner_drop(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	powner_free(value);
}

static void
bound_already(struct session *s, void *arg)
{
	(void)arg;
	if (!s->closing)
		pep_session_bound(s);
}

void
mod_pep_init(void)
{
	static const char *const features[] = {
		"access-open", "access-presence", "access-roster",
		"access-whitelist", "auto-create", "auto-subscribe",
		"config-node", "config-node-max", "create-and-configure",
		"create-nodes", "delete-items", "delete-nodes",
		"filtered-notifications", "item-ids", "last-published",
		"multi-items", "persistent-items", "presence-notifications",
		"publish", "publish-options", "purge-nodes", "retract-items",
		"retrieve-default", "retrieve-items",
	};

	ops = strmap_new();
	owners = strmap_new();
	enabled = 1;
	disco_add_identity(DISCO_ACCOUNT, "pubsub", "pep", NULL);
	for (size_t i = 0; i < nitems(features); i++) {
		char *var = xasprintf(NS_PUBSUB "#%s", features[i]);

		disco_add_feature(DISCO_ACCOUNT, var);
		free(var);
	}
	iq_register(NS_PUBSUB, "pubsub", handle_pubsub);
	iq_register(NS_PUBSUB_OWNER, "pubsub", handle_owner);
	iq_register(NS_DISCO_ITEMS, "query", handle_disco_items);
	hook_add_caps_changed(caps_changed);
	hook_add_subscribed(subscribed);
	hook_add_remote_caps_changed(remote_caps_changed);
	hook_add_session(HOOK_SESSION_BOUND, pep_session_bound);
	hook_add_session(HOOK_SESSION_END, pep_session_end);
	/* Switched on by a reload: those already online. */
	sm_foreach_session(bound_already, NULL);
	hook_add_admin_change(admin_change);
}

void
mod_pep_deinit(void)
{
	enabled = 0;
	strmap_foreach(ops, op_drop, NULL);
	strmap_free(ops);
	ops = NULL;
	strmap_foreach(owners, owner_drop, NULL);
	strmap_free(owners);
	owners = NULL;
}
