/*
 * vcard-temp (XEP-0054): a user stores their own vCard and anyone may read
 * it at the owner's bare JID; and vCard-based avatars (XEP-0153): the
 * SHA-1 of the vCard's PHOTO is added to every available presence a local
 * user sends, from a cache kept while the user has a session.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "buf.h"
#include "conf.h"
#include "core/disco.h"
#include "core/hooks.h"
#include "core/iq.h"
#include "jid.h"
#include "log.h"
#include "core/presence.h"
#include "scram.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/stanza.h"
#include "store/store_engine.h"
#include "strmap.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_VCARD "vcard-temp"
#define NS_VCARD_UPDATE "vcard-temp:x:update"

#define SHA1_LEN 20

void mod_vcard_init(void);
void mod_vcard_deinit(void);

/*
 * The avatar hash of each user with a bound session, by bare JID.  hash is
 * NULL until the load job completes, "" when the user has no photo, else
 * 40 lowercase hex digits.  Sessions bound meanwhile are held (c2s_hold)
 * so that their first presence already carries the hash; they are
 * released when the load completes, even if it failed (then the server
 * adds nothing and whatever update element the client sent stands,
 * XEP-0153 §4.1).  gen
 * tells a load completion whether it is still the one this entry waits
 * for.
 */
struct avatar {
	uint64_t gen;
	char *hash;
	int loading;       /* the load job has not completed */
	uint64_t *waiting; /* ids of held sessions */
	size_t nwaiting;
};

static struct strmap *avatars;       /* NULL while the module is off */
static uint64_t avatar_gen;

/* One storage request; the kind is in job.ops. */
struct vcard_job {
	struct store_job job; /* first: the store hands this back */
	char *user, *host;    /* whose vCard */
	char *bare;           /* user@host, the avatar cache key */
	struct xel *reply;    /* get/set: the IQ to answer (own arena) */
	int own;              /* get: the requester's own vCard */
	char *vcard;          /* set: input; get: output */
	size_t len;
	char *hash; /* set: input, NULL if no photo;
	               load: output, "" if no photo */
	int found;  /* get: a row was found */
};

static struct vcard_job *
job_new(const struct store_job_ops *ops, const char *user, const char *host,
    uint64_t owner)
{
	struct vcard_job *j = xcalloc(1, sizeof(*j));

	j->job.ops = ops;
	j->job.owner = owner;
	j->user = xstrdup(user);
	j->host = xstrdup(host);
	j->bare = xasprintf("%s@%s", user, host);
	return j;
}

static void
job_free(struct store_job *sj)
{
	struct vcard_job *j = (struct vcard_job *)sj;

	free(j->user);
	free(j->host);
	free(j->bare);
	if (j->reply)
		arena_free(j->reply->arena);
	free(j->vcard);
	free(j->hash);
	free(j);
}

static void
reply_error(
    struct session *s, const struct xel *iq, const char *cond, const char *text)
{
	session_reply(s, stanza_error(iq, NULL, cond, text));
}

/* Storage thread: bind host as ?1 and user as ?2. */
static int
bind_user(sqlite3_stmt *s, const struct vcard_job *j)
{
	if (sqlite3_bind_text(s, 1, j->host, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, j->user, -1, SQLITE_STATIC) != SQLITE_OK)
		return -1;
	return 0;
}

/*
 * XEP-0153 avatars.
 */

/* The hash a presence advertises, or NULL if it has no photo element. */
static const char *
advertised_hash(const struct xel *pres)
{
	struct xel *x = xel_child(pres, "x", NS_VCARD_UPDATE);
	struct xel *photo = xel_child(x, "photo", NS_VCARD_UPDATE);

	return photo != NULL ? xel_text(photo) : NULL;
}

/*
 * Broadcast the presence of every available session of user@host again
 * whose last broadcast does not carry the cached hash (after a vCard set
 * changed it, or when the load finished after the initial presence).
 * Ids are collected first: a broadcast may close sessions.
 */
static void
avatar_refresh(const char *user, const char *host, const char *hash)
{
	uint64_t *ids = NULL;
	size_t n = 0, cap = 0;
	struct session *s;
	const char *adv;

	for (s = sm_find_bare(user, host); s != NULL; s = s->next) {
		if (s->closing || !s->available || s->presence == NULL)
			continue;
		adv = advertised_hash(s->presence);
		if (adv != NULL && strcmp(adv, hash) == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 4;
			ids = xreallocarray(ids, cap, sizeof(*ids));
		}
		ids[n++] = s->id;
	}
	for (size_t i = 0; i < n; i++)
		if ((s = sm_find_id(ids[i])) != NULL && !s->closing &&
		    s->available)
			presence_rebroadcast(s);
	free(ids);
}

