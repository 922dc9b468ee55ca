/*
 * The storage jobs of multi-user chat rooms (store/muc.h): saving a
 * persistent room with its affiliations, deleting it, and loading a
 * service's rooms in chunks at start-up.
 */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store/muc.h"
#include "store/store_engine.h"
#include "xmalloc.h"

enum muc_op { OP_SAVE, OP_DELETE, OP_LOAD };

struct room_copy {
	struct muc_room_row row;
	struct muc_affil_row *affils;
};

struct muc_job {
	struct store_job job;   /* first: the store hands this back */
	enum muc_op op;
	char *service, *node;
	int64_t after;
	struct room_copy in;            /* save */
	muc_store_done_fn done;
	muc_store_rooms_fn rooms;
	/* Results of a load. */
	struct room_copy *out;
	struct muc_room_row *rows;
	size_t nout;
	int more;
};

static const char sql_upsert[] =
    "INSERT INTO muc_room (service, node, name, description, secret,"
    " subject, subject_nick, flags, allowpm, maxusers, historylength, lang)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    " ON CONFLICT (service, node) DO UPDATE SET name = ?3,"
    " description = ?4, secret = ?5, subject = ?6, subject_nick = ?7,"
    " flags = ?8, allowpm = ?9, maxusers = ?10, historylength = ?11,"
    " lang = ?12";
static const char sql_room_id[] =
    "SELECT id FROM muc_room WHERE service = ?1 AND node = ?2";
static const char sql_affils_clear[] =
    "DELETE FROM muc_affiliation WHERE room_id = ?1";
static const char sql_affil_add[] =
    "INSERT OR REPLACE INTO muc_affiliation (room_id, jid, affiliation)"
    " VALUES (?1, ?2, ?3)";
static const char sql_delete[] =
    "DELETE FROM muc_room WHERE service = ?1 AND node = ?2";
static const char sql_load[] =
    "SELECT id, node, name, description, secret, subject, subject_nick,"
    " flags, allowpm, maxusers, historylength, v.vcard, v.photo_hash, lang"
    " FROM muc_room LEFT JOIN muc_vcard v ON v.room_id = muc_room.id"
    " WHERE service = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
static const char sql_get[] =
    "SELECT id, node, name, description, secret, subject, subject_nick,"
    " flags, allowpm, maxusers, historylength, v.vcard, v.photo_hash, lang"
    " FROM muc_room LEFT JOIN muc_vcard v ON v.room_id = muc_room.id"
    " WHERE service = ?1 AND node = ?2";
static const char sql_vcard_put[] =
    "INSERT OR REPLACE INTO muc_vcard (room_id, vcard, photo_hash)"
    " VALUES (?1, ?2, ?3)";
static const char sql_vcard_clear[] = "DELETE FROM muc_vcard WHERE room_id = ?1";
static const char sql_load_affils[] =
    "SELECT jid, affiliation FROM muc_affiliation WHERE room_id = ?1"
    " ORDER BY jid LIMIT ?2";

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static void
bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v != NULL)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

static char *
column_dup(sqlite3_stmt *s, int col)
{
	const unsigned char *v = sqlite3_column_text(s, col);

	return v != NULL ? xstrdup((const char *)v) : NULL;
}

static enum store_status
run_save(struct muc_job *j)
{
	const struct muc_room_row *r = &j->in.row;
	sqlite3_stmt *s;
	sqlite3_int64 id = 0;
	enum store_status st;

	if ((s = store_sql(sql_upsert)) == NULL)
		return STORE_ERROR;
	bind_text(s, 1, r->service);
	bind_text(s, 2, r->node);
	bind_text(s, 3, r->name);
	bind_text(s, 4, r->desc);
	bind_text(s, 5, r->secret);
	bind_text(s, 6, r->subject);
	bind_text(s, 7, r->subject_nick);
	sqlite3_bind_int(s, 8, (int)r->flags);
	sqlite3_bind_int(s, 9, (int)r->allowpm);
	sqlite3_bind_int(s, 10, (int)r->maxusers);
	sqlite3_bind_int(s, 11, (int)r->historylength);
	bind_text(s, 12, r->lang);
	if ((st = store_sql_write(s, "muc room save", STORE_OK)) != STORE_OK)
		return st;
	if ((s = store_sql(sql_room_id)) == NULL)
		return STORE_ERROR;
	bind_text(s, 1, r->service);
	bind_text(s, 2, r->node);
	if (sqlite3_step(s) == SQLITE_ROW)
		id = sqlite3_column_int64(s, 0);
	store_sql_done(s);
	if (id == 0)
		return STORE_ERROR;
	if ((s = store_sql(sql_affils_clear)) == NULL)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, id);
	if (store_sql_write(s, "muc affiliations", STORE_OK) != STORE_OK)
		return STORE_ERROR;
	for (size_t i = 0; i < r->naffils; i++) {
		if ((s = store_sql(sql_affil_add)) == NULL)
			return STORE_ERROR;
		sqlite3_bind_int64(s, 1, id);
		bind_text(s, 2, r->affils[i].jid);
		sqlite3_bind_int(s, 3, (int)r->affils[i].affiliation);
		if (store_sql_write(s, "muc affiliation", STORE_OK) !=
		    STORE_OK)
			return STORE_ERROR;
	}
	if ((s = store_sql(r->vcard ? sql_vcard_put : sql_vcard_clear)) ==
	    NULL)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, id);
	if (r->vcard != NULL) {
		bind_text(s, 2, r->vcard);
		bind_text(s, 3, r->photo_hash);
	}
	if (store_sql_write(s, "muc vcard", STORE_OK) != STORE_OK)
		return STORE_ERROR;
	return STORE_OK;
}

