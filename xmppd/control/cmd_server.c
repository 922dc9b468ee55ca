/*
 * The control commands about the daemon itself: status, stop, reload,
 * stats, log-level and check (configuration and certificates).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "conf.h"
#include "control/control_int.h"
#include "control/stats.h"
#include "core/sm.h"
#include "ctl.h"
#include "log.h"
#include "mono.h"
#include "net/proxy65.h"
#include "net/tls.h"
#include "store/store.h"
#include "xmalloc.h"
#include "xmppd.h"

void
handle_status(struct control_conn *c, char **args, size_t nargs)
{
	static const char *const cols[] = { "key", "value" };
	struct store_stats st;
	struct buf hosts = BUF_INIT;
	int r = 0;

	store_get_stats(&st);
	for (size_t i = 0; i < xmppd_conf->nhosts; i++) {
		if (i > 0)
			buf_addc(&hosts, CTL_LIST_SEP);
		buf_printf(&hosts, "%s", xmppd_conf->hosts[i].name);
	}
	reply_cols(c, cols, nitems(cols));
	r |= reply_row_kv(c, "version", "%s", XMPPD_VERSION);
	r |= reply_row_kv(c, "uptime:int", "%lld",
	    (long long)(mono_now(xmppd_loop) - xmppd_started));
	r |= reply_row_kv(c, "hosts:list", "%s", hosts.data ? hosts.data : "");
	r |= reply_row_kv(c, "sessions:int", "%zu", sm_session_count());
	r |= reply_row_kv(c, "users-online:int", "%zu", sm_user_count());
	r |= reply_row_kv(c, "storage-queue:int", "%zu", st.queue_depth);
	r |= reply_row_kv(c, "storage-commits:int", "%llu",
	    (unsigned long long)st.commits);
	r |= reply_row_kv(c, "last-commit-ms:num", "%.3f", st.last_commit_ms);
	r |= reply_row_kv(c, "rss-kb:int", "%ld", stats_rss_kb());
	r |= reply_row_kv(c, "offline-queue:int", "%lld",
	    stats_get_offline_queue());
	r |= reply_row_kv(c, "pid:int", "%ld", (long)getpid());
	buf_free(&hosts);
	if (c->dead)
		return;
	if (r != 0)
		reply_err(c, CTL_E_INTERNAL, "status row too long");
	else
		reply_ok(c);
}

void
handle_stop(struct control_conn *c, char **args, size_t nargs)
{
	control_log_change(c->uid, c->id, "stop", NULL, NULL, "requested");
	reply_ok(c);
	xmppd_request_stop();
}

void
handle_reload(struct control_conn *c, char **args, size_t nargs)
{
	control_log_change(c->uid, c->id, "reload", NULL, NULL, "requested");
	reply_ok(c);
	xmppd_request_reload();
}

void
handle_stats(struct control_conn *c, char **args, size_t nargs)
{
	static const char *const cols[] = { "key", "value" };
	struct stats_snapshot st;
	struct proxy65_stats ps;
	int r = 0;

	stats_get(&st);
	reply_cols(c, cols, nitems(cols));
	r |= reply_row_kv(c, "uptime:int", "%.0f", st.uptime);
	r |= reply_row_kv(c, "sessions:int", "%zu", st.sessions);
	r |= reply_row_kv(c, "users-online:int", "%zu", st.users);
	r |= reply_row_kv(c, "logins:int", "%llu",
	    (unsigned long long)st.logins);
	r |= reply_row_kv(c, "logins-per-min:int", "%u", st.logins_per_min);
	r |= reply_row_kv(c, "auth-failures:int", "%llu",
	    (unsigned long long)st.auth_failures);
	r |= reply_row_kv(c, "kicks:int", "%llu",
	    (unsigned long long)st.kicks);
	r |= reply_row_kv(c, "stanzas-in:int", "%llu",
	    (unsigned long long)st.stanzas_in);
	r |= reply_row_kv(c, "stanzas-out:int", "%llu",
	    (unsigned long long)st.stanzas_out);
	r |= reply_row_kv(c, "stanzas-in-per-s:num", "%.1f",
	    st.stanzas_in_per_s);
	r |= reply_row_kv(c, "stanzas-out-per-s:num", "%.1f",
	    st.stanzas_out_per_s);
	r |= reply_row_kv(c, "bytes-in:int", "%llu",
	    (unsigned long long)st.bytes_in);
	r |= reply_row_kv(c, "bytes-out:int", "%llu",
	    (unsigned long long)st.bytes_out);
	r |= reply_row_kv(c, "bytes-in-per-s:num", "%.0f", st.bytes_in_per_s);
	r |= reply_row_kv(c, "bytes-out-per-s:num", "%.0f", st.bytes_out_per_s);
	r |= reply_row_kv(c, "offline-queue:int", "%lld", st.offline_queue);
	r |= reply_row_kv(c, "rss-kb:int", "%ld", st.rss_kb);
	r |= reply_row_kv(c, "storage-queue:int", "%zu", st.store_queue);
	r |= reply_row_kv(c, "storage-commits:int", "%llu",
	    (unsigned long long)st.store_commits);
	r |= reply_row_kv(c, "last-commit-ms:num", "%.3f", st.commit_ms);
	proxy65_get_stats(&ps);
	r |= reply_row_kv(c, "proxy65-waiting:int", "%zu", ps.pending);
	r |= reply_row_kv(c, "proxy65-active:int", "%zu", ps.active);
	r |= reply_row_kv(c, "proxy65-bytes:int", "%llu",
	    (unsigned long long)ps.bytes);
	if (c->dead)
		return;
	if (r != 0)
		reply_err(c, CTL_E_INTERNAL, "stats row too long");
	else
		reply_ok(c);
}

/* log-level [LEVEL]: "ok LEVEL", the level in force afterwards. */
void
handle_log_level(struct control_conn *c, char **args, size_t nargs)
{
	struct ctl_line l;
	enum log_level lvl;

	if (nargs == 1) {
		if (!c->privileged) {
			reply_err(c, CTL_E_DENIED, "permission denied: "
			    "setting the log level needs root or the daemon's "
			    "user");
			return;
		}
		if (log_level_parse(args[0], &lvl) == -1) {
			reply_err(c, CTL_E_USAGE, "LEVEL is one of error, "
			    "warning, info, debug");
			return;
		}
		log_set_level(lvl);
		control_log_change(c->uid, c->id, "log-level", NULL, NULL,
		    log_level_name(lvl));
	}
	reply_line(c, &l, "ok");
	ctl_line_add(&l, log_level_name(log_level_cur));
	reply_end(c, &l);
}

