/*
 * Server-to-server (RFC 6120): incoming streams from the s2s listeners
 * and outgoing ones, one route per (local domain, remote domain).
 *
 * An outgoing route resolves _xmpps-server._tcp and _xmpp-server._tcp
 * (XEP-0368, RFC 6120 §3.2), falls back to the domain itself on 5269,
 * tries each target's addresses (IPv6, then IPv4) in turn, negotiates
 * TLS (required unless the domain is listed as insecure), then
 * authenticates with SASL EXTERNAL (XEP-0178) when the peer offers it,
 * else with dialback (XEP-0220).  Stanzas wait in the route (bounded)
 * until it is ready and are bounced when it fails.
 *
 * An incoming stream offers STARTTLS (required), then SASL EXTERNAL when
 * the peer's certificate is valid for the domain it names, and dialback;
 * a dialback request is verified by asking the authoritative server over
 * our own route to it (db:verify), or at once when the peer's
 * certificate is valid for the domain it claims.  Stanzas are accepted
 * from the (remote, local) domain pairs the stream authenticated.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ev.h>

#include "base64.h"
#include "buf.h"
#include "conf.h"
#include "core/router.h"
#include "core/stanza.h"
#include "jid.h"
#include "log.h"
#include "mono.h"
#include "net/conn.h"
#include "net/dns.h"
#include "net/tls.h"
#include "scram.h"
#include "strmap.h"
#include "stream/dialback.h"
#include "stream/parser_idle.h"
#include "stream/s2s.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_DB "jabber:server:dialback"
#define NS_DB_FEATURE "urn:xmpp:features:dialback"
#define NS_BIDI_FEATURE "urn:xmpp:features:bidi"
#define NS_BIDI "urn:xmpp:bidi"

#define CONNECT_TIMEOUT 10.0    /* s, per address (at most s2s-timeout) */
/* s2s-timeout (limits): from connected to authenticated, both ways */
#define NEGOTIATE_TIMEOUT ((double)xmppd_conf->limits.s2s_timeout)
#define IDLE_TIMEOUT 600.0      /* s without traffic: the stream closes */
#define FAIL_HOLD 30.0          /* s a failed route bounces at once */
#define QUEUE_MAX 500           /* stanzas waiting per route */
#define QUEUE_BYTES (1 << 20)
#define MAX_CANDIDATES 16
#define MAX_ADDRS 16
#define MAX_PAIRS 64            /* domain pairs per incoming stream */
#define MAX_VERIFIES 64         /* dialback verifications in flight */

enum s2s_state {
	S_HEADER,       /* waiting for the peer's stream header */
	S_FEATURES,     /* outgoing: waiting for features */
	S_STARTTLS,     /* outgoing: <starttls/> sent */
	S_SASL,         /* outgoing: <auth/> sent */
	S_DIALBACK,     /* outgoing: <db:result/> sent */
	S_OPEN,         /* incoming: header answered, negotiating */
	S_READY,        /* outgoing: authenticated, stanzas flow */
	S_CLOSING,
};

struct route;

struct s2s {
	struct conn *conn;
	uint64_t id;            /* the connection's */
	struct xml_stream *xs;
	struct route *route;    /* outgoing: whose stream this is */
	char *local;            /* our domain on this stream */
	char *remote;           /* theirs (incoming: the header's 'from') */
	char stream_id[129];    /* incoming: ours; outgoing: theirs */
	enum s2s_state state;
	unsigned outgoing:1;
	unsigned tls:1;
	unsigned cert_ok:1;     /* the peer's certificate is valid for
	                           remote */
	unsigned restart:1;     /* a new parser after this feed */
	unsigned in_feed:1;
	unsigned header_sent:1;
	unsigned db_offered:1;  /* outgoing: the peer offered dialback */
	unsigned bidi:1;        /* XEP-0288: stanzas go both ways */
	const char *auth;       /* how it authenticated, "" if not */
	/* incoming: the (remote, local) pairs it may send from/to,
	 * "remote local" */
	char *pairs[MAX_PAIRS];
	size_t npairs;
	double since;
	double negotiate_until; /* mono: authenticated by then, or closed
	                           (s2s-timeout; the TLS handshake's own
	                           deadline replaces it meanwhile) */
	uint64_t stanzas_in, stanzas_out;
	/* incoming: token buckets (limits s2s-stanzas-per-second and
	 * s2s-bytes-per-second, bursts of 2 s of each); reading pauses
	 * while either is in debt, as for client streams */
	double tokens, byte_tokens, bucket_at;
	ev_timer rate_timer;
	unsigned throttled;
	struct s2s *next;
};

struct queued {
	struct xel *st;         /* its own arena */
	size_t bytes;
	struct queued *next;
};

struct candidate {
	char *host;
	uint16_t port;
	uint16_t priority, weight;
	uint8_t tls;            /* direct TLS */
};

/* A dialback verification we asked the authoritative server for. */
struct verify {
	char *local, *remote;   /* the incoming stream's names */
	char stream_id[129];    /* the incoming stream's id */
	char *key;
	uint64_t in_conn;       /* the incoming stream, by connection id */
	int sent;
};

enum route_state {
	R_IDLE, R_RESOLVING, R_CONNECTING, R_READY,
};

struct route {
	char *key;              /* "local remote" */
	char *local, *remote;
	enum route_state state;
	struct queued *q, **qtail;
	size_t nq, qbytes;
	struct candidate cand[MAX_CANDIDATES];
	size_t ncand, ci;
	struct dns_addr addrs[MAX_ADDRS];
	size_t naddrs, ai;
	int srv_pending, addr_pending;
	uint64_t dnsq[2];
	int timed_out;          /* a connection or negotiation timed out */
	int dns_failed;         /* a lookup got no answer */
	int connected_once;     /* some address accepted a connection */
	double failed_until;    /* mono: bounce at once until then */
	struct s2s *stream;
	struct verify *verifies[MAX_VERIFIES];
	size_t nverifies;
};

static struct ev_loop *loop;
static struct strmap *routes;
static struct s2s *streams;
static ev_timer idle_w;         /* idle streams give their parser back */
static unsigned char secret[32];

static void route_next(struct route *r);
static void resolve_target(struct route *r);
static void addr_cb(void *arg, const struct dns_result *res);
static void route_failed(struct route *r, const char *condition);
static void stream_error(struct s2s *s, const char *cond,
    const char *text);

/* -- helpers ---------------------------------------------------------- */

static int
local_domain(const char *d)
{
	return d != NULL && (conf_host_find(xmppd_conf, d) != NULL ||
	    router_is_service(d));
}

static int
insecure_domain(const char *d)
{
	return conf_strlist_has(&xmppd_conf->s2s_insecure, d);
}

/* s2s-deny lists domains never spoken to; with an s2s-allow list, only
 * those are. */
static int
domain_allowed(const char *d)
{
	const struct conf *c = xmppd_conf;

	if (conf_strlist_has(&c->s2s_deny, d))
		return 0;
	return c->s2s_allow.n == 0 || conf_strlist_has(&c->s2s_allow, d);
}

static void
write_str(struct s2s *s, const char *str)
{
	conn_write(s->conn, str, strlen(str));
}

/* Elements the peer wrote in jabber:server are jabber:client inside. */
static void
requalify(struct xel *el)
{
	if (el->name != NULL && strcmp(el->ns, NS_SERVER) == 0)
		el->ns = NS_CLIENT;
	for (struct xel *e = el->children; e != NULL; e = e->next)
		if (e->name != NULL)
			requalify(e);
}

