/*
 * Unit tests for XEP-0363 upload metadata (xmppd/store/upload_store.c,
 * store/upload.h) against a real SQLite store on the loop: reservations
 * checked against the per-user byte and daily quotas and the disk
 * budget (slots not yet used count), get, complete once, list, and the
 * deletions by account and by age.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "log.h"
#include "store/store.h"
#include "store/upload.h"
#include "unit.h"
#include "unit_loop.h"

#define OWNER 7373
#define NOW 1800000000

static struct ev_loop *loop;
static pthread_t main_thread;
static char dir[64];
static char dbpath[128];
static int in_call, bad_context;
static uint64_t issued, completed;

static enum store_status last_st;
static enum upload_reserve_result last_res;
static int64_t last_retry;
static size_t last_n;
static char tokens[512]; /* "token," of the rows seen */
static struct store_upload first;
static char first_name[64], first_type[64], first_user[64];

static void
check_context(uint64_t owner)
{
	if (in_call || !pthread_equal(pthread_self(), main_thread) ||
	    owner != OWNER)
		bad_context++;
	completed++;
}

static int
all_done(void)
{
	return completed >= issued;
}

static int
wait_all(void)
{
	return unit_run_until(loop, all_done);
}

static void
reserved_cb(uint64_t owner, enum store_status st,
    enum upload_reserve_result res, int64_t retry)
{
	check_context(owner);
	last_st = st;
	last_res = res;
	last_retry = retry;
}

static void
rows_cb(uint64_t owner, enum store_status st, const struct store_upload *u,
    size_t n)
{
	check_context(owner);
	last_st = st;
	last_n = n;
	tokens[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(tokens);

		snprintf(tokens + len, sizeof(tokens) - len, "%s,", u[i].token);
	}
	memset(&first, 0, sizeof(first));
	first_name[0] = first_type[0] = first_user[0] = '\0';
	if (n == 0)
		return;
	first = u[0];
	snprintf(first_name, sizeof(first_name), "%s", u[0].filename);
	snprintf(first_type, sizeof(first_type), "%s", u[0].content_type);
	snprintf(first_user, sizeof(first_user), "%s@%s", u[0].user, u[0].host);
}

static void
done_cb(uint64_t owner, enum store_status st)
{
	check_context(owner);
	last_st = st;
}

static enum upload_reserve_result
reserve(const char *token, const char *user, int64_t size, int64_t created,
    const struct store_upload_limits *lim)
{
	struct store_upload u = {0};

	u.token = token;
	u.host = "a.example";
	u.user = user;
	u.filename = "f.jpg";
	u.content_type = "image/jpeg";
	u.size = size;
	u.created = created;
	issued++;
	in_call = 1;
	store_upload_reserve(&u, lim, reserved_cb, OWNER);
	in_call = 0;
	CHECK(wait_all());
	CHECK(last_st == STORE_OK);
	return last_res;
}

static void
get(const char *token)
{
	issued++;
	in_call = 1;
	store_upload_get(token, rows_cb, OWNER);
	in_call = 0;
	CHECK(wait_all());
}

static void
list(const char *user)
{
	issued++;
	in_call = 1;
	store_upload_list("a.example", user, rows_cb, OWNER);
	in_call = 0;
	CHECK(wait_all());
}

static void
complete(const char *token)
{
	issued++;
	in_call = 1;
	store_upload_complete(token, NOW + 5, done_cb, OWNER);
	in_call = 0;
	CHECK(wait_all());
}

static void delete (const char *user, int64_t before, int64_t pending_before)
{
	issued++;
	in_call = 1;
	store_upload_delete(
	    "a.example", user, before, pending_before, rows_cb, OWNER);
	in_call = 0;
	CHECK(wait_all());
}

