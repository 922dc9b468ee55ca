/*
 * xmppbench: a single-process XMPP client load generator (libev, OpenSSL,
 * expat) that measures full logins per second with their latency, and
 * holds many idle authenticated TLS sessions so the server's memory per
 * session can be read.  See tests/bench/README.md.
 *
 * A login is: TCP connect, stream open, STARTTLS (or direct TLS, XEP-0368,
 * or no TLS at all), TLS handshake, stream restart, SASL SCRAM-SHA-256 or
 * SCRAM-SHA-1 (RFC 5802, RFC 7677) or PLAIN (RFC 4616), by default the
 * strongest the server offers, stream restart, resource binding (RFC 6120
 * §7).  Login mode then closes
 * with </stream:stream>; idle mode sends initial presence and keeps the
 * session open with no parser and released TLS buffers.
 *
 * Roster mode measures a login with a seeded roster (RFC 6121): it first
 * holds the odd-numbered users online and available, then logs in the
 * even-numbered ones with a roster get, initial presence, and a wait for
 * the presence of each online contact (the answers to the server's
 * probes), reading the server's CPU time and counting the presence
 * broadcasts the online sessions receive.
 *
 * Chat mode has pairs of online users message each other with a bounded
 * window of undelivered messages; presence mode logs in users with seeded
 * rosters and has them change their status, counting the presence
 * stanzas delivered to their online contacts.  Both carry the send time
 * in the stanza (both ends are this process) for the latency.
 *
 * With --sm a session enables XEP-0198 stream management with resumption
 * after binding, counts the stanzas it receives and answers the server's
 * <r/>.  Resume mode logs sessions in that way, then drops each TCP
 * connection and reconnects with TLS session resumption, SASL and
 * <resume/>, reading the server's CPU time for both.  CSI mode measures
 * what an observer with a seeded roster receives while its contacts
 * change status, active or inactive (XEP-0352).
 *
 * Muc mode measures group chat (XEP-0045): sessions join rooms of N
 * occupants (the first creates each room and submits an instant
 * configuration), several senders per room send groupchat messages with
 * a window, and every occupant counts the copies it receives; then
 * further sessions join the first room with history and leave again,
 * one at a time, for the server's CPU per join.  The server's memory is
 * read before and after the joins (memory per occupant).
 *
 * --transport ws|wss carries the same XMPP over WebSocket (RFC 7395 over
 * RFC 6455), on plain TCP or direct TLS: an HTTP Upgrade to the
 * "xmpp" subprotocol on --ws-path, then each element we send is one
 * masked text frame, <open/> and <close/> (urn:ietf:params:xml:ns:
 * xmpp-framing) stand for the stream header and its end, and the
 * server's frames are reassembled and fed to the same parser, primed
 * with an implicit stream root.  Everything above runs unchanged on it.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>

#include <arpa/inet.h>
#include <netinet/in.h>
/* linux/tcp.h, not netinet/tcp.h: its struct tcp_info has the receive
 * counters (tcpi_data_segs_in, tcpi_bytes_received) csi mode reads. */
#include <linux/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <expat.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "buf.h"
#include "log.h"
#include "xmalloc.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define NS_STREAM "http://etherx.jabber.org/streams"
#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_CLIENT "jabber:client"
#define NS_ROSTER "jabber:iq:roster"
#define NS_SM "urn:xmpp:sm:3"
#define NS_CSI "urn:xmpp:csi:0"
#define NS_PING "urn:xmpp:ping"
#define NS_CAPS "http://jabber.org/protocol/caps"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_PUBSUB "http://jabber.org/protocol/pubsub"
#define NS_PUBSUB_EVENT "http://jabber.org/protocol/pubsub#event"
#define PEP_NODE "urn:xmpp:tmp:bench"                   /* pep mode's node */
#define PEP_CAPS_NODE "https://xmppd.invalid/xmppbench" /* XEP-0115 node */

#define HASH_LEN 32 /* the longest hash: SHA-256 */
#define NONCE_LEN 24
#define TEXT_MAX 4096      /* longest SASL payload we accept */
#define CLOSE_GRACE 5.0    /* s to wait for the server's close */
#define LOGIN_TIMEOUT 30.0 /* s for one login before it fails */
#define SWEEP_INTERVAL 0.5
#define PORTS_PER_SOURCE 25000u /* ephemeral ports used per source address */
#define ROSTER_RAMP 20          /* roster: online sessions logging in at once */
#define ROSTER_SETTLE 1.0       /* roster: s between the ramp and the run */
#define ROSTER_DRAIN 2.0        /* roster: s to wait for the last broadcasts */
#define DRAIN_POLL 0.02
#define CHAT_SETTLE 1.0      /* chat: s between the logins and the run */
#define CHAT_BODY_MAX 2000   /* chat: longest --body */
#define PRESENCE_QUIET 0.5   /* presence: s without presence = settled */
#define PRESENCE_SETTLE 10.0 /* presence: at most s to settle */
#define LATENCY_MAX 50000000 /* most latencies kept */
#define RESUME_SETTLE 1.0    /* resume: s between the logins and the drops */
#define CSI_RAMP 20          /* csi: contacts logging in at once */
#define PEP_QUIET 1.0        /* pep: s without a stanza = settled */
#define PEP_SETTLE 20.0      /* pep: at most s to settle */
#define PEP_DRAIN 5.0        /* pep: s to wait for missing notifications */
#define PEP_NODES_MAX 100    /* pep-login: --nodes */
#define NS_MUC "http://jabber.org/protocol/muc"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"
#define NS_MUC_OWNER "http://jabber.org/protocol/muc#owner"
#define NS_DATA "jabber:x:data"
#define NS_DELAY "urn:xmpp:delay"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_FRAMING "urn:ietf:params:xml:ns:xmpp-framing" /* RFC 7395 */
#define WS_HEAD_MAX 8192         /* ws: longest HTTP response head */
#define WS_MESSAGE_MAX (1u << 24) /* ws: longest message we reassemble */
#define MUC_SETTLE 1.0        /* muc: s after the logins before the RSS */
#define MUC_FILL_SETTLE 2.0   /* muc: s after the joins before the RSS */
#define MUC_JOIN_TIMEOUT 20.0 /* muc: s for one join (110, subject) */
#define MUC_DRAIN 30.0        /* muc: s without a copy = the rest is lost */
#define MUC_QUIET 30.0        /* muc: at most s for the joins' broadcasts */

enum bench_mode {
	MODE_LOGIN,
	MODE_IDLE,
	MODE_ROSTER,
	MODE_CHAT,
	MODE_PRESENCE,
	MODE_RESUME,
	MODE_CSI,
	MODE_PEP,
	MODE_PEP_LOGIN,
	MODE_MUC
};

/* CSI mode: where the run is. */
enum csi_step {
	CSI_CONTACTS, /* the contacts log in and send initial presence */
	CSI_OBSERVER, /* the observer logs in; probes answered */
	CSI_QUIET,    /* waiting for the presence traffic to settle */
	CSI_BARRIER1, /* <inactive/> (or not) and a ping: window opens */
	CSI_CHANGES,  /* the contacts change status, one at a time */
	CSI_BARRIER2, /* <active/> and a ping: window closes */
	CSI_DONE,
};

/* Roster mode runs in phases; the measured logins start after SETTLE. */
enum roster_phase {
	PHASE_RAMP,    /* the online sessions log in */
	PHASE_SETTLE,  /* their own probes and broadcasts settle */
	PHASE_MEASURE, /* the measured logins */
	PHASE_DRAIN,   /* all done; the last broadcasts arrive */
	PHASE_CLOSE,   /* the online sessions close */
};

/* The type of a received presence stanza. */
enum presence_type { PRES_AVAILABLE, PRES_UNAVAILABLE, PRES_OTHER };
enum tls_mode { TLS_STARTTLS, TLS_DIRECT, TLS_NONE };
/* How XMPP is carried: a TCP stream (RFC 6120) or WebSocket (RFC 7395)
 * on plain TCP (ws) or direct TLS (wss). */
enum transport { TRANSPORT_TCP, TRANSPORT_WS, TRANSPORT_WSS };

/* SASL mechanisms, strongest first (the order --mech auto tries). */
enum sasl_mech { MECH_SCRAM_SHA256, MECH_SCRAM_SHA1, MECH_PLAIN, MECH_COUNT };
#define MECH_AUTO MECH_COUNT

static const char *const mech_names[MECH_COUNT] = {
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "PLAIN",
};

enum conn_state {
	CS_CONNECTING,
	CS_HANDSHAKE,   /* TLS handshake in progress */
	CS_NEGOTIATING, /* stream features, SASL, bind */
	CS_IDLE,        /* logged in, parser freed, draining */
	CS_CLOSING,     /* sent </stream:stream>, awaiting close */
};

/* What the connection waits for while negotiating. */
enum conn_step {
	STEP_FEATURES, /* stream features (which ones: see flags) */
	STEP_PROCEED,
	STEP_CHALLENGE,
	STEP_SUCCESS,
	STEP_BIND,
	STEP_ROSTER,  /* roster mode: the roster result */
	STEP_PROBES,  /* roster mode: presence of the online contacts */
	STEP_ENABLED, /* --sm: <enabled/> */
	STEP_RESUMED, /* resume mode: <resumed/> */
	STEP_PEP,     /* pep-login: the last items and the ping, or --seed:
	                 the publish results */
};

/* The top-level (depth 2) element being parsed. */
enum top_elem {
	TOP_NONE,
	TOP_FEATURES,
	TOP_PROCEED,
	TOP_TLS_FAILURE,
	TOP_CHALLENGE,
	TOP_SUCCESS,
	TOP_SASL_FAILURE,
	TOP_IQ,
	TOP_PRESENCE,
	TOP_STREAM_ERROR,
	TOP_SM_ENABLED,
	TOP_SM_RESUMED,
	TOP_SM_FAILED,
	TOP_SM_R,
	TOP_SM_A,
	TOP_WS_OPEN,  /* RFC 7395 <open/>: the stream header */
	TOP_WS_CLOSE, /* RFC 7395 <close/>: the stream's end */
	TOP_OTHER,
};

/* Actions a parser callback leaves for conn_io to carry out. */
enum conn_pending {
	PENDING_NONE,
	PENDING_TLS,     /* <proceed/>: start the TLS handshake */
	PENDING_RESTART, /* <success/>: new parser, new stream header */
	PENDING_CLOSED,  /* server closed the stream */
	PENDING_FAIL,
};

/* Failure reasons, counted and printed in the summary. */
enum fail_reason {
	FAIL_CONNECT,
	FAIL_TLS,
	FAIL_IO,
	FAIL_EOF,
	FAIL_XML,
	FAIL_PROTOCOL,
	FAIL_NO_STARTTLS,
	FAIL_NO_MECH,
	FAIL_AUTH,
	FAIL_SERVER_SIG,
	FAIL_BIND,
	FAIL_ROSTER,
	FAIL_PROBES,
	FAIL_SM,
	FAIL_TLS_RESUME,
	FAIL_STREAM_ERROR,
	FAIL_TIMEOUT,
	FAIL_ABORTED,
	FAIL_COUNT
};

static const char *const fail_names[FAIL_COUNT] = {
    "connect",
    "tls",
    "io",
    "eof",
    "xml",
    "protocol",
    "no-starttls",
    "no-mechanism",
    "auth",
    "server-signature",
    "bind",
    "roster",
    "probes",
    "sm",
    "tls-not-resumed",
    "stream-error",
    "timeout",
    "aborted",
};

/* One client connection; freed as soon as it ends. */
struct conn {
	ev_io io;
	int fd;
	unsigned id; /* index into bench.conns */
	unsigned user;
	enum conn_state state;
	enum conn_step step;
	enum conn_pending pending;
	enum fail_reason fail;
	SSL *ssl;          /* NULL before TLS */
	XML_Parser parser; /* NULL when idle */
	struct buf out;    /* bytes not yet written */
	struct buf text;   /* character data of the current element */
	unsigned depth;
	enum top_elem top;
	int has_starttls, has_bind, in_mechanism;
	unsigned offered;       /* bit (1 << mech) for each mechanism offered */
	enum sasl_mech mech;    /* the one used */
	int iq_bind, iq_result; /* current iq: id='bind', type='result' */
	int iq_roster;          /* current iq: id='roster' */
	enum presence_type pres_type; /* current presence */
	long pres_from;               /* its sender's user index, -1 if none */
	int tls_up, authed;
	int logged_in; /* login complete (bind, or roster mode's probes) */
	int in_flight; /* holds one of the -c login slots */
	int online;    /* roster mode: one of the sessions held online */
	unsigned roster_items, roster_online; /* items; of which online */
	unsigned probes_seen;    /* available presence from online contacts */
	unsigned presence_count; /* presence stanzas received */
	char cnonce[NONCE_LEN + 1];
	unsigned char server_sig[HASH_LEN];
	double t_start;  /* monotonic, login start */
	double deadline; /* monotonic */
	int events;      /* currently watched */

	/* Chat mode: the current <message/>, own undelivered messages. */
	int in_message, in_body, msg_error;
	unsigned chat_window;

	/* Presence mode: in <status/>; presence stanzas still to be
	 * delivered of the status changes sent; which <show/> is next. */
	int in_status;
	unsigned pres_pending;
	int pres_away;

	/* Stream management (XEP-0198): on once <enabled/> came; stanzas
	 * received and sent since <enable/> (§4, mod 2^32); the
	 * resumption id; the current top-level element is a stanza;
	 * 'h' of the current <resumed/>, -1 if none. */
	int sm_on, has_sm, has_sm_feature, top_stanza;
	uint32_t sm_h_in, sm_h_out;
	char sm_id[128];
	long sm_h_attr;

	/* Resume mode: the TLS session (ticket) of the last connection,
	 * kept for the next; this connection is a reconnect. */
	SSL_SESSION *tls_session;
	int resuming;
	int iq_id; /* csi mode: the current iq's id is 'csiN': N, else 0 */
	struct pep_conn *pep; /* pep modes, else NULL */
	struct muc_conn *muc; /* muc mode, else NULL */
	struct ws_conn *ws;   /* --transport ws|wss, else NULL */
};

/* --transport ws|wss: one connection's WebSocket state (RFC 6455). */
struct ws_conn {
	int upgraded;       /* the server's 101 came */
	int open_deferred;  /* <open/> waits for the 101 */
	int closed;         /* a close frame came */
	struct buf in;      /* received bytes not yet decoded */
	struct buf message; /* the fragments of the current message */
	uint32_t mask_state; /* xorshift32 for the masking keys */
};

/* Muc mode: an occupant's part in the run and its room state. */
enum muc_role { MUC_OWNER, MUC_OCCUPANT, MUC_JOINER };
enum muc_state { MUC_OUT, MUC_JOINING, MUC_IN, MUC_LEAVING };

/* Muc mode: what one connection parses and counts (muc_top_end). */
struct muc_conn {
	enum muc_role role;
	enum muc_state state;
	unsigned room;    /* index of its room */
	int got_self;     /* this join's own presence (status 110) came */
	unsigned history; /* history messages of the current join */
	unsigned window;  /* own messages whose copy has not come back */
	double t_join, join_deadline;
	/* The current top-level stanza: kind (1 message, 2 presence, 3
	 * iq), type, sender (room index or -1, occupant's user or -1),
	 * what it holds; parent: the depth-3 element (1 muc#user x, 2
	 * error); its error condition. */
	int kind, type_error, type_unavailable, type_result, groupchat;
	int ours, has_subject, has_delay, has_body, parent, s110, s201;
	long from_room, from_user;
	char id[64], cond[48];
};

/* PEP modes: what one connection parses and counts (pep_top_end). */
struct pep_conn {
	/* The current top-level element: an iq's type, id and sender, the
	 * node of its disco#info query; a message's pubsub event. */
	char iq_id[64], iq_from[256], disco_node[256];
	int iq_type; /* 0 none, 1 get, 2 set, 3 result, 4 error */
	int in_disco, in_msg, in_event, event_node; /* node: 0 other, 1 pep
	                                               mode's, 2+K login's K */
	long msg_from; /* bench user index of the sender, -1 */
	unsigned event_items, event_ours;    /* items; with this run's token */
	double event_sent;                   /* t='' of the first payload, -1 */
	unsigned published, in_flight;       /* publishes sent, unanswered */
	unsigned contact_events, own_events; /* pep-login: last items */
	int ping_done;
};

/* Cached SCRAM keys of one user, derived once with PBKDF2. */
struct user_key {
	unsigned char salt[64];
	size_t saltlen;
	unsigned iterations;
	unsigned char client_key[HASH_LEN];
	unsigned char server_key[HASH_LEN];
	size_t hash_len; /* 32: SHA-256, 20: SHA-1 */
	int valid;
};

/* CSI mode: what the observer received (TLS records and their bytes,
 * header included, from the message callback; plaintext; stanzas), and
 * TCP's own count of data segments and bytes received (TCP_INFO). */
struct csi_count {
	unsigned long records, tls_bytes, plain_bytes, presence, other;
	unsigned long segs, tcp_bytes;
};

struct bench_opts {
	enum bench_mode mode;
	unsigned n;
	unsigned concurrency;
	const char *host;
	int port;
	enum tls_mode tls;
	enum sasl_mech mech; /* MECH_AUTO: the strongest offered */
	const char *domain;
	const char *user_prefix;
	unsigned users; /* distinct users; user index = (first+i)%users */
	unsigned first_user;
	const char *password; /* shared; NULL: "pw<index>" */
	unsigned sources;
	double timeout; /* -T, whole run */
	double hold;    /* -t, idle: seconds to hold after settle */
	int hold_given;
	double settle; /* idle: seconds before measuring RSS */
	double rate;   /* chat: messages/s in all, 0 = window-driven */
	pid_t server_pid;
	/* chat: odd users on a second server (server-to-server runs) */
	int peer_port;
	const char *peer_domain;
	pid_t peer_pid;
	enum transport transport;
	const char *ws_path; /* ws|wss: the resource (/xmpp-websocket) */
	const char *csv;
	const char *label;
	const char *key_cache;
	int verbose;
	int no_close_wait;  /* close right after sending </stream:stream> */
	int handshake_only; /* login: TLS handshake and close_notify only */
	int full_login;     /* login: also roster get and initial presence */
	unsigned online;    /* roster: sessions held online (odd users) */
	long roster_items;  /* roster: expected roster size, -1 unchecked */

	int sm;              /* enable stream management after binding */
	int no_tls_resume;   /* resume: reconnects with a full handshake */
	int csi_inactive;    /* csi: the observer says <inactive/> */
	unsigned item_bytes; /* pep: payload of each item (1024) */
	unsigned nodes;      /* pep-login: nodes of each contact (10) */
	int pep_notify;      /* pep-login: caps with NODE:K+notify */
	int pep_seed;        /* pep-login: publish the nodes, no caps */

	unsigned pairs;      /* chat: sessions 2k and 2k+1 talk */
	unsigned window;     /* chat: undelivered messages per sender;
	                        presence: status changes per sender */
	unsigned body_bytes; /* chat: padding in each body */

	const char *muc_domain; /* muc: the service (conference.DOMAIN) */
	unsigned rooms;         /* muc: rooms (1) */
	unsigned occupants;     /* muc: occupants of each room (100) */
	unsigned senders;       /* muc: senders in each room (10) */
	unsigned joins;         /* muc: joiners per round (10) */
	unsigned join_rounds;   /* muc: rounds of measured joins (10) */
	unsigned history;       /* muc: maxstanzas of measured joins (20) */
};

/* Muc mode: where the run is. */
enum muc_phase {
	MP_LOGIN,       /* every session logs in, initial presence */
	MP_SETTLE,      /* then MUC_SETTLE s: the RSS before the joins */
	MP_OWNERS,      /* each room's owner joins, configures it */
	MP_FILL,        /* the other occupants join, -c at a time */
	MP_FILL_SETTLE, /* MUC_FILL_SETTLE s: the RSS after the joins */
	MP_SEND,        /* the senders' groupchat messages */
	MP_JOINS,       /* joiners join room 0 with history, one at a time */
	MP_LEAVES,      /* and leave again (not measured) */
	MP_DONE,
};

/* Muc mode: the run's counters. */
struct muc_run {
	enum muc_phase phase;
	char token[17];       /* in every message id of this run */
	char room_prefix[16]; /* rooms ROOM_PREFIX-R@muc_domain */
	unsigned sessions;    /* rooms * occupants + joins */
	unsigned rooms_open, filled, fill_next, fill_active, failed;
	unsigned long expected, delivered, foreign, errors, own_copies;
	unsigned long sent, room0_sent;
	unsigned round, joiner; /* current round, joiner in it */
	unsigned joins_done, leaves_done;
	unsigned long history_got; /* history messages of measured joins */
	unsigned long bcast_join, bcast_leave; /* room 0's occupants saw */
	unsigned long bcast_missing;
	double *join_ms; /* latency of each measured join */
	double t_phase, t_last_copy;
	double fill_cpu, fill_s, rss_s;
	double join_cpu, join_cpu_mark, join_s, join_mark, leave_cpu;
	ev_timer timer;
};

static struct bench {
	struct bench_opts o;
	struct ev_loop *loop;
	SSL_CTX *ssl_ctx;
	struct sockaddr_storage addr, peer_addr;
	socklen_t addrlen, peer_addrlen;
	struct conn **conns;
	struct user_key **keys;
	double *latencies; /* ms, one per completed login */
	unsigned started, logged_in, failed, finished, active, live;
	unsigned unclean_closes, dropped;
	unsigned fail_counts[FAIL_COUNT];
	unsigned fail_logged;
	unsigned keys_derived;
	double derive_seconds;
	double t0, t_up; /* run start; all sessions up (idle) or done */
	int all_up, closing, timed_out, stopping;
	long rss_before, rss_after, self_rss;   /* KiB, -1 unknown */
	double cpu_before, cpu_after;           /* server CPU s, -1 unknown */
	double peer_cpu_before, peer_cpu_after; /* --peer-pid's, the same */
	double self_cpu_before, self_cpu_after; /* our own CPU s */
	unsigned mech_used[MECH_COUNT];         /* logins by mechanism */
	unsigned lat_max, lat_count;            /* latencies[] room, used */
	char tls_proto[96]; /* of the first handshake: "TLSv1.3/CIPHER" */
	/* Roster mode. */
	enum roster_phase phase;
	unsigned online_up, online_failed, measured_finished;
	unsigned long probes_seen, presence_received;
	unsigned long bcast_available, bcast_unavailable, bcast_expected;
	double t_drain; /* s from the last login to the last broadcast */
	/* Chat mode. */
	unsigned chat_up;
	unsigned long chat_sent, chat_delivered, chat_errors, chat_bad;
	int chat_running, chat_stopping;
	unsigned chat_rr; /* --rate: the next sender, round robin */
	int csi_tcp_info; /* TCP_INFO gave the receive counters */
	ev_timer pace;    /* --rate: every millisecond */
	double t_login;   /* s for the chat sessions to log in */
	/* Presence mode. */
	unsigned long pres_sent, pres_delivered, pres_expected;
	unsigned long pres_ramp, pres_unstamped, pres_self;
	double t_last_presence; /* monotonic, last presence received */
	/* Stream management. */
	unsigned sm_enabled, sm_acks_sent, sm_resume_h_wrong;
	unsigned next_reconnect;
	/* Resume mode: the logins' figures (the reconnects' are the main
	 * ones); TLS handshakes resumed; new tickets received. */
	double *ramp_latencies;
	unsigned ramp_ok, ramp_failed, tls_resumed, tickets;
	double ramp_elapsed, ramp_cpu, ramp_self_cpu;
	/* CSI mode: the observer's counters (records and bytes as TLS
	 * carried them, plaintext bytes, presence), at the window's start
	 * and end; TCP's view from TCP_INFO. */
	enum csi_step csi_step;
	unsigned csi_seq, csi_total, csi_probes, csi_contacts;
	unsigned csi_latest; /* contacts whose last status arrived */
	struct csi_count csi_now, csi_start, csi_window;
	int *csi_last; /* per contact: last round seen, -1 */
	double t_csi_quiet;
	/* PEP modes: the caps (XEP-0115) every session presents and the
	 * disco#info answer behind them; publishes sent, answered and
	 * refused; notifications received while measuring (from contacts,
	 * from the user's own node), before it, and without this run's
	 * item ids; disco#info queries answered. */
	char *pep_ver, *pep_disco_body;
	char pep_token[17];
	unsigned long pep_sent, pep_results, pep_errors, pep_total;
	unsigned long pep_contact_events, pep_own_events, pep_ramp_events;
	unsigned long pep_foreign_events, pep_expected, pep_disco;
	unsigned long pep_login_contact, pep_login_own, pep_login_expected;
	double t_last_stanza, t_last_event;
	struct muc_run muc;
	ev_timer sweep, overall, settle, hold;
	ev_signal sigint, sigterm;
	ev_io stdin_watcher;
} B;

static void conn_io(struct ev_loop *, ev_io *, int);
static void conn_finish(struct conn *, int ok);
static void start_more(void);
static void begin_close_all(void);
static void check_done(void);
static void conn_logged_in(struct conn *);
static void chat_session_up(struct conn *);
static void chat_message_start(struct conn *, const char *, const char **);
static void chat_message_end(struct conn *);
static void chat_check_done(void);
static void chat_print_summary(void);
static void presence_received(struct conn *);
static void presence_check_done(void);
static void presence_print_summary(void);
static void resume_check_done(void);
static void resume_print_summary(void);
static void csi_check_done(void);
static void csi_print_summary(void);
static void csi_presence(struct conn *);
static void csi_iq_result(struct conn *);
static void csi_session_up(struct conn *);
static void sm_bound(struct conn *);
static void pep_xml_start(struct conn *, const char *, const char **);
static int pep_top_end(struct conn *);
static void pep_roster_done(struct conn *);
static void pep_bound(struct conn *);
static void pep_check_done(void);
static void pep_print_summary(void);
static void muc_xml_start(struct conn *, const char *, const char **);
static int muc_top_end(struct conn *);
static void muc_session_up(struct conn *);
static void muc_check_done(void);
static void muc_print_summary(void);

static const char *
tls_name(void)
{
	/* WebSocket (no STARTTLS) names its transport: ws, wss. */
	if (B.o.transport != TRANSPORT_TCP)
		return B.o.transport == TRANSPORT_WSS ? "wss" : "ws";
	return B.o.tls == TLS_DIRECT ? "direct"
	       : B.o.tls == TLS_NONE ? "none"
	                             : "starttls";
}

/* The mechanism the logins used: one name, "mixed" or "-" (none yet). */
static const char *
mech_used_name(void)
{
	const char *name = "-";

	for (int m = 0; m < MECH_COUNT; m++) {
		if (B.mech_used[m] == 0)
			continue;
		if (strcmp(name, "-") != 0)
			return "mixed";
		name = mech_names[m];
	}
	return name;
}

static double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* VmRSS in KiB of pid (0: ourselves), -1 if unreadable. */
static long
read_rss_kib(pid_t pid)
{
	char path[64], line[256];
	FILE *f;
	long kib = -1;

	if (pid > 0)
		snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/status");
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kib = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kib;
}

/*
 * CPU time (user + system, all threads) of pid in seconds, -1 if
 * unreadable: fields 14 and 15 of /proc/PID/stat, in clock ticks.
 */
static double
read_cpu_seconds(pid_t pid)
{
	char path[64], line[1024], *p;
	unsigned long long utime, stime;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	p = fgets(line, sizeof(line), f);
	fclose(f);
	/* The command name (field 2) may hold spaces and parentheses. */
	if (p == NULL || hz <= 0 || (p = strrchr(line, ')')) == NULL)
		return -1;
	/* After it: state, then fields 4 .. 13, then utime and stime. */
	p++;
	for (int field = 3; field <= 13; field++) {
		p += strspn(p, " ");
		p += strcspn(p, " ");
	}
	errno = 0;
	utime = strtoull(p, &p, 10);
	stime = strtoull(p, &p, 10);
	if (errno != 0)
		return -1;
	return (double)(utime + stime) / (double)hz;
}

/* The start and end of a measured window: the server's CPU time and ours
 * (which side saturated). */
static void
cpu_mark_before(void)
{
	if (B.o.server_pid > 0)
		B.cpu_before = read_cpu_seconds(B.o.server_pid);
	if (B.o.peer_pid > 0)
		B.peer_cpu_before = read_cpu_seconds(B.o.peer_pid);
	B.self_cpu_before = read_cpu_seconds(getpid());
}

static void
cpu_mark_after(void)
{
	if (B.o.server_pid > 0)
		B.cpu_after = read_cpu_seconds(B.o.server_pid);
	if (B.o.peer_pid > 0)
		B.peer_cpu_after = read_cpu_seconds(B.o.peer_pid);
	B.self_cpu_after = read_cpu_seconds(getpid());
}

