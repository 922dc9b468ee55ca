/*
 * The server side of SASL (RFC 6120 §6, RFC 4422): SCRAM-SHA-1 and
 * SCRAM-SHA-256 with their -PLUS variants (RFC 5802, RFC 7677, channel
 * binding types tls-exporter, tls-unique and tls-server-end-point,
 * XEP-0440, and the downgrade protection hash of XEP-0474), and PLAIN
 * (RFC 4616) over TLS only.  An unknown user is indistinguishable from a
 * wrong password: SCRAM goes on with a salt derived from the name and
 * fails at the proof; PLAIN runs the same key derivation.
 */
#ifndef XMPPD_SASL_H
#define XMPPD_SASL_H

#include <stddef.h>
#include <stdint.h>

struct xel;

struct sasl_cb {
	unsigned char exporter[64];     /* tls-exporter (TLS 1.3) */
	size_t exporter_len;            /* 0: unavailable */
	unsigned char end_point[64];    /* tls-server-end-point */
	size_t end_point_len;
	unsigned char unique[64];       /* tls-unique (TLS 1.2) */
	size_t unique_len;
	/* Earlier on this stream the client asked for a -PLUS mechanism
	 * with a binding type this connection does not offer (a reply's
	 * cb_unmatched): its gs2 flag 'y' is then accepted (sasl.c). */
	int cb_unmatched;
};

enum sasl_reply_kind { SASL_CHALLENGE, SASL_SUCCESS, SASL_FAILURE };

struct sasl_reply {
	enum sasl_reply_kind kind;
	const char *data;       /* base64 challenge or success data, or NULL */
	const char *condition;  /* failure condition (RFC 6120 §6.5) */
	const char *user;       /* authenticated localpart, on success */
	int bad_credentials;    /* failure: a wrong password or proof, or a
	                           name that cannot be an account (what
	                           throttling counts), not a protocol error */
	const char *mechanism;  /* the mechanism's name; NULL if unknown */
	/* Failure: the account tried, as logs may show it (no spaces or
	 * control characters, bounded: sasl.c's log_name), or NULL before
	 * the client named one. */
	const char *name;
	const char *why;        /* failure: detail for the log, or NULL */
	int suspicious;         /* failure: a sign of an attack rather than of
	                           a client's limits: the gs2 flag 'y' while
	                           -PLUS was offered, or channel-binding data
	                           that does not match (RFC 5802 §6) */
	int cb_unmatched;       /* failure: -PLUS with a channel-binding
	                           type this connection does not offer */
};

/* Called with each reply; owner is the c2s id given to sasl_start. */
typedef void (*sasl_reply_fn)(uint64_t owner, const struct sasl_reply *r);

struct sasl;

void sasl_init(sasl_reply_fn fn);
/* Add <mechanisms/> (and XEP-0440 channel-binding types) to features. */
void sasl_advertise(struct xel *features, int tls, const struct sasl_cb *cb);
/*
 * Start an exchange for <auth mechanism=mech>data</auth> (data is the
 * element's text: "" when absent, "=" for an empty initial response).
 * Replies come through the reply function, possibly before this returns
 * (when no storage or worker round trip is needed) or later.  The caller
 * frees the exchange with sasl_free() once it is done (sasl_done()).
 */
struct sasl *sasl_start(const char *mech, const char *data, int tls,
    const struct sasl_cb *cb, const char *host, uint64_t owner);
/* The client's <response/> text. */
void sasl_response(struct sasl *s, const char *data);
/* Whether a storage/worker round trip is under way. */
int sasl_pending(const struct sasl *s);
/* Whether the exchange ended (success or failure was sent). */
int sasl_done(const struct sasl *s);
/* Free; a pending completion for it is then dropped. */
void sasl_free(struct sasl *s);

#endif
