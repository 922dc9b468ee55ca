/*
 * Rows of the sessions panel and of batch mode: filtering, sorting (only
 * when drawing, O(n log n) over the model's sessions) and the text of
 * each cell and of the header meters.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xmalloc.h"

#include "view.h"

const struct view_column view_columns[NVIEW_COLS] = {
	[VC_SID] = { "SID", 6, 1 },
	[VC_JID] = { "JID", 32, 0 },
	[VC_IP] = { "IP", 15, 0 },
	[VC_TLS] = { "TLS", 7, 0 },
	[VC_CIPHER] = { "CIPHER", 22, 0 },
	[VC_CLIENT] = { "CLIENT", 14, 0 },
	[VC_SHOW] = { "SHOW", 11, 0 },
	[VC_PRIORITY] = { "PRI", 4, 1 },
	[VC_SINCE] = { "SINCE", 8, 0 },
	[VC_IDLE] = { "IDLE", 7, 1 },
	[VC_IN] = { "IN", 7, 1 },
	[VC_OUT] = { "OUT", 7, 1 },
	[VC_SM] = { "SM", 10, 0 },
	[VC_CSI] = { "CSI", 5, 0 },
	[VC_AUTH] = { "AUTH", 12, 0 },
	[VC_STATUS] = { "STATUS", 0, 0 },
};

const char *const view_sort_names[NSORTS] = {
	[SORT_JID] = "jid", [SORT_IDLE] = "idle",
	[SORT_TRAFFIC] = "traffic", [SORT_SINCE] = "since",
};

enum view_sort
view_sort_parse(const char *name)
{
	for (int i = 0; i < NSORTS; i++)
		if (strcmp(name, view_sort_names[i]) == 0)
			return (enum view_sort)i;
	return NSORTS;
}

/* qsort has no context argument: the sort in progress. */
static double sort_now;

static int
cmp_jid(const struct top_session *a, const struct top_session *b)
{
	int r = strcmp(a->jid, b->jid);

	return r != 0 ? r : strcmp(a->sid, b->sid);
}

static int
cmp3(double a, double b)
{
	return a < b ? -1 : a > b;
}

static int
cmp_idle(const void *pa, const void *pb)
{
	const struct top_session *a = *(struct top_session *const *)pa;
	const struct top_session *b = *(struct top_session *const *)pb;
	/* Most idle first. */
	int r = cmp3(source_idle(b, sort_now), source_idle(a, sort_now));

	return r != 0 ? r : cmp_jid(a, b);
}

static int
cmp_traffic(const void *pa, const void *pb)
{
	const struct top_session *a = *(struct top_session *const *)pa;
	const struct top_session *b = *(struct top_session *const *)pb;
	/* Busiest first. */
	int r = cmp3((double)(b->stanzas_in + b->stanzas_out),
	    (double)(a->stanzas_in + a->stanzas_out));

	return r != 0 ? r : cmp_jid(a, b);
}

static int
cmp_since(const void *pa, const void *pb)
{
	const struct top_session *a = *(struct top_session *const *)pa;
	const struct top_session *b = *(struct top_session *const *)pb;
	/* Oldest first; epoch seconds or ISO 8601 text both compare as
	 * numbers first, then as text. */
	double da = strtod(a->since, NULL), db = strtod(b->since, NULL);
	int r = cmp3(da, db);

	if (r == 0)
		r = strcmp(a->since, b->since);
	return r != 0 ? r : cmp_jid(a, b);
}

static int
cmp_jid_q(const void *pa, const void *pb)
{
	return cmp_jid(*(struct top_session *const *)pa,
	    *(struct top_session *const *)pb);
}

static int
matches(const struct top_session *t, const char *filter)
{
	return strcasestr(t->jid, filter) != NULL ||
	    strcasestr(t->ip, filter) != NULL ||
	    strcasestr(t->client, filter) != NULL ||
	    strcasestr(t->show, filter) != NULL ||
	    strcasestr(t->status, filter) != NULL;
}

struct top_session **
view_rows(const struct top_source *s, enum view_sort sort, int reverse,
    const char *filter, size_t *n)
{
	static int (*const cmps[NSORTS])(const void *, const void *) = {
		cmp_jid_q, cmp_idle, cmp_traffic, cmp_since,
	};
	struct top_session **v = source_sessions(s, n);

	if (filter != NULL && filter[0] != '\0') {
		size_t k = 0;

		for (size_t i = 0; i < *n; i++)
			if (matches(v[i], filter))
				v[k++] = v[i];
		*n = k;
	}
	sort_now = source_now();
	qsort(v, *n, sizeof(*v), cmps[sort < NSORTS ? sort : SORT_JID]);
	if (reverse)
		for (size_t i = 0; i < *n / 2; i++) {
			struct top_session *t = v[i];

			v[i] = v[*n - 1 - i];
			v[*n - 1 - i] = t;
		}
	return v;
}

