/*
 * XEP-0363 HTTP file upload (v1.1, urn:xmpp:http:upload:0), the XMPP
 * side: the upload.HOST services (disco#info with the max-file-size
 * form), slot requests checked against the quotas in the store, the
 * signatures web/upload_http.c checks PUTs with, and the removal of
 * files: expired ones by a sweeper, an account's when it is deleted.
 * Files are read, written and removed on the worker pool only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "conf.h"
#include "core/disco.h"
#include "core/hooks.h"
#include "core/router.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/stanza.h"
#include "ht.h"
#include "jid.h"
#include "log.h"
#include "mod/upload.h"
#include "scram.h"
#include "store/fast.h"
#include "store/upload.h"
#include "strmap.h"
#include "work.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

void mod_upload_init(void);
void mod_upload_deinit(void);
void mod_upload_reload(void);

#define CONTENT_TYPE_MAX 128
#define SWEEP_INTERVAL 60.0 /* s, at most */

struct service {
	char *domain, *host;
};

static struct service *services;
static size_t nservices;
static int running;
static unsigned char sign_key[32];
static struct strmap *pending; /* slot requests at the store, by id */
static uint64_t next_pending;
static ev_timer sweep_w;
static int sweeping; /* a sweep's deletion is at the store */

/* A slot request waiting for its reservation. */
struct slot {
	uint64_t session;      /* the requester's session id */
	struct xel *iq;        /* the request (own arena) */
	char *token, *encoded; /* the file's token and URL name */
	int64_t size;
	char *type; /* "" if the request named none */
};

int
upload_running(void)
{
	return running;
}

/* The signing key: HMAC-SHA-256 of the server's secret (store/fast.h),
 * so that the secret itself signs nothing but what it was made for. */
static void
derive_key(void)
{
	static const char label[] = "xmppd upload signing key";

	scram_hmac(SCRAM_SHA256, store_fast_key(), HT_KEY_LEN, label,
	    sizeof(label) - 1, sign_key);
}

void
upload_sign(const char *path, int64_t size, const char *type, int64_t expires,
    char out[65])
{
	unsigned char mac[32];
	char *msg;
	int n;

	/* NUL-separated: no field can run into the next. */
	n = asprintf(&msg, "PUT%c%s%c%" PRId64 "%c%s%c%" PRId64, 0, path, 0,
	    size, 0, type, 0, expires);
	if (n < 0)
		fatal("asprintf");
	scram_hmac(
	    SCRAM_SHA256, sign_key, sizeof(sign_key), msg, (size_t)n, mac);
	free(msg);
	for (size_t i = 0; i < sizeof(mac); i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

int
upload_signature_ok(const char *path, int64_t size, const char *type,
    int64_t expires, const char *sig)
{
	char want[65];

	if (sig == NULL || strlen(sig) != 64)
		return 0;
	upload_sign(path, size, type, expires, want);
	return CRYPTO_memcmp(want, sig, 64) == 0;
}

char *
upload_file_path(const char *token)
{
	return xasprintf("%s/%s", xmppd_conf->upload_dir, token);
}

char *
upload_tmp_path(const char *token, uint64_t request_id)
{
	return xasprintf(
	    "%s/.tmp-%s-%" PRIu64, xmppd_conf->upload_dir, token, request_id);
}

int
upload_filename_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 255 || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return 0;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '/' || *p == '\\')
			return 0;
	return 1;
}

char *
upload_encode_name(const char *name)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = xmalloc(3 * strlen(name) + 1), *o = out;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		/* RFC 3986 §2.3 unreserved characters stay. */
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL)
			*o++ = (char)*p;
		else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

/* Removing files: a worker job. */

struct remove_job {
	char **paths;
	size_t n;
};

static void
remove_run(void *arg)
{
	struct remove_job *j = arg;

	for (size_t i = 0; i < j->n; i++)
		if (unlink(j->paths[i]) == -1 && errno != ENOENT)
			log_warn("upload: removing %s", j->paths[i]);
}

static void
remove_done(void *arg, uint64_t owner, uint64_t tag)
{
	struct remove_job *j = arg;

	for (size_t i = 0; i < j->n; i++)
		free(j->paths[i]);
	free(j->paths);
	free(j);
}

void
upload_remove_files(const char *const *tokens, size_t n)
{
	struct remove_job *j;

	if (n == 0)
		return;
	j = xcalloc(1, sizeof(*j));
	j->paths = xcalloc(n, sizeof(*j->paths));
	for (size_t i = 0; i < n; i++)
		j->paths[j->n++] = upload_file_path(tokens[i]);
	work_submit(remove_run, remove_done, j, 0, 0);
}

