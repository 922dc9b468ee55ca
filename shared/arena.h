/*
 * A bump allocator freed all at once: one per stanza, so parsing and
 * building a stanza costs a few mallocs and freeing it costs one walk.
 */
#ifndef SHARED_ARENA_H
#define SHARED_ARENA_H

#include <stddef.h>

struct arena;

struct arena *arena_new(size_t first_chunk);
void arena_free(struct arena *a);
void *arena_alloc(struct arena *a, size_t n);   /* 8-byte aligned, zeroed */
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
size_t arena_bytes(const struct arena *a);       /* total bytes held */

#endif
