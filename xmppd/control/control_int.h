/*
 * What the files of control/ share, and nothing outside control/ includes:
 * the connection and operation structures, the socket's state, the reply
 * helpers and the command handlers of control.c's command table.
 */
#ifndef XMPPD_CONTROL_INT_H
#define XMPPD_CONTROL_INT_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "buf.h"
#include "ctl.h"
#include "store/mam.h"

/* Above this much unsent output, take no further request from the peer. */
#define CONTROL_OUTPUT_HIGH (64 * 1024)

struct jid;

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
	OP_ROSTER_DEL, OP_DISABLE, OP_ENABLE, OP_TOKENS, OP_REVOKE_TOKENS, OP_PEP_SHOW,
	OP_PEP_DELETE, OP_UPLOAD_LIST, OP_UPLOAD_PURGE, OP_PUSH_LIST };

struct control_op {
	struct control_op *next;
	uint64_t id;                /* the store call's tag */
	uint64_t conn_id;
	uint32_t req;
	enum control_op_kind kind;
	uid_t uid;
	char *user, *host;
	char *reason;               /* disable: the reason, or NULL */
	size_t rows;
	/* history: the dump's arguments and where it stands */
	char *with;                 /* history, roster: the contact; pep: the
	                               node (NULL: all) */
	int64_t since, until;
	uint64_t limit;
	struct mam_history_pos pos;
};

/* The socket and its connections (control.c). */
struct control_state {
	int running;
	int fd;
	char *path;
	dev_t dev;                  /* of the socket file we created */
	ino_t ino;
	ev_io accept_w;
	ev_prepare reap_w;
	struct control_conn *conns; /* live connections */
	size_t nconns;
	size_t nsubscribers;
	struct control_conn *graveyard;
	struct control_op *ops;
	uint64_t next_conn_id;
	uint64_t next_op_id;
};

extern struct control_state control_state;

/* control.c: connections.  A connection is found by id, never kept by
 * pointer across an asynchronous call; NULL once it has gone. */
struct control_conn *control_conn_find(uint64_t id);
/* Close c now and unlink it; its memory is freed before the loop sleeps. */
void control_conn_kill(struct control_conn *c, const char *why);
/* Send what the caller queued in c->out.  -1 if c was killed. */
int control_conn_output(struct control_conn *c);

/* control.c: replies to c's current request.  Those returning int give
 * -1 if the line was dropped or c was killed; check c->dead after any. */
void reply_line(struct control_conn *c, struct ctl_line *l, const char *kind);
int reply_end(struct control_conn *c, struct ctl_line *l);
int reply_ok(struct control_conn *c);
int reply_err(struct control_conn *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The error of an account's store request that did not succeed: "no
 * such user" or a database error; 1 if one was sent, 0 for STORE_OK. */
int reply_store_err(struct control_conn *c, enum store_status st);
void reply_cols(struct control_conn *c, const char *const *names, size_t n);
int reply_row_kv(struct control_conn *c, const char *key, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));
/* The asynchronous request of c is answered: take the next one.  c may be
 * killed. */
void request_done(struct control_conn *c);

/* control.c: operations in flight, owned by the list in control_state.ops. */
struct control_op *op_new(struct control_conn *c, enum control_op_kind kind,
    const char *user, const char *host);
struct control_op *op_find(uint64_t id);
void op_free(struct control_op *op);
/* The connection still waiting for op's answer, or NULL (op is then
 * freed: the connection closed or moved on). */
struct control_conn *op_waiting_conn(struct control_op *op);

/* control.c: parse a bare user JID into j (jid_free it); replies bad-jid
 * and returns -1 if it is not one. */
int parse_user_jid(struct control_conn *c, const char *s, struct jid *j);
/* control.c: NULL if text (kick's or disable's REASON) is UTF-8 of at
 * most 1024 bytes without control characters other than tab and
 * newline, else what is wrong with it. */
const char *check_reason(const char *text);
/* Log an administrator's change, by uid and connection. */
void control_log_change(uid_t uid, uint64_t conn_id, const char *what,
    const char *user, const char *host, const char *result);

