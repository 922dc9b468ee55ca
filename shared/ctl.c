/*
 * Control protocol framing (field encoding, line splitting and building,
 * a capped line reader) and the blocking client used by xmppctl and
 * xmpptop.  The protocol itself is specified in ctl.h.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "xmalloc.h"

static const char hexdigits[] = "0123456789ABCDEF";

static int
needs_escape(unsigned char c)
{
	return c <= 0x20 || c == 0x7f || c == '%';
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

enum ctl_type
ctl_name_type(char *name)
{
	static const struct {
		const char *name;
		enum ctl_type type;
	} types[] = {
		{ "int", CTL_T_INT }, { "num", CTL_T_NUM },
		{ "bool", CTL_T_BOOL }, { "time", CTL_T_TIME },
		{ "list", CTL_T_LIST },
	};
	char *colon = strchr(name, ':');

	if (colon == NULL)
		return CTL_T_TEXT;
	*colon = '\0';
	for (size_t i = 0; i < nitems(types); i++)
		if (strcmp(colon + 1, types[i].name) == 0)
			return types[i].type;
	return CTL_T_TEXT;
}

const char *
ctl_connect_hint(int err)
{
	switch (err) {
	case EACCES:
	case EPERM:
		return " (are you in the daemon's control group?)";
	case ENOENT:
	case ECONNREFUSED:
		return " \xe2\x80\x94 is xmppd running?";
	}
	return "";
}

void
ctl_field_encode(struct buf *b, const char *s, size_t len)
{
	size_t start = 0;

	if (len == 0) {
		buf_add(b, "%-", 2);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[3];

		if (!needs_escape(c))
			continue;
		buf_add(b, s + start, i - start);
		esc[0] = '%';
		esc[1] = hexdigits[c >> 4];
		esc[2] = hexdigits[c & 0xf];
		buf_add(b, esc, 3);
		start = i + 1;
	}
	buf_add(b, s + start, len - start);
}

ssize_t
ctl_field_decode(char *s, size_t len)
{
	size_t o = 0;

	if (len == 2 && s[0] == '%' && s[1] == '-') {
		s[0] = '\0';
		return 0;
	}
	if (len == 0)
		return -1;      /* the empty field is "%-" */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (len - i < 3)
				return -1;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi << 4 | lo);
			if (c == 0)
				return -1;
			i += 2;
		} else if (c <= 0x20 || c == 0x7f)
			return -1;      /* must have been escaped */
		s[o++] = (char)c;
	}
	s[o] = '\0';
	return (ssize_t)o;
}

int
ctl_split(char *line, size_t len, char **fields, size_t max)
{
	size_t n = 0, start = 0;

	if (len == 0) {
		line[0] = '\0';
		return 0;
	}
	for (size_t i = 0; i <= len; i++) {
		if (i < len && line[i] != ' ')
			continue;
		if (i == start)
			return CTL_SPLIT_MALFORMED;     /* stray space */
		if (n == max)
			return CTL_SPLIT_TOO_MANY;
		if (ctl_field_decode(line + start, i - start) < 0)
			return CTL_SPLIT_MALFORMED;
		fields[n++] = line + start;
		start = i + 1;
	}
	return (int)n;
}

int
ctl_parse_id(const char *s, uint32_t *id)
{
	unsigned long long v = 0;
	size_t i;

	if (s[0] < '1' || s[0] > '9')
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 10)
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return -1;
	*id = (uint32_t)v;
	return 0;
}

void
ctl_line_start(struct ctl_line *l, struct buf *b)
{
	l->b = b;
	l->start = buf_avail(b);
	l->nfields = 0;
}

void
ctl_line_addn(struct ctl_line *l, const char *s, size_t len)
{
	if (l->nfields++ > 0)
		buf_addc(l->b, ' ');
	ctl_field_encode(l->b, s, len);
}

void
ctl_line_add(struct ctl_line *l, const char *s)
{
	ctl_line_addn(l, s, strlen(s));
}

