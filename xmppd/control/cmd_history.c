/*
 * The control command history: a user's message archive, dumped in
 * chunks that follow the connection's output.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/control_int.h"
#include "ctl.h"
#include "jid.h"
#include "log.h"
#include "store/mam.h"
#include "xmalloc.h"

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
void
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
			while (cut > 0 &&
			    ((unsigned char)r->body[cut] & 0xc0) == 0x80)
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
	c = control_conn_find(owner);
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
	if (c->dead || control_conn_output(c) == -1) {
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

void
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
