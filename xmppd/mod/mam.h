/*
 * The message archive of rooms (XEP-0313 on a room JID), for mod_muc.c:
 * mod_mam.c stores a room's groupchat messages in the room's archive
 * (store/mam.h, muc_archive) and answers the queries a room passes on.
 * The room decides what is archived (its muc#roomconfig_enablelogging)
 * and who may read (XEP-0313 §4.1.2 with XEP-0045: occupants, and
 * members of members-only rooms).
 */
#ifndef XMPPD_MOD_MAM_H
#define XMPPD_MOD_MAM_H

#include <stdint.h>

struct session;
struct xel;

/* Whether rooms may archive: the archive module is on. */
int mam_rooms_enabled(void);

/*
 * Archive msg, a groupchat message as room node@service sends it (from
 * room@service/nick, no 'to', with its <stanza-id/> of public id id), if
 * it is worth keeping (a body, a subject, a retraction, an encrypted
 * payload or a <store/> hint; never with <no-store/>).  nick_jid is its
 * sender's room JID (the 'with' it is found by).
 */
void mam_room_archive(const char *node, const char *service,
    const char *room_jid, uint64_t id, const char *nick_jid,
    const struct xel *msg);

/*
 * Answer iq, an urn:xmpp:mam:2 <query/> (get: the form, set: the
 * results) that s sent to room room_jid = node@service, whose access
 * the room granted: results come from the room's bare JID.
 */
void mam_room_query(struct session *s, struct xel *iq, const char *node,
    const char *service, const char *room_jid);
/* Answer iq, an urn:xmpp:mam:2 <metadata/> get (XEP-0313 §5) that s sent
 * to room node@service, whose access the room granted. */
void mam_room_metadata_iq(struct session *s, struct xel *iq,
    const char *node, const char *service);

#endif
