/*
 * Base64 with the standard alphabet (RFC 4648 §4): encoding, and decoding
 * strict enough that every byte string has exactly one accepted encoding.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "base64.h"
#include "log.h"
#include "xmalloc.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of an alphabet character, or -1 (this includes '=' and space). */
static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

size_t
base64_encoded_len(size_t n)
{
	return (n / 3 + (n % 3 != 0)) * 4;
}

void
base64_encode(const unsigned char *in, size_t n, char *out)
{
	uint32_t v;

	for (; n >= 3; n -= 3, in += 3) {
		v = (uint32_t)in[0] << 16 | (uint32_t)in[1] << 8 | in[2];
		*out++ = b64_alphabet[v >> 18];
		*out++ = b64_alphabet[(v >> 12) & 0x3f];
		*out++ = b64_alphabet[(v >> 6) & 0x3f];
		*out++ = b64_alphabet[v & 0x3f];
	}
	if (n > 0) {
		v = (uint32_t)in[0] << 16 | (n == 2 ? (uint32_t)in[1] << 8 : 0);
		*out++ = b64_alphabet[v >> 18];
		*out++ = b64_alphabet[(v >> 12) & 0x3f];
		*out++ = n == 2 ? b64_alphabet[(v >> 6) & 0x3f] : '=';
		*out++ = '=';
	}
	*out = '\0';
}

char *
base64_encode_alloc(const void *in, size_t n)
{
	char *out;

	if (n > (SIZE_MAX - 1) / 4 * 3)
		fatalx("base64: %zu bytes too large to encode", n);
	out = xmalloc(base64_encoded_len(n) + 1);
	base64_encode(in, n, out);
	return out;
}

/*
 * RFC 4648 §3.3 and §3.5: characters outside the alphabet (whitespace
 * included) are errors, the length must be a multiple of 4 with at most
 * two '=' and only at the end, and the pad bits of a final partial
 * quantum must be zero.
 */
long
base64_decode(const char *in, size_t n, unsigned char *out)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i, len = 0;
	int a, b, c, d;

	if (n % 4 != 0 || n / 4 * 3 > LONG_MAX)
		return -1;
	for (i = 0; i < n; i += 4) {
		a = b64_value(s[i]);
		b = b64_value(s[i + 1]);
		if (a < 0 || b < 0)
			return -1;
		out[len++] = (unsigned char)(a << 2 | b >> 4);
		if (i + 4 == n && s[i + 2] == '=' && s[i + 3] == '=') {
			if (b & 0x0f)
				return -1;
			break;
		}
		c = b64_value(s[i + 2]);
		if (c < 0)
			return -1;
		out[len++] = (unsigned char)((b & 0x0f) << 4 | c >> 2);
		if (i + 4 == n && s[i + 3] == '=') {
			if (c & 0x03)
				return -1;
			break;
		}
		d = b64_value(s[i + 3]);
		if (d < 0)
			return -1;
		out[len++] = (unsigned char)((c & 0x03) << 6 | d);
	}
	return (long)len;
}

/* *out is malloc'ed (and NUL-terminated) on success, NULL on error. */
long
base64_decode_alloc(const char *in, size_t n, unsigned char **out)
{
	long len;

	*out = NULL;
	if (n % 4 != 0 || n / 4 * 3 > LONG_MAX)
		return -1;
	*out = xmalloc(n / 4 * 3 + 1);
	if ((len = base64_decode(in, n, *out)) < 0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	(*out)[len] = '\0';
	return len;
}
