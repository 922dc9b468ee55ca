/*
 * SCRAM (RFC 5802, RFC 7677): key derivation, proofs and signatures over
 * OpenSSL's digests, SASLprep through libidn, and strict parsers for the
 * two messages a client sends.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stringprep.h>

#include "base64.h"
#include "log.h"
#include "scram.h"
#include "utf8.h"
#include "xmalloc.h"

/* SASLprep input bound: passwords are short; this caps libidn's work. */
#define SCRAM_PREP_MAX 4096

static const EVP_MD *
scram_md(enum scram_hash h)
{
	return h == SCRAM_SHA256 ? EVP_sha256() : EVP_sha1();
}

size_t
scram_hash_len(enum scram_hash h)
{
	return h == SCRAM_SHA256 ? 32 : 20;
}

const char *
scram_hash_name(enum scram_hash h)
{
	return h == SCRAM_SHA256 ? "SHA-256" : "SHA-1";
}

void
scram_hmac(enum scram_hash h, const unsigned char *key, size_t keylen,
    const void *msg, size_t msglen, unsigned char *out)
{
	unsigned int outlen = 0;

	if (keylen > INT_MAX ||
	    HMAC(scram_md(h), key, (int)keylen, msg, msglen, out, &outlen) ==
	        NULL ||
	    outlen != scram_hash_len(h))
		fatalx("scram: HMAC-%s failed", scram_hash_name(h));
}

void
scram_h(enum scram_hash h, const void *msg, size_t len, unsigned char *out)
{
	unsigned int outlen = 0;

	if (EVP_Digest(msg, len, out, &outlen, scram_md(h), NULL) != 1 ||
	    outlen != scram_hash_len(h))
		fatalx("scram: %s failed", scram_hash_name(h));
}

/*
 * SaltedPassword = Hi(password, salt, i), which is PBKDF2 with HMAC as
 * the PRF and one hash length of output (RFC 5802 §2.2).  The callers
 * must pass 1 <= iterations <= INT_MAX; a client must check the server's
 * i= before calling (a broken invariant here is fatal).
 */
static void
scram_salted_password(enum scram_hash h, const char *password,
    const unsigned char *salt, size_t saltlen, unsigned iterations,
    unsigned char *out)
{
	size_t pwlen = strlen(password);

	if (iterations == 0 || iterations > INT_MAX || pwlen > INT_MAX ||
	    saltlen > INT_MAX)
		fatalx("scram: bad PBKDF2 parameters (i=%u)", iterations);
	if (PKCS5_PBKDF2_HMAC(password, (int)pwlen, salt, (int)saltlen,
	        (int)iterations, scram_md(h), (int)scram_hash_len(h), out) != 1)
		fatalx("scram: PBKDF2-%s failed", scram_hash_name(h));
}

/*
 * ClientKey = HMAC(SaltedPassword, "Client Key"),
 * ServerKey = HMAC(SaltedPassword, "Server Key")  (RFC 5802 §3).
 * server_key may be NULL.
 */
void
scram_client_key(enum scram_hash h, const char *password,
    const unsigned char *salt, size_t saltlen, unsigned iterations,
    unsigned char *client_key, unsigned char *server_key)
{
	unsigned char salted[SCRAM_MAX_HASH];
	size_t hl = scram_hash_len(h);

	scram_salted_password(h, password, salt, saltlen, iterations, salted);
	scram_hmac(h, salted, hl, "Client Key", 10, client_key);
	if (server_key != NULL)
		scram_hmac(h, salted, hl, "Server Key", 10, server_key);
	OPENSSL_cleanse(salted, sizeof(salted));
}

/*
 * StoredKey = H(ClientKey).  The salt must fit struct scram_keys (32
 * bytes); a longer one is a caller bug and fatal, since storing a
 * truncated salt would silently make the credentials unusable.
 */
void
scram_derive(enum scram_hash h, const char *password, const unsigned char *salt,
    size_t saltlen, unsigned iterations, struct scram_keys *out)
{
	unsigned char client_key[SCRAM_MAX_HASH];

	if (saltlen > sizeof(out->salt))
		fatalx("scram: salt of %zu bytes exceeds %zu", saltlen,
		    sizeof(out->salt));
	memset(out, 0, sizeof(*out));
	out->hash = h;
	out->iterations = iterations;
	memcpy(out->salt, salt, saltlen);
	out->saltlen = saltlen;
	scram_client_key(h, password, salt, saltlen, iterations, client_key,
	    out->server_key);
	scram_h(h, client_key, scram_hash_len(h), out->stored_key);
	OPENSSL_cleanse(client_key, sizeof(client_key));
}

