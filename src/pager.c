/*
 * pager.c - the userfaultfd pager.
 *
 * The span is registered with userfaultfd in MISSING mode.  A handler
 * thread reads faults in batches and resolves each with one ioctl over a
 * fault-around window: the faulting page and the still-missing committed
 * pages after it that belong to live segments (never wholly free pages:
 * those would stay resident until a later free happened to merge with
 * their hole, and across a node boundary never).
 *
 * The window adapts as readahead does: a fault on the page just after the
 * previous window of a stream doubles that stream's window, up to `window`
 * pages (MEMS_FAULT_AROUND); any other fault starts a new stream with a
 * window of one page, so sparse access costs no extra resident memory.
 * A fault just below a stream's first page continues it downwards.
 * Four streams are followed at once, so a few threads filling their own
 * buffers each keep their window.  Write faults are resolved with
 * UFFDIO_COPY from a buffer of zeros (the page is then writable at once),
 * read faults with UFFDIO_ZEROPAGE (the shared zero page; a later write is
 * the kernel's own copy-on-write fault).  A write stream at the full window
 * has the window after it populated by a second thread, the fault-ahead
 * helper, at the same time (below).  With MEMS_TRACE each resolved
 * fault and each release is recorded (trace.c; recording never waits).
 *
 * A bitmap of resident pages, under pg->lock, is what makes "touched"
 * exact: the handler sets bits for what it populates, pager_release()
 * clears them as it gives pages back with MADV_DONTNEED, and both hold the
 * lock across the system call so neither can slip between the other's
 * ioctl and bitmap update.  The count always equals mincore(2).
 *
 * Between batches the handler keeps reading for a short while
 * (MEMS_HANDLER_SPIN microseconds) before it sleeps: on a VM a sleep and
 * wake-up across CPUs costs several times the fault itself, and a thread
 * that has just been woken usually faults again within microseconds.
 *
 * Rules for the handler thread: it never takes the allocator lock, never
 * calls malloc, never touches span memory except through ioctls, never
 * calls madvise (so UFFD_FEATURE_EVENT_REMOVE stays off).  EEXIST means
 * the page is there already; EAGAIN means retry the rest.
 *
 * Lock order: allocator lock, then pg->lock, then ahead_mu, then the trace
 * ring's spinlock.  The handler takes only the last three, the helper only
 * the last two, and nothing under pg->lock can fault on the span.
 *
 * Modes, tried in this order by "auto":
 *   uffd       userfaultfd(2), else /dev/userfaultfd: all faults, kernel
 *              mode included (system calls writing into fresh memory),
 *              come to the handler.
 *   uffd-user  UFFD_USER_MODE_ONLY, what an ordinary user gets when
 *              vm.unprivileged_userfaultfd is 0.  Faults taken in kernel
 *              mode fail with EFAULT instead of reaching us, so every page
 *              of a block is populated (by the allocating thread itself,
 *              through UFFDIO_COPY) before the block is handed out.
 *   kernel     no userfaultfd: the kernel's demand paging; touched pages
 *              are counted with mincore(2).  The kernel populates pages
 *              unseen, so here the resident bitmap holds the pages that
 *              were freed and not yet given back (they may be resident):
 *              what the purge delay gives back later.
 * A child after fork() runs in kernel mode: without EVENT_FORK the child's
 * mappings are not registered, and it has no handler thread.
 */
#include "pager.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bits.h"
#include "diag.h"
#include "evict.h"
#include "fail.h"
#include "span.h"
#define MEMS_LIBRARY 1
#include "trace.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif

#define WINDOW_MAX 512u
/* The smallest window worth handing to the helper: fewer pages take less
 * time to copy than the helper takes to wake up. */
#define AHEAD_MIN 64u

const char *pager_mode_name(enum mems_pager_mode m)
{
	switch (m) {
	case MEMS_PAGER_UFFD: return "uffd";
	case MEMS_PAGER_UFFD_USER: return "uffd-user";
	case MEMS_PAGER_KERNEL: return "kernel";
	default: return "none";
	}
}

/* ---------------------------------------------------------------------
 * Resident bitmap (pg->lock held)
 * ------------------------------------------------------------------- */

/* Written under pg->lock; read without it by pager_page_fresh(), so the
 * words are accessed atomically (relaxed: the lock orders the rest). */
static int bit_get(const struct mems_pager *pg, uint64_t i)
{
	return (__atomic_load_n(&pg->resident[i / 64], __ATOMIC_RELAXED) >> (i % 64)) & 1;
}

static void bit_clear(struct mems_pager *pg, uint64_t i)
{
	__atomic_fetch_and(&pg->resident[i / 64], ~(1ull << (i % 64)), __ATOMIC_RELAXED);
}

/* The bits of word *lo / 64 that pages [*lo, hi) cover; *lo moves to the
 * next word's first page (or hi).  For walking a page range a word at a
 * time. */
static uint64_t word_mask(uint64_t *lo, uint64_t hi)
{
	uint64_t b = *lo % 64, n = hi - *lo < 64 - b ? hi - *lo : 64 - b;
	*lo += n;
	return (n == 64 ? ~0ull : ((1ull << n) - 1)) << b;
}

/* Set the resident bits of pages [i, i+n) (in kernel mode: free now and
 * perhaps resident). */
static void bits_set(struct mems_pager *pg, uint64_t i, uint64_t n)
{
	for (uint64_t hi = i + n; i < hi;) {
		uint64_t w = i / 64, mask = word_mask(&i, hi);
		__atomic_fetch_or(&pg->resident[w], mask, __ATOMIC_RELAXED);
	}
}

/* Set (or clear) the live bits of pages [lo, hi). */
static void live_set(struct mems_pager *pg, uint64_t lo, uint64_t hi, int on)
{
	while (lo < hi) {
		uint64_t w = lo / 64, mask = word_mask(&lo, hi);
		if (on)
			atomic_fetch_or_explicit(&pg->live[w], mask, memory_order_release);
		else
			atomic_fetch_and_explicit(&pg->live[w], ~mask, memory_order_release);
	}
}

/* ---------------------------------------------------------------------
 * Populating
 * ------------------------------------------------------------------- */

