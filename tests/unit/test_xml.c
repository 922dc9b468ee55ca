/*
 * Unit tests for shared/xml.c: the element tree, the serializer and the
 * restricted, size-limited stream parser (RFC 6120 §4, §11).
 */
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "xml.h"
#include "unit.h"

#define HDR                                                                    \
	"<stream:stream xmlns='jabber:client' "                                \
	"xmlns:stream='http://etherx.jabber.org/streams' to='example.com' "    \
	"version='1.0'>"

/* Records every callback as one line of text, for exact comparison. */
struct rec {
	struct buf log;
	char dflt[128];
	int nopen, nstanzas, nclose;
	int stop_at;   /* on_stanza returns 1 for this stanza (1-) */
	int stop_open; /* on_open returns 1 */
	int keep;      /* keep the last stanza instead of freeing */
	struct xel *kept;
};

static int
rec_open(void *ctx, struct xel *root, const char *default_ns)
{
	struct rec *r = ctx;

	r->nopen++;
	snprintf(r->dflt, sizeof(r->dflt), "%s", default_ns);
	buf_printf(&r->log, "O[%s]", default_ns);
	xel_serialize(root, &r->log, default_ns);
	buf_addc(&r->log, '\n');
	return r->stop_open;
}

static int
rec_stanza(void *ctx, struct xel *st)
{
	struct rec *r = ctx;

	r->nstanzas++;
	buf_adds(&r->log, "S");
	xel_serialize(st, &r->log, r->dflt);
	buf_addc(&r->log, '\n');
	if (r->keep) {
		if (r->kept != NULL)
			arena_free(r->kept->arena);
		r->kept = st;
	} else
		arena_free(st->arena);
	return r->stop_at == r->nstanzas;
}

static void
rec_close(void *ctx)
{
	struct rec *r = ctx;

	r->nclose++;
	buf_adds(&r->log, "C\n");
}

static const struct xml_stream_cb rec_cb = {rec_open, rec_stanza, rec_close};

static void
rec_init(struct rec *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->log);
	buf_adds(&r->log, "");
}

static void
rec_free(struct rec *r)
{
	if (r->kept != NULL)
		arena_free(r->kept->arena);
	buf_free(&r->log);
}

/* Feeds data in chunks of chunk bytes (0: all at once). */
static enum xml_status
feed_chunked(struct xml_stream *xs, const char *data, size_t len, size_t chunk)
{
	enum xml_status st = XMLS_OK;

	if (chunk == 0)
		return xml_stream_feed(xs, data, len);
	while (len > 0 && st == XMLS_OK) {
		size_t n = len < chunk ? len : chunk;

		st = xml_stream_feed(xs, data, n);
		data += n;
		len -= n;
	}
	return st;
}

/* Parses a whole input with fresh limits; returns the status. */
static enum xml_status
run(const struct xml_limits *lim, const char *data, size_t chunk, struct rec *r,
    enum xml_error *err)
{
	struct xml_stream *xs = xml_stream_new(lim, &rec_cb, r);
	enum xml_status st = feed_chunked(xs, data, strlen(data), chunk);

	*err = xml_stream_error(xs);
	CHECK(xml_stream_error_text(xs) != NULL);
	xml_stream_free(xs);
	return st;
}

static const struct xml_limits big = {1 << 20, 64, 64, 0};

static void
test_header(void)
{
	struct rec r;
	enum xml_error e;
	enum xml_status st;

	rec_init(&r);
	st = run(&big, "<?xml version='1.0'?>\n" HDR "", 0, &r, &e);
	CHECK(st == XMLS_OK);
	CHECK(e == XMLE_NONE);
	CHECK(r.nopen == 1);
	CHECK_STR(buf_head(&r.log), "O[jabber:client]<stream:stream "
	                            "to='example.com' version='1.0'/>\n");
	rec_free(&r);

	/* Attributes and namespaces as seen by on_open. */
	rec_init(&r);
	r.keep = 1;
	st = run(&big,
	    "<stream:stream xmlns='jabber:server' "
	    "xmlns:stream='http://etherx.jabber.org/streams' "
	    "xmlns:db='jabber:server:dialback' from='a.example' "
	    "xml:lang='en' id='x&amp;y'>",
	    1, &r, &e);
	CHECK(st == XMLS_OK);
	CHECK_STR(r.dflt, "jabber:server");
	CHECK_STR(buf_head(&r.log),
	    "O[jabber:server]<stream:stream "
	    "from='a.example' xml:lang='en' id='x&amp;y'/>\n");
	rec_free(&r);

	/* No default namespace declared. */
	rec_init(&r);
	st = run(&big, "<s:stream xmlns:s='http://etherx.jabber.org/streams'>",
	    0, &r, &e);
	CHECK(st == XMLS_OK);
	CHECK_STR(buf_head(&r.log), "O[]<stream:stream/>\n");
	rec_free(&r);

	/* The streams namespace as the default is still a stream header. */
	rec_init(&r);
	st = run(&big,
	    "<stream xmlns='http://etherx.jabber.org/streams'>"
	    "<features/>",
	    0, &r, &e);
	CHECK(st == XMLS_OK);
	CHECK_STR(buf_head(&r.log), "O[http://etherx.jabber.org/streams]"
	                            "<stream:stream/>\nS<stream:features/>\n");
	rec_free(&r);
}

/* Keeps the root's attributes for inspection beyond on_open. */
struct open_check {
	int called;
	int ok;
};

static int
check_open(void *ctx, struct xel *root, const char *default_ns)
{
	struct open_check *oc = ctx;

	oc->called++;
	oc->ok = xel_is(root, "stream", NS_STREAMS) && root->children == NULL &&
	         root->parent == NULL && strcmp(default_ns, NS_CLIENT) == 0 &&
	         strcmp(xel_attr(root, "to"), "example.com") == 0 &&
	         strcmp(xel_attr(root, "version"), "1.0") == 0 &&
	         strcmp(xel_attr_ns(root, NS_XML, "lang"), "fr") == 0 &&
	         xel_attr(root, "lang") == NULL &&
	         xel_attr(root, "xmlns") == NULL &&
	         xel_attr_ns(root, NS_STREAMS, "to") == NULL;
	return 0;
}

static void
test_header_attrs(void)
{
	struct xml_stream_cb cb = {check_open, NULL, NULL};
	struct open_check oc = {0, 0};
	struct xml_stream *xs = xml_stream_new(&big, &cb, &oc);
	const char *s =
	    "<stream:stream xmlns='jabber:client' "
	    "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' "
	    "version='1.0' xml:lang='fr'><message/>";

	CHECK(xml_stream_feed(xs, s, strlen(s)) == XMLS_OK);
	CHECK(oc.called == 1);
	CHECK(oc.ok);
	xml_stream_free(xs);
}

static void
test_tree(void)
{
	struct rec r;
	enum xml_error e;
	struct xel *m, *body, *x, *y, *t;

	rec_init(&r);
	r.keep = 1;
	CHECK(run(&big,
	          HDR "<message to='a@b' type='chat' xml:lang='de'>"
	              "<body>hi &amp; <![CDATA[<bye>]]>\n&#x263A;</body>"
	              "<x xmlns='urn:x'><y a=\"1\"/>tail</x></message>",
	          7, &r, &e) == XMLS_OK);
	m = r.kept;
	CHECK(r.nstanzas == 1);
	if (m == NULL)
		return;
	CHECK(xel_is(m, "message", NS_CLIENT));
	CHECK(m->parent == NULL && m->next == NULL);
	CHECK_STR(xel_attr(m, "to"), "a@b");
	CHECK_STR(xel_attr(m, "type"), "chat");
	CHECK_STR(xel_attr_ns(m, NS_XML, "lang"), "de");
	CHECK(xel_attr(m, "lang") == NULL);
	CHECK(m->attrs != NULL && strcmp(m->attrs->name, "to") == 0 &&
	      m->attrs->ns == NULL);
	CHECK(xel_count_elems(m) == 2);
	body = xel_child(m, "body", NS_CLIENT);
	CHECK(body != NULL && body == xel_first_elem(m));
	CHECK(body != NULL && body->parent == m && body->arena == m->arena);
	/* Adjacent character data, CDATA and references: one text node. */
	t = body ? body->children : NULL;
	CHECK(t != NULL && t->name == NULL && t->next == NULL);
	CHECK(t != NULL && t->textlen == strlen("hi & <bye>\n\xe2\x98\xba"));
	CHECK_STR(xel_text(body), "hi & <bye>\n\xe2\x98\xba");
	x = xel_child(m, "x", NULL);
	CHECK(x != NULL && x == xel_next(body, NULL, NULL));
	CHECK(xel_child(m, "x", NS_CLIENT) == NULL);
	CHECK(xel_child(m, NULL, "urn:x") == x);
	CHECK(x != NULL && strcmp(x->ns, "urn:x") == 0);
	y = xel_child(x, "y", "urn:x");
	CHECK(y != NULL && y->children == NULL);
	CHECK_STR(xel_attr(y, "a"), "1");
	CHECK_STR(xel_text(x), "tail");
	CHECK(x != NULL && x->last != NULL && x->last->name == NULL);
	CHECK(xel_next(x, NULL, NULL) == NULL);
	CHECK_STR(xel_text(m), "");
	rec_free(&r);
}

