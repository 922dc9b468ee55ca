/*
 * Multi-user chat (XEP-0045): the conference services of each host
 * ("muc" in its host block, conference.HOST by default), registered as
 * service domains with the router, and their rooms in memory.  A room is
 * created by its first occupant (its owner) and locked until configured;
 * groupchat messages are serialized once and each occupant's session gets
 * the same bytes after its own 'to' (session_send_fanout).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "base64.h"
#include "buf.h"
#include "conf.h"
#include "core/csi.h"
#include "core/disco.h"
#include "core/hooks.h"
#include "core/rooms.h"
#include "core/router.h"
#include "core/session.h"
#include "core/sm.h"
#include "core/stanza.h"
#include "ht.h"
#include "jid.h"
#include "log.h"
#include "mod/mam.h"
#include "mono.h"
#include "scram.h"
#include "store/fast.h"
#include "store/mam.h"
#include "store/muc.h"
#include "strmap.h"
#include "xmalloc.h"
#include "xml.h"
#include "xmppd.h"

#define NS_MUC "http://jabber.org/protocol/muc"
#define NS_MUC_USER NS_MUC "#user"
#define NS_MUC_ADMIN NS_MUC "#admin"
#define NS_MUC_OWNER NS_MUC "#owner"
#define NS_SID "urn:xmpp:sid:0"              /* XEP-0359 */
#define NS_DELAY "urn:xmpp:delay"            /* XEP-0203 */
#define NS_PING "urn:xmpp:ping"              /* XEP-0199 */
#define NS_SELF_PING NS_MUC "#self-ping-optimization"  /* XEP-0410 */
#define NS_OCCUPANT_ID "urn:xmpp:occupant-id:0"         /* XEP-0421 */
#define NS_MODERATE "urn:xmpp:message-moderate:1"       /* XEP-0425 */
#define NS_RETRACT "urn:xmpp:message-retract:1"         /* XEP-0424 */
#define NS_VCARD "vcard-temp"                           /* XEP-0054 */
#define NS_VCARD_UPDATE "vcard-temp:x:update"           /* XEP-0153 */
#define NS_REFERENCE "urn:xmpp:reference:0"             /* XEP-0372 */
/* A room's vCard: bytes at most, serialized (an avatar of ~48 KiB). */
#define ROOM_VCARD_MAX (64 * 1024)
/* The bytes of HMAC-SHA-256 an occupant id keeps: 18, 24 characters of
 * base64. */
#define OCCUPANT_ID_BYTES 18
#define FORM_ROOMCONFIG NS_MUC "#roomconfig"
#define FORM_ROOMINFO NS_MUC "#roominfo"
#define FORM_REQUEST NS_MUC "#request"
/* Seconds between two voice requests of one occupant (§7.13). */
#define VOICE_REQUEST_INTERVAL 60.0

/* Invitations a room remembers, for the declines it relays (§7.8.3),
 * and invitations one message may carry. */
#define INVITES_MAX 32
#define INVITES_PER_MESSAGE 16

/* History kept per room: at most this many messages (the room's
 * historylength is at most that), and limits { muc-history-size }
 * bytes. */
#define HISTORY_MAX 200
#define HISTORY_DEFAULT 20
/* Rooms an account created within the last hour, for limits
 * { muc-rooms-per-hour }: counted per window, the window starting at
 * its first creation. */
#define CREATE_WINDOW 3600.0
/* Room name, description and password: bytes at most. */
#define TEXT_MAX 1024
/* Stanzas one room keeps while it is read back from storage. */
#define PENDING_MAX 64
/* disco#items of a service: rooms in one answer at most (XEP-0059
 * pages through more). */
#define ROOM_LIST_MAX 500
#define NS_RSM "http://jabber.org/protocol/rsm"  /* XEP-0059 */

void mod_muc_init(void);
void mod_muc_deinit(void);

/* XEP-0045 §5.2, in increasing privilege (stored: store/muc.h). */
enum affiliation {
	AFF_OUTCAST = MUC_AFF_OUTCAST,
	AFF_NONE = MUC_AFF_NONE,
	AFF_MEMBER = MUC_AFF_MEMBER,
	AFF_ADMIN = MUC_AFF_ADMIN,
	AFF_OWNER = MUC_AFF_OWNER,
};
static const char *const aff_names[] = { "outcast", "none", "member",
	"admin", "owner" };
/* §5.1 */
enum role { ROLE_NONE, ROLE_VISITOR, ROLE_PARTICIPANT, ROLE_MODERATOR };
#define ROLES_ALL (1 << ROLE_VISITOR | 1 << ROLE_PARTICIPANT | \
	1 << ROLE_MODERATOR)
static const char *const role_names[] = { "none", "visitor", "participant",
	"moderator" };
/* muc#roomconfig_allowpm */
enum allowpm { PM_ANYONE, PM_PARTICIPANTS, PM_MODERATORS, PM_NONE };
static const char *const pm_names[] = { "anyone", "participants",
	"moderators", "none" };

struct room_config {
	char *name;             /* muc#roomconfig_roomname, NULL: none */
	char *desc;             /* muc#roomconfig_roomdesc */
	char *secret;           /* muc#roomconfig_roomsecret */
	char *lang;             /* muc#roomconfig_lang, NULL: none */
	unsigned maxusers;      /* 0: no limit */
	/* Sets of roles (1 << enum role): muc#roomconfig_presencebroadcast,
	 * whose presence others receive, and muc#roomconfig_getmemberlist,
	 * who may get the member list. */
	unsigned char bcast, memberlist;
	unsigned historylength;
	unsigned char allowpm;  /* enum allowpm */
	unsigned publicroom : 1, membersonly : 1, moderated : 1,
	    passwordprotected : 1, whois_anyone : 1, changesubject : 1,
	    persistent : 1, allowinvites : 1, voicerequests : 1,
	    logging : 1;        /* muc#roomconfig_enablelogging */
};

/*
 * An occupant: one nick of one real bare JID, with the sessions of that
 * JID that joined under it (XEP-0045 multi-session: they share it).
 * The presence extensions it sent (show, status, caps ...) are kept
 * serialized, so that a joiner gets them without a tree per occupant.
 */
struct occupant {
	struct occupant *next;
	char *nick;
	char *bare;                 /* its real bare JID */
	char *extra;                /* serialized presence children, or
	                               NULL */
	struct session **sessions;
	unsigned nsessions;
	unsigned char role, affiliation;
	/* Others have its available presence (its role is in the room's
	 * muc#roomconfig_presencebroadcast, or was when they got it). */
	unsigned shown : 1;
	char id[4 * OCCUPANT_ID_BYTES / 3 + 1];  /* XEP-0421 */
	double voice_asked;         /* mono_now() of its last voice request */
	/* limits { muc-messages-per-second }: a token bucket of groupchat
	 * messages, refilled at mono_now() time msg_at; msg_limited while
	 * refusing (one log line per flood). */
	double msg_tokens, msg_at;
	int msg_limited;
};

struct affil {
	char *jid;                  /* a bare JID */
	enum affiliation aff;
};

/* A message of the room's history, kept serialized without 'to' with
 * its <delay/>: "<message" + rest. */
struct history {
	char *bytes;
	size_t len;
	double stamp;               /* ev_time() when sent */
};

/* An invitation the room sent (§7.8.2): whom, and who asked. */
struct invitation {
	char *invitee;              /* bare JID; NULL: a free slot */
	char *inviter;              /* full JID */
};

struct service;

struct room {
	struct service *svc;
	char *node;                 /* prepared room name */
	char *jid;                  /* room@service */
	struct room_config cfg;
	int locked;                 /* created, not configured (§10.1.2) */
	char *subject, *subject_nick;
	struct occupant *occupants;
	unsigned noccupants;
	struct affil *affils;
	size_t naffils;
	struct history *hist;       /* a ring of cfg.historylength at most */
	unsigned hist_start, hist_n, hist_cap;
	size_t hist_bytes;
	struct invitation *invites; /* a ring of INVITES_MAX, or NULL */
	unsigned invites_next;
	char *vcard;                /* its vcard-temp vCard, serialized */
	char *photo_hash;           /* XEP-0153 hash of its PHOTO, or NULL */
	double quiet_since;         /* mono_now() of its last stanza or its
	                               last occupant's exit: a persistent
	                               room leaves memory limits
	                               { muc-room-idle } later */
};

/* A stanza to a persistent room that is being read back. */
struct pending {
	struct pending *next;
	uint64_t session;
	struct xel *st;             /* a copy, in its own arena */
};

/*
 * A persistent room as the service knows it whether it is in memory or
 * not (XEP-0045 §4 "persistent room": it exists with no occupants): what
 * disco#items lists, and, while it is read back from storage, the
 * stanzas that wait for it.
 */
struct stored {
	char *name;                 /* muc#roomconfig_roomname, or NULL */
	unsigned flags;             /* MUC_ROOM_* */
	uint64_t reading;           /* the read's tag while being read
	                               back (the room, then its history) */
	struct pending *pending, **tail;
	unsigned npending;
};

struct service {
	char *domain;
	char *host;
	struct strmap *rooms;       /* node -> struct room, in memory */
	struct strmap *stored;      /* node -> struct stored, persistent */
	int loading;                /* persistent rooms not all read yet */
};

/* An IQ whose answer waits for its write to be committed
 * (ARCHITECTURE.md: a result for a write only after the commit). */
struct wait_reply {
	struct wait_reply *next;
	uint64_t tag;
	uint64_t session;
	struct xel *iq;             /* stanza_iq_skeleton */
};

static struct service *services;
static size_t nservices;
/* Sessions that ended while a room was being walked: removed when the
 * outermost operation returns (depth 0).  A session stays a valid
 * pointer until the loop sleeps (session.h). */
static unsigned depth;
static struct session **ended;
static size_t nended;
/* Full JIDs of sessions in some room -> count, so that a session end
 * outside every room costs one lookup. */
static struct strmap *joined;
static struct wait_reply *waiting;
static uint64_t next_tag = 1;
/* Storage completions of an earlier life of the module are ignored. */
static uint64_t generation;
/* limits { muc-rooms-per-hour }: bare JID -> struct creator, the
 * rooms it created in its current window; swept once a window. */
struct creator {
	char *bare;
	double since;               /* mono_now() of the window's start */
	unsigned count;
};
static struct strmap *creators;
static double creators_swept;
/* Persistent rooms without occupants leave memory (limits
 * { muc-room-idle }): looked for by this timer. */
static ev_timer idle_w;

static void occupant_remove(struct room *r, struct occupant *o, int code,
    const char *reason, const char *actor);
static struct xel *form_field(struct xel *form, const char *var,
    const char *type, const char *label, const char *value);
static void room_avatar_presence(const struct room *r, struct session *to);
static void room_archive(const struct room *r, const struct xel *m,
    uint64_t id);
static void flush_ended(void);
static const char *owner_lists(struct room *r, struct session *s,
    const struct xel *x);
static const char *admin_item(struct room *r, struct occupant *me,
    enum affiliation mine, const struct xel *item);

/* Utilities. */

static int
attr_is(const struct xel *el, const char *name, const char *value)
{
	const char *v = xel_attr(el, name);

	return v != NULL && strcmp(v, value) == 0;
}

static void
send_free(struct session *s, struct xel *st)
{
	if (st == NULL)
		return;
	session_send(s, st);
	arena_free(st->arena);
}

static void
bounce_typed(struct session *s, const struct xel *st, const char *type,
    const char *cond, const char *text)
{
	if (s != NULL)
		send_free(s, stanza_error(st, type, cond, text));
}

static void
bounce(struct session *s, const struct xel *st, const char *cond)
{
	bounce_typed(s, st, NULL, cond, NULL);
}

/* s is in one more room (or under one more nick); the session of an
 * occupant on another server is kept as long (sm_remote_hold). */
static void
joined_add(struct session *s)
{
	uintptr_t n = (uintptr_t)strmap_get(joined, s->full);

	strmap_put(joined, s->full, (void *)(n + 1));
	sm_remote_hold(s);
}

static void
joined_del(struct session *s)
{
	uintptr_t n = (uintptr_t)strmap_get(joined, s->full);

	if (n <= 1)
		strmap_del(joined, s->full);
	else
		strmap_put(joined, s->full, (void *)(n - 1));
	sm_remote_release(s);
}

static int
parse_bool(const char *v)
{
	return strcmp(v, "1") == 0 || strcmp(v, "true") == 0;
}

static char *
dup_bounded(const char *v)
{
	size_t n = strlen(v);

	return n == 0 ? NULL : xstrndup(v, n > TEXT_MAX ? TEXT_MAX : n);
}

static void
format_stamp(double t, char *out, size_t len)
{
	time_t sec = (time_t)t;
	struct tm tm;
	size_t n;

	gmtime_r(&sec, &tm);
	n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, len - n, ".%03dZ", (int)((t - (double)sec) * 1000));
}

