/*
 * OpenSSL contexts per virtual host, SNI and ALPN selection, and the
 * channel-binding data that SCRAM-PLUS needs.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "conf.h"
#include "log.h"
#include "net/tls.h"
#include "xmalloc.h"

struct tls_host {
	char *name;
	SSL_CTX *ctx;
	SSL_CTX *cctx;          /* s2s: our outgoing streams */
};

static struct tls_host *hosts;
static size_t nhosts;

/* ALPN protocol lists in wire format, by enum tls_alpn; an SSL points
 * to its own with its application data. */
static const struct alpn {
	const unsigned char *wire;
	unsigned int len;
} alpns[] = {
	[TLS_ALPN_XMPP] = { (const unsigned char *)"\x0bxmpp-client", 12 },
	[TLS_ALPN_HTTP] = { (const unsigned char *)"\x08http/1.1", 9 },
	[TLS_ALPN_XMPP_SERVER] = { (const unsigned char *)"\x0bxmpp-server",
	    12 },
};
static const unsigned char alpn_server[] = "\x0bxmpp-server";

static const struct tls_host *
host_find(const char *name)
{
	for (size_t i = 0; i < nhosts; i++)
		if (strcasecmp(hosts[i].name, name) == 0)
			return &hosts[i];
	return NULL;
}

static SSL_CTX *
host_ctx(const char *name)
{
	const struct tls_host *h = host_find(name);

	return h != NULL ? h->ctx : NULL;
}

/* Any peer certificate, or none, lets the handshake go on: the stream
 * layer decides (tls_peer_check), and may still authenticate the peer
 * by dialback (XEP-0220). */
static int
accept_any_cb(int ok, X509_STORE_CTX *x)
{
	return 1;
}

/* SNI: switch to the named host's context; unknown names keep the
 * default (first host) and the stream layer answers <host-unknown/>. */
static int
sni_cb(SSL *ssl, int *al, void *arg)
{
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	SSL_CTX *ctx;

	if (name && (ctx = host_ctx(name)) != NULL &&
	    ctx != SSL_get_SSL_CTX(ssl))
		SSL_set_SSL_CTX(ssl, ctx);
	return SSL_TLSEXT_ERR_OK;
}

/* ALPN (XEP-0368 §3, RFC 7301 §3.2): select the listener's protocol,
 * "xmpp-client" or "http/1.1", when offered; a client that offers only
 * other protocols gets no ALPN extension back (and is served the
 * listener's protocol all the same). */
