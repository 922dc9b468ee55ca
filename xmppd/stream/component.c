/*
 * External components (XEP-0114): the jabber:component:accept stream
 * (header, handshake, stanzas), the 'from' check on everything a
 * component sends, and the router services that carry stanzas for a
 * component's domain and its subdomains to its stream.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "stream/component.h"
#include "conf.h"
#include "core/router.h"
#include "core/stanza.h"
#include "handshake.h"
#include "jid.h"
#include "log.h"
#include "mono.h"
#include "net/conn.h"
#include "scram.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_COMPONENT "jabber:component:accept"

enum component_state {
	COMPONENT_WAIT_HEADER,  /* nothing yet */
	COMPONENT_HANDSHAKE,    /* header answered, waiting for <handshake/> */
	COMPONENT_ACTIVE,       /* authenticated: stanzas flow */
	COMPONENT_CLOSING,      /* our end sent: nothing more is read */
};

struct component {
	uint64_t id;                /* the connection's */
	struct conn *conn;
	struct xml_stream *xs;
	enum component_state state;
	char *domain;               /* from the header's 'to' (prepared) */
	char stream_id[33];
	unsigned header_sent : 1;
	time_t since;               /* wall time of the handshake */
	uint64_t stanzas_in, stanzas_out;
	unsigned rate;              /* stanzas per second, 0: no limit */
	unsigned burst;
	double tokens, bucket_at;   /* the stanza token bucket */
	ev_timer rate_w;            /* resumes reading once refilled */
	struct component *next, *prev;
};

static struct component *all;
static size_t nall;
/* The domains registered with the router (those of the configuration
 * now in force). */
static char **domains;
static size_t ndomains;
static struct buf out_buf;          /* serialization scratch */

static const char *const state_names[] = {
	"wait-header", "handshake", "active", "closing",
};

static void
set_state(struct component *c, enum component_state st)
{
	log_debug("component %" PRIu64 " %s: %s -> %s", c->id, c->conn->addr,
	    state_names[c->state], state_names[st]);
	c->state = st;
}

/* The active stream of the component whose domain d is, or a subdomain
 * of. */
static struct component *
active_for(const char *d)
{
	size_t n = strlen(d);

	for (struct component *c = all; c; c = c->next) {
		size_t m;

		/* A connection that died waits for the reaper (on_close):
		 * nothing sent to it would leave. */
		if (c->state != COMPONENT_ACTIVE || c->conn->state == CONN_DEAD)
			continue;
		m = strlen(c->domain);
		if (strcmp(c->domain, d) == 0 || (n > m + 1 &&
		    d[n - m - 1] == '.' && strcmp(d + n - m, c->domain) == 0))
			return c;
	}
	return NULL;
}

static void
send_header(struct component *c)
{
	struct buf *b = &out_buf;
	unsigned char rnd[16];

	scram_random_salt(rnd, sizeof(rnd));
	for (size_t i = 0; i < sizeof(rnd); i++) {
		c->stream_id[2 * i] = "0123456789abcdef"[rnd[i] >> 4];
		c->stream_id[2 * i + 1] = "0123456789abcdef"[rnd[i] & 15];
	}
	c->stream_id[32] = '\0';
	buf_reset(b);
	buf_adds(b, "<?xml version='1.0'?><stream:stream xmlns='"
	    NS_COMPONENT "' xmlns:stream='" NS_STREAMS "' id='");
	buf_adds(b, c->stream_id);
	buf_adds(b, "'");
	if (c->domain != NULL) {
		buf_adds(b, " from='");
		buf_add_xml_escaped(b, c->domain, strlen(c->domain), 1);
		buf_adds(b, "'");
	}
	buf_adds(b, ">");
	conn_write(c->conn, buf_head(b), buf_avail(b));
	c->header_sent = 1;
}

/* Serialized in jabber:client, the stream's default namespace being
 * jabber:component:accept: the element names and their xmlns are the
 * same text, so no namespace is declared on them. */
