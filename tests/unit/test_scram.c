/*
 * Unit tests for shared/scram.c: the RFC 5802 §5 and RFC 7677 §3
 * exchanges end to end, the message parsers, and SASLprep (RFC 4013 §3).
 */
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "scram.h"
#include "unit.h"

/* A string literal and its length, NULs included. */
#define LIT(s) (s), (sizeof(s) - 1)

struct vector {
	enum scram_hash hash;
	const char *password, *salt_b64;
	unsigned iterations;
	const char *client_first, *server_first, *client_final;
	const char *client_nonce, *nonce;
	const char *proof_b64, *server_sig_b64;
};

static const struct vector rfc5802 = {
    .hash = SCRAM_SHA1,
    .password = "pencil",
    .salt_b64 = "QSXCR+Q6sek8bf92",
    .iterations = 4096,
    .client_first = "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    .server_first =
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,"
        "i=4096",
    .client_final = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                    "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    .client_nonce = "fyko+d2lbbFgONRv9qkxdawL",
    .nonce = "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
    .proof_b64 = "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    .server_sig_b64 = "rmF9pqV8S7suAoZWja4dJRkFsKQ=",
};

static const struct vector rfc7677 = {
    .hash = SCRAM_SHA256,
    .password = "pencil",
    .salt_b64 = "W22ZaJ0SNY7soEsUEjb6gQ==",
    .iterations = 4096,
    .client_first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    .server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    .client_final =
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    .client_nonce = "rOprNGfwEbeRWgbNEkqO",
    .nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    .proof_b64 = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    .server_sig_b64 = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

/* Run one published exchange through both the server and client sides. */
static void
test_vector(const struct vector *v)
{
	struct scram_client_first cf;
	struct scram_client_final fin;
	struct scram_keys keys;
	unsigned char salt[32], client_key[SCRAM_MAX_HASH];
	unsigned char server_key[SCRAM_MAX_HASH], proof[SCRAM_MAX_HASH];
	unsigned char sig[SCRAM_MAX_HASH];
	size_t hl = scram_hash_len(v->hash);
	char *auth, *b64;
	long saltlen;

	saltlen = base64_decode(v->salt_b64, strlen(v->salt_b64), salt);
	CHECK(saltlen > 0);

	/* Server: parse client-first. */
	CHECK(scram_parse_client_first(
	          v->client_first, strlen(v->client_first), &cf) == 0);
	CHECK(cf.cbflag == 'n');
	CHECK(cf.cbname == NULL);
	CHECK(cf.authzid == NULL);
	CHECK_STR(cf.username, "user");
	CHECK_STR(cf.nonce, v->client_nonce);
	CHECK_STR(cf.gs2_header, "n,,");
	CHECK_STR(cf.bare, v->client_first + 3);

	/* Server: parse client-final. */
	CHECK(scram_parse_client_final(
	          v->client_final, strlen(v->client_final), &fin) == 0);
	CHECK(fin.cbindlen == 3 && memcmp(fin.cbind, "n,,", 3) == 0);
	CHECK_STR(fin.nonce, v->nonce);
	CHECK(fin.prooflen == hl);
	CHECK(strncmp(fin.without_proof, v->client_final,
	          strlen(fin.without_proof)) == 0);
	CHECK(strncmp(v->client_final + strlen(fin.without_proof), ",p=", 3) ==
	      0);

	/* AuthMessage (RFC 5802 §3). */
	auth = malloc(strlen(cf.bare) + strlen(v->server_first) +
	              strlen(fin.without_proof) + 3);
	sprintf(auth, "%s,%s,%s", cf.bare, v->server_first, fin.without_proof);

	/* Server: stored keys, proof check, signature. */
	scram_derive(
	    v->hash, v->password, salt, (size_t)saltlen, v->iterations, &keys);
	CHECK(keys.hash == v->hash && keys.iterations == v->iterations);
	CHECK(keys.saltlen == (size_t)saltlen &&
	      memcmp(keys.salt, salt, keys.saltlen) == 0);
	CHECK(scram_verify_proof(&keys, auth, fin.proof, fin.prooflen) == 1);
	scram_server_signature(&keys, auth, sig);
	b64 = base64_encode_alloc(sig, hl);
	CHECK_STR(b64, v->server_sig_b64);
	free(b64);

	/* A flipped bit anywhere, or a wrong length, is refused. */
	fin.proof[0] ^= 0x01;
	CHECK(scram_verify_proof(&keys, auth, fin.proof, fin.prooflen) == 0);
	fin.proof[0] ^= 0x01;
	fin.proof[hl - 1] ^= 0x80;
	CHECK(scram_verify_proof(&keys, auth, fin.proof, fin.prooflen) == 0);
	fin.proof[hl - 1] ^= 0x80;
	CHECK(scram_verify_proof(&keys, auth, fin.proof, hl - 1) == 0);
	CHECK(scram_verify_proof(&keys, auth, fin.proof, 0) == 0);
	auth[0] = 'N';
	CHECK(scram_verify_proof(&keys, auth, fin.proof, fin.prooflen) == 0);
	auth[0] = 'n';
	CHECK(scram_verify_proof(&keys, auth, fin.proof, fin.prooflen) == 1);

	/* Client: ClientProof and the expected ServerSignature. */
	scram_client_key(v->hash, v->password, salt, (size_t)saltlen,
	    v->iterations, client_key, server_key);
	CHECK(memcmp(server_key, keys.server_key, hl) == 0);
	scram_client_proof(v->hash, client_key, auth, proof);
	b64 = base64_encode_alloc(proof, hl);
	CHECK_STR(b64, v->proof_b64);
	free(b64);
	scram_client_key(v->hash, v->password, salt, (size_t)saltlen,
	    v->iterations, proof, NULL);
	CHECK(memcmp(proof, client_key, hl) == 0);

	/* A different password gives keys that refuse the proof. */
	scram_derive(
	    v->hash, "pencil2", salt, (size_t)saltlen, v->iterations, &keys);
	CHECK(scram_verify_proof(&keys, auth, fin.proof, fin.prooflen) == 0);

	free(auth);
	scram_client_first_free(&cf);
	scram_client_final_free(&fin);
	CHECK(cf.mem == NULL && fin.mem == NULL);
}

static void
test_primitives(void)
{
	unsigned char out[SCRAM_MAX_HASH];
	char *b64;

	CHECK(scram_hash_len(SCRAM_SHA1) == 20);
	CHECK(scram_hash_len(SCRAM_SHA256) == 32);
	CHECK_STR(scram_hash_name(SCRAM_SHA1), "SHA-1");
	CHECK_STR(scram_hash_name(SCRAM_SHA256), "SHA-256");
	/* FIPS 180 "abc" and RFC 4231 test case 2. */
	scram_h(SCRAM_SHA1, "abc", 3, out);
	b64 = base64_encode_alloc(out, 20);
	CHECK_STR(b64, "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
	free(b64);
	scram_hmac(SCRAM_SHA256, (const unsigned char *)"Jefe", 4,
	    "what do ya want for nothing?", 28, out);
	b64 = base64_encode_alloc(out, 32);
	CHECK_STR(b64, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
	free(b64);
	CHECK(scram_ct_equal("abcd", "abcd", 4) == 1);
	CHECK(scram_ct_equal("abcd", "abce", 4) == 0);
	CHECK(scram_ct_equal("a", "b", 0) == 1);
}

static void
test_random(void)
{
	unsigned char s1[16], s2[16];
	char n1[65], n2[65];
	size_t i;
	int ok = 1;

	scram_random_salt(s1, sizeof(s1));
	scram_random_salt(s2, sizeof(s2));
	CHECK(memcmp(s1, s2, sizeof(s1)) != 0);
	scram_random_nonce(n1, 64);
	scram_random_nonce(n2, 64);
	CHECK(strlen(n1) == 64 && strlen(n2) == 64);
	CHECK(strcmp(n1, n2) != 0);
	for (i = 0; i < 64; i++)
		if (n1[i] < 0x21 || n1[i] > 0x7e || n1[i] == ',')
			ok = 0;
	CHECK(ok);
	scram_random_nonce(n1, 0);
	CHECK(n1[0] == '\0');
}

/* Parse s as a client-first message; expect success or failure. */
static int
first_ok(const char *s)
{
	struct scram_client_first cf;
	int rc = scram_parse_client_first(s, strlen(s), &cf);

	if (rc == 0)
		scram_client_first_free(&cf);
	else if (cf.mem != NULL || cf.username != NULL)
		return -2; /* failure must leave it zeroed */
	return rc;
}

static void
test_parse_first(void)
{
	struct scram_client_first cf;
	static const char *bad[] = {
	    "",
	    "n",
	    "n,",
	    "n,,",
	    "n,,n=u",
	    "n,,n=u,",
	    "n,,n=u,r=",
	    "x,,n=u,r=a", /* unknown gs2-cbind-flag */
	    "N,,n=u,r=a",
	    "nn,,n=u,r=a",
	    "p,,n=u,r=a",
	    "p=,,n=u,r=a", /* empty cb-name */
	    "p=tls unique,,n=u,r=a",
	    "p=tls_unique,,n=u,r=a",
	    "F,n,,n=u,r=a", /* GS2 non-standard flag */
	    ",,n=u,r=a",
	    "n,b=x,n=u,r=a", /* authzid must be a= */
	    "n,a=,n=u,r=a",  /* empty authzid */
	    "n,a=x=2,n=u,r=a",
	    "n,,m=ext,n=u,r=a", /* mandatory extension (§5.1) */
	    "n,,r=a,n=u",       /* wrong order */
	    "n,,r=a",           /* no username */
	    "n,,n=,r=a",        /* empty username */
	    "n,,n=a=2c,r=a",    /* escapes are upper case */
	    "n,,n=a=3d,r=a",
	    "n,,n=a=41,r=a",
	    "n,,n=a=,r=a",
	    "n,,n=a=2,r=a",
	    "n,,n=a=",
	    "n,,u=a,r=a",
	    "n,,n=a,x=b", /* no nonce */
	    "n,,n=a,R=b",
	    "n,,n=u,r=a b", /* nonce not printable */
	    "n,,n=u,r=a\x7f",
	    "n,,n=u,r=a\x01",
	    "n,,n=u,r=\xc3\xa9",
	    "n,,n=u,r=a,", /* empty extension */
	    "n,,n=u,r=a,x",
	    "n,,n=u,r=a,x=",
	    "n,,n=u,r=a,1=x",
	    "n,,n=u,r=a,xy=z",
	    "n,,n=u,r=a,r=b", /* repeated attribute */
	    "n,,n=u,r=a,n=v",
	    "n,,n=\xff,r=a", /* invalid UTF-8 */
	    "n,,n=\xc0\xaf,r=a",
	    "n,,n=\xed\xa0\x80,r=a",
	    "n,,n=u,r=a,x=\xc3",
	};
	size_t i;
	int ok = 1;

	CHECK(scram_parse_client_first(LIT("n,,n=user,r=abc"), &cf) == 0);
	CHECK(cf.cbflag == 'n' && cf.cbname == NULL && cf.authzid == NULL);
	CHECK_STR(cf.username, "user");
	CHECK_STR(cf.nonce, "abc");
	CHECK_STR(cf.gs2_header, "n,,");
	CHECK_STR(cf.bare, "n=user,r=abc");
	scram_client_first_free(&cf);

	CHECK(scram_parse_client_first(LIT("y,,n=user,r=abc"), &cf) == 0);
	CHECK(cf.cbflag == 'y');
	scram_client_first_free(&cf);

	CHECK(first_ok("p=tls-unique,,n=u,r=a") == 0);
	CHECK(scram_parse_client_first(
	          LIT("p=tls-exporter,a=adm,n=u,r=x,q=1,z=2"), &cf) == 0);
	CHECK(cf.cbflag == 'p');
	CHECK_STR(cf.cbname, "tls-exporter");
	CHECK_STR(cf.authzid, "adm");
	CHECK_STR(cf.nonce, "x");
	CHECK_STR(cf.gs2_header, "p=tls-exporter,a=adm,");
	CHECK_STR(cf.bare, "n=u,r=x,q=1,z=2");
	scram_client_first_free(&cf);

	/* Escapes in saslname (RFC 5802 §5.1). */
	CHECK(scram_parse_client_first(
	          LIT("n,a=a=2Cb=3Dc,n==2C=3D=3D,r=+~!"), &cf) == 0);
	CHECK_STR(cf.authzid, "a,b=c");
	CHECK_STR(cf.username, ",==");
	CHECK_STR(cf.nonce, "+~!");
	scram_client_first_free(&cf);

	/* UTF-8 and odd but allowed value-safe-chars in the username. */
	CHECK(scram_parse_client_first(
	          LIT("n,,n=j\xc3\xbcrgen \x01,r=a"), &cf) == 0);
	CHECK_STR(cf.username, "j\xc3\xbcrgen \x01");
	scram_client_first_free(&cf);
	/* An extension value may hold '='. */
	CHECK(first_ok("n,,n=u,r=a,x=b=c") == 0);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (first_ok(bad[i]) != -1) {
			fprintf(
			    stderr, "accepted client-first \"%s\"\n", bad[i]);
			ok = 0;
		}
	CHECK(ok);
	/* NUL bytes and the length argument. */
	CHECK(scram_parse_client_first(LIT("n,,n=u\0x,r=a"), &cf) == -1);
	CHECK(scram_parse_client_first(LIT("n,,n=u,r=a\0"), &cf) == -1);
	CHECK(scram_parse_client_first("n,,n=u,r=abc", 11, &cf) == 0);
	CHECK_STR(cf.nonce, "ab");
	scram_client_first_free(&cf);
}

/* Parse s as a client-final message; -2 if failure left residue. */
static int
final_ok(const char *s)
{
	struct scram_client_final fin;
	int rc = scram_parse_client_final(s, strlen(s), &fin);

	if (rc == 0)
		scram_client_final_free(&fin);
	else if (fin.mem != NULL || fin.proof != NULL)
		return -2;
	return rc;
}

static void
test_parse_final(void)
{
	struct scram_client_final fin;
	static const char *bad[] = {
	    "",
	    "c=biws",
	    "c=biws,r=abc",
	    "c=biws,r=abc,",
	    "c=biws,r=abc,p=",       /* empty proof */
	    "c=biws,r=abc,p=dGVzdA", /* bad padding */
	    "c=biws,r=abc,p=dGVz dA==",
	    "c=biws,r=abc,p=dGVzdA==\n",
	    "c=biws,r=abc,p=dGVzdB==", /* non-zero pad bits */
	    "c=bi,r=abc,p=dGVzdA==",   /* bad channel binding */
	    "c=bi*s,r=abc,p=dGVzdA==",
	    "c=biws,p=dGVzdA==",       /* no nonce */
	    "r=abc,c=biws,p=dGVzdA==", /* wrong order */
	    "C=biws,r=abc,p=dGVzdA==",
	    "c=biws,R=abc,p=dGVzdA==",
	    "c=biws,r=abc,P=dGVzdA==",
	    "c=biws,r=,p=dGVzdA==", /* empty nonce */
	    "c=biws,r=a c,p=dGVzdA==",
	    "c=biws,r=\xc3\xa9,p=dGVzdA==",
	    "c=biws,r=abc,p=dGVzdA==,x=y", /* proof not last */
	    "c=biws,r=abc,p=AAAA,p=dGVzdA==",
	    "c=biws,r=abc,r=abd,p=dGVzdA==",
	    "c=biws,r=abc,,p=dGVzdA==",
	    "c=biws,r=abc,x,p=dGVzdA==",
	    "c=biws,r=abc,x=,p=dGVzdA==",
	    "c=biws,r=abc,9=z,p=dGVzdA==",
	    "c=biws,r=abc,x=\xff,p=dGVzdA==",
	    ",c=biws,r=abc,p=dGVzdA==",
	};
	size_t i;
	int ok = 1;

	CHECK(scram_parse_client_final(LIT("c=biws,r=abc,p=dGVzdA=="), &fin) ==
	      0);
	CHECK(fin.cbindlen == 3 && memcmp(fin.cbind, "n,,", 3) == 0);
	CHECK_STR(fin.nonce, "abc");
	CHECK_STR(fin.without_proof, "c=biws,r=abc");
	CHECK(fin.prooflen == 4 && memcmp(fin.proof, "test", 4) == 0);
	scram_client_final_free(&fin);

	/* Extensions are skipped; c= may carry channel binding data. */
	CHECK(scram_parse_client_final(
	          LIT("c=cD10bHMtdW5pcXVlLCwBAgM=,r=a,x=1,y=2=3,p=AAAA"),
	          &fin) == 0);
	CHECK(fin.cbindlen == 17 &&
	      memcmp(fin.cbind, "p=tls-unique,,\x01\x02\x03", 17) == 0);
	CHECK_STR(
	    fin.without_proof, "c=cD10bHMtdW5pcXVlLCwBAgM=,r=a,x=1,y=2=3");
	CHECK(fin.prooflen == 3);
	scram_client_final_free(&fin);
	/* An empty c= is well-formed (the server's comparison fails it). */
	CHECK(final_ok("c=,r=abc,p=dGVzdA==") == 0);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (final_ok(bad[i]) != -1) {
			fprintf(
			    stderr, "accepted client-final \"%s\"\n", bad[i]);
			ok = 0;
		}
	CHECK(ok);
	CHECK(scram_parse_client_final(LIT("c=biws,r=a\0c,p=dGVzdA=="), &fin) ==
	      -1);
	CHECK(
	    scram_parse_client_final("c=biws,r=abc,p=dGVzdA==", 19, &fin) == 0);
	CHECK(fin.prooflen == 3);
	scram_client_final_free(&fin);
}

static void
test_saslprep(void)
{
	char *p;

	/* RFC 4013 §3 examples. */
	p = scram_saslprep("I\xc2\xadX"); /* soft hyphen */
	CHECK_STR(p, "IX");
	free(p);
	p = scram_saslprep("user");
	CHECK_STR(p, "user");
	free(p);
	p = scram_saslprep("USER"); /* case preserved */
	CHECK_STR(p, "USER");
	free(p);
	p = scram_saslprep("\xc2\xaa"); /* U+00AA -> "a" */
	CHECK_STR(p, "a");
	free(p);
	p = scram_saslprep("\xe2\x85\xa8"); /* U+2168 -> "IX" */
	CHECK_STR(p, "IX");
	free(p);
	CHECK(scram_saslprep("\x07") == NULL); /* prohibited */
	CHECK(scram_saslprep("\xd8\xa7"
	                     "1") == NULL); /* bidi */
	/* Non-ASCII space maps to SPACE (RFC 4013 §2.1). */
	p = scram_saslprep("a\xc2\xa0"
	                   "b");
	CHECK_STR(p, "a b");
	free(p);
	p = scram_saslprep("pencil");
	CHECK_STR(p, "pencil");
	free(p);
	CHECK(scram_saslprep("") == NULL);
	CHECK(scram_saslprep("\xc2\xad") == NULL); /* empty result */
	CHECK(scram_saslprep("\xff") == NULL);     /* bad UTF-8 */
	CHECK(scram_saslprep("a\xc3") == NULL);
	CHECK(scram_saslprep("\xee\x80\x80") == NULL); /* private use */
}

int
main(void)
{
	test_primitives();
	test_vector(&rfc5802);
	test_vector(&rfc7677);
	test_random();
	test_parse_first();
	test_parse_final();
	test_saslprep();
	return UNIT_DONE("scram");
}
