/*
 * Sockets and TLS below the XML stream: accept, read, queued writes
 * flushed once per loop iteration, STARTTLS, timeouts and the reaper.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "conf.h"
#include "net/conn.h"
#include "log.h"
#include "mono.h"
#include "strmap.h"
#include "net/tls.h"
#include "xmalloc.h"

#define READ_CHUNK 16384
#define READ_BUDGET (64 * 1024)    /* per connection per loop iteration */
#define LOOP_READ_BUDGET (128 * 1024) /* per loop iteration, shared by the
                                    * connections reading in bulk */
#define BULK_READ (8 * 1024)       /* a read callback taking this much
                                    * makes its connection a bulk reader */
#define HANDSHAKE_COST (16 * 1024) /* a TLS handshake step, in bytes of
                                    * the loop's read budget */
#define WRITE_BUDGET (32 * 1024)   /* TLS: bytes encrypted per connection
                                    * per loop iteration */
#define LOOP_WRITE_BUDGET (128 * 1024) /* per iteration, shared by the
                                    * connections with more queued than
                                    * WRITE_BUDGET */
#define ACCEPT_BATCH 16            /* connections accepted per callback */
#define WIRE_HIGH (64 * 1024)      /* TLS: encrypt no further ahead of the
                                    * socket than this */

struct listener {
	ev_io io;
	int fd;
	enum listen_kind kind;
	int port;
	int starttls_required;
	const struct conn_handler *h;
	char name[80];
	struct listener *next;
};

static struct ev_loop *loop;
static const struct conf *cur_conf;  /* the one of conn_set_conf */
static struct listener *listeners;
static struct conn *flush_head, *flush_tail;
static struct conn *dead_head;
static ev_prepare prepare_w;
/*
 * Reading is fair and the loop stays responsive while peers send in
 * bulk (HTTP uploads): a connection reads at most READ_BUDGET per loop
 * iteration, and the bulk readers (rd_bulk) share LOOP_READ_BUDGET per
 * iteration, so an iteration stays short whatever their number while a
 * connection that reads a little (a chat client) is always served.
 * Those left with bytes to read, or not served for want of budget, wait
 * on the read-again list (FIFO) and are read in the next iteration,
 * after the poll (more_check_cb), those not served first.  (Feeding an
 * event instead would run them again before this iteration ends: one
 * busy peer held the loop until it stopped sending.)  more_idle keeps
 * the poll from sleeping while the list is not empty.
 */
static struct conn *more_head, *more_tail;
static size_t loop_read_left = LOOP_READ_BUDGET;
/* Writing likewise: encrypting is the loop's work, so a connection
 * encrypts at most WRITE_BUDGET per iteration, those with much queued
 * share LOOP_WRITE_BUDGET, and the rest goes when the socket is found
 * writable in a later iteration (the write watcher). */
static size_t loop_write_left = LOOP_WRITE_BUDGET;
static unsigned long loop_iter;
static ev_check more_check;
static ev_idle more_idle;
static ev_timer accept_retry;
static struct strmap *per_ip;        /* network (conn.net) -> (uintptr_t)
                                        count */
static uint64_t next_id = 1;
static int spare_fd = -1;
static BIO_METHOD *bio_method;
static struct conn_stats stats;
static size_t max_conns;
static unsigned conns_per_ip;
static unsigned ipv4_prefix, ipv6_prefix;
static size_t output_max, output_high;
static double handshake_timeout;

static void conn_read_cb(struct ev_loop *l, ev_io *w, int revents);
static void conn_write_cb(struct ev_loop *l, ev_io *w, int revents);
static void flush_one(struct conn *c);
static void peer_address(const struct sockaddr_storage *ss, char *host,
    size_t len, int *port);
static void conn_socket_init(struct conn *c, int fd, const char *host,
    const char *net, int port);

void
conn_set_conf(const struct conf *conf)
{
	struct rlimit rl;
	size_t fdmax = 1024;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		fdmax = rl.rlim_cur;
	/* Headroom for listeners, the database, logs and the control
	 * socket's clients. */
	max_conns = fdmax > 64 ? fdmax - 48 : 16;
	if (conf->limits.max_connections &&
	    conf->limits.max_connections < max_conns)
		max_conns = conf->limits.max_connections;
	conns_per_ip = conf->limits.connections_per_ip;
	ipv4_prefix = conf->limits.ipv4_prefix;
	ipv6_prefix = conf->limits.ipv6_prefix;
	output_max = conf->limits.output_max;
	output_high = conf->limits.output_high;
	handshake_timeout = conf->limits.handshake_timeout;
	cur_conf = conf;
}

/* Count a connection in (delta 1) or out (-1) of its network: the key
 * is the one it was counted in under, so a reload that changes the
 * prefixes leaves the counts of open connections right. */
static void
ip_count(const char *net, int delta)
{
	uintptr_t n = (uintptr_t)strmap_get(per_ip, net);

	n += delta;
	if (n == 0)
		strmap_del(per_ip, net);
	else
		strmap_put(per_ip, net, (void *)n);
}

