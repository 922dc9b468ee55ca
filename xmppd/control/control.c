/*
 * The daemon side of the control socket: a Unix socket speaking the line
 * protocol of shared/ctl.h to xmppctl and xmpptop.  Read-only commands are
 * open to anyone who can connect (the socket is 0660, so the group);
 * changes need uid 0 or the daemon's own uid, read with SO_PEERCRED.
 * Each connection is served one request at a time; slow work (PBKDF2 on
 * the worker pool, storage) is asynchronous, keyed by connection id.
 *
 * This file is the socket itself: connections, the hello exchange, request
 * parsing, permission checks and dispatch through control_cmds, the reply
 * helpers and the bookkeeping of asynchronous operations.  The commands
 * are in cmd_*.c, the event feed in events.c; control_int.h is what they
 * share.
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

#include "conf.h"
#include "control/control.h"
#include "control/control_int.h"
#include "ctl.h"
#include "jid.h"
#include "log.h"
#include "utf8.h"
#include "xmalloc.h"
#include "xmppd.h"

#define CONTROL_MAX_CONNS 64
#define CONTROL_MAX_PER_UID 8
#define CONTROL_READ_CHUNK 16384
/* Past this, the peer is not reading (a huge listing): disconnect it. */
#define CONTROL_OUTPUT_MAX (16 * 1024 * 1024)

struct control_state control_state = { .fd = -1 };

struct control_cmd {
	const char *name;
	size_t min_args, max_args;
	int privileged;
	const char *usage;
	void (*handle)(struct control_conn *, char **args, size_t nargs);
};

static const struct control_cmd control_cmds[] = {
	{ "adduser", 2, 2, 1, "adduser JID PASSWORD", handle_adduser },
	{ "passwd", 2, 2, 1, "passwd JID PASSWORD", handle_passwd },
	{ "deluser", 1, 1, 1, "deluser JID", handle_deluser },
	{ "disable", 1, 2, 1, "disable JID [REASON]", handle_disable },
	{ "enable", 1, 1, 1, "enable JID", handle_enable },
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
	{ "s2s", 0, 0, 0, "s2s", handle_s2s },
	{ "kick", 1, 3, 1, "kick JID[/RESOURCE] [REASON [CONDITION]]",
	    handle_kick },
	{ "broadcast", 1, 1, 1, "broadcast TEXT", handle_broadcast },
	{ "stats", 0, 0, 0, "stats", handle_stats },
	/* Reading the level is open; setting it is checked in the handler. */
	{ "log-level", 0, 1, 0, "log-level [LEVEL]", handle_log_level },
	{ "user-show", 1, 1, 0, "user-show JID", handle_user_show },
	{ "user-tokens", 1, 1, 0, "user-tokens JID", handle_user_tokens },
	{ "user-revoke-tokens", 1, 2, 1, "user-revoke-tokens JID [DEVICE]",
	    handle_user_revoke_tokens },
	{ "pep-show", 1, 2, 0, "pep-show JID [NODE]", handle_pep_show },
	{ "pep-delete", 2, 2, 1, "pep-delete JID NODE", handle_pep_delete },
	{ "roster-show", 1, 1, 0, "roster-show JID", handle_roster_show },
	{ "roster-add", 3, CTL_FIELDS_MAX - 2, 1,
	    "roster-add JID CONTACT NAME [GROUP...]", handle_roster_add },
	{ "roster-del", 2, 2, 1, "roster-del JID CONTACT", handle_roster_del },
	{ "check", 0, 0, 0, "check", handle_check },
	{ "rooms", 0, 0, 0, "rooms", handle_rooms },
	{ "room-show", 1, 1, 0, "room-show ROOM", handle_room_show },
	{ "room-create", 1, 6, 1, "room-create ROOM [persistent] [public] "
	    "[members-only] [name=NAME] [owner=JID]", handle_room_create },
	{ "room-destroy", 1, 2, 1, "room-destroy ROOM [REASON]",
	    handle_room_destroy },
	{ "room-affiliate", 3, 3, 1, "room-affiliate ROOM JID AFFILIATION",
	    handle_room_affiliate },
	{ "components", 0, 0, 0, "components", handle_components },
	{ "upload-list", 0, 1, 1, "upload-list [JID]", handle_upload_list },
	{ "upload-purge", 1, 1, 1, "upload-purge JID", handle_upload_purge },
	{ "upload-purge-older", 1, 1, 1, "upload-purge-older SECONDS",
	    handle_upload_purge_older },
	{ "push-list", 1, 1, 1, "push-list JID", handle_push_list },
};

