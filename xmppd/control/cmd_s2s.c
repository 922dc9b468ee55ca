/*
 * xmppctl s2s: the server-to-server streams, one row each.
 */
#include <stdio.h>

#include <ev.h>

#include "control/control_int.h"
#include "mono.h"
#include "stream/s2s.h"
#include "xmppd.h"

struct s2s_rows {
	struct control_conn *c;
	double now_wall, now_mono;
	int err;
};

static void
s2s_row(const struct s2s_info *i, void *arg)
{
	struct s2s_rows *x = arg;
	struct ctl_line l;

	reply_line(x->c, &l, "row");
	ctl_line_add(&l, i->local);
	ctl_line_add(&l, i->remote);
	ctl_line_add(&l, i->outgoing ? "out" : "in");
	ctl_line_add(&l, i->state);
	ctl_line_add(&l, i->auth);
	ctl_line_add(&l, i->tls);
	ctl_line_add(&l, i->cert_valid ? "valid" : "not valid");
	ctl_line_addf(&l, "%zu", i->queued);
	/* since: wall-clock time of a monotonic instant */
	ctl_line_addf(&l, "%.3f", x->now_wall - (x->now_mono - i->since));
	ctl_line_addf(&l, "%llu", (unsigned long long)i->stanzas_in);
	ctl_line_addf(&l, "%llu", (unsigned long long)i->stanzas_out);
	if (ctl_line_end(&l) == -1)
		x->err = 1;
}

void
handle_s2s(struct control_conn *c, char **args, size_t nargs)
{
	static const char *const cols[] = { "local", "remote", "direction",
		"state", "auth", "tls", "certificate", "queued:int",
		"since:time", "stanzas_in:int", "stanzas_out:int" };
	struct s2s_rows x = { c, ev_time(), mono_now(NULL), 0 };

	reply_cols(c, cols, sizeof(cols) / sizeof(cols[0]));
	s2s_foreach(s2s_row, &x);
	if (c->dead || control_conn_output(c) == -1)
		return;
	if (x.err)
		reply_err(c, CTL_E_INTERNAL, "a row was too long");
	else
		reply_ok(c);
}
