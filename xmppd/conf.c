/*
 * xmppd.conf parsing: a line lexer (words, quoted strings, "{" at the end of
 * a line, "}" alone on a line), one option table per context (top level,
 * limits block, host block) and the checks that need the whole file.  The
 * grammar and every option are specified in xmppd.conf(5).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "conf.h"
#include "jid.h"
#include "xmalloc.h"

#define CONF_FILE_MAX (16u * 1024 * 1024)
#define KIB 1024ull
#define MIB (1024ull * 1024)

#define DEFAULT_STORAGE "var/xmppd.db"
#define DEFAULT_CONTROL_SOCKET "var/xmppd.sock"

const char conf_default_text[] =
    "# xmppd embedded default configuration (see xmppd.conf(5)).\n"
    "log-level info\n"
    "storage \"var/xmppd.db\"\n"
    "control-socket \"var/xmppd.sock\"\n"
    "pidfile \"var/xmppd.pid\"\n"
    "listen c2s 5222 starttls required\n"
    "listen c2s-tls 5223\n"
    "listen http 5280 address 127.0.0.1\n"
    "listen https 5443\n"
    "listen proxy65 7777\n"
    "websocket on\n"
    "upload-url \"https://localhost:5443\"\n"
    "upload-dir \"var/upload\"\n"
    "metrics {\n"
    "\tlistener 5280\n"
    "}\n"
    "host \"localhost\" {\n"
    "\tcertificate \"var/localhost.crt\"\n"
    "\tkey \"var/localhost.key\"\n"
    "}\n";

/* One lexed line: its words and whether it opens or closes a block. */
struct line {
	int number;
	char **argv; /* argc words, pointing into words */
	size_t argc;
	size_t argcap;
	char *words; /* the unquoted words, NUL-separated */
	size_t wordscap;
	int opens;  /* the line ends with "{" */
	int closes; /* the line is "}" */
};

enum context { CTX_TOP, CTX_LIMITS, CTX_HOST, CTX_METRICS, CTX_COMPONENT };

struct parser;
struct option;

/* Apply a statement to base (struct conf, conf_limits or conf_host). */
typedef int (*option_fn)(
    struct parser *, const struct option *, void *, const struct line *);

struct option {
	const char *name;
	option_fn set;
	size_t offset;          /* of the field in base */
	unsigned long long min; /* numbers: allowed range */
	unsigned long long max;
	int block;  /* the statement opens a block */
	int repeat; /* may be given more than once */
};

#define OPTIONS_MAX 96

struct parser {
	const char *name;
	char *err;
	size_t errlen;
	struct conf *c;
	enum context ctx;
	int block_line;              /* the line that opened the block */
	int seen_top[OPTIONS_MAX];   /* line of first use, 0 = not seen */
	int seen_block[OPTIONS_MAX]; /* the same for the current block */
	int *listener_lines;         /* parallel to c->listeners */
	int *host_lines;             /* parallel to c->hosts */
	int *component_lines;        /* parallel to c->components */
	int *metrics_port_lines;     /* parallel to c->metrics.ports */
};

struct unit {
	const char *suffix;
	unsigned long long factor;
};

static const struct unit size_units[] = {
    {"K", KIB},
    {"M", MIB},
    {"G", 1024 * MIB},
    {NULL, 0},
};
static const struct unit duration_units[] = {
    {"s", 1},
    {"m", 60},
    {"h", 3600},
    {NULL, 0},
};
/* Long durations (retention) also take days. */
static const struct unit long_duration_units[] = {
    {"s", 1},
    {"m", 60},
    {"h", 3600},
    {"d", 86400},
    {NULL, 0},
};

static int set_log_level(
    struct parser *, const struct option *, void *, const struct line *);
static int set_log(
    struct parser *, const struct option *, void *, const struct line *);
static int set_storage_sync(
    struct parser *, const struct option *, void *, const struct line *);
static int set_string(
    struct parser *, const struct option *, void *, const struct line *);
static int set_uint(
    struct parser *, const struct option *, void *, const struct line *);
static int set_int(
    struct parser *, const struct option *, void *, const struct line *);
static int set_size(
    struct parser *, const struct option *, void *, const struct line *);
static int set_duration(
    struct parser *, const struct option *, void *, const struct line *);
static int set_long_duration(
    struct parser *, const struct option *, void *, const struct line *);
static int set_on_off(
    struct parser *, const struct option *, void *, const struct line *);
static int set_software_version(
    struct parser *, const struct option *, void *, const struct line *);
static int set_tls_ciphers(
    struct parser *, const struct option *, void *, const struct line *);
static int handle_contact(
    struct parser *, const struct option *, void *, const struct line *);
static int handle_module(
    struct parser *, const struct option *, void *, const struct line *);
static int handle_listen(
    struct parser *, const struct option *, void *, const struct line *);
static int handle_limits(
    struct parser *, const struct option *, void *, const struct line *);
static int handle_component(
    struct parser *, const struct option *, void *, const struct line *);
static int handle_host(
    struct parser *, const struct option *, void *, const struct line *);
static int handle_upload(struct parser *, const struct option *, void *,
    const struct line *);
static int set_upload_url(struct parser *, const struct option *, void *,
    const struct line *);
static int handle_muc(
    struct parser *, const struct option *, void *, const struct line *);
static int handle_proxy65(
    struct parser *, const struct option *, void *, const struct line *);
static int set_proxy65_address(
    struct parser *, const struct option *, void *, const struct line *);
static int handle_trusted_proxy(
    struct parser *, const struct option *, void *, const struct line *);
static int handle_metrics(
    struct parser *, const struct option *, void *, const struct line *);
static int handle_websocket_origin(
    struct parser *, const struct option *, void *, const struct line *);
static int set_see_other_host(struct parser *ps, const struct option *o,
    void *base, const struct line *ln);
static int handle_see_other_uri(struct parser *ps, const struct option *o,
    void *base, const struct line *ln);
static void strlist_free(struct conf_strlist *l);
static int handle_s2s_domain(struct parser *ps, const struct option *o,
    void *base, const struct line *ln);
static int handle_dns_server(struct parser *ps, const struct option *o,
    void *base, const struct line *ln);
static int set_bosh_url(struct parser *ps, const struct option *o,
    void *base, const struct line *ln);
static int set_websocket_url(
    struct parser *, const struct option *, void *, const struct line *);
static int handle_metrics_listener(
    struct parser *, const struct option *, void *, const struct line *);
static int handle_webchat(
    struct parser *, const struct option *, void *, const struct line *);
static int handle_extdisco(
    struct parser *, const struct option *, void *, const struct line *);
static int handle_metrics_token(
    struct parser *, const struct option *, void *, const struct line *);

#define CONF_FIELD(f) offsetof(struct conf, f)
#define LIMIT_FIELD(f) offsetof(struct conf_limits, f)
#define HOST_FIELD(f) offsetof(struct conf_host, f)
#define COMPONENT_FIELD(f) offsetof(struct conf_component, f)

static const struct option top_options[] = {
    {"log-level", set_log_level, CONF_FIELD(log_level), 0, 0, 0, 0},
    {"log", set_log, CONF_FIELD(log_syslog), 0, 0, 0, 0},
    {"storage", set_string, CONF_FIELD(storage), 0, 0, 0, 0},
    {"storage-sync", set_storage_sync, CONF_FIELD(storage_sync_full), 0, 0, 0,
        0},
    {"control-socket", set_string, CONF_FIELD(control_socket), 0, 0, 0, 0},
    {"control-group", set_string, CONF_FIELD(control_group), 0, 0, 0, 0},
    {"pidfile", set_string, CONF_FIELD(pidfile), 0, 0, 0, 0},
    {"upload-url", set_upload_url, CONF_FIELD(upload_url), 0, 0, 0, 0},
    {"upload-dir", set_string, CONF_FIELD(upload_dir), 0, 0, 0, 0},
    {"proxy65-address", set_proxy65_address, CONF_FIELD(proxy65_address), 0,
        0, 0, 0},
    {"user", set_string, CONF_FIELD(user), 0, 0, 0, 0},
    {"tls-ciphers", set_tls_ciphers, CONF_FIELD(tls_ciphers), 0, 0, 0, 0},
    {"tls-ciphersuites", set_tls_ciphers, CONF_FIELD(tls_ciphersuites), 0, 0,
        0, 0},
    {"tls-ca-file", set_string, CONF_FIELD(tls_ca_file), 0, 0, 0, 0},
    {"s2s-dialback", set_on_off, CONF_FIELD(s2s_dialback), 0, 0, 0, 0},
    {"s2s-secure-auth", set_on_off, CONF_FIELD(s2s_secure_auth), 0, 0, 0, 0},
    {"s2s-insecure-domain", handle_s2s_domain, CONF_FIELD(s2s_insecure), 0,
        0, 0, 1},
    {"s2s-allow", handle_s2s_domain, CONF_FIELD(s2s_allow), 0, 0, 0, 1},
    {"s2s-deny", handle_s2s_domain, CONF_FIELD(s2s_deny), 0, 0, 0, 1},
    {"dns-server", handle_dns_server, 0, 0, 0, 0, 1},
    {"scram-iterations", set_uint, CONF_FIELD(scram_iterations), 4096, 1000000,
        0, 0},
    {"workers", set_int, CONF_FIELD(workers), 1, 64, 0, 0},
    {"registration", set_on_off, CONF_FIELD(registration), 0, 0, 0, 0},
    {"archive", set_on_off, CONF_FIELD(archive), 0, 0, 0, 0},
    {"push-include-body", set_on_off, CONF_FIELD(push_include_body), 0, 0, 0,
        0},
    {"push-include-sender", set_on_off, CONF_FIELD(push_include_sender), 0, 0,
        0, 0},
    {"software-version", set_software_version, CONF_FIELD(software_version),
        0, 0, 0, 0},
    {"contact", handle_contact, 0, 0, 0, 0, 1},
    {"module", handle_module, 0, 0, 0, 0, 1},
    {"listen", handle_listen, 0, 0, 0, 0, 1},
    {"http-trusted-proxy", handle_trusted_proxy, 0, 0, 0, 0, 1},
    {"metrics", handle_metrics, 0, 0, 0, 1, 0},
    {"websocket", set_on_off, CONF_FIELD(websocket), 0, 0, 0, 0},
    {"bosh", set_on_off, CONF_FIELD(bosh), 0, 0, 0, 0},
    {"websocket-origin", handle_websocket_origin, 0, 0, 0, 0, 1},
    {"webchat", handle_webchat, 0, 0, 0, 0, 1},
    {"stun", handle_extdisco, 0, 0, 0, 0, 1},
    {"turn", handle_extdisco, 0, 0, 0, 0, 1},
    {"limits", handle_limits, 0, 0, 0, 1, 0},
    {"host", handle_host, 0, 0, 0, 1, 1},
    {"component", handle_component, 0, 0, 0, 1, 1},
    {NULL, NULL, 0, 0, 0, 0, 0},
};

