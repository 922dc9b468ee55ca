/*
 * Rosters: the in-memory cache of online users' rosters, its storage jobs,
 * the jabber:iq:roster IQ (RFC 6121 §2), pushes and versioning (XEP-0237),
 * and account deletion that removes the account from every roster.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "core/hooks.h"
#include "core/iq.h"
#include "jid.h"
#include "log.h"
#include "core/presence.h"
#include "core/roster.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/stanza.h"
#include "store/store_engine.h"
#include "strmap.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_ROSTER "jabber:iq:roster"
#define NS_ROSTERVER "urn:xmpp:features:rosterver"
#define NS_PREAPPROVAL "urn:xmpp:features:pre-approval"
#define GROUP_SEP '\x1f'        /* not an XML character: cannot occur */
#define ROSTER_TEXT_MAX 1023    /* name and group length limit */

struct roster {
	char *user, *host, *bare;
	struct strmap *items;       /* contact -> struct roster_item */
	size_t nvisible;            /* items with SUB_ITEM */
	uint64_t version;
	int loaded;
	uint64_t gen;               /* which load this struct waits for */
	uint64_t *waiting;          /* session ids held until loaded */
	size_t nwaiting;
};

static struct strmap *rosters;      /* bare JID -> struct roster */
static uint64_t next_gen = 1, next_push = 1;

/* Items. */

static void
item_free(struct roster_item *it)
{
	if (it == NULL)
		return;
	free(it->jid);
	free(it->name);
	free(it->request);
	for (size_t i = 0; i < it->ngroups; i++)
		free(it->groups[i]);
	free(it->groups);
	free(it);
}

static char *
groups_join(const struct roster_item *it)
{
	struct buf b = BUF_INIT;
	char *s;

	for (size_t i = 0; i < it->ngroups; i++) {
		if (i)
			buf_addc(&b, GROUP_SEP);
		buf_adds(&b, it->groups[i]);
	}
	s = it->ngroups ? buf_strdup(&b) : NULL;
	buf_free(&b);
	return s;
}

static void
groups_split(struct roster_item *it, const char *s)
{
	const char *p = s, *e;

	while (s && *p) {
		e = strchr(p, GROUP_SEP);
		if (e == NULL)
			e = p + strlen(p);
		it->groups = xreallocarray(it->groups, it->ngroups + 1,
		    sizeof(char *));
		it->groups[it->ngroups++] = xstrndup(p, (size_t)(e - p));
		p = *e ? e + 1 : e;
	}
}

/* Cache. */

struct roster *
roster_cached(const char *user, const char *host)
{
	char key[2 * JID_PART_MAX + 2];
	struct roster *r;

	if (rosters == NULL)
		return NULL;
	snprintf(key, sizeof(key), "%s@%s", user, host);
	r = strmap_get(rosters, key);
	return r && r->loaded ? r : NULL;
}

const struct roster_item *
roster_find(const struct roster *r, const char *contact)
{
	return strmap_get(r->items, contact);
}

unsigned
roster_state(const struct roster *r, const char *contact)
{
	const struct roster_item *it = roster_find(r, contact);

	return it ? it->sub : SUB_NONE;
}

struct foreach_ctx {
	void (*fn)(const struct roster_item *, void *);
	void *arg;
};

static void
foreach_one(const char *key, void *value, void *arg)
{
	struct foreach_ctx *fc = arg;

	fc->fn(value, fc->arg);
}

void
roster_foreach(const struct roster *r,
    void (*fn)(const struct roster_item *, void *), void *arg)
{
	struct foreach_ctx fc = { fn, arg };

	strmap_foreach(r->items, foreach_one, &fc);
}

static void
free_item_cb(const char *key, void *value, void *arg)
{
	item_free(value);
}

static void
roster_free(struct roster *r)
{
	strmap_foreach(r->items, free_item_cb, NULL);
	strmap_free(r->items);
	free(r->waiting);
	free(r->user);
	free(r->host);
	free(r->bare);
	free(r);
}

/* Storage jobs. */

#define UID USER_ID_SQL("?1", "?2")

static const char sql_load[] =
    "SELECT jid, name, sub, request, groups FROM roster WHERE user_id = " UID;
static const char sql_version[] =
    "SELECT version FROM roster_version WHERE user_id = " UID;
static const char sql_upsert[] =
    "INSERT INTO roster (user_id, jid, name, sub, visible, request, groups)"
    " VALUES (" UID ", ?3, ?4, ?5, ?6, ?7, ?8)"
    " ON CONFLICT (user_id, jid) DO UPDATE SET name = excluded.name,"
    " sub = excluded.sub, visible = excluded.visible,"
    " request = excluded.request, groups = excluded.groups";
static const char sql_delete[] =
    "DELETE FROM roster WHERE user_id = " UID " AND jid = ?3";
static const char sql_bump[] =
    "INSERT INTO roster_version (user_id, version) VALUES (" UID ", 1)"
    " ON CONFLICT (user_id) DO UPDATE SET version = version + 1"
    " RETURNING version";
static const char sql_state[] =
    "SELECT sub, request, name, groups FROM roster"
    " WHERE user_id = " UID " AND jid = ?3";
static const char sql_user_exists[] =
    "SELECT 1 FROM users WHERE host = ?1 AND user = ?2";
