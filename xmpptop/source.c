/*
 * The data source of xmpptop: connects to the control socket without
 * blocking the interface, subscribes to events, lists sessions and keeps
 * the model (sessions, counters, event tail) up to date from what the
 * daemon pushes.  Reconnects every second when the daemon goes away, and
 * falls back to polling "status" and "sessions" when it has no events.
 */
#include <errno.h>
#include <math.h>  /* isfinite */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "ctl.h"
#include "strmap.h"
#include "xmalloc.h"

#include "source.h"

#define RETRY_SECONDS 1.0
#define POLL_STATUS_SECONDS 1.0
#define POLL_SESSIONS_SECONDS 2.0

/* The columns of "sessions" this program knows, by name. */
enum col {
	COL_SID, COL_JID, COL_IP, COL_TLS, COL_CIPHER, COL_CLIENT, COL_SHOW,
	COL_STATUS, COL_PRIORITY, COL_SINCE, COL_IDLE, COL_IN, COL_OUT,
	COL_SM, COL_SM_UNACKED, COL_CSI, COL_AUTH, NCOLS
};
static const char *const col_names[NCOLS] = {
	"sid", "jid", "ip", "tls", "cipher", "client", "show", "status",
	"priority", "since", "idle", "stanzas_in", "stanzas_out", "sm",
	"sm_unacked", "csi", "auth",
};

/* The columns of "rooms" and "room-show" this program reads. */
enum room_col { RC_JID, RC_NAME, RC_OCCUPANTS, RC_SESSIONS, RC_PERSISTENT,
	RC_PUBLIC, RC_MEMBERSONLY, RC_RATE, NROOM_COLS };
static const char *const room_col_names[NROOM_COLS] = { "jid", "name",
	"occupants", "sessions", "persistent", "public", "members_only",
	"messages_per_min" };
enum occ_col { OC_KIND, OC_NAME, OC_ROLE, OC_AFF, OC_JID, OC_SESSIONS,
	NOCC_COLS };
static const char *const occ_col_names[NOCC_COLS] = { "kind", "name",
	"role", "affiliation", "jid", "sessions" };

/* The link listings (source.h): their commands and the columns kept. */
static const struct {
	const char *command;
	const char *cols[TOP_LIST_MAXCOLS];
} list_specs[NTOP_LISTS] = {
	[TOP_LIST_COMPONENTS] = { "components", { "domain", "address",
		"since", "stanzas_in", "stanzas_out" } },
	[TOP_LIST_S2S] = { "s2s", { "local", "remote", "direction", "state",
		"auth", "tls", "certificate", "queued", "since", "stanzas_in",
		"stanzas_out" } },
};

/* A link listing being received. */
struct list_conn {
	uint32_t id;
	int index[TOP_LIST_MAXCOLS];
	char **cells;
	size_t nrows;
	double next;
};

struct conn {
	struct ctl_reader rd;
	struct list_conn lists[NTOP_LISTS];
	uint32_t last_id;
	uint32_t subscribe_id, sessions_id, status_id, act_id, detail_id;
	uint32_t rooms_id, room_show_id;
	int room_index[NROOM_COLS], occ_index[NOCC_COLS];
	struct top_room *new_rooms;     /* the listing being received */
	size_t nnew_rooms;
	struct top_occupant *new_occ;
	size_t nnew_occ;
	double next_rooms;
	int col_index[NCOLS];   /* field index in a row, -1 if absent */
	enum ctl_type *detail_types;    /* of the detail listing's columns */
	const char *act_verb;   /* "kick" or "disable", while act_id */
	char *act_jid;
	double next_status, next_sessions;
};

double
source_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct conn *
conn_of(const struct top_source *s)
{
	return s->priv;
}

/* --- model --- */

static void
session_free(struct top_session *t)
{
	free(t->sid);
	free(t->jid);
	free(t->ip);
	free(t->tls);
	free(t->cipher);
	free(t->client);
	free(t->show);
	free(t->status);
	free(t->since);
	free(t->sm);
	free(t->csi);
	free(t->auth);
	free(t);
}

static void
set_str(char **dst, const char *s)
{
	if (*dst != NULL && strcmp(*dst, s) == 0)
		return;
	free(*dst);
	*dst = xstrdup(s);
}

static struct top_session *
session_get(struct top_source *s, const char *sid)
{
	struct top_session *t = strmap_get(s->sessions, sid);

	if (t != NULL)
		return t;
	t = xcalloc(1, sizeof(*t));
	t->sid = xstrdup(sid);
	t->jid = xstrdup("");
	t->ip = xstrdup("");
	t->tls = xstrdup("");
	t->cipher = xstrdup("");
	t->client = xstrdup("");
	t->show = xstrdup("-");
	t->status = xstrdup("");
	t->since = xstrdup("");
	t->sm = xstrdup("");
	t->csi = xstrdup("");
	t->auth = xstrdup("");
	t->idle_at = source_now();
	t->gen = s->gen;
	strmap_put(s->sessions, sid, t);
	return t;
}

