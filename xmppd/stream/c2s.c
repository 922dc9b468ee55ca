/*
 * Client streams (RFC 6120): the per-connection state machine from the
 * stream header through STARTTLS, SASL and resource binding to an active
 * session whose stanzas go to the router.  Stream errors end here.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "stream/c2s.h"
#include "stream/parser_idle.h"
#include "conf.h"
#include "ht.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/websocket.h"
#include "core/csi.h"
#include "core/hooks.h"
#include "jid.h"
#include "log.h"
#include "mono.h"
#include "netkey.h"
#include "core/router.h"
#include "stream/sasl.h"
#include "scram.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/smacks.h"
#include "core/stanza.h"
#include "core/transport.h"
#include "store/fast.h"
#include "strmap.h"
#include "net/tls.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define MAX_AUTH_ATTEMPTS 5     /* failed SASL attempts per stream */
#define AUTH_WINDOW 60.0        /* seconds for per-IP failure counting */
#define AUTH_TARPIT 2.0         /* seconds a failure past the per-IP limit
                                   waits before it is answered */
#define NS_STREAM_LIMITS "urn:xmpp:stream-limits:0"     /* XEP-0478 */
#define NS_BIND2 "urn:xmpp:bind:0"                      /* XEP-0386 */
#define BIND2_TAG_MAX 64        /* bytes of a Bind 2 <tag/> */
#define BIND2_HASH_BYTES 4      /* of the stable part of its resource */
#define NS_FRAMING "urn:ietf:params:xml:ns:xmpp-framing" /* RFC 7395 */
#define PREAUTH_MEMORY_SLACK (16 * 1024) /* bytes beyond twice
                                            preauth-stanza-size a pre-auth
                                            stanza may take once parsed */

enum c2s_state {
	C2S_WAIT_HEADER,   /* waiting for the (next) stream header */
	C2S_NEGOTIATING,   /* header done: TLS, SASL, bind */
	C2S_ACTIVE,        /* bound: stanzas go to the router */
	C2S_CLOSING,       /* stream closed or errored; no more input */
};

struct c2s {
	struct transport t;         /* what the core sees: id (= conn id),
	                               tls, authed, host, bound session */
	uint64_t id;                /* = conn id */
	struct conn *conn;
	char client_ip[46];         /* the client: conn->ip, or for a
	                               WebSocket behind a trusted proxy the
	                               address the proxy names */
	char client_net[NETKEY_LEN]; /* its key for the per-IP limits */
	struct ws *ws;              /* RFC 7395 framing over this WebSocket
	                               (net/websocket.h), or NULL: a TCP
	                               stream */
	unsigned ws_elements;       /* elements of the message being fed */
	int ws_priming;             /* feeding the implicit stream root */
	int bosh;                   /* XEP-0206 framing over a virtual conn
	                               (stream/bosh.c): the same implicit
	                               root, <open/> fed by bosh.c for the
	                               session's start and each restart */
	enum c2s_state state;
	int header_done;            /* a stream header was accepted (on_open),
	                               on this stream or an earlier one */
	struct xml_stream *xs;
	int header_sent;            /* our header went out on this stream */
	int in_feed;                /* inside xml_stream_feed() */
	int restart;                /* replace the parser after feeding */
	int auth_failures;
	int cb_unmatched;           /* asked for -PLUS with a binding type
	                               not offered here (sasl_cb) */
	char *host;                 /* the stream's domain */
	char *user;                 /* authenticated localpart */
	struct sasl *sasl;
	int sasl2;                  /* the last exchange started is SASL2's
	                               (XEP-0388): its framing */
	struct sasl2_req *req;      /* what its <authenticate/> asked for */
	char auth[48];              /* how it authenticated (session.auth) */
	double preauth_deadline;
	int held;                   /* stanzas wait in the queue (c2s_hold) */
	struct xel **queue;         /* held stanzas, in order */
	size_t nqueue;
	struct c2s *prev, *next;
	/*
	 * Stanza rate limit, a token bucket (limits stanzas-per-second and
	 * stanza-burst): every stanza parsed takes a token.  What one read
	 * brought is processed even if the bucket runs dry, so tokens may go
	 * negative; reading then pauses (CONN_PAUSE_RATE) until the bucket
	 * is back to one token.  Nothing is buffered or dropped: the flooding
	 * peer's own TCP window fills and it slows down.  Beside it a bucket
	 * of bytes (bytes-per-second, byte-burst) works the same way: every
	 * byte read takes a token, and reading pauses while it is in debt,
	 * so large stanzas cannot go past the stanza count.
	 */
	double tokens;
	double byte_tokens;
	/* Times in this file (bucket_at, accepted_at, wait_until,
	 * preauth_deadline, and ip_state's) are mono_now() times, which a
	 * step of the wall clock does not move (mono.h). */
	double bucket_at;           /* when both were last refilled */
	unsigned throttled;         /* times reading paused for the rates */
	/* While not authenticated: counted in its network's preauth and on
	 * that network's list of such streams, in accept order. */
	int preauth_counted;
	struct ip_state *ip;        /* its network, while counted */
	struct c2s *ip_prev, *ip_next;
	double accepted_at;
	/* A SASL failure held back by the authentication tarpit: the
	 * condition to send when wait_until comes (reading is paused). */
	const char *tarpit;
	/* On the wait list while throttled or tarpitted (one shared timer). */
	double wait_until;          /* the tarpit's end */
	struct c2s *wait_prev, *wait_next;
	int waiting;
};

#define MAX_HELD 64             /* stanzas queued while held */

/* What a SASL2 <authenticate/> carries besides the mechanism's data
 * (XEP-0388 §2.3, XEP-0386 §3.2, XEP-0198 inline, XEP-0484 §3). */
struct sasl2_req {
	char *agent;                /* <user-agent id/>, or NULL */
	char *software, *device;    /* its children, or "" */
	struct xel *bind;           /* <bind xmlns='urn:xmpp:bind:0'/>, a
	                               copy in its own arena, or NULL */
	char *tag;                  /* its <tag/>, or NULL */
	int resume;                 /* <resume xmlns='urn:xmpp:sm:3'/> ... */
	char *previd;
	uint32_t h;
	char *token_mech;           /* <request-token mechanism/>, or NULL */
	struct sasl_fast fast;      /* <fast count invalidate/> */
};

/* What one network is doing (the peers whose addresses share a key,
 * conn.net: an IPv6 /64 by default, an IPv4 address): connections not
 * yet authenticated, recent authentication failures, a temporary ban.
 * Entries are purged once nothing is left to remember (never while
 * preauth is not 0, so a counted stream's pointer to its entry stays
 * valid). */
struct ip_state {
	struct c2s *first, *last;   /* connections not yet authenticated,
	                               oldest first ... */
	unsigned preauth;           /* ... and how many */
	unsigned failures;          /* authentication failures ... */
	double since;               /* ... in the window starting here */
	double banned_until;        /* 0: not banned */
	unsigned refused;           /* connections refused during the ban */
};

static struct c2s *all;
static size_t nall;
static struct strmap *ips;          /* conn.net -> struct ip_state */
static struct c2s *wait_head;       /* throttled or tarpitted streams */
static ev_timer wait_w;             /* the earliest of their wait ends */
static struct sasl **trash_v;      /* finished exchanges, freed later */
static size_t ntrash, trash_cap;
static ev_prepare trash_w;
static ev_timer purge_w;
static ev_timer idle_w;
static struct buf out_buf;          /* serialization scratch */

static void c2s_sasl_reply(uint64_t owner, const struct sasl_reply *r);
static void c2s_stream_error(struct c2s *c, const char *cond,
    const char *text);
static const struct transport_ops c2s_transport_ops;
static const struct transport_ops ws_transport_ops;
static void ws_write(struct c2s *c, const char *data, size_t len);
static const struct transport_ops bosh_transport_ops;

/* Whether the stream is framed (WebSocket or BOSH): an implicit root,
 * <open/> as the header, no STARTTLS. */
static int
framed(const struct c2s *c)
{
	return c->ws != NULL || c->bosh;
}

static void
set_state(struct c2s *c, enum c2s_state st)
{
	static const char *const names[] = { "wait-header", "negotiating",
		"active", "closing" };

	if (c->state != st)
		log_debug("c2s %" PRIu64 " %s: %s -> %s", c->id, c->conn->addr,
		    names[c->state], names[st]);
	c->state = st;
}

/* The c2s stream of a transport, NULL if it is of another kind. */
static struct c2s *
of_transport(struct transport *t)
{
	return t != NULL && (t->ops == &c2s_transport_ops ||
	    t->ops == &ws_transport_ops || t->ops == &bosh_transport_ops) ?
	    container_of(t, struct c2s, t) : NULL;
}

size_t
c2s_count(void)
{
	return nall;
}

/* Serialized top-level elements (in the jabber:client namespace) go out
 * on the stream, or one WebSocket message each. */
static void
out(struct c2s *c, const char *data, size_t len)
{
	if (framed(c))
		ws_write(c, data, len);
	else
		conn_write(c->conn, data, len);
}

static void
send_raw(struct c2s *c, const char *data, size_t len)
{
	if (c->state == C2S_CLOSING)
		return;         /* nothing may follow the stream's end */
	out(c, data, len);
}

/* Our end of the stream: the closing tag, or over WebSocket <close/>
 * and the close frame (RFC 7395 §3.6), then the connection closes once
 * flushed. */
static void
end_stream(struct c2s *c)
{
	static const char close_el[] = "<close xmlns='" NS_FRAMING "'/>";

	if (c->bosh) {
		/* bosh.c answers with type='terminate' (XEP-0124 §13). */
		conn_close(c->conn);
	} else if (c->ws != NULL) {
		websocket_send(c->ws, close_el, sizeof(close_el) - 1);
		websocket_close(c->ws, WS_CLOSE_NORMAL);
	} else {
		conn_write(c->conn, "</stream:stream>", 16);
		conn_close(c->conn);
	}
}

static void
c2s_send(struct c2s *c, const struct xel *el)
{
	if (c->state == C2S_CLOSING)
		return;         /* nothing may follow the stream's end */
	buf_reset(&out_buf);
	xel_serialize(el, &out_buf, NS_CLIENT);
	out(c, buf_head(&out_buf), buf_avail(&out_buf));
	if (out_buf.cap > 65536)
		buf_free(&out_buf);
}

/* Queue a finished SASL exchange for freeing outside its callbacks. */
static void
sasl_discard(struct c2s *c)
{
	if (c->sasl == NULL)
		return;
	if (ntrash == trash_cap) {
		trash_cap = trash_cap ? trash_cap * 2 : 16;
		trash_v = xreallocarray(trash_v, trash_cap, sizeof(*trash_v));
	}
	trash_v[ntrash++] = c->sasl;
	c->sasl = NULL;
}

static void
trash_cb(struct ev_loop *l, ev_prepare *w, int revents)
{
	for (size_t i = 0; i < ntrash; i++)
		sasl_free(trash_v[i]);
	ntrash = 0;
}

static void
send_header(struct c2s *c, const char *to)
{
	char id[17];
	struct buf *b = &out_buf;

	scram_random_hex(id, 8);
	if (c->bosh) {
		/* XEP-0206 §7: the session's <body/> stands for the header. */
		c->header_sent = 1;
		return;
	}
	buf_reset(b);
	if (c->ws != NULL)      /* RFC 7395 §3.3.2 */
		buf_adds(b, "<open xmlns='" NS_FRAMING "' version='1.0'"
		    " xml:lang='en' id='");
	else
		buf_adds(b, "<?xml version='1.0'?><stream:stream xmlns='"
		    NS_CLIENT "' xmlns:stream='" NS_STREAMS "' version='1.0'"
		    " xml:lang='en' id='");
	buf_add(b, id, 16);
	buf_adds(b, "'");
	if (c->host) {
		buf_adds(b, " from='");
		buf_add_xml_escaped(b, c->host, strlen(c->host), 1);
		buf_adds(b, "'");
	}
	if (to) {
		buf_adds(b, " to='");
		buf_add_xml_escaped(b, to, strlen(to), 1);
		buf_adds(b, "'");
	}
	if (c->ws != NULL) {
		buf_adds(b, "/>");
		websocket_send(c->ws, buf_head(b), buf_avail(b));
	} else {
		buf_adds(b, ">");
		conn_write(c->conn, buf_head(b), buf_avail(b));
	}
	c->header_sent = 1;
}

