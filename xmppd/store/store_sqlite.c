/*
 * SQLite backend of store.h: one storage thread owns the connection and
 * serves a FIFO of requests, running the requests that are pending when it
 * wakes (up to STORE_BATCH_MAX) in one transaction (group commit), then
 * hands the finished requests back to the loop thread, which runs their
 * callbacks in arrival order.
 *
 * How a request travels:
 *   store_user_get() etc. (loop thread) build a struct store_req, copy the
 *   arguments into it and append it to store.pending.  The storage thread
 *   takes the pending list as one batch (at most STORE_BATCH_MAX requests;
 *   the rest waits for the next), runs BEGIN [IMMEDIATE], then each
 *   request's run function (writes inside their own SAVEPOINT, so a
 *   failing request is rolled back alone and reports STORE_ERROR), then
 *   COMMIT.  The batch goes onto store.done and an ev_async wakes the loop
 *   thread, which calls each request's complete function (which invokes
 *   the caller's callback) and frees the request with its results.
 *
 * Adding a request kind (one row in req_ops[] plus two small functions):
 *   1. add REQ_<KIND> to enum req_kind;
 *   2. add its SQL to enum stmt_id / stmt_sql[] (prepared once, cached);
 *      new tables go in a new entry at the end of migrations[];
 *   3. add its arguments and results to struct store_req (arguments are
 *      copied by the public function and freed by req_free(); results are
 *      filled by the run function and freed by req_clear_results(), which
 *      is also what turns a request into a bare STORE_ERROR);
 *   4. write run_<kind>() (storage thread: bind, step, fill results,
 *      return the status) and complete_<kind>() (loop thread: call the
 *      callback; results are freed right after it returns);
 *   5. add { "name", writes, run_<kind>, complete_<kind> } to req_ops[];
 *      writes = 1 for anything that modifies the database;
 *   6. the public function: req_new(), copy arguments, req_submit().
 *   A request that must return an unbounded result reads a bounded chunk
 *   and sets a continuation like user listing does (see queue_continuations).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <ev.h>
#include <sqlite3.h>

#include "log.h"
#include "xmalloc.h"
#include "store/store.h"
#include "store/store_engine.h"
#include "work.h"

#define STORE_BUSY_TIMEOUT_MS 5000
#define STORE_LIST_CHUNK 256 /* users per storage-thread step */
/*
 * Requests per transaction.  Nothing of a batch is durable before its
 * COMMIT, so an unbounded batch taken from a long queue (a burst of
 * offline messages) would keep every one of them uncommitted until the
 * last has run, and a crash would lose them all; a failed COMMIT (full
 * disk) would fail them all.  Bounded, the queue is committed in steps.
 */
#define STORE_BATCH_MAX 512

/*
 * Schema migrations: migrations[i] takes the schema from version i to
 * i + 1 (PRAGMA user_version).  Append only; never edit a released entry.
 * Tables that belong to a user reference users(id) ON DELETE CASCADE so
 * that deleting the user row deletes everything stored for them.
 */