static void conn_process(struct control_conn *c);

/* Connections. */

struct control_conn *
control_conn_find(uint64_t id)
{
	struct control_conn *c;

	for (c = control_state.conns; c != NULL; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void
reap_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	while (control_state.graveyard != NULL) {
		struct control_conn *c = control_state.graveyard;

		control_state.graveyard = c->next;
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
void
control_conn_kill(struct control_conn *c, const char *why)
{
	struct control_conn **pp;

	if (c->dead)
		return;
	c->dead = 1;
	for (pp = &control_state.conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	control_state.nconns--;
	if (c->subscribed)
		control_state.nsubscribers--;
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
	c->next = control_state.graveyard;
	control_state.graveyard = c;
	ev_prepare_start(xmppd_loop, &control_state.reap_w);
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
			control_conn_kill(c, strerror(errno));
			return -1;
		}
		buf_consume(&c->out, (size_t)n);
	}
	buf_trim(&c->out);
	ev_io_stop(xmppd_loop, &c->write_w);
	if (c->closing) {
		control_conn_kill(c, "done");
		return -1;
	}
	return 0;
}

/* Queue output written by the caller into c->out, and send it. */
int
control_conn_output(struct control_conn *c)
{
	if (c->dead)
		return -1;
	if (buf_avail(&c->out) > CONTROL_OUTPUT_MAX) {
		log_warnx("control %llu: peer not reading, %zu bytes of "
		    "output queued; disconnecting",
		    (unsigned long long)c->id, buf_avail(&c->out));
		control_conn_kill(c, "output limit");
		return -1;
	}
	if (ev_is_active(&c->write_w))
		return 0;       /* the write watcher will send it */
	return conn_flush(c);
}

/* Replies to the current request (ID 0 if it had no valid ID). */

void
reply_line(struct control_conn *c, struct ctl_line *l, const char *kind)
{
	ctl_line_start(l, &c->out);
	ctl_line_addf(l, "%u", (unsigned)c->req);
	ctl_line_add(l, kind);
}

int
reply_end(struct control_conn *c, struct ctl_line *l)
{
	if (ctl_line_end(l) == -1) {
		log_warnx("control %llu: reply longer than %d bytes dropped",
		    (unsigned long long)c->id, CTL_LINE_MAX);
		return -1;
	}
	return control_conn_output(c);
}

int
reply_ok(struct control_conn *c)
{
	struct ctl_line l;

	reply_line(c, &l, "ok");
	return reply_end(c, &l);
}

int
reply_store_err(struct control_conn *c, enum store_status st)
{
	if (st == STORE_OK)
		return 0;
	if (st == STORE_NOT_FOUND)
		reply_err(c, CTL_E_NOT_FOUND, "no such user");
	else
		reply_err(c, CTL_E_INTERNAL, "database error (see the "
		    "daemon's log)");
	return 1;
}

int
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

void
reply_cols(struct control_conn *c, const char *const *names, size_t n)
{
	struct ctl_line l;

	reply_line(c, &l, "cols");
	for (size_t i = 0; i < n; i++)
		ctl_line_add(&l, names[i]);
	reply_end(c, &l);
}

int
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
void
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

struct control_op *
op_new(struct control_conn *c, enum control_op_kind kind, const char *user,
    const char *host)
{
	struct control_op *op = xcalloc(1, sizeof(*op));

	op->id = ++control_state.next_op_id;
	op->conn_id = c->id;
	op->req = c->req;
	op->kind = kind;
	op->uid = c->uid;
	op->user = user ? xstrdup(user) : NULL;
	op->host = host ? xstrdup(host) : NULL;
	op->next = control_state.ops;
	control_state.ops = op;
	return op;
}

struct control_op *
op_find(uint64_t id)
{
	struct control_op *op;

	for (op = control_state.ops; op != NULL; op = op->next)
		if (op->id == id)
			return op;
	return NULL;
}

struct control_conn *
op_waiting_conn(struct control_op *op)
{
	struct control_conn *c = control_state.running ?
	    control_conn_find(op->conn_id) : NULL;

	if (c == NULL || !c->busy || c->req != op->req) {
		op_free(op);
		return NULL;
	}
	return c;
}

void
op_free(struct control_op *op)
{
	struct control_op **pp;

	for (pp = &control_state.ops; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	}
	free(op->user);
	free(op->host);
	free(op->reason);
	free(op->with);
	free(op);
}

/* Checking arguments. */

/* Parse a bare user JID; replies bad-jid and returns -1 if it is not. */
int
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

const char *
check_reason(const char *text)
{
	size_t len = strlen(text);

	if (len > 1024 || !utf8_valid((const unsigned char *)text, len))
		return "REASON must be UTF-8 text of at most 1024 bytes";
	for (const char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t' && *p != '\n')
			return "REASON holds a control character";
	return NULL;
}

void
control_log_change(uid_t uid, uint64_t conn_id, const char *what,
    const char *user, const char *host, const char *result)
{
	log_info("control %llu: uid %u: %s%s%s%s%s: %s",
	    (unsigned long long)conn_id, (unsigned)uid, what,
	    user || host ? " " : "", user ? user : "", user ? "@" : "",
	    host ? host : "", result);
}

/* Requests. */

static void
handle_hello(struct control_conn *c, char *line, size_t len)
{
	char *f[CTL_FIELDS_MAX], want[16], msg[64];
	int n = ctl_split(line, len, f, nitems(f));

	snprintf(want, sizeof(want), "%d", CTL_PROTOCOL_VERSION);
	if (n < 1 || strcmp(f[0], "hello") != 0) {
		snprintf(msg, sizeof(msg), "expected \"hello %s\"", want);
		conn_fail(c, CTL_E_USAGE, msg);
		return;
	}
	if (n < 2 || strcmp(f[1], want) != 0) {
		snprintf(msg, sizeof(msg), "this daemon speaks control "
		    "protocol %s only", want);
		conn_fail(c, CTL_E_VERSION, msg);
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
		control_conn_kill(c, strerror(errno));
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
	for (c = control_state.conns; c != NULL; c = c->next)
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
	if (control_state.nconns >= CONTROL_MAX_CONNS) {
		static const char busy[] = "0 err busy "
		    "too%20many%20control%20connections\n";

		log_warnx("control: more than %d connections, refusing one",
		    CONTROL_MAX_CONNS);
		(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->id = ++control_state.next_conn_id;
	c->fd = fd;
	c->uid = cred.uid;
	c->pid = cred.pid;
	c->privileged = cred.uid == 0 || cred.uid == euid;
	ctl_reader_init(&c->in, CTL_LINE_MAX);
	buf_init(&c->out);
	ev_io_init(&c->read_w, read_cb, fd, EV_READ);
	ev_io_init(&c->write_w, write_cb, fd, EV_WRITE);
	c->next = control_state.conns;
	control_state.conns = c;
	control_state.nconns++;
	log_debug("control %llu: connection from uid %u pid %ld (%s)",
	    (unsigned long long)c->id, (unsigned)c->uid, (long)c->pid,
	    c->privileged ? "read-write" : "read-only");

	ctl_line_start(&l, &c->out);
	ctl_line_add(&l, CTL_GREETING);
	ctl_line_addf(&l, "%d", CTL_PROTOCOL_VERSION);
	ctl_line_add(&l, XMPPD_VERSION);
	ctl_line_end(&l);
	if (control_conn_output(c) == -1)
		return;
	conn_update_read(c);
}

static void
accept_again_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	if (control_state.running)
		ev_io_start(loop, &control_state.accept_w);
}

/*
 * Out of descriptors, the peer stays in the listen queue and the
 * level-triggered watcher would fire again at once: stop listening for a
 * second (the peer waits, or gives up) instead of spinning the loop.
 */
static void
accept_pause(struct ev_loop *loop)
{
	static ev_timer again_w;

	log_warn("control: accept (listening again in 1 s)");
	ev_io_stop(loop, &control_state.accept_w);
	ev_timer_stop(loop, &again_w);
	ev_timer_init(&again_w, accept_again_cb, 1.0, 0.);
	ev_timer_start(loop, &again_w);
}

static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	for (int i = 0; i < CONTROL_MAX_CONNS; i++) {
		int fd = accept4(control_state.fd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				accept_pause(loop);
			else if (errno != EAGAIN && errno != EWOULDBLOCK &&
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

/* What a file that is not a socket is, for the start-up error. */
static const char *
file_kind(mode_t mode)
{
	if (S_ISREG(mode))
		return "a regular file";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode) || S_ISBLK(mode))
		return "a device";
	return "a file of another kind";
}

/*
 * Refuse a symlink or a non-socket at path (never replaced: it may be
 * somebody's file, put there by a mistyped control-socket) and a socket
 * somebody answers on; remove a stale socket.  0, or -1 with err.
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
		    "exists and is %s, not a socket; refusing to replace it "
		    "(remove it, or set control-socket to another path)", path,
		    file_kind(st.st_mode));
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

	if (control_state.running)
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
	/* Listening as soon as the name exists: a client that sees the
	 * file (a script right after start-up) is not refused. */
	if (listen(fd, CONTROL_MAX_CONNS) == -1)
		return init_fail(err, errlen, fd, path, "listen on control "
		    "socket %s: %s", path, strerror(errno));
	if (chmod(path, 0660) == -1)
		return init_fail(err, errlen, fd, path, "chmod control socket "
		    "%s: %s", path, strerror(errno));
	if (chown(path, owner_uid, gid) == -1)
		return init_fail(err, errlen, fd, path, "cannot give control "
		    "socket %s to uid %u gid %u: %s", path,
		    (unsigned)owner_uid, (unsigned)gid, strerror(errno));
	if (lstat(path, &st) == -1)
		return init_fail(err, errlen, fd, path, "control socket %s: %s",
		    path, strerror(errno));

	control_state.fd = fd;
	control_state.path = xstrdup(path);
	control_state.dev = st.st_dev;
	control_state.ino = st.st_ino;
	ev_io_init(&control_state.accept_w, accept_cb, fd, EV_READ);
	ev_io_start(xmppd_loop, &control_state.accept_w);
	ev_prepare_init(&control_state.reap_w, reap_cb);
	control_state.running = 1;
	events_init();
	users_init();
	log_info("control socket %s (mode 0660, uid %u, gid %u)", path,
	    (unsigned)owner_uid, (unsigned)gid);
	return 0;
}

void
control_shutdown(void)
{
	struct stat st;

	if (!control_state.running)
		return;
	control_state.running = 0;
	ev_io_stop(xmppd_loop, &control_state.accept_w);
	events_shutdown();
	close(control_state.fd);
	control_state.fd = -1;
	/* Remove the socket only if it is still the one we created. */
	if (lstat(control_state.path, &st) == 0 &&
	    st.st_dev == control_state.dev &&
	    st.st_ino == control_state.ino && unlink(control_state.path) == -1)
		log_warn("control: unlink %s", control_state.path);
	free(control_state.path);
	control_state.path = NULL;

	while (control_state.conns != NULL) {
		struct control_conn *c = control_state.conns;

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
		control_conn_kill(c, "shutdown");
	}
	reap_cb(xmppd_loop, &control_state.reap_w, 0);
	/* Storage results still to come find no operation and are dropped;
	 * key derivations find no connection. */
	while (control_state.ops != NULL)
		op_free(control_state.ops);
}