static int
alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	const struct alpn *a = SSL_get_app_data(ssl);
	unsigned char *sel;

	if (a == NULL || SSL_select_next_proto(&sel, outlen, a->wire, a->len,
		in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static void
ssl_errstr(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, len, "unknown error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

/*
 * TLS 1.2 suites from tls-ciphers (default CONF_TLS_CIPHERS: ECDHE with
 * AEAD only), TLS 1.3 suites from tls-ciphersuites or OpenSSL's default.
 * DHE is not in the default, but works when listed: dh_auto picks an
 * RFC 7919 group as strong as the certificate's key.  conf.c checked
 * both strings already.
 */
static int
ctx_ciphers(SSL_CTX *ctx, const struct conf *conf, const char *host,
    char *err, size_t errlen)
{
	const char *tls12 = conf->tls_ciphers ? conf->tls_ciphers :
	    CONF_TLS_CIPHERS;
	char e[256];

	SSL_CTX_set_dh_auto(ctx, 1);
	if (SSL_CTX_set_cipher_list(ctx, tls12) != 1 ||
	    (conf->tls_ciphersuites != NULL &&
	    SSL_CTX_set_ciphersuites(ctx, conf->tls_ciphersuites) != 1)) {
		ssl_errstr(e, sizeof(e));
		snprintf(err, errlen, "host %s: cannot set the cipher suites: "
		    "%s", host, e);
		return -1;
	}
	return 0;
}

X509_STORE *
tls_trust_store(const struct conf *conf, char *err, size_t errlen)
{
	X509_STORE *st = X509_STORE_new();
	char e[256];

	if (st == NULL) {
		snprintf(err, errlen, "X509_STORE_new failed");
		return NULL;
	}
	if (X509_STORE_set_default_paths(st) != 1)
		ERR_clear_error();      /* no system store: tls-ca-file only */
	if (conf->tls_ca_file != NULL &&
	    X509_STORE_load_file(st, conf->tls_ca_file) != 1) {
		ssl_errstr(e, sizeof(e));
		snprintf(err, errlen, "cannot load tls-ca-file %s: %s",
		    conf->tls_ca_file, e);
		X509_STORE_free(st);
		return NULL;
	}
	return st;
}

/* A context of method for host h, TLS 1.2 at least; NULL with err set. */
static SSL_CTX *
ctx_alloc(const SSL_METHOD *method, const struct conf_host *h, char *err,
    size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(method);
	char e[256];

	if (ctx == NULL) {
		ssl_errstr(e, sizeof(e));
		snprintf(err, errlen, "host %s: SSL_CTX_new: %s", h->name, e);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	return ctx;
}

static SSL_CTX *
ctx_new(const struct conf *conf, const struct conf_host *h,
    X509_STORE *trust, char *err, size_t errlen)
{
	SSL_CTX *ctx = ctx_alloc(TLS_server_method(), h, err, errlen);
	char e[256];

	if (ctx == NULL)
		return NULL;
	/* No renegotiation, either side's (a TLS 1.2 client asking gets a
	 * no_renegotiation alert); OpenSSL 3 refuses a client's by default
	 * too (SSL_OP_ALLOW_CLIENT_RENEGOTIATION unset). */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
	    SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
	if (ctx_ciphers(ctx, conf, h->name, err, errlen) == -1)
		goto fail;
	/* Read whole socket buffers instead of a record header, then its
	 * body: half the read(2) calls.  conn_read_cb reads until
	 * WANT_READ and conn_resume feeds a read event, so bytes buffered
	 * here are never stranded. */
	SSL_CTX_set_read_ahead(ctx, 1);
	/* TLS 1.3: no ticket right after the handshake; conn.c asks for
	 * one with the first data it sends, so both share a write. */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(ctx, h->certificate) != 1) {
		ssl_errstr(e, sizeof(e));
		snprintf(err, errlen, "host %s: cannot load certificate %s: %s",
		    h->name, h->certificate, e);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, h->key, SSL_FILETYPE_PEM) != 1) {
		ssl_errstr(e, sizeof(e));
		snprintf(err, errlen, "host %s: cannot load key %s: %s",
		    h->name, h->key, e);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "host %s: key %s does not match "
		    "certificate %s", h->name, h->key, h->certificate);
		goto fail;
	}
	SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
	SSL_CTX_set1_cert_store(ctx, trust);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Our outgoing server-to-server streams from host h: the same
 * certificate (for SASL EXTERNAL, XEP-0178), the same suites. */
static SSL_CTX *
client_ctx_new(const struct conf *conf, const struct conf_host *h,
    X509_STORE *trust, char *err, size_t errlen)
{
	SSL_CTX *ctx = ctx_alloc(TLS_client_method(), h, err, errlen);
	char e[256];

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (ctx_ciphers(ctx, conf, h->name, err, errlen) == -1)
		goto fail;
	SSL_CTX_set1_cert_store(ctx, trust);
	if (SSL_CTX_use_certificate_chain_file(ctx, h->certificate) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, h->key, SSL_FILETYPE_PEM) != 1) {
		ssl_errstr(e, sizeof(e));
		snprintf(err, errlen, "host %s: cannot load certificate or key "
		    "for server-to-server: %s", h->name, e);
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any_cb);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int
tls_load(const struct conf *conf, char *err, size_t errlen)
{
	struct tls_host *nh;
	/* One store of roots for every context (each holds a reference):
	 * the system's bundle read once, not twice per host. */
	X509_STORE *trust = tls_trust_store(conf, err, errlen);

	if (trust == NULL)
		return -1;
	nh = xcalloc(conf->nhosts, sizeof(*nh));
	for (size_t i = 0; i < conf->nhosts; i++) {
		nh[i].name = xstrdup(conf->hosts[i].name);
		nh[i].ctx = ctx_new(conf, &conf->hosts[i], trust, err, errlen);
		if (nh[i].ctx != NULL)
			nh[i].cctx = client_ctx_new(conf, &conf->hosts[i],
			    trust, err, errlen);
		if (nh[i].ctx == NULL || nh[i].cctx == NULL) {
			for (size_t j = 0; j <= i; j++) {
				SSL_CTX_free(nh[j].ctx);
				SSL_CTX_free(nh[j].cctx);
				free(nh[j].name);
			}
			free(nh);
			X509_STORE_free(trust);
			return -1;
		}
	}
	X509_STORE_free(trust);         /* the contexts keep it */
	tls_free();
	hosts = nh;
	nhosts = conf->nhosts;
	return 0;
}

void
tls_free(void)
{
	for (size_t i = 0; i < nhosts; i++) {
		SSL_CTX_free(hosts[i].ctx);   /* refcounted by live SSLs */
		SSL_CTX_free(hosts[i].cctx);
		free(hosts[i].name);
	}
	free(hosts);
	hosts = NULL;
	nhosts = 0;
}

SSL *
tls_new_ssl(BIO *bio, enum tls_alpn alpn)
{
	SSL *ssl;

	if (nhosts == 0 || (ssl = SSL_new(hosts[0].ctx)) == NULL) {
		BIO_free(bio);
		return NULL;
	}
	SSL_set_app_data(ssl, (void *)&alpns[alpn]);
	SSL_set_bio(ssl, bio, bio);
	SSL_set_accept_state(ssl);
	return ssl;
}

SSL *
tls_new_client_ssl(BIO *bio, const char *local, const char *remote,
    int direct_tls)
{
	const struct tls_host *h = host_find(local);
	SSL *ssl;

	if (h == NULL || (ssl = SSL_new(h->cctx)) == NULL) {
		BIO_free(bio);
		return NULL;
	}
	SSL_set_tlsext_host_name(ssl, remote);
	/* RFC 6125 §6.4: the reference identifier is the remote domain. */
	SSL_set1_host(ssl, remote);
	if (direct_tls)         /* XEP-0368 §4 */
		SSL_set_alpn_protos(ssl, alpn_server, sizeof(alpn_server) - 1);
	SSL_set_bio(ssl, bio, bio);
	SSL_set_connect_state(ssl);
	return ssl;
}

void
tls_request_peer_cert(SSL *ssl)
{
	SSL_set_verify(ssl, SSL_VERIFY_PEER, accept_any_cb);
	/* Purpose is checked by tls_peer_check (serverAuth or clientAuth,
	 * not clientAuth alone as OpenSSL's server side would). */
	SSL_set_purpose(ssl, X509_PURPOSE_ANY);
}

int
tls_peer_check(SSL *ssl, const char *domain, const char **why)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	long v;
	uint32_t xku;

	if (cert == NULL) {
		*why = "no certificate";
		return 0;
	}
	v = SSL_get_verify_result(ssl);
	if (v != X509_V_OK && v != X509_V_ERR_HOSTNAME_MISMATCH) {
		*why = X509_verify_cert_error_string(v);
		return 0;
	}
	if (X509_check_host(cert, domain, strlen(domain),
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) != 1) {
		*why = "certificate not valid for the domain";
		return 0;
	}
	xku = X509_get_extended_key_usage(cert);
	if (xku != UINT32_MAX && !(xku & (XKU_SSL_SERVER | XKU_SSL_CLIENT))) {
		*why = "certificate not for TLS servers or clients";
		return 0;
	}
	return 1;
}

/* RFC 5929 §4.1: the hash of the server certificate, with SHA-256 when
 * its signature uses MD5 or SHA-1, else the signature's own hash. */
size_t
tls_cb_server_end_point(SSL *ssl, unsigned char *out)
{
	X509 *cert = SSL_get_certificate(ssl);
	int md_nid = NID_undef, pk_nid;
	const EVP_MD *md;
	unsigned int len = 0;

	if (cert == NULL)
		return 0;
	if (!OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid,
		&pk_nid) || md_nid == NID_undef || md_nid == NID_md5 ||
	    md_nid == NID_sha1)
		md_nid = NID_sha256;
	if ((md = EVP_get_digestbynid(md_nid)) == NULL)
		return 0;
	if (out == NULL)
		return (size_t)EVP_MD_get_size(md);
	if (X509_digest(cert, md, out, &len) != 1)
		return 0;
	return len;
}