static void
close_session(struct c2s *c)
{
	if (c->t.session) {
		log_info("c2s %" PRIu64 " %s: session %s ended", c->id,
		    c->conn->addr, c->t.session->full);
		sm_unbind(c->t.session);     /* clears c->t.session */
	}
}

/* The connection is gone without a close: a resumable session waits for
 * its client (XEP-0198 §5), any other ends. */
static void
lose_session(struct c2s *c)
{
	struct session *s = c->t.session;

	if (s != NULL && session_lost(s, NULL, NULL)) {
		log_info("c2s %" PRIu64 " %s: connection lost (%s); session "
		    "%s waits to be resumed", c->id, c->conn->addr,
		    c->conn->close_reason ? c->conn->close_reason : "closed",
		    s->full);
		return;
	}
	close_session(c);
}

static void
set_closing(struct c2s *c)
{
	set_state(c, C2S_CLOSING);
	c->t.closing = 1;
}

/* A stream error with an application-specific condition (RFC 6120
 * §4.9.4): app, an element, is copied in after the text.  data: the
 * condition's character data (only <see-other-host/> has any), or NULL. */
static void
stream_error_app(struct c2s *c, const char *cond, const char *data,
    const char *text, const struct xel *app)
{
	struct xel *ce;
	struct arena *a;
	struct xel *e;

	if (c->state == C2S_CLOSING)
		return;
	log_info("c2s %" PRIu64 " %s: stream error <%s/>%s%s", c->id,
	    c->conn->addr, cond, text ? ": " : "", text ? text : "");
	if (c->t.session)
		sm_set_end_reason(c->t.session, cond);
	if (!c->header_sent)
		send_header(c, NULL);
	a = arena_new(512);
	e = xel_new(a, "error", NS_STREAMS);
	ce = xel_add(e, cond, NS_STREAM_ERR);
	if (data)
		xel_text_set(ce, data);
	if (text)
		xel_text_set(xel_add(e, "text", NS_STREAM_ERR), text);
	if (app != NULL)
		xel_append_copy(e, app);
	c2s_send(c, e);
	arena_free(a);
	set_closing(c);
	close_session(c);
	end_stream(c);
}

static void
c2s_stream_error(struct c2s *c, const char *cond, const char *text)
{
	stream_error_app(c, cond, NULL, text, NULL);
}

static void
new_parser(struct c2s *c)
{
	const struct conf_limits *l = &xmppd_conf->limits;
	struct xml_limits lim = {
		.max_stanza = c->t.authed ? l->stanza_size :
		    l->preauth_stanza_size,
		.max_depth = l->depth,
		.max_attrs = l->attributes,
		/* Before authentication a stanza is small (SASL, STARTTLS,
		 * registration): little beyond its bytes. */
		.max_memory = c->t.authed ? l->stanza_memory :
		    2 * l->preauth_stanza_size + PREAUTH_MEMORY_SLACK,
	};
	extern const struct xml_stream_cb c2s_xml_cb;

	if (c->xs)
		xml_stream_free(c->xs);
	c->xs = xml_stream_new(&lim, &c2s_xml_cb, c);
	c->header_sent = 0;
	c->restart = 0;
	set_state(c, C2S_WAIT_HEADER);
	if (framed(c)) {
		/* The stream is implicit; each <open/> is a header. */
		c->ws_priming = 1;
		xml_stream_open_implicit(c->xs, NS_CLIENT);
		c->ws_priming = 0;
	}
}

/*
 * The channel-binding types this connection offers, and with data set
 * their data: exported keying material and a certificate hash are only
 * worth computing for a -PLUS mechanism (about a tenth of a TLS
 * handshake's CPU otherwise spent on every login).
 */
static void
channel_binding(struct c2s *c, struct sasl_cb *cb, int data)
{
	memset(cb, 0, sizeof(*cb));
	if (c->conn->ssl) {
		cb->exporter_len = tls_cb_exporter(c->conn->ssl,
		    data ? cb->exporter : NULL);
		cb->end_point_len = tls_cb_server_end_point(c->conn->ssl,
		    data ? cb->end_point : NULL);
		cb->unique_len = tls_cb_unique(c->conn->ssl,
		    data ? cb->unique : NULL);
	}
	cb->cb_unmatched = c->cb_unmatched;
}

/*
 * XEP-0478: the limits of this stream: the largest top-level element the
 * parser takes (preauth-stanza-size, then stanza-size), and once
 * authenticated the silence after which the server pings (ping-interval)
 * or closes (idle-timeout), whichever comes first.  Before
 * authentication the stream has an overall deadline (preauth-timeout),
 * not an idle one, so idle-seconds is left out.
 */
static void
add_stream_limits(struct c2s *c, struct xel *features)
{
	const struct conf_limits *l = &xmppd_conf->limits;
	struct xel *lim = xel_add(features, "limits", NS_STREAM_LIMITS);
	unsigned idle = 0;
	char num[24];

	snprintf(num, sizeof(num), "%zu", c->t.authed ? l->stanza_size :
	    l->preauth_stanza_size);
	xel_text_set(xel_add(lim, "max-bytes", NULL), num);
	if (c->t.authed) {
		idle = l->idle_timeout;
		if (l->ping_interval != 0 && (idle == 0 ||
			l->ping_interval < idle))
			idle = l->ping_interval;
	}
	if (idle != 0) {
		snprintf(num, sizeof(num), "%u", idle);
		xel_text_set(xel_add(lim, "idle-seconds", NULL), num);
	}
}

/*
 * XEP-0388 §2.1: <authentication/> beside <mechanisms/>, the same
 * mechanisms under the same rules, with what may be done inline: Bind 2
 * (XEP-0386 §3.1, with the features it can enable: stream management
 * here, the modules' through hook_run_bind2_features), XEP-0198
 * resumption, and XEP-0484's FAST mechanisms (over TLS only).
 */
static void
add_sasl2(struct c2s *c, struct xel *f, const struct sasl_cb *cb)
{
	struct xel *auth = xel_add(f, "authentication", NS_SASL2);
	struct xel *in, *bind, *bin, *fast;

	sasl2_advertise(auth, c->t.tls, cb);
	in = xel_add(auth, "inline", NULL);
	bind = xel_add(in, "bind", NS_BIND2);
	bin = xel_add(bind, "inline", NULL);
	hook_run_bind2_features(bin);
	xel_set_attr(xel_add(bin, "feature", NULL), "var", NS_SM);
	xel_set_attr(xel_add(bin, "feature", NULL), "var", NS_CSI);
	xel_add(in, "sm", NS_SM);
	fast = xel_add(in, "fast", NS_FAST);
	if (sasl_fast_advertise(fast, c->t.tls, cb) == 0)
		xel_remove(fast);
}

/* bound: the session on this stream (SASL2 bound or resumed it), or
 * NULL. */
static void
send_features(struct c2s *c, const struct session *bound)
{
	struct arena *a = arena_new(1024);
	struct xel *f = xel_new(a, "features", NS_STREAMS);

	if (c->t.authed) {
		/* After SASL2 with Bind 2 or a resumption (XEP-0388 §2.6.1:
		 * features follow <success/>, without a restart) the stream
		 * is bound already. */
		if (bound == NULL) {
			xel_add(f, "bind", NS_BIND);
			/* The RFC 3921 session is a no-op kept for old
			 * clients, announced optional
			 * (draft-cridland-xmpp-session-01). */
			xel_add(xel_add(f, "session", NS_SESSION), "optional",
			    NULL);
		}
		if (bound == NULL || !smacks_on(bound))
			xel_add(f, "sm", NS_SM);            /* XEP-0198 §2 */
		xel_add(f, "csi", NS_CSI);          /* XEP-0352 §2 */
		hook_run_features(&c->t, f, 1);
		add_stream_limits(c, f);
	} else if (!c->t.tls && !framed(c)) {
		struct xel *st = xel_add(f, "starttls", NS_TLS);

		/* RFC 6120 §5.3.1: with TLS required, <starttls/> is the
		 * only feature offered. */
		if (c->conn->starttls_required)
			xel_add(st, "required", NS_TLS);
		else {
			struct sasl_cb cb;

			channel_binding(c, &cb, 0);
			sasl_advertise(f, 0, &cb);
			add_sasl2(c, f, &cb);
			add_stream_limits(c, f);
		}
	} else {
		struct sasl_cb cb;

		/* TLS, or a WebSocket (no STARTTLS there: RFC 7395 §3.7,
		 * TLS is the https listener's). */
		channel_binding(c, &cb, 0);
		sasl_advertise(f, c->t.tls, &cb);
		add_sasl2(c, f, &cb);
		hook_run_features(&c->t, f, 0);
		add_stream_limits(c, f);
	}
	c2s_send(c, f);
	arena_free(a);
}

/*
 * The host has moved ("see-other-host", "see-other-uri"): the client is
 * sent there and the stream ends; 1 if so.  Over TCP, RFC 6120 §4.9.3.19,
 * only once the stream is encrypted where TLS is required (an attacker on
 * the path could otherwise send the client anywhere; the client follows
 * after STARTTLS).  Over WebSocket, RFC 7395 §3.6.1: <close/> with
 * see-other-uri, never the stream error.  BOSH: bosh.c answers the
 * session creation request itself (XEP-0124 §17.3).
 */
static int
moved(struct c2s *c, const struct conf_host *h)
{
	if (c->bosh)
		return 0;
	if (c->ws != NULL) {
		struct buf b = {0};

		if (h->see_other_ws == NULL)
			return 0;
		log_info("c2s %" PRIu64 " %s: sent to %s (see-other-uri)",
		    c->id, c->conn->addr, h->see_other_ws);
		buf_adds(&b, "<close xmlns='" NS_FRAMING "' see-other-uri='");
		buf_add_xml_escaped(&b, h->see_other_ws,
		    strlen(h->see_other_ws), 1);
		buf_adds(&b, "'/>");
		websocket_send(c->ws, buf_head(&b), buf_avail(&b));
		buf_free(&b);
		set_closing(c);
		websocket_close(c->ws, WS_CLOSE_NORMAL);
		return 1;
	}
	if (h->see_other_host == NULL ||
	    (!c->t.tls && c->conn->starttls_required))
		return 0;
	stream_error_app(c, "see-other-host", h->see_other_host, NULL, NULL);
	return 1;
}

/* RFC 6120 §4.7 and §4.9.3: check the client's stream header (or its
 * <open/>, RFC 7395 §3.3.2: the same attributes). */
static int
check_header(struct c2s *c, const struct xel *root)
{
	const char *to = xel_attr(root, "to"), *ver = xel_attr(root, "version");
	const char *from = xel_attr(root, "from");
	const struct conf_host *h;
	char *host = NULL, *peer = NULL;

	/*
	 * RFC 6120 §4.7.2: a client's header MUST carry 'to'.  Without one,
	 * or with one that is empty or no domain at all, the condition is
	 * <improper-addressing/> (§4.9.3.7: an address missing, empty or
	 * against the rules of XMPP addresses), as Prosody and ejabberd
	 * answer; <host-unknown/> (§4.9.3.6) is for a domain not served.
	 */
	if (to == NULL || *to == '\0' || (host = jid_nameprep(to)) == NULL) {
		c2s_stream_error(c, "improper-addressing",
		    "A 'to' attribute with a domain is required");
		return 1;
	}
	if (c->host && strcmp(c->host, host) != 0) {
		/* A restart (after STARTTLS or SASL) may not switch to
		 * another virtual host: what was negotiated, the
		 * certificate and the account, belongs to the first one
		 * (the class of CVE-2018-10847).  §4.9.3.12. */
		free(host);
		c2s_stream_error(c, "not-authorized",
		    "The domain of a stream cannot change on a restart");
		return 1;
	}
	if ((h = conf_host_find(xmppd_conf, host)) == NULL) {
		free(host);
		c2s_stream_error(c, "host-unknown", NULL);
		return 1;
	}
	if (c->host == NULL)
		c->t.host = c->host = host;
	else
		free(host);
	/* §4.7.5: we speak 1.0; a missing version means pre-1.0. */
	if (ver == NULL || strtol(ver, NULL, 10) != 1 || ver[0] != '1' ||
	    ver[1] != '.') {
		c2s_stream_error(c, "unsupported-version", NULL);
		return 1;
	}
	if (from)
		peer = jid_normalize(from);
	send_header(c, peer);
	free(peer);
	if (moved(c, h))
		return 1;
	c->header_done = 1;
	set_state(c, C2S_NEGOTIATING);
	send_features(c, NULL);
	return 0;
}

