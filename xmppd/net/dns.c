/*
 * Asynchronous DNS on the loop: c-ares sends, retries and reads the
 * answers on sockets the loop watches (its socket-state callback starts
 * and stops an ev_io per socket; one ev_timer follows ares_timeout()).
 * Answers are kept per (type, name) until their TTL runs out.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ares.h>
#include <ev.h>

#include "log.h"
#include "mono.h"
#include "net/dns.h"
#include "strmap.h"
#include "xmalloc.h"

#define NEGATIVE_TTL 60         /* s: NXDOMAIN, no records */
#define MAX_TTL 86400
#define MAX_ENTRIES 10000
#define MAX_RECORDS 64          /* kept per answer */
#define QUERY_TIMEOUT_MS 2000   /* per try; c-ares tries 3 times */
/* Queries sent and not answered, at most: a burst (a thousand domains at
 * start-up, a MUC full of remote occupants) waits its turn here instead
 * of sending everything at once, whose answers, arriving together,
 * overflow the socket's receive buffer (300 at once lost some in
 * test_dns) and leave each lost name waiting for c-ares' retry. */
#define MAX_INFLIGHT 64

struct waiter {
	uint64_t id;
	dns_cb cb;
	void *arg;
	struct entry *e;
	struct waiter *next, *prev;     /* all waiters */
	struct waiter *ready_next;      /* due to be told */
	int is_ready;
	int delivering;                 /* its callback is running */
};

struct entry {
	char *key;
	unsigned type;
	char *name;
	int pending;            /* a query in flight or queued */
	struct entry *queue_next;       /* waiting for a slot */
	double expires;         /* mono time */
	enum dns_status status;
	struct dns_srv *srv;
	size_t nsrv;
	struct dns_addr *addr;
	size_t naddr;
	size_t nwaiting;        /* waiters on this entry */
};

struct sock {
	ev_io io;
	ares_socket_t fd;
	struct sock *next;
};

static struct ev_loop *loop;
static ares_channel channel;
static int started;
static struct strmap *cache;
static struct sock *socks;
static ev_timer timer, deliver_timer;
static struct waiter *waiters;
static struct waiter *ready, **ready_tail = &ready;
static uint64_t next_id = 1;
static struct entry *queue, **queue_tail = &queue;
static size_t inflight;

static void arm_timer(void);
static void query_cb(void *, int, int, unsigned char *, int);

/* Send what waits while there is room.  ares_query may answer at once
 * (query_cb, then send again): the flag keeps that to this one loop. */
static void
send_queued(void)
{
	static int sending;

	if (sending)
		return;
	sending = 1;
	while (queue != NULL && inflight < MAX_INFLIGHT) {
		struct entry *e = queue;

		queue = e->queue_next;
		if (queue == NULL)
			queue_tail = &queue;
		e->queue_next = NULL;
		inflight++;
		ares_query(channel, e->name, 1 /* C_IN */, (int)e->type,
		    query_cb, e);
	}
	sending = 0;
	arm_timer();
}

static void
entry_clear(struct entry *e)
{
	for (size_t i = 0; i < e->nsrv; i++)
		free(e->srv[i].target);
	free(e->srv);
	free(e->addr);
	e->srv = NULL;
	e->addr = NULL;
	e->nsrv = e->naddr = 0;
}

static void
entry_free(struct entry *e)
{
	entry_clear(e);
	free(e->key);
	free(e->name);
	free(e);
}

static void
waiter_unlink(struct waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->e->nwaiting--;
}

/* Tell the waiters of e that are due (all, once e is answered). */
/* One at a time off the list: a callback may ask again (its waiter
 * joins the list) or cancel another (it leaves the list). */
static void
deliver_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	double now = mono_now(l);

	while (ready != NULL) {
		struct waiter *x = ready;
		struct entry *e = x->e;
		struct dns_result r = {
			.status = e->status, .srv = e->srv, .nsrv = e->nsrv,
			.addr = e->addr, .naddr = e->naddr,
			.ttl = e->expires > now ? (uint32_t)(e->expires - now) : 0,
		};

		ready = x->ready_next;
		if (ready == NULL)
			ready_tail = &ready;
		/* Still a waiter during the call: e, which r points into,
		 * stays (make_room spares entries with waiters). */
		x->delivering = 1;
		x->cb(x->arg, &r);
		waiter_unlink(x);
		free(x);
	}
}

static void
make_ready(struct waiter *w)
{
	if (w->is_ready)
		return;
	w->is_ready = 1;
	w->ready_next = NULL;
	*ready_tail = w;
	ready_tail = &w->ready_next;
	if (!ev_is_active(&deliver_timer)) {
		ev_timer_set(&deliver_timer, 0., 0.);
		ev_timer_start(loop, &deliver_timer);
	}
}

/* The answer is in: keep what it says, tell everyone waiting. */
static void
answered(struct entry *e, enum dns_status st, uint32_t ttl)
{
	e->pending = 0;
	e->status = st;
	if (ttl > MAX_TTL)
		ttl = MAX_TTL;
	/* A failure is not kept: the next asker tries again. */
	e->expires = mono_now(loop) + (st == DNS_FAIL ? 0 : ttl);
	for (struct waiter *w = waiters; w != NULL; w = w->next)
		if (w->e == e)
			make_ready(w);
}

