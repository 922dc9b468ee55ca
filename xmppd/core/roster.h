/*
 * Rosters (RFC 6121 §2) and roster versioning (XEP-0237): stored in the
 * roster table, cached in memory while the user has a bound session (the
 * session is held until its roster is loaded), and written through.
 * Subscription states use the bits of subscription.h.
 */
#ifndef XMPPD_ROSTER_H
#define XMPPD_ROSTER_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "core/subscription.h"

struct session;
struct roster;

struct roster_item {
	char *jid;          /* contact's bare JID, prepared */
	char *name;         /* NULL if none */
	unsigned sub;       /* subscription.h state bits; SUB_ITEM: a roster
	                       item, not only a pending-in request */
	char *request;      /* pending-in: the subscribe stanza, serialized */
	char **groups;
	size_t ngroups;
};

/* The loaded roster of an online user, or NULL. */
struct roster *roster_cached(const char *user, const char *host);
/* The item for contact (bare JID) or NULL. */
const struct roster_item *roster_find(const struct roster *r,
    const char *contact);
/* The subscription state toward contact (SUB_NONE if no record). */
unsigned roster_state(const struct roster *r, const char *contact);
/* Calls fn for each record (items and pending-in requests). */
void roster_foreach(const struct roster *r,
    void (*fn)(const struct roster_item *, void *), void *arg);

/*
 * Change the subscription state (and the stored subscribe request, for
 * pending-in; NULL clears it) of contact in a loaded roster: the cache is
 * updated at once, the change is written through, and when push is set
 * the item is pushed to the user's interested resources.
 */
void roster_set_state(struct roster *r, const char *contact, unsigned state,
    const char *request, int push);

/*
 * An inbound subscription stanza (RFC 6121 Appendix A.3) for a local user
 * whose roster is not loaded: the transition runs in storage, and cb gets
 * the change.  found is 0 when the account does not exist.
 */
typedef void (*roster_inbound_cb)(uint64_t owner, uint64_t tag, int found,
    unsigned actions, unsigned state);
void roster_inbound_stored(const char *user, const char *host,
    const char *contact, enum subscription_type type, const char *request,
    roster_inbound_cb cb, uint64_t owner, uint64_t tag);

/*
 * The subscription state user@host has toward contact (bare JID), from the
 * cache or from storage: cb(owner, tag, found, sub).  Runs later, never
 * before the call returns.
 */
typedef void (*roster_sub_cb)(uint64_t owner, uint64_t tag, int found,
    unsigned sub);
void roster_subscription(const char *user, const char *host,
    const char *contact, roster_sub_cb cb, uint64_t owner, uint64_t tag);

/*
 * Delete an account and remove it from every roster in one transaction;
 * then push the removals to online owners, close the account's sessions
 * and run the user-deleted hooks.  cb: STORE_OK or STORE_NOT_FOUND.
 */
void roster_delete_account(const char *user, const char *host,
    store_status_cb cb, uint64_t owner, uint64_t tag);

/*
 * An administrator's change to user@host's roster item for contact (bare
 * JID, prepared): set its name (NULL: none) and groups (copied), or remove
 * it.  The subscription state is kept on a set; a removal is a client's
 * subscription='remove' (RFC 6121 §2.5), unsubscribing both ways when the
 * user is online.  Online (roster loaded): the cache changes at once, the
 * change is written through and pushed to interested resources.  Offline:
 * a storage job updates the row and the version.  cb gets STORE_OK,
 * STORE_NOT_FOUND (no such user) or STORE_ERROR; for remove, item_found
 * is 0 when the user had no such item.  Runs later, never before the call
 * returns.
 */
typedef void (*roster_admin_cb)(uint64_t owner, uint64_t tag,
    enum store_status st, int item_found);
void roster_admin_set(const char *user, const char *host,
    const char *contact, const char *name, const char *const *groups,
    size_t ngroups, int remove, roster_admin_cb cb, uint64_t owner,
    uint64_t tag);

void roster_init(void);

#endif