static void
test_quotas(void)
{
	struct store_upload_limits lim = {100, 3, 250};

	CHECK(reserve("t1", "alice", 60, NOW, &lim) == UPLOAD_RESERVED);
	/* 60 + 41 > 100: alice's bytes, though t1 is not uploaded yet. */
	CHECK(reserve("t2", "alice", 41, NOW, &lim) == UPLOAD_OVER_USER_BYTES);
	CHECK(reserve("t2", "alice", 40, NOW, &lim) == UPLOAD_RESERVED);
	CHECK(reserve("t3", "bob", 100, NOW, &lim) == UPLOAD_RESERVED);
	/* 200 + 51 > 250: the whole disk. */
	CHECK(reserve("t4", "carol", 51, NOW, &lim) == UPLOAD_OVER_DISK);
	CHECK(reserve("t4", "carol", 50, NOW, &lim) == UPLOAD_RESERVED);
	/* Three slots a day: the fourth waits for the oldest to age. */
	lim.disk_bytes = 0;
	CHECK(reserve("d1", "dave", 1, NOW - 3600, &lim) == UPLOAD_RESERVED);
	CHECK(reserve("d2", "dave", 1, NOW, &lim) == UPLOAD_RESERVED);
	CHECK(reserve("d3", "dave", 1, NOW, &lim) == UPLOAD_RESERVED);
	CHECK(reserve("d4", "dave", 1, NOW, &lim) == UPLOAD_OVER_FILES_PER_DAY);
	CHECK(last_retry == NOW - 3600 + 86400);
	/* A day later the first no longer counts. */
	CHECK(reserve("d4", "dave", 1, NOW - 3600 + 86401, &lim) ==
	      UPLOAD_RESERVED);
	/* No limits at all. */
	memset(&lim, 0, sizeof(lim));
	CHECK(reserve("e1", "erin", 1000000, NOW, &lim) == UPLOAD_RESERVED);
}

static void
test_rows(void)
{
	get("t1");
	CHECK(last_st == STORE_OK && last_n == 1);
	CHECK_STR(first_name, "f.jpg");
	CHECK_STR(first_type, "image/jpeg");
	CHECK_STR(first_user, "alice@a.example");
	CHECK(first.size == 60 && first.created == NOW && first.completed == 0);
	get("nope");
	CHECK(last_st == STORE_NOT_FOUND && last_n == 0);

	complete("t1");
	CHECK(last_st == STORE_OK);
	complete("t1");
	CHECK(last_st == STORE_EXISTS);
	complete("nope");
	CHECK(last_st == STORE_NOT_FOUND);
	get("t1");
	CHECK(first.completed == NOW + 5);

	list("alice");
	CHECK(last_st == STORE_OK && last_n == 2);
	CHECK_STR(tokens, "t1,t2,");
	list(NULL);
	CHECK(last_n == 9);
	CHECK_STR(tokens, "d1,d2,d3,e1,t1,t2,t3,t4,d4,");
}

static void
test_delete(void)
{
	/* An account's rows, passed back for their files. */
	delete ("alice", 0, 0);
	CHECK(last_st == STORE_OK && last_n == 2);
	CHECK_STR(tokens, "t1,t2,");
	list("alice");
	CHECK(last_n == 0);
	/* By age: created before NOW (d1), or pending and created before
	 * NOW + 1 (all the others but d4, which is later). */
	complete("t3");
	delete (NULL, NOW, NOW - 1);
	CHECK_STR(tokens, "d1,");
	delete (NULL, 0, NOW + 1);
	CHECK_STR(tokens, "d2,d3,e1,t4,");
	list(NULL);
	CHECK_STR(tokens, "t3,d4,");
}

int
main(void)
{
	char err[512];
	char cmd[128];

	log_init("test_upload_store", 1, LOG_LVL_WARN);
	main_thread = pthread_self();
	loop = ev_default_loop(0);
	snprintf(dir, sizeof(dir), "/tmp/test_upload_store.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(dbpath, sizeof(dbpath), "%s/xmppd.db", dir);
	err[0] = '\0';
	CHECK(store_open(loop, dbpath, 0, err, sizeof(err)) == 0);
	if (err[0] != '\0')
		fprintf(stderr, "store_open: %s\n", err);
	test_quotas();
	test_rows();
	test_delete();
	CHECK(!unit_loop_timed_out);
	CHECK(bad_context == 0);
	CHECK(completed == issued);
	store_close();
	ev_loop_destroy(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return UNIT_DONE("upload_store");
}
