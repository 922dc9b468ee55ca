/*
 * net/dns.c on a real loop against a resolver of our own on loopback UDP
 * that holds its answers for a while: a burst of distinct names is sent
 * at most MAX_INFLIGHT (64) at a time, every asker is answered, a name
 * asked twice is sent once, and a cancelled asker is not called.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "net/dns.h"
#include "unit.h"
#include "unit_loop.h"

#define NAMES 300

/* The resolver: reads queries, answers NXDOMAIN (or one A record for
 * names that start with "a") every 20 ms for all it holds. */
struct held {
	struct sockaddr_storage from;
	socklen_t fromlen;
	unsigned char buf[512];
	size_t len;
};

static int srv_fd;
static struct held held[1024];
static size_t nheld, max_held, nqueries;
static ev_io srv_io;
static ev_timer srv_timer;

static void
srv_read(struct ev_loop *l, ev_io *w, int revents)
{
	for (;;) {
		struct held *h = &held[nheld];
		ssize_t n;

		if (nheld == sizeof(held) / sizeof(held[0]))
			return;
		h->fromlen = sizeof(h->from);
		n = recvfrom(srv_fd, h->buf, sizeof(h->buf), 0,
		    (struct sockaddr *)&h->from, &h->fromlen);
		if (n < 12)
			return;
		h->len = (size_t)n;
		nheld++;
		nqueries++;
		if (nheld > max_held)
			max_held = nheld;
	}
}

static void
srv_answer(struct ev_loop *l, ev_timer *w, int revents)
{
	for (size_t i = 0; i < nheld; i++) {
		struct held *h = &held[i];
		unsigned char *b = h->buf;
		size_t len = 12;
		int isa = h->len > 13 && b[13] == 'a';

		/* Keep the question only (c-ares adds an EDNS record). */
		while (len < h->len && b[len] != 0)
			len += 1 + b[len];
		len += 1 + 4;
		if (len > h->len)
			continue;

		/* Header: QR, RD+RA; one question (as asked). */
		b[2] = 0x81;
		b[3] = isa ? 0x80 : 0x83;      /* NOERROR : NXDOMAIN */
		b[6] = 0;
		b[7] = isa ? 1 : 0;
		b[8] = b[9] = b[10] = b[11] = 0;
		if (isa && len + 16 <= sizeof(h->buf)) {
			static const unsigned char rr[16] = {
				0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4,
				192, 0, 2, 7,
			};
			memcpy(b + len, rr, sizeof(rr));
			len += sizeof(rr);
		}
		sendto(srv_fd, b, len, 0, (struct sockaddr *)&h->from,
		    h->fromlen);
	}
	nheld = 0;
}

static int answered, answered_ok, answered_none, cancelled_called;

static void
on_answer(void *arg, const struct dns_result *r)
{
	answered++;
	if (r->status == DNS_OK && r->naddr == 1 &&
	    r->addr[0].family == AF_INET && r->addr[0].addr[3] == 7)
		answered_ok++;
	else if (r->status == DNS_NONE)
		answered_none++;
}

static void
on_cancelled(void *arg, const struct dns_result *r)
{
	cancelled_called++;
}

static int want;

static int
all_answered(void)
{
	return answered >= want;
}

int
main(void)
{
	struct ev_loop *loop = ev_default_loop(0);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	char servers[64], name[64];
	uint64_t id;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	srv_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	CHECK(srv_fd >= 0);
	CHECK(bind(srv_fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	CHECK(getsockname(srv_fd, (struct sockaddr *)&sin, &sl) == 0);
	/* Room for the whole burst, so that only the cap limits it. */
	int rcv = 1 << 20;
	setsockopt(srv_fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	ev_io_init(&srv_io, srv_read, srv_fd, EV_READ);
	ev_io_start(loop, &srv_io);
	ev_timer_init(&srv_timer, srv_answer, 0.02, 0.02);
	ev_timer_start(loop, &srv_timer);

	snprintf(servers, sizeof(servers), "127.0.0.1:%u",
	    ntohs(sin.sin_port));
	CHECK(dns_init(loop, servers) == 0);

	/* A burst of distinct names: half with an A record. */
	for (int i = 0; i < NAMES; i++) {
		snprintf(name, sizeof(name), "%c%d.burst.test",
		    i % 2 ? 'a' : 'n', i);
		dns_query(name, DNS_T_A, on_answer, NULL);
	}
	/* The same name again shares the query; a cancelled asker is
	 * never called. */
	dns_query("a1.burst.test", DNS_T_A, on_answer, NULL);
	id = dns_query("a3.burst.test", DNS_T_A, on_cancelled, NULL);
	dns_cancel(id);
	want = NAMES + 1;
	CHECK(unit_run_until(loop, all_answered));
	CHECK(answered == NAMES + 1);
	CHECK(answered_ok == NAMES / 2 + 1);
	CHECK(answered_none == NAMES / 2);
	CHECK(cancelled_called == 0);
	CHECK(nqueries == NAMES);
	CHECK(max_held <= 64);
	CHECK(max_held >= 32);  /* sent in parallel, not one by one */

	/* From the cache: no new query, still answered later. */
	answered = 0;
	want = 2;
	dns_query("a5.burst.test", DNS_T_A, on_answer, NULL);
	dns_query("n4.burst.test", DNS_T_A, on_answer, NULL);
	CHECK(answered == 0);
	CHECK(unit_run_until(loop, all_answered));
	CHECK(nqueries == NAMES);
	CHECK(dns_cache_count() == NAMES);

	/* Shut down with queries sent and queued: nobody is called. */
	answered = 0;
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "late%d.burst.test", i);
		dns_query(name, DNS_T_A, on_answer, NULL);
	}
	dns_shutdown();
	ev_run(loop, EVRUN_NOWAIT);
	CHECK(answered == 0);
	close(srv_fd);
	return UNIT_DONE("dns");
}