void
view_duration(double seconds, char *buf, size_t size)
{
	unsigned long s = seconds < 0 ? 0 : (unsigned long)seconds;

	if (s < 60)
		snprintf(buf, size, "%lus", s);
	else if (s < 3600)
		snprintf(buf, size, "%lu:%02lu", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, size, "%lu:%02lu:%02lu", s / 3600,
		    s / 60 % 60, s % 60);
	else
		snprintf(buf, size, "%lud%02luh", s / 86400, s / 3600 % 24);
}

/* "since" as the daemon sent it (unix seconds with 3 decimals, shared/
 * ctl.h): UTC HH:MM:SS (or a date when not today); other text is shown
 * as is. */
static void
format_since(const char *since, char *buf, size_t size)
{
	char *end;
	long long v;
	time_t t, now = time(NULL);
	struct tm tm, today;

	errno = 0;
	v = strtoll(since, &end, 10);
	if (*end == '.')        /* the fraction: digits only */
		for (end++; *end >= '0' && *end <= '9'; end++)
			;
	if (since[0] == '\0' || *end != '\0' || errno != 0 ||
	    v < 100000000) {
		snprintf(buf, size, "%s", since[0] ? since : "-");
		return;
	}
	t = (time_t)v;
	gmtime_r(&t, &tm);
	gmtime_r(&now, &today);
	if (tm.tm_year == today.tm_year && tm.tm_yday == today.tm_yday)
		strftime(buf, size, "%H:%M:%S", &tm);
	else
		strftime(buf, size, "%b%d", &tm);
}

static const char *
or_dash(const char *s)
{
	return s[0] != '\0' ? s : "-";
}

/* XEP-0198: "-" when off, "on", "resume" (resumable), "WAIT" (waiting
 * for its client to come back), with "+N" stanzas unacknowledged. */
static void
format_sm(const struct top_session *t, char *buf, size_t size)
{
	const char *st = t->sm != NULL ? t->sm : "";
	const char *word = strcmp(st, "resumable") == 0 ? "resume" :
	    strcmp(st, "waiting") == 0 ? "WAIT" :
	    strcmp(st, "on") == 0 ? "on" : "-";

	if (word[0] != '-' && t->sm_unacked > 0)
		snprintf(buf, size, "%s+%lu", word, t->sm_unacked);
	else
		snprintf(buf, size, "%s", word);
}

void
view_cell(const struct top_session *t, enum view_col col, double now,
    char *buf, size_t size)
{
	switch (col) {
	case VC_SID:
		snprintf(buf, size, "%s", t->sid);
		break;
	case VC_JID:
		snprintf(buf, size, "%s", or_dash(t->jid));
		break;
	case VC_IP:
		snprintf(buf, size, "%s", or_dash(t->ip));
		break;
	case VC_TLS:
		snprintf(buf, size, "%s", or_dash(t->tls));
		break;
	case VC_CIPHER:
		snprintf(buf, size, "%s", or_dash(t->cipher));
		break;
	case VC_CLIENT:
		snprintf(buf, size, "%s", or_dash(t->client));
		break;
	case VC_SHOW:
		snprintf(buf, size, "%s", or_dash(t->show));
		break;
	case VC_PRIORITY:
		snprintf(buf, size, "%d", t->priority);
		break;
	case VC_SINCE:
		format_since(t->since, buf, size);
		break;
	case VC_IDLE:
		view_duration(source_idle(t, now), buf, size);
		break;
	case VC_IN:
		snprintf(buf, size, "%llu", t->stanzas_in);
		break;
	case VC_OUT:
		snprintf(buf, size, "%llu", t->stanzas_out);
		break;
	case VC_SM:
		format_sm(t, buf, size);
		break;
	case VC_CSI:
		/* Only the unusual state stands out. */
		snprintf(buf, size, "%s", t->csi != NULL &&
		    strcmp(t->csi, "inactive") == 0 ? "inact" : "-");
		break;
	case VC_AUTH:
		snprintf(buf, size, "%s", or_dash(t->auth));
		break;
	case VC_STATUS:
	default:
		snprintf(buf, size, "%s", t->status);
		break;
	}
}

/* A byte rate: "512B", "12.3K", "4.5M". */
static void
format_rate(double v, char *buf, size_t size)
{
	if (v < 1024)
		snprintf(buf, size, "%.0fB", v);
	else if (v < 1024 * 1024)
		snprintf(buf, size, "%.1fK", v / 1024);
	else
		snprintf(buf, size, "%.1fM", v / (1024 * 1024));
}

