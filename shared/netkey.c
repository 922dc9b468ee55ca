/*
 * Network keys for per-address limits (netkey.h): an address masked to
 * its configured prefix, in the text form log lines show.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "netkey.h"

/* Clear the bits of the n-byte address a past its first prefix bits. */
static void
mask(unsigned char *a, size_t n, unsigned prefix)
{
	for (size_t i = 0; i < n; i++) {
		if (prefix >= 8 * (i + 1))
			continue;
		if (prefix <= 8 * i)
			a[i] = 0;
		else
			a[i] &= (unsigned char)(0xff << (8 * (i + 1) - prefix));
	}
}

/* The masked address a of family af with "/prefix" unless it is whole. */
static int
format(int af, unsigned char *a, unsigned prefix, unsigned bits, char *out,
    size_t len)
{
	char text[INET6_ADDRSTRLEN];

	if (prefix > bits)
		prefix = bits;
	mask(a, bits / 8, prefix);
	if (inet_ntop(af, a, text, sizeof(text)) == NULL)
		return -1;
	if (prefix == bits)
		snprintf(out, len, "%s", text);
	else
		snprintf(out, len, "%s/%u", text, prefix);
	return 0;
}

int
netkey_of(const char *ip, unsigned ipv4_prefix, unsigned ipv6_prefix,
    char *out, size_t len)
{
	static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0xff, 0xff };
	unsigned char a[16];

	if (len == 0)
		return -1;
	if (inet_pton(AF_INET, ip, a) == 1) {
		if (format(AF_INET, a, ipv4_prefix, 32, out, len) == 0)
			return 0;
	} else if (inet_pton(AF_INET6, ip, a) == 1) {
		if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
			memmove(a, a + 12, 4);
			if (format(AF_INET, a, ipv4_prefix, 32, out, len) == 0)
				return 0;
		} else if (format(AF_INET6, a, ipv6_prefix, 128, out,
		    len) == 0)
			return 0;
	}
	snprintf(out, len, "%s", ip);
	return -1;
}
