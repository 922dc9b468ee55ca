/*
 * Storage of XEP-0357 push registrations: one row per (account, app
 * server JID, node), with the publish-options form the client gave at
 * enabling (serialized XML, "" for none).  Rows reference users(id), so
 * they go with the account.
 */
#ifndef XMPPD_STORE_PUSH_H
#define XMPPD_STORE_PUSH_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define PUSH_LIST_MAX 1000 /* rows listed per call */

struct store_push {
	const char *host, *user; /* whose (prepared) */
	const char *jid;         /* the app server (prepared) */
	const char *node;
	const char *form;        /* <x/> of publish-options, or "" */
	int64_t created;         /* unix seconds */
};

/* Rows of the listings and the deletions; valid during the call only.
 * st: STORE_OK (n may be 0) or STORE_ERROR. */
typedef void (*store_push_cb)(uint64_t owner, enum store_status st,
    const struct store_push *rows, size_t n);
/* Up to PUSH_LIST_MAX registrations of user@host, oldest first. */
void store_push_list(const char *host, const char *user, store_push_cb cb,
    uint64_t owner);

/*
 * Add p, or replace the row with the same jid and node (its form and
 * time).  STORE_OK; STORE_NOT_FOUND if there is no such account;
 * STORE_EXISTS if the account has max rows already and p is not one of
 * them (max 0: no limit).
 */
typedef void (*store_push_done_cb)(uint64_t owner, enum store_status st);
void store_push_put(const struct store_push *p, unsigned max,
    store_push_done_cb cb, uint64_t owner);

/* Delete user@host's registrations with jid and node, or every node of
 * jid with node NULL; cb gets STORE_OK and the rows deleted (n 0 when
 * there were none). */
void store_push_delete(const char *host, const char *user, const char *jid,
    const char *node, store_push_cb cb, uint64_t owner);

#endif
