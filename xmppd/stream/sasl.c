/*
 * SASL mechanisms for c2s: SCRAM-SHA-{1,256}[-PLUS] and PLAIN.
 */
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "conf.h"
#include "jid.h"
#include "log.h"
#include "stream/sasl.h"
#include "scram.h"
#include "store/store.h"
#include "work.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_SASL_CB "urn:xmpp:sasl-cb:0"
#define MAX_SASL_DATA 8192

enum mech { M_SCRAM_SHA1, M_SCRAM_SHA256, M_SCRAM_SHA1_PLUS,
	M_SCRAM_SHA256_PLUS, M_PLAIN };

static const struct {
	const char *name;
	enum mech mech;
	int plus, plain;
} mechs[] = {
	{ "SCRAM-SHA-256-PLUS", M_SCRAM_SHA256_PLUS, 1, 0 },
	{ "SCRAM-SHA-1-PLUS", M_SCRAM_SHA1_PLUS, 1, 0 },
	{ "SCRAM-SHA-256", M_SCRAM_SHA256, 0, 0 },
	{ "SCRAM-SHA-1", M_SCRAM_SHA1, 0, 0 },
	{ "PLAIN", M_PLAIN, 0, 1 },
};

enum step { S_WAIT_FIRST, S_WAIT_USER, S_WAIT_FINAL, S_WAIT_PLAIN_USER,
	S_WAIT_PLAIN_HASH, S_DONE };

struct sasl {
	uint64_t id;            /* for completions */
	uint64_t owner;
	enum mech mech;
	enum step step;
	int tls;
	struct sasl_cb cb;
	char *host;
	char *user;             /* prepared localpart */
	char *password;         /* PLAIN only, wiped after use */
	struct scram_client_first cf;
	int have_cf;
	char *server_first;
	char *nonce;            /* client + server nonce */
	struct scram_keys keys;
	struct sasl *next;      /* in the live list */
};

static sasl_reply_fn reply_fn;
static unsigned char fake_secret[32];
static struct sasl *live;
static uint64_t next_id = 1;

void
sasl_init(sasl_reply_fn fn)
{
	reply_fn = fn;
	scram_random_salt(fake_secret, sizeof(fake_secret));
}

static int
mech_plus(enum mech m)
{
	return m == M_SCRAM_SHA1_PLUS || m == M_SCRAM_SHA256_PLUS;
}

static enum scram_hash
mech_hash(enum mech m)
{
	return m == M_SCRAM_SHA1 || m == M_SCRAM_SHA1_PLUS ? SCRAM_SHA1 :
	    SCRAM_SHA256;
}

void
sasl_advertise(struct xel *features, int tls, const struct sasl_cb *cb)
{
	struct xel *m = xel_add(features, "mechanisms", NS_SASL);
	int have_cb = tls && (cb->exporter_len || cb->end_point_len);

	for (size_t i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++) {
		if (mechs[i].plus && !have_cb)
			continue;
		if (mechs[i].plain && !tls)
			continue;     /* PLAIN only over TLS */
		xel_text_set(xel_add(m, "mechanism", NS_SASL), mechs[i].name);
	}
	if (have_cb) {
		/* XEP-0440: the channel-binding types we support here. */
		struct xel *c = xel_add(features, "sasl-channel-binding",
		    NS_SASL_CB);
		if (cb->exporter_len)
			xel_set_attr(xel_add(c, "channel-binding", NULL),
			    "type", "tls-exporter");
		if (cb->end_point_len)
			xel_set_attr(xel_add(c, "channel-binding", NULL),
			    "type", "tls-server-end-point");
	}
}

static void
send_reply(struct sasl *s, enum sasl_reply_kind kind, const char *data,
    const char *cond)
{
	struct sasl_reply r = { kind, data, cond, kind == SASL_SUCCESS ?
		s->user : NULL, 0 };

	if (kind != SASL_CHALLENGE)
		s->step = S_DONE;
	reply_fn(s->owner, &r);
}

static void
fail(struct sasl *s, const char *cond)
{
	send_reply(s, SASL_FAILURE, NULL, cond);
}

/* A wrong password or proof: the failure per-IP throttling counts. */
static void
fail_credentials(struct sasl *s)
{
	struct sasl_reply r = { SASL_FAILURE, NULL, "not-authorized", NULL,
		1 };

	s->step = S_DONE;
	reply_fn(s->owner, &r);
}