void
ctl_line_addf(struct ctl_line *l, const char *fmt, ...)
{
	struct buf tmp = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&tmp, fmt, ap);
	va_end(ap);
	ctl_line_addn(l, tmp.data ? tmp.data : "", buf_avail(&tmp));
	buf_free(&tmp);
}

int
ctl_line_end(struct ctl_line *l)
{
	struct buf *b = l->b;

	buf_addc(b, '\n');
	if (buf_avail(b) - l->start <= CTL_LINE_MAX)
		return 0;
	b->len = b->off + l->start;
	b->data[b->len] = '\0';
	if (b->off == b->len)
		b->off = b->len = 0;
	return -1;
}

int
ctl_line_fields(struct buf *b, const char *const *fields, size_t n)
{
	struct ctl_line l;

	ctl_line_start(&l, b);
	for (size_t i = 0; i < n; i++)
		ctl_line_add(&l, fields[i]);
	return ctl_line_end(&l);
}

void
ctl_reader_init(struct ctl_reader *r, size_t max)
{
	buf_init(&r->in);
	r->max = max;
	r->scanned = 0;
	r->taken = 0;
}

void
ctl_reader_free(struct ctl_reader *r)
{
	if (r->in.data != NULL)
		explicit_bzero(r->in.data, r->in.cap);
	buf_free(&r->in);
	r->scanned = r->taken = 0;
}

/* Forget the line handed out last. */
static void
reader_drop_taken(struct ctl_reader *r)
{
	if (r->taken == 0)
		return;
	buf_consume(&r->in, r->taken);
	r->scanned -= r->taken;
	r->taken = 0;
	buf_trim(&r->in);
}

void
ctl_reader_feed(struct ctl_reader *r, const void *p, size_t n)
{
	reader_drop_taken(r);
	buf_add(&r->in, p, n);
}

int
ctl_reader_next(struct ctl_reader *r, char **line, size_t *len)
{
	size_t avail, limit;
	char *head, *nl;

	reader_drop_taken(r);
	avail = buf_avail(&r->in);
	if (avail == 0)
		return 0;
	head = r->in.data + r->in.off;
	/* A line of max bytes has its "\n" at index max - 1 at the latest. */
	limit = avail < r->max ? avail : r->max;
	nl = r->scanned < limit ?
	    memchr(head + r->scanned, '\n', limit - r->scanned) : NULL;
	if (nl == NULL) {
		r->scanned = limit;
		return avail >= r->max ? -1 : 0;
	}
	*nl = '\0';
	*line = head;
	*len = (size_t)(nl - head);
	r->taken = *len + 1;
	r->scanned = r->taken;
	return 1;
}

size_t
ctl_reader_pending(const struct ctl_reader *r)
{
	return buf_avail(&r->in) - r->taken;
}

/* The blocking client. */

static void
client_fail(struct ctl_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
client_fail(struct ctl_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->closed = 1;
}

static int
client_write(struct ctl_client *c, const struct buf *b)
{
	const char *p = buf_head(b);
	size_t left = buf_avail(b);

	while (left > 0) {
		ssize_t n = send(c->fd, p, left, MSG_NOSIGNAL);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			client_fail(c, "writing to the daemon: %s",
			    strerror(errno));
			return CTL_EIO;
		}
		p += n;
		left -= (size_t)n;
	}
	return 0;
}

/* Read more bytes into the reader; 0, or CTL_EIO. */
static int
client_fill(struct ctl_client *c)
{
	char chunk[16384];
	ssize_t n;

	for (;;) {
		if (c->timeout_ms > 0) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
			int r = poll(&pfd, 1, c->timeout_ms);

			if (r == -1 && errno == EINTR)
				continue;
			if (r == 0) {
				client_fail(c, "no answer from the daemon "
				    "within %d ms", c->timeout_ms);
				return CTL_EIO;
			}
		}
		n = read(c->fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		break;
	}
	if (n == 0) {
		client_fail(c, "connection closed by the daemon");
		return CTL_EIO;
	}
	if (n == -1) {
		client_fail(c, "reading from the daemon: %s", strerror(errno));
		return CTL_EIO;
	}
	ctl_reader_feed(&c->rd, chunk, (size_t)n);
	return 0;
}