static void
remove_rows(const struct store_upload *rows, size_t n)
{
	const char **tokens = xcalloc(n ? n : 1, sizeof(*tokens));

	for (size_t i = 0; i < n; i++)
		tokens[i] = rows[i].token;
	upload_remove_files(tokens, n);
	free(tokens);
}

/* Slot requests (XEP-0363 §4). */

static void
slot_free(struct slot *sl)
{
	if (sl->iq != NULL)
		arena_free(sl->iq->arena);
	free(sl->token);
	free(sl->encoded);
	free(sl->type);
	free(sl);
}

static void
reply_error(struct session *s, const struct xel *iq, const char *type,
    const char *cond, const char *text)
{
	struct xel *r = stanza_error(iq, type, cond, text);

	if (r != NULL)
		session_reply(s, r);
}

/* §4: file-too-large with the largest size allowed. */
static void
reply_too_large(struct session *s, const struct xel *iq)
{
	struct xel *r = stanza_error(
	               iq, "modify", "not-acceptable", "File too large"),
	           *e, *f;
	char max[32];

	if (r == NULL)
		return;
	e = xel_child(r, "error", NULL);
	f = xel_add(e, "file-too-large", NS_HTTP_UPLOAD);
	snprintf(max, sizeof(max), "%zu", xmppd_conf->limits.upload_file_size);
	xel_text_set(xel_add(f, "max-file-size", NULL), max);
	session_reply(s, r);
}

/* §4: a temporary quota, with when to retry. */
static void
reply_retry(struct session *s, const struct xel *iq, int64_t when)
{
	struct xel *r = stanza_error(
	               iq, "wait", "resource-constraint", "Quota reached"),
	           *e, *retry;
	char stamp[32];
	time_t t = (time_t)when;
	struct tm tm;

	if (r == NULL)
		return;
	e = xel_child(r, "error", NULL);
	retry = xel_add(e, "retry", NS_HTTP_UPLOAD);
	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	xel_set_attr(retry, "stamp", stamp);
	session_reply(s, r);
}

static void
reply_slot(struct session *s, const struct slot *sl)
{
	struct xel *r = stanza_iq_result(sl->iq), *slot;
	int64_t expires = (int64_t)time(NULL) + UPLOAD_SLOT_LIFETIME;
	char *path = xasprintf("%s/%s", sl->token, sl->encoded);
	char sig[65];
	char *put, *get;

	upload_sign(path, sl->size, sl->type, expires, sig);
	put = xasprintf("%s%s/%s?e=%" PRId64 "&s=%s", xmppd_conf->upload_url,
	    UPLOAD_PATH, path, expires, sig);
	get = xasprintf("%s%s/%s", xmppd_conf->upload_url, UPLOAD_PATH, path);
	slot = xel_add(r, "slot", NS_HTTP_UPLOAD);
	xel_set_attr(xel_add(slot, "put", NULL), "url", put);
	xel_set_attr(xel_add(slot, "get", NULL), "url", get);
	session_reply(s, r);
	free(path);
	free(put);
	free(get);
}

static void
reserved(uint64_t owner, enum store_status st, enum upload_reserve_result res,
    int64_t retry)
{
	char key[24];
	struct slot *sl;
	struct session *s;

	snprintf(key, sizeof(key), "%" PRIu64, owner);
	if (pending == NULL || (sl = strmap_del(pending, key)) == NULL)
		return;
	if ((s = sm_find_id(sl->session)) == NULL || s->closing) {
		slot_free(sl);
		return;
	}
	if (st != STORE_OK)
		reply_error(s, sl->iq, NULL, "internal-server-error", NULL);
	else if (res == UPLOAD_OVER_FILES_PER_DAY)
		reply_retry(s, sl->iq, retry);
	else if (res == UPLOAD_OVER_USER_BYTES)
		reply_error(s, sl->iq, "wait", "resource-constraint",
		    "Upload quota reached: delete files or wait until they "
		    "expire");
	else if (res == UPLOAD_OVER_DISK)
		reply_error(s, sl->iq, "wait", "resource-constraint",
		    "The server's upload space is full");
	else
		reply_slot(s, sl);
	slot_free(sl);
}

/* A MIME type as RFC 2045 §5.1 writes one: type "/" subtype, each a
 * token, then parameters; no control characters. */
static int
content_type_ok(const char *t)
{
	const char *slash = strchr(t, '/');
	size_t n = strlen(t);

	if (n == 0 || n > CONTENT_TYPE_MAX || slash == NULL || slash == t ||
	    slash[1] == '\0')
		return 0;
	for (const unsigned char *p = (const unsigned char *)t; *p; p++)
		if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\')
			return 0;
	return 1;
}