/* " server_util=..% bench_util=..%": CPU time over the elapsed time. */
static void
print_utilisation(double elapsed)
{
	if (elapsed <= 0)
		return;
	if (B.cpu_before >= 0 && B.cpu_after >= 0)
		printf(" server_util=%.0f%%",
		    100 * (B.cpu_after - B.cpu_before) / elapsed);
	if (B.self_cpu_before >= 0 && B.self_cpu_after >= 0)
		printf(" bench_util=%.0f%%",
		    100 * (B.self_cpu_after - B.self_cpu_before) / elapsed);
}

static double
cpu_delta(double before, double after)
{
	return before >= 0 && after >= 0 ? after - before : -1;
}

/* The domain of user u: with --peer-domain, odd users are the second
 * server's. */
static const char *
user_domain(unsigned u)
{
	return B.o.peer_domain != NULL && (u & 1u) ? B.o.peer_domain :
	    B.o.domain;
}

/*
 * The user index of a JID "<prefix><index>@<domain>[/resource]", or -1
 * if it is not one of the bench's users (of its domain: user_domain).
 */
static long
jid_user_index(const char *jid)
{
	size_t plen = strlen(B.o.user_prefix), dlen;
	const char *p, *at;
	unsigned long v = 0;

	if (jid == NULL || strncmp(jid, B.o.user_prefix, plen) != 0)
		return -1;
	p = jid + plen;
	if ((at = strchr(p, '@')) == NULL || at == p)
		return -1;
	for (; p < at; p++) {
		if (*p < '0' || *p > '9' || v >= 100000000)
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v >= B.o.users)
		return -1;
	dlen = strlen(user_domain((unsigned)v));
	if (strncmp(at + 1, user_domain((unsigned)v), dlen) != 0 ||
	    (at[1 + dlen] != '\0' && at[1 + dlen] != '/'))
		return -1;
	return (long)v;
}

/* Roster mode: is user idx one of the sessions held online (odd users)? */
static int
user_is_online(long idx)
{
	return idx > 0 && idx % 2 == 1 &&
	       (unsigned long)(idx - 1) / 2 < B.o.online;
}

/* ---- SCRAM-SHA-1/256 client side (RFC 5802 §3), OpenSSL only ---- */

static const EVP_MD *
mech_md(enum sasl_mech mech)
{
	return mech == MECH_SCRAM_SHA1 ? EVP_sha1() : EVP_sha256();
}

static void
hmac_md(const EVP_MD *md, const unsigned char *key, size_t keylen,
    const void *msg, size_t msglen, unsigned char *out)
{
	unsigned int outlen = HASH_LEN;

	HMAC(md, key, (int)keylen, msg, msglen, out, &outlen);
}

static char *
b64_encode(const unsigned char *in, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return out;
}

/* Decode strict base64 into out (room for len/4*3); -1 if invalid. */
static long
b64_decode(const char *in, size_t len, unsigned char *out)
{
	size_t pad = 0;
	int n;

	if (len == 0 || len % 4 != 0)
		return -1;
	if (in[len - 1] == '=')
		pad++;
	if (len > 1 && in[len - 2] == '=')
		pad++;
	n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if (n < 0)
		return -1;
	return n - (long)pad;
}

static void
user_password(unsigned user, char *out, size_t outlen)
{
	if (B.o.password)
		snprintf(out, outlen, "%s", B.o.password);
	else
		snprintf(out, outlen, "pw%u", user);
}

/*
 * The keys of user for this hash, salt and iteration count, derived on
 * first use (PBKDF2 blocks the loop for a millisecond or so: the time is
 * reported, and --key-cache keeps keys across runs).
 */
static const struct user_key *
user_key_get(unsigned user, const EVP_MD *md, const unsigned char *salt,
    size_t saltlen, unsigned iterations)
{
	struct user_key *k = B.keys[user];
	size_t hash_len = (size_t)EVP_MD_size(md);
	unsigned char salted[HASH_LEN];
	char pw[256];
	double t;

	if (k == NULL)
		k = B.keys[user] = xcalloc(1, sizeof(*k));
	if (k->valid && k->hash_len == hash_len && k->saltlen == saltlen &&
	    k->iterations == iterations && memcmp(k->salt, salt, saltlen) == 0)
		return k;
	if (saltlen > sizeof(k->salt) || hash_len > HASH_LEN)
		return NULL;
	t = now_mono();
	user_password(user, pw, sizeof(pw));
	if (PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, (int)saltlen,
	        (int)iterations, md, (int)hash_len, salted) != 1)
		return NULL;
	hmac_md(md, salted, hash_len, "Client Key", 10, k->client_key);
	hmac_md(md, salted, hash_len, "Server Key", 10, k->server_key);
	memcpy(k->salt, salt, saltlen);
	k->saltlen = saltlen;
	k->iterations = iterations;
	k->hash_len = hash_len;
	k->valid = 1;
	OPENSSL_cleanse(salted, sizeof(salted));
	B.keys_derived++;
	B.derive_seconds += now_mono() - t;
	return k;
}

static void
hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int
hex_decode(const char *in, unsigned char *out, size_t maxlen, size_t *len)
{
	size_t n = strlen(in);

	if (n % 2 != 0 || n / 2 > maxlen)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char *digits = "0123456789abcdef", *d;

		if (in[i] == '\0' || (d = strchr(digits, in[i])) == NULL)
			return -1;
		if (i % 2 == 0)
			out[i / 2] = (unsigned char)((d - digits) << 4);
		else
			out[i / 2] |= (unsigned char)(d - digits);
	}
	*len = n / 2;
	return 0;
}

/*
 * Key cache file: one line per user, "USER SALTHEX ITERATIONS CLIENTKEYHEX
 * SERVERKEYHEX", where USER is the full localpart; the keys' length says
 * the hash (20 bytes: SHA-1, 32: SHA-256).  Lines for other prefixes or
 * indexes out of range are ignored.
 */
static void
key_cache_load(const char *path)
{
	char line[1024], name[256], salthex[160], ckhex[80], skhex[80];
	char iterhex[16];
	size_t plen = strlen(B.o.user_prefix), len;
	unsigned iterations, loaded = 0;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		struct user_key k;
		char *end;
		unsigned long idx;

		memset(&k, 0, sizeof(k));
		if (sscanf(line, "%255s %159s %15s %79s %79s", name, salthex,
		        iterhex, ckhex, skhex) != 5)
			continue;
		errno = 0;
		iterations = (unsigned)strtoul(iterhex, &end, 10);
		if (errno || *end != '\0' || iterations == 0)
			continue;
		if (strncmp(name, B.o.user_prefix, plen) != 0)
			continue;
		errno = 0;
		idx = strtoul(name + plen, &end, 10);
		if (errno || *end != '\0' || end == name + plen ||
		    idx >= B.o.users)
			continue;
		if (hex_decode(salthex, k.salt, sizeof(k.salt), &k.saltlen) ==
		        -1 ||
		    hex_decode(ckhex, k.client_key, HASH_LEN, &len) == -1 ||
		    (len != 20 && len != 32) ||
		    hex_decode(skhex, k.server_key, HASH_LEN, &k.hash_len) ==
		        -1 ||
		    k.hash_len != len)
			continue;
		k.iterations = iterations;
		k.valid = 1;
		if (B.keys[idx] == NULL)
			B.keys[idx] = xmalloc(sizeof(k));
		*B.keys[idx] = k;
		loaded++;
	}
	fclose(f);
	log_debug("loaded %u cached keys from %s", loaded, path);
}

static void
key_cache_save(const char *path)
{
	char tmp[PATH_MAX], salthex[160], ckhex[80], skhex[80];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL) {
		log_warn("cannot write key cache %s", tmp);
		return;
	}
	for (unsigned i = 0; i < B.o.users; i++) {
		const struct user_key *k = B.keys[i];

		if (k == NULL || !k->valid)
			continue;
		hex_encode(k->salt, k->saltlen, salthex);
		hex_encode(k->client_key, k->hash_len, ckhex);
		hex_encode(k->server_key, k->hash_len, skhex);
		fprintf(f, "%s%u %s %u %s %s\n", B.o.user_prefix, i, salthex,
		    k->iterations, ckhex, skhex);
	}
	if (fclose(f) != 0 || rename(tmp, path) == -1)
		log_warn("cannot write key cache %s", path);
}

/* ---- connection output ---- */

static void
conn_set_events(struct conn *c, int events)
{
	if (c->events == events)
		return;
	ev_io_stop(B.loop, &c->io);
	ev_io_set(&c->io, c->fd, events);
	ev_io_start(B.loop, &c->io);
	c->events = events;
}

/* Mark c failed; the caller (or conn_io after the parser returns) ends it. */
static void
conn_fail(struct conn *c, enum fail_reason why, const char *detail)
{
	if (c->pending == PENDING_FAIL)
		return;
	c->pending = PENDING_FAIL;
	c->fail = why;
	if (B.fail_logged < 5 || B.o.verbose) {
		B.fail_logged++;
		log_warnx("conn %u (%s%u): %s%s%s", c->id, B.o.user_prefix,
		    c->user, fail_names[why], detail ? ": " : "",
		    detail ? detail : "");
	}
	if (c->parser)
		XML_StopParser(c->parser, XML_FALSE);
}

/* Write what can be written; 0, or -1 on a fatal error (c failed). */
static int
conn_flush(struct conn *c)
{
	while (buf_avail(&c->out) > 0) {
		ssize_t n;

		if (c->ssl) {
			int r = SSL_write(
			    c->ssl, buf_head(&c->out), (int)buf_avail(&c->out));

			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_WRITE ||
				    e == SSL_ERROR_WANT_READ)
					break;
				ERR_clear_error();
				conn_fail(c, FAIL_IO, "SSL_write");
				return -1;
			}
			n = r;
		} else {
			n = send(c->fd, buf_head(&c->out), buf_avail(&c->out),
			    MSG_NOSIGNAL);
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				conn_fail(c, FAIL_IO, strerror(errno));
				return -1;
			}
		}
		buf_consume(&c->out, (size_t)n);
	}
	if (buf_avail(&c->out) == 0)
		buf_free(&c->out);
	return 0;
}

/* ---- transport: XMPP over WebSocket (RFC 7395 over RFC 6455) ---- */

/* Append one client frame (FIN set, masked, RFC 6455 §5.2-5.3). */
static void
ws_frame(struct conn *c, unsigned opcode, const char *p, size_t n)
{
	unsigned char head[14], key[4];
	size_t h = 0, start;
	uint32_t x = c->ws->mask_state;

	/* Masking keys from xorshift32: they only need to vary. */
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	c->ws->mask_state = x;
	memcpy(key, &x, sizeof(key));
	head[h++] = (unsigned char)(0x80u | opcode);
	if (n < 126)
		head[h++] = (unsigned char)(0x80u | n);
	else if (n <= 0xffff) {
		head[h++] = 0x80u | 126u;
		head[h++] = (unsigned char)(n >> 8);
		head[h++] = (unsigned char)n;
	} else {
		head[h++] = 0x80u | 127u;
		for (int i = 7; i >= 0; i--)
			head[h++] = (unsigned char)((uint64_t)n >> (8 * i));
	}
	memcpy(head + h, key, sizeof(key));
	h += sizeof(key);
	buf_add(&c->out, head, h);
	start = c->out.len;
	buf_add(&c->out, p, n);
	for (size_t i = 0; i < n; i++)
		c->out.data[start + i] ^= (char)key[i & 3];
}

/* The opening handshake (RFC 6455 §4.1); <open/> follows the 101. */
static void
ws_send_upgrade(struct conn *c)
{
	unsigned char nonce[16];
	char *key;

	RAND_bytes(nonce, sizeof(nonce));
	key = b64_encode(nonce, sizeof(nonce));
	buf_printf(&c->out,
	    "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "Sec-WebSocket-Protocol: xmpp\r\n\r\n",
	    B.o.ws_path, user_domain(c->user), key);
	free(key);
	c->ws->open_deferred = 1;
}

/* The stream header as RFC 7395 §3.4 has it, or wait for the 101. */
static void
ws_send_open(struct conn *c)
{
	char open[512];

	if (!c->ws->upgraded) {
		ws_send_upgrade(c);
		return;
	}
	snprintf(open, sizeof(open),
	    "<open xmlns='" NS_FRAMING "' to='%s' version='1.0'/>",
	    user_domain(c->user));
	c->ws->open_deferred = 0;
	ws_frame(c, 0x1, open, strlen(open));
}

/* The server's response head: 101 and the xmpp subprotocol; 1 when
 * done, 0 to wait, -1 failed. */
static int
ws_upgrade_response(struct conn *c)
{
	struct buf *in = &c->ws->in;
	const char *end, *head = buf_head(in);
	size_t len;

	end = memmem(head, buf_avail(in), "\r\n\r\n", 4);
	if (end == NULL) {
		if (buf_avail(in) > WS_HEAD_MAX) {
			conn_fail(c, FAIL_PROTOCOL, "HTTP head too long");
			return -1;
		}
		return 0;
	}
	len = (size_t)(end - head) + 4;
	if (len < 12 || strncmp(head, "HTTP/1.1 101", 12) != 0) {
		char detail[64];

		snprintf(detail, sizeof(detail), "upgrade refused: %.*s",
		    (int)strcspn(head, "\r\n") < 40 ? (int)strcspn(head, "\r\n")
		                                   : 40,
		    head);
		conn_fail(c, FAIL_PROTOCOL, detail);
		return -1;
	}
	{
		char *h = xmalloc(len + 1);
		int ok;

		memcpy(h, head, len);
		h[len] = '\0';
		ok = strcasestr(h, "\nSec-WebSocket-Protocol: xmpp\r") != NULL;
		free(h);
		if (!ok) {
			conn_fail(c, FAIL_PROTOCOL, "no xmpp subprotocol");
			return -1;
		}
	}
	buf_consume(in, len);
	c->ws->upgraded = 1;
	if (c->ws->open_deferred)
		ws_send_open(c);
	return 1;
}

static void conn_parse(struct conn *, const char *, size_t);

/*
 * Decode what c->ws->in holds: the 101, then frames (RFC 6455 §5),
 * unmasked; a whole text message goes to the parser.  Stops when the
 * parser leaves an action pending: the rest is for the next stream.
 * Returns 1 on a close frame, 0 to wait, -1 failed.
 */
static int
ws_decode(struct conn *c)
{
	struct ws_conn *ws = c->ws;

	if (!ws->upgraded) {
		int r = ws_upgrade_response(c);

		if (r <= 0)
			return r;
	}
	while (c->pending == PENDING_NONE && !ws->closed) {
		const unsigned char *p =
		    (const unsigned char *)buf_head(&ws->in);
		size_t avail = buf_avail(&ws->in), h = 2;
		uint64_t n;
		unsigned op;

		if (avail < 2)
			break;
		op = p[0] & 0x0fu;
		n = p[1] & 0x7fu;
		if (p[1] & 0x80u) {
			conn_fail(c, FAIL_PROTOCOL, "masked server frame");
			return -1;
		}
		if (n == 126) {
			if (avail < 4)
				break;
			n = (uint64_t)p[2] << 8 | p[3];
			h = 4;
		} else if (n == 127) {
			if (avail < 10)
				break;
			n = 0;
			for (int i = 0; i < 8; i++)
				n = n << 8 | p[2 + i];
			h = 10;
		}
		if (n > WS_MESSAGE_MAX ||
		    ws->message.len + n > WS_MESSAGE_MAX) {
			conn_fail(c, FAIL_PROTOCOL, "message too long");
			return -1;
		}
		if (avail < h + n)
			break;
		if (op == 0x8) { /* close: the stream is over */
			ws->closed = 1;
			buf_free(&ws->in);
			return 1;
		} else if (op == 0x9) { /* ping: pong with its data */
			ws_frame(c, 0xa, (const char *)p + h, (size_t)n);
		} else if (op <= 0x2) { /* text, binary or continuation */
			buf_add(&ws->message, p + h, (size_t)n);
			if (p[0] & 0x80u) {
				if (B.o.verbose > 1)
					log_debug("conn %u recv: %.*s", c->id,
					    (int)ws->message.len,
					    ws->message.data);
				conn_parse(
				    c, ws->message.data, ws->message.len);
				if (ws->message.cap > 65536)
					buf_free(&ws->message);
				else
					buf_reset(&ws->message);
			}
		}
		buf_consume(&ws->in, h + (size_t)n);
	}
	if (buf_avail(&ws->in) == 0)
		buf_free(&ws->in);
	return 0;
}

/* Bytes read from the connection: parsed, or decoded from frames. */
static int
transport_input(struct conn *c, const char *data, size_t n)
{
	if (c->ws == NULL) {
		if (B.o.verbose > 1)
			log_debug("conn %u recv: %.*s", c->id, (int)n, data);
		conn_parse(c, data, n);
		return 0;
	}
	buf_add(&c->ws->in, data, n);
	return ws_decode(c);
}

static void
conn_send(struct conn *c, const char *s)
{
	if (B.o.verbose > 1)
		log_debug("conn %u send: %s", c->id, s);
	if (c->ws != NULL)
		ws_frame(c, 0x1, s, strlen(s)); /* one element, one message */
	else
		buf_adds(&c->out, s);
}

/* conn_send of a formatted element. */
static void __attribute__((format(printf, 2, 3)))
conn_sendf(struct conn *c, const char *fmt, ...)
{
	static struct buf scratch;
	va_list ap;

	buf_reset(&scratch);
	va_start(ap, fmt);
	buf_vprintf(&scratch, fmt, ap);
	va_end(ap);
	buf_addc(&scratch, '\0');
	conn_send(c, scratch.data);
}

/* The stream's end: </stream:stream>, or <close/> (RFC 7395 §3.6). */
static void
conn_send_close(struct conn *c)
{
	conn_send(c, c->ws != NULL ? "<close xmlns='" NS_FRAMING "'/>"
	                           : "</stream:stream>");
}

/* A stanza (not a nonza): counted for XEP-0198 once SM is on. */
static void
conn_send_stanza(struct conn *c, const char *s)
{
	if (c->sm_on)
		c->sm_h_out++;
	conn_send(c, s);
}

/* ---- XML: a tiny incremental parser per stream ---- */

/* Split expat's "uri local" name; returns local, sets *ns (not copied). */
static const char *
xml_split(const char *name, const char **ns, size_t *nslen)
{
	const char *sp = strchr(name, ' ');

	if (sp == NULL) {
		*ns = "";
		*nslen = 0;
		return name;
	}
	*ns = name;
	*nslen = (size_t)(sp - name);
	return sp + 1;
}

static int
xml_is(const char *name, const char *ns, const char *local)
{
	const char *n, *l;
	size_t nlen;

	l = xml_split(name, &n, &nlen);
	return strlen(ns) == nlen && memcmp(n, ns, nlen) == 0 &&
	       strcmp(l, local) == 0;
}

static const char *
xml_attr(const char **attrs, const char *name)
{
	for (size_t i = 0; attrs[i] != NULL; i += 2)
		if (strcmp(attrs[i], name) == 0)
			return attrs[i + 1];
	return NULL;
}

static enum top_elem
classify_top(const char *name)
{
	if (xml_is(name, NS_STREAM, "features"))
		return TOP_FEATURES;
	if (xml_is(name, NS_STREAM, "error"))
		return TOP_STREAM_ERROR;
	if (xml_is(name, NS_TLS, "proceed"))
		return TOP_PROCEED;
	if (xml_is(name, NS_TLS, "failure"))
		return TOP_TLS_FAILURE;
	if (xml_is(name, NS_SASL, "challenge"))
		return TOP_CHALLENGE;
	if (xml_is(name, NS_SASL, "success"))
		return TOP_SUCCESS;
	if (xml_is(name, NS_SASL, "failure"))
		return TOP_SASL_FAILURE;
	if (xml_is(name, NS_CLIENT, "iq"))
		return TOP_IQ;
	if (xml_is(name, NS_CLIENT, "presence"))
		return TOP_PRESENCE;
	if (xml_is(name, NS_SM, "r"))
		return TOP_SM_R;
	if (xml_is(name, NS_SM, "a"))
		return TOP_SM_A;
	if (xml_is(name, NS_SM, "enabled"))
		return TOP_SM_ENABLED;
	if (xml_is(name, NS_SM, "resumed"))
		return TOP_SM_RESUMED;
	if (xml_is(name, NS_SM, "failed"))
		return TOP_SM_FAILED;
	if (xml_is(name, NS_FRAMING, "open"))
		return TOP_WS_OPEN;
	if (xml_is(name, NS_FRAMING, "close"))
		return TOP_WS_CLOSE;
	return TOP_OTHER;
}

static void XMLCALL
xml_start(void *ud, const char *name, const char **attrs)
{
	struct conn *c = ud;

	c->depth++;
	if (c->depth == 1) {
		if (!xml_is(name, NS_STREAM, "stream"))
			conn_fail(c, FAIL_PROTOCOL, "not a stream");
		return;
	}
	if (c->pep != NULL)
		pep_xml_start(c, name, attrs);
	if (c->muc != NULL)
		muc_xml_start(c, name, attrs);
	if (c->depth == 2) {
		const char *type, *id;

		c->top = classify_top(name);
		c->top_stanza = c->top == TOP_IQ || c->top == TOP_PRESENCE ||
		                xml_is(name, NS_CLIENT, "message");
		buf_reset(&c->text);
		c->has_starttls = c->has_bind = c->has_sm = 0;
		c->offered = 0;
		if (c->top == TOP_SM_ENABLED || c->top == TOP_SM_RESUMED) {
			const char *v = xml_attr(attrs, "id");

			if (c->top == TOP_SM_ENABLED)
				snprintf(c->sm_id, sizeof(c->sm_id), "%s",
				    v != NULL && strlen(v) < sizeof(c->sm_id)
				        ? v
				        : "");
			v = xml_attr(attrs, "h");
			c->sm_h_attr = v != NULL ? strtol(v, NULL, 10) : -1;
		}
		if (B.o.mode == MODE_CHAT)
			chat_message_start(c, name, attrs);
		if (c->top == TOP_IQ) {
			type = xml_attr(attrs, "type");
			id = xml_attr(attrs, "id");
			c->iq_bind = id && strcmp(id, "bind") == 0;
			c->iq_roster = id && strcmp(id, "roster") == 0;
			c->iq_result = type && strcmp(type, "result") == 0;
			c->iq_id = id && strncmp(id, "csi", 3) == 0 ?
			    (int)strtol(id + 3, NULL, 10) : 0;
			if (c->iq_roster)
				c->roster_items = c->roster_online = 0;
		} else if (c->top == TOP_PRESENCE) {
			type = xml_attr(attrs, "type");
			c->pres_type = type == NULL ? PRES_AVAILABLE
			               : strcmp(type, "unavailable") == 0
			                   ? PRES_UNAVAILABLE
			                   : PRES_OTHER;
			c->pres_from = jid_user_index(xml_attr(attrs, "from"));
		}
		return;
	}
	if (c->depth == 4 && c->top == TOP_IQ && c->iq_roster &&
	    xml_is(name, NS_ROSTER, "item")) {
		long idx = jid_user_index(xml_attr(attrs, "jid"));

		c->roster_items++;
		if (idx != (long)c->user && user_is_online(idx))
			c->roster_online++;
		return;
	}
	if (c->depth == 3 && c->in_message && xml_is(name, NS_CLIENT, "body")) {
		c->in_body = 1;
		return;
	}
	if (c->depth == 3 && c->top == TOP_PRESENCE &&
	    (B.o.mode == MODE_PRESENCE || B.o.mode == MODE_CSI) &&
	    xml_is(name, NS_CLIENT, "status")) {
		c->in_status = 1;
		return;
	}
	if (c->depth == 3 &&
	    (c->top == TOP_SASL_FAILURE || c->top == TOP_STREAM_ERROR ||
	        c->top == TOP_SM_FAILED) &&
	    c->text.len == 0) {
		const char *ns, *local = xml_split(name, &ns, &(size_t){0});

		/* The defined condition, for the failure message. */
		if (strcmp(local, "text") != 0)
			buf_adds(&c->text, local);
		return;
	}
	if (c->top != TOP_FEATURES)
		return;
	if (c->depth == 3) {
		if (xml_is(name, NS_TLS, "starttls"))
			c->has_starttls = 1;
		else if (xml_is(name, NS_BIND, "bind"))
			c->has_bind = 1;
		else if (xml_is(name, NS_SM, "sm"))
			c->has_sm = 1;
	} else if (c->depth == 4 && xml_is(name, NS_SASL, "mechanism")) {
		c->in_mechanism = 1;
		buf_reset(&c->text);
	}
}

static void XMLCALL
xml_text(void *ud, const char *s, int len)
{
	struct conn *c = ud;

	if (c->in_body || c->in_status) {
		if (c->text.len + (size_t)len <= TEXT_MAX)
			buf_add(&c->text, s, (size_t)len);
		return;
	}
	if ((c->depth == 2 &&
	        (c->top == TOP_CHALLENGE || c->top == TOP_SUCCESS)) ||
	    c->in_mechanism) {
		if (c->text.len + (size_t)len > TEXT_MAX) {
			conn_fail(c, FAIL_PROTOCOL, "SASL data too long");
			return;
		}
		buf_add(&c->text, s, (size_t)len);
	}
}

static void handle_top(struct conn *c);
static void conn_online_up(struct conn *);

static void XMLCALL
xml_end(void *ud, const char *name)
{
	struct conn *c = ud;

	if (c->depth == 3) {
		c->in_body = 0;
		c->in_status = 0;
	}
	if (c->depth == 4 && c->in_mechanism) {
		c->in_mechanism = 0;
		for (int m = 0; m < MECH_COUNT && c->text.len > 0; m++)
			if (strcmp(c->text.data, mech_names[m]) == 0)
				c->offered |= 1u << m;
		buf_reset(&c->text);
	} else if (c->depth == 2) {
		/* XEP-0198 §4: a stanza counts once it is handled. */
		if (c->sm_on && c->top_stanza)
			c->sm_h_in++;
		handle_top(c);
		c->top = TOP_NONE;
		buf_reset(&c->text);
	} else if (c->depth == 1) {
		c->pending =
		    c->pending == PENDING_FAIL ? PENDING_FAIL : PENDING_CLOSED;
		XML_StopParser(c->parser, XML_FALSE);
	}
	c->depth--;
}

static void
parser_free(struct conn *c)
{
	if (c->parser) {
		XML_ParserFree(c->parser);
		c->parser = NULL;
	}
	buf_free(&c->text);
	c->depth = 0;
	c->top = TOP_NONE;
	c->in_mechanism = 0;
	c->in_status = 0;
}

/* Open a new stream: fresh parser, stream header (RFC 6120 §4.2). */
static void
stream_open(struct conn *c)
{
	char hdr[512];

	parser_free(c);
	c->parser = XML_ParserCreateNS(NULL, ' ');
	XML_SetUserData(c->parser, c);
	XML_SetElementHandler(c->parser, xml_start, xml_end);
	XML_SetCharacterDataHandler(c->parser, xml_text);
	c->state = CS_NEGOTIATING;
	c->step = STEP_FEATURES;
	if (c->ws != NULL) {
		/* RFC 7395: no stream root on the wire; each message is one
		 * element under this implicit one, which is never sent. */
		static const char root[] =
		    "<stream:stream xmlns='" NS_CLIENT "' "
		    "xmlns:stream='" NS_STREAM "'>";

		XML_Parse(c->parser, root, (int)strlen(root), 0);
		ws_send_open(c);
		return;
	}
	snprintf(hdr, sizeof(hdr),
	    "<?xml version='1.0'?><stream:stream xmlns='" NS_CLIENT "' "
	    "xmlns:stream='" NS_STREAM "' to='%s' version='1.0'>",
	    user_domain(c->user));
	conn_send(c, hdr);
}

/* ---- negotiation steps, run from the parser's end-of-stanza ---- */

/* PLAIN (RFC 4616): no authzid, NUL, user, NUL, password. */
static void
send_plain(struct conn *c)
{
	char msg[512], pw[256], xml[1024], *b64;
	int len;

	user_password(c->user, pw, sizeof(pw));
	len = snprintf(
	    msg, sizeof(msg), "%c%s%u%c%s", 0, B.o.user_prefix, c->user, 0, pw);
	if (len < 0 || len >= (int)sizeof(msg)) {
		conn_fail(c, FAIL_PROTOCOL, "user name too long");
		return;
	}
	b64 = b64_encode((unsigned char *)msg, (size_t)len);
	OPENSSL_cleanse(msg, sizeof(msg));
	snprintf(xml, sizeof(xml),
	    "<auth xmlns='" NS_SASL "' mechanism='PLAIN'>%s</auth>", b64);
	free(b64);
	conn_send(c, xml);
	OPENSSL_cleanse(xml, sizeof(xml));
	c->step = STEP_SUCCESS;
}