/* Next line split into c->fields; returns the count or an error. */
static int
client_read_fields(struct ctl_client *c)
{
	char *line;
	size_t len;
	int r, n;

	if (c->closed) {
		if (c->err[0] == '\0')
			snprintf(c->err, sizeof(c->err), "not connected");
		return CTL_EIO;
	}
	while ((r = ctl_reader_next(&c->rd, &line, &len)) == 0) {
		if ((r = client_fill(c)) != 0)
			return r;
	}
	if (r == -1) {
		client_fail(c, "line from the daemon longer than %d bytes",
		    CTL_LINE_MAX);
		return CTL_EPROTO;
	}
	n = ctl_split(line, len, c->fields, CTL_FIELDS_MAX);
	if (n < 2) {
		client_fail(c, "malformed line from the daemon");
		return CTL_EPROTO;
	}
	return n;
}

int
ctl_client_read(struct ctl_client *c, struct ctl_msg *m)
{
	static const struct {
		const char *name;
		enum ctl_msg_kind kind;
	} kinds[] = {
		{ "cols", CTL_MSG_COLS }, { "row", CTL_MSG_ROW },
		{ "ok", CTL_MSG_OK }, { "err", CTL_MSG_ERR },
	};
	int n;

	if ((n = client_read_fields(c)) < 0)
		return n;
	memset(m, 0, sizeof(*m));
	m->kindname = c->fields[1];
	m->fields = c->fields + 2;
	m->nfields = (size_t)n - 2;
	m->kind = CTL_MSG_UNKNOWN;
	if (strcmp(c->fields[0], "*") == 0) {
		if (strcmp(c->fields[1], "event") == 0 && m->nfields > 0)
			m->kind = CTL_MSG_EVENT;
		return 0;
	}
	if (strcmp(c->fields[0], "0") != 0 &&
	    ctl_parse_id(c->fields[0], &m->id) == -1) {
		client_fail(c, "bad request id from the daemon");
		return CTL_EPROTO;
	}
	for (size_t i = 0; i < nitems(kinds); i++)
		if (strcmp(c->fields[1], kinds[i].name) == 0)
			m->kind = kinds[i].kind;
	return 0;
}

int
ctl_client_connect(struct ctl_client *c, const char *path)
{
	struct sockaddr_un sun;
	char buf[32];
	int n, saved;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	ctl_reader_init(&c->rd, CTL_LINE_MAX);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		client_fail(c, "cannot connect to %s: %s", path,
		    strerror(ENAMETOOLONG));
		errno = ENAMETOOLONG;
		return CTL_EIO;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved = errno;
		client_fail(c, "cannot connect to %s: %s", path,
		    strerror(saved));
		errno = saved;
		return CTL_EIO;
	}

	/* "xmppd-ctl VERSION DAEMON-VERSION", or "0 err CODE MESSAGE". */
	if ((n = client_read_fields(c)) < 0)
		return n;
	if (strcmp(c->fields[0], "0") == 0 &&
	    strcmp(c->fields[1], "err") == 0) {
		client_fail(c, "%s", n > 3 ? c->fields[3] :
		    n > 2 ? c->fields[2] : "refused by the daemon");
		return CTL_EPROTO;
	}
	if (strcmp(c->fields[0], CTL_GREETING) != 0) {
		client_fail(c, "%s is not an xmppd control socket", path);
		return CTL_EPROTO;
	}
	{
		char *end;
		long v = strtol(c->fields[1], &end, 10);

		c->protocol = *end == '\0' && v > 0 && v < 1000 ? (int)v : -1;
	}
	c->daemon_version = xstrdup(n > 2 ? c->fields[2] : "");
	if (c->protocol != CTL_PROTOCOL_VERSION) {
		client_fail(c, "the daemon speaks control protocol %s, this "
		    "program speaks %d", c->fields[1], CTL_PROTOCOL_VERSION);
		return CTL_EPROTO;
	}
	snprintf(buf, sizeof(buf), "%d", CTL_PROTOCOL_VERSION);
	{
		const char *hello[] = { "hello", buf };
		struct buf out = BUF_INIT;
		int r;

		ctl_line_fields(&out, hello, 2);
		r = client_write(c, &out);
		buf_free(&out);
		return r;
	}
}