static const char sql_owners[] =
    "SELECT u.host, u.user, r.sub FROM roster r JOIN users u"
    " ON u.id = r.user_id WHERE r.jid = ?1";
static const char sql_purge[] = "DELETE FROM roster WHERE jid = ?1";
static const char sql_user_delete[] =
    "DELETE FROM users WHERE host = ?1 AND user = ?2";

static int
bind_user(sqlite3_stmt *s, const char *user, const char *host)
{
	return sqlite3_bind_text(s, 1, host, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, user, -1, SQLITE_STATIC) != SQLITE_OK;
}

static const char *
col_text(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

static char *
col_dup(sqlite3_stmt *s, int i)
{
	const char *t = col_text(s, i);

	return t ? xstrdup(t) : NULL;
}

/* Bump the user's roster version (inside the job's transaction). */
static enum store_status
bump_version(const char *user, const char *host, uint64_t *version)
{
	sqlite3_stmt *s = store_sql(sql_bump);
	enum store_status st = STORE_ERROR;

	if (s == NULL || bind_user(s, user, host))
		goto out;
	if (sqlite3_step(s) == SQLITE_ROW) {
		*version = (uint64_t)sqlite3_column_int64(s, 0);
		st = STORE_OK;
	} else
		store_sql_warn("roster version");
out:
	if (s)
		store_sql_done(s);
	return st;
}

/* Write one record (delete it when state is SUB_NONE). */
static enum store_status
write_item(const char *user, const char *host, const struct roster_item *it)
{
	sqlite3_stmt *s;
	char *groups;
	enum store_status st;

	if (it->sub == SUB_NONE) {
		if ((s = store_sql(sql_delete)) == NULL || bind_user(s, user,
			host) || sqlite3_bind_text(s, 3, it->jid, -1,
			SQLITE_STATIC) != SQLITE_OK) {
			if (s)
				store_sql_done(s);
			return STORE_ERROR;
		}
		st = store_sql_write(s, "roster delete", STORE_OK);
		return st;
	}
	if ((s = store_sql(sql_upsert)) == NULL)
		return STORE_ERROR;
	groups = groups_join(it);
	if (bind_user(s, user, host) ||
	    sqlite3_bind_text(s, 3, it->jid, -1, SQLITE_STATIC) ||
	    sqlite3_bind_text(s, 4, it->name, -1, SQLITE_STATIC) ||
	    sqlite3_bind_int(s, 5, (int)it->sub) ||
	    sqlite3_bind_int(s, 6, (it->sub & SUB_ITEM) != 0) ||
	    sqlite3_bind_text(s, 7, it->request, -1, SQLITE_STATIC) ||
	    sqlite3_bind_text(s, 8, groups, -1, SQLITE_TRANSIENT)) {
		free(groups);
		store_sql_done(s);
		return STORE_ERROR;
	}
	free(groups);
	/* No row for a missing account: the subquery gives NULL, which
	 * the NOT NULL constraint refuses (an error, logged). */
	return store_sql_write(s, "roster write", STORE_NOT_FOUND);
}

struct load_job {
	struct store_job j;
	char *user, *host, *bare;
	uint64_t gen;
	struct roster_item **items;
	size_t n;
	uint64_t version;
};

static enum store_status
load_run(struct store_job *j)
{
	struct load_job *lj = (struct load_job *)j;
	sqlite3_stmt *s = store_sql(sql_load);
	int rc;

	if (s == NULL || bind_user(s, lj->user, lj->host)) {
		if (s)
			store_sql_done(s);
		return STORE_ERROR;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct roster_item *it = xcalloc(1, sizeof(*it));

		it->jid = col_dup(s, 0);
		it->name = col_dup(s, 1);
		it->sub = (unsigned)sqlite3_column_int(s, 2);
		it->request = col_dup(s, 3);
		groups_split(it, col_text(s, 4));
		lj->items = xreallocarray(lj->items, lj->n + 1,
		    sizeof(*lj->items));
		lj->items[lj->n++] = it;
	}
	store_sql_done(s);
	if (rc != SQLITE_DONE) {
		store_sql_warn("roster load");
		return STORE_ERROR;
	}
	if ((s = store_sql(sql_version)) == NULL || bind_user(s, lj->user,
		lj->host)) {
		if (s)
			store_sql_done(s);
		return STORE_ERROR;
	}
	if (sqlite3_step(s) == SQLITE_ROW)
		lj->version = (uint64_t)sqlite3_column_int64(s, 0);
	store_sql_done(s);
	return STORE_OK;
}

static void
release_waiting(struct roster *r, int ok)
{
	for (size_t i = 0; i < r->nwaiting; i++) {
		struct session *s = sm_find_id(r->waiting[i]);

		if (s == NULL)
			continue;
		if (ok)
			session_release(s);
		else
			session_end(s, "internal-server-error",
			    "Cannot load the roster");
	}
	r->nwaiting = 0;
}

static void
load_complete(struct store_job *j)
{
	struct load_job *lj = (struct load_job *)j;
	struct roster *r = strmap_get(rosters, lj->bare);

	if (r == NULL || r->gen != lj->gen)
		return;         /* the user left while it loaded */
	if (j->status != STORE_OK) {
		log_warnx("roster: cannot load the roster of %s", lj->bare);
		strmap_del(rosters, lj->bare);
		release_waiting(r, 0);
		roster_free(r);
		return;
	}
	for (size_t i = 0; i < lj->n; i++) {
		struct roster_item *it = lj->items[i];

		lj->items[i] = NULL;
		if (it->sub & SUB_ITEM)
			r->nvisible++;
		item_free(strmap_put(r->items, it->jid, it));
	}
	r->version = lj->version;
	r->loaded = 1;
	log_debug("roster: loaded %zu items of %s (version %" PRIu64 ")",
	    lj->n, r->bare, r->version);
	release_waiting(r, 1);
}

static void
load_free(struct store_job *j)
{
	struct load_job *lj = (struct load_job *)j;

	for (size_t i = 0; i < lj->n; i++)
		item_free(lj->items[i]);
	free(lj->items);
	free(lj->user);
	free(lj->host);
	free(lj->bare);
	free(lj);
}

static const struct store_job_ops load_ops = {
	"roster load", 0, load_run, load_complete, load_free,
};

struct write_job {
	struct store_job j;
	char *user, *host;
	struct roster_item *it;
	int bump;
	/* An IQ result to send once committed (roster set). */
	uint64_t result_session;
	struct xel *result;
};

static enum store_status
write_run(struct store_job *j)
{
	struct write_job *wj = (struct write_job *)j;
	enum store_status st = write_item(wj->user, wj->host, wj->it);
	uint64_t v;

	if (st == STORE_OK && wj->bump)
		st = bump_version(wj->user, wj->host, &v);
	return st;
}

static void
write_complete(struct store_job *j)
{
	struct write_job *wj = (struct write_job *)j;
	struct session *s;

	if (j->status != STORE_OK)
		log_warnx("roster: writing %s in the roster of %s@%s failed",
		    wj->it->jid, wj->user, wj->host);
	if (wj->result && (s = sm_find_id(wj->result_session)) != NULL) {
		struct xel *r = wj->result;

		if (j->status != STORE_OK) {
			r = stanza_error(wj->result, "wait",
			    "internal-server-error", NULL);
			if (r == NULL)
				return;
			session_send(s, r);
			arena_free(r->arena);
		} else
			session_send(s, r);
	}
}

static void
write_free(struct store_job *j)
{
	struct write_job *wj = (struct write_job *)j;

	item_free(wj->it);
	if (wj->result)
		arena_free(wj->result->arena);
	free(wj->user);
	free(wj->host);
	free(wj);
}

static const struct store_job_ops write_ops = {
	"roster write", 1, write_run, write_complete, write_free,
};

static struct roster_item *
item_copy(const struct roster_item *src)
{
	struct roster_item *it = xcalloc(1, sizeof(*it));

	it->jid = xstrdup(src->jid);
	it->name = src->name ? xstrdup(src->name) : NULL;
	it->sub = src->sub;
	it->request = src->request ? xstrdup(src->request) : NULL;
	for (size_t i = 0; i < src->ngroups; i++) {
		it->groups = xreallocarray(it->groups, it->ngroups + 1,
		    sizeof(char *));
		it->groups[it->ngroups++] = xstrdup(src->groups[i]);
	}
	return it;
}

/* Write through: queue the record's new state (a copy). */
static void
submit_write(struct roster *r, const struct roster_item *it, int bump,
    struct session *result_to, struct xel *result)
{
	struct write_job *wj = xcalloc(1, sizeof(*wj));

	wj->j.ops = &write_ops;
	wj->user = xstrdup(r->user);
	wj->host = xstrdup(r->host);
	wj->it = item_copy(it);
	wj->bump = bump;
	wj->result_session = result_to ? result_to->id : 0;
	wj->result = result;
	store_job_submit(&wj->j);
}

/* Pushes (RFC 6121 §2.1.6). */

static void
item_to_xml(struct xel *q, const struct roster_item *it, int removed)
{
	struct xel *x = xel_add(q, "item", NS_ROSTER);

	xel_set_attr(x, "jid", it->jid);
	if (removed) {
		xel_set_attr(x, "subscription", "remove");
		return;
	}
	if (it->name)
		xel_set_attr(x, "name", it->name);
	xel_set_attr(x, "subscription", subscription_attr(it->sub));
	if (subscription_ask(it->sub))
		xel_set_attr(x, "ask", "subscribe");
	if (subscription_approved(it->sub))
		xel_set_attr(x, "approved", "true");
	for (size_t i = 0; i < it->ngroups; i++)
		xel_text_set(xel_add(x, "group", NS_ROSTER), it->groups[i]);
}

static void
push(struct roster *r, const struct roster_item *it, int removed)
{
	struct arena *a = arena_new(1024);
	struct xel *iq = xel_new(a, "iq", NS_CLIENT), *q;
	char ver[24];

	snprintf(ver, sizeof(ver), "%" PRIu64, r->version);
	xel_set_attr(iq, "type", "set");
	xel_set_attr(iq, "id", arena_printf(a, "push%" PRIu64, next_push++));
	q = xel_add(iq, "query", NS_ROSTER);
	xel_set_attr(q, "ver", ver);
	item_to_xml(q, it, removed);
	for (struct session *s = sm_find_bare(r->user, r->host); s;
	    s = s->next) {
		if (!s->interested)
			continue;
		xel_set_attr(iq, "to", s->full);
		session_send(s, iq);
	}
	arena_free(a);
}

/* Change a record; result (with its session) is sent once the write has
 * committed. */
static void
apply_state(struct roster *r, const char *contact, unsigned state,
    const char *request, int do_push, struct session *rs, struct xel *result)
{
	struct roster_item *it = strmap_get(r->items, contact);
	int was_item = it && (it->sub & SUB_ITEM);
	int bump;

	if (it == NULL) {
		if (state == SUB_NONE)
			return;
		it = xcalloc(1, sizeof(*it));
		it->jid = xstrdup(contact);
		strmap_put(r->items, it->jid, it);
	}
	it->sub = state;
	if (request != it->request) {
		free(it->request);
		it->request = request ? xstrdup(request) : NULL;
	}
	/* The visible roster changed: new version (XEP-0237). */
	bump = was_item || (state & SUB_ITEM);
	if (bump)
		r->version++;
	if (was_item && !(state & SUB_ITEM))
		r->nvisible--;
	else if (!was_item && (state & SUB_ITEM))
		r->nvisible++;
	submit_write(r, it, bump, rs, result);
	if (do_push && bump)
		push(r, it, !(state & SUB_ITEM));
	if (state == SUB_NONE) {
		strmap_del(r->items, contact);
		item_free(it);
	}
}

void
roster_set_state(struct roster *r, const char *contact, unsigned state,
    const char *request, int do_push)
{
	apply_state(r, contact, state, request, do_push, NULL, NULL);
}

/* Inbound subscription for a user whose roster is not loaded. */

struct inbound_job {
	struct store_job j;
	char *user, *host, *contact, *request;
	enum subscription_type type;
	roster_inbound_cb cb;
	int found;
	unsigned actions, state;
	uint64_t version;
};

static enum store_status
inbound_run(struct store_job *j)
{
	struct inbound_job *ij = (struct inbound_job *)j;
	sqlite3_stmt *s = store_sql(sql_user_exists);
	struct roster_item it = { 0 };
	struct subscription_change ch;
	enum store_status st = STORE_ERROR;
	unsigned old = SUB_NONE;
	int rc;

	if (s == NULL || bind_user(s, ij->user, ij->host)) {
		if (s)
			store_sql_done(s);
		return STORE_ERROR;
	}
	ij->found = sqlite3_step(s) == SQLITE_ROW;
	store_sql_done(s);
	if (!ij->found)
		return STORE_OK;
	if ((s = store_sql(sql_state)) == NULL)
		return STORE_ERROR;
	if (bind_user(s, ij->user, ij->host) || sqlite3_bind_text(s, 3,
		ij->contact, -1, SQLITE_STATIC) != SQLITE_OK) {
		store_sql_done(s);
		return STORE_ERROR;
	}
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		old = (unsigned)sqlite3_column_int(s, 0);
		it.request = col_dup(s, 1);
		/* name and groups are kept by the upsert below */
		it.name = col_dup(s, 2);
		groups_split(&it, col_text(s, 3));
	}
	store_sql_done(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		store_sql_warn("roster state");
		goto out;
	}
	ch = subscription_inbound(old, ij->type);
	ij->actions = ch.actions;
	ij->state = ch.state;
	st = STORE_OK;
	if (ch.state == old)
		goto out;
	it.jid = ij->contact;
	it.sub = ch.state;
	if (ij->type == SUBSCRIPTION_SUBSCRIBE &&
	    (ch.actions & SUB_ACT_FORWARD)) {
		free(it.request);       /* keep the latest request */
		it.request = ij->request ? xstrdup(ij->request) : NULL;
	} else if (!(ch.state & SUB_PENDING_IN)) {
		free(it.request);
		it.request = NULL;
	}
	st = write_item(ij->user, ij->host, &it);
	if (st == STORE_OK && ((old | ch.state) & SUB_ITEM))
		st = bump_version(ij->user, ij->host, &ij->version);
out:
	it.jid = NULL;
	free(it.name);
	free(it.request);
	for (size_t i = 0; i < it.ngroups; i++)
		free(it.groups[i]);
	free(it.groups);
	return st;
}

