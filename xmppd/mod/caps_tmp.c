/* Placeholder until mod_caps.c lands (same session): no session has verified capabilities yet, so no notification is sent.  Removed by the mod_caps merge. */
#include "mod/caps.h"
int caps_has(const struct caps *c, const char *f) { (void)c; (void)f; return 0; }
size_t caps_count(const struct caps *c) { (void)c; return 0; }
const char *caps_feature(const struct caps *c, size_t i) { (void)c; (void)i; return ""; }
const char *caps_ver(const struct caps *c) { (void)c; return ""; }
