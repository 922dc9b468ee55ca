/*
 * Fuzzes the XMPP stream parser: the input is fed at once, one byte at a
 * time and in chunk sizes derived from it, and all three must report the
 * same stanzas and outcome; then again under small limits with stops and
 * resets, as a robustness test.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "xml.h"

struct trace {
	struct buf log; /* what the callbacks saw, serialized */
	char dflt[256];
	int nstanzas;
	int stop_every; /* on_stanza asks to stop every N (0: never) */
	int stop_open;  /* on_open asks to stop */
};

static int
t_open(void *ctx, struct xel *root, const char *default_ns)
{
	struct trace *t = ctx;

	if (!xel_is(root, "stream", NS_STREAMS) || root->children != NULL)
		abort();
	strncpy(t->dflt, default_ns, sizeof(t->dflt) - 1);
	buf_printf(&t->log, "O[%s]", default_ns);
	xel_serialize(root, &t->log, default_ns);
	buf_addc(&t->log, '\n');
	return t->stop_open;
}

static int
t_stanza(void *ctx, struct xel *st)
{
	struct trace *t = ctx;

	if (st->name == NULL || st->parent != NULL || st->next != NULL)
		abort();
	t->nstanzas++;
	buf_addc(&t->log, 'S');
	xel_serialize(st, &t->log, t->dflt);
	buf_addc(&t->log, '\n');
	/* Exercise the readers on whatever arrived. */
	(void)xel_text(st);
	(void)xel_count_elems(st);
	(void)xel_child(st, NULL, NS_CLIENT);
	(void)xel_attr_ns(st, NS_XML, "lang");
	arena_free(st->arena);
	return t->stop_every != 0 && t->nstanzas % t->stop_every == 0;
}

static void
t_close(void *ctx)
{
	struct trace *t = ctx;

	buf_adds(&t->log, "C\n");
}

static const struct xml_stream_cb t_cb = {t_open, t_stanza, t_close};

static uint64_t
prng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * Feeds data in chunks: 0 all at once, 1 one byte at a time, else sizes
 * from the generator.  Appends the outcome to the trace.
 */
static void
run(const struct xml_limits *lim, const uint8_t *data, size_t size, int how,
    uint64_t seed, struct trace *t)
{
	struct xml_stream *xs = xml_stream_new(lim, &t_cb, t);
	enum xml_status st = XMLS_OK;
	size_t off = 0;

	while (off < size && st == XMLS_OK) {
		size_t n = size - off;

		if (how == 1)
			n = 1;
		else if (how == 2)
			n = 1 +
			    (size_t)(prng(&seed) % (prng(&seed) & 1 ? 8 : 700));
		if (n > size - off)
			n = size - off;
		st = xml_stream_feed(xs, (const char *)data + off, n);
		off += n;
	}
	if (xml_stream_memory(xs) == 0 || xml_stream_error_text(xs) == NULL)
		abort();
	buf_printf(&t->log, "=%d/%d\n", (int)st, (int)xml_stream_error(xs));
	xml_stream_free(xs);
}

/* Small limits, callback stops and stream restarts: must not crash. */
static void
run_restarts(const uint8_t *data, size_t size, uint64_t seed)
{
	struct xml_limits lim = {
	    16 + (size_t)(prng(&seed) % 512),
	    1 + (unsigned)(prng(&seed) % 8),
	    1 + (unsigned)(prng(&seed) % 8),
	    0,
	};
	struct trace t;
	struct xml_stream *xs;
	size_t off = 0;
	int restarts = 0;

	memset(&t, 0, sizeof(t));
	t.stop_every = 1 + (int)(prng(&seed) % 3);
	t.stop_open = (prng(&seed) & 7) == 0;
	xs = xml_stream_new(&lim, &t_cb, &t);
	while (off < size) {
		size_t n = 1 + (size_t)(prng(&seed) % 64);
		enum xml_status st;

		if (n > size - off)
			n = size - off;
		st = xml_stream_feed(xs, (const char *)data + off, n);
		off += n;
		if (st != XMLS_OK) {
			if (++restarts > 64)
				break;
			xml_stream_reset(xs);
		}
		/* Nothing but the parser itself is held between reads. */
		if (xml_stream_memory(xs) > 64 * lim.max_stanza + 64 * 1024)
			abort();
	}
	xml_stream_free(xs);
	buf_free(&t.log);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = 1469598103934665603ULL;
	struct trace t[3];
	struct xml_limits lim;
	struct xel *el;

	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 1099511628211ULL;
	h |= 1;
	/* No size limit here: where a boundary falls may depend on chunks. */
	lim.max_stanza = 1 << 30;
	lim.max_depth = (h & 3) == 0 ? 2 + (unsigned)(h >> 8) % 4 : 64;
	lim.max_attrs = (h & 12) == 0 ? 1 + (unsigned)(h >> 16) % 4 : 64;
	lim.max_memory = 0;
	for (int i = 0; i < 3; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		run(&lim, data, size, i, h, &t[i]);
	}
	for (int i = 1; i < 3; i++)
		if (t[i].log.len != t[0].log.len ||
		    memcmp(t[i].log.data, t[0].log.data, t[0].log.len) != 0)
			abort();
	for (int i = 0; i < 3; i++)
		buf_free(&t[i].log);

	run_restarts(data, size, h);

	el = xml_parse_element((const char *)data, size, NS_CLIENT, NULL);
	if (el != NULL) {
		struct buf b = BUF_INIT;

		xel_serialize(el, &b, NS_CLIENT);
		buf_free(&b);
		arena_free(el->arena);
	}
	return 0;
}
