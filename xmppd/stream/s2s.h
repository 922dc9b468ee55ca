/*
 * Server-to-server streams (RFC 6120, XEP-0220 dialback, XEP-0178 SASL
 * EXTERNAL, XEP-0368 direct TLS): incoming streams on the s2s listeners,
 * and outgoing ones per (local domain, remote domain) found through DNS
 * SRV, with stanzas queued while connecting.  The core reaches remote
 * domains through the router's remote sender (router_set_remote).
 */
#ifndef XMPPD_S2S_H
#define XMPPD_S2S_H

#include <stddef.h>
#include <stdint.h>

struct conf;
struct conn_handler;
struct ev_loop;

extern const struct conn_handler s2s_conn_handler;

void s2s_init(struct ev_loop *loop, const struct conf *conf);
void s2s_set_conf(const struct conf *conf);
/* Close every stream (<system-shutdown/>), bounce what is queued. */
void s2s_shutdown(void);

/* One row per stream, for xmppctl s2s. */
struct s2s_info {
	const char *local, *remote;
	int outgoing;
	const char *state;      /* connecting, negotiating, ready, ... */
	const char *auth;       /* "SASL EXTERNAL", "dialback", "" */
	const char *tls;        /* "TLSv1.3" or "" */
	int cert_valid;
	size_t queued;          /* stanzas waiting (outgoing) */
	double since;           /* mono time */
	uint64_t stanzas_in, stanzas_out;
};
void s2s_foreach(void (*fn)(const struct s2s_info *, void *), void *arg);

#endif
