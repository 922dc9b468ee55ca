/*
 * The registry of core/rooms.h: the one rooms provider (the MUC module)
 * that the control plane asks about rooms.
 */
#include <stddef.h>

#include "core/rooms.h"

static const struct rooms_provider *provider;

void
rooms_set_provider(const struct rooms_provider *p)
{
	provider = p;
}

const struct rooms_provider *
rooms_provider(void)
{
	return provider;
}
