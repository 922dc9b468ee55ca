/*
 * Process-wide state of the daemon, set up by main() in xmppd.c.
 */
#ifndef XMPPD_XMPPD_H
#define XMPPD_XMPPD_H

#include <ev.h>

struct conf;

extern struct ev_loop *xmppd_loop;
extern struct conf *xmppd_conf;      /* current configuration */
extern double xmppd_started;         /* mono_now() at start: uptime */

/* Ask the daemon to reload configuration and certificates (as SIGHUP) or
 * to shut down (as SIGTERM); both act from the loop, after the caller. */
void xmppd_request_reload(void);
void xmppd_request_stop(void);

#endif