static void
send_auth(struct conn *c)
{
	unsigned char rnd[NONCE_LEN * 3 / 4];
	char first[512], xml[1024], *b64;

	B.mech_used[c->mech]++;
	if (c->mech == MECH_PLAIN) {
		send_plain(c);
		return;
	}
	RAND_bytes(rnd, sizeof(rnd));
	EVP_EncodeBlock((unsigned char *)c->cnonce, rnd, sizeof(rnd));
	snprintf(first, sizeof(first), "n,,n=%s%u,r=%s", B.o.user_prefix,
	    c->user, c->cnonce);
	b64 = b64_encode((unsigned char *)first, strlen(first));
	snprintf(xml, sizeof(xml),
	    "<auth xmlns='" NS_SASL "' mechanism='%s'>%s</auth>",
	    mech_names[c->mech], b64);
	free(b64);
	conn_send(c, xml);
	c->step = STEP_CHALLENGE;
}

/* Parse server-first-message "r=..,s=..,i=.." (RFC 5802 §7). */
static int
parse_server_first(char *msg, char **nonce, char **salt, unsigned *iter)
{
	char *save = NULL, *tok, *end;

	*nonce = *salt = NULL;
	*iter = 0;
	for (tok = strtok_r(msg, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		if (strncmp(tok, "r=", 2) == 0)
			*nonce = tok + 2;
		else if (strncmp(tok, "s=", 2) == 0)
			*salt = tok + 2;
		else if (strncmp(tok, "i=", 2) == 0) {
			unsigned long v = strtoul(tok + 2, &end, 10);

			if (*end != '\0' || v == 0 || v > 100000000)
				return -1;
			*iter = (unsigned)v;
		} else if (strncmp(tok, "m=", 2) == 0)
			return -1;
	}
	return *nonce && *salt && *iter ? 0 : -1;
}

static void
handle_challenge(struct conn *c)
{
	unsigned char sfirst[TEXT_MAX], salt[TEXT_MAX];
	unsigned char stored[HASH_LEN], sig[HASH_LEN], proof[HASH_LEN];
	char parsebuf[TEXT_MAX], cfinal[1024], authmsg[2 * TEXT_MAX], *b64;
	char *nonce, *salt64, xml[1536];
	const struct user_key *k;
	const EVP_MD *md = mech_md(c->mech);
	size_t hlen = (size_t)EVP_MD_size(md);
	unsigned iter;
	long len, saltlen;

	len = b64_decode(c->text.data ? c->text.data : "", c->text.len, sfirst);
	if (len <= 0 || len >= (long)sizeof(parsebuf) - 1) {
		conn_fail(c, FAIL_PROTOCOL, "bad challenge encoding");
		return;
	}
	sfirst[len] = '\0';
	memcpy(parsebuf, sfirst, (size_t)len + 1);
	if (parse_server_first(parsebuf, &nonce, &salt64, &iter) == -1 ||
	    strncmp(nonce, c->cnonce, NONCE_LEN) != 0 ||
	    strlen(nonce) <= NONCE_LEN || strlen(nonce) > 256) {
		conn_fail(c, FAIL_PROTOCOL, "bad server-first-message");
		return;
	}
	saltlen = b64_decode(salt64, strlen(salt64), salt);
	if (saltlen <= 0) {
		conn_fail(c, FAIL_PROTOCOL, "bad salt");
		return;
	}
	k = user_key_get(c->user, md, salt, (size_t)saltlen, iter);
	if (k == NULL) {
		conn_fail(c, FAIL_PROTOCOL, "cannot derive keys");
		return;
	}
	/* client-final-message-without-proof; c=biws is base64("n,,"). */
	if (snprintf(cfinal, sizeof(cfinal), "c=biws,r=%s", nonce) >=
	        (int)sizeof(cfinal) ||
	    snprintf(authmsg, sizeof(authmsg), "n=%s%u,r=%s,%s,%s",
	        B.o.user_prefix, c->user, c->cnonce, (char *)sfirst,
	        cfinal) >= (int)sizeof(authmsg)) {
		conn_fail(c, FAIL_PROTOCOL, "server-first-message too long");
		return;
	}
	EVP_Digest(k->client_key, hlen, stored, NULL, md, NULL);
	hmac_md(md, stored, hlen, authmsg, strlen(authmsg), sig);
	for (size_t i = 0; i < hlen; i++)
		proof[i] = k->client_key[i] ^ sig[i];
	hmac_md(
	    md, k->server_key, hlen, authmsg, strlen(authmsg), c->server_sig);
	b64 = b64_encode(proof, hlen);
	snprintf(cfinal + strlen(cfinal), sizeof(cfinal) - strlen(cfinal),
	    ",p=%s", b64);
	free(b64);
	b64 = b64_encode((unsigned char *)cfinal, strlen(cfinal));
	snprintf(xml, sizeof(xml),
	    "<response xmlns='" NS_SASL "'>%s</response>", b64);
	free(b64);
	conn_send(c, xml);
	c->step = STEP_SUCCESS;
}

static void
handle_success(struct conn *c)
{
	unsigned char data[TEXT_MAX], sig[48];
	long len, siglen, hlen = EVP_MD_size(mech_md(c->mech));

	if (c->mech == MECH_PLAIN) {
		c->authed = 1;
		c->pending = PENDING_RESTART;
		XML_StopParser(c->parser, XML_FALSE);
		return;
	}
	len = b64_decode(c->text.data ? c->text.data : "", c->text.len, data);
	if (len <= 2 || memcmp(data, "v=", 2) != 0) {
		conn_fail(c, FAIL_SERVER_SIG, "no verifier in success");
		return;
	}
	data[len] = '\0';
	{
		char *end = strchr((char *)data, ',');
		size_t vlen =
		    end ? (size_t)(end - (char *)data) - 2 : (size_t)len - 2;

		siglen =
		    vlen <= 48 ? b64_decode((char *)data + 2, vlen, sig) : -1;
	}
	if (siglen != hlen ||
	    CRYPTO_memcmp(sig, c->server_sig, (size_t)hlen) != 0) {
		conn_fail(c, FAIL_SERVER_SIG, NULL);
		return;
	}
	c->authed = 1;
	c->pending = PENDING_RESTART;
	XML_StopParser(c->parser, XML_FALSE);
}

/* The mechanism asked for, or the strongest offered; -1 (c failed)
 * if the server does not offer it. */
static int
choose_mech(struct conn *c)
{
	char detail[64];

	if (B.o.mech != MECH_AUTO) {
		c->mech = B.o.mech;
		if (c->offered & (1u << B.o.mech))
			return 0;
	} else {
		for (int m = 0; m < MECH_COUNT; m++)
			if (c->offered & (1u << m)) {
				c->mech = (enum sasl_mech)m;
				return 0;
			}
	}
	snprintf(detail, sizeof(detail), "%s not offered",
	    B.o.mech == MECH_AUTO ? "no known mechanism"
	                          : mech_names[B.o.mech]);
	conn_fail(c, FAIL_NO_MECH, detail);
	return -1;
}

static void
handle_features(struct conn *c)
{
	char xml[512];

	if (!c->tls_up && B.o.tls != TLS_NONE) {
		if (!c->has_starttls) {
			conn_fail(c, FAIL_NO_STARTTLS, NULL);
			return;
		}
		conn_send(c, "<starttls xmlns='" NS_TLS "'/>");
		c->step = STEP_PROCEED;
	} else if (!c->authed) {
		/* A reconnect authenticates as the first login did, over
		 * RFC 6120 SASL (SASL2 with FAST: tests/bench/reconnect.py). */
		if (choose_mech(c) == -1)
			return;
		send_auth(c);
	} else if (c->resuming) {
		/* XEP-0198 §5: <resume/> in place of binding. */
		if (!c->has_sm) {
			conn_fail(c, FAIL_SM, "no sm feature");
			return;
		}
		snprintf(xml, sizeof(xml),
		    "<resume xmlns='" NS_SM "' previd='%s' h='%" PRIu32 "'/>",
		    c->sm_id, c->sm_h_in);
		conn_send(c, xml);
		c->step = STEP_RESUMED;
	} else {
		if (!c->has_bind) {
			conn_fail(c, FAIL_BIND, "no bind feature");
			return;
		}
		c->has_sm_feature = c->has_sm;
		snprintf(xml, sizeof(xml),
		    "<iq type='set' id='bind'>"
		    "<bind xmlns='" NS_BIND "'><resource>bench%u</resource>"
		    "</bind></iq>",
		    c->id);
		conn_send(c, xml);
		c->step = STEP_BIND;
	}
}

/*
 * Roster mode, the roster result: check its size, then send initial
 * presence (RFC 6121 §4.2), upon which the server probes the contacts
 * we are subscribed to and broadcasts to those subscribed to us.  A
 * measured login then waits for the presence of its online contacts.
 */
static void
handle_roster(struct conn *c)
{
	char detail[96];

	if (!c->iq_result) {
		conn_fail(c, FAIL_ROSTER, "roster get error");
		return;
	}
	if (B.o.roster_items >= 0 && c->roster_items != B.o.roster_items) {
		snprintf(detail, sizeof(detail), "%u items, expected %ld",
		    c->roster_items, B.o.roster_items);
		conn_fail(c, FAIL_ROSTER, detail);
		return;
	}
	if (c->pep != NULL) {
		pep_roster_done(c);
		return;
	}
	conn_send_stanza(c, "<presence/>");
	if (B.o.mode == MODE_CSI) {
		csi_session_up(c);
		return;
	}
	if (B.o.mode == MODE_LOGIN) {
		/* --full: the roster and initial presence end the login. */
		conn_logged_in(c);
		return;
	}
	if (c->online) {
		conn_online_up(c);
		return;
	}
	/* Each online contact ('both') gets our available presence now and
	 * our unavailable presence when we close. */
	B.bcast_expected += 2 * c->roster_online;
	c->step = STEP_PROBES;
	if (c->roster_online == 0)
		conn_logged_in(c);
}

/*
 * A presence stanza.  Online sessions count what they receive while the
 * logins are measured; a measured login counts everything, and completes
 * once every online contact's available presence has arrived.
 */
static void
handle_presence(struct conn *c)
{
	if (c->online) {
		if (B.phase != PHASE_MEASURE && B.phase != PHASE_DRAIN)
			return;
		if (c->pres_type == PRES_AVAILABLE)
			B.bcast_available++;
		else if (c->pres_type == PRES_UNAVAILABLE)
			B.bcast_unavailable++;
		return;
	}
	c->presence_count++;
	if (c->step != STEP_PROBES || c->logged_in ||
	    c->pres_type != PRES_AVAILABLE || c->pres_from == (long)c->user ||
	    !user_is_online(c->pres_from))
		return;
	if (++c->probes_seen == c->roster_online)
		conn_logged_in(c);
}

static void conn_resumed(struct conn *);

/* Bound (and with --sm, stream management on): what the mode does next. */
static void
sm_bound(struct conn *c)
{
	if (c->pep != NULL && B.o.pep_seed) {
		pep_bound(c);
	} else if (B.o.mode == MODE_ROSTER || B.o.mode == MODE_PRESENCE ||
	           B.o.mode == MODE_CSI || B.o.mode == MODE_PEP ||
	           B.o.mode == MODE_PEP_LOGIN || B.o.full_login) {
		conn_send_stanza(c, "<iq type='get' id='roster'>"
		                    "<query xmlns='" NS_ROSTER "'/></iq>");
		c->step = STEP_ROSTER;
	} else {
		conn_logged_in(c);
	}
}

static void
handle_top(struct conn *c)
{
	if (c->pending == PENDING_FAIL)
		return;
	if (c->pep != NULL && pep_top_end(c))
		return;
	if (c->muc != NULL && muc_top_end(c))
		return;
	if (c->in_message) {
		chat_message_end(c);
		return;
	}
	switch (c->top) {
	case TOP_STREAM_ERROR:
		conn_fail(c, FAIL_STREAM_ERROR, c->text.data);
		return;
	case TOP_SASL_FAILURE:
		conn_fail(c, FAIL_AUTH, c->text.data);
		return;
	case TOP_TLS_FAILURE:
		conn_fail(c, FAIL_TLS, "<failure/> to STARTTLS");
		return;
	case TOP_PRESENCE:
		if (B.o.mode == MODE_ROSTER)
			handle_presence(c);
		else if (B.o.mode == MODE_PRESENCE)
			presence_received(c);
		else if (B.o.mode == MODE_CSI)
			csi_presence(c);
		return;
	case TOP_SM_R:
		/* XEP-0198 §4: answer the server's request at once. */
		if (c->sm_on) {
			char a[64];

			snprintf(a, sizeof(a),
			    "<a xmlns='" NS_SM "' h='%" PRIu32 "'/>",
			    c->sm_h_in);
			conn_send(c, a);
			B.sm_acks_sent++;
		}
		return;
	case TOP_SM_A:
		return;
	case TOP_SM_FAILED:
		conn_fail(c, FAIL_SM, c->text.len ? c->text.data : "failed");
		return;
	case TOP_WS_CLOSE:
		/* RFC 7395 §3.6: as the server's </stream:stream>. */
		c->pending =
		    c->pending == PENDING_FAIL ? PENDING_FAIL : PENDING_CLOSED;
		XML_StopParser(c->parser, XML_FALSE);
		return;
	case TOP_WS_OPEN:
	case TOP_OTHER:
	case TOP_NONE:
		return; /* roster push, message, ... */
	default:
		break;
	}
	if (B.o.mode == MODE_CSI && c->top == TOP_IQ && c->iq_id > 0) {
		csi_iq_result(c);
		return;
	}
	switch (c->step) {
	case STEP_FEATURES:
		if (c->top == TOP_FEATURES)
			handle_features(c);
		else
			conn_fail(c, FAIL_PROTOCOL, "expected features");
		break;
	case STEP_PROCEED:
		if (c->top != TOP_PROCEED) {
			conn_fail(c, FAIL_PROTOCOL, "expected proceed");
			break;
		}
		c->pending = PENDING_TLS;
		XML_StopParser(c->parser, XML_FALSE);
		break;
	case STEP_CHALLENGE:
		if (c->top == TOP_CHALLENGE)
			handle_challenge(c);
		else
			conn_fail(c, FAIL_PROTOCOL, "expected challenge");
		break;
	case STEP_SUCCESS:
		if (c->top == TOP_SUCCESS)
			handle_success(c);
		else
			conn_fail(c, FAIL_PROTOCOL, "expected success");
		break;
	case STEP_BIND:
		if (c->top != TOP_IQ || !c->iq_bind)
			break;
		if (!c->iq_result) {
			conn_fail(c, FAIL_BIND, "bind error");
			break;
		}
		if (B.o.sm) {
			/* XEP-0198 §3, after binding; resumable. */
			if (!c->has_sm_feature) {
				conn_fail(c, FAIL_SM, "no sm feature");
				break;
			}
			conn_send(
			    c, "<enable xmlns='" NS_SM "' resume='true'/>");
			c->step = STEP_ENABLED;
		} else {
			sm_bound(c);
		}
		break;
	case STEP_ENABLED:
		if (c->top != TOP_SM_ENABLED)
			break;
		if (B.o.mode == MODE_RESUME && c->sm_id[0] == '\0') {
			conn_fail(c, FAIL_SM, "<enabled/> without resumption");
			break;
		}
		c->sm_on = 1;
		c->sm_h_in = c->sm_h_out = 0;
		B.sm_enabled++;
		sm_bound(c);
		break;
	case STEP_RESUMED:
		if (c->top == TOP_SM_RESUMED)
			conn_resumed(c);
		break;
	case STEP_ROSTER:
		if (c->top == TOP_IQ && c->iq_roster)
			handle_roster(c);
		break;
	case STEP_PROBES:
	case STEP_PEP:
		break;
	}
}

/* ---- connection lifecycle ---- */

/* CSI mode: every TLS record the observer receives, with its bytes
 * (header included), as the record layer reads it. */
static void
csi_msg_cb(int write_p, int version, int content_type, const void *buf,
    size_t len, SSL *ssl, void *arg)
{
	const unsigned char *h = buf;

	if (write_p || content_type != SSL3_RT_HEADER || len < 5)
		return;
	B.csi_now.records++;
	B.csi_now.tls_bytes += 5 + ((size_t)h[3] << 8 | h[4]);
}

/* Resume mode: keep the newest ticket of each connection for the next
 * (TLS 1.3 sends it after the handshake, xmppd with its first data). */
static int
new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct conn *c = SSL_get_app_data(ssl);

	if (c == NULL)
		return 0;
	if (c->tls_session != NULL)
		SSL_SESSION_free(c->tls_session);
	c->tls_session = sess;
	B.tickets++;
	return 1; /* the reference is ours */
}

static void
conn_start_tls(struct conn *c)
{
	c->ssl = SSL_new(B.ssl_ctx);
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_tlsext_host_name(c->ssl, user_domain(c->user));
	if (c->ws != NULL) {
		static const unsigned char http11[] = "\x08http/1.1";

		SSL_set_alpn_protos(c->ssl, http11, sizeof(http11) - 1);
	}
	SSL_set_app_data(c->ssl, c);
	if (c->resuming && c->tls_session != NULL && !B.o.no_tls_resume)
		SSL_set_session(c->ssl, c->tls_session);
	if (B.o.mode == MODE_CSI && c->id == B.csi_contacts)
		SSL_set_msg_callback(c->ssl, csi_msg_cb);
	SSL_set_connect_state(c->ssl);
	c->state = CS_HANDSHAKE;
}

/*
 * The login is complete: the bind result, or in roster mode the last
 * online contact's presence.  Runs inside the parser callback, so the
 * parser is only stopped here; conn_parse frees it in idle mode.
 */
static void
conn_logged_in(struct conn *c)
{
	double ms = (now_mono() - c->t_start) * 1000.0;

	if (B.o.mode == MODE_CHAT) {
		chat_session_up(c);
		return;
	}
	if (B.o.mode == MODE_MUC) {
		muc_session_up(c);
		return;
	}
	if (B.o.mode == MODE_RESUME)
		B.ramp_latencies[B.logged_in++] = ms;
	else
		B.latencies[B.logged_in++] = ms;
	c->logged_in = 1;
	B.probes_seen += c->probes_seen;
	if (B.o.mode == MODE_IDLE || B.o.mode == MODE_RESUME) {
		/* Initial presence (RFC 6121 §4.2); then only drain, or
		 * with stream management count and answer <r/>. */
		conn_send_stanza(c, "<presence/>");
		if (!c->sm_on)
			XML_StopParser(c->parser, XML_FALSE);
		c->state = CS_IDLE;
		c->in_flight = 0;
		B.active--;
		start_more();
		check_done();
	} else {
		conn_send_close(c);
		c->state = CS_CLOSING;
		c->deadline = now_mono() + CLOSE_GRACE;
	}
}

/* Roster mode: an online session is up and available; it stays open,
 * keeping its parser to count the presence it receives. */
static void
conn_online_up(struct conn *c)
{
	c->logged_in = 1;
	c->state = CS_IDLE;
	c->in_flight = 0;
	B.active--;
	B.online_up++;
	start_more();
	check_done();
}

static void conn_connect(struct conn *);

static void
conn_new(unsigned id)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->id = id;
	c->fd = -1;
	if (B.o.mode == MODE_CSI) {
		/* The observer is user 0, its contacts (the seeded relation)
		 * users 1 .. R/2 and U-R/2 .. U-1. */
		unsigned r = B.csi_contacts;

		c->online = id < r;
		c->user = id == r      ? 0
		          : id < r / 2 ? id + 1
		                       : B.o.users - (r - id);
	} else if (B.o.mode == MODE_PRESENCE || B.o.mode == MODE_PEP ||
	           B.o.mode == MODE_MUC) {
		c->user = id;
		c->online = 1;
	} else if (B.o.mode != MODE_ROSTER)
		c->user = (B.o.first_user + id) % B.o.users;
	else if (id < B.o.online) {
		c->user = 2 * id + 1;
		c->online = 1;
	} else
		c->user = 2 * ((id - B.o.online) % (B.o.users / 2));
	if (B.o.mode == MODE_PEP || B.o.mode == MODE_PEP_LOGIN)
		c->pep = xcalloc(1, sizeof(*c->pep));
	if (B.o.transport != TRANSPORT_TCP) {
		c->ws = xcalloc(1, sizeof(*c->ws));
		c->ws->mask_state = 0x9e3779b9u ^ (id * 2654435761u);
		if (c->ws->mask_state == 0)
			c->ws->mask_state = 1;
	}
	if (B.o.mode == MODE_MUC) {
		/* Room r's occupants are users r*N .. r*N+N-1, the first its
		 * owner; the joiners follow. */
		c->muc = xcalloc(1, sizeof(*c->muc));
		c->muc->room =
		    id < B.muc.sessions - B.o.joins ? id / B.o.occupants : 0;
		c->muc->role = id >= B.muc.sessions - B.o.joins ? MUC_JOINER
		               : id % B.o.occupants == 0        ? MUC_OWNER
		                                                : MUC_OCCUPANT;
	}
	B.conns[id] = c;
	B.started++;
	B.live++;
	conn_connect(c);
}

/* Start c's connection (its first, or a reconnect): it holds one of the
 * -c slots until logged in.  On failure c is finished. */
static void
conn_connect(struct conn *c)
{
	int one = 1;
	int peer = B.o.peer_port > 0 && (c->user & 1u);
	const struct sockaddr *to = (const struct sockaddr *)(peer ?
	    &B.peer_addr : &B.addr);
	socklen_t tolen = peer ? B.peer_addrlen : B.addrlen;

	c->t_start = now_mono();
	c->deadline = c->t_start + LOGIN_TIMEOUT;
	c->state = CS_CONNECTING;
	c->step = STEP_FEATURES;
	c->pending = PENDING_NONE;
	c->in_flight = 1;
	B.active++;
	c->fd = socket(
	    B.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		conn_fail(c, FAIL_CONNECT, strerror(errno));
		conn_finish(c, 0);
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (B.o.sources > 1 && B.addr.ss_family == AF_INET) {
		struct sockaddr_in src;

		memset(&src, 0, sizeof(src));
		src.sin_family = AF_INET;
		src.sin_addr.s_addr = htonl(0x7f000001u + c->id % B.o.sources);
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof(one));
		if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) == -1) {
			conn_fail(c, FAIL_CONNECT, strerror(errno));
			conn_finish(c, 0);
			return;
		}
	}
	if (connect(c->fd, to, tolen) == -1 &&
	    errno != EINPROGRESS) {
		conn_fail(c, FAIL_CONNECT, strerror(errno));
		conn_finish(c, 0);
		return;
	}
	ev_io_init(&c->io, conn_io, c->fd, EV_WRITE);
	c->io.data = c;
	c->events = EV_WRITE;
	ev_io_start(B.loop, &c->io);
}

/*
 * Resume mode: drop c's connection the abrupt way (no </stream:stream>,
 * no close_notify; SO_LINGER 0 makes close(2) send a reset, as a
 * client whose network vanished would, once it came back), then
 * connect again to resume the session.  The TLS ticket and the
 * stream management state stay.
 */
static void
conn_reconnect(struct conn *c)
{
	struct linger lg = {1, 0};

	ev_io_stop(B.loop, &c->io);
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(c->fd);
	c->fd = -1;
	/* Nothing is sent, but OpenSSL must not take the session for a
	 * failed one (SSL_free would mark it not resumable). */
	SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(c->ssl);
	c->ssl = NULL;
	ERR_clear_error();
	parser_free(c);
	buf_free(&c->out);
	c->tls_up = c->authed = c->logged_in = 0;
	c->events = 0;
	c->resuming = 1;
	conn_connect(c);
}

/* Resume mode: <resumed/> (XEP-0198 §5); its h is what the server
 * handled of ours, which must be all we sent. */
static void
conn_resumed(struct conn *c)
{
	if (c->sm_h_attr != (long)c->sm_h_out)
		B.sm_resume_h_wrong++;
	B.latencies[B.logged_in++] = (now_mono() - c->t_start) * 1000.0;
	c->logged_in = 1;
	c->state = CS_IDLE;
	c->in_flight = 0;
	B.active--;
	start_more();
	check_done();
}

/* End c: count it, release everything, start the next login. */
static void
conn_finish(struct conn *c, int ok)
{
	if (!c->logged_in) {
		if (c->online)
			B.online_failed++;
		else
			B.failed++;
		B.fail_counts[c->pending == PENDING_FAIL ? c->fail
		                                         : FAIL_ABORTED]++;
	}
	if (B.o.mode == MODE_ROSTER && !c->online) {
		B.measured_finished++;
		B.presence_received += c->presence_count;
	}
	if (c->in_flight)
		B.active--;
	if (!ok && c->state == CS_CLOSING)
		B.unclean_closes++;
	if (c->state == CS_IDLE)
		B.dropped++; /* the server ended an idle session */
	if (c->fd != -1) {
		ev_io_stop(B.loop, &c->io);
		if (c->ssl && ok)
			SSL_shutdown(c->ssl); /* close_notify, no wait */
		close(c->fd);
	}
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->tls_session)
		SSL_SESSION_free(c->tls_session);
	ERR_clear_error();
	parser_free(c);
	buf_free(&c->out);
	free(c->pep);
	free(c->muc);
	if (c->ws != NULL) {
		buf_free(&c->ws->in);
		buf_free(&c->ws->message);
		free(c->ws);
	}
	B.conns[c->id] = NULL;
	B.live--;
	B.finished++;
	free(c);
	if (!B.closing && !B.stopping)
		start_more();
	check_done();
}

/* Feed n bytes to the parser; returns after carrying out any action. */
static void
conn_parse(struct conn *c, const char *data, size_t n)
{
	if (c->parser == NULL || n == 0)
		return;
	if (XML_Parse(c->parser, data, (int)n, 0) == XML_STATUS_ERROR &&
	    c->pending == PENDING_NONE &&
	    XML_GetErrorCode(c->parser) != XML_ERROR_ABORTED) {
		char detail[128];

		snprintf(detail, sizeof(detail), "%s",
		    XML_ErrorString(XML_GetErrorCode(c->parser)));
		conn_fail(c, FAIL_XML, detail);
	}
	if (c->state == CS_IDLE && B.o.mode == MODE_IDLE && !c->sm_on)
		parser_free(c);
}

/*
 * Read everything available.  Returns 1 if the peer closed (EOF), 0 to
 * wait for more, -1 on a fatal error (c failed).  Stops early when the
 * parser leaves an action pending, since the bytes after <proceed/> or
 * <success/> belong to the next layer or stream.
 */
static int
conn_read(struct conn *c)
{
	char data[16384];

	/* Frames left over when the last stream restarted. */
	if (c->ws != NULL && buf_avail(&c->ws->in) > 0) {
		int r = ws_decode(c);

		if (r != 0 || c->pending != PENDING_NONE)
			return r;
	}
	for (int rounds = 0; rounds < 64; rounds++) {
		ssize_t n;
		int got;

		if (c->ssl) {
			int r = SSL_read(c->ssl, data, sizeof(data));

			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_READ ||
				    e == SSL_ERROR_WANT_WRITE)
					return 0;
				ERR_clear_error();
				if (e == SSL_ERROR_ZERO_RETURN ||
				    (e == SSL_ERROR_SYSCALL && r == 0))
					return 1;
				if (c->state == CS_CLOSING)
					return 1; /* reset after close */
				conn_fail(c, FAIL_IO, "SSL_read");
				return -1;
			}
			n = r;
		} else {
			n = recv(c->fd, data, sizeof(data), 0);
			if (n == 0)
				return 1;
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR)
					return 0;
				if (c->state == CS_CLOSING)
					return 1;
				conn_fail(c, FAIL_IO, strerror(errno));
				return -1;
			}
		}
		if (B.o.mode == MODE_CSI && c->id == B.csi_contacts)
			B.csi_now.plain_bytes += (unsigned long)n;
		if ((got = transport_input(c, data, (size_t)n)) != 0)
			return got;
		if (c->pending != PENDING_NONE)
			return 0;
	}
	return 0;
}

/* Drive the TLS handshake; 1 when done, 0 to wait, -1 failed. */
static int
conn_handshake(struct conn *c)
{
	int r = SSL_do_handshake(c->ssl), e;

	if (r == 1) {
		c->tls_up = 1;
		if (c->resuming && SSL_session_reused(c->ssl))
			B.tls_resumed++;
		if (B.tls_proto[0] == '\0')
			snprintf(B.tls_proto, sizeof(B.tls_proto), "%s/%s",
			    SSL_get_version(c->ssl),
			    SSL_get_cipher_name(c->ssl));
		return 1;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		conn_set_events(c, EV_READ);
		return 0;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		conn_set_events(c, EV_READ | EV_WRITE);
		return 0;
	}
	{
		char detail[160];
		unsigned long err = ERR_get_error();

		ERR_error_string_n(err, detail, sizeof(detail));
		ERR_clear_error();
		conn_fail(c, FAIL_TLS, err ? detail : "handshake");
	}
	return -1;
}

