/*
 * XEP-0156 discovery over HTTP: GET /.well-known/host-meta (XRD) and
 * /.well-known/host-meta.json (JRD) name the connection methods a web
 * client may use; today the WebSocket endpoint (RFC 7395).
 */
#ifndef XMPPD_HOSTMETA_H
#define XMPPD_HOSTMETA_H

struct conf;

/* Start-up and reload: the routes exist while "websocket on" (there is
 * nothing else to announce).  conf must stay valid until the next
 * call. */
void hostmeta_set_conf(const struct conf *conf);

#endif
