/*
 * Unit tests for xmppd.conf parsing: the embedded default, every option,
 * defaults, the shipped example file, and the exact message for each class
 * of error.  Run from the repository root (the example is read by path).
 */
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "unit.h"

#define EXAMPLE_PATH "xmppd/xmppd.conf.example"
#define MAN_PATH "man/xmppd.conf.5"

/* Five valid lines that make a complete configuration. */
#define BASE                                                                   \
	"listen c2s 5222\n"                                                    \
	"host example.org {\n"                                                 \
	"\tcertificate c.pem\n"                                                \
	"\tkey k.pem\n"                                                        \
	"}\n"

static char err[512];

static struct conf *
parse(const char *text)
{
	err[0] = '\0';
	return conf_parse("t.conf", text, err, sizeof(err));
}

/* text must fail with exactly the message want. */
static void
expect_error(const char *text, const char *want)
{
	struct conf *c = parse(text);

	CHECK(c == NULL);
	CHECK_STR(err, want);
	conf_free(c);
}

/* text must fail with a message starting with prefix. */
static void
expect_prefix(const char *text, const char *prefix)
{
	struct conf *c = parse(text);

	CHECK(c == NULL);
	if (strncmp(err, prefix, strlen(prefix)) == 0)
		CHECK(1);
	else
		CHECK_STR(err, prefix);
	conf_free(c);
}

static void
check_limit_defaults(const struct conf_limits *l)
{
	CHECK(l->stanza_size == 262144);
	CHECK(l->preauth_stanza_size == 16384);
	CHECK(l->depth == 64);
	CHECK(l->attributes == 64);
	CHECK(l->output_high == 262144);
	CHECK(l->output_max == 4194304);
	CHECK(l->sessions_per_user == 16);
	CHECK(l->connections_per_ip == 256);
	CHECK(l->auth_failures_per_ip == 10);
	CHECK(l->handshake_timeout == 30);
	CHECK(l->preauth_timeout == 60);
	CHECK(l->idle_timeout == 3600);
	CHECK(l->max_connections == 0);
	CHECK(l->bytes_per_second == 65536);
	CHECK(l->byte_burst == 524288);
	CHECK(l->ipv4_prefix == 32);
	CHECK(l->ipv6_prefix == 64);
	CHECK(l->muc_rooms_per_hour == 10);
	CHECK(l->muc_occupants == 1000);
	CHECK(l->muc_messages_per_second == 10);
	CHECK(l->muc_nick_length == 64);
	CHECK(l->muc_subject_length == 1024);
	CHECK(l->muc_history_size == 262144);
	CHECK(l->proxy65_timeout == 60);
	CHECK(l->proxy65_idle == 300);
	CHECK(l->proxy65_streams == 256);
	CHECK(l->proxy65_user_streams == 8);
	CHECK(l->proxy65_pending == 512);
	CHECK(l->proxy65_rate == 0);
	CHECK(l->proxy65_user_rate == 0);
	CHECK(l->proxy65_stream_rate == 0);
}

static void
test_default_text(void)
{
	struct conf *c =
	    conf_parse("(default)", conf_default_text, err, sizeof(err));

	CHECK(c != NULL);
	if (c == NULL) {
		fprintf(stderr, "default: %s\n", err);
		return;
	}
	CHECK_STR(c->source, "(default)");
	CHECK(c->log_level == LOG_LVL_INFO);
	CHECK(c->log_syslog == 1);
	CHECK_STR(c->storage, "var/xmppd.db");
	CHECK(c->storage_sync_full == 1);
	CHECK_STR(c->control_socket, "var/xmppd.sock");
	CHECK_STR(c->control_group, NULL);
	CHECK_STR(c->pidfile, "var/xmppd.pid");
	CHECK_STR(c->user, NULL);
	CHECK(c->scram_iterations == 4096);
	CHECK(c->workers == 2);
	CHECK_STR(c->version_name, NULL);
	CHECK(c->nlisteners == 5);
	if (c->nlisteners == 5) {
		CHECK(c->listeners[0].kind == LISTEN_C2S);
		CHECK_STR(c->listeners[0].address, "*");
		CHECK(c->listeners[0].port == 5222);
		CHECK(c->listeners[0].starttls_required == 1);
		CHECK(c->listeners[1].kind == LISTEN_C2S_TLS);
		CHECK_STR(c->listeners[1].address, "*");
		CHECK(c->listeners[1].port == 5223);
		CHECK(c->listeners[1].starttls_required == 0);
		/* make run serves the web too: WebSocket, host-meta, upload,
		 * and /metrics on the loopback-only plain listener */
		CHECK(c->listeners[2].kind == LISTEN_HTTP);
		CHECK_STR(c->listeners[2].address, "127.0.0.1");
		CHECK(c->listeners[2].port == 5280);
		CHECK(c->listeners[3].kind == LISTEN_HTTPS);
		CHECK_STR(c->listeners[3].address, "*");
		CHECK(c->listeners[3].port == 5443);
		/* and the XEP-0065 proxy at proxy.localhost */
		CHECK(c->listeners[4].kind == LISTEN_PROXY65);
		CHECK_STR(c->listeners[4].address, "*");
		CHECK(c->listeners[4].port == 7777);
		CHECK(conf_proxy65_listener(c) == &c->listeners[4]);
		CHECK_STR(c->hosts[0].proxy65, "proxy.localhost");
	}
	CHECK(c->websocket == 1);
	CHECK_STR(c->upload_url, "https://localhost:5443");
	CHECK_STR(c->upload_dir, "var/upload");
	CHECK(c->metrics.enabled == 1);
	CHECK(c->nhosts == 1);
	if (c->nhosts == 1) {
		CHECK_STR(c->hosts[0].name, "localhost");
		CHECK_STR(c->hosts[0].certificate, "var/localhost.crt");
		CHECK_STR(c->hosts[0].key, "var/localhost.key");
		CHECK_STR(c->hosts[0].contact_admin, NULL);
	}
	check_limit_defaults(&c->limits);
	CHECK(conf_host_find(c, "localhost") == &c->hosts[0]);
	CHECK(conf_host_find(c, "example.org") == NULL);
	conf_free(c);
}

static void
test_minimal_defaults(void)
{
	struct conf *c = parse(BASE);

	CHECK(c != NULL);
	if (c == NULL)
		return;
	CHECK_STR(c->source, "t.conf");
	CHECK(c->log_level == LOG_LVL_INFO);
	CHECK(c->log_syslog == 1);
	CHECK_STR(c->storage, "var/xmppd.db");
	CHECK(c->storage_sync_full == 1);
	CHECK_STR(c->control_socket, "var/xmppd.sock");
	CHECK_STR(c->control_group, NULL);
	CHECK_STR(c->pidfile, NULL);
	CHECK_STR(c->user, NULL);
	CHECK(c->scram_iterations == 4096);
	CHECK(c->workers == 2);
	CHECK(c->nlisteners == 1 && c->listeners[0].kind == LISTEN_C2S);
	CHECK_STR(c->listeners[0].address, "*");
	CHECK(c->listeners[0].starttls_required == 1);
	CHECK(c->nhosts == 1);
	CHECK_STR(c->hosts[0].name, "example.org");
	check_limit_defaults(&c->limits);
	conf_free(c);
}

