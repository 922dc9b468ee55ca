/*
 * Unit tests for PEP storage (xmppd/store/pep_store.c, store/pep.h): the
 * configuration and access helpers, then publish, reads with their access
 * check, last items, retract, node writes and load against a real SQLite
 * store on the loop, with roster, block list and private XML rows written
 * beside it in SQL as the other subsystems would.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>
#include <sqlite3.h>

#include "log.h"
#include "xmalloc.h"
#include "store/pep.h"
#include "store/store.h"
#include "unit.h"
#include "unit_loop.h"

#define OWNER 4343
#define MAX_TAGS 2048
#define HOST "a.example"
#define ITEMS_MAX 10 /* pep-items unless a test says otherwise */
#define ALL_CFG 0xff /* every PEP_CFG_* bit */
#define STAMP 1700000000123LL

/* The roster table's sub bits (core/subscription.h). */
#define SUB_FROM 0x02
#define SUB_ITEM 0x20

static struct ev_loop *loop;
static pthread_t main_thread;
static char dir[64];
static char dbpath[128];
static sqlite3 *ext; /* a second connection, for rows of other tables */

/* Set while a store call runs: callbacks must not. */
static int in_call;
#define CALL(expr)                                                             \
	do {                                                                   \
		in_call = 1;                                                   \
		expr;                                                          \
		in_call = 0;                                                   \
	} while (0)

static int bad_context; /* callback during a call, off the loop thread, or
                           with another owner */
static int bad_order;   /* completions out of FIFO order */
static uint64_t issued, completed;
static void *slots[MAX_TAGS]; /* tag -> the result the callback fills */

static uint64_t
issue(void *result)
{
	uint64_t tag = issued++;

	if (tag >= MAX_TAGS) {
		fprintf(stderr, "too many requests\n");
		exit(2);
	}
	slots[tag] = result;
	return tag;
}

/* The result of the completion tag, after checking its context. */
static void *
completion(uint64_t owner, uint64_t tag)
{
	if (in_call || !pthread_equal(pthread_self(), main_thread) ||
	    owner != OWNER)
		bad_context++;
	if (tag != completed)
		bad_order++;
	completed = tag + 1;
	return slots[tag];
}

static int
all_done(void)
{
	return completed >= issued;
}

/* Run the loop until every issued request has completed (30 s guard). */
static int
wait_all(void)
{
	return unit_run_until(loop, all_done);
}

/* Append s to the list in buf, separated by sep. */
static void
join(char *buf, size_t size, const char *sep, const char *s)
{
	size_t n = strlen(buf);

	snprintf(buf + n, size - n, "%s%s", n ? sep : "", s);
}

/* A payload of exactly n bytes (n < 512). */
static const char *
payload_of(size_t n, char fill)
{
	static char bufs[4][512];
	static int next;
	char *b = bufs[next++ % 4];

	memset(b, fill, n);
	b[n] = '\0';
	return b;
}

/* A configuration with these roster groups (NULL-terminated). */
static void
set_groups(struct pep_config *c, ...)
{
	va_list ap;
	const char *g;

	va_start(ap, c);
	while ((g = va_arg(ap, const char *)) != NULL) {
		c->groups = xreallocarray(
		    c->groups, c->ngroups + 1, sizeof(*c->groups));
		c->groups[c->ngroups++] = xstrdup(g);
	}
	va_end(ap);
}

/*
 * Accounts and rows of other tables.
 */

struct sres {
	int done;
	enum store_status st;
};

static void
status_cb(uint64_t owner, uint64_t tag, enum store_status st)
{
	struct sres *r = completion(owner, tag);

	r->done++;
	r->st = st;
}

static enum store_status
user_create(const char *user)
{
	struct store_user u;
	struct sres r = {0};

	memset(&u, 0, sizeof(u));
	u.user = user;
	u.host = HOST;
	u.created = 1700000000;
	u.sha1.hash = SCRAM_SHA1;
	u.sha256.hash = SCRAM_SHA256;
	CALL(store_user_create(&u, status_cb, OWNER, issue(&r)));
	wait_all();
	return r.done == 1 ? r.st : (enum store_status) - 1;
}

static enum store_status
user_delete(const char *user)
{
	struct sres r = {0};

	CALL(store_user_delete(user, HOST, status_cb, OWNER, issue(&r)));
	wait_all();
	return r.done == 1 ? r.st : (enum store_status) - 1;
}

static sqlite3 *
ext_open(void)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK)
		return NULL;
	sqlite3_busy_timeout(db, 5000);
	return db;
}