static int
on_open(void *ctx, struct xel *root, const char *default_ns)
{
	struct c2s *c = ctx;

	if (c->ws_priming)
		return 0;       /* our own implicit root (new_parser) */
	if (strcmp(default_ns, NS_CLIENT) != 0) {
		c2s_stream_error(c, "invalid-namespace", NULL);
		return 1;
	}
	return check_header(c, root);
}

/*
 * Per-network state (net is a conn.net key, limits ipv4-prefix and
 * ipv6-prefix): unauthenticated connections (preauth-connections-per-ip),
 * authentication failures in a window (auth-failures-per-ip) and a
 * temporary ban (auth-ban-time).
 */
static struct ip_state *
ip_state(const char *net, int create)
{
	struct ip_state *st = strmap_get(ips, net);

	if (st == NULL && create) {
		st = xcalloc(1, sizeof(*st));
		strmap_put(ips, net, st);
	}
	return st;
}

static int
ip_banned(const struct ip_state *st, double now)
{
	return st != NULL && st->banned_until > now;
}

/* A new stream counts against preauth-connections-per-ip until it
 * authenticates or closes; it joins the end of its address's list. */
static void
preauth_count(struct c2s *c, struct ip_state *st)
{
	c->preauth_counted = 1;
	c->ip = st;
	c->ip_next = NULL;
	c->ip_prev = st->last;
	if (st->last)
		st->last->ip_next = c;
	else
		st->first = c;
	st->last = c;
	st->preauth++;
}

/* The stream authenticated or closed: it no longer counts against
 * preauth-connections-per-ip. */
static void
preauth_release(struct c2s *c)
{
	struct ip_state *st = c->ip;

	if (!c->preauth_counted)
		return;
	c->preauth_counted = 0;
	if (c->ip_prev)
		c->ip_prev->ip_next = c->ip_next;
	else
		st->first = c->ip_next;
	if (c->ip_next)
		c->ip_next->ip_prev = c->ip_prev;
	else
		st->last = c->ip_prev;
	c->ip = NULL;
	c->ip_prev = c->ip_next = NULL;
	st->preauth--;
}

/*
 * preauth-connections-per-ip is reached and connection id from the same
 * address is to be accepted: make room by closing the stream that has
 * made the least progress, the oldest one without a complete stream
 * header (or already closing), else the oldest of all.  So one host
 * behind a shared address (a NAT) that holds idle or half-open
 * connections cannot lock out the others there: the newest connection
 * is always accepted, and one that has sent its stream header goes
 * last.  The walk is at most preauth-connections-per-ip long.
 *
 * The victim is killed at once (an unauthenticated peer: nothing worth
 * flushing) and stops counting now.  This runs from the listener's
 * callback, never from the victim's own; the reaper frees it later.
 */
static void
preauth_evict(struct ip_state *st, uint64_t id, unsigned limit)
{
	struct c2s *v = st->first, *c;
	const char *why;

	for (c = st->first; c != NULL; c = c->ip_next)
		if (!c->header_done || c->state == C2S_CLOSING ||
		    c->conn->state == CONN_CLOSING ||
		    c->conn->state == CONN_DEAD)
			break;
	if (c != NULL)
		v = c;
	if (v->conn->state == CONN_DEAD) {
		/* Closed earlier in this loop iteration, not reaped yet. */
		preauth_release(v);
		return;
	}
	if (v->state == C2S_CLOSING || v->conn->state == CONN_CLOSING)
		why = "already closing";
	else if (!v->header_done)
		why = "the oldest without a complete stream header";
	else
		why = "the oldest, all have sent a stream header";
	log_warnx("c2s %" PRIu64 " %s: closed to make room for c2s %" PRIu64
	    " (preauth-connections-per-ip %u for %s): %s, not authenticated "
	    "after %.1f s", v->id, v->conn->addr, id, limit, v->client_net,
	    why, mono_now(xmppd_loop) - v->accepted_at);
	set_closing(v);
	preauth_release(v);
	conn_kill(v->conn, "evicted (preauth-connections-per-ip)");
}

/* Whether the stream's network may not try to authenticate now: it is
 * banned, or it failed auth-failures-per-ip times within the window. */
static int
auth_throttled(struct c2s *c)
{
	struct ip_state *st = ip_state(c->client_net, 0);
	double now = mono_now(xmppd_loop);

	return st != NULL && (ip_banned(st, now) ||
	    (now - st->since < AUTH_WINDOW &&
		st->failures >= xmppd_conf->limits.auth_failures_per_ip));
}

/*
 * Count an authentication failure (a wrong password or proof, or an
 * attempt refused by the throttle) for the stream and its address.  At
 * twice auth-failures-per-ip within the window the address is banned for
 * auth-ban-time.  Returns whether the failure is past the per-address
 * limit, to be answered through the tarpit.
 */
static int
auth_failed(struct c2s *c)
{
	const struct conf_limits *l = &xmppd_conf->limits;
	struct ip_state *st = ip_state(c->client_net, 1);
	double now = mono_now(xmppd_loop);
	int past;

	if (now - st->since >= AUTH_WINDOW) {
		st->failures = 0;
		st->since = now;
	}
	st->failures++;
	c->auth_failures++;
	past = st->failures > l->auth_failures_per_ip;
	if (l->auth_ban_time != 0 &&
	    st->failures >= 2 * l->auth_failures_per_ip) {
		if (!ip_banned(st, now)) {
			log_warnx("c2s %" PRIu64 " %s: %u authentication "
			    "failures from %s within %.0f s: refusing its "
			    "connections for %u s", c->id, c->conn->addr,
			    st->failures, c->client_net, AUTH_WINDOW,
			    l->auth_ban_time);
			st->refused = 0;
		}
		/* While banned every attempt is throttled (auth_throttled)
		 * and counted anew: twice the limit again extends the ban.
		 * Once it is over, the address starts afresh. */
		st->banned_until = now + l->auth_ban_time;
		st->failures = 0;
		st->since = now;
	}
	return past;
}

struct purge_list {
	char **keys;
	size_t n, cap;
};

static void
purge_one(const char *key, void *value, void *arg)
{
	struct ip_state *st = value;
	struct purge_list *pl = arg;
	double now = mono_now(xmppd_loop);

	if (st->banned_until != 0 && st->banned_until <= now) {
		log_info("c2s: ban on %s is over (%u connections refused)",
		    key, st->refused);
		st->banned_until = 0;
	}
	if (st->preauth > 0 || st->banned_until != 0 ||
	    now - st->since < AUTH_WINDOW)
		return;
	if (pl->n == pl->cap) {
		pl->cap = pl->cap ? pl->cap * 2 : 16;
		pl->keys = xreallocarray(pl->keys, pl->cap,
		    sizeof(*pl->keys));
	}
	pl->keys[pl->n++] = xstrdup(key);
}

/* Forget addresses with nothing left to remember (every AUTH_WINDOW). */
static void
purge_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct purge_list pl = { NULL, 0, 0 };

	strmap_foreach(ips, purge_one, &pl);
	for (size_t i = 0; i < pl.n; i++) {
		free(strmap_del(ips, pl.keys[i]));
		free(pl.keys[i]);
	}
	free(pl.keys);
}

/*
 * The wait list: streams whose reading is paused until a time, for the
 * stanza rate limit or the authentication tarpit.  One timer serves them
 * all, so a stream that never waits costs no timer.
 */
static void
wait_add(struct c2s *c, double until)
{
	double now = mono_now(xmppd_loop);

	if (!c->waiting) {
		c->waiting = 1;
		c->wait_prev = NULL;
		c->wait_next = wait_head;
		if (wait_head)
			wait_head->wait_prev = c;
		wait_head = c;
	}
	if (!ev_is_active(&wait_w) ||
	    until < now + ev_timer_remaining(xmppd_loop, &wait_w)) {
		ev_timer_stop(xmppd_loop, &wait_w);
		ev_timer_set(&wait_w, until > now ? until - now : 0.001, 0.);
		ev_timer_start(xmppd_loop, &wait_w);
	}
}

static void
wait_remove(struct c2s *c)
{
	if (!c->waiting)
		return;
	if (c->wait_prev)
		c->wait_prev->wait_next = c->wait_next;
	else
		wait_head = c->wait_next;
	if (c->wait_next)
		c->wait_next->wait_prev = c->wait_prev;
	c->waiting = 0;
	c->wait_prev = c->wait_next = NULL;
}

static void
bucket_refill(struct c2s *c, double now)
{
	const struct conf_limits *l = &xmppd_conf->limits;

	c->tokens += (now - c->bucket_at) * l->stanzas_per_second;
	if (c->tokens > l->stanza_burst)
		c->tokens = l->stanza_burst;
	c->byte_tokens += (now - c->bucket_at) * (double)l->bytes_per_second;
	if (c->byte_tokens > (double)l->byte_burst)
		c->byte_tokens = (double)l->byte_burst;
	c->bucket_at = now;
}

/* A stanza arrived: it takes a token (limits stanzas-per-second). */
static void
bucket_take(struct c2s *c)
{
	if (xmppd_conf->limits.stanzas_per_second == 0)
		return;
	bucket_refill(c, mono_now(xmppd_loop));
	c->tokens -= 1;
}

/* Bytes were read: they take as many tokens (limits bytes-per-second). */
static void
bytes_take(struct c2s *c, size_t len)
{
	if (xmppd_conf->limits.bytes_per_second == 0)
		return;
	bucket_refill(c, mono_now(xmppd_loop));
	c->byte_tokens -= (double)len;
}

/* Seconds until both buckets let reading go on (a stanza token, no byte
 * debt), 0 if they do now; after bucket_refill. */
static double
bucket_debt(const struct c2s *c)
{
	const struct conf_limits *l = &xmppd_conf->limits;
	double wait = 0, w;

	if (l->stanzas_per_second != 0 && c->tokens < 1 - 1e-9)
		wait = (1 - c->tokens) / l->stanzas_per_second;
	if (l->bytes_per_second != 0 && c->byte_tokens < -1e-6 &&
	    (w = -c->byte_tokens / (double)l->bytes_per_second) > wait)
		wait = w;
	return wait;
}

/* After a read: a stream that used more than its tokens of either bucket
 * stops being read until both allow it again. */
static void
bucket_check(struct c2s *c)
{
	const struct conf_limits *l = &xmppd_conf->limits;
	int stanzas = l->stanzas_per_second != 0 && c->tokens < 0;
	int bytes = l->bytes_per_second != 0 && c->byte_tokens < 0;
	double wait;

	if ((!stanzas && !bytes) || c->state == C2S_CLOSING ||
	    (c->conn->paused & CONN_PAUSE_RATE))
		return;
	wait = bucket_debt(c);
	c->throttled++;
	if (c->throttled == 1 && bytes)
		log_info("c2s %" PRIu64 " %s: over %zu bytes per second "
		    "(burst %zu): reading paused for %.2f s", c->id,
		    c->conn->addr, l->bytes_per_second, l->byte_burst, wait);
	else if (c->throttled == 1)
		log_info("c2s %" PRIu64 " %s: over %u stanzas per second "
		    "(burst %u): reading paused for %.2f s", c->id,
		    c->conn->addr, l->stanzas_per_second, l->stanza_burst,
		    wait);
	else
		log_debug("c2s %" PRIu64 " %s: %s rate: reading paused "
		    "for %.2f s", c->id, c->conn->addr,
		    bytes ? "byte" : "stanza", wait);
	conn_pause(c->conn, CONN_PAUSE_RATE);
	wait_add(c, mono_now(xmppd_loop) + wait);
}

