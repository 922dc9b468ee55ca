/*
 * HTTP/1.1 request parsing on top of http-parser (see http_parse.h):
 * collecting the target, fields and body of one request under our
 * limits, and the Host / Forwarded helpers.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/http_parse.h"
#include "xmalloc.h"

static int check_field_names(const struct http_msg *m);

static int
fail(struct http_parse *hp, int status)
{
	if (hp->status == 0)
		hp->status = status;
	return -1;
}

static int
on_message_begin(http_parser *p)
{
	struct http_parse *hp = p->data;

	hp->begun = 1;
	return 0;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
	struct http_parse *hp = p->data;

	hp->begun = 1;
	hp->header_bytes += len;
	/* RFC 9112 §3: a target longer than the server parses is 414. */
	if (hp->header_bytes > hp->header_max)
		return fail(hp, 414);
	buf_add(&hp->text, at, len);
	return 0;
}

/* Count the bytes of a field piece; trailers count but are not kept. */
static int
field_bytes(struct http_parse *hp, size_t len)
{
	hp->header_bytes += len;
	if (hp->header_bytes > hp->header_max)
		return fail(hp, 431);   /* RFC 6585 §5 */
	return 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_parse *hp = p->data;

	if (field_bytes(hp, len) == -1)
		return -1;
	if (hp->headers_done)
		return 0;
	if (hp->in_value || hp->noffs == 0) {
		/* A new field: end the previous value (or the target). */
		if (hp->noffs / 2 >= hp->fields_max)
			return fail(hp, 431);
		buf_addc(&hp->text, '\0');
		if (hp->noffs + 2 > hp->capoffs) {
			hp->capoffs = hp->capoffs ? hp->capoffs * 2 : 32;
			hp->offs = xreallocarray(hp->offs, hp->capoffs,
			    sizeof(*hp->offs));
		}
		hp->offs[hp->noffs++] = hp->text.len;
		hp->offs[hp->noffs++] = 0;
		hp->in_value = 0;
	}
	buf_add(&hp->text, at, len);
	return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_parse *hp = p->data;

	if (field_bytes(hp, len) == -1)
		return -1;
	if (hp->headers_done)
		return 0;
	if (!hp->in_value) {
		buf_addc(&hp->text, '\0');
		hp->offs[hp->noffs - 1] = hp->text.len;
		hp->in_value = 1;
	}
	/* RFC 9112 §5.2: a server rejects obs-fold (or replaces it); and
	 * RFC 9110 §5.5: CR, LF and NUL are never field content. */
	for (size_t i = 0; i < len; i++)
		if (at[i] == '\r' || at[i] == '\n' || at[i] == '\0')
			return fail(hp, 400);
	buf_add(&hp->text, at, len);
	return 0;
}

