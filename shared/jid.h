/*
 * JIDs (RFC 6122 with stringprep: Nodeprep, Nameprep, Resourceprep via
 * libidn): parsing, preparation, comparison and formatting.  A struct jid
 * holds prepared, NUL-terminated parts in one allocation.
 */
#ifndef SHARED_JID_H
#define SHARED_JID_H

#include <stddef.h>

#define JID_PART_MAX 1023       /* RFC 6122 §2.1: each part ≤ 1023 bytes */

struct jid {
	char *node;      /* NULL if none */
	char *domain;    /* never NULL in a valid jid */
	char *resource;  /* NULL if none */
	char *mem;       /* single allocation holding the parts */
};

/*
 * Parse and prepare s into j (which must be zeroed or freed before).  The
 * domain is lowercased/nameprepped, a trailing dot removed; node and
 * resource are nodeprepped/resourceprepped.  Returns 0, or -1 if the JID is
 * invalid (empty parts, prohibited characters, too long, bad UTF-8).
 */
int jid_parse(struct jid *j, const char *s);
void jid_free(struct jid *j);
int jid_copy(struct jid *dst, const struct jid *src);

/* Prepare one part alone; result malloc'ed, NULL if invalid. */
char *jid_nodeprep(const char *s);
char *jid_nameprep(const char *s);
char *jid_resourceprep(const char *s);

/* Formatting into malloc'ed strings. */
char *jid_full(const struct jid *j);    /* node@domain/resource */
char *jid_bare(const struct jid *j);    /* node@domain or domain */

/* Comparison of prepared jids. */
int jid_eq_full(const struct jid *a, const struct jid *b);
int jid_eq_bare(const struct jid *a, const struct jid *b);

/* Prepare and re-format a string; malloc'ed, NULL if invalid. */
char *jid_normalize(const char *s);

#endif