/* The rate-limited stream may go on once both buckets allow it again;
 * returns when to look again, or 0. */
static double
bucket_wait(struct c2s *c, double now)
{
	double wait;

	bucket_refill(c, now);
	if ((wait = bucket_debt(c)) == 0) {
		conn_resume(c->conn, CONN_PAUSE_RATE);
		return 0;
	}
	return now + wait;
}

static void tarpit_answer(struct c2s *c);

static void
wait_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	double now = mono_now(l), next = 0;
	struct c2s *c, *n;

	for (c = wait_head; c; c = n) {
		double until = 0, t;

		n = c->wait_next;
		if (c->state != C2S_CLOSING && c->tarpit) {
			if (now + 1e-3 >= c->wait_until)
				tarpit_answer(c);
			else
				until = c->wait_until;
		}
		if (c->state != C2S_CLOSING &&
		    (c->conn->paused & CONN_PAUSE_RATE) &&
		    (t = bucket_wait(c, now)) != 0 && (until == 0 || t < until))
			until = t;
		if (until == 0)
			wait_remove(c);
		else if (next == 0 || until < next)
			next = until;
	}
	if (next != 0) {
		ev_timer_stop(l, &wait_w);
		ev_timer_set(&wait_w, next > now ? next - now : 0.001, 0.);
		ev_timer_start(l, &wait_w);
	}
}

static void
sasl_element(struct c2s *c, struct arena *a, const char *name,
    const char *cond)
{
	struct xel *e = xel_new(a, name, NS_SASL);

	if (cond)
		xel_add(e, cond, NS_SASL);
	c2s_send(c, e);
}

/*
 * The authentication tarpit: a failure past auth-failures-per-ip is
 * answered AUTH_TARPIT seconds later, reading paused meanwhile, so that
 * guessing from one address goes slowly without blocking anyone else.
 * cond is a string constant.
 */
static void
tarpit(struct c2s *c, const char *cond)
{
	c->tarpit = cond;
	c->wait_until = mono_now(xmppd_loop) + AUTH_TARPIT;
	conn_pause(c->conn, CONN_PAUSE_UPPER);
	wait_add(c, c->wait_until);
}

/*
 * A SASL failure in the framing of the exchange: RFC 6120 §6.4.5, or
 * XEP-0388 §2.6.2, whose <failure/> carries the RFC 6120 condition in
 * the legacy namespace, an application-specific element app (a copy of
 * it, or NULL) and a text (or NULL).
 */
static void
send_failure(struct c2s *c, const char *cond, const char *text,
    const struct xel *app)
{
	struct arena *a = arena_new(256);
	struct xel *e;

	if (!c->sasl2) {
		sasl_element(c, a, "failure", cond);
		arena_free(a);
		return;
	}
	e = xel_new(a, "failure", NS_SASL2);
	xel_add(e, cond, NS_SASL);
	if (app != NULL)
		xel_append_copy(e, app);
	if (text != NULL)
		xel_text_set(xel_add(e, "text", NS_SASL2), text);
	c2s_send(c, e);
	arena_free(a);
}

static void
tarpit_answer(struct c2s *c)
{
	const char *cond = c->tarpit;

	c->tarpit = NULL;
	send_failure(c, cond, NULL, NULL);
	if (c->auth_failures >= MAX_AUTH_ATTEMPTS) {
		c2s_stream_error(c, "policy-violation",
		    "Too many failed authentication attempts");
		return;
	}
	conn_resume(c->conn, CONN_PAUSE_UPPER);
}

/*
 * SASL2 (XEP-0388), with Bind 2 (XEP-0386), XEP-0198 resumption and
 * XEP-0484 FAST inline.  The mechanisms are sasl.c's, the same engine as
 * legacy SASL; what differs is the framing, what <authenticate/> may ask
 * for besides, and that the stream goes on without a restart.
 */

static int parse_h(const char *v, uint32_t *h);

static void
req_free(struct c2s *c)
{
	struct sasl2_req *q = c->req;

	if (q == NULL)
		return;
	free(q->agent);
	free(q->software);
	free(q->device);
	if (q->bind != NULL)
		arena_free(q->bind->arena);
	free(q->tag);
	free(q->previd);
	free(q->token_mech);
	free(q);
	c->req = NULL;
}

/* The text of el's child name (in el's namespace) if it has at most max
 * bytes: a copy, "" when absent; NULL when too long. */
static char *
bounded_child(const struct xel *el, const char *name, size_t max)
{
	const struct xel *ch = xel_child(el, name, el->ns);
	const char *t = ch != NULL ? xel_text(ch) : "";

	return strlen(t) <= max ? xstrdup(t) : NULL;
}

/* A user-agent id we keep: printable ASCII without spaces, bounded (it is
 * a UUID in XEP-0388 §2.3, "SHOULD"; stored and shown by xmppctl). */
static int
agent_ok(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > FAST_AGENT_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (id[i] <= ' ' || id[i] >= 0x7f)
			return 0;
	return 1;
}

/*
 * Read what <authenticate/> asks for besides the mechanism into a new
 * c->req; NULL, or the text of a <malformed-request/> (a constant).
 * Every part is bounded: the pre-auth stanza size bounds the element,
 * and what is kept is cut to the limits here.
 */
static const char *
parse_authenticate(struct c2s *c, const struct xel *st,
    const struct sasl_cb *cb)
{
	struct sasl2_req *q = xcalloc(1, sizeof(*q));
	const struct xel *ua, *b, *r, *rt, *f;
	const char *v;

	c->req = q;
	if ((ua = xel_child(st, "user-agent", NS_SASL2)) != NULL) {
		if ((v = xel_attr(ua, "id")) != NULL) {
			if (!agent_ok(v))
				return "A user-agent id is 1 to 64 printable "
				    "characters";
			q->agent = xstrdup(v);
		}
		q->software = bounded_child(ua, "software", FAST_TEXT_MAX);
		q->device = bounded_child(ua, "device", FAST_TEXT_MAX);
		if (q->software == NULL || q->device == NULL)
			return "<software/> and <device/> are at most 64 "
			    "bytes";
	} else {
		q->software = xstrdup("");
		q->device = xstrdup("");
	}
	if ((b = xel_child(st, "bind", NS_BIND2)) != NULL) {
		if ((q->tag = bounded_child(b, "tag", BIND2_TAG_MAX)) == NULL)
			return "A Bind 2 <tag/> is at most 64 bytes";
		q->bind = xel_copy_fit(b, 0);
	}
	if ((r = xel_child(st, "resume", NS_SM)) != NULL) {
		v = xel_attr(r, "previd");
		if (v == NULL || strlen(v) > 64 ||
		    parse_h(xel_attr(r, "h"), &q->h) < 0)
			return "<resume/> needs previd and h";
		q->resume = 1;
		q->previd = xstrdup(v);
	}
	if ((rt = xel_child(st, "request-token", NS_FAST)) != NULL) {
		v = xel_attr(rt, "mechanism");
		/* XEP-0484 §3.2: one of the mechanisms advertised. */
		if (!sasl_fast_offered(v, c->t.tls, cb))
			return "<request-token/> names no FAST mechanism "
			    "offered here";
		if (q->agent == NULL)
			return "A FAST token needs a <user-agent id/>";
		q->token_mech = xstrdup(v);
	}
	if ((f = xel_child(st, "fast", NS_FAST)) != NULL) {
		if ((v = xel_attr(f, "count")) != NULL) {
			if (parse_h(v, &q->fast.count) < 0)
				return "<fast count/> is a number";
			q->fast.has_count = 1;
		}
		v = xel_attr(f, "invalidate");
		q->fast.invalidate = v != NULL && (strcmp(v, "true") == 0 ||
		    strcmp(v, "1") == 0);
	}
	q->fast.agent = q->agent;
	return NULL;
}

/* Whether mech needs the channel-binding data itself (not only which
 * types exist): -PLUS, and the FAST mechanisms that bind. */
static int
needs_cb_data(const char *mech)
{
	size_t n = mech != NULL ? strlen(mech) : 0;

	return (n > 5 && strcmp(mech + n - 5, "-PLUS") == 0) ||
	    (mech != NULL && strncmp(mech, "HT-", 3) == 0 &&
		strcmp(mech, "HT-SHA-256-NONE") != 0);
}

/*
 * A new exchange (<auth/>, or SASL2's <authenticate/>) drops any earlier
 * one; -1 when this network has failed too often (RFC 6120 §6.5.12:
 * answered through the tarpit, and counted, so that going on leads to a
 * ban).
 */
static int
auth_begin(struct c2s *c, int sasl2)
{
	sasl_discard(c);
	req_free(c);
	c->sasl2 = sasl2;
	if (!auth_throttled(c))
		return 0;
	log_info("c2s %" PRIu64 " %s: too many authentication failures from "
	    "%s", c->id, c->conn->addr, c->client_net);
	auth_failed(c);
	tarpit(c, "temporary-auth-failure");
	return -1;
}

static void
handle_sasl2(struct c2s *c, struct xel *st)
{
	struct sasl_cb cb;
	const struct xel *ir;
	const char *mech, *data, *bad;

	if (strcmp(st->name, "authenticate") == 0) {
		if (auth_begin(c, 1) < 0)
			return;
		mech = xel_attr(st, "mechanism");
		channel_binding(c, &cb, needs_cb_data(mech));
		if ((bad = parse_authenticate(c, st, &cb)) != NULL) {
			req_free(c);
			send_failure(c, "malformed-request", bad, NULL);
			return;
		}
		/* §2.2, §2.3: the initial response is base64 in its own
		 * element, empty (or "=") for an empty one; without it the
		 * mechanism asks with an empty challenge. */
		ir = xel_child(st, "initial-response", NS_SASL2);
		data = ir == NULL ? "" : *xel_text(ir) != '\0' ?
		    xel_text(ir) : "=";
		c->sasl = sasl2_start(mech, data, c->t.tls, &cb, c->host,
		    c->id, &c->req->fast);
	} else if (strcmp(st->name, "response") == 0 && c->sasl &&
	    c->sasl2 && !sasl_done(c->sasl)) {
		sasl_response(c->sasl, xel_text(st));
	} else if (strcmp(st->name, "abort") == 0) {
		/* XEP-0388, "Aborting": the exchange ends, the stream
		 * stays as it was (§2.6.2). */
		sasl_discard(c);
		req_free(c);
		c->sasl2 = 1;
		send_failure(c, "aborted", NULL, NULL);
		return;
	} else {
		c->sasl2 = 1;
		send_failure(c, "malformed-request", c->sasl == NULL ?
		    "No authentication in progress" : NULL, NULL);
		return;
	}
	if (c->sasl && sasl_pending(c->sasl))
		conn_pause(c->conn, CONN_PAUSE_UPPER);  /* until storage or
		                                            hashing answers */
}

/*
 * XEP-0386 §3.2.1: the resource is the client's tag, then '.' and a
 * part the server makes.  That part is stable for a client (XEP-0386
 * allows it, "SHOULD remain stable for every bind request with the same
 * <tag/> and SASL2 <user-agent> id"): the first bytes of SHA-256 over
 * the account and the user-agent id, which it does not reveal (the id
 * "MUST NOT be exposed").  So a device that reconnects gets its old
 * resource back, and sm_bind ends a session it left behind with
 * <conflict/> ("SHOULD terminate any earlier sessions from the same
 * client").  Without an id the part is random.  Malloc'ed, prepared;
 * NULL if nothing can be made a resource of the tag.
 */
static char *
bind2_resource(const struct c2s *c, const struct sasl2_req *q)
{
	char part[2 * BIND2_HASH_BYTES + 1], *raw, *res;

	if (q->agent != NULL) {
		unsigned char d[SCRAM_MAX_HASH];
		char *in = xasprintf("%s@%s", c->user, c->host);
		size_t il = strlen(in), al = strlen(q->agent);
		char *msg = xmalloc(il + 1 + al);

		memcpy(msg, in, il + 1);        /* the NUL separates */
		memcpy(msg + il + 1, q->agent, al);
		scram_h(SCRAM_SHA256, msg, il + 1 + al, d);
		for (size_t i = 0; i < BIND2_HASH_BYTES; i++) {
			part[2 * i] = "0123456789abcdef"[d[i] >> 4];
			part[2 * i + 1] = "0123456789abcdef"[d[i] & 15];
		}
		part[2 * BIND2_HASH_BYTES] = '\0';
		free(in);
		free(msg);
	} else
		scram_random_hex(part, BIND2_HASH_BYTES);
	raw = q->tag != NULL && *q->tag != '\0' ?
	    xasprintf("%s.%s", q->tag, part) : xstrdup(part);
	if ((res = jid_resourceprep(raw)) == NULL)
		res = jid_resourceprep(part);     /* a tag that cannot be */
	free(raw);
	return res;
}

