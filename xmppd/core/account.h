/*
 * Account credentials, shared by the control socket (adduser, passwd) and
 * in-band registration (XEP-0077): preparing a password, and deriving its
 * SCRAM keys on the worker pool (never on the loop) before storing them.
 */
#ifndef XMPPD_ACCOUNT_H
#define XMPPD_ACCOUNT_H

#include <stdint.h>

#include "store/store.h"

/* Longest password accepted, in bytes, before and after SASLprep. */
#define ACCOUNT_PASSWORD_MAX 1023
/* Length of each fresh random SCRAM salt. */
#define ACCOUNT_SALT_LEN 16

enum account_password {
	ACCOUNT_PASSWORD_OK,
	ACCOUNT_PASSWORD_EMPTY,       /* "" before or after SASLprep */
	ACCOUNT_PASSWORD_TOO_LONG,    /* > ACCOUNT_PASSWORD_MAX bytes */
	ACCOUNT_PASSWORD_PROHIBITED,  /* bad UTF-8 or refused by RFC 4013 */
};

/*
 * SASLprep raw (RFC 4013, as SASL PLAIN and SCRAM will on login) and
 * check its length.  On ACCOUNT_PASSWORD_OK *out is a malloc'ed copy that
 * the caller owns and releases with account_password_free(); otherwise
 * *out is NULL.
 */
enum account_password account_password_prepare(const char *raw, char **out);
/* A short English reason for a result other than OK (no password in it). */
const char *account_password_reason(enum account_password r);
/* Wipe and free a prepared password (NULL is fine). */
void account_password_free(char *password);

/*
 * The username for a new account: Nodeprep (RFC 6122 §A) of raw, non-empty
 * and at most JID_PART_MAX bytes.  Returns a malloc'ed string, or NULL.
 */
char *account_username_prepare(const char *raw);

enum account_write {
	ACCOUNT_CREATE,     /* store_user_create: STORE_OK or STORE_EXISTS */
	ACCOUNT_SET_KEYS,   /* store_user_set_keys: STORE_OK or
	                       STORE_NOT_FOUND */
};

/*
 * Called on the loop thread when the keys are ready, just before the
 * store write: return 0 if owner has gone and the write should not happen
 * (done is then never called), 1 to go on.
 */
typedef int (*account_wanted_fn)(uint64_t owner, uint64_t tag);

/*
 * Derive SCRAM-SHA-1 and SCRAM-SHA-256 keys for password (prepared by
 * account_password_prepare; this call takes it over, and wipes and frees
 * it) with fresh random salts and the configured scram-iterations, on the
 * worker pool; then, back on the loop, ask wanted (NULL: always go on) and
 * make the store write.  done runs on the loop thread after the write has
 * committed (or failed) with the store's status, never before this call
 * returns.  user and host are prepared; they are copied.
 */
void account_set_password(enum account_write what, const char *user,
    const char *host, char *password, account_wanted_fn wanted,
    store_status_cb done, uint64_t owner, uint64_t tag);

#endif
