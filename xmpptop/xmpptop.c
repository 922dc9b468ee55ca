/*
 * xmpptop: a live view of a running xmppd — sessions, presence, counters
 * and events — fed by the control socket's event subscription.  This
 * file holds main(), options and batch mode; the data source is
 * source.c, the rows view.c, the curses interface ui.c.
 */
#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "xmalloc.h"

#include "source.h"
#include "ui.h"
#include "view.h"

#define DEFAULT_SOCKET "/run/xmppd/xmppd.sock"
#define DEV_SOCKET "var/xmppd.sock"
#define EXIT_UNREACHABLE 3
#define EXIT_USAGE 2
#define EXIT_DENIED 6           /* as xmppctl(8): may not connect */
/* How long batch mode waits for the first counters event. */
#define COUNTERS_WAIT 2.0
#define ANSWER_WAIT 10.0

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: xmpptop [-b] [-r | -c | -f] [-n COUNT] [-d SECONDS] [-o SORT] "
	    "[-s SOCKET]\n"
	    "  -b          batch mode: print the rows as text and exit\n"
	    "  -r          batch mode: print the rooms by activity and the\n"
	    "              occupants of the most active one instead\n"
	    "  -c          batch mode: print the connected components\n"
	    "              (XEP-0114) instead\n"
	    "  -f          batch mode: print the server-to-server streams\n"
	    "              instead\n"
	    "  -n COUNT    batch mode: print COUNT times (default 1)\n"
	    "  -d SECONDS  delay between updates (default 2 in batch mode,\n"
	    "              1 interactive)\n"
	    "  -o SORT     sort by jid, idle, traffic or since "
	    "(default jid)\n"
	    "  -s SOCKET   the control socket; default: $XMPPD_SOCKET,\n"
	    "              ./%s if it exists, else %s\n"
	    "  -h          show this help\n"
	    "  -V          show the version\n", DEV_SOCKET, DEFAULT_SOCKET);
}

static const char *
find_socket(const char *option)
{
	const char *env = getenv("XMPPD_SOCKET");
	struct stat st;

	if (option != NULL)
		return option;
	if (env != NULL && env[0] != '\0')
		return env;
	if (lstat(DEV_SOCKET, &st) == 0)
		return DEV_SOCKET;
	return DEFAULT_SOCKET;
}

/* Wait up to seconds for the source, applying what arrives; returns early
 * when done(s) is true. */
static void
pump(struct top_source *s, double seconds, int (*done)(struct top_source *))
{
	double end = source_now() + seconds;

	for (;;) {
		double now = source_now(), t;
		struct pollfd pfd = { .fd = source_fd(s), .events = POLLIN };

		source_tick(s, now);
		if (done != NULL && done(s))
			return;
		if (now >= end)
			return;
		t = source_timeout(s, now);
		if (t > end - now)
			t = end - now;
		pfd.fd = source_fd(s);
		if (poll(&pfd, pfd.fd == -1 ? 0 : 1, (int)(t * 1000) + 1) > 0)
			source_read(s);
	}
}

static int
listed(struct top_source *s)
{
	return s->state == TOP_DISCONNECTED ||
	    (s->listed && !source_listing(s) && s->subscribed != 0);
}

static int
have_counters(struct top_source *s)
{
	return s->state == TOP_DISCONNECTED || s->counters.from_events ||
	    (s->subscribed == -1 && s->counters.valid);
}

static void
print_rows(struct top_source *s, enum view_sort sort)
{
	size_t n, width[NVIEW_COLS];
	struct top_session **rows = view_rows(s, sort, 0, NULL, &n);
	double now = source_now();
	char cell[512], header[1024];

	view_header(s, header, sizeof(header));
	printf("xmpptop: %s\n", header);
	for (int c = 0; c < NVIEW_COLS; c++)
		width[c] = strlen(view_columns[c].title);
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < NVIEW_COLS; c++) {
			view_cell(rows[i], (enum view_col)c, now, cell,
			    sizeof(cell));
			if (strlen(cell) > width[c])
				width[c] = strlen(cell);
		}
	for (size_t i = 0; i <= n; i++) {
		struct buf_line {
			char text[8192];
			size_t len;
		} line = { .len = 0 };

		for (int c = 0; c < NVIEW_COLS; c++) {
			const char *text = cell;
			int w = (int)width[c];
			size_t room = sizeof(line.text) - line.len;

			if (i == 0)
				text = view_columns[c].title;
			else
				view_cell(rows[i - 1], (enum view_col)c, now,
				    cell, sizeof(cell));
			if (c == NVIEW_COLS - 1)
				w = 0;
			line.len += (size_t)snprintf(line.text + line.len, room,
			    view_columns[c].right ? "%s%*s" : "%s%-*s",
			    c > 0 ? "  " : "", w, text);
			if (line.len >= sizeof(line.text))
				line.len = sizeof(line.text) - 1;
		}
		while (line.len > 0 && line.text[line.len - 1] == ' ')
			line.len--;
		printf("%.*s\n", (int)line.len, line.text);
	}
	free(rows);
	fflush(stdout);
}

