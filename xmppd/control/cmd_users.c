/*
 * The control commands on accounts and rosters: adduser, passwd, deluser,
 * disable, enable, users, user-show, roster-show, roster-add and
 * roster-del.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "control/control_int.h"
#include "control/stats.h"
#include "core/account.h"
#include "core/hooks.h"
#include "core/roster.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/subscription.h"
#include "ctl.h"
#include "jid.h"
#include "log.h"
#include "store/store.h"
#include "store/store_engine.h"
#include "strmap.h"
#include "utf8.h"
#include "xmalloc.h"
#include "xmppd.h"

/* Indexed by enum control_op_kind (control_int.h), for the log. */
static const char *const op_names[] = { "adduser", "passwd", "deluser",
	"users", "history", "user-show", "roster-show", "roster-add",
	"roster-del", "disable", "enable", "user-tokens",
	"user-revoke-tokens", "pep-show", "pep-delete", "upload-list",
	"upload-purge" };

/* The stream error text of the sessions of a disabled account (with
 * <not-authorized/>, as for a deleted one); its reason is for admins. */
#define DISABLED_TEXT "Account disabled"

/*
 * Accounts disabled while the daemon runs ("user@host"; values unused).
 * A login that read its credentials before the disable committed may
 * bind after the account's sessions were closed: that bind is ended here
 * (refuse_disabled_bind).  Enabling or deleting the account forgets it.
 */
static struct strmap *disabled_now;

static int
check_host(struct control_conn *c, const char *host)
{
	if (conf_host_find(xmppd_conf, host) != NULL)
		return 0;
	reply_err(c, CTL_E_UNKNOWN_HOST, "%s is not a host of this server",
	    host);
	return -1;
}

/* SASLprep the password; replies bad-password and returns NULL if bad. */
static char *
prepare_password(struct control_conn *c, const char *raw)
{
	char *p;
	enum account_password r = account_password_prepare(raw, &p);

	if (r != ACCOUNT_PASSWORD_OK)
		reply_err(c, CTL_E_BAD_PASSWORD, "%s",
		    account_password_reason(r));
	return p;
}

/* adduser and passwd: keys are derived on the worker pool (account.c),
 * then stored; the write is skipped if the connection went away. */
static int
key_wanted(uint64_t owner, uint64_t tag)
{
	struct control_op *op = op_find(tag);
	struct control_conn *c = control_state.running ?
	    control_conn_find(owner) : NULL;

	if (op == NULL)
		return 0;
	if (c == NULL || !c->busy || c->req != op->req) {
		control_log_change(op->uid, owner, op_names[op->kind], op->user,
		    op->host, "dropped, the control connection closed");
		op_free(op);
		return 0;
	}
	return 1;
}

/*
 * disable or enable has committed: close the account's sessions and keep
 * its later binds out, or let it in again.  Logs the change; returns the
 * number of sessions closed.
 */
static int
apply_disabled(const struct control_op *op)
{
	char *bare = xasprintf("%s@%s", op->user, op->host), *why, *result;
	const char *r = op->reason != NULL && op->reason[0] != '\0' ?
	    op->reason : NULL;
	int n = 0;

	if (op->kind == OP_ENABLE) {
		strmap_del(disabled_now, bare);
		control_log_change(op->uid, op->conn_id, "enable", op->user,
		    op->host, "ok");
		event_log("info", "enabled %s", bare);
		free(bare);
		return 0;
	}
	strmap_put(disabled_now, bare, disabled_now);   /* any non-NULL */
	why = r != NULL ? xasprintf("disabled: %s", r) : xstrdup("disabled");
	for (struct session *s = sm_find_bare(op->user, op->host); s != NULL;
	    s = s->next)
		sm_set_end_reason(s, why);
	n = sm_kick(op->user, op->host, NULL, "not-authorized", DISABLED_TEXT);
	for (int i = 0; i < n; i++)
		stats_count_kick();
	result = xasprintf("ok, %d session%s closed%s%s", n, n == 1 ? "" : "s",
	    r != NULL ? ": " : "", r != NULL ? r : "");
	control_log_change(op->uid, op->conn_id, "disable", op->user, op->host,
	    result);
	event_log("info", "disabled %s (%d session%s closed)%s%s", bare, n,
	    n == 1 ? "" : "s", r != NULL ? ": " : "", r != NULL ? r : "");
	free(result);
	free(why);
	free(bare);
	return n;
}