static void
flush_list_add(struct conn *c)
{
	if (c->on_flush_list)
		return;
	c->on_flush_list = 1;
	c->flush_next = NULL;
	if (flush_tail)
		flush_tail->flush_next = c;
	else
		flush_head = c;
	flush_tail = c;
}

/*
 * TLS talks to the socket through this BIO.  Reads go straight to
 * read(2) and note whether they emptied the socket, so that the read
 * loop can stop without the extra read(2) that would only say EAGAIN.
 * Writes are appended to c->wire and leave in the before-sleep flush:
 * one write(2) then carries what OpenSSL produced in one loop iteration
 * (the session ticket with the stream features, the closing tag with
 * close_notify) instead of one per flight or record batch.
 */
static int
bio_conn_read(BIO *b, char *out, int len)
{
	struct conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	n = read(c->fd, out, (size_t)len);
	if (n > 0) {
		c->rd_drained = n < len;
		return (int)n;
	}
	c->rd_drained = 1;
	if (n == 0) {
		c->rd_eof = 1;     /* BIO_eof(): a clean end, not an error */
		return 0;
	}
	if (errno == EAGAIN || errno == EINTR)
		BIO_set_retry_read(b);
	return -1;             /* errno tells SSL_ERROR_SYSCALL's cause */
}

static int
bio_conn_write(BIO *b, const char *in, int len)
{
	struct conn *c = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	buf_add(&c->wire, in, (size_t)len);
	flush_list_add(c);
	return len;
}

static long
bio_conn_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct conn *c = BIO_get_data(b);

	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;          /* the before-sleep hook writes c->wire */
	case BIO_CTRL_EOF:
		return c->rd_eof;
	case BIO_CTRL_WPENDING:
		return (long)buf_avail(&c->wire);
	default:
		return 0;
	}
}

static int
bio_conn_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void
timer_arm(struct conn *c)
{
	ev_tstamp now = mono_now(loop), at = 0;

	if (c->deadline)
		at = c->deadline;
	if (c->idle > 0 && (at == 0 || c->last_read + c->idle < at))
		at = c->last_read + c->idle;
	ev_timer_stop(loop, &c->timer);
	if (at) {
		ev_timer_set(&c->timer, at > now ? at - now : 0.001, 0.);
		ev_timer_start(loop, &c->timer);
	}
}

void
conn_set_timeout(struct conn *c, double seconds, const char *reason)
{
	if (c->state == CONN_DEAD)
		return;
	c->deadline = seconds > 0 ? mono_now(loop) + seconds : 0;
	c->deadline_reason = reason;
	timer_arm(c);
}

void
conn_set_idle(struct conn *c, double seconds)
{
	if (c->state == CONN_DEAD)
		return;
	c->idle = seconds;
	timer_arm(c);
}

static void
conn_timer_fired(struct ev_loop *l, ev_timer *w, int revents)
{
	struct conn *c = container_of(w, struct conn, timer);
	ev_tstamp now = mono_now(l);

	if (c->deadline && now >= c->deadline) {
		const char *why = c->deadline_reason ? c->deadline_reason :
		    "timeout";

		log_info("conn %llu %s: %s", (unsigned long long)c->id,
		    c->addr, why);
		if (c->state == CONN_OPEN && c->h->on_timeout != NULL) {
			/* The peer is told why (a stream error), then
			 * conn_close gives the words time to leave. */
			c->deadline = 0;
			c->h->on_timeout(c, why);
			if (c->state != CONN_OPEN)
				return;
		}
		conn_kill(c, why);
		return;
	}
	if (c->idle > 0 && now >= c->last_read + c->idle &&
	    (c->paused & CONN_PAUSE_RATE)) {
		/* We are the ones not reading: the peer has more to say
		 * than the stanza rate limit lets through. */
		c->last_read = now;
	} else if (c->idle > 0 && now >= c->last_read + c->idle) {
		log_info("conn %llu %s: idle for %.0f s, closing",
		    (unsigned long long)c->id, c->addr, c->idle);
		conn_kill(c, "idle timeout");
		return;
	}
	timer_arm(c);
}

static void
more_list_add(struct conn *c)
{
	if (c->on_more_list)
		return;
	c->on_more_list = 1;
	c->more_next = NULL;
	if (more_tail != NULL)
		more_tail->more_next = c;
	else
		more_head = c;
	more_tail = c;
}

static void
more_list_remove(struct conn *c)
{
	struct conn **pp, *prev = NULL;

	if (!c->on_more_list)
		return;
	for (pp = &more_head; *pp != NULL; prev = *pp, pp = &(*pp)->more_next)
		if (*pp == c) {
			*pp = c->more_next;
			if (more_tail == c)
				more_tail = prev;
			break;
		}
	c->on_more_list = 0;
}

static void read_ready(struct ev_loop *l, struct conn *c);

/* After the poll: a new iteration's budget, and the connections of the
 * read-again list read in their order (while the budget lasts; the
 * rest stay first in line), before those the poll found ready. */
