/*
 * The message archive in storage (XEP-0313 with XEP-0359 ids, XEP-0441
 * preferences): the jobs that store, query, dump and expire archived
 * messages, and the small pure helpers (ids, stamps, preference matching)
 * that both threads use.  The protocol side is mod_mam.c; the interface
 * and the archive's invariants are described in mam.h.
 *
 * Bounds: a page plan reads at most max + 1 index entries (plus bounded
 * counts), a row read stops after a byte budget, a history chunk reads
 * at most HISTORY_CHUNK_ROWS rows or HISTORY_CHUNK_BYTES bytes and a
 * history seek skips at most HISTORY_SEEK_STEP index entries, expiry
 * deletes a batch at a time, and a time bound costs a binary search of
 * about 40 rowid lookups.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "log.h"
#include "store/mam.h"
#include "store/store_engine.h"
#include "xmalloc.h"
#include "xml.h"

/* RSM <count/> and 'index' are exact up to this many rows, and omitted
 * beyond (XEP-0059 §2.2 allows that when counting would be exceptionally
 * resource intensive; counting a million index entries takes tens of
 * milliseconds of the storage thread's time per page). */
#define MAM_COUNT_CAP 10000
#define PREFS_CHUNK 256
#define HISTORY_CHUNK_ROWS 256
#define HISTORY_CHUNK_BYTES (128 * 1024)
#define HISTORY_SEEK_STEP 50000
#define PREFS_SEP '\n' /* cannot occur in a prepared JID */

/* Ids. */

/*
 * Loop thread only.  Ids grow with time: the milliseconds since the
 * epoch above 22 random bits, and strictly above the previous id.  Rows
 * then enter the archive_sid index at the end of each user's range (as
 * they do the id-ordered ones) instead of at random places, which made
 * every transaction dirty a page per archived message once the archive
 * outgrew the cache.  XEP-0359 asks ids to be unique within the
 * archive, not unguessable: only the owner may query by them.  The
 * random bits keep ids unique across a restart with the clock set back
 * a little.
 */
uint64_t
mam_id_new(void)
{
	static uint64_t last, pool[64];
	static size_t left;
	uint64_t id, r;
	struct timespec ts;

	/* One getrandom(2) per 64 ids: per id it was a visible share of
	 * the archiving cost. */
	if (left == 0) {
		arc4random_buf(pool, sizeof(pool));
		left = sizeof(pool) / sizeof(pool[0]);
	}
	r = pool[--left];
	clock_gettime(CLOCK_REALTIME, &ts);
	id = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000)
	        << 22 | (r & ((1u << 22) - 1));
	if (id <= last)
		id = last + 1 + (r >> 54);     /* up to 2^10 ahead */
	last = id;
	return id;
}

void
mam_id_format(uint64_t id, char out[MAM_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = MAM_ID_LEN - 1; i >= 0; i--, id >>= 4)
		out[i] = hex[id & 0xf];
	out[MAM_ID_LEN] = '\0';
}

int
mam_id_parse(const char *s, uint64_t *id)
{
	uint64_t v = 0;

	if (strlen(s) != MAM_ID_LEN)
		return -1;
	for (const char *p = s; *p; p++) {
		int d;

		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	*id = v;
	return 0;
}

/* Stamps (XEP-0082 §3.3 DateTime: CCYY-MM-DDThh:mm:ss[.sss]TZD). */

void
mam_stamp_format(int64_t ms, char *out, size_t len)
{
	time_t sec = (time_t)(ms / 1000);
	int frac = (int)(ms % 1000);
	struct tm tm;
	size_t n;

	if (frac < 0) {
		frac += 1000;
		sec--;
	}
	gmtime_r(&sec, &tm);
	n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, len - n, ".%03dZ", frac);
}

/* n decimal digits at *p into *v; advances p.  0 or -1. */
static int
digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		*v = *v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	return 0;
}

static int
expect(const char **p, char c)
{
	if (**p != c)
		return -1;
	(*p)++;
	return 0;
}

int
mam_stamp_parse(const char *s, int64_t *floor_ms, int64_t *ceil_ms)
{
	const char *p = s;
	struct tm tm;
	int y, mo, d, h, mi, sec, tzh = 0, tzm = 0, sign = 0;
	int64_t ms = 0, t;
	int inexact = 0, ndig = 0;
	time_t base;

	memset(&tm, 0, sizeof(tm));
	if (digits(&p, 4, &y) || expect(&p, '-') || digits(&p, 2, &mo) ||
	    expect(&p, '-') || digits(&p, 2, &d) || expect(&p, 'T') ||
	    digits(&p, 2, &h) || expect(&p, ':') || digits(&p, 2, &mi) ||
	    expect(&p, ':') || digits(&p, 2, &sec))
		return -1;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		for (; isdigit((unsigned char)*p); p++, ndig++) {
			if (ndig < 3)
				ms = ms * 10 + (*p - '0');
			else if (*p != '0')
				inexact = 1;
		}
		for (; ndig < 3; ndig++)
			ms *= 10;
	}
	if (*p == 'Z')
		p++;
	else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		p++;
		if (digits(&p, 2, &tzh) || expect(&p, ':') ||
		    digits(&p, 2, &tzm) || tzh > 23 || tzm > 59)
			return -1;
	} else
		return -1;
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60 || y < 1970)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	base = timegm(&tm);
	if (base == (time_t)-1)
		return -1;
	t = (int64_t)base * 1000 + ms - (int64_t)sign * (tzh * 60 + tzm) *
	    60000;
	*floor_ms = t;
	*ceil_ms = t + inexact;
	return 0;
}

/* Preferences. */

void
mam_prefs_free(struct mam_prefs *p)
{
	for (size_t i = 0; i < p->nalways; i++)
		free(p->always[i]);
	for (size_t i = 0; i < p->nnever; i++)
		free(p->never[i]);
	free(p->always);
	free(p->never);
	p->always = p->never = NULL;
	p->nalways = p->nnever = 0;
}

static char **
copy_list(char *const *src, size_t n)
{
	char **dst = n ? xreallocarray(NULL, n, sizeof(*dst)) : NULL;

	for (size_t i = 0; i < n; i++)
		dst[i] = xstrdup(src[i]);
	return dst;
}

void
mam_prefs_copy(struct mam_prefs *dst, const struct mam_prefs *src)
{
	dst->mode = src->mode;
	dst->always = copy_list(src->always, src->nalways);
	dst->nalways = src->nalways;
	dst->never = copy_list(src->never, src->nnever);
	dst->nnever = src->nnever;
}

const char *
mam_mode_name(enum mam_mode m)
{
	switch (m) {
	case MAM_MODE_NEVER:
		return "never";
	case MAM_MODE_ROSTER:
		return "roster";
	default:
		return "always";
	}
}

int
mam_mode_parse(const char *s)
{
	if (s == NULL)
		return -1;
	if (strcmp(s, "always") == 0)
		return MAM_MODE_ALWAYS;
	if (strcmp(s, "never") == 0)
		return MAM_MODE_NEVER;
	if (strcmp(s, "roster") == 0)
		return MAM_MODE_ROSTER;
	return -1;
}

/* XEP-0441 §2.3.1: a listed full JID is compared with the full target,
 * a bare one with the bare target. */
static int
list_matches(char *const *list, size_t n, const char *full, const char *bare)
{
	for (size_t i = 0; i < n; i++) {
		const char *target = strchr(list[i], '/') ? full : bare;

		if (target != NULL && strcmp(list[i], target) == 0)
			return 1;
	}
	return 0;
}

enum mam_decision
mam_prefs_decide(const struct mam_prefs *p, const char *full,
    const char *bare)
{
	if (list_matches(p->never, p->nnever, full, bare))
		return MAM_SKIP;
	if (list_matches(p->always, p->nalways, full, bare))
		return MAM_STORE;
	switch (p->mode) {
	case MAM_MODE_NEVER:
		return MAM_SKIP;
	case MAM_MODE_ROSTER:
		return MAM_IF_ROSTER;
	default:
		return MAM_STORE;
	}
}

