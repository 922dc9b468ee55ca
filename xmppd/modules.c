/*
 * The module table.  To add a module: write mod_NAME.c with a
 * "void mod_NAME_init(void);" (declared below) and add one row.
 */
#include <stddef.h>

#include "modules.h"
#include "presence.h"
#include "roster.h"

/* Module entry points (each defined in its mod_*.c). */

static const struct {
	const char *name;
	void (*init)(void);
} modules[] = {
	/* Core: presence and rosters are always on. */
	{ "roster", roster_init },
	{ "presence", presence_init },
	/* XEP modules (keep one line each). */
};

void
modules_init(void)
{
	for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++)
		modules[i].init();
}
