/*
 * A file sent as an HTTP body in pieces, each read by a worker while the
 * loop goes on, the next one only once the connection has taken most of
 * what is queued (http_output_queued, polled): a slow client costs one
 * piece of memory, not the file.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "log.h"
#include "net/http.h"
#include "web/file_body.h"
#include "work.h"
#include "xmalloc.h"
#include "xmppd.h"

#define CHUNK (256 * 1024)       /* bytes read per worker job */
#define QUEUE_HIGH (1024 * 1024) /* wait while more is queued */
#define DRAIN_POLL 0.01          /* s between looks at the queue */

struct file_body {
	uint64_t id; /* the request's: http_request_find */
	int fd;
	int64_t off, left;
	char *chunk;
	size_t nchunk;
	int err;
	ev_timer drain_w;
};

static void
body_free(struct file_body *b)
{
	close(b->fd); /* a regular file opened read-only */
	free(b->chunk);
	free(b);
}

/* Worker: the next piece into b->chunk. */
static void
read_run(void *arg)
{
	struct file_body *b = arg;
	size_t got = 0;

	b->err = 0;
	b->nchunk = b->left < CHUNK ? (size_t)b->left : CHUNK;
	while (got < b->nchunk) {
		ssize_t n = pread(b->fd, b->chunk + got, b->nchunk - got,
		    b->off + (int64_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) { /* 0: the file shrank since its size was read */
			b->err = n < 0 ? errno : EIO;
			return;
		}
		got += (size_t)n;
	}
}

static void read_done(void *arg, uint64_t owner, uint64_t tag);

static void
drain_check(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct file_body *b = container_of(w, struct file_body, drain_w);
	struct http_request *r = http_request_find(b->id);

	(void)revents;
	if (r != NULL && http_output_queued(r) > QUEUE_HIGH)
		return;
	ev_timer_stop(loop, w);
	if (r == NULL) {
		body_free(b);
		return;
	}
	work_submit(read_run, read_done, b, b->id, 0);
}

static void
read_done(void *arg, uint64_t owner, uint64_t tag)
{
	struct file_body *b = arg;
	struct http_request *r = http_request_find(b->id);

	(void)owner;
	(void)tag;
	if (r == NULL) {
		body_free(b);
		return;
	}
	if (b->err != 0) {
		log_warnx("http %" PRIu64 " %s: %s %s: reading the file: %s, "
		          "answer cut short",
		    r->conn_id, r->peer_addr, r->method, r->path,
		    strerror(b->err));
		http_end(r); /* cut short */
		body_free(b);
		return;
	}
	http_write(r, b->chunk, b->nchunk);
	b->off += (int64_t)b->nchunk;
	b->left -= (int64_t)b->nchunk;
	if (b->left == 0) {
		http_end(r);
		body_free(b);
		return;
	}
	if (http_output_queued(r) > QUEUE_HIGH) {
		ev_timer_init(&b->drain_w, drain_check, DRAIN_POLL, DRAIN_POLL);
		ev_timer_start(xmppd_loop, &b->drain_w);
		return;
	}
	work_submit(read_run, read_done, b, b->id, 0);
}

void
file_body_send(struct http_request *r, int fd, int64_t off, int64_t len)
{
	struct file_body *b;

	if (len <= 0) {
		close(fd);
		http_end(r);
		return;
	}
	b = xcalloc(1, sizeof(*b));
	b->id = r->id;
	b->fd = fd;
	b->off = off;
	b->left = len;
	b->chunk = xmalloc(CHUNK);
	work_submit(read_run, read_done, b, b->id, 0);
}
