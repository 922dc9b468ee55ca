/*
 * Idle streams give their expat parser back (about 9 KiB each): most
 * streams of an XMPP server are idle most of the time.  The parsers (and
 * the TLS handshakes before them) were allocated between the streams'
 * long-lived objects, so what they freed is scattered holes in the heap
 * that malloc keeps.  After a batch of releases malloc_trim() hands the
 * whole free pages among them back to the kernel: after 1024 (at most
 * once per PARSER_TRIM_INTERVAL), or after fewer once a sweep releases
 * nothing more (a login storm is over).  It walks the free chunks, a
 * stall of milliseconds per 10,000 sessions, so never for a trickle.
 */
#include <malloc.h>

#include <ev.h>

#include "log.h"
#include "mono.h"
#include "stream/parser_idle.h"

#define PARSER_TRIM_BATCH 1024  /* parsers released before malloc_trim() */
#define PARSER_TRIM_MIN 64      /* ... or this many once releases stop */
#define PARSER_TRIM_INTERVAL 5.0 /* s, at least, between two trims */

void
parser_idle_swept(struct ev_loop *loop, unsigned n)
{
	static unsigned released;
	static ev_tstamp last_trim;
	ev_tstamp now = mono_now(loop), t0;

	released += n;
	/* During a storm at most every PARSER_TRIM_INTERVAL; once it is
	 * over (this sweep released nothing), at the next sweep. */
	if ((released < PARSER_TRIM_BATCH ||
		now - last_trim < PARSER_TRIM_INTERVAL) &&
	    (released < PARSER_TRIM_MIN || n != 0))
		return;
	t0 = mono_now(NULL);
	malloc_trim(0);
	log_debug("%u idle parsers released, heap trimmed in %.1f ms",
	    released, (mono_now(NULL) - t0) * 1e3);
	released = 0;
	last_trim = now;
}