static void
send_stanza(struct s2s *s, const struct xel *st)
{
	static struct buf b;    /* reused: no allocation per stanza */

	/* Written without xmlns inside the jabber:server stream: the
	 * stanza and its jabber:client children take the stream's
	 * default namespace. */
	buf_reset(&b);
	xel_serialize(st, &b, NS_CLIENT);
	conn_write(s->conn, buf_head(&b), buf_avail(&b));
	if (b.cap > 65536)
		buf_free(&b);
	s->stanzas_out++;
}

static void
send_header(struct s2s *s)
{
	struct buf b = {0};

	buf_adds(&b, "<?xml version='1.0'?><stream:stream xmlns='"
	    NS_SERVER "' xmlns:stream='" NS_STREAMS "' xmlns:db='" NS_DB
	    "' version='1.0'");
	if (s->local != NULL) {
		buf_adds(&b, " from='");
		buf_add_xml_escaped(&b, s->local, strlen(s->local), 1);
		buf_adds(&b, "'");
	}
	if (s->remote != NULL) {
		buf_adds(&b, " to='");
		buf_add_xml_escaped(&b, s->remote, strlen(s->remote), 1);
		buf_adds(&b, "'");
	}
	if (!s->outgoing) {
		buf_adds(&b, " id='");
		buf_adds(&b, s->stream_id);
		buf_adds(&b, "'");
	}
	buf_adds(&b, ">");
	conn_write(s->conn, buf_head(&b), buf_avail(&b));
	buf_free(&b);
	s->header_sent = 1;
}

