/*
 * XEP-0115 entity capabilities of local clients: each 'ver' announced in
 * a presence <c/> is resolved once for the whole server, by a disco#info
 * query to one session that presented it, verified against its hash
 * (§5.4) and cached, so that other modules (PEP's notification filter,
 * XEP-0163 §4) can ask a session's client for a feature (mod/caps.h).
 *
 * State: the cache (ver -> struct caps, at most CAPS_CACHE_MAX, least
 * recently used unused entries evicted), the resolutions in flight (ver
 * -> struct resolution, at most CAPS_RESOLVING_MAX, each with the
 * sessions waiting on it and at most one query out), and a record per
 * session that presented caps (which resolution it waits on, which
 * query it was asked).  Sessions are named by pointer only from records
 * removed at HOOK_SESSION_END, when they are still valid.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "conf.h"
#include "core/disco.h"
#include "core/hooks.h"
#include "core/roster.h"
#include "core/router.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/subscription.h"
#include "jid.h"
#include "log.h"
#include "mod/caps.h"
#include "mono.h"
#include "strmap.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define CAPS_ID_PREFIX "caps-"
/* A sha-1 digest in base64: anything else can never verify. */
#define CAPS_VER_LEN 28

void mod_caps_init(void);
void mod_caps_deinit(void);

/*
 * A verified feature set.  refs counts the sessions pointing to it; an
 * entry of the cache (cached) with no session is on the unused list, in
 * the order it fell out of use, and is evicted from its head.  One that
 * could not be cached (the cache full of entries in use) is freed with
 * its last session.
 */
struct caps {
	char *ver;
	char **features;         /* sorted, distinct */
	size_t nfeatures;
	unsigned refs;
	int cached;
	struct caps *unused_prev, *unused_next;
};

struct caps_session;

/* The resolution of one ver not yet verified. */
struct resolution {
	char *ver;
	struct caps_session *waiting[CAPS_WAITING_MAX]; /* to be told */
	size_t nwaiting;
	struct caps_session *asked;  /* the query out, or NULL */
	uint64_t serial;             /* its id is "caps-SERIAL" */
	double sent;                 /* when (mono_now()) */
	unsigned tries;              /* failed queries so far */
	struct resolution *out_prev, *out_next; /* queries out, oldest first */
};

/* A session that presented caps (HOOK_SESSION_END removes it). */
struct caps_session {
	struct session *s;
	struct resolution *waiting;  /* the unverified ver its presence
	                                carries, or NULL */
	struct resolution *asked;    /* whose query it was sent, or NULL */
};

static struct strmap *cache;        /* ver -> struct caps (cached) */
static struct caps *unused_head, *unused_tail;
static struct strmap *resolving;    /* ver -> struct resolution */
static struct resolution *out_head, *out_tail;
static struct strmap *by_session;   /* decimal session id -> caps_session */
static ev_timer timeout_w;
static uint64_t next_serial = 1;
static int running;

static void kick(struct resolution *r);
static void remote_ver_known(struct caps *c);

/* --- the feature sets (mod/caps.h) ------------------------------------- */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
caps_has(const struct caps *c, const char *feature)
{
	if (c == NULL || feature == NULL || c->nfeatures == 0)
		return 0;
	return bsearch(&feature, c->features, c->nfeatures,
	    sizeof(*c->features), cmp_str) != NULL;
}

size_t
caps_count(const struct caps *c)
{
	return c ? c->nfeatures : 0;
}

const char *
caps_feature(const struct caps *c, size_t i)
{
	return c && i < c->nfeatures ? c->features[i] : NULL;
}

const char *
caps_ver(const struct caps *c)
{
	return c ? c->ver : NULL;
}

/* The features of a disco#info <query/>, sorted and deduplicated. */
static struct caps *
caps_from_query(const char *ver, const struct xel *query)
{
	struct caps *c = xcalloc(1, sizeof(*c));
	size_t n = 0, k = 0;
	struct xel *f;

	c->ver = xstrdup(ver);
	for (f = xel_child(query, "feature", NS_DISCO_INFO); f;
	    f = xel_next(f, "feature", NS_DISCO_INFO))
		n++;
	c->features = xreallocarray(NULL, n ? n : 1, sizeof(*c->features));
	for (f = xel_child(query, "feature", NS_DISCO_INFO); f;
	    f = xel_next(f, "feature", NS_DISCO_INFO)) {
		const char *var = xel_attr(f, "var");

		if (var != NULL)
			c->features[k++] = xstrdup(var);
	}
	qsort(c->features, k, sizeof(*c->features), cmp_str);
	for (size_t i = 0; i < k; i++) {
		char *prev = c->nfeatures ? c->features[c->nfeatures - 1] :
		    NULL;

		if (prev && strcmp(prev, c->features[i]) == 0) {
			free(c->features[i]);
			continue;
		}
		c->features[c->nfeatures++] = c->features[i];
	}
	return c;
}

static void
caps_free(struct caps *c)
{
	for (size_t i = 0; i < c->nfeatures; i++)
		free(c->features[i]);
	free(c->features);
	free(c->ver);
	free(c);
}

static void
unused_unlink(struct caps *c)
{
	if (c->unused_prev)
		c->unused_prev->unused_next = c->unused_next;
	else
		unused_head = c->unused_next;
	if (c->unused_next)
		c->unused_next->unused_prev = c->unused_prev;
	else
		unused_tail = c->unused_prev;
	c->unused_prev = c->unused_next = NULL;
}