static int
parse_size(const char *v, int64_t *out)
{
	int64_t n = 0;

	if (v == NULL || *v == '\0' || strlen(v) > 18)
		return -1;
	for (const char *p = v; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		n = n * 10 + (*p - '0');
	}
	*out = n;
	return 0;
}

static void
handle_request(struct session *s, struct xel *iq, struct xel *req)
{
	const char *name = xel_attr(req, "filename");
	const char *type = xel_attr(req, "content-type");
	struct store_upload u = {0};
	struct store_upload_limits lim;
	unsigned char rnd[UPLOAD_TOKEN_LEN / 2];
	char token[UPLOAD_TOKEN_LEN + 1], key[24];
	struct slot *sl;
	int64_t size;

	if (parse_size(xel_attr(req, "size"), &size) == -1 || size == 0 ||
	    name == NULL) {
		reply_error(s, iq, NULL, "bad-request",
		    "filename and a positive size are required");
		return;
	}
	if (!upload_filename_ok(name)) {
		reply_error(s, iq, NULL, "not-acceptable", "Invalid file name");
		return;
	}
	if (type != NULL && !content_type_ok(type)) {
		reply_error(s, iq, NULL, "bad-request", "Invalid content-type");
		return;
	}
	if ((uint64_t)size > xmppd_conf->limits.upload_file_size) {
		reply_too_large(s, iq);
		return;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		reply_error(s, iq, NULL, "internal-server-error", NULL);
		return;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(token + 2 * i, 3, "%02x", rnd[i]);
	sl = xcalloc(1, sizeof(*sl));
	sl->session = s->id;
	sl->iq = xel_copy_fit(iq, 0);
	sl->token = xstrdup(token);
	sl->encoded = upload_encode_name(name);
	sl->size = size;
	sl->type = xstrdup(type != NULL ? type : "");
	snprintf(key, sizeof(key), "%" PRIu64, ++next_pending);
	strmap_put(pending, key, sl);

	u.token = token;
	u.host = s->jid.domain;
	u.user = s->jid.node;
	u.filename = name;
	u.content_type = sl->type;
	u.size = size;
	u.created = (int64_t)time(NULL);
	lim.user_bytes = (int64_t)xmppd_conf->limits.upload_quota;
	lim.user_files_per_day = xmppd_conf->limits.upload_files_per_day;
	lim.disk_bytes = (int64_t)xmppd_conf->limits.upload_disk;
	store_upload_reserve(&u, &lim, reserved, next_pending);
}

/* The service's disco#info (XEP-0363 §2, XEP-0128 form). */
static void
service_info(struct xel *q)
{
	struct xel *id = xel_add(q, "identity", NULL), *x, *f;
	char max[32];

	xel_set_attr(id, "category", "store");
	xel_set_attr(id, "type", "file");
	xel_set_attr(id, "name", "HTTP File Upload");
	xel_set_attr(xel_add(q, "feature", NULL), "var", NS_DISCO_INFO);
	xel_set_attr(xel_add(q, "feature", NULL), "var", NS_HTTP_UPLOAD);
	x = xel_add(q, "x", NS_XDATA);
	xel_set_attr(x, "type", "result");
	f = xel_add(x, "field", NULL);
	xel_set_attr(f, "var", "FORM_TYPE");
	xel_set_attr(f, "type", "hidden");
	xel_text_set(xel_add(f, "value", NULL), NS_HTTP_UPLOAD);
	f = xel_add(x, "field", NULL);
	xel_set_attr(f, "var", "max-file-size");
	snprintf(max, sizeof(max), "%zu", xmppd_conf->limits.upload_file_size);
	xel_text_set(xel_add(f, "value", NULL), max);
}

static int
attr_is(const struct xel *el, const char *name, const char *value)
{
	const char *v = xel_attr(el, name);

	return v != NULL && strcmp(v, value) == 0;
}

static void
upload_route(struct session *from, struct xel *st, const struct jid *to)
{
	struct xel *q;

	if (from == NULL || from->closing || stanza_kind(st) != STANZA_IQ)
		return;
	if (!attr_is(st, "type", "get") && !attr_is(st, "type", "set"))
		return;
	q = xel_first_elem(st);
	if (to->node != NULL || to->resource != NULL || q == NULL) {
		reply_error(from, st, NULL, "service-unavailable", NULL);
		return;
	}
	if (attr_is(st, "type", "get") && xel_is(q, "request", NS_HTTP_UPLOAD))
		handle_request(from, st, q);
	else if (attr_is(st, "type", "get") && xel_attr(q, "node") == NULL &&
	         xel_is(q, "query", NS_DISCO_INFO)) {
		struct xel *r = stanza_iq_result(st);

		service_info(xel_add(r, "query", NS_DISCO_INFO));
		session_reply(from, r);
	} else if (attr_is(st, "type", "get") && xel_attr(q, "node") == NULL &&
	           xel_is(q, "query", NS_DISCO_ITEMS)) {
		struct xel *r = stanza_iq_result(st);

		xel_add(r, "query", NS_DISCO_ITEMS);
		session_reply(from, r);
	} else
		reply_error(from, st, NULL, "service-unavailable", NULL);
}

/* Expiry and account deletion. */

static void
swept(uint64_t owner, enum store_status st, const struct store_upload *rows,
    size_t n)
{
	sweeping = 0;
	if (st != STORE_OK)
		return;
	if (n > 0)
		log_info("upload: %zu expired upload(s) removed", n);
	remove_rows(rows, n);
	/* More than a pass deletes: go on at once. */
	if (n == UPLOAD_LIST_MAX && running)
		ev_feed_event(xmppd_loop, &sweep_w, EV_TIMER);
}

static void
sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
	int64_t now = (int64_t)time(NULL);
	unsigned expiry = xmppd_conf->limits.upload_expiry;

	if (sweeping || !running)
		return;
	sweeping = 1;
	/* Slots never used go when their PUT URL has long expired. */
	store_upload_delete(NULL, NULL, expiry ? now - expiry : 0,
	    now - 2 * UPLOAD_SLOT_LIFETIME, swept, 0);
}