static struct s2s *
stream_by_conn(uint64_t id)
{
	for (struct s2s *s = streams; s != NULL; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static int
pair_authed(const struct s2s *s, const char *remote, const char *local)
{
	size_t lr = strlen(remote);

	for (size_t i = 0; i < s->npairs; i++)
		if (strncmp(s->pairs[i], remote, lr) == 0 &&
		    s->pairs[i][lr] == ' ' &&
		    strcmp(s->pairs[i] + lr + 1, local) == 0)
			return 1;
	return 0;
}

static void bidi_offer(struct s2s *s, const char *local,
    const char *remote);

static void
pair_add(struct s2s *s, const char *remote, const char *local,
    const char *how)
{
	size_t n = strlen(remote) + strlen(local) + 2;
	char *p;

	if (pair_authed(s, remote, local) || s->npairs == MAX_PAIRS)
		return;
	p = xmalloc(n);
	snprintf(p, n, "%s %s", remote, local);
	s->pairs[s->npairs++] = p;
	s->auth = how;
	/* Authenticated: the negotiation deadline is over (idle remains). */
	s->negotiate_until = 0;
	conn_set_timeout(s->conn, 0, NULL);
	log_info("s2s %" PRIu64 " %s: %s authenticated for %s (%s)", s->id,
	    s->conn->addr, remote, local, how);
	if (s->bidi)
		bidi_offer(s, local, remote);
}

/* -- the XML stream --------------------------------------------------- */

static const struct xml_stream_cb s2s_xml_cb;

static void
new_parser(struct s2s *s)
{
	const struct conf_limits *l = &xmppd_conf->limits;
	struct xml_limits lim = {
		.max_stanza = l->stanza_size,
		.max_depth = l->depth,
		.max_attrs = l->attributes,
		.max_memory = l->stanza_memory,
	};

	if (s->xs != NULL)
		xml_stream_free(s->xs);
	s->xs = xml_stream_new(&lim, &s2s_xml_cb, s);
	s->restart = 0;
	s->header_sent = s->outgoing ? s->header_sent : 0;
	s->state = S_HEADER;
}

static void
set_closing(struct s2s *s)
{
	s->state = S_CLOSING;
}

static void
end_stream(struct s2s *s)
{
	if (s->state == S_CLOSING)
		return;
	set_closing(s);
	write_str(s, "</stream:stream>");
	conn_close(s->conn);
}

static void
stream_error(struct s2s *s, const char *cond, const char *text)
{
	struct buf b = {0};

	if (s->state == S_CLOSING)
		return;
	log_info("s2s %" PRIu64 " %s: stream error <%s/>%s%s", s->id,
	    s->conn->addr, cond, text ? ": " : "", text ? text : "");
	if (!s->header_sent) {
		if (!s->outgoing)
			scram_random_hex(s->stream_id, 8);
		send_header(s);
	}
	buf_adds(&b, "<stream:error><");
	buf_adds(&b, cond);
	buf_adds(&b, " xmlns='" NS_STREAM_ERR "'/>");
	if (text != NULL) {
		buf_adds(&b, "<text xmlns='" NS_STREAM_ERR "'>");
		buf_add_xml_escaped(&b, text, strlen(text), 0);
		buf_adds(&b, "</text>");
	}
	buf_adds(&b, "</stream:error>");
	conn_write(s->conn, buf_head(&b), buf_avail(&b));
	buf_free(&b);
	end_stream(s);
}

/* -- incoming: features and negotiation ------------------------------- */

static void
send_features(struct s2s *s)
{
	struct buf b = {0};
	const char *why;

	buf_adds(&b, "<stream:features>");
	if (!s->tls) {
		buf_adds(&b, "<starttls xmlns='" NS_TLS "'>");
		if (s->remote == NULL || !insecure_domain(s->remote))
			buf_adds(&b, "<required/>");
		buf_adds(&b, "</starttls>");
	} else if (s->remote == NULL || !pair_authed(s, s->remote, s->local)) {
		/* XEP-0178 §3: EXTERNAL only when the certificate is
		 * valid for the domain the header names. */
		s->cert_ok = s->remote != NULL &&
		    tls_peer_check(s->conn->ssl, s->remote, &why);
		if (s->cert_ok)
			buf_adds(&b, "<mechanisms xmlns='" NS_SASL "'>"
			    "<mechanism>EXTERNAL</mechanism></mechanisms>");
	}
	if (xmppd_conf->s2s_dialback && (s->tls ||
	    (s->remote != NULL && insecure_domain(s->remote))))
		/* XEP-0220 §2.4: errors are understood here. */
		buf_adds(&b, "<dialback xmlns='" NS_DB_FEATURE "'><errors/>"
		    "</dialback>");
	if (s->tls && s->npairs == 0)
		/* XEP-0288 §2: before authentication, encrypted only. */
		buf_adds(&b, "<bidi xmlns='" NS_BIDI_FEATURE "'/>");
	buf_adds(&b, "</stream:features>");
	conn_write(s->conn, buf_head(&b), buf_avail(&b));
	buf_free(&b);
}

static int
in_header(struct s2s *s, struct xel *root, const char *default_ns)
{
	const char *to = xel_attr(root, "to"), *from = xel_attr(root, "from");
	const char *ver = xel_attr(root, "version");
	char *local, *remote = NULL;

	scram_random_hex(s->stream_id, 8);
	if (strcmp(default_ns, NS_SERVER) != 0) {
		stream_error(s, "invalid-namespace", NULL);
		return 1;
	}
	if (to == NULL || (local = jid_nameprep(to)) == NULL) {
		stream_error(s, "improper-addressing",
		    "A 'to' attribute with a domain is required");
		return 1;
	}
	if (!local_domain(local) || (s->local != NULL &&
	    strcmp(s->local, local) != 0)) {
		free(local);
		stream_error(s, "host-unknown", NULL);
		return 1;
	}
	if (from != NULL && (remote = jid_nameprep(from)) == NULL) {
		free(local);
		stream_error(s, "invalid-from", NULL);
		return 1;
	}
	free(s->local);
	s->local = local;
	if (remote != NULL) {
		free(s->remote);
		s->remote = remote;
	}
	if (ver == NULL || strncmp(ver, "1.", 2) != 0) {
		/* RFC 6120 §4.7.5: we speak 1.0 (TLS, SASL) only. */
		stream_error(s, "unsupported-version", NULL);
		return 1;
	}
	if (s->remote != NULL && !domain_allowed(s->remote)) {
		stream_error(s, "policy-violation",
		    "Federation with this domain is not allowed");
		return 1;
	}
	send_header(s);
	s->state = S_OPEN;
	send_features(s);
	return 0;
}

/* SASL EXTERNAL (XEP-0178 §3): the authorization identity is empty,
 * "=", or the domain the header named. */
static int
in_sasl(struct s2s *s, struct xel *el)
{
	const char *mech = xel_attr(el, "mechanism");
	const char *text = xel_text(el);
	unsigned char authz[1024];
	size_t n = 0;
	int ok;

	ok = s->tls && s->remote != NULL && s->cert_ok &&
	    xel_is(el, "auth", NS_SASL) && mech != NULL &&
	    strcmp(mech, "EXTERNAL") == 0;
	if (ok && text != NULL && strcmp(text, "=") != 0 && *text != '\0') {
		ssize_t d = base64_decode(text, strlen(text), authz);

		ok = d > 0 && (size_t)d < sizeof(authz);
		if (ok) {
			n = (size_t)d;
			authz[n] = '\0';
			ok = strlen((char *)authz) == n &&
			    strcmp((char *)authz, s->remote) == 0;
		}
	}
	if (!ok) {
		write_str(s, "<failure xmlns='" NS_SASL "'><not-authorized/>"
		    "</failure>");
		/* RFC 6120 §6.4.5: the peer may try something else
		 * (dialback). */
		return 0;
	}
	write_str(s, "<success xmlns='" NS_SASL "'/>");
	pair_add(s, s->remote, s->local, "SASL EXTERNAL");
	s->restart = 1;
	return 1;
}

/* The answer to a dialback request on incoming stream s. */
static void
db_result_answer(struct s2s *s, const char *local, const char *remote,
    const char *type)
{
	struct buf b = {0};

	buf_adds(&b, "<db:result from='");
	buf_add_xml_escaped(&b, local, strlen(local), 1);
	buf_adds(&b, "' to='");
	buf_add_xml_escaped(&b, remote, strlen(remote), 1);
	buf_adds(&b, "' type='");
	buf_adds(&b, type);
	buf_adds(&b, "'/>");
	conn_write(s->conn, buf_head(&b), buf_avail(&b));
	buf_free(&b);
	if (strcmp(type, "valid") == 0)
		pair_add(s, remote, local, "dialback");
}

static void
db_error(struct s2s *s, const struct xel *el, const char *etype,
    const char *cond)
{
	const char *from = xel_attr(el, "from"), *to = xel_attr(el, "to");
	struct buf b = {0};

	/* XEP-0220 §2.4: the request's names reversed. */
	buf_adds(&b, "<db:result type='error'");
	if (to != NULL) {
		buf_adds(&b, " from='");
		buf_add_xml_escaped(&b, to, strlen(to), 1);
		buf_adds(&b, "'");
	}
	if (from != NULL) {
		buf_adds(&b, " to='");
		buf_add_xml_escaped(&b, from, strlen(from), 1);
		buf_adds(&b, "'");
	}
	buf_adds(&b, "><error type='");
	buf_adds(&b, etype);
	buf_adds(&b, "'><");
	buf_adds(&b, cond);
	buf_adds(&b, " xmlns='" NS_STANZA_ERR "'/></error></db:result>");
	conn_write(s->conn, buf_head(&b), buf_avail(&b));
	buf_free(&b);
}

static struct route *route_get(const char *local, const char *remote);
static void route_start(struct route *r);
static void verify_send_all(struct route *r);

/* <db:result from=REMOTE to=LOCAL>KEY</db:result> on an incoming
 * stream: the peer says it is REMOTE (XEP-0220 §2.1.2). */
static void
in_db_result(struct s2s *s, struct xel *el)
{
	const char *from = xel_attr(el, "from"), *to = xel_attr(el, "to");
	char *remote = from ? jid_nameprep(from) : NULL;
	char *local = to ? jid_nameprep(to) : NULL;
	char *key = xstrdup(xel_text(el));
	const char *why = "no TLS";
	struct route *r;
	struct verify *v;

	if (!xmppd_conf->s2s_dialback) {
		db_error(s, el, "cancel", "feature-not-implemented");
		goto done;
	}
	if (remote == NULL || local == NULL || key == NULL || *key == '\0') {
		db_error(s, el, "modify", "bad-request");
		goto done;
	}
	if (!local_domain(local)) {
		db_error(s, el, "cancel", "item-not-found");
		goto done;
	}
	if (!domain_allowed(remote)) {
		db_error(s, el, "cancel", "forbidden");
		goto done;
	}
	if (!s->tls && !insecure_domain(remote)) {
		stream_error(s, "policy-violation", "TLS is required");
		goto done;
	}
	/* A certificate valid for the claimed domain says enough (XEP-0344
	 * §2.4): no need to dial back. */
	if (s->tls && tls_peer_check(s->conn->ssl, remote, &why)) {
		db_result_answer(s, local, remote, "valid");
		goto done;
	}
	if (xmppd_conf->s2s_secure_auth) {
		log_info("s2s %" PRIu64 " %s: %s refused: %s and s2s-secure-auth",
		    s->id, s->conn->addr, remote, why);
		db_result_answer(s, local, remote, "invalid");
		stream_error(s, "not-authorized",
		    "A valid certificate is required");
		goto done;
	}
	r = route_get(local, remote);
	if (r->nverifies == MAX_VERIFIES) {
		db_error(s, el, "wait", "resource-constraint");
		goto done;
	}
	v = xcalloc(1, sizeof(*v));
	v->local = xstrdup(local);
	v->remote = xstrdup(remote);
	snprintf(v->stream_id, sizeof(v->stream_id), "%s", s->stream_id);
	v->key = key;
	key = NULL;
	v->in_conn = s->id;
	r->verifies[r->nverifies++] = v;
	if (r->state == R_IDLE)
		route_start(r);
	else
		verify_send_all(r);
done:
	free(remote);
	free(local);
	free(key);
}

/* <db:verify from=RECEIVING to=ORIGINATING id=ID>KEY</db:verify>: we are
 * the authoritative server for ORIGINATING (XEP-0220 §2.1.3). */
static void
db_verify_answer(struct s2s *s, struct xel *el)
{
	const char *from = xel_attr(el, "from"), *to = xel_attr(el, "to");
	const char *id = xel_attr(el, "id");
	const char *key = xel_text(el);
	int valid = from != NULL && to != NULL && id != NULL &&
	    local_domain(to) && dialback_key_valid(secret, sizeof(secret),
	    from, to, id, key);
	struct buf b = {0};

	buf_adds(&b, "<db:verify from='");
	buf_add_xml_escaped(&b, to ? to : "", to ? strlen(to) : 0, 1);
	buf_adds(&b, "' to='");
	buf_add_xml_escaped(&b, from ? from : "", from ? strlen(from) : 0, 1);
	buf_adds(&b, "' id='");
	buf_add_xml_escaped(&b, id ? id : "", id ? strlen(id) : 0, 1);
	buf_adds(&b, valid ? "' type='valid'/>" : "' type='invalid'/>");
	conn_write(s->conn, buf_head(&b), buf_avail(&b));
	buf_free(&b);
}

/* A stanza from the peer: from a pair this stream authenticated, to a
 * domain of ours (RFC 6120 §4.9.3.9 invalid-from, §13.7). */
static int
in_stanza(struct s2s *s, struct xel *st)
{
	const char *from = xel_attr(st, "from"), *to = xel_attr(st, "to");
	struct jid f = {0}, t = {0};
	int rc = 0;

	if (from == NULL || to == NULL || jid_parse(&f, from) < 0 ||
	    jid_parse(&t, to) < 0) {
		stream_error(s, "improper-addressing", NULL);
		rc = 1;
	} else if (!pair_authed(s, f.domain, t.domain)) {
		stream_error(s, s->npairs == 0 ? "not-authorized" :
		    "invalid-from", NULL);
		rc = 1;
	} else {
		s->stanzas_in++;
		s->tokens -= 1;
		requalify(st);
		router_from_remote(st, &t);
	}
	jid_free(&f);
	jid_free(&t);
	return rc;
}

static int
in_element(struct s2s *s, struct xel *el)
{
	if (xel_is(el, "starttls", NS_TLS)) {
		if (s->tls) {
			stream_error(s, "policy-violation",
			    "TLS is already established");
			return 1;
		}
		write_str(s, "<proceed xmlns='" NS_TLS "'/>");
		conn_starttls(s->conn);
		s->restart = 1;
		return 1;
	}
	if (xel_is(el, "bidi", NS_BIDI)) {
		/* XEP-0288 §3: what we send to the peer's domain may use
		 * this stream once it has authenticated. */
		if (s->tls && s->npairs == 0)
			s->bidi = 1;
		return 0;
	}
	if (strcmp(el->ns, NS_SASL) == 0)
		return in_sasl(s, el);
	if (xel_is(el, "result", NS_DB)) {
		in_db_result(s, el);
		return s->state == S_CLOSING;
	}
	if (xel_is(el, "verify", NS_DB)) {
		db_verify_answer(s, el);
		return 0;
	}
	if (strcmp(el->ns, NS_SERVER) == 0 && (xel_is(el, "message", NS_SERVER)
	    || xel_is(el, "presence", NS_SERVER) ||
	    xel_is(el, "iq", NS_SERVER))) {
		if (!s->tls && (s->remote == NULL ||
		    !insecure_domain(s->remote))) {
			stream_error(s, "not-authorized", "TLS is required");
			return 1;
		}
		return in_stanza(s, el);
	}
	stream_error(s, "unsupported-stanza-type", NULL);
	return 1;
}

/* -- outgoing: negotiation -------------------------------------------- */

static void route_ready(struct route *r);

/* Ask to be let in by dialback: the key for this stream (XEP-0185:
 * receiving server, originating server, the stream id it gave). */
static void
out_dialback(struct s2s *s)
{
	char key[DIALBACK_KEY_LEN + 1];
	struct buf b = {0};

	dialback_key(secret, sizeof(secret), s->remote, s->local,
	    s->stream_id, key);
	buf_adds(&b, "<db:result from='");
	buf_add_xml_escaped(&b, s->local, strlen(s->local), 1);
	buf_adds(&b, "' to='");
	buf_add_xml_escaped(&b, s->remote, strlen(s->remote), 1);
	buf_adds(&b, "'>");
	buf_adds(&b, key);
	buf_adds(&b, "</db:result>");
	conn_write(s->conn, buf_head(&b), buf_avail(&b));
	buf_free(&b);
	s->state = S_DIALBACK;
	/* Verifications we owe may go out on this stream now. */
	verify_send_all(s->route);
}

static void
out_auth(struct s2s *s, struct xel *features)
{
	struct xel *mechs = xel_child(features, "mechanisms", NS_SASL);
	int external = 0, dialback;
	const char *why = NULL;

	if (s->tls) {
		s->cert_ok = tls_peer_check(s->conn->ssl, s->remote, &why);
		if (!s->cert_ok && xmppd_conf->s2s_secure_auth) {
			log_info("s2s %" PRIu64 " %s: %s: certificate refused: "
			    "%s", s->id, s->conn->addr, s->remote, why);
			stream_error(s, "policy-violation",
			    "Certificate not valid");
			return;
		}
	}
	for (struct xel *m = mechs ? mechs->children : NULL; m; m = m->next)
		if (m->name != NULL && strcmp(m->name, "mechanism") == 0) {
			const char *t = xel_text(m);

			external |= t != NULL && strcmp(t, "EXTERNAL") == 0;
		}
	s->db_offered = xmppd_conf->s2s_dialback &&
	    xel_child(features, "dialback", NS_DB_FEATURE) != NULL;
	if (external && s->tls) {
		struct buf b = {0};
		char enc[1024];

		base64_encode((const unsigned char *)s->local,
		    strlen(s->local), enc);
		buf_adds(&b, "<auth xmlns='" NS_SASL "' mechanism='EXTERNAL'>");
		buf_adds(&b, enc);
		buf_adds(&b, "</auth>");
		conn_write(s->conn, buf_head(&b), buf_avail(&b));
		buf_free(&b);
		s->state = S_SASL;
		return;
	}
	dialback = xmppd_conf->s2s_dialback &&
	    xel_child(features, "dialback", NS_DB_FEATURE) != NULL;
	s->db_offered = dialback;
	if (dialback) {
		out_dialback(s);
		return;
	}
	stream_error(s, "policy-violation",
	    "No authentication method in common");
}

static void
out_features(struct s2s *s, struct xel *features)
{
	if (!s->tls && xel_child(features, "starttls", NS_TLS) != NULL) {
		write_str(s, "<starttls xmlns='" NS_TLS "'/>");
		s->state = S_STARTTLS;
		return;
	}
	if (!s->tls && !insecure_domain(s->remote)) {
		stream_error(s, "policy-violation", "TLS is required");
		return;
	}
	if (s->auth[0] != '\0') {
		/* After SASL's restart: authenticated. */
		s->state = S_READY;
		route_ready(s->route);
		return;
	}
	if (!s->bidi && s->tls &&
	    xel_child(features, "bidi", NS_BIDI_FEATURE) != NULL) {
		/* XEP-0288 §3: the peer may answer on this stream. */
		write_str(s, "<bidi xmlns='" NS_BIDI "'/>");
		s->bidi = 1;
	}
	out_auth(s, features);
}

static void verify_done(struct route *r, struct xel *el);

static int
is_stanza(const struct xel *el)
{
	return xel_is(el, "message", NS_SERVER) ||
	    xel_is(el, "presence", NS_SERVER) || xel_is(el, "iq", NS_SERVER);
}

/* XEP-0288: a stanza from the peer on our own stream, from its domain to
 * ours (RFC 6120 §4.9.3.9 invalid-from otherwise). */
static int
out_bidi_stanza(struct s2s *s, struct xel *st)
{
	struct jid f = {0}, t = {0};
	int rc = 0;

	if (jid_parse(&f, xel_attr(st, "from")) < 0 ||
	    jid_parse(&t, xel_attr(st, "to")) < 0 ||
	    strcmp(f.domain, s->remote) != 0 ||
	    strcmp(t.domain, s->local) != 0) {
		stream_error(s, "invalid-from", NULL);
		rc = 1;
	} else {
		s->stanzas_in++;
		requalify(st);
		router_from_remote(st, &t);
	}
	jid_free(&f);
	jid_free(&t);
	return rc;
}

static int
out_element(struct s2s *s, struct xel *el)
{
	switch (s->state) {
	case S_FEATURES:
		if (!xel_is(el, "features", NS_STREAMS))
			break;
		out_features(s, el);
		return s->state == S_CLOSING;
	case S_STARTTLS:
		if (!xel_is(el, "proceed", NS_TLS))
			break;
		conn_starttls(s->conn);
		s->restart = 1;
		return 1;
	case S_SASL:
		if (xel_is(el, "success", NS_SASL)) {
			s->auth = "SASL EXTERNAL";
			s->restart = 1;
			send_header(s);
			return 1;
		}
		if (xel_is(el, "failure", NS_SASL)) {
			/* RFC 6120 §6.4.5: something else may follow; the
			 * peer did not accept our certificate, dialback may
			 * still do (XEP-0178 §4). */
			if (s->db_offered) {
				log_info("s2s %" PRIu64 " %s: %s refused SASL "
				    "EXTERNAL; trying dialback", s->id,
				    s->conn->addr, s->remote);
				out_dialback(s);
				return 0;
			}
			stream_error(s, "not-authorized",
			    "SASL EXTERNAL refused");
			return 1;
		}
		break;
	default:
		break;
	}
	if (xel_is(el, "result", NS_DB) && s->state == S_DIALBACK) {
		const char *type = xel_attr(el, "type");

		if (type != NULL && strcmp(type, "valid") == 0) {
			s->auth = "dialback";
			s->state = S_READY;
			route_ready(s->route);
			return 0;
		}
		stream_error(s, "not-authorized", "Dialback refused");
		return 1;
	}
	if (xel_is(el, "verify", NS_DB)) {
		verify_done(s->route, el);
		return 0;
	}
	if (s->bidi && s->state == S_READY && is_stanza(el))
		return out_bidi_stanza(s, el);
	if (xel_is(el, "error", NS_STREAMS)) {
		struct xel *c = xel_first_elem(el);

		log_info("s2s %" PRIu64 " %s: %s sent stream error <%s/>",
		    s->id, s->conn->addr, s->remote,
		    c != NULL ? c->name : "?");
		set_closing(s);
		conn_close(s->conn);
		return 1;
	}
	stream_error(s, "unsupported-stanza-type", NULL);
	return 1;
}

/* -- XML callbacks ---------------------------------------------------- */

static int
on_open(void *ctx, struct xel *root, const char *default_ns)
{
	struct s2s *s = ctx;
	const char *id;

	if (!s->outgoing)
		return in_header(s, root, default_ns);
	if (strcmp(default_ns, NS_SERVER) != 0) {
		stream_error(s, "invalid-namespace", NULL);
		return 1;
	}
	id = xel_attr(root, "id");
	if (id == NULL || strlen(id) >= sizeof(s->stream_id)) {
		stream_error(s, "invalid-id", NULL);
		return 1;
	}
	snprintf(s->stream_id, sizeof(s->stream_id), "%s", id);
	s->state = S_FEATURES;
	return 0;
}

static int
on_stanza(void *ctx, struct xel *el)
{
	struct s2s *s = ctx;
	int rc;

	if (s->state == S_CLOSING) {
		arena_free(el->arena);
		return 1;
	}
	rc = s->outgoing ? out_element(s, el) : in_element(s, el);
	arena_free(el->arena);
	return rc;
}

static void
on_xml_close(void *ctx)
{
	struct s2s *s = ctx;

	if (s->state == S_CLOSING)
		return;
	if (!s->header_sent) {
		scram_random_hex(s->stream_id, 8);
		send_header(s);
	}
	end_stream(s);
}

static const struct xml_stream_cb s2s_xml_cb = {
	.on_open = on_open,
	.on_stanza = on_stanza,
	.on_close = on_xml_close,
};

/* -- rate limits of incoming streams ---------------------------------- */

#define BURST_SECONDS 2.0

static void
bucket_refill(struct s2s *s, double now)
{
	const struct conf_limits *l = &xmppd_conf->limits;
	double dt = now - s->bucket_at;

	s->tokens += dt * l->s2s_stanzas_per_second;
	if (s->tokens > BURST_SECONDS * l->s2s_stanzas_per_second)
		s->tokens = BURST_SECONDS * l->s2s_stanzas_per_second;
	s->byte_tokens += dt * (double)l->s2s_bytes_per_second;
	if (s->byte_tokens > BURST_SECONDS * (double)l->s2s_bytes_per_second)
		s->byte_tokens = BURST_SECONDS *
		    (double)l->s2s_bytes_per_second;
	s->bucket_at = now;
}

/* Seconds until neither bucket is in debt (after bucket_refill). */
static double
bucket_debt(const struct s2s *s)
{
	const struct conf_limits *l = &xmppd_conf->limits;
	double w = 0, b;

	if (l->s2s_stanzas_per_second && s->tokens < 0)
		w = -s->tokens / l->s2s_stanzas_per_second;
	if (l->s2s_bytes_per_second && s->byte_tokens < 0 &&
	    (b = -s->byte_tokens / (double)l->s2s_bytes_per_second) > w)
		w = b;
	return w;
}

static void
rate_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct s2s *s = (struct s2s *)((char *)w -
	    offsetof(struct s2s, rate_timer));
	double wait;

	bucket_refill(s, mono_now(l));
	if ((wait = bucket_debt(s)) > 0) {
		ev_timer_set(w, wait, 0.);
		ev_timer_start(l, w);
		return;
	}
	conn_resume(s->conn, CONN_PAUSE_RATE);
}

/* After a read on an incoming stream: over its rate, it waits. */
static void
bucket_check(struct s2s *s)
{
	double wait;

	if (s->outgoing || s->state == S_CLOSING ||
	    (s->conn->paused & CONN_PAUSE_RATE))
		return;
	bucket_refill(s, mono_now(loop));
	if ((wait = bucket_debt(s)) == 0)
		return;
	if (s->throttled++ == 0)
		log_info("s2s %" PRIu64 " %s: %s over its rate: reading paused "
		    "for %.2f s", s->id, s->conn->addr, s->remote ? s->remote :
		    "?", wait);
	conn_pause(s->conn, CONN_PAUSE_RATE);
	ev_timer_set(&s->rate_timer, wait, 0.);
	ev_timer_start(loop, &s->rate_timer);
}

/* -- connection callbacks --------------------------------------------- */

static struct s2s *
stream_new(struct conn *c, int outgoing)
{
	struct s2s *s = xcalloc(1, sizeof(*s));

	s->conn = c;
	s->id = c->id;
	s->outgoing = outgoing;
	s->auth = "";
	s->since = mono_now(loop);
	s->bucket_at = s->since;
	s->tokens = BURST_SECONDS * xmppd_conf->limits.s2s_stanzas_per_second;
	s->byte_tokens = BURST_SECONDS *
	    (double)xmppd_conf->limits.s2s_bytes_per_second;
	ev_init(&s->rate_timer, rate_cb);
	new_parser(s);
	s->next = streams;
	streams = s;
	conn_set_idle(c, IDLE_TIMEOUT);
	return s;
}

/* The negotiation deadline again (after the TLS handshake's own). */
static void
negotiate_deadline(struct s2s *s)
{
	double left = s->negotiate_until - mono_now(loop);

	if (s->negotiate_until > 0)
		conn_set_timeout(s->conn, left > 0 ? left : 0.001,
		    "s2s negotiation timeout");
}

static void *
on_accept(struct conn *c)
{
	struct s2s *s = stream_new(c, 0);

	s->negotiate_until = mono_now(loop) + NEGOTIATE_TIMEOUT;
	negotiate_deadline(s);
	log_info("s2s %" PRIu64 " %s: incoming stream", s->id, c->addr);
	return s;
}

static void
on_connected(struct conn *c)
{
	struct s2s *s = c->upper;

	s->negotiate_until = mono_now(loop) + NEGOTIATE_TIMEOUT;
	negotiate_deadline(s);
	s->route->connected_once = 1;
	if (!c->direct_tls)
		send_header(s);
}

static void
on_tls(struct conn *c)
{
	struct s2s *s = c->upper;

	s->tls = 1;
	negotiate_deadline(s);
	if (s->outgoing) {
		/* After STARTTLS or direct TLS: a fresh stream. */
		new_parser(s);
		send_header(s);
	}
}

static void
feed(struct s2s *s, const char *data, size_t len)
{
	enum xml_status st;

	s->in_feed = 1;
	st = xml_stream_feed(s->xs, data, len);
	s->in_feed = 0;
	switch (st) {
	case XMLS_ERROR:
		stream_error(s, xml_error_condition(xml_stream_error(s->xs)),
		    xml_stream_error_text(s->xs));
		break;
	case XMLS_CLOSED:
		on_xml_close(s);
		break;
	case XMLS_STOPPED:
	case XMLS_OK:
		if (s->restart && s->state != S_CLOSING) {
			new_parser(s);
			if (s->outgoing)
				s->header_sent = 1;
		}
		break;
	}
}

static void
on_data(struct conn *c, const char *data, size_t len)
{
	struct s2s *s = c->upper;

	if (s->state == S_CLOSING)
		return;
	if (!s->outgoing)
		s->byte_tokens -= (double)len;
	feed(s, data, len);
	bucket_check(s);
}

static void
on_timeout(struct conn *c, const char *reason)
{
	struct s2s *s = c->upper;

	if (s->route != NULL && s->route->stream == s && s->outgoing)
		s->route->timed_out = 1;
	stream_error(s, "connection-timeout", reason);
}

static void
on_close(struct conn *c)
{
	struct s2s *s = c->upper, **p;
	struct route *r = s->route;

	for (p = &streams; *p != NULL; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	if (r != NULL && r->stream == s) {
		r->stream = NULL;
		if (!c->connected && c->close_reason != NULL &&
		    strstr(c->close_reason, "timed out") != NULL)
			r->timed_out = 1;
		if (r->state == R_READY) {
			log_info("s2s %" PRIu64 ": stream to %s closed (%s)",
			    s->id, r->remote, c->close_reason ?
			    c->close_reason : "closed");
			r->state = R_IDLE;
			if (r->nq > 0 || r->nverifies > 0)
				route_start(r);
		} else
			route_next(r);  /* the next address or target */
	}
	for (size_t i = 0; i < s->npairs; i++)
		free(s->pairs[i]);
	ev_timer_stop(loop, &s->rate_timer);
	if (s->throttled > 0)
		log_info("s2s %" PRIu64 ": paused %u times for its rate", s->id,
		    s->throttled);
	xml_stream_free(s->xs);
	free(s->local);
	free(s->remote);
	free(s);
}

const struct conn_handler s2s_conn_handler = {
	.on_data = on_data,
	.on_tls = on_tls,
	.on_close = on_close,
	.on_accept = on_accept,
	.on_timeout = on_timeout,
	.on_connected = on_connected,
};

/* -- routes ----------------------------------------------------------- */

static struct route *
route_get(const char *local, const char *remote)
{
	size_t ll = strlen(local), lr = strlen(remote);
	char stack[2 * 1024 + 2], *key = ll + lr + 2 <= sizeof(stack) ?
	    stack : xmalloc(ll + lr + 2);
	struct route *r;

	/* "LOCAL REMOTE", built without snprintf: every stanza out asks. */
	memcpy(key, local, ll);
	key[ll] = ' ';
	memcpy(key + ll + 1, remote, lr + 1);
	if ((r = strmap_get(routes, key)) != NULL) {
		if (key != stack)
			free(key);
		return r;
	}
	r = xcalloc(1, sizeof(*r));
	r->key = key != stack ? key : xstrdup(key);
	r->local = xstrdup(local);
	r->remote = xstrdup(remote);
	r->qtail = &r->q;
	strmap_put(routes, key, r);
	return r;
}

static void
queue_clear(struct route *r, const char *condition)
{
	struct queued *q = r->q;

	r->q = NULL;
	r->qtail = &r->q;
	r->nq = r->qbytes = 0;
	while (q != NULL) {
		struct queued *next = q->next;

		if (condition != NULL)
			router_bounce_remote(q->st, condition);
		arena_free(q->st->arena);
		free(q);
		q = next;
	}
}

static void
verify_free(struct verify *v)
{
	free(v->local);
	free(v->remote);
	free(v->key);
	free(v);
}

/* Dialback verifications we could not ask: the incoming streams that
 * wait are told "invalid" (XEP-0220 §2.1.3: the receiving server could
 * not verify). */
static void
verifies_fail(struct route *r)
{
	for (size_t i = 0; i < r->nverifies; i++) {
		struct verify *v = r->verifies[i];
		struct s2s *in = stream_by_conn(v->in_conn);

		if (in != NULL && in->state != S_CLOSING)
			db_result_answer(in, v->local, v->remote, "invalid");
		verify_free(v);
	}
	r->nverifies = 0;
}

static void
route_failed(struct route *r, const char *condition)
{
	log_info("s2s: cannot reach %s from %s (%s); %zu stanzas bounced",
	    r->remote, r->local, condition, r->nq);
	r->state = R_IDLE;
	r->failed_until = mono_now(loop) + FAIL_HOLD;
	queue_clear(r, condition);
	verifies_fail(r);
}

static void
route_ready(struct route *r)
{
	struct s2s *s = r->stream;
	struct queued *q = r->q;

	r->state = R_READY;
	r->failed_until = 0;
	log_info("s2s %" PRIu64 " %s: stream to %s ready (%s, %s)", s->id,
	    s->conn->addr, r->remote, s->auth, s->tls ?
	    conn_tls_version(s->conn) : "no TLS");
	s->negotiate_until = 0;
	conn_set_timeout(s->conn, 0, NULL);
	r->q = NULL;
	r->qtail = &r->q;
	r->nq = r->qbytes = 0;
	while (q != NULL) {
		struct queued *next = q->next;

		send_stanza(s, q->st);
		arena_free(q->st->arena);
		free(q);
		q = next;
	}
	verify_send_all(r);
}

/* Send the db:verify requests of r that are not out yet, once its stream
 * has passed TLS (the authoritative server answers before or after it
 * authenticated us). */
static void
verify_send_all(struct route *r)
{
	struct s2s *s = r->stream;

	if (s == NULL || (s->state != S_READY && s->state != S_DIALBACK &&
	    s->state != S_SASL))
		return;
	for (size_t i = 0; i < r->nverifies; i++) {
		struct verify *v = r->verifies[i];
		struct buf b = {0};

		if (v->sent)
			continue;
		buf_adds(&b, "<db:verify from='");
		buf_add_xml_escaped(&b, v->local, strlen(v->local), 1);
		buf_adds(&b, "' to='");
		buf_add_xml_escaped(&b, v->remote, strlen(v->remote), 1);
		buf_adds(&b, "' id='");
		buf_add_xml_escaped(&b, v->stream_id, strlen(v->stream_id), 1);
		buf_adds(&b, "'>");
		buf_add_xml_escaped(&b, v->key, strlen(v->key), 0);
		buf_adds(&b, "</db:verify>");
		conn_write(s->conn, buf_head(&b), buf_avail(&b));
		buf_free(&b);
		v->sent = 1;
	}
}

/* <db:verify type=valid|invalid id=.../> from the authoritative server:
 * answer the incoming stream that asked. */
static void
verify_done(struct route *r, struct xel *el)
{
	const char *id = xel_attr(el, "id"), *type = xel_attr(el, "type");

	for (size_t i = 0; i < r->nverifies; i++) {
		struct verify *v = r->verifies[i];
		struct s2s *in;
		int valid;

		if (!v->sent || id == NULL || strcmp(v->stream_id, id) != 0)
			continue;
		valid = type != NULL && strcmp(type, "valid") == 0;
		in = stream_by_conn(v->in_conn);
		if (in != NULL && in->state != S_CLOSING) {
			db_result_answer(in, v->local, v->remote,
			    valid ? "valid" : "invalid");
			if (!valid)
				stream_error(in, "not-authorized",
				    "Dialback failed");
		}
		verify_free(v);
		memmove(&r->verifies[i], &r->verifies[i + 1],
		    (r->nverifies - i - 1) * sizeof(r->verifies[0]));
		r->nverifies--;
		return;
	}
}

/* An incoming stream that asked for XEP-0288 has authenticated remote
 * for local: our stanzas to remote may go over it, when the route has no
 * stream of its own and is not opening one. */
static void
bidi_offer(struct s2s *s, const char *local, const char *remote)
{
	struct route *r = route_get(local, remote);

	if (r->state != R_IDLE || r->stream != NULL)
		return;
	log_info("s2s %" PRIu64 " %s: stream from %s used both ways "
	    "(XEP-0288)", s->id, s->conn->addr, remote);
	r->stream = s;
	s->route = r;
	route_ready(r);
}

static void
try_address(struct route *r)
{
	const struct candidate *c = &r->cand[r->ci];
	const struct dns_addr *a = &r->addrs[r->ai++];
	const char *tls_local;
	struct sockaddr_storage ss;
	socklen_t len;
	struct conn *conn;
	struct s2s *s;

	memset(&ss, 0, sizeof(ss));
	if (a->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, a->addr, 16);
		s6->sin6_port = htons(c->port);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, a->addr, 4);
		s4->sin_port = htons(c->port);
		len = sizeof(*s4);
	}
	s = xcalloc(1, sizeof(*s));
	/* A service domain of ours (conference.HOST) speaks with its
	 * host's certificate (a peer authenticates it by dialback). */
	tls_local = router_service_host(r->local);
	conn = conn_connect((struct sockaddr *)&ss, len, &s2s_conn_handler, s,
	    CONNECT_TIMEOUT < NEGOTIATE_TIMEOUT ? CONNECT_TIMEOUT :
	    NEGOTIATE_TIMEOUT, tls_local ? tls_local : r->local, r->remote,
	    c->tls);
	if (conn == NULL) {
		free(s);
		route_next(r);
		return;
	}
	s->conn = conn;
	s->id = conn->id;
	s->outgoing = 1;
	s->auth = "";
	s->route = r;
	s->local = xstrdup(r->local);
	s->remote = xstrdup(r->remote);
	s->since = mono_now(loop);
	ev_init(&s->rate_timer, rate_cb);
	new_parser(s);
	s->next = streams;
	streams = s;
	conn_set_idle(conn, IDLE_TIMEOUT);
	r->stream = s;
	r->state = R_CONNECTING;
	log_info("s2s %" PRIu64 ": connecting to %s (%s port %u%s) for %s",
	    s->id, r->remote, c->host, c->port, c->tls ? ", direct TLS" : "",
	    r->local);
}