static void
send_element(struct component *c, const struct xel *el)
{
	if (c->state == COMPONENT_CLOSING)
		return;
	buf_reset(&out_buf);
	xel_serialize(el, &out_buf, NS_CLIENT);
	conn_write(c->conn, buf_head(&out_buf), buf_avail(&out_buf));
	if (out_buf.cap > 65536)
		buf_free(&out_buf);
}

/* Unlist a component that leaves (or is replaced): its domain stays
 * registered, so stanzas to it get <service-unavailable/>. */
static void
deactivate(struct component *c)
{
	if (c->state != COMPONENT_ACTIVE)
		return;
	log_info("component %" PRIu64 " %s: %s disconnected (%" PRIu64
	    " stanzas in, %" PRIu64 " out)", c->id, c->conn->addr, c->domain,
	    c->stanzas_in, c->stanzas_out);
	set_state(c, COMPONENT_CLOSING);        /* no longer active_for() */
	if (active_for(c->domain) == NULL)
		router_service_set_listed(c->domain, 0);
}

static void
end_stream(struct component *c)
{
	deactivate(c);
	if (c->state != COMPONENT_CLOSING)
		set_state(c, COMPONENT_CLOSING);
	ev_timer_stop(xmppd_loop, &c->rate_w);
	conn_write(c->conn, "</stream:stream>", 16);
	conn_close(c->conn);
}

/* The one way out with an error (RFC 6120 §4.9). */
static void
stream_error(struct component *c, const char *cond, const char *text)
{
	struct arena *a;
	struct xel *e;

	if (c->state == COMPONENT_CLOSING)
		return;
	log_info("component %" PRIu64 " %s: stream error <%s/>%s%s", c->id,
	    c->conn->addr, cond, text ? ": " : "", text ? text : "");
	if (!c->header_sent)
		send_header(c);
	a = arena_new(512);
	e = xel_new(a, "error", NS_STREAMS);
	xel_add(e, cond, NS_STREAM_ERR);
	if (text)
		xel_text_set(xel_add(e, "text", NS_STREAM_ERR), text);
	send_element(c, e);
	arena_free(a);
	end_stream(c);
}

/* XEP-0114 §3: the header names the component's domain in 'to'. */
static int
on_open(void *ctx, struct xel *root, const char *default_ns)
{
	struct component *c = ctx;
	const char *to = xel_attr(root, "to");
	char *domain;

	if (strcmp(default_ns, NS_COMPONENT) != 0) {
		stream_error(c, "invalid-namespace", NULL);
		return 1;
	}
	if (to == NULL || *to == '\0' || (domain = jid_nameprep(to)) == NULL) {
		stream_error(c, "improper-addressing",
		    "A 'to' attribute with the component's domain is required");
		return 1;
	}
	c->domain = domain;
	if (conf_component_find(xmppd_conf, domain) == NULL) {
		log_info("component %" PRIu64 " %s: no component '%s' "
		    "configured", c->id, c->conn->addr, domain);
		stream_error(c, "host-unknown", NULL);
		return 1;
	}
	send_header(c);
	set_state(c, COMPONENT_HANDSHAKE);
	return 0;
}

/* The authenticated limits (a component carries many users' stanzas). */
static void
set_limits(struct component *c, int authed)
{
	const struct conf_limits *l = &xmppd_conf->limits;
	struct xml_limits lim = {
		.max_stanza = authed ? l->stanza_size : l->preauth_stanza_size,
		.max_depth = l->depth,
		.max_attrs = l->attributes,
		.max_memory = authed ? l->stanza_memory :
		    2 * l->preauth_stanza_size + 16384,
	};

	xml_stream_set_limits(c->xs, &lim);
}