static const char *const migrations[] = {
    /* 1: accounts with SCRAM-SHA-1 and SCRAM-SHA-256 keys. */
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY,"
    "  host TEXT NOT NULL,"
    "  user TEXT NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  sha1_salt BLOB, sha1_iter INTEGER,"
    "  sha1_stored BLOB, sha1_server BLOB,"
    "  sha256_salt BLOB, sha256_iter INTEGER,"
    "  sha256_stored BLOB, sha256_server BLOB,"
    "  UNIQUE (host, user)"
    ");",
    /* 2: the IM core: rosters (RFC 6121), offline messages (XEP-0160),
     * vCards (XEP-0054), private XML (XEP-0049), block lists
     * (XEP-0191), last logout (XEP-0012). */
    "CREATE TABLE roster ("
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  jid TEXT NOT NULL,"
    "  name TEXT,"
    "  sub INTEGER NOT NULL DEFAULT 0,"
    "  visible INTEGER NOT NULL DEFAULT 1,"
    "  request TEXT,"
    "  groups TEXT,"
    "  PRIMARY KEY (user_id, jid)"
    ") WITHOUT ROWID;"
    "CREATE INDEX roster_jid ON roster (jid);"
    "CREATE TABLE roster_version ("
    "  user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,"
    "  version INTEGER NOT NULL"
    ");"
    "CREATE TABLE offline ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  stamp INTEGER NOT NULL,"
    "  stanza TEXT NOT NULL"
    ");"
    "CREATE INDEX offline_user ON offline (user_id, id);"
    "CREATE TABLE vcard ("
    "  user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,"
    "  vcard TEXT NOT NULL,"
    "  photo_hash TEXT"
    ");"
    "CREATE TABLE private ("
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  ns TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  data TEXT NOT NULL,"
    "  PRIMARY KEY (user_id, ns, name)"
    ") WITHOUT ROWID;"
    "CREATE TABLE blocklist ("
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  jid TEXT NOT NULL,"
    "  PRIMARY KEY (user_id, jid)"
    ") WITHOUT ROWID;"
    "CREATE TABLE lastlog ("
    "  user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,"
    "  stamp INTEGER NOT NULL,"
    "  status TEXT"
    ");",
    /* 3: the message archive (XEP-0313, mod_mam.c and mam_archive.c):
     * id grows in arrival order and stamp (ms) never decreases with it;
     * sid is the public XEP-0359 id; with_* the other party.  Archiving
     * preferences (XEP-0441): mode and JID lists joined by newlines. */
    "CREATE TABLE archive ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  sid INTEGER NOT NULL,"
    "  stamp INTEGER NOT NULL,"
    "  outgoing INTEGER NOT NULL,"
    "  with_bare TEXT NOT NULL,"
    "  with_full TEXT NOT NULL,"
    "  stanza TEXT NOT NULL"
    ");"
    "CREATE UNIQUE INDEX archive_sid ON archive (user_id, sid);"
    "CREATE INDEX archive_user ON archive (user_id, id);"
    "CREATE INDEX archive_with ON archive (user_id, with_bare, id);"
    "CREATE INDEX archive_with_full ON archive (user_id, with_full, id);"
    "CREATE TABLE mam_prefs ("
    "  user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,"
    "  mode INTEGER NOT NULL,"
    "  always TEXT NOT NULL,"
    "  never TEXT NOT NULL"
    ");",
    /* 4: accounts disabled by an administrator (xmppctl disable): since
     * when, in unix seconds (NULL: enabled), and the reason given. */
    ("ALTER TABLE users ADD COLUMN disabled INTEGER;"
     "ALTER TABLE users ADD COLUMN disabled_reason TEXT;"),
    /* 5: XEP-0484 (FAST) tokens (store/fast.h, fast_tokens.c): per
     * account and client (SASL2 user-agent id) a "current" (slot 0) and
     * a "new" (slot 1) token, only its SHA-256 kept; times in unix
     * seconds; counter the highest <fast count/> accepted (replays). */
    "CREATE TABLE fast_token ("
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  agent TEXT NOT NULL,"
    "  slot INTEGER NOT NULL,"
    "  software TEXT NOT NULL,"
    "  device TEXT NOT NULL,"
    "  mechanism TEXT NOT NULL,"
    "  hash BLOB NOT NULL,"
    "  expiry INTEGER NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  last_used INTEGER,"
    "  counter INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (user_id, agent, slot)"
    ") WITHOUT ROWID;",
    /* 6: personal eventing (XEP-0163, store/pep.h): a row per node with
     * its configuration (access 0 presence, 1 open, 2 roster,
     * 3 whitelist; groups joined by 0x1F; max_items 0 for "max";
     * send_last 0 never, 1 on_sub, 2 on_sub_and_presence) and the count
     * and payload bytes of its items; the items, their rowid growing in
     * publish order. */
    ("CREATE TABLE pep_node ("
     "  id INTEGER PRIMARY KEY,"
     "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
     "  node TEXT NOT NULL,"
     "  access INTEGER NOT NULL,"
     "  groups TEXT,"
     "  max_items INTEGER NOT NULL,"
     "  persist INTEGER NOT NULL,"
     "  send_last INTEGER NOT NULL,"
     "  notify_retract INTEGER NOT NULL,"
     "  notify_delete INTEGER NOT NULL,"
     "  title TEXT,"
     "  items INTEGER NOT NULL DEFAULT 0,"
     "  bytes INTEGER NOT NULL DEFAULT 0,"
     "  created INTEGER NOT NULL,"
     "  UNIQUE (user_id, node)"
     ");"
     "CREATE TABLE pep_item ("
     "  id INTEGER PRIMARY KEY,"
     "  node_id INTEGER NOT NULL REFERENCES pep_node(id) ON DELETE CASCADE,"
     "  item TEXT NOT NULL,"
     "  publisher TEXT,"
     "  stamp INTEGER NOT NULL,"
     "  size INTEGER NOT NULL,"
     "  payload TEXT NOT NULL,"
     "  UNIQUE (node_id, item)"
     ");"
     "CREATE INDEX pep_item_order ON pep_item (node_id, id, size);"),
    /* 7: multi-user chat (XEP-0045, store/muc.h): the persistent rooms
     * of each service with their configuration (flags MUC_ROOM_*,
     * allowpm 0 anyone .. 3 none) and subject; their affiliations
     * (0 outcast, 2 member, 3 admin, 4 owner; none is no row). */
    ("CREATE TABLE muc_room ("
     "  id INTEGER PRIMARY KEY,"
     "  service TEXT NOT NULL,"
     "  node TEXT NOT NULL,"
     "  name TEXT,"
     "  description TEXT,"
     "  secret TEXT,"
     "  subject TEXT,"
     "  subject_nick TEXT,"
     "  flags INTEGER NOT NULL,"
     "  allowpm INTEGER NOT NULL,"
     "  maxusers INTEGER NOT NULL,"
     "  historylength INTEGER NOT NULL,"
     "  UNIQUE (service, node)"
     ");"
     "CREATE TABLE muc_affiliation ("
     "  room_id INTEGER NOT NULL REFERENCES muc_room(id) ON DELETE CASCADE,"
     "  jid TEXT NOT NULL,"
     "  affiliation INTEGER NOT NULL,"
     "  PRIMARY KEY (room_id, jid)"
     ") WITHOUT ROWID;"),
    /* 8: MUC archives (XEP-0313 on a room JID, store/mam.h): the rooms
     * that have one (by service and node: temporary rooms too, so not
     * muc_room), and their messages in the shape of the archive table
     * (with_full the sender's room JID, with_bare the room's);
     * a room's vCard (vcard-temp, XEP-0153 photo hash) goes with its
     * persistent room. */
    ("CREATE TABLE muc_archive_room ("
     "  id INTEGER PRIMARY KEY,"
     "  service TEXT NOT NULL,"
     "  node TEXT NOT NULL,"
     "  UNIQUE (service, node)"
     ");"
     "CREATE TABLE muc_archive ("
     "  id INTEGER PRIMARY KEY,"
     "  room_id INTEGER NOT NULL"
     "    REFERENCES muc_archive_room(id) ON DELETE CASCADE,"
     "  sid INTEGER NOT NULL,"
     "  stamp INTEGER NOT NULL,"
     "  outgoing INTEGER NOT NULL DEFAULT 0,"
     "  with_bare TEXT NOT NULL,"
     "  with_full TEXT NOT NULL,"
     "  stanza TEXT NOT NULL"
     ");"
     "CREATE UNIQUE INDEX muc_archive_sid ON muc_archive (room_id, sid);"
     "CREATE INDEX muc_archive_order ON muc_archive (room_id, id);"
     "CREATE INDEX muc_archive_with_full ON muc_archive"
     "  (room_id, with_full, id);"
     "CREATE TABLE muc_vcard ("
     "  room_id INTEGER PRIMARY KEY"
     "    REFERENCES muc_room(id) ON DELETE CASCADE,"
     "  vcard TEXT NOT NULL,"
     "  photo_hash TEXT"
     ");"),
    /* 9: a room's language (muc#roomconfig_lang, XEP-0045 §10.2). */
    "ALTER TABLE muc_room ADD COLUMN lang TEXT;",
    /* 10: XEP-0363 uploads (store/upload.h): by host and user, not
     * users(id), so that a deleted account's rows stay until its files
     * are removed. */
    ("CREATE TABLE uploads ("
     "  token TEXT PRIMARY KEY,"
     "  host TEXT NOT NULL,"
     "  user TEXT NOT NULL,"
     "  filename TEXT NOT NULL,"
     "  content_type TEXT NOT NULL,"
     "  size INTEGER NOT NULL,"
     "  created INTEGER NOT NULL,"
     "  completed INTEGER"
     ");"
     "CREATE INDEX uploads_owner ON uploads (host, user, created);"
     "CREATE INDEX uploads_created ON uploads (created);"),
    /* 11: XEP-0357 push registrations (store/push.h): the app server's
     * JID and node, the publish-options form serialized ("" if none). */
    ("CREATE TABLE push ("
     "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
     "  jid TEXT NOT NULL,"
     "  node TEXT NOT NULL,"
     "  form TEXT NOT NULL,"
     "  created INTEGER NOT NULL,"
     "  PRIMARY KEY (user_id, jid, node)"
     ") WITHOUT ROWID;"),
};
#define STORE_SCHEMA_VERSION ((int)nitems(migrations))

/* Columns of one user's keys, in the order bind_keys/column_keys use. */
#define USER_COLS                                                              \
	"created, sha1_salt, sha1_iter, sha1_stored, "                         \
	"sha1_server, sha256_salt, sha256_iter, sha256_stored, sha256_server"
/* What reading a user returns: USER_COLS, then whether it is disabled
 * (column_user). */
#define USER_READ_COLS USER_COLS ", disabled, disabled_reason"

enum stmt_id {
	STMT_BEGIN,
	STMT_BEGIN_IMMEDIATE,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_SAVEPOINT,
	STMT_RELEASE,
	STMT_ROLLBACK_TO,
	STMT_USER_GET,
	STMT_USER_CREATE,
	STMT_USER_SET_KEYS,
	STMT_USER_REVOKE_TOKENS,
	STMT_USER_SET_DISABLED,
	STMT_USER_DELETE,
	STMT_USER_LIST_ALL_FIRST,
	STMT_USER_LIST_ALL_NEXT,
	STMT_USER_LIST_HOST_FIRST,
	STMT_USER_LIST_HOST_NEXT,
	STMT__COUNT
};

/* ?1 host, ?2 user, ?3 created or list limit, ?4..?7 SHA-1, ?8..?11
 * SHA-256 keys. */
