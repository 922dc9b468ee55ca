/*
 * Unit tests for the control protocol framing (shared/ctl.c): field
 * encoding and decoding, line splitting and building, the line reader's
 * length cap and partial lines, and the client against a scripted peer
 * on a socketpair-like Unix socket.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "xmalloc.h"
#include "unit.h"

/* Encode s (len bytes) and return the wire form, malloc'ed. */
static char *
encode(const char *s, size_t len)
{
	struct buf b = BUF_INIT;
	char *r;

	ctl_field_encode(&b, s, len);
	r = buf_strdup(&b);
	buf_free(&b);
	return r;
}

/* Decode a NUL-terminated wire form; returns malloc'ed result or NULL. */
static char *
decode(const char *wire, ssize_t *outlen)
{
	char *s = xstrdup(wire);
	ssize_t n = ctl_field_decode(s, strlen(wire));

	if (outlen)
		*outlen = n;
	if (n < 0) {
		free(s);
		return NULL;
	}
	return s;
}

static void
check_encode(const char *in, const char *want)
{
	char *got = encode(in, strlen(in));

	CHECK_STR(got, want);
	free(got);
}

static void
test_encode(void)
{
	check_encode("alice@example.org", "alice@example.org");
	check_encode("", "%-");
	check_encode("a b", "a%20b");
	check_encode("100%", "100%25");
	check_encode("%-", "%25-");
	check_encode("-", "-");
	check_encode("*", "*");
	check_encode("tab\there", "tab%09here");
	check_encode("line\r\n", "line%0D%0A");
	check_encode("\x7f\x01", "%7F%01");
	check_encode("caf\xc3\xa9", "caf\xc3\xa9");     /* UTF-8 kept */
	check_encode(" ", "%20");
	check_encode("  ", "%20%20");
}

static void
test_decode(void)
{
	ssize_t n;
	char *s;

	s = decode("a%20b", &n);
	CHECK_STR(s, "a b");
	CHECK(n == 3);
	free(s);
	s = decode("%-", &n);
	CHECK_STR(s, "");
	CHECK(n == 0);
	free(s);
	s = decode("%2f%2F", NULL);     /* either case accepted */
	CHECK_STR(s, "//");
	free(s);
	s = decode("plain", &n);
	CHECK_STR(s, "plain");
	CHECK(n == 5);
	free(s);
	s = decode("caf\xc3\xa9%0A", NULL);
	CHECK_STR(s, "caf\xc3\xa9\n");
	free(s);

	/* Malformed. */
	CHECK(decode("", NULL) == NULL);        /* empty is "%-" */
	CHECK(decode("%", NULL) == NULL);
	CHECK(decode("%2", NULL) == NULL);
	CHECK(decode("abc%", NULL) == NULL);
	CHECK(decode("%G0", NULL) == NULL);
	CHECK(decode("%0g", NULL) == NULL);
	CHECK(decode("%00", NULL) == NULL);     /* NUL */
	CHECK(decode("a%00b", NULL) == NULL);
	CHECK(decode("%-a", NULL) == NULL);     /* "%-" only alone */
	CHECK(decode("a%-", NULL) == NULL);
	CHECK(decode("%--", NULL) == NULL);
	CHECK(decode("a\tb", NULL) == NULL);    /* raw control */
	CHECK(decode("a\rb", NULL) == NULL);
	CHECK(decode("a b", NULL) == NULL);     /* raw space */
	CHECK(decode("\x7f", NULL) == NULL);
	CHECK(decode("% 1", NULL) == NULL);
}