/* Look up the addresses of target r->ci: AAAA, then A (RFC 6120 §3.2.1
 * leaves the order to us; IPv6 first, as most clients do).  Past the
 * last target, the route has failed. */
static void
resolve_target(struct route *r)
{
	if (r->ci >= r->ncand) {
		/* RFC 6120 §8.3.3.17: found, but no talking to it in
		 * time; §8.3.3.16: not found, or not to be talked to. */
		route_failed(r, r->timed_out ||
		    (r->dns_failed && !r->connected_once) ?
		    "remote-server-timeout" : "remote-server-not-found");
		return;
	}
	r->naddrs = r->ai = 0;
	r->state = R_RESOLVING;
	r->addr_pending = 2;
	r->dnsq[0] = dns_query(r->cand[r->ci].host, DNS_T_AAAA, addr_cb, r);
	r->dnsq[1] = dns_query(r->cand[r->ci].host, DNS_T_A, addr_cb, r);
}

/* The last attempt failed: the next address of this target, else the
 * next target. */
static void
route_next(struct route *r)
{
	if (r->ai < r->naddrs) {
		try_address(r);
		return;
	}
	r->ci++;
	resolve_target(r);
}

static void
addr_cb(void *arg, const struct dns_result *res)
{
	struct route *r = arg;

	if (res->status == DNS_FAIL)
		r->dns_failed = 1;
	for (size_t i = 0; res->status == DNS_OK && i < res->naddr &&
	    r->naddrs < MAX_ADDRS; i++) {
		/* IPv6 answers come first in the list. */
		if (res->addr[i].family == AF_INET6) {
			memmove(&r->addrs[1], &r->addrs[0],
			    r->naddrs * sizeof(r->addrs[0]));
			r->addrs[0] = res->addr[i];
		} else
			r->addrs[r->naddrs] = res->addr[i];
		r->naddrs++;
	}
	if (--r->addr_pending > 0)
		return;
	r->dnsq[0] = r->dnsq[1] = 0;
	if (r->naddrs == 0) {
		r->ci++;
		resolve_target(r);
		return;
	}
	r->ai = 0;
	try_address(r);
}