static int
rooms_listed(struct top_source *s)
{
	return s->state == TOP_DISCONNECTED || (s->rooms_state != 0 &&
	    !source_rooms_pending(s) && (s->room_selected == NULL ||
	    s->occupants_state != 0));
}

/* Print cells[0..ncols) of nrows rows (row 0 the titles) in columns two
 * spaces apart, right-aligned where right[c]; the last column is not
 * padded. */
static void
print_table(char ***cells, size_t nrows, size_t ncols, const int *right)
{
	size_t width[16] = { 0 };

	for (size_t i = 0; i < nrows; i++)
		for (size_t c = 0; c < ncols; c++)
			if (strlen(cells[i][c]) > width[c])
				width[c] = strlen(cells[i][c]);
	for (size_t i = 0; i < nrows; i++) {
		char line[8192];
		size_t len = 0;

		for (size_t c = 0; c < ncols && len < sizeof(line); c++)
			len += (size_t)snprintf(line + len, sizeof(line) - len,
			    right[c] ? "%s%*s" : "%s%-*s", c ? "  " : "",
			    c == ncols - 1 && !right[c] ? 0 : (int)width[c],
			    cells[i][c]);
		if (len >= sizeof(line))
			len = sizeof(line) - 1;
		while (len > 0 && line[len - 1] == ' ')
			len--;
		printf("%.*s\n", (int)len, line);
	}
}

static void
free_table(char ***cells, size_t nrows, size_t ncols)
{
	for (size_t i = 0; i < nrows; i++) {
		for (size_t c = 0; c < ncols; c++)
			free(cells[i][c]);
		free(cells[i]);
	}
	free(cells);
}

/* The rooms panel as text: the meter, the rooms by activity, then the
 * occupants of the selected (most active) room. */
static void
print_rooms(struct top_source *s)
{
	static const int room_right[] = { 0, 1, 1, 1, 0, 0 };
	static const int occ_right[] = { 0, 0, 0, 0, 1 };
	size_t n;
	const struct top_room **rooms = view_rooms(s, &n);
	char ***cells, header[512];

	view_rooms_header(s, header, sizeof(header));
	printf("xmpptop: %s\n", header);
	if (s->rooms_state == -1) {
		printf("rooms: %s\n", s->rooms_err);
		free(rooms);
		return;
	}
	cells = xcalloc(n + 1, sizeof(*cells));
	cells[0] = xcalloc(6, sizeof(char *));
	cells[0][0] = xstrdup("ROOM");
	cells[0][1] = xstrdup("OCC");
	cells[0][2] = xstrdup("SESS");
	cells[0][3] = xstrdup("MSG/MIN");
	cells[0][4] = xstrdup("FLAGS");
	cells[0][5] = xstrdup("NAME");
	for (size_t i = 0; i < n; i++) {
		char flags[8];

		view_room_flags(rooms[i], flags, sizeof(flags));
		cells[i + 1] = xcalloc(6, sizeof(char *));
		cells[i + 1][0] = xstrdup(rooms[i]->jid);
		cells[i + 1][1] = xasprintf("%ld", rooms[i]->occupants);
		cells[i + 1][2] = xasprintf("%ld", rooms[i]->sessions);
		cells[i + 1][3] = xasprintf("%ld", rooms[i]->per_min);
		cells[i + 1][4] = xstrdup(flags);
		cells[i + 1][5] = xstrdup(rooms[i]->name);
	}
	print_table(cells, n + 1, 6, room_right);
	free_table(cells, n + 1, 6);
	free(rooms);
	if (s->room_selected == NULL || s->occupants_state != 1)
		return;
	printf("\noccupants of %s:\n", s->room_selected);
	n = s->noccupants;
	cells = xcalloc(n + 1, sizeof(*cells));
	cells[0] = xcalloc(5, sizeof(char *));
	cells[0][0] = xstrdup("NICK");
	cells[0][1] = xstrdup("ROLE");
	cells[0][2] = xstrdup("AFFILIATION");
	cells[0][3] = xstrdup("JID");
	cells[0][4] = xstrdup("SESS");
	for (size_t i = 0; i < n; i++) {
		const struct top_occupant *o = &s->occupants[i];

		cells[i + 1] = xcalloc(5, sizeof(char *));
		cells[i + 1][0] = xstrdup(o->nick);
		cells[i + 1][1] = xstrdup(o->role);
		cells[i + 1][2] = xstrdup(o->affiliation);
		cells[i + 1][3] = xstrdup(o->jid);
		cells[i + 1][4] = xasprintf("%ld", o->sessions);
	}
	print_table(cells, n + 1, 5, occ_right);
	free_table(cells, n + 1, 5);
}