void
scram_random_salt(unsigned char *salt, size_t n)
{
	if (n > INT_MAX || RAND_bytes(salt, (int)n) != 1)
		fatalx("scram: RAND_bytes failed");
}

void
scram_random_hex(char *out, size_t n)
{
	unsigned char rnd[32];

	if (n > sizeof(rnd))
		n = sizeof(rnd);
	scram_random_salt(rnd, n);
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = "0123456789abcdef"[rnd[i] >> 4];
		out[2 * i + 1] = "0123456789abcdef"[rnd[i] & 15];
	}
	out[2 * n] = '\0';
}

/*
 * n characters drawn uniformly from the 93 printable ASCII characters
 * other than ',' (RFC 5802 §7 "printable"), by rejection sampling.
 */
void
scram_random_nonce(char *out, size_t n)
{
	unsigned char rnd[64];
	size_t i = 0, k;

	while (i < n) {
		scram_random_salt(rnd, sizeof(rnd));
		for (k = 0; k < sizeof(rnd) && i < n; k++) {
			unsigned v;

			if (rnd[k] >= 2 * 93)
				continue;
			v = 0x21 + rnd[k] % 93;
			out[i++] = (char)(v >= ',' ? v + 1 : v);
		}
	}
	out[n] = '\0';
}


/*
 * RFC 5802 §2.2 Normalize(): SASLprep as a query string (unassigned code
 * points allowed).  Input must be valid UTF-8; an empty result (e.g. only
 * characters mapped to nothing) is refused like a prohibited one.
 */
char *
scram_saslprep(const char *s)
{
	size_t n = strlen(s), cap, len, outlen;
	uint32_t *ucs4;
	char *out = NULL;
	int rc;

	if (n == 0 || n > SCRAM_PREP_MAX ||
	    !utf8_valid((const unsigned char *)s, n))
		return NULL;
	if ((ucs4 = stringprep_utf8_to_ucs4(s, (ssize_t)n, &len)) == NULL)
		return NULL;
	/*
	 * One call with room for the mapping (at most STRINGPREP_MAX_MAP_CHARS
	 * code points each, before NFKC) and for SCRAM_PREP_MAX code points;
	 * a longer result is refused rather than retried (stringprep() would
	 * redo NFKC for every 50 code points of growth).
	 */
	cap = len * STRINGPREP_MAX_MAP_CHARS;
	cap = (cap > SCRAM_PREP_MAX ? cap : SCRAM_PREP_MAX) + 1;
	ucs4 = xreallocarray(ucs4, cap, sizeof(*ucs4));
	rc = stringprep_4i(ucs4, &len, cap, 0, stringprep_saslprep);
	if (rc == STRINGPREP_OK && len > 0)
		out =
		    stringprep_ucs4_to_utf8(ucs4, (ssize_t)len, NULL, &outlen);
	OPENSSL_cleanse(ucs4, cap * sizeof(*ucs4));
	free(ucs4);
	if (out != NULL && strlen(out) != outlen) {
		OPENSSL_cleanse(out, outlen);
		free(out);
		out = NULL;
	}
	return out;
}

int
scram_ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

/*
 * RFC 5802 §3: ClientSignature = HMAC(StoredKey, AuthMessage),
 * ClientKey = ClientProof XOR ClientSignature, and H(ClientKey) must be
 * StoredKey.  A proof of the wrong length is simply invalid.
 */
int
scram_verify_proof(const struct scram_keys *k, const char *auth_message,
    const unsigned char *proof, size_t prooflen)
{
	unsigned char sig[SCRAM_MAX_HASH], key[SCRAM_MAX_HASH];
	unsigned char stored[SCRAM_MAX_HASH];
	size_t i, hl = scram_hash_len(k->hash);
	int ok;

	if (prooflen != hl)
		return 0;
	scram_hmac(k->hash, k->stored_key, hl, auth_message,
	    strlen(auth_message), sig);
	for (i = 0; i < hl; i++)
		key[i] = proof[i] ^ sig[i];
	scram_h(k->hash, key, hl, stored);
	ok = scram_ct_equal(stored, k->stored_key, hl);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(sig, sizeof(sig));
	return ok;
}

