/*
 * Server-wide counters for the control plane (xmppctl stats, the counters
 * event that feeds xmpptop): totals kept by one-line calls from the
 * subsystems that see the events, and rates over the last second computed
 * by stats_tick().
 */
#ifndef XMPPD_STATS_H
#define XMPPD_STATS_H

#include <stddef.h>
#include <stdint.h>

struct stats_snapshot {
	double uptime;                 /* seconds */
	size_t sessions, users;        /* bound sessions, distinct users */
	unsigned logins_per_min;       /* binds in the last 60 s */
	double stanzas_in_per_s, stanzas_out_per_s;
	double bytes_in_per_s, bytes_out_per_s;
	long long offline_queue;       /* messages stored offline */
	long rss_kb;                   /* resident set size */
	size_t store_queue;            /* storage requests waiting */
	double commit_ms;              /* latency of the last commit */
	uint64_t logins, auth_failures, kicks;
	uint64_t stanzas_in, stanzas_out, bytes_in, bytes_out;
	uint64_t store_commits;
};

/* Loop thread: a session was bound, an authentication failed, a session
 * was closed by an administrator. */
void stats_count_login(void);
void stats_count_auth_failure(void);
void stats_count_kick(void);
/* Any thread: messages were added to (positive) or removed from the
 * offline store.  The count is resynchronised from storage every minute
 * (account deletions remove messages without telling anyone). */
void stats_offline_changed(long long delta);

/* Loop thread, once a second: take the totals, compute the rates. */
void stats_tick(void);
/* The state at the last tick, with current gauges. */
void stats_get(struct stats_snapshot *out);
/* Messages stored offline (the counter of stats_offline_changed). */
long long stats_get_offline_queue(void);
/* The resident set size in KiB, or 0 if unknown. */
long stats_rss_kb(void);

#endif
