/*
 * XEP-0065 SOCKS5 bytestreams, the proxy's XMPP side: the proxy.HOST
 * services (disco#info identity proxy/bytestreams), the streamhost
 * query (§4, the address from "proxy65-address" or the listener) and
 * activation (§6.3.4), which hashes SID + the requester's full JID +
 * the target's JID and asks the relay (net/proxy65.c, through start-up)
 * to join the two connections under that hash.  Only accounts of the
 * host a service belongs to may use it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "conf.h"
#include "core/disco.h"
#include "core/router.h"
#include "core/session.h"
#include "core/stanza.h"
#include "jid.h"
#include "log.h"
#include "mod/proxy65.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

void mod_proxy65_init(void);
void mod_proxy65_deinit(void);
void mod_proxy65_reload(void);

#define SID_MAX 1024 /* bytes of a stream id we hash */

struct service {
	char *domain, *host;
};

static struct service *services;
static size_t nservices;
static bytestream_activate_fn activate_fn;
static char *listen_address; /* of the open listener */
static int listen_port;

void
mod_proxy65_set_relay(bytestream_activate_fn fn, const char *address, int port)
{
	activate_fn = fn;
	free(listen_address);
	listen_address = xstrdup(address);
	listen_port = port;
}

int
mod_proxy65_listening(void)
{
	return activate_fn != NULL;
}

static const struct service *
service_of(const char *domain)
{
	for (size_t i = 0; i < nservices; i++)
		if (strcmp(services[i].domain, domain) == 0)
			return &services[i];
	return NULL;
}

static void
reply_error(struct session *s, const struct xel *iq, const char *type,
    const char *cond, const char *text)
{
	struct xel *r = stanza_error(iq, type, cond, text);

	if (r != NULL)
		session_reply(s, r);
}

static int
attr_is(const struct xel *el, const char *name, const char *value)
{
	const char *v = xel_attr(el, name);

	return v != NULL && strcmp(v, value) == 0;
}

/* The service's disco#info (XEP-0065 §4). */
static void
service_info(struct xel *q)
{
	struct xel *id = xel_add(q, "identity", NULL);

	xel_set_attr(id, "category", "proxy");
	xel_set_attr(id, "type", "bytestreams");
	xel_set_attr(id, "name", "SOCKS5 Bytestreams Service");
	xel_set_attr(xel_add(q, "feature", NULL), "var", NS_DISCO_INFO);
	xel_set_attr(xel_add(q, "feature", NULL), "var", NS_BYTESTREAMS);
}

/* Whether address is a wildcard a client cannot connect to. */
static int
wildcard(const char *address)
{
	return strcmp(address, "*") == 0 || strcmp(address, "0.0.0.0") == 0 ||
	       strcmp(address, "::") == 0;
}

/* §4 example 6: the streamhost, with the address clients connect to. */
static void
streamhost(
    struct session *from, const struct xel *st, const struct service *svc)
{
	const struct conf *c = xmppd_conf;
	struct xel *r = stanza_iq_result(st), *q, *sh;
	const char *host;
	char port[16];

	if (c->proxy65_address != NULL)
		host = c->proxy65_address;
	else if (!wildcard(listen_address))
		host = listen_address;
	else
		host = svc->host;
	snprintf(port, sizeof(port), "%d",
	    c->proxy65_port ? c->proxy65_port : listen_port);
	q = xel_add(r, "query", NS_BYTESTREAMS);
	sh = xel_add(q, "streamhost", NULL);
	xel_set_attr(sh, "jid", svc->domain);
	xel_set_attr(sh, "host", host);
	xel_set_attr(sh, "port", port);
	session_reply(from, r);
}

/* The XEP-0065 §5.3.2 hash, 40 lower-case hex digits into out. */
static int
stream_hash(
    const char *sid, const char *requester, const char *target, char out[41])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
	         EVP_DigestUpdate(ctx, sid, strlen(sid)) &&
	         EVP_DigestUpdate(ctx, requester, strlen(requester)) &&
	         EVP_DigestUpdate(ctx, target, strlen(target)) &&
	         EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == 20;

	EVP_MD_CTX_free(ctx);
	if (!ok)
		return -1;
	for (unsigned i = 0; i < 20; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[40] = '\0';
	return 0;
}

