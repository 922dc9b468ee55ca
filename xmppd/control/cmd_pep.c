/*
 * The control commands on an account's personal eventing (XEP-0163)
 * nodes: pep-show lists the nodes with their configuration and the ids
 * and sizes of their items (never the payloads), pep-delete deletes one
 * node behind the owner's back and tells the PEP module
 * (hook_run_admin_change), which drops its cache and notifies the
 * owner's clients.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/control_int.h"
#include "core/hooks.h"
#include "ctl.h"
#include "jid.h"
#include "store/pep.h"
#include "store/store.h"
#include "utf8.h"
#include "xmalloc.h"

/* NODE: 1 to PEP_NAME_MAX bytes of UTF-8 (as mod_pep takes it from a
 * client); replies usage and returns -1 if not. */
static int
check_node(struct control_conn *c, const char *node)
{
	size_t len = strlen(node);

	if (len == 0 || len > PEP_NAME_MAX ||
	    !utf8_valid((const unsigned char *)node, len)) {
		reply_err(c, CTL_E_USAGE, "NODE must be UTF-8 of 1 to %d "
		    "bytes", PEP_NAME_MAX);
		return -1;
	}
	return 0;
}

/*
 * pep-show: a "node" row per node (by name), each followed by an "item"
 * row per item in publish order.  Node rows leave the item columns
 * empty, item rows everything but kind and node before them.
 */
static const char *const show_cols[] = { "kind", "node", "access",
	"groups:list", "max_items", "persist:bool", "send_last",
	"notify_retract:bool", "notify_delete:bool", "title",
	"item_count:int", "bytes:int", "created:time", "id", "size:int",
	"publisher", "published:time" };

#define NODE_FIELDS 13          /* kind through created */
#define ITEM_FIELDS 4           /* id through published */

static const char *
yes_no(int v)
{
	return v ? "yes" : "no";
}

static int
node_row(struct control_conn *c, const struct pep_node_info *n)
{
	const struct pep_config *cfg = &n->cfg;
	struct ctl_line l;
	struct buf groups = BUF_INIT;

	for (size_t i = 0; i < cfg->ngroups; i++) {
		if (i > 0)
			buf_addc(&groups, CTL_LIST_SEP);
		buf_printf(&groups, "%s", cfg->groups[i]);
	}
	reply_line(c, &l, "row");
	ctl_line_add(&l, "node");
	ctl_line_add(&l, n->node);
	ctl_line_add(&l, pep_access_name(cfg->access));
	ctl_line_addn(&l, groups.data ? groups.data : "", buf_avail(&groups));
	if (cfg->max_items == 0)
		ctl_line_add(&l, "max");
	else
		ctl_line_addf(&l, "%u", cfg->max_items);
	ctl_line_add(&l, yes_no(cfg->persist));
	ctl_line_add(&l, pep_send_last_name(cfg->send_last));
	ctl_line_add(&l, yes_no(cfg->notify_retract));
	ctl_line_add(&l, yes_no(cfg->notify_delete));
	ctl_line_add(&l, cfg->title ? cfg->title : "");
	ctl_line_addf(&l, "%u", n->items);
	ctl_line_addf(&l, "%zu", n->bytes);
	if (n->created > 0)
		ctl_line_addf(&l, "%lld", (long long)n->created);
	else
		ctl_line_add(&l, "");
	for (int i = 0; i < ITEM_FIELDS; i++)
		ctl_line_add(&l, "");
	buf_free(&groups);
	return reply_end(c, &l);
}

static int
item_row(struct control_conn *c, const struct pep_item *it)
{
	struct ctl_line l;

	reply_line(c, &l, "row");
	ctl_line_add(&l, "item");
	ctl_line_add(&l, it->node);
	for (int i = 2; i < NODE_FIELDS; i++)
		ctl_line_add(&l, "");
	ctl_line_add(&l, it->id);
	ctl_line_addf(&l, "%zu", it->len);
	ctl_line_add(&l, it->publisher ? it->publisher : "");
	if (it->stamp_ms > 0)
		ctl_line_addf(&l, "%lld.%03lld",
		    (long long)(it->stamp_ms / 1000),
		    (long long)(it->stamp_ms % 1000));
	else
		ctl_line_add(&l, "");
	return reply_end(c, &l);
}

