/*
 * Message Archive Management (XEP-0313, urn:xmpp:mam:2 and #extended)
 * with Unique and Stable Stanza IDs (XEP-0359) and archiving preferences
 * (XEP-0441): archives 1:1 messages in both directions per user, answers
 * archive queries, preference and metadata IQs, and expires old rows.
 * The storage jobs are in mam_archive.c (mam.h).
 *
 * Archiving happens on the message hooks (hooks.h):
 *  - message_out (a local session sends): client-supplied <stanza-id/>s
 *    with one of our 'by's are removed (XEP-0359 §3 rule 3 as of 0.6),
 *    then the message goes to the sender's archive.  The sender's id is
 *    never put on the routed message (XEP-0313 §3.5); mam_sent_id() gives
 *    it to XEP-0280 sent carbons.
 *  - message_in (a message reaches a local user, once per message and
 *    user, before delivery or offline storage): the same stripping, then
 *    the message goes to the recipient's archive and gets
 *    <stanza-id by='user@host' id='…'/>, so the delivered copies, the
 *    carbons and the offline copy all carry the archive id, and an
 *    offline message is archived exactly once.  A message to oneself is
 *    archived once, as sent, and carries that id.
 *
 * Which messages (XEP-0313 §6.1.1, XEP-0334): type chat or normal (or
 * none) with a <body/>, an encrypted payload (OMEMO, OpenPGP) or a
 * <store/> hint, unless they carry <no-store/> or <no-permanent-store/>.
 *
 * Preferences are cached for every user who has stored any (loaded in
 * chunks at start); others archive everything.  The decision is made on
 * the loop thread so that a stanza-id is added only to what is archived.
 * Two cases cannot be decided there and are decided by the storage job
 * instead, the id being added beforehand: preferences not loaded yet
 * (the first moments after start), and default='roster' for a user whose
 * roster is not in memory (offline).  In those cases the stanza-id may
 * name a message the preferences then kept out of the archive.  The
 * block list is checked in storage (a message the recipient blocks is
 * not archived for them, §6.1; it is not delivered either).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "buf.h"
#include "conf.h"
#include "core/disco.h"
#include "core/hooks.h"
#include "core/iq.h"
#include "jid.h"
#include "log.h"
#include "mod/mam.h"
#include "store/mam.h"
#include "core/roster.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/stanza.h"
#include "strmap.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_DELAY "urn:xmpp:delay"  /* XEP-0203 */
#define NS_HINTS "urn:xmpp:hints"  /* XEP-0334 */
#define NS_XDATA_VALIDATE "http://jabber.org/protocol/xdata-validate"
#define NS_OMEMO "eu.siacs.conversations.axolotl"
#define NS_OX "urn:xmpp:openpgp:0"
#define NS_PGP "jabber:x:encrypted"
#define NS_RETRACT "urn:xmpp:message-retract:1" /* XEP-0424 */

#define ROWS_PER_JOB 50          /* result messages read per job */
#define RETRY_SECONDS 0.1        /* waiting for a full output queue */
#define PREFS_JIDS_MAX 1000      /* JIDs per preference list */
#define EXPIRE_BATCH 1000        /* rows deleted per job */

void mod_mam_init(void);
void mod_mam_deinit(void);

/* Preferences of users who stored any: bare JID -> struct mam_prefs;
 * NULL while the module is off. */
static struct strmap *prefs_cache;
static int prefs_loaded;
static const struct mam_prefs prefs_default = {MAM_MODE_ALWAYS, NULL,
    NULL, 0, 0};

/* The message being sent right now and its id in the sender's archive. */
static struct {
	const struct xel *msg;
	int archived;
	char id[MAM_ID_LEN + 1];
} sent;

/* IQs waiting for storage: queries and preference/metadata requests. */
struct query {
	struct query *next;
	uint64_t serial, session;
	char *bare;              /* the archive's owner */
	struct xel *iq;          /* a copy of the request */
	char *queryid;
	int flip;                /* XEP-0313 §4.3.4 */
	struct mam_page *page;
	uint64_t first, last;    /* chronological first and last ids */
	size_t sent;             /* positions read so far */
	ev_timer retry;
	struct mam_prefs prefs;  /* preferences being set */
};

static struct query *queries;
static uint64_t next_serial = 1;

static struct {
	ev_timer timer;
	int running;
	int64_t cutoff;
	size_t deleted;
} expiry;

/* Small helpers. */

static void
reply(struct session *s, struct xel *r)
{
	if (r == NULL)
		return;
	session_send(s, r);
	arena_free(r->arena);
}

static void
reply_error(struct session *s, const struct xel *iq, const char *cond,
    const char *text)
{
	reply(s, stanza_error(iq, NULL, cond, text));
}

static int
local_domain(const char *domain)
{
	return conf_host_find(xmppd_conf, domain) != NULL;
}

static int64_t
now_ms(void)
{
	return (int64_t)(ev_time() * 1000.0);
}

/* Queries. */

static struct query *
query_new(struct session *s, const struct xel *iq)
{
	struct query *q = xcalloc(1, sizeof(*q));

	q->serial = next_serial++;
	q->session = s->id;
	q->bare = xstrdup(s->bare);
	q->iq = xel_copy(arena_new(512), iq);
	q->next = queries;
	queries = q;
	return q;
}

static struct query *
query_find(uint64_t serial)
{
	for (struct query *q = queries; q != NULL; q = q->next)
		if (q->serial == serial)
			return q;
	return NULL;
}

