/*
 * The compiled-in modules, one mod_*.c per XEP, in one table (modules.c).
 * A module's init reads xmppd_conf and registers its IQ handlers (iq.h),
 * hooks (hooks.h) and disco entries (disco.h); all of them belong to the
 * module (its index is their owner, hooks.h), so switching it off removes
 * them before its deinit frees its own state.  A module that is off
 * advertises nothing.
 *
 * A module is on unless its own setting ("registration", "archive",
 * "software-version off", "offline-messages 0") or "module NAME off"
 * turns it off; a reload applies changes without dropping sessions.
 */
#ifndef XMPPD_MODULES_H
#define XMPPD_MODULES_H

#include <stddef.h>

struct conf;

/* Whether every "module NAME" statement of c names a module that can be
 * switched off; -1 with a message in err if not. */
int modules_check_conf(const struct conf *c, char *err, size_t errlen);
/* Start the modules that xmppd_conf turns on, in table order. */
void modules_init(void);
/* After a reload (xmppd_conf is the new configuration): stop the modules
 * it turns off (in reverse order), start the ones it turns on (in order),
 * and let the others read it again. */
void modules_reload(void);

#endif
