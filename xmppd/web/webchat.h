/*
 * A web client in the box: "webchat PATH DIRECTORY" serves a static
 * directory (e.g. Converse.js's dist files) under PATH on the http and
 * https listeners, GET and HEAD, with types by extension, validators
 * (ETag, Last-Modified) and caching headers, so that a browser chat can
 * be offered on the same host as its WebSocket or BOSH endpoint.
 */
#ifndef XMPPD_WEB_WEBCHAT_H
#define XMPPD_WEB_WEBCHAT_H

#include <stddef.h>

struct conf;

/* Whether every webchat directory of conf can be opened as a
 * directory; -1 with a message in err if not (start-up refuses to
 * start, a reload keeps the running configuration). */
int webchat_check_conf(const struct conf *conf, char *err, size_t errlen);

/* Start-up and reload: route the webchat paths of conf (and no
 * others). */
void webchat_set_conf(const struct conf *conf);

/* The Content-Type of a file name by its extension (case-insensitive),
 * application/octet-stream for the others. */
const char *webchat_content_type(const char *name);

#endif