static void
handshake(struct component *c, const struct xel *el)
{
	const struct conf_component *k =
	    conf_component_find(xmppd_conf, c->domain);
	const char *got = xel_text(el);
	struct component *old;
	struct arena *a;

	if (!xel_is(el, "handshake", NS_COMPONENT)) {
		stream_error(c, "not-authorized",
		    "The handshake must come first (XEP-0114)");
		return;
	}
	if (k == NULL || got == NULL ||
	    !handshake_verify(c->stream_id, k->secret, got)) {
		log_info("component %" PRIu64 " %s: handshake for %s failed",
		    c->id, c->conn->addr, c->domain);
		stream_error(c, "not-authorized", NULL);
		return;
	}
	/* A component that connects again replaces its old stream (it
	 * may not have noticed that one die). */
	if ((old = active_for(c->domain)) != NULL &&
	    strcmp(old->domain, c->domain) == 0) {
		log_info("component %" PRIu64 " %s: replaced by %" PRIu64
		    " %s", old->id, old->conn->addr, c->id, c->conn->addr);
		stream_error(old, "conflict",
		    "Replaced by a new connection of the component");
	}
	c->rate = k->stanzas_per_second;
	c->burst = k->stanza_burst;
	c->tokens = c->burst;
	c->bucket_at = mono_now(xmppd_loop);
	c->since = time(NULL);
	set_state(c, COMPONENT_ACTIVE);
	set_limits(c, 1);
	conn_set_timeout(c->conn, 0, NULL);
	router_service_set_listed(c->domain, 1);
	log_info("component %" PRIu64 " %s: %s connected", c->id,
	    c->conn->addr, c->domain);
	a = arena_new(256);
	send_element(c, xel_new(a, "handshake", NS_CLIENT));
	arena_free(a);
}

/* Elements in the component namespace are jabber:client inside the
 * server (the two namespaces name the same stanzas). */
static void
requalify(struct xel *el)
{
	if (el->name == NULL)
		return;
	if (strcmp(el->ns, NS_COMPONENT) == 0)
		el->ns = NS_CLIENT;
	for (struct xel *k = el->children; k; k = k->next)
		requalify(k);
}

/* 0 if from (set or stamped) is the component's domain or under it;
 * otherwise the stream has ended. */
static int
check_from(struct component *c, struct xel *st)
{
	const char *f = xel_attr(st, "from");
	struct jid j = { 0 };
	size_t n, m = strlen(c->domain);
	int ok;

	if (f == NULL) {
		/* As Prosody: the component's own domain. */
		xel_set_attr(st, "from", c->domain);
		return 0;
	}
	if (jid_parse(&j, f) < 0) {
		stream_error(c, "invalid-from", "Malformed 'from'");
		return -1;
	}
	n = strlen(j.domain);
	ok = strcmp(j.domain, c->domain) == 0 || (n > m + 1 &&
	    j.domain[n - m - 1] == '.' && strcmp(j.domain + n - m,
	    c->domain) == 0);
	jid_free(&j);
	if (!ok) {
		stream_error(c, "invalid-from",
		    "A component may only send from its domain or a "
		    "subdomain of it");
		return -1;
	}
	return 0;
}

static void
bucket_refill(struct component *c, double now)
{
	c->tokens += (now - c->bucket_at) * c->rate;
	if (c->tokens > c->burst)
		c->tokens = c->burst;
	c->bucket_at = now;
}

static void
rate_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct component *c = container_of(w, struct component, rate_w);

	bucket_refill(c, mono_now(l));
	conn_resume(c->conn, CONN_PAUSE_RATE);
}

/* One stanza's token: past the burst, reading stops until one token is
 * back (the stanzas already read are handled). */
static void
bucket_take(struct component *c)
{
	if (c->rate == 0)
		return;
	bucket_refill(c, mono_now(xmppd_loop));
	c->tokens -= 1;
	if (c->tokens < 0 && !ev_is_active(&c->rate_w)) {
		conn_pause(c->conn, CONN_PAUSE_RATE);
		ev_timer_set(&c->rate_w, (1 - c->tokens) / c->rate, 0);
		ev_timer_start(xmppd_loop, &c->rate_w);
	}
}