/* Wake the threads waiting on pages [pi, pi+n). */
static void wake_pages(struct mems_pager *pg, uint64_t pi, uint64_t n)
{
	struct uffdio_range r = { .start = (uint64_t)(uintptr_t)pg->base + pi * pg->ps,
				  .len = n * pg->ps };
	ioctl(pg->uffd, UFFDIO_WAKE, &r);
}

void pager_wake(struct mems_pager *pg, uint64_t pi)
{
	wake_pages(pg, pi, 1);
}

/* Populate pages [pi, pi+n), all missing by the bitmap: copied from src
 * (write protected if wp), or the zero page if src is NULL.  Returns 0,
 * or the errno of an ioctl that failed for another reason than
 * EEXIST/EAGAIN.  *woke says whether an ioctl populated page pi itself,
 * which wakes the threads waiting on it. */
static int copy_run(struct mems_pager *pg, uint64_t pi, uint64_t n, const void *src, int wp,
		    int *woke, uint64_t *made, enum fail_point fp)
{
	uint64_t done = 0;

	*woke = 0;
	*made = 0;
	while (done < n) {
		uint64_t dst = (uint64_t)(uintptr_t)pg->base + (pi + done) * pg->ps;
		uint64_t len = (n - done) * pg->ps;
		int64_t got;
		int err = 0;

		if (src) {
			struct uffdio_copy c = { .dst = dst, .len = len,
				.src = (uint64_t)(uintptr_t)src + done * pg->ps,
				.mode = wp ? UFFDIO_COPY_MODE_WP : 0 };
			if ((err = fail_now(fp)) != 0)
				c.copy = -err;
			else if (ioctl(pg->uffd, UFFDIO_COPY, &c) != 0)
				err = errno;
			got = c.copy;
		} else {
			struct uffdio_zeropage z = { .range = { .start = dst, .len = len } };
			if ((err = fail_now(FP_UFFD_COPY)) != 0)
				z.zeropage = -err;
			else if (ioctl(pg->uffd, UFFDIO_ZEROPAGE, &z) != 0)
				err = errno;
			got = z.zeropage;
		}
		if (got > 0) {
			uint64_t k = (uint64_t)got / pg->ps;
			if (done == 0 && k)
				*woke = 1;
			bits_set(pg, pi + done, k);
			pg->touched += k;
			*made += k;
			done += k;
		}
		if (err == 0 || err == EAGAIN)
			continue;
		if (err == EEXIST) {
			/* present although the bitmap said missing: count it */
			if (!bit_get(pg, pi + done)) {
				bits_set(pg, pi + done, 1);
				pg->touched++;
				++*made;
			}
			done++;
			continue;
		}
		return err;
	}
	return 0;
}

static int populate_run(struct mems_pager *pg, uint64_t pi, uint64_t n, int write, int *woke)
{
	uint64_t made;
	int err = copy_run(pg, pi, n, write ? pg->zeros : NULL, 0, woke, &made, FP_UFFD_COPY);
	pg->populated += made;
	return err;
}

int pager_copy_in(struct mems_pager *pg, uint64_t pi, uint64_t n, const void *src, int wp,
		  int *woke)
{
	uint64_t made;
	return copy_run(pg, pi, n, src, wp, woke, &made, FP_UFFD_COPY);
}

/* ---------------------------------------------------------------------
 * The fault-ahead helper
 *
 * One thread populating a sequential stream is bounded by UFFDIO_COPY's
 * own cost; two populate it at about 1.5 times the rate (the mmap lock is
 * taken for reading).  When a stream's window is at its maximum the
 * handler hands the window after it to the helper and populates its own
 * at the same time: the stream's next fault is then two windows on.
 *
 * Pages [ahead_lo, ahead_hi) are in flight (ahead_hi 0: none) from the
 * moment the handler posts them (under pg->lock and ahead_mu) until the
 * helper has populated them, set their bits and counted them (it clears
 * ahead_hi under ahead_mu).  The handler leaves pages in flight alone (a
 * fault on one is woken by the helper's ioctl), and every other path that
 * takes pg->lock waits them out (pager_lock), so the bitmap is exact
 * whenever anyone but the handler looks at it.  The helper follows the
 * handler's rules and takes no lock but ahead_mu.
 * ------------------------------------------------------------------- */

/* The helper's lock and conditions, nothing in flight and no helper (at
 * start, and in a fork child, where the helper may have held them). */
static void ahead_init(struct mems_pager *pg)
{
	pthread_mutex_init(&pg->ahead_mu, NULL);
	pthread_cond_init(&pg->ahead_work, NULL);
	pthread_cond_init(&pg->ahead_idle, NULL);
	atomic_store(&pg->ahead_hi, 0);
	pg->ahead_on = 0;
}

static int in_flight(const struct mems_pager *pg, uint64_t i)
{
	uint64_t hi = atomic_load_explicit(&pg->ahead_hi, memory_order_acquire);
	return i < hi && i >= atomic_load_explicit(&pg->ahead_lo, memory_order_relaxed);
}

/* Populated, or being populated by the helper (the handler's view). */
static int taken(const struct mems_pager *pg, uint64_t i)
{
	return bit_get(pg, i) || in_flight(pg, i);
}

void pager_lock(struct mems_pager *pg)
{
	pthread_mutex_lock(&pg->lock);
	/* only the handler posts, under pg->lock: once idle, idle until we
	 * unlock */
	if (atomic_load_explicit(&pg->ahead_hi, memory_order_acquire)) {
		pthread_mutex_lock(&pg->ahead_mu);
		while (atomic_load_explicit(&pg->ahead_hi, memory_order_acquire))
			pthread_cond_wait(&pg->ahead_idle, &pg->ahead_mu);
		pthread_mutex_unlock(&pg->ahead_mu);
	}
}

/* Hand pages [lo, lo+n) to the idle helper (pg->lock held). */
static void ahead_post(struct mems_pager *pg, uint64_t lo, uint64_t n)
{
	pthread_mutex_lock(&pg->ahead_mu);
	atomic_store_explicit(&pg->ahead_lo, lo, memory_order_relaxed);
	atomic_store_explicit(&pg->ahead_hi, lo + n, memory_order_release);
	pthread_cond_signal(&pg->ahead_work);
	pthread_mutex_unlock(&pg->ahead_mu);
}