static uint32_t
rnd32(void)
{
	uint32_t v;

	scram_random_salt((unsigned char *)&v, sizeof(v));
	return v;
}

/* One of the two SRV answers (tls: _xmpps-server, XEP-0368). */
static void
srv_answer(struct route *r, const struct dns_result *res, int tls)
{
	if (res->status == DNS_FAIL)
		r->dns_failed = 1;
	for (size_t i = 0; res->status == DNS_OK && i < res->nsrv &&
	    r->ncand < MAX_CANDIDATES; i++) {
		struct candidate *c = &r->cand[r->ncand++];

		c->host = xstrdup(res->srv[i].target);
		c->port = res->srv[i].port;
		c->priority = res->srv[i].priority;
		c->weight = res->srv[i].weight;
		c->tls = (uint8_t)tls;
	}
	if (--r->srv_pending > 0)
		return;
	if (r->ncand == 0) {
		/* RFC 6120 §3.2.2: no SRV records: the domain itself. */
		r->cand[0].host = xstrdup(r->remote);
		r->cand[0].port = 5269;
		r->cand[0].tls = 0;
		r->ncand = 1;
	} else {
		/* XEP-0368 §3: both lists in one order, by priority and
		 * weight (RFC 2782). */
		struct dns_srv tmp[MAX_CANDIDATES];

		for (size_t i = 0; i < r->ncand; i++) {
			tmp[i].target = r->cand[i].host;
			tmp[i].port = r->cand[i].port;
			tmp[i].tls = r->cand[i].tls;
			tmp[i].priority = r->cand[i].priority;
			tmp[i].weight = r->cand[i].weight;
		}
		dns_srv_order(tmp, r->ncand, rnd32);
		for (size_t i = 0; i < r->ncand; i++) {
			r->cand[i].host = tmp[i].target;
			r->cand[i].port = tmp[i].port;
			r->cand[i].tls = tmp[i].tls;
			r->cand[i].priority = tmp[i].priority;
			r->cand[i].weight = tmp[i].weight;
		}
	}
	r->ci = 0;
	resolve_target(r);
}

