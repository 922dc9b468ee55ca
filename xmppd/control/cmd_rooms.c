/*
 * The control commands on the rooms of the conference services
 * (XEP-0045), through the provider of core/rooms.h that the MUC module
 * registers: rooms lists them with their message rate, room-show shows
 * one (settings, affiliations, occupants), room-create, room-destroy
 * and room-affiliate change them.  A change to a persistent room is
 * answered once it is committed: the provider queued its write before
 * returning, and a no-op storage job queued behind it completes after
 * that commit (store.h runs requests in order).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "control/control_int.h"
#include "core/rooms.h"
#include "ctl.h"
#include "jid.h"
#include "store/store_engine.h"
#include "xmalloc.h"
#include "xmppd.h"

static const char *
yes_no(int v)
{
	return v ? "yes" : "no";
}

/* The provider, or NULL after replying not-found. */
static const struct rooms_provider *
provider_or_err(struct control_conn *c)
{
	const struct rooms_provider *p = rooms_provider();

	if (p == NULL)
		reply_err(c, CTL_E_NOT_FOUND, "no MUC service (the muc module "
		    "is off)");
	return p;
}

/* ROOM as room@service into j (jid_free it); replies bad-jid and
 * returns -1 if it is not one. */
static int
parse_room(struct control_conn *c, const char *s, struct jid *j)
{
	if (jid_parse(j, s) == -1) {
		reply_err(c, CTL_E_BAD_JID, "invalid room JID \"%s\"", s);
		return -1;
	}
	if (j->node == NULL || j->resource != NULL) {
		reply_err(c, CTL_E_BAD_JID, "expected room@service, without "
		    "a nick: \"%s\"", s);
		jid_free(j);
		return -1;
	}
	return 0;
}

/* A bare JID (user@host or host) as prepared, or NULL after replying
 * bad-jid. */
static char *
parse_bare(struct control_conn *c, const char *s)
{
	struct jid j = { 0 };
	char *bare;

	if (jid_parse(&j, s) == -1 || j.resource != NULL) {
		reply_err(c, CTL_E_BAD_JID, "\"%s\" is not a bare JID", s);
		jid_free(&j);
		return NULL;
	}
	bare = jid_bare(&j);
	jid_free(&j);
	return bare;
}

/*
 * A request for a room that is being read from storage (ROOMS_LOADING:
 * at start-up, or a persistent room out of memory, whose read the
 * provider has started) is run again every RETRY_INTERVAL seconds, up
 * to RETRY_MAX times, before "try again" is the answer.
 */
#define RETRY_INTERVAL 0.02
#define RETRY_MAX 250

typedef void (*room_handler)(struct control_conn *c, char **args,
    size_t nargs);

struct retry {
	ev_timer w;
	uint64_t conn;
	uint32_t req;
	room_handler handle;
	char **args;
	size_t nargs;
	unsigned tries;
};

/* The request running now (its handler, arguments and tries). */
static struct {
	room_handler handle;
	char **args;
	size_t nargs;
	unsigned tries;
} current;

static void
retry_free(struct retry *r)
{
	for (size_t i = 0; i < r->nargs; i++)
		free(r->args[i]);
	free(r->args);
	free(r);
}

static void
run_request(struct control_conn *c, room_handler h, char **args,
    size_t nargs, unsigned tries)
{
	current.handle = h;
	current.args = args;
	current.nargs = nargs;
	current.tries = tries;
	h(c, args, nargs);
	current.handle = NULL;
}

static void
retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct retry *r = (struct retry *)w;
	struct control_conn *c = control_state.running ?
	    control_conn_find(r->conn) : NULL;

	if (c != NULL && c->busy && c->req == r->req) {
		c->busy = 0;
		run_request(c, r->handle, r->args, r->nargs, r->tries);
		if (!c->busy && !c->dead)
			request_done(c);
	}
	retry_free(r);
}

/* Ask again later instead of answering; 0 once the tries are spent. */
static int
retry_later(struct control_conn *c)
{
	struct retry *r;

	if (current.handle == NULL || current.tries >= RETRY_MAX)
		return 0;
	r = xcalloc(1, sizeof(*r));
	r->conn = c->id;
	r->req = c->req;
	r->handle = current.handle;
	r->tries = current.tries + 1;
	r->nargs = current.nargs;
	r->args = xcalloc(current.nargs + 1, sizeof(*r->args));
	for (size_t i = 0; i < current.nargs; i++)
		r->args[i] = xstrdup(current.args[i]);
	c->busy = 1;
	ev_timer_init(&r->w, retry_cb, RETRY_INTERVAL, 0.0);
	ev_timer_start(xmppd_loop, &r->w);
	return 1;
}