static void
test_roundtrip(void)
{
	unsigned char all[255];
	char *w, *d;
	ssize_t n;

	/* Every byte value but NUL, in one field. */
	for (int i = 0; i < 255; i++)
		all[i] = (unsigned char)(i + 1);
	w = encode((char *)all, sizeof(all));
	CHECK(strchr(w, ' ') == NULL);
	CHECK(strchr(w, '\n') == NULL);
	d = decode(w, &n);
	CHECK(d != NULL && n == 255 && memcmp(d, all, 255) == 0);
	free(w);
	free(d);

	/* A few random strings. */
	srand(42);
	for (int t = 0; t < 1000; t++) {
		char s[64];
		size_t len = (size_t)(rand() % 63);
		int ok;

		for (size_t i = 0; i < len; i++)
			s[i] = (char)(rand() % 255 + 1);
		w = encode(s, len);
		d = decode(w, &n);
		ok = d != NULL && n == (ssize_t)len && memcmp(d, s, len) == 0;
		if (!ok)
			CHECK(ok);
		free(w);
		free(d);
	}
	unit_passed++;
}

static int
split(const char *line, char **fields, size_t max, char **mem)
{
	*mem = xstrdup(line);
	return ctl_split(*mem, strlen(line), fields, max);
}

static void
test_split(void)
{
	char *f[8], *mem;
	int n;

	n = split("1 adduser alice@example.org s3cret%20pass", f, 8, &mem);
	CHECK(n == 4);
	CHECK_STR(f[0], "1");
	CHECK_STR(f[1], "adduser");
	CHECK_STR(f[2], "alice@example.org");
	CHECK_STR(f[3], "s3cret pass");
	free(mem);

	n = split("", f, 8, &mem);
	CHECK(n == 0);
	free(mem);

	n = split("one", f, 8, &mem);
	CHECK(n == 1);
	CHECK_STR(f[0], "one");
	free(mem);

	n = split("2 ok %- x", f, 8, &mem);
	CHECK(n == 4);
	CHECK_STR(f[2], "");
	CHECK_STR(f[3], "x");
	free(mem);

	n = split("%- %-", f, 8, &mem);
	CHECK(n == 2 && f[0][0] == '\0' && f[1][0] == '\0');
	free(mem);

	/* Spacing. */
	CHECK(split(" a", f, 8, &mem) == CTL_SPLIT_MALFORMED);
	free(mem);
	CHECK(split("a ", f, 8, &mem) == CTL_SPLIT_MALFORMED);
	free(mem);
	CHECK(split("a  b", f, 8, &mem) == CTL_SPLIT_MALFORMED);
	free(mem);
	CHECK(split(" ", f, 8, &mem) == CTL_SPLIT_MALFORMED);
	free(mem);
	CHECK(split("a\tb", f, 8, &mem) == CTL_SPLIT_MALFORMED);
	free(mem);
	CHECK(split("a b\r", f, 8, &mem) == CTL_SPLIT_MALFORMED);
	free(mem);
	CHECK(split("1 x %zz", f, 8, &mem) == CTL_SPLIT_MALFORMED);
	free(mem);

	/* Field count cap. */
	CHECK(split("a b c", f, 3, &mem) == 3);
	free(mem);
	CHECK(split("a b c d", f, 3, &mem) == CTL_SPLIT_TOO_MANY);
	free(mem);
}

static void
test_ids(void)
{
	uint32_t id = 0;

	CHECK(ctl_parse_id("1", &id) == 0 && id == 1);
	CHECK(ctl_parse_id("42", &id) == 0 && id == 42);
	CHECK(ctl_parse_id("4294967295", &id) == 0 && id == 4294967295u);
	CHECK(ctl_parse_id("4294967296", &id) == -1);
	CHECK(ctl_parse_id("99999999999", &id) == -1);
	CHECK(ctl_parse_id("0", &id) == -1);
	CHECK(ctl_parse_id("01", &id) == -1);
	CHECK(ctl_parse_id("", &id) == -1);
	CHECK(ctl_parse_id("-1", &id) == -1);
	CHECK(ctl_parse_id("+1", &id) == -1);
	CHECK(ctl_parse_id("1a", &id) == -1);
	CHECK(ctl_parse_id(" 1", &id) == -1);
}

