/*
 * A growable byte buffer with a read offset: appended at the end, consumed
 * from the front.  Used for socket I/O queues and for serializing XML.
 */
#ifndef SHARED_BUF_H
#define SHARED_BUF_H

#include <stddef.h>
#include <stdarg.h>

struct buf {
	char *data;   /* owned; NUL-terminated at data[len] when cap > 0 */
	size_t off;   /* first unconsumed byte */
	size_t len;   /* end of valid bytes */
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0, 0 }

void buf_init(struct buf *b);
void buf_free(struct buf *b);          /* releases memory, leaves b empty */
void buf_reset(struct buf *b);         /* empties, keeps memory */
void buf_reserve(struct buf *b, size_t more);
void buf_add(struct buf *b, const void *p, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Append s escaped for XML character data (quote != 0: also for attributes). */
void buf_add_xml_escaped(struct buf *b, const char *s, size_t n, int quote);
void buf_consume(struct buf *b, size_t n);  /* drop n bytes from the front */
/* Free memory when empty, or compact when more than half consumed. */
void buf_trim(struct buf *b);

static inline size_t
buf_avail(const struct buf *b)
{
	return b->len - b->off;
}

static inline const char *
buf_head(const struct buf *b)
{
	return b->data + b->off;
}

/* Returns a NUL-terminated malloc'ed copy of the unconsumed bytes. */
char *buf_strdup(const struct buf *b);

#endif