static void
more_check_cb(struct ev_loop *l, ev_check *w, int revents)
{
	struct conn *c, *list = more_head;

	loop_read_left = LOOP_READ_BUDGET;
	loop_write_left = LOOP_WRITE_BUDGET;
	loop_iter++;
	if (ev_is_active(&more_idle)) {
		ev_ref(l);
		ev_idle_stop(l, &more_idle);
	}
	more_head = more_tail = NULL;
	while ((c = list) != NULL && loop_read_left > 0) {
		list = c->more_next;
		c->on_more_list = 0;
		if ((c->state == CONN_OPEN || c->state == CONN_HANDSHAKE) &&
		    !c->paused && ev_is_active(&c->rio))
			read_ready(l, c);
	}
	/* Not served: ahead of those just read, in their order.  One
	 * killed meanwhile (by what another one read) is left out: it was
	 * on no list conn_kill could find it on, and the reaper frees it. */
	if (c != NULL) {
		struct conn *head = NULL, *tail = NULL, *next;

		for (; c != NULL; c = next) {
			next = c->more_next;
			if (c->state == CONN_DEAD) {
				c->on_more_list = 0;
				continue;
			}
			c->more_next = NULL;
			if (tail != NULL)
				tail->more_next = c;
			else
				head = c;
			tail = c;
		}
		if (head != NULL) {
			tail->more_next = more_head;
			if (more_head == NULL)
				more_tail = tail;
			more_head = head;
		}
	}
}

static void
more_idle_cb(struct ev_loop *l, ev_idle *w, int revents)
{
	/* Only there to make the poll return at once: more_check_cb. */
}

void
conn_kill(struct conn *c, const char *reason)
{
	if (c->state == CONN_DEAD)
		return;
	more_list_remove(c);
	log_debug("conn %llu %s: closed (%s)", (unsigned long long)c->id,
	    c->addr, reason);
	c->state = CONN_DEAD;
	c->close_reason = reason;
	ev_io_stop(loop, &c->rio);
	ev_io_stop(loop, &c->wio);
	ev_timer_stop(loop, &c->timer);
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->vops != NULL) {
		buf_free(&c->out);
		c->dead_next = dead_head;
		dead_head = c;
		return;
	}
	/* What TLS wrote last (a fatal alert saying why the handshake
	 * failed) goes out if the socket takes it now; no waiting. */
	if (buf_avail(&c->wire) > 0 &&
	    write(c->fd, buf_head(&c->wire), buf_avail(&c->wire)) < 0)
		log_debug("conn %llu %s: TLS alert not sent: %s",
		    (unsigned long long)c->id, c->addr, strerror(errno));
	close(c->fd);
	c->fd = -1;
	buf_free(&c->out);
	buf_free(&c->wire);
	if (!c->outgoing)
		ip_count(c->net, -1);
	stats.open--;
	c->dead_next = dead_head;
	dead_head = c;
	if (spare_fd < 0)
		spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void
conn_close(struct conn *c)
{
	if (c->state == CONN_DEAD || c->state == CONN_CLOSING)
		return;
	if (c->state == CONN_HANDSHAKE) {
		/* Nothing can be said to a peer without TLS yet. */
		conn_kill(c, "closed during the TLS handshake");
		return;
	}
	if (c->state == CONN_CONNECTING) {
		conn_kill(c, "closed while connecting");
		return;
	}
	c->state = CONN_CLOSING;
	ev_io_stop(loop, &c->rio);
	c->deadline = mono_now(loop) + 5;
	c->deadline_reason = "close: peer not reading";
	timer_arm(c);
	flush_list_add(c);
}

void
conn_pause(struct conn *c, enum conn_pause_reason why)
{
	c->paused |= why;
	ev_io_stop(loop, &c->rio);
}

static int gate_closed;

void
conn_set_gate(int closed)
{
	gate_closed = closed;
}

void
conn_resume(struct conn *c, enum conn_pause_reason why)
{
	c->paused &= ~(unsigned)why;
	if (c->paused)
		return;
	if (c->vops != NULL) {
		if (c->state == CONN_OPEN)
			c->vops->resumed(c, c->varg);
		return;
	}
	if (c->state == CONN_OPEN || c->state == CONN_HANDSHAKE) {
		ev_io_start(loop, &c->rio);
		/* TLS may hold decrypted bytes the socket won't signal. */
		if (c->ssl && c->state == CONN_OPEN)
			ev_feed_event(loop, &c->rio, EV_READ);
	}
}

void
conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->state == CONN_DEAD)
		return;
	if (buf_avail(&c->out) + len > output_max) {
		log_warnx("conn %llu %s: output queue over %zu bytes, "
		    "disconnecting slow reader", (unsigned long long)c->id,
		    c->addr, output_max);
		conn_kill(c, "output limit");
		return;
	}
	buf_add(&c->out, data, len);
	flush_list_add(c);
}

