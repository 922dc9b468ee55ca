/*
 * The monotonic clock, for deadlines, idle times, windows and rates: a
 * step of the wall clock (settimeofday, an NTP step, a resumed virtual
 * machine) must neither fire nor postpone them.  libev's timers are
 * monotonic, but ev_now() is wall-clock time: a deadline stored as
 * ev_now() + seconds moves with every step.
 */
#ifndef SHARED_MONO_H
#define SHARED_MONO_H

struct ev_loop;

/*
 * Seconds on CLOCK_MONOTONIC (from an arbitrary origin), read once per
 * iteration of loop as ev_now() is, so that everything one iteration
 * decides sees one time.  With loop NULL the clock is read now (to time
 * an operation).  For the thread that runs loop only.
 */
double mono_now(struct ev_loop *loop);

#endif
