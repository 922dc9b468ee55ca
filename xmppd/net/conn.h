/*
 * Connections: listeners, accept with fd headroom and per-IP caps, socket
 * I/O with TLS swapped in (STARTTLS or direct TLS), output queues with
 * water marks, timers.  The layer above (c2s) sees plaintext bytes only.
 *
 * Lifecycle: any failure, EOF or timeout, or conn_close() once the output
 * is flushed, makes the connection dead: its fd is closed at once, and in
 * the loop's before-sleep hook the handler's on_close() runs and then the
 * struct is freed.  The upper layer may keep its pointer until on_close().
 */
#ifndef XMPPD_CONN_H
#define XMPPD_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "buf.h"
#include "conf.h"
#include "netkey.h"

struct conf;
struct conn;

struct conn_handler {
	/* Plaintext bytes read from the peer. */
	void (*on_data)(struct conn *c, const char *data, size_t len);
	/* The TLS handshake completed (direct TLS or after STARTTLS). */
	void (*on_tls)(struct conn *c);
	/* The connection is gone; called from the before-sleep hook. */
	void (*on_close)(struct conn *c);
	/* Called for a new connection; returns the upper layer's state or
	 * NULL to refuse it (it is closed at once; the upper layer logs
	 * why). */
	void *(*on_accept)(struct conn *c);
	/* The deadline of conn_set_timeout passed on an open connection
	 * (not during a TLS handshake, when nothing can be said): the upper
	 * layer says why and closes (conn_close).  NULL: killed at once. */
	void (*on_timeout)(struct conn *c, const char *reason);
	/* Its connections carry stanzas and stop reading while the gate
	 * is closed (conn_set_gate: storage congested); whoever closes
	 * the gate resumes them.  HTTP requests are not gated: nothing
	 * above would resume them. */
	int gated;
	/* An outgoing connection (conn_connect) is up: TCP connected; with
	 * direct TLS the handshake starts next (on_tls follows). */
	void (*on_connected)(struct conn *c);
	/* The output queue has emptied into the socket (NULL: not asked;
	 * a relay resumes the side feeding it, net/proxy65.c). */
	void (*on_drained)(struct conn *c);
};

/* Why reading is stopped (struct conn.paused is a set of these): reading
 * goes on only when none is left, so each owner resumes only its own. */
enum conn_pause_reason {
	CONN_PAUSE_UPPER = 1,   /* the upper layer waits (SASL round trip,
	                           c2s_hold, an authentication tarpit) */
	CONN_PAUSE_OUTPUT = 2,  /* output above the high water mark */
	CONN_PAUSE_RATE = 4,    /* stanza rate limit (c2s token bucket) */
	CONN_PAUSE_GATE = 8,    /* every connection (conn_set_gate) */
};

enum conn_state {
	CONN_OPEN,          /* plaintext, or TLS established */
	CONN_STARTTLS,      /* flushing <proceed/>, then handshake */
	CONN_HANDSHAKE,     /* TLS handshake in progress */
	CONN_CLOSING,       /* flushing output, then close */
	CONN_DEAD,          /* fd closed, waiting for the reaper */
	CONN_CONNECTING,    /* outgoing: waiting for connect(2) */
};

struct conn {
	uint64_t id;
	int fd;
	enum conn_state state;
	enum listen_kind kind;   /* of the listener that accepted it */
	int local_port;          /* that listener's port */
	int direct_tls;
	int starttls_required;   /* from the listener (plain c2s only) */
	unsigned paused;         /* enum conn_pause_reason bits; 0: reading */
	SSL *ssl;                /* NULL until TLS */
	void *upper;             /* the upper layer's state (c2s, http) */
	const struct conn_handler *h;
	ev_io rio, wio;
	ev_timer timer;
	double deadline;         /* mono_now() time (mono.h); 0: none */
	const char *deadline_reason;
	double idle;             /* idle timeout in seconds, 0: none */
	double last_read;        /* mono_now() time of the last read */
	struct buf out;
	struct buf wire;         /* TLS records not yet taken by the socket */
	unsigned rd_drained:1;   /* the last socket read emptied it */
	unsigned rd_eof:1;       /* the peer closed its side */
	unsigned ticket_due:1;   /* TLS 1.3 session ticket not yet sent */
	struct conn *flush_next; /* on the flush list when queued */
	int on_flush_list;
	struct conn *dead_next;
	struct conn *more_next;  /* on the read-again list (conn.c) */
	unsigned on_more_list:1;
	unsigned rd_bulk:1;      /* its last read callback read a lot */
	unsigned long wr_iter;   /* the loop iteration wr_sent counts in */
	size_t wr_sent;          /* TLS: bytes encrypted in it */
	const char *close_reason;
	char ip[46];
	char net[NETKEY_LEN];    /* the network the per-IP limits count it
	                            under (limits ipv4-prefix, ipv6-prefix):
	                            "2001:db8:1:2::/64", or the address */
	char addr[64];           /* "ip:port" for logs */
	uint64_t bytes_in, bytes_out;
	/* A virtual connection (conn_new_virtual) has no socket: fd is -1
	 * and what is written to it waits in out for vops->flush. */
	const struct conn_virtual_ops *vops;
	void *varg;
	/* Outgoing (conn_connect): TLS as the client, from our host
	 * tls_local to tls_remote; not counted in the per-IP limits. */
	unsigned outgoing:1;
	unsigned connected:1;   /* connect(2) succeeded */
	char *tls_local, *tls_remote;
};

