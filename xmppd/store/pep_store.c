/*
 * Personal eventing in storage: the jobs behind store/pep.h (load, reads
 * with their access check, last items, publish, retract, node writes)
 * and the pure helpers for node configurations and access models that
 * both threads use.  The protocol side is mod_pep.c.
 *
 * Bounds: a node list reads at most the account's nodes (pep-nodes), an
 * item list at most a node's items (pep-items) and stops after a byte
 * budget; last items read one row per node asked for and owner given.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "log.h"
#include "store/pep.h"
#include "store/store_engine.h"
#include "xmalloc.h"

/* The roster table's sub bits (core/subscription.h, which the store
 * layer does not include): SUB_FROM and SUB_ITEM. */
#define ROSTER_SUB_FROM 0x02
#define ROSTER_SUB_ITEM 0x20
#define GROUP_SEP '\x1f'        /* as roster groups: not an XML character */

/* Configurations. */

void
pep_config_default(struct pep_config *c)
{
	memset(c, 0, sizeof(*c));
	c->access = PEP_ACCESS_PRESENCE;
	c->max_items = 1;
	c->persist = 1;
	c->send_last = PEP_SEND_ON_SUB_AND_PRESENCE;
	c->notify_retract = 1;
}

void
pep_config_copy(struct pep_config *dst, const struct pep_config *src)
{
	*dst = *src;
	dst->groups = NULL;
	if (src->ngroups > 0) {
		dst->groups = xreallocarray(NULL, src->ngroups,
		    sizeof(*dst->groups));
		for (size_t i = 0; i < src->ngroups; i++)
			dst->groups[i] = xstrdup(src->groups[i]);
	}
	dst->title = src->title ? xstrdup(src->title) : NULL;
}

void
pep_config_free(struct pep_config *c)
{
	for (size_t i = 0; i < c->ngroups; i++)
		free(c->groups[i]);
	free(c->groups);
	free(c->title);
	c->groups = NULL;
	c->ngroups = 0;
	c->title = NULL;
}

static int
same_text(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Roster groups are a set: the same groups in any order. */
static int
same_groups(const struct pep_config *a, const struct pep_config *b)
{
	if (a->ngroups != b->ngroups)
		return 0;
	for (size_t i = 0; i < a->ngroups; i++) {
		size_t k;

		for (k = 0; k < b->ngroups; k++)
			if (strcmp(a->groups[i], b->groups[k]) == 0)
				break;
		if (k == b->ngroups)
			return 0;
	}
	return 1;
}

int
pep_config_equal(const struct pep_config *a, const struct pep_config *b)
{
	if (a->access != b->access || a->max_items != b->max_items ||
	    !a->persist != !b->persist || a->send_last != b->send_last ||
	    !a->notify_retract != !b->notify_retract ||
	    !a->notify_delete != !b->notify_delete ||
	    !same_text(a->title, b->title))
		return 0;
	return same_groups(a, b);
}

int
pep_config_matches(const struct pep_config *node,
    const struct pep_config *want, unsigned mask)
{
	if (((mask & PEP_CFG_ACCESS) && node->access != want->access) ||
	    ((mask & PEP_CFG_MAX_ITEMS) &&
	        node->max_items != want->max_items) ||
	    ((mask & PEP_CFG_PERSIST) && !node->persist != !want->persist) ||
	    ((mask & PEP_CFG_SEND_LAST) &&
	        node->send_last != want->send_last) ||
	    ((mask & PEP_CFG_NOTIFY_RETRACT) &&
	        !node->notify_retract != !want->notify_retract) ||
	    ((mask & PEP_CFG_NOTIFY_DELETE) &&
	        !node->notify_delete != !want->notify_delete) ||
	    ((mask & PEP_CFG_TITLE) && !same_text(node->title, want->title)))
		return 0;
	return !(mask & PEP_CFG_GROUPS) || same_groups(node, want);
}

static const char *const access_names[] = {
	[PEP_ACCESS_PRESENCE] = "presence",
	[PEP_ACCESS_OPEN] = "open",
	[PEP_ACCESS_ROSTER] = "roster",
	[PEP_ACCESS_WHITELIST] = "whitelist",
};

static const char *const send_last_names[] = {
	[PEP_SEND_NEVER] = "never",
	[PEP_SEND_ON_SUB] = "on_sub",
	[PEP_SEND_ON_SUB_AND_PRESENCE] = "on_sub_and_presence",
};

static int
name_index(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], s) == 0)
			return (int)i;
	return -1;
}

const char *
pep_access_name(enum pep_access a)
{
	return (unsigned)a < nitems(access_names) ? access_names[a] : "?";
}

int
pep_access_parse(const char *s)
{
	return name_index(access_names, nitems(access_names), s);
}

const char *
pep_send_last_name(enum pep_send_last s)
{
	return (unsigned)s < nitems(send_last_names) ? send_last_names[s] :
	    "?";
}

int
pep_send_last_parse(const char *s)
{
	return name_index(send_last_names, nitems(send_last_names), s);
}

unsigned
pep_config_keep(const struct pep_config *c, unsigned items_max)
{
	if (c->max_items == 0 || c->max_items > items_max)
		return items_max;
	return c->max_items;
}

enum pep_verdict
pep_access_check(const struct pep_config *c, const struct pep_standing *st)
{
	if (st->self)
		return PEP_ALLOWED;
	switch (c->access) {
	case PEP_ACCESS_OPEN:
		return PEP_ALLOWED;
	case PEP_ACCESS_PRESENCE:
		return st->from ? PEP_ALLOWED : PEP_PRESENCE_REQUIRED;
	case PEP_ACCESS_ROSTER:
		/* XEP-0060 §4.5: an entity in an allowed roster group. */
		for (size_t i = 0; st->item && i < c->ngroups; i++)
			for (size_t k = 0; k < st->ngroups; k++)
				if (strcmp(c->groups[i], st->groups[k]) == 0)
					return PEP_ALLOWED;
		return PEP_NOT_IN_GROUP;
	default:
		/* whitelist: the owner only (PEP has no member
		 * affiliations here) */
		return PEP_CLOSED;
	}
}

/* Storage thread helpers. */

