/*
 * The /metrics route (metrics.h): who may read it, and the text.  It
 * reads what the control plane reads (stats.c, the session manager, the
 * store) and the HTTP layer's own counters; nothing here is kept.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "buf.h"
#include "conf.h"
#include "control/metrics.h"
#include "control/stats.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/transport.h"
#include "log.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/proxy65.h"
#include "store/store.h"

#define METRICS_PATH "/metrics"
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

static const struct conf *mconf;   /* NULL: no route */

/* Requests on a "listener PORT" of the block need nothing more. */
static int
open_listener(int port)
{
	for (size_t i = 0; i < mconf->metrics.nports; i++)
		if (mconf->metrics.ports[i] == port)
			return 1;
	return 0;
}

/* RFC 6750 §2.1: "Authorization: Bearer TOKEN" (the scheme is case-
 * insensitive, RFC 9110 §11.1); the token compared by its SHA-256 in
 * constant time.  200, or the status to refuse with. */
static int
check_access(struct http_request *r)
{
	const char *auth = http_header(r, "Authorization");
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	const char *tok;

	if (open_listener(r->listen_port))
		return 200;
	if (!mconf->metrics.token_set)
		return 403;        /* nothing could authorize this */
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
		return 401;
	for (tok = auth + 7; *tok == ' '; tok++)
		;
	if (EVP_Digest(tok, strlen(tok), md, &len, EVP_sha256(), NULL) != 1 ||
	    len != 32 || CRYPTO_memcmp(md, mconf->metrics.token_sha256, 32))
		return 401;
	return 200;
}

