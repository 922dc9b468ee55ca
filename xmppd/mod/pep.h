/*
 * What mod_pep.c (XEP-0163 personal eventing) offers other modules: a
 * publish or retract on a user's behalf, stored and notified exactly as
 * if the user's client had sent it, with hook_run_pep_event (hooks.h)
 * called with by_server set so that conversions (XEP-0398 avatars in
 * mod_vcard.c, XEP-0411 bookmarks in mod_private.c) do not loop.  While
 * the pep module is off these do nothing.
 */
#ifndef XMPPD_MOD_PEP_H
#define XMPPD_MOD_PEP_H

#include <stddef.h>

#include "store/pep.h"

struct xel;

#define NS_PUBSUB "http://jabber.org/protocol/pubsub"
#define NS_PUBSUB_EVENT "http://jabber.org/protocol/pubsub#event"
#define NS_PUBSUB_OWNER "http://jabber.org/protocol/pubsub#owner"
#define NS_PUBSUB_ERRORS "http://jabber.org/protocol/pubsub#errors"

/*
 * Publish payload (copied) as item id of user@host's node.  A missing
 * node is created with cfg (NULL: the XEP-0163 defaults); an existing
 * one must have cfg's values in the fields of require (PEP_CFG_*, as
 * publish-options), else nothing is published (logged).
 */
void pep_server_publish(const char *user, const char *host, const char *node,
    const char *id, const struct xel *payload, const struct pep_config *cfg,
    unsigned require);
/* Retract item id of user@host's node, notifying as the node says. */
void pep_server_retract(const char *user, const char *host, const char *node,
    const char *id);
/* Whether the pep module is on. */
int pep_enabled(void);
/*
 * XEP-0411 §3: when an online user's nodes are loaded and the account
 * has legacy bookmarks in private XML storage (data: the serialized
 * <storage xmlns='storage:bookmarks'/>) but no bookmarks node yet, fn
 * converts them.  Set by the module that keeps bookmarks in sync
 * (mod_private.c); NULL unsets.
 */
typedef void (*pep_legacy_bookmarks_fn)(const char *user, const char *host,
    const char *data, size_t len);
void pep_set_legacy_bookmarks(pep_legacy_bookmarks_fn fn);

#endif
