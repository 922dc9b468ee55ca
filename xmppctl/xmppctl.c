/*
 * xmppctl: administer a running xmppd over its control socket (protocol in
 * shared/ctl.h, manual in xmppctl(8)).  Commands are a table: name, typed
 * arguments and options, how the answer is printed, and a handler.
 */
#include <sys/stat.h>

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

enum arg_type { ARG_JID, ARG_HOST };

struct arg_spec {
	const char *name;       /* for usage: "JID" */
	enum arg_type type;
	int optional;
};

/* Command options. */
#define OPT_PASSWORD_STDIN 0x01         /* --password-stdin */
#define OPT_HOST 0x02                   /* --host HOST */
#define OPT_HISTORY 0x04                /* --since, --until, --limit */

enum output {
	OUT_NONE,               /* success is silent */
	OUT_LIST,               /* rows: text lines or a JSON array */
	OUT_KEYVALUE,           /* key/value rows: aligned or a JSON object */
	OUT_HISTORY,            /* archived messages: lines or a JSON array */
};

struct invocation {
	const struct command *cmd;
	const char *pos[MAX_POSITIONAL];
	size_t npos;
	int password_stdin;
	const char *host;
	const char *since, *until, *limit;
};

struct command {
	const char *name;
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

static const struct command commands[] = {
	{ "adduser", { { "JID", ARG_JID, 0 } }, OPT_PASSWORD_STDIN, 1,
	    OUT_NONE, run_password, "create an account" },
	{ "passwd", { { "JID", ARG_JID, 0 } }, OPT_PASSWORD_STDIN, 1,
	    OUT_NONE, run_password, "set an account's password" },
	{ "deluser", { { "JID", ARG_JID, 0 } }, 0, 1, OUT_NONE, run_plain,
	    "delete an account and close its sessions" },
	{ "users", { { NULL, 0, 0 } }, OPT_HOST, 0, OUT_LIST, run_users,
	    "list accounts" },
	{ "status", { { NULL, 0, 0 } }, 0, 0, OUT_KEYVALUE, run_plain,
	    "show the daemon's state and counters" },
	{ "stop", { { NULL, 0, 0 } }, 0, 1, OUT_NONE, run_plain,
	    "shut the daemon down" },
	{ "reload", { { NULL, 0, 0 } }, 0, 1, OUT_NONE, run_plain,
	    "reload the configuration and certificates" },
	{ "history", { { "JID", ARG_JID, 0 }, { "JID2", ARG_JID, 1 } },
	    OPT_HISTORY, 1, OUT_HISTORY, run_history,
	    "show archived messages of JID (with JID2)" },
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
	if (cmd->opts & OPT_HISTORY)
		fprintf(f, " [--since T] [--until T] [--limit N]");
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
		char syn[96];
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

/* State of printing one answer. */
struct printer {
	enum output output;
	char **cols;            /* copies of the column names */
	size_t ncols;
	size_t rows;
	/* OUT_KEYVALUE in text: rows kept to align them. */
	char **keys, **values;
	size_t nkv;
	size_t keywidth;
};

static void
printer_free(struct printer *p)
{
	for (size_t i = 0; i < p->ncols; i++)
		free(p->cols[i]);
	free(p->cols);
	for (size_t i = 0; i < p->nkv; i++) {
		free(p->keys[i]);
		free(p->values[i]);
	}
	free(p->keys);
	free(p->values);
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

/* The value of column name in a row, "" if absent. */
static const char *
row_field(const struct printer *p, const struct ctl_msg *m, const char *name)
{
	for (size_t i = 0; i < p->ncols && i < m->nfields; i++)
		if (strcmp(p->cols[i], name) == 0)
			return m->fields[i];
	return "";
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

static void
print_row(struct printer *p, const struct ctl_msg *m)
{
	if (!json && p->output == OUT_HISTORY) {
		print_history_line(p, m);
		p->rows++;
		return;
	}
	if (json && p->output == OUT_KEYVALUE) {
		if (m->nfields < 2)
			return;
		fputs(p->rows == 0 ? "{\n  " : ",\n  ", stdout);
		json_string(m->fields[0]);
		fputs(": ", stdout);
		json_string(m->fields[1]);
	} else if (json) {
		fputs(p->rows == 0 ? "[\n  {" : ",\n  {", stdout);
		for (size_t i = 0; i < m->nfields && i < p->ncols; i++) {
			fputs(i ? ", " : "", stdout);
			json_string(p->cols[i]);
			fputs(": ", stdout);
			json_string(m->fields[i]);
		}
		putchar('}');
	} else if (p->output == OUT_KEYVALUE) {
		if (m->nfields < 2)
			return;
		p->keys = xreallocarray(p->keys, p->nkv + 1, sizeof(char *));
		p->values = xreallocarray(p->values, p->nkv + 1,
		    sizeof(char *));
		p->keys[p->nkv] = xstrdup(m->fields[0]);
		p->values[p->nkv] = xstrdup(m->fields[1]);
		p->nkv++;
		if (strlen(m->fields[0]) > p->keywidth)
			p->keywidth = strlen(m->fields[0]);
	} else {
		for (size_t i = 0; i < m->nfields; i++)
			printf("%s%s", i ? "\t" : "", m->fields[i]);
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
		for (size_t i = 0; i < m->nfields; i++)
			p->cols[i] = xstrdup(m->fields[i]);
	} else if (m->kind == CTL_MSG_ROW && p->output != OUT_NONE)
		print_row(p, m);
	return 0;
}

/* Close what print_row opened; text key/value rows are printed here. */
static void
printer_finish(struct printer *p)
{
	if (json && p->output == OUT_KEYVALUE)
		fputs(p->rows ? "\n}\n" : "{}\n", stdout);
	else if (json && (p->output == OUT_LIST || p->output == OUT_HISTORY))
		fputs(p->rows ? "\n]\n" : "[]\n", stdout);
	else if (p->output == OUT_KEYVALUE)
		for (size_t i = 0; i < p->nkv; i++)
			printf("%-*s  %s\n", (int)p->keywidth, p->keys[i],
			    p->values[i]);
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
	if (e == EACCES || e == EPERM) {
		warnmsg("cannot connect to %s: %s (are you in the daemon's "
		    "control group?)", path, strerror(e));
		return EXIT_DENIED;
	}
	if (e == ENOENT || e == ECONNREFUSED)
		warnmsg("cannot connect to %s: %s \xe2\x80\x94 is xmppd "
		    "running?", path, strerror(e));
	else
		warnmsg("cannot connect to %s: %s", path, strerror(e));
	return EXIT_UNREACHABLE;
}

/*
 * Send argv as one request, print its answer as the command wants, and
 * return the exit code.  subject names the request in messages
 * ("adduser alice@example.org").
 */
static int
request(const struct invocation *inv, const char *const *argv, size_t argc)
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

static int
run_password(const struct invocation *inv)
{
	char pw[PASSWORD_READ_MAX];
	const char *argv[3];
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
	code = request(inv, argv, 3);
	explicit_bzero(pw, sizeof(pw));
	return code;
}

static int
run_plain(const struct invocation *inv)
{
	const char *argv[1 + MAX_POSITIONAL];

	argv[0] = inv->cmd->name;
	for (size_t i = 0; i < inv->npos; i++)
		argv[1 + i] = inv->pos[i];
	return request(inv, argv, 1 + inv->npos);
}

static int
run_users(const struct invocation *inv)
{
	const char *argv[2] = { "users", inv->host };

	return request(inv, argv, inv->host ? 2 : 1);
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

/* Command line. */

static const struct command *
find_command(const char *word)
{
	const struct command *found = NULL;
	size_t len = strlen(word), n = 0;

	for (size_t i = 0; i < nitems(commands); i++)
		if (strcmp(commands[i].name, word) == 0)
			return &commands[i];
	for (size_t i = 0; i < nitems(commands); i++) {
		if (strncmp(commands[i].name, word, len) == 0) {
			found = &commands[i];
			n++;
		}
	}
	if (n == 1)
		return found;
	if (n == 0) {
		warnmsg("unknown command \"%s\" (xmppctl -h lists them)",
		    word);
		return NULL;
	}
	fprintf(stderr, "xmppctl: ambiguous command \"%s\":", word);
	for (size_t i = 0, k = 0; i < nitems(commands); i++)
		if (strncmp(commands[i].name, word, len) == 0)
			fprintf(stderr, "%s %s", k++ ? "," : "",
			    commands[i].name);
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
			if ((cmd->opts & OPT_PASSWORD_STDIN) &&
			    strcmp(a, "--password-stdin") == 0) {
				inv->password_stdin = 1;
				continue;
			}
			if ((cmd->opts & OPT_HOST) &&
			    (r = option_value(argv, argc, &i, NULL, "--host",
			    &inv->host)) != 0) {
				if (r == -1)
					return command_usage(cmd);
				continue;
			}
			if ((cmd->opts & OPT_HISTORY) &&
			    ((r = option_value(argv, argc, &i, NULL, "--since",
			    &inv->since)) != 0 ||
			    (r = option_value(argv, argc, &i, NULL, "--until",
			    &inv->until)) != 0 ||
			    (r = option_value(argv, argc, &i, NULL, "--limit",
			    &inv->limit)) != 0)) {
				if (r == -1)
					return command_usage(cmd);
				continue;
			}
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
	return 0;
}

int
main(int argc, char **argv)
{
	struct invocation inv;
	int i, r;

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
	if ((inv.cmd = find_command(argv[i])) == NULL)
		return EXIT_USAGE;
	if ((r = parse_command(&inv, argv, argc, i + 1)) != 0)
		return r;
	return inv.cmd->run(&inv);
}
