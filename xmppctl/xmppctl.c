/*
 * xmppctl: administer a running xmppd over its control socket (protocol in
 * shared/ctl.h, manual in xmppctl(8)).  Commands are a table: name, typed
 * arguments and options, how the answer is printed, and a handler.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/nameser.h>
#include <netinet/in.h>
#include <netdb.h>
#include <poll.h>
#include <resolv.h>
#include <strings.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "xmalloc.h"

/* Exit codes; see EXIT STATUS in xmppctl(8). */
enum {
	EXIT_OK = 0,
	EXIT_DAEMON = 1,        /* error reported by the daemon */
	EXIT_USAGE = 2,         /* usage or local input error */
	EXIT_UNREACHABLE = 3,   /* cannot connect, or connection lost */
	EXIT_EXISTS = 4,
	EXIT_NOT_FOUND = 5,
	EXIT_DENIED = 6,
};

#define DEFAULT_SOCKET "/run/xmppd/xmppd.sock"
#define DEV_SOCKET "var/xmppd.sock"
#define PASSWORD_READ_MAX 4096
#define MAX_POSITIONAL 4

enum arg_type { ARG_JID, ARG_HOST, ARG_TEXT, ARG_WORD };

struct arg_spec {
	const char *name;       /* for usage: "JID" */
	enum arg_type type;
	int optional;
};

/* Command options. */
#define OPT_PASSWORD_STDIN 0x01         /* --password-stdin */
#define OPT_HOST 0x02                   /* --host HOST */
#define OPT_HISTORY 0x04                /* --since, --until, --limit */
#define OPT_ONLINE 0x08                 /* --online */
#define OPT_RESET 0x10                  /* --reset */
#define OPT_FULL_NAME 0x20              /* no abbreviation: "sta" stays
                                           status, as before stats came */
#define OPT_ROSTER_ITEM 0x40            /* --name NAME, --group G... */
#define OPT_REASON 0x80                 /* --reason TEXT */
#define OPT_DISABLE 0x100               /* --disable */
#define OPT_ROOM 0x200                  /* --persistent, --public,
                                           --members-only, --name NAME,
                                           --owner JID */
#define OPT_OLDER_THAN 0x400            /* --older-than DURATION */
#define MAX_GROUPS 250                  /* within CTL_FIELDS_MAX */

enum output {
	OUT_NONE,               /* success is silent */
	OUT_LIST,               /* rows: text lines or a JSON array */
	OUT_KEYVALUE,           /* key/value rows: aligned or a JSON object */
	OUT_HISTORY,            /* archived messages: lines or a JSON array */
	OUT_ACCOUNTS,           /* users: a JID a line, or a JSON array */
	OUT_PEP,                /* pep show: a block per node with its
	                           items, or a JSON array of nodes */
	OUT_ROOM,               /* room show: settings, affiliations,
	                           occupants; or one JSON object */
};

struct invocation {
	const struct command *cmd;
	const char *pos[MAX_POSITIONAL];
	size_t npos;
	int password_stdin;
	const char *host;
	const char *since, *until, *limit;
	int online;
	int reset;
	int disable;                        /* kick --disable */
	const char *reason;                 /* disable --reason */
	const char *name;                   /* roster add, room create
	                                       --name */
	const char *owner;                  /* room create --owner */
	const char *older_than;             /* upload purge --older-than */
	int persistent, public, members_only;       /* room create */
	const char *groups[MAX_GROUPS];     /* roster add --group */
	size_t ngroups;
};

struct command {
	const char *name;       /* one or two words: "roster show" */
	const char *request;    /* the protocol command, NULL: the name */
	struct arg_spec args[MAX_POSITIONAL];
	unsigned opts;
	int privileged;         /* documentation: needs root or xmppd's user */
	enum output output;
	int (*run)(const struct invocation *);
	const char *help;
};

static int run_password(const struct invocation *);
static int run_plain(const struct invocation *);
static int run_users(const struct invocation *);
static int run_history(const struct invocation *);
static int run_counted(const struct invocation *);
static int run_log_level(const struct invocation *);
static int run_check(const struct invocation *);
static int run_roster_add(const struct invocation *);
static int run_disable(const struct invocation *);
static int run_revoke_tokens(const struct invocation *);
static int run_room_create(const struct invocation *);
static int run_room_destroy(const struct invocation *);
static int run_upload_purge(const struct invocation *);

static const struct command commands[] = {
	{ "adduser", NULL, { { "JID", ARG_JID, 0 } }, OPT_PASSWORD_STDIN, 1,
	    OUT_NONE, run_password, "create an account" },
	{ "passwd", NULL, { { "JID", ARG_JID, 0 } }, OPT_PASSWORD_STDIN, 1,
	    OUT_NONE, run_password, "set an account's password" },
	{ "deluser", NULL, { { "JID", ARG_JID, 0 } }, 0, 1, OUT_NONE,
	    run_plain, "delete an account and close its sessions" },
	{ "disable", NULL, { { "JID", ARG_JID, 0 } }, OPT_REASON, 1, OUT_NONE,
	    run_disable, "refuse an account's logins, close its sessions" },
	{ "enable", NULL, { { "JID", ARG_JID, 0 } }, 0, 1, OUT_NONE,
	    run_disable, "let a disabled account log in again" },
	{ "users", NULL, { { NULL, 0, 0 } }, OPT_HOST | OPT_ONLINE, 0,
	    OUT_ACCOUNTS, run_users, "list accounts (--online: users online)" },
	{ "user show", "user-show", { { "JID", ARG_JID, 0 } }, 0, 0,
	    OUT_KEYVALUE, run_plain, "show an account: sessions, status, "
	    "last logout, roster, archive and PEP sizes" },
	{ "user tokens", "user-tokens", { { "JID", ARG_JID, 0 } }, 0, 0,
	    OUT_LIST, run_plain, "list an account's FAST login tokens by "
	    "device" },
	{ "user revoke-tokens", "user-revoke-tokens", { { "JID", ARG_JID, 0 },
	    { "DEVICE", ARG_WORD, 1 } }, 0, 1, OUT_NONE, run_revoke_tokens,
	    "revoke an account's FAST tokens (of one device)" },
	{ "sessions", NULL, { { NULL, 0, 0 } }, 0, 0, OUT_LIST, run_plain,
	    "list sessions with address, TLS, client and presence" },
	{ "s2s", NULL, { { NULL, 0, 0 } }, 0, 0, OUT_LIST, run_plain,
	    "list server-to-server streams: domains, direction, state, "
	    "authentication, TLS" },
	{ "kick", NULL, { { "JID[/RESOURCE]", ARG_JID, 0 },
	    { "REASON", ARG_TEXT, 1 } }, OPT_RESET | OPT_DISABLE, 1, OUT_NONE,
	    run_counted, "close sessions (--disable: disable the account "
	    "too)" },
	{ "broadcast", NULL, { { "TEXT", ARG_TEXT, 0 } }, 0, 1, OUT_NONE,
	    run_counted, "send a headline message to every session" },
	{ "pep show", "pep-show", { { "JID", ARG_JID, 0 },
	    { "NODE", ARG_WORD, 1 } }, 0, 0, OUT_PEP, run_plain,
	    "list an account's PEP nodes and items (no payloads)" },
	{ "pep delete", "pep-delete", { { "JID", ARG_JID, 0 },
	    { "NODE", ARG_WORD, 0 } }, 0, 1, OUT_NONE, run_plain,
	    "delete a PEP node and its items" },
	{ "roster show", "roster-show", { { "JID", ARG_JID, 0 } }, 0, 0,
	    OUT_LIST, run_plain, "list an account's roster" },
	{ "roster add", "roster-add", { { "JID", ARG_JID, 0 },
	    { "CONTACT", ARG_JID, 0 } }, OPT_ROSTER_ITEM, 1, OUT_NONE,
	    run_roster_add, "add or change a roster item (name, groups)" },
	{ "roster del", "roster-del", { { "JID", ARG_JID, 0 },
	    { "CONTACT", ARG_JID, 0 } }, 0, 1, OUT_NONE, run_plain,
	    "remove a roster item, as the user's client would" },
	{ "status", NULL, { { NULL, 0, 0 } }, 0, 0, OUT_KEYVALUE, run_plain,
	    "show the daemon's state and counters" },
	{ "stats", NULL, { { NULL, 0, 0 } }, OPT_FULL_NAME, 0, OUT_KEYVALUE,
	    run_plain,
	    "show counters and rates" },
	{ "log level", "log-level", { { "LEVEL", ARG_WORD, 1 } }, 0, 0,
	    OUT_NONE, run_log_level, "show or set (*) the log level" },
	{ "check", NULL, { { NULL, 0, 0 } }, 0, 0, OUT_NONE, run_check,
	    "check configuration, certificates, DNS and listeners" },
	{ "stop", NULL, { { NULL, 0, 0 } }, 0, 1, OUT_NONE, run_plain,
	    "shut the daemon down" },
	{ "reload", NULL, { { NULL, 0, 0 } }, 0, 1, OUT_NONE, run_plain,
	    "reload the configuration and certificates" },
	{ "history", NULL, { { "JID", ARG_JID, 0 }, { "JID2", ARG_JID, 1 } },
	    OPT_HISTORY, 1, OUT_HISTORY, run_history,
	    "show archived messages of JID (with JID2)" },
	/* Room commands are not abbreviated: "ro sh" stays roster show. */
	{ "rooms", NULL, { { NULL, 0, 0 } }, OPT_FULL_NAME, 0, OUT_LIST,
	    run_plain,
	    "list group chat rooms: occupants, flags, messages per minute" },
	{ "room show", "room-show", { { "ROOM", ARG_JID, 0 } },
	    OPT_FULL_NAME, 0,
	    OUT_ROOM, run_plain, "show a room: settings, affiliations, "
	    "occupants" },
	{ "room create", "room-create", { { "ROOM", ARG_JID, 0 } },
	    OPT_ROOM | OPT_FULL_NAME, 1, OUT_NONE, run_room_create, "create a room (unlocked, without "
	    "occupants)" },
	{ "room destroy", "room-destroy", { { "ROOM", ARG_JID, 0 } },
	    OPT_REASON | OPT_FULL_NAME, 1, OUT_NONE, run_room_destroy,
	    "destroy a room; its occupants are told" },
	{ "components", NULL, { { NULL, 0, 0 } }, OPT_FULL_NAME, 0, OUT_LIST,
	    run_plain, "list connected components (XEP-0114): address, "
	    "since, stanzas in and out" },
	{ "upload list", "upload-list", { { "JID", ARG_JID, 1 } }, 0, 1,
	    OUT_LIST, run_plain, "list uploaded files (XEP-0363), of JID or "
	    "all" },
	{ "upload purge", NULL, { { "JID", ARG_JID, 1 } }, OPT_OLDER_THAN, 1,
	    OUT_NONE, run_upload_purge, "delete JID's uploads, or those older "
	    "than a duration (--older-than 30d)" },
	{ "push list", "push-list", { { "JID", ARG_JID, 0 } }, 0, 1,
	    OUT_LIST, run_plain, "list an account's push registrations "
	    "(XEP-0357)" },
	{ "room affiliate", "room-affiliate", { { "ROOM", ARG_JID, 0 },
	    { "JID", ARG_JID, 0 }, { "AFFILIATION", ARG_WORD, 0 } },
	    OPT_FULL_NAME, 1, OUT_NONE, run_plain, "set a JID's affiliation: owner, admin, "
	    "member, outcast or none" },
};

