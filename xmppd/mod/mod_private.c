/*
 * Private XML storage (XEP-0049, jabber:iq:private): a user stores XML
 * elements on the server, each keyed by its (namespace, name), and gets
 * them back; nobody else can reach them.  While the pep module is on, the
 * legacy bookmarks kept here (XEP-0048's <storage xmlns='storage:bookmarks'/>)
 * and the XEP-0402 bookmarks in PEP are kept the same (XEP-0411).
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conf.h"
#include "core/disco.h"
#include "core/hooks.h"
#include "core/iq.h"
#include "jid.h"
#include "log.h"
#include "core/session.h"
#include "core/stanza.h"
#include "mod/pep.h"
#include "store/store_engine.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_PRIVATE "jabber:iq:private"
#define NS_BOOKMARKS_LEGACY "storage:bookmarks"
#define NS_BOOKMARKS "urn:xmpp:bookmarks:1"
#define NS_BOOKMARKS_COMPAT "urn:xmpp:bookmarks:1#compat"

/*
 * Items one account may hold.  private-size bounds each item; this
 * bounds how many, so one account cannot fill the disk.
 */
#define PRIVATE_ITEMS_MAX 256

void mod_private_init(void);
void mod_private_deinit(void);
void mod_private_reload(void);

static void bookmarks_from_legacy(
    const char *user, const char *host, const char *data, size_t len);

struct private_item {
	char *ns, *name;
	char *data; /* serialized element (set) */
	size_t len;
};

struct private_job {
	struct store_job job; /* first: the store hands this back */
	char *user, *host;
	struct xel *reply; /* the IQ to answer (own arena) */
	struct private_item *items;
	size_t nitems;
	char *data; /* get: the stored element, if found */
	size_t len;
	int found;
};

static struct private_job *
job_new(const struct store_job_ops *ops, struct session *s)
{
	struct private_job *j = xcalloc(1, sizeof(*j));

	j->job.ops = ops;
	j->job.owner = s->id;
	j->user = xstrdup(s->jid.node);
	j->host = xstrdup(s->jid.domain);
	return j;
}

static void
job_add_item(struct private_job *j, const struct xel *el, struct buf *data)
{
	struct private_item *it;

	/* One set may name an element twice: the last one wins. */
	for (size_t i = 0; i < j->nitems; i++) {
		it = &j->items[i];
		if (strcmp(it->ns, el->ns) == 0 &&
		    strcmp(it->name, el->name) == 0) {
			free(it->data);
			goto fill;
		}
	}
	j->items = xreallocarray(j->items, j->nitems + 1, sizeof(*j->items));
	it = &j->items[j->nitems++];
	it->ns = xstrdup(el->ns);
	it->name = xstrdup(el->name);
fill:
	it->data = data ? buf_strdup(data) : NULL;
	it->len = data ? data->len : 0;
}

static void
job_free(struct store_job *sj)
{
	struct private_job *j = (struct private_job *)sj;

	for (size_t i = 0; i < j->nitems; i++) {
		free(j->items[i].ns);
		free(j->items[i].name);
		free(j->items[i].data);
	}
	free(j->items);
	free(j->user);
	free(j->host);
	if (j->reply)
		arena_free(j->reply->arena);
	free(j->data);
	free(j);
}

static void
reply_error(
    struct session *s, const struct xel *iq, const char *cond, const char *text)
{
	session_reply(s, stanza_error(iq, NULL, cond, text));
}

/* Storage thread: the account's id in *id (STORE_OK), STORE_NOT_FOUND
 * or STORE_ERROR. */
static enum store_status
user_id(const char *user, const char *host, sqlite3_int64 *id)
{
	sqlite3_int64 v = store_user_id(user, host);

	*id = v;
	return v > 0 ? STORE_OK : v == 0 ? STORE_NOT_FOUND : STORE_ERROR;
}

/*
 * Get.
 */

static const char sql_get[] =
    "SELECT data FROM private WHERE user_id = ?1 AND ns = ?2 AND name = ?3";

