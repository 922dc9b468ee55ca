/*
 * The control commands on live sessions: sessions, online, kick and
 * broadcast.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "control/control_int.h"
#include "control/stats.h"
#include "core/session.h"
#include "core/sm.h"
#include "ctl.h"
#include "jid.h"
#include "log.h"
#include "strmap.h"
#include "utf8.h"
#include "xml.h"
#include "xmalloc.h"

struct rows_ctx {
	struct control_conn *c;
	double now;
	int err;
};

static void
session_row(const struct sm_session_info *i, void *arg)
{
	struct rows_ctx *x = arg;
	struct ctl_line l;
	double idle = x->now - i->last_active;

	if (x->c->dead || x->err)
		return;
	reply_line(x->c, &l, "row");
	ctl_line_addf(&l, "%llu", (unsigned long long)i->id);
	ctl_line_add(&l, i->jid);
	ctl_line_add(&l, i->ip);
	ctl_line_add(&l, i->tls_version);
	ctl_line_add(&l, i->tls_cipher);
	ctl_line_add(&l, i->client);
	ctl_line_add(&l, i->show);
	ctl_line_add(&l, i->status);
	ctl_line_addf(&l, "%d", i->priority);
	ctl_line_addf(&l, "%.3f", i->since);
	ctl_line_addf(&l, "%.0f", idle > 0 ? idle : 0);
	ctl_line_addf(&l, "%llu", (unsigned long long)i->stanzas_in);
	ctl_line_addf(&l, "%llu", (unsigned long long)i->stanzas_out);
	ctl_line_add(&l, i->sm);
	ctl_line_addf(&l, "%zu", i->sm_unacked);
	ctl_line_add(&l, i->csi);
	ctl_line_add(&l, i->auth);
	ctl_line_add(&l, i->transport);
	if (ctl_line_end(&l) == -1)
		x->err = 1;
}

void
handle_sessions(struct control_conn *c, char **args, size_t nargs)
{
	static const char *const cols[] = { "sid:int", "jid", "ip", "tls",
		"cipher", "client", "show", "status", "priority:int",
		"since:time", "idle:int", "stanzas_in:int", "stanzas_out:int", "sm",
		"sm_unacked:int", "csi", "auth", "transport" };
	struct rows_ctx x = { c, ev_time(), 0 };

	reply_cols(c, cols, nitems(cols));
	sm_foreach(session_row, &x);
	if (c->dead || control_conn_output(c) == -1)
		return;
	if (x.err)
		reply_err(c, CTL_E_INTERNAL, "a row was too long");
	else
		reply_ok(c);
}

/* online: one row per user with a bound session, ordered as users
 * lists accounts (by host, then user). */
struct online_ctx {
	struct strmap *seen;
	const char **jids;
	size_t n;
};

static void
online_row(const struct sm_session_info *i, void *arg)
{
	struct online_ctx *x = arg;
	const char *slash = strchr(i->jid, '/');
	size_t n = slash ? (size_t)(slash - i->jid) : strlen(i->jid);
	char *bare = xstrndup(i->jid, n);
	uintptr_t count = (uintptr_t)strmap_get(x->seen, bare);

	strmap_put(x->seen, bare, (void *)(count + 1));
	free(bare);
}

static void
online_collect(const char *key, void *value, void *arg)
{
	struct online_ctx *x = arg;

	x->jids[x->n++] = key;
}

/* Bare JIDs by host, then user: the order of "users" (SQLite's binary
 * collation is strcmp's). */
static int
online_cmp(const void *a, const void *b)
{
	const char *ja = *(const char *const *)a, *jb = *(const char *const *)b;
	const char *ha = strchr(ja, '@'), *hb = strchr(jb, '@');
	int r = strcmp(ha + 1, hb + 1);
	size_t la = (size_t)(ha - ja), lb = (size_t)(hb - jb);

	if (r != 0)
		return r;
	r = memcmp(ja, jb, la < lb ? la : lb);
	return r != 0 ? r : (la > lb) - (la < lb);
}