static const char *socket_path;
static int json;

/* Messages. */

static void
warnmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
warnmsg(const char *fmt, ...)
{
	va_list ap;

	fputs("xmppctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
print_synopsis(FILE *f, const struct command *cmd)
{
	fprintf(f, "%s", cmd->name);
	for (size_t i = 0; i < MAX_POSITIONAL && cmd->args[i].name; i++)
		fprintf(f, cmd->args[i].optional ? " [%s]" : " %s",
		    cmd->args[i].name);
	if (cmd->opts & OPT_PASSWORD_STDIN)
		fprintf(f, " [--password-stdin]");
	if (cmd->opts & OPT_HOST)
		fprintf(f, " [--host HOST]");
	if (cmd->opts & OPT_ONLINE)
		fprintf(f, " [--online]");
	if ((cmd->opts & OPT_RESET) && (cmd->opts & OPT_DISABLE))
		fprintf(f, " [--reset | --disable]");
	else if (cmd->opts & OPT_RESET)
		fprintf(f, " [--reset]");
	if (cmd->opts & OPT_REASON)
		fprintf(f, " [--reason TEXT]");
	if (cmd->opts & OPT_HISTORY)
		fprintf(f, " [--since T] [--until T] [--limit N]");
	if (cmd->opts & OPT_ROSTER_ITEM)
		fprintf(f, " [--name NAME] [--group G]...");
	if (cmd->opts & OPT_ROOM)
		fprintf(f, " [--persistent] [--public] [--members-only] "
		    "[--name NAME] [--owner JID]");
	if (cmd->opts & OPT_OLDER_THAN)
		fprintf(f, " [--older-than D]");
}

static void
usage_short(void)
{
	fprintf(stderr, "usage: xmppctl [-s SOCKET] [--json] COMMAND "
	    "[ARG...]\n       xmppctl -h | -V\n");
}

static void
help(void)
{
	printf("usage: xmppctl [-s SOCKET] [--json] COMMAND [ARG...]\n"
	    "       xmppctl -h | -V\n\n"
	    "commands (any unambiguous prefix will do):\n");
	for (size_t i = 0; i < nitems(commands); i++) {
		char syn[128];
		FILE *f = fmemopen(syn, sizeof(syn), "w");

		print_synopsis(f, &commands[i]);
		fclose(f);
		if (strlen(syn) > 32)   /* the synopsis on a line of its own */
			printf("  %s\n  %-32s", syn, "");
		else
			printf("  %-32s", syn);
		printf(" %s%s\n", commands[i].help,
		    commands[i].privileged ? " *" : "");
	}
	printf("  (* needs root or the daemon's user)\n\n"
	    "options:\n"
	    "  -s SOCKET         the control socket; default: $XMPPD_SOCKET,\n"
	    "                    else %s if it exists, else\n"
	    "                    %s\n"
	    "  --json            print listings and status as JSON\n"
	    "  --since T, --until T\n"
	    "                    history: only messages from/until T, a UTC\n"
	    "                    date (2024-05-01) or time (2024-05-01T10:00:00Z)\n"
	    "  --limit N         history: only the last N messages\n"
	    "  --name NAME, --group G\n"
	    "                    roster add: the item's name and groups (the\n"
	    "                    option repeated for several groups)\n"
	    "  --reason TEXT     disable: why, kept with the account for the\n"
	    "                    administrators (not sent to the user);\n"
	    "                    room destroy: sent to the occupants\n"
	    "  --persistent, --public, --members-only, --name NAME, --owner JID\n"
	    "                    room create: the room's configuration and\n"
	    "                    its owner (none by default)\n"
	    "  --reset           kick: close with <reset/>, the client may\n"
	    "                    come back at once\n"
	    "  --disable         kick: disable the account too, so it cannot\n"
	    "                    log in again (REASON is kept as its reason)\n"
	    "  --password-stdin  read the password as one line from standard\n"
	    "                    input instead of asking twice on the "
	    "terminal\n"
	    "  -h, --help        show this help\n"
	    "  -V, --version     show the version\n", DEV_SOCKET,
	    DEFAULT_SOCKET);
}

static void
help_command(const struct command *cmd)
{
	printf("usage: xmppctl [-s SOCKET] [--json] ");
	print_synopsis(stdout, cmd);
	printf("\n%s%s\n", cmd->help, cmd->privileged ?
	    " (needs root or the daemon's user)" : "");
}

/* Output: JSON strings and plain text. */

/* Length of a valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* A JSON string; invalid UTF-8 becomes U+FFFD so the output parses. */
static void
json_string(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);

	putchar('"');
	for (size_t i = 0; i < n;) {
		size_t len = utf8_seq(s + i, n - i);

		if (len == 0) {
			fputs("\xef\xbf\xbd", stdout);
			i++;
			continue;
		}
		if (len > 1) {
			fwrite(s + i, 1, len, stdout);
			i += len;
			continue;
		}
		switch (s[i]) {
		case '"': fputs("\\\"", stdout); break;
		case '\\': fputs("\\\\", stdout); break;
		case '\n': fputs("\\n", stdout); break;
		case '\r': fputs("\\r", stdout); break;
		case '\t': fputs("\\t", stdout); break;
		default:
			if (s[i] < 0x20)
				printf("\\u%04x", s[i]);
			else
				putchar(s[i]);
		}
		i++;
	}
	putchar('"');
}

/* Typed values (shared/ctl.h): the text and the JSON of each. */

/* A time value (unix seconds, maybe with a fraction) as ISO 8601 UTC,
 * e.g. 2026-12-07T09:28:24Z; -1 if v is not one. */
static int
format_time(const char *v, char *buf, size_t size)
{
	char *end;
	long long secs;
	time_t t;
	struct tm tm;

	errno = 0;
	secs = strtoll(v, &end, 10);
	if (end == v || v[0] == '-' || v[0] == '+' || errno != 0)
		return -1;
	if (*end == '.' && end[1] >= '0' && end[1] <= '9')
		for (end++; *end >= '0' && *end <= '9'; end++)
			;       /* whole seconds are shown */
	t = (time_t)secs;
	if (*end != '\0' || gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return -1;
	return 0;
}

/* Whether v is a JSON number as the protocol writes int and num. */
static int
json_number_ok(const char *v)
{
	const char *p = v + (v[0] == '-');

	if (*p == '0' && p[1] >= '0' && p[1] <= '9')
		return 0;       /* no leading zeros in JSON */
	if (*p < '0' || *p > '9')
		return 0;
	while (*p >= '0' && *p <= '9')
		p++;
	if (*p == '.') {
		if (*++p < '0' || *p > '9')
			return 0;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return *p == '\0';
}

/* One value as JSON: numbers, booleans, ISO times, arrays of strings;
 * null for an empty non-text value; a value that is not what its type
 * says is kept as a string, so the output always parses. */
static void
json_value(const char *v, enum ctl_type t)
{
	char iso[64];

	if (t == CTL_T_LIST) {
		const char *item = v;

		putchar('[');
		while (*v != '\0') {
			const char *sep = strchr(item, CTL_LIST_SEP);
			char *one = xstrndup(item, sep ? (size_t)(sep - item) :
			    strlen(item));

			fputs(item == v ? "" : ", ", stdout);
			json_string(one);
			free(one);
			if (sep == NULL)
				break;
			item = sep + 1;
		}
		putchar(']');
		return;
	}
	if (t != CTL_T_TEXT && v[0] == '\0')
		fputs("null", stdout);
	else if ((t == CTL_T_INT || t == CTL_T_NUM) && json_number_ok(v))
		fputs(v, stdout);
	else if (t == CTL_T_BOOL && (strcmp(v, "yes") == 0 ||
	    strcmp(v, "no") == 0))
		fputs(v[0] == 'y' ? "true" : "false", stdout);
	else if (t == CTL_T_TIME && format_time(v, iso, sizeof(iso)) == 0)
		json_string(iso);
	else
		json_string(v);
}

/* One value as text for people (malloc'ed): times in ISO 8601 ("-" for
 * none), list items joined by ", ", the rest as sent. */
static char *
text_value(const char *v, enum ctl_type t)
{
	char iso[64], *s;

	if (t == CTL_T_TIME && v[0] == '\0')
		return xstrdup("-");
	if (t == CTL_T_TIME && format_time(v, iso, sizeof(iso)) == 0)
		return xstrdup(iso);
	if (t != CTL_T_LIST || strchr(v, CTL_LIST_SEP) == NULL)
		return xstrdup(v);
	s = xcalloc(1, strlen(v) * 2 + 1);
	for (char *o = s; *v != '\0'; v++) {
		if (*v == CTL_LIST_SEP) {
			*o++ = ',';
			*o++ = ' ';
		} else
			*o++ = *v;
	}
	return s;
}

/* State of printing one answer. */
struct printer {
	enum output output;
	char **cols;            /* copies of the column names, untyped */
	enum ctl_type *types;   /* their types */
	size_t ncols;
	size_t rows;
	/* OUT_KEYVALUE in text: rows kept to align them. */
	char **keys, **values;
	size_t nkv;
	size_t keywidth;
	/* OUT_PEP in JSON: a node's object is open, with items in it. */
	int pep_open;
	size_t pep_items;
	/* OUT_ROOM: the rows, printed at the end (fields copied). */
	char ***room_rows;
	size_t nroom_rows;
};

static void
printer_free(struct printer *p)
{
	for (size_t i = 0; i < p->ncols; i++)
		free(p->cols[i]);
	free(p->cols);
	free(p->types);
	for (size_t i = 0; i < p->nkv; i++) {
		free(p->keys[i]);
		free(p->values[i]);
	}
	free(p->keys);
	free(p->values);
	for (size_t i = 0; i < p->nroom_rows; i++) {
		for (size_t k = 0; k < p->ncols; k++)
			free(p->room_rows[i][k]);
		free(p->room_rows[i]);
	}
	free(p->room_rows);
}

/* Text that stays on one line: backslash, newline, CR and tab escaped. */
static void
print_oneline(const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '\\': fputs("\\\\", stdout); break;
		case '\n': fputs("\\n", stdout); break;
		case '\r': fputs("\\r", stdout); break;
		case '\t': fputs("\\t", stdout); break;
		default: putchar(*s);
		}
	}
}

/* A value as text on one line. */
static void
print_text_value(const char *v, enum ctl_type t)
{
	char *text = text_value(v, t);

	print_oneline(text);
	free(text);
}

/* The index of column name, -1 if absent. */
static int
col_index(const struct printer *p, const char *name)
{
	for (size_t i = 0; i < p->ncols; i++)
		if (strcmp(p->cols[i], name) == 0)
			return (int)i;
	return -1;
}

/* The value of column name in a row, "" if absent. */
static const char *
row_field(const struct printer *p, const struct ctl_msg *m, const char *name)
{
	int i = col_index(p, name);

	return i >= 0 && (size_t)i < m->nfields ? m->fields[i] : "";
}

/* history as text: TIMESTAMP -> WITH BODY (sent) or <- (received). */
static void
print_history_line(const struct printer *p, const struct ctl_msg *m)
{
	int out = strcmp(row_field(p, m, "direction"), "out") == 0;

	printf("%s %s %s ", row_field(p, m, "timestamp"), out ? "->" : "<-",
	    row_field(p, m, "with"));
	print_oneline(row_field(p, m, "body"));
	putchar('\n');
}

/* users as text: a JID a line; after a tab, whether it is disabled. */
static void
print_account_line(const struct printer *p, const struct ctl_msg *m)
{
	const char *reason = row_field(p, m, "disabled_reason");

	print_oneline(row_field(p, m, "jid"));
	if (strcmp(row_field(p, m, "disabled"), "yes") == 0) {
		fputs("\tdisabled since ", stdout);
		print_text_value(row_field(p, m, "disabled_since"),
		    CTL_T_TIME);
		if (reason[0] != '\0') {
			fputs(": ", stdout);
			print_oneline(reason);
		}
	}
	putchar('\n');
}

/* One column of a row as "KEY": VALUE, typed as its column says. */
static void
json_field(const struct printer *p, const struct ctl_msg *m,
    const char *col, int first)
{
	int i = col_index(p, col);
	char *key = xstrdup(col);

	fputs(first ? "" : ", ", stdout);
	json_string(key);
	fputs(": ", stdout);
	json_value(i >= 0 && (size_t)i < m->nfields ? m->fields[i] : "",
	    i >= 0 ? p->types[i] : CTL_T_TEXT);
	free(key);
}

/* pep show in JSON: an array of node objects, each with its "items". */
static void
print_pep_json(struct printer *p, const struct ctl_msg *m, int item)
{
	static const char *const node_cols[] = { "node", "access", "groups",
		"max_items", "persist", "send_last", "notify_retract",
		"notify_delete", "title", "item_count", "bytes", "created" };
	static const char *const item_cols[] = { "id", "size", "publisher",
		"published" };

	if (item) {
		if (!p->pep_open)
			return;
		fputs(p->pep_items++ ? ",\n    {" : "\n    {", stdout);
		for (size_t i = 0; i < nitems(item_cols); i++)
			json_field(p, m, item_cols[i], i == 0);
		putchar('}');
		return;
	}
	fputs(!p->pep_open ? "[\n  {" : p->pep_items ? "\n  ]},\n  {" :
	    "]},\n  {", stdout);
	for (size_t i = 0; i < nitems(node_cols); i++) {
		const char *v = row_field(p, m, node_cols[i]);

		if (strcmp(node_cols[i], "max_items") == 0 &&
		    json_number_ok(v)) {
			fputs(", \"max_items\": ", stdout);
			fputs(v, stdout);
		} else if (strcmp(node_cols[i], "title") == 0 && v[0] == '\0')
			fputs(", \"title\": null", stdout);
		else
			json_field(p, m, node_cols[i], i == 0);
	}
	fputs(", \"items\": [", stdout);
	p->pep_open = 1;
	p->pep_items = 0;
}

/* pep show as text: the node's name, its configuration and counts
 * indented, then a line per item; a blank line between nodes. */
static void
print_pep_text(struct printer *p, const struct ctl_msg *m, int item)
{
	static const struct {
		const char *label, *col;
	} node_lines[] = {
		{ "access", "access" }, { "max-items", "max_items" },
		{ "persist", "persist" }, { "send-last", "send_last" },
		{ "notify-retract", "notify_retract" },
		{ "notify-delete", "notify_delete" }, { "title", "title" },
		{ "items", "item_count" }, { "bytes", "bytes" },
		{ "created", "created" },
	};
	const char *groups = row_field(p, m, "groups");

	if (item) {
		const char *publisher = row_field(p, m, "publisher");

		fputs("  item  ", stdout);
		print_oneline(row_field(p, m, "id"));
		printf("  %s bytes  ", row_field(p, m, "size"));
		print_oneline(publisher[0] ? publisher : "-");
		putchar(' ');
		putchar(' ');
		print_text_value(row_field(p, m, "published"), CTL_T_TIME);
		putchar('\n');
		return;
	}
	if (p->rows > 0)
		putchar('\n');
	print_oneline(row_field(p, m, "node"));
	putchar('\n');
	for (size_t i = 0; i < nitems(node_lines); i++) {
		const char *v = row_field(p, m, node_lines[i].col);
		int k = col_index(p, node_lines[i].col);

		if (strcmp(node_lines[i].col, "title") == 0 && v[0] == '\0')
			continue;
		printf("  %-16s", node_lines[i].label);
		print_text_value(v, k >= 0 ? p->types[k] : CTL_T_TEXT);
		if (strcmp(node_lines[i].col, "access") == 0 &&
		    groups[0] != '\0') {
			fputs(" (groups: ", stdout);
			print_text_value(groups, CTL_T_LIST);
			putchar(')');
		}
		putchar('\n');
	}
}

/* room show: keep the row for printer_finish. */
static void
keep_room_row(struct printer *p, const struct ctl_msg *m)
{
	char **row = xcalloc(p->ncols + 1, sizeof(char *));

	for (size_t i = 0; i < p->ncols; i++)
		row[i] = xstrdup(i < m->nfields ? m->fields[i] : "");
	p->room_rows = xreallocarray(p->room_rows, p->nroom_rows + 1,
	    sizeof(*p->room_rows));
	p->room_rows[p->nroom_rows++] = row;
}

/* Field name of a kept room row, "" if absent. */
static const char *
room_field(const struct printer *p, char **row, const char *name)
{
	int i = col_index(p, name);

	return i >= 0 ? row[i] : "";
}

/* room show as one JSON object: the settings as typed members, then
 * "affiliations" and "occupants" arrays. */
static void
print_room_json(const struct printer *p)
{
	static const char *const occ_cols[] = { "name", "role",
		"affiliation", "jid", "sessions" };
	size_t n = 0;

	fputs("{", stdout);
	for (size_t i = 0; i < p->nroom_rows; i++) {
		char **row = p->room_rows[i];
		char *key;
		enum ctl_type t;

		if (strcmp(room_field(p, row, "kind"), "setting") != 0)
			continue;
		key = xstrdup(room_field(p, row, "name"));
		t = ctl_name_type(key);
		fputs(n++ ? ",\n  " : "\n  ", stdout);
		json_string(key);
		fputs(": ", stdout);
		json_value(room_field(p, row, "value"), t);
		free(key);
	}
	for (int pass = 0; pass < 2; pass++) {
		const char *kind = pass ? "occupant" : "affiliation";
		size_t k = 0;

		fputs(n++ ? ",\n  " : "\n  ", stdout);
		json_string(pass ? "occupants" : "affiliations");
		fputs(": [", stdout);
		for (size_t i = 0; i < p->nroom_rows; i++) {
			char **row = p->room_rows[i];

			if (strcmp(room_field(p, row, "kind"), kind) != 0)
				continue;
			fputs(k++ ? ",\n    {" : "\n    {", stdout);
			if (!pass) {
				fputs("\"jid\": ", stdout);
				json_string(room_field(p, row, "jid"));
				fputs(", \"affiliation\": ", stdout);
				json_string(room_field(p, row,
				    "affiliation"));
			} else
				for (size_t c = 0; c < nitems(occ_cols); c++) {
					fputs(c ? ", " : "", stdout);
					json_string(c ? occ_cols[c] : "nick");
					fputs(": ", stdout);
					json_value(room_field(p, row,
					    occ_cols[c]), c == 4 ? CTL_T_INT :
					    CTL_T_TEXT);
				}
			putchar('}');
		}
		fputs(k ? "\n  ]" : "]", stdout);
	}
	fputs("\n}\n", stdout);
}

/* room show as text: the settings aligned, then the affiliations and
 * the occupants, a line each. */
static void
print_room_text(const struct printer *p)
{
	size_t width = 0;

	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < p->nroom_rows; i++) {
			char **row = p->room_rows[i];
			char *key, *v;
			enum ctl_type t;

			if (strcmp(room_field(p, row, "kind"), "setting") != 0)
				continue;
			key = xstrdup(room_field(p, row, "name"));
			t = ctl_name_type(key);
			if (pass == 0 && strlen(key) > width)
				width = strlen(key);
			if (pass == 1) {
				v = text_value(room_field(p, row, "value"), t);
				printf("%-*s  ", (int)width, key);
				print_oneline(v[0] ? v : "-");
				putchar('\n');
				free(v);
			}
			free(key);
		}
	for (int pass = 0; pass < 2; pass++) {
		const char *kind = pass ? "occupant" : "affiliation";
		size_t k = 0;

		for (size_t i = 0; i < p->nroom_rows; i++) {
			char **row = p->room_rows[i];

			if (strcmp(room_field(p, row, "kind"), kind) != 0)
				continue;
			if (k++ == 0)
				printf("\n%s\n", pass ? "occupants (nick, role, "
				    "affiliation, real JID, sessions):" :
				    "affiliations:");
			putchar(' ');
			putchar(' ');
			if (!pass) {
				printf("%-8s ", room_field(p, row,
				    "affiliation"));
				print_oneline(room_field(p, row, "jid"));
			} else {
				print_oneline(room_field(p, row, "name"));
				printf("  %s  %s  ", room_field(p, row, "role"),
				    room_field(p, row, "affiliation"));
				print_oneline(room_field(p, row, "jid"));
				printf("  %s", room_field(p, row, "sessions"));
			}
			putchar('\n');
		}
	}
}

