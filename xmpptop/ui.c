/*
 * The curses side of xmpptop: header meters, the sessions panel (sorted,
 * filtered, scrolled; only the visible rows are formatted), the presence
 * view, session details, the events pane, the function bar, help, and
 * the keys.  Reads the model in source.c, never the socket.
 */
#include <curses.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xmalloc.h"

#include "ui.h"

enum ui_screen { SCR_SESSIONS, SCR_PRESENCE, SCR_DETAIL, SCR_HELP,
	SCR_ROOMS, SCR_COMPONENTS, SCR_S2S };
/* What a "(y/n)" question asks for. */
enum ui_confirm { CONFIRM_NONE, CONFIRM_KICK, CONFIRM_DISABLE };

#define CTRL_U 21               /* clears the filter, as in a shell */
/* The sessions panel drops CIPHER, then CLIENT, rather than leave
 * STATUS fewer columns than this (at 160 columns both go). */
#define STATUS_MIN_WIDTH 40

struct ui {
	struct top_source *src;
	enum ui_screen screen, back;
	enum view_sort sort;
	int reverse;
	char filter[128];
	int editing;            /* typing a filter after "/" */
	enum ui_confirm confirm;        /* "Kick ...? (y/n)" shown */
	char target[1024];      /* JID to kick, disable or detail */
	char selected[256];     /* sid of the selected row, kept on re-sort */
	size_t cursor, top;     /* row index, first visible row */
	size_t scroll;          /* presence/detail/help scroll */
	int show_events;
	struct top_session **rows;
	size_t nrows;
	size_t room_cursor;     /* rooms screen: the selected room */
	char room[1024];        /* its JID, kept on re-sort */
};

static volatile sig_atomic_t quit_signal;
static int curses_on;

static void
restore_terminal(void)
{
	if (curses_on) {
		curses_on = 0;
		endwin();
	}
}

static void
on_signal(int sig)
{
	quit_signal = sig;
}

/* --- drawing helpers --- */

static void
put(int y, int x, const char *s, int width)
{
	if (width <= 0)
		return;
	mvaddnstr(y, x, s, width);
}

static void
fill_line(int y, attr_t attr)
{
	move(y, 0);
	attron(attr);
	for (int x = 0; x < COLS; x++)
		addch(' ');
	attroff(attr);
}

static void
draw_meters(struct ui *u)
{
	const struct top_source *s = u->src;
	const struct top_counters *k = &s->counters;
	char a[512], b[512], up[32];

	if (s->state == TOP_DISCONNECTED) {
		attron(A_BOLD);
		snprintf(a, sizeof(a), "DISCONNECTED  %s  (retrying every "
		    "second)", s->status);
		put(0, 0, a, COLS);
		attroff(A_BOLD);
		return;
	}
	snprintf(a, sizeof(a), "xmppd %s  %s", s->daemon_version, s->path);
	put(0, 0, a, COLS);
	if (!k->valid) {
		put(1, 0, "waiting for counters...", COLS);
		return;
	}
	view_duration(k->uptime, up, sizeof(up));
	snprintf(a, sizeof(a), "Uptime: %s  Sessions: %ld  Users: %ld  "
	    "Logins/min: %.0f  Offline queue: %ld  RSS: %.1fM", up,
	    k->sessions, k->users, k->logins_per_min, k->offline_queue,
	    k->rss_kb / 1024.0);
	snprintf(b, sizeof(b), "Stanzas/s in: %.1f out: %.1f  Bytes/s in: "
	    "%.0f out: %.0f  Store queue: %ld  Commit: %.1fms%s",
	    k->in_per_s, k->out_per_s, k->bytes_in_per_s, k->bytes_out_per_s,
	    k->store_queue, k->commit_ms,
	    k->from_events ? "" : "  (polling: no events)");
	put(1, 0, a, COLS);
	put(2, 0, b, COLS);
}