void
handle_online(struct control_conn *c, char **args, size_t nargs)
{
	static const char *const cols[] = { "jid", "sessions:int" };
	struct online_ctx x = { strmap_new(), NULL, 0 };

	reply_cols(c, cols, nitems(cols));
	sm_foreach(online_row, &x);
	x.jids = xcalloc(strmap_count(x.seen) + 1, sizeof(*x.jids));
	strmap_foreach(x.seen, online_collect, &x);
	qsort(x.jids, x.n, sizeof(*x.jids), online_cmp);
	for (size_t i = 0; i < x.n && !c->dead; i++) {
		struct ctl_line l;

		reply_line(c, &l, "row");
		ctl_line_add(&l, x.jids[i]);
		ctl_line_addf(&l, "%lu", (unsigned long)(uintptr_t)strmap_get(
		    x.seen, x.jids[i]));
		ctl_line_end(&l);
	}
	free(x.jids);
	strmap_free(x.seen);
	if (c->dead || control_conn_output(c) == -1)
		return;
	reply_ok(c);
}

/*
 * kick JID[/RESOURCE] [REASON [CONDITION]]: close the sessions with the
 * stream error CONDITION (policy-violation, or reset) and REASON as its
 * text.  "ok N" with the number closed.
 */
void
handle_kick(struct control_conn *c, char **args, size_t nargs)
{
	const char *reason = nargs > 1 && args[1][0] != '\0' ? args[1] : NULL;
	const char *cond = nargs > 2 ? args[2] : "policy-violation";
	const char *bad = reason != NULL ? check_reason(reason) : NULL;
	struct ctl_line l;
	struct jid j;
	int n;

	if (strcmp(cond, "policy-violation") != 0 &&
	    strcmp(cond, "reset") != 0) {
		reply_err(c, CTL_E_USAGE, "CONDITION is policy-violation or "
		    "reset");
		return;
	}
	if (bad != NULL) {
		reply_err(c, CTL_E_USAGE, "%s", bad);
		return;
	}
	if (jid_parse(&j, args[0]) == -1 || j.node == NULL) {
		if (j.domain != NULL || j.node != NULL)
			jid_free(&j);
		reply_err(c, CTL_E_BAD_JID, "expected user@host or "
		    "user@host/resource");
		return;
	}
	n = sm_kick(j.node, j.domain, j.resource, cond, reason);
	for (int i = 0; i < n; i++)
		stats_count_kick();
	log_info("control %llu: uid %u: kick %s: %d session%s closed%s%s",
	    (unsigned long long)c->id, (unsigned)c->uid, args[0], n,
	    n == 1 ? "" : "s", reason ? ": " : "", reason ? reason : "");
	if (n > 0)
		event_log("info", "kicked %s (%d session%s)%s%s",
		    args[0], n, n == 1 ? "" : "s", reason ? ": " : "",
		    reason ? reason : "");
	jid_free(&j);
	if (n == 0) {
		reply_err(c, CTL_E_NOT_FOUND, "no such session");
		return;
	}
	reply_line(c, &l, "ok");
	ctl_line_addf(&l, "%d", n);
	reply_end(c, &l);
}

/* broadcast TEXT: a headline from each session's domain. */
struct broadcast_ctx {
	const char *text;
	unsigned n;
};

static void
broadcast_one(struct session *s, void *arg)
{
	struct broadcast_ctx *x = arg;
	struct arena *a = arena_new(512);
	struct xel *m = xel_new(a, "message", NS_CLIENT);

	xel_set_attr(m, "from", s->jid.domain);
	xel_set_attr(m, "to", s->full);
	xel_set_attr(m, "type", "headline");
	xel_text_set(xel_add(m, "body", NS_CLIENT), x->text);
	session_send(s, m);
	arena_free(a);
	x->n++;
}

void
handle_broadcast(struct control_conn *c, char **args, size_t nargs)
{
	struct broadcast_ctx x = { args[0], 0 };
	struct ctl_line l;
	size_t len = strlen(args[0]);

	if (len == 0 || !utf8_valid((const unsigned char *)args[0], len)) {
		reply_err(c, CTL_E_USAGE, "TEXT must be non-empty UTF-8");
		return;
	}
	for (const char *p = args[0]; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t' && *p != '\n' &&
		    *p != '\r') {
			reply_err(c, CTL_E_USAGE, "TEXT holds a control "
			    "character not allowed in XML");
			return;
		}
	sm_foreach_session(broadcast_one, &x);
	log_info("control %llu: uid %u: broadcast to %u sessions",
	    (unsigned long long)c->id, (unsigned)c->uid, x.n);
	reply_line(c, &l, "ok");
	ctl_line_addf(&l, "%u", x.n);
	reply_end(c, &l);
}
