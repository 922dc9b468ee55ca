/*
 * libFuzzer target for xmppd.conf parsing: conf_parse() on arbitrary bytes
 * (a NUL-terminated copy, since the contract takes a C string), then
 * conf_free().  A parse that succeeds must satisfy the documented
 * invariants; a failure must leave a "name:line: " message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "xmalloc.h"

static void
check_conf(const struct conf *c)
{
	size_t i;

	if (c->nhosts == 0 || c->nlisteners == 0 || c->storage == NULL ||
	    c->control_socket == NULL || c->workers < 1 || c->workers > 64 ||
	    c->limits.preauth_stanza_size > c->limits.stanza_size ||
	    c->limits.output_high > c->limits.output_max)
		abort();
	for (i = 0; i < c->nlisteners; i++)
		if (c->listeners[i].address == NULL ||
		    c->listeners[i].port < 1 || c->listeners[i].port > 65535)
			abort();
	for (i = 0; i < c->nhosts; i++)
		if (c->hosts[i].name == NULL ||
		    c->hosts[i].certificate == NULL ||
		    c->hosts[i].key == NULL ||
		    conf_host_find(c, c->hosts[i].name) != &c->hosts[i])
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	char *text = xmalloc(size + 1);
	struct conf *c;

	memcpy(text, data, size);
	text[size] = '\0';
	err[0] = '\0';
	c = conf_parse("fuzz.conf", text, err, sizeof(err));
	if (c != NULL)
		check_conf(c);
	else if (strncmp(err, "fuzz.conf:", 10) != 0)
		abort();
	conf_free(c);
	free(text);
	return 0;
}
