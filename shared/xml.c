/*
 * XML for XMPP streams: element trees in per-stanza arenas, a serializer
 * that re-creates namespace declarations, and the restricted, size-limited
 * streaming parser on top of expat (RFC 6120 §4, §11).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <strings.h>

#include <expat.h>

#include "arena.h"
#include "buf.h"
#include "log.h"
#include "xmalloc.h"
#include "xml.h"

#define NS_XMLNS "http://www.w3.org/2000/xmlns/"

/*
 * Expat >= 2.6 (and distributions that backported the CVE-2023-52425 fix)
 * defers re-parsing a partial token until enough new input has arrived,
 * which would leave a stanza trickled in small reads undelivered.  The
 * header declares the switch from 2.6.0; for older headers refer to it
 * weakly so the same binary works with a library that has it or not.
 */
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 6)
#define HAVE_REPARSE_DEFERRAL 1
#else
XMLPARSEAPI(XML_Bool)
XML_SetReparseDeferralEnabled(XML_Parser, XML_Bool) __attribute__((weak));
#endif

/* Used for any zero field of struct xml_limits, and for a NULL one. */
#define DEFAULT_MAX_STANZA 65536
#define DEFAULT_MAX_DEPTH 32
#define DEFAULT_MAX_ATTRS 64

/*
 * Input is handed to expat in pieces of at most this size: expat copies
 * every piece into its own buffer, which never shrinks, so a 64 KiB read
 * must not become a 64 KiB buffer held by an idle connection.
 */
#define FEED_PIECE 512

/*
 * When expat holds more than this between stanzas, the parser is replaced
 * by a fresh one primed with a copy of the stream header: see
 * stream_compact().  Expat 2.5 holds about 10 KiB after a stream header;
 * it grows with large tokens (its input buffer and pools never shrink) and
 * with every distinct element and attribute name (interned for the life of
 * the parser), so without this a long-lived stream grows without bound.
 */
#define COMPACT_BYTES (12 * 1024)

#define STANZA_ARENA 1024
#define MIN_MEMORY (8 * 1024)   /* the least max_memory there is */

/* Expat's allocations for one stream may reach this many bytes beyond
 * four times the stanza limit: a tag as long as the limit takes its input
 * buffer (grown by doubling) and a copy of its attribute values in a pool
 * (grown likewise); its tables start at about 10 KiB. */
#define EXPAT_SLACK (64 * 1024)

/*
 * What the bytes kept back (xml_stream.defer) are: the unfinished tag at
 * the end of the input, tracked so that it goes to expat only once it is
 * complete.  Expat scans an unfinished token again from its start on
 * every call (its reparse deferral is off so that stanzas are delivered
 * on their last byte), which makes a tag dribbled in byte by byte cost
 * the square of its length; kept back here it costs one scan.
 */
enum lex_state {
	LEX_TEXT,       /* outside markup */
	LEX_LT,         /* after '<' */
	LEX_TAG,        /* in a tag or declaration, outside quotes */
	LEX_QUOTE,      /* in a quoted attribute value */
	LEX_PASS,       /* "<!": comment, CDATA, DOCTYPE: not kept back */
};

struct xml_stream {
	XML_Parser parser;
	struct xml_limits lim;
	struct xml_stream_cb cb;
	void *ctx;

	enum xml_status status; /* sticky once not XMLS_OK */
	enum xml_error error;
	const char *error_text; /* static string */
	int busy;               /* inside xml_stream_feed() */
	int halted;             /* stopped: handlers ignore further events */
	int replaying;          /* priming a fresh parser with the header */
	int compact_now;        /* stopped at a boundary to compact */
	int in_root;            /* the stream header has been seen */
	int trusted_root;       /* no limits on the header (our own) */
	unsigned depth;         /* open elements below the root */
	unsigned nsdecls;       /* declarations on the element being opened */
	int nheld;              /* 1: held is the first byte of the stream */
	char held;

	/* Offsets in bytes fed since the last reset (RFC 6120 §13.12). */
	uint64_t total_fed;
	uint64_t boundary;  /* end of the last stanza boundary */
	int64_t idx_adjust; /* expat's byte index + this = our offset */

	struct xel *cur; /* innermost open element of the stanza */
	struct buf text; /* character data not yet added to cur */

	struct arena *hdr;      /* the stream header, until on_open returns */
	const char *default_ns; /* in hdr */
	struct buf decls;       /* namespace declarations on the header */
	char *replay;           /* "<qname decls>" to prime a new parser */
	size_t replay_len;

	size_t expat_bytes; /* held by expat through mem_suite */
	size_t compact_at;  /* expat_bytes that trigger a compaction */
	size_t expat_max;   /* past it, expat's allocations are refused */
	int mem_refused;    /* one was: the parse error is ours */

	struct buf defer;       /* an unfinished tag, kept back from expat */
	enum lex_state lex;     /* at the end of the input so far */
	char quote;             /* in LEX_QUOTE: the closing quote */
	char last;              /* in LEX_TAG: the last byte not a space */
};

/*
 * Tree building and reading.
 */

static struct xel *
el_alloc(struct arena *a)
{
	struct xel *el = arena_alloc(a, sizeof(*el));

	el->arena = a;
	return el;
}

static void
el_link(struct xel *parent, struct xel *child)
{
	child->parent = parent;
	child->next = NULL;
	if (parent->last != NULL)
		parent->last->next = child;
	else
		parent->children = child;
	parent->last = child;
}

/* Namespace of an attribute: NULL and "" both mean unqualified. */
static const char *
attr_ns_norm(const char *ns)
{
	return (ns == NULL || *ns == '\0') ? NULL : ns;
}

static int
ns_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

struct xel *
xel_new(struct arena *a, const char *name, const char *ns)
{
	struct xel *el = el_alloc(a);

	el->name = arena_strdup(a, name);
	el->ns = arena_strdup(a, ns != NULL ? ns : "");
	return el;
}

struct xel *
xel_add(struct xel *parent, const char *name, const char *ns)
{
	struct xel *el = el_alloc(parent->arena);

	el->name = arena_strdup(parent->arena, name);
	if (ns == NULL || strcmp(ns, parent->ns) == 0)
		el->ns = parent->ns;
	else
		el->ns = arena_strdup(parent->arena, ns);
	el_link(parent, el);
	return el;
}

/* Adjacent text is merged into one node, so a tree never has two. */
void
xel_add_text(struct xel *el, const char *text, size_t len)
{
	struct xel *last = el->last, *t;
	char *s;

	if (len == 0)
		return;
	if (last != NULL && last->name == NULL) {
		s = arena_alloc(el->arena, last->textlen + len + 1);
		memcpy(s, last->text, last->textlen);
		memcpy(s + last->textlen, text, len);
		last->text = s;
		last->textlen += len;
		return;
	}
	t = el_alloc(el->arena);
	t->text = arena_strndup(el->arena, text, len);
	t->textlen = len;
	t->ns = "";
	el_link(el, t);
}