static void
test_every_option(void)
{
	static const char text[] =
	    "# every option, none at its default\n"
	    "log-level debug\n"
	    "log syslog   # trailing comment\n"
	    "storage \"/var/db/xmppd/x \\\"1\\\" \\\\.db\"\n"
	    "storage-sync normal\n"
	    "control-socket /run/xmppd.sock\n"
	    "control-group xmppadm\n"
	    "pidfile /run/xmppd.pid\n"
	    "user _xmppd\r\n"
	    "scram-iterations 1000000\n"
	    "workers 64\n"
	    "\n"
	    "listen c2s 5222 address 127.0.0.1 starttls optional\n"
	    "listen c2s 5222 starttls required address 0:0:0::1\n"
	    "listen c2s-tls 5223 address \"*\"\n"
	    "listen \"c2s\" 15222\n"
	    "limits {\n"
	    "\tstanza-size 1M\n"
	    "\tpreauth-stanza-size 20000\n"
	    "\tdepth 8\n"
	    "\tattributes 1024\n"
	    "\toutput-buffer 64K\n"
	    "\toutput-max 1024M\n"
	    "\tsessions-per-user 1\n"
	    "\tconnections-per-ip 0\n"
	    "\tauth-failures-per-ip 3\n"
	    "\thandshake-timeout 2m\n"
	    "\tpreauth-timeout 45\n"
	    "\tidle-timeout 2h\n"
	    "\tmax-connections 10000\n"
	    "\tbytes-per-second 1M\n"
	    "\tbyte-burst 2048\n"
	    "\tipv4-prefix 24\n"
	    "\tipv6-prefix 48\n"
	    "}\n"
	    "host \"Example.ORG.\" {\n"
	    "    key \"/etc/ssl/example.key\"\n"
	    "    certificate \"/etc/ssl/example.crt\"\n"
	    "}\n"
	    "host b\xc3\xbc"
	    "cher.example{\n"
	    "certificate b.crt\n"
	    "key b.key\n"
	    "}   # end\n";
	struct conf *c = parse(text);

	CHECK(c != NULL);
	if (c == NULL) {
		fprintf(stderr, "every option: %s\n", err);
		return;
	}
	CHECK(c->log_level == LOG_LVL_DEBUG);
	CHECK(c->log_syslog == 1);
	CHECK_STR(c->storage, "/var/db/xmppd/x \"1\" \\.db");
	CHECK(c->storage_sync_full == 0);
	CHECK_STR(c->control_socket, "/run/xmppd.sock");
	CHECK_STR(c->control_group, "xmppadm");
	CHECK_STR(c->pidfile, "/run/xmppd.pid");
	CHECK_STR(c->user, "_xmppd");
	CHECK(c->scram_iterations == 1000000);
	CHECK(c->workers == 64);
	CHECK(c->nlisteners == 4);
	if (c->nlisteners == 4) {
		CHECK(c->listeners[0].kind == LISTEN_C2S);
		CHECK_STR(c->listeners[0].address, "127.0.0.1");
		CHECK(c->listeners[0].port == 5222);
		CHECK(c->listeners[0].starttls_required == 0);
		CHECK(c->listeners[1].kind == LISTEN_C2S);
		CHECK_STR(c->listeners[1].address, "::1");
		CHECK(c->listeners[1].port == 5222);
		CHECK(c->listeners[1].starttls_required == 1);
		CHECK(c->listeners[2].kind == LISTEN_C2S_TLS);
		CHECK_STR(c->listeners[2].address, "*");
		CHECK(c->listeners[2].port == 5223);
		CHECK(c->listeners[2].starttls_required == 0);
		CHECK(c->listeners[3].kind == LISTEN_C2S);
		CHECK(c->listeners[3].port == 15222);
	}
	CHECK(c->limits.stanza_size == 1048576);
	CHECK(c->limits.preauth_stanza_size == 20000);
	CHECK(c->limits.depth == 8);
	CHECK(c->limits.attributes == 1024);
	CHECK(c->limits.output_high == 65536);
	CHECK(c->limits.output_max == 1073741824);
	CHECK(c->limits.sessions_per_user == 1);
	CHECK(c->limits.connections_per_ip == 0);
	CHECK(c->limits.auth_failures_per_ip == 3);
	CHECK(c->limits.handshake_timeout == 120);
	CHECK(c->limits.preauth_timeout == 45);
	CHECK(c->limits.idle_timeout == 7200);
	CHECK(c->limits.max_connections == 10000);
	CHECK(c->limits.bytes_per_second == 1048576);
	CHECK(c->limits.byte_burst == 2048);
	CHECK(c->limits.ipv4_prefix == 24);
	CHECK(c->limits.ipv6_prefix == 48);
	CHECK(c->nhosts == 2);
	if (c->nhosts == 2) {
		/* Nameprep lowercases and drops the trailing dot. */
		CHECK_STR(c->hosts[0].name, "example.org");
		CHECK_STR(c->hosts[0].certificate, "/etc/ssl/example.crt");
		CHECK_STR(c->hosts[0].key, "/etc/ssl/example.key");
		CHECK_STR(c->hosts[1].name, "b\xc3\xbc"
		                            "cher.example");
		CHECK_STR(c->hosts[1].certificate, "b.crt");
		CHECK(conf_host_find(c, "example.org") == &c->hosts[0]);
		CHECK(conf_host_find(c, "b\xc3\xbc"
		                        "cher.example") == &c->hosts[1]);
	}
	conf_free(c);
}

static void
test_limit_relations(void)
{
	struct conf *c;

	/* A smaller stanza-size lowers the implicit preauth default. */
	c = parse(BASE "limits {\nstanza-size 12000\noutput-max 64K\n}\n");
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(c->limits.stanza_size == 12000);
		CHECK(c->limits.preauth_stanza_size == 12000);
		CHECK(c->limits.output_max == 65536);
		CHECK(c->limits.output_high == 65536);
	}
	conf_free(c);
	/* Equal is fine. */
	c = parse(BASE "limits {\nstanza-size 16K\npreauth-stanza-size 16K\n"
	               "output-buffer 1M\noutput-max 1M\n}\n");
	CHECK(c != NULL);
	conf_free(c);
	/* Range edges. */
	c = parse(
	    BASE "scram-iterations 4096\nworkers 1\n"
	         "listen c2s 65535\nlisten c2s 1\nlimits {\n"
	         "stanza-size 10000\npreauth-stanza-size 1K\nidle-timeout 0\n"
	         "handshake-timeout 1h\n}\n");
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(c->limits.idle_timeout == 0);
		CHECK(c->limits.handshake_timeout == 3600);
		CHECK(c->nlisteners == 3);
	}
	conf_free(c);
	/* log_level_parse also takes "warning". */
	c = parse("log-level warning\n" BASE);
	CHECK(c != NULL && c->log_level == LOG_LVL_WARN);
	conf_free(c);
}

static void
test_example_file(void)
{
	struct conf *c = conf_load(EXAMPLE_PATH, err, sizeof(err));
	struct conf *d;

	CHECK(c != NULL);
	if (c == NULL) {
		fprintf(stderr, "example: %s\n", err);
		return;
	}
	/* The example shows the defaults. */
	CHECK_STR(c->source, EXAMPLE_PATH);
	CHECK(c->log_level == LOG_LVL_INFO);
	CHECK(c->log_syslog == 1);
	CHECK_STR(c->storage, "var/xmppd.db");
	CHECK(c->storage_sync_full == 1);
	CHECK_STR(c->control_socket, "var/xmppd.sock");
	CHECK_STR(c->control_group, NULL);
	CHECK_STR(c->pidfile, NULL);
	CHECK_STR(c->user, NULL);
	CHECK_STR(c->tls_ciphers, CONF_TLS_CIPHERS);
	CHECK_STR(c->tls_ciphersuites, NULL);
	CHECK(c->scram_iterations == 4096);
	CHECK(c->workers == 2);
	check_limit_defaults(&c->limits);
	d = parse(conf_default_text);
	CHECK(d != NULL);
	if (d != NULL && c->nlisteners == d->nlisteners) {
		for (size_t i = 0; i < c->nlisteners; i++) {
			CHECK(c->listeners[i].kind == d->listeners[i].kind);
			CHECK(c->listeners[i].port == d->listeners[i].port);
			CHECK_STR(
			    c->listeners[i].address, d->listeners[i].address);
			CHECK(c->listeners[i].starttls_required ==
			      d->listeners[i].starttls_required);
		}
	} else
		CHECK(0);
	CHECK(c->nhosts == 1 && conf_host_find(c, "localhost") != NULL);
	conf_free(d);
	conf_free(c);
}

/* Equal in every field that the embedded default sets. */
static int
same_as_default(const struct conf *a, const struct conf *d)
{
	size_t i;

	if (a->log_level != d->log_level || a->log_syslog != d->log_syslog ||
	    strcmp(a->storage, d->storage) != 0 ||
	    strcmp(a->control_socket, d->control_socket) != 0 ||
	    (a->pidfile == NULL) != (d->pidfile == NULL) ||
	    (a->pidfile && strcmp(a->pidfile, d->pidfile) != 0) ||
	    a->nlisteners != d->nlisteners || a->nhosts != d->nhosts)
		return 0;
	for (i = 0; i < a->nlisteners; i++)
		if (a->listeners[i].kind != d->listeners[i].kind ||
		    a->listeners[i].port != d->listeners[i].port ||
		    a->listeners[i].starttls_required !=
		        d->listeners[i].starttls_required ||
		    strcmp(a->listeners[i].address, d->listeners[i].address) !=
		        0)
			return 0;
	for (i = 0; i < a->nhosts; i++)
		if (strcmp(a->hosts[i].name, d->hosts[i].name) != 0 ||
		    strcmp(a->hosts[i].certificate, d->hosts[i].certificate) !=
		        0 ||
		    strcmp(a->hosts[i].key, d->hosts[i].key) != 0)
			return 0;
	return 1;
}

