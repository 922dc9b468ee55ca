/*
 * The XEP-0065 proxy's relay as mod/mod_proxy65.c sees it.  The relay
 * is net/proxy65.c, which a module may not include: start-up hands the
 * module a function that activates a stream there and says how it went.
 */
#ifndef XMPPD_MOD_PROXY65_H
#define XMPPD_MOD_PROXY65_H

#define NS_BYTESTREAMS "http://jabber.org/protocol/bytestreams"

enum bytestream_activation {
	BYTESTREAM_ACTIVATED,
	BYTESTREAM_NO_STREAM, /* no connection with that hash */
	BYTESTREAM_ONE_PARTY, /* only one party has connected */
	BYTESTREAM_ACTIVE_ALREADY,
	BYTESTREAM_OVER_USER, /* proxy65-user-streams */
	BYTESTREAM_OVER_ALL,  /* proxy65-streams */
};

/* Activate the stream of hash (40 lower-case hex digits, XEP-0065
 * §5.3.2) for user (the requester's bare JID). */
typedef enum bytestream_activation (*bytestream_activate_fn)(
    const char *hash, const char *user);

/* Start-up, before modules_init(), once the "listen proxy65" listener
 * (address as configured, port) is open: the module runs only then (a
 * listener added by a reload waits for a restart, as every listener). */
void mod_proxy65_set_relay(
    bytestream_activate_fn fn, const char *address, int port);
/* Whether mod_proxy65_set_relay was called. */
int mod_proxy65_listening(void);

#endif
