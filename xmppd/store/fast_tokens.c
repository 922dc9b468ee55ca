/*
 * XEP-0484 (FAST) tokens in SQLite: the storage jobs behind store/fast.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "log.h"
#include "store/fast.h"
#include "store/store_engine.h"
#include "xmalloc.h"

static unsigned char seal_key[HT_KEY_LEN];

const unsigned char *
store_fast_key(void)
{
	return seal_key;
}

int
store_fast_key_load(const char *path, char *err, size_t errlen)
{
	unsigned char k[HT_KEY_LEN + 1];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd == -1 && errno == ENOENT) {
		if (RAND_bytes(seal_key, sizeof(seal_key)) != 1) {
			snprintf(err, errlen, "%s: no random bytes", path);
			return -1;
		}
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd == -1 || write(fd, seal_key, sizeof(seal_key)) !=
		    (ssize_t)sizeof(seal_key) || fsync(fd) == -1) {
			snprintf(err, errlen, "cannot create %s: %s", path,
			    strerror(errno));
			if (fd != -1) {
				close(fd);
				unlink(path);
			}
			return -1;
		}
		close(fd);
		log_info("store: created %s (the key of login tokens at rest)",
		    path);
		return 0;
	}
	if (fd == -1) {
		snprintf(err, errlen, "cannot open %s: %s", path,
		    strerror(errno));
		return -1;
	}
	n = read(fd, k, sizeof(k));
	close(fd);
	if (n != HT_KEY_LEN) {
		snprintf(err, errlen, "%s: not a key of %d bytes (delete it to "
		    "make a new one; every client then logs in once with its "
		    "password)", path, HT_KEY_LEN);
		return -1;
	}
	memcpy(seal_key, k, HT_KEY_LEN);
	OPENSSL_cleanse(k, sizeof(k));
	return 0;
}

enum fast_op { OP_GET, OP_USED, OP_ISSUE, OP_REVOKE };

struct fast_job {
	struct store_job job;   /* first: the store hands this back */
	enum fast_op op;
	char *host, *user, *agent;      /* agent NULL: every client */
	struct store_fast_token in;     /* issue: the token; used: its hash */
	int invalidate, has_count;
	int64_t counter, now;
	store_fast_cb cb;
	store_fast_used_cb used_cb;
	store_fast_revoked_cb revoked_cb;
	/* Results. */
	int disabled;
	struct store_fast_token *out;
	size_t nout;
	unsigned deleted;
};

static const char sql_user[] =
    "SELECT id, disabled IS NOT NULL FROM users WHERE host = ?1 AND user = ?2";
static const char sql_get_one[] =
    "SELECT agent, software, device, slot, mechanism, hash, expiry, created,"
    " coalesce(last_used, 0), counter FROM fast_token"
    " WHERE user_id = ?1 AND agent = ?2 ORDER BY slot DESC";
static const char sql_get_all[] =
    "SELECT agent, software, device, slot, mechanism, hash, expiry, created,"
    " coalesce(last_used, 0), counter FROM fast_token"
    " WHERE user_id = ?1 ORDER BY agent, slot LIMIT 256";
/* A token is named by its hash here, not its slot: a login racing
 * another that moved it from "new" to "current" still finds it. */
static const char sql_use_counted[] =
    "UPDATE fast_token SET counter = ?4, last_used = ?5"
    " WHERE user_id = ?1 AND agent = ?2 AND hash = ?6 AND counter < ?4";
static const char sql_use[] =
    "UPDATE fast_token SET last_used = ?5"
    " WHERE user_id = ?1 AND agent = ?2 AND hash = ?6";
static const char sql_exists[] =
    "SELECT 1 FROM fast_token WHERE user_id = ?1 AND agent = ?2"
    " AND hash = ?6";
static const char sql_invalidate[] =
    "DELETE FROM fast_token WHERE user_id = ?1 AND agent = ?2"
    " AND hash = ?6";
