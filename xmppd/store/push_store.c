/*
 * XEP-0357 push registrations in SQLite: the storage jobs behind
 * store/push.h.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store/push.h"
#include "store/store_engine.h"
#include "xmalloc.h"

enum push_op { OP_LIST, OP_PUT, OP_DELETE };

struct push_job {
	struct store_job job; /* first: the store hands this back */
	enum push_op op;
	struct store_push in; /* put: the row; list, delete: host, user,
	                         jid, node (strings owned, NULL if unused) */
	unsigned max;
	struct store_push *rows; /* results (strings owned) */
	size_t nrows;
	store_push_cb cb;
	store_push_done_cb done_cb;
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

/* Storage thread: every row s selects (jid, node, form, created) into
 * j; -1 on error. */
static int
collect(struct push_job *j, sqlite3_stmt *s, const char *what)
{
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_push *p;

		j->rows = xreallocarray(j->rows, j->nrows + 1,
		    sizeof(*j->rows));
		p = &j->rows[j->nrows++];
		p->host = xstrdup(j->in.host);
		p->user = xstrdup(j->in.user);
		p->jid = xstrdup(col_text(s, 0));
		p->node = xstrdup(col_text(s, 1));
		p->form = xstrdup(col_text(s, 2));
		p->created = sqlite3_column_int64(s, 3);
	}
	if (rc != SQLITE_DONE) {
		store_sql_warn(what);
		return -1;
	}
	return 0;
}

static enum store_status
run_list(struct push_job *j)
{
	static const char sql[] =
	    "SELECT jid, node, form, created FROM push WHERE user_id = "
	    USER_ID_SQL("?1", "?2") " ORDER BY created, jid, node "
	    "LIMIT 1000";
	sqlite3_stmt *s = store_sql(sql);
	int r;

	_Static_assert(PUSH_LIST_MAX == 1000, "LIMIT in the SQL");
	if (s == NULL)
		return STORE_ERROR;
	sqlite3_bind_text(s, 1, j->in.host, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, j->in.user, -1, SQLITE_STATIC);
	r = collect(j, s, "push list");
	store_sql_done(s);
	return r == -1 ? STORE_ERROR : STORE_OK;
}

static enum store_status
run_put(struct push_job *j)
{
	static const char sql_count[] =
	    "SELECT count(*), coalesce(sum(jid = ?2 AND node = ?3), 0) "
	    "FROM push WHERE user_id = ?1";
	static const char sql_put[] =
	    "INSERT INTO push (user_id, jid, node, form, created) "
	    "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (user_id, jid, node) "
	    "DO UPDATE SET form = excluded.form, created = excluded.created";
	sqlite3_int64 uid = store_user_id(j->in.user, j->in.host);
	sqlite3_stmt *s;

	if (uid < 0)
		return STORE_ERROR;
	if (uid == 0)
		return STORE_NOT_FOUND;
	if (j->max > 0) {
		int full;

		if ((s = store_sql(sql_count)) == NULL)
			return STORE_ERROR;
		sqlite3_bind_int64(s, 1, uid);
		sqlite3_bind_text(s, 2, j->in.jid, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, j->in.node, -1, SQLITE_STATIC);
		if (sqlite3_step(s) != SQLITE_ROW) {
			store_sql_warn("push count");
			store_sql_done(s);
			return STORE_ERROR;
		}
		full = sqlite3_column_int64(s, 0) >= (sqlite3_int64)j->max &&
		    sqlite3_column_int64(s, 1) == 0;
		store_sql_done(s);
		if (full)
			return STORE_EXISTS;
	}
	if ((s = store_sql(sql_put)) == NULL)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, uid);
	sqlite3_bind_text(s, 2, j->in.jid, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, j->in.node, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, j->in.form, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, j->in.created);
	return store_sql_write(s, "push put", STORE_ERROR);
}