/* The stored form of a list: JIDs separated by PREFS_SEP. */
static char *
list_join(char *const *list, size_t n)
{
	struct buf b = BUF_INIT;
	char *s;

	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_addc(&b, PREFS_SEP);
		buf_adds(&b, list[i]);
	}
	s = n ? buf_strdup(&b) : xstrdup("");
	buf_free(&b);
	return s;
}

static void
list_split(const char *s, char ***list, size_t *n)
{
	const char *p = s, *e;

	*list = NULL;
	*n = 0;
	while (s != NULL && *p != '\0') {
		if ((e = strchr(p, PREFS_SEP)) == NULL)
			e = p + strlen(p);
		if (e > p) {
			*list = xreallocarray(*list, *n + 1, sizeof(**list));
			(*list)[(*n)++] = xstrndup(p, (size_t)(e - p));
		}
		p = *e ? e + 1 : e;
	}
}

/* Storage thread: common queries. */

/*
 * Two archives of the same shape: the users' (table archive, owner
 * column user_id) and the rooms' (muc_archive, room_id, the owners in
 * muc_archive_room).  Each statement is written once as a macro of the
 * table and owner column and kept for both, indexed by the kind
 * (K_USER, K_ROOM: mam_entry.room, mam_query.room, mam_page.room).
 */
enum { K_USER, K_ROOM, K_KINDS };
#define BOTH(M) {M("archive", "user_id"), M("muc_archive", "room_id")}
#define SQL_MAX_ID(T, O) "SELECT id FROM " T " ORDER BY id DESC LIMIT 1"
#define SQL_MIN_ID(T, O) "SELECT id FROM " T " ORDER BY id LIMIT 1"
#define SQL_NEXT_ROW(T, O)                                                     \
	"SELECT id, stamp FROM " T " WHERE id >= ?1 ORDER BY id LIMIT 1"
#define SQL_LAST_STAMP(T, O) "SELECT stamp FROM " T " ORDER BY id DESC LIMIT 1"
#define SQL_RESOLVE(T, O)                                                      \
	"SELECT id, with_bare, with_full FROM " T " WHERE " O " = ?1"          \
	" AND sid = ?2"
static const char *const sql_max_id[] = BOTH(SQL_MAX_ID);
static const char *const sql_min_id[] = BOTH(SQL_MIN_ID);
static const char *const sql_next_row[] = BOTH(SQL_NEXT_ROW);
static const char *const sql_last_stamp[] = BOTH(SQL_LAST_STAMP);
static const char *const sql_resolve[] = BOTH(SQL_RESOLVE);
static const char sql_room_find[] =
    "SELECT id FROM muc_archive_room WHERE service = ?1 AND node = ?2";
static const char sql_room_add[] =
    "INSERT INTO muc_archive_room (service, node) VALUES (?1, ?2)";

/*
 * The archive id of room node@service: > 0, 0 if it has none (and
 * create is 0), -1 on error.
 */