static void *ahead_main(void *arg)
{
	struct mems_pager *pg = arg;
	uint32_t tid = (uint32_t)syscall(SYS_gettid);

	pager_in_handler_ = 1;     /* the handler's rules: never allocates */
	pthread_mutex_lock(&pg->ahead_mu);
	for (;;) {
		while (!atomic_load_explicit(&pg->ahead_hi, memory_order_relaxed) && !pg->ahead_stop)
			pthread_cond_wait(&pg->ahead_work, &pg->ahead_mu);
		uint64_t hi = atomic_load_explicit(&pg->ahead_hi, memory_order_relaxed);
		if (!hi)
			break;
		uint64_t lo = atomic_load_explicit(&pg->ahead_lo, memory_order_relaxed);
		pthread_mutex_unlock(&pg->ahead_mu);

		uint64_t t0 = trace_active() ? trace_now() : 0, made;
		int woke;
		int err = copy_run(pg, lo, hi - lo, pg->zeros, 0, &woke, &made, FP_AHEAD_COPY);
		pg->populated += made;
		pg->ahead += made;
		if (t0 && made)
			trace_event(t0, TRACE_AHEAD, lo * pg->ps, (uint32_t)made, tid,
				    (uint32_t)(trace_now() - t0), pg->touched,
				    atomic_load(&pg->committed) / pg->ps);

		pthread_mutex_lock(&pg->ahead_mu);
		atomic_store_explicit(&pg->ahead_hi, 0, memory_order_release);
		pthread_cond_broadcast(&pg->ahead_idle);
		if (err) {
			/* A fault the handler left to us while the pages were
			 * in flight: wake it now that they are not, so that it
			 * faults again and the handler takes it. */
			wake_pages(pg, lo, hi - lo);
			if (!atomic_exchange(&pg->error_reported, 1))
				mems_diag("pager: cannot populate ahead at %p: %s",
					  (void *)(pg->base + lo * pg->ps), mems_strerror(err));
		}
	}
	pthread_mutex_unlock(&pg->ahead_mu);
	return NULL;
}

/* Whether to run a helper: only with a core for it besides the program's. */
static int ahead_worth_it(void)
{
	cpu_set_t set;
	return sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) >= 2;
}

static void ahead_stop(struct mems_pager *pg)
{
	if (!pg->ahead_on)
		return;
	pthread_mutex_lock(&pg->ahead_mu);
	pg->ahead_stop = 1;
	pthread_cond_signal(&pg->ahead_work);
	pthread_mutex_unlock(&pg->ahead_mu);
	pthread_join(pg->ahead_thread, NULL);
	pg->ahead_on = 0;
}

/* The fault-around window for a fault on page pi: the stream that ended
 * just before pi doubles its window; otherwise a new stream of one page.
 * With back, a stream that began just after pi doubles its window too, and
 * *back is its index + 1 (a buffer filled from its end down, as sort(1)
 * fills its line table), else 0. */
static uint32_t stream_window(struct mems_pager *pg, uint64_t pi, uint32_t max, unsigned *back)
{
	unsigned n = sizeof pg->streams / sizeof pg->streams[0];
	if (back)
		*back = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!pg->streams[i].win)
			continue;
		int fwd = pg->streams[i].end == pi;
		if (fwd || (back && pg->streams[i].start == pi + 1)) {
			uint32_t w = pg->streams[i].win * 2;
			if (!fwd)
				*back = i + 1;
			return pg->streams[i].win = w > max ? max : w;
		}
	}
	unsigned i = pg->next_stream++ % n;
	pg->streams[i].win = 1;
	pg->streams[i].start = pi;
	pg->streams[i].end = pi;
	return 1;
}

/* A fault that starts no stream: the more of its neighbourhood is
 * resident already, the larger the aligned block around it that is worth
 * populating with it.  While none of its 16-page group is resident, one
 * page; then 2^((r64 + r16) / 2) pages, r64 and r16 the resident pages of
 * its 64-page region and of its 16-page group, up to the whole region.
 * Dense random access (a table filled in random order) fills a region in
 * a handful of faults; sparse access (one page in 16 or fewer) stays at a
 * page a fault.  Between the two (one page in 8) the blocks cost pages
 * that are never touched: bench_core reports pages per page written. */
static uint64_t dense_block(const struct mems_pager *pg, uint64_t pi)
{
	uint64_t word = __atomic_load_n(&pg->resident[pi / 64], __ATOMIC_RELAXED);
	unsigned r16 = bits_count(word & (0xffffull << (pi % 64 / 16 * 16)));
	if (!r16)
		return 1;
	unsigned shift = (bits_count(word) + r16) / 2;
	return 1ull << (shift > 6 ? 6 : shift);
}

static void stream_advance(struct mems_pager *pg, uint64_t pi, uint64_t end)
{
	for (unsigned i = 0; i < sizeof pg->streams / sizeof pg->streams[0]; i++)
		if (pg->streams[i].end == pi)
			pg->streams[i].end = end;
}

static void trace_fault(struct mems_pager *pg, int kind, uint64_t pi, uint64_t n,
			uint32_t tid, uint64_t t_read)
{
	if (trace_active())
		trace_event(t_read, kind, pi * pg->ps, (uint32_t)n, tid,
			    (uint32_t)(trace_now() - t_read), pg->touched,
			    atomic_load(&pg->committed) / pg->ps);
}

/* Resolve one fault (pg->lock held).  Returns 1 when it must wait for room
 * under the resident cap (nothing was done), else 0. */
