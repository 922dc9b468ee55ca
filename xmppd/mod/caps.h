/*
 * XEP-0115 entity capabilities of local clients, as mod_caps.c verified
 * them: a session's s->caps (core/session.h) points to the feature set
 * of the 'ver' its current presence carries; while a new ver is being
 * resolved (or when its answer did not hash to it) it keeps the one
 * verified before, and it is NULL while none is known (no caps, a first
 * ver not yet resolved, unavailable).  hook_run_caps_changed
 * (core/hooks.h) says when it changes, old -> new.
 * A struct caps is shared by every session presenting the same ver and
 * stays valid while a session points to it (read it there, or copy).
 */
#ifndef XMPPD_MOD_CAPS_H
#define XMPPD_MOD_CAPS_H

#include <stddef.h>

struct caps;

/* Whether c lists feature (a disco#info <feature var/>); c NULL: 0.
 * A binary search over the sorted features. */
int caps_has(const struct caps *c, const char *feature);
/* The number of distinct features (0 for NULL). */
size_t caps_count(const struct caps *c);
/* The i-th feature, i < caps_count(c), in strcmp order. */
const char *caps_feature(const struct caps *c, size_t i);
/* The verification string (sha-1, base64) it was verified against. */
const char *caps_ver(const struct caps *c);

/* Bounds (mod_caps.c): verified vers kept, resolutions in flight at
 * once, and sessions waiting on one resolution. */
#define CAPS_CACHE_MAX 4096
#define CAPS_RESOLVING_MAX 256
#define CAPS_WAITING_MAX 32
/* Queries per ver (mismatch, error or no answer each count) before it
 * is given up until a session presents it again. */
#define CAPS_TRIES_MAX 3

/*
 * Contacts on other servers (mod_caps.c tracks them): the resources
 * whose available presence reached user@host, from contacts with a
 * subscription either way, while the user has a session, each with its
 * verified caps (NULL while unknown).  hook_run_remote_caps_changed
 * (core/hooks.h) says when a resource's caps become known or change.
 * At most CAPS_REMOTE_PER_USER resources per user, CAPS_REMOTE_MAX in
 * all; the rest are not tracked (no notifications, XEP-0163 §4).
 */
#define CAPS_REMOTE_PER_USER 512
#define CAPS_REMOTE_MAX 65536
/* fn for each resource available to user@host: full is its full JID, c
 * its caps or NULL.  fn must not send (collect, then send). */
typedef void (*caps_remote_fn)(const char *full, const struct caps *c,
    void *arg);
void caps_remote_foreach(const char *user, const char *host,
    caps_remote_fn fn, void *arg);
/* full is no longer available to user@host (an error came back from
 * it). */
void caps_remote_drop(const char *user, const char *host, const char *full);

#endif