static enum store_status
run_delete(struct push_job *j)
{
	static const char sql_sel[] =
	    "SELECT jid, node, form, created FROM push WHERE user_id = "
	    USER_ID_SQL("?1", "?2") " AND jid = ?3 AND (?4 IS NULL OR "
	    "node = ?4) ORDER BY created, jid, node";
	static const char sql_del[] =
	    "DELETE FROM push WHERE user_id = " USER_ID_SQL("?1", "?2")
	    " AND jid = ?3 AND (?4 IS NULL OR node = ?4)";
	sqlite3_stmt *s = store_sql(sql_sel);
	int r;

	if (s == NULL)
		return STORE_ERROR;
	sqlite3_bind_text(s, 1, j->in.host, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, j->in.user, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, j->in.jid, -1, SQLITE_STATIC);
	if (j->in.node != NULL)
		sqlite3_bind_text(s, 4, j->in.node, -1, SQLITE_STATIC);
	r = collect(j, s, "push delete");
	store_sql_done(s);
	if (r == -1)
		return STORE_ERROR;
	if (j->nrows == 0)
		return STORE_OK;
	if ((s = store_sql(sql_del)) == NULL)
		return STORE_ERROR;
	sqlite3_bind_text(s, 1, j->in.host, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, j->in.user, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, j->in.jid, -1, SQLITE_STATIC);
	if (j->in.node != NULL)
		sqlite3_bind_text(s, 4, j->in.node, -1, SQLITE_STATIC);
	return store_sql_write(s, "push delete", STORE_OK);
}

static enum store_status
run(struct store_job *sj)
{
	struct push_job *j = (struct push_job *)sj;

	switch (j->op) {
	case OP_LIST:
		return run_list(j);
	case OP_PUT:
		return run_put(j);
	case OP_DELETE:
		return run_delete(j);
	}
	return STORE_ERROR;
}

static void
complete(struct store_job *sj)
{
	struct push_job *j = (struct push_job *)sj;
	int ok = j->job.status != STORE_ERROR;

	if (j->op == OP_PUT) {
		if (j->done_cb != NULL)
			j->done_cb(j->job.owner, j->job.status);
	} else if (j->cb != NULL)
		j->cb(j->job.owner, j->job.status, ok ? j->rows : NULL,
		    ok ? j->nrows : 0);
}

static void
free_row(struct store_push *p)
{
	free((char *)p->host);
	free((char *)p->user);
	free((char *)p->jid);
	free((char *)p->node);
	free((char *)p->form);
}

static void
job_free(struct store_job *sj)
{
	struct push_job *j = (struct push_job *)sj;

	free_row(&j->in);
	for (size_t i = 0; i < j->nrows; i++)
		free_row(&j->rows[i]);
	free(j->rows);
	free(j);
}

static const struct store_job_ops read_ops = {
    "push read", 0, run, complete, job_free};
static const struct store_job_ops write_ops = {
    "push write", 1, run, complete, job_free};

static struct push_job *
job_new(enum push_op op, const char *host, const char *user, uint64_t owner)
{
	struct push_job *j = xcalloc(1, sizeof(*j));

	j->job.ops = op == OP_LIST ? &read_ops : &write_ops;
	j->job.owner = owner;
	j->op = op;
	j->in.host = xstrdup(host);
	j->in.user = xstrdup(user);
	return j;
}

void
store_push_list(const char *host, const char *user, store_push_cb cb,
    uint64_t owner)
{
	struct push_job *j = job_new(OP_LIST, host, user, owner);

	j->cb = cb;
	store_job_submit(&j->job);
}

void
store_push_put(const struct store_push *p, unsigned max,
    store_push_done_cb cb, uint64_t owner)
{
	struct push_job *j = job_new(OP_PUT, p->host, p->user, owner);

	j->in.jid = xstrdup(p->jid);
	j->in.node = xstrdup(p->node);
	j->in.form = xstrdup(p->form != NULL ? p->form : "");
	j->in.created = p->created;
	j->max = max;
	j->done_cb = cb;
	store_job_submit(&j->job);
}

void
store_push_delete(const char *host, const char *user, const char *jid,
    const char *node, store_push_cb cb, uint64_t owner)
{
	struct push_job *j = job_new(OP_DELETE, host, user, owner);

	j->in.jid = xstrdup(jid);
	j->in.node = dup_or_null(node);
	j->cb = cb;
	store_job_submit(&j->job);
}