void
conn_starttls(struct conn *c)
{
	if (c->state != CONN_OPEN || c->ssl)
		return;
	c->state = CONN_STARTTLS;
	ev_io_stop(loop, &c->rio);
	flush_list_add(c);
}

static int
ssl_fail(struct conn *c, const char *what, int ret)
{
	int e = SSL_get_error(c->ssl, ret);
	char msg[256] = "";
	unsigned long ec;

	switch (e) {
	case SSL_ERROR_WANT_READ:
		ev_io_start(loop, &c->rio);
		return 0;
	case SSL_ERROR_WANT_WRITE:
		ev_io_start(loop, &c->wio);
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		conn_kill(c, "TLS closed by peer");
		return -1;
	case SSL_ERROR_SYSCALL:
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		conn_kill(c, "connection reset");
		return -1;
	default:
		if ((ec = ERR_get_error()) != 0)
			ERR_error_string_n(ec, msg, sizeof(msg));
		ERR_clear_error();
		log_info("conn %llu %s: TLS error during %s: %s",
		    (unsigned long long)c->id, c->addr, what, msg);
		conn_kill(c, "TLS error");
		return -1;
	}
}

static void
handshake_step(struct conn *c)
{
	int r;

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->state = CONN_OPEN;
		log_debug("conn %llu %s: TLS established: %s %s",
		    (unsigned long long)c->id, c->addr,
		    SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
		c->deadline = 0;
		timer_arm(c);
		c->ticket_due = SSL_version(c->ssl) >= TLS1_3_VERSION;
		c->h->on_tls(c);
		if (buf_avail(&c->out) > 0)
			flush_list_add(c);
		if (c->state == CONN_OPEN && !c->paused) {
			ev_io_start(loop, &c->rio);
			/* With read-ahead the client's first bytes after its
			 * Finished may already sit decrypted-to-be in the TLS
			 * buffer, where the socket will not signal them. */
			if (SSL_has_pending(c->ssl))
				ev_feed_event(loop, &c->rio, EV_READ);
		}
		return;
	}
	ssl_fail(c, "TLS handshake", r);
}

static void
start_tls(struct conn *c)
{
	BIO *bio = BIO_new(bio_method);

	if (bio != NULL)
		BIO_set_data(bio, c);
	if (bio == NULL)
		c->ssl = NULL;
	else if (c->outgoing)
		c->ssl = tls_new_client_ssl(bio, c->tls_local, c->tls_remote,
		    c->direct_tls);
	else {
		c->ssl = tls_new_ssl(bio, c->kind == LISTEN_HTTPS ?
		    TLS_ALPN_HTTP : c->kind == LISTEN_S2S ||
		    c->kind == LISTEN_S2S_TLS ? TLS_ALPN_XMPP_SERVER :
		    TLS_ALPN_XMPP);
		/* A server's certificate may authenticate it (XEP-0178). */
		if (c->ssl != NULL && (c->kind == LISTEN_S2S ||
		    c->kind == LISTEN_S2S_TLS))
			tls_request_peer_cert(c->ssl);
	}
	if (c->ssl == NULL) {
		log_warnx("conn %llu %s: cannot create TLS session",
		    (unsigned long long)c->id, c->addr);
		conn_kill(c, "TLS setup failed");
		return;
	}
	c->state = CONN_HANDSHAKE;
	conn_set_timeout(c, handshake_timeout, "TLS handshake timeout");
	/* The first step when the ClientHello is readable, in the read
	 * callback, charged to the iteration's budget (HANDSHAKE_COST):
	 * sixteen accepted together with their ClientHellos waiting were
	 * sixteen handshakes in one callback.  An outgoing connection's
	 * client speaks first: its ClientHello now. */
	if (c->outgoing) {
		handshake_step(c);
		return;
	}
	ev_io_start(loop, &c->rio);
}

/* Write b (c->wire, or c->out on plain TCP, which counts as payload)
 * to the socket: 1 once it is empty, 0 if the socket is full (the write
 * watcher waits for room) or the connection died. */
static int
sock_flush(struct conn *c, struct buf *b)
{
	while (buf_avail(b) > 0) {
		ssize_t n = write(c->fd, buf_head(b), buf_avail(b));

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				ev_io_start(loop, &c->wio);
			else
				conn_kill(c, "write error");
			return 0;
		}
		if (b == &c->out) {
			c->bytes_out += (size_t)n;
			stats.bytes_out += (size_t)n;
		}
		buf_consume(b, (size_t)n);
	}
	if (b == &c->wire)
		buf_free(b);
	return 1;
}

/* TLS: encrypt c->out into c->wire, WIRE_HIGH at a time.  1 when done
 * (or c->wire is full), 0 when TLS waits for the peer (ssl_fail armed
 * the watcher), -1 if the connection died. */
