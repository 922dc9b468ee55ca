/*
 * XEP-0115 entity capabilities of local sessions (mod_caps.c): each
 * 'ver' resolved once server-wide and verified, shared by the sessions
 * that present it (struct session's caps).
 */
#ifndef XMPPD_MOD_CAPS_H
#define XMPPD_MOD_CAPS_H

#include <stddef.h>

struct caps;
int caps_has(const struct caps *c, const char *feature);
size_t caps_count(const struct caps *c);
const char *caps_feature(const struct caps *c, size_t i);
const char *caps_ver(const struct caps *c);

#endif
