/*
 * The arithmetic of the HT-SHA-256-* SASL mechanisms used by XEP-0484
 * (FAST) tokens (draft-schmaus-kitten-sasl-ht): token generation, the
 * hash kept at rest, and the HMACs of the initiator and the responder.
 *
 * A token is HT_TOKEN_LEN characters, longer than the 64-byte block of
 * SHA-256, so HMAC-SHA-256 keyed with it first replaces the key by its
 * SHA-256 (RFC 2104 §2): HMAC(token, m) = HMAC(SHA-256(token), m).  The
 * server therefore keeps only SHA-256(token) and still computes both
 * HMACs.  That hash is a credential in its own right for these
 * mechanisms (anyone holding it can compute the HMACs), so it is not
 * stored as it is: ht_seal XORs it with HMAC-SHA-256 of a server key
 * kept outside the database (store/fast.h) over the account and the
 * client it was issued to.  A copy of the database alone (a backup, an
 * SQL injection) gives no token and nothing that logs in; knowing one's
 * own token and its sealed hash tells nothing of anyone else's.
 */
#ifndef XMPPD_HT_H
#define XMPPD_HT_H

#include <stddef.h>

#define HT_TOKEN_RANDOM 60      /* random bytes in a token (480 bits) */
#define HT_TOKEN_LEN 80         /* base64url characters of them */
#define HT_HASH_LEN 32          /* SHA-256 */
#define HT_CB_MAX 64            /* bytes of channel-binding data, at most
                                   (struct sasl_cb's buffers) */
#define HT_KEY_LEN 32           /* the server's sealing key */

/* A new token: HT_TOKEN_LEN base64url characters and a NUL. */
void ht_token_new(char out[HT_TOKEN_LEN + 1]);
/* SHA-256 of a token's characters (the HMAC key it amounts to). */
void ht_token_hash(const char *token, unsigned char hash[HT_HASH_LEN]);
/*
 * Seal a token's hash for storage, or unseal a stored one (the same
 * operation): hash XOR HMAC-SHA-256(key, "xmppd fast" NUL user NUL host
 * NUL agent).
 */
void ht_seal(unsigned char hash[HT_HASH_LEN],
    const unsigned char key[HT_KEY_LEN], const char *user, const char *host,
    const char *agent);
/*
 * HMAC-SHA-256(token, label || cb) from the token's hash, label
 * "Initiator" (the client's message) or "Responder" (the server's
 * additional data); cb is the channel-binding data (cblen 0 for -NONE).
 */
void ht_mac(const unsigned char hash[HT_HASH_LEN], const char *label,
    const unsigned char *cb, size_t cblen, unsigned char out[HT_HASH_LEN]);
/* Whether mac (maclen bytes) is the initiator's HMAC for the token of
 * hash over cb; constant time (CRYPTO_memcmp). */
int ht_verify(const unsigned char hash[HT_HASH_LEN], const unsigned char *cb,
    size_t cblen, const unsigned char *mac, size_t maclen);

#endif
