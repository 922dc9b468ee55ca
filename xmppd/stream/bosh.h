/*
 * BOSH (XEP-0124, XEP-0206): c2s streams carried by HTTP requests at
 * /http-bind, each session a virtual connection (net/conn.h).
 */
#ifndef XMPPD_BOSH_H
#define XMPPD_BOSH_H

#include "net/http.h"         /* BOSH_PATH */

struct conf;

/* Start-up and reload: route POST and OPTIONS /http-bind while
 * "bosh on". */
void bosh_set_conf(const struct conf *conf);

#endif
