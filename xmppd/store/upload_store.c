/*
 * XEP-0363 upload metadata in SQLite: the storage jobs behind
 * store/upload.h.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store/store_engine.h"
#include "store/upload.h"
#include "xmalloc.h"

enum upload_op { OP_RESERVE, OP_GET, OP_COMPLETE, OP_LIST, OP_DELETE };

struct upload_job {
	struct store_job job; /* first: the store hands this back */
	enum upload_op op;
	struct store_upload in; /* reserve: the row (strings owned) */
	char *token, *host, *user;
	struct store_upload_limits limits;
	int64_t now, before, pending_before;
	enum upload_reserve_result res;
	int64_t retry;
	struct store_upload *rows; /* results (strings owned) */
	size_t nrows;
	store_upload_reserved_cb reserved_cb;
	store_upload_cb cb;
	store_upload_done_cb done_cb;
};

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static const char *
col_text(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t != NULL ? (const char *)t : "";
}

#define ROW_COLUMNS                                                            \
	"token, host, user, filename, content_type, size, "                    \
	"created, completed"

/* Storage thread: append the current row of s (ROW_COLUMNS) to j. */
static void
add_row(struct upload_job *j, sqlite3_stmt *s)
{
	struct store_upload *u;

	j->rows = xreallocarray(j->rows, j->nrows + 1, sizeof(*j->rows));
	u = &j->rows[j->nrows++];
	u->token = xstrdup(col_text(s, 0));
	u->host = xstrdup(col_text(s, 1));
	u->user = xstrdup(col_text(s, 2));
	u->filename = xstrdup(col_text(s, 3));
	u->content_type = xstrdup(col_text(s, 4));
	u->size = sqlite3_column_int64(s, 5);
	u->created = sqlite3_column_int64(s, 6);
	u->completed = sqlite3_column_int64(s, 7);
}

/* Storage thread: every row s selects, into j; -1 on error. */
static int
collect(struct upload_job *j, sqlite3_stmt *s, const char *what)
{
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		add_row(j, s);
	if (rc != SQLITE_DONE) {
		store_sql_warn(what);
		return -1;
	}
	return 0;
}

static int64_t
query_int(const char *sql, const struct upload_job *j, int bind_user,
    int64_t arg, int *err)
{
	sqlite3_stmt *s = store_sql(sql);
	int64_t v = 0;

	if (s == NULL) {
		*err = 1;
		return 0;
	}
	if (bind_user) {
		sqlite3_bind_text(s, 1, j->in.host, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, j->in.user, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, arg);
	}
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	else {
		store_sql_warn("upload quota");
		*err = 1;
	}
	store_sql_done(s);
	return v;
}

static enum store_status
run_reserve(struct upload_job *j)
{
	static const char sql_bytes[] =
	    "SELECT coalesce(sum(size), 0) FROM "
	    "uploads WHERE host = ?1 AND user = ?2 AND ?3 >= 0";
	static const char sql_day[] =
	    "SELECT count(*), coalesce(min(created),"
	    " 0) FROM uploads WHERE host = ?1 AND user = ?2 AND created > ?3";
	static const char sql_disk[] = "SELECT coalesce(sum(size), 0) FROM "
	                               "uploads";
	static const char sql_insert[] =
	    "INSERT INTO uploads (token, host, "
	    "user, filename, content_type, size, created) VALUES (?1, ?2, ?3,"
	    " ?4, ?5, ?6, ?7)";
	const struct store_upload_limits *l = &j->limits;
	int err = 0;
	sqlite3_stmt *s;

	j->res = UPLOAD_RESERVED;
	if (l->user_bytes > 0 &&
	    query_int(sql_bytes, j, 1, 0, &err) + j->in.size > l->user_bytes)
		j->res = UPLOAD_OVER_USER_BYTES;
	if (!err && j->res == UPLOAD_RESERVED && l->user_files_per_day > 0) {
		if ((s = store_sql(sql_day)) == NULL)
			return STORE_ERROR;
		sqlite3_bind_text(s, 1, j->in.host, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, j->in.user, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, j->in.created - 86400);
		if (sqlite3_step(s) != SQLITE_ROW) {
			store_sql_warn("upload quota");
			err = 1;
		} else if (sqlite3_column_int64(s, 0) >=
		           (int64_t)l->user_files_per_day) {
			j->res = UPLOAD_OVER_FILES_PER_DAY;
			j->retry = sqlite3_column_int64(s, 1) + 86400;
		}
		store_sql_done(s);
	}
	if (!err && j->res == UPLOAD_RESERVED && l->disk_bytes > 0 &&
	    query_int(sql_disk, j, 0, 0, &err) + j->in.size > l->disk_bytes)
		j->res = UPLOAD_OVER_DISK;
	if (err)
		return STORE_ERROR;
	if (j->res != UPLOAD_RESERVED)
		return STORE_OK;
	if ((s = store_sql(sql_insert)) == NULL)
		return STORE_ERROR;
	sqlite3_bind_text(s, 1, j->in.token, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, j->in.host, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, j->in.user, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, j->in.filename, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, j->in.content_type, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, j->in.size);
	sqlite3_bind_int64(s, 7, j->in.created);
	return store_sql_write(s, "upload reserve", STORE_ERROR);
}