static void
session_del(struct top_source *s, const char *sid)
{
	struct top_session *t = strmap_del(s->sessions, sid);

	if (t != NULL)
		session_free(t);
}

static void
free_one(const char *key, void *value, void *arg)
{
	session_free(value);
}

static void
clear_sessions(struct top_source *s)
{
	strmap_foreach(s->sessions, free_one, NULL);
	strmap_free(s->sessions);
	s->sessions = strmap_new();
}

struct sweep {
	unsigned gen;
	char **dead;
	size_t n;
};

static void
sweep_one(const char *key, void *value, void *arg)
{
	struct top_session *t = value;
	struct sweep *sw = arg;

	if (t->gen != sw->gen) {
		sw->dead = xreallocarray(sw->dead, sw->n + 1, sizeof(char *));
		sw->dead[sw->n++] = xstrdup(key);
	}
}

/* Drop the sessions a complete listing did not mention. */
static void
sweep_sessions(struct top_source *s)
{
	struct sweep sw = { s->gen, NULL, 0 };

	strmap_foreach(s->sessions, sweep_one, &sw);
	for (size_t i = 0; i < sw.n; i++) {
		session_del(s, sw.dead[i]);
		free(sw.dead[i]);
	}
	free(sw.dead);
}

static void
add_event(struct top_source *s, const char *level, const char *text)
{
	char stamp[16];
	time_t now = time(NULL);
	struct tm tm;
	size_t slot;

	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	slot = (s->event_head + s->nevents) % TOP_EVENTS_MAX;
	if (s->nevents == TOP_EVENTS_MAX) {
		free(s->events[s->event_head]);
		s->event_head = (s->event_head + 1) % TOP_EVENTS_MAX;
		s->nevents--;
	}
	s->events[slot] = xasprintf("%s %-5s %s", stamp, level, text);
	s->nevents++;
	s->changes++;
}

const char *
source_event(const struct top_source *s, size_t i)
{
	if (i >= s->nevents)
		return "";
	return s->events[(s->event_head + i) % TOP_EVENTS_MAX];
}

double
source_idle(const struct top_session *t, double now)
{
	double idle = t->idle_base + (now - t->idle_at);

	return idle < 0 ? 0 : idle;
}

struct collect {
	struct top_session **v;
	size_t n;
};

static void
collect_one(const char *key, void *value, void *arg)
{
	struct collect *c = arg;

	c->v[c->n++] = value;
}

struct top_session **
source_sessions(const struct top_source *s, size_t *n)
{
	struct collect c;

	c.v = xcalloc(strmap_count(s->sessions) + 1, sizeof(*c.v));
	c.n = 0;
	strmap_foreach(s->sessions, collect_one, &c);
	*n = c.n;
	return c.v;
}

static double
num(const char *s)
{
	char *end;
	double d = strtod(s, &end);

	return end == s || !isfinite(d) ? 0 : d;
}

/* The protocol version in the greeting: a decimal number, -1 if not. */
static long
parse_version(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0 || v < 0)
		return -1;
	return v;
}

/* --- rooms --- */

static void
rooms_free(struct top_room *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].jid);
		free(v[i].name);
	}
	free(v);
}

static void
occupants_free(struct top_occupant *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].nick);
		free(v[i].role);
		free(v[i].affiliation);
		free(v[i].jid);
	}
	free(v);
}

static const char *
field_at(const int *index, int col, char **f, size_t n)
{
	return index[col] >= 0 && (size_t)index[col] < n ? f[index[col]] :
	    "";
}

static void
index_cols(int *index, const char *const *names, int ncols, char **f,
    size_t n)
{
	for (size_t j = 0; j < n; j++)
		ctl_name_type(f[j]);
	for (int i = 0; i < ncols; i++) {
		index[i] = -1;
		for (size_t j = 0; j < n; j++)
			if (strcmp(f[j], names[i]) == 0)
				index[i] = (int)j;
	}
}

static void
cells_free(char **cells, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(cells[i]);
	free(cells);
}

static size_t
list_ncols(enum top_list_kind l)
{
	size_t n = 0;

	while (n < TOP_LIST_MAXCOLS && list_specs[l].cols[n] != NULL)
		n++;
	return n;
}

/* What is being received for every list is dropped. */
static void
lists_reset(struct conn *c)
{
	for (int l = 0; l < NTOP_LISTS; l++) {
		cells_free(c->lists[l].cells,
		    c->lists[l].nrows * list_ncols((enum top_list_kind)l));
		c->lists[l].cells = NULL;
		c->lists[l].nrows = 0;
		c->lists[l].id = 0;
	}
}

/* --- connection --- */