static char *
trim(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

/* The fields are all in: point the message at them and let the caller
 * decide. */
static int
on_headers_complete(http_parser *p)
{
	struct http_parse *hp = p->data;
	struct http_msg *m = &hp->msg;
	int st;

	buf_addc(&hp->text, '\0');
	hp->headers_done = 1;
	m->method_id = p->method;
	m->method = http_method_str((enum http_method)p->method);
	m->major = p->http_major;
	m->minor = p->http_minor;
	m->target = hp->text.data;
	m->nfields = hp->noffs / 2;
	m->fields = xreallocarray(NULL, m->nfields ? m->nfields : 1,
	    sizeof(*m->fields));
	for (size_t i = 0; i < m->nfields; i++) {
		m->fields[i].name = hp->text.data + hp->offs[2 * i];
		m->fields[i].value = hp->offs[2 * i + 1] ?
		    trim(hp->text.data + hp->offs[2 * i + 1]) : "";
	}
	m->keep_alive = http_should_keep_alive(p);
	m->has_body = (p->flags & F_CHUNKED) != 0 ||
	    (p->content_length != ULLONG_MAX && p->content_length > 0);
	m->content_length = (p->flags & F_CHUNKED) == 0 &&
	    p->content_length != ULLONG_MAX &&
	    p->content_length <= INT64_MAX ? (int64_t)p->content_length : -1;
	/* RFC 9110 §2.5, RFC 9112 §2.3: HTTP/1.x only; 505 for a later
	 * major version.  No version at all (HTTP/0.9) is no request-line
	 * of ours. */
	if (m->major == 0)
		return fail(hp, 400);
	if (m->major != 1)
		return fail(hp, 505);
	if (check_field_names(m) == -1)
		return fail(hp, 400);
	if (m->target[0] == '\0')
		return fail(hp, 400);
	hp->body_max = 0;
	st = hp->on_headers != NULL ? hp->on_headers(hp->arg, m,
	    &hp->body_max) : 0;
	if (st != 0) {
		if (m->has_body)
			return fail(hp, st);
		hp->refused = st;
	}
	/* RFC 9110 §15.5.14: refuse a body known to be too large before
	 * reading it. */
	if ((p->flags & F_CHUNKED) == 0 && p->content_length != ULLONG_MAX &&
	    p->content_length > hp->body_max)
		return fail(hp, 413);
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
	struct http_parse *hp = p->data;

	if (hp->body_seen + len > hp->body_max)
		return fail(hp, 413);
	hp->body_seen += len;
	buf_add(&hp->body, at, len);
	return 0;
}

static int
on_message_complete(http_parser *p)
{
	struct http_parse *hp = p->data;

	hp->msg.upgrade = p->upgrade;
	hp->msg.body = buf_avail(&hp->body) ? buf_head(&hp->body) : "";
	hp->msg.body_len = buf_avail(&hp->body);
	hp->done = 1;
	/* One request at a time: the next one waits in the caller's
	 * buffer until this one is answered (RFC 9112 §9.3.2). */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

static void
reset(struct http_parse *hp)
{
	buf_reset(&hp->line);
	hp->line_no = 0;
	hp->line_len = 0;
	hp->scan_done = 0;
	buf_reset(&hp->text);
	buf_free(&hp->body);
	free(hp->msg.fields);
	memset(&hp->msg, 0, sizeof(hp->msg));
	hp->noffs = 0;
	hp->header_bytes = 0;
	hp->body_max = 0;
	hp->body_seen = 0;
	hp->in_value = hp->headers_done = hp->begun = 0;
	hp->status = hp->refused = hp->done = 0;
}

void
http_parse_init(struct http_parse *hp, size_t header_max,
    unsigned fields_max, http_headers_fn on_headers, void *arg)
{
	memset(hp, 0, sizeof(*hp));
	http_parser_init(&hp->p, HTTP_REQUEST);
	hp->p.data = hp;
	hp->header_max = header_max;
	hp->fields_max = fields_max;
	hp->on_headers = on_headers;
	hp->arg = arg;
}

void
http_parse_free(struct http_parse *hp)
{
	reset(hp);
	buf_free(&hp->text);
	buf_free(&hp->line);
	free(hp->offs);
	hp->offs = NULL;
	hp->capoffs = 0;
}

void
http_parse_next(struct http_parse *hp)
{
	reset(hp);
	if (HTTP_PARSER_ERRNO(&hp->p) == HPE_PAUSED)
		http_parser_pause(&hp->p, 0);
	if (hp->text.cap > 4 * hp->header_max)
		buf_free(&hp->text);
}

/* tchar (RFC 9110 §5.6.2). */
static int
tchar(int ch)
{
	return isalnum(ch) || (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch));
}

/*
 * RFC 9112 §3: request-line = method SP request-target SP HTTP-version,
 * one SP each, a target of visible ASCII, "HTTP/" DIGIT "." DIGIT.
 * http-parser accepts runs of spaces and more; we do not (§3 lets a
 * server answer 400 to an invalid request-line).
 */
static int
check_request_line(const char *l, size_t n)
{
	size_t i = 0, t;

	while (i < n && tchar((unsigned char)l[i]))
		i++;
	if (i == 0 || i == n || l[i] != ' ')
		return -1;
	t = ++i;
	while (i < n && (unsigned char)l[i] > 0x20 &&
	    (unsigned char)l[i] < 0x7f)
		i++;
	if (i == t || i == n || l[i] != ' ')
		return -1;
	i++;
	if (n - i != 8 || strncmp(l + i, "HTTP/", 5) != 0 ||
	    !isdigit((unsigned char)l[i + 5]) || l[i + 6] != '.' ||
	    !isdigit((unsigned char)l[i + 7]))
		return -1;
	return 0;
}

/*
 * Our pass over the bytes of the request line and fields (before
 * http-parser sees them): the request line's grammar, and obs-fold (a
 * field line starting with SP or HTAB: RFC 9112 §5.2 lets a server
 * reject it, and http-parser would join it silently).  Leading empty
 * lines are skipped (§2.2).  -1 with the status set.
 */
static int
prescan(struct http_parse *hp, const char *data, size_t len)
{
	for (size_t i = 0; i < len && !hp->scan_done; i++) {
		unsigned char ch = (unsigned char)data[i];

		if (ch == '\n') {
			if (hp->line_no == 0 && hp->line_len == 0)
				continue;
			if (hp->line_len == 0) {
				hp->scan_done = 1;
				break;
			}
			if (hp->line_no == 0 && check_request_line(
			    buf_head(&hp->line), buf_avail(&hp->line)) == -1)
				return fail(hp, 400);
			hp->line_no++;
			hp->line_len = 0;
			continue;
		}
		if (ch == '\r')
			continue;
		if (hp->line_len == 0 && hp->line_no > 0 &&
		    (ch == ' ' || ch == '\t'))
			return fail(hp, 400);
		hp->line_len++;
		if (hp->line_no == 0) {
			if (hp->line_len > hp->header_max + 32)
				return fail(hp, 414);
			buf_addc(&hp->line, (char)ch);
		}
	}
	return 0;
}

/* RFC 9110 §5.1, RFC 9112 §5.1: a field name is a token, and no
 * whitespace comes between it and the colon. */
static int
check_field_names(const struct http_msg *m)
{
	for (size_t i = 0; i < m->nfields; i++) {
		const char *n = m->fields[i].name;

		if (*n == '\0')
			return -1;
		for (; *n; n++)
			if (!tchar((unsigned char)*n))
				return -1;
	}
	return 0;
}

enum http_parse_result
http_parse_feed(struct http_parse *hp, const char *data, size_t len,
    size_t *used)
{
	enum http_errno e;

	*used = 0;
	if (hp->status != 0)
		return HTTP_PARSE_ERROR;
	if (hp->done)
		return HTTP_PARSE_DONE;
	if (len == 0)
		return HTTP_PARSE_MORE;
	if (prescan(hp, data, len) == -1)
		return HTTP_PARSE_ERROR;
	*used = http_parser_execute(&hp->p, &settings, data, len);
	e = HTTP_PARSER_ERRNO(&hp->p);
	if (hp->done && (e == HPE_OK || e == HPE_PAUSED))
		return HTTP_PARSE_DONE;
	if (e == HPE_OK && hp->p.upgrade == 0 && *used == len)
		return HTTP_PARSE_MORE;
	if (hp->status == 0)
		hp->status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
	return HTTP_PARSE_ERROR;
}

const char *
http_msg_field(const struct http_msg *m, const char *name)
{
	for (size_t i = 0; i < m->nfields; i++)
		if (strcasecmp(m->fields[i].name, name) == 0)
			return m->fields[i].value;
	return NULL;
}

size_t
http_msg_field_count(const struct http_msg *m, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < m->nfields; i++)
		n += strcasecmp(m->fields[i].name, name) == 0;
	return n;
}