static void
print_header(const struct printer *p)
{
	for (size_t i = 0; i < p->ncols; i++)
		printf("%s%s", i ? "\t" : "", p->cols[i]);
	putchar('\n');
}

/* A key/value row: the key's type is its own (ctl.h). */
static void
print_kv_row(struct printer *p, const struct ctl_msg *m)
{
	char *key = xstrdup(m->fields[0]);
	enum ctl_type t = ctl_name_type(key);

	if (json) {
		fputs(p->rows == 0 ? "{\n  " : ",\n  ", stdout);
		json_string(key);
		fputs(": ", stdout);
		json_value(m->fields[1], t);
		free(key);
		return;
	}
	p->keys = xreallocarray(p->keys, p->nkv + 1, sizeof(char *));
	p->values = xreallocarray(p->values, p->nkv + 1, sizeof(char *));
	p->keys[p->nkv] = key;
	p->values[p->nkv] = text_value(m->fields[1], t);
	p->nkv++;
	if (strlen(key) > p->keywidth)
		p->keywidth = strlen(key);
}

static void
print_row(struct printer *p, const struct ctl_msg *m)
{
	if (p->output == OUT_KEYVALUE) {
		if (m->nfields < 2)
			return;
		print_kv_row(p, m);
	} else if (p->output == OUT_ROOM) {
		keep_room_row(p, m);
	} else if (p->output == OUT_PEP) {
		int item = strcmp(row_field(p, m, "kind"), "item") == 0;

		if (json)
			print_pep_json(p, m, item);
		else
			print_pep_text(p, m, item);
	} else if (json) {
		fputs(p->rows == 0 ? "[\n  {" : ",\n  {", stdout);
		for (size_t i = 0; i < m->nfields && i < p->ncols; i++) {
			fputs(i ? ", " : "", stdout);
			json_string(p->cols[i]);
			fputs(": ", stdout);
			json_value(m->fields[i], p->types[i]);
		}
		putchar('}');
	} else if (p->output == OUT_HISTORY) {
		print_history_line(p, m);
	} else if (p->output == OUT_ACCOUNTS) {
		print_account_line(p, m);
	} else {
		if (p->rows == 0 && p->ncols > 1)
			print_header(p);
		for (size_t i = 0; i < m->nfields; i++) {
			fputs(i ? "\t" : "", stdout);
			print_text_value(m->fields[i], i < p->ncols ?
			    p->types[i] : CTL_T_TEXT);
		}
		putchar('\n');
	}
	p->rows++;
}