/* <failed xmlns='urn:xmpp:sm:3'> with a stanza error condition, in
 * parent (XEP-0198 §6; inside <success/> for an inline resumption). */
static void
add_sm_failed(struct xel *parent, const char *cond)
{
	struct xel *f = xel_add(parent, "failed", NS_SM);

	xel_add(f, cond, "urn:ietf:params:xml:ns:xmpp-stanzas");
}

/* XEP-0386 §3.2: bind a resource for the request q; NULL when the
 * account has sessions-per-user sessions already. */
static struct session *
bind2(struct c2s *c, const struct sasl2_req *q)
{
	char *res = bind2_resource(c, q), *full;
	struct jid j = { 0 };
	struct session *s = NULL;

	full = res ? xasprintf("%s@%s/%s", c->user, c->host, res) : NULL;
	if (full != NULL && jid_parse(&j, full) == 0)
		s = sm_bind(&c->t, &j, xmppd_conf->limits.sessions_per_user);
	jid_free(&j);
	free(full);
	free(res);
	return s;
}

/* The features requested inside <bind/> (§3.2): stream management and
 * client state here, the rest by the modules (carbons); answers go into
 * bound. */
static void
bind2_inline(struct c2s *c, struct session *s, const struct xel *b,
    struct xel *bound)
{
	for (const struct xel *e = xel_first_elem(b); e != NULL;
	     e = xel_next(e, NULL, NULL)) {
		if (xel_is(e, "tag", NS_BIND2))
			continue;
		/* XEP-0352 inline: the session starts inactive (a phone
		 * reconnecting in the background); nothing is answered. */
		if (xel_is(e, "inactive", NS_CSI) ||
		    xel_is(e, "active", NS_CSI)) {
			session_set_inactive(s, xel_is(e, "inactive", NS_CSI));
			continue;
		}
		if (xel_is(e, "enable", NS_SM)) {
			const char *r = xel_attr(e, "resume"), *id = NULL;
			unsigned max = 0;
			struct xel *en;
			char num[16];

			if (smacks_enable(s, r != NULL && (strcmp(r, "true") ==
			    0 || strcmp(r, "1") == 0), &id, &max) < 0) {
				add_sm_failed(bound, "unexpected-request");
				continue;
			}
			en = xel_add(bound, "enabled", NS_SM);
			if (id != NULL) {
				snprintf(num, sizeof(num), "%u", max);
				xel_set_attr(en, "id", id);
				xel_set_attr(en, "resume", "true");
				xel_set_attr(en, "max", num);
			}
			continue;
		}
		if (hook_run_bind2(s, e, bound) != HOOK_HANDLED)
			log_debug("c2s %" PRIu64 " %s: Bind 2: <%s xmlns='%s'/> "
			    "ignored", c->id, c->conn->addr, e->name, e->ns);
	}
}