static void
query_free(struct query *q)
{
	struct query **pp;

	for (pp = &queries; *pp != NULL; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	ev_timer_stop(xmppd_loop, &q->retry);
	arena_free(q->iq->arena);
	free(q->bare);
	free(q->queryid);
	mam_page_free(q->page);
	mam_prefs_free(&q->prefs);
	free(q);
}

/* The session of a storage answer, or NULL (and q freed) if it is
 * gone. */
static struct session *
query_session(struct query *q)
{
	struct session *s = sm_find_id(q->session);

	if (s == NULL || s->closing || s->t == NULL) {
		query_free(q);
		return NULL;
	}
	return s;
}

/* Stanza checks. */

/* A 'by' that names one of our archives or domains (a local bare JID
 * or a served domain). */
static int
ours(const char *by)
{
	struct jid j = {0};
	int r = 0;

	if (by != NULL && jid_parse(&j, by) == 0)
		r = j.resource == NULL && local_domain(j.domain);
	jid_free(&j);
	return r;
}

/*
 * XEP-0359 §3 (rule 3 as of version 0.6): a <stanza-id/> claiming to be
 * from us that we did not add is removed, so that nobody can forge an
 * archive id.  Others' stanza-ids and <origin-id/> pass untouched
 * (rule 1).
 */
static void
strip_own_ids(struct xel *msg)
{
	struct xel *c, *next;

	for (c = msg->children; c != NULL; c = next) {
		next = c->next;
		if (xel_is(c, "stanza-id", NS_SID) && ours(xel_attr(c, "by")))
			xel_remove(c);
	}
}

static int
type_archivable(const struct xel *msg)
{
	const char *type = xel_attr(msg, "type");

	return type == NULL || strcmp(type, "chat") == 0 ||
	       strcmp(type, "normal") == 0;
}

/* XEP-0313 §6.1.1 with the hints of XEP-0334 §4. */
static int
archivable(const struct xel *msg)
{
	if (!type_archivable(msg) ||
	    xel_child(msg, "no-store", NS_HINTS) != NULL ||
	    xel_child(msg, "no-permanent-store", NS_HINTS) != NULL ||
	    xel_child(msg, "no-permanent-storage", NS_HINTS) != NULL)
		return 0;
	return xel_child(msg, "body", NS_CLIENT) != NULL ||
	       xel_child(msg, "store", NS_HINTS) != NULL ||
	       xel_child(msg, "encrypted", NS_OMEMO) != NULL ||
	       xel_child(msg, "openpgp", NS_OX) != NULL ||
	       xel_child(msg, "x", NS_PGP) != NULL;
}

/* Archiving. */

/*
 * Whether the owner's archive takes a message with the other party
 * full/bare: 0 no, 1 yes; *check_prefs and *check_roster ask the storage
 * job to decide what cannot be decided here.
 */
static int
decide(const struct jid *owner, const char *owner_bare, const char *full,
    const char *bare, int *check_prefs, int *check_roster)
{
	const struct mam_prefs *p;
	const struct roster_item *it;
	struct roster *r;

	*check_prefs = *check_roster = 0;
	if (!prefs_loaded) {
		*check_prefs = 1;
		return 1;
	}
	if ((p = strmap_get(prefs_cache, owner_bare)) == NULL)
		p = &prefs_default;
	switch (mam_prefs_decide(p, full, bare)) {
	case MAM_SKIP:
		return 0;
	case MAM_STORE:
		return 1;
	case MAM_IF_ROSTER:
		break;
	}
	if (strcmp(bare, owner_bare) == 0)
		return 1;
	if ((r = roster_cached(owner->node, owner->domain)) == NULL) {
		*check_roster = 1;
		return 1;
	}
	it = roster_find(r, bare);
	return it != NULL && (it->sub & SUB_ITEM) != 0;
}

/* The message serialized for storage, with xmlns='jabber:client' on the
 * root so that it can be copied into a <forwarded/> as it is. */
static char *
serialize(const struct xel *msg, size_t *len)
{
	struct buf b = BUF_INIT;
	char *s;

	xel_serialize(msg, &b, "");
	*len = buf_avail(&b);
	s = buf_strdup(&b);
	buf_free(&b);
	return s;
}

/* The forms of the sender's JID a block list item can match (XEP-0191
 * §4): full, bare, domain/resource, domain; NULL where one does not
 * apply.  Free with free_forms(). */
static void
sender_forms(const struct jid *j, char *forms[4])
{
	memset(forms, 0, 4 * sizeof(*forms));
	if (j->node != NULL) {
		forms[1] = jid_bare(j);
		if (j->resource != NULL)
			forms[0] = jid_full(j);
	}
	forms[3] = xstrdup(j->domain);
	if (j->resource != NULL)
		forms[2] = xasprintf("%s/%s", j->domain, j->resource);
}

static void
free_forms(char *forms[4])
{
	for (int i = 0; i < 4; i++)
		free(forms[i]);
}

/* Queue msg for the archive of owner under the public id. */
static void
archive(const struct jid *owner, uint64_t id, int outgoing, const char *full,
    const char *bare, const struct xel *msg, int check_prefs,
    int check_roster, char *const forms[4])
{
	struct mam_entry e;
	char *text;

	memset(&e, 0, sizeof(e));
	e.user = owner->node;
	e.host = owner->domain;
	e.id = id;
	e.stamp_ms = now_ms();
	e.outgoing = outgoing;
	e.with_full = full;
	e.with_bare = bare;
	e.check_prefs = check_prefs;
	e.check_roster = check_roster;
	for (int i = 0; forms != NULL && i < 4; i++)
		e.blocked_forms[i] = forms[i];
	text = serialize(msg, &e.len);
	e.stanza = text;
	mam_archive_store(&e);
	free(text);
}

static void
add_stanza_id(struct xel *msg, const char *by, const char *id)
{
	struct xel *sid = xel_add(msg, "stanza-id", NS_SID);

	xel_set_attr(sid, "by", by);
	xel_set_attr(sid, "id", id);
}

static enum hook_result
mam_message_out(struct session *from, struct xel *msg, const struct jid *to)
{
	char *full, *bare;
	int check_prefs, check_roster;

	sent.msg = msg;
	sent.archived = 0;
	strip_own_ids(msg);
	/* Until server-to-server exists, a message to another domain (or
	 * to a domain itself) is bounced, so it is not archived. */
	if (to->node == NULL || !local_domain(to->domain) || !archivable(msg))
		return HOOK_PASS;
	full = jid_full(to);
	bare = jid_bare(to);
	if (decide(&from->jid, from->bare, full, bare, &check_prefs,
	        &check_roster)) {
		uint64_t id = mam_id_new();

		archive(&from->jid, id, 1, full, bare, msg, check_prefs,
		    check_roster, NULL);
		mam_id_format(id, sent.id);
		sent.archived = 1;
	}
	free(full);
	free(bare);
	return HOOK_PASS;
}

static enum hook_result
mam_message_in(struct session *from_session, struct xel *msg,
    const struct jid *to)
{
	const char *from = xel_attr(msg, "from");
	struct jid owner = {0}, sender = {0};
	char *owner_bare = NULL, *full = NULL, *bare = NULL, *forms[4];
	char idstr[MAM_ID_LEN + 1];
	uint64_t id;
	int check_prefs, check_roster;

	strip_own_ids(msg);
	if (to->node == NULL || !archivable(msg) || from == NULL ||
	    jid_parse(&sender, from) < 0)
		goto done;
	owner.node = to->node;
	owner.domain = to->domain;
	owner_bare = jid_bare(&owner);
	if (from_session != NULL &&
	    strcmp(from_session->bare, owner_bare) == 0) {
		/* To oneself: archived once, as sent. */
		if (sent.msg == msg && sent.archived)
			add_stanza_id(msg, owner_bare, sent.id);
		goto done;
	}
	full = jid_full(&sender);
	bare = jid_bare(&sender);
	if (!decide(&owner, owner_bare, full, bare, &check_prefs,
	        &check_roster))
		goto done;
	sender_forms(&sender, forms);
	/* The id goes on before the message is serialized: the archived
	 * copy is the one the user receives. */
	id = mam_id_new();
	mam_id_format(id, idstr);
	add_stanza_id(msg, owner_bare, idstr);
	archive(&owner, id, 0, full, bare, msg, check_prefs, check_roster,
	    forms);
	free_forms(forms);
done:
	jid_free(&sender);
	free(owner_bare);
	free(full);
	free(bare);
	return HOOK_PASS;
}

const char *
mam_sent_id(const struct xel *msg)
{
	return sent.msg == msg && sent.archived ? sent.id : NULL;
}

/* Access: an archive is its owner's alone (XEP-0313 §8.1). */

/*
 * 1 if the IQ addresses the sender's own archive (no 'to', or its own
 * bare JID).  Otherwise 0 after answering <forbidden/> (another user's
 * archive), or -1 for an IQ to the server, which has no archive (the
 * caller passes it on: <service-unavailable/>).
 */
static int
own_archive(struct session *s, struct xel *iq, enum iq_target target)
{
	const char *to = xel_attr(iq, "to");
	struct jid j = {0};
	int own;

	if (target != IQ_TO_BARE)
		return -1;
	if (to == NULL)
		return 1;
	own = jid_parse(&j, to) == 0 && jid_eq_bare(&j, &s->jid);
	jid_free(&j);
	if (!own)
		reply_error(s, iq, "forbidden", NULL);
	return own;
}

/* Query form (§4.1.5). */

static void
add_field(struct xel *x, const char *type, const char *var, const char *value)
{
	struct xel *f = xel_add(x, "field", NS_XDATA);

	xel_set_attr(f, "type", type);
	xel_set_attr(f, "var", var);
	if (value != NULL)
		xel_text_set(xel_add(f, "value", NS_XDATA), value);
}

static void
send_form(struct session *s, struct xel *iq)
{
	struct xel *r = stanza_iq_result(iq);
	struct xel *x, *f, *v;

	x = xel_add(xel_add(r, "query", NS_MAM), "x", NS_XDATA);
	xel_set_attr(x, "type", "form");
	add_field(x, "hidden", "FORM_TYPE", NS_MAM);
	add_field(x, "jid-single", "with", NULL);
	add_field(x, "text-single", "start", NULL);
	add_field(x, "text-single", "end", NULL);
	add_field(x, "text-single", "before-id", NULL);
	add_field(x, "text-single", "after-id", NULL);
	add_field(x, "list-multi", "ids", NULL);
	/* §4.1.5: the list of ids is open (XEP-0122). */
	f = x->last;
	v = xel_add(f, "validate", NS_XDATA_VALIDATE);
	xel_set_attr(v, "datatype", "xs:string");
	xel_add(v, "open", NS_XDATA_VALIDATE);
	reply(s, r);
}

/* Parsing a query. */

struct parsed {
	struct mam_query q;
	char *with;
	uint64_t *ids;
	const char *cond; /* error condition, NULL if fine */
	const char *text;
};

static int
fail(struct parsed *p, const char *cond, const char *text)
{
	if (p->cond == NULL) {
		p->cond = cond;
		p->text = text;
	}
	return -1;
}

/* The single value of a field, NULL if it has none; -1 if several. */
static int
single_value(struct parsed *p, const struct xel *f, const char **value)
{
	struct xel *v = xel_child(f, "value", NS_XDATA);

	*value = v ? xel_text(v) : NULL;
	if (v != NULL && xel_next(v, "value", NS_XDATA) != NULL)
		return fail(p, "bad-request", "a field takes one value");
	return 0;
}

static int
parse_id_value(struct parsed *p, const char *value, uint64_t *id)
{
	/* An id we cannot have made is not in the archive (§4.1.3). */
	if (mam_id_parse(value, id) < 0)
		return fail(p, "item-not-found", NULL);
	return 0;
}

static int
parse_field(struct parsed *p, const struct xel *f, unsigned max)
{
	const char *var = xel_attr(f, "var"), *value;
	struct jid j = {0};
	int64_t lo, hi;

	if (var == NULL)
		return fail(p, "bad-request", "a field without 'var'");
	if (strcmp(var, "ids") == 0) {
		for (struct xel *v = xel_child(f, "value", NS_XDATA); v;
		     v = xel_next(v, "value", NS_XDATA)) {
			if (p->q.nids >= max)
				return fail(p, "bad-request",
				    "more ids than the page size");
			p->ids = xreallocarray(p->ids, p->q.nids + 1,
			    sizeof(*p->ids));
			if (parse_id_value(p, xel_text(v),
			        &p->ids[p->q.nids]) < 0)
				return -1;
			p->q.nids++;
		}
		p->q.ids = p->ids;
		return 0;
	}
	if (single_value(p, f, &value) < 0)
		return -1;
	if (strcmp(var, "FORM_TYPE") == 0) {
		if (value == NULL || strcmp(value, NS_MAM) != 0)
			return fail(p, "bad-request", "FORM_TYPE is not "
			                              "urn:xmpp:mam:2");
		return 0;
	}
	if (strcmp(var, "with") != 0 && strcmp(var, "start") != 0 &&
	    strcmp(var, "end") != 0 && strcmp(var, "before-id") != 0 &&
	    strcmp(var, "after-id") != 0)
		/* §4.1.5: a field we do not know. */
		return fail(p, "feature-not-implemented", var);
	if (value == NULL || *value == '\0')
		return 0; /* an empty field filters nothing */
	if (strcmp(var, "with") == 0) {
		if (jid_parse(&j, value) < 0)
			return fail(p, "bad-request", "invalid 'with' JID");
		free(p->with);
		p->with = j.resource ? jid_full(&j) : jid_bare(&j);
		p->q.with = p->with;
		p->q.with_kind = j.resource ? MAM_WITH_FULL : MAM_WITH_BARE;
		jid_free(&j);
	} else if (strcmp(var, "start") == 0) {
		if (mam_stamp_parse(value, &lo, &hi) < 0)
			return fail(p, "bad-request", "invalid 'start'");
		p->q.start_ms = hi; /* §4.1.2: at or after */
	} else if (strcmp(var, "end") == 0) {
		if (mam_stamp_parse(value, &lo, &hi) < 0)
			return fail(p, "bad-request", "invalid 'end'");
		p->q.end_ms = lo; /* at or before */
	} else if (strcmp(var, "after-id") == 0) {
		p->q.has_after_id = 1;
		return parse_id_value(p, value, &p->q.after_id);
	} else {
		p->q.has_before_id = 1;
		return parse_id_value(p, value, &p->q.before_id);
	}
	return 0;
}

static int
parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

/* XEP-0059 <set/>: max (clamped to the page size), after, before, index. */
static int
parse_rsm(struct parsed *p, const struct xel *set, unsigned page)
{
	struct xel *max = xel_child(set, "max", NS_RSM);
	struct xel *after = xel_child(set, "after", NS_RSM);
	struct xel *before = xel_child(set, "before", NS_RSM);
	struct xel *index = xel_child(set, "index", NS_RSM);
	unsigned long v;

	if (max != NULL) {
		if (parse_uint(xel_text(max), 1000000000, &v) < 0)
			return fail(p, "bad-request", "invalid <max/>");
		if (v < page)
			p->q.max = (unsigned)v;
	}
	if ((after != NULL) + (before != NULL) + (index != NULL) > 1)
		/* §4.3.2: before with after is undefined; use the
		 * before-id and after-id fields for a range. */
		return fail(p, "bad-request", "only one of <after/>, "
		                              "<before/> and <index/>");
	if (after != NULL) {
		p->q.has_after = 1;
		return parse_id_value(p, xel_text(after), &p->q.after);
	}
	if (before != NULL) {
		if (*xel_text(before) == '\0') {
			p->q.before = MAM_BEFORE_LAST; /* §4.3.3 */
			return 0;
		}
		p->q.before = MAM_BEFORE_ID;
		return parse_id_value(p, xel_text(before), &p->q.before_id_rsm);
	}
	if (index != NULL) {
		if (parse_uint(xel_text(index), 1000000000, &v) < 0)
			return fail(p, "bad-request", "invalid <index/>");
		p->q.index = (long)v;
	}
	return 0;
}

static int
parse_query(struct parsed *p, const struct xel *query)
{
	unsigned page = xmppd_conf->limits.mam_page_size;
	struct xel *x = xel_child(query, "x", NS_XDATA);
	struct xel *set = xel_child(query, "set", NS_RSM);

	memset(p, 0, sizeof(*p));
	p->q.start_ms = p->q.end_ms = MAM_STAMP_NONE;
	p->q.index = -1;
	p->q.max = page;
	if (xel_attr(query, "node") != NULL)
		/* Reserved for pubsub archives (XEP-0442); none here. */
		return fail(p, "item-not-found", NULL);
	if (set != NULL && parse_rsm(p, set, page) < 0)
		return -1;
	for (struct xel *f = x ? xel_child(x, "field", NS_XDATA) : NULL; f;
	     f = xel_next(f, "field", NS_XDATA))
		if (parse_field(p, f, page) < 0)
			return -1;
	return 0;
}

/* Answering a query. */

static void query_rows_cb(uint64_t, uint64_t, enum store_status,
    const struct mam_row *, size_t, size_t);

/* §4.3: <fin/> with the RSM summary, after the last result. */
static void
query_finish(struct session *s, struct query *q)
{
	struct xel *r = stanza_iq_result(q->iq), *fin, *set, *el;
	const struct mam_page *p = q->page;
	char id[MAM_ID_LEN + 1];

	fin = xel_add(r, "fin", NS_MAM);
	xel_set_attr(fin, "complete", p->complete ? "true" : "false");
	set = xel_add(fin, "set", NS_RSM);
	if (p->n > 0) {
		el = xel_add(set, "first", NS_RSM);
		if (p->index >= 0)
			xel_set_attr(el, "index",
			    arena_printf(r->arena, "%ld", p->index));
		mam_id_format(q->first, id);
		xel_text_set(el, id);
		mam_id_format(q->last, id);
		xel_text_set(xel_add(set, "last", NS_RSM), id);
	}
	if (p->count >= 0)
		xel_text_set(xel_add(set, "count", NS_RSM),
		    arena_printf(r->arena, "%ld", p->count));
	reply(s, r);
	log_debug("mam: %s: query %s: %zu results", s->full,
	    q->queryid ? q->queryid : "-", p->n);
	query_free(q);
}

/* Read the next rows of q's page, or finish. */
static void
query_next(struct session *s, struct query *q)
{
	size_t left = q->page->n - q->sent;

	if (left == 0) {
		query_finish(s, q);
		return;
	}
	if (session_output_full(s)) {
		ev_timer_set(&q->retry, RETRY_SECONDS, 0);
		ev_timer_start(xmppd_loop, &q->retry);
		return;
	}
	mam_query_rows(q->page, q->sent, left < ROWS_PER_JOB ? left
	                                                     : ROWS_PER_JOB,
	    xmppd_conf->limits.output_high, query_rows_cb, s->id, q->serial);
}

static void
retry_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	struct query *q = container_of(w, struct query, retry);
	struct session *s;

	if ((s = query_session(q)) != NULL)
		query_next(s, q);
}

