/*
 * vcard-temp (XEP-0054): a user stores their own vCard and anyone may read
 * it at the owner's bare JID; vCard-based avatars (XEP-0153): the SHA-1 of
 * the vCard's PHOTO is added to every available presence a local user
 * sends, from a cache kept while the user has a session; and, while the
 * pep module is on, the conversion of XEP-0398 between the vCard's PHOTO
 * and the XEP-0084 avatar in PEP, both ways.
 */
#include <inttypes.h>
#include <stdio.h>
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
#include "mod/pep.h"
#include "store/store_engine.h"
#include "strmap.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_VCARD "vcard-temp"
#define NS_VCARD_UPDATE "vcard-temp:x:update"
#define NS_AVATAR_DATA "urn:xmpp:avatar:data"
#define NS_AVATAR_METADATA "urn:xmpp:avatar:metadata"
#define NS_PEP_VCARD_CONVERSION "urn:xmpp:pep-vcard-conversion:0"

#define SHA1_LEN 20

void mod_vcard_init(void);
void mod_vcard_deinit(void);
void mod_vcard_reload(void);

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

static struct strmap *avatars; /* NULL while the module is off */
static uint64_t avatar_gen;

struct vcard_job;
static void convert_to_pep(const struct vcard_job *j);

/* One storage request; the kind is in job.ops. */
struct vcard_job {
	struct store_job job; /* first: the store hands this back */
	char *user, *host;    /* whose vCard */
	char *bare;           /* user@host, the avatar cache key */
	struct xel *reply;    /* get/set: the IQ to answer (own arena) */
	int own;              /* get: the requester's own vCard */
	char *vcard;          /* set: input; get: output */
	size_t len;
	char *hash; /* set, photo: input, NULL if no photo;
	               load: output, "" if no photo */
	int found;  /* get: a row was found */
	/* set: the hash stored before (NULL or "": no photo), and the
	 * image for the XEP-0398 conversion to PEP */
	char *old_hash;
	char *b64;    /* set, photo: BINVAL, no whitespace, padded */
	size_t bytes; /* set: the image's size */
	char *type;   /* set, photo: its MIME type */
	/* photo: what the vCard stored may be (copied from the
	 * configuration on the loop thread) */
	unsigned max_depth, max_attrs;
	size_t max_size;
	int unchanged; /* photo: the stored vCard already had it */
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
	free(j->old_hash);
	free(j->b64);
	free(j->type);
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

/* Storage thread: the photo hash stored for j's user in *hash (malloc'ed,
 * "" when there is no vCard or no photo). */
static enum store_status
stored_hash(const struct vcard_job *j, char **hash)
{
	enum store_status st = STORE_OK;
	const unsigned char *h;
	sqlite3_stmt *s;
	int rc;

	if ((s = store_sql(sql_load)) == NULL)
		return STORE_ERROR;
	if (bind_user(s, j) == -1)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		h = sqlite3_column_text(s, 0);
		*hash = xstrdup(h != NULL ? (const char *)h : "");
	} else if (rc == SQLITE_DONE) {
		*hash = xstrdup("");
	} else {
		store_sql_warn("vcard load");
		st = STORE_ERROR;
	}
	store_sql_done(s);
	return st;
}