/* "ok [N] JID": the account as prepared, after disable the sessions
 * closed. */
static void
reply_account_ok(struct control_conn *c, const struct control_op *op,
    int closed)
{
	struct ctl_line l;

	reply_line(c, &l, "ok");
	if (op->kind == OP_DISABLE)
		ctl_line_addf(&l, "%d", closed);
	ctl_line_addf(&l, "%s@%s", op->user, op->host);
	reply_end(c, &l);
}

static void
op_status_cb(uint64_t owner, uint64_t tag, enum store_status st)
{
	struct control_op *op = op_find(tag);
	struct control_conn *c;
	int closed = 0;

	if (op == NULL)
		return;         /* control shut down meanwhile */
	if (st == STORE_OK &&
	    (op->kind == OP_DISABLE || op->kind == OP_ENABLE))
		closed = apply_disabled(op);
	else
		control_log_change(op->uid, op->conn_id, op_names[op->kind],
		    op->user, op->host, store_status_str(st));
	c = control_conn_find(owner);
	if (c == NULL || !c->busy || c->req != op->req) {
		op_free(op);
		return;         /* the connection has gone */
	}
	switch (st) {
	case STORE_OK:
		reply_account_ok(c, op, closed);
		break;
	case STORE_EXISTS:
		reply_err(c, CTL_E_EXISTS, "user already exists");
		break;
	case STORE_NOT_FOUND:
		reply_err(c, CTL_E_NOT_FOUND, "no such user");
		break;
	default:
		reply_err(c, CTL_E_INTERNAL, "database error (see the "
		    "daemon's log)");
		break;
	}
	op_free(op);
	if (!c->dead)
		request_done(c);
}

static void
start_key_job(struct control_conn *c, enum control_op_kind kind,
    char **args)
{
	struct control_op *op;
	struct jid j;
	char *password;

	if (parse_user_jid(c, args[0], &j) == -1)
		return;
	if (check_host(c, j.domain) == -1 ||
	    (password = prepare_password(c, args[1])) == NULL) {
		jid_free(&j);
		return;
	}
	op = op_new(c, kind, j.node, j.domain);
	jid_free(&j);
	c->busy = 1;
	account_set_password(kind == OP_ADDUSER ? ACCOUNT_CREATE :
	    ACCOUNT_SET_KEYS, op->user, op->host, password, key_wanted,
	    op_status_cb, c->id, op->id);
}

void
handle_adduser(struct control_conn *c, char **args, size_t nargs)
{
	start_key_job(c, OP_ADDUSER, args);
}

void
handle_passwd(struct control_conn *c, char **args, size_t nargs)
{
	start_key_job(c, OP_PASSWD, args);
}

void
handle_deluser(struct control_conn *c, char **args, size_t nargs)
{
	struct control_op *op;
	struct jid j;

	/* No check_host: accounts of a host since removed from the
	 * configuration can still be deleted. */
	if (parse_user_jid(c, args[0], &j) == -1)
		return;
	op = op_new(c, OP_DELUSER, j.node, j.domain);
	jid_free(&j);
	c->busy = 1;
	/* Removes the account from every roster too, in one transaction
	 * (roster.c), then closes its sessions. */
	roster_delete_account(op->user, op->host, op_status_cb, c->id, op->id);
}

/* disable JID [REASON] and enable JID: a flag on the account, stored
 * first; then its sessions are closed (apply_disabled). */
