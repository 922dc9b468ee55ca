/*
 * XEP-0185 dialback keys (xmppd/stream/dialback.c): the names of the
 * example of XEP-0185 §3 ("s3cr3tf0rd14lb4ck", example.org,
 * xmpp.example.com, D60000229F), whose key Python's hmac module gives as
 * 07335aa4...; and the checks of a key.
 */
#include <string.h>

#include "stream/dialback.h"
#include "unit.h"

static const unsigned char secret[] = "s3cr3tf0rd14lb4ck";

int
main(void)
{
	char key[DIALBACK_KEY_LEN + 1];
	size_t n = sizeof(secret) - 1;

	dialback_key(secret, n, "example.org", "xmpp.example.com", "D60000229F",
	    key);
	CHECK_STR(key,
	    "07335aa400436780596e1102ba010c85129ea50e13e58ab8830a523a8706b575");
	CHECK(dialback_key_valid(secret, n, "example.org", "xmpp.example.com",
	    "D60000229F", key));
	/* Any other name, stream, secret or key: invalid. */
	CHECK(!dialback_key_valid(secret, n, "example.org", "xmpp.example.net",
	    "D60000229F", key));
	CHECK(!dialback_key_valid(secret, n, "example.org", "xmpp.example.com",
	    "D60000229G", key));
	CHECK(!dialback_key_valid(secret, n - 1, "example.org",
	    "xmpp.example.com", "D60000229F", key));
	key[10] ^= 1;
	CHECK(!dialback_key_valid(secret, n, "example.org", "xmpp.example.com",
	    "D60000229F", key));
	CHECK(!dialback_key_valid(secret, n, "example.org", "xmpp.example.com",
	    "D60000229F", "0733"));
	CHECK(!dialback_key_valid(secret, n, "example.org", "xmpp.example.com",
	    "D60000229F", NULL));
	return UNIT_DONE("dialback");
}
