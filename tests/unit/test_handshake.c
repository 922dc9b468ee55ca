/*
 * Unit tests for shared/handshake.c (XEP-0114): the digest against values
 * computed with Python's hashlib, and
 * the check (case of the hex digits, length, wrong secret).
 */
#include <string.h>

#include "handshake.h"
#include "unit.h"

static void
test_digest(void)
{
	char out[HANDSHAKE_HEX_LEN + 1];

	/* hashlib.sha1(b"3BF96D32" + b"sunshine").hexdigest() */
	handshake_digest("3BF96D32", "sunshine", out);
	CHECK_STR(out, "8e2449516c688436d4ca76dad7e0c43ca1c20b18");
	/* hashlib.sha1(b"abc" + b"").hexdigest() */
	handshake_digest("abc", "", out);
	CHECK_STR(out, "a9993e364706816aba3e25717850c26c9cd0d89d");
	/* The secret's bytes as they are (UTF-8). */
	handshake_digest("id", "s\xc3\xa9", out);
	CHECK_STR(out, "93c51e0abacae9848de4ec6feb4170e0bf726359");
}

static void
test_verify(void)
{
	CHECK(handshake_verify("3BF96D32", "sunshine",
	    "8e2449516c688436d4ca76dad7e0c43ca1c20b18"));
	CHECK(handshake_verify("3BF96D32", "sunshine",
	    "8E2449516C688436D4CA76DAD7E0C43CA1C20B18"));
	CHECK(!handshake_verify("3BF96D32", "sunshine2",
	    "8e2449516c688436d4ca76dad7e0c43ca1c20b18"));
	CHECK(!handshake_verify("3BF96D33", "sunshine",
	    "8e2449516c688436d4ca76dad7e0c43ca1c20b18"));
	CHECK(!handshake_verify("3BF96D32", "sunshine",
	    "8e2449516c688436d4ca76dad7e0c43ca1c20b1"));
	CHECK(!handshake_verify("3BF96D32", "sunshine",
	    "8e2449516c688436d4ca76dad7e0c43ca1c20b180"));
	CHECK(!handshake_verify("3BF96D32", "sunshine", ""));
	CHECK(!handshake_verify("3BF96D32", "sunshine",
	    " 8e2449516c688436d4ca76dad7e0c43ca1c20b1"));
}

int
main(void)
{
	test_digest();
	test_verify();
	return UNIT_DONE("handshake");
}
