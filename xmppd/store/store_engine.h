/*
 * Extending the store: how a subsystem file (store_roster.c, mod_*.c, ...)
 * adds its own asynchronous requests without touching store_sqlite.c.
 *
 * A job is a struct the caller allocates with struct store_job as its
 * first member, filled with arguments, and handed to store_job_submit()
 * on the loop thread.  The storage thread calls ops->run() inside the
 * batch transaction (inside its own SAVEPOINT when ops->writes), where it
 * may use store_sql() and the sqlite3 API and fill result fields of the
 * job; it returns the status.  The loop thread then calls ops->complete()
 * with job->status set (STORE_ERROR if the transaction was lost: ignore
 * results then) and afterwards ops->free().  A job submitted while the
 * store is closed is freed without completion.  The same rules as store.h
 * hold: complete never runs before submit returns; pass ids, not pointers.
 *
 * Tables of a user reference users(id) ON DELETE CASCADE; the expression
 * USER_ID_SQL(h, u) selects the id from host and user parameters.
 */
#ifndef XMPPD_STORE_ENGINE_H
#define XMPPD_STORE_ENGINE_H

#include <sqlite3.h>

#include "store/store.h"

struct store_job;

struct store_job_ops {
	const char *name;        /* for logs */
	int writes;              /* modifies the database */
	enum store_status (*run)(struct store_job *j);     /* storage thread */
	void (*complete)(struct store_job *j);             /* loop thread */
	void (*free)(struct store_job *j);                 /* loop thread */
};

struct store_job {
	const struct store_job_ops *ops;
	enum store_status status;
	uint64_t owner, tag;
};

#define USER_ID_SQL(h, u) \
	"(SELECT id FROM users WHERE host = " h " AND user = " u ")"

/* Loop thread: queue a job. */
void store_job_submit(struct store_job *j);

/*
 * Storage thread: the prepared statement for sql, cached by the address of
 * the string (pass a string literal or another string that lives as long as
 * the program).  It comes reset with no bindings; call store_sql_done()
 * when finished with it.  NULL (logged) if it cannot be prepared.
 */
sqlite3_stmt *store_sql(const char *sql);
void store_sql_done(sqlite3_stmt *s);
/* Step a write: STORE_OK if a row changed, else not_changed; resets s. */
enum store_status store_sql_write(sqlite3_stmt *s, const char *what,
    enum store_status not_changed);
/* Log the connection's last error for what. */
void store_sql_warn(const char *what);
/* The database handle (storage thread only), e.g. for sqlite3_changes. */
sqlite3 *store_db(void);
/* The id of account user@host: > 0, 0 if there is none, -1 on error
 * (logged). */
sqlite3_int64 store_user_id(const char *user, const char *host);

#endif