static void
start_disable(struct control_conn *c, enum control_op_kind kind,
    const char *jid, const char *reason)
{
	struct control_op *op;
	const char *bad = reason != NULL ? check_reason(reason) : NULL;
	struct jid j;

	if (bad != NULL) {
		reply_err(c, CTL_E_USAGE, "%s", bad);
		return;
	}
	/* No check_host, as for deluser. */
	if (parse_user_jid(c, jid, &j) == -1)
		return;
	op = op_new(c, kind, j.node, j.domain);
	jid_free(&j);
	op->reason = reason != NULL ? xstrdup(reason) : NULL;
	c->busy = 1;
	store_user_set_disabled(op->user, op->host, kind == OP_DISABLE ?
	    (int64_t)time(NULL) : 0, op->reason, op_status_cb, c->id, op->id);
}

void
handle_disable(struct control_conn *c, char **args, size_t nargs)
{
	start_disable(c, OP_DISABLE, args[0], nargs > 1 ? args[1] : NULL);
}

void
handle_enable(struct control_conn *c, char **args, size_t nargs)
{
	start_disable(c, OP_ENABLE, args[0], NULL);
}

/* A session bound for an account disabled meanwhile (disabled_now). */
static void
refuse_disabled_bind(struct session *s)
{
	if (strmap_count(disabled_now) == 0 ||
	    strmap_get(disabled_now, s->bare) == NULL)
		return;
	log_info(SESSION_LOG_FMT ": the account was disabled during the "
	    "login; session closed", SESSION_LOG_ARGS(s));
	sm_set_end_reason(s, "disabled");
	session_end(s, "not-authorized", DISABLED_TEXT);
	stats_count_kick();
}

static void
forget_disabled(const char *user, const char *host)
{
	char *bare = xasprintf("%s@%s", user, host);

	strmap_del(disabled_now, bare);
	free(bare);
}

void
users_init(void)
{
	if (disabled_now == NULL)
		disabled_now = strmap_new();
	hook_add_session(HOOK_SESSION_BOUND, refuse_disabled_bind);
	hook_add_user_deleted(forget_disabled);
}

/* users: rows are written as the store streams them. */
static void
users_cb(uint64_t owner, uint64_t tag, enum store_status st,
    const struct store_user *u)
{
	struct control_op *op = op_find(tag);
	struct control_conn *c;
	struct ctl_line l;

	if (op == NULL)
		return;
	c = control_conn_find(owner);
	if (c != NULL && (!c->busy || c->req != op->req))
		c = NULL;
	if (u != NULL) {
		if (c == NULL)
			return;
		op->rows++;
		reply_line(c, &l, "row");
		ctl_line_addf(&l, "%s@%s", u->user, u->host);
		ctl_line_add(&l, u->disabled != 0 ? "yes" : "no");
		if (u->disabled != 0)
			ctl_line_addf(&l, "%lld", (long long)u->disabled);
		else
			ctl_line_add(&l, "");
		ctl_line_add(&l, u->disabled_reason != NULL ?
		    u->disabled_reason : "");
		reply_end(c, &l);
		return;
	}
	log_debug("control %llu: users: %zu rows, %s",
	    (unsigned long long)op->conn_id, op->rows, store_status_str(st));
	op_free(op);
	if (c == NULL)
		return;
	if (st == STORE_OK)
		reply_ok(c);
	else
		reply_err(c, CTL_E_INTERNAL, "listing failed part way "
		    "(see the daemon's log)");
	if (!c->dead)
		request_done(c);
}

void
handle_users(struct control_conn *c, char **args, size_t nargs)
{
	static const char *const cols[] = { "jid", "disabled:bool",
		"disabled_since:time", "disabled_reason" };
	struct control_op *op;
	char *host = NULL;

	if (nargs == 1) {
		if ((host = jid_nameprep(args[0])) == NULL) {
			reply_err(c, CTL_E_BAD_JID, "invalid host name");
			return;
		}
		if (check_host(c, host) == -1) {
			free(host);
			return;
		}
	}
	op = op_new(c, OP_USERS, NULL, host);
	free(host);
	reply_cols(c, cols, nitems(cols));
	if (c->dead) {
		op_free(op);    /* the peer went away */
		return;
	}
	c->busy = 1;
	store_user_list(op->host, users_cb, c->id, op->id);
}