/* Ranges are part of the contract documented in xmppd.conf(5). */
static const struct option limit_options[] = {
    /* RFC 6120 §13.12 item 4: accept stanzas of at least 10000 bytes. */
    {"stanza-size", set_size, LIMIT_FIELD(stanza_size), 10000, 16 * MIB, 0, 0},
    {"preauth-stanza-size", set_size, LIMIT_FIELD(preauth_stanza_size), KIB,
        16 * MIB, 0, 0},
    {"stanza-memory", set_size, LIMIT_FIELD(stanza_memory), 64 * KIB,
        1024 * MIB, 0, 0},
    {"depth", set_uint, LIMIT_FIELD(depth), 8, 1024, 0, 0},
    {"attributes", set_uint, LIMIT_FIELD(attributes), 16, 1024, 0, 0},
    {"output-buffer", set_size, LIMIT_FIELD(output_high), 4 * KIB, 1024 * MIB,
        0, 0},
    {"output-max", set_size, LIMIT_FIELD(output_max), 4 * KIB, 1024 * MIB, 0,
        0},
    {"sessions-per-user", set_uint, LIMIT_FIELD(sessions_per_user), 1, 1000, 0,
        0},
    {"connections-per-ip", set_uint, LIMIT_FIELD(connections_per_ip), 0,
        1000000, 0, 0},
    {"auth-failures-per-ip", set_uint, LIMIT_FIELD(auth_failures_per_ip), 1,
        1000000, 0, 0},
    {"auth-ban-time", set_duration, LIMIT_FIELD(auth_ban_time), 0, 86400, 0,
        0},
    {"preauth-connections-per-ip", set_uint,
        LIMIT_FIELD(preauth_connections_per_ip), 0, 1000000, 0, 0},
    {"stanzas-per-second", set_uint, LIMIT_FIELD(stanzas_per_second), 0,
        1000000, 0, 0},
    {"stanza-burst", set_uint, LIMIT_FIELD(stanza_burst), 1, 1000000, 0, 0},
    {"bytes-per-second", set_size, LIMIT_FIELD(bytes_per_second), 0,
        1024 * MIB, 0, 0},
    {"byte-burst", set_size, LIMIT_FIELD(byte_burst), KIB, 1024 * MIB, 0, 0},
    {"s2s-stanzas-per-second", set_uint, LIMIT_FIELD(s2s_stanzas_per_second),
        0, 1000000, 0, 0},
    {"s2s-bytes-per-second", set_size, LIMIT_FIELD(s2s_bytes_per_second), 0,
        1024 * MIB, 0, 0},
    {"s2s-timeout", set_duration, LIMIT_FIELD(s2s_timeout), 1, 3600, 0, 0},
    {"handshake-timeout", set_duration, LIMIT_FIELD(handshake_timeout), 1, 3600,
        0, 0},
    {"preauth-timeout", set_duration, LIMIT_FIELD(preauth_timeout), 1, 3600, 0,
        0},
    {"idle-timeout", set_duration, LIMIT_FIELD(idle_timeout), 0, 7 * 86400, 0,
        0},
    {"bosh-inactivity", set_duration, LIMIT_FIELD(bosh_inactivity), 1, 3600,
        0, 0},
    {"max-connections", set_uint, LIMIT_FIELD(max_connections), 0, 10000000, 0,
        0},
    {"roster-size", set_uint, LIMIT_FIELD(roster_size), 1, 100000, 0, 0},
    {"storage-queue", set_uint, LIMIT_FIELD(storage_queue), 0, 10000000, 0,
        0},
    {"offline-messages", set_uint, LIMIT_FIELD(offline_messages), 0, 100000, 0,
        0},
    {"vcard-size", set_size, LIMIT_FIELD(vcard_size), KIB, 16 * MIB, 0, 0},
    {"private-size", set_size, LIMIT_FIELD(private_size), KIB, 16 * MIB, 0, 0},
    {"blocklist-size", set_uint, LIMIT_FIELD(blocklist_size), 1, 100000, 0, 0},
    {"registrations-per-ip", set_uint, LIMIT_FIELD(registrations_per_ip), 1,
        1000000, 0, 0},
    {"ipv4-prefix", set_uint, LIMIT_FIELD(ipv4_prefix), 16, 32, 0, 0},
    {"ipv6-prefix", set_uint, LIMIT_FIELD(ipv6_prefix), 32, 128, 0, 0},
    {"ping-interval", set_duration, LIMIT_FIELD(ping_interval), 0, 86400, 0,
        0},
    {"ping-timeout", set_duration, LIMIT_FIELD(ping_timeout), 1, 3600, 0, 0},
    {"caps-timeout", set_duration, LIMIT_FIELD(caps_timeout), 1, 3600, 0, 0},
    {"mam-page-size", set_uint, LIMIT_FIELD(mam_page_size), 1, 1000, 0, 0},
    {"mam-retention", set_long_duration, LIMIT_FIELD(mam_retention), 0,
        3650 * 86400ull, 0, 0},
    {"resume-timeout", set_duration, LIMIT_FIELD(resume_timeout), 0, 86400, 0,
        0},
    {"fast-token-lifetime", set_long_duration,
        LIMIT_FIELD(fast_token_lifetime), 1, 365 * 86400ull, 0, 0},
    {"sm-queue", set_size, LIMIT_FIELD(sm_queue), 16 * KIB, 1024 * MIB, 0, 0},
    {"sm-ack-stanzas", set_uint, LIMIT_FIELD(sm_ack_stanzas), 0, 100000, 0, 0},
    {"sm-ack-seconds", set_duration, LIMIT_FIELD(sm_ack_seconds), 0, 3600, 0,
        0},
    {"csi-queue", set_uint, LIMIT_FIELD(csi_queue), 0, 10000, 0, 0},
    {"csi-queue-size", set_size, LIMIT_FIELD(csi_queue_size), 4 * KIB,
        16 * MIB, 0, 0},
    {"pep-nodes", set_uint, LIMIT_FIELD(pep_nodes), 1, 10000, 0, 0},
    {"pep-items", set_uint, LIMIT_FIELD(pep_items), 1, 100000, 0, 0},
    {"pep-item-size", set_size, LIMIT_FIELD(pep_item_size), KIB, 16 * MIB, 0,
        0},
    {"pep-size", set_size, LIMIT_FIELD(pep_size), 64 * KIB, 1024 * MIB, 0, 0},
    {"muc-rooms-per-hour", set_uint, LIMIT_FIELD(muc_rooms_per_hour), 0,
        1000000, 0, 0},
    {"muc-occupants", set_uint, LIMIT_FIELD(muc_occupants), 1, 1000000, 0, 0},
    {"muc-messages-per-second", set_uint,
        LIMIT_FIELD(muc_messages_per_second), 0, 1000000, 0, 0},
    {"muc-nick-length", set_size, LIMIT_FIELD(muc_nick_length), 1, 1023, 0,
        0},
    {"muc-subject-length", set_size, LIMIT_FIELD(muc_subject_length), 1,
        64 * KIB, 0, 0},
    {"muc-history-size", set_size, LIMIT_FIELD(muc_history_size), 0,
        64 * MIB, 0, 0},
    {"muc-room-idle", set_duration, LIMIT_FIELD(muc_room_idle), 0, 86400, 0,
        0},
    {"http-header-timeout", set_duration, LIMIT_FIELD(http_header_timeout),
        1, 3600, 0, 0},
    {"http-idle-timeout", set_duration, LIMIT_FIELD(http_idle_timeout), 1,
        86400, 0, 0},
    {"http-headers", set_uint, LIMIT_FIELD(http_headers), 8, 1000, 0, 0},
    /* http-parser refuses more than 80 KiB of fields on its own. */
    {"http-header-size", set_size, LIMIT_FIELD(http_header_size), KIB,
        64 * KIB, 0, 0},
    {"upload-file-size", set_size, LIMIT_FIELD(upload_file_size), KIB,
        1024 * MIB, 0, 0},
    {"upload-quota", set_size, LIMIT_FIELD(upload_quota), 0,
        1024 * 1024 * MIB, 0, 0},
    {"upload-files-per-day", set_uint, LIMIT_FIELD(upload_files_per_day), 0,
        1000000, 0, 0},
    {"upload-disk", set_size, LIMIT_FIELD(upload_disk), 0,
        1024 * 1024 * 1024 * MIB, 0, 0},
    {"upload-expiry", set_long_duration, LIMIT_FIELD(upload_expiry), 0,
        3650 * 86400ull, 0, 0},
    {"push-interval", set_duration, LIMIT_FIELD(push_interval), 0, 3600, 0,
        0},
    {"push-registrations", set_uint, LIMIT_FIELD(push_registrations), 1, 1000,
        0, 0},
    {"push-rate", set_uint, LIMIT_FIELD(push_rate), 0, 1000000, 0, 0},
    {"proxy65-timeout", set_duration, LIMIT_FIELD(proxy65_timeout), 1, 3600,
        0, 0},
    {"proxy65-idle-timeout", set_duration, LIMIT_FIELD(proxy65_idle), 0,
        86400, 0, 0},
    {"proxy65-streams", set_uint, LIMIT_FIELD(proxy65_streams), 0, 1000000,
        0, 0},
    {"proxy65-user-streams", set_uint, LIMIT_FIELD(proxy65_user_streams), 0,
        100000, 0, 0},
    {"proxy65-pending", set_uint, LIMIT_FIELD(proxy65_pending), 0, 1000000,
        0, 0},
    {"proxy65-rate", set_size, LIMIT_FIELD(proxy65_rate), 0, 1024 * 1024 * MIB,
        0, 0},
    {"proxy65-user-rate", set_size, LIMIT_FIELD(proxy65_user_rate), 0,
        1024 * 1024 * MIB, 0, 0},
    {"proxy65-stream-rate", set_size, LIMIT_FIELD(proxy65_stream_rate), 0,
        1024 * 1024 * MIB, 0, 0},
    {NULL, NULL, 0, 0, 0, 0, 0},
};

static const struct option host_options[] = {
    {"certificate", set_string, HOST_FIELD(certificate), 0, 0, 0, 0},
    {"key", set_string, HOST_FIELD(key), 0, 0, 0, 0},
    {"muc", handle_muc, 0, 0, 0, 0, 1},
    {"websocket-url", set_websocket_url, HOST_FIELD(websocket_url), 0, 0, 0,
        0},
    {"bosh-url", set_bosh_url, HOST_FIELD(bosh_url), 0, 0, 0, 0},
    {"upload", handle_upload, 0, 0, 0, 0, 0},
    {"proxy65", handle_proxy65, 0, 0, 0, 0, 0},
    {"see-other-host", set_see_other_host, HOST_FIELD(see_other_host), 0, 0,
        0, 0},
    {"see-other-uri", handle_see_other_uri, 0, 0, 0, 0, 1},
    {NULL, NULL, 0, 0, 0, 0, 0},
};

static const struct option component_options[] = {
    {"secret", set_string, COMPONENT_FIELD(secret), 0, 0, 0, 0},
    {"stanzas-per-second", set_uint, COMPONENT_FIELD(stanzas_per_second), 0,
        1000000, 0, 0},
    {"stanza-burst", set_uint, COMPONENT_FIELD(stanza_burst), 1, 1000000, 0,
        0},
    {NULL, NULL, 0, 0, 0, 0, 0},
};

static const struct option metrics_options[] = {
    {"listener", handle_metrics_listener, 0, 0, 0, 0, 1},
    {"token", handle_metrics_token, 0, 0, 0, 0, 0},
    {"token-sha256", handle_metrics_token, 0, 0, 0, 0, 0},
    {NULL, NULL, 0, 0, 0, 0, 0},
};

/* seen_top[] and seen_block[] are indexed by these tables. */
_Static_assert(sizeof(top_options) / sizeof(top_options[0]) <= OPTIONS_MAX,
    "OPTIONS_MAX too small for top_options");
_Static_assert(sizeof(limit_options) / sizeof(limit_options[0]) <=
        OPTIONS_MAX, "OPTIONS_MAX too small for limit_options");
_Static_assert(sizeof(host_options) / sizeof(host_options[0]) <= OPTIONS_MAX,
    "OPTIONS_MAX too small for host_options");
_Static_assert(sizeof(metrics_options) / sizeof(metrics_options[0]) <=
        OPTIONS_MAX, "OPTIONS_MAX too small for metrics_options");

