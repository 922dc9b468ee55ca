/*
 * SCRAM (RFC 5802, RFC 7677) for SHA-1 and SHA-256: key derivation, proof
 * computation and verification, and parsing of the client's messages.
 * Pure functions over OpenSSL's digests; no I/O.  The server side of the
 * exchange lives in xmppd/stream/sasl.c; the client side is used by tests and the
 * benchmark's load generator.
 */
#ifndef SHARED_SCRAM_H
#define SHARED_SCRAM_H

#include <stddef.h>

#define SCRAM_MAX_HASH 32

enum scram_hash { SCRAM_SHA1, SCRAM_SHA256 };

size_t scram_hash_len(enum scram_hash h);
const char *scram_hash_name(enum scram_hash h);   /* "SHA-1", "SHA-256" */

/* Stored credentials for one hash (what the database keeps). */
struct scram_keys {
	enum scram_hash hash;
	unsigned iterations;
	unsigned char salt[32];
	size_t saltlen;
	unsigned char stored_key[SCRAM_MAX_HASH];
	unsigned char server_key[SCRAM_MAX_HASH];
};

/*
 * Derive keys from a password (already SASLprepped by the caller, or raw:
 * see scram_saslprep) with the given salt and iteration count.  Costly
 * (PBKDF2): never call it on the event loop.
 */
void scram_derive(enum scram_hash h, const char *password,
    const unsigned char *salt, size_t saltlen, unsigned iterations,
    struct scram_keys *out);
/* Same, but also returns SaltedPassword's ClientKey (client side). */
void scram_client_key(enum scram_hash h, const char *password,
    const unsigned char *salt, size_t saltlen, unsigned iterations,
    unsigned char *client_key, unsigned char *server_key);

/* Random salt of n bytes; nonce as n random printable chars (no ','). */
void scram_random_salt(unsigned char *salt, size_t n);
/* n random bytes (at most 32) from the CSPRNG as 2n lowercase hex digits
 * and a NUL: stream ids, session ids, generated resources. */
void scram_random_hex(char *out, size_t n);
void scram_random_nonce(char *out, size_t n);   /* out has n + 1 bytes */

/* SASLprep (RFC 4013) of a password; malloc'ed, NULL if prohibited. */
char *scram_saslprep(const char *s);

/* HMAC and H for the hash. out has scram_hash_len() bytes. */
void scram_hmac(enum scram_hash h, const unsigned char *key, size_t keylen,
    const void *msg, size_t msglen, unsigned char *out);
void scram_h(enum scram_hash h, const void *msg, size_t len,
    unsigned char *out);

/*
 * Server check of a client proof: ClientSignature = HMAC(StoredKey,
 * AuthMessage); ClientKey = proof XOR ClientSignature; H(ClientKey) must
 * equal StoredKey (constant-time).  Returns 1 if valid.
 */
int scram_verify_proof(const struct scram_keys *k, const char *auth_message,
    const unsigned char *proof, size_t prooflen);
/* ServerSignature = HMAC(ServerKey, AuthMessage). */
void scram_server_signature(const struct scram_keys *k,
    const char *auth_message, unsigned char *out);
/* Client side: ClientProof from ClientKey and AuthMessage. */
void scram_client_proof(enum scram_hash h, const unsigned char *client_key,
    const char *auth_message, unsigned char *proof);

/* Constant-time comparison; 1 if equal. */
int scram_ct_equal(const void *a, const void *b, size_t n);

/*
 * client-first-message (RFC 5802 §7):
 *   gs2-header = gs2-cbind-flag "," [ authzid ] ","
 *   gs2-cbind-flag = ("p=" cb-name) / "n" / "y"
 *   client-first-message-bare = [reserved-mext ","] username "," nonce
 *                               ["," extensions]
 * Parsed into pointers within a private copy.  Usernames are decoded
 * ("=2C" -> ",", "=3D" -> "="), anything else after '=' is an error.
 */
struct scram_client_first {
	char cbflag;            /* 'n', 'y' or 'p' */
	char *cbname;           /* for 'p' */
	char *authzid;          /* NULL if absent (decoded) */
	char *username;         /* decoded */
	char *nonce;
	char *gs2_header;       /* up to and including the second ',' */
	char *bare;             /* client-first-message-bare */
	char *mem;
};
int scram_parse_client_first(const char *msg, size_t len,
    struct scram_client_first *out);
void scram_client_first_free(struct scram_client_first *cf);

/*
 * client-final-message = "c=" base64(gs2-header [cbind-data]) ",r=" nonce
 *                        ["," extensions] ",p=" base64(proof)
 * without_proof is everything before ",p=" (part of AuthMessage).
 */
struct scram_client_final {
	unsigned char *cbind;   /* decoded c= value */
	size_t cbindlen;
	char *nonce;
	char *without_proof;
	unsigned char *proof;
	size_t prooflen;
	char *mem;
};
int scram_parse_client_final(const char *msg, size_t len,
    struct scram_client_final *out);
void scram_client_final_free(struct scram_client_final *cf);

#endif