static void
srv_tls_cb(void *arg, const struct dns_result *res)
{
	struct route *r = arg;

	r->dnsq[0] = 0;
	srv_answer(r, res, 1);
}

static void
srv_plain_cb(void *arg, const struct dns_result *res)
{
	struct route *r = arg;

	r->dnsq[1] = 0;
	srv_answer(r, res, 0);
}

static void
route_start(struct route *r)
{
	char name[1100];

	for (size_t i = 0; i < r->ncand; i++)
		free(r->cand[i].host);
	r->ncand = r->ci = r->naddrs = r->ai = 0;
	r->timed_out = r->dns_failed = r->connected_once = 0;
	r->state = R_RESOLVING;
	r->srv_pending = 2;
	snprintf(name, sizeof(name), "_xmpps-server._tcp.%s", r->remote);
	r->dnsq[0] = dns_query(name, DNS_T_SRV, srv_tls_cb, r);
	snprintf(name, sizeof(name), "_xmpp-server._tcp.%s", r->remote);
	r->dnsq[1] = dns_query(name, DNS_T_SRV, srv_plain_cb, r);
}

/* -- the router's remote sender and start-up -------------------------- */

/*
 * The domain of from, a JID the server stamped or built (a session's, a
 * service's), without preparing it again: into buf, or NULL when it is
 * not one of ours as written (then the caller parses it).
 */
