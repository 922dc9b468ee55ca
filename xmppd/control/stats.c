/*
 * Server-wide counters and per-second rates for the control plane
 * (stats.h).  Totals only grow; the rates are differences between two
 * ticks one second apart; logins per minute keep a ring of 60 totals.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "net/conn.h"
#include "log.h"
#include "mono.h"
#include "core/sm.h"
#include "control/stats.h"
#include "store/store.h"
#include "store/store_engine.h"
#include "xmalloc.h"
#include "xmppd.h"

#define STATS_RING 60
#define OFFLINE_RESYNC_TICKS 60

static struct {
	uint64_t logins, auth_failures, kicks;
	atomic_llong offline;
	int offline_syncing;           /* a count job is queued */
	unsigned ticks;
	uint64_t login_ring[STATS_RING];  /* login totals, one per tick */
	double last_tick;
	uint64_t in, out, bytes_in, bytes_out;   /* at the last tick */
	struct stats_snapshot snap;
} stats;

void
stats_count_login(void)
{
	stats.logins++;
}

void
stats_count_auth_failure(void)
{
	stats.auth_failures++;
}

void
stats_count_kick(void)
{
	stats.kicks++;
}

void
stats_offline_changed(long long delta)
{
	atomic_fetch_add(&stats.offline, delta);
}

/* The offline count from storage: a job counting the rows. */
struct count_job {
	struct store_job job;
	long long n;
};

static enum store_status
run_count(struct store_job *job)
{
	struct count_job *j = (struct count_job *)job;
	sqlite3_stmt *s;
	static const char sql[] = "SELECT count(*) FROM offline";

	if ((s = store_sql(sql)) == NULL)
		return STORE_ERROR;
	if (sqlite3_step(s) == SQLITE_ROW)
		j->n = sqlite3_column_int64(s, 0);
	store_sql_done(s);
	/* Runs in order with the inserts and deletes: exact at this point. */
	atomic_store(&stats.offline, j->n);
	return STORE_OK;
}

static void
complete_count(struct store_job *job)
{
	stats.offline_syncing = 0;
}

static void
free_count(struct store_job *job)
{
	stats.offline_syncing = 0;
	free(job);
}

static const struct store_job_ops count_ops = {
	.name = "offline count",
	.writes = 0,
	.run = run_count,
	.complete = complete_count,
	.free = free_count,
};

static void
offline_resync(void)
{
	struct count_job *j;

	if (stats.offline_syncing)
		return;
	j = xcalloc(1, sizeof(*j));
	j->job.ops = &count_ops;
	stats.offline_syncing = 1;
	store_job_submit(&j->job);
}

long long
stats_get_offline_queue(void)
{
	long long n = atomic_load(&stats.offline);

	return n < 0 ? 0 : n;
}

long
stats_rss_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	char line[128], *p, *end;
	unsigned long resident;
	long page = sysconf(_SC_PAGESIZE);

	if (f == NULL)
		return 0;
	/* "size resident shared ..." in pages (proc(5)). */
	p = fgets(line, sizeof(line), f);
	fclose(f);
	if (p == NULL || page <= 0)
		return 0;
	errno = 0;
	(void)strtoul(p, &end, 10);             /* size */
	if (end == p || errno != 0)
		return 0;
	p = end;
	resident = strtoul(p, &end, 10);
	if (end == p || errno != 0)
		return 0;
	return (long)(resident * (unsigned long)page / 1024);
}

void
stats_tick(void)
{
	struct stats_snapshot *s = &stats.snap;
	struct conn_stats cs;
	double now = mono_now(xmppd_loop), dt;
	uint64_t in, out;
	unsigned slot;

	if (stats.ticks % OFFLINE_RESYNC_TICKS == 0)
		offline_resync();
	conn_get_stats(&cs);
	sm_stanza_totals(&in, &out);
	dt = stats.last_tick > 0 ? now - stats.last_tick : 0;
	if (dt > 0) {
		s->stanzas_in_per_s = (double)(in - stats.in) / dt;
		s->stanzas_out_per_s = (double)(out - stats.out) / dt;
		s->bytes_in_per_s = (double)(cs.bytes_in - stats.bytes_in) / dt;
		s->bytes_out_per_s = (double)(cs.bytes_out - stats.bytes_out) /
		    dt;
	}
	stats.in = in;
	stats.out = out;
	stats.bytes_in = cs.bytes_in;
	stats.bytes_out = cs.bytes_out;
	stats.last_tick = now;
	/* The ring holds the login total of each of the last 60 ticks; the
	 * slot about to be overwritten is the total of 60 ticks ago. */
	slot = stats.ticks % STATS_RING;
	s->logins_per_min = (unsigned)(stats.logins - stats.login_ring[slot]);
	stats.login_ring[slot] = stats.logins;
	stats.ticks++;
	s->rss_kb = stats_rss_kb();
}

void
stats_get(struct stats_snapshot *out)
{
	struct store_stats st;
	struct conn_stats cs;

	*out = stats.snap;
	store_get_stats(&st);
	conn_get_stats(&cs);
	out->uptime = mono_now(xmppd_loop) - xmppd_started;
	out->sessions = sm_session_count();
	out->users = sm_user_count();
	out->offline_queue = atomic_load(&stats.offline);
	if (out->offline_queue < 0)
		out->offline_queue = 0;
	if (out->rss_kb == 0)
		out->rss_kb = stats_rss_kb();
	out->store_queue = st.queue_depth;
	out->commit_ms = st.last_commit_ms;
	out->store_commits = st.commits;
	out->logins = stats.logins;
	out->auth_failures = stats.auth_failures;
	out->kicks = stats.kicks;
	sm_stanza_totals(&out->stanzas_in, &out->stanzas_out);
	out->bytes_in = cs.bytes_in;
	out->bytes_out = cs.bytes_out;
}
