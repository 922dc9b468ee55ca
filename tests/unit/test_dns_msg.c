/*
 * The pure DNS pieces (xmppd/net/dns_msg.c): the TTL of an answer's
 * records (plain and compressed names, other types on the way, malformed
 * messages), and the RFC 2782 order of SRV records.
 */
#include <stdlib.h>
#include <string.h>

#include "net/dns_msg.h"
#include "unit.h"

struct msg {
	unsigned char b[1024];
	size_t n;
};

static void
put(struct msg *m, const void *p, size_t n)
{
	memcpy(m->b + m->n, p, n);
	m->n += n;
}

static void
put16(struct msg *m, unsigned v)
{
	unsigned char b[2] = {v >> 8, v & 0xff};

	put(m, b, 2);
}

static void
put32(struct msg *m, uint32_t v)
{
	put16(m, v >> 16);
	put16(m, v & 0xffff);
}

static void
put_name(struct msg *m, const char *name)
{
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);

		m->b[m->n++] = (unsigned char)l;
		put(m, name, l);
		name += l + (dot ? 1 : 0);
	}
	m->b[m->n++] = 0;
}

/* A response for qname with an empty answer section so far. */
static void
header(struct msg *m, const char *qname, unsigned qtype, unsigned an)
{
	m->n = 0;
	put16(m, 0x1234);       /* id */
	put16(m, 0x8180);       /* response, RD, RA */
	put16(m, 1);
	put16(m, an);
	put16(m, 0);
	put16(m, 0);
	put_name(m, qname);
	put16(m, qtype);
	put16(m, 1);
}

/* An SRV record whose owner name points at the question (offset 12). */
static void
srv_rr(struct msg *m, uint32_t ttl, unsigned prio, unsigned weight,
    unsigned port, const char *target)
{
	struct msg rd = {{0}, 0};

	put16(&rd, prio);
	put16(&rd, weight);
	put16(&rd, port);
	put_name(&rd, target);
	put16(m, 0xc00c);
	put16(m, DNS_T_SRV);
	put16(m, 1);
	put32(m, ttl);
	put16(m, (unsigned)rd.n);
	put(m, rd.b, rd.n);
}

static void
test_ttl(void)
{
	struct msg m;
	uint32_t ttl = 7;

	header(&m, "_xmpp-server._tcp.example.org", DNS_T_SRV, 2);
	srv_rr(&m, 3600, 5, 0, 5269, "xmpp.example.org");
	srv_rr(&m, 300, 10, 0, 5269, "backup.example.org");
	CHECK(dns_answer_ttl(m.b, m.n, DNS_T_SRV, &ttl) == 2 && ttl == 300);
	/* No records of the type asked: 0, ttl untouched. */
	ttl = 7;
	CHECK(dns_answer_ttl(m.b, m.n, DNS_T_A, &ttl) == 0 && ttl == 7);
	/* A CNAME before the address: skipped, its TTL not counted. */
	header(&m, "www.example.org", DNS_T_A, 2);
	put16(&m, 0xc00c);
	put16(&m, 5);           /* CNAME */
	put16(&m, 1);
	put32(&m, 10);
	put16(&m, 5);           /* "a.b": 1 a 1 b 0 */
	put_name(&m, "a.b");
	put16(&m, 0xc00c);
	put16(&m, DNS_T_A);
	put16(&m, 1);
	put32(&m, 120);
	put16(&m, 4);
	put32(&m, 0x7f000001);
	CHECK(dns_answer_ttl(m.b, m.n, DNS_T_A, &ttl) == 1 && ttl == 120);
	/* RFC 2181 §8: a TTL with the top bit set is zero. */
	header(&m, "x.example", DNS_T_SRV, 1);
	srv_rr(&m, 0x80000001u, 0, 0, 5269, "x.example");
	CHECK(dns_answer_ttl(m.b, m.n, DNS_T_SRV, &ttl) == 1 && ttl == 0);
}

static void
test_malformed(void)
{
	struct msg m = {{0}, 0};
	uint32_t ttl = 0;
	size_t full;

	CHECK(dns_answer_ttl(m.b, 5, DNS_T_SRV, &ttl) == -1);
	header(&m, "_xmpp-server._tcp.example.org", DNS_T_SRV, 1);
	srv_rr(&m, 60, 0, 0, 5269, "xmpp.example.org");
	full = m.n;
	/* Every truncation is malformed, never read past the end. */
	for (size_t n = 12; n < full; n++)
		CHECK(dns_answer_ttl(m.b, n, DNS_T_SRV, &ttl) == -1);
	/* More answers counted than there are. */
	m.b[7] = 3;
	CHECK(dns_answer_ttl(m.b, full, DNS_T_SRV, &ttl) == -1);
	m.b[7] = 1;
	/* A pointer to itself loops: malformed, not a hang. */
	header(&m, "a", DNS_T_SRV, 1);
	{
		size_t at = m.n;

		put16(&m, 0xc000 | (unsigned)at);
		put16(&m, DNS_T_SRV);
		put16(&m, 1);
		put32(&m, 60);
		put16(&m, 0);
	}
	CHECK(dns_answer_ttl(m.b, m.n, DNS_T_SRV, &ttl) == -1);
	/* A pointer past the end. */
	header(&m, "a", DNS_T_SRV, 1);
	put16(&m, 0xc3ff);
	put16(&m, DNS_T_SRV);
	put16(&m, 1);
	put32(&m, 60);
	put16(&m, 0);
	CHECK(dns_answer_ttl(m.b, m.n, DNS_T_SRV, &ttl) == -1);
	/* Reserved label type 0x40. */
	header(&m, "a", DNS_T_SRV, 0);
	m.b[12] = 0x41;
	CHECK(dns_answer_ttl(m.b, m.n, DNS_T_SRV, &ttl) == -1);
}

static uint32_t seq_value;

static uint32_t
seq_rnd(void)
{
	return seq_value;
}

static uint32_t
lcg_rnd(void)
{
	static uint32_t x = 12345;

	x = x * 1103515245u + 12345u;
	return x >> 8;
}

static void
test_srv_order(void)
{
	struct dns_srv s[4] = {
		{"c", 20, 0, 1, 0}, {"a", 10, 10, 2, 0},
		{"b", 10, 30, 3, 1}, {"d", 5, 0, 4, 0},
	};
	int first_b = 0;

	/* By priority; within 10 the random number picks: 0 takes the
	 * first in running-sum order. */
	seq_value = 0;
	dns_srv_order(s, 4, seq_rnd);
	CHECK(s[0].port == 4 && s[3].port == 1);
	CHECK(s[1].priority == 10 && s[2].priority == 10);
	/* Weighted: b (30) first about three times in four. */
	for (int i = 0; i < 4000; i++) {
		struct dns_srv t[2] = {{"a", 10, 10, 2, 0},
		    {"b", 10, 30, 3, 1}};

		dns_srv_order(t, 2, lcg_rnd);
		first_b += t[0].port == 3;
	}
	CHECK(first_b > 2700 && first_b < 3300);
	/* One record, none: untouched. */
	dns_srv_order(s, 1, lcg_rnd);
	dns_srv_order(NULL, 0, lcg_rnd);
	CHECK(s[0].port == 4);
}

int
main(void)
{
	test_ttl();
	test_malformed();
	test_srv_order();
	return UNIT_DONE("dns_msg");
}
