/*
 * Allocation wrappers that abort on exhaustion, so callers never check for
 * NULL.  Out of memory is a broken invariant for a server sized by limits.
 */
#ifndef SHARED_XMALLOC_H
#define SHARED_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))
#endif
#define nitems(a) (sizeof(a) / sizeof((a)[0]))

#endif
