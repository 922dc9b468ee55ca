/*
 * libFuzzer target for what a client can reach once logged in: the client
 * stream state machine (stream/c2s.c) and everything behind it, the
 * router, presence and rosters, and the IQ handlers and hooks of every
 * module, fed arbitrary stanza sequences after a scripted login (stream
 * header, SCRAM-SHA-256, bind, initial presence), so that a handler that
 * trusts a stanza's shape is found (the CVE-2011-4320 class).  An input
 * that starts with 0xFE is fed before authentication instead (SASL,
 * SASL2 and what it does inline: Bind 2, resumption, FAST).  One that
 * starts with 0xFD is fed to an external component's stream (XEP-0114,
 * stream/component.c) after its handshake, as comp.localhost: the 'from'
 * check, and routing from a component to users, services and itself.
 *
 * The socket layer (net/) is replaced by the functions at the top, which
 * keep what the stream writes; storage is a real SQLite database in a
 * temporary directory served by its own thread, with the worker pool, and
 * the loop runs until storage is idle after every chunk of input so that
 * completions come back as they would.  A second account, bob, is in
 * alice's roster (both ways) and online, so that routing has somewhere
 * to go.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "base64.h"
#include "buf.h"
#include "conf.h"
#include "core/account.h"
#include "core/iq.h"
#include "core/sm.h"
#include "log.h"
#include "mono.h"
#include "mod/modules.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/tls.h"
#include "net/websocket.h"
#include "scram.h"
#include "store/store.h"
#include "handshake.h"
#include "stream/c2s.h"
#include "stream/component.h"
#include "work.h"
#include "xmppd.h"

struct ev_loop *xmppd_loop;
struct conf *xmppd_conf;
double xmppd_started;

/* What the daemon would have sent, per connection (the last one). */
static struct buf out;
static uint64_t next_conn_id = 1;

/* The socket layer, as c2s.c uses it. */

void
conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->state >= CONN_CLOSING)
		return;
	if (buf_avail(&out) < 4 * 1024 * 1024)
		buf_add(&out, data, len);
}

void
conn_close(struct conn *c)
{
	if (c->state < CONN_CLOSING)
		c->state = CONN_CLOSING;
}

void
conn_kill(struct conn *c, const char *reason)
{
	c->state = CONN_DEAD;
	c->close_reason = reason;
}

void
conn_pause(struct conn *c, enum conn_pause_reason why)
{
	c->paused |= (unsigned)why;
}

void
conn_resume(struct conn *c, enum conn_pause_reason why)
{
	c->paused &= ~(unsigned)why;
}

void
conn_set_gate(int closed)
{
	(void)closed;
}

void
conn_set_timeout(struct conn *c, double seconds, const char *reason)
{
	(void)c;
	(void)seconds;
	(void)reason;
}

void
conn_set_idle(struct conn *c, double seconds)
{
	(void)c;
	(void)seconds;
}

void
conn_starttls(struct conn *c)
{
	(void)c;    /* a TLS handshake the fuzzer cannot speak: stalls */
}

const char *
conn_tls_version(const struct conn *c)
{
	return "TLSv1.3";
}

const char *
conn_tls_cipher(const struct conn *c)
{
	return "TLS_AES_256_GCM_SHA384";
}

size_t
tls_cb_exporter(SSL *ssl, unsigned char *out_data)
{
	return 0;
}

size_t
tls_cb_server_end_point(SSL *ssl, unsigned char *out_data)
{
	return 0;
}

size_t
tls_cb_unique(SSL *ssl, unsigned char *out_data)
{
	return 0;
}

/* The WebSocket framing of c2s.c is not reached here (no route is added,
 * no stream has a ws); tests/fuzz/fuzz_websocket.c fuzzes its reader. */

int
http_route_add(const char *prefix, unsigned methods, size_t max_body,
    http_handler_fn handler, void *arg)
{
	abort();
}

void
http_route_remove(const char *prefix)
{
	abort();
}

void
http_respond_status(struct http_request *r, int status)
{
	abort();
}

void
http_respond(struct http_request *r, int status, const char *content_type,
    const void *body, size_t len)
{
	abort();
}

const char *
http_header(const struct http_request *r, const char *name)
{
	abort();
}

void
http_add_header(struct http_request *r, const char *name, const char *value)
{
	abort();
}

