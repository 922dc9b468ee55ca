/*
 * Unit tests for shared/jid.c: RFC 6122 splitting and preparation, case
 * folding, length limits, formatting and comparison.
 */
#include <stdlib.h>
#include <string.h>

#include <stringprep.h>

#include "jid.h"
#include "unit.h"

/* Parse s; it must succeed and format back to want (full form). */
static void
check_valid(const char *s, const char *want, int line)
{
	struct jid j;
	char *full = NULL;

	if (jid_parse(&j, s) == -1) {
		unit_failed++;
		fprintf(stderr, "FAIL %s:%d: jid_parse(\"%s\") refused\n",
		    __FILE__, line, s);
		return;
	}
	full = jid_full(&j);
	if (strcmp(full, want) == 0)
		unit_passed++;
	else {
		unit_failed++;
		fprintf(stderr, "FAIL %s:%d: \"%s\" -> \"%s\", want \"%s\"\n",
		    __FILE__, line, s, full, want);
	}
	free(full);
	jid_free(&j);
}

/* Parse s; it must fail and leave the jid zeroed. */
static void
check_invalid(const char *s, int line)
{
	struct jid j;

	if (jid_parse(&j, s) == 0) {
		char *full = jid_full(&j);

		unit_failed++;
		fprintf(stderr,
		    "FAIL %s:%d: jid_parse accepted \"%s\" as "
		    "\"%s\"\n",
		    __FILE__, line, s, full);
		free(full);
		jid_free(&j);
		return;
	}
	if (j.node == NULL && j.domain == NULL && j.resource == NULL &&
	    j.mem == NULL)
		unit_passed++;
	else {
		unit_failed++;
		fprintf(stderr, "FAIL %s:%d: jid not zeroed after failure\n",
		    __FILE__, line);
	}
}

#define VALID(s, want) check_valid((s), (want), __LINE__)
#define INVALID(s) check_invalid((s), __LINE__)

/* A string of n copies of the (possibly multi-byte) unit u. */
static char *
repeat(const char *u, size_t n)
{
	size_t ul = strlen(u), i;
	char *s = malloc(ul * n + 1);

	for (i = 0; i < n; i++)
		memcpy(s + i * ul, u, ul);
	s[ul * n] = '\0';
	return s;
}

static void
test_valid(void)
{
	VALID("example.com", "example.com");
	VALID("juliet@example.com", "juliet@example.com");
	VALID("juliet@example.com/balcony", "juliet@example.com/balcony");
	VALID("example.com/resource", "example.com/resource");
	VALID("localhost", "localhost");
	VALID("a", "a");
	VALID("a_b-c.example", "a_b-c.example");
	VALID("xn--bcher-kva.example", "xn--bcher-kva.example");
	/* The resource is everything after the first '/' (RFC 6122 §2.1). */
	VALID("example.com/a/b@c", "example.com/a/b@c");
	VALID("u@example.com/a@b/c", "u@example.com/a@b/c");
	VALID("example.com/@", "example.com/@");
	VALID("example.com//", "example.com//");
	/* Resourceprep keeps spaces and case. */
	VALID("u@example.com/ Orchard Phone ", "u@example.com/ Orchard Phone ");
	/* IP literals. */
	VALID("127.0.0.1", "127.0.0.1");
	VALID("u@192.168.0.1/r", "u@192.168.0.1/r");
	VALID("[::1]", "[::1]");
	VALID("u@[2001:DB8::1]/R", "u@[2001:db8::1]/R");
	VALID("[::ffff:127.0.0.1]", "[::ffff:127.0.0.1]");
	VALID("[::1].", "[::1]"); /* the dot goes before the check */
	/* Characters stringprep maps to nothing (RFC 3454 B.1). */
	VALID("ju\xc2\xadliet@example.com", "juliet@example.com");
	/* Non-ASCII parts. */
	VALID("\xc3\xa9lise@\xc3\xa9xample.com/\xc3\x89",
	    "\xc3\xa9lise@\xc3\xa9xample.com/\xc3\x89");
	VALID("\xe4\xbd\xa0\xe5\xa5\xbd@\xe4\xbe\x8b\xe5\xad\x90.cn",
	    "\xe4\xbd\xa0\xe5\xa5\xbd@\xe4\xbe\x8b\xe5\xad\x90.cn");
	/* Fullwidth forms fold under NFKC. */
	VALID("\xef\xbc\xa1@example.com", "a@example.com");
	/* Resourceprep NFKC can produce '/' and '@', harmless there. */
	VALID("d/\xef\xbc\x8f\xef\xbc\xa0", "d//@");
}