static int
encrypt_out(struct conn *c, size_t limit)
{
	size_t done = 0;

	if (c->ticket_due && buf_avail(&c->out) > 0) {
		/* RFC 8446 §4.6.1: a ticket may be sent any time after the
		 * client's Finished; this one leaves with the data. */
		c->ticket_due = 0;
		if (SSL_new_session_ticket(c->ssl) != 1)
			ERR_clear_error();
	}
	while (buf_avail(&c->out) > 0 && buf_avail(&c->wire) < WIRE_HIGH &&
	    done < limit) {
		size_t len = buf_avail(&c->out);
		int r;

		if (len > limit - done)
			len = limit - done;
		ERR_clear_error();
		r = SSL_write(c->ssl, buf_head(&c->out),
		    (int)(len > WIRE_HIGH ? WIRE_HIGH : len));
		if (r <= 0) {
			ssl_fail(c, "write", r);
			return c->state == CONN_DEAD ? -1 : 0;
		}
		c->bytes_out += (size_t)r;
		stats.bytes_out += (size_t)r;
		buf_consume(&c->out, (size_t)r);
		done += (size_t)r;
		c->wr_sent += (size_t)r;
		loop_write_left -= (size_t)r < loop_write_left ? (size_t)r :
		    loop_write_left;
	}
	/* Closing: close_notify leaves with the closing tag. */
	if (c->state == CONN_CLOSING && buf_avail(&c->out) == 0 &&
	    !(SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN)) {
		ERR_clear_error();
		SSL_shutdown(c->ssl);
	}
	return 1;
}

/* TLS: what c may still encrypt in this iteration. */
static size_t
write_allowance(const struct conn *c)
{
	size_t left = c->wr_sent < WRITE_BUDGET ? WRITE_BUDGET - c->wr_sent : 0;

	if (buf_avail(&c->out) > WRITE_BUDGET && left > loop_write_left)
		left = loop_write_left;
	return left;
}

/* Write out as much of c->out as the socket takes (TLS: as much as
 * this iteration's budget allows, write_allowance). */
static void
flush_one(struct conn *c)
{
	if (c->vops != NULL) {
		c->vops->flush(c, c->varg);
		return;
	}
	if (c->state == CONN_CONNECTING)
		return;         /* connected() flushes */
	if (c->wr_iter != loop_iter) {
		c->wr_iter = loop_iter;
		c->wr_sent = 0;
	}
	for (;;) {
		if (c->ssl == NULL) {
			if (!sock_flush(c, &c->out))
				return;
			break;
		}
		/* During the handshake only its own flights go out. */
		int more = c->state == CONN_HANDSHAKE ? 1 :
		    encrypt_out(c, write_allowance(c));

		if (more < 0 || !sock_flush(c, &c->wire) || more == 0)
			return;
		if (buf_avail(&c->out) == 0 || (c->state != CONN_OPEN &&
		    c->state != CONN_CLOSING))
			break;
		if (write_allowance(c) == 0) {
			/* The rest in a later iteration, once the socket
			 * is found writable. */
			ev_io_start(loop, &c->wio);
			return;
		}
	}
	ev_io_stop(loop, &c->wio);
	if (buf_avail(&c->out) > 0)
		return;       /* written once the handshake is done */
	buf_free(&c->out);    /* idle connections hold no output memory */
	if (c->state == CONN_STARTTLS)
		start_tls(c);
	else if (c->state == CONN_CLOSING)
		conn_kill(c, "closed");
	else {
		if (c->paused & CONN_PAUSE_OUTPUT) {
			/* resume reading paused by our own output high
			 * water mark */
			conn_resume(c, CONN_PAUSE_OUTPUT);
		}
		if (c->h->on_drained != NULL && c->state == CONN_OPEN)
			c->h->on_drained(c);
	}
}

/* connect(2) finished, for better or worse. */
static void
connected(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	ev_io_stop(loop, &c->wio);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		log_info("conn %llu %s: connect: %s",
		    (unsigned long long)c->id, c->addr, strerror(err));
		conn_kill(c, err == ECONNREFUSED ? "connection refused" :
		    err == ETIMEDOUT ? "connect timed out" :
		    err == EHOSTUNREACH || err == ENETUNREACH ?
		    "host unreachable" : "connect failed");
		return;
	}
	c->state = CONN_OPEN;
	c->connected = 1;
	log_debug("conn %llu %s: connected", (unsigned long long)c->id,
	    c->addr);
	conn_set_timeout(c, 0, NULL);   /* the upper layer sets its own */
	c->h->on_connected(c);
	if (c->state != CONN_OPEN)
		return;
	if (c->direct_tls)
		start_tls(c);   /* the handshake's deadline, then on_tls */
	else {
		ev_io_start(loop, &c->rio);
		if (buf_avail(&c->out) > 0)
			flush_list_add(c);
	}
}

static void
conn_write_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct conn *c = container_of(w, struct conn, wio);

	if (c->state == CONN_CONNECTING) {
		connected(c);
		return;
	}
	flush_one(c);
}