static void
test_namespaces(void)
{
	struct rec r;
	enum xml_error e;
	struct xel *q;

	rec_init(&r);
	r.keep = 1;
	CHECK(
	    run(&big,
	        HDR
	        "<iq xmlns:p='urn:p' type='get'>"
	        "<p:query p:attr='v' plain='w'><p:item/><item/></p:query></iq>",
	        0, &r, &e) == XMLS_OK);
	CHECK_STR(buf_head(&r.log),
	    "O[jabber:client]<stream:stream "
	    "to='example.com' version='1.0'/>\n"
	    "S<iq type='get'><query xmlns='urn:p' xmlns:p1='urn:p' "
	    "p1:attr='v' plain='w'><item/><item xmlns='jabber:client'/>"
	    "</query></iq>\n");
	q = xel_first_elem(r.kept);
	CHECK(xel_is(q, "query", "urn:p"));
	CHECK_STR(xel_attr_ns(q, "urn:p", "attr"), "v");
	CHECK(xel_attr(q, "attr") == NULL);
	CHECK_STR(xel_attr(q, "plain"), "w");
	CHECK_STR(xel_attr_ns(q, NULL, "plain"), "w");
	CHECK(xel_attr_ns(q, "urn:p", "plain") == NULL);
	CHECK(xel_is(xel_child(q, "item", NULL), "item", "urn:p"));
	CHECK(xel_is(xel_child(q, "item", NS_CLIENT), "item", NS_CLIENT));
	rec_free(&r);

	/* Unqualified elements: xmlns='' undeclares the default. */
	rec_init(&r);
	CHECK(run(&big, HDR "<message><x xmlns=''><y/></x></message>", 0, &r,
	          &e) == XMLS_OK);
	CHECK(strstr(buf_head(&r.log),
	          "S<message><x xmlns=''><y/></x></message>\n") != NULL);
	rec_free(&r);

	/* A prefix for the streams namespace other than "stream". */
	rec_init(&r);
	CHECK(
	    run(&big,
	        "<s:stream xmlns='jabber:client' "
	        "xmlns:s='http://etherx.jabber.org/streams' "
	        "xmlns:stream='urn:other'><s:features><stream:x/></s:features>"
	        "</s:stream>",
	        0, &r, &e) == XMLS_CLOSED);
	CHECK_STR(buf_head(&r.log),
	    "O[jabber:client]<stream:stream/>\n"
	    "S<stream:features><x xmlns='urn:other'/></stream:features>\nC\n");
	rec_free(&r);

	/* The same name in two namespaces through prefixes: duplicate. */
	rec_init(&r);
	CHECK(run(&big, HDR "<a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>", 0,
	          &r, &e) == XMLS_ERROR);
	CHECK(e == XMLE_NOT_WELL_FORMED);
	rec_free(&r);

	/* An undeclared prefix is not namespace-well-formed. */
	rec_init(&r);
	CHECK(run(&big, HDR "<foo:a/>", 0, &r, &e) == XMLS_ERROR);
	CHECK(e == XMLE_NOT_WELL_FORMED);
	CHECK(r.nstanzas == 0);
	rec_free(&r);
}

static void
test_serialize(void)
{
	struct arena *a = arena_new(0);
	struct buf b = BUF_INIT;
	struct xel *m, *x, *s;

	m = xel_new(a, "message", NS_CLIENT);
	xel_set_attr(m, "to", "juliet@example.com");
	xel_set_attr(m, "q", "\"'<>&\t\n\r");
	xel_set_attr_ns(m, NS_XML, "lang", "en");
	xel_text_set(xel_add(m, "body", NULL), "a<b>&c\"'\r\n]]>");
	x = xel_add(m, "x", "urn:x");
	xel_set_attr_ns(x, "urn:a", "one", "1");
	xel_set_attr_ns(x, "urn:b", "two", "2");
	xel_set_attr_ns(x, "urn:a", "three", "3");
	xel_add(x, "y", NULL);
	xel_add(x, "z", "");
	xel_serialize(m, &b, NS_CLIENT);
	CHECK_STR(buf_head(&b),
	    "<message to='juliet@example.com' "
	    "q='&quot;&apos;&lt;&gt;&amp;&#9;&#10;&#13;' xml:lang='en'>"
	    "<body>a&lt;b&gt;&amp;c\"'&#13;\n]]&gt;</body>"
	    "<x xmlns='urn:x' xmlns:p1='urn:a' p1:one='1' xmlns:p2='urn:b' "
	    "p2:two='2' p1:three='3'><y/><z xmlns=''/></x></message>");

	/* Another default in scope: xmlns is written at the top. */
	buf_reset(&b);
	xel_serialize(m, &b, NS_SERVER);
	CHECK(strncmp(buf_head(&b), "<message xmlns='jabber:client' to=", 34) ==
	      0);

	/* Stream elements use the header's prefix; default stays. */
	s = xel_new(a, "error", NS_STREAMS);
	xel_add(xel_add(s, "host-unknown", NS_STREAM_ERR), "x", NULL);
	xel_text_set(xel_add(s, "text", NS_STREAM_ERR), "no");
	xel_add(s, "other", NS_CLIENT);
	buf_reset(&b);
	xel_serialize(s, &b, NS_CLIENT);
	CHECK_STR(buf_head(&b),
	    "<stream:error><host-unknown "
	    "xmlns='urn:ietf:params:xml:ns:xmpp-streams'><x/></host-unknown>"
	    "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no</text>"
	    "<other/></stream:error>");

	/* A text node alone, and an empty element. */
	buf_reset(&b);
	xel_serialize(xel_first_elem(m)->children, &b, NS_CLIENT);
	CHECK_STR(buf_head(&b), "a&lt;b&gt;&amp;c\"'&#13;\n]]&gt;");
	buf_reset(&b);
	xel_serialize(xel_new(a, "ping", "urn:xmpp:ping"), &b, NULL);
	CHECK_STR(buf_head(&b), "<ping xmlns='urn:xmpp:ping'/>");
	buf_reset(&b);
	xel_serialize(xel_new(a, "x", NULL), &b, NULL);
	CHECK_STR(buf_head(&b), "<x/>");

	buf_free(&b);
	arena_free(a);
}

