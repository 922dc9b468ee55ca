/*
 * The control commands on XEP-0363 uploads: upload-list lists them (of
 * an account, or all), upload-purge deletes an account's files and
 * upload-purge-older those whose slot is older than a number of
 * seconds, in passes of UPLOAD_LIST_MAX rows (the store deletes the
 * rows, a worker then the files).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/control_int.h"
#include "ctl.h"
#include "jid.h"
#include "mod/upload.h"
#include "store/store.h"
#include "store/upload.h"
#include "xmalloc.h"

static void
add_time(struct ctl_line *l, int64_t t)
{
	if (t > 0)
		ctl_line_addf(l, "%lld", (long long)t);
	else
		ctl_line_add(l, "");
}

static void
uploads_listed(uint64_t owner, enum store_status st,
    const struct store_upload *u, size_t n)
{
	static const char *const cols[] = {"token", "jid", "filename",
	    "content_type", "size:int", "created:time", "completed:time"};
	struct control_op *op = op_find(owner);
	struct control_conn *c;

	if (op == NULL || (c = op_waiting_conn(op)) == NULL)
		return;
	if (!reply_store_err(c, st)) {
		reply_cols(c, cols, nitems(cols));
		for (size_t i = 0; i < n && !c->dead; i++) {
			struct ctl_line l;

			reply_line(c, &l, "row");
			ctl_line_add(&l, u[i].token);
			ctl_line_addf(&l, "%s@%s", u[i].user, u[i].host);
			ctl_line_add(&l, u[i].filename);
			ctl_line_add(&l, u[i].content_type);
			ctl_line_addf(&l, "%lld", (long long)u[i].size);
			add_time(&l, u[i].created);
			add_time(&l, u[i].completed);
			ctl_line_end(&l);
		}
		if (!c->dead && control_conn_output(c) == 0)
			reply_ok(c);
	}
	op_free(op);
	if (!c->dead)
		request_done(c);
}

void
handle_upload_list(struct control_conn *c, char **args, size_t nargs)
{
	struct control_op *op;
	struct jid j;

	if (nargs == 0) {
		op = op_new(c, OP_UPLOAD_LIST, NULL, NULL);
		c->busy = 1;
		store_upload_list(NULL, NULL, uploads_listed, op->id);
		return;
	}
	if (parse_user_jid(c, args[0], &j) == -1)
		return;
	op = op_new(c, OP_UPLOAD_LIST, j.node, j.domain);
	c->busy = 1;
	store_upload_list(j.domain, j.node, uploads_listed, op->id);
	jid_free(&j);
}

static void
purged(uint64_t owner, enum store_status st, const struct store_upload *u,
    size_t n)
{
	struct control_op *op = op_find(owner);
	struct control_conn *c;
	const char **tokens;
	char result[48];

	if (op == NULL)
		return;
	if (st == STORE_OK) {
		tokens = xcalloc(n ? n : 1, sizeof(*tokens));
		for (size_t i = 0; i < n; i++)
			tokens[i] = u[i].token;
		upload_remove_files(tokens, n);
		free(tokens);
		op->rows += n;
		if (n == UPLOAD_LIST_MAX) { /* more: another pass */
			store_upload_delete(op->host, op->user, op->since,
			    op->since, purged, op->id);
			return;
		}
	}
	snprintf(result, sizeof(result), "%zu file%s purged", op->rows,
	    op->rows == 1 ? "" : "s");
	control_log_change(op->uid, op->conn_id, "upload-purge", op->user,
	    op->host, st == STORE_OK ? result : store_status_str(st));
	if ((c = op_waiting_conn(op)) == NULL)
		return;
	if (!reply_store_err(c, st)) {
		struct ctl_line l;

		reply_line(c, &l, "ok");
		ctl_line_addf(&l, "%zu", op->rows);
		reply_end(c, &l);
	}
	op_free(op);
	if (!c->dead)
		request_done(c);
}

void
handle_upload_purge(struct control_conn *c, char **args, size_t nargs)
{
	struct control_op *op;
	struct jid j;

	if (parse_user_jid(c, args[0], &j) == -1)
		return;
	op = op_new(c, OP_UPLOAD_PURGE, j.node, j.domain);
	c->busy = 1;
	store_upload_delete(j.domain, j.node, 0, 0, purged, op->id);
	jid_free(&j);
}

void
handle_upload_purge_older(struct control_conn *c, char **args, size_t nargs)
{
	struct control_op *op;
	uint64_t secs = 0;
	const char *p = args[0];

	if (*p == '\0' || strlen(p) > 12 ||
	    strspn(p, "0123456789") != strlen(p)) {
		reply_err(c, CTL_E_USAGE, "SECONDS is a number of seconds");
		return;
	}
	for (; *p; p++)
		secs = secs * 10 + (uint64_t)(*p - '0');
	op = op_new(c, OP_UPLOAD_PURGE, NULL, NULL);
	op->since = (int64_t)time(NULL) - (int64_t)secs;
	c->busy = 1;
	store_upload_delete(NULL, NULL, op->since, op->since, purged, op->id);
}
