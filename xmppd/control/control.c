/*
 * The daemon side of the control socket: a Unix socket speaking the line
 * protocol of shared/ctl.h to xmppctl and xmpptop.  Read-only commands are
 * open to anyone who can connect (the socket is 0660, so the group);
 * changes need uid 0 or the daemon's own uid, read with SO_PEERCRED.
 * Each connection is served one request at a time; slow work (PBKDF2 on
 * the worker pool, storage) is asynchronous, keyed by connection id.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <time.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/account.h"
#include "core/hooks.h"
#include "conf.h"
#include "control/control.h"
#include "ctl.h"
#include "jid.h"
#include "log.h"
#include "store/mam.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/roster.h"
#include "control/stats.h"
#include "store/store.h"
#include "store/store_engine.h"
#include "strmap.h"
#include "core/subscription.h"
#include "utf8.h"
#include "xml.h"
#include "xmalloc.h"
#include "xmppd.h"

#define CONTROL_MAX_CONNS 64
#define CONTROL_MAX_PER_UID 8
/* A subscriber with this much output not yet read is too slow: dropped. */
#define CONTROL_EVENTS_MAX (4 * 1024 * 1024)
#define CONTROL_READ_CHUNK 16384
/* Above this much unsent output, take no further request from the peer. */
#define CONTROL_OUTPUT_HIGH (64 * 1024)
/* Past this, the peer is not reading (a huge listing): disconnect it. */
#define CONTROL_OUTPUT_MAX (16 * 1024 * 1024)

struct control_conn {
	struct control_conn *next;
	uint64_t id;                /* never reused; async results carry it */
	int fd;
	ev_io read_w;
	ev_io write_w;
	struct ctl_reader in;
	struct buf out;
	uid_t uid;
	pid_t pid;
	int privileged;             /* uid 0 or the daemon's euid */
	int greeted;                /* "hello" received */
	int busy;                   /* an asynchronous request is running */
	uint32_t req;               /* ID of the current request, 0 if none */
	int eof;                    /* the peer will send nothing more */
	int closing;                /* close once the output is flushed */
	int dead;                   /* closed and unlinked; freed soon */
	uint64_t paused_op;         /* a dump waiting for output to drain */
	int subscribed;             /* receives events */
	int in_handler;             /* a request handler is running */
	struct buf held;            /* events waiting for a response's end */
};

/* An asynchronous storage request; survives its connection. */
enum control_op_kind { OP_ADDUSER, OP_PASSWD, OP_DELUSER, OP_USERS,
	OP_HISTORY, OP_USER_SHOW, OP_ROSTER_SHOW, OP_ROSTER_ADD,
	OP_ROSTER_DEL };

static const char *const op_names[] = { "adduser", "passwd", "deluser",
	"users", "history", "user-show", "roster-show", "roster-add",
	"roster-del" };

struct control_op {
	struct control_op *next;
	uint64_t id;                /* the store call's tag */
	uint64_t conn_id;
	uint32_t req;
	enum control_op_kind kind;
	uid_t uid;
	char *user, *host;
	size_t rows;
	/* history: the dump's arguments and where it stands */
	char *with;
	int64_t since, until;
	uint64_t limit;
	struct mam_history_pos pos;
};

static struct {
	int running;
	int fd;
	char *path;
	dev_t dev;                  /* of the socket file we created */
	ino_t ino;
	ev_io accept_w;
	ev_prepare reap_w;
	ev_timer tick_w;            /* counters, once a second */
	struct control_conn *conns; /* live connections */
	size_t nconns;
	size_t nsubscribers;
	struct control_conn *graveyard;
	struct control_op *ops;
	uint64_t next_conn_id;
	uint64_t next_op_id;
} control = { .fd = -1 };

struct control_cmd {
	const char *name;
	size_t min_args, max_args;
	int privileged;
	const char *usage;
	void (*handle)(struct control_conn *, char **args, size_t nargs);
};

static void handle_adduser(struct control_conn *, char **, size_t);
static void handle_passwd(struct control_conn *, char **, size_t);
static void handle_deluser(struct control_conn *, char **, size_t);
static void handle_users(struct control_conn *, char **, size_t);
static void handle_status(struct control_conn *, char **, size_t);
static void handle_stop(struct control_conn *, char **, size_t);
static void handle_reload(struct control_conn *, char **, size_t);
static void handle_history(struct control_conn *, char **, size_t);
static void handle_subscribe(struct control_conn *, char **, size_t);
static void handle_unsubscribe(struct control_conn *, char **, size_t);
static void handle_sessions(struct control_conn *, char **, size_t);
static void handle_online(struct control_conn *, char **, size_t);
static void handle_kick(struct control_conn *, char **, size_t);
static void handle_broadcast(struct control_conn *, char **, size_t);
static void handle_stats(struct control_conn *, char **, size_t);
static void handle_log_level(struct control_conn *, char **, size_t);
static void handle_user_show(struct control_conn *, char **, size_t);
static void handle_roster_show(struct control_conn *, char **, size_t);
static void handle_roster_add(struct control_conn *, char **, size_t);
static void handle_roster_del(struct control_conn *, char **, size_t);
static void handle_check(struct control_conn *, char **, size_t);

static const struct control_cmd control_cmds[] = {
	{ "adduser", 2, 2, 1, "adduser JID PASSWORD", handle_adduser },
	{ "passwd", 2, 2, 1, "passwd JID PASSWORD", handle_passwd },
	{ "deluser", 1, 1, 1, "deluser JID", handle_deluser },
	{ "users", 0, 1, 0, "users [HOST]", handle_users },
	{ "status", 0, 0, 0, "status", handle_status },
	{ "stop", 0, 0, 1, "stop", handle_stop },
	{ "reload", 0, 0, 1, "reload", handle_reload },
	{ "history", 1, 5, 1, "history JID [WITH [SINCE [UNTIL [LIMIT]]]]",
	    handle_history },
	{ "subscribe", 0, 0, 0, "subscribe", handle_subscribe },
	{ "unsubscribe", 0, 0, 0, "unsubscribe", handle_unsubscribe },
	{ "sessions", 0, 0, 0, "sessions", handle_sessions },
	{ "online", 0, 0, 0, "online", handle_online },
	{ "kick", 1, 3, 1, "kick JID[/RESOURCE] [REASON [CONDITION]]",
	    handle_kick },
	{ "broadcast", 1, 1, 1, "broadcast TEXT", handle_broadcast },
	{ "stats", 0, 0, 0, "stats", handle_stats },
	/* Reading the level is open; setting it is checked in the handler. */
	{ "log-level", 0, 1, 0, "log-level [LEVEL]", handle_log_level },
	{ "user-show", 1, 1, 0, "user-show JID", handle_user_show },
	{ "roster-show", 1, 1, 0, "roster-show JID", handle_roster_show },
	{ "roster-add", 3, CTL_FIELDS_MAX - 2, 1,
	    "roster-add JID CONTACT NAME [GROUP...]", handle_roster_add },
	{ "roster-del", 2, 2, 1, "roster-del JID CONTACT", handle_roster_del },
	{ "check", 0, 0, 0, "check", handle_check },
};

static void conn_process(struct control_conn *c);
static void history_resume(struct control_conn *c);
static struct control_op *op_find(uint64_t id);
static void op_free(struct control_op *op);

/* Connections. */