static enum store_status
run_get(struct store_job *sj)
{
	struct private_job *j = (struct private_job *)sj;
	enum store_status st;
	sqlite3_int64 id;
	sqlite3_stmt *s;
	int rc;

	if ((st = user_id(j->user, j->host, &id)) != STORE_OK)
		return st;
	if ((s = store_sql(sql_get)) == NULL)
		return STORE_ERROR;
	if (sqlite3_bind_int64(s, 1, id) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, j->items[0].ns, -1, SQLITE_STATIC) !=
	        SQLITE_OK ||
	    sqlite3_bind_text(s, 3, j->items[0].name, -1, SQLITE_STATIC) !=
	        SQLITE_OK)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const void *p = sqlite3_column_text(s, 0);

		j->len = (size_t)sqlite3_column_bytes(s, 0);
		j->data = xmalloc(j->len + 1);
		if (p != NULL)
			memcpy(j->data, p, j->len);
		j->data[j->len] = '\0';
		j->found = 1;
	} else if (rc != SQLITE_DONE) {
		store_sql_warn("private get");
		st = STORE_ERROR;
	}
	store_sql_done(s);
	return st;
}

static void
complete_get(struct store_job *sj)
{
	struct private_job *j = (struct private_job *)sj;
	struct session *s = sm_find_id(j->job.owner);
	struct xml_limits lim = {
	    .max_stanza = j->len + 1,
	    .max_depth = xmppd_conf->limits.depth,
	    .max_attrs = xmppd_conf->limits.attributes,
	    /* stored by us: what was accepted once parses again */
	    .max_memory = SIZE_MAX,
	};
	struct xel *r, *query, *el = NULL;

	if (s == NULL || s->closing)
		return;
	if (j->job.status != STORE_OK) {
		reply_error(s, j->reply, "internal-server-error", NULL);
		return;
	}
	if (j->found &&
	    (el = xml_parse_element(j->data, j->len, "", &lim)) == NULL) {
		log_warnx("private: the stored <%s xmlns='%s'/> of %s@%s does "
		          "not parse",
		    j->items[0].name, j->items[0].ns, j->user, j->host);
		reply_error(s, j->reply, "internal-server-error", NULL);
		return;
	}
	r = stanza_iq_result(j->reply);
	query = xel_add(r, "query", NS_PRIVATE);
	if (el != NULL) {
		xel_append_copy(query, el);
		arena_free(el->arena);
	} else {
		/* Nothing stored: the element comes back empty (XEP-0049
		 * §2.3, as a first get by a client sees it). */
		xel_add(query, j->items[0].name, j->items[0].ns);
	}
	session_reply(s, r);
}

static const struct store_job_ops get_ops = {
    "private get", 0, run_get, complete_get, job_free};

/*
 * Set: every element of the query, all or nothing.
 */

static const char sql_count[] =
    "SELECT count(*) FROM private WHERE user_id = ?1";
static const char sql_exists[] =
    "SELECT 1 FROM private WHERE user_id = ?1 AND ns = ?2 AND name = ?3";
static const char sql_put[] =
    "INSERT OR REPLACE INTO private (user_id, ns, name, data) "
    "VALUES (?1, ?2, ?3, ?4)";

/*
 * Storage thread: run sql with ?1 the user id and, for an item, ?2 its
 * namespace, ?3 its name and (with_data) ?4 its data.  Returns the first
 * column of the first row, 0 if there is none, or -1 on error.
 */
