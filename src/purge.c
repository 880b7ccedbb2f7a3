/*
 * purge.c - the purge delay: wholly free pages go back to the kernel
 * MEMS_PURGE_DELAY milliseconds after they became free, from a background
 * thread, as jemalloc's and mimalloc's decay do.
 *
 * A program that frees and soon allocates again then reuses resident
 * pages instead of taking a userfaultfd round trip (and a populate) on
 * each, and one that frees everything and goes quiet gets its memory back
 * all the same.  Pages are free at once: no longer live, so fault-around
 * never reaches them and the stats count them as touched, which they are.
 *
 * The purger scans the pager's bitmaps once per delay (pager_purge_scan):
 * a page found free but resident by two scans in a row is given back, so
 * a page goes back between one and two delays after it became free; a page
 * allocated in between starts afresh.  The scan costs a word per 64 pages
 * of the committed span.  With nothing left to purge the thread sleeps
 * until the next free.  It starts with the first free that has a delay,
 * so a program that never frees has no such thread.
 *
 * A fork child has no such thread; its first free with a delay starts
 * one, as in the parent.  When a thread cannot be started (a pids limit,
 * say) the frees scan instead, at most once per delay: a page then goes
 * back at the first free one to two delays after it became free, and a
 * program that stops freeing keeps what it freed last resident.
 *
 * Locking: the scan runs under mems_lock, taken with trylock: mems_finish
 * holds mems_lock while it stops the thread, and the thread then sees the
 * stop flag instead.  purge_mx guards the thread's sleep and flags.
 */
#include "purge.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "diag.h"
#include "internal.h"
#include "span.h"

static struct {
	pthread_mutex_t mx;
	pthread_cond_t cv;
	pthread_t thread;
	int started, stop;
	_Atomic int idle;          /* nothing to purge: sleeping until woken */
	uint64_t delay_ns;
	/* no thread could be started: frees scan (under mems_lock) */
	int inline_scans;
	uint64_t last_scan_ns;
} pu = { .mx = PTHREAD_MUTEX_INITIALIZER };

static void deadline(struct timespec *ts, uint64_t ns)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ns += (uint64_t)ts->tv_nsec;
	ts->tv_sec += (time_t)(ns / 1000000000u);
	ts->tv_nsec = (long)(ns % 1000000000u);
}

static void *purger(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&pu.mx);
	while (!pu.stop) {
		if (atomic_load(&pu.idle)) {
			pthread_cond_wait(&pu.cv, &pu.mx);
		} else {
			struct timespec ts;
			deadline(&ts, pu.delay_ns);
			pthread_cond_timedwait(&pu.cv, &pu.mx, &ts);
		}
		if (pu.stop)
			break;
		pthread_mutex_unlock(&pu.mx);
		if (mems_lock_try()) {
			/* idle is set under mems_lock, which every free holds
			 * when it asks for a purge: none is missed */
			if (!mems_g.ready || !pager_purge_scan(&mems_g.pg))
				atomic_store(&pu.idle, 1);
			mems_lock_drop();
		}
		pthread_mutex_lock(&pu.mx);
	}
	pthread_mutex_unlock(&pu.mx);
	return NULL;
}

void purge_freed_locked(void)
{
	if (pu.inline_scans) {
		uint64_t now = os_now_ns();
		if (now - pu.last_scan_ns >= (uint64_t)mems_g.purge_delay_ns) {
			pu.last_scan_ns = now;
			pager_purge_scan(&mems_g.pg);
		}
		return;
	}
	if (!atomic_load_explicit(&pu.idle, memory_order_relaxed) && pu.started)
		return;
	pthread_mutex_lock(&pu.mx);
	if (!pu.started) {
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&pu.cv, &ca);
		pthread_condattr_destroy(&ca);
		pu.stop = 0;
		pu.delay_ns = (uint64_t)mems_g.purge_delay_ns;
		atomic_store(&pu.idle, 0);
		int err = os_thread_start(&pu.thread, purger, NULL, NULL, -1);
		if (err) {
			static int said;
			if (!said++)
				mems_diag("cannot start the purge thread: %s; frees give pages "
					  "back instead", mems_strerror(err));
			pthread_cond_destroy(&pu.cv);
			pthread_mutex_unlock(&pu.mx);
			pu.inline_scans = 1;
			pu.last_scan_ns = os_now_ns();
			pager_purge_scan(&mems_g.pg);
			return;
		}
		pu.started = 1;
	} else {
		atomic_store(&pu.idle, 0);
		pthread_cond_signal(&pu.cv);
	}
	pthread_mutex_unlock(&pu.mx);
}

void purge_stop_locked(void)
{
	/* a later init tries a thread again */
	pu.inline_scans = 0;
	pthread_mutex_lock(&pu.mx);
	if (!pu.started) {
		pthread_mutex_unlock(&pu.mx);
		return;
	}
	pu.stop = 1;
	pthread_cond_signal(&pu.cv);
	pthread_mutex_unlock(&pu.mx);
	pthread_join(pu.thread, NULL);
	pthread_cond_destroy(&pu.cv);
	pu.started = 0;
	atomic_store(&pu.idle, 0);
}

void purge_fork_child(void)
{
	/* the thread does not exist in the child: its first free with a
	 * delay starts one (or, failing that, scans) */
	pthread_mutex_init(&pu.mx, NULL);
	pu.started = 0;
	pu.inline_scans = 0;
	atomic_store(&pu.idle, 0);
}

uint64_t purge_now(void)
{
	uint64_t gone = 0;
	mems_lock_take();
	if (mems_g.ready)
		gone = pager_purge_now(&mems_g.pg);
	mems_lock_drop();
	return gone;
}
