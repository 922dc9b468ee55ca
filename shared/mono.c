/*
 * The monotonic clock for deadlines and rates (mono.h), cached per event
 * loop iteration.
 */
#include <time.h>

#include <ev.h>

#include "mono.h"

static double
mono_read(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double
mono_now(struct ev_loop *loop)
{
	static struct ev_loop *cached_loop;
	static unsigned cached_iteration;
	static double cached;
	unsigned iteration;

	if (loop == NULL)
		return mono_read();
	/* ev_iteration() counts polls: a new value means the loop has
	 * woken since the clock was last read. */
	iteration = ev_iteration(loop);
	if (loop != cached_loop || iteration != cached_iteration) {
		cached = mono_read();
		cached_loop = loop;
		cached_iteration = iteration;
	}
	return cached;
}
