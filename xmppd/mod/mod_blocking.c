/*
 * Blocking Command (XEP-0191, urn:xmpp:blocking): a user's list of blocked
 * JIDs, its IQs and pushes, and the filters that keep stanzas from
 * flowing between the user and a blocked JID in either direction.
 *
 * The list lives in the blocklist table and is cached while the user has
 * a bound session (loaded at bind, the session held until then, like the
 * roster).  Writes go to storage first; the cache changes, the IQ result
 * goes out and the pushes follow only when the write has committed.  The
 * stanza path reads the cache only: a user with an empty list costs one
 * hash lookup, and when no online user blocks anything, nothing.
 *
 * Where the rules come from (XEP-0191 1.3 numbering): §3.2 the list,
 * §3.3 block (unavailable presence to the blocked JID; what inbound and
 * outbound stanzas get), §3.4 unblock (current presence again), §3.5
 * unblock all, §6 JID matching.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "core/disco.h"
#include "core/hooks.h"
#include "core/iq.h"
#include "jid.h"
#include "log.h"
#include "mod/blocking.h"
#include "core/presence.h"
#include "core/roster.h"
#include "core/router.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/stanza.h"
#include "store/store_engine.h"
#include "strmap.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_BLOCKING "urn:xmpp:blocking"
#define NS_BLOCKING_ERRORS "urn:xmpp:blocking:errors"

/* Rows read at load: the largest blocklist-size the configuration
 * accepts (conf.c), so every query stays bounded. */
#define BLOCKLIST_LOAD_MAX 100000

/* Room for "node@domain/resource" (RFC 6122 §2.1 part limits). */
#define JID_TEXT_MAX (3 * JID_PART_MAX + 3)

void mod_blocking_init(void);
void mod_blocking_deinit(void);

/* The cached list of one online user. */
struct blocklist {
	char *user, *host, *bare;
	struct strmap *items; /* prepared JID -> BLOCKED */
	int loaded;
	uint64_t gen;      /* which load this struct waits for */
	uint64_t *waiting; /* session ids held until loaded */
	size_t nwaiting;
	uint64_t *interested; /* session ids that asked for the list */
	size_t ninterested;
	size_t pending; /* items that in-flight blocks may add */
};

#define BLOCKED ((void *)1)

static struct strmap *lists; /* bare JID -> struct blocklist; NULL while
                                the module is off */
static size_t nonempty;      /* loaded lists with at least one item */
static uint64_t next_gen = 1, next_push = 1;

/* Ids. */

