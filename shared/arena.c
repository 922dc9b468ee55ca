/*
 * Bump allocation in chunks, freed at once.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "xmalloc.h"

struct chunk {
	struct chunk *next;
	size_t size;     /* usable bytes after the header */
	size_t used;
	max_align_t data[];
};

struct arena {
	struct chunk *head;
	size_t total;
};

static struct chunk *
chunk_new(size_t size)
{
	struct chunk *c = xmalloc(sizeof(*c) + size);

	c->next = NULL;
	c->size = size;
	c->used = 0;
	return c;
}

struct arena *
arena_new(size_t first)
{
	struct arena *a = xmalloc(sizeof(*a));

	if (first < 256)
		first = 256;
	a->head = chunk_new(first);
	a->total = sizeof(*a) + sizeof(struct chunk) + first;
	return a;
}

void
arena_free(struct arena *a)
{
	struct chunk *c, *n;

	if (a == NULL)
		return;
	for (c = a->head; c; c = n) {
		n = c->next;
		free(c);
	}
	free(a);
}

void *
arena_alloc(struct arena *a, size_t n)
{
	struct chunk *c = a->head;
	void *p;

	n = (n + 7) & ~(size_t)7;
	if (n > SIZE_MAX / 4)
		abort();
	if (c->size - c->used < n) {
		size_t sz = c->size * 2;

		while (sz < n)
			sz *= 2;
		if (sz > 1 << 20 && n < 1 << 20)
			sz = 1 << 20;
		c = chunk_new(sz);
		c->next = a->head;
		a->head = c;
		a->total += sizeof(*c) + sz;
	}
	p = (char *)c->data + c->used;
	c->used += n;
	memset(p, 0, n);
	return p;
}

char *
arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *
arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap, ap2;
	int n;
	char *p;

	va_start(ap, fmt);
	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	p = arena_alloc(a, (size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	return p;
}

size_t
arena_bytes(const struct arena *a)
{
	return a->total;
}
