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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "account.h"
#include "conf.h"
#include "control.h"
#include "ctl.h"
#include "jid.h"
#include "log.h"
#include "mam.h"
#include "sm.h"
#include "roster.h"
#include "store.h"
#include "xmalloc.h"
#include "xmppd.h"

#define CONTROL_MAX_CONNS 16
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
};

/* An asynchronous storage request; survives its connection. */
enum control_op_kind { OP_ADDUSER, OP_PASSWD, OP_DELUSER, OP_USERS,
	OP_HISTORY };

static const char *const op_names[] = { "adduser", "passwd", "deluser",
	"users", "history" };

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
	struct control_conn *conns; /* live connections */
	size_t nconns;
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
	cmd->handle(c, f + 2, nargs);
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

	if (control.nconns >= CONTROL_MAX_CONNS) {
		static const char busy[] = "0 err busy "
		    "too%20many%20control%20connections\n";

		log_warnx("control: more than %d connections, refusing one",
		    CONTROL_MAX_CONNS);
		(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);
		close(fd);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) == -1) {
		log_warn("control: SO_PEERCRED");
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
	control.running = 1;
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