static const char *const stmt_sql[STMT__COUNT] = {
    [STMT_BEGIN] = "BEGIN",
    [STMT_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_SAVEPOINT] = "SAVEPOINT req",
    [STMT_RELEASE] = "RELEASE req",
    [STMT_ROLLBACK_TO] = "ROLLBACK TO req",
    [STMT_USER_GET] = "SELECT " USER_READ_COLS " FROM users"
                      " WHERE host = ?1 AND user = ?2",
    [STMT_USER_CREATE] =
        "INSERT INTO users (host, user, " USER_COLS ")"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        " ON CONFLICT (host, user) DO NOTHING",
    [STMT_USER_SET_KEYS] =
        "UPDATE users SET"
        " sha1_salt = ?4, sha1_iter = ?5, sha1_stored = ?6,"
        " sha1_server = ?7, sha256_salt = ?8, sha256_iter = ?9,"
        " sha256_stored = ?10, sha256_server = ?11"
        " WHERE host = ?1 AND user = ?2",
    [STMT_USER_REVOKE_TOKENS] =
        "DELETE FROM fast_token WHERE user_id ="
        " (SELECT id FROM users WHERE host = ?1 AND user = ?2)",
    [STMT_USER_SET_DISABLED] = "UPDATE users SET disabled = ?3,"
                               " disabled_reason = ?4"
                               " WHERE host = ?1 AND user = ?2",
    [STMT_USER_DELETE] = "DELETE FROM users WHERE host = ?1 AND user = ?2",
    [STMT_USER_LIST_ALL_FIRST] = "SELECT host, user, " USER_READ_COLS
                                 " FROM users ORDER BY host, user LIMIT ?3",
    [STMT_USER_LIST_ALL_NEXT] = "SELECT host, user, " USER_READ_COLS
                                " FROM users WHERE (host, user) > (?1, ?2)"
                                " ORDER BY host, user LIMIT ?3",
    [STMT_USER_LIST_HOST_FIRST] =
        "SELECT host, user, " USER_READ_COLS
        " FROM users WHERE host = ?1 ORDER BY user LIMIT ?3",
    [STMT_USER_LIST_HOST_NEXT] =
        "SELECT host, user, " USER_READ_COLS
        " FROM users WHERE host = ?1 AND user > ?2 ORDER BY user LIMIT ?3",
};

enum req_kind {
	REQ_USER_GET,
	REQ_USER_CREATE,
	REQ_USER_SET_KEYS,
	REQ_USER_SET_DISABLED,
	REQ_USER_DELETE,
	REQ_USER_LIST,
	REQ_JOB, /* a store_engine.h job from another file */
	REQ__COUNT
};

struct store_req {
	struct store_req *next;
	enum req_kind kind;
	int counted;           /* in the loop thread's backlog */
	uint64_t owner;
	uint64_t tag;
	enum store_status status;
	union {
		store_user_cb user;
		store_status_cb status;
		store_user_list_cb list;
	} cb;

	struct store_job *job; /* REQ_JOB */

	/* Arguments (owned, copied from the caller). */
	char *user;
	char *host;           /* NULL: list every host */
	struct store_user in; /* create, set_keys; in.user/host unset;
	                         set_disabled: in.disabled */
	char *reason;         /* set_disabled: the reason, or NULL */

	/* User listing: where the previous chunk stopped (arguments). */
	int list_started;
	char *last_host;
	char *last_user;

	/* Results (owned; freed by req_clear_results). */
	struct store_user out; /* get; out.user/host point at user/host,
	                          out.disabled_reason at out_reason */
	char *out_reason;
	struct store_user *rows; /* list: one chunk, strings in rowmem */
	char **rowmem;
	size_t nrows;
	int list_more; /* chunk was full: a continuation follows */
};

struct req_list {
	struct store_req *head;
	struct store_req **tailp;
};

struct req_ops {
	const char *name;
	int writes; /* modifies the database */
	/* Storage thread: run the request inside the batch transaction. */
	enum store_status (*run)(struct store_req *r);
	/* Loop thread: hand the results to the caller's callback. */
	void (*complete)(struct store_req *r);
};

static enum store_status run_user_get(struct store_req *);
static enum store_status run_user_create(struct store_req *);
static enum store_status run_user_set_keys(struct store_req *);
static enum store_status run_user_set_disabled(struct store_req *);
static enum store_status run_user_delete(struct store_req *);
static enum store_status run_user_list(struct store_req *);
static void complete_user(struct store_req *);
static void complete_status(struct store_req *);
static void complete_user_list(struct store_req *);
static enum store_status run_job(struct store_req *);
static void complete_job(struct store_req *);

static const struct req_ops req_ops[REQ__COUNT] = {
    [REQ_USER_GET] = {"user get", 0, run_user_get, complete_user},
    [REQ_USER_CREATE] = {"user create", 1, run_user_create, complete_status},
    [REQ_USER_SET_KEYS] = {"user set keys", 1, run_user_set_keys,
        complete_status},
    [REQ_USER_SET_DISABLED] = {"user set disabled", 1, run_user_set_disabled,
        complete_status},
    [REQ_USER_DELETE] = {"user delete", 1, run_user_delete, complete_status},
    [REQ_USER_LIST] = {"user list", 0, run_user_list, complete_user_list},
    [REQ_JOB] = {"job", 1, run_job, complete_job},
};

/* Per-request properties (a job carries its own). */
static int
req_writes(const struct store_req *r)
{
	return r->kind == REQ_JOB ? r->job->ops->writes : req_ops[r->kind].writes;
}

static const char *
req_name(const struct store_req *r)
{
	return r->kind == REQ_JOB ? r->job->ops->name : req_ops[r->kind].name;
}

static struct {
	int running;   /* store_open succeeded, not yet closed */
	int accepting; /* loop thread only: requests allowed */
	char *path;
	sqlite3 *db; /* storage thread only while running */
	sqlite3_stmt *stmts[STMT__COUNT];
	struct {
		const char *sql;
		sqlite3_stmt *stmt;
	} *jobstmts;  /* store_sql() cache, storage thread only */
	size_t njobstmts;
	struct ev_loop *loop;
	ev_async async;
	pthread_t thread;

	/* Request FIFO; lock also guards closing and the statistics. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct req_list pending;
	size_t depth;
	int closing;
	uint64_t requests;
	uint64_t commits;
	double last_commit_ms;
	double commit_ms_sum;
	uint64_t commit_hist[STORE_COMMIT_BUCKETS + 1];

	/* Finished requests waiting for the loop thread. */
	pthread_mutex_t done_lock;
	struct req_list done;
} store = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
    .done_lock = PTHREAD_MUTEX_INITIALIZER,
};

const char *
store_status_str(enum store_status st)
{
	switch (st) {
	case STORE_OK:
		return "ok";
	case STORE_NOT_FOUND:
		return "not found";
	case STORE_EXISTS:
		return "exists";
	case STORE_ERROR:
		return "database error";
	}
	return "unknown";
}

/* Requests and their lists. */

static void
list_init(struct req_list *l)
{
	l->head = NULL;
	l->tailp = &l->head;
}

static void
list_append(struct req_list *l, struct store_req *r)
{
	r->next = NULL;
	*l->tailp = r;
	l->tailp = &r->next;
}

static void
list_concat(struct req_list *l, struct req_list *more)
{
	if (more->head == NULL)
		return;
	*l->tailp = more->head;
	l->tailp = more->tailp;
	list_init(more);
}

