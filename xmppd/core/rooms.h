/*
 * The rooms of the conference services (XEP-0045) as the control plane
 * sees them: an interface that the MUC module fills in at init and
 * empties at deinit, so that control/ lists, shows and changes rooms
 * without including mod/ (xmppctl rooms, room show|create|destroy|
 * affiliate; xmpptop's rooms panel).  One provider at a time; NULL
 * while the MUC module is off.  Everything runs on the loop thread,
 * synchronously: strings handed to callbacks are the provider's and
 * valid only during the call.  A change to a persistent room is queued
 * to storage before the call returns (store.h is FIFO: a request
 * queued after it completes after its commit).
 */
#ifndef XMPPD_CORE_ROOMS_H
#define XMPPD_CORE_ROOMS_H

#include <stddef.h>

/* One room in a listing. */
struct rooms_summary {
	const char *jid;            /* room@service */
	const char *name;           /* muc#roomconfig_roomname, NULL: none */
	unsigned occupants;         /* nicks in the room */
	unsigned sessions;          /* sessions joined under them */
	int persistent, publicroom, membersonly, locked;
	unsigned per_min;           /* groupchat messages accepted from its
	                               occupants in the last 60 seconds */
};

/* A setting of a room: key as NAME or NAME:TYPE (shared/ctl.h types),
 * value as text ("yes"/"no" for booleans). */
struct rooms_setting {
	const char *key, *value;
};

struct rooms_affiliation {
	const char *jid, *affiliation;  /* bare JID; owner, admin, member,
	                                   outcast */
};

struct rooms_occupant {
	const char *nick, *role, *affiliation;
	const char *jid;            /* the real bare JID */
	unsigned sessions;          /* its sessions joined under the nick */
};

struct rooms_detail {
	struct rooms_summary sum;
	const struct rooms_setting *settings;
	size_t nsettings;
	const struct rooms_affiliation *affils;
	size_t naffils;
	const struct rooms_occupant *occupants;
	size_t noccupants;
};

/* What room create asks for. */
struct rooms_create {
	const char *node, *service;     /* prepared */
	const char *name;               /* NULL: none */
	const char *owner;              /* a bare JID, or NULL: nobody */
	int persistent, publicroom, membersonly;
};

enum rooms_status {
	ROOMS_OK,
	ROOMS_NO_SERVICE,           /* no conference service at that domain */
	ROOMS_NOT_FOUND,            /* no such room */
	ROOMS_EXISTS,               /* room create: it exists */
	ROOMS_BAD_JID,
	ROOMS_LOADING,              /* the service still reads its rooms */
	ROOMS_REFUSED,              /* see the message */
};

typedef void (*rooms_summary_fn)(void *arg, const struct rooms_summary *r);
typedef void (*rooms_detail_fn)(void *arg, const struct rooms_detail *d);

/*
 * The provider.  Functions that can fail write a message for people
 * into why (at most whylen bytes) when they do not return ROOMS_OK.
 * destroy sets *told to the number of occupants that got the
 * <destroy/> presence.
 */
struct rooms_provider {
	/* Every room of every service, by service, then room JID. */
	void (*list)(rooms_summary_fn fn, void *arg);
	enum rooms_status (*show)(const char *node, const char *service,
	    rooms_detail_fn fn, void *arg);
	enum rooms_status (*create)(const struct rooms_create *c, char *why,
	    size_t whylen);
	enum rooms_status (*destroy)(const char *node, const char *service,
	    const char *reason, unsigned *told);
	/* affiliation: owner, admin, member, outcast or none; jid bare. */
	enum rooms_status (*affiliate)(const char *node, const char *service,
	    const char *jid, const char *affiliation, char *why,
	    size_t whylen);
};

/* Register p (not copied: it must outlive the registration), or remove
 * it with NULL. */
void rooms_set_provider(const struct rooms_provider *p);
/* The provider, or NULL when no MUC service runs. */
const struct rooms_provider *rooms_provider(void);

#endif