static int resolve(struct mems_pager *pg, uint64_t addr, int write, int wp, uint32_t tid,
		   uint64_t t_read)
{
	uint64_t pi = (addr - (uint64_t)(uintptr_t)pg->base) / pg->ps;
	uint64_t lim = atomic_load(&pg->committed) / pg->ps;
	uint64_t n = 1;

	if (wp) {
		pg->faults++;
		if (pg->ev) {
			/* writes stream through clean pages as reads do through
			 * missing ones: the same adaptive window */
			uint32_t w = stream_window(pg, pi, atomic_load(&pg->window), NULL);
			n = evict_wp_fault(pg, pi, w);
			stream_advance(pg, pi, pi + n);
		} else {
			pager_wake(pg, pi);
		}
		trace_fault(pg, TRACE_WP, pi, 0, tid, t_read);
		return 0;
	}
	int flying = 0;
	if (pi >= lim || bit_get(pg, pi) || (flying = in_flight(pg, pi))) {
		/* already resolved (another thread's fault on the same page, in
		 * this batch or an earlier window): only wake; or being
		 * populated by the helper, whose ioctl wakes the thread */
		pg->faults++;
		if (!flying)
			pager_wake(pg, pi);
		trace_fault(pg, write ? TRACE_WRITE : TRACE_READ, pi, 0, tid, t_read);
		return 0;
	}
	uint64_t room = pg->ev ? evict_room(pg) : UINT64_MAX;
	if (!room) {
		evict_wait_room(pg);
		return 1;
	}
	pg->faults++;
	unsigned back;
	uint32_t w = stream_window(pg, pi, atomic_load(&pg->window), pg->ev ? NULL : &back);
	if (w > room)
		w = (uint32_t)room;
	if (pg->ev && evict_swapped(pg, pi)) {
		n = evict_page_in(pg, pi, w, write);
		stream_advance(pg, pi, pi + (n ? n : 1));
		if (n)
			trace_fault(pg, TRACE_PAGEIN, pi, n, tid, t_read);
		return 0;
	}
	uint64_t blo = pi, bhi = pi + 1;
	if (!pg->ev && back) {
		/* a stream going down: the window ends at pi */
		uint64_t lo = pi;
		while (pi - lo + 1 < w && lo > 0 && !taken(pg, lo - 1) && pager_live_get(pg, lo - 1))
			lo--;
		pg->streams[back - 1].start = lo;
		int woke;
		int err = populate_run(pg, lo, pi + 1 - lo, write, &woke);
		if (!err)
			trace_fault(pg, write ? TRACE_WRITE : TRACE_READ, lo, pi + 1 - lo, tid, t_read);
		else if (!atomic_exchange(&pg->error_reported, 1))
			mems_diag("pager: cannot populate page at %p: %s", (void *)(uintptr_t)addr,
				  mems_strerror(err));
		if (!woke)
			pager_wake(pg, pi);
		return 0;
	}
	int full = w >= AHEAD_MIN && w == atomic_load(&pg->window);
	if (w == 1 && !pg->ev) {
		uint64_t b = dense_block(pg, pi);
		blo = pi & ~(b - 1);
		bhi = blo + b < lim ? blo + b : lim;
		w = (uint32_t)(bhi - pi);
	}
	while (n < w && pi + n < lim && !taken(pg, pi + n) && pager_live_get(pg, pi + n) &&
	       !(pg->ev && evict_swapped(pg, pi + n)))
		n++;
	uint64_t ahead = 0;
	if (full && write && n == w && pg->ahead_on && !atomic_load(&pg->ahead_hi)) {
		/* a stream of writes at full speed: the helper takes the next
		 * window (reads map the zero page, which costs no memory: they
		 * are left to the handler) */
		while (ahead < w && pi + n + ahead < lim && !bit_get(pg, pi + n + ahead) &&
		       pager_live_get(pg, pi + n + ahead))
			ahead++;
		if (ahead)
			ahead_post(pg, pi + n, ahead);
	}
	stream_advance(pg, pi, pi + n + ahead);
	int woke;
	uint64_t total = n;
	int err = populate_run(pg, pi, n, write, &woke);
	/* the rest of a dense block, after the faulting page's run (which
	 * woke the thread waiting on it) */
	for (uint64_t i = blo; !err && i < bhi; i++) {
		if (i == pi) {
			i += n - 1;
			continue;
		}
		if (taken(pg, i) || !pager_live_get(pg, i))
			continue;
		uint64_t j = i;
		while (j < bhi && j != pi && !taken(pg, j) && pager_live_get(pg, j))
			j++;
		int w2;
		err = populate_run(pg, i, j - i, write, &w2);
		total += j - i;
		i = j - 1;
	}
	if (!err)
		trace_fault(pg, write ? TRACE_WRITE : TRACE_READ, pi, total, tid, t_read);
	if (err) {
		if (!atomic_exchange(&pg->error_reported, 1))
			mems_diag("pager: cannot populate page at %p: %s",
				  (void *)(uintptr_t)addr, mems_strerror(err));
	}
	/* the ioctl woke the faulting thread unless the page turned out to be
	 * there already or it failed */
	if (!woke)
		pager_wake(pg, pi);
	if (pg->ev)
		evict_populated(pg, pi, n);
	return 0;
}

/* Stopping the handler.  The program may have closed any descriptor of
 * ours (closing every one is common in daemons), so the handler is not
 * stopped through one: it is asked through memory.  The bell is a page
 * registered on the userfaultfd apart from the span, missing until the
 * handler populates it; reading it is a fault that only the handler can
 * answer, and once stopping is set, answering it is its last act.  (A bell
 * read by someone else, a debugger say, is answered and changes nothing:
 * stop_handler makes it missing again before it rings.) */
static int ring_answer(struct mems_pager *pg)
{
	struct uffdio_zeropage z = { .range = { .start = (uintptr_t)pg->bell, .len = pg->ps } };
	if (ioctl(pg->uffd, UFFDIO_ZEROPAGE, &z) != 0 && errno != EEXIST) {
		struct uffdio_range r = z.range;
		ioctl(pg->uffd, UFFDIO_WAKE, &r);
	}
	return atomic_load(&pg->stopping);
}

static void bell_stop(struct mems_pager *pg)
{
	if (pg->bell)
		os_unmap(pg->bell, pg->ps);     /* its registration goes with it */
	pg->bell = NULL;
}

static int bell_start(struct mems_pager *pg)
{
	pg->bell = os_map_meta(pg->ps);
	if (!pg->bell)
		return -1;
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)pg->bell, .len = pg->ps },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	int e = fail_now(FP_UFFD_REGISTER);
	if (!e && ioctl(pg->uffd, UFFDIO_REGISTER, &reg) != 0)
		e = errno;
	if (e) {
		os_unmap(pg->bell, pg->ps);
		pg->bell = NULL;
		errno = e;
		return -1;
	}
	return 0;
}

/* Read a batch of faults.  Right after a batch the next fault usually
 * follows within microseconds (the woken thread runs on and faults again),
 * and sleeping in poll() would add two wake-ups across CPUs to its round
 * trip; so first keep reading for up to spin_ns, then sleep.  With faults
 * waiting for room under the resident cap, the evictor's pipe wakes us
 * too (and len is 0 when no more faults can be put aside).
 * Returns the bytes read, -1 on error, -2 when room was made. */