struct xel *
xel_text_set(struct xel *el, const char *text)
{
	xel_add_text(el, text, strlen(text));
	return el;
}

static struct xattr **
attr_find(const struct xel *el, const char *ns, const char *name)
{
	struct xattr **ap;

	ns = attr_ns_norm(ns);
	for (ap = (struct xattr **)&el->attrs; *ap != NULL; ap = &(*ap)->next)
		if (strcmp((*ap)->name, name) == 0 && ns_equal((*ap)->ns, ns))
			return ap;
	return ap;
}

void
xel_set_attr_ns(
    struct xel *el, const char *ns, const char *name, const char *value)
{
	struct xattr **ap = attr_find(el, ns, name), *a;

	if (value == NULL) {
		if (*ap != NULL)
			*ap = (*ap)->next;
		return;
	}
	if (*ap != NULL) {
		(*ap)->value = arena_strdup(el->arena, value);
		return;
	}
	/* attr_find() stopped at the tail link: append keeps the order. */
	a = arena_alloc(el->arena, sizeof(*a));
	ns = attr_ns_norm(ns);
	a->ns = ns != NULL ? arena_strdup(el->arena, ns) : NULL;
	a->name = arena_strdup(el->arena, name);
	a->value = arena_strdup(el->arena, value);
	*ap = a;
}

void
xel_set_attr(struct xel *el, const char *name, const char *value)
{
	xel_set_attr_ns(el, NULL, name, value);
}

/* One node without its children or links, copied into a. */
static struct xel *
copy_node(struct arena *a, const struct xel *src)
{
	struct xel *el = el_alloc(a);
	struct xattr *sa, *na, **tail = &el->attrs;

	if (src->name == NULL) {
		el->text = arena_strndup(a, src->text, src->textlen);
		el->textlen = src->textlen;
		el->ns = "";
		return el;
	}
	el->name = arena_strdup(a, src->name);
	el->ns = arena_strdup(a, src->ns);
	for (sa = src->attrs; sa != NULL; sa = sa->next) {
		na = arena_alloc(a, sizeof(*na));
		na->ns = sa->ns != NULL ? arena_strdup(a, sa->ns) : NULL;
		na->name = arena_strdup(a, sa->name);
		na->value = arena_strdup(a, sa->value);
		*tail = na;
		tail = &na->next;
	}
	return el;
}

/* Bytes copy_node() takes from an arena for src (as arena_alloc rounds). */
static size_t
node_size(const struct xel *src)
{
#define R8(n) (((n) + 7) & ~(size_t)7)
	size_t n = R8(sizeof(struct xel));

	if (src->name == NULL)
		return n + R8(src->textlen + 1);
	n += R8(strlen(src->name) + 1) + R8(strlen(src->ns) + 1);
	for (const struct xattr *a = src->attrs; a != NULL; a = a->next)
		n += R8(sizeof(*a)) + R8(strlen(a->name) + 1) +
		    R8(strlen(a->value) + 1) +
		    (a->ns != NULL ? R8(strlen(a->ns) + 1) : 0);
	return n;
#undef R8
}

struct xel *
xel_copy_fit(const struct xel *src, size_t spare)
{
	const struct xel *s = src;
	size_t n = node_size(src);

	for (;;) {
		if (s->children != NULL) {
			s = s->children;
			n += node_size(s);
			continue;
		}
		while (s != src && s->next == NULL)
			s = s->parent;
		if (s == src)
			break;
		s = s->next;
		n += node_size(s);
	}
	return xel_copy(arena_new(n + spare), src);
}

/* Iterative, so a deep tree built by hand cannot exhaust the stack. */
struct xel *
xel_copy(struct arena *a, const struct xel *src)
{
	const struct xel *s = src;
	struct xel *top, *d;

	top = d = copy_node(a, src);
	for (;;) {
		if (s->children != NULL) {
			s = s->children;
			struct xel *c = copy_node(a, s);

			el_link(d, c);
			d = c;
			continue;
		}
		while (s != src && s->next == NULL) {
			s = s->parent;
			d = d->parent;
		}
		if (s == src)
			break;
		s = s->next;
		struct xel *c = copy_node(a, s);

		el_link(d->parent, c);
		d = c;
	}
	return top;
}

struct xel *
xel_append_copy(struct xel *parent, const struct xel *src)
{
	struct xel *c = xel_copy(parent->arena, src);

	el_link(parent, c);
	return c;
}

void
xel_remove(struct xel *child)
{
	struct xel *p = child->parent, *prev = NULL, *c;

	if (p == NULL)
		return;
	for (c = p->children; c != NULL && c != child; c = c->next)
		prev = c;
	if (c == NULL)
		return;
	if (prev != NULL)
		prev->next = child->next;
	else
		p->children = child->next;
	if (p->last == child)
		p->last = prev;
	child->next = NULL;
	child->parent = NULL;
}

const char *
xel_attr_ns(const struct xel *el, const char *ns, const char *name)
{
	struct xattr **ap;

	if (el == NULL || el->name == NULL)
		return NULL;
	ap = attr_find(el, ns, name);
	return *ap != NULL ? (*ap)->value : NULL;
}

const char *
xel_attr(const struct xel *el, const char *name)
{
	return xel_attr_ns(el, NULL, name);
}

int
xel_is(const struct xel *el, const char *name, const char *ns)
{
	if (el == NULL || el->name == NULL)
		return 0;
	if (name != NULL && strcmp(el->name, name) != 0)
		return 0;
	if (ns != NULL && strcmp(el->ns, ns) != 0)
		return 0;
	return 1;
}

static struct xel *
find_from(const struct xel *c, const char *name, const char *ns)
{
	for (; c != NULL; c = c->next)
		if (xel_is(c, name, ns))
			return (struct xel *)c;
	return NULL;
}

struct xel *
xel_child(const struct xel *el, const char *name, const char *ns)
{
	return el != NULL ? find_from(el->children, name, ns) : NULL;
}

struct xel *
xel_next(const struct xel *c, const char *name, const char *ns)
{
	return c != NULL ? find_from(c->next, name, ns) : NULL;
}

struct xel *
xel_first_elem(const struct xel *el)
{
	return xel_child(el, NULL, NULL);
}

int
xel_count_elems(const struct xel *el)
{
	const struct xel *c;
	int n = 0;

	if (el == NULL)
		return 0;
	for (c = el->children; c != NULL; c = c->next)
		if (c->name != NULL)
			n++;
	return n;
}

