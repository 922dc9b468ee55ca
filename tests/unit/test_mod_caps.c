/*
 * Unit tests for XEP-0115 resolution of clients' caps (xmppd/mod/mod_caps.c,
 * included here to reach its cache): the feature set (sorted, distinct,
 * binary search), one query per ver whoever presents it, the answer given
 * to every waiting session, a forged answer refused and the next session
 * asked, the bounds (CAPS_CACHE_MAX with least recently used unused
 * entries evicted and entries in use kept, CAPS_RESOLVING_MAX,
 * CAPS_WAITING_MAX), caps_changed on every change, and deinit leaving no
 * session pointing at freed caps.  Sessions, the session manager and
 * session_send are doubles below; hooks.c and disco.c are the real ones.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "conf.h"
#include "unit.h"

#include "../../xmppd/mod/mod_caps.c"

struct ev_loop *xmppd_loop;
struct conf *xmppd_conf;
static struct conf conf;

#define NSESS 300
static struct session sess[NSESS];
static char fulls[NSESS][32];

/* What session_send was given: how many, and the last one's details. */
static int sent;
static uint64_t sent_to;
static char sent_id[32], sent_node[128];
static char sent_ids[NSESS][32];        /* the last id sent to each */
static int changed;             /* caps_changed hook calls */

struct session *
sm_find_id(uint64_t id)
{
	return id >= 1 && id <= NSESS ? &sess[id - 1] : NULL;
}

void
sm_foreach_session(void (*fn)(struct session *, void *), void *arg)
{
	for (size_t i = 0; i < NSESS; i++)
		fn(&sess[i], arg);
}

void
session_send(struct session *s, const struct xel *st)
{
	const struct xel *query = xel_child(st, "query", NS_DISCO_INFO);

	sent++;
	sent_to = s->id;
	snprintf(sent_id, sizeof(sent_id), "%s", xel_attr(st, "id"));
	snprintf(sent_ids[s->id - 1], sizeof(sent_ids[0]), "%s", sent_id);
	snprintf(sent_node, sizeof(sent_node), "%s",
	    query ? xel_attr(query, "node") : "");
}

const char *
session_log_kind(const struct session *s)
{
	return "test";
}

uint64_t
session_log_id(const struct session *s)
{
	return s->id;
}

const char *
session_log_addr(const struct session *s)
{
	return "-";
}

/* Contacts on other servers: the user online (sm_find_bare), its
 * roster (every contact subscribed but "stranger@..."), and what
 * router_route was given. */
static struct session online_user;
static int user_online;
static char roster_dummy;
static int routed;
static char routed_to[128], routed_id[32], routed_node[160];
static int rchanged;            /* remote_caps_changed hook calls */
static char rchanged_full[128];

struct session *
sm_find_bare(const char *user, const char *host)
{
	return user_online && strcmp(user, "alice") == 0 ? &online_user :
	    NULL;
}

struct roster *
roster_cached(const char *user, const char *host)
{
	return (struct roster *)(void *)&roster_dummy;
}

unsigned
roster_state(const struct roster *r, const char *contact)
{
	return strncmp(contact, "stranger@", 9) == 0 ? 0 : SUB_BOTH;
}

void
router_route(struct xel *st)
{
	const struct xel *query = xel_child(st, "query", NS_DISCO_INFO);

	routed++;
	snprintf(routed_to, sizeof(routed_to), "%s", xel_attr(st, "to"));
	snprintf(routed_id, sizeof(routed_id), "%s", xel_attr(st, "id"));
	snprintf(routed_node, sizeof(routed_node), "%s",
	    query ? xel_attr(query, "node") : "");
}

static void
on_changed(struct session *s, const struct caps *old)
{
	changed++;
}

static void
on_rchanged(const char *user, const char *host, const char *contact,
    const struct caps *now, const struct caps *old)
{
	rchanged++;
	snprintf(rchanged_full, sizeof(rchanged_full), "%s", contact);
}