static void
test_line_build(void)
{
	struct buf b = BUF_INIT;
	struct ctl_line l;
	const char *f[] = { "7", "row", "a b", "", "%" };
	size_t before;
	char *big;

	ctl_line_start(&l, &b);
	ctl_line_addf(&l, "%u", 3u);
	ctl_line_add(&l, "err");
	ctl_line_add(&l, "exists");
	ctl_line_add(&l, "user already exists");
	CHECK(ctl_line_end(&l) == 0);
	CHECK_STR(buf_head(&b), "3 err exists user%20already%20exists\n");

	CHECK(ctl_line_fields(&b, f, 5) == 0);
	CHECK_STR(buf_head(&b), "3 err exists user%20already%20exists\n"
	    "7 row a%20b %- %25\n");

	/* Too long: removed again, earlier lines untouched, even after the
	 * buffer's head moved. */
	buf_consume(&b, 5);
	before = buf_avail(&b);
	big = xmalloc(CTL_LINE_MAX);
	memset(big, 'x', CTL_LINE_MAX);
	ctl_line_start(&l, &b);
	ctl_line_add(&l, "1");
	ctl_line_addn(&l, big, CTL_LINE_MAX - 3);  /* "1 " + ... + "\n" */
	CHECK(ctl_line_end(&l) == 0);
	CHECK(buf_avail(&b) == before + CTL_LINE_MAX);
	buf_consume(&b, before);
	ctl_line_start(&l, &b);
	ctl_line_add(&l, "1");
	ctl_line_addn(&l, big, CTL_LINE_MAX - 2);
	CHECK(ctl_line_end(&l) == -1);
	CHECK(buf_avail(&b) == CTL_LINE_MAX);
	CHECK(buf_head(&b)[CTL_LINE_MAX - 1] == '\n');
	/* An escaped byte counts three times. */
	buf_reset(&b);
	memset(big, ' ', CTL_LINE_MAX / 3);
	ctl_line_start(&l, &b);
	ctl_line_addn(&l, big, CTL_LINE_MAX / 3);
	CHECK(ctl_line_end(&l) == 0);
	ctl_line_start(&l, &b);
	ctl_line_addn(&l, big, CTL_LINE_MAX / 3 + 1);
	CHECK(ctl_line_end(&l) == -1);
	CHECK(buf_avail(&b) == (CTL_LINE_MAX / 3) * 3 + 1);
	free(big);
	buf_free(&b);
}