static void
test_case_folding(void)
{
	VALID("Juliet@Example.COM/Balcony", "juliet@example.com/Balcony");
	VALID("JULIET@EXAMPLE.COM", "juliet@example.com");
	VALID("u@d/RESOURCE", "u@d/RESOURCE");
	VALID("\xc3\x84\xc3\x96@\xc3\x89XAMPLE.com",
	    "\xc3\xa4\xc3\xb6@\xc3\xa9xample.com");
	/* Case folding with expansion (B.2): sharp s becomes "ss". */
	VALID("stra\xc3\x9f"
	      "e@example.com",
	    "strasse@example.com");
	/* Final sigma and capital sigma fold to the same letter. */
	VALID("\xce\xa3@d", "\xcf\x83@d");
}

static void
test_trailing_dot(void)
{
	VALID("example.com.", "example.com");
	VALID("u@example.com./r", "u@example.com/r");
	VALID("example.com./r.", "example.com/r.");
	/* Fullwidth and ideographic full stops are label separators. */
	VALID("example\xef\xbc\x8e"
	      "com",
	    "example.com");
	VALID("example\xe3\x80\x82"
	      "com",
	    "example.com");
	VALID("example\xef\xbd\xa1"
	      "com",
	    "example.com");
	VALID("example.com\xe3\x80\x82", "example.com");
	INVALID("example.com..");
	INVALID(".");
	INVALID("u@.");
	INVALID("u@./r");
}

static void
test_invalid(void)
{
	/* Empty parts. */
	INVALID("");
	INVALID("@");
	INVALID("/");
	INVALID("@/");
	INVALID("@example.com");
	INVALID("u@");
	INVALID("u@/r");
	INVALID("example.com/");
	INVALID("u@example.com/");
	INVALID("/resource");
	/* Characters nodeprep prohibits (RFC 6122 Appendix A.5). */
	INVALID("a b@example.com");
	INVALID("a\"b@example.com");
	INVALID("a&b@example.com");
	INVALID("a'b@example.com");
	INVALID("a:b@example.com");
	INVALID("a<b@example.com");
	INVALID("a>b@example.com");
	INVALID("\xef\xbc\xa0@example.com"); /* fullwidth '@' */
	INVALID("\xef\xbc\x8f@example.com"); /* fullwidth '/' */
	INVALID("a\x01@example.com");
	INVALID("a\x7f@example.com");
	/* The domainpart is the rest: a second '@' lands there. */
	INVALID("a@b@example.com");
	/* Domain characters a host name cannot hold. */
	INVALID("exa mple.com");
	INVALID("example.com\t");
	INVALID("exa\x01mple.com");
	INVALID("exa\x7fmple.com");
	INVALID("exa\"mple.com");
	INVALID("exa<mple>.com");
	INVALID("exa:mple.com");
	INVALID("exa\xef\xbc\x8fmple.com");   /* fullwidth '/' */
	INVALID("u@exa\xef\xbc\xa0mple.com"); /* fullwidth '@' */
	INVALID("example..com");
	INVALID(".example.com");
	/* Malformed IP literals. */
	INVALID("[::1");
	INVALID("::1]");
	INVALID("[]");
	INVALID("[zz::1]");
	INVALID("[1.2.3.4]");
	INVALID("[::1]x");
	INVALID("[::1%eth0]");
	/* Prohibited in resources: controls, private use, non-characters. */
	INVALID("example.com/a\x01");
	INVALID("example.com/\xee\x80\x80");
	INVALID("example.com/\xef\xbf\xbf");
	/* Bidi (RFC 3454 §6): RandALCat mixed with LCat. */
	INVALID("\xd7\x90"
	        "a@example.com");
	INVALID("example.com/\xd7\x90"
	        "a");
	/* Invalid UTF-8. */
	INVALID("\xc3");
	INVALID("u\xc3@example.com");
	INVALID("u@exampl\xe9.com");
	INVALID("example.com/\xff");
	INVALID("\xc0\x80@example.com");         /* overlong NUL */
	INVALID("\xc1\xbf@example.com");         /* overlong */
	INVALID("\xe0\x80\xaf@example.com");     /* overlong '/' */
	INVALID("example.com/\xed\xa0\x80");     /* surrogate */
	INVALID("example.com/\xf4\x90\x80\x80"); /* above U+10FFFF */
	INVALID("example.com/\x80");
	{
		struct jid j = {0};

		CHECK(jid_parse(&j, NULL) == -1);
	}
}

