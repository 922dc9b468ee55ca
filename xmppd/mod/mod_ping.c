/*
 * XMPP Ping (XEP-0199): answers pings sent to the server and, on the
 * account's behalf, to a bare JID; and keeps client streams honest by
 * pinging sessions whose connection has been silent for "ping-interval"
 * seconds, closing the stream with <connection-timeout/> (RFC 6120
 * §4.9.3.4) when nothing at all arrives within "ping-timeout" seconds.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "conf.h"
#include "core/disco.h"
#include "core/hooks.h"
#include "core/iq.h"
#include "jid.h"
#include "log.h"
#include "mono.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/stanza.h"
#include "strmap.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_PING "urn:xmpp:ping"
#define PING_ID_PREFIX "ping-"

void mod_ping_init(void);
void mod_ping_deinit(void);

/*
 * Keepalive state of one bound session.  The table holds every bound
 * session (from HOOK_SESSION_BOUND to HOOK_SESSION_END, so the pointer is
 * valid while it is here); a timer scans it every quarter of the shorter
 * of interval and timeout.  That scan is O(sessions) per tick, which is
 * fine for now; a timer wheel ordered by last read would make it
 * O(sessions due).
 */
struct keepalive {
	struct session *s;
	ev_tstamp sent;          /* when the pending ping left (mono_now()
	                            time, as session_last_input); 0: none */
	uint64_t serial;         /* its id is "ping-SERIAL" */
	size_t index;            /* in table[] */
};

static struct keepalive **table;
static size_t ntable, table_cap;
static struct strmap *by_session;   /* decimal session id -> keepalive */
static ev_timer tick_w;
static uint64_t next_serial = 1;

static void
session_key(uint64_t id, char *key, size_t len)
{
	snprintf(key, len, "%" PRIu64, id);
}

static struct keepalive *
find(const struct session *s)
{
	char key[24];

	session_key(s->id, key, sizeof(key));
	return strmap_get(by_session, key);
}

static void
session_bound(struct session *s)
{
	struct keepalive *k = xcalloc(1, sizeof(*k));
	char key[24];

	k->s = s;
	if (ntable == table_cap) {
		table_cap = table_cap ? table_cap * 2 : 64;
		table = xreallocarray(table, table_cap, sizeof(*table));
	}
	k->index = ntable;
	table[ntable++] = k;
	session_key(s->id, key, sizeof(key));
	strmap_put(by_session, key, k);
}

static void
on_session_end(struct session *s)
{
	struct keepalive *k;
	char key[24];

	session_key(s->id, key, sizeof(key));
	if ((k = strmap_del(by_session, key)) == NULL)
		return;
	table[k->index] = table[--ntable];
	table[k->index]->index = k->index;
	free(k);
}

/* Server-to-client ping (XEP-0199 §4.1). */
static void
send_ping(struct keepalive *k, ev_tstamp now)
{
	struct arena *a = arena_new(512);
	struct xel *iq = xel_new(a, "iq", NS_CLIENT);
	char id[32];

	k->serial = next_serial++;
	k->sent = now;
	snprintf(id, sizeof(id), PING_ID_PREFIX "%" PRIu64, k->serial);
	xel_set_attr(iq, "type", "get");
	xel_set_attr(iq, "from", k->s->jid.domain);
	xel_set_attr(iq, "to", k->s->full);
	xel_set_attr(iq, "id", id);
	xel_add(iq, "ping", NS_PING);
	session_send(k->s, iq);
	arena_free(a);
}

static double
tick_period(const struct conf_limits *l)
{
	double p;

	if (l->ping_interval == 0)
		return 10.0;          /* off: only notice a reload turning it on */
	p = (l->ping_interval < l->ping_timeout ? l->ping_interval :
	    l->ping_timeout) / 4.0;
	return p < 0.25 ? 0.25 : p > 30.0 ? 30.0 : p;
}