static sqlite3_int64
step_item(const char *sql, sqlite3_int64 id, const struct private_item *it,
    int with_data)
{
	sqlite3_stmt *s;
	sqlite3_int64 v = -1;
	int rc;

	if ((s = store_sql(sql)) == NULL)
		return -1;
	rc = sqlite3_bind_int64(s, 1, id);
	if (rc == SQLITE_OK && it != NULL)
		rc = sqlite3_bind_text(s, 2, it->ns, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && it != NULL)
		rc = sqlite3_bind_text(s, 3, it->name, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && with_data)
		rc = sqlite3_bind_text(
		    s, 4, it->data, (int)it->len, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	else if (rc == SQLITE_DONE)
		v = 0;
	else
		store_sql_warn(sql);
	store_sql_done(s);
	return v;
}

/* STORE_EXISTS means the account would hold more than
 * PRIVATE_ITEMS_MAX items; nothing is written then. */
static enum store_status
run_set(struct store_job *sj)
{
	struct private_job *j = (struct private_job *)sj;
	enum store_status st;
	sqlite3_int64 id, count, e;

	if ((st = user_id(j->user, j->host, &id)) != STORE_OK)
		return st;
	if ((count = step_item(sql_count, id, NULL, 0)) < 0)
		return STORE_ERROR;
	for (size_t i = 0; i < j->nitems; i++) {
		if ((e = step_item(sql_exists, id, &j->items[i], 0)) < 0)
			return STORE_ERROR;
		count += e == 0;
	}
	if (count > PRIVATE_ITEMS_MAX)
		return STORE_EXISTS;
	for (size_t i = 0; i < j->nitems; i++)
		if (step_item(sql_put, id, &j->items[i], 1) < 0)
			return STORE_ERROR;
	return STORE_OK;
}

static void
complete_set(struct store_job *sj)
{
	struct private_job *j = (struct private_job *)sj;
	struct session *s = sm_find_id(j->job.owner);

	/* Committed: XEP-0411 §4, the legacy bookmarks into PEP, even if
	 * the session that stored them has gone. */
	for (size_t i = 0; j->job.status == STORE_OK && i < j->nitems; i++)
		if (strcmp(j->items[i].ns, NS_BOOKMARKS_LEGACY) == 0 &&
		    strcmp(j->items[i].name, "storage") == 0)
			bookmarks_from_legacy(j->user, j->host,
			    j->items[i].data, j->items[i].len);
	if (s == NULL || s->closing)
		return;
	switch (j->job.status) {
	case STORE_OK:
		session_reply(s, stanza_iq_result(j->reply));
		break;
	case STORE_EXISTS:
		log_info("private: %s@%s reached %d items", j->user, j->host,
		    PRIVATE_ITEMS_MAX);
		reply_error(s, j->reply, "not-acceptable",
		    "Too many private XML items");
		break;
	case STORE_NOT_FOUND: /* the account was deleted meanwhile */
		reply_error(s, j->reply, "service-unavailable", NULL);
		break;
	default:
		reply_error(s, j->reply, "internal-server-error", NULL);
		break;
	}
}

static const struct store_job_ops set_ops = {
    "private set", 1, run_set, complete_set, job_free};

/*
 * XEP-0049 §2.3: namespaces reserved for the protocol (those beginning
 * with "jabber:" or "http://jabber.org/", and vcard-temp), plus those
 * RFC 6120 defines for streams (http://etherx.jabber.org/streams,
 * urn:ietf:params:xml:ns:xmpp-*).  Refusing them is OPTIONAL there; we
 * do, with the Not Acceptable of its §3, so that private storage cannot
 * pose as protocol data.  An element without a namespace has no "proper
 * namespace" (§2.3) either.
 */
static int
reserved_ns(const char *ns)
{
	static const char *const prefixes[] = {
	    "jabber:",
	    "http://jabber.org/",
	    "urn:ietf:params:xml:ns:xmpp-",
	};

	if (*ns == '\0' || strcmp(ns, "vcard-temp") == 0 ||
	    strcmp(ns, NS_STREAMS) == 0)
		return 1;
	for (size_t i = 0; i < nitems(prefixes); i++)
		if (strncmp(ns, prefixes[i], strlen(prefixes[i])) == 0)
			return 1;
	return 0;
}

/* Check every element of a get/set query; 0, or -1 after answering. */
static int
check_query(struct session *s, struct xel *iq, const struct xel *query, int set)
{
	int n = xel_count_elems(query);

	if (n == 0) {
		/* §2.3: a set needs an element ("Not Acceptable"); a get
		 * without one is "Bad Format" (§2.3, §3 table). */
		reply_error(s, iq, set ? "not-acceptable" : "bad-request",
		    "No element to store or retrieve");
		return -1;
	}
	if (!set && n > 1) {
		/* §2.3: a client MUST NOT ask for more than one. */
		reply_error(
		    s, iq, "bad-request", "Retrieve one element at a time");
		return -1;
	}
	if (n > PRIVATE_ITEMS_MAX) {
		reply_error(
		    s, iq, "not-acceptable", "Too many private XML items");
		return -1;
	}
	for (struct xel *c = xel_first_elem(query); c;
	     c = xel_next(c, NULL, NULL))
		if (reserved_ns(c->ns)) {
			reply_error(
			    s, iq, "not-acceptable", "Reserved namespace");
			return -1;
		}
	return 0;
}

static void
handle_set(struct session *s, struct xel *iq, const struct xel *query)
{
	struct private_job *j = job_new(&set_ops, s);
	struct buf out = BUF_INIT;

	for (struct xel *c = xel_first_elem(query); c;
	     c = xel_next(c, NULL, NULL)) {
		buf_reset(&out);
		/* With no namespace in scope: the element carries its own. */
		xel_serialize(c, &out, "");
		if (out.len > xmppd_conf->limits.private_size) {
			log_info("private: refused <%s xmlns='%s'/> of %zu "
			         "bytes from %s (private-size %zu)",
			    c->name, c->ns, out.len, s->full,
			    xmppd_conf->limits.private_size);
			reply_error(s, iq, "not-acceptable",
			    "Private XML item too large");
			buf_free(&out);
			job_free(&j->job);
			return;
		}
		job_add_item(j, c, &out);
	}
	buf_free(&out);
	j->reply = stanza_iq_skeleton(iq);
	store_job_submit(&j->job);
}

/*
 * Only one's own storage: without 'to' or to one's own bare JID (§2.3:
 * anything else is Forbidden, which the XEP prefers to the
 * <service-unavailable/> some servers return).
 */
static enum hook_result
handle_private(struct session *s, struct xel *iq, enum iq_target target)
{
	const char *to = xel_attr(iq, "to");
	int set = strcmp(xel_attr(iq, "type"), "set") == 0;
	struct xel *query = xel_first_elem(iq);
	struct private_job *j;
	struct jid tj = {0};
	int own;

	own = to == NULL || (target == IQ_TO_BARE && jid_parse(&tj, to) == 0 &&
	                        jid_eq_bare(&tj, &s->jid));
	jid_free(&tj);
	if (!own) {
		reply_error(s, iq, "forbidden", NULL);
		return HOOK_HANDLED;
	}
	if (check_query(s, iq, query, set) == -1)
		return HOOK_HANDLED;
	if (set) {
		handle_set(s, iq, query);
		return HOOK_HANDLED;
	}
	j = job_new(&get_ops, s);
	job_add_item(j, xel_first_elem(query), NULL);
	j->reply = stanza_iq_skeleton(iq);
	store_job_submit(&j->job);
	return HOOK_HANDLED;
}

/*
 * XEP-0411: legacy bookmarks and XEP-0402 bookmarks, both ways.  Either
 * side first reads the account's urn:xmpp:bookmarks:1 items (as the
 * owner, through mod_pep's storage); then a legacy <storage/> a client
 * stored is turned into publishes and retractions of the items that
 * differ (§4), and a client's change of the items (an event without
 * by_server) into a new legacy <storage/> with every item (§5), the
 * legacy <url/> entries kept.  What one side writes does not come back
 * from the other: we publish with by_server set, and write the legacy
 * storage with a job of our own, not through the IQ handler.
 */

/* A conversion waiting for its read of the PEP items, by tag: a
 * completion after the module went off finds nothing. */
struct bookmarks_sync {
	struct bookmarks_sync *next;
	uint64_t tag;
	char *user, *host;
	char *legacy; /* to PEP: the <storage/> stored; NULL: to legacy */
	size_t len;
};

static struct bookmarks_sync *syncs;
static uint64_t sync_tag;

static void
sync_free(struct bookmarks_sync *y)
{
	free(y->user);
	free(y->host);
	free(y->legacy);
	free(y);
}

static void
syncs_free(void)
{
	struct bookmarks_sync *y;

	while ((y = syncs) != NULL) {
		syncs = y->next;
		sync_free(y);
	}
}

/* Parse what we or mod_pep stored (new arena), or NULL. */
static struct xel *
parse_stored(const char *data, size_t len, unsigned depth, unsigned attrs)
{
	struct xml_limits lim = {
	    .max_stanza = len + 1,
	    .max_depth = depth,
	    .max_attrs = attrs,
	    /* stored by us: what was accepted once parses again */
	    .max_memory = SIZE_MAX,
	};

	return xml_parse_element(data, len, "", &lim);
}

/* xs:boolean (XEP-0048 and XEP-0402 'autojoin'). */
static int
is_true(const char *v)
{
	return v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/* XEP-0402 §3: the node keeps every bookmark, for the owner only, with
 * the publish-options its clients send (access_model whitelist,
 * max_items max, persist_items true, send_last_published_item never),
 * so that their publishes meet the precondition on a node we created. */
static void
bookmarks_config(struct pep_config *cfg)
{
	pep_config_default(cfg);
	cfg->access = PEP_ACCESS_WHITELIST;
	cfg->max_items = 0; /* "max" */
	cfg->persist = 1;
	cfg->send_last = PEP_SEND_NEVER;
}

/* The text of child name of el in ns, NULL if there is none. */
static const char *
child_text(const struct xel *el, const char *name, const char *ns)
{
	struct xel *c = xel_child(el, name, ns);

	return c != NULL ? xel_text(c) : NULL;
}

static int
same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Whether two XEP-0402 <conference/> say the same (name, autojoin, nick,
 * password; the extensions are copied, so they are). */
static int
same_conference(const struct xel *a, const struct xel *b)
{
	return same_str(xel_attr(a, "name"), xel_attr(b, "name")) &&
	       is_true(xel_attr(a, "autojoin")) ==
	           is_true(xel_attr(b, "autojoin")) &&
	       same_str(child_text(a, "nick", NS_BOOKMARKS),
	           child_text(b, "nick", NS_BOOKMARKS)) &&
	       same_str(child_text(a, "password", NS_BOOKMARKS),
	           child_text(b, "password", NS_BOOKMARKS));
}

/* A conference of one format as the other: name and autojoin, nick and
 * password (XEP-0411 §4, §5); to is the new element. */
static void
copy_conference(struct xel *to, const struct xel *from, const char *from_ns)
{
	const char *name = xel_attr(from, "name"), *t;

	if (name != NULL)
		xel_set_attr(to, "name", name);
	xel_set_attr(to, "autojoin",
	    is_true(xel_attr(from, "autojoin")) ? "true" : "false");
	if ((t = child_text(from, "nick", from_ns)) != NULL)
		xel_text_set(xel_add(to, "nick", NULL), t);
	if ((t = child_text(from, "password", from_ns)) != NULL)
		xel_text_set(xel_add(to, "password", NULL), t);
}

/* The items read, parsed: el[i] is item i's <conference/>, or NULL. */
struct parsed_items {
	struct xel **el;
	char **jid; /* the item id as a JID, prepared (NULL: none) */
	size_t n;
};

static void
items_parse(struct parsed_items *pi, const struct pep_read_result *r)
{
	pi->n = r->nitems;
	pi->el = xcalloc(pi->n ? pi->n : 1, sizeof(*pi->el));
	pi->jid = xcalloc(pi->n ? pi->n : 1, sizeof(*pi->jid));
	for (size_t i = 0; i < pi->n; i++) {
		const struct pep_item *it = &r->items[i];
		struct xel *el;

		pi->jid[i] = jid_normalize(it->id);
		if (it->payload == NULL)
			continue;
		el = parse_stored(it->payload, it->len,
		    xmppd_conf->limits.depth, xmppd_conf->limits.attributes);
		if (el != NULL && !xel_is(el, "conference", NS_BOOKMARKS)) {
			arena_free(el->arena);
			el = NULL;
		}
		pi->el[i] = el;
	}
}

static void
items_free(struct parsed_items *pi)
{
	for (size_t i = 0; i < pi->n; i++) {
		if (pi->el[i] != NULL)
			arena_free(pi->el[i]->arena);
		free(pi->jid[i]);
	}
	free(pi->el);
	free(pi->jid);
}

/* §4: the legacy <storage/> y holds, against the items read. */
static void
sync_to_pep(const struct bookmarks_sync *y, const struct pep_read_result *r)
{
	struct parsed_items pi;
	struct xel *storage, *want;
	struct pep_config cfg;
	char **rooms = NULL;
	size_t nrooms = 0, k, published = 0, retracted = 0;
	int found;

	storage = parse_stored(y->legacy, y->len, xmppd_conf->limits.depth,
	    xmppd_conf->limits.attributes);
	if (storage == NULL ||
	    !xel_is(storage, "storage", NS_BOOKMARKS_LEGACY)) {
		if (storage != NULL)
			arena_free(storage->arena);
		return;
	}
	items_parse(&pi, r);
	bookmarks_config(&cfg);
	for (struct xel *c =
	         xel_child(storage, "conference", NS_BOOKMARKS_LEGACY);
	     c != NULL; c = xel_next(c, "conference", NS_BOOKMARKS_LEGACY)) {
		const char *jid = xel_attr(c, "jid"), *id;
		char *room = jid != NULL ? jid_normalize(jid) : NULL;

		if (room == NULL) {
			log_debug("private: %s@%s: a legacy bookmark without a "
			          "valid jid is not converted",
			    y->user, y->host);
			continue;
		}
		rooms = xreallocarray(rooms, nrooms + 1, sizeof(*rooms));
		rooms[nrooms++] = room;
		for (k = 0; k < pi.n; k++)
			if (pi.jid[k] != NULL && strcmp(pi.jid[k], room) == 0)
				break;
		want = xel_new(storage->arena, "conference", NS_BOOKMARKS);
		copy_conference(want, c, NS_BOOKMARKS_LEGACY);
		if (k < pi.n && pi.el[k] != NULL) {
			struct xel *ext =
			    xel_child(pi.el[k], "extensions", NS_BOOKMARKS);

			/* §4: what legacy bookmarks cannot say stays. */
			if (ext != NULL)
				xel_append_copy(want, ext);
			if (same_conference(pi.el[k], want))
				continue;
		}
		/* An item that exists keeps its id as its client wrote it. */
		id = k < pi.n ? r->items[k].id : room;
		pep_server_publish(
		    y->user, y->host, NS_BOOKMARKS, id, want, &cfg, 0);
		published++;
	}
	for (k = 0; k < pi.n; k++) {
		found = 0;
		for (size_t i = 0; i < nrooms && !found; i++)
			found = pi.jid[k] != NULL &&
			        strcmp(pi.jid[k], rooms[i]) == 0;
		if (!found) {
			pep_server_retract(
			    y->user, y->host, NS_BOOKMARKS, r->items[k].id);
			retracted++;
		}
	}
	log_debug("private: %s@%s: legacy bookmarks to PEP: %zu published, "
	          "%zu retracted",
	    y->user, y->host, published, retracted);
	for (size_t i = 0; i < nrooms; i++)
		free(rooms[i]);
	free(rooms);
	pep_config_free(&cfg);
	items_free(&pi);
	arena_free(storage->arena);
}

/*
 * §5: the legacy <storage/> rewritten in a job of its own, so that the
 * <url/> entries (and anything else but conferences) of what is stored
 * are kept in the same transaction that replaces it.
 */
struct legacy_job {
	struct store_job job; /* first: the store hands this back */
	char *user, *host;
	char *conferences; /* <storage/> with the conferences */
	size_t len;
	unsigned max_depth, max_attrs;
	size_t max_size; /* private-size */
	size_t out_len;  /* what it would have taken */
	int unchanged;
};

static void
legacy_free(struct store_job *sj)
{
	struct legacy_job *j = (struct legacy_job *)sj;

	free(j->user);
	free(j->host);
	free(j->conferences);
	free(j);
}

static const char sql_legacy_get[] =
    "SELECT data FROM private WHERE user_id = ?1"
    " AND ns = 'storage:bookmarks' AND name = 'storage'";

/* Storage thread. */
static enum store_status
run_legacy(struct store_job *sj)
{
	struct legacy_job *j = (struct legacy_job *)sj;
	struct private_item it = {NS_BOOKMARKS_LEGACY, "storage", NULL, 0};
	struct xel *old = NULL, *storage;
	struct buf out = BUF_INIT;
	enum store_status st;
	sqlite3_int64 id, count;
	sqlite3_stmt *s;
	int rc;

	if ((st = user_id(j->user, j->host, &id)) != STORE_OK)
		return st;
	storage =
	    parse_stored(j->conferences, j->len, j->max_depth, j->max_attrs);
	if (storage == NULL)
		return STORE_ERROR;
	if ((s = store_sql(sql_legacy_get)) == NULL) {
		arena_free(storage->arena);
		return STORE_ERROR;
	}
	sqlite3_bind_int64(s, 1, id);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *p = (const char *)sqlite3_column_text(s, 0);
		size_t n = (size_t)sqlite3_column_bytes(s, 0);

		old = parse_stored(
		    p != NULL ? p : "", n, j->max_depth, j->max_attrs);
		if (old != NULL) {
			/* Unchanged if it already reads the same. */
			for (struct xel *c = xel_first_elem(old); c != NULL;
			     c = xel_next(c, NULL, NULL))
				if (!xel_is(
				        c, "conference", NS_BOOKMARKS_LEGACY))
					xel_append_copy(storage, c);
			arena_free(old->arena);
		}
	} else if (rc != SQLITE_DONE)
		store_sql_warn("private: legacy bookmarks");
	store_sql_done(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		arena_free(storage->arena);
		return STORE_ERROR;
	}
	xel_serialize(storage, &out, "");
	arena_free(storage->arena);
	j->out_len = out.len;
	if (out.len > j->max_size) {
		buf_free(&out);
		return STORE_EXISTS;
	}
	if (rc == SQLITE_DONE) {
		if ((count = step_item(sql_count, id, NULL, 0)) < 0) {
			buf_free(&out);
			return STORE_ERROR;
		}
		if (count >= PRIVATE_ITEMS_MAX) {
			buf_free(&out);
			return STORE_EXISTS;
		}
	}
	it.data = out.data;
	it.len = out.len;
	st = step_item(sql_put, id, &it, 1) < 0 ? STORE_ERROR : STORE_OK;
	buf_free(&out);
	return st;
}

static void
complete_legacy(struct store_job *sj)
{
	struct legacy_job *j = (struct legacy_job *)sj;

	switch (j->job.status) {
	case STORE_OK:
		log_debug("private: %s@%s: bookmarks converted to legacy "
		          "storage (%zu bytes)",
		    j->user, j->host, j->out_len);
		break;
	case STORE_EXISTS:
		log_info("private: %s@%s: bookmarks not converted to legacy "
		         "storage: %zu bytes (private-size %zu) or %d items",
		    j->user, j->host, j->out_len, j->max_size,
		    PRIVATE_ITEMS_MAX);
		break;
	case STORE_NOT_FOUND:
		break;
	default:
		log_warnx("private: %s@%s: cannot store the legacy bookmarks",
		    j->user, j->host);
		break;
	}
}

static const struct store_job_ops legacy_ops = {
    "private legacy bookmarks", 1, run_legacy, complete_legacy, legacy_free};

/* §5: every item read, as legacy conferences. */
static void
sync_to_legacy(const struct bookmarks_sync *y, const struct pep_read_result *r)
{
	struct parsed_items pi;
	struct arena *a = arena_new(1024);
	struct xel *storage = xel_new(a, "storage", NS_BOOKMARKS_LEGACY), *c;
	struct legacy_job *j;
	struct buf out = BUF_INIT;

	items_parse(&pi, r);
	for (size_t i = 0; i < pi.n; i++) {
		if (pi.el[i] == NULL)
			continue;
		c = xel_add(storage, "conference", NULL);
		xel_set_attr(c, "jid", r->items[i].id);
		copy_conference(c, pi.el[i], NS_BOOKMARKS);
	}
	items_free(&pi);
	xel_serialize(storage, &out, "");
	arena_free(a);
	j = xcalloc(1, sizeof(*j));
	j->job.ops = &legacy_ops;
	j->user = xstrdup(y->user);
	j->host = xstrdup(y->host);
	j->len = out.len;
	j->conferences = buf_strdup(&out);
	j->max_depth = xmppd_conf->limits.depth;
	j->max_attrs = xmppd_conf->limits.attributes;
	j->max_size = xmppd_conf->limits.private_size;
	buf_free(&out);
	store_job_submit(&j->job);
}

static void
sync_read(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_read_result *r)
{
	struct bookmarks_sync **pp, *y;

	(void)owner;
	for (pp = &syncs; (y = *pp) != NULL && y->tag != tag; pp = &y->next)
		;
	if (y == NULL) /* the module went off */
		return;
	*pp = y->next;
	if (st != STORE_OK)
		log_warnx("private: %s@%s: cannot read the bookmarks in PEP",
		    y->user, y->host);
	else if (y->legacy != NULL)
		sync_to_pep(y, r);
	else
		sync_to_legacy(y, r);
	sync_free(y);
}

/* Read the account's XEP-0402 items, then convert (legacy: to PEP). */
static void
sync_start(const char *user, const char *host, const char *legacy, size_t len)
{
	struct bookmarks_sync *y = xcalloc(1, sizeof(*y));
	struct pep_read q = {0};

	y->tag = ++sync_tag;
	y->user = xstrdup(user);
	y->host = xstrdup(host);
	if (legacy != NULL) {
		y->legacy = xmalloc(len + 1);
		memcpy(y->legacy, legacy, len);
		y->legacy[len] = '\0';
		y->len = len;
	}
	y->next = syncs;
	syncs = y;
	q.user = user;
	q.host = host;
	q.kind = PEP_READ_ITEMS;
	q.node = NS_BOOKMARKS;
	q.requester = xasprintf("%s@%s", user, host);
	pep_read(&q, sync_read, 0, y->tag);
	free((char *)q.requester);
}

/* After a legacy <storage/> was stored by a client, or found at login
 * without XEP-0402 bookmarks (mod_pep's load). */
static void
bookmarks_from_legacy(
    const char *user, const char *host, const char *data, size_t len)
{
	if (pep_enabled())
		sync_start(user, host, data, len);
}

/* hook_pep_event: a client changed its XEP-0402 bookmarks (an item
 * published or retracted, the node purged or deleted). */
static void
bookmarks_pep_event(const char *user, const char *host, const char *node,
    const char *id, const struct xel *payload, int by_server)
{
	(void)id;
	(void)payload;
	if (by_server || strcmp(node, NS_BOOKMARKS) != 0)
		return;
	sync_start(user, host, NULL, 0);
}

static void
advertise(void)
{
	/* XEP-0049 defines no feature of its own; the namespace is in the
	 * registrar's disco features registry (XEP-0030 §3). */
	disco_add_feature(DISCO_SERVER, NS_PRIVATE);
	/* XEP-0402 §5.3: the two kinds of bookmarks are kept the same. */
	if (pep_enabled())
		disco_add_feature(DISCO_ACCOUNT, NS_BOOKMARKS_COMPAT);
}

void
mod_private_init(void)
{
	iq_register(NS_PRIVATE, "query", handle_private);
	hook_add_pep_event(bookmarks_pep_event);
	/* XEP-0411 §3: legacy bookmarks of an account without XEP-0402
	 * ones are converted when its first session binds. */
	pep_set_legacy_bookmarks(bookmarks_from_legacy);
	advertise();
}

/* Conversions waiting for a read are forgotten. */
void
mod_private_deinit(void)
{
	pep_set_legacy_bookmarks(NULL);
	syncs_free();
}

/* On, staying on: the pep module may have been switched on or off. */
void
mod_private_reload(void)
{
	disco_remove_owner(hook_owner());
	advertise();
}