/* XEP-0082 date-time to Unix time; -1 when malformed. */
static double
parse_stamp(const char *s)
{
	struct tm tm;
	const char *p;
	int off = 0;

	memset(&tm, 0, sizeof(tm));
	if ((p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
		return -1;
	if (*p == '.')
		while (*++p >= '0' && *p <= '9')
			;
	if (*p == '+' || *p == '-') {
		const char *d = p + 1;
		int h, m;

		/* "HH:MM" */
		for (int i = 0; i < 5; i++)
			if (i == 2 ? d[i] != ':' : (d[i] < '0' || d[i] > '9'))
				return -1;
		h = (d[0] - '0') * 10 + (d[1] - '0');
		m = (d[3] - '0') * 10 + (d[4] - '0');
		off = (h * 60 + m) * 60 * (*p == '+' ? 1 : -1);
	} else if (*p != 'Z')
		return -1;
	return (double)(timegm(&tm) - off);
}

/* Services and rooms. */

static struct service *
service_find(const char *domain)
{
	for (size_t i = 0; i < nservices; i++)
		if (strcmp(services[i].domain, domain) == 0)
			return &services[i];
	return NULL;
}

static struct room *
room_find(struct service *svc, const char *node)
{
	return node ? strmap_get(svc->rooms, node) : NULL;
}

static enum affiliation
room_affiliation(const struct room *r, const char *bare)
{
	for (size_t i = 0; i < r->naffils; i++)
		if (strcmp(r->affils[i].jid, bare) == 0)
			return r->affils[i].aff;
	return AFF_NONE;
}

static void
room_set_affiliation(struct room *r, const char *bare, enum affiliation a)
{
	for (size_t i = 0; i < r->naffils; i++)
		if (strcmp(r->affils[i].jid, bare) == 0) {
			if (a != AFF_NONE) {
				r->affils[i].aff = a;
				return;
			}
			free(r->affils[i].jid);
			r->affils[i] = r->affils[--r->naffils];
			return;
		}
	if (a == AFF_NONE)
		return;
	r->affils = xreallocarray(r->affils, r->naffils + 1,
	    sizeof(*r->affils));
	r->affils[r->naffils].jid = xstrdup(bare);
	r->affils[r->naffils++].aff = a;
}

/* §5.1.2 default roles. */
static enum role
default_role(const struct room *r, enum affiliation a)
{
	if (a >= AFF_ADMIN)
		return ROLE_MODERATOR;
	if (a == AFF_MEMBER || !r->cfg.moderated)
		return ROLE_PARTICIPANT;
	return ROLE_VISITOR;
}

static struct room *
room_new(struct service *svc, const char *node)
{
	struct room *r = xcalloc(1, sizeof(*r));

	r->svc = svc;
	r->node = xstrdup(node);
	r->jid = xasprintf("%s@%s", node, svc->domain);
	r->cfg.publicroom = 1;
	r->cfg.changesubject = 0;
	r->cfg.allowpm = PM_ANYONE;
	r->cfg.historylength = HISTORY_DEFAULT;
	r->cfg.voicerequests = 1;
	r->cfg.bcast = ROLES_ALL;
	r->cfg.memberlist = 1 << ROLE_PARTICIPANT | 1 << ROLE_MODERATOR;
	r->locked = 1;
	r->quiet_since = mono_now(xmppd_loop);
	strmap_put(svc->rooms, node, r);
	return r;
}

static void
history_clear(struct room *r)
{
	for (unsigned i = 0; i < r->hist_n; i++)
		free(r->hist[(r->hist_start + i) % r->hist_cap].bytes);
	free(r->hist);
	r->hist = NULL;
	r->hist_start = r->hist_n = r->hist_cap = 0;
	r->hist_bytes = 0;
}

static void
occupant_free(struct occupant *o)
{
	free(o->nick);
	free(o->bare);
	free(o->extra);
	free(o->sessions);
	free(o);
}

/* Unlink r and free it; its occupants must have been told. */
static void
room_free(struct room *r)
{
	struct occupant *o, *next;

	strmap_del(r->svc->rooms, r->node);
	for (o = r->occupants; o; o = next) {
		next = o->next;
		for (unsigned i = 0; i < o->nsessions; i++)
			joined_del(o->sessions[i]);
		occupant_free(o);
	}
	for (size_t i = 0; i < r->naffils; i++)
		free(r->affils[i].jid);
	free(r->affils);
	for (unsigned i = 0; r->invites != NULL && i < INVITES_MAX; i++) {
		free(r->invites[i].invitee);
		free(r->invites[i].inviter);
	}
	free(r->invites);
	history_clear(r);
	free(r->cfg.name);
	free(r->cfg.desc);
	free(r->cfg.secret);
	free(r->cfg.lang);
	free(r->subject);
	free(r->subject_nick);
	free(r->vcard);
	free(r->photo_hash);
	free(r->node);
	free(r->jid);
	free(r);
}

/*
 * XEP-0421: the occupant id of bare in room r, the same for every
 * session and nick of that JID in that room and telling nothing of it:
 * HMAC-SHA-256 of both under the server's secret key (the key that
 * seals FAST tokens, store/fast.h, with a label of its own), truncated.
 */
static void
occupant_id(const struct room *r, const char *bare, char *out)
{
	static const char label[] = "xmppd occupant-id";
	unsigned char mac[32];
	struct buf b;

	buf_init(&b);
	buf_add(&b, label, sizeof(label));
	buf_add(&b, r->jid, strlen(r->jid) + 1);
	buf_adds(&b, bare);
	scram_hmac(SCRAM_SHA256, store_fast_key(), HT_KEY_LEN, buf_head(&b),
	    buf_avail(&b), mac);
	buf_free(&b);
	base64_encode(mac, OCCUPANT_ID_BYTES, out);
}

/* Add o's occupant id to st, and no other (a client's are dropped
 * before: presence_extra, groupchat, private_message). */
static void
add_occupant_id(struct xel *st, const struct occupant *o)
{
	xel_set_attr(xel_add(st, "occupant-id", NS_OCCUPANT_ID), "id",
	    o->id);
}

static struct occupant *
occupant_by_nick(const struct room *r, const char *nick)
{
	for (struct occupant *o = r->occupants; o; o = o->next)
		if (strcmp(o->nick, nick) == 0)
			return o;
	return NULL;
}

static struct occupant *
occupant_by_session(const struct room *r, const struct session *s)
{
	for (struct occupant *o = r->occupants; o; o = o->next)
		for (unsigned i = 0; i < o->nsessions; i++)
			if (o->sessions[i] == s)
				return o;
	return NULL;
}

/* Whether p may see the real JIDs of the room's occupants. */
static int
sees_jids(const struct room *r, const struct occupant *p)
{
	return r->cfg.whois_anyone || p->role == ROLE_MODERATOR;
}

/*
 * Fan-out: one stanza serialized once, without 'to', each copy being
 * "<NAME to='...'" and the rest (session_send_fanout); the delivery
 * hooks (blocking) see the stanza and the sender's room JID.
 */
struct fan {
	struct xel *st;
	struct buf bytes;
	size_t rest;
	struct jid from;
};

static void
fan_init(struct fan *f, struct xel *st)
{
	f->st = st;
	buf_init(&f->bytes);
	xel_serialize(st, &f->bytes, NS_CLIENT);
	f->rest = 1 + strlen(st->name);
	memset(&f->from, 0, sizeof(f->from));
	(void)jid_parse(&f->from, xel_attr(st, "from"));
}

static void
fan_send(struct fan *f, struct session *s)
{
	if (s->closing || (f->from.domain != NULL &&
	    hook_run_deliver(s, f->st, &f->from) == HOOK_HANDLED))
		return;
	session_send_fanout(s, f->st, s->full, buf_head(&f->bytes) + f->rest,
	    buf_avail(&f->bytes) - f->rest);
}

/* fan_send, the copy urgent for XEP-0352 (session.h). */
static void
fan_send_urgent(struct fan *f, struct session *s)
{
	if (s->closing || (f->from.domain != NULL &&
	    hook_run_deliver(s, f->st, &f->from) == HOOK_HANDLED))
		return;
	session_send_fanout_urgent(s, f->st, s->full, buf_head(&f->bytes) +
	    f->rest, buf_avail(&f->bytes) - f->rest);
}

static void
fan_done(struct fan *f)
{
	buf_free(&f->bytes);
	jid_free(&f->from);
}

/* Presence. */

struct pres_opts {
	int unavailable;
	const char *newnick;        /* 303: the new nick */
	const int *codes;           /* for everyone, 0-terminated */
	const struct xel *destroy;  /* the <destroy/> of §10.9 */
	const char *reason;         /* 307, 301, ... */
	const char *actor;
};

/*
 * The presence of occupant o as recipient p sees it (self: p is o, with
 * 110 and the self codes); real JID as p may see it, jid of session s.
 * A new arena, no 'to'.
 */
static struct xel *
pres_build(const struct room *r, const struct occupant *o,
    const struct pres_opts *po, int with_jid, int self,
    const int *self_codes, const struct session *s)
{
	struct xel *p = xel_new(arena_new(1024), "presence", NS_CLIENT);
	struct xel *x, *item;
	char *from = xasprintf("%s/%s", r->jid, o->nick);

	xel_set_attr(p, "from", from);
	free(from);
	if (po->unavailable)
		xel_set_attr(p, "type", "unavailable");
	else if (o->extra != NULL) {
		struct xel *ex = xml_parse_element(o->extra, strlen(o->extra),
		    NS_CLIENT, NULL);

		if (ex != NULL) {
			for (struct xel *c = ex->children; c; c = c->next)
				if (c->name != NULL)
					xel_append_copy(p, c);
			arena_free(ex->arena);
		}
	}
	add_occupant_id(p, o);
	x = xel_add(p, "x", NS_MUC_USER);
	item = xel_add(x, "item", NULL);
	xel_set_attr(item, "affiliation", aff_names[o->affiliation]);
	xel_set_attr(item, "role", po->unavailable && !po->newnick ?
	    "none" : role_names[o->role]);
	if (with_jid && s != NULL)
		xel_set_attr(item, "jid", s->full);
	if (po->newnick)
		xel_set_attr(item, "nick", po->newnick);
	if (po->actor)
		xel_set_attr(xel_add(item, "actor", NULL), "nick", po->actor);
	if (po->reason)
		xel_text_set(xel_add(item, "reason", NULL), po->reason);
	if (po->destroy)
		xel_append_copy(x, po->destroy);
	for (const int *c = self ? self_codes : NULL; c && *c; c++) {
		char v[8];

		snprintf(v, sizeof(v), "%d", *c);
		xel_set_attr(xel_add(x, "status", NULL), "code", v);
	}
	for (const int *c = po->codes; c && *c; c++) {
		char v[8];

		snprintf(v, sizeof(v), "%d", *c);
		xel_set_attr(xel_add(x, "status", NULL), "code", v);
	}
	return p;
}

/*
 * o's presence to one session of p (a joiner being told who is in),
 * written straight as bytes: what pres_build makes for it (o's kept
 * presence children, its occupant id, its item, the real JID if p may
 * see it), without a tree per occupant per joiner (a join of a room of
 * N costs N of these).  look is a bare <presence/> from the room that
 * stands for every copy where the session API and the delivery hooks
 * look at a tree (its kind; presence.c's subscription test sees no
 * type).  Its 'from' is room/nick, whose parts are prepared already:
 * the delivery hook gets them as they are, with no JID to parse.
 */
static void
pres_to_session(const struct room *r, const struct occupant *o,
    const struct occupant *p, struct session *to, struct xel *look)
{
	struct jid from = { 0 };
	struct buf b;
	const struct session *jid_of = o->nsessions ? o->sessions[0] : NULL;
	size_t rest = sizeof("<presence") - 1;

	from.node = r->node;
	from.domain = r->svc->domain;
	from.resource = o->nick;
	if (to->closing || hook_run_deliver(to, look, &from) == HOOK_HANDLED)
		return;
	buf_init(&b);
	buf_adds(&b, "<presence from='");
	buf_add_xml_escaped(&b, r->jid, strlen(r->jid), 1);
	buf_adds(&b, "/");
	buf_add_xml_escaped(&b, o->nick, strlen(o->nick), 1);
	buf_adds(&b, "'>");
	if (o->extra != NULL) {
		/* "<presence>" children "</presence>" (presence_extra) */
		size_t len = strlen(o->extra);

		buf_add(&b, o->extra + sizeof("<presence>") - 1, len -
		    (sizeof("<presence>") - 1) - (sizeof("</presence>") - 1));
	}
	buf_adds(&b, "<occupant-id xmlns='" NS_OCCUPANT_ID "' id='");
	buf_add_xml_escaped(&b, o->id, strlen(o->id), 1);
	buf_adds(&b, "'/><x xmlns='" NS_MUC_USER "'><item affiliation='");
	buf_adds(&b, aff_names[o->affiliation]);
	buf_adds(&b, "' role='");
	buf_adds(&b, role_names[o->role]);
	if (sees_jids(r, p) && jid_of != NULL) {
		buf_adds(&b, "' jid='");
		buf_add_xml_escaped(&b, jid_of->full, strlen(jid_of->full), 1);
	}
	buf_adds(&b, "'/></x></presence>");
	session_send_fanout(to, look, to->full, buf_head(&b) + rest,
	    buf_avail(&b) - rest);
	buf_free(&b);
}

/*
 * o's presence to every occupant: three serializations at most (with
 * the real JID, without, and o's own with self_codes and 110, §7.2.3),
 * each sent as a fan-out.  only: o's sessions get their own copy, the
 * others nothing (a second session joining under a nick already in).
 */
static void
pres_broadcast(struct room *r, struct occupant *o, const struct pres_opts *po,
    const int *self_codes, struct session *only)
{
	struct xel *v[2] = { NULL, NULL }, *self;
	struct fan fv[2], fself;
	struct session *jid_of = only ? only :
	    (o->nsessions ? o->sessions[0] : NULL);
	/* muc#roomconfig_presencebroadcast: an occupant whose role is not
	 * in it is seen by itself only; those who saw it before see it
	 * go. */
	int show = (r->cfg.bcast & 1u << o->role) && !po->unavailable;
	struct pres_opts gone;

	self = pres_build(r, o, po, 1, 1, self_codes, jid_of);
	fan_init(&fself, self);
	if (only != NULL) {
		fan_send(&fself, only);
		goto done;
	}
	if (!show && o->shown && !po->unavailable) {
		gone = *po;
		gone.unavailable = 1;
		po = &gone;
	}
	for (struct occupant *p = r->occupants; p; p = p->next) {
		int k = sees_jids(r, p);

		if (p == o) {
			for (unsigned i = 0; i < o->nsessions; i++)
				fan_send(&fself, o->sessions[i]);
			continue;
		}
		if (!show && !o->shown)
			continue;
		if (v[k] == NULL) {
			v[k] = pres_build(r, o, po, k, 0, NULL, jid_of);
			fan_init(&fv[k], v[k]);
		}
		for (unsigned i = 0; i < p->nsessions; i++)
			fan_send(&fv[k], p->sessions[i]);
	}
	for (int k = 0; k < 2; k++)
		if (v[k] != NULL) {
			fan_done(&fv[k]);
			arena_free(v[k]->arena);
		}
	o->shown = show != 0;
done:
	fan_done(&fself);
	arena_free(self->arena);
}

/* The presence children worth keeping (not the MUC ones). */
static char *
presence_extra(const struct xel *pres)
{
	struct buf b;
	char *s;

	buf_init(&b);
	buf_adds(&b, "<presence>");
	for (const struct xel *c = pres->children; c; c = c->next) {
		if (c->name == NULL || strcmp(c->ns, NS_MUC) == 0 ||
		    strcmp(c->ns, NS_MUC_USER) == 0 ||
		    strcmp(c->ns, NS_OCCUPANT_ID) == 0 ||
		    strcmp(c->name, "error") == 0)
			continue;
		xel_serialize(c, &b, NS_CLIENT);
	}
	if (buf_avail(&b) == sizeof("<presence>") - 1) {
		buf_free(&b);
		return NULL;
	}
	buf_adds(&b, "</presence>");
	s = buf_strdup(&b);
	buf_free(&b);
	return s;
}

/* Messages from the room itself (subject, status codes). */

static struct xel *
room_message(const struct room *r, const char *nick)
{
	struct xel *m = xel_new(arena_new(1024), "message", NS_CLIENT);

	if (nick != NULL) {
		char *from = xasprintf("%s/%s", r->jid, nick);

		xel_set_attr(m, "from", from);
		free(from);
	} else
		xel_set_attr(m, "from", r->jid);
	xel_set_attr(m, "type", "groupchat");
	return m;
}

static void
fan_to_room(struct room *r, struct xel *st)
{
	struct fan f;

	fan_init(&f, st);
	for (struct occupant *p = r->occupants; p; p = p->next)
		for (unsigned i = 0; i < p->nsessions; i++)
			fan_send(&f, p->sessions[i]);
	fan_done(&f);
}

/* §10.2.1: configuration changed, with its status codes. */
static void
notify_config(struct room *r, const int *codes)
{
	struct xel *m = room_message(r, NULL), *x;

	x = xel_add(m, "x", NS_MUC_USER);
	for (; *codes; codes++) {
		char v[8];

		snprintf(v, sizeof(v), "%d", *codes);
		xel_set_attr(xel_add(x, "status", NULL), "code", v);
	}
	fan_to_room(r, m);
	arena_free(m->arena);
}

/* §7.2.15: the subject (possibly empty) after presence and history. */
static void
send_subject(const struct room *r, struct session *to)
{
	struct xel *m = room_message(r, r->subject_nick);

	xel_text_set(xel_add(m, "subject", NULL), r->subject ? r->subject :
	    "");
	xel_set_attr(m, "to", to->full);
	session_send(to, m);
	arena_free(m->arena);
}

/* History. */

static void
history_drop_oldest(struct room *r)
{
	struct history *h = &r->hist[r->hist_start];

	r->hist_bytes -= h->len;
	free(h->bytes);
	r->hist_start = (r->hist_start + 1) % r->hist_cap;
	r->hist_n--;
}

static void
history_resize(struct room *r, unsigned cap)
{
	struct history *nh;

	while (r->hist_n > cap)
		history_drop_oldest(r);
	if (cap == 0) {
		history_clear(r);
		return;
	}
	nh = xcalloc(cap, sizeof(*nh));
	for (unsigned i = 0; i < r->hist_n; i++)
		nh[i] = r->hist[(r->hist_start + i) % r->hist_cap];
	free(r->hist);
	r->hist = nh;
	r->hist_cap = cap;
	r->hist_start = 0;
}

/* Keep msg (no 'to') with its XEP-0203 <delay/>, bounded. */
static void
history_add(struct room *r, struct xel *msg, double now)
{
	struct xel *d;
	struct buf b;
	char stamp[40];
	struct history *h;

	if (r->cfg.historylength == 0)
		return;
	if (r->hist_cap != r->cfg.historylength)
		history_resize(r, r->cfg.historylength);
	format_stamp(now, stamp, sizeof(stamp));
	d = xel_add(msg, "delay", NS_DELAY);
	xel_set_attr(d, "from", r->jid);
	xel_set_attr(d, "stamp", stamp);
	buf_init(&b);
	xel_serialize(msg, &b, NS_CLIENT);
	xel_remove(d);
	if (buf_avail(&b) > xmppd_conf->limits.muc_history_size) {
		buf_free(&b);
		return;
	}
	while (r->hist_n > 0 && (r->hist_n == r->hist_cap ||
	    r->hist_bytes + buf_avail(&b) >
	    xmppd_conf->limits.muc_history_size))
		history_drop_oldest(r);
	h = &r->hist[(r->hist_start + r->hist_n) % r->hist_cap];
	h->len = buf_avail(&b);
	h->bytes = buf_strdup(&b);
	h->stamp = now;
	buf_free(&b);
	r->hist_n++;
	r->hist_bytes += h->len;
}

/*
 * §7.2.14: the history a joiner asked for (<history/> in its muc <x/>:
 * maxstanzas, maxchars counting the whole stanzas as sent, seconds,
 * since), the newest that fit, oldest first.
 */
static void
history_send(const struct room *r, const struct xel *req, struct session *to)
{
	unsigned long maxstanzas = HISTORY_MAX;
	size_t maxchars = (size_t)-1, chars = 0;
	double after = 0;
	unsigned first = r->hist_n, k;
	const char *v;
	size_t tolen = strlen(to->full) + sizeof(" to=''") - 1;
	struct xel *look;

	if (req != NULL) {
		if ((v = xel_attr(req, "maxstanzas")) != NULL)
			maxstanzas = strtoul(v, NULL, 10);
		if ((v = xel_attr(req, "maxchars")) != NULL)
			maxchars = strtoul(v, NULL, 10);
		if ((v = xel_attr(req, "seconds")) != NULL)
			after = ev_time() - strtod(v, NULL);
		if ((v = xel_attr(req, "since")) != NULL) {
			double since = parse_stamp(v);

			if (since > after)
				after = since;
		}
	}
	for (k = 0; k < r->hist_n && k < maxstanzas; k++) {
		const struct history *h =
		    &r->hist[(r->hist_start + r->hist_n - 1 - k) % r->hist_cap];

		if (h->stamp < after || chars + h->len + tolen > maxchars)
			break;
		chars += h->len + tolen;
		first = r->hist_n - 1 - k;
	}
	if (first == r->hist_n)
		return;
	/* The bytes kept are what was serialized: sent as they are.  The
	 * session API looks at a tree only for its kind (XEP-0352: a
	 * groupchat message with a body), the same for every entry, so
	 * one stands for them all instead of parsing each. */
	look = xel_new(arena_new(256), "message", NS_CLIENT);
	xel_set_attr(look, "type", "groupchat");
	xel_set_attr(look, "from", r->jid);
	xel_add(look, "body", NS_CLIENT);
	for (k = first; k < r->hist_n; k++) {
		const struct history *h =
		    &r->hist[(r->hist_start + k) % r->hist_cap];

		session_send_fanout(to, look, to->full, h->bytes + 8,
		    h->len - 8);
	}
	arena_free(look->arena);
}

/* Joining, changing nick, leaving. */

static void
occupant_add_session(struct occupant *o, struct session *s)
{
	o->sessions = xreallocarray(o->sessions, o->nsessions + 1,
	    sizeof(*o->sessions));
	o->sessions[o->nsessions++] = s;
	joined_add(s);
}

/* XEP-0045 status 210: whether the nick the client asked for (the
 * resource of pres's 'to' as sent) is not the one it got, which is
 * Resourceprep's (RFC 6122 §2.4: case, width and compatibility forms
 * folded). */
static int
nick_was_changed(const struct xel *pres, const struct jid *to)
{
	const char *raw = xel_attr(pres, "to");
	const char *slash = raw ? strchr(raw, '/') : NULL;

	return slash != NULL && strcmp(slash + 1, to->resource) != 0;
}

/* Tell the joiner who is there, then everyone about it, then itself. */
static void
join_announce(struct room *r, struct occupant *o, struct session *s,
    int created, const struct xel *pres, const struct jid *to)
{
	const struct xel *mucx = xel_child(pres, "x", NS_MUC);
	int codes[6], n = 0;
	struct pres_opts po = { 0 };
	struct xel *look;

	look = xel_new(arena_new(256), "presence", NS_CLIENT);
	xel_set_attr(look, "from", r->jid);
	for (struct occupant *p = r->occupants; p; p = p->next)
		if (p != o && p->shown)
			pres_to_session(r, p, o, s, look);
	arena_free(look->arena);
	if (r->cfg.whois_anyone)
		codes[n++] = 100;
	if (r->cfg.logging && mam_rooms_enabled())
		codes[n++] = 170;                 /* §7.2.12 */
	if (created)
		codes[n++] = 201;
	if (nick_was_changed(pres, to))
		codes[n++] = 210;
	codes[n++] = 110;
	codes[n] = 0;
	pres_broadcast(r, o, &po, codes, o->nsessions > 1 ? s : NULL);
	room_avatar_presence(r, s);
	if (!created)
		history_send(r, xel_child(mucx, "history", NS_MUC), s);
	send_subject(r, s);
}

/* Forget the accounts whose window is over. */
static void
creators_sweep(double now)
{
	void **v;
	size_t n;

	if (now - creators_swept < CREATE_WINDOW)
		return;
	creators_swept = now;
	v = strmap_values(creators, &n);
	for (size_t i = 0; i < n; i++) {
		struct creator *c = v[i];

		if (now - c->since < CREATE_WINDOW)
			continue;
		strmap_del(creators, c->bare);
		free(c->bare);
		free(c);
	}
	free(v);
}

/* limits { muc-rooms-per-hour }: whether s's account may create one
 * more room now (then it is counted). */
static int
creation_allowed(const struct session *s)
{
	unsigned max = xmppd_conf->limits.muc_rooms_per_hour;
	double now = mono_now(xmppd_loop);
	struct creator *c;

	if (max == 0)
		return 1;
	creators_sweep(now);
	if ((c = strmap_get(creators, s->bare)) == NULL) {
		c = xcalloc(1, sizeof(*c));
		c->bare = xstrdup(s->bare);
		c->since = now;
		strmap_put(creators, c->bare, c);
	} else if (now - c->since >= CREATE_WINDOW) {
		c->since = now;
		c->count = 0;
	}
	if (c->count >= max)
		return 0;
	c->count++;
	return 1;
}

/* limits { muc-messages-per-second }: whether o may send a groupchat
 * message now (a token bucket of twice the rate; then it is taken). */
static int
occupant_may_speak(struct occupant *o)
{
	unsigned rate = xmppd_conf->limits.muc_messages_per_second;
	double now = mono_now(xmppd_loop), burst = 2.0 * rate;

	if (rate == 0)
		return 1;
	o->msg_tokens += (now - o->msg_at) * rate;
	if (o->msg_tokens > burst)
		o->msg_tokens = burst;
	o->msg_at = now;
	if (o->msg_tokens < 1.0)
		return 0;
	o->msg_tokens -= 1.0;
	return 1;
}

/* The checks of §7.2 for a new occupant; 0, or -1 after the error. */
static int
join_allowed(struct room *r, struct session *s, struct xel *pres,
    const struct xel *mucx, enum affiliation a)
{
	const char *pw;

	if (a == AFF_OUTCAST) {
		bounce(s, pres, "forbidden");                   /* §7.2.7 */
		return -1;
	}
	if (r->locked && a != AFF_OWNER) {
		bounce(s, pres, "item-not-found");            /* §10.1.2 */
		return -1;
	}
	if (r->cfg.membersonly && a < AFF_MEMBER) {
		bounce(s, pres, "registration-required");       /* §7.2.6 */
		return -1;
	}
	if (r->cfg.passwordprotected && a != AFF_OWNER) {
		pw = xel_text(xel_child(mucx, "password", NS_MUC));
		if (r->cfg.secret != NULL && strcmp(pw, r->cfg.secret) != 0) {
			bounce(s, pres, "not-authorized");      /* §7.2.5 */
			return -1;
		}
	}
	if (r->cfg.maxusers && r->noccupants >= r->cfg.maxusers &&
	    a < AFF_ADMIN) {
		bounce_typed(s, pres, "wait", "service-unavailable",
		    NULL);                                      /* §7.2.9 */
		return -1;
	}
	if (r->noccupants >= xmppd_conf->limits.muc_occupants) {
		/* The server's ceiling, for admins and owners too. */
		log_info("muc: %s: full at %u occupants (limits { "
		    "muc-occupants }), %s refused", r->jid, r->noccupants,
		    s->full);
		bounce_typed(s, pres, "wait", "service-unavailable", NULL);
		return -1;
	}
	return 0;
}

static void
join(struct service *svc, struct room *r, struct session *s,
    struct xel *pres, const struct jid *to)
{
	const struct xel *mucx = xel_child(pres, "x", NS_MUC);
	struct occupant *o;
	enum affiliation a;
	int created = 0;

	if (r == NULL) {
		if (session_is_remote(s)) {
			/* Rooms are made by the server's own users; others
			 * join them (§10.1.1: <not-allowed/> to whoever may
			 * not create). */
			bounce(s, pres, "not-allowed");
			return;
		}
		if (!creation_allowed(s)) {
			session_log_limit(s, "muc-rooms-per-hour",
			    xmppd_conf->limits.muc_rooms_per_hour);
			bounce_typed(s, pres, "wait", "policy-violation",
			    "Too many rooms created in an hour");
			return;
		}
		/* §10.1.1: the first to join creates it and owns it. */
		r = room_new(svc, to->node);
		room_set_affiliation(r, s->bare, AFF_OWNER);
		created = 1;
		log_info("muc: %s created by %s", r->jid, s->full);
	}
	o = occupant_by_nick(r, to->resource);
	if (o != NULL && strcmp(o->bare, s->bare) != 0) {
		bounce(s, pres, "conflict");                    /* §7.2.8 */
		return;
	}
	a = room_affiliation(r, s->bare);
	if (o == NULL && join_allowed(r, s, pres, mucx, a) < 0)
		return;
	if (o != NULL) {
		/* Another session of the same JID under its nick. */
		occupant_add_session(o, s);
		join_announce(r, o, s, 0, pres, to);
		return;
	}
	o = xcalloc(1, sizeof(*o));
	o->nick = xstrdup(to->resource);
	o->bare = xstrdup(s->bare);
	o->extra = presence_extra(pres);
	o->affiliation = (unsigned char)a;
	o->role = (unsigned char)default_role(r, a);
	o->msg_tokens = 2.0 * xmppd_conf->limits.muc_messages_per_second;
	o->msg_at = mono_now(xmppd_loop);
	occupant_id(r, s->bare, o->id);
	occupant_add_session(o, s);
	/* Appended: presences go out in joining order. */
	{
		struct occupant **pp = &r->occupants;

		while (*pp)
			pp = &(*pp)->next;
		*pp = o;
	}
	r->noccupants++;
	join_announce(r, o, s, created, pres, to);
}

/* §7.6: nick change, 303 in the unavailable presence. */
static void
change_nick(struct room *r, struct occupant *o, struct session *s,
    struct xel *pres, const struct jid *to)
{
	static const int c303[] = { 303, 0 };
	static const int c110[] = { 110, 0 };
	static const int c210[] = { 210, 110, 0 };
	const char *nick = to->resource;
	struct pres_opts po = { 0 };

	if (occupant_by_nick(r, nick) != NULL) {
		bounce(s, pres, "conflict");
		return;
	}
	po.unavailable = 1;
	po.newnick = nick;
	po.codes = c303;
	pres_broadcast(r, o, &po, c110, NULL);
	free(o->nick);
	o->nick = xstrdup(nick);
	free(o->extra);
	o->extra = presence_extra(pres);
	memset(&po, 0, sizeof(po));
	pres_broadcast(r, o, &po, nick_was_changed(pres, to) ? c210 : c110,
	    NULL);
}

/* Rooms without occupants: a temporary one goes (§10.1.1 "destroyed
 * when the last occupant exits"), a locked one too; a persistent one
 * stays. */
static void
room_maybe_free(struct room *r)
{
	if (r->occupants != NULL)
		return;
	if (!r->cfg.persistent) {
		log_info("muc: %s destroyed (empty)", r->jid);
		room_free(r);
	} else
		r->quiet_since = mono_now(xmppd_loop);
}

/*
 * Session s leaves occupant o: its own unavailable (110), and if it was
 * o's last session, everyone's.  po: the reason (kick, ban, destroy).
 */
static void
occupant_leave(struct room *r, struct occupant *o, struct session *s,
    const struct pres_opts *po)
{
	static const int c110[] = { 110, 0 };
	struct occupant **pp;
	unsigned i;

	for (i = 0; i < o->nsessions && o->sessions[i] != s; i++)
		;
	if (i == o->nsessions)
		return;
	if (o->nsessions > 1) {
		pres_broadcast(r, o, po, c110, s);
		o->sessions[i] = o->sessions[--o->nsessions];
		joined_del(s);
		return;
	}
	pres_broadcast(r, o, po, c110, NULL);
	joined_del(s);
	for (pp = &r->occupants; *pp != NULL && *pp != o; pp = &(*pp)->next)
		;
	if (*pp != NULL)
		*pp = o->next;
	r->noccupants--;
	occupant_free(o);
}

static void
presence_to_room(struct service *svc, struct session *s, struct xel *pres,
    const struct jid *to)
{
	struct room *r = room_find(svc, to->node);
	struct occupant *o = r ? occupant_by_session(r, s) : NULL;
	const char *type = xel_attr(pres, "type");

	/* Errors went to occupant_error (muc_route). */
	if (type != NULL && strcmp(type, "unavailable") == 0) {
		struct pres_opts po = { 0 };

		po.unavailable = 1;
		if (o == NULL)
			return;
		occupant_leave(r, o, s, &po);
		room_maybe_free(r);
		return;
	}
	if (type != NULL)
		return;                 /* probes, subscriptions: ignored */
	if (to->resource == NULL) {
		/* §7.2.1: a nick is needed. */
		if (o == NULL)
			bounce(s, pres, "jid-malformed");
		return;
	}
	if ((o == NULL || strcmp(o->nick, to->resource) != 0) &&
	    strlen(to->resource) > xmppd_conf->limits.muc_nick_length) {
		session_log_limit(s, "muc-nick-length",
		    (unsigned)xmppd_conf->limits.muc_nick_length);
		bounce_typed(s, pres, "modify", "not-acceptable",
		    "Nickname too long");
		return;
	}
	if (o == NULL)
		join(svc, r, s, pres, to);
	else if (strcmp(o->nick, to->resource) != 0)
		change_nick(r, o, s, pres, to);
	else {
		/* §7.7: a new status, broadcast. */
		struct pres_opts po = { 0 };
		static const int c110[] = { 110, 0 };

		free(o->extra);
		o->extra = presence_extra(pres);
		pres_broadcast(r, o, &po, c110, NULL);
	}
}

/* Storage of persistent rooms (store/muc.h). */

static struct stored *
stored_find(const struct service *svc, const char *node)
{
	return node ? strmap_get(svc->stored, node) : NULL;
}

/* A persistent room's entry, made or brought up to date. */
static void
stored_put(struct service *svc, const char *node, const char *name,
    unsigned flags)
{
	struct stored *sr = stored_find(svc, node);

	if (sr == NULL) {
		sr = xcalloc(1, sizeof(*sr));
		sr->tail = &sr->pending;
		strmap_put(svc->stored, node, sr);
	}
	if (sr->name == NULL || name == NULL || strcmp(sr->name, name) != 0) {
		free(sr->name);
		sr->name = name ? xstrdup(name) : NULL;
	}
	sr->flags = flags;
}

static void
pending_free(struct pending *p)
{
	while (p != NULL) {
		struct pending *next = p->next;

		arena_free(p->st->arena);
		free(p);
		p = next;
	}
}

static void
stored_free(struct stored *sr)
{
	pending_free(sr->pending);
	free(sr->name);
	free(sr);
}

/* The room is no longer persistent (or is destroyed).  One being read
 * back stays until its read completes. */
static void
stored_del(struct service *svc, const char *node)
{
	struct stored *sr = stored_find(svc, node);

	if (sr != NULL && sr->reading == 0) {
		strmap_del(svc->stored, node);
		stored_free(sr);
	}
}

static void
reply_done(uint64_t owner, uint64_t tag, enum store_status st)
{
	struct wait_reply **pp, *w;
	struct session *s;

	for (pp = &waiting; *pp && (*pp)->tag != tag; pp = &(*pp)->next)
		;
	if ((w = *pp) == NULL)
		return;
	*pp = w->next;
	if ((s = sm_find_id(w->session)) != NULL && !s->closing)
		send_free(s, st == STORE_OK || st == STORE_NOT_FOUND ?
		    stanza_iq_result(w->iq) : stanza_error(w->iq, NULL,
		    "internal-server-error", NULL));
	arena_free(w->iq->arena);
	free(w);
}

static void
write_done(uint64_t owner, uint64_t tag, enum store_status st)
{
	if (st != STORE_OK && st != STORE_NOT_FOUND)
		log_warnx("muc: a room could not be stored (%s)",
		    store_status_str(st));
}

/* The result of iq once what was queued before is committed. */
static uint64_t
reply_after_commit(struct session *s, const struct xel *iq)
{
	struct wait_reply *w;

	if (iq == NULL)
		return 0;
	w = xcalloc(1, sizeof(*w));
	w->tag = next_tag++;
	w->session = s->id;
	w->iq = stanza_iq_skeleton(iq);
	w->next = waiting;
	waiting = w;
	return w->tag;
}

static unsigned
room_flags(const struct room_config *c)
{
	return (c->publicroom ? MUC_ROOM_PUBLIC : 0) |
	    (c->membersonly ? MUC_ROOM_MEMBERSONLY : 0) |
	    (c->moderated ? MUC_ROOM_MODERATED : 0) |
	    (c->passwordprotected ? MUC_ROOM_PASSWORD : 0) |
	    (c->whois_anyone ? MUC_ROOM_WHOIS_ANYONE : 0) |
	    (c->changesubject ? MUC_ROOM_CHANGESUBJECT : 0) |
	    (c->allowinvites ? MUC_ROOM_ALLOWINVITES : 0) |
	    (c->voicerequests ? 0 : MUC_ROOM_NO_VOICEREQUESTS) |
	    (c->logging ? MUC_ROOM_LOGGING : 0) |
	    (c->bcast & 1 << ROLE_VISITOR ? 0 : MUC_ROOM_NO_BCAST_VISITOR) |
	    (c->bcast & 1 << ROLE_PARTICIPANT ? 0 :
	    MUC_ROOM_NO_BCAST_PARTICIPANT) |
	    (c->bcast & 1 << ROLE_MODERATOR ? 0 :
	    MUC_ROOM_NO_BCAST_MODERATOR) |
	    (c->memberlist & 1 << ROLE_VISITOR ? MUC_ROOM_MEMBERLIST_VISITOR :
	    0) |
	    (c->memberlist & 1 << ROLE_PARTICIPANT ? 0 :
	    MUC_ROOM_NO_MEMBERLIST_PARTICIPANT) |
	    (c->memberlist & 1 << ROLE_MODERATOR ? 0 :
	    MUC_ROOM_NO_MEMBERLIST_MODERATOR);
}

/*
 * Write a persistent room (configuration, subject, affiliations); with
 * iq (from s), its result goes out after the commit.  Returns whether
 * the answer was taken care of.
 */
static int
room_save(struct room *r, struct session *s, const struct xel *iq)
{
	struct muc_room_row row = { 0 };
	struct muc_affil_row *a;
	uint64_t tag;

	if (!r->cfg.persistent)
		return 0;
	a = xcalloc(r->naffils + 1, sizeof(*a));
	for (size_t i = 0; i < r->naffils; i++) {
		a[i].jid = r->affils[i].jid;
		a[i].affiliation = (enum muc_affiliation)r->affils[i].aff;
	}
	row.service = r->svc->domain;
	row.node = r->node;
	row.name = r->cfg.name;
	row.desc = r->cfg.desc;
	row.secret = r->cfg.secret;
	row.lang = r->cfg.lang;
	row.subject = r->subject;
	row.subject_nick = r->subject_nick;
	row.flags = room_flags(&r->cfg);
	row.allowpm = r->cfg.allowpm;
	row.maxusers = r->cfg.maxusers;
	row.historylength = r->cfg.historylength;
	row.affils = a;
	row.naffils = r->naffils;
	row.vcard = r->vcard;
	row.photo_hash = r->photo_hash;
	stored_put(r->svc, r->node, r->cfg.name, row.flags);
	tag = iq ? reply_after_commit(s, iq) : 0;
	muc_store_save(&row, iq ? reply_done : write_done, generation, tag);
	free(a);
	return iq != NULL;
}

static int
room_unsave(struct room *r, struct session *s, const struct xel *iq)
{
	uint64_t tag = iq ? reply_after_commit(s, iq) : 0;

	stored_del(r->svc, r->node);
	muc_store_delete(r->svc->domain, r->node, iq ? reply_done :
	    write_done, generation, tag);
	return iq != NULL;
}

/* A persistent room read back from storage. */
static struct room *
room_from_row(struct service *svc, const struct muc_room_row *row)
{
	struct room *r;

	if ((r = room_find(svc, row->node)) != NULL)
		return r;
	r = room_new(svc, row->node);
	r->locked = 0;
	r->cfg.persistent = 1;
	r->cfg.name = row->name ? xstrdup(row->name) : NULL;
	r->cfg.desc = row->desc ? xstrdup(row->desc) : NULL;
	r->cfg.secret = row->secret ? xstrdup(row->secret) : NULL;
	r->cfg.publicroom = (row->flags & MUC_ROOM_PUBLIC) != 0;
	r->cfg.membersonly = (row->flags & MUC_ROOM_MEMBERSONLY) != 0;
	r->cfg.moderated = (row->flags & MUC_ROOM_MODERATED) != 0;
	r->cfg.passwordprotected = (row->flags & MUC_ROOM_PASSWORD) != 0;
	r->cfg.whois_anyone = (row->flags & MUC_ROOM_WHOIS_ANYONE) != 0;
	r->cfg.changesubject = (row->flags & MUC_ROOM_CHANGESUBJECT) != 0;
	r->cfg.allowinvites = (row->flags & MUC_ROOM_ALLOWINVITES) != 0;
	r->cfg.voicerequests = (row->flags & MUC_ROOM_NO_VOICEREQUESTS) == 0;
	r->cfg.logging = (row->flags & MUC_ROOM_LOGGING) != 0;
	r->cfg.lang = row->lang ? xstrdup(row->lang) : NULL;
	r->cfg.bcast = (unsigned char)(
	    (row->flags & MUC_ROOM_NO_BCAST_VISITOR ? 0 : 1 << ROLE_VISITOR) |
	    (row->flags & MUC_ROOM_NO_BCAST_PARTICIPANT ? 0 :
	    1 << ROLE_PARTICIPANT) |
	    (row->flags & MUC_ROOM_NO_BCAST_MODERATOR ? 0 :
	    1 << ROLE_MODERATOR));
	r->cfg.memberlist = (unsigned char)(
	    (row->flags & MUC_ROOM_MEMBERLIST_VISITOR ? 1 << ROLE_VISITOR : 0) |
	    (row->flags & MUC_ROOM_NO_MEMBERLIST_PARTICIPANT ? 0 :
	    1 << ROLE_PARTICIPANT) |
	    (row->flags & MUC_ROOM_NO_MEMBERLIST_MODERATOR ? 0 :
	    1 << ROLE_MODERATOR));
	r->vcard = row->vcard ? xstrdup(row->vcard) : NULL;
	r->photo_hash = row->photo_hash ? xstrdup(row->photo_hash) : NULL;
	r->cfg.allowpm = (unsigned char)(row->allowpm <= PM_NONE ?
	    row->allowpm : PM_ANYONE);
	r->cfg.maxusers = row->maxusers;
	r->cfg.historylength = row->historylength <= HISTORY_MAX ?
	    row->historylength : HISTORY_MAX;
	r->subject = row->subject ? xstrdup(row->subject) : NULL;
	r->subject_nick = row->subject_nick ? xstrdup(row->subject_nick) :
	    NULL;
	for (size_t i = 0; i < row->naffils; i++)
		if (row->affils[i].affiliation <= MUC_AFF_OWNER)
			room_set_affiliation(r, row->affils[i].jid,
			    (enum affiliation)row->affils[i].affiliation);
	return r;
}

/* A chunk of a service's persistent rooms (tag: its index). */
static void
rooms_loaded(uint64_t owner, uint64_t tag, enum store_status st,
    const struct muc_room_row *rows, size_t n, int more)
{
	struct service *svc;

	if (owner != generation || tag >= nservices)
		return;
	svc = &services[tag];
	if (st != STORE_OK) {
		log_warnx("muc: %s: the persistent rooms could not be read",
		    svc->domain);
		svc->loading = 0;
		return;
	}
	for (size_t i = 0; i < n; i++)
		stored_put(svc, rows[i].node, rows[i].name, rows[i].flags);
	if (more && n > 0) {
		muc_store_load(svc->domain, rows[n - 1].id, rooms_loaded,
		    generation, tag);
		return;
	}
	svc->loading = 0;
	log_info("muc: %s: %zu persistent rooms", svc->domain,
	    strmap_count(svc->stored));
}

/*
 * Reading a persistent room back (XEP-0045 §4: a persistent room
 * exists without occupants; in memory only while it has them or was
 * used recently).  Stanzas for it wait in its struct stored, in order,
 * until it is read (with its history from its archive, when it keeps
 * one), then go the usual way.
 */
struct room_read {
	struct room_read *next;
	uint64_t tag;
	struct service *svc;
	char *node;
};
static struct room_read *reads;

static void muc_route(struct session *from, struct xel *st,
    const struct jid *to);

static struct room_read *
read_take(uint64_t owner, uint64_t tag)
{
	struct room_read **pp, *rd;

	if (owner != generation)
		return NULL;
	for (pp = &reads; *pp != NULL && (*pp)->tag != tag; pp = &(*pp)->next)
		;
	if ((rd = *pp) != NULL)
		*pp = rd->next;
	return rd;
}

static void
read_free(struct room_read *rd)
{
	free(rd->node);
	free(rd);
}

/* The read is over: the waiting stanzas go on (or are refused with
 * cond when it failed). */
static void
read_finish(struct service *svc, const char *node, const char *cond)
{
	struct stored *sr = stored_find(svc, node);
	struct pending *p;

	if (sr == NULL)
		return;
	p = sr->pending;
	sr->pending = NULL;
	sr->tail = &sr->pending;
	sr->npending = 0;
	sr->reading = 0;
	for (struct pending *q = p; q != NULL; q = q->next) {
		struct session *s = sm_find_id(q->session);
		struct jid to = { 0 };

		if (s == NULL || s->closing)
			continue;
		if (cond != NULL) {
			if (!attr_is(q->st, "type", "error") &&
			    !attr_is(q->st, "type", "unavailable"))
				bounce_typed(s, q->st, "wait", cond, NULL);
		} else if (jid_parse(&to, xel_attr(q->st, "to")) == 0)
			muc_route(s, q->st, &to);
		jid_free(&to);
	}
	pending_free(p);
}

static void
history_read(uint64_t owner, uint64_t tag, enum store_status st,
    const struct mam_history_row *rows, size_t n,
    const struct mam_history_pos *next)
{
	struct room_read *rd = read_take(owner, tag);
	struct room *r;

	if (rd == NULL)
		return;
	if ((r = room_find(rd->svc, rd->node)) == NULL || st != STORE_OK) {
		if (st != STORE_OK)
			log_warnx("muc: %s@%s: its history could not be read "
			    "from its archive", rd->node, rd->svc->domain);
		read_finish(rd->svc, rd->node, NULL);
		read_free(rd);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct xel *m = xml_parse_element(rows[i].stanza, rows[i].len,
		    NS_CLIENT, NULL);

		if (m == NULL)
			continue;
		xel_set_attr(m, "to", NULL);
		history_add(r, m, (double)rows[i].stamp_ms / 1000.0);
		arena_free(m->arena);
	}
	if (next != NULL) {
		rd->next = reads;
		reads = rd;
		mam_room_history_read(rd->node, rd->svc->domain,
		    r->cfg.historylength, next, history_read, generation,
		    rd->tag);
		return;
	}
	read_finish(rd->svc, rd->node, NULL);
	read_free(rd);
}

static void
room_read(uint64_t owner, uint64_t tag, enum store_status st,
    const struct muc_room_row *rows, size_t n, int more)
{
	struct room_read *rd = read_take(owner, tag);
	struct mam_history_pos start = { 0 };
	struct room *r;

	if (rd == NULL)
		return;
	if (st != STORE_OK) {
		log_warnx("muc: %s@%s could not be read from storage",
		    rd->node, rd->svc->domain);
		read_finish(rd->svc, rd->node, "internal-server-error");
		read_free(rd);
		return;
	}
	if (n == 0) {
		/* Deleted meanwhile: what waited finds no room. */
		struct stored *sr = stored_find(rd->svc, rd->node);

		if (sr != NULL)
			sr->reading = 0;
		read_finish(rd->svc, rd->node, NULL);
		stored_del(rd->svc, rd->node);
		read_free(rd);
		return;
	}
	r = room_from_row(rd->svc, &rows[0]);
	log_debug("muc: %s read back from storage", r->jid);
	if (r->cfg.logging && r->cfg.historylength > 0 &&
	    mam_rooms_enabled()) {
		rd->next = reads;
		reads = rd;
		mam_room_history_read(rd->node, rd->svc->domain,
		    r->cfg.historylength, &start, history_read, generation,
		    rd->tag);
		return;
	}
	read_finish(rd->svc, rd->node, NULL);
	read_free(rd);
}

/* Start reading the persistent room back (sr: its entry). */
static void
read_start(struct service *svc, const char *node, struct stored *sr)
{
	struct room_read *rd;

	if (sr->reading != 0)
		return;
	rd = xcalloc(1, sizeof(*rd));
	rd->tag = next_tag++;
	rd->svc = svc;
	rd->node = xstrdup(node);
	rd->next = reads;
	reads = rd;
	sr->reading = rd->tag;
	muc_store_get(svc->domain, node, room_read, generation, rd->tag);
}

/*
 * st (from s) is for a persistent room not in memory, or being read
 * back: keep a copy until the room is there.  Returns 1 if kept (or
 * refused), 0 if the room is there to take it.
 */
static int
wait_for_room(struct service *svc, struct session *s, struct xel *st,
    const struct jid *to)
{
	struct stored *sr;
	struct pending *p;

	if (to->node == NULL || (sr = stored_find(svc, to->node)) == NULL ||
	    (sr->reading == 0 && room_find(svc, to->node) != NULL))
		return 0;
	if (sr->npending >= PENDING_MAX) {
		if (!attr_is(st, "type", "error"))
			bounce_typed(s, st, "wait", "resource-constraint",
			    NULL);
		return 1;
	}
	p = xcalloc(1, sizeof(*p));
	p->session = s->id;
	p->st = xel_copy_fit(st, 0);
	*sr->tail = p;
	sr->tail = &p->next;
	sr->npending++;
	read_start(svc, to->node, sr);
	return 1;
}

/*
 * Persistent rooms with no occupants and no stanza for limits
 * { muc-room-idle } leave memory; everything they are is stored
 * (configuration, subject and affiliations are written on each change,
 * groupchat to the archive) except their in-memory history, which is
 * read back from the archive when they are.
 */
static void
idle_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
	double now = mono_now(loop);
	double idle = xmppd_conf->limits.muc_room_idle;

	for (size_t i = 0; i < nservices; i++) {
		size_t n;
		void **rooms = strmap_values(services[i].rooms, &n);

		for (size_t k = 0; k < n; k++) {
			struct room *r = rooms[k];
			struct stored *sr = stored_find(r->svc, r->node);

			if (r->occupants != NULL || !r->cfg.persistent ||
			    r->locked || sr == NULL || sr->reading != 0 ||
			    now - r->quiet_since < idle)
				continue;
			log_debug("muc: %s leaves memory (no occupants for "
			    "%.0f s)", r->jid, now - r->quiet_since);
			room_free(r);
		}
		free(rooms);
	}
	w->repeat = idle < 60 ? 1.0 : 30.0;
	ev_timer_again(loop, w);
}

/* Messages. */

/* The room's XEP-0359 id of a message: an archive id (store/mam.h),
 * so that the stanza-id is the id it has in the room's archive. */
static uint64_t
stanza_id_new(char *out, size_t len)
{
	uint64_t id = mam_id_new();
	char hex[MAM_ID_LEN + 1];

	mam_id_format(id, hex);
	snprintf(out, len, "%s", hex);
	return id;
}

/* Whether needle is in text, ASCII letters of either case alike. */
static int
contains_nocase(const char *text, const char *needle)
{
	size_t n = strlen(needle);

	if (n == 0)
		return 0;
	for (; *text != '\0'; text++) {
		size_t i;

		for (i = 0; i < n; i++) {
			unsigned char a = (unsigned char)text[i];
			unsigned char b = (unsigned char)needle[i];

			if (a >= 'A' && a <= 'Z')
				a = (unsigned char)(a - 'A' + 'a');
			if (b >= 'A' && b <= 'Z')
				b = (unsigned char)(b - 'A' + 'a');
			if (a != b)
				break;
		}
		if (i == n)
			return 1;
	}
	return 0;
}

/* Whether groupchat message m (body text, "" if none) mentions
 * occupant p: its nick in the text, or a XEP-0372 mention whose uri is
 * p's room JID. */
static int
mentions(const struct room *r, const struct xel *m, const char *text,
    const struct occupant *p)
{
	size_t jl = strlen(r->jid);

	if (contains_nocase(text, p->nick))
		return 1;
	for (const struct xel *c = xel_child(m, "reference", NS_REFERENCE);
	    c != NULL; c = xel_next(c, "reference", NS_REFERENCE)) {
		const char *uri = xel_attr(c, "uri");

		if (attr_is(c, "type", "mention") && uri != NULL &&
		    strncmp(uri, "xmpp:", 5) == 0 &&
		    strncmp(uri + 5, r->jid, jl) == 0 && uri[5 + jl] == '/' &&
		    strcmp(uri + 6 + jl, p->nick) == 0)
			return 1;
	}
	return 0;
}

/*
 * A groupchat message to everyone.  For XEP-0352 it waits while a
 * client is inactive (csi_classify), unless it mentions that occupant:
 * then its sessions get it as urgent.  Only occupants with an inactive
 * session are looked at, once each, on the one tree.
 */
static void
fan_groupchat(struct room *r, struct xel *m)
{
	const struct xel *b = xel_child(m, "body", NS_CLIENT);
	const char *text = NULL;
	struct fan f;

	fan_init(&f, m);
	for (struct occupant *p = r->occupants; p; p = p->next) {
		int mention = -1;       /* not looked at */

		for (unsigned i = 0; i < p->nsessions; i++) {
			struct session *ps = p->sessions[i];

			if (mention < 0 && csi_inactive(ps)) {
				if (text == NULL)
					text = b != NULL ? xel_text(b) : "";
				mention = mentions(r, m, text, p);
			}
			if (mention > 0)
				fan_send_urgent(&f, ps);
			else
				fan_send(&f, ps);
		}
	}
	fan_done(&f);
}

/* §8.1: subject changes by moderators, or anyone if changesubject. */
static int
may_change_subject(const struct room *r, const struct occupant *o)
{
	return o->role == ROLE_MODERATOR ||
	    (r->cfg.changesubject && o->role >= ROLE_PARTICIPANT);
}

/*
 * §7.4: a groupchat message from occupant o to everyone, from its room
 * JID, with the room's XEP-0359 <stanza-id/>, serialized once.
 */
static void
groupchat(struct room *r, struct occupant *o, struct session *s,
    struct xel *msg)
{
	const struct xel *subj = xel_child(msg, "subject", NS_CLIENT);
	struct xel *m;
	char sid[40];
	const char *id = xel_attr(msg, "id");
	uint64_t archive_id;

	if (o->role < ROLE_PARTICIPANT) {
		bounce(s, msg, "forbidden");                    /* §7.4 */
		return;
	}
	if (!occupant_may_speak(o)) {
		if (!o->msg_limited)
			session_log_limit(s, "muc-messages-per-second",
			    xmppd_conf->limits.muc_messages_per_second);
		o->msg_limited = 1;
		bounce_typed(s, msg, "wait", "policy-violation",
		    "Too many messages, wait a little");
		return;
	}
	o->msg_limited = 0;
	if (subj != NULL && xel_child(msg, "body", NS_CLIENT) == NULL) {
		const char *text = xel_text(subj);

		if (!may_change_subject(r, o)) {
			bounce(s, msg, "forbidden");           /* §8.1 */
			return;
		}
		if (strlen(text) > xmppd_conf->limits.muc_subject_length) {
			session_log_limit(s, "muc-subject-length",
			    (unsigned)xmppd_conf->limits.muc_subject_length);
			bounce_typed(s, msg, "modify", "not-acceptable",
			    "Subject too long");
			return;
		}
		free(r->subject);
		r->subject = *text != '\0' ? xstrdup(text) : NULL;
		free(r->subject_nick);
		r->subject_nick = xstrdup(o->nick);
		room_save(r, NULL, NULL);
	}
	m = room_message(r, o->nick);
	if (id != NULL)
		xel_set_attr(m, "id", id);
	for (const struct xel *c = msg->children; c; c = c->next) {
		/* What only the room may say. */
		if (c->name != NULL && (xel_is(c, "stanza-id", NS_SID) ||
		    xel_is(c, "x", NS_MUC_USER) ||
		    xel_is(c, "occupant-id", NS_OCCUPANT_ID) ||
		    xel_is(c, "delay", NS_DELAY)))
			continue;
		xel_append_copy(m, c);
	}
	add_occupant_id(m, o);
	archive_id = stanza_id_new(sid, sizeof(sid));
	{
		struct xel *x = xel_add(m, "stanza-id", NS_SID);

		xel_set_attr(x, "id", sid);
		xel_set_attr(x, "by", r->jid);
	}
	fan_groupchat(r, m);
	room_archive(r, m, archive_id);
	if (subj == NULL || xel_child(msg, "body", NS_CLIENT) != NULL)
		history_add(r, m, ev_time());
	arena_free(m->arena);
}

/* §7.5: a private message to one occupant's sessions. */
static void
private_message(struct room *r, struct occupant *o, struct session *s,
    struct xel *msg, const char *nick)
{
	struct occupant *t = occupant_by_nick(r, nick);
	enum allowpm pm = r->cfg.allowpm;
	struct xel *m;
	char *from;
	struct jid real = { 0 };
	int blocked = 0;

	if (pm == PM_NONE || (pm == PM_PARTICIPANTS &&
	    o->role < ROLE_PARTICIPANT) || (pm == PM_MODERATORS &&
	    o->role < ROLE_MODERATOR)) {
		bounce(s, msg, "forbidden");
		return;
	}
	if (t == NULL) {
		bounce(s, msg, "item-not-found");
		return;
	}
	m = xel_copy(arena_new(1024), msg);
	from = xasprintf("%s/%s", r->jid, o->nick);
	xel_set_attr(m, "from", from);
	free(from);
	for (struct xel *c = m->children, *next; c; c = next) {
		next = c->next;
		if (xel_is(c, "occupant-id", NS_OCCUPANT_ID))
			xel_remove(c);
	}
	add_occupant_id(m, o);
	/* §7.5: marked, so that carbons do not copy it (XEP-0280). */
	if (xel_child(m, "x", NS_MUC_USER) == NULL)
		xel_add(m, "x", NS_MUC_USER);
	/* XEP-0191 by the real JIDs (the copy's 'from' is the room
	 * JID): the delivery filter is asked with the sender's bare JID,
	 * so that the answer comes from here, from the room JID the
	 * sender wrote to, and names nobody's real JID. */
	if (jid_parse(&real, o->bare) == 0) {
		for (unsigned i = 0; i < t->nsessions; i++)
			if (hook_run_deliver(t->sessions[i], m, &real) ==
			    HOOK_HANDLED)
				blocked = 1;
		jid_free(&real);
	}
	if (blocked) {
		log_debug("muc: %s: a private message from %s to %s blocked",
		    r->jid, o->nick, t->nick);
		if (!attr_is(msg, "type", "error"))
			bounce(s, msg, "service-unavailable");
		arena_free(m->arena);
		return;
	}
	for (unsigned i = 0; i < t->nsessions; i++) {
		xel_set_attr(m, "to", t->sessions[i]->full);
		router_route(m);
	}
	arena_free(m->arena);
}

/* Invitations (§7.8.2) and declines (§7.8.3). */

static void
invitation_remember(struct room *r, const char *invitee, const char *inviter)
{
	struct invitation *iv;

	if (r->invites == NULL)
		r->invites = xcalloc(INVITES_MAX, sizeof(*r->invites));
	iv = &r->invites[r->invites_next];
	free(iv->invitee);
	free(iv->inviter);
	iv->invitee = xstrdup(invitee);
	iv->inviter = xstrdup(inviter);
	r->invites_next = (r->invites_next + 1) % INVITES_MAX;
}

/* The newest invitation of bare by the inviter named to (its full or
 * bare JID, or anyone when to is NULL); NULL if none. */
static struct invitation *
invitation_find(struct room *r, const char *bare, const struct jid *to)
{
	char *tbare = to ? jid_bare(to) : NULL;
	char *tfull = to && to->resource ? jid_full(to) : NULL;
	size_t tlen = tbare ? strlen(tbare) : 0;
	struct invitation *found = NULL;

	for (unsigned k = 1; r->invites != NULL && k <= INVITES_MAX; k++) {
		struct invitation *iv = &r->invites[(r->invites_next +
		    INVITES_MAX - k) % INVITES_MAX];

		if (iv->invitee == NULL || strcmp(iv->invitee, bare) != 0)
			continue;
		if (to == NULL || (tfull != NULL &&
		    strcmp(iv->inviter, tfull) == 0) || (tfull == NULL &&
		    tbare != NULL && strncmp(iv->inviter, tbare, tlen) == 0 &&
		    iv->inviter[tlen] == '/')) {
			found = iv;
			break;
		}
	}
	free(tbare);
	free(tfull);
	return found;
}

/* A message from the room itself to jid (no type: "normal"), with
 * the muc#user <x/> returned for the caller to fill. */
static struct xel *
room_notice(const struct room *r, const char *to, const char *id,
    struct xel **x)
{
	struct xel *m = xel_new(arena_new(1024), "message", NS_CLIENT);

	xel_set_attr(m, "from", r->jid);
	xel_set_attr(m, "to", to);
	if (id != NULL)
		xel_set_attr(m, "id", id);
	*x = xel_add(m, "x", NS_MUC_USER);
	return m;
}

static void
copy_reason(struct xel *to, const struct xel *from)
{
	const struct xel *reason = xel_child(from, "reason", NULL);

	if (reason != NULL)
		xel_text_set(xel_add(to, "reason", NULL), xel_text(reason));
}

/*
 * §7.8.2: occupant o invites others.  The room sends each invitee an
 * invitation from itself (the inviter's real JID, the room's password);
 * in a members-only room only those allowed to invite may (the room's
 * allowinvites, or an admin or owner, as in Prosody), and the invitee
 * becomes a member.
 */
static void
invite(struct room *r, struct occupant *o, struct session *s,
    struct xel *msg, const struct xel *x)
{
	const struct xel *inv;
	int n = 0, added = 0;

	if (r->cfg.membersonly && !r->cfg.allowinvites &&
	    o->affiliation < AFF_ADMIN) {
		bounce(s, msg, "forbidden");
		return;
	}
	for (inv = xel_child(x, "invite", NS_MUC_USER); inv;
	    inv = xel_next(inv, "invite", NS_MUC_USER), n++) {
		struct jid j = { 0 };
		const char *to = xel_attr(inv, "to");

		if (to == NULL || jid_parse(&j, to) < 0) {
			bounce(s, msg, to ? "jid-malformed" : "bad-request");
			return;
		}
		jid_free(&j);
	}
	if (n > INVITES_PER_MESSAGE) {
		bounce(s, msg, "policy-violation");
		return;
	}
	for (inv = xel_child(x, "invite", NS_MUC_USER); inv;
	    inv = xel_next(inv, "invite", NS_MUC_USER)) {
		struct jid j = { 0 };
		struct xel *m, *mx, *i;
		char *bare, *full;

		(void)jid_parse(&j, xel_attr(inv, "to"));
		bare = jid_bare(&j);
		full = jid_full(&j);
		jid_free(&j);
		if (r->cfg.membersonly &&
		    room_affiliation(r, bare) == AFF_NONE &&
		    r->naffils < MUC_AFFILIATIONS_MAX) {
			room_set_affiliation(r, bare, AFF_MEMBER);
			added = 1;
			log_info("muc: %s: %s a member, invited by %s", r->jid,
			    bare, s->full);
		}
		m = room_notice(r, full, xel_attr(msg, "id"), &mx);
		i = xel_add(mx, "invite", NULL);
		xel_set_attr(i, "from", s->full);
		copy_reason(i, inv);
		if (r->cfg.passwordprotected && r->cfg.secret != NULL)
			xel_text_set(xel_add(mx, "password", NULL),
			    r->cfg.secret);
		invitation_remember(r, bare, s->full);
		router_route(m);
		arena_free(m->arena);
		free(bare);
		free(full);
	}
	if (added)
		room_save(r, NULL, NULL);
}

/* §7.8.3: an invitee declines; relayed to the inviter, and only for an
 * invitation the room sent (the room is no relay to anyone). */
static void
decline(struct room *r, struct session *s, struct xel *msg,
    const struct xel *d)
{
	const char *to = xel_attr(d, "to");
	struct jid j = { 0 };
	struct invitation *iv;
	struct xel *m, *mx, *dd;

	if (to != NULL && jid_parse(&j, to) < 0) {
		bounce(s, msg, "jid-malformed");
		return;
	}
	iv = invitation_find(r, s->bare, to ? &j : NULL);
	jid_free(&j);
	if (iv == NULL) {
		bounce_typed(s, msg, "cancel", "item-not-found",
		    "no invitation to decline");
		return;
	}
	m = room_notice(r, iv->inviter, xel_attr(msg, "id"), &mx);
	dd = xel_add(mx, "decline", NULL);
	xel_set_attr(dd, "from", s->bare);
	copy_reason(dd, d);
	free(iv->invitee);
	free(iv->inviter);
	iv->invitee = iv->inviter = NULL;
	router_route(m);
	arena_free(m->arena);
}

/* Voice requests (§7.13). */

/* The first value of the form field var, or NULL. */
static const char *
form_value(const struct xel *x, const char *var)
{
	for (const struct xel *f = xel_child(x, "field", NS_XDATA); f;
	    f = xel_next(f, "field", NS_XDATA))
		if (attr_is(f, "var", var))
			return xel_text(xel_child(f, "value", NS_XDATA));
	return NULL;
}

/* §7.13: visitor o asks for voice; the moderators get the approval
 * form.  One request a minute per occupant. */
static void
voice_request(struct room *r, struct occupant *o, struct session *s,
    struct xel *msg)
{
	double now = mono_now(xmppd_loop);
	struct xel *m, *x;
	struct fan fan;

	if (!r->cfg.voicerequests) {
		bounce(s, msg, "forbidden");
		return;
	}
	if (o->role != ROLE_VISITOR) {
		bounce_typed(s, msg, "modify", "not-acceptable",
		    "only visitors ask for voice");
		return;
	}
	if (o->voice_asked != 0 &&
	    now - o->voice_asked < VOICE_REQUEST_INTERVAL) {
		bounce_typed(s, msg, "wait", "resource-constraint",
		    "one voice request a minute");
		return;
	}
	o->voice_asked = now;
	m = xel_new(arena_new(2048), "message", NS_CLIENT);
	xel_set_attr(m, "from", r->jid);
	x = xel_add(m, "x", NS_XDATA);
	xel_set_attr(x, "type", "form");
	xel_text_set(xel_add(x, "title", NULL), "Voice request");
	xel_text_set(xel_add(x, "instructions", NULL), "To grant voice, "
	    "check \"Grant voice\" and submit; to skip, cancel.");
	form_field(x, "FORM_TYPE", "hidden", NULL, FORM_REQUEST);
	form_field(x, "muc#role", "list-single", "Requested role",
	    "participant");
	form_field(x, "muc#jid", "jid-single", "User ID", s->full);
	form_field(x, "muc#roomnick", "text-single", "Room nickname",
	    o->nick);
	form_field(x, "muc#request_allow", "boolean", "Grant voice",
	    "false");
	fan_init(&fan, m);
	for (struct occupant *p = r->occupants; p; p = p->next)
		if (p->role == ROLE_MODERATOR)
			for (unsigned i = 0; i < p->nsessions; i++)
				fan_send(&fan, p->sessions[i]);
	fan_done(&fan);
	arena_free(m->arena);
	log_info("muc: %s: %s asks for voice", r->jid, o->nick);
}

/* §7.13: a moderator's answer to a voice request: voice when allowed
 * and the occupant is still a visitor. */
static void
voice_answer(struct room *r, struct occupant *me, struct session *s,
    struct xel *msg, const struct xel *form)
{
	const char *allow = form_value(form, "muc#request_allow");
	const char *nick = form_value(form, "muc#roomnick");
	struct occupant *t;

	if (me->role != ROLE_MODERATOR) {
		bounce(s, msg, "forbidden");
		return;
	}
	if (allow == NULL || !parse_bool(allow))
		return;                 /* not granted: nothing to do */
	if (nick == NULL || (t = occupant_by_nick(r, nick)) == NULL) {
		bounce(s, msg, "item-not-found");
		return;
	}
	if (t->role == ROLE_VISITOR) {
		struct pres_opts po = { 0 };

		t->role = ROLE_PARTICIPANT;
		pres_broadcast(r, t, &po, (const int[]){ 110, 0 }, NULL);
		log_info("muc: %s: voice for %s by %s", r->jid, t->nick,
		    me->nick);
	}
}

static void
message_to_room(struct service *svc, struct session *s, struct xel *msg,
    const struct jid *to)
{
	struct room *r = room_find(svc, to->node);
	struct occupant *o = r ? occupant_by_session(r, s) : NULL;
	const char *type = xel_attr(msg, "type");
	const struct xel *x = NULL, *form;
	const char *v;

	if (type != NULL && strcmp(type, "error") == 0)
		return;
	if (r == NULL) {
		bounce(s, msg, "item-not-found");
		return;
	}
	if (to->resource == NULL && (x = xel_child(msg, "x", NS_MUC_USER)) &&
	    (type == NULL || strcmp(type, "normal") == 0) &&
	    xel_child(x, "decline", NS_MUC_USER) != NULL) {
		decline(r, s, msg, xel_child(x, "decline", NS_MUC_USER));
		return;
	}
	if (o == NULL) {
		bounce(s, msg, "not-acceptable");               /* §7.4 */
		return;
	}
	if (to->resource != NULL) {
		if (type != NULL && strcmp(type, "groupchat") == 0)
			bounce(s, msg, "bad-request");          /* §7.5 */
		else
			private_message(r, o, s, msg, to->resource);
	} else if (type != NULL && strcmp(type, "groupchat") == 0)
		groupchat(r, o, s, msg);
	else if (x != NULL && xel_child(x, "invite", NS_MUC_USER) != NULL)
		invite(r, o, s, msg, x);
	else if ((form = xel_child(msg, "x", NS_XDATA)) != NULL &&
	    (v = form_value(form, "FORM_TYPE")) != NULL &&
	    strcmp(v, FORM_REQUEST) == 0) {
		if (form_value(form, "muc#request_allow") != NULL)
			voice_answer(r, o, s, msg, form);
		else
			voice_request(r, o, s, msg);
	} else
		bounce(s, msg, "feature-not-implemented");
}

/* IQs: disco. */

static void
add_feature(struct xel *q, const char *var)
{
	xel_set_attr(xel_add(q, "feature", NULL), "var", var);
}

static struct xel *
form_field(struct xel *form, const char *var, const char *type,
    const char *label, const char *value)
{
	struct xel *f = xel_add(form, "field", NULL);

	xel_set_attr(f, "var", var);
	if (type)
		xel_set_attr(f, "type", type);
	if (label)
		xel_set_attr(f, "label", label);
	if (value)
		xel_text_set(xel_add(f, "value", NULL), value);
	return f;
}

static void
room_info(const struct room *r, struct xel *q)
{
	struct xel *id = xel_add(q, "identity", NULL), *x;
	char n[16];

	xel_set_attr(id, "category", "conference");
	xel_set_attr(id, "type", "text");
	xel_set_attr(id, "name", r->cfg.name ? r->cfg.name : r->node);
	add_feature(q, NS_MUC);
	add_feature(q, NS_DISCO_INFO);
	add_feature(q, NS_SID);
	add_feature(q, NS_SELF_PING);
	add_feature(q, NS_OCCUPANT_ID);
	add_feature(q, r->cfg.membersonly ? "muc_membersonly" : "muc_open");
	add_feature(q, r->cfg.moderated ? "muc_moderated" :
	    "muc_unmoderated");
	add_feature(q, r->cfg.whois_anyone ? "muc_nonanonymous" :
	    "muc_semianonymous");
	add_feature(q, r->cfg.passwordprotected ? "muc_passwordprotected" :
	    "muc_unsecured");
	add_feature(q, r->cfg.persistent ? "muc_persistent" :
	    "muc_temporary");
	add_feature(q, r->cfg.publicroom ? "muc_public" : "muc_hidden");
	if (r->cfg.logging && mam_rooms_enabled()) {
		add_feature(q, NS_MAM);           /* XEP-0313 §6.2 */
		add_feature(q, NS_MODERATE);      /* XEP-0425 */
	}
	add_feature(q, NS_VCARD);
	/* §15.5.4: the muc#roominfo form. */
	x = xel_add(q, "x", NS_XDATA);
	xel_set_attr(x, "type", "result");
	form_field(x, "FORM_TYPE", "hidden", NULL, FORM_ROOMINFO);
	form_field(x, "muc#roominfo_description", NULL, "Description",
	    r->cfg.desc ? r->cfg.desc : "");
	snprintf(n, sizeof(n), "%u", r->noccupants);
	if (r->cfg.lang != NULL)
		form_field(x, "muc#roominfo_lang", NULL, "Language",
		    r->cfg.lang);
	form_field(x, "muc#roominfo_occupants", NULL,
	    "Number of occupants", n);
	form_field(x, "muc#roominfo_subject", NULL, "Current subject",
	    r->subject ? r->subject : "");
	form_field(x, "muc#roomconfig_roomname", NULL, "Name",
	    r->cfg.name ? r->cfg.name : "");
	form_field(x, "muc#roominfo_avatarhash", "text-multi",
	    "Avatar hash", r->photo_hash);
}

static void
service_info(struct xel *q)
{
	struct xel *id = xel_add(q, "identity", NULL);

	xel_set_attr(id, "category", "conference");
	xel_set_attr(id, "type", "text");
	xel_set_attr(id, "name", "Chatrooms");
	add_feature(q, NS_MUC);
	add_feature(q, NS_DISCO_INFO);
	add_feature(q, NS_DISCO_ITEMS);
}

/* §6.3: the public rooms (not locked ones), by node. */
struct listed {
	const char *node, *name;
};

static int
listed_cmp(const void *a, const void *b)
{
	return strcmp(((const struct listed *)a)->node,
	    ((const struct listed *)b)->node);
}

struct listing {
	const struct service *svc;
	struct listed *l;
	size_t n;
};

/* A persistent room that is not in memory (those that are come from
 * svc->rooms, with their current configuration). */
static void
list_stored(const char *node, void *value, void *arg)
{
	struct listing *g = arg;
	const struct stored *sr = value;

	if ((sr->flags & MUC_ROOM_PUBLIC) &&
	    strmap_get(g->svc->rooms, node) == NULL)
		g->l[g->n++] = (struct listed){ node, sr->name };
}

static struct listed *
public_rooms(const struct service *svc, size_t *np)
{
	size_t n;
	void **rooms = strmap_values(svc->rooms, &n);
	struct listing g = { svc, NULL, 0 };

	g.l = xcalloc(n + strmap_count(svc->stored) + 1, sizeof(*g.l));
	for (size_t i = 0; i < n; i++) {
		const struct room *r = rooms[i];

		if (!r->locked && r->cfg.publicroom)
			g.l[g.n++] = (struct listed){ r->node, r->cfg.name };
	}
	free(rooms);
	strmap_foreach(svc->stored, list_stored, &g);
	qsort(g.l, g.n, sizeof(*g.l), listed_cmp);
	*np = g.n;
	return g.l;
}

/* The node of a room JID of svc given as a XEP-0059 <after/> or
 * <before/>, or the text itself when it is not one (it then sorts
 * wherever it sorts). */
static const char *
rsm_node(const struct service *svc, const char *v)
{
	size_t dl = strlen(svc->domain), vl = strlen(v);

	if (vl > dl + 1 && v[vl - dl - 1] == '@' &&
	    strcmp(v + vl - dl, svc->domain) == 0)
		return xstrndup(v, vl - dl - 1);
	return xstrdup(v);
}

/*
 * disco#items of the service: its public rooms, paged by XEP-0059 (the
 * keys are the room JIDs, in order; without <set/> at most
 * ROOM_LIST_MAX and a <set/> telling how to get the rest).  Returns the
 * XEP-0059 error condition, or NULL.
 */
static const char *
list_rooms(const struct service *svc, const struct xel *q,
    struct xel *res)
{
	const struct xel *set = xel_child(q, "set", NS_RSM), *e;
	size_t n, first = 0, last, max = ROOM_LIST_MAX;
	struct listed *l = public_rooms(svc, &n);
	char *key = NULL;

	if (set != NULL && (e = xel_child(set, "max", NS_RSM)) != NULL) {
		char *end;
		unsigned long v = strtoul(xel_text(e), &end, 10);

		if (*xel_text(e) < '0' || *xel_text(e) > '9' || *end) {
			free(l);
			return "bad-request";
		}
		max = v < ROOM_LIST_MAX ? v : ROOM_LIST_MAX;
	}
	if (set != NULL && (e = xel_child(set, "after", NS_RSM)) != NULL) {
		key = (char *)rsm_node(svc, xel_text(e));
		while (first < n && strcmp(l[first].node, key) <= 0)
			first++;
	} else if (set != NULL &&
	    (e = xel_child(set, "before", NS_RSM)) != NULL) {
		size_t end = n;

		if (xel_text(e)[0] != '\0') {
			key = (char *)rsm_node(svc, xel_text(e));
			for (end = 0; end < n && strcmp(l[end].node, key) < 0;
			    end++)
				;
		}
		first = end > max ? end - max : 0;
	} else if (set != NULL &&
	    (e = xel_child(set, "index", NS_RSM)) != NULL) {
		first = strtoul(xel_text(e), NULL, 10);
		if (first > n) {
			free(l);
			return "item-not-found";
		}
	}
	free(key);
	last = n - first > max ? first + max : n;
	for (size_t i = first; i < last; i++) {
		struct xel *it = xel_add(res, "item", NULL);
		char *jid = xasprintf("%s@%s", l[i].node, svc->domain);

		xel_set_attr(it, "jid", jid);
		xel_set_attr(it, "name", l[i].name ? l[i].name : l[i].node);
		free(jid);
	}
	if (set != NULL || last - first < n) {
		struct xel *rs = xel_add(res, "set", NS_RSM);
		char count[24];

		if (last > first) {
			char *a = xasprintf("%s@%s", l[first].node,
			    svc->domain);
			char *b = xasprintf("%s@%s", l[last - 1].node,
			    svc->domain);
			char idx[24];
			struct xel *f = xel_add(rs, "first", NULL);

			snprintf(idx, sizeof(idx), "%zu", first);
			xel_set_attr(f, "index", idx);
			xel_text_set(f, a);
			xel_text_set(xel_add(rs, "last", NULL), b);
			free(a);
			free(b);
		}
		snprintf(count, sizeof(count), "%zu", n);
		xel_text_set(xel_add(rs, "count", NULL), count);
	}
	free(l);
	return NULL;
}

/* IQs: the owner's configuration form (§10.1.2, §10.2). */

/* A list-multi of roles (moderator, participant, visitor): set, a set
 * of 1 << enum role. */
static void
roles_field(struct xel *x, const char *var, const char *label,
    unsigned set)
{
	static const char *const labels[] = { NULL, "Visitor", "Participant",
	    "Moderator" };
	struct xel *f = form_field(x, var, "list-multi", label, NULL);

	for (int i = ROLE_MODERATOR; i > ROLE_NONE; i--)
		if (set & 1u << i)
			xel_text_set(xel_add(f, "value", NULL), role_names[i]);
	for (int i = ROLE_MODERATOR; i > ROLE_NONE; i--) {
		struct xel *o = xel_add(f, "option", NULL);

		xel_set_attr(o, "label", labels[i]);
		xel_text_set(xel_add(o, "value", NULL), role_names[i]);
	}
}

/* A jid-multi of the bare JIDs with affiliation a. */
static void
affils_field(const struct room *r, struct xel *x, const char *var,
    const char *label, enum affiliation a)
{
	struct xel *f = form_field(x, var, "jid-multi", label, NULL);

	for (size_t i = 0; i < r->naffils; i++)
		if (r->affils[i].aff == a)
			xel_text_set(xel_add(f, "value", NULL),
			    r->affils[i].jid);
}

/* The set of roles of a list-multi field; -1 for an unknown value. */
static int
roles_value(const struct xel *f)
{
	int set = 0;

	for (const struct xel *v = xel_child(f, "value", NS_XDATA); v;
	    v = xel_next(v, "value", NS_XDATA)) {
		int i;

		for (i = ROLE_VISITOR; i <= ROLE_MODERATOR &&
		    strcmp(xel_text(v), role_names[i]) != 0; i++)
			;
		if (i > ROLE_MODERATOR)
			return -1;
		set |= 1 << i;
	}
	return set;
}

static void
config_form(const struct room *r, struct xel *q)
{
	struct xel *x = xel_add(q, "x", NS_XDATA), *f;
	char n[16];

	xel_set_attr(x, "type", "form");
	xel_text_set(xel_add(x, "title", NULL), "Room configuration");
	form_field(x, "FORM_TYPE", "hidden", NULL, FORM_ROOMCONFIG);
	form_field(x, "muc#roomconfig_roomname", "text-single", "Name",
	    r->cfg.name ? r->cfg.name : "");
	form_field(x, "muc#roomconfig_roomdesc", "text-single",
	    "Description", r->cfg.desc ? r->cfg.desc : "");
	form_field(x, "muc#roomconfig_persistentroom", "boolean",
	    "Keep the room when empty", r->cfg.persistent ? "1" : "0");
	form_field(x, "muc#roomconfig_publicroom", "boolean",
	    "List the room publicly", r->cfg.publicroom ? "1" : "0");
	form_field(x, "muc#roomconfig_membersonly", "boolean",
	    "Members only", r->cfg.membersonly ? "1" : "0");
	form_field(x, "muc#roomconfig_moderatedroom", "boolean",
	    "Moderated", r->cfg.moderated ? "1" : "0");
	form_field(x, "muc#roomconfig_passwordprotectedroom", "boolean",
	    "Password required", r->cfg.passwordprotected ? "1" : "0");
	form_field(x, "muc#roomconfig_roomsecret", "text-private",
	    "Password", r->cfg.secret ? r->cfg.secret : "");
	snprintf(n, sizeof(n), "%u", r->cfg.maxusers);
	{
		char label[64];

		snprintf(label, sizeof(label), "Maximum occupants (0: the "
		    "server's %u)", xmppd_conf->limits.muc_occupants);
		form_field(x, "muc#roomconfig_maxusers", "text-single", label,
		    n);
	}
	f = form_field(x, "muc#roomconfig_whois", "list-single",
	    "Who may see real JIDs", r->cfg.whois_anyone ? "anyone" :
	    "moderators");
	for (int i = 0; i < 2; i++) {
		struct xel *o = xel_add(f, "option", NULL);

		/* Labelled: clients show the label (profanity shows
		 * "(null)" without one). */
		xel_set_attr(o, "label", i ? "Anyone" : "Moderators only");
		xel_text_set(xel_add(o, "value", NULL), i ? "anyone" :
		    "moderators");
	}
	form_field(x, "muc#roomconfig_changesubject", "boolean",
	    "Occupants may change the subject", r->cfg.changesubject ? "1" :
	    "0");
	form_field(x, "muc#roomconfig_allowinvites", "boolean",
	    "Occupants may invite others (members-only: and make them "
	    "members)", r->cfg.allowinvites ? "1" : "0");
	form_field(x, "muc#roomconfig_allowvoicerequests", "boolean",
	    "Visitors may ask moderators for voice", r->cfg.voicerequests ?
	    "1" : "0");
	f = form_field(x, "muc#roomconfig_allowpm", "list-single",
	    "Who may send private messages", pm_names[r->cfg.allowpm]);
	for (int i = 0; i < 4; i++) {
		static const char *const labels[] = { "Anyone",
		    "Participants", "Moderators", "Nobody" };
		struct xel *o = xel_add(f, "option", NULL);

		xel_set_attr(o, "label", labels[i]);
		xel_text_set(xel_add(o, "value", NULL), pm_names[i]);
	}
	snprintf(n, sizeof(n), "%u", r->cfg.historylength);
	form_field(x, "muc#roomconfig_historylength", "text-single",
	    "Messages of history (at most 200)", n);
	form_field(x, "muc#roomconfig_enablelogging", "boolean",
	    "Keep an archive of the messages (XEP-0313)", r->cfg.logging ?
	    "1" : "0");
	form_field(x, "muc#roomconfig_lang", "text-single",
	    "Language of the discussion (e.g. en)", r->cfg.lang ?
	    r->cfg.lang : "");
	roles_field(x, "muc#roomconfig_presencebroadcast",
	    "Roles whose presence is broadcast", r->cfg.bcast);
	roles_field(x, "muc#roomconfig_getmemberlist",
	    "Roles that may get the member list", r->cfg.memberlist);
	affils_field(r, x, "muc#roomconfig_roomadmins", "Admins", AFF_ADMIN);
	affils_field(r, x, "muc#roomconfig_roomowners", "Owners", AFF_OWNER);
}

/* Apply a submitted form; -1 (and *why) on a value out of range. */
static int
config_apply(const struct xel *x, struct room_config *c,
    const char **why)
{
	for (const struct xel *f = xel_child(x, "field", NS_XDATA); f;
	    f = xel_next(f, "field", NS_XDATA)) {
		const char *var = xel_attr(f, "var");
		const char *v = xel_text(xel_child(f, "value", NS_XDATA));
		unsigned long n;
		char *end;

		if (var == NULL)
			continue;
		if (strcmp(var, "muc#roomconfig_roomname") == 0) {
			free(c->name);
			c->name = dup_bounded(v);
		} else if (strcmp(var, "muc#roomconfig_roomdesc") == 0) {
			free(c->desc);
			c->desc = dup_bounded(v);
		} else if (strcmp(var, "muc#roomconfig_roomsecret") == 0) {
			free(c->secret);
			c->secret = dup_bounded(v);
		} else if (strcmp(var, "muc#roomconfig_persistentroom") == 0)
			c->persistent = parse_bool(v);
		else if (strcmp(var, "muc#roomconfig_publicroom") == 0)
			c->publicroom = parse_bool(v);
		else if (strcmp(var, "muc#roomconfig_membersonly") == 0)
			c->membersonly = parse_bool(v);
		else if (strcmp(var, "muc#roomconfig_moderatedroom") == 0)
			c->moderated = parse_bool(v);
		else if (strcmp(var,
		    "muc#roomconfig_passwordprotectedroom") == 0)
			c->passwordprotected = parse_bool(v);
		else if (strcmp(var, "muc#roomconfig_changesubject") == 0)
			c->changesubject = parse_bool(v);
		else if (strcmp(var, "muc#roomconfig_allowinvites") == 0)
			c->allowinvites = parse_bool(v);
		else if (strcmp(var, "muc#roomconfig_allowvoicerequests") == 0)
			c->voicerequests = parse_bool(v);
		else if (strcmp(var, "muc#roomconfig_enablelogging") == 0)
			c->logging = parse_bool(v);
		else if (strcmp(var, "muc#roomconfig_lang") == 0) {
			/* An RFC 5646 tag: letters, digits and '-' only. */
			if (strlen(v) > 35 || strspn(v, "abcdefghijklmnopqrstu"
			    "vwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") !=
			    strlen(v)) {
				*why = "lang: a language tag such as en or "
				    "pt-BR";
				return -1;
			}
			free(c->lang);
			c->lang = v[0] ? xstrdup(v) : NULL;
		} else if (strcmp(var,
		    "muc#roomconfig_presencebroadcast") == 0 ||
		    strcmp(var, "muc#roomconfig_getmemberlist") == 0) {
			int set = roles_value(f);

			if (set < 0) {
				*why = "roles: moderator, participant or "
				    "visitor";
				return -1;
			}
			if (var[15] == 'p')
				c->bcast = (unsigned char)set;
			else
				c->memberlist = (unsigned char)set;
		}
		else if (strcmp(var, "muc#roomconfig_whois") == 0) {
			if (strcmp(v, "anyone") != 0 &&
			    strcmp(v, "moderators") != 0) {
				*why = "whois: anyone or moderators";
				return -1;
			}
			c->whois_anyone = strcmp(v, "anyone") == 0;
		} else if (strcmp(var, "muc#roomconfig_allowpm") == 0) {
			int i;

			for (i = 0; i < 4 && strcmp(v, pm_names[i]) != 0; i++)
				;
			if (i == 4) {
				*why = "allowpm: anyone, participants, "
				    "moderators or none";
				return -1;
			}
			c->allowpm = (unsigned char)i;
		} else if (strcmp(var, "muc#roomconfig_maxusers") == 0 ||
		    strcmp(var, "muc#roomconfig_historylength") == 0) {
			int hist = var[15] == 'h';

			if (strcmp(v, "none") == 0 && !hist)
				n = 0;
			else {
				n = strtoul(v, &end, 10);
				if (*v == '\0' || *end != '\0' ||
				    n > (hist ? HISTORY_MAX : 1000000)) {
					*why = hist ? "historylength: 0 to "
					    "200" : "maxusers: a number";
					return -1;
				}
			}
			if (!hist &&
			    n > xmppd_conf->limits.muc_occupants) {
				static char msg[64];

				/* limits { muc-occupants } */
				snprintf(msg, sizeof(msg), "maxusers: at "
				    "most %u", xmppd_conf->limits.muc_occupants);
				*why = msg;
				return -1;
			}
			if (hist)
				c->historylength = (unsigned)n;
			else
				c->maxusers = (unsigned)n;
		}
	}
	return 0;
}

static void
config_free(struct room_config *c)
{
	free(c->name);
	free(c->desc);
	free(c->secret);
	free(c->lang);
}

/* §10.9: everyone out with the <destroy/>, then the room goes. */
static void
room_destroy(struct room *r, const struct xel *destroy, const char *why,
    int code)
{
	struct pres_opts po = { 0 };
	int codes[2] = { code, 0 };
	struct xel *d = NULL;

	if (destroy != NULL) {
		d = xel_new(arena_new(512), "destroy", NS_MUC_USER);
		if (xel_attr(destroy, "jid"))
			xel_set_attr(d, "jid", xel_attr(destroy, "jid"));
		if (xel_child(destroy, "reason", NULL))
			xel_text_set(xel_add(d, "reason", NULL),
			    xel_text(xel_child(destroy, "reason", NULL)));
	}
	po.unavailable = 1;
	po.destroy = d;
	while (r->occupants != NULL) {
		struct occupant *o = r->occupants;

		for (unsigned i = 0; i < o->nsessions; i++)
			joined_del(o->sessions[i]);
		{
			struct fan f;
			struct xel *st = pres_build(r, o, &po, 0, 1, codes,
			    NULL);

			fan_init(&f, st);
			for (unsigned i = 0; i < o->nsessions; i++)
				fan_send(&f, o->sessions[i]);
			fan_done(&f);
			arena_free(st->arena);
		}
		r->occupants = o->next;
		occupant_free(o);
	}
	r->noccupants = 0;
	if (d)
		arena_free(d->arena);
	log_info("muc: %s destroyed (%s)", r->jid, why);
	room_free(r);
}

static void
owner_set(struct room *r, struct session *s, struct xel *iq,
    struct xel *q)
{
	struct xel *x = xel_child(q, "x", NS_XDATA);
	struct xel *destroy = xel_child(q, "destroy", NS_MUC_OWNER);
	const char *why = NULL;
	struct room_config c;
	int was_whois, was_persistent, was_membersonly, was_logging;

	if (destroy != NULL) {
		if (!r->cfg.persistent || !room_unsave(r, s, iq))
			send_free(s, stanza_iq_result(iq));
		room_destroy(r, destroy, "by its owner", 0);
		return;
	}
	if (x == NULL) {
		bounce(s, iq, "bad-request");
		return;
	}
	if (attr_is(x, "type", "cancel")) {
		send_free(s, stanza_iq_result(iq));
		/* §10.1.3: cancelling the initial configuration. */
		if (r->locked)
			room_destroy(r, NULL, "configuration cancelled", 0);
		return;
	}
	if (!attr_is(x, "type", "submit")) {
		bounce(s, iq, "bad-request");
		return;
	}
	c = r->cfg;
	c.name = c.name ? xstrdup(c.name) : NULL;
	c.desc = c.desc ? xstrdup(c.desc) : NULL;
	c.secret = c.secret ? xstrdup(c.secret) : NULL;
	c.lang = c.lang ? xstrdup(c.lang) : NULL;
	if (config_apply(x, &c, &why) < 0 ||
	    (c.passwordprotected && c.secret == NULL &&
	    (why = "passwordprotectedroom without roomsecret")) ||
	    (why = owner_lists(r, s, x)) != NULL) {
		config_free(&c);
		send_free(s, stanza_error(iq, "modify", "not-acceptable", why));
		return;
	}
	was_whois = r->cfg.whois_anyone;
	was_persistent = r->cfg.persistent;
	was_membersonly = r->cfg.membersonly;
	was_logging = r->cfg.logging;
	config_free(&r->cfg);
	r->cfg = c;
	if (r->hist_cap != r->cfg.historylength)
		history_resize(r, r->cfg.historylength);
	/* The answer once the room is stored (or no longer is). */
	if (!room_save(r, s, iq) && !(was_persistent && !r->locked &&
	    room_unsave(r, s, iq)))
		send_free(s, stanza_iq_result(iq));
	if (r->locked) {
		/* §10.1.2: instant (empty form) or configured: open now. */
		r->locked = 0;
		log_info("muc: %s unlocked by %s", r->jid, s->full);
		return;
	}
	if (r->occupants == NULL) {
		room_maybe_free(r);
		return;
	}
	{
		/* §10.2.1: 104, and 172/173 when real JIDs became visible
		 * or hidden. */
		int codes[4] = { 104, 0, 0, 0 }, n = 1;

		if (was_whois != r->cfg.whois_anyone)
			codes[n++] = r->cfg.whois_anyone ? 172 : 173;
		if (was_logging != r->cfg.logging && mam_rooms_enabled())
			codes[n++] = r->cfg.logging ? 170 : 171;
		notify_config(r, codes);
	}
	if (r->cfg.membersonly && !was_membersonly) {
		/* §9.3 ... members-only now: the others out with 322. */
		for (struct occupant *o = r->occupants, *next; o; o = next) {
			next = o->next;
			if (o->affiliation < AFF_MEMBER)
				occupant_remove(r, o, 322, NULL, NULL);
		}
		room_maybe_free(r);
	}
}

/*
 * The muc#roomconfig_roomowners and _roomadmins fields of a submitted
 * form (§10.2: the full lists): JIDs listed get the affiliation, those
 * that had it and are not listed lose it (to none), as if the owner had
 * sent the admin items (§10.3-10.7: the occupants concerned are told).
 * A list that cannot be applied (a malformed JID, no owner left)
 * changes nothing: the reason, or NULL.
 */
static const char *
owner_lists(struct room *r, struct session *s, const struct xel *x)
{
	static const char *const vars[2] = { "muc#roomconfig_roomowners",
	    "muc#roomconfig_roomadmins" };
	static const enum affiliation affs[2] = { AFF_OWNER, AFF_ADMIN };
	const struct xel *fields[2] = { NULL, NULL };
	struct strmap *listed[2] = { NULL, NULL };
	struct occupant *me = occupant_by_session(r, s);
	const char *err = NULL;
	struct xel *item;

	for (const struct xel *f = xel_child(x, "field", NS_XDATA); f;
	    f = xel_next(f, "field", NS_XDATA))
		for (int k = 0; k < 2; k++)
			if (attr_is(f, "var", vars[k]))
				fields[k] = f;
	for (int k = 0; k < 2 && err == NULL; k++) {
		if (fields[k] == NULL)
			continue;
		listed[k] = strmap_new();
		for (const struct xel *v = xel_child(fields[k], "value",
		    NS_XDATA); v && err == NULL;
		    v = xel_next(v, "value", NS_XDATA)) {
			struct jid j = { 0 };
			char *bare;

			if (jid_parse(&j, xel_text(v)) == -1 ||
			    j.resource != NULL) {
				err = "roomowners/roomadmins: bare JIDs";
				jid_free(&j);
				break;
			}
			bare = jid_bare(&j);
			jid_free(&j);
			strmap_put(listed[k], bare, (void *)vars[k]);
			free(bare);
		}
	}
	if (err == NULL && listed[0] != NULL && strmap_count(listed[0]) == 0)
		err = "roomowners: a room keeps at least one owner";
	item = xel_new(arena_new(512), "item", NS_MUC_ADMIN);
	for (int pass = 0; pass < 2 && err == NULL; pass++)
		for (int k = 0; k < 2; k++) {
			size_t n = 0;
			char **jids;

			if (listed[k] == NULL)
				continue;
			/* First who gains (so that an owner remains),
			 * then who loses. */
			jids = xcalloc(r->naffils + strmap_count(listed[k]) + 1,
			    sizeof(*jids));
			if (pass == 0) {
				for (const struct xel *e = xel_child(fields[k],
				    "value", NS_XDATA); e;
				    e = xel_next(e, "value", NS_XDATA)) {
					struct jid j = { 0 };

					if (jid_parse(&j, xel_text(e)) == 0)
						jids[n++] = jid_bare(&j);
					jid_free(&j);
				}
			} else
				for (size_t i = 0; i < r->naffils; i++)
					if (r->affils[i].aff == affs[k] &&
					    strmap_get(listed[k],
					    r->affils[i].jid) == NULL)
						jids[n++] = xstrdup(
						    r->affils[i].jid);
			for (size_t i = 0; i < n; i++) {
				enum affiliation to = pass ? AFF_NONE : affs[k];

				/* Listed as owner and admin: owner. */
				if (to == AFF_ADMIN && listed[0] != NULL &&
				    strmap_get(listed[0], jids[i]) != NULL)
					to = AFF_OWNER;
				if (room_affiliation(r, jids[i]) == to)
					continue;
				if (pass == 1 && k == 1 && listed[0] != NULL &&
				    strmap_get(listed[0], jids[i]) != NULL)
					continue;
				xel_set_attr(item, "affiliation",
				    aff_names[to]);
				xel_set_attr(item, "jid", jids[i]);
				if (err == NULL)
					err = admin_item(r, me, AFF_OWNER,
					    item);
			}
			for (size_t i = 0; i < n; i++)
				free(jids[i]);
			free(jids);
		}
	arena_free(item->arena);
	for (int k = 0; k < 2; k++)
		if (listed[k] != NULL)
			strmap_free(listed[k]);
	return err;
}

static void
iq_owner(struct room *r, struct session *s, struct xel *iq,
    struct xel *q)
{
	if (room_affiliation(r, s->bare) != AFF_OWNER) {
		bounce(s, iq, "forbidden");
		return;
	}
	if (attr_is(iq, "type", "get")) {
		struct xel *res = stanza_iq_result(iq);

		config_form(r, xel_add(res, "query", NS_MUC_OWNER));
		send_free(s, res);
	} else
		owner_set(r, s, iq, q);
}

/* IQs: the admin namespace (§8, §9): affiliation lists and changes,
 * roles (kick, voice). */

static int
parse_aff(const char *v)
{
	for (int i = 0; i < 5; i++)
		if (v && strcmp(v, aff_names[i]) == 0)
			return i;
	return -1;
}

static int
parse_role(const char *v)
{
	for (int i = 0; i < 4; i++)
		if (v && strcmp(v, role_names[i]) == 0)
			return i;
	return -1;
}

static void
admin_get(struct room *r, struct session *s, struct xel *iq,
    const struct xel *item, enum affiliation mine, struct occupant *me)
{
	int a = parse_aff(xel_attr(item, "affiliation"));
	int role = parse_role(xel_attr(item, "role"));
	struct xel *res, *q;

	if ((a < 0 && role < 0) || a == AFF_NONE) {
		bounce(s, iq, "bad-request");
		return;
	}
	/* §9.5, §8.5: lists for admins; roles for moderators; the member
	 * list also for the roles in muc#roomconfig_getmemberlist. */
	if (a >= 0 ? mine < AFF_ADMIN && !(a == AFF_MEMBER && me != NULL &&
	    (r->cfg.memberlist & 1u << me->role)) : (me == NULL ||
	    me->role < ROLE_MODERATOR)) {
		bounce(s, iq, "forbidden");
		return;
	}
	res = stanza_iq_result(iq);
	q = xel_add(res, "query", NS_MUC_ADMIN);
	if (a >= 0)
		for (size_t i = 0; i < r->naffils; i++) {
			struct xel *it;

			if ((int)r->affils[i].aff != a)
				continue;
			it = xel_add(q, "item", NULL);
			xel_set_attr(it, "affiliation", aff_names[a]);
			xel_set_attr(it, "jid", r->affils[i].jid);
		}
	else
		for (struct occupant *o = r->occupants; o; o = o->next) {
			struct xel *it;

			if (o->role != role)
				continue;
			it = xel_add(q, "item", NULL);
			xel_set_attr(it, "role", role_names[role]);
			xel_set_attr(it, "nick", o->nick);
			xel_set_attr(it, "affiliation",
			    aff_names[o->affiliation]);
			if (o->nsessions)
				xel_set_attr(it, "jid", o->bare);
		}
	send_free(s, res);
}

/* Remove occupant o entirely, telling it why (307 kicked, 301 banned,
 * 321 affiliation lost in a members-only room). */
static void
occupant_remove(struct room *r, struct occupant *o, int code,
    const char *reason, const char *actor)
{
	int codes[2] = { code, 0 };
	struct pres_opts po = { 0 };

	po.unavailable = 1;
	po.codes = codes;
	po.reason = reason;
	po.actor = actor;
	while (o->nsessions > 1)
		occupant_leave(r, o, o->sessions[o->nsessions - 1], &po);
	occupant_leave(r, o, o->sessions[0], &po);
}

/* Status 101 (§9.3, §9.4...): the affiliation of someone not in the
 * room changed; told in a message if they are online. */
static void
affiliation_notice(const struct room *r, const char *bare,
    enum affiliation a)
{
	struct xel *m, *x, *it;

	if (sm_find_bare_str(bare) == NULL)
		return;
	m = room_notice(r, bare, NULL, &x);
	it = xel_add(x, "item", NULL);
	xel_set_attr(it, "affiliation", aff_names[a]);
	xel_set_attr(it, "jid", bare);
	xel_set_attr(xel_add(x, "status", NULL), "code", "101");
	router_route(m);
	arena_free(m->arena);
}

/* One <item/> of an admin set; 0 or the error condition. */
static const char *
admin_item(struct room *r, struct occupant *me, enum affiliation mine,
    const struct xel *item)
{
	const char *nick = xel_attr(item, "nick");
	const char *jid = xel_attr(item, "jid");
	const char *reason;
	int a = parse_aff(xel_attr(item, "affiliation"));
	int role = parse_role(xel_attr(item, "role"));
	const char *actor = me ? me->nick : NULL;

	reason = xel_child(item, "reason", NULL) ?
	    xel_text(xel_child(item, "reason", NULL)) : NULL;
	if (role >= 0) {
		struct occupant *o = nick ? occupant_by_nick(r, nick) : NULL;

		if (o == NULL)
			return "item-not-found";
		if (me == NULL || me->role < ROLE_MODERATOR ||
		    o->affiliation > mine ||
		    (role == ROLE_NONE && o->affiliation >= AFF_ADMIN) ||
		    (role == ROLE_MODERATOR && mine < AFF_ADMIN))
			return "not-allowed";
		if (role == ROLE_NONE) {
			occupant_remove(r, o, 307, reason, actor);
			return NULL;
		}
		o->role = (unsigned char)role;
		{
			struct pres_opts po = { 0 };

			po.reason = reason;
			pres_broadcast(r, o, &po, (const int[]){ 110, 0 },
			    NULL);
		}
		return NULL;
	}
	if (a < 0 || jid == NULL)
		return "bad-request";
	{
		struct jid j = { 0 };
		char *bare;
		enum affiliation old;
		int present = 0;

		if (jid_parse(&j, jid) < 0)
			return "jid-malformed";
		bare = jid_bare(&j);
		jid_free(&j);
		old = room_affiliation(r, bare);
		/* §9: admins deal with members and outcasts; owners with
		 * everything. */
		if (mine < AFF_ADMIN || (mine == AFF_ADMIN &&
		    (a >= AFF_ADMIN || old >= AFF_ADMIN))) {
			free(bare);
			return "not-allowed";
		}
		if (old == AFF_OWNER && a != AFF_OWNER) {
			size_t owners = 0;

			for (size_t i = 0; i < r->naffils; i++)
				owners += r->affils[i].aff == AFF_OWNER;
			if (owners == 1) {
				free(bare);
				return "conflict";              /* §10.6 */
			}
		}
		/* What storage keeps (store/muc.h). */
		if (old == AFF_NONE && a != AFF_NONE &&
		    r->naffils >= MUC_AFFILIATIONS_MAX) {
			free(bare);
			return "resource-constraint";
		}
		room_set_affiliation(r, bare, (enum affiliation)a);
		for (struct occupant *o = r->occupants, *next; o; o = next) {
			next = o->next;
			if (strcmp(o->bare, bare) != 0)
				continue;
			present = 1;
			o->affiliation = (unsigned char)a;
			if (a == AFF_OUTCAST)
				occupant_remove(r, o, 301, reason, actor);
			else if (r->cfg.membersonly && a < AFF_MEMBER)
				occupant_remove(r, o, 321, reason, actor);
			else {
				struct pres_opts po = { 0 };

				o->role = (unsigned char)default_role(r,
				    (enum affiliation)a);
				pres_broadcast(r, o, &po,
				    (const int[]){ 110, 0 }, NULL);
			}
		}
		if (!present && old != (enum affiliation)a)
			affiliation_notice(r, bare, (enum affiliation)a);
		free(bare);
	}
	return NULL;
}

static void
iq_admin(struct room *r, struct session *s, struct xel *iq,
    struct xel *q)
{
	enum affiliation mine = room_affiliation(r, s->bare);
	struct occupant *me = occupant_by_session(r, s);
	const struct xel *item = xel_child(q, "item", NS_MUC_ADMIN);
	const char *err = NULL;

	if (item == NULL) {
		bounce(s, iq, "bad-request");
		return;
	}
	if (attr_is(iq, "type", "get")) {
		admin_get(r, s, iq, item, mine, me);
		return;
	}
	for (; item && err == NULL; item = xel_next(item, "item",
	    NS_MUC_ADMIN))
		err = admin_item(r, me, mine, item);
	if (err != NULL)
		bounce(s, iq, err);
	else if (!room_save(r, s, iq))
		send_free(s, stanza_iq_result(iq));
	/* A temporary room goes with the last occupant kicked or
	 * banned. */
	room_maybe_free(r);
}

/* IQs to occupants. */

/* FNV-1a of a session's full JID: names, in a relayed IQ's id, which
 * of the sender occupant's sessions is waiting for the answer. */
static uint32_t
session_hash(const char *full)
{
	uint32_t h = 2166136261u;

	for (; *full; full++)
		h = (h ^ (unsigned char)*full) * 16777619u;
	return h;
}

/*
 * §7.5 as Prosody does it: a request from occupant o to room/nick goes
 * to the target occupant's first session, from o's room JID, its id
 * prefixed with 8 hex digits and ':' naming o's session, so that the
 * answer finds its way back without the room keeping anything.
 * XEP-0410: a ping to one's own nick the room answers itself; anyone
 * not in the room gets <not-acceptable/> ("not joined").
 */
static void
iq_request_to_occupant(struct room *r, struct session *s, struct xel *iq,
    const char *nick)
{
	struct occupant *o = r ? occupant_by_session(r, s) : NULL;
	struct occupant *t;
	struct xel *copy;
	char *from, *id;

	if (o == NULL) {
		bounce(s, iq, "not-acceptable");
		return;
	}
	if ((t = occupant_by_nick(r, nick)) == NULL || t->nsessions == 0) {
		bounce(s, iq, "item-not-found");
		return;
	}
	if (t == o && xel_is(xel_first_elem(iq), "ping", NS_PING)) {
		send_free(s, stanza_iq_result(iq));
		return;
	}
	copy = xel_copy(arena_new(1024), iq);
	from = xasprintf("%s/%s", r->jid, o->nick);
	id = xasprintf("%08" PRIx32 ":%s", session_hash(s->full),
	    xel_attr(iq, "id"));
	xel_set_attr(copy, "from", from);
	xel_set_attr(copy, "to", t->sessions[0]->full);
	xel_set_attr(copy, "id", id);
	router_route(copy);
	arena_free(copy->arena);
	free(from);
	free(id);
}

/* The answer of occupant session s to a relayed request of the
 * occupant nick: back to the session that asked, from s's room JID,
 * with its own id.  Anything that does not match is dropped. */
static void
iq_answer_to_occupant(struct room *r, struct session *s, struct xel *iq,
    const char *nick)
{
	struct occupant *o = r ? occupant_by_session(r, s) : NULL;
	struct occupant *t = r ? occupant_by_nick(r, nick) : NULL;
	const char *id = xel_attr(iq, "id");
	struct session *dest = NULL;
	struct xel *copy;
	unsigned long h;
	char *end, *from;

	if (o == NULL || t == NULL || id == NULL || strlen(id) < 9 ||
	    id[8] != ':')
		return;
	h = strtoul(id, &end, 16);
	if (end != id + 8)
		return;
	for (unsigned i = 0; i < t->nsessions && dest == NULL; i++)
		if (session_hash(t->sessions[i]->full) == h)
			dest = t->sessions[i];
	if (dest == NULL)
		return;
	copy = xel_copy(arena_new(1024), iq);
	from = xasprintf("%s/%s", r->jid, o->nick);
	xel_set_attr(copy, "from", from);
	xel_set_attr(copy, "to", dest->full);
	xel_set_attr(copy, "id", id + 9);
	router_route(copy);
	arena_free(copy->arena);
	free(from);
}

/* The room's archive (XEP-0313 on the room JID, mod/mam.h). */

/* m, a groupchat message as sent to everyone, to the room's archive
 * under id (its stanza-id) when the room keeps one. */
static void
room_archive(const struct room *r, const struct xel *m, uint64_t id)
{
	const char *from = xel_attr(m, "from");

	if (r->cfg.logging && mam_rooms_enabled())
		mam_room_archive(r->node, r->svc->domain, r->jid, id,
		    from ? from : r->jid, m);
}

/*
 * A query of the room's archive: only with logging on, and only by
 * occupants or, in a members-only room, members (XEP-0313 §4.1.2 and
 * XEP-0045 §7.1: who may read what is said).
 */
static void
iq_archive(struct room *r, struct session *s, struct xel *iq)
{
	enum affiliation a = room_affiliation(r, s->bare);

	if (!r->cfg.logging || !mam_rooms_enabled()) {
		bounce(s, iq, "service-unavailable");
		return;
	}
	if (a == AFF_OUTCAST || (occupant_by_session(r, s) == NULL &&
	    !(r->cfg.membersonly && a >= AFF_MEMBER))) {
		bounce(s, iq, "forbidden");
		return;
	}
	if (xel_is(xel_first_elem(iq), "metadata", NS_MAM))
		mam_room_metadata_iq(s, iq, r->node, r->svc->domain);
	else
		mam_room_query(s, iq, r->node, r->svc->domain, r->jid);
}

/* Message moderation (XEP-0425). */

/* A retraction waiting for its tombstone to be written. */
struct moderation {
	struct moderation *next;
	uint64_t tag, session;
	char *service, *node;
	struct xel *iq;             /* stanza_iq_skeleton */
	struct xel *retract;        /* the <retract/> to announce */
};

static struct moderation *moderations;

static void
moderation_free(struct moderation *m)
{
	free(m->service);
	free(m->node);
	arena_free(m->iq->arena);
	arena_free(m->retract->arena);
	free(m);
}

/* The tombstone is stored: tell the occupants, answer the moderator. */
static void
moderation_done(uint64_t owner, uint64_t tag, enum store_status st)
{
	struct moderation **pp, *m;
	struct service *svc;
	struct room *r;
	struct session *s;
	char sid[40];

	for (pp = &moderations; *pp && (*pp)->tag != tag; pp = &(*pp)->next)
		;
	if ((m = *pp) == NULL)
		return;
	*pp = m->next;
	s = sm_find_id(m->session);
	if (st != STORE_OK) {
		if (s != NULL && !s->closing)
			send_free(s, stanza_error(m->iq, NULL,
			    st == STORE_NOT_FOUND ? "item-not-found" :
			    "internal-server-error", NULL));
		moderation_free(m);
		return;
	}
	if ((svc = service_find(m->service)) != NULL &&
	    (r = room_find(svc, m->node)) != NULL) {
		/* §5: the announcement, a groupchat message of the room. */
		struct xel *msg = room_message(r, NULL), *x;
		uint64_t id = stanza_id_new(sid, sizeof(sid));

		xel_set_attr(msg, "id", sid);
		xel_append_copy(msg, m->retract);
		x = xel_add(msg, "stanza-id", NS_SID);
		xel_set_attr(x, "id", sid);
		xel_set_attr(x, "by", r->jid);
		depth++;
		fan_to_room(r, msg);
		room_archive(r, msg, id);
		history_add(r, msg, ev_time());
		depth--;
		arena_free(msg->arena);
		log_info("muc: %s: message %s retracted by a moderator",
		    r->jid, xel_attr(m->retract, "id"));
	}
	if (s != NULL && !s->closing)
		send_free(s, stanza_iq_result(m->iq));
	moderation_free(m);
	flush_ended();
}

/*
 * XEP-0425 §4: a moderator retracts a message by its stanza-id: the
 * archived message becomes a tombstone (XEP-0424 <retracted/>), then
 * everyone gets the <retract/> announcement.  The archive is where the
 * id is checked, so a room without logging has nothing to moderate.
 */
static void
iq_moderate(struct room *r, struct session *s, struct xel *iq,
    struct xel *q)
{
	struct occupant *o = occupant_by_session(r, s);
	const char *idv = xel_attr(q, "id");
	const struct xel *reason = xel_child(q, "reason", NULL);
	struct moderation *m;
	struct xel *retracted, *mod;
	struct buf b;
	char stamp[40], *by, *stone;
	uint64_t id;

	if (o == NULL || o->role < ROLE_MODERATOR) {
		bounce(s, iq, "forbidden");
		return;
	}
	if (idv == NULL || xel_child(q, "retract", NS_RETRACT) == NULL) {
		bounce(s, iq, "bad-request");
		return;
	}
	if (!r->cfg.logging || !mam_rooms_enabled() ||
	    mam_id_parse(idv, &id) < 0) {
		bounce(s, iq, "item-not-found");
		return;
	}
	by = xasprintf("%s/%s", r->jid, o->nick);
	/* The announcement's <retract/> and the tombstone's <retracted/>
	 * say the same: who moderated (their room JID and occupant id),
	 * and why. */
	m = xcalloc(1, sizeof(*m));
	m->retract = xel_new(arena_new(1024), "retract", NS_RETRACT);
	xel_set_attr(m->retract, "id", idv);
	mod = xel_add(m->retract, "moderated", NS_MODERATE);
	xel_set_attr(mod, "by", by);
	add_occupant_id(mod, o);
	if (reason != NULL)
		xel_text_set(xel_add(m->retract, "reason", NS_RETRACT),
		    xel_text(reason));
	retracted = xel_new(arena_new(1024), "retracted", NS_RETRACT);
	format_stamp(ev_time(), stamp, sizeof(stamp));
	xel_set_attr(retracted, "stamp", stamp);
	for (const struct xel *c = m->retract->children; c; c = c->next)
		xel_append_copy(retracted, c);
	buf_init(&b);
	xel_serialize(retracted, &b, NS_CLIENT);
	arena_free(retracted->arena);
	m->tag = next_tag++;
	m->session = s->id;
	m->service = xstrdup(r->svc->domain);
	m->node = xstrdup(r->node);
	m->iq = stanza_iq_skeleton(iq);
	m->next = moderations;
	moderations = m;
	stone = buf_strdup(&b);
	buf_free(&b);
	mam_room_retract(r->node, r->svc->domain, id, stone,
	    moderation_done, generation, m->tag);
	free(stone);
	free(by);
}

/* The room's vCard and avatar (vcard-temp, XEP-0153 as Prosody does). */

/*
 * The room's own presence with its avatar hash (from the bare room
 * JID, vcard-temp:x:update), to one joining session or, to NULL, every
 * occupant; nothing while the room has no avatar.
 */
static void
room_avatar_presence(const struct room *r, struct session *to)
{
	struct xel *p;
	struct fan f;

	if (r->photo_hash == NULL)
		return;
	p = xel_new(arena_new(512), "presence", NS_CLIENT);
	xel_set_attr(p, "from", r->jid);
	xel_text_set(xel_add(xel_add(p, "x", NS_VCARD_UPDATE), "photo",
	    NS_VCARD_UPDATE), r->photo_hash);
	fan_init(&f, p);
	if (to != NULL)
		fan_send(&f, to);
	else
		for (struct occupant *o = r->occupants; o; o = o->next)
			for (unsigned i = 0; i < o->nsessions; i++)
				fan_send(&f, o->sessions[i]);
	fan_done(&f);
	arena_free(p->arena);
}

/* The SHA-1 (hex) of the image in vCard v's PHOTO/BINVAL (XEP-0153
 * §3.1), whitespace ignored; NULL if none or not base64. */
static char *
photo_hash(const struct xel *v)
{
	static const char hex[] = "0123456789abcdef";
	const struct xel *bin = xel_child(xel_child(v, "PHOTO", NS_VCARD),
	    "BINVAL", NS_VCARD);
	unsigned char md[20], *img = NULL;
	char *b64, *out = NULL;
	size_t n = 0;
	long len;

	if (bin == NULL)
		return NULL;
	b64 = xmalloc(strlen(xel_text(bin)) + 4);
	for (const char *c = xel_text(bin); *c; c++)
		if (*c != ' ' && *c != '\t' && *c != '\r' && *c != '\n')
			b64[n++] = *c;
	while (n % 4 != 0 && n % 4 != 1)
		b64[n++] = '=';
	if (n > 0 && n % 4 == 0 &&
	    (len = base64_decode_alloc(b64, n, &img)) > 0) {
		scram_h(SCRAM_SHA1, img, (size_t)len, md);
		out = xmalloc(41);
		for (size_t i = 0; i < 20; i++) {
			out[2 * i] = hex[md[i] >> 4];
			out[2 * i + 1] = hex[md[i] & 0x0f];
		}
		out[40] = '\0';
	}
	free(img);
	free(b64);
	return out;
}

/*
 * vcard-temp on the room JID: anyone may read the room's vCard (an
 * empty one if it has none), its owners set it; a new photo goes out
 * as the room's presence to the occupants (XEP-0153 §3.2) and into
 * muc#roominfo_avatarhash.  Persistent rooms keep it in storage.
 */
static void
iq_vcard(struct room *r, struct session *s, struct xel *iq, struct xel *q)
{
	struct xel *res;
	struct buf b;
	char *hash;

	if (attr_is(iq, "type", "get")) {
		struct xml_limits lim = { ROOM_VCARD_MAX + 1, 64, 64,
			SIZE_MAX };
		struct xel *v = r->vcard ? xml_parse_element(r->vcard,
		    strlen(r->vcard), NS_CLIENT, &lim) : NULL;

		res = stanza_iq_result(iq);
		if (v != NULL) {
			xel_append_copy(res, v);
			arena_free(v->arena);
		} else
			xel_add(res, "vCard", NS_VCARD);
		send_free(s, res);
		return;
	}
	if (room_affiliation(r, s->bare) != AFF_OWNER) {
		bounce(s, iq, "forbidden");
		return;
	}
	buf_init(&b);
	xel_serialize(q, &b, NS_CLIENT);
	if (buf_avail(&b) > ROOM_VCARD_MAX) {
		buf_free(&b);
		bounce_typed(s, iq, "modify", "not-acceptable",
		    "the vCard is too large");
		return;
	}
	hash = photo_hash(q);
	free(r->vcard);
	r->vcard = xel_first_elem(q) != NULL ? buf_strdup(&b) : NULL;
	buf_free(&b);
	if ((hash == NULL) != (r->photo_hash == NULL) || (hash != NULL &&
	    strcmp(hash, r->photo_hash) != 0)) {
		free(r->photo_hash);
		r->photo_hash = hash;
		room_avatar_presence(r, NULL);
	} else
		free(hash);
	if (!room_save(r, s, iq))
		send_free(s, stanza_iq_result(iq));
}

static void
iq_to_room(struct service *svc, struct session *s, struct xel *iq,
    const struct jid *to)
{
	struct room *r = room_find(svc, to->node);
	struct xel *q = xel_first_elem(iq);
	int get = attr_is(iq, "type", "get");

	if (to->resource != NULL) {
		if (get || attr_is(iq, "type", "set"))
			iq_request_to_occupant(r, s, iq, to->resource);
		else
			iq_answer_to_occupant(r, s, iq, to->resource);
		return;
	}
	if (!get && !attr_is(iq, "type", "set"))
		return;                 /* results and errors: dropped */
	if (r == NULL || (r->locked &&
	    room_affiliation(r, s->bare) != AFF_OWNER)) {
		bounce(s, iq, "item-not-found");
		return;
	}
	if (get && xel_is(q, "query", NS_DISCO_INFO)) {
		struct xel *res = stanza_iq_result(iq);

		if (xel_attr(q, "node") != NULL) {
			arena_free(res->arena);
			bounce(s, iq, "item-not-found");
			return;
		}
		room_info(r, xel_add(res, "query", NS_DISCO_INFO));
		send_free(s, res);
	} else if (get && xel_is(q, "query", NS_DISCO_ITEMS)) {
		/* §6.5: occupants are not listed. */
		struct xel *res = stanza_iq_result(iq);

		xel_add(res, "query", NS_DISCO_ITEMS);
		send_free(s, res);
	} else if (xel_is(q, "query", NS_MUC_OWNER))
		iq_owner(r, s, iq, q);
	else if (xel_is(q, "query", NS_MUC_ADMIN))
		iq_admin(r, s, iq, q);
	else if (xel_is(q, "query", NS_MAM) ||
	    xel_is(q, "metadata", NS_MAM))
		iq_archive(r, s, iq);
	else if (!get && xel_is(q, "moderate", NS_MODERATE))
		iq_moderate(r, s, iq, q);
	else if (xel_is(q, "vCard", NS_VCARD))
		iq_vcard(r, s, iq, q);
	else
		bounce(s, iq, "service-unavailable");
}

static void
iq_to_service(struct service *svc, struct session *s, struct xel *iq)
{
	struct xel *q = xel_first_elem(iq), *res;

	if (!attr_is(iq, "type", "get") && !attr_is(iq, "type", "set"))
		return;
	if (attr_is(iq, "type", "get") && xel_attr(q, "node") == NULL &&
	    (xel_is(q, "query", NS_DISCO_INFO) ||
	    xel_is(q, "query", NS_DISCO_ITEMS))) {
		const char *err = NULL;

		res = stanza_iq_result(iq);
		if (xel_is(q, "query", NS_DISCO_INFO))
			service_info(xel_add(res, "query", NS_DISCO_INFO));
		else
			err = list_rooms(svc, q, xel_add(res, "query",
			    NS_DISCO_ITEMS));
		if (err != NULL) {
			arena_free(res->arena);
			bounce(s, iq, err);
		} else
			send_free(s, res);
	} else
		bounce(s, iq, "service-unavailable");
}

/* Session ends. */

static void
session_left(struct session *s)
{
	struct pres_opts po = { 0 };

	po.unavailable = 1;
	for (size_t i = 0; i < nservices; i++) {
		size_t n;
		void **rooms = strmap_values(services[i].rooms, &n);

		for (size_t k = 0; k < n; k++) {
			struct room *r = rooms[k];
			struct occupant *o;

			while ((o = occupant_by_session(r, s)) != NULL)
				occupant_leave(r, o, s, &po);
			room_maybe_free(r);
		}
		free(rooms);
	}
}

static void flush_deferred(void);

static void
flush_ended(void)
{
	while (depth == 0 && nended > 0) {
		struct session *s = ended[--nended];

		depth++;
		if (strmap_get(joined, s->full) != NULL)
			session_left(s);
		depth--;
	}
	flush_deferred();
}

/*
 * A session ends (not one waiting for XEP-0198 resumption: it is still
 * bound): out of every room, unless presence.c's goodbye (unavailable to
 * each directed-presence JID) did it already.
 */
static void
on_session_end(struct session *s)
{
	if (joined == NULL || strmap_get(joined, s->full) == NULL)
		return;
	ended = xreallocarray(ended, nended + 1, sizeof(*ended));
	ended[nended++] = s;
	flush_ended();
}

/*
 * Occupants on other servers.  What they send comes from the router
 * with no session (router_from_remote: the s2s stream has checked that
 * 'from' is of the server that sent it), as do the errors the router
 * makes for what could not reach them (router_bounce_remote: a route
 * that failed).  Each full JID gets a session of its own from the core
 * (sm_remote_peer), held while it is in a room (joined_add), whose
 * sends, fan-out copies included, go back through the router: from
 * there on it is an occupant like any other, under the same rules and
 * limits.
 */
static struct session *
remote_sender(const struct xel *st)
{
	const char *f = xel_attr(st, "from");
	struct jid j = { 0 };
	struct session *s = NULL;

	if (f == NULL || jid_parse(&j, f) < 0)
		return NULL;
	/* A full JID of no domain of ours: a 'from' naming a local user
	 * or a service here never comes from elsewhere. */
	if (j.node != NULL && j.resource != NULL &&
	    conf_host_find(xmppd_conf, j.domain) == NULL &&
	    !router_is_service(j.domain))
		s = sm_remote_peer(&j);
	jid_free(&j);
	return s;
}

/*
 * What comes from elsewhere while a room is being walked waits for the
 * walk to end: a copy to an occupant on another server can bounce at
 * once (a route known to fail), and that error removes occupants from
 * the room being walked.  Kept in order, run by flush_deferred.
 */
struct deferred {
	struct deferred *next;
	struct xel *st;             /* a copy, in its own arena */
};
static struct deferred *deferred, **deferred_tail = &deferred;

static void muc_route(struct session *from, struct xel *st,
    const struct jid *to);

static void
defer(const struct xel *st)
{
	struct deferred *d = xcalloc(1, sizeof(*d));

	d->st = xel_copy_fit(st, 0);
	*deferred_tail = d;
	deferred_tail = &d->next;
}

static void
flush_deferred(void)
{
	static int flushing;        /* the outermost call runs them all */
	struct deferred *d;

	if (flushing)
		return;
	flushing = 1;
	while (depth == 0 && (d = deferred) != NULL) {
		struct jid to = { 0 };

		if ((deferred = d->next) == NULL)
			deferred_tail = &deferred;
		if (jid_parse(&to, xel_attr(d->st, "to")) == 0)
			muc_route(NULL, d->st, &to);
		jid_free(&to);
		arena_free(d->st->arena);
		free(d);
	}
	flushing = 0;
}

/*
 * Errors that tell an occupant is gone (the conditions Prosody takes
 * for it): a delivery error from its server, its server unreachable,
 * its session unknown.  Not those about what it may do (auth) nor a
 * queue that is full for now (resource-constraint, wait).
 */
static int
error_means_gone(const struct xel *st)
{
	static const char *const gone[] = { "gone", "internal-server-error",
		"item-not-found", "jid-malformed", "recipient-unavailable",
		"redirect", "remote-server-not-found",
		"remote-server-timeout", "service-unavailable" };
	const struct xel *e = xel_child(st, "error", NS_CLIENT);
	const struct xel *c;

	if (e == NULL)
		return 1;               /* no condition: nothing to keep */
	for (c = e->children; c != NULL && c->name == NULL; c = c->next)
		;
	if (c == NULL || strcmp(c->ns, NS_STANZA_ERR) != 0)
		return 1;
	for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
		if (strcmp(c->name, gone[i]) == 0)
			return 1;
	return 0;
}

/*
 * An error from an occupant's JID in reply to what the room sent it
 * (a presence, a groupchat or private message, an invitation...):
 * XEP-0045 has a room drop such "ghosts", status 333 (registry: removed
 * because of an error reply, e.g. its server could not be reached),
 * when error_means_gone: a queue to its server that is full for now
 * (<resource-constraint/>, type wait) removes nobody.  Only that
 * session leaves.
 */
static void
occupant_error(struct service *svc, struct session *s, const struct xel *st,
    const struct jid *to)
{
	static const int c333[] = { 333, 0 };
	struct room *r = room_find(svc, to->node);
	struct occupant *o = r ? occupant_by_session(r, s) : NULL;
	struct pres_opts po = { 0 };

	if (o == NULL || !error_means_gone(st))
		return;
	log_info("muc: %s: %s (%s) removed after an error reply", r->jid,
	    o->nick, s->full);
	po.unavailable = 1;
	po.codes = c333;
	occupant_leave(r, o, s, &po);
	room_maybe_free(r);
}

/* The router's entry for every stanza to one of our domains: from a
 * local session, or (from NULL) from anyone else. */
static void
muc_route(struct session *from, struct xel *st, const struct jid *to)
{
	struct service *svc = service_find(to->domain);
	struct room *r;

	if (svc == NULL)
		return;
	if (from == NULL && depth > 0) {
		defer(st);
		return;
	}
	if (from == NULL && (from = remote_sender(st)) == NULL)
		return;
	if (from->closing)
		return;
	if (svc->loading) {
		/* The first seconds after start-up: come back soon. */
		if (stanza_kind(st) != STANZA_PRESENCE ||
		    xel_attr(st, "type") == NULL)
			bounce_typed(from, st, "wait", "resource-constraint",
			    NULL);
		return;
	}
	if (wait_for_room(svc, from, st, to))
		return;
	if (to->node != NULL && (r = room_find(svc, to->node)) != NULL)
		r->quiet_since = mono_now(xmppd_loop);
	depth++;
	if (to->node != NULL && stanza_kind(st) != STANZA_IQ &&
	    attr_is(st, "type", "error")) {
		occupant_error(svc, from, st, to);
		goto out;
	}
	switch (stanza_kind(st)) {
	case STANZA_PRESENCE:
		if (to->node != NULL)
			presence_to_room(svc, from, st, to);
		break;
	case STANZA_MESSAGE:
		if (to->node != NULL)
			message_to_room(svc, from, st, to);
		else if (!attr_is(st, "type", "error"))
			bounce(from, st, "service-unavailable");
		break;
	case STANZA_IQ:
		if (to->node != NULL)
			iq_to_room(svc, from, st, to);
		else if (to->resource == NULL)
			iq_to_service(svc, from, st);
		else
			bounce(from, st, "service-unavailable");
		break;
	default:
		break;
	}
out:
	depth--;
	flush_ended();
}

/* The daemon stops: every occupant out with 332 (XEP-0045 §10.9... the
 * service is being shut down); persistent rooms are stored already. */
static void
on_shutdown(void)
{
	for (size_t i = 0; i < nservices; i++) {
		size_t n;
		void **rooms = strmap_values(services[i].rooms, &n);

		depth++;
		for (size_t k = 0; k < n; k++)
			room_destroy(rooms[k], NULL, "service stopped", 332);
		depth--;
		free(rooms);
	}
	flush_ended();
}

static void muc_admin_init(void);
static void muc_admin_deinit(void);

void
mod_muc_init(void)
{
	const struct conf *c = xmppd_conf;

	joined = strmap_new();
	creators = strmap_new();
	creators_swept = 0;
	generation++;
	for (size_t i = 0; i < c->nhosts; i++)
		for (size_t k = 0; k < c->hosts[i].nmuc; k++) {
			struct service *svc;

			if (router_add_service(c->hosts[i].muc[k],
			    c->hosts[i].name, muc_route) < 0) {
				log_warnx("muc: %s: domain already served",
				    c->hosts[i].muc[k]);
				continue;
			}
			services = xreallocarray(services, nservices + 1,
			    sizeof(*services));
			svc = &services[nservices++];
			svc->domain = xstrdup(c->hosts[i].muc[k]);
			svc->host = xstrdup(c->hosts[i].name);
			svc->rooms = strmap_new();
			svc->stored = strmap_new();
			svc->loading = 1;
			log_debug("muc: service %s for %s", svc->domain,
			    svc->host);
		}
	for (size_t i = 0; i < nservices; i++)
		muc_store_load(services[i].domain, 0, rooms_loaded,
		    generation, i);
	hook_add_session(HOOK_SESSION_END, on_session_end);
	hook_add_shutdown(on_shutdown);
	ev_timer_init(&idle_w, idle_sweep, 0.0, 1.0);
	ev_timer_again(xmppd_loop, &idle_w);
	ev_unref(xmppd_loop);
	muc_admin_init();
}

void
mod_muc_deinit(void)
{
	muc_admin_deinit();
	for (size_t i = 0; i < nservices; i++) {
		size_t n;
		void **rooms = strmap_values(services[i].rooms, &n);

		for (size_t k = 0; k < n; k++)
			room_destroy(rooms[k], NULL, "service stopped",
			    332);
		free(rooms);
		strmap_free(services[i].rooms);
		rooms = strmap_values(services[i].stored, &n);
		for (size_t k = 0; k < n; k++)
			stored_free(rooms[k]);
		free(rooms);
		strmap_free(services[i].stored);
		free(services[i].domain);
		free(services[i].host);
	}
	free(services);
	services = NULL;
	nservices = 0;
	generation++;
	ev_ref(xmppd_loop);
	ev_timer_stop(xmppd_loop, &idle_w);
	while (reads != NULL) {
		struct room_read *rd = reads;

		reads = rd->next;
		read_free(rd);
	}
	while (moderations != NULL) {
		struct moderation *m = moderations;

		moderations = m->next;
		moderation_free(m);
	}
	while (waiting != NULL) {
		struct wait_reply *w = waiting;

		waiting = w->next;
		arena_free(w->iq->arena);
		free(w);
	}
	strmap_free(joined);
	joined = NULL;
	{
		size_t n;
		void **v = strmap_values(creators, &n);

		for (size_t i = 0; i < n; i++) {
			free(((struct creator *)v[i])->bare);
			free(v[i]);
		}
		free(v);
		strmap_free(creators);
		creators = NULL;
	}
	free(ended);
	ended = NULL;
	nended = 0;
	while (deferred != NULL) {
		struct deferred *d = deferred;

		deferred = d->next;
		arena_free(d->st->arena);
		free(d);
	}
	deferred_tail = &deferred;
}

/*
 * Administration (core/rooms.h): the rooms as the control plane sees
 * them (xmppctl rooms, room show|create|destroy|affiliate; xmpptop),
 * and each room's message rate.  The rate is a ring of 60 per-second
 * counts per room JID, kept beside the rooms (a room without messages
 * has none) and counted on message_out for groupchat messages with a
 * body from an occupant with voice; entries of rooms that are gone are
 * dropped when the map has doubled since the last sweep, and at each
 * listing.
 */

#define RATE_SLOTS 60
#define RATE_SWEEP_MIN 64

struct room_rate {
	unsigned counts[RATE_SLOTS];
	int64_t last;               /* the second of the newest slot */
};

static struct strmap *rates;    /* room JID -> struct room_rate */
static size_t rates_swept;      /* entries after the last sweep */

static int64_t
rate_second(void)
{
	return (int64_t)mono_now(xmppd_loop);
}

/* Zero the slots of the seconds between rr->last and now. */
static void
rate_advance(struct room_rate *rr, int64_t now)
{
	if (now <= rr->last)
		return;
	if (now - rr->last >= RATE_SLOTS)
		memset(rr->counts, 0, sizeof(rr->counts));
	else
		for (int64_t t = rr->last + 1; t <= now; t++)
			rr->counts[t % RATE_SLOTS] = 0;
	rr->last = now;
}

/* Groupchat messages of the room in the last 60 seconds. */
static unsigned
rate_per_min(const char *jid)
{
	struct room_rate *rr = rates ? strmap_get(rates, jid) : NULL;
	unsigned sum = 0;

	if (rr == NULL)
		return 0;
	rate_advance(rr, rate_second());
	for (int i = 0; i < RATE_SLOTS; i++)
		sum += rr->counts[i];
	return sum;
}

/* Drop the counts of rooms that are gone. */
static void
rate_sweep(void)
{
	size_t n;
	void **keys;
	struct strmap *keep = strmap_new();

	/* Moved to a new map room by room; what is left is gone. */
	for (size_t i = 0; i < nservices; i++) {
		void **rooms = strmap_values(services[i].rooms, &n);

		for (size_t k = 0; k < n; k++) {
			struct room *r = rooms[k];
			struct room_rate *rr = strmap_del(rates, r->jid);

			if (rr != NULL)
				strmap_put(keep, r->jid, rr);
		}
		free(rooms);
	}
	keys = strmap_values(rates, &n);
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	strmap_free(rates);
	rates = keep;
	rates_swept = strmap_count(rates);
}

/* message_out: a groupchat message with a body to a room from one of
 * its occupants with voice (what groupchat() accepts; not a subject
 * change or a chat state alone) counts for the room's rate. */
static enum hook_result
rate_count(struct session *from, struct xel *msg, const struct jid *to)
{
	struct service *svc;
	struct room *r;
	struct occupant *o;
	struct room_rate *rr;
	int64_t now;

	if (to == NULL || to->node == NULL || to->resource != NULL ||
	    !attr_is(msg, "type", "groupchat") ||
	    xel_child(msg, "body", NS_CLIENT) == NULL ||
	    (svc = service_find(to->domain)) == NULL || svc->loading ||
	    (r = room_find(svc, to->node)) == NULL ||
	    (o = occupant_by_session(r, from)) == NULL ||
	    o->role < ROLE_PARTICIPANT)
		return HOOK_PASS;
	now = rate_second();
	if ((rr = strmap_get(rates, r->jid)) == NULL) {
		rr = xcalloc(1, sizeof(*rr));
		rr->last = now;
		strmap_put(rates, r->jid, rr);
		if (strmap_count(rates) >= RATE_SWEEP_MIN &&
		    strmap_count(rates) >= 2 * rates_swept)
			rate_sweep();
	}
	rate_advance(rr, now);
	rr->counts[now % RATE_SLOTS]++;
	return HOOK_PASS;
}

/* A persistent room that is not in memory, for the room list. */
static void
list_out(const char *node, void *value, void *arg)
{
	struct listing *g = arg;

	if (strmap_get(g->svc->rooms, node) == NULL)
		g->l[g->n++] = (struct listed){ node, NULL };
}

static void
admin_summary(const struct room *r, struct rooms_summary *sum)
{
	memset(sum, 0, sizeof(*sum));
	sum->jid = r->jid;
	sum->name = r->cfg.name;
	sum->occupants = r->noccupants;
	for (const struct occupant *o = r->occupants; o; o = o->next)
		sum->sessions += o->nsessions;
	sum->persistent = r->cfg.persistent;
	sum->publicroom = r->cfg.publicroom;
	sum->membersonly = r->cfg.membersonly;
	sum->locked = r->locked;
	sum->per_min = rate_per_min(r->jid);
}

static int
room_cmp(const void *a, const void *b)
{
	const struct room *x = *(const struct room *const *)a;
	const struct room *y = *(const struct room *const *)b;

	return strcmp(x->node, y->node);   /* rooms of one service */
}

static void
admin_list(rooms_summary_fn fn, void *arg)
{
	if (rates != NULL && strmap_count(rates) > 0)
		rate_sweep();
	for (size_t i = 0; i < nservices; i++) {
		size_t n;
		void **rooms = strmap_values(services[i].rooms, &n);

		struct listing g = { &services[i], NULL, 0 };
		size_t k = 0, j = 0;

		/* The rooms in memory and, merged in JID order, the
		 * persistent ones that are not. */
		qsort(rooms, n, sizeof(*rooms), room_cmp);
		g.l = xcalloc(strmap_count(services[i].stored) + 1,
		    sizeof(*g.l));
		strmap_foreach(services[i].stored, list_out, &g);
		qsort(g.l, g.n, sizeof(*g.l), listed_cmp);
		while (k < n || j < g.n) {
			struct rooms_summary sum;
			const struct room *r = rooms[k < n ? k : 0];

			if (k < n && (j == g.n ||
			    strcmp(r->node, g.l[j].node) < 0)) {
				admin_summary(r, &sum);
				k++;
			} else {
				const char *node = g.l[j].node;
				const struct stored *sr =
				    stored_find(&services[i], node);
				char *jid = xasprintf("%s@%s",
				    node ? node : "", services[i].domain);

				memset(&sum, 0, sizeof(sum));
				sum.jid = jid;
				sum.name = sr->name;
				sum.persistent = 1;
				sum.publicroom =
				    (sr->flags & MUC_ROOM_PUBLIC) != 0;
				sum.membersonly =
				    (sr->flags & MUC_ROOM_MEMBERSONLY) != 0;
				fn(arg, &sum);
				free(jid);
				j++;
				continue;
			}
			fn(arg, &sum);
		}
		free(g.l);
		free(rooms);
	}
}

/* The service and room of node@service: ROOMS_OK, or why not. */
static enum rooms_status
admin_find(const char *node, const char *service, struct service **svcp,
    struct room **rp)
{
	struct service *svc = service_find(service);
	struct stored *sr;

	*rp = NULL;
	if ((*svcp = svc) == NULL)
		return ROOMS_NO_SERVICE;
	if (svc->loading)
		return ROOMS_LOADING;
	if ((sr = stored_find(svc, node)) != NULL &&
	    (sr->reading != 0 || room_find(svc, node) == NULL)) {
		/* Out of memory: read it back, and be asked again. */
		read_start(svc, node, sr);
		return ROOMS_LOADING;
	}
	if ((*rp = room_find(svc, node)) == NULL)
		return ROOMS_NOT_FOUND;
	return ROOMS_OK;
}

static const char *
yes_no(int v)
{
	return v ? "yes" : "no";
}

static enum rooms_status
admin_show(const char *node, const char *service, rooms_detail_fn fn,
    void *arg)
{
	struct service *svc;
	struct room *r;
	enum rooms_status st = admin_find(node, service, &svc, &r);
	struct rooms_detail d;
	struct rooms_setting set[20];
	struct rooms_affiliation *af;
	struct rooms_occupant *oc;
	char maxusers[16], histlen[16], rate[16];
	size_t n = 0, k = 0;

	if (st != ROOMS_OK)
		return st;
	memset(&d, 0, sizeof(d));
	admin_summary(r, &d.sum);
	snprintf(rate, sizeof(rate), "%u", d.sum.per_min);
	snprintf(maxusers, sizeof(maxusers), "%u", r->cfg.maxusers);
	snprintf(histlen, sizeof(histlen), "%u", r->cfg.historylength);
	set[n++] = (struct rooms_setting){ "name", r->cfg.name ?
	    r->cfg.name : "" };
	set[n++] = (struct rooms_setting){ "description", r->cfg.desc ?
	    r->cfg.desc : "" };
	set[n++] = (struct rooms_setting){ "subject", r->subject ?
	    r->subject : "" };
	set[n++] = (struct rooms_setting){ "subject-by", r->subject_nick ?
	    r->subject_nick : "" };
	set[n++] = (struct rooms_setting){ "messages-per-min:int", rate };
	set[n++] = (struct rooms_setting){ "locked:bool", yes_no(r->locked) };
	set[n++] = (struct rooms_setting){ "persistent:bool",
	    yes_no(r->cfg.persistent) };
	set[n++] = (struct rooms_setting){ "public:bool",
	    yes_no(r->cfg.publicroom) };
	set[n++] = (struct rooms_setting){ "members-only:bool",
	    yes_no(r->cfg.membersonly) };
	set[n++] = (struct rooms_setting){ "moderated:bool",
	    yes_no(r->cfg.moderated) };
	set[n++] = (struct rooms_setting){ "password-protected:bool",
	    yes_no(r->cfg.passwordprotected) };
	set[n++] = (struct rooms_setting){ "whois", r->cfg.whois_anyone ?
	    "anyone" : "moderators" };
	set[n++] = (struct rooms_setting){ "change-subject:bool",
	    yes_no(r->cfg.changesubject) };
	set[n++] = (struct rooms_setting){ "allow-invites:bool",
	    yes_no(r->cfg.allowinvites) };
	set[n++] = (struct rooms_setting){ "voice-requests:bool",
	    yes_no(r->cfg.voicerequests) };
	set[n++] = (struct rooms_setting){ "allow-pm",
	    pm_names[r->cfg.allowpm <= PM_NONE ? r->cfg.allowpm : 0] };
	set[n++] = (struct rooms_setting){ "max-users:int",
	    r->cfg.maxusers ? maxusers : "" };
	set[n++] = (struct rooms_setting){ "history-length:int", histlen };
	d.settings = set;
	d.nsettings = n;
	af = xcalloc(r->naffils + 1, sizeof(*af));
	/* By privilege, then as they were given. */
	for (int a = AFF_OWNER; a >= AFF_OUTCAST; a--)
		for (size_t i = 0; i < r->naffils; i++)
			if ((int)r->affils[i].aff == a) {
				af[k].jid = r->affils[i].jid;
				af[k++].affiliation = aff_names[a];
			}
	d.affils = af;
	d.naffils = k;
	oc = xcalloc(r->noccupants + 1, sizeof(*oc));
	k = 0;
	for (const struct occupant *o = r->occupants; o; o = o->next, k++) {
		oc[k].nick = o->nick;
		oc[k].role = role_names[o->role];
		oc[k].affiliation = aff_names[o->affiliation];
		oc[k].jid = o->bare;
		oc[k].sessions = o->nsessions;
	}
	d.occupants = oc;
	d.noccupants = k;
	fn(arg, &d);
	free(af);
	free(oc);
	return ROOMS_OK;
}

static enum rooms_status
admin_create(const struct rooms_create *c, char *why, size_t whylen)
{
	struct service *svc;
	struct room *r;
	enum rooms_status st = admin_find(c->node, c->service, &svc, &r);

	if (st != ROOMS_NOT_FOUND)
		return st == ROOMS_OK ? ROOMS_EXISTS : st;
	r = room_new(svc, c->node);
	r->locked = 0;
	r->cfg.persistent = c->persistent != 0;
	r->cfg.publicroom = c->publicroom != 0;
	r->cfg.membersonly = c->membersonly != 0;
	r->cfg.name = c->name ? dup_bounded(c->name) : NULL;
	if (c->owner != NULL)
		room_set_affiliation(r, c->owner, AFF_OWNER);
	room_save(r, NULL, NULL);
	log_info("muc: %s created by the administrator (%s, owner %s)",
	    r->jid, r->cfg.persistent ? "persistent" : "temporary",
	    c->owner ? c->owner : "none");
	return ROOMS_OK;
}

static enum rooms_status
admin_destroy(const char *node, const char *service, const char *reason,
    unsigned *told)
{
	struct service *svc;
	struct room *r;
	enum rooms_status st = admin_find(node, service, &svc, &r);
	struct xel *d;

	*told = 0;
	if (st != ROOMS_OK)
		return st;
	*told = r->noccupants;
	if (r->cfg.persistent)
		room_unsave(r, NULL, NULL);
	d = xel_new(arena_new(512), "destroy", NS_MUC_OWNER);
	if (reason != NULL && reason[0] != '\0')
		xel_text_set(xel_add(d, "reason", NULL), reason);
	depth++;
	room_destroy(r, d, "by the administrator", 0);
	depth--;
	arena_free(d->arena);
	flush_ended();
	return ROOMS_OK;
}

static enum rooms_status
admin_affiliate(const char *node, const char *service, const char *jid,
    const char *affiliation, char *why, size_t whylen)
{
	struct service *svc;
	struct room *r;
	enum rooms_status st = admin_find(node, service, &svc, &r);
	struct xel *item;
	const char *err;
	int had;

	if (st != ROOMS_OK)
		return st;
	if (parse_aff(affiliation) < 0) {
		snprintf(why, whylen, "unknown affiliation \"%s\" (owner, "
		    "admin, member, outcast or none)", affiliation);
		return ROOMS_REFUSED;
	}
	item = xel_new(arena_new(512), "item", NS_MUC_ADMIN);
	xel_set_attr(item, "affiliation", affiliation);
	xel_set_attr(item, "jid", jid);
	had = r->occupants != NULL;
	/* As the room's owner would, without being an occupant: the
	 * occupants concerned are told (301, 321, or a new presence), an
	 * online user outside the room gets 101. */
	depth++;
	err = admin_item(r, NULL, AFF_OWNER, item);
	depth--;
	arena_free(item->arena);
	if (err != NULL) {
		flush_ended();
		if (strcmp(err, "jid-malformed") == 0)
			return ROOMS_BAD_JID;
		if (strcmp(err, "conflict") == 0)
			snprintf(why, whylen, "%s is the room's only owner "
			    "(XEP-0045 10.6): make another owner first", jid);
		else if (strcmp(err, "resource-constraint") == 0)
			snprintf(why, whylen, "the room has %d affiliations, "
			    "the most it may keep", MUC_AFFILIATIONS_MAX);
		else
			snprintf(why, whylen, "refused (%s)", err);
		return ROOMS_REFUSED;
	}
	log_info("muc: %s: %s is now %s (by the administrator)", r->jid, jid,
	    affiliation);
	room_save(r, NULL, NULL);
	/* A temporary room goes with its last occupant banned. */
	if (had && r->occupants == NULL)
		room_maybe_free(r);
	flush_ended();
	return ROOMS_OK;
}

static const struct rooms_provider muc_rooms = {
	.list = admin_list,
	.show = admin_show,
	.create = admin_create,
	.destroy = admin_destroy,
	.affiliate = admin_affiliate,
};

static void
muc_admin_init(void)
{
	rates = strmap_new();
	rates_swept = 0;
	hook_add_message_out(rate_count);
	rooms_set_provider(&muc_rooms);
}

static void
muc_admin_deinit(void)
{
	size_t n;
	void **v;

	rooms_set_provider(NULL);
	if (rates == NULL)
		return;
	v = strmap_values(rates, &n);
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	strmap_free(rates);
	rates = NULL;
}
