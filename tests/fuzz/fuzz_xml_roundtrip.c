/*
 * Fuzzes the serializer against the parser: a stream is parsed, its
 * stanzas serialized into a new stream, that is parsed and serialized
 * again, and the two serializations must be identical byte for byte.
 * Also checks xml_parse_element() and xel_copy() give the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "xml.h"

static const struct xml_limits lim = {1 << 30, 256, 256, 0};

struct pass {
	struct buf out;  /* the stanzas, serialized back to back */
	struct buf dflt; /* default namespace of the header */
	int opened;
	int nstanzas;
	int check; /* also check parse_element and copy */
};

static int
p_open(void *ctx, struct xel *root, const char *default_ns)
{
	struct pass *p = ctx;

	p->opened = 1;
	buf_reset(&p->dflt);
	buf_adds(&p->dflt, default_ns);
	return 0;
}

/* The same stanza through xml_parse_element() and a copy. */
static void
check_stanza(struct xel *st, const char *dflt, const char *ser, size_t len)
{
	struct buf b = BUF_INIT;
	struct arena *a;
	struct xel *el;

	el = xml_parse_element(ser, len, dflt, &lim);
	if (el == NULL)
		abort();
	xel_serialize(el, &b, dflt);
	if (b.len != len || memcmp(b.data, ser, len) != 0)
		abort();
	arena_free(el->arena);

	a = arena_new(0);
	el = xel_copy(a, st);
	buf_reset(&b);
	xel_serialize(el, &b, dflt);
	if (b.len != len || memcmp(b.data, ser, len) != 0)
		abort();
	arena_free(a);
	buf_free(&b);
}

static int
p_stanza(void *ctx, struct xel *st)
{
	struct pass *p = ctx;
	const char *dflt = p->dflt.data ? p->dflt.data : "";
	size_t start = p->out.len;

	p->nstanzas++;
	xel_serialize(st, &p->out, dflt);
	if (p->check)
		check_stanza(st, dflt, p->out.data + start, p->out.len - start);
	arena_free(st->arena);
	return 0;
}

static const struct xml_stream_cb p_cb = {p_open, p_stanza, NULL};

static enum xml_status
parse(const char *data, size_t size, struct pass *p)
{
	struct xml_stream *xs = xml_stream_new(&lim, &p_cb, p);
	enum xml_status st = xml_stream_feed(xs, data, size);

	xml_stream_free(xs);
	return st;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pass p1, p2;
	struct buf doc = BUF_INIT;
	enum xml_status st;

	memset(&p1, 0, sizeof(p1));
	memset(&p2, 0, sizeof(p2));
	p1.check = 1;
	parse((const char *)data, size, &p1);
	if (!p1.opened)
		goto out;

	buf_adds(&doc, "<stream:stream xmlns='");
	if (p1.dflt.len > 0)
		buf_add_xml_escaped(&doc, p1.dflt.data, p1.dflt.len, 1);
	buf_adds(&doc, "' xmlns:stream='" NS_STREAMS "'>");
	if (p1.out.len > 0)
		buf_add(&doc, p1.out.data, p1.out.len);
	buf_adds(&doc, "</stream:stream>");
	st = parse(doc.data, doc.len, &p2);
	if (st != XMLS_CLOSED || p2.nstanzas != p1.nstanzas ||
	    p2.out.len != p1.out.len ||
	    (p1.out.len > 0 &&
	        memcmp(p1.out.data, p2.out.data, p1.out.len) != 0))
		abort();
out:
	buf_free(&doc);
	buf_free(&p1.out);
	buf_free(&p1.dflt);
	buf_free(&p2.out);
	buf_free(&p2.dflt);
	return 0;
}
