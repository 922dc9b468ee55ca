/*
 * Unit test of net/http.c on a real loop and socket: what the routes
 * above it will rely on and no route of the daemon uses yet.  A held
 * request answered later by id, with a pipelined request behind it
 * answered after it; a held request whose client goes away (its abort
 * callback runs, http_request_find no longer finds it); an Upgrade
 * handed to another conn handler, which gets the bytes sent with the
 * request and those after.  A streaming route: the body in pieces,
 * paused and resumed, the last one flagged; an answer before the body
 * (the rest is dropped, the pipelined request after it answered); a
 * chunked body over the route's maximum (413, with the route's error
 * fields).  The client runs in a thread with blocking sockets; the loop
 * runs here.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "conf.h"
#include "net/conn.h"
#include "net/http.h"
#include "unit.h"

static struct ev_loop *loop;
static ev_async done_w;
static ev_timer answer_w, guard_w;
static uint64_t held_id;
static int aborted, abort_found, echo_closed;
static int port;
static ev_timer resume_w;
static uint64_t stream_id;
static size_t stream_bytes, stream_pieces;
static int stream_paused_once, stream_failed;

/* -- the routes -- */

static void
on_abort(struct http_request *r, void *arg)
{
	aborted++;
	abort_found = http_request_find(r->id) != NULL;
}

static void
hold_route(struct http_request *r, void *arg)
{
	held_id = r->id;
	http_hold(r, on_abort, NULL);
	if (strcmp(r->query, "answer") == 0)
		ev_timer_start(loop, &answer_w);
}

static void
answer_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct http_request *r = http_request_find(held_id);

	CHECK(r != NULL);
	if (r != NULL)
		http_respond(r, 200, "text/plain", "later", 5);
}

/* The upgraded protocol: echo what comes, upper-cased. */
static void
echo_data(struct conn *c, const char *data, size_t len)
{
	char buf[256];

	for (size_t i = 0; i < len && i < sizeof(buf); i++)
		buf[i] = (char)(data[i] >= 'a' && data[i] <= 'z' ?
		    data[i] - 32 : data[i]);
	conn_write(c, buf, len < sizeof(buf) ? len : sizeof(buf));
}

static void
echo_tls(struct conn *c)
{
}

static void
echo_close(struct conn *c)
{
	CHECK(c->upper == &echo_closed);
	echo_closed++;
}

static const struct conn_handler echo_handler = {
	.on_data = echo_data,
	.on_tls = echo_tls,
	.on_close = echo_close,
};

static void
upgrade_route(struct http_request *r, void *arg)
{
	const char *up = http_header(r, "Upgrade");

	if (!r->upgrade || up == NULL || strcmp(up, "echo") != 0) {
		http_respond_status(r, 400);
		return;
	}
	http_add_header(r, "Upgrade", "echo");
	http_upgrade(r, &echo_handler, &echo_closed);
}

/* A streaming route: count the body, pause after the first piece
 * (resumed by a timer), answer with the count after the last. */
static void
resume_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct http_request *r = http_request_find(stream_id);

	CHECK(r != NULL);
	if (r != NULL)
		http_body_resume(r);
}

static void
stream_body(struct http_request *r, const char *data, size_t len,
    enum http_body_status st, void *arg)
{
	char out[64];
	int n;

	if (st == HTTP_BODY_FAILED) {
		stream_failed++;
		return;
	}
	if (strcmp(r->path, "/stream/x") == 0) {
		int ok = 1;

		for (size_t i = 0; i < len; i++)
			ok &= data[i] == 'a' + (char)((stream_bytes + i) % 26);
		CHECK(ok);
		stream_bytes += len;
	}
	stream_pieces++;
	if (!stream_paused_once) {
		stream_paused_once = 1;
		http_body_pause(r);
		ev_timer_start(loop, &resume_w);
	}
	if (st == HTTP_BODY_LAST) {
		n = snprintf(out, sizeof(out), "got %zu", stream_bytes);
		http_respond(r, 200, "text/plain", out, (size_t)n);
	}
}

