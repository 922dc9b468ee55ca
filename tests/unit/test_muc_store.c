/*
 * Unit tests for multi-user chat room storage (xmppd/store/muc_store.c,
 * store/muc.h) against a real SQLite store on the loop: save (created,
 * then replaced with its affiliations), load in chunks with the "more"
 * flag, per service, and delete.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "log.h"
#include "store/muc.h"
#include "store/store.h"
#include "unit.h"
#include "unit_loop.h"

#define OWNER 4545
#define SERVICE "conference.a.example"

static struct ev_loop *loop;
static pthread_t main_thread;
static char dir[64];
static char dbpath[128];
static int in_call, bad_context;
static uint64_t issued, completed;

/* What the completions saw. */
static enum store_status last_st;
static size_t loaded_n;
static int loaded_more;
static int64_t loaded_last;
static char first_node[64], first_name[64], first_subject[64];
static unsigned first_flags, first_allowpm, first_maxusers, first_hist;
static char affils[512];        /* "jid=aff," of the first room */

static void
check_context(uint64_t owner)
{
	if (in_call || !pthread_equal(pthread_self(), main_thread) ||
	    owner != OWNER)
		bad_context++;
	completed++;
}

static void
done_cb(uint64_t owner, uint64_t tag, enum store_status st)
{
	check_context(owner);
	last_st = st;
}