/* The only allocation is for more than one text child. */
const char *
xel_text(const struct xel *el)
{
	const struct xel *c, *only = NULL;
	size_t len = 0, ntext = 0;
	char *s, *p;

	if (el == NULL)
		return "";
	for (c = el->children; c != NULL; c = c->next)
		if (c->name == NULL) {
			only = c;
			len += c->textlen;
			ntext++;
		}
	if (ntext == 0)
		return "";
	if (ntext == 1)
		return only->text;
	p = s = arena_alloc(el->arena, len + 1);
	for (c = el->children; c != NULL; c = c->next)
		if (c->name == NULL) {
			memcpy(p, c->text, c->textlen);
			p += c->textlen;
		}
	*p = '\0';
	return s;
}

/*
 * Serializer.
 */

static void
add_quoted(struct buf *out, const char *s)
{
	buf_addc(out, '\'');
	buf_add_xml_escaped(out, s, strlen(s), 1);
	buf_addc(out, '\'');
}

/* Elements in these namespaces are written with their fixed prefix. */
static const char *
fixed_prefix(const char *ns)
{
	if (strcmp(ns, NS_STREAMS) == 0)
		return "stream:";
	if (strcmp(ns, NS_XML) == 0)
		return "xml:";
	return NULL;
}

/*
 * Attributes in namespaces other than xml: get prefixes p1, p2, ... numbered
 * per element by first appearance and declared on that element, so they
 * cannot collide with anything in scope.  Attributes in the xmlns namespace
 * cannot be written as attributes and are dropped.
 */
static void
write_attrs(const struct xel *el, struct buf *out)
{
	const struct xattr *a;
	const char **seen = NULL;
	size_t nseen = 0, cap = 0, i;

	for (a = el->attrs; a != NULL; a = a->next) {
		if (a->ns != NULL && strcmp(a->ns, NS_XMLNS) == 0)
			continue;
		buf_addc(out, ' ');
		if (a->ns == NULL || *a->ns == '\0') {
			buf_adds(out, a->name);
		} else if (strcmp(a->ns, NS_XML) == 0) {
			buf_adds(out, "xml:");
			buf_adds(out, a->name);
		} else {
			for (i = 0; i < nseen; i++)
				if (strcmp(seen[i], a->ns) == 0)
					break;
			if (i == nseen) {
				if (nseen == cap) {
					cap = cap ? cap * 2 : 4;
					seen = xreallocarray(
					    seen, cap, sizeof(*seen));
				}
				seen[nseen++] = a->ns;
				buf_printf(out, "xmlns:p%zu=", i + 1);
				add_quoted(out, a->ns);
				buf_addc(out, ' ');
			}
			buf_printf(out, "p%zu:", i + 1);
			buf_adds(out, a->name);
		}
		buf_addc(out, '=');
		add_quoted(out, a->value);
	}
	free(seen);
}

/* Writes "<name ...", returns the default namespace inside el. */
static const char *
write_open(const struct xel *el, struct buf *out, const char *dflt)
{
	const char *pfx = fixed_prefix(el->ns);

	buf_addc(out, '<');
	if (pfx != NULL) {
		buf_adds(out, pfx);
		buf_adds(out, el->name);
	} else {
		buf_adds(out, el->name);
		if (strcmp(el->ns, dflt) != 0) {
			buf_adds(out, " xmlns=");
			add_quoted(out, el->ns);
		}
		dflt = el->ns;
	}
	write_attrs(el, out);
	return dflt;
}

static void
write_close(const struct xel *el, struct buf *out)
{
	const char *pfx = fixed_prefix(el->ns);

	buf_adds(out, "</");
	if (pfx != NULL)
		buf_adds(out, pfx);
	buf_adds(out, el->name);
	buf_addc(out, '>');
}

/* Iterative with an explicit stack of in-scope default namespaces. */
void
xel_serialize(const struct xel *top, struct buf *out, const char *parent_ns)
{
	const struct xel *el = top;
	const char *dflt = parent_ns != NULL ? parent_ns : "";
	const char **stack = NULL;
	size_t depth = 0, cap = 0;

	for (;;) {
		if (el->name == NULL) {
			buf_add_xml_escaped(out, el->text, el->textlen, 0);
		} else {
			const char *inner = write_open(el, out, dflt);

			if (el->children == NULL) {
				buf_adds(out, "/>");
			} else {
				buf_addc(out, '>');
				if (depth == cap) {
					cap = cap ? cap * 2 : 16;
					stack = xreallocarray(
					    stack, cap, sizeof(*stack));
				}
				stack[depth++] = dflt;
				dflt = inner;
				el = el->children;
				continue;
			}
		}
		while (el != top && el->next == NULL) {
			el = el->parent;
			dflt = stack[--depth];
			write_close(el, out);
		}
		if (el == top)
			break;
		el = el->next;
	}
	free(stack);
}

/*
 * Expat memory, counted per stream.  The suite has no context argument, so
 * every call into expat that may allocate or free runs with mem_owner set
 * (saved and restored, as a callback may parse something else).
 */

#define MEM_HDR                                                                \
	(_Alignof(max_align_t) > sizeof(size_t) ? _Alignof(max_align_t)        \
	                                        : sizeof(size_t))

static _Thread_local struct xml_stream *mem_owner;
static _Thread_local size_t mem_unowned;

static void
mem_count(size_t add, size_t sub)
{
	size_t *n = mem_owner != NULL ? &mem_owner->expat_bytes : &mem_unowned;

	*n = *n + add - sub;
}

/* Whether n more bytes would take the owner past its share (CVE-2025-59375:
 * a small input must not make expat allocate without bound). */
static int
mem_refuse(size_t n)
{
	struct xml_stream *xs = mem_owner;

	if (xs == NULL || xs->expat_max == 0 ||
	    xs->expat_bytes + n + MEM_HDR <= xs->expat_max)
		return 0;
	xs->mem_refused = 1;
	return 1;
}

static void *
mem_malloc(size_t n)
{
	char *p;

	if (n > SIZE_MAX - MEM_HDR || mem_refuse(n) ||
	    (p = malloc(n + MEM_HDR)) == NULL)
		return NULL;
	memcpy(p, &n, sizeof(n));
	mem_count(n + MEM_HDR, 0);
	return p + MEM_HDR;
}

static void
mem_free(void *q)
{
	char *p;
	size_t n;

	if (q == NULL)
		return;
	p = (char *)q - MEM_HDR;
	memcpy(&n, p, sizeof(n));
	mem_count(0, n + MEM_HDR);
	free(p);
}