/*
 * The man page must not document a configuration that does not parse:
 * every literal display under EXAMPLES parses, and the one under FILES is
 * the embedded default.
 */
static void
test_man_page(void)
{
	FILE *f = fopen(MAN_PATH, "r");
	char line[512], text[4096], section[64] = "";
	size_t len = 0;
	int in_display = 0, examples = 0, defaults = 0;
	struct conf *c, *d;

	CHECK(f != NULL);
	if (f == NULL)
		return;
	d = parse(conf_default_text);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, ".Sh ", 4) == 0) {
			size_t n = strcspn(line + 4, "\n");

			if (n >= sizeof(section))
				n = sizeof(section) - 1;
			memcpy(section, line + 4, n);
			section[n] = '\0';
		} else if (strncmp(line, ".Bd -literal", 12) == 0) {
			in_display = 1;
			len = 0;
			text[0] = '\0';
		} else if (in_display && strncmp(line, ".Ed", 3) == 0) {
			in_display = 0;
			if (strcmp(section, "EXAMPLES") != 0 &&
			    strcmp(section, "FILES") != 0)
				continue;
			c = conf_parse(MAN_PATH, text, err, sizeof(err));
			CHECK(c != NULL);
			if (c == NULL)
				fprintf(
				    stderr, "man page %s: %s\n", section, err);
			if (strcmp(section, "EXAMPLES") == 0)
				examples++;
			else {
				defaults++;
				CHECK(c != NULL && d != NULL &&
				      same_as_default(c, d));
			}
			conf_free(c);
		} else if (in_display && len + strlen(line) < sizeof(text)) {
			memcpy(text + len, line, strlen(line) + 1);
			len += strlen(line);
		}
	}
	fclose(f);
	conf_free(d);
	CHECK(examples == 4);
	CHECK(defaults == 1);
}

static void
test_load_errors(void)
{
	struct conf *c;
	char small[16];

	c = conf_load("tests/unit/no-such.conf", err, sizeof(err));
	CHECK(c == NULL);
	CHECK_STR(err, "tests/unit/no-such.conf: cannot read: "
	               "No such file or directory");
	/* Messages are truncated to the buffer, never overrun it. */
	memset(small, 'x', sizeof(small));
	c = conf_parse("t.conf", "bogus\n", small, sizeof(small));
	CHECK(c == NULL);
	CHECK_STR(small, "t.conf:1: unkno");
	/* A NULL buffer is allowed. */
	CHECK(conf_parse("t.conf", "bogus\n", NULL, 0) == NULL);
}

static void
test_syntax_errors(void)
{
	expect_error(
	    "storage \"var/x.db\n" BASE, "t.conf:1: unterminated string");
	expect_error(
	    "storage \"var/x.db\r\n" BASE, "t.conf:1: unterminated string");
	expect_error(
	    "storage \"var/x.db\\\"\n" BASE, "t.conf:1: unterminated string");
	expect_error(BASE "storage \"a\\nb\"\n",
	    "t.conf:6: invalid escape '\\n' in string (only \\\" and \\\\ are "
	    "allowed)");
	expect_error(BASE "storage \"a\tb\x01\"\n",
	    "t.conf:6: invalid character 0x01 in string");
	expect_error(
	    BASE "storage a\x02\n", "t.conf:6: invalid character 0x02");
	expect_error(BASE "storage \"a\"b\n",
	    "t.conf:6: missing space after string \"a\"");
	expect_error(BASE "storage a\"b\"\n",
	    "t.conf:6: unexpected '\"' after 'a' (quote the whole word)");
	expect_error(BASE "storage x;\n",
	    "t.conf:6: unexpected ';' (one statement per line, no separators)");
	expect_error("listen c2s 5222\nhost a {\ncertificate c\nkey k\n"
	             "}\n}\n",
	    "t.conf:6: '}' without matching '{'");
	expect_error("listen c2s 5222\nhost a {\ncertificate c\nkey k\n",
	    "t.conf:2: 'host' block is not closed (missing '}')");
	expect_error(BASE "limits {\n",
	    "t.conf:6: 'limits' block is not closed (missing '}')");
	expect_error(BASE "limits {\n}}\n",
	    "t.conf:7: '}' must be on a line of its own");
	expect_error(BASE "limits {\ndepth 9 }\n",
	    "t.conf:7: '}' must be on a line of its own");
	expect_error(BASE "limits { depth 9\n}\n",
	    "t.conf:6: unexpected text after '{' (it must end the line)");
	expect_error(BASE "limits\n{\n}\n",
	    "t.conf:6: 'limits' needs a block: 'limits {' with '}' on a later "
	    "line");
	expect_error(BASE "{\n",
	    "t.conf:6: '{' must end the line of the statement that opens the "
	    "block");
	expect_error("listen c2s 5222\nhost a\n",
	    "t.conf:2: 'host' needs a block: 'host NAME {' with '}' on a later "
	    "line");
	expect_error(BASE "storage x {\n}\n",
	    "t.conf:6: 'storage' does not take a block");
	expect_error(BASE "limits {\nlimits {\n}\n}\n",
	    "t.conf:7: unknown option 'limits' in limits block");
}

static void
test_statement_errors(void)
{
	expect_error(
	    BASE "stanza-size 1K\n", "t.conf:6: unknown option 'stanza-size'");
	expect_error(BASE "limits {\n\tstanza-sise 1K\n}\n",
	    "t.conf:7: unknown option 'stanza-sise' in limits block");
	expect_error("listen c2s 5222\nhost a {\ncert c\n}\n",
	    "t.conf:3: unknown option 'cert' in host block");
	expect_error(
	    BASE "storage\n", "t.conf:6: missing argument to 'storage'");
	expect_error(BASE "storage a b\n",
	    "t.conf:6: unexpected argument 'b' to 'storage'");
	expect_error(BASE "limits x {\n}\n",
	    "t.conf:6: unexpected argument 'x' to 'limits'");
	expect_error(
	    BASE "pidfile \"\"\n", "t.conf:6: empty value for 'pidfile'");
	expect_error(BASE "log-level loud\n",
	    "t.conf:6: invalid value 'loud' for 'log-level' (expected error, "
	    "warn, info or debug)");
	expect_error(BASE "log file\n",
	    "t.conf:6: invalid value 'file' for 'log' (expected stderr or "
	    "syslog)");
	expect_error(BASE "storage-sync off\n",
	    "t.conf:6: invalid value 'off' for 'storage-sync' (expected full "
	    "or "
	    "normal)");
	expect_error("storage a\n" BASE "storage b\n",
	    "t.conf:7: 'storage' given twice (first at line 1)");
	expect_error(BASE "limits {\n}\nlimits {\n}\n",
	    "t.conf:8: 'limits' given twice (first at line 6)");
	expect_error(BASE "limits {\ndepth 9\ndepth 10\n}\n",
	    "t.conf:8: 'depth' given twice (first at line 7)");
	expect_error("listen c2s 5222\nhost a {\nkey k\nkey k\n}\n",
	    "t.conf:4: 'key' given twice (first at line 3)");
	expect_error("listen c2s 5222\nhost a {\nkey k\n}\n",
	    "t.conf:2: host 'a' has no 'certificate'");
	expect_error("listen c2s 5222\nhost a {\ncertificate c\n}\n",
	    "t.conf:2: host 'a' has no 'key'");
}