static void
disconnect(struct top_source *s, const char *why)
{
	struct conn *c = conn_of(s);

	if (s->fd != -1)
		close(s->fd);
	s->fd = -1;
	s->state = TOP_DISCONNECTED;
	snprintf(s->status, sizeof(s->status), "disconnected: %s", why);
	s->next_retry = source_now() + RETRY_SECONDS;
	ctl_reader_free(&c->rd);
	c->subscribe_id = c->sessions_id = c->status_id = c->act_id = 0;
	c->detail_id = c->rooms_id = c->room_show_id = 0;
	lists_reset(c);
	rooms_free(c->new_rooms, c->nnew_rooms);
	occupants_free(c->new_occ, c->nnew_occ);
	c->new_rooms = NULL;
	c->new_occ = NULL;
	c->nnew_rooms = c->nnew_occ = 0;
	if (s->detail_state == 1) {
		s->detail_state = -1;
		snprintf(s->detail_err, sizeof(s->detail_err), "disconnected");
	}
	s->subscribed = 0;
	s->counters.valid = 0;
	s->changes++;
}

/* Send one request; returns its id, or 0 if the connection failed. */
static uint32_t
request(struct top_source *s, const char *const *argv, size_t argc)
{
	struct conn *c = conn_of(s);
	struct buf out = BUF_INIT;
	struct ctl_line l;
	const char *p;
	size_t left;
	uint32_t id;

	if (s->state != TOP_READY)
		return 0;
	if (c->last_id == UINT32_MAX)
		c->last_id = 0;
	id = ++c->last_id;
	ctl_line_start(&l, &out);
	ctl_line_addf(&l, "%u", (unsigned)id);
	for (size_t i = 0; i < argc; i++)
		ctl_line_add(&l, argv[i]);
	if (ctl_line_end(&l) == -1) {
		buf_free(&out);
		return 0;
	}
	/* Requests are small and the daemon reads them promptly. */
	p = buf_head(&out);
	left = buf_avail(&out);
	while (left > 0) {
		ssize_t n = send(s->fd, p, left, MSG_NOSIGNAL);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			buf_free(&out);
			disconnect(s, strerror(errno));
			return 0;
		}
		p += n;
		left -= (size_t)n;
	}
	buf_free(&out);
	return id;
}

static void
try_connect(struct top_source *s)
{
	struct conn *c = conn_of(s);
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(s->path) >= sizeof(sun.sun_path)) {
		snprintf(s->status, sizeof(s->status),
		    "disconnected: socket path too long");
		s->next_retry = source_now() + RETRY_SECONDS;
		return;
	}
	memcpy(sun.sun_path, s->path, strlen(s->path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		s->connect_errno = errno;
		snprintf(s->status, sizeof(s->status), "disconnected: cannot "
		    "connect to %s: %s%s", s->path, strerror(errno),
		    ctl_connect_hint(errno));
		if (fd != -1)
			close(fd);
		s->next_retry = source_now() + RETRY_SECONDS;
		return;
	}
	s->connect_errno = 0;
	s->fd = fd;
	s->state = TOP_GREETING;
	ctl_reader_init(&c->rd, CTL_LINE_MAX);
	snprintf(s->status, sizeof(s->status), "connecting to %s", s->path);
}

static void
start_session(struct top_source *s)
{
	struct conn *c = conn_of(s);
	const char *sub[] = { "subscribe" };

	s->state = TOP_READY;
	snprintf(s->status, sizeof(s->status), "connected to %s", s->path);
	c->subscribe_id = request(s, sub, 1);
	source_refresh(s);
	s->changes++;
}

void
source_refresh(struct top_source *s)
{
	struct conn *c = conn_of(s);
	const char *argv[] = { "sessions" };

	if (s->state != TOP_READY || c->sessions_id != 0)
		return;
	c->sessions_id = request(s, argv, 1);
	c->next_sessions = source_now() +
	    (s->subscribed == -1 ? POLL_SESSIONS_SECONDS : s->refresh_every);
}

int
source_listing(const struct top_source *s)
{
	return conn_of(s)->sessions_id != 0;
}

static void
poll_status(struct top_source *s)
{
	struct conn *c = conn_of(s);
	const char *argv[] = { "status" };

	if (c->status_id != 0)
		return;
	c->status_id = request(s, argv, 1);
	c->next_status = source_now() + POLL_STATUS_SECONDS;
}

/* kick or disable ("ok [N] JID"): the answer lands in s->status. */
static void
act(struct top_source *s, const char *verb, const char *jid,
    const char *reason)
{
	struct conn *c = conn_of(s);
	const char *argv[] = { verb, jid, reason };

	if (s->state != TOP_READY) {
		snprintf(s->status, sizeof(s->status),
		    "cannot %s %s: not connected", verb, jid);
		return;
	}
	free(c->act_jid);
	c->act_jid = xstrdup(jid);
	c->act_verb = verb;
	c->act_id = request(s, argv, 3);
	snprintf(s->status, sizeof(s->status), "%s %s...", verb, jid);
}

void
source_kick(struct top_source *s, const char *jid, const char *reason)
{
	act(s, "kick", jid, reason);
}

void
source_disable(struct top_source *s, const char *jid, const char *reason)
{
	act(s, "disable", jid, reason);
}