static enum top_list_kind batch_list;

static int
list_listed(struct top_source *s)
{
	return s->state == TOP_DISCONNECTED || (s->lists[batch_list].state !=
	    0 && !source_list_pending(s, batch_list));
}

/* A link panel (-c, -f) as text: "xmpptop: NAME N", then the rows. */
static void
print_list(struct top_source *s, enum top_list_kind l)
{
	const struct top_list *t = &s->lists[l];
	size_t ncols, n = t->nrows;
	const struct view_list_col *cols = view_list_cols(l, &ncols);
	char ***cells, c[256];
	int right[TOP_LIST_MAXCOLS];

	printf("xmpptop: %s %zu\n", view_list_title(l), n);
	if (t->state == -1) {
		printf("%s: %s\n", view_list_title(l), t->err);
		return;
	}
	cells = xcalloc(n + 1, sizeof(*cells));
	cells[0] = xcalloc(ncols, sizeof(char *));
	for (size_t k = 0; k < ncols; k++) {
		cells[0][k] = xstrdup(cols[k].title);
		right[k] = cols[k].width > 0;
	}
	for (size_t i = 0; i < n; i++) {
		cells[i + 1] = xcalloc(ncols, sizeof(char *));
		for (size_t k = 0; k < ncols; k++) {
			view_list_cell(l, t, i, k, c, sizeof(c));
			cells[i + 1][k] = xstrdup(c);
		}
	}
	print_table(cells, n + 1, ncols, right);
	free_table(cells, n + 1, ncols);
}

/* Batch mode of -c and -f: list l polled each round. */
static int
batch_links(struct top_source *s, enum top_list_kind l, long count, double delay)
{
	batch_list = l;
	for (long i = 0; count <= 0 || i < count; i++) {
		double next = source_now() + delay;

		if (i > 0)
			putchar('\n');
		source_watch_list(s, l, delay);
		pump(s, ANSWER_WAIT, list_listed);
		if (i == 0 && s->state == TOP_DISCONNECTED) {
			fprintf(stderr, "xmpptop: %s\n", s->status);
			return s->connect_errno == EACCES ||
			    s->connect_errno == EPERM ? EXIT_DENIED :
			    EXIT_UNREACHABLE;
		}
		if (s->state == TOP_DISCONNECTED)
			printf("xmpptop: %s\n", s->status);
		else
			print_list(s, l);
		fflush(stdout);
		if (count > 0 && i + 1 >= count)
			break;
		pump(s, next - source_now(), NULL);
	}
	return 0;
}

/* Batch mode of -r: rooms polled each round; the most active room's
 * occupants are asked for once the listing says which it is. */