static int64_t
room_archive_id(const char *node, const char *service, int create)
{
	sqlite3_stmt *s = store_sql(sql_room_find);
	int64_t id = 0;
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, service, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, node, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		id = sqlite3_column_int64(s, 0);
	else if (rc != SQLITE_DONE)
		store_sql_warn("mam: room lookup");
	store_sql_done(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return -1;
	if (id > 0 || !create)
		return id;
	if ((s = store_sql(sql_room_add)) == NULL)
		return -1;
	sqlite3_bind_text(s, 1, service, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, node, -1, SQLITE_STATIC);
	if (store_sql_write(s, "mam: room add", STORE_ERROR) != STORE_OK)
		return -1;
	return sqlite3_last_insert_rowid(store_db());
}

/*
 * The owner id of an archive: a user's (> 0, 0 no such account, -1
 * error) or a room's (0: no archive yet, which reads as empty).
 */
static int64_t
owner_id(int kind, const char *user, const char *host)
{
	return kind == K_ROOM ? room_archive_id(user, host, 0)
	                      : store_user_id(user, host);
}

/* One integer from a one-row query without parameters: 1 found, 0 none,
 * -1 error. */
static int
query_id(const char *sql, int64_t *out)
{
	sqlite3_stmt *s = store_sql(sql);
	int rc;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	else if (rc != SQLITE_DONE)
		store_sql_warn("mam: id lookup");
	store_sql_done(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The first row with id >= from (any owner): 1 found, 0 none, -1
 * error. */
static int
next_row(int kind, int64_t from, int64_t *id, int64_t *stamp)
{
	sqlite3_stmt *s = store_sql(sql_next_row[kind]);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, from);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(s, 0);
		*stamp = sqlite3_column_int64(s, 1);
	} else if (rc != SQLITE_DONE)
		store_sql_warn("mam: stamp search");
	store_sql_done(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/*
 * The smallest internal id whose stamp is >= t (max id + 1 if none), by
 * binary search over the rowid: stamps never decrease with the id, in
 * every user's archive at once.  -1 on error.
 */
static int
first_id_at(int kind, int64_t t, int64_t *out)
{
	int64_t lo, hi, id, stamp;
	int r;

	if ((r = query_id(sql_min_id[kind], &lo)) <= 0) {
		*out = 1;
		return r;
	}
	if (query_id(sql_max_id[kind], &hi) != 1)
		return -1;
	hi++;
	/* The answer lies in [lo, hi]; next_row(x) has a stamp >= t (or
	 * does not exist) for every x at or above it. */
	while (lo < hi) {
		int64_t mid = lo + (hi - lo) / 2;

		if ((r = next_row(kind, mid, &id, &stamp)) < 0)
			return -1;
		if (r == 0 || stamp >= t)
			hi = mid;
		else
			lo = id + 1;
	}
	if ((r = next_row(kind, lo, &id, &stamp)) < 0)
		return -1;
	*out = r ? id : lo;
	return 0;
}

/* The id range [*lo, *hi] of stamps in [since, until] (MAM_STAMP_NONE:
 * open); -1 on error. */
static int
stamp_range(int kind, int64_t since, int64_t until, int64_t *lo,
    int64_t *hi)
{
	int64_t v;

	*lo = 1;
	*hi = INT64_MAX;
	if (since != MAM_STAMP_NONE) {
		if (first_id_at(kind, since, &v) < 0)
			return -1;
		*lo = v;
	}
	if (until != MAM_STAMP_NONE) {
		if (until == INT64_MAX)
			return 0;
		if (first_id_at(kind, until + 1, &v) < 0)
			return -1;
		*hi = v - 1;
	}
	return 0;
}

/* Storing. */

#define SQL_INSERT(T, O)                                                       \
	"INSERT INTO " T " (" O ", sid, stamp, outgoing, with_bare,"           \
	" with_full, stanza) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
static const char *const sql_insert[] = BOTH(SQL_INSERT);
static const char sql_blocked[] =
    "SELECT 1 FROM blocklist WHERE user_id = ?1 AND jid IN (?2, ?3, ?4, ?5)";
static const char sql_in_roster[] =
    "SELECT 1 FROM roster WHERE user_id = ?1 AND jid = ?2 AND visible = 1";
static const char sql_prefs_get[] =
    "SELECT mode, always, never FROM mam_prefs WHERE user_id = ?1";

/* Storage thread only: the stamp of the newest row stored, per kind. */
static int64_t last_stamp[K_KINDS];
static int last_stamp_known[K_KINDS];

struct store_entry {
	struct store_job job;
	struct mam_entry e; /* strings owned */
	char *mem[8];
};

/* 1 if sql with ?1 = uid and ?2.. = args finds a row, 0 if not, -1. */
static int
exists(const char *sql, const char *what, int64_t uid,
    const char *const *args, int nargs)
{
	sqlite3_stmt *s = store_sql(sql);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, uid);
	for (int i = 0; i < nargs; i++)
		if (args[i] != NULL)
			sqlite3_bind_text(s, 2 + i, args[i], -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		store_sql_warn(what);
	store_sql_done(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The stored preferences of uid, or the defaults; 0 or -1. */
static int
read_prefs(int64_t uid, struct mam_prefs *p)
{
	sqlite3_stmt *s = store_sql(sql_prefs_get);
	int rc, mode;

	memset(p, 0, sizeof(*p));
	p->mode = MAM_MODE_ALWAYS;
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, uid);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		mode = sqlite3_column_int(s, 0);
		if (mode == MAM_MODE_NEVER || mode == MAM_MODE_ROSTER)
			p->mode = (enum mam_mode)mode;
		list_split((const char *)sqlite3_column_text(s, 1), &p->always,
		    &p->nalways);
		list_split((const char *)sqlite3_column_text(s, 2), &p->never,
		    &p->nnever);
	} else if (rc != SQLITE_DONE)
		store_sql_warn("mam: preferences");
	store_sql_done(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* Whether uid archives this message under its preferences: 1, 0, -1. */
static int
wanted(int64_t uid, const struct mam_entry *e)
{
	struct mam_prefs p;
	enum mam_decision d = MAM_STORE;
	size_t ulen = strlen(e->user);
	const char *args[1] = {e->with_bare};

	if (e->check_prefs) {
		if (read_prefs(uid, &p) < 0)
			return -1;
		d = mam_prefs_decide(&p, e->with_full, e->with_bare);
		mam_prefs_free(&p);
		if (d == MAM_SKIP)
			return 0;
	}
	if (d != MAM_IF_ROSTER && !e->check_roster)
		return 1;
	/* One's own account counts as a contact. */
	if (strncmp(e->with_bare, e->user, ulen) == 0 &&
	    e->with_bare[ulen] == '@' &&
	    strcmp(e->with_bare + ulen + 1, e->host) == 0)
		return 1;
	return exists(sql_in_roster, "mam: roster check", uid, args, 1);
}

static enum store_status
run_store(struct store_job *job)
{
	struct store_entry *j = (struct store_entry *)job;
	const struct mam_entry *e = &j->e;
	sqlite3_stmt *s;
	int64_t uid, stamp = e->stamp_ms;
	int r, kind = e->room ? K_ROOM : K_USER;

	if (e->room) {
		/* A room's: no preferences or block list (mod_muc.c decided
		 * by the room's configuration). */
		if ((uid = room_archive_id(e->user, e->host, 1)) <= 0)
			return STORE_ERROR;
		goto insert;
	}
	if ((uid = store_user_id(e->user, e->host)) <= 0)
		return uid < 0 ? STORE_ERROR : STORE_NOT_FOUND;
	if (e->blocked_forms[1] != NULL || e->blocked_forms[3] != NULL) {
		if ((r = exists(sql_blocked, "mam: block list check", uid,
		         e->blocked_forms, 4)) != 0)
			return r < 0 ? STORE_ERROR : STORE_EXISTS;
	}
	if ((r = wanted(uid, e)) <= 0)
		return r < 0 ? STORE_ERROR : STORE_EXISTS;
insert:
	if (!last_stamp_known[kind]) {
		if (query_id(sql_last_stamp[kind], &last_stamp[kind]) < 0)
			return STORE_ERROR;
		last_stamp_known[kind] = 1;
	}
	if (stamp < last_stamp[kind])
		stamp = last_stamp[kind]; /* never decreasing with the id */
	if ((s = store_sql(sql_insert[kind])) == NULL)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, uid);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)e->id);
	sqlite3_bind_int64(s, 3, stamp);
	sqlite3_bind_int(s, 4, e->outgoing != 0);
	sqlite3_bind_text(s, 5, e->with_bare, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, e->with_full, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 7, e->stanza, (int)e->len, SQLITE_STATIC);
	if (store_sql_write(s, "mam: insert", STORE_ERROR) != STORE_OK)
		return STORE_ERROR;
	last_stamp[kind] = stamp;
	return STORE_OK;
}

static void
complete_store(struct store_job *job)
{
	struct store_entry *j = (struct store_entry *)job;
	char id[MAM_ID_LEN + 1];

	mam_id_format(j->e.id, id);
	switch (job->status) {
	case STORE_OK:
		log_debug("mam: archived %s for %s@%s", id, j->e.user,
		    j->e.host);
		break;
	case STORE_EXISTS:
		log_debug("mam: %s not archived for %s@%s (preferences or "
		          "block list)",
		    id, j->e.user, j->e.host);
		break;
	case STORE_NOT_FOUND:
		break; /* no such account: the message bounces */
	default:
		log_warnx("mam: message %s for %s@%s not archived (storage "
		          "error)",
		    id, j->e.user, j->e.host);
		break;
	}
}

static void
free_store(struct store_job *job)
{
	struct store_entry *j = (struct store_entry *)job;

	for (size_t i = 0; i < nitems(j->mem); i++)
		free(j->mem[i]);
	free((char *)j->e.stanza);
	free(j);
}

static const struct store_job_ops store_ops = {
    .name = "mam store",
    .writes = 1,
    .run = run_store,
    .complete = complete_store,
    .free = free_store,
};

static const char *
keep(struct store_entry *j, size_t slot, const char *s)
{
	return s ? (j->mem[slot] = xstrdup(s)) : NULL;
}

void
mam_archive_store(const struct mam_entry *e)
{
	struct store_entry *j = xcalloc(1, sizeof(*j));

	j->job.ops = &store_ops;
	j->e = *e;
	j->e.user = keep(j, 0, e->user);
	j->e.host = keep(j, 1, e->host);
	j->e.with_full = keep(j, 2, e->with_full);
	j->e.with_bare = keep(j, 3, e->with_bare);
	for (size_t i = 0; i < 4; i++)
		j->e.blocked_forms[i] = keep(j, 4 + i, e->blocked_forms[i]);
	j->e.stanza = xstrndup(e->stanza, e->len);
	store_job_submit(&j->job);
}

/* Preferences. */

static const char sql_prefs_put[] =
    "INSERT INTO mam_prefs (user_id, mode, always, never)"
    " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (user_id) DO UPDATE SET"
    " mode = excluded.mode, always = excluded.always,"
    " never = excluded.never";
static const char sql_prefs_list[] =
    "SELECT p.user_id, u.user, u.host, p.mode, p.always, p.never"
    " FROM mam_prefs p JOIN users u ON u.id = p.user_id"
    " WHERE p.user_id > ?1 ORDER BY p.user_id LIMIT ?2";

struct prefs_job {
	struct store_job job;
	char *user, *host;
	struct mam_prefs prefs; /* put: argument; get: result */
	union {
		mam_prefs_cb get;
		store_status_cb put;
	} cb;
};

static enum store_status
run_prefs_get(struct store_job *job)
{
	struct prefs_job *j = (struct prefs_job *)job;
	int64_t uid = store_user_id(j->user, j->host);

	if (uid <= 0)
		return uid < 0 ? STORE_ERROR : STORE_NOT_FOUND;
	return read_prefs(uid, &j->prefs) < 0 ? STORE_ERROR : STORE_OK;
}

static enum store_status
run_prefs_put(struct store_job *job)
{
	struct prefs_job *j = (struct prefs_job *)job;
	int64_t uid = store_user_id(j->user, j->host);
	sqlite3_stmt *s;
	char *always, *never;
	enum store_status st;

	if (uid <= 0)
		return uid < 0 ? STORE_ERROR : STORE_NOT_FOUND;
	if ((s = store_sql(sql_prefs_put)) == NULL)
		return STORE_ERROR;
	always = list_join(j->prefs.always, j->prefs.nalways);
	never = list_join(j->prefs.never, j->prefs.nnever);
	sqlite3_bind_int64(s, 1, uid);
	sqlite3_bind_int(s, 2, (int)j->prefs.mode);
	sqlite3_bind_text(s, 3, always, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, never, -1, SQLITE_STATIC);
	st = store_sql_write(s, "mam: preferences", STORE_ERROR);
	free(always);
	free(never);
	return st;
}

static void
complete_prefs_get(struct store_job *job)
{
	struct prefs_job *j = (struct prefs_job *)job;

	j->cb.get(job->owner, job->tag, job->status,
	    job->status == STORE_OK ? &j->prefs : NULL);
}

static void
complete_prefs_put(struct store_job *job)
{
	struct prefs_job *j = (struct prefs_job *)job;

	j->cb.put(job->owner, job->tag, job->status);
}

static void
free_prefs(struct store_job *job)
{
	struct prefs_job *j = (struct prefs_job *)job;

	mam_prefs_free(&j->prefs);
	free(j->user);
	free(j->host);
	free(j);
}

static const struct store_job_ops prefs_get_ops = {
    .name = "mam preferences get",
    .writes = 0,
    .run = run_prefs_get,
    .complete = complete_prefs_get,
    .free = free_prefs,
};
static const struct store_job_ops prefs_put_ops = {
    .name = "mam preferences put",
    .writes = 1,
    .run = run_prefs_put,
    .complete = complete_prefs_put,
    .free = free_prefs,
};

static struct prefs_job *
prefs_job_new(const struct store_job_ops *ops, const char *user,
    const char *host, uint64_t owner, uint64_t tag)
{
	struct prefs_job *j = xcalloc(1, sizeof(*j));

	j->job.ops = ops;
	j->job.owner = owner;
	j->job.tag = tag;
	j->user = xstrdup(user);
	j->host = xstrdup(host);
	return j;
}

void
mam_prefs_get(const char *user, const char *host, mam_prefs_cb cb,
    uint64_t owner, uint64_t tag)
{
	struct prefs_job *j = prefs_job_new(&prefs_get_ops, user, host, owner,
	    tag);

	j->cb.get = cb;
	store_job_submit(&j->job);
}

void
mam_prefs_put(const char *user, const char *host, const struct mam_prefs *p,
    store_status_cb cb, uint64_t owner, uint64_t tag)
{
	struct prefs_job *j = prefs_job_new(&prefs_put_ops, user, host, owner,
	    tag);

	mam_prefs_copy(&j->prefs, p);
	j->cb.put = cb;
	store_job_submit(&j->job);
}

/* Loading every stored preference, a chunk per job. */

struct prefs_row {
	char *user, *host;
	struct mam_prefs prefs;
};

struct load_job {
	struct store_job job;
	int64_t after; /* user id */
	struct prefs_row *rows;
	size_t n;
	int64_t last;
};

static struct {
	mam_prefs_each_fn each;
	void (*done)(int ok);
} load;

static enum store_status
run_load(struct store_job *job)
{
	struct load_job *j = (struct load_job *)job;
	sqlite3_stmt *s = store_sql(sql_prefs_list);
	int rc;

	if (s == NULL)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, j->after);
	sqlite3_bind_int(s, 2, PREFS_CHUNK);
	j->rows = xcalloc(PREFS_CHUNK, sizeof(*j->rows));
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && j->n < PREFS_CHUNK) {
		struct prefs_row *r = &j->rows[j->n++];
		int mode = sqlite3_column_int(s, 3);

		j->last = sqlite3_column_int64(s, 0);
		r->user = xstrdup((const char *)sqlite3_column_text(s, 1));
		r->host = xstrdup((const char *)sqlite3_column_text(s, 2));
		r->prefs.mode = mode == MAM_MODE_NEVER || mode == MAM_MODE_ROSTER
		                    ? (enum mam_mode)mode
		                    : MAM_MODE_ALWAYS;
		list_split((const char *)sqlite3_column_text(s, 4),
		    &r->prefs.always, &r->prefs.nalways);
		list_split((const char *)sqlite3_column_text(s, 5),
		    &r->prefs.never, &r->prefs.nnever);
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		store_sql_warn("mam: preferences listing");
		store_sql_done(s);
		return STORE_ERROR;
	}
	store_sql_done(s);
	return STORE_OK;
}

