/*
 * xmppd.conf: parsing and validation into struct conf.  The syntax is
 * line-oriented statements, "#" comments, double-quoted strings and
 * { } blocks; see xmppd.conf(5).  An embedded default configuration
 * (conf_default_text) is used by "make run" when no file is given.
 */
#ifndef XMPPD_CONF_H
#define XMPPD_CONF_H

#include <stddef.h>

#include "log.h"

enum listen_kind {
	LISTEN_C2S,        /* "c2s": plain TCP with STARTTLS (RFC 6120 §5) */
	LISTEN_C2S_TLS,    /* "c2s-tls": direct TLS (XEP-0368) */
	LISTEN_HTTP,       /* "http": HTTP/1.1 on plain TCP (RFC 9112) */
	LISTEN_HTTPS,      /* "https": HTTP/1.1 over direct TLS, ALPN
	                      "http/1.1" */
	LISTEN_S2S,        /* "s2s": servers, STARTTLS (RFC 6120) */
	LISTEN_S2S_TLS,    /* "s2s-tls": servers, direct TLS (XEP-0368) */
	LISTEN_COMPONENT,  /* "component": external components
	                      (XEP-0114), plain TCP, 127.0.0.1 unless an
	                      address is given */
	LISTEN_PROXY65,    /* "proxy65": SOCKS5 of the XEP-0065 proxy,
	                      plain TCP */
	LISTEN__COUNT
};

struct conf_listener {
	enum listen_kind kind;
	char *address;          /* numeric IPv4/IPv6 or "*" (all, dual-stack) */
	int port;
	int starttls_required;  /* c2s only; default 1 */
};

/* A repeatable option's values. */
struct conf_strlist {
	char **v;
	size_t n;
};

/* Whether s is in l. */
int conf_strlist_has(const struct conf_strlist *l, const char *s);

/* An address or a network ("http-trusted-proxy 10.0.0.0/8"). */
struct conf_net {
	int family;             /* AF_INET or AF_INET6 */
	unsigned char addr[16]; /* network byte order, host bits zero */
	unsigned prefix;        /* bits that must match */
	char *text;             /* as written, canonical */
};

/* The "metrics" block: who may read GET /metrics. */
struct conf_metrics {
	int enabled;            /* a metrics block was given */
	int *ports;             /* "listener PORT": http(s) listeners on these
	                           ports serve it without a token */
	size_t nports;
	int token_set;          /* "token" or "token-sha256" */
	unsigned char token_sha256[32];  /* only the token's hash is kept */
};

struct conf_host {
	char *name;             /* nameprepped domain */
	char *certificate;      /* PEM chain path */
	char *key;              /* PEM private key path */
	char *contact_admin;    /* optional, reserved for XEP-0157 later */
	/* "muc off" | "muc on" | "muc DOMAIN" (repeatable): the XEP-0045
	 * services of the host, nameprepped; "conference.NAME" when the
	 * block says nothing, none for "muc off". */
	char **muc;
	size_t nmuc;
	int muc_set;            /* a "muc" statement was seen */
	char *websocket_url;    /* "websocket-url": the public ws:// or
	                           wss:// URL host-meta announces (XEP-0156),
	                           NULL: derived from the request */
	char *bosh_url;         /* "bosh-url": the public http(s):// URL
	                           of /http-bind host-meta announces,
	                           NULL: derived from the request */
	/* The host has moved: clients are sent elsewhere (RFC 6120
	 * §4.9.3.19 see-other-host on c2s; "see-other-uri" ws(s):// for
	 * WebSocket, RFC 7395 §3.6.1, and http(s):// for BOSH, XEP-0124
	 * §17.3).  NULL: not redirected on that transport. */
	char *see_other_host;   /* "HOST" or "HOST:PORT" */
	char *see_other_ws;
	char *see_other_bosh;
	/* "upload off" | "upload on" | "upload DOMAIN": the XEP-0363
	 * service, nameprepped; "upload.NAME" when the block says nothing,
	 * NULL for "upload off".  It runs only with "upload-url". */
	char *upload;
	int upload_set;
	/* "proxy65 off" | "proxy65 on" | "proxy65 DOMAIN": the XEP-0065
	 * bytestreams proxy of the host, nameprepped; "proxy.NAME" when the
	 * block says nothing, NULL for "proxy65 off".  It runs only with a
	 * "listen proxy65" listener. */
	char *proxy65;
	int proxy65_set;
};