static enum store_status
run_load(struct store_job *sj)
{
	struct vcard_job *j = (struct vcard_job *)sj;

	return stored_hash(j, &j->hash);
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

/* An image carried as base64 text (a vCard's BINVAL, an XEP-0084
 * <data/>). */
struct photo {
	char *b64;                   /* without whitespace, padded */
	size_t bytes;                /* the image's size */
	char hash[2 * SHA1_LEN + 1]; /* its SHA-1, lowercase hex */
	const char *sniffed;         /* MIME type from its first bytes,
	                                NULL if not recognised */
};

/* The MIME type of the common avatar formats by their signature. */
static const char *
sniff_type(const unsigned char *p, size_t n)
{
	if (n >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
		return "image/png";
	if (n >= 3 && memcmp(p, "\xff\xd8\xff", 3) == 0)
		return "image/jpeg";
	if (n >= 6 &&
	    (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0))
		return "image/gif";
	if (n >= 12 && memcmp(p, "RIFF", 4) == 0 &&
	    memcmp(p + 8, "WEBP", 4) == 0)
		return "image/webp";
	return NULL;
}

/*
 * Decode the base64 text children of el, whitespace ignored (XEP-0153
 * §4.6 rule 5) and missing padding tolerated.  Returns 1 with p filled
 * (free p->b64), 0 when there is no text (no image), -1 when it is not
 * base64.
 */
static int
photo_decode(const struct xel *el, struct photo *p)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[SHA1_LEN], *img;
	size_t n = 0, cap = 0;
	char *b64;
	long len;

	memset(p, 0, sizeof(*p));
	for (const struct xel *t = el->children; t != NULL; t = t->next)
		if (t->name == NULL)
			cap += t->textlen;
	b64 = xmalloc(cap + 4);
	for (const struct xel *t = el->children; t != NULL; t = t->next)
		for (size_t i = 0; t->name == NULL && i < t->textlen; i++)
			if (!is_xml_space(t->text[i]))
				b64[n++] = t->text[i];
	if (n == 0 || n % 4 == 1) {
		free(b64);
		return n == 0 ? 0 : -1;
	}
	while (n % 4 != 0)
		b64[n++] = '=';
	b64[n] = '\0';
	img = xmalloc(n / 4 * 3);
	if ((len = base64_decode(b64, n, img)) < 0) {
		free(img);
		free(b64);
		return -1;
	}
	scram_h(SCRAM_SHA1, img, (size_t)len, md);
	p->sniffed = sniff_type(img, (size_t)len);
	free(img);
	for (size_t i = 0; i < SHA1_LEN; i++) {
		p->hash[2 * i] = hex[md[i] >> 4];
		p->hash[2 * i + 1] = hex[md[i] & 0x0f];
	}
	p->hash[2 * SHA1_LEN] = '\0';
	p->b64 = b64;
	p->bytes = (size_t)len;
	return 1;
}

/*
 * The image of a vCard (XEP-0153 §3.1): PHOTO/BINVAL, whose SHA-1 is the
 * avatar hash.  Returns 0 when there is no image (no PHOTO, no BINVAL or
 * an empty one, §4.4 step 3), 1 with p filled, or -1 when BINVAL is not
 * base64.
 */
static int
photo_read(const struct xel *vcard, struct photo *p)
{
	struct xel *photo = xel_child(vcard, "PHOTO", NS_VCARD);
	struct xel *bin = xel_child(photo, "BINVAL", NS_VCARD);

	memset(p, 0, sizeof(*p));
	return bin != NULL ? photo_decode(bin, p) : 0;
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

/* Storage thread: store vcard (len bytes) with its photo hash (NULL for
 * none) as j's user's vCard. */
static enum store_status
write_vcard(
    const struct vcard_job *j, const char *vcard, size_t len, const char *hash)
{
	sqlite3_stmt *s;

	if ((s = store_sql(sql_set)) == NULL)
		return STORE_ERROR;
	if (bind_user(s, j) == -1 ||
	    sqlite3_bind_text(s, 3, vcard, (int)len, SQLITE_STATIC) !=
	        SQLITE_OK ||
	    sqlite3_bind_text(s, 4, hash, -1, SQLITE_STATIC) != SQLITE_OK) {
		store_sql_warn("vcard set");
		store_sql_done(s);
		return STORE_ERROR;
	}
	/* No row when the account is gone. */
	return store_sql_write(s, "vcard set", STORE_NOT_FOUND);
}

static enum store_status
run_set(struct store_job *sj)
{
	struct vcard_job *j = (struct vcard_job *)sj;
	enum store_status st;

	/* The photo before, for XEP-0398 (did it change, or go). */
	if ((st = stored_hash(j, &j->old_hash)) != STORE_OK)
		return st;
	return write_vcard(j, j->vcard, j->len, j->hash);
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
		if (pep_enabled())
			convert_to_pep(j);
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
	struct xel *type;
	struct photo p;
	int r;

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
	if ((r = photo_read(vcard, &p)) == -1) {
		buf_free(&out);
		reply_error(s, iq, "bad-request", "PHOTO/BINVAL is not base64");
		return;
	}
	j = job_new(&set_ops, s->jid.node, s->jid.domain, s->id);
	j->reply = stanza_iq_skeleton(iq);
	j->len = out.len;
	j->vcard = out.len ? buf_strdup(&out) : xstrdup("");
	if (r == 1) {
		type = xel_child(
		    xel_child(vcard, "PHOTO", NS_VCARD), "TYPE", NS_VCARD);
		j->hash = xstrdup(p.hash);
		j->b64 = p.b64;
		j->bytes = p.bytes;
		/* XEP-0084 §4.2.1: 'type' is required; the vCard's TYPE
		 * is optional (XEP-0054), so the image says it. */
		j->type = xstrdup(
		    type != NULL && *xel_text(type) != '\0' ? xel_text(type)
		    : p.sniffed != NULL                     ? p.sniffed
		                        : "application/octet-stream");
	}
	buf_free(&out);
	store_job_submit(&j->job);
}

/*
 * XEP-0398: the vCard's PHOTO and the XEP-0084 avatar in PEP, kept the
 * same while the pep module is on.  A client that sets a vCard with a
 * new photo publishes it in PEP (data, then metadata) through mod_pep;
 * a client that publishes avatar metadata gets the image (from its data
 * node) written into its vCard's PHOTO, so that XEP-0153 contacts see
 * the new hash.  Each direction ignores what the other did: the PEP side
 * sees by_server set on what we publish, and our vCard writes do not
 * come through the IQ handler.
 */

/* The avatar nodes: open to anyone (XEP-0084 §4.3 recommends open,
 * XEP-0398 §3 says the vCard's access applies, which is anyone's).  An
 * existing node keeps its own configuration (no precondition). */
static void
avatar_node_config(struct pep_config *cfg)
{
	pep_config_default(cfg);
	cfg->access = PEP_ACCESS_OPEN;
}

/* After a vCard set stored: publish its photo if it changed, or an
 * empty metadata if it went (XEP-0084 §4.2, disabling). */
static void
convert_to_pep(const struct vcard_job *j)
{
	struct arena *a;
	struct xel *data, *meta, *info;
	struct pep_config cfg;
	char bytes[32];
	int had = j->old_hash != NULL && *j->old_hash != '\0';

	if (j->hash == NULL && !had)
		return;
	if (j->hash != NULL && had && strcmp(j->hash, j->old_hash) == 0)
		return;
	a = arena_new(j->b64 != NULL ? strlen(j->b64) + 1024 : 1024);
	avatar_node_config(&cfg);
	meta = xel_new(a, "metadata", NS_AVATAR_METADATA);
	if (j->hash != NULL) {
		data = xel_text_set(xel_new(a, "data", NS_AVATAR_DATA), j->b64);
		/* §4.1: the data first, so that a contact who sees the
		 * metadata finds it. */
		pep_server_publish(
		    j->user, j->host, NS_AVATAR_DATA, j->hash, data, &cfg, 0);
		snprintf(bytes, sizeof(bytes), "%zu", j->bytes);
		info = xel_add(meta, "info", NULL);
		xel_set_attr(info, "bytes", bytes);
		xel_set_attr(info, "id", j->hash);
		xel_set_attr(info, "type", j->type);
		pep_server_publish(j->user, j->host, NS_AVATAR_METADATA,
		    j->hash, meta, &cfg, 0);
	} else
		pep_server_publish(j->user, j->host, NS_AVATAR_METADATA,
		    "current", meta, &cfg, 0);
	log_debug("vcard: %s@%s: avatar %s converted to PEP", j->user, j->host,
	    j->hash != NULL ? j->hash : "removal");
	pep_config_free(&cfg);
	arena_free(a);
}

/*
 * PEP to vCard.  The image is read from the data node (as the owner)
 * after the metadata event; fetches in flight are listed by tag, so that
 * a completion after the module went off finds nothing to do.
 */
struct avatar_fetch {
	struct avatar_fetch *next;
	uint64_t tag;
	char *user, *host;
	char *id;   /* the item id = the SHA-1 the metadata names */
	char *type; /* info@type, NULL if absent */
};

static struct avatar_fetch *fetches;
static uint64_t fetch_tag;

static void
fetch_free(struct avatar_fetch *f)
{
	free(f->user);
	free(f->host);
	free(f->id);
	free(f->type);
	free(f);
}

/* Storage thread: replace the PHOTO of the stored vCard by j->b64 and
 * j->type (none when j->hash is NULL), creating the vCard if needed. */
static enum store_status
run_photo(struct store_job *sj)
{
	struct vcard_job *j = (struct vcard_job *)sj;
	enum store_status st;
	struct xml_limits lim = {
	    .max_depth = j->max_depth,
	    .max_attrs = j->max_attrs,
	    .max_memory = SIZE_MAX, /* stored by us */
	};
	struct xel *v, *c, *next, *photo;
	struct buf out = BUF_INIT;
	sqlite3_stmt *s;
	char *old = NULL;
	int rc;

	if ((st = stored_hash(j, &old)) != STORE_OK)
		return st;
	rc = strcmp(old, j->hash != NULL ? j->hash : "") == 0;
	free(old);
	if (rc) {
		j->unchanged = 1;
		return STORE_OK;
	}
	if ((s = store_sql(sql_get)) == NULL)
		return STORE_ERROR;
	if (bind_user(s, j) == -1)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const char *p = (const char *)sqlite3_column_text(s, 0);
		size_t n = (size_t)sqlite3_column_bytes(s, 0);

		lim.max_stanza = n + 1;
		v = xml_parse_element(p != NULL ? p : "", n, NS_VCARD, &lim);
		if (v != NULL && !xel_is(v, "vCard", NS_VCARD)) {
			arena_free(v->arena);
			v = NULL;
		}
		if (v == NULL) {
			store_sql_done(s);
			log_warnx("vcard: the stored vCard of %s does not "
			          "parse: avatar not converted",
			    j->bare);
			return STORE_ERROR;
		}
	} else if (rc == SQLITE_DONE) {
		v = xel_new(arena_new(1024), "vCard", NS_VCARD);
	} else {
		store_sql_warn("vcard photo");
		store_sql_done(s);
		return STORE_ERROR;
	}
	store_sql_done(s);
	for (c = v->children; c != NULL; c = next) {
		next = c->next;
		if (xel_is(c, "PHOTO", NS_VCARD))
			xel_remove(c);
	}
	if (j->hash != NULL) {
		photo = xel_add(v, "PHOTO", NS_VCARD);
		xel_text_set(xel_add(photo, "TYPE", NS_VCARD), j->type);
		xel_text_set(xel_add(photo, "BINVAL", NS_VCARD), j->b64);
	}
	xel_serialize(v, &out, NS_VCARD);
	arena_free(v->arena);
	if (out.len > j->max_size) {
		j->len = out.len;
		buf_free(&out);
		return STORE_EXISTS;
	}
	j->len = out.len;
	st = write_vcard(j, out.len ? buf_head(&out) : "", out.len, j->hash);
	buf_free(&out);
	return st;
}

static void
complete_photo(struct store_job *sj)
{
	struct vcard_job *j = (struct vcard_job *)sj;

	switch (j->job.status) {
	case STORE_OK:
		if (j->unchanged)
			break;
		log_debug("vcard: %s: PEP avatar %s converted to the vCard",
		    j->bare, j->hash != NULL ? j->hash : "removal");
		avatar_set(j->bare, j->user, j->host, j->hash);
		break;
	case STORE_EXISTS:
		log_info("vcard: %s: PEP avatar %s not converted: the vCard "
		         "would take %zu bytes (vcard-size %zu)",
		    j->bare, j->hash, j->len, j->max_size);
		break;
	case STORE_NOT_FOUND: /* the account is gone */
		break;
	default:
		log_warnx("vcard: %s: cannot store the PEP avatar in the "
		          "vCard",
		    j->bare);
		break;
	}
}

static const struct store_job_ops photo_ops = {
    "vcard photo", 1, run_photo, complete_photo, job_free};

/* Write user@host's vCard PHOTO: hash, b64 and type, or none (hash NULL);
 * b64 and type are taken over. */
static void
photo_submit(
    const char *user, const char *host, const char *hash, char *b64, char *type)
{
	struct vcard_job *j = job_new(&photo_ops, user, host, 0);

	j->hash = hash != NULL ? xstrdup(hash) : NULL;
	j->b64 = b64;
	j->type = type;
	j->max_depth = xmppd_conf->limits.depth;
	j->max_attrs = xmppd_conf->limits.attributes;
	j->max_size = xmppd_conf->limits.vcard_size;
	store_job_submit(&j->job);
}

/* pep_read of the data item a metadata event named. */
static void
fetch_done(uint64_t owner, uint64_t tag, enum store_status st,
    const struct pep_read_result *r)
{
	struct avatar_fetch **pp, *f;
	struct xel *data = NULL;
	struct photo p;
	size_t len;

	(void)owner;
	for (pp = &fetches; (f = *pp) != NULL && f->tag != tag; pp = &f->next)
		;
	if (f == NULL) /* the module went off */
		return;
	*pp = f->next;
	if (st != STORE_OK || r->nitems == 0 || r->items[0].payload == NULL) {
		log_debug("vcard: %s@%s: no avatar data %s to convert", f->user,
		    f->host, f->id);
		goto out;
	}
	len = r->items[0].len;
	{
		struct xml_limits lim = {
		    .max_stanza = len + 1,
		    .max_depth = xmppd_conf->limits.depth,
		    .max_attrs = xmppd_conf->limits.attributes,
		    .max_memory = SIZE_MAX, /* stored by mod_pep */
		};

		data = xml_parse_element(r->items[0].payload, len, "", &lim);
	}
	if (data == NULL || !xel_is(data, "data", NS_AVATAR_DATA) ||
	    photo_decode(data, &p) != 1) {
		log_info("vcard: %s@%s: avatar data %s is not base64 image "
		         "data: not converted",
		    f->user, f->host, f->id);
		goto out;
	}
	/* §4.2.1: the id is the SHA-1 of the image; the vCard's hash is
	 * what contacts compute, so it is the image's. */
	if (strcmp(p.hash, f->id) != 0)
		log_info("vcard: %s@%s: avatar %s has the SHA-1 %s", f->user,
		    f->host, f->id, p.hash);
	photo_submit(f->user, f->host, p.hash, p.b64,
	    xstrdup(f->type != NULL     ? f->type
	            : p.sniffed != NULL ? p.sniffed
	                                : "application/octet-stream"));
out:
	if (data != NULL)
		arena_free(data->arena);
	fetch_free(f);
}

/* The <info/> of a metadata payload that describes the image in the data
 * node (it has no 'url', §4.2.1): the one with the item's id, else the
 * first. */
static const struct xel *
metadata_info(const struct xel *meta, const char *id)
{
	const struct xel *first = NULL;

	for (struct xel *i = xel_child(meta, "info", NS_AVATAR_METADATA);
	     i != NULL; i = xel_next(i, "info", NS_AVATAR_METADATA)) {
		if (xel_attr(i, "url") != NULL || xel_attr(i, "id") == NULL)
			continue;
		if (strcmp(xel_attr(i, "id"), id) == 0)
			return i;
		if (first == NULL)
			first = i;
	}
	return first;
}

/* hook_pep_event: a client published avatar metadata. */
static void
avatar_pep_event(const char *user, const char *host, const char *node,
    const char *id, const struct xel *payload, int by_server)
{
	const struct xel *info;
	struct avatar_fetch *f;
	struct pep_read q = {0};
	const char *type;

	if (by_server || id == NULL || payload == NULL ||
	    strcmp(node, NS_AVATAR_METADATA) != 0 ||
	    !xel_is(payload, "metadata", NS_AVATAR_METADATA))
		return;
	if (xel_child(payload, "info", NS_AVATAR_METADATA) == NULL) {
		/* §4.2: avatar publishing disabled. */
		photo_submit(user, host, NULL, NULL, NULL);
		return;
	}
	if ((info = metadata_info(payload, id)) == NULL) {
		/* Only images at URLs: nothing the server holds. */
		log_debug("vcard: %s@%s: avatar %s only by URL, not converted",
		    user, host, id);
		return;
	}
	f = xcalloc(1, sizeof(*f));
	f->tag = ++fetch_tag;
	f->user = xstrdup(user);
	f->host = xstrdup(host);
	f->id = xstrdup(xel_attr(info, "id"));
	type = xel_attr(info, "type");
	f->type = type != NULL && *type != '\0' ? xstrdup(type) : NULL;
	f->next = fetches;
	fetches = f;
	q.user = user;
	q.host = host;
	q.kind = PEP_READ_ITEMS;
	q.node = NS_AVATAR_DATA;
	q.requester = xasprintf("%s@%s", user, host);
	q.ids = (const char *const *)&f->id;
	q.nids = 1;
	pep_read(&q, fetch_done, 0, f->tag);
	free((char *)q.requester);
}

static void
fetches_free(void)
{
	struct avatar_fetch *f;

	while ((f = fetches) != NULL) {
		fetches = f->next;
		fetch_free(f);
	}
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

/* The features of the server and the accounts; XEP-0398 §4 only while
 * the conversion runs, that is while pep is on too. */
static void
advertise(void)
{
	/* XEP-0054 §4; requests to a bare JID are answered by the server
	 * for the account, so the account advertises it too. */
	disco_add_feature(DISCO_SERVER, NS_VCARD);
	disco_add_feature(DISCO_ACCOUNT, NS_VCARD);
	if (pep_enabled())
		disco_add_feature(DISCO_ACCOUNT, NS_PEP_VCARD_CONVERSION);
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
	hook_add_pep_event(avatar_pep_event);
	advertise();
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
	fetches_free();
}

/* On, staying on: the pep module may have been switched on or off. */
void
mod_vcard_reload(void)
{
	disco_remove_owner(hook_owner());
	advertise();
}