/* Set the cached hash of an online user (NULL or "" for no photo); when
 * it changes (or was unknown), refresh their presence. */
static void
avatar_set(
    const char *bare, const char *user, const char *host, const char *hash)
{
	struct avatar *a = avatars ? strmap_get(avatars, bare) : NULL;

	if (hash == NULL)
		hash = "";
	if (a == NULL)
		return;
	if (a->hash != NULL && strcmp(a->hash, hash) == 0)
		return;
	free(a->hash);
	a->hash = xstrdup(hash);
	avatar_refresh(user, host, a->hash);
}

/* The waiting sessions have ended (last session gone, or the account
 * was deleted and its sessions closed): nothing to release. */
static void
avatar_drop(const char *bare)
{
	struct avatar *a = strmap_del(avatars, bare);

	if (a != NULL) {
		free(a->waiting);
		free(a->hash);
		free(a);
	}
}

static void
avatar_release(struct avatar *a)
{
	struct session *s;

	for (size_t i = 0; i < a->nwaiting; i++)
		if ((s = sm_find_id(a->waiting[i])) != NULL)
			session_release(s);
	free(a->waiting);
	a->waiting = NULL;
	a->nwaiting = 0;
}

static const char sql_load[] =
    "SELECT photo_hash FROM vcard WHERE user_id = " USER_ID_SQL("?1", "?2");

static enum store_status
run_load(struct store_job *sj)
{
	struct vcard_job *j = (struct vcard_job *)sj;
	enum store_status st = STORE_OK;
	sqlite3_stmt *s;
	const unsigned char *h;
	int rc;

	if ((s = store_sql(sql_load)) == NULL)
		return STORE_ERROR;
	if (bind_user(s, j) == -1) {
		store_sql_warn("vcard load");
		store_sql_done(s);
		return STORE_ERROR;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		h = sqlite3_column_text(s, 0);
		j->hash = xstrdup(h != NULL ? (const char *)h : "");
	} else if (rc == SQLITE_DONE) {
		j->hash = xstrdup(""); /* no vCard: no photo */
	} else {
		store_sql_warn("vcard load");
		st = STORE_ERROR;
	}
	store_sql_done(s);
	return st;
}

static void
complete_load(struct store_job *sj)
{
	struct vcard_job *j = (struct vcard_job *)sj;
	struct avatar *a = avatars ? strmap_get(avatars, j->bare) : NULL;

	/* Dropped (last session ended, or the module switched off) or
	 * replaced by a newer load. */
	if (a == NULL || a->gen != j->job.tag)
		return;
	a->loading = 0;
	/* A vCard set that completed first knows better. */
	if (a->hash == NULL) {
		if (j->job.status == STORE_OK)
			avatar_set(j->bare, j->user, j->host, j->hash);
		else /* unknown stays unknown: presence undecorated */
			log_warnx("vcard: cannot load the avatar hash of %s",
			    j->bare);
	}
	avatar_release(a);
}

static const struct store_job_ops load_ops = {
    "vcard load", 0, run_load, complete_load, job_free};

/* HOOK_SESSION_BOUND: load the hash of a user not cached yet; hold the
 * session until it is known. */
static void
avatar_session_bound(struct session *s)
{
	struct avatar *a = strmap_get(avatars, s->bare);
	struct vcard_job *j;

	if (a == NULL) {
		a = xcalloc(1, sizeof(*a));
		a->gen = ++avatar_gen;
		a->loading = 1;
		strmap_put(avatars, s->bare, a);
		j = job_new(&load_ops, s->jid.node, s->jid.domain, 0);
		j->job.tag = a->gen;
		store_job_submit(&j->job);
	} else if (!a->loading)
		return;
	a->waiting =
	    xreallocarray(a->waiting, a->nwaiting + 1, sizeof(*a->waiting));
	a->waiting[a->nwaiting++] = s->id;
	session_hold(s);
}