static void
test_lengths(void)
{
	char *a1023 = repeat("a", 1023), *a1024 = repeat("a", 1024);
	char *s, *want, *sharp;
	struct jid j;

	/* Each part may be 1023 bytes after preparation, not more. */
	s = malloc(4000);
	snprintf(s, 4000, "%s@%s/%s", a1023, a1023, a1023);
	VALID(s, s);
	CHECK(strlen(s) == 3071);
	snprintf(s, 4000, "%s@d", a1024);
	INVALID(s);
	snprintf(s, 4000, "%s", a1024);
	INVALID(s);
	snprintf(s, 4000, "d/%s", a1024);
	INVALID(s);
	/* The trailing dot is stripped before the length is judged. */
	snprintf(s, 4000, "%s.", a1023);
	VALID(s, a1023);
	/* Upper case folds without changing the length. */
	want = repeat("A", 1023);
	snprintf(s, 4000, "%s@d", want);
	free(want);
	CHECK(jid_parse(&j, s) == 0 && strcmp(j.node, a1023) == 0);
	jid_free(&j);
	/* Preparation may lengthen a part past the limit ... */
	sharp = repeat("\xc3\x9f", 511); /* 1022 bytes -> 1022 */
	snprintf(s, 4000, "%s@d", sharp);
	CHECK(jid_parse(&j, s) == 0 && strlen(j.node) == 1022);
	jid_free(&j);
	free(sharp);
	sharp = repeat("\xc3\x9f", 512); /* 1024 bytes -> 1024 */
	snprintf(s, 4000, "%s@d", sharp);
	INVALID(s);
	free(sharp);
	/* ... or shorten it below (NFKC of U+FB00 is "ff"; soft hyphens
	 * map to nothing). */
	sharp = repeat("\xef\xac\x80", 400); /* 1200 bytes -> 800 */
	snprintf(s, 4000, "%s@d", sharp);
	CHECK(jid_parse(&j, s) == 0 && strlen(j.node) == 800);
	jid_free(&j);
	free(sharp);
	/* U+0390 folds to three code points that NFKC composes again. */
	sharp = repeat("\xce\x90", 511);
	snprintf(s, 4000, "%s@d", sharp);
	CHECK(jid_parse(&j, s) == 0 && j.node != NULL &&
	      strcmp(j.node, sharp) == 0);
	jid_free(&j);
	free(sharp);
	sharp = repeat("\xc2\xad", 700);
	snprintf(s, 4000, "a%s@d", sharp);
	VALID(s, "a@d");
	free(sharp);
	free(s);
	/* Raw parts beyond 2 * 1023 bytes are refused unread. */
	sharp = repeat("\xc2\xad", 2100);
	s = malloc(strlen(sharp) + 8);
	sprintf(s, "a%s@d", sharp);
	INVALID(s);
	free(sharp);
	free(s);
	free(a1023);
	free(a1024);
}