/* The answer to a provider's status other than ROOMS_OK. */
static void
reply_rooms_err(struct control_conn *c, enum rooms_status st,
    const struct jid *room, const char *why)
{
	switch (st) {
	case ROOMS_NO_SERVICE:
		reply_err(c, CTL_E_NOT_FOUND, "no MUC service at %s",
		    room->domain);
		break;
	case ROOMS_NOT_FOUND:
		reply_err(c, CTL_E_NOT_FOUND, "no such room %s@%s",
		    room->node, room->domain);
		break;
	case ROOMS_EXISTS:
		reply_err(c, CTL_E_EXISTS, "room %s@%s exists", room->node,
		    room->domain);
		break;
	case ROOMS_BAD_JID:
		reply_err(c, CTL_E_BAD_JID, "invalid JID");
		break;
	case ROOMS_LOADING:
		if (retry_later(c))
			break;
		reply_err(c, CTL_E_INTERNAL, "%s is still reading its rooms "
		    "from storage; try again", room->domain);
		break;
	default:
		reply_err(c, CTL_E_REFUSED, "%s", why && why[0] ? why :
		    "refused");
		break;
	}
}

/* rooms */

static const char *const rooms_cols[] = { "jid", "name", "occupants:int",
	"sessions:int", "persistent:bool", "public:bool",
	"members_only:bool", "locked:bool", "messages_per_min:int" };

static void
rooms_row(void *arg, const struct rooms_summary *r)
{
	struct control_conn *c = arg;
	struct ctl_line l;

	if (c->dead)
		return;
	reply_line(c, &l, "row");
	ctl_line_add(&l, r->jid);
	ctl_line_add(&l, r->name ? r->name : "");
	ctl_line_addf(&l, "%u", r->occupants);
	ctl_line_addf(&l, "%u", r->sessions);
	ctl_line_add(&l, yes_no(r->persistent));
	ctl_line_add(&l, yes_no(r->publicroom));
	ctl_line_add(&l, yes_no(r->membersonly));
	ctl_line_add(&l, yes_no(r->locked));
	ctl_line_addf(&l, "%u", r->per_min);
	reply_end(c, &l);
}

void
handle_rooms(struct control_conn *c, char **args, size_t nargs)
{
	const struct rooms_provider *p = provider_or_err(c);

	if (p == NULL)
		return;
	reply_cols(c, rooms_cols, nitems(rooms_cols));
	p->list(rooms_row, c);
	if (!c->dead)
		reply_ok(c);
}

/* room-show: a "setting" row per setting (name NAME or NAME:TYPE, and
 * value), an "affiliation" row per affiliated JID, an "occupant" row
 * per nick. */

static const char *const show_cols[] = { "kind", "name", "value", "role",
	"affiliation", "jid", "sessions:int" };

static void
show_row(struct control_conn *c, const char *kind, const char *name,
    const char *value, const char *role, const char *aff, const char *jid,
    const char *sessions)
{
	struct ctl_line l;

	if (c->dead)
		return;
	reply_line(c, &l, "row");
	ctl_line_add(&l, kind);
	ctl_line_add(&l, name);
	ctl_line_add(&l, value);
	ctl_line_add(&l, role);
	ctl_line_add(&l, aff);
	ctl_line_add(&l, jid);
	ctl_line_add(&l, sessions);
	reply_end(c, &l);
}

static void
show_detail(void *arg, const struct rooms_detail *d)
{
	struct control_conn *c = arg;
	char n[16];

	reply_cols(c, show_cols, nitems(show_cols));
	show_row(c, "setting", "jid", d->sum.jid, "", "", "", "");
	for (size_t i = 0; i < d->nsettings; i++)
		show_row(c, "setting", d->settings[i].key,
		    d->settings[i].value, "", "", "", "");
	for (size_t i = 0; i < d->naffils; i++)
		show_row(c, "affiliation", "", "", "",
		    d->affils[i].affiliation, d->affils[i].jid, "");
	for (size_t i = 0; i < d->noccupants; i++) {
		const struct rooms_occupant *o = &d->occupants[i];

		snprintf(n, sizeof(n), "%u", o->sessions);
		show_row(c, "occupant", o->nick, "", o->role,
		    o->affiliation, o->jid, n);
	}
}