static char *
groups_join(const struct pep_config *c)
{
	size_t len = 0;
	char *s, *p;

	if (c->ngroups == 0)
		return NULL;
	for (size_t i = 0; i < c->ngroups; i++)
		len += strlen(c->groups[i]) + 1;
	p = s = xmalloc(len);
	for (size_t i = 0; i < c->ngroups; i++) {
		size_t n = strlen(c->groups[i]);

		memcpy(p, c->groups[i], n);
		p += n;
		*p++ = GROUP_SEP;
	}
	p[-1] = '\0';
	return s;
}

/* Split s (joined by GROUP_SEP; NULL: none) into *groups. */
static void
groups_split(const char *s, char ***groups, size_t *n)
{
	const char *p = s, *e;

	*groups = NULL;
	*n = 0;
	while (s != NULL && *p != '\0') {
		if ((e = strchr(p, GROUP_SEP)) == NULL)
			e = p + strlen(p);
		*groups = xreallocarray(*groups, *n + 1, sizeof(**groups));
		(*groups)[(*n)++] = xstrndup(p, (size_t)(e - p));
		p = *e ? e + 1 : e;
	}
}

static const char *
col_text(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	return t ? (const char *)t : "";
}

/* The account's id: 1, 0 if there is none, -1 on error. */
static int
user_id(const char *user, const char *host, sqlite3_int64 *uid)
{
	sqlite3_int64 id = store_user_id(user, host);

	*uid = id;
	return id > 0 ? 1 : (int)id;
}

/* The columns node_fill reads, in its order. */
#define NODE_COLS                                                        \
	"id, access, groups, max_items, persist, send_last, "            \
	"notify_retract, notify_delete, title, items, bytes, created, node"

static const char sql_node_get[] =
    "SELECT " NODE_COLS " FROM pep_node WHERE user_id = ?1 AND node = ?2";
static const char sql_node_list[] =
    "SELECT " NODE_COLS " FROM pep_node WHERE user_id = ?1 ORDER BY node";

/* One node row into n (strings in a, the configuration malloc'ed);
 * returns its id. */
static sqlite3_int64
node_fill(sqlite3_stmt *s, struct arena *a, struct pep_node_info *n)
{
	int access = sqlite3_column_int(s, 1);
	int send_last = sqlite3_column_int(s, 5);

	memset(n, 0, sizeof(*n));
	pep_config_default(&n->cfg);
	if (pep_access_name((enum pep_access)access)[0] != '?')
		n->cfg.access = (enum pep_access)access;
	groups_split(sqlite3_column_type(s, 2) == SQLITE_NULL ? NULL :
	    col_text(s, 2), &n->cfg.groups, &n->cfg.ngroups);
	n->cfg.max_items = (unsigned)sqlite3_column_int64(s, 3);
	n->cfg.persist = sqlite3_column_int(s, 4) != 0;
	if (pep_send_last_name((enum pep_send_last)send_last)[0] != '?')
		n->cfg.send_last = (enum pep_send_last)send_last;
	n->cfg.notify_retract = sqlite3_column_int(s, 6) != 0;
	n->cfg.notify_delete = sqlite3_column_int(s, 7) != 0;
	if (sqlite3_column_type(s, 8) != SQLITE_NULL)
		n->cfg.title = xstrdup(col_text(s, 8));
	n->items = (unsigned)sqlite3_column_int64(s, 9);
	n->bytes = (size_t)sqlite3_column_int64(s, 10);
	n->created = sqlite3_column_int64(s, 11);
	n->node = arena_strdup(a, col_text(s, 12));
	return sqlite3_column_int64(s, 0);
}

