/*
 * A file's bytes as the body of an HTTP answer: read on the worker pool
 * in 256 KiB pieces and written as the connection drains, so the loop
 * never waits for the disk nor queues a whole file in memory.
 * (web/upload_http.c has the same machinery of its own; this is the
 * shareable form of it.)
 */
#ifndef XMPPD_WEB_FILE_BODY_H
#define XMPPD_WEB_FILE_BODY_H

#include <stdint.h>

struct http_request;

/*
 * Send len bytes of fd from offset off as the body of r, whose answer
 * was begun (http_begin with length len) and which is held (http_hold).
 * fd (a regular file open for reading) is the call's from now on and is
 * closed at the end.  r is ended (http_end) once all is written; a read
 * error cuts the body short (the client sees fewer bytes than announced
 * and the connection closes).  If the connection goes away first,
 * nothing more happens but the cleanup.
 */
void file_body_send(struct http_request *r, int fd, int64_t off, int64_t len);

#endif