static void
test_format(void)
{
	struct jid j;
	char *p;

	CHECK(jid_parse(&j, "Romeo@Example.net/Orchard") == 0);
	CHECK_STR(j.node, "romeo");
	CHECK_STR(j.domain, "example.net");
	CHECK_STR(j.resource, "Orchard");
	p = jid_full(&j);
	CHECK_STR(p, "romeo@example.net/Orchard");
	free(p);
	p = jid_bare(&j);
	CHECK_STR(p, "romeo@example.net");
	free(p);
	jid_free(&j);
	CHECK(j.mem == NULL && j.domain == NULL);
	jid_free(&j); /* twice is harmless */

	CHECK(jid_parse(&j, "example.net/R") == 0);
	CHECK(j.node == NULL);
	p = jid_bare(&j);
	CHECK_STR(p, "example.net");
	free(p);
	p = jid_full(&j);
	CHECK_STR(p, "example.net/R");
	free(p);
	jid_free(&j);

	CHECK(jid_parse(&j, "example.net") == 0);
	CHECK(j.node == NULL && j.resource == NULL);
	p = jid_full(&j);
	CHECK_STR(p, "example.net");
	free(p);
	jid_free(&j);

	p = jid_normalize("Juliet@EXAMPLE.com./Balcony");
	CHECK_STR(p, "juliet@example.com/Balcony");
	free(p);
	CHECK(jid_normalize("@example.com") == NULL);
	CHECK(jid_normalize("") == NULL);
}

static void
test_prep_parts(void)
{
	char *p;

	p = jid_nodeprep("JuLiet");
	CHECK_STR(p, "juliet");
	free(p);
	CHECK(jid_nodeprep("") == NULL);
	CHECK(jid_nodeprep("a@b") == NULL);
	CHECK(jid_nodeprep("a/b") == NULL);
	CHECK(jid_nodeprep("\xc2\xad") == NULL); /* empty after prep */
	CHECK(jid_nodeprep("\xff") == NULL);
	p = jid_nameprep("EXAMPLE.Com.");
	CHECK_STR(p, "example.com");
	free(p);
	CHECK(jid_nameprep("") == NULL);
	CHECK(jid_nameprep("a@b") == NULL);
	CHECK(jid_nameprep("a/b") == NULL);
	CHECK(jid_nameprep("a b") == NULL);
	p = jid_resourceprep("Balcony Phone");
	CHECK_STR(p, "Balcony Phone");
	free(p);
	p = jid_resourceprep("a/b@c");
	CHECK_STR(p, "a/b@c");
	free(p);
	CHECK(jid_resourceprep("") == NULL);
	CHECK(jid_resourceprep("\x01") == NULL);
}

/* libidn's own answer for s under profile, or NULL if it refuses it. */
static char *
libidn_prep(const Stringprep_profile *profile, const char *s)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%s", s);
	if (stringprep(buf, sizeof(buf), 0, profile) != STRINGPREP_OK)
		return NULL;
	return strdup(buf);
}

/*
 * jid.c prepares pure ASCII without libidn; it must agree with libidn on
 * every ASCII character, alone and between letters of either case.
 */