struct conn *
conn_connect(const struct sockaddr *sa, socklen_t salen,
    const struct conn_handler *h, void *upper, double timeout,
    const char *local, const char *remote, int direct_tls)
{
	struct sockaddr_storage ss;
	struct conn *c;
	char host[INET6_ADDRSTRLEN];
	int fd, port, one = 1;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		return NULL;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, sa, salen < sizeof(ss) ? salen : sizeof(ss));
	peer_address(&ss, host, sizeof(host), &port);
	c = xcalloc(1, sizeof(*c));
	c->id = next_id++;
	c->fd = fd;
	c->h = h;
	c->upper = upper;
	c->outgoing = 1;
	c->direct_tls = direct_tls;
	c->tls_local = xstrdup(local);
	c->tls_remote = xstrdup(remote);
	c->state = CONN_CONNECTING;
	conn_socket_init(c, fd, host, host, port);
	stats.open++;
	if (connect(fd, sa, salen) == -1 && errno != EINPROGRESS) {
		int e = errno;

		/* Told at once: still through on_close, never before
		 * conn_connect returns (the reaper runs later). */
		log_info("conn %llu %s: connect: %s",
		    (unsigned long long)c->id, c->addr, strerror(e));
		conn_kill(c, "connect failed");
		return c;
	}
	conn_set_timeout(c, timeout, "connect timed out");
	ev_io_start(loop, &c->wio);
	return c;
}

static void
conn_read_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct conn *c = container_of(w, struct conn, rio);

	/* Waiting for its turn in the next iteration, or a bulk reader
	 * (or a handshake: a burst of them is a burst of public-key
	 * operations) when this iteration's share is spent. */
	if (c->on_more_list)
		return;
	if ((c->rd_bulk || c->state == CONN_HANDSHAKE) &&
	    loop_read_left == 0) {
		more_list_add(c);
		return;
	}
	read_ready(l, c);
}

static void read_some(struct ev_loop *l, struct conn *c);

static void
read_ready(struct ev_loop *l, struct conn *c)
{
	if (c->state == CONN_HANDSHAKE) {
		loop_read_left -= HANDSHAKE_COST < loop_read_left ?
		    HANDSHAKE_COST : loop_read_left;
		handshake_step(c);
		return;
	}
	read_some(l, c);
}

/* One connection's reads of this iteration: READ_BUDGET at most. */
static void
read_some(struct ev_loop *l, struct conn *c)
{
	char data[READ_CHUNK];
	size_t budget = READ_BUDGET;
	int drained = 0;

	if (gate_closed && c->h->gated && c->state == CONN_OPEN) {
		conn_pause(c, CONN_PAUSE_GATE);
		return;
	}
	while (c->state == CONN_OPEN && !c->paused && budget > 0) {
		ssize_t n;

		if (c->ssl) {
			ERR_clear_error();
			int r = SSL_read(c->ssl, data, sizeof(data));
			if (r <= 0) {
				ssl_fail(c, "read", r);
				return;
			}
			n = r;
			drained = c->rd_drained && !SSL_has_pending(c->ssl);
		} else {
			n = read(c->fd, data, sizeof(data));
			if (n == 0) {
				conn_kill(c, "connection closed by peer");
				return;
			}
			if (n < 0) {
				if (errno != EAGAIN && errno != EINTR)
					conn_kill(c, "read error");
				return;
			}
			drained = (size_t)n < sizeof(data);
		}
		c->bytes_in += (size_t)n;
		stats.bytes_in += (size_t)n;
		c->last_read = mono_now(l);
		budget -= (size_t)n < budget ? (size_t)n : budget;
		loop_read_left -= (size_t)n < loop_read_left ? (size_t)n :
		    loop_read_left;
		c->h->on_data(c, data, (size_t)n);
		if (buf_avail(&c->out) > output_high && c->state == CONN_OPEN &&
		    !(c->paused & CONN_PAUSE_OUTPUT)) {
			/* Our peer is not reading what it asks for: stop
			 * reading it until its output drains. */
			conn_pause(c, CONN_PAUSE_OUTPUT);
		}
		/* Level-triggered: bytes arriving later wake us again. */
		if (drained)
			break;
	}
	c->rd_bulk = READ_BUDGET - budget >= BULK_READ;
	if (budget == 0 && c->state == CONN_OPEN && !c->paused)
		more_list_add(c);   /* the rest in the next iteration */
}

/* The peer's numeric address into host (len at least INET6_ADDRSTRLEN;
 * "?" if not IP), an IPv4-mapped IPv6 address as IPv4, and its port. */
static void
peer_address(const struct sockaddr_storage *ss, char *host, size_t len,
    int *port)
{
	snprintf(host, len, "?");
	*port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, host, (socklen_t)len);
		*port = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, (socklen_t)len);
		*port = ntohs(sin6->sin6_port);
		if (strncmp(host, "::ffff:", 7) == 0 && strchr(host, '.'))
			memmove(host, host + 7, strlen(host + 7) + 1);
	}
}

