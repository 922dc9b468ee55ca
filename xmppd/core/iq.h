/*
 * The IQ registry: handlers keyed by the payload's (namespace, element),
 * for IQs addressed to the server and to a user's bare JID (RFC 6120
 * §10.3.3, RFC 6121 §8.5.1 processing "on behalf of" the account).
 */
#ifndef XMPPD_IQ_H
#define XMPPD_IQ_H

#include "core/hooks.h"

struct session;
struct xel;

enum iq_target { IQ_TO_SERVER, IQ_TO_BARE };

/*
 * A handler answers the IQ (result or error) and returns HOOK_HANDLED, or
 * HOOK_PASS to let the next one try.  from is the sending session (its
 * JID was stamped on iq's 'from'); iq's arena belongs to the caller.
 */
typedef enum hook_result (*iq_handler)(struct session *from,
    struct xel *iq, enum iq_target target);

/* Handlers belong to the current owner (hook_owner(), hooks.h). */
void iq_register(const char *ns, const char *name, iq_handler h);
/* Remove every handler of owner (a module switched off). */
void iq_unregister_owner(unsigned owner);
/* Dispatch a get/set IQ; unknown payloads get <service-unavailable/>. */
void iq_dispatch(struct session *from, struct xel *iq, enum iq_target target);
/* Register the built-in handlers (the legacy session IQ). */
void iq_init(void);

#endif
