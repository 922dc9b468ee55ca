/*
 * The XEP-0065 proxy's relay (proxy65.h): SOCKS5 connections paired by
 * their hash, activated by the module, then bytes copied both ways on
 * the loop.  A side never has more than RELAY_HIGH bytes queued for its
 * peer before reading from it stops; the peer's queue emptying into its
 * socket (on_drained) starts it again.  Rates are token buckets; a side
 * over one stops reading until the bucket has refilled.
 */
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "buf.h"
#include "conf.h"
#include "log.h"
#include "mono.h"
#include "net/conn.h"
#include "net/proxy65.h"
#include "net/socks5.h"
#include "strmap.h"
#include "xmalloc.h"
#include "xmppd.h"

#define RELAY_HIGH                                                             \
	(64 * 1024) /* bytes queued for a peer before the                      \
	               side feeding it stops reading */
#define IDLE_RECHECK                                                           \
	60.0 /* s: proxy65-idle-timeout 0 is looked                            \
	       at again this often (reload) */
#define EARLY_MAX                                                              \
	(64 * 1024) /* bytes a side may send before its                        \
	               stream is activated (held for it) */

struct bucket {
	double tokens;
	double last; /* mono_now() of the last refill */
};

struct user {
	char *name;       /* bare JID */
	unsigned streams; /* active streams it activated */
	struct bucket rate;
};

struct stream;

enum side_state {
	SIDE_HANDSHAKE, /* SOCKS5 greeting and request */
	SIDE_WAITING,   /* registered under its hash */
	SIDE_RELAY,     /* activated */
};

/* One SOCKS5 connection. */
struct side {
	struct conn *c;
	enum side_state state;
	struct socks5 s5;
	struct stream *st;  /* from the request on */
	struct side *peer;  /* while relaying */
	struct buf early;   /* read after the request, before activation */
	struct bucket rate; /* this direction of the stream */
	ev_timer rate_w;    /* resumes reading after a rate pause */
	unsigned held : 1;  /* reading stopped: the peer's queue is full */
	struct side *prev, *next;
};

/* Both parties' connections under one hash. */
struct stream {
	char hash[SOCKS5_HASH_LEN + 1];
	struct side *side[2]; /* in the order they connected */
	int active;
	struct user *user; /* the requester, once active */
	ev_timer idle_w;
	double last; /* mono_now() of the last byte moved */
};

static struct strmap *streams; /* hash -> struct stream */
static struct strmap *users;   /* bare JID -> struct user */
static struct side *all;
static struct bucket global_rate;
static struct proxy65_stats stats;
static struct conf_limits lim;

void
proxy65_set_conf(const struct conf *conf)
{
	lim = conf->limits;
}

void
proxy65_get_stats(struct proxy65_stats *st)
{
	*st = stats;
}

/* Take n bytes from b at rate bytes/s (0: unlimited) with a burst of one
 * second; returns how long to wait before reading on (0: no need). */
static double
bucket_take(struct bucket *b, size_t rate, double now, size_t n)
{
	double cap = (double)rate;

	if (rate == 0)
		return 0;
	if (b->last == 0)
		b->tokens = cap;
	else
		b->tokens += (now - b->last) * (double)rate;
	b->last = now;
	if (b->tokens > cap)
		b->tokens = cap;
	b->tokens -= (double)n;
	return b->tokens < 0 ? -b->tokens / (double)rate : 0;
}

static unsigned long long
conn_id(const struct side *s)
{
	return (unsigned long long)s->c->id;
}

static void
user_release(struct user *u)
{
	if (u == NULL || --u->streams > 0)
		return;
	strmap_del(users, u->name);
	free(u->name);
	free(u);
}

/* A side leaves its stream (its connection is gone); the stream goes
 * with its last side.  An active stream's other side is closed once
 * what it was sent has left. */
static void
stream_leave(struct side *s)
{
	struct stream *st = s->st;
	struct side *peer = s->peer;

	s->st = NULL;
	s->peer = NULL;
	for (int i = 0; i < 2; i++)
		if (st->side[i] == s)
			st->side[i] = NULL;
	if (peer != NULL) {
		peer->peer = NULL;
		conn_close(peer->c);
	}
	if (st->side[0] != NULL || st->side[1] != NULL)
		return;
	strmap_del(streams, st->hash);
	if (st->active) {
		ev_timer_stop(xmppd_loop, &st->idle_w);
		stats.active--;
		log_info("proxy65: stream %s ended", st->hash);
		user_release(st->user);
	}
	free(st);
}

static void
rate_resume(struct ev_loop *l, ev_timer *w, int revents)
{
	struct side *s = container_of(w, struct side, rate_w);

	conn_resume(s->c, CONN_PAUSE_RATE);
}

