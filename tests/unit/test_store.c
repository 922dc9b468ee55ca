/*
 * Unit tests for the SQLite store (xmppd/store/store_sqlite.c) and the worker
 * pool (xmppd/work.c): results, FIFO order and thread of completions,
 * group commit, per-request rollback, chunked listing, persistence across
 * reopen, and refusal of files that are not our database.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <sqlite3.h>

#include "log.h"
#include "xmalloc.h"
#include "store/mam.h"
#include "store/store.h"
#include "work.h"
#include "unit.h"
#include "unit_loop.h"

#define OWNER 4242
#define MAX_TAGS 4096

static struct ev_loop *loop;
static pthread_t main_thread;
static char dir[64];
static char dbpath[128];

/* Set while a store_* or work_submit call runs: callbacks must not. */
static int in_call;
#define CALL(expr)                                                             \
	do {                                                                   \
		in_call = 1;                                                   \
		expr;                                                          \
		in_call = 0;                                                   \
	} while (0)

/* Violations counted in callbacks, checked once per phase. */
static int bad_context; /* callback during a call or off the loop thread */
static int bad_order;   /* completions out of FIFO order */
static int bad_owner;

/* Listings: every row, and the final call. */
struct listing {
	char **rows; /* "host user" */
	size_t n, cap;
	int finals;
	int rows_after_final;
	enum store_status final_st;
};

/* Status and user requests: tag = issue number, completed in order. */
struct result {
	int done;
	enum store_status st;
	int found;
	struct store_user u;
	char user[64];
	char host[64];
	char reason[64];
	size_t list_rows_at; /* rows of *watched seen when this ran */
};
static struct result results[MAX_TAGS];
static struct listing *watched; /* user_cb notes its progress */
static uint64_t issued;         /* next tag */
static uint64_t completed;      /* completions seen (tags 0..completed-1) */

static void
check_context(uint64_t owner)
{
	if (in_call || !pthread_equal(pthread_self(), main_thread))
		bad_context++;
	if (owner != OWNER)
		bad_owner++;
}

static void
note_completion(uint64_t owner, uint64_t tag)
{
	check_context(owner);
	if (tag != completed || tag >= MAX_TAGS || results[tag].done)
		bad_order++;
	completed = tag + 1;
	if (tag < MAX_TAGS)
		results[tag].done++;
}

static void
status_cb(uint64_t owner, uint64_t tag, enum store_status st)
{
	note_completion(owner, tag);
	results[tag].st = st;
}

static void
user_cb(uint64_t owner, uint64_t tag, enum store_status st,
    const struct store_user *u)
{
	struct result *r = &results[tag];

	note_completion(owner, tag);
	r->st = st;
	if (watched != NULL)
		r->list_rows_at = watched->n;
	if (u != NULL) {
		r->found = 1;
		r->u = *u;
		snprintf(r->user, sizeof(r->user), "%s", u->user);
		snprintf(r->host, sizeof(r->host), "%s", u->host);
		r->u.user = r->user;
		r->u.host = r->host;
		if (u->disabled_reason != NULL) {
			snprintf(r->reason, sizeof(r->reason), "%s",
			    u->disabled_reason);
			r->u.disabled_reason = r->reason;
		}
	}
}

static struct listing listings[4];
static int lists_issued, lists_done;

static void
list_cb(uint64_t owner, uint64_t tag, enum store_status st,
    const struct store_user *u)
{
	struct listing *l = &listings[tag];

	check_context(owner);
	if (u == NULL) {
		l->finals++;
		l->final_st = st;
		lists_done++;
		return;
	}
	if (l->finals)
		l->rows_after_final++;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->rows = xreallocarray(l->rows, l->cap, sizeof(*l->rows));
	}
	if (u->disabled != 0)
		l->rows[l->n++] = xasprintf("%s %s disabled %lld %s", u->host,
		    u->user, (long long)u->disabled,
		    u->disabled_reason ? u->disabled_reason : "(null)");
	else
		l->rows[l->n++] = xasprintf("%s %s", u->host, u->user);
}

static void
listing_free(struct listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->rows[i]);
	free(l->rows);
	memset(l, 0, sizeof(*l));
}

static int
all_done(void)
{
	return completed >= issued && lists_done >= lists_issued;
}

/* Run the loop until every issued request has completed (30 s guard). */
static int
wait_all(void)
{
	return unit_run_until(loop, all_done);
}

