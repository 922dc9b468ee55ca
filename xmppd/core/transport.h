/*
 * What carries a client's stanzas, as the core sees it: a c2s stream
 * today; later a WebSocket or a BOSH session.  The stream layer embeds a
 * struct transport in its own state and implements the operations.  The
 * core and the modules reach a bound client only through the session API
 * (session.h); before a session exists (pre-authentication IQs, stream
 * features) they use the few functions below and the facts in the struct.
 */
#ifndef XMPPD_CORE_TRANSPORT_H
#define XMPPD_CORE_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

struct session;
struct transport;
struct xel;

/* What the session layer may ask of a transport right now. */
struct transport_status {
	size_t queued;              /* output bytes not yet written */
	int input_paused;           /* not reading, for any reason */
	double last_input;          /* mono_now() of the last bytes read */
	int gone;                   /* nothing sent now would leave */
	const char *tls_version;    /* "TLSv1.3", "" without TLS */
	const char *tls_cipher;
	const char *close_reason;   /* why it is closing, or NULL */
};

struct transport_ops {
	const char *kind;           /* "c2s": the first word of log lines */
	/* Queue a stanza (serialized in the jabber:client namespace). */
	void (*send)(struct transport *t, const struct xel *stanza);
	/* Queue bytes already serialized in that namespace (a fan-out
	 * copy, or what was queued while the session was detached). */
	void (*send_raw)(struct transport *t, const char *data, size_t len);
	/* Stop reading and keep stanzas already parsed until release, which
	 * replays them in order; holds nest. */
	void (*hold)(struct transport *t);
	void (*release)(struct transport *t);
	/* End with a stream error (RFC 6120 §4.9) and optional text; a bound
	 * session is unbound (session_end is the way in for the core). */
	void (*end)(struct transport *t, const char *condition,
	    const char *text);
	void (*status)(const struct transport *t, struct transport_status *st);
};

struct transport {
	const struct transport_ops *ops;
	uint64_t id;                /* the connection's id: logs, and lookups
	                               across asynchronous calls */
	const char *ip;             /* peer address; owned by the stream */
	const char *net;            /* the network per-IP limits count the
	                               peer under (shared/netkey.h) */
	const char *addr;           /* "ip:port" for logs */
	const char *host;           /* the stream's domain, NULL before its
	                               header */
	unsigned tls : 1;           /* encrypted */
	unsigned authed : 1;        /* SASL succeeded */
	unsigned closing : 1;       /* ending: nothing more is read */
	struct session *session;    /* bound on it (sm.c sets it), or NULL */
};

/* The stream layer adds a transport when it is created and removes it
 * before freeing it. */
void transport_register(struct transport *t);
void transport_unregister(struct transport *t);
/* The transport with this id, or NULL if it has gone or is closing. */
struct transport *transport_find(uint64_t id);
/* Send r (may be NULL) on t, then free r's arena. */
void transport_reply(struct transport *t, struct xel *r);

#endif
