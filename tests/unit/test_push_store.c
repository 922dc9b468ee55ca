/*
 * Unit tests for XEP-0357 push registrations (xmppd/store/push_store.c,
 * store/push.h) against a real SQLite store on the loop: adding and
 * replacing (same jid and node), the limit per account (a replacement
 * always fits), listing in order, deleting one node or every node of a
 * JID, an unknown account, and the rows going with the account.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "log.h"
#include "store/push.h"
#include "store/store.h"
#include "unit.h"
#include "unit_loop.h"

#define OWNER 5757
#define HOST "a.example"

static struct ev_loop *loop;
static pthread_t main_thread;
static int in_call, bad_context;
static uint64_t issued, completed;

static enum store_status last_st;
static size_t last_n;
static char rows[1024]; /* "jid node form created;" of the rows seen */

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

static void
wait_all(void)
{
	CHECK(unit_run_until(loop, all_done));
}

static void
rows_cb(uint64_t owner, enum store_status st, const struct store_push *p,
    size_t n)
{
	check_context(owner);
	last_st = st;
	last_n = n;
	rows[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(rows);

		snprintf(rows + len, sizeof(rows) - len, "%s@%s %s %s %s %lld;",
		    p[i].user, p[i].host, p[i].jid, p[i].node, p[i].form,
		    (long long)p[i].created);
	}
}

static void
done_cb(uint64_t owner, enum store_status st)
{
	check_context(owner);
	last_st = st;
}

static void
status_cb(uint64_t owner, uint64_t tag, enum store_status st)
{
	(void)tag;
	done_cb(owner, st);
}

static enum store_status
put(const char *user, const char *jid, const char *node, const char *form,
    int64_t created, unsigned max)
{
	struct store_push p = {HOST, user, jid, node, form, created};

	issued++;
	in_call = 1;
	store_push_put(&p, max, done_cb, OWNER);
	in_call = 0;
	wait_all();
	return last_st;
}

static void
list(const char *user)
{
	issued++;
	in_call = 1;
	store_push_list(HOST, user, rows_cb, OWNER);
	in_call = 0;
	wait_all();
	CHECK(last_st == STORE_OK);
}

static void
del(const char *user, const char *jid, const char *node)
{
	issued++;
	in_call = 1;
	store_push_delete(HOST, user, jid, node, rows_cb, OWNER);
	in_call = 0;
	wait_all();
	CHECK(last_st == STORE_OK);
}

static void
user(const char *name, int create)
{
	struct store_user u = {0};

	u.user = name;
	u.host = HOST;
	u.created = 1700000000;
	u.sha1.hash = SCRAM_SHA1;
	u.sha256.hash = SCRAM_SHA256;
	issued++;
	in_call = 1;
	if (create)
		store_user_create(&u, status_cb, OWNER, 0);
	else
		store_user_delete(name, HOST, status_cb, OWNER, 0);
	in_call = 0;
	wait_all();
	CHECK(last_st == STORE_OK);
}

static void
test_put_and_limit(void)
{
	CHECK(put("nobody", "p.example", "n", "", 1, 0) == STORE_NOT_FOUND);
	CHECK(put("alice", "p.example", "n1", "<x/>", 10, 2) == STORE_OK);
	CHECK(put("alice", "q.example", "n1", "", 11, 2) == STORE_OK);
	/* Full: a third is refused, a replacement fits. */
	CHECK(put("alice", "p.example", "n2", "", 12, 2) == STORE_EXISTS);
	CHECK(put("alice", "p.example", "n1", "<y/>", 13, 2) == STORE_OK);
	/* No limit. */
	CHECK(put("alice", "p.example", "n2", "", 14, 0) == STORE_OK);
	CHECK(put("bob", "p.example", "n1", "", 15, 1) == STORE_OK);
	list("alice");
	CHECK(last_n == 3);
	CHECK_STR(rows, "alice@a.example q.example n1  11;"
	                "alice@a.example p.example n1 <y/> 13;"
	                "alice@a.example p.example n2  14;");
	list("nobody");
	CHECK(last_n == 0);
}

static void
test_delete(void)
{
	del("alice", "p.example", "n2");
	CHECK(last_n == 1);
	CHECK_STR(rows, "alice@a.example p.example n2  14;");
	del("alice", "p.example", "n2");
	CHECK(last_n == 0);
	CHECK(put("alice", "p.example", "n3", "", 16, 0) == STORE_OK);
	/* Every node of a JID. */
	del("alice", "p.example", NULL);
	CHECK(last_n == 2);
	CHECK_STR(rows, "alice@a.example p.example n1 <y/> 13;"
	                "alice@a.example p.example n3  16;");
	list("alice");
	CHECK_STR(rows, "alice@a.example q.example n1  11;");
	/* Bob's untouched; gone with his account. */
	list("bob");
	CHECK(last_n == 1);
	user("bob", 0);
	user("bob", 1);
	list("bob");
	CHECK(last_n == 0);
}

int
main(void)
{
	char dir[64], dbpath[128], err[512], cmd[128];

	log_init("test_push_store", 1, LOG_LVL_WARN);
	main_thread = pthread_self();
	loop = ev_default_loop(0);
	snprintf(dir, sizeof(dir), "/tmp/test_push_store.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(dbpath, sizeof(dbpath), "%s/xmppd.db", dir);
	err[0] = '\0';
	CHECK(store_open(loop, dbpath, 0, err, sizeof(err)) == 0);
	if (err[0] != '\0')
		fprintf(stderr, "store_open: %s\n", err);
	user("alice", 1);
	user("bob", 1);
	test_put_and_limit();
	test_delete();
	CHECK(!unit_loop_timed_out);
	CHECK(bad_context == 0);
	CHECK(completed == issued);
	store_close();
	ev_loop_destroy(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return UNIT_DONE("push_store");
}