static void load_submit(int64_t after);

static void
complete_load(struct store_job *job)
{
	struct load_job *j = (struct load_job *)job;

	if (job->status != STORE_OK) {
		load.done(0);
		return;
	}
	for (size_t i = 0; i < j->n; i++)
		load.each(j->rows[i].user, j->rows[i].host, &j->rows[i].prefs);
	if (j->n == PREFS_CHUNK)
		load_submit(j->last);
	else
		load.done(1);
}

static void
free_load(struct store_job *job)
{
	struct load_job *j = (struct load_job *)job;

	for (size_t i = 0; i < j->n; i++) {
		free(j->rows[i].user);
		free(j->rows[i].host);
		mam_prefs_free(&j->rows[i].prefs);
	}
	free(j->rows);
	free(j);
}

static const struct store_job_ops load_ops = {
    .name = "mam preferences load",
    .writes = 0,
    .run = run_load,
    .complete = complete_load,
    .free = free_load,
};

static void
load_submit(int64_t after)
{
	struct load_job *j = xcalloc(1, sizeof(*j));

	j->job.ops = &load_ops;
	j->after = after;
	store_job_submit(&j->job);
}

void
mam_prefs_load_all(mam_prefs_each_fn each, void (*done)(int ok))
{
	load.each = each;
	load.done = done;
	load_submit(0);
}

/* Planning a page (XEP-0313 §4 with XEP-0059). */

#define W_BARE " AND with_bare = ?5"
#define W_FULL " AND with_full = ?5"
#define PAGE_FWD(T, O, w)                                                      \
	"SELECT id, sid FROM " T " WHERE " O " = ?1" w                         \
	" AND id >= ?2 AND id <= ?3 ORDER BY id LIMIT ?4 OFFSET ?6"
#define PAGE_BWD(T, O, w)                                                      \
	"SELECT id, sid FROM " T " WHERE " O " = ?1" w                         \
	" AND id >= ?2 AND id <= ?3 ORDER BY id DESC LIMIT ?4"
#define COUNT(T, O, w)                                                         \
	"SELECT count(*) FROM (SELECT 1 FROM " T " WHERE " O " = ?1" w         \
	" AND id >= ?2 AND id <= ?3 LIMIT ?4)"
#define WITHS(M, T, O) {M(T, O, ""), M(T, O, W_BARE), M(T, O, W_FULL)}
#define KINDS(M)                                                               \
	{WITHS(M, "archive", "user_id"), WITHS(M, "muc_archive", "room_id")}

/* Indexed by kind and enum mam_with. */
static const char *const sql_page_fwd[K_KINDS][3] = KINDS(PAGE_FWD);
static const char *const sql_page_bwd[K_KINDS][3] = KINDS(PAGE_BWD);
static const char *const sql_count[K_KINDS][3] = KINDS(COUNT);

struct plan_job {
	struct store_job job;
	char *user, *host;
	struct mam_query q; /* with and ids owned */
	mam_plan_cb cb;
	/* 'ids' field: the matching rows, sorted (plan phase). */
	int64_t *sel_rows;
	uint64_t *sel_ids;
	size_t nsel;
	struct mam_page *page; /* result */
};

/* An archive id of uid to its internal id and other party: 1 found,
 * 0 not, -1 error. */