static enum store_status
load_affils(struct room_copy *c)
{
	sqlite3_stmt *s;
	int rc;

	if ((s = store_sql(sql_load_affils)) == NULL)
		return STORE_ERROR;
	sqlite3_bind_int64(s, 1, c->row.id);
	sqlite3_bind_int(s, 2, MUC_AFFILIATIONS_MAX);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct muc_affil_row *a;

		c->affils = xreallocarray(c->affils, c->row.naffils + 1,
		    sizeof(*c->affils));
		a = &c->affils[c->row.naffils++];
		a->jid = column_dup(s, 0);
		a->affiliation = (enum muc_affiliation)sqlite3_column_int(s,
		    1);
	}
	store_sql_done(s);
	c->row.affils = c->affils;
	if (rc != SQLITE_DONE) {
		store_sql_warn("muc affiliations load");
		return STORE_ERROR;
	}
	return STORE_OK;
}

static enum store_status
run_load(struct muc_job *j)
{
	sqlite3_stmt *s;
	int rc;

	if ((s = store_sql(j->node != NULL ? sql_get : sql_load)) == NULL)
		return STORE_ERROR;
	bind_text(s, 1, j->service);
	if (j->node != NULL)
		bind_text(s, 2, j->node);
	else {
		sqlite3_bind_int64(s, 2, j->after);
		sqlite3_bind_int(s, 3, MUC_LOAD_CHUNK + 1);
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct room_copy *c;

		if (j->nout == MUC_LOAD_CHUNK) {
			j->more = 1;
			continue;
		}
		j->out = xreallocarray(j->out, j->nout + 1, sizeof(*j->out));
		c = &j->out[j->nout++];
		memset(c, 0, sizeof(*c));
		c->row.id = sqlite3_column_int64(s, 0);
		c->row.service = xstrdup(j->service);
		c->row.node = column_dup(s, 1);
		c->row.name = column_dup(s, 2);
		c->row.desc = column_dup(s, 3);
		c->row.secret = column_dup(s, 4);
		c->row.subject = column_dup(s, 5);
		c->row.subject_nick = column_dup(s, 6);
		c->row.flags = (unsigned)sqlite3_column_int(s, 7);
		c->row.allowpm = (unsigned)sqlite3_column_int(s, 8);
		c->row.maxusers = (unsigned)sqlite3_column_int(s, 9);
		c->row.historylength = (unsigned)sqlite3_column_int(s, 10);
		c->row.vcard = column_dup(s, 11);
		c->row.photo_hash = column_dup(s, 12);
		c->row.lang = column_dup(s, 13);
	}
	store_sql_done(s);
	if (rc != SQLITE_DONE) {
		store_sql_warn("muc rooms load");
		return STORE_ERROR;
	}
	for (size_t i = 0; i < j->nout; i++)
		if (load_affils(&j->out[i]) != STORE_OK)
			return STORE_ERROR;
	return STORE_OK;
}

static enum store_status
run(struct store_job *sj)
{
	struct muc_job *j = (struct muc_job *)sj;
	sqlite3_stmt *s;

	switch (j->op) {
	case OP_SAVE:
		return run_save(j);
	case OP_DELETE:
		if ((s = store_sql(sql_delete)) == NULL)
			return STORE_ERROR;
		bind_text(s, 1, j->service);
		bind_text(s, 2, j->node);
		return store_sql_write(s, "muc room delete", STORE_NOT_FOUND);
	case OP_LOAD:
		return run_load(j);
	}
	return STORE_ERROR;
}

