/*
 * The module table.  To add a module: write mod_NAME.c with a
 * "void mod_NAME_init(void);" (declared below) and add one row.
 */
#include <stddef.h>

#include "mod/modules.h"
#include "core/presence.h"
#include "core/roster.h"

/* Module entry points (each defined in its mod_*.c). */
void mod_register_init(void);
void mod_vcard_init(void);
void mod_private_init(void);
void mod_offline_init(void);
void mod_disco_init(void);
void mod_ping_init(void);
void mod_version_init(void);
void mod_time_init(void);
void mod_last_init(void);
void mod_blocking_init(void);
void mod_mam_init(void);
void mod_carbons_init(void);

static const struct {
	const char *name;
	void (*init)(void);
} modules[] = {
	/* Core: presence and rosters are always on.  Presence first, so
	 * at session end it says goodbye before the roster cache goes. */
	{ "presence", presence_init },
	{ "roster", roster_init },
	/* XEP modules (keep one line each). */
	{ "register", mod_register_init },
	{ "vcard", mod_vcard_init },
	{ "private", mod_private_init },
	{ "offline", mod_offline_init },
	{ "disco", mod_disco_init },
	{ "ping", mod_ping_init },
	{ "version", mod_version_init },
	{ "time", mod_time_init },
	{ "last", mod_last_init },
	{ "blocking", mod_blocking_init },
	{ "mam", mod_mam_init },
	{ "carbons", mod_carbons_init },	/* last: after mam */
};

void
modules_init(void)
{
	for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++)
		modules[i].init();
}
