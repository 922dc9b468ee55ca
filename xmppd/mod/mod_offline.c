/*
 * Offline messages (XEP-0160): a chat or normal message for a local user
 * with no available resource of non-negative priority is stored with a
 * XEP-0203 <delay/> stamp, and delivered to the first resource that then
 * sends initial presence with non-negative priority.
 *
 * Storing: hook_add_offline.  The decision (account exists, sender not
 * blocked, queue not full, insert) is one storage job; the hook returns
 * HOOK_HANDLED at once and the job's completion bounces the message when
 * it was not stored (a failed write, e.g. a full disk or the database
 * locked past the busy timeout, with the transient <resource-constraint/>
 * of type 'wait').  The sender is acknowledged only by the absence of an
 * error, so nothing waits for the commit: a crash loses what was routed
 * to storage but not yet committed, the tail of the storage queue, and
 * nothing before it (tests/proto/test_durability.py).
 *
 * Delivering: HOOK_SESSION_INITIAL starts a fetch for the user.  A fetch
 * is a chain of jobs, each of which first deletes the rows delivered by
 * the previous one and then reads the next bounded chunk; the loop thread
 * hands a chunk to the session and only then queues the job that deletes
 * it.  So a row is deleted only after it was queued to a live session:
 * delivery is at-least-once.  If the session is gone (or its connection
 * died while the chunk was queued) the chunk is not deleted and comes
 * again at the next login; a chunk queued to a connection that dies before
 * the bytes leave, or a failed delete, is delivered again too.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "buf.h"
#include "conf.h"
#include "core/disco.h"
#include "core/hooks.h"
#include "jid.h"
#include "log.h"
#include "core/router.h"
#include "core/session.h"
#include "store/store_engine.h"
#include "strmap.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_DELAY "urn:xmpp:delay" /* XEP-0203 */
#define NS_HINTS "urn:xmpp:hints" /* XEP-0334 */

#define OFFLINE_CHUNK_ROWS 100    /* rows per fetch job */
#define OFFLINE_RETRY_SECONDS 0.1 /* wait for a full output queue */

void mod_offline_init(void);
void mod_offline_deinit(void);

/* Storing. */

enum offline_outcome {
	OFFLINE_STORED,
	OFFLINE_FULL,    /* XEP-0160 §2 step 3: queue full */
	OFFLINE_BLOCKED, /* XEP-0191 §3.5: the recipient blocked the sender */
};

struct store_msg {
	struct store_job job; /* owner: sending session id, or 0 */
	char *user, *host;    /* recipient, prepared */
	/* The sender's JID in the forms a block list item can match
	 * (XEP-0191 §4 / XEP-0016 §2.1): full, bare, domain/resource, domain;
	 * NULL where a form does not apply. */
	char *match[4];
	unsigned limit;
	int64_t stamp; /* unix seconds received */
	char *stanza;  /* serialized, with our <delay/> last */
	size_t len;
	enum offline_outcome outcome;
};

static const char sql_blocked[] =
    "SELECT 1 FROM blocklist WHERE user_id = ?1 AND jid IN (?2, ?3, ?4, ?5)";
static const char sql_count[] =
    "SELECT count(*) FROM (SELECT 1 FROM offline WHERE user_id = ?1 "
    "LIMIT ?2)";
static const char sql_insert[] =
    "INSERT INTO offline (user_id, stamp, stanza) VALUES (?1, ?2, ?3)";

/* Storage thread: 1 if a block list item of uid matches, 0, -1 on error. */
static int
sender_blocked(sqlite3_int64 uid, char *const match[4])
{
	sqlite3_stmt *s = store_sql(sql_blocked);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, uid);
	for (int i = 0; i < 4; i++)
		if (match[i] != NULL)
			sqlite3_bind_text(
			    s, 2 + i, match[i], -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		store_sql_warn("offline: block list check");
	store_sql_done(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return -1;
	return rc == SQLITE_ROW;
}

/* Storage thread: stored messages of uid, counting at most limit; -1 on
 * error. */
static sqlite3_int64
queue_length(sqlite3_int64 uid, unsigned limit)
{
	sqlite3_stmt *s = store_sql(sql_count);
	sqlite3_int64 n = -1;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, uid);
	sqlite3_bind_int64(s, 2, limit);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	else
		store_sql_warn("offline: count");
	store_sql_done(s);
	return n;
}