static void
inbound_complete(struct store_job *j)
{
	struct inbound_job *ij = (struct inbound_job *)j;

	if (j->status != STORE_OK) {
		ij->found = 0;
		ij->actions = 0;
	}
	ij->cb(j->owner, j->tag, ij->found, ij->actions, ij->state);
}

static void
inbound_free(struct store_job *j)
{
	struct inbound_job *ij = (struct inbound_job *)j;

	free(ij->user);
	free(ij->host);
	free(ij->contact);
	free(ij->request);
	free(ij);
}

static const struct store_job_ops inbound_ops = {
	"roster inbound subscription", 1, inbound_run, inbound_complete,
	inbound_free,
};

void
roster_inbound_stored(const char *user, const char *host, const char *contact,
    enum subscription_type type, const char *request, roster_inbound_cb cb,
    uint64_t owner, uint64_t tag)
{
	struct inbound_job *ij = xcalloc(1, sizeof(*ij));

	ij->j.ops = &inbound_ops;
	ij->j.owner = owner;
	ij->j.tag = tag;
	ij->user = xstrdup(user);
	ij->host = xstrdup(host);
	ij->contact = xstrdup(contact);
	ij->request = request ? xstrdup(request) : NULL;
	ij->type = type;
	ij->cb = cb;
	store_job_submit(&ij->j);
}