/* Keys with a recognisable pattern; iterations 0 means "none". */
static void
fill_keys(struct scram_keys *k, enum scram_hash h, unsigned seed)
{
	size_t klen = h == SCRAM_SHA1 ? 20 : 32;

	memset(k, 0, sizeof(*k));
	k->hash = h;
	k->iterations = 4096 + seed;
	k->saltlen = 12 + seed % 21;
	for (size_t i = 0; i < k->saltlen; i++)
		k->salt[i] = (unsigned char)(seed * 7 + i);
	for (size_t i = 0; i < klen; i++) {
		k->stored_key[i] = (unsigned char)(seed * 13 + i * 3 + 1);
		k->server_key[i] = (unsigned char)(seed * 31 + i * 5 + 2);
	}
	k->stored_key[0] = 0; /* embedded NULs must survive */
}

static int
keys_equal(
    const struct scram_keys *a, const struct scram_keys *b, enum scram_hash h)
{
	size_t klen = h == SCRAM_SHA1 ? 20 : 32;

	if (a->hash != h || b->hash != h || a->iterations != b->iterations)
		return 0;
	if (a->iterations == 0)
		return 1;
	return a->saltlen == b->saltlen &&
	       memcmp(a->salt, b->salt, a->saltlen) == 0 &&
	       memcmp(a->stored_key, b->stored_key, klen) == 0 &&
	       memcmp(a->server_key, b->server_key, klen) == 0;
}

static void
make_user(
    struct store_user *u, const char *user, const char *host, unsigned seed)
{
	memset(u, 0, sizeof(*u));
	u->user = user;
	u->host = host;
	u->created = 1700000000 + seed;
	fill_keys(&u->sha1, SCRAM_SHA1, seed);
	fill_keys(&u->sha256, SCRAM_SHA256, seed + 1000);
}

/* The users the database should hold, as "host user". */
static char **expected;
static size_t nexpected, capexpected;