/* RFC 9266: 32 bytes exported with label "EXPORTER-Channel-Binding" and
 * no context; defined for TLS 1.3 only. */
size_t
tls_cb_exporter(SSL *ssl, unsigned char *out)
{
	static const char label[] = "EXPORTER-Channel-Binding";

	if (SSL_version(ssl) < TLS1_3_VERSION)
		return 0;
	if (out == NULL)
		return 32;
	if (SSL_export_keying_material(ssl, out, 32, label,
		sizeof(label) - 1, NULL, 0, 0) != 1)
		return 0;
	return 32;
}

/*
 * RFC 5929 §3.1: the first Finished message of the handshake, the
 * client's in a full handshake, the server's in a resumed one (there is
 * only one handshake: renegotiation is off).  Not defined for TLS 1.3
 * (RFC 8446 §C.5, RFC 9266 §1); on TLS 1.2 only with the extended master
 * secret (RFC 7627), without which the triple handshake attack lets two
 * connections share it.  Current TLS libraries all negotiate it.
 */
size_t
tls_cb_unique(SSL *ssl, unsigned char *out)
{
	unsigned char buf[64];
	size_t len;

	if (SSL_version(ssl) >= TLS1_3_VERSION ||
	    SSL_get_extms_support(ssl) != 1)
		return 0;
	len = SSL_session_reused(ssl) ? SSL_get_finished(ssl, buf,
	    sizeof(buf)) : SSL_get_peer_finished(ssl, buf, sizeof(buf));
	if (len == 0 || len > sizeof(buf))
		return 0;
	if (out != NULL)
		memcpy(out, buf, len);
	return len;
}