/* HOOK_SESSION_END: forget the hash with the user's last session. */
static void
avatar_session_end(struct session *s)
{
	for (struct session *t = sm_find_bare(s->jid.node, s->jid.domain);
	     t != NULL; t = t->next)
		if (t != s && !t->closing)
			return;
	avatar_drop(s->bare);
}

static void
avatar_user_deleted(const char *user, const char *host)
{
	char *bare = xasprintf("%s@%s", user, host);

	avatar_drop(bare);
	free(bare);
}

/*
 * hook_presence_out: XEP-0153 §4.1 in the server's name.  The user's
 * available presence carries <x xmlns='vcard-temp:x:update'> with the
 * photo hash (an empty <photo/> for no photo, rule 3), replacing whatever
 * update element the client put there; while the hash is not known the
 * presence is left as the client sent it.
 */
static void
avatar_presence_out(struct session *s, struct xel *pres)
{
	struct avatar *a = strmap_get(avatars, s->bare);
	struct xel *c, *next, *photo;

	if (a == NULL || a->hash == NULL || xel_attr(pres, "type") != NULL)
		return;
	for (c = pres->children; c != NULL; c = next) {
		next = c->next;
		if (xel_is(c, "x", NS_VCARD_UPDATE))
			xel_remove(c);
	}
	photo = xel_add(xel_add(pres, "x", NS_VCARD_UPDATE), "photo", NULL);
	if (*a->hash != '\0')
		xel_text_set(photo, a->hash);
}

static int
is_xml_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * The avatar hash of a vCard (XEP-0153 §3.1): SHA-1 of the image data,
 * that is of PHOTO/BINVAL base64-decoded with whitespace ignored
 * (§4.6 rule 5), in lowercase hex.  Returns 0 with *hash NULL when there
 * is no image (no PHOTO, no BINVAL or an empty one, §4.4 step 3), 0 with a
 * malloc'ed *hash, or -1 when BINVAL is not base64.  Missing padding is
 * tolerated.
 */
static int
photo_hash(const struct xel *vcard, char **hash)
{
	static const char hex[] = "0123456789abcdef";
	struct xel *photo = xel_child(vcard, "PHOTO", NS_VCARD);
	struct xel *bin = xel_child(photo, "BINVAL", NS_VCARD);
	unsigned char md[SHA1_LEN], *img;
	size_t n = 0, cap = 0;
	char *b64;
	long len;

	*hash = NULL;
	if (bin == NULL)
		return 0;
	for (const struct xel *t = bin->children; t != NULL; t = t->next)
		if (t->name == NULL)
			cap += t->textlen;
	b64 = xmalloc(cap + 4);
	for (const struct xel *t = bin->children; t != NULL; t = t->next)
		for (size_t i = 0; t->name == NULL && i < t->textlen; i++)
			if (!is_xml_space(t->text[i]))
				b64[n++] = t->text[i];
	if (n == 0) {
		free(b64);
		return 0;
	}
	if (n % 4 == 1) {
		free(b64);
		return -1;
	}
	while (n % 4 != 0)
		b64[n++] = '=';
	img = xmalloc(n / 4 * 3);
	len = base64_decode(b64, n, img);
	free(b64);
	if (len < 0) {
		free(img);
		return -1;
	}
	scram_h(SCRAM_SHA1, img, (size_t)len, md);
	free(img);
	*hash = xmalloc(2 * SHA1_LEN + 1);
	for (size_t i = 0; i < SHA1_LEN; i++) {
		(*hash)[2 * i] = hex[md[i] >> 4];
		(*hash)[2 * i + 1] = hex[md[i] & 0x0f];
	}
	(*hash)[2 * SHA1_LEN] = '\0';
	return 0;
}

/*
 * Get (XEP-0054 §3.1, §3.3).
 */

static const char sql_get[] =
    "SELECT vcard FROM vcard WHERE user_id = " USER_ID_SQL("?1", "?2");

static enum store_status
run_get(struct store_job *sj)
{
	struct vcard_job *j = (struct vcard_job *)sj;
	enum store_status st = STORE_OK;
	sqlite3_stmt *s;
	int rc;

	if ((s = store_sql(sql_get)) == NULL)
		return STORE_ERROR;
	if (bind_user(s, j) == -1) {
		store_sql_warn("vcard get");
		store_sql_done(s);
		return STORE_ERROR;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const void *p = sqlite3_column_text(s, 0);

		j->len = (size_t)sqlite3_column_bytes(s, 0);
		j->vcard = xmalloc(j->len + 1);
		if (p != NULL)
			memcpy(j->vcard, p, j->len);
		j->vcard[j->len] = '\0';
		j->found = 1;
	} else if (rc != SQLITE_DONE) {
		store_sql_warn("vcard get");
		st = STORE_ERROR;
	}
	store_sql_done(s);
	return st;
}