static struct store_req *
req_new(enum req_kind kind, uint64_t owner, uint64_t tag)
{
	struct store_req *r = xcalloc(1, sizeof(*r));

	r->kind = kind;
	r->owner = owner;
	r->tag = tag;
	r->status = STORE_OK;
	return r;
}

static void
req_clear_results(struct store_req *r)
{
	for (size_t i = 0; i < r->nrows; i++)
		free(r->rowmem[i]);
	free(r->rows);
	free(r->rowmem);
	r->rows = NULL;
	r->rowmem = NULL;
	r->nrows = 0;
	r->list_more = 0;
	memset(&r->out, 0, sizeof(r->out));
	free(r->out_reason);
	r->out_reason = NULL;
}

static void
req_free(struct store_req *r)
{
	req_clear_results(r);
	if (r->job != NULL)
		r->job->ops->free(r->job);
	free(r->user);
	free(r->host);
	free(r->reason);
	free(r->last_host);
	free(r->last_user);
	free(r);
}

/* The request failed: no results, STORE_ERROR to the callback. */
static void
req_fail(struct store_req *r)
{
	req_clear_results(r);
	r->status = STORE_ERROR;
}

/*
 * Loop thread: the requests submitted and not completed yet.  Past the
 * limit (limits { storage-queue }) the callback pauses reading from
 * clients, so a storage that cannot keep up slows the senders down
 * instead of queueing without bound (and of widening what a crash would
 * lose); at half the limit reading resumes.
 */
static struct {
	size_t n, high;
	int congested;
	void (*cb)(int congested);
} backlog;

/* Loop thread: queue a request for the storage thread. */
static void
req_submit(struct store_req *r)
{
	if (!store.accepting) {
		log_warnx("store: %s request for %s@%s made while the store is "
		          "closed; dropped",
		    req_name(r), r->user ? r->user : "*",
		    r->host ? r->host : "*");
		req_free(r);
		return;
	}
	r->counted = 1;
	if (++backlog.n >= backlog.high && backlog.high != 0 &&
	    !backlog.congested) {
		backlog.congested = 1;
		log_warnx("store: %zu requests waiting for storage; reading "
		          "from clients paused until %zu are left",
		    backlog.n, backlog.high / 2);
		if (backlog.cb)
			backlog.cb(1);
	}
	pthread_mutex_lock(&store.lock);
	list_append(&store.pending, r);
	store.depth++;
	pthread_cond_signal(&store.cond);
	pthread_mutex_unlock(&store.lock);
}

static int busy_timeout_ms = STORE_BUSY_TIMEOUT_MS;

void
store_set_busy_timeout(int ms)
{
	busy_timeout_ms = ms;
}

void
store_set_backlog_limit(size_t high, void (*cb)(int congested))
{
	backlog.high = high;
	backlog.cb = cb;
}

/* Statements (storage thread, or the opening thread before it starts). */

static void
db_warn(const char *what)
{
	log_warnx("store: %s: %s", what, sqlite3_errmsg(store.db));
}

static sqlite3_stmt *
stmt_get(enum stmt_id id)
{
	int rc;

	if (store.stmts[id] != NULL)
		return store.stmts[id];
	rc = sqlite3_prepare_v3(store.db, stmt_sql[id], -1,
	    SQLITE_PREPARE_PERSISTENT, &store.stmts[id], NULL);
	if (rc != SQLITE_OK) {
		log_warnx("store: preparing \"%s\": %s", stmt_sql[id],
		    sqlite3_errmsg(store.db));
		store.stmts[id] = NULL;
	}
	return store.stmts[id];
}

static void
stmt_done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* Run a statement without parameters or rows; 0 or -1 (logged). */
static int
stmt_exec(enum stmt_id id)
{
	sqlite3_stmt *s;
	int rc;

	if ((s = stmt_get(id)) == NULL)
		return -1;
	rc = sqlite3_step(s);
	stmt_done(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		db_warn(stmt_sql[id]);
		return -1;
	}
	return 0;
}

static size_t
key_len(enum scram_hash h)
{
	return h == SCRAM_SHA1 ? 20 : 32;
}

/*
 * Bind one key set at parameters idx..idx+3 (salt, iterations, stored
 * key, server key).  iterations == 0 means "no keys for this hash" and is
 * stored as NULLs.  Returns an SQLite result code.
 */
static int
bind_keys(
    sqlite3_stmt *s, int idx, const struct scram_keys *k, enum scram_hash h)
{
	int rc;

	if (k->iterations == 0) {
		for (int i = 0; i < 4; i++)
			if ((rc = sqlite3_bind_null(s, idx + i)) != SQLITE_OK)
				return rc;
		return SQLITE_OK;
	}
	if (k->saltlen > sizeof(k->salt))
		return SQLITE_RANGE;
	if ((rc = sqlite3_bind_blob(s, idx, k->salt, (int)k->saltlen,
	         SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, idx + 1, k->iterations)) != SQLITE_OK ||
	    (rc = sqlite3_bind_blob(s, idx + 2, k->stored_key, (int)key_len(h),
	         SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_blob(s, idx + 3, k->server_key, (int)key_len(h),
	         SQLITE_STATIC)) != SQLITE_OK)
		return rc;
	return SQLITE_OK;
}

/* Read one key set from columns col..col+3; -1 if the row is malformed. */
static int
column_keys(sqlite3_stmt *s, int col, enum scram_hash h, struct scram_keys *k)
{
	sqlite3_int64 iter;
	int n;

	memset(k, 0, sizeof(*k));
	k->hash = h;
	if (sqlite3_column_type(s, col + 1) == SQLITE_NULL)
		return 0;
	iter = sqlite3_column_int64(s, col + 1);
	if (iter <= 0 || iter > UINT_MAX)
		return -1;
	k->iterations = (unsigned)iter;

	n = sqlite3_column_bytes(s, col);
	if (n < 0 || (size_t)n > sizeof(k->salt))
		return -1;
	if (n > 0)
		memcpy(k->salt, sqlite3_column_blob(s, col), (size_t)n);
	k->saltlen = (size_t)n;

	for (int i = 2; i <= 3; i++) {
		unsigned char *dst = i == 2 ? k->stored_key : k->server_key;

		n = sqlite3_column_bytes(s, col + i);
		if (n < 0 || (size_t)n != key_len(h))
			return -1;
		memcpy(dst, sqlite3_column_blob(s, col + i), (size_t)n);
	}
	return 0;
}

/* Read created, both key sets and the time the account was disabled
 * (USER_READ_COLS) starting at column col.  The reason, at col + 10, is
 * column_reason()'s: its memory is the caller's. */
static int
column_user(sqlite3_stmt *s, int col, struct store_user *u)
{
	u->created = sqlite3_column_int64(s, col);
	u->disabled = sqlite3_column_int64(s, col + 9); /* NULL: 0, enabled */
	if (column_keys(s, col + 1, SCRAM_SHA1, &u->sha1) == -1 ||
	    column_keys(s, col + 5, SCRAM_SHA256, &u->sha256) == -1)
		return -1;
	return 0;
}

/* The reason of a disabled account read by column_user, "" if none. */
static const char *
column_reason(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col + 10);

	return t != NULL ? (const char *)t : "";
}

static int
bind_user_keys(sqlite3_stmt *s, const struct store_user *u)
{
	int rc;

	if ((rc = bind_keys(s, 4, &u->sha1, SCRAM_SHA1)) != SQLITE_OK)
		return rc;
	return bind_keys(s, 8, &u->sha256, SCRAM_SHA256);
}