static void
unused_append(struct caps *c)
{
	c->unused_next = NULL;
	c->unused_prev = unused_tail;
	if (unused_tail)
		unused_tail->unused_next = c;
	else
		unused_head = c;
	unused_tail = c;
}

static void
caps_ref(struct caps *c)
{
	if (c->refs++ == 0 && c->cached)
		unused_unlink(c);
}

static void
caps_unref(struct caps *c)
{
	if (--c->refs > 0)
		return;
	if (c->cached)
		unused_append(c);
	else
		caps_free(c);
}

/* Cache c (with no session yet), evicting the least recently used
 * unused entry when full.  Returns 0, or -1 when every entry is in use:
 * c then lives only as long as its sessions. */
static int
cache_insert(struct caps *c)
{
	if (strmap_count(cache) >= CAPS_CACHE_MAX) {
		struct caps *old = unused_head;

		if (old == NULL)
			return -1;
		unused_unlink(old);
		strmap_del(cache, old->ver);
		caps_free(old);
	}
	c->cached = 1;
	strmap_put(cache, c->ver, c);
	unused_append(c);
	return 0;
}

/* c was just verified: the cached entry of its ver if another
 * resolution (a local and a remote one may run at once) cached it
 * first (c is then freed), else c, cached if there is room.  The caller
 * takes a reference at once (c, uncached, lives as long as those). */
static struct caps *
cache_adopt(struct caps *c)
{
	struct caps *have = strmap_get(cache, c->ver);

	if (have != NULL) {
		caps_free(c);
		return have;
	}
	if (cache_insert(c) < 0)
		log_info("caps: cache full of vers in use, ver %s not kept",
		    c->ver);
	return c;
}

/* Point s at c (may be NULL), telling the hook when it changed. */
static void
set_caps(struct session *s, struct caps *c)
{
	struct caps *old = (struct caps *)s->caps;

	if (old == c)
		return;
	if (c)
		caps_ref(c);
	s->caps = c;
	hook_run_caps_changed(s, old);
	if (old)
		caps_unref(old);
}

/* --- sessions and resolutions ----------------------------------------- */

static void
session_key(uint64_t id, char *key, size_t len)
{
	snprintf(key, len, "%" PRIu64, id);
}

static struct caps_session *
find(uint64_t id)
{
	char key[24];

	session_key(id, key, sizeof(key));
	return strmap_get(by_session, key);
}

static struct caps_session *
find_or_add(struct session *s)
{
	struct caps_session *cs = find(s->id);
	char key[24];

	if (cs == NULL) {
		cs = xcalloc(1, sizeof(*cs));
		cs->s = s;
		session_key(s->id, key, sizeof(key));
		strmap_put(by_session, key, cs);
	}
	return cs;
}

/* The ver of a presence's <c/> if it can be resolved: hash 'sha-1'
 * (§5.1, the only one we verify), a node and a ver of the right
 * length; else NULL (treated as no caps).  node gets the node. */
static const char *
presence_ver(const struct xel *pres, const char **node)
{
	const struct xel *c = pres ? xel_child(pres, "c", NS_CAPS) : NULL;
	const char *hash, *ver;

	if (c == NULL || (hash = xel_attr(c, "hash")) == NULL ||
	    strcmp(hash, "sha-1") != 0 ||
	    (*node = xel_attr(c, "node")) == NULL || **node == '\0' ||
	    (ver = xel_attr(c, "ver")) == NULL ||
	    strlen(ver) != CAPS_VER_LEN)
		return NULL;
	return ver;
}

static void
out_unlink(struct resolution *r)
{
	if (r->out_prev)
		r->out_prev->out_next = r->out_next;
	else
		out_head = r->out_next;
	if (r->out_next)
		r->out_next->out_prev = r->out_prev;
	else
		out_tail = r->out_prev;
	r->out_prev = r->out_next = NULL;
}

static void
out_append(struct resolution *r)
{
	r->out_next = NULL;
	r->out_prev = out_tail;
	if (out_tail)
		out_tail->out_next = r;
	else
		out_head = r;
	out_tail = r;
}

static double
query_timeout(void)
{
	return xmppd_conf->limits.caps_timeout;
}

/* Fire at the oldest query's deadline, or at least once a second while
 * queries are out (a reload may shorten the timeout). */
static void
arm_timer(void)
{
	double after = 3600.0;

	if (out_head != NULL) {
		after = out_head->sent + query_timeout() -
		    mono_now(xmppd_loop);
		if (after > 1.0)
			after = 1.0;
		if (after < 0.01)
			after = 0.01;
	}
	timeout_w.repeat = after;
	ev_timer_again(xmppd_loop, &timeout_w);
}

static void
waiting_remove(struct resolution *r, struct caps_session *cs)
{
	for (size_t i = 0; i < r->nwaiting; i++)
		if (r->waiting[i] == cs) {
			memmove(&r->waiting[i], &r->waiting[i + 1],
			    (r->nwaiting - i - 1) * sizeof(*r->waiting));
			r->nwaiting--;
			return;
		}
}

/* Forget r: no session waits on it or is asked for it any more. */
static void
resolution_free(struct resolution *r)
{
	for (size_t i = 0; i < r->nwaiting; i++)
		if (r->waiting[i]->waiting == r)
			r->waiting[i]->waiting = NULL;
	if (r->asked) {
		if (r->asked->waiting == r)
			r->asked->waiting = NULL;
		r->asked->asked = NULL;
		out_unlink(r);
	}
	strmap_del(resolving, r->ver);
	free(r->ver);
	free(r);
}