static void
detail_clear(struct top_source *s)
{
	for (size_t i = 0; i < s->ndetail_cols; i++)
		free(s->detail_cols[i]);
	for (size_t i = 0; i < s->ndetail_rows * s->ndetail_cols; i++)
		free(s->detail_rows[i]);
	free(s->detail_cols);
	free(s->detail_rows);
	free(s->detail_jid);
	s->detail_cols = s->detail_rows = NULL;
	s->ndetail_cols = s->ndetail_rows = 0;
	s->detail_jid = NULL;
	s->detail_state = 0;
	s->detail_err[0] = '\0';
}

void
source_roster(struct top_source *s, const char *jid)
{
	struct conn *c = conn_of(s);
	const char *argv[] = { "roster-show", jid };

	detail_clear(s);
	s->detail_jid = xstrdup(jid);
	if (s->state != TOP_READY) {
		s->detail_state = -1;
		snprintf(s->detail_err, sizeof(s->detail_err),
		    "not connected");
		return;
	}
	s->detail_state = 1;
	c->detail_id = request(s, argv, 2);
}

void
source_watch_rooms(struct top_source *s, double every, const char *room)
{
	struct conn *c = conn_of(s);

	if (s->rooms_every == 0 && every > 0)
		c->next_rooms = 0;      /* now */
	s->rooms_every = every;
	if (room == NULL || s->room_selected == NULL ||
	    strcmp(room, s->room_selected) != 0) {
		free(s->room_selected);
		s->room_selected = room ? xstrdup(room) : NULL;
		occupants_free(s->occupants, s->noccupants);
		s->occupants = NULL;
		s->noccupants = 0;
		s->occupants_state = 0;
		c->next_rooms = 0;
	}
}

int
source_rooms_pending(const struct top_source *s)
{
	const struct conn *c = conn_of(s);

	return c->rooms_id != 0 || c->room_show_id != 0;
}

const char *
source_list_command(enum top_list_kind l)
{
	return list_specs[l].command;
}

const char *const *
source_list_columns(enum top_list_kind l, size_t *n)
{
	*n = list_ncols(l);
	return list_specs[l].cols;
}

void
source_watch_list(struct top_source *s, enum top_list_kind l, double every)
{
	struct conn *c = conn_of(s);

	if (s->lists[l].every == 0 && every > 0)
		c->lists[l].next = 0;           /* now */
	s->lists[l].every = every;
}

int
source_list_pending(const struct top_source *s, enum top_list_kind l)
{
	return conn_of(s)->lists[l].id != 0;
}

static void
poll_list(struct top_source *s, enum top_list_kind l, double now)
{
	struct list_conn *lc = &conn_of(s)->lists[l];
	const char *argv[] = { list_specs[l].command };

	if (lc->id != 0)
		return;
	lc->id = request(s, argv, 1);
	lc->next = now + s->lists[l].every;
}

/* The list whose request is id, or NTOP_LISTS. */
static enum top_list_kind
list_of(const struct conn *c, uint32_t id)
{
	int l;

	for (l = 0; l < NTOP_LISTS; l++)
		if (id != 0 && c->lists[l].id == id)
			break;
	return (enum top_list_kind)l;
}

static void
on_list_row(struct top_source *s, enum top_list_kind l, char **f, size_t n)
{
	struct list_conn *lc = &conn_of(s)->lists[l];
	size_t ncols = list_ncols(l);

	if (lc->nrows >= 100000)
		return;
	lc->cells = xreallocarray(lc->cells, (lc->nrows + 1) * ncols,
	    sizeof(char *));
	for (size_t k = 0; k < ncols; k++)
		lc->cells[lc->nrows * ncols + k] =
		    xstrdup(field_at(lc->index, (int)k, f, n));
	lc->nrows++;
}

static void
list_done(struct top_source *s, enum top_list_kind l, int ok, const char *msg)
{
	struct list_conn *lc = &conn_of(s)->lists[l];
	struct top_list *t = &s->lists[l];
	size_t ncols = list_ncols(l);

	lc->id = 0;
	if (!ok) {
		cells_free(lc->cells, lc->nrows * ncols);
		t->state = -1;
		snprintf(t->err, sizeof(t->err), "%s", msg);
	} else {
		cells_free(t->cells, t->nrows * t->ncols);
		t->cells = lc->cells;
		t->nrows = lc->nrows;
		t->ncols = ncols;
		t->state = 1;
	}
	lc->cells = NULL;
	lc->nrows = 0;
}

static void
poll_rooms(struct top_source *s, double now)
{
	struct conn *c = conn_of(s);
	const char *argv[] = { "rooms" };

	if (c->rooms_id != 0 || c->room_show_id != 0)
		return;
	c->rooms_id = request(s, argv, 1);
	c->next_rooms = now + s->rooms_every;
}

