/*
 * The control commands on XEP-0484 (FAST) tokens: user-tokens lists an
 * account's tokens by device, user-revoke-tokens deletes them (all, or
 * those of one device: its SASL2 user-agent id).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "control/control_int.h"
#include "ctl.h"
#include "jid.h"
#include "log.h"
#include "store/fast.h"
#include "store/store.h"
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
tokens_listed(uint64_t owner, enum store_status st, int disabled,
    const struct store_fast_token *t, size_t n)
{
	static const char *const cols[] = { "device_id", "software", "device",
		"mechanism", "slot", "created:time", "last_used:time",
		"expiry:time", "count:int" };
	struct control_op *op = op_find(owner);
	struct control_conn *c;

	if (op == NULL || (c = op_waiting_conn(op)) == NULL)
		return;
	if (!reply_store_err(c, st)) {
		reply_cols(c, cols, nitems(cols));
		for (size_t i = 0; i < n && !c->dead; i++) {
			struct ctl_line l;

			reply_line(c, &l, "row");
			ctl_line_add(&l, t[i].agent);
			ctl_line_add(&l, t[i].software);
			ctl_line_add(&l, t[i].device);
			ctl_line_add(&l, t[i].mechanism);
			ctl_line_add(&l, t[i].slot == FAST_SLOT_NEW ? "new" :
			    "current");
			add_time(&l, t[i].created);
			add_time(&l, t[i].last_used);
			add_time(&l, t[i].expiry);
			ctl_line_addf(&l, "%lld", (long long)t[i].counter);
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
handle_user_tokens(struct control_conn *c, char **args, size_t nargs)
{
	struct control_op *op;
	struct jid j;

	if (parse_user_jid(c, args[0], &j) == -1)
		return;
	op = op_new(c, OP_TOKENS, j.node, j.domain);
	c->busy = 1;
	store_fast_get(j.domain, j.node, NULL, tokens_listed, op->id);
	jid_free(&j);
}

static void
tokens_revoked(uint64_t owner, enum store_status st, unsigned n)
{
	struct control_op *op = op_find(owner);
	struct control_conn *c;
	char result[48];

	if (op == NULL)
		return;
	snprintf(result, sizeof(result), "%u token%s revoked", n,
	    n == 1 ? "" : "s");
	control_log_change(op->uid, op->conn_id, "user-revoke-tokens",
	    op->user, op->host, st == STORE_OK ? result :
	    store_status_str(st));
	if ((c = op_waiting_conn(op)) == NULL)
		return;
	if (!reply_store_err(c, st)) {
		struct ctl_line l;

		reply_line(c, &l, "ok");
		ctl_line_addf(&l, "%u", n);
		reply_end(c, &l);
	}
	op_free(op);
	if (!c->dead)
		request_done(c);
}

void
handle_user_revoke_tokens(struct control_conn *c, char **args, size_t nargs)
{
	const char *device = nargs > 1 ? args[1] : NULL;
	struct control_op *op;
	struct jid j;

	if (device != NULL && (*device == '\0' ||
	    strlen(device) > FAST_AGENT_MAX)) {
		reply_err(c, CTL_E_USAGE, "DEVICE is a user-agent id of 1 to "
		    "%d bytes", FAST_AGENT_MAX);
		return;
	}
	if (parse_user_jid(c, args[0], &j) == -1)
		return;
	op = op_new(c, OP_REVOKE_TOKENS, j.node, j.domain);
	c->busy = 1;
	store_fast_revoke(j.domain, j.node, device, tokens_revoked, op->id);
	jid_free(&j);
}
