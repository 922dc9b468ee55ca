/*
 * The relay of the XEP-0065 SOCKS5 bytestreams proxy: connections of
 * "listen proxy65" listeners speak SOCKS5 (net/socks5.c), wait under
 * their hash (SHA-1 of SID + requester JID + target JID) until both
 * parties are there and the requester activates the stream (over XMPP,
 * mod/mod_proxy65.c, connected by start-up), then bytes go both ways
 * with bounded buffers, back-pressure, token-bucket rates (per stream,
 * per account, all streams) and timeouts, all on the loop.
 */
#ifndef XMPPD_PROXY65_H
#define XMPPD_PROXY65_H

#include <stddef.h>
#include <stdint.h>

struct conf;

extern const struct conn_handler proxy65_conn_handler;

/* What an activation came to (XEP-0065 §6.3.4). */
enum proxy65_activation {
	PROXY65_ACTIVATED,
	PROXY65_NO_STREAM, /* no connection with this hash */
	PROXY65_ONE_PARTY, /* only one party is connected */
	PROXY65_ACTIVE_ALREADY,
	PROXY65_OVER_USER, /* proxy65-user-streams reached */
	PROXY65_OVER_ALL,  /* proxy65-streams reached */
};

/* Activate the stream of hash (40 lower-case hex digits) for user (the
 * requester's bare JID, whose streams and rate it counts under). */
enum proxy65_activation proxy65_activate(const char *hash, const char *user);
/* Limits and timeouts of conf (start-up and reload; they apply to the
 * streams already active too). */
void proxy65_set_conf(const struct conf *conf);
/* Close every proxy connection (shutdown). */
void proxy65_shutdown(void);

struct proxy65_stats {
	size_t pending;     /* SOCKS5 connections not yet activated */
	size_t active;      /* streams relaying */
	uint64_t activated; /* since start */
	uint64_t bytes;     /* relayed, both ways, since start */
};
void proxy65_get_stats(struct proxy65_stats *st);

#endif