static int
resolve(int kind, int64_t uid, uint64_t id, int64_t *row, char **bare,
    char **full)
{
	sqlite3_stmt *s = store_sql(sql_resolve[kind]);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, uid);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)id);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*row = sqlite3_column_int64(s, 0);
		if (bare != NULL)
			*bare = xstrdup(
			    (const char *)sqlite3_column_text(s, 1));
		if (full != NULL)
			*full = xstrdup(
			    (const char *)sqlite3_column_text(s, 2));
	} else if (rc != SQLITE_DONE)
		store_sql_warn("mam: id lookup");
	store_sql_done(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static void
page_add(struct mam_page *p, size_t *cap, int64_t row, uint64_t id)
{
	if (p->n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		p->rows = xreallocarray(p->rows, *cap, sizeof(*p->rows));
		p->ids = xreallocarray(p->ids, *cap, sizeof(*p->ids));
	}
	p->rows[p->n] = row;
	p->ids[p->n] = id;
	p->n++;
}

/* Bind the common parameters of a page or count statement. */
static void
bind_range(sqlite3_stmt *s, const struct plan_job *j, int64_t uid,
    int64_t lo, int64_t hi, int64_t limit)
{
	sqlite3_bind_int64(s, 1, uid);
	sqlite3_bind_int64(s, 2, lo);
	sqlite3_bind_int64(s, 3, hi);
	sqlite3_bind_int64(s, 4, limit);
	if (j->q.with_kind != MAM_WITH_NONE)
		sqlite3_bind_text(s, 5, j->q.with, -1, SQLITE_STATIC);
}

/*
 * Up to limit matching rows in [lo, hi] after skipping offset, ascending
 * or (desc) descending, appended to p.  0 or -1.
 */
static int
select_rows(struct plan_job *j, int64_t uid, int64_t lo, int64_t hi,
    int desc, int64_t limit, int64_t offset, struct mam_page *p)
{
	size_t cap = p->n;
	sqlite3_stmt *s;
	int rc;

	if (j->q.nids > 0) {
		/* The 'ids' field: the selection made in the plan. */
		for (size_t k = 0; k < j->nsel && limit > 0; k++) {
			size_t i = desc ? j->nsel - 1 - k : k;

			if (j->sel_rows[i] < lo || j->sel_rows[i] > hi)
				continue;
			if (offset > 0) {
				offset--;
				continue;
			}
			page_add(p, &cap, j->sel_rows[i], j->sel_ids[i]);
			limit--;
		}
		return 0;
	}
	if (lo > hi || limit <= 0)
		return 0;
	s = store_sql(desc ? sql_page_bwd[j->q.room][j->q.with_kind]
	                   : sql_page_fwd[j->q.room][j->q.with_kind]);
	if (s == NULL)
		return -1;
	bind_range(s, j, uid, lo, hi, limit);
	if (!desc)
		sqlite3_bind_int64(s, 6, offset);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		page_add(p, &cap, sqlite3_column_int64(s, 0),
		    (uint64_t)sqlite3_column_int64(s, 1));
	if (rc != SQLITE_DONE)
		store_sql_warn("mam: page");
	store_sql_done(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Matching rows in [lo, hi], counting at most cap + 1; -1 on error. */
static long
count_rows(struct plan_job *j, int64_t uid, int64_t lo, int64_t hi, long cap)
{
	sqlite3_stmt *s;
	long n = 0;

	if (j->q.nids > 0) {
		for (size_t i = 0; i < j->nsel; i++)
			n += j->sel_rows[i] >= lo && j->sel_rows[i] <= hi;
		return n;
	}
	if (lo > hi)
		return 0;
	if ((s = store_sql(sql_count[j->q.room][j->q.with_kind])) == NULL)
		return -1;
	bind_range(s, j, uid, lo, hi, cap + 1);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = (long)sqlite3_column_int64(s, 0);
	else {
		store_sql_warn("mam: count");
		n = -1;
	}
	store_sql_done(s);
	return n;
}

/* Whether a row's other party passes the 'with' filter. */
static int
with_matches(const struct plan_job *j, const char *bare, const char *full)
{
	switch (j->q.with_kind) {
	case MAM_WITH_BARE:
		return strcmp(bare, j->q.with) == 0;
	case MAM_WITH_FULL:
		return strcmp(full, j->q.with) == 0;
	default:
		return 1;
	}
}

static int
cmp_row(const void *a, const void *b)
{
	const int64_t *x = a, *y = b;

	return *x < *y ? -1 : *x > *y;
}

/* The 'ids' field (§4.1.3): every id must exist (else NOT_FOUND); those
 * passing 'with' make the selection, sorted by internal id. */
static enum store_status
select_ids(struct plan_job *j, int64_t uid)
{
	int64_t(*pairs)[2] = xreallocarray(NULL, j->q.nids, sizeof(*pairs));
	size_t n = 0;
	enum store_status st = STORE_OK;

	for (size_t i = 0; i < j->q.nids; i++) {
		char *bare = NULL, *full = NULL;
		int64_t row;
		int r = resolve(j->q.room, uid, j->q.ids[i], &row, &bare,
		    &full);

		if (r <= 0) {
			st = r < 0 ? STORE_ERROR : STORE_NOT_FOUND;
			break;
		}
		if (with_matches(j, bare, full)) {
			pairs[n][0] = row;
			pairs[n][1] = (int64_t)j->q.ids[i];
			n++;
		}
		free(bare);
		free(full);
	}
	if (st == STORE_OK) {
		qsort(pairs, n, sizeof(*pairs), cmp_row);
		j->sel_rows = xreallocarray(NULL, n + 1, sizeof(*j->sel_rows));
		j->sel_ids = xreallocarray(NULL, n + 1, sizeof(*j->sel_ids));
		for (size_t i = 0; i < n; i++) {
			if (j->nsel > 0 &&
			    j->sel_rows[j->nsel - 1] == pairs[i][0])
				continue; /* the same id twice */
			j->sel_rows[j->nsel] = pairs[i][0];
			j->sel_ids[j->nsel] = (uint64_t)pairs[i][1];
			j->nsel++;
		}
	}
	free(pairs);
	return st;
}

/* An id given in the query to its internal id: STORE_OK, NOT_FOUND. */
static enum store_status
resolve_bound(int kind, int64_t uid, uint64_t id, int64_t *row)
{
	int r = resolve(kind, uid, id, row, NULL, NULL);

	return r < 0 ? STORE_ERROR : r == 0 ? STORE_NOT_FOUND : STORE_OK;
}

static int64_t
max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

static int64_t
min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static enum store_status
run_plan(struct store_job *job)
{
	struct plan_job *j = (struct plan_job *)job;
	const struct mam_query *q = &j->q;
	struct mam_page *p;
	int64_t uid, lo, hi, row, plo, phi;
	enum store_status st;
	long c;
	size_t more;

	if ((uid = owner_id(q->room, j->user, j->host)) < 0 ||
	    (uid == 0 && !q->room))
		return uid < 0 ? STORE_ERROR : STORE_NOT_FOUND;
	/* The result set: the form's filters as an id range (§4.1). */
	if (stamp_range(q->room, q->start_ms, q->end_ms, &lo, &hi) < 0)
		return STORE_ERROR;
	if (q->has_after_id) {
		if ((st = resolve_bound(q->room, uid, q->after_id, &row)) != STORE_OK)
			return st;
		lo = max64(lo, row + 1);
	}
	if (q->has_before_id) {
		if ((st = resolve_bound(q->room, uid, q->before_id, &row)) != STORE_OK)
			return st;
		hi = min64(hi, row - 1);
	}
	if (q->nids > 0 && (st = select_ids(j, uid)) != STORE_OK)
		return st;
	/* The page (XEP-0059 §2.2-§2.6). */
	p = j->page = xcalloc(1, sizeof(*p));
	p->uid = uid;
	p->room = q->room;
	plo = lo;
	phi = hi;
	if (q->has_after) {
		if ((st = resolve_bound(q->room, uid, q->after, &row)) != STORE_OK)
			return st;
		plo = max64(plo, row + 1);
	}
	if (q->before == MAM_BEFORE_ID) {
		if ((st = resolve_bound(q->room, uid, q->before_id_rsm, &row)) !=
		    STORE_OK)
			return st;
		phi = min64(phi, row - 1);
	}
	if (select_rows(j, uid, plo, phi, q->before != MAM_BEFORE_NONE,
	        (int64_t)q->max + 1, q->index > 0 ? q->index : 0, p) < 0)
		return STORE_ERROR;
	more = p->n > q->max;
	if (more)
		p->n = q->max;
	/* Paging backwards, 'complete' means the start was reached. */
	p->complete = !more;
	if (q->before != MAM_BEFORE_NONE)
		for (size_t a = 0, b = p->n; a + 1 < b; a++, b--) {
			int64_t r = p->rows[a];
			uint64_t i = p->ids[a];

			p->rows[a] = p->rows[b - 1];
			p->ids[a] = p->ids[b - 1];
			p->rows[b - 1] = r;
			p->ids[b - 1] = i;
		}
	/* Count and index, when cheap enough (see MAM_COUNT_CAP). */
	p->count = p->index = -1;
	if ((c = count_rows(j, uid, lo, hi, MAM_COUNT_CAP)) < 0)
		return STORE_ERROR;
	if (c <= MAM_COUNT_CAP)
		p->count = c;
	if (p->n > 0) {
		if ((c = count_rows(j, uid, lo, p->rows[0] - 1,
		         MAM_COUNT_CAP)) < 0)
			return STORE_ERROR;
		if (c <= MAM_COUNT_CAP)
			p->index = c;
	}
	return STORE_OK;
}

void
mam_page_free(struct mam_page *p)
{
	if (p == NULL)
		return;
	free(p->rows);
	free(p->ids);
	free(p);
}

static void
complete_plan(struct store_job *job)
{
	struct plan_job *j = (struct plan_job *)job;
	struct mam_page *p = job->status == STORE_OK ? j->page : NULL;

	if (p != NULL)
		j->page = NULL; /* handed over */
	j->cb(job->owner, job->tag, job->status, p);
}

static void
free_plan(struct store_job *job)
{
	struct plan_job *j = (struct plan_job *)job;

	mam_page_free(j->page);
	free(j->user);
	free(j->host);
	free((char *)j->q.with);
	free((uint64_t *)j->q.ids);
	free(j->sel_rows);
	free(j->sel_ids);
	free(j);
}

static const struct store_job_ops plan_ops = {
    .name = "mam query",
    .writes = 0,
    .run = run_plan,
    .complete = complete_plan,
    .free = free_plan,
};

void
mam_query_plan(const char *user, const char *host, const struct mam_query *q,
    mam_plan_cb cb, uint64_t owner, uint64_t tag)
{
	struct plan_job *j = xcalloc(1, sizeof(*j));

	j->job.ops = &plan_ops;
	j->job.owner = owner;
	j->job.tag = tag;
	j->user = xstrdup(user);
	j->host = xstrdup(host);
	j->q = *q;
	j->q.room = q->room != 0;
	j->q.with = q->with ? xstrdup(q->with) : NULL;
	if (q->with == NULL)
		j->q.with_kind = MAM_WITH_NONE;
	if (q->nids > 0) {
		uint64_t *ids = xreallocarray(NULL, q->nids, sizeof(*ids));

		memcpy(ids, q->ids, q->nids * sizeof(*ids));
		j->q.ids = ids;
	} else
		j->q.ids = NULL;
	j->cb = cb;
	store_job_submit(&j->job);
}

/* Reading a page's messages. */

#define SQL_ROW(T, O)                                                          \
	"SELECT sid, stamp, stanza FROM " T " WHERE id = ?1 AND " O " = ?2"
static const char *const sql_row[] = BOTH(SQL_ROW);

struct rows_job {
	struct store_job job;
	int kind;
	int64_t uid;
	int64_t *want;
	size_t nwant, consumed;
	size_t max_bytes;
	struct mam_row *rows;
	size_t n;
	mam_rows_cb cb;
};

static enum store_status
run_rows(struct store_job *job)
{
	struct rows_job *j = (struct rows_job *)job;
	size_t bytes = 0;

	j->rows = xcalloc(j->nwant ? j->nwant : 1, sizeof(*j->rows));
	for (; j->consumed < j->nwant && (j->n == 0 || bytes < j->max_bytes);
	     j->consumed++) {
		sqlite3_stmt *s = store_sql(sql_row[j->kind]);
		int rc;

		if (s == NULL)
			return STORE_ERROR;
		sqlite3_bind_int64(s, 1, j->want[j->consumed]);
		sqlite3_bind_int64(s, 2, j->uid);
		if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			struct mam_row *r = &j->rows[j->n++];
			const char *t = (const char *)sqlite3_column_text(s, 2);

			r->id = (uint64_t)sqlite3_column_int64(s, 0);
			r->stamp_ms = sqlite3_column_int64(s, 1);
			r->len = (size_t)sqlite3_column_bytes(s, 2);
			r->stanza = xstrndup(t ? t : "", r->len);
			bytes += r->len;
		} else if (rc != SQLITE_DONE) {
			store_sql_warn("mam: read");
			store_sql_done(s);
			return STORE_ERROR;
		}
		store_sql_done(s);
	}
	return STORE_OK;
}

static void
complete_rows(struct store_job *job)
{
	struct rows_job *j = (struct rows_job *)job;

	if (job->status != STORE_OK)
		j->cb(job->owner, job->tag, job->status, NULL, 0, 0);
	else
		j->cb(job->owner, job->tag, STORE_OK, j->rows, j->n,
		    j->consumed);
}

static void
free_rows(struct store_job *job)
{
	struct rows_job *j = (struct rows_job *)job;

	for (size_t i = 0; i < j->n; i++)
		free((char *)j->rows[i].stanza);
	free(j->rows);
	free(j->want);
	free(j);
}

static const struct store_job_ops rows_ops = {
    .name = "mam read",
    .writes = 0,
    .run = run_rows,
    .complete = complete_rows,
    .free = free_rows,
};

void
mam_query_rows(const struct mam_page *page, size_t from, size_t count,
    size_t max_bytes, mam_rows_cb cb, uint64_t owner, uint64_t tag)
{
	struct rows_job *j = xcalloc(1, sizeof(*j));

	if (from > page->n)
		from = page->n;
	if (count > page->n - from)
		count = page->n - from;
	j->job.ops = &rows_ops;
	j->job.owner = owner;
	j->job.tag = tag;
	j->uid = page->uid;
	j->kind = page->room ? K_ROOM : K_USER;
	j->nwant = count;
	j->want = xreallocarray(NULL, count ? count : 1, sizeof(*j->want));
	memcpy(j->want, page->rows + from, count * sizeof(*j->want));
	j->max_bytes = max_bytes;
	j->cb = cb;
	store_job_submit(&j->job);
}

/* Metadata (§5). */

#define SQL_FIRST(T, O)                                                        \
	"SELECT sid, stamp FROM " T " WHERE " O " = ?1 ORDER BY id LIMIT 1"
#define SQL_LAST(T, O)                                                         \
	"SELECT sid, stamp FROM " T " WHERE " O " = ?1 ORDER BY id DESC LIMIT 1"
static const char *const sql_first[] = BOTH(SQL_FIRST);
static const char *const sql_last[] = BOTH(SQL_LAST);

struct meta_job {
	struct store_job job;
	int kind;                       /* K_USER, K_ROOM */
	char *user, *host;
	struct mam_edge edge[2];
	int found;
	mam_metadata_cb cb;
};

static enum store_status
run_meta(struct store_job *job)
{
	struct meta_job *j = (struct meta_job *)job;
	int64_t uid = owner_id(j->kind, j->user, j->host);

	if (uid < 0)
		return STORE_ERROR;
	if (uid == 0)   /* no account; a room without an archive: empty */
		return j->kind == K_ROOM ? STORE_OK : STORE_NOT_FOUND;
	for (int i = 0; i < 2; i++) {
		sqlite3_stmt *s = store_sql(i == 0 ? sql_first[j->kind] :
		    sql_last[j->kind]);
		int rc;

		if (s == NULL)
			return STORE_ERROR;
		sqlite3_bind_int64(s, 1, uid);
		if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			j->edge[i].id = (uint64_t)sqlite3_column_int64(s, 0);
			j->edge[i].stamp_ms = sqlite3_column_int64(s, 1);
			j->found = 1;
		} else if (rc != SQLITE_DONE)
			store_sql_warn("mam: metadata");
		store_sql_done(s);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return STORE_ERROR;
	}
	return STORE_OK;
}

static void
complete_meta(struct store_job *job)
{
	struct meta_job *j = (struct meta_job *)job;
	int ok = job->status == STORE_OK && j->found;

	j->cb(job->owner, job->tag, job->status, ok ? &j->edge[0] : NULL,
	    ok ? &j->edge[1] : NULL);
}

static void
free_meta(struct store_job *job)
{
	struct meta_job *j = (struct meta_job *)job;

	free(j->user);
	free(j->host);
	free(j);
}

static const struct store_job_ops meta_ops = {
    .name = "mam metadata",
    .writes = 0,
    .run = run_meta,
    .complete = complete_meta,
    .free = free_meta,
};

static void
metadata(int kind, const char *user, const char *host, mam_metadata_cb cb,
    uint64_t owner, uint64_t tag)
{
	struct meta_job *j = xcalloc(1, sizeof(*j));

	j->kind = kind;
	j->job.ops = &meta_ops;
	j->job.owner = owner;
	j->job.tag = tag;
	j->user = xstrdup(user);
	j->host = xstrdup(host);
	j->cb = cb;
	store_job_submit(&j->job);
}

void
mam_metadata(const char *user, const char *host, mam_metadata_cb cb,
    uint64_t owner, uint64_t tag)
{
	metadata(K_USER, user, host, cb, owner, tag);
}

void
mam_room_metadata(const char *node, const char *service, mam_metadata_cb cb,
    uint64_t owner, uint64_t tag)
{
	metadata(K_ROOM, node, service, cb, owner, tag);
}

/* Moderation (XEP-0425): a room's message replaced by a tombstone. */

#define NS_OCCUPANT_ID "urn:xmpp:occupant-id:0" /* XEP-0421 */

static const char sql_room_row[] =
    "SELECT id, stanza FROM muc_archive WHERE room_id = ?1 AND sid = ?2";
static const char sql_room_replace[] =
    "UPDATE muc_archive SET stanza = ?2 WHERE id = ?1";

struct retract_job {
	struct store_job job;
	char *node, *service;
	uint64_t id;
	char *retracted;
	store_status_cb cb;
};

/*
 * The tombstone of a stored message: its attributes (from, type, id),
 * its <stanza-id/> and <occupant-id/>, and retracted in place of
 * everything else.  NULL if either cannot be parsed.
 */
static char *
tombstone(const char *stanza, size_t len, const char *retracted)
{
	struct xml_limits lim = {len + strlen(retracted) + 1, 1024, 1024,
	    SIZE_MAX};
	struct xel *m, *r, *c, *next;
	struct buf b = BUF_INIT;
	char *out = NULL;

	if ((m = xml_parse_element(stanza, len, "jabber:client", &lim)) ==
	    NULL)
		return NULL;
	if ((r = xml_parse_element(retracted, strlen(retracted),
	         "jabber:client", &lim)) != NULL) {
		for (c = m->children; c != NULL; c = next) {
			next = c->next;
			if (c->name == NULL || !(xel_is(c, "stanza-id", NS_SID) ||
			                           xel_is(c, "occupant-id",
			                               NS_OCCUPANT_ID)))
				xel_remove(c);
		}
		xel_append_copy(m, r);
		xel_serialize(m, &b, "");
		out = buf_strdup(&b);
		buf_free(&b);
		arena_free(r->arena);
	}
	arena_free(m->arena);
	return out;
}

static enum store_status
run_retract(struct store_job *job)
{
	struct retract_job *j = (struct retract_job *)job;
	sqlite3_stmt *s;
	int64_t room, row = 0;
	char *stone = NULL;
	int rc;

	if ((room = room_archive_id(j->node, j->service, 0)) <= 0)
		return room < 0 ? STORE_ERROR : STORE_NOT_FOUND;
	if ((s = store_sql(sql_room_row)) == NULL)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, room);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)j->id);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		row = sqlite3_column_int64(s, 0);
		stone = tombstone((const char *)sqlite3_column_text(s, 1),
		    (size_t)sqlite3_column_bytes(s, 1), j->retracted);
	} else if (rc != SQLITE_DONE)
		store_sql_warn("mam: retract");
	store_sql_done(s);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? STORE_NOT_FOUND : STORE_ERROR;
	if (stone == NULL)
		return STORE_ERROR;
	if ((s = store_sql(sql_room_replace)) == NULL) {
		free(stone);
		return STORE_ERROR;
	}
	sqlite3_bind_int64(s, 1, row);
	sqlite3_bind_text(s, 2, stone, -1, SQLITE_STATIC);
	rc = store_sql_write(s, "mam: tombstone", STORE_ERROR);
	free(stone);
	return rc;
}