static void
expect_add(const char *user, const char *host)
{
	if (nexpected == capexpected) {
		capexpected = capexpected ? capexpected * 2 : 64;
		expected =
		    xreallocarray(expected, capexpected, sizeof(*expected));
	}
	expected[nexpected++] = xasprintf("%s %s", host, user);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Compare a listing with the expected users (of host, or all). */
static int
listing_matches(const struct listing *l, const char *host)
{
	size_t n = 0, hl = host ? strlen(host) : 0;

	qsort(expected, nexpected, sizeof(*expected), cmp_str);
	for (size_t i = 0; i < nexpected; i++) {
		if (host && (strncmp(expected[i], host, hl) != 0 ||
		                expected[i][hl] != ' '))
			continue;
		if (n >= l->n || strcmp(l->rows[n], expected[i]) != 0) {
			fprintf(stderr,
			    "listing row %zu: got \"%s\", want "
			    "\"%s\"\n",
			    n, n < l->n ? l->rows[n] : "(end)", expected[i]);
			return 0;
		}
		n++;
	}
	if (n != l->n) {
		fprintf(stderr, "listing: %zu rows, want %zu\n", l->n, n);
		return 0;
	}
	return 1;
}

/* Issue helpers: return the tag. */
static uint64_t
do_create(const struct store_user *u)
{
	uint64_t tag = issued++;

	CALL(store_user_create(u, status_cb, OWNER, tag));
	return tag;
}

static uint64_t
do_create_simple(const char *user, const char *host, unsigned seed)
{
	struct store_user u;

	make_user(&u, user, host, seed);
	return do_create(&u);
}

static uint64_t
do_get(const char *user, const char *host)
{
	uint64_t tag = issued++;

	CALL(store_user_get(user, host, user_cb, OWNER, tag));
	return tag;
}

static uint64_t
do_set_keys(const struct store_user *u)
{
	uint64_t tag = issued++;

	CALL(store_user_set_keys(u, status_cb, OWNER, tag));
	return tag;
}

static uint64_t
do_delete(const char *user, const char *host)
{
	uint64_t tag = issued++;

	CALL(store_user_delete(user, host, status_cb, OWNER, tag));
	return tag;
}

static uint64_t
do_set_disabled(
    const char *user, const char *host, int64_t when, const char *reason)
{
	uint64_t tag = issued++;

	CALL(store_user_set_disabled(
	    user, host, when, reason, status_cb, OWNER, tag));
	return tag;
}

static int
do_list(const char *host)
{
	int tag = lists_issued++;

	CALL(store_user_list(host, list_cb, OWNER, (uint64_t)tag));
	return tag;
}

/* Wait until the storage thread has taken every queued request. */
static int
wait_queue_taken(void)
{
	struct store_stats st;
	struct timespec ts = {0, 1000000};

	for (int i = 0; i < 5000; i++) {
		store_get_stats(&st);
		if (st.queue_depth == 0)
			return 1;
		nanosleep(&ts, NULL);
	}
	return 0;
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

static int
ext_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "exec \"%s\": %s\n", sql, msg);
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static void
test_basic(void)
{
	struct store_user alice, bob, alice2;
	uint64_t t_create, t_again, t_get, t_missing, t_bob, t_bobget;
	uint64_t t_set, t_setmissing, t_get2;
	uint64_t before;
	struct timespec ts = {0, 50000000};

	make_user(&alice, "alice", "a.example", 1);
	make_user(&bob, "bob", "b.example", 2);
	bob.sha1.iterations = 0; /* no SHA-1 keys: stored as NULL */

	before = completed;
	t_create = do_create(&alice);
	t_again = do_create(&alice);
	t_get = do_get("alice", "a.example");
	t_missing = do_get("carol", "a.example");
	t_bob = do_create(&bob);
	t_bobget = do_get("bob", "b.example");
	/* The storage thread is done by now, but callbacks wait for the
	 * loop. */
	nanosleep(&ts, NULL);
	CHECK(completed == before);
	CHECK(wait_all());

	CHECK(results[t_create].st == STORE_OK);
	CHECK(results[t_again].st == STORE_EXISTS);
	CHECK(results[t_get].st == STORE_OK && results[t_get].found);
	CHECK_STR(results[t_get].u.user, "alice");
	CHECK_STR(results[t_get].u.host, "a.example");
	CHECK(results[t_get].u.created == alice.created);
	CHECK(keys_equal(&results[t_get].u.sha1, &alice.sha1, SCRAM_SHA1));
	CHECK(
	    keys_equal(&results[t_get].u.sha256, &alice.sha256, SCRAM_SHA256));
	CHECK(results[t_missing].st == STORE_NOT_FOUND);
	CHECK(!results[t_missing].found);
	CHECK(results[t_bob].st == STORE_OK);
	CHECK(results[t_bobget].st == STORE_OK);
	CHECK(results[t_bobget].u.sha1.iterations == 0);
	CHECK(
	    keys_equal(&results[t_bobget].u.sha256, &bob.sha256, SCRAM_SHA256));
	expect_add("alice", "a.example");
	expect_add("bob", "b.example");

	/* Replace keys. */
	make_user(&alice2, "alice", "a.example", 77);
	t_set = do_set_keys(&alice2);
	t_setmissing = do_set_keys(&(struct store_user){.user = "nobody",
	    .host = "a.example",
	    .sha1 = alice2.sha1,
	    .sha256 = alice2.sha256});
	t_get2 = do_get("alice", "a.example");
	CHECK(wait_all());
	CHECK(results[t_set].st == STORE_OK);
	CHECK(results[t_setmissing].st == STORE_NOT_FOUND);
	CHECK(results[t_get2].st == STORE_OK);
	CHECK(keys_equal(&results[t_get2].u.sha1, &alice2.sha1, SCRAM_SHA1));
	CHECK(keys_equal(
	    &results[t_get2].u.sha256, &alice2.sha256, SCRAM_SHA256));
	CHECK(results[t_get2].u.created == alice.created); /* kept */
}

/* A read in the same batch sees the earlier write; delete semantics. */
static void
test_delete(void)
{
	uint64_t t_c, t_g, t_d, t_g2, t_d2, t_g3;

	t_c = do_create_simple("dave", "a.example", 5);
	t_g = do_get("dave", "a.example");
	t_d = do_delete("dave", "a.example");
	t_g2 = do_get("dave", "a.example");
	t_d2 = do_delete("dave", "a.example");
	CHECK(wait_all());
	CHECK(results[t_c].st == STORE_OK);
	CHECK(results[t_g].st == STORE_OK);
	CHECK(results[t_d].st == STORE_OK);
	CHECK(results[t_g2].st == STORE_NOT_FOUND);
	CHECK(results[t_d2].st == STORE_NOT_FOUND);

	t_g3 = do_get("dave", "a.example");
	CHECK(wait_all());
	CHECK(results[t_g3].st == STORE_NOT_FOUND);
}

/*
 * Disabling an account (xmppctl disable): the time and reason come back
 * from get and list, a new password keeps them, enabling clears both,
 * and an unknown account is STORE_NOT_FOUND.  mallory@d.example is left
 * disabled for test_reopen and test_migrate.
 */
static void
test_disabled(void)
{
	struct store_user m, m2;
	uint64_t t_c, t_g0, t_d, t_g1, t_k, t_g2, t_r, t_g3, t_e, t_g4;
	uint64_t t_dn, t_en, t_last;
	struct listing *l;
	int li;

	make_user(&m, "mallory", "d.example", 42);
	t_c = do_create(&m);
	t_g0 = do_get("mallory", "d.example");
	t_d = do_set_disabled("mallory", "d.example", 1800000000, "spam");
	t_g1 = do_get("mallory", "d.example");
	make_user(&m2, "mallory", "d.example", 43);
	t_k = do_set_keys(&m2);
	t_g2 = do_get("mallory", "d.example");
	t_r = do_set_disabled("mallory", "d.example", 1800000100, NULL);
	t_g3 = do_get("mallory", "d.example");
	t_e = do_set_disabled("mallory", "d.example", 0, "ignored");
	t_g4 = do_get("mallory", "d.example");
	t_dn = do_set_disabled("nobody", "d.example", 1800000000, "x");
	t_en = do_set_disabled("nobody", "d.example", 0, NULL);
	CHECK(wait_all());
	CHECK(results[t_c].st == STORE_OK);
	CHECK(results[t_g0].st == STORE_OK);
	CHECK(results[t_g0].u.disabled == 0);
	CHECK(results[t_g0].u.disabled_reason == NULL);
	CHECK(results[t_d].st == STORE_OK);
	CHECK(results[t_g1].st == STORE_OK);
	CHECK(results[t_g1].u.disabled == 1800000000);
	CHECK(results[t_g1].u.disabled_reason != NULL);
	CHECK_STR(results[t_g1].u.disabled_reason, "spam");
	CHECK(keys_equal(&results[t_g1].u.sha256, &m.sha256, SCRAM_SHA256));
	/* passwd on a disabled account: new keys, still disabled */
	CHECK(results[t_k].st == STORE_OK);
	CHECK(results[t_g2].u.disabled == 1800000000);
	CHECK(keys_equal(&results[t_g2].u.sha256, &m2.sha256, SCRAM_SHA256));
	/* disabled again without a reason: "" */
	CHECK(results[t_r].st == STORE_OK);
	CHECK(results[t_g3].u.disabled == 1800000100);
	CHECK(results[t_g3].u.disabled_reason != NULL);
	CHECK_STR(results[t_g3].u.disabled_reason, "");
	CHECK(results[t_e].st == STORE_OK);
	CHECK(results[t_g4].st == STORE_OK);
	CHECK(results[t_g4].u.disabled == 0);
	CHECK(results[t_g4].u.disabled_reason == NULL);
	CHECK(results[t_g4].u.created == m.created);
	CHECK(results[t_dn].st == STORE_NOT_FOUND);
	CHECK(results[t_en].st == STORE_NOT_FOUND);

	do_create_simple("moe", "d.example", 44);
	t_last = do_set_disabled(
	    "mallory", "d.example", 1800000200, "spam in the lobby");
	li = do_list("d.example");
	CHECK(wait_all());
	CHECK(results[t_last].st == STORE_OK);
	expect_add(
	    "mallory disabled 1800000200 spam in the lobby", "d.example");
	expect_add("moe", "d.example");
	l = &listings[li];
	CHECK(l->finals == 1 && l->final_st == STORE_OK);
	CHECK(listing_matches(l, "d.example"));
	listing_free(l);
	lists_issued = lists_done = 0;
}

/*
 * A database of schema version 3 (before accounts could be disabled)
 * is migrated at open: its accounts are kept, all enabled, and it gets
 * the table of FAST tokens.
 */
static void
test_migrate(void)
{
	sqlite3 *ext;
	sqlite3_stmt *st;
	uint64_t t_g, t_a;
	char err[512];
	int version = -1;

	CHECK((ext = ext_open()) != NULL);
	CHECK(ext_exec(ext, "DROP TABLE push; DROP TABLE uploads;"
	                    "DROP TABLE muc_vcard; DROP TABLE muc_archive;"
	                    "DROP TABLE muc_archive_room;"
	                    "DROP TABLE muc_affiliation; DROP TABLE muc_room;"
	                    "DROP TABLE pep_item; DROP TABLE pep_node;"
	                    "DROP TABLE fast_token;"
	                    "ALTER TABLE users DROP COLUMN disabled_reason;"
	                    "ALTER TABLE users DROP COLUMN disabled;"
	                    "PRAGMA user_version = 3;") == 0);
	sqlite3_close(ext);
	err[0] = '\0';
	CHECK(store_open(loop, dbpath, 0, err, sizeof(err)) == 0);
	t_g = do_get("mallory", "d.example");
	t_a = do_get("alice", "a.example");
	CHECK(wait_all());
	CHECK(results[t_g].st == STORE_OK && results[t_g].u.disabled == 0);
	CHECK(results[t_g].u.disabled_reason == NULL);
	CHECK(results[t_a].st == STORE_OK);
	store_close();
	CHECK((ext = ext_open()) != NULL);
	CHECK(sqlite3_prepare_v2(ext, "PRAGMA user_version", -1, &st, NULL) ==
	      SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(ext);
	CHECK(version == 11);      /* and on to the FAST tokens (5), PEP
	                              (6), MUC rooms (7), MUC archives
	                              and vCards (8), room languages (9),
	                              uploads (10), push registrations
	                              (11) */
}

/* ~600 users on two hosts, names in shuffled order, some non-ASCII. */
static void
test_many_users(void)
{
	static const char *const hosts[] = {"b.example", "a.example"};
	uint64_t first = issued;
	int ok = 1;

	for (int i = 0; i < 600; i++) {
		/* 0..599 in a scrambled order (37 is coprime to 600). */
		int k = (i * 37) % 600;
		char name[32];

		if (k % 50 == 0)
			snprintf(name, sizeof(name), "\xc3\xa4rger%03d", k);
		else if (k % 7 == 0)
			snprintf(name, sizeof(name), "Zed%03d", k);
		else
			snprintf(name, sizeof(name), "u%03d", k);
		do_create_simple(name, hosts[k % 2], (unsigned)k);
		expect_add(name, hosts[k % 2]);
	}
	CHECK(wait_all());
	for (uint64_t t = first; t < issued; t++)
		if (results[t].st != STORE_OK)
			ok = 0;
	CHECK(ok);
}

/*
 * Listing, all hosts and one host; a request made right after a listing
 * completes between its chunks (continuations go to the back of the
 * FIFO).  An outside connection holds the write lock so that the storage
 * thread is stuck in a first batch while the listing and the get are
 * queued behind it, making the batches deterministic.
 */
static void
test_list(void)
{
	struct listing *all, *one;
	sqlite3 *ext;
	uint64_t t_block, t_get;
	size_t rows_at_get;
	int la, lo;

	CHECK((ext = ext_open()) != NULL);
	CHECK(ext_exec(ext, "BEGIN IMMEDIATE") == 0);
	t_block = do_create_simple("blocker", "c.example", 9);
	expect_add("blocker", "c.example");
	CHECK(wait_queue_taken());
	la = do_list(NULL);
	t_get = do_get("alice", "a.example");
	CHECK(ext_exec(ext, "COMMIT") == 0);
	sqlite3_close(ext);

	/* The get's callback notes how far the listing had got. */
	all = &listings[la];
	watched = all;
	CHECK(wait_all());
	CHECK(results[t_block].st == STORE_OK);
	CHECK(results[t_get].st == STORE_OK);
	watched = NULL;
	rows_at_get = results[t_get].list_rows_at;
	if (rows_at_get != 256)
		fprintf(stderr, "rows_at_get %zu\n", rows_at_get);
	CHECK(rows_at_get == 256);
	CHECK(all->finals == 1);
	CHECK(all->final_st == STORE_OK);
	CHECK(all->rows_after_final == 0);
	CHECK(all->n == nexpected);
	CHECK(nexpected > 600);
	CHECK(listing_matches(all, NULL));

	lo = do_list("a.example");
	CHECK(wait_all());
	one = &listings[lo];
	CHECK(one->finals == 1 && one->final_st == STORE_OK);
	CHECK(one->n > 300);
	CHECK(listing_matches(one, "a.example"));

	listing_free(all);
	listing_free(one);
	lists_issued = lists_done = 0;
}

/*
 * One batch with a failing request: its error is its own, the others'
 * writes commit.  RAISE(ABORT) fails one statement (undone by the
 * request's savepoint); RAISE(ROLLBACK) kills the whole transaction, so
 * the requests before it in the batch must report STORE_ERROR (their
 * writes are gone) and the ones after it still succeed.
 */
static void
test_failures(void)
{
	struct store_stats st0, st1;
	sqlite3 *ext;
	uint64_t t_block, t_ok1, t_bad, t_ok2, t_get1;
	uint64_t t_r1, t_rbad, t_r2, t_gr1, t_gr2, t_gbad;

	CHECK((ext = ext_open()) != NULL);
	CHECK(
	    ext_exec(ext, "CREATE TRIGGER test_reject BEFORE INSERT ON "
	                  "users WHEN NEW.user = 'bad' BEGIN "
	                  "SELECT RAISE(ABORT, 'rejected by test'); END") == 0);
	CHECK(ext_exec(ext, "BEGIN IMMEDIATE") == 0);
	t_block = do_create_simple("blocker2", "c.example", 10);
	CHECK(wait_queue_taken());
	store_get_stats(&st0);
	t_ok1 = do_create_simple("ok1", "c.example", 11);
	t_bad = do_create_simple("bad", "c.example", 12);
	t_ok2 = do_create_simple("ok2", "c.example", 13);
	t_get1 = do_get("ok1", "c.example");
	CHECK(ext_exec(ext, "COMMIT") == 0);
	CHECK(wait_all());
	store_get_stats(&st1);
	CHECK(results[t_block].st == STORE_OK);
	CHECK(results[t_ok1].st == STORE_OK);
	CHECK(results[t_bad].st == STORE_ERROR);
	CHECK(results[t_ok2].st == STORE_OK);
	CHECK(results[t_get1].st == STORE_OK);
	/* Blocker's batch, then one group commit for the other four. */
	CHECK(st1.commits == st0.commits + 2);
	CHECK(st1.requests == st0.requests + 5);
	expect_add("blocker2", "c.example");
	expect_add("ok1", "c.example");
	expect_add("ok2", "c.example");

	CHECK(ext_exec(ext, "DROP TRIGGER test_reject") == 0);
	CHECK(ext_exec(ext,
	          "CREATE TRIGGER test_rollback BEFORE INSERT ON "
	          "users WHEN NEW.user = 'bad' BEGIN "
	          "SELECT RAISE(ROLLBACK, 'rolled back by test'); END") == 0);
	CHECK(ext_exec(ext, "BEGIN IMMEDIATE") == 0);
	t_block = do_create_simple("blocker3", "c.example", 14);
	CHECK(wait_queue_taken());
	t_r1 = do_create_simple("r1", "c.example", 15);
	t_rbad = do_create_simple("bad", "c.example", 16);
	t_r2 = do_create_simple("r2", "c.example", 17);
	CHECK(ext_exec(ext, "COMMIT") == 0);
	CHECK(wait_all());
	CHECK(results[t_block].st == STORE_OK);
	CHECK(results[t_r1].st == STORE_ERROR);
	CHECK(results[t_rbad].st == STORE_ERROR);
	CHECK(results[t_r2].st == STORE_OK);
	expect_add("blocker3", "c.example");
	expect_add("r2", "c.example");

	CHECK(ext_exec(ext, "DROP TRIGGER test_rollback") == 0);
	sqlite3_close(ext);

	/* Acknowledged exactly when stored. */
	t_gr1 = do_get("r1", "c.example");
	t_gr2 = do_get("r2", "c.example");
	t_gbad = do_get("bad", "c.example");
	CHECK(wait_all());
	CHECK(results[t_gr1].st == STORE_NOT_FOUND);
	CHECK(results[t_gr2].st == STORE_OK);
	CHECK(results[t_gbad].st == STORE_NOT_FOUND);
}

/*
 * Another process holds the write lock past the busy timeout (1 s here):
 * the writes of a batch fail, but a read queued in the same batch is
 * still served (WAL readers do not need the lock) with the right data.
 */
static void
test_locked_reads(void)
{
	sqlite3 *ext;
	uint64_t t_block, t_write, t_read, t_after;
	struct store_user a2;

	CHECK((ext = ext_open()) != NULL);
	CHECK(ext_exec(ext, "BEGIN IMMEDIATE") == 0);
	/* The blocker is taken alone and waits out the timeout, so the
	 * write and the read queued meanwhile form the next batch. */
	t_block = do_create_simple("blocker4", "c.example", 20);
	CHECK(wait_queue_taken());
	t_write = do_create_simple("locked1", "c.example", 21);
	t_read = do_get("alice", "a.example");
	CHECK(wait_all());
	CHECK(ext_exec(ext, "COMMIT") == 0);
	sqlite3_close(ext);
	CHECK(results[t_block].st == STORE_ERROR);
	CHECK(results[t_write].st == STORE_ERROR);
	CHECK(results[t_read].st == STORE_OK);
	make_user(&a2, "alice", "a.example", 77);
	CHECK(keys_equal(&results[t_read].u.sha256, &a2.sha256, SCRAM_SHA256));
	t_after = do_get("locked1", "c.example");
	CHECK(wait_all());
	CHECK(results[t_after].st == STORE_NOT_FOUND);
}

/* The storage thread runs as SCHED_BATCH (work_helper_thread_init): the
 * loop thread stays SCHED_OTHER, and some other thread of ours is batch. */
static void
test_helper_thread_policy(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int batch = 0;

	CHECK(d != NULL);
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		pid_t tid = (pid_t)atoi(e->d_name);

		if (tid > 0 && sched_getscheduler(tid) == SCHED_BATCH)
			batch++;
	}
	closedir(d);
	CHECK(batch >= 1);
	CHECK(sched_getscheduler(0) == SCHED_OTHER);
}

/* Archive ids: strictly increasing, the time in their top bits, and
 * their 16-digit form parses back. */
static void
test_mam_ids(void)
{
	uint64_t prev = 0, id, back, bad = 0;
	char s[MAM_ID_LEN + 1];
	struct timespec ts;
	uint64_t now_ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	for (int i = 0; i < 100000; i++) {
		id = mam_id_new();
		bad += id <= prev;
		prev = id;
	}
	CHECK(bad == 0);
	CHECK((id >> 22) + 1000 > now_ms && (id >> 22) < now_ms + 60000);
	mam_id_format(id, s);
	CHECK(strlen(s) == MAM_ID_LEN);
	CHECK(mam_id_parse(s, &back) == 0 && back == id);
	CHECK(mam_id_parse("0123456789ABCDEF", &back) == -1);
	CHECK(mam_id_parse("0123", &back) == -1);
}

static void
test_reopen(void)
{
	struct store_stats st;
	struct listing *l;
	char err[512];
	uint64_t t_get, before;
	int li;

	store_get_stats(&st);
	CHECK(st.queue_depth == 0);
	CHECK(st.requests >= issued);
	CHECK(st.commits > 0);
	CHECK(st.last_commit_ms >= 0);

	/* Requests still queued at close are served and their callbacks
	 * run inside store_close. */
	t_get = do_get("bob", "b.example");
	store_close();
	CHECK(results[t_get].done == 1 && results[t_get].st == STORE_OK);

	/* After close: logged and dropped, no callback. */
	before = completed;
	CALL(store_user_get("bob", "b.example", user_cb, OWNER, 9999));
	CHECK(completed == before);

	err[0] = '\0';
	CHECK(store_open(loop, dbpath, 0, err, sizeof(err)) == 0);
	t_get = do_get("alice", "a.example");
	li = do_list(NULL);
	CHECK(wait_all());
	CHECK(results[t_get].st == STORE_OK);
	{
		struct store_user a2;

		make_user(&a2, "alice", "a.example", 77);
		CHECK(keys_equal(
		    &results[t_get].u.sha256, &a2.sha256, SCRAM_SHA256));
	}
	l = &listings[li];
	CHECK(l->finals == 1 && l->final_st == STORE_OK);
	CHECK(listing_matches(l, NULL));
	listing_free(l);
	lists_issued = lists_done = 0;
	store_close();
}

/* File helpers for the refusal tests. */
static unsigned char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	p = xmalloc((size_t)n + 1);
	if (fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		p = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return p;
}

static int
exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

/* store_open must fail on path with a message naming it and containing
 * want, leave the file's bytes as they were and create no side files. */
static void
check_refused(const char *path, const char *want)
{
	unsigned char *before, *after;
	size_t lb = 0, la = 0;
	char err[512], side[256];

	before = read_file(path, &lb);
	CHECK(before != NULL);
	err[0] = '\0';
	CHECK(store_open(loop, path, 1, err, sizeof(err)) == -1);
	CHECK(strncmp(err, path, strlen(path)) == 0);
	if (strstr(err, want) == NULL)
		fprintf(
		    stderr, "FAIL: message \"%s\" lacks \"%s\"\n", err, want);
	CHECK(strstr(err, want) != NULL);
	after = read_file(path, &la);
	CHECK(after != NULL && la == lb && memcmp(before, after, lb) == 0);
	snprintf(side, sizeof(side), "%s-wal", path);
	CHECK(!exists(side));
	snprintf(side, sizeof(side), "%s-journal", path);
	CHECK(!exists(side));
	free(before);
	free(after);
}

static void
make_sqlite(const char *path, const char *sql)
{
	sqlite3 *db = NULL;

	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	CHECK(ext_exec(db, sql) == 0);
	sqlite3_close(db);
}

static void
test_refuse(void)
{
	char path[256], err[512];
	FILE *f;
	int fd;

	/* Garbage. */
	snprintf(path, sizeof(path), "%s/garbage.db", dir);
	CHECK((f = fopen(path, "wb")) != NULL);
	for (int i = 0; i < 300; i++)
		fputs("This is not an SQLite database, just text.\n", f);
	fclose(f);
	check_refused(path, "file is not a database");

	/* A newer schema than we know. */
	snprintf(path, sizeof(path), "%s/future.db", dir);
	make_sqlite(path, "CREATE TABLE t(x); PRAGMA user_version = 999;");
	check_refused(path, "newer");

	/* A database with a damaged b-tree page. */
	snprintf(path, sizeof(path), "%s/corrupt.db", dir);
	make_sqlite(path,
	    "PRAGMA page_size = 4096; CREATE TABLE t(x);"
	    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
	    "WHERE i < 400) INSERT INTO t SELECT randomblob(300) FROM n;");
	CHECK((fd = open(path, O_WRONLY)) != -1);
	{
		unsigned char junk[4096];

		memset(junk, 0xa5, sizeof(junk));
		CHECK(pwrite(fd, junk, sizeof(junk), 4096 * 3) ==
		      (ssize_t)sizeof(junk));
	}
	close(fd);
	check_refused(path, "");

	/* A directory that does not exist. */
	snprintf(path, sizeof(path), "%s/nonexistent/x.db", dir);
	CHECK(store_open(loop, path, 1, err, sizeof(err)) == -1);
	CHECK(strncmp(err, path, strlen(path)) == 0);
}

/* Worker pool. */

struct job {
	uint64_t id;
	unsigned long result;
	pthread_t worker;
	int resubmit;
};
static int job_done_count[128];
static int jobs_done;
static int job_bad;

static void
job_fn(void *p)
{
	struct job *j = p;
	unsigned long x = j->id;

	for (int i = 0; i < 100000; i++)
		x = x * 6364136223846793005UL + 1442695040888963407UL;
	j->result = x;
	j->worker = pthread_self();
}

static unsigned long
job_expect(uint64_t id)
{
	unsigned long x = id;

	for (int i = 0; i < 100000; i++)
		x = x * 6364136223846793005UL + 1442695040888963407UL;
	return x;
}

static void job_done(void *p, uint64_t owner, uint64_t tag);

static void
submit_job(uint64_t id, int resubmit)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->id = id;
	j->resubmit = resubmit;
	work_submit(job_fn, job_done, j, OWNER, id);
}

