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
ht_seal(unsigned char hash[HT_HASH_LEN], const unsigned char key[HT_KEY_LEN],
    const char *user, const char *host, const char *agent)
{
	static const char label[] = "xmppd fast";
	const char *parts[] = { label, user, host, agent };
	unsigned char msg[sizeof(label) + 3 * 1024], pad[HT_HASH_LEN];
	size_t len = 0;

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		size_t n = strlen(parts[i]);

		/* JIDs' parts are at most 1023 bytes, agents 64. */
		if (n > 1023)
			n = 1023;
		memcpy(msg + len, parts[i], n);
		len += n;
		msg[len++] = '\0';
	}
	scram_hmac(SCRAM_SHA256, key, HT_KEY_LEN, msg, len, pad);
	for (size_t i = 0; i < HT_HASH_LEN; i++)
		hash[i] ^= pad[i];
	OPENSSL_cleanse(pad, sizeof(pad));
	OPENSSL_cleanse(msg, len);
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