/* The query r sent is over (answered, failed or its session ended).
 * Returns the id of the session it was sent to (0: gone), which may now
 * be asked for the ver it waits on: kick_session, once done with r. */
static uint64_t
query_done(struct resolution *r)
{
	struct caps_session *cs = r->asked;

	r->asked = NULL;
	out_unlink(r);
	if (cs == NULL)
		return 0;
	cs->asked = NULL;
	return cs->s->id;
}

static void
kick_session(uint64_t id)
{
	struct caps_session *cs = id ? find(id) : NULL;

	if (cs && cs->waiting && cs->waiting->asked == NULL)
		kick(cs->waiting);
}

/*
 * Ask the next waiting session that is not already answering a query
 * (at most one per session) for node#ver.  r is freed when nobody is
 * left to ask.  Sending is the last thing done: a session_send may end
 * a session (output-max), whose end runs here again and may free r.
 */
static void
kick(struct resolution *r)
{
	struct caps_session *cs = NULL;
	const char *node = NULL;
	struct arena *a;
	struct xel *iq, *query;
	char id[32];
	size_t i;

	if (r->asked != NULL)
		return;
	for (i = 0; i < r->nwaiting; i++) {
		struct caps_session *w = r->waiting[i];

		if (w->asked == NULL && !w->s->closing &&
		    presence_ver(w->s->presence, &node) != NULL) {
			cs = w;
			break;
		}
	}
	if (cs == NULL) {
		if (r->nwaiting == 0)
			resolution_free(r);
		return;             /* the busy ones kick it when done */
	}
	waiting_remove(r, cs);
	r->asked = cs;
	cs->asked = r;
	r->serial = next_serial++;
	r->sent = mono_now(xmppd_loop);
	out_append(r);
	if (out_head == r)
		arm_timer();
	snprintf(id, sizeof(id), CAPS_ID_PREFIX "%" PRIu64, r->serial);
	a = arena_new(512);
	iq = xel_new(a, "iq", NS_CLIENT);
	xel_set_attr(iq, "type", "get");
	xel_set_attr(iq, "from", cs->s->jid.domain);
	xel_set_attr(iq, "to", cs->s->full);
	xel_set_attr(iq, "id", id);
	query = xel_add(iq, "query", NS_DISCO_INFO);
	{
		size_t len = strlen(node) + 1 + strlen(r->ver) + 1;
		char *nv = xmalloc(len);

		snprintf(nv, len, "%s#%s", node, r->ver);
		xel_set_attr(query, "node", nv);
		free(nv);
	}
	session_send(cs->s, iq);
	arena_free(a);
}

/* The asked session's answer does not verify (or never came): do not
 * trust it, ask the next one, or give the ver up after CAPS_TRIES_MAX. */
static void
query_failed(struct resolution *r)
{
	struct caps_session *cs = r->asked;
	uint64_t id;

	if (cs && cs->waiting == r)
		cs->waiting = NULL;   /* it does not get what it lied about */
	id = query_done(r);
	if (++r->tries >= CAPS_TRIES_MAX) {
		log_info("caps: ver %s given up after %u failed queries",
		    r->ver, r->tries);
		resolution_free(r);
	} else
		kick(r);
	kick_session(id);
}

/* ver is verified with features c: cache it and give it to every session
 * whose presence still carries it. */
static void
resolved(struct resolution *r, struct caps *c)
{
	uint64_t ids[CAPS_WAITING_MAX + 1];
	uint64_t asked;
	size_t n = 0;

	if (r->asked && r->asked->waiting == r) {
		ids[n++] = r->asked->s->id;
		r->asked->waiting = NULL;
	}
	for (size_t i = 0; i < r->nwaiting; i++)
		if (r->waiting[i]->waiting == r)
			ids[n++] = r->waiting[i]->s->id;
	asked = query_done(r);
	resolution_free(r);
	c = cache_adopt(c);
	/* The hook may send, and a send may end a session: look each one
	 * up again. */
	caps_ref(c);
	for (size_t i = 0; i < n; i++) {
		struct caps_session *cs = find(ids[i]);
		const char *node;
		const char *ver;

		if (cs == NULL || cs->s->closing || !cs->s->available ||
		    (ver = presence_ver(cs->s->presence, &node)) == NULL ||
		    strcmp(ver, c->ver) != 0)
			continue;
		set_caps(cs->s, c);
	}
	remote_ver_known(c);
	caps_unref(c);
	kick_session(asked);
}

/* The answer (result or error) to the query r sent to cs's session. */
static void
answered(struct resolution *r, struct session *s, const struct xel *iq)
{
	const char *type = xel_attr(iq, "type");
	const struct xel *query = xel_child(iq, "query", NS_DISCO_INFO);
	char *hash;

	if (strcmp(type, "result") != 0 || query == NULL) {
		log_debug(SESSION_LOG_FMT ": caps: no disco#info for ver %s "
		    "(%s)", SESSION_LOG_ARGS(s), r->ver, type);
		query_failed(r);
		return;
	}
	hash = disco_caps_hash(query);
	if (hash == NULL || strcmp(hash, r->ver) != 0) {
		log_info(SESSION_LOG_FMT ": caps: disco#info does not hash to "
		    "ver %s (%s), not trusted", SESSION_LOG_ARGS(s), r->ver,
		    hash ? hash : "ill-formed");
		free(hash);
		query_failed(r);
		return;
	}
	free(hash);
	{
		struct caps *c = caps_from_query(r->ver, query);

		log_debug("caps: ver %s verified from %s, %zu features",
		    c->ver, s->full, c->nfeatures);
		resolved(r, c);
	}
}

