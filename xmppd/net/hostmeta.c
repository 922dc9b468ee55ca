/*
 * XEP-0156 §3: host-meta (RFC 6415) in XRD and JRD form, listing
 * urn:xmpp:alt-connections:websocket (while "websocket on") and
 * urn:xmpp:alt-connections:xbosh (while "bosh on") with the public URLs
 * of the host ("websocket-url", "bosh-url"), or, for a request that
 * reached us directly, the URL it came to (its scheme and Host,
 * WS_XMPP_PATH or BOSH_PATH).  Behind a proxy
 * (a request from an http-trusted-proxy, or one naming its client) that
 * URL is unknown here, so nothing is listed.  Web clients read it
 * from other origins: Access-Control-Allow-Origin: * (§3.1).
 */
#include <stdio.h>
#include <string.h>

#include "net/hostmeta.h"
#include "buf.h"
#include "conf.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/websocket.h"

#define HOSTMETA_PATH "/.well-known/host-meta"
#define HOSTMETA_JSON_PATH "/.well-known/host-meta.json"
#define REL_WEBSOCKET "urn:xmpp:alt-connections:websocket"
#define REL_BOSH "urn:xmpp:alt-connections:xbosh"
#define NS_XRD "http://docs.oasis-open.org/ns/xri/xrd-1.0"

static const struct conf *cur;

/* The WebSocket (bosh 0) or BOSH (bosh 1) URL for r into url, 0 if
 * there is none to give. */
static int
service_url(const struct http_request *r, int bosh, char *url, size_t len)
{
	const struct conf_host *h = r->host != NULL ?
	    conf_host_find(cur, r->host) : NULL;
	const char *authority = http_header(r, "Host");
	const char *configured = h == NULL ? NULL : bosh ? h->bosh_url :
	    h->websocket_url;

	if (configured != NULL) {
		snprintf(url, len, "%s", configured);
		return 1;
	}
	/* Through a proxy the public scheme and port are not ours. */
	if (authority == NULL || *authority == '\0' ||
	    conf_trusted_proxy(cur, http_request_conn(r)->ip) ||
	    http_header(r, "Forwarded") != NULL ||
	    http_header(r, "X-Forwarded-For") != NULL)
		return 0;
	if (bosh)
		return snprintf(url, len, "%s://%s%s", r->tls ? "https" :
		    "http", authority, BOSH_PATH) < (int)len;
	return snprintf(url, len, "%s://%s%s", r->tls ? "wss" : "ws",
	    authority, WS_XMPP_PATH) < (int)len;
}

static void
add_json_string(struct buf *b, const char *s)
{
	buf_addc(b, '"');
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			buf_addc(b, '\\');
			buf_addc(b, (char)ch);
		} else if (ch < 0x20)
			buf_printf(b, "\\u%04x", ch);
		else
			buf_addc(b, (char)ch);
	}
	buf_addc(b, '"');
}

static void
handle_hostmeta(struct http_request *r, void *arg)
{
	static const char *const rels[] = {REL_WEBSOCKET, REL_BOSH};
	int json = arg != NULL, n = 0;
	struct buf b = BUF_INIT;
	char url[1024];

	if (json)
		buf_adds(&b, "{\"links\":[");
	else
		buf_adds(&b, "<?xml version='1.0' encoding='utf-8'?>\n"
		    "<XRD xmlns='" NS_XRD "'>\n");
	for (int bosh = 0; bosh < 2; bosh++) {
		if (!(bosh ? cur->bosh : cur->websocket) ||
		    !service_url(r, bosh, url, sizeof(url)))
			continue;
		if (json) {
			buf_adds(&b, n++ > 0 ? ",{\"rel\":\"" : "{\"rel\":\"");
			buf_adds(&b, rels[bosh]);
			buf_adds(&b, "\",\"href\":");
			add_json_string(&b, url);
			buf_adds(&b, "}");
		} else {
			buf_adds(&b, "  <Link rel='");
			buf_adds(&b, rels[bosh]);
			buf_adds(&b, "' href='");
			buf_add_xml_escaped(&b, url, strlen(url), 1);
			buf_adds(&b, "'/>\n");
		}
	}
	buf_adds(&b, json ? "]}\n" : "</XRD>\n");
	http_add_header(r, "Access-Control-Allow-Origin", "*");
	http_respond(r, 200, json ? "application/json" :
	    "application/xrd+xml", buf_head(&b), buf_avail(&b));
	buf_free(&b);
}

void
hostmeta_set_conf(const struct conf *conf)
{
	static int routed;
	static const int json = 1;

	cur = conf;
	if ((conf->websocket || conf->bosh) && !routed) {
		http_route_add(HOSTMETA_PATH, HTTP_M_GET, 0, handle_hostmeta,
		    NULL);
		http_route_add(HOSTMETA_JSON_PATH, HTTP_M_GET, 0,
		    handle_hostmeta, (void *)&json);
		routed = 1;
	} else if (!conf->websocket && !conf->bosh && routed) {
		http_route_remove(HOSTMETA_PATH);
		http_route_remove(HOSTMETA_JSON_PATH);
		routed = 0;
	}
}