/* One <result/> (§4.2): the stored message, forwarded (XEP-0297) with
 * the time the server received it (XEP-0203). */
static void
send_result(struct session *s, const struct query *q, const struct mam_row *row)
{
	struct xml_limits lim = {row->len + 1, 1024, 1024, SIZE_MAX};
	struct xel *orig, *m, *res, *fwd, *delay;
	char id[MAM_ID_LEN + 1], stamp[40];

	mam_id_format(row->id, id);
	if ((orig = xml_parse_element(row->stanza, row->len, NS_CLIENT,
	         &lim)) == NULL) {
		log_warnx("mam: archived message %s of %s cannot be parsed; "
		          "left out",
		    id, q->bare);
		return;
	}
	m = xel_new(arena_new(row->len + 512), "message", NS_CLIENT);
	xel_set_attr(m, "to", s->full);
	xel_set_attr(m, "from", q->bare);
	res = xel_add(m, "result", NS_MAM);
	if (q->queryid != NULL)
		xel_set_attr(res, "queryid", q->queryid);
	xel_set_attr(res, "id", id);
	fwd = xel_add(res, "forwarded", NS_FORWARD);
	delay = xel_add(fwd, "delay", NS_DELAY);
	mam_stamp_format(row->stamp_ms, stamp, sizeof(stamp));
	xel_set_attr(delay, "stamp", stamp);
	xel_append_copy(fwd, orig);
	session_send(s, m);
	arena_free(m->arena);
	arena_free(orig->arena);
}

