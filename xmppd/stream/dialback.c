/*
 * XEP-0185 dialback keys.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "stream/dialback.h"

void
dialback_key(const unsigned char *secret, size_t secret_len,
    const char *receiving, const char *originating, const char *stream_id,
    char *out)
{
	unsigned char d[EVP_MAX_MD_SIZE], mac[EVP_MAX_MD_SIZE];
	char k[2 * EVP_MAX_MD_SIZE];
	unsigned int dlen = 0, klen, mlen = 0;

	/* XEP-0185 §3: the HMAC key is SHA-256 of the secret, as the
	 * example there writes it (in hex). */
	EVP_Digest(secret, secret_len, d, &dlen, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < dlen; i++) {
		k[2 * i] = "0123456789abcdef"[d[i] >> 4];
		k[2 * i + 1] = "0123456789abcdef"[d[i] & 15];
	}
	klen = 2 * dlen;
	/* The message in one piece for the one-shot HMAC(). */
	{
		size_t lr = strlen(receiving), lo = strlen(originating),
		       ls = strlen(stream_id);
		unsigned char msg[3 * 1024 + 4];

		if (lr + lo + ls + 3 > sizeof(msg)) {	/* and the NUL */
			/* Longer than any valid domain pair: no key. */
			memset(out, '0', DIALBACK_KEY_LEN);
			out[DIALBACK_KEY_LEN] = '\0';
			return;
		}
		/* snprintf, not memcpy: the lengths are checked above. */
		(void)snprintf((char *)msg, sizeof(msg), "%s %s %s", receiving,
		    originating, stream_id);
		HMAC(EVP_sha256(), k, (int)klen, msg, lr + lo + ls + 2, mac,
		    &mlen);
	}
	for (unsigned int i = 0; i < mlen && 2 * i + 1 < DIALBACK_KEY_LEN;
	     i++) {
		out[2 * i] = "0123456789abcdef"[mac[i] >> 4];
		out[2 * i + 1] = "0123456789abcdef"[mac[i] & 15];
	}
	out[DIALBACK_KEY_LEN] = '\0';
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(d, sizeof(d));
}

int
dialback_key_valid(const unsigned char *secret, size_t secret_len,
    const char *receiving, const char *originating, const char *stream_id,
    const char *key)
{
	char want[DIALBACK_KEY_LEN + 1];

	if (key == NULL || strlen(key) != DIALBACK_KEY_LEN)
		return 0;
	dialback_key(secret, secret_len, receiving, originating, stream_id,
	    want);
	return CRYPTO_memcmp(want, key, DIALBACK_KEY_LEN) == 0;
}