/* XEP-0484 §5.1: the "new" token used replaces the "current" one. */
static const char sql_drop_current[] =
    "DELETE FROM fast_token WHERE user_id = ?1 AND agent = ?2 AND slot = 0"
    " AND EXISTS (SELECT 1 FROM fast_token WHERE user_id = ?1"
    " AND agent = ?2 AND slot = 1 AND hash = ?6)";
static const char sql_promote_hash[] =
    "UPDATE fast_token SET slot = 0 WHERE user_id = ?1 AND agent = ?2"
    " AND slot = 1 AND hash = ?6";
static const char sql_issue[] =
    "INSERT OR REPLACE INTO fast_token (user_id, agent, slot, software,"
    " device, mechanism, hash, expiry, created, last_used, counter)"
    " VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7, ?8, NULL, 0)";
static const char sql_purge[] =
    "DELETE FROM fast_token WHERE user_id = ?1 AND expiry < ?5";
static const char sql_revoke_one[] =
    "DELETE FROM fast_token WHERE user_id = ?1 AND agent = ?2";
static const char sql_revoke_all[] =
    "DELETE FROM fast_token WHERE user_id = ?1";

/* Storage thread: the account's id and whether it is disabled. */
static enum store_status
user_id(const struct fast_job *j, sqlite3_int64 *id, int *disabled)
{
	enum store_status st = STORE_OK;
	sqlite3_stmt *s;
	int rc;

	if ((s = store_sql(sql_user)) == NULL)
		return STORE_ERROR;
	if (sqlite3_bind_text(s, 1, j->host, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, j->user, -1, SQLITE_STATIC) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(s, 0);
		*disabled = sqlite3_column_int(s, 1);
	} else if (rc == SQLITE_DONE)
		st = STORE_NOT_FOUND;
	else {
		store_sql_warn("fast: user id");
		st = STORE_ERROR;
	}
	store_sql_done(s);
	return st;
}

static char *
column_str(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	return xstrdup(t != NULL ? (const char *)t : "");
}

static enum store_status
run_get(struct fast_job *j, sqlite3_int64 id)
{
	sqlite3_stmt *s;
	int rc;

	if ((s = store_sql(j->agent ? sql_get_one : sql_get_all)) == NULL)
		return STORE_ERROR;
	rc = sqlite3_bind_int64(s, 1, id);
	if (rc == SQLITE_OK && j->agent)
		rc = sqlite3_bind_text(s, 2, j->agent, -1, SQLITE_STATIC);
	while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_fast_token *t;
		const void *h = sqlite3_column_blob(s, 5);

		if (j->nout == FAST_LIST_MAX)
			break;
		j->out = xreallocarray(j->out, j->nout + 1, sizeof(*j->out));
		t = &j->out[j->nout++];
		memset(t, 0, sizeof(*t));
		t->agent = column_str(s, 0);
		t->software = column_str(s, 1);
		t->device = column_str(s, 2);
		t->slot = sqlite3_column_int(s, 3);
		t->mechanism = column_str(s, 4);
		if (h != NULL && sqlite3_column_bytes(s, 5) == 32)
			memcpy(t->hash, h, 32);
		t->expiry = sqlite3_column_int64(s, 6);
		t->created = sqlite3_column_int64(s, 7);
		t->last_used = sqlite3_column_int64(s, 8);
		t->counter = sqlite3_column_int64(s, 9);
		rc = SQLITE_OK;
	}
	store_sql_done(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW && rc != SQLITE_OK) {
		store_sql_warn("fast: get");
		return STORE_ERROR;
	}
	return STORE_OK;
}