static enum store_status
run_store(struct store_job *job)
{
	struct store_msg *j = (struct store_msg *)job;
	sqlite3_stmt *s;
	sqlite3_int64 uid, n;
	int blocked;

	if ((uid = store_user_id(j->user, j->host)) < 0)
		return STORE_ERROR;
	if (uid == 0)
		return STORE_NOT_FOUND; /* RFC 6121 §8.5.1 */
	if ((blocked = sender_blocked(uid, j->match)) < 0)
		return STORE_ERROR;
	if (blocked) {
		j->outcome = OFFLINE_BLOCKED;
		return STORE_OK;
	}
	if ((n = queue_length(uid, j->limit)) < 0)
		return STORE_ERROR;
	if (n >= j->limit) {
		j->outcome = OFFLINE_FULL;
		return STORE_OK;
	}
	if ((s = store_sql(sql_insert)) == NULL)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, uid);
	sqlite3_bind_int64(s, 2, j->stamp);
	sqlite3_bind_text(s, 3, j->stanza, (int)j->len, SQLITE_STATIC);
	j->outcome = OFFLINE_STORED;
	return store_sql_write(s, "offline: insert", STORE_ERROR);
}

/* The stored message as the sender sent it (our <delay/> removed), in a
 * new arena; NULL if it cannot be parsed. */
static struct xel *
original_message(const struct store_msg *j)
{
	struct xml_limits lim = {j->len + 1, 1024, 1024, SIZE_MAX};
	struct xel *msg, *last;

	if ((msg = xml_parse_element(j->stanza, j->len, NS_CLIENT, &lim)) ==
	    NULL)
		return NULL;
	/* serialize_delayed appended it as the last child. */
	if ((last = msg->last) != NULL && last->name != NULL &&
	    xel_is(last, "delay", NS_DELAY))
		xel_remove(last);
	return msg;
}

static void
complete_store(struct store_job *job)
{
	struct store_msg *j = (struct store_msg *)job;
	const char *cond = NULL, *why = NULL;
	struct session *from;
	struct xel *msg;

	switch (job->status) {
	case STORE_OK:
		if (j->outcome == OFFLINE_STORED) {
			hook_run_offline_changed(1);
			log_debug("offline: stored a message for %s@%s",
			    j->user, j->host);
			return;
		}
		/* XEP-0160 §2 step 3 (full); XEP-0191 §3.5 (blocked): the
		 * same error as for an offline user without storage, so a
		 * blocked sender learns nothing. */
		cond = "service-unavailable";
		why = j->outcome == OFFLINE_FULL ? "queue full" : "blocked";
		break;
	case STORE_NOT_FOUND:
		cond = "service-unavailable"; /* RFC 6121 §8.5.1 */
		why = "no such user";
		break;
	default:
		/* A failed write (full disk, I/O error, the database locked
		 * past the busy timeout) is transient: RFC 6120 §8.3.3.18
		 * <resource-constraint/>, whose type is 'wait', tells the
		 * sender to retry later.  Nothing was stored. */
		cond = "resource-constraint";
		why = "storage error";
		break;
	}
	if (job->status == STORE_ERROR)
		log_warnx("offline: message for %s@%s not stored (%s); "
		          "bounced with resource-constraint",
		    j->user, j->host, why);
	else
		log_debug("offline: message for %s@%s not stored (%s)", j->user,
		    j->host, why);
	if (job->owner == 0 || (from = sm_find_id(job->owner)) == NULL)
		return;
	if ((msg = original_message(j)) == NULL)
		return;
	router_bounce(from, msg, cond);
	arena_free(msg->arena);
}