static void
query_rows_cb(uint64_t owner, uint64_t tag, enum store_status st,
    const struct mam_row *rows, size_t n, size_t consumed)
{
	struct query *q = query_find(tag);
	struct session *s;

	if (q == NULL || (s = query_session(q)) == NULL)
		return;
	if (st != STORE_OK) {
		reply_error(s, q->iq, "internal-server-error", NULL);
		query_free(q);
		return;
	}
	for (size_t i = 0; i < n; i++)
		send_result(s, q, &rows[i]);
	q->sent += consumed;
	if (session_gone(s)) {
		query_free(q);
		return;
	}
	query_next(s, q);
}

static void
reverse_page(struct mam_page *p)
{
	for (size_t a = 0, b = p->n; a + 1 < b; a++, b--) {
		int64_t r = p->rows[a];
		uint64_t i = p->ids[a];

		p->rows[a] = p->rows[b - 1];
		p->ids[a] = p->ids[b - 1];
		p->rows[b - 1] = r;
		p->ids[b - 1] = i;
	}
}

static void
query_plan_cb(uint64_t owner, uint64_t tag, enum store_status st,
    struct mam_page *page)
{
	struct query *q = query_find(tag);
	struct session *s;

	if (q == NULL || (s = query_session(q)) == NULL) {
		mam_page_free(page);
		return;
	}
	if (st != STORE_OK) {
		/* §4.1.3 and §4.3.2: an id that is not in the archive. */
		reply_error(s, q->iq, st == STORE_NOT_FOUND
		                          ? "item-not-found"
		                          : "internal-server-error",
		    NULL);
		query_free(q);
		return;
	}
	q->page = page;
	if (page->n > 0) {
		q->first = page->ids[0];
		q->last = page->ids[page->n - 1];
	}
	/* §4.3.4: a flipped page is sent newest first. */
	if (q->flip)
		reverse_page(page);
	query_next(s, q);
}