static void
timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	double now = mono_now(loop);

	while (out_head && now - out_head->sent >= query_timeout()) {
		struct resolution *r = out_head;

		if (r->asked)
			log_debug(SESSION_LOG_FMT ": caps: no answer for ver "
			    "%s within %u s", SESSION_LOG_ARGS(r->asked->s),
			    r->ver, xmppd_conf->limits.caps_timeout);
		query_failed(r);
	}
	arm_timer();
}

/* cs no longer waits on the ver it waited on. */
static void
leave_waiting(struct caps_session *cs)
{
	struct resolution *r = cs->waiting;

	if (r == NULL)
		return;
	cs->waiting = NULL;
	waiting_remove(r, cs);
	if (r->asked == NULL && r->nwaiting == 0)
		resolution_free(r);
}

/* s now presents ver (not cached): wait on its resolution, starting one
 * if none is in flight. */
static void
wait_for(struct caps_session *cs, const char *ver)
{
	struct resolution *r = strmap_get(resolving, ver);

	if (r == NULL) {
		if (strmap_count(resolving) >= CAPS_RESOLVING_MAX) {
			log_debug(SESSION_LOG_FMT ": caps: %d vers being "
			    "resolved, ver %s not resolved",
			    SESSION_LOG_ARGS(cs->s), CAPS_RESOLVING_MAX, ver);
			return;
		}
		r = xcalloc(1, sizeof(*r));
		r->ver = xstrdup(ver);
		strmap_put(resolving, r->ver, r);
	}
	if (r->asked != cs) {
		if (r->nwaiting == CAPS_WAITING_MAX) {
			if (r->asked == NULL)
				kick(r);
			return; /* it learns it at its next presence */
		}
		r->waiting[r->nwaiting++] = cs;
	}
	cs->waiting = r;
	kick(r);
}

/* The caps of s's current presence (pres NULL: unavailable). */
static void
presence_caps(struct session *s, const struct xel *pres)
{
	const char *node = NULL;
	const char *ver = presence_ver(pres, &node);
	struct caps_session *cs = ver ? find_or_add(s) : find(s->id);
	struct caps *c;

	if (ver == NULL) {
		if (cs)
			leave_waiting(cs);
		set_caps(s, NULL);
		return;
	}
	if (s->caps && strcmp(caps_ver(s->caps), ver) == 0)
		return;
	if (cs->waiting && strcmp(cs->waiting->ver, ver) == 0)
		return;
	leave_waiting(cs);
	if ((c = strmap_get(cache, ver)) != NULL) {
		set_caps(s, c);
		return;
	}
	/* Until the new ver is verified the session keeps what was
	 * verified for it before (NULL for a first one), so that a change
	 * reaches hook_run_caps_changed as old -> new: what the features
	 * gained are is then known (XEP-0163 §4.3.4, interest appearing). */
	wait_for(cs, ver);
}

/* --- contacts on other servers ---------------------------------------- */

/*
 * The resources of other servers' contacts available to a local user
 * (their available presence reached the user: hook_remote_presence),
 * each with the caps its presence carries.  Only contacts in the user's
 * roster with a subscription either way count (not a room's occupants),
 * only while the user has a session, at most CAPS_REMOTE_PER_USER per
 * user and CAPS_REMOTE_MAX in all; an entry goes with the contact's
 * unavailable or error presence, an error to the user's bare JID from
 * it (a notification that could not be delivered, the route failing
 * included: router_bounce_remote), and the user's last session.
 * An unknown ver is asked of the contact itself over server-to-server
 * (disco#info from the user's host, id "capsr-N", the answer through
 * hook_iq_answer), verified like a local one (§5.4: a wrong hash is
 * never cached) and cached in the same cache; at most
 * CAPS_RESOLVING_MAX vers at once, CAPS_TRIES_MAX queries each, another
 * contact presenting the ver asked after a failure.
 */
#define CAPS_REMOTE_ID_PREFIX "capsr-"

struct ruser;

struct remote {
	struct ruser *u;
	char *full;
	char *node;                /* its presence's <c node/> */
	char *ver;                 /* and ver; NULL: no usable caps */
	struct caps *caps;         /* verified (a reference), or NULL */
	struct remote *next;       /* in u's list */
};

struct ruser {
	char *user, *host;
	struct remote *head;
	size_t n;
};

struct rresolution {
	char *ver;
	char *asked;               /* the full JID asked, NULL: none out */
	char *host;                /* our host that asked */
	uint64_t serial;           /* the id is "capsr-SERIAL" */
	double sent;
	unsigned tries;
};

static struct strmap *rusers;      /* user's bare JID -> struct ruser */
static size_t nremote;
static struct strmap *rresolving;  /* ver -> struct rresolution */
static ev_timer rtimeout_w;

static struct ruser *
ruser_find(const char *user, const char *host)
{
	char key[3 * 1024 + 2];

	if (rusers == NULL)
		return NULL;
	snprintf(key, sizeof(key), "%s@%s", user, host);
	return strmap_get(rusers, key);
}

static struct remote *
remote_find(const struct ruser *u, const char *full)
{
	for (struct remote *e = u ? u->head : NULL; e; e = e->next)
		if (strcmp(e->full, full) == 0)
			return e;
	return NULL;
}

