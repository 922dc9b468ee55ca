/*
 * Service discovery registry (XEP-0030): modules announce the features and
 * identities they implement when they initialise, so nothing is advertised
 * that is not enabled.  mod_disco.c answers disco#info/#items from it and
 * computes the XEP-0115 capabilities hash of the server.
 */
#ifndef XMPPD_DISCO_H
#define XMPPD_DISCO_H

struct session;
struct xel;

#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_CAPS "http://jabber.org/protocol/caps"
#define NS_XDATA "jabber:x:data"
/* XEP-0115 'node' of the server's capabilities; disco#info on
 * DISCO_CAPS_NODE "#" ver answers with the server's info (§6.2). */
#define DISCO_CAPS_NODE "https://github.com/xmppd/xmppd"

enum disco_scope {
	DISCO_SERVER,    /* the server's own JID */
	DISCO_ACCOUNT,   /* a user's bare JID */
};

/* Strings are copied.  Adding something already present does nothing
 * (XEP-0115 §5.4 treats duplicates as ill-formed). */
void disco_add_feature(enum disco_scope scope, const char *var);
void disco_add_identity(enum disco_scope scope, const char *category,
    const char *type, const char *name);
/* XEP-0128 field of the server's jabber:x:data form with FORM_TYPE
 * http://jabber.org/network/serverinfo (XEP-0157); repeat for more
 * values of the same field. */
void disco_add_server_info(const char *var, const char *value);
/* Add <identity/>, <feature/> and form children of scope to a query.
 * Identities and features come out sorted. */
void disco_fill_info(struct xel *query, enum disco_scope scope);
/* The XEP-0115 §5 verification string's SHA-1, base64, for the server.
 * Computed on first use and cached until anything is added or reset;
 * call it only after every module has initialised. */
const char *disco_caps_ver(void);
/*
 * The XEP-0115 verification string (§5.1, hash SHA-1, base64) of a
 * disco#info <query/>: its identities (category/type/xml:lang/name),
 * features and jabber:x:data forms.  Forms without a hidden FORM_TYPE
 * field are ignored (§5.4 step 3.6).  Returns a malloc'ed string, or
 * NULL when the query is ill-formed per §5.4 (a duplicate identity,
 * feature or FORM_TYPE, or a FORM_TYPE with several values).
 */
char *disco_caps_hash(const struct xel *query);
/* Forget everything. */
void disco_reset(void);
/* Remove what owner (hooks.h) added: a module switched off. */
void disco_remove_owner(unsigned owner);

/*
 * For an IQ a client sent to a user's bare JID (its 'to', or no 'to' for
 * its own account): whether the requester may learn about the account,
 * which is so for the account itself and for a contact the account's
 * roster gives a 'from' subscription (the contact "is subscribed to the
 * user's presence": XEP-0030 §8 via RFC 6121, XEP-0012 §3, XEP-0199 §6).
 * fn(s, iq, allowed) runs at once for the owner and otherwise after the
 * roster lookup, with a copy of iq (freed when fn returns) and the
 * requesting session; it is not called if that session went away.
 * Defined in mod_disco.c, so that disco.c stays free of daemon state and
 * links alone into the unit test.
 */
typedef void (*disco_access_fn)(struct session *s, struct xel *iq,
    int allowed);
void disco_account_access(struct session *from, struct xel *iq,
    disco_access_fn fn);

#endif