/* Carry out what the parser left pending; 0, or -1 if c was finished. */
static int
conn_run_pending(struct conn *c)
{
	enum conn_pending p = c->pending;

	c->pending = PENDING_NONE;
	switch (p) {
	case PENDING_NONE:
		return 0;
	case PENDING_FAIL:
		c->pending = PENDING_FAIL;
		conn_finish(c, 0);
		return -1;
	case PENDING_CLOSED:
		if (c->state == CS_CLOSING) {
			conn_finish(c, 1);
			return -1;
		}
		conn_fail(c, FAIL_EOF, "server closed the stream");
		conn_finish(c, 0);
		return -1;
	case PENDING_TLS:
		parser_free(c);
		conn_start_tls(c);
		return 0;
	case PENDING_RESTART:
		stream_open(c);
		return 0;
	}
	return 0;
}

static void
conn_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;
	int r;

	if (c->state == CS_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0) {
			conn_fail(c, FAIL_CONNECT, strerror(err));
			conn_finish(c, 0);
			return;
		}
		if (B.o.tls == TLS_DIRECT)
			conn_start_tls(c);
		else
			stream_open(c);
	}
	/* Loop: one read may carry a step that enables the next one. */
	for (int rounds = 0; rounds < 16; rounds++) {
		if (c->state == CS_HANDSHAKE) {
			if ((r = conn_handshake(c)) == -1) {
				conn_finish(c, 0);
				return;
			}
			if (r == 0)
				return;
			if (B.o.handshake_only) {
				/* The baseline of a login: what the same
				 * server pays for the TLS handshake alone. */
				B.latencies[B.logged_in++] =
				    (now_mono() - c->t_start) * 1000.0;
				c->logged_in = 1;
				conn_finish(c, 1);
				check_done();
				return;
			}
			stream_open(c);
		}
		r = conn_read(c);
		if (c->pending != PENDING_NONE) {
			if (conn_run_pending(c) == -1)
				return;
			if (conn_flush(c) == -1) {
				conn_finish(c, 0);
				return;
			}
			continue;
		}
		if (r == 1) {
			if (c->state == CS_CLOSING) {
				conn_finish(c, 1);
			} else {
				conn_fail(c, FAIL_EOF, "connection closed");
				conn_finish(c, 0);
			}
			return;
		}
		if (r == -1) {
			conn_finish(c, 0);
			return;
		}
		break;
	}
	if (conn_flush(c) == -1) {
		conn_finish(c, 0);
		return;
	}
	/* --no-close-wait: the login is over once </stream:stream> is out. */
	if (c->state == CS_CLOSING && B.o.no_close_wait &&
	    buf_avail(&c->out) == 0) {
		conn_finish(c, 1);
		return;
	}
	if (c->state != CS_HANDSHAKE)
		conn_set_events(
		    c, buf_avail(&c->out) > 0 ? EV_READ | EV_WRITE : EV_READ);
}

/* ---- run control ---- */

/* Start logins up to the concurrency; roster mode: of the current phase
 * (ids 0..ONLINE-1 are the online sessions, the measured ones follow). */
static void
start_more(void)
{
	unsigned limit = B.o.n, concurrency = B.o.concurrency;

	if (B.o.mode == MODE_ROSTER) {
		if (B.phase == PHASE_RAMP) {
			limit = B.o.online;
			concurrency = ROSTER_RAMP;
		} else if (B.phase == PHASE_MEASURE) {
			limit = B.o.online + B.o.n;
		} else {
			return;
		}
	}
	if (B.o.mode == MODE_CHAT)
		limit = 2 * B.o.pairs;
	if (B.o.mode == MODE_MUC)
		limit = B.muc.sessions;
	if (B.o.mode == MODE_PRESENCE || B.o.mode == MODE_PEP) {
		if (B.phase != PHASE_RAMP)
			return;
		limit = B.o.users;
	}
	if (B.o.mode == MODE_CSI) {
		if (B.csi_step == CSI_CONTACTS) {
			limit = B.csi_contacts;
			concurrency = CSI_RAMP;
		} else if (B.csi_step == CSI_OBSERVER) {
			limit = B.csi_contacts + 1;
		} else {
			return;
		}
	}
	if (B.o.mode == MODE_RESUME && B.phase != PHASE_RAMP) {
		/* The reconnects, in login order, -c at a time. */
		while (B.phase == PHASE_MEASURE && !B.stopping && !B.closing &&
		       B.next_reconnect < B.o.n && B.active < concurrency) {
			struct conn *c = B.conns[B.next_reconnect++];

			if (c != NULL && c->state == CS_IDLE)
				conn_reconnect(c);
		}
		return;
	}
	while (!B.stopping && !B.closing && B.started < limit &&
	       B.active < concurrency)
		conn_new(B.started);
}

static double
percentile(const double *v, unsigned n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p * (n - 1) + 0.5);
	return v[i];
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static const char *
mode_name(void)
{
	switch (B.o.mode) {
	case MODE_LOGIN:
		return B.o.handshake_only ? "handshake" : "login";
	case MODE_IDLE:
		return B.o.sm ? "idle-sm" : "idle";
	case MODE_ROSTER:
		return "roster";
	case MODE_CHAT:
		return "chat";
	case MODE_PRESENCE:
		return "presence";
	case MODE_RESUME:
		return "resume";
	case MODE_CSI:
		return "csi";
	case MODE_PEP:
		return "pep";
	case MODE_PEP_LOGIN:
		return B.o.pep_seed     ? "pep-seed"
		       : B.o.pep_notify ? "pep-login-notify"
		                        : "pep-login";
	case MODE_MUC:
		return "muc";
	}
	return "?";
}

static void
print_summary(void)
{
	double elapsed = (B.all_up ? B.t_up : now_mono()) - B.t0;
	double rate = elapsed > 0 ? B.logged_in / elapsed : 0;
	double p50, p99, pmax, mean = 0;
	char fails[512] = "";
	long per_session = -1;
	double cpu_ms = -1, presence = -1;
	FILE *f;

	if (B.o.mode == MODE_CHAT) {
		chat_print_summary();
		return;
	}
	if (B.o.mode == MODE_PRESENCE) {
		presence_print_summary();
		return;
	}
	if (B.o.mode == MODE_RESUME) {
		resume_print_summary();
		return;
	}
	if (B.o.mode == MODE_CSI) {
		csi_print_summary();
		return;
	}
	if (B.o.mode == MODE_PEP) {
		pep_print_summary();
		return;
	}
	if (B.o.mode == MODE_MUC) {
		muc_print_summary();
		return;
	}

	qsort(B.latencies, B.logged_in, sizeof(double), cmp_double);
	p50 = percentile(B.latencies, B.logged_in, 0.50);
	p99 = percentile(B.latencies, B.logged_in, 0.99);
	pmax = B.logged_in ? B.latencies[B.logged_in - 1] : 0;
	for (unsigned i = 0; i < B.logged_in; i++)
		mean += B.latencies[i] / B.logged_in;
	for (int i = 0; i < FAIL_COUNT; i++)
		if (B.fail_counts[i])
			snprintf(fails + strlen(fails),
			    sizeof(fails) - strlen(fails), "%s%s=%u",
			    fails[0] ? "," : " (", fail_names[i],
			    B.fail_counts[i]);
	if (fails[0])
		strncat(fails, ")", sizeof(fails) - strlen(fails) - 1);
	printf("%s %s tls=%s%s%s mech=%s n=%u c=%u ok=%u failed=%u%s "
	       "elapsed=%.2fs rate=%.1f/s mean=%.2fms p50=%.2fms p99=%.2fms "
	       "max=%.2fms",
	    B.o.label, mode_name(), tls_name(), B.tls_proto[0] ? "," : "",
	    B.tls_proto, mech_used_name(), B.o.n, B.o.concurrency, B.logged_in,
	    B.failed, fails, elapsed, rate, mean, p50, p99, pmax);
	if (B.keys_derived)
		printf(" pbkdf2=%u/%.2fs", B.keys_derived, B.derive_seconds);
	if (B.unclean_closes)
		printf(" unclean-closes=%u", B.unclean_closes);
	if (B.dropped)
		printf(" dropped=%u", B.dropped);
	if (B.timed_out)
		printf(" TIMED-OUT");
	if (B.o.mode == MODE_IDLE && B.rss_before >= 0 && B.rss_after >= 0) {
		if (B.logged_in > 0)
			per_session = (B.rss_after - B.rss_before) * 1024 /
			              (long)B.logged_in;
		printf(" server_rss_before=%ldKiB server_rss_after=%ldKiB "
		       "per_session=%ldB(%.1fKiB)",
		    B.rss_before, B.rss_after, per_session,
		    per_session / 1024.0);
	}
	if (B.o.mode == MODE_IDLE && B.self_rss >= 0)
		printf(" bench_rss=%ldKiB", B.self_rss);
	if (B.o.sm)
		printf(" sm=%u/%u acks=%u", B.sm_enabled, B.logged_in,
		    B.sm_acks_sent);
	if (B.cpu_before >= 0 && B.cpu_after >= 0 && B.logged_in > 0) {
		cpu_ms = (B.cpu_after - B.cpu_before) * 1000.0 / B.logged_in;
		printf(" server_cpu=%.2fs(%.2fms/login)",
		    B.cpu_after - B.cpu_before, cpu_ms);
	}
	print_utilisation(elapsed);
	if (B.o.mode == MODE_ROSTER) {
		if (B.logged_in > 0)
			presence = (double)B.presence_received / B.logged_in;
		printf(" online=%u/%u presence/login=%.1f "
		       "probe-answers/login=%.1f online-received=%lu+%lu/%lu "
		       "drain=%.2fs",
		    B.online_up, B.o.online, presence,
		    B.logged_in ? (double)B.probes_seen / B.logged_in : 0.0,
		    B.bcast_available, B.bcast_unavailable, B.bcast_expected,
		    B.t_drain);
	}
	if (B.o.mode == MODE_PEP_LOGIN && !B.o.pep_seed)
		printf(" nodes=%u items=%ld caps=%s last-items/login=%.1f "
		       "own/login=%.1f disco=%lu",
		    B.o.nodes, B.o.roster_items,
		    B.o.pep_notify ? "notify" : "plain",
		    B.logged_in ? (double)B.pep_login_contact / B.logged_in
		                : 0.0,
		    B.logged_in ? (double)B.pep_login_own / B.logged_in : 0.0,
		    B.pep_disco);
	printf("\n");
	fflush(stdout);
	if (B.o.csv == NULL)
		return;
	if ((f = fopen(B.o.csv, "a")) == NULL) {
		log_warn("cannot append to %s", B.o.csv);
		return;
	}
	if (ftell(f) == 0)
		fprintf(f,
		    "time,label,mode,tls,n,concurrency,ok,failed,"
		    "elapsed_s,logins_per_s,p50_ms,p99_ms,max_ms,mean_ms,"
		    "server_rss_before_kib,server_rss_after_kib,"
		    "bytes_per_session,bench_rss_kib,timed_out,"
		    "server_cpu_ms_per_login,presence_per_login,online,"
		    "online_presence_received,online_presence_expected,"
		    "mech,server_cpu_s,bench_cpu_s\n");
	fprintf(f,
	    "%ld,%s,%s,%s,%u,%u,%u,%u,%.3f,%.1f,%.3f,%.3f,%.3f,%.3f,"
	    "%ld,%ld,%ld,%ld,%d,%.3f,%.1f,%ld,%ld,%ld,%s,%.2f,%.2f\n",
	    (long)time(NULL), B.o.label, mode_name(), tls_name(), B.o.n,
	    B.o.concurrency, B.logged_in, B.failed, elapsed, rate, p50, p99,
	    pmax, mean, B.rss_before, B.rss_after, per_session, B.self_rss,
	    B.timed_out, cpu_ms, presence,
	    B.o.mode == MODE_ROSTER ? (long)B.online_up : -1L,
	    B.o.mode == MODE_ROSTER
	        ? (long)(B.bcast_available + B.bcast_unavailable)
	        : -1L,
	    B.o.mode == MODE_ROSTER ? (long)B.bcast_expected : -1L,
	    mech_used_name(), cpu_delta(B.cpu_before, B.cpu_after),
	    cpu_delta(B.self_cpu_before, B.self_cpu_after));
	fclose(f);
}

static void
stop_loop(void)
{
	if (B.stopping)
		return;
	B.stopping = 1;
	ev_break(B.loop, EVBREAK_ALL);
}

static void
begin_close_all(void)
{
	double deadline = now_mono() + CLOSE_GRACE;

	if (B.closing)
		return;
	B.closing = 1;
	ev_timer_stop(B.loop, &B.hold);
	ev_io_stop(B.loop, &B.stdin_watcher);
	for (unsigned i = 0; i < B.started; i++) {
		struct conn *c = B.conns[i];

		if (c == NULL)
			continue;
		if (c->state != CS_IDLE) {
			conn_finish(c, 0);
			continue;
		}
		conn_send_close(c);
		c->state = CS_CLOSING;
		c->deadline = deadline;
		if (conn_flush(c) == -1) {
			conn_finish(c, 0);
			continue;
		}
		conn_set_events(
		    c, buf_avail(&c->out) ? EV_READ | EV_WRITE : EV_READ);
	}
	check_done();
}

static void
hold_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	begin_close_all();
}

static void
stdin_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	char line[256];
	ssize_t n = read(0, line, sizeof(line));

	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* No terminal or pipe to wait on: hold until a signal or -T. */
		ev_io_stop(B.loop, &B.stdin_watcher);
		return;
	}
	begin_close_all();
}

static void
settle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	B.self_rss = read_rss_kib(0);
	if (B.o.server_pid > 0)
		B.rss_after = read_rss_kib(B.o.server_pid);
	if (B.o.server_pid > 0)
		printf(
		    "idle: after %.0fs idle, server VmRSS %ld KiB -> %ld KiB "
		    "(load generator %ld KiB)\n",
		    B.o.settle, B.rss_before, B.rss_after, B.self_rss);
	fflush(stdout);
	if (B.o.hold_given) {
		double left = B.o.hold - B.o.settle;

		ev_timer_init(&B.hold, hold_cb, left > 0 ? left : 0, 0);
		ev_timer_start(B.loop, &B.hold);
	} else {
		printf("idle: holding; press Enter or send SIGINT/SIGTERM to "
		       "close\n");
		fflush(stdout);
		ev_io_init(&B.stdin_watcher, stdin_cb, 0, EV_READ);
		ev_io_start(B.loop, &B.stdin_watcher);
	}
}

/* Roster mode: the online sessions have settled; measure from now. */
static void
roster_measure_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	B.phase = PHASE_MEASURE;
	cpu_mark_before();
	B.t0 = now_mono();
	start_more();
	check_done();
}

/*
 * Roster mode, all measured logins done: wait until the online sessions
 * have received every broadcast the logins caused (or ROSTER_DRAIN s),
 * so the server's CPU time includes them, then close everything.
 */
static void
roster_drain_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	double waited = now_mono() - B.t_up;

	if (B.bcast_available + B.bcast_unavailable < B.bcast_expected &&
	    waited < ROSTER_DRAIN)
		return;
	ev_timer_stop(B.loop, &B.settle);
	B.t_drain = waited;
	cpu_mark_after();
	B.phase = PHASE_CLOSE;
	begin_close_all();
}

/*
 * Roster mode: detect the end of each phase.  Measured logins expect the
 * presence of every online session, so without all of them the run stops
 * at once instead of letting each login time out.
 */
static void
roster_check_done(void)
{
	if (B.closing) {
		if (B.live == 0)
			stop_loop();
		return;
	}
	if (B.phase == PHASE_RAMP &&
	    B.online_up + B.online_failed == B.o.online) {
		B.phase = PHASE_SETTLE;
		printf("roster: %u of %u online sessions up in %.2fs; "
		       "settling %.1fs\n",
		    B.online_up, B.o.online, now_mono() - B.t0, ROSTER_SETTLE);
		fflush(stdout);
		ev_timer_init(&B.settle, roster_measure_cb, ROSTER_SETTLE, 0);
		ev_timer_start(B.loop, &B.settle);
	}
	if (B.phase != PHASE_RAMP && (B.online_failed || B.dropped)) {
		log_warnx("%u of %u online sessions failed or were dropped; "
		          "stopping",
		    B.online_failed + B.dropped, B.o.online);
		ev_timer_stop(B.loop, &B.settle);
		B.phase = PHASE_CLOSE;
		begin_close_all();
		return;
	}
	if (B.phase == PHASE_MEASURE && B.measured_finished == B.o.n) {
		B.phase = PHASE_DRAIN;
		B.all_up = 1;
		B.t_up = now_mono();
		ev_timer_init(&B.settle, roster_drain_cb, 0, DRAIN_POLL);
		ev_timer_start(B.loop, &B.settle);
	}
}

/*
 * The "ID T_SEND" a chat body or presence status starts with: the
 * sender's connection id (below limit) and monotonic send time.
 */
static int
parse_stamp(
    const struct buf *text, unsigned limit, unsigned *from, double *sent)
{
	unsigned long id;
	char *end;

	if (text->len == 0)
		return -1;
	errno = 0;
	id = strtoul(text->data, &end, 10);
	if (errno || end == text->data || *end != ' ' || id >= limit)
		return -1;
	*sent = strtod(end + 1, &end);
	if (errno || (*end != '\0' && *end != ' '))
		return -1;
	*from = (unsigned)id;
	return 0;
}

/*
 * The end of a chat or presence summary line (utilisation, drops, a
 * timeout), then the CSV file to append its row to, or NULL (none asked
 * for, or it cannot be opened).
 */
static FILE *
summary_end(double elapsed)
{
	FILE *f;

	print_utilisation(elapsed);
	if (B.dropped)
		printf(" dropped=%u", B.dropped);
	if (B.timed_out)
		printf(" TIMED-OUT");
	printf("\n");
	fflush(stdout);
	if (B.o.csv == NULL)
		return NULL;
	if ((f = fopen(B.o.csv, "a")) == NULL)
		log_warn("cannot append to %s", B.o.csv);
	return f;
}

/*
 * Chat and presence: 1 when the run is over (closing: the loop stops once
 * the last connection is gone) or about to close, and nothing is to be
 * checked any more.
 */
static int
run_ending(void)
{
	if (B.closing) {
		if (B.live == 0)
			stop_loop();
		return 1;
	}
	return B.chat_stopping;
}

/* ---- chat mode ---- */

/*
 * Chat mode: sessions 2k and 2k+1 (users PREFIX<2k>, PREFIX<2k+1>) log
 * in, send initial presence and stay online; then each sends type='chat'
 * messages with a <body/> to its partner's bare JID, keeping at most
 * --window of its own undelivered, until -n messages have been sent in
 * all.  A body carries the sender's connection id and monotonic send
 * time, so the receiver measures the latency and reopens the sender's
 * window (both ends are in this process).
 */

/* Queue one message from c to its partner; the watcher writes it. */
static void
chat_send_one(struct conn *c)
{
	static char pad[CHAT_BODY_MAX + 1];

	if (pad[0] == '\0')
		memset(pad, 'x', B.o.body_bytes);
	conn_sendf(c,
	    "<message to='%s%u@%s' type='chat' id='b%lu'>"
	    "<body>%u %.6f %s</body></message>",
	    B.o.user_prefix, c->user ^ 1u, user_domain(c->user ^ 1u),
	    B.chat_sent, c->id,
	    now_mono(), pad);
	c->chat_window++;
	B.chat_sent++;
	conn_set_events(c, EV_READ | EV_WRITE);
}

/* Window-driven: queue c's next messages up to its window. */
static void
chat_fill(struct conn *c)
{
	if (c == NULL || c->state != CS_IDLE || B.o.rate > 0)
		return;
	while (B.chat_running && c->chat_window < B.o.window &&
	       B.chat_sent < B.o.n)
		chat_send_one(c);
}

/*
 * --rate: every millisecond, the messages due by now at that rate,
 * round robin over the senders with room in their window (a server that
 * falls behind fills the windows and the rate drops: reported).
 */
static void
chat_pace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	unsigned senders = 2 * B.o.pairs, tried = 0;
	double due = (now_mono() - B.t0) * B.o.rate;

	if (due > B.o.n)
		due = B.o.n;
	while (B.chat_running && (double)B.chat_sent < due && tried < senders) {
		struct conn *c = B.conns[B.chat_rr++ % senders];

		if (c != NULL && c->state == CS_IDLE &&
		    c->chat_window < B.o.window) {
			chat_send_one(c);
			tried = 0;
		} else
			tried++;
	}
	if (!B.chat_running || B.chat_sent >= B.o.n)
		ev_timer_stop(loop, w);
}

/* A logged-in chat session: available, then idle until the run starts. */
static void
chat_session_up(struct conn *c)
{
	conn_send(c, "<presence/>");
	c->logged_in = 1;
	c->state = CS_IDLE;
	c->in_flight = 0;
	B.active--;
	B.chat_up++;
	start_more();
	check_done();
}

/* Depth 2 start tag: note a <message/> and whether it is an error. */
static void
chat_message_start(struct conn *c, const char *name, const char **attrs)
{
	const char *type;

	c->in_message = xml_is(name, NS_CLIENT, "message");
	c->in_body = 0;
	if (c->in_message) {
		type = xml_attr(attrs, "type");
		c->msg_error = type != NULL && strcmp(type, "error") == 0;
	}
}

/* A whole <message/> received: its latency, and the sender's window. */
static void
chat_message_end(struct conn *c)
{
	unsigned from;
	double sent;
	struct conn *s;

	c->in_message = 0;
	if (c->msg_error) {
		B.chat_errors++;
		if (B.chat_errors <= 5)
			log_warnx("conn %u: message error: %.60s", c->id,
			    c->text.len ? c->text.data : "");
		check_done();
		return;
	}
	if (parse_stamp(&c->text, 2 * B.o.pairs, &from, &sent) == -1) {
		B.chat_bad++;
		return;
	}
	if (B.chat_delivered < B.o.n)
		B.latencies[B.chat_delivered] = (now_mono() - sent) * 1000.0;
	B.chat_delivered++;
	if ((s = B.conns[from]) != NULL && s->chat_window > 0) {
		s->chat_window--;
		chat_fill(s);
	}
	check_done();
}

/* All sessions up and settled: measure from now. */
static void
chat_measure_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	cpu_mark_before();
	B.t0 = now_mono();
	B.chat_running = 1;
	if (B.o.rate > 0) {
		ev_timer_init(&B.pace, chat_pace_cb, 0.001, 0.001);
		ev_timer_start(B.loop, &B.pace);
	}
	for (unsigned i = 0; i < 2 * B.o.pairs; i++)
		chat_fill(B.conns[i]);
	check_done();
}

/* Outside any parser callback: close the sessions. */
static void
chat_close_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	begin_close_all();
}

static void
chat_stop_soon(void)
{
	if (B.chat_stopping)
		return;
	B.chat_stopping = 1;
	B.chat_running = 0;
	ev_timer_stop(B.loop, &B.pace);
	ev_timer_stop(B.loop, &B.settle);
	ev_timer_init(&B.settle, chat_close_cb, 0, 0);
	ev_timer_start(B.loop, &B.settle);
}

static void
chat_check_done(void)
{
	if (run_ending())
		return;
	if (!B.all_up && B.chat_up + B.failed == 2 * B.o.pairs) {
		B.all_up = 1;
		B.t_login = now_mono() - B.t0;
		printf("chat: %u of %u sessions up in %.2fs; settling %.1fs\n",
		    B.chat_up, 2 * B.o.pairs, B.t_login, CHAT_SETTLE);
		fflush(stdout);
		if (B.failed) {
			log_warnx(
			    "%u sessions failed to log in; stopping", B.failed);
			chat_stop_soon();
			return;
		}
		ev_timer_init(&B.settle, chat_measure_cb, CHAT_SETTLE, 0);
		ev_timer_start(B.loop, &B.settle);
		return;
	}
	if (B.all_up && (B.dropped || B.chat_errors)) {
		log_warnx("%u sessions dropped, %lu message errors; stopping",
		    B.dropped, B.chat_errors);
		chat_stop_soon();
		return;
	}
	if (B.chat_running && B.chat_delivered >= B.o.n) {
		B.t_up = now_mono();
		cpu_mark_after();
		chat_stop_soon();
	}
}

static void
chat_print_summary(void)
{
	unsigned long n = B.chat_delivered < B.o.n ? B.chat_delivered : B.o.n;
	double elapsed = (B.t_up > 0 ? B.t_up : now_mono()) - B.t0;
	double rate, p50, p99, p999, pmax, mean = 0, cpu = -1;
	FILE *f;

	rate = elapsed > 0 ? B.chat_delivered / elapsed : 0;
	qsort(B.latencies, n, sizeof(double), cmp_double);
	p50 = percentile(B.latencies, (unsigned)n, 0.50);
	p99 = percentile(B.latencies, (unsigned)n, 0.99);
	p999 = percentile(B.latencies, (unsigned)n, 0.999);
	pmax = n ? B.latencies[n - 1] : 0;
	for (unsigned long i = 0; i < n; i++)
		mean += B.latencies[i] / n;
	double peer_cpu = B.o.peer_pid > 0 ? cpu_delta(B.peer_cpu_before,
	    B.peer_cpu_after) : 0, server_cpu;

	if (B.cpu_before >= 0 && B.cpu_after >= 0 && B.chat_delivered > 0 &&
	    peer_cpu >= 0)
		cpu = (B.cpu_after - B.cpu_before + peer_cpu) * 1e6 /
		    B.chat_delivered;
	server_cpu = cpu_delta(B.cpu_before, B.cpu_after);
	if (server_cpu >= 0 && peer_cpu >= 0)
		server_cpu += peer_cpu;
	printf("%s chat tls=%s%s%s mech=%s pairs=%u window=%u body=%u n=%u "
	       "sent=%lu delivered=%lu errors=%lu bad=%lu login-failed=%u "
	       "logins=%.2fs elapsed=%.3fs rate=%.1f/s mean=%.3fms "
	       "p50=%.3fms p99=%.3fms p99.9=%.3fms max=%.3fms",
	    B.o.label, tls_name(), B.tls_proto[0] ? "," : "", B.tls_proto,
	    mech_used_name(), B.o.pairs, B.o.window, B.o.body_bytes, B.o.n,
	    B.chat_sent, B.chat_delivered, B.chat_errors, B.chat_bad, B.failed,
	    B.t_login, elapsed, rate, mean, p50, p99, p999, pmax);
	if (cpu >= 0)
		printf(" server_cpu=%.2fs(%.1fms/1000msg)", server_cpu, cpu);
	if (cpu >= 0 && B.o.peer_pid > 0)
		printf(" (first %.2fs, peer %.2fs)",
		    B.cpu_after - B.cpu_before, peer_cpu);
	if (B.o.peer_domain != NULL)
		printf(" peer=%s", B.o.peer_domain);
	if (B.o.rate > 0)
		printf(" paced=%.0f/s", B.o.rate);
	if ((f = summary_end(elapsed)) == NULL)
		return;
	/* Its own columns: give chat runs their own CSV file. */
	if (ftell(f) == 0)
		fprintf(f, "time,label,mode,tls,pairs,window,body_bytes,n,"
		           "delivered,errors,elapsed_s,messages_per_s,p50_ms,"
		           "p99_ms,max_ms,mean_ms,server_cpu_ms_per_1000,"
		           "timed_out,p999_ms,mech,server_cpu_s,"
		           "bench_cpu_s\n");
	fprintf(f,
	    "%ld,%s,chat,%s,%u,%u,%u,%u,%lu,%lu,%.3f,%.1f,%.3f,%.3f,%.3f,"
	    "%.3f,%.2f,%d,%.3f,%s,%.2f,%.2f\n",
	    (long)time(NULL), B.o.label, tls_name(), B.o.pairs, B.o.window,
	    B.o.body_bytes, B.o.n, B.chat_delivered, B.chat_errors, elapsed,
	    rate, p50, p99, pmax, mean, cpu, B.timed_out, p999,
	    mech_used_name(), server_cpu,
	    cpu_delta(B.self_cpu_before, B.self_cpu_after));
	fclose(f);
}

/* ---- presence mode ---- */

/*
 * Presence mode: users PREFIX0 .. PREFIX<U-1>, whose rosters are seeded
 * with R mutual ('both') subscriptions among themselves, all log in
 * (roster get, initial presence) and stay online; once the presence
 * traffic of the logins has settled, each changes its status in turn
 * between <show>away</show> and available, with a <status/> carrying
 * its connection id and send time, keeping at most --window changes of
 * its own not yet delivered to all R contacts, until -n changes have
 * been sent.  The server broadcasts each to the R online contacts (RFC
 * 6121 §4.4.2); the run ends when all n * R have arrived.
 */