/* Subscription queries (XEP-0012, XEP-0030 on accounts). */

struct sub_job {
	struct store_job j;
	char *user, *host, *contact;
	roster_sub_cb cb;
	int found;
	unsigned sub;
	int cached;             /* answered from the cache */
};

static enum store_status
sub_run(struct store_job *j)
{
	struct sub_job *sj = (struct sub_job *)j;
	sqlite3_stmt *s;

	if (sj->cached)
		return STORE_OK;
	if ((s = store_sql(sql_state)) == NULL)
		return STORE_ERROR;
	if (bind_user(s, sj->user, sj->host) || sqlite3_bind_text(s, 3,
		sj->contact, -1, SQLITE_STATIC) != SQLITE_OK) {
		store_sql_done(s);
		return STORE_ERROR;
	}
	if (sqlite3_step(s) == SQLITE_ROW) {
		sj->found = 1;
		sj->sub = (unsigned)sqlite3_column_int(s, 0);
	}
	store_sql_done(s);
	return STORE_OK;
}

static void
sub_complete(struct store_job *j)
{
	struct sub_job *sj = (struct sub_job *)j;

	sj->cb(j->owner, j->tag, j->status == STORE_OK && sj->found,
	    j->status == STORE_OK ? sj->sub : SUB_NONE);
}