static void
on_rooms_row(struct top_source *s, char **f, size_t n)
{
	struct conn *c = conn_of(s);
	const int *ix = c->room_index;
	struct top_room *r;

	if (c->nnew_rooms >= 100000)
		return;
	c->new_rooms = xreallocarray(c->new_rooms, c->nnew_rooms + 1,
	    sizeof(*c->new_rooms));
	r = &c->new_rooms[c->nnew_rooms++];
	r->jid = xstrdup(field_at(ix, RC_JID, f, n));
	r->name = xstrdup(field_at(ix, RC_NAME, f, n));
	r->occupants = (long)num(field_at(ix, RC_OCCUPANTS, f, n));
	r->sessions = (long)num(field_at(ix, RC_SESSIONS, f, n));
	r->per_min = (long)num(field_at(ix, RC_RATE, f, n));
	r->persistent = strcmp(field_at(ix, RC_PERSISTENT, f, n), "yes") == 0;
	r->publicroom = strcmp(field_at(ix, RC_PUBLIC, f, n), "yes") == 0;
	r->membersonly = strcmp(field_at(ix, RC_MEMBERSONLY, f, n),
	    "yes") == 0;
}

static void
on_occupant_row(struct top_source *s, char **f, size_t n)
{
	struct conn *c = conn_of(s);
	const int *ix = c->occ_index;
	struct top_occupant *o;

	if (strcmp(field_at(ix, OC_KIND, f, n), "occupant") != 0 ||
	    c->nnew_occ >= 100000)
		return;
	c->new_occ = xreallocarray(c->new_occ, c->nnew_occ + 1,
	    sizeof(*c->new_occ));
	o = &c->new_occ[c->nnew_occ++];
	o->nick = xstrdup(field_at(ix, OC_NAME, f, n));
	o->role = xstrdup(field_at(ix, OC_ROLE, f, n));
	o->affiliation = xstrdup(field_at(ix, OC_AFF, f, n));
	o->jid = xstrdup(field_at(ix, OC_JID, f, n));
	o->sessions = (long)num(field_at(ix, OC_SESSIONS, f, n));
}

/* The rooms listing ended: take it, note the total rate, and ask for
 * the selected room's occupants. */
static void
rooms_listed(struct top_source *s, int ok, const char *msg)
{
	struct conn *c = conn_of(s);
	const char *argv[] = { "room-show", s->room_selected };
	double total = 0;

	if (!ok) {
		rooms_free(c->new_rooms, c->nnew_rooms);
		s->rooms_state = -1;
		snprintf(s->rooms_err, sizeof(s->rooms_err), "%s", msg);
	} else {
		rooms_free(s->rooms, s->nrooms);
		s->rooms = c->new_rooms;
		s->nrooms = c->nnew_rooms;
		s->rooms_state = 1;
		for (size_t i = 0; i < s->nrooms; i++)
			total += (double)s->rooms[i].per_min;
		if (s->nrate == TOP_RATE_SAMPLES) {
			memmove(s->rate, s->rate + 1, (TOP_RATE_SAMPLES - 1) *
			    sizeof(*s->rate));
			s->nrate--;
		}
		s->rate[s->nrate++] = total;
	}
	c->new_rooms = NULL;
	c->nnew_rooms = 0;
	if (ok && s->room_selected != NULL)
		c->room_show_id = request(s, argv, 2);
}

static void
occupants_listed(struct top_source *s, int ok)
{
	struct conn *c = conn_of(s);

	if (ok) {
		occupants_free(s->occupants, s->noccupants);
		s->occupants = c->new_occ;
		s->noccupants = c->nnew_occ;
		s->occupants_state = 1;
	} else {
		occupants_free(c->new_occ, c->nnew_occ);
		s->occupants_state = -1;
	}
	c->new_occ = NULL;
	c->nnew_occ = 0;
}

/* --- answers and events --- */

static void
on_session_row(struct top_source *s, char **f, size_t n)
{
	struct conn *c = conn_of(s);
	const char *v[NCOLS];
	struct top_session *t;

	for (int i = 0; i < NCOLS; i++)
		v[i] = c->col_index[i] >= 0 && (size_t)c->col_index[i] < n ?
		    f[c->col_index[i]] : "";
	if (v[COL_SID][0] == '\0')
		return;
	t = session_get(s, v[COL_SID]);
	t->gen = s->gen;
	set_str(&t->jid, v[COL_JID]);
	set_str(&t->ip, v[COL_IP]);
	set_str(&t->tls, v[COL_TLS]);
	set_str(&t->cipher, v[COL_CIPHER]);
	set_str(&t->client, v[COL_CLIENT]);
	set_str(&t->show, v[COL_SHOW][0] != '\0' ? v[COL_SHOW] : "-");
	set_str(&t->status, v[COL_STATUS]);
	set_str(&t->since, v[COL_SINCE]);
	t->priority = (int)num(v[COL_PRIORITY]);
	t->idle_base = num(v[COL_IDLE]);
	t->idle_at = source_now();
	t->stanzas_in = (unsigned long long)num(v[COL_IN]);
	t->stanzas_out = (unsigned long long)num(v[COL_OUT]);
	/* Absent from an older daemon: shown as "-". */
	set_str(&t->sm, v[COL_SM]);
	t->sm_unacked = (unsigned long)num(v[COL_SM_UNACKED]);
	set_str(&t->csi, v[COL_CSI]);
	set_str(&t->auth, v[COL_AUTH]);
}

