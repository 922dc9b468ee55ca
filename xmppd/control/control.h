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

/*
 * Events pushed to subscribed connections ("subscribe", shared/ctl.h).
 * Each returns at once when nobody is subscribed; callers with costly
 * arguments test control_subscribers() first.
 */
struct sm_session_info;
size_t control_subscribers(void);
void control_event_session_up(const struct sm_session_info *info);
void control_event_session_down(uint64_t sid, const char *jid,
    const char *reason);
void control_event_presence(uint64_t sid, const char *jid, const char *show,
    int priority, const char *status);
/* "* event log LEVEL TEXT": logins, logouts, kicks, failed logins. */
void control_event_log(const char *level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* An authentication failed (counted, and a log event). */
void control_event_auth_failure(const char *addr);

#endif