static void
rooms_cb(uint64_t owner, uint64_t tag, enum store_status st,
    const struct muc_room_row *rows, size_t n, int more)
{
	check_context(owner);
	last_st = st;
	loaded_n = n;
	loaded_more = more;
	loaded_last = n ? rows[n - 1].id : 0;
	first_node[0] = first_name[0] = first_subject[0] = affils[0] = '\0';
	if (n == 0)
		return;
	snprintf(first_node, sizeof(first_node), "%s", rows[0].node);
	snprintf(first_name, sizeof(first_name), "%s",
	    rows[0].name ? rows[0].name : "(null)");
	snprintf(first_subject, sizeof(first_subject), "%s",
	    rows[0].subject ? rows[0].subject : "(null)");
	first_flags = rows[0].flags;
	first_allowpm = rows[0].allowpm;
	first_maxusers = rows[0].maxusers;
	first_hist = rows[0].historylength;
	for (size_t i = 0; i < rows[0].naffils; i++) {
		size_t len = strlen(affils);

		snprintf(affils + len, sizeof(affils) - len, "%s=%d,",
		    rows[0].affils[i].jid, (int)rows[0].affils[i].affiliation);
	}
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
save(const struct muc_room_row *row)
{
	issued++;
	in_call = 1;
	muc_store_save(row, done_cb, OWNER, issued);
	in_call = 0;
}

static void
load(const char *service, int64_t after)
{
	issued++;
	in_call = 1;
	muc_store_load(service, after, rooms_cb, OWNER, issued);
	in_call = 0;
	CHECK(wait_all());
}

/* One room by node (muc_store_get). */
static void
get(const char *service, const char *node)
{
	issued++;
	in_call = 1;
	muc_store_get(service, node, rooms_cb, OWNER, issued);
	in_call = 0;
	CHECK(wait_all());
}

static void
delete(const char *node)
{
	issued++;
	in_call = 1;
	muc_store_delete(SERVICE, node, done_cb, OWNER, issued);
	in_call = 0;
	CHECK(wait_all());
}

static void
test_rooms(void)
{
	struct muc_affil_row a[] = {
		{ "owner@a.example", MUC_AFF_OWNER },
		{ "member@a.example", MUC_AFF_MEMBER },
		{ "spammer@b.example", MUC_AFF_OUTCAST },
	};
	struct muc_room_row row = { 0 };
	char node[32];

	row.service = SERVICE;
	row.node = "first";
	row.name = "The first";
	row.subject = "hello";
	row.subject_nick = "owner";
	row.flags = MUC_ROOM_PUBLIC | MUC_ROOM_MEMBERSONLY;
	row.allowpm = 2;
	row.maxusers = 50;
	row.historylength = 7;
	row.affils = a;
	row.naffils = 3;
	save(&row);
	/* 299 more, without affiliations: two chunks in all. */
	memset(&row, 0, sizeof(row));
	row.service = SERVICE;
	for (int i = 0; i < 299; i++) {
		snprintf(node, sizeof(node), "room%03d", i);
		row.node = node;
		save(&row);
	}
	row.service = "rooms.other.example";
	row.node = "elsewhere";
	save(&row);
	CHECK(wait_all());
	CHECK(last_st == STORE_OK);

	load(SERVICE, 0);
	CHECK(last_st == STORE_OK);
	CHECK(loaded_n == MUC_LOAD_CHUNK && loaded_more == 1);
	CHECK_STR(first_node, "first");
	CHECK_STR(first_name, "The first");
	CHECK_STR(first_subject, "hello");
	CHECK(first_flags == (MUC_ROOM_PUBLIC | MUC_ROOM_MEMBERSONLY));
	CHECK(first_allowpm == 2 && first_maxusers == 50 && first_hist == 7);
	CHECK_STR(affils, "member@a.example=2,owner@a.example=4,"
	    "spammer@b.example=0,");
	load(SERVICE, loaded_last);
	CHECK(loaded_n == 300 - MUC_LOAD_CHUNK && loaded_more == 0);
	load(SERVICE, loaded_last);
	CHECK(loaded_n == 0 && loaded_more == 0);
	load("rooms.other.example", 0);
	CHECK(loaded_n == 1);
	CHECK_STR(first_node, "elsewhere");
	CHECK_STR(first_name, "(null)");

	/* One room read back by its node, of its service only. */
	get(SERVICE, "first");
	CHECK(last_st == STORE_OK && loaded_n == 1 && loaded_more == 0);
	CHECK_STR(first_name, "The first");
	CHECK_STR(affils, "member@a.example=2,owner@a.example=4,"
	    "spammer@b.example=0,");
	get(SERVICE, "elsewhere");
	CHECK(last_st == STORE_OK && loaded_n == 0);
	get(SERVICE, "nosuchroom");
	CHECK(last_st == STORE_OK && loaded_n == 0);

	/* Saved again: the configuration and affiliations replaced. */
	memset(&row, 0, sizeof(row));
	row.service = SERVICE;
	row.node = "first";
	row.name = "Renamed";
	row.affils = a + 1;
	row.naffils = 1;
	save(&row);
	CHECK(wait_all());
	load(SERVICE, 0);
	CHECK_STR(first_node, "first");
	CHECK_STR(first_name, "Renamed");
	CHECK_STR(first_subject, "(null)");
	CHECK(first_flags == 0 && first_maxusers == 0);
	CHECK_STR(affils, "member@a.example=2,");

	delete("first");
	CHECK(last_st == STORE_OK);
	delete("first");
	CHECK(last_st == STORE_NOT_FOUND);
	load(SERVICE, 0);
	CHECK_STR(first_node, "room000");
	CHECK(loaded_n == MUC_LOAD_CHUNK);
}

int
main(void)
{
	char err[512];
	char cmd[128];

	log_init("test_muc_store", 1, LOG_LVL_WARN);
	main_thread = pthread_self();
	loop = ev_default_loop(0);
	snprintf(dir, sizeof(dir), "/tmp/test_muc_store.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(dbpath, sizeof(dbpath), "%s/xmppd.db", dir);
	err[0] = '\0';
	CHECK(store_open(loop, dbpath, 0, err, sizeof(err)) == 0);
	if (err[0] != '\0')
		fprintf(stderr, "store_open: %s\n", err);
	test_rooms();
	CHECK(!unit_loop_timed_out);
	CHECK(bad_context == 0);
	CHECK(completed == issued);
	store_close();
	ev_loop_destroy(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return UNIT_DONE("muc_store");
}