/*
 * check: what only the daemon can see.  Rows "level subject message":
 * the configuration file parsed again, each host's certificate (expiry,
 * warning under 30 days), and the listeners as "info listener
 * ADDRESS PORT KIND" for xmppctl to connect to.
 */
static int
check_row(struct control_conn *c, const char *level, const char *subject,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
check_row(struct control_conn *c, const char *level, const char *subject,
    const char *fmt, ...)
{
	struct ctl_line l;
	struct buf m = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&m, fmt, ap);
	va_end(ap);
	reply_line(c, &l, "row");
	ctl_line_add(&l, level);
	ctl_line_add(&l, subject);
	ctl_line_addn(&l, m.data ? m.data : "", buf_avail(&m));
	buf_free(&m);
	return ctl_line_end(&l);
}

static void
check_certificate(struct control_conn *c, const struct conf_host *h)
{
	FILE *f;
	X509 *x;
	const ASN1_TIME *na;
	int days = 0, secs = 0;

	if (h->certificate == NULL) {
		check_row(c, "error", h->name, "no certificate configured");
		return;
	}
	if ((f = fopen(h->certificate, "r")) == NULL) {
		check_row(c, "error", h->name, "certificate %s: %s",
		    h->certificate, strerror(errno));
		return;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL) {
		check_row(c, "error", h->name, "certificate %s: not a PEM "
		    "certificate", h->certificate);
		return;
	}
	na = X509_get0_notAfter(x);
	if (ASN1_TIME_diff(&days, &secs, NULL, na) != 1)
		check_row(c, "error", h->name, "certificate %s: unreadable "
		    "expiry date", h->certificate);
	else if (days < 0 || (days == 0 && secs < 0))
		check_row(c, "error", h->name, "certificate %s has expired",
		    h->certificate);
	else if (days < 30)
		check_row(c, "warning", h->name, "certificate %s expires in "
		    "%d days", h->certificate, days);
	else
		check_row(c, "ok", h->name, "certificate %s valid for %d more "
		    "days", h->certificate, days);
	if (X509_get0_notBefore(x) != NULL &&
	    X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
		check_row(c, "error", h->name, "certificate %s is not valid "
		    "yet", h->certificate);
	X509_free(x);
}

/*
 * With federation on: whether other servers would accept the host's
 * certificate (XEP-0178, RFC 6125): a chain to a root of the system's
 * store (or tls-ca-file), naming the host, usable by a TLS server.  A
 * certificate they refuse still federates by dialback with servers that
 * allow it (s2s-secure-auth off in xmppd, Prosody's and ejabberd's
 * defaults), not with those that require valid certificates.
 */
static void
check_federation_certificate(struct control_conn *c, const struct conf *cf,
    const struct conf_host *h)
{
	STACK_OF(X509) *chain = sk_X509_new_null();
	char err[512];
	X509_STORE *store = tls_trust_store(cf, err, sizeof(err));
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509 *leaf = NULL, *x;
	FILE *f = h->certificate ? fopen(h->certificate, "r") : NULL;
	int ok;

	if (store == NULL) {
		check_row(c, "warning", h->name, "%s", err);
		goto done;
	}
	if (f == NULL || chain == NULL || ctx == NULL)
		goto done;
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
		if (leaf == NULL)
			leaf = x;
		else
			sk_X509_push(chain, x);
	}
	ERR_clear_error();
	if (leaf == NULL)
		goto done;      /* check_certificate said why */
	if (X509_STORE_CTX_init(ctx, store, leaf, chain) != 1)
		goto done;
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
	ok = X509_verify_cert(ctx) == 1;
	if (!ok)
		check_row(c, "warning", h->name, "other servers will not accept "
		    "certificate %s (%s): federation by dialback only, and "
		    "not with servers that require valid certificates",
		    h->certificate, X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(ctx)));
	else if (X509_check_host(leaf, h->name, strlen(h->name),
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) != 1)
		check_row(c, "warning", h->name, "certificate %s does not name "
		    "%s: other servers will not accept it for this domain",
		    h->certificate, h->name);
	else
		check_row(c, "ok", h->name, "certificate %s is valid for "
		    "federation", h->certificate);
