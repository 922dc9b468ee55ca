/*
 * What the panels and batch mode show, computed from the model: the
 * session rows sorted and filtered, the columns and their text.  No
 * curses, so batch mode prints exactly the rows the panel draws.
 */
#ifndef XMPPTOP_VIEW_H
#define XMPPTOP_VIEW_H

#include <stddef.h>

#include "source.h"

enum view_sort { SORT_JID, SORT_IDLE, SORT_TRAFFIC, SORT_SINCE, NSORTS };

enum view_col {
	VC_SID, VC_JID, VC_IP, VC_TLS, VC_CIPHER, VC_CLIENT, VC_SHOW, VC_PRIORITY,
	VC_SINCE, VC_IDLE, VC_IN, VC_OUT, VC_SM, VC_CSI, VC_AUTH, VC_STATUS,
	NVIEW_COLS
};

struct view_column {
	const char *title;
	int width;              /* panel width; the last column takes the rest */
	int right;              /* right-aligned */
};
extern const struct view_column view_columns[NVIEW_COLS];
extern const char *const view_sort_names[NSORTS];

/* The sessions matching filter (substring of JID, IP, client, status;
 * NULL or "" for all), sorted; the array is the caller's to free. */
struct top_session **view_rows(const struct top_source *s,
    enum view_sort sort, int reverse, const char *filter, size_t *n);
/* Text of one cell into buf. */
void view_cell(const struct top_session *t, enum view_col col, double now,
    char *buf, size_t size);
/* The header meters as one line of text. */
void view_header(const struct top_source *s, char *buf, size_t size);
/* Durations: "12s", "4:05", "1:02:03", "3d02h". */
void view_duration(double seconds, char *buf, size_t size);
enum view_sort view_sort_parse(const char *name);

/* The rooms by activity: messages per minute, then occupants, then JID
 * (the array is the caller's to free, not the rooms). */
const struct top_room **view_rooms(const struct top_source *s, size_t *n);
/* The rooms' meter: "rooms N, occupants M, messages/min X" and the
 * trend of the last samples as a bar of digits. */
void view_rooms_header(const struct top_source *s, char *buf, size_t size);
/* A room's flags: P persistent, p public, m members-only, '-' if not. */
void view_room_flags(const struct top_room *r, char *buf, size_t size);

/*
 * The link panels ('c' components, XEP-0114; 'f' server-to-server
 * streams): a title and alignment per column of source_list_columns, and
 * a row's cells as shown (since as in the sessions panel), for the
 * screen and batch mode alike.
 */
struct view_list_col {
	const char *title;
	int width;              /* on the screen; negative: left-aligned */
	int since;              /* a time: shown as in the sessions panel */
};
const char *view_list_title(enum top_list_kind l);
const struct view_list_col *view_list_cols(enum top_list_kind l, size_t *n);
void view_list_cell(enum top_list_kind l, const struct top_list *t, size_t row,
    size_t col, char *buf, size_t size);

#endif