static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	const struct conf_limits *l = &xmppd_conf->limits;
	ev_tstamp now = mono_now(loop);
	uint64_t *dead = NULL;
	size_t ndead = 0;

	w->repeat = tick_period(l);
	ev_timer_again(loop, w);
	if (l->ping_interval == 0)
		return;
	for (size_t i = 0; i < ntable; i++) {
		struct keepalive *k = table[i];
		double last;

		if (k->s->t == NULL || k->s->closing)
			continue;         /* detached (XEP-0198) */
		if (session_input_paused(k->s)) {
			/* We are not reading (its output is above the high
			 * water mark, or a hold): it cannot be heard, so the
			 * clock waits; output-max deals with dead peers. */
			if (k->sent != 0)
				k->sent = now;
			continue;
		}
		last = session_last_input(k->s);
		if (k->sent != 0 && last > k->sent)
			k->sent = 0;      /* heard from it: alive */
		if (k->sent != 0) {
			if (now - k->sent >= l->ping_timeout) {
				dead = xreallocarray(dead, ndead + 1,
				    sizeof(*dead));
				dead[ndead++] = k->s->id;
			}
		} else if (now - last >= l->ping_interval)
			send_ping(k, now);
	}
	/* Closing unbinds, which edits the table: do it after the scan. */
	for (size_t i = 0; i < ndead; i++) {
		struct keepalive *k;
		char key[24];

		session_key(dead[i], key, sizeof(key));
		if ((k = strmap_get(by_session, key)) == NULL ||
		    k->s->t == NULL)
			continue;
		log_info(SESSION_LOG_FMT " did not answer a ping within %u s",
		    SESSION_LOG_ARGS(k->s), l->ping_timeout);
		/* A resumable session (XEP-0198) loses its connection
		 * only and waits for its client. */
		if (!session_lost(k->s, "connection-timeout", NULL))
			session_end(k->s, "connection-timeout", NULL);
	}
	free(dead);
}

/* The answer to our ping: an IQ result or error with its id, addressed to
 * the server.  Consumed here (the router would drop it anyway). */
static enum hook_result
outbound(struct session *from, struct xel *st, const struct jid *to)
{
	const char *type, *id;
	struct keepalive *k;
	char want[32];

	if (!xel_is(st, "iq", NS_CLIENT) ||
	    (type = xel_attr(st, "type")) == NULL ||
	    (strcmp(type, "result") != 0 && strcmp(type, "error") != 0) ||
	    (id = xel_attr(st, "id")) == NULL ||
	    strncmp(id, PING_ID_PREFIX, sizeof(PING_ID_PREFIX) - 1) != 0)
		return HOOK_PASS;
	if (to && (to->node || to->resource ||
		      strcmp(to->domain, from->jid.domain) != 0))
		return HOOK_PASS;
	if ((k = find(from)) == NULL || k->sent == 0)
		return HOOK_PASS;
	snprintf(want, sizeof(want), PING_ID_PREFIX "%" PRIu64, k->serial);
	if (strcmp(id, want) != 0)
		return HOOK_PASS;
	k->sent = 0;
	return HOOK_HANDLED;
}

/* A ping to another user's bare JID: answered for those who may see the
 * account's presence, <service-unavailable/> for the rest, as for a
 * missing account, so that it reveals nothing (XEP-0199 §6). */
static void
bare_ping(struct session *s, struct xel *iq, int allowed)
{
	struct xel *r = allowed ? stanza_iq_result(iq) :
	    stanza_error(iq, NULL, "service-unavailable", NULL);

	if (r == NULL)
		return;
	session_send(s, r);
	arena_free(r->arena);
}

/*
 * XEP-0199 §4.2: a ping to the server, or to the user's own bare JID or
 * without 'to', which "is equivalent to directing the IQ-get to the
 * server itself"; §4.4: a ping to a bare JID "will be handled by the
 * server on behalf of the client".
 */
static enum hook_result
handle_ping(struct session *from, struct xel *iq, enum iq_target target)
{
	const char *type = xel_attr(iq, "type");

	if (type == NULL || strcmp(type, "get") != 0)
		return HOOK_PASS;
	if (target == IQ_TO_BARE)
		disco_account_access(from, iq, bare_ping);
	else
		bare_ping(from, iq, 1);
	return HOOK_HANDLED;
}

static void
bound_already(struct session *s, void *arg)
{
	if (!s->closing)
		session_bound(s);
}

void
mod_ping_init(void)
{
	iq_register(NS_PING, "ping", handle_ping);
	disco_add_feature(DISCO_SERVER, NS_PING);
	/* Keepalive: the table is kept whatever the interval, so that a
	 * reload may turn it on or off. */
	by_session = strmap_new();
	hook_add_session(HOOK_SESSION_BOUND, session_bound);
	hook_add_session(HOOK_SESSION_END, on_session_end);
	hook_add_outbound(outbound);
	/* Switched on by a reload: keep those already online alive too. */
	sm_foreach_session(bound_already, NULL);
	ev_timer_init(&tick_w, tick_cb, 0.0, tick_period(&xmppd_conf->limits));
	ev_timer_again(xmppd_loop, &tick_w);
	ev_unref(xmppd_loop);
}

void
mod_ping_deinit(void)
{
	ev_ref(xmppd_loop);
	ev_timer_stop(xmppd_loop, &tick_w);
	for (size_t i = 0; i < ntable; i++)
		free(table[i]);
	free(table);
	table = NULL;
	ntable = table_cap = 0;
	strmap_free(by_session);
	by_session = NULL;
}