/* Queue c's next status changes up to its window. */
static void
presence_fill(struct conn *c)
{
	unsigned per = (unsigned)B.o.roster_items;

	if (c == NULL || c->state != CS_IDLE)
		return;
	while (B.chat_running && c->pres_pending + per <= B.o.window * per &&
	       B.pres_sent < B.o.n) {
		c->pres_away = !c->pres_away;
		conn_sendf(c,
		    "<presence>%s<status>%u %.6f</status>"
		    "</presence>",
		    c->pres_away ? "<show>away</show>" : "", c->id, now_mono());
		c->pres_pending += per;
		B.pres_sent++;
	}
	if (buf_avail(&c->out) > 0)
		conn_set_events(c, EV_READ | EV_WRITE);
}

/* A presence stanza received by an online session. */

/* "K ROUND", a csi status text: 1 and both set, or 0. */
static int
two_numbers(const char *s, unsigned *a, unsigned *b)
{
	char *end;
	unsigned long x = strtoul(s, &end, 10), y;

	if (end == s || *end != ' ')
		return 0;
	s = end + 1;
	y = strtoul(s, &end, 10);
	if (end == s || x > UINT_MAX || y > UINT_MAX)
		return 0;
	*a = (unsigned)x;
	*b = (unsigned)y;
	return 1;
}

static void
presence_received(struct conn *c)
{
	unsigned from;
	double sent;
	struct conn *s;

	B.t_last_presence = now_mono();
	if (c->pres_from < 0 || c->pres_from == (long)c->user) {
		B.pres_self++; /* our own broadcast, or not a bench user */
		return;
	}
	if (B.phase != PHASE_MEASURE) {
		B.pres_ramp++;
		return;
	}
	if (c->pres_type != PRES_AVAILABLE ||
	    parse_stamp(&c->text, B.o.users, &from, &sent) == -1) {
		B.pres_unstamped++;
		return;
	}
	if (B.lat_count < B.lat_max)
		B.latencies[B.lat_count++] =
		    (B.t_last_presence - sent) * 1000.0;
	B.pres_delivered++;
	if ((s = B.conns[from]) != NULL && s->pres_pending > 0) {
		s->pres_pending--;
		presence_fill(s);
	}
	check_done();
}

/* Settled: measure from now. */
static void
presence_measure(void)
{
	B.phase = PHASE_MEASURE;
	cpu_mark_before();
	B.t0 = now_mono();
	B.chat_running = 1;
	for (unsigned i = 0; i < B.o.users; i++)
		presence_fill(B.conns[i]);
	check_done();
}

/* After the ramp: wait until no presence has come for PRESENCE_QUIET s
 * (the logins' probes and broadcasts), at most PRESENCE_SETTLE s. */
static void
presence_settle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	double now = now_mono();

	if (now - B.t_last_presence < PRESENCE_QUIET &&
	    now - B.t_up < PRESENCE_SETTLE)
		return;
	ev_timer_stop(B.loop, &B.settle);
	printf("presence: settled after %.2fs (%lu presence stanzas "
	       "received while logging in and settling)\n",
	    now - B.t_up, B.pres_ramp);
	fflush(stdout);
	presence_measure();
}

static void
presence_check_done(void)
{
	if (run_ending())
		return;
	if (B.phase == PHASE_RAMP &&
	    B.online_up + B.online_failed == B.o.users) {
		B.phase = PHASE_SETTLE;
		B.t_up = now_mono();
		B.t_login = B.t_up - B.t0;
		printf("presence: %u of %u sessions up (roster, initial "
		       "presence) in %.2fs\n",
		    B.online_up, B.o.users, B.t_login);
		fflush(stdout);
		if (B.online_failed) {
			log_warnx("%u sessions failed to log in; stopping",
			    B.online_failed);
			chat_stop_soon();
			return;
		}
		B.t_last_presence = B.t_up;
		ev_timer_init(&B.settle, presence_settle_cb, 0.1, 0.1);
		ev_timer_start(B.loop, &B.settle);
		return;
	}
	if (B.phase != PHASE_RAMP && B.dropped) {
		log_warnx("%u sessions dropped; stopping", B.dropped);
		chat_stop_soon();
		return;
	}
	if (B.phase == PHASE_MEASURE && B.pres_delivered >= B.pres_expected) {
		B.phase = PHASE_DRAIN;
		B.t_up = now_mono();
		cpu_mark_after();
		chat_stop_soon();
	}
}

static void
presence_print_summary(void)
{
	double elapsed = (B.phase >= PHASE_DRAIN ? B.t_up : now_mono()) - B.t0;
	double rate, p50, p99, p999, pmax, mean = 0, cpu_us = -1;
	unsigned n = B.lat_count;
	FILE *f;

	if (B.phase < PHASE_MEASURE)
		elapsed = 0;
	rate = elapsed > 0 ? B.pres_delivered / elapsed : 0;
	qsort(B.latencies, n, sizeof(double), cmp_double);
	p50 = percentile(B.latencies, n, 0.50);
	p99 = percentile(B.latencies, n, 0.99);
	p999 = percentile(B.latencies, n, 0.999);
	pmax = n ? B.latencies[n - 1] : 0;
	for (unsigned i = 0; i < n; i++)
		mean += B.latencies[i] / n;
	if (B.cpu_before >= 0 && B.cpu_after >= 0 && B.pres_delivered > 0)
		cpu_us = (B.cpu_after - B.cpu_before) * 1e6 / B.pres_delivered;
	printf("%s presence tls=%s%s%s mech=%s users=%u items=%ld window=%u "
	       "n=%u sent=%lu delivered=%lu/%lu unstamped=%lu login-failed=%u "
	       "logins=%.2fs elapsed=%.3fs rate=%.1f/s mean=%.3fms "
	       "p50=%.3fms p99=%.3fms p99.9=%.3fms max=%.3fms",
	    B.o.label, tls_name(), B.tls_proto[0] ? "," : "", B.tls_proto,
	    mech_used_name(), B.o.users, B.o.roster_items, B.o.window, B.o.n,
	    B.pres_sent, B.pres_delivered, B.pres_expected, B.pres_unstamped,
	    B.online_failed, B.t_login, elapsed, rate, mean, p50, p99, p999,
	    pmax);
	if (cpu_us >= 0)
		printf(" server_cpu=%.2fs(%.2fus/stanza)",
		    B.cpu_after - B.cpu_before, cpu_us);
	if ((f = summary_end(elapsed)) == NULL)
		return;
	/* Its own columns, as chat. */
	if (ftell(f) == 0)
		fprintf(f, "time,label,mode,tls,mech,users,roster_items,window,"
		           "n,sent,delivered,expected,login_s,elapsed_s,"
		           "presence_per_s,p50_ms,p99_ms,p999_ms,max_ms,"
		           "mean_ms,server_cpu_us_per_stanza,server_cpu_s,"
		           "bench_cpu_s,timed_out\n");
	fprintf(f,
	    "%ld,%s,presence,%s,%s,%u,%ld,%u,%u,%lu,%lu,%lu,%.3f,%.3f,%.1f,"
	    "%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.2f,%.2f,%d\n",
	    (long)time(NULL), B.o.label, tls_name(), mech_used_name(),
	    B.o.users, B.o.roster_items, B.o.window, B.o.n, B.pres_sent,
	    B.pres_delivered, B.pres_expected, B.t_login, elapsed, rate, p50,
	    p99, p999, pmax, mean, cpu_us, cpu_delta(B.cpu_before, B.cpu_after),
	    cpu_delta(B.self_cpu_before, B.self_cpu_after), B.timed_out);
	fclose(f);
}

/* ---- resume mode ---- */

/*
 * Resume mode: -n sessions log in (-c at a time): TLS, SASL, bind,
 * <enable resume='true'/>, initial presence; they stay, counting what
 * they receive and answering <r/>.  RESUME_SETTLE s later each in turn
 * (-c at a time) drops its TCP connection (conn_reconnect) and connects
 * again: TLS resuming the first connection's session from its ticket,
 * SASL again, then <resume previd h/> until <resumed/>.  The server's
 * CPU time is read around the logins and around the reconnects.
 */

static void
resume_close_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	begin_close_all();
}

/* Outside any parser callback: begin_close_all may free connections. */
static void
resume_close_soon(void)
{
	ev_timer_stop(B.loop, &B.settle);
	ev_timer_init(&B.settle, resume_close_cb, 0, 0);
	ev_timer_start(B.loop, &B.settle);
}

static void
resume_measure_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	if (B.ramp_failed || B.dropped) {
		log_warnx("%u logins failed, %u sessions dropped; stopping",
		    B.ramp_failed, B.dropped);
		begin_close_all();
		return;
	}
	B.phase = PHASE_MEASURE;
	cpu_mark_before();
	B.t0 = now_mono();
	start_more();
	check_done();
}

static void
resume_check_done(void)
{
	double now = now_mono();

	if (B.closing) {
		if (B.live == 0)
			stop_loop();
		return;
	}
	if (B.phase == PHASE_RAMP && B.logged_in + B.failed == B.o.n) {
		double cpu =
		    B.o.server_pid > 0 ? read_cpu_seconds(B.o.server_pid) : -1;
		double self = read_cpu_seconds(getpid());

		B.ramp_elapsed = now - B.t0;
		B.ramp_cpu = cpu_delta(B.cpu_before, cpu);
		B.ramp_self_cpu = cpu_delta(B.self_cpu_before, self);
		B.ramp_ok = B.logged_in;
		B.ramp_failed = B.failed;
		B.logged_in = B.failed = 0;
		B.phase = PHASE_SETTLE;
		printf("resume: %u of %u sessions logged in with stream "
		       "management in %.2fs (%.0f/s); dropping and resuming "
		       "in %.1fs\n",
		    B.ramp_ok, B.o.n, B.ramp_elapsed,
		    B.ramp_elapsed > 0 ? B.ramp_ok / B.ramp_elapsed : 0.0,
		    RESUME_SETTLE);
		fflush(stdout);
		ev_timer_init(&B.settle, resume_measure_cb, RESUME_SETTLE, 0);
		ev_timer_start(B.loop, &B.settle);
		return;
	}
	if (B.phase == PHASE_MEASURE && B.next_reconnect == B.o.n &&
	    B.active == 0) {
		B.phase = PHASE_DRAIN;
		B.all_up = 1;
		B.t_up = now;
		cpu_mark_after();
		resume_close_soon();
	}
}

/* One row of the login columns of the CSV (results.csv). */
static void
csv_login_row(FILE *f, const char *mode, unsigned ok, unsigned failed,
    double elapsed, const double *lat, double cpu_s, double self_cpu_s)
{
	double mean = 0, cpu_ms = -1;

	for (unsigned i = 0; i < ok; i++)
		mean += lat[i] / ok;
	if (cpu_s >= 0 && ok > 0)
		cpu_ms = cpu_s * 1000.0 / ok;
	fprintf(f,
	    "%ld,%s,%s,%s,%u,%u,%u,%u,%.3f,%.1f,%.3f,%.3f,%.3f,%.3f,"
	    "-1,-1,-1,-1,%d,%.3f,-1.0,-1,-1,-1,%s,%.2f,%.2f\n",
	    (long)time(NULL), B.o.label, mode, tls_name(), B.o.n,
	    B.o.concurrency, ok, failed, elapsed,
	    elapsed > 0 ? ok / elapsed : 0.0, percentile(lat, ok, 0.50),
	    percentile(lat, ok, 0.99), ok ? lat[ok - 1] : 0.0, mean,
	    B.timed_out, cpu_ms, mech_used_name(), cpu_s, self_cpu_s);
}

static void
resume_print_summary(void)
{
	double elapsed = (B.all_up ? B.t_up : now_mono()) - B.t0;
	double cpu = cpu_delta(B.cpu_before, B.cpu_after);
	double self = cpu_delta(B.self_cpu_before, B.self_cpu_after);
	unsigned n = B.logged_in;
	char fails[512] = "";
	FILE *f;

	if (B.phase < PHASE_MEASURE) {
		/* Stopped during the logins: their figures are the only. */
		B.ramp_ok = B.logged_in;
		B.ramp_failed = B.failed;
		B.ramp_elapsed = now_mono() - B.t0;
		n = 0;
		elapsed = 0;
		cpu = self = -1;
	}
	qsort(B.ramp_latencies, B.ramp_ok, sizeof(double), cmp_double);
	qsort(B.latencies, n, sizeof(double), cmp_double);
	for (int i = 0; i < FAIL_COUNT; i++)
		if (B.fail_counts[i])
			snprintf(fails + strlen(fails),
			    sizeof(fails) - strlen(fails), "%s%s=%u",
			    fails[0] ? "," : " (", fail_names[i],
			    B.fail_counts[i]);
	if (fails[0])
		strncat(fails, ")", sizeof(fails) - strlen(fails) - 1);
	printf("%s resume tls=%s%s%s mech=%s reauth=sasl%s n=%u c=%u "
	       "logins=%u/%u login_rate=%.1f/s login_p50=%.2fms "
	       "login_p99=%.2fms",
	    B.o.label, tls_name(), B.tls_proto[0] ? "," : "", B.tls_proto,
	    mech_used_name(),
	    B.o.no_tls_resume ? " tls-resume=no" : "", B.o.n, B.o.concurrency,
	    B.ramp_ok, B.o.n,
	    B.ramp_elapsed > 0 ? B.ramp_ok / B.ramp_elapsed : 0.0,
	    percentile(B.ramp_latencies, B.ramp_ok, 0.50),
	    percentile(B.ramp_latencies, B.ramp_ok, 0.99));
	if (B.ramp_cpu >= 0 && B.ramp_ok > 0)
		printf(" login_cpu=%.2fs(%.3fms/login)", B.ramp_cpu,
		    B.ramp_cpu * 1000.0 / B.ramp_ok);
	printf(" reconnects=%u/%u failed=%u%s tls_resumed=%u/%u tickets=%u "
	       "elapsed=%.2fs rate=%.1f/s p50=%.2fms p99=%.2fms max=%.2fms",
	    n, B.o.n, B.failed, fails, B.tls_resumed, B.next_reconnect,
	    B.tickets, elapsed, elapsed > 0 ? n / elapsed : 0.0,
	    percentile(B.latencies, n, 0.50), percentile(B.latencies, n, 0.99),
	    n ? B.latencies[n - 1] : 0.0);
	if (cpu >= 0 && n > 0) {
		printf(" server_cpu=%.2fs(%.3fms/reconnect)", cpu,
		    cpu * 1000.0 / n);
		if (B.ramp_cpu > 0 && B.ramp_ok > 0)
			printf(" reconnect/login=%.2f",
			    (cpu / n) / (B.ramp_cpu / B.ramp_ok));
	}
	if (B.sm_resume_h_wrong)
		printf(" resumed-h-wrong=%u", B.sm_resume_h_wrong);
	if (B.sm_acks_sent)
		printf(" acks=%u", B.sm_acks_sent);
	if (B.keys_derived)
		printf(" pbkdf2=%u/%.2fs", B.keys_derived, B.derive_seconds);
	if ((f = summary_end(elapsed)) == NULL)
		return;
	if (ftell(f) == 0)
		fprintf(f,
		    "time,label,mode,tls,n,concurrency,ok,failed,"
		    "elapsed_s,logins_per_s,p50_ms,p99_ms,max_ms,mean_ms,"
		    "server_rss_before_kib,server_rss_after_kib,"
		    "bytes_per_session,bench_rss_kib,timed_out,"
		    "server_cpu_ms_per_login,presence_per_login,online,"
		    "online_presence_received,online_presence_expected,"
		    "mech,server_cpu_s,bench_cpu_s\n");
	/* Two rows: the logins, then the reconnects (cpu per reconnect in
	 * server_cpu_ms_per_login). */
	csv_login_row(f, "resume-login", B.ramp_ok, B.ramp_failed,
	    B.ramp_elapsed, B.ramp_latencies, B.ramp_cpu, B.ramp_self_cpu);
	csv_login_row(
	    f, "resume", n, B.failed, elapsed, B.latencies, cpu, self);
	fclose(f);
}

/* ---- csi mode ---- */

/*
 * CSI mode (XEP-0352): user 0, the observer, and its R contacts of the
 * seeded rosters.  The contacts log in (roster, initial presence), then
 * the observer, which waits for their presence (its probes), then for
 * the traffic to settle.  It says <inactive/> (with --inactive) and
 * pings the server; the ping's result opens the window.  The contacts
 * then change status -n times each, one change at a time round robin
 * (the next once the previous one's echo came back to its sender, RFC
 * 6121 §4.4.2, so the server has routed it), with a <status/> "K ROUND".
 * Then the observer says <active/> and pings again; that result closes
 * the window.  What the observer received in between is the measure:
 * TLS records and bytes, plaintext bytes, presence stanzas, and TCP's
 * data segments; and each contact's last status must have arrived.
 */

/* The contact index of a user, -1 if not a contact of the observer. */
static long
csi_contact_index(long user)
{
	unsigned r = B.csi_contacts;

	if (user >= 1 && user <= (long)(r / 2))
		return user - 1;
	if (user >= (long)(B.o.users - r / 2) && user < (long)B.o.users)
		return (long)r - ((long)B.o.users - user);
	return -1;
}

/* The current count, with TCP's from the observer's socket. */
static struct csi_count
csi_snapshot(const struct conn *obs)
{
	struct csi_count n = B.csi_now;
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (obs != NULL && obs->fd != -1 &&
	    getsockopt(obs->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
	    len >= offsetof(struct tcp_info, tcpi_data_segs_in) +
	               sizeof(ti.tcpi_data_segs_in)) {
		n.segs = ti.tcpi_data_segs_in;
		n.tcp_bytes = (unsigned long)ti.tcpi_bytes_received;
		B.csi_tcp_info = 1;
	}
	return n;
}

static void
csi_send_change(void)
{
	unsigned k = B.csi_seq % B.csi_contacts,
	         round = B.csi_seq / B.csi_contacts;
	struct conn *c = B.conns[k];

	if (c == NULL)
		return; /* dropped: csi_check_done stops the run */
	conn_sendf(c, "<presence>%s<status>%u %u</status></presence>",
	    round % 2 == 0 ? "<show>away</show>" : "", k, round);
	conn_set_events(c, EV_READ | EV_WRITE);
}

static void
csi_ping(struct conn *obs, int n)
{
	buf_printf(&obs->out,
	    "<iq type='get' id='csi%d' to='%s'><ping xmlns='" NS_PING
	    "'/></iq>",
	    n, B.o.domain);
	conn_set_events(obs, EV_READ | EV_WRITE);
}

/* A session is up (roster, initial presence sent). */
static void
csi_session_up(struct conn *c)
{
	c->logged_in = 1;
	c->state = CS_IDLE;
	c->in_flight = 0;
	B.active--;
	if (c->online)
		B.online_up++;
	B.t_last_presence = now_mono();
	start_more();
	check_done();
}

static void
csi_presence(struct conn *c)
{
	unsigned k, round;
	long idx;

	B.t_last_presence = now_mono();
	if (c->id != B.csi_contacts) {
		/* A contact: the echo of the change in flight? */
		if (B.csi_step == CSI_CHANGES &&
		    c->pres_from == (long)c->user &&
		    c->pres_type == PRES_AVAILABLE && c->text.len > 0 &&
		    two_numbers(c->text.data, &k, &round) &&
		    k == c->id && k + round * B.csi_contacts == B.csi_seq) {
			if (++B.csi_seq < B.csi_total) {
				csi_send_change();
			} else {
				struct conn *obs = B.conns[B.csi_contacts];

				B.csi_step = CSI_BARRIER2;
				if (obs != NULL) {
					buf_adds(&obs->out,
					    "<active xmlns='" NS_CSI "'/>");
					csi_ping(obs, 2);
				}
			}
		}
		return;
	}
	B.csi_now.presence++;
	idx = csi_contact_index(c->pres_from);
	if (idx < 0 || c->pres_type != PRES_AVAILABLE)
		return;
	if (B.csi_step == CSI_OBSERVER && B.csi_last[idx] == -1) {
		B.csi_last[idx] = -2; /* its probe answer */
		if (++B.csi_probes == B.csi_contacts) {
			B.csi_step = CSI_QUIET;
			B.t_csi_quiet = now_mono();
			check_done();
		}
		return;
	}
	if (c->text.len > 0 && two_numbers(c->text.data, &k, &round) &&
	    k == (unsigned)idx)
		B.csi_last[idx] = (int)round;
}

/* After the observer's probes: once no presence has come for
 * PRESENCE_QUIET s (at most PRESENCE_SETTLE s), open the window. */
static void
csi_quiet_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	double now = now_mono();
	struct conn *obs = B.conns[B.csi_contacts];

	if (now - B.t_last_presence < PRESENCE_QUIET &&
	    now - B.t_csi_quiet < PRESENCE_SETTLE)
		return;
	ev_timer_stop(B.loop, &B.settle);
	if (obs == NULL)
		return;
	printf("csi: %u contacts and the observer up, %u probes answered, "
	       "settled after %.2fs; observer %s\n",
	    B.online_up, B.csi_probes, now - B.t_csi_quiet,
	    B.o.csi_inactive ? "inactive" : "active");
	fflush(stdout);
	B.csi_step = CSI_BARRIER1;
	if (B.o.csi_inactive)
		buf_adds(&obs->out, "<inactive xmlns='" NS_CSI "'/>");
	csi_ping(obs, 1);
}

/* The observer's pings: the first opens the window, the second closes
 * it (everything held was sent before its result). */
static void
csi_iq_result(struct conn *c)
{
	struct csi_count now;

	if (c->id != B.csi_contacts)
		return;
	now = csi_snapshot(c);
	if (c->iq_id == 1 && B.csi_step == CSI_BARRIER1) {
		B.csi_start = now;
		cpu_mark_before();
		B.t0 = now_mono();
		B.csi_step = CSI_CHANGES;
		csi_send_change();
	} else if (c->iq_id == 2 && B.csi_step == CSI_BARRIER2) {
		B.csi_window.records = now.records - B.csi_start.records;
		B.csi_window.tls_bytes = now.tls_bytes - B.csi_start.tls_bytes;
		B.csi_window.plain_bytes =
		    now.plain_bytes - B.csi_start.plain_bytes;
		B.csi_window.presence = now.presence - B.csi_start.presence;
		B.csi_window.segs = now.segs - B.csi_start.segs;
		B.csi_window.tcp_bytes = now.tcp_bytes - B.csi_start.tcp_bytes;
		B.t_up = now_mono();
		cpu_mark_after();
		for (unsigned k = 0; k < B.csi_contacts; k++)
			if (B.csi_last[k] == (int)B.o.n - 1)
				B.csi_latest++;
		B.csi_step = CSI_DONE;
		chat_stop_soon();
	}
}

static void
csi_check_done(void)
{
	if (run_ending())
		return;
	if (B.online_failed || B.failed || B.dropped) {
		log_warnx("%u logins failed, %u sessions dropped; stopping",
		    B.online_failed + B.failed, B.dropped);
		chat_stop_soon();
		return;
	}
	if (B.csi_step == CSI_CONTACTS && B.online_up == B.csi_contacts) {
		B.csi_step = CSI_OBSERVER;
		start_more();
		return;
	}
	if (B.csi_step == CSI_QUIET && !ev_is_active(&B.settle)) {
		ev_timer_init(&B.settle, csi_quiet_cb, 0.1, 0.1);
		ev_timer_start(B.loop, &B.settle);
	}
}

static void
csi_print_summary(void)
{
	double elapsed = (B.csi_step == CSI_DONE ? B.t_up : now_mono()) - B.t0;
	double cpu = cpu_delta(B.cpu_before, B.cpu_after);
	const struct csi_count *w = &B.csi_window;
	long segs = B.csi_tcp_info ? (long)w->segs : -1;
	long tcp_bytes = B.csi_tcp_info ? (long)w->tcp_bytes : -1;
	FILE *f;

	if (B.csi_step < CSI_CHANGES)
		elapsed = 0;
	printf("%s csi tls=%s%s%s mech=%s state=%s contacts=%u changes=%u "
	       "sent=%u elapsed=%.3fs presence=%lu latest=%u/%u records=%lu "
	       "tls_bytes=%lu plain_bytes=%lu tcp_segments=%ld tcp_bytes=%ld",
	    B.o.label, tls_name(), B.tls_proto[0] ? "," : "", B.tls_proto,
	    mech_used_name(), B.o.csi_inactive ? "inactive" : "active",
	    B.csi_contacts, B.csi_total, B.csi_seq, elapsed, w->presence,
	    B.csi_latest, B.csi_contacts, w->records, w->tls_bytes,
	    w->plain_bytes, segs, tcp_bytes);
	if (cpu >= 0)
		printf(" server_cpu=%.3fs", cpu);
	if ((f = summary_end(elapsed)) == NULL)
		return;
	if (ftell(f) == 0)
		fprintf(f, "time,label,mode,tls,mech,state,contacts,changes,"
		           "elapsed_s,presence,latest,records,tls_bytes,"
		           "plain_bytes,tcp_segments,tcp_bytes,server_cpu_s,"
		           "bench_cpu_s,timed_out\n");
	fprintf(f,
	    "%ld,%s,csi,%s,%s,%s,%u,%u,%.3f,%lu,%u,%lu,%lu,%lu,%ld,%ld,"
	    "%.3f,%.3f,%d\n",
	    (long)time(NULL), B.o.label, tls_name(), mech_used_name(),
	    B.o.csi_inactive ? "inactive" : "active", B.csi_contacts,
	    B.csi_total, elapsed, w->presence, B.csi_latest, w->records,
	    w->tls_bytes, w->plain_bytes, segs, tcp_bytes, cpu,
	    cpu_delta(B.self_cpu_before, B.self_cpu_after), B.timed_out);
	fclose(f);
}

/* ---- pep modes ---- */

/*
 * PEP (XEP-0163) over XEP-0115 caps.  Every session presents caps whose
 * disco#info (identity client/pc, the caps and disco#info features, and
 * NODE+notify for the nodes it wants) hashes to 'ver' as XEP-0115 §5.1
 * says; the server asks one of them with a disco#info query to
 * NODE#VER (pep_answer_disco), then sends notifications of those nodes
 * to every session with those caps.
 *
 * Pep mode: users PREFIX0 .. PREFIX<U-1> with seeded rosters of R
 * mutual subscriptions (as presence mode) log in (roster get, presence
 * with caps with urn:xmpp:tmp:bench+notify) and stay; once no stanza
 * has come for PEP_QUIET s, each publishes -n items of --item-bytes to
 * node urn:xmpp:tmp:bench, --window at a time, and the run ends when
 * every notification has arrived: U * n * (R + 1), the contacts' and
 * the user's own (XEP-0163 §4.3.1).  Item ids carry a token of the run,
 * so last items sent at login from an earlier run are not counted.
 *
 * Pep-login mode: -n logins, -c at a time, of users (FIRST+i) % U, each
 * a full login, roster get, presence with caps (with --notify:
 * urn:xmpp:tmp:bench:K+notify for K < --nodes, else no +notify at all)
 * and a ping; a login ends with the ping's result and, with --notify,
 * the last item of each of the R contacts' --nodes nodes (XEP-0163
 * §4.3.4), R * nodes notifications.  With --seed, each login instead
 * publishes one item (id 'current') to each of the user's --nodes nodes
 * and closes: the accounts' nodes for the measured runs.
 */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* XML-escape s into a fixed buffer (ids and JIDs the server sent). */
static const char *
xml_escape(const char *s, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *s != '\0' && o + 7 < outlen; s++) {
		const char *r = *s == '&'    ? "&amp;"
		                : *s == '<'  ? "&lt;"
		                : *s == '>'  ? "&gt;"
		                : *s == '\'' ? "&apos;"
		                : *s == '"'  ? "&quot;"
		                             : NULL;

		if (r != NULL) {
			memcpy(out + o, r, strlen(r));
			o += strlen(r);
		} else
			out[o++] = *s;
	}
	out[o] = '\0';
	return out;
}

/*
 * The caps of this run: the disco#info answer (identity and features)
 * and its verification string, XEP-0115 §5.1: "category/type/lang/name<"
 * for the identity, then each feature sorted and followed by '<', SHA-1,
 * base64.
 */