/* Copy bytes s read to its peer, with back-pressure and rates. */
static void
relay(struct side *s, const char *data, size_t len)
{
	struct side *p = s->peer;
	struct stream *st = s->st;
	double now = mono_now(xmppd_loop), wait, w;

	if (p == NULL || p->c->state != CONN_OPEN)
		return; /* the peer is going: nowhere to send */
	conn_write(p->c, data, len);
	stats.bytes += len;
	st->last = now;
	if (p->c->state == CONN_OPEN && buf_avail(&p->c->out) >= RELAY_HIGH &&
	    !s->held) {
		s->held = 1;
		conn_pause(s->c, CONN_PAUSE_UPPER);
	}
	wait = bucket_take(&s->rate, lim.proxy65_stream_rate, now, len);
	w = bucket_take(&st->user->rate, lim.proxy65_user_rate, now, len);
	if (w > wait)
		wait = w;
	w = bucket_take(&global_rate, lim.proxy65_rate, now, len);
	if (w > wait)
		wait = w;
	if (wait > 0 && !ev_is_active(&s->rate_w)) {
		conn_pause(s->c, CONN_PAUSE_RATE);
		ev_timer_set(&s->rate_w, wait, 0.);
		ev_timer_start(xmppd_loop, &s->rate_w);
	}
}

static void
idle_check(struct ev_loop *l, ev_timer *w, int revents)
{
	struct stream *st = container_of(w, struct stream, idle_w);
	double left = st->last + lim.proxy65_idle - mono_now(l);

	if (lim.proxy65_idle == 0) {
		/* Off: look again later, a reload may turn it on. */
		w->repeat = IDLE_RECHECK;
		ev_timer_again(l, w);
		return;
	}
	if (left > 0) {
		w->repeat = left;
		ev_timer_again(l, w);
		return;
	}
	log_info("proxy65: stream %s idle for %u s, closing", st->hash,
	    lim.proxy65_idle);
	for (int i = 0; i < 2; i++)
		if (st->side[i] != NULL)
			conn_kill(st->side[i]->c, "proxy65 idle timeout");
}

/* Refuse the request: the reply says why, then the connection closes. */
static void
refuse(struct side *s, unsigned code, const char *why)
{
	unsigned char r[SOCKS5_REPLY_MAX];
	size_t n;

	log_warnx("conn %llu %s: proxy65: %s", conn_id(s), s->c->addr, why);
	if (code == 0xff) {
		socks5_method_reply(r, 0);
		n = 2;
	} else
		n = socks5_reply(r, code, NULL, 0);
	conn_write(s->c, r, n);
	conn_close(s->c);
}

/* A valid CONNECT: join the stream of its hash, or start it. */
static void
request(struct side *s, const char *rest, size_t restlen)
{
	struct stream *st = strmap_get(streams, s->s5.hash);
	unsigned char r[SOCKS5_REPLY_MAX];
	size_t n;

	if (st == NULL) {
		st = xcalloc(1, sizeof(*st));
		memcpy(st->hash, s->s5.hash, sizeof(st->hash));
		strmap_put(streams, st->hash, st);
		st->side[0] = s;
	} else if (st->active || (st->side[0] != NULL && st->side[1] != NULL)) {
		refuse(s, SOCKS5_NOT_ALLOWED,
		    "a third connection for a "
		    "stream, refused");
		return;
	} else if (st->side[0] == NULL)
		st->side[0] = s;
	else
		st->side[1] = s;
	s->st = st;
	s->state = SIDE_WAITING;
	n = socks5_reply(r, SOCKS5_SUCCEEDED, s->s5.hash, s->s5.port);
	conn_write(s->c, r, n);
	log_debug("conn %llu %s: proxy65: waiting for stream %s", conn_id(s),
	    s->c->addr, st->hash);
	/* Nothing is read until the stream is activated; what came with
	 * the request waits for the peer. */
	conn_pause(s->c, CONN_PAUSE_UPPER);
	if (restlen > 0)
		buf_add(&s->early, rest, restlen);
}

static void
handshake(struct side *s, const char *data, size_t len)
{
	while (s->state == SIDE_HANDSHAKE) {
		size_t used = 0;
		unsigned char r[2];

		switch (socks5_parse(&s->s5, data, len, &used)) {
		case SOCKS5_MORE:
			return;
		case SOCKS5_METHOD:
			socks5_method_reply(r, 1);
			conn_write(s->c, r, 2);
			break;
		case SOCKS5_REQUEST:
			request(s, data + used, len - used);
			return;
		case SOCKS5_FAIL:
			refuse(s, s->s5.reply, s->s5.error);
			return;
		}
		data += used;
		len -= used;
	}
}