static void
test_builders(void)
{
	struct arena *a = arena_new(0), *a2 = arena_new(0);
	struct buf b = BUF_INIT;
	struct xel *iq, *q, *i1, *i2, *i3, *c, *d;

	iq = xel_new(a, "iq", NS_CLIENT);
	CHECK_STR(iq->ns, NS_CLIENT);
	CHECK(iq->arena == a);
	q = xel_add(iq, "query", "jabber:iq:roster");
	i1 = xel_add(q, "item", NULL);
	CHECK_STR(i1->ns, "jabber:iq:roster");
	xel_text_set(q, "t1");
	i2 = xel_add(q, "item", NULL);
	xel_add_text(q, "t2", 2);
	xel_add_text(q, "t3", 2);
	xel_add_text(q, "", 0);
	i3 = xel_add(q, "other", "urn:o");
	CHECK(xel_count_elems(q) == 3);
	CHECK_STR(xel_text(q), "t1t2t3");
	CHECK(q->last == i3);
	CHECK(xel_child(q, "item", NULL) == i1);
	CHECK(xel_next(i1, "item", NULL) == i2);
	CHECK(xel_next(i2, "item", NULL) == NULL);
	CHECK(xel_next(i1, NULL, "urn:o") == i3);
	CHECK(xel_child(q, NULL, "urn:none") == NULL);
	CHECK(xel_child(NULL, NULL, NULL) == NULL);
	CHECK(xel_is(i3, "other", NULL));
	CHECK(!xel_is(i3, "other", "urn:x"));
	CHECK(!xel_is(NULL, NULL, NULL));

	/* Attributes: replace keeps the position, NULL removes. */
	xel_set_attr(iq, "type", "get");
	xel_set_attr(iq, "id", "1");
	xel_set_attr(iq, "to", "x");
	xel_set_attr(iq, "type", "set");
	xel_set_attr(iq, "id", NULL);
	xel_set_attr(iq, "missing", NULL);
	xel_set_attr_ns(iq, "", "from", "y");
	buf_reset(&b);
	xel_serialize(iq, &b, NS_CLIENT);
	CHECK_STR(buf_head(&b),
	    "<iq type='set' to='x' from='y'><query "
	    "xmlns='jabber:iq:roster'><item/>t1<item/>t2t3<other "
	    "xmlns='urn:o'/></query></iq>");
	CHECK_STR(xel_attr(iq, "from"), "y");

	/* Copy into another arena is deep. */
	c = xel_copy(a2, iq);
	CHECK(c->arena == a2 && c->parent == NULL);
	CHECK(xel_first_elem(c)->arena == a2);
	CHECK(xel_first_elem(c)->parent == c);
	d = xel_append_copy(xel_first_elem(c), i1);
	CHECK(d->parent == xel_first_elem(c) && d->arena == a2);
	CHECK(xel_count_elems(xel_first_elem(c)) == 4);

	/* Remove first, middle and last children. */
	xel_remove(i1);
	CHECK(i1->parent == NULL && q->children != i1);
	xel_remove(i3);
	CHECK(q->last != i3 && q->last->name == NULL);
	xel_remove(i2);
	CHECK(xel_count_elems(q) == 0);
	CHECK_STR(xel_text(q), "t1t2t3");
	buf_reset(&b);
	xel_serialize(iq, &b, NS_CLIENT);
	CHECK_STR(buf_head(&b), "<iq type='set' to='x' from='y'><query "
	                        "xmlns='jabber:iq:roster'>t1t2t3</query></iq>");
	arena_free(a);

	/* The copy survives the original's arena. */
	buf_reset(&b);
	xel_serialize(c, &b, NS_CLIENT);
	CHECK_STR(buf_head(&b),
	    "<iq type='set' to='x' from='y'><query "
	    "xmlns='jabber:iq:roster'><item/>t1<item/>t2t3<other "
	    "xmlns='urn:o'/><item/></query></iq>");

	/* A fitted copy: equal, in one chunk of the size it needs. */
	{
		struct xel *f = xel_copy_fit(c, 0);
		struct buf fb = BUF_INIT;
		size_t one = arena_bytes(f->arena);

		xel_serialize(f, &fb, NS_CLIENT);
		CHECK_STR(buf_head(&fb), buf_head(&b));
		CHECK(f->arena != c->arena);
		/* Fitted: adding to it needs a second chunk at once. */
		xel_set_attr(f, "extra", "value");
		CHECK(arena_bytes(f->arena) > one);
		arena_free(f->arena);
		buf_free(&fb);
	}
	arena_free(a2);
	buf_free(&b);
}

/* Parse, serialize, parse, serialize: the two outputs must be equal. */
static void
test_roundtrip(void)
{
	static const char *const in[] = {
	    "<message xmlns='jabber:client' to='a@b/c' xml:lang='en'>"
	    "<body>x &lt; y &amp;&amp; \"q\" &#13;</body></message>",
	    "<iq type='result' xmlns:a='urn:a' a:k='&#9;&#10;&#13;&apos;'>"
	    "<a:q xmlns='urn:d'><r a:x='1'>t<![CDATA[<&>]]></r>"
	    "</a:q></iq>",
	    "<stream:error xmlns:stream='http://etherx.jabber.org/"
	    "streams'><conflict xmlns='urn:ietf:params:xml:ns:"
	    "xmpp-streams'/></stream:error>",
	    "<x xmlns=''><y xmlns='jabber:client'/></x>",
	    "<a xmlns:xml='http://www.w3.org/XML/1998/namespace'>"
	    "<xml:b xml:c='1'/></a>",
	};

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct xel *e1, *e2;
		struct buf b1 = BUF_INIT, b2 = BUF_INIT;

		e1 = xml_parse_element(in[i], strlen(in[i]), NS_CLIENT, &big);
		CHECK(e1 != NULL);
		if (e1 == NULL)
			continue;
		xel_serialize(e1, &b1, NS_CLIENT);
		e2 = xml_parse_element(b1.data, b1.len, NS_CLIENT, &big);
		CHECK(e2 != NULL);
		if (e2 != NULL) {
			xel_serialize(e2, &b2, NS_CLIENT);
			CHECK_STR(buf_head(&b2), buf_head(&b1));
			arena_free(e2->arena);
		}
		if (i == 0)
			CHECK_STR(buf_head(&b1),
			    "<message to='a@b/c' "
			    "xml:lang='en'><body>x &lt; y &amp;&amp; \"q\" "
			    "&#13;</body></message>");
		if (i == 4)
			CHECK_STR(buf_head(&b1), "<a><xml:b xml:c='1'/></a>");
		if (i == 1)
			CHECK_STR(buf_head(&b1),
			    "<iq type='result' "
			    "xmlns:p1='urn:a' p1:k='&#9;&#10;&#13;&apos;'>"
			    "<q xmlns='urn:a'><r xmlns='urn:d' xmlns:p1="
			    "'urn:a' p1:x='1'>t&lt;&amp;&gt;</r></q></iq>");
		arena_free(e1->arena);
		buf_free(&b1);
		buf_free(&b2);
	}
}

/* Runs a header plus body and expects the given error, in two ways. */
static void
expect_error(const char *doc, enum xml_error want, int line)
{
	for (size_t chunk = 0; chunk <= 1; chunk++) {
		struct rec r;
		enum xml_error e;
		enum xml_status st;

		rec_init(&r);
		st = run(&big, doc, chunk, &r, &e);
		if (st != XMLS_ERROR || e != want)
			fprintf(stderr,
			    "  (from line %d, chunk %zu: status %d "
			    "error %d)\n",
			    line, chunk, st, e);
		CHECK(st == XMLS_ERROR);
		CHECK(e == want);
		CHECK(r.nstanzas == 0);
		rec_free(&r);
	}
}

static void
test_restricted(void)
{
	expect_error("<!DOCTYPE stream>" HDR, XMLE_RESTRICTED, __LINE__);
	expect_error("<?xml version='1.0'?><!DOCTYPE s [<!ENTITY a 'b'>]>" HDR,
	    XMLE_RESTRICTED, __LINE__);
	expect_error("<!DOCTYPE s SYSTEM 'http://example/x.dtd'>" HDR,
	    XMLE_RESTRICTED, __LINE__);
	expect_error(HDR "<!DOCTYPE x>", XMLE_NOT_WELL_FORMED, __LINE__);
	expect_error(HDR "<!ENTITY a 'b'>", XMLE_NOT_WELL_FORMED, __LINE__);
	expect_error("<!-- hi -->" HDR, XMLE_RESTRICTED, __LINE__);
	expect_error(HDR "<!-- keepalive -->", XMLE_RESTRICTED, __LINE__);
	expect_error(
	    HDR "<message><!-- x --></message>", XMLE_RESTRICTED, __LINE__);
	expect_error(
	    "<?xml version='1.0'?><?pi x?>" HDR, XMLE_RESTRICTED, __LINE__);
	expect_error(
	    HDR "<message><?pi x?></message>", XMLE_RESTRICTED, __LINE__);
	expect_error(
	    HDR "<?xml version='1.0'?>", XMLE_NOT_WELL_FORMED, __LINE__);
	/* Undefined entities are not expanded, nor silently skipped. */
	expect_error(
	    HDR "<message>&foo;</message>", XMLE_NOT_WELL_FORMED, __LINE__);
	/* RFC 6120 §11.6: UTF-8 only. */
	expect_error("<?xml version='1.0' encoding='ISO-8859-1'?>" HDR,
	    XMLE_BAD_ENCODING, __LINE__);

	struct rec r;
	enum xml_error e;

	rec_init(&r);
	CHECK(run(&big, "<?xml version='1.0' encoding='utf-8'?>" HDR, 0, &r,
	          &e) == XMLS_OK);
	rec_free(&r);
}