static ssize_t read_faults(struct mems_pager *pg, struct uffd_msg *msgs, size_t len,
			   int after_batch, int want_room)
{
	struct pollfd pfd[2] = { { .fd = len ? pg->uffd : -1, .events = POLLIN },
				 { .fd = want_room ? evict_roomfd(pg) : -1, .events = POLLIN } };
	if (after_batch && pg->spin_ns && len && !want_room) {
		uint64_t until = os_now_ns() + pg->spin_ns;
		do {
			ssize_t got = read(pg->uffd, msgs, len);
			if (got > 0 || (got < 0 && errno != EAGAIN))
				return got;
		} while (os_now_ns() < until);
	}
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (pfd[1].revents) {
			char v[64];     /* the evictor's signals, a byte each */
			if (read(pfd[1].fd, v, sizeof v) < 0 && errno != EAGAIN)
				return -1;
			return -2;
		}
		ssize_t got = read(pg->uffd, msgs, len);
		if (got >= 0 || (errno != EAGAIN && errno != EINTR))
			return got;
	}
}

__thread int pager_in_handler_ __attribute__((tls_model("initial-exec")));

/* A fault put aside until the evictor makes room. */
struct deferred {
	uint64_t addr, t_read;
	uint32_t tid;
	int write;
};
#define DEFER_MAX 256