static void
draw_message(struct ui *u, int y)
{
	char line[1200];

	if (u->confirm != CONFIRM_NONE) {
		snprintf(line, sizeof(line), u->confirm == CONFIRM_KICK ?
		    "Kick %s? (y/n)" : "Disable %s: close all its sessions "
		    "and refuse its logins? (y/n)", u->target);
		attron(A_BOLD | A_REVERSE);
		put(y, 0, line, COLS);
		attroff(A_BOLD | A_REVERSE);
		return;
	}
	if (u->editing)
		snprintf(line, sizeof(line), "Filter: %s_", u->filter);
	else if (u->filter[0] != '\0')
		snprintf(line, sizeof(line), "Filter: %s  (%zu shown)  %s",
		    u->filter, u->nrows, u->src->status);
	else
		snprintf(line, sizeof(line), "%zu session%s, sorted by %s%s  %s",
		    u->nrows, u->nrows == 1 ? "" : "s", view_sort_names[u->sort],
		    u->reverse ? " (reversed)" : "", u->src->status);
	put(y, 0, line, COLS);
}

/* Keep the cursor on the selected session after re-sorting. */
static void
refresh_rows(struct ui *u)
{
	free(u->rows);
	u->rows = view_rows(u->src, u->sort, u->reverse, u->filter,
	    &u->nrows);
	if (u->selected[0] != '\0')
		for (size_t i = 0; i < u->nrows; i++)
			if (strcmp(u->rows[i]->sid, u->selected) == 0) {
				u->cursor = i;
				break;
			}
	if (u->cursor >= u->nrows)
		u->cursor = u->nrows > 0 ? u->nrows - 1 : 0;
	if (u->nrows > 0)
		snprintf(u->selected, sizeof(u->selected), "%s",
		    u->rows[u->cursor]->sid);
}

/* The columns drawn COLS wide: all, unless STATUS would get fewer than
 * STATUS_MIN_WIDTH; then CIPHER and, if need be, CLIENT, AUTH, CSI and SM
 * give way in that order (the detail view still shows them). */
static void
layout(int shown[NVIEW_COLS])
{
	static const enum view_col optional[] = { VC_CIPHER, VC_CLIENT,
		VC_AUTH, VC_CSI, VC_SM };
	int used = 0;

	for (int c = 0; c < NVIEW_COLS; c++) {
		shown[c] = 1;
		used += view_columns[c].width ? view_columns[c].width + 1 : 0;
	}
	for (size_t i = 0; i < nitems(optional) &&
	    COLS - used < STATUS_MIN_WIDTH; i++) {
		shown[optional[i]] = 0;
		used -= view_columns[optional[i]].width + 1;
	}
}

static void
draw_sessions(struct ui *u, int y0, int height)
{
	double now = source_now();
	char cell[512];
	int x = 0, shown[NVIEW_COLS];

	layout(shown);
	fill_line(y0, A_REVERSE);
	attron(A_REVERSE);
	for (int c = 0; c < NVIEW_COLS && x < COLS; c++) {
		int w = view_columns[c].width ? view_columns[c].width :
		    COLS - x;
		char title[32];

		if (!shown[c])
			continue;
		snprintf(title, sizeof(title), "%s%s", view_columns[c].title,
		    (c == VC_JID && u->sort == SORT_JID) ||
		    (c == VC_IDLE && u->sort == SORT_IDLE) ||
		    (c == VC_SINCE && u->sort == SORT_SINCE) ||
		    (c == VC_IN && u->sort == SORT_TRAFFIC) ?
		    (u->reverse ? "^" : "v") : "");
		mvprintw(y0, x, view_columns[c].right ? "%*.*s" : "%-*.*s",
		    w < COLS - x ? w : COLS - x,
		    w < COLS - x ? w : COLS - x, title);
		x += w + 1;
	}
	attroff(A_REVERSE);
	height--;
	if (height <= 0)
		return;
	if (u->cursor < u->top)
		u->top = u->cursor;
	if (u->cursor >= u->top + (size_t)height)
		u->top = u->cursor - (size_t)height + 1;
	if (u->top + (size_t)height > u->nrows)
		u->top = u->nrows > (size_t)height ?
		    u->nrows - (size_t)height : 0;
	for (int r = 0; r < height && u->top + (size_t)r < u->nrows; r++) {
		size_t i = u->top + (size_t)r;
		int y = y0 + 1 + r;

		if (i == u->cursor)
			fill_line(y, A_REVERSE);
		if (i == u->cursor)
			attron(A_REVERSE);
		x = 0;
		for (int c = 0; c < NVIEW_COLS && x < COLS; c++) {
			int w = view_columns[c].width ?
			    view_columns[c].width : COLS - x;

			if (!shown[c])
				continue;
			if (w > COLS - x)
				w = COLS - x;
			view_cell(u->rows[i], (enum view_col)c, now, cell,
			    sizeof(cell));
			mvprintw(y, x, view_columns[c].right ? "%*.*s" :
			    "%-*.*s", w, w, cell);
			x += w + 1;
		}
		if (i == u->cursor)
			attroff(A_REVERSE);
	}
}