static void
test_not_well_formed(void)
{
	expect_error(HDR "<message><body>\xC3\x28</body></message>",
	    XMLE_NOT_WELL_FORMED, __LINE__);
	expect_error(HDR "<message><body>\xFF</body></message>",
	    XMLE_NOT_WELL_FORMED, __LINE__);
	expect_error(
	    HDR "<message a='\xC0\xAF'/>", XMLE_NOT_WELL_FORMED, __LINE__);
	expect_error(HDR "<message><body>&#0;</body></message>",
	    XMLE_NOT_WELL_FORMED, __LINE__);
	expect_error(HDR "<message><body>\xEF\xBF\xBE</body></message>",
	    XMLE_NOT_WELL_FORMED, __LINE__);
	expect_error(HDR "<message><body>&#xFFFE;</body></message>",
	    XMLE_NOT_WELL_FORMED, __LINE__);
	expect_error(HDR "<message><body>\x01</body></message>",
	    XMLE_NOT_WELL_FORMED, __LINE__);
	expect_error(HDR "<message><body>\xED\xA0\x80</body></message>",
	    XMLE_NOT_WELL_FORMED, __LINE__);
	expect_error(HDR "<message></iq>", XMLE_NOT_WELL_FORMED, __LINE__);
	/* Expat would switch to UTF-16 on these: RFC 6120 §4.9.3.22. */
	expect_error("\xFF\xFE<\0s\0", XMLE_BAD_ENCODING, __LINE__);
	expect_error("\xFE\xFF\0<\0s", XMLE_BAD_ENCODING, __LINE__);
	{
		static const char le[] = "<\0s\0:\0s\0>\0";
		struct xml_stream *x16 = xml_stream_new(&big, NULL, NULL);

		CHECK(xml_stream_feed(x16, le, sizeof(le) - 1) == XMLS_ERROR);
		CHECK(xml_stream_error(x16) == XMLE_BAD_ENCODING);
		xml_stream_reset(x16);
		CHECK(xml_stream_feed(x16, le, 1) == XMLS_OK);
		CHECK(xml_stream_feed(x16, le + 1, 1) == XMLS_ERROR);
		CHECK(xml_stream_error(x16) == XMLE_BAD_ENCODING);
		xml_stream_reset(x16);
		CHECK(xml_stream_feed(x16, "\xBA", 1) == XMLS_OK);
		CHECK(xml_stream_feed(x16, "", 1) == XMLS_ERROR);
		CHECK(xml_stream_error(x16) == XMLE_BAD_ENCODING);
		xml_stream_free(x16);
	}
	/* A UTF-8 byte order mark is fine. */
	{
		struct rec r;
		enum xml_error e;

		rec_init(&r);
		CHECK(
		    run(&big, "\xEF\xBB\xBF" HDR "<a/>", 1, &r, &e) == XMLS_OK);
		CHECK(r.nstanzas == 1);
		rec_free(&r);
	}
	expect_error(
	    HDR "<message a='1' a='2'/>", XMLE_NOT_WELL_FORMED, __LINE__);

	struct xml_stream *xs = xml_stream_new(&big, NULL, NULL);
	const char *bad = HDR "<a>\xFF";

	CHECK(xml_stream_feed(xs, bad, strlen(bad)) == XMLS_ERROR);
	CHECK(xml_stream_error(xs) == XMLE_NOT_WELL_FORMED);
	CHECK_STR(xml_stream_error_text(xs), "not well-formed (invalid token)");
	/* Errors are sticky until reset. */
	CHECK(xml_stream_feed(xs, "<a/>", 4) == XMLS_ERROR);
	xml_stream_reset(xs);
	CHECK(xml_stream_error(xs) == XMLE_NONE);
	CHECK(xml_stream_feed(xs, HDR, strlen(HDR)) == XMLS_OK);
	xml_stream_free(xs);
}

/* A <message/> padded with a body to exactly n bytes. */
static char *
stanza_of(size_t n)
{
	const char *pre = "<message><body>", *post = "</body></message>";
	size_t fixed = strlen(pre) + strlen(post);
	char *s = malloc(n + 1);

	if (n < fixed)
		abort();
	memcpy(s, pre, strlen(pre));
	memset(s + strlen(pre), 'x', n - fixed);
	memcpy(s + n - strlen(post), post, strlen(post));
	s[n] = '\0';
	return s;
}

static void
test_size_limit(void)
{
	static const size_t chunks[] = {0, 1, 3, 7, 100, 4096};
	const struct xml_limits lim = {300, 8, 8, 0};
	char *exact = stanza_of(300), *over = stanza_of(301);
	char *doc;

	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct rec r;
		enum xml_error e;

		/* Two stanzas exactly at the limit, with a keepalive. */
		rec_init(&r);
		doc = malloc(strlen(HDR) + 700);
		sprintf(doc, HDR "%s \n%s", exact, exact);
		CHECK(run(&lim, doc, chunks[i], &r, &e) == XMLS_OK);
		CHECK(e == XMLE_NONE);
		CHECK(r.nstanzas == 2);
		rec_free(&r);

		/* One byte over. */
		rec_init(&r);
		sprintf(doc, HDR "%s", over);
		CHECK(run(&lim, doc, chunks[i], &r, &e) == XMLS_ERROR);
		CHECK(e == XMLE_TOO_BIG);
		CHECK(r.nstanzas == 0);
		rec_free(&r);

		/* Back to back: the second starts right at the boundary. */
		rec_init(&r);
		sprintf(doc, HDR "%s%s", exact, over);
		CHECK(run(&lim, doc, chunks[i], &r, &e) == XMLS_ERROR);
		CHECK(e == XMLE_TOO_BIG);
		CHECK(r.nstanzas == 1);
		rec_free(&r);
		free(doc);
	}

	/* An empty element ends its stanza as well as an end tag does. */
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct rec r;
		enum xml_error e;
		char empty[302];

		memset(empty, 'v', sizeof(empty));
		memcpy(empty, "<a b='", 6);
		memcpy(empty + 297, "'/>", 4);
		doc = malloc(strlen(HDR) + 700);
		sprintf(doc, HDR "%s%s", empty, empty);
		rec_init(&r);
		CHECK(run(&lim, doc, chunks[i], &r, &e) == XMLS_OK);
		CHECK(r.nstanzas == 2);
		rec_free(&r);
		memcpy(empty + 297, "v'/>", 5);
		sprintf(doc, HDR "%s", empty);
		rec_init(&r);
		CHECK(run(&lim, doc, chunks[i], &r, &e) == XMLS_ERROR);
		CHECK(e == XMLE_TOO_BIG);
		CHECK(r.nstanzas == 0);
		rec_free(&r);
		free(doc);
	}

	/* The error comes with the first byte beyond the limit. */
	struct rec r;
	struct xml_stream *xs;

	rec_init(&r);
	xs = xml_stream_new(&lim, &rec_cb, &r);
	CHECK(xml_stream_feed(xs, HDR, strlen(HDR)) == XMLS_OK);
	CHECK(xml_stream_feed(xs, over, 300) == XMLS_OK);
	CHECK(xml_stream_feed(xs, over + 300, 1) == XMLS_ERROR);
	CHECK(xml_stream_error(xs) == XMLE_TOO_BIG);
	CHECK(r.nstanzas == 0);
	xml_stream_free(xs);
	rec_free(&r);

	/* The header itself is limited too (no boundary before it). */
	{
		const struct xml_limits tiny = {40, 8, 8, 0};
		enum xml_error e;

		rec_init(&r);
		CHECK(run(&tiny, HDR, 0, &r, &e) == XMLS_ERROR);
		CHECK(e == XMLE_TOO_BIG);
		CHECK(r.nopen == 0);
		rec_free(&r);
	}
	free(exact);
	free(over);
}