static int
bind_host_user(sqlite3_stmt *s, const char *host, const char *user)
{
	int rc;

	if ((rc = sqlite3_bind_text(s, 1, host, -1, SQLITE_STATIC)) !=
	    SQLITE_OK)
		return rc;
	return sqlite3_bind_text(s, 2, user, -1, SQLITE_STATIC);
}

/* Request kinds: storage-thread halves. */

static enum store_status
run_user_get(struct store_req *r)
{
	sqlite3_stmt *s;
	enum store_status st;
	int rc;

	if ((s = stmt_get(STMT_USER_GET)) == NULL)
		return STORE_ERROR;
	if (bind_host_user(s, r->host, r->user) != SQLITE_OK) {
		db_warn("binding user get");
		stmt_done(s);
		return STORE_ERROR;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		r->out.user = r->user;
		r->out.host = r->host;
		if (column_user(s, 0, &r->out) == 0) {
			if (r->out.disabled != 0) {
				r->out_reason = xstrdup(column_reason(s, 0));
				r->out.disabled_reason = r->out_reason;
			}
			st = STORE_OK;
		} else {
			log_warnx("store: malformed keys stored for %s@%s",
			    r->user, r->host);
			st = STORE_ERROR;
		}
	} else if (rc == SQLITE_DONE)
		st = STORE_NOT_FOUND;
	else {
		db_warn("user get");
		st = STORE_ERROR;
	}
	stmt_done(s);
	return st;
}

/* Run a one-row write; STORE_OK if a row changed, else not_changed. */
static enum store_status
step_write(sqlite3_stmt *s, const char *what, enum store_status not_changed)
{
	enum store_status st;
	int rc;

	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		st = sqlite3_changes(store.db) > 0 ? STORE_OK : not_changed;
	else {
		db_warn(what);
		st = STORE_ERROR;
	}
	stmt_done(s);
	return st;
}

static enum store_status
run_user_create(struct store_req *r)
{
	sqlite3_stmt *s;

	if ((s = stmt_get(STMT_USER_CREATE)) == NULL)
		return STORE_ERROR;
	if (bind_host_user(s, r->host, r->user) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, r->in.created) != SQLITE_OK ||
	    bind_user_keys(s, &r->in) != SQLITE_OK) {
		log_warnx("store: binding user create for %s@%s: %s", r->user,
		    r->host, sqlite3_errmsg(store.db));
		stmt_done(s);
		return STORE_ERROR;
	}
	return step_write(s, "user create", STORE_EXISTS);
}

static enum store_status
run_user_set_keys(struct store_req *r)
{
	enum store_status st;
	sqlite3_stmt *s;

	if ((s = stmt_get(STMT_USER_SET_KEYS)) == NULL)
		return STORE_ERROR;
	if (bind_host_user(s, r->host, r->user) != SQLITE_OK ||
	    bind_user_keys(s, &r->in) != SQLITE_OK) {
		log_warnx("store: binding user set keys for %s@%s: %s", r->user,
		    r->host, sqlite3_errmsg(store.db));
		stmt_done(s);
		return STORE_ERROR;
	}
	if ((st = step_write(s, "user set keys", STORE_NOT_FOUND)) != STORE_OK)
		return st;
	/* A new password revokes every XEP-0484 token of the account: a
	 * device that had it must log in with the new password. */
	if ((s = stmt_get(STMT_USER_REVOKE_TOKENS)) == NULL)
		return STORE_ERROR;
	if (bind_host_user(s, r->host, r->user) != SQLITE_OK) {
		stmt_done(s);
		return STORE_ERROR;
	}
	st = step_write(s, "user revoke tokens", STORE_OK);
	return st;
}

static enum store_status
run_user_set_disabled(struct store_req *r)
{
	sqlite3_stmt *s;
	int rc;

	if ((s = stmt_get(STMT_USER_SET_DISABLED)) == NULL)
		return STORE_ERROR;
	rc = bind_host_user(s, r->host, r->user);
	if (rc == SQLITE_OK)
		rc = r->in.disabled != 0
		         ? sqlite3_bind_int64(s, 3, r->in.disabled)
		         : sqlite3_bind_null(s, 3);
	if (rc == SQLITE_OK)
		rc = r->reason != NULL
		         ? sqlite3_bind_text(s, 4, r->reason, -1, SQLITE_STATIC)
		         : sqlite3_bind_null(s, 4);
	if (rc != SQLITE_OK) {
		db_warn("binding user set disabled");
		stmt_done(s);
		return STORE_ERROR;
	}
	return step_write(s, "user set disabled", STORE_NOT_FOUND);
}

static enum store_status
run_user_delete(struct store_req *r)
{
	sqlite3_stmt *s;

	if ((s = stmt_get(STMT_USER_DELETE)) == NULL)
		return STORE_ERROR;
	if (bind_host_user(s, r->host, r->user) != SQLITE_OK) {
		db_warn("binding user delete");
		stmt_done(s);
		return STORE_ERROR;
	}
	return step_write(s, "user delete", STORE_NOT_FOUND);
}

/* Append the current row of a listing to r->rows. */
static int
list_add_row(struct store_req *r, sqlite3_stmt *s, size_t *cap)
{
	struct store_user *u;
	const char *host, *user, *reason;
	size_t hlen, ulen, rlen;
	char *mem;

	if (r->nrows == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		r->rows = xreallocarray(r->rows, *cap, sizeof(*r->rows));
		r->rowmem = xreallocarray(r->rowmem, *cap, sizeof(*r->rowmem));
	}
	host = (const char *)sqlite3_column_text(s, 0);
	user = (const char *)sqlite3_column_text(s, 1);
	if (host == NULL || user == NULL)
		return -1;
	reason = column_reason(s, 2);
	hlen = strlen(host);
	ulen = strlen(user);
	rlen = strlen(reason);
	mem = xmalloc(hlen + ulen + rlen + 3);
	memcpy(mem, host, hlen + 1);
	memcpy(mem + hlen + 1, user, ulen + 1);
	memcpy(mem + hlen + ulen + 2, reason, rlen + 1);

	u = &r->rows[r->nrows];
	memset(u, 0, sizeof(*u));
	r->rowmem[r->nrows] = mem;
	r->nrows++;
	u->host = mem;
	u->user = mem + hlen + 1;
	if (column_user(s, 2, u) == -1) {
		log_warnx("store: malformed keys stored for %s@%s", user, host);
		return -1;
	}
	if (u->disabled != 0)
		u->disabled_reason = mem + hlen + ulen + 2;
	return 0;
}

/* Parameters of a listing step: ?1 host (or last host), ?2 last user. */
static int
bind_user_list(sqlite3_stmt *s, const struct store_req *r)
{
	const char *host = r->host != NULL ? r->host : r->last_host;
	int rc;

	if (r->host != NULL || r->list_started) {
		rc = sqlite3_bind_text(s, 1, host, -1, SQLITE_STATIC);
		if (rc != SQLITE_OK)
			return rc;
	}
	if (r->list_started) {
		rc = sqlite3_bind_text(s, 2, r->last_user, -1, SQLITE_STATIC);
		if (rc != SQLITE_OK)
			return rc;
	}
	return sqlite3_bind_int(s, 3, STORE_LIST_CHUNK);
}

/*
 * One chunk of at most STORE_LIST_CHUNK users after (last_host,
 * last_user).  A full chunk sets list_more; queue_continuations() then
 * appends a request for the next chunk to the end of the FIFO.
 */
