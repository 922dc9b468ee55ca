/*
 * Stanza helpers: kinds, error replies (RFC 6120 §8.3) and common builders.
 */
#ifndef XMPPD_STANZA_H
#define XMPPD_STANZA_H

#include "xml.h"

enum stanza_kind { STANZA_MESSAGE, STANZA_PRESENCE, STANZA_IQ, STANZA_OTHER };

enum stanza_kind stanza_kind(const struct xel *st);
/*
 * Build an error reply to st in a new arena: to/from swapped, same id,
 * type='error', the original payload copied (RFC 6120 §8.3.1), and
 * <error type=TYPE><CONDITION xmlns=stanzas/>[<text>]</error>.  Returns
 * NULL when st is itself an error (never answer an error with an error).
 */
struct xel *stanza_error(const struct xel *st, const char *type,
    const char *condition, const char *text);
/*
 * A copy of an IQ's addressing (from, to, id, type) with an empty payload
 * element like the request's, in a new arena: enough to answer after an
 * asynchronous round trip without keeping the caller's stanza.
 */
struct xel *stanza_iq_skeleton(const struct xel *iq);
/* An empty IQ result for st (new arena). */
struct xel *stanza_iq_result(const struct xel *st);
/* The RFC 6120 §8.3.3 default type for a defined condition. */
const char *stanza_error_type(const char *condition);

#endif