/* A disco#info query with n features urn:t:TAG:k (k < n), each listed
 * twice when dup. */
static struct xel *
make_query(const char *tag, int n, int dup)
{
	struct xel *query = xel_new(arena_new(1024), "query", NS_DISCO_INFO);
	struct xel *id = xel_add(query, "identity", NS_DISCO_INFO);
	char var[64];

	xel_set_attr(id, "category", "client");
	xel_set_attr(id, "type", "pc");
	for (int k = 0; k < n; k++) {
		snprintf(var, sizeof(var), "urn:t:%s:%d", tag, k);
		xel_set_attr(xel_add(query, "feature", NS_DISCO_INFO), "var",
		    var);
		if (dup)
			xel_set_attr(xel_add(query, "feature", NS_DISCO_INFO),
			    "var", var);
	}
	return query;
}

static char *
ver_of(const char *tag, int n)
{
	struct xel *query = make_query(tag, n, 0);
	char *ver = disco_caps_hash(query);

	arena_free(query->arena);
	return ver;
}

/* Session i (1-based id) sends an available presence with caps ver. */
static void
present(int i, const char *ver)
{
	struct session *s = &sess[i - 1];
	struct xel *p = xel_new(arena_new(512), "presence", NS_CLIENT);
	struct xel *c;

	if (s->presence)
		arena_free(s->presence->arena);
	if (ver) {
		c = xel_add(p, "c", NS_CAPS);
		xel_set_attr(c, "hash", "sha-1");
		xel_set_attr(c, "node", "https://client.example");
		xel_set_attr(c, "ver", ver);
	}
	s->presence = p;
	s->available = 1;
	hook_run_presence_changed(s, p, 1);
}

static void
unavailable(int i)
{
	struct session *s = &sess[i - 1];

	if (s->presence)
		arena_free(s->presence->arena);
	s->presence = NULL;
	s->available = 0;
	hook_run_presence_changed(s, NULL, 0);
}

/* Session i answers the last query with tag's n features. */
static enum hook_result
answer(int i, const char *id, const char *tag, int n, int dup)
{
	struct xel *iq = xel_new(arena_new(1024), "iq", NS_CLIENT);
	struct xel *query = make_query(tag, n, dup);
	enum hook_result r;

	xel_set_attr(iq, "type", "result");
	xel_set_attr(iq, "id", id);
	xel_append_copy(iq, query);
	arena_free(query->arena);
	r = hook_run_outbound(&sess[i - 1], iq, NULL);
	arena_free(iq->arena);
	return r;
}

static void
test_feature_set(void)
{
	struct xel *query = make_query("fs", 3, 1);
	struct caps *c;

	CHECK(caps_has(NULL, "x") == 0);
	CHECK(caps_count(NULL) == 0);
	CHECK(caps_ver(NULL) == NULL);
	xel_set_attr(xel_add(query, "feature", NS_DISCO_INFO), "var",
	    "a:first");
	c = caps_from_query("VER", query);
	CHECK(caps_count(c) == 4);
	CHECK_STR(caps_feature(c, 0), "a:first");
	CHECK_STR(caps_feature(c, 1), "urn:t:fs:0");
	CHECK_STR(caps_feature(c, 3), "urn:t:fs:2");
	CHECK(caps_feature(c, 4) == NULL);
	CHECK(caps_has(c, "urn:t:fs:1"));
	CHECK(caps_has(c, "a:first"));
	CHECK(!caps_has(c, "urn:t:fs:3"));
	CHECK(!caps_has(c, "urn:t:fs"));
	CHECK_STR(caps_ver(c), "VER");
	caps_free(c);
	arena_free(query->arena);
}