/* events.c: the counters tick and the core hooks, started with the socket;
 * the tick stops with it. */
void events_init(void);
void events_shutdown(void);
/* Send the events held while c's response was written.  c may be killed. */
void events_release(struct control_conn *c);
/* A "log" event line for the subscribers (xmpptop's events pane). */
void event_log(const char *level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * The handlers of the command table (control.c), by file.  Each replies to
 * c's current request, or sets c->busy and replies later; c may be killed.
 */

/* events.c */
void handle_subscribe(struct control_conn *c, char **args, size_t nargs);
void handle_unsubscribe(struct control_conn *c, char **args, size_t nargs);

/* cmd_users.c; users_init hooks in the refusal of a disabled account's
 * bind (called with events_init). */
void users_init(void);
void handle_adduser(struct control_conn *c, char **args, size_t nargs);
void handle_passwd(struct control_conn *c, char **args, size_t nargs);
void handle_deluser(struct control_conn *c, char **args, size_t nargs);
void handle_disable(struct control_conn *c, char **args, size_t nargs);
void handle_enable(struct control_conn *c, char **args, size_t nargs);
void handle_users(struct control_conn *c, char **args, size_t nargs);
void handle_user_show(struct control_conn *c, char **args, size_t nargs);
/* cmd_tokens.c: XEP-0484 tokens. */
void handle_user_tokens(struct control_conn *c, char **args, size_t nargs);
void handle_user_revoke_tokens(struct control_conn *c, char **args,
    size_t nargs);
/* cmd_pep.c: XEP-0163 nodes. */
void handle_pep_show(struct control_conn *c, char **args, size_t nargs);
void handle_pep_delete(struct control_conn *c, char **args, size_t nargs);
/* cmd_upload.c: XEP-0363 uploads. */
void handle_upload_list(struct control_conn *c, char **args, size_t nargs);
void handle_push_list(struct control_conn *c, char **args, size_t nargs);
void handle_upload_purge(struct control_conn *c, char **args, size_t nargs);
void handle_upload_purge_older(struct control_conn *c, char **args,
    size_t nargs);
/* cmd_rooms.c: XEP-0045 rooms, through core/rooms.h. */
void handle_rooms(struct control_conn *c, char **args, size_t nargs);
void handle_room_show(struct control_conn *c, char **args, size_t nargs);
void handle_room_create(struct control_conn *c, char **args, size_t nargs);
void handle_room_destroy(struct control_conn *c, char **args,
    size_t nargs);
void handle_room_affiliate(struct control_conn *c, char **args,
    size_t nargs);
void handle_roster_show(struct control_conn *c, char **args, size_t nargs);
void handle_roster_add(struct control_conn *c, char **args, size_t nargs);
void handle_roster_del(struct control_conn *c, char **args, size_t nargs);

/* cmd_components.c: XEP-0114 components, through stream/component.h. */
void handle_components(struct control_conn *c, char **args, size_t nargs);

/* cmd_sessions.c */
void handle_sessions(struct control_conn *c, char **args, size_t nargs);
void handle_online(struct control_conn *c, char **args, size_t nargs);
void handle_s2s(struct control_conn *c, char **args, size_t nargs);
void handle_kick(struct control_conn *c, char **args, size_t nargs);
void handle_broadcast(struct control_conn *c, char **args, size_t nargs);

/* cmd_server.c */
void handle_status(struct control_conn *c, char **args, size_t nargs);
void handle_stop(struct control_conn *c, char **args, size_t nargs);
void handle_reload(struct control_conn *c, char **args, size_t nargs);
void handle_stats(struct control_conn *c, char **args, size_t nargs);
void handle_log_level(struct control_conn *c, char **args, size_t nargs);
void handle_check(struct control_conn *c, char **args, size_t nargs);

/* cmd_history.c */
void handle_history(struct control_conn *c, char **args, size_t nargs);
/* Ask for the next chunk of a dump paused on c's output, once it has
 * drained below CONTROL_OUTPUT_HIGH. */
void history_resume(struct control_conn *c);

#endif