static struct control_conn *
conn_find(uint64_t id)
{
	struct control_conn *c;

	for (c = control.conns; c != NULL; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void
reap_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	while (control.graveyard != NULL) {
		struct control_conn *c = control.graveyard;

		control.graveyard = c->next;
		ctl_reader_free(&c->in);
		buf_free(&c->out);
		buf_free(&c->held);
		free(c);
	}
	ev_prepare_stop(loop, w);
}

/*
 * Close c at once and unlink it, so later results for it are dropped; the
 * memory is freed before the loop sleeps, never inside c's own callback.
 */
static void
conn_kill(struct control_conn *c, const char *why)
{
	struct control_conn **pp;

	if (c->dead)
		return;
	c->dead = 1;
	for (pp = &control.conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	control.nconns--;
	if (c->subscribed)
		control.nsubscribers--;
	c->subscribed = 0;
	log_debug("control %llu: closed (%s)", (unsigned long long)c->id,
	    why);
	if (c->paused_op != 0 && op_find(c->paused_op) != NULL)
		op_free(op_find(c->paused_op));     /* nobody resumes it */
	c->paused_op = 0;
	ev_io_stop(xmppd_loop, &c->read_w);
	ev_io_stop(xmppd_loop, &c->write_w);
	close(c->fd);
	c->fd = -1;
	c->next = control.graveyard;
	control.graveyard = c;
	ev_prepare_start(xmppd_loop, &control.reap_w);
}

/* Read only when a request can be taken: not busy, output drained. */
static void
conn_update_read(struct control_conn *c)
{
	int want = !c->busy && !c->closing && !c->eof &&
	    buf_avail(&c->out) < CONTROL_OUTPUT_HIGH;

	if (c->dead)
		return;
	if (want && !ev_is_active(&c->read_w))
		ev_io_start(xmppd_loop, &c->read_w);
	else if (!want && ev_is_active(&c->read_w))
		ev_io_stop(xmppd_loop, &c->read_w);
}

/*
 * Write what can be written now.  Returns -1 if c was killed (write error,
 * or closing and everything sent), else 0.
 */
static int
conn_flush(struct control_conn *c)
{
	if (c->dead)
		return -1;
	while (buf_avail(&c->out) > 0) {
		ssize_t n = send(c->fd, buf_head(&c->out), buf_avail(&c->out),
		    MSG_NOSIGNAL);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_start(xmppd_loop, &c->write_w);
			return 0;
		}
		if (n == -1) {
			conn_kill(c, strerror(errno));
			return -1;
		}
		buf_consume(&c->out, (size_t)n);
	}
	buf_trim(&c->out);
	ev_io_stop(xmppd_loop, &c->write_w);
	if (c->closing) {
		conn_kill(c, "done");
		return -1;
	}
	return 0;
}

/* Queue output written by the caller into c->out, and send it. */
static int
conn_output(struct control_conn *c)
{
	if (c->dead)
		return -1;
	if (buf_avail(&c->out) > CONTROL_OUTPUT_MAX) {
		log_warnx("control %llu: peer not reading, %zu bytes of "
		    "output queued; disconnecting",
		    (unsigned long long)c->id, buf_avail(&c->out));
		conn_kill(c, "output limit");
		return -1;
	}
	if (ev_is_active(&c->write_w))
		return 0;       /* the write watcher will send it */
	return conn_flush(c);
}

/* Events. */

/*
 * Events held while a response was being written go out after it, so
 * that no event lands between a response's lines.  c may be killed.
 */
static void
events_release(struct control_conn *c)
{
	if (c->dead || buf_avail(&c->held) == 0)
		return;
	buf_add(&c->out, buf_head(&c->held), buf_avail(&c->held));
	buf_free(&c->held);
	conn_output(c);
}

static size_t
control_subscribers(void)
{
	return control.running ? control.nsubscribers : 0;
}

/* Send one event line (in line, without "\n" counted in) to every
 * subscriber; a subscriber that does not read is disconnected. */
static void
events_send(const struct buf *line)
{
	struct control_conn *c, *next;
	size_t n = buf_avail(line);

	for (c = control.conns; c != NULL; c = next) {
		next = c->next;
		if (!c->subscribed || c->dead)
			continue;
		if (buf_avail(&c->out) + buf_avail(&c->held) + n >
		    CONTROL_EVENTS_MAX) {
			log_warnx("control %llu: subscriber not reading its "
			    "events (%zu bytes queued); disconnecting",
			    (unsigned long long)c->id, buf_avail(&c->out) +
			    buf_avail(&c->held));
			conn_kill(c, "events not read");
			continue;
		}
		if (c->busy || c->in_handler) {
			buf_add(&c->held, buf_head(line), n);
			continue;
		}
		buf_add(&c->out, buf_head(line), n);
		conn_output(c);
	}
}

static void
event_start(struct ctl_line *l, struct buf *b, const char *name)
{
	buf_init(b);
	ctl_line_start(l, b);
	ctl_line_add(l, "*");
	ctl_line_add(l, "event");
	ctl_line_add(l, name);
}

static void
event_end(struct ctl_line *l, struct buf *b)
{
	if (ctl_line_end(l) == 0)
		events_send(b);
	buf_free(b);
}

static void
event_session_up(const struct sm_session_info *i)
{
	struct ctl_line l;
	struct buf b;

	if (control_subscribers() == 0)
		return;
	event_start(&l, &b, "session-up");
	ctl_line_addf(&l, "%llu", (unsigned long long)i->id);
	ctl_line_add(&l, i->jid);
	ctl_line_add(&l, i->ip);
	ctl_line_add(&l, i->tls_version);
	ctl_line_add(&l, i->tls_cipher);
	ctl_line_addf(&l, "%.3f", i->since);
	event_end(&l, &b);
}

static void
event_session_down(uint64_t sid, const char *jid, const char *reason)
{
	struct ctl_line l;
	struct buf b;

	if (control_subscribers() == 0)
		return;
	event_start(&l, &b, "session-down");
	ctl_line_addf(&l, "%llu", (unsigned long long)sid);
	ctl_line_add(&l, jid);
	ctl_line_add(&l, reason);
	event_end(&l, &b);
}

static void
event_presence(uint64_t sid, const char *jid, const char *show,
    int priority, const char *status)
{
	struct ctl_line l;
	struct buf b;

	if (control_subscribers() == 0)
		return;
	event_start(&l, &b, "presence");
	ctl_line_addf(&l, "%llu", (unsigned long long)sid);
	ctl_line_add(&l, jid);
	ctl_line_add(&l, show);
	ctl_line_addf(&l, "%d", priority);
	ctl_line_add(&l, status);
	event_end(&l, &b);
}

static void
event_log(const char *level, const char *fmt, ...)
{
	struct ctl_line l;
	struct buf b, text = BUF_INIT;
	va_list ap;

	if (control_subscribers() == 0)
		return;
	va_start(ap, fmt);
	buf_vprintf(&text, fmt, ap);
	va_end(ap);
	event_start(&l, &b, "log");
	ctl_line_add(&l, level);
	ctl_line_addn(&l, text.data ? text.data : "", buf_avail(&text));
	buf_free(&text);
	event_end(&l, &b);
}

/*
 * What the control plane learns through the core's hooks (registered by
 * control_init, owner HOOK_OWNER_CORE, so after every module's).
 */

static void
on_session_bound(struct session *s)
{
	struct sm_session_info info;

	stats_count_login();
	if (control_subscribers() == 0)
		return;
	sm_session_info(s, &info);
	event_session_up(&info);
	event_log("info", "login %s from %s", s->full, info.ip);
}

static void
on_session_end(struct session *s)
{
	const char *why;

	if (control_subscribers() == 0)
		return;
	why = session_end_reason(s);
	event_session_down(s->id, s->full, why);
	event_log("info", "logout %s (%s)", s->full, why);
}

static void
on_presence_changed(struct session *s, const struct xel *pres,
    int available)
{
	if (control_subscribers() == 0)
		return;
	event_presence(s->id, s->full, sm_presence_show(pres, available),
	    s->priority, sm_presence_status(pres));
}

static void
on_auth_failure(const char *addr)
{
	stats_count_auth_failure();
	event_log("warning", "authentication failed from %s", addr);
}

static void
event_counters(void)
{
	struct stats_snapshot st;
	struct ctl_line l;
	struct buf b;

	stats_get(&st);
	event_start(&l, &b, "counters");
	ctl_line_addf(&l, "%.0f", st.uptime);
	ctl_line_addf(&l, "%zu", st.sessions);
	ctl_line_addf(&l, "%zu", st.users);
	ctl_line_addf(&l, "%u", st.logins_per_min);
	ctl_line_addf(&l, "%.1f", st.stanzas_in_per_s);
	ctl_line_addf(&l, "%.1f", st.stanzas_out_per_s);
	ctl_line_addf(&l, "%.0f", st.bytes_in_per_s);
	ctl_line_addf(&l, "%.0f", st.bytes_out_per_s);
	ctl_line_addf(&l, "%lld", st.offline_queue);
	ctl_line_addf(&l, "%ld", st.rss_kb);
	ctl_line_addf(&l, "%zu", st.store_queue);
	ctl_line_addf(&l, "%.3f", st.commit_ms);
	event_end(&l, &b);
}

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	stats_tick();
	if (control_subscribers() > 0)
		event_counters();
}