static void
test_reader(void)
{
	struct ctl_reader r;
	char *line;
	size_t len;

	/* Partial lines, several lines per feed. */
	ctl_reader_init(&r, 16);
	CHECK(ctl_reader_next(&r, &line, &len) == 0);
	ctl_reader_feed(&r, "1 sta", 5);
	CHECK(ctl_reader_next(&r, &line, &len) == 0);
	ctl_reader_feed(&r, "tus\n2 us", 8);
	CHECK(ctl_reader_next(&r, &line, &len) == 1);
	CHECK_STR(line, "1 status");
	CHECK(len == 8);
	CHECK(ctl_reader_next(&r, &line, &len) == 0);
	CHECK(ctl_reader_pending(&r) == 4);
	ctl_reader_feed(&r, "ers\n\n3 stop\n", 12);
	CHECK(ctl_reader_next(&r, &line, &len) == 1);
	CHECK_STR(line, "2 users");
	CHECK(ctl_reader_next(&r, &line, &len) == 1);
	CHECK_STR(line, "");
	CHECK(len == 0);
	CHECK(ctl_reader_next(&r, &line, &len) == 1);
	CHECK_STR(line, "3 stop");
	CHECK(ctl_reader_next(&r, &line, &len) == 0);
	CHECK(ctl_reader_pending(&r) == 0);
	/* The returned line is writable (ctl_split works in place). */
	ctl_reader_feed(&r, "4 a%20b\n", 8);
	CHECK(ctl_reader_next(&r, &line, &len) == 1);
	{
		char *f[4];

		CHECK(ctl_split(line, len, f, 4) == 2);
		CHECK_STR(f[1], "a b");
	}
	ctl_reader_free(&r);

	/* Exactly max bytes with "\n" is fine; one more is too long. */
	ctl_reader_init(&r, 8);
	ctl_reader_feed(&r, "1234567\n", 8);
	CHECK(ctl_reader_next(&r, &line, &len) == 1);
	CHECK(len == 7);
	ctl_reader_feed(&r, "12345678\n", 9);
	CHECK(ctl_reader_next(&r, &line, &len) == -1);
	ctl_reader_free(&r);

	/* Too long without a newline yet: detected as soon as max bytes
	 * are buffered, not only when the "\n" comes. */
	ctl_reader_init(&r, 8);
	ctl_reader_feed(&r, "1234", 4);
	CHECK(ctl_reader_next(&r, &line, &len) == 0);
	ctl_reader_feed(&r, "567", 3);
	CHECK(ctl_reader_next(&r, &line, &len) == 0);
	ctl_reader_feed(&r, "8", 1);
	CHECK(ctl_reader_next(&r, &line, &len) == -1);
	ctl_reader_free(&r);

	/* A long line after good ones is caught when reached. */
	ctl_reader_init(&r, 8);
	ctl_reader_feed(&r, "ab\ncd\n0123456789abc\n", 20);
	CHECK(ctl_reader_next(&r, &line, &len) == 1);
	CHECK_STR(line, "ab");
	CHECK(ctl_reader_next(&r, &line, &len) == 1);
	CHECK_STR(line, "cd");
	CHECK(ctl_reader_next(&r, &line, &len) == -1);
	ctl_reader_free(&r);

	/* Byte by byte, with the real cap. */
	ctl_reader_init(&r, CTL_LINE_MAX);
	{
		const char *in = "12 row x\n13 ok\n";
		char last[16] = "";
		int got = 0;

		for (size_t i = 0; in[i] != '\0'; i++) {
			ctl_reader_feed(&r, in + i, 1);
			while (ctl_reader_next(&r, &line, &len) == 1) {
				snprintf(last, sizeof(last), "%s", line);
				got++;
			}
		}
		CHECK(got == 2);
		CHECK_STR(last, "13 ok");
	}
	ctl_reader_free(&r);

	/* The cap at CTL_LINE_MAX. */
	ctl_reader_init(&r, CTL_LINE_MAX);
	{
		char *big = xmalloc(CTL_LINE_MAX + 1);

		memset(big, 'x', CTL_LINE_MAX + 1);
		big[CTL_LINE_MAX - 1] = '\n';
		ctl_reader_feed(&r, big, CTL_LINE_MAX);
		CHECK(ctl_reader_next(&r, &line, &len) == 1);
		CHECK(len == CTL_LINE_MAX - 1);
		big[CTL_LINE_MAX - 1] = 'x';
		ctl_reader_feed(&r, big, CTL_LINE_MAX);
		CHECK(ctl_reader_next(&r, &line, &len) == -1);
		free(big);
	}
	ctl_reader_free(&r);
}

/*
 * The client against a scripted daemon: a child process that accepts one
 * connection, sends script lines and checks what it receives.
 */
static const char *sockpath;

static int
peer_listen(void)
{
	struct sockaddr_un sun;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strncpy(sun.sun_path, sockpath, sizeof(sun.sun_path) - 1);
	unlink(sockpath);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(fd, 4) == -1) {
		perror("peer");
		exit(1);
	}
	return fd;
}