/* BOSH (stream/bosh.c) is not linked (its route is never added),
 * nor are these of its calls. */

void
http_hold(struct http_request *r, http_abort_fn abort_fn, void *arg)
{
	abort();
}

struct http_request *
http_request_find(uint64_t id)
{
	abort();
}

struct conn *
conn_new_virtual(const struct conn_handler *h,
    const struct conn_virtual_ops *vops, void *varg, const char *ip,
    const char *addr, enum listen_kind kind, int local_port)
{
	abort();
}

int
websocket_upgrade(struct http_request *r,
    const struct ws_accept_rules *rules, const struct ws_upper *up,
    void *(*create)(struct ws *ws, struct conn *c, struct http_request *r,
        void *arg),
    void *arg)
{
	abort();
}

void
websocket_send(struct ws *ws, const char *data, size_t len)
{
	abort();
}

void
websocket_close(struct ws *ws, enum ws_close_code code)
{
	abort();
}

/* Running the loop until storage and the worker pool are done. */

static int sentinel_done;

static void
sentinel_cb(uint64_t owner, uint64_t tag, enum store_status st,
    const struct store_user *u)
{
	sentinel_done = 1;
}

/* The store answers in order: once a request made now has completed,
 * so have those before it.  Twice, for completions that made more.  The
 * worker pool's jobs (PLAIN's key derivation) are waited for first. */
static void
settle(void)
{
	for (int i = 0; i < 100000 && work_unfinished() > 0; i++) {
		ev_run(xmppd_loop, EVRUN_NOWAIT);
		if (work_unfinished() > 0)
			usleep(50);
	}
	for (int round = 0; round < 3; round++) {
		sentinel_done = 0;
		store_user_get("alice", "localhost", sentinel_cb, 0, 0);
		for (int i = 0; i < 100000 && !sentinel_done; i++) {
			ev_run(xmppd_loop, EVRUN_NOWAIT);
			if (!sentinel_done)
				usleep(50);
		}
		if (!sentinel_done)
			abort();
	}
	ev_run(xmppd_loop, EVRUN_NOWAIT);
}

static int created;

static void
created_cb(uint64_t owner, uint64_t tag, enum store_status st)
{
	if (st != STORE_OK && st != STORE_EXISTS)
		abort();
	created++;
}

static void
add_user(const char *user, const char *password)
{
	char *pw = NULL;
	int want = created + 1;

	if (account_password_prepare(password, &pw) != ACCOUNT_PASSWORD_OK)
		abort();
	account_set_password(ACCOUNT_CREATE, user, "localhost", pw, NULL,
	    created_cb, 0, 0);
	for (int i = 0; i < 200000 && created < want; i++) {
		ev_run(xmppd_loop, EVRUN_NOWAIT);
		usleep(50);
	}
	if (created < want)
		abort();
}

/* A client over the replaced socket layer. */

struct client {
	struct conn *conn;
	unsigned char client_key[SCRAM_MAX_HASH];
	int have_key;
};

static void
client_send(struct client *cl, const char *data, size_t len)
{
	if (cl->conn->state != CONN_OPEN)
		return;
	cl->conn->last_read = mono_now(xmppd_loop);
	cl->conn->h->on_data(cl->conn, data, len);
	settle();
}

static void
client_sends(struct client *cl, const char *s)
{
	client_send(cl, s, strlen(s));
}

/* The text of the last <name ...>TEXT</name> in what was sent, or NULL
 * (malloc'ed). */
static char *
last_text(const char *name)
{
	char open[32], close[32];
	const char *p, *q, *e, *data;

	buf_addc(&out, '\0');
	out.len--;
	data = buf_head(&out);
	snprintf(open, sizeof(open), "<%s", name);
	snprintf(close, sizeof(close), "</%s>", name);
	p = NULL;
	for (q = strstr(data, open); q != NULL; q = strstr(q + 1, open))
		p = q;
	if (p == NULL || (q = strchr(p, '>')) == NULL ||
	    (e = strstr(q, close)) == NULL)
		return NULL;
	return strndup(q + 1, (size_t)(e - q - 1));
}

static const char header[] =
    "<?xml version='1.0'?><stream:stream to='localhost' "
    "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    "version='1.0'>";

