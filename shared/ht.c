/*
 * HT-SHA-256-* (FAST tokens, XEP-0484): see ht.h.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "ht.h"
#include "scram.h"

void
ht_token_new(char out[HT_TOKEN_LEN + 1])
{
	static const char b64url[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char rnd[HT_TOKEN_RANDOM];
	size_t o = 0;

	scram_random_salt(rnd, sizeof(rnd));
	for (size_t i = 0; i + 2 < sizeof(rnd); i += 3) {
		unsigned v = (unsigned)rnd[i] << 16 | (unsigned)rnd[i + 1] << 8 |
		    rnd[i + 2];

		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
		out[o++] = b64url[v >> 6 & 63];
		out[o++] = b64url[v & 63];
	}
	out[o] = '\0';
	OPENSSL_cleanse(rnd, sizeof(rnd));
}

void
ht_token_hash(const char *token, unsigned char hash[HT_HASH_LEN])
{
	scram_h(SCRAM_SHA256, token, strlen(token), hash);
}

void
ht_mac(const unsigned char hash[HT_HASH_LEN], const char *label,
    const unsigned char *cb, size_t cblen, unsigned char out[HT_HASH_LEN])
{
	unsigned char msg[16 + HT_CB_MAX];
	size_t ll = strlen(label);

	if (ll > 16 || cblen > HT_CB_MAX) {
		memset(out, 0, HT_HASH_LEN);
		return;
	}
	for (size_t i = 0; i < ll; i++)
		msg[i] = (unsigned char)label[i];
	if (cblen > 0)
		memcpy(msg + ll, cb, cblen);
	scram_hmac(SCRAM_SHA256, hash, HT_HASH_LEN, msg, ll + cblen, out);
}

int
ht_verify(const unsigned char hash[HT_HASH_LEN], const unsigned char *cb,
    size_t cblen, const unsigned char *mac, size_t maclen)
{
	unsigned char want[HT_HASH_LEN];
	int ok;

	/* ht_mac() answers zeros for what it cannot take: never a MAC. */
	if (maclen != HT_HASH_LEN || cblen > HT_CB_MAX)
		return 0;
	ht_mac(hash, "Initiator", cb, cblen, want);
	ok = CRYPTO_memcmp(want, mac, HT_HASH_LEN) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	return ok;
}
