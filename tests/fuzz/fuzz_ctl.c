/*
 * libFuzzer target for the control protocol framing: arbitrary bytes go
 * through the line reader (fed in chunks chosen by the input, with a small
 * and the real line cap), every line through the splitter, and every
 * decoded field is re-encoded and must decode to the same bytes.  The
 * whole input is also decoded as a single field.  Aborts on a broken
 * invariant; see tests/fuzz/corpus/ctl/ for seeds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "xmalloc.h"

static void
check_line(const char *line, size_t len)
{
	char *copy = xmalloc(len + 1), *again;
	char *fields[CTL_FIELDS_MAX], *fields2[CTL_FIELDS_MAX];
	struct buf out = BUF_INIT;
	uint32_t id;
	int n, n2;

	memcpy(copy, line, len);
	copy[len] = '\0';
	n = ctl_split(copy, len, fields, CTL_FIELDS_MAX);
	if (n > 0)
		(void)ctl_parse_id(fields[0], &id);
	if (n >= 0) {
		/* Re-encoding gives a line that splits into the same fields;
		 * it is no longer than the original. */
		if (ctl_line_fields(&out, (const char *const *)fields,
		    (size_t)n) != 0)
			abort();
		if (n > 0 && buf_avail(&out) > len + 1)
			abort();
		again = buf_strdup(&out);
		n2 = ctl_split(again, n > 0 ? buf_avail(&out) - 1 : 0,
		    fields2, CTL_FIELDS_MAX);
		if (n2 != n)
			abort();
		for (int i = 0; i < n; i++)
			if (strcmp(fields[i], fields2[i]) != 0)
				abort();
		free(again);
		buf_free(&out);
	}
	free(copy);
}

static void
run_reader(const uint8_t *data, size_t size, size_t max)
{
	struct ctl_reader r;
	size_t off = 0, step;
	char *line;
	size_t len;
	int res = 0;

	ctl_reader_init(&r, max);
	step = size > 0 ? (size_t)data[0] % 17 + 1 : 1;
	while (off < size && res != -1) {
		size_t n = size - off < step ? size - off : step;

		ctl_reader_feed(&r, data + off, n);
		off += n;
		while ((res = ctl_reader_next(&r, &line, &len)) == 1) {
			if (len + 1 > max || memchr(line, '\n', len) != NULL ||
			    line[len] != '\0')
				abort();
			check_line(line, len);
		}
		/* A partial line never grows past the cap unnoticed. */
		if (res == 0 && ctl_reader_pending(&r) >= max)
			abort();
		step = step * 3 % 31 + 1;
	}
	ctl_reader_free(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	ssize_t n;

	run_reader(data, size, 64);
	run_reader(data, size, CTL_LINE_MAX);

	/* The whole input as one field: decode, then encode and decode. */
	s = xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	n = ctl_field_decode(s, size);
	if (n >= 0) {
		struct buf b = BUF_INIT;
		char *w;

		if (strlen(s) != (size_t)n)
			abort();
		ctl_field_encode(&b, s, (size_t)n);
		w = buf_strdup(&b);
		if (ctl_field_decode(w, buf_avail(&b)) != n ||
		    memcmp(w, s, (size_t)n) != 0)
			abort();
		free(w);
		buf_free(&b);
	}
	free(s);
	return 0;
}