static void *
mem_realloc(void *q, size_t n)
{
	char *p, *np;
	size_t old;

	if (q == NULL)
		return mem_malloc(n);
	if (n > SIZE_MAX - MEM_HDR)
		return NULL;
	p = (char *)q - MEM_HDR;
	memcpy(&old, p, sizeof(old));
	if ((n > old && mem_refuse(n - old)) ||
	    (np = realloc(p, n + MEM_HDR)) == NULL)
		return NULL;
	memcpy(np, &n, sizeof(n));
	mem_count(n, old);
	return np + MEM_HDR;
}

static const XML_Memory_Handling_Suite mem_suite = {
    mem_malloc, mem_realloc, mem_free};

static struct xml_stream *
mem_enter(struct xml_stream *xs)
{
	struct xml_stream *prev = mem_owner;

	mem_owner = xs;
	return prev;
}

static void
mem_leave(struct xml_stream *prev)
{
	mem_owner = prev;
}

/*
 * The streaming parser.  Handlers run inside XML_Parse(); after a stop
 * (error, callback request, closing tag) expat may still deliver a few
 * events, which the handlers ignore once xs->halted is set.
 */

static void
stream_halt(struct xml_stream *xs, enum xml_status st, enum xml_error e,
    const char *text)
{
	if (xs->halted)
		return;
	xs->halted = 1;
	xs->status = st;
	xs->error = e;
	xs->error_text = text;
	XML_StopParser(xs->parser, XML_FALSE);
}

static void
stream_fail(struct xml_stream *xs, enum xml_error e, const char *text)
{
	stream_halt(xs, XMLS_ERROR, e, text);
}

/*
 * The stanza being read takes more memory than max_memory allows: each
 * element or text node costs a struct xel, so markup such as "x<a/>"
 * repeated costs some 35 times its bytes.  Checked wherever it grows.
 */
static int
over_memory(struct xml_stream *xs)
{
	size_t n = xs->text.cap;

	if (xs->cur != NULL)
		n += arena_bytes(xs->cur->arena);
	if (n <= xs->lim.max_memory)
		return 0;
	stream_fail(xs, XMLE_TOO_MUCH_MEMORY,
	    "stanza takes too much memory once parsed");
	return 1;
}

/* Records the end of the current event as a stanza boundary. */
static void
mark_boundary(struct xml_stream *xs)
{
	int64_t idx = (int64_t)XML_GetCurrentByteIndex(xs->parser);
	int n = XML_GetCurrentByteCount(xs->parser);

	if (idx < 0 || n < 0)
		return;
	xs->boundary = (uint64_t)(idx + n + xs->idx_adjust);
}

/* Splits expat's "URI local" at the last space; ns "" when there is none. */
static void
split_name(
    struct arena *a, const char *exp, const char **ns, const char **local)
{
	const char *sp = strrchr(exp, ' ');

	if (sp == NULL) {
		*ns = "";
		*local = arena_strdup(a, exp);
		return;
	}
	*ns = arena_strndup(a, exp, (size_t)(sp - exp));
	*local = arena_strdup(a, sp + 1);
}

/* An element from expat's name and attributes; ns shared with a parent. */
static struct xel *
build_element(struct arena *a, const char *name, const char **atts,
    const struct xel *parent)
{
	struct xel *el = el_alloc(a);
	struct xattr **tail = &el->attrs, *at;
	const char *sp = strrchr(name, ' ');

	if (sp == NULL) {
		el->name = arena_strdup(a, name);
		el->ns =
		    (parent != NULL && *parent->ns == '\0') ? parent->ns : "";
	} else {
		size_t nslen = (size_t)(sp - name);

		el->name = arena_strdup(a, sp + 1);
		if (parent != NULL && strlen(parent->ns) == nslen &&
		    memcmp(parent->ns, name, nslen) == 0)
			el->ns = parent->ns;
		else
			el->ns = arena_strndup(a, name, nslen);
	}
	for (; atts[0] != NULL; atts += 2) {
		const char *ns;

		at = arena_alloc(a, sizeof(*at));
		split_name(a, atts[0], &ns, &at->name);
		at->ns = attr_ns_norm(ns);
		at->value = arena_strdup(a, atts[1]);
		*tail = at;
		tail = &at->next;
	}
	return el;
}

static unsigned
count_attrs(const char **atts)
{
	unsigned n = 0;

	for (; atts[0] != NULL; atts += 2)
		n++;
	return n;
}

/* Moves pending character data into the element being built. */
static void
flush_text(struct xml_stream *xs)
{
	if (buf_avail(&xs->text) == 0)
		return;
	xel_add_text(xs->cur, buf_head(&xs->text), buf_avail(&xs->text));
	/* Now in the tree: a large buffer would count twice (max_memory). */
	if (xs->text.cap > 4096)
		buf_free(&xs->text);
	else
		buf_reset(&xs->text);
}

/*
 * The raw qualified name of the start tag being reported, for replaying
 * the header into a fresh parser; NULL if expat keeps no input context
 * (built without XML_CONTEXT_BYTES), and then the stream is never
 * compacted.
 */
static void
root_qname(struct xml_stream *xs, const char **qn, size_t *qlen)
{
	const char *ctx, *p, *end;
	int off, size;

	*qn = NULL;
	*qlen = 0;
	ctx = XML_GetInputContext(xs->parser, &off, &size);
	if (ctx == NULL || off < 0 || size <= off || ctx[off] != '<')
		return;
	p = ctx + off + 1;
	end = ctx + size;
	while (p < end && strchr(" \t\r\n/>", *p) == NULL)
		p++;
	if (p == end)
		return;
	*qn = ctx + off + 1;
	*qlen = (size_t)(p - *qn);
}

static void
build_replay(struct xml_stream *xs)
{
	const char *qn;
	size_t qlen;
	struct buf r = BUF_INIT;

	root_qname(xs, &qn, &qlen);
	if (qn != NULL && qlen > 0) {
		buf_addc(&r, '<');
		buf_add(&r, qn, qlen);
		buf_add(&r, buf_head(&xs->decls), buf_avail(&xs->decls));
		buf_addc(&r, '>');
		xs->replay = r.data;
		xs->replay_len = r.len;
	}
	buf_free(&xs->decls);
}

