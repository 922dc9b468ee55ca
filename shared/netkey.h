/*
 * The key that per-address limits count a peer under: its network, not
 * its address.  One routed IPv6 /64 holds more addresses than any
 * counter could tell apart, so IPv6 peers are keyed by a prefix (limits
 * ipv6-prefix, 64 by default) and IPv4 peers by theirs (ipv4-prefix, 32).
 */
#ifndef SHARED_NETKEY_H
#define SHARED_NETKEY_H

#include <stddef.h>

/* The longest key and its NUL: an IPv6 address as inet_ntop(3) writes
 * it (at most 45 characters) and "/128". */
#define NETKEY_LEN 50

/*
 * Write ip's network into out (len bytes, NETKEY_LEN is enough): the
 * address with the bits past the prefix cleared, and "/N" unless the
 * prefix is the whole address, so "2001:db8:1:2::/64" or "192.0.2.0/24",
 * and an address alone at /32 and /128.  An IPv4-mapped IPv6 address
 * (::ffff:192.0.2.1) counts as the IPv4 address.  Prefixes past the
 * address's length are taken as its length.  Returns 0, or -1 if ip is
 * not an address: out then holds ip as it is (truncated to fit), so
 * whatever a peer's address is it still has a key.
 */
int netkey_of(const char *ip, unsigned ipv4_prefix, unsigned ipv6_prefix,
    char *out, size_t len);

#endif