/* user-show and roster-show: storage jobs reading one user's rows. */
struct user_job {
	struct store_job job;
	char *user, *host;
	int found;
	int64_t created, last_stamp;
	char *last_status;
	int64_t disabled;           /* 0, or since when */
	char *disabled_reason;
	long long roster, archive, offline, tokens;
	long long pep_nodes, pep_items, pep_bytes;
	/* roster-show */
	struct user_job_item {
		char *jid, *name, *groups;
		unsigned sub;
	} *items;
	size_t nitems;
	int roster_rows;
};

static const char sql_user[] =
    "SELECT id, created, disabled, disabled_reason FROM users "
    "WHERE host = ?1 AND user = ?2";
static const char sql_user_roster_count[] =
    "SELECT count(*) FROM roster WHERE user_id = ?1 AND (sub & 32) != 0";
static const char sql_user_archive_count[] =
    "SELECT count(*) FROM archive WHERE user_id = ?1";
static const char sql_user_offline_count[] =
    "SELECT count(*) FROM offline WHERE user_id = ?1";
static const char sql_user_token_count[] =
    "SELECT count(*) FROM fast_token WHERE user_id = ?1";
static const char sql_user_pep[] =
    "SELECT count(*), total(items), total(bytes) FROM pep_node "
    "WHERE user_id = ?1";
static const char sql_user_lastlog[] =
    "SELECT stamp, status FROM lastlog WHERE user_id = ?1";
static const char sql_user_roster[] =
    "SELECT jid, name, sub, groups FROM roster WHERE user_id = ?1 "
    "ORDER BY jid";

static long long
count_rows(const char *sql, sqlite3_int64 uid, int *ok)
{
	sqlite3_stmt *s = store_sql(sql);
	long long n = 0;

	if (s == NULL) {
		*ok = 0;
		return 0;
	}
	sqlite3_bind_int64(s, 1, uid);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	else
		*ok = 0;
	store_sql_done(s);
	return n;
}

static char *
column_dup(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	return t ? xstrdup((const char *)t) : NULL;
}

static enum store_status
run_user(struct store_job *job)
{
	struct user_job *j = (struct user_job *)job;
	sqlite3_stmt *s;
	sqlite3_int64 uid;
	int ok = 1, rc;

	if ((s = store_sql(sql_user)) == NULL)
		return STORE_ERROR;
	sqlite3_bind_text(s, 1, j->host, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, j->user, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		store_sql_done(s);
		return rc == SQLITE_DONE ? STORE_NOT_FOUND : STORE_ERROR;
	}
	uid = sqlite3_column_int64(s, 0);
	j->created = sqlite3_column_int64(s, 1);
	j->disabled = sqlite3_column_int64(s, 2);
	j->disabled_reason = column_dup(s, 3);
	store_sql_done(s);
	j->found = 1;
	if (j->roster_rows) {
		if ((s = store_sql(sql_user_roster)) == NULL)
			return STORE_ERROR;
		sqlite3_bind_int64(s, 1, uid);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			struct user_job_item *it;

			j->items = xreallocarray(j->items, j->nitems + 1,
			    sizeof(*j->items));
			it = &j->items[j->nitems++];
			it->jid = column_dup(s, 0);
			it->name = column_dup(s, 1);
			it->sub = (unsigned)sqlite3_column_int(s, 2);
			it->groups = column_dup(s, 3);
		}
		store_sql_done(s);
		return rc == SQLITE_DONE ? STORE_OK : STORE_ERROR;
	}
	j->roster = count_rows(sql_user_roster_count, uid, &ok);
	j->archive = count_rows(sql_user_archive_count, uid, &ok);
	j->offline = count_rows(sql_user_offline_count, uid, &ok);
	j->tokens = count_rows(sql_user_token_count, uid, &ok);
	if ((s = store_sql(sql_user_pep)) == NULL)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, uid);
	if (sqlite3_step(s) == SQLITE_ROW) {
		j->pep_nodes = sqlite3_column_int64(s, 0);
		j->pep_items = sqlite3_column_int64(s, 1);
		j->pep_bytes = sqlite3_column_int64(s, 2);
	} else
		ok = 0;
	store_sql_done(s);
	if ((s = store_sql(sql_user_lastlog)) == NULL)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, uid);
	if (sqlite3_step(s) == SQLITE_ROW) {
		j->last_stamp = sqlite3_column_int64(s, 0);
		j->last_status = column_dup(s, 1);
	}
	store_sql_done(s);
	return ok ? STORE_OK : STORE_ERROR;
}

