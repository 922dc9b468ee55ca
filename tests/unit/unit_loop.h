/*
 * Running an ev loop in a unit test until what it waits for has
 * happened: storage completions, worker jobs.  A 30-second guard ends a
 * wait that would otherwise hang the test run.  Include after <ev.h>.
 */
#ifndef TESTS_UNIT_LOOP_H
#define TESTS_UNIT_LOOP_H

static int unit_loop_timed_out; /* a guard fired: the test failed */

static void
unit_loop_guard(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	unit_loop_timed_out = 1;
	ev_break(l, EVBREAK_ONE);
}

/* Run loop until done() is true: 1, or 0 if 30 s passed first. */
static int
unit_run_until(struct ev_loop *loop, int (*done)(void))
{
	ev_timer guard;

	ev_timer_init(&guard, unit_loop_guard, 30., 0.);
	ev_timer_start(loop, &guard);
	while (!done() && !unit_loop_timed_out)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &guard);
	return !unit_loop_timed_out;
}

#endif
