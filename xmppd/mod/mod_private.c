/*
 * Private XML storage (XEP-0049, jabber:iq:private): a user stores XML
 * elements on the server, each keyed by its (namespace, name), and gets
 * them back; nobody else can reach them.
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
#include "store/store_engine.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_PRIVATE "jabber:iq:private"

/*
 * Items one account may hold.  private-size bounds each item; this
 * bounds how many, so one account cannot fill the disk.
 */
#define PRIVATE_ITEMS_MAX 256

void mod_private_init(void);

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
static const char sql_user_id[] =
    "SELECT id FROM users WHERE host = ?1 AND user = ?2";

static enum store_status
user_id(const struct private_job *j, sqlite3_int64 *id)
{
	enum store_status st = STORE_OK;
	sqlite3_stmt *s;
	int rc;

	if ((s = store_sql(sql_user_id)) == NULL)
		return STORE_ERROR;
	if (sqlite3_bind_text(s, 1, j->host, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, j->user, -1, SQLITE_STATIC) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(s, 0);
	else if (rc == SQLITE_DONE)
		st = STORE_NOT_FOUND;
	else {
		store_sql_warn("private: user id");
		st = STORE_ERROR;
	}
	store_sql_done(s);
	return st;
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

	if ((st = user_id(j, &id)) != STORE_OK)
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

	if ((st = user_id(j, &id)) != STORE_OK)
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

void
mod_private_init(void)
{
	iq_register(NS_PRIVATE, "query", handle_private);
	/* XEP-0049 defines no feature of its own; the namespace is in the
	 * registrar's disco features registry (XEP-0030 §3). */
	disco_add_feature(DISCO_SERVER, NS_PRIVATE);
}