/* Write "name:line: message" into the caller's buffer; returns -1. */
static int __attribute__((format(printf, 3, 4)))
parse_error(struct parser *ps, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ps->err == NULL || ps->errlen == 0)
		return -1;
	n = snprintf(ps->err, ps->errlen, "%s:%d: ", ps->name, line);
	if (n < 0 || (size_t)n >= ps->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * Lexing.  Blank space is space, tab and CR (so CRLF files work).  "#"
 * outside a string starts a comment.  A word is a run of anything but
 * blank space, control characters and the specials # " { } ;.  A string is
 * double-quoted on one line with \" and \\ as the only escapes.
 */

static int
is_blank(int ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

static int
is_control(int ch)
{
	return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}

static int
is_word_char(int ch)
{
	return !is_blank(ch) && !is_control(ch) && ch != '#' && ch != '"' &&
	       ch != '{' && ch != '}' && ch != ';';
}

static void
line_reserve(struct line *ln, size_t n)
{
	if (ln->wordscap < n + 1) {
		ln->wordscap = n + 1;
		ln->words = xrealloc(ln->words, ln->wordscap);
	}
	ln->argc = 0;
	ln->opens = ln->closes = 0;
}

static void
line_push(struct line *ln, char *word)
{
	if (ln->argc == ln->argcap) {
		ln->argcap = ln->argcap ? ln->argcap * 2 : 8;
		ln->argv =
		    xreallocarray(ln->argv, ln->argcap, sizeof(*ln->argv));
	}
	ln->argv[ln->argc++] = word;
}

/* Unquote the string starting at s[*i] (the opening quote) into *w. */
static int
lex_string(struct parser *ps, const struct line *ln, const char *s, size_t n,
    size_t *i, char **w)
{
	unsigned char ch;

	for ((*i)++; *i < n; (*i)++) {
		ch = (unsigned char)s[*i];
		if (ch == '\r' && *i + 1 == n)
			break; /* CR LF ends the line */
		if (ch == '"') {
			(*i)++;
			return 0;
		}
		if (ch == '\\') {
			if (*i + 1 == n)
				break;
			ch = (unsigned char)s[++*i];
			if (ch != '"' && ch != '\\') {
				if (is_control(ch) || ch >= 0x80)
					return parse_error(ps, ln->number,
					    "invalid escape in string (only "
					    "\\\" and \\\\ are allowed)");
				return parse_error(ps, ln->number,
				    "invalid escape '\\%c' in string (only "
				    "\\\" and \\\\ are allowed)",
				    ch);
			}
		} else if (is_control(ch))
			return parse_error(ps, ln->number,
			    "invalid character 0x%02x in string", ch);
		*(*w)++ = (char)ch;
	}
	return parse_error(ps, ln->number, "unterminated string");
}

/* Split the n bytes of line s (without its newline) into ln. */
static int
lex_line(struct parser *ps, struct line *ln, const char *s, size_t n)
{
	char *w, *word;
	size_t i = 0;
	unsigned char ch;

	line_reserve(ln, n);
	w = ln->words;
	while (i < n) {
		ch = (unsigned char)s[i];
		if (is_blank(ch)) {
			i++;
			continue;
		}
		if (ch == '#')
			break;
		if (ln->opens)
			return parse_error(ps, ln->number,
			    "unexpected text after '{' (it must end the line)");
		if (ln->closes)
			return parse_error(
			    ps, ln->number, "'}' must be on a line of its own");
		if (ch == '{') {
			if (ln->argc == 0)
				return parse_error(ps, ln->number,
				    "'{' must end the line of the statement "
				    "that opens the block");
			ln->opens = 1;
			i++;
			continue;
		}
		if (ch == '}') {
			if (ln->argc > 0)
				return parse_error(ps, ln->number,
				    "'}' must be on a line of its own");
			ln->closes = 1;
			i++;
			continue;
		}
		if (ch == ';')
			return parse_error(ps, ln->number,
			    "unexpected ';' (one statement per line, "
			    "no separators)");
		if (is_control(ch))
			return parse_error(
			    ps, ln->number, "invalid character 0x%02x", ch);
		word = w;
		if (ch == '"') {
			if (lex_string(ps, ln, s, n, &i, &w) == -1)
				return -1;
			*w++ = '\0';
			if (i < n &&
			    (is_word_char((unsigned char)s[i]) || s[i] == '"'))
				return parse_error(ps, ln->number,
				    "missing space after string \"%s\"", word);
		} else {
			while (i < n && is_word_char((unsigned char)s[i]))
				*w++ = s[i++];
			*w++ = '\0';
			if (i < n && s[i] == '"')
				return parse_error(ps, ln->number,
				    "unexpected '\"' after '%s' (quote the "
				    "whole word)",
				    word);
		}
		line_push(ln, word);
	}
	return 0;
}

/*
 * Values.
 */

static int
check_args(struct parser *ps, const struct line *ln, size_t min, size_t max)
{
	if (ln->argc - 1 < min)
		return parse_error(
		    ps, ln->number, "missing argument to '%s'", ln->argv[0]);
	if (ln->argc - 1 > max)
		return parse_error(ps, ln->number,
		    "unexpected argument '%s' to '%s'", ln->argv[max + 1],
		    ln->argv[0]);
	return 0;
}

/*
 * Parse a decimal number with an optional suffix from units (NULL: none).
 * Returns 0, -1 on bad syntax (sign, other characters, unknown suffix) or
 * -2 if the value does not fit in 64 bits.
 */
static int
parse_number(const char *s, const struct unit *units, unsigned long long *out)
{
	unsigned long long v = 0, factor = 1;
	const struct unit *u;
	int overflow = 0;
	const char *p;

	if (*s < '0' || *s > '9')
		return -1;
	for (p = s; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (ULLONG_MAX - d) / 10)
			overflow = 1;
		else
			v = v * 10 + d;
	}
	if (*p != '\0') {
		for (u = units; u != NULL && u->suffix != NULL; u++)
			if (strcmp(p, u->suffix) == 0)
				break;
		if (u == NULL || u->suffix == NULL)
			return -1;
		factor = u->factor;
	}
	if (overflow || v > ULLONG_MAX / factor)
		return -2;
	*out = v * factor;
	return 0;
}

/*
 * Parse s as a number in units for what ("'workers'", "listen port") and
 * check it against [min, max].
 */
static int
get_number(struct parser *ps, int line, const char *what, const char *s,
    const struct unit *units, unsigned long long min, unsigned long long max,
    unsigned long long *out)
{
	const char *unit_name = "";
	int rc;

	rc = parse_number(s, units, out);
	if (rc == -1) {
		if (units == size_units)
			return parse_error(ps, line,
			    "invalid size '%s' for %s "
			    "(bytes, or a number with suffix K or M)",
			    s, what);
		if (units == duration_units)
			return parse_error(ps, line,
			    "invalid duration '%s' for "
			    "%s (seconds, or a number with suffix s, m or h)",
			    s, what);
		if (units == long_duration_units)
			return parse_error(ps, line,
			    "invalid duration '%s' for %s (seconds, or a "
			    "number with suffix s, m, h or d)",
			    s, what);
		return parse_error(
		    ps, line, "invalid number '%s' for %s", s, what);
	}
	if (units == size_units)
		unit_name = " bytes";
	else if (units == duration_units || units == long_duration_units)
		unit_name = " seconds";
	if (rc == -2 || *out < min || *out > max)
		return parse_error(ps, line,
		    "%s out of range: %s (allowed %llu..%llu%s)", what, s, min,
		    max, unit_name);
	return 0;
}

static int
get_option_number(struct parser *ps, const struct option *o,
    const struct line *ln, const struct unit *units, unsigned long long *out)
{
	char what[64];

	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	snprintf(what, sizeof(what), "'%s'", o->name);
	return get_number(
	    ps, ln->number, what, ln->argv[1], units, o->min, o->max, out);
}

/* The index of word in choices (NULL-terminated), or -1 after an error. */
static int
get_choice(struct parser *ps, const struct line *ln, const char *word,
    const char *const *choices, const char *expected)
{
	int i;

	for (i = 0; choices[i] != NULL; i++)
		if (strcmp(word, choices[i]) == 0)
			return i;
	return parse_error(ps, ln->number,
	    "invalid value '%s' for '%s' (expected %s)", word, ln->argv[0],
	    expected);
}

#define FIELD(base, o, type) ((type *)(void *)((char *)(base) + (o)->offset))

static int
set_log_level(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	if (log_level_parse(ln->argv[1], FIELD(base, o, enum log_level)) == -1)
		return parse_error(ps, ln->number,
		    "invalid value '%s' for "
		    "'log-level' (expected error, warn, info or debug)",
		    ln->argv[1]);
	return 0;
}

static int
set_log(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	static const char *const choices[] = {"stderr", "syslog", NULL};
	int i;

	if (check_args(ps, ln, 1, 1) == -1 ||
	    (i = get_choice(
	         ps, ln, ln->argv[1], choices, "stderr or syslog")) == -1)
		return -1;
	*FIELD(base, o, int) = i;
	return 0;
}

static int
set_on_off(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	static const char *const choices[] = {"off", "on", NULL};
	int i;

	if (check_args(ps, ln, 1, 1) == -1 ||
	    (i = get_choice(ps, ln, ln->argv[1], choices, "on or off")) == -1)
		return -1;
	*FIELD(base, o, int) = i;
	return 0;
}

static int
set_software_version(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	/* Order matches enum software_version. */
	static const char *const choices[] = {"off", "no-os", "full", NULL};
	int i;

	if (check_args(ps, ln, 1, 1) == -1 ||
	    (i = get_choice(ps, ln, ln->argv[1], choices,
	         "full, no-os or off")) == -1)
		return -1;
	*FIELD(base, o, int) = i;
	return 0;
}

/*
 * Whether OpenSSL selects a cipher from s: TLS 1.2 suites in cipher-list
 * syntax (SSL_CTX_set_cipher_list fails when none is left), or TLS 1.3
 * suite names (SSL_CTX_set_ciphersuites skips unknown names, so count).
 */
static int
ciphers_select(SSL_CTX *ctx, const char *s, int tls13)
{
	STACK_OF(SSL_CIPHER) *sk;
	int n = 0;

	if ((tls13 ? SSL_CTX_set_ciphersuites(ctx, s) :
	    SSL_CTX_set_cipher_list(ctx, s)) != 1) {
		ERR_clear_error();
		return 0;
	}
	if (!tls13)
		return 1;
	sk = SSL_CTX_get_ciphers(ctx);
	for (int i = 0; i < sk_SSL_CIPHER_num(sk); i++)
		n += SSL_CIPHER_get_kx_nid(sk_SSL_CIPHER_value(sk, i)) ==
		    NID_kx_any;
	return n > 0;
}

/*
 * "tls-ciphers" (TLS 1.2) and "tls-ciphersuites" (TLS 1.3), checked as
 * tls.c will apply them: the whole string must select a suite, and so
 * must each name in it (a typo would silently leave a suite out);
 * elements that only modify the list (!X, -X, +X, @STRENGTH) are not
 * looked at alone.
 */
static int
set_tls_ciphers(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	int tls13 = o->offset == CONF_FIELD(tls_ciphersuites);
	char *copy, *word, *save = NULL;
	SSL_CTX *ctx;
	int rc = 0;

	if (set_string(ps, o, base, ln) == -1)
		return -1;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		ERR_clear_error();
		return parse_error(ps, ln->number, "cannot check '%s': "
		    "OpenSSL cannot create a context", o->name);
	}
	if (!ciphers_select(ctx, ln->argv[1], tls13))
		rc = parse_error(ps, ln->number, "invalid value '%s' for '%s' "
		    "(OpenSSL selects no %s cipher suite from it)",
		    ln->argv[1], o->name, tls13 ? "TLS 1.3" : "TLS 1.2");
	copy = xstrdup(ln->argv[1]);
	for (word = strtok_r(copy, ": ,;", &save); rc == 0 && word != NULL;
	    word = strtok_r(NULL, ": ,;", &save))
		if (strchr("!-+@", word[0]) == NULL &&
		    !ciphers_select(ctx, word, tls13))
			rc = parse_error(ps, ln->number, "'%s' in '%s' is no "
			    "%s cipher suite OpenSSL knows", word, o->name,
			    tls13 ? "TLS 1.3" : "TLS 1.2");
	free(copy);
	SSL_CTX_free(ctx);
	return rc;
}

/* XEP-0157 §2: the address kinds of the serverinfo form. */
static int
handle_contact(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	static const char *const types[] = {"abuse", "admin", "feedback",
	    "sales", "security", "support", NULL};
	struct conf *c = ps->c;

	if (check_args(ps, ln, 2, 2) == -1 ||
	    get_choice(ps, ln, ln->argv[1], types,
	        "abuse, admin, feedback, sales, security or support") == -1)
		return -1;
	if (strchr(ln->argv[2], ':') == NULL)
		return parse_error(ps, ln->number,
		    "contact address '%s' is not a URI (mailto:, xmpp:, https:)",
		    ln->argv[2]);
	c->contacts = xreallocarray(c->contacts, c->ncontacts + 1,
	    sizeof(*c->contacts));
	c->contacts[c->ncontacts].type = xstrdup(ln->argv[1]);
	c->contacts[c->ncontacts].uri = xstrdup(ln->argv[2]);
	c->ncontacts++;
	return 0;
}

