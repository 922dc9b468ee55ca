/*
 * XML for XMPP: an element tree kept in a per-stanza arena, a serializer
 * that re-creates namespace declarations, and a streaming parser wrapping
 * expat with the stream's restrictions (RFC 6120 §11: no DTD, entity
 * declarations, comments or processing instructions) and hard limits on
 * stanza size, depth and attribute count, enforced in our read path.
 */
#ifndef SHARED_XML_H
#define SHARED_XML_H

#include <stddef.h>

#include "arena.h"
#include "buf.h"

#define NS_STREAMS   "http://etherx.jabber.org/streams"
#define NS_CLIENT    "jabber:client"
#define NS_SERVER    "jabber:server"
#define NS_XML       "http://www.w3.org/XML/1998/namespace"
#define NS_STREAM_ERR "urn:ietf:params:xml:ns:xmpp-streams"
#define NS_STANZA_ERR "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_TLS       "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL      "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND      "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION   "urn:ietf:params:xml:ns:xmpp-session"

struct xattr {
	struct xattr *next;
	const char *ns;     /* NULL for an unqualified attribute */
	const char *name;   /* local name */
	const char *value;
};

/* An element, or a text node when name == NULL. */
struct xel {
	struct xel *next;       /* next sibling */
	struct xel *parent;
	struct xel *children;   /* first child (element or text) */
	struct xel *last;       /* last child */
	const char *name;       /* local name; NULL for text */
	const char *ns;         /* namespace URI ("" if none) */
	struct xattr *attrs;
	const char *text;       /* text nodes only */
	size_t textlen;
	struct arena *arena;    /* arena everything here was allocated in */
};

/* Building: all strings are copied into the element's arena. */
struct xel *xel_new(struct arena *a, const char *name, const char *ns);
/* Child element; ns NULL inherits the parent's namespace. */
struct xel *xel_add(struct xel *parent, const char *name, const char *ns);
void xel_add_text(struct xel *el, const char *text, size_t len);
/* Appends a text child and returns el, for chaining. */
struct xel *xel_text_set(struct xel *el, const char *text);
/* Set (replace) an unqualified attribute; value NULL removes it. */
void xel_set_attr(struct xel *el, const char *name, const char *value);
void xel_set_attr_ns(struct xel *el, const char *ns, const char *name,
    const char *value);
/* Deep copy of src (and its subtree) into arena a, parent NULL. */
struct xel *xel_copy(struct arena *a, const struct xel *src);
/* A copy in a new arena of just the size it needs plus spare bytes, for
 * copies kept long (a session's presence); free with arena_free(). */
struct xel *xel_copy_fit(const struct xel *src, size_t spare);
/* Move-append: deep copies src as the last child of parent. */
struct xel *xel_append_copy(struct xel *parent, const struct xel *src);
void xel_remove(struct xel *child);      /* unlinks from its parent */

/* Reading. */
const char *xel_attr(const struct xel *el, const char *name);
const char *xel_attr_ns(const struct xel *el, const char *ns,
    const char *name);
/* First child element with this name (NULL: any) in ns (NULL: any). */
struct xel *xel_child(const struct xel *el, const char *name, const char *ns);
/* Next sibling element after c matching name/ns (NULL: any). */
struct xel *xel_next(const struct xel *c, const char *name, const char *ns);
struct xel *xel_first_elem(const struct xel *el);
int xel_count_elems(const struct xel *el);
/* Concatenated text of direct text children, in the arena; "" if none. */
const char *xel_text(const struct xel *el);
int xel_is(const struct xel *el, const char *name, const char *ns);

/*
 * Serialize el and its subtree, appending to out.  parent_ns is the default
 * namespace in scope where it is written (e.g. NS_CLIENT inside a c2s
 * stream): xmlns is emitted only where an element's namespace differs.
 * Elements in NS_STREAMS are written with the "stream:" prefix, relying on
 * the stream header's declaration.  Namespaced attributes other than xml:
 * get generated prefixes.  Text and attribute values are escaped.
 */
void xel_serialize(const struct xel *el, struct buf *out,
    const char *parent_ns);

/* Streaming parser. */

struct xml_limits {
	size_t max_stanza;      /* bytes from one stanza boundary to the next */
	unsigned max_depth;     /* element depth below the stream root */
	unsigned max_attrs;     /* attributes per element */
	size_t max_memory;      /* bytes the stanza being read may take once
	                           parsed: its tree (elements, attributes,
	                           text) and its text not yet in the tree; 0:
	                           4 x max_stanza; at least 8 KiB.  Expat's own allocations
	                           for the stream are refused past
	                           4 x max_stanza + 64 KiB. */
};

