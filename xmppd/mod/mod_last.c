/*
 * Last Activity (XEP-0012): the server's uptime, and for a user's bare JID
 * how long ago they logged out and the status of their last unavailable
 * presence, kept in the lastlog table when a user's last session ends.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "core/disco.h"
#include "core/hooks.h"
#include "core/iq.h"
#include "jid.h"
#include "log.h"
#include "mono.h"
#include "core/session.h"
#include "core/stanza.h"
#include "store/store_engine.h"
#include "strmap.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_LAST "jabber:iq:last"

void mod_last_init(void);
void mod_last_deinit(void);

/* Session id -> status text of its last broadcast presence, present only
 * while that presence was unavailable with a <status/>. */
static struct strmap *last_status;

struct lastlog_job {
	struct store_job job;
	char *user, *host;
	int64_t stamp;           /* write: argument; read: result */
	char *status;            /* write: argument; read: result */
	int found;               /* read */
	struct xel *iq;          /* read: the request (own arena) */
};

static const char sql_lastlog_put[] =
    "INSERT INTO lastlog (user_id, stamp, status)"
    " SELECT id, ?3, ?4 FROM users WHERE host = ?1 AND user = ?2"
    " ON CONFLICT (user_id) DO UPDATE"
    " SET stamp = excluded.stamp, status = excluded.status";
static const char sql_lastlog_get[] =
    "SELECT stamp, status FROM lastlog WHERE user_id = "
    USER_ID_SQL("?1", "?2");

static void
session_key(uint64_t id, char *key, size_t len)
{
	snprintf(key, len, "%" PRIu64, id);
}

static void
job_free(struct store_job *j)
{
	struct lastlog_job *lj = (struct lastlog_job *)j;

	free(lj->user);
	free(lj->host);
	free(lj->status);
	if (lj->iq)
		arena_free(lj->iq->arena);
	free(lj);
}

static int
bind_user(sqlite3_stmt *s, const struct lastlog_job *lj)
{
	return sqlite3_bind_text(s, 1, lj->host, -1, SQLITE_STATIC) ==
	        SQLITE_OK &&
	    sqlite3_bind_text(s, 2, lj->user, -1, SQLITE_STATIC) == SQLITE_OK;
}

/* Storage thread: upsert the user's row (none if the account is gone). */
static enum store_status
put_run(struct store_job *j)
{
	struct lastlog_job *lj = (struct lastlog_job *)j;
	sqlite3_stmt *s = store_sql(sql_lastlog_put);

	if (s == NULL)
		return STORE_ERROR;
	if (!bind_user(s, lj) ||
	    sqlite3_bind_int64(s, 3, lj->stamp) != SQLITE_OK ||
	    sqlite3_bind_text(s, 4, lj->status, -1, SQLITE_STATIC) !=
	        SQLITE_OK) {
		store_sql_warn("lastlog put: binding");
		store_sql_done(s);
		return STORE_ERROR;
	}
	return store_sql_write(s, "lastlog put", STORE_NOT_FOUND);
}

static void
put_complete(struct store_job *j)
{
	struct lastlog_job *lj = (struct lastlog_job *)j;

	if (j->status == STORE_ERROR)
		log_warnx("last activity of %s@%s not stored", lj->user,
		    lj->host);
}

static const struct store_job_ops put_ops = {
	.name = "lastlog put",
	.writes = 1,
	.run = put_run,
	.complete = put_complete,
	.free = job_free,
};

/* The user's last session ends: remember when, and the status of the
 * unavailable presence it said goodbye with (XEP-0012 §3). */
static void
on_session_end(struct session *s)
{
	struct lastlog_job *lj;
	char key[24];
	char *status;

	session_key(s->id, key, sizeof(key));
	status = strmap_del(last_status, key);
	for (struct session *o = sm_find_bare(s->jid.node, s->jid.domain); o;
	    o = o->next)
		if (o != s && !o->closing) {
			free(status);
			return;           /* not the last one */
		}
	lj = xcalloc(1, sizeof(*lj));
	lj->job.ops = &put_ops;
	lj->user = xstrdup(s->jid.node);
	lj->host = xstrdup(s->jid.domain);
	lj->stamp = (int64_t)time(NULL);
	lj->status = status ? status : xstrdup("");
	store_job_submit(&lj->job);
}

/* Track the status of each session's last broadcast presence. */
static enum hook_result
outbound(struct session *from, struct xel *st, const struct jid *to)
{
	const char *type;
	struct xel *status;
	char key[24];

	if (to != NULL || !xel_is(st, "presence", NS_CLIENT))
		return HOOK_PASS;
	type = xel_attr(st, "type");
	if (type != NULL && strcmp(type, "unavailable") != 0)
		return HOOK_PASS;         /* subscriptions, probes, errors */
	session_key(from->id, key, sizeof(key));
	free(strmap_del(last_status, key));
	if (type != NULL && (status = xel_child(st, "status", NS_CLIENT)) &&
	    *xel_text(status) != '\0')
		strmap_put(last_status, key, xstrdup(xel_text(status)));
	return HOOK_PASS;
}