static void
complete_retract(struct store_job *job)
{
	struct retract_job *j = (struct retract_job *)job;

	j->cb(job->owner, job->tag, job->status);
}

static void
free_retract(struct store_job *job)
{
	struct retract_job *j = (struct retract_job *)job;

	free(j->node);
	free(j->service);
	free(j->retracted);
	free(j);
}

static const struct store_job_ops retract_ops = {
    .name = "mam room retract",
    .writes = 1,
    .run = run_retract,
    .complete = complete_retract,
    .free = free_retract,
};

void
mam_room_retract(const char *node, const char *service, uint64_t id,
    const char *retracted, store_status_cb cb, uint64_t owner, uint64_t tag)
{
	struct retract_job *j = xcalloc(1, sizeof(*j));

	j->job.ops = &retract_ops;
	j->job.owner = owner;
	j->job.tag = tag;
	j->node = xstrdup(node);
	j->service = xstrdup(service);
	j->id = id;
	j->retracted = xstrdup(retracted);
	j->cb = cb;
	store_job_submit(&j->job);
}

/* Retention. */

#define SQL_EXPIRE(T, O)                                                       \
	"DELETE FROM " T " WHERE id IN"                                        \
	" (SELECT id FROM " T " WHERE id < ?1 ORDER BY id LIMIT ?2)"