/* The rows of r; -1 if a row was too long (or c was killed). */
static int
show_rows(struct control_conn *c, const struct pep_read_result *r)
{
	size_t k = 0;

	for (size_t i = 0; i < r->nnodes && !c->dead; i++) {
		const struct pep_node_info *n = &r->nodes[i];

		if (node_row(c, n) == -1)
			return -1;
		/* The items come grouped by node, in the nodes' order. */
		for (; k < r->nitems && !c->dead &&
		    strcmp(r->items[k].node, n->node) == 0; k++)
			if (item_row(c, &r->items[k]) == -1)
				return -1;
	}
	return c->dead ? -1 : 0;
}

static void
pep_shown(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_read_result *r)
{
	struct control_op *op = op_find(owner);
	struct control_conn *c;

	if (op == NULL || (c = op_waiting_conn(op)) == NULL)
		return;
	if (!reply_store_err(c, st)) {
		if (op->with != NULL && r->nnodes == 0)
			reply_err(c, CTL_E_NOT_FOUND, "no such node");
		else {
			reply_cols(c, show_cols, nitems(show_cols));
			if (show_rows(c, r) == 0)
				reply_ok(c);
			else if (!c->dead)
				reply_err(c, CTL_E_INTERNAL, "row too long");
		}
	}
	op_free(op);
	if (!c->dead)
		request_done(c);
}

/* Read the node named op->with of op's account (all with NULL); cb
 * answers. */
static void
read_nodes(struct control_conn *c, struct control_op *op, pep_read_cb cb)
{
	struct pep_read q;

	memset(&q, 0, sizeof(q));
	q.user = op->user;
	q.host = op->host;
	q.kind = PEP_READ_ADMIN;
	q.node = op->with;
	c->busy = 1;
	pep_read(&q, cb, op->id, 0);
}

void
handle_pep_show(struct control_conn *c, char **args, size_t nargs)
{
	const char *node = nargs > 1 ? args[1] : NULL;
	struct control_op *op;
	struct jid j;

	if (node != NULL && check_node(c, node) == -1)
		return;
	if (parse_user_jid(c, args[0], &j) == -1)
		return;
	op = op_new(c, OP_PEP_SHOW, j.node, j.domain);
	op->with = node != NULL ? xstrdup(node) : NULL;
	jid_free(&j);
	read_nodes(c, op, pep_shown);
}

/*
 * pep-delete: the node is looked up first, so that a missing account and
 * a missing node get their own answers (the store is FIFO: a client's
 * delete between the two makes the second "no such node" too).
 */
static void
pep_deleted(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_write_result *r)
{
	struct control_op *op = op_find(owner);
	struct control_conn *c;
	char *what;

	if (op == NULL)
		return;
	what = xasprintf("node \"%s\": %s", op->with, st == STORE_NOT_FOUND ?
	    "no such node" : store_status_str(st));
	control_log_change(op->uid, op->conn_id, "pep-delete", op->user,
	    op->host, what);
	free(what);
	if (st == STORE_OK)
		hook_run_admin_change("pep", op->user, op->host, op->with);
	if ((c = op_waiting_conn(op)) == NULL)
		return;
	if (st == STORE_OK)
		reply_ok(c);
	else if (st == STORE_NOT_FOUND)
		reply_err(c, CTL_E_NOT_FOUND, "no such node");
	else
		reply_store_err(c, st);
	op_free(op);
	if (!c->dead)
		request_done(c);
}

static void
pep_delete_checked(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_read_result *r)
{
	struct control_op *op = op_find(owner);
	struct control_conn *c;

	if (op == NULL)
		return;
	if ((c = op_waiting_conn(op)) == NULL)
		return;         /* gone: nothing is deleted */
	if (st == STORE_OK && r->nnodes > 0) {
		pep_node_write(op->user, op->host, op->with, PEP_NODE_DELETE,
		    NULL, 0, 0, pep_deleted, op->id, 0);
		return;
	}
	control_log_change(op->uid, op->conn_id, "pep-delete", op->user,
	    op->host, st == STORE_OK ? "no such node" : store_status_str(st));
	if (!reply_store_err(c, st))
		reply_err(c, CTL_E_NOT_FOUND, "no such node");
	op_free(op);
	if (!c->dead)
		request_done(c);
}

void
handle_pep_delete(struct control_conn *c, char **args, size_t nargs)
{
	struct control_op *op;
	struct jid j;

	if (check_node(c, args[1]) == -1 ||
	    parse_user_jid(c, args[0], &j) == -1)
		return;
	op = op_new(c, OP_PEP_DELETE, j.node, j.domain);
	op->with = xstrdup(args[1]);
	jid_free(&j);
	read_nodes(c, op, pep_delete_checked);
}