/* The stream header: RFC 6120 §4.7; the caller checks its attributes. */
static void
root_start(struct xml_stream *xs, const char *name, const char **atts)
{
	struct xel *root;
	const char *sp = strrchr(name, ' ');

	if (xs->replaying) {
		xs->in_root = 1;
		return;
	}
	if (sp == NULL || (size_t)(sp - name) != strlen(NS_STREAMS) ||
	    memcmp(name, NS_STREAMS, (size_t)(sp - name)) != 0) {
		stream_fail(xs, XMLE_BAD_ROOT,
		    "stream header not in the streams namespace");
		return;
	}
	if (strcmp(sp + 1, "stream") != 0) {
		stream_fail(xs, XMLE_BAD_ROOT, "root element is not <stream>");
		return;
	}
	if (count_attrs(atts) > xs->lim.max_attrs && !xs->trusted_root) {
		stream_fail(xs, XMLE_TOO_MANY_ATTRS,
		    "too many attributes on the stream header");
		return;
	}
	if (xs->hdr == NULL)
		xs->hdr = arena_new(512);
	root = build_element(xs->hdr, name, atts, NULL);
	xs->in_root = 1;
	mark_boundary(xs);
	build_replay(xs);
	if (xs->cb.on_open != NULL &&
	    xs->cb.on_open(xs->ctx, root,
	        xs->default_ns != NULL ? xs->default_ns : "") != 0)
		stream_halt(xs, XMLS_STOPPED, XMLE_NONE, "stopped by caller");
	arena_free(xs->hdr);
	xs->hdr = NULL;
	xs->default_ns = NULL;
}

static void XMLCALL
on_start(void *ud, const char *name, const char **atts)
{
	struct xml_stream *xs = ud;
	unsigned nsdecls = xs->nsdecls;
	struct xel *el;
	struct arena *a;

	xs->nsdecls = 0;
	if (xs->halted)
		return;
	if (!xs->in_root) {
		root_start(xs, name, atts);
		return;
	}
	if (xs->depth >= xs->lim.max_depth) {
		stream_fail(xs, XMLE_TOO_DEEP, "element nesting too deep");
		return;
	}
	if (count_attrs(atts) > xs->lim.max_attrs ||
	    nsdecls > xs->lim.max_attrs) {
		stream_fail(xs, XMLE_TOO_MANY_ATTRS, "too many attributes");
		return;
	}
	if (xs->depth == 0) {
		a = arena_new(STANZA_ARENA);
		el = build_element(a, name, atts, NULL);
	} else {
		flush_text(xs);
		el = build_element(xs->cur->arena, name, atts, xs->cur);
		el_link(xs->cur, el);
	}
	xs->cur = el;
	xs->depth++;
	over_memory(xs);
}

static void
deliver(struct xml_stream *xs, struct xel *stanza)
{
	if (xs->cb.on_stanza == NULL) {
		arena_free(stanza->arena);
		return;
	}
	if (xs->cb.on_stanza(xs->ctx, stanza) != 0)
		stream_halt(xs, XMLS_STOPPED, XMLE_NONE, "stopped by caller");
}

static void XMLCALL
on_end(void *ud, const char *name)
{
	struct xml_stream *xs = ud;
	struct xel *done;

	if (xs->halted)
		return;
	if (xs->depth == 0) {
		/* RFC 6120 §4.4: the stream is closed; ignore what follows. */
		stream_halt(xs, XMLS_CLOSED, XMLE_NONE, "stream closed");
		if (xs->cb.on_close != NULL)
			xs->cb.on_close(xs->ctx);
		return;
	}
	flush_text(xs);
	if (over_memory(xs))
		return;
	done = xs->cur;
	xs->cur = done->parent;
	if (--xs->depth > 0)
		return;
	mark_boundary(xs);
	buf_free(&xs->text);
	deliver(xs, done);
	/* Stop right here: parse_piece() replaces the parser. */
	if (!xs->halted && xs->replay != NULL &&
	    xs->expat_bytes > xs->compact_at) {
		xs->halted = 1;
		xs->compact_now = 1;
		XML_StopParser(xs->parser, XML_FALSE);
	}
}

/* Text between stanzas (whitespace keepalives, RFC 6120 §4.6.1) is dropped. */
static void XMLCALL
on_text(void *ud, const char *s, int len)
{
	struct xml_stream *xs = ud;

	if (xs->halted || len <= 0)
		return;
	if (xs->depth == 0) {
		if (xs->in_root)
			mark_boundary(xs);
		return;
	}
	buf_add(&xs->text, s, (size_t)len);
	over_memory(xs);
}

/* Namespace declarations, counted against max_attrs like attributes. */
static void XMLCALL
on_ns_start(void *ud, const char *prefix, const char *uri)
{
	struct xml_stream *xs = ud;

	if (xs->halted)
		return;
	if (++xs->nsdecls > xs->lim.max_attrs &&
	    (xs->in_root || !xs->trusted_root)) {
		stream_fail(
		    xs, XMLE_TOO_MANY_ATTRS, "too many namespace declarations");
		return;
	}
	if (xs->in_root || xs->replaying)
		return;
	if (uri == NULL)
		uri = "";
	if (prefix == NULL) {
		if (xs->hdr == NULL)
			xs->hdr = arena_new(512);
		xs->default_ns = arena_strdup(xs->hdr, uri);
		buf_adds(&xs->decls, " xmlns=");
	} else {
		buf_printf(&xs->decls, " xmlns:%s=", prefix);
	}
	add_quoted(&xs->decls, uri);
}

/* RFC 6120 §11.1: no DTD, comments, processing instructions. */
static void XMLCALL
on_doctype(void *ud, const char *name, const char *sysid, const char *pubid,
    int has_internal)
{
	stream_fail(ud, XMLE_RESTRICTED, "DOCTYPE not allowed");
}

static void XMLCALL
on_entity_decl(void *ud, const char *name, int is_param, const char *value,
    int value_len, const char *base, const char *sysid, const char *pubid,
    const char *notation)
{
	stream_fail(ud, XMLE_RESTRICTED, "entity declaration not allowed");
}

static void XMLCALL
on_unparsed_entity(void *ud, const char *name, const char *base,
    const char *sysid, const char *pubid, const char *notation)
{
	stream_fail(ud, XMLE_RESTRICTED, "entity declaration not allowed");
}

static void XMLCALL
on_notation(void *ud, const char *name, const char *base, const char *sysid,
    const char *pubid)
{
	stream_fail(ud, XMLE_RESTRICTED, "notation declaration not allowed");
}

static void XMLCALL
on_comment(void *ud, const char *data)
{
	stream_fail(ud, XMLE_RESTRICTED, "comment not allowed");
}

static void XMLCALL
on_pi(void *ud, const char *target, const char *data)
{
	stream_fail(ud, XMLE_RESTRICTED, "processing instruction not allowed");
}

/* RFC 6120 §11.6: the stream is UTF-8 whatever a declaration says. */
static void XMLCALL
on_xmldecl(void *ud, const char *version, const char *encoding, int standalone)
{
	if (encoding != NULL && strcasecmp(encoding, "UTF-8") != 0)
		stream_fail(ud, XMLE_BAD_ENCODING,
		    "encoding other than UTF-8 declared");
}

