/*
 * Service discovery registry (XEP-0030): modules announce the features and
 * identities they implement when they initialise, so nothing is advertised
 * that is not enabled.  mod_disco.c answers disco#info/#items from it and
 * computes the XEP-0115 capabilities hash of the server.
 */
#ifndef XMPPD_DISCO_H
#define XMPPD_DISCO_H

struct xel;

enum disco_scope {
	DISCO_SERVER,    /* the server's own JID */
	DISCO_ACCOUNT,   /* a user's bare JID */
};

void disco_add_feature(enum disco_scope scope, const char *var);
void disco_add_identity(enum disco_scope scope, const char *category,
    const char *type, const char *name);
/* XEP-0128 field of the server's jabber:x:data form with FORM_TYPE
 * http://jabber.org/network/serverinfo (XEP-0157); repeat for more
 * values of the same field. */
void disco_add_server_info(const char *var, const char *value);
/* Add <identity/>, <feature/> and form children of scope to a query. */
void disco_fill_info(struct xel *query, enum disco_scope scope);
/* The XEP-0115 §5 verification string's SHA-1, base64, for the server. */
const char *disco_caps_ver(void);
/* Forget everything (reload rebuilds it). */
void disco_reset(void);

#endif