static void
handle_query_set(struct session *s, struct xel *iq, const struct xel *query)
{
	struct parsed p;
	struct query *q;

	if (parse_query(&p, query) < 0) {
		reply_error(s, iq, p.cond, p.text);
		goto done;
	}
	q = query_new(s, iq);
	if (xel_attr(query, "queryid") != NULL)
		q->queryid = xstrdup(xel_attr(query, "queryid"));
	q->flip = xel_child(query, "flip-page", NS_MAM) != NULL;
	ev_timer_init(&q->retry, retry_cb, RETRY_SECONDS, 0);
	mam_query_plan(s->jid.node, s->jid.domain, &p.q, query_plan_cb, s->id,
	    q->serial);
done:
	free(p.with);
	free(p.ids);
}

/* Rooms (mod/mam.h). */

int
mam_rooms_enabled(void)
{
	return prefs_cache != NULL;
}

void
mam_room_archive(const char *node, const char *service, const char *room_jid,
    uint64_t id, const char *nick_jid, const struct xel *msg)
{
	struct mam_entry e = {0};

	if (prefs_cache == NULL ||
	    xel_child(msg, "no-store", NS_HINTS) != NULL ||
	    xel_child(msg, "no-permanent-store", NS_HINTS) != NULL ||
	    xel_child(msg, "no-permanent-storage", NS_HINTS) != NULL)
		return;
	if (xel_child(msg, "body", NS_CLIENT) == NULL &&
	    xel_child(msg, "subject", NS_CLIENT) == NULL &&
	    xel_child(msg, "retract", NS_RETRACT) == NULL &&
	    xel_child(msg, "store", NS_HINTS) == NULL &&
	    xel_child(msg, "encrypted", NS_OMEMO) == NULL &&
	    xel_child(msg, "openpgp", NS_OX) == NULL &&
	    xel_child(msg, "x", NS_PGP) == NULL)
		return;
	e.user = node;
	e.host = service;
	e.room = 1;
	e.id = id;
	e.stamp_ms = now_ms();
	e.with_full = nick_jid;
	e.with_bare = room_jid;
	e.stanza = serialize(msg, &e.len);
	mam_archive_store(&e);
	free((char *)e.stanza);
}