/* A connection's peer names and watchers on socket fd. */
static void
conn_socket_init(struct conn *c, int fd, const char *host, const char *net,
    int port)
{
	snprintf(c->ip, sizeof(c->ip), "%s", host);
	snprintf(c->net, sizeof(c->net), "%s", net);
	snprintf(c->addr, sizeof(c->addr), strchr(host, ':') ? "[%s]:%d" :
	    "%s:%d", host, port);
	c->last_read = mono_now(loop);
	ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
	ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
	ev_init(&c->timer, conn_timer_fired);
}

static void
new_conn(int fd, struct sockaddr_storage *ss, const struct listener *li)
{
	enum listen_kind kind = li->kind;
	struct conn *c;
	char host[INET6_ADDRSTRLEN], net[NETKEY_LEN];
	int port, one = 1;

	peer_address(ss, host, sizeof(host), &port);
	if (stats.open >= max_conns) {
		log_warnx("refusing connection from %s: %zu connections open "
		    "(limit)", host, stats.open);
		stats.refused++;
		close(fd);
		return;
	}
	netkey_of(host, ipv4_prefix, ipv6_prefix, net, sizeof(net));
	/* A trusted HTTP proxy carries many clients: the HTTP layer sees
	 * each one (net/http.c), the per-IP cap would only cut them all
	 * off together. */
	if (conns_per_ip &&
	    (uintptr_t)strmap_get(per_ip, net) >= conns_per_ip &&
	    !((kind == LISTEN_HTTP || kind == LISTEN_HTTPS) &&
	    conf_trusted_proxy(cur_conf, host))) {
		log_warnx("refusing connection from %s: %u connections from "
		    "%s (connections-per-ip)", host, conns_per_ip, net);
		stats.refused++;
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = xcalloc(1, sizeof(*c));
	c->id = next_id++;
	c->fd = fd;
	c->h = li->h;
	c->kind = kind;
	c->local_port = li->port;
	c->direct_tls = kind == LISTEN_C2S_TLS || kind == LISTEN_HTTPS ||
	    kind == LISTEN_S2S_TLS;
	c->starttls_required = li->starttls_required;
	conn_socket_init(c, fd, host, net, port);
	ip_count(c->net, 1);
	stats.open++;
	log_debug("conn %llu %s: accepted (%s)", (unsigned long long)c->id,
	    c->addr, c->direct_tls ? "direct TLS" : "plain");
	c->upper = c->h->on_accept(c);
	if (c->upper == NULL) {
		stats.refused++;
		conn_kill(c, "refused");
		return;
	}
	stats.accepted++;
	if (c->direct_tls)
		start_tls(c);
	else
		ev_io_start(loop, &c->rio);
}

struct conn *
conn_new_virtual(const struct conn_handler *h,
    const struct conn_virtual_ops *vops, void *varg, const char *ip,
    const char *addr, enum listen_kind kind, int local_port)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->id = next_id++;
	c->fd = -1;
	c->h = h;
	c->vops = vops;
	c->varg = varg;
	c->kind = kind;
	c->local_port = local_port;
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	netkey_of(ip, ipv4_prefix, ipv6_prefix, c->net, sizeof(c->net));
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	c->last_read = mono_now(loop);
	ev_io_init(&c->rio, conn_read_cb, -1, EV_READ);
	ev_io_init(&c->wio, conn_write_cb, -1, EV_WRITE);
	ev_init(&c->timer, conn_timer_fired);
	return c;
}

static void
accept_retry_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	for (struct listener *li = listeners; li; li = li->next)
		ev_io_start(l, &li->io);
}

/*
 * Out of descriptors (err EMFILE or ENFILE): accept the next peer on the
 * spare descriptor and close it at once, so that it is refused, not left
 * hanging in the listen queue, and the level-triggered listener does not
 * spin.  The spare is opened again (conn_kill does when this fails: a
 * descriptor is free again then).
 */
static void
refuse_one(const struct listener *li, int err)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	struct rlimit rl;
	int fd, port;

	close(spare_fd);
	spare_fd = -1;
	fd = accept4(li->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		peer_address(&ss, host, sizeof(host), &port);
		if (err == EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0)
			log_warnx("%s: out of file descriptors (limit %llu), "
			    "refused a connection from %s", li->name,
			    (unsigned long long)rl.rlim_cur, host);
		else
			log_warnx("%s: out of file descriptors (%s), refused "
			    "a connection from %s", li->name, strerror(err),
			    host);
		stats.refused++;
	}
	spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void
accept_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct listener *li = container_of(w, struct listener, io);

	/* A few at a time: each starts its TLS handshake at once, and the
	 * listener stays readable for the next iteration. */
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss = { 0 };
		socklen_t sl = sizeof(ss);
		int fd = accept4(li->fd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			new_conn(fd, &ss, li);
			continue;
		}
		if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
			return;
		if ((errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
			refuse_one(li, errno);
			continue;
		}
		log_warn("%s: accept", li->name);
		for (struct listener *x = listeners; x; x = x->next)
			ev_io_stop(l, &x->io);
		ev_timer_set(&accept_retry, 1., 0.);
		ev_timer_start(l, &accept_retry);
		return;
	}
}