static void
parse_srv(struct entry *e, const unsigned char *abuf, int alen,
    uint32_t *ttl)
{
	struct ares_srv_reply *list = NULL, *r;
	size_t n = 0;

	if (ares_parse_srv_reply(abuf, alen, &list) != ARES_SUCCESS)
		return;
	for (r = list; r != NULL; r = r->next)
		n++;
	if (n > MAX_RECORDS)
		n = MAX_RECORDS;
	e->srv = xcalloc(n ? n : 1, sizeof(*e->srv));
	for (r = list; r != NULL && e->nsrv < n; r = r->next) {
		struct dns_srv *s = &e->srv[e->nsrv];

		/* RFC 2782: a lone "." target: the service is not offered
		 * at this domain. */
		if (r->host == NULL || r->host[0] == '\0' ||
		    strcmp(r->host, ".") == 0)
			continue;
		s->target = xstrdup(r->host);
		s->priority = r->priority;
		s->weight = r->weight;
		s->port = r->port;
		e->nsrv++;
	}
	ares_free_data(list);
	if (dns_answer_ttl(abuf, (size_t)alen, DNS_T_SRV, ttl) <= 0)
		*ttl = NEGATIVE_TTL;
}

static void
parse_addr(struct entry *e, const unsigned char *abuf, int alen,
    uint32_t *ttl)
{
	int n = MAX_RECORDS, rc;

	e->addr = xcalloc(MAX_RECORDS, sizeof(*e->addr));
	if (e->type == DNS_T_A) {
		struct ares_addrttl a[MAX_RECORDS];

		rc = ares_parse_a_reply(abuf, alen, NULL, a, &n);
		for (int i = 0; rc == ARES_SUCCESS && i < n; i++) {
			e->addr[i].family = AF_INET;
			memcpy(e->addr[i].addr, &a[i].ipaddr, 4);
			if (i == 0 || (uint32_t)a[i].ttl < *ttl)
				*ttl = a[i].ttl < 0 ? 0 : (uint32_t)a[i].ttl;
		}
	} else {
		struct ares_addr6ttl a[MAX_RECORDS];

		rc = ares_parse_aaaa_reply(abuf, alen, NULL, a, &n);
		for (int i = 0; rc == ARES_SUCCESS && i < n; i++) {
			e->addr[i].family = AF_INET6;
			memcpy(e->addr[i].addr, &a[i].ip6addr, 16);
			if (i == 0 || (uint32_t)a[i].ttl < *ttl)
				*ttl = a[i].ttl < 0 ? 0 : (uint32_t)a[i].ttl;
		}
	}
	e->naddr = rc == ARES_SUCCESS && n > 0 ? (size_t)n : 0;
}

static void
query_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct entry *e = arg;
	uint32_t ttl = NEGATIVE_TTL;

	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
		return;         /* dns_shutdown frees e */
	inflight--;
	send_queued();
	entry_clear(e);
	if (status == ARES_ENOTFOUND || status == ARES_ENODATA) {
		answered(e, DNS_NONE, NEGATIVE_TTL);
		return;
	}
	if (status != ARES_SUCCESS || abuf == NULL) {
		/* c-ares says "Could not contact DNS servers" for a REFUSED
		 * answer too (dnsmasq's for a name it does not serve). */
		log_info("dns: %s (type %u): %s", e->name, e->type,
		    status == ARES_ECONNREFUSED ? "refused by the server, or "
		    "it could not be reached" : ares_strerror(status));
		answered(e, DNS_FAIL, 0);
		return;
	}
	if (e->type == DNS_T_SRV)
		parse_srv(e, abuf, alen, &ttl);
	else
		parse_addr(e, abuf, alen, &ttl);
	if (e->nsrv == 0 && e->naddr == 0)
		answered(e, DNS_NONE, NEGATIVE_TTL);
	else
		answered(e, DNS_OK, ttl);
}

/* -- c-ares sockets and time on the loop ----------------------------- */

static void
io_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct sock *s = (struct sock *)w;

	ares_process_fd(channel,
	    (revents & EV_READ) ? s->fd : ARES_SOCKET_BAD,
	    (revents & EV_WRITE) ? s->fd : ARES_SOCKET_BAD);
	arm_timer();
}

static void
sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct sock **p = &socks, *s;

	while ((s = *p) != NULL && s->fd != fd)
		p = &s->next;
	if (!readable && !writable) {
		if (s != NULL) {
			ev_io_stop(loop, &s->io);
			*p = s->next;
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->fd = fd;
		s->next = socks;
		socks = s;
		ev_io_init(&s->io, io_cb, fd, 0);
	}
	ev_io_stop(loop, &s->io);
	ev_io_set(&s->io, fd, (readable ? EV_READ : 0) |
	    (writable ? EV_WRITE : 0));
	ev_io_start(loop, &s->io);
}

static void
timer_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timer();
}