/* Limits changed between stanzas, without a restart (XEP-0388: SASL2
 * success raises the pre-auth limits in place). */
static void
test_set_limits(void)
{
	const struct xml_limits small = {300, 8, 8, 0}, large = {1000, 8, 8, 0};
	char *over = stanza_of(301), *doc;
	struct xml_stream *xs;
	struct rec r;

	rec_init(&r);
	xs = xml_stream_new(&small, &rec_cb, &r);
	CHECK(xml_stream_feed(xs, HDR, strlen(HDR)) == XMLS_OK);
	CHECK(xml_stream_feed(xs, "<a/>", 4) == XMLS_OK);
	xml_stream_set_limits(xs, &large);
	CHECK(xml_stream_feed(xs, over, strlen(over)) == XMLS_OK);
	CHECK(r.nstanzas == 2 && r.nopen == 1);
	xml_stream_set_limits(xs, &small);
	CHECK(xml_stream_feed(xs, over, strlen(over)) == XMLS_ERROR);
	CHECK(xml_stream_error(xs) == XMLE_TOO_BIG);
	xml_stream_free(xs);
	rec_free(&r);
	/* Zero fields are the defaults, as for xml_stream_new. */
	doc = stanza_of(20000);
	rec_init(&r);
	xs = xml_stream_new(&small, &rec_cb, &r);
	CHECK(xml_stream_feed(xs, HDR, strlen(HDR)) == XMLS_OK);
	xml_stream_set_limits(xs, NULL);
	CHECK(xml_stream_feed(xs, doc, strlen(doc)) == XMLS_OK);
	CHECK(r.nstanzas == 1);
	xml_stream_free(xs);
	rec_free(&r);
	free(doc);
	free(over);
}

static void
test_keepalive(void)
{
	const struct xml_limits lim = {150, 8, 8, 0};
	struct rec r;
	struct xml_stream *xs;
	char ws[64];

	memset(ws, ' ', sizeof(ws));
	ws[10] = '\n';
	ws[20] = '\t';
	rec_init(&r);
	xs = xml_stream_new(&lim, &rec_cb, &r);
	CHECK(xml_stream_feed(xs, HDR, strlen(HDR)) == XMLS_OK);
	/* 6400 bytes of whitespace against a 150 byte limit. */
	for (int i = 0; i < 100; i++)
		CHECK(xml_stream_feed(xs, ws, sizeof(ws)) == XMLS_OK);
	CHECK(xml_stream_feed(xs, "<presence/>\n", 12) == XMLS_OK);
	for (int i = 0; i < 100; i++)
		CHECK(xml_stream_feed(xs, ws, sizeof(ws)) == XMLS_OK);
	CHECK(xml_stream_feed(xs, "<a/>", 4) == XMLS_OK);
	CHECK(r.nstanzas == 2);
	CHECK(strstr(buf_head(&r.log), "S<presence/>\nS<a/>\n") != NULL);
	/* Text between stanzas is not part of anything. */
	CHECK(xml_stream_feed(xs, "junk<b/>", 8) == XMLS_OK);
	CHECK(r.nstanzas == 3);
	xml_stream_free(xs);
	rec_free(&r);
}

static void
test_depth_attrs(void)
{
	const struct xml_limits lim = {4096, 3, 2, 0};
	struct rec r;
	enum xml_error e;

	rec_init(&r);
	CHECK(run(&lim, HDR "<a><b><c/></b></a><a x='1' y='2'/>", 0, &r, &e) ==
	      XMLS_OK);
	CHECK(r.nstanzas == 2);
	rec_free(&r);

	rec_init(&r);
	CHECK(run(&lim, HDR "<a><b><c><d/></c></b></a>", 1, &r, &e) ==
	      XMLS_ERROR);
	CHECK(e == XMLE_TOO_DEEP);
	CHECK(r.nstanzas == 0);
	rec_free(&r);

	rec_init(&r);
	CHECK(run(&lim, HDR "<a><b x='1' y='2' z='3'/></a>", 0, &r, &e) ==
	      XMLS_ERROR);
	CHECK(e == XMLE_TOO_MANY_ATTRS);
	rec_free(&r);

	/* xml:lang is an attribute; namespace declarations count apart. */
	rec_init(&r);
	CHECK(run(&lim, HDR "<a x='1' xml:lang='en' y='2'/>", 0, &r, &e) ==
	      XMLS_ERROR);
	CHECK(e == XMLE_TOO_MANY_ATTRS);
	rec_free(&r);

	rec_init(&r);
	CHECK(run(&lim, HDR "<a xmlns='u' xmlns:p='v' x='1' p:y='2'/>", 0, &r,
	          &e) == XMLS_OK);
	CHECK(r.nstanzas == 1);
	rec_free(&r);

	rec_init(&r);
	CHECK(run(&lim, HDR "<a xmlns='u' xmlns:p='v' xmlns:q='w'/>", 0, &r,
	          &e) == XMLS_ERROR);
	CHECK(e == XMLE_TOO_MANY_ATTRS);
	rec_free(&r);

	/* The header is subject to the attribute limit too. */
	rec_init(&r);
	CHECK(run(&lim,
	          "<stream:stream xmlns:stream='http://etherx.jabber.org"
	          "/streams' to='a' version='1.0' xml:lang='en'>",
	          0, &r, &e) == XMLS_ERROR);
	CHECK(e == XMLE_TOO_MANY_ATTRS);
	CHECK(r.nopen == 0);
	rec_free(&r);
}

static void
test_bad_root(void)
{
	static const char *const roots[] = {
	    "<stream:stream xmlns:stream='urn:wrong'>",
	    "<stream xmlns='jabber:client'>",
	    "<stream>",
	    "<s:features xmlns:s='http://etherx.jabber.org/streams'>",
	    "<message xmlns='jabber:client'/>",
	};

	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
		expect_error(roots[i], XMLE_BAD_ROOT, __LINE__);
}

static void
test_stop_reset(void)
{
	struct rec r;
	struct xml_stream *xs;
	const char *s = HDR "<a/><b/><c/>";

	rec_init(&r);
	r.stop_at = 1;
	xs = xml_stream_new(&big, &rec_cb, &r);
	CHECK(xml_stream_feed(xs, s, strlen(s)) == XMLS_STOPPED);
	CHECK(r.nstanzas == 1);
	CHECK(xml_stream_error(xs) == XMLE_NONE);
	/* The rest of the chunk was discarded, and stays so. */
	CHECK(xml_stream_feed(xs, "<d/>", 4) == XMLS_STOPPED);
	CHECK(r.nstanzas == 1);

	/* A stream restart (RFC 6120 §5.4.3.3, §6.4.6) on a fresh parser. */
	xml_stream_reset(xs);
	r.stop_at = 0;
	CHECK(xml_stream_feed(xs, "<?xml version='1.0'?>", 21) == XMLS_OK);
	CHECK(xml_stream_feed(xs, s, strlen(s)) == XMLS_OK);
	CHECK(r.nopen == 2);
	CHECK(r.nstanzas == 4);
	CHECK_STR(buf_head(&r.log),
	    "O[jabber:client]<stream:stream "
	    "to='example.com' version='1.0'/>\nS<a/>\n"
	    "O[jabber:client]<stream:stream to='example.com' version='1.0'/>\n"
	    "S<a/>\nS<b/>\nS<c/>\n");

	/* Reset in the middle of a stanza frees it. */
	CHECK(xml_stream_feed(xs, "<m><n>t", 7) == XMLS_OK);
	xml_stream_reset(xs);
	CHECK(xml_stream_feed(xs, HDR "<z/>", strlen(HDR) + 4) == XMLS_OK);
	CHECK(r.nstanzas == 5);
	xml_stream_free(xs);
	rec_free(&r);

	/* on_open may stop too. */
	rec_init(&r);
	r.stop_open = 1;
	xs = xml_stream_new(&big, &rec_cb, &r);
	CHECK(xml_stream_feed(xs, s, strlen(s)) == XMLS_STOPPED);
	CHECK(r.nopen == 1 && r.nstanzas == 0);
	xml_stream_free(xs);
	rec_free(&r);
}