/* A stored vCard back into an element (new arena), or NULL. */
static struct xel *
vcard_parse(const struct vcard_job *j)
{
	struct xml_limits lim = {
	    .max_stanza = j->len + 1,
	    .max_depth = xmppd_conf->limits.depth,
	    .max_attrs = xmppd_conf->limits.attributes,
	    /* stored by us: what was accepted once parses again */
	    .max_memory = SIZE_MAX,
	};
	struct xel *v = xml_parse_element(j->vcard, j->len, NS_VCARD, &lim);

	if (v != NULL && !xel_is(v, "vCard", NS_VCARD)) {
		arena_free(v->arena);
		v = NULL;
	}
	return v;
}

static void
complete_get(struct store_job *sj)
{
	struct vcard_job *j = (struct vcard_job *)sj;
	struct session *s = sm_find_id(j->job.owner);
	struct xel *r, *v;

	if (s == NULL || s->closing)
		return;
	if (j->job.status != STORE_OK) {
		reply_error(s, j->reply, "internal-server-error", NULL);
		return;
	}
	if (!j->found) {
		/* §3.1: no vCard of one's own is an error, which SHOULD be
		 * <item-not-found/> (the XEP's alternative is an empty
		 * vCard).  §3.3 (version 1.3): another user's missing vCard
		 * and a missing user MUST give the same condition, against
		 * directory harvesting; for the latter RFC 6121 §8.5.1
		 * requires <service-unavailable/>, so both get it. */
		reply_error(s, j->reply,
		    j->own ? "item-not-found" : "service-unavailable", NULL);
		return;
	}
	if ((v = vcard_parse(j)) == NULL) {
		log_warnx(
		    "vcard: the stored vCard of %s does not parse", j->bare);
		reply_error(s, j->reply, "internal-server-error", NULL);
		return;
	}
	r = stanza_iq_result(j->reply);
	xel_append_copy(r, v);
	arena_free(v->arena);
	session_reply(s, r);
}

static const struct store_job_ops get_ops = {
    "vcard get", 0, run_get, complete_get, job_free};

/*
 * Set (XEP-0054 §3.2).
 */

static const char sql_set[] =
    "INSERT OR REPLACE INTO vcard (user_id, vcard, photo_hash) "
    "SELECT id, ?3, ?4 FROM users WHERE host = ?1 AND user = ?2";

static enum store_status
run_set(struct store_job *sj)
{
	struct vcard_job *j = (struct vcard_job *)sj;
	sqlite3_stmt *s;

	if ((s = store_sql(sql_set)) == NULL)
		return STORE_ERROR;
	if (bind_user(s, j) == -1 ||
	    sqlite3_bind_text(s, 3, j->vcard, (int)j->len, SQLITE_STATIC) !=
	        SQLITE_OK ||
	    sqlite3_bind_text(s, 4, j->hash, -1, SQLITE_STATIC) != SQLITE_OK) {
		store_sql_warn("vcard set");
		store_sql_done(s);
		return STORE_ERROR;
	}
	/* No row when the account is gone. */
	return store_sql_write(s, "vcard set", STORE_NOT_FOUND);
}

static void
complete_set(struct store_job *sj)
{
	struct vcard_job *j = (struct vcard_job *)sj;
	struct session *s;

	/* Committed: every online resource advertises the new hash, even
	 * if the one that set it has gone. */
	if (j->job.status == STORE_OK) {
		log_debug("vcard: %s stored a vCard of %zu bytes, photo %s",
		    j->bare, j->len, j->hash ? j->hash : "none");
		avatar_set(j->bare, j->user, j->host, j->hash);
	}
	if ((s = sm_find_id(j->job.owner)) == NULL || s->closing)
		return;
	switch (j->job.status) {
	case STORE_OK:
		session_reply(s, stanza_iq_result(j->reply));
		break;
	case STORE_NOT_FOUND: /* the account was deleted meanwhile */
		reply_error(s, j->reply, "service-unavailable", NULL);
		break;
	default:
		reply_error(s, j->reply, "internal-server-error", NULL);
		break;
	}
}

