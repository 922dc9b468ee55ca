/*
 * SASL mechanisms for c2s: SCRAM-SHA-{1,256}[-PLUS] and PLAIN, for both
 * legacy SASL and SASL2, and XEP-0484's HT-SHA-256-{NONE,ENDP,EXPR} for
 * SASL2.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "conf.h"
#include "ht.h"
#include "jid.h"
#include "log.h"
#include "stream/sasl.h"
#include "scram.h"
#include "store/fast.h"
#include "store/store.h"
#include "work.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_SASL_CB "urn:xmpp:sasl-cb:0"
#define MAX_SASL_DATA 8192
#define LOG_NAME_MAX 64         /* bytes of a username shown in logs */
#define NMECHS (sizeof(mechs) / sizeof(mechs[0]))
#define MAX_CB_TYPES 3

enum mech { M_SCRAM_SHA1, M_SCRAM_SHA256, M_SCRAM_SHA1_PLUS,
	M_SCRAM_SHA256_PLUS, M_PLAIN, M_HT_NONE, M_HT_ENDP, M_HT_EXPR };

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

/*
 * XEP-0484 §3.1: the FAST mechanisms, strongest first, offered in SASL2's
 * <fast/> only (never in <mechanisms/>), each with the channel binding it
 * covers: tls-exporter exists on TLS 1.3 only, so -EXPR is offered there.
 */
static const struct {
	const char *name;
	enum mech mech;
	const char *cbtype;     /* NULL: none */
} fast_mechs[] = {
	{ "HT-SHA-256-EXPR", M_HT_EXPR, "tls-exporter" },
	{ "HT-SHA-256-ENDP", M_HT_ENDP, "tls-server-end-point" },
	{ "HT-SHA-256-NONE", M_HT_NONE, NULL },
};
#define NFAST (sizeof(fast_mechs) / sizeof(fast_mechs[0]))

enum step { S_WAIT_FIRST, S_WAIT_USER, S_WAIT_FINAL, S_WAIT_PLAIN_USER,
	S_WAIT_PLAIN_HASH, S_WAIT_TOKEN, S_WAIT_TOKEN_USE, S_DONE };