static int
listen_one(const struct conf_listener *cl, const struct conn_handler *h,
    char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char port[16];
	int fd, one = 1, r;
	struct listener *li;
	const char *addr = strcmp(cl->address, "*") == 0 ? NULL : cl->address;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = addr ? AF_UNSPEC : AF_INET6;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", cl->port);
	if ((r = getaddrinfo(addr, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "listen %s port %d: %s", cl->address,
		    cl->port, gai_strerror(r));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		snprintf(err, errlen, "listen %s port %d: socket: %s",
		    cl->address, cl->port, strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (res->ai_family == AF_INET6) {
		int v6only = addr != NULL;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only,
		    sizeof(v6only));
	}
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 ||
	    listen(fd, 1024) < 0) {
		snprintf(err, errlen, "listen %s port %d: %s", cl->address,
		    cl->port, strerror(errno));
		close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	li = xcalloc(1, sizeof(*li));
	li->fd = fd;
	li->kind = cl->kind;
	li->port = cl->port;
	li->h = h;
	li->starttls_required = cl->kind == LISTEN_C2S && cl->starttls_required;
	snprintf(li->name, sizeof(li->name), "%s %s:%d",
	    conf_listen_kind_name(cl->kind), cl->address, cl->port);
	ev_io_init(&li->io, accept_cb, fd, EV_READ);
	ev_io_start(loop, &li->io);
	li->next = listeners;
	listeners = li;
	log_info("listening on %s", li->name);
	return 0;
}

int
conn_listen(const struct conf *conf,
    const struct conn_handler *const handlers[LISTEN__COUNT], char *err,
    size_t errlen)
{
	conn_set_conf(conf);
	for (size_t i = 0; i < conf->nlisteners; i++) {
		const struct conf_listener *cl = &conf->listeners[i];

		if (handlers[cl->kind] == NULL) {
			snprintf(err, errlen, "listen %s port %d: no handler for "
			    "%s listeners", cl->address, cl->port,
			    conf_listen_kind_name(cl->kind));
			return -1;
		}
		if (listen_one(cl, handlers[cl->kind], err, errlen) < 0)
			return -1;
	}
	return 0;
}

void
conn_set_handler(struct conn *c, const struct conn_handler *h, void *upper)
{
	c->h = h;
	c->upper = upper;
}

void
conn_unlisten(void)
{
	struct listener *li, *n;

	for (li = listeners; li; li = n) {
		n = li->next;
		ev_io_stop(loop, &li->io);
		close(li->fd);
		free(li);
	}
	listeners = NULL;
	ev_timer_stop(loop, &accept_retry);
}

static void
reap(void)
{
	while (dead_head) {
		struct conn *c = dead_head;

		dead_head = c->dead_next;
		if (c->vops != NULL)
			c->vops->gone(c, c->varg);
		if (c->upper)
			c->h->on_close(c);
		free(c->tls_local);
		free(c->tls_remote);
		free(c);
	}
}

void
conn_flush_all(void)
{
	while (flush_head || dead_head) {
		while (flush_head) {
			struct conn *c = flush_head;

			flush_head = c->flush_next;
			if (flush_head == NULL)
				flush_tail = NULL;
			c->on_flush_list = 0;
			if (c->state != CONN_DEAD)
				flush_one(c);
		}
		/* Dead connections may still be on no list but the dead
		 * one; their handlers may queue output for others. */
		reap();
	}
}

static void
prepare_cb(struct ev_loop *l, ev_prepare *w, int revents)
{
	conn_flush_all();
	if (more_head != NULL && !ev_is_active(&more_idle)) {
		ev_idle_start(l, &more_idle);
		ev_unref(l);
	}
}

void
conn_init(struct ev_loop *l)
{
	loop = l;
	per_ip = strmap_new();
	bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	    "xmppd conn");
	if (bio_method == NULL ||
	    !BIO_meth_set_read(bio_method, bio_conn_read) ||
	    !BIO_meth_set_write(bio_method, bio_conn_write) ||
	    !BIO_meth_set_ctrl(bio_method, bio_conn_ctrl) ||
	    !BIO_meth_set_create(bio_method, bio_conn_create))
		fatalx("cannot create the connection BIO method");
	ev_prepare_init(&prepare_w, prepare_cb);
	ev_prepare_start(loop, &prepare_w);
	ev_unref(loop);
	ev_check_init(&more_check, more_check_cb);
	ev_check_start(loop, &more_check);
	ev_unref(loop);
	ev_idle_init(&more_idle, more_idle_cb);
	ev_init(&accept_retry, accept_retry_cb);
	spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

const char *
conn_tls_version(const struct conn *c)
{
	return c->ssl ? SSL_get_version(c->ssl) : "";
}

const char *
conn_tls_cipher(const struct conn *c)
{
	return c->ssl ? SSL_get_cipher_name(c->ssl) : "";
}

void
conn_get_stats(struct conn_stats *st)
{
	*st = stats;
}