static enum store_status
run_user_list(struct store_req *r)
{
	enum stmt_id id;
	sqlite3_stmt *s;
	size_t cap = 0;
	int rc;

	if (r->host != NULL)
		id = r->list_started ? STMT_USER_LIST_HOST_NEXT
		                     : STMT_USER_LIST_HOST_FIRST;
	else
		id = r->list_started ? STMT_USER_LIST_ALL_NEXT
		                     : STMT_USER_LIST_ALL_FIRST;
	if ((s = stmt_get(id)) == NULL)
		return STORE_ERROR;
	if (bind_user_list(s, r) != SQLITE_OK) {
		db_warn("binding user list");
		stmt_done(s);
		return STORE_ERROR;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (list_add_row(r, s, &cap) == -1) {
			stmt_done(s);
			return STORE_ERROR;
		}
	}
	if (rc != SQLITE_DONE) {
		db_warn("user list");
		stmt_done(s);
		return STORE_ERROR;
	}
	stmt_done(s);
	r->list_more = r->nrows == STORE_LIST_CHUNK;
	return STORE_OK;
}

/* Request kinds: loop-thread halves. */

static void
complete_user(struct store_req *r)
{
	r->cb.user(r->owner, r->tag, r->status,
	    r->status == STORE_OK ? &r->out : NULL);
}

static void
complete_status(struct store_req *r)
{
	r->cb.status(r->owner, r->tag, r->status);
}

static void
complete_user_list(struct store_req *r)
{
	for (size_t i = 0; i < r->nrows; i++)
		r->cb.list(r->owner, r->tag, STORE_OK, &r->rows[i]);
	if (!r->list_more)
		r->cb.list(r->owner, r->tag, r->status, NULL);
}

/* Jobs from other files (store_engine.h). */

static enum store_status
run_job(struct store_req *r)
{
	return r->job->ops->run(r->job);
}

static void
complete_job(struct store_req *r)
{
	r->job->status = r->status;
	r->job->ops->complete(r->job);
}

void
store_job_submit(struct store_job *j)
{
	struct store_req *r = req_new(REQ_JOB, j->owner, j->tag);

	r->job = j;
	req_submit(r);
}

sqlite3_stmt *
store_sql(const char *sql)
{
	sqlite3_stmt *s;

	for (size_t i = 0; i < store.njobstmts; i++)
		if (store.jobstmts[i].sql == sql)
			return store.jobstmts[i].stmt;
	if (sqlite3_prepare_v3(store.db, sql, -1, SQLITE_PREPARE_PERSISTENT,
	        &s, NULL) != SQLITE_OK) {
		log_warnx("store: preparing \"%s\": %s", sql,
		    sqlite3_errmsg(store.db));
		return NULL;
	}
	store.jobstmts = xreallocarray(store.jobstmts, store.njobstmts + 1,
	    sizeof(*store.jobstmts));
	store.jobstmts[store.njobstmts].sql = sql;
	store.jobstmts[store.njobstmts].stmt = s;
	store.njobstmts++;
	return s;
}

void
store_sql_done(sqlite3_stmt *s)
{
	stmt_done(s);
}

enum store_status
store_sql_write(sqlite3_stmt *s, const char *what,
    enum store_status not_changed)
{
	return step_write(s, what, not_changed);
}

void
store_sql_warn(const char *what)
{
	db_warn(what);
}

sqlite3 *
store_db(void)
{
	return store.db;
}

sqlite3_int64
store_user_id(const char *user, const char *host)
{
	sqlite3_stmt *s = store_sql(
	    "SELECT id FROM users WHERE host = ?1 AND user = ?2");
	sqlite3_int64 id = 0;
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, host, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, user, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		id = sqlite3_column_int64(s, 0);
	else if (rc != SQLITE_DONE) {
		store_sql_warn("user id");
		id = -1;
	}
	store_sql_done(s);
	return id;
}

/* The storage thread. */

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Fail every request from first up to (not including) end. */
static void
fail_range(struct store_req *first, struct store_req *end)
{
	for (struct store_req *r = first; r != end; r = r->next)
		req_fail(r);
}

/* Run one request; writes get a savepoint so an error undoes only them. */
static void
run_one(struct store_req *r)
{
	const struct req_ops *op = &req_ops[r->kind];
	int writes = req_writes(r);

	if (writes && stmt_exec(STMT_SAVEPOINT) == -1) {
		req_fail(r);
		return;
	}
	r->status = op->run(r);
	if (writes && !sqlite3_get_autocommit(store.db)) {
		/* On error undo this request alone, then pop the savepoint;
		 * if even that fails, undo the whole transaction (the
		 * caller sees autocommit and fails the batch so far). */
		if ((r->status == STORE_ERROR &&
		        stmt_exec(STMT_ROLLBACK_TO) == -1) ||
		    stmt_exec(STMT_RELEASE) == -1)
			stmt_exec(STMT_ROLLBACK);
	}
	if (r->status == STORE_ERROR)
		req_clear_results(r);
}

/*
 * BEGIN IMMEDIATE failed for the requests from first on: typically another
 * process (a backup tool's BEGIN EXCLUSIVE, the sqlite3 shell) held the
 * write lock past STORE_BUSY_TIMEOUT_MS.  Their writes fail, but in WAL
 * mode reading needs no lock that a writer holds, so the reads among them
 * still run, in a deferred transaction: a login waiting in the queue
 * behind an offline message is not refused because of someone else's
 * lock.  Order is kept as far as anyone can see: a read after a failed
 * write sees the database without it, as if the write had failed alone.
 */
static void
run_reads_only(struct store_req *first)
{
	struct store_req *r;
	int reads = 0;

	for (r = first; r != NULL; r = r->next) {
		if (req_writes(r))
			req_fail(r);
		else
			reads = 1;
	}
	if (!reads)
		return;
	if (stmt_exec(STMT_BEGIN) == -1) {
		for (r = first; r != NULL; r = r->next)
			req_fail(r);
		return;
	}
	for (r = first; r != NULL; r = r->next)
		if (!req_writes(r))
			run_one(r);
	/* Ending a read transaction changes nothing: the results stand. */
	if (!sqlite3_get_autocommit(store.db) && stmt_exec(STMT_COMMIT) == -1 &&
	    !sqlite3_get_autocommit(store.db))
		stmt_exec(STMT_ROLLBACK);
}

/*
 * Run a batch in one transaction.  If an error rolls the whole
 * transaction back (SQLITE_FULL, SQLITE_IOERR, RAISE(ROLLBACK), ...) the
 * requests that ran before it in this transaction lost their effects and
 * report STORE_ERROR too; the rest of the batch goes on in a new
 * transaction.  If the transaction cannot begin, see run_reads_only().
 * Returns 1 if a commit with writes happened.
 */