static int
show_rank(const char *show)
{
	static const char *const order[] = { "chat", "available", "away",
		"xa", "dnd" };

	for (size_t i = 0; i < nitems(order); i++)
		if (strcmp(show, order[i]) == 0)
			return (int)i;
	return (int)nitems(order);
}

static void
draw_presence(struct ui *u, int y0, int height)
{
	/* rows are sorted by the panel's key; group them by show here. */
	size_t line = 0;
	int y = y0;

	fill_line(y0, A_REVERSE);
	attron(A_REVERSE);
	put(y0, 0, "PRESENCE  users online grouped by show", COLS);
	attroff(A_REVERSE);
	y++;
	for (int rank = 0; rank <= 5; rank++) {
		size_t count = 0;

		for (size_t i = 0; i < u->nrows; i++)
			if (show_rank(u->rows[i]->show) == rank)
				count++;
		if (count == 0)
			continue;
		if (line >= u->scroll && y < y0 + height) {
			char h[64];

			snprintf(h, sizeof(h), "%s (%zu)", rank < 5 ?
			    (const char *[]){ "chat", "available", "away",
			    "xa", "dnd" }[rank] : "other", count);
			attron(A_BOLD);
			put(y++, 0, h, COLS);
			attroff(A_BOLD);
		}
		line++;
		for (size_t i = 0; i < u->nrows; i++) {
			char l[1200];

			if (show_rank(u->rows[i]->show) != rank)
				continue;
			if (line++ < u->scroll || y >= y0 + height)
				continue;
			snprintf(l, sizeof(l), "  %-40s %3d  %s",
			    u->rows[i]->jid, u->rows[i]->priority,
			    u->rows[i]->status);
			put(y++, 0, l, COLS);
		}
	}
}

#define DETAIL_CELL_MAX 32      /* widest roster column, in bytes */

/* One line of the roster table: cells padded to width[], two spaces
 * apart; upper-case for the header. */
