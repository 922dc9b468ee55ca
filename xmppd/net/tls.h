/*
 * TLS contexts: one SSL_CTX per virtual host (selected by SNI), TLS 1.2+
 * only, TLS 1.2 with ECDHE and AEAD suites only (tls-ciphers), TLS 1.3
 * suites from tls-ciphersuites, renegotiation refused, buffers released
 * when idle; ALPN "xmpp-client" for direct TLS (XEP-0368) or "http/1.1"
 * on https listeners; channel-binding
 * data for SCRAM-PLUS.
 */
#ifndef XMPPD_TLS_H
#define XMPPD_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

struct conf;

/* Build contexts for every host of conf, with its cipher suites; on
 * error returns -1 with a message ("host localhost: cannot load
 * certificate ...").  On success the new contexts replace the current
 * ones (reload keeps existing connections on their old context). */
int tls_load(const struct conf *conf, char *err, size_t errlen);
/* The roots peers' certificates are checked against: the system's store
 * and tls-ca-file; NULL with err set when that file cannot be read.  The
 * caller frees it (X509_STORE_free). */
X509_STORE *tls_trust_store(const struct conf *conf, char *err,
    size_t errlen);
void tls_free(void);

/* The application protocol a listener offers in ALPN (RFC 7301). */
enum tls_alpn {
	TLS_ALPN_XMPP,     /* "xmpp-client" (XEP-0368) */
	TLS_ALPN_HTTP,     /* "http/1.1" */
	TLS_ALPN_XMPP_SERVER, /* "xmpp-server" (XEP-0368) */
};

/* A new server SSL object reading and writing through bio (which it
 * owns from then on), selecting alpn when the client offers it. */
SSL *tls_new_ssl(BIO *bio, enum tls_alpn alpn);

/*
 * Server-to-server (RFC 6120 §13.7, XEP-0178).  An SSL object for a
 * stream this server opens to remote (SNI remote; ALPN "xmpp-server"
 * with direct_tls, XEP-0368) presenting the certificate of local, our
 * host.  The handshake never fails for the peer's certificate: whether
 * it is valid for remote is asked afterwards (tls_peer_check).  NULL if
 * local is not a host.
 */
SSL *tls_new_client_ssl(BIO *bio, const char *local, const char *remote,
    int direct_tls);
/* On a server SSL (an incoming server stream): ask for the peer's
 * certificate, without failing the handshake when there is none or it
 * does not verify. */
void tls_request_peer_cert(SSL *ssl);
/*
 * Whether the peer's certificate is valid for domain: a chain to a
 * trusted root (the system's store and tls-ca-file), in its validity
 * period, naming domain (RFC 6125 DNS-ID, wildcards in the left-most
 * label) and, if it restricts its use, for serverAuth or clientAuth (a
 * server's own certificate with serverAuth only is accepted on an
 * incoming stream: since 2026 public CAs issue no clientAuth).  1 if so;
 * 0 with *why a short reason otherwise.
 */
int tls_peer_check(SSL *ssl, const char *domain, const char **why);

/* Channel binding (RFC 5929, RFC 9266): returns the data length, or 0
 * when that type is unavailable on this connection (tls-exporter needs
 * TLS 1.3; tls-unique needs TLS 1.2 with the extended master secret).
 * out holds at least 64 bytes; with out NULL only the length is
 * returned, which costs no hashing or key export. */
size_t tls_cb_server_end_point(SSL *ssl, unsigned char *out);
size_t tls_cb_exporter(SSL *ssl, unsigned char *out);
size_t tls_cb_unique(SSL *ssl, unsigned char *out);

#endif