static void
test_resolve_once(void)
{
	char *v = ver_of("one", 5);
	char want[128], id[32];

	sent = changed = 0;
	present(1, v);
	CHECK(sent == 1 && sent_to == 1);
	snprintf(want, sizeof(want), "https://client.example#%s", v);
	CHECK_STR(sent_node, want);
	CHECK(strncmp(sent_id, "caps-", 5) == 0);
	snprintf(id, sizeof(id), "%s", sent_id);
	present(2, v);
	present(1, v);              /* again: still one query */
	CHECK(sent == 1);
	CHECK(sess[0].caps == NULL && sess[1].caps == NULL);
	/* not the awaited id: passes */
	CHECK(answer(1, "caps-999999", "one", 5, 0) == HOOK_PASS);
	CHECK(answer(2, id, "one", 5, 0) == HOOK_PASS);   /* not asked */
	CHECK(answer(1, id, "one", 5, 0) == HOOK_HANDLED);
	CHECK(sess[0].caps != NULL && sess[0].caps == sess[1].caps);
	CHECK(caps_has(sess[0].caps, "urn:t:one:4"));
	CHECK(caps_count(sess[1].caps) == 5);
	CHECK(changed == 2);
	present(3, v);              /* cached: at once, no query */
	CHECK(sent == 1 && sess[2].caps == sess[0].caps && changed == 3);
	CHECK(((struct caps *)sess[0].caps)->refs == 3);
	present(3, NULL);           /* presence without caps */
	CHECK(sess[2].caps == NULL && changed == 4);
	unavailable(2);
	CHECK(sess[1].caps == NULL && changed == 5);
	CHECK(((struct caps *)sess[0].caps)->refs == 1);
	unavailable(1);
	CHECK(strmap_get(cache, v) != NULL && unused_tail != NULL &&
	    strcmp(unused_tail->ver, v) == 0);
	free(v);
}

static void
test_forged(void)
{
	char *v = ver_of("real", 3);
	char id[32];

	sent = changed = 0;
	present(4, v);
	present(5, v);
	CHECK(sent == 1 && sent_to == 4);
	snprintf(id, sizeof(id), "%s", sent_id);
	CHECK(answer(4, id, "fake", 3, 0) == HOOK_HANDLED);
	CHECK(sess[3].caps == NULL && strmap_get(cache, v) == NULL);
	CHECK(sent == 2 && sent_to == 5);           /* the next one */
	snprintf(id, sizeof(id), "%s", sent_id);
	CHECK(answer(5, id, "real", 3, 1) == HOOK_HANDLED); /* ill-formed */
	CHECK(sess[4].caps == NULL && strmap_get(cache, v) == NULL);
	CHECK(sent == 2);                           /* nobody left */
	CHECK(strmap_get(resolving, v) == NULL);
	present(6, v);                              /* starts again */
	CHECK(sent == 3 && sent_to == 6);
	snprintf(id, sizeof(id), "%s", sent_id);
	CHECK(answer(6, id, "real", 3, 0) == HOOK_HANDLED);
	CHECK(caps_count(sess[5].caps) == 3);
	/* the liars keep nothing */
	CHECK(sess[3].caps == NULL && sess[4].caps == NULL);
	unavailable(4);
	unavailable(5);
	unavailable(6);
	free(v);
}

static void
test_waiting_bound(void)
{
	char *v = ver_of("many", 2);
	int n = CAPS_WAITING_MAX + 5;

	sent = 0;
	for (int i = 10; i < 10 + n; i++)
		present(i, v);
	CHECK(sent == 1 && sent_to == 10);
	CHECK(answer(10, sent_id, "many", 2, 0) == HOOK_HANDLED);
	/* the one asked and CAPS_WAITING_MAX waiting */
	for (int i = 10; i < 10 + n; i++)
		CHECK((sess[i - 1].caps != NULL) ==
		    (i <= 10 + CAPS_WAITING_MAX));
	for (int i = 10; i < 10 + n; i++)
		unavailable(i);
	free(v);
}