static void
ruser_free(struct ruser *u)
{
	char key[3 * 1024 + 2];

	snprintf(key, sizeof(key), "%s@%s", u->user, u->host);
	strmap_del(rusers, key);
	free(u->user);
	free(u->host);
	free(u);
}

/* Forget e (and its user's record when it was the last). */
static void
remote_free(struct remote *e)
{
	struct ruser *u = e->u;

	for (struct remote **pp = &u->head; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	u->n--;
	nremote--;
	if (e->caps)
		caps_unref(e->caps);
	free(e->full);
	free(e->node);
	free(e->ver);
	free(e);
	if (u->head == NULL)
		ruser_free(u);
}

void
caps_remote_drop(const char *user, const char *host, const char *full)
{
	struct remote *e = remote_find(ruser_find(user, host), full);

	if (e != NULL) {
		log_debug("caps: %s no longer available to %s@%s", full, user,
		    host);
		remote_free(e);
	}
}

void
caps_remote_foreach(const char *user, const char *host, caps_remote_fn fn,
    void *arg)
{
	struct ruser *u = ruser_find(user, host);

	for (struct remote *e = u ? u->head : NULL; e; e = e->next)
		fn(e->full, e->caps, arg);
}

/* Point e at c (not NULL), telling the hook.  The hook may send, and a
 * send may drop e (a route that fails at once): e is not touched after
 * it, and it gets copies of the strings. */
static void
remote_set_caps(struct remote *e, struct caps *c)
{
	struct caps *old = e->caps;
	char *user, *host, *full;

	if (old == c)
		return;
	caps_ref(c);
	e->caps = c;
	log_debug("caps: %s, available to %s@%s, has ver %s", e->full,
	    e->u->user, e->u->host, c->ver);
	user = xstrdup(e->u->user);
	host = xstrdup(e->u->host);
	full = xstrdup(e->full);
	hook_run_remote_caps_changed(user, host, full, c, old);
	free(user);
	free(host);
	free(full);
	if (old)
		caps_unref(old);
}

static void
rresolution_free(struct rresolution *rr)
{
	strmap_del(rresolving, rr->ver);
	free(rr->ver);
	free(rr->asked);
	free(rr->host);
	free(rr);
	if (strmap_count(rresolving) == 0)
		ev_timer_stop(xmppd_loop, &rtimeout_w);
}

/* Ask e's resource for node#ver (from e's user's host). */
static void
rresolution_ask(struct rresolution *rr, const struct remote *e)
{
	struct arena *a = arena_new(512);
	struct xel *iq, *query;
	char id[32];
	char *nv;

	free(rr->asked);
	free(rr->host);
	rr->asked = xstrdup(e->full);
	rr->host = xstrdup(e->u->host);
	rr->serial = next_serial++;
	rr->sent = mono_now(xmppd_loop);
	if (!ev_is_active(&rtimeout_w)) {
		ev_timer_set(&rtimeout_w, 1.0, 1.0);
		ev_timer_start(xmppd_loop, &rtimeout_w);
	}
	snprintf(id, sizeof(id), CAPS_REMOTE_ID_PREFIX "%" PRIu64,
	    rr->serial);
	iq = xel_new(a, "iq", NS_CLIENT);
	xel_set_attr(iq, "type", "get");
	xel_set_attr(iq, "from", e->u->host);
	xel_set_attr(iq, "to", e->full);
	xel_set_attr(iq, "id", id);
	query = xel_add(iq, "query", NS_DISCO_INFO);
	nv = xasprintf("%s#%s", e->node, rr->ver);
	xel_set_attr(query, "node", nv);
	free(nv);
	log_debug("caps: asking %s for ver %s", e->full, rr->ver);
	/* Last: a route failing at once answers through hook_iq_answer,
	 * within this call. */
	router_route(iq);
	arena_free(a);
}

/* An entry presenting ver, preferably another resource than avoid. */
struct pick {
	const char *ver, *avoid;
	struct remote *found, *fallback;
};

static void
pick_user(const char *key, void *value, void *arg)
{
	struct ruser *u = value;
	struct pick *p = arg;

	(void)key;
	for (struct remote *e = u->head; e && p->found == NULL; e = e->next) {
		if (e->ver == NULL || strcmp(e->ver, p->ver) != 0)
			continue;
		if (p->avoid == NULL || strcmp(e->full, p->avoid) != 0)
			p->found = e;
		else if (p->fallback == NULL)
			p->fallback = e;
	}
}

/* rr's query failed (an error, a wrong hash, no answer): ask another
 * resource presenting the ver, or give it up. */
static void
rresolution_failed(struct rresolution *rr)
{
	struct pick p = { rr->ver, rr->asked, NULL, NULL };

	if (++rr->tries >= CAPS_TRIES_MAX) {
		log_info("caps: remote ver %s given up after %u failed "
		    "queries", rr->ver, rr->tries);
		rresolution_free(rr);
		return;
	}
	strmap_foreach(rusers, pick_user, &p);
	if (p.found == NULL)
		p.found = p.fallback;
	if (p.found == NULL) {
		rresolution_free(rr);
		return;
	}
	rresolution_ask(rr, p.found);
}

/* Who presents ver now: (user, host, full) triples to find again. */
struct presenters {
	const char *ver;
	char **v;
	size_t n;
};

static void
collect_presenters(const char *key, void *value, void *arg)
{
	struct ruser *u = value;
	struct presenters *p = arg;

	(void)key;
	for (struct remote *e = u->head; e; e = e->next) {
		if (e->ver == NULL || strcmp(e->ver, p->ver) != 0)
			continue;
		p->v = xreallocarray(p->v, p->n + 3, sizeof(*p->v));
		p->v[p->n++] = xstrdup(u->user);
		p->v[p->n++] = xstrdup(u->host);
		p->v[p->n++] = xstrdup(e->full);
	}
}

/* c's ver is verified: every remote resource presenting it gets it. */
static void
remote_ver_known(struct caps *c)
{
	struct presenters p = { c->ver, NULL, 0 };
	struct rresolution *rr;

	if (rusers == NULL)
		return;
	/* Verified by a local session's answer: a query of ours still out
	 * for it is moot (its answer will pass unclaimed). */
	if ((rr = strmap_get(rresolving, c->ver)) != NULL)
		rresolution_free(rr);
	strmap_foreach(rusers, collect_presenters, &p);
	caps_ref(c);
	for (size_t i = 0; i < p.n; i += 3) {
		struct remote *e = remote_find(ruser_find(p.v[i], p.v[i + 1]),
		    p.v[i + 2]);

		if (e != NULL && e->ver != NULL && strcmp(e->ver, c->ver) == 0)
			remote_set_caps(e, c);
		free(p.v[i]);
		free(p.v[i + 1]);
		free(p.v[i + 2]);
	}
	free(p.v);
	caps_unref(c);
}

/* The answer to rr's query from its resource. */
static void
rresolution_answered(struct rresolution *rr, const struct xel *iq)
{
	const char *type = xel_attr(iq, "type");
	const struct xel *query = xel_child(iq, "query", NS_DISCO_INFO);
	struct caps *c;
	char *hash;

	if (type == NULL || strcmp(type, "result") != 0 || query == NULL) {
		log_debug("caps: no disco#info from %s for ver %s (%s)",
		    rr->asked, rr->ver, type ? type : "?");
		rresolution_failed(rr);
		return;
	}
	hash = disco_caps_hash(query);
	if (hash == NULL || strcmp(hash, rr->ver) != 0) {
		log_info("caps: disco#info of %s does not hash to ver %s (%s), "
		    "not trusted", rr->asked, rr->ver,
		    hash ? hash : "ill-formed");
		free(hash);
		rresolution_failed(rr);
		return;
	}
	free(hash);
	c = caps_from_query(rr->ver, query);
	log_debug("caps: ver %s verified from %s, %zu features", c->ver,
	    rr->asked, c->nfeatures);
	rresolution_free(rr);
	c = cache_adopt(c);
	caps_ref(c);
	remote_ver_known(c);
	caps_unref(c);
}

struct find_serial {
	uint64_t serial;
	struct rresolution *found;
};

static void
find_serial(const char *key, void *value, void *arg)
{
	struct rresolution *rr = value;
	struct find_serial *f = arg;

	(void)key;
	if (rr->asked != NULL && rr->serial == f->serial)
		f->found = rr;
}

/* hook_iq_answer: an answer from another server's entity to one of our
 * hosts with a "capsr-" id. */
static enum hook_result
remote_answer(struct xel *iq, const struct jid *from, const struct jid *to)
{
	const char *id = xel_attr(iq, "id");
	struct find_serial f = { 0, NULL };
	char *full, *end;

	if (rresolving == NULL || id == NULL || to->node != NULL ||
	    strncmp(id, CAPS_REMOTE_ID_PREFIX,
	        sizeof(CAPS_REMOTE_ID_PREFIX) - 1) != 0)
		return HOOK_PASS;
	f.serial = strtoull(id + sizeof(CAPS_REMOTE_ID_PREFIX) - 1, &end,
	    10);
	if (*end != '\0')
		return HOOK_PASS;
	strmap_foreach(rresolving, find_serial, &f);
	if (f.found == NULL)
		return HOOK_PASS;
	full = jid_full(from);
	if (strcmp(full, f.found->asked) != 0 ||
	    strcmp(to->domain, f.found->host) != 0) {
		free(full);
		return HOOK_PASS;   /* not from whom we asked */
	}
	free(full);
	rresolution_answered(f.found, iq);
	return HOOK_HANDLED;
}

static void
collect_late(const char *key, void *value, void *arg)
{
	struct rresolution *rr = value;
	struct presenters *p = arg;

	(void)key;
	if (mono_now(xmppd_loop) - rr->sent >= query_timeout()) {
		p->v = xreallocarray(p->v, p->n + 1, sizeof(*p->v));
		p->v[p->n++] = xstrdup(rr->ver);
	}
}

static void
rtimeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct presenters late = { NULL, NULL, 0 };

	(void)loop;
	(void)w;
	(void)revents;
	strmap_foreach(rresolving, collect_late, &late);
	for (size_t i = 0; i < late.n; i++) {
		struct rresolution *rr = strmap_get(rresolving, late.v[i]);

		if (rr != NULL) {
			log_debug("caps: no answer from %s for ver %s within "
			    "%u s", rr->asked, rr->ver,
			    xmppd_conf->limits.caps_timeout);
			rresolution_failed(rr);
		}
		free(late.v[i]);
	}
	free(late.v);
}