void
mam_room_query(struct session *s, struct xel *iq, const char *node,
    const char *service, const char *room_jid)
{
	struct xel *query = xel_first_elem(iq);
	struct parsed p;
	struct query *q;

	if (strcmp(xel_attr(iq, "type"), "get") == 0) {
		send_form(s, iq);
		return;
	}
	if (parse_query(&p, query) < 0) {
		reply_error(s, iq, p.cond, p.text);
		goto done;
	}
	p.q.room = 1;
	/* 'with' the room itself is every message of its archive. */
	if (p.q.with_kind == MAM_WITH_BARE && strcmp(p.with, room_jid) == 0)
		p.q.with_kind = MAM_WITH_NONE;
	q = query_new(s, iq);
	free(q->bare);
	q->bare = xstrdup(room_jid);
	if (xel_attr(query, "queryid") != NULL)
		q->queryid = xstrdup(xel_attr(query, "queryid"));
	q->flip = xel_child(query, "flip-page", NS_MAM) != NULL;
	ev_timer_init(&q->retry, retry_cb, RETRY_SECONDS, 0);
	mam_query_plan(node, service, &p.q, query_plan_cb, s->id, q->serial);
done:
	free(p.with);
	free(p.ids);
}

static enum hook_result
handle_query(struct session *s, struct xel *iq, enum iq_target target)
{
	struct xel *query = xel_first_elem(iq);
	int own = own_archive(s, iq, target);

	if (own < 0)
		return HOOK_PASS;
	if (own == 0)
		return HOOK_HANDLED;
	if (strcmp(xel_attr(iq, "type"), "get") == 0)
		send_form(s, iq);
	else
		handle_query_set(s, iq, query);
	return HOOK_HANDLED;
}

/* Metadata (§5). */

static void
metadata_cb(uint64_t owner, uint64_t tag, enum store_status st,
    const struct mam_edge *first, const struct mam_edge *last)
{
	struct query *q = query_find(tag);
	struct session *s;
	struct xel *r, *md;
	const struct mam_edge *edge[2] = {first, last};
	static const char *const names[2] = {"start", "end"};

	if (q == NULL || (s = query_session(q)) == NULL)
		return;
	if (st != STORE_OK) {
		reply_error(s, q->iq, "internal-server-error", NULL);
		query_free(q);
		return;
	}
	r = stanza_iq_result(q->iq);
	md = xel_add(r, "metadata", NS_MAM);
	for (int i = 0; i < 2 && first != NULL; i++) {
		struct xel *e = xel_add(md, names[i], NS_MAM);
		char id[MAM_ID_LEN + 1], stamp[40];

		mam_id_format(edge[i]->id, id);
		mam_stamp_format(edge[i]->stamp_ms, stamp, sizeof(stamp));
		xel_set_attr(e, "id", id);
		xel_set_attr(e, "timestamp", stamp);
	}
	reply(s, r);
	query_free(q);
}