void
scram_server_signature(
    const struct scram_keys *k, const char *auth_message, unsigned char *out)
{
	scram_hmac(k->hash, k->server_key, scram_hash_len(k->hash),
	    auth_message, strlen(auth_message), out);
}

/* ClientProof = ClientKey XOR HMAC(H(ClientKey), AuthMessage). */
void
scram_client_proof(enum scram_hash h, const unsigned char *client_key,
    const char *auth_message, unsigned char *proof)
{
	unsigned char stored[SCRAM_MAX_HASH], sig[SCRAM_MAX_HASH];
	size_t i, hl = scram_hash_len(h);

	scram_h(h, client_key, hl, stored);
	scram_hmac(h, stored, hl, auth_message, strlen(auth_message), sig);
	for (i = 0; i < hl; i++)
		proof[i] = client_key[i] ^ sig[i];
	OPENSSL_cleanse(sig, sizeof(sig));
}

/* Message parsing (RFC 5802 §7). */

static int
is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/*
 * Attributes RFC 5802 defines.  They may not reappear as extensions: a
 * second r= or p= would make the message ambiguous, and §5.1 only asks
 * that attributes *not* defined there be ignored.
 */
static int
is_defined_attr(unsigned char c)
{
	return c != '\0' && strchr("acimnprsve", c) != NULL;
}

/*
 * Split s at the next ',' (or the end): returns the field, NUL-terminated
 * in place, and advances *sp past the comma, or to NULL at the end.
 */
static char *
next_field(char **sp)
{
	char *s = *sp, *comma = strchr(s, ',');

	if (comma != NULL) {
		*comma = '\0';
		*sp = comma + 1;
	} else
		*sp = NULL;
	return s;
}

/* printable = 1*(%x21-2B / %x2D-7E); ',' cannot occur in a field. */
static int
nonce_valid(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

/*
 * Decode saslname = 1*(value-safe-char / "=2C" / "=3D") from src into
 * dst (room for strlen(src) + 1).  UTF-8 validity was checked on the
 * whole message.  Returns 0 or -1.
 */
static int
saslname_decode(const char *src, char *dst)
{
	if (*src == '\0')
		return -1;
	while (*src != '\0') {
		if (*src != '=') {
			*dst++ = *src++;
			continue;
		}
		if (src[1] == '2' && src[2] == 'C')
			*dst++ = ',';
		else if (src[1] == '3' && src[2] == 'D')
			*dst++ = '=';
		else
			return -1;
		src += 3;
	}
	*dst = '\0';
	return 0;
}

/* extensions = attr-val *("," attr-val); attr-val = ALPHA "=" 1*value-char */
static int
extensions_valid(char *s)
{
	char *f;

	while (s != NULL) {
		f = next_field(&s);
		if (!is_alpha((unsigned char)f[0]) || f[1] != '=' ||
		    f[2] == '\0' || is_defined_attr((unsigned char)f[0]))
			return -1;
	}
	return 0;
}

/*
 * The message must be NUL-free UTF-8 (value-char, RFC 5802 §7); len is
 * bounded so that the copies below cannot overflow.
 */
static int
message_valid(const char *msg, size_t len)
{
	return len > 0 && len < SIZE_MAX / 8 &&
	       utf8_valid((const unsigned char *)msg, len);
}

/* cb-name = 1*(ALPHA / DIGIT / "." / "-") */
static int
cbname_valid(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!is_alpha((unsigned char)*s) && !(*s >= '0' && *s <= '9') &&
		    *s != '.' && *s != '-')
			return 0;
	return 1;
}

/*
 * gs2-header = gs2-cbind-flag "," [ authzid ] ","; the bare message is
 * [reserved-mext ","] username "," nonce ["," extensions].  A reserved
 * m= extension is refused (§5.1: the server MUST fail if it does not
 * understand a mandatory extension).  On failure out is zeroed.
 */