static void
handle_stanza(struct component *c, struct xel *st)
{
	const char *type;

	if (!xel_is(st, "message", NS_COMPONENT) &&
	    !xel_is(st, "presence", NS_COMPONENT) &&
	    !xel_is(st, "iq", NS_COMPONENT)) {
		stream_error(c, "unsupported-stanza-type", NULL);
		return;
	}
	requalify(st);
	if (check_from(c, st) < 0)
		return;
	c->stanzas_in++;
	bucket_take(c);
	if (xel_attr(st, "to") == NULL) {
		/* Nothing to deliver it to (as Prosody answers). */
		type = xel_attr(st, "type");
		if (type == NULL || (strcmp(type, "error") != 0 &&
		    strcmp(type, "result") != 0))
			router_bounce(NULL, st, "bad-request");
		return;
	}
	if (router_from_component(st) < 0)
		stream_error(c, "unsupported-stanza-type", NULL);
}

static int
on_stanza(void *ctx, struct xel *st)
{
	struct component *c = ctx;

	if (xel_is(st, "error", NS_STREAMS)) {
		log_info("component %" PRIu64 " %s: stream error from the "
		    "peer", c->id, c->conn->addr);
		arena_free(st->arena);
		end_stream(c);
		return 1;
	}
	if (c->state == COMPONENT_HANDSHAKE)
		handshake(c, st);
	else if (c->state == COMPONENT_ACTIVE)
		handle_stanza(c, st);
	arena_free(st->arena);
	return c->state == COMPONENT_CLOSING;
}

static void
on_xml_close(void *ctx)
{
	struct component *c = ctx;

	if (c->state == COMPONENT_CLOSING)
		return;
	if (!c->header_sent)
		send_header(c);
	end_stream(c);
}

static const struct xml_stream_cb component_xml_cb = {
	.on_open = on_open,
	.on_stanza = on_stanza,
	.on_close = on_xml_close,
};

static void
on_data(struct conn *conn, const char *data, size_t len)
{
	struct component *c = conn->upper;

	if (c->state == COMPONENT_CLOSING)
		return;
	switch (xml_stream_feed(c->xs, data, len)) {
	case XMLS_ERROR:
		stream_error(c, xml_error_condition(xml_stream_error(c->xs)),
		    xml_stream_error_text(c->xs));
		break;
	case XMLS_CLOSED:
		on_xml_close(c);
		break;
	default:
		break;
	}
}

static void *
on_accept(struct conn *conn)
{
	struct component *c = xcalloc(1, sizeof(*c));

	c->id = conn->id;
	c->conn = conn;
	c->state = COMPONENT_WAIT_HEADER;
	c->xs = xml_stream_new(NULL, &component_xml_cb, c);
	set_limits(c, 0);
	ev_init(&c->rate_w, rate_cb);
	conn_set_timeout(conn, xmppd_conf->limits.preauth_timeout,
	    "handshake timeout");
	c->next = all;
	if (all)
		all->prev = c;
	all = c;
	nall++;
	log_debug("component %" PRIu64 " %s: accepted", c->id, conn->addr);
	return c;
}

static void
on_close(struct conn *conn)
{
	struct component *c = conn->upper;

	deactivate(c);
	ev_timer_stop(xmppd_loop, &c->rate_w);
	if (c->xs)
		xml_stream_free(c->xs);
	if (c->prev)
		c->prev->next = c->next;
	else
		all = c->next;
	if (c->next)
		c->next->prev = c->prev;
	nall--;
	free(c->domain);
	free(c);
}

static void
on_timeout(struct conn *conn, const char *reason)
{
	stream_error(conn->upper, "connection-timeout",
	    "No handshake within the time allowed");
}

const struct conn_handler component_conn_handler = {
	.on_data = on_data,
	.on_close = on_close,
	.on_accept = on_accept,
	.on_timeout = on_timeout,
	/* Not gated by storage congestion: a component's stanzas are
	 * mostly routed, and nothing would resume it. */
	.gated = 0,
};

/*
 * The router's service for a component domain: to its stream while one
 * is connected, else an error to the sender (as Prosody does; XEP-0114
 * says nothing).
 */
