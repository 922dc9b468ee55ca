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
 * mechanisms (anyone holding it can compute the HMACs), so it is kept
 * like the SCRAM keys; what it spares is the token itself, which the
 * client may reuse nowhere else.
 */
#ifndef XMPPD_HT_H
#define XMPPD_HT_H

#include <stddef.h>

#define HT_TOKEN_RANDOM 60      /* random bytes in a token (480 bits) */
#define HT_TOKEN_LEN 80         /* base64url characters of them */
#define HT_HASH_LEN 32          /* SHA-256 */
#define HT_CB_MAX 64            /* bytes of channel-binding data, at most
                                   (struct sasl_cb's buffers) */

/* A new token: HT_TOKEN_LEN base64url characters and a NUL. */
void ht_token_new(char out[HT_TOKEN_LEN + 1]);
/* What is stored of a token: SHA-256 of its characters. */
void ht_token_hash(const char *token, unsigned char hash[HT_HASH_LEN]);
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