static void
send_reply(struct session *s, struct xel *r)
{
	if (r == NULL)
		return;
	session_send(s, r);
	arena_free(r->arena);
}

static void
reply_seconds(struct session *s, const struct xel *iq, int64_t seconds,
    const char *status)
{
	struct xel *r = stanza_iq_result(iq), *q;
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRId64, seconds < 0 ? 0 : seconds);
	q = xel_add(r, "query", NS_LAST);
	xel_set_attr(q, "seconds", buf);
	if (status && *status)
		xel_text_set(q, status);
	send_reply(s, r);
}

/* Storage thread: the user's row. */
static enum store_status
get_run(struct store_job *j)
{
	struct lastlog_job *lj = (struct lastlog_job *)j;
	sqlite3_stmt *s = store_sql(sql_lastlog_get);
	enum store_status st = STORE_OK;
	int rc;

	if (s == NULL)
		return STORE_ERROR;
	if (!bind_user(s, lj)) {
		store_sql_warn("lastlog get: binding");
		store_sql_done(s);
		return STORE_ERROR;
	}
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 1);

		lj->found = 1;
		lj->stamp = sqlite3_column_int64(s, 0);
		lj->status = xstrdup(t ? (const char *)t : "");
	} else if (rc != SQLITE_DONE) {
		store_sql_warn("lastlog get");
		st = STORE_ERROR;
	}
	store_sql_done(s);
	return st;
}

static void
get_complete(struct store_job *j)
{
	struct lastlog_job *lj = (struct lastlog_job *)j;
	struct session *s = sm_find_id(j->owner);

	if (s == NULL || s->closing)
		return;
	if (j->status != STORE_OK)
		send_reply(s, stanza_error(lj->iq, NULL,
		    "internal-server-error", NULL));
	else if (!lj->found)
		/* Never logged out (or the account does not exist). */
		send_reply(s, stanza_error(lj->iq, NULL, "item-not-found",
		    NULL));
	else
		reply_seconds(s, lj->iq, (int64_t)time(NULL) - lj->stamp,
		    lj->status);
}

static const struct store_job_ops get_ops = {
	.name = "lastlog get",
	.writes = 0,
	.run = get_run,
	.complete = get_complete,
	.free = job_free,
};

static int
has_available(const char *user, const char *host)
{
	for (struct session *s = sm_find_bare(user, host); s; s = s->next)
		if (s->available && !s->closing)
			return 1;
	return 0;
}

/* XEP-0012 §3 for a requester allowed to see the account's presence. */
static void
account_last(struct session *s, struct xel *iq, int allowed)
{
	const char *tostr = xel_attr(iq, "to");
	struct jid to = { 0 };
	struct lastlog_job *lj;

	if (!allowed) {
		/* §3: "MUST return a Forbidden error" (type auth). */
		send_reply(s, stanza_error(iq, NULL, "forbidden", NULL));
		return;
	}
	if (tostr == NULL)
		jid_copy(&to, &s->jid);
	else if (jid_parse(&to, tostr) < 0 || to.node == NULL) {
		jid_free(&to);
		send_reply(s, stanza_error(iq, NULL, "bad-request", NULL));
		return;
	}
	if (has_available(to.node, to.domain)) {
		/* §3: "at least one available resource": seconds='0'. */
		reply_seconds(s, iq, 0, NULL);
		jid_free(&to);
		return;
	}
	lj = xcalloc(1, sizeof(*lj));
	lj->job.ops = &get_ops;
	lj->job.owner = s->id;
	lj->user = xstrdup(to.node);
	lj->host = xstrdup(to.domain);
	lj->iq = xel_copy(arena_new(1024), iq);
	store_job_submit(&lj->job);
	jid_free(&to);
}

static enum hook_result
handle_last(struct session *from, struct xel *iq, enum iq_target target)
{
	const char *type = xel_attr(iq, "type");

	if (type == NULL || strcmp(type, "get") != 0)
		return HOOK_PASS;
	if (target == IQ_TO_SERVER)
		/* §5: the server's uptime, no character data. */
		reply_seconds(from, iq,
		    (int64_t)(mono_now(xmppd_loop) - xmppd_started), NULL);
	else
		disco_account_access(from, iq, account_last);
	return HOOK_HANDLED;
}

void
mod_last_init(void)
{
	last_status = strmap_new();
	iq_register(NS_LAST, "query", handle_last);
	disco_add_feature(DISCO_SERVER, NS_LAST);
	hook_add_outbound(outbound);
	hook_add_session(HOOK_SESSION_END, on_session_end);
}

static void
free_status(const char *key, void *value, void *arg)
{
	free(value);
}

void
mod_last_deinit(void)
{
	strmap_foreach(last_status, free_status, NULL);
	strmap_free(last_status);
	last_status = NULL;
}