static void
detail_line(char *l, size_t size, char *const *cells, size_t n,
    const int *width, int upper)
{
	size_t len = 0;

	l[0] = '\0';
	for (size_t c = 0; c < n && len + 1 < size; c++) {
		len += (size_t)snprintf(l + len, size - len, "  %-*.*s",
		    width[c], DETAIL_CELL_MAX, cells[c]);
		if (len >= size)
			len = size - 1;
	}
	for (char *p = l; upper && *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
}

/* The roster as a table with a header (the column names). */
static void
draw_roster(const struct top_source *s, int y, int end)
{
	size_t k = s->ndetail_cols;
	int *width = xcalloc(k + 1, sizeof(int));
	char l[1200];

	for (size_t c = 0; c < k; c++) {
		width[c] = (int)strlen(s->detail_cols[c]);
		for (size_t r = 0; r < s->ndetail_rows; r++) {
			int w = (int)strlen(s->detail_rows[r * k + c]);

			if (w > width[c])
				width[c] = w;
		}
		if (width[c] > DETAIL_CELL_MAX)
			width[c] = DETAIL_CELL_MAX;
	}
	if (k > 0 && y < end) {
		detail_line(l, sizeof(l), s->detail_cols, k, width, 1);
		attron(A_UNDERLINE);
		put(y++, 0, l, COLS);
		attroff(A_UNDERLINE);
	}
	for (size_t r = 0; r < s->ndetail_rows && y < end; r++) {
		detail_line(l, sizeof(l), s->detail_rows + r * k, k, width, 0);
		put(y++, 0, l, COLS);
	}
	if (s->ndetail_rows == 0 && y < end)
		put(y, 0, "  (empty)", COLS);
	free(width);
}

static void
draw_detail(struct ui *u, int y0, int height)
{
	const struct top_source *s = u->src;
	struct top_session *t = NULL;
	double now = source_now();
	char cell[512], l[1200];
	int y = y0;

	for (size_t i = 0; i < u->nrows; i++)
		if (strcmp(u->rows[i]->sid, u->selected) == 0)
			t = u->rows[i];
	fill_line(y0, A_REVERSE);
	attron(A_REVERSE);
	snprintf(l, sizeof(l), "SESSION %s", u->target);
	put(y++, 0, l, COLS);
	attroff(A_REVERSE);
	if (t == NULL) {
		put(y, 0, "(session closed)", COLS);
		return;
	}
	for (int c = 0; c < NVIEW_COLS && y < y0 + height; c++) {
		view_cell(t, (enum view_col)c, now, cell, sizeof(cell));
		snprintf(l, sizeof(l), "  %-10s %s", view_columns[c].title,
		    cell);
		put(y++, 0, l, COLS);
	}
	y++;
	if (y >= y0 + height)
		return;
	attron(A_BOLD);
	put(y++, 0, "Roster", COLS);
	attroff(A_BOLD);
	if (s->detail_state == 1) {
		put(y++, 0, "  loading...", COLS);
	} else if (s->detail_state == -1) {
		snprintf(l, sizeof(l), "  not available: %s%s", s->detail_err,
		    strstr(s->detail_err, "unknown-command") ? " (this "
		    "daemon has no roster request; session details only)" :
		    "");
		put(y++, 0, l, COLS);
	} else {
		draw_roster(s, y, y0 + height);
	}
}

static const char *const help_lines[] = {
	"xmpptop - a live view of xmppd",
	"",
	"  Up/Down PgUp/PgDn Home/End   move the selection / scroll",
	"  Enter      details of the selected session (and its roster)",
	"  /          filter: type text, Enter keeps it, Esc or Ctrl-U",
	"             clears it (Ctrl-U also clears a filter kept)",
	"  n          sort by JID",
	"  i          sort by idle time (most idle first)",
	"  t          sort by traffic (stanzas in + out)",
	"  s          sort by connection time (oldest first)",
	"  r          reverse the sort order",
	"  p, Tab     switch between the sessions and presence views",
	"  m          rooms: group chat rooms by activity (messages per",
	"             minute, occupants), the occupants of the selected",
	"             one (Up/Down), polled every second",
	"  c          components: the external components (XEP-0114)",
	"             connected, with their stanzas in and out, polled",
	"             every second",
	"  f          federation: the server-to-server streams, in and",
	"             out, with their state, authentication, TLS,",
	"             certificate, queued stanzas, stanzas in and out,",
	"             polled every second",
	"  e          show or hide the events pane",
	"  k          kick the selected session (asks y/n)",
	"  d          disable the selected session's account: close all",
	"             its sessions and refuse its logins (asks y/n)",
	"  ?, F1      this help;  Esc goes back",
	"  q, F10     quit",
	"",
	"Meters: uptime, sessions, users online, logins per minute,",
	"stanzas and bytes per second in and out, offline queue, the",
	"daemon's RSS, storage queue depth and last commit latency.",
};

/* A link screen (components, s2s): one line per row of list l. */
static void
draw_list(struct ui *u, enum top_list_kind l, int y0, int height)
{
	struct top_source *s = u->src;
	const struct top_list *t = &s->lists[l];
	size_t ncols;
	const struct view_list_col *cols = view_list_cols(l, &ncols);
	char line[1400], cell[256];
	int y = y0;

	source_watch_list(s, l, 1.0);
	fill_line(y, A_REVERSE);
	attron(A_REVERSE);
	snprintf(line, sizeof(line), "%s  %zu %s%s",
	    l == TOP_LIST_S2S ? "SERVER-TO-SERVER" : "COMPONENTS", t->nrows,
	    l == TOP_LIST_S2S ? "streams" : "connected",
	    t->state == -1 ? "  (unavailable)" : "");
	put(y++, 0, line, COLS);
	attroff(A_REVERSE);
	if (t->state == -1)
		put(y++, 0, t->err, COLS);
	for (size_t i = 0; i <= t->nrows && y < y0 + height; i++) {
		size_t len = 0;

		for (size_t k = 0; k < ncols && len < sizeof(line); k++) {
			if (i > 0)
				view_list_cell(l, t, i - 1, k, cell,
				    sizeof(cell));
			len += (size_t)snprintf(line + len, sizeof(line) - len,
			    "%s%*s", k > 0 ? " " : "", cols[k].width,
			    i == 0 ? cols[k].title : cell);
		}
		if (i == 0)
			attron(A_BOLD);
		put(y++, 0, line, COLS);
		if (i == 0)
			attroff(A_BOLD);
	}
}

/* The rooms screen: the rooms by activity (the selected one
 * highlighted), then the occupants of the selected room. */
static void
draw_rooms(struct ui *u, int y0, int height)
{
	struct top_source *s = u->src;
	size_t n, i;
	const struct top_room **rooms = view_rooms(s, &n);
	int y = y0, list = height / 2;
	char l[1400], flags[8];

	if (u->room[0] != '\0')
		for (i = 0; i < n; i++)
			if (strcmp(rooms[i]->jid, u->room) == 0)
				u->room_cursor = i;
	if (u->room_cursor >= n)
		u->room_cursor = n > 0 ? n - 1 : 0;
	if (n > 0)
		snprintf(u->room, sizeof(u->room), "%s",
		    rooms[u->room_cursor]->jid);
	source_watch_rooms(s, 1.0, n > 0 ? u->room : NULL);
	view_rooms_header(s, l, sizeof(l));
	fill_line(y, A_REVERSE);
	attron(A_REVERSE);
	snprintf(l + strlen(l), sizeof(l) - strlen(l), "%s",
	    s->rooms_state == -1 ? "  (rooms: unavailable)" : "");
	put(y++, 0, "ROOMS", COLS);
	attroff(A_REVERSE);
	put(y++, 0, l, COLS);
	if (s->rooms_state == -1)
		put(y++, 0, s->rooms_err, COLS);
	attron(A_BOLD);
	put(y++, 0, "ROOM                                      OCC  SESS "
	    "MSG/MIN FLAGS NAME", COLS);
	attroff(A_BOLD);
	for (i = u->room_cursor >= (size_t)list ? u->room_cursor - (size_t)
	    list + 1 : 0; i < n && y < y0 + list + 3; i++) {
		view_room_flags(rooms[i], flags, sizeof(flags));
		snprintf(l, sizeof(l), "%-40s %5ld %5ld %7ld %-5s %s",
		    rooms[i]->jid, rooms[i]->occupants, rooms[i]->sessions,
		    rooms[i]->per_min, flags, rooms[i]->name);
		if (i == u->room_cursor)
			attron(A_REVERSE);
		put(y++, 0, l, COLS);
		if (i == u->room_cursor)
			attroff(A_REVERSE);
	}
	free(rooms);
	if (n == 0 || y >= y0 + height)
		return;
	y++;
	attron(A_BOLD);
	snprintf(l, sizeof(l), "OCCUPANTS of %s", u->room);
	put(y++, 0, l, COLS);
	attroff(A_BOLD);
	for (i = 0; i < s->noccupants && y < y0 + height; i++) {
		const struct top_occupant *o = &s->occupants[i];

		snprintf(l, sizeof(l), "  %-20s %-12s %-8s %s (%ld)", o->nick,
		    o->role, o->affiliation, o->jid, o->sessions);
		put(y++, 0, l, COLS);
	}
}

static void
draw_help(struct ui *u, int y0, int height)
{
	for (int i = 0; i < height && (size_t)i + u->scroll <
	    nitems(help_lines); i++)
		put(y0 + i, 0, help_lines[(size_t)i + u->scroll], COLS);
}

static void
draw_events(struct ui *u, int y0, int height)
{
	const struct top_source *s = u->src;
	size_t first = s->nevents > (size_t)(height - 1) ?
	    s->nevents - (size_t)(height - 1) : 0;

	fill_line(y0, A_REVERSE);
	attron(A_REVERSE);
	put(y0, 0, "EVENTS", COLS);
	attroff(A_REVERSE);
	for (size_t i = first; i < s->nevents; i++)
		put(y0 + 1 + (int)(i - first), 0, source_event(s, i), COLS);
}

static void
draw_bar(struct ui *u)
{
	static const char *const keys[][2] = {
		{ "?", "Help" }, { "/", "Filter" }, { "n", "JID" },
		{ "i", "Idle" }, { "t", "Traf" }, { "s", "Since" },
		{ "r", "Rev" }, { "p", "Pres" }, { "m", "Rooms" },
		{ "Ent", "Detail" },
		{ "k", "Kick" }, { "d", "Disable" }, { "q", "Quit" },
	};
	int x = 0;

	move(LINES - 1, 0);
	clrtoeol();
	for (size_t i = 0; i < nitems(keys) && x < COLS; i++) {
		attron(A_BOLD);
		mvaddnstr(LINES - 1, x, keys[i][0], COLS - x);
		attroff(A_BOLD);
		x += (int)strlen(keys[i][0]);
		if (x >= COLS)
			break;
		attron(A_REVERSE);
		mvaddnstr(LINES - 1, x, keys[i][1], COLS - x);
		attroff(A_REVERSE);
		x += (int)strlen(keys[i][1]) + 1;
	}
}

static void
draw(struct ui *u)
{
	int events = u->show_events ? (LINES >= 24 ? 8 : LINES / 4) : 0;
	int y0 = 4, height;

	refresh_rows(u);
	erase();
	draw_meters(u);
	draw_message(u, 3);
	height = LINES - y0 - 1 - events;
	if (height < 1) {
		height = LINES - y0 - 1;
		events = 0;
	}
	/* The link lists are polled only while their screen shows (or
	 * the help over it). */
	for (int l = 0; l < NTOP_LISTS; l++) {
		enum ui_screen on = l == TOP_LIST_S2S ? SCR_S2S :
		    SCR_COMPONENTS;

		if (u->screen != on && !(u->screen == SCR_HELP &&
		    u->back == on))
			source_watch_list(u->src, (enum top_list_kind)l, 0);
	}
	switch (u->screen) {
	case SCR_SESSIONS:
		draw_sessions(u, y0, height);
		break;
	case SCR_PRESENCE:
		draw_presence(u, y0, height);
		break;
	case SCR_DETAIL:
		draw_detail(u, y0, height);
		break;
	case SCR_ROOMS:
		draw_rooms(u, y0, height);
		break;
	case SCR_COMPONENTS:
		draw_list(u, TOP_LIST_COMPONENTS, y0, height);
		break;
	case SCR_S2S:
		draw_list(u, TOP_LIST_S2S, y0, height);
		break;
	case SCR_HELP:
		draw_help(u, y0, height + events);
		events = 0;
		break;
	}
	if (events > 1)
		draw_events(u, LINES - 1 - events, events);
	draw_bar(u);
	refresh();
}

/* --- keys --- */

static void
move_cursor(struct ui *u, long delta)
{
	if (u->screen == SCR_ROOMS) {
		if (delta < 0 && (size_t)-delta > u->room_cursor)
			u->room_cursor = 0;
		else if (delta == LONG_MAX / 2)
			u->room_cursor = u->src->nrooms ? u->src->nrooms - 1 :
			    0;
		else
			u->room_cursor += (size_t)delta;
		if (u->room_cursor >= u->src->nrooms)
			u->room_cursor = u->src->nrooms ? u->src->nrooms - 1 :
			    0;
		u->room[0] = '\0';     /* the row under the cursor now */
		return;
	}
	if (u->screen != SCR_SESSIONS) {
		if (delta < 0 && (size_t)-delta > u->scroll)
			u->scroll = 0;
		else
			u->scroll += (size_t)delta;
		return;
	}
	/* LONG_MIN / 2 and LONG_MAX / 2: to the first and the last row. */
	if (delta == LONG_MAX / 2)
		u->cursor = u->nrows > 0 ? u->nrows - 1 : 0;
	else if (delta < 0 && (delta == LONG_MIN / 2 ||
	    (size_t)-delta > u->cursor))
		u->cursor = 0;
	else
		u->cursor += (size_t)delta;
	if (u->cursor >= u->nrows)
		u->cursor = u->nrows > 0 ? u->nrows - 1 : 0;
	if (u->nrows > 0)
		snprintf(u->selected, sizeof(u->selected), "%s",
		    u->rows[u->cursor]->sid);
}

static void
set_sort(struct ui *u, enum view_sort sort)
{
	u->sort = sort;
	u->reverse = 0;
}

/* Returns 1 to quit. */
static int
key_filter(struct ui *u, int ch)
{
	size_t len = strlen(u->filter);

	if (ch == '\n' || ch == KEY_ENTER || ch == '\r') {
		u->editing = 0;
	} else if (ch == 27) {
		u->editing = 0;
		u->filter[0] = '\0';
	} else if (ch == CTRL_U) {
		u->filter[0] = '\0';   /* and go on typing */
	} else if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
		if (len > 0)
			u->filter[len - 1] = '\0';
	} else if (ch >= 32 && ch < 256 && len + 1 < sizeof(u->filter)) {
		u->filter[len] = (char)ch;
		u->filter[len + 1] = '\0';
	}
	u->cursor = 0;
	u->selected[0] = '\0';
	return 0;
}