static void
test_number_errors(void)
{
	expect_error(
	    BASE "workers -1\n", "t.conf:6: invalid number '-1' for 'workers'");
	expect_error(
	    BASE "workers +1\n", "t.conf:6: invalid number '+1' for 'workers'");
	expect_error(BASE "workers 0x10\n",
	    "t.conf:6: invalid number '0x10' for 'workers'");
	expect_error(
	    BASE "workers \"\"\n", "t.conf:6: invalid number '' for 'workers'");
	expect_error(BASE "workers 65\n",
	    "t.conf:6: 'workers' out of range: 65 (allowed 1..64)");
	expect_error(BASE "workers 0\n",
	    "t.conf:6: 'workers' out of range: 0 (allowed 1..64)");
	expect_error(BASE "workers 4294967298\n",
	    "t.conf:6: 'workers' out of range: 4294967298 (allowed 1..64)");
	expect_error(BASE "scram-iterations 99999999999999999999999\n",
	    "t.conf:6: 'scram-iterations' out of range: "
	    "99999999999999999999999 "
	    "(allowed 4096..1000000)");
	expect_error(BASE "scram-iterations 4095\n",
	    "t.conf:6: 'scram-iterations' out of range: 4095 (allowed "
	    "4096..1000000)");
	expect_error(BASE "limits {\nstanza-size 12X\n}\n",
	    "t.conf:7: invalid size '12X' for 'stanza-size' (bytes, or a "
	    "number "
	    "with suffix K or M)");
	expect_error(BASE "limits {\nstanza-size 12k\n}\n",
	    "t.conf:7: invalid size '12k' for 'stanza-size' (bytes, or a "
	    "number "
	    "with suffix K or M)");
	expect_error(BASE "limits {\nstanza-size K\n}\n",
	    "t.conf:7: invalid size 'K' for 'stanza-size' (bytes, or a number "
	    "with suffix K or M)");
	expect_error(BASE "limits {\nstanza-size 17M\n}\n",
	    "t.conf:7: 'stanza-size' out of range: 17M (allowed "
	    "10000..16777216 "
	    "bytes)");
	expect_error(BASE "limits {\noutput-max 18014398509481984M\n}\n",
	    "t.conf:7: 'output-max' out of range: 18014398509481984M (allowed "
	    "4096..1073741824 bytes)");
	expect_error(BASE "limits {\nidle-timeout 5d\n}\n",
	    "t.conf:7: invalid duration '5d' for 'idle-timeout' (seconds, or a "
	    "number with suffix s, m or h)");
	expect_error(BASE "limits {\nidle-timeout 1.5h\n}\n",
	    "t.conf:7: invalid duration '1.5h' for 'idle-timeout' (seconds, or "
	    "a number with suffix s, m or h)");
	expect_error(BASE "limits {\nhandshake-timeout 61m\n}\n",
	    "t.conf:7: 'handshake-timeout' out of range: 61m (allowed 1..3600 "
	    "seconds)");
	expect_prefix(
	    BASE "limits {\ndepth 7\n}\n", "t.conf:7: 'depth' out of range: 7");
	expect_prefix(BASE "limits {\nattributes 2000\n}\n",
	    "t.conf:7: 'attributes' out of range: 2000");
	expect_error(BASE "limits {\nipv6-prefix 129\n}\n",
	    "t.conf:7: 'ipv6-prefix' out of range: 129 (allowed 32..128)");
	expect_error(BASE "limits {\nipv6-prefix 31\n}\n",
	    "t.conf:7: 'ipv6-prefix' out of range: 31 (allowed 32..128)");
	expect_error(BASE "limits {\nipv4-prefix 33\n}\n",
	    "t.conf:7: 'ipv4-prefix' out of range: 33 (allowed 16..32)");
	expect_prefix(BASE "limits {\nbyte-burst 512\n}\n",
	    "t.conf:7: 'byte-burst' out of range: 512");
	expect_prefix(BASE "limits {\nbytes-per-second 2G\n}\n",
	    "t.conf:7: ");
	expect_prefix(BASE "limits {\nsessions-per-user 0\n}\n",
	    "t.conf:7: 'sessions-per-user' out of range: 0");
	expect_prefix(BASE "limits {\nauth-failures-per-ip 0\n}\n",
	    "t.conf:7: 'auth-failures-per-ip' out of range: 0");
	expect_prefix(BASE "limits {\npreauth-timeout 0\n}\n",
	    "t.conf:7: 'preauth-timeout' out of range: 0");
	expect_prefix(BASE "limits {\nidle-timeout 8d\n}\n",
	    "t.conf:7: invalid duration '8d'");
	expect_prefix(BASE "limits {\nconnections-per-ip 1000001\n}\n",
	    "t.conf:7: 'connections-per-ip' out of range: 1000001");
	expect_prefix(BASE "limits {\nmax-connections 4294967296\n}\n",
	    "t.conf:7: 'max-connections' out of range: 4294967296");
	expect_prefix(BASE "limits {\npreauth-stanza-size 1023\n}\n",
	    "t.conf:7: 'preauth-stanza-size' out of range: 1023");
	expect_prefix(BASE "limits {\noutput-buffer 4095\n}\n",
	    "t.conf:7: 'output-buffer' out of range: 4095");
	/* Relations between limits are checked where the smaller one is. */
	expect_error(BASE "limits {\npreauth-stanza-size 64K\n"
	                  "stanza-size 32K\n}\n",
	    "t.conf:7: preauth-stanza-size (65536) is larger than stanza-size "
	    "(32768)");
	expect_error(BASE "limits {\noutput-max 128K\noutput-buffer 129K\n}\n",
	    "t.conf:8: output-buffer (132096) is larger than output-max "
	    "(131072)");
	expect_error(BASE "limits {\noutput-buffer 8M\n}\n",
	    "t.conf:7: output-buffer (8388608) is larger than output-max "
	    "(4194304)");
}

static void
test_listen_errors(void)
{
	const char *hosts = "host a {\ncertificate c\nkey k\n}\n";
	char text[256];

#define LISTEN_ERROR(lines, want)                                              \
	do {                                                                   \
		snprintf(text, sizeof(text), "%s%s", hosts, lines);            \
		expect_error(text, want);                                      \
	} while (0)

	LISTEN_ERROR("listen c2s\n", "t.conf:5: missing argument to 'listen' "
	    "(listen c2s|c2s-tls|http|https|s2s|s2s-tls|component|proxy65 "
	    "PORT)");
	LISTEN_ERROR("listen ftp 21\n", "t.conf:5: invalid listener type "
	    "'ftp' (expected c2s, c2s-tls, http, https, s2s, s2s-tls, "
	    "component or proxy65)");
	LISTEN_ERROR("listen c2s 0\n",
	    "t.conf:5: listen port out of range: 0 (allowed 1..65535)");
	LISTEN_ERROR("listen c2s 65536\n",
	    "t.conf:5: listen port out of range: 65536 (allowed 1..65535)");
	LISTEN_ERROR("listen c2s http\n",
	    "t.conf:5: invalid number 'http' for listen port");
	LISTEN_ERROR("listen c2s 5222 address\n",
	    "t.conf:5: missing value for 'address'");
	LISTEN_ERROR("listen c2s 5222 address localhost\n",
	    "t.conf:5: invalid address 'localhost' (expected a numeric IPv4 or "
	    "IPv6 address or *)");
	LISTEN_ERROR("listen c2s 5222 address [::1]\n",
	    "t.conf:5: invalid address '[::1]' (expected a numeric IPv4 or "
	    "IPv6 "
	    "address or *)");
	LISTEN_ERROR("listen c2s 5222 address 1.2.3.4 address 1.2.3.5\n",
	    "t.conf:5: 'address' given twice");
	LISTEN_ERROR("listen c2s-tls 5223 starttls required\n",
	    "t.conf:5: 'starttls' applies only to c2s listeners");
	LISTEN_ERROR("listen c2s 5222 starttls maybe\n",
	    "t.conf:5: invalid value 'maybe' for 'starttls' (expected required "
	    "or optional)");
	LISTEN_ERROR("listen c2s 5222 tls on\n",
	    "t.conf:5: unknown listen "
	    "option 'tls' (expected address or starttls)");
	LISTEN_ERROR("listen c2s 5222\nlisten c2s-tls 5222\n",
	    "t.conf:6: duplicate listener on *:5222 (first at line 5)");
	LISTEN_ERROR("listen c2s 5222 address ::1\n"
	             "listen c2s 5222 address 0::1\n",
	    "t.conf:6: duplicate listener on [::1]:5222 (first at line 5)");
	LISTEN_ERROR("listen c2s 5222 address 10.0.0.1\n"
	             "listen c2s 5222 address 10.0.0.1\n",
	    "t.conf:6: duplicate listener on 10.0.0.1:5222 (first at line 5)");
	LISTEN_ERROR("listen c2s 5222 address 10.0.0.1\nlisten c2s 5222\n",
	    "t.conf:6: listener on *:5222 overlaps 10.0.0.1:5222 at line 5");
#undef LISTEN_ERROR
}

