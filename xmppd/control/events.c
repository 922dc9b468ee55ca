/*
 * The control socket's event feed: subscribe and unsubscribe, the event
 * lines (session-up, session-down, presence, log, counters) sent to every
 * subscriber, and the core hooks and once-a-second tick that raise them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "buf.h"
#include "control/control_int.h"
#include "control/stats.h"
#include "core/hooks.h"
#include "core/session.h"
#include "core/sm.h"
#include "ctl.h"
#include "log.h"
#include "xmppd.h"

/* A subscriber with this much output not yet read is too slow: dropped. */
#define CONTROL_EVENTS_MAX (4 * 1024 * 1024)

static ev_timer tick_w;                 /* counters, once a second */

void
handle_subscribe(struct control_conn *c, char **args, size_t nargs)
{
	if (!c->subscribed) {
		c->subscribed = 1;
		control_state.nsubscribers++;
	}
	reply_ok(c);
}

void
handle_unsubscribe(struct control_conn *c, char **args, size_t nargs)
{
	if (c->subscribed) {
		c->subscribed = 0;
		control_state.nsubscribers--;
	}
	buf_free(&c->held);
	reply_ok(c);
}

/*
 * Events held while a response was being written go out after it, so
 * that no event lands between a response's lines.  c may be killed.
 */
void
events_release(struct control_conn *c)
{
	if (c->dead || buf_avail(&c->held) == 0)
		return;
	buf_add(&c->out, buf_head(&c->held), buf_avail(&c->held));
	buf_free(&c->held);
	control_conn_output(c);
}

static size_t
control_subscribers(void)
{
	return control_state.running ? control_state.nsubscribers : 0;
}

/* Send one event line (in line, without "\n" counted in) to every
 * subscriber; a subscriber that does not read is disconnected. */
static void
events_send(const struct buf *line)
{
	struct control_conn *c, *next;
	size_t n = buf_avail(line);

	for (c = control_state.conns; c != NULL; c = next) {
		next = c->next;
		if (!c->subscribed || c->dead)
			continue;
		if (buf_avail(&c->out) + buf_avail(&c->held) + n >
		    CONTROL_EVENTS_MAX) {
			log_warnx("control %llu: subscriber not reading its "
			    "events (%zu bytes queued); disconnecting",
			    (unsigned long long)c->id, buf_avail(&c->out) +
			    buf_avail(&c->held));
			control_conn_kill(c, "events not read");
			continue;
		}
		if (c->busy || c->in_handler) {
			buf_add(&c->held, buf_head(line), n);
			continue;
		}
		buf_add(&c->out, buf_head(line), n);
		control_conn_output(c);
	}
}

static void
event_start(struct ctl_line *l, struct buf *b, const char *name)
{
	buf_init(b);
	ctl_line_start(l, b);
	ctl_line_add(l, "*");
	ctl_line_add(l, "event");
	ctl_line_add(l, name);
}

static void
event_end(struct ctl_line *l, struct buf *b)
{
	if (ctl_line_end(l) == 0)
		events_send(b);
	buf_free(b);
}

static void
event_session_up(const struct sm_session_info *i)
{
	struct ctl_line l;
	struct buf b;

	if (control_subscribers() == 0)
		return;
	event_start(&l, &b, "session-up");
	ctl_line_addf(&l, "%llu", (unsigned long long)i->id);
	ctl_line_add(&l, i->jid);
	ctl_line_add(&l, i->ip);
	ctl_line_add(&l, i->tls_version);
	ctl_line_add(&l, i->tls_cipher);
	ctl_line_addf(&l, "%.3f", i->since);
	event_end(&l, &b);
}

static void
event_session_down(uint64_t sid, const char *jid, const char *reason)
{
	struct ctl_line l;
	struct buf b;

	if (control_subscribers() == 0)
		return;
	event_start(&l, &b, "session-down");
	ctl_line_addf(&l, "%llu", (unsigned long long)sid);
	ctl_line_add(&l, jid);
	ctl_line_add(&l, reason);
	event_end(&l, &b);
}

