/*
 * Rosters (RFC 6121 §2) and roster versioning (XEP-0237): stored in the
 * roster table, cached in memory while the user has a bound session, and
 * written through.  Subscription states use the bits of subscription.h.
 */
#ifndef XMPPD_ROSTER_H
#define XMPPD_ROSTER_H

#include <stddef.h>
#include <stdint.h>

struct session;
struct roster;

struct roster_item {
	char *jid;          /* contact's bare JID, prepared */
	char *name;         /* NULL if none */
	unsigned sub;       /* subscription.h state bits */
	int visible;        /* a roster item (not only a pending-in state) */
	char *request;      /* pending-in: the subscribe stanza, serialized */
	char **groups;
	size_t ngroups;
};

/* The cached roster of an online user, or NULL when not loaded. */
struct roster *roster_cached(const char *user, const char *host);
/* The item for contact (bare JID) or NULL. */
const struct roster_item *roster_find(const struct roster *r,
    const char *contact);
/* Calls fn for each item. */
void roster_foreach(const struct roster *r,
    void (*fn)(const struct roster_item *, void *), void *arg);

/*
 * The subscription state user@host has toward contact (bare JID), from the
 * cache or from storage: cb(owner, tag, found, sub).  Runs later, never
 * before the call returns.
 */
typedef void (*roster_sub_cb)(uint64_t owner, uint64_t tag, int found,
    unsigned sub);
void roster_subscription(const char *user, const char *host,
    const char *contact, roster_sub_cb cb, uint64_t owner, uint64_t tag);

void roster_init(void);

#endif
