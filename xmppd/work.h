/*
 * A small pool of worker threads for CPU-bound jobs that must not run on
 * the event loop (PBKDF2 for SCRAM key derivation at account creation,
 * password change and SASL PLAIN).  Results come back to the loop thread
 * through a completion queue and ev_async.
 */
#ifndef XMPPD_WORK_H
#define XMPPD_WORK_H

#include <stdint.h>

#include <ev.h>

/* Runs on a worker thread; must only touch its own job data. */
typedef void (*work_fn)(void *job);
/* Runs on the loop thread afterwards; owns (and frees) job. */
typedef void (*work_done_fn)(void *job, uint64_t owner, uint64_t tag);

/* Start nthreads workers (at least 1). */
void work_init(struct ev_loop *loop, int nthreads);
/* Queue a job.  done is never called before work_submit returns. */
void work_submit(work_fn fn, work_done_fn done, void *job, uint64_t owner,
    uint64_t tag);
/* Wait for all queued jobs, run their completions, stop the threads. */
void work_shutdown(void);
size_t work_queue_depth(void);
/* Loop thread: jobs submitted whose completion has not run yet (tests
 * wait for them). */
size_t work_unfinished(void);
/* Called first by a helper thread (workers, storage): SCHED_BATCH, so
 * that handing it a job does not preempt the loop thread in the middle
 * of an iteration when both share a core; the job runs when the loop
 * waits for events, or at once on another core. */
void work_helper_thread_init(void);

#endif