static const char *
stamped_domain(const char *from, char *buf, size_t size)
{
	const char *slash = strchr(from, '/');
	size_t bare = slash != NULL ? (size_t)(slash - from) : strlen(from);
	const char *at = memchr(from, '@', bare);    /* not the resource's */
	const char *d = at != NULL ? at + 1 : from;
	size_t n = (size_t)(from + bare - d);
	if (n == 0 || n >= size)
		return NULL;
	memcpy(buf, d, n);
	buf[n] = '\0';
	return local_domain(buf) ? buf : NULL;
}

/* A stanza for remote: over the route from its sender's domain. */
static void
remote_send(struct xel *st, const char *remote)
{
	const char *from = xel_attr(st, "from"), *local;
	char dom[1024];
	struct jid f = {0};
	struct route *r;
	size_t bytes;
	struct queued *q;

	if (from == NULL)
		return;
	if ((local = stamped_domain(from, dom, sizeof(dom))) == NULL) {
		if (jid_parse(&f, from) < 0 || !local_domain(f.domain)) {
			jid_free(&f);
			return;         /* not ours to send */
		}
		local = f.domain;
	}
	if (!domain_allowed(remote)) {
		jid_free(&f);
		router_bounce_remote(st, "remote-server-not-found");
		return;
	}
	r = route_get(local, remote);
	jid_free(&f);
	if (r->state == R_READY && r->stream != NULL &&
	    r->stream->state != S_CLOSING) {
		send_stanza(r->stream, st);
		return;
	}
	if (r->state == R_IDLE && r->failed_until > mono_now(loop)) {
		router_bounce_remote(st, "remote-server-not-found");
		return;
	}
	bytes = 256;    /* a rough cost: the copy's arena grows with it */
	if (r->nq >= QUEUE_MAX || r->qbytes + bytes > QUEUE_BYTES) {
		router_bounce_remote(st, "resource-constraint");
		return;
	}
	q = xcalloc(1, sizeof(*q));
	q->st = xel_copy_fit(st, 0);
	q->bytes = bytes;
	*r->qtail = q;
	r->qtail = &q->next;
	r->nq++;
	r->qbytes += bytes;
	if (r->state == R_IDLE)
		route_start(r);
}