static int
print_msg(void *arg, const struct ctl_msg *m)
{
	struct printer *p = arg;

	if (m->kind == CTL_MSG_COLS && p->cols == NULL) {
		p->ncols = m->nfields;
		p->cols = xcalloc(m->nfields + 1, sizeof(char *));
		p->types = xcalloc(m->nfields + 1, sizeof(*p->types));
		for (size_t i = 0; i < m->nfields; i++) {
			p->cols[i] = xstrdup(m->fields[i]);
			p->types[i] = ctl_name_type(p->cols[i]);
		}
	} else if (m->kind == CTL_MSG_ROW && p->output != OUT_NONE)
		print_row(p, m);
	return 0;
}

/* Close what print_row opened; text key/value rows are printed here, and
 * the header of an empty listing. */
static void
printer_finish(struct printer *p)
{
	if (p->output == OUT_ROOM && json)
		print_room_json(p);
	else if (p->output == OUT_ROOM)
		print_room_text(p);
	else if (json && p->output == OUT_KEYVALUE)
		fputs(p->rows ? "\n}\n" : "{}\n", stdout);
	else if (json && p->output == OUT_PEP)
		fputs(!p->pep_open ? "[]\n" : p->pep_items ? "\n  ]}\n]\n" :
		    "]}\n]\n", stdout);

	else if (json && p->output != OUT_NONE)
		fputs(p->rows ? "\n]\n" : "[]\n", stdout);
	else if (p->output == OUT_KEYVALUE)
		for (size_t i = 0; i < p->nkv; i++) {
			printf("%-*s  ", (int)p->keywidth, p->keys[i]);
			print_oneline(p->values[i]);
			putchar('\n');
		}
	else if (p->output == OUT_LIST && p->rows == 0 && p->ncols > 1)
		print_header(p);
}

/* Talking to the daemon. */

static int
exit_for_code(const char *code)
{
	if (strcmp(code, CTL_E_EXISTS) == 0)
		return EXIT_EXISTS;
	if (strcmp(code, CTL_E_NOT_FOUND) == 0)
		return EXIT_NOT_FOUND;
	if (strcmp(code, CTL_E_DENIED) == 0)
		return EXIT_DENIED;
	return EXIT_DAEMON;
}

static const char *
find_socket(void)
{
	const char *env = getenv("XMPPD_SOCKET");
	struct stat st;

	if (socket_path != NULL)
		return socket_path;
	if (env != NULL && env[0] != '\0')
		return env;
	if (lstat(DEV_SOCKET, &st) == 0)
		return DEV_SOCKET;
	return DEFAULT_SOCKET;
}

static int
connect_daemon(struct ctl_client *c)
{
	const char *path = find_socket();
	int r = ctl_client_connect(c, path), e = errno;

	if (r == 0)
		return 0;
	if (r == CTL_EPROTO) {
		warnmsg("%s: %s", path, c->err);
		return EXIT_DAEMON;
	}
	warnmsg("cannot connect to %s: %s%s", path, strerror(e),
	    ctl_connect_hint(e));
	return e == EACCES || e == EPERM ? EXIT_DENIED : EXIT_UNREACHABLE;
}

/*
 * Send argv as one request, print its answer as the command wants, and
 * return the exit code.  subject names the request in messages
 * ("adduser alice@example.org").
 */
static int request_ok(const struct invocation *inv, const char *const *argv,
    size_t argc, struct ctl_result *okres);

static int
request(const struct invocation *inv, const char *const *argv, size_t argc)
{
	return request_ok(inv, argv, argc, NULL);
}

/*
 * As request(); when okres is not NULL and the daemon answered "ok", the
 * result is moved there for the caller (to free with ctl_result_free).
 */