static void
arm_timer(void)
{
	struct timeval tv, *t;

	ev_timer_stop(loop, &timer);
	if (!started)
		return;
	t = ares_timeout(channel, NULL, &tv);
	if (t == NULL)
		return;         /* nothing in flight */
	ev_timer_set(&timer, t->tv_sec + t->tv_usec / 1e6 + 0.001, 0.);
	ev_timer_start(loop, &timer);
}

/* -- the interface ---------------------------------------------------- */

int
dns_set_servers(const char *servers)
{
	int rc;

	if (!started)
		return -1;
	if (servers == NULL || *servers == '\0')
		return 0;       /* resolv.conf's, read at dns_init */
	rc = ares_set_servers_ports_csv(channel, servers);
	if (rc != ARES_SUCCESS) {
		log_warnx("dns: servers \"%s\": %s", servers,
		    ares_strerror(rc));
		return -1;
	}
	return 0;
}

int
dns_init(struct ev_loop *l, const char *servers)
{
	struct ares_options o;
	int rc;

	loop = l;
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		log_warnx("dns: c-ares: %s", ares_strerror(rc));
		return -1;
	}
	memset(&o, 0, sizeof(o));
	o.sock_state_cb = sock_state_cb;
	o.timeout = QUERY_TIMEOUT_MS;
	o.tries = 3;
	rc = ares_init_options(&channel, &o, ARES_OPT_SOCK_STATE_CB |
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		log_warnx("dns: c-ares: %s", ares_strerror(rc));
		ares_library_cleanup();
		return -1;
	}
	started = 1;
	cache = strmap_new();
	ev_init(&timer, timer_cb);
	ev_init(&deliver_timer, deliver_cb);
	if (dns_set_servers(servers) == -1) {
		dns_shutdown();
		return -1;
	}
	return 0;
}

static void
free_entry_cb(const char *key, void *value, void *arg)
{
	entry_free(value);
}

void
dns_shutdown(void)
{
	if (!started)
		return;
	for (struct waiter *w = waiters, *next; w != NULL; w = next) {
		next = w->next;
		free(w);        /* the entries go below, whatever they count */
	}
	waiters = NULL;
	ready = NULL;
	ready_tail = &ready;
	queue = NULL;           /* entries, freed with the cache below */
	queue_tail = &queue;
	inflight = 0;
	ares_destroy(channel);  /* query_cb sees ARES_EDESTRUCTION */
	ares_library_cleanup();
	started = 0;
	ev_timer_stop(loop, &timer);
	ev_timer_stop(loop, &deliver_timer);
	while (socks != NULL) {
		struct sock *s = socks;

		ev_io_stop(loop, &s->io);
		socks = s->next;
		free(s);
	}
	strmap_foreach(cache, free_entry_cb, NULL);
	strmap_free(cache);
	cache = NULL;
}

/* Room for one more entry: drop what has expired and nobody waits for;
 * if the cache is still full, every such entry. */
static void
make_room(void)
{
	void **v;
	size_t n;
	double now = mono_now(loop);

	if (strmap_count(cache) < MAX_ENTRIES)
		return;
	v = strmap_values(cache, &n);
	for (int pass = 0; pass < 2 && strmap_count(cache) >= MAX_ENTRIES;
	     pass++)
		for (size_t i = 0; i < n; i++) {
			struct entry *e = v[i];

			if (e == NULL || e->pending || e->nwaiting > 0 ||
			    (pass == 0 && e->expires > now))
				continue;
			strmap_del(cache, e->key);
			entry_free(e);
			v[i] = NULL;
		}
	free(v);
}

uint64_t
dns_query(const char *name, unsigned type, dns_cb cb, void *arg)
{
	char key[300];
	struct entry *e;
	struct waiter *w;

	snprintf(key, sizeof(key), "%u:%s", type, name);
	e = strmap_get(cache, key);
	if (e == NULL) {
		make_room();
		e = xcalloc(1, sizeof(*e));
		e->key = xstrdup(key);
		e->name = xstrdup(name);
		e->type = type;
		strmap_put(cache, key, e);
	}
	w = xcalloc(1, sizeof(*w));
	w->id = next_id++;
	w->cb = cb;
	w->arg = arg;
	w->e = e;
	w->next = waiters;
	if (waiters)
		waiters->prev = w;
	waiters = w;
	e->nwaiting++;
	if (e->pending)
		return w->id;
	if (e->expires > mono_now(loop) && e->status != DNS_FAIL) {
		make_ready(w);
		return w->id;
	}
	e->pending = 1;
	*queue_tail = e;
	queue_tail = &e->queue_next;
	send_queued();
	return w->id;
}

void
dns_cancel(uint64_t id)
{
	struct waiter *w, **p;

	for (w = waiters; w != NULL; w = w->next)
		if (w->id == id)
			break;
	if (w == NULL || w->delivering)
		return;
	for (p = &ready; *p != NULL; p = &(*p)->ready_next)
		if (*p == w) {
			*p = w->ready_next;
			if (ready_tail == &w->ready_next)
				ready_tail = p;
			break;
		}
	waiter_unlink(w);
	free(w);
}

size_t
dns_cache_count(void)
{
	return cache != NULL ? strmap_count(cache) : 0;
}