static void
job_done(void *p, uint64_t owner, uint64_t tag)
{
	struct job *j = p;

	if (in_call || !pthread_equal(pthread_self(), main_thread) ||
	    pthread_equal(j->worker, main_thread) || owner != OWNER ||
	    tag != j->id || j->result != job_expect(j->id))
		job_bad++;
	if (tag < nitems(job_done_count))
		job_done_count[tag]++;
	jobs_done++;
	if (j->resubmit)
		submit_job(j->id + 10, 0); /* from a done callback */
	free(j);
}

static int
fifty_jobs_done(void)
{
	return jobs_done >= 50;
}

static void
test_work(void)
{
	int once = 1;

	work_init(loop, 4);
	for (uint64_t i = 0; i < 50; i++)
		CALL(submit_job(i, 0));
	CHECK(jobs_done == 0);
	CHECK(unit_run_until(loop, fifty_jobs_done));
	CHECK(jobs_done == 50);
	for (int i = 0; i < 50; i++)
		if (job_done_count[i] != 1)
			once = 0;
	CHECK(once);

	/* Shutdown runs the remaining completions itself, including a job
	 * submitted by a done callback during shutdown. */
	for (uint64_t i = 50; i < 60; i++)
		CALL(submit_job(i, i == 55));
	work_shutdown();
	if (jobs_done != 61)
		fprintf(stderr, "jobs_done %d\n", jobs_done);
	CHECK(jobs_done == 61);
	once = 1;
	for (int i = 50; i < 60; i++)
		if (job_done_count[i] != 1)
			once = 0;
	CHECK(once);
	CHECK(job_done_count[65] == 1); /* 55's follow-up */
	CHECK(job_bad == 0);
	CHECK(work_queue_depth() == 0);
}