static void
pep_caps_init(void)
{
	const char *identity = "client/pc//xmppbench";
	char *features[PEP_NODES_MAX + 3];
	unsigned nf = 0;
	struct buf s = {0}, body = {0};
	unsigned char md[SHA_DIGEST_LENGTH];

	features[nf++] = xstrdup(NS_CAPS);
	features[nf++] = xstrdup(NS_DISCO_INFO);
	if (B.o.mode == MODE_PEP)
		features[nf++] = xstrdup(PEP_NODE "+notify");
	else if (B.o.pep_notify)
		for (unsigned k = 0; k < B.o.nodes; k++) {
			char f[64];

			snprintf(f, sizeof(f), PEP_NODE ":%u+notify", k);
			features[nf++] = xstrdup(f);
		}
	qsort(features, nf, sizeof(*features), cmp_str);
	buf_printf(&s, "%s<", identity);
	buf_adds(&body, "<identity category='client' type='pc' "
	                "name='xmppbench'/>");
	for (unsigned i = 0; i < nf; i++) {
		buf_printf(&s, "%s<", features[i]);
		buf_printf(&body, "<feature var='%s'/>", features[i]);
		free(features[i]);
	}
	SHA1((const unsigned char *)s.data, s.len, md);
	B.pep_ver = b64_encode(md, sizeof(md));
	buf_adds(&body, ""); /* NUL-terminated */
	B.pep_disco_body = xstrdup(body.data);
	buf_free(&s);
	buf_free(&body);
	RAND_bytes(md, 8);
	hex_encode(md, 8, B.pep_token);
}

/* A start tag of c's stream at depth 2 or more (pep modes). */
static void
pep_xml_start(struct conn *c, const char *name, const char **attrs)
{
	struct pep_conn *p = c->pep;
	const char *v;

	if (c->depth == 2) {
		p->iq_type = 0;
		p->in_disco = p->in_event = p->event_node = 0;
		p->event_items = p->event_ours = 0;
		p->event_sent = -1;
		p->in_msg = xml_is(name, NS_CLIENT, "message");
		p->msg_from = -1;
		if (p->in_msg) {
			v = xml_attr(attrs, "from");
			p->msg_from = jid_user_index(v);
			return;
		}
		if (!xml_is(name, NS_CLIENT, "iq"))
			return;
		v = xml_attr(attrs, "type");
		p->iq_type = v == NULL                  ? 0
		             : strcmp(v, "get") == 0    ? 1
		             : strcmp(v, "set") == 0    ? 2
		             : strcmp(v, "result") == 0 ? 3
		             : strcmp(v, "error") == 0  ? 4
		                                        : 0;
		v = xml_attr(attrs, "id");
		snprintf(p->iq_id, sizeof(p->iq_id), "%s", v ? v : "");
		v = xml_attr(attrs, "from");
		snprintf(p->iq_from, sizeof(p->iq_from), "%s", v ? v : "");
		return;
	}
	if (c->depth == 3 && p->iq_type == 1 &&
	    xml_is(name, NS_DISCO_INFO, "query")) {
		v = xml_attr(attrs, "node");
		p->in_disco = 1;
		snprintf(
		    p->disco_node, sizeof(p->disco_node), "%s", v ? v : "");
	} else if (c->depth == 3 && p->in_msg &&
	           xml_is(name, NS_PUBSUB_EVENT, "event")) {
		p->in_event = 1;
	} else if (c->depth == 4 && p->in_event &&
	           xml_is(name, NS_PUBSUB_EVENT, "items")) {
		v = xml_attr(attrs, "node");
		if (v != NULL && strcmp(v, PEP_NODE) == 0)
			p->event_node = 1;
		else if (v != NULL &&
		         strncmp(v, PEP_NODE ":", strlen(PEP_NODE ":")) == 0)
			p->event_node =
			    2 + (int)strtol(v + strlen(PEP_NODE ":"), NULL, 10);
	} else if (c->depth == 5 && p->event_node &&
	           xml_is(name, NS_PUBSUB_EVENT, "item")) {
		p->event_items++;
		v = xml_attr(attrs, "id");
		if (v != NULL && strncmp(v, B.pep_token, 16) == 0)
			p->event_ours++;
	} else if (c->depth == 6 && p->event_node && p->event_sent < 0 &&
	           (v = xml_attr(attrs, "t")) != NULL) {
		p->event_sent = strtod(v, NULL);
	}
}

/* Answer the server's disco#info query to NODE#VER (XEP-0115 §6.2). */
static void
pep_answer_disco(struct conn *c)
{
	struct pep_conn *p = c->pep;
	char id[sizeof(p->iq_id) * 6], to[sizeof(p->iq_from) * 6];
	char node[sizeof(p->disco_node) * 6];
	size_t nlen = strlen(PEP_CAPS_NODE);

	xml_escape(p->iq_id, id, sizeof(id));
	xml_escape(p->iq_from, to, sizeof(to));
	if (strncmp(p->disco_node, PEP_CAPS_NODE "#", nlen + 1) != 0 ||
	    strcmp(p->disco_node + nlen + 1, B.pep_ver) != 0) {
		conn_sendf(c,
		    "<iq type='error' id='%s' to='%s'><error type='cancel'>"
		    "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-"
		    "stanzas'/></error></iq>",
		    id, to);
		return;
	}
	xml_escape(p->disco_node, node, sizeof(node));
	conn_sendf(c,
	    "<iq type='result' id='%s' to='%s'><query xmlns='" NS_DISCO_INFO
	    "' node='%s'>%s</query></iq>",
	    id, to, node, B.pep_disco_body);
	B.pep_disco++;
}

/* Pep mode: c's next publishes up to its window. */
static void
pep_fill(struct conn *c)
{
	static char *pad;
	struct pep_conn *p;

	if (c == NULL || c->state != CS_IDLE || !B.chat_running)
		return;
	if (pad == NULL) {
		pad = xmalloc(B.o.item_bytes + 1);
		memset(pad, 'x', B.o.item_bytes);
		pad[B.o.item_bytes] = '\0';
	}
	p = c->pep;
	while (p->published < B.o.n && p->in_flight < B.o.window) {
		/* The payload: <bench t='SENT'>PAD</bench>, PAD making the
		 * element --item-bytes long in all. */
		char head[128];
		int hl = snprintf(head, sizeof(head),
		    "<bench xmlns='" PEP_NODE "' t='%.6f'>", now_mono());
		int fill = (int)B.o.item_bytes - hl - (int)strlen("</bench>");

		conn_sendf(c,
		    "<iq type='set' id='pub%u'><pubsub xmlns='" NS_PUBSUB "'>"
		    "<publish node='" PEP_NODE "'><item id='%s-%u-%u'>"
		    "%s%.*s</bench></item></publish></pubsub></iq>",
		    p->published, B.pep_token, c->user, p->published, head,
		    fill > 0 ? fill : 0, pad);
		p->published++;
		p->in_flight++;
		B.pep_sent++;
	}
	conn_set_events(c, EV_READ | EV_WRITE);
}

/* Pep-login --seed: bound; publish the user's --nodes items. */
static void
pep_bound(struct conn *c)
{
	for (unsigned k = 0; k < B.o.nodes; k++)
		conn_sendf(c,
		    "<iq type='set' id='pub%u'><pubsub xmlns='" NS_PUBSUB "'>"
		    "<publish node='" PEP_NODE ":%u'><item id='current'>"
		    "<bench xmlns='" PEP_NODE "'>seeded by xmppbench for "
		    "%s%u</bench></item></publish></pubsub></iq>",
		    k, k, B.o.user_prefix, c->user);
	c->pep->in_flight = B.o.nodes;
	c->step = STEP_PEP;
	if (B.o.nodes == 0)
		conn_logged_in(c);
}

/* Roster received: available with caps (XEP-0115 §4). */
static void
pep_roster_done(struct conn *c)
{
	char pres[256];

	snprintf(pres, sizeof(pres),
	    "<presence><c xmlns='" NS_CAPS "' hash='sha-1' node='" PEP_CAPS_NODE
	    "' ver='%s'/></presence>",
	    B.pep_ver);
	conn_send_stanza(c, pres);
	if (B.o.mode == MODE_PEP_LOGIN) {
		/* The ping's result: the server has handled the presence. */
		conn_send_stanza(c,
		    "<iq type='get' id='pepping'><ping xmlns='" NS_PING
		    "'/></iq>");
		c->step = STEP_PEP;
		return;
	}
	c->logged_in = 1;
	c->state = CS_IDLE;
	c->in_flight = 0;
	B.active--;
	B.online_up++;
	start_more();
	check_done();
}

/* Pep-login: is c's login complete? */
static void
pep_login_check(struct conn *c)
{
	struct pep_conn *p = c->pep;

	if (c->step != STEP_PEP || c->logged_in)
		return;
	if (B.o.pep_seed) {
		if (p->in_flight == 0)
			conn_logged_in(c);
		return;
	}
	if (p->ping_done &&
	    (!B.o.pep_notify ||
	        p->contact_events >= (unsigned)B.o.roster_items * B.o.nodes)) {
		B.pep_login_contact += p->contact_events;
		B.pep_login_own += p->own_events;
		conn_logged_in(c);
	}
}

/* A notification: pep mode counts this run's items by who sent them. */
static void
pep_event(struct conn *c)
{
	struct pep_conn *p = c->pep;
	double now = now_mono();

	B.t_last_event = now;
	if (B.o.mode == MODE_PEP_LOGIN) {
		if (p->event_node < 2)
			return;
		if (p->msg_from == (long)c->user)
			p->own_events += p->event_items;
		else if (p->msg_from >= 0)
			p->contact_events += p->event_items;
		pep_login_check(c);
		return;
	}
	if (p->event_node != 1)
		return;
	if (B.phase != PHASE_MEASURE && B.phase != PHASE_DRAIN) {
		B.pep_ramp_events += p->event_items;
		return;
	}
	B.pep_foreign_events += p->event_items - p->event_ours;
	if (p->msg_from == (long)c->user)
		B.pep_own_events += p->event_ours;
	else
		B.pep_contact_events += p->event_ours;
	if (p->event_ours > 0 && p->event_sent > 0 && B.lat_count < B.lat_max)
		B.latencies[B.lat_count++] = (now - p->event_sent) * 1000.0;
	check_done();
}

/*
 * The end of a top-level element in a pep mode: 1 if handled here (a
 * disco#info query, a publish or ping result, a notification), 0 to
 * go on as in the other modes (bind, roster).
 */
static int
pep_top_end(struct conn *c)
{
	struct pep_conn *p = c->pep;

	B.t_last_stanza = now_mono();
	if (p->in_msg) {
		if (p->in_event)
			pep_event(c);
		return 1;
	}
	if (p->iq_type == 1 || p->iq_type == 2) {
		if (p->in_disco) {
			pep_answer_disco(c);
		} else {
			char id[sizeof(p->iq_id) * 6],
			    to[sizeof(p->iq_from) * 6];

			conn_sendf(c,
			    "<iq type='error' id='%s' to='%s'><error "
			    "type='cancel'><service-unavailable xmlns='urn:"
			    "ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
			    xml_escape(p->iq_id, id, sizeof(id)),
			    xml_escape(p->iq_from, to, sizeof(to)));
		}
		conn_set_events(c, EV_READ | EV_WRITE);
		return 1;
	}
	if ((p->iq_type == 3 || p->iq_type == 4) &&
	    strncmp(p->iq_id, "pub", 3) == 0) {
		if (p->in_flight > 0)
			p->in_flight--;
		B.pep_results++;
		if (p->iq_type == 4 && ++B.pep_errors <= 5)
			log_warnx("conn %u (%s%u): publish %s refused", c->id,
			    B.o.user_prefix, c->user, p->iq_id);
		if (B.o.mode == MODE_PEP_LOGIN) {
			if (p->iq_type == 4)
				conn_fail(c, FAIL_PROTOCOL, "publish refused");
			else
				pep_login_check(c);
		} else {
			pep_fill(c);
			check_done();
		}
		return 1;
	}
	if (p->iq_type != 0 && strcmp(p->iq_id, "pepping") == 0) {
		p->ping_done = 1;
		pep_login_check(c);
		return 1;
	}
	return 0;
}

/* Pep mode: settled; publish from now. */
static void
pep_measure(void)
{
	B.phase = PHASE_MEASURE;
	cpu_mark_before();
	B.t0 = now_mono();
	B.t_last_event = B.t0;
	B.chat_running = 1;
	for (unsigned i = 0; i < B.o.users; i++)
		pep_fill(B.conns[i]);
	check_done();
}

/* Pep mode, every 0.1 s: settled after the logins?  Or, measuring,
 * every publish answered and nothing more for PEP_DRAIN s? */
static void
pep_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	double now = now_mono();

	if (B.phase == PHASE_SETTLE) {
		if (now - B.t_last_stanza < PEP_QUIET &&
		    now - B.t_up < PEP_SETTLE)
			return;
		printf("pep: settled after %.2fs; %lu disco#info queries "
		       "answered, %lu notifications while logging in\n",
		    now - B.t_up, B.pep_disco, B.pep_ramp_events);
		fflush(stdout);
		pep_measure();
		return;
	}
	if (B.phase == PHASE_MEASURE && B.pep_results == B.pep_total &&
	    now - B.t_last_event >= PEP_DRAIN) {
		log_warnx("pep: %lu of %lu notifications after %.0fs without "
		          "any; stopping",
		    B.pep_contact_events + B.pep_own_events, B.pep_expected,
		    PEP_DRAIN);
		B.phase = PHASE_DRAIN;
		B.t_up = B.t_last_event;
		cpu_mark_after();
		chat_stop_soon();
	}
}

static void
pep_check_done(void)
{
	if (run_ending())
		return;
	if (B.phase == PHASE_RAMP &&
	    B.online_up + B.online_failed == B.o.users) {
		B.phase = PHASE_SETTLE;
		B.t_up = now_mono();
		B.t_login = B.t_up - B.t0;
		printf("pep: %u of %u sessions up (roster, presence with caps "
		       "ver %s) in %.2fs\n",
		    B.online_up, B.o.users, B.pep_ver, B.t_login);
		fflush(stdout);
		if (B.online_failed) {
			log_warnx("%u sessions failed to log in; stopping",
			    B.online_failed);
			chat_stop_soon();
			return;
		}
		B.t_last_stanza = B.t_up;
		ev_timer_init(&B.settle, pep_timer_cb, 0.1, 0.1);
		ev_timer_start(B.loop, &B.settle);
		return;
	}
	if (B.phase != PHASE_RAMP && B.dropped) {
		log_warnx("%u sessions dropped; stopping", B.dropped);
		chat_stop_soon();
		return;
	}
	if (B.phase == PHASE_MEASURE && B.pep_results == B.pep_total &&
	    B.pep_contact_events + B.pep_own_events >= B.pep_expected) {
		B.phase = PHASE_DRAIN;
		B.t_up = now_mono();
		cpu_mark_after();
		chat_stop_soon();
	}
}

static void
pep_print_summary(void)
{
	double elapsed = (B.phase >= PHASE_DRAIN ? B.t_up : now_mono()) - B.t0;
	unsigned long got = B.pep_contact_events + B.pep_own_events;
	double rate, p50, p99, pmax, cpu_us = -1;
	unsigned n = B.lat_count;
	FILE *f;

	if (B.phase < PHASE_MEASURE)
		elapsed = 0;
	rate = elapsed > 0 ? got / elapsed : 0;
	qsort(B.latencies, n, sizeof(double), cmp_double);
	p50 = percentile(B.latencies, n, 0.50);
	p99 = percentile(B.latencies, n, 0.99);
	pmax = n ? B.latencies[n - 1] : 0;
	if (B.cpu_before >= 0 && B.cpu_after >= 0 && got > 0)
		cpu_us = (B.cpu_after - B.cpu_before) * 1e6 / got;
	printf("%s pep tls=%s%s%s mech=%s users=%u items=%ld publishes=%u "
	       "item_bytes=%u window=%u published=%lu/%lu refused=%lu "
	       "delivered=%lu/%lu contacts=%lu own=%lu foreign=%lu "
	       "disco=%lu login-failed=%u logins=%.2fs elapsed=%.3fs "
	       "rate=%.1f/s p50=%.3fms p99=%.3fms max=%.3fms",
	    B.o.label, tls_name(), B.tls_proto[0] ? "," : "", B.tls_proto,
	    mech_used_name(), B.o.users, B.o.roster_items, B.o.n,
	    B.o.item_bytes, B.o.window, B.pep_results, B.pep_total,
	    B.pep_errors, got, B.pep_expected, B.pep_contact_events,
	    B.pep_own_events, B.pep_foreign_events, B.pep_disco,
	    B.online_failed, B.t_login, elapsed, rate, p50, p99, pmax);
	if (cpu_us >= 0)
		printf(" server_cpu=%.2fs(%.2fus/notification)",
		    B.cpu_after - B.cpu_before, cpu_us);
	if ((f = summary_end(elapsed)) == NULL)
		return;
	if (ftell(f) == 0)
		fprintf(f, "time,label,mode,tls,mech,users,roster_items,"
		           "publishes,item_bytes,published,refused,delivered,"
		           "expected,elapsed_s,notifications_per_s,p50_ms,"
		           "p99_ms,max_ms,server_cpu_us_per_notification,"
		           "server_cpu_s,bench_cpu_s,timed_out\n");
	fprintf(f,
	    "%ld,%s,pep,%s,%s,%u,%ld,%u,%u,%lu,%lu,%lu,%lu,%.3f,%.1f,%.3f,"
	    "%.3f,%.3f,%.3f,%.2f,%.2f,%d\n",
	    (long)time(NULL), B.o.label, tls_name(), mech_used_name(),
	    B.o.users, B.o.roster_items, B.o.n, B.o.item_bytes, B.pep_results,
	    B.pep_errors, got, B.pep_expected, elapsed, rate, p50, p99, pmax,
	    cpu_us, cpu_delta(B.cpu_before, B.cpu_after),
	    cpu_delta(B.self_cpu_before, B.self_cpu_after), B.timed_out);
	fclose(f);
}

/* ---- muc mode ---- */

/*
 * Muc mode (XEP-0045): --rooms R rooms of --occupants N; room r's
 * occupants are users r*N .. r*N+N-1 and the --joins J joiners follow.
 * Every session logs in and sends initial presence; MUC_SETTLE s later
 * the server's VmRSS is read.  Each room's first occupant joins
 * (<presence to='ROOM/NICK'><x xmlns='.../muc'/>), gets status 201 and
 * submits an empty muc#owner form (an instant room, §10.1.2); then the
 * others join, -c at a time, each done when the room's subject follows
 * its own presence (status 110), as §7.2.15 orders them.  All in,
 * MUC_FILL_SETTLE s later the VmRSS again: the growth per occupant.
 * Then the first --senders S occupants of each room send -n groupchat
 * messages in all, each with at most --window of its own whose copy
 * has not come back; every occupant counts the copies with this run's
 * token in their id (N per message).  Last, --join-rounds K times: the
 * J joiners join room 0 one after the other with --history H
 * (maxstanzas), the server's CPU read around them until room 0's
 * occupants have their presence; then they leave again (not measured).
 */

/* A server's CPU time (user + system, all threads) in seconds, to the
 * nanosecond: the sum of the first field of /proc/PID/task/TID/schedstat
 * (threads that ended are not counted: the servers keep theirs), or
 * /proc/PID/stat's clock ticks when it cannot be read. */
static double
muc_cpu_seconds(pid_t pid)
{
	char path[96], line[128];
	struct dirent *d;
	double ns = 0;
	int n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
	if ((dir = opendir(path)) == NULL)
		return read_cpu_seconds(pid);
	/* one thread reads the directory: readdir is fine here */
	// cppcheck-suppress readdirCalled
	while ((d = readdir(dir)) != NULL) {
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/task/%.20s/schedstat",
		    (long)pid, d->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fgets(line, sizeof(line), f) != NULL) {
			ns += strtod(line, NULL);
			n++;
		}
		fclose(f);
	}
	closedir(dir);
	return n > 0 ? ns / 1e9 : read_cpu_seconds(pid);
}

/* The server's CPU time now, -1 without --pid. */
static double
muc_server_cpu(void)
{
	return B.o.server_pid > 0 ? muc_cpu_seconds(B.o.server_pid) : -1;
}

static void
muc_room_jid(unsigned room, char *out, size_t len)
{
	snprintf(out, len, "%s-%u@%s", B.muc.room_prefix, room, B.o.muc_domain);
}

/* The sender of a stanza: "PREFIX-R@MUCDOMAIN[/nUSER]" sets from_room
 * to R and from_user to USER (-1 when absent or not ours). */
static void
muc_parse_from(struct muc_conn *m, const char *from)
{
	size_t plen = strlen(B.muc.room_prefix), dlen = strlen(B.o.muc_domain);
	unsigned long v;
	char *end, *nick;

	m->from_room = m->from_user = -1;
	if (from == NULL || strncmp(from, B.muc.room_prefix, plen) != 0 ||
	    from[plen] != '-')
		return;
	v = strtoul(from + plen + 1, &end, 10);
	if (end == from + plen + 1 || *end != '@' ||
	    strncmp(end + 1, B.o.muc_domain, dlen) != 0 ||
	    (end[1 + dlen] != '\0' && end[1 + dlen] != '/'))
		return;
	m->from_room = (long)v;
	end += 1 + dlen;
	if (end[0] != '/' || end[1] != 'n')
		return;
	v = strtoul(end + 2, &nick, 10);
	if (nick != end + 2 && *nick == '\0')
		m->from_user = (long)v;
}

/* A start tag of c's stream at depth 2 or more (muc mode). */
static void
muc_xml_start(struct conn *c, const char *name, const char **attrs)
{
	struct muc_conn *m = c->muc;
	const char *v, *ns, *local;
	size_t nslen;

	if (c->depth == 2) {
		v = xml_attr(attrs, "type");
		m->kind = xml_is(name, NS_CLIENT, "message")    ? 1
		          : xml_is(name, NS_CLIENT, "presence") ? 2
		          : xml_is(name, NS_CLIENT, "iq")       ? 3
		                                                : 0;
		m->type_error = v != NULL && strcmp(v, "error") == 0;
		m->type_unavailable =
		    v != NULL && strcmp(v, "unavailable") == 0;
		m->type_result = v != NULL && strcmp(v, "result") == 0;
		m->groupchat = v != NULL && strcmp(v, "groupchat") == 0;
		v = xml_attr(attrs, "id");
		snprintf(m->id, sizeof(m->id), "%s", v != NULL ? v : "");
		m->ours = strncmp(m->id, B.muc.token, 16) == 0;
		m->has_subject = m->has_delay = m->has_body = 0;
		m->parent = m->s110 = m->s201 = 0;
		m->cond[0] = '\0';
		muc_parse_from(m, xml_attr(attrs, "from"));
		return;
	}
	if (m->kind == 0)
		return;
	local = xml_split(name, &ns, &nslen);
	if (c->depth == 3) {
		m->parent = 0;
		if (xml_is(name, NS_CLIENT, "error"))
			m->parent = 2;
		else if (m->kind == 2 && xml_is(name, NS_MUC_USER, "x"))
			m->parent = 1;
		else if (m->kind == 1 && xml_is(name, NS_CLIENT, "body"))
			m->has_body = c->in_body = 1; /* xml_text keeps it */
		else if (m->kind == 1 && xml_is(name, NS_CLIENT, "subject"))
			m->has_subject = 1;
		else if (m->kind == 1 && xml_is(name, NS_DELAY, "delay"))
			m->has_delay = 1;
		return;
	}
	if (c->depth != 4)
		return;
	if (m->parent == 1 && xml_is(name, NS_MUC_USER, "status")) {
		v = xml_attr(attrs, "code");
		if (v != NULL && strcmp(v, "110") == 0)
			m->s110 = 1;
		else if (v != NULL && strcmp(v, "201") == 0)
			m->s201 = 1;
	} else if (m->parent == 2 && m->cond[0] == '\0' &&
	           strcmp(local, "text") != 0) {
		snprintf(m->cond, sizeof(m->cond), "%s", local);
	}
}

/* Enter c's room as nick n<USER>, asking for maxstanzas of history. */
static void
muc_join(struct conn *c, unsigned maxstanzas)
{
	struct muc_conn *m = c != NULL ? c->muc : NULL;
	char room[256];

	if (m == NULL)
		return;
	muc_room_jid(m->room, room, sizeof(room));
	conn_sendf(c,
	    "<presence to='%s/n%u'><x xmlns='" NS_MUC "'><history "
	    "maxstanzas='%u'/></x></presence>",
	    room, c->user, maxstanzas);
	m->state = MUC_JOINING;
	m->got_self = 0;
	m->history = 0;
	m->t_join = now_mono();
	m->join_deadline = m->t_join + MUC_JOIN_TIMEOUT;
	conn_set_events(c, EV_READ | EV_WRITE);
}

static void
muc_leave(struct conn *c)
{
	struct muc_conn *m = c->muc;
	char room[256];

	muc_room_jid(m->room, room, sizeof(room));
	conn_sendf(c, "<presence type='unavailable' to='%s/n%u'/>", room,
	    c->user);
	m->state = MUC_LEAVING;
	m->join_deadline = now_mono() + MUC_JOIN_TIMEOUT;
	conn_set_events(c, EV_READ | EV_WRITE);
}

/* A logged-in session: available, then idle until it joins. */
static void
muc_session_up(struct conn *c)
{
	conn_send_stanza(c, "<presence/>");
	c->logged_in = 1;
	c->state = CS_IDLE;
	c->in_flight = 0;
	B.active--;
	B.online_up++;
	start_more();
	check_done();
}

/* Fill the rooms: the next non-owner occupants join, -c at a time. */
static void
muc_fill_more(void)
{
	unsigned total = B.o.rooms * B.o.occupants;

	while (B.muc.phase == MP_FILL && B.muc.fill_next < total &&
	       B.muc.fill_active < B.o.concurrency) {
		struct conn *c = B.conns[B.muc.fill_next++];

		if (c == NULL || c->muc->role != MUC_OCCUPANT)
			continue;
		muc_join(c, 0);
		B.muc.fill_active++;
	}
}

/* Measured joins: the next joiner of this round, one at a time. */
static void
muc_next_joiner(void)
{
	struct conn *c;

	if (B.muc.joiner >= B.o.joins) {
		B.muc.t_phase = now_mono(); /* now the broadcasts */
		return;
	}
	c = B.conns[B.muc.sessions - B.o.joins + B.muc.joiner++];
	if (c == NULL) {
		B.muc.failed++;
		return;
	}
	muc_join(c, B.o.history);
}

/* The owner's room is configured (or was open already). */
static void
muc_room_open(struct conn *c)
{
	c->muc->state = MUC_IN;
	B.muc.rooms_open++;
	B.muc.filled++;
	check_done();
}

/* A join is complete: own presence, history, subject. */
static void
muc_joined(struct conn *c)
{
	struct muc_conn *m = c->muc;
	double now = now_mono();

	m->state = MUC_IN;
	if (B.muc.phase == MP_FILL) {
		B.muc.filled++;
		B.muc.fill_active--;
		muc_fill_more();
	} else if (B.muc.phase == MP_JOINS && m->role == MUC_JOINER) {
		B.muc.join_ms[B.muc.joins_done++] = (now - m->t_join) * 1000.0;
		B.muc.history_got += m->history;
		muc_next_joiner();
	}
	check_done();
}

/* Sender c: its next messages up to its window. */
static void
muc_fill(struct conn *c)
{
	static char pad[CHAT_BODY_MAX + 1];
	struct muc_conn *m;
	char room[256];

	if (c == NULL || !B.chat_running || c->muc->state != MUC_IN)
		return;
	if (pad[0] == '\0')
		memset(pad, 'x', B.o.body_bytes);
	m = c->muc;
	muc_room_jid(m->room, room, sizeof(room));
	while (m->window < B.o.window && B.muc.sent < B.o.n) {
		conn_sendf(c,
		    "<message type='groupchat' to='%s' id='%s-%u-%lu'>"
		    "<body>%u %.6f %s</body></message>",
		    room, B.muc.token, c->id, B.muc.sent, c->id, now_mono(),
		    pad);
		m->window++;
		B.muc.sent++;
		if (m->room == 0)
			B.muc.room0_sent++;
	}
	conn_set_events(c, EV_READ | EV_WRITE);
}

static void
muc_message(struct conn *c)
{
	struct muc_conn *m = c->muc;
	unsigned from;
	double sent, now;

	if (m->from_room < 0 && !m->ours)
		return; /* not from a room of this run */
	if (m->type_error) {
		if (++B.muc.errors <= 5)
			log_warnx("conn %u (%s%u): message error from %s: %s",
			    c->id, B.o.user_prefix, c->user,
			    m->from_room < 0 ? "the server" : "the room",
			    m->cond[0] ? m->cond : "(no condition)");
		check_done();
		return;
	}
	if (m->has_subject && !m->has_body) {
		/* The owner's join ends with the configuration. */
		if (m->state == MUC_JOINING && m->got_self &&
		    m->role != MUC_OWNER)
			muc_joined(c);
		return;
	}
	if (!m->has_body || !m->groupchat)
		return;
	if (m->state == MUC_JOINING) {
		/* Between the own presence and the subject (§7.2.14). */
		if (m->got_self && m->has_delay)
			m->history++;
		return;
	}
	if (!m->ours) {
		B.muc.foreign++;
		return;
	}
	now = now_mono();
	B.muc.t_last_copy = now;
	B.muc.delivered++;
	if (parse_stamp(&c->text, B.muc.sessions, &from, &sent) == 0) {
		if (B.lat_count < B.lat_max)
			B.latencies[B.lat_count++] = (now - sent) * 1000.0;
		if (from == c->id && m->window > 0) {
			m->window--;
			muc_fill(c);
		}
	}
	check_done();
}

