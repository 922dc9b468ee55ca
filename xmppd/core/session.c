/*
 * The session API: what the core and the modules may do to a bound
 * client, forwarded to whatever transport carries the session, or kept
 * while it has none (a session waiting to be resumed, XEP-0198).
 */
#include <inttypes.h>
#include <string.h>

#include "conf.h"
#include "core/csi.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/smacks.h"
#include "core/transport.h"
#include "log.h"
#include "mono.h"
#include "xml.h"
#include "xmppd.h"

static struct buf scratch;          /* fan-out serialization */

/* Queue bytes for a detached session; past output-max it ends (what a
 * slow transport would do with a reader that never comes back). */
static void
pending_add(struct session *s, const char *data, size_t len)
{
	size_t max = xmppd_conf->limits.output_max;

	if (max != 0 && buf_avail(&s->pending) + len > max) {
		log_info("session %s: more than %zu bytes queued while "
		    "detached (limits { output-max })", s->full, max);
		session_end(s, "policy-violation", NULL);
		return;
	}
	buf_add(&s->pending, data, len);
}

/*
 * A serialized stanza goes to the client.  Under stream management
 * (XEP-0198) it is counted and kept until acknowledged; while the
 * session waits to be resumed that queue is all there is, and the
 * resumption sends it.  Past limits { sm-queue } the session ends.
 */
static void
deliver(struct session *s, const char *data, size_t len)
{
	if (s->closing)
		return;
	if (s->t != NULL)
		s->t->ops->send_raw(s->t, data, len);
	else if (s->smacks == NULL)
		pending_add(s, data, len);
	if (s->smacks != NULL && smacks_sent(s, data, len) < 0) {
		log_info("session %s: more than %zu bytes unacknowledged "
		    "(limits { sm-queue })", s->full,
		    xmppd_conf->limits.sm_queue);
		session_end(s, "policy-violation",
		    "Too many stanzas unacknowledged");
	}
}

/* The stanza in scratch (stanza parsed, for XEP-0352) goes to the
 * client, or waits while it is inactive; urgent: whatever its class. */
static void
send_scratch(struct session *s, const struct xel *stanza, int urgent)
{
	if (csi_inactive(s) && csi_hold(s, urgent ? CSI_URGENT :
	    csi_classify(stanza), xel_attr(stanza, "from"),
	    buf_head(&scratch), buf_avail(&scratch), deliver))
		return;
	deliver(s, buf_head(&scratch), buf_avail(&scratch));
}

void
session_send(struct session *s, const struct xel *stanza)
{
	if (s->closing)
		return;
	s->stanzas_out++;
	if (csi_inactive(s)) {
		enum csi_class c = csi_classify(stanza);

		if (c == CSI_URGENT)
			csi_flush(s, deliver);
		else {
			buf_reset(&scratch);
			xel_serialize(stanza, &scratch, NS_CLIENT);
			if (csi_hold(s, c, xel_attr(stanza, "from"),
			    buf_head(&scratch), buf_avail(&scratch), deliver))
				return;
			deliver(s, buf_head(&scratch), buf_avail(&scratch));
			return;
		}
		if (s->closing)
			return;
	}
	if (s->t != NULL && s->smacks == NULL) {
		s->t->ops->send(s->t, stanza);
		return;
	}
	buf_reset(&scratch);
	xel_serialize(stanza, &scratch, NS_CLIENT);
	deliver(s, buf_head(&scratch), buf_avail(&scratch));
}

void
session_set_inactive(struct session *s, int inactive)
{
	csi_set(s, inactive);
	if (!inactive)
		csi_flush(s, deliver);
}

void
session_send_nonza(struct session *s, const char *data, size_t len)
{
	if (!s->closing && s->t != NULL)
		s->t->ops->send_raw(s->t, data, len);
}

static void
send_fanout(struct session *s, const struct xel *stanza, const char *to,
    const char *rest, size_t len, int urgent)
{
	if (s->closing)
		return;
	s->stanzas_out++;
	buf_reset(&scratch);
	buf_addc(&scratch, '<');
	buf_adds(&scratch, stanza->name);
	buf_adds(&scratch, " to='");
	buf_add_xml_escaped(&scratch, to, strlen(to), 1);
	buf_addc(&scratch, '\'');
	buf_add(&scratch, rest, len);
	send_scratch(s, stanza, urgent);
}