/* A contact's resource whose caps may be tracked for user@host. */
static struct remote *
remote_add(const char *user, const char *host, const struct jid *from,
    const char *full)
{
	struct ruser *u = ruser_find(user, host);
	struct roster *r = roster_cached(user, host);
	struct remote *e;
	char *bare;
	unsigned sub;

	if ((e = remote_find(u, full)) != NULL)
		return e;
	if (sm_find_bare(user, host) == NULL || r == NULL)
		return NULL;        /* tracked while the user is online */
	bare = jid_bare(from);
	sub = roster_state(r, bare);
	free(bare);
	if (!(sub & (SUB_FROM | SUB_TO)))
		return NULL;
	if (nremote >= CAPS_REMOTE_MAX ||
	    (u != NULL && u->n >= CAPS_REMOTE_PER_USER)) {
		log_debug("caps: %s available to %s@%s not tracked (%zu "
		    "remote resources)", full, user, host,
		    u != NULL ? u->n : nremote);
		return NULL;
	}
	if (u == NULL) {
		u = xcalloc(1, sizeof(*u));
		u->user = xstrdup(user);
		u->host = xstrdup(host);
		bare = xasprintf("%s@%s", user, host);
		strmap_put(rusers, bare, u);
		free(bare);
	}
	e = xcalloc(1, sizeof(*e));
	e->u = u;
	e->full = xstrdup(full);
	e->next = u->head;
	u->head = e;
	u->n++;
	nremote++;
	return e;
}