/* The base64 text of the last <name ...>TEXT</name> the daemon sent,
 * decoded into a NUL-terminated malloc'ed string, or NULL. */
static char *
last_decoded(const char *name)
{
	char *t = last_text(name), *s;
	unsigned char *bin = NULL;
	long n;

	if (t == NULL)
		return NULL;
	n = base64_decode_alloc(t, strlen(t), &bin);
	free(t);
	if (n < 0)
		return NULL;
	s = malloc((size_t)n + 1);
	memcpy(s, bin, (size_t)n);
	s[n] = '\0';
	free(bin);
	return s;
}

/* The value of attribute a= of a SCRAM message, malloc'ed, or NULL. */
static char *
scram_attr(const char *msg, char a)
{
	for (const char *p = msg; p != NULL; p = strchr(p, ',')) {
		if (*p == ',')
			p++;
		if (p[0] == a && p[1] == '=') {
			const char *e = strchr(p, ',');

			return e ? strndup(p + 2, (size_t)(e - p - 2)) :
			    strdup(p + 2);
		}
	}
	return NULL;
}

static void
client_auth(struct client *cl, const char *mech, const char *msg)
{
	char *b64 = base64_encode_alloc(msg, strlen(msg));
	struct buf b = BUF_INIT;

	buf_printf(&b, "<%s xmlns='urn:ietf:params:xml:ns:xmpp-sasl'%s%s%s>"
	    "%s</%s>", mech ? "auth" : "response", mech ? " mechanism='" : "",
	    mech ? mech : "", mech ? "'" : "", b64, mech ? "auth" : "response");
	buf_reset(&out);
	client_send(cl, buf_head(&b), buf_avail(&b));
	buf_free(&b);
	free(b64);
}

/* A new connection, as after its TLS handshake, with the stream header
 * sent. */
static void
client_open(struct client *cl)
{
	cl->conn = calloc(1, sizeof(*cl->conn));
	cl->conn->id = next_conn_id++;
	cl->conn->fd = -1;
	snprintf(cl->conn->ip, sizeof(cl->conn->ip), "127.0.0.1");
	snprintf(cl->conn->addr, sizeof(cl->conn->addr), "127.0.0.1:%u",
	    (unsigned)(1000 + cl->conn->id % 60000));
	cl->conn->h = &c2s_conn_handler;
	cl->conn->upper = c2s_conn_handler.on_accept(cl->conn);
	if (cl->conn->upper == NULL)
		abort();
	/* As after a handshake: the stream counts as encrypted. */
	c2s_conn_handler.on_tls(cl->conn);
	buf_reset(&out);
	client_sends(cl, header);
}

/* Log in user (password pw) with SCRAM-SHA-256 and bind; 0 or -1. */
static int
client_login(struct client *cl, const char *user, const char *pw)
{
	char cfirst[128], nonce[25], *first = NULL, *r = NULL, *s = NULL;
	char *i = NULL, *proof64, *am;
	unsigned char salt[64], proof[SCRAM_MAX_HASH], sk[SCRAM_MAX_HASH];
	struct buf b = BUF_INIT;
	long saltlen;
	int ok = -1;

	client_open(cl);
	scram_random_nonce(nonce, 24);
	snprintf(cfirst, sizeof(cfirst), "n=%s,r=%s", user, nonce);
	buf_printf(&b, "n,,%s", cfirst);
	client_auth(cl, "SCRAM-SHA-256", buf_head(&b));
	if ((first = last_decoded("challenge")) == NULL ||
	    (r = scram_attr(first, 'r')) == NULL ||
	    (s = scram_attr(first, 's')) == NULL ||
	    (i = scram_attr(first, 'i')) == NULL ||
	    (saltlen = base64_decode(s, strlen(s), salt)) < 0)
		goto done;
	if (!cl->have_key) {
		/* One PBKDF2 for the whole run: the salt does not change. */
		scram_client_key(SCRAM_SHA256, pw, salt, (size_t)saltlen,
		    (unsigned)atoi(i), cl->client_key, sk);
		cl->have_key = 1;
	}
	/* AuthMessage = client-first-bare "," server-first "," final
	 * without the proof (RFC 5802 §3). */
	buf_reset(&b);
	buf_printf(&b, "%s,%s,c=biws,r=%s", cfirst, first, r);
	am = strdup(buf_head(&b));
	scram_client_proof(SCRAM_SHA256, cl->client_key, am, proof);
	free(am);
	proof64 = base64_encode_alloc(proof, scram_hash_len(SCRAM_SHA256));
	buf_reset(&b);
	buf_printf(&b, "c=biws,r=%s,p=%s", r, proof64);
	free(proof64);
	client_auth(cl, NULL, buf_head(&b));
	buf_addc(&out, '\0');
	if (strstr(buf_head(&out), "<success") == NULL)
		goto done;
	buf_reset(&out);
	client_sends(cl, header);
	client_sends(cl, "<iq type='set' id='bind'><bind xmlns='"
	    "urn:ietf:params:xml:ns:xmpp-bind'><resource>fuzz</resource>"
	    "</bind></iq><presence/>");
	buf_addc(&out, '\0');
	ok = strstr(buf_head(&out), "<jid>") != NULL ? 0 : -1;
done:
	free(first);
	free(r);
	free(s);
	free(i);
	buf_free(&b);
	return ok;
}