/* As c2s: a stream quiet for PARSER_IDLE frees its parser (most of a
 * federation's streams carry a message now and then). */
static void
idle_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	ev_tstamp now = mono_now(l);
	unsigned n = 0;

	for (struct s2s *s = streams; s != NULL; s = s->next)
		if (s->xs != NULL && s->state != S_CLOSING &&
		    now - s->conn->last_read >= PARSER_IDLE)
			n += (unsigned)xml_stream_release(s->xs);
	if (n > 0)
		log_debug("s2s: %u idle streams released their parser", n);
	parser_idle_swept(l, n);
}

void
s2s_init(struct ev_loop *l, const struct conf *conf)
{
	loop = l;
	routes = strmap_new();
	ev_timer_init(&idle_w, idle_cb, PARSER_IDLE, PARSER_IDLE);
	ev_timer_start(l, &idle_w);
	ev_unref(l);
	/* A new secret each start: keys of an earlier run are refused,
	 * which only costs a peer one more dialback. */
	scram_random_salt(secret, sizeof(secret));
	if (dns_init(l, conf->dns_servers) == -1)
		log_warnx("s2s: no DNS resolver: remote domains are "
		    "unreachable");
	s2s_set_conf(conf);
}

/* Federation is on with an s2s or s2s-tls listener (dialback needs other
 * servers to reach us); without one, stanzas to other domains are
 * answered <remote-server-not-found/> at once.  Listeners change at a
 * restart only. */
static int
federating(const struct conf *conf)
{
	for (size_t i = 0; i < conf->nlisteners; i++)
		if (conf->listeners[i].kind == LISTEN_S2S ||
		    conf->listeners[i].kind == LISTEN_S2S_TLS)
			return 1;
	return 0;
}

void
s2s_set_conf(const struct conf *conf)
{
	dns_set_servers(conf->dns_servers);
	router_set_remote(federating(conf) ? remote_send : NULL);
}

static void
route_free_cb(const char *key, void *value, void *arg)
{
	struct route *r = value;

	queue_clear(r, arg);
	verifies_fail(r);
	for (size_t i = 0; i < r->ncand; i++)
		free(r->cand[i].host);
	free(r->key);
	free(r->local);
	free(r->remote);
	free(r);
}

void
s2s_shutdown(void)
{
	for (struct s2s *s = streams; s != NULL; s = s->next) {
		if (s->route != NULL)
			s->route->stream = NULL;
		s->route = NULL;
		stream_error(s, "system-shutdown", NULL);
	}
	if (routes != NULL) {
		strmap_foreach(routes, route_free_cb, "remote-server-timeout");
		strmap_free(routes);
		routes = NULL;
	}
	router_set_remote(NULL);
	dns_shutdown();
	if (ev_is_active(&idle_w)) {
		ev_ref(loop);
		ev_timer_stop(loop, &idle_w);
	}
}

static const char *
state_name(const struct s2s *s)
{
	switch (s->state) {
	case S_READY:
		return "ready";
	case S_CLOSING:
		return "closing";
	case S_HEADER:
		return s->conn->state == CONN_CONNECTING ? "connecting" :
		    "negotiating";
	case S_OPEN:
		return s->npairs > 0 ? "ready" : "negotiating";
	default:
		return "negotiating";
	}
}

void
s2s_foreach(void (*fn)(const struct s2s_info *, void *), void *arg)
{
	for (struct s2s *s = streams; s != NULL; s = s->next) {
		struct s2s_info i = {
			.local = s->local ? s->local : "",
			.remote = s->remote ? s->remote : "",
			.outgoing = s->outgoing,
			.state = state_name(s),
			.auth = s->auth,
			.tls = s->tls ? conn_tls_version(s->conn) : "",
			.cert_valid = s->cert_ok,
			.queued = s->route != NULL ? s->route->nq : 0,
			.since = s->since,
			.stanzas_in = s->stanzas_in,
			.stanzas_out = s->stanzas_out,
		};

		fn(&i, arg);
	}
}
