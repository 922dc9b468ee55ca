/*
 * Pure pieces of DNS resolution (no I/O, unit-tested and fuzzed): the
 * TTL of the records in an answer (c-ares parses SRV records without
 * theirs), and the order in which to try SRV targets (RFC 2782).
 */
#ifndef XMPPD_NET_DNS_MSG_H
#define XMPPD_NET_DNS_MSG_H

#include <stddef.h>
#include <stdint.h>

#define DNS_T_A 1
#define DNS_T_AAAA 28
#define DNS_T_SRV 33

/* One SRV record (RFC 2782); target is the caller's. */
struct dns_srv {
	char *target;
	uint16_t priority;
	uint16_t weight;
	uint16_t port;
	uint8_t tls;            /* XEP-0368: from _xmpps-server._tcp */
};

/*
 * The smallest TTL of the answer-section records of type in the DNS
 * message m (RFC 1035 §4.1), in *ttl.  Returns how many such records
 * there are (0: none, *ttl untouched), or -1 if the message is malformed
 * (truncated, a name pointer out of bounds or looping, counts past its
 * end).
 */
int dns_answer_ttl(const unsigned char *m, size_t len, unsigned type,
    uint32_t *ttl);

/*
 * Put the n records of s in the order to try them (RFC 2782): by
 * priority, lowest first; within one priority a weighted random order
 * (rnd returns uniform 32-bit numbers), records of weight 0 having a
 * small chance first.  At equal priority, XEP-0368 §3 leaves the choice
 * between direct TLS and STARTTLS to the weights as well.
 */
void dns_srv_order(struct dns_srv *s, size_t n, uint32_t (*rnd)(void));

#endif