static void
free_store(struct store_job *job)
{
	struct store_msg *j = (struct store_msg *)job;

	free(j->user);
	free(j->host);
	for (int i = 0; i < 4; i++)
		free(j->match[i]);
	free(j->stanza);
	free(j);
}

static const struct store_job_ops store_ops = {
    .name = "offline store",
    .writes = 1,
    .run = run_store,
    .complete = complete_store,
    .free = free_store,
};

/* XEP-0082 DateTime in UTC with milliseconds. */
static void
format_stamp(double t, char *out, size_t len)
{
	time_t sec = (time_t)t;
	int ms = (int)((t - (double)sec) * 1000.0);
	struct tm tm;
	size_t n;

	if (ms < 0 || ms > 999)
		ms = 0;
	gmtime_r(&sec, &tm);
	n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, len - n, ".%03dZ", ms);
}

/* The block list forms of the sender's JID (see struct store_msg). */
static void
sender_forms(const char *from, char *match[4])
{
	struct jid j = {0};

	if (from == NULL || jid_parse(&j, from) < 0)
		return;
	if (j.node != NULL) {
		match[1] = jid_bare(&j);
		if (j.resource != NULL)
			match[0] = jid_full(&j);
	}
	match[3] = xstrdup(j.domain);
	if (j.resource != NULL)
		match[2] = xasprintf("%s/%s", j.domain, j.resource);
	jid_free(&j);
}

/*
 * XEP-0160 §3 and XEP-0334 §4: store a message of type normal or chat
 * (the router offers only those) that has a body or a <store/> hint,
 * unless it carries <no-store/>.  Chat-state-only and other payload-only
 * messages are not stored (XEP-0160 §3, "chat").
 */
static int
storable(const struct xel *msg)
{
	const char *type = xel_attr(msg, "type");

	if (type != NULL && strcmp(type, "normal") != 0 &&
	    strcmp(type, "chat") != 0)
		return 0;
	if (xel_child(msg, "no-store", NS_HINTS) != NULL)
		return 0;
	return xel_child(msg, "body", NS_CLIENT) != NULL ||
	       xel_child(msg, "store", NS_HINTS) != NULL;
}

/* Serialize msg with <delay from=domain stamp=now/> appended; msg is left
 * as it was. */
static char *
serialize_delayed(struct xel *msg, const char *domain, double now, size_t *len)
{
	struct buf b = BUF_INIT;
	struct xel *delay;
	char stamp[40];
	char *text;

	format_stamp(now, stamp, sizeof(stamp));
	delay = xel_add(msg, "delay", NS_DELAY);
	xel_set_attr(delay, "from", domain);
	xel_set_attr(delay, "stamp", stamp);
	xel_serialize(msg, &b, NS_CLIENT);
	xel_remove(delay);
	*len = buf_avail(&b);
	text = xstrndup(buf_head(&b), *len);
	buf_free(&b);
	return text;
}

static enum hook_result
offline_message(struct session *from, struct xel *msg, const struct jid *to)
{
	unsigned limit = xmppd_conf->limits.offline_messages;
	struct store_msg *j;
	double now = ev_time();

	/* A reload may have set the limit to 0: storage off (RFC 6121
	 * §8.5.2.2.1 then bounces). */
	if (limit == 0 || to->node == NULL || !storable(msg))
		return HOOK_PASS;
	j = xcalloc(1, sizeof(*j));
	j->job.ops = &store_ops;
	j->job.owner = from ? from->id : 0;
	j->user = xstrdup(to->node);
	j->host = xstrdup(to->domain);
	sender_forms(xel_attr(msg, "from"), j->match);
	j->limit = limit;
	j->stamp = (int64_t)now;
	j->stanza = serialize_delayed(msg, to->domain, now, &j->len);
	store_job_submit(&j->job);
	return HOOK_HANDLED;
}

/* Delivering. */