static struct sasl *
find_live(uint64_t id)
{
	for (struct sasl *s = live; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

/* Decode the base64 text of <auth>/<response>; "=" is an empty message
 * (RFC 6120 §6.4.2).  Returns the length or -1. */
static long
decode(const char *data, char **out)
{
	unsigned char *p;
	long n;

	if (strcmp(data, "=") == 0 || *data == '\0') {
		*out = xstrdup("");
		return 0;
	}
	if (strlen(data) > MAX_SASL_DATA)
		return -1;
	n = base64_decode_alloc(data, strlen(data), &p);
	if (n < 0)
		return -1;
	*out = (char *)p;
	return n;
}

/* Prepare a SASL username into a JID localpart (SASLprep, then
 * Nodeprep); NULL if it cannot name an account. */
static char *
prep_user(const char *name)
{
	char *sp = scram_saslprep(name), *node;

	if (sp == NULL)
		return NULL;
	node = jid_nodeprep(sp);
	free(sp);
	return node;
}

/* RFC 6120 §6.4.6 / RFC 4422 §3.4.1: an authzid is accepted only if it
 * names the authenticated account itself. */
static int
authzid_ok(const char *authzid, const char *user, const char *host)
{
	char *norm, *want;
	int ok;

	if (authzid == NULL || *authzid == '\0')
		return 1;
	if ((norm = jid_normalize(authzid)) == NULL)
		return 0;
	want = xasprintf("%s@%s", user, host);
	ok = strcmp(norm, want) == 0;
	free(norm);
	free(want);
	return ok;
}

/* Keys for an unknown user: a salt derived from the name, so repeated
 * attempts see the same one, and a stored key no proof can match. */
static void
fake_keys(struct sasl *s)
{
	unsigned char mac[SCRAM_MAX_HASH];

	memset(&s->keys, 0, sizeof(s->keys));
	s->keys.hash = mech_hash(s->mech);
	s->keys.iterations = xmppd_conf->scram_iterations;
	scram_hmac(SCRAM_SHA256, fake_secret, sizeof(fake_secret), s->user,
	    strlen(s->user), mac);
	memcpy(s->keys.salt, mac, 16);
	s->keys.saltlen = 16;
	scram_random_salt(s->keys.stored_key, sizeof(s->keys.stored_key));
	scram_random_salt(s->keys.server_key, sizeof(s->keys.server_key));
}

static void
user_loaded(uint64_t owner, uint64_t tag, enum store_status st,
    const struct store_user *u);

static void
scram_first(struct sasl *s, const char *msg, size_t len)
{
	struct scram_client_first *cf = &s->cf;

	if (scram_parse_client_first(msg, len, cf) < 0) {
		fail(s, "malformed-request");
		return;
	}
	s->have_cf = 1;
	if (mech_plus(s->mech)) {
		/* RFC 5802 §6: PLUS requires a binding type we offer. */
		if (cf->cbflag != 'p' ||
		    !((strcmp(cf->cbname, "tls-exporter") == 0 &&
			  s->cb.exporter_len) ||
			(strcmp(cf->cbname, "tls-server-end-point") == 0 &&
			    s->cb.end_point_len))) {
			fail(s, "not-authorized");
			return;
		}
	} else if (cf->cbflag == 'p' ||
	    (cf->cbflag == 'y' && s->tls &&
		(s->cb.exporter_len || s->cb.end_point_len))) {
		/* 'y' while we advertise -PLUS means a downgrade attack
		 * (RFC 5802 §6); 'p' needs a -PLUS mechanism. */
		fail(s, "not-authorized");
		return;
	}
	if ((s->user = prep_user(cf->username)) == NULL) {
		fail(s, "not-authorized");
		return;
	}
	if (!authzid_ok(cf->authzid, s->user, s->host)) {
		fail(s, "invalid-authzid");
		return;
	}
	s->step = S_WAIT_USER;
	store_user_get(s->user, s->host, user_loaded, s->id, 0);
}

static void
scram_challenge(struct sasl *s)
{
	char snonce[25], *salt64, *b64;

	scram_random_nonce(snonce, 24);
	s->nonce = xasprintf("%s%s", s->cf.nonce, snonce);
	salt64 = base64_encode_alloc(s->keys.salt, s->keys.saltlen);
	s->server_first = xasprintf("r=%s,s=%s,i=%u", s->nonce, salt64,
	    s->keys.iterations);
	free(salt64);
	b64 = base64_encode_alloc(s->server_first, strlen(s->server_first));
	s->step = S_WAIT_FINAL;
	send_reply(s, SASL_CHALLENGE, b64, NULL);
	free(b64);
}

static void
scram_final(struct sasl *s, const char *msg, size_t len)
{
	struct scram_client_final cf;
	unsigned char expect[256], sig[SCRAM_MAX_HASH];
	size_t hlen = strlen(s->cf.gs2_header), elen = hlen;
	char *authmsg, *v, *b64;
	int ok;

	if (hlen > 128 || scram_parse_client_final(msg, len, &cf) < 0) {
		fail(s, "malformed-request");
		return;
	}
	/* The c= attribute must repeat the gs2 header, plus the binding
	 * data for 'p' (RFC 5802 §7, channel-binding). */
	memcpy(expect, s->cf.gs2_header, hlen);
	if (s->cf.cbflag == 'p') {
		const unsigned char *d = strcmp(s->cf.cbname,
		    "tls-exporter") == 0 ? s->cb.exporter : s->cb.end_point;
		size_t dl = strcmp(s->cf.cbname, "tls-exporter") == 0 ?
		    s->cb.exporter_len : s->cb.end_point_len;

		memcpy(expect + hlen, d, dl);
		elen += dl;
	}
	if (cf.cbindlen != elen ||
	    memcmp(cf.cbind, expect, elen) != 0 ||
	    strcmp(cf.nonce, s->nonce) != 0) {
		scram_client_final_free(&cf);
		fail(s, "not-authorized");
		return;
	}
	authmsg = xasprintf("%s,%s,%s", s->cf.bare, s->server_first,
	    cf.without_proof);
	ok = cf.prooflen == scram_hash_len(s->keys.hash) &&
	    scram_verify_proof(&s->keys, authmsg, cf.proof, cf.prooflen);
	scram_client_final_free(&cf);
	if (!ok) {
		free(authmsg);
		fail_credentials(s);
		return;
	}
	scram_server_signature(&s->keys, authmsg, sig);
	free(authmsg);
	b64 = base64_encode_alloc(sig, scram_hash_len(s->keys.hash));
	v = xasprintf("v=%s", b64);
	free(b64);
	b64 = base64_encode_alloc(v, strlen(v));
	free(v);
	send_reply(s, SASL_SUCCESS, b64, NULL);
	free(b64);
}

/* PLAIN (RFC 4616): [authzid] NUL authcid NUL passwd. */
static void
plain(struct sasl *s, const char *msg, size_t len)
{
	const char *authzid = msg, *authcid, *pass, *end = msg + len;
	char *az = NULL;

	authcid = memchr(msg, '\0', len);
	if (authcid == NULL) {
		fail(s, "malformed-request");
		return;
	}
	authcid++;
	pass = memchr(authcid, '\0', (size_t)(end - authcid));
	if (pass == NULL || memchr(pass + 1, '\0',
				(size_t)(end - pass - 1)) != NULL) {
		fail(s, "malformed-request");
		return;
	}
	pass++;
	if (authcid > msg + 1)
		az = xstrndup(authzid, (size_t)(authcid - 1 - msg));
	{
		char *pw = xstrndup(pass, (size_t)(end - pass));
		char *cid = xstrndup(authcid, (size_t)(pass - 1 - authcid));

		s->password = scram_saslprep(pw);
		explicit_bzero(pw, strlen(pw));
		free(pw);
		s->user = prep_user(cid);
		free(cid);
	}
	if (s->user == NULL || s->password == NULL || *s->password == '\0') {
		free(az);
		fail(s, "not-authorized");
		return;
	}
	if (!authzid_ok(az, s->user, s->host)) {
		free(az);
		fail(s, "invalid-authzid");
		return;
	}
	free(az);
	s->step = S_WAIT_PLAIN_USER;
	store_user_get(s->user, s->host, user_loaded, s->id, 0);
}

struct plain_job {
	uint64_t sasl_id;
	struct scram_keys keys;
	char *password;
	int ok;
};

static void
plain_work(void *arg)
{
	struct plain_job *j = arg;
	unsigned char ck[SCRAM_MAX_HASH], sk[SCRAM_MAX_HASH];
	unsigned char stored[SCRAM_MAX_HASH];
	size_t hl = scram_hash_len(j->keys.hash);

	scram_client_key(j->keys.hash, j->password, j->keys.salt,
	    j->keys.saltlen, j->keys.iterations, ck, sk);
	scram_h(j->keys.hash, ck, hl, stored);
	j->ok = scram_ct_equal(stored, j->keys.stored_key, hl);
}

static void
plain_done(void *arg, uint64_t owner, uint64_t tag)
{
	struct plain_job *j = arg;
	struct sasl *s = find_live(j->sasl_id);

	if (s && s->step == S_WAIT_PLAIN_HASH) {
		if (j->ok)
			send_reply(s, SASL_SUCCESS, NULL, NULL);
		else
			fail_credentials(s);
	}
	explicit_bzero(j->password, strlen(j->password));
	free(j->password);
	free(j);
}

static void
user_loaded(uint64_t id, uint64_t tag, enum store_status st,
    const struct store_user *u)
{
	struct sasl *s = find_live(id);

	if (s == NULL)
		return;
	if (st == STORE_ERROR) {
		fail(s, "temporary-auth-failure");
		return;
	}
	if (st == STORE_OK)
		s->keys = mech_hash(s->mech) == SCRAM_SHA1 ? u->sha1 :
		    u->sha256;
	else
		fake_keys(s);
	if (s->step == S_WAIT_USER) {
		scram_challenge(s);
	} else if (s->step == S_WAIT_PLAIN_USER) {
		struct plain_job *j = xcalloc(1, sizeof(*j));

		j->sasl_id = s->id;
		j->keys = st == STORE_OK ? u->sha256 : s->keys;
		j->password = s->password;
		s->password = NULL;
		s->step = S_WAIT_PLAIN_HASH;
		work_submit(plain_work, plain_done, j, s->owner, 0);
	}
}

struct sasl *
sasl_start(const char *mech, const char *data, int tls,
    const struct sasl_cb *cb, const char *host, uint64_t owner)
{
	struct sasl *s = NULL;
	char *msg = NULL;
	long n;
	size_t i;

	for (i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
		if (mech && strcmp(mechs[i].name, mech) == 0)
			break;
	s = xcalloc(1, sizeof(*s));
	s->id = next_id++;
	s->owner = owner;
	s->tls = tls;
	s->cb = *cb;
	s->host = xstrdup(host);
	s->next = live;
	live = s;
	if (i == sizeof(mechs) / sizeof(mechs[0]) ||
	    (mechs[i].plus && !(tls && (cb->exporter_len ||
					   cb->end_point_len)))) {
		fail(s, "invalid-mechanism");
		return s;
	}
	s->mech = mechs[i].mech;
	log_debug("sasl: exchange %llu: %s", (unsigned long long)s->id, mech);
	if (mechs[i].plain && !tls) {
		/* RFC 6120 §6.4.5 / §13.8: no plaintext passwords in the
		 * clear. */
		fail(s, "encryption-required");
		return s;
	}
	if (*data == '\0') {
		/* No initial response: ask for it with an empty
		 * challenge (RFC 6120 §6.4.2). */
		s->step = S_WAIT_FIRST;
		send_reply(s, SASL_CHALLENGE, NULL, NULL);
		return s;
	}
	if ((n = decode(data, &msg)) < 0) {
		fail(s, "incorrect-encoding");
		return s;
	}
	if (s->mech == M_PLAIN)
		plain(s, msg, (size_t)n);
	else
		scram_first(s, msg, (size_t)n);
	explicit_bzero(msg, (size_t)n);
	free(msg);
	return s;
}

void
sasl_response(struct sasl *s, const char *data)
{
	char *msg;
	long n;

	if (s->step != S_WAIT_FIRST && s->step != S_WAIT_FINAL) {
		fail(s, "malformed-request");
		return;
	}
	if ((n = decode(data, &msg)) < 0) {
		fail(s, "incorrect-encoding");
		return;
	}
	if (s->step == S_WAIT_FIRST) {
		if (s->mech == M_PLAIN)
			plain(s, msg, (size_t)n);
		else
			scram_first(s, msg, (size_t)n);
	} else
		scram_final(s, msg, (size_t)n);
	explicit_bzero(msg, (size_t)n);
	free(msg);
}

int
sasl_pending(const struct sasl *s)
{
	return s->step == S_WAIT_USER || s->step == S_WAIT_PLAIN_USER ||
	    s->step == S_WAIT_PLAIN_HASH;
}

int
sasl_done(const struct sasl *s)
{
	return s->step == S_DONE;
}

void
sasl_free(struct sasl *s)
{
	struct sasl **pp;

	if (s == NULL)
		return;
	for (pp = &live; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	if (s->have_cf)
		scram_client_first_free(&s->cf);
	if (s->password) {
		explicit_bzero(s->password, strlen(s->password));
		free(s->password);
	}
	explicit_bzero(&s->keys, sizeof(s->keys));
	free(s->server_first);
	free(s->nonce);
	free(s->user);
	free(s->host);
	free(s);
}