/*
 * A connection with no socket of its own, for a session that outlives
 * the HTTP requests carrying it (BOSH): the upper layer (h, upper) sees
 * it as any connection; the carrier (vops, varg) feeds it with h->on_data,
 * takes what is written from out when flush runs (in the before-sleep
 * hook, and once more when the connection starts closing), and is told
 * when it is gone (before h->on_close).  Pausing only sets the bits;
 * resume runs vops->resumed once nothing is left.  Timers work as for
 * any connection.
 */
struct conn_virtual_ops {
	void (*flush)(struct conn *c, void *varg);
	void (*resumed)(struct conn *c, void *varg);
	void (*gone)(struct conn *c, void *varg);
};

struct conn_stats {
	uint64_t accepted, refused;
	uint64_t bytes_in, bytes_out;
	size_t open;
};

/* Open the configured listeners, each served by the handler of its
 * kind (handlers[kind]; a listener whose kind has none is an error);
 * -1 with a message on failure. */
int conn_listen(const struct conf *conf,
    const struct conn_handler *const handlers[LISTEN__COUNT], char *err,
    size_t errlen);
/* Hand an open connection over to another upper layer (an HTTP
 * Upgrade): its callbacks get upper from now on, and the old upper
 * layer's on_close is not called.  The caller feeds the new layer any
 * bytes it had read ahead. */
void conn_set_handler(struct conn *c, const struct conn_handler *h,
    void *upper);
/* A virtual connection for the peer ip ("ip:port" addr for logs); the
 * caller sets c->upper.  It is not counted in the per-IP limits. */
struct conn *conn_new_virtual(const struct conn_handler *h,
    const struct conn_virtual_ops *vops, void *varg, const char *ip,
    const char *addr, enum listen_kind kind, int local_port);
/*
 * Open an outgoing connection to sa (server-to-server): non-blocking,
 * given timeout seconds to connect (and with direct_tls to finish the
 * handshake).  h->on_connected runs when connected; a failure kills it
 * (close_reason says why, connected stays 0) and h->on_close runs as for
 * any.  TLS, direct or after conn_starttls, is the client's side, from
 * our host local (its certificate) to remote (SNI, the name checked).
 * NULL if no socket could be made (errno).
 */
struct conn *conn_connect(const struct sockaddr *sa, socklen_t salen,
    const struct conn_handler *h, void *upper, double timeout,
    const char *local, const char *remote, int direct_tls);
/* Stop accepting (shutdown) and close listening sockets. */
void conn_unlisten(void);
/* Install the before-sleep hook that flushes output and reaps. */
void conn_init(struct ev_loop *loop);
/* Apply new limits after a reload. */
void conn_set_conf(const struct conf *conf);

/* Queue bytes; they are written in the before-sleep hook.  Past the
 * output hard limit the connection is killed (slow consumer). */
void conn_write(struct conn *c, const void *data, size_t len);
/* After queueing <proceed/>: flush it, then start a TLS handshake.  Bytes
 * already read are the caller's to discard. */
void conn_starttls(struct conn *c);
/* Flush pending output, then close. */
void conn_close(struct conn *c);
/* Close now without flushing. */
void conn_kill(struct conn *c, const char *reason);
/* Stop reading for a reason; resuming that reason restarts reading
 * once no other reason is left.  Called inside on_data, it stops the
 * reads after this one: the bytes of this call are the caller's. */
void conn_pause(struct conn *c, enum conn_pause_reason why);
void conn_resume(struct conn *c, enum conn_pause_reason why);
/* Closed, no established connection of a gated handler reads: each
 * pauses with CONN_PAUSE_GATE at its next read event; reopening does
 * not resume them (the caller does, it knows them). */
void conn_set_gate(int closed);
/* Arm the connection's deadline (seconds from now, 0 = none); reaching it
 * kills the connection with reason. */
void conn_set_timeout(struct conn *c, double seconds, const char *reason);

/* Kill the connection when nothing has been read for this long (0: off). */
void conn_set_idle(struct conn *c, double seconds);

const char *conn_tls_version(const struct conn *c);  /* "" if none */
const char *conn_tls_cipher(const struct conn *c);
void conn_get_stats(struct conn_stats *st);
/* Run the flush and reap steps now (used at shutdown). */
void conn_flush_all(void);

#endif