/*
 * "module NAME on|off".  The names are checked against the module table
 * at start-up and reload (modules_check_conf), which conf.c does not
 * know; the last statement for a name wins.
 */
static int
handle_module(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	static const char *const choices[] = {"off", "on", NULL};
	struct conf *c = ps->c;
	size_t i;
	int on;

	if (check_args(ps, ln, 2, 2) == -1 ||
	    (on = get_choice(ps, ln, ln->argv[2], choices, "on or off")) == -1)
		return -1;
	for (i = 0; i < c->nmodules_off; i++)
		if (strcmp(c->modules_off[i], ln->argv[1]) == 0)
			break;
	if (on && i < c->nmodules_off) {
		free(c->modules_off[i]);
		c->modules_off[i] = c->modules_off[--c->nmodules_off];
	} else if (!on && i == c->nmodules_off) {
		c->modules_off = xreallocarray(c->modules_off,
		    c->nmodules_off + 1, sizeof(*c->modules_off));
		c->modules_off[c->nmodules_off++] = xstrdup(ln->argv[1]);
	}
	return 0;
}

int
conf_module_off(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->nmodules_off; i++)
		if (strcmp(c->modules_off[i], name) == 0)
			return 1;
	return 0;
}

static int
set_storage_sync(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	static const char *const choices[] = {"normal", "full", NULL};
	int i;

	if (check_args(ps, ln, 1, 1) == -1 ||
	    (i = get_choice(ps, ln, ln->argv[1], choices, "full or normal")) ==
	        -1)
		return -1;
	*FIELD(base, o, int) = i;
	return 0;
}

static int
set_string(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	char **field = FIELD(base, o, char *);

	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	if (ln->argv[1][0] == '\0')
		return parse_error(
		    ps, ln->number, "empty value for '%s'", o->name);
	free(*field);
	*field = xstrdup(ln->argv[1]);
	return 0;
}

static int
set_uint(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	unsigned long long v;

	if (get_option_number(ps, o, ln, NULL, &v) == -1)
		return -1;
	*FIELD(base, o, unsigned) = (unsigned)v;
	return 0;
}

static int
set_int(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	unsigned long long v;

	if (get_option_number(ps, o, ln, NULL, &v) == -1)
		return -1;
	*FIELD(base, o, int) = (int)v;
	return 0;
}

static int
set_size(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	unsigned long long v;

	if (get_option_number(ps, o, ln, size_units, &v) == -1)
		return -1;
	*FIELD(base, o, size_t) = (size_t)v;
	return 0;
}

static int
set_duration(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	unsigned long long v;

	if (get_option_number(ps, o, ln, duration_units, &v) == -1)
		return -1;
	*FIELD(base, o, unsigned) = (unsigned)v;
	return 0;
}

static int
set_long_duration(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	unsigned long long v;

	if (get_option_number(ps, o, ln, long_duration_units, &v) == -1)
		return -1;
	*FIELD(base, o, unsigned) = (unsigned)v;
	return 0;
}

/*
 * listen c2s|c2s-tls|http|https|component|proxy65 PORT [address ADDR]
 *     [starttls required|optional]
 */

const char *
conf_listen_kind_name(enum listen_kind kind)
{
	switch (kind) {
	case LISTEN_C2S:
		return "c2s";
	case LISTEN_C2S_TLS:
		return "c2s-tls";
	case LISTEN_HTTP:
		return "http";
	case LISTEN_HTTPS:
		return "https";
	case LISTEN_S2S:
		return "s2s";
	case LISTEN_S2S_TLS:
		return "s2s-tls";
	case LISTEN_COMPONENT:
		return "component";
	case LISTEN_PROXY65:
		return "proxy65";
	default:
		return "?";
	}
}

/* The canonical text of a numeric address or "*", or NULL if invalid. */
static char *
canonical_address(const char *s)
{
	unsigned char a[16];
	char out[INET6_ADDRSTRLEN];

	if (strcmp(s, "*") == 0)
		return xstrdup(s);
	if (inet_pton(AF_INET, s, a) == 1 &&
	    inet_ntop(AF_INET, a, out, sizeof(out)) != NULL)
		return xstrdup(out);
	if (inet_pton(AF_INET6, s, a) == 1 &&
	    inet_ntop(AF_INET6, a, out, sizeof(out)) != NULL)
		return xstrdup(out);
	return NULL;
}

static const char *
endpoint(char *buf, size_t len, const struct conf_listener *l)
{
	if (strchr(l->address, ':') != NULL)
		snprintf(buf, len, "[%s]:%d", l->address, l->port);
	else
		snprintf(buf, len, "%s:%d", l->address, l->port);
	return buf;
}

/*
 * Two listeners clash if they bind the same port on the same address, or
 * on any address when one is "*" (a dual-stack wildcard socket).
 */
static int
check_listener_unique(
    struct parser *ps, const struct line *ln, const struct conf_listener *l)
{
	const struct conf_listener *o;
	char a[INET6_ADDRSTRLEN + 16], b[INET6_ADDRSTRLEN + 16];
	size_t i;

	for (i = 0; i < ps->c->nlisteners; i++) {
		o = &ps->c->listeners[i];
		if (o->port != l->port)
			continue;
		if (strcmp(o->address, l->address) == 0)
			return parse_error(ps, ln->number,
			    "duplicate listener on %s (first at line %d)",
			    endpoint(a, sizeof(a), l), ps->listener_lines[i]);
		if (strcmp(o->address, "*") == 0 ||
		    strcmp(l->address, "*") == 0)
			return parse_error(ps, ln->number,
			    "listener on %s overlaps %s at line %d",
			    endpoint(a, sizeof(a), l),
			    endpoint(b, sizeof(b), o), ps->listener_lines[i]);
	}
	return 0;
}

/* Apply one "address ADDR" or "starttls MODE" pair to l. */
static int
listen_option(struct parser *ps, const struct line *ln, size_t i,
    struct conf_listener *l, int *seen_address, int *seen_starttls)
{
	static const char *const modes[] = {"optional", "required", NULL};
	const char *opt = ln->argv[i];
	int *seen, mode;

	if (strcmp(opt, "address") == 0)
		seen = seen_address;
	else if (strcmp(opt, "starttls") == 0) {
		if (l->kind != LISTEN_C2S)
			return parse_error(ps, ln->number,
			    "'starttls' applies only to c2s listeners");
		seen = seen_starttls;
	} else
		return parse_error(ps, ln->number,
		    "unknown listen option "
		    "'%s' (expected address or starttls)",
		    opt);
	if (*seen)
		return parse_error(ps, ln->number, "'%s' given twice", opt);
	*seen = 1;
	if (i + 1 >= ln->argc)
		return parse_error(
		    ps, ln->number, "missing value for '%s'", opt);
	if (seen == seen_address) {
		free(l->address);
		if ((l->address = canonical_address(ln->argv[i + 1])) == NULL)
			return parse_error(ps, ln->number,
			    "invalid address "
			    "'%s' (expected a numeric IPv4 or IPv6 address or "
			    "*)",
			    ln->argv[i + 1]);
		return 0;
	}
	for (mode = 0; modes[mode] != NULL; mode++)
		if (strcmp(ln->argv[i + 1], modes[mode]) == 0)
			break;
	if (modes[mode] == NULL)
		return parse_error(ps, ln->number,
		    "invalid value '%s' for "
		    "'starttls' (expected required or optional)",
		    ln->argv[i + 1]);
	l->starttls_required = mode;
	return 0;
}

static int
handle_listen(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	struct conf *c = ps->c;
	struct conf_listener l = {LISTEN_C2S, NULL, 0, 1};
	int seen_address = 0, seen_starttls = 0;
	unsigned long long port;
	size_t i;

	if (ln->argc < 3)
		return parse_error(ps, ln->number,
		    "missing argument to "
		    "'listen' (listen c2s|c2s-tls|http|https|s2s|s2s-tls|"
		    "component|proxy65 PORT)");
	for (l.kind = 0; l.kind < LISTEN__COUNT; l.kind++)
		if (strcmp(ln->argv[1], conf_listen_kind_name(l.kind)) == 0)
			break;
	if (l.kind == LISTEN__COUNT)
		return parse_error(ps, ln->number,
		    "invalid listener type '%s' (expected c2s, c2s-tls, "
		    "http, https, s2s, s2s-tls, component or proxy65)",
		    ln->argv[1]);
	if (get_number(ps, ln->number, "listen port", ln->argv[2], NULL, 1,
	        65535, &port) == -1)
		return -1;
	l.port = (int)port;
	/* Components authenticate with a shared secret over plain TCP
	 * (XEP-0114): loopback unless the file says otherwise. */
	l.address = xstrdup(l.kind == LISTEN_COMPONENT ? "127.0.0.1" : "*");
	for (i = 3; i < ln->argc; i += 2) {
		if (listen_option(
		        ps, ln, i, &l, &seen_address, &seen_starttls) == -1)
			goto fail;
	}
	if (l.kind != LISTEN_C2S)
		l.starttls_required = 0;
	if (check_listener_unique(ps, ln, &l) == -1)
		goto fail;
	c->listeners = xreallocarray(
	    c->listeners, c->nlisteners + 1, sizeof(*c->listeners));
	ps->listener_lines = xreallocarray(
	    ps->listener_lines, c->nlisteners + 1, sizeof(*ps->listener_lines));
	ps->listener_lines[c->nlisteners] = ln->number;
	c->listeners[c->nlisteners++] = l;
	return 0;
fail:
	free(l.address);
	return -1;
}

/*
 * Blocks.
 */

static void
open_block(struct parser *ps, const struct line *ln, enum context ctx)
{
	ps->ctx = ctx;
	ps->block_line = ln->number;
	memset(ps->seen_block, 0, sizeof(ps->seen_block));
}

static int
handle_limits(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	if (check_args(ps, ln, 0, 0) == -1)
		return -1;
	open_block(ps, ln, CTX_LIMITS);
	return 0;
}

static int
handle_host(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	struct conf *c = ps->c;
	char *name;
	size_t i;

	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	if ((name = jid_nameprep(ln->argv[1])) == NULL)
		return parse_error(
		    ps, ln->number, "invalid host name '%s'", ln->argv[1]);
	for (i = 0; i < c->nhosts; i++) {
		if (strcmp(c->hosts[i].name, name) == 0) {
			parse_error(ps, ln->number,
			    "duplicate host '%s' "
			    "(first at line %d)",
			    name, ps->host_lines[i]);
			free(name);
			return -1;
		}
	}
	c->hosts = xreallocarray(c->hosts, c->nhosts + 1, sizeof(*c->hosts));
	ps->host_lines = xreallocarray(
	    ps->host_lines, c->nhosts + 1, sizeof(*ps->host_lines));
	memset(&c->hosts[c->nhosts], 0, sizeof(c->hosts[0]));
	c->hosts[c->nhosts].name = name;
	ps->host_lines[c->nhosts++] = ln->number;
	open_block(ps, ln, CTX_HOST);
	return 0;
}

/*
 * component DOMAIN { secret "..." } (XEP-0114): the domain and every
 * subdomain of it are the component's.
 */
static int
handle_component(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	struct conf *c = ps->c;
	struct conf_component *k;
	char *name;
	size_t i;

	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	if ((name = jid_nameprep(ln->argv[1])) == NULL ||
	    strchr(name, '@') != NULL || strchr(name, '/') != NULL) {
		free(name);
		return parse_error(ps, ln->number,
		    "invalid component domain '%s'", ln->argv[1]);
	}
	for (i = 0; i < c->ncomponents; i++) {
		if (strcmp(c->components[i].domain, name) == 0) {
			parse_error(ps, ln->number,
			    "duplicate component '%s' (first at line %d)",
			    name, ps->component_lines[i]);
			free(name);
			return -1;
		}
	}
	c->components = xreallocarray(c->components, c->ncomponents + 1,
	    sizeof(*c->components));
	ps->component_lines = xreallocarray(ps->component_lines,
	    c->ncomponents + 1, sizeof(*ps->component_lines));
	k = &c->components[c->ncomponents];
	memset(k, 0, sizeof(*k));
	k->domain = name;
	k->stanzas_per_second = 500;
	k->stanza_burst = 2000;
	ps->component_lines[c->ncomponents++] = ln->number;
	open_block(ps, ln, CTX_COMPONENT);
	return 0;
}