static enum hook_result
handle_metadata(struct session *s, struct xel *iq, enum iq_target target)
{
	int own = own_archive(s, iq, target);
	struct query *q;

	if (own < 0)
		return HOOK_PASS;
	if (own == 0)
		return HOOK_HANDLED;
	if (strcmp(xel_attr(iq, "type"), "get") != 0) {
		reply_error(s, iq, "bad-request", NULL);
		return HOOK_HANDLED;
	}
	q = query_new(s, iq);
	mam_metadata(s->jid.node, s->jid.domain, metadata_cb, s->id,
	    q->serial);
	return HOOK_HANDLED;
}

void
mam_room_metadata_iq(struct session *s, struct xel *iq, const char *node,
    const char *service)
{
	struct query *q;

	if (strcmp(xel_attr(iq, "type"), "get") != 0) {
		reply_error(s, iq, "bad-request", NULL);
		return;
	}
	q = query_new(s, iq);
	mam_room_metadata(node, service, metadata_cb, s->id, q->serial);
}

/* Preferences (XEP-0441). */

static void
add_list(struct xel *prefs, const char *name, char *const *jids, size_t n)
{
	struct xel *l = xel_add(prefs, name, NS_MAM);

	for (size_t i = 0; i < n; i++)
		xel_text_set(xel_add(l, "jid", NS_MAM), jids[i]);
}

/* XEP-0441 §2.1: the result carries <prefs/> with both lists. */
static void
send_prefs(struct session *s, const struct xel *iq, const struct mam_prefs *p)
{
	struct xel *r = stanza_iq_result(iq);
	struct xel *prefs = xel_add(r, "prefs", NS_MAM);

	xel_set_attr(prefs, "default", mam_mode_name(p->mode));
	add_list(prefs, "always", p->always, p->nalways);
	add_list(prefs, "never", p->never, p->nnever);
	reply(s, r);
}

static void
prefs_get_cb(uint64_t owner, uint64_t tag, enum store_status st,
    const struct mam_prefs *p)
{
	struct query *q = query_find(tag);
	struct session *s;

	if (q == NULL || (s = query_session(q)) == NULL)
		return;
	if (st == STORE_OK)
		send_prefs(s, q->iq, p);
	else
		reply_error(s, q->iq, "internal-server-error", NULL);
	query_free(q);
}

static void
cache_prefs(const char *bare, const struct mam_prefs *p)
{
	struct mam_prefs *old = strmap_get(prefs_cache, bare), *c;

	if (old != NULL) {
		mam_prefs_free(old);
		free(old);
	}
	c = xcalloc(1, sizeof(*c));
	mam_prefs_copy(c, p);
	strmap_put(prefs_cache, bare, c);
}

static void
prefs_put_cb(uint64_t owner, uint64_t tag, enum store_status st)
{
	struct query *q = query_find(tag);
	struct session *s;

	if (q == NULL)
		return;
	/* The preferences apply from the commit on, whoever asked. */
	if (st == STORE_OK)
		cache_prefs(q->bare, &q->prefs);
	if ((s = query_session(q)) == NULL)
		return;
	if (st == STORE_OK)
		send_prefs(s, q->iq, &q->prefs);
	else
		reply_error(s, q->iq, st == STORE_NOT_FOUND
		                          ? "item-not-found"
		                          : "internal-server-error",
		    NULL);
	query_free(q);
}

/* The <jid/>s of an <always/> or <never/>, prepared; -1 after an error
 * reply. */
static int
parse_list(struct session *s, struct xel *iq, const struct xel *prefs,
    const char *name, char ***list, size_t *n)
{
	struct xel *l = xel_child(prefs, name, NS_MAM);

	for (struct xel *j = l ? xel_child(l, "jid", NS_MAM) : NULL; j;
	     j = xel_next(j, "jid", NS_MAM)) {
		char *jid = jid_normalize(xel_text(j));
		int dup = 0;

		if (jid == NULL) {
			reply_error(s, iq, "bad-request", "invalid JID");
			return -1;
		}
		for (size_t i = 0; i < *n && !dup; i++)
			dup = strcmp((*list)[i], jid) == 0;
		if (dup) {
			free(jid);
			continue;
		}
		if (*n >= PREFS_JIDS_MAX) {
			free(jid);
			reply_error(s, iq, "not-acceptable",
			    "too many JIDs in a list");
			return -1;
		}
		*list = xreallocarray(*list, *n + 1, sizeof(**list));
		(*list)[(*n)++] = jid;
	}
	return 0;
}

static void
prefs_set(struct session *s, struct xel *iq, const struct xel *prefs)
{
	struct mam_prefs p;
	struct query *q;
	int mode = mam_mode_parse(xel_attr(prefs, "default"));

	memset(&p, 0, sizeof(p));
	if (mode < 0) {
		/* XEP-0441 §2.1.1: one of always, never, roster. */
		reply_error(s, iq, "bad-request", "invalid 'default'");
		return;
	}
	p.mode = (enum mam_mode)mode;
	if (parse_list(s, iq, prefs, "always", &p.always, &p.nalways) < 0 ||
	    parse_list(s, iq, prefs, "never", &p.never, &p.nnever) < 0) {
		mam_prefs_free(&p);
		return;
	}
	q = query_new(s, iq);
	q->prefs = p;
	mam_prefs_put(s->jid.node, s->jid.domain, &p, prefs_put_cb, s->id,
	    q->serial);
}

