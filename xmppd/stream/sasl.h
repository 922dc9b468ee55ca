/*
 * The server side of SASL (RFC 6120 §6, RFC 4422): SCRAM-SHA-1 and
 * SCRAM-SHA-256 with their -PLUS variants (RFC 5802, RFC 7677, channel
 * binding types tls-exporter, tls-unique and tls-server-end-point,
 * XEP-0440, and the downgrade protection hash of XEP-0474), and PLAIN
 * (RFC 4616) over TLS only.  An unknown user is indistinguishable from a
 * wrong password: SCRAM goes on with a salt derived from the name and
 * fails at the proof; PLAIN runs the same key derivation.
 *
 * One engine for both profiles: legacy SASL (RFC 6120 §6) and Extensible
 * SASL (XEP-0388, "SASL2") start the same exchanges and get the same
 * replies; only the framing differs, and that is the stream's (c2s.c).
 * SASL2 adds the HT-SHA-256-* mechanisms of XEP-0484 (FAST tokens,
 * shared/ht.h, store/fast.h), offered inside its <fast/> inline feature.
 */
#ifndef XMPPD_SASL_H
#define XMPPD_SASL_H

#include <stddef.h>
#include <stdint.h>

struct xel;

#define NS_SASL2 "urn:xmpp:sasl:2"      /* XEP-0388 */
#define NS_FAST "urn:xmpp:fast:0"       /* XEP-0484 */

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
	const char *text;       /* failure: a reason for the client, or
	                           NULL */
	int fast;               /* success: with a XEP-0484 token */
	int fast_rotate;        /* success: that token is due for rotation
	                           (past half its lifetime, XEP-0484 §3.5) */
	const char *fast_mechanism;     /* success: the token's mechanism */
};

/* What a SASL2 <authenticate/> says beside the mechanism's data. */
struct sasl_fast {
	const char *agent;      /* <user-agent id/>, or NULL */
	int has_count;          /* XEP-0484 <fast count/> ... */
	uint32_t count;
	int invalidate;         /* ... and invalidate='true' (§3.6) */
};

/* Called with each reply; owner is the c2s id given to sasl_start. */
typedef void (*sasl_reply_fn)(uint64_t owner, const struct sasl_reply *r);

struct sasl;

void sasl_init(sasl_reply_fn fn);
/* Add <mechanisms/> (and XEP-0440 channel-binding types) to features. */
void sasl_advertise(struct xel *features, int tls, const struct sasl_cb *cb);
/* XEP-0388 §2.1: the same mechanisms as <mechanism/> children of auth
 * (an <authentication xmlns='urn:xmpp:sasl:2'/>). */
void sasl2_advertise(struct xel *auth, int tls, const struct sasl_cb *cb);
/* XEP-0484 §3.1: the FAST mechanisms offered on this connection as
 * <mechanism/> children of fast; returns how many (none without TLS). */
size_t sasl_fast_advertise(struct xel *fast, int tls,
    const struct sasl_cb *cb);
/* Whether mech is a FAST mechanism offered on this connection. */
int sasl_fast_offered(const char *mech, int tls, const struct sasl_cb *cb);
/*
 * Start an exchange for <auth mechanism=mech>data</auth> (data is the
 * element's text: "" when absent, "=" for an empty initial response).
 * Replies come through the reply function, possibly before this returns
 * (when no storage or worker round trip is needed) or later.  The caller
 * frees the exchange with sasl_free() once it is done (sasl_done()).
 */
struct sasl *sasl_start(const char *mech, const char *data, int tls,
    const struct sasl_cb *cb, const char *host, uint64_t owner);
/* The same for SASL2 (XEP-0388): fast says what else <authenticate/>
 * carried; the FAST mechanisms are known only here. */
struct sasl *sasl2_start(const char *mech, const char *data, int tls,
    const struct sasl_cb *cb, const char *host, uint64_t owner,
    const struct sasl_fast *fast);
/* The client's <response/> text. */
void sasl_response(struct sasl *s, const char *data);
/* Whether a storage/worker round trip is under way. */
int sasl_pending(const struct sasl *s);
/* Whether the exchange ended (success or failure was sent). */
int sasl_done(const struct sasl *s);
/* Free; a pending completion for it is then dropped. */
void sasl_free(struct sasl *s);

#endif
