/*
 * External components (XEP-0114): the jabber:component:accept streams of
 * the "listen component" listeners, and the routing of each configured
 * component domain (and its subdomains) to its connected stream.  This
 * header is for start-up and the control plane.
 */
#ifndef XMPPD_COMPONENT_H
#define XMPPD_COMPONENT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct conf;
struct conn_handler;

extern const struct conn_handler component_conn_handler;

/* Start-up and reload: register the configured domains with the router
 * (stanzas to one that is not connected get <service-unavailable/>);
 * a connected component whose block is gone is closed with
 * <host-gone/>. */
void component_set_conf(const struct conf *conf);
/* Close every stream with <system-shutdown/> (SIGTERM). */
void component_shutdown_all(void);
size_t component_count(void);

/* A connected (authenticated) component, for xmppctl components. */
struct component_info {
	const char *domain;
	const char *addr;           /* "ip:port" */
	uint64_t id;                /* the connection's id */
	time_t since;               /* when its handshake succeeded */
	uint64_t stanzas_in, stanzas_out;
};

/* Call fn for each connected component, in connection order. */
void component_foreach(void (*fn)(const struct component_info *ci,
    void *arg), void *arg);

#endif
