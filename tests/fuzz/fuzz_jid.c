/*
 * libFuzzer target for shared/jid.c: any JID that parses must format and
 * parse back to the same JID, and preparing it again must change nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jid.h"

/* Abort unless a and b are both NULL or both equal strings. */
static void
same(const char *a, const char *b)
{
	if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jid j, k, c;
	char *s, *full, *bare, *again;

	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	if (jid_parse(&j, s) == -1) {
		if (j.mem != NULL || j.domain != NULL)
			abort();
		free(s);
		return 0;
	}
	if (j.domain == NULL || j.domain[0] == '\0' ||
	    strlen(j.domain) > JID_PART_MAX ||
	    (j.node && (j.node[0] == '\0' || strlen(j.node) > JID_PART_MAX)) ||
	    (j.resource &&
	        (j.resource[0] == '\0' || strlen(j.resource) > JID_PART_MAX)))
		abort();

	/* Round trip through the full form. */
	full = jid_full(&j);
	if (jid_parse(&k, full) == -1 || !jid_eq_full(&j, &k))
		abort();
	same(j.node, k.node);
	same(j.domain, k.domain);
	same(j.resource, k.resource);
	again = jid_full(&k);
	same(full, again);
	free(again);
	again = jid_normalize(full);
	same(full, again);
	free(again);
	jid_free(&k);

	/* The bare form drops only the resource. */
	bare = jid_bare(&j);
	if (jid_parse(&k, bare) == -1 || !jid_eq_bare(&j, &k) ||
	    k.resource != NULL || (j.resource && jid_eq_full(&j, &k)))
		abort();
	jid_free(&k);
	free(bare);

	/* Each prepared part is a fixed point of its own preparation. */
	if (j.node) {
		again = jid_nodeprep(j.node);
		same(j.node, again);
		free(again);
	}
	again = jid_nameprep(j.domain);
	same(j.domain, again);
	free(again);
	if (j.resource) {
		again = jid_resourceprep(j.resource);
		same(j.resource, again);
		free(again);
	}

	if (jid_copy(&c, &j) == -1 || !jid_eq_full(&c, &j))
		abort();
	jid_free(&c);
	jid_free(&j);
	free(full);
	free(s);
	return 0;
}