static int
ids_has(const uint64_t *ids, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

static void
ids_add(uint64_t **ids, size_t *n, uint64_t id)
{
	if (ids_has(*ids, *n, id))
		return;
	*ids = xreallocarray(*ids, *n + 1, sizeof(**ids));
	(*ids)[(*n)++] = id;
}

static void
ids_del(uint64_t *ids, size_t *n, uint64_t id)
{
	for (size_t i = 0; i < *n; i++)
		if (ids[i] == id) {
			ids[i] = ids[--*n];
			return;
		}
}

/* The cache. */

static size_t
list_count(const struct blocklist *bl)
{
	return strmap_count(bl->items);
}

/* Keep nonempty right around a change of bl's items. */
static void
count_before(const struct blocklist *bl, int *was)
{
	*was = bl->loaded && list_count(bl) > 0;
}

static void
count_after(const struct blocklist *bl, int was)
{
	int is = bl->loaded && list_count(bl) > 0;

	if (was && !is)
		nonempty--;
	else if (!was && is)
		nonempty++;
}

static void
list_free(struct blocklist *bl)
{
	int was;

	count_before(bl, &was);
	if (was)
		nonempty--;
	strmap_free(bl->items); /* values are not pointers */
	free(bl->waiting);
	free(bl->interested);
	free(bl->user);
	free(bl->host);
	free(bl->bare);
	free(bl);
}

/* The loaded list of the account of j (its node and domain), or NULL. */
static struct blocklist *
list_of(const struct jid *j)
{
	char key[2 * JID_PART_MAX + 2];
	struct blocklist *bl;

	if (j->node == NULL)
		return NULL;
	snprintf(key, sizeof(key), "%s@%s", j->node, j->domain);
	bl = strmap_get(lists, key);
	return bl && bl->loaded ? bl : NULL;
}

/*
 * Whether a set of prepared JIDs names addr: XEP-0191 §6 (as XEP-0016
 * §2.1) matches an item that is addr's full JID, its bare JID, its
 * domain/resource or its domain.  A full JID item names only that
 * resource; a domain item names everything at that domain.
 */
static int
set_matches(const struct strmap *set, const struct jid *addr)
{
	char buf[JID_TEXT_MAX];

	if (set == NULL || strmap_count(set) == 0)
		return 0;
	if (addr->node) {
		if (addr->resource) {
			snprintf(buf, sizeof(buf), "%s@%s/%s", addr->node,
			    addr->domain, addr->resource);
			if (strmap_get(set, buf))
				return 1;
		}
		snprintf(buf, sizeof(buf), "%s@%s", addr->node, addr->domain);
		if (strmap_get(set, buf))
			return 1;
	}
	if (addr->resource) {
		snprintf(
		    buf, sizeof(buf), "%s/%s", addr->domain, addr->resource);
		if (strmap_get(set, buf))
			return 1;
	}
	return strmap_get(set, addr->domain) != NULL;
}

static int
list_matches(const struct blocklist *bl, const struct jid *addr)
{
	return bl != NULL && bl->loaded && set_matches(bl->items, addr);
}

/*
 * Communication that blocking never touches: between the resources of
 * one account (XEP-0191 §5: "MUST NOT block communications from one of a
 * user's resources to another") and with the user's own server, whose
 * pings and answers keep the session working even if the user blocked
 * the whole domain.
 */
static int
exempt(const struct jid *user, const struct jid *other)
{
	if (strcmp(user->domain, other->domain) != 0)
		return 0;
	if (other->node == NULL)
		return other->resource == NULL;
	return strcmp(user->node, other->node) == 0;
}

/* A bare JID string of a roster ("node@domain" or "domain", prepared)
 * split in place into j (no allocation; j->mem stays NULL). */
static void
contact_split(char *s, struct jid *j)
{
	char *at = strchr(s, '@');

	memset(j, 0, sizeof(*j));
	if (at) {
		*at = '\0';
		j->node = s;
		j->domain = at + 1;
	} else
		j->domain = s;
}

/* Storage jobs. */

#define UID USER_ID_SQL("?1", "?2")

static const char sql_load[] =
    "SELECT jid FROM blocklist WHERE user_id = " UID " LIMIT ?3";
static const char sql_insert[] =
    "INSERT OR IGNORE INTO blocklist (user_id, jid) VALUES (" UID ", ?3)";
static const char sql_delete[] =
    "DELETE FROM blocklist WHERE user_id = " UID " AND jid = ?3";
static const char sql_delete_all[] =
    "DELETE FROM blocklist WHERE user_id = " UID;

enum job_kind { JOB_LOAD, JOB_BLOCK, JOB_UNBLOCK, JOB_UNBLOCK_ALL };

struct blocking_job {
	struct store_job j; /* owner: the requesting session, or 0 */
	enum job_kind kind;
	char *user, *host, *bare;
	uint64_t gen; /* of the cache the job belongs to */
	char **jids;  /* load: rows read; else the items */
	size_t n;
	size_t fresh;       /* block: items not yet in the cache */
	struct xel *result; /* IQ result to send after the commit */
};

static int
bind_user(sqlite3_stmt *s, const char *user, const char *host)
{
	return sqlite3_bind_text(s, 1, host, -1, SQLITE_STATIC) != SQLITE_OK ||
	       sqlite3_bind_text(s, 2, user, -1, SQLITE_STATIC) != SQLITE_OK;
}

static enum store_status
load_run(struct store_job *sj)
{
	struct blocking_job *j = (struct blocking_job *)sj;
	sqlite3_stmt *s = store_sql(sql_load);
	int rc;

	if (s == NULL)
		return STORE_ERROR;
	if (bind_user(s, j->user, j->host) ||
	    sqlite3_bind_int(s, 3, BLOCKLIST_LOAD_MAX) != SQLITE_OK) {
		store_sql_done(s);
		return STORE_ERROR;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(s, 0);

		if (t == NULL)
			continue;
		j->jids = xreallocarray(j->jids, j->n + 1, sizeof(char *));
		j->jids[j->n++] = xstrdup(t);
	}
	store_sql_done(s);
	if (rc != SQLITE_DONE) {
		store_sql_warn("blocklist load");
		return STORE_ERROR;
	}
	return STORE_OK;
}

/* One statement per item (insert or delete), or one for all. */
static enum store_status
write_run(struct store_job *sj)
{
	struct blocking_job *j = (struct blocking_job *)sj;
	const char *sql = j->kind == JOB_BLOCK     ? sql_insert
	                  : j->kind == JOB_UNBLOCK ? sql_delete
	                                           : sql_delete_all;
	enum store_status st = STORE_OK;
	sqlite3_stmt *s;

	for (size_t i = 0; i < (j->kind == JOB_UNBLOCK_ALL ? 1 : j->n); i++) {
		if ((s = store_sql(sql)) == NULL)
			return STORE_ERROR;
		if (bind_user(s, j->user, j->host) ||
		    (j->kind != JOB_UNBLOCK_ALL &&
		        sqlite3_bind_text(s, 3, j->jids[i], -1,
		            SQLITE_STATIC) != SQLITE_OK)) {
			store_sql_done(s);
			return STORE_ERROR;
		}
		/* An insert for a deleted account gets NULL for user_id,
		 * which NOT NULL refuses: an error, and the savepoint undoes
		 * the items before it. */
		if ((st = store_sql_write(s, "blocklist write", STORE_OK)) !=
		    STORE_OK)
			return st;
	}
	return st;
}

static void
job_free(struct store_job *sj)
{
	struct blocking_job *j = (struct blocking_job *)sj;

	for (size_t i = 0; i < j->n; i++)
		free(j->jids[i]);
	free(j->jids);
	if (j->result)
		arena_free(j->result->arena);
	free(j->user);
	free(j->host);
	free(j->bare);
	free(j);
}

static void load_complete(struct store_job *sj);
static void write_complete(struct store_job *sj);

static const struct store_job_ops load_ops = {.name = "blocklist load",
    .writes = 0,
    .run = load_run,
    .complete = load_complete,
    .free = job_free};
static const struct store_job_ops write_ops = {.name = "blocklist write",
    .writes = 1,
    .run = write_run,
    .complete = write_complete,
    .free = job_free};

static struct blocking_job *
job_new(const struct blocklist *bl, enum job_kind kind)
{
	struct blocking_job *j = xcalloc(1, sizeof(*j));

	j->j.ops = kind == JOB_LOAD ? &load_ops : &write_ops;
	j->kind = kind;
	j->user = xstrdup(bl->user);
	j->host = xstrdup(bl->host);
	j->bare = xstrdup(bl->bare);
	j->gen = bl->gen;
	return j;
}

/* Loading at bind. */

static void
release_waiting(struct blocklist *bl, int ok)
{
	for (size_t i = 0; i < bl->nwaiting; i++) {
		struct session *s = sm_find_id(bl->waiting[i]);

		if (s == NULL)
			continue;
		if (ok)
			session_release(s);
		else
			session_end(s, "internal-server-error",
			    "Cannot load the block list");
	}
	bl->nwaiting = 0;
}

static void
load_complete(struct store_job *sj)
{
	struct blocking_job *j = (struct blocking_job *)sj;
	struct blocklist *bl = lists ? strmap_get(lists, j->bare) : NULL;
	int was;

	if (bl == NULL || bl->gen != j->gen)
		return; /* the user left while it loaded, or switched off */
	if (sj->status != STORE_OK) {
		log_warnx(
		    "blocking: cannot load the block list of %s", j->bare);
		strmap_del(lists, j->bare);
		release_waiting(bl, 0);
		list_free(bl);
		return;
	}
	count_before(bl, &was);
	for (size_t i = 0; i < j->n; i++)
		strmap_put(bl->items, j->jids[i], BLOCKED);
	bl->loaded = 1;
	count_after(bl, was);
	log_debug("blocking: loaded %zu items of %s", j->n, bl->bare);
	release_waiting(bl, 1);
}

static void
on_bound(struct session *s)
{
	struct blocklist *bl = strmap_get(lists, s->bare);

	if (bl && bl->loaded)
		return;
	if (bl == NULL) {
		bl = xcalloc(1, sizeof(*bl));
		bl->user = xstrdup(s->jid.node);
		bl->host = xstrdup(s->jid.domain);
		bl->bare = xstrdup(s->bare);
		bl->items = strmap_new();
		bl->gen = next_gen++;
		strmap_put(lists, bl->bare, bl);
		store_job_submit(&job_new(bl, JOB_LOAD)->j);
	}
	ids_add(&bl->waiting, &bl->nwaiting, s->id);
	session_hold(s);
}

/* A session ends (still linked): forget it, and the list with the last
 * one. */
static void
on_end(struct session *s)
{
	struct blocklist *bl = strmap_get(lists, s->bare);
	struct session *first = sm_find_bare(s->jid.node, s->jid.domain);

	if (bl == NULL)
		return;
	ids_del(bl->interested, &bl->ninterested, s->id);
	ids_del(bl->waiting, &bl->nwaiting, s->id);
	if (first == NULL || (first == s && s->next == NULL)) {
		strmap_del(lists, s->bare);
		list_free(bl);
	}
}

static void
on_user_deleted(const char *user, const char *host)
{
	char *bare = xasprintf("%s@%s", user, host);
	struct blocklist *bl = strmap_del(lists, bare);

	if (bl)
		list_free(bl);
	free(bare);
}

/* Pushes (§3.3, §3.4, §3.5): to every resource that asked for the list. */

static void
push(struct blocklist *bl, const char *what, char *const *jids, size_t n)
{
	struct arena *a = arena_new(1024);
	struct xel *iq = xel_new(a, "iq", NS_CLIENT), *p;

	xel_set_attr(iq, "type", "set");
	xel_set_attr(
	    iq, "id", arena_printf(a, "block-push%" PRIu64, next_push++));
	p = xel_add(iq, what, NS_BLOCKING);
	for (size_t i = 0; i < n; i++)
		xel_set_attr(xel_add(p, "item", NS_BLOCKING), "jid", jids[i]);
	for (struct session *s = sm_find_bare(bl->user, bl->host); s;
	     s = s->next) {
		if (!ids_has(bl->interested, bl->ninterested, s->id))
			continue;
		xel_set_attr(iq, "to", s->full);
		session_send(s, iq);
	}
	arena_free(a);
}

/* Presence when the list changes (§3.3, §3.4). */

/* Contacts of the user's roster with a subscription bit: SUB_FROM, may
 * see the user's presence; SUB_TO, the user sees theirs. */
struct subscribers {
	unsigned bit;
	char **jids;
	size_t n;
};

static void
collect_subscriber(const struct roster_item *it, void *arg)
{
	struct subscribers *sb = arg;

	if (!(it->sub & sb->bit))
		return;
	sb->jids = xreallocarray(sb->jids, sb->n + 1, sizeof(char *));
	sb->jids[sb->n++] = xstrdup(it->jid);
}

static void
subscribers_get(const struct blocklist *bl, struct subscribers *sb,
    unsigned bit)
{
	struct roster *r = roster_cached(bl->user, bl->host);

	memset(sb, 0, sizeof(*sb));
	sb->bit = bit;
	if (r)
		roster_foreach(r, collect_subscriber, sb);
}

static void
subscribers_free(struct subscribers *sb)
{
	for (size_t i = 0; i < sb->n; i++)
		free(sb->jids[i]);
	free(sb->jids);
}

/*
 * The sessions of local contacts whose presence the user receives ('to')
 * that set names, as ids: what the user's clients show as online and a
 * change of the list may hide or show again.  Ids, since presence sent
 * meanwhile may end sessions.
 */
static void
seen_sessions(const struct blocklist *bl, const struct strmap *set,
    uint64_t **ids, size_t *n)
{
	struct subscribers sb;

	*ids = NULL;
	*n = 0;
	subscribers_get(bl, &sb, SUB_TO);
	for (size_t i = 0; i < sb.n; i++) {
		struct jid j = {0};

		if (jid_parse(&j, sb.jids[i]) == 0 && j.node != NULL)
			for (struct session *c = sm_find_bare(j.node,
				 j.domain); c != NULL; c = c->next)
				if (c->available && set_matches(set, &c->jid))
					ids_add(ids, n, c->id);
		jid_free(&j);
	}
	subscribers_free(&sb);
}

static int
is_subscriber(const struct blocklist *bl, const char *bare)
{
	struct roster *r = roster_cached(bl->user, bl->host);

	return r && (roster_state(r, bare) & SUB_FROM);
}

/* "n@d/r" or "d/r": the bare part, malloc'ed; NULL without a resource. */
static char *
item_bare(const char *item)
{
	const char *slash = strchr(item, '/');

	return slash ? xstrndup(item, (size_t)(slash - item)) : NULL;
}

/*
 * Before new items (the set add) enter the cache: unavailable presence
 * from each available resource to every JID that may see the user's
 * presence and is blocked only now (§3.3: "but only if the JID is
 * allowed to receive presence notifications", RFC 6121 §4.5.2).  That
 * is a subscriber named by a bare or domain item, a subscriber's
 * resource named by a full item, and a JID a resource sent directed
 * presence to (RFC 6121 §4.6.3).  Sent before the cache changes, since
 * the delivery filter would drop it afterwards.
 */
static void
unavailable_before_block(struct blocklist *bl, const struct strmap *add,
    char *const *items, size_t n)
{
	struct subscribers sb;
	struct jid j;
	uint64_t *seen;
	size_t nseen;

	/* The user's side first: the contacts it now blocks go offline
	 * for its clients (their presence would be dropped from now on,
	 * an unavailable one included, and the clients would keep showing
	 * them online). */
	seen_sessions(bl, add, &seen, &nseen);
	for (size_t i = 0; i < nseen; i++) {
		struct session *c = sm_find_id(seen[i]);

		if (c != NULL && !set_matches(bl->items, &c->jid))
			presence_session_to_user(c, bl->user, bl->host, 1);
	}
	free(seen);
	subscribers_get(bl, &sb, SUB_FROM);
	for (size_t i = 0; i < sb.n; i++) {
		contact_split(sb.jids[i], &j);
		if (set_matches(add, &j) && !set_matches(bl->items, &j))
			presence_unavailable_to(bl->user, bl->host, &j);
	}
	subscribers_free(&sb);
	for (size_t i = 0; i < n; i++) {
		char *bare = item_bare(items[i]);
		struct jid full = {0}, bj = {0};

		if (bare && !strmap_get(bl->items, items[i]) &&
		    is_subscriber(bl, bare) &&
		    jid_parse(&full, items[i]) == 0 &&
		    jid_parse(&bj, bare) == 0 && !set_matches(add, &bj) &&
		    !set_matches(bl->items, &bj) &&
		    !set_matches(bl->items, &full))
			presence_unavailable_to(bl->user, bl->host, &full);
		jid_free(&full);
		jid_free(&bj);
		free(bare);
	}
	for (struct session *s = sm_find_bare(bl->user, bl->host); s;
	     s = s->next) {
		if (!s->available)
			continue;
		for (size_t i = 0; i < s->ndirected; i++) {
			struct jid d = {0};
			struct xel *p;

			if (jid_parse(&d, s->directed[i]) == 0 &&
			    set_matches(add, &d) &&
			    !set_matches(bl->items, &d)) {
				p = xel_new(
				    arena_new(256), "presence", NS_CLIENT);
				xel_set_attr(p, "from", s->full);
				xel_set_attr(p, "to", s->directed[i]);
				xel_set_attr(p, "type", "unavailable");
				router_route(p);
				arena_free(p->arena);
			}
			jid_free(&d);
		}
	}
}

static void
apply_block(struct blocklist *bl, char *const *items, size_t n)
{
	struct strmap *add = strmap_new();
	int was;

	for (size_t i = 0; i < n; i++)
		if (!strmap_get(bl->items, items[i]))
			strmap_put(add, items[i], BLOCKED);
	unavailable_before_block(bl, add, items, n);
	strmap_free(add);
	count_before(bl, &was);
	for (size_t i = 0; i < n; i++)
		strmap_put(bl->items, items[i], BLOCKED);
	count_after(bl, was);
}

struct unblock_ctx {
	char **jids;
	size_t n;
};

static void
collect_item(const char *key, void *value, void *arg)
{
	struct unblock_ctx *u = arg;

	u->jids = xreallocarray(u->jids, u->n + 1, sizeof(char *));
	u->jids[u->n++] = xstrdup(key);
}

/*
 * Remove items (all of them when all is set), then send the current
 * presence of each available resource to every subscriber that was
 * blocked and is not any more (§3.4), and to a subscriber's resource
 * whose full JID item was removed.
 */
static void
apply_unblock(struct blocklist *bl, char *const *items, size_t n, int all)
{
	struct subscribers sb;
	struct unblock_ctx removed = {NULL, 0};
	struct strmap *was_blocked = strmap_new();
	struct jid j;
	uint64_t *seen;
	size_t nseen;
	int was;

	seen_sessions(bl, bl->items, &seen, &nseen);
	subscribers_get(bl, &sb, SUB_FROM);
	for (size_t i = 0; i < sb.n; i++) {
		char *copy = xstrdup(sb.jids[i]);

		contact_split(copy, &j);
		if (set_matches(bl->items, &j))
			strmap_put(was_blocked, sb.jids[i], BLOCKED);
		free(copy);
	}
	count_before(bl, &was);
	if (all) {
		strmap_foreach(bl->items, collect_item, &removed);
		for (size_t i = 0; i < removed.n; i++)
			strmap_del(bl->items, removed.jids[i]);
	} else
		for (size_t i = 0; i < n; i++)
			if (strmap_del(bl->items, items[i]))
				collect_item(items[i], NULL, &removed);
	count_after(bl, was);
	for (size_t i = 0; i < sb.n; i++) {
		int before = strmap_get(was_blocked, sb.jids[i]) != NULL;

		contact_split(sb.jids[i], &j);
		if (before && !set_matches(bl->items, &j))
			presence_current_to(bl->user, bl->host, &j);
	}
	for (size_t i = 0; i < removed.n; i++) {
		char *bare = item_bare(removed.jids[i]);
		struct jid full = {0}, bj = {0};

		/* A bare JID that was blocked as a whole got its presence
		 * above; here only a resource named on its own. */
		if (bare && is_subscriber(bl, bare) &&
		    !strmap_get(was_blocked, bare) &&
		    jid_parse(&full, removed.jids[i]) == 0 &&
		    jid_parse(&bj, bare) == 0 && !set_matches(bl->items, &bj) &&
		    !set_matches(bl->items, &full))
			presence_current_to(bl->user, bl->host, &full);
		jid_free(&full);
		jid_free(&bj);
		free(bare);
		free(removed.jids[i]);
	}
	/* The contacts' side: those blocked until now come back online for
	 * the user's clients with their current presence, as the answer to
	 * a probe would bring it (§3.4).  A remote contact will need a real
	 * probe once there is server-to-server. */
	for (size_t i = 0; i < nseen; i++) {
		struct session *c = sm_find_id(seen[i]);

		if (c != NULL && !set_matches(bl->items, &c->jid))
			presence_session_to_user(c, bl->user, bl->host, 0);
	}
	free(seen);
	free(removed.jids);
	strmap_free(was_blocked);
	subscribers_free(&sb);
}

static void
write_complete(struct store_job *sj)
{
	struct blocking_job *j = (struct blocking_job *)sj;
	struct blocklist *bl = lists ? strmap_get(lists, j->bare) : NULL;
	struct session *s = j->j.owner ? sm_find_id(j->j.owner) : NULL;
	const char *what = j->kind == JOB_BLOCK ? "block" : "unblock";

	/* A list loaded again after the user came back read this write
	 * already (the store is FIFO): only this load's cache changes. */
	if (bl && bl->gen != j->gen)
		bl = NULL;
	if (bl && j->kind == JOB_BLOCK)
		bl->pending -= j->fresh;
	if (sj->status != STORE_OK) {
		log_warnx("blocking: %s for %s failed", what, j->bare);
		if (s && j->result) {
			struct xel *e = stanza_error(
			    j->result, "wait", "internal-server-error", NULL);

			if (e) {
				session_send(s, e);
				arena_free(e->arena);
			}
		}
		return;
	}
	if (bl) {
		if (j->kind == JOB_BLOCK)
			apply_block(bl, j->jids, j->n);
		else
			apply_unblock(
			    bl, j->jids, j->n, j->kind == JOB_UNBLOCK_ALL);
	}
	/* §3.3: the result, then the pushes. */
	if (s && j->result)
		session_send(s, j->result);
	if (bl)
		push(bl, what, j->jids, j->n);
}

/* The IQs (§3.2 to §3.5). */

static void
reply_error(struct session *s, struct xel *iq, const char *type,
    const char *cond, const char *text)
{
	struct xel *r = stanza_error(iq, type, cond, text);

	if (r) {
		session_send(s, r);
		arena_free(r->arena);
	}
}

static void
blocklist_get(struct session *s, struct blocklist *bl, struct xel *iq)
{
	struct xel *res = stanza_iq_result(iq);
	struct xel *list = xel_add(res, "blocklist", NS_BLOCKING);
	struct unblock_ctx all = {NULL, 0};

	/* §3.3: pushes go to resources that requested the list. */
	ids_add(&bl->interested, &bl->ninterested, s->id);
	strmap_foreach(bl->items, collect_item, &all);
	for (size_t i = 0; i < all.n; i++) {
		xel_set_attr(
		    xel_add(list, "item", NS_BLOCKING), "jid", all.jids[i]);
		free(all.jids[i]);
	}
	free(all.jids);
	session_send(s, res);
	arena_free(res->arena);
}

/*
 * The <item jid/> children of a block or unblock, prepared and without
 * duplicates, into j.  Returns the error condition (type modify) or NULL:
 * a child other than <item/> or an item without 'jid' is a
 * <bad-request/> (the schema of §10 allows items only, with 'jid'
 * required; an <unblock/> with anything else must not be taken for
 * "unblock all"), a 'jid' that is not a JID <jid-malformed/> (RFC 6120
 * §8.3.3.8).
 */
static const char *
collect_items(struct xel *payload, struct blocking_job *j)
{
	struct strmap *seen = strmap_new();
	const char *cond = NULL;

	for (struct xel *it = payload->children; it; it = it->next) {
		const char *jid = xel_attr(it, "jid");
		char *prep;

		if (it->name == NULL)
			continue; /* text */
		if (!xel_is(it, "item", NS_BLOCKING) || jid == NULL) {
			cond = "bad-request";
			break;
		}
		if ((prep = jid_normalize(jid)) == NULL) {
			cond = "jid-malformed";
			break;
		}
		if (strmap_get(seen, prep)) {
			free(prep);
			continue;
		}
		strmap_put(seen, prep, BLOCKED);
		j->jids = xreallocarray(j->jids, j->n + 1, sizeof(char *));
		j->jids[j->n++] = prep;
	}
	strmap_free(seen);
	return cond;
}

static void
block_set(struct session *s, struct blocklist *bl, struct xel *iq,
    struct xel *payload, int block)
{
	struct blocking_job *j = job_new(bl, block ? JOB_BLOCK : JOB_UNBLOCK);
	unsigned limit = xmppd_conf->limits.blocklist_size;
	const char *cond;

	j->j.owner = s->id;
	if ((cond = collect_items(payload, j)) != NULL) {
		reply_error(s, iq, "modify", cond, NULL);
		job_free(&j->j);
		return;
	}
	if (block && j->n == 0) {
		/* §3.3: a block without an item */
		reply_error(s, iq, "modify", "bad-request", NULL);
		job_free(&j->j);
		return;
	}
	if (!block && j->n == 0)
		j->kind = JOB_UNBLOCK_ALL; /* §3.5 */
	if (block) {
		for (size_t i = 0; i < j->n; i++)
			if (!strmap_get(bl->items, j->jids[i]))
				j->fresh++;
		/*
		 * XEP-0191 sets no limit; a full list is a request the
		 * server "understands but cannot process because it does
		 * not meet criteria defined by the server" (RFC 6120
		 * §8.3.3.12), which unblocking first or blocking less
		 * can fix: type modify.
		 */
		if (list_count(bl) + bl->pending + j->fresh > limit) {
			char text[96];

			snprintf(text, sizeof(text),
			    "The block list holds at most %u JIDs", limit);
			session_log_limit(s, "blocklist-size", limit);
			reply_error(s, iq, "modify", "not-acceptable", text);
			job_free(&j->j);
			return;
		}
		bl->pending += j->fresh;
	}
	j->result = stanza_iq_result(iq);
	store_job_submit(&j->j);
}

/* Whether the IQ is addressed to the sender's own account: no 'to'
 * (RFC 6120 §10.3.3) or its bare JID. */
static int
to_own_account(struct session *s, struct xel *iq, enum iq_target target)
{
	const char *to = xel_attr(iq, "to");
	struct jid j = {0};
	int own;

	if (target != IQ_TO_BARE)
		return 0;
	if (to == NULL)
		return 1;
	own = jid_parse(&j, to) == 0 && j.node && j.resource == NULL &&
	      jid_eq_bare(&j, &s->jid);
	jid_free(&j);
	return own;
}

static enum hook_result
handle_blocking(struct session *s, struct xel *iq, enum iq_target target)
{
	const char *type = xel_attr(iq, "type");
	struct xel *payload = xel_first_elem(iq);
	struct blocklist *bl = strmap_get(lists, s->bare);
	int get = strcmp(type, "get") == 0;

	/* §3.2 to §3.5: the user's own list only, handled by its server
	 * (as RFC 6121 §2.1.5 for the roster). */
	if (!to_own_account(s, iq, target)) {
		reply_error(s, iq, "auth", "forbidden", NULL);
		return HOOK_HANDLED;
	}
	if (bl == NULL || !bl->loaded) {
		reply_error(s, iq, "wait", "internal-server-error", NULL);
		return HOOK_HANDLED;
	}
	/* The list is read with get; block and unblock are set. */
	if (xel_is(payload, "blocklist", NS_BLOCKING) ? !get : get) {
		reply_error(s, iq, "modify", "bad-request", NULL);
		return HOOK_HANDLED;
	}
	if (get)
		blocklist_get(s, bl, iq);
	else
		block_set(
		    s, bl, iq, payload, xel_is(payload, "block", NS_BLOCKING));
	return HOOK_HANDLED;
}

/* The filters. */

static int
type_is(const struct xel *st, const char *t)
{
	const char *v = xel_attr(st, "type");

	return v && strcmp(v, t) == 0;
}

static int
iq_request(const struct xel *st)
{
	return type_is(st, "get") || type_is(st, "set");
}

static int
subscription_presence(const struct xel *st)
{
	return type_is(st, "subscribe") || type_is(st, "subscribed") ||
	       type_is(st, "unsubscribe") || type_is(st, "unsubscribed");
}

/*
 * §3.3: the user sends to a JID it blocked.  A message or IQ request is
 * not routed and gets <not-acceptable/> with <blocked/>; errors and IQ
 * results vanish (never answer an error, RFC 6120 §8.3.1).  Presence is
 * dropped without an error (our choice: the XEP's error and example are
 * about messages, and a presence error would only make the user's own
 * client show the contact as failing), except unsubscribe and
 * unsubscribed: they only take from the blocked JID (§4 even lets the
 * server cancel subscriptions on a block), the user's roster must be
 * able to follow, and the delivery filter lets subscription stanzas
 * through, as it does the server's own.
 */
static enum hook_result
outbound_to_blocked(struct session *from, struct xel *st)
{
	struct xel *r, *err;

	switch (stanza_kind(st)) {
	case STANZA_PRESENCE:
		return type_is(st, "unsubscribe") || type_is(st, "unsubscribed")
		           ? HOOK_PASS
		           : HOOK_HANDLED;
	case STANZA_IQ:
		if (!iq_request(st))
			return HOOK_HANDLED;
		break;
	default:
		break;
	}
	if ((r = stanza_error(st, "cancel", "not-acceptable", NULL)) == NULL)
		return HOOK_HANDLED;
	if ((err = xel_child(r, "error", NS_CLIENT)) != NULL)
		xel_add(err, "blocked", NS_BLOCKING_ERRORS);
	session_send(from, r);
	arena_free(r->arena);
	return HOOK_HANDLED;
}

/*
 * §3.3, a blocked JID sends to the user: presence vanishes without an
 * answer, a message or an IQ get/set gets <service-unavailable/> (as if
 * the user were offline), IQ results and errors vanish.  sender is the
 * local session that sent it, or NULL.
 */
static void
refuse_inbound(struct session *sender, struct xel *st)
{
	switch (stanza_kind(st)) {
	case STANZA_MESSAGE:
		if (!type_is(st, "error"))
			router_bounce(sender, st, "service-unavailable");
		break;
	case STANZA_IQ:
		if (iq_request(st))
			router_bounce(sender, st, "service-unavailable");
		break;
	default:
		break;
	}
}

/*
 * Stanzas of local sessions, before routing.  The sender's own list
 * decides first (§3.3 outbound).  Then, for messages and IQs to a local
 * user whose list is loaded and blocks the sender, the answer is given
 * here, once, rather than per resource at delivery: a message to a bare
 * JID may be delivered to several.  Presence goes on to presence.c, so
 * that subscription state changes exactly as it does while the user is
 * offline (no answer there may reveal whether the user is online); the
 * delivery filter keeps it from the user's resources.  IQs to the bare
 * JID are answered by the server for the account (RFC 6121 §8.5.1) and
 * are not filtered, for the same reason: the list is cached only while
 * the user is online.  A user offline is covered by mod_offline, which
 * refuses to store a blocked sender's message.
 */
static enum hook_result
blocking_outbound(struct session *from, struct xel *st, const struct jid *to)
{
	struct blocklist *bl;
	enum stanza_kind kind;

	if (nonempty == 0 || to == NULL || exempt(&from->jid, to))
		return HOOK_PASS;
	if (list_matches(strmap_get(lists, from->bare), to))
		return outbound_to_blocked(from, st);
	kind = stanza_kind(st);
	if (kind == STANZA_PRESENCE || (kind == STANZA_IQ && !to->resource))
		return HOOK_PASS;
	if ((bl = list_of(to)) == NULL || !list_matches(bl, &from->jid))
		return HOOK_PASS;
	refuse_inbound(from, st);
	return HOOK_HANDLED;
}

/*
 * Every stanza about to reach a local session.  The recipient blocked
 * the sender: refused as in refuse_inbound, the error going to the
 * sender if it is a local session (§3.3: "MUST NOT deliver any XML
 * stanzas from the JID to the user").  The sender is a local user who
 * blocked the recipient: what the server sends for it (presence
 * broadcasts, probe answers, messages stored before the block) is
 * dropped, except subscription stanzas, whose state change at the
 * recipient has happened already and which reveal nothing the user's
 * being offline would not.
 */
static enum hook_result
blocking_deliver(struct session *to, struct xel *st, const struct jid *from)
{
	struct blocklist *bl;

	if (nonempty == 0 || exempt(&to->jid, from))
		return HOOK_PASS;
	if (list_matches(strmap_get(lists, to->bare), from)) {
		refuse_inbound(from->resource ? sm_find_full(from) : NULL, st);
		return HOOK_HANDLED;
	}
	if ((bl = list_of(from)) != NULL && list_matches(bl, &to->jid) &&
	    !(stanza_kind(st) == STANZA_PRESENCE && subscription_presence(st)))
		return HOOK_HANDLED;
	return HOOK_PASS;
}

int
blocking_blocks(const char *user, const char *host, const char *jid)
{
	struct jid u = { .node = (char *)user, .domain = (char *)host };
	struct jid o = { 0 };
	int yes;

	if (lists == NULL || nonempty == 0 || jid_parse(&o, jid) < 0)
		return 0;
	yes = !exempt(&u, &o) && list_matches(list_of(&u), &o);
	jid_free(&o);
	return yes;
}

static void
bound_already(struct session *s, void *arg)
{
	if (!s->closing)
		on_bound(s);
}

void
mod_blocking_init(void)
{
	lists = strmap_new();
	iq_register(NS_BLOCKING, "blocklist", handle_blocking);
	iq_register(NS_BLOCKING, "block", handle_blocking);
	iq_register(NS_BLOCKING, "unblock", handle_blocking);
	hook_add_session(HOOK_SESSION_BOUND, on_bound);
	hook_add_session(HOOK_SESSION_END, on_end);
	hook_add_user_deleted(on_user_deleted);
	hook_add_outbound(blocking_outbound);
	hook_add_deliver(blocking_deliver);
	/* §3.1 */
	disco_add_feature(DISCO_SERVER, NS_BLOCKING);
	/* Switched on by a reload: the lists of who is online. */
	sm_foreach_session(bound_already, NULL);
}

/* Sessions held while their list loads are released; writes in flight
 * complete (their answers still go out) but change no cache. */
void
mod_blocking_deinit(void)
{
	size_t n;
	void **v = strmap_values(lists, &n);

	strmap_free(lists);
	lists = NULL;
	for (size_t i = 0; i < n; i++) {
		release_waiting(v[i], 1);
		list_free(v[i]);
	}
	free(v);
	nonempty = 0;
}