/* The connection goes, as the reaper would end it. */
static void
client_gone(struct client *cl)
{
	if (cl->conn == NULL)
		return;
	cl->conn->state = CONN_DEAD;
	cl->conn->h->on_close(cl->conn);
	free(cl->conn);
	cl->conn = NULL;
	settle();
}

static struct client alice, bob;

static const char conf_text[] =
    "log-level error\n"
    "storage \"%s/fuzz.db\"\n"
    "storage-sync normal\n"
    "control-socket \"%s/fuzz.sock\"\n"
    "registration on\n"
    "listen c2s 5222 starttls optional\n"
    "limits {\n"
    "\tstanzas-per-second 0\n"
    "\tping-interval 0\n"
    /* Pre-auth inputs fail logins by the thousand: that may not lock
     * out the scripted login of the next one. */
    "\tauth-failures-per-ip 1000000\n"
    "\tauth-ban-time 0\n"
    "}\n"
    "host \"localhost\" {\n"
    "\tcertificate \"x.pem\"\n"
    "\tkey \"x.pem\"\n"
    "}\n"
    "component \"comp.localhost\" {\n"
    "\tsecret \"fuzz-secret\"\n"
    "\tstanzas-per-second 0\n"
    "}\n";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/fuzz-c2s-XXXXXX", err[512];
	struct buf text = BUF_INIT;

	log_init("fuzz_c2s", 1, LOG_LVL_ERROR);
	if (mkdtemp(dir) == NULL)
		abort();
	buf_printf(&text, conf_text, dir, dir);
	xmppd_loop = ev_default_loop(0);
	if ((xmppd_conf = conf_parse("fuzz", buf_head(&text), err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	buf_free(&text);
	if (store_open(xmppd_loop, xmppd_conf->storage, 0, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	work_init(xmppd_loop, 1);
	c2s_init();
	iq_init();
	modules_init();
	component_set_conf(xmppd_conf);
	xmppd_started = mono_now(xmppd_loop);
	add_user("alice", "alice-secret");
	add_user("bob", "bob-secret");
	if (client_login(&bob, "bob", "bob-secret") < 0)
		abort();
	/* Mutual subscription, once, so presence and rosters have work. */
	if (client_login(&alice, "alice", "alice-secret") < 0)
		abort();
	client_sends(&alice, "<presence to='bob@localhost' type='subscribe'/>");
	client_sends(&bob, "<presence to='alice@localhost' type='subscribed'/>"
	    "<presence to='alice@localhost' type='subscribe'/>");
	client_sends(&alice, "<presence to='bob@localhost' "
	    "type='subscribed'/>");
	client_gone(&alice);
	return 0;
}

/*
 * The input is split at 0xFF bytes (never valid in UTF-8, so never part
 * of a stanza) into chunks, each fed to alice's stream as one read; the
 * stream ends however the input leaves it.
 */
/* An input may have changed alice's password or deleted her account
 * (XEP-0077): put it back as it was. */
static int reset_done;

static void
reset_cb(uint64_t owner, uint64_t tag, enum store_status st)
{
	reset_done = st == STORE_OK ? 1 : -1;
}

static void
alice_reset(void)
{
	char *pw = NULL;

	if (account_password_prepare("alice-secret", &pw) !=
	    ACCOUNT_PASSWORD_OK)
		abort();
	reset_done = 0;
	account_set_password(ACCOUNT_SET_KEYS, "alice", "localhost", pw, NULL,
	    reset_cb, 0, 0);
	for (int i = 0; i < 200000 && reset_done == 0; i++) {
		ev_run(xmppd_loop, EVRUN_NOWAIT);
		usleep(50);
	}
	if (reset_done < 0)
		add_user("alice", "alice-secret");
	alice.have_key = 0;
}

/* The chunks of data, split at 0xFF, each fed to cl as one read. */
static void
feed_chunks(struct client *cl, const uint8_t *data, size_t size)
{
	while (size > 0 && cl->conn->state == CONN_OPEN) {
		const uint8_t *cut = memchr(data, 0xFF, size);
		size_t n = cut != NULL ? (size_t)(cut - data) : size;

		if (n > 0)
			client_send(cl, (const char *)data, n);
		if (cut == NULL)
			break;
		data += n + 1;
		size -= n + 1;
	}
}

/*
 * An input that starts with 0xFE is fed before authentication, on a new
 * connection (of another client, carol) that has sent only its stream
 * header: SASL, SASL2 with its inline requests (Bind 2, XEP-0198
 * resumption, FAST), registration.  alice's password is known, so a
 * PLAIN exchange there succeeds and what follows runs authenticated.
 */
static struct client carol;

static void
preauth(const uint8_t *data, size_t size)
{
	client_open(&carol);
	feed_chunks(&carol, data, size);
	client_gone(&carol);
	/* Sessions it bound may wait to be resumed (XEP-0198), each under
	 * its own Bind 2 resource: they would pile up to sessions-per-user
	 * and lock alice out. */
	sm_kick("alice", "localhost", NULL, "reset", NULL);
	settle();
	buf_reset(&out);
}

/* 0xFD: an external component (dave) that has done its handshake; bob
 * is online for it to reach. */
static struct client dave;

static void
component(const uint8_t *data, size_t size)
{
	static const char comp_header[] = "<stream:stream "
	    "xmlns='jabber:component:accept' "
	    "xmlns:stream='http://etherx.jabber.org/streams' "
	    "to='comp.localhost'>";
	char digest[HANDSHAKE_HEX_LEN + 1], hs[128];
	const char *id, *end;
	char sid[64];

	dave.conn = calloc(1, sizeof(*dave.conn));
	dave.conn->id = next_conn_id++;
	dave.conn->fd = -1;
	snprintf(dave.conn->ip, sizeof(dave.conn->ip), "127.0.0.1");
	snprintf(dave.conn->addr, sizeof(dave.conn->addr), "127.0.0.1:5347");
	dave.conn->h = &component_conn_handler;
	dave.conn->upper = component_conn_handler.on_accept(dave.conn);
	buf_reset(&out);
	client_sends(&dave, comp_header);
	buf_addc(&out, '\0');
	if ((id = strstr(buf_head(&out), " id='")) == NULL ||
	    (end = strchr(id + 5, '\'')) == NULL ||
	    (size_t)(end - id - 5) >= sizeof(sid))
		abort();
	memcpy(sid, id + 5, (size_t)(end - id - 5));
	sid[end - id - 5] = '\0';
	handshake_digest(sid, "fuzz-secret", digest);
	snprintf(hs, sizeof(hs), "<handshake>%s</handshake>", digest);
	buf_reset(&out);
	client_sends(&dave, hs);
	buf_addc(&out, '\0');
	if (strstr(buf_head(&out), "<handshake/>") == NULL)
		abort();
	feed_chunks(&dave, data, size);
	client_gone(&dave);
	buf_reset(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 0 && data[0] == 0xFE) {
		preauth(data + 1, size - 1);
		return 0;
	}
	if (size > 0 && data[0] == 0xFD) {
		component(data + 1, size - 1);
		return 0;
	}
	if (client_login(&alice, "alice", "alice-secret") < 0) {
		client_gone(&alice);
		alice_reset();
		if (client_login(&alice, "alice", "alice-secret") < 0)
			abort();
	}
	feed_chunks(&alice, data, size);
	client_gone(&alice);
	buf_reset(&out);
	return 0;
}
