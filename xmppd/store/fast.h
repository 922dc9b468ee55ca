/*
 * Storage of XEP-0484 (FAST) tokens: per account and client (the SASL2
 * user-agent id), two slots, "current" and "new" (XEP-0484 §5.1): a token
 * issued goes into "new" (replacing one never used, §3.5); the first
 * successful use of it moves it to "current", replacing the older one.
 * Only the token's SHA-256 is stored (shared/ht.h says why that is
 * enough).  Rows reference users(id) ON DELETE CASCADE; a password change
 * deletes them all (store_sqlite.c, set keys).
 */
#ifndef XMPPD_STORE_FAST_H
#define XMPPD_STORE_FAST_H

#include <stddef.h>
#include <stdint.h>

#include "ht.h"
#include "store/store.h"

#define FAST_SLOT_CURRENT 0
#define FAST_SLOT_NEW 1
#define FAST_AGENT_MAX 64       /* bytes of a user-agent id stored */
#define FAST_TEXT_MAX 64        /* bytes of <software/> and <device/> */
#define FAST_LIST_MAX 256       /* tokens listed per account */

struct store_fast_token {
	const char *agent;      /* the SASL2 user-agent id */
	const char *software;   /* its <software/> and <device/>, or "" */
	const char *device;
	int slot;               /* FAST_SLOT_* */
	const char *mechanism;  /* HT-SHA-256-NONE, -ENDP or -EXPR */
	unsigned char hash[32]; /* SHA-256 of the token */
	int64_t expiry, created, last_used;  /* unix seconds; 0: never */
	int64_t counter;        /* highest <fast count/> accepted */
};

/*
 * The key that seals token hashes at rest (ht_seal): HT_KEY_LEN random
 * bytes in the file at path (the database's path with "-fastkey"), made
 * with mode 0600 when there is none.  Kept apart from the database so
 * that a copy of it alone logs nobody in.  Losing the file only costs
 * every client one password login.  0, or -1 with a message in err.
 */
int store_fast_key_load(const char *path, char *err, size_t errlen);
const unsigned char *store_fast_key(void);

/* The account's tokens (of one client, or all with agent NULL): disabled
 * says whether the account is disabled.  st is STORE_NOT_FOUND for no
 * such account.  The tokens are valid during the call only. */
typedef void (*store_fast_cb)(uint64_t owner, enum store_status st,
    int disabled, const struct store_fast_token *tokens, size_t n);
void store_fast_get(const char *host, const char *user, const char *agent,
    store_fast_cb cb, uint64_t owner);

/*
 * The token of hash was presented at now, and checked: in one step on
 * the storage thread, it must still be there (in either slot) and, when the
 * client gave a count (has_count), its counter below count, which then
 * becomes its counter (XEP-0484 §3.4: so two logins racing with one
 * count cannot both pass); then a "new" token becomes "current" (§5.1),
 * or with invalidate it is deleted (§3.6).  cb gets STORE_OK, or
 * STORE_EXISTS for a count not above the last one, STORE_NOT_FOUND for a
 * token gone meanwhile.
 */
typedef void (*store_fast_used_cb)(uint64_t owner, enum store_status st);
void store_fast_used(const char *host, const char *user, const char *agent,
    const unsigned char hash[32], int has_count, int64_t count,
    int invalidate, int64_t now, store_fast_used_cb cb, uint64_t owner);

/* Store a token issued at now into the client's "new" slot. */
void store_fast_issue(const char *host, const char *user,
    const struct store_fast_token *t);

/* Delete the account's tokens (of one client, or all with agent NULL);
 * cb gets the number deleted (STORE_NOT_FOUND: no such account). */
typedef void (*store_fast_revoked_cb)(uint64_t owner, enum store_status st,
    unsigned n);
void store_fast_revoke(const char *host, const char *user, const char *agent,
    store_fast_revoked_cb cb, uint64_t owner);

#endif
