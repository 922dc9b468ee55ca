/*
 * The XEP-0114 component handshake digest and its constant-time check.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "handshake.h"

void
handshake_digest(const char *stream_id, const char *secret,
    char out[HANDSHAKE_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	EVP_DigestInit_ex(ctx, EVP_sha1(), NULL);
	EVP_DigestUpdate(ctx, stream_id, strlen(stream_id));
	EVP_DigestUpdate(ctx, secret, strlen(secret));
	EVP_DigestFinal_ex(ctx, md, &n);
	EVP_MD_CTX_free(ctx);
	for (unsigned int i = 0; i < n && 2 * i < HANDSHAKE_HEX_LEN; i++) {
		out[2 * i] = "0123456789abcdef"[md[i] >> 4];
		out[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
	}
	out[HANDSHAKE_HEX_LEN] = '\0';
	OPENSSL_cleanse(md, sizeof(md));
}

int
handshake_verify(const char *stream_id, const char *secret,
    const char *received)
{
	char want[HANDSHAKE_HEX_LEN + 1], got[HANDSHAKE_HEX_LEN];
	int ok;

	if (strlen(received) != HANDSHAKE_HEX_LEN)
		return 0;
	for (size_t i = 0; i < HANDSHAKE_HEX_LEN; i++) {
		char ch = received[i];

		got[i] = ch >= 'A' && ch <= 'F' ? (char)(ch - 'A' + 'a') : ch;
	}
	handshake_digest(stream_id, secret, want);
	ok = CRYPTO_memcmp(want, got, HANDSHAKE_HEX_LEN) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	return ok;
}