/* Read one line from fd (tiny, byte by byte); compare with want. */
static int
peer_expect(int fd, const char *want)
{
	char line[512];
	size_t n = 0;

	while (n < sizeof(line) - 1 && read(fd, line + n, 1) == 1) {
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	if (strcmp(line, want) != 0) {
		fprintf(stderr, "peer: got \"%s\", want \"%s\"\n", line, want);
		return 1;
	}
	return 0;
}

static void
peer_send(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		exit(1);
}

static pid_t
peer_start(int lfd, const char *greeting, const char *const *script)
{
	pid_t pid = fork();
	int fd, bad = 0;

	if (pid != 0) {
		close(lfd);
		return pid;
	}
	fd = accept(lfd, NULL, NULL);
	peer_send(fd, greeting);
	/* script: alternating "<line expected" and ">text to send". */
	for (size_t i = 0; script[i] != NULL; i++) {
		if (script[i][0] == '<')
			bad |= peer_expect(fd, script[i] + 1);
		else
			peer_send(fd, script[i] + 1);
	}
	close(fd);
	_exit(bad);
}

static int
peer_wait(pid_t pid)
{
	int st;

	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
}

struct rows {
	int cols, rows, other;
	char last[64];
};

static int
collect(void *arg, const struct ctl_msg *m)
{
	struct rows *r = arg;

	if (m->kind == CTL_MSG_COLS)
		r->cols++;
	else if (m->kind == CTL_MSG_ROW) {
		r->rows++;
		snprintf(r->last, sizeof(r->last), "%s",
		    m->nfields ? m->fields[0] : "");
	} else
		r->other++;
	return 0;
}

/* Typed names (protocol version 2) and the hints for a failed connect. */
static void
test_types(void)
{
	struct {
		const char *name, *bare;
		enum ctl_type type;
	} cases[] = {
		{ "jid", "jid", CTL_T_TEXT },
		{ "sid:int", "sid", CTL_T_INT },
		{ "last-commit-ms:num", "last-commit-ms", CTL_T_NUM },
		{ "pending_in:bool", "pending_in", CTL_T_BOOL },
		{ "since:time", "since", CTL_T_TIME },
		{ "groups:list", "groups", CTL_T_LIST },
		{ "future:colour", "future", CTL_T_TEXT },  /* unknown: text */
		{ "odd:", "odd", CTL_T_TEXT },
		{ "", "", CTL_T_TEXT },
	};

	for (size_t i = 0; i < nitems(cases); i++) {
		char *n = xstrdup(cases[i].name);

		CHECK(ctl_name_type(n) == cases[i].type);
		CHECK_STR(n, cases[i].bare);
		free(n);
	}
	CHECK(strstr(ctl_connect_hint(EACCES), "control group") != NULL);
	CHECK(strstr(ctl_connect_hint(EPERM), "control group") != NULL);
	CHECK(strstr(ctl_connect_hint(ENOENT), "is xmppd running") != NULL);
	CHECK(strstr(ctl_connect_hint(ECONNREFUSED), "is xmppd running") !=
	    NULL);
	CHECK_STR(ctl_connect_hint(EIO), "");
	CHECK(CTL_PROTOCOL_VERSION == 2);
}

static void
test_client(void)
{
	struct ctl_client c;
	struct ctl_result res;
	struct rows rows;
	pid_t pid;
	int r;

	{
		const char *script[] = {
			"<hello 2",
			"<1 users",
			">1 cols jid\n1 row a@x\n",
			">1 foo bar\n",                 /* unknown kind */
			">* event session-up a@x/r\n",
			">9 row other-request\n",
			">1 row b%20c@x\n1 ok\n",
			"<2 adduser alice@x pass%20word",
			">2 err exists user%20already%20exists\n",
			"<3 status",
			">0 err version no\n",
			NULL,
		};
		const char *users[] = { "users" };
		const char *add[] = { "adduser", "alice@x", "pass word" };
		const char *status[] = { "status" };

		pid = peer_start(peer_listen(), "xmppd-ctl 2 9.9\n", script);
		CHECK(ctl_client_connect(&c, sockpath) == 0);
		CHECK_STR(c.daemon_version, "9.9");
		memset(&rows, 0, sizeof(rows));
		r = ctl_client_request(&c, users, 1, collect, &rows, &res);
		CHECK(r == 0);
		CHECK(res.ok == 1 && res.id == 1 && res.nfields == 0);
		CHECK(rows.cols == 1 && rows.rows == 2 && rows.other == 2);
		CHECK_STR(rows.last, "b c@x");
		ctl_result_free(&res);
		r = ctl_client_request(&c, add, 3, NULL, NULL, &res);
		CHECK(r == 0);
		CHECK(res.ok == 0 && res.id == 2);
		CHECK_STR(res.code, "exists");
		CHECK_STR(res.message, "user already exists");
		ctl_result_free(&res);
		r = ctl_client_request(&c, status, 1, NULL, NULL, &res);
		CHECK(r == 0 && res.ok == 0 && res.id == 0);
		CHECK_STR(res.code, "version");
		ctl_result_free(&res);
		CHECK(c.closed);
		ctl_client_close(&c);
		CHECK(peer_wait(pid) == 0);
	}

	/* Version mismatch in the greeting: no hello is sent. */
	{
		const char *script[] = { "<", NULL };

		pid = peer_start(peer_listen(), "xmppd-ctl 1 9.9\n", script);
		CHECK(ctl_client_connect(&c, sockpath) == CTL_EPROTO);
		CHECK(strstr(c.err, "protocol 1") != NULL);
		ctl_client_close(&c);
		CHECK(peer_wait(pid) == 0);
	}

	/* Busy daemon. */
	{
		const char *script[] = { NULL };

		pid = peer_start(peer_listen(),
		    "0 err busy too%20many%20control%20connections\n", script);
		CHECK(ctl_client_connect(&c, sockpath) == CTL_EPROTO);
		CHECK_STR(c.err, "too many control connections");
		ctl_client_close(&c);
		CHECK(peer_wait(pid) == 0);
	}

	/* Connection lost mid-answer; malformed answer. */
	{
		const char *script[] = { "<hello 2", "<1 users",
			">1 cols jid\n1 row x", NULL };
		const char *users[] = { "users" };

		pid = peer_start(peer_listen(), "xmppd-ctl 2 9.9\n", script);
		CHECK(ctl_client_connect(&c, sockpath) == 0);
		r = ctl_client_request(&c, users, 1, NULL, NULL, &res);
		CHECK(r == CTL_EIO);
		CHECK_STR(c.err, "connection closed by the daemon");
		ctl_client_close(&c);
		CHECK(peer_wait(pid) == 0);
	}
	{
		const char *script[] = { "<hello 2", "<1 users",
			">1 row %zz\n", NULL };
		const char *users[] = { "users" };

		pid = peer_start(peer_listen(), "xmppd-ctl 2 9.9\n", script);
		CHECK(ctl_client_connect(&c, sockpath) == 0);
		r = ctl_client_request(&c, users, 1, NULL, NULL, &res);
		CHECK(r == CTL_EPROTO);
		ctl_client_close(&c);
		CHECK(peer_wait(pid) == 0);
	}

	/* Nobody listening. */
	unlink(sockpath);
	CHECK(ctl_client_connect(&c, sockpath) == CTL_EIO);
	CHECK(errno == ENOENT);
	ctl_client_close(&c);
}

int
main(void)
{
	char dir[] = "/tmp/test_ctl.XXXXXX";
	char *path;

	test_encode();
	test_decode();
	test_roundtrip();
	test_split();
	test_ids();
	test_line_build();
	test_reader();
	test_types();

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	path = xasprintf("%s/ctl.sock", dir);
	sockpath = path;
	test_client();
	unlink(path);
	rmdir(dir);
	free(path);
	return UNIT_DONE("ctl");
}
