/*
 * Multi-user chat rooms in storage (XEP-0045, behind mod_muc.c): the
 * persistent rooms of each conference service, their configuration and
 * subject, and their affiliations.  Every call is asynchronous with the
 * rules of store.h (arguments are copied, callbacks run later on the
 * loop thread with owner/tag untouched, results are valid only during
 * the callback), and every job is bounded: a save writes one room with
 * at most MUC_AFFILIATIONS_MAX affiliations, a load reads at most
 * MUC_LOAD_CHUNK rooms (the caller asks again after the last id).
 *
 * Tables (store_sqlite.c's migration 7): muc_room, one row per room
 * with its configuration in columns; muc_affiliation, one row per bare
 * JID with an affiliation other than none, deleted with its room;
 * muc_vcard (migration 8), the room's vCard, deleted with its room.
 */
#ifndef XMPPD_STORE_MUC_H
#define XMPPD_STORE_MUC_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* Rooms read by one load job, and affiliations a room may have. */
#define MUC_LOAD_CHUNK 256
#define MUC_AFFILIATIONS_MAX 2000

/* XEP-0045 §5.2, in increasing privilege.  Stored: never renumber. */
enum muc_affiliation {
	MUC_AFF_OUTCAST = 0,
	MUC_AFF_NONE = 1,
	MUC_AFF_MEMBER = 2,
	MUC_AFF_ADMIN = 3,
	MUC_AFF_OWNER = 4,
};

/* Room flags (the boolean muc#roomconfig fields).  Stored. */
#define MUC_ROOM_PUBLIC          0x01
#define MUC_ROOM_MEMBERSONLY     0x02
#define MUC_ROOM_MODERATED       0x04
#define MUC_ROOM_PASSWORD        0x08
#define MUC_ROOM_WHOIS_ANYONE    0x10
#define MUC_ROOM_CHANGESUBJECT   0x20
#define MUC_ROOM_ALLOWINVITES    0x40
/* Inverted, so that rooms stored before keep the default (allowed). */
#define MUC_ROOM_NO_VOICEREQUESTS 0x80
/* muc#roomconfig_enablelogging: messages go to the room's archive. */
#define MUC_ROOM_LOGGING         0x100
/* muc#roomconfig_presencebroadcast: roles whose presence is NOT
 * broadcast (inverted, so that stored rooms keep broadcasting all). */
#define MUC_ROOM_NO_BCAST_VISITOR     0x200
#define MUC_ROOM_NO_BCAST_PARTICIPANT 0x400
#define MUC_ROOM_NO_BCAST_MODERATOR   0x800
/* muc#roomconfig_getmemberlist: roles that may get the member list
 * (participants and moderators unless the owner changes it). */
#define MUC_ROOM_MEMBERLIST_VISITOR        0x1000
#define MUC_ROOM_NO_MEMBERLIST_PARTICIPANT 0x2000
#define MUC_ROOM_NO_MEMBERLIST_MODERATOR   0x4000

struct muc_affil_row {
	const char *jid;            /* a bare JID */
	enum muc_affiliation affiliation;
};

/* A persistent room as stored.  Strings may be NULL (none). */
struct muc_room_row {
	int64_t id;                 /* loads: for the next chunk */
	const char *service, *node;
	const char *name, *desc, *secret;
	const char *lang;           /* muc#roomconfig_lang (migration 9) */
	const char *subject, *subject_nick;
	unsigned flags;             /* MUC_ROOM_* */
	unsigned allowpm;           /* 0 anyone, 1 participants,
	                               2 moderators, 3 none */
	unsigned maxusers;          /* 0: no limit */
	unsigned historylength;
	const struct muc_affil_row *affils;
	size_t naffils;
	/* The room's vcard-temp vCard (serialized) and its XEP-0153 photo
	 * hash; NULL: none (migration 8's muc_vcard table). */
	const char *vcard, *photo_hash;
};

typedef void (*muc_store_done_fn)(uint64_t owner, uint64_t tag,
    enum store_status st);
/* Write the room (created or replaced, its affiliations too). */
void muc_store_save(const struct muc_room_row *row, muc_store_done_fn cb,
    uint64_t owner, uint64_t tag);
/* Delete the room and its affiliations; STORE_NOT_FOUND if none. */
void muc_store_delete(const char *service, const char *node,
    muc_store_done_fn cb, uint64_t owner, uint64_t tag);
/*
 * The rooms of service with id > after, in id order, at most
 * MUC_LOAD_CHUNK (more: there may be others; ask again after the last
 * row's id).
 */
typedef void (*muc_store_rooms_fn)(uint64_t owner, uint64_t tag,
    enum store_status st, const struct muc_room_row *rows, size_t n,
    int more);
void muc_store_load(const char *service, int64_t after,
    muc_store_rooms_fn cb, uint64_t owner, uint64_t tag);
/* The room node of service (n 1), or none (n 0): one room read back
 * when it is needed again after leaving memory. */
void muc_store_get(const char *service, const char *node,
    muc_store_rooms_fn cb, uint64_t owner, uint64_t tag);

#endif