static int
request_ok(const struct invocation *inv, const char *const *argv,
    size_t argc, struct ctl_result *okres)
{
	struct ctl_client c;
	struct ctl_result res;
	struct printer p;
	char subject[1200];
	int r, code;

	snprintf(subject, sizeof(subject), "%s%s%s", inv->cmd->name,
	    inv->npos ? " " : "", inv->npos ? inv->pos[0] : "");
	if ((code = connect_daemon(&c)) != 0) {
		ctl_client_close(&c);
		return code;
	}
	memset(&p, 0, sizeof(p));
	p.output = inv->cmd->output;
	if (p.output == OUT_ACCOUNTS && inv->online)
		p.output = OUT_LIST;    /* users --online: JIDs and counts */
	r = ctl_client_request(&c, argv, argc, print_msg, &p, &res);
	if (r == 0 || p.rows > 0)
		printer_finish(&p);
	printer_free(&p);
	if (r != 0) {
		warnmsg("%s: %s", subject, c.err);
		ctl_client_close(&c);
		return r == CTL_EIO ? EXIT_UNREACHABLE : EXIT_DAEMON;
	}
	ctl_client_close(&c);
	code = EXIT_OK;
	if (!res.ok) {
		warnmsg("%s: %s", subject, res.message[0] ? res.message :
		    res.code);
		code = exit_for_code(res.code);
	}
	if (okres != NULL && res.ok)
		*okres = res;
	else
		ctl_result_free(&res);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		warnmsg("writing output: %s", strerror(errno));
		return code ? code : EXIT_DAEMON;
	}
	return code;
}

/* Passwords. */

static struct termios tty_saved;
static int tty_fd = -1;
static volatile sig_atomic_t tty_changed;

static void
tty_restore(void)
{
	if (tty_changed) {
		tcsetattr(tty_fd, TCSANOW, &tty_saved);
		tty_changed = 0;
	}
}