/* A "component DOMAIN { secret ... }" block (XEP-0114). */
struct conf_component {
	char *domain;           /* nameprepped; its subdomains are its too */
	char *secret;           /* the handshake's shared secret */
	unsigned stanzas_per_second; /* "stanzas-per-second", 500; 0 = off */
	unsigned stanza_burst;  /* "stanza-burst", 2000 */
};

struct conf_limits {
	size_t stanza_size;          /* "stanza-size", bytes, 262144 */
	size_t preauth_stanza_size;  /* "preauth-stanza-size", 16384 */
	size_t stanza_memory;        /* "stanza-memory", 1048576: what one
	                                stanza may take once parsed (after
	                                authentication; before it,
	                                2 x preauth-stanza-size + 16 KiB) */
	unsigned depth;              /* "depth", 64 */
	unsigned attributes;         /* "attributes", 64 */
	size_t output_high;          /* "output-buffer", 262144: above it,
	                                stop reading from that connection
	                                until its output drains */
	size_t output_max;           /* "output-max", 4194304: disconnect */
	unsigned sessions_per_user;  /* "sessions-per-user", 16 */
	unsigned connections_per_ip; /* "connections-per-ip", 256; 0 = off */
	unsigned auth_failures_per_ip; /* "auth-failures-per-ip", 10/minute */
	unsigned auth_ban_time;      /* "auth-ban-time", s, 600: an address
	                                with twice auth-failures-per-ip
	                                failures is refused this long; 0 =
	                                no ban */
	unsigned preauth_connections_per_ip; /* "preauth-connections-per-ip",
	                                16: unauthenticated; 0 = off */
	unsigned stanzas_per_second; /* "stanzas-per-second", 50 per
	                                session; 0 = off */
	unsigned stanza_burst;       /* "stanza-burst", 200 */
	size_t bytes_per_second;     /* "bytes-per-second", 65536 per
	                                session (a byte token bucket beside
	                                the stanza one); 0 = off */
	size_t byte_burst;           /* "byte-burst", 524288 */
	unsigned s2s_stanzas_per_second; /* "s2s-stanzas-per-second", 500
	                                per incoming server stream (its
	                                burst: 2 s of it); 0 = off */
	unsigned s2s_timeout;        /* "s2s-timeout", s, 30: a server
	                                stream's connection and negotiation
	                                until authenticated */
	size_t s2s_bytes_per_second; /* "s2s-bytes-per-second", 1M per
	                                incoming server stream (burst:
	                                2 s of it); 0 = off */
	unsigned handshake_timeout;  /* "handshake-timeout", s, 30 */
	unsigned preauth_timeout;    /* "preauth-timeout", s, 60 */
	unsigned idle_timeout;       /* "idle-timeout", s, 3600; 0 = off */
	unsigned max_connections;    /* "max-connections", 0 = from
	                                RLIMIT_NOFILE minus headroom */
	unsigned roster_size;        /* "roster-size", items, 1000 */
	unsigned storage_queue;      /* "storage-queue", requests, 10000;
	                                0 = unbounded */
	unsigned offline_messages;   /* "offline-messages", per user, 500;
	                                0 = offline storage off */
	size_t vcard_size;           /* "vcard-size", bytes, 65536 */
	size_t private_size;         /* "private-size", bytes per item, 65536 */
	unsigned blocklist_size;     /* "blocklist-size", JIDs, 1000 */
	unsigned registrations_per_ip; /* "registrations-per-ip", per hour, 5 */
	unsigned ipv4_prefix;        /* "ipv4-prefix", 32: the per-IP limits
	                                count IPv4 peers by this network */
	unsigned ipv6_prefix;        /* "ipv6-prefix", 64: ... and IPv6 peers
	                                by this one (shared/netkey.h) */
	unsigned ping_interval;      /* "ping-interval", s, 300; 0 = off */
	unsigned ping_timeout;       /* "ping-timeout", s, 60 */
	unsigned caps_timeout;       /* "caps-timeout", s, 30: how long a
	                                client has to answer the disco#info
	                                that resolves its XEP-0115 ver */
	unsigned mam_page_size;      /* "mam-page-size", 100: most results
	                                per archive query (XEP-0313) */
	unsigned mam_retention;      /* "mam-retention", s, 0 = keep the
	                                archive forever */
	unsigned resume_timeout;     /* "resume-timeout", s, 300: how long a
	                                session whose connection died waits
	                                for its client (XEP-0198); 0 = no
	                                resumption */
	unsigned fast_token_lifetime; /* "fast-token-lifetime", s, 14 days:
	                                how long a XEP-0484 token is good */
	size_t sm_queue;             /* "sm-queue", 1048576: bytes sent and
	                                not acknowledged per session (also
	                                while waiting) before it ends */
	unsigned sm_ack_stanzas;     /* "sm-ack-stanzas", 5: request an ack
	                                after this many; 0 = never by count */
	unsigned sm_ack_seconds;     /* "sm-ack-seconds", 30: ... or once the
	                                oldest unacknowledged is this old */
	unsigned csi_queue;          /* "csi-queue", 256: stanzas held for an
	                                inactive client (XEP-0352) before
	                                they all go; 0 = hold nothing */
	size_t csi_queue_size;       /* "csi-queue-size", 131072: ... or
	                                bytes */
	unsigned pep_nodes;          /* "pep-nodes", 100: PEP nodes per
	                                account (XEP-0163) */
	unsigned pep_items;          /* "pep-items", 256: items a node keeps
	                                at most (what max_items "max" means) */
	size_t pep_item_size;        /* "pep-item-size", 262144: bytes of one
	                                item's payload (and within
	                                stanza-size) */
	size_t pep_size;             /* "pep-size", 8388608: bytes of all an
	                                account's stored items */
	unsigned muc_rooms_per_hour; /* "muc-rooms-per-hour", 10: rooms one
	                                account may create (XEP-0045); 0 =
	                                no limit */
	unsigned muc_occupants;      /* "muc-occupants", 1000: occupants of
	                                any room (the ceiling of maxusers) */
	unsigned muc_messages_per_second; /* "muc-messages-per-second", 10:
	                                groupchat messages per occupant,
	                                with a burst of twice that; 0 = no
	                                limit */
	size_t muc_nick_length;      /* "muc-nick-length", 64 bytes */
	size_t muc_subject_length;   /* "muc-subject-length", 1024 bytes */
	size_t muc_history_size;     /* "muc-history-size", 262144: bytes of
	                                history a room keeps in memory */
	unsigned muc_room_idle;      /* "muc-room-idle", s, 600: how long a
	                                persistent room without occupants
	                                stays in memory */
	unsigned http_header_timeout; /* "http-header-timeout", s, 10: from a
	                                request's first byte to the end of
	                                its headers, then 408 */
	unsigned http_idle_timeout;  /* "http-idle-timeout", s, 60: a
	                                keep-alive connection between
	                                requests, or a body that stalls */
	unsigned http_headers;       /* "http-headers", 64 fields at most */
	size_t http_header_size;     /* "http-header-size", 16384: request
	                                line and fields, bytes (431) */
	size_t upload_file_size;     /* "upload-file-size", 10 MiB: largest
	                                file (held in memory while it
	                                arrives) */
	size_t upload_quota;         /* "upload-quota", 1 GiB: one user's
	                                files together; 0 = no limit */
	unsigned upload_files_per_day; /* "upload-files-per-day", 100 slots
	                                per user in 24 hours; 0 = no limit */
	unsigned bosh_inactivity;    /* "bosh-inactivity", s, 60: a BOSH
	                                session with no request held ends
	                                (XEP-0124 'inactivity') */
	size_t upload_disk;          /* "upload-disk", 10 GiB: every file
	                                together; 0 = no limit */
	unsigned upload_expiry;      /* "upload-expiry", s, 30 days: files
	                                are deleted that long after their
	                                slot; 0 = kept */
	unsigned push_interval;      /* "push-interval", s, 5: at most one
	                                XEP-0357 notification per
	                                registration this often */
	unsigned push_registrations; /* "push-registrations", 20 per
	                                account */
	unsigned push_rate;          /* "push-rate", 100 notifications per
	                                second from the whole server; 0 =
	                                no limit */
	/* XEP-0065 proxy (net/proxy65.c). */
	unsigned proxy65_timeout;    /* "proxy65-timeout", s, 60: from a
	                                SOCKS5 connection to its activation */
	unsigned proxy65_idle;       /* "proxy65-idle-timeout", s, 300: an
	                                active stream that moves no byte;
	                                0 = off */
	unsigned proxy65_streams;    /* "proxy65-streams", 256: active
	                                streams together; 0 = no limit */
	unsigned proxy65_user_streams; /* "proxy65-user-streams", 8: active
	                                streams one account activated;
	                                0 = no limit */
	unsigned proxy65_pending;    /* "proxy65-pending", 512: SOCKS5
	                                connections not yet activated;
	                                0 = no limit */
	size_t proxy65_rate;         /* "proxy65-rate", bytes/s of all
	                                streams together; 0 = no limit */
	size_t proxy65_user_rate;    /* "proxy65-user-rate", bytes/s of one
	                                account's streams; 0 = no limit */
	size_t proxy65_stream_rate;  /* "proxy65-stream-rate", bytes/s of
	                                one stream; 0 = no limit */
};