/* XEP-0082 DateTime of a unix time. */
static void
datetime(int64_t t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * XEP-0484 §3.3: a new token for this client, into its "new" slot (only
 * its hash is stored); <token/> goes into success.  A store write that
 * fails costs the client its next token login, nothing more: it falls
 * back to its password.
 */
static void
fast_issue(struct c2s *c, const struct sasl2_req *q, const char *mech,
    struct xel *success)
{
	char tok[HT_TOKEN_LEN + 1], when[32];
	struct store_fast_token t = { 0 };
	struct xel *e;
	int64_t now = (int64_t)time(NULL);

	ht_token_new(tok);
	ht_token_hash(tok, t.hash);
	ht_seal(t.hash, store_fast_key(), c->user, c->host, q->agent);
	t.agent = q->agent;
	t.software = q->software;
	t.device = q->device;
	t.mechanism = mech;
	t.created = now;
	t.expiry = now + xmppd_conf->limits.fast_token_lifetime;
	store_fast_issue(c->host, c->user, &t);
	datetime(t.expiry, when, sizeof(when));
	e = xel_add(success, "token", NS_FAST);
	xel_set_attr(e, "expiry", when);
	xel_set_attr(e, "token", tok);
	explicit_bzero(tok, sizeof(tok));
	log_info("c2s %" PRIu64 " %s: %s@%s: FAST token issued (%s, expires "
	    "%s)", c->id, c->conn->addr, c->user, c->host, mech, when);
}

static void
authenticated(struct c2s *c, const char *mechanism)
{
	c->t.authed = 1;
	preauth_release(c);
	log_info("c2s %" PRIu64 " %s: authenticated as %s@%s (%s)", c->id,
	    c->conn->addr, c->user, c->host, mechanism);
	conn_set_timeout(c->conn, 0, NULL);
	conn_set_idle(c->conn, xmppd_conf->limits.idle_timeout);
}

/*
 * XEP-0388 §2.6.1: the mechanism succeeded.  Inline requests are done in
 * the order XEP-0386 §3.2 gives: a resumption first (its <resumed/> in
 * the <success/>; a failed one says <failed/> there and binding goes
 * on), then Bind 2 with the features it enables (<bound/>), then a FAST
 * token.  <success/> names the full JID when a resource is bound, else
 * the bare one, and stream features follow it: there is no restart.
 */
static void
sasl2_success(struct c2s *c, const struct sasl_reply *r)
{
	struct sasl2_req *q = c->req != NULL ? c->req :
	    (c->req = xcalloc(1, sizeof(*c->req)));
	struct arena *a = arena_new(1024);
	struct xel *succ = xel_new(a, "success", NS_SASL2), *bound = NULL;
	struct session *s = NULL, *resumed = NULL;
	const struct conf_limits *l = &xmppd_conf->limits;
	struct xml_limits lim = { l->stanza_size, l->depth, l->attributes,
		l->stanza_memory };
	char *bare;

	c->user = xstrdup(r->user);
	bare = xasprintf("%s@%s", c->user, c->host);
	snprintf(c->auth, sizeof(c->auth), "SASL2 %s%s", r->mechanism,
	    r->fast ? " FAST" : "");
	if (r->data)
		xel_text_set(xel_add(succ, "additional-data", NULL), r->data);
	if (q->resume) {
		s = smacks_find(q->previd, bare);
		if (s != NULL && smacks_can_resume(s, q->h))
			resumed = s;
		else {
			log_info("c2s %" PRIu64 " %s: %s: no session to resume "
			    "inline (%s)", c->id, c->conn->addr, bare,
			    s ? "count too high" : "unknown or expired id");
			s = NULL;
		}
	}
	if (resumed == NULL && q->bind != NULL) {
		bound = xel_new(a, "bound", NS_BIND2);
		if ((s = bind2(c, q)) == NULL) {
			/* Like RFC 6120 §7.6.2.1 for legacy binding: the
			 * stream stays unauthenticated (§2.6.2). */
			struct xel *rc = xel_new(a, "resource-constraint",
			    "urn:ietf:params:xml:ns:xmpp-stanzas");

			log_info("c2s %" PRIu64 " %s: %s has %u sessions "
			    "(sessions-per-user): Bind 2 refused", c->id,
			    c->conn->addr, bare, l->sessions_per_user);
			free(c->user);
			c->user = NULL;
			c->auth[0] = '\0';
			send_failure(c, "temporary-auth-failure",
			    "Too many sessions for this account", rc);
			goto out;
		}
		snprintf(s->auth, sizeof(s->auth), "%s", c->auth);
		bind2_inline(c, s, q->bind, bound);
	}
	xel_text_set(xel_add(succ, "authorization-identifier", NULL),
	    s != NULL ? s->full : bare);
	if (resumed != NULL) {
		struct xel *e = xel_add(succ, "resumed", NS_SM);
		char num[16];

		snprintf(num, sizeof(num), "%" PRIu32,
		    smacks_handled_count(resumed));
		xel_set_attr(e, "previd", q->previd);
		xel_set_attr(e, "h", num);
	} else if (q->resume)
		add_sm_failed(succ, "item-not-found");
	if (bound != NULL)
		xel_append_copy(succ, bound);
	if (q->token_mech != NULL || (r->fast && r->fast_rotate))
		fast_issue(c, q, q->token_mech ? q->token_mech :
		    r->fast_mechanism, succ);
	c2s_send(c, succ);
	authenticated(c, c->auth + 6);
	xml_stream_set_limits(c->xs, &lim);
	if (resumed != NULL) {
		set_state(c, C2S_ACTIVE);
		/* Attached after the features: what it holds unacknowledged
		 * goes out after them. */
		send_features(c, resumed);
		snprintf(resumed->auth, sizeof(resumed->auth), "%s", c->auth);
		smacks_resume(resumed, &c->t, q->h, 0);
	} else {
		if (s != NULL)
			set_state(c, C2S_ACTIVE);
		send_features(c, s);
		if (s != NULL) {
			log_info("c2s %" PRIu64 " %s: bound %s (Bind 2, %s %s)",
			    c->id, c->conn->addr, s->full,
			    conn_tls_version(c->conn), conn_tls_cipher(c->conn));
			hook_run_session(HOOK_SESSION_BOUND, s);
		}
	}
out:
	free(bare);
	req_free(c);
	arena_free(a);
}

static void
handle_sasl(struct c2s *c, struct xel *st)
{
	struct sasl_cb cb;
	const char *mech;
	struct arena *a = st->arena;

	if (strcmp(st->name, "auth") == 0) {
		if (auth_begin(c, 0) < 0)
			return;
		mech = xel_attr(st, "mechanism");
		channel_binding(c, &cb, needs_cb_data(mech));
		c->sasl = sasl_start(mech, xel_text(st),
		    c->t.tls, &cb, c->host, c->id);
	} else if (strcmp(st->name, "response") == 0 && c->sasl &&
	    !c->sasl2 && !sasl_done(c->sasl)) {
		sasl_response(c->sasl, xel_text(st));
	} else if (strcmp(st->name, "abort") == 0) {
		sasl_discard(c);
		c->sasl2 = 0;
		sasl_element(c, a, "failure", "aborted");
		return;
	} else {
		sasl_element(c, a, "failure", "malformed-request");
		return;
	}
	if (c->sasl && sasl_pending(c->sasl))
		conn_pause(c->conn, CONN_PAUSE_UPPER);  /* until storage or
		                                            hashing answers */
}

/*
 * Log a SASL failure.  A wrong password or proof, or a name that cannot
 * be an account (what throttling counts, and all that contrib/fail2ban
 * matches), is logged at info in one stable format:
 *
 *     c2s ID ADDR: authentication failed for JID from IP (MECH, CONDITION)
 *
 * JID is the name tried as sasl.c's log_name shows it (one bounded word
 * without spaces or control characters, whatever the client sent) at the
 * stream's domain; the password never appears.  A refusal that may be an
 * attack (RFC 5802 §6) and one that names an account (a disabled one,
 * say) are at info too, in other words; the rest at debug.
 */
static void
log_sasl_failure(struct c2s *c, const struct sasl_reply *r)
{
	const char *mech = r->mechanism ? r->mechanism : "-";
	char *jid = xasprintf("%s@%s", r->name ? r->name : "-", c->host);

	if (r->bad_credentials) {
		log_info("c2s %" PRIu64 " %s: authentication failed for %s "
		    "from %s (%s, %s)", c->id, c->conn->addr, jid,
		    c->client_ip, mech, r->condition);
		hook_run_auth_failure(jid, c->client_ip, mech, r->condition);
	} else if (r->suspicious)
		log_info("c2s %" PRIu64 " %s: SASL refused for %s from %s "
		    "(%s, %s): %s", c->id, c->conn->addr, jid, c->client_ip,
		    mech, r->condition, r->why);
	else if (r->name != NULL && r->why == NULL)
		log_info("c2s %" PRIu64 " %s: login refused for %s from %s "
		    "(%s, %s)", c->id, c->conn->addr, jid, c->client_ip, mech,
		    r->condition);
	else
		log_debug("c2s %" PRIu64 " %s: SASL failure for %s from %s "
		    "(%s, %s)%s%s", c->id, c->conn->addr, jid, c->client_ip,
		    mech, r->condition, r->why ? ": " : "",
		    r->why ? r->why : "");
	free(jid);
}

static void
c2s_sasl_reply(uint64_t owner, const struct sasl_reply *r)
{
	struct c2s *c = of_transport(transport_find(owner));
	struct arena *a;
	struct xel *e;

	if (c == NULL || c->state == C2S_CLOSING)
		return;
	a = arena_new(512);
	switch (r->kind) {
	case SASL_CHALLENGE:
		e = xel_new(a, "challenge", c->sasl2 ? NS_SASL2 : NS_SASL);
		if (r->data)
			xel_text_set(e, r->data);
		c2s_send(c, e);
		break;
	case SASL_FAILURE:
		log_sasl_failure(c, r);
		if (r->cb_unmatched)
			c->cb_unmatched = 1;
		sasl_discard(c);
		req_free(c);
		if (r->bad_credentials && auth_failed(c)) {
			tarpit(c, r->condition);
			break;
		}
		send_failure(c, r->condition, r->text, NULL);
		if (c->auth_failures >= MAX_AUTH_ATTEMPTS) {
			arena_free(a);
			c2s_stream_error(c, "policy-violation",
			    "Too many failed authentication attempts");
			return;
		}
		break;
	case SASL_SUCCESS:
		if (c->sasl2) {
			sasl_discard(c);
			sasl2_success(c, r);
			break;
		}
		e = xel_new(a, "success", NS_SASL);
		if (r->data)
			xel_text_set(e, r->data);
		c2s_send(c, e);
		c->user = xstrdup(r->user);
		snprintf(c->auth, sizeof(c->auth), "SASL1 %s", r->mechanism);
		sasl_discard(c);
		authenticated(c, r->mechanism);
		/* RFC 6120 §6.4.6: the stream restarts; a fresh parser. */
		if (c->in_feed)
			c->restart = 1;
		else
			new_parser(c);
		break;
	}
	arena_free(a);
	/* Reading was paused while storage or hashing worked; inside a
	 * feed, on_data resumes it.  A tarpitted failure resumes it when it
	 * is answered. */
	if (!c->in_feed && c->tarpit == NULL)
		conn_resume(c->conn, CONN_PAUSE_UPPER);
}

static void
handle_bind(struct c2s *c, struct xel *iq)
{
	struct xel *b = xel_child(iq, "bind", NS_BIND), *r, *res;
	const char *want = NULL;
	char *prepped = NULL, *full;
	char gen[17];
	struct jid j = { 0 };
	struct session *s;

	if ((res = xel_child(b, "resource", NS_BIND)) != NULL &&
	    *xel_text(res) != '\0')
		want = xel_text(res);
	if (want == NULL) {
		/* RFC 6120 §7.6: the server generates a resource. */
		scram_random_hex(gen, 8);
		want = gen;
	}
	prepped = jid_resourceprep(want);
	full = prepped ? xasprintf("%s@%s/%s", c->user, c->host, prepped) :
	    NULL;
	if (full == NULL || jid_parse(&j, full) < 0) {
		r = stanza_error(iq, "modify", "bad-request", NULL);
		goto reply;
	}
	s = sm_bind(&c->t, &j, xmppd_conf->limits.sessions_per_user);
	if (s == NULL) {
		/* §7.6.2.1: too many sessions for this account. */
		log_info("c2s %" PRIu64 " %s: %s@%s has %u sessions "
		    "(sessions-per-user): bind refused", c->id, c->conn->addr,
		    c->user, c->host, xmppd_conf->limits.sessions_per_user);
		r = stanza_error(iq, "wait", "resource-constraint", NULL);
		goto reply;
	}
	set_state(c, C2S_ACTIVE);
	snprintf(s->auth, sizeof(s->auth), "%s", c->auth);
	log_info("c2s %" PRIu64 " %s: bound %s (%s %s)", c->id, c->conn->addr,
	    s->full, conn_tls_version(c->conn), conn_tls_cipher(c->conn));
	r = stanza_iq_result(iq);
	xel_text_set(xel_add(xel_add(r, "bind", NS_BIND), "jid", NULL),
	    s->full);
reply:
	if (r) {
		c2s_send(c, r);
		arena_free(r->arena);
	}
	if (c->t.session)
		hook_run_session(HOOK_SESSION_BOUND, c->t.session);
	jid_free(&j);
	free(prepped);
	free(full);
}

static int
is_bind_request(const struct xel *st)
{
	const char *type = xel_attr(st, "type");

	return xel_is(st, "iq", NS_CLIENT) && type &&
	    strcmp(type, "set") == 0 && xel_attr(st, "id") &&
	    xel_count_elems(st) == 1 && xel_child(st, "bind", NS_BIND);
}

/*
 * XEP-0198 stream management: the nonzas of urn:xmpp:sm:3 that reach the
 * stream; the state and the counting are the session's (smacks.c).
 */

/* h is a decimal count modulo 2^32 (XEP-0198 §4, xs:unsignedInt). */
static int
parse_h(const char *v, uint32_t *h)
{
	uint64_t n = 0;

	if (v == NULL || *v == '\0' || strlen(v) > 10)
		return -1;
	for (; *v != '\0'; v++) {
		if (*v < '0' || *v > '9')
			return -1;
		n = n * 10 + (uint64_t)(*v - '0');
	}
	if (n > UINT32_MAX)
		return -1;
	*h = (uint32_t)n;
	return 0;
}

/* <failed/> with a stanza error condition (§6). */
static void
sm_failed(struct c2s *c, const char *cond)
{
	char b[160];
	int n = snprintf(b, sizeof(b), "<failed xmlns='" NS_SM "'><%s "
	    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>", cond);

	send_raw(c, b, (size_t)n);
}

/* A client acknowledged more than was sent: §4 (1.6) makes it the
 * <undefined-condition/> stream error with <handled-count-too-high/>. */
static void
sm_count_too_high(struct c2s *c, uint32_t h, uint32_t max)
{
	struct arena *a = arena_new(256);
	struct xel *e = xel_new(a, "handled-count-too-high", NS_SM);
	char hs[16], ms[16], text[96];

	snprintf(hs, sizeof(hs), "%" PRIu32, h);
	snprintf(ms, sizeof(ms), "%" PRIu32, max);
	xel_set_attr(e, "h", hs);
	xel_set_attr(e, "max", ms);
	snprintf(text, sizeof(text), "You acknowledged %" PRIu32 " stanzas "
	    "but %" PRIu32 " were sent", h, max);
	stream_error_app(c, "undefined-condition", NULL, text, e);
	arena_free(a);
}

static void
sm_enable(struct c2s *c, struct session *s, const struct xel *st)
{
	const char *r = xel_attr(st, "resume"), *id = NULL;
	int resume = r != NULL && (strcmp(r, "true") == 0 ||
	    strcmp(r, "1") == 0);
	unsigned max = 0;
	struct buf b = BUF_INIT;

	if (smacks_enable(s, resume, &id, &max) < 0) {
		/* §3: "a client SHALL only make at most one attempt to
		 * enable stream management"; a second one ends the
		 * stream. */
		c2s_stream_error(c, "policy-violation",
		    "Stream management is already enabled");
		return;
	}
	buf_printf(&b, "<enabled xmlns='" NS_SM "'");
	if (id != NULL)
		buf_printf(&b, " id='%s' resume='true' max='%u'", id, max);
	buf_adds(&b, "/>");
	send_raw(c, buf_head(&b), buf_avail(&b));
	buf_free(&b);
	log_info("c2s %" PRIu64 " %s: %s: stream management on%s", c->id,
	    c->conn->addr, s->full, id != NULL ? ", resumable" : "");
}

/* A nonza of stream management in a bound session. */
static void
sm_active(struct c2s *c, struct session *s, const struct xel *st)
{
	uint32_t h;

	if (strcmp(st->name, "enable") == 0) {
		sm_enable(c, s, st);
		return;
	}
	if (strcmp(st->name, "resume") == 0) {
		/* §5: resumption replaces binding; this stream is bound. */
		sm_failed(c, "unexpected-request");
		return;
	}
	if (!smacks_on(s) || (strcmp(st->name, "r") != 0 &&
	    strcmp(st->name, "a") != 0)) {
		c2s_stream_error(c, "unsupported-stanza-type", smacks_on(s) ?
		    NULL : "Stream management is not enabled");
		return;
	}
	if (strcmp(st->name, "r") == 0) {
		smacks_request(s);
		return;
	}
	if (parse_h(xel_attr(st, "h"), &h) < 0) {
		c2s_stream_error(c, "bad-format",
		    "'h' must be a count from 0 to 4294967295");
		return;
	}
	if (smacks_ack(s, h) < 0)
		sm_count_too_high(c, h, smacks_sent_count(s));
}

/* §5: <resume/> in place of binding, on an authenticated stream. */
static void
sm_resume(struct c2s *c, const struct xel *st)
{
	const char *previd = xel_attr(st, "previd");
	char bare[2 * 1024 + 2];
	struct session *s;
	uint32_t h;

	if (previd == NULL || parse_h(xel_attr(st, "h"), &h) < 0) {
		sm_failed(c, "bad-request");
		return;
	}
	snprintf(bare, sizeof(bare), "%s@%s", c->user, c->host);
	/* An id of another account is not found, never named. */
	if ((s = smacks_find(previd, bare)) == NULL) {
		log_info("c2s %" PRIu64 " %s: %s: no session to resume "
		    "(unknown or expired id)", c->id, c->conn->addr, bare);
		sm_failed(c, "item-not-found");
		return;
	}
	if (smacks_resume(s, &c->t, h, 1) < 0) {
		sm_count_too_high(c, h, smacks_sent_count(s));
		return;
	}
	snprintf(s->auth, sizeof(s->auth), "%s", c->auth);
	set_state(c, C2S_ACTIVE);
}

/* Everything before the session is bound. */
static void
negotiate(struct c2s *c, struct xel *st)
{
	if ((c->sasl && sasl_pending(c->sasl)) || c->tarpit) {
		c2s_stream_error(c, "policy-violation",
		    "Data sent during authentication");
		return;
	}
	if (c->sasl && c->sasl2 && !sasl_done(c->sasl) &&
	    strcmp(st->ns, NS_SASL2) != 0) {
		/* XEP-0388 §2.4: during an exchange only <response/> and
		 * <abort/>; "Servers MUST disconnect Clients immediately if
		 * any other traffic is received". */
		c2s_stream_error(c, "policy-violation",
		    "Only <response/> or <abort/> during SASL2");
		return;
	}
	if (!c->t.authed && xel_is(st, "starttls", NS_TLS)) {
		if (framed(c)) {
			c2s_stream_error(c, "policy-violation",
			    "No STARTTLS over WebSocket or BOSH");
			return;
		}
		if (c->t.tls) {
			c2s_stream_error(c, "policy-violation",
			    "TLS is already established");
			return;
		}
		/* RFC 6120 §5.4.3.3: <proceed/>, then TLS.  Bytes that came
		 * with <starttls/> are discarded with the parser. */
		conn_write(c->conn, "<proceed xmlns='" NS_TLS "'/>",
		    sizeof("<proceed xmlns='" NS_TLS "'/>") - 1);
		conn_starttls(c->conn);
		c->restart = 1;
		return;
	}
	if (!c->t.authed && !c->t.tls && c->conn->starttls_required) {
		/* RFC 6120 §5.3.1: TLS is mandatory here. */
		c2s_stream_error(c, strcmp(st->ns, NS_SASL) == 0 ?
		    "policy-violation" : "not-authorized",
		    "Use STARTTLS first");
		return;
	}
	if (!c->t.authed) {
		if (strcmp(st->ns, NS_SASL) == 0)
			handle_sasl(c, st);
		else if (strcmp(st->ns, NS_SASL2) == 0)
			handle_sasl2(c, st);
		else if (!(xel_is(st, "iq", NS_CLIENT) &&
			     hook_run_preauth_iq(&c->t, st) == HOOK_HANDLED))
			c2s_stream_error(c, "not-authorized", NULL);
		return;
	}
	if (is_bind_request(st))
		handle_bind(c, st);
	else if (xel_is(st, "resume", NS_SM))
		sm_resume(c, st);
	else if (xel_is(st, "enable", NS_SM))
		/* §3: enabling comes after binding. */
		sm_failed(c, "unexpected-request");
	else
		c2s_stream_error(c, "not-authorized", "Bind a resource first");
}

/* XEP-0352 §3: <active/> or <inactive/>; nothing is answered.  Anything
 * else in the namespace is no stanza (RFC 6120 §4.9.3.24). */
static void
csi_nonza(struct c2s *c, struct session *s, const struct xel *st)
{
	if (xel_is(st, "active", NS_CSI))
		session_set_inactive(s, 0);
	else if (xel_is(st, "inactive", NS_CSI))
		session_set_inactive(s, 1);
	else
		c2s_stream_error(c, "unsupported-stanza-type", NULL);
}

/* A stanza, parsed now or replayed after a hold; returns whether the
 * parser is to stop (xml_stream_cb.on_stanza). */
static int
handle_stanza(struct c2s *c, struct xel *st)
{
	if (c->held && c->state == C2S_ACTIVE) {
		/* Kept in order until c2s_release (the arena moves into the
		 * queue).  Reading is paused, so only what one read brought
		 * can pile up here. */
		if (c->nqueue == MAX_HELD) {
			arena_free(st->arena);
			c2s_stream_error(c, "policy-violation",
			    "Too many stanzas while the session loads");
			return 1;
		}
		c->queue = xreallocarray(c->queue, c->nqueue + 1,
		    sizeof(*c->queue));
		c->queue[c->nqueue++] = st;
		return 0;
	}
	if (c->state == C2S_ACTIVE && c->t.session) {
		c->t.session->last_active = ev_now(xmppd_loop);
		/* RFC 6120 §4.9.3.24: a first-level element that is no
		 * stanza (an unknown name or namespace: a nonza of an
		 * extension not offered here, XEP-0198's <enable/>,
		 * XEP-0138's <compress/>) ends the stream with
		 * <unsupported-stanza-type/>, the condition defined for
		 * exactly this, rather than being dropped: a client that
		 * waits for its answer learns at once (xmppd(8), STREAM
		 * ERRORS). */
		if (strcmp(st->ns, NS_SM) == 0)
			sm_active(c, c->t.session, st);
		else if (strcmp(st->ns, NS_CSI) == 0)
			csi_nonza(c, c->t.session, st);
		else if (router_from_client(c->t.session, st) < 0)
			c2s_stream_error(c, "unsupported-stanza-type", NULL);
		else if (c->t.session != NULL)
			smacks_handled(c->t.session);     /* XEP-0198 §4 */
	} else if (c->state == C2S_NEGOTIATING)
		negotiate(c, st);
	arena_free(st->arena);
	return c->restart || c->state == C2S_CLOSING;
}

static void on_xml_close(void *ctx);

/*
 * The peer ended its stream with a <stream:error/> (RFC 6120 §4.9.1.1:
 * a stream error is unrecoverable).  Its condition is logged, and our
 * side is closed with the closing tag alone, as for </stream:stream>
 * (§4.4): an error of our own about its error would only be an echo.
 * Stanzas held while the session loads are dropped, as on a close.
 */
static void
on_peer_error(struct c2s *c, const struct xel *err)
{
	const struct xel *e;
	const char *cond = "(none)";

	for (e = xel_first_elem(err); e != NULL; e = xel_next(e, NULL, NULL))
		if (strcmp(e->ns, NS_STREAM_ERR) == 0 &&
		    strcmp(e->name, "text") != 0) {
			cond = e->name;
			break;
		}
	log_info("c2s %" PRIu64 " %s: stream error from the peer: <%.64s/>",
	    c->id, c->conn->addr, cond);
	if (c->t.session)
		sm_set_end_reason(c->t.session, "stream error from the client");
	on_xml_close(c);
}

static int ws_element(struct c2s *c, struct xel *st);

static int
on_stanza(void *ctx, struct xel *st)
{
	struct c2s *c = ctx;
	int r;

	bucket_take(c);
	if (framed(c) && (r = ws_element(c, st)) >= 0)
		return r;
	if (xel_is(st, "error", NS_STREAMS)) {
		on_peer_error(c, st);
		arena_free(st->arena);
		return 1;
	}
	return handle_stanza(c, st);
}

static void
on_xml_close(void *ctx)
{
	struct c2s *c = ctx;

	if (c->state == C2S_CLOSING)
		return;
	/* RFC 6120 §4.4: answer the close and end the connection.  What
	 * follows the peer's closing tag is never read (on_data). */
	if (!c->header_sent)
		send_header(c, NULL);
	set_closing(c);
	close_session(c);
	end_stream(c);
}

const struct xml_stream_cb c2s_xml_cb = {
	.on_open = on_open,
	.on_stanza = on_stanza,
	.on_close = on_xml_close,
};

/* Feed input to the parser and act on how it ended. */
static enum xml_status
feed(struct c2s *c, const char *data, size_t len)
{
	enum xml_status st;

	bytes_take(c, len);
	c->in_feed = 1;
	st = xml_stream_feed(c->xs, data, len);
	c->in_feed = 0;
	switch (st) {
	case XMLS_ERROR:
		c2s_stream_error(c, xml_error_condition(
		    xml_stream_error(c->xs)), xml_stream_error_text(c->xs));
		break;
	case XMLS_CLOSED:
		on_xml_close(c);
		break;
	case XMLS_STOPPED:
	case XMLS_OK:
		if (c->restart && c->state != C2S_CLOSING) {
			new_parser(c);
			conn_resume(c->conn, CONN_PAUSE_UPPER);
		}
		break;
	}
	return st;
}

static void
on_data(struct conn *conn, const char *data, size_t len)
{
	struct c2s *c = conn->upper;

	if (c->state == C2S_CLOSING)
		return;
	feed(c, data, len);
	bucket_check(c);
}

static void
on_tls(struct conn *conn)
{
	struct c2s *c = conn->upper;
	double left = c->preauth_deadline - mono_now(xmppd_loop);

	c->t.tls = 1;
	conn_set_timeout(conn, left > 0 ? left : 0.001,
	    "authentication timeout");
}

/*
 * A new connection, refused while its address is banned.  Where its
 * address already has preauth-connections-per-ip connections that have
 * not authenticated, one of those is closed to make room (preauth_evict;
 * more than one if a reload lowered the limit).
 */
static struct c2s *
c2s_new(struct conn *conn, struct ws *ws, const char *client_ip, int bosh,
    int tls)
{
	const struct conf_limits *l = &xmppd_conf->limits;
	unsigned limit = l->preauth_connections_per_ip;
	char net[NETKEY_LEN];
	struct ip_state *st;
	double now = mono_now(xmppd_loop);
	struct c2s *c;

	/* Behind a trusted proxy (an HTTP request's client) the limits
	 * count the client, not the proxy. */
	if (client_ip != NULL && strcmp(client_ip, conn->ip) != 0)
		netkey_of(client_ip, l->ipv4_prefix, l->ipv6_prefix, net,
		    sizeof(net));
	else {
		client_ip = conn->ip;
		snprintf(net, sizeof(net), "%s", conn->net);
	}
	st = ip_state(net, 0);

	if (ip_banned(st, now)) {
		/* One line per ban at info; purge_cb reports the total. */
		if (st->refused++ == 0)
			log_info("c2s %" PRIu64 " %s: refused: %s banned "
			    "for %.0f s more after authentication failures",
			    conn->id, conn->addr, net,
			    st->banned_until - now);
		else
			log_debug("c2s %" PRIu64 " %s: refused: %s banned",
			    conn->id, conn->addr, net);
		return NULL;
	}
	while (limit != 0 && st != NULL && st->preauth >= limit &&
	    st->first != NULL)
		preauth_evict(st, conn->id, limit);
	c = xcalloc(1, sizeof(*c));
	c->id = conn->id;
	c->conn = conn;
	c->ws = ws;
	c->bosh = bosh;
	c->t.ops = bosh ? &bosh_transport_ops : ws != NULL ?
	    &ws_transport_ops : &c2s_transport_ops;
	/* A WebSocket arrives with its TLS (https) done, or none; a BOSH
	 * session over the https listener it was created on. */
	c->t.tls = bosh ? tls : ws != NULL && conn->ssl != NULL;
	snprintf(c->client_ip, sizeof(c->client_ip), "%s", client_ip);
	snprintf(c->client_net, sizeof(c->client_net), "%s", net);
	c->t.id = conn->id;
	c->t.ip = c->client_ip;
	c->t.net = c->client_net;
	c->t.addr = conn->addr;
	c->accepted_at = now;
	preauth_count(c, ip_state(c->client_net, 1));
	c->tokens = l->stanza_burst;
	c->byte_tokens = (double)l->byte_burst;
	c->bucket_at = now;
	new_parser(c);
	c->preauth_deadline = mono_now(xmppd_loop) +
	    xmppd_conf->limits.preauth_timeout;
	conn_set_timeout(conn, xmppd_conf->limits.preauth_timeout,
	    "authentication timeout");
	c->next = all;
	if (all)
		all->prev = c;
	all = c;
	nall++;
	transport_register(&c->t);
	return c;
}

static void *
on_accept(struct conn *conn)
{
	return c2s_new(conn, NULL, NULL, 0, 0);
}

static void
c2s_free(struct c2s *c)
{
	struct conn *conn = c->conn;

	for (size_t i = 0; i < c->nqueue; i++)
		arena_free(c->queue[i]->arena);
	free(c->queue);
	lose_session(c);
	sasl_discard(c);
	wait_remove(c);
	preauth_release(c);
	if (c->throttled > 1)
		log_info("c2s %" PRIu64 " %s: reading was paused %u times by "
		    "the rate limits", c->id, conn->addr, c->throttled);
	if (c->xs)
		xml_stream_free(c->xs);
	if (c->prev)
		c->prev->next = c->next;
	else
		all = c->next;
	if (c->next)
		c->next->prev = c->prev;
	nall--;
	transport_unregister(&c->t);
	req_free(c);
	free(c->host);
	free(c->user);
	free(c);
}

static void
on_close(struct conn *conn)
{
	c2s_free(conn->upper);
}

/*
 * The connection's deadline passed while it is open: the only one this
 * file sets is preauth-timeout (SASL success clears it), so the client
 * is told with <connection-timeout/> (RFC 6120 §4.9.3.4) before the
 * close rather than cut off without a word.
 */
static void
on_timeout(struct conn *conn, const char *reason)
{
	c2s_stream_error(conn->upper, "connection-timeout",
	    "Not authenticated within the time allowed");
}

const struct conn_handler c2s_conn_handler = {
	.on_data = on_data,
	.on_tls = on_tls,
	.on_close = on_close,
	.on_accept = on_accept,
	.on_timeout = on_timeout,
	.gated = 1,
};

void
c2s_shutdown_all(void)
{
	for (struct c2s *c = all; c; c = c->next)
		c2s_stream_error(c, "system-shutdown", NULL);
}

/* Idle streams give their parser back (stream/parser_idle.c). */
static void
idle_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	ev_tstamp now = mono_now(l);
	unsigned n = 0;

	for (struct c2s *c = all; c; c = c->next)
		if (c->xs && c->state != C2S_CLOSING &&
		    now - c->conn->last_read >= PARSER_IDLE)
			n += (unsigned)xml_stream_release(c->xs);
	parser_idle_swept(l, n);
}

/* The storage queue is over limits { storage-queue } (or back under
 * half of it): stop (resume) reading every client. */
void
c2s_storage_congested(int congested)
{
	conn_set_gate(congested);
	if (!congested)
		for (struct c2s *c = all; c; c = c->next)
			conn_resume(c->conn, CONN_PAUSE_GATE);
}

void
c2s_init(void)
{
	ips = strmap_new();
	ev_init(&wait_w, wait_cb);
	sasl_init(c2s_sasl_reply);
	ev_prepare_init(&trash_w, trash_cb);
	ev_prepare_start(xmppd_loop, &trash_w);
	ev_unref(xmppd_loop);
	ev_timer_init(&purge_w, purge_cb, AUTH_WINDOW, AUTH_WINDOW);
	ev_timer_start(xmppd_loop, &purge_w);
	ev_unref(xmppd_loop);
	ev_timer_init(&idle_w, idle_cb, PARSER_IDLE, PARSER_IDLE);
	ev_timer_start(xmppd_loop, &idle_w);
	ev_unref(xmppd_loop);
}

static void
c2s_hold(struct c2s *c)
{
	c->held++;
	conn_pause(c->conn, CONN_PAUSE_UPPER);
}

static void
c2s_release(struct c2s *c)
{
	if (c->held == 0 || --c->held > 0)
		return;
	/* Replay in order; a stanza may hold the stream again. */
	while (c->nqueue > 0 && !c->held && c->state == C2S_ACTIVE) {
		struct xel *st = c->queue[0];

		memmove(c->queue, c->queue + 1,
		    --c->nqueue * sizeof(*c->queue));
		handle_stanza(c, st);
	}
	if (!c->held && c->state != C2S_CLOSING)
		conn_resume(c->conn, CONN_PAUSE_UPPER);
}

/* The transport operations (core/transport.h): the session API reaches
 * the stream through these. */

static void
t_send(struct transport *t, const struct xel *stanza)
{
	c2s_send(container_of(t, struct c2s, t), stanza);
}

static void
t_send_raw(struct transport *t, const char *data, size_t len)
{
	send_raw(container_of(t, struct c2s, t), data, len);
}

static void
t_hold(struct transport *t)
{
	c2s_hold(container_of(t, struct c2s, t));
}

static void
t_release(struct transport *t)
{
	c2s_release(container_of(t, struct c2s, t));
}

static void
t_end(struct transport *t, const char *condition, const char *text)
{
	c2s_stream_error(container_of(t, struct c2s, t), condition, text);
}

static void
t_status(const struct transport *t, struct transport_status *st)
{
	const struct c2s *c = container_of(t, const struct c2s, t);
	const struct conn *cn = c->conn;

	st->queued = buf_avail(&cn->out);
	st->input_paused = cn->paused != 0;
	st->last_input = cn->last_read;
	st->gone = cn->state == CONN_DEAD;
	st->tls_version = conn_tls_version(cn);
	st->tls_cipher = conn_tls_cipher(cn);
	st->close_reason = cn->close_reason;
}

static const struct transport_ops c2s_transport_ops = {
	.kind = "c2s",
	.send = t_send,
	.send_raw = t_send_raw,
	.hold = t_hold,
	.release = t_release,
	.end = t_end,
	.status = t_status,
};

static const struct transport_ops bosh_transport_ops = {
	.kind = "bosh",
	.send = t_send,
	.send_raw = t_send_raw,
	.hold = t_hold,
	.release = t_release,
	.end = t_end,
	.status = t_status,
};

static const struct transport_ops ws_transport_ops = {
	.kind = "websocket",
	.send = t_send,
	.send_raw = t_send_raw,
	.hold = t_hold,
	.release = t_release,
	.end = t_end,
	.status = t_status,
};

/*
 * XMPP over WebSocket (RFC 7395): the same stream with another framing.
 * net/websocket.c turns frames into whole text messages; here each
 * message is fed to the stream's parser, which was primed with an
 * implicit stream root in jabber:client (new_parser), so a message is
 * one top-level element and everything else (SASL, bind, stream
 * management, CSI, the router) is the c2s code above.  <open/> and
 * <close/> (in the framing namespace) stand for the stream's header and
 * closing tag; out() writes each element we send as one message.
 */

/* The end of the start tag at s (which begins with '<'), skipping
 * quoted attribute values: the index of its '>' or len. */
static size_t
tag_end(const char *s, size_t len, size_t i)
{
	char q = 0;

	for (; i < len; i++) {
		if (q != 0) {
			if (s[i] == q)
				q = 0;
		} else if (s[i] == '\'' || s[i] == '"')
			q = s[i];
		else if (s[i] == '>')
			return i;
	}
	return len;
}

/* The length of the element at s[0] == '<' (our own serialization:
 * tags, escaped text, no comments), or len if it does not end. */
static size_t
element_len(const char *s, size_t len)
{
	size_t i = 0;
	unsigned depth = 0;

	while (i < len) {
		size_t e;

		if (s[i] != '<') {
			i++;
			continue;
		}
		e = tag_end(s, len, i);
		if (e == len)
			return len;
		if (s[i + 1] == '/')
			depth--;
		else if (s[e - 1] != '/')
			depth++;
		i = e + 1;
		if (depth == 0)
			return i;
	}
	return len;
}

/* Whether the start tag s[0..end) declares a default namespace. */
static int
declares_default_ns(const char *s, size_t end)
{
	char q = 0;

	for (size_t i = 1; i + 6 < end; i++) {
		if (q != 0) {
			if (s[i] == q)
				q = 0;
		} else if (s[i] == '\'' || s[i] == '"')
			q = s[i];
		else if (s[i] == ' ' && strncmp(s + i + 1, "xmlns=", 6) == 0)
			return 1;
	}
	return 0;
}

/*
 * Serialized top-level elements out as one message each (RFC 7395
 * §3.3.3): what was written for a stream that declared jabber:client
 * and the stream prefix now declares them itself (§3.3.3: "each
 * element ... must be parsable on its own").
 */
static void
ws_write(struct c2s *c, const char *data, size_t len)
{
	static struct buf msg;
	size_t i = 0;

	while (i < len) {
		size_t n, name, te;

		if (data[i] != '<') {
			i++;            /* whitespace between elements */
			continue;
		}
		n = element_len(data + i, len - i);
		te = tag_end(data + i, n, 0);
		for (name = 1; name < te && data[i + name] != ' ' &&
		    data[i + name] != '/' && data[i + name] != '>'; name++)
			;
		buf_reset(&msg);
		buf_add(&msg, data + i, name);
		if (strncmp(data + i, "<stream:", 8) == 0)
			buf_adds(&msg, " xmlns:stream='" NS_STREAMS "'");
		else if (!declares_default_ns(data + i, te))
			buf_adds(&msg, " xmlns='" NS_CLIENT "'");
		buf_add(&msg, data + i + name, n - name);
		if (c->bosh)
			conn_write(c->conn, buf_head(&msg), buf_avail(&msg));
		else
			websocket_send(c->ws, buf_head(&msg), buf_avail(&msg));
		i += n;
	}
	if (msg.cap > 65536)
		buf_free(&msg);
}

/*
 * A top-level element of a WebSocket message, before on_stanza looks at
 * it: returns -1 if it is for on_stanza, else what on_stanza returns
 * (st was consumed).  One element per message (§3.3.3); <open/> is the
 * stream header (§3.3.2), <close/> its end (§3.6).
 */
static int
ws_element(struct c2s *c, struct xel *st)
{
	if (++c->ws_elements > 1 && !c->bosh)
		c2s_stream_error(c, "not-well-formed",
		    "One element per WebSocket message (RFC 7395 3.3.3)");
	else if (xel_is(st, "open", NS_FRAMING) &&
	    c->state == C2S_WAIT_HEADER)
		check_header(c, st);
	else if (xel_is(st, "close", NS_FRAMING))
		on_xml_close(c);
	else if (strcmp(st->ns, NS_FRAMING) == 0)
		c2s_stream_error(c, "policy-violation",
		    "Unexpected framing element");
	else if (c->state == C2S_WAIT_HEADER)
		c2s_stream_error(c, strcmp(st->name, "open") == 0 ?
		    "invalid-namespace" : "not-authorized",
		    "Open the stream first (RFC 7395 3.3.2)");
	else
		return -1;
	arena_free(st->arena);
	return c->restart || c->state == C2S_CLOSING;
}

/* A whole text message from the WebSocket. */
static void
ws_message(void *upper, const char *data, size_t len)
{
	struct c2s *c = upper;

	if (c->state == C2S_CLOSING)
		return;
	c->ws_elements = 0;
	if (feed(c, data, len) == XMLS_OK && c->state != C2S_CLOSING &&
	    !xml_stream_at_boundary(c->xs))
		c2s_stream_error(c, "not-well-formed",
		    "A WebSocket message must be complete elements "
		    "(RFC 7395 3.3.3)");
	bucket_check(c);
}

static void *
ws_create(struct ws *ws, struct conn *conn, struct http_request *r,
    void *arg)
{
	struct c2s *c = c2s_new(conn, ws, r->client_ip, 0, 0);

	if (c == NULL)
		http_respond_status(r, 403);    /* banned: c2s_new logged */
	return c;
}

/* After the 101: the authentication deadline counts from the upgrade
 * (HTTP's deadlines were cleared). */
static void
ws_open(void *upper)
{
	struct c2s *c = upper;

	c->preauth_deadline = mono_now(xmppd_loop) +
	    xmppd_conf->limits.preauth_timeout;
	conn_set_timeout(c->conn, xmppd_conf->limits.preauth_timeout,
	    "authentication timeout");
	log_debug("c2s %" PRIu64 " %s: WebSocket open%s", c->id,
	    c->conn->addr, c->t.tls ? " over TLS" : "");
}

static void
ws_timeout(void *upper, const char *reason)
{
	c2s_stream_error(upper, "connection-timeout",
	    "Not authenticated within the time allowed");
}

static void
ws_closed(void *upper)
{
	c2s_free(upper);
}

static const struct ws_upper c2s_ws_upper = {
	.on_open = ws_open,
	.on_message = ws_message,
	.on_timeout = ws_timeout,
	.on_close = ws_closed,
};

/* GET /xmpp-websocket (RFC 7395 §3.1: the "xmpp" subprotocol).  A GET
 * without a WebSocket key is no handshake at all (a person with a browser,
 * a proxy's health check, a XEP-0156 checker following host-meta): it gets
 * a short page saying what the URL is for, as Prosody and ejabberd answer.
 * A handshake that is wrong otherwise is refused by websocket_upgrade. */
static void
ws_route(struct http_request *r, void *arg)
{
	static const char page[] =
	    "<!DOCTYPE html>\n<html><head><title>XMPP over WebSocket</title>"
	    "</head><body><p>This is the XMPP over WebSocket endpoint "
	    "(RFC 7395) of this server: point a web XMPP client at this "
	    "URL.</p></body></html>\n";
	const struct conf *conf = xmppd_conf;
	struct ws_accept_rules rules = {
		.protocol = "xmpp",
		.origins = conf->websocket_origins,
		.norigins = conf->nwebsocket_origins,
		.max_message = conf->limits.stanza_size,
	};

	if (http_header(r, "Sec-WebSocket-Key") == NULL) {
		http_add_header(r, "Access-Control-Allow-Origin", "*");
		http_add_header(r, "X-Content-Type-Options", "nosniff");
		http_respond(r, 200, "text/html; charset=utf-8", page,
		    sizeof(page) - 1);
		return;
	}
	websocket_upgrade(r, &rules, &c2s_ws_upper, ws_create, NULL);
}

void
c2s_websocket_set_conf(const struct conf *conf)
{
	static int routed;

	if (conf->websocket && !routed) {
		if (http_route_add(WS_XMPP_PATH, HTTP_M_GET, 0, ws_route,
			NULL) == -1)
			log_warnx("c2s: cannot route %s", WS_XMPP_PATH);
		else
			routed = 1;
	} else if (!conf->websocket && routed) {
		http_route_remove(WS_XMPP_PATH);
		routed = 0;
	}
}

/*
 * BOSH (XEP-0206): stream/bosh.c made conn, a virtual connection whose
 * handler is c2s_conn_handler; the stream is framed as over WebSocket
 * (several elements may come in one body).  NULL if the client's
 * network is banned.
 */
void *
c2s_bosh_attach(struct conn *conn, const char *client_ip, int tls)
{
	struct c2s *c = c2s_new(conn, NULL, client_ip, 1, tls);

	if (c != NULL)
		conn->upper = c;
	return c;
}