static int
key(struct ui *u, int ch)
{
	struct top_source *s = u->src;

	if (u->editing)
		return key_filter(u, ch);
	if (u->confirm != CONFIRM_NONE) {
		enum ui_confirm what = u->confirm;

		u->confirm = CONFIRM_NONE;
		if ((ch == 'y' || ch == 'Y') && what == CONFIRM_KICK)
			source_kick(s, u->target, "kicked by the administrator");
		else if (ch == 'y' || ch == 'Y')
			source_disable(s, u->target, "disabled in xmpptop");
		else
			snprintf(s->status, sizeof(s->status), "%s cancelled",
			    what == CONFIRM_KICK ? "kick" : "disable");
		return 0;
	}
	switch (ch) {
	case 'q':
	case KEY_F(10):
		return 1;
	case '?':
	case 'h':
	case KEY_F(1):
		u->back = u->screen == SCR_HELP ? u->back : u->screen;
		u->screen = SCR_HELP;
		u->scroll = 0;
		break;
	case 27:
	case KEY_BACKSPACE:
	case KEY_LEFT:
		if (u->screen == SCR_HELP || u->screen == SCR_DETAIL)
			u->screen = u->screen == SCR_HELP ? u->back :
			    SCR_SESSIONS;
		else if (u->filter[0] != '\0')
			u->filter[0] = '\0';
		break;
	case CTRL_U:
		u->filter[0] = '\0';
		break;
	case '/':
		u->screen = SCR_SESSIONS;
		u->editing = 1;
		break;
	case 'n':
		set_sort(u, SORT_JID);
		break;
	case 'i':
		set_sort(u, SORT_IDLE);
		break;
	case 't':
		set_sort(u, SORT_TRAFFIC);
		break;
	case 's':
		set_sort(u, SORT_SINCE);
		break;
	case 'r':
		u->reverse = !u->reverse;
		break;
	case 'p':
	case '\t':
		u->screen = u->screen == SCR_PRESENCE ? SCR_SESSIONS :
		    SCR_PRESENCE;
		u->scroll = 0;
		break;
	case 'm':
		/* Rooms: polled every second while shown. */
		u->screen = u->screen == SCR_ROOMS ? SCR_SESSIONS : SCR_ROOMS;
		if (u->screen != SCR_ROOMS)
			source_watch_rooms(s, 0, NULL);
		break;
	case 'c':
		/* Components: polled every second while shown. */
		u->screen = u->screen == SCR_COMPONENTS ? SCR_SESSIONS :
		    SCR_COMPONENTS;
		source_watch_rooms(s, 0, NULL);
		break;
	case 'f':
		/* Server-to-server streams: the same. */
		u->screen = u->screen == SCR_S2S ? SCR_SESSIONS : SCR_S2S;
		source_watch_rooms(s, 0, NULL);
		break;
	case 'e':
		u->show_events = !u->show_events;
		break;
	case KEY_UP:
		move_cursor(u, -1);
		break;
	case KEY_DOWN:
		move_cursor(u, 1);
		break;
	case KEY_PPAGE:
		move_cursor(u, -(LINES - 6));
		break;
	case KEY_NPAGE:
		move_cursor(u, LINES - 6);
		break;
	case KEY_HOME:
		move_cursor(u, LONG_MIN / 2);
		break;
	case KEY_END:
		move_cursor(u, LONG_MAX / 2);
		break;
	case '\n':
	case '\r':
	case KEY_ENTER:
		if (u->screen == SCR_SESSIONS && u->nrows > 0) {
			struct top_session *t = u->rows[u->cursor];
			char bare[1024];

			snprintf(u->target, sizeof(u->target), "%s", t->jid);
			snprintf(bare, sizeof(bare), "%s", t->jid);
			bare[strcspn(bare, "/")] = '\0';
			source_roster(s, bare);
			u->screen = SCR_DETAIL;
		} else if (u->screen == SCR_DETAIL) {
			u->screen = SCR_SESSIONS;
		}
		break;
	case 'k':
	case 'd':
		if ((u->screen == SCR_SESSIONS || u->screen == SCR_DETAIL) &&
		    u->nrows > 0) {
			/* kick one session; disable its account (bare) */
			snprintf(u->target, sizeof(u->target), "%s",
			    u->rows[u->cursor]->jid);
			if (ch == 'd')
				u->target[strcspn(u->target, "/")] = '\0';
			u->confirm = ch == 'k' ? CONFIRM_KICK :
			    CONFIRM_DISABLE;
		}
		break;
	default:                /* KEY_RESIZE too: the next draw adapts */
		break;
	}
	return 0;
}

