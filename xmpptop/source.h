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

/*
 * The link listings, polled by name while their panel shows: the
 * external components ("components", XEP-0114) and the server-to-server
 * streams ("s2s").  Each keeps the cells of the columns
 * source_list_columns names, in that order, whatever order the daemon
 * sends them in ("" for a column it lacks).
 */
enum top_list_kind { TOP_LIST_COMPONENTS, TOP_LIST_S2S, NTOP_LISTS };
#define TOP_LIST_MAXCOLS 12

struct top_list {
	double every;           /* polled every N seconds while > 0 */
	int state;              /* 0 not yet, 1 listed, -1 failed */
	char err[256];
	char **cells;           /* nrows * ncols strings, owned */
	size_t nrows, ncols;
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

	struct top_list lists[NTOP_LISTS];

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

/* The command of list l and the names of the columns kept (n of them). */
const char *source_list_command(enum top_list_kind l);
const char *const *source_list_columns(enum top_list_kind l, size_t *n);
/* Poll list l every `every` seconds (0: stop). */
void source_watch_list(struct top_source *s, enum top_list_kind l, double every);
/* 1 while an answer for list l is outstanding. */
int source_list_pending(const struct top_source *s, enum top_list_kind l);

/* Current idle seconds of a session. */
double source_idle(const struct top_session *t, double now);
/* Sessions as an array (caller frees the array, not the sessions). */
struct top_session **source_sessions(const struct top_source *s, size_t *n);
/* Event i, 0 the oldest of the nevents kept. */
const char *source_event(const struct top_source *s, size_t i);

#endif