/* "webchat PATH DIRECTORY [max-age DURATION]": a static directory (a
 * web client's files) served under PATH on the http(s) listeners. */
struct conf_webchat {
	char *path;             /* "/chat", or "/"; no trailing '/' else */
	char *dir;              /* the directory, as written */
	unsigned max_age;       /* Cache-Control max-age of files other than
	                           HTML, s; default 3600 */
};

/* An external service of XEP-0215: "stun HOST ..." or "turn HOST ...". */
enum conf_extdisco_type { EXTDISCO_STUN, EXTDISCO_TURN };
struct conf_extdisco {
	enum conf_extdisco_type type;
	char *host;             /* a host name or a numeric address */
	int port;               /* default 3478 */
	int tcp;                /* transport tcp, else udp */
	char *secret;           /* turn: coturn's static-auth-secret (the
	                           TURN REST API's shared secret) */
	unsigned ttl;           /* turn: s credentials are good for, 86400 */
};

/* XEP-0157 contact address ("contact TYPE URI"). */
struct conf_contact {
	char *type;     /* abuse, admin, feedback, sales, security, support */
	char *uri;
};

/* TLS 1.2: forward secrecy (ECDHE) and AEAD only, no static-RSA key
 * exchange, no CBC; the server's order.  xmppd.conf(5) says why there is
 * no DHE. */