/* A time value of the protocol (ctl.h): unix seconds, "" for none. */
static int
reply_row_time(struct control_conn *c, const char *key, int64_t t)
{
	return t > 0 ? reply_row_kv(c, key, "%lld", (long long)t) :
	    reply_row_kv(c, key, "%s", "");
}

/* The status text of the session sm_user_show names (the most available
 * one), "" if none. */
static const char *
user_status(const char *user, const char *host)
{
	struct session *s = sm_find_bare(user, host), *best = NULL;

	for (; s; s = s->next)
		if (s->available && s->presence && (best == NULL ||
		    s->priority > best->priority))
			best = s;
	return best ? sm_presence_status(best->presence) : "";
}

static void
user_show_reply(struct control_conn *c, struct user_job *j)
{
	static const char *const cols[] = { "key", "value" };
	struct session *s = sm_find_bare(j->user, j->host);
	struct buf res = BUF_INIT;
	size_t n = 0;
	int r = 0;

	for (; s; s = s->next) {
		if (n++ > 0)
			buf_addc(&res, CTL_LIST_SEP);
		buf_printf(&res, "%s", s->jid.resource);
	}
	reply_cols(c, cols, nitems(cols));
	r |= reply_row_kv(c, "jid", "%s@%s", j->user, j->host);
	r |= reply_row_time(c, "created:time", j->created);
	r |= reply_row_kv(c, "sessions:int", "%zu", n);
	r |= reply_row_kv(c, "resources:list", "%s", res.data ? res.data :
	    "");
	r |= reply_row_kv(c, "presence", "%s", n ? sm_user_show(j->user,
	    j->host) : "unavailable");
	r |= reply_row_kv(c, "status", "%s", user_status(j->user, j->host));
	r |= reply_row_time(c, "last-logout:time", j->last_stamp);
	r |= reply_row_kv(c, "last-status", "%s", j->last_status ?
	    j->last_status : "");
	r |= reply_row_kv(c, "disabled:bool", "%s", j->disabled ? "yes" :
	    "no");
	r |= reply_row_time(c, "disabled-since:time", j->disabled);
	r |= reply_row_kv(c, "disabled-reason", "%s", j->disabled_reason ?
	    j->disabled_reason : "");
	r |= reply_row_kv(c, "roster-items:int", "%lld", j->roster);
	r |= reply_row_kv(c, "archive-messages:int", "%lld", j->archive);
	r |= reply_row_kv(c, "offline-messages:int", "%lld", j->offline);
	/* XEP-0484: listed by device with "user tokens". */
	r |= reply_row_kv(c, "login-tokens:int", "%lld", j->tokens);
	/* XEP-0163: listed with "pep show". */
	r |= reply_row_kv(c, "pep-nodes:int", "%lld", j->pep_nodes);
	r |= reply_row_kv(c, "pep-items:int", "%lld", j->pep_items);
	r |= reply_row_kv(c, "pep-bytes:int", "%lld", j->pep_bytes);
	buf_free(&res);
	if (c->dead)
		return;
	if (r != 0)
		reply_err(c, CTL_E_INTERNAL, "row too long");
	else
		reply_ok(c);
}