/* One user's delivery in progress, keyed by bare JID in fetches.  At most
 * one per user, so two resources coming online together do not both get
 * the same messages. */
struct fetch {
	char *bare;
	char *user, *host;
	uint64_t session;  /* the session being served */
	int64_t delivered; /* highest id queued to the session */
	int64_t deleted;   /* highest id known deleted */
	ev_timer retry;    /* waiting for the output queue */
};

struct fetch_job {
	struct store_job job; /* owner: session id */
	char *bare;           /* the fetch's key */
	char *user, *host;
	int64_t delete_upto; /* delete ids <= this first (0: none) */
	int64_t after;       /* then read ids > this */
	size_t max_bytes;    /* stop a chunk after this many bytes */
	int deleted;         /* rows the delete removed (if committed) */
	/* Results: one chunk in id order. */
	int64_t *ids;
	char **stanzas;
	size_t *lens;
	size_t n;
};

static struct strmap *fetches;      /* bare JID -> struct fetch; NULL
                                       while the module is off */

static const char sql_delete[] =
    "DELETE FROM offline WHERE user_id = " USER_ID_SQL(
        "?1", "?2") " AND id <= ?3";
static const char sql_read[] =
    "SELECT id, stanza FROM offline WHERE user_id = " USER_ID_SQL(
        "?1", "?2") " AND id > ?3 ORDER BY id LIMIT ?4";

static enum store_status
run_fetch(struct store_job *job)
{
	struct fetch_job *j = (struct fetch_job *)job;
	sqlite3_stmt *s;
	size_t bytes = 0;
	int rc;

	if (j->delete_upto > 0) {
		if ((s = store_sql(sql_delete)) == NULL)
			return STORE_ERROR;
		sqlite3_bind_text(s, 1, j->host, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, j->user, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, j->delete_upto);
		if (store_sql_write(s, "offline: delete", STORE_OK) != STORE_OK)
			return STORE_ERROR;
		/* Counted at completion: the commit may still fail. */
		j->deleted = sqlite3_changes(store_db());
	}
	if ((s = store_sql(sql_read)) == NULL)
		return STORE_ERROR;
	sqlite3_bind_text(s, 1, j->host, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, j->user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, j->after);
	sqlite3_bind_int(s, 4, OFFLINE_CHUNK_ROWS);
	j->ids = xreallocarray(NULL, OFFLINE_CHUNK_ROWS, sizeof(*j->ids));
	j->stanzas =
	    xreallocarray(NULL, OFFLINE_CHUNK_ROWS, sizeof(*j->stanzas));
	j->lens = xreallocarray(NULL, OFFLINE_CHUNK_ROWS, sizeof(*j->lens));
	/* At least one row, then up to max_bytes: the next job goes on from
	 * the last id read. */
	while (
	    j->n < OFFLINE_CHUNK_ROWS && (j->n == 0 || bytes < j->max_bytes)) {
		const unsigned char *t;
		size_t len;

		if ((rc = sqlite3_step(s)) == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW) {
			store_sql_warn("offline: read");
			store_sql_done(s);
			return STORE_ERROR;
		}
		t = sqlite3_column_text(s, 1);
		len = (size_t)sqlite3_column_bytes(s, 1);
		j->ids[j->n] = sqlite3_column_int64(s, 0);
		j->stanzas[j->n] = xstrndup(t ? (const char *)t : "", len);
		j->lens[j->n] = len;
		bytes += len;
		j->n++;
	}
	store_sql_done(s);
	return STORE_OK;
}

static void
free_fetch_results(struct fetch_job *j)
{
	for (size_t i = 0; i < j->n; i++)
		free(j->stanzas[i]);
	free(j->ids);
	free(j->stanzas);
	free(j->lens);
	j->ids = NULL;
	j->stanzas = NULL;
	j->lens = NULL;
	j->n = 0;
}

static void
free_fetch_job(struct store_job *job)
{
	struct fetch_job *j = (struct fetch_job *)job;

	free_fetch_results(j);
	free(j->bare);
	free(j->user);
	free(j->host);
	free(j);
}