#define CONF_TLS_CIPHERS                                                 \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"     \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"     \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

enum software_version {
	SOFTWARE_VERSION_OFF,    /* XEP-0092 not offered */
	SOFTWARE_VERSION_NO_OS,  /* name and version */
	SOFTWARE_VERSION_FULL,   /* name, version and operating system */
};

struct conf {
	char *source;                /* file name, or "(default)" */
	enum log_level log_level;    /* "log-level" */
	int log_syslog;              /* "log syslog|stderr" (stderr in -d) */
	char *storage;               /* "storage", database path */
	int storage_sync_full;       /* "storage-sync full|normal" */
	char *control_socket;        /* "control-socket" */
	char *control_group;         /* "control-group", NULL = daemon's */
	char *pidfile;               /* "pidfile", NULL = none */
	char *upload_url;            /* "upload-url": public base URL of
	                                XEP-0363 files, no trailing '/';
	                                NULL = no upload service */
	char *upload_dir;            /* "upload-dir": where files go;
	                                default: storage + "-upload" */
	char *proxy65_address;       /* "proxy65-address HOST [PORT]": the
	                                streamhost announced (XEP-0065
	                                §4); NULL: the listener's address,
	                                or the host's domain */
	int proxy65_port;            /* its PORT; 0: the listener's */
	char *user;                  /* "user", to drop to when root */
	char *tls_ciphers;           /* "tls-ciphers": TLS 1.2 suites in
	                                OpenSSL's syntax, CONF_TLS_CIPHERS */
	char *tls_ciphersuites;      /* "tls-ciphersuites": TLS 1.3; NULL =
	                                OpenSSL's default */
	char *tls_ca_file;           /* "tls-ca-file": PEM roots trusted for
	                                peers' certificates besides the
	                                system's store (s2s) */
	/* Server-to-server (stream/s2s.c). */
	int s2s_dialback;            /* "s2s-dialback on|off" (XEP-0220),
	                                default on */
	int s2s_secure_auth;         /* "s2s-secure-auth on|off": peers need
	                                a valid certificate; default off */
	struct conf_strlist s2s_insecure; /* "s2s-insecure-domain D": no TLS */
	struct conf_strlist s2s_allow;    /* "s2s-allow D": only these, if
	                                     any */
	struct conf_strlist s2s_deny;     /* "s2s-deny D": never these */
	char *dns_servers;           /* "dns-server ADDR[:PORT]", repeatable,
	                                joined with commas; NULL: the
	                                system's resolv.conf */
	unsigned scram_iterations;   /* "scram-iterations", 4096..1000000 */
	int workers;                 /* "workers", 1..64, default 2 */
	char *version_name;          /* reserved: XEP-0092 */
	int registration;            /* "registration on|off" (XEP-0077) */
	int archive;                 /* "archive on|off" (XEP-0313), on */
	int push_include_body;       /* "push-include-body on|off": XEP-0357
	                                notifications carry the last
	                                message's body, off */
	int push_include_sender;     /* "push-include-sender on|off": ...
	                                and its sender, on */
	enum software_version software_version; /* "software-version
	                                full|no-os|off", default no-os */
	struct conf_contact *contacts; /* "contact TYPE URI", repeatable */
	size_t ncontacts;
	char **modules_off;          /* "module NAME off", repeatable */
	size_t nmodules_off;