static void
roster_show_reply(struct control_conn *c, struct user_job *j)
{
	static const char *const cols[] = { "jid", "name", "subscription",
		"ask", "pending_in:bool", "groups:list", "presence" };

	reply_cols(c, cols, nitems(cols));
	for (size_t i = 0; i < j->nitems && !c->dead; i++) {
		struct user_job_item *it = &j->items[i];
		struct ctl_line l;
		const char *show = "";
		char *at, *bare;

		/* A local contact's presence as the server sees it. */
		bare = xstrdup(it->jid ? it->jid : "");
		if ((at = strchr(bare, '@')) != NULL) {
			*at = '\0';
			if (conf_host_find(xmppd_conf, at + 1) != NULL &&
			    (show = sm_user_show(bare, at + 1)) == NULL)
				show = "unavailable";
		}
		/* Stored joined by 0x1F, as a list is sent (ctl.h). */
		reply_line(c, &l, "row");
		ctl_line_add(&l, it->jid ? it->jid : "");
		ctl_line_add(&l, it->name ? it->name : "");
		ctl_line_add(&l, subscription_attr(it->sub));
		ctl_line_add(&l, subscription_ask(it->sub) ? "subscribe" : "");
		ctl_line_add(&l, it->sub & SUB_PENDING_IN ? "yes" : "no");
		ctl_line_add(&l, it->groups ? it->groups : "");
		ctl_line_add(&l, show ? show : "");
		free(bare);
		ctl_line_end(&l);
	}
	if (c->dead || control_conn_output(c) == -1)
		return;
	reply_ok(c);
}

static void
complete_user(struct store_job *job)
{
	struct user_job *j = (struct user_job *)job;
	struct control_op *op = op_find(job->tag);
	struct control_conn *c = control_state.running ?
	    control_conn_find(job->owner) : NULL;

	if (op == NULL)
		return;
	if (c == NULL || !c->busy || c->req != op->req) {
		op_free(op);
		return;
	}
	if (!reply_store_err(c, job->status)) {
		if (op->kind == OP_USER_SHOW)
			user_show_reply(c, j);
		else
			roster_show_reply(c, j);
	}
	op_free(op);
	if (!c->dead)
		request_done(c);
}

static void
free_user(struct store_job *job)
{
	struct user_job *j = (struct user_job *)job;

	for (size_t i = 0; i < j->nitems; i++) {
		free(j->items[i].jid);
		free(j->items[i].name);
		free(j->items[i].groups);
	}
	free(j->items);
	free(j->last_status);
	free(j->disabled_reason);
	free(j->user);
	free(j->host);
	free(j);
}

static const struct store_job_ops user_ops = {
	.name = "control user",
	.writes = 0,
	.run = run_user,
	.complete = complete_user,
	.free = free_user,
};

static void
start_user_job(struct control_conn *c, enum control_op_kind kind,
    const char *arg)
{
	struct control_op *op;
	struct user_job *j;
	struct jid jid;

	if (parse_user_jid(c, arg, &jid) == -1)
		return;
	op = op_new(c, kind, jid.node, jid.domain);
	j = xcalloc(1, sizeof(*j));
	j->job.ops = &user_ops;
	j->job.owner = c->id;
	j->job.tag = op->id;
	j->user = xstrdup(jid.node);
	j->host = xstrdup(jid.domain);
	j->roster_rows = kind == OP_ROSTER_SHOW;
	jid_free(&jid);
	c->busy = 1;
	store_job_submit(&j->job);
}

void
handle_user_show(struct control_conn *c, char **args, size_t nargs)
{
	start_user_job(c, OP_USER_SHOW, args[0]);
}

void
handle_roster_show(struct control_conn *c, char **args, size_t nargs)
{
	start_user_job(c, OP_ROSTER_SHOW, args[0]);
}

/* roster-add and roster-del: an admin's change to one roster item,
 * through roster.c as a client's roster set or remove would do it. */

#define ROSTER_TEXT_MAX 1023    /* as roster.c takes from clients */