static void
test_close(void)
{
	struct rec r;
	enum xml_error e;

	rec_init(&r);
	CHECK(run(&big, HDR "<a/> </stream:stream>trailing junk <", 0, &r,
	          &e) == XMLS_CLOSED);
	CHECK(e == XMLE_NONE);
	CHECK(r.nclose == 1 && r.nstanzas == 1);
	CHECK(strstr(buf_head(&r.log), "S<a/>\nC\n") != NULL);
	rec_free(&r);

	rec_init(&r);
	CHECK(run(&big, HDR "</stream:stream>", 1, &r, &e) == XMLS_CLOSED);
	CHECK(r.nclose == 1);
	rec_free(&r);

	/* Closing inside a stanza is a mismatch. */
	rec_init(&r);
	CHECK(run(&big, HDR "<a></stream:stream>", 0, &r, &e) == XMLS_ERROR);
	CHECK(e == XMLE_NOT_WELL_FORMED);
	CHECK(r.nclose == 0);
	rec_free(&r);
}

/* Each stanza is delivered on its last byte, not later. */
static void
test_byte_at_a_time(void)
{
	const char *s =
	    HDR "<message to='x'><body>a&amp;b</body></message>"
	        "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"
	        "<presence/>";
	const char *ends[] = {"</message>", "</iq>", "<presence/>"};
	size_t len = strlen(s), endpos[3];
	struct rec r;
	struct xml_stream *xs;
	int ok = 1;

	for (int i = 0; i < 3; i++)
		endpos[i] = (size_t)(strstr(s, ends[i]) - s) + strlen(ends[i]);
	rec_init(&r);
	xs = xml_stream_new(&big, &rec_cb, &r);
	for (size_t i = 0; i < len; i++) {
		int want = 0;

		CHECK(xml_stream_feed(xs, s + i, 1) == XMLS_OK);
		for (int k = 0; k < 3; k++)
			if (i + 1 >= endpos[k])
				want++;
		if (r.nstanzas != want) {
			ok = 0;
			fprintf(stderr,
			    "  after byte %zu: %d stanzas, want "
			    "%d\n",
			    i + 1, r.nstanzas, want);
			break;
		}
		if (i + 1 == strlen(HDR) && r.nopen != 1)
			ok = 0;
	}
	CHECK(ok);
	CHECK(r.nstanzas == 3);
	CHECK(strstr(buf_head(&r.log), "S<message to='x'><body>a&amp;b</body>"
	                               "</message>\nS<iq type='get' "
	                               "id='1'><ping xmlns='urn:xmpp:ping'/>"
	                               "</iq>\nS<presence/>\n") != NULL);
	xml_stream_free(xs);
	rec_free(&r);
}

/* A 200 KiB stanza trickled in: one piece, delivered on its last byte. */
static void
test_big_stanza(void)
{
	const struct xml_limits lim = {256 * 1024, 8, 8, 0};
	size_t n = 200 * 1024;
	char *body = stanza_of(n);
	char *attr = malloc(n + 1);
	struct rec r;
	struct xml_stream *xs;
	size_t base, peak = 0;

	rec_init(&r);
	r.keep = 1;
	xs = xml_stream_new(&lim, &rec_cb, &r);
	CHECK(xml_stream_feed(xs, HDR, strlen(HDR)) == XMLS_OK);
	base = xml_stream_memory(xs);
	for (size_t off = 0; off < n; off += 1000) {
		size_t k = n - off < 1000 ? n - off : 1000;

		CHECK(xml_stream_feed(xs, body + off, k) == XMLS_OK);
		if (off + k < n && r.nstanzas != 0)
			CHECK(0);
	}
	CHECK(r.nstanzas == 1);
	CHECK(r.kept != NULL &&
	      strlen(xel_text(xel_first_elem(r.kept))) == n - 32);
	CHECK(r.kept != NULL && xel_first_elem(r.kept)->children->next == NULL);

	/* A start tag of 200 KiB, 100 bytes at a time. */
	memcpy(attr, "<a v='", 6);
	memset(attr + 6, 'y', n - 10);
	memcpy(attr + n - 4, "'/> ", 4);
	attr[n] = '\0';
	for (size_t off = 0; off < n - 1; off += 100) {
		size_t k = n - 1 - off < 100 ? n - 1 - off : 100;

		CHECK(xml_stream_feed(xs, attr + off, k) == XMLS_OK);
		if (xml_stream_memory(xs) > peak)
			peak = xml_stream_memory(xs);
		if (off + k < n - 1 && r.nstanzas != 1)
			CHECK(0);
	}
	CHECK(r.nstanzas == 2);
	CHECK(r.kept != NULL && strlen(xel_attr(r.kept, "v")) == n - 10);
	arena_free(r.kept->arena);
	r.kept = NULL;
	/* Memory for the big tag was taken, then released at the boundary. */
	CHECK(peak > n);
	CHECK(xml_stream_memory(xs) < base + 2048);
	fprintf(stderr, "  memory after header %zu, peak %zu, after %zu\n",
	    base, peak, xml_stream_memory(xs));
	/* The stream goes on with the replacement parser. */
	CHECK(xml_stream_feed(xs, " <b xmlns:stream='x'/>", 22) == XMLS_OK);
	CHECK(xml_stream_feed(xs, "<stream:features/>", 18) == XMLS_OK);
	CHECK(xml_stream_feed(xs, "</stream:stream>", 16) == XMLS_CLOSED);
	CHECK(r.nstanzas == 4 && r.nclose == 1);
	CHECK(r.kept != NULL && xel_is(r.kept, "features", NS_STREAMS));
	xml_stream_free(xs);
	rec_free(&r);
	free(body);
	free(attr);
}

static void
test_limit_after_compact(void)
{
	/* Boundaries keep counting across the parser replacement. */
	const struct xml_limits lim = {64 * 1024, 8, 8, 0};
	size_t n = 60 * 1024;
	char *attr = malloc(n + 1);
	char *exact = stanza_of(64 * 1024), *over = stanza_of(64 * 1024 + 1);
	struct rec r;
	struct xml_stream *xs;

	memcpy(attr, "<a v='", 6);
	memset(attr + 6, 'y', n - 9);
	memcpy(attr + n - 3, "'/>", 3);
	rec_init(&r);
	xs = xml_stream_new(&lim, &rec_cb, &r);
	CHECK(xml_stream_feed(xs, HDR, strlen(HDR)) == XMLS_OK);
	CHECK(xml_stream_feed(xs, attr, n) == XMLS_OK);
	CHECK(xml_stream_feed(xs, exact, strlen(exact)) == XMLS_OK);
	CHECK(xml_stream_feed(xs, attr, n) == XMLS_OK);
	CHECK(r.nstanzas == 3);
	CHECK(xml_stream_feed(xs, over, strlen(over)) == XMLS_ERROR);
	CHECK(xml_stream_error(xs) == XMLE_TOO_BIG);
	CHECK(r.nstanzas == 3);
	xml_stream_free(xs);
	rec_free(&r);
	free(attr);
	free(exact);
	free(over);
}

