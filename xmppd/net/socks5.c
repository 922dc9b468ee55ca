/*
 * The SOCKS5 handshake of an XEP-0065 proxy, as a byte-at-a-time state
 * machine with no I/O (socks5.h).  Strict: version 5, "no
 * authentication" among the methods, CONNECT to a 40-digit hex domain.
 */
#include <string.h>

#include "net/socks5.h"

void
socks5_init(struct socks5 *s)
{
	memset(s, 0, sizeof(*s));
	s->phase = SOCKS5_GREETING;
}

static enum socks5_event
fail(struct socks5 *s, unsigned reply, const char *why)
{
	s->phase = SOCKS5_DONE;
	s->reply = reply;
	s->error = why;
	return SOCKS5_FAIL;
}

/* How many bytes the message gathered in s->b needs in all, as far as
 * its first bytes tell (0: not known yet). */
static size_t
needed(const struct socks5 *s)
{
	if (s->phase == SOCKS5_GREETING)
		return s->n < 2 ? 0 : 2 + (size_t)s->b[1];
	/* VER CMD RSV ATYP LEN DOMAIN PORT */
	if (s->n < 5)
		return 0;
	return 5 + (size_t)s->b[4] + 2;
}

/* The greeting is whole: RFC 1928 §3. */
static enum socks5_event
greeting(struct socks5 *s)
{
	if (s->b[1] == 0)
		return fail(s, 0xff, "SOCKS5 greeting offers no method");
	for (size_t i = 0; i < s->b[1]; i++)
		if (s->b[2 + i] == 0x00) {
			s->phase = SOCKS5_CONNECT;
			s->n = 0;
			return SOCKS5_METHOD;
		}
	return fail(
	    s, 0xff, "SOCKS5 greeting does not offer 'no authentication'");
}

/* The request is whole: RFC 1928 §4, XEP-0065 §5.3.2. */
static enum socks5_event
request(struct socks5 *s)
{
	size_t len = s->b[4];

	for (size_t i = 0; i < len; i++) {
		unsigned char c = s->b[5 + i];

		if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))
			s->hash[i] = (char)c;
		else if (c >= 'A' && c <= 'F')
			s->hash[i] = (char)(c - 'A' + 'a');
		else
			return fail(s, SOCKS5_HOST_UNREACHABLE,
			    "SOCKS5 address is not a hex SHA-1 hash");
	}
	s->hash[SOCKS5_HASH_LEN] = '\0';
	s->port = (uint16_t)(s->b[5 + len] << 8 | s->b[6 + len]);
	s->phase = SOCKS5_DONE;
	return SOCKS5_REQUEST;
}

/* The first bytes of the request, checked as soon as they arrive. */
static enum socks5_event
request_head(struct socks5 *s)
{
	if (s->n == 1 && s->b[0] != 5)
		return fail(s, SOCKS5_GENERAL_FAILURE,
		    "SOCKS5 request has a wrong version");
	if (s->n == 2 && s->b[1] != 1)
		return fail(s, SOCKS5_COMMAND_UNSUPPORTED,
		    "SOCKS5 command is not CONNECT");
	if (s->n == 3 && s->b[2] != 0)
		return fail(s, SOCKS5_GENERAL_FAILURE,
		    "SOCKS5 request has a non-zero reserved byte");
	if (s->n == 4 && s->b[3] != 3)
		return fail(s, SOCKS5_ATYP_UNSUPPORTED,
		    "SOCKS5 address is not a domain name (ATYP 3)");
	if (s->n == 5 && s->b[4] != SOCKS5_HASH_LEN)
		return fail(s, SOCKS5_HOST_UNREACHABLE,
		    "SOCKS5 address is not a 40-digit SHA-1 hash");
	return SOCKS5_MORE;
}

enum socks5_event
socks5_parse(struct socks5 *s, const void *data, size_t len, size_t *used)
{
	const unsigned char *p = data;
	size_t i = 0;
	enum socks5_event ev = SOCKS5_MORE;

	while (i < len && s->phase != SOCKS5_DONE) {
		size_t want;

		s->b[s->n++] = p[i++];
		if (s->n == 1 && s->b[0] != 5 && s->phase == SOCKS5_GREETING) {
			ev = fail(s, 0xff, "not SOCKS version 5");
			break;
		}
		if (s->phase == SOCKS5_CONNECT &&
		    (ev = request_head(s)) != SOCKS5_MORE)
			break;
		want = needed(s);
		if (want == 0 || s->n < want)
			continue;
		ev = s->phase == SOCKS5_GREETING ? greeting(s) : request(s);
		break;
	}
	*used = i;
	return ev;
}

void
socks5_method_reply(unsigned char out[2], int acceptable)
{
	out[0] = 5;
	out[1] = acceptable ? 0x00 : 0xff;
}

size_t
socks5_reply(unsigned char out[SOCKS5_REPLY_MAX], unsigned code,
    const char *hash, uint16_t port)
{
	size_t n = 0, len;

	out[n++] = 5;
	out[n++] = (unsigned char)code;
	out[n++] = 0;
	if (hash == NULL) {
		out[n++] = 1; /* IPv4 0.0.0.0 */
		memset(out + n, 0, 4);
		n += 4;
	} else {
		len = strlen(hash);
		if (len > 255)
			len = 255;
		out[n++] = 3;
		out[n++] = (unsigned char)len;
		memcpy(out + n, hash, len);
		n += len;
	}
	out[n++] = (unsigned char)(port >> 8);
	out[n++] = (unsigned char)(port & 0xff);
	return n;
}