static void
test_ascii_matches_libidn(void)
{
	static const char *fmt[] = {"%c", "a%cb", "A%cB"};
	char s[8], *mine, *ref;
	size_t f;
	int c, node_ok = 1, res_ok = 1, name_ok = 1;

	for (c = 1; c < 0x80; c++) {
		for (f = 0; f < sizeof(fmt) / sizeof(fmt[0]); f++) {
			snprintf(s, sizeof(s), fmt[f], c);
			mine = jid_nodeprep(s);
			ref = libidn_prep(stringprep_xmpp_nodeprep, s);
			if ((mine == NULL) != (ref == NULL) ||
			    (mine && strcmp(mine, ref) != 0))
				node_ok = 0;
			free(mine);
			free(ref);
			mine = jid_resourceprep(s);
			ref = libidn_prep(stringprep_xmpp_resourceprep, s);
			if ((mine == NULL) != (ref == NULL) ||
			    (mine && strcmp(mine, ref) != 0))
				res_ok = 0;
			free(mine);
			free(ref);
			/* Nameprep refuses no ASCII; jid.c's domain rules
			 * refuse more, but what it keeps must agree. */
			mine = jid_nameprep(s);
			ref = libidn_prep(stringprep_nameprep, s);
			if (ref == NULL || (mine && strcmp(mine, ref) != 0 &&
			                       !(c == '.' && f == 0)))
				name_ok = 0;
			free(mine);
			free(ref);
		}
	}
	CHECK(node_ok);
	CHECK(res_ok);
	CHECK(name_ok);
	/* The same characters through the libidn path (non-ASCII part). */
	mine = jid_nodeprep("\xc3\x89Q");
	CHECK_STR(mine, "\xc3\xa9q");
	free(mine);
	CHECK(jid_nodeprep("\xc3\x89 ") == NULL);
	CHECK(jid_nodeprep("\xc3\x89@") == NULL);
	mine = jid_resourceprep("\xc3\x89Q ");
	CHECK_STR(mine, "\xc3\x89Q ");
	free(mine);
}

/* jid_parse by the parts: the path every JID took before ASCII had its
 * own (jid_parse_ascii); 0 and the parts, or -1. */
static int
parse_by_parts(const char *s, char **node, char **domain, char **res)
{
	const char *slash = strchr(s, '/'), *at;
	char part[1200];

	*node = *domain = *res = NULL;
	if (slash == NULL)
		slash = s + strlen(s);
	at = memchr(s, '@', (size_t)(slash - s));
	if (*slash == '/' && (*res = jid_resourceprep(slash + 1)) == NULL)
		return -1;
	if (at) {
		snprintf(part, sizeof(part), "%.*s", (int)(at - s), s);
		if (part[0] == '\0' || (*node = jid_nodeprep(part)) == NULL)
			return -1;
	}
	snprintf(part, sizeof(part), "%.*s", (int)(slash - (at ? at + 1 : s)),
	    at ? at + 1 : s);
	if (part[0] == '\0' || (*domain = jid_nameprep(part)) == NULL)
		return -1;
	return 0;
}