/* Called with mem_owner == xs. */
static XML_Parser
parser_create(struct xml_stream *xs)
{
	static unsigned long salt;
	XML_Parser p = XML_ParserCreate_MM("UTF-8", &mem_suite, " ");

	if (p == NULL)
		fatalx("xml: cannot create an expat parser");
	/* One random hash salt per process keeps expat's tables safe from
	 * collisions without a getrandom() call per parser. */
	while (salt == 0)
		if (getrandom(&salt, sizeof(salt), 0) != sizeof(salt))
			salt = 0x9e3779b97f4a7c15UL ^ (unsigned long)getpid();
	XML_SetHashSalt(p, salt);
	XML_SetUserData(p, xs);
	XML_SetElementHandler(p, on_start, on_end);
	XML_SetCharacterDataHandler(p, on_text);
	XML_SetStartNamespaceDeclHandler(p, on_ns_start);
	XML_SetStartDoctypeDeclHandler(p, on_doctype);
	XML_SetEntityDeclHandler(p, on_entity_decl);
	XML_SetUnparsedEntityDeclHandler(p, on_unparsed_entity);
	XML_SetNotationDeclHandler(p, on_notation);
	XML_SetCommentHandler(p, on_comment);
	XML_SetProcessingInstructionHandler(p, on_pi);
	XML_SetXmlDeclHandler(p, on_xmldecl);
	XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
#ifdef HAVE_REPARSE_DEFERRAL
	XML_SetReparseDeferralEnabled(p, XML_FALSE);
#else
	if (XML_SetReparseDeferralEnabled != NULL)
		XML_SetReparseDeferralEnabled(p, XML_FALSE);
#endif
	return p;
}

/* Drops everything but the limits and callbacks; mem_owner == xs. */
static void
stream_clear(struct xml_stream *xs)
{
	if (xs->parser != NULL)
		XML_ParserFree(xs->parser);
	xs->parser = NULL;
	if (xs->cur != NULL) {
		while (xs->cur->parent != NULL)
			xs->cur = xs->cur->parent;
		arena_free(xs->cur->arena);
	}
	xs->cur = NULL;
	arena_free(xs->hdr);
	xs->hdr = NULL;
	xs->default_ns = NULL;
	buf_free(&xs->text);
	buf_free(&xs->decls);
	buf_free(&xs->defer);
	xs->lex = LEX_TEXT;
	xs->mem_refused = 0;
	free(xs->replay);
	xs->replay = NULL;
	xs->replay_len = 0;
	xs->status = XMLS_OK;
	xs->error = XMLE_NONE;
	xs->error_text = "no error";
	xs->halted = xs->replaying = xs->compact_now = xs->in_root = 0;
	xs->depth = xs->nsdecls = 0;
	xs->total_fed = xs->boundary = 0;
	xs->nheld = 0;
	xs->idx_adjust = 0;
	xs->compact_at = COMPACT_BYTES;
}

static void set_limits(struct xml_stream *xs, const struct xml_limits *lim);

struct xml_stream *
xml_stream_new(
    const struct xml_limits *lim, const struct xml_stream_cb *cb, void *ctx)
{
	struct xml_stream *xs = xcalloc(1, sizeof(*xs));
	struct xml_stream *prev;

	set_limits(xs, lim);
	if (cb != NULL)
		xs->cb = *cb;
	xs->ctx = ctx;
	prev = mem_enter(xs);
	stream_clear(xs);
	xs->parser = parser_create(xs);
	mem_leave(prev);
	return xs;
}

void
xml_stream_set_limits(struct xml_stream *xs, const struct xml_limits *lim)
{
	set_limits(xs, lim);
}

/* lim (NULL or zero fields: the defaults) into xs->lim. */
static void
set_limits(struct xml_stream *xs, const struct xml_limits *lim)
{
	memset(&xs->lim, 0, sizeof(xs->lim));
	if (lim != NULL)
		xs->lim = *lim;
	if (xs->lim.max_stanza == 0)
		xs->lim.max_stanza = DEFAULT_MAX_STANZA;
	if (xs->lim.max_depth == 0)
		xs->lim.max_depth = DEFAULT_MAX_DEPTH;
	if (xs->lim.max_attrs == 0)
		xs->lim.max_attrs = DEFAULT_MAX_ATTRS;
	if (xs->lim.max_memory == 0)
		xs->lim.max_memory = xs->lim.max_stanza <= SIZE_MAX / 4 ?
		    4 * xs->lim.max_stanza : SIZE_MAX;
	/* A stanza's arena starts with STANZA_ARENA bytes: tiny limits
	 * still take a tiny stanza. */
	if (xs->lim.max_memory < MIN_MEMORY)
		xs->lim.max_memory = MIN_MEMORY;
	xs->expat_max = xs->lim.max_stanza <= (SIZE_MAX - EXPAT_SLACK) / 4 ?
	    4 * xs->lim.max_stanza + EXPAT_SLACK : 0;
}

/* Callbacks must return non-zero rather than free or reset the stream. */
void
xml_stream_free(struct xml_stream *xs)
{
	struct xml_stream *prev;

	if (xs == NULL)
		return;
	if (xs->busy)
		fatalx("xml_stream_free called from a parser callback");
	prev = mem_enter(xs);
	stream_clear(xs);
	mem_leave(prev);
	free(xs);
}

void
xml_stream_reset(struct xml_stream *xs)
{
	struct xml_stream *prev;

	if (xs->busy)
		fatalx("xml_stream_reset called from a parser callback");
	prev = mem_enter(xs);
	stream_clear(xs);
	xs->parser = parser_create(xs);
	mem_leave(prev);
}

/*
 * Replaces a parser grown by earlier stanzas with a fresh one primed with
 * the stream header (its qualified name and namespace declarations); the
 * old one was stopped right after a stanza, at xs->boundary.
 */
static void
stream_compact(struct xml_stream *xs)
{
	XML_Parser old = xs->parser;
	int ok;

	if (old != NULL)
		XML_ParserFree(old);
	xs->parser = parser_create(xs);
	xs->halted = 0;
	xs->replaying = 1;
	xs->in_root = 0;
	ok = XML_Parse(xs->parser, xs->replay, (int)xs->replay_len,
	         XML_FALSE) == XML_STATUS_OK &&
	     xs->in_root && !xs->halted;
	xs->replaying = 0;
	xs->in_root = 1;
	xs->idx_adjust = (int64_t)xs->boundary - (int64_t)xs->replay_len;
	if (!ok) {
		/* A broken invariant: expat accepted this header before. */
		log_warnx("xml: cannot replay the stream header");
		xs->halted = 1;
		xs->status = XMLS_ERROR;
		xs->error = XMLE_NOT_WELL_FORMED;
		xs->error_text = "cannot restart the parser";
		return;
	}
	/* Never compact after every stanza, whatever the header costs. */
	xs->compact_at = COMPACT_BYTES;
	if (xs->expat_bytes + 4096 > xs->compact_at)
		xs->compact_at = xs->expat_bytes + 4096;
}

