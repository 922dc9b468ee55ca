/*
 * Pure pieces of DNS resolution: the TTL of an answer's records, and the
 * RFC 2782 order of SRV targets.
 */
#include <stdlib.h>
#include <string.h>

#include "net/dns_msg.h"

#define HEADER_LEN 12
#define MAX_POINTERS 64         /* a name following more is a loop */

static unsigned
get16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/* Skip the (possibly compressed) name at *off; -1 if malformed. */
static int
skip_name(const unsigned char *m, size_t len, size_t *off)
{
	size_t o = *off, end = 0;
	int jumps = 0, jumped = 0;

	for (;;) {
		unsigned l;

		if (o >= len)
			return -1;
		l = m[o];
		if (l == 0) {
			o++;
			break;
		}
		if ((l & 0xc0) == 0xc0) {
			/* RFC 1035 §4.1.4: a pointer, two octets. */
			if (o + 1 >= len || ++jumps > MAX_POINTERS)
				return -1;
			if (!jumped) {
				end = o + 2;
				jumped = 1;
			}
			o = (size_t)(l & 0x3f) << 8 | m[o + 1];
			continue;
		}
		if ((l & 0xc0) != 0)
			return -1;      /* the reserved label types */
		o += 1 + l;
	}
	*off = jumped ? end : o;
	return 0;
}

int
dns_answer_ttl(const unsigned char *m, size_t len, unsigned type,
    uint32_t *ttl)
{
	size_t off = HEADER_LEN;
	unsigned qd, an;
	int found = 0;
	uint32_t min = 0;

	if (len < HEADER_LEN)
		return -1;
	qd = get16(m + 4);
	an = get16(m + 6);
	for (unsigned i = 0; i < qd; i++) {
		if (skip_name(m, len, &off) == -1 || off + 4 > len)
			return -1;
		off += 4;       /* QTYPE, QCLASS */
	}
	for (unsigned i = 0; i < an; i++) {
		unsigned t, rdlen;
		uint32_t v;

		if (skip_name(m, len, &off) == -1 || off + 10 > len)
			return -1;
		t = get16(m + off);
		v = (uint32_t)m[off + 4] << 24 | (uint32_t)m[off + 5] << 16 |
		    (uint32_t)m[off + 6] << 8 | m[off + 7];
		/* RFC 2181 §8: a TTL with the top bit set means zero. */
		if (v & 0x80000000u)
			v = 0;
		rdlen = get16(m + off + 8);
		off += 10;
		if (off + rdlen > len)
			return -1;
		off += rdlen;
		if (t != type)
			continue;       /* a CNAME on the way, say */
		if (found == 0 || v < min)
			min = v;
		found++;
	}
	if (found > 0)
		*ttl = min;
	return found;
}

static int
by_priority(const void *a, const void *b)
{
	const struct dns_srv *x = a, *y = b;

	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	/* Weight 0 first within a priority, as RFC 2782 asks before the
	 * running sums; the rest keeps a fixed order (qsort is not stable:
	 * the target breaks ties). */
	if ((x->weight == 0) != (y->weight == 0))
		return x->weight == 0 ? -1 : 1;
	return strcmp(x->target, y->target);
}

void
dns_srv_order(struct dns_srv *s, size_t n, uint32_t (*rnd)(void))
{
	size_t i = 0;

	if (n < 2)
		return;
	qsort(s, n, sizeof(*s), by_priority);
	while (i < n) {
		size_t end = i;

		while (end < n && s[end].priority == s[i].priority)
			end++;
		/* RFC 2782: pick among the unordered ones by a random
		 * number in [0, sum of weights], the first whose running
		 * sum reaches it; it goes next; repeat. */
		for (size_t k = i; k + 1 < end; k++) {
			uint64_t sum = 0, pick, run = 0;
			size_t j;

			for (j = k; j < end; j++)
				sum += s[j].weight;
			pick = sum == 0 ? 0 : rnd() % (sum + 1);
			for (j = k; j < end; j++) {
				run += s[j].weight;
				if (run >= pick)
					break;
			}
			if (j == end)
				j = end - 1;
			if (j != k) {
				struct dns_srv t = s[k];

				s[k] = s[j];
				s[j] = t;
			}
		}
		i = end;
	}
}
