/*
 * JIDs per RFC 6122: splitting an address into its parts, preparing each
 * with libidn's stringprep profiles, and comparing and formatting the result.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <sys/types.h>
#include <stdlib.h>
#include <string.h>

#include <stringprep.h>

#include "jid.h"
#include "utf8.h"
#include "xmalloc.h"

/*
 * Raw (unprepared) parts longer than this are refused before stringprep
 * runs.  Preparation may shrink a part (characters mapped to nothing, RFC
 * 3454 B.1), so the bound is looser than JID_PART_MAX; it only caps the
 * work (NFKC and friends) that hostile input can make libidn do.
 */
#define JID_RAW_MAX (2 * JID_PART_MAX)


/*
 * Pure ASCII needs no tables: of the RFC 3454 steps only B.2 case folding
 * (Nodeprep, Nameprep) and the prohibition of controls (C.2.1: Nodeprep,
 * Resourceprep), of space (C.1.1: Nodeprep) and of Nodeprep's eight extra
 * characters (RFC 6122 A.5) touch it, and no ASCII character is RandALCat,
 * so the bidi rules hold.  This keeps libidn off the common path;
 * test_jid compares it with libidn for every ASCII character.
 */
static char *
prep_ascii(const Stringprep_profile *profile, const char *s, size_t n)
{
	int fold = profile != stringprep_xmpp_resourceprep;
	int no_controls = profile != stringprep_nameprep;
	int node = profile == stringprep_xmpp_nodeprep;
	char *out = xmalloc(n + 1);
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = s[i];

		if ((no_controls && (c < 0x20 || c == 0x7f)) ||
		    (node && c != '\0' && strchr(" \"&'/:<>@", c) != NULL)) {
			free(out);
			return NULL;
		}
		out[i] = (char)(fold && c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	out[n] = '\0';
	return out;
}

/*
 * Run one stringprep profile over the n bytes at s (query semantics:
 * unassigned code points allowed, as RFC 6122 §3.1 leaves to the
 * application).  Returns a malloc'ed, NUL-free result of 1..maxout bytes,
 * or NULL if the input is bad UTF-8, prohibited, fails the bidi rules, or
 * prepares to an empty or over-long string.
 *
 * stringprep_4i() is called once, with room for what mapping can make of
 * the input (at most STRINGPREP_MAX_MAP_CHARS code points each, before
 * NFKC may compose them back) and for maxout code points: every code
 * point takes at least one byte, so a result that does not fit is too
 * long anyway.  (stringprep() instead retries with 50 more code points a
 * round, redoing NFKC each time: slow on hostile input.)
 */
static char *
prep(const Stringprep_profile *profile, const char *s, size_t n, size_t maxout)
{
	uint32_t *ucs4;
	size_t len, cap, outlen;
	char *out = NULL;
	int rc;

	if (n == 0 || n > JID_RAW_MAX ||
	    !utf8_valid((const unsigned char *)s, n))
		return NULL;
	for (len = 0; len < n && (unsigned char)s[len] < 0x80; len++)
		;
	if (len == n)
		return n > maxout ? NULL : prep_ascii(profile, s, n);
	if ((ucs4 = stringprep_utf8_to_ucs4(s, (ssize_t)n, &len)) == NULL)
		return NULL;
	cap = len * STRINGPREP_MAX_MAP_CHARS;
	cap = (cap > maxout ? cap : maxout) + 1;
	ucs4 = xreallocarray(ucs4, cap, sizeof(*ucs4));
	rc = stringprep_4i(ucs4, &len, cap, 0, profile);
	if (rc == STRINGPREP_OK && len > 0)
		out =
		    stringprep_ucs4_to_utf8(ucs4, (ssize_t)len, NULL, &outlen);
	free(ucs4);
	if (out != NULL && (outlen > maxout || strlen(out) != outlen)) {
		free(out);
		out = NULL;
	}
	return out;
}

/* An IP-literal domainpart "[...]" must hold a valid IPv6 address. */
static int
domain_ipv6_valid(const char *d, size_t n)
{
	char tmp[INET6_ADDRSTRLEN + 1];
	unsigned char addr[16];

	if (n < 3 || n - 2 >= sizeof(tmp) || d[n - 1] != ']')
		return 0;
	memcpy(tmp, d + 1, n - 2);
	tmp[n - 2] = '\0';
	return inet_pton(AF_INET6, tmp, addr) == 1;
}

/*
 * Check a nameprepped domainpart.  Nameprep leaves ASCII alone apart from
 * case, and NFKC turns fullwidth forms into '@', '/' and the like, so the
 * ASCII that a host name may hold (letters, digits, '-', '_', '.') is
 * enforced here, after preparation: no spaces, controls or separators.
 * Labels must be non-empty.  IP literals (RFC 6122 §2.2) are allowed;
 * IPv4 addresses pass as ordinary labels.
 */
static int
domain_valid(const char *d, size_t n)
{
	size_t i, label = 0;

	if (d[0] == '[')
		return domain_ipv6_valid(d, n);
	for (i = 0; i < n; i++) {
		unsigned char c = d[i];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		label++;
		if (c >= 0x80 || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_')
			continue;
		return 0;
	}
	return label > 0;
}

/*
 * Nameprep a domainpart, then apply the IDNA2003 label separators that
 * nameprep keeps (U+3002 ideographic full stop; U+FF0E and U+FF61 already
 * fold to '.' or U+3002 under NFKC) and strip one trailing dot (RFC 6122
 * §2.2), so that "example.com." and "example.com" are the same domain.
 */
static char *
domain_prep(const char *s, size_t n)
{
	char *d, *r, *w;
	size_t len;

	/* U+3002 shrinks to '.' below, so the length is checked after. */
	if ((d = prep(stringprep_nameprep, s, n, 3 * JID_PART_MAX)) == NULL)
		return NULL;
	for (r = w = d; *r != '\0';) {
		if (r[0] == '\xe3' && r[1] == '\x80' && r[2] == '\x82') {
			*w++ = '.';
			r += 3;
		} else
			*w++ = *r++;
	}
	*w = '\0';
	len = (size_t)(w - d);
	if (len > 0 && d[len - 1] == '.')
		d[--len] = '\0';
	if (len == 0 || len > JID_PART_MAX || !domain_valid(d, len)) {
		free(d);
		return NULL;
	}
	return d;
}

/* Gather the prepared parts (owned by the caller) into j->mem. */
static void
jid_assemble(
    struct jid *j, const char *node, const char *domain, const char *resource)
{
	size_t nl = node ? strlen(node) + 1 : 0;
	size_t dl = strlen(domain) + 1;
	size_t rl = resource ? strlen(resource) + 1 : 0;
	char *p;

	p = j->mem = xmalloc(nl + dl + rl);
	j->node = j->resource = NULL;
	if (node) {
		j->node = memcpy(p, node, nl);
		p += nl;
	}
	j->domain = memcpy(p, domain, dl);
	p += dl;
	if (resource)
		j->resource = memcpy(p, resource, rl);
}

/*
 * prep_ascii of the n bytes at s into out (n + 1 bytes): 0, or -1 if a
 * byte is prohibited.
 */
static int
ascii_part(char *out, const char *s, size_t n, int fold, int no_controls,
    int node)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];

		if ((no_controls && (c < 0x20 || c == 0x7f)) ||
		    (node && strchr(" \"&'/:<>@", c) != NULL))
			return -1;
		out[i] = (char)(fold && c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	out[n] = '\0';
	return 0;
}

/*
 * jid_parse of an all-ASCII JID (nearly every one): the same rules as
 * prep and domain_prep give for ASCII, each part prepared straight into
 * the one allocation, with no copies in between.
 */
static int
jid_parse_ascii(struct jid *j, const char *s, const char *at,
    const char *slash, const char *end)
{
	const char *dom = at ? at + 1 : s;
	size_t nl = at ? (size_t)(at - s) : 0;
	size_t dl = (size_t)(slash - dom);
	size_t rl = *slash == '/' ? (size_t)(end - slash - 1) : 0;
	char *p;

	if ((at && (nl == 0 || nl > JID_PART_MAX)) ||
	    (*slash == '/' && (rl == 0 || rl > JID_PART_MAX)) ||
	    dl == 0 || dl > JID_PART_MAX + 1)
		return -1;
	p = j->mem = xmalloc(nl + dl + rl + 3);
	if (at) {
		j->node = p;
		if (ascii_part(p, s, nl, 1, 1, 1) < 0)
			goto bad;
		p += nl + 1;
	}
	j->domain = p;
	(void)ascii_part(p, dom, dl, 1, 0, 0);  /* checked below */
	if (p[dl - 1] == '.')           /* RFC 6122 §2.2: one trailing dot */
		p[--dl] = '\0';
	if (dl == 0 || dl > JID_PART_MAX || !domain_valid(p, dl))
		goto bad;
	p += dl + 1;
	if (*slash == '/') {
		j->resource = p;
		if (ascii_part(p, slash + 1, rl, 0, 1, 0) < 0)
			goto bad;
	}
	return 0;
bad:
	jid_free(j);
	return -1;
}

/*
 * RFC 6122 §2.1: the resourcepart is everything after the first '/'; the
 * localpart is what precedes the first '@' before that '/'; the rest is
 * the domainpart.  A separator present with nothing after (or before, for
 * '@') it makes the JID invalid.  On failure j is left zeroed.
 */
int
jid_parse(struct jid *j, const char *s)
{
	const char *slash, *at, *dom, *end;
	char *node = NULL, *domain = NULL, *resource = NULL;
	int rc = -1;

	memset(j, 0, sizeof(*j));
	if (s == NULL)
		return -1;
	end = s + strlen(s);
	slash = strchr(s, '/');
	if (slash == NULL)
		slash = end;
	at = memchr(s, '@', (size_t)(slash - s));
	dom = at ? at + 1 : s;
	for (const char *c = s;; c++)
		if (c == end)
			return jid_parse_ascii(j, s, at, slash, end);
		else if ((unsigned char)*c >= 0x80)
			break;

	if (*slash == '/' &&
	    (resource = prep(stringprep_xmpp_resourceprep, slash + 1,
	         (size_t)(end - slash - 1), JID_PART_MAX)) == NULL)
		goto out;
	if (at && (node = prep(stringprep_xmpp_nodeprep, s, (size_t)(at - s),
	               JID_PART_MAX)) == NULL)
		goto out;
	if ((domain = domain_prep(dom, (size_t)(slash - dom))) == NULL)
		goto out;
	jid_assemble(j, node, domain, resource);
	rc = 0;
out:
	free(node);
	free(domain);
	free(resource);
	return rc;
}

void
jid_free(struct jid *j)
{
	if (j == NULL)
		return;
	free(j->mem);
	memset(j, 0, sizeof(*j));
}

/* dst receives its own allocation; src is unchanged.  -1 if src is empty. */
int
jid_copy(struct jid *dst, const struct jid *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src->domain == NULL)
		return -1;
	jid_assemble(dst, src->node, src->domain, src->resource);
	return 0;
}

