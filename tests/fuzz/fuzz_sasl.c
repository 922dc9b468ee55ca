/*
 * libFuzzer target for the SASL parsers in shared/: SCRAM client-first and
 * client-final messages (RFC 5802 §7), strict base64 and SASLprep.  Every
 * accepted input is checked against the grammar's invariants.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "scram.h"

/* printable = %x21-2B / %x2D-7E, at least one. */
static int
printable(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e ||
		    *s == ',')
			return 0;
	return 1;
}

static void
check_client_first(const uint8_t *data, size_t size)
{
	struct scram_client_first cf;
	size_t hl, bl;

	if (scram_parse_client_first((const char *)data, size, &cf) == -1) {
		if (cf.mem != NULL)
			abort();
		return;
	}
	if (cf.username == NULL || cf.username[0] == '\0' || cf.nonce == NULL ||
	    !printable(cf.nonce) || cf.gs2_header == NULL || cf.bare == NULL ||
	    (cf.cbflag != 'n' && cf.cbflag != 'y' && cf.cbflag != 'p') ||
	    (cf.cbflag == 'p') != (cf.cbname != NULL) ||
	    (cf.authzid != NULL && cf.authzid[0] == '\0'))
		abort();
	/* gs2-header and the bare message split the input exactly. */
	hl = strlen(cf.gs2_header);
	bl = strlen(cf.bare);
	if (hl + bl != size || memcmp(cf.gs2_header, data, hl) != 0 ||
	    memcmp(cf.bare, data + hl, bl) != 0 ||
	    cf.gs2_header[hl - 1] != ',' || strncmp(cf.bare, "n=", 2) != 0)
		abort();
	scram_client_first_free(&cf);
}

static void
check_client_final(const uint8_t *data, size_t size)
{
	struct scram_client_final fin;
	size_t wl;
	char *b64;

	if (scram_parse_client_final((const char *)data, size, &fin) == -1) {
		if (fin.mem != NULL)
			abort();
		return;
	}
	if (fin.nonce == NULL || !printable(fin.nonce) ||
	    fin.without_proof == NULL || fin.proof == NULL ||
	    fin.prooflen == 0 || fin.cbind == NULL)
		abort();
	/* without_proof is the input up to ",p=", then the proof alone. */
	wl = strlen(fin.without_proof);
	if (wl + 3 >= size || memcmp(fin.without_proof, data, wl) != 0 ||
	    memcmp(data + wl, ",p=", 3) != 0 ||
	    memchr(data + wl + 3, ',', size - wl - 3) != NULL)
		abort();
	b64 = base64_encode_alloc(fin.proof, fin.prooflen);
	if (strlen(b64) != size - wl - 3 ||
	    memcmp(b64, data + wl + 3, size - wl - 3) != 0)
		abort();
	free(b64);
	scram_client_final_free(&fin);
}

/* Strict decoding means one encoding per byte string. */
static void
check_base64(const uint8_t *data, size_t size)
{
	unsigned char *out;
	char *enc;
	long n;

	n = base64_decode_alloc((const char *)data, size, &out);
	if (n < 0) {
		if (out != NULL)
			abort();
		return;
	}
	if ((size_t)n != size / 4 * 3 - (size && data[size - 1] == '=') -
	                     (size && data[size - 2] == '='))
		abort();
	enc = base64_encode_alloc(out, (size_t)n);
	if (strlen(enc) != size || memcmp(enc, data, size) != 0)
		abort();
	free(enc);
	free(out);
}

static void
check_saslprep(const uint8_t *data, size_t size)
{
	char *s, *p, *again;

	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	if ((p = scram_saslprep(s)) != NULL) {
		if (p[0] == '\0')
			abort();
		/* SASLprep output prepares to itself. */
		again = scram_saslprep(p);
		if (again == NULL || strcmp(again, p) != 0)
			abort();
		free(again);
		free(p);
	}
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_client_first(data, size);
	check_client_final(data, size);
	check_base64(data, size);
	check_saslprep(data, size);
	return 0;
}