static void
complete(struct store_job *sj)
{
	struct muc_job *j = (struct muc_job *)sj;

	if (j->op == OP_LOAD) {
		int ok = j->job.status == STORE_OK;

		if (ok && j->nout > 0) {
			j->rows = xcalloc(j->nout, sizeof(*j->rows));
			for (size_t i = 0; i < j->nout; i++)
				j->rows[i] = j->out[i].row;
		}
		if (j->rooms != NULL)
			j->rooms(j->job.owner, j->job.tag, j->job.status,
			    ok ? j->rows : NULL, ok ? j->nout : 0,
			    ok && j->more);
	} else if (j->done != NULL)
		j->done(j->job.owner, j->job.tag, j->job.status);
}

static void
room_copy_free(struct room_copy *c)
{
	free((char *)c->row.service);
	free((char *)c->row.node);
	free((char *)c->row.name);
	free((char *)c->row.desc);
	free((char *)c->row.secret);
	free((char *)c->row.lang);
	free((char *)c->row.subject);
	free((char *)c->row.subject_nick);
	free((char *)c->row.vcard);
	free((char *)c->row.photo_hash);
	for (size_t i = 0; i < c->row.naffils; i++)
		free((char *)c->affils[i].jid);
	free(c->affils);
}

static void
job_free(struct store_job *sj)
{
	struct muc_job *j = (struct muc_job *)sj;

	room_copy_free(&j->in);
	for (size_t i = 0; i < j->nout; i++)
		room_copy_free(&j->out[i]);
	free(j->out);
	free(j->rows);
	free(j->service);
	free(j->node);
	free(j);
}

static const struct store_job_ops read_ops = { "muc load", 0, run, complete,
	job_free };
static const struct store_job_ops write_ops = { "muc write", 1, run,
	complete, job_free };

static struct muc_job *
job_new(enum muc_op op, const char *service, const char *node,
    uint64_t owner, uint64_t tag)
{
	struct muc_job *j = xcalloc(1, sizeof(*j));

	j->job.ops = op == OP_LOAD ? &read_ops : &write_ops;
	j->job.owner = owner;
	j->job.tag = tag;
	j->op = op;
	j->service = xstrdup(service);
	j->node = dup_or_null(node);
	return j;
}

void
muc_store_save(const struct muc_room_row *row, muc_store_done_fn cb,
    uint64_t owner, uint64_t tag)
{
	struct muc_job *j = job_new(OP_SAVE, row->service, row->node, owner,
	    tag);
	struct muc_room_row *r = &j->in.row;
	size_t n = row->naffils < MUC_AFFILIATIONS_MAX ? row->naffils :
	    MUC_AFFILIATIONS_MAX;

	*r = *row;
	r->service = xstrdup(row->service);
	r->node = xstrdup(row->node);
	r->name = dup_or_null(row->name);
	r->desc = dup_or_null(row->desc);
	r->secret = dup_or_null(row->secret);
	r->lang = dup_or_null(row->lang);
	r->subject = dup_or_null(row->subject);
	r->subject_nick = dup_or_null(row->subject_nick);
	r->vcard = dup_or_null(row->vcard);
	r->photo_hash = dup_or_null(row->photo_hash);
	j->in.affils = n ? xcalloc(n, sizeof(*j->in.affils)) : NULL;
	for (size_t i = 0; i < n; i++) {
		j->in.affils[i].jid = xstrdup(row->affils[i].jid);
		j->in.affils[i].affiliation = row->affils[i].affiliation;
	}
	r->affils = j->in.affils;
	r->naffils = n;
	j->done = cb;
	store_job_submit(&j->job);
}

void
muc_store_delete(const char *service, const char *node,
    muc_store_done_fn cb, uint64_t owner, uint64_t tag)
{
	struct muc_job *j = job_new(OP_DELETE, service, node, owner, tag);

	j->done = cb;
	store_job_submit(&j->job);
}

void
muc_store_load(const char *service, int64_t after, muc_store_rooms_fn cb,
    uint64_t owner, uint64_t tag)
{
	struct muc_job *j = job_new(OP_LOAD, service, NULL, owner, tag);

	j->after = after;
	j->rooms = cb;
	store_job_submit(&j->job);
}

void
muc_store_get(const char *service, const char *node, muc_store_rooms_fn cb,
    uint64_t owner, uint64_t tag)
{
	struct muc_job *j = job_new(OP_LOAD, service, node, owner, tag);

	j->rooms = cb;
	store_job_submit(&j->job);
}