static void
muc_presence(struct conn *c)
{
	struct muc_conn *m = c->muc;
	char room[256];

	if (m->from_room < 0 || (unsigned long)m->from_room != m->room)
		return;
	if (m->type_error) {
		if (m->state != MUC_JOINING && m->state != MUC_LEAVING)
			return;
		muc_room_jid(m->room, room, sizeof(room));
		if (++B.muc.failed <= 5)
			log_warnx("conn %u (%s%u): %s %s: presence error %s "
			          "(is there a MUC service at %s? see "
			          "--muc-domain)",
			    c->id, B.o.user_prefix, c->user,
			    m->state == MUC_JOINING ? "joining" : "leaving",
			    room, m->cond[0] ? m->cond : "(no condition)",
			    B.o.muc_domain);
		m->state = MUC_OUT;
		check_done();
		return;
	}
	if (m->s110) {
		if (m->type_unavailable) {
			if (m->state == MUC_LEAVING) {
				m->state = MUC_OUT;
				B.muc.leaves_done++;
				check_done();
			}
			return;
		}
		if (m->state != MUC_JOINING || m->got_self)
			return;
		m->got_self = 1;
		if (m->role != MUC_OWNER)
			return; /* history, then the subject */
		if (!m->s201) {
			muc_room_open(c); /* it existed, and is open */
			return;
		}
		/* Created and locked: an instant room (§10.1.2). */
		muc_room_jid(m->room, room, sizeof(room));
		conn_sendf(c,
		    "<iq type='set' id='muccfg' to='%s'><query "
		    "xmlns='" NS_MUC_OWNER "'><x xmlns='" NS_DATA
		    "' type='submit'/>"
		    "</query></iq>",
		    room);
		conn_set_events(c, EV_READ | EV_WRITE);
		return;
	}
	/* Room 0's occupants count the joiners' presence broadcasts. */
	if (m->room == 0 && m->role != MUC_JOINER && m->state == MUC_IN &&
	    m->from_user >= (long)(B.muc.sessions - B.o.joins)) {
		if (m->type_unavailable)
			B.muc.bcast_leave++;
		else
			B.muc.bcast_join++;
		check_done();
	}
}

static void
muc_iq(struct conn *c)
{
	struct muc_conn *m = c->muc;
	char room[256];

	if (strcmp(m->id, "muccfg") != 0 || m->state != MUC_JOINING)
		return;
	if (m->type_result) {
		muc_room_open(c);
		return;
	}
	muc_room_jid(m->room, room, sizeof(room));
	B.muc.failed++;
	log_warnx("conn %u (%s%u): configuring %s as an instant room: %s",
	    c->id, B.o.user_prefix, c->user, room,
	    m->cond[0] ? m->cond : "(no condition)");
	check_done();
}

/* The end of a top-level element in muc mode: 1 if handled here (any
 * stanza once logged in), 0 to go on as in the other modes. */
static int
muc_top_end(struct conn *c)
{
	struct muc_conn *m = c->muc;

	if (!c->logged_in || m->kind == 0)
		return 0;
	if (m->kind == 1)
		muc_message(c);
	else if (m->kind == 2)
		muc_presence(c);
	else
		muc_iq(c);
	return 1;
}

/* The messages: the first --senders occupants of each room send. */
static void
muc_send_start(void)
{
	B.muc.phase = MP_SEND;
	B.cpu_before = muc_server_cpu();
	B.self_cpu_before = muc_cpu_seconds(getpid());
	B.t0 = B.muc.t_last_copy = now_mono();
	B.chat_running = 1;
	for (unsigned r = 0; r < B.o.rooms; r++)
		for (unsigned s = 0; s < B.o.senders; s++)
			muc_fill(B.conns[r * B.o.occupants + s]);
}

/* A round of measured joins: the joiners join room 0 in turn. */
static void
muc_round_start(void)
{
	B.muc.phase = MP_JOINS;
	B.muc.joiner = 0;
	B.muc.join_mark = now_mono();
	B.muc.join_cpu_mark = muc_server_cpu();
	muc_next_joiner();
}

/* Have room 0's occupants received the presence of every join and leave
 * so far (or did MUC_QUIET s pass without them)? */
static int
muc_broadcasts_in(double now)
{
	unsigned long want = (unsigned long)B.o.occupants *
	                     (B.muc.joins_done + B.muc.leaves_done);
	unsigned long got =
	    B.muc.bcast_join + B.muc.bcast_leave + B.muc.bcast_missing;

	if (got >= want)
		return 1;
	if (now - B.muc.t_phase < MUC_QUIET)
		return 0;
	log_warnx("muc: room 0's occupants lack %lu presence broadcasts "
	          "after %.0f s; going on",
	    want - got, MUC_QUIET);
	B.muc.bcast_missing += want - got;
	return 1;
}

static void
muc_stop(void)
{
	B.muc.phase = MP_DONE;
	ev_timer_stop(B.loop, &B.muc.timer);
	chat_stop_soon();
}

/* The end of a phase: what comes next. */
static void
muc_step(void)
{
	double now = now_mono(), cpu;
	unsigned round_end = (B.muc.round + 1) * B.o.joins;

	switch (B.muc.phase) {
	case MP_OWNERS:
		if (B.muc.rooms_open < B.o.rooms)
			return;
		B.muc.phase = MP_FILL;
		muc_fill_more();
		/* FALLTHROUGH */
	case MP_FILL:
		if (B.muc.phase != MP_FILL ||
		    B.muc.filled < B.o.rooms * B.o.occupants)
			return;
		cpu = muc_server_cpu();
		B.muc.fill_s = now - B.muc.t_phase;
		if (cpu >= 0 && B.muc.fill_cpu >= 0)
			B.muc.fill_cpu = cpu - B.muc.fill_cpu;
		printf("muc: %u occupants in %u room(s) of %s in %.2fs; "
		       "settling %.1fs\n",
		    B.muc.filled, B.o.rooms, B.o.muc_domain, B.muc.fill_s,
		    MUC_FILL_SETTLE);
		fflush(stdout);
		B.muc.phase = MP_FILL_SETTLE;
		B.muc.t_phase = now;
		return;
	case MP_SEND:
		if (B.muc.delivered < B.muc.expected)
			return;
		B.t_up = now;
		B.cpu_after = muc_server_cpu();
		B.self_cpu_after = muc_cpu_seconds(getpid());
		B.chat_running = 0;
		if (B.o.joins == 0 || B.o.join_rounds == 0) {
			muc_stop();
			return;
		}
		muc_round_start();
		return;
	case MP_JOINS:
		if (B.muc.joins_done < round_end || !muc_broadcasts_in(now))
			return;
		cpu = muc_server_cpu();
		if (cpu >= 0 && B.muc.join_cpu_mark >= 0)
			B.muc.join_cpu += cpu - B.muc.join_cpu_mark;
		B.muc.join_s += now - B.muc.join_mark;
		B.muc.phase = MP_LEAVES;
		B.muc.join_cpu_mark = cpu;
		B.muc.t_phase = now;
		for (unsigned j = 0; j < B.o.joins; j++) {
			struct conn *c =
			    B.conns[B.muc.sessions - B.o.joins + j];

			if (c != NULL)
				muc_leave(c);
		}
		return;
	case MP_LEAVES:
		if (B.muc.leaves_done < round_end)
			return;
		if (!muc_broadcasts_in(now))
			return;
		cpu = muc_server_cpu();
		if (cpu >= 0 && B.muc.join_cpu_mark >= 0)
			B.muc.leave_cpu += cpu - B.muc.join_cpu_mark;
		if (++B.muc.round >= B.o.join_rounds) {
			muc_stop();
			return;
		}
		muc_round_start();
		return;
	default:
		return;
	}
}

/* Every 0.1 s: the settling pauses, joins past their deadline, copies
 * that stopped coming, broadcasts that did not come. */
static void
muc_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	double now = now_mono();

	if (run_ending() || B.muc.phase == MP_DONE)
		return;
	for (unsigned i = 0; i < B.muc.sessions; i++) {
		struct conn *c = B.conns[i];
		struct muc_conn *m;
		char room[256];

		if (c == NULL || (m = c->muc) == NULL ||
		    (m->state != MUC_JOINING && m->state != MUC_LEAVING) ||
		    now < m->join_deadline)
			continue;
		muc_room_jid(m->room, room, sizeof(room));
		if (m->state == MUC_LEAVING)
			log_warnx("conn %u: no unavailable presence with "
			          "status 110 from %s within %.0f s of leaving",
			    c->id, room, MUC_JOIN_TIMEOUT);
		else if (!m->got_self)
			log_warnx("conn %u: joining %s: no own presence "
			          "(status 110) within %.0f s: does the server "
			          "serve MUC at %s (--muc-domain)?",
			    c->id, room, MUC_JOIN_TIMEOUT, B.o.muc_domain);
		else if (m->role == MUC_OWNER)
			log_warnx("conn %u: %s: no answer to the instant room "
			          "configuration within %.0f s",
			    c->id, room, MUC_JOIN_TIMEOUT);
		else
			log_warnx("conn %u: joining %s: own presence (110) but "
			          "no subject within %.0f s (XEP-0045 "
			          "§7.2.15)",
			    c->id, room, MUC_JOIN_TIMEOUT);
		B.muc.failed++;
		check_done();
		return;
	}
	switch (B.muc.phase) {
	case MP_SETTLE:
		if (now - B.muc.t_phase < MUC_SETTLE)
			return;
		if (B.o.server_pid > 0)
			B.rss_before = read_rss_kib(B.o.server_pid);
		B.muc.fill_cpu = muc_server_cpu();
		B.muc.phase = MP_OWNERS;
		B.muc.t_phase = now;
		for (unsigned r = 0; r < B.o.rooms; r++)
			muc_join(B.conns[r * B.o.occupants], 0);
		return;
	case MP_FILL_SETTLE:
		if (now - B.muc.t_phase < MUC_FILL_SETTLE)
			return;
		if (B.o.server_pid > 0)
			B.rss_after = read_rss_kib(B.o.server_pid);
		muc_send_start();
		return;
	case MP_SEND:
		if (B.muc.sent < B.o.n || now - B.muc.t_last_copy < MUC_DRAIN)
			return;
		log_warnx("muc: %lu of %lu copies, none for %.0f s; stopping",
		    B.muc.delivered, B.muc.expected, MUC_DRAIN);
		B.t_up = now;
		B.cpu_after = muc_server_cpu();
		B.self_cpu_after = muc_cpu_seconds(getpid());
		muc_stop();
		return;
	case MP_JOINS:
	case MP_LEAVES:
		muc_step();
		return;
	default:
		return;
	}
}

static void
muc_check_done(void)
{
	if (run_ending() || B.muc.phase == MP_DONE)
		return;
	if (B.muc.phase == MP_LOGIN &&
	    B.online_up + B.online_failed == B.muc.sessions) {
		B.t_login = now_mono() - B.t0;
		printf("muc: %u of %u sessions up in %.2fs; settling %.1fs\n",
		    B.online_up, B.muc.sessions, B.t_login, MUC_SETTLE);
		fflush(stdout);
		if (B.online_failed) {
			log_warnx("%u sessions failed to log in; stopping",
			    B.online_failed);
			muc_stop();
			return;
		}
		B.muc.phase = MP_SETTLE;
		B.muc.t_phase = now_mono();
		return;
	}
	if (B.muc.phase != MP_LOGIN &&
	    (B.dropped || B.muc.failed || B.muc.errors)) {
		log_warnx("muc: %u sessions dropped, %u joins failed, %lu "
		          "message errors; stopping",
		    B.dropped, B.muc.failed, B.muc.errors);
		if (B.muc.phase == MP_SEND) {
			B.t_up = now_mono();
			B.cpu_after = muc_server_cpu();
			B.self_cpu_after = muc_cpu_seconds(getpid());
		}
		muc_stop();
		return;
	}
	muc_step();
}

static void
muc_print_summary(void)
{
	double elapsed =
	    B.muc.phase >= MP_SEND && B.t_up > 0 ? B.t_up - B.t0 : 0;
	double rate, p50, p99, pmax, cpu_us = -1, join_cpu_ms = -1;
	double leave_cpu_ms = -1, fill_cpu_ms = -1, hist = -1;
	double jp50, jp99, jmax;
	long per_occupant = -1;
	unsigned n = B.lat_count, occupants = B.o.rooms * B.o.occupants;
	unsigned joins = B.muc.joins_done;
	FILE *f;

	rate = elapsed > 0 ? B.muc.delivered / elapsed : 0;
	qsort(B.latencies, n, sizeof(double), cmp_double);
	p50 = percentile(B.latencies, n, 0.50);
	p99 = percentile(B.latencies, n, 0.99);
	pmax = n ? B.latencies[n - 1] : 0;
	qsort(B.muc.join_ms, joins, sizeof(double), cmp_double);
	jp50 = percentile(B.muc.join_ms, joins, 0.50);
	jp99 = percentile(B.muc.join_ms, joins, 0.99);
	jmax = joins ? B.muc.join_ms[joins - 1] : -1;
	if (joins == 0)
		jp50 = jp99 = -1;
	if (B.cpu_before >= 0 && B.cpu_after >= 0 && B.muc.delivered > 0)
		cpu_us = (B.cpu_after - B.cpu_before) * 1e6 / B.muc.delivered;
	if (B.o.server_pid > 0 && joins > 0)
		join_cpu_ms = B.muc.join_cpu * 1e3 / joins;
	if (B.o.server_pid > 0 && B.muc.leaves_done > 0)
		leave_cpu_ms = B.muc.leave_cpu * 1e3 / B.muc.leaves_done;
	if (B.o.server_pid > 0 && B.muc.fill_s > 0 && occupants > 0)
		fill_cpu_ms = B.muc.fill_cpu * 1e3 / occupants;
	if (joins > 0)
		hist = (double)B.muc.history_got / joins;
	if (B.rss_before >= 0 && B.rss_after >= 0 && occupants > 0)
		per_occupant =
		    (B.rss_after - B.rss_before) * 1024 / (long)occupants;
	printf("%s muc tls=%s%s%s mech=%s service=%s rooms=%u occupants=%u "
	       "senders=%u window=%u body=%u n=%u sent=%lu delivered=%lu/%lu "
	       "foreign=%lu errors=%lu join-failed=%u login-failed=%u "
	       "logins=%.2fs fill=%.2fs elapsed=%.3fs rate=%.1f/s "
	       "p50=%.3fms p99=%.3fms max=%.3fms",
	    B.o.label, tls_name(), B.tls_proto[0] ? "," : "", B.tls_proto,
	    mech_used_name(), B.o.muc_domain, B.o.rooms, B.o.occupants,
	    B.o.senders, B.o.window, B.o.body_bytes, B.o.n, B.muc.sent,
	    B.muc.delivered, B.muc.expected, B.muc.foreign, B.muc.errors,
	    B.muc.failed, B.online_failed, B.t_login, B.muc.fill_s, elapsed,
	    rate, p50, p99, pmax);
	if (cpu_us >= 0)
		printf(" server_cpu=%.2fs(%.3fus/copy)",
		    B.cpu_after - B.cpu_before, cpu_us);
	if (per_occupant != -1)
		printf(" server_rss=%ld->%ldKiB(%ldB/occupant)", B.rss_before,
		    B.rss_after, per_occupant);
	if (fill_cpu_ms >= 0)
		printf(" fill_cpu=%.3fms/join", fill_cpu_ms);
	if (B.o.joins > 0 && B.o.join_rounds > 0) {
		printf(" joins=%u/%u history=%u history/join=%.1f "
		       "join_p50=%.2fms join_p99=%.2fms join_max=%.2fms",
		    joins, B.o.joins * B.o.join_rounds, B.o.history, hist, jp50,
		    jp99, jmax);
		if (join_cpu_ms >= 0)
			printf(" join_cpu=%.3fms/join leave_cpu=%.3fms/leave",
			    join_cpu_ms, leave_cpu_ms);
		if (B.muc.bcast_missing)
			printf(" broadcasts-missing=%lu", B.muc.bcast_missing);
	}
	if ((f = summary_end(elapsed)) == NULL)
		return;
	if (ftell(f) == 0)
		fprintf(f,
		    "time,label,mode,tls,mech,muc_domain,rooms,occupants,"
		    "senders,window,body_bytes,messages,sent,delivered,"
		    "expected,errors,elapsed_s,copies_per_s,p50_ms,"
		    "p99_ms,max_ms,server_cpu_s,server_cpu_us_per_copy,"
		    "bench_cpu_s,server_rss_before_kib,"
		    "server_rss_after_kib,bytes_per_occupant,fill_s,"
		    "fill_cpu_ms_per_join,joins,history,"
		    "history_per_join,join_p50_ms,join_p99_ms,"
		    "join_cpu_ms,leave_cpu_ms,join_failed,timed_out\n");
	fprintf(f,
	    "%ld,%s,muc,%s,%s,%s,%u,%u,%u,%u,%u,%u,%lu,%lu,%lu,%lu,%.3f,%.1f,"
	    "%.3f,%.3f,%.3f,%.3f,%.3f,%.2f,%ld,%ld,%ld,%.3f,%.3f,%u,%u,%.1f,"
	    "%.3f,%.3f,%.3f,%.3f,%u,%d\n",
	    (long)time(NULL), B.o.label, tls_name(), mech_used_name(),
	    B.o.muc_domain, B.o.rooms, B.o.occupants, B.o.senders, B.o.window,
	    B.o.body_bytes, B.o.n, B.muc.sent, B.muc.delivered, B.muc.expected,
	    B.muc.errors, elapsed, rate, p50, p99, pmax,
	    cpu_delta(B.cpu_before, B.cpu_after), cpu_us,
	    cpu_delta(B.self_cpu_before, B.self_cpu_after), B.rss_before,
	    B.rss_after, per_occupant, B.muc.fill_s, fill_cpu_ms, joins,
	    B.o.history, hist, jp50, jp99, join_cpu_ms, leave_cpu_ms,
	    B.muc.failed, B.timed_out);
	fclose(f);
}

/* Muc mode: this run's token and rooms, the counters, the timer. */
static void
muc_init(void)
{
	unsigned char r[8];

	RAND_bytes(r, sizeof(r));
	hex_encode(r, sizeof(r), B.muc.token);
	snprintf(B.muc.room_prefix, sizeof(B.muc.room_prefix), "xb%.8s",
	    B.muc.token);
	B.muc.expected = (unsigned long)B.o.n * B.o.occupants;
	free(B.latencies);
	B.lat_max = B.muc.expected < LATENCY_MAX ? (unsigned)B.muc.expected
	                                         : LATENCY_MAX;
	B.latencies = xcalloc(B.lat_max, sizeof(*B.latencies));
	B.muc.join_ms = xcalloc(
	    (size_t)B.o.joins * B.o.join_rounds + 1, sizeof(*B.muc.join_ms));
	B.muc.fill_cpu = -1;
	ev_timer_init(&B.muc.timer, muc_timer_cb, 0.1, 0.1);
	ev_timer_start(B.loop, &B.muc.timer);
	printf("muc: rooms %s-0..%u@%s, %u occupants each, %u joiners\n",
	    B.muc.room_prefix, B.o.rooms - 1, B.o.muc_domain, B.o.occupants,
	    B.o.joins);
	fflush(stdout);
}

/* Called whenever counts change: detect all-up and the end of the run. */
static void
check_done(void)
{
	if (B.stopping)
		return;
	if (B.o.mode == MODE_ROSTER) {
		roster_check_done();
		return;
	}
	if (B.o.mode == MODE_CHAT) {
		chat_check_done();
		return;
	}
	if (B.o.mode == MODE_PRESENCE) {
		presence_check_done();
		return;
	}
	if (B.o.mode == MODE_RESUME) {
		resume_check_done();
		return;
	}
	if (B.o.mode == MODE_CSI) {
		csi_check_done();
		return;
	}
	if (B.o.mode == MODE_PEP) {
		pep_check_done();
		return;
	}
	if (B.o.mode == MODE_MUC) {
		muc_check_done();
		return;
	}
	if (B.o.mode == MODE_IDLE && !B.all_up && !B.closing &&
	    B.logged_in + B.failed == B.o.n) {
		B.all_up = 1;
		B.t_up = now_mono();
		cpu_mark_after(); /* the ramp's */
		printf("idle: all %u sessions up (%u failed) in %.2fs "
		       "(%.0f logins/s); settling %.0fs\n",
		    B.logged_in, B.failed, B.t_up - B.t0,
		    B.t_up > B.t0 ? B.logged_in / (B.t_up - B.t0) : 0.0,
		    B.o.settle);
		fflush(stdout);
		ev_timer_init(&B.settle, settle_cb, B.o.settle, 0);
		ev_timer_start(B.loop, &B.settle);
		return;
	}
	if (B.live > 0)
		return;
	if (((B.o.mode == MODE_LOGIN || B.o.mode == MODE_PEP_LOGIN) &&
	        B.finished == B.o.n) ||
	    B.closing ||
	    (B.o.mode == MODE_IDLE && B.all_up && B.logged_in == 0))
		stop_loop();
}

/* Periodic: fail logins past their deadline, end slow closes. */
static void
sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	double now = now_mono();

	for (unsigned i = 0; i < B.started; i++) {
		struct conn *c = B.conns[i];

		if (c == NULL || c->state == CS_IDLE || now < c->deadline)
			continue;
		if (c->state == CS_CLOSING) {
			conn_finish(c, 0);
		} else if (c->step == STEP_PEP && c->pep != NULL) {
			char detail[96];

			snprintf(detail, sizeof(detail),
			    "%u of %u last items, ping %s, %u publishes "
			    "unanswered",
			    c->pep->contact_events,
			    B.o.pep_notify
			        ? (unsigned)B.o.roster_items * B.o.nodes
			        : 0,
			    c->pep->ping_done ? "answered" : "unanswered",
			    c->pep->in_flight);
			conn_fail(c, FAIL_TIMEOUT, detail);
			conn_finish(c, 0);
		} else if (c->step == STEP_PROBES) {
			char detail[64];

			snprintf(detail, sizeof(detail),
			    "%u of %u contacts' presence", c->probes_seen,
			    c->roster_online);
			conn_fail(c, FAIL_PROBES, detail);
			conn_finish(c, 0);
		} else {
			conn_fail(c, FAIL_TIMEOUT, NULL);
			conn_finish(c, 0);
		}
	}
}

static void
overall_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	log_warnx("overall timeout of %.0fs reached", B.o.timeout);
	B.timed_out = 1;
	stop_loop();
}

static void
signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	if (B.o.mode == MODE_IDLE && B.all_up && !B.closing) {
		begin_close_all();
		return;
	}
	log_warnx("interrupted");
	B.timed_out = 1;
	stop_loop();
}

/* ---- set-up ---- */

static void
raise_nofile(unsigned need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		struct rlimit more = {need, need};

		if (setrlimit(RLIMIT_NOFILE, &more) == 0)
			return;
		log_warnx("RLIMIT_NOFILE hard limit %llu is below the %u "
		          "descriptors needed",
		    (unsigned long long)rl.rlim_max, need);
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		log_warn("setrlimit(RLIMIT_NOFILE)");
}

static void
resolve(void)
{
	struct addrinfo hints, *res;
	char port[16];
	int e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", B.o.port);
	if ((e = getaddrinfo(B.o.host, port, &hints, &res)) != 0)
		fatalx("%s: %s", B.o.host, gai_strerror(e));
	memcpy(&B.addr, res->ai_addr, res->ai_addrlen);
	B.addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	if (B.o.peer_port > 0) {
		memcpy(&B.peer_addr, &B.addr, B.addrlen);
		B.peer_addrlen = B.addrlen;
		if (B.peer_addr.ss_family == AF_INET)
			((struct sockaddr_in *)&B.peer_addr)->sin_port =
			    htons((uint16_t)B.o.peer_port);
		else
			((struct sockaddr_in6 *)&B.peer_addr)->sin6_port =
			    htons((uint16_t)B.o.peer_port);
	}
}

