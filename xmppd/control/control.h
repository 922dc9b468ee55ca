/*
 * The control socket (Unix domain, line protocol, see HACKING.md and
 * shared/ctl.h): the daemon side used by xmppctl and xmpptop.
 */
#ifndef XMPPD_CONTROL_H
#define XMPPD_CONTROL_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

/*
 * Create and listen on path, mode 0660, owned by owner_uid and group
 * (group_name NULL: the daemon's primary group).  Refuses (returns -1 with
 * a message in err) if path is a symlink, or if a daemon already answers
 * there; a stale socket file is replaced.  Called before privileges drop.
 */
int control_init(const char *path, const char *group_name, uid_t owner_uid,
    gid_t owner_gid, char *err, size_t errlen);
/* Close all control connections and remove the socket file. */
void control_shutdown(void);

#endif