static void
sub_free(struct store_job *j)
{
	struct sub_job *sj = (struct sub_job *)j;

	free(sj->user);
	free(sj->host);
	free(sj->contact);
	free(sj);
}

static const struct store_job_ops sub_ops = {
	"roster subscription", 0, sub_run, sub_complete, sub_free,
};

void
roster_subscription(const char *user, const char *host, const char *contact,
    roster_sub_cb cb, uint64_t owner, uint64_t tag)
{
	struct sub_job *sj = xcalloc(1, sizeof(*sj));
	struct roster *r = roster_cached(user, host);

	sj->j.ops = &sub_ops;
	sj->j.owner = owner;
	sj->j.tag = tag;
	sj->user = xstrdup(user);
	sj->host = xstrdup(host);
	sj->contact = xstrdup(contact);
	sj->cb = cb;
	if (r) {
		/* Still through the queue, so the callback comes later. */
		const struct roster_item *it = roster_find(r, contact);

		sj->cached = 1;
		sj->found = it != NULL;
		sj->sub = it ? it->sub : SUB_NONE;
	}
	store_job_submit(&sj->j);
}

/* Account deletion. */

struct owner {
	char *user, *host;
	unsigned sub;
};

struct delete_job {
	struct store_job j;
	char *user, *host, *bare;
	store_status_cb cb;
	struct owner *owners;
	size_t nowners;
};

static enum store_status
delete_run(struct store_job *j)
{
	struct delete_job *dj = (struct delete_job *)j;
	sqlite3_stmt *s = store_sql(sql_owners);
	enum store_status st;
	int rc;
	uint64_t v;

	if (s == NULL || sqlite3_bind_text(s, 1, dj->bare, -1,
		SQLITE_STATIC) != SQLITE_OK) {
		if (s)
			store_sql_done(s);
		return STORE_ERROR;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		dj->owners = xreallocarray(dj->owners, dj->nowners + 1,
		    sizeof(*dj->owners));
		dj->owners[dj->nowners].host = col_dup(s, 0);
		dj->owners[dj->nowners].user = col_dup(s, 1);
		dj->owners[dj->nowners].sub = (unsigned)sqlite3_column_int(s, 2);
		dj->nowners++;
	}
	store_sql_done(s);
	if (rc != SQLITE_DONE)
		return STORE_ERROR;
	if ((s = store_sql(sql_purge)) == NULL || sqlite3_bind_text(s, 1,
		dj->bare, -1, SQLITE_STATIC) != SQLITE_OK) {
		if (s)
			store_sql_done(s);
		return STORE_ERROR;
	}
	if ((st = store_sql_write(s, "roster purge", STORE_OK)) != STORE_OK)
		return st;
	for (size_t i = 0; i < dj->nowners; i++)
		if ((dj->owners[i].sub & SUB_ITEM) &&
		    bump_version(dj->owners[i].user, dj->owners[i].host,
			&v) != STORE_OK)
			return STORE_ERROR;
	if ((s = store_sql(sql_user_delete)) == NULL || bind_user(s, dj->user,
		dj->host)) {
		if (s)
			store_sql_done(s);
		return STORE_ERROR;
	}
	return store_sql_write(s, "user delete", STORE_NOT_FOUND);
}

static void
delete_complete(struct store_job *j)
{
	struct delete_job *dj = (struct delete_job *)j;

	if (j->status == STORE_OK) {
		for (size_t i = 0; i < dj->nowners; i++) {
			struct roster *r = roster_cached(dj->owners[i].user,
			    dj->owners[i].host);
			struct roster_item *it;

			if (r == NULL || (it = strmap_get(r->items,
					      dj->bare)) == NULL)
				continue;
			if (it->sub & SUB_ITEM) {
				r->version++;
				r->nvisible--;
				push(r, it, 1);
			}
			strmap_del(r->items, dj->bare);
			item_free(it);
		}
		/* The requester's answer first (XEP-0077 §3.2). */
		if (dj->cb)
			dj->cb(j->owner, j->tag, j->status);
		sm_kick(dj->user, dj->host, NULL, "not-authorized",
		    "Account deleted");
		hook_run_user_deleted(dj->user, dj->host);
	} else if (dj->cb)
		dj->cb(j->owner, j->tag, j->status);
}

