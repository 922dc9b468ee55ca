/*
 * libFuzzer target for the HTTP request parser (xmppd/net/http_parse.c
 * over http-parser): the input is fed in pieces whose size the first
 * byte picks, as a connection's reads would come, and parsed request
 * after request (pipelining).  Every request accepted must satisfy the
 * limits and checks it promises; every error must carry one of its
 * statuses.  The Host and Forwarded / X-Forwarded-For helpers run on
 * whatever the requests carry.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_parse.h"

#define HEADER_MAX 2048
#define FIELDS_MAX 16
#define BODY_MAX 512

static int
on_headers(void *arg, struct http_msg *m, size_t *max_body)
{
	/* Refuse some requests, as unknown routes are, to reach the
	 * refusal paths too. */
	*max_body = BODY_MAX;
	return m->target[0] == '/' && m->target[1] == 'x' ? 404 : 0;
}

static int
trust_all_but_9(void *arg, const char *ip)
{
	return strncmp(ip, "9.", 2) != 0;
}

static void
check_msg(const struct http_parse *hp)
{
	const struct http_msg *m = &hp->msg;
	char host[256], ip[64];
	int is_ip;

	if (m->method == NULL || m->target == NULL || m->target[0] == '\0' ||
	    m->major != 1 || m->nfields > FIELDS_MAX ||
	    m->body_len > BODY_MAX || m->body == NULL ||
	    strlen(m->target) > HEADER_MAX)
		abort();
	for (size_t i = 0; i < m->nfields; i++) {
		const char *v = m->fields[i].value;

		if (m->fields[i].name[0] == '\0' || strpbrk(v, "\r\n") ||
		    (*v == ' ' || *v == '\t'))
			abort();
		if (http_host_parse(v, host, sizeof(host), &is_ip) == 0 &&
		    (host[0] == '\0' || strchr(host, ':') != NULL) && !is_ip)
			abort();
	}
	if (http_forwarded_client(http_msg_field(m, "forwarded"),
	    http_msg_field(m, "x-forwarded-for"), trust_all_but_9, NULL, ip,
	    sizeof(ip)) == 0 && ip[0] == '\0')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_parse hp;
	size_t step, off = 0, used;
	int requests = 0;

	if (size == 0)
		return 0;
	step = 1 + data[0] % 64;
	data++;
	size--;
	http_parse_init(&hp, HEADER_MAX, FIELDS_MAX, on_headers, NULL);
	while (off < size && requests < 64) {
		size_t n = size - off < step ? size - off : step;
		enum http_parse_result r = http_parse_feed(&hp,
		    (const char *)data + off, n, &used);

		if (used > n)
			abort();
		off += used;
		if (r == HTTP_PARSE_ERROR) {
			switch (hp.status) {
			case 400: case 404: case 413: case 414: case 431:
			case 505:
				break;
			default:
				abort();
			}
			break;
		}
		if (r == HTTP_PARSE_DONE) {
			check_msg(&hp);
			if (hp.refused != 0 && hp.refused != 404)
				abort();
			requests++;
			if (hp.msg.upgrade)
				break;      /* the rest is another protocol */
			http_parse_next(&hp);
		}
	}
	http_parse_free(&hp);
	return 0;
}