static void complete_fetch(struct store_job *);

static const struct store_job_ops fetch_read_ops = {
    .name = "offline fetch",
    .writes = 0,
    .run = run_fetch,
    .complete = complete_fetch,
    .free = free_fetch_job,
};
static const struct store_job_ops fetch_delete_ops = {
    .name = "offline fetch and delete",
    .writes = 1,
    .run = run_fetch,
    .complete = complete_fetch,
    .free = free_fetch_job,
};

/* A session that may receive offline messages now: bound, connected,
 * available with non-negative priority (XEP-0160 §2 step 4). */
static int
session_eligible(const struct session *s)
{
	return s != NULL && !s->closing && s->t != NULL && s->available &&
	       s->priority >= 0;
}

/* The session of f if it can still take a chunk.  One that went
 * unavailable or to a negative priority meanwhile stops the fetch: the
 * rest waits for its next non-negative presence (offline_presence_out). */
static struct session *
fetch_session(const struct fetch *f)
{
	struct session *s = sm_find_id(f->session);

	return session_eligible(s) ? s : NULL;
}

static void
fetch_submit(struct fetch *f)
{
	struct fetch_job *j = xcalloc(1, sizeof(*j));
	int deleting = f->delivered > f->deleted;

	j->job.ops = deleting ? &fetch_delete_ops : &fetch_read_ops;
	j->job.owner = f->session;
	j->bare = xstrdup(f->bare);
	j->user = xstrdup(f->user);
	j->host = xstrdup(f->host);
	j->delete_upto = deleting ? f->delivered : 0;
	j->after = f->delivered;
	j->max_bytes = xmppd_conf->limits.output_high;
	store_job_submit(&j->job);
}

static void
fetch_free(struct fetch *f)
{
	strmap_del(fetches, f->bare);
	ev_timer_stop(xmppd_loop, &f->retry);
	free(f->bare);
	free(f->user);
	free(f->host);
	free(f);
}

/*
 * The fetch's session went away before everything was delivered: what is
 * left goes to another eligible resource of the user if there is one
 * (it sent its initial presence while this fetch ran), else it waits in
 * storage for the next login.
 */
static void
fetch_handoff(struct fetch *f)
{
	struct session *s;

	for (s = sm_find_bare(f->user, f->host); s != NULL; s = s->next)
		if (s->id != f->session && session_eligible(s))
			break;
	if (s == NULL) {
		log_debug("offline: delivery to %s stopped, the rest waits "
		          "for the next login",
		    f->bare);
		fetch_free(f);
		return;
	}
	log_debug("offline: delivery to %s goes on to %s", f->bare, s->full);
	f->session = s->id;
	fetch_submit(f);
}

static void
retry_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct fetch *f = container_of(w, struct fetch, retry);

	(void)l;
	(void)revents;
	if (fetch_session(f) == NULL)
		fetch_handoff(f);
	else
		fetch_submit(f);
}

/* Parse and deliver one stored stanza to s; 0, or -1 if it is unusable
 * (logged; it is deleted with its chunk rather than retried forever). */
static int
deliver_one(struct session *s, const char *text, size_t len, int64_t id)
{
	struct xml_limits lim = {len + 1, 1024, 1024, SIZE_MAX};
	struct xel *msg = xml_parse_element(text, len, NS_CLIENT, &lim);

	if (msg == NULL) {
		log_warnx("offline: stored message %" PRId64 " of %s cannot "
		          "be parsed; dropped",
		    id, s->bare);
		return -1;
	}
	router_deliver(s, msg);
	arena_free(msg->arena);
	return 0;
}