static int
run_batch(struct req_list *batch, double *commit_ms)
{
	struct store_req *r, *txn_first = batch->head;
	int writes = 0;
	double t0;

	for (r = batch->head; r != NULL; r = r->next)
		writes |= req_writes(r);
	if (stmt_exec(writes ? STMT_BEGIN_IMMEDIATE : STMT_BEGIN) == -1) {
		run_reads_only(batch->head);
		return 0;
	}
	for (r = batch->head; r != NULL; r = r->next) {
		run_one(r);
		if (!sqlite3_get_autocommit(store.db))
			continue;
		log_warnx("store: transaction rolled back during %s; earlier "
		          "requests of the batch fail too",
		    req_name(r));
		req_fail(r);
		fail_range(txn_first, r);
		txn_first = r->next;
		if (r->next != NULL && stmt_exec(writes ? STMT_BEGIN_IMMEDIATE
		                                        : STMT_BEGIN) == -1) {
			run_reads_only(r->next);
			return 0;
		}
	}
	if (txn_first == NULL)
		return 0;
	t0 = now_ms();
	if (stmt_exec(STMT_COMMIT) == -1) {
		if (!sqlite3_get_autocommit(store.db))
			stmt_exec(STMT_ROLLBACK);
		fail_range(txn_first, NULL);
		return 0;
	}
	*commit_ms = now_ms() - t0;
	return writes;
}

/* Called with store.lock held: queue the next chunk of each listing. */
static void
queue_continuations(struct req_list *batch)
{
	struct store_req *r, *c;
	struct store_user *last;

	for (r = batch->head; r != NULL; r = r->next) {
		if (r->kind != REQ_USER_LIST || !r->list_more)
			continue;
		last = &r->rows[r->nrows - 1];
		c = req_new(REQ_USER_LIST, r->owner, r->tag);
		c->cb = r->cb;
		c->host = r->host ? xstrdup(r->host) : NULL;
		c->list_started = 1;
		c->last_host = xstrdup(last->host);
		c->last_user = xstrdup(last->user);
		list_append(&store.pending, c);
		store.depth++;
	}
}

/* Called with store.lock held: move the first STORE_BATCH_MAX pending
 * requests (or all) to batch, in order. */
static void
take_batch(struct req_list *batch)
{
	struct store_req **next = &store.pending.head;
	size_t n = 0;

	while (*next != NULL && n < STORE_BATCH_MAX) {
		next = &(*next)->next;
		n++;
	}
	batch->head = store.pending.head;
	if (*next == NULL) {
		batch->tailp = store.pending.tailp;
		list_init(&store.pending);
	} else {
		batch->tailp = next;
		store.pending.head = *next;
		*next = NULL;
	}
	store.depth -= n;
}

const double store_commit_bounds_ms[STORE_COMMIT_BUCKETS] = {
	0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500,
};

/* Storage thread, store.lock held: one commit of ms milliseconds. */
static void
count_commit(double ms)
{
	size_t i = 0;

	while (i < STORE_COMMIT_BUCKETS && ms > store_commit_bounds_ms[i])
		i++;
	store.commit_hist[i]++;
	store.commit_ms_sum += ms;
	store.commits++;
	store.last_commit_ms = ms;
}

static void *
store_thread(void *arg)
{
	struct req_list batch;
	struct store_req *r;
	double commit_ms = 0;
	uint64_t n;
	int committed;

	(void)arg;
	work_helper_thread_init();
	pthread_mutex_lock(&store.lock);
	for (;;) {
		while (store.pending.head == NULL && !store.closing)
			pthread_cond_wait(&store.cond, &store.lock);
		if (store.pending.head == NULL)
			break; /* closing and drained */
		take_batch(&batch);
		pthread_mutex_unlock(&store.lock);

		committed = run_batch(&batch, &commit_ms);
		for (n = 0, r = batch.head; r != NULL; r = r->next)
			n++;
		if (committed && log_debug_on())
			log_debug("store: committed %" PRIu64 " requests in "
			          "%.3f ms",
			    n, commit_ms);

		pthread_mutex_lock(&store.lock);
		queue_continuations(&batch);
		store.requests += n;
		if (committed)
			count_commit(commit_ms);
		pthread_mutex_unlock(&store.lock);

		pthread_mutex_lock(&store.done_lock);
		list_concat(&store.done, &batch);
		pthread_mutex_unlock(&store.done_lock);
		ev_async_send(store.loop, &store.async);

		pthread_mutex_lock(&store.lock);
	}
	pthread_mutex_unlock(&store.lock);
	return NULL;
}

/* Loop thread: run callbacks of finished requests in order, free them. */
static void
run_completions(void)
{
	struct req_list l;
	struct store_req *r;

	pthread_mutex_lock(&store.done_lock);
	l = store.done;
	list_init(&store.done);
	pthread_mutex_unlock(&store.done_lock);

	while ((r = l.head) != NULL) {
		l.head = r->next;
		if (r->counted)
			backlog.n--;
		req_ops[r->kind].complete(r);
		req_free(r);
	}
	if (backlog.congested && backlog.n <= backlog.high / 2) {
		backlog.congested = 0;
		log_info("store: %zu requests waiting for storage; reading "
		         "from clients resumed", backlog.n);
		if (backlog.cb)
			backlog.cb(0);
	}
}

static void
store_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	run_completions();
}

/* Opening, checking and migrating (synchronous, before the thread). */

static int open_fail(char *err, size_t errlen, const char *path,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
open_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s: %s", path, msg);
	return -1;
}

/* First column of the first row of a one-off query, as an integer. */
static int
query_int(sqlite3 *db, const char *sql, sqlite3_int64 *out)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* First column of the first row as text into buf; -1 on error. */
static int
query_text(sqlite3 *db, const char *sql, char *buf, size_t len)
{
	sqlite3_stmt *s;
	const unsigned char *t;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		t = sqlite3_column_text(s, 0);
		snprintf(buf, len, "%s", t ? (const char *)t : "");
	}
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* The file must be a database we understand, intact; it is never
 * modified here. */
static int
check_database(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	sqlite3_int64 version;
	char result[256];

	if (query_int(db, "PRAGMA user_version", &version) == -1)
		return open_fail(err, errlen, path, "%s", sqlite3_errmsg(db));
	if (version > STORE_SCHEMA_VERSION)
		return open_fail(err, errlen, path,
		    "schema version %lld is "
		    "newer than this xmppd knows (%d); refusing to use it",
		    (long long)version, STORE_SCHEMA_VERSION);
	if (query_text(db, "PRAGMA quick_check", result, sizeof(result)) == -1)
		return open_fail(err, errlen, path, "integrity check: %s",
		    sqlite3_errmsg(db));
	if (strcmp(result, "ok") != 0) {
		for (char *p = result; *p != '\0'; p++)
			if (*p == '\n')
				*p = ' '; /* one line for the log */
		return open_fail(
		    err, errlen, path, "integrity check failed: %s", result);
	}
	return 0;
}