/* Prefixes declared on the header survive the parser replacement. */
static void
test_compact_prefixes(void)
{
	const char *hdr =
	    "<s:stream xmlns:s='http://etherx.jabber.org/streams' "
	    "xmlns='jabber:server' "
	    "xmlns:db='jabber:server:dialback' to='b.example'>";
	size_t n = 40 * 1024;
	char *huge = malloc(n);
	struct rec r;
	struct xml_stream *xs;
	const char *tail = "<db:result from='a'>k</db:result><s:features/>"
	                   "</s:stream>";

	memcpy(huge, "<a v='", 6);
	memset(huge + 6, 'y', n - 9);
	memcpy(huge + n - 3, "'/>", 3);
	rec_init(&r);
	xs = xml_stream_new(NULL, &rec_cb, &r);
	CHECK(xml_stream_feed(xs, hdr, strlen(hdr)) == XMLS_OK);
	CHECK(xml_stream_feed(xs, huge, n) == XMLS_OK);
	CHECK(xml_stream_memory(xs) < 12 * 1024);
	buf_reset(&r.log);
	CHECK(xml_stream_feed(xs, tail, strlen(tail)) == XMLS_CLOSED);
	CHECK_STR(buf_head(&r.log),
	    "S<result xmlns='jabber:server:dialback' from='a'>k</result>\n"
	    "S<stream:features/>\nC\n");
	xml_stream_free(xs);
	rec_free(&r);
	free(huge);
}

static void
test_memory(void)
{
	struct xml_stream *xs = xml_stream_new(NULL, NULL, NULL);
	size_t m0 = xml_stream_memory(xs), m1;

	CHECK(m0 > 1000);
	CHECK(xml_stream_feed(xs, HDR, strlen(HDR)) == XMLS_OK);
	m1 = xml_stream_memory(xs);
	CHECK(m1 > m0);
	/* An idle session's parser stays small. */
	CHECK(m1 < 12 * 1024);
	fprintf(stderr, "  memory: new %zu, after header %zu\n", m0, m1);
	xml_stream_free(xs);

	/*
	 * Expat interns every new element and attribute name for the life of
	 * the parser; the parser is replaced now and then so this stays
	 * bounded, even when no read ever ends at a stanza boundary.
	 */
	struct rec r;
	char piece[64];
	size_t peak = 0;

	rec_init(&r);
	xs = xml_stream_new(NULL, &rec_cb, &r);
	CHECK(xml_stream_feed(xs, HDR "<", strlen(HDR) + 1) == XMLS_OK);
	for (int i = 0; i < 5000; i++) {
		int n = snprintf(piece, sizeof(piece),
		    "x%d xmlns='urn:%d' "
		    "a%d='1'/>\n<",
		    i, i, i);

		CHECK(xml_stream_feed(xs, piece, (size_t)n) == XMLS_OK);
		if (xml_stream_memory(xs) > peak)
			peak = xml_stream_memory(xs);
		if (i % 100 == 0)
			buf_reset(&r.log);
	}
	CHECK(r.nstanzas == 5000);
	CHECK(peak < 20 * 1024);
	fprintf(stderr, "  memory: peak %zu over 5000 new names\n", peak);
	CHECK(xml_stream_feed(xs, "b/>", 3) == XMLS_OK);
	CHECK(r.nstanzas == 5001);
	CHECK(strstr(buf_head(&r.log), "S<x4999 xmlns='urn:4999' a4999='1'/>\n"
	                               "S<b/>\n") != NULL);
	xml_stream_free(xs);
	rec_free(&r);
}

/* An idle stream gives its parser back and parses on as before. */
static void
test_release(void)
{
	struct rec r;
	struct xml_stream *xs;
	size_t held, released;
	const char *p = "<presence xmlns:p='urn:p'><p:x/></presence>";

	rec_init(&r);
	xs = xml_stream_new(&big, &rec_cb, &r);
	CHECK(xml_stream_feed(xs, HDR, strlen(HDR)) == XMLS_OK);
	CHECK(xml_stream_feed(xs, "<message><bo", 12) == XMLS_OK);
	CHECK(xml_stream_release(xs) == 0);     /* inside a stanza */
	CHECK(xml_stream_feed(xs, "dy>a</body></message> ", 22) == XMLS_OK);
	held = xml_stream_memory(xs);
	CHECK(xml_stream_release(xs) == 1);
	released = xml_stream_memory(xs);
	CHECK(released + 4096 < held);
	CHECK(xml_stream_release(xs) == 0);     /* already released */
	CHECK(xml_stream_feed(xs, p, strlen(p)) == XMLS_OK);
	CHECK(r.nstanzas == 2);
	CHECK(strstr(r.log.data, "S<presence><x xmlns='urn:p'/></presence>\n")
	    != NULL);
	CHECK(xml_stream_release(xs) == 1);
	CHECK(xml_stream_feed(xs, "</stream:stream>", 16) == XMLS_CLOSED);
	CHECK(r.nclose == 1);
	xml_stream_free(xs);
	rec_free(&r);
}

static void
test_parse_element(void)
{
	struct xel *el;
	struct buf b = BUF_INIT;
	const char *s;

	s = "<message to='a'><body>hi</body></message>";
	el = xml_parse_element(s, strlen(s), NS_CLIENT, NULL);
	CHECK(el != NULL);
	if (el != NULL) {
		CHECK(xel_is(el, "message", NS_CLIENT));
		CHECK(el->parent == NULL && el->next == NULL);
		CHECK_STR(xel_text(xel_child(el, "body", NS_CLIENT)), "hi");
		xel_serialize(el, &b, NS_SERVER);
		CHECK_STR(buf_head(&b), "<message xmlns='jabber:client' "
		                        "to='a'><body>hi</body></message>");
		arena_free(el->arena);
	}
	/* A limit that just fits the element is enough, however small:
	 * what closes the stream around it is not counted. */
	{
		struct xml_limits tight = {0};

		s = "<vCard/>";
		tight.max_stanza = strlen(s) + 1;
		tight.max_depth = 8;
		tight.max_attrs = 8;
		tight.max_memory = SIZE_MAX;
		el = xml_parse_element(s, strlen(s), "vcard-temp", &tight);
		CHECK(el != NULL && xel_is(el, "vCard", "vcard-temp"));
		if (el != NULL)
			arena_free(el->arena);
		tight.max_stanza = strlen(s) - 1;
		el = xml_parse_element(s, strlen(s), "vcard-temp", &tight);
		CHECK(el == NULL);
	}
	/* Surrounding whitespace is fine; no default namespace. */
	s = "\n <x xmlns:stream='urn:y'><stream:y/></x> \n";
	el = xml_parse_element(s, strlen(s), NULL, NULL);
	CHECK(el != NULL);
	if (el != NULL) {
		CHECK(xel_is(el, "x", ""));
		CHECK(xel_is(xel_first_elem(el), "y", "urn:y"));
		arena_free(el->arena);
	}
	s = "<stream:error><conflict/></stream:error>";
	el = xml_parse_element(s, strlen(s), NS_STREAM_ERR, NULL);
	CHECK(xel_is(el, "error", NS_STREAMS));
	CHECK(xel_is(xel_first_elem(el), "conflict", NS_STREAM_ERR));
	if (el != NULL)
		arena_free(el->arena);

	static const char *const bad[] = {
	    "",
	    "   ",
	    "text",
	    "<a/><b/>",
	    "<a/>x<b/>",
	    "<a>",
	    "<a></b>",
	    "<a/></stream:stream>",
	    "</stream:stream><stream:stream>",
	    "<a/><!-- c -->",
	    "<?pi?><a/>",
	    "<a>&lt;<![CDATA[",
	    "<!DOCTYPE a><a/>",
	    "<a>\xFF</a>",
	    "<?xml version='1.0'?><a/>",
	    "<a/><",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		el = xml_parse_element(bad[i], strlen(bad[i]), NS_CLIENT, NULL);
		if (el != NULL)
			fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
		CHECK(el == NULL);
		if (el != NULL)
			arena_free(el->arena);
	}

	/* The limits apply. */
	const struct xml_limits lim = {64, 2, 1, 0};

	s = "<a><b/></a>";
	el = xml_parse_element(s, strlen(s), NS_CLIENT, &lim);
	CHECK(el != NULL);
	if (el != NULL)
		arena_free(el->arena);
	s = "<a><b><c/></b></a>";
	CHECK(xml_parse_element(s, strlen(s), NS_CLIENT, &lim) == NULL);
	s = "<a x='1' y='2'/>";
	CHECK(xml_parse_element(s, strlen(s), NS_CLIENT, &lim) == NULL);
	{
		char *big64 = stanza_of(65);

		CHECK(xml_parse_element(big64, 65, NS_CLIENT, &lim) == NULL);
		big64[64] = '\0';
		free(big64);
		big64 = stanza_of(64);
		el = xml_parse_element(big64, 64, NS_CLIENT, &lim);
		CHECK(el != NULL);
		if (el != NULL)
			arena_free(el->arena);
		free(big64);
	}
	buf_free(&b);
}