/* Whether d is sub a subdomain of parent ("a.b" of "b"). */
static int
is_subdomain(const char *d, const char *parent)
{
	size_t n = strlen(d), m = strlen(parent);

	return n > m + 1 && d[n - m - 1] == '.' &&
	    strcmp(d + n - m, parent) == 0;
}

/* A component's domain may be no host, service or other component's,
 * and no host may lie under it (its subdomains are routed to it). */
static int
check_component_domains(struct parser *ps)
{
	struct conf *c = ps->c;

	for (size_t i = 0; i < c->ncomponents; i++) {
		const char *d = c->components[i].domain;

		for (size_t j = 0; j < c->nhosts; j++) {
			const struct conf_host *h = &c->hosts[j];
			int clash = strcmp(h->name, d) == 0 ||
			    is_subdomain(h->name, d) ||
			    (h->upload != NULL && c->upload_url != NULL &&
			    strcmp(h->upload, d) == 0);

			for (size_t m = 0; m < h->nmuc; m++)
				clash |= strcmp(h->muc[m], d) == 0;
			if (clash)
				return parse_error(ps, ps->component_lines[i],
				    "component domain '%s' is taken by host "
				    "'%s'", d, h->name);
		}
		for (size_t j = 0; j < c->ncomponents; j++)
			if (j != i && is_subdomain(d,
			    c->components[j].domain))
				return parse_error(ps, ps->component_lines[i],
				    "component domain '%s' lies under "
				    "component '%s'", d,
				    c->components[j].domain);
	}
	return 0;
}

static void
host_add_muc(struct conf_host *h, char *domain)
{
	h->muc = xreallocarray(h->muc, h->nmuc + 1, sizeof(*h->muc));
	h->muc[h->nmuc++] = domain;
}

/*
 * "muc on|off|DOMAIN" in a host block (XEP-0045 services): "on" is the
 * default conference.HOST, "off" none; several domains may be given,
 * but not together with "off".
 */
static int
handle_muc(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	struct conf_host *h = base;
	const char *arg;
	char *name;

	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	arg = ln->argv[1];
	if (strcmp(arg, "off") == 0) {
		if (h->muc_set && h->nmuc > 0)
			return parse_error(ps, ln->number,
			    "'muc off' with a muc domain in the same host");
		h->muc_set = 1;
		return 0;
	}
	if (h->muc_set && h->nmuc == 0)
		return parse_error(ps, ln->number,
		    "muc domain after 'muc off' in the same host");
	if (strcmp(arg, "on") == 0)
		name = xasprintf("conference.%s", h->name);
	else if ((name = jid_nameprep(arg)) == NULL)
		return parse_error(ps, ln->number, "invalid muc domain '%s'",
		    arg);
	h->muc_set = 1;
	host_add_muc(h, name);
	return 0;
}

/* "upload on|off|DOMAIN" in a host block (XEP-0363 service). */
static int
handle_upload(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	struct conf_host *h = base;
	const char *arg;

	(void)o;
	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	arg = ln->argv[1];
	h->upload_set = 1;
	free(h->upload);
	h->upload = NULL;
	if (strcmp(arg, "off") == 0)
		return 0;
	if (strcmp(arg, "on") == 0)
		h->upload = xasprintf("upload.%s", h->name);
	else if ((h->upload = jid_nameprep(arg)) == NULL)
		return parse_error(ps, ln->number,
		    "invalid upload domain '%s'", arg);
	return 0;
}

/* "proxy65 on|off|DOMAIN" in a host block (XEP-0065 proxy). */
static int
handle_proxy65(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	struct conf_host *h = base;
	const char *arg;

	(void)o;
	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	arg = ln->argv[1];
	h->proxy65_set = 1;
	free(h->proxy65);
	h->proxy65 = NULL;
	if (strcmp(arg, "off") == 0)
		return 0;
	if (strcmp(arg, "on") == 0)
		h->proxy65 = xasprintf("proxy.%s", h->name);
	else if ((h->proxy65 = jid_nameprep(arg)) == NULL)
		return parse_error(ps, ln->number,
		    "invalid proxy65 domain '%s'", arg);
	return 0;
}

/* "proxy65-address HOST [PORT]": what the streamhost announces; HOST a
 * domain name or a numeric address, as clients will connect to it. */
static int
set_proxy65_address(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	char **field = FIELD(base, o, char *);
	unsigned long long port = 0;
	const char *v;

	if (check_args(ps, ln, 1, 2) == -1)
		return -1;
	v = ln->argv[1];
	if (*v == '\0' || strlen(v) > 255 || strpbrk(v, " \t\"'<>&/[]") != NULL)
		return parse_error(ps, ln->number,
		    "invalid proxy65-address '%s' (expected a host name or a "
		    "numeric address)", v);
	if (ln->argc == 3 && get_number(ps, ln->number, "proxy65-address port",
	        ln->argv[2], NULL, 1, 65535, &port) == -1)
		return -1;
	free(*field);
	*field = xstrdup(v);
	ps->c->proxy65_port = (int)port;
	return 0;
}

/* "upload-url URL": http:// or https://, kept without a trailing '/'. */
static int
set_upload_url(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	char **field = FIELD(base, o, char *);
	const char *v;
	size_t n;

	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	v = ln->argv[1];
	if ((strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) ||
	    strpbrk(v, " \t\"<>?#") != NULL)
		return parse_error(ps, ln->number,
		    "upload-url must be an http:// or https:// URL "
		    "without query or fragment");
	n = strlen(v);
	while (n > 0 && v[n - 1] == '/')
		n--;
	free(*field);
	*field = xstrndup(v, n);
	return 0;
}

/* A proxy65 domain may be no host, muc or upload domain, nor another
 * host's proxy65 domain. */
static int
check_proxy65_domains(struct parser *ps)
{
	struct conf *c = ps->c;

	if (conf_proxy65_listener(c) == NULL)
		return 0;
	for (size_t i = 0; i < c->nhosts; i++) {
		const char *d = c->hosts[i].proxy65;

		if (d == NULL)
			continue;
		for (size_t j = 0; j < c->nhosts; j++) {
			int clash = strcmp(c->hosts[j].name, d) == 0 ||
			    (j != i && c->hosts[j].proxy65 != NULL &&
			    strcmp(c->hosts[j].proxy65, d) == 0) ||
			    (c->upload_url != NULL &&
			    c->hosts[j].upload != NULL &&
			    strcmp(c->hosts[j].upload, d) == 0);

			for (size_t m = 0; m < c->hosts[j].nmuc; m++)
				clash |= strcmp(c->hosts[j].muc[m], d) == 0;
			if (clash)
				return parse_error(ps, ps->host_lines[i],
				    "proxy65 domain '%s' is taken", d);
		}
	}
	return 0;
}

/* An upload domain may be neither a host nor a muc domain. */
static int
check_upload_domains(struct parser *ps)
{
	struct conf *c = ps->c;

	for (size_t i = 0; i < c->nhosts; i++) {
		const char *d = c->hosts[i].upload;

		if (d == NULL || c->upload_url == NULL)
			continue;
		for (size_t j = 0; j < c->nhosts; j++) {
			int clash = strcmp(c->hosts[j].name, d) == 0 ||
			    (j != i && c->hosts[j].upload != NULL &&
			    strcmp(c->hosts[j].upload, d) == 0);

			for (size_t m = 0; m < c->hosts[j].nmuc; m++)
				clash |= strcmp(c->hosts[j].muc[m], d) == 0;
			if (clash)
				return parse_error(ps, ps->host_lines[i],
				    "upload domain '%s' is taken", d);
		}
	}
	return 0;
}

/* A service domain may be neither a host nor another service; the
 * error names the host block that says so. */
static int
check_muc_domains(struct parser *ps)
{
	struct conf *c = ps->c;

	for (size_t i = 0; i < c->nhosts; i++)
		for (size_t k = 0; k < c->hosts[i].nmuc; k++) {
			const char *d = c->hosts[i].muc[k];

			for (size_t j = 0; j < c->nhosts; j++) {
				if (strcmp(c->hosts[j].name, d) == 0)
					return parse_error(ps,
					    ps->host_lines[i],
					    "muc domain '%s' is a host", d);
				for (size_t m = 0; m < c->hosts[j].nmuc; m++)
					if ((j != i || m != k) && strcmp(
					    c->hosts[j].muc[m], d) == 0)
						return parse_error(ps,
						    ps->host_lines[j > i ? j :
						    i], "muc domain '%s' "
						    "given twice", d);
			}
		}
	return 0;
}

/*
 * "http-trusted-proxy ADDR[/PREFIX]": requests from there may name the
 * client in Forwarded or X-Forwarded-For (net/http.c).
 */
static int
handle_trusted_proxy(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	struct conf *c = ps->c;
	struct conf_net n;

	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	if (conf_net_parse(ln->argv[1], &n) == -1)
		return parse_error(ps, ln->number, "invalid address '%s' for "
		    "'http-trusted-proxy' (expected a numeric IPv4 or IPv6 "
		    "address, optionally /PREFIX)", ln->argv[1]);
	c->trusted_proxies = xreallocarray(c->trusted_proxies,
	    c->ntrusted_proxies + 1, sizeof(*c->trusted_proxies));
	c->trusted_proxies[c->ntrusted_proxies++] = n;
	return 0;
}

/* Whether s is an absolute URL with one of the schemes (NULL-ended)
 * and a host: "wss://example.org/xmpp-websocket". */
static int
url_valid(const char *s, const char *const *schemes, int path_allowed)
{
	for (size_t i = 0; schemes[i] != NULL; i++) {
		size_t n = strlen(schemes[i]);
		const char *h = s + n + 3;

		if (strncasecmp(s, schemes[i], n) != 0 ||
		    strncmp(s + n, "://", 3) != 0)
			continue;
		if (*h == '\0' || *h == '/' || strpbrk(s, " \t\"'<>\\") != NULL)
			return 0;
		return path_allowed || strchr(h, '/') == NULL;
	}
	return 0;
}

/* "websocket-origin URL": an Origin (RFC 6454: scheme, host, port, no
 * path) browsers may open the WebSocket from. */
static int
handle_websocket_origin(struct parser *ps, const struct option *o,
    void *base, const struct line *ln)
{
	static const char *const schemes[] = {"https", "http", NULL};
	struct conf *c = ps->c;

	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	if (!url_valid(ln->argv[1], schemes, 0))
		return parse_error(ps, ln->number, "invalid origin '%s' for "
		    "'websocket-origin' (expected https://HOST[:PORT])",
		    ln->argv[1]);
	c->websocket_origins = xreallocarray(c->websocket_origins,
	    c->nwebsocket_origins + 1, sizeof(*c->websocket_origins));
	c->websocket_origins[c->nwebsocket_origins++] = xstrdup(ln->argv[1]);
	return 0;
}

/* "websocket-url URL" in a host block (XEP-0156). */
static int
set_websocket_url(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	static const char *const schemes[] = {"wss", "ws", NULL};

	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	if (!url_valid(ln->argv[1], schemes, 1))
		return parse_error(ps, ln->number, "invalid URL '%s' for "
		    "'websocket-url' (expected wss://HOST[:PORT]/PATH)",
		    ln->argv[1]);
	return set_string(ps, o, base, ln);
}

/* "bosh-url URL" in a host block (XEP-0156). */
static int
set_bosh_url(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	static const char *const schemes[] = {"https", "http", NULL};

	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	if (!url_valid(ln->argv[1], schemes, 1))
		return parse_error(ps, ln->number, "invalid URL '%s' for "
		    "'bosh-url' (expected https://HOST[:PORT]/PATH)",
		    ln->argv[1]);
	return set_string(ps, o, base, ln);
}

/* Paths of other routes (net/http.c's registry): a webchat may neither
 * take one nor sit below one. */
