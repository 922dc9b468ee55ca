/*
 * External Service Discovery (XEP-0215, urn:xmpp:extdisco:2): the STUN
 * and TURN servers of the configuration ("stun", "turn"), for audio and
 * video calls.  TURN credentials are those of the TURN REST API that
 * coturn checks with "use-auth-secret": the username is
 * "EXPIRY:USER" (EXPIRY a Unix time, USER the bare JID), the password
 * base64(HMAC-SHA1(secret, username)); they are handed out only to the
 * server's own authenticated users, in <services/> results and to
 * <credentials/> requests.  The module is on while a service is
 * configured, and only then advertises the namespace.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base64.h"
#include "conf.h"
#include "core/disco.h"
#include "core/iq.h"
#include "core/session.h"
#include "core/stanza.h"
#include "xml.h"
#include "xmppd.h"

#define NS_EXTDISCO "urn:xmpp:extdisco:2"

void mod_extdisco_init(void);

/*
 * The TURN REST API's credentials (coturn's use-auth-secret): username
 * "EXPIRY:USER" into username, base64(HMAC-SHA1(secret, username)) into
 * password.  -1 if either does not fit.
 */
static int
extdisco_turn_credentials(const char *secret, const char *user, int64_t expiry,
    char *username, size_t ulen, char *password, size_t plen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	int n = snprintf(username, ulen, "%lld:%s", (long long)expiry, user);

	if (n < 0 || (size_t)n >= ulen)
		return -1;
	if (HMAC(EVP_sha1(), secret, (int)strlen(secret),
	        (const unsigned char *)username, (size_t)n, mac,
	        &maclen) == NULL ||
	    base64_encoded_len(maclen) + 1 > plen)
		return -1;
	base64_encode(mac, maclen, password);
	return 0;
}

static const char *
type_name(enum conf_extdisco_type t)
{
	return t == EXTDISCO_TURN ? "turn" : "stun";
}

/* One <service/> for e into parent; TURN with credentials for bare. */
static void
add_service(struct xel *parent, const struct conf_extdisco *e, const char *bare)
{
	struct xel *s = xel_add(parent, "service", NULL);
	char port[8], user[512], pass[64], stamp[32];
	time_t expiry;
	struct tm tm;

	snprintf(port, sizeof(port), "%d", e->port);
	xel_set_attr(s, "host", e->host);
	xel_set_attr(s, "port", port);
	xel_set_attr(s, "transport", e->tcp ? "tcp" : "udp");
	xel_set_attr(s, "type", type_name(e->type));
	if (e->type != EXTDISCO_TURN)
		return;
	/* XEP-0215 §3: credentials are required; given here at once, so
	 * that clients need no second round trip. */
	xel_set_attr(s, "restricted", "1");
	expiry = time(NULL) + (time_t)e->ttl;
	if (extdisco_turn_credentials(e->secret, bare, (int64_t)expiry, user,
	        sizeof(user), pass, sizeof(pass)) == -1)
		return; /* a bare JID is at most 2047 bytes: never here */
	gmtime_r(&expiry, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	xel_set_attr(s, "username", user);
	xel_set_attr(s, "password", pass);
	xel_set_attr(s, "expires", stamp);
}

static void
reply_error(struct session *from, const struct xel *iq, const char *cond)
{
	struct xel *e = stanza_error(iq, stanza_error_type(cond), cond, NULL);

	if (e != NULL) {
		session_send(from, e);
		arena_free(e->arena);
	}
}

/* Only the server's own authenticated users (§7: credentials are
 * secrets).  Every c2s session is one; the check keeps it so should
 * other kinds of sessions ever reach the IQ registry. */
static int
allowed(const struct session *from)
{
	return from->jid.node != NULL &&
	       conf_host_find(xmppd_conf, from->jid.domain) != NULL;
}

/* §3.1, §3.2: every service, or those of one type. */
static enum hook_result
handle_services(struct session *from, struct xel *iq, enum iq_target target)
{
	const char *type = xel_attr(iq, "type");
	const struct xel *q = xel_child(iq, "services", NS_EXTDISCO);
	const char *want = xel_attr(q, "type");
	struct xel *r, *out;

	if (target != IQ_TO_SERVER)
		return HOOK_PASS;
	if (type == NULL || strcmp(type, "get") != 0) {
		reply_error(from, iq, "bad-request");
		return HOOK_HANDLED;
	}
	if (!allowed(from)) {
		reply_error(from, iq, "forbidden");
		return HOOK_HANDLED;
	}
	r = stanza_iq_result(iq);
	out = xel_add(r, "services", NS_EXTDISCO);
	if (want != NULL)
		xel_set_attr(out, "type", want);
	for (size_t i = 0; i < xmppd_conf->nextdisco; i++) {
		const struct conf_extdisco *e = &xmppd_conf->extdisco[i];

		if (want == NULL || strcmp(want, type_name(e->type)) == 0)
			add_service(out, e, from->bare);
	}
	session_send(from, r);
	arena_free(r->arena);
	return HOOK_HANDLED;
}

/* Whether e is what <service host= type= [port=]/> names. */
static int
service_matches(const struct conf_extdisco *e, const struct xel *want)
{
	const char *host = xel_attr(want, "host");
	const char *type = xel_attr(want, "type");
	const char *port = xel_attr(want, "port");
	char p[8];

	snprintf(p, sizeof(p), "%d", e->port);
	return strcasecmp(host, e->host) == 0 &&
	       (type == NULL || strcmp(type, type_name(e->type)) == 0) &&
	       (port == NULL || strcmp(port, p) == 0);
}

/* §3.3: credentials for one service (the first that matches). */
static enum hook_result
handle_credentials(struct session *from, struct xel *iq, enum iq_target target)
{
	const char *type = xel_attr(iq, "type");
	const struct xel *q = xel_child(iq, "credentials", NS_EXTDISCO);
	const struct xel *want = xel_child(q, "service", NS_EXTDISCO);
	struct xel *r, *out;
	size_t i;

	if (target != IQ_TO_SERVER)
		return HOOK_PASS;
	if (type == NULL || strcmp(type, "get") != 0 || want == NULL ||
	    xel_attr(want, "host") == NULL) {
		reply_error(from, iq, "bad-request");
		return HOOK_HANDLED;
	}
	if (!allowed(from)) {
		reply_error(from, iq, "forbidden");
		return HOOK_HANDLED;
	}
	for (i = 0; i < xmppd_conf->nextdisco; i++)
		if (service_matches(&xmppd_conf->extdisco[i], want))
			break;
	if (i == xmppd_conf->nextdisco) {
		reply_error(from, iq, "item-not-found");
		return HOOK_HANDLED;
	}
	r = stanza_iq_result(iq);
	out = xel_add(r, "credentials", NS_EXTDISCO);
	add_service(out, &xmppd_conf->extdisco[i], from->bare);
	session_send(from, r);
	arena_free(r->arena);
	return HOOK_HANDLED;
}

void
mod_extdisco_init(void)
{
	iq_register(NS_EXTDISCO, "services", handle_services);
	iq_register(NS_EXTDISCO, "credentials", handle_credentials);
	disco_add_feature(DISCO_SERVER, NS_EXTDISCO);
}