static int
configure_database(sqlite3 *db, const char *path, int synchronous_full,
    char *err, size_t errlen)
{
	char mode[32];
	char *msg = NULL;

	if (query_text(db, "PRAGMA journal_mode=WAL", mode, sizeof(mode)) == -1)
		return open_fail(err, errlen, path, "setting WAL mode: %s",
		    sqlite3_errmsg(db));
	if (strcmp(mode, "wal") != 0)
		log_warnx("store: %s: journal mode is %s, not wal", path, mode);
	if (sqlite3_exec(db,
	        synchronous_full ? "PRAGMA synchronous=FULL"
	                         : "PRAGMA synchronous=NORMAL",
	        NULL, NULL, &msg) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, &msg) !=
	        SQLITE_OK) {
		open_fail(err, errlen, path, "%s", msg ? msg : "PRAGMA failed");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Apply migrations[version..] in one transaction. */
static int
migrate_database(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	sqlite3_int64 version;
	char sql[64];
	char *msg = NULL;
	int v;

	if (query_int(db, "PRAGMA user_version", &version) == -1)
		return open_fail(err, errlen, path, "%s", sqlite3_errmsg(db));
	if (version == STORE_SCHEMA_VERSION)
		return 0;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK)
		goto fail;
	/* Read again under the write lock. */
	if (query_int(db, "PRAGMA user_version", &version) == -1)
		goto fail;
	for (v = (int)version; v < STORE_SCHEMA_VERSION; v++) {
		if (sqlite3_exec(db, migrations[v], NULL, NULL, &msg) !=
		    SQLITE_OK)
			goto fail;
		log_info(
		    "store: %s: schema migrated to version %d", path, v + 1);
	}
	snprintf(
	    sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK)
		goto fail;
	return 0;

fail:
	open_fail(err, errlen, path, "schema migration from version %lld: %s",
	    (long long)version, msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static void
start_thread(void)
{
	sigset_t all, old;
	int error;

	/* The storage thread blocks every signal: the loop thread gets them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	error = pthread_create(&store.thread, NULL, store_thread, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (error != 0) {
		errno = error;
		fatal("store: pthread_create");
	}
}

int
store_open(struct ev_loop *loop, const char *path, int synchronous_full,
    char *err, size_t errlen)
{
	struct stat sb;
	sqlite3 *db = NULL;
	int flags = SQLITE_OPEN_READWRITE;

	if (store.running)
		return open_fail(err, errlen, path, "store already open");
	if (stat(path, &sb) == -1) {
		if (errno != ENOENT)
			return open_fail(
			    err, errlen, path, "%s", strerror(errno));
		flags |= SQLITE_OPEN_CREATE;
		log_info(
		    "store: %s does not exist; creating a new database", path);
	} else if (!S_ISREG(sb.st_mode))
		return open_fail(err, errlen, path, "not a regular file");

	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		int sys = db ? sqlite3_system_errno(db) : 0;

		open_fail(err, errlen, path, "%s%s%s%s",
		    db ? sqlite3_errmsg(db) : "cannot open", sys ? " (" : "",
		    sys ? strerror(sys) : "", sys ? ")" : "");
		goto fail;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, busy_timeout_ms);
	if (sqlite3_db_readonly(db, "main") == 1) {
		open_fail(err, errlen, path, "database is read-only");
		goto fail;
	}
	if (check_database(db, path, err, errlen) == -1 ||
	    configure_database(db, path, synchronous_full, err, errlen) == -1 ||
	    migrate_database(db, path, err, errlen) == -1)
		goto fail;

	store.db = db;
	store.path = xstrdup(path);
	store.loop = loop;
	store.closing = 0;
	store.depth = 0;
	store.requests = 0;
	store.commits = 0;
	store.last_commit_ms = 0;
	store.commit_ms_sum = 0;
	memset(store.commit_hist, 0, sizeof(store.commit_hist));
	list_init(&store.pending);
	list_init(&store.done);
	ev_async_init(&store.async, store_async_cb);
	ev_async_start(loop, &store.async);
	ev_unref(loop); /* requests in flight alone do not keep it */
	start_thread();
	store.running = 1;
	store.accepting = 1;
	log_info("store: %s open, schema version %d, synchronous=%s", path,
	    STORE_SCHEMA_VERSION, synchronous_full ? "FULL" : "NORMAL");
	return 0;

fail:
	sqlite3_close(db);
	return -1;
}

void
store_close(void)
{
	int rc;

	if (!store.running)
		return;
	store.accepting = 0;
	pthread_mutex_lock(&store.lock);
	store.closing = 1;
	pthread_cond_signal(&store.cond);
	pthread_mutex_unlock(&store.lock);
	pthread_join(store.thread, NULL);

	run_completions();
	ev_ref(store.loop);
	ev_async_stop(store.loop, &store.async);

	for (int i = 0; i < STMT__COUNT; i++) {
		sqlite3_finalize(store.stmts[i]);
		store.stmts[i] = NULL;
	}
	for (size_t i = 0; i < store.njobstmts; i++)
		sqlite3_finalize(store.jobstmts[i].stmt);
	free(store.jobstmts);
	store.jobstmts = NULL;
	store.njobstmts = 0;
	if ((rc = sqlite3_close(store.db)) != SQLITE_OK)
		log_warnx(
		    "store: closing %s: %s", store.path, sqlite3_errstr(rc));
	else
		log_info("store: %s closed", store.path);
	store.db = NULL;
	free(store.path);
	store.path = NULL;
	store.loop = NULL;
	store.running = 0;
}

void
store_get_stats(struct store_stats *st)
{
	pthread_mutex_lock(&store.lock);
	st->queue_depth = store.depth;
	st->requests = store.requests;
	st->commits = store.commits;
	st->last_commit_ms = store.last_commit_ms;
	st->commit_ms_sum = store.commit_ms_sum;
	memcpy(st->commit_hist, store.commit_hist, sizeof(st->commit_hist));
	pthread_mutex_unlock(&store.lock);
}

/* Public requests (loop thread). */

void
store_user_get(const char *user, const char *host, store_user_cb cb,
    uint64_t owner, uint64_t tag)
{
	struct store_req *r = req_new(REQ_USER_GET, owner, tag);

	r->cb.user = cb;
	r->user = xstrdup(user);
	r->host = xstrdup(host);
	req_submit(r);
}

static struct store_req *
req_new_user_write(enum req_kind kind, const struct store_user *u,
    store_status_cb cb, uint64_t owner, uint64_t tag)
{
	struct store_req *r = req_new(kind, owner, tag);

	r->cb.status = cb;
	r->user = xstrdup(u->user);
	r->host = xstrdup(u->host);
	r->in = *u;
	r->in.user = NULL;
	r->in.host = NULL;
	r->in.disabled = 0; /* set only by store_user_set_disabled */
	r->in.disabled_reason = NULL;
	return r;
}

void
store_user_create(const struct store_user *u, store_status_cb cb,
    uint64_t owner, uint64_t tag)
{
	struct store_req *r;

	r = req_new_user_write(REQ_USER_CREATE, u, cb, owner, tag);
	if (r->in.created == 0)
		r->in.created = (int64_t)time(NULL);
	req_submit(r);
}

void
store_user_set_keys(const struct store_user *u, store_status_cb cb,
    uint64_t owner, uint64_t tag)
{
	req_submit(req_new_user_write(REQ_USER_SET_KEYS, u, cb, owner, tag));
}

void
store_user_set_disabled(const char *user, const char *host, int64_t disabled,
    const char *reason, store_status_cb cb, uint64_t owner, uint64_t tag)
{
	struct store_req *r = req_new(REQ_USER_SET_DISABLED, owner, tag);

	r->cb.status = cb;
	r->user = xstrdup(user);
	r->host = xstrdup(host);
	r->in.disabled = disabled;
	r->reason = disabled != 0 && reason != NULL ? xstrdup(reason) : NULL;
	req_submit(r);
}

void
store_user_delete(const char *user, const char *host, store_status_cb cb,
    uint64_t owner, uint64_t tag)
{
	struct store_req *r = req_new(REQ_USER_DELETE, owner, tag);

	r->cb.status = cb;
	r->user = xstrdup(user);
	r->host = xstrdup(host);
	req_submit(r);
}

void
store_user_list(
    const char *host, store_user_list_cb cb, uint64_t owner, uint64_t tag)
{
	struct store_req *r = req_new(REQ_USER_LIST, owner, tag);

	r->cb.list = cb;
	r->host = host ? xstrdup(host) : NULL;
	req_submit(r);
}
