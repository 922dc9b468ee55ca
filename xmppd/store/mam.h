/*
 * The message archive (XEP-0313) behind mod_mam.c and the control
 * socket's "history" command: archive ids (XEP-0359), XEP-0082 stamps,
 * archiving preferences (XEP-0441), and the storage jobs of
 * mam_archive.c.  Every call that reaches the database is asynchronous
 * (store.h rules: strings are copied, callbacks run later on the loop
 * thread, owner/tag come back untouched, results are valid only during the
 * callback) and every job is bounded.
 *
 * The archive table: one row per message and archive, with an internal id
 * (the rowid, increasing in arrival order), a public id (64 random bits,
 * the XEP-0359 stanza-id and XEP-0313 UID) and a millisecond stamp that
 * never decreases with the internal id, so a time range is an id range
 * found by binary search.
 *
 * Rooms (XEP-0313 on a room JID, XEP-0045 logging) have archives of
 * their own in the muc_archive table, of the same shape: where a call
 * takes a "room" flag, user and host are the room's node and service,
 * with_full is the sender's room JID (room@service/nick) and with_bare
 * the room's.  A room's archive exists from its first message; querying
 * one that has none yields an empty page.
 */
#ifndef XMPPD_MAM_H
#define XMPPD_MAM_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct xel;

#define NS_MAM "urn:xmpp:mam:2"
#define NS_MAM_EXTENDED "urn:xmpp:mam:2#extended"
#define NS_SID "urn:xmpp:sid:0"
#define NS_RSM "http://jabber.org/protocol/rsm"
#define NS_FORWARD "urn:xmpp:forward:0"

/* Archive ids: 64 random bits written as 16 lowercase hex digits. */
#define MAM_ID_LEN 16
uint64_t mam_id_new(void);
void mam_id_format(uint64_t id, char out[MAM_ID_LEN + 1]);
/* 0, or -1 if s is not an id this server could have made. */
int mam_id_parse(const char *s, uint64_t *id);

/* XEP-0082 DateTime in UTC with milliseconds ("…T10:00:00.123Z"). */
void mam_stamp_format(int64_t ms, char *out, size_t len);
/* Parse a XEP-0082 DateTime (any fraction, Z or ±hh:mm): the instant
 * rounded down and up to milliseconds.  0, or -1 if malformed. */
int mam_stamp_parse(const char *s, int64_t *floor_ms, int64_t *ceil_ms);

/* Preferences (XEP-0441).  The mode values are stored: never renumber. */
enum mam_mode { MAM_MODE_ALWAYS = 0, MAM_MODE_NEVER = 1, MAM_MODE_ROSTER = 2 };

struct mam_prefs {
	enum mam_mode mode;
	char **always, **never; /* prepared JIDs, bare or full */
	size_t nalways, nnever;
};

enum mam_decision {
	MAM_SKIP,
	MAM_STORE,
	MAM_IF_ROSTER, /* store if the contact's bare JID is a roster item */
};

void mam_prefs_free(struct mam_prefs *p); /* the lists, not p itself */
void mam_prefs_copy(struct mam_prefs *dst, const struct mam_prefs *src);
/* The mode's name ("always", "never", "roster") and back (-1: unknown). */
const char *mam_mode_name(enum mam_mode m);
int mam_mode_parse(const char *s);
/*
 * Whether a message to or from target (full: the 'to' of an outgoing or
 * the 'from' of an incoming message, XEP-0441 §2.3.2/§2.3.3; bare: the
 * same without resource) goes to the archive.  A listed full JID matches
 * full exactly, a listed bare JID matches bare (§2.3.1).  'never' wins
 * over 'always' when a JID is in both lists.
 */
enum mam_decision mam_prefs_decide(const struct mam_prefs *p,
    const char *full, const char *bare);

/* Storing. */