static int
same_part(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* The ASCII path of jid_parse agrees with the parts' for every ASCII
 * character in every part, and at the length limits. */
static void
test_ascii_parse_matches_parts(void)
{
	static const char *fmt[] = {
		"%cx@d.test/r", "x%c@d.test/r", "u@%cd.test/r", "u@d%c.test/r",
		"u@d.test%c/r", "u@d.test/%c", "u@d.test/r%c", "%c@d.test",
		"u@d.test.%c", "%c",
	};
	char s[1200], *n, *d, *r;
	int ok = 1, lens_ok = 1;
	struct jid j;

	for (int c = 1; c < 0x80; c++)
		for (size_t f = 0; f < sizeof(fmt) / sizeof(fmt[0]); f++) {
			int a, b;

			snprintf(s, sizeof(s), fmt[f], c);
			a = jid_parse(&j, s);
			b = parse_by_parts(s, &n, &d, &r);
			if (a != b || (a == 0 && (!same_part(j.node, n) ||
			    !same_part(j.domain, d) ||
			    !same_part(j.resource, r)))) {
				ok = 0;
				fprintf(stderr, "ascii parse differs: %s\n", s);
			}
			jid_free(&j);
			free(n);
			free(d);
			free(r);
		}
	CHECK(ok);
	/* Parts of 0, 1, the limit and one more, with a trailing dot. */
	for (int part = 0; part < 3; part++)
		for (int len = JID_PART_MAX - 1; len <= JID_PART_MAX + 2;
		     len++) {
			char p[1100];
			int a, b;

			memset(p, 'k', (size_t)len);
			p[len] = '\0';
			if (part == 1 && len > 1)
				p[len - 1] = '.';
			snprintf(s, sizeof(s), part == 0 ? "%s@d.test/r" :
			    part == 1 ? "u@%s/r" : "u@d.test/%s", p);
			a = jid_parse(&j, s);
			b = parse_by_parts(s, &n, &d, &r);
			if (a != b || (a == 0 && !same_part(j.domain, d)))
				lens_ok = 0;
			jid_free(&j);
			free(n);
			free(d);
			free(r);
		}
	CHECK(lens_ok);
	CHECK(jid_parse(&j, "@d.test") == -1);
	CHECK(jid_parse(&j, "u@d.test/") == -1);
	CHECK(jid_parse(&j, "u@.") == -1);
	CHECK(jid_parse(&j, "U@D.Test./R") == 0);
	CHECK_STR(j.node, "u");
	CHECK_STR(j.domain, "d.test");
	CHECK_STR(j.resource, "R");
	jid_free(&j);
}

/* Parse a and b and compare with both functions. */
static void
check_eq(const char *a, const char *b, int bare, int full, int line)
{
	struct jid ja, jb;

	if (jid_parse(&ja, a) == -1 || jid_parse(&jb, b) == -1) {
		unit_failed++;
		fprintf(stderr, "FAIL %s:%d: parse\n", __FILE__, line);
		jid_free(&ja);
		return;
	}
	if (jid_eq_bare(&ja, &jb) == bare && jid_eq_full(&ja, &jb) == full &&
	    jid_eq_bare(&jb, &ja) == bare && jid_eq_full(&jb, &ja) == full)
		unit_passed++;
	else {
		unit_failed++;
		fprintf(stderr,
		    "FAIL %s:%d: \"%s\" vs \"%s\": bare %d full %d\n", __FILE__,
		    line, a, b, jid_eq_bare(&ja, &jb), jid_eq_full(&ja, &jb));
	}
	jid_free(&ja);
	jid_free(&jb);
}

#define EQ(a, b, bare, full) check_eq((a), (b), (bare), (full), __LINE__)

static void
test_equality(void)
{
	EQ("a@d/r", "a@d/r", 1, 1);
	EQ("A@D/r", "a@d./r", 1, 1);
	EQ("a@d/r1", "a@d/r2", 1, 0);
	EQ("a@d/R", "a@d/r", 1, 0);
	EQ("a@d", "a@d/r", 1, 0);
	EQ("a@d", "d", 0, 0);
	EQ("d", "d/r", 1, 0);
	EQ("a@d", "b@d", 0, 0);
	EQ("a@d", "a@e", 0, 0);
	EQ("d", "e", 0, 0);
	EQ("stra\xc3\x9f"
	   "e@d",
	    "STRASSE@D", 1, 1);
	EQ("example\xe3\x80\x82"
	   "com",
	    "example.com", 1, 1);
}

static void
test_copy(void)
{
	struct jid a, b, empty = {0};
	char *p;

	CHECK(jid_parse(&a, "x@y/z") == 0);
	CHECK(jid_copy(&b, &a) == 0);
	CHECK(b.mem != a.mem && b.node != a.node);
	jid_free(&a);
	p = jid_full(&b);
	CHECK_STR(p, "x@y/z");
	free(p);
	jid_free(&b);

	CHECK(jid_parse(&a, "y") == 0);
	CHECK(jid_copy(&b, &a) == 0);
	CHECK(b.node == NULL && b.resource == NULL);
	CHECK(jid_eq_full(&a, &b));
	jid_free(&a);
	jid_free(&b);

	CHECK(jid_copy(&b, &empty) == -1);
}

int
main(void)
{
	test_valid();
	test_case_folding();
	test_trailing_dot();
	test_invalid();
	test_lengths();
	test_format();
	test_prep_parts();
	test_ascii_matches_libidn();
	test_ascii_parse_matches_parts();
	test_equality();
	test_copy();
	return UNIT_DONE("jid");
}