static const struct store_job_ops set_ops = {
    "vcard set", 1, run_set, complete_set, job_free};

static void
handle_set(struct session *s, struct xel *iq, const struct xel *vcard)
{
	struct buf out = BUF_INIT;
	struct vcard_job *j;
	char *hash;

	/* Stored as serialized with vcard-temp in scope, so that it parses
	 * back with that default namespace; the limit applies to this. */
	xel_serialize(vcard, &out, NS_VCARD);
	if (out.len > xmppd_conf->limits.vcard_size) {
		/* RFC 6120 §8.3.3.12: understood but does not meet the
		 * server's criteria. */
		log_info("vcard: refused a vCard of %zu bytes from %s "
		         "(vcard-size %zu)",
		    out.len, s->full, xmppd_conf->limits.vcard_size);
		buf_free(&out);
		reply_error(s, iq, "not-acceptable", "vCard too large");
		return;
	}
	if (photo_hash(vcard, &hash) == -1) {
		buf_free(&out);
		reply_error(s, iq, "bad-request", "PHOTO/BINVAL is not base64");
		return;
	}
	j = job_new(&set_ops, s->jid.node, s->jid.domain, s->id);
	j->reply = stanza_iq_skeleton(iq);
	j->len = out.len;
	j->vcard = out.len ? buf_strdup(&out) : xstrdup("");
	j->hash = hash;
	buf_free(&out);
	store_job_submit(&j->job);
}

/*
 * The IQ handler.  Without 'to', or to one's own bare JID, it is one's
 * own vCard; to another local bare JID, that user's (anyone may read,
 * §1, §3.3); to the server, which has no vCard of its own.
 */
static enum hook_result
handle_vcard(struct session *s, struct xel *iq, enum iq_target target)
{
	const char *type = xel_attr(iq, "type"), *to = xel_attr(iq, "to");
	struct xel *vcard = xel_first_elem(iq);
	struct jid tj = {0};
	struct vcard_job *j;
	int own;

	if (to == NULL)
		own = 1;
	else if (jid_parse(&tj, to) == -1) {
		reply_error(s, iq, "jid-malformed", NULL);
		return HOOK_HANDLED;
	} else
		own = target == IQ_TO_BARE && jid_eq_bare(&tj, &s->jid);
	if (strcmp(type, "set") == 0) {
		if (own)
			handle_set(s, iq, vcard);
		else /* §3.2: another entity's vCard */
			reply_error(s, iq, "forbidden", NULL);
	} else if (target == IQ_TO_SERVER) {
		reply_error(s, iq, "service-unavailable", NULL);
	} else {
		j = own ? job_new(&get_ops, s->jid.node, s->jid.domain, s->id)
		        : job_new(&get_ops, tj.node, tj.domain, s->id);
		j->own = own;
		j->reply = stanza_iq_skeleton(iq);
		store_job_submit(&j->job);
	}
	jid_free(&tj);
	return HOOK_HANDLED;
}

static void
bound_already(struct session *s, void *arg)
{
	if (!s->closing)
		avatar_session_bound(s);
}

void
mod_vcard_init(void)
{
	avatars = strmap_new();
	iq_register(NS_VCARD, "vCard", handle_vcard);
	hook_add_session(HOOK_SESSION_BOUND, avatar_session_bound);
	hook_add_session(HOOK_SESSION_END, avatar_session_end);
	hook_add_user_deleted(avatar_user_deleted);
	hook_add_presence_out(avatar_presence_out);
	/* XEP-0054 §4; requests to a bare JID are answered by the server
	 * for the account, so the account advertises it too. */
	disco_add_feature(DISCO_SERVER, NS_VCARD);
	disco_add_feature(DISCO_ACCOUNT, NS_VCARD);
	/* Switched on by a reload: the hashes of who is online. */
	sm_foreach_session(bound_already, NULL);
}

/* Sessions held for a hash that is loading are released. */
void
mod_vcard_deinit(void)
{
	size_t n;
	void **v = strmap_values(avatars, &n);

	strmap_free(avatars);
	avatars = NULL;
	for (size_t i = 0; i < n; i++) {
		struct avatar *a = v[i];

		avatar_release(a);
		free(a->hash);
		free(a);
	}
	free(v);
}