static void
delete_free(struct store_job *j)
{
	struct delete_job *dj = (struct delete_job *)j;

	for (size_t i = 0; i < dj->nowners; i++) {
		free(dj->owners[i].user);
		free(dj->owners[i].host);
	}
	free(dj->owners);
	free(dj->user);
	free(dj->host);
	free(dj->bare);
	free(dj);
}

static const struct store_job_ops delete_ops = {
	"account delete", 1, delete_run, delete_complete, delete_free,
};

void
roster_delete_account(const char *user, const char *host, store_status_cb cb,
    uint64_t owner, uint64_t tag)
{
	struct delete_job *dj = xcalloc(1, sizeof(*dj));

	dj->j.ops = &delete_ops;
	dj->j.owner = owner;
	dj->j.tag = tag;
	dj->user = xstrdup(user);
	dj->host = xstrdup(host);
	dj->bare = xasprintf("%s@%s", user, host);
	dj->cb = cb;
	store_job_submit(&dj->j);
}

/* An administrator's change (xmppctl roster add/del). */

struct admin_job {
	struct store_job j;
	char *user, *host;
	struct roster_item *it;     /* jid, name, groups; sub from storage */
	int remove;
	int cached;                 /* done on the cache: only answer */
	int item_found;
	uint64_t version;
	roster_admin_cb cb;
};

static enum store_status
admin_run(struct store_job *j)
{
	struct admin_job *aj = (struct admin_job *)j;
	sqlite3_stmt *s;
	enum store_status st;
	unsigned old = SUB_NONE;
	int found;

	if (aj->cached)
		return STORE_OK;
	if ((s = store_sql(sql_user_exists)) == NULL ||
	    bind_user(s, aj->user, aj->host)) {
		if (s)
			store_sql_done(s);
		return STORE_ERROR;
	}
	found = sqlite3_step(s) == SQLITE_ROW;
	store_sql_done(s);
	if (!found)
		return STORE_NOT_FOUND;
	if ((s = store_sql(sql_state)) == NULL)
		return STORE_ERROR;
	if (bind_user(s, aj->user, aj->host) || sqlite3_bind_text(s, 3,
		aj->it->jid, -1, SQLITE_STATIC) != SQLITE_OK) {
		store_sql_done(s);
		return STORE_ERROR;
	}
	if (sqlite3_step(s) == SQLITE_ROW) {
		old = (unsigned)sqlite3_column_int(s, 0);
		aj->it->request = col_dup(s, 1);
	}
	store_sql_done(s);
	aj->item_found = (old & SUB_ITEM) != 0;
	if (aj->remove) {
		/* As a client's remove: the whole record goes, a pending-in
		 * request with it (no unsubscribe stanzas: the user is
		 * offline, nobody to send them for). */
		if (!aj->item_found)
			return STORE_OK;
		aj->it->sub = SUB_NONE;
	} else
		aj->it->sub = old | SUB_ITEM;
	if ((st = write_item(aj->user, aj->host, aj->it)) != STORE_OK)
		return st;
	return bump_version(aj->user, aj->host, &aj->version);
}

/* Set name and groups of a cached item (created if need be) from src. */
static struct roster_item *
admin_update_cached(struct roster *r, const struct roster_item *src)
{
	struct roster_item *it = strmap_get(r->items, src->jid);
	int was_item = it && (it->sub & SUB_ITEM);

	if (it == NULL) {
		it = xcalloc(1, sizeof(*it));
		it->jid = xstrdup(src->jid);
		strmap_put(r->items, it->jid, it);
	}
	free(it->name);
	it->name = src->name ? xstrdup(src->name) : NULL;
	for (size_t i = 0; i < it->ngroups; i++)
		free(it->groups[i]);
	free(it->groups);
	it->groups = NULL;
	it->ngroups = 0;
	for (size_t i = 0; i < src->ngroups; i++) {
		it->groups = xreallocarray(it->groups, it->ngroups + 1,
		    sizeof(char *));
		it->groups[it->ngroups++] = xstrdup(src->groups[i]);
	}
	if (!was_item) {
		it->sub |= SUB_ITEM;
		r->nvisible++;
	}
	return it;
}

static void
admin_complete(struct store_job *j)
{
	struct admin_job *aj = (struct admin_job *)j;
	struct roster *r;
	struct roster_item *it;

	/* Written in storage while the roster was loading: the cache may
	 * hold the old record, so bring it up to date. */
	if (!aj->cached && j->status == STORE_OK && aj->version != 0 &&
	    (r = roster_cached(aj->user, aj->host)) != NULL) {
		if (aj->version > r->version)
			r->version = aj->version;
		it = strmap_get(r->items, aj->it->jid);
		if (aj->remove && it != NULL) {
			if (it->sub & SUB_ITEM) {
				r->nvisible--;
				push(r, it, 1);
			}
			strmap_del(r->items, it->jid);
			item_free(it);
		} else if (!aj->remove) {
			it = admin_update_cached(r, aj->it);
			it->sub |= aj->it->sub;
			push(r, it, 0);
		}
	}
	aj->cb(j->owner, j->tag, j->status, aj->item_found);
}

static void
admin_free(struct store_job *j)
{
	struct admin_job *aj = (struct admin_job *)j;

	item_free(aj->it);
	free(aj->user);
	free(aj->host);
	free(aj);
}