static void
event_presence(uint64_t sid, const char *jid, const char *show,
    int priority, const char *status)
{
	struct ctl_line l;
	struct buf b;

	if (control_subscribers() == 0)
		return;
	event_start(&l, &b, "presence");
	ctl_line_addf(&l, "%llu", (unsigned long long)sid);
	ctl_line_add(&l, jid);
	ctl_line_add(&l, show);
	ctl_line_addf(&l, "%d", priority);
	ctl_line_add(&l, status);
	event_end(&l, &b);
}

void
event_log(const char *level, const char *fmt, ...)
{
	struct ctl_line l;
	struct buf b, text = BUF_INIT;
	va_list ap;

	if (control_subscribers() == 0)
		return;
	va_start(ap, fmt);
	buf_vprintf(&text, fmt, ap);
	va_end(ap);
	event_start(&l, &b, "log");
	ctl_line_add(&l, level);
	ctl_line_addn(&l, text.data ? text.data : "", buf_avail(&text));
	buf_free(&text);
	event_end(&l, &b);
}

/*
 * What the control plane learns through the core's hooks (registered by
 * events_init, owner HOOK_OWNER_CORE, so after every module's).
 */

static void
on_session_bound(struct session *s)
{
	struct sm_session_info info;

	stats_count_login();
	if (control_subscribers() == 0)
		return;
	sm_session_info(s, &info);
	event_session_up(&info);
	event_log("info", "login %s from %s", s->full, info.ip);
}

static void
on_session_end(struct session *s)
{
	const char *why;

	if (control_subscribers() == 0)
		return;
	why = session_end_reason(s);
	event_session_down(s->id, s->full, why);
	event_log("info", "logout %s (%s)", s->full, why);
}

static void
on_presence_changed(struct session *s, const struct xel *pres,
    int available)
{
	if (control_subscribers() == 0)
		return;
	event_presence(s->id, s->full, sm_presence_show(pres, available),
	    s->priority, sm_presence_status(pres));
}

/* The same words as the daemon's log line (stream/c2s.c). */
static void
on_auth_failure(const char *jid, const char *ip, const char *mechanism,
    const char *condition)
{
	stats_count_auth_failure();
	event_log("warning", "authentication failed for %s from %s (%s, %s)",
	    jid, ip, mechanism, condition);
}

static void
event_counters(void)
{
	struct stats_snapshot st;
	struct ctl_line l;
	struct buf b;

	stats_get(&st);
	event_start(&l, &b, "counters");
	ctl_line_addf(&l, "%.0f", st.uptime);
	ctl_line_addf(&l, "%zu", st.sessions);
	ctl_line_addf(&l, "%zu", st.users);
	ctl_line_addf(&l, "%u", st.logins_per_min);
	ctl_line_addf(&l, "%.1f", st.stanzas_in_per_s);
	ctl_line_addf(&l, "%.1f", st.stanzas_out_per_s);
	ctl_line_addf(&l, "%.0f", st.bytes_in_per_s);
	ctl_line_addf(&l, "%.0f", st.bytes_out_per_s);
	ctl_line_addf(&l, "%lld", st.offline_queue);
	ctl_line_addf(&l, "%ld", st.rss_kb);
	ctl_line_addf(&l, "%zu", st.store_queue);
	ctl_line_addf(&l, "%.3f", st.commit_ms);
	event_end(&l, &b);
}

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	stats_tick();
	if (control_subscribers() > 0)
		event_counters();
}

/* Called by control_init once the socket is open: the hooks stay. */
void
events_init(void)
{
	ev_timer_init(&tick_w, tick_cb, 1.0, 1.0);
	ev_timer_start(xmppd_loop, &tick_w);
	hook_add_session(HOOK_SESSION_BOUND, on_session_bound);
	hook_add_session(HOOK_SESSION_END, on_session_end);
	hook_add_presence_changed(on_presence_changed);
	hook_add_auth_failure(on_auth_failure);
	hook_add_offline_changed(stats_offline_changed);
}

void
events_shutdown(void)
{
	ev_timer_stop(xmppd_loop, &tick_w);
}