static enum store_status
run_get(struct upload_job *j)
{
	static const char sql[] = "SELECT " ROW_COLUMNS " FROM uploads "
	                          "WHERE token = ?1";
	sqlite3_stmt *s = store_sql(sql);
	int r;

	if (s == NULL)
		return STORE_ERROR;
	sqlite3_bind_text(s, 1, j->token, -1, SQLITE_STATIC);
	r = collect(j, s, "upload get");
	store_sql_done(s);
	if (r == -1)
		return STORE_ERROR;
	return j->nrows ? STORE_OK : STORE_NOT_FOUND;
}

static enum store_status
run_complete(struct upload_job *j)
{
	static const char sql[] = "UPDATE uploads SET completed = ?2 "
	                          "WHERE token = ?1 AND completed IS NULL";
	sqlite3_stmt *s = store_sql(sql);
	enum store_status st;

	if (s == NULL)
		return STORE_ERROR;
	sqlite3_bind_text(s, 1, j->token, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, j->now);
	st = store_sql_write(s, "upload complete", STORE_NOT_FOUND);
	if (st == STORE_NOT_FOUND && run_get(j) == STORE_OK)
		st = STORE_EXISTS;
	return st;
}

static enum store_status
run_list(struct upload_job *j)
{
	static const char sql_all[] = "SELECT " ROW_COLUMNS " FROM uploads "
	                              "ORDER BY created, token LIMIT 1000";
	static const char sql_user[] =
	    "SELECT " ROW_COLUMNS " FROM uploads "
	    "WHERE host = ?1 AND user = ?2 ORDER BY created, token "
	    "LIMIT 1000";
	sqlite3_stmt *s = store_sql(j->user ? sql_user : sql_all);
	int r;

	_Static_assert(UPLOAD_LIST_MAX == 1000, "LIMIT in the SQL");
	if (s == NULL)
		return STORE_ERROR;
	if (j->user) {
		sqlite3_bind_text(s, 1, j->host, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, j->user, -1, SQLITE_STATIC);
	}
	r = collect(j, s, "upload list");
	store_sql_done(s);
	return r == -1 ? STORE_ERROR : STORE_OK;
}

static enum store_status
run_delete(struct upload_job *j)
{
	static const char sql_user[] =
	    "SELECT " ROW_COLUMNS " FROM uploads "
	    "WHERE host = ?1 AND user = ?2 ORDER BY created, token "
	    "LIMIT 1000";
	static const char sql_old[] =
	    "SELECT " ROW_COLUMNS " FROM uploads "
	    "WHERE created < ?1 OR (completed IS NULL AND created < ?2) "
	    "ORDER BY created, token LIMIT 1000";
	static const char sql_del[] = "DELETE FROM uploads WHERE token = ?1";
	sqlite3_stmt *s = store_sql(j->user ? sql_user : sql_old);
	int r;

	if (s == NULL)
		return STORE_ERROR;
	if (j->user) {
		sqlite3_bind_text(s, 1, j->host, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, j->user, -1, SQLITE_STATIC);
	} else {
		sqlite3_bind_int64(s, 1, j->before);
		sqlite3_bind_int64(s, 2, j->pending_before);
	}
	r = collect(j, s, "upload delete");
	store_sql_done(s);
	if (r == -1)
		return STORE_ERROR;
	for (size_t i = 0; i < j->nrows; i++) {
		if ((s = store_sql(sql_del)) == NULL)
			return STORE_ERROR;
		sqlite3_bind_text(s, 1, j->rows[i].token, -1, SQLITE_STATIC);
		if (store_sql_write(s, "upload delete", STORE_OK) ==
		    STORE_ERROR)
			return STORE_ERROR;
	}
	return STORE_OK;
}

