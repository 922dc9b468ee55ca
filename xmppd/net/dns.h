/*
 * Asynchronous DNS on the event loop (c-ares, Debian's libc-ares-dev):
 * SRV, A and AAAA queries whose answers are cached for their TTL (a name
 * that does not exist, or has no such records, for a minute), and
 * identical queries in flight share one.  Nothing here blocks the loop.
 */
#ifndef XMPPD_NET_DNS_H
#define XMPPD_NET_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "net/dns_msg.h"

struct ev_loop;

enum dns_status {
	DNS_OK,         /* records found */
	DNS_NONE,       /* the name does not exist, or has none of them */
	DNS_FAIL,       /* no answer (time-out, server failure) */
};

struct dns_addr {
	int family;                     /* AF_INET or AF_INET6 */
	unsigned char addr[16];         /* network order */
};

struct dns_result {
	enum dns_status status;
	const struct dns_srv *srv;      /* DNS_T_SRV: in the order of the
	                                   answer (dns_srv_order sorts) */
	size_t nsrv;
	const struct dns_addr *addr;    /* DNS_T_A, DNS_T_AAAA */
	size_t naddr;
	uint32_t ttl;                   /* seconds left in the cache */
};

/* r and what it points to are valid during the call only. */
typedef void (*dns_cb)(void *arg, const struct dns_result *r);

/* servers: "ADDR[:PORT],..." to ask instead of /etc/resolv.conf's, or
 * NULL.  -1 (logged) if c-ares cannot start. */
int dns_init(struct ev_loop *loop, const char *servers);
/* Change the servers (reload); -1 if c-ares refused them. */
int dns_set_servers(const char *servers);
/* Cancels every query (no callback runs) and frees the cache. */
void dns_shutdown(void);

/*
 * Ask for the records of type (DNS_T_SRV, DNS_T_A or DNS_T_AAAA) of name.
 * cb runs later, from the loop, never before dns_query returns (even for
 * an answer from the cache).  Returns an id for dns_cancel.
 */
uint64_t dns_query(const char *name, unsigned type, dns_cb cb, void *arg);
/* cb of that query will not run (the asker went away). */
void dns_cancel(uint64_t id);

size_t dns_cache_count(void);

#endif