static void *handler_main(void *arg)
{
	struct mems_pager *pg = arg;
	struct uffd_msg msgs[64];
	static struct deferred defer[DEFER_MAX];   /* one handler per process */
	size_t ndefer = 0;
	ssize_t got;
	int after_batch = 0, stop = 0;

	pager_in_handler_ = 1;

	while (!stop) {
		got = read_faults(pg, msgs, ndefer + 64 <= DEFER_MAX ? sizeof msgs : 0,
				  after_batch, ndefer > 0);
		if (got == -1) {
			mems_diag("pager: reading faults: %s", mems_strerror(errno));
			atomic_store(&pg->handler_gone, 1);
			return NULL;
		}
		if (got < 0)
			got = 0;
		uint64_t t_read = trace_active() ? trace_now() : 0;
		pthread_mutex_lock(&pg->lock);
		/* first the faults put aside, in their order */
		size_t kept = 0;
		for (size_t i = 0; i < ndefer; i++)
			if (resolve(pg, defer[i].addr, defer[i].write, 0, defer[i].tid,
				    defer[i].t_read))
				defer[kept++] = defer[i];
		ndefer = kept;
		for (size_t i = 0; i < (size_t)got / sizeof msgs[0]; i++) {
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			if (msgs[i].arg.pagefault.address - (uintptr_t)pg->bell < pg->ps) {
				stop |= ring_answer(pg);
				continue;
			}
			uint64_t flags = msgs[i].arg.pagefault.flags;
			struct deferred d = {
				.addr = msgs[i].arg.pagefault.address, .t_read = t_read,
				.tid = pg->thread_ids ? msgs[i].arg.pagefault.feat.ptid : 0,
				.write = (flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0,
			};
			if (resolve(pg, d.addr, d.write, (flags & UFFD_PAGEFAULT_FLAG_WP) != 0,
				    d.tid, d.t_read))
				defer[ndefer++] = d;
		}
		pthread_mutex_unlock(&pg->lock);
		after_batch = got > 0;
	}
	return NULL;
}

/* ---------------------------------------------------------------------
 * Opening userfaultfd
 * ------------------------------------------------------------------- */

static int uffd_syscall(int user_only)
{
	return (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK |
			    (user_only ? UFFD_USER_MODE_ONLY : 0));
}

static int uffd_dev(void)
{
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -1;
	int fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	int e = errno;
	close(dev);
	errno = e;
	return fd;
}

/* UFFDIO_API can be called once per descriptor: probe what the kernel
 * offers on a throw-away one, then ask for what we want on the real one. */
static int uffd_handshake(int fd, int probe_fd, uint64_t need, uint64_t *features)
{
	struct uffdio_api api = { .api = UFFD_API };
	uint64_t want = UFFD_FEATURE_THREAD_ID | need | (need ? UFFD_FEATURE_POISON : 0);

	if (probe_fd >= 0) {
		if (ioctl(probe_fd, UFFDIO_API, &api) == 0)
			want &= api.features;
		else
			want = 0;
		close(probe_fd);
	}
	if ((want & need) != need) {
		errno = ENOTSUP;
		return -1;
	}
	struct uffdio_api real = { .api = UFFD_API, .features = want };
	int e = fail_now(FP_UFFD_API);
	if (e) {
		errno = e;
		return -1;
	}
	int rc = ioctl(fd, UFFDIO_API, &real);
	*features = rc == 0 ? real.features : 0;
	return rc;
}

/* need: features that must be there (write-protect faults for the cap). */
static int try_open(int kind, int *fdp, uint64_t need, uint64_t *features)
{
	/* kind: 0 syscall full, 1 /dev/userfaultfd, 2 user-mode-only */
	int fd = kind == 1 ? uffd_dev() : uffd_syscall(kind == 2);
	if (fd < 0)
		return -1;
	int probe = kind == 1 ? uffd_dev() : uffd_syscall(kind == 2);
	if (uffd_handshake(fd, probe, need, features) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	*fdp = fd;
	return 0;
}

static void reason_add(struct mems_pager *pg, const char *what, int err)
{
	size_t l = strlen(pg->reason);
	snprintf(pg->reason + l, sizeof pg->reason - l, "%s%s: %s",
		 l ? "; " : "", what, err ? mems_strerror(err) : "ok");
}

static void stop_handler(struct mems_pager *pg)
{
	atomic_store(&pg->stopping, 1);
	/* a handler gone on an error has no reader of the userfaultfd left:
	 * its table was the last holder of it (or the program closed it), so
	 * the registration went with it and the bell would not be answered */
	if (!atomic_load(&pg->handler_gone)) {
		os_release(pg->bell, pg->ps);
		(void)*(volatile char *)pg->bell;
	}
	pthread_join(pg->thread, NULL);
	pg->running = 0;
	ahead_stop(pg);
}

/* The handler thread first, then the registration: once the span is
 * registered a fault must find a handler, and creating the thread may run
 * libc code (under LD_PRELOAD, our own malloc among it). */
static int start_handler(struct mems_pager *pg, int ahead)
{
	struct uffdio_register reg = {
		.range = { .start = (uint64_t)(uintptr_t)pg->base, .len = pg->span },
		.mode = UFFDIO_REGISTER_MODE_MISSING | (pg->ev ? UFFDIO_REGISTER_MODE_WP : 0),
	};
	uint64_t need = (1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_ZEROPAGE) |
			(1ull << _UFFDIO_WAKE) | (pg->ev ? 1ull << _UFFDIO_WRITEPROTECT : 0);

	/* the bell before the threads, which take the descriptors of the
	 * moment into tables of their own */
	if (bell_start(pg) != 0)
		return -1;
	atomic_store(&pg->stopping, 0);
	atomic_store(&pg->handler_gone, 0);
	/* the helper before the handler, which reads ahead_on; without one
	 * (no second CPU, or no thread to be had) the handler works alone */
	pg->ahead_stop = 0;
	pg->ahead_on = ahead && !pg->ev && ahead_worth_it() &&
		       os_thread_start(&pg->ahead_thread, ahead_main, pg, &pg->uffd, 1) == 0;
	/* the userfaultfd and the evictor's files in a table of the
	 * handler's own, which a program closing its descriptors leaves
	 * alone (span.h, os_own_fds) */
	int keep[EVICT_FDS] = { pg->uffd };
	int rc = os_thread_start(&pg->thread, handler_main, pg, keep,
				 pg->ev ? evict_fds(pg, keep) : 1);
	if (rc != 0) {
		ahead_stop(pg);
		bell_stop(pg);
		errno = rc;
		return -1;
	}
	pg->running = 1;
	int e = 0;
	if ((e = fail_now(FP_UFFD_REGISTER)) != 0)
		;
	else if (ioctl(pg->uffd, UFFDIO_REGISTER, &reg) != 0)
		e = errno;
	else if ((reg.ioctls & need) != need)
		e = ENOTSUP;
	if (e) {
		stop_handler(pg);
		bell_stop(pg);
		errno = e;
		return -1;
	}
	return 0;
}

int pager_start(struct mems_pager *pg, const struct pager_config *cf, char *base,
		uint64_t span)
{
	const char *want = cf->mode;
	uint32_t window = cf->window;
	static const struct { const char *what; int kind; enum mems_pager_mode mode; } ways[] = {
		{ "userfaultfd(2)", 0, MEMS_PAGER_UFFD },
		{ "/dev/userfaultfd", 1, MEMS_PAGER_UFFD },
		{ "user-mode-only", 2, MEMS_PAGER_UFFD_USER },
	};
	int lo = 0, hi = 3, allow_kernel = 1;

	memset(pg, 0, sizeof *pg);
	pg->uffd = -1;
	pg->base = base;
	pg->span = span;
	pg->ps = os_page_size();
	pg->window = window < 1 ? 1 : window > WINDOW_MAX ? WINDOW_MAX : window;
	pg->spin_ns = (uint64_t)cf->spin_us * 1000;
	pthread_mutex_init(&pg->lock, NULL);
	ahead_init(pg);

	if (!strcmp(want, "kernel"))
		hi = 0;
	else if (!strcmp(want, "uffd"))
		hi = 2, allow_kernel = 0;
	else if (!strcmp(want, "uffd-user"))
		lo = 2, allow_kernel = 0;
	snprintf(pg->reason, sizeof pg->reason, "MEMS_PAGER=%s", want);
	if (cf->cap) {
		/* Eviction needs every fault, kernel-mode ones included (a
		 * read(2) into an evicted page must page it in): full mode. */
		if (lo == 2 || hi == 0) {
			snprintf(pg->reason, sizeof pg->reason,
				 "MEMS_RESIDENT_MAX needs MEMS_PAGER=uffd or auto, not %s", want);
			errno = EINVAL;
			goto fail;
		}
		hi = 2;
		allow_kernel = 0;
	}

	pg->resident_bytes = (size_t)(span / pg->ps + 63) / 64 * 8;
	pg->zeros_bytes = WINDOW_MAX * pg->ps;
	/* the bitmaps in every mode (kernel mode: for the purge delay) */
	pg->resident = os_map_meta(3 * pg->resident_bytes);
	if (!pg->resident) {
		reason_add(pg, "its bitmaps", errno);
		goto fail;
	}
	pg->live = (_Atomic uint64_t *)(pg->resident + pg->resident_bytes / 8);
	pg->seen = pg->resident + 2 * (pg->resident_bytes / 8);
	if (hi > lo) {
		/* the zero source is read only, never written: it stays the
		 * kernel's zero page */
		pg->zeros = os_map_meta(pg->zeros_bytes);
		if (!pg->zeros) {
			reason_add(pg, "its zero source", errno);
			goto fail;
		}
	}
	for (int i = lo; i < hi; i++) {
		int fd;
		uint64_t features;
		if (try_open(ways[i].kind, &fd, cf->cap ? UFFD_FEATURE_PAGEFAULT_FLAG_WP : 0,
			     &features) != 0) {
			reason_add(pg, ways[i].what, errno);
			continue;
		}
		pg->uffd = os_fd_note(fd);
		pg->thread_ids = (features & UFFD_FEATURE_THREAD_ID) != 0;
		if (cf->cap) {
			char why[sizeof pg->reason - 16];
			if (evict_start(pg, cf->cap, cf->swap ? cf->swap : "", cf->fifo,
					(features & UFFD_FEATURE_POISON) != 0, why, sizeof why) != 0) {
				int e = errno;
				snprintf(pg->reason, sizeof pg->reason, "resident cap: %s", why);
				os_fd_close(fd);
				pg->uffd = -1;
				errno = e;
				goto fail;
			}
		}
		if (start_handler(pg, cf->ahead && ways[i].mode == MEMS_PAGER_UFFD) != 0) {
			reason_add(pg, ways[i].what, errno);
			evict_free(pg);
			os_fd_close(fd);
			pg->uffd = -1;
			continue;
		}
		reason_add(pg, ways[i].what, 0);
		pg->mode = ways[i].mode;
		return 0;
	}
	if (!allow_kernel) {
		if (cf->cap) {
			size_t l = strlen(pg->reason);
			snprintf(pg->reason + l, sizeof pg->reason - l,
				 "; MEMS_RESIDENT_MAX needs full userfaultfd");
		}
		errno = ENOTSUP;
		goto fail;
	}
	if (pg->zeros) {
		os_unmap(pg->zeros, pg->zeros_bytes);
		pg->zeros = NULL;
	}
	pg->mode = MEMS_PAGER_KERNEL;
	if (hi > lo) {
		size_t l = strlen(pg->reason);
		snprintf(pg->reason + l, sizeof pg->reason - l, "; kernel paging");
	}
	return 0;
fail:;
	int e = errno;
	pager_stop(pg);
	errno = e;
	return -1;
}

void pager_stop(struct mems_pager *pg)
{
	/* the evictor thread first (it may be waiting for I/O, never for
	 * faults), then the handler, then what both used */
	evict_stop(pg);
	if (pg->running)
		stop_handler(pg);
	bell_stop(pg);
	evict_free(pg);
	if (pg->uffd >= 0)
		os_fd_close(pg->uffd);
	pg->uffd = -1;
	if (pg->resident)
		os_unmap(pg->resident, 3 * pg->resident_bytes);
	if (pg->zeros)
		os_unmap(pg->zeros, pg->zeros_bytes);
	pg->resident = NULL;
	pg->live = NULL;
	pg->seen = NULL;
	pg->zeros = NULL;
	pthread_mutex_destroy(&pg->lock);
	pthread_mutex_destroy(&pg->ahead_mu);
	pthread_cond_destroy(&pg->ahead_work);
	pthread_cond_destroy(&pg->ahead_idle);
	pg->mode = MEMS_PAGER_NONE;
}

/* ---------------------------------------------------------------------
 * Commit, release, populate
 * ------------------------------------------------------------------- */

/* The resident bitmap is exact (else, in kernel mode, it holds the freed
 * pages that may be resident; see the top of this file). */
static int uses_bitmap(const struct mems_pager *pg)
{
	return pg->mode == MEMS_PAGER_UFFD || pg->mode == MEMS_PAGER_UFFD_USER;
}

int pager_commit(struct mems_pager *pg, uint64_t off, uint64_t len)
{
	if (os_commit(pg->base + off, len) != 0)
		return -1;
	atomic_store(&pg->committed, off + len);
	return 0;
}

void pager_uncommit(struct mems_pager *pg, uint64_t off, uint64_t len)
{
	pager_release(pg, off, len);
	atomic_store(&pg->committed, off);
	os_decommit(pg->base + off, len);
}

/* MADV_DONTNEED failed: the pages stay resident (and counted), in a hole,
 * until a later free around them gives them back. */
static void release_failed(struct mems_pager *pg)
{
	if (!atomic_exchange(&pg->release_reported, 1))
		mems_diag("pager: cannot give free pages back: %s; they stay resident",
			  mems_strerror(errno));
}

void pager_purge_locked(struct mems_pager *pg, uint64_t lo, uint64_t hi)
{
	uint64_t freed = 0;
	for (uint64_t i = lo; i < hi;) {
		if (!(i % 64) && i + 64 <= hi &&
		    !__atomic_load_n(&pg->resident[i / 64], __ATOMIC_RELAXED)) {
			i += 64;
			continue;
		}
		if (!bit_get(pg, i) || pager_live_get(pg, i)) {
			i++;
			continue;
		}
		uint64_t j = i;
		while (j < hi && bit_get(pg, j) && !pager_live_get(pg, j))
			j++;
		if (os_release(pg->base + i * pg->ps, (j - i) * pg->ps) != 0) {
			release_failed(pg);
		} else {
			for (uint64_t k = i; k < j; k++)
				bit_clear(pg, k);
			freed += j - i;
			if (trace_active() && uses_bitmap(pg))
				trace_event(trace_now(), TRACE_RELEASE, i * pg->ps, (uint32_t)(j - i), 0, 0,
					    pg->touched - freed, atomic_load(&pg->committed) / pg->ps);
		}
		i = j;
	}
	if (uses_bitmap(pg)) {
		/* kernel mode counts neither: see pager_counters() */
		pg->touched -= freed;
		pg->released += freed;
	}
}

void pager_free_range(struct mems_pager *pg, uint64_t off, uint64_t len)
{
	uint64_t lo = off / pg->ps, hi = (off + len) / pg->ps;
	live_set(pg, lo, hi, 0);
	if (!uses_bitmap(pg))
		bits_set(pg, lo, hi - lo);
	if (pg->ev) {
		pager_lock(pg);
		evict_release(pg, lo, hi, 1);
		pthread_mutex_unlock(&pg->lock);
	}
}

void pager_release(struct mems_pager *pg, uint64_t off, uint64_t len)
{
	uint64_t lo = off / pg->ps, hi = (off + len) / pg->ps;
	live_set(pg, lo, hi, 0);
	if (!uses_bitmap(pg))
		bits_set(pg, lo, hi - lo);
	pager_lock(pg);
	if (pg->ev)
		evict_release(pg, lo, hi, 0);
	pager_purge_locked(pg, lo, hi);
	pthread_mutex_unlock(&pg->lock);
}

int pager_page_fresh(struct mems_pager *pg, uint64_t pi)
{
	/* A page wholly inside a live block is never released, so once seen
	 * missing it can only be populated, with zeros. */
	return uses_bitmap(pg) && !bit_get(pg, pi) && !(pg->ev && evict_swapped(pg, pi));
}

void pager_mark_live(struct mems_pager *pg, uint64_t off, uint64_t len)
{
	uint64_t lo = off / pg->ps, hi = (off + len + pg->ps - 1) / pg->ps;
	live_set(pg, lo, hi, 1);
	/* in use again: a later free starts its purge delay afresh */
	for (uint64_t i = lo; i < hi;) {
		uint64_t w = i / 64;
		pg->seen[w] &= ~word_mask(&i, hi);
	}
}

/* The purge's pass over the bitmaps: give back the pages free but
 * resident now and at the last pass (every such page with all), and
 * remember the rest.  *gone counts the pages given back. */
static uint64_t purge_pass(struct mems_pager *pg, int all, uint64_t *gone)
{
	uint64_t left = 0, words = (atomic_load(&pg->committed) / pg->ps + 63) / 64;
	*gone = 0;
	pager_lock(pg);
	for (uint64_t w = 0; w < words; w++) {
		uint64_t c = __atomic_load_n(&pg->resident[w], __ATOMIC_RELAXED) &
			     ~atomic_load_explicit(&pg->live[w], memory_order_relaxed);
		uint64_t due = all ? c : c & pg->seen[w];
		if (due) {
			/* runs of due pages (pager_purge_locked spares live ones) */
			for (uint64_t d = due; d;) {
				unsigned b = (unsigned)__builtin_ctzll(d);
				unsigned e = b;
				while (e < 64 && (d >> e & 1))
					e++;
				pager_purge_locked(pg, w * 64 + b, w * 64 + e);
				d &= e == 64 ? 0 : ~0ull << e;
			}
			*gone += (uint64_t)bits_count(due & ~__atomic_load_n(&pg->resident[w], __ATOMIC_RELAXED));
		}
		pg->seen[w] = c & ~due;
		left += (uint64_t)bits_count(pg->seen[w]);
	}
	pthread_mutex_unlock(&pg->lock);
	return left;
}

uint64_t pager_purge_scan(struct mems_pager *pg)
{
	uint64_t gone;
	return purge_pass(pg, 0, &gone);
}

uint64_t pager_purge_now(struct mems_pager *pg)
{
	uint64_t gone;
	purge_pass(pg, 1, &gone);
	return gone;
}

int pager_populate(struct mems_pager *pg, uint64_t off, uint64_t len)
{
	uint64_t lo = off / pg->ps, hi = (off + len + pg->ps - 1) / pg->ps;
	int err = 0;
	uint64_t t0 = trace_active() ? trace_now() : 0;

	pager_lock(pg);
	uint64_t before = pg->touched;
	for (uint64_t i = lo; i < hi && !err;) {
		if (bit_get(pg, i)) {
			i++;
			continue;
		}
		uint64_t j = i;
		while (j < hi && j - i < WINDOW_MAX && !bit_get(pg, j))
			j++;
		int woke;
		err = populate_run(pg, i, j - i, 1, &woke);
		i = j;
	}
	uint64_t n = pg->touched - before;
	pg->prepopulated += n;
	if (n && t0)
		trace_event(t0, TRACE_ALLOC, lo * pg->ps, (uint32_t)n, (uint32_t)syscall(SYS_gettid),
			    (uint32_t)(trace_now() - t0), pg->touched, atomic_load(&pg->committed) / pg->ps);
	pthread_mutex_unlock(&pg->lock);
	if (err && !os_fd_mine(pg->uffd)) {
		/* The program closed our userfaultfd (its number in the
		 * handler's table stays ours): read each page instead, a
		 * fault from user mode that the handler answers.  Reading
		 * never changes a page that a neighbouring block shares. */
		for (uint64_t i = lo; i < hi; i++)
			(void)*(volatile char *)(pg->base + i * pg->ps);
		return 0;
	}
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

/* Under pg->lock: the ioctl wakes the faulting thread before the handler
 * has counted what it populated, so a thread that reads the counters right
 * after its fault must wait for the handler to finish. */
void pager_counters(struct mems_pager *pg, uint64_t *touched, uint64_t *faults,
		    uint64_t *populated, uint64_t *released, uint64_t *prepopulated,
		    uint64_t *ahead)
{
	pager_lock(pg);
	if (uses_bitmap(pg)) {
		*touched = pg->touched;
	} else {
		int64_t n = os_resident_pages(pg->base, atomic_load(&pg->committed));
		*touched = n < 0 ? 0 : (uint64_t)n;
	}
	*faults = pg->faults;
	*populated = pg->populated;
	*released = pg->released;
	*prepopulated = pg->prepopulated;
	*ahead = pg->ahead;
	pthread_mutex_unlock(&pg->lock);
}

void pager_evict_counters(struct mems_pager *pg, struct pager_evict_counters *c)
{
	memset(c, 0, sizeof *c);
	pager_lock(pg);
	if (pg->ev)
		evict_counters(pg, c);
	pthread_mutex_unlock(&pg->lock);
}

/* ---------------------------------------------------------------------
 * fork
 * ------------------------------------------------------------------- */

void pager_fork_prepare(struct mems_pager *pg)
{
	if (pg->ev)
		evict_fork_prepare(pg);
}

void pager_fork_parent(struct mems_pager *pg)
{
	if (pg->ev)
		evict_fork_parent(pg);
}

void pager_fork_child(struct mems_pager *pg)
{
	/* The pager lock was not held across fork() (the handler may have had
	 * it, and a prepare handler of another library that touches missing
	 * memory would need the handler): the child, which has no handler
	 * thread, makes it afresh.  The child has no registration either, so
	 * it runs on the kernel's paging and counts touched pages with
	 * mincore(2). */
	pthread_mutex_init(&pg->lock, NULL);
	/* nor the helper, which may have been mid-copy: nothing in flight */
	ahead_init(pg);
	/* a parent in kernel mode changes its bitmaps only under the
	 * allocator lock, which fork_prepare held: the child's copy is whole */
	if (!uses_bitmap(pg))
		return;
	if (pg->ev)
		evict_fork_child(pg);
	os_fd_close(pg->uffd);
	pg->uffd = -1;
	bell_stop(pg);
	pg->running = 0;
	os_unmap(pg->zeros, pg->zeros_bytes);
	pg->zeros = NULL;
	/* The live bitmap is whole (the allocator lock again); the resident
	 * one may be mid-update, and in kernel mode means "free pages that may
	 * be resident" (the top of this file): every committed page may be,
	 * so the purge delay gives back whatever of the parent's free pages
	 * the child holds.  The purge scan starts afresh. */
	uint64_t pages = atomic_load(&pg->committed) / pg->ps;
	bits_set(pg, 0, pages);
	memset(pg->seen, 0, (pages + 63) / 64 * 8);
	pg->mode = MEMS_PAGER_KERNEL;
	snprintf(pg->reason, sizeof pg->reason,
		 "child after fork(): userfaultfd does not follow fork");
}