static const struct store_job_ops admin_ops = {
	"roster admin change", 1, admin_run, admin_complete, admin_free,
};

/* The loaded roster: change it as a client's roster set or remove would
 * (roster_set, roster_remove); 1 if the item was there. */
static int
admin_cached(struct roster *r, const struct roster_item *src, int remove)
{
	struct roster_item *it = strmap_get(r->items, src->jid);
	struct session *s;

	if (remove) {
		unsigned old;

		if (it == NULL || !(it->sub & SUB_ITEM))
			return 0;
		old = it->sub;
		/* §2.5.2 for the user, as if a resource had asked. */
		if ((s = sm_find_bare(r->user, r->host)) != NULL)
			presence_item_removed(s, src->jid, old);
		apply_state(r, src->jid, SUB_NONE, NULL, 1, NULL, NULL);
		return 1;
	}
	/* The roster size limit is for clients; an admin may exceed it. */
	it = admin_update_cached(r, src);
	r->version++;
	push(r, it, 0);
	submit_write(r, it, 1, NULL, NULL);
	return 1;
}

void
roster_admin_set(const char *user, const char *host, const char *contact,
    const char *name, const char *const *groups, size_t ngroups, int remove,
    roster_admin_cb cb, uint64_t owner, uint64_t tag)
{
	struct admin_job *aj = xcalloc(1, sizeof(*aj));
	struct roster *r = roster_cached(user, host);
	struct roster_item *it = xcalloc(1, sizeof(*it));

	it->jid = xstrdup(contact);
	it->name = name ? xstrdup(name) : NULL;
	for (size_t i = 0; i < ngroups; i++) {
		it->groups = xreallocarray(it->groups, it->ngroups + 1,
		    sizeof(char *));
		it->groups[it->ngroups++] = xstrdup(groups[i]);
	}
	aj->j.ops = &admin_ops;
	aj->j.owner = owner;
	aj->j.tag = tag;
	aj->user = xstrdup(user);
	aj->host = xstrdup(host);
	aj->it = it;
	aj->remove = remove;
	aj->cb = cb;
	if (r != NULL) {
		/* Queued after the write-through, so answered once it
		 * has committed. */
		aj->cached = 1;
		aj->item_found = admin_cached(r, it, remove);
	}
	store_job_submit(&aj->j);
}

/* The roster IQ (RFC 6121 §2.1.3, §2.3, §2.5). */

static void
reply_error(struct session *s, struct xel *iq, const char *type,
    const char *cond)
{
	struct xel *r = stanza_error(iq, type, cond, NULL);

	if (r) {
		session_send(s, r);
		arena_free(r->arena);
	}
}

struct get_ctx {
	struct xel *query;
};

static void
get_one(const struct roster_item *it, void *arg)
{
	struct get_ctx *g = arg;

	if (it->sub & SUB_ITEM)
		item_to_xml(g->query, it, 0);
}

static void
roster_get(struct session *s, struct roster *r, struct xel *iq,
    struct xel *query)
{
	const char *ver = xel_attr(query, "ver");
	char cur[24];
	struct xel *res = stanza_iq_result(iq);

	s->interested = 1;
	snprintf(cur, sizeof(cur), "%" PRIu64, r->version);
	/* XEP-0237 §2.3: an unchanged roster gets an empty result, and
	 * later changes arrive as pushes. */
	if (ver == NULL || strcmp(ver, cur) != 0) {
		struct get_ctx g;

		g.query = xel_add(res, "query", NS_ROSTER);
		if (ver)
			xel_set_attr(g.query, "ver", cur);
		roster_foreach(r, get_one, &g);
	}
	session_send(s, res);
	arena_free(res->arena);
}

/* RFC 6121 §2.3.3 checks of one <item/> of a roster set; returns the
 * error condition or NULL. */
static const char *
check_item(struct xel *item, char **bare, const char **type)
{
	const char *jid = xel_attr(item, "jid"), *name = xel_attr(item, "name");
	struct jid j = { 0 };

	*type = "modify";
	if (jid == NULL)
		return "bad-request";
	if (jid_parse(&j, jid) < 0)
		return "bad-request";   /* RFC 6121 §2.3.3, RFC 6120 §8.3.3.1 */
	*bare = jid_bare(&j);
	jid_free(&j);
	if (name && strlen(name) > ROSTER_TEXT_MAX)
		return "not-acceptable";
	for (struct xel *g = xel_child(item, "group", NS_ROSTER); g;
	    g = xel_next(g, "group", NS_ROSTER)) {
		const char *t = xel_text(g);

		if (*t == '\0' || strlen(t) > ROSTER_TEXT_MAX)
			return "not-acceptable";
		for (struct xel *h = xel_child(item, "group", NS_ROSTER);
		    h != g; h = xel_next(h, "group", NS_ROSTER))
			if (strcmp(xel_text(h), t) == 0)
				return "bad-request";
	}
	return NULL;
}

static void
roster_remove(struct session *s, struct roster *r, struct xel *iq,
    const char *contact)
{
	const struct roster_item *it = roster_find(r, contact);
	unsigned old;

	if (it == NULL || !(it->sub & SUB_ITEM)) {
		reply_error(s, iq, "cancel", "item-not-found");
		return;
	}
	old = it->sub;
	/* §2.5.2: cancel the subscriptions both ways first. */
	presence_item_removed(s, contact, old);
	apply_state(r, contact, SUB_NONE, NULL, 1, s, stanza_iq_result(iq));
}

