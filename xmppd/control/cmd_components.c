/*
 * The control command on external components (XEP-0114): components.
 */
#include <stddef.h>
#include <stdint.h>

#include "control/control_int.h"
#include "ctl.h"
#include "stream/component.h"
#include "xmalloc.h"

struct rows_ctx {
	struct control_conn *c;
	int err;
};

static void
component_row(const struct component_info *ci, void *arg)
{
	struct rows_ctx *x = arg;
	struct ctl_line l;

	if (x->c->dead || x->err)
		return;
	reply_line(x->c, &l, "row");
	ctl_line_add(&l, ci->domain);
	ctl_line_add(&l, ci->addr);
	ctl_line_addf(&l, "%llu", (unsigned long long)ci->id);
	ctl_line_addf(&l, "%lld", (long long)ci->since);
	ctl_line_addf(&l, "%llu", (unsigned long long)ci->stanzas_in);
	ctl_line_addf(&l, "%llu", (unsigned long long)ci->stanzas_out);
	if (ctl_line_end(&l) == -1)
		x->err = 1;
}

void
handle_components(struct control_conn *c, char **args, size_t nargs)
{
	static const char *const cols[] = { "domain", "address", "id:int",
		"since:time", "stanzas_in:int", "stanzas_out:int" };
	struct rows_ctx x = { c, 0 };

	reply_cols(c, cols, nitems(cols));
	component_foreach(component_row, &x);
	if (c->dead || control_conn_output(c) == -1)
		return;
	if (x.err)
		reply_err(c, CTL_E_INTERNAL, "a row was too long");
	else
		reply_ok(c);
}