static void
family(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

struct transports {
	const char *kind[8];
	size_t n[8];
	size_t nkinds;
	size_t detached;
};

static void
count_session(struct session *s, void *arg)
{
	struct transports *t = arg;
	size_t i;

	if (s->t == NULL) {
		t->detached++;
		return;
	}
	for (i = 0; i < t->nkinds; i++)
		if (strcmp(t->kind[i], s->t->ops->kind) == 0)
			break;
	if (i == t->nkinds) {
		if (t->nkinds == sizeof(t->kind) / sizeof(t->kind[0]))
			return;
		t->kind[t->nkinds++] = s->t->ops->kind;
	}
	t->n[i]++;
}

static void
sessions(struct buf *b)
{
	struct transports t = {{"c2s"}, {0}, 1, 0};

	sm_foreach_session(count_session, &t);
	family(b, "xmppd_sessions", "gauge", "Bound client sessions by "
	    "transport (\"detached\": waiting for XEP-0198 resumption).");
	for (size_t i = 0; i < t.nkinds; i++)
		buf_printf(b, "xmppd_sessions{transport=\"%s\"} %zu\n",
		    t.kind[i], t.n[i]);
	buf_printf(b, "xmppd_sessions{transport=\"detached\"} %zu\n",
	    t.detached);
}

static void
storage(struct buf *b)
{
	struct store_stats st;
	uint64_t cumulative = 0;

	store_get_stats(&st);
	family(b, "xmppd_storage_queue_depth", "gauge",
	    "Storage requests waiting for the storage thread.");
	buf_printf(b, "xmppd_storage_queue_depth %zu\n", st.queue_depth);
	family(b, "xmppd_storage_requests_total", "counter",
	    "Storage requests served.");
	buf_printf(b, "xmppd_storage_requests_total %llu\n",
	    (unsigned long long)st.requests);
	family(b, "xmppd_storage_commit_seconds", "histogram",
	    "Time of the COMMIT of each storage transaction that wrote.");
	for (size_t i = 0; i < STORE_COMMIT_BUCKETS; i++) {
		cumulative += st.commit_hist[i];
		buf_printf(b, "xmppd_storage_commit_seconds_bucket{le=\"%g\"} "
		    "%llu\n", store_commit_bounds_ms[i] / 1000,
		    (unsigned long long)cumulative);
	}
	cumulative += st.commit_hist[STORE_COMMIT_BUCKETS];
	buf_printf(b, "xmppd_storage_commit_seconds_bucket{le=\"+Inf\"} "
	    "%llu\n", (unsigned long long)cumulative);
	buf_printf(b, "xmppd_storage_commit_seconds_sum %.6f\n",
	    st.commit_ms_sum / 1000);
	buf_printf(b, "xmppd_storage_commit_seconds_count %llu\n",
	    (unsigned long long)cumulative);
}

static void
http_counts(struct buf *b)
{
	struct http_stats hs;

	http_get_stats(&hs);
	family(b, "xmppd_http_requests_total", "counter",
	    "HTTP responses sent, by status code.");
	for (int code = 100; code < 600; code++)
		if (hs.responses[code] != 0)
			buf_printf(b, "xmppd_http_requests_total{code=\"%d\"} "
			    "%llu\n", code,
			    (unsigned long long)hs.responses[code]);
	family(b, "xmppd_http_connections", "gauge",
	    "Open HTTP connections.");
	buf_printf(b, "xmppd_http_connections %llu\n",
	    (unsigned long long)hs.open);
}

static void
proxy65_counts(struct buf *b)
{
	struct proxy65_stats ps;

	proxy65_get_stats(&ps);
	family(b, "xmppd_proxy65_streams", "gauge", "XEP-0065 proxy "
	    "connections waiting for activation, and active streams.");
	buf_printf(b, "xmppd_proxy65_streams{state=\"waiting\"} %zu\n",
	    ps.pending);
	buf_printf(b, "xmppd_proxy65_streams{state=\"active\"} %zu\n",
	    ps.active);
	family(b, "xmppd_proxy65_activations_total", "counter",
	    "XEP-0065 proxy streams activated.");
	buf_printf(b, "xmppd_proxy65_activations_total %llu\n",
	    (unsigned long long)ps.activated);
	family(b, "xmppd_proxy65_bytes_total", "counter",
	    "Bytes relayed by the XEP-0065 proxy, both ways.");
	buf_printf(b, "xmppd_proxy65_bytes_total %llu\n",
	    (unsigned long long)ps.bytes);
}

static void
render(struct buf *b)
{
	struct stats_snapshot s;
	struct conn_stats cs;

	stats_get(&s);
	conn_get_stats(&cs);
	family(b, "xmppd_uptime_seconds", "gauge", "Seconds since start.");
	buf_printf(b, "xmppd_uptime_seconds %.0f\n", s.uptime);
	sessions(b);
	family(b, "xmppd_users", "gauge", "Distinct users with a session.");
	buf_printf(b, "xmppd_users %zu\n", s.users);
	family(b, "xmppd_logins_total", "counter", "Sessions bound.");
	buf_printf(b, "xmppd_logins_total %llu\n",
	    (unsigned long long)s.logins);
	family(b, "xmppd_login_failures_total", "counter",
	    "Failed authentications.");
	buf_printf(b, "xmppd_login_failures_total %llu\n",
	    (unsigned long long)s.auth_failures);
	family(b, "xmppd_stanzas_total", "counter",
	    "Stanzas from and to clients.");
	buf_printf(b, "xmppd_stanzas_total{direction=\"in\"} %llu\n",
	    (unsigned long long)s.stanzas_in);
	buf_printf(b, "xmppd_stanzas_total{direction=\"out\"} %llu\n",
	    (unsigned long long)s.stanzas_out);
	family(b, "xmppd_bytes_total", "counter",
	    "Bytes read and written on every connection (after TLS).");
	buf_printf(b, "xmppd_bytes_total{direction=\"in\"} %llu\n",
	    (unsigned long long)cs.bytes_in);
	buf_printf(b, "xmppd_bytes_total{direction=\"out\"} %llu\n",
	    (unsigned long long)cs.bytes_out);
	family(b, "xmppd_connections", "gauge", "Open connections.");
	buf_printf(b, "xmppd_connections %zu\n", cs.open);
	family(b, "xmppd_offline_messages", "gauge",
	    "Messages stored for offline users.");
	buf_printf(b, "xmppd_offline_messages %lld\n", s.offline_queue);
	storage(b);
	http_counts(b);
	proxy65_counts(b);
	buf_adds(b, "# EOF\n");
}

static void
handle_metrics(struct http_request *r, void *arg)
{
	struct buf b = BUF_INIT;
	int st;

	if (mconf == NULL || strcmp(r->path, METRICS_PATH) != 0) {
		http_respond_status(r, 404);
		return;
	}
	if ((st = check_access(r)) != 200) {
		if (st == 401)
			http_add_header(r, "WWW-Authenticate",
			    "Bearer realm=\"xmppd metrics\"");
		log_info("http %llu %s: client %s: metrics refused (%d)",
		    (unsigned long long)r->conn_id, r->peer_addr, r->client_ip,
		    st);
		http_respond_status(r, st);
		return;
	}
	render(&b);
	http_add_header(r, "Cache-Control", "no-store");
	http_respond(r, 200, CONTENT_TYPE, buf_head(&b), buf_avail(&b));
	buf_free(&b);
}

void
metrics_set_conf(const struct conf *conf)
{
	if (conf->metrics.enabled && mconf == NULL &&
	    http_route_add(METRICS_PATH, HTTP_M_GET, 0, handle_metrics,
	    NULL) == -1)
		log_warnx("metrics: cannot route %s", METRICS_PATH);
	else if (!conf->metrics.enabled && mconf != NULL)
		http_route_remove(METRICS_PATH);
	mconf = conf->metrics.enabled ? conf : NULL;
}

void
metrics_init(const struct conf *conf)
{
	metrics_set_conf(conf);
}