/* Replies to the current request (ID 0 if it had no valid ID). */

static void
reply_line(struct control_conn *c, struct ctl_line *l, const char *kind)
{
	ctl_line_start(l, &c->out);
	ctl_line_addf(l, "%u", (unsigned)c->req);
	ctl_line_add(l, kind);
}

static int
reply_end(struct control_conn *c, struct ctl_line *l)
{
	if (ctl_line_end(l) == -1) {
		log_warnx("control %llu: reply longer than %d bytes dropped",
		    (unsigned long long)c->id, CTL_LINE_MAX);
		return -1;
	}
	return conn_output(c);
}

static int
reply_ok(struct control_conn *c)
{
	struct ctl_line l;

	reply_line(c, &l, "ok");
	return reply_end(c, &l);
}

static int
reply_err(struct control_conn *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
reply_err(struct control_conn *c, const char *code, const char *fmt, ...)
{
	struct ctl_line l;
	struct buf msg = BUF_INIT;
	va_list ap;
	int r;

	va_start(ap, fmt);
	buf_vprintf(&msg, fmt, ap);
	va_end(ap);
	reply_line(c, &l, "err");
	ctl_line_add(&l, code);
	ctl_line_addn(&l, msg.data ? msg.data : "", buf_avail(&msg));
	buf_free(&msg);
	r = reply_end(c, &l);
	if (r == -1 && !c->dead) {
		/* Message too long to send: say so shortly instead. */
		reply_line(c, &l, "err");
		ctl_line_add(&l, code);
		ctl_line_add(&l, "(message too long)");
		r = reply_end(c, &l);
	}
	return r;
}

/* A connection-level error (ID 0), then close. */
static void
conn_fail(struct control_conn *c, const char *code, const char *msg)
{
	struct ctl_line l;

	log_debug("control %llu: %s: %s", (unsigned long long)c->id, code,
	    msg);
	c->req = 0;
	c->closing = 1;
	conn_update_read(c);
	reply_line(c, &l, "err");
	ctl_line_add(&l, code);
	ctl_line_add(&l, msg);
	reply_end(c, &l);       /* kills c once sent */
}

static void
reply_cols(struct control_conn *c, const char *const *names, size_t n)
{
	struct ctl_line l;

	reply_line(c, &l, "cols");
	for (size_t i = 0; i < n; i++)
		ctl_line_add(&l, names[i]);
	reply_end(c, &l);
}

static int
reply_row_kv(struct control_conn *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
reply_row_kv(struct control_conn *c, const char *key, const char *fmt, ...)
{
	struct ctl_line l;
	struct buf v = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&v, fmt, ap);
	va_end(ap);
	reply_line(c, &l, "row");
	ctl_line_add(&l, key);
	ctl_line_addn(&l, v.data ? v.data : "", buf_avail(&v));
	buf_free(&v);
	return reply_end(c, &l);
}

/*
 * c's asynchronous request has finished and its reply is queued: take the
 * next pipelined request, if any.
 */
static void
request_done(struct control_conn *c)
{
	c->busy = 0;
	c->req = 0;
	events_release(c);
	if (c->dead)
		return;
	conn_process(c);
}

/* Operations (storage calls in flight). */

static struct control_op *
op_new(struct control_conn *c, enum control_op_kind kind, const char *user,
    const char *host)
{
	struct control_op *op = xcalloc(1, sizeof(*op));

	op->id = ++control.next_op_id;
	op->conn_id = c->id;
	op->req = c->req;
	op->kind = kind;
	op->uid = c->uid;
	op->user = user ? xstrdup(user) : NULL;
	op->host = host ? xstrdup(host) : NULL;
	op->next = control.ops;
	control.ops = op;
	return op;
}

static struct control_op *
op_find(uint64_t id)
{
	struct control_op *op;

	for (op = control.ops; op != NULL; op = op->next)
		if (op->id == id)
			return op;
	return NULL;
}

static void
op_free(struct control_op *op)
{
	struct control_op **pp;

	for (pp = &control.ops; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	}
	free(op->user);
	free(op->host);
	free(op->with);
	free(op);
}

/* Checking arguments. */

/* Parse a bare user JID; replies bad-jid and returns -1 if it is not. */
static int
parse_user_jid(struct control_conn *c, const char *s, struct jid *j)
{
	if (jid_parse(j, s) == -1) {
		reply_err(c, CTL_E_BAD_JID, "invalid JID");
		return -1;
	}
	if (j->node == NULL || j->resource != NULL) {
		reply_err(c, CTL_E_BAD_JID, "expected user@host, without a "
		    "resource");
		jid_free(j);
		return -1;
	}
	return 0;
}

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

static void
log_change(uid_t uid, uint64_t conn_id, const char *what, const char *user,
    const char *host, const char *result)
{
	log_info("control %llu: uid %u: %s%s%s%s%s: %s",
	    (unsigned long long)conn_id, (unsigned)uid, what,
	    user || host ? " " : "", user ? user : "", user ? "@" : "",
	    host ? host : "", result);
}

/* adduser and passwd: keys are derived on the worker pool (account.c),
 * then stored; the write is skipped if the connection went away. */
static int
key_wanted(uint64_t owner, uint64_t tag)
{
	struct control_op *op = op_find(tag);
	struct control_conn *c = control.running ? conn_find(owner) : NULL;

	if (op == NULL)
		return 0;
	if (c == NULL || !c->busy || c->req != op->req) {
		log_change(op->uid, owner, op_names[op->kind], op->user,
		    op->host, "dropped, the control connection closed");
		op_free(op);
		return 0;
	}
	return 1;
}

static void
op_status_cb(uint64_t owner, uint64_t tag, enum store_status st)
{
	struct control_op *op = op_find(tag);
	struct control_conn *c;
	const char *what;

	if (op == NULL)
		return;         /* control shut down meanwhile */
	what = op_names[op->kind];
	log_change(op->uid, op->conn_id, what, op->user, op->host,
	    store_status_str(st));
	c = conn_find(owner);
	if (c == NULL || !c->busy || c->req != op->req) {
		op_free(op);
		return;         /* the connection has gone */
	}
	switch (st) {
	case STORE_OK:
		reply_ok(c);
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

static void
handle_adduser(struct control_conn *c, char **args, size_t nargs)
{
	start_key_job(c, OP_ADDUSER, args);
}

static void
handle_passwd(struct control_conn *c, char **args, size_t nargs)
{
	start_key_job(c, OP_PASSWD, args);
}

static void
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
	c = conn_find(owner);
	if (c != NULL && (!c->busy || c->req != op->req))
		c = NULL;
	if (u != NULL) {
		if (c == NULL)
			return;
		op->rows++;
		reply_line(c, &l, "row");
		ctl_line_addf(&l, "%s@%s", u->user, u->host);
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

static void
handle_users(struct control_conn *c, char **args, size_t nargs)
{
	static const char *const cols[] = { "jid" };
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

static void
handle_status(struct control_conn *c, char **args, size_t nargs)
{
	static const char *const cols[] = { "key", "value" };
	struct store_stats st;
	struct buf hosts = BUF_INIT;
	int r = 0;

	store_get_stats(&st);
	for (size_t i = 0; i < xmppd_conf->nhosts; i++)
		buf_printf(&hosts, "%s%s", i ? " " : "",
		    xmppd_conf->hosts[i].name);
	reply_cols(c, cols, nitems(cols));
	r |= reply_row_kv(c, "version", "%s", XMPPD_VERSION);
	r |= reply_row_kv(c, "uptime", "%lld",
	    (long long)(ev_now(xmppd_loop) - xmppd_started));
	r |= reply_row_kv(c, "hosts", "%s", hosts.data ? hosts.data : "");
	r |= reply_row_kv(c, "sessions", "%zu", sm_session_count());
	r |= reply_row_kv(c, "users-online", "%zu", sm_user_count());
	r |= reply_row_kv(c, "storage-queue", "%zu", st.queue_depth);
	r |= reply_row_kv(c, "storage-commits", "%llu",
	    (unsigned long long)st.commits);
	r |= reply_row_kv(c, "last-commit-ms", "%.3f", st.last_commit_ms);
	r |= reply_row_kv(c, "rss-kb", "%ld", stats_rss_kb());
	r |= reply_row_kv(c, "offline-queue", "%lld",
	    stats_get_offline_queue());
	r |= reply_row_kv(c, "pid", "%ld", (long)getpid());
	buf_free(&hosts);
	if (c->dead)
		return;
	if (r != 0)
		reply_err(c, CTL_E_INTERNAL, "status row too long");
	else
		reply_ok(c);
}

static void
handle_stop(struct control_conn *c, char **args, size_t nargs)
{
	log_change(c->uid, c->id, "stop", NULL, NULL, "requested");
	reply_ok(c);
	xmppd_request_stop();
}

static void
handle_reload(struct control_conn *c, char **args, size_t nargs)
{
	log_change(c->uid, c->id, "reload", NULL, NULL, "requested");
	reply_ok(c);
	xmppd_request_reload();
}

/*
 * history JID [WITH [SINCE [UNTIL [LIMIT]]]]: the archive of JID (mam.h),
 * "-" for an argument left out; SINCE and UNTIL are milliseconds since
 * the epoch, LIMIT keeps only the last LIMIT messages.  Rows go out as
 * the storage thread reads bounded chunks; the next chunk is asked for
 * only once the output has drained below CONTROL_OUTPUT_HIGH, so a huge
 * archive never sits in memory.
 */
static const char *const history_cols[] = { "id", "timestamp", "direction",
	"with", "from", "to", "body", "stanza" };

static void history_cb(uint64_t, uint64_t, enum store_status,
    const struct mam_history_row *, size_t, const struct mam_history_pos *);

static void
history_next(struct control_conn *c, struct control_op *op)
{
	mam_history_read(op->user, op->host, op->with, op->since, op->until,
	    op->limit, &op->pos, history_cb, c->id, op->id);
}

/* Take the rest of a paused dump once the output has drained. */
static void
history_resume(struct control_conn *c)
{
	struct control_op *op;

	if (c->paused_op == 0 || buf_avail(&c->out) >= CONTROL_OUTPUT_HIGH)
		return;
	op = op_find(c->paused_op);
	c->paused_op = 0;
	if (op != NULL)
		history_next(c, op);
}

/* One row; a message too long for one line (CTL_LINE_MAX) goes with a
 * shortened body and without the stanza. */
static void
history_row(struct control_conn *c, const struct mam_history_row *r)
{
	char id[MAM_ID_LEN + 1], stamp[40];
	size_t cut = 0;

	mam_id_format(r->id, id);
	mam_stamp_format(r->stamp_ms, stamp, sizeof(stamp));
	for (int attempt = 0; attempt < 2 && !c->dead; attempt++) {
		struct ctl_line l;
		size_t blen = strlen(r->body);

		if (attempt == 1) {
			/* Cut on a UTF-8 character boundary. */
			cut = blen < 16384 ? blen : 16384;
			while (cut > 0 && ((unsigned char)r->body[cut] & 0xc0) ==
			    0x80)
				cut--;
		}
		reply_line(c, &l, "row");
		ctl_line_add(&l, id);
		ctl_line_add(&l, stamp);
		ctl_line_add(&l, r->outgoing ? "out" : "in");
		ctl_line_add(&l, r->with);
		ctl_line_add(&l, r->from);
		ctl_line_add(&l, r->to);
		ctl_line_addn(&l, r->body, attempt ? cut : blen);
		ctl_line_addn(&l, attempt ? "" : r->stanza, attempt ? 0 :
		    r->len);
		if (ctl_line_end(&l) == 0)
			return;
	}
}

static void
history_cb(uint64_t owner, uint64_t tag, enum store_status st,
    const struct mam_history_row *rows, size_t n,
    const struct mam_history_pos *next)
{
	struct control_op *op = op_find(tag);
	struct control_conn *c;

	if (op == NULL)
		return;
	c = conn_find(owner);
	if (c != NULL && (!c->busy || c->req != op->req))
		c = NULL;
	if (c == NULL || st != STORE_OK) {
		if (c != NULL && st == STORE_NOT_FOUND)
			reply_err(c, CTL_E_NOT_FOUND, "no such user");
		else if (c != NULL)
			reply_err(c, CTL_E_INTERNAL, "reading the archive "
			    "failed (see the daemon's log)");
		log_debug("control %llu: history: %zu rows, %s",
		    (unsigned long long)op->conn_id, op->rows,
		    c ? store_status_str(st) : "connection closed");
		op_free(op);
		if (c != NULL && !c->dead)
			request_done(c);
		return;
	}
	for (size_t i = 0; i < n && !c->dead; i++) {
		history_row(c, &rows[i]);
		op->rows++;
	}
	if (c->dead || conn_output(c) == -1) {
		op_free(op);
		return;
	}
	if (next == NULL) {
		log_debug("control %llu: history of %s@%s: %zu rows",
		    (unsigned long long)op->conn_id, op->user, op->host,
		    op->rows);
		op_free(op);
		reply_ok(c);
		if (!c->dead)
			request_done(c);
		return;
	}
	op->pos = *next;
	if (buf_avail(&c->out) >= CONTROL_OUTPUT_HIGH)
		c->paused_op = op->id;  /* write_cb resumes it */
	else
		history_next(c, op);
}

/* A decimal argument, or "-" for none; -1 if malformed. */
static int
parse_number_arg(const char *s, int64_t none, int64_t *out)
{
	char *end;
	long long v;

	if (strcmp(s, "-") == 0) {
		*out = none;
		return 0;
	}
	if (*s == '\0' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0)
		return -1;
	*out = v;
	return 0;
}

static void
handle_history(struct control_conn *c, char **args, size_t nargs)
{
	struct control_op *op;
	struct jid j, w = { 0 };
	int64_t since = MAM_STAMP_NONE, until = MAM_STAMP_NONE, limit = 0;
	char *with = NULL;

	if (parse_user_jid(c, args[0], &j) == -1)
		return;
	if (nargs > 1 && strcmp(args[1], "-") != 0) {
		if (jid_parse(&w, args[1]) == -1) {
			reply_err(c, CTL_E_BAD_JID, "invalid JID %s", args[1]);
			jid_free(&j);
			return;
		}
		with = w.resource ? jid_full(&w) : jid_bare(&w);
		jid_free(&w);
	}
	if ((nargs > 2 && parse_number_arg(args[2], MAM_STAMP_NONE,
	    &since) == -1) ||
	    (nargs > 3 && parse_number_arg(args[3], MAM_STAMP_NONE,
	    &until) == -1) ||
	    (nargs > 4 && parse_number_arg(args[4], 0, &limit) == -1)) {
		reply_err(c, CTL_E_USAGE, "SINCE and UNTIL are milliseconds "
		    "since the epoch and LIMIT a count, or \"-\"");
		jid_free(&j);
		free(with);
		return;
	}
	op = op_new(c, OP_HISTORY, j.node, j.domain);
	jid_free(&j);
	op->with = with;
	op->since = since;
	op->until = until;
	op->limit = (uint64_t)limit;
	reply_cols(c, history_cols, nitems(history_cols));
	if (c->dead) {
		op_free(op);
		return;
	}
	c->busy = 1;
	history_next(c, op);
}

/* Events and sessions. */

static void
handle_subscribe(struct control_conn *c, char **args, size_t nargs)
{
	if (!c->subscribed) {
		c->subscribed = 1;
		control.nsubscribers++;
	}
	reply_ok(c);
}

static void
handle_unsubscribe(struct control_conn *c, char **args, size_t nargs)
{
	if (c->subscribed) {
		c->subscribed = 0;
		control.nsubscribers--;
	}
	buf_free(&c->held);
	reply_ok(c);
}

struct rows_ctx {
	struct control_conn *c;
	double now;
	int err;
};

static void
session_row(const struct sm_session_info *i, void *arg)
{
	struct rows_ctx *x = arg;
	struct ctl_line l;
	double idle = x->now - i->last_active;

	if (x->c->dead || x->err)
		return;
	reply_line(x->c, &l, "row");
	ctl_line_addf(&l, "%llu", (unsigned long long)i->id);
	ctl_line_add(&l, i->jid);
	ctl_line_add(&l, i->ip);
	ctl_line_add(&l, i->tls_version);
	ctl_line_add(&l, i->tls_cipher);
	ctl_line_add(&l, i->client);
	ctl_line_add(&l, i->show);
	ctl_line_add(&l, i->status);
	ctl_line_addf(&l, "%d", i->priority);
	ctl_line_addf(&l, "%.3f", i->since);
	ctl_line_addf(&l, "%.0f", idle > 0 ? idle : 0);
	ctl_line_addf(&l, "%llu", (unsigned long long)i->stanzas_in);
	ctl_line_addf(&l, "%llu", (unsigned long long)i->stanzas_out);
	if (ctl_line_end(&l) == -1)
		x->err = 1;
}

static void
handle_sessions(struct control_conn *c, char **args, size_t nargs)
{
	static const char *const cols[] = { "sid", "jid", "ip", "tls",
		"cipher", "client", "show", "status", "priority", "since",
		"idle", "stanzas_in", "stanzas_out" };
	struct rows_ctx x = { c, ev_time(), 0 };

	reply_cols(c, cols, nitems(cols));
	sm_foreach(session_row, &x);
	if (c->dead || conn_output(c) == -1)
		return;
	if (x.err)
		reply_err(c, CTL_E_INTERNAL, "a row was too long");
	else
		reply_ok(c);
}

/* online: one row per user with a bound session. */
struct online_ctx {
	struct strmap *seen;
	struct control_conn *c;
};

static void
online_row(const struct sm_session_info *i, void *arg)
{
	struct online_ctx *x = arg;
	const char *slash = strchr(i->jid, '/');
	size_t n = slash ? (size_t)(slash - i->jid) : strlen(i->jid);
	char *bare = xstrndup(i->jid, n);
	uintptr_t count = (uintptr_t)strmap_get(x->seen, bare);

	strmap_put(x->seen, bare, (void *)(count + 1));
	free(bare);
}

static void
online_out(const char *key, void *value, void *arg)
{
	struct online_ctx *x = arg;
	struct ctl_line l;

	if (x->c->dead)
		return;
	reply_line(x->c, &l, "row");
	ctl_line_add(&l, key);
	ctl_line_addf(&l, "%lu", (unsigned long)(uintptr_t)value);
	ctl_line_end(&l);
}

static void
handle_online(struct control_conn *c, char **args, size_t nargs)
{
	static const char *const cols[] = { "jid", "sessions" };
	struct online_ctx x = { strmap_new(), c };

	reply_cols(c, cols, nitems(cols));
	sm_foreach(online_row, &x);
	strmap_foreach(x.seen, online_out, &x);
	strmap_free(x.seen);
	if (c->dead || conn_output(c) == -1)
		return;
	reply_ok(c);
}

/*
 * kick JID[/RESOURCE] [REASON [CONDITION]]: close the sessions with the
 * stream error CONDITION (policy-violation, or reset) and REASON as its
 * text.  "ok N" with the number closed.
 */
static void
handle_kick(struct control_conn *c, char **args, size_t nargs)
{
	const char *reason = nargs > 1 && args[1][0] != '\0' ? args[1] : NULL;
	const char *cond = nargs > 2 ? args[2] : "policy-violation";
	struct ctl_line l;
	struct jid j;
	int n;

	if (strcmp(cond, "policy-violation") != 0 &&
	    strcmp(cond, "reset") != 0) {
		reply_err(c, CTL_E_USAGE, "CONDITION is policy-violation or "
		    "reset");
		return;
	}
	if (reason != NULL && (!utf8_valid((const unsigned char *)reason,
	    strlen(reason)) || strlen(reason) > 1024)) {
		reply_err(c, CTL_E_USAGE, "REASON must be UTF-8 text of at "
		    "most 1024 bytes");
		return;
	}
	for (const char *p = reason; p && *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t' && *p != '\n') {
			reply_err(c, CTL_E_USAGE, "REASON holds a control "
			    "character");
			return;
		}
	if (jid_parse(&j, args[0]) == -1 || j.node == NULL) {
		if (j.domain != NULL || j.node != NULL)
			jid_free(&j);
		reply_err(c, CTL_E_BAD_JID, "expected user@host or "
		    "user@host/resource");
		return;
	}
	n = sm_kick(j.node, j.domain, j.resource, cond, reason);
	for (int i = 0; i < n; i++)
		stats_count_kick();
	log_info("control %llu: uid %u: kick %s: %d session%s closed%s%s",
	    (unsigned long long)c->id, (unsigned)c->uid, args[0], n,
	    n == 1 ? "" : "s", reason ? ": " : "", reason ? reason : "");
	if (n > 0)
		event_log("info", "kicked %s (%d session%s)%s%s",
		    args[0], n, n == 1 ? "" : "s", reason ? ": " : "",
		    reason ? reason : "");
	jid_free(&j);
	if (n == 0) {
		reply_err(c, CTL_E_NOT_FOUND, "no such session");
		return;
	}
	reply_line(c, &l, "ok");
	ctl_line_addf(&l, "%d", n);
	reply_end(c, &l);
}

/* broadcast TEXT: a headline from each session's domain. */
struct broadcast_ctx {
	const char *text;
	unsigned n;
};

static void
broadcast_one(struct session *s, void *arg)
{
	struct broadcast_ctx *x = arg;
	struct arena *a = arena_new(512);
	struct xel *m = xel_new(a, "message", NS_CLIENT);

	xel_set_attr(m, "from", s->jid.domain);
	xel_set_attr(m, "to", s->full);
	xel_set_attr(m, "type", "headline");
	xel_text_set(xel_add(m, "body", NS_CLIENT), x->text);
	session_send(s, m);
	arena_free(a);
	x->n++;
}

static void
handle_broadcast(struct control_conn *c, char **args, size_t nargs)
{
	struct broadcast_ctx x = { args[0], 0 };
	struct ctl_line l;
	size_t len = strlen(args[0]);

	if (len == 0 || !utf8_valid((const unsigned char *)args[0], len)) {
		reply_err(c, CTL_E_USAGE, "TEXT must be non-empty UTF-8");
		return;
	}
	for (const char *p = args[0]; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t' && *p != '\n' &&
		    *p != '\r') {
			reply_err(c, CTL_E_USAGE, "TEXT holds a control "
			    "character not allowed in XML");
			return;
		}
	sm_foreach_session(broadcast_one, &x);
	log_info("control %llu: uid %u: broadcast to %u sessions",
	    (unsigned long long)c->id, (unsigned)c->uid, x.n);
	reply_line(c, &l, "ok");
	ctl_line_addf(&l, "%u", x.n);
	reply_end(c, &l);
}

static void
handle_stats(struct control_conn *c, char **args, size_t nargs)
{
	static const char *const cols[] = { "key", "value" };
	struct stats_snapshot st;
	int r = 0;

	stats_get(&st);
	reply_cols(c, cols, nitems(cols));
	r |= reply_row_kv(c, "uptime", "%.0f", st.uptime);
	r |= reply_row_kv(c, "sessions", "%zu", st.sessions);
	r |= reply_row_kv(c, "users-online", "%zu", st.users);
	r |= reply_row_kv(c, "logins", "%llu", (unsigned long long)st.logins);
	r |= reply_row_kv(c, "logins-per-min", "%u", st.logins_per_min);
	r |= reply_row_kv(c, "auth-failures", "%llu",
	    (unsigned long long)st.auth_failures);
	r |= reply_row_kv(c, "kicks", "%llu", (unsigned long long)st.kicks);
	r |= reply_row_kv(c, "stanzas-in", "%llu",
	    (unsigned long long)st.stanzas_in);
	r |= reply_row_kv(c, "stanzas-out", "%llu",
	    (unsigned long long)st.stanzas_out);
	r |= reply_row_kv(c, "stanzas-in-per-s", "%.1f", st.stanzas_in_per_s);
	r |= reply_row_kv(c, "stanzas-out-per-s", "%.1f",
	    st.stanzas_out_per_s);
	r |= reply_row_kv(c, "bytes-in", "%llu",
	    (unsigned long long)st.bytes_in);
	r |= reply_row_kv(c, "bytes-out", "%llu",
	    (unsigned long long)st.bytes_out);
	r |= reply_row_kv(c, "bytes-in-per-s", "%.0f", st.bytes_in_per_s);
	r |= reply_row_kv(c, "bytes-out-per-s", "%.0f", st.bytes_out_per_s);
	r |= reply_row_kv(c, "offline-queue", "%lld", st.offline_queue);
	r |= reply_row_kv(c, "rss-kb", "%ld", st.rss_kb);
	r |= reply_row_kv(c, "storage-queue", "%zu", st.store_queue);
	r |= reply_row_kv(c, "storage-commits", "%llu",
	    (unsigned long long)st.store_commits);
	r |= reply_row_kv(c, "last-commit-ms", "%.3f", st.commit_ms);
	if (c->dead)
		return;
	if (r != 0)
		reply_err(c, CTL_E_INTERNAL, "stats row too long");
	else
		reply_ok(c);
}

/* log-level [LEVEL]: "ok LEVEL", the level in force afterwards. */
static void
handle_log_level(struct control_conn *c, char **args, size_t nargs)
{
	struct ctl_line l;
	enum log_level lvl;

	if (nargs == 1) {
		if (!c->privileged) {
			reply_err(c, CTL_E_DENIED, "permission denied: "
			    "setting the log level needs root or the daemon's "
			    "user");
			return;
		}
		if (log_level_parse(args[0], &lvl) == -1) {
			reply_err(c, CTL_E_USAGE, "LEVEL is one of error, "
			    "warning, info, debug");
			return;
		}
		log_set_level(lvl);
		log_change(c->uid, c->id, "log-level", NULL, NULL,
		    log_level_name(lvl));
	}
	reply_line(c, &l, "ok");
	ctl_line_add(&l, log_level_name(log_level_cur));
	reply_end(c, &l);
}

/* user-show and roster-show: storage jobs reading one user's rows. */
struct user_job {
	struct store_job job;
	char *user, *host;
	int found;
	int64_t created, last_stamp;
	char *last_status;
	long long roster, archive, offline;
	/* roster-show */
	struct user_job_item {
		char *jid, *name, *groups;
		unsigned sub;
	} *items;
	size_t nitems;
	int roster_rows;
};

static const char sql_user[] =
    "SELECT id, created FROM users WHERE host = ?1 AND user = ?2";
static const char sql_user_roster_count[] =
    "SELECT count(*) FROM roster WHERE user_id = ?1 AND (sub & 32) != 0";
static const char sql_user_archive_count[] =
    "SELECT count(*) FROM archive WHERE user_id = ?1";
static const char sql_user_offline_count[] =
    "SELECT count(*) FROM offline WHERE user_id = ?1";
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

static void
format_time(int64_t t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL)
		snprintf(out, len, "never");
	else
		strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
user_show_reply(struct control_conn *c, struct user_job *j)
{
	static const char *const cols[] = { "key", "value" };
	struct session *s = sm_find_bare(j->user, j->host);
	struct buf res = BUF_INIT;
	char created[40], last[40];
	size_t n = 0;
	int r = 0;

	for (; s; s = s->next) {
		buf_printf(&res, "%s%s", n ? " " : "", s->jid.resource);
		n++;
	}
	format_time(j->created, created, sizeof(created));
	format_time(j->last_stamp, last, sizeof(last));
	reply_cols(c, cols, nitems(cols));
	r |= reply_row_kv(c, "jid", "%s@%s", j->user, j->host);
	r |= reply_row_kv(c, "created", "%s", created);
	r |= reply_row_kv(c, "sessions", "%zu", n);
	r |= reply_row_kv(c, "resources", "%s", res.data ? res.data : "");
	r |= reply_row_kv(c, "presence", "%s", n ? sm_user_show(j->user,
	    j->host) : "unavailable");
	r |= reply_row_kv(c, "last-seen", "%s", n ? "online" : last);
	r |= reply_row_kv(c, "last-status", "%s", j->last_status ?
	    j->last_status : "");
	r |= reply_row_kv(c, "roster-items", "%lld", j->roster);
	r |= reply_row_kv(c, "archive-messages", "%lld", j->archive);
	r |= reply_row_kv(c, "offline-messages", "%lld", j->offline);
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
		"ask", "pending_in", "groups", "presence" };

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
		for (char *p = it->groups; p && *p; p++)
			if (*p == '\x1f')
				*p = ',';
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
	if (c->dead || conn_output(c) == -1)
		return;
	reply_ok(c);
}

static void
complete_user(struct store_job *job)
{
	struct user_job *j = (struct user_job *)job;
	struct control_op *op = op_find(job->tag);
	struct control_conn *c = control.running ? conn_find(job->owner) :
	    NULL;

	if (op == NULL)
		return;
	if (c == NULL || !c->busy || c->req != op->req) {
		op_free(op);
		return;
	}
	if (job->status == STORE_NOT_FOUND)
		reply_err(c, CTL_E_NOT_FOUND, "no such user");
	else if (job->status != STORE_OK)
		reply_err(c, CTL_E_INTERNAL, "database error (see the "
		    "daemon's log)");
	else if (op->kind == OP_USER_SHOW)
		user_show_reply(c, j);
	else
		roster_show_reply(c, j);
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

static void
handle_user_show(struct control_conn *c, char **args, size_t nargs)
{
	start_user_job(c, OP_USER_SHOW, args[0]);
}

static void
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
	log_change(op->uid, op->conn_id, op_names[op->kind], op->user,
	    op->host, st == STORE_OK && op->kind == OP_ROSTER_DEL &&
	    !item_found ? "no such item" : store_status_str(st));
	c = control.running ? conn_find(owner) : NULL;
	if (c == NULL || !c->busy || c->req != op->req) {
		op_free(op);
		return;
	}
	if (st == STORE_NOT_FOUND)
		reply_err(c, CTL_E_NOT_FOUND, "no such user");
	else if (st != STORE_OK)
		reply_err(c, CTL_E_INTERNAL, "database error (see the "
		    "daemon's log)");
	else if (op->kind == OP_ROSTER_DEL && !item_found)
		reply_err(c, CTL_E_NOT_FOUND, "%s is not in the roster of "
		    "%s@%s", op->with, op->user, op->host);
	else
		reply_ok(c);
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

static void
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

static void
handle_roster_del(struct control_conn *c, char **args, size_t nargs)
{
	struct jid user;
	char *contact;

	if ((contact = roster_args(c, args, &user)) == NULL)
		return;
	start_roster_op(c, OP_ROSTER_DEL, &user, contact, NULL, NULL, 0);
	jid_free(&user);
}

/*
 * check: what only the daemon can see.  Rows "level subject message":
 * the configuration file parsed again, each host's certificate (expiry,
 * warning under 30 days), and the listeners as "info listener
 * ADDRESS PORT KIND" for xmppctl to connect to.
 */
static int
check_row(struct control_conn *c, const char *level, const char *subject,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
check_row(struct control_conn *c, const char *level, const char *subject,
    const char *fmt, ...)
{
	struct ctl_line l;
	struct buf m = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&m, fmt, ap);
	va_end(ap);
	reply_line(c, &l, "row");
	ctl_line_add(&l, level);
	ctl_line_add(&l, subject);
	ctl_line_addn(&l, m.data ? m.data : "", buf_avail(&m));
	buf_free(&m);
	return ctl_line_end(&l);
}

static void
check_certificate(struct control_conn *c, const struct conf_host *h)
{
	FILE *f;
	X509 *x;
	const ASN1_TIME *na;
	int days = 0, secs = 0;

	if (h->certificate == NULL) {
		check_row(c, "error", h->name, "no certificate configured");
		return;
	}
	if ((f = fopen(h->certificate, "r")) == NULL) {
		check_row(c, "error", h->name, "certificate %s: %s",
		    h->certificate, strerror(errno));
		return;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL) {
		check_row(c, "error", h->name, "certificate %s: not a PEM "
		    "certificate", h->certificate);
		return;
	}
	na = X509_get0_notAfter(x);
	if (ASN1_TIME_diff(&days, &secs, NULL, na) != 1)
		check_row(c, "error", h->name, "certificate %s: unreadable "
		    "expiry date", h->certificate);
	else if (days < 0 || (days == 0 && secs < 0))
		check_row(c, "error", h->name, "certificate %s has expired",
		    h->certificate);
	else if (days < 30)
		check_row(c, "warning", h->name, "certificate %s expires in "
		    "%d days", h->certificate, days);
	else
		check_row(c, "ok", h->name, "certificate %s valid for %d more "
		    "days", h->certificate, days);
	if (X509_get0_notBefore(x) != NULL &&
	    X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
		check_row(c, "error", h->name, "certificate %s is not valid "
		    "yet", h->certificate);
	X509_free(x);
}

static void
handle_check(struct control_conn *c, char **args, size_t nargs)
{
	static const char *const cols[] = { "level", "subject", "message" };
	const struct conf *cf = xmppd_conf;
	char err[1024];

	reply_cols(c, cols, nitems(cols));
	if (cf->source == NULL || strcmp(cf->source, "(default)") == 0)
		check_row(c, "ok", "configuration", "built-in default");
	else {
		struct conf *n = conf_load(cf->source, err, sizeof(err));

		if (n == NULL)
			check_row(c, "error", "configuration", "%s", err);
		else {
			check_row(c, "ok", "configuration", "%s parses",
			    cf->source);
			conf_free(n);
		}
	}
	for (size_t i = 0; i < cf->nhosts; i++) {
		check_row(c, "info", "host", "%s", cf->hosts[i].name);
		check_certificate(c, &cf->hosts[i]);
	}
	for (size_t i = 0; i < cf->nlisteners; i++)
		check_row(c, "info", "listener", "%s %d %s",
		    cf->listeners[i].address, cf->listeners[i].port,
		    cf->listeners[i].kind == LISTEN_C2S_TLS ? "c2s-tls" :
		    "c2s");
	if (c->dead || conn_output(c) == -1)
		return;
	reply_ok(c);
}

/* Requests. */

static void
handle_hello(struct control_conn *c, char *line, size_t len)
{
	char *f[CTL_FIELDS_MAX];
	int n = ctl_split(line, len, f, nitems(f));

	if (n < 1 || strcmp(f[0], "hello") != 0) {
		conn_fail(c, CTL_E_USAGE, "expected \"hello 1\"");
		return;
	}
	if (n < 2 || strcmp(f[1], "1") != 0) {
		conn_fail(c, CTL_E_VERSION, "this daemon speaks control "
		    "protocol 1 only");
		return;
	}
	c->greeted = 1;
}

static const struct control_cmd *
find_command(const char *name)
{
	for (size_t i = 0; i < nitems(control_cmds); i++)
		if (strcmp(control_cmds[i].name, name) == 0)
			return &control_cmds[i];
	return NULL;
}

/* The ID of a line that may not split: its raw first field. */
static uint32_t
raw_request_id(const char *line, size_t len)
{
	const char *sp = memchr(line, ' ', len);
	size_t n = sp ? (size_t)(sp - line) : len;
	char tmp[12];
	uint32_t id;

	if (n == 0 || n >= sizeof(tmp))
		return 0;
	memcpy(tmp, line, n);
	tmp[n] = '\0';
	return ctl_parse_id(tmp, &id) == 0 ? id : 0;
}

static void
handle_request(struct control_conn *c, char *line, size_t len)
{
	const struct control_cmd *cmd;
	char *f[CTL_FIELDS_MAX];
	size_t nargs;
	int n;

	c->req = raw_request_id(line, len);
	n = ctl_split(line, len, f, nitems(f));
	if (n == CTL_SPLIT_TOO_MANY) {
		reply_err(c, CTL_E_USAGE, "too many fields");
		return;
	}
	if (n == CTL_SPLIT_MALFORMED) {
		reply_err(c, CTL_E_USAGE, "malformed line (spacing or "
		    "%%-escape)");
		return;
	}
	if (n < 2 || c->req == 0) {
		reply_err(c, CTL_E_USAGE, "expected: ID COMMAND [ARG...] "
		    "with ID from 1 to 4294967295");
		return;
	}
	if ((cmd = find_command(f[1])) == NULL) {
		reply_err(c, CTL_E_UNKNOWN_COMMAND, "unknown command \"%s\"",
		    f[1]);
		return;
	}
	nargs = (size_t)n - 2;
	if (nargs < cmd->min_args || nargs > cmd->max_args) {
		reply_err(c, CTL_E_USAGE, "usage: %s", cmd->usage);
		return;
	}
	if (cmd->privileged && !c->privileged) {
		log_info("control %llu: uid %u: %s denied",
		    (unsigned long long)c->id, (unsigned)c->uid, cmd->name);
		reply_err(c, CTL_E_DENIED, "permission denied: %s needs root "
		    "or the daemon's user", cmd->name);
		return;
	}
	log_debug("control %llu: request %u %s", (unsigned long long)c->id,
	    (unsigned)c->req, cmd->name);
	c->in_handler = 1;
	cmd->handle(c, f + 2, nargs);
	c->in_handler = 0;
	if (!c->busy)
		events_release(c);
}

/*
 * Take complete requests from the input while c may: not busy with an
 * asynchronous one, and its output not backed up.  c may be killed.
 */
static void
conn_process(struct control_conn *c)
{
	char *line;
	size_t len;
	int r, drained = 0;

	if (c->dead)
		return;
	while (!c->busy && !c->closing &&
	    buf_avail(&c->out) < CONTROL_OUTPUT_HIGH) {
		if ((r = ctl_reader_next(&c->in, &line, &len)) == 0) {
			drained = 1;
			break;
		}
		if (r == -1) {
			conn_fail(c, CTL_E_TOO_LONG, "line longer than 65536 "
			    "bytes");
			return;
		}
		if (c->greeted)
			handle_request(c, line, len);
		else
			handle_hello(c, line, len);
		/* The line may hold a password. */
		explicit_bzero(line, len);
		if (c->dead)
			return;
		if (!c->busy)
			c->req = 0;
	}
	if (drained && c->eof && !c->busy && !c->closing) {
		/* Everything the peer sent is answered. */
		c->closing = 1;
		if (conn_flush(c) == -1)
			return;
	}
	conn_update_read(c);
}

static void
read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct control_conn *c = container_of(w, struct control_conn, read_w);
	char chunk[CONTROL_READ_CHUNK];
	ssize_t n;

	n = read(c->fd, chunk, sizeof(chunk));
	if (n == -1 && (errno == EINTR || errno == EAGAIN ||
	    errno == EWOULDBLOCK))
		return;
	if (n == -1) {
		conn_kill(c, strerror(errno));
		return;
	}
	if (n == 0)
		c->eof = 1;
	else
		ctl_reader_feed(&c->in, chunk, (size_t)n);
	explicit_bzero(chunk, (size_t)(n > 0 ? n : 0));
	conn_process(c);
}

static void
write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct control_conn *c = container_of(w, struct control_conn,
	    write_w);

	if (conn_flush(c) == -1)
		return;
	history_resume(c);
	if (c->dead)
		return;
	conn_process(c);
}

/* Accepting. */

static void
accept_one(int fd)
{
	struct control_conn *c;
	struct ucred cred;
	socklen_t credlen = sizeof(cred);
	struct ctl_line l;
	uid_t euid = geteuid();
	size_t same_uid = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) == -1) {
		log_warn("control: SO_PEERCRED");
		close(fd);
		return;
	}
	for (c = control.conns; c != NULL; c = c->next)
		if (c->uid == cred.uid)
			same_uid++;
	if (same_uid >= CONTROL_MAX_PER_UID) {
		static const char busy[] = "0 err busy "
		    "too%20many%20control%20connections%20for%20this%20user\n";

		log_warnx("control: uid %u has %d connections, refusing one",
		    (unsigned)cred.uid, CONTROL_MAX_PER_UID);
		(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);
		close(fd);
		return;
	}
	if (control.nconns >= CONTROL_MAX_CONNS) {
		static const char busy[] = "0 err busy "
		    "too%20many%20control%20connections\n";

		log_warnx("control: more than %d connections, refusing one",
		    CONTROL_MAX_CONNS);
		(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->id = ++control.next_conn_id;
	c->fd = fd;
	c->uid = cred.uid;
	c->pid = cred.pid;
	c->privileged = cred.uid == 0 || cred.uid == euid;
	ctl_reader_init(&c->in, CTL_LINE_MAX);
	buf_init(&c->out);
	ev_io_init(&c->read_w, read_cb, fd, EV_READ);
	ev_io_init(&c->write_w, write_cb, fd, EV_WRITE);
	c->next = control.conns;
	control.conns = c;
	control.nconns++;
	log_debug("control %llu: connection from uid %u pid %ld (%s)",
	    (unsigned long long)c->id, (unsigned)c->uid, (long)c->pid,
	    c->privileged ? "read-write" : "read-only");

	ctl_line_start(&l, &c->out);
	ctl_line_add(&l, CTL_GREETING);
	ctl_line_addf(&l, "%d", CTL_PROTOCOL_VERSION);
	ctl_line_add(&l, XMPPD_VERSION);
	ctl_line_end(&l);
	if (conn_output(c) == -1)
		return;
	conn_update_read(c);
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	for (int i = 0; i < CONTROL_MAX_CONNS; i++) {
		int fd = accept4(control.fd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				log_warn("control: accept");
			return;
		}
		accept_one(fd);
	}
}

/* Set-up and tear-down. */

static int
init_fail(char *err, size_t errlen, int fd, const char *unlink_path,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int
init_fail(char *err, size_t errlen, int fd, const char *unlink_path,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (fd != -1)
		close(fd);
	if (unlink_path != NULL)
		unlink(unlink_path);
	return -1;
}

/*
 * Refuse a symlink or a non-socket at path and a socket somebody answers
 * on; remove a stale socket.  0, or -1 with err.
 */
static int
check_existing(const char *path, const struct sockaddr_un *sun, char *err,
    size_t errlen)
{
	struct stat st;
	int fd, r, saved;

	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		return init_fail(err, errlen, -1, NULL, "control socket %s: %s",
		    path, strerror(errno));
	}
	if (S_ISLNK(st.st_mode))
		return init_fail(err, errlen, -1, NULL, "control socket %s is "
		    "a symbolic link; refusing to use it", path);
	if (!S_ISSOCK(st.st_mode))
		return init_fail(err, errlen, -1, NULL, "control socket %s "
		    "exists and is not a socket; refusing to replace it", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return init_fail(err, errlen, -1, NULL, "socket: %s",
		    strerror(errno));
	r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	saved = errno;
	close(fd);
	/* EAGAIN: the listener's backlog is full, so it is alive. */
	if (r == 0 || saved == EAGAIN || saved == EINPROGRESS)
		return init_fail(err, errlen, -1, NULL, "another xmppd is "
		    "answering on %s", path);
	if (saved != ECONNREFUSED)
		return init_fail(err, errlen, -1, NULL, "cannot check control "
		    "socket %s: %s", path, strerror(saved));
	if (unlink(path) == -1)
		return init_fail(err, errlen, -1, NULL, "cannot remove stale "
		    "control socket %s: %s", path, strerror(errno));
	log_info("removed stale control socket %s", path);
	return 0;
}

int
control_init(const char *path, const char *group_name, uid_t owner_uid,
    gid_t owner_gid, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st;
	gid_t gid = owner_gid;
	mode_t old_mask;
	int fd, r;

	if (control.running)
		return init_fail(err, errlen, -1, NULL, "control socket "
		    "already open");
	if (group_name != NULL) {
		struct group *gr = getgrnam(group_name);

		if (gr == NULL)
			return init_fail(err, errlen, -1, NULL,
			    "control-group %s: no such group", group_name);
		gid = gr->gr_gid;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return init_fail(err, errlen, -1, NULL, "control socket path "
		    "too long (at most %zu bytes): %s",
		    sizeof(sun.sun_path) - 1, path);
	memcpy(sun.sun_path, path, strlen(path));
	if (check_existing(path, &sun, err, errlen) == -1)
		return -1;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return init_fail(err, errlen, -1, NULL, "socket: %s",
		    strerror(errno));
	/* Never accessible to others, not even between bind and chmod. */
	old_mask = umask(0117);
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old_mask);
	if (r == -1)
		return init_fail(err, errlen, fd, NULL, "cannot bind control "
		    "socket %s: %s", path, strerror(errno));
	if (chmod(path, 0660) == -1)
		return init_fail(err, errlen, fd, path, "chmod control socket "
		    "%s: %s", path, strerror(errno));
	if (chown(path, owner_uid, gid) == -1)
		return init_fail(err, errlen, fd, path, "cannot give control "
		    "socket %s to uid %u gid %u: %s", path,
		    (unsigned)owner_uid, (unsigned)gid, strerror(errno));
	if (listen(fd, CONTROL_MAX_CONNS) == -1)
		return init_fail(err, errlen, fd, path, "listen on control "
		    "socket %s: %s", path, strerror(errno));
	if (lstat(path, &st) == -1)
		return init_fail(err, errlen, fd, path, "control socket %s: %s",
		    path, strerror(errno));

	control.fd = fd;
	control.path = xstrdup(path);
	control.dev = st.st_dev;
	control.ino = st.st_ino;
	ev_io_init(&control.accept_w, accept_cb, fd, EV_READ);
	ev_io_start(xmppd_loop, &control.accept_w);
	ev_prepare_init(&control.reap_w, reap_cb);
	ev_timer_init(&control.tick_w, tick_cb, 1.0, 1.0);
	ev_timer_start(xmppd_loop, &control.tick_w);
	control.running = 1;
	hook_add_session(HOOK_SESSION_BOUND, on_session_bound);
	hook_add_session(HOOK_SESSION_END, on_session_end);
	hook_add_presence_changed(on_presence_changed);
	hook_add_auth_failure(on_auth_failure);
	hook_add_offline_changed(stats_offline_changed);
	log_info("control socket %s (mode 0660, uid %u, gid %u)", path,
	    (unsigned)owner_uid, (unsigned)gid);
	return 0;
}

void
control_shutdown(void)
{
	struct stat st;

	if (!control.running)
		return;
	control.running = 0;
	ev_io_stop(xmppd_loop, &control.accept_w);
	ev_timer_stop(xmppd_loop, &control.tick_w);
	close(control.fd);
	control.fd = -1;
	/* Remove the socket only if it is still the one we created. */
	if (lstat(control.path, &st) == 0 && st.st_dev == control.dev &&
	    st.st_ino == control.ino && unlink(control.path) == -1)
		log_warn("control: unlink %s", control.path);
	free(control.path);
	control.path = NULL;

	while (control.conns != NULL) {
		struct control_conn *c = control.conns;

		if (c->busy) {
			struct ctl_line l;

			reply_line(c, &l, "err");
			ctl_line_add(&l, CTL_E_INTERNAL);
			ctl_line_add(&l, "the daemon is shutting down");
			ctl_line_end(&l);
		}
		/* Best effort: a last answer ("stop" -> "ok") still goes. */
		if (buf_avail(&c->out) > 0)
			(void)!send(c->fd, buf_head(&c->out),
			    buf_avail(&c->out), MSG_NOSIGNAL | MSG_DONTWAIT);
		conn_kill(c, "shutdown");
	}
	reap_cb(xmppd_loop, &control.reap_w, 0);
	/* Storage results still to come find no operation and are dropped;
	 * key derivations find no connection. */
	while (control.ops != NULL)
		op_free(control.ops);
}
