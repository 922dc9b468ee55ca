/*
 * libFuzzer target for the XEP-0065 proxy's SOCKS5 handshake
 * (xmppd/net/socks5.c): the input is a client's bytes, fed in pieces
 * whose size the first byte picks, as a connection's reads would come.
 * The parser must keep its promises: MORE takes every byte given,
 * METHOD comes once and first, REQUEST carries a 40-digit lower-case
 * hex hash, FAIL a reply code and a reason, and nothing is taken after
 * REQUEST or FAIL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/socks5.h"

static void
check_hash(const char *h)
{
	if (strlen(h) != SOCKS5_HASH_LEN)
		abort();
	for (size_t i = 0; i < SOCKS5_HASH_LEN; i++)
		if (!((h[i] >= '0' && h[i] <= '9') ||
		        (h[i] >= 'a' && h[i] <= 'f')))
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct socks5 s;
	size_t step, off = 0;
	int methods = 0, done = 0;
	unsigned char reply[SOCKS5_REPLY_MAX];

	if (size < 1)
		return 0;
	step = (size_t)(data[0] % 16) + 1;
	data++;
	size--;
	socks5_init(&s);
	while (off < size) {
		size_t n = size - off < step ? size - off : step, used = 0;
		enum socks5_event ev = socks5_parse(&s, data + off, n, &used);

		if (used > n || (done && used != 0))
			abort();
		off += used;
		switch (ev) {
		case SOCKS5_MORE:
			if (!done && used != n)
				abort();
			if (done)
				return 0;
			break;
		case SOCKS5_METHOD:
			if (methods++ || done)
				abort();
			break;
		case SOCKS5_REQUEST:
			if (methods != 1 || done)
				abort();
			check_hash(s.hash);
			if (socks5_reply(reply, 0, s.hash, s.port) != 47)
				abort();
			done = 1;
			break;
		case SOCKS5_FAIL:
			if (done || s.error == NULL ||
			    (s.reply != 0xff && s.reply > 8))
				abort();
			done = 1;
			break;
		}
	}
	return 0;
}