static const char *const sql_expire[] = BOTH(SQL_EXPIRE);

struct expire_job {
	struct store_job job;
	int64_t cutoff;
	unsigned batch;
	size_t deleted;
	void (*done)(size_t deleted, int ok);
};

static enum store_status
run_expire(struct store_job *job)
{
	struct expire_job *j = (struct expire_job *)job;
	sqlite3_stmt *s;
	int64_t below;

	/* Users' archives and rooms': a batch of each at most, so that
	 * "deleted >= batch" means there may be more. */
	for (int kind = 0; kind < K_KINDS; kind++) {
		if (first_id_at(kind, j->cutoff, &below) < 0)
			return STORE_ERROR;
		if ((s = store_sql(sql_expire[kind])) == NULL)
			return STORE_ERROR;
		sqlite3_bind_int64(s, 1, below);
		sqlite3_bind_int(s, 2, (int)j->batch);
		if (sqlite3_step(s) != SQLITE_DONE) {
			store_sql_warn("mam: expire");
			store_sql_done(s);
			return STORE_ERROR;
		}
		j->deleted += (size_t)sqlite3_changes(store_db());
		store_sql_done(s);
	}
	return STORE_OK;
}

static void
complete_expire(struct store_job *job)
{
	struct expire_job *j = (struct expire_job *)job;

	j->done(job->status == STORE_OK ? j->deleted : 0,
	    job->status == STORE_OK);
}

static void
free_expire(struct store_job *job)
{
	free(job);
}

static const struct store_job_ops expire_ops = {
    .name = "mam expire",
    .writes = 1,
    .run = run_expire,
    .complete = complete_expire,
    .free = free_expire,
};

void
mam_expire(int64_t cutoff_ms, unsigned batch,
    void (*done)(size_t deleted, int ok))
{
	struct expire_job *j = xcalloc(1, sizeof(*j));

	j->job.ops = &expire_ops;
	j->cutoff = cutoff_ms;
	j->batch = batch;
	j->done = done;
	store_job_submit(&j->job);
}

/* History dumps (the control socket). */

#define HIST_SEEK(T, O, w)                                                     \
	"SELECT id FROM " T " WHERE " O " = ?1" w                              \
	" AND id >= ?2 AND id <= ?3 ORDER BY id DESC LIMIT 1 OFFSET ?4"
#define HIST_READ(T, O, w)                                                     \
	"SELECT id, sid, stamp, outgoing, with_bare, stanza FROM " T          \
	" WHERE " O " = ?1" w " AND id > ?2 AND id <= ?3 ORDER BY id"          \
	" LIMIT ?4"
#define HIST_SEEKS(T, O)                                                       \
	{HIST_SEEK(T, O, ""), HIST_SEEK(T, O, W_BARE), HIST_SEEK(T, O, W_FULL)}
#define HIST_READS(T, O)                                                       \
	{HIST_READ(T, O, ""), HIST_READ(T, O, W_BARE), HIST_READ(T, O, W_FULL)}

static const char *const sql_hist_seek[K_KINDS][3] = BOTH(HIST_SEEKS);
static const char *const sql_hist_read[K_KINDS][3] = BOTH(HIST_READS);

struct hist_raw {
	uint64_t id;
	int64_t stamp;
	int outgoing;
	char *with;
	char *stanza;
	size_t len;
};

struct hist_job {
	struct store_job job;
	int kind;                       /* K_USER, K_ROOM */
	char *user, *host, *with;
	enum mam_with with_kind;
	int64_t since, until;
	uint64_t limit;
	struct mam_history_pos pos;
	struct hist_raw *raw;
	size_t n;
	int done;
	mam_history_cb cb;
};

