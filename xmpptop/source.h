/*
 * xmpptop's data source: a non-blocking client of xmppd's control socket
 * (shared/ctl.h) and the model it feeds — sessions by id, counters, the
 * tail of log events.  No curses here; the panels (ui.c) and batch mode
 * (xmpptop.c) only read the model and call source_* to act.
 */
#ifndef XMPPTOP_SOURCE_H
#define XMPPTOP_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* One session as the daemon describes it; strings owned, never NULL. */
struct top_session {
	char *sid, *jid, *ip, *tls, *cipher, *client, *show, *status;
	char *since;            /* as received (epoch seconds or text) */
	int priority;
	double idle_base;       /* idle seconds when last heard of ... */
	double idle_at;         /* ... at this monotonic time */
	unsigned long long stanzas_in, stanzas_out;
	char *sm;               /* XEP-0198: off, on, resumable, waiting */
	unsigned long sm_unacked;
	char *csi;              /* XEP-0352: active, inactive */
	char *auth;             /* how it authenticated */
	unsigned gen;           /* listing generation that last saw it */
};

/* The counters event, or what "status" can tell when there are none. */
struct top_counters {
	int valid;              /* at least one counters event or status */
	int from_events;        /* fed by "* event counters" */
	double uptime;
	long sessions, users;
	double logins_per_min, in_per_s, out_per_s, bytes_in_per_s,
	    bytes_out_per_s;
	long offline_queue, rss_kb, store_queue;
	double commit_ms;
};

#define TOP_EVENTS_MAX 500

/* A group chat room ("rooms"); strings owned, never NULL. */
struct top_room {
	char *jid, *name;
	long occupants, sessions, per_min;
	int persistent, publicroom, membersonly;
};

/* An occupant of the selected room ("room-show"). */
struct top_occupant {
	char *nick, *role, *affiliation, *jid;
	long sessions;
};

/* An external component ("components", XEP-0114); strings owned. */
struct top_component {
	char *domain, *address, *since;
	unsigned long long stanzas_in, stanzas_out;
};

/* Samples of the rooms' total messages per minute kept, one per
 * listing. */
#define TOP_RATE_SAMPLES 120

enum top_state {
	TOP_DISCONNECTED,       /* retrying every second */
	TOP_GREETING,           /* connected, waiting for "xmppd-ctl 2" */
	TOP_READY,              /* hello sent, requests flowing */
};

struct top_source {
	const char *path;
	int fd;
	enum top_state state;
	char status[256];       /* why disconnected, or the last action */
	int connect_errno;      /* of the last failed connect(), else 0 */
	char daemon_version[64];
	double next_retry;      /* monotonic seconds */

	/* Model. */
	struct strmap *sessions;        /* sid -> struct top_session */
	unsigned gen;
	int listed;             /* a full "sessions" listing has arrived */
	unsigned changes;       /* bumped on every model change */
	struct top_counters counters;
	char *events[TOP_EVENTS_MAX];   /* ring of "HH:MM:SS LEVEL TEXT" */
	size_t nevents, event_head;

	/* Capabilities learnt from the daemon's answers. */
	int subscribed;         /* 1 ok, -1 refused (then we poll) */
	int can_kick;           /* 0 unknown, 1 yes, -1 unknown-command */

	/* Detail request ("roster show JID"): generic cols/rows. */
	char *detail_jid;
	int detail_state;       /* 0 none, 1 waiting, 2 done, -1 failed */
	char detail_err[256];
	char **detail_cols;
	size_t ndetail_cols;
	char **detail_rows;     /* ndetail_rows * ndetail_cols strings */
	size_t ndetail_rows;

	double refresh_every;   /* re-list sessions every N s (0: never) */

	/* Rooms, polled every second while rooms_every > 0. */
	double rooms_every;
	int rooms_state;        /* 0 not yet, 1 listed, -1 failed */
	char rooms_err[256];
	struct top_room *rooms;
	size_t nrooms;
	char *room_selected;    /* whose occupants to list, or NULL */
	struct top_occupant *occupants;
	size_t noccupants;
	int occupants_state;    /* 0 not yet, 1 listed, -1 failed */
	double rate[TOP_RATE_SAMPLES];  /* total messages/min, oldest
	                                   first */
	size_t nrate;

	/* Components, polled every components_every seconds while > 0. */
	double components_every;
	int components_state;   /* 0 not yet, 1 listed, -1 failed */
	char components_err[256];
	struct top_component *components;
	size_t ncomponents;

	/* Private: connection and outstanding requests. */
	void *priv;
};

void source_init(struct top_source *s, const char *path);
void source_free(struct top_source *s);
/* File descriptor to poll for input, or -1 while disconnected. */
int source_fd(const struct top_source *s);
/* Read what is available and apply it; call when source_fd is readable. */
void source_read(struct top_source *s);
/* Timers: reconnect, polling when the daemon has no events.  now is
 * monotonic seconds (source_now). */
void source_tick(struct top_source *s, double now);
/* Seconds until source_tick wants to run again (>= 0). */
double source_timeout(const struct top_source *s, double now);
double source_now(void);

/* Ask for a fresh "sessions" listing (idle times, stanza counts). */
void source_refresh(struct top_source *s);
/* 1 while a "sessions" listing is outstanding. */
int source_listing(const struct top_source *s);
/* Kick a full JID; the answer lands in s->status. */
void source_kick(struct top_source *s, const char *jid, const char *reason);
/* Disable the account of a bare JID (its sessions close, its logins are
 * refused; reason is kept for the administrators); as source_kick. */
void source_disable(struct top_source *s, const char *jid,
    const char *reason);
/* Ask for JID's roster ("roster-show JID", into detail_*). */
void source_roster(struct top_source *s, const char *jid);

/* Poll "rooms" every `every` seconds (0: stop), and "room-show" for
 * room (NULL: none) after each listing. */
void source_watch_rooms(struct top_source *s, double every,
    const char *room);
/* 1 while a "rooms" or "room-show" answer is outstanding. */
int source_rooms_pending(const struct top_source *s);

/* Poll "components" every `every` seconds (0: stop). */
void source_watch_components(struct top_source *s, double every);
/* 1 while a "components" answer is outstanding. */
int source_components_pending(const struct top_source *s);

/* Current idle seconds of a session. */
double source_idle(const struct top_session *t, double now);
/* Sessions as an array (caller frees the array, not the sessions). */
struct top_session **source_sessions(const struct top_source *s, size_t *n);
/* Event i, 0 the oldest of the nevents kept. */
const char *source_event(const struct top_source *s, size_t i);

#endif