int
scram_parse_client_first(
    const char *msg, size_t len, struct scram_client_first *out)
{
	char *work, *p, *f, *flag, *authz, *user, *rest;
	size_t hlen;

	memset(out, 0, sizeof(*out));
	if (!message_valid(msg, len))
		return -1;
	/* Layout: gs2_header, bare, scratch copy, decoded fields. */
	out->mem = xmalloc(4 * (len + 1));
	work = out->mem + 2 * (len + 1);
	memcpy(work, msg, len);
	work[len] = '\0';

	p = work;
	flag = next_field(&p);
	if (p == NULL)
		goto bad;
	authz = next_field(&p);
	if (p == NULL)
		goto bad;
	hlen = (size_t)(p - work);
	out->gs2_header = out->mem;
	memcpy(out->gs2_header, msg, hlen);
	out->gs2_header[hlen] = '\0';
	out->bare = out->gs2_header + hlen + 1;
	memcpy(out->bare, msg + hlen, len - hlen);
	out->bare[len - hlen] = '\0';
	rest = out->bare + (len - hlen) + 1; /* decoded fields follow */

	if ((flag[0] == 'n' || flag[0] == 'y') && flag[1] == '\0')
		out->cbflag = flag[0];
	else if (flag[0] == 'p' && flag[1] == '=' && cbname_valid(flag + 2)) {
		out->cbflag = 'p';
		out->cbname = flag + 2;
	} else
		goto bad;
	if (authz[0] != '\0') {
		if (authz[0] != 'a' || authz[1] != '=')
			goto bad;
		out->authzid = rest;
		if (saslname_decode(authz + 2, out->authzid) == -1)
			goto bad;
		rest += strlen(authz + 2) + 1;
	}

	user = next_field(&p);
	if (p == NULL || user[0] != 'n' || user[1] != '=')
		goto bad; /* also catches a leading m= */
	out->username = rest;
	if (saslname_decode(user + 2, out->username) == -1)
		goto bad;
	f = next_field(&p);
	if (f[0] != 'r' || f[1] != '=' || !nonce_valid(f + 2))
		goto bad;
	out->nonce = f + 2;
	if (extensions_valid(p) == -1)
		goto bad;
	return 0;
bad:
	scram_client_first_free(out);
	return -1;
}

void
scram_client_first_free(struct scram_client_first *cf)
{
	free(cf->mem);
	memset(cf, 0, sizeof(*cf));
}

/*
 * client-final-message-without-proof "," proof, where the proof is the
 * last attribute and without_proof is c=..,r=..[,extensions].  c= may
 * decode to anything (the server compares it with gs2-header and any
 * channel binding data); p= must be non-empty.  On failure out is zeroed.
 */
int
scram_parse_client_final(
    const char *msg, size_t len, struct scram_client_final *out)
{
	char *work, *p, *f, *lastcomma, *proof;
	size_t wplen;
	long n;

	memset(out, 0, sizeof(*out));
	if (!message_valid(msg, len))
		return -1;
	/* Layout: without_proof, scratch copy, cbind, proof. */
	out->mem = xmalloc(4 * (len + 1));
	work = out->mem + len + 1;
	memcpy(work, msg, len);
	work[len] = '\0';

	if ((lastcomma = strrchr(work, ',')) == NULL)
		goto bad;
	wplen = (size_t)(lastcomma - work);
	out->without_proof = out->mem;
	memcpy(out->without_proof, msg, wplen);
	out->without_proof[wplen] = '\0';
	*lastcomma = '\0';
	proof = lastcomma + 1;
	if (proof[0] != 'p' || proof[1] != '=' || proof[2] == '\0')
		goto bad;

	p = work;
	f = next_field(&p);
	if (p == NULL || f[0] != 'c' || f[1] != '=')
		goto bad;
	out->cbind = (unsigned char *)work + len + 1;
	if ((n = base64_decode(f + 2, strlen(f + 2), out->cbind)) < 0)
		goto bad;
	out->cbindlen = (size_t)n;
	f = next_field(&p);
	if (f[0] != 'r' || f[1] != '=' || !nonce_valid(f + 2))
		goto bad;
	out->nonce = f + 2;
	if (extensions_valid(p) == -1)
		goto bad;
	out->proof = out->cbind + len + 1;
	if ((n = base64_decode(proof + 2, strlen(proof + 2), out->proof)) < 0)
		goto bad;
	out->prooflen = (size_t)n;
	return 0;
bad:
	scram_client_final_free(out);
	return -1;
}

void
scram_client_final_free(struct scram_client_final *cf)
{
	free(cf->mem);
	memset(cf, 0, sizeof(*cf));
}