int
main(void)
{
	char err[512];
	char cmd[128];

	log_init("test_store", 1, LOG_LVL_WARN);
	main_thread = pthread_self();
	loop = ev_default_loop(0);
	snprintf(dir, sizeof(dir), "/tmp/test_store.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(dbpath, sizeof(dbpath), "%s/xmppd.db", dir);

	CHECK(!exists(dbpath));
	store_set_busy_timeout(1000);
	err[0] = '\0';
	CHECK(store_open(loop, dbpath, 1, err, sizeof(err)) == 0);
	if (err[0] != '\0')
		fprintf(stderr, "store_open: %s\n", err);
	CHECK(exists(dbpath));

	test_basic();
	test_delete();
	test_many_users();
	test_list();
	test_failures();
	test_locked_reads();
	test_helper_thread_policy();
	test_mam_ids();
	test_disabled();
	test_reopen();
	test_migrate();
	CHECK(bad_context == 0);
	CHECK(bad_order == 0);
	CHECK(bad_owner == 0);

	test_refuse();
	test_work();
	CHECK_STR(store_status_str(STORE_OK), "ok");
	CHECK_STR(store_status_str(STORE_NOT_FOUND), "not found");
	CHECK_STR(store_status_str(STORE_EXISTS), "exists");
	CHECK_STR(store_status_str(STORE_ERROR), "database error");
	CHECK(!unit_loop_timed_out);

	for (size_t i = 0; i < nexpected; i++)
		free(expected[i]);
	free(expected);
	ev_loop_destroy(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return UNIT_DONE("store");
}
