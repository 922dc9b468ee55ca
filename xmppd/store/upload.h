/*
 * Storage of XEP-0363 uploads: one row per slot handed out, by its token
 * (the unguessable directory of its file under upload-dir), with its
 * owner, file name, size and type; "completed" is set once the file is
 * in place.  Rows name the owner by host and user, not by users(id): an
 * account's rows must outlive its deletion until its files are removed
 * (mod_upload.c deletes both).
 */
#ifndef XMPPD_STORE_UPLOAD_H
#define XMPPD_STORE_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define UPLOAD_LIST_MAX 1000 /* rows listed or purged per call */

struct store_upload {
	const char *token;       /* hex: the file's directory */
	const char *host, *user; /* whose */
	const char *filename;
	const char *content_type;
	int64_t size;      /* bytes announced (and written) */
	int64_t created;   /* unix seconds: the slot was handed out */
	int64_t completed; /* unix seconds: the file is there; 0: not */
};

/* The quotas a reservation is checked against; 0: no limit. */
struct store_upload_limits {
	int64_t user_bytes;          /* the user's files together */
	unsigned user_files_per_day; /* slots in the last 24 hours */
	int64_t disk_bytes;          /* every file of the server together */
};

/* What a reservation found. */
enum upload_reserve_result {
	UPLOAD_RESERVED,
	UPLOAD_OVER_USER_BYTES,
	UPLOAD_OVER_FILES_PER_DAY,
	UPLOAD_OVER_DISK,
};

/*
 * Reserve a slot: in one step, check u's owner and size against limits
 * (pending slots count) and insert the row.  cb gets STORE_OK and the
 * result, or STORE_ERROR.  For a day quota the result's retry is the
 * unix time at which a slot frees up.
 */
typedef void (*store_upload_reserved_cb)(uint64_t owner, enum store_status st,
    enum upload_reserve_result res, int64_t retry);
void store_upload_reserve(const struct store_upload *u,
    const struct store_upload_limits *limits, store_upload_reserved_cb cb,
    uint64_t owner);

/* The row of token (STORE_NOT_FOUND if none); rows are valid during the
 * call only.  Also the completion of store_upload_list (n rows) and of
 * the deletions (the rows deleted). */
typedef void (*store_upload_cb)(uint64_t owner, enum store_status st,
    const struct store_upload *rows, size_t n);
void store_upload_get(const char *token, store_upload_cb cb, uint64_t owner);

/* Mark the upload of token complete at now: STORE_NOT_FOUND if there is
 * no such row, STORE_EXISTS if it was complete already. */
typedef void (*store_upload_done_cb)(uint64_t owner, enum store_status st);
void store_upload_complete(
    const char *token, int64_t now, store_upload_done_cb cb, uint64_t owner);

/* Up to UPLOAD_LIST_MAX uploads, oldest first: of user@host, or of
 * everyone with user NULL. */
void store_upload_list(
    const char *host, const char *user, store_upload_cb cb, uint64_t owner);

/* Delete and pass back up to UPLOAD_LIST_MAX rows: of user@host
 * (user non-NULL), or else those created before `before` together with
 * slots never completed that were handed out before pending_before. */
void store_upload_delete(const char *host, const char *user, int64_t before,
    int64_t pending_before, store_upload_cb cb, uint64_t owner);

#endif
