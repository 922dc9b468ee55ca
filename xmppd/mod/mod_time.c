/*
 * Entity Time (XEP-0202) of the server: the UTC time with milliseconds
 * and the offset of the server's local time zone.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/disco.h"
#include "core/iq.h"
#include "core/session.h"
#include "core/stanza.h"
#include "xml.h"

#define NS_TIME "urn:xmpp:time"

void mod_time_init(void);

/* XEP-0082 §3.2 DateTime in UTC with milliseconds; XEP-0202 §3 'tzo' as
 * "+hh:mm" / "-hh:mm" (XEP-0082 TZD, "Z" is not used there). */
static void
format_time(char *utc, size_t ulen, char *tzo, size_t tlen)
{
	struct timespec ts;
	struct tm gm, local;
	long off;
	int ms, hh, mm;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (int)(ts.tv_nsec / 1000000) % 1000;
	gmtime_r(&ts.tv_sec, &gm);
	localtime_r(&ts.tv_sec, &local);
	snprintf(utc, ulen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    gm.tm_year + 1900, gm.tm_mon + 1, gm.tm_mday, gm.tm_hour,
	    gm.tm_min, gm.tm_sec, ms);
	off = local.tm_gmtoff < 0 ? -local.tm_gmtoff : local.tm_gmtoff;
	hh = (int)(off / 3600 % 100);
	mm = (int)(off % 3600 / 60);
	snprintf(tzo, tlen, "%c%02d:%02d", local.tm_gmtoff < 0 ? '-' : '+',
	    hh, mm);
}

static enum hook_result
handle_time(struct session *from, struct xel *iq, enum iq_target target)
{
	const char *type = xel_attr(iq, "type");
	char utc[96], tzo[16];
	struct xel *r, *t;

	if (target != IQ_TO_SERVER || type == NULL || strcmp(type, "get") != 0)
		return HOOK_PASS;
	format_time(utc, sizeof(utc), tzo, sizeof(tzo));
	r = stanza_iq_result(iq);
	t = xel_add(r, "time", NS_TIME);
	xel_text_set(xel_add(t, "tzo", NULL), tzo);
	xel_text_set(xel_add(t, "utc", NULL), utc);
	session_send(from, r);
	arena_free(r->arena);
	return HOOK_HANDLED;
}

void
mod_time_init(void)
{
	iq_register(NS_TIME, "time", handle_time);
	disco_add_feature(DISCO_SERVER, NS_TIME);
}