static void
on_status_row(struct top_source *s, char **f, size_t n)
{
	struct top_counters *k = &s->counters;

	if (n < 2 || k->from_events)
		return;
	ctl_name_type(f[0]);    /* the key without its type */
	if (strcmp(f[0], "uptime") == 0)
		k->uptime = num(f[1]);
	else if (strcmp(f[0], "sessions") == 0)
		k->sessions = (long)num(f[1]);
	else if (strcmp(f[0], "users-online") == 0)
		k->users = (long)num(f[1]);
	else if (strcmp(f[0], "storage-queue") == 0)
		k->store_queue = (long)num(f[1]);
	else if (strcmp(f[0], "last-commit-ms") == 0)
		k->commit_ms = num(f[1]);
	else if (strcmp(f[0], "version") == 0)
		snprintf(s->daemon_version, sizeof(s->daemon_version), "%s",
		    f[1]);
}

static void
on_counters(struct top_source *s, char **f, size_t n)
{
	struct top_counters *k = &s->counters;

	if (n < 12)
		return;
	k->uptime = num(f[0]);
	k->sessions = (long)num(f[1]);
	k->users = (long)num(f[2]);
	k->logins_per_min = num(f[3]);
	k->in_per_s = num(f[4]);
	k->out_per_s = num(f[5]);
	k->bytes_in_per_s = num(f[6]);
	k->bytes_out_per_s = num(f[7]);
	k->offline_queue = (long)num(f[8]);
	k->rss_kb = (long)num(f[9]);
	k->store_queue = (long)num(f[10]);
	k->commit_ms = num(f[11]);
	k->valid = k->from_events = 1;
}

/* "* event NAME FIELD..." with f[0] = NAME. */
static void
on_event(struct top_source *s, char **f, size_t n)
{
	struct top_session *t;

	if (strcmp(f[0], "session-up") == 0 && n >= 7) {
		t = session_get(s, f[1]);
		t->gen = s->gen;
		set_str(&t->jid, f[2]);
		set_str(&t->ip, f[3]);
		set_str(&t->tls, f[4]);
		set_str(&t->cipher, f[5]);
		set_str(&t->since, f[6]);
		t->idle_base = 0;
		t->idle_at = source_now();
	} else if (strcmp(f[0], "session-down") == 0 && n >= 2) {
		session_del(s, f[1]);
	} else if (strcmp(f[0], "presence") == 0 && n >= 6) {
		t = strmap_get(s->sessions, f[1]);
		if (t == NULL)
			return;
		set_str(&t->show, f[3]);
		t->priority = (int)num(f[4]);
		set_str(&t->status, f[5]);
		t->idle_base = 0;
		t->idle_at = source_now();
	} else if (strcmp(f[0], "counters") == 0) {
		on_counters(s, f + 1, n - 1);
	} else if (strcmp(f[0], "log") == 0 && n >= 3) {
		add_event(s, f[1], f[2]);
		return;
	} else {
		return;
	}
	s->changes++;
}

static void
on_terminal(struct top_source *s, uint32_t id, int ok, char **f, size_t n)
{
	struct conn *c = conn_of(s);
	const char *code = !ok && n > 0 ? f[0] : "";
	const char *msg = !ok && n > 1 ? f[1] : code;

	if (id == c->subscribe_id) {
		c->subscribe_id = 0;
		s->subscribed = ok ? 1 : -1;
		if (!ok)
			poll_status(s);
	} else if (id == c->sessions_id) {
		c->sessions_id = 0;
		if (ok) {
			sweep_sessions(s);
			s->listed = 1;
		}
		if (!ok)
			snprintf(s->status, sizeof(s->status),
			    "sessions: %s", msg);
	} else if (id == c->status_id) {
		c->status_id = 0;
		if (ok && !s->counters.from_events) {
			s->counters.valid = 1;
			s->counters.sessions = (long)strmap_count(s->sessions);
		}
	} else if (id == c->act_id) {
		const char *jid = c->act_jid ? c->act_jid : "";

		c->act_id = 0;
		if (strcmp(c->act_verb, "kick") == 0 && ok)
			s->can_kick = 1;
		else if (strcmp(c->act_verb, "kick") == 0 &&
		    strcmp(code, CTL_E_UNKNOWN_COMMAND) == 0)
			s->can_kick = -1;
		if (!ok)
			snprintf(s->status, sizeof(s->status), "%s %s: %s",
			    c->act_verb, jid, msg);
		else if (strcmp(c->act_verb, "kick") == 0)
			snprintf(s->status, sizeof(s->status), "kicked %s",
			    jid);
		else
			snprintf(s->status, sizeof(s->status), "disabled %s "
			    "(%s session%s closed)", jid, n > 1 ? f[0] : "0",
			    n > 1 && strcmp(f[0], "1") == 0 ? "" : "s");
	} else if (id == c->rooms_id) {
		c->rooms_id = 0;
		rooms_listed(s, ok, msg);
	} else if (list_of(c, id) != NTOP_LISTS) {
		list_done(s, list_of(c, id), ok, msg);
	} else if (id == c->room_show_id) {
		c->room_show_id = 0;
		occupants_listed(s, ok);
	} else if (id == c->detail_id) {
		c->detail_id = 0;
		s->detail_state = ok ? 2 : -1;
		if (!ok)
			snprintf(s->detail_err, sizeof(s->detail_err), "%s%s%s",
			    code, strcmp(code, msg) != 0 ? ": " : "",
			    strcmp(code, msg) != 0 ? msg : "");
	}
	s->changes++;
}