/* Run sql with text parameters (NULL-terminated); 0 or -1. */
static int
ext_run(const char *sql, ...)
{
	sqlite3_stmt *s;
	va_list ap;
	const char *p;
	int i = 1, rc;

	if (sqlite3_prepare_v2(ext, sql, -1, &s, NULL) != SQLITE_OK) {
		fprintf(
		    stderr, "prepare \"%s\": %s\n", sql, sqlite3_errmsg(ext));
		return -1;
	}
	va_start(ap, sql);
	while ((p = va_arg(ap, const char *)) != NULL)
		sqlite3_bind_text(s, i++, p, -1, SQLITE_TRANSIENT);
	va_end(ap);
	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		fprintf(stderr, "step \"%s\": %s\n", sql, sqlite3_errmsg(ext));
	sqlite3_finalize(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

/* The first column of the first row of sql (text parameters as above),
 * -1 on error. */
static long long
ext_number(const char *sql, ...)
{
	sqlite3_stmt *s;
	va_list ap;
	const char *p;
	long long v = -1;
	int i = 1;

	if (sqlite3_prepare_v2(ext, sql, -1, &s, NULL) != SQLITE_OK) {
		fprintf(
		    stderr, "prepare \"%s\": %s\n", sql, sqlite3_errmsg(ext));
		return -1;
	}
	va_start(ap, sql);
	while ((p = va_arg(ap, const char *)) != NULL)
		sqlite3_bind_text(s, i++, p, -1, SQLITE_TRANSIENT);
	va_end(ap);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

#define UID_SQL "(SELECT id FROM users WHERE host = 'a.example' AND user = ?1)"

/* owner's roster item for jid: sub bits and groups joined by 0x1F (NULL:
 * none); sub < 0 removes it. */
static int
roster_set(const char *owner, const char *jid, int sub, const char *groups)
{
	char subs[16];

	if (sub < 0)
		return ext_run("DELETE FROM roster WHERE user_id = " UID_SQL
		               " AND jid = ?2",
		    owner, jid, NULL);
	snprintf(subs, sizeof(subs), "%d", sub);
	return ext_run("INSERT OR REPLACE INTO roster (user_id, jid, sub,"
	               " groups) VALUES (" UID_SQL ", ?2, ?3, ?4)",
	    owner, jid, subs, groups, NULL);
}

static int
block_set(const char *owner, const char *jid, int on)
{
	if (!on)
		return ext_run("DELETE FROM blocklist WHERE user_id = " UID_SQL
		               " AND jid = ?2",
		    owner, jid, NULL);
	return ext_run("INSERT OR REPLACE INTO blocklist (user_id, jid)"
	               " VALUES (" UID_SQL ", ?2)",
	    owner, jid, NULL);
}

static int
private_set(const char *owner, const char *ns, const char *data)
{
	return ext_run("INSERT OR REPLACE INTO private (user_id, ns, name,"
	               " data) VALUES (" UID_SQL ", ?2, 'storage', ?3)",
	    owner, ns, data, NULL);
}

/*
 * Writes.
 */

struct wres {
	int done;
	enum store_status st;
	enum pep_refusal refused;
	int created, found;
	struct pep_config cfg;
	char dropped[256]; /* ids, ',' */
	size_t ndropped;
};

static void
wres_reset(struct wres *w)
{
	if (w->done)
		pep_config_free(&w->cfg);
	memset(w, 0, sizeof(*w));
}

static void
write_cb(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_write_result *r)
{
	struct wres *w = completion(owner, tag);

	if (w->done++)
		pep_config_free(&w->cfg);
	w->st = st;
	w->refused = r->refused;
	w->created = r->created;
	w->found = r->found;
	pep_config_copy(&w->cfg, &r->cfg);
	w->dropped[0] = '\0';
	for (size_t i = 0; i < r->ndropped; i++)
		join(w->dropped, sizeof(w->dropped), ",", r->dropped[i]);
	w->ndropped = r->ndropped;
}

/* A publish of payload as item id of user's node, with the limits
 * ITEMS_MAX items and no node or byte limit. */
static void
pub_init(struct pep_publish *p, const char *user, const char *node,
    const char *id, const char *payload, const struct pep_config *create)
{
	memset(p, 0, sizeof(*p));
	p->user = user;
	p->host = HOST;
	p->node = node;
	p->create = create;
	p->id = id;
	p->publisher = "pub@a.example";
	p->payload = payload;
	p->len = strlen(payload);
	p->stamp_ms = STAMP;
	p->items_max = ITEMS_MAX;
}

static void
publish_async(const struct pep_publish *p, struct wres *w)
{
	wres_reset(w);
	CALL(pep_publish(p, write_cb, OWNER, issue(w)));
}

static enum store_status
publish_p(const struct pep_publish *p, struct wres *w)
{
	publish_async(p, w);
	wait_all();
	return w->done == 1 ? w->st : (enum store_status) - 1;
}

/* Publish with default limits; w gets the result. */
static enum store_status
publish(const char *user, const char *node, const char *id, const char *payload,
    const struct pep_config *create, struct wres *w)
{
	struct pep_publish p;

	pub_init(&p, user, node, id, payload, create);
	return publish_p(&p, w);
}

static enum store_status
retract(const char *user, const char *node, const char *id, struct wres *w)
{
	wres_reset(w);
	CALL(pep_retract(user, HOST, node, id, write_cb, OWNER, issue(w)));
	wait_all();
	return w->done == 1 ? w->st : (enum store_status) - 1;
}

static enum store_status
node_write(const char *user, const char *node, enum pep_node_op op,
    const struct pep_config *cfg, unsigned nodes_max, struct wres *w)
{
	wres_reset(w);
	CALL(pep_node_write(user, HOST, node, op, cfg, ITEMS_MAX, nodes_max,
	    write_cb, OWNER, issue(w)));
	wait_all();
	return w->done == 1 ? w->st : (enum store_status) - 1;
}

/*
 * Reads.
 */

struct rnode {
	char name[64];
	struct pep_config cfg;
	enum pep_verdict verdict;
	unsigned items;
	size_t bytes;
	int64_t created;
};

struct rres {
	int done;
	enum store_status st;
	int blocked, truncated;
	size_t nnodes;
	struct rnode nodes[8];
	char names[256]; /* node names, ',' */
	size_t nitems;
	char ids[512];     /* item ids in order, ',' */
	char full[1024];   /* "node/id:len" + P (payload) or N, ',' */
	char payload[512]; /* the last item's */
	char publisher[64];
	int64_t stamp;
};

static void
rres_reset(struct rres *r)
{
	for (size_t i = 0; i < r->nnodes && i < nitems(r->nodes); i++)
		pep_config_free(&r->nodes[i].cfg);
	memset(r, 0, sizeof(*r));
}

static void
read_cb(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_read_result *res)
{
	struct rres *r = completion(owner, tag);
	char buf[256];

	r->done++;
	r->st = st;
	r->blocked = res->blocked;
	r->truncated = res->truncated;
	r->nnodes = res->nnodes;
	for (size_t i = 0; i < res->nnodes; i++) {
		const struct pep_node_info *n = &res->nodes[i];

		join(r->names, sizeof(r->names), ",", n->node);
		if (i >= nitems(r->nodes))
			continue;
		snprintf(
		    r->nodes[i].name, sizeof(r->nodes[i].name), "%s", n->node);
		pep_config_copy(&r->nodes[i].cfg, &n->cfg);
		r->nodes[i].verdict = n->verdict;
		r->nodes[i].items = n->items;
		r->nodes[i].bytes = n->bytes;
		r->nodes[i].created = n->created;
	}
	r->nitems = res->nitems;
	for (size_t i = 0; i < res->nitems; i++) {
		const struct pep_item *it = &res->items[i];

		join(r->ids, sizeof(r->ids), ",", it->id);
		snprintf(buf, sizeof(buf), "%s/%s:%zu%c", it->node, it->id,
		    it->len, it->payload ? 'P' : 'N');
		join(r->full, sizeof(r->full), ",", buf);
		snprintf(r->payload, sizeof(r->payload), "%s",
		    it->payload ? it->payload : "(null)");
		snprintf(
		    r->publisher, sizeof(r->publisher), "%s", it->publisher);
		r->stamp = it->stamp_ms;
	}
}

/* A read of owner's data by requester (a bare JID or NULL), with the
 * bare and domain forms a block list can match. */
static void
read_init(struct pep_read *q, const char *owner, enum pep_read_kind kind,
    const char *node, const char *requester)
{
	const char *at = requester ? strchr(requester, '@') : NULL;

	memset(q, 0, sizeof(*q));
	q->user = owner;
	q->host = HOST;
	q->kind = kind;
	q->node = node;
	q->requester = requester;
	q->forms[1] = requester;
	q->forms[3] = at ? at + 1 : NULL;
}

static void
read_async(const struct pep_read *q, struct rres *r)
{
	rres_reset(r);
	CALL(pep_read(q, read_cb, OWNER, issue(r)));
}

static enum store_status
read_q(const struct pep_read *q, struct rres *r)
{
	read_async(q, r);
	wait_all();
	return r->done == 1 ? r->st : (enum store_status) - 1;
}

static enum store_status
read_simple(const char *owner, enum pep_read_kind kind, const char *node,
    const char *requester, struct rres *r)
{
	struct pep_read q;

	read_init(&q, owner, kind, node, requester);
	return read_q(&q, r);
}

/*
 * Last items and load.
 */

struct lres {
	int done;
	enum store_status st;
	size_t n;
	char s[1024];      /* "owner/node/id/" + P or N + persist, ';' */
	char payload[256]; /* of the first entry with one */
};

static void
last_cb(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_last *v, size_t n)
{
	struct lres *r = completion(owner, tag);
	char buf[256];

	r->done++;
	r->st = st;
	r->n = n;
	r->s[0] = r->payload[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "%s/%s/%s/%c%d", v[i].owner,
		    v[i].item.node, v[i].item.id ? v[i].item.id : "-",
		    v[i].item.payload ? 'P' : 'N', v[i].persist);
		join(r->s, sizeof(r->s), ";", buf);
		if (v[i].item.payload != NULL && r->payload[0] == '\0')
			snprintf(r->payload, sizeof(r->payload), "%s",
			    v[i].item.payload);
	}
}

static enum store_status
last_items(const char *requester, const char *const *owners, size_t nowners,
    const char *const *nodes, size_t nnodes, int presence, struct lres *r)
{
	struct pep_last_query q;

	memset(&q, 0, sizeof(q));
	memset(r, 0, sizeof(*r));
	q.requester = requester;
	q.forms[1] = requester;
	q.forms[3] = strchr(requester, '@') + 1;
	q.owners = owners;
	q.nowners = nowners;
	q.nodes = nodes;
	q.nnodes = nnodes;
	q.presence = presence;
	CALL(pep_last_items(&q, last_cb, OWNER, issue(r)));
	wait_all();
	return r->done == 1 ? r->st : (enum store_status) - 1;
}

struct ldres {
	int done;
	enum store_status st;
	size_t n;
	char s[512];       /* "node=newest id" or "node=-", ',' */
	char payload[256]; /* the first newest item's */
	int legacy_null;
	char legacy[512];
};

static void
load_cb(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_node_info *nodes, size_t n, const struct pep_item *last,
    const char *legacy)
{
	struct ldres *r = completion(owner, tag);
	char buf[256];

	r->done++;
	r->st = st;
	r->n = n;
	for (size_t i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "%s=%s", nodes[i].node,
		    last[i].id ? last[i].id : "-");
		join(r->s, sizeof(r->s), ",", buf);
		if (last[i].id != NULL && r->payload[0] == '\0')
			snprintf(r->payload, sizeof(r->payload), "%s",
			    last[i].payload ? last[i].payload : "(null)");
	}
	r->legacy_null = legacy == NULL;
	snprintf(r->legacy, sizeof(r->legacy), "%s", legacy ? legacy : "");
}

static enum store_status
load(const char *user, struct ldres *r)
{
	memset(r, 0, sizeof(*r));
	CALL(pep_load(user, HOST, load_cb, OWNER, issue(r)));
	wait_all();
	return r->done == 1 ? r->st : (enum store_status) - 1;
}

/*
 * The pure helpers.
 */

/* Change c in the field bit names. */
static void
mutate(struct pep_config *c, unsigned bit)
{
	switch (bit) {
	case PEP_CFG_ACCESS:
		c->access = PEP_ACCESS_OPEN;
		break;
	case PEP_CFG_GROUPS:
		set_groups(c, "Extra", NULL);
		break;
	case PEP_CFG_MAX_ITEMS:
		c->max_items = 7;
		break;
	case PEP_CFG_PERSIST:
		c->persist = 0;
		break;
	case PEP_CFG_SEND_LAST:
		c->send_last = PEP_SEND_NEVER;
		break;
	case PEP_CFG_NOTIFY_RETRACT:
		c->notify_retract = 0;
		break;
	case PEP_CFG_NOTIFY_DELETE:
		c->notify_delete = 1;
		break;
	case PEP_CFG_TITLE:
		free(c->title);
		c->title = xstrdup("Other");
		break;
	}
}

static void
test_config(void)
{
	struct pep_config a, b;

	pep_config_default(&a);
	CHECK(a.access == PEP_ACCESS_PRESENCE);
	CHECK(a.max_items == 1);
	CHECK(a.persist == 1);
	CHECK(a.send_last == PEP_SEND_ON_SUB_AND_PRESENCE);
	CHECK(a.notify_retract == 1);
	CHECK(a.notify_delete == 0);
	CHECK(a.groups == NULL && a.ngroups == 0);
	CHECK(a.title == NULL);

	/* Each field on its own: equal sees it, matches only under its bit. */
	set_groups(&a, "Friends", "Work", NULL);
	a.title = xstrdup("Title");
	for (unsigned bit = 1; bit <= PEP_CFG_TITLE; bit <<= 1) {
		pep_config_copy(&b, &a);
		CHECK(pep_config_equal(&a, &b));
		mutate(&b, bit);
		if (pep_config_equal(&a, &b))
			fprintf(stderr, "bit 0x%x: still equal\n", bit);
		CHECK(!pep_config_equal(&a, &b));
		CHECK(!pep_config_matches(&a, &b, bit));
		CHECK(!pep_config_matches(&a, &b, ALL_CFG));
		CHECK(pep_config_matches(&a, &b, ALL_CFG & ~bit));
		CHECK(pep_config_matches(&a, &b, 0));
		pep_config_free(&b);
	}

	/* Booleans compare as booleans. */
	pep_config_copy(&b, &a);
	b.persist = 5;
	b.notify_retract = 3;
	CHECK(pep_config_equal(&a, &b));
	CHECK(pep_config_matches(&a, &b, ALL_CFG));
	pep_config_free(&b);

	/* Roster groups: the same names match; a different set does not.
	 * pubsub#roster_groups_allowed is a set (list-multi, membership in
	 * pep_access_check): the order of the names configures nothing. */
	b = a;
	b.groups = NULL;
	b.ngroups = 0;
	b.title = xstrdup("Title");
	set_groups(&b, "Work", "Friends", NULL);
	CHECK(pep_config_equal(&a, &b));
	CHECK(pep_config_matches(&a, &b, PEP_CFG_GROUPS));
	pep_config_free(&b);
	b = a;
	b.groups = NULL;
	b.ngroups = 0;
	b.title = NULL;
	set_groups(&b, "Friends", NULL);
	CHECK(!pep_config_matches(&a, &b, PEP_CFG_GROUPS));
	CHECK(pep_config_matches(
	    &a, &b, ALL_CFG & ~PEP_CFG_GROUPS & ~PEP_CFG_TITLE));
	pep_config_free(&b);
	b = a;
	b.groups = NULL;
	b.ngroups = 0;
	b.title = NULL;
	set_groups(&b, "Friends", "Family", NULL);
	CHECK(!pep_config_equal(&a, &b));
	CHECK(!pep_config_matches(&a, &b, PEP_CFG_GROUPS));
	pep_config_free(&b);

	/* A copy owns its strings. */
	pep_config_copy(&b, &a);
	CHECK(b.groups != a.groups && b.title != a.title);
	CHECK(b.ngroups == 2 && strcmp(b.groups[1], "Work") == 0);
	pep_config_free(&b);
	CHECK(b.groups == NULL && b.ngroups == 0 && b.title == NULL);
	pep_config_free(&a);
}

static void
test_names(void)
{
	static const char *const access[] = {
	    "presence", "open", "roster", "whitelist"};
	static const char *const send_last[] = {
	    "never", "on_sub", "on_sub_and_presence"};
	struct pep_config c;

	for (int i = 0; i < 4; i++) {
		CHECK_STR(pep_access_name((enum pep_access)i), access[i]);
		CHECK(pep_access_parse(access[i]) == i);
	}
	CHECK(PEP_ACCESS_OPEN == 1 && PEP_ACCESS_WHITELIST == 3);
	CHECK(pep_access_parse("authorize") == -1);
	CHECK(pep_access_parse("Open") == -1);
	CHECK(pep_access_parse("") == -1);
	CHECK_STR(pep_access_name((enum pep_access)9), "?");
	for (int i = 0; i < 3; i++) {
		CHECK_STR(
		    pep_send_last_name((enum pep_send_last)i), send_last[i]);
		CHECK(pep_send_last_parse(send_last[i]) == i);
	}
	CHECK(pep_send_last_parse("on_subscribe") == -1);
	CHECK(pep_send_last_parse("on_sub_and_presence ") == -1);
	CHECK_STR(pep_send_last_name((enum pep_send_last)7), "?");

	pep_config_default(&c);
	CHECK(pep_config_keep(&c, 10) == 1);
	c.max_items = 0;
	CHECK(pep_config_keep(&c, 10) == 10);
	c.max_items = 25;
	CHECK(pep_config_keep(&c, 10) == 10);
	c.max_items = 10;
	CHECK(pep_config_keep(&c, 10) == 10);
	c.max_items = 9;
	CHECK(pep_config_keep(&c, 10) == 9);
}

static void
test_access_check(void)
{
	struct pep_config c;
	struct pep_standing st;
	char friends[] = "Friends", work[] = "Work";
	char *both[] = {work, friends}, *only_work[] = {work};

	pep_config_default(&c);
	memset(&st, 0, sizeof(st));

	/* The owner passes every model. */
	st.self = 1;
	for (int a = 0; a < 4; a++) {
		c.access = (enum pep_access)a;
		CHECK(pep_access_check(&c, &st) == PEP_ALLOWED);
	}
	st.self = 0;

	c.access = PEP_ACCESS_OPEN;
	CHECK(pep_access_check(&c, &st) == PEP_ALLOWED);

	c.access = PEP_ACCESS_PRESENCE;
	CHECK(pep_access_check(&c, &st) == PEP_PRESENCE_REQUIRED);
	st.item = 1;
	CHECK(pep_access_check(&c, &st) == PEP_PRESENCE_REQUIRED);
	st.from = 1;
	CHECK(pep_access_check(&c, &st) == PEP_ALLOWED);

	c.access = PEP_ACCESS_ROSTER;
	c.groups = both + 1; /* Friends */
	c.ngroups = 1;
	st.groups = both;
	st.ngroups = 2;
	CHECK(pep_access_check(&c, &st) == PEP_ALLOWED);
	st.groups = only_work;
	st.ngroups = 1;
	CHECK(pep_access_check(&c, &st) == PEP_NOT_IN_GROUP);
	st.groups = both;
	st.ngroups = 2;
	st.item = 0; /* groups without an item do not count */
	CHECK(pep_access_check(&c, &st) == PEP_NOT_IN_GROUP);
	st.item = 1;
	c.ngroups = 0; /* no group allowed */
	CHECK(pep_access_check(&c, &st) == PEP_NOT_IN_GROUP);

	c.access = PEP_ACCESS_WHITELIST;
	CHECK(pep_access_check(&c, &st) == PEP_CLOSED);
}

/*
 * Publish.
 */

static void
test_publish(void)
{
	struct pep_config def, list, all, big, want, eph;
	struct pep_publish p;
	struct wres w = {0};
	struct rres r = {0};
	const char *mood1 = "<mood xmlns='http://jabber.org/protocol/mood'>"
	                    "<happy/></mood>";
	const char *mood3 = "<mood xmlns='http://jabber.org/protocol/mood'>"
	                    "<sad/></mood>";
	char id[16];
	time_t now = time(NULL);

	CHECK(user_create("alice") == STORE_OK);
	pep_config_default(&def);

	/* Auto-create with the configuration given. */
	CHECK(publish("alice", "mood", "m1", mood1, &def, &w) == STORE_OK);
	CHECK(w.created == 1);
	CHECK(w.refused == PEP_REFUSED_NONE);
	CHECK(w.ndropped == 0);
	CHECK(pep_config_equal(&w.cfg, &def));
	CHECK(read_simple("alice", PEP_READ_ITEMS, "mood", "alice@a.example",
	          &r) == STORE_OK);
	CHECK(r.nnodes == 1 && r.nodes[0].verdict == PEP_ALLOWED);
	CHECK_STR(r.ids, "m1");
	CHECK_STR(r.payload, mood1);
	CHECK_STR(r.publisher, "pub@a.example");
	CHECK(r.stamp == STAMP);
	CHECK(r.nodes[0].items == 1 && r.nodes[0].bytes == strlen(mood1));
	CHECK(r.nodes[0].created >= now - 5 && r.nodes[0].created <= now + 60);
	CHECK(pep_config_equal(&r.nodes[0].cfg, &def));

	/* max_items 1: the next id pushes m1 out and says so. */
	CHECK(publish("alice", "mood", "m2", mood1, &def, &w) == STORE_OK);
	CHECK(w.created == 0);
	CHECK(w.ndropped == 1);
	CHECK_STR(w.dropped, "m1");
	/* The same id replaces, pushing nothing out. */
	CHECK(publish("alice", "mood", "m2", mood3, &def, &w) == STORE_OK);
	CHECK(w.created == 0 && w.ndropped == 0);
	read_simple("alice", PEP_READ_ITEMS, "mood", "alice@a.example", &r);
	CHECK_STR(r.ids, "m2");
	CHECK_STR(r.payload, mood3);
	CHECK(r.nodes[0].items == 1 && r.nodes[0].bytes == strlen(mood3));

	/* A replaced id becomes the newest. */
	pep_config_default(&list);
	list.max_items = 3;
	publish("alice", "list", "a", "<a/>", &list, &w);
	CHECK(w.created == 1 && w.cfg.max_items == 3);
	publish("alice", "list", "b", "<b/>", &list, &w);
	publish("alice", "list", "c", "<c/>", &list, &w);
	CHECK(w.ndropped == 0);
	CHECK(publish("alice", "list", "a", "<a2/>", &list, &w) == STORE_OK);
	CHECK(w.ndropped == 0);
	read_simple("alice", PEP_READ_ITEMS, "list", "alice@a.example", &r);
	CHECK_STR(r.ids, "b,c,a");
	CHECK_STR(r.payload, "<a2/>");
	CHECK(r.nodes[0].items == 3 && r.nodes[0].bytes == 4 + 4 + 5);
	CHECK(publish("alice", "list", "d", "<d/>", &list, &w) == STORE_OK);
	CHECK_STR(w.dropped, "b");
	read_simple("alice", PEP_READ_ITEMS, "list", "alice@a.example", &r);
	CHECK_STR(r.ids, "c,a,d");

	/* "max" (0) keeps up to items_max; above items_max clamps. */
	pep_config_default(&all);
	all.max_items = 0;
	pep_config_default(&big);
	big.max_items = 50;
	for (int i = 1; i <= 5; i++) {
		snprintf(id, sizeof(id), "%d", i);
		pub_init(&p, "alice", "all", id, "<x/>", &all);
		p.items_max = 4;
		publish_p(&p, &w);
		if (i < 5)
			CHECK(w.ndropped == 0);
		else
			CHECK_STR(w.dropped, "1");
		pub_init(&p, "alice", "big", id, "<x/>", &big);
		p.items_max = 4;
		publish_p(&p, &w);
	}
	CHECK_STR(w.dropped, "1");
	read_simple("alice", PEP_READ_ITEMS, "big", "alice@a.example", &r);
	CHECK_STR(r.ids, "2,3,4,5");
	CHECK(r.nodes[0].cfg.max_items == 50);
	read_simple("alice", PEP_READ_ITEMS, "all", "alice@a.example", &r);
	CHECK_STR(r.ids, "2,3,4,5");
	CHECK(r.nodes[0].cfg.max_items == 0);

	/* Preconditions (publish-options): a differing field refuses and
	 * writes nothing. */
	pep_config_default(&want);
	want.access = PEP_ACCESS_OPEN;
	pub_init(&p, "alice", "mood", "m9", mood1, &want);
	p.require = PEP_CFG_ACCESS;
	CHECK(publish_p(&p, &w) == STORE_EXISTS);
	CHECK(w.refused == PEP_REFUSED_PRECONDITION);
	CHECK(w.created == 0);
	CHECK(w.cfg.access == PEP_ACCESS_PRESENCE); /* the node's */
	read_simple("alice", PEP_READ_ITEMS, "mood", "alice@a.example", &r);
	CHECK_STR(r.ids, "m2");
	CHECK_STR(r.payload, mood3);
	CHECK(r.nodes[0].cfg.access == PEP_ACCESS_PRESENCE);
	/* Fields outside the mask do not matter, and the node keeps its own
	 * configuration. */
	p.require = PEP_CFG_MAX_ITEMS | PEP_CFG_PERSIST | PEP_CFG_SEND_LAST;
	CHECK(publish_p(&p, &w) == STORE_OK);
	CHECK(w.refused == PEP_REFUSED_NONE && w.created == 0);
	read_simple("alice", PEP_READ_ITEMS, "mood", "alice@a.example", &r);
	CHECK_STR(r.ids, "m9");
	CHECK(r.nodes[0].cfg.access == PEP_ACCESS_PRESENCE);
	pub_init(&p, "alice", "mood", "m10", mood1, &def);
	p.require = ALL_CFG;
	CHECK(publish_p(&p, &w) == STORE_OK);
	/* A node that does not exist yet is created from the options. */
	pub_init(&p, "alice", "opts", "o1", mood1, &want);
	p.require = PEP_CFG_ACCESS;
	CHECK(publish_p(&p, &w) == STORE_OK);
	CHECK(w.created == 1 && w.cfg.access == PEP_ACCESS_OPEN);

	/* A node that does not persist items stores none. */
	pep_config_default(&eph);
	eph.persist = 0;
	CHECK(publish("alice", "eph", "e1", mood1, &eph, &w) == STORE_OK);
	CHECK(w.created == 1 && w.cfg.persist == 0 && w.ndropped == 0);
	CHECK(publish("alice", "eph", "e2", mood1, &eph, &w) == STORE_OK);
	CHECK(w.created == 0);
	read_simple("alice", PEP_READ_ITEMS, "eph", "alice@a.example", &r);
	CHECK(r.nnodes == 1 && r.nitems == 0);
	CHECK(r.nodes[0].items == 0 && r.nodes[0].bytes == 0);
	CHECK(ext_number("SELECT count(*) FROM pep_item JOIN pep_node"
	                 " ON pep_node.id = node_id WHERE node = 'eph'",
	          NULL) == 0);

	/* No such account. */
	CHECK(
	    publish("ghost", "mood", "m1", mood1, &def, &w) == STORE_NOT_FOUND);
	CHECK(w.created == 0);

	/* Requests queued together complete in order, and a read sees the
	 * writes queued before it. */
	pub_init(&p, "alice", "fifo", "x1", "<x1/>", &list);
	publish_async(&p, &w);
	{
		struct wres w2 = {0};
		struct pep_read q;

		pub_init(&p, "alice", "fifo", "x2", "<x2/>", &list);
		publish_async(&p, &w2);
		read_init(
		    &q, "alice", PEP_READ_ITEMS, "fifo", "alice@a.example");
		read_async(&q, &r);
		CHECK(w.done == 0 && r.done == 0); /* never during the call */
		CHECK(wait_all());
		CHECK(w.st == STORE_OK && w.created == 1);
		CHECK(w2.st == STORE_OK && w2.created == 0);
		CHECK_STR(r.ids, "x1,x2");
		wres_reset(&w2);
	}

	pep_config_free(&want);
	wres_reset(&w);
	rres_reset(&r);
}

static void
test_limits(void)
{
	struct pep_config def, two, eph;
	struct pep_publish p;
	struct wres w = {0};
	struct rres r = {0};

	pep_config_default(&def);

	/* pep-nodes. */
	CHECK(user_create("nora") == STORE_OK);
	pub_init(&p, "nora", "n1", "i", "<i/>", &def);
	p.nodes_max = 2;
	CHECK(publish_p(&p, &w) == STORE_OK);
	p.node = "n2";
	CHECK(publish_p(&p, &w) == STORE_OK);
	p.node = "n3";
	CHECK(publish_p(&p, &w) == STORE_EXISTS);
	CHECK(w.refused == PEP_REFUSED_NODES && w.created == 0);
	p.node = "n1"; /* an existing node still takes items */
	p.id = "j";
	CHECK(publish_p(&p, &w) == STORE_OK);
	CHECK(w.refused == PEP_REFUSED_NONE);
	CHECK(node_write("nora", "n3", PEP_NODE_CREATE, &def, 2, &w) ==
	      STORE_EXISTS);
	CHECK(w.refused == PEP_REFUSED_NODES && w.created == 0);
	read_simple("nora", PEP_READ_NODES, NULL, "nora@a.example", &r);
	CHECK_STR(r.names, "n1,n2");
	CHECK(node_write("nora", "n1", PEP_NODE_CREATE, &def, 2, &w) ==
	      STORE_EXISTS);
	CHECK(w.refused == PEP_REFUSED_NONE && w.created == 0);
	CHECK(
	    node_write("nora", "n3", PEP_NODE_CREATE, &def, 0, &w) == STORE_OK);
	CHECK(w.created == 1);
	CHECK(
	    node_write("nora", "n4", PEP_NODE_CREATE, &def, 4, &w) == STORE_OK);
	read_simple("nora", PEP_READ_NODES, NULL, "nora@a.example", &r);
	CHECK_STR(r.names, "n1,n2,n3,n4");

	/* pep-size: replaced and pushed-out items free their bytes. */
	CHECK(user_create("quinn") == STORE_OK);
	pub_init(&p, "quinn", "q1", "a", payload_of(60, 'a'), &def);
	p.account_max = 100;
	CHECK(publish_p(&p, &w) == STORE_OK);
	p.id = "b"; /* pushes a (60) out: 60 - 60 + 60 */
	CHECK(publish_p(&p, &w) == STORE_OK);
	CHECK_STR(w.dropped, "a");
	p.payload = payload_of(90, 'b'); /* replaces b: 60 - 60 + 90 */
	p.len = 90;
	CHECK(publish_p(&p, &w) == STORE_OK);
	p.node = "q2";
	p.id = "c";
	p.payload = payload_of(11, 'c'); /* 90 + 11 > 100 */
	p.len = 11;
	CHECK(publish_p(&p, &w) == STORE_EXISTS);
	CHECK(w.refused == PEP_REFUSED_QUOTA && w.created == 0);
	read_simple("quinn", PEP_READ_NODES, NULL, "quinn@a.example", &r);
	CHECK_STR(r.names, "q1");        /* q2 was not created */
	p.payload = payload_of(10, 'c'); /* 90 + 10 = 100: allowed */
	p.len = 10;
	CHECK(publish_p(&p, &w) == STORE_OK);
	CHECK(w.created == 1);
	p.node = "q1";
	p.id = "b";
	p.payload = payload_of(80, 'd'); /* 100 - 90 + 80 = 90 */
	p.len = 80;
	CHECK(publish_p(&p, &w) == STORE_OK);
	pep_config_default(&two);
	two.max_items = 2;
	pub_init(&p, "quinn", "q3", "x", payload_of(5, 'x'), &two);
	p.account_max = 100;
	CHECK(publish_p(&p, &w) == STORE_OK); /* 95 */
	p.id = "y";
	CHECK(publish_p(&p, &w) == STORE_OK); /* 100 */
	p.id = "z";                           /* pushes x out: 100 - 5 + 5 */
	CHECK(publish_p(&p, &w) == STORE_OK);
	CHECK_STR(w.dropped, "x");
	p.id = "y"; /* replaces y (5), z stays: 100 - 5 + 6 > 100 */
	p.payload = payload_of(6, 'y');
	p.len = 6;
	CHECK(publish_p(&p, &w) == STORE_EXISTS);
	CHECK(w.refused == PEP_REFUSED_QUOTA);
	read_simple("quinn", PEP_READ_ITEMS, "q3", "quinn@a.example", &r);
	CHECK_STR(r.full, "q3/y:5P,q3/z:5P");
	p.payload = payload_of(5, 'y'); /* the same size fits */
	p.len = 5;
	CHECK(publish_p(&p, &w) == STORE_OK);
	read_simple("quinn", PEP_READ_ITEMS, "q3", "quinn@a.example", &r);
	CHECK_STR(r.ids, "z,y");
	CHECK(ext_number(
	          "SELECT sum(bytes) FROM pep_node WHERE user_id = " UID_SQL,
	          "quinn", NULL) == 100);
	/* Items that are not stored count nothing. */
	pep_config_default(&eph);
	eph.persist = 0;
	pub_init(&p, "quinn", "eph", "e", payload_of(50, 'e'), &eph);
	p.account_max = 100;
	CHECK(publish_p(&p, &w) == STORE_OK);
	CHECK(w.created == 1);

	wres_reset(&w);
	rres_reset(&r);
}

/*
 * Reads.
 */

static void
test_read(void)
{
	struct pep_config open, pres, rost, white;
	struct pep_read q;
	struct wres w = {0};
	struct rres r = {0};
	char id[16];
	const char *ids[] = {"i3", "i1", "nope"};

	CHECK(user_create("rita") == STORE_OK);
	CHECK(user_create("sam") == STORE_OK);
	pep_config_default(&open);
	open.access = PEP_ACCESS_OPEN;
	open.max_items = ITEMS_MAX;
	pep_config_default(&pres);
	pep_config_default(&rost);
	rost.access = PEP_ACCESS_ROSTER;
	set_groups(&rost, "Friends", "Close", NULL);
	rost.title = xstrdup("Roster node");
	rost.send_last = PEP_SEND_ON_SUB;
	rost.notify_retract = 0;
	rost.notify_delete = 1;
	rost.max_items = 3;
	pep_config_default(&white);
	white.access = PEP_ACCESS_WHITELIST;
	for (int i = 1; i <= 5; i++) {
		snprintf(id, sizeof(id), "i%d", i);
		publish("rita", "a-open", id, payload_of(10, (char)('0' + i)),
		    &open, &w);
	}
	publish("rita", "b-pres", "p1", "<p/>", &pres, &w);
	publish("rita", "c-rost", "r1", "<r/>", &rost, &w);
	CHECK(node_write("rita", "d-white", PEP_NODE_CREATE, &white, 0, &w) ==
	      STORE_OK);

	/* Items: all, the newest, by id (publish order). */
	CHECK(read_simple("rita", PEP_READ_ITEMS, "a-open", "rita@a.example",
	          &r) == STORE_OK);
	CHECK_STR(r.ids, "i1,i2,i3,i4,i5");
	CHECK(r.truncated == 0 && r.blocked == 0);
	CHECK_STR(r.payload, "5555555555");
	read_init(&q, "rita", PEP_READ_ITEMS, "a-open", "rita@a.example");
	q.max_items = 2;
	read_q(&q, &r);
	CHECK_STR(r.ids, "i4,i5");
	CHECK(r.truncated == 0);
	read_init(&q, "rita", PEP_READ_ITEMS, "a-open", "rita@a.example");
	q.ids = ids;
	q.nids = 3;
	read_q(&q, &r);
	CHECK_STR(r.ids, "i1,i3");

	/* A byte budget keeps the newest and says it left some out. */
	read_init(&q, "rita", PEP_READ_ITEMS, "a-open", "rita@a.example");
	q.max_bytes = 25;
	read_q(&q, &r);
	CHECK_STR(r.ids, "i4,i5");
	CHECK(r.truncated == 1);
	q.max_bytes = 5; /* still one item */
	read_q(&q, &r);
	CHECK_STR(r.ids, "i5");
	CHECK(r.truncated == 1);
	q.max_bytes = 50;
	read_q(&q, &r);
	CHECK_STR(r.ids, "i1,i2,i3,i4,i5");
	CHECK(r.truncated == 0);
	/* The budget keeps the newest of the items named too (mod_pep
	 * always sets max_bytes), whatever order the ids come in. */
	{
		const char *older_first[] = {"i1", "i5"};

		read_init(
		    &q, "rita", PEP_READ_ITEMS, "a-open", "rita@a.example");
		q.ids = older_first;
		q.nids = 2;
		q.max_bytes = 15;
		read_q(&q, &r);
		CHECK_STR(r.ids, "i5");
		CHECK(r.truncated == 1);
	}

	/* The node configuration reads back as written. */
	CHECK(read_simple("rita", PEP_READ_NODE, "c-rost", "rita@a.example",
	          &r) == STORE_OK);
	CHECK(r.nnodes == 1 && r.nitems == 0);
	CHECK(pep_config_equal(&r.nodes[0].cfg, &rost));
	CHECK(r.nodes[0].cfg.ngroups == 2 &&
	      strcmp(r.nodes[0].cfg.groups[1], "Close") == 0);
	CHECK_STR(r.nodes[0].cfg.title, "Roster node");
	CHECK(read_simple("rita", PEP_READ_NODE, "zz", "rita@a.example", &r) ==
	      STORE_OK);
	CHECK(r.nnodes == 0);

	/* Node lists and verdicts by standing. */
	read_simple("rita", PEP_READ_NODES, NULL, "rita@a.example", &r);
	CHECK_STR(r.names, "a-open,b-pres,c-rost,d-white");
	read_simple("rita", PEP_READ_NODES, NULL, "sam@a.example", &r);
	CHECK_STR(r.names, "a-open");
	CHECK(r.nodes[0].verdict == PEP_ALLOWED);
	read_simple("rita", PEP_READ_ITEMS, "a-open", "sam@a.example", &r);
	CHECK(r.nitems == 5);
	read_simple("rita", PEP_READ_ITEMS, "b-pres", "sam@a.example", &r);
	CHECK(r.nnodes == 1 && r.nodes[0].verdict == PEP_PRESENCE_REQUIRED);
	CHECK(r.nitems == 0);
	read_simple("rita", PEP_READ_NODE, "c-rost", "sam@a.example", &r);
	CHECK(r.nnodes == 1 && r.nodes[0].verdict == PEP_NOT_IN_GROUP);
	read_simple("rita", PEP_READ_NODE, "d-white", "sam@a.example", &r);
	CHECK(r.nnodes == 1 && r.nodes[0].verdict == PEP_CLOSED);

	CHECK(roster_set("rita", "sam@a.example", SUB_ITEM | SUB_FROM,
	          "Work\x1f"
	          "Friends") == 0);
	read_simple("rita", PEP_READ_NODES, NULL, "sam@a.example", &r);
	CHECK_STR(r.names, "a-open,b-pres,c-rost");
	read_simple("rita", PEP_READ_ITEMS, "c-rost", "sam@a.example", &r);
	CHECK(r.nodes[0].verdict == PEP_ALLOWED);
	CHECK_STR(r.ids, "r1");
	read_simple("rita", PEP_READ_ITEMS, "b-pres", "sam@a.example", &r);
	CHECK(r.nodes[0].verdict == PEP_ALLOWED);
	CHECK_STR(r.ids, "p1");
	roster_set("rita", "sam@a.example", SUB_ITEM, "Friends");
	read_simple("rita", PEP_READ_NODES, NULL, "sam@a.example", &r);
	CHECK_STR(r.names, "a-open,c-rost");
	roster_set("rita", "sam@a.example", SUB_FROM, "Friends");
	read_simple("rita", PEP_READ_NODES, NULL, "sam@a.example", &r);
	CHECK_STR(r.names, "a-open,b-pres");
	roster_set("rita", "sam@a.example", SUB_ITEM | SUB_FROM, "Family");
	read_simple("rita", PEP_READ_NODES, NULL, "sam@a.example", &r);
	CHECK_STR(r.names, "a-open,b-pres");
	read_simple("rita", PEP_READ_NODE, "c-rost", "sam@a.example", &r);
	CHECK(r.nodes[0].verdict == PEP_NOT_IN_GROUP);
	roster_set("rita", "sam@a.example", SUB_ITEM | SUB_FROM, NULL);
	read_simple("rita", PEP_READ_NODES, NULL, "sam@a.example", &r);
	CHECK_STR(r.names, "a-open,b-pres");

	/* The block list, by bare JID and by domain. */
	CHECK(block_set("rita", "sam@a.example", 1) == 0);
	CHECK(read_simple("rita", PEP_READ_NODES, NULL, "sam@a.example", &r) ==
	      STORE_OK);
	CHECK(r.blocked == 1 && r.nnodes == 0);
	read_simple("rita", PEP_READ_ITEMS, "a-open", "sam@a.example", &r);
	CHECK(r.blocked == 1 && r.nitems == 0 && r.nnodes == 0);
	block_set("rita", "sam@a.example", 0);
	read_simple("rita", PEP_READ_ITEMS, "a-open", "sam@a.example", &r);
	CHECK(r.blocked == 0 && r.nitems == 5);
	read_simple("rita", PEP_READ_NODES, NULL, "vic@x.example", &r);
	CHECK(r.blocked == 0);
	CHECK_STR(r.names, "a-open");
	block_set("rita", "x.example", 1);
	read_simple("rita", PEP_READ_NODES, NULL, "vic@x.example", &r);
	CHECK(r.blocked == 1 && r.nnodes == 0);
	read_simple("rita", PEP_READ_NODES, NULL, "rita@a.example", &r);
	CHECK(r.blocked == 0 && r.nnodes == 4);

	/* Administration: every node with its items' ids and sizes. */
	read_init(&q, "rita", PEP_READ_ADMIN, NULL, NULL);
	CHECK(read_q(&q, &r) == STORE_OK);
	CHECK_STR(r.names, "a-open,b-pres,c-rost,d-white");
	CHECK_STR(r.full, "a-open/i1:10N,a-open/i2:10N,a-open/i3:10N,"
	                  "a-open/i4:10N,a-open/i5:10N,b-pres/p1:4N,"
	                  "c-rost/r1:4N");
	CHECK(r.nodes[0].items == 5 && r.nodes[0].bytes == 50);
	read_init(&q, "rita", PEP_READ_ADMIN, "c-rost", NULL);
	read_q(&q, &r);
	CHECK_STR(r.names, "c-rost");
	CHECK_STR(r.full, "c-rost/r1:4N");
	read_init(&q, "rita", PEP_READ_ADMIN, "zz", NULL);
	CHECK(read_q(&q, &r) == STORE_OK);
	CHECK(r.nnodes == 0 && r.nitems == 0);

	CHECK(read_simple("ghost", PEP_READ_NODES, NULL, "rita@a.example",
	          &r) == STORE_NOT_FOUND);

	pep_config_free(&rost);
	wres_reset(&w);
	rres_reset(&r);
}

/*
 * Retract and node writes.
 */

static void
test_node_writes(void)
{
	struct pep_config ten, one, off, open;
	struct wres w = {0};
	struct rres r = {0};

	CHECK(user_create("tom") == STORE_OK);
	pep_config_default(&ten);
	ten.max_items = 10;
	publish("tom", "r", "a", "<aa/>", &ten, &w);
	publish("tom", "r", "b", "<bbb/>", &ten, &w);
	publish("tom", "r", "c", "<c/>", &ten, &w);

	CHECK(retract("tom", "r", "b", &w) == STORE_OK);
	CHECK(w.found == 1);
	read_simple("tom", PEP_READ_ITEMS, "r", "tom@a.example", &r);
	CHECK_STR(r.ids, "a,c");
	CHECK(r.nodes[0].items == 2 && r.nodes[0].bytes == 5 + 4);
	CHECK(retract("tom", "r", "b", &w) == STORE_OK);
	CHECK(w.found == 0);
	CHECK(retract("tom", "nonode", "a", &w) == STORE_NOT_FOUND);
	CHECK(retract("ghost", "r", "a", &w) == STORE_NOT_FOUND);

	/* Configure: fewer items keep the newest; persist off drops all. */
	pep_config_default(&one);
	one.max_items = 1;
	CHECK(node_write("tom", "r", PEP_NODE_CONFIGURE, &one, 0, &w) ==
	      STORE_OK);
	CHECK(pep_config_equal(&w.cfg, &one));
	read_simple("tom", PEP_READ_ITEMS, "r", "tom@a.example", &r);
	CHECK_STR(r.ids, "c");
	CHECK(r.nodes[0].items == 1 && r.nodes[0].bytes == 4);
	CHECK(r.nodes[0].cfg.max_items == 1);
	CHECK(node_write("tom", "r", PEP_NODE_CONFIGURE, &ten, 0, &w) ==
	      STORE_OK);
	publish("tom", "r", "d", "<d/>", &ten, &w);
	CHECK(w.ndropped == 0);
	read_simple("tom", PEP_READ_ITEMS, "r", "tom@a.example", &r);
	CHECK_STR(r.ids, "c,d");
	pep_config_default(&off);
	off.max_items = 10;
	off.persist = 0;
	CHECK(node_write("tom", "r", PEP_NODE_CONFIGURE, &off, 0, &w) ==
	      STORE_OK);
	read_simple("tom", PEP_READ_ITEMS, "r", "tom@a.example", &r);
	CHECK(r.nnodes == 1 && r.nitems == 0);
	CHECK(r.nodes[0].items == 0 && r.nodes[0].bytes == 0);
	CHECK(r.nodes[0].cfg.persist == 0);
	CHECK(node_write("tom", "nonode", PEP_NODE_CONFIGURE, &one, 0, &w) ==
	      STORE_NOT_FOUND);

	/* Purge keeps the node. */
	publish("tom", "p", "x", "<x/>", &ten, &w);
	publish("tom", "p", "y", "<y/>", &ten, &w);
	CHECK(node_write("tom", "p", PEP_NODE_PURGE, NULL, 0, &w) == STORE_OK);
	read_simple("tom", PEP_READ_ITEMS, "p", "tom@a.example", &r);
	CHECK(r.nnodes == 1 && r.nitems == 0 && r.nodes[0].items == 0);
	CHECK(r.nodes[0].bytes == 0);
	CHECK(node_write("tom", "nonode", PEP_NODE_PURGE, NULL, 0, &w) ==
	      STORE_NOT_FOUND);

	/* Delete takes the node and its items. */
	publish("tom", "p", "z", "<z/>", &ten, &w);
	CHECK(node_write("tom", "p", PEP_NODE_DELETE, NULL, 0, &w) == STORE_OK);
	CHECK(read_simple("tom", PEP_READ_NODE, "p", "tom@a.example", &r) ==
	      STORE_OK);
	CHECK(r.nnodes == 0);
	read_simple("tom", PEP_READ_ITEMS, "p", "tom@a.example", &r);
	CHECK(r.nnodes == 0 && r.nitems == 0);
	read_simple("tom", PEP_READ_NODES, NULL, "tom@a.example", &r);
	CHECK_STR(r.names, "r");
	CHECK(ext_number("SELECT count(*) FROM pep_item WHERE node_id NOT IN"
	                 " (SELECT id FROM pep_node)",
	          NULL) == 0);
	CHECK(node_write("tom", "p", PEP_NODE_DELETE, NULL, 0, &w) ==
	      STORE_NOT_FOUND);
	CHECK(publish("tom", "p", "z", "<z/>", &ten, &w) == STORE_OK);
	CHECK(w.created == 1);

	/* Create with a configuration. */
	pep_config_default(&open);
	open.access = PEP_ACCESS_OPEN;
	open.max_items = 3;
	CHECK(
	    node_write("tom", "c1", PEP_NODE_CREATE, &open, 0, &w) == STORE_OK);
	CHECK(w.created == 1 && w.cfg.access == PEP_ACCESS_OPEN);
	read_simple("tom", PEP_READ_NODE, "c1", "tom@a.example", &r);
	CHECK(r.nnodes == 1 && pep_config_equal(&r.nodes[0].cfg, &open));
	CHECK(r.nodes[0].items == 0);
	CHECK(node_write("tom", "c1", PEP_NODE_CREATE, &one, 0, &w) ==
	      STORE_EXISTS);
	CHECK(w.refused == PEP_REFUSED_NONE && w.created == 0);
	CHECK(w.cfg.access == PEP_ACCESS_OPEN && w.cfg.max_items == 3);
	CHECK(node_write("ghost", "c1", PEP_NODE_CREATE, &one, 0, &w) ==
	      STORE_NOT_FOUND);

	wres_reset(&w);
	rres_reset(&r);
}

static void
test_account_delete(void)
{
	struct pep_config def;
	struct wres w = {0};
	struct rres r = {0};
	struct ldres l;
	long long all_nodes, all_items, dan_nodes, dan_items;

	CHECK(user_create("dan") == STORE_OK);
	pep_config_default(&def);
	def.max_items = 5;
	publish("dan", "n1", "a", "<a/>", &def, &w);
	publish("dan", "n1", "b", "<b/>", &def, &w);
	publish("dan", "n2", "c", "<c/>", &def, &w);
	dan_nodes =
	    ext_number("SELECT count(*) FROM pep_node WHERE user_id = " UID_SQL,
	        "dan", NULL);
	dan_items =
	    ext_number("SELECT count(*) FROM pep_item JOIN pep_node"
	               " ON pep_node.id = node_id WHERE user_id = " UID_SQL,
	        "dan", NULL);
	CHECK(dan_nodes == 2 && dan_items == 3);
	all_nodes = ext_number("SELECT count(*) FROM pep_node", NULL);
	all_items = ext_number("SELECT count(*) FROM pep_item", NULL);

	CHECK(user_delete("dan") == STORE_OK);
	CHECK(ext_number("SELECT count(*) FROM pep_node", NULL) ==
	      all_nodes - dan_nodes);
	CHECK(ext_number("SELECT count(*) FROM pep_item", NULL) ==
	      all_items - dan_items);
	CHECK(ext_number("SELECT count(*) FROM pep_node WHERE user_id NOT IN"
	                 " (SELECT id FROM users)",
	          NULL) == 0);
	CHECK(ext_number("SELECT count(*) FROM pep_item WHERE node_id NOT IN"
	                 " (SELECT id FROM pep_node)",
	          NULL) == 0);
	CHECK(read_simple("dan", PEP_READ_NODES, NULL, "dan@a.example", &r) ==
	      STORE_NOT_FOUND);
	CHECK(load("dan", &l) == STORE_NOT_FOUND);
	/* A new account of that name starts empty. */
	CHECK(user_create("dan") == STORE_OK);
	CHECK(load("dan", &l) == STORE_OK);
	CHECK(l.n == 0);

	wres_reset(&w);
	rres_reset(&r);
}

/*
 * Last items.
 */

static void
test_last_items(void)
{
	struct pep_config def, on_sub, never, white, eph, open, rost;
	struct wres w = {0};
	struct lres l;
	const char *owners[] = {"lena@a.example", "mark@a.example",
	    "olga@a.example", "ghost@a.example", "nohost"};
	const char *nodes[] = {
	    "mood", "tune", "nick", "geo", "eph", "empty", "activity"};
	const char *some[] = {"tune", "mood"};
	const char *mood = "<mood xmlns='http://jabber.org/protocol/mood'>"
	                   "<calm/></mood>";

	CHECK(user_create("lena") == STORE_OK);
	CHECK(user_create("mark") == STORE_OK);
	CHECK(user_create("olga") == STORE_OK);
	pep_config_default(&def);
	pep_config_default(&on_sub);
	on_sub.send_last = PEP_SEND_ON_SUB;
	pep_config_default(&never);
	never.send_last = PEP_SEND_NEVER;
	never.access = PEP_ACCESS_OPEN;
	pep_config_default(&white);
	white.access = PEP_ACCESS_WHITELIST;
	pep_config_default(&eph);
	eph.access = PEP_ACCESS_OPEN;
	eph.persist = 0;
	pep_config_default(&open);
	open.access = PEP_ACCESS_OPEN;
	pep_config_default(&rost);
	rost.access = PEP_ACCESS_ROSTER;
	set_groups(&rost, "Friends", NULL);

	publish("lena", "mood", "lm", "<lm/>", &def, &w);
	publish("lena", "tune", "lt", "<lt/>", &on_sub, &w);
	publish("lena", "geo", "lg", "<lg/>", &white, &w);
	publish("mark", "mood", "mm", mood, &def, &w);
	publish("mark", "tune", "mt", "<mt/>", &on_sub, &w);
	publish("mark", "nick", "mn", "<mn/>", &never, &w);
	publish("mark", "geo", "mg", "<mg/>", &white, &w);
	publish("mark", "eph", "me", "<me/>", &eph, &w);
	CHECK(node_write("mark", "empty", PEP_NODE_CREATE, &open, 0, &w) ==
	      STORE_OK);
	publish("mark", "activity", "ma", "<ma/>", &rost, &w);
	publish("mark", "other", "mo", "<mo/>", &open, &w);
	publish("olga", "mood", "om", "<om/>", &open, &w);
	CHECK(roster_set("mark", "lena@a.example", SUB_ITEM | SUB_FROM,
	          "Friends") == 0);
	CHECK(block_set("olga", "lena@a.example", 1) == 0);

	/* Coming online: on_sub_and_presence nodes only. */
	CHECK(last_items("lena@a.example", owners, nitems(owners), nodes,
	          nitems(nodes), 1, &l) == STORE_OK);
	CHECK_STR(l.s, "lena@a.example/geo/lg/P1;lena@a.example/mood/lm/P1;"
	               "mark@a.example/activity/ma/P1;mark@a.example/eph/-/N0;"
	               "mark@a.example/mood/mm/P1");
	/* Interest appearing: on_sub too. */
	CHECK(last_items("lena@a.example", owners, nitems(owners), nodes,
	          nitems(nodes), 0, &l) == STORE_OK);
	CHECK_STR(l.s, "lena@a.example/geo/lg/P1;lena@a.example/mood/lm/P1;"
	               "lena@a.example/tune/lt/P1;"
	               "mark@a.example/activity/ma/P1;mark@a.example/eph/-/N0;"
	               "mark@a.example/mood/mm/P1;mark@a.example/tune/mt/P1");
	/* Only the nodes asked for, in any order. */
	last_items("lena@a.example", owners + 1, 1, some, nitems(some), 0, &l);
	CHECK_STR(l.s, "mark@a.example/mood/mm/P1;mark@a.example/tune/mt/P1");
	CHECK_STR(l.payload, mood);

	/* Without the subscription, only what is open. */
	roster_set("mark", "lena@a.example", SUB_ITEM, "Family");
	last_items(
	    "lena@a.example", owners + 1, 1, nodes, nitems(nodes), 0, &l);
	CHECK_STR(l.s, "mark@a.example/eph/-/N0");
	roster_set("mark", "lena@a.example", -1, NULL);
	last_items(
	    "lena@a.example", owners + 1, 1, nodes, nitems(nodes), 0, &l);
	CHECK_STR(l.s, "mark@a.example/eph/-/N0");
	/* Unblocked, olga's open node shows. */
	block_set("olga", "lena@a.example", 0);
	last_items(
	    "lena@a.example", owners + 2, 1, nodes, nitems(nodes), 1, &l);
	CHECK_STR(l.s, "olga@a.example/mood/om/P1");
	/* Another requester: a stranger sees open nodes only. */
	last_items("zed@b.example", owners, 3, nodes, nitems(nodes), 0, &l);
	CHECK_STR(l.s, "mark@a.example/eph/-/N0;olga@a.example/mood/om/P1");

	pep_config_free(&rost);
	wres_reset(&w);
}

/*
 * Load.
 */

static void
test_load(void)
{
	struct pep_config two, def;
	struct wres w = {0};
	struct ldres l;
	const char *legacy = "<storage xmlns='storage:bookmarks'><conference "
	                     "jid='room@muc.a.example' autojoin='true'/>"
	                     "</storage>";

	CHECK(user_create("pia") == STORE_OK);
	CHECK(user_create("quentin") == STORE_OK);
	pep_config_default(&two);
	two.max_items = 2;
	pep_config_default(&def);

	CHECK(load("pia", &l) == STORE_OK);
	CHECK(l.n == 0 && l.legacy_null);
	publish("pia", "alpha", "a1", "<a1/>", &two, &w);
	publish("pia", "alpha", "a2", "<a2 xmlns='t'/>", &two, &w);
	node_write("pia", "beta", PEP_NODE_CREATE, &def, 0, &w);
	CHECK(load("pia", &l) == STORE_OK);
	CHECK(l.n == 2);
	CHECK_STR(l.s, "alpha=a2,beta=-");
	CHECK_STR(l.payload, "<a2 xmlns='t'/>");
	CHECK(l.legacy_null);

	/* Private XML storage of another namespace is not bookmarks. */
	CHECK(private_set("pia", "storage:rosternotes", "<storage/>") == 0);
	load("pia", &l);
	CHECK(l.legacy_null);
	CHECK(private_set("pia", "storage:bookmarks", legacy) == 0);
	load("pia", &l);
	CHECK(!l.legacy_null);
	CHECK_STR(l.legacy, legacy);
	/* Either bookmarks node means they were converted. */
	publish("pia", "urn:xmpp:bookmarks:1", "room@muc.a.example",
	    "<conference xmlns='urn:xmpp:bookmarks:1'/>", &def, &w);
	load("pia", &l);
	CHECK(l.legacy_null);
	CHECK_STR(
	    l.s, "alpha=a2,beta=-,urn:xmpp:bookmarks:1=room@muc.a.example");
	CHECK(private_set("quentin", "storage:bookmarks", legacy) == 0);
	load("quentin", &l);
	CHECK_STR(l.legacy, legacy);
	node_write(
	    "quentin", "storage:bookmarks", PEP_NODE_CREATE, &def, 0, &w);
	CHECK(load("quentin", &l) == STORE_OK);
	CHECK(l.legacy_null);
	CHECK_STR(l.s, "storage:bookmarks=-");

	CHECK(load("ghost", &l) == STORE_NOT_FOUND);
	CHECK(l.n == 0);

	wres_reset(&w);
}

int
main(void)
{
	char err[512];
	char cmd[128];

	log_init("test_pep_store", 1, LOG_LVL_WARN);
	main_thread = pthread_self();
	loop = ev_default_loop(0);

	test_config();
	test_names();
	test_access_check();

	snprintf(dir, sizeof(dir), "/tmp/test_pep_store.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(dbpath, sizeof(dbpath), "%s/xmppd.db", dir);
	store_set_busy_timeout(5000);
	err[0] = '\0';
	CHECK(store_open(loop, dbpath, 0, err, sizeof(err)) == 0);
	if (err[0] != '\0')
		fprintf(stderr, "store_open: %s\n", err);
	CHECK((ext = ext_open()) != NULL);
	if (ext == NULL)
		return UNIT_DONE("pep_store");

	test_publish();
	test_limits();
	test_read();
	test_node_writes();
	test_account_delete();
	test_last_items();
	test_load();
	CHECK(!unit_loop_timed_out);
	CHECK(bad_context == 0);
	CHECK(bad_order == 0);
	CHECK(completed == issued);

	sqlite3_close(ext);
	store_close();
	ev_loop_destroy(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return UNIT_DONE("pep_store");
}
