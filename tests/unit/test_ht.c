/*
 * Unit tests for shared/ht.c (XEP-0484 FAST tokens, HT-SHA-256-*):
 * tokens, the stored hash standing in for the token as HMAC key (RFC 2104
 * §2: a key longer than the block is hashed first), known answers
 * computed with Python's hmac module, and the constant-time check.
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ht.h"
#include "unit.h"

static void
hex(const unsigned char *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = "0123456789abcdef"[b[i] >> 4];
		out[2 * i + 1] = "0123456789abcdef"[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static void
test_tokens(void)
{
	char a[HT_TOKEN_LEN + 1], b[HT_TOKEN_LEN + 1];

	/* The property everything rests on: longer than SHA-256's block. */
	CHECK(HT_TOKEN_LEN > 64);
	CHECK(HT_TOKEN_RANDOM * 8 >= 128);
	ht_token_new(a);
	ht_token_new(b);
	CHECK(strlen(a) == HT_TOKEN_LEN && strlen(b) == HT_TOKEN_LEN);
	CHECK(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_") == HT_TOKEN_LEN);
	CHECK(strcmp(a, b) != 0);
}

/* Known answers: token "A" x 80, cb = 0x00..0x1f. */
static void
test_known_answers(void)
{
	char token[81], h[65];
	unsigned char hash[HT_HASH_LEN], mac[HT_HASH_LEN], cb[32];

	memset(token, 'A', 80);
	token[80] = '\0';
	for (int i = 0; i < 32; i++)
		cb[i] = (unsigned char)i;
	ht_token_hash(token, hash);
	hex(hash, sizeof(hash), h);
	CHECK_STR(h, "d9b1f3e2c6d528668a73f22575c44ed9"
	    "f98d9c684964761b621417efd80d7a60");
	ht_mac(hash, "Initiator", cb, sizeof(cb), mac);
	hex(mac, sizeof(mac), h);
	CHECK_STR(h, "f9849b64b7d4837fb5834424302384d5"
	    "2aeb26762cd529305fff8b93556ea356");
	ht_mac(hash, "Responder", NULL, 0, mac);
	hex(mac, sizeof(mac), h);
	CHECK_STR(h, "5733d67ff015fffe1950b53bff43d3a7"
	    "0455d79f9990996f7a6473b3834bc937");
}

/* What a client computes, HMAC keyed with the token itself, equals what
 * the server computes from the hash alone. */
static void
test_hash_is_the_key(void)
{
	char token[HT_TOKEN_LEN + 1];
	unsigned char hash[HT_HASH_LEN], ours[HT_HASH_LEN];
	unsigned char theirs[EVP_MAX_MD_SIZE], msg[9 + 32];
	unsigned len = 0;

	for (int round = 0; round < 20; round++) {
		ht_token_new(token);
		ht_token_hash(token, hash);
		memcpy(msg, "Initiator", 9);
		memset(msg + 9, round, 32);
		HMAC(EVP_sha256(), token, (int)strlen(token), msg, sizeof(msg),
		    theirs, &len);
		ht_mac(hash, "Initiator", msg + 9, 32, ours);
		CHECK(len == HT_HASH_LEN &&
		    memcmp(ours, theirs, HT_HASH_LEN) == 0);
	}
}

static void
test_verify(void)
{
	char token[HT_TOKEN_LEN + 1];
	unsigned char hash[HT_HASH_LEN], mac[HT_HASH_LEN], resp[HT_HASH_LEN];
	unsigned char cb[32] = { 1, 2, 3 }, other[32] = { 3, 2, 1 };

	ht_token_new(token);
	ht_token_hash(token, hash);
	ht_mac(hash, "Initiator", cb, sizeof(cb), mac);
	CHECK(ht_verify(hash, cb, sizeof(cb), mac, sizeof(mac)));
	/* Another channel, no channel binding, a shorter MAC, one bit. */
	CHECK(!ht_verify(hash, other, sizeof(other), mac, sizeof(mac)));
	CHECK(!ht_verify(hash, NULL, 0, mac, sizeof(mac)));
	CHECK(!ht_verify(hash, cb, sizeof(cb), mac, sizeof(mac) - 1));
	mac[7] ^= 0x10;
	CHECK(!ht_verify(hash, cb, sizeof(cb), mac, sizeof(mac)));
	/* The server's own MAC is no client's. */
	ht_mac(hash, "Responder", cb, sizeof(cb), resp);
	CHECK(!ht_verify(hash, cb, sizeof(cb), resp, sizeof(resp)));
	/* Channel-binding data longer than any type's is refused. */
	{
		unsigned char big[65] = { 0 };

		ht_mac(hash, "Initiator", big, sizeof(big), mac);
		CHECK(!ht_verify(hash, big, sizeof(big), mac, sizeof(mac)));
	}
}

/* Sealing at rest: its own inverse, keyed, and bound to account and
 * client. */
static void
test_seal(void)
{
	unsigned char key[HT_KEY_LEN] = { 7 }, other[HT_KEY_LEN] = { 8 };
	unsigned char hash[HT_HASH_LEN], sealed[HT_HASH_LEN];
	unsigned char a[HT_HASH_LEN], b[HT_HASH_LEN];
	char token[HT_TOKEN_LEN + 1];

	ht_token_new(token);
	ht_token_hash(token, hash);
	memcpy(sealed, hash, sizeof(hash));
	ht_seal(sealed, key, "alice", "example.org", "agent-1");
	CHECK(memcmp(sealed, hash, sizeof(hash)) != 0);
	memcpy(a, sealed, sizeof(a));
	ht_seal(a, key, "alice", "example.org", "agent-1");
	CHECK(memcmp(a, hash, sizeof(hash)) == 0);
	/* Another key, account or client unseals to something else. */
	memcpy(a, sealed, sizeof(a));
	ht_seal(a, other, "alice", "example.org", "agent-1");
	CHECK(memcmp(a, hash, sizeof(hash)) != 0);
	memcpy(a, sealed, sizeof(a));
	ht_seal(a, key, "bob", "example.org", "agent-1");
	CHECK(memcmp(a, hash, sizeof(hash)) != 0);
	memcpy(a, sealed, sizeof(a));
	ht_seal(a, key, "alice", "example.org", "agent-2");
	CHECK(memcmp(a, hash, sizeof(hash)) != 0);
	/* The parts are delimited: "ab"+"c" is not "a"+"bc". */
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	ht_seal(a, key, "ab", "c", "x");
	ht_seal(b, key, "a", "bc", "x");
	CHECK(memcmp(a, b, sizeof(a)) != 0);
}

int
main(void)
{
	test_tokens();
	test_known_answers();
	test_hash_is_the_key();
	test_verify();
	test_seal();
	return UNIT_DONE("ht");
}
