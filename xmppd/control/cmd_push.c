/*
 * The control command on XEP-0357 push registrations: push-list lists an
 * account's app servers and nodes, with the names (not the values: a
 * secret is among them) of the publish-options fields each gave.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "arena.h"
#include "control/control_int.h"
#include "ctl.h"
#include "jid.h"
#include "store/push.h"
#include "store/store.h"
#include "xmalloc.h"
#include "xml.h"

#define NS_XDATA "jabber:x:data"

/* The field names of a stored publish-options form, as a list (ctl.h),
 * FORM_TYPE left out. */
static void
option_names(const char *form, struct buf *out)
{
	struct xml_limits lim = {strlen(form) + 1, 64, 64, SIZE_MAX};
	struct xel *x;

	if (*form == '\0' ||
	    (x = xml_parse_element(form, strlen(form), NS_XDATA, &lim)) == NULL)
		return;
	for (struct xel *f = xel_child(x, "field", NS_XDATA); f;
	    f = xel_next(f, "field", NS_XDATA)) {
		const char *var = xel_attr(f, "var");

		if (var == NULL || strcmp(var, "FORM_TYPE") == 0)
			continue;
		if (out->len > 0)
			buf_addc(out, CTL_LIST_SEP);
		buf_adds(out, var);
	}
	arena_free(x->arena);
}

static void
push_listed(uint64_t owner, enum store_status st, const struct store_push *p,
    size_t n)
{
	static const char *const cols[] = {"jid", "node", "options:list",
	    "created:time"};
	struct control_op *op = op_find(owner);
	struct control_conn *c;

	if (op == NULL || (c = op_waiting_conn(op)) == NULL)
		return;
	if (!reply_store_err(c, st)) {
		reply_cols(c, cols, nitems(cols));
		for (size_t i = 0; i < n && !c->dead; i++) {
			struct ctl_line l;
			struct buf names;

			buf_init(&names);
			option_names(p[i].form, &names);
			buf_addc(&names, '\0');
			reply_line(c, &l, "row");
			ctl_line_add(&l, p[i].jid);
			ctl_line_add(&l, p[i].node);
			ctl_line_add(&l, names.data);
			ctl_line_addf(&l, "%lld", (long long)p[i].created);
			ctl_line_end(&l);
			buf_free(&names);
		}
		if (!c->dead && control_conn_output(c) == 0)
			reply_ok(c);
	}
	op_free(op);
	if (!c->dead)
		request_done(c);
}

void
handle_push_list(struct control_conn *c, char **args, size_t nargs)
{
	struct control_op *op;
	struct jid j;

	(void)nargs;
	if (parse_user_jid(c, args[0], &j) == -1)
		return;
	op = op_new(c, OP_PUSH_LIST, j.node, j.domain);
	c->busy = 1;
	store_push_list(j.domain, j.node, push_listed, op->id);
	jid_free(&j);
}