static void
do_room_show(struct control_conn *c, char **args, size_t nargs)
{
	const struct rooms_provider *p = provider_or_err(c);
	enum rooms_status st;
	struct jid room;

	if (p == NULL || parse_room(c, args[0], &room) == -1)
		return;
	st = p->show(room.node, room.domain, show_detail, c);
	if (st != ROOMS_OK)
		reply_rooms_err(c, st, &room, NULL);
	else if (!c->dead)
		reply_ok(c);
	jid_free(&room);
}

/*
 * Changes.  For a persistent room the answer ("ok" with fields) waits
 * for a no-op job queued behind the room's write.
 */
struct committed {
	struct store_job job;       /* owner: the connection, tag: the
	                               request */
	char *fields;               /* the ok line's field, or NULL */
};

static enum store_status
committed_run(struct store_job *j)
{
	return STORE_OK;
}

static void
reply_ok_field(struct control_conn *c, const char *field)
{
	struct ctl_line l;

	reply_line(c, &l, "ok");
	if (field != NULL)
		ctl_line_add(&l, field);
	reply_end(c, &l);
}

static void
committed_complete(struct store_job *j)
{
	struct committed *k = (struct committed *)j;
	struct control_conn *c = control_state.running ?
	    control_conn_find(j->owner) : NULL;

	if (c == NULL || !c->busy || c->req != (uint32_t)j->tag)
		return;
	if (j->status == STORE_OK)
		reply_ok_field(c, k->fields);
	else
		reply_err(c, CTL_E_INTERNAL, "database error (see the "
		    "daemon's log)");
	if (!c->dead)
		request_done(c);
}

static void
committed_free(struct store_job *j)
{
	struct committed *k = (struct committed *)j;

	free(k->fields);
	free(k);
}

static const struct store_job_ops committed_ops = {
	.name = "control room change",
	.writes = 0,
	.run = committed_run,
	.complete = committed_complete,
	.free = committed_free,
};

/* Answer "ok [FIELD]" now, or after the commit when stored is set. */
static void
reply_changed(struct control_conn *c, int stored, const char *field)
{
	struct committed *k;

	if (!stored) {
		reply_ok_field(c, field);
		return;
	}
	k = xcalloc(1, sizeof(*k));
	k->job.ops = &committed_ops;
	k->job.owner = c->id;
	k->job.tag = c->req;
	k->fields = field ? xstrdup(field) : NULL;
	c->busy = 1;
	store_job_submit(&k->job);
}

static void
note_persistent(void *arg, const struct rooms_detail *d)
{
	*(int *)arg = d->sum.persistent;
}

/* Whether node@service is a persistent room now. */
static int
room_persistent(const struct rooms_provider *p, const struct jid *room)
{
	int persistent = 0;

	p->show(room->node, room->domain, note_persistent, &persistent);
	return persistent;
}

struct create_args {
	struct rooms_create rc;
	char *owner;
};

/* room-create's OPTIONs; replies usage or bad-jid and returns -1. */
static int
create_options(struct control_conn *c, char **args, size_t nargs,
    struct create_args *a)
{
	for (size_t i = 0; i < nargs; i++) {
		const char *o = args[i];

		if (strcmp(o, "persistent") == 0)
			a->rc.persistent = 1;
		else if (strcmp(o, "public") == 0)
			a->rc.publicroom = 1;
		else if (strcmp(o, "members-only") == 0)
			a->rc.membersonly = 1;
		else if (strncmp(o, "name=", 5) == 0) {
			if (check_reason(o + 5) != NULL) {
				reply_err(c, CTL_E_USAGE, "NAME must be UTF-8 "
				    "text of at most 1024 bytes without "
				    "control characters");
				return -1;
			}
			a->rc.name = o[5] != '\0' ? o + 5 : NULL;
		} else if (strncmp(o, "owner=", 6) == 0) {
			free(a->owner);
			if ((a->owner = parse_bare(c, o + 6)) == NULL)
				return -1;
			a->rc.owner = a->owner;
		} else {
			reply_err(c, CTL_E_USAGE, "unknown option \"%s\" "
			    "(persistent, public, members-only, name=NAME, "
			    "owner=JID)", o);
			return -1;
		}
	}
	return 0;
}