/* §6.3.4: the requester activates the stream to target. */
static void
activate(struct session *from, const struct xel *st, const struct xel *q)
{
	const char *sid = xel_attr(q, "sid");
	const struct xel *a = xel_child(q, "activate", NULL);
	const char *text = a ? xel_text(a) : NULL;
	char *target, *requester, *user, hash[41];
	enum bytestream_activation res;

	if (sid == NULL || *sid == '\0' || strlen(sid) > SID_MAX) {
		reply_error(from, st, "modify", "bad-request",
		    "The query needs a stream id (sid)");
		return;
	}
	if (text == NULL || *text == '\0') {
		reply_error(from, st, "modify", "bad-request",
		    "The query needs <activate/> with the target's JID");
		return;
	}
	if ((target = jid_normalize(text)) == NULL) {
		reply_error(from, st, "modify", "jid-malformed",
		    "The target's JID is not valid");
		return;
	}
	requester = jid_full(&from->jid);
	if (stream_hash(sid, requester, target, hash) == -1) {
		free(target);
		free(requester);
		reply_error(from, st, "wait", "internal-server-error", NULL);
		return;
	}
	user = jid_bare(&from->jid);
	res = activate_fn != NULL ? activate_fn(hash, user)
	                          : BYTESTREAM_NO_STREAM;
	switch (res) {
	case BYTESTREAM_ACTIVATED:
		session_reply(from, stanza_iq_result(st));
		break;
	case BYTESTREAM_NO_STREAM:
		reply_error(from, st, "cancel", "item-not-found",
		    "No connection for this stream: the hash of sid, your "
		    "full JID and the target's JID matches none");
		break;
	case BYTESTREAM_ONE_PARTY:
		reply_error(from, st, "cancel", "not-allowed",
		    "Only one party has connected to the proxy");
		break;
	case BYTESTREAM_ACTIVE_ALREADY:
		reply_error(from, st, "cancel", "not-allowed",
		    "The stream is active already");
		break;
	case BYTESTREAM_OVER_USER:
		reply_error(from, st, "wait", "resource-constraint",
		    "Too many active streams for this account");
		break;
	case BYTESTREAM_OVER_ALL:
		reply_error(from, st, "wait", "resource-constraint",
		    "Too many active streams on this proxy");
		break;
	}
	log_debug("proxy65: %s activates %s to %s: %d", requester, hash, target,
	    (int)res);
	free(user);
	free(target);
	free(requester);
}

static void
proxy65_route(struct session *from, struct xel *st, const struct jid *to)
{
	const struct service *svc = service_of(to->domain);
	struct xel *q;
	int get;

	if (from == NULL || from->closing || stanza_kind(st) != STANZA_IQ)
		return;
	get = attr_is(st, "type", "get");
	if (!get && !attr_is(st, "type", "set"))
		return;
	q = xel_first_elem(st);
	if (svc == NULL || to->node != NULL || to->resource != NULL ||
	    q == NULL) {
		reply_error(from, st, NULL, "service-unavailable", NULL);
		return;
	}
	if (get && xel_attr(q, "node") == NULL &&
	    xel_is(q, "query", NS_DISCO_INFO)) {
		struct xel *r = stanza_iq_result(st);

		service_info(xel_add(r, "query", NS_DISCO_INFO));
		session_reply(from, r);
	} else if (get && xel_attr(q, "node") == NULL &&
	           xel_is(q, "query", NS_DISCO_ITEMS)) {
		struct xel *r = stanza_iq_result(st);

		xel_add(r, "query", NS_DISCO_ITEMS);
		session_reply(from, r);
	} else if (!xel_is(q, "query", NS_BYTESTREAMS))
		reply_error(from, st, NULL, "service-unavailable", NULL);
	else if (strcmp(from->jid.domain, svc->host) != 0)
		/* §4: a proxy that will not serve the requester. */
		reply_error(from, st, "auth", "forbidden",
		    "This proxy serves accounts of its own host only");
	else if (get)
		streamhost(from, st, svc);
	else if (xel_child(q, "activate", NULL) != NULL)
		activate(from, st, q);
	else
		reply_error(from, st, "modify", "bad-request",
		    "A set needs <activate/>");
}

static void
start_services(void)
{
	const struct conf *c = xmppd_conf;

	for (size_t i = 0; i < c->nhosts; i++) {
		struct service *svc;

		if (c->hosts[i].proxy65 == NULL)
			continue;
		if (router_add_service(c->hosts[i].proxy65, c->hosts[i].name,
		        proxy65_route) < 0) {
			log_warnx("proxy65: %s: domain already served",
			    c->hosts[i].proxy65);
			continue;
		}
		services =
		    xreallocarray(services, nservices + 1, sizeof(*services));
		svc = &services[nservices++];
		svc->domain = xstrdup(c->hosts[i].proxy65);
		svc->host = xstrdup(c->hosts[i].name);
	}
}

static void
stop_services(void)
{
	for (size_t i = 0; i < nservices; i++) {
		router_remove_service(services[i].domain);
		free(services[i].domain);
		free(services[i].host);
	}
	free(services);
	services = NULL;
	nservices = 0;
}

void
mod_proxy65_init(void)
{
	start_services();
}

void
mod_proxy65_deinit(void)
{
	stop_services();
}

void
mod_proxy65_reload(void)
{
	stop_services();
	start_services();
}