static const char *const reserved_paths[] = {"/xmpp-websocket",
    "/http-bind", "/upload", "/metrics", "/.well-known", NULL};

/* Whether path (after the check of handle_webchat) is p or below it. */
static int
path_within(const char *path, const char *p)
{
	size_t n = strlen(p);

	return strncmp(path, p, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* A URL path we can match without decoding: "/" and segments of
 * unreserved characters (RFC 3986 §2.3), none empty, "." or "..". */
static int
webchat_path_valid(const char *p)
{
	if (*p != '/')
		return 0;
	if (strcmp(p, "/") == 0)
		return 1;
	while (*p == '/') {
		size_t n = strspn(p + 1, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~");

		if (n == 0 || (n == 1 && p[1] == '.') ||
		    (n == 2 && p[1] == '.' && p[2] == '.'))
			return 0;
		p += 1 + n;
	}
	return *p == '\0';
}

/*
 * "webchat PATH DIRECTORY [max-age DURATION]": serve DIRECTORY's files
 * under PATH (web/webchat.c).  A trailing '/' of PATH is dropped.
 */
static int
handle_webchat(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	struct conf *c = ps->c;
	struct conf_webchat w = {NULL, NULL, 3600};
	unsigned long long age;
	size_t n;

	(void)o;
	(void)base;
	if (ln->argc != 3 && ln->argc != 5)
		return parse_error(ps, ln->number, "usage: webchat PATH "
		    "DIRECTORY [max-age DURATION]");
	n = strlen(ln->argv[1]);
	while (n > 1 && ln->argv[1][n - 1] == '/')
		n--;
	w.path = xstrndup(ln->argv[1], n);
	if (!webchat_path_valid(w.path)) {
		parse_error(ps, ln->number, "invalid webchat path '%s' "
		    "(expected /NAME[/NAME...] of letters, digits and "
		    "-._~, or /)", ln->argv[1]);
		goto fail;
	}
	for (size_t i = 0; reserved_paths[i] != NULL; i++)
		if (path_within(w.path, reserved_paths[i])) {
			parse_error(ps, ln->number, "webchat path '%s' is "
			    "within %s, which xmppd serves itself", w.path,
			    reserved_paths[i]);
			goto fail;
		}
	for (size_t i = 0; i < c->nwebchats; i++)
		if (strcmp(c->webchats[i].path, w.path) == 0) {
			parse_error(ps, ln->number, "webchat path '%s' given "
			    "twice", w.path);
			goto fail;
		}
	if (ln->argv[2][0] == '\0') {
		parse_error(ps, ln->number, "empty webchat directory");
		goto fail;
	}
	if (ln->argc == 5) {
		if (strcmp(ln->argv[3], "max-age") != 0) {
			parse_error(ps, ln->number, "unknown webchat option "
			    "'%s' (expected max-age)", ln->argv[3]);
			goto fail;
		}
		if (get_number(ps, ln->number, "webchat max-age", ln->argv[4],
		    long_duration_units, 0, 365 * 86400ull, &age) == -1)
			goto fail;
		w.max_age = (unsigned)age;
	}
	w.dir = xstrdup(ln->argv[2]);
	c->webchats = xreallocarray(c->webchats, c->nwebchats + 1,
	    sizeof(*c->webchats));
	c->webchats[c->nwebchats++] = w;
	return 0;
fail:
	free(w.path);
	return -1;
}

/* A host name or numeric address as a XEP-0215 'host': letters, digits
 * and ".-:" (IPv6), 253 bytes at most. */
static int
service_host_valid(const char *h)
{
	size_t n = strlen(h);

	return n > 0 && n <= 253 && strspn(h, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:") == n;
}

/*
 * "stun HOST [port PORT] [transport udp|tcp]" and
 * "turn HOST secret SECRET [port PORT] [transport udp|tcp] [ttl DURATION]":
 * XEP-0215 services (mod/mod_extdisco.c), in the order given.
 */
static int
handle_extdisco(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	static const char *const stun_opts[] = {"port", "transport", NULL};
	static const char *const turn_opts[] = {"port", "transport", "secret",
	    "ttl", NULL};
	struct conf *c = ps->c;
	struct conf_extdisco e;
	const char *const *opts;
	int seen[4] = {0, 0, 0, 0};
	unsigned long long v;

	(void)base;
	memset(&e, 0, sizeof(e));
	e.type = strcmp(o->name, "turn") == 0 ? EXTDISCO_TURN : EXTDISCO_STUN;
	opts = e.type == EXTDISCO_TURN ? turn_opts : stun_opts;
	e.port = 3478;
	e.ttl = 86400;
	if (ln->argc < 2 || ln->argc % 2 != 0)
		return parse_error(ps, ln->number, "usage: %s", e.type ==
		    EXTDISCO_TURN ? "turn HOST secret SECRET [port PORT] "
		    "[transport udp|tcp] [ttl DURATION]" : "stun HOST "
		    "[port PORT] [transport udp|tcp]");
	if (!service_host_valid(ln->argv[1]))
		return parse_error(ps, ln->number, "invalid %s host '%s' "
		    "(expected a host name or a numeric address)", o->name,
		    ln->argv[1]);
	for (size_t i = 2; i < ln->argc; i += 2) {
		const char *k = ln->argv[i], *val = ln->argv[i + 1];
		size_t j;

		for (j = 0; opts[j] != NULL; j++)
			if (strcmp(opts[j], k) == 0)
				break;
		if (opts[j] == NULL) {
			parse_error(ps, ln->number, "unknown %s option '%s' "
			    "(expected %s)", o->name, k, e.type ==
			    EXTDISCO_TURN ? "secret, port, transport or ttl" :
			    "port or transport");
			goto fail;
		}
		if (seen[j]++) {
			parse_error(ps, ln->number, "'%s' given twice", k);
			goto fail;
		}
		if (strcmp(k, "port") == 0) {
			if (get_number(ps, ln->number, "port", val, NULL, 1,
			    65535, &v) == -1)
				goto fail;
			e.port = (int)v;
		} else if (strcmp(k, "transport") == 0) {
			if (strcmp(val, "udp") != 0 && strcmp(val, "tcp") != 0) {
				parse_error(ps, ln->number, "invalid transport "
				    "'%s' (expected udp or tcp)", val);
				goto fail;
			}
			e.tcp = strcmp(val, "tcp") == 0;
		} else if (strcmp(k, "ttl") == 0) {
			if (get_number(ps, ln->number, "turn ttl", val,
			    long_duration_units, 60, 30 * 86400ull, &v) == -1)
				goto fail;
			e.ttl = (unsigned)v;
		} else {
			if (strlen(val) < 16) {
				parse_error(ps, ln->number, "turn secret too "
				    "short (16 characters at least)");
				goto fail;
			}
			free(e.secret);
			e.secret = xstrdup(val);
		}
	}
	if (e.type == EXTDISCO_TURN && e.secret == NULL) {
		parse_error(ps, ln->number, "turn %s has no 'secret' (coturn's "
		    "static-auth-secret)", ln->argv[1]);
		goto fail;
	}
	e.host = xstrdup(ln->argv[1]);
	c->extdisco = xreallocarray(c->extdisco, c->nextdisco + 1,
	    sizeof(*c->extdisco));
	c->extdisco[c->nextdisco++] = e;
	return 0;
fail:
	if (e.secret != NULL)
		OPENSSL_cleanse(e.secret, strlen(e.secret));
	free(e.secret);
	return -1;
}

/*
 * Split "HOST", "HOST:PORT", "[IPv6]" or "[IPv6]:PORT": the host (without
 * brackets) into host (size len) with *v6 set for a bracketed one, the
 * port into *port (0 if none).  -1 if malformed (an empty part, a port
 * outside 1 to 65535, a bracketed host that is no IPv6 address).
 */
static int
split_host_port(const char *s, char *host, size_t len, int *v6, int *port)
{
	const char *end, *p = NULL;
	size_t n;

	*v6 = s[0] == '[';
	if (*v6) {
		unsigned char bin[16];

		end = strchr(s, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			return -1;
		n = (size_t)(end - s - 1);
		if (n == 0 || n >= len)
			return -1;
		memcpy(host, s + 1, n);
		host[n] = '\0';
		if (inet_pton(AF_INET6, host, bin) != 1)
			return -1;
		if (end[1] == ':')
			p = end + 2;
	} else {
		end = strchr(s, ':');
		n = end != NULL ? (size_t)(end - s) : strlen(s);
		if (n == 0 || n >= len)
			return -1;
		memcpy(host, s, n);
		host[n] = '\0';
		if (end != NULL)
			p = end + 1;
	}
	*port = 0;
	if (p != NULL) {
		char *e;
		unsigned long v = strtoul(p, &e, 10);

		if (*p < '0' || *p > '9' || *e != '\0' || v == 0 || v > 65535)
			return -1;
		*port = (int)v;
	}
	return 0;
}

/* "see-other-host HOST[:PORT]" in a host block: a domain name or an
 * address, IPv6 in brackets (RFC 6120 §4.9.3.19, the XML character data
 * of <see-other-host/>), port 1 to 65535. */
static int
set_see_other_host(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	char host[1024], *prepped = NULL;
	int v6, port;

	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	if (split_host_port(ln->argv[1], host, sizeof(host), &v6, &port) == -1
	    || (!v6 && (prepped = jid_nameprep(host)) == NULL))
		return parse_error(ps, ln->number, "invalid value '%s' for "
		    "'see-other-host' (expected HOST or HOST:PORT)",
		    ln->argv[1]);
	free(prepped);
	return set_string(ps, o, base, ln);
}

/* "see-other-uri URI" in a host block, once per transport: ws:// or
 * wss:// for WebSocket, http:// or https:// for BOSH. */
static int
handle_see_other_uri(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	static const char *const ws[] = {"wss", "ws", NULL};
	static const char *const bosh[] = {"https", "http", NULL};
	struct conf_host *h = base;
	char **field;

	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	if (url_valid(ln->argv[1], ws, 1))
		field = &h->see_other_ws;
	else if (url_valid(ln->argv[1], bosh, 1))
		field = &h->see_other_bosh;
	else
		return parse_error(ps, ln->number, "invalid URI '%s' for "
		    "'see-other-uri' (expected wss://HOST[:PORT]/PATH or "
		    "https://HOST[:PORT]/PATH)", ln->argv[1]);
	if (*field != NULL)
		return parse_error(ps, ln->number, "'see-other-uri' given "
		    "twice for %s", field == &h->see_other_ws ? "WebSocket" :
		    "BOSH");
	*field = xstrdup(ln->argv[1]);
	return 0;
}

/* "s2s-insecure-domain D", "s2s-allow D", "s2s-deny D": a domain,
 * nameprepped, into the list at the option's field (its count follows
 * it in struct conf). */
static int
handle_s2s_domain(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	struct conf_strlist *l = FIELD(base, o, struct conf_strlist);
	char *d;

	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	if ((d = jid_nameprep(ln->argv[1])) == NULL || strchr(d, '@') ||
	    strchr(d, '/')) {
		free(d);
		return parse_error(ps, ln->number, "invalid domain '%s' for "
		    "'%s'", ln->argv[1], o->name);
	}
	if (conf_strlist_has(l, d)) {
		free(d);
		return 0;
	}
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = d;
	return 0;
}

int
conf_strlist_has(const struct conf_strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return 1;
	return 0;
}

static void
strlist_free(struct conf_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* "dns-server ADDR[:PORT]": an IPv4 address, or an IPv6 one in brackets
 * with a port, as c-ares takes them. */
static int
handle_dns_server(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	struct conf *c = ps->c;
	const char *s;
	char host[INET6_ADDRSTRLEN + 1];
	unsigned char bin[16];
	int v6, port;

	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	s = ln->argv[1];
	if (split_host_port(s, host, sizeof(host), &v6, &port) == -1 ||
	    (!v6 && inet_pton(AF_INET, host, bin) != 1))
		return parse_error(ps, ln->number, "invalid address '%s' for "
		    "'dns-server' (expected ADDR, ADDR:PORT or [IPv6]:PORT)",
		    s);
	if (c->dns_servers == NULL)
		c->dns_servers = xstrdup(s);
	else {
		size_t n = strlen(c->dns_servers) + strlen(s) + 2;
		char *j = xmalloc(n);

		snprintf(j, n, "%s,%s", c->dns_servers, s);
		free(c->dns_servers);
		c->dns_servers = j;
	}
	return 0;
}

int
conf_net_parse(const char *s, struct conf_net *n)
{
	char addr[INET6_ADDRSTRLEN + 1], out[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t len = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long long prefix;
	unsigned max;

	memset(n, 0, sizeof(*n));
	if (len == 0 || len >= sizeof(addr))
		return -1;
	memcpy(addr, s, len);
	addr[len] = '\0';
	if (inet_pton(AF_INET, addr, n->addr) == 1) {
		n->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, n->addr) == 1) {
		n->family = AF_INET6;
		max = 128;
	} else
		return -1;
	prefix = max;
	if (slash != NULL && (parse_number(slash + 1, NULL, &prefix) != 0 ||
	    prefix > max))
		return -1;
	n->prefix = (unsigned)prefix;
	for (unsigned bit = n->prefix; bit < max; bit++)
		n->addr[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
	if (inet_ntop(n->family, n->addr, out, sizeof(out)) == NULL)
		return -1;
	n->text = n->prefix == max ? xstrdup(out) :
	    xasprintf("%s/%u", out, n->prefix);
	return 0;
}

int
conf_net_match(const struct conf_net *n, const char *ip)
{
	unsigned char a[16];
	unsigned full = n->prefix / 8, rest = n->prefix % 8;

	if (inet_pton(n->family, ip, a) != 1)
		return 0;
	if (memcmp(a, n->addr, full) != 0)
		return 0;
	return rest == 0 ||
	    ((a[full] ^ n->addr[full]) & (0xffu << (8 - rest)) & 0xff) == 0;
}

int
conf_trusted_proxy(const struct conf *c, const char *ip)
{
	for (size_t i = 0; i < c->ntrusted_proxies; i++)
		if (conf_net_match(&c->trusted_proxies[i], ip))
			return 1;
	return 0;
}

/*
 * metrics {
 *	listener PORT            (repeatable: http/https listeners on PORT)
 *	token "SECRET" | token-sha256 HEX
 * }
 */
static int
handle_metrics(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	if (check_args(ps, ln, 0, 0) == -1)
		return -1;
	ps->c->metrics.enabled = 1;
	open_block(ps, ln, CTX_METRICS);
	return 0;
}

static int
handle_metrics_listener(struct parser *ps, const struct option *o,
    void *base, const struct line *ln)
{
	struct conf_metrics *m = base;
	unsigned long long port;

	if (check_args(ps, ln, 1, 1) == -1 ||
	    get_number(ps, ln->number, "metrics listener port", ln->argv[1],
	    NULL, 1, 65535, &port) == -1)
		return -1;
	m->ports = xreallocarray(m->ports, m->nports + 1, sizeof(*m->ports));
	ps->metrics_port_lines = xreallocarray(ps->metrics_port_lines,
	    m->nports + 1, sizeof(*ps->metrics_port_lines));
	ps->metrics_port_lines[m->nports] = ln->number;
	m->ports[m->nports++] = (int)port;
	return 0;
}

static int
hex_value(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* "token" is hashed at once and only the hash is kept; "token-sha256"
 * gives that hash (64 hex digits) so the file need not hold the token. */
static int
handle_metrics_token(struct parser *ps, const struct option *o, void *base,
    const struct line *ln)
{
	struct conf_metrics *m = base;
	const char *arg;
	unsigned int len = 0;

	if (check_args(ps, ln, 1, 1) == -1)
		return -1;
	if (m->token_set)
		return parse_error(ps, ln->number,
		    "'token' and 'token-sha256' given together");
	arg = ln->argv[1];
	if (strcmp(o->name, "token") == 0) {
		if (strlen(arg) < 16)
			return parse_error(ps, ln->number, "metrics token too "
			    "short (16 characters at least)");
		if (EVP_Digest(arg, strlen(arg), m->token_sha256, &len,
		    EVP_sha256(), NULL) != 1 || len != 32)
			return parse_error(ps, ln->number,
			    "cannot hash the metrics token");
	} else {
		if (strlen(arg) != 64)
			return parse_error(ps, ln->number, "invalid "
			    "'token-sha256' (expected 64 hexadecimal digits)");
		for (size_t i = 0; i < 32; i++) {
			int hi = hex_value((unsigned char)arg[2 * i]);
			int lo = hex_value((unsigned char)arg[2 * i + 1]);

			if (hi < 0 || lo < 0)
				return parse_error(ps, ln->number, "invalid "
				    "'token-sha256' (expected 64 hexadecimal "
				    "digits)");
			m->token_sha256[i] = (unsigned char)(hi * 16 + lo);
		}
	}
	m->token_set = 1;
	return 0;
}

/* Each metrics listener port must be an http or https listener's. */
static int
check_metrics_ports(struct parser *ps)
{
	struct conf *c = ps->c;

	for (size_t i = 0; i < c->metrics.nports; i++) {
		size_t k;

		for (k = 0; k < c->nlisteners; k++)
			if (c->listeners[k].port == c->metrics.ports[i] &&
			    (c->listeners[k].kind == LISTEN_HTTP ||
			    c->listeners[k].kind == LISTEN_HTTPS))
				break;
		if (k == c->nlisteners)
			return parse_error(ps, ps->metrics_port_lines[i],
			    "metrics listener %d is no http or https "
			    "listener's port", c->metrics.ports[i]);
	}
	return 0;
}

/* The index of name in the options table, for seen_block[]. */
static int
option_index(const struct option *options, const char *name)
{
	int i;

	for (i = 0; options[i].name != NULL; i++)
		if (strcmp(options[i].name, name) == 0)
			return i;
	return -1;
}

/*
 * A limit whose default would contradict an explicit setting follows it
 * (stanza-size 12000 lowers the preauth default); two explicit settings
 * that contradict each other are an error.
 */
static int
check_limit_pair(struct parser *ps, size_t *low, const char *low_name,
    size_t high, const char *high_name)
{
	int line = ps->seen_block[option_index(limit_options, low_name)];

	if (*low <= high)
		return 0;
	if (line == 0) {
		*low = high;
		return 0;
	}
	return parse_error(ps, line, "%s (%zu) is larger than %s (%zu)",
	    low_name, *low, high_name, high);
}

/* A stanza of stanza-size bytes of text takes twice that once parsed
 * (the text read, then its copy in the tree): stanza-memory must allow it.
 * Not given, it follows a larger stanza-size (four times it). */
static int
check_stanza_memory(struct parser *ps, struct conf_limits *l)
{
	int line = ps->seen_block[option_index(limit_options,
	    "stanza-memory")];

	/* stanza-size is at most 16 MiB: no overflow. */
	if (l->stanza_memory >= 2 * l->stanza_size)
		return 0;
	if (line == 0) {
		l->stanza_memory = 4 * l->stanza_size;
		return 0;
	}
	return parse_error(ps, line, "stanza-memory (%zu) is less than twice "
	    "stanza-size (%zu)", l->stanza_memory, l->stanza_size);
}

static int
close_block(struct parser *ps, const struct line *ln)
{
	struct conf *c = ps->c;
	struct conf_host *h;

	switch (ps->ctx) {
	case CTX_TOP:
		return parse_error(ps, ln->number, "'}' without matching '{'");
	case CTX_LIMITS:
		if (check_limit_pair(ps, &c->limits.preauth_stanza_size,
		        "preauth-stanza-size", c->limits.stanza_size,
		        "stanza-size") == -1 ||
		    check_limit_pair(ps, &c->limits.output_high,
		        "output-buffer", c->limits.output_max,
		        "output-max") == -1 ||
		    check_stanza_memory(ps, &c->limits) == -1)
			return -1;
		break;
	case CTX_HOST:
		h = &c->hosts[c->nhosts - 1];
		if (h->certificate == NULL)
			return parse_error(ps, ps->block_line,
			    "host '%s' has no 'certificate'", h->name);
		if (h->key == NULL)
			return parse_error(ps, ps->block_line,
			    "host '%s' has no 'key'", h->name);
		if (!h->muc_set)
			host_add_muc(h, xasprintf("conference.%s", h->name));
		if (!h->upload_set)
			h->upload = xasprintf("upload.%s", h->name);
		if (!h->proxy65_set)
			h->proxy65 = xasprintf("proxy.%s", h->name);
		break;
	case CTX_COMPONENT:
		if (c->components[c->ncomponents - 1].secret == NULL ||
		    c->components[c->ncomponents - 1].secret[0] == '\0')
			return parse_error(ps, ps->block_line,
			    "component '%s' has no 'secret'",
			    c->components[c->ncomponents - 1].domain);
		break;
	case CTX_METRICS:
		if (c->metrics.nports == 0 && !c->metrics.token_set)
			return parse_error(ps, ps->block_line, "'metrics' block "
			    "allows nobody (add 'listener PORT' or 'token')");
		break;
	}
	ps->ctx = CTX_TOP;
	return 0;
}

/*
 * Statements.
 */

static int
unknown_option(struct parser *ps, const struct line *ln)
{
	switch (ps->ctx) {
	case CTX_LIMITS:
		return parse_error(ps, ln->number,
		    "unknown option '%s' in limits block", ln->argv[0]);
	case CTX_HOST:
		return parse_error(ps, ln->number,
		    "unknown option '%s' in host block", ln->argv[0]);
	case CTX_METRICS:
		return parse_error(ps, ln->number,
		    "unknown option '%s' in metrics block", ln->argv[0]);
	case CTX_COMPONENT:
		return parse_error(ps, ln->number,
		    "unknown option '%s' in component block", ln->argv[0]);
	default:
		return parse_error(
		    ps, ln->number, "unknown option '%s'", ln->argv[0]);
	}
}

static int
handle_line(struct parser *ps, const struct line *ln)
{
	const struct option *options;
	int *seen, i;
	void *base;

	if (ln->closes)
		return close_block(ps, ln);
	if (ln->argc == 0)
		return 0;
	switch (ps->ctx) {
	case CTX_LIMITS:
		options = limit_options;
		seen = ps->seen_block;
		base = &ps->c->limits;
		break;
	case CTX_HOST:
		options = host_options;
		seen = ps->seen_block;
		base = &ps->c->hosts[ps->c->nhosts - 1];
		break;
	case CTX_METRICS:
		options = metrics_options;
		seen = ps->seen_block;
		base = &ps->c->metrics;
		break;
	case CTX_COMPONENT:
		options = component_options;
		seen = ps->seen_block;
		base = &ps->c->components[ps->c->ncomponents - 1];
		break;
	default:
		options = top_options;
		seen = ps->seen_top;
		base = ps->c;
		break;
	}
	if ((i = option_index(options, ln->argv[0])) == -1)
		return unknown_option(ps, ln);
	if (options[i].block && !ln->opens)
		return parse_error(ps, ln->number,
		    "'%s' needs a block: "
		    "'%s%s {' with '}' on a later line",
		    ln->argv[0], ln->argv[0],
		    ps->ctx == CTX_TOP && (strcmp(ln->argv[0], "host") == 0 ||
		    strcmp(ln->argv[0], "component") == 0)
		        ? " NAME"
		        : "");
	if (!options[i].block && ln->opens)
		return parse_error(
		    ps, ln->number, "'%s' does not take a block", ln->argv[0]);
	if (seen[i] != 0 && !options[i].repeat)
		return parse_error(ps, ln->number,
		    "'%s' given twice (first at line %d)", ln->argv[0],
		    seen[i]);
	if (seen[i] == 0)
		seen[i] = ln->number;
	return options[i].set(ps, &options[i], base, ln);
}

static void
conf_init(struct conf *c, const char *name)
{
	memset(c, 0, sizeof(*c));
	c->source = xstrdup(name);
	c->log_level = LOG_LVL_INFO;
	c->log_syslog = 1;
	c->storage_sync_full = 1;
	c->scram_iterations = 4096;
	c->workers = 2;
	c->s2s_dialback = 1;
	c->limits.stanza_size = 262144;
	c->limits.preauth_stanza_size = 16384;
	c->limits.stanza_memory = 1048576;
	c->limits.depth = 64;
	c->limits.attributes = 64;
	c->limits.output_high = 262144;
	c->limits.output_max = 4194304;
	c->limits.sessions_per_user = 16;
	c->limits.connections_per_ip = 256;
	c->limits.auth_failures_per_ip = 10;
	c->limits.auth_ban_time = 600;
	c->limits.preauth_connections_per_ip = 16;
	c->limits.stanzas_per_second = 50;
	c->limits.stanza_burst = 200;
	c->limits.bytes_per_second = 65536;
	c->limits.s2s_stanzas_per_second = 500;
	c->limits.s2s_bytes_per_second = 1048576;
	c->limits.s2s_timeout = 30;
	c->limits.byte_burst = 524288;
	c->limits.handshake_timeout = 30;
	c->limits.preauth_timeout = 60;
	c->limits.idle_timeout = 3600;
	c->limits.max_connections = 0;
	c->limits.roster_size = 1000;
	c->limits.offline_messages = 500;
	c->limits.storage_queue = 10000;
	c->limits.vcard_size = 65536;
	c->limits.private_size = 65536;
	c->limits.blocklist_size = 1000;
	c->limits.registrations_per_ip = 5;
	c->limits.ipv4_prefix = 32;
	c->limits.ipv6_prefix = 64;
	c->limits.ping_interval = 300;
	c->limits.ping_timeout = 60;
	c->limits.caps_timeout = 30;
	c->limits.mam_page_size = 100;
	c->limits.mam_retention = 0;
	c->limits.resume_timeout = 300;
	c->limits.sm_queue = 1048576;
	c->limits.fast_token_lifetime = 14 * 86400;
	c->limits.sm_ack_stanzas = 5;
	c->limits.sm_ack_seconds = 30;
	c->limits.csi_queue = 256;
	c->limits.csi_queue_size = 131072;
	c->limits.pep_nodes = 100;
	c->limits.pep_items = 256;
	c->limits.pep_item_size = 262144;
	c->limits.pep_size = 8388608;
	c->limits.muc_rooms_per_hour = 10;
	c->limits.muc_occupants = 1000;
	c->limits.muc_messages_per_second = 10;
	c->limits.muc_nick_length = 64;
	c->limits.muc_subject_length = 1024;
	c->limits.muc_history_size = 262144;
	c->limits.muc_room_idle = 600;
	c->limits.upload_file_size = 10 * MIB;
	c->limits.upload_quota = 1024 * MIB;
	c->limits.upload_files_per_day = 100;
	c->limits.upload_disk = 10 * 1024 * MIB;
	c->limits.upload_expiry = 30 * 86400;
	c->limits.proxy65_timeout = 60;
	c->limits.proxy65_idle = 300;
	c->limits.proxy65_streams = 256;
	c->limits.proxy65_user_streams = 8;
	c->limits.proxy65_pending = 512;
	c->limits.http_header_timeout = 10;
	c->limits.http_idle_timeout = 60;
	c->limits.bosh_inactivity = 60;
	c->limits.http_headers = 64;
	c->limits.http_header_size = 16384;
	c->software_version = SOFTWARE_VERSION_NO_OS;
	c->archive = 1;
	c->push_include_sender = 1;
	c->limits.push_interval = 5;
	c->limits.push_registrations = 20;
	c->limits.push_rate = 100;
	c->tls_ciphers = xstrdup(CONF_TLS_CIPHERS);
}

/* Checks on the whole file; line is the last line. */
static int
check_complete(struct parser *ps, int line)
{
	struct conf *c = ps->c;

	if (ps->ctx == CTX_LIMITS)
		return parse_error(ps, ps->block_line,
		    "'limits' block is not closed (missing '}')");
	if (ps->ctx == CTX_HOST)
		return parse_error(ps, ps->block_line,
		    "'host' block is not closed (missing '}')");
	if (ps->ctx == CTX_METRICS)
		return parse_error(ps, ps->block_line,
		    "'metrics' block is not closed (missing '}')");
	if (ps->ctx == CTX_COMPONENT)
		return parse_error(ps, ps->block_line,
		    "'component' block is not closed (missing '}')");
	if (c->nhosts == 0)
		return parse_error(
		    ps, line, "no host configured (add a 'host NAME {' block)");
	if (c->nlisteners == 0)
		return parse_error(ps, line,
		    "no listener configured (add e.g. 'listen c2s 5222')");
	if (check_muc_domains(ps) == -1 || check_metrics_ports(ps) == -1 ||
	    check_upload_domains(ps) == -1 ||
	    check_component_domains(ps) == -1 ||
	    check_proxy65_domains(ps) == -1)
		return -1;
	if (c->storage == NULL)
		c->storage = xstrdup(DEFAULT_STORAGE);
	if (c->upload_dir == NULL)
		c->upload_dir = xasprintf("%s-upload", c->storage);
	if (c->control_socket == NULL)
		c->control_socket = xstrdup(DEFAULT_CONTROL_SOCKET);
	return 0;
}

struct conf *
conf_parse(const char *name, const char *text, char *err, size_t errlen)
{
	struct parser ps;
	struct line ln;
	const char *p = text, *eol;
	size_t n;
	int rc = 0;

	memset(&ps, 0, sizeof(ps));
	memset(&ln, 0, sizeof(ln));
	ps.name = name;
	ps.err = err;
	ps.errlen = errlen;
	ps.c = xmalloc(sizeof(*ps.c));
	conf_init(ps.c, name);
	for (;;) {
		ln.number++;
		eol = strchr(p, '\n');
		n = eol != NULL ? (size_t)(eol - p) : strlen(p);
		if ((rc = lex_line(&ps, &ln, p, n)) == -1 ||
		    (rc = handle_line(&ps, &ln)) == -1)
			break;
		if (eol == NULL || eol[1] == '\0')
			break;
		p = eol + 1;
	}
	if (rc == 0)
		rc = check_complete(&ps, ln.number);
	free(ln.argv);
	free(ln.words);
	free(ps.listener_lines);
	free(ps.host_lines);
	free(ps.component_lines);
	free(ps.metrics_port_lines);
	if (rc == -1) {
		conf_free(ps.c);
		return NULL;
	}
	return ps.c;
}

static void __attribute__((format(printf, 3, 4)))
load_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Read all of path into a NUL-terminated malloc'ed string, *len bytes. */
static char *
read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f;
	char *text = NULL;
	size_t cap = 0, n;

	if ((f = fopen(path, "r")) == NULL) {
		load_error(
		    err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return NULL;
	}
	*len = 0;
	for (;;) {
		if (cap - *len < 4096) {
			cap = cap ? cap * 2 : 8192;
			text = xrealloc(text, cap + 1);
		}
		n = fread(text + *len, 1, cap - *len, f);
		*len += n;
		if (*len > CONF_FILE_MAX) {
			load_error(err, errlen,
			    "%s: cannot read: larger than "
			    "%u bytes",
			    path, CONF_FILE_MAX);
			goto fail;
		}
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		load_error(
		    err, errlen, "%s: cannot read: %s", path, strerror(errno));
		goto fail;
	}
	fclose(f);
	text[*len] = '\0';
	return text;
fail:
	fclose(f);
	free(text);
	return NULL;
}

struct conf *
conf_load(const char *path, char *err, size_t errlen)
{
	struct conf *c;
	char *text;
	const char *nul, *q;
	size_t len;
	int line = 1;

	if ((text = read_file(path, &len, err, errlen)) == NULL)
		return NULL;
	/* conf_parse stops at a NUL; a file that holds one is not text. */
	if ((nul = memchr(text, '\0', len)) != NULL) {
		for (q = text; q < nul; q++)
			line += *q == '\n';
		load_error(
		    err, errlen, "%s:%d: invalid character 0x00", path, line);
		free(text);
		return NULL;
	}
	c = conf_parse(path, text, err, errlen);
	free(text);
	return c;
}

void
conf_free(struct conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nlisteners; i++)
		free(c->listeners[i].address);
	free(c->listeners);
	for (i = 0; i < c->nhosts; i++) {
		free(c->hosts[i].name);
		free(c->hosts[i].certificate);
		free(c->hosts[i].key);
		free(c->hosts[i].contact_admin);
		for (size_t k = 0; k < c->hosts[i].nmuc; k++)
			free(c->hosts[i].muc[k]);
		free(c->hosts[i].muc);
		free(c->hosts[i].websocket_url);
		free(c->hosts[i].bosh_url);
		free(c->hosts[i].see_other_host);
		free(c->hosts[i].see_other_ws);
		free(c->hosts[i].see_other_bosh);
		free(c->hosts[i].upload);
		free(c->hosts[i].proxy65);
	}
	free(c->hosts);
	for (i = 0; i < c->ncomponents; i++) {
		free(c->components[i].domain);
		if (c->components[i].secret != NULL) {
			OPENSSL_cleanse(c->components[i].secret,
			    strlen(c->components[i].secret));
			free(c->components[i].secret);
		}
	}
	free(c->components);
	free(c->source);
	free(c->storage);
	free(c->control_socket);
	free(c->control_group);
	free(c->pidfile);
	free(c->upload_url);
	free(c->upload_dir);
	free(c->proxy65_address);
	free(c->user);
	free(c->tls_ciphers);
	free(c->tls_ciphersuites);
	free(c->tls_ca_file);
	strlist_free(&c->s2s_insecure);
	strlist_free(&c->s2s_allow);
	strlist_free(&c->s2s_deny);
	free(c->dns_servers);
	free(c->version_name);
	for (i = 0; i < c->ncontacts; i++) {
		free(c->contacts[i].type);
		free(c->contacts[i].uri);
	}
	free(c->contacts);
	for (i = 0; i < c->nmodules_off; i++)
		free(c->modules_off[i]);
	free(c->modules_off);
	for (i = 0; i < c->ntrusted_proxies; i++)
		free(c->trusted_proxies[i].text);
	free(c->trusted_proxies);
	for (i = 0; i < c->nwebsocket_origins; i++)
		free(c->websocket_origins[i]);
	free(c->websocket_origins);
	for (i = 0; i < c->nwebchats; i++) {
		free(c->webchats[i].path);
		free(c->webchats[i].dir);
	}
	free(c->webchats);
	for (i = 0; i < c->nextdisco; i++) {
		free(c->extdisco[i].host);
		if (c->extdisco[i].secret != NULL)
			OPENSSL_cleanse(c->extdisco[i].secret,
			    strlen(c->extdisco[i].secret));
		free(c->extdisco[i].secret);
	}
	free(c->extdisco);
	free(c->metrics.ports);
	OPENSSL_cleanse(c->metrics.token_sha256,
	    sizeof(c->metrics.token_sha256));
	free(c);
}

const struct conf_listener *
conf_proxy65_listener(const struct conf *c)
{
	for (size_t i = 0; i < c->nlisteners; i++)
		if (c->listeners[i].kind == LISTEN_PROXY65)
			return &c->listeners[i];
	return NULL;
}

const struct conf_host *
conf_host_find(const struct conf *c, const char *domain)
{
	size_t i;

	for (i = 0; i < c->nhosts; i++)
		if (strcmp(c->hosts[i].name, domain) == 0)
			return &c->hosts[i];
	return NULL;
}

const struct conf_component *
conf_component_find(const struct conf *c, const char *domain)
{
	for (size_t i = 0; i < c->ncomponents; i++)
		if (strcmp(c->components[i].domain, domain) == 0)
			return &c->components[i];
	return NULL;
}

int
conf_http_host_known(const struct conf *c, const char *name)
{
	const char *u;
	size_t n;

	if (conf_host_find(c, name) != NULL)
		return 1;
	if (c->upload_url == NULL)
		return 0;
	for (size_t i = 0; i < c->nhosts; i++)
		if (c->hosts[i].upload != NULL &&
		    strcasecmp(c->hosts[i].upload, name) == 0)
			return 1;
	/* upload-url: scheme "://" host [":" port] ["/" path] */
	u = strstr(c->upload_url, "://") + 3;
	if (*u == '[')
		return 0;       /* an IPv6 literal: not a name */
	n = strcspn(u, ":/");
	return strlen(name) == n && strncasecmp(u, name, n) == 0;
}