/* "muc" in a host block: conference.HOST by default, off, or domains. */
static void
test_muc_domains(void)
{
	struct conf *c = parse(BASE);

	CHECK(c != NULL && c->hosts[0].nmuc == 1);
	if (c != NULL && c->hosts[0].nmuc == 1)
		CHECK_STR(c->hosts[0].muc[0], "conference.example.org");
	conf_free(c);
	c = parse("listen c2s 5222\nhost a {\ncertificate c\nkey k\n"
	    "muc off\n}\n");
	CHECK(c != NULL && c->hosts[0].nmuc == 0);
	conf_free(c);
	c = parse("listen c2s 5222\nhost a {\ncertificate c\nkey k\n"
	    "muc \"Rooms.Example.ORG\"\nmuc on\n}\n");
	CHECK(c != NULL && c->hosts[0].nmuc == 2);
	if (c != NULL && c->hosts[0].nmuc == 2) {
		CHECK_STR(c->hosts[0].muc[0], "rooms.example.org");
		CHECK_STR(c->hosts[0].muc[1], "conference.a");
	}
	conf_free(c);
	expect_error("listen c2s 5222\nhost a {\ncertificate c\nkey k\n"
	    "muc off\nmuc b\n}\n",
	    "t.conf:6: muc domain after 'muc off' in the same host");
	expect_error("listen c2s 5222\nhost a {\ncertificate c\nkey k\n"
	    "muc b\nmuc off\n}\n",
	    "t.conf:6: 'muc off' with a muc domain in the same host");
	expect_error("listen c2s 5222\nhost a {\ncertificate c\nkey k\n"
	    "muc \"x y\"\n}\n", "t.conf:5: invalid muc domain 'x y'");
	expect_error("listen c2s 5222\nhost a {\ncertificate c\nkey k\n"
	    "}\nhost conference.a {\ncertificate c\nkey k\n}\n",
	    "t.conf:2: muc domain 'conference.a' is a host");
	expect_error("listen c2s 5222\nhost a {\ncertificate c\nkey k\n"
	    "muc x.org\n}\nhost b {\ncertificate c\nkey k\nmuc x.org\n"
	    "}\n", "t.conf:7: muc domain 'x.org' given twice");
}

static void
test_host_errors(void)
{
	expect_error("listen c2s 5222\nhost a {\ncertificate c\nkey k\n}\n"
	             "host A. {\ncertificate c\nkey k\n}\n",
	    "t.conf:6: duplicate host 'a' (first at line 2)");
	expect_error("listen c2s 5222\nhost \"a b\" {\n}\n",
	    "t.conf:2: invalid host name 'a b'");
	expect_error("listen c2s 5222\nhost user@a {\n}\n",
	    "t.conf:2: invalid host name 'user@a'");
	expect_error("listen c2s 5222\nhost \"\" {\n}\n",
	    "t.conf:2: invalid host name ''");
	expect_error("listen c2s 5222\nhost {\n}\n",
	    "t.conf:2: missing argument to 'host'");
	expect_error("listen c2s 5222\nhost a b {\n}\n",
	    "t.conf:2: unexpected argument 'b' to 'host'");
}

static void
test_missing_sections(void)
{
	expect_error("listen c2s 5222\n# no host\n",
	    "t.conf:2: no host configured (add a 'host NAME {' block)");
	expect_error("host a {\ncertificate c\nkey k\n}",
	    "t.conf:4: no listener configured (add e.g. 'listen c2s 5222')");
	expect_prefix("", "t.conf:1: no host configured");
	expect_prefix("\n\n\n", "t.conf:3: no host configured");
}

/* "module NAME on|off": names are kept for modules_check_conf (the
 * daemon's module table); the last statement for a name wins. */
static void
test_module_switches(void)
{
	struct conf *c = parse(BASE "module carbons off\nmodule ping off\n"
	    "module carbons on\nmodule last off\nmodule last off\n");

	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(!conf_module_off(c, "carbons"));
		CHECK(conf_module_off(c, "ping"));
		CHECK(conf_module_off(c, "last"));
		CHECK(c->nmodules_off == 2);
		CHECK(!conf_module_off(c, "vcard"));
	}
	conf_free(c);
	c = parse(BASE);
	CHECK(c != NULL && c->nmodules_off == 0);
	conf_free(c);
	expect_prefix(BASE "module carbons\n", "t.conf:6: ");
	expect_prefix(BASE "module carbons maybe\n", "t.conf:6: ");
	expect_prefix(BASE "module carbons off extra\n", "t.conf:6: ");
}

/* listen http/https, http-trusted-proxy, the metrics block, the http
 * limits. */
static void
test_http(void)
{
	static const char sha[] =
	    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
	struct conf *c;

	{
		char text[1024];

		snprintf(text, sizeof(text), BASE
		    "listen http 5280 address 127.0.0.1\n"
		    "listen https 5443\n"
		    "http-trusted-proxy 127.0.0.1\n"
		    "http-trusted-proxy 10.1.2.3/8\n"
		    "http-trusted-proxy 2001:db8::1/64\n"
		    "metrics {\n\tlistener 5280\n\ttoken-sha256 \"%s\"\n}\n"
		    "limits {\nhttp-header-timeout 2s\nhttp-headers 20\n"
		    "http-header-size 4K\nhttp-idle-timeout 1m\n}\n", sha);
		c = parse(text);
	}
	CHECK(c != NULL);
	if (c == NULL) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	CHECK(c->nlisteners == 3 && c->listeners[1].kind == LISTEN_HTTP &&
	    c->listeners[2].kind == LISTEN_HTTPS);
	CHECK_STR(conf_listen_kind_name(c->listeners[2].kind), "https");
	CHECK(c->ntrusted_proxies == 3);
	CHECK_STR(c->trusted_proxies[1].text, "10.0.0.0/8");
	CHECK_STR(c->trusted_proxies[2].text, "2001:db8::/64");
	CHECK(conf_trusted_proxy(c, "127.0.0.1"));
	CHECK(!conf_trusted_proxy(c, "127.0.0.2"));
	CHECK(conf_trusted_proxy(c, "10.255.0.1"));
	CHECK(!conf_trusted_proxy(c, "11.0.0.1"));
	CHECK(conf_trusted_proxy(c, "2001:db8::ffff:1"));
	CHECK(!conf_trusted_proxy(c, "2001:db8:0:1::1"));
	CHECK(!conf_trusted_proxy(c, "garbage"));
	CHECK(c->metrics.enabled && c->metrics.nports == 1 &&
	    c->metrics.ports[0] == 5280 && c->metrics.token_set);
	CHECK(c->metrics.token_sha256[0] == 0x9f &&
	    c->metrics.token_sha256[31] == 0x08);
	CHECK(c->limits.http_header_timeout == 2 &&
	    c->limits.http_headers == 20 &&
	    c->limits.http_header_size == 4096 &&
	    c->limits.http_idle_timeout == 60);
	conf_free(c);
	/* "token" keeps only its hash: SHA-256("test") is sha above. */
	c = parse(BASE "metrics {\ntoken \"test-token-long-enough\"\n}\n");
	CHECK(c != NULL && c->metrics.token_set && c->metrics.nports == 0);
	conf_free(c);
	c = parse(BASE);
	CHECK(c != NULL && !c->metrics.enabled &&
	    c->limits.http_header_timeout == 10 &&
	    c->limits.http_idle_timeout == 60 && c->limits.http_headers == 64 &&
	    c->limits.http_header_size == 16384);
	conf_free(c);
	expect_error(BASE "http-trusted-proxy example.org\n",
	    "t.conf:6: invalid address 'example.org' for 'http-trusted-proxy' "
	    "(expected a numeric IPv4 or IPv6 address, optionally /PREFIX)");
	expect_prefix(BASE "http-trusted-proxy 10.0.0.0/33\n",
	    "t.conf:6: invalid address '10.0.0.0/33'");
	expect_error(BASE "metrics {\n}\n", "t.conf:6: 'metrics' block "
	    "allows nobody (add 'listener PORT' or 'token')");
	expect_error(BASE "metrics {\nlistener 5222\n}\n", "t.conf:7: "
	    "metrics listener 5222 is no http or https listener's port");
	expect_error(BASE "metrics {\ntoken short\n}\n", "t.conf:7: "
	    "metrics token too short (16 characters at least)");
	expect_error(BASE "metrics {\ntoken-sha256 abc\n}\n", "t.conf:7: "
	    "invalid 'token-sha256' (expected 64 hexadecimal digits)");
	expect_error(BASE "metrics {\ntoken aaaaaaaaaaaaaaaaaa\n"
	    "token-sha256 abc\n}\n", "t.conf:8: 'token' and 'token-sha256' "
	    "given together");
	expect_error(BASE "metrics {\nport 1\n}\n",
	    "t.conf:7: unknown option 'port' in metrics block");
	expect_error(BASE "metrics {\n", "t.conf:6: 'metrics' block is not "
	    "closed (missing '}')");
	expect_error(BASE "listen http 5222\n", "t.conf:6: duplicate "
	    "listener on *:5222 (first at line 1)");
	expect_error(BASE "listen https 5443 starttls optional\n", "t.conf:6: "
	    "'starttls' applies only to c2s listeners");
}