static enum hook_result
handle_prefs(struct session *s, struct xel *iq, enum iq_target target)
{
	int own = own_archive(s, iq, target);
	struct query *q;

	if (own < 0)
		return HOOK_PASS;
	if (own == 0)
		return HOOK_HANDLED;
	if (strcmp(xel_attr(iq, "type"), "set") == 0) {
		prefs_set(s, iq, xel_first_elem(iq));
		return HOOK_HANDLED;
	}
	q = query_new(s, iq);
	mam_prefs_get(s->jid.node, s->jid.domain, prefs_get_cb, s->id,
	    q->serial);
	return HOOK_HANDLED;
}

/* The cache of stored preferences. */

static void
load_each(const char *user, const char *host, const struct mam_prefs *p)
{
	char *bare;

	if (prefs_cache == NULL)
		return;         /* switched off while loading */
	bare = xasprintf("%s@%s", user, host);
	/* A preference set while loading is newer: keep it. */
	if (strmap_get(prefs_cache, bare) == NULL)
		cache_prefs(bare, p);
	free(bare);
}

static void
load_done(int ok)
{
	if (prefs_cache == NULL)
		return;
	if (!ok)
		log_warnx("mam: archiving preferences could not be loaded; "
		          "they are applied by storage for now");
	else
		log_debug("mam: %zu users' archiving preferences loaded",
		    strmap_count(prefs_cache));
	/* If loading failed, storage keeps deciding (check_prefs). */
	prefs_loaded = ok;
}

static void
user_deleted(const char *user, const char *host)
{
	char *bare = xasprintf("%s@%s", user, host);
	struct mam_prefs *p = strmap_del(prefs_cache, bare);

	if (p != NULL) {
		mam_prefs_free(p);
		free(p);
	}
	free(bare);
}

/* Retention (limits { mam-retention }): oldest first, in batches. */

static void expire_done(size_t deleted, int ok);

static double
expire_period(unsigned retention)
{
	double p = retention / 4.0;

	if (retention == 0)
		return 60.0; /* look again for a reload that enables it */
	return p < 1.0 ? 1.0 : p > 3600.0 ? 3600.0 : p;
}

static void
expire_tick(struct ev_loop *l, ev_timer *w, int revents)
{
	unsigned retention = xmppd_conf->limits.mam_retention;

	w->repeat = expire_period(retention);
	ev_timer_again(l, w);
	if (retention == 0 || expiry.running)
		return;
	expiry.running = 1;
	expiry.deleted = 0;
	expiry.cutoff = now_ms() - (int64_t)retention * 1000;
	mam_expire(expiry.cutoff, EXPIRE_BATCH, expire_done);
}

static void
expire_done(size_t deleted, int ok)
{
	expiry.deleted += deleted;
	if (ok && deleted >= EXPIRE_BATCH && prefs_cache != NULL &&
	    xmppd_conf->limits.mam_retention > 0) {
		mam_expire(expiry.cutoff, EXPIRE_BATCH, expire_done);
		return;
	}
	if (expiry.deleted > 0)
		log_info("mam: %zu archived messages past the retention time "
		         "deleted",
		    expiry.deleted);
	expiry.running = 0;
}

void
mod_mam_init(void)
{
	prefs_cache = strmap_new();
	prefs_loaded = 0;
	hook_add_message_out(mam_message_out);
	hook_add_message_in(mam_message_in);
	hook_add_user_deleted(user_deleted);
	iq_register(NS_MAM, "query", handle_query);
	iq_register(NS_MAM, "prefs", handle_prefs);
	iq_register(NS_MAM, "metadata", handle_metadata);
	/* §7: on the archiving JID, the user's bare JID; XEP-0359 §4: the
	 * 'by' of our stanza-ids is that JID too. */
	disco_add_feature(DISCO_ACCOUNT, NS_MAM);
	disco_add_feature(DISCO_ACCOUNT, NS_MAM_EXTENDED);
	disco_add_feature(DISCO_ACCOUNT, NS_SID);
	/* And on the server, as ejabberd does: some clients (profanity
	 * 0.13) look for it only there before they query their own
	 * archive (without 'to').  The server itself keeps no archive: a
	 * query addressed to it still gets <service-unavailable/>. */
	disco_add_feature(DISCO_SERVER, NS_MAM);
	mam_prefs_load_all(load_each, load_done);
	ev_timer_init(&expiry.timer, expire_tick, 0.0, 1.0);
	ev_timer_again(xmppd_loop, &expiry.timer);
	ev_unref(xmppd_loop);
}

static void
free_prefs(const char *key, void *value, void *arg)
{
	mam_prefs_free(value);
	free(value);
}

/* Requests in flight are answered with an error now (their storage
 * completions find nothing); what is archived stays archived. */
void
mod_mam_deinit(void)
{
	ev_ref(xmppd_loop);
	ev_timer_stop(xmppd_loop, &expiry.timer);
	while (queries != NULL) {
		struct query *q = queries;
		struct session *s = sm_find_id(q->session);

		if (s != NULL && !s->closing)
			reply_error(s, q->iq, "service-unavailable",
			    "The archive was switched off");
		query_free(q);
	}
	strmap_foreach(prefs_cache, free_prefs, NULL);
	strmap_free(prefs_cache);
	prefs_cache = NULL;
	prefs_loaded = 0;
}