enum xml_error {
	XMLE_NONE,
	XMLE_NOT_WELL_FORMED,   /* includes invalid UTF-8, illegal chars */
	XMLE_RESTRICTED,        /* DOCTYPE, entity decl, comment, PI */
	XMLE_TOO_BIG,           /* stanza size limit */
	XMLE_TOO_MUCH_MEMORY,   /* max_memory, or expat's share, exceeded */
	XMLE_TOO_DEEP,
	XMLE_TOO_MANY_ATTRS,
	XMLE_BAD_ROOT,          /* root element is not a stream header in
	                           NS_STREAMS (or bad namespace) */
	XMLE_BAD_ENCODING,      /* XML declaration names an encoding other
	                           than UTF-8 (RFC 6120 §11.6) */
};

struct xml_stream_cb {
	/*
	 * The stream header (depth 0 start tag); root has attributes but no
	 * children, and its ns is the header's own namespace; default_ns
	 * is the default namespace declared on it ("" if none).  Return 0 to
	 * go on, non-zero to stop parsing.  root and default_ns are freed when
	 * on_open returns: copy what is needed.
	 */
	int (*on_open)(void *ctx, struct xel *root, const char *default_ns);
	/*
	 * A complete top-level child of the stream.  The callee owns
	 * stanza->arena and must arena_free() it (or keep it).  Return 0 to go
	 * on, non-zero to stop parsing: the rest of the fed chunk is discarded
	 * and xml_stream_feed() returns XMLS_STOPPED.
	 */
	int (*on_stanza)(void *ctx, struct xel *stanza);
	/* The stream's closing tag. */
	void (*on_close)(void *ctx);
};

/*
 * Callbacks must not call xml_stream_feed(), xml_stream_reset() or
 * xml_stream_free() on their own stream (that is fatal); they return
 * non-zero instead and the caller resets or frees after the feed returns.
 * A status other than XMLS_OK sticks until xml_stream_reset().
 */
enum xml_status { XMLS_OK, XMLS_STOPPED, XMLS_CLOSED, XMLS_ERROR };

struct xml_stream;

/* lim NULL, or any zero field: 64 KiB stanzas, depth 32, 64 attributes,
 * memory 4 x max_stanza. */
struct xml_stream *xml_stream_new(const struct xml_limits *lim,
    const struct xml_stream_cb *cb, void *ctx);
void xml_stream_free(struct xml_stream *xs);
/* Change the limits of a stream without a restart (XEP-0388: after SASL2
 * success the stream goes on with the authenticated limits); they apply
 * from the next stanza on. */
void xml_stream_set_limits(struct xml_stream *xs,
    const struct xml_limits *lim);
/* Discard all state and start a fresh expat parser (stream restart). */
void xml_stream_reset(struct xml_stream *xs);
/*
 * Feed bytes.  Callbacks run from inside.  Returns XMLS_ERROR with the
 * reason in xml_stream_error() (and a short text for logs), XMLS_CLOSED
 * after the closing tag, XMLS_STOPPED if a callback asked to stop.  Every
 * complete token in the data is processed before return (expat's reparse
 * deferral is disabled where the library has it); the bytes of a tag that
 * is not complete yet are kept here until its '>' arrives, so a tag
 * dribbled in byte by byte is parsed once, not once per byte.
 */
enum xml_status xml_stream_feed(struct xml_stream *xs, const char *data,
    size_t len);
/*
 * Between stanzas, free the expat parser (about 9 KiB) of an idle stream;
 * the next feed creates a fresh one primed with the stream header, so
 * parsing goes on unchanged.  Returns 1 if released, 0 if the stream is
 * not at a stanza boundary (or already released).
 */
int xml_stream_release(struct xml_stream *xs);
/*
 * Open a new stream with a header of our own instead of the peer's (RFC
 * 7395: over WebSocket the stream is implicit and each message is one
 * element): a stream root with default_ns as its default namespace, not
 * subject to the limits.  on_open runs for it.  Returns the feed's
 * status.
 */
enum xml_status xml_stream_open_implicit(struct xml_stream *xs,
    const char *default_ns);
/* Whether everything fed so far is complete top-level elements: no
 * element or tag is open. */
int xml_stream_at_boundary(const struct xml_stream *xs);
enum xml_error xml_stream_error(const struct xml_stream *xs);
const char *xml_stream_error_text(const struct xml_stream *xs);
/* The RFC 6120 stream error condition for e: "not-well-formed",
 * "restricted-xml", "policy-violation" (the limits), "invalid-namespace",
 * "unsupported-encoding". */
const char *xml_error_condition(enum xml_error e);
/* Bytes of memory held by the parser (for accounting). */
size_t xml_stream_memory(const struct xml_stream *xs);

/*
 * Parse one complete standalone element (no stream around it, e.g. a stored
 * stanza) into a new arena, with the same restrictions.  default_ns is the
 * namespace assumed for unprefixed elements without xmlns.  Returns NULL
 * on any error.
 */
struct xel *xml_parse_element(const char *data, size_t len,
    const char *default_ns, const struct xml_limits *lim);

#endif
