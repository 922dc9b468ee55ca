/*
 * XEP-0363 HTTP file upload, the HTTP side: PUT, GET, HEAD and CORS
 * preflight OPTIONS under /upload/ on the http and https listeners.
 * The web layer sits above mod and net: it is where an HTTP request
 * meets what a module decided (tests/layers.sh).
 */
#ifndef XMPPD_WEB_UPLOAD_HTTP_H
#define XMPPD_WEB_UPLOAD_HTTP_H

struct conf;

/* Start-up and reload: route /upload/ (or not) with conf's file size as
 * the body limit, and make upload-dir if it is missing. */
void upload_http_set_conf(const struct conf *conf);

#endif
