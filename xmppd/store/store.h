/*
 * Asynchronous storage interface.  Every module reaches the database only
 * through these calls.  The SQLite backend (store_sqlite.c) runs one storage
 * thread that owns the connection and serves a FIFO of requests, committing
 * writes that arrive together in one transaction (group commit); completions
 * come back to the loop thread through a queue plus ev_async.
 *
 * Contract for every asynchronous call:
 *  - string arguments are copied; the caller keeps ownership of its own;
 *  - the callback runs on the loop thread, never before the call returns;
 *  - owner is an id (usually a session id) handed back untouched so the
 *    callback can look its owner up and drop the result if it is gone;
 *    tag is a second opaque integer for the caller;
 *  - a write's callback runs only after its transaction has committed;
 *  - result pointers passed to callbacks are valid only during the call.
 */
#ifndef XMPPD_STORE_H
#define XMPPD_STORE_H

#include <stdint.h>
#include <stddef.h>

#include <ev.h>

#include "scram.h"

enum store_status {
	STORE_OK = 0,
	STORE_NOT_FOUND,
	STORE_EXISTS,
	STORE_ERROR,      /* database error; logged by the store */
};

const char *store_status_str(enum store_status st);

struct store_user {
	const char *user;       /* prepared localpart */
	const char *host;       /* prepared domain */
	struct scram_keys sha1;
	struct scram_keys sha256;
	int64_t created;        /* unix seconds */
	/* Disabled by an administrator (xmppctl disable): since when, in
	 * unix seconds, 0 if the account is enabled; and why ("" if no
	 * reason was given; NULL while enabled).  Read by store_user_get
	 * and store_user_list; create and set_keys ignore both. */
	int64_t disabled;
	const char *disabled_reason;
};

/*
 * Open (creating it if the file does not exist, logging that it did) and
 * migrate the database, then start the storage thread.  An existing file
 * that is not a valid database, fails the integrity check, or has a newer
 * schema than this build knows makes it return -1 with a message in err
 * (never replaced by an empty one).  Called once at start-up, before the
 * loop runs; synchronous.
 */
int store_open(struct ev_loop *loop, const char *path, int synchronous_full,
    char *err, size_t errlen);
/* How long a transaction waits for another process's write lock before
 * its requests fail (STORE_BUSY_TIMEOUT_MS, 5000, by default); takes
 * effect at the next store_open().  The unit tests shorten it. */
void store_set_busy_timeout(int ms);
/* Loop thread: when more than high requests (0: no limit) wait for
 * storage, cb(1); when half of them are done, cb(0). */
void store_set_backlog_limit(size_t high, void (*cb)(int congested));
/* Stop accepting requests, finish the queue, run pending completions,
 * stop the thread and close the database.  Synchronous. */
void store_close(void);

/* Statistics for status/top and the metrics.  Commit latency is the
 * time of the COMMIT statement, measured on the storage thread; the
 * histogram counts commits by the first bound of store_commit_bounds_ms
 * they do not exceed (one count each, not cumulative), the last slot
 * those above every bound. */
#define STORE_COMMIT_BUCKETS 12
extern const double store_commit_bounds_ms[STORE_COMMIT_BUCKETS];
struct store_stats {
	size_t queue_depth;          /* requests waiting */
	uint64_t requests;           /* served since start */
	uint64_t commits;
	double last_commit_ms;       /* latency of the last commit */
	double commit_ms_sum;        /* of every commit since start */
	uint64_t commit_hist[STORE_COMMIT_BUCKETS + 1];
};
void store_get_stats(struct store_stats *st);

/* Users. */
typedef void (*store_user_cb)(uint64_t owner, uint64_t tag,
    enum store_status st, const struct store_user *u);
typedef void (*store_status_cb)(uint64_t owner, uint64_t tag,
    enum store_status st);
/* Called once per user, then once with u == NULL at the end (st is
 * STORE_OK, or STORE_ERROR if the listing failed part-way). */
typedef void (*store_user_list_cb)(uint64_t owner, uint64_t tag,
    enum store_status st, const struct store_user *u);

/* Fetch a user's credentials: STORE_OK or STORE_NOT_FOUND. */
void store_user_get(const char *user, const char *host, store_user_cb cb,
    uint64_t owner, uint64_t tag);
/* Create: STORE_OK or STORE_EXISTS. */
void store_user_create(const struct store_user *u, store_status_cb cb,
    uint64_t owner, uint64_t tag);
/* Replace both key sets: STORE_OK or STORE_NOT_FOUND. */
void store_user_set_keys(const struct store_user *u, store_status_cb cb,
    uint64_t owner, uint64_t tag);
/* Disable the account (disabled: unix seconds, the time it happened,
 * with reason, NULL for none) or enable it (disabled 0, reason NULL):
 * STORE_OK or STORE_NOT_FOUND.  Logins of a disabled account fail with
 * <account-disabled/> (stream/sasl.c); its keys and data are kept. */
void store_user_set_disabled(const char *user, const char *host,
    int64_t disabled, const char *reason, store_status_cb cb, uint64_t owner,
    uint64_t tag);
/* Delete the user and everything stored for them (later: roster,
 * offline, archive, via ON DELETE CASCADE): STORE_OK or STORE_NOT_FOUND. */
void store_user_delete(const char *user, const char *host,
    store_status_cb cb, uint64_t owner, uint64_t tag);
/* List users of host (NULL: all hosts), ordered by host then user. */
void store_user_list(const char *host, store_user_list_cb cb, uint64_t owner,
    uint64_t tag);

#endif