static void
stream_route(struct http_request *r, void *arg)
{
	if (strcmp(r->path, "/stream/early") == 0) {
		/* Refused before its body is read. */
		http_respond_status(r, 403);
		return;
	}
	CHECK(r->body_len == 0);
	stream_id = r->id;
	http_hold(r, NULL, NULL);
	http_body_start(r, stream_body, NULL);
}

/* -- the client -- */

static int
client_connect(void)
{
	struct sockaddr_in sin = { 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = { 5, 0 };

	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
send_all(int fd, const char *s)
{
	size_t n = strlen(s);

	CHECK(write(fd, s, n) == (ssize_t)n);
}

/* Read until want has been seen (or EOF/timeout); the bytes in got. */
static int
read_until(int fd, char *got, size_t cap, const char *want)
{
	size_t len = 0;

	got[0] = '\0';
	while (strstr(got, want) == NULL && len + 1 < cap) {
		ssize_t n = read(fd, got + len, cap - 1 - len);

		if (n <= 0)
			return -1;
		len += (size_t)n;
		got[len] = '\0';
	}
	return 0;
}

#define REQ(path, extra) "GET " path " HTTP/1.1\r\nHost: localhost\r\n" \
	extra "\r\n"

static void *
client(void *arg)
{
	char got[4096];
	int fd;

	/* Held, answered later; the pipelined request after it waits. */
	fd = client_connect();
	CHECK(fd >= 0);
	send_all(fd, REQ("/hold?answer", "") REQ("/nothing", ""));
	CHECK(read_until(fd, got, sizeof(got), "404 Not Found\n") == 0);
	{
		char *a = strstr(got, "later"), *b = strstr(got, "HTTP/1.1 404");

		CHECK(strncmp(got, "HTTP/1.1 200 OK\r\n", 17) == 0);
		CHECK(a != NULL && b != NULL && a < b);
	}
	close(fd);

	/* Held, then the client goes away. */
	fd = client_connect();
	send_all(fd, REQ("/hold", ""));
	usleep(100000);
	close(fd);
	usleep(100000);

	/* Upgrade: the bytes after the request go to the new handler. */
	fd = client_connect();
	send_all(fd, REQ("/up", "Connection: Upgrade\r\nUpgrade: echo\r\n")
	    "hello");
	CHECK(read_until(fd, got, sizeof(got), "HELLO") == 0);
	CHECK(strncmp(got, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0);
	CHECK(strstr(got, "\r\nUpgrade: echo\r\n") != NULL);
	CHECK(strstr(got, "\r\nConnection: Upgrade\r\n\r\nHELLO") != NULL);
	send_all(fd, "again");
	CHECK(read_until(fd, got, sizeof(got), "AGAIN") == 0);
	close(fd);
	usleep(100000);

	/* An Upgrade the route refuses: answered, then closed. */
	fd = client_connect();
	send_all(fd, REQ("/up", "Connection: Upgrade\r\nUpgrade: other\r\n")
	    "junk");
	CHECK(read_until(fd, got, sizeof(got), "400 Bad Request\n") == 0);
	CHECK(strstr(got, "Connection: close\r\n") != NULL);
	CHECK(read(fd, got, sizeof(got)) == 0);
	close(fd);

	/* A streaming body of 100000 bytes in two writes. */
	{
		static char body[100000];
		char head[256];

		for (size_t i = 0; i < sizeof(body); i++)
			body[i] = (char)('a' + i % 26);
		fd = client_connect();
		snprintf(head, sizeof(head), "PUT /stream/x HTTP/1.1\r\n"
		    "Host: localhost\r\nContent-Length: %zu\r\n\r\n",
		    sizeof(body));
		send_all(fd, head);
		CHECK(write(fd, body, 30000) == 30000);
		usleep(50000);
		CHECK(write(fd, body + 30000, sizeof(body) - 30000) ==
		    (ssize_t)(sizeof(body) - 30000));
		CHECK(read_until(fd, got, sizeof(got), "got 100000") == 0);
		CHECK(strncmp(got, "HTTP/1.1 200 OK\r\n", 17) == 0);
		close(fd);
	}

	/* Answered before its body: the body is dropped, the pipelined
	 * request after it is answered on the same connection. */
	fd = client_connect();
	send_all(fd, "PUT /stream/early HTTP/1.1\r\nHost: localhost\r\n"
	    "Content-Length: 10\r\n\r\n0123456789" REQ("/nothing", ""));
	CHECK(read_until(fd, got, sizeof(got), "404 Not Found\n") == 0);
	CHECK(strncmp(got, "HTTP/1.1 403 Forbidden\r\n", 24) == 0);
	close(fd);

	/* Chunked past the route's maximum: 413 with its error fields. */
	fd = client_connect();
	send_all(fd, "PUT /stream/big HTTP/1.1\r\nHost: localhost\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n20000\r\n");
	{
		static char big[100001 + 1];

		memset(big, 'a', sizeof(big) - 1);
		send_all(fd, big);
	}
	CHECK(read_until(fd, got, sizeof(got), "413 Content Too Large\n") ==
	    0);
	CHECK(strstr(got, "\r\nX-Test: yes\r\n") != NULL);
	close(fd);
	usleep(100000);

	ev_async_send(loop, &done_w);
	return NULL;
}

static void
done_cb(struct ev_loop *l, ev_async *w, int revents)
{
	ev_break(l, EVBREAK_ALL);
}

static void
guard_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	CHECK(!"the client did not finish within 20 s");
	ev_break(l, EVBREAK_ALL);
}

int
main(void)
{
	static const struct conn_handler *const handlers[LISTEN__COUNT] = {
		[LISTEN_HTTP] = &http_conn_handler,
	};
	struct sockaddr_in sin = { 0 };
	socklen_t sl = sizeof(sin);
	char text[512], err[256];
	struct conf *conf;
	pthread_t th;
	int probe = socket(AF_INET, SOCK_STREAM, 0);

	/* A free port: bind 0, read it, release it. */
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(probe, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(probe, (struct sockaddr *)&sin, &sl);
	port = ntohs(sin.sin_port);
	close(probe);
	snprintf(text, sizeof(text), "listen http %d address 127.0.0.1\n"
	    "host localhost {\ncertificate c.pem\nkey k.pem\n}\n", port);
	conf = conf_parse("t.conf", text, err, sizeof(err));
	CHECK(conf != NULL);
	if (conf == NULL)
		return UNIT_DONE("http");
	loop = ev_default_loop(0);
	conn_init(loop);
	http_set_conf(conf);
	CHECK(http_route_add("/hold", HTTP_M_GET, 0, hold_route, NULL) == 0);
	CHECK(http_route_add("/up", HTTP_M_GET, 0, upgrade_route, NULL) == 0);
	CHECK(http_route_add("/up", HTTP_M_GET, 0, upgrade_route, NULL) ==
	    -1);
	CHECK(http_route_add_stream("/stream", HTTP_M_PUT, 100000,
	    stream_route, NULL) == 0);
	CHECK(http_route_set_error_fields("/stream", "X-Test: yes\r\n") == 0);
	CHECK(http_route_set_error_fields("/none", "X: y\r\n") == -1);
	CHECK(conn_listen(conf, handlers, err, sizeof(err)) == 0);
	ev_timer_init(&answer_w, answer_cb, 0.05, 0.);
	ev_timer_init(&resume_w, resume_cb, 0.02, 0.);
	ev_timer_init(&guard_w, guard_cb, 20., 0.);
	ev_timer_start(loop, &guard_w);
	ev_async_init(&done_w, done_cb);
	ev_async_start(loop, &done_w);
	pthread_create(&th, NULL, client, NULL);
	ev_run(loop, 0);
	pthread_join(th, NULL);
	conn_flush_all();
	/* The second held request was aborted, and was not findable from
	 * its abort callback on (its connection is dead). */
	CHECK(aborted == 1);
	CHECK(abort_found == 0);
	CHECK(http_request_find(held_id) == NULL);
	CHECK(echo_closed == 1);
	/* The first streaming body: all of it, in more than one piece; the
	 * chunked one over the maximum: its consumer told. */
	CHECK(stream_bytes == 100000);
	CHECK(stream_pieces > 1);
	CHECK(stream_failed == 1);
	conn_unlisten();
	http_route_remove("/hold");
	http_route_remove("/up");
	http_route_remove("/stream");
	conf_free(conf);
	return UNIT_DONE("http");
}