/* RFC 3986 §3.2.2 reg-name: unreserved / pct-encoded / sub-delims; we
 * take the DNS subset (letters, digits, '-', '.', '_'). */
static int
reg_name_char(int ch)
{
	return isalnum(ch) || ch == '-' || ch == '.' || ch == '_';
}

int
http_host_parse(const char *value, char *host, size_t len, int *is_ip)
{
	const char *end, *port;
	unsigned char a[16];
	size_t n;

	*is_ip = 0;
	if (value[0] == '[') {
		/* IP-literal: "[" IPv6address "]" (no IPvFuture). */
		if ((end = strchr(value, ']')) == NULL)
			return -1;
		n = (size_t)(end - value - 1);
		if (n == 0 || n >= len)
			return -1;
		memcpy(host, value + 1, n);
		host[n] = '\0';
		if (inet_pton(AF_INET6, host, a) != 1)
			return -1;
		*is_ip = 1;
		port = end + 1;
	} else {
		for (n = 0; value[n] != '\0' && value[n] != ':'; n++)
			if (!reg_name_char((unsigned char)value[n]))
				return -1;
		if (n == 0 || n >= len)
			return -1;
		for (size_t i = 0; i < n; i++)
			host[i] = (char)tolower((unsigned char)value[i]);
		host[n] = '\0';
		*is_ip = inet_pton(AF_INET, host, a) == 1;
		port = value + n;
	}
	if (*port == '\0')
		return 0;
	if (*port != ':')
		return -1;
	/* port = *DIGIT (RFC 3986 §3.2.3); at most 5 of them. */
	for (n = 1; port[n] != '\0'; n++)
		if (!isdigit((unsigned char)port[n]) || n > 5)
			return -1;
	return 0;
}