/* A name or group: UTF-8 XML text of at most ROSTER_TEXT_MAX bytes. */
static int
roster_text_ok(const char *t)
{
	size_t len = strlen(t);

	if (len > ROSTER_TEXT_MAX ||
	    !utf8_valid((const unsigned char *)t, len))
		return 0;
	for (const char *p = t; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t' && *p != '\n' &&
		    *p != '\r')
			return 0;
	return 1;
}

static void
roster_op_cb(uint64_t owner, uint64_t tag, enum store_status st,
    int item_found)
{
	struct control_op *op = op_find(tag);
	struct control_conn *c;

	if (op == NULL)
		return;
	control_log_change(op->uid, op->conn_id, op_names[op->kind], op->user,
	    op->host, st == STORE_OK && op->kind == OP_ROSTER_DEL &&
	    !item_found ? "no such item" : store_status_str(st));
	c = control_state.running ? control_conn_find(owner) : NULL;
	if (c == NULL || !c->busy || c->req != op->req) {
		op_free(op);
		return;
	}
	if (reply_store_err(c, st) == 0) {
		if (op->kind == OP_ROSTER_DEL && !item_found)
			reply_err(c, CTL_E_NOT_FOUND, "%s is not in the roster "
			    "of %s@%s", op->with, op->user, op->host);
		else
			reply_ok(c);
	}
	op_free(op);
	if (!c->dead)
		request_done(c);
}

/* User and contact of a roster request; the contact's bare JID (to free)
 * or NULL after replying. */
static char *
roster_args(struct control_conn *c, char **args, struct jid *user)
{
	struct jid contact = { 0 };
	char *bare;

	if (parse_user_jid(c, args[0], user) == -1)
		return NULL;
	if (jid_parse(&contact, args[1]) == -1) {
		reply_err(c, CTL_E_BAD_JID, "invalid contact JID");
		jid_free(user);
		return NULL;
	}
	/* RFC 6121 §2.1.1: items are bare JIDs. */
	bare = jid_bare(&contact);
	jid_free(&contact);
	return bare;
}

static void
start_roster_op(struct control_conn *c, enum control_op_kind kind,
    const struct jid *user, char *contact, const char *name,
    char **groups, size_t ngroups)
{
	struct control_op *op = op_new(c, kind, user->node, user->domain);

	op->with = contact;
	c->busy = 1;
	roster_admin_set(op->user, op->host, op->with, name,
	    (const char *const *)groups, ngroups, kind == OP_ROSTER_DEL,
	    roster_op_cb, c->id, op->id);
}

void
handle_roster_add(struct control_conn *c, char **args, size_t nargs)
{
	struct jid user;
	char *contact;

	if (!roster_text_ok(args[2])) {
		reply_err(c, CTL_E_USAGE, "NAME must be UTF-8 XML text of at "
		    "most %d bytes", ROSTER_TEXT_MAX);
		return;
	}
	for (size_t i = 3; i < nargs; i++) {
		if (args[i][0] == '\0' || !roster_text_ok(args[i])) {
			reply_err(c, CTL_E_USAGE, "GROUP must be non-empty "
			    "UTF-8 XML text of at most %d bytes",
			    ROSTER_TEXT_MAX);
			return;
		}
		for (size_t k = 3; k < i; k++)
			if (strcmp(args[k], args[i]) == 0) {
				reply_err(c, CTL_E_USAGE, "group \"%s\" given "
				    "twice", args[i]);
				return;
			}
	}
	if ((contact = roster_args(c, args, &user)) == NULL)
		return;
	start_roster_op(c, OP_ROSTER_ADD, &user, contact,
	    args[2][0] ? args[2] : NULL, args + 3, nargs - 3);
	jid_free(&user);
}

void
handle_roster_del(struct control_conn *c, char **args, size_t nargs)
{
	struct jid user;
	char *contact;

	if ((contact = roster_args(c, args, &user)) == NULL)
		return;
	start_roster_op(c, OP_ROSTER_DEL, &user, contact, NULL, NULL, 0);
	jid_free(&user);
}