/* websocket, websocket-origin, a host's websocket-url. */
static void
test_websocket(void)
{
	struct conf *c = parse(BASE);

	CHECK(c != NULL && !c->websocket && c->nwebsocket_origins == 0 &&
	    c->hosts[0].websocket_url == NULL);
	conf_free(c);
	c = parse("listen http 5280\n"
	    "websocket on\n"
	    "websocket-origin \"https://chat.example.org\"\n"
	    "websocket-origin \"http://localhost:8080\"\n"
	    "host example.org {\n\tcertificate c.pem\n\tkey k.pem\n"
	    "\twebsocket-url \"wss://example.org/xmpp-websocket\"\n}\n");
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(c->websocket && c->nwebsocket_origins == 2);
		CHECK_STR(c->websocket_origins[1], "http://localhost:8080");
		CHECK_STR(c->hosts[0].websocket_url,
		    "wss://example.org/xmpp-websocket");
	}
	conf_free(c);
	expect_error(BASE "websocket-origin \"https://a.example/chat\"\n",
	    "t.conf:6: invalid origin 'https://a.example/chat' for "
	    "'websocket-origin' (expected https://HOST[:PORT])");
	expect_error(BASE "websocket-origin \"a.example\"\n",
	    "t.conf:6: invalid origin 'a.example' for 'websocket-origin' "
	    "(expected https://HOST[:PORT])");
	expect_error("listen c2s 5222\nhost example.org {\n"
	    "\tcertificate c.pem\n\tkey k.pem\n"
	    "\twebsocket-url \"https://example.org/ws\"\n}\n",
	    "t.conf:5: invalid URL 'https://example.org/ws' for "
	    "'websocket-url' (expected wss://HOST[:PORT]/PATH)");
	expect_error(BASE "websocket maybe\n",
	    "t.conf:6: invalid value 'maybe' for 'websocket' "
	    "(expected on or off)");
}

/* bosh, limits bosh-inactivity, a host's bosh-url. */
static void
test_bosh(void)
{
	struct conf *c = parse(BASE);

	CHECK(c != NULL && !c->bosh && c->hosts[0].bosh_url == NULL &&
	    c->limits.bosh_inactivity == 60);
	conf_free(c);
	c = parse("listen http 5280\n"
	    "bosh on\n"
	    "limits {\n\tbosh-inactivity 2m\n}\n"
	    "host example.org {\n\tcertificate c.pem\n\tkey k.pem\n"
	    "\tbosh-url \"https://example.org/http-bind\"\n}\n");
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(c->bosh && c->limits.bosh_inactivity == 120);
		CHECK_STR(c->hosts[0].bosh_url,
		    "https://example.org/http-bind");
	}
	conf_free(c);
	expect_error("listen c2s 5222\nhost example.org {\n"
	    "\tcertificate c.pem\n\tkey k.pem\n"
	    "\tbosh-url \"wss://example.org/ws\"\n}\n",
	    "t.conf:5: invalid URL 'wss://example.org/ws' for "
	    "'bosh-url' (expected https://HOST[:PORT]/PATH)");
}

/* push-include-body, push-include-sender, limits push-interval,
 * push-registrations, push-rate (XEP-0357). */
static void
test_push(void)
{
	struct conf *c = parse(BASE);

	CHECK(c != NULL && !c->push_include_body && c->push_include_sender &&
	    c->limits.push_interval == 5 && c->limits.push_registrations == 20 &&
	    c->limits.push_rate == 100);
	conf_free(c);
	c = parse(BASE "push-include-body on\npush-include-sender off\n"
	    "limits {\n\tpush-interval 1m\n\tpush-registrations 1\n"
	    "\tpush-rate 0\n}\n");
	CHECK(c != NULL && c->push_include_body && !c->push_include_sender &&
	    c->limits.push_interval == 60 && c->limits.push_registrations == 1 &&
	    c->limits.push_rate == 0);
	conf_free(c);
	expect_error(BASE "limits {\n\tpush-registrations 0\n}\n",
	    "t.conf:7: 'push-registrations' out of range: 0 "
	    "(allowed 1..1000)");
	expect_error(BASE "push-include-body yes\n",
	    "t.conf:6: invalid value 'yes' for 'push-include-body' "
	    "(expected on or off)");
}

/* "webchat PATH DIRECTORY [max-age DURATION]", repeatable. */
static void
test_webchat(void)
{
	struct conf *c = parse(BASE);

	CHECK(c != NULL && c->nwebchats == 0);
	conf_free(c);
	c = parse(BASE "webchat \"/chat/\" \"/usr/share/converse\"\n"
	    "webchat / www max-age 1d\n"
	    "webchat /a/b-c.d~e x max-age 0\n");
	CHECK(c != NULL && c->nwebchats == 3);
	if (c != NULL && c->nwebchats == 3) {
		CHECK_STR(c->webchats[0].path, "/chat");
		CHECK_STR(c->webchats[0].dir, "/usr/share/converse");
		CHECK(c->webchats[0].max_age == 3600);
		CHECK_STR(c->webchats[1].path, "/");
		CHECK(c->webchats[1].max_age == 86400);
		CHECK_STR(c->webchats[2].path, "/a/b-c.d~e");
		CHECK(c->webchats[2].max_age == 0);
	}
	conf_free(c);
	expect_error(BASE "webchat /chat\n",
	    "t.conf:6: usage: webchat PATH DIRECTORY [max-age DURATION]");
	expect_error(BASE "webchat chat d\n", "t.conf:6: invalid webchat "
	    "path 'chat' (expected /NAME[/NAME...] of letters, digits and "
	    "-._~, or /)");
	expect_prefix(BASE "webchat /a//b d\n",
	    "t.conf:6: invalid webchat path '/a//b'");
	expect_prefix(BASE "webchat /a/./b d\n",
	    "t.conf:6: invalid webchat path '/a/./b'");
	expect_prefix(BASE "webchat /a/.. d\n",
	    "t.conf:6: invalid webchat path '/a/..'");
	expect_prefix(BASE "webchat /a%20b d\n",
	    "t.conf:6: invalid webchat path '/a%20b'");
	expect_error(BASE "webchat /upload d\n", "t.conf:6: webchat path "
	    "'/upload' is within /upload, which xmppd serves itself");
	expect_error(BASE "webchat /.well-known/x d\n", "t.conf:6: webchat "
	    "path '/.well-known/x' is within /.well-known, which xmppd "
	    "serves itself");
	c = parse(BASE "webchat /uploads d\n");  /* not within /upload */
	CHECK(c != NULL);
	conf_free(c);
	expect_error(BASE "webchat /c d\nwebchat /c/ e\n",
	    "t.conf:7: webchat path '/c' given twice");
	expect_error(BASE "webchat /c \"\"\n",
	    "t.conf:6: empty webchat directory");
	expect_error(BASE "webchat /c d maxage 1\n",
	    "t.conf:6: unknown webchat option 'maxage' (expected max-age)");
	expect_error(BASE "webchat /c d max-age 400d\n", "t.conf:6: webchat "
	    "max-age out of range: 400d (allowed 0..31536000 seconds)");
}