	struct conf_net *trusted_proxies; /* "http-trusted-proxy", repeatable */
	size_t ntrusted_proxies;
	struct conf_metrics metrics;
	int websocket;               /* "websocket on|off": GET
	                                /xmpp-websocket on the http(s)
	                                listeners (RFC 7395), off */
	int bosh;                    /* "bosh on|off": POST /http-bind on
	                                the http(s) listeners (XEP-0124,
	                                XEP-0206), off */
	char **websocket_origins;    /* "websocket-origin", repeatable: the
	                                Origin values allowed; none: any */
	size_t nwebsocket_origins;

	struct conf_webchat *webchats; /* "webchat", repeatable */
	size_t nwebchats;
	struct conf_extdisco *extdisco; /* "stun", "turn", repeatable, in
	                                order */
	size_t nextdisco;

	struct conf_listener *listeners;
	size_t nlisteners;
	struct conf_host *hosts;
	size_t nhosts;
	struct conf_component *components;
	size_t ncomponents;
	struct conf_limits limits;
};

/*
 * Parse text (name is used in messages).  On error returns NULL and writes
 * "name:line: message" into err.  Relative paths are kept as written
 * (relative to the daemon's working directory).
 */
struct conf *conf_parse(const char *name, const char *text, char *err,
    size_t errlen);
/* Read and parse a file; errors as above ("path: cannot read: ..."). */
struct conf *conf_load(const char *path, char *err, size_t errlen);
void conf_free(struct conf *c);
/* Whether "module NAME off" turns the module off. */
int conf_module_off(const struct conf *c, const char *name);
/* Whether an HTTP Host names this server: a host, an upload service
 * domain, or the host of upload-url (case-insensitive). */
int conf_http_host_known(const struct conf *c, const char *name);
/* The first "listen proxy65" listener, or NULL: no proxy runs. */
const struct conf_listener *conf_proxy65_listener(const struct conf *c);
/* The host entry for a (prepared) domain, or NULL. */
const struct conf_host *conf_host_find(const struct conf *c,
    const char *domain);

/* The component block for a (prepared) domain, or NULL. */
const struct conf_component *conf_component_find(const struct conf *c,
    const char *domain);
/* "c2s", "c2s-tls", "http", "https", "component" or "proxy65". */
const char *conf_listen_kind_name(enum listen_kind kind);
/* Whether ip (numeric) is within an "http-trusted-proxy" network. */
int conf_trusted_proxy(const struct conf *c, const char *ip);
/* Parse "ADDR" or "ADDR/PREFIX" into n (text set, caller frees); -1 if
 * invalid. */
int conf_net_parse(const char *s, struct conf_net *n);
/* Whether the numeric address ip is within n. */
int conf_net_match(const struct conf_net *n, const char *ip);

extern const char conf_default_text[];

#endif
