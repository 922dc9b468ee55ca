/*
 * Software Version (XEP-0092) of the server: name, version and, when
 * "software-version full", the operating system.  With "software-version
 * off" nothing is registered or advertised, so the query gets the IQ
 * registry's <service-unavailable/>.
 */
#include <string.h>
#include <sys/utsname.h>

#include "conf.h"
#include "core/disco.h"
#include "core/iq.h"
#include "core/session.h"
#include "core/stanza.h"
#include "xml.h"
#include "xmppd.h"

#define NS_VERSION "jabber:iq:version"

void mod_version_init(void);

static enum hook_result
handle_version(struct session *from, struct xel *iq, enum iq_target target)
{
	const char *type = xel_attr(iq, "type");
	struct xel *r, *q;
	struct utsname u;

	/* Only the server answers; a bare JID's version is not the
	 * server's to give (the client's full JID answers for itself). */
	if (target != IQ_TO_SERVER || type == NULL || strcmp(type, "get") != 0)
		return HOOK_PASS;
	r = stanza_iq_result(iq);
	q = xel_add(r, "query", NS_VERSION);
	xel_text_set(xel_add(q, "name", NULL), "xmppd");
	xel_text_set(xel_add(q, "version", NULL), XMPPD_VERSION);
	/* XEP-0092 §2: <os/> is optional; §4 leaves it to the admin. */
	if (xmppd_conf->software_version == SOFTWARE_VERSION_FULL &&
	    uname(&u) == 0) {
		struct xel *os = xel_add(q, "os", NULL);

		xel_text_set(os, u.sysname);
		xel_text_set(os, " ");
		xel_text_set(os, u.release);
	}
	session_send(from, r);
	arena_free(r->arena);
	return HOOK_HANDLED;
}

void
mod_version_init(void)
{
	/* On unless "software-version off" (modules.c). */
	iq_register(NS_VERSION, "query", handle_version);
	disco_add_feature(DISCO_SERVER, NS_VERSION);
}