void
ctl_client_close(struct ctl_client *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->closed = 1;
	free(c->daemon_version);
	c->daemon_version = NULL;
	ctl_reader_free(&c->rd);
}

int
ctl_client_send(struct ctl_client *c, const char *const *argv, size_t argc,
    uint32_t *id)
{
	struct ctl_line l;
	struct buf out = BUF_INIT;
	int r;

	if (c->closed) {
		if (c->err[0] == '\0')
			snprintf(c->err, sizeof(c->err), "not connected");
		return CTL_EIO;
	}
	if (c->last_id == UINT32_MAX)
		c->last_id = 0;
	*id = ++c->last_id;
	ctl_line_start(&l, &out);
	ctl_line_addf(&l, "%u", (unsigned)*id);
	for (size_t i = 0; i < argc; i++)
		ctl_line_add(&l, argv[i]);
	if (ctl_line_end(&l) == -1) {
		snprintf(c->err, sizeof(c->err), "request longer than %d bytes",
		    CTL_LINE_MAX);
		buf_free(&out);
		return CTL_EPROTO;
	}
	r = client_write(c, &out);
	/* The request may carry a password. */
	explicit_bzero(out.data, out.cap);
	buf_free(&out);
	return r;
}

/* Copy the terminal line m into res. */
static void
result_fill(struct ctl_result *res, const struct ctl_msg *m)
{
	size_t need = 1;
	char *p;

	memset(res, 0, sizeof(*res));
	res->ok = m->kind == CTL_MSG_OK;
	res->id = m->id;
	for (size_t i = 0; i < m->nfields; i++)
		need += strlen(m->fields[i]) + 1;
	res->mem = p = xmalloc(need);
	*p++ = '\0';
	res->fields = xcalloc(m->nfields + 1, sizeof(char *));
	res->nfields = m->nfields;
	for (size_t i = 0; i < m->nfields; i++) {
		size_t n = strlen(m->fields[i]) + 1;

		memcpy(p, m->fields[i], n);
		res->fields[i] = p;
		p += n;
	}
	res->code = res->message = res->mem;    /* "" */
	if (!res->ok && m->nfields > 0)
		res->code = res->fields[0];
	if (!res->ok && m->nfields > 1)
		res->message = res->fields[1];
}

int
ctl_client_request(struct ctl_client *c, const char *const *argv,
    size_t argc, ctl_msg_fn fn, void *arg, struct ctl_result *res)
{
	struct ctl_msg m;
	uint32_t id;
	int r;

	memset(res, 0, sizeof(*res));
	if ((r = ctl_client_send(c, argv, argc, &id)) != 0)
		return r;
	for (;;) {
		if ((r = ctl_client_read(c, &m)) != 0)
			return r;
		if (m.id == 0 && m.kind == CTL_MSG_ERR) {
			/* About the connection; the daemon closes it. */
			result_fill(res, &m);
			client_fail(c, "%s", res->message);
			return 0;
		}
		if (m.id != id && m.kind != CTL_MSG_EVENT)
			continue;       /* not ours: ignore */
		if (m.kind == CTL_MSG_OK || m.kind == CTL_MSG_ERR) {
			result_fill(res, &m);
			return 0;
		}
		if (fn != NULL && (r = fn(arg, &m)) != 0) {
			client_fail(c, "request abandoned");
			return r;
		}
	}
}

void
ctl_result_free(struct ctl_result *res)
{
	free(res->fields);
	free(res->mem);
	memset(res, 0, sizeof(*res));
}
