/*
 * SOCKS5 (RFC 1928) as an XEP-0065 proxy speaks it, server side, with
 * no I/O: the greeting (method "no authentication" only) and one
 * CONNECT request whose address is a domain name (ATYP 3), which
 * XEP-0065 §5.3.2 makes the hex SHA-1 of SID + requester JID + target
 * JID, port 0.  net/proxy65.c drives it on a connection;
 * tests/unit/test_socks5.c and tests/fuzz/fuzz_socks5.c drive it alone.
 */
#ifndef XMPPD_SOCKS5_H
#define XMPPD_SOCKS5_H

#include <stddef.h>
#include <stdint.h>

/* RFC 1928 §6 reply codes. */
enum socks5_reply {
	SOCKS5_SUCCEEDED = 0x00,
	SOCKS5_GENERAL_FAILURE = 0x01,
	SOCKS5_NOT_ALLOWED = 0x02, /* connection not allowed by ruleset */
	SOCKS5_HOST_UNREACHABLE = 0x04,
	SOCKS5_COMMAND_UNSUPPORTED = 0x07,
	SOCKS5_ATYP_UNSUPPORTED = 0x08,
};

#define SOCKS5_HASH_LEN 40   /* hex SHA-1 */
#define SOCKS5_REPLY_MAX 262 /* 4 + 1 + 255 + 2 */

enum socks5_event {
	SOCKS5_MORE,    /* every byte given was taken; more are needed */
	SOCKS5_METHOD,  /* greeting done: send 05 00 (socks5_method) */
	SOCKS5_REQUEST, /* a valid CONNECT: hash and port are set; the
	                   parser takes no more bytes */
	SOCKS5_FAIL,    /* refused: error says why; reply (if not 0xff)
	                   is the RFC 1928 reply code to send, 0xff: the
	                   greeting's "no acceptable methods" (05 FF) */
};

enum socks5_phase {
	SOCKS5_GREETING,
	SOCKS5_CONNECT,
	SOCKS5_DONE, /* REQUEST or FAIL returned: takes nothing */
};

struct socks5 {
	enum socks5_phase phase;
	unsigned char b[SOCKS5_REPLY_MAX]; /* the message being gathered */
	size_t n;
	char hash[SOCKS5_HASH_LEN + 1]; /* lower-case hex, on REQUEST */
	uint16_t port;
	unsigned reply;    /* on FAIL */
	const char *error; /* on FAIL, for the log */
};

void socks5_init(struct socks5 *s);
/* Take bytes from data (len of them); *used says how many were taken
 * (the rest, after a REQUEST, is the peer's payload).  Call again after
 * METHOD with the remaining bytes. */
enum socks5_event socks5_parse(
    struct socks5 *s, const void *data, size_t len, size_t *used);
/* The greeting's answer: 05 00, or 05 FF when no method was acceptable
 * (two bytes into out). */
void socks5_method_reply(unsigned char out[2], int acceptable);
/* A reply to the CONNECT (RFC 1928 §6) with code and, as BND.ADDR, the
 * domain hash (may be NULL: then an empty IPv4 address) and port; returns
 * its length (at most SOCKS5_REPLY_MAX). */
size_t socks5_reply(unsigned char out[SOCKS5_REPLY_MAX], unsigned code,
    const char *hash, uint16_t port);

#endif