/* Node name of uid: 1 with *id and *n filled, 0 if none, -1. */
static int
node_get(sqlite3_int64 uid, const char *node, struct arena *a,
    sqlite3_int64 *id, struct pep_node_info *n)
{
	sqlite3_stmt *s = store_sql(sql_node_get);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, uid);
	sqlite3_bind_text(s, 2, node, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*id = node_fill(s, a, n);
	else if (rc != SQLITE_DONE)
		store_sql_warn("pep: node");
	store_sql_done(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* A list of nodes, with the ids of their rows. */
struct node_list {
	struct pep_node_info *v;
	sqlite3_int64 *ids;
	size_t n;
};

static void
node_list_free(struct node_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		pep_config_free(&l->v[i].cfg);
	free(l->v);
	free(l->ids);
	memset(l, 0, sizeof(*l));
}

/* Every node of uid, by name: 0 or -1. */
static int
node_list(sqlite3_int64 uid, struct arena *a, struct node_list *l)
{
	sqlite3_stmt *s = store_sql(sql_node_list);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, uid);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
		l->ids = xreallocarray(l->ids, l->n + 1, sizeof(*l->ids));
		l->ids[l->n] = node_fill(s, a, &l->v[l->n]);
		l->n++;
	}
	if (rc != SQLITE_DONE)
		store_sql_warn("pep: node list");
	store_sql_done(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Bind a configuration as ?first.. in NODE_COLS order (access through
 * title). */
static int
bind_config(sqlite3_stmt *s, int first, const struct pep_config *c)
{
	char *groups = groups_join(c);
	int rc = SQLITE_OK;

	rc |= sqlite3_bind_int(s, first, (int)c->access);
	if (groups != NULL)
		rc |= sqlite3_bind_text(s, first + 1, groups, -1,
		    SQLITE_TRANSIENT);
	rc |= sqlite3_bind_int64(s, first + 2, c->max_items);
	rc |= sqlite3_bind_int(s, first + 3, c->persist != 0);
	rc |= sqlite3_bind_int(s, first + 4, (int)c->send_last);
	rc |= sqlite3_bind_int(s, first + 5, c->notify_retract != 0);
	rc |= sqlite3_bind_int(s, first + 6, c->notify_delete != 0);
	if (c->title != NULL)
		rc |= sqlite3_bind_text(s, first + 7, c->title, -1,
		    SQLITE_STATIC);
	free(groups);
	return rc == SQLITE_OK ? 0 : -1;
}

static const char sql_node_insert[] =
    "INSERT INTO pep_node (user_id, node, access, groups, max_items,"
    " persist, send_last, notify_retract, notify_delete, title, created)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
static const char sql_node_update[] =
    "UPDATE pep_node SET access = ?2, groups = ?3, max_items = ?4,"
    " persist = ?5, send_last = ?6, notify_retract = ?7,"
    " notify_delete = ?8, title = ?9 WHERE id = ?1";
static const char sql_node_delete[] = "DELETE FROM pep_node WHERE id = ?1";

static int
node_insert(sqlite3_int64 uid, const char *node, const struct pep_config *c,
    sqlite3_int64 *id)
{
	sqlite3_stmt *s = store_sql(sql_node_insert);

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, uid);
	sqlite3_bind_text(s, 2, node, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 11, (sqlite3_int64)time(NULL));
	if (bind_config(s, 3, c) == -1 ||
	    store_sql_write(s, "pep: node insert", STORE_ERROR) != STORE_OK)
		return -1;
	*id = sqlite3_last_insert_rowid(store_db());
	return 0;
}

static int
node_update(sqlite3_int64 id, const struct pep_config *c)
{
	sqlite3_stmt *s = store_sql(sql_node_update);

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	if (bind_config(s, 2, c) == -1 ||
	    store_sql_write(s, "pep: node update", STORE_ERROR) != STORE_OK)
		return -1;
	return 0;
}

/* Run sql with ?1 = id, and ?2 = text if not NULL: 0 or -1. */
static int
exec_id(const char *sql, sqlite3_int64 id, const char *text,
    const char *what)
{
	sqlite3_stmt *s = store_sql(sql);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	if (text != NULL)
		sqlite3_bind_text(s, 2, text, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		store_sql_warn(what);
	store_sql_done(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

/* A number sql computes from ?1 = id (and ?2 = text, ?3 = n): >= 0, or
 * -1 on error. */
static sqlite3_int64
query_number(const char *sql, sqlite3_int64 id, const char *text,
    sqlite3_int64 n, const char *what)
{
	sqlite3_stmt *s = store_sql(sql);
	sqlite3_int64 v = 0;
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	if (text != NULL)
		sqlite3_bind_text(s, 2, text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, n);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	else if (rc != SQLITE_DONE) {
		store_sql_warn(what);
		v = -1;
	}
	store_sql_done(s);
	return v;
}

static const char sql_node_recount[] =
    "UPDATE pep_node SET items = (SELECT count(*) FROM pep_item"
    " WHERE node_id = ?1), bytes = (SELECT total(size) FROM pep_item"
    " WHERE node_id = ?1) WHERE id = ?1";
static const char sql_items_purge[] =
    "DELETE FROM pep_item WHERE node_id = ?1";
static const char sql_item_delete[] =
    "DELETE FROM pep_item WHERE node_id = ?1 AND item = ?2";
static const char sql_item_delete_row[] =
    "DELETE FROM pep_item WHERE id = ?1";
static const char sql_items_beyond[] =
    "SELECT id, item FROM pep_item WHERE node_id = ?1"
    " ORDER BY id DESC LIMIT -1 OFFSET ?2";

/*
 * Keep the newest keep items of node id; the ids of those dropped go to
 * *dropped (malloc'ed, n of them) when dropped is not NULL.  0 or -1.
 */
static int
trim(sqlite3_int64 id, unsigned keep, char ***dropped, size_t *n)
{
	sqlite3_stmt *s = store_sql(sql_items_beyond);
	sqlite3_int64 *rows = NULL;
	size_t nrows = 0;
	int rc, ret = 0;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, keep);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		rows = xreallocarray(rows, nrows + 1, sizeof(*rows));
		rows[nrows++] = sqlite3_column_int64(s, 0);
		if (dropped != NULL) {
			*dropped = xreallocarray(*dropped, *n + 1,
			    sizeof(**dropped));
			(*dropped)[(*n)++] = xstrdup(col_text(s, 1));
		}
	}
	if (rc != SQLITE_DONE) {
		store_sql_warn("pep: trim");
		ret = -1;
	}
	store_sql_done(s);
	for (size_t i = 0; ret == 0 && i < nrows; i++)
		ret = exec_id(sql_item_delete_row, rows[i], NULL,
		    "pep: trim delete");
	free(rows);
	if (ret == 0)
		ret = exec_id(sql_node_recount, id, NULL, "pep: recount");
	return ret;
}

/* Reading items. */

#define ITEM_COLS "item, publisher, stamp, size, payload, id"

static const char sql_items_newest[] =
    "SELECT " ITEM_COLS " FROM pep_item WHERE node_id = ?1"
    " ORDER BY id DESC LIMIT ?2";
static const char sql_item_by_id[] =
    "SELECT " ITEM_COLS " FROM pep_item WHERE node_id = ?1 AND item = ?2";
static const char sql_items_meta[] =
    "SELECT item, publisher, stamp, size, NULL, id FROM pep_item"
    " WHERE node_id = ?1 ORDER BY id";

/* Items read, with their rows' ids for ordering. */
struct item_list {
	struct pep_item *v;
	sqlite3_int64 *rows;
	size_t n;
	size_t bytes;
};

static void
item_list_free(struct item_list *l)
{
	free(l->v);
	free(l->rows);
	memset(l, 0, sizeof(*l));
}

static void
item_add(struct item_list *l, sqlite3_stmt *s, struct arena *a,
    const char *node)
{
	struct pep_item *it;

	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->rows = xreallocarray(l->rows, l->n + 1, sizeof(*l->rows));
	it = &l->v[l->n];
	it->node = node;
	it->id = arena_strdup(a, col_text(s, 0));
	it->publisher = arena_strdup(a, col_text(s, 1));
	it->stamp_ms = sqlite3_column_int64(s, 2);
	it->len = (size_t)sqlite3_column_int64(s, 3);
	it->payload = NULL;
	if (sqlite3_column_type(s, 4) != SQLITE_NULL) {
		it->len = (size_t)sqlite3_column_bytes(s, 4);
		it->payload = arena_strndup(a,
		    (const char *)sqlite3_column_text(s, 4), it->len);
	}
	l->rows[l->n] = sqlite3_column_int64(s, 5);
	l->bytes += it->len;
	l->n++;
}

/*
 * Step s, adding rows to l until max_bytes would be passed (at least one
 * row is taken); *more says whether rows were left.  0 or -1.
 */
static int
items_step(sqlite3_stmt *s, struct arena *a, const char *node,
    struct item_list *l, size_t max_bytes, int *more)
{
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		size_t len = (size_t)sqlite3_column_int64(s, 3);

		if (max_bytes != 0 && l->n > 0 && l->bytes + len > max_bytes) {
			*more = 1;
			rc = SQLITE_DONE;
			break;
		}
		item_add(l, s, a, node);
	}
	if (rc != SQLITE_DONE)
		store_sql_warn("pep: items");
	store_sql_done(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Put l in publish order (row id). */
static void
items_sort(struct item_list *l)
{
	for (size_t i = 1; i < l->n; i++)
		for (size_t k = i; k > 0 && l->rows[k - 1] > l->rows[k]; k--) {
			struct pep_item t = l->v[k];
			sqlite3_int64 r = l->rows[k];

			l->v[k] = l->v[k - 1];
			l->rows[k] = l->rows[k - 1];
			l->v[k - 1] = t;
			l->rows[k - 1] = r;
		}
}

/* The requester's standing with the owner uid (strings in a). */

static const char sql_roster_item[] =
    "SELECT sub, groups FROM roster WHERE user_id = ?1 AND jid = ?2";
static const char sql_blocked[] =
    "SELECT 1 FROM blocklist WHERE user_id = ?1 AND jid IN (?2, ?3, ?4, ?5)";

/* 0 with st (and *blocked) filled, -1 on error. */
static int
standing_get(sqlite3_int64 uid, const char *requester,
    const char *const forms[4], struct pep_standing *st, int *blocked)
{
	sqlite3_stmt *s;
	int rc;

	memset(st, 0, sizeof(*st));
	*blocked = 0;
	if ((s = store_sql(sql_blocked)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, uid);
	for (int i = 0; i < 4; i++)
		if (forms[i] != NULL)
			sqlite3_bind_text(s, 2 + i, forms[i], -1,
			    SQLITE_STATIC);
	rc = sqlite3_step(s);
	*blocked = rc == SQLITE_ROW;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		store_sql_warn("pep: block list");
	store_sql_done(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return -1;
	if ((s = store_sql(sql_roster_item)) == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, uid);
	sqlite3_bind_text(s, 2, requester, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		int sub = sqlite3_column_int(s, 0);

		st->item = (sub & ROSTER_SUB_ITEM) != 0;
		st->from = (sub & ROSTER_SUB_FROM) != 0;
		groups_split(sqlite3_column_type(s, 1) == SQLITE_NULL ? NULL :
		    col_text(s, 1), &st->groups, &st->ngroups);
	} else if (rc != SQLITE_DONE)
		store_sql_warn("pep: roster item");
	store_sql_done(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static void
standing_free(struct pep_standing *st)
{
	for (size_t i = 0; i < st->ngroups; i++)
		free(st->groups[i]);
	free(st->groups);
	st->groups = NULL;
	st->ngroups = 0;
}

/* The owner and the requester: is the requester the owner's bare JID. */
static int
is_self(const char *user, const char *host, const char *bare)
{
	size_t n = strlen(user);

	return bare != NULL && strncmp(bare, user, n) == 0 &&
	    bare[n] == '@' && strcmp(bare + n + 1, host) == 0;
}

/*
 * Load.
 */

static const char sql_legacy_bookmarks[] =
    "SELECT data FROM private WHERE user_id = ?1"
    " AND ns = 'storage:bookmarks' AND name = 'storage'";

struct load_job {
	struct store_job job;
	char *user, *host;
	pep_load_cb cb;
	struct arena *a;
	struct node_list nodes;
	struct pep_item *last;
	char *legacy;
};

static int
has_node(const struct node_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].node, name) == 0)
			return 1;
	return 0;
}

static enum store_status
run_load(struct store_job *sj)
{
	struct load_job *j = (struct load_job *)sj;
	sqlite3_int64 uid;
	sqlite3_stmt *s;
	int r;

	if ((r = user_id(j->user, j->host, &uid)) <= 0)
		return r < 0 ? STORE_ERROR : STORE_NOT_FOUND;
	if (node_list(uid, j->a, &j->nodes) == -1)
		return STORE_ERROR;
	j->last = xcalloc(j->nodes.n + 1, sizeof(*j->last));
	for (size_t i = 0; i < j->nodes.n; i++) {
		struct item_list l = { 0 };
		int more = 0;

		if ((s = store_sql(sql_items_newest)) == NULL)
			return STORE_ERROR;
		sqlite3_bind_int64(s, 1, j->nodes.ids[i]);
		sqlite3_bind_int64(s, 2, 1);
		if (items_step(s, j->a, j->nodes.v[i].node, &l, 0, &more) ==
		    -1) {
			item_list_free(&l);
			return STORE_ERROR;
		}
		if (l.n > 0)
			j->last[i] = l.v[0];
		item_list_free(&l);
	}
	if (has_node(&j->nodes, "storage:bookmarks") ||
	    has_node(&j->nodes, "urn:xmpp:bookmarks:1"))
		return STORE_OK;
	if ((s = store_sql(sql_legacy_bookmarks)) == NULL)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, uid);
	if (sqlite3_step(s) == SQLITE_ROW)
		j->legacy = xstrdup(col_text(s, 0));
	store_sql_done(s);
	return STORE_OK;
}

static void
complete_load(struct store_job *sj)
{
	struct load_job *j = (struct load_job *)sj;

	j->cb(j->job.owner, j->job.tag, j->job.status, j->nodes.v,
	    j->job.status == STORE_OK ? j->nodes.n : 0, j->last, j->legacy);
}

static void
free_load(struct store_job *sj)
{
	struct load_job *j = (struct load_job *)sj;

	node_list_free(&j->nodes);
	free(j->last);
	arena_free(j->a);
	free(j->legacy);
	free(j->user);
	free(j->host);
	free(j);
}

static const struct store_job_ops load_ops = {
	"pep load", 0, run_load, complete_load, free_load };

void
pep_load(const char *user, const char *host, pep_load_cb cb, uint64_t owner,
    uint64_t tag)
{
	struct load_job *j = xcalloc(1, sizeof(*j));

	j->job.ops = &load_ops;
	j->job.owner = owner;
	j->job.tag = tag;
	j->user = xstrdup(user);
	j->host = xstrdup(host);
	j->cb = cb;
	j->a = arena_new(1024);
	store_job_submit(&j->job);
}

/*
 * Reads.
 */

struct read_job {
	struct store_job job;
	struct pep_read q;           /* strings owned by the job */
	pep_read_cb cb;
	struct arena *a;
	int blocked;
	struct node_list nodes;
	struct item_list items;
	int truncated;
};

/* ITEMS: the items of node row id the query asks for. */
static int
read_items(struct read_job *j, sqlite3_int64 id, const char *node)
{
	const struct pep_read *q = &j->q;
	sqlite3_stmt *s;
	int more = 0;

	if (q->nids > 0) {
		for (size_t i = 0; i < q->nids; i++) {
			if ((s = store_sql(sql_item_by_id)) == NULL)
				return -1;
			sqlite3_bind_int64(s, 1, id);
			sqlite3_bind_text(s, 2, q->ids[i], -1, SQLITE_STATIC);
			if (items_step(s, j->a, node, &j->items, 0, &more) ==
			    -1)
				return -1;
		}
		/* The newest that fit in max_bytes, as without ids. */
		items_sort(&j->items);
		while (q->max_bytes != 0 && j->items.n > 1 &&
		    j->items.bytes > q->max_bytes) {
			j->items.bytes -= j->items.v[0].len;
			memmove(&j->items.v[0], &j->items.v[1],
			    (j->items.n - 1) * sizeof(j->items.v[0]));
			memmove(&j->items.rows[0], &j->items.rows[1],
			    (j->items.n - 1) * sizeof(j->items.rows[0]));
			j->items.n--;
			more = 1;
		}
	} else {
		if ((s = store_sql(sql_items_newest)) == NULL)
			return -1;
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_int64(s, 2, q->max_items ? (sqlite3_int64)q->max_items : -1);
		if (items_step(s, j->a, node, &j->items, q->max_bytes,
		        &more) == -1)
			return -1;
	}
	j->truncated = more;
	items_sort(&j->items);
	return 0;
}

/* ADMIN: every item's id and size, of every node listed. */
static int
read_admin(struct read_job *j)
{
	sqlite3_stmt *s;
	int more = 0;

	for (size_t i = 0; i < j->nodes.n; i++) {
		if ((s = store_sql(sql_items_meta)) == NULL)
			return -1;
		sqlite3_bind_int64(s, 1, j->nodes.ids[i]);
		if (items_step(s, j->a, j->nodes.v[i].node, &j->items, 0,
		        &more) == -1)
			return -1;
	}
	return 0;
}

/* Keep the nodes of l whose verdict for st allows. */
static void
keep_allowed(struct node_list *l, const struct pep_standing *st)
{
	size_t k = 0;

	for (size_t i = 0; i < l->n; i++) {
		l->v[i].verdict = pep_access_check(&l->v[i].cfg, st);
		if (l->v[i].verdict != PEP_ALLOWED) {
			pep_config_free(&l->v[i].cfg);
			continue;
		}
		l->v[k] = l->v[i];
		l->ids[k++] = l->ids[i];
	}
	l->n = k;
}

static enum store_status
run_read(struct store_job *sj)
{
	struct read_job *j = (struct read_job *)sj;
	const struct pep_read *q = &j->q;
	struct pep_standing st;
	sqlite3_int64 uid, id = 0;
	int r, self = is_self(q->user, q->host, q->requester);
	int ret = 0;

	if ((r = user_id(q->user, q->host, &uid)) <= 0)
		return r < 0 ? STORE_ERROR : STORE_NOT_FOUND;
	if (q->kind == PEP_READ_ADMIN) {
		j->nodes.v = xcalloc(1, sizeof(*j->nodes.v));
		j->nodes.ids = xcalloc(1, sizeof(*j->nodes.ids));
		if (q->node == NULL)
			ret = node_list(uid, j->a, &j->nodes);
		else if ((r = node_get(uid, q->node, j->a, &id,
		             &j->nodes.v[0])) > 0) {
			j->nodes.ids[0] = id;
			j->nodes.n = 1;
		} else
			ret = r;
		return ret == -1 || read_admin(j) == -1 ? STORE_ERROR :
		    STORE_OK;
	}
	memset(&st, 0, sizeof(st));
	if (self)
		st.self = 1;
	else if (standing_get(uid, q->requester, q->forms, &st,
	             &j->blocked) == -1)
		return STORE_ERROR;
	if (j->blocked) {
		standing_free(&st);
		return STORE_OK;
	}
	if (q->kind == PEP_READ_NODES) {
		ret = node_list(uid, j->a, &j->nodes);
		keep_allowed(&j->nodes, &st);
	} else {
		j->nodes.v = xcalloc(1, sizeof(*j->nodes.v));
		j->nodes.ids = xcalloc(1, sizeof(*j->nodes.ids));
		if ((r = node_get(uid, q->node, j->a, &id, &j->nodes.v[0])) >
		    0) {
			struct pep_node_info *n = &j->nodes.v[0];

			j->nodes.n = 1;
			j->nodes.ids[0] = id;
			n->verdict = pep_access_check(&n->cfg, &st);
			if (q->kind == PEP_READ_ITEMS &&
			    n->verdict == PEP_ALLOWED)
				ret = read_items(j, id, n->node);
		} else
			ret = r;
	}
	standing_free(&st);
	return ret == -1 ? STORE_ERROR : STORE_OK;
}

static void
complete_read(struct store_job *sj)
{
	struct read_job *j = (struct read_job *)sj;
	struct pep_read_result r = { 0 };

	if (j->job.status == STORE_OK) {
		r.blocked = j->blocked;
		r.nodes = j->nodes.v;
		r.nnodes = j->nodes.n;
		r.items = j->items.v;
		r.nitems = j->items.n;
		r.truncated = j->truncated;
	}
	j->cb(j->job.owner, j->job.tag, j->job.status, &r);
}

static void
free_read(struct store_job *sj)
{
	struct read_job *j = (struct read_job *)sj;

	node_list_free(&j->nodes);
	item_list_free(&j->items);
	free((void *)j->q.ids);
	arena_free(j->a);
	free(j);
}

static const struct store_job_ops read_ops = {
	"pep read", 0, run_read, complete_read, free_read };

/* A copy of s in the job's arena (NULL stays NULL). */
static const char *
keep(struct arena *a, const char *s)
{
	return s != NULL ? arena_strdup(a, s) : NULL;
}

void
pep_read(const struct pep_read *q, pep_read_cb cb, uint64_t owner,
    uint64_t tag)
{
	struct read_job *j = xcalloc(1, sizeof(*j));
	const char **ids = NULL;

	j->job.ops = &read_ops;
	j->job.owner = owner;
	j->job.tag = tag;
	j->cb = cb;
	j->a = arena_new(4096);
	j->q = *q;
	j->q.user = keep(j->a, q->user);
	j->q.host = keep(j->a, q->host);
	j->q.node = keep(j->a, q->node);
	j->q.requester = keep(j->a, q->requester);
	for (int i = 0; i < 4; i++)
		j->q.forms[i] = keep(j->a, q->forms[i]);
	if (q->nids > 0) {
		ids = xreallocarray(NULL, q->nids, sizeof(*ids));
		for (size_t i = 0; i < q->nids; i++)
			ids[i] = keep(j->a, q->ids[i]);
	}
	j->q.ids = ids;
	store_job_submit(&j->job);
}

/*
 * Last items.
 */

struct last_job {
	struct store_job job;
	struct pep_last_query q;     /* strings and arrays owned by the job */
	pep_last_cb cb;
	struct arena *a;
	struct pep_last *v;
	size_t n;
};

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int
wants_node(const struct pep_last_query *q, const char *node)
{
	return q->nnodes > 0 && bsearch(&node, q->nodes, q->nnodes, sizeof(*q->nodes),
	    name_cmp) != NULL;
}

/* Every node of an owner with its newest item (NULL columns from 13 on
 * when it has none), in one statement: node_fill's columns, then the
 * item's. */
static const char sql_nodes_last[] =
    "SELECT n.id, n.access, n.groups, n.max_items, n.persist, n.send_last,"
    " n.notify_retract, n.notify_delete, n.title, n.items, n.bytes,"
    " n.created, n.node, i.item, i.publisher, i.stamp, i.size, i.payload"
    " FROM pep_node n LEFT JOIN pep_item i ON i.id ="
    " (SELECT max(id) FROM pep_item WHERE node_id = n.id)"
    " WHERE n.user_id = ?1";

/* The newest item of the node row s is on, for owner, into j's results;
 * a node that does not persist items comes with no payload. */
static void
last_add(struct last_job *j, const char *owner, sqlite3_stmt *s,
    const struct pep_node_info *n)
{
	struct pep_last *v;

	if (n->cfg.persist && sqlite3_column_type(s, 13) == SQLITE_NULL)
		return;
	j->v = xreallocarray(j->v, j->n + 1, sizeof(*j->v));
	v = &j->v[j->n++];
	memset(v, 0, sizeof(*v));
	v->owner = owner;
	v->persist = n->cfg.persist;
	v->item.node = n->node;
	if (!n->cfg.persist)
		return;
	v->item.id = arena_strdup(j->a, col_text(s, 13));
	v->item.publisher = arena_strdup(j->a, col_text(s, 14));
	v->item.stamp_ms = sqlite3_column_int64(s, 15);
	v->item.len = (size_t)sqlite3_column_bytes(s, 17);
	v->item.payload = arena_strndup(j->a,
	    (const char *)sqlite3_column_text(s, 17), v->item.len);
}

/* One owner's nodes for the requester. */
static int
last_owner(struct last_job *j, const char *owner)
{
	const struct pep_last_query *q = &j->q;
	char *user = arena_strdup(j->a, owner), *host;
	struct pep_standing st;
	sqlite3_stmt *s;
	sqlite3_int64 uid;
	int r, rc, blocked = 0;

	if ((host = strchr(user, '@')) == NULL)
		return 0;
	*host++ = '\0';
	if ((r = user_id(user, host, &uid)) <= 0)
		return r;
	memset(&st, 0, sizeof(st));
	if (strcmp(owner, q->requester) == 0)
		st.self = 1;
	else if (standing_get(uid, q->requester, q->forms, &st,
	             &blocked) == -1)
		return -1;
	if (blocked) {
		standing_free(&st);
		return 0;
	}
	if ((s = store_sql(sql_nodes_last)) == NULL) {
		standing_free(&st);
		return -1;
	}
	sqlite3_bind_int64(s, 1, uid);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct pep_node_info n;

		node_fill(s, j->a, &n);
		if (n.cfg.send_last != PEP_SEND_NEVER &&
		    (!q->presence ||
		        n.cfg.send_last == PEP_SEND_ON_SUB_AND_PRESENCE) &&
		    wants_node(q, n.node) &&
		    pep_access_check(&n.cfg, &st) == PEP_ALLOWED)
			last_add(j, owner, s, &n);
		pep_config_free(&n.cfg);
	}
	if (rc != SQLITE_DONE)
		store_sql_warn("pep: last items");
	store_sql_done(s);
	standing_free(&st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static enum store_status
run_last(struct store_job *sj)
{
	struct last_job *j = (struct last_job *)sj;

	for (size_t i = 0; i < j->q.nowners; i++)
		if (last_owner(j, j->q.owners[i]) == -1)
			return STORE_ERROR;
	return STORE_OK;
}

static void
complete_last(struct store_job *sj)
{
	struct last_job *j = (struct last_job *)sj;

	j->cb(j->job.owner, j->job.tag, j->job.status, j->v,
	    j->job.status == STORE_OK ? j->n : 0);
}

static void
free_last(struct store_job *sj)
{
	struct last_job *j = (struct last_job *)sj;

	free((void *)j->q.owners);
	free((void *)j->q.nodes);
	free(j->v);
	arena_free(j->a);
	free(j);
}

static const struct store_job_ops last_ops = {
	"pep last items", 0, run_last, complete_last, free_last };

/* A copy of v[0..n) in a, in an array of its own (malloc'ed). */
static const char **
keep_list(struct arena *a, const char *const *v, size_t n)
{
	const char **out = n ? xreallocarray(NULL, n, sizeof(*out)) : NULL;

	for (size_t i = 0; i < n; i++)
		out[i] = arena_strdup(a, v[i]);
	return out;
}

void
pep_last_items(const struct pep_last_query *q, pep_last_cb cb,
    uint64_t owner, uint64_t tag)
{
	struct last_job *j = xcalloc(1, sizeof(*j));
	const char **nodes;

	j->job.ops = &last_ops;
	j->job.owner = owner;
	j->job.tag = tag;
	j->cb = cb;
	j->a = arena_new(4096);
	j->q = *q;
	j->q.requester = keep(j->a, q->requester);
	for (int i = 0; i < 4; i++)
		j->q.forms[i] = keep(j->a, q->forms[i]);
	j->q.owners = keep_list(j->a, q->owners, q->nowners);
	nodes = keep_list(j->a, q->nodes, q->nnodes);
	if (q->nnodes > 1)
		qsort(nodes, q->nnodes, sizeof(*nodes), name_cmp);
	j->q.nodes = nodes;
	store_job_submit(&j->job);
}

/*
 * Writes.
 */

struct write_job {
	struct store_job job;
	int kind;                    /* WRITE_* */
	char *user, *host, *node, *id, *publisher, *payload;
	size_t len;
	int64_t stamp_ms;
	unsigned items_max, nodes_max, require;
	size_t account_max;
	int have_cfg;
	struct pep_config cfg;       /* create / configure: the argument */
	pep_write_cb cb;
	struct arena *a;
	struct pep_write_result r;
};

enum { WRITE_PUBLISH = -1, WRITE_RETRACT = -2 }; /* else a pep_node_op */

static const char sql_node_count[] =
    "SELECT count(*) FROM pep_node WHERE user_id = ?1";

/* Would one more node pass nodes_max?  1 yes, 0 no, -1 error. */
static int
too_many_nodes(const struct write_job *j, sqlite3_int64 uid)
{
	sqlite3_int64 n;

	if (j->nodes_max == 0)
		return 0;
	if ((n = query_number(sql_node_count, uid, NULL, 0,
	         "pep: node count")) < 0)
		return -1;
	return n >= (sqlite3_int64)j->nodes_max;
}

static const char sql_account_bytes[] =
    "SELECT total(bytes) FROM pep_node WHERE user_id = ?1";
static const char sql_item_size[] =
    "SELECT size FROM pep_item WHERE node_id = ?1 AND item = ?2";
/* The bytes of the items a publish would push out: beyond the newest
 * ?3 other than the one replaced. */
static const char sql_bytes_beyond[] =
    "SELECT total(size) FROM (SELECT size FROM pep_item WHERE node_id = ?1"
    " AND item != ?2 ORDER BY id DESC LIMIT -1 OFFSET ?3)";
static const char sql_item_insert[] =
    "INSERT OR REPLACE INTO pep_item (node_id, item, publisher, stamp, size, payload)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/* Would the publish pass account_max?  1 yes, 0 no, -1 error. */
static int
over_quota(const struct write_job *j, sqlite3_int64 uid, sqlite3_int64 nid,
    unsigned keep_n)
{
	sqlite3_int64 total, old = 0, pushed = 0;

	if (j->account_max == 0)
		return 0;
	if ((total = query_number(sql_account_bytes, uid, NULL, 0,
	         "pep: account bytes")) < 0)
		return -1;
	/* Well within: what the item replaces or pushes out need not be
	 * counted. */
	if ((size_t)total + j->len <= j->account_max)
		return 0;
	if (nid != 0 &&
	    ((old = query_number(sql_item_size, nid, j->id, 0,
	          "pep: item size")) < 0 ||
	        (pushed = query_number(sql_bytes_beyond, nid, j->id,
	             keep_n > 0 ? keep_n - 1 : 0, "pep: bytes beyond")) < 0))
		return -1;
	return (size_t)(total - old - pushed) + j->len > j->account_max;
}

static enum store_status
run_publish(struct write_job *j, sqlite3_int64 uid)
{
	struct pep_node_info n;
	sqlite3_int64 nid = 0;
	sqlite3_stmt *s;
	unsigned keep_n;
	int r;

	if ((r = node_get(uid, j->node, j->a, &nid, &n)) < 0)
		return STORE_ERROR;
	if (r == 0) {
		if ((r = too_many_nodes(j, uid)) != 0) {
			j->r.refused = PEP_REFUSED_NODES;
			return r < 0 ? STORE_ERROR : STORE_EXISTS;
		}
		pep_config_copy(&n.cfg, &j->cfg);
		nid = 0;
	} else if (!pep_config_matches(&n.cfg, &j->cfg, j->require)) {
		j->r.refused = PEP_REFUSED_PRECONDITION;
		pep_config_free(&j->r.cfg);
		j->r.cfg = n.cfg;
		return STORE_EXISTS;
	}
	keep_n = pep_config_keep(&n.cfg, j->items_max);
	if (n.cfg.persist && (r = over_quota(j, uid, nid, keep_n)) != 0) {
		pep_config_free(&n.cfg);
		j->r.refused = PEP_REFUSED_QUOTA;
		return r < 0 ? STORE_ERROR : STORE_EXISTS;
	}
	pep_config_free(&j->r.cfg);
	j->r.cfg = n.cfg;
	if (nid == 0) {
		if (node_insert(uid, j->node, &j->cfg, &nid) == -1)
			return STORE_ERROR;
		j->r.created = 1;
	}
	if (!n.cfg.persist)
		return STORE_OK;
	/* INSERT OR REPLACE: an item with the same id goes, and the new
	 * one gets the newest rowid (publish order). */
	if ((s = store_sql(sql_item_insert)) == NULL)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, nid);
	sqlite3_bind_text(s, 2, j->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, j->publisher, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, j->stamp_ms);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)j->len);
	sqlite3_bind_text(s, 6, j->payload, (int)j->len, SQLITE_STATIC);
	if (store_sql_write(s, "pep: item insert", STORE_ERROR) != STORE_OK)
		return STORE_ERROR;
	/* Room for one more (new node: none before): only the counts. */
	if ((j->r.created ? 0 : n.items) + 1 <= keep_n)
		return exec_id(sql_node_recount, nid, NULL, "pep: recount") ==
		        -1 ? STORE_ERROR : STORE_OK;
	return trim(nid, keep_n, &j->r.dropped, &j->r.ndropped) == -1 ?
	    STORE_ERROR : STORE_OK;
}

static enum store_status
run_node_op(struct write_job *j, sqlite3_int64 uid)
{
	struct pep_node_info n;
	sqlite3_int64 nid = 0;
	int r;

	if ((r = node_get(uid, j->node, j->a, &nid, &n)) < 0)
		return STORE_ERROR;
	if (r > 0)
		j->r.cfg = n.cfg;
	switch (j->kind) {
	case PEP_NODE_CREATE:
		if (r > 0)
			return STORE_EXISTS;
		if ((r = too_many_nodes(j, uid)) != 0) {
			j->r.refused = PEP_REFUSED_NODES;
			return r < 0 ? STORE_ERROR : STORE_EXISTS;
		}
		pep_config_free(&j->r.cfg);
		pep_config_copy(&j->r.cfg, &j->cfg);
		j->r.created = 1;
		return node_insert(uid, j->node, &j->cfg, &nid) == -1 ?
		    STORE_ERROR : STORE_OK;
	case WRITE_RETRACT:
		if (r == 0)
			return STORE_NOT_FOUND;
		if (exec_id(sql_item_delete, nid, j->id, "pep: retract") == -1)
			return STORE_ERROR;
		j->r.found = sqlite3_changes(store_db()) > 0;
		return exec_id(sql_node_recount, nid, NULL, "pep: recount") ==
		        -1 ? STORE_ERROR : STORE_OK;
	default:
		break;
	}
	if (r == 0)
		return STORE_NOT_FOUND;
	switch (j->kind) {
	case PEP_NODE_CONFIGURE:
		pep_config_free(&j->r.cfg);
		pep_config_copy(&j->r.cfg, &j->cfg);
		if (node_update(nid, &j->cfg) == -1 ||
		    trim(nid, j->cfg.persist ? pep_config_keep(&j->cfg,
		        j->items_max) : 0, NULL, NULL) == -1)
			return STORE_ERROR;
		return STORE_OK;
	case PEP_NODE_DELETE:
		return exec_id(sql_node_delete, nid, NULL, "pep: delete") ==
		        -1 ? STORE_ERROR : STORE_OK;
	default: /* PEP_NODE_PURGE */
		return exec_id(sql_items_purge, nid, NULL, "pep: purge") == -1 ||
		        exec_id(sql_node_recount, nid, NULL, "pep: recount") ==
		        -1 ? STORE_ERROR : STORE_OK;
	}
}

static enum store_status
run_write(struct store_job *sj)
{
	struct write_job *j = (struct write_job *)sj;
	sqlite3_int64 uid;
	int r;

	if ((r = user_id(j->user, j->host, &uid)) <= 0)
		return r < 0 ? STORE_ERROR : STORE_NOT_FOUND;
	if (j->kind == WRITE_PUBLISH)
		return run_publish(j, uid);
	return run_node_op(j, uid);
}

static void
complete_write(struct store_job *sj)
{
	struct write_job *j = (struct write_job *)sj;

	j->cb(j->job.owner, j->job.tag, j->job.status, &j->r);
}

static void
free_write(struct store_job *sj)
{
	struct write_job *j = (struct write_job *)sj;

	pep_config_free(&j->cfg);
	pep_config_free(&j->r.cfg);
	for (size_t i = 0; i < j->r.ndropped; i++)
		free(j->r.dropped[i]);
	free(j->r.dropped);
	free(j->user);
	free(j->host);
	free(j->node);
	free(j->id);
	free(j->publisher);
	free(j->payload);
	arena_free(j->a);
	free(j);
}

static const struct store_job_ops write_ops = {
	"pep write", 1, run_write, complete_write, free_write };

static struct write_job *
write_new(int kind, const char *user, const char *host, const char *node,
    pep_write_cb cb, uint64_t owner, uint64_t tag)
{
	struct write_job *j = xcalloc(1, sizeof(*j));

	j->job.ops = &write_ops;
	j->job.owner = owner;
	j->job.tag = tag;
	j->kind = kind;
	j->user = xstrdup(user);
	j->host = xstrdup(host);
	j->node = xstrdup(node);
	j->cb = cb;
	j->a = arena_new(256);
	pep_config_default(&j->cfg);
	pep_config_default(&j->r.cfg);
	return j;
}

void
pep_publish(const struct pep_publish *p, pep_write_cb cb, uint64_t owner,
    uint64_t tag)
{
	struct write_job *j = write_new(WRITE_PUBLISH, p->user, p->host,
	    p->node, cb, owner, tag);

	if (p->create != NULL) {
		pep_config_free(&j->cfg);
		pep_config_copy(&j->cfg, p->create);
	}
	j->id = xstrdup(p->id);
	j->publisher = xstrdup(p->publisher ? p->publisher : "");
	j->payload = xstrndup(p->payload, p->len);
	j->len = p->len;
	j->stamp_ms = p->stamp_ms;
	j->items_max = p->items_max;
	j->nodes_max = p->nodes_max;
	j->require = p->require;
	j->account_max = p->account_max;
	store_job_submit(&j->job);
}

void
pep_retract(const char *user, const char *host, const char *node,
    const char *id, pep_write_cb cb, uint64_t owner, uint64_t tag)
{
	struct write_job *j = write_new(WRITE_RETRACT, user, host, node, cb,
	    owner, tag);

	j->id = xstrdup(id);
	store_job_submit(&j->job);
}

void
pep_node_write(const char *user, const char *host, const char *node,
    enum pep_node_op op, const struct pep_config *cfg, unsigned items_max,
    unsigned nodes_max, pep_write_cb cb, uint64_t owner, uint64_t tag)
{
	struct write_job *j = write_new((int)op, user, host, node, cb, owner,
	    tag);

	if (cfg != NULL) {
		pep_config_free(&j->cfg);
		pep_config_copy(&j->cfg, cfg);
	}
	j->items_max = items_max;
	j->nodes_max = nodes_max;
	store_job_submit(&j->job);
}