/* Every resource of bare (an error from the bare JID) leaves user. */
static void
remote_drop_bare(const char *user, const char *host, const char *bare)
{
	struct ruser *u = ruser_find(user, host);
	size_t len = strlen(bare);
	struct remote *e, *next;

	for (e = u ? u->head : NULL; e; e = next) {
		next = e->next;
		/* The last one frees u too, and next is then NULL. */
		if (strncmp(e->full, bare, len) == 0 && e->full[len] == '/')
			remote_free(e);
	}
}

/* hook_remote_presence. */
static void
remote_presence(const struct jid *to, const struct jid *from,
    const struct xel *pres)
{
	const char *type = xel_attr(pres, "type");
	const char *node = NULL, *ver;
	struct remote *e;
	struct caps *c;
	struct rresolution *rr;
	char *full;

	if (to->node == NULL)
		return;
	if (from->resource == NULL) {
		if (type != NULL && strcmp(type, "error") == 0) {
			char *bare = jid_bare(from);

			remote_drop_bare(to->node, to->domain, bare);
			free(bare);
		}
		return;
	}
	full = jid_full(from);
	if (type != NULL) {         /* unavailable, error: gone */
		caps_remote_drop(to->node, to->domain, full);
		free(full);
		return;
	}
	e = remote_add(to->node, to->domain, from, full);
	free(full);
	if (e == NULL)
		return;
	ver = presence_ver(pres, &node);
	if (ver == NULL) {
		free(e->ver);
		free(e->node);
		e->ver = e->node = NULL;
		if (e->caps)
			caps_unref(e->caps);
		e->caps = NULL;
		return;
	}
	if (e->ver == NULL || strcmp(e->ver, ver) != 0) {
		free(e->ver);
		free(e->node);
		e->ver = xstrdup(ver);
		e->node = xstrdup(node);
	}
	if (e->caps != NULL && strcmp(caps_ver(e->caps), ver) == 0)
		return;
	/* Until the new ver is verified e keeps what was verified before,
	 * as a local session does (the hook then sees old -> new). */
	if ((c = strmap_get(cache, ver)) != NULL) {
		remote_set_caps(e, c);
		return;
	}
	if (strmap_get(rresolving, ver) != NULL)
		return;             /* it gets the answer with the others */
	if (strmap_count(rresolving) >= CAPS_RESOLVING_MAX) {
		log_debug("caps: %d vers being resolved, remote ver %s not "
		    "resolved", CAPS_RESOLVING_MAX, ver);
		return;
	}
	rr = xcalloc(1, sizeof(*rr));
	rr->ver = xstrdup(ver);
	strmap_put(rresolving, rr->ver, rr);
	rresolution_ask(rr, e);
}

/* hook_message_in: an error from a tracked resource to the user's bare
 * JID answers what the server sent for the user (a PEP notification):
 * the resource is taken as gone until its next available presence
 * (XEP-0060's implementation note on notification-related errors: stop
 * sending to a subscriber that bounces; the route failing gives the
 * same error through router_bounce_remote). */
static enum hook_result
remote_error(struct session *from_session, struct xel *msg,
    const struct jid *to)
{
	const char *type = xel_attr(msg, "type");
	const char *f = xel_attr(msg, "from");

	if (from_session == NULL && to->node != NULL &&
	    to->resource == NULL && type != NULL &&
	    strcmp(type, "error") == 0 && f != NULL && rusers != NULL)
		caps_remote_drop(to->node, to->domain, f);
	return HOOK_PASS;
}

/* The user's last session ends: its contacts are forgotten (they are
 * probed again at its next login, RFC 6121 §4.2.2). */
static void
remote_session_end(struct session *s)
{
	struct ruser *u = ruser_find(s->jid.node, s->jid.domain);

	if (u == NULL)
		return;
	for (struct session *o = sm_find_bare(s->jid.node, s->jid.domain); o;
	    o = o->next)
		if (o != s && !o->closing)
			return;
	while ((u = ruser_find(s->jid.node, s->jid.domain)) != NULL)
		remote_free(u->head);
}

static void
ruser_drop(const char *key, void *value, void *arg)
{
	struct ruser *u = value;

	(void)key;
	(void)arg;
	while (u->head != NULL) {
		struct remote *e = u->head;

		u->head = e->next;
		if (e->caps)
			caps_unref(e->caps);
		free(e->full);
		free(e->node);
		free(e->ver);
		free(e);
	}
	free(u->user);
	free(u->host);
	free(u);
}