static void
complete_fetch(struct store_job *job)
{
	struct fetch_job *j = (struct fetch_job *)job;
	struct fetch *f = fetches ? strmap_get(fetches, j->bare) : NULL;
	struct session *s;

	if (job->status == STORE_OK && j->deleted > 0)
		hook_run_offline_changed(-(long long)j->deleted);
	/* Switched off meanwhile: what was read stays stored.  Otherwise
	 * this cannot happen (one job per fetch). */
	if (f == NULL || f->session != job->owner)
		return;
	if (job->status != STORE_OK) {
		/* Nothing more is read; a delete that did not commit means
		 * the last chunk comes again at the next login. */
		log_debug("offline: delivery to %s stopped by a storage error",
		    f->bare);
		fetch_free(f);
		return;
	}
	if (j->delete_upto > f->deleted)
		f->deleted = j->delete_upto;
	if ((s = fetch_session(f)) == NULL) {
		fetch_handoff(f); /* this chunk stays stored */
		return;
	}
	if (j->n == 0) {
		log_debug("offline: delivery to %s complete", s->full);
		fetch_free(f);
		return;
	}
	if (session_output_full(s)) {
		log_debug(
		    "offline: output queue of %s is full, waiting", s->full);
		ev_timer_set(&f->retry, OFFLINE_RETRY_SECONDS, 0);
		ev_timer_start(xmppd_loop, &f->retry);
		return;
	}
	for (size_t i = 0; i < j->n; i++)
		deliver_one(s, j->stanzas[i], j->lens[i], j->ids[i]);
	if (session_gone(s)) {
		/* Killed while the chunk was queued (output limit): the
		 * chunk may not have left, so it is not deleted. */
		fetch_handoff(f);
		return;
	}
	log_debug("offline: delivered %zu messages to %s", j->n, s->full);
	f->delivered = j->ids[j->n - 1];
	fetch_submit(f); /* deletes this chunk, reads the next */
}

static void
fetch_start(struct session *s)
{
	struct fetch *f;

	if (xmppd_conf->limits.offline_messages == 0)
		return;
	if (strmap_get(fetches, s->bare) != NULL)
		return; /* another resource is being served (or handed on) */
	f = xcalloc(1, sizeof(*f));
	f->bare = xstrdup(s->bare);
	f->user = xstrdup(s->jid.node);
	f->host = xstrdup(s->jid.domain);
	f->session = s->id;
	ev_timer_init(&f->retry, retry_cb, OFFLINE_RETRY_SECONDS, 0);
	strmap_put(fetches, f->bare, f);
	fetch_submit(f);
}

/* Initial presence (RFC 6121 §4.2) with non-negative priority: deliver
 * (XEP-0160 §2 step 4). */
static void
offline_initial(struct session *s)
{
	if (s->priority >= 0)
		fetch_start(s);
}

/*
 * An available resource whose priority goes from negative to
 * non-negative now gets messages to the bare JID (RFC 6121 §8.5.2.1.1),
 * so it gets the stored ones too: XEP-0160 §2 delivers when the user
 * "next sends non-negative available presence".  This hook runs before
 * presence.c records the new priority (s->priority is still the old one);
 * initial presence is left to offline_initial.
 */
static void
offline_presence_out(struct session *s, struct xel *pres)
{
	struct xel *p;

	if (!s->available || s->priority >= 0 || xel_attr(pres, "type") != NULL)
		return;
	if ((p = xel_child(pres, "priority", NS_CLIENT)) != NULL &&
	    strtol(xel_text(p), NULL, 10) < 0)
		return;
	fetch_start(s);
}

void
mod_offline_init(void)
{
	fetches = strmap_new();
	hook_add_offline(offline_message);
	hook_add_session(HOOK_SESSION_INITIAL, offline_initial);
	hook_add_presence_out(offline_presence_out);
	disco_add_feature(DISCO_SERVER, "msgoffline");
}

/* Deliveries in progress stop; what they have not delivered stays
 * stored for when the module is on again. */
void
mod_offline_deinit(void)
{
	size_t n;
	void **v = strmap_values(fetches, &n);

	for (size_t i = 0; i < n; i++)
		fetch_free(v[i]);
	free(v);
	strmap_free(fetches);
	fetches = NULL;
}