static void user_deleted(const char *user, const char *host);

static void
user_files_deleted(uint64_t owner, enum store_status st,
    const struct store_upload *rows, size_t n)
{
	if (st != STORE_OK)
		return;
	if (n > 0)
		log_info("upload: %zu upload(s) of %s@%s removed", n,
		    rows[0].user, rows[0].host);
	remove_rows(rows, n);
	if (n == UPLOAD_LIST_MAX)
		user_deleted(rows[0].user, rows[0].host);
}

static void
user_deleted(const char *user, const char *host)
{
	store_upload_delete(host, user, 0, 0, user_files_deleted, 0);
}

static void
start_services(void)
{
	const struct conf *c = xmppd_conf;

	for (size_t i = 0; i < c->nhosts; i++) {
		struct service *svc;

		if (c->hosts[i].upload == NULL)
			continue;
		if (router_add_service(c->hosts[i].upload, c->hosts[i].name,
		        upload_route) < 0) {
			log_warnx("upload: %s: domain already served",
			    c->hosts[i].upload);
			continue;
		}
		services =
		    xreallocarray(services, nservices + 1, sizeof(*services));
		svc = &services[nservices++];
		svc->domain = xstrdup(c->hosts[i].upload);
		svc->host = xstrdup(c->hosts[i].name);
	}
}

static void
stop_services(void)
{
	for (size_t i = 0; i < nservices; i++) {
		router_remove_service(services[i].domain);
		free(services[i].domain);
		free(services[i].host);
	}
	free(services);
	services = NULL;
	nservices = 0;
}

static void
start_sweeper(void)
{
	double every = SWEEP_INTERVAL;
	unsigned expiry = xmppd_conf->limits.upload_expiry;

	if (expiry > 0 && expiry < every)
		every = expiry;
	ev_timer_stop(xmppd_loop, &sweep_w);
	ev_timer_init(&sweep_w, sweep, every, every);
	ev_timer_start(xmppd_loop, &sweep_w);
	ev_unref(xmppd_loop);
}

void
mod_upload_init(void)
{
	derive_key();
	pending = strmap_new();
	running = 1;
	start_services();
	hook_add_user_deleted(user_deleted);
	ev_init(&sweep_w, sweep);
	start_sweeper();
	log_debug("upload: files in %s, served at %s%s/",
	    xmppd_conf->upload_dir, xmppd_conf->upload_url, UPLOAD_PATH);
}

static void
free_pending(const char *key, void *value, void *arg)
{
	slot_free(value);
}

void
mod_upload_deinit(void)
{
	running = 0;
	stop_services();
	if (ev_is_active(&sweep_w)) {
		ev_ref(xmppd_loop);
		ev_timer_stop(xmppd_loop, &sweep_w);
	}
	strmap_foreach(pending, free_pending, NULL);
	strmap_free(pending);
	pending = NULL;
}

void
mod_upload_reload(void)
{
	stop_services();
	start_services();
	if (ev_is_active(&sweep_w))
		ev_ref(xmppd_loop);
	start_sweeper();
}