static void
tty_signal(int sig)
{
	tty_restore();
	(void)!write(tty_fd, "\n", 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * Read a line from fd into buf (size bytes, NUL-terminated, newline
 * removed).  Returns its length, -1 on error or EOF before any byte, -2
 * if too long, -3 if it holds a NUL byte.
 */
static ssize_t
read_line(int fd, char *buf, size_t size)
{
	size_t n = 0;
	int nul = 0;
	char ch;

	for (;;) {
		ssize_t r = read(fd, &ch, 1);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (n == 0)
				return -1;
			break;
		}
		if (ch == '\n')
			break;
		if (ch == '\0')
			nul = 1;
		if (n + 1 >= size) {
			explicit_bzero(buf, size);
			return -2;
		}
		buf[n++] = ch;
	}
	buf[n] = '\0';
	return nul ? -3 : (ssize_t)n;
}

static int
prompt(const char *text, char *buf, size_t size)
{
	struct termios noecho;
	ssize_t n;

	/* Echo off before the prompt shows: TCSAFLUSH drops typeahead, so
	 * it must not drop what is typed in answer to the prompt. */
	noecho = tty_saved;
	noecho.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
	noecho.c_lflag |= ECHONL;
	if (tcsetattr(tty_fd, TCSAFLUSH, &noecho) == 0)
		tty_changed = 1;
	(void)!write(tty_fd, text, strlen(text));
	n = read_line(tty_fd, buf, size);
	tty_restore();
	return n < 0 ? (int)n : 0;
}

/* Ask twice on the terminal; 0 or an exit code. */
static int
password_from_tty(const char *jid, char *pw, size_t size)
{
	char again[PASSWORD_READ_MAX], text[1200];
	struct sigaction sa, old[4];
	const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	int r1, r2 = 0, code = 0;

	if ((tty_fd = open("/dev/tty", O_RDWR | O_CLOEXEC)) == -1) {
		warnmsg("cannot ask for the password: /dev/tty: %s (use "
		    "--password-stdin)", strerror(errno));
		return EXIT_USAGE;
	}
	if (tcgetattr(tty_fd, &tty_saved) == -1) {
		warnmsg("cannot ask for the password: /dev/tty: %s",
		    strerror(errno));
		close(tty_fd);
		return EXIT_USAGE;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tty_signal;
	for (size_t i = 0; i < nitems(sigs); i++)
		sigaction(sigs[i], &sa, &old[i]);

	snprintf(text, sizeof(text), "Password for %s: ", jid);
	r1 = prompt(text, pw, size);
	if (r1 == 0)
		r2 = prompt("Retype password: ", again, sizeof(again));
	if (r1 == -2 || r2 == -2) {
		warnmsg("password longer than %d bytes", PASSWORD_READ_MAX - 1);
		code = EXIT_USAGE;
	} else if (r1 != 0 || r2 != 0) {
		warnmsg("no password given");
		code = EXIT_USAGE;
	} else if (strcmp(pw, again) != 0) {
		warnmsg("passwords do not match");
		code = EXIT_USAGE;
	}

	for (size_t i = 0; i < nitems(sigs); i++)
		sigaction(sigs[i], &old[i], NULL);
	close(tty_fd);
	tty_fd = -1;
	explicit_bzero(again, sizeof(again));
	return code;
}

static int
password_from_stdin(char *pw, size_t size)
{
	switch (read_line(STDIN_FILENO, pw, size)) {
	case -1:
		warnmsg("no password on standard input");
		return EXIT_USAGE;
	case -2:
		warnmsg("password longer than %zu bytes", size - 1);
		return EXIT_USAGE;
	case -3:
		warnmsg("password contains a NUL byte");
		return EXIT_USAGE;
	}
	return 0;
}

/* Handlers. */

/*
 * What a change to an account prints, from the daemon's "ok [N] JID"
 * (the JID as the daemon prepared it): "created upper@example.org",
 * "disabled JID, N sessions closed", or the same as a JSON object.
 * Frees res; returns the exit code.
 */
static int
print_account(const char *verb, struct ctl_result *res)
{
	const char *jid = res->nfields > 0 ? res->fields[res->nfields - 1] :
	    "";
	const char *n = res->nfields > 1 ? res->fields[0] : NULL;

	if (json) {
		fputs("{\"jid\": ", stdout);
		json_string(jid);
		if (n != NULL) {
			fputs(", \"sessions\": ", stdout);
			json_value(n, CTL_T_INT);
		}
		fputs("}\n", stdout);
	} else if (n != NULL)
		printf("%s %s, %s session%s closed\n", verb, jid, n,
		    strcmp(n, "1") == 0 ? "" : "s");
	else
		printf("%s %s\n", verb, jid);
	ctl_result_free(res);
	return fflush(stdout) == EOF ? EXIT_DAEMON : EXIT_OK;
}

/* disable, enable, and kick --disable: "ok [N] JID". */
static int
request_account(const struct invocation *inv, const char *verb,
    const char *const *argv, size_t argc)
{
	struct ctl_result res;
	int code;

	memset(&res, 0, sizeof(res));
	if ((code = request_ok(inv, argv, argc, &res)) != EXIT_OK)
		return code;
	return print_account(verb, &res);
}

static int
run_disable(const struct invocation *inv)
{
	const char *argv[3] = { inv->cmd->name, inv->pos[0], inv->reason };

	if (strcmp(inv->cmd->name, "enable") == 0)
		return request_account(inv, "enabled", argv, 2);
	return request_account(inv, "disabled", argv, inv->reason ? 3 : 2);
}

/* kick --disable: the account of JID[/RESOURCE] is disabled, which
 * closes all its sessions; REASON is kept as the disable reason. */
static int
kick_disable(const struct invocation *inv)
{
	char *bare = xstrndup(inv->pos[0], strcspn(inv->pos[0], "/"));
	const char *argv[3] = { "disable", bare, inv->npos > 1 ?
	    inv->pos[1] : NULL };
	int code;

	code = request_account(inv, "disabled", argv, argv[2] ? 3 : 2);
	free(bare);
	return code;
}

static int
run_password(const struct invocation *inv)
{
	char pw[PASSWORD_READ_MAX];
	const char *argv[3];
	struct ctl_result res;
	int code;

	if (inv->password_stdin)
		code = password_from_stdin(pw, sizeof(pw));
	else
		code = password_from_tty(inv->pos[0], pw, sizeof(pw));
	if (code != 0) {
		explicit_bzero(pw, sizeof(pw));
		return code;
	}
	argv[0] = inv->cmd->name;
	argv[1] = inv->pos[0];
	argv[2] = pw;
	if (strcmp(inv->cmd->name, "adduser") != 0) {
		code = request(inv, argv, 3);
		explicit_bzero(pw, sizeof(pw));
		return code;
	}
	memset(&res, 0, sizeof(res));
	code = request_ok(inv, argv, 3, &res);
	explicit_bzero(pw, sizeof(pw));
	if (code != EXIT_OK)
		return code;
	return print_account("created", &res);
}

static const char *
request_name(const struct command *cmd)
{
	return cmd->request ? cmd->request : cmd->name;
}

static int
run_plain(const struct invocation *inv)
{
	const char *argv[1 + MAX_POSITIONAL];

	argv[0] = request_name(inv->cmd);
	for (size_t i = 0; i < inv->npos; i++)
		argv[1 + i] = inv->pos[i];
	return request(inv, argv, 1 + inv->npos);
}

static int
run_users(const struct invocation *inv)
{
	const char *argv[2] = { "users", inv->host };

	if (inv->online) {
		argv[0] = "online";
		if (inv->host != NULL) {
			warnmsg("users: --online lists every host; --host "
			    "does not apply");
			return EXIT_USAGE;
		}
		return request(inv, argv, 1);
	}
	return request(inv, argv, inv->host ? 2 : 1);
}

/* kick and broadcast: the daemon answers "ok N", sessions reached. */
static int
run_counted(const struct invocation *inv)
{
	const char *argv[4];
	struct ctl_result res;
	size_t argc = 0;
	int code;

	if (inv->disable)
		return kick_disable(inv);
	memset(&res, 0, sizeof(res));
	argv[argc++] = inv->cmd->name;
	argv[argc++] = inv->pos[0];
	if (strcmp(inv->cmd->name, "kick") == 0) {
		argv[argc++] = inv->npos > 1 ? inv->pos[1] : "";
		argv[argc++] = inv->reset ? "reset" : "policy-violation";
	}
	code = request_ok(inv, argv, argc, &res);
	if (code != EXIT_OK)
		return code;
	if (json) {
		fputs("{\"sessions\": ", stdout);
		json_value(res.nfields > 0 ? res.fields[0] : "0", CTL_T_INT);
		fputs("}\n", stdout);
	} else
		printf("%s session%s %s\n", res.nfields > 0 ? res.fields[0] :
		    "0", res.nfields > 0 && strcmp(res.fields[0], "1") == 0 ?
		    "" : "s", inv->cmd->name[0] == 'k' ? "closed" : "reached");
	ctl_result_free(&res);
	return fflush(stdout) == EOF ? EXIT_DAEMON : EXIT_OK;
}

/* user revoke-tokens: the daemon answers "ok N", tokens deleted. */
static int
run_revoke_tokens(const struct invocation *inv)
{
	const char *argv[3] = { "user-revoke-tokens", inv->pos[0],
		inv->npos > 1 ? inv->pos[1] : NULL };
	struct ctl_result res;
	const char *n;
	int code;

	memset(&res, 0, sizeof(res));
	code = request_ok(inv, argv, inv->npos > 1 ? 3 : 2, &res);
	if (code != EXIT_OK)
		return code;
	n = res.nfields > 0 ? res.fields[0] : "0";
	if (json) {
		fputs("{\"tokens\": ", stdout);
		json_value(n, CTL_T_INT);
		fputs("}\n", stdout);
	} else
		printf("%s token%s revoked\n", n, strcmp(n, "1") == 0 ? "" :
		    "s");
	ctl_result_free(&res);
	return fflush(stdout) == EOF ? EXIT_DAEMON : EXIT_OK;
}

/* "upload purge JID" or "upload purge --older-than D", D a number of
 * seconds or with a suffix s, m, h, d or w. */
static int
run_upload_purge(const struct invocation *inv)
{
	const char *argv[2];
	struct ctl_result res;
	char secs[24];
	const char *n;
	int code;

	if ((inv->npos > 0) == (inv->older_than != NULL)) {
		warnmsg("upload purge: give a JID or --older-than D, not both");
		return EXIT_USAGE;
	}
	if (inv->older_than != NULL) {
		const char *d = inv->older_than;
		size_t digits = strspn(d, "0123456789");
		unsigned long long v = 0, unit = 1;

		if (digits == 0 || digits > 9 || (d[digits] != '\0' &&
		    (d[digits + 1] != '\0' ||
		    strchr("smhdw", d[digits]) == NULL))) {
			warnmsg("upload purge: --older-than takes a duration "
			    "such as 3600, 90m, 12h, 30d or 2w");
			return EXIT_USAGE;
		}
		for (size_t i = 0; i < digits; i++)
			v = v * 10 + (unsigned long long)(d[i] - '0');
		switch (d[digits]) {
		case 'm': unit = 60; break;
		case 'h': unit = 3600; break;
		case 'd': unit = 86400; break;
		case 'w': unit = 7 * 86400; break;
		default: break;
		}
		snprintf(secs, sizeof(secs), "%llu", v * unit);
		argv[0] = "upload-purge-older";
		argv[1] = secs;
	} else {
		argv[0] = "upload-purge";
		argv[1] = inv->pos[0];
	}
	memset(&res, 0, sizeof(res));
	code = request_ok(inv, argv, 2, &res);
	if (code != EXIT_OK)
		return code;
	n = res.nfields > 0 ? res.fields[0] : "0";
	if (json) {
		fputs("{\"files\": ", stdout);
		json_value(n, CTL_T_INT);
		fputs("}\n", stdout);
	} else
		printf("%s file%s purged\n", n, strcmp(n, "1") == 0 ? "" : "s");
	ctl_result_free(&res);
	return fflush(stdout) == EOF ? EXIT_DAEMON : EXIT_OK;
}

static int
run_log_level(const struct invocation *inv)
{
	const char *argv[2] = { "log-level", inv->npos ? inv->pos[0] : NULL };
	struct ctl_result res;
	int code;

	memset(&res, 0, sizeof(res));
	code = request_ok(inv, argv, inv->npos ? 2 : 1, &res);
	if (code != EXIT_OK)
		return code;
	if (json) {
		fputs("{\"level\": ", stdout);
		json_string(res.nfields > 0 ? res.fields[0] : "");
		fputs("}\n", stdout);
	} else
		printf("%s\n", res.nfields > 0 ? res.fields[0] : "");
	ctl_result_free(&res);
	return fflush(stdout) == EOF ? EXIT_DAEMON : EXIT_OK;
}

/* room create: ROOM and its options as words of the protocol. */
static int
run_room_create(const struct invocation *inv)
{
	const char *argv[7];
	char *name = NULL, *owner = NULL;
	size_t argc = 0;
	int code;

	argv[argc++] = "room-create";
	argv[argc++] = inv->pos[0];
	if (inv->persistent)
		argv[argc++] = "persistent";
	if (inv->public)
		argv[argc++] = "public";
	if (inv->members_only)
		argv[argc++] = "members-only";
	if (inv->name != NULL)
		argv[argc++] = name = xasprintf("name=%s", inv->name);
	if (inv->owner != NULL)
		argv[argc++] = owner = xasprintf("owner=%s", inv->owner);
	code = request(inv, argv, argc);
	free(name);
	free(owner);
	return code;
}

/* room destroy: the daemon answers "ok N", occupants told. */
static int
run_room_destroy(const struct invocation *inv)
{
	const char *argv[3] = { "room-destroy", inv->pos[0], inv->reason };
	struct ctl_result res;
	const char *n;
	int code;

	memset(&res, 0, sizeof(res));
	code = request_ok(inv, argv, inv->reason ? 3 : 2, &res);
	if (code != EXIT_OK)
		return code;
	n = res.nfields > 0 ? res.fields[0] : "0";
	if (json) {
		fputs("{\"occupants\": ", stdout);
		json_value(n, CTL_T_INT);
		fputs("}\n", stdout);
	} else
		printf("%s occupant%s told\n", n, strcmp(n, "1") == 0 ? "" :
		    "s");
	ctl_result_free(&res);
	return fflush(stdout) == EOF ? EXIT_DAEMON : EXIT_OK;
}

/* roster add: JID CONTACT NAME GROUP...; the name "" for none. */
static int
run_roster_add(const struct invocation *inv)
{
	const char *argv[4 + MAX_GROUPS];

	argv[0] = "roster-add";
	argv[1] = inv->pos[0];
	argv[2] = inv->pos[1];
	argv[3] = inv->name ? inv->name : "";
	for (size_t i = 0; i < inv->ngroups; i++)
		argv[4 + i] = inv->groups[i];
	return request(inv, argv, 4 + inv->ngroups);
}

/* n digits at *p (advanced); -1 if not digits. */
static int
time_digits(const char **p, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	return v;
}

/*
 * A time for --since/--until as milliseconds since the epoch: a date
 * YYYY-MM-DD (00:00 UTC) or YYYY-MM-DDThh:mm[:ss[.fff]] followed by Z,
 * +hh:mm, -hh:mm or nothing (UTC).  -1 if malformed.
 */
static long long
parse_time(const char *s)
{
	const char *p = s;
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off = 0;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if ((y = time_digits(&p, 4)) < 0 || *p++ != '-' ||
	    (mo = time_digits(&p, 2)) < 0 || *p++ != '-' ||
	    (d = time_digits(&p, 2)) < 0)
		return -1;
	if (*p == 'T') {
		p++;
		if ((h = time_digits(&p, 2)) < 0 || *p++ != ':' ||
		    (mi = time_digits(&p, 2)) < 0)
			return -1;
		if (*p == ':') {
			p++;
			if ((sec = time_digits(&p, 2)) < 0)
				return -1;
			if (*p == '.') {
				int scale = 100;

				if (*++p < '0' || *p > '9')
					return -1;
				for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
					ms += (*p - '0') * scale;
			}
		}
		if (*p == 'Z')
			p++;
		else if (*p == '+' || *p == '-') {
			int sign = *p++ == '+' ? 1 : -1, oh, om;

			if ((oh = time_digits(&p, 2)) < 0 || *p++ != ':' ||
			    (om = time_digits(&p, 2)) < 0 || oh > 23 || om > 59)
				return -1;
			off = sign * (oh * 60 + om) * 60;
		}
	}
	if (*p != '\0' || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 ||
	    h > 23 || mi > 59 || sec > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -1;
	return ((long long)t - off) * 1000 + ms;
}

static int
run_history(const struct invocation *inv)
{
	char since[24] = "-", until[24] = "-", limit[24] = "-";
	const char *argv[6];
	long long v;
	char *end;

	if (inv->since != NULL) {
		if ((v = parse_time(inv->since)) < 0) {
			warnmsg("history: invalid time \"%s\" for --since "
			    "(YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ)", inv->since);
			return EXIT_USAGE;
		}
		snprintf(since, sizeof(since), "%lld", v);
	}
	if (inv->until != NULL) {
		if ((v = parse_time(inv->until)) < 0) {
			warnmsg("history: invalid time \"%s\" for --until "
			    "(YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ)", inv->until);
			return EXIT_USAGE;
		}
		snprintf(until, sizeof(until), "%lld", v);
	}
	if (inv->limit != NULL) {
		errno = 0;
		v = strtoll(inv->limit, &end, 10);
		if (inv->limit[0] < '0' || inv->limit[0] > '9' || *end != '\0' ||
		    errno != 0 || v <= 0) {
			warnmsg("history: --limit needs a positive number");
			return EXIT_USAGE;
		}
		snprintf(limit, sizeof(limit), "%lld", v);
	}
	argv[0] = "history";
	argv[1] = inv->pos[0];
	argv[2] = inv->npos > 1 ? inv->pos[1] : "-";
	argv[3] = since;
	argv[4] = until;
	argv[5] = limit;
	return request(inv, argv, 6);
}

/* check: the daemon's rows, then DNS and listeners from here. */

struct check_state {
	char **level, **subject, **message;
	size_t n;
	size_t errors, warnings;
};

static void
check_add(struct check_state *st, const char *level, const char *subject,
    const char *message)
{
	st->level = xreallocarray(st->level, st->n + 1, sizeof(char *));
	st->subject = xreallocarray(st->subject, st->n + 1, sizeof(char *));
	st->message = xreallocarray(st->message, st->n + 1, sizeof(char *));
	st->level[st->n] = xstrdup(level);
	st->subject[st->n] = xstrdup(subject);
	st->message[st->n] = xstrdup(message);
	st->n++;
	if (strcmp(level, "error") == 0)
		st->errors++;
	else if (strcmp(level, "warning") == 0)
		st->warnings++;
}

static int
check_collect(void *arg, const struct ctl_msg *m)
{
	if (m->kind == CTL_MSG_ROW && m->nfields >= 3)
		check_add(arg, m->fields[0], m->fields[1], m->fields[2]);
	return 0;
}

/* Special-use names (RFC 6761) and single labels have no SRV records. */
static int
dns_skipped(const char *host)
{
	static const char *const suffixes[] = { ".localhost", ".test",
		".invalid", ".example", ".local" };
	size_t hl = strlen(host);

	if (strchr(host, '.') == NULL)
		return 1;
	for (size_t i = 0; i < nitems(suffixes); i++) {
		size_t sl = strlen(suffixes[i]);

		if (hl >= sl && strcasecmp(host + hl - sl, suffixes[i]) == 0)
			return 1;
	}
	return 0;
}

/* The SRV records of host for clients, and with federation for servers
 * (RFC 6120 §3.2.1, XEP-0368): one line each. */
static void
check_srv(struct check_state *st, struct __res_state *rs, const char *host,
    int s2s)
{
	static const char *const services[] = { "_xmpp-client._tcp",
		"_xmpps-client._tcp", "_xmpp-server._tcp",
		"_xmpps-server._tcp" };
	unsigned char answer[4096];
	char name[1100], msg[1300];
	int found = 0;

	for (size_t i = 0; i < (s2s ? 4 : 2); i++) {
		int n;

		snprintf(name, sizeof(name), "%s.%s", services[i], host);
		n = res_nquery(rs, name, ns_c_in, ns_t_srv, answer,
		    sizeof(answer));
		if (n > 0) {
			ns_msg h;

			if (ns_initparse(answer, n, &h) == 0 &&
			    ns_msg_count(h, ns_s_an) > 0) {
				found++;
				snprintf(msg, sizeof(msg), "%s: %d record%s",
				    name, ns_msg_count(h, ns_s_an),
				    ns_msg_count(h, ns_s_an) == 1 ? "" : "s");
				check_add(st, "ok", host, msg);
				continue;
			}
		}
		snprintf(msg, sizeof(msg), "no DNS SRV record %s", name);
		check_add(st, "warning", host, msg);
	}
	(void)found;
}

/* Connect to ADDRESS PORT within two seconds; 0 or an errno. */
static int
check_connect(const char *address, const char *port)
{
	struct addrinfo hints, *res, *ai;
	const char *a = strcmp(address, "*") == 0 ? "localhost" : address;
	int err = ECONNREFUSED;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(a, port, &hints, &res) != 0)
		return EHOSTUNREACH;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		struct pollfd pfd;
		socklen_t len = sizeof(err);

		if (fd == -1) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			close(fd);
			err = 0;
			break;
		}
		if (errno != EINPROGRESS) {
			err = errno;
			close(fd);
			continue;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, 2000) != 1) {
			err = ETIMEDOUT;
			close(fd);
			continue;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		close(fd);
		if (err == 0)
			break;
	}
	freeaddrinfo(res);
	return err;
}