void
session_send_fanout(struct session *s, const struct xel *stanza,
    const char *to, const char *rest, size_t len)
{
	send_fanout(s, stanza, to, rest, len, 0);
}

void
session_send_fanout_urgent(struct session *s, const struct xel *stanza,
    const char *to, const char *rest, size_t len)
{
	send_fanout(s, stanza, to, rest, len, 1);
}

void
session_reply(struct session *s, struct xel *r)
{
	if (r == NULL)
		return;
	session_send(s, r);
	arena_free(r->arena);
}

void
session_hold(struct session *s)
{
	s->held++;
	if (s->t != NULL)
		s->t->ops->hold(s->t);
}

void
session_release(struct session *s)
{
	if (s->held == 0)
		return;
	s->held--;
	if (s->t != NULL)
		s->t->ops->release(s->t);
}

void
session_end(struct session *s, const char *condition, const char *text)
{
	/* Another server's entity (sm_remote_session) is never bound:
	 * there is nothing to end, whoever holds it lets it go. */
	if (s->closing || session_is_remote(s))
		return;
	sm_set_end_reason(s, condition);
	if (s->t != NULL)
		s->t->ops->end(s->t, condition, text);   /* unbinds s */
	if (!s->closing)
		sm_unbind(s);
}

int
session_lost(struct session *s, const char *condition, const char *text)
{
	struct transport *t = s->t;

	if (s->closing || !smacks_resumable(s))
		return 0;
	session_detach(s);
	smacks_hibernate(s);
	if (t != NULL && condition != NULL)
		t->ops->end(t, condition, text);
	return 1;
}

static void
status(const struct session *s, struct transport_status *st)
{
	memset(st, 0, sizeof(*st));
	if (s->t != NULL)
		s->t->ops->status(s->t, st);
}

int
session_output_full(const struct session *s)
{
	struct transport_status st;

	if (s->t == NULL)
		return buf_avail(&s->pending) > xmppd_conf->limits.output_high;
	status(s, &st);
	return st.queued > xmppd_conf->limits.output_high;
}

int
session_gone(const struct session *s)
{
	struct transport_status st;

	if (s->closing || s->t == NULL)
		return 1;
	status(s, &st);
	return st.gone;
}

int
session_input_paused(const struct session *s)
{
	struct transport_status st;

	if (s->t == NULL)
		return 1;
	status(s, &st);
	return st.input_paused;
}

double
session_last_input(const struct session *s)
{
	struct transport_status st;

	if (s->t == NULL)
		return mono_now(xmppd_loop);
	status(s, &st);
	return st.last_input;
}

int
session_is_tls(const struct session *s)
{
	return s->t != NULL && s->t->tls;
}

const char *
session_end_reason(const struct session *s)
{
	struct transport_status st;

	if (s->end_reason != NULL)
		return s->end_reason;
	status(s, &st);
	return st.close_reason != NULL ? st.close_reason : "closed";
}

void
session_detach(struct session *s)
{
	struct transport *t = s->t;

	if (t == NULL)
		return;
	/* The transport's holds end with it; session_attach reapplies. */
	for (unsigned i = 0; i < s->held; i++)
		t->ops->release(t);
	t->session = NULL;
	s->t = NULL;
}

void
session_attach(struct session *s, struct transport *t)
{
	if (s->t != NULL)
		session_detach(s);
	s->t = t;
	t->session = s;
	for (unsigned i = 0; i < s->held; i++)
		t->ops->hold(t);
	if (buf_avail(&s->pending) > 0) {
		t->ops->send_raw(t, buf_head(&s->pending),
		    buf_avail(&s->pending));
		buf_free(&s->pending);
	}
}

const char *
session_log_kind(const struct session *s)
{
	return s->t != NULL ? s->t->ops->kind : "session";
}

uint64_t
session_log_id(const struct session *s)
{
	return s->t != NULL ? s->t->id : s->id;
}

const char *
session_log_addr(const struct session *s)
{
	return s->t != NULL ? s->t->addr : "detached";
}

void
session_log_limit(const struct session *s, const char *limit, unsigned value)
{
	/* The address without the port, as fail2ban-style filters want. */
	if (s->t != NULL)
		log_info("%s %" PRIu64 " %s: %s: limits { %s %u } reached",
		    s->t->ops->kind, s->t->id, s->t->ip, s->full, limit,
		    value);
	else
		log_info("session %s: limits { %s %u } reached", s->full,
		    limit, value);
}