static void
rresolution_drop(const char *key, void *value, void *arg)
{
	struct rresolution *rr = value;

	(void)key;
	(void)arg;
	free(rr->ver);
	free(rr->asked);
	free(rr->host);
	free(rr);
}

static void
remote_init(void)
{
	rusers = strmap_new();
	rresolving = strmap_new();
	nremote = 0;
	ev_timer_init(&rtimeout_w, rtimeout_cb, 1.0, 1.0);
	hook_add_remote_presence(remote_presence);
	hook_add_iq_answer(remote_answer);
	hook_add_message_in(remote_error);
}

/* Before the cache is freed (the entries hold references). */
static void
remote_deinit(void)
{
	ev_timer_stop(xmppd_loop, &rtimeout_w);
	strmap_foreach(rusers, ruser_drop, NULL);
	strmap_foreach(rresolving, rresolution_drop, NULL);
	strmap_free(rusers);
	strmap_free(rresolving);
	rusers = rresolving = NULL;
	nremote = 0;
}

/* --- hooks ------------------------------------------------------------ */

static void
presence_changed(struct session *s, const struct xel *pres, int available)
{
	if (s->closing)
		return;
	presence_caps(s, available ? pres : NULL);
}

static void
on_session_end(struct session *s)
{
	struct caps_session *cs;
	struct resolution *r;
	char key[24];

	session_key(s->id, key, sizeof(key));
	if ((cs = strmap_get(by_session, key)) == NULL) {
		set_caps(s, NULL);
		return;
	}
	leave_waiting(cs);
	r = cs->asked;
	strmap_del(by_session, key);
	free(cs);
	if (r) {
		r->asked = NULL;        /* not a failure: ask the next one */
		out_unlink(r);
		kick(r);
	}
	set_caps(s, NULL);
}

/* The answer to a query of ours: an IQ result or error with its id,
 * addressed to the server.  Consumed here; anything else passes. */
static enum hook_result
outbound(struct session *from, struct xel *st, const struct jid *to)
{
	const char *type, *id;
	struct caps_session *cs;
	char want[32];

	if (!xel_is(st, "iq", NS_CLIENT) ||
	    (type = xel_attr(st, "type")) == NULL ||
	    (strcmp(type, "result") != 0 && strcmp(type, "error") != 0) ||
	    (id = xel_attr(st, "id")) == NULL ||
	    strncmp(id, CAPS_ID_PREFIX, sizeof(CAPS_ID_PREFIX) - 1) != 0)
		return HOOK_PASS;
	if (to && (to->node || to->resource ||
		      strcmp(to->domain, from->jid.domain) != 0))
		return HOOK_PASS;
	if ((cs = find(from->id)) == NULL || cs->asked == NULL)
		return HOOK_PASS;
	snprintf(want, sizeof(want), CAPS_ID_PREFIX "%" PRIu64,
	    cs->asked->serial);
	if (strcmp(id, want) != 0)
		return HOOK_PASS;
	answered(cs->asked, from, st);
	return HOOK_HANDLED;
}

/* Switched on by a reload: the sessions online, to resolve what they
 * present. */
struct online {
	uint64_t *ids;
	size_t n;
};

static void
collect_available(struct session *s, void *arg)
{
	struct online *o = arg;

	if (s->closing || !s->available || s->presence == NULL)
		return;
	o->ids = xreallocarray(o->ids, o->n + 1, sizeof(*o->ids));
	o->ids[o->n++] = s->id;
}

void
mod_caps_init(void)
{
	struct online o = { NULL, 0 };

	cache = strmap_new();
	resolving = strmap_new();
	by_session = strmap_new();
	hook_add_presence_changed(presence_changed);
	hook_add_session(HOOK_SESSION_END, on_session_end);
	hook_add_outbound(outbound);
	hook_add_session(HOOK_SESSION_END, remote_session_end);
	remote_init();
	ev_timer_init(&timeout_w, timeout_cb, 0.0, 3600.0);
	ev_timer_again(xmppd_loop, &timeout_w);
	ev_unref(xmppd_loop);
	running = 1;
	/* Sending may end sessions: collect first, then look up by id. */
	sm_foreach_session(collect_available, &o);
	for (size_t i = 0; i < o.n; i++) {
		struct session *s = sm_find_id(o.ids[i]);

		if (s && !s->closing && s->available)
			presence_caps(s, s->presence);
	}
	free(o.ids);
}

static void
clear_session(struct session *s, void *arg)
{
	(void)arg;
	if (s->caps)
		set_caps(s, NULL);
}

void
mod_caps_deinit(void)
{
	void **v;
	size_t n;

	if (!running)
		return;
	running = 0;
	ev_ref(xmppd_loop);
	ev_timer_stop(xmppd_loop, &timeout_w);
	/* Nothing may point into what is freed below; the hook runs for
	 * each (PEP forgets its interests). */
	sm_foreach_session(clear_session, NULL);
	v = strmap_values(resolving, &n);
	for (size_t i = 0; i < n; i++)
		resolution_free(v[i]);
	free(v);
	v = strmap_values(by_session, &n);
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	remote_deinit();
	v = strmap_values(cache, &n);
	for (size_t i = 0; i < n; i++)
		caps_free(v[i]);
	free(v);
	strmap_free(resolving);
	strmap_free(by_session);
	strmap_free(cache);
	resolving = by_session = cache = NULL;
	unused_head = unused_tail = NULL;
	out_head = out_tail = NULL;
}