static int
run_check(const struct invocation *inv)
{
	const char *argv[1] = { "check" };
	struct check_state st;
	struct ctl_client c;
	struct ctl_result res;
	struct __res_state rs;
	int r, code, dns_ok, s2s = 0;

	memset(&st, 0, sizeof(st));
	if ((code = connect_daemon(&c)) != 0) {
		ctl_client_close(&c);
		return code;
	}
	r = ctl_client_request(&c, argv, 1, check_collect, &st, &res);
	ctl_client_close(&c);
	if (r != 0) {
		warnmsg("check: %s", c.err);
		return r == CTL_EIO ? EXIT_UNREACHABLE : EXIT_DAEMON;
	}
	if (!res.ok) {
		warnmsg("check: %s", res.message[0] ? res.message : res.code);
		code = exit_for_code(res.code);
		ctl_result_free(&res);
		return code;
	}
	ctl_result_free(&res);
	memset(&rs, 0, sizeof(rs));
	dns_ok = res_ninit(&rs) == 0;
	if (dns_ok) {
		rs.retrans = 2;
		rs.retry = 1;
	}
	for (size_t i = 0; i < st.n; i++) {
		size_t l = strlen(st.message[i]);

		/* a listener row: "ADDRESS PORT KIND" */
		if (strcmp(st.level[i], "info") == 0 &&
		    strcmp(st.subject[i], "listener") == 0 && l > 4 &&
		    (strcmp(st.message[i] + l - 4, " s2s") == 0 ||
		    (l > 8 && strcmp(st.message[i] + l - 8, " s2s-tls") == 0)))
			s2s = 1;
	}
	for (size_t i = 0, n = st.n; i < n; i++) {
		char *sp;

		if (strcmp(st.level[i], "info") != 0)
			continue;
		if (strcmp(st.subject[i], "host") == 0) {
			if (dns_skipped(st.message[i]))
				check_add(&st, "ok", st.message[i], "DNS SRV "
				    "not checked (special-use or local name)");
			else if (!dns_ok)
				check_add(&st, "warning", st.message[i],
				    "cannot initialise the DNS resolver");
			else
				check_srv(&st, &rs, st.message[i], s2s);
		} else if (strcmp(st.subject[i], "listener") == 0 &&
		    (sp = strchr(st.message[i], ' ')) != NULL) {
			char *addr = xstrndup(st.message[i],
			    (size_t)(sp - st.message[i]));
			char *port = xstrdup(sp + 1), *kind;
			char msg[1200];
			int e;

			if ((kind = strchr(port, ' ')) != NULL)
				*kind = '\0';
			if ((e = check_connect(addr, port)) == 0) {
				snprintf(msg, sizeof(msg), "listener %s port "
				    "%s accepts connections", addr, port);
				check_add(&st, "ok", "listener", msg);
			} else {
				snprintf(msg, sizeof(msg), "listener %s port "
				    "%s: %s", addr, port, strerror(e));
				check_add(&st, "error", "listener", msg);
			}
			free(addr);
			free(port);
		}
	}
	if (dns_ok)
		res_nclose(&rs);
	if (json)
		fputs("[", stdout);
	for (size_t i = 0, k = 0; i < st.n; i++) {
		if (strcmp(st.level[i], "info") == 0)
			continue;
		if (json) {
			fputs(k++ ? ",\n  {" : "\n  {", stdout);
			fputs("\"level\": ", stdout);
			json_string(st.level[i]);
			fputs(", \"subject\": ", stdout);
			json_string(st.subject[i]);
			fputs(", \"message\": ", stdout);
			json_string(st.message[i]);
			putchar('}');
		} else if (strcmp(st.level[i], "ok") != 0)
			printf("%s: %s: %s\n", st.level[i], st.subject[i],
			    st.message[i]);
	}
	if (json)
		fputs("\n]\n", stdout);
	else
		printf("%zu error%s, %zu warning%s\n", st.errors,
		    st.errors == 1 ? "" : "s", st.warnings,
		    st.warnings == 1 ? "" : "s");
	code = st.errors ? EXIT_DAEMON : EXIT_OK;
	for (size_t i = 0; i < st.n; i++) {
		free(st.level[i]);
		free(st.subject[i]);
		free(st.message[i]);
	}
	free(st.level);
	free(st.subject);
	free(st.message);
	if (fflush(stdout) == EOF)
		return EXIT_DAEMON;
	return code;
}

/* Command line. */

/* Words of a command's name matched by argv[0..argc): how many, or 0
 * if some word is not a prefix; *exact tells whether all were whole. */
static size_t
match_words(const char *name, char **argv, int argc, int *exact)
{
	size_t n = 0;

	*exact = 1;
	while (*name != '\0') {
		const char *sp = strchr(name, ' ');
		size_t wl = sp ? (size_t)(sp - name) : strlen(name);
		size_t al;

		if ((int)n >= argc)
			return 0;
		al = strlen(argv[n]);
		if (al == 0 || al > wl || strncmp(name, argv[n], al) != 0)
			return 0;
		if (al != wl)
			*exact = 0;
		n++;
		name += wl;
		if (*name == ' ')
			name++;
	}
	return n;
}

/*
 * The command named by argv[0..argc), abbreviations allowed word by word;
 * the one matching the most words wins, then a whole-word match.  Sets
 * *used to the number of words taken.
 */