struct mam_entry {
	const char *user, *host;  /* the archive's owner */
	int room;                 /* a room's archive: no preferences,
	                             roster or block list apply */
	uint64_t id;              /* public id, from mam_id_new() */
	int64_t stamp_ms;         /* raised to the last stored stamp */
	int outgoing;             /* sent by the owner */
	const char *with_full;    /* the other party as addressed */
	const char *with_bare;
	const char *stanza;       /* serialized, with xmlns='jabber:client' */
	size_t len;
	/* Decisions the loop thread could not make: */
	int check_prefs;          /* apply the stored preferences */
	int check_roster;         /* store only if with_bare is a roster
	                             item of the owner */
	/* Incoming: the sender's JID in the forms a block list item can
	 * match (full, bare, domain/resource, domain; NULL where a form does
	 * not apply).  Nothing is stored if the owner blocks the sender
	 * (XEP-0313 §6.1). */
	const char *blocked_forms[4];
};
/* Queue the row.  Nothing is reported: a failure is logged. */
void mam_archive_store(const struct mam_entry *e);

/* Preferences in storage. */
typedef void (*mam_prefs_cb)(uint64_t owner, uint64_t tag,
    enum store_status st, const struct mam_prefs *p);
/* The stored preferences of user@host (the defaults if none are stored):
 * STORE_OK or STORE_NOT_FOUND (no such account). */
void mam_prefs_get(const char *user, const char *host, mam_prefs_cb cb,
    uint64_t owner, uint64_t tag);
/* Replace them: cb after the commit, with STORE_OK or STORE_NOT_FOUND. */
void mam_prefs_put(const char *user, const char *host,
    const struct mam_prefs *p, store_status_cb cb, uint64_t owner,
    uint64_t tag);
/*
 * Every stored preference, in chunks (for the loop thread's cache):
 * each(user, host, prefs) per row, then done(ok) once.  One listing at a
 * time.
 */
typedef void (*mam_prefs_each_fn)(const char *user, const char *host,
    const struct mam_prefs *p);
void mam_prefs_load_all(mam_prefs_each_fn each, void (*done)(int ok));

/* Querying (XEP-0313 §4). */

#define MAM_STAMP_NONE INT64_MIN

enum mam_with { MAM_WITH_NONE, MAM_WITH_BARE, MAM_WITH_FULL };
enum mam_before { MAM_BEFORE_NONE, MAM_BEFORE_LAST, MAM_BEFORE_ID };

struct mam_query {
	int room;                  /* a room's archive */
	/* The form (which messages make up the result set). */
	enum mam_with with_kind;
	const char *with;          /* prepared JID */
	int64_t start_ms, end_ms;  /* MAM_STAMP_NONE if absent */
	int has_after_id, has_before_id;
	uint64_t after_id, before_id;
	const uint64_t *ids;       /* the 'ids' field, nids of them */
	size_t nids;
	/* RSM (XEP-0059): which page. */
	unsigned max;              /* already clamped */
	int has_after;
	uint64_t after;
	enum mam_before before;
	uint64_t before_id_rsm;
	long index;                /* -1: none */
};

/* One planned page: internal ids in chronological order. */
struct mam_page {
	int64_t uid;               /* owner's user (or room archive) id */
	int room;
	int64_t *rows;             /* internal ids */
	uint64_t *ids;             /* their public ids */
	size_t n;
	long count;                /* matching messages, -1 if not counted */
	long index;                /* position of the first, -1 if unknown */
	int complete;              /* XEP-0313 §4.3.2 'complete' */
};
void mam_page_free(struct mam_page *p);

/*
 * Plan a page: cb gets STORE_OK with the page, STORE_NOT_FOUND when an id in the query is not in the archive (the
 * caller answers <item-not-found/>, §4.1.3, §4.3.2) or the account is
 * gone, STORE_ERROR.  The page is handed over: the callback owns it and
 * frees it with mam_page_free().
 */
typedef void (*mam_plan_cb)(uint64_t owner, uint64_t tag,
    enum store_status st, struct mam_page *page);
void mam_query_plan(const char *user, const char *host,
    const struct mam_query *q, mam_plan_cb cb, uint64_t owner,
    uint64_t tag);

struct mam_row {
	uint64_t id;
	int64_t stamp_ms;
	const char *stanza;
	size_t len;
};
/*
 * Read the stored messages of page->rows[from .. from + count) (clamped
 * to n) in that order, stopping early after max_bytes (at least one row
 * is read): cb gets the rows read (a row deleted meanwhile is left out)
 * and how many of the requested positions were consumed.
 */