/* "stun" and "turn": XEP-0215 services, in order. */
static void
test_extdisco(void)
{
	struct conf *c = parse(BASE);

	CHECK(c != NULL && c->nextdisco == 0);
	conf_free(c);
	c = parse(BASE "stun stun.example.org\n"
	    "turn turn.example.org secret \"0123456789abcdef\" ttl 1h "
	    "transport tcp port 443\n"
	    "stun 2001:db8::1 port 3479 transport tcp\n"
	    "turn 192.0.2.1 secret 0123456789abcdefXYZ\n");
	CHECK(c != NULL && c->nextdisco == 4);
	if (c != NULL && c->nextdisco == 4) {
		const struct conf_extdisco *e = c->extdisco;

		CHECK(e[0].type == EXTDISCO_STUN && e[0].port == 3478 &&
		    !e[0].tcp && e[0].secret == NULL);
		CHECK_STR(e[0].host, "stun.example.org");
		CHECK(e[1].type == EXTDISCO_TURN && e[1].port == 443 &&
		    e[1].tcp && e[1].ttl == 3600);
		CHECK_STR(e[1].secret, "0123456789abcdef");
		CHECK(e[2].type == EXTDISCO_STUN && e[2].port == 3479 &&
		    e[2].tcp);
		CHECK_STR(e[2].host, "2001:db8::1");
		CHECK(e[3].type == EXTDISCO_TURN && e[3].port == 3478 &&
		    !e[3].tcp && e[3].ttl == 86400);
	}
	conf_free(c);
	expect_error(BASE "stun\n",
	    "t.conf:6: usage: stun HOST [port PORT] [transport udp|tcp]");
	expect_error(BASE "stun h port\n",
	    "t.conf:6: usage: stun HOST [port PORT] [transport udp|tcp]");
	expect_error(BASE "stun \"a b\"\n", "t.conf:6: invalid stun host "
	    "'a b' (expected a host name or a numeric address)");
	expect_error(BASE "stun h secret 0123456789abcdef\n",
	    "t.conf:6: unknown stun option 'secret' (expected port or "
	    "transport)");
	expect_error(BASE "stun h port 0\n",
	    "t.conf:6: port out of range: 0 (allowed 1..65535)");
	expect_error(BASE "stun h transport sctp\n",
	    "t.conf:6: invalid transport 'sctp' (expected udp or tcp)");
	expect_error(BASE "stun h port 1 port 2\n",
	    "t.conf:6: 'port' given twice");
	expect_error(BASE "turn h\n", "t.conf:6: turn h has no 'secret' "
	    "(coturn's static-auth-secret)");
	expect_error(BASE "turn h secret short\n",
	    "t.conf:6: turn secret too short (16 characters at least)");
	expect_error(BASE "turn h secret 0123456789abcdef ttl 10s\n",
	    "t.conf:6: turn ttl out of range: 10s (allowed 60..2592000 "
	    "seconds)");
	expect_error(BASE "turn h secret 0123456789abcdef realm x\n",
	    "t.conf:6: unknown turn option 'realm' (expected secret, port, "
	    "transport or ttl)");
}

/* A host's see-other-host and see-other-uri (one per transport). */
static void
test_see_other(void)
{
	static const char head[] = "listen c2s 5222\nhost example.org {\n"
	    "\tcertificate c.pem\n\tkey k.pem\n";
	struct conf *c;
	char text[512];

	snprintf(text, sizeof(text), "%s\tsee-other-host "
	    "\"new.example.org:5223\"\n\tsee-other-uri "
	    "\"wss://new.example.org/xmpp-websocket\"\n\tsee-other-uri "
	    "\"https://new.example.org/http-bind\"\n}\n", head);
	c = parse(text);
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK_STR(c->hosts[0].see_other_host, "new.example.org:5223");
		CHECK_STR(c->hosts[0].see_other_ws,
		    "wss://new.example.org/xmpp-websocket");
		CHECK_STR(c->hosts[0].see_other_bosh,
		    "https://new.example.org/http-bind");
	}
	conf_free(c);
	snprintf(text, sizeof(text), "%s\tsee-other-host \"[2001:db8::1]\"\n"
	    "}\n", head);
	c = parse(text);
	CHECK(c != NULL && strcmp(c->hosts[0].see_other_host,
	    "[2001:db8::1]") == 0 && c->hosts[0].see_other_ws == NULL);
	conf_free(c);
	c = parse(BASE);
	CHECK(c != NULL && c->hosts[0].see_other_host == NULL &&
	    c->hosts[0].see_other_ws == NULL &&
	    c->hosts[0].see_other_bosh == NULL);
	conf_free(c);
	static const char *const bad_hosts[] = {"new.example.org:0",
	    "new.example.org:65536", "new.example.org:", ":5222",
	    "[2001:db8::1", "[zz]:5222", "a b", "new.example.org:52x"};
	for (size_t i = 0; i < sizeof(bad_hosts) / sizeof(*bad_hosts); i++) {
		char want[256];

		snprintf(text, sizeof(text), "%s\tsee-other-host \"%s\"\n}\n",
		    head, bad_hosts[i]);
		snprintf(want, sizeof(want), "t.conf:5: invalid value '%s' for "
		    "'see-other-host' (expected HOST or HOST:PORT)",
		    bad_hosts[i]);
		expect_error(text, want);
	}
	snprintf(text, sizeof(text), "%s\tsee-other-uri \"xmpp:new.example\"\n"
	    "}\n", head);
	expect_error(text, "t.conf:5: invalid URI 'xmpp:new.example' for "
	    "'see-other-uri' (expected wss://HOST[:PORT]/PATH or "
	    "https://HOST[:PORT]/PATH)");
	snprintf(text, sizeof(text), "%s\tsee-other-uri \"wss://a.example/ws\"\n"
	    "\tsee-other-uri \"ws://b.example/ws\"\n}\n", head);
	expect_error(text, "t.conf:6: 'see-other-uri' given twice for "
	    "WebSocket");
}

/* Federation: listeners, s2s-* options, dns-server, tls-ca-file, the
 * limits of incoming server streams. */
static void
test_s2s(void)
{
	struct conf *c = parse(BASE);

	CHECK(c != NULL && c->s2s_dialback && !c->s2s_secure_auth &&
	    c->dns_servers == NULL && c->tls_ca_file == NULL &&
	    c->s2s_allow.n == 0 && c->limits.s2s_stanzas_per_second == 500 &&
	    c->limits.s2s_bytes_per_second == 1048576);
	conf_free(c);
	c = parse("listen s2s 5269\nlisten s2s-tls 5270 address 127.0.0.1\n"
	    "s2s-dialback off\ns2s-secure-auth on\n"
	    "s2s-insecure-domain old.example\ns2s-allow a.example\n"
	    "s2s-allow B.Example\ns2s-deny bad.example\n"
	    "dns-server 127.0.0.1:5353\ndns-server [::1]:53\n"
	    "dns-server 192.0.2.1\ntls-ca-file /etc/ssl/ca.pem\n"
	    "limits {\n\ts2s-stanzas-per-second 0\n"
	    "\ts2s-bytes-per-second 2M\n}\n"
	    "host example.org {\n\tcertificate c.pem\n\tkey k.pem\n}\n");
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(c->nlisteners == 2 && c->listeners[0].kind == LISTEN_S2S &&
		    c->listeners[1].kind == LISTEN_S2S_TLS &&
		    c->listeners[1].port == 5270);
		CHECK(!c->s2s_dialback && c->s2s_secure_auth);
		CHECK(conf_strlist_has(&c->s2s_insecure, "old.example"));
		CHECK(c->s2s_allow.n == 2 &&
		    conf_strlist_has(&c->s2s_allow, "b.example"));
		CHECK(conf_strlist_has(&c->s2s_deny, "bad.example") &&
		    !conf_strlist_has(&c->s2s_deny, "a.example"));
		CHECK_STR(c->dns_servers,
		    "127.0.0.1:5353,[::1]:53,192.0.2.1");
		CHECK_STR(c->tls_ca_file, "/etc/ssl/ca.pem");
		CHECK(c->limits.s2s_stanzas_per_second == 0 &&
		    c->limits.s2s_bytes_per_second == 2 * 1048576);
	}
	conf_free(c);
	expect_error("listen c2s 5222\ndns-server example.org\n",
	    "t.conf:2: invalid address 'example.org' for 'dns-server' "
	    "(expected ADDR, ADDR:PORT or [IPv6]:PORT)");
	expect_error("listen c2s 5222\ndns-server 127.0.0.1:0\n",
	    "t.conf:2: invalid address '127.0.0.1:0' for 'dns-server' "
	    "(expected ADDR, ADDR:PORT or [IPv6]:PORT)");
	expect_error("listen c2s 5222\ndns-server [zz]:53\n",
	    "t.conf:2: invalid address '[zz]:53' for 'dns-server' "
	    "(expected ADDR, ADDR:PORT or [IPv6]:PORT)");
	expect_error("listen c2s 5222\ns2s-deny \"a b\"\n",
	    "t.conf:2: invalid domain 'a b' for 's2s-deny'");
	expect_error("listen c2s 5222\ns2s-allow user@example.org\n",
	    "t.conf:2: invalid domain 'user@example.org' for 's2s-allow'");
	expect_error("listen c2s 5222\ns2s-dialback maybe\n",
	    "t.conf:2: invalid value 'maybe' for 's2s-dialback' "
	    "(expected on or off)");
}