void
view_header(const struct top_source *s, char *buf, size_t size)
{
	const struct top_counters *k = &s->counters;
	char up[32], bin[16], bout[16];

	if (!k->valid) {
		snprintf(buf, size, "%s", s->state == TOP_DISCONNECTED ?
		    s->status : "waiting for counters");
		return;
	}
	view_duration(k->uptime, up, sizeof(up));
	if (!k->from_events) {
		snprintf(buf, size, "up %s, sessions %ld, users %ld, "
		    "store queue %ld, commit %.1fms (no events from this "
		    "daemon)", up, k->sessions, k->users, k->store_queue,
		    k->commit_ms);
		return;
	}
	format_rate(k->bytes_in_per_s, bin, sizeof(bin));
	format_rate(k->bytes_out_per_s, bout, sizeof(bout));
	snprintf(buf, size, "up %s, sessions %ld, users %ld, logins/min %.0f, "
	    "stanzas/s in %.1f out %.1f, bytes/s in %s out %s, offline %ld, "
	    "rss %.1fM, store queue %ld, commit %.1fms", up, k->sessions,
	    k->users, k->logins_per_min, k->in_per_s, k->out_per_s, bin, bout,
	    k->offline_queue, k->rss_kb / 1024.0, k->store_queue,
	    k->commit_ms);
}

/* Rooms. */

static int
room_activity_cmp(const void *a, const void *b)
{
	const struct top_room *x = *(const struct top_room *const *)a;
	const struct top_room *y = *(const struct top_room *const *)b;

	if (x->per_min != y->per_min)
		return x->per_min > y->per_min ? -1 : 1;
	if (x->occupants != y->occupants)
		return x->occupants > y->occupants ? -1 : 1;
	return strcmp(x->jid, y->jid);
}

const struct top_room **
view_rooms(const struct top_source *s, size_t *n)
{
	const struct top_room **v = xcalloc(s->nrooms + 1, sizeof(*v));

	for (size_t i = 0; i < s->nrooms; i++)
		v[i] = &s->rooms[i];
	qsort(v, s->nrooms, sizeof(*v), room_activity_cmp);
	*n = s->nrooms;
	return v;
}

void
view_rooms_header(const struct top_source *s, char *buf, size_t size)
{
	long occupants = 0;
	double max = 0;
	size_t len, first;

	for (size_t i = 0; i < s->nrooms; i++)
		occupants += s->rooms[i].occupants;
	len = (size_t)snprintf(buf, size, "rooms %zu, occupants %ld, "
	    "messages/min %.0f", s->nrooms, occupants, s->nrate ?
	    s->rate[s->nrate - 1] : 0.0);
	if (s->nrate < 2 || len >= size)
		return;
	/* The last 30 samples scaled to 0-9, oldest first. */
	first = s->nrate > 30 ? s->nrate - 30 : 0;
	for (size_t i = first; i < s->nrate; i++)
		if (s->rate[i] > max)
			max = s->rate[i];
	len += (size_t)snprintf(buf + len, size - len, "  trend ");
	for (size_t i = first; i < s->nrate && len + 1 < size; i++)
		buf[len++] = max > 0 ? (char)('0' + (int)(9 * s->rate[i] /
		    max + 0.5)) : '0';
	buf[len < size ? len : size - 1] = '\0';
}

void
view_room_flags(const struct top_room *r, char *buf, size_t size)
{
	snprintf(buf, size, "%c%c%c", r->persistent ? 'P' : '-',
	    r->publicroom ? 'p' : '-', r->membersonly ? 'm' : '-');
}

/* In the order of source_list_columns (source.c). */
static const struct view_list_col components_cols[] = {
	{ "DOMAIN", -32, 0 }, { "ADDRESS", -22, 0 }, { "SINCE", -8, 1 },
	{ "IN", 10, 0 }, { "OUT", 10, 0 },
};
static const struct view_list_col s2s_cols[] = {
	{ "LOCAL", -20, 0 }, { "REMOTE", -24, 0 }, { "DIR", -3, 0 },
	{ "STATE", -10, 0 }, { "AUTH", -9, 0 }, { "TLS", -7, 0 },
	{ "CERT", -9, 0 }, { "QUEUED", 6, 0 }, { "SINCE", -8, 1 },
	{ "IN", 8, 0 }, { "OUT", 8, 0 },
};

const char *
view_list_title(enum top_list_kind l)
{
	return source_list_command(l);
}

const struct view_list_col *
view_list_cols(enum top_list_kind l, size_t *n)
{
	if (l == TOP_LIST_S2S) {
		*n = sizeof(s2s_cols) / sizeof(s2s_cols[0]);
		return s2s_cols;
	}
	*n = sizeof(components_cols) / sizeof(components_cols[0]);
	return components_cols;
}

void
view_list_cell(enum top_list_kind l, const struct top_list *t, size_t row,
    size_t col, char *buf, size_t size)
{
	size_t n;
	const struct view_list_col *c = view_list_cols(l, &n);
	const char *v = col < t->ncols && row < t->nrows ?
	    t->cells[row * t->ncols + col] : "";

	if (col < n && c[col].since)
		format_since(v, buf, size);
	else
		snprintf(buf, size, "%s", v);
}