typedef void (*mam_rows_cb)(uint64_t owner, uint64_t tag,
    enum store_status st, const struct mam_row *rows, size_t n,
    size_t consumed);
void mam_query_rows(const struct mam_page *page, size_t from, size_t count,
    size_t max_bytes, mam_rows_cb cb, uint64_t owner, uint64_t tag);

/* Archive metadata (§5): first and last message, or none. */
struct mam_edge {
	uint64_t id;
	int64_t stamp_ms;
};
typedef void (*mam_metadata_cb)(uint64_t owner, uint64_t tag,
    enum store_status st, const struct mam_edge *first,
    const struct mam_edge *last);
void mam_metadata(const char *user, const char *host, mam_metadata_cb cb,
    uint64_t owner, uint64_t tag);
/* The same of room node@service's archive (none yet: empty). */
void mam_room_metadata(const char *node, const char *service,
    mam_metadata_cb cb, uint64_t owner, uint64_t tag);

/* Retention: delete up to batch of the oldest rows stamped before
 * cutoff_ms (never a gap, §3.2) from users' archives and as many from
 * rooms'; done(deleted) after the commit. */
void mam_expire(int64_t cutoff_ms, unsigned batch,
    void (*done)(size_t deleted, int ok));

/*
 * Message moderation (XEP-0425): replace the message of room
 * node@service's archive whose public id is id by its tombstone: the
 * stored message's attributes, <stanza-id/> and <occupant-id/> kept,
 * everything else replaced by retracted (a serialized element, the
 * <retracted xmlns='urn:xmpp:message-retract:1'/> of XEP-0424).  cb
 * gets STORE_OK after the commit, STORE_NOT_FOUND if the archive has
 * no such message, STORE_ERROR.
 */
void mam_room_retract(const char *node, const char *service, uint64_t id,
    const char *retracted, store_status_cb cb, uint64_t owner,
    uint64_t tag);

/*
 * The control socket's history dump: the messages of user@host's
 * archive (with: NULL for all, or a bare or full JID) stamped in
 * [since_ms, until_ms] (MAM_STAMP_NONE for open ends), only the last
 * limit of them when limit > 0, oldest first, read in bounded chunks.
 * Start with a zeroed position; each callback gives the next position,
 * or NULL when the dump is complete.  The range is fixed by the first
 * chunk, so messages arriving later are not included.
 */
struct mam_history_pos {
	int phase;               /* 0 start, 1 seeking the first, 2 reading */
	int64_t lo, hi;          /* internal id range */
	int64_t seek_hi;
	uint64_t seek_left;
	int64_t after;           /* last internal id read */
};
struct mam_history_row {
	uint64_t id;
	int64_t stamp_ms;
	int outgoing;
	const char *with;        /* bare JID of the other party */
	const char *from, *to;   /* the stanza's ("" if absent) */
	const char *body;        /* "" if none */
	const char *stanza;
	size_t len;
};
typedef void (*mam_history_cb)(uint64_t owner, uint64_t tag,
    enum store_status st, const struct mam_history_row *rows, size_t n,
    const struct mam_history_pos *next);
void mam_history_read(const char *user, const char *host, const char *with,
    int64_t since_ms, int64_t until_ms, uint64_t limit,
    const struct mam_history_pos *pos, mam_history_cb cb, uint64_t owner,
    uint64_t tag);
/* The same over room node@service's archive (all of it, the last limit
 * messages): the history a persistent room offers to those who join once
 * it is read back into memory.  A room without an archive reads as
 * empty. */
void mam_room_history_read(const char *node, const char *service,
    uint64_t limit, const struct mam_history_pos *pos, mam_history_cb cb,
    uint64_t owner, uint64_t tag);

/*
 * For XEP-0280 sent carbons: the public id under which msg, a message a
 * local session is sending right now (from its message_out hook until it
 * has been routed), was archived in the sender's archive, or NULL.
 * XEP-0313 §3.5: the sender's own id never goes on the routed message,
 * only on copies for the sender's resources.  Valid when mod_mam's
 * message_out hook ran first (its module is listed before carbons).
 */
const char *mam_sent_id(const struct xel *msg);

#endif