static int
batch_rooms(struct top_source *s, long count, double delay)
{
	for (long i = 0; count <= 0 || i < count; i++) {
		double next = source_now() + delay;
		size_t n;
		const struct top_room **rooms;

		if (i > 0)
			putchar('\n');
		source_watch_rooms(s, delay, s->room_selected);
		pump(s, ANSWER_WAIT, rooms_listed);
		if (i == 0 && s->state == TOP_DISCONNECTED) {
			fprintf(stderr, "xmpptop: %s\n", s->status);
			return s->connect_errno == EACCES ||
			    s->connect_errno == EPERM ? EXIT_DENIED :
			    EXIT_UNREACHABLE;
		}
		rooms = view_rooms(s, &n);
		if (n > 0 && (s->room_selected == NULL ||
		    strcmp(s->room_selected, rooms[0]->jid) != 0)) {
			/* Ask again with the most active room selected. */
			source_watch_rooms(s, delay, rooms[0]->jid);
			pump(s, ANSWER_WAIT, rooms_listed);
		}
		free(rooms);
		if (s->state == TOP_DISCONNECTED)
			printf("xmpptop: %s\n", s->status);
		else
			print_rooms(s);
		fflush(stdout);
		if (count > 0 && i + 1 >= count)
			break;
		pump(s, next - source_now(), NULL);
	}
	return 0;
}

static int
batch(struct top_source *s, long count, double delay, enum view_sort sort)
{
	for (long i = 0; count <= 0 || i < count; i++) {
		double next = source_now() + delay;

		if (i > 0) {
			source_refresh(s);
			putchar('\n');
		}
		pump(s, ANSWER_WAIT, listed);
		if (i == 0 && s->state == TOP_DISCONNECTED) {
			fprintf(stderr, "xmpptop: %s\n", s->status);
			return s->connect_errno == EACCES ||
			    s->connect_errno == EPERM ? EXIT_DENIED :
			    EXIT_UNREACHABLE;
		}
		pump(s, COUNTERS_WAIT, have_counters);
		if (s->state == TOP_DISCONNECTED)
			printf("xmpptop: %s\n", s->status);
		else
			print_rows(s, sort);
		if (count > 0 && i + 1 >= count)
			break;
		pump(s, next - source_now(), NULL);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	const char *sock = NULL;
	int opt, batch_mode = 0, rooms_mode = 0, links = 0, r;
	enum top_list_kind list = TOP_LIST_COMPONENTS;
	long count = 1;
	double delay = -1;
	enum view_sort sort = SORT_JID;
	struct top_source s;
	char *end;

	setlocale(LC_ALL, "");
	while ((opt = getopt(argc, argv, "brcfn:d:o:s:hV")) != -1) {
		switch (opt) {
		case 'b':
			batch_mode = 1;
			break;
		case 'r':
			rooms_mode = 1;
			break;
		case 'c':
		case 'f':
			links++;
			list = opt == 'f' ? TOP_LIST_S2S : TOP_LIST_COMPONENTS;
			break;
		case 'n':
			count = strtol(optarg, &end, 10);
			if (*end != '\0' || count < 0) {
				fprintf(stderr, "xmpptop: bad count %s\n",
				    optarg);
				return EXIT_USAGE;
			}
			break;
		case 'd':
			delay = strtod(optarg, &end);
			if (*end != '\0' || !(delay >= 0.1 && delay <= 3600)) {
				fprintf(stderr, "xmpptop: bad delay %s "
				    "(0.1 to 3600 seconds)\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'o':
			if ((sort = view_sort_parse(optarg)) == NSORTS) {
				fprintf(stderr, "xmpptop: bad sort key %s "
				    "(jid, idle, traffic, since)\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 's':
			sock = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("xmpptop %s\n", XMPPD_VERSION);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	source_init(&s, find_socket(sock));
	if (rooms_mode && !batch_mode) {
		fprintf(stderr, "xmpptop: -r is for batch mode (-b); the "
		    "rooms panel is the m key\n");
		source_free(&s);
		return EXIT_USAGE;
	}
	if ((links && !batch_mode) || links > 1 || (links && rooms_mode)) {
		fprintf(stderr, "xmpptop: -c and -f are for batch mode (-b), "
		    "one at a time, without -r; their panels are the c and "
		    "f keys\n");
		source_free(&s);
		return EXIT_USAGE;
	}
	if (batch_mode && links) {
		r = batch_links(&s, list, count, delay < 0 ? 2.0 : delay);
	} else if (batch_mode && rooms_mode) {
		r = batch_rooms(&s, count, delay < 0 ? 2.0 : delay);
	} else if (batch_mode) {
		r = batch(&s, count, delay < 0 ? 2.0 : delay, sort);
	} else {
		s.refresh_every = 10;
		r = ui_run(&s, sort, delay < 0 ? 1.0 : delay);
	}
	source_free(&s);
	return r;
}