static enum store_status
run(struct store_job *sj)
{
	struct upload_job *j = (struct upload_job *)sj;

	switch (j->op) {
	case OP_RESERVE:
		return run_reserve(j);
	case OP_GET:
		return run_get(j);
	case OP_COMPLETE:
		return run_complete(j);
	case OP_LIST:
		return run_list(j);
	case OP_DELETE:
		return run_delete(j);
	}
	return STORE_ERROR;
}

static void
complete(struct store_job *sj)
{
	struct upload_job *j = (struct upload_job *)sj;
	int ok = j->job.status != STORE_ERROR;

	switch (j->op) {
	case OP_RESERVE:
		if (j->reserved_cb != NULL)
			j->reserved_cb(
			    j->job.owner, j->job.status, j->res, j->retry);
		break;
	case OP_COMPLETE:
		if (j->done_cb != NULL)
			j->done_cb(j->job.owner, j->job.status);
		break;
	default:
		if (j->cb != NULL)
			j->cb(j->job.owner, j->job.status, ok ? j->rows : NULL,
			    ok ? j->nrows : 0);
		break;
	}
}

static void
job_free(struct store_job *sj)
{
	struct upload_job *j = (struct upload_job *)sj;

	free((char *)j->in.token);
	free((char *)j->in.host);
	free((char *)j->in.user);
	free((char *)j->in.filename);
	free((char *)j->in.content_type);
	free(j->token);
	free(j->host);
	free(j->user);
	for (size_t i = 0; i < j->nrows; i++) {
		free((char *)j->rows[i].token);
		free((char *)j->rows[i].host);
		free((char *)j->rows[i].user);
		free((char *)j->rows[i].filename);
		free((char *)j->rows[i].content_type);
	}
	free(j->rows);
	free(j);
}

static const struct store_job_ops read_ops = {
    "upload read", 0, run, complete, job_free};
static const struct store_job_ops write_ops = {
    "upload write", 1, run, complete, job_free};

static struct upload_job *
job_new(enum upload_op op, uint64_t owner)
{
	struct upload_job *j = xcalloc(1, sizeof(*j));

	j->job.ops = op == OP_GET || op == OP_LIST ? &read_ops : &write_ops;
	j->job.owner = owner;
	j->op = op;
	return j;
}

void
store_upload_reserve(const struct store_upload *u,
    const struct store_upload_limits *limits, store_upload_reserved_cb cb,
    uint64_t owner)
{
	struct upload_job *j = job_new(OP_RESERVE, owner);

	j->in = *u;
	j->in.token = xstrdup(u->token);
	j->in.host = xstrdup(u->host);
	j->in.user = xstrdup(u->user);
	j->in.filename = xstrdup(u->filename);
	j->in.content_type = xstrdup(u->content_type);
	j->limits = *limits;
	j->reserved_cb = cb;
	store_job_submit(&j->job);
}

void
store_upload_get(const char *token, store_upload_cb cb, uint64_t owner)
{
	struct upload_job *j = job_new(OP_GET, owner);

	j->token = xstrdup(token);
	j->cb = cb;
	store_job_submit(&j->job);
}

void
store_upload_complete(
    const char *token, int64_t now, store_upload_done_cb cb, uint64_t owner)
{
	struct upload_job *j = job_new(OP_COMPLETE, owner);

	j->token = xstrdup(token);
	j->now = now;
	j->done_cb = cb;
	store_job_submit(&j->job);
}

void
store_upload_list(
    const char *host, const char *user, store_upload_cb cb, uint64_t owner)
{
	struct upload_job *j = job_new(OP_LIST, owner);

	j->host = dup_or_null(host);
	j->user = dup_or_null(user);
	j->cb = cb;
	store_job_submit(&j->job);
}

void
store_upload_delete(const char *host, const char *user, int64_t before,
    int64_t pending_before, store_upload_cb cb, uint64_t owner)
{
	struct upload_job *j = job_new(OP_DELETE, owner);

	j->host = dup_or_null(host);
	j->user = dup_or_null(user);
	j->before = before;
	j->pending_before = pending_before;
	j->cb = cb;
	store_job_submit(&j->job);
}
