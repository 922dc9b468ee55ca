/*
 * Chained hash map keyed by strings, hashed with SipHash-2-4 under a random
 * key drawn once per process.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"
#include "strmap.h"
#include "xmalloc.h"

struct entry {
	struct entry *next;
	uint64_t hash;
	void *value;
	char key[];
};

struct strmap {
	struct entry **b;
	size_t nbuckets;   /* power of two */
	size_t count;
};

static uint64_t sip_k0, sip_k1;
static int sip_ready;

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                   \
	do {                                                       \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0;             \
		v0 = ROTL(v0, 32); v2 += v3; v3 = ROTL(v3, 16);    \
		v3 ^= v2; v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;   \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2;             \
		v2 = ROTL(v2, 32);                                 \
	} while (0)

static uint64_t
siphash(const char *s, size_t len)
{
	uint64_t v0 = 0x736f6d6570736575ULL ^ sip_k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ sip_k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ sip_k0;
	uint64_t v3 = 0x7465646279746573ULL ^ sip_k1;
	uint64_t m, b = (uint64_t)len << 56;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&m, s + i, 8);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)(unsigned char)s[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

struct strmap *
strmap_new(void)
{
	struct strmap *m = xcalloc(1, sizeof(*m));

	if (!sip_ready) {
		uint64_t k[2];
		ssize_t n;

		/* A known key would let peers choose keys (JIDs, addresses)
		 * that all land in one bucket: no fallback.  16 bytes from a
		 * seeded pool come whole; only a signal while the pool is
		 * still unseeded at boot interrupts the call. */
		while ((n = getrandom(k, sizeof(k), 0)) == -1 && errno == EINTR)
			;
		if (n == -1)
			fatal("cannot draw the hash table key (getrandom)");
		if ((size_t)n != sizeof(k))
			fatalx("cannot draw the hash table key: getrandom "
			    "returned %zd of %zu bytes", n, sizeof(k));
		sip_k0 = k[0];
		sip_k1 = k[1];
		sip_ready = 1;
	}
	/* No buckets until the first put: many maps (a session's empty
	 * roster or block list) stay empty for good. */
	return m;
}

void
strmap_free(struct strmap *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct entry *e = m->b[i], *n;

		for (; e; e = n) {
			n = e->next;
			free(e);
		}
	}
	free(m->b);
	free(m);
}

static struct entry **
find(const struct strmap *m, const char *key, uint64_t h)
{
	struct entry **pp = &m->b[h & (m->nbuckets - 1)];

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
			break;
	return pp;
}

void *
strmap_get(const struct strmap *m, const char *key)
{
	struct entry *e;

	if (m->count == 0)
		return NULL;
	e = *find(m, key, siphash(key, strlen(key)));

	return e ? e->value : NULL;
}

static void
grow(struct strmap *m)
{
	size_t n = m->nbuckets * 2;
	struct entry **nb = xcalloc(n, sizeof(*nb));

	for (size_t i = 0; i < m->nbuckets; i++) {
		struct entry *e = m->b[i], *next;

		for (; e; e = next) {
			next = e->next;
			e->next = nb[e->hash & (n - 1)];
			nb[e->hash & (n - 1)] = e;
		}
	}
	free(m->b);
	m->b = nb;
	m->nbuckets = n;
}

void *
strmap_put(struct strmap *m, const char *key, void *value)
{
	size_t len = strlen(key);
	uint64_t h = siphash(key, len);
	struct entry **pp, *e;

	if (m->nbuckets == 0) {
		m->nbuckets = 16;
		m->b = xcalloc(m->nbuckets, sizeof(*m->b));
	}
	pp = find(m, key, h);

	if (*pp) {
		void *old = (*pp)->value;

		(*pp)->value = value;
		return old;
	}
	e = xmalloc(sizeof(*e) + len + 1);
	memcpy(e->key, key, len + 1);
	e->hash = h;
	e->value = value;
	e->next = NULL;
	*pp = e;
	if (++m->count > m->nbuckets)
		grow(m);
	return NULL;
}

void *
strmap_del(struct strmap *m, const char *key)
{
	struct entry **pp, *e;
	void *v;

	if (m->count == 0)
		return NULL;
	pp = find(m, key, siphash(key, strlen(key)));
	if ((e = *pp) == NULL)
		return NULL;
	*pp = e->next;
	v = e->value;
	free(e);
	m->count--;
	return v;
}

size_t
strmap_count(const struct strmap *m)
{
	return m->count;
}

void
strmap_foreach(const struct strmap *m,
    void (*fn)(const char *key, void *value, void *arg), void *arg)
{
	for (size_t i = 0; i < m->nbuckets; i++)
		for (struct entry *e = m->b[i]; e; e = e->next)
			fn(e->key, e->value, arg);
}

void **
strmap_values(const struct strmap *m, size_t *n)
{
	void **v = xreallocarray(NULL, m->count + 1, sizeof(*v));
	size_t k = 0;

	for (size_t i = 0; i < m->nbuckets; i++)
		for (struct entry *e = m->b[i]; e; e = e->next)
			v[k++] = e->value;
	*n = k;
	return v;
}