/*
 * Hands one piece to expat; mem_owner == xs.  After a compaction the rest
 * of the piece, all of it after the boundary, goes to the new parser.
 */
static void
parse_piece(struct xml_stream *xs, const char *data, size_t len)
{
	uint64_t start = xs->total_fed;

	xs->total_fed += len;
	for (;;) {
		enum XML_Status r;
		size_t used;

		r = XML_Parse(xs->parser, data, (int)len, XML_FALSE);
		if (xs->compact_now) {
			xs->compact_now = 0;
			used = (size_t)(xs->boundary - start);
			stream_compact(xs);
			if (xs->status != XMLS_OK || used >= len)
				return;
			data += used;
			len -= used;
			start += used;
			continue;
		}
		if (r == XML_STATUS_ERROR && !xs->halted) {
			enum XML_Error code = XML_GetErrorCode(xs->parser);

			xs->halted = 1;
			xs->status = XMLS_ERROR;
			if (code == XML_ERROR_NO_MEMORY && xs->mem_refused) {
				xs->error = XMLE_TOO_MUCH_MEMORY;
				xs->error_text = "parser memory limit exceeded";
			} else {
				xs->error = XMLE_NOT_WELL_FORMED;
				xs->error_text = code == XML_ERROR_NO_MEMORY ?
				    "out of memory" : XML_ErrorString(code);
			}
		}
		return;
	}
}

/*
 * Expat detects UTF-16 from the first two bytes (a BOM, or a NUL byte) even
 * when told the input is UTF-8, so such a start is refused here: NUL,
 * 0xFE and 0xFF never occur in UTF-8 XML (RFC 6120 §4.9.3.22, §11.6).
 * A lone first byte is held back until the second arrives, so expat never
 * decides on one byte what it would decide otherwise on two.
 */
static int
start_is_utf8(struct xml_stream *xs, const char *data, size_t len)
{
	uint64_t pos = xs->total_fed + buf_avail(&xs->defer) +
	    (uint64_t)xs->nheld;

	for (size_t i = 0; i < len && pos + i < 2; i++) {
		unsigned char c = (unsigned char)data[i];

		if (c == 0x00 || c == 0xFE || c == 0xFF) {
			xs->halted = 1;
			xs->status = XMLS_ERROR;
			xs->error = XMLE_BAD_ENCODING;
			xs->error_text = "stream is not UTF-8 (UTF-16?)";
			return 0;
		}
	}
	return 1;
}

static void
too_big(struct xml_stream *xs)
{
	xs->halted = 1;
	xs->status = XMLS_ERROR;
	xs->error = XMLE_TOO_BIG;
	xs->error_text = "stanza size limit exceeded";
}

/* mem_owner == xs.  In pieces of at most piece bytes. */
static void
feed_pieces(struct xml_stream *xs, const char *data, size_t len,
    size_t piece)
{
	while (len > 0 && xs->status == XMLS_OK) {
		uint64_t used = xs->total_fed - xs->boundary;
		size_t n = len;

		if (used >= xs->lim.max_stanza) {
			too_big(xs);
			break;
		}
		if (n > xs->lim.max_stanza - used)
			n = (size_t)(xs->lim.max_stanza - used);
		if (n > piece)
			n = piece;
		parse_piece(xs, data, n);
		data += n;
		len -= n;
	}
}

/*
 * Runs the lexer (enum lex_state) over data, the input after what it has
 * seen.  Returns where in data an unfinished tag starts that is to be
 * kept back: len when there is none at its end, SIZE_MAX when the one
 * kept back already goes on through all of data.
 */
static size_t
lex_scan(struct xml_stream *xs, const char *data, size_t len)
{
	size_t tag = xs->lex == LEX_TEXT || xs->lex == LEX_PASS ? len :
	    SIZE_MAX;
	size_t i = 0;
	const char *p;

	while (i < len) {
		switch (xs->lex) {
		case LEX_TEXT:
			if ((p = memchr(data + i, '<', len - i)) == NULL) {
				i = len;
				break;
			}
			i = (size_t)(p - data);
			tag = i++;
			xs->lex = LEX_LT;
			break;
		case LEX_LT:
			if (data[i] == '!') {
				i++;
				tag = len;
				xs->lex = LEX_PASS;
			} else {
				xs->lex = LEX_TAG;
				xs->last = '<';
			}
			break;
		case LEX_TAG:
			while (i < len && data[i] != '>' && data[i] != '\'' &&
			    data[i] != '"' && data[i] != '<') {
				if (strchr(" \t\r\n", data[i]) == NULL)
					xs->last = data[i];
				i++;
			}
			if (i == len)
				break;
			if (data[i] == '>') {
				tag = len;
				xs->lex = LEX_TEXT;
			} else if (data[i] == '<' || xs->last != '=') {
				/* Not well-formed (a quote opens a value only
				 * after '='): all of it goes to expat now,
				 * which says so. */
				tag = len;
				xs->lex = LEX_PASS;
			} else {
				xs->quote = data[i];
				xs->lex = LEX_QUOTE;
			}
			i++;
			break;
		case LEX_QUOTE:
			if ((p = memchr(data + i, xs->quote, len - i)) ==
			    NULL) {
				i = len;
				break;
			}
			i = (size_t)(p - data) + 1;
			xs->lex = LEX_TAG;
			xs->last = xs->quote;
			break;
		case LEX_PASS:
			if ((p = memchr(data + i, '>', len - i)) == NULL) {
				i = len;
				break;
			}
			i = (size_t)(p - data) + 1;
			xs->lex = LEX_TEXT;
			break;
		}
	}
	return tag;
}

/*
 * Feeds data, keeping back an unfinished tag at its end; mem_owner == xs.
 * A tag kept back goes to expat in one piece once complete: expat parses
 * it in place, and its buffer keeps only what a token left unfinished.
 */
static void
feed_or_keep(struct xml_stream *xs, const char *data, size_t len)
{
	size_t keep = lex_scan(xs, data, len);
	size_t now = keep == SIZE_MAX ? 0 : keep;

	if (keep == SIZE_MAX) {
		buf_add(&xs->defer, data, len);
	} else {
		if (buf_avail(&xs->defer) > 0) {
			struct buf tag = xs->defer;

			buf_init(&xs->defer);
			feed_pieces(xs, buf_head(&tag), buf_avail(&tag),
			    SIZE_MAX);
			buf_free(&tag);
		}
		feed_pieces(xs, data, now, FEED_PIECE);
		if (xs->status == XMLS_OK && now < len)
			buf_add(&xs->defer, data + now, len - now);
	}
	/* What is kept back counts against the limit as if fed: the error
	 * comes with the first byte beyond it, as it would without. */
	if (xs->status == XMLS_OK && buf_avail(&xs->defer) > 0 &&
	    xs->total_fed - xs->boundary + buf_avail(&xs->defer) >
	    xs->lim.max_stanza)
		too_big(xs);
}