static void
roster_set(struct session *s, struct roster *r, struct xel *iq,
    struct xel *query)
{
	struct xel *item = xel_child(query, "item", NS_ROSTER);
	const char *cond, *type, *sub;
	char *contact = NULL;
	struct roster_item *it;
	int was_item, bump = 1;

	if (item == NULL || xel_count_elems(query) != 1) {
		reply_error(s, iq, "modify", "bad-request");
		return;
	}
	if ((cond = check_item(item, &contact, &type)) != NULL) {
		reply_error(s, iq, type, cond);
		free(contact);
		return;
	}
	sub = xel_attr(item, "subscription");
	if (sub && strcmp(sub, "remove") == 0) {
		roster_remove(s, r, iq, contact);
		free(contact);
		return;
	}
	it = strmap_get(r->items, contact);
	was_item = it && (it->sub & SUB_ITEM);
	if (!was_item && r->nvisible >= xmppd_conf->limits.roster_size) {
		session_log_limit(s, "roster-size",
		    xmppd_conf->limits.roster_size);
		reply_error(s, iq, "cancel", "not-allowed");
		free(contact);
		return;
	}
	if (it == NULL) {
		it = xcalloc(1, sizeof(*it));
		it->jid = xstrdup(contact);
		strmap_put(r->items, it->jid, it);
	}
	free(contact);
	/* §2.1.2: the client sets name and groups only; subscription and
	 * ask are the server's. */
	free(it->name);
	it->name = xel_attr(item, "name") ? xstrdup(xel_attr(item, "name")) :
	    NULL;
	for (size_t i = 0; i < it->ngroups; i++)
		free(it->groups[i]);
	free(it->groups);
	it->groups = NULL;
	it->ngroups = 0;
	for (struct xel *g = xel_child(item, "group", NS_ROSTER); g;
	    g = xel_next(g, "group", NS_ROSTER)) {
		it->groups = xreallocarray(it->groups, it->ngroups + 1,
		    sizeof(char *));
		it->groups[it->ngroups++] = xstrdup(xel_text(g));
	}
	if (!was_item) {
		it->sub |= SUB_ITEM;
		r->nvisible++;
	}
	r->version++;
	push(r, it, 0);
	submit_write(r, it, bump, s, stanza_iq_result(iq));
}

static enum hook_result
handle_roster(struct session *s, struct xel *iq, enum iq_target target)
{
	const char *to = xel_attr(iq, "to"), *type = xel_attr(iq, "type");
	struct xel *query = xel_child(iq, "query", NS_ROSTER);
	struct roster *r = roster_cached(s->jid.node, s->jid.domain);

	/* §2.1.5: only the user's own roster. */
	if (target != IQ_TO_BARE || (to && strcmp(to, s->bare) != 0)) {
		reply_error(s, iq, "auth", "forbidden");
		return HOOK_HANDLED;
	}
	if (r == NULL) {
		reply_error(s, iq, "wait", "internal-server-error");
		return HOOK_HANDLED;
	}
	if (strcmp(type, "get") == 0)
		roster_get(s, r, iq, query);
	else
		roster_set(s, r, iq, query);
	return HOOK_HANDLED;
}

/* Session lifecycle: load on bind, drop with the last session. */

static void
on_bound(struct session *s)
{
	struct roster *r;
	struct load_job *lj;

	r = strmap_get(rosters, s->bare);
	if (r && r->loaded)
		return;
	if (r == NULL) {
		r = xcalloc(1, sizeof(*r));
		r->user = xstrdup(s->jid.node);
		r->host = xstrdup(s->jid.domain);
		r->bare = xstrdup(s->bare);
		r->items = strmap_new();
		r->gen = next_gen++;
		strmap_put(rosters, r->bare, r);
		lj = xcalloc(1, sizeof(*lj));
		lj->j.ops = &load_ops;
		lj->user = xstrdup(r->user);
		lj->host = xstrdup(r->host);
		lj->bare = xstrdup(r->bare);
		lj->gen = r->gen;
		store_job_submit(&lj->j);
	}
	r->waiting = xreallocarray(r->waiting, r->nwaiting + 1,
	    sizeof(*r->waiting));
	r->waiting[r->nwaiting++] = s->id;
	session_hold(s);
}

static void
on_end(struct session *s)
{
	struct roster *r = strmap_get(rosters, s->bare);
	struct session *first = sm_find_bare(s->jid.node, s->jid.domain);

	/* Still linked: the last session is alone in its user's list. */
	if (r == NULL || first == NULL || first != s || s->next != NULL)
		return;
	strmap_del(rosters, s->bare);
	roster_free(r);
}

static void
add_features(struct transport *t, struct xel *features, int authed)
{
	if (!authed)
		return;
	xel_add(features, "ver", NS_ROSTERVER);
	xel_add(features, "sub", NS_PREAPPROVAL);
}

void
roster_init(void)
{
	rosters = strmap_new();
	iq_register(NS_ROSTER, "query", handle_roster);
	hook_add_session(HOOK_SESSION_BOUND, on_bound);
	hook_add_session(HOOK_SESSION_END, on_end);
	hook_add_features(add_features);
}