static void
tls_init(void)
{
	B.ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (B.ssl_ctx == NULL)
		fatalx("SSL_CTX_new failed");
	/* Benchmark against self-signed test certificates: no verification. */
	SSL_CTX_set_verify(B.ssl_ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(B.ssl_ctx, TLS1_2_VERSION);
	if (B.o.mode == MODE_RESUME) {
		/* Reconnects resume the TLS session: each connection keeps
		 * its own ticket (new_session_cb), no shared cache.  TLS 1.3,
		 * where a ticket is all a resumption needs. */
		SSL_CTX_set_min_proto_version(B.ssl_ctx, TLS1_3_VERSION);
		SSL_CTX_set_session_cache_mode(B.ssl_ctx,
		    SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(B.ssl_ctx, new_session_cb);
	} else {
		/* Every login is a full handshake: no client session cache. */
		SSL_CTX_set_session_cache_mode(B.ssl_ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_options(B.ssl_ctx, SSL_OP_NO_TICKET);
	}
	SSL_CTX_set_mode(B.ssl_ctx, SSL_MODE_RELEASE_BUFFERS |
	                                SSL_MODE_ENABLE_PARTIAL_WRITE |
	                                SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

static void
usage(int code)
{
	FILE *f = code ? stderr : stdout;

	fprintf(f,
	    "usage: xmppbench login -n N [-c CONCURRENCY] [options]\n"
	    "       xmppbench idle -n N [-c RAMP] [-t SECONDS] [options]\n"
	    "       xmppbench roster -n N [-c CONCURRENCY] [--users U]\n"
	    "                 [--online K] [--roster-items R] [options]\n"
	    "       xmppbench chat -n MESSAGES [-c RAMP] [--pairs P]\n"
	    "                 [--window W] [--body BYTES] [options]\n"
	    "       xmppbench presence -n CHANGES [-c RAMP] [--users U]\n"
	    "                 [--roster-items R] [--window W] [options]\n"
	    "       xmppbench resume -n N [-c CONCURRENCY]\n"
	    "                 [options]\n"
	    "       xmppbench csi [-n CHANGES] [--inactive] [--users U]\n"
	    "                 [--roster-items R] [options]\n"
	    "       xmppbench pep [-n PUBLISHES] [-c RAMP] [--users U]\n"
	    "                 [--roster-items R] [--item-bytes B]\n"
	    "                 [--window W] [options]\n"
	    "       xmppbench pep-login -n N [-c CONCURRENCY] [--users U]\n"
	    "                 [--roster-items R] [--nodes K]\n"
	    "                 [--notify | --seed] [options]\n"
	    "       xmppbench muc [-n MESSAGES] [-c RAMP] [--rooms R]\n"
	    "                 [--occupants N] [--senders S] [--window W]\n"
	    "                 [--body BYTES] [--joins J] [--join-rounds K]\n"
	    "                 [--history H] [--muc-domain DOMAIN] [options]\n"
	    "options:\n"
	    "  -h HOST          server address (127.0.0.1)\n"
	    "  -p PORT          5222 for starttls and none, 5223 for direct\n"
	    "  --tls MODE       starttls (default), direct (XEP-0368) or\n"
	    "                   none (plain TCP)\n"
	    "  --transport T    tcp (default), ws or wss: XMPP over\n"
	    "                   WebSocket (RFC 7395) on plain TCP or TLS;\n"
	    "                   -p defaults to 5280 (ws) or 5443 (wss)\n"
	    "  --ws-path PATH   ws|wss: the resource (/xmpp-websocket)\n"
	    "  --mech MECH      auto (default: the strongest offered),\n"
	    "                   SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN\n"
	    "  -d DOMAIN        XMPP domain (localhost)\n"
	    "  -u PREFIX        user name prefix (user)\n"
	    "  --users U        login i uses PREFIX<(FIRST+i) %% U> (U = N)\n"
	    "  --first K        first user index (0)\n"
	    "  --password PW    one shared password (default: pw<index>)\n"
	    "  --sources S      connect from 127.0.0.1..127.0.0.S\n"
	    "                   (default: one per %u connections)\n"
	    "  -T SECONDS       time limit of the whole run (300)\n"
	    "  -t SECONDS       idle: close this long after all are up\n"
	    "                   (default: on Enter, SIGINT or SIGTERM)\n"
	    "  --settle SECONDS idle: wait before reading the RSS (5)\n"
	    "  --pid PID        server process: VmRSS (idle), CPU time\n"
	    "                   (login, roster)\n"
	    "  --peer-port P, --peer-domain D, --peer-pid PID\n"
	    "                   chat: the odd users are D's, on a second\n"
	    "                   server at P (same -h): messages between\n"
	    "                   pairs cross server-to-server; CPU is\n"
	    "                   both servers'\n"
	    "  --online K       roster: hold users 1, 3, .., 2K-1 online\n"
	    "                   (U/2); logins use users 0, 2, 4, ..\n"
	    "  --roster-items R roster, presence: expected roster size (100;\n"
	    "                   roster: -1 for any)\n"
	    "  --pairs P        chat: users 2k and 2k+1 message each other,\n"
	    "                   k < P (50); --users is 2P\n"
	    "  --window W       chat: undelivered messages per sender (16);\n"
	    "                   presence: status changes per sender (1)\n"
	    "  --users U        presence: users PREFIX0..PREFIX<U-1> (200)\n"
	    "  --body BYTES     chat: padding in each body (100)\n"
	    "  --no-close-wait  login, roster: close the connection right\n"
	    "                   after </stream:stream>, without waiting for\n"
	    "                   the server's\n"
	    "  --rate R         chat: send R messages/s in all (paced, for\n"
	    "                   latency below saturation; default: as fast\n"
	    "                   as the windows allow)\n"
	    "  --full           login: after bind also a roster get and\n"
	    "                   initial presence (RFC 6121 §2.1.3, §4.2)\n"
	    "  --handshake-only login: TLS handshake and close_notify, no\n"
	    "                   XMPP (the baseline of a login's cost)\n"
	    "  --sm             login, idle: enable stream management with\n"
	    "                   resumption after binding (XEP-0198), count\n"
	    "                   stanzas, answer <r/> (resume mode: always)\n"
	    "  --no-tls-resume  resume: reconnect with a full TLS handshake\n"
	    "                   (what TLS session resumption saves)\n"
	    "  --inactive       csi: the observer sends <inactive/> before\n"
	    "                   its contacts' changes and <active/> after\n"
	    "                   (XEP-0352); -n is changes per contact (10)\n"
	    "  --item-bytes B   pep: payload of each item (1024)\n"
	    "  --nodes K        pep-login: nodes of each user (10)\n"
	    "  --notify         pep-login: caps with +notify for the K\n"
	    "                   nodes; wait for the R * K last items\n"
	    "  --seed           pep-login: publish one item to each of the\n"
	    "                   K nodes, then close (no caps, no roster)\n"
	    "  --muc-domain D   muc: the MUC service (conference.DOMAIN)\n"
	    "  --rooms R        muc: rooms (1); users r*N .. r*N+N-1 are\n"
	    "                   room r's occupants, the joiners follow\n"
	    "  --occupants N    muc: occupants of each room (100)\n"
	    "  --senders S      muc: occupants sending in each room (10);\n"
	    "                   --window W of each in flight (4), -n\n"
	    "                   groupchat messages in all (1000)\n"
	    "  --joins J        muc: sessions that join room 0 one after\n"
	    "                   the other and leave again (10), 0: none\n"
	    "  --join-rounds K  muc: times they do (10)\n"
	    "  --history H      muc: maxstanzas of their joins (20)\n"
	    "  --key-cache FILE load and save the derived SCRAM keys\n"
	    "  --csv FILE       append one CSV row per run\n"
	    "  --label NAME     server name in the results (xmppd)\n"
	    "  -v               log every failure; -vv also traces XML\n",
	    PORTS_PER_SOURCE);
	exit(code);
}

static double
parse_num(const char *s, double min, double max, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || *end != '\0' || end == s || v < min || v > max)
		fatalx("invalid %s: %s", what, s);
	return v;
}

static void
parse_args(int argc, char **argv)
{
	enum {
		O_TLS = 256,
		O_USERS,
		O_FIRST,
		O_PASSWORD,
		O_SOURCES,
		O_SETTLE,
		O_PID,
		O_PEER_PORT,
		O_PEER_DOMAIN,
		O_PEER_PID,
		O_KEYS,
		O_CSV,
		O_LABEL,
		O_ONLINE,
		O_ROSTER_ITEMS,
		O_PAIRS,
		O_WINDOW,
		O_BODY,
		O_MECH,
		O_NO_CLOSE_WAIT,
		O_HANDSHAKE_ONLY,
		O_FULL,
		O_RATE,
		O_SM,
		O_INACTIVE,
		O_NO_TLS_RESUME,
		O_ITEM_BYTES,
		O_NODES,
		O_NOTIFY,
		O_SEED,
		O_MUC_DOMAIN,
		O_ROOMS,
		O_OCCUPANTS,
		O_SENDERS,
		O_JOINS,
		O_JOIN_ROUNDS,
		O_HISTORY,
		O_TRANSPORT,
		O_WS_PATH,
		O_HELP
	};
	static const struct option longopts[] = {
	    {"tls", required_argument, NULL, O_TLS},
	    {"users", required_argument, NULL, O_USERS},
	    {"first", required_argument, NULL, O_FIRST},
	    {"password", required_argument, NULL, O_PASSWORD},
	    {"sources", required_argument, NULL, O_SOURCES},
	    {"settle", required_argument, NULL, O_SETTLE},
	    {"pid", required_argument, NULL, O_PID},
	    {"peer-port", required_argument, NULL, O_PEER_PORT},
	    {"peer-domain", required_argument, NULL, O_PEER_DOMAIN},
	    {"peer-pid", required_argument, NULL, O_PEER_PID},
	    {"key-cache", required_argument, NULL, O_KEYS},
	    {"csv", required_argument, NULL, O_CSV},
	    {"label", required_argument, NULL, O_LABEL},
	    {"online", required_argument, NULL, O_ONLINE},
	    {"roster-items", required_argument, NULL, O_ROSTER_ITEMS},
	    {"pairs", required_argument, NULL, O_PAIRS},
	    {"window", required_argument, NULL, O_WINDOW},
	    {"body", required_argument, NULL, O_BODY},
	    {"mech", required_argument, NULL, O_MECH},
	    {"no-close-wait", no_argument, NULL, O_NO_CLOSE_WAIT},
	    {"handshake-only", no_argument, NULL, O_HANDSHAKE_ONLY},
	    {"full", no_argument, NULL, O_FULL},
	    {"rate", required_argument, NULL, O_RATE},
	    {"sm", no_argument, NULL, O_SM},
	    {"inactive", no_argument, NULL, O_INACTIVE},
	    {"no-tls-resume", no_argument, NULL, O_NO_TLS_RESUME},
	    {"item-bytes", required_argument, NULL, O_ITEM_BYTES},
	    {"nodes", required_argument, NULL, O_NODES},
	    {"notify", no_argument, NULL, O_NOTIFY},
	    {"seed", no_argument, NULL, O_SEED},
	    {"muc-domain", required_argument, NULL, O_MUC_DOMAIN},
	    {"rooms", required_argument, NULL, O_ROOMS},
	    {"occupants", required_argument, NULL, O_OCCUPANTS},
	    {"senders", required_argument, NULL, O_SENDERS},
	    {"joins", required_argument, NULL, O_JOINS},
	    {"join-rounds", required_argument, NULL, O_JOIN_ROUNDS},
	    {"history", required_argument, NULL, O_HISTORY},
	    {"transport", required_argument, NULL, O_TRANSPORT},
	    {"ws-path", required_argument, NULL, O_WS_PATH},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0},
	};
	struct bench_opts *o = &B.o;
	int ch, port_given = 0, conc_given = 0, online_given = 0, n_given = 0;
	int items_given = 0, joins_given = 0, rounds_given = 0;
	int history_given = 0;

	if (argc < 2)
		usage(1);
	if (strcmp(argv[1], "login") == 0)
		o->mode = MODE_LOGIN;
	else if (strcmp(argv[1], "idle") == 0)
		o->mode = MODE_IDLE;
	else if (strcmp(argv[1], "roster") == 0)
		o->mode = MODE_ROSTER;
	else if (strcmp(argv[1], "chat") == 0)
		o->mode = MODE_CHAT;
	else if (strcmp(argv[1], "presence") == 0)
		o->mode = MODE_PRESENCE;
	else if (strcmp(argv[1], "resume") == 0)
		o->mode = MODE_RESUME;
	else if (strcmp(argv[1], "csi") == 0)
		o->mode = MODE_CSI;
	else if (strcmp(argv[1], "pep") == 0)
		o->mode = MODE_PEP;
	else if (strcmp(argv[1], "pep-login") == 0)
		o->mode = MODE_PEP_LOGIN;
	else if (strcmp(argv[1], "muc") == 0)
		o->mode = MODE_MUC;
	else if (strcmp(argv[1], "--help") == 0)
		usage(0);
	else
		usage(1);
	o->n = 1;
	o->concurrency = 1;
	o->host = "127.0.0.1";
	o->domain = "localhost";
	o->user_prefix = "user";
	o->timeout = 300;
	o->settle = 5;
	o->label = "xmppd";
	o->roster_items = 100;
	o->mech = MECH_AUTO;
	optind = 2;
	while ((ch = getopt_long(
	            argc, argv, "n:c:h:p:d:u:T:t:v", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			o->n = (unsigned)parse_num(optarg, 1, 10000000, "-n");
			n_given = 1;
			break;
		case 'c':
			o->concurrency =
			    (unsigned)parse_num(optarg, 1, 10000000, "-c");
			conc_given = 1;
			break;
		case 'h':
			o->host = optarg;
			break;
		case 'p':
			o->port = (int)parse_num(optarg, 1, 65535, "-p");
			port_given = 1;
			break;
		case 'd':
			o->domain = optarg;
			break;
		case 'u':
			o->user_prefix = optarg;
			break;
		case 'T':
			o->timeout = parse_num(optarg, 1, 86400, "-T");
			break;
		case 't':
			o->hold = parse_num(optarg, 0, 86400, "-t");
			o->hold_given = 1;
			break;
		case 'v':
			o->verbose++;
			break;
		case O_TLS:
			if (strcmp(optarg, "direct") == 0)
				o->tls = TLS_DIRECT;
			else if (strcmp(optarg, "starttls") == 0)
				o->tls = TLS_STARTTLS;
			else if (strcmp(optarg, "none") == 0)
				o->tls = TLS_NONE;
			else
				fatalx("--tls: starttls, direct or none");
			break;
		case O_TRANSPORT:
			if (strcmp(optarg, "tcp") == 0)
				o->transport = TRANSPORT_TCP;
			else if (strcmp(optarg, "ws") == 0)
				o->transport = TRANSPORT_WS;
			else if (strcmp(optarg, "wss") == 0)
				o->transport = TRANSPORT_WSS;
			else
				fatalx("--transport: tcp, ws or wss");
			break;
		case O_WS_PATH:
			if (optarg[0] != '/' || strpbrk(optarg, " \r\n") != NULL)
				fatalx("--ws-path: an absolute path");
			o->ws_path = optarg;
			break;
		case O_NO_CLOSE_WAIT:
			o->no_close_wait = 1;
			break;
		case O_HANDSHAKE_ONLY:
			o->handshake_only = 1;
			break;
		case O_FULL:
			o->full_login = 1;
			break;
		case O_RATE:
			o->rate = parse_num(optarg, 1, 10000000, "--rate");
			break;
		case O_SM:
			o->sm = 1;
			break;
		case O_INACTIVE:
			o->csi_inactive = 1;
			break;
		case O_NO_TLS_RESUME:
			o->no_tls_resume = 1;
			break;
		case O_ITEM_BYTES:
			o->item_bytes = (unsigned)parse_num(
			    optarg, 1, 1000000, "--item-bytes");
			break;
		case O_NODES:
			o->nodes = (unsigned)parse_num(
			    optarg, 0, PEP_NODES_MAX, "--nodes");
			break;
		case O_NOTIFY:
			o->pep_notify = 1;
			break;
		case O_SEED:
			o->pep_seed = 1;
			break;
		case O_MUC_DOMAIN:
			o->muc_domain = optarg;
			break;
		case O_ROOMS:
			o->rooms =
			    (unsigned)parse_num(optarg, 1, 10000, "--rooms");
			break;
		case O_OCCUPANTS:
			o->occupants = (unsigned)parse_num(
			    optarg, 1, 100000, "--occupants");
			break;
		case O_SENDERS:
			o->senders =
			    (unsigned)parse_num(optarg, 1, 100000, "--senders");
			break;
		case O_JOINS:
			o->joins =
			    (unsigned)parse_num(optarg, 0, 10000, "--joins");
			joins_given = 1;
			break;
		case O_JOIN_ROUNDS:
			o->join_rounds = (unsigned)parse_num(
			    optarg, 0, 10000, "--join-rounds");
			rounds_given = 1;
			break;
		case O_HISTORY:
			o->history =
			    (unsigned)parse_num(optarg, 0, 10000, "--history");
			history_given = 1;
			break;
		case O_MECH:
			o->mech = MECH_AUTO;
			for (int m = 0; m < MECH_COUNT; m++)
				if (strcasecmp(optarg, mech_names[m]) == 0)
					o->mech = (enum sasl_mech)m;
			if (o->mech == MECH_AUTO && strcmp(optarg, "auto") != 0)
				fatalx("--mech: auto, SCRAM-SHA-256, "
				       "SCRAM-SHA-1 or PLAIN");
			break;
		case O_USERS:
			o->users =
			    (unsigned)parse_num(optarg, 1, 10000000, "--users");
			break;
		case O_FIRST:
			o->first_user =
			    (unsigned)parse_num(optarg, 0, 10000000, "--first");
			break;
		case O_PASSWORD:
			o->password = optarg;
			break;
		case O_SOURCES:
			o->sources =
			    (unsigned)parse_num(optarg, 1, 254, "--sources");
			break;
		case O_SETTLE:
			o->settle = parse_num(optarg, 0, 3600, "--settle");
			break;
		case O_PEER_PORT:
			o->peer_port =
			    (int)parse_num(optarg, 1, 65535, "--peer-port");
			break;
		case O_PEER_DOMAIN:
			o->peer_domain = optarg;
			break;
		case O_PEER_PID:
			o->peer_pid =
			    (pid_t)parse_num(optarg, 1, INT_MAX, "--peer-pid");
			break;
		case O_PID:
			o->server_pid =
			    (pid_t)parse_num(optarg, 1, INT_MAX, "--pid");
			break;
		case O_KEYS:
			o->key_cache = optarg;
			break;
		case O_CSV:
			o->csv = optarg;
			break;
		case O_LABEL:
			o->label = optarg;
			break;
		case O_ONLINE:
			o->online = (unsigned)parse_num(
			    optarg, 0, 10000000, "--online");
			online_given = 1;
			break;
		case O_ROSTER_ITEMS:
			items_given = 1;
			o->roster_items = (long)parse_num(
			    optarg, -1, 100000, "--roster-items");
			break;
		case O_PAIRS:
			o->pairs =
			    (unsigned)parse_num(optarg, 1, 50000, "--pairs");
			break;
		case O_WINDOW:
			o->window =
			    (unsigned)parse_num(optarg, 1, 100000, "--window");
			break;
		case O_BODY:
			o->body_bytes = (unsigned)parse_num(
			    optarg, 1, CHAT_BODY_MAX, "--body");
			break;
		case O_HELP:
			usage(0);
			break;
		default:
			usage(1);
		}
	}
	if (optind != argc)
		usage(1);
	if (o->transport != TRANSPORT_TCP) {
		/* WebSocket has no STARTTLS: wss is TLS from the start. */
		o->tls = o->transport == TRANSPORT_WSS ? TLS_DIRECT : TLS_NONE;
		if (o->mode != MODE_LOGIN && o->mode != MODE_IDLE &&
		    o->mode != MODE_CHAT)
			fatalx("--transport ws|wss: login, idle or chat mode");
		if (o->handshake_only || o->sm)
			fatalx("--transport ws|wss: not with --handshake-only "
			       "or --sm");
		if (!port_given)
			o->port = o->transport == TRANSPORT_WSS ? 5443 : 5280;
		port_given = 1;
	}
	if (o->ws_path == NULL)
		o->ws_path = "/xmpp-websocket";
	if (!port_given)
		o->port = o->tls == TLS_DIRECT ? 5223 : 5222;
	if (o->mode == MODE_IDLE && !conc_given)
		o->concurrency = 100;
	if (o->handshake_only &&
	    (o->mode != MODE_LOGIN || o->tls != TLS_DIRECT))
		fatalx("--handshake-only: login mode with --tls direct");
	if (o->full_login && o->mode != MODE_LOGIN)
		fatalx("--full: login mode only");
	if (o->full_login && !items_given)
		o->roster_items = -1; /* whatever the account's roster is */
	if (o->mode == MODE_ROSTER) {
		if (o->users == 0)
			o->users = 200;
		if (o->users % 2 != 0 || o->first_user != 0)
			fatalx("roster: --users must be even, --first unused");
		if (!online_given)
			o->online = o->users / 2;
		if (o->online > o->users / 2)
			fatalx("roster: --online is at most --users / 2");
	}
	if (o->mode == MODE_CHAT) {
		if (o->pairs == 0)
			o->pairs = 50;
		if (o->window == 0)
			o->window = 16;
		if (o->body_bytes == 0)
			o->body_bytes = 100;
		if (o->first_user != 0 ||
		    (o->users != 0 && o->users != 2 * o->pairs))
			fatalx("chat: --users is 2 * --pairs, --first unused");
		o->users = 2 * o->pairs;
		o->online = 2 * o->pairs; /* conns[] holds the sessions */
		if (!conc_given)
			o->concurrency = 20;
	}
	if (o->mode == MODE_PRESENCE) {
		if (o->users == 0)
			o->users = 200;
		if (o->window == 0)
			o->window = 1;
		if (o->first_user != 0 || o->roster_items < 1 ||
		    (unsigned long)o->roster_items >= o->users)
			fatalx("presence: --roster-items between 1 and --users "
			       "- 1, --first unused");
		o->online = o->users; /* conns[] holds the sessions */
		if (!conc_given)
			o->concurrency = 20;
	}
	if (o->sm && o->mode != MODE_LOGIN && o->mode != MODE_IDLE &&
	    o->mode != MODE_RESUME)
		fatalx("--sm: login and idle mode (resume mode has it)");
	if (o->csi_inactive && o->mode != MODE_CSI)
		fatalx("--inactive: csi mode only");
	if (o->no_tls_resume && o->mode != MODE_RESUME)
		fatalx("--no-tls-resume: resume mode only");
	if (o->mode == MODE_RESUME) {
		o->sm = 1;
		if (o->tls == TLS_NONE)
			fatalx("resume: TLS session resumption needs TLS");
	}
	if (o->mode == MODE_CSI) {
		if (o->users == 0)
			o->users = 200;
		if (!n_given)
			o->n = 10;
		if (o->first_user != 0 || o->roster_items < 2 ||
		    o->roster_items % 2 != 0 ||
		    (unsigned long)o->roster_items >= o->users)
			fatalx(
			    "csi: --roster-items even, between 2 and --users "
			    "- 1, --first unused");
		o->online = (unsigned)o->roster_items + 1; /* conns[] */
		if (!conc_given)
			o->concurrency = CSI_RAMP;
	}
	if ((o->item_bytes && o->mode != MODE_PEP) ||
	    ((o->nodes || o->pep_notify || o->pep_seed) &&
	        o->mode != MODE_PEP_LOGIN))
		fatalx("--item-bytes: pep mode; --nodes, --notify, --seed: "
		       "pep-login mode");
	if (o->mode == MODE_PEP) {
		if (o->users == 0)
			o->users = 1000;
		if (!n_given)
			o->n = 5;
		if (o->window == 0)
			o->window = 1;
		if (o->item_bytes == 0)
			o->item_bytes = 1024;
		if (!items_given)
			o->roster_items = 20;
		if (o->first_user != 0 || o->roster_items < 1 ||
		    (unsigned long)o->roster_items >= o->users)
			fatalx("pep: --roster-items between 1 and --users - 1, "
			       "--first unused");
		o->online = o->users; /* conns[] holds the sessions */
		if (!conc_given)
			o->concurrency = 20;
	}
	if (o->mode == MODE_PEP_LOGIN) {
		if (!items_given)
			o->roster_items = 20;
		if (o->nodes == 0)
			o->nodes = 10;
		if (o->pep_notify && o->pep_seed)
			fatalx("pep-login: --notify or --seed");
	}
	if ((o->peer_port > 0 || o->peer_domain != NULL || o->peer_pid > 0) &&
	    (o->mode != MODE_CHAT || o->peer_port == 0 ||
	        o->peer_domain == NULL || o->transport != TRANSPORT_TCP))
		fatalx("--peer-port, --peer-domain, --peer-pid: chat mode over "
		       "TCP, with both --peer-port and --peer-domain");
	if ((o->muc_domain || o->rooms || o->occupants || o->senders ||
	        joins_given || rounds_given || history_given) &&
	    o->mode != MODE_MUC)
		fatalx(
		    "--muc-domain, --rooms, --occupants, --senders, --joins, "
		    "--join-rounds, --history: muc mode");
	if (o->mode == MODE_MUC) {
		if (o->muc_domain == NULL) {
			size_t len = strlen(o->domain) + sizeof("conference.");
			char *d = xmalloc(len);

			snprintf(d, len, "conference.%s", o->domain);
			o->muc_domain = d;
		}
		if (o->rooms == 0)
			o->rooms = 1;
		if (o->occupants == 0)
			o->occupants = 100;
		if (o->senders == 0)
			o->senders = o->occupants < 10 ? o->occupants : 10;
		if (o->window == 0)
			o->window = 4;
		if (o->body_bytes == 0)
			o->body_bytes = 100;
		if (!n_given)
			o->n = 1000;
		if (!joins_given)
			o->joins = 10;
		if (!rounds_given)
			o->join_rounds = 10;
		if (!history_given)
			o->history = 20;
		if (o->senders > o->occupants)
			fatalx("muc: --senders is at most --occupants");
		if (o->first_user != 0)
			fatalx("muc: --first unused");
		B.muc.sessions = o->rooms * o->occupants + o->joins;
		if (o->users != 0 && o->users < B.muc.sessions)
			fatalx("muc: --users must be at least --rooms * "
			       "--occupants + --joins (%u)",
			    B.muc.sessions);
		o->users = B.muc.sessions;
		o->online = B.muc.sessions; /* conns[] holds the sessions */
		if (!conc_given)
			o->concurrency = 20;
	}
	if (o->users == 0)
		o->users = o->n;
	if (o->sources == 0)
		o->sources = (o->n + PORTS_PER_SOURCE - 1) / PORTS_PER_SOURCE;
	if (o->concurrency > o->n && o->mode != MODE_PRESENCE &&
	    o->mode != MODE_CSI && o->mode != MODE_PEP && o->mode != MODE_MUC)
		o->concurrency = o->n;
}

int
main(int argc, char **argv)
{
	int code;

	log_init("xmppbench", 1, LOG_LVL_INFO);
	parse_args(argc, argv);
	if (B.o.verbose)
		log_set_level(LOG_LVL_DEBUG);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile((B.o.mode == MODE_IDLE || B.o.mode == MODE_RESUME
	                     ? B.o.n
	                     : B.o.concurrency) +
	             B.o.online + 64);
	resolve();
	tls_init();
	B.conns = xcalloc(B.o.online + B.o.n, sizeof(*B.conns));
	B.keys = xcalloc(B.o.users, sizeof(*B.keys));
	B.lat_max = B.o.n;
	if (B.o.mode == MODE_PRESENCE) {
		B.pres_expected =
		    (unsigned long)B.o.n * (unsigned long)B.o.roster_items;
		B.lat_max = B.pres_expected < LATENCY_MAX
		                ? (unsigned)B.pres_expected
		                : LATENCY_MAX;
	}
	B.latencies = xcalloc(B.lat_max, sizeof(*B.latencies));
	if (B.o.mode == MODE_RESUME)
		B.ramp_latencies = xcalloc(B.o.n, sizeof(*B.ramp_latencies));
	if (B.o.mode == MODE_CSI) {
		B.csi_contacts = (unsigned)B.o.roster_items;
		B.csi_total = B.o.n * B.csi_contacts;
		B.csi_last = xcalloc(B.csi_contacts, sizeof(*B.csi_last));
		for (unsigned k = 0; k < B.csi_contacts; k++)
			B.csi_last[k] = -1;
	}
	if (B.o.mode == MODE_PEP || B.o.mode == MODE_PEP_LOGIN)
		pep_caps_init();
	if (B.o.mode == MODE_PEP) {
		B.pep_total = (unsigned long)B.o.users * B.o.n;
		B.pep_expected =
		    B.pep_total * (unsigned long)(B.o.roster_items + 1);
		free(B.latencies);
		B.lat_max = B.pep_expected < LATENCY_MAX
		                ? (unsigned)B.pep_expected
		                : LATENCY_MAX;
		B.latencies = xcalloc(B.lat_max, sizeof(*B.latencies));
	}
	B.rss_before = B.rss_after = B.self_rss = -1;
	B.cpu_before = B.cpu_after = -1;
	B.self_cpu_before = B.self_cpu_after = -1;
	if (B.o.key_cache)
		key_cache_load(B.o.key_cache);
	B.loop = ev_default_loop(EVFLAG_AUTO);
	ev_timer_init(&B.sweep, sweep_cb, SWEEP_INTERVAL, SWEEP_INTERVAL);
	ev_timer_start(B.loop, &B.sweep);
	if (B.o.mode == MODE_MUC)
		muc_init();
	ev_timer_init(&B.overall, overall_cb, B.o.timeout, 0);
	ev_timer_start(B.loop, &B.overall);
	ev_signal_init(&B.sigint, signal_cb, SIGINT);
	ev_signal_start(B.loop, &B.sigint);
	ev_signal_init(&B.sigterm, signal_cb, SIGTERM);
	ev_signal_start(B.loop, &B.sigterm);
	if (B.o.server_pid > 0)
		B.rss_before = read_rss_kib(B.o.server_pid);
	if (B.o.mode == MODE_LOGIN || B.o.mode == MODE_RESUME ||
	    B.o.mode == MODE_IDLE || B.o.mode == MODE_PEP_LOGIN)
		cpu_mark_before();
	B.t0 = now_mono();
	start_more();
	if (B.o.mode == MODE_ROSTER || B.o.mode == MODE_PRESENCE)
		check_done(); /* with --online 0, nothing else would */
	ev_run(B.loop, 0);
	if (B.o.mode == MODE_LOGIN || B.o.mode == MODE_PEP_LOGIN)
		cpu_mark_after();
	print_summary();
	if (B.o.key_cache)
		key_cache_save(B.o.key_cache);
	code = B.failed || B.timed_out || B.logged_in < B.o.n ? 1 : 0;
	if (B.o.mode == MODE_ROSTER &&
	    (B.online_failed || B.dropped ||
	        B.bcast_available + B.bcast_unavailable != B.bcast_expected))
		code = 1;
	if (B.o.mode == MODE_CHAT)
		code = B.failed || B.timed_out || B.dropped || B.chat_errors ||
		       B.chat_bad || B.chat_delivered < B.o.n;
	if (B.o.mode == MODE_PRESENCE)
		code = B.online_failed || B.timed_out || B.dropped ||
		       B.pres_delivered < B.pres_expected;
	if (B.o.mode == MODE_RESUME)
		code = B.ramp_failed || B.failed || B.timed_out || B.dropped ||
		       B.logged_in < B.o.n || B.sm_resume_h_wrong;
	if (B.o.mode == MODE_PEP)
		code = B.online_failed || B.timed_out || B.dropped ||
		       B.pep_errors || B.pep_results < B.pep_total ||
		       B.pep_contact_events + B.pep_own_events < B.pep_expected;
	if (B.o.mode == MODE_MUC)
		code = B.online_failed || B.timed_out || B.dropped ||
		       B.muc.failed || B.muc.errors ||
		       B.muc.delivered < B.muc.expected ||
		       B.muc.joins_done < B.o.joins * B.o.join_rounds;
	/* 3: no room could be created (no MUC service there?). */
	if (B.o.mode == MODE_MUC && B.muc.rooms_open == 0 && B.muc.failed)
		code = 3;
	if (B.o.mode == MODE_CSI)
		code = B.online_failed || B.failed || B.timed_out ||
		       B.dropped || B.csi_step != CSI_DONE ||
		       B.csi_latest != B.csi_contacts;
	if (B.o.sm && B.sm_enabled < B.logged_in && B.o.mode != MODE_RESUME)
		code = 1;
	/* Connections still open (timeout): the kernel closes them. */
	return code;
}