/* A numeric address from a node of Forwarded (RFC 7239 §6: IPv4, or a
 * quoted "[IPv6]", either with an optional port) or of X-Forwarded-For
 * (an address, perhaps with a port after IPv4 or in brackets). */
static int
node_address(const char *s, size_t n, char *out, size_t len)
{
	char tmp[INET6_ADDRSTRLEN + 16];
	unsigned char a[16];
	char *colon;

	while (n > 0 && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
		s++, n -= 2;
	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (tmp[0] == '[') {
		char *close = strchr(tmp, ']');

		if (close == NULL)
			return -1;
		*close = '\0';
		memmove(tmp, tmp + 1, strlen(tmp + 1) + 1);
	} else if ((colon = strchr(tmp, ':')) != NULL &&
	    strchr(colon + 1, ':') == NULL)
		*colon = '\0';      /* IPv4 with a port */
	if (inet_pton(AF_INET, tmp, a) == 1) {
		inet_ntop(AF_INET, a, out, (socklen_t)len);
		return 0;
	}
	if (inet_pton(AF_INET6, tmp, a) == 1) {
		inet_ntop(AF_INET6, a, out, (socklen_t)len);
		/* conn.c names IPv4-mapped peers as IPv4: so do we. */
		if (strncmp(out, "::ffff:", 7) == 0 && strchr(out, '.'))
			memmove(out, out + 7, strlen(out + 7) + 1);
		return 0;
	}
	return -1;
}

/* The "for" parameter of one forwarded-element (a ';'-separated list of
 * token=value pairs), into out; -1 if there is none or it is no address
 * (an obfuscated identifier or "unknown", RFC 7239 §6.2-6.3). */
static int
element_for(const char *s, size_t n, char *out, size_t len)
{
	while (n > 0) {
		const char *semi = memchr(s, ';', n);
		size_t pn = semi ? (size_t)(semi - s) : n;
		const char *p = s;
		size_t k = pn;

		while (k > 0 && (*p == ' ' || *p == '\t'))
			p++, k--;
		if (k > 4 && strncasecmp(p, "for=", 4) == 0)
			return node_address(p + 4, k - 4, out, len);
		if (semi == NULL)
			break;
		s = semi + 1;
		n -= pn + 1;
	}
	return -1;
}

/* Split list at commas (outside quotes, RFC 9110 §5.6.1) into its
 * elements, at most max of them; the number found (more than max: the
 * first max are set). */
static size_t
split_list(const char *list, const char **start, size_t *lens, size_t max)
{
	size_t n = 0;
	const char *p = list, *el = list;
	int quoted = 0;

	for (;; p++) {
		if (*p == '"')
			quoted = !quoted;
		if (*p == '\0' || (*p == ',' && !quoted)) {
			if (n < max) {
				start[n] = el;
				lens[n] = (size_t)(p - el);
			}
			n++;
			if (*p == '\0')
				break;
			el = p + 1;
		}
	}
	return n;
}

#define FORWARDED_HOPS 32

int
http_forwarded_client(const char *forwarded, const char *xff,
    int (*trusted)(void *arg, const char *ip), void *arg, char *out,
    size_t len)
{
	const char *start[FORWARDED_HOPS];
	size_t lens[FORWARDED_HOPS], n;
	const char *list = forwarded != NULL ? forwarded : xff;
	char ip[INET6_ADDRSTRLEN];

	if (list == NULL)
		return -1;
	if ((n = split_list(list, start, lens, FORWARDED_HOPS)) >
	    FORWARDED_HOPS)
		return -1;
	/* The last element is the nearest hop: the one our trusted proxy
	 * added; anything before a hop we do not trust is the client's
	 * own word. */
	while (n-- > 0) {
		int r = forwarded != NULL ?
		    element_for(start[n], lens[n], ip, sizeof(ip)) :
		    node_address(start[n], lens[n], ip, sizeof(ip));

		if (r == -1)
			return -1;
		if (n > 0 && trusted(arg, ip))
			continue;
		snprintf(out, len, "%s", ip);
		return 0;
	}
	return -1;
}