int
ui_run(struct top_source *s, enum view_sort sort, double delay)
{
	struct ui u = { .src = s, .screen = SCR_SESSIONS, .sort = sort,
		.show_events = 1 };
	struct sigaction sa;
	double next_draw = 0;
	unsigned seen = (unsigned)-1;

	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "xmpptop: not a terminal; use -b for batch "
		    "mode\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	atexit(restore_terminal);
	initscr();
	curses_on = 1;
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	set_escdelay(25);
	curs_set(0);
	while (!quit_signal) {
		struct pollfd pfd[2] = {
			{ .fd = STDIN_FILENO, .events = POLLIN },
			{ .fd = source_fd(s), .events = POLLIN },
		};
		double now = source_now(), t;
		int ch, quit = 0, redraw = 0;

		source_tick(s, now);
		while ((ch = getch()) != ERR) {
			if (ch == '\r')
				ch = '\n';
			if ((quit = key(&u, ch)) != 0)
				break;
			redraw = 1;
		}
		if (quit)
			break;
		if (redraw || now >= next_draw || s->changes != seen) {
			draw(&u);
			seen = s->changes;
			next_draw = now + delay;
		}
		t = source_timeout(s, now);
		if (t > next_draw - now)
			t = next_draw - now;
		if (t < 0)
			t = 0;
		pfd[1].fd = source_fd(s);
		if (poll(pfd, pfd[1].fd == -1 ? 1 : 2, (int)(t * 1000) + 1) >
		    0 && pfd[1].fd != -1 && (pfd[1].revents & (POLLIN |
		    POLLHUP | POLLERR)))
			source_read(s);
	}
	restore_terminal();
	free(u.rows);
	return 0;
}