static void
on_cols(struct top_source *s, uint32_t id, char **f, size_t n)
{
	struct conn *c = conn_of(s);

	if (id == c->sessions_id) {
		for (size_t j = 0; j < n; j++)
			ctl_name_type(f[j]);    /* names only */
		for (int i = 0; i < NCOLS; i++) {
			c->col_index[i] = -1;
			for (size_t j = 0; j < n; j++)
				if (strcmp(f[j], col_names[i]) == 0)
					c->col_index[i] = (int)j;
		}
		s->gen++;
	} else if (id == c->rooms_id) {
		index_cols(c->room_index, room_col_names, NROOM_COLS, f, n);
	} else if (list_of(c, id) != NTOP_LISTS) {
		enum top_list_kind l = list_of(c, id);

		index_cols(c->lists[l].index, list_specs[l].cols,
		    (int)list_ncols(l), f, n);
	} else if (id == c->room_show_id) {
		index_cols(c->occ_index, occ_col_names, NOCC_COLS, f, n);
	} else if (id == c->detail_id && s->detail_cols == NULL) {
		s->detail_cols = xcalloc(n + 1, sizeof(char *));
		free(c->detail_types);
		c->detail_types = xcalloc(n + 1, sizeof(*c->detail_types));
		for (size_t i = 0; i < n; i++) {
			c->detail_types[i] = ctl_name_type(f[i]);
			s->detail_cols[i] = xstrdup(f[i]);
		}
		s->ndetail_cols = n;
	}
}

static void
on_detail_row(struct top_source *s, char **f, size_t n)
{
	size_t k = s->ndetail_cols;

	if (k == 0 || s->ndetail_rows >= 10000)
		return;
	s->detail_rows = xreallocarray(s->detail_rows,
	    (s->ndetail_rows + 1) * k, sizeof(char *));
	for (size_t i = 0; i < k; i++) {
		char *v = xstrdup(i < n ? f[i] : "");

		/* A list's items (groups) are shown joined by ",". */
		for (char *p = v; conn_of(s)->detail_types[i] == CTL_T_LIST &&
		    *p != '\0'; p++)
			if (*p == CTL_LIST_SEP)
				*p = ',';
		s->detail_rows[s->ndetail_rows * k + i] = v;
	}
	s->ndetail_rows++;
}

static void
on_line(struct top_source *s, char *line, size_t len)
{
	struct conn *c = conn_of(s);
	char *f[CTL_FIELDS_MAX];
	uint32_t id = 0;
	int n = ctl_split(line, len, f, CTL_FIELDS_MAX);

	if (n < 2) {
		disconnect(s, "malformed line from the daemon");
		return;
	}
	if (s->state == TOP_GREETING) {
		if (strcmp(f[0], CTL_GREETING) != 0) {
			disconnect(s, strcmp(f[0], "0") == 0 && n > 3 ? f[3] :
			    "not an xmppd control socket");
			return;
		}
		if (parse_version(f[1]) != CTL_PROTOCOL_VERSION) {
			disconnect(s, "unsupported control protocol");
			return;
		}
		snprintf(s->daemon_version, sizeof(s->daemon_version), "%s",
		    n > 2 ? f[2] : "");
		{
			char v[16];
			const char *hello[] = { "hello", v };
			struct buf out = BUF_INIT;

			snprintf(v, sizeof(v), "%d", CTL_PROTOCOL_VERSION);
			ctl_line_fields(&out, hello, 2);
			if (send(s->fd, buf_head(&out), buf_avail(&out),
			    MSG_NOSIGNAL) != (ssize_t)buf_avail(&out)) {
				buf_free(&out);
				disconnect(s, "cannot send hello");
				return;
			}
			buf_free(&out);
		}
		start_session(s);
		return;
	}
	if (strcmp(f[0], "*") == 0) {
		if (strcmp(f[1], "event") == 0 && n > 2)
			on_event(s, f + 2, (size_t)n - 2);
		return;
	}
	if (strcmp(f[0], "0") == 0) {
		if (strcmp(f[1], "err") == 0)
			disconnect(s, n > 3 ? f[3] : "refused by the daemon");
		return;
	}
	if (ctl_parse_id(f[0], &id) == -1)
		return;
	if (strcmp(f[1], "ok") == 0 || strcmp(f[1], "err") == 0)
		on_terminal(s, id, f[1][0] == 'o', f + 2, (size_t)n - 2);
	else if (strcmp(f[1], "cols") == 0)
		on_cols(s, id, f + 2, (size_t)n - 2);
	else if (strcmp(f[1], "row") == 0 && id == c->sessions_id)
		on_session_row(s, f + 2, (size_t)n - 2);
	else if (strcmp(f[1], "row") == 0 && id == c->status_id)
		on_status_row(s, f + 2, (size_t)n - 2);
	else if (strcmp(f[1], "row") == 0 && id == c->detail_id)
		on_detail_row(s, f + 2, (size_t)n - 2);
	else if (strcmp(f[1], "row") == 0 && id == c->rooms_id)
		on_rooms_row(s, f + 2, (size_t)n - 2);
	else if (strcmp(f[1], "row") == 0 && id == c->room_show_id)
		on_occupant_row(s, f + 2, (size_t)n - 2);
	else if (strcmp(f[1], "row") == 0 && list_of(c, id) != NTOP_LISTS)
		on_list_row(s, list_of(c, id), f + 2, (size_t)n - 2);
}