static void
on_data(struct conn *c, const char *data, size_t len)
{
	struct side *s = c->upper;

	switch (s->state) {
	case SIDE_HANDSHAKE:
		handshake(s, data, len);
		break;
	case SIDE_WAITING:
		/* Read before the pause took effect. */
		if (buf_avail(&s->early) + len > EARLY_MAX) {
			log_warnx("conn %llu %s: proxy65: more than %d bytes "
			          "before activation",
			    conn_id(s), c->addr, EARLY_MAX);
			conn_kill(c, "proxy65: too much before activation");
			return;
		}
		buf_add(&s->early, data, len);
		break;
	case SIDE_RELAY:
		relay(s, data, len);
		break;
	}
}

static void
on_drained(struct conn *c)
{
	struct side *s = c->upper, *p = s->peer;

	if (s->state != SIDE_RELAY || p == NULL)
		return;
	s->st->last = mono_now(xmppd_loop);
	if (p->held) {
		p->held = 0;
		conn_resume(p->c, CONN_PAUSE_UPPER);
	}
}

static void *
on_accept(struct conn *c)
{
	struct side *s;

	if (lim.proxy65_pending && stats.pending >= lim.proxy65_pending) {
		log_warnx("conn %llu %s: proxy65: %zu connections waiting "
		          "for activation (proxy65-pending), refused",
		    (unsigned long long)c->id, c->addr, stats.pending);
		return NULL;
	}
	if (streams == NULL) {
		streams = strmap_new();
		users = strmap_new();
	}
	s = xcalloc(1, sizeof(*s));
	s->c = c;
	s->state = SIDE_HANDSHAKE;
	socks5_init(&s->s5);
	ev_init(&s->rate_w, rate_resume);
	s->next = all;
	if (all != NULL)
		all->prev = s;
	all = s;
	stats.pending++;
	conn_set_timeout(
	    c, lim.proxy65_timeout, "proxy65: stream not activated in time");
	return s;
}

static void
on_close(struct conn *c)
{
	struct side *s = c->upper;

	if (s->state != SIDE_RELAY)
		stats.pending--;
	if (s->st != NULL)
		stream_leave(s);
	ev_timer_stop(xmppd_loop, &s->rate_w);
	buf_free(&s->early);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		all = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	free(s);
}

const struct conn_handler proxy65_conn_handler = {
    .on_data = on_data,
    .on_close = on_close,
    .on_accept = on_accept,
    .on_drained = on_drained,
};

/* Start relaying for s: what it sent early goes to its peer first. */
static void
side_start(struct side *s, struct side *peer)
{
	s->peer = peer;
	s->state = SIDE_RELAY;
	stats.pending--;
	conn_set_timeout(s->c, 0, NULL);
}

enum proxy65_activation
proxy65_activate(const char *hash, const char *user)
{
	struct stream *st = streams ? strmap_get(streams, hash) : NULL;
	struct user *u;
	struct side *a, *b;

	if (st == NULL)
		return PROXY65_NO_STREAM;
	if (st->active)
		return PROXY65_ACTIVE_ALREADY;
	a = st->side[0];
	b = st->side[1];
	if (a == NULL || b == NULL || a->c->state != CONN_OPEN ||
	    b->c->state != CONN_OPEN)
		return PROXY65_ONE_PARTY;
	if (lim.proxy65_streams && stats.active >= lim.proxy65_streams)
		return PROXY65_OVER_ALL;
	u = strmap_get(users, user);
	if (u != NULL && lim.proxy65_user_streams &&
	    u->streams >= lim.proxy65_user_streams)
		return PROXY65_OVER_USER;
	if (u == NULL) {
		u = xcalloc(1, sizeof(*u));
		u->name = xstrdup(user);
		strmap_put(users, u->name, u);
	}
	u->streams++;
	st->user = u;
	st->active = 1;
	st->last = mono_now(xmppd_loop);
	stats.active++;
	stats.activated++;
	side_start(a, b);
	side_start(b, a);
	ev_init(&st->idle_w, idle_check);
	st->idle_w.repeat = lim.proxy65_idle ? lim.proxy65_idle : IDLE_RECHECK;
	ev_timer_again(xmppd_loop, &st->idle_w);
	log_info("proxy65: stream %s activated by %s (conn %llu %s, conn "
	         "%llu %s)",
	    hash, user, conn_id(a), a->c->addr, conn_id(b), b->c->addr);
	conn_resume(a->c, CONN_PAUSE_UPPER);
	conn_resume(b->c, CONN_PAUSE_UPPER);
	/* Bytes sent before activation, in the order they came. */
	for (int i = 0; i < 2; i++) {
		struct side *s = st->side[i];

		if (s != NULL && s->peer != NULL && buf_avail(&s->early) > 0) {
			struct buf early = s->early;

			buf_init(&s->early);
			relay(s, buf_head(&early), buf_avail(&early));
			buf_free(&early);
		}
	}
	return PROXY65_ACTIVATED;
}

void
proxy65_shutdown(void)
{
	for (struct side *s = all; s != NULL; s = s->next)
		conn_close(s->c);
}