static const struct command *
find_command(char **argv, int argc, int *used)
{
	const struct command *found = NULL;
	size_t best = 0, n = 0;
	int best_exact = 0;

	for (size_t i = 0; i < nitems(commands); i++) {
		int exact;
		size_t w = match_words(commands[i].name, argv, argc, &exact);

		if (w == 0 || (!exact && (commands[i].opts & OPT_FULL_NAME)))
			continue;
		if (w > best || (w == best && exact && !best_exact)) {
			best = w;
			best_exact = exact;
			found = &commands[i];
			n = 1;
		} else if (w == best && exact == best_exact)
			n++;
	}
	if (n == 1) {
		*used = (int)best;
		return found;
	}
	if (n == 0) {
		warnmsg("unknown command \"%s\" (xmppctl -h lists them)",
		    argv[0]);
		return NULL;
	}
	fprintf(stderr, "xmppctl: ambiguous command \"%s\":", argv[0]);
	for (size_t i = 0, k = 0; i < nitems(commands); i++) {
		int exact;

		if (match_words(commands[i].name, argv, argc, &exact) == best &&
		    exact == best_exact &&
		    (exact || !(commands[i].opts & OPT_FULL_NAME)))
			fprintf(stderr, "%s %s", k++ ? "," : "",
			    commands[i].name);
	}
	fputc('\n', stderr);
	return NULL;
}

/*
 * An option that takes a value, as "-s VALUE", "-sVALUE", "--name VALUE"
 * or "--name=VALUE".  Returns 1 and sets *value if argv[*i] is it
 * (advancing *i past a separate value), 0 if not, -1 if the value is
 * missing.
 */
static int
option_value(char **argv, int argc, int *i, const char *shortopt,
    const char *longopt, const char **value)
{
	const char *a = argv[*i];
	size_t ll = longopt ? strlen(longopt) : 0;

	if ((shortopt && strcmp(a, shortopt) == 0) ||
	    (longopt && strcmp(a, longopt) == 0)) {
		if (*i + 1 >= argc) {
			warnmsg("option %s needs a value", a);
			return -1;
		}
		*value = argv[++*i];
		return 1;
	}
	if (shortopt && strncmp(a, shortopt, 2) == 0 && a[1] != '-' &&
	    a[2] != '\0') {
		*value = a + 2;
		return 1;
	}
	if (longopt && strncmp(a, longopt, ll) == 0 && a[ll] == '=') {
		*value = a + ll + 1;
		return 1;
	}
	return 0;
}

/* Global options, valid anywhere before "--".  1 taken, 0 not, -1 bad. */
static int
global_option(char **argv, int argc, int *i, const struct command *cmd)
{
	const char *a = argv[*i];
	int r;

	if ((r = option_value(argv, argc, i, "-s", "--socket",
	    &socket_path)) != 0)
		return r;
	if (strcmp(a, "--json") == 0) {
		json = 1;
		return 1;
	}
	if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
		if (cmd)
			help_command(cmd);
		else
			help();
		exit(EXIT_OK);
	}
	if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
		printf("xmppctl %s (control protocol %d)\n", XMPPD_VERSION,
		    CTL_PROTOCOL_VERSION);
		exit(EXIT_OK);
	}
	return 0;
}

static int
command_usage(const struct command *cmd)
{
	fprintf(stderr, "usage: xmppctl [-s SOCKET] [--json] ");
	print_synopsis(stderr, cmd);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

/* roster add's --name and --group: 1 taken, 0 not, -1 bad. */
static int
roster_item_option(struct invocation *inv, char **argv, int argc, int *i)
{
	const char *v;
	int r;

	if ((r = option_value(argv, argc, i, NULL, "--name", &v)) == 1) {
		if (inv->name != NULL) {
			warnmsg("%s: --name given twice", inv->cmd->name);
			return -1;
		}
		inv->name = v;
		return 1;
	}
	if (r != 0 || (r = option_value(argv, argc, i, NULL, "--group",
	    &v)) != 1)
		return r;
	if (v[0] == '\0') {
		warnmsg("%s: empty --group", inv->cmd->name);
		return -1;
	}
	if (inv->ngroups == MAX_GROUPS) {
		warnmsg("%s: more than %d groups", inv->cmd->name, MAX_GROUPS);
		return -1;
	}
	for (size_t k = 0; k < inv->ngroups; k++)
		if (strcmp(inv->groups[k], v) == 0) {
			warnmsg("%s: group \"%s\" given twice", inv->cmd->name,
			    v);
			return -1;
		}
	inv->groups[inv->ngroups++] = v;
	return 1;
}

/* Flag name of the command (it has opt): sets *flag if a is it. */
static int
flag_option(unsigned opts, unsigned opt, const char *name, const char *a,
    int *flag)
{
	if (!(opts & opt) || strcmp(a, name) != 0)
		return 0;
	*flag = 1;
	return 1;
}

/* Option name with a value, as option_value(), if the command has opt. */
static int
value_option(unsigned opts, unsigned opt, const char *name, char **argv,
    int argc, int *i, const char **value)
{
	return opts & opt ? option_value(argv, argc, i, NULL, name, value) :
	    0;
}

/* One of the command's own options at argv[*i]: 1 taken, 0 not one of
 * them, -1 bad (a value missing or refused). */
static int
command_option(struct invocation *inv, char **argv, int argc, int *i)
{
	unsigned o = inv->cmd->opts;
	const char *a = argv[*i];
	int r;

	if (flag_option(o, OPT_PASSWORD_STDIN, "--password-stdin", a,
	    &inv->password_stdin) ||
	    flag_option(o, OPT_ONLINE, "--online", a, &inv->online) ||
	    flag_option(o, OPT_RESET, "--reset", a, &inv->reset) ||
	    flag_option(o, OPT_DISABLE, "--disable", a, &inv->disable) ||
	    flag_option(o, OPT_ROOM, "--persistent", a, &inv->persistent) ||
	    flag_option(o, OPT_ROOM, "--public", a, &inv->public) ||
	    flag_option(o, OPT_ROOM, "--members-only", a,
	    &inv->members_only))
		return 1;
	if ((r = value_option(o, OPT_HOST, "--host", argv, argc, i,
	    &inv->host)) != 0 ||
	    (r = value_option(o, OPT_REASON, "--reason", argv, argc, i,
	    &inv->reason)) != 0 ||
	    (r = value_option(o, OPT_HISTORY, "--since", argv, argc, i,
	    &inv->since)) != 0 ||
	    (r = value_option(o, OPT_HISTORY, "--until", argv, argc, i,
	    &inv->until)) != 0 ||
	    (r = value_option(o, OPT_HISTORY, "--limit", argv, argc, i,
	    &inv->limit)) != 0 ||
	    (r = value_option(o, OPT_ROOM, "--name", argv, argc, i,
	    &inv->name)) != 0 ||
	    (r = value_option(o, OPT_ROOM, "--owner", argv, argc, i,
	    &inv->owner)) != 0 ||
	    (r = value_option(o, OPT_OLDER_THAN, "--older-than", argv, argc,
	    i, &inv->older_than)) != 0)
		return r;
	return o & OPT_ROSTER_ITEM ? roster_item_option(inv, argv, argc, i) :
	    0;
}

/* The command's arguments and options, argv[i..argc). */
static int
parse_command(struct invocation *inv, char **argv, int argc, int i)
{
	const struct command *cmd = inv->cmd;
	size_t maxpos = 0, minpos = 0;
	int dashdash = 0, r;

	while (maxpos < MAX_POSITIONAL && cmd->args[maxpos].name != NULL) {
		if (!cmd->args[maxpos].optional)
			minpos = maxpos + 1;
		maxpos++;
	}
	for (; i < argc; i++) {
		const char *a = argv[i];

		if (!dashdash && strcmp(a, "--") == 0) {
			dashdash = 1;
			continue;
		}
		if (!dashdash && a[0] == '-' && a[1] != '\0') {
			if ((r = global_option(argv, argc, &i, cmd)) == 1)
				continue;
			if (r == -1)
				return command_usage(cmd);
			if ((r = command_option(inv, argv, argc, &i)) == 1)
				continue;
			if (r == -1)
				return command_usage(cmd);
			warnmsg("%s: unknown option %s", cmd->name, a);
			return command_usage(cmd);
		}
		if (inv->npos == maxpos) {
			warnmsg("%s: unexpected argument \"%s\"", cmd->name, a);
			return command_usage(cmd);
		}
		if (a[0] == '\0') {
			warnmsg("%s: empty %s", cmd->name,
			    cmd->args[inv->npos].name);
			return command_usage(cmd);
		}
		inv->pos[inv->npos++] = a;
	}
	if (inv->npos < minpos) {
		warnmsg("%s: missing %s", cmd->name,
		    cmd->args[inv->npos].name);
		return command_usage(cmd);
	}
	if (inv->host != NULL && inv->host[0] == '\0') {
		warnmsg("%s: empty --host", cmd->name);
		return command_usage(cmd);
	}
	if (inv->reset && inv->disable) {
		warnmsg("%s: --reset and --disable exclude each other (a "
		    "disabled account's sessions end with <not-authorized/>)",
		    cmd->name);
		return command_usage(cmd);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct invocation inv;
	int i, r, used = 1;

	memset(&inv, 0, sizeof(inv));
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (argv[i][0] != '-' || argv[i][1] == '\0')
			break;
		if ((r = global_option(argv, argc, &i, NULL)) == 1)
			continue;
		if (r == 0)
			warnmsg("unknown option %s", argv[i]);
		usage_short();
		return EXIT_USAGE;
	}
	if (i >= argc) {
		warnmsg("no command given");
		usage_short();
		return EXIT_USAGE;
	}
	if ((inv.cmd = find_command(argv + i, argc - i, &used)) == NULL)
		return EXIT_USAGE;
	if ((r = parse_command(&inv, argv, argc, i + used)) != 0)
		return r;
	return inv.cmd->run(&inv);
}