static void
test_resolving_bound(void)
{
	char tag[16];

	sent = 0;
	for (int i = 1; i <= CAPS_RESOLVING_MAX + 10; i++) {
		char *v;

		snprintf(tag, sizeof(tag), "r%d", i);
		v = ver_of(tag, 1);
		present(i, v);
		free(v);
	}
	CHECK(sent == CAPS_RESOLVING_MAX);
	CHECK(strmap_count(resolving) == CAPS_RESOLVING_MAX);
	for (int i = 1; i <= CAPS_RESOLVING_MAX + 10; i++)
		unavailable(i);
	/* a query out keeps its resolution until answered (or timed out);
	 * the answer of a session gone unavailable is cached all the same */
	CHECK(strmap_count(resolving) == CAPS_RESOLVING_MAX);
	for (int i = 1; i <= CAPS_RESOLVING_MAX; i++) {
		snprintf(tag, sizeof(tag), "r%d", i);
		CHECK(answer(i, sent_ids[i - 1], tag, 1, 0) == HOOK_HANDLED);
		CHECK(sess[i - 1].caps == NULL);
	}
	CHECK(strmap_count(resolving) == 0);
	snprintf(tag, sizeof(tag), "r%d", CAPS_RESOLVING_MAX);
	{
		char *v = ver_of(tag, 1);

		CHECK(strmap_get(cache, v) != NULL);
		free(v);
	}
}

static void
test_cache_bound(void)
{
	char tag[16], *first, *kept;
	int n = CAPS_CACHE_MAX + 10;

	/* session 299 keeps using the first ver: never evicted */
	first = ver_of("c0", 1);
	present(299, first);
	CHECK(answer(299, sent_id, "c0", 1, 0) == HOOK_HANDLED);
	kept = ver_of("c1", 1);
	for (int i = 1; i < n; i++) {
		char *v;

		snprintf(tag, sizeof(tag), "c%d", i);
		v = ver_of(tag, 1);
		present(300, v);
		/* Not cached yet: the server asked (session 300 keeps its
		 * earlier caps until the new ver is verified). */
		if (sess[299].caps == NULL ||
		    strcmp(caps_ver(sess[299].caps), v) != 0)
			CHECK(answer(300, sent_id, tag, 1, 0) ==
			    HOOK_HANDLED);
		CHECK(sess[299].caps != NULL);
		free(v);
	}
	CHECK(strmap_count(cache) == CAPS_CACHE_MAX);
	CHECK(strmap_get(cache, first) != NULL);    /* in use */
	CHECK(strmap_get(cache, kept) == NULL);     /* least recently used */
	free(kept);
	snprintf(tag, sizeof(tag), "c%d", n - 2);
	kept = ver_of(tag, 1);
	CHECK(strmap_get(cache, kept) != NULL);
	free(kept);
	free(first);
}

static void
test_deinit(void)
{
	changed = 0;
	CHECK(sess[298].caps != NULL && sess[299].caps != NULL);
	mod_caps_deinit();
	for (int i = 0; i < NSESS; i++)
		CHECK(sess[i].caps == NULL);
	CHECK(changed == 2);
	/* switched on again with sessions online: they are asked */
	sent = 0;
	mod_caps_init();
	CHECK(sent == 2);
	mod_caps_deinit();
}

/* Presence from full (another server's) to alice@localhost: type NULL
 * with caps ver (none when NULL), or a type. */
static void
remote_pres(const char *full, const char *ver, const char *type)
{
	struct xel *p = xel_new(arena_new(512), "presence", NS_CLIENT);
	struct jid to = { 0 }, from = { 0 };
	struct xel *c;

	if (type)
		xel_set_attr(p, "type", type);
	if (ver) {
		c = xel_add(p, "c", NS_CAPS);
		xel_set_attr(c, "hash", "sha-1");
		xel_set_attr(c, "node", "urn:remote");
		xel_set_attr(c, "ver", ver);
	}
	CHECK(jid_parse(&to, "alice@localhost") == 0);
	CHECK(jid_parse(&from, full) == 0);
	hook_run_remote_presence(&to, &from, p);
	jid_free(&to);
	jid_free(&from);
	arena_free(p->arena);
}