done:
	ERR_clear_error();
	if (f != NULL)
		fclose(f);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
}

static int
federates(const struct conf *cf)
{
	for (size_t i = 0; i < cf->nlisteners; i++)
		if (cf->listeners[i].kind == LISTEN_S2S ||
		    cf->listeners[i].kind == LISTEN_S2S_TLS)
			return 1;
	return 0;
}

void
handle_check(struct control_conn *c, char **args, size_t nargs)
{
	static const char *const cols[] = { "level", "subject", "message" };
	const struct conf *cf = xmppd_conf;
	char err[1024];

	reply_cols(c, cols, nitems(cols));
	if (cf->source == NULL || strcmp(cf->source, "(default)") == 0)
		check_row(c, "ok", "configuration", "built-in default");
	else {
		struct conf *n = conf_load(cf->source, err, sizeof(err));

		if (n == NULL)
			check_row(c, "error", "configuration", "%s", err);
		else {
			check_row(c, "ok", "configuration", "%s parses",
			    cf->source);
			conf_free(n);
		}
	}
	for (size_t i = 0; i < cf->nhosts; i++) {
		check_row(c, "info", "host", "%s", cf->hosts[i].name);
		check_certificate(c, &cf->hosts[i]);
		if (federates(cf))
			check_federation_certificate(c, cf, &cf->hosts[i]);
	}
	for (size_t i = 0; i < cf->nlisteners; i++)
		check_row(c, "info", "listener", "%s %d %s",
		    cf->listeners[i].address, cf->listeners[i].port,
		    conf_listen_kind_name(cf->listeners[i].kind));
	if (c->dead || control_conn_output(c) == -1)
		return;
	reply_ok(c);
}