/* Storage thread: run a write with ?1 id, ?2 agent and the rest. */
static int
write_slot(const char *sql, sqlite3_int64 id, const char *agent, int slot,
    int64_t counter, int64_t now)
{
	sqlite3_stmt *s;
	int rc;

	if ((s = store_sql(sql)) == NULL)
		return -1;
	rc = sqlite3_bind_int64(s, 1, id);
	if (rc == SQLITE_OK && agent != NULL)
		rc = sqlite3_bind_text(s, 2, agent, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && strstr(sql, "?3") != NULL)
		rc = sqlite3_bind_int(s, 3, slot);
	if (rc == SQLITE_OK && strstr(sql, "?4") != NULL)
		rc = sqlite3_bind_int64(s, 4, counter);
	if (rc == SQLITE_OK && strstr(sql, "?5") != NULL)
		rc = sqlite3_bind_int64(s, 5, now);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	store_sql_done(s);
	if (rc != SQLITE_DONE) {
		store_sql_warn("fast: write");
		return -1;
	}
	return sqlite3_changes(store_db());
}

/* Storage thread: the token's row updated by sql (sql_use or
 * sql_use_counted); the rows changed, or -1. */
static int
use_row(const char *sql, sqlite3_int64 id, const struct fast_job *j)
{
	sqlite3_stmt *s;
	int rc;

	if ((s = store_sql(sql)) == NULL)
		return -1;
	rc = sqlite3_bind_int64(s, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(s, 2, j->agent, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && strstr(sql, "?4") != NULL)
		rc = sqlite3_bind_int64(s, 4, j->counter);
	if (rc == SQLITE_OK && strstr(sql, "?5") != NULL)
		rc = sqlite3_bind_int64(s, 5, j->now);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(s, 6, j->in.hash, 32, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	store_sql_done(s);
	if (rc == SQLITE_ROW)
		return 1;       /* sql_exists */
	if (rc != SQLITE_DONE) {
		store_sql_warn("fast: use");
		return -1;
	}
	return sql == sql_exists ? 0 : sqlite3_changes(store_db());
}

static enum store_status
run_used(struct fast_job *j, sqlite3_int64 id)
{
	int n;

	n = use_row(j->has_count ? sql_use_counted : sql_use, id, j);
	if (n < 0)
		return STORE_ERROR;
	if (n == 0) {
		/* Gone meanwhile, or a count not above the last one. */
		if ((n = use_row(sql_exists, id, j)) < 0)
			return STORE_ERROR;
		return n > 0 ? STORE_EXISTS : STORE_NOT_FOUND;
	}
	if (j->invalidate)
		return use_row(sql_invalidate, id, j) < 0 ? STORE_ERROR :
		    STORE_OK;
	if (use_row(sql_drop_current, id, j) < 0 ||
	    use_row(sql_promote_hash, id, j) < 0)
		return STORE_ERROR;
	return STORE_OK;
}

static enum store_status
run_issue(struct fast_job *j, sqlite3_int64 id)
{
	const struct store_fast_token *t = &j->in;
	sqlite3_stmt *s;
	int rc;

	if ((s = store_sql(sql_issue)) == NULL)
		return STORE_ERROR;
	rc = sqlite3_bind_int64(s, 1, id);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(s, 2, j->agent, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(s, 3, t->software, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(s, 4, t->device, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(s, 5, t->mechanism, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(s, 6, t->hash, 32, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 7, t->expiry);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 8, t->created);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	store_sql_done(s);
	if (rc != SQLITE_DONE) {
		store_sql_warn("fast: issue");
		return STORE_ERROR;
	}
	/* The account's expired tokens go when it gets a new one: rows
	 * stay bounded by its devices without a sweep of the table. */
	return write_slot(sql_purge, id, NULL, 0, 0, t->created) < 0 ?
	    STORE_ERROR : STORE_OK;
}

static enum store_status
run(struct store_job *sj)
{
	struct fast_job *j = (struct fast_job *)sj;
	sqlite3_int64 id;
	enum store_status st;
	int n;

	if ((st = user_id(j, &id, &j->disabled)) != STORE_OK)
		return st;
	switch (j->op) {
	case OP_GET:
		return run_get(j, id);
	case OP_USED:
		return run_used(j, id);
	case OP_ISSUE:
		return run_issue(j, id);
	case OP_REVOKE:
		n = write_slot(j->agent ? sql_revoke_one : sql_revoke_all, id,
		    j->agent, 0, 0, 0);
		if (n < 0)
			return STORE_ERROR;
		j->deleted = (unsigned)n;
		return STORE_OK;
	}
	return STORE_ERROR;
}

static void
complete(struct store_job *sj)
{
	struct fast_job *j = (struct fast_job *)sj;

	if (j->op == OP_GET && j->cb != NULL)
		j->cb(j->job.owner, j->job.status, j->disabled,
		    j->job.status == STORE_OK ? j->out : NULL,
		    j->job.status == STORE_OK ? j->nout : 0);
	else if (j->op == OP_REVOKE && j->revoked_cb != NULL)
		j->revoked_cb(j->job.owner, j->job.status, j->deleted);
	else if (j->op == OP_USED && j->used_cb != NULL)
		j->used_cb(j->job.owner, j->job.status);
}

static void
job_free(struct store_job *sj)
{
	struct fast_job *j = (struct fast_job *)sj;

	for (size_t i = 0; i < j->nout; i++) {
		free((char *)j->out[i].agent);
		free((char *)j->out[i].software);
		free((char *)j->out[i].device);
		free((char *)j->out[i].mechanism);
	}
	free(j->out);
	free((char *)j->in.software);
	free((char *)j->in.device);
	free((char *)j->in.mechanism);
	free(j->host);
	free(j->user);
	free(j->agent);
	free(j);
}

static const struct store_job_ops read_ops = { "fast get", 0, run, complete,
	job_free };
static const struct store_job_ops write_ops = { "fast write", 1, run,
	complete, job_free };

static struct fast_job *
job_new(enum fast_op op, const char *host, const char *user,
    const char *agent, uint64_t owner)
{
	struct fast_job *j = xcalloc(1, sizeof(*j));

	j->job.ops = op == OP_GET ? &read_ops : &write_ops;
	j->job.owner = owner;
	j->op = op;
	j->host = xstrdup(host);
	j->user = xstrdup(user);
	j->agent = agent != NULL ? xstrdup(agent) : NULL;
	return j;
}

void
store_fast_get(const char *host, const char *user, const char *agent,
    store_fast_cb cb, uint64_t owner)
{
	struct fast_job *j = job_new(OP_GET, host, user, agent, owner);

	j->cb = cb;
	store_job_submit(&j->job);
}

void
store_fast_used(const char *host, const char *user, const char *agent,
    const unsigned char hash[32], int has_count, int64_t count,
    int invalidate, int64_t now, store_fast_used_cb cb, uint64_t owner)
{
	struct fast_job *j = job_new(OP_USED, host, user, agent, owner);

	memcpy(j->in.hash, hash, 32);
	j->has_count = has_count;
	j->counter = count;
	j->invalidate = invalidate;
	j->now = now;
	j->used_cb = cb;
	store_job_submit(&j->job);
}

void
store_fast_issue(const char *host, const char *user,
    const struct store_fast_token *t)
{
	struct fast_job *j = job_new(OP_ISSUE, host, user, t->agent, 0);

	j->in = *t;
	j->in.agent = NULL;
	j->in.software = xstrdup(t->software);
	j->in.device = xstrdup(t->device);
	j->in.mechanism = xstrdup(t->mechanism);
	store_job_submit(&j->job);
}

void
store_fast_revoke(const char *host, const char *user, const char *agent,
    store_fast_revoked_cb cb, uint64_t owner)
{
	struct fast_job *j = job_new(OP_REVOKE, host, user, agent, owner);

	j->revoked_cb = cb;
	store_job_submit(&j->job);
}
