/*
 * Unit tests for shared/netkey.c: the key per-address limits count a
 * peer under.  Addresses of one IPv6 /64 share a key and a neighbouring
 * /64 does not; prefixes off byte boundaries, IPv4 prefixes, IPv4-mapped
 * addresses, whole-address prefixes (no "/N"), prefixes past the
 * address's length, and what is not an address.
 */
#include <string.h>

#include "netkey.h"
#include "unit.h"

/* Each address with its prefixes and the key it must get. */
static const struct {
	const char *ip;
	unsigned v4, v6;
	const char *want;
} cases[] = {
	/* IPv6 at the default /64: one key for the whole /64 ... */
	{ "2001:db8:1:2:3:4:5:6", 32, 64, "2001:db8:1:2::/64" },
	{ "2001:db8:1:2::1", 32, 64, "2001:db8:1:2::/64" },
	{ "2001:db8:1:2:ffff:ffff:ffff:ffff", 32, 64, "2001:db8:1:2::/64" },
	{ "2001:0DB8:0001:0002:0:0:0:9", 32, 64, "2001:db8:1:2::/64" },
	{ "fd00:1:2:3::1", 32, 64, "fd00:1:2:3::/64" },
	{ "fd00:1:2:3::2", 32, 64, "fd00:1:2:3::/64" },
	/* ... and the next /64 is another network */
	{ "2001:db8:1:3::1", 32, 64, "2001:db8:1:3::/64" },
	{ "fd00:1:2:4::1", 32, 64, "fd00:1:2:4::/64" },
	{ "::1", 32, 64, "::/64" },
	/* other IPv6 prefixes, off byte boundaries too */
	{ "2001:db8:1:2::1", 32, 48, "2001:db8:1::/48" },
	{ "2001:db8:1:2ab::1", 32, 56, "2001:db8:1:200::/56" },
	{ "2001:db8:1:2abc::1", 32, 60, "2001:db8:1:2ab0::/60" },
	{ "2001:db8:1:ffff::1", 32, 63, "2001:db8:1:fffe::/63" },
	{ "2001:db8:ffff::", 32, 33, "2001:db8:8000::/33" },
	{ "2001:db8::8:1", 32, 127, "2001:db8::8:0/127" },
	{ "2001:db8::1", 32, 0, "::/0" },
	/* the whole address: no "/128", written the canonical way */
	{ "2001:0db8:0:0::1", 32, 128, "2001:db8::1" },
	{ "2001:db8::1", 32, 200, "2001:db8::1" },
	/* IPv4 */
	{ "192.0.2.7", 32, 64, "192.0.2.7" },
	{ "127.0.0.2", 32, 64, "127.0.0.2" },
	{ "192.0.2.7", 24, 64, "192.0.2.0/24" },
	{ "198.51.100.77", 20, 64, "198.51.96.0/20" },
	{ "203.0.113.255", 31, 64, "203.0.113.254/31" },
	{ "203.0.113.9", 0, 64, "0.0.0.0/0" },
	{ "203.0.113.9", 40, 64, "203.0.113.9" },
	/* an IPv4-mapped IPv6 address is its IPv4 address ... */
	{ "::ffff:192.0.2.7", 32, 64, "192.0.2.7" },
	{ "::ffff:192.0.2.7", 24, 64, "192.0.2.0/24" },
	/* ... but an IPv6 address ending in one is not */
	{ "64:ff9b::192.0.2.7", 24, 64, "64:ff9b::/64" },
	/* the longest key: 39 characters of address and "/127" */
	{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 32, 127,
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127" },
};

static void
test_addresses(void)
{
	char out[NETKEY_LEN];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(out, 'x', sizeof(out));
		CHECK(netkey_of(cases[i].ip, cases[i].v4, cases[i].v6, out,
		    sizeof(out)) == 0);
		CHECK_STR(out, cases[i].want);
		CHECK(strlen(out) < NETKEY_LEN);
	}
}

static void
test_not_an_address(void)
{
	char out[NETKEY_LEN], small[4];

	CHECK(netkey_of("?", 32, 64, out, sizeof(out)) == -1);
	CHECK_STR(out, "?");
	CHECK(netkey_of("", 32, 64, out, sizeof(out)) == -1);
	CHECK_STR(out, "");
	CHECK(netkey_of("fe80::1%lo", 32, 64, out, sizeof(out)) == -1);
	CHECK_STR(out, "fe80::1%lo");
	CHECK(netkey_of("192.0.2.256", 32, 64, out, sizeof(out)) == -1);
	CHECK_STR(out, "192.0.2.256");
	CHECK(netkey_of("not-an-address", 32, 64, small,
	    sizeof(small)) == -1);
	CHECK_STR(small, "not");
	CHECK(netkey_of("192.0.2.1", 32, 64, out, 0) == -1);
}

int
main(void)
{
	test_addresses();
	test_not_an_address();
	return UNIT_DONE("netkey");
}