static void
do_room_create(struct control_conn *c, char **args, size_t nargs)
{
	const struct rooms_provider *p = provider_or_err(c);
	struct create_args a;
	enum rooms_status st;
	struct jid room;
	char why[256] = "", *jid;

	memset(&a, 0, sizeof(a));
	if (p == NULL || parse_room(c, args[0], &room) == -1)
		return;
	if (create_options(c, args + 1, nargs - 1, &a) == -1) {
		free(a.owner);
		jid_free(&room);
		return;
	}
	a.rc.node = room.node;
	a.rc.service = room.domain;
	st = p->create(&a.rc, why, sizeof(why));
	jid = jid_bare(&room);
	control_log_change(c->uid, c->id, "room-create", room.node,
	    room.domain, st == ROOMS_OK ? "created" : "refused");
	if (st != ROOMS_OK)
		reply_rooms_err(c, st, &room, why);
	else
		reply_changed(c, a.rc.persistent, jid);
	free(jid);
	free(a.owner);
	jid_free(&room);
}

static void
do_room_destroy(struct control_conn *c, char **args, size_t nargs)
{
	const struct rooms_provider *p = provider_or_err(c);
	const char *reason = nargs > 1 ? args[1] : NULL;
	const char *bad;
	enum rooms_status st;
	struct jid room;
	unsigned told = 0;
	char n[16];
	int stored;

	if (p == NULL)
		return;
	if (reason != NULL && (bad = check_reason(reason)) != NULL) {
		reply_err(c, CTL_E_USAGE, "%s", bad);
		return;
	}
	if (parse_room(c, args[0], &room) == -1)
		return;
	stored = room_persistent(p, &room);
	st = p->destroy(room.node, room.domain, reason, &told);
	snprintf(n, sizeof(n), "%u", told);
	control_log_change(c->uid, c->id, "room-destroy", room.node,
	    room.domain, st == ROOMS_OK ? "destroyed" : "refused");
	if (st != ROOMS_OK)
		reply_rooms_err(c, st, &room, NULL);
	else
		reply_changed(c, stored, n);
	jid_free(&room);
}

static void
do_room_affiliate(struct control_conn *c, char **args, size_t nargs)
{
	static const char *const affs[] = { "owner", "admin", "member",
		"outcast", "none" };
	const struct rooms_provider *p = provider_or_err(c);
	enum rooms_status st;
	struct jid room;
	char why[256] = "", *bare, *what;
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < nitems(affs) && strcmp(args[2], affs[i]) != 0; i++)
		;
	if (i == nitems(affs)) {
		reply_err(c, CTL_E_USAGE, "AFFILIATION must be owner, admin, "
		    "member, outcast or none");
		return;
	}
	if (parse_room(c, args[0], &room) == -1)
		return;
	if ((bare = parse_bare(c, args[1])) == NULL) {
		jid_free(&room);
		return;
	}
	st = p->affiliate(room.node, room.domain, bare, args[2], why,
	    sizeof(why));
	what = xasprintf("%s %s: %s", bare, args[2], st == ROOMS_OK ? "done" :
	    "refused");
	control_log_change(c->uid, c->id, "room-affiliate", room.node,
	    room.domain, what);
	free(what);
	if (st != ROOMS_OK)
		reply_rooms_err(c, st, &room, why);
	else
		reply_changed(c, room_persistent(p, &room), NULL);
	free(bare);
	jid_free(&room);
}

void
handle_room_show(struct control_conn *c, char **args, size_t nargs)
{
	run_request(c, do_room_show, args, nargs, 0);
}

void
handle_room_create(struct control_conn *c, char **args, size_t nargs)
{
	run_request(c, do_room_create, args, nargs, 0);
}

void
handle_room_destroy(struct control_conn *c, char **args, size_t nargs)
{
	run_request(c, do_room_destroy, args, nargs, 0);
}

void
handle_room_affiliate(struct control_conn *c, char **args, size_t nargs)
{
	run_request(c, do_room_affiliate, args, nargs, 0);
}