void
source_read(struct top_source *s)
{
	struct conn *c = conn_of(s);
	char chunk[65536];
	char *line;
	size_t len;
	ssize_t n;
	int r;

	if (s->fd == -1)
		return;
	n = read(s->fd, chunk, sizeof(chunk));
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		disconnect(s, n == 0 ? "connection closed by the daemon" :
		    strerror(errno));
		return;
	}
	ctl_reader_feed(&c->rd, chunk, (size_t)n);
	while (s->fd != -1 && (r = ctl_reader_next(&c->rd, &line, &len)) != 0) {
		if (r == -1) {
			disconnect(s, "line from the daemon too long");
			return;
		}
		on_line(s, line, len);
	}
}

/* --- lifecycle --- */

void
source_init(struct top_source *s, const char *path)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	memset(s, 0, sizeof(*s));
	s->path = path;
	s->fd = -1;
	s->sessions = strmap_new();
	s->priv = c;
	ctl_reader_init(&c->rd, CTL_LINE_MAX);
	snprintf(s->status, sizeof(s->status), "connecting to %s", path);
}

void
source_free(struct top_source *s)
{
	struct conn *c = conn_of(s);

	if (s->fd != -1)
		close(s->fd);
	clear_sessions(s);
	strmap_free(s->sessions);
	for (size_t i = 0; i < s->nevents; i++)
		free(s->events[(s->event_head + i) % TOP_EVENTS_MAX]);
	detail_clear(s);
	rooms_free(s->rooms, s->nrooms);
	occupants_free(s->occupants, s->noccupants);
	rooms_free(c->new_rooms, c->nnew_rooms);
	occupants_free(c->new_occ, c->nnew_occ);
	for (int l = 0; l < NTOP_LISTS; l++)
		cells_free(s->lists[l].cells, s->lists[l].nrows *
		    s->lists[l].ncols);
	lists_reset(c);
	free(s->room_selected);
	ctl_reader_free(&c->rd);
	free(c->act_jid);
	free(c->detail_types);
	free(c);
}

int
source_fd(const struct top_source *s)
{
	return s->fd;
}

void
source_tick(struct top_source *s, double now)
{
	struct conn *c = conn_of(s);

	if (s->state == TOP_DISCONNECTED) {
		if (now >= s->next_retry)
			try_connect(s);
		return;
	}
	if (s->state != TOP_READY)
		return;
	if (s->subscribed == -1 && now >= c->next_status)
		poll_status(s);
	if ((s->subscribed == -1 || s->refresh_every > 0) &&
	    now >= c->next_sessions)
		source_refresh(s);
	if (s->rooms_every > 0 && now >= c->next_rooms)
		poll_rooms(s, now);
	for (int l = 0; l < NTOP_LISTS; l++)
		if (s->lists[l].every > 0 && now >= c->lists[l].next)
			poll_list(s, (enum top_list_kind)l, now);
}

double
source_timeout(const struct top_source *s, double now)
{
	struct conn *c = conn_of(s);
	double t = 1.0;

	if (s->state == TOP_DISCONNECTED)
		t = s->next_retry - now;
	else if (s->state == TOP_READY && s->subscribed == -1)
		t = (c->next_status < c->next_sessions ? c->next_status :
		    c->next_sessions) - now;
	else if (s->state == TOP_READY && s->refresh_every > 0)
		t = c->next_sessions - now;
	if (s->state == TOP_READY && s->rooms_every > 0 &&
	    c->next_rooms - now < t)
		t = c->next_rooms - now;
	for (int l = 0; l < NTOP_LISTS; l++)
		if (s->state == TOP_READY && s->lists[l].every > 0 &&
		    c->lists[l].next - now < t)
			t = c->lists[l].next - now;
	if (t > 1.0)
		t = 1.0;
	return t < 0 ? 0 : t;
}