char *
jid_nodeprep(const char *s)
{
	return prep(stringprep_xmpp_nodeprep, s, strlen(s), JID_PART_MAX);
}

char *
jid_nameprep(const char *s)
{
	return domain_prep(s, strlen(s));
}

char *
jid_resourceprep(const char *s)
{
	return prep(stringprep_xmpp_resourceprep, s, strlen(s), JID_PART_MAX);
}

char *
jid_full(const struct jid *j)
{
	return xasprintf("%s%s%s%s%s", j->node ? j->node : "",
	    j->node ? "@" : "", j->domain, j->resource ? "/" : "",
	    j->resource ? j->resource : "");
}

char *
jid_bare(const struct jid *j)
{
	return xasprintf(
	    "%s%s%s", j->node ? j->node : "", j->node ? "@" : "", j->domain);
}

/* Two optional prepared parts are equal if both absent or bytewise equal. */
static int
part_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

int
jid_eq_bare(const struct jid *a, const struct jid *b)
{
	return part_eq(a->domain, b->domain) && part_eq(a->node, b->node);
}

int
jid_eq_full(const struct jid *a, const struct jid *b)
{
	return jid_eq_bare(a, b) && part_eq(a->resource, b->resource);
}

char *
jid_normalize(const char *s)
{
	struct jid j;
	char *r;

	if (jid_parse(&j, s) == -1)
		return NULL;
	r = jid_full(&j);
	jid_free(&j);
	return r;
}