struct sasl {
	uint64_t id;            /* for completions */
	uint64_t owner;
	enum mech mech;
	const char *mech_name;  /* NULL until the mechanism is known */
	enum step step;
	int tls;
	struct sasl_cb cb;
	char *host;
	char *user;             /* prepared localpart */
	char *log_name;         /* the name tried, for logs (log_name) */
	char *password;         /* PLAIN only, wiped after use */
	struct scram_client_first cf;
	int have_cf;
	char *server_first;
	char *nonce;            /* client + server nonce */
	struct scram_keys keys;
	int disabled;           /* account disabled (send_reply) */
	/* HT-* (XEP-0484): what <authenticate/> said, the client's HMAC,
	 * the channel-binding type of the mechanism, and on success the
	 * token's fate. */
	struct sasl_fast fast;
	char *agent;
	const char *ht_cbtype;
	unsigned char ht_mac[HT_HASH_LEN];
	size_t ht_maclen;
	unsigned char ht_hash[HT_HASH_LEN];     /* the token that matched */
	int fast_rotate;
	char *fast_mechanism;
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

static int
mech_ht(enum mech m)
{
	return m == M_HT_NONE || m == M_HT_ENDP || m == M_HT_EXPR;
}

static enum scram_hash
mech_hash(enum mech m)
{
	return m == M_SCRAM_SHA1 || m == M_SCRAM_SHA1_PLUS ? SCRAM_SHA1 :
	    SCRAM_SHA256;
}

/*
 * The channel-binding types this connection offers (none without TLS),
 * with their data when the caller computed it: up to MAX_CB_TYPES names
 * into types (and data into data, len into lens, when not NULL).
 */
static size_t
cb_types(int tls, const struct sasl_cb *cb, const char **types,
    const unsigned char **data, size_t *lens)
{
	const struct {
		const char *name;
		const unsigned char *data;
		size_t len;
	} all[MAX_CB_TYPES] = {
		{ "tls-exporter", cb->exporter, cb->exporter_len },
		{ "tls-unique", cb->unique, cb->unique_len },
		{ "tls-server-end-point", cb->end_point, cb->end_point_len },
	};
	size_t n = 0;

	for (size_t i = 0; tls && i < MAX_CB_TYPES; i++) {
		if (all[i].len == 0)
			continue;
		types[n] = all[i].name;
		if (data != NULL) {
			data[n] = all[i].data;
			lens[n] = all[i].len;
		}
		n++;
	}
	return n;
}

/* The data of channel-binding type name on this connection, NULL when
 * the connection does not offer that type. */
static const unsigned char *
cb_data(const struct sasl *s, const char *name, size_t *len)
{
	const char *types[MAX_CB_TYPES];
	const unsigned char *data[MAX_CB_TYPES];
	size_t lens[MAX_CB_TYPES], n = cb_types(s->tls, &s->cb, types, data,
	    lens);

	for (size_t i = 0; name != NULL && i < n; i++)
		if (strcmp(types[i], name) == 0) {
			*len = lens[i];
			return data[i];
		}
	return NULL;
}

/* The mechanism names this connection offers, in the order of mechs[];
 * returns their number (at most NMECHS). */
static size_t
offered_mechs(int tls, const struct sasl_cb *cb, const char **names)
{
	const char *types[MAX_CB_TYPES];
	int have_cb = cb_types(tls, cb, types, NULL, NULL) > 0;
	size_t n = 0;

	for (size_t i = 0; i < NMECHS; i++) {
		if (mechs[i].plus && !have_cb)
			continue;
		if (mechs[i].plain && !tls)
			continue;     /* PLAIN only over TLS */
		names[n++] = mechs[i].name;
	}
	return n;
}

void
sasl_advertise(struct xel *features, int tls, const struct sasl_cb *cb)
{
	struct xel *m = xel_add(features, "mechanisms", NS_SASL);
	const char *names[NMECHS], *types[MAX_CB_TYPES];
	size_t n = offered_mechs(tls, cb, names);
	size_t ntypes = cb_types(tls, cb, types, NULL, NULL);

	for (size_t i = 0; i < n; i++)
		xel_text_set(xel_add(m, "mechanism", NS_SASL), names[i]);
	if (ntypes > 0) {
		/* XEP-0440: the channel-binding types we support here. */
		struct xel *c = xel_add(features, "sasl-channel-binding",
		    NS_SASL_CB);

		for (size_t i = 0; i < ntypes; i++)
			xel_set_attr(xel_add(c, "channel-binding", NULL),
			    "type", types[i]);
	}
}

void
sasl2_advertise(struct xel *auth, int tls, const struct sasl_cb *cb)
{
	const char *names[NMECHS];
	size_t n = offered_mechs(tls, cb, names);

	for (size_t i = 0; i < n; i++)
		xel_text_set(xel_add(auth, "mechanism", NULL), names[i]);
}

/* The FAST mechanisms this connection offers (XEP-0484 §6: over TLS
 * only; a channel-binding one when its type is available). */
static size_t
offered_fast(int tls, const struct sasl_cb *cb, const char **names)
{
	const char *types[MAX_CB_TYPES];
	size_t ntypes = cb_types(tls, cb, types, NULL, NULL), n = 0;

	for (size_t i = 0; tls && i < NFAST; i++) {
		int have = fast_mechs[i].cbtype == NULL;

		for (size_t k = 0; !have && k < ntypes; k++)
			have = strcmp(types[k], fast_mechs[i].cbtype) == 0;
		if (have)
			names[n++] = fast_mechs[i].name;
	}
	return n;
}

size_t
sasl_fast_advertise(struct xel *fast, int tls, const struct sasl_cb *cb)
{
	const char *names[NFAST];
	size_t n = offered_fast(tls, cb, names);

	for (size_t i = 0; i < n; i++)
		xel_text_set(xel_add(fast, "mechanism", NULL), names[i]);
	return n;
}

int
sasl_fast_offered(const char *mech, int tls, const struct sasl_cb *cb)
{
	const char *names[NFAST];
	size_t n = offered_fast(tls, cb, names);

	for (size_t i = 0; mech != NULL && i < n; i++)
		if (strcmp(names[i], mech) == 0)
			return 1;
	return 0;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Append names, sorted (i;octet, RFC 4790 §9.3) and joined by sep, to
 * out, which holds *len bytes and has room for size (never filled here:
 * the lists are short and fixed). */
static void
join_sorted(const char **names, size_t n, char sep, char *out,
    size_t size, size_t *len)
{
	qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(names[i]);

		if (*len + l + 2 > size)
			break;
		if (i > 0)
			out[(*len)++] = sep;
		memcpy(out + *len, names[i], l);
		*len += l;
	}
}

/*
 * XEP-0474 §6.1 (SASL SCRAM Downgrade Protection): the hash, with the
 * exchange's own hash function, of the mechanism names this connection
 * advertised, sorted and joined by 0x1E, followed, as XEP-0440 types were
 * advertised too, by 0x1F and the types sorted and joined the same way;
 * base64, for the attribute h= of the server-first-message.  That message
 * is part of the AuthMessage, so the client's proof and our signature
 * cover it: a client that checks the hash sees mechanisms or binding
 * types stripped by someone in the middle, even one holding a
 * certificate the client trusts.  Malloc'ed.
 */
static char *
downgrade_hash(enum scram_hash h, int tls, const struct sasl_cb *cb)
{
	const char *names[NMECHS], *types[MAX_CB_TYPES];
	size_t n = offered_mechs(tls, cb, names);
	size_t ntypes = cb_types(tls, cb, types, NULL, NULL), len = 0;
	unsigned char digest[SCRAM_MAX_HASH];
	char list[256];

	join_sorted(names, n, '\x1e', list, sizeof(list), &len);
	if (ntypes > 0) {
		list[len++] = '\x1f';
		join_sorted(types, ntypes, '\x1e', list, sizeof(list), &len);
	}
	scram_h(h, list, len, digest);
	return base64_encode_alloc(digest, scram_hash_len(h));
}

/* Send r, with what every reply carries, to the stream; a success or
 * failure ends the exchange. */
static void
deliver(struct sasl *s, struct sasl_reply *r)
{
	r->mechanism = s->mech_name;
	if (r->kind == SASL_SUCCESS && mech_ht(s->mech)) {
		r->fast = 1;
		r->fast_rotate = s->fast_rotate;
		r->fast_mechanism = s->fast_mechanism;
	}
	if (r->kind == SASL_FAILURE)
		r->name = s->log_name;
	if (r->kind != SASL_CHALLENGE)
		s->step = S_DONE;
	reply_fn(s->owner, r);
}

static void
send_reply(struct sasl *s, enum sasl_reply_kind kind, const char *data,
    const char *cond)
{
	struct sasl_reply r = { .kind = kind, .data = data,
		.condition = cond,
		.user = kind == SASL_SUCCESS ? s->user : NULL };

	/* A disabled account (RFC 6120 §6.5.1) is told so only once its
	 * password or proof was right: a wrong one fails <not-authorized/>
	 * as for any account, so the answer tells nothing to a guesser. */
	if (kind == SASL_SUCCESS && s->disabled) {
		r.kind = SASL_FAILURE;
		r.data = NULL;
		r.condition = "account-disabled";
		r.user = NULL;
	}
	deliver(s, &r);
}

static void
fail(struct sasl *s, const char *cond)
{
	send_reply(s, SASL_FAILURE, NULL, cond);
}

/* A failure with a reason for the client (a string constant). */
static void
fail_text(struct sasl *s, const char *cond, const char *text)
{
	struct sasl_reply r = { .kind = SASL_FAILURE, .condition = cond,
		.text = text, .why = text };

	deliver(s, &r);
}

enum refusal { REFUSE_PROTOCOL, REFUSE_SUSPICIOUS, REFUSE_CB_UNMATCHED };

/* A channel-binding failure, <not-authorized/> but no wrong password,
 * with a detail for the log (a string constant). */
static void
refuse(struct sasl *s, enum refusal kind, const char *why)
{
	struct sasl_reply r = { .kind = SASL_FAILURE,
		.condition = "not-authorized", .why = why,
		.suspicious = kind == REFUSE_SUSPICIOUS,
		.cb_unmatched = kind == REFUSE_CB_UNMATCHED };

	deliver(s, &r);
}

/* A wrong password or proof, or a name that cannot be an account: the
 * failure per-IP throttling counts. */
static void
fail_credentials(struct sasl *s)
{
	struct sasl_reply r = { .kind = SASL_FAILURE,
		.condition = "not-authorized", .bad_credentials = 1 };

	deliver(s, &r);
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
 * (RFC 6120 §6.4.2).  Returns the length, -1 for bad base64 or -2 for
 * more than MAX_SASL_DATA characters. */
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
		return -2;
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

/*
 * How logs show a username (c2s.c: "authentication failed for NAME@host
 * ..."): a prepared localpart as it is, since Nodeprep leaves no space,
 * control or formatting character and no '@' (RFC 7622 §3.3, RFC 3454
 * C.1-C.9); a name that did not prepare byte by byte, with everything but
 * printable ASCII other than '\' and '@' written \xHH.  Control and space
 * bytes are escaped in both, to depend on no library for it.  At most
 * LOG_NAME_MAX bytes of the name are shown (a prepared one cut at a
 * character boundary), then "...".  So whatever a client sends, the name
 * is one bounded word that cannot end the line or forge another field
 * (contrib/fail2ban relies on this).  Malloc'ed.
 */
static char *
log_name(const char *name, int prepared)
{
	static const char hex[] = "0123456789abcdef";
	char *out = xmalloc(LOG_NAME_MAX * 4 + 4), *o = out;
	size_t i;

	for (i = 0; i < LOG_NAME_MAX && name[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)name[i];

		if ((ch > ' ' && ch < 0x7f && ch != '\\' && ch != '@') ||
		    (ch >= 0x80 && prepared)) {
			*o++ = (char)ch;
		} else {
			*o++ = '\\';
			*o++ = 'x';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 0xf];
		}
	}
	if (name[i] != '\0') {
		/* Bytes from 0x80 were copied one for one: drop a cut
		 * character's bytes, continuation bytes and lead byte. */
		while (prepared && i > 0 &&
		    ((unsigned char)name[i] & 0xc0) == 0x80) {
			i--;
			o--;
		}
		memcpy(o, "...", 3);
		o += 3;
	}
	*o = '\0';
	return out;
}

/* Prepare the client's username (s->user, NULL if it cannot name an
 * account) and keep how logs show it (s->log_name). */
static void
take_username(struct sasl *s, const char *raw)
{
	free(s->user);
	free(s->log_name);
	s->user = prep_user(raw);
	s->log_name = log_name(s->user ? s->user : raw, s->user != NULL);
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

/*
 * The gs2 channel-binding flag of a client-first-message (RFC 5802 §6,
 * §7).  A -PLUS mechanism needs "p=" naming a type this connection
 * offers; "p" without -PLUS is an error.  "y" says "I can bind, but you
 * did not offer it", and RFC 5802 §6 has a server that offers -PLUS fail
 * it: an attacker in the middle who stripped the -PLUS names from the
 * features is then the likely reason.
 *
 * That rule predates servers that offer several binding types
 * (XEP-0440): a client may see -PLUS and share no type with us, and real
 * clients then send "y" (XEP-0440 §4 describes the case).  slixmpp 1.8,
 * Debian 12's, under poezio, knows only tls-unique, which TLS 1.3 does
 * not define (RFC 8446 §C.5, RFC 9266 §1): over TLS 1.3 it tries
 * SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS with p=tls-unique, then
 * SCRAM-SHA-256 with "y", and when that is refused it logs in with PLAIN,
 * so the strict rule hands the password itself to the attacker it is
 * meant to catch.  So "y" is refused only where the server can tell a
 * downgrade: while this stream has not asked for a -PLUS mechanism with
 * a type we do not offer (sasl_cb.cb_unmatched).  A client that asked
 * for -PLUS saw it: it did not lose it to a stripped list, and its "y"
 * means "no common type".  (Over TLS 1.2 slixmpp binds with tls-unique
 * and never gets here.)
 *
 * That evidence is not authenticated: an attacker able to strip the list
 * can also inject a failing -PLUS attempt first.  Against that the
 * protection is XEP-0474's hash (downgrade_hash) of what we advertised,
 * inside the exchange the proof authenticates: a client that checks it
 * (XEP-0474 §6.2; §7 has it send "n" rather than "y" then) detects any
 * stripping itself.  A client that checks nothing is still better off
 * with SCRAM than with PLAIN, which shows the attacker the password.
 */
static int
cbflag_ok(struct sasl *s, const struct scram_client_first *cf)
{
	const char *types[MAX_CB_TYPES];
	size_t len;

	if (mech_plus(s->mech)) {
		if (cf->cbflag != 'p') {
			refuse(s, REFUSE_PROTOCOL,
			    "-PLUS without channel binding (gs2 flag 'p')");
			return 0;
		}
		if (cb_data(s, cf->cbname, &len) == NULL) {
			refuse(s, REFUSE_CB_UNMATCHED, "channel-binding type "
			    "not offered on this connection");
			return 0;
		}
	} else if (cf->cbflag == 'p') {
		refuse(s, REFUSE_PROTOCOL,
		    "channel binding without a -PLUS mechanism");
		return 0;
	} else if (cf->cbflag == 'y' && !s->cb.cb_unmatched &&
	    cb_types(s->tls, &s->cb, types, NULL, NULL) > 0) {
		refuse(s, REFUSE_SUSPICIOUS, "gs2 flag 'y' although -PLUS was "
		    "offered: a possible downgrade (RFC 5802 §6)");
		return 0;
	}
	return 1;
}

static void
scram_first(struct sasl *s, const char *msg, size_t len)
{
	struct scram_client_first *cf = &s->cf;

	if (scram_parse_client_first(msg, len, cf) < 0) {
		fail(s, "malformed-request");
		return;
	}
	s->have_cf = 1;
	take_username(s, cf->username);
	if (!cbflag_ok(s, cf))
		return;
	if (s->user == NULL) {
		fail_credentials(s);
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
	char snonce[25], *salt64, *hash64, *b64;

	scram_random_nonce(snonce, 24);
	s->nonce = xasprintf("%s%s", s->cf.nonce, snonce);
	salt64 = base64_encode_alloc(s->keys.salt, s->keys.saltlen);
	hash64 = downgrade_hash(s->keys.hash, s->tls, &s->cb);
	s->server_first = xasprintf("r=%s,s=%s,i=%u,h=%s", s->nonce, salt64,
	    s->keys.iterations, hash64);
	free(salt64);
	free(hash64);
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
		size_t dl = 0;
		const unsigned char *d = cb_data(s, s->cf.cbname, &dl);

		if (d != NULL) {        /* it is: cbflag_ok */
			memcpy(expect + hlen, d, dl);
			elen += dl;
		}
	}
	if (strcmp(cf.nonce, s->nonce) != 0) {
		scram_client_final_free(&cf);
		fail(s, "not-authorized");
		return;
	}
	if (cf.cbindlen != elen || memcmp(cf.cbind, expect, elen) != 0) {
		/* With 'p' the client's view of the TLS channel differs
		 * from ours: someone in the middle (RFC 5802 §6). */
		scram_client_final_free(&cf);
		refuse(s, REFUSE_SUSPICIOUS, s->cf.cbflag == 'p' ?
		    "channel-binding data does not match this connection: "
		    "a man in the middle?" : "c= does not repeat the gs2 "
		    "header");
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
		take_username(s, cid);
		free(cid);
	}
	if (s->user == NULL || s->password == NULL || *s->password == '\0') {
		free(az);
		fail_credentials(s);
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
	s->disabled = st == STORE_OK && u->disabled != 0;
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

/*
 * XEP-0484 with the HT mechanisms (draft-schmaus-kitten-sasl-ht §3): the
 * client's one message is authcid NUL HMAC(token, "Initiator" || cb
 * data); the token is looked up by account and user-agent id.
 */
static void
token_loaded(uint64_t id, enum store_status st, int disabled,
    const struct store_fast_token *t, size_t n);

static void
ht_first(struct sasl *s, const char *msg, size_t len)
{
	const char *nul = memchr(msg, '\0', len);
	char *name;

	if (nul == NULL || nul == msg) {
		fail(s, "malformed-request");
		return;
	}
	name = xstrndup(msg, (size_t)(nul - msg));
	take_username(s, name);
	free(name);
	s->ht_maclen = len - (size_t)(nul + 1 - msg);
	if (s->user == NULL || s->ht_maclen != HT_HASH_LEN) {
		fail_credentials(s);
		return;
	}
	memcpy(s->ht_mac, nul + 1, HT_HASH_LEN);
	s->step = S_WAIT_TOKEN;
	store_fast_get(s->host, s->user, s->agent, token_loaded, s->id);
}

/* How strong a FAST mechanism is: 1 with channel binding, 0 without,
 * -1 for no FAST mechanism.  A token is used only with the mechanism it
 * was issued for (XEP-0484 §3.4); one bound to the channel tried with a
 * weaker mechanism is told so (mechanism-too-weak). */
static int
mech_rank(const char *name)
{
	for (size_t i = 0; i < NFAST; i++)
		if (strcmp(fast_mechs[i].name, name) == 0)
			return fast_mechs[i].cbtype != NULL ? 1 : 0;
	return -1;
}

/* A replayed count (§3.4): no wrong password, but a sign of an attack. */
static void
fail_replay(struct sasl *s)
{
	struct sasl_reply r = { .kind = SASL_FAILURE,
		.condition = "not-authorized", .suspicious = 1,
		.text = "Replayed FAST count",
		.why = "a FAST count not above the last one: a replay?" };

	deliver(s, &r);
}

/* The token was marked used on the storage thread (store_fast_used). */
static void
token_used(uint64_t id, enum store_status st)
{
	struct sasl *s = find_live(id);
	const unsigned char *cb = NULL;
	unsigned char resp[HT_HASH_LEN];
	size_t cblen = 0;
	char *b64;

	if (s == NULL || s->step != S_WAIT_TOKEN_USE)
		return;
	if (st == STORE_EXISTS) {
		fail_replay(s);
		return;
	}
	if (st == STORE_NOT_FOUND) {
		fail_credentials(s);    /* revoked or replaced meanwhile */
		return;
	}
	if (st != STORE_OK) {
		fail(s, "temporary-auth-failure");
		return;
	}
	if (s->ht_cbtype != NULL)
		cb = cb_data(s, s->ht_cbtype, &cblen);
	ht_mac(s->ht_hash, "Responder", cb, cblen, resp);
	b64 = base64_encode_alloc(resp, sizeof(resp));
	send_reply(s, SASL_SUCCESS, b64, NULL);
	free(b64);
}

static void
token_loaded(uint64_t id, enum store_status st, int disabled,
    const struct store_fast_token *t, size_t n)
{
	struct sasl *s = find_live(id);
	const struct store_fast_token *hit = NULL;
	const unsigned char *cb = NULL;
	size_t cblen = 0;
	int64_t now = (int64_t)time(NULL);

	if (s == NULL || s->step != S_WAIT_TOKEN)
		return;
	if (st == STORE_ERROR) {
		fail(s, "temporary-auth-failure");
		return;
	}
	if (s->ht_cbtype != NULL &&
	    (cb = cb_data(s, s->ht_cbtype, &cblen)) == NULL) {
		fail(s, "invalid-mechanism");
		return;
	}
	/* XEP-0484 §5.1: the "new" slot first (the rows come slot 1,
	 * then 0); every stored hash is unsealed (ht.h) and tried, in
	 * constant time each. */
	for (size_t i = 0; i < n; i++) {
		unsigned char h[HT_HASH_LEN];

		memcpy(h, t[i].hash, HT_HASH_LEN);
		ht_seal(h, store_fast_key(), s->user, s->host, s->agent);
		if (ht_verify(h, cb, cblen, s->ht_mac, s->ht_maclen) &&
		    hit == NULL) {
			hit = &t[i];
			memcpy(s->ht_hash, h, HT_HASH_LEN);
		}
		explicit_bzero(h, sizeof(h));
	}
	if (hit == NULL) {
		fail_credentials(s);
		return;
	}
	if (strcmp(hit->mechanism, s->mech_name) != 0) {
		/* §3.4: a token is bound to the mechanism it was issued
		 * for. */
		if (mech_rank(hit->mechanism) > mech_rank(s->mech_name))
			fail_text(s, "mechanism-too-weak", "This token was "
			    "issued for a mechanism with channel binding");
		else
			fail_text(s, "not-authorized",
			    "This token was issued for another mechanism");
		return;
	}
	if (hit->expiry <= now) {
		/* §4.2: a token no longer trusted: credentials-expired
		 * (RFC 6120 §6.5.2), the client falls back to its
		 * password. */
		fail_text(s, "credentials-expired", "The token has expired");
		return;
	}
	if (s->fast.has_count && (int64_t)s->fast.count <= hit->counter) {
		/* §3.4: a count not above one already processed for this
		 * token is a replay (checked again, atomically, by
		 * store_fast_used). */
		fail_replay(s);
		return;
	}
	if (disabled) {
		s->disabled = 1;
		send_reply(s, SASL_SUCCESS, NULL, NULL);  /* account-disabled */
		return;
	}
	/* §3.5: past half its lifetime a token is replaced unasked (not
	 * when the client is invalidating it, §3.6). */
	s->fast_rotate = !s->fast.invalidate && hit->expiry - now <=
	    (int64_t)xmppd_conf->limits.fast_token_lifetime / 2;
	s->fast_mechanism = xstrdup(hit->mechanism);
	s->step = S_WAIT_TOKEN_USE;
	store_fast_used(s->host, s->user, s->agent, hit->hash,
	    s->fast.has_count, (int64_t)s->fast.count, s->fast.invalidate,
	    now, token_used, s->id);
}

static struct sasl *
start(const char *mech, const char *data, int tls, const struct sasl_cb *cb,
    const char *host, uint64_t owner, const struct sasl_fast *fast)
{
	struct sasl *s = NULL;
	const char *types[MAX_CB_TYPES];
	char *msg = NULL;
	long n;
	size_t i, f = NFAST;

	for (i = 0; i < NMECHS; i++)
		if (mech && strcmp(mechs[i].name, mech) == 0)
			break;
	for (f = 0; fast != NULL && i == NMECHS && f < NFAST; f++)
		if (mech && strcmp(fast_mechs[f].name, mech) == 0)
			break;
	s = xcalloc(1, sizeof(*s));
	s->id = next_id++;
	s->owner = owner;
	s->tls = tls;
	s->cb = *cb;
	s->host = xstrdup(host);
	if (fast != NULL) {
		s->fast = *fast;
		s->agent = fast->agent ? xstrdup(fast->agent) : NULL;
		s->fast.agent = s->agent;
	}
	s->next = live;
	live = s;
	if (i == NMECHS && f < NFAST) {
		s->mech = fast_mechs[f].mech;
		s->mech_name = fast_mechs[f].name;
		s->ht_cbtype = fast_mechs[f].cbtype;
		log_debug("sasl: exchange %llu: %s", (unsigned long long)s->id,
		    mech);
		if (!tls) {
			/* XEP-0484 §6: FAST over a secure connection only. */
			fail(s, "encryption-required");
			return s;
		}
		if (!sasl_fast_offered(mech, tls, cb)) {
			fail(s, "invalid-mechanism");
			return s;
		}
		if (s->agent == NULL) {
			/* §4.1: a client using FAST names itself. */
			fail_text(s, "malformed-request",
			    "FAST needs a <user-agent id/>");
			return s;
		}
	} else if (i == NMECHS || (mechs[i].plus &&
		cb_types(tls, cb, types, NULL, NULL) == 0)) {
		fail(s, "invalid-mechanism");
		return s;
	} else {
		s->mech = mechs[i].mech;
		s->mech_name = mechs[i].name;
		log_debug("sasl: exchange %llu: %s",
		    (unsigned long long)s->id, mech);
	}
	if (i < NMECHS && mechs[i].plain && !tls) {
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
		/* Too long for any mechanism here: the request, not its
		 * encoding, is wrong (RFC 6120 §6.5.5). */
		fail(s, n == -2 ? "malformed-request" : "incorrect-encoding");
		return s;
	}
	if (s->mech == M_PLAIN)
		plain(s, msg, (size_t)n);
	else if (mech_ht(s->mech))
		ht_first(s, msg, (size_t)n);
	else
		scram_first(s, msg, (size_t)n);
	explicit_bzero(msg, (size_t)n);
	free(msg);
	return s;
}

struct sasl *
sasl_start(const char *mech, const char *data, int tls,
    const struct sasl_cb *cb, const char *host, uint64_t owner)
{
	return start(mech, data, tls, cb, host, owner, NULL);
}

struct sasl *
sasl2_start(const char *mech, const char *data, int tls,
    const struct sasl_cb *cb, const char *host, uint64_t owner,
    const struct sasl_fast *fast)
{
	static const struct sasl_fast none;

	return start(mech, data, tls, cb, host, owner, fast ? fast : &none);
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
		/* Too long for any mechanism here: the request, not its
		 * encoding, is wrong (RFC 6120 §6.5.5). */
		fail(s, n == -2 ? "malformed-request" : "incorrect-encoding");
		return;
	}
	if (s->step == S_WAIT_FIRST) {
		if (s->mech == M_PLAIN)
			plain(s, msg, (size_t)n);
		else if (mech_ht(s->mech))
			ht_first(s, msg, (size_t)n);
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
	    s->step == S_WAIT_PLAIN_HASH || s->step == S_WAIT_TOKEN ||
	    s->step == S_WAIT_TOKEN_USE;
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
	free(s->log_name);
	free(s->host);
	free(s->agent);
	free(s->fast_mechanism);
	explicit_bzero(s->ht_mac, sizeof(s->ht_mac));
	explicit_bzero(s->ht_hash, sizeof(s->ht_hash));
	free(s);
}
