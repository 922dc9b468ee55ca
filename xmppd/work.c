/*
 * Worker pool for CPU-bound jobs (PBKDF2 and the like): a FIFO of jobs
 * served by a few pthreads, finished jobs handed back to the loop thread
 * on a completion list that an ev_async drains, in completion order.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "log.h"
#include "xmalloc.h"
#include "work.h"

struct work_item {
	struct work_item *next;
	work_fn fn;
	work_done_fn done;
	void *job;
	uint64_t owner;
	uint64_t tag;
};

struct work_list {
	struct work_item *head;
	struct work_item **tailp;
};

static struct {
	int running; /* between work_init and work_shutdown */
	struct ev_loop *loop;
	ev_async async;
	pthread_t *threads;
	int nthreads;

	/* Job FIFO; lock also guards busy and stopping. */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* jobs queued, or stopping */
	pthread_cond_t idle; /* queue empty and no job running */
	struct work_list queue;
	size_t depth;
	size_t unfinished;      /* submitted, completion not run yet (loop
	                           thread only) */
	int busy; /* jobs being run by workers */
	int stopping;

	/* Finished jobs waiting for the loop thread. */
	pthread_mutex_t done_lock;
	struct work_list done;
} work = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
    .idle = PTHREAD_COND_INITIALIZER,
    .done_lock = PTHREAD_MUTEX_INITIALIZER,
};

static void
list_init(struct work_list *l)
{
	l->head = NULL;
	l->tailp = &l->head;
}

static void
list_append(struct work_list *l, struct work_item *it)
{
	it->next = NULL;
	*l->tailp = it;
	l->tailp = &it->next;
}

static struct work_item *
list_take_first(struct work_list *l)
{
	struct work_item *it = l->head;

	if (it != NULL) {
		l->head = it->next;
		if (l->head == NULL)
			l->tailp = &l->head;
	}
	return it;
}

void
work_helper_thread_init(void)
{
	struct sched_param sp = {0};
	int error = pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);

	if (error != 0)
		log_debug("helper thread: SCHED_BATCH: %s", strerror(error));
}

static void *
work_thread(void *arg)
{
	struct work_item *it;

	(void)arg;
	work_helper_thread_init();
	pthread_mutex_lock(&work.lock);
	for (;;) {
		while (work.queue.head == NULL && !work.stopping)
			pthread_cond_wait(&work.cond, &work.lock);
		if ((it = list_take_first(&work.queue)) == NULL)
			break; /* stopping and nothing left */
		work.depth--;
		work.busy++;
		pthread_mutex_unlock(&work.lock);

		it->fn(it->job);

		pthread_mutex_lock(&work.done_lock);
		list_append(&work.done, it);
		pthread_mutex_unlock(&work.done_lock);
		ev_async_send(work.loop, &work.async);

		pthread_mutex_lock(&work.lock);
		if (--work.busy == 0 && work.queue.head == NULL)
			pthread_cond_broadcast(&work.idle);
	}
	pthread_mutex_unlock(&work.lock);
	return NULL;
}

/* Loop thread: run the done callbacks of every finished job, in order.
 * Returns how many ran. */
static size_t
run_completions(void)
{
	struct work_list l;
	struct work_item *it;
	size_t n = 0;

	pthread_mutex_lock(&work.done_lock);
	l = work.done;
	list_init(&work.done);
	pthread_mutex_unlock(&work.done_lock);

	while ((it = list_take_first(&l)) != NULL) {
		it->done(it->job, it->owner, it->tag);
		free(it);
		work.unfinished--;
		n++;
	}
	return n;
}

static void
work_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	run_completions();
}

void
work_init(struct ev_loop *loop, int nthreads)
{
	sigset_t all, old;
	int error;

	if (work.running)
		fatalx("work_init called twice");
	if (nthreads < 1)
		nthreads = 1;
	work.loop = loop;
	work.nthreads = nthreads;
	work.stopping = 0;
	work.depth = 0;
	work.busy = 0;
	list_init(&work.queue);
	list_init(&work.done);

	ev_async_init(&work.async, work_async_cb);
	ev_async_start(loop, &work.async);
	ev_unref(loop); /* pending jobs alone do not keep the loop */

	/* Workers block every signal so that the loop thread gets them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	work.threads = xcalloc((size_t)nthreads, sizeof(*work.threads));
	for (int i = 0; i < nthreads; i++) {
		error =
		    pthread_create(&work.threads[i], NULL, work_thread, NULL);
		if (error != 0) {
			errno = error;
			fatal("work: pthread_create");
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	work.running = 1;
}

void
work_submit(
    work_fn fn, work_done_fn done, void *job, uint64_t owner, uint64_t tag)
{
	struct work_item *it;

	if (!work.running) {
		/* A programming error: nobody will ever run or free job. */
		log_warnx("work: job submitted while the pool is not running; "
		          "dropped");
		return;
	}
	it = xcalloc(1, sizeof(*it));
	it->fn = fn;
	it->done = done;
	it->job = job;
	it->owner = owner;
	it->tag = tag;

	work.unfinished++;
	pthread_mutex_lock(&work.lock);
	list_append(&work.queue, it);
	work.depth++;
	pthread_cond_signal(&work.cond);
	pthread_mutex_unlock(&work.lock);
}

/*
 * Runs on the loop thread.  A done callback may submit further jobs, so
 * wait for the pool to go idle and run completions until a round finds
 * none to run; only then stop the workers.
 */
void
work_shutdown(void)
{
	if (!work.running)
		return;
	do {
		pthread_mutex_lock(&work.lock);
		while (work.queue.head != NULL || work.busy > 0)
			pthread_cond_wait(&work.idle, &work.lock);
		pthread_mutex_unlock(&work.lock);
		/* Idle, and every finished job is on the done list: if no
		 * callback ran, none can have submitted anything. */
	} while (run_completions() > 0);

	pthread_mutex_lock(&work.lock);
	work.stopping = 1;
	pthread_cond_broadcast(&work.cond);
	pthread_mutex_unlock(&work.lock);
	for (int i = 0; i < work.nthreads; i++)
		pthread_join(work.threads[i], NULL);
	free(work.threads);
	work.threads = NULL;
	work.running = 0;

	ev_ref(work.loop);
	ev_async_stop(work.loop, &work.async);
	work.loop = NULL;
}

size_t
work_unfinished(void)
{
	return work.unfinished;
}

size_t
work_queue_depth(void)
{
	size_t n;

	pthread_mutex_lock(&work.lock);
	n = work.depth;
	pthread_mutex_unlock(&work.lock);
	return n;
}