/* XEP-0114: "listen component" and the component blocks. */
static void
test_components(void)
{
	struct conf *c;
	const struct conf_component *k;

	c = parse(BASE "listen component 5347\n"
	    "component \"IRC.Example.org\" {\n"
	    "\tsecret \"s3cret\"\n"
	    "}\n"
	    "component gw.example.net {\n"
	    "\tsecret x\n"
	    "\tstanzas-per-second 0\n"
	    "\tstanza-burst 10\n"
	    "}\n");
	CHECK(c != NULL);
	if (c == NULL) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	CHECK(c->nlisteners == 2);
	CHECK(c->listeners[1].kind == LISTEN_COMPONENT);
	CHECK_STR(c->listeners[1].address, "127.0.0.1");
	CHECK(c->listeners[1].port == 5347);
	CHECK_STR(conf_listen_kind_name(LISTEN_COMPONENT), "component");
	CHECK(c->ncomponents == 2);
	k = conf_component_find(c, "irc.example.org");
	CHECK(k != NULL);
	CHECK(k != NULL && strcmp(k->secret, "s3cret") == 0);
	CHECK(k != NULL && k->stanzas_per_second == 500 &&
	    k->stanza_burst == 2000);
	k = conf_component_find(c, "gw.example.net");
	CHECK(k != NULL && k->stanzas_per_second == 0 &&
	    k->stanza_burst == 10);
	CHECK(conf_component_find(c, "example.org") == NULL);
	conf_free(c);

	c = parse(BASE "listen component 5347 address ::1\n");
	CHECK(c != NULL && strcmp(c->listeners[1].address, "::1") == 0);
	conf_free(c);

	expect_error(BASE "component a.example.org {\n}\n",
	    "t.conf:6: component 'a.example.org' has no 'secret'");
	expect_error(BASE "component a.example.org {\nsecret \"\"\n}\n",
	    "t.conf:7: empty value for 'secret'");
	expect_error(BASE "component a.example.org {\nsecret x\n",
	    "t.conf:6: 'component' block is not closed (missing '}')");
	expect_error(BASE "component a.example.org {\nsecret x\nmuc on\n}\n",
	    "t.conf:8: unknown option 'muc' in component block");
	expect_error(BASE "component a.example.org\n",
	    "t.conf:6: 'component' needs a block: 'component NAME {' with "
	    "'}' on a later line");
	expect_error(BASE "component a@b {\nsecret x\n}\n",
	    "t.conf:6: invalid component domain 'a@b'");
	expect_error(BASE "component a.example.org {\nsecret x\n}\n"
	    "component a.example.org {\nsecret y\n}\n",
	    "t.conf:9: duplicate component 'a.example.org' (first at "
	    "line 6)");
	expect_error(BASE "component example.org {\nsecret x\n}\n",
	    "t.conf:6: component domain 'example.org' is taken by host "
	    "'example.org'");
	expect_error(BASE "component conference.example.org {\nsecret x\n}\n",
	    "t.conf:6: component domain 'conference.example.org' is taken "
	    "by host 'example.org'");
	expect_error(BASE "component org {\nsecret x\n}\n",
	    "t.conf:6: component domain 'org' is taken by host "
	    "'example.org'");
	expect_error(BASE "component gw.example.net {\nsecret x\n}\n"
	    "component a.gw.example.net {\nsecret x\n}\n",
	    "t.conf:9: component domain 'a.gw.example.net' lies under "
	    "component 'gw.example.net'");
	expect_error(BASE "component gw.example.net {\nsecret x\n"
	    "stanza-burst 0\n}\n",
	    "t.conf:8: 'stanza-burst' out of range: 0 (allowed 1..1000000)");
}

/* The XEP-0065 proxy: its listener, per-host domains, the announced
 * address and its limits. */
static void
test_proxy65(void)
{
	struct conf *c;

	/* No proxy65 listener: no proxy, whatever the hosts say. */
	c = parse("listen c2s 5222\nhost a {\ncertificate c\nkey k\n}\n");
	CHECK(c != NULL && conf_proxy65_listener(c) == NULL);
	conf_free(c);
	c = parse("listen c2s 5222\nlisten proxy65 7777 address 192.0.2.1\n"
	    "host a {\ncertificate c\nkey k\n}\n"
	    "host b {\ncertificate c\nkey k\nproxy65 off\n}\n"
	    "host c {\ncertificate c\nkey k\nproxy65 Bytes.Example\n}\n"
	    "host d {\ncertificate c\nkey k\nproxy65 on\n}\n");
	CHECK(c != NULL);
	if (c != NULL) {
		const struct conf_listener *l = conf_proxy65_listener(c);

		CHECK(l != NULL && l->kind == LISTEN_PROXY65 &&
		    l->port == 7777 && strcmp(l->address, "192.0.2.1") == 0);
		CHECK_STR(conf_listen_kind_name(LISTEN_PROXY65), "proxy65");
		CHECK_STR(c->hosts[0].proxy65, "proxy.a");
		CHECK_STR(c->hosts[1].proxy65, NULL);
		CHECK_STR(c->hosts[2].proxy65, "bytes.example");
		CHECK_STR(c->hosts[3].proxy65, "proxy.d");
		CHECK_STR(c->proxy65_address, NULL);
		CHECK(c->proxy65_port == 0);
		check_limit_defaults(&c->limits);
	}
	conf_free(c);
	c = parse("listen proxy65 7777\nproxy65-address \"proxy.example.net\""
	    " 443\nlimits {\nproxy65-timeout 2m\nproxy65-idle-timeout 0\n"
	    "proxy65-streams 10\nproxy65-user-streams 2\nproxy65-pending 20\n"
	    "proxy65-rate 10M\nproxy65-user-rate 1M\n"
	    "proxy65-stream-rate 512K\n}\n"
	    "host a {\ncertificate c\nkey k\n}\n");
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK_STR(c->proxy65_address, "proxy.example.net");
		CHECK(c->proxy65_port == 443);
		CHECK(c->limits.proxy65_timeout == 120);
		CHECK(c->limits.proxy65_idle == 0);
		CHECK(c->limits.proxy65_streams == 10);
		CHECK(c->limits.proxy65_user_streams == 2);
		CHECK(c->limits.proxy65_pending == 20);
		CHECK(c->limits.proxy65_rate == 10 * 1024 * 1024);
		CHECK(c->limits.proxy65_user_rate == 1024 * 1024);
		CHECK(c->limits.proxy65_stream_rate == 512 * 1024);
	}
	conf_free(c);
	expect_error("listen proxy65 7777 starttls required\n",
	    "t.conf:1: 'starttls' applies only to c2s listeners");
	expect_error("listen proxy65 7777\nproxy65-address \"a b\"\n",
	    "t.conf:2: invalid proxy65-address 'a b' (expected a host name "
	    "or a numeric address)");
	expect_error("listen proxy65 7777\nproxy65-address x 0\n",
	    "t.conf:2: proxy65-address port out of range: 0 (allowed "
	    "1..65535)");
	expect_error("listen proxy65 7777\nhost a {\ncertificate c\nkey k\n"
	    "proxy65 a@b\n}\n", "t.conf:5: invalid proxy65 domain 'a@b'");
	expect_error("listen proxy65 7777\nhost a {\ncertificate c\nkey k\n"
	    "proxy65 conference.a\n}\n",
	    "t.conf:2: proxy65 domain 'conference.a' is taken");
	expect_error("listen proxy65 7777\nhost a {\ncertificate c\nkey k\n"
	    "proxy65 b\n}\nhost b {\ncertificate c\nkey k\n}\n",
	    "t.conf:2: proxy65 domain 'b' is taken");
	expect_error("listen proxy65 7777\nlimits {\nproxy65-timeout 0\n}\n",
	    "t.conf:3: 'proxy65-timeout' out of range: 0 (allowed 1..3600 "
	    "seconds)");
}

int
main(void)
{
	test_default_text();
	test_module_switches();
	test_minimal_defaults();
	test_every_option();
	test_limit_relations();
	test_example_file();
	test_man_page();
	test_load_errors();
	test_syntax_errors();
	test_statement_errors();
	test_number_errors();
	test_listen_errors();
	test_proxy65();
	test_host_errors();
	test_muc_domains();
	test_missing_sections();
	test_http();
	test_websocket();
	test_bosh();
	test_push();
	test_webchat();
	test_extdisco();
	test_see_other();
	test_s2s();
	test_components();
	return UNIT_DONE("conf");
}