static void
component_route(struct session *from, struct xel *st, const struct jid *to)
{
	struct component *c = active_for(to->domain);
	const char *type = xel_attr(st, "type");

	if (c != NULL) {
		c->stanzas_out++;
		send_element(c, st);
		return;
	}
	if (type != NULL && (strcmp(type, "error") == 0 ||
	    strcmp(type, "result") == 0 || strcmp(type, "unavailable") == 0 ||
	    strcmp(type, "probe") == 0))
		return;
	router_bounce(from, st, "service-unavailable");
}

/* The host a component is listed under: the one whose subdomain it is,
 * else the first. */
static const char *
host_of(const struct conf *conf, const char *domain)
{
	size_t n = strlen(domain);

	for (size_t i = 0; i < conf->nhosts; i++) {
		const char *h = conf->hosts[i].name;
		size_t m = strlen(h);

		if (n > m + 1 && domain[n - m - 1] == '.' &&
		    strcmp(domain + n - m, h) == 0)
			return h;
	}
	return conf->hosts[0].name;
}

void
component_set_conf(const struct conf *conf)
{
	/* Drop what is no longer configured, then add what is new. */
	for (size_t i = ndomains; i-- > 0;) {
		if (conf_component_find(conf, domains[i]) != NULL)
			continue;
		for (struct component *c = all; c; c = c->next)
			if (c->state != COMPONENT_CLOSING && c->domain &&
			    strcmp(c->domain, domains[i]) == 0)
				stream_error(c, "host-gone", NULL);
		router_remove_service(domains[i]);
		free(domains[i]);
		memmove(&domains[i], &domains[i + 1],
		    (ndomains - i - 1) * sizeof(*domains));
		ndomains--;
	}
	for (size_t i = 0; i < conf->ncomponents; i++) {
		const char *d = conf->components[i].domain;
		size_t k;

		for (k = 0; k < ndomains; k++)
			if (strcmp(domains[k], d) == 0)
				break;
		if (k < ndomains)
			continue;
		if (router_add_component(d, host_of(conf, d),
		    component_route) < 0) {
			log_warnx("component %s: the domain is taken by a "
			    "service", d);
			continue;
		}
		domains = xreallocarray(domains, ndomains + 1,
		    sizeof(*domains));
		domains[ndomains++] = xstrdup(d);
		if (active_for(d) != NULL)
			router_service_set_listed(d, 1);
	}
	/* The rates of the blocks as they are now. */
	for (struct component *c = all; c; c = c->next) {
		const struct conf_component *k;

		if (c->state != COMPONENT_ACTIVE ||
		    (k = conf_component_find(conf, c->domain)) == NULL)
			continue;
		c->rate = k->stanzas_per_second;
		c->burst = k->stanza_burst;
		if (c->tokens > c->burst)
			c->tokens = c->burst;
		if (c->rate == 0 && ev_is_active(&c->rate_w)) {
			ev_timer_stop(xmppd_loop, &c->rate_w);
			conn_resume(c->conn, CONN_PAUSE_RATE);
		}
	}
}

void
component_shutdown_all(void)
{
	for (struct component *c = all; c; c = c->next)
		stream_error(c, "system-shutdown", NULL);
}

size_t
component_count(void)
{
	return nall;
}

void
component_foreach(void (*fn)(const struct component_info *ci, void *arg),
    void *arg)
{
	struct component *c, *last = NULL;

	/* The list is newest first: walk it backwards. */
	for (c = all; c; c = c->next)
		last = c;
	for (c = last; c; c = c->prev) {
		struct component_info ci;

		if (c->state != COMPONENT_ACTIVE)
			continue;
		ci.domain = c->domain;
		ci.addr = c->conn->addr;
		ci.id = c->id;
		ci.since = c->since;
		ci.stanzas_in = c->stanzas_in;
		ci.stanzas_out = c->stanzas_out;
		fn(&ci, arg);
	}
}
