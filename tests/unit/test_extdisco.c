/*
 * Unit tests for the TURN REST API credentials of XEP-0215
 * (mod/mod_extdisco.c, included here to reach its static function):
 * a vector computed independently (Python's hmac), the username's
 * shape, and the buffers that do not fit.  The protocol and coturn's
 * acceptance are tests/proto/test_extdisco.py's.
 */
#include <string.h>

#include "unit.h"

#include "../../xmppd/mod/mod_extdisco.c"

struct ev_loop *xmppd_loop;
struct conf *xmppd_conf;

/* What the module registers at init: not used by these tests. */
void
iq_register(const char *ns, const char *name, iq_handler h)
{
	(void)ns;
	(void)name;
	(void)h;
}

void
disco_add_feature(enum disco_scope scope, const char *var)
{
	(void)scope;
	(void)var;
}

void
session_send(struct session *s, const struct xel *stanza)
{
	(void)s;
	(void)stanza;
}

int
main(void)
{
	char user[64], pass[64], small[8];

	/* base64(HMAC-SHA1("0123456789abcdefSECRET",
	 * "1700000000:alice@localhost")), by Python's hmac module. */
	CHECK(extdisco_turn_credentials("0123456789abcdefSECRET",
	          "alice@localhost", 1700000000, user, sizeof(user), pass,
	          sizeof(pass)) == 0);
	CHECK_STR(user, "1700000000:alice@localhost");
	CHECK_STR(pass, "RMYuoICowiNEqgPqTNQw4Nui+tg=");
	/* Another user, another password. */
	CHECK(
	    extdisco_turn_credentials("0123456789abcdefSECRET", "bob@localhost",
	        1700000000, user, sizeof(user), pass, sizeof(pass)) == 0);
	CHECK_STR(user, "1700000000:bob@localhost");
	CHECK(strcmp(pass, "RMYuoICowiNEqgPqTNQw4Nui+tg=") != 0);
	CHECK(strlen(pass) == 28);
	/* Too small for the username, or for the password. */
	CHECK(extdisco_turn_credentials("s", "alice@localhost", 1700000000,
	          small, sizeof(small), pass, sizeof(pass)) == -1);
	CHECK(extdisco_turn_credentials("s", "a@b", 1, user, sizeof(user),
	          small, sizeof(small)) == -1);
	return UNIT_DONE("extdisco");
}