static void
hist_bind(sqlite3_stmt *s, const struct hist_job *j, int64_t uid)
{
	sqlite3_bind_int64(s, 1, uid);
	if (j->with_kind != MAM_WITH_NONE)
		sqlite3_bind_text(s, 5, j->with, -1, SQLITE_STATIC);
}

/* Phase 1: find the first of the last 'limit' rows, one step. */
static int
hist_seek(struct hist_job *j, int64_t uid)
{
	struct mam_history_pos *pos = &j->pos;
	uint64_t step = pos->seek_left < HISTORY_SEEK_STEP
	                    ? pos->seek_left
	                    : HISTORY_SEEK_STEP;
	sqlite3_stmt *s = store_sql(sql_hist_seek[j->kind][j->with_kind]);
	int rc;

	if (s == NULL)
		return -1;
	hist_bind(s, j, uid);
	sqlite3_bind_int64(s, 2, pos->lo);
	sqlite3_bind_int64(s, 3, pos->seek_hi);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)step - 1);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(s, 0);

		pos->seek_left -= step;
		if (pos->seek_left == 0) {
			pos->phase = 2;
			pos->after = id - 1;
		} else
			pos->seek_hi = id - 1;
	} else if (rc == SQLITE_DONE) {
		pos->phase = 2; /* fewer rows than the limit: all of them */
		pos->after = pos->lo - 1;
	} else
		store_sql_warn("mam: history seek");
	store_sql_done(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* Phase 2: the next chunk. */
static int
hist_chunk(struct hist_job *j, int64_t uid)
{
	sqlite3_stmt *s = store_sql(sql_hist_read[j->kind][j->with_kind]);
	size_t bytes = 0;
	int rc;

	if (s == NULL)
		return -1;
	hist_bind(s, j, uid);
	sqlite3_bind_int64(s, 2, j->pos.after);
	sqlite3_bind_int64(s, 3, j->pos.hi);
	sqlite3_bind_int(s, 4, HISTORY_CHUNK_ROWS);
	j->raw = xcalloc(HISTORY_CHUNK_ROWS, sizeof(*j->raw));
	j->done = 1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct hist_raw *r = &j->raw[j->n++];
		const char *t = (const char *)sqlite3_column_text(s, 5);

		j->pos.after = sqlite3_column_int64(s, 0);
		r->id = (uint64_t)sqlite3_column_int64(s, 1);
		r->stamp = sqlite3_column_int64(s, 2);
		r->outgoing = sqlite3_column_int(s, 3);
		r->with = xstrdup((const char *)sqlite3_column_text(s, 4));
		r->len = (size_t)sqlite3_column_bytes(s, 5);
		r->stanza = xstrndup(t ? t : "", r->len);
		bytes += r->len;
		if (j->n == HISTORY_CHUNK_ROWS || bytes >= HISTORY_CHUNK_BYTES) {
			j->done = 0;
			break;
		}
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		store_sql_warn("mam: history read");
	store_sql_done(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static enum store_status
run_hist(struct store_job *job)
{
	struct hist_job *j = (struct hist_job *)job;
	struct mam_history_pos *pos = &j->pos;
	int64_t uid = owner_id(j->kind, j->user, j->host);

	if (uid < 0)
		return STORE_ERROR;
	if (uid == 0) {
		/* No such account; a room without an archive is empty. */
		if (j->kind == K_USER)
			return STORE_NOT_FOUND;
		pos->phase = 2;
		j->done = 1;
		return STORE_OK;
	}
	if (pos->phase == 0) {
		/* Fix the range now: later messages are not part of it. */
		if (stamp_range(j->kind, j->since, j->until, &pos->lo,
		        &pos->hi) < 0)
			return STORE_ERROR;
		if (pos->hi == INT64_MAX) {
			int r = query_id(sql_max_id[j->kind], &pos->hi);

			if (r < 0)
				return STORE_ERROR;
			if (r == 0)
				pos->hi = 0;
		}
		pos->phase = j->limit > 0 ? 1 : 2;
		pos->seek_hi = pos->hi;
		pos->seek_left = j->limit;
		pos->after = pos->lo - 1;
	}
	if (pos->phase == 1 && hist_seek(j, uid) < 0)
		return STORE_ERROR;
	if (pos->phase == 2 && hist_chunk(j, uid) < 0)
		return STORE_ERROR;
	return STORE_OK;
}

/* The first child element named name in jabber:client, as text. */
static const char *
child_text(const struct xel *el, const char *name)
{
	struct xel *c = xel_child(el, name, NS_CLIENT);

	return c ? xel_text(c) : "";
}

static void
complete_hist(struct store_job *job)
{
	struct hist_job *j = (struct hist_job *)job;
	struct mam_history_row *rows;
	struct xel **parsed;

	if (job->status != STORE_OK) {
		j->cb(job->owner, job->tag, job->status, NULL, 0, NULL);
		return;
	}
	rows = xcalloc(j->n ? j->n : 1, sizeof(*rows));
	parsed = xcalloc(j->n ? j->n : 1, sizeof(*parsed));
	for (size_t i = 0; i < j->n; i++) {
		struct hist_raw *r = &j->raw[i];
		struct xml_limits lim = {r->len + 1, 1024, 1024, SIZE_MAX};
		struct xel *m = xml_parse_element(r->stanza, r->len, NS_CLIENT,
		    &lim);
		const char *a;

		parsed[i] = m;
		rows[i].id = r->id;
		rows[i].stamp_ms = r->stamp;
		rows[i].outgoing = r->outgoing;
		rows[i].with = r->with;
		rows[i].stanza = r->stanza;
		rows[i].len = r->len;
		rows[i].from = m && (a = xel_attr(m, "from")) ? a : "";
		rows[i].to = m && (a = xel_attr(m, "to")) ? a : "";
		rows[i].body = m ? child_text(m, "body") : "";
	}
	j->cb(job->owner, job->tag, STORE_OK, rows, j->n,
	    j->pos.phase == 2 && j->done ? NULL : &j->pos);
	for (size_t i = 0; i < j->n; i++)
		if (parsed[i] != NULL)
			arena_free(parsed[i]->arena);
	free(parsed);
	free(rows);
}

static void
free_hist(struct store_job *job)
{
	struct hist_job *j = (struct hist_job *)job;

	for (size_t i = 0; i < j->n; i++) {
		free(j->raw[i].with);
		free(j->raw[i].stanza);
	}
	free(j->raw);
	free(j->user);
	free(j->host);
	free(j->with);
	free(j);
}

static const struct store_job_ops hist_ops = {
    .name = "mam history",
    .writes = 0,
    .run = run_hist,
    .complete = complete_hist,
    .free = free_hist,
};

static void
history_read(int kind, const char *user, const char *host, const char *with,
    int64_t since_ms, int64_t until_ms, uint64_t limit,
    const struct mam_history_pos *pos, mam_history_cb cb, uint64_t owner,
    uint64_t tag)
{
	struct hist_job *j = xcalloc(1, sizeof(*j));

	j->kind = kind;
	j->job.ops = &hist_ops;
	j->job.owner = owner;
	j->job.tag = tag;
	j->user = xstrdup(user);
	j->host = xstrdup(host);
	if (with != NULL) {
		j->with = xstrdup(with);
		j->with_kind = strchr(with, '/') ? MAM_WITH_FULL : MAM_WITH_BARE;
	}
	j->since = since_ms;
	j->until = until_ms;
	j->limit = limit;
	j->pos = *pos;
	j->cb = cb;
	store_job_submit(&j->job);
}

void
mam_history_read(const char *user, const char *host, const char *with,
    int64_t since_ms, int64_t until_ms, uint64_t limit,
    const struct mam_history_pos *pos, mam_history_cb cb, uint64_t owner,
    uint64_t tag)
{
	history_read(K_USER, user, host, with, since_ms, until_ms, limit, pos,
	    cb, owner, tag);
}

void
mam_room_history_read(const char *node, const char *service, uint64_t limit,
    const struct mam_history_pos *pos, mam_history_cb cb, uint64_t owner,
    uint64_t tag)
{
	history_read(K_ROOM, node, service, NULL, MAM_STAMP_NONE,
	    MAM_STAMP_NONE, limit, pos, cb, owner, tag);
}