/*
 * The stanza limit is enforced before expat sees the bytes: at most
 * max_stanza bytes are ever fed past the last boundary, so the chunk is
 * fed in pieces and refused as soon as a byte beyond the limit remains.
 */
enum xml_status
xml_stream_feed(struct xml_stream *xs, const char *data, size_t len)
{
	struct xml_stream *prev;

	if (xs->busy)
		fatalx("xml_stream_feed called from a parser callback");
	if (xs->status != XMLS_OK || len == 0)
		return xs->status;
	if (!start_is_utf8(xs, data, len))
		return xs->status;
	if (xs->total_fed == 0 && buf_avail(&xs->defer) == 0 &&
	    xs->nheld == 0 && len == 1) {
		xs->held = data[0];
		xs->nheld = 1;
		return xs->status;
	}
	xs->busy = 1;
	prev = mem_enter(xs);
	if (xs->parser == NULL)
		stream_compact(xs);     /* released while idle: prime anew */
	if (xs->nheld > 0) {
		xs->nheld = 0;
		feed_or_keep(xs, &xs->held, 1);
	}
	feed_or_keep(xs, data, len);
	mem_leave(prev);
	xs->busy = 0;
	return xs->status;
}

int
xml_stream_release(struct xml_stream *xs)
{
	struct xml_stream *prev;

	if (xs->busy)
		fatalx("xml_stream_release called from a parser callback");
	/* Only between stanzas: nothing fed beyond the last boundary, no
	 * element open, and a header to prime the next parser with. */
	if (xs->parser == NULL || xs->status != XMLS_OK || !xs->in_root ||
	    xs->replay == NULL || xs->depth != 0 || xs->nheld != 0 ||
	    xs->total_fed != xs->boundary || xs->cur != NULL ||
	    buf_avail(&xs->defer) != 0)
		return 0;
	prev = mem_enter(xs);
	XML_ParserFree(xs->parser);
	xs->parser = NULL;
	buf_free(&xs->text);
	mem_leave(prev);
	return 1;
}

enum xml_status
xml_stream_open_implicit(struct xml_stream *xs, const char *default_ns)
{
	struct buf hdr = BUF_INIT;
	size_t max_stanza = xs->lim.max_stanza;
	enum xml_status st;

	buf_adds(&hdr, "<stream:stream xmlns=");
	add_quoted(&hdr, default_ns);
	buf_adds(&hdr, " xmlns:stream='" NS_STREAMS "'>");
	xs->trusted_root = 1;
	xs->lim.max_stanza = SIZE_MAX;
	st = xml_stream_feed(xs, hdr.data, hdr.len);
	xs->lim.max_stanza = max_stanza;
	buf_free(&hdr);
	return st;
}

int
xml_stream_at_boundary(const struct xml_stream *xs)
{
	return xs->status == XMLS_OK && xs->in_root && xs->depth == 0 &&
	    xs->cur == NULL && buf_avail(&xs->defer) == 0;
}

enum xml_error
xml_stream_error(const struct xml_stream *xs)
{
	return xs->error;
}

const char *
xml_stream_error_text(const struct xml_stream *xs)
{
	return xs->error_text;
}

size_t
xml_stream_memory(const struct xml_stream *xs)
{
	const struct xel *top = xs->cur;
	size_t n = sizeof(*xs) + xs->expat_bytes + xs->text.cap +
	           xs->decls.cap + xs->replay_len + xs->defer.cap;

	while (top != NULL && top->parent != NULL)
		top = top->parent;
	if (top != NULL)
		n += arena_bytes(top->arena);
	if (xs->hdr != NULL)
		n += arena_bytes(xs->hdr);
	return n;
}

/*
 * Standalone elements.
 */

struct one_element {
	struct xel *el;
	int extra;
};

static int
one_stanza(void *ctx, struct xel *stanza)
{
	struct one_element *oe = ctx;

	if (oe->el != NULL) {
		arena_free(stanza->arena);
		oe->extra = 1;
		return 1;
	}
	oe->el = stanza;
	return 0;
}

/* Wraps data in a stream so exactly the stream parser's rules apply. */
struct xel *
xml_parse_element(const char *data, size_t len, const char *default_ns,
    const struct xml_limits *lim)
{
	static const char close[] = "</stream:stream>";
	struct xml_stream_cb cb = {NULL, one_stanza, NULL};
	struct one_element oe = {NULL, 0};
	struct xml_stream *xs;
	struct buf hdr = BUF_INIT;
	size_t max_stanza;
	int ok;

	buf_adds(&hdr, "<stream:stream");
	if (default_ns != NULL && *default_ns != '\0') {
		buf_adds(&hdr, " xmlns=");
		add_quoted(&hdr, default_ns);
	}
	buf_adds(&hdr, " xmlns:stream='" NS_STREAMS "'>");
	xs = xml_stream_new(lim, &cb, &oe);
	/* Our header is not subject to the limits; the element is. */
	xs->trusted_root = 1;
	max_stanza = xs->lim.max_stanza;
	xs->lim.max_stanza = SIZE_MAX;
	ok = xml_stream_feed(xs, hdr.data, hdr.len) == XMLS_OK;
	xs->lim.max_stanza = max_stanza;
	ok = ok && xml_stream_feed(xs, data, len) == XMLS_OK;
	/* Nor is our closing tag: counted from the end of the element, it
	 * would fail a small one with a tight limit (a stored <vCard/>
	 * parsed with max_stanza len + 1). */
	xs->lim.max_stanza = SIZE_MAX;
	ok = ok &&
	     xml_stream_feed(xs, close, sizeof(close) - 1) == XMLS_CLOSED &&
	     oe.el != NULL && !oe.extra;
	xml_stream_free(xs);
	buf_free(&hdr);
	if (!ok && oe.el != NULL) {
		arena_free(oe.el->arena);
		oe.el = NULL;
	}
	return oe.el;
}

/* The stream error condition (RFC 6120 §4.9.3) for a parse error. */
const char *
xml_error_condition(enum xml_error e)
{
	switch (e) {
	case XMLE_RESTRICTED:
		return "restricted-xml";
	case XMLE_TOO_BIG:
	case XMLE_TOO_MUCH_MEMORY:
	case XMLE_TOO_DEEP:
	case XMLE_TOO_MANY_ATTRS:
		return "policy-violation";
	case XMLE_BAD_ROOT:
		return "invalid-namespace";
	case XMLE_BAD_ENCODING:
		return "unsupported-encoding";    /* RFC 6120 §4.9.3.22 */
	default:
		return "not-well-formed";
	}
}