/* A callback may parse something else: memory accounting is per stream. */
static int
nested_stanza(void *ctx, struct xel *st)
{
	struct xel *el = xml_parse_element("<n/>", 4, NS_CLIENT, NULL);
	int *count = ctx;

	if (el != NULL) {
		(*count)++;
		arena_free(el->arena);
	}
	arena_free(st->arena);
	return 0;
}

static void
test_nested(void)
{
	struct xml_stream_cb cb = {NULL, nested_stanza, NULL};
	int count = 0;
	struct xml_stream *xs = xml_stream_new(&big, &cb, &count);
	size_t m;

	CHECK(xml_stream_feed(xs, HDR, strlen(HDR)) == XMLS_OK);
	m = xml_stream_memory(xs);
	for (int i = 0; i < 50; i++)
		CHECK(xml_stream_feed(xs, "<a/>", 4) == XMLS_OK);
	CHECK(count == 50);
	CHECK(xml_stream_memory(xs) < m + 1024);
	xml_stream_free(xs);
}

/*
 * The memory a stanza takes once parsed is capped (max_memory): markup
 * that costs a node per few bytes ("x<a/>" repeated, about 35 times its
 * size) ends with XMLE_TOO_MUCH_MEMORY well inside the size limit, while
 * text as large as the size limit still fits in the default of 4x.
 */
static void
test_memory_cap(void)
{
	const struct xml_limits lim = {16 * 1024, 8, 8, 32 * 1024};
	struct buf doc = BUF_INIT;
	struct rec r;
	enum xml_error e;
	enum xml_status st;
	char *text;

	buf_adds(&doc, HDR "<message>");
	while (buf_avail(&doc) < 15 * 1024)
		buf_adds(&doc, "x<a/>");
	buf_adds(&doc, "</message>");
	for (size_t chunk = 0; chunk <= 1; chunk++) {
		rec_init(&r);
		st = run(&lim, buf_head(&doc), chunk, &r, &e);
		CHECK(st == XMLS_ERROR);
		CHECK(e == XMLE_TOO_MUCH_MEMORY);
		CHECK(r.nstanzas == 0);
		rec_free(&r);
	}
	/* The same markup in a stanza of a quarter of it: under 32 KiB
	 * once parsed, delivered. */
	buf_reset(&doc);
	buf_adds(&doc, HDR "<message>");
	for (int i = 0; i < 150; i++)
		buf_adds(&doc, "x<a/>");
	buf_adds(&doc, "</message>");
	rec_init(&r);
	CHECK(run(&lim, buf_head(&doc), 0, &r, &e) == XMLS_OK);
	CHECK(r.nstanzas == 1);
	rec_free(&r);
	/* 1 MiB of text in a stanza limit of 1 MiB and the default memory
	 * (4 MiB): delivered whole. */
	text = stanza_of(1 << 20);
	buf_reset(&doc);
	buf_adds(&doc, HDR);
	buf_add(&doc, text, 1 << 20);
	{
		const struct xml_limits mib = {1 << 20, 8, 8, 0};

		rec_init(&r);
		CHECK(run(&mib, buf_head(&doc), 0, &r, &e) == XMLS_OK);
		CHECK(r.nstanzas == 1);
		rec_free(&r);
	}
	free(text);
	buf_free(&doc);
}

/*
 * A tag that arrives a byte at a time is kept back until its '>' and
 * parsed once: the stream's parse work stays linear (checked by counting
 * what expat was handed, which is every byte once), the tag's stanza is
 * still delivered on its last byte, a '>' inside a quoted value does not
 * end the tag, and the size limit counts what is kept back.
 */
static void
test_kept_back_tag(void)
{
	const struct xml_limits lim = {64 * 1024, 8, 8, 0};
	const char *tag = "<message to='a>b' id=\"q'uote\" xmlns:x='urn:x'"
	    " x:y='1'>";
	struct rec r;
	struct xml_stream *xs;
	struct buf grow = BUF_INIT;

	rec_init(&r);
	xs = xml_stream_new(&lim, &rec_cb, &r);
	CHECK(xml_stream_feed(xs, HDR, strlen(HDR)) == XMLS_OK);
	for (size_t i = 0; tag[i] != '\0'; i++)
		CHECK(xml_stream_feed(xs, tag + i, 1) == XMLS_OK);
	CHECK(xml_stream_feed(xs, "<body>hi</body></message", 24) ==
	    XMLS_OK);
	CHECK(r.nstanzas == 0);
	CHECK(xml_stream_feed(xs, ">", 1) == XMLS_OK);
	CHECK(r.nstanzas == 1);
	CHECK(strstr(buf_head(&r.log), "to='a&gt;b'") != NULL);
	CHECK(strstr(buf_head(&r.log), "id='q&apos;uote'") != NULL);
	/* A '<' inside a tag is not kept back: expat sees it and says the
	 * stream is not well-formed without waiting for a '>'. */
	{
		struct xml_stream *bad = xml_stream_new(&lim, &rec_cb, &r);

		CHECK(xml_stream_feed(bad, HDR, strlen(HDR)) == XMLS_OK);
		CHECK(xml_stream_feed(bad, "<message><", 10) == XMLS_OK);
		CHECK(xml_stream_feed(bad, "<", 1) == XMLS_ERROR);
		CHECK(xml_stream_error(bad) == XMLE_NOT_WELL_FORMED);
		xml_stream_free(bad);
		/* Nor a quote that does not follow '=' (no attribute value
		 * can start there): "<'/>" is refused at once. */
		bad = xml_stream_new(&lim, &rec_cb, &r);
		CHECK(xml_stream_feed(bad, HDR, strlen(HDR)) == XMLS_OK);
		CHECK(xml_stream_feed(bad, "<'/>", 4) == XMLS_ERROR);
		xml_stream_free(bad);
		/* ... while "a = 'x'" with spaces is still a value. */
		bad = xml_stream_new(&lim, &rec_cb, &r);
		CHECK(xml_stream_feed(bad, HDR, strlen(HDR)) == XMLS_OK);
		CHECK(xml_stream_feed(bad, "<m a = '>", 9) == XMLS_OK);
		CHECK(xml_stream_feed(bad, "'/>", 3) == XMLS_OK);
		xml_stream_free(bad);
	}
	/* A start tag that grows past the limit a byte at a time: the error
	 * with the first byte beyond it, not only when '>' comes. */
	buf_adds(&grow, "<message a='");
	while (buf_avail(&grow) < 64 * 1024 + 1)
		buf_addc(&grow, 'x');
	for (size_t i = 0; i < buf_avail(&grow); i++)
		if (xml_stream_feed(xs, buf_head(&grow) + i, 1) != XMLS_OK) {
			CHECK(i == 64 * 1024);   /* the first byte over */
			break;
		}
	CHECK(xml_stream_error(xs) == XMLE_TOO_BIG);
	xml_stream_free(xs);
	rec_free(&r);
	buf_free(&grow);
}

int
main(void)
{
	test_header();
	test_header_attrs();
	test_tree();
	test_namespaces();
	test_serialize();
	test_builders();
	test_roundtrip();
	test_restricted();
	test_not_well_formed();
	test_size_limit();
	test_set_limits();
	test_keepalive();
	test_depth_attrs();
	test_bad_root();
	test_stop_reset();
	test_close();
	test_byte_at_a_time();
	test_big_stanza();
	test_limit_after_compact();
	test_memory();
	test_compact_prefixes();
	test_release();
	test_parse_element();
	test_nested();
	test_memory_cap();
	test_kept_back_tag();
	return UNIT_DONE("xml");
}
