/*
 * A string-keyed hash map with a per-process random SipHash key, so keys
 * chosen by peers (JIDs, addresses) cannot be used to flood one bucket.
 * Keys are copied; values are the caller's.
 */
#ifndef SHARED_STRMAP_H
#define SHARED_STRMAP_H

#include <stddef.h>

struct strmap;

struct strmap *strmap_new(void);
void strmap_free(struct strmap *m);        /* values are not freed */
void *strmap_get(const struct strmap *m, const char *key);
/* Insert or replace; returns the previous value or NULL. */
void *strmap_put(struct strmap *m, const char *key, void *value);
/* Remove; returns the removed value or NULL. */
void *strmap_del(struct strmap *m, const char *key);
size_t strmap_count(const struct strmap *m);
/* Calls fn for every entry; fn must not modify the map. */
void strmap_foreach(const struct strmap *m,
    void (*fn)(const char *key, void *value, void *arg), void *arg);
/* The values, in no order, as a malloc'ed array of *n: for a caller that
 * goes on to change the map (or free the values) while walking them. */
void **strmap_values(const struct strmap *m, size_t *n);

#endif
