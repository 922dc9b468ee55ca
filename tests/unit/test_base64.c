/*
 * Unit tests for shared/base64.c: the RFC 4648 §10 vectors both ways, and
 * the inputs a strict decoder must refuse.
 */
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "unit.h"

static const struct {
	const char *plain, *enc;
} vectors[] = {
    /* RFC 4648 §10 */
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void
test_vectors(void)
{
	unsigned char buf[64], *dec;
	char out[64], *enc;
	size_t i, n;
	long len;

	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		n = strlen(vectors[i].plain);
		CHECK(base64_encoded_len(n) == strlen(vectors[i].enc));
		base64_encode((const unsigned char *)vectors[i].plain, n, out);
		CHECK_STR(out, vectors[i].enc);
		enc = base64_encode_alloc(vectors[i].plain, n);
		CHECK_STR(enc, vectors[i].enc);
		free(enc);

		len =
		    base64_decode(vectors[i].enc, strlen(vectors[i].enc), buf);
		CHECK(len == (long)n);
		CHECK(len >= 0 && memcmp(buf, vectors[i].plain, n) == 0);
		len = base64_decode_alloc(
		    vectors[i].enc, strlen(vectors[i].enc), &dec);
		CHECK(len == (long)n);
		CHECK_STR((char *)dec, vectors[i].plain);
		free(dec);
	}
}

/* Every byte value, and every length modulo 3, survives a round trip. */
static void
test_binary_roundtrip(void)
{
	unsigned char in[256], back[256];
	char enc[400];
	size_t n;
	int ok = 1;

	for (n = 0; n < sizeof(in); n++)
		in[n] = (unsigned char)(255 - n);
	for (n = 0; n <= sizeof(in); n++) {
		base64_encode(in, n, enc);
		if (strlen(enc) != base64_encoded_len(n) ||
		    base64_decode(enc, strlen(enc), back) != (long)n ||
		    memcmp(in, back, n) != 0)
			ok = 0;
	}
	CHECK(ok);
	base64_encode((const unsigned char *)"\xfb\xff\xbf", 3, enc);
	CHECK_STR(enc, "+/+/");
}

static void
test_invalid(void)
{
	static const char *bad[] = {
	    "Zg",                          /* missing padding */
	    "Zg=",                         /* short padding */
	    "Zm9",                         /* length not a multiple of 4 */
	    "Zg===",                       /* too much padding */
	    "====",                        /* padding only */
	    "Z===",                        /* three pad characters */
	    "Zg==Zg==",                    /* padding before the end */
	    "Zm=v",                        /* '=' inside a quantum */
	    "Zh==",                        /* non-zero pad bits (one byte) */
	    "Zm9=",                        /* non-zero pad bits (two bytes) */
	    "Zm9v ",                       /* trailing space */
	    " Zm9v",                       /* leading space */
	    "Zm9\nv",                      /* newline */
	    "Zm9v\r\n",                    /* CRLF */
	    "Zm9-",                        /* base64url alphabet */
	    "Zm9_", "Zm9.", "Zm9\xc3\xa4", /* non-ASCII */
	    "Zm9vYmFy=",                   /* trailing garbage */
	};
	unsigned char buf[64], *dec;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(base64_decode(bad[i], strlen(bad[i]), buf) == -1);
		dec = (unsigned char *)"x";
		CHECK(base64_decode_alloc(bad[i], strlen(bad[i]), &dec) == -1);
		CHECK(dec == NULL);
	}
	/* An embedded NUL counts as a bad character, not an end. */
	CHECK(base64_decode("Zg\0=", 4, buf) == -1);
	CHECK(base64_decode("Zm9v\0\0\0\0", 8, buf) == -1);
	/* The length argument rules, not the NUL terminator. */
	CHECK(base64_decode("Zm9vYmFy", 4, buf) == 3);
}

int
main(void)
{
	test_vectors();
	test_binary_roundtrip();
	test_invalid();
	return UNIT_DONE("base64");
}