/* full answers the disco#info query whose id is id with tag's n
 * features (type "error" when n < 0), addressed to localhost. */
static enum hook_result
remote_reply(const char *full, const char *id, const char *tag, int n)
{
	struct xel *iq = xel_new(arena_new(1024), "iq", NS_CLIENT);
	struct jid to = { 0 }, from = { 0 };
	enum hook_result r;

	xel_set_attr(iq, "type", n < 0 ? "error" : "result");
	xel_set_attr(iq, "id", id);
	if (n >= 0) {
		struct xel *query = make_query(tag, n, 0);

		xel_append_copy(iq, query);
		arena_free(query->arena);
	}
	CHECK(jid_parse(&to, "localhost") == 0);
	CHECK(jid_parse(&from, full) == 0);
	r = hook_run_iq_answer(iq, &from, &to);
	jid_free(&to);
	jid_free(&from);
	arena_free(iq->arena);
	return r;
}

static size_t
remote_count(void)
{
	struct ruser *u = ruser_find("alice", "localhost");

	return u ? u->n : 0;
}

static void
test_remote(void)
{
	char *v = ver_of("remote", 4);
	char want[160], id[32], full[64];
	struct xel *msg;
	struct jid to = { 0 };

	user_online = 1;
	online_user.jid.node = (char *)"alice";
	online_user.jid.domain = (char *)"localhost";
	online_user.bare = (char *)"alice@localhost";
	routed = rchanged = 0;
	/* an unknown ver: asked of the resource itself, from our host */
	remote_pres("bob@remote.example/one", v, NULL);
	CHECK(remote_count() == 1 && nremote == 1);
	CHECK(routed == 1);
	CHECK_STR(routed_to, "bob@remote.example/one");
	snprintf(want, sizeof(want), "urn:remote#%s", v);
	CHECK_STR(routed_node, want);
	CHECK(strncmp(routed_id, "capsr-", 6) == 0);
	snprintf(id, sizeof(id), "%s", routed_id);
	/* another resource with it waits on the same query */
	remote_pres("bob@remote.example/two", v, NULL);
	CHECK(routed == 1 && remote_count() == 2);
	/* a contact without a subscription is not tracked */
	remote_pres("stranger@remote.example/x", v, NULL);
	CHECK(remote_count() == 2 && routed == 1);
	/* an answer from someone not asked passes */
	CHECK(remote_reply("bob@remote.example/two", id, "remote", 4) ==
	    HOOK_PASS);
	/* a forged answer: not cached, the other resource asked */
	CHECK(remote_reply("bob@remote.example/one", id, "remote", 5) ==
	    HOOK_HANDLED);
	CHECK(strmap_get(cache, v) == NULL && rchanged == 0);
	CHECK(routed == 2);
	CHECK_STR(routed_to, "bob@remote.example/two");
	snprintf(id, sizeof(id), "%s", routed_id);
	/* the true one: both resources get the caps, the hook told */
	CHECK(remote_reply("bob@remote.example/two", id, "remote", 4) ==
	    HOOK_HANDLED);
	CHECK(strmap_get(cache, v) != NULL && rchanged == 2);
	CHECK(strmap_count(rresolving) == 0);
	/* cached now: a third resource has them at once */
	remote_pres("bob@remote.example/three", v, NULL);
	CHECK(routed == 2 && rchanged == 3);
	CHECK_STR(rchanged_full, "bob@remote.example/three");
	/* the same presence again: nothing */
	remote_pres("bob@remote.example/three", v, NULL);
	CHECK(rchanged == 3);
	/* unavailable, an error presence: gone */
	remote_pres("bob@remote.example/three", NULL, "unavailable");
	CHECK(remote_count() == 2);
	remote_pres("bob@remote.example/one", NULL, "error");
	CHECK(remote_count() == 1);
	/* an error message to the bare JID from the last: gone, and the
	 * user's record with it */
	msg = xel_new(arena_new(256), "message", NS_CLIENT);
	xel_set_attr(msg, "type", "error");
	xel_set_attr(msg, "from", "bob@remote.example/two");
	CHECK(jid_parse(&to, "alice@localhost") == 0);
	CHECK(hook_run_message_in(NULL, msg, &to) == HOOK_PASS);
	jid_free(&to);
	arena_free(msg->arena);
	CHECK(remote_count() == 0 && nremote == 0);
	CHECK(ruser_find("alice", "localhost") == NULL);
	/* bounded per user */
	for (int i = 0; i < CAPS_REMOTE_PER_USER + 5; i++) {
		snprintf(full, sizeof(full), "bob@remote.example/r%d", i);
		remote_pres(full, NULL, NULL);
	}
	CHECK(remote_count() == CAPS_REMOTE_PER_USER);
	CHECK(nremote == CAPS_REMOTE_PER_USER);
	/* an error presence from the bare JID: all its resources go */
	remote_pres("bob@remote.example", NULL, "error");
	CHECK(nremote == 0);
	/* a query that fails CAPS_TRIES_MAX times gives the ver up */
	remote_pres("carol@remote.example/c", v + 1 /* unknown */, NULL);
	CHECK(strmap_count(rresolving) == 0);   /* not 28 chars: no caps */
	{
		char *w = ver_of("other", 2);

		routed = 0;
		remote_pres("carol@remote.example/c", w, NULL);
		for (int i = 0; i < CAPS_TRIES_MAX; i++) {
			CHECK(routed == i + 1);
			snprintf(id, sizeof(id), "%s", routed_id);
			CHECK(remote_reply("carol@remote.example/c", id, "x",
			    -1) == HOOK_HANDLED);
		}
		CHECK(strmap_count(rresolving) == 0 && routed ==
		    CAPS_TRIES_MAX);
		free(w);
	}
	/* a ver asked of a remote resource and verified meanwhile by a
	 * local session's answer: the remote query is dropped, the
	 * resource has the caps */
	{
		char *w = ver_of("both", 3);

		routed = rchanged = 0;
		remote_pres("bob@remote.example/w", w, NULL);
		CHECK(routed == 1 && strmap_count(rresolving) == 1);
		present(280, w);
		CHECK(answer(280, sent_id, "both", 3, 0) == HOOK_HANDLED);
		CHECK(strmap_count(rresolving) == 0 && rchanged == 1);
		CHECK_STR(rchanged_full, "bob@remote.example/w");
		unavailable(280);
		remote_pres("bob@remote.example/w", NULL, "unavailable");
		free(w);
	}
	/* tracked only while the user is online; its last session's end
	 * forgets them */
	CHECK(remote_count() == 1);
	remote_session_end(&online_user);
	CHECK(remote_count() == 0 && nremote == 0);
	user_online = 0;
	remote_pres("bob@remote.example/one", v, NULL);
	CHECK(nremote == 0);
	free(v);
}

int
main(void)
{
	xmppd_loop = ev_default_loop(0);
	conf.limits.caps_timeout = 30;
	xmppd_conf = &conf;
	for (int i = 0; i < NSESS; i++) {
		sess[i].id = (uint64_t)i + 1;
		snprintf(fulls[i], sizeof(fulls[i]), "u%d@localhost/r", i + 1);
		sess[i].full = fulls[i];
		sess[i].jid.domain = (char *)"localhost";
	}
	hook_add_caps_changed(on_changed);
	mod_caps_init();
	test_feature_set();
	test_resolve_once();
	test_forged();
	test_waiting_bound();
	test_resolving_bound();
	test_cache_bound();
	hook_add_remote_caps_changed(on_rchanged);
	test_remote();
	test_deinit();
	for (int i = 0; i < NSESS; i++)
		if (sess[i].presence)
			arena_free(sess[i].presence->arena);
	return UNIT_DONE("mod_caps");
}
