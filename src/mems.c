/*
 * mems.c - the entry points: init and finish, the allocator lock,
 * translation between MeMS virtual addresses and real pointers, bad input.
 *
 * A MeMS virtual address is MEMS_VIRTUAL_BASE + the offset into the span;
 * the real pointer is span + offset.  Both ways are arithmetic.
 *
 * Locking: one allocator lock (mems_lock) serialises the free list and
 * init/finish (small blocks in runs are allocated and freed without it:
 * small.c).  The pager has its own lock, taken after this one, and the
 * fault handler takes only that.  No user page is touched while mems_lock
 * is held; population (an ioctl into missing pages) is not touching.
 * What is done to a block outside the lock (calloc's zeroing, realloc's
 * copy) is done pinned: mems_finish bumps the generation and then waits
 * until nothing is pinned, and a pin taken for an older generation fails.
 *
 * Bad input (invalid frees, mems_get outside a PROCESS segment, sizes that
 * cannot fit) gets a defined result, a count in the stats and, for frees,
 * a one-line diagnostic; MEMS_ABORT_ON_ERROR=1 turns each into abort().
 *
 * The seed functions before mems_init(): mems_malloc() initialises lazily;
 * mems_free() and mems_get() find nothing allocated and treat their
 * argument as invalid; mems_print_stats() prints an empty list.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "fail.h"
#include "internal.h"
#include "options.h"
#include "span.h"
#include "purge.h"
#include "small.h"
#define MEMS_LIBRARY 1
#include "trace.h"

/* a power of two: node starts are then aligned to every alignment up to
 * the page, which aligned allocations rely on */
_Static_assert(MEMS_PAGE_SIZE >= 4096 && (MEMS_PAGE_SIZE & (MEMS_PAGE_SIZE - 1)) == 0,
	       "MEMS_PAGE_SIZE must be a power of two, at least 4096 (and the OS page size)");

/* The span starts on a multiple of this when the address space has room
 * for the slack: node starts are then aligned to the MeMS page in real
 * addresses too, and the span's 2 MiB ranges line up with huge pages. */
#define SPAN_ALIGN (MEMS_PAGE_SIZE > (2u << 20) ? MEMS_PAGE_SIZE : (2u << 20))

pthread_mutex_t mems_lock = PTHREAD_MUTEX_INITIALIZER;
struct mems_state mems_g;
/* This thread holds mems_lock: a malloc that reaches MeMS now came from
 * libc inside one of our own calls (see boot.c). */
__thread int mems_lock_held_ __attribute__((tls_model("initial-exec")));
/* The last initialisation failed: lazy initialisation (mems_malloc) does
 * not retry, and say so, on every call; mems_init() and mems_finish() do. */
static int init_failed;
/* Bumped by every init and finish; pins held (mems_pin) */
static _Atomic unsigned generation, pinned;
/* The span of the last mems_finish, emptied but kept reserved until the
 * next init has reserved its own: a pointer from before a finish then
 * never names a block of the next initialisation, and freeing it is
 * diagnosed rather than freeing someone else's block. */
static void *tomb;
static size_t tomb_bytes;

static void drop_tomb(void)
{
	if (tomb)
		os_unmap(tomb, tomb_bytes);
	tomb = NULL;
}

/* ---------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------- */

void mems_lock_take(void)
{
	pthread_mutex_lock(&mems_lock);
	mems_lock_held_ = 1;
}

void mems_lock_drop(void)
{
#ifdef MEMS_DEBUG
	/* debug builds validate everything before every unlock */
	char why[256];
	if (!pager_in_handler() && mems_check_locked(why, sizeof why) != 0) {
		mems_diag("MEMS_DEBUG (pid %d): %s", (int)getpid(), why);
		abort();
	}
#endif
	mems_lock_held_ = 0;
	pthread_mutex_unlock(&mems_lock);
}

int mems_lock_try(void)
{
	if (pthread_mutex_trylock(&mems_lock) != 0)
		return 0;
	mems_lock_held_ = 1;
	return 1;
}

void mems_maybe_abort(void)
{
	if (opt_int(OPT_ABORT_ON_ERROR)) {
		mems_diag("MEMS_ABORT_ON_ERROR is set: aborting");
		abort();
	}
}

/* ---------------------------------------------------------------------
 * fork: hold the allocator lock across fork() so the child inherits the
 * free list consistent and the lock free (see pager_fork_child for the
 * pager's side).
 * ------------------------------------------------------------------- */

static void fork_prepare(void)
{
	mems_lock_take();
	sm_fork_prepare();
	if (mems_g.ready)
		pager_fork_prepare(&mems_g.pg);
}

static void fork_parent(void)
{
	if (mems_g.ready)
		pager_fork_parent(&mems_g.pg);
	sm_fork_parent();
	mems_lock_drop();
}

static void fork_child(void)
{
	trace_fork_child();
	purge_fork_child();
	if (mems_g.ready)
		pager_fork_child(&mems_g.pg);
	mems_g.populate_max = 0;        /* kernel mode now: nothing to populate */
	atomic_store(&pinned, 0);       /* the pinned threads are not here */
	sm_fork_child_locked();
	mems_lock_drop();
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---------------------------------------------------------------------
 * Init and finish
 * ------------------------------------------------------------------- */

int mems_init_locked(void)
{
	if (mems_g.ready)
		return 0;
	if (init_failed) {
		errno = ENOMEM;
		return -1;
	}
	pthread_once(&atfork_once, register_atfork);
	opts_load();
	char fail[1024];
	opt_str(OPT_FAIL, fail, sizeof fail);
	fail_setup(fail);

	size_t ps = os_page_size();
	if (MEMS_PAGE_SIZE % ps != 0) {
		mems_diag("MEMS_PAGE_SIZE %d is not a multiple of the OS page size %zu",
			  MEMS_PAGE_SIZE, ps);
		init_failed = 1;
		errno = EINVAL;
		return -1;
	}
	uint64_t span = (uint64_t)opt_int(OPT_SPAN_SIZE) / MEMS_PAGE_SIZE * MEMS_PAGE_SIZE;
	const uint64_t asked = span;
	uint64_t limit, room = os_address_room(&limit);
	if (room != UINT64_MAX && tomb)
		room += tomb_bytes;     /* given up below if need be */
	if (!opt_given(OPT_SPAN_SIZE) && span > room / 2) {
		/* under an address-space limit (ulimit -v) the default span is
		 * half the room the limit leaves: with its metadata (a sixth
		 * more at 1 GiB), MeMS then takes under 60% of that room */
		span = room / 2 / MEMS_PAGE_SIZE * MEMS_PAGE_SIZE;
		if (span < (uint64_t)SPAN_MIN)
			span = SPAN_MIN;
	}
	memset(&mems_g, 0, sizeof mems_g);
	mems_g.span = os_reserve(span, SPAN_ALIGN);
	if (!mems_g.span && tomb) {
		/* no room for two spans (ulimit -v): give up on the tomb */
		drop_tomb();
		mems_g.span = os_reserve(span, SPAN_ALIGN);
	}
	/* the default span did not fit (valgrind's address space, say):
	 * halve it until one does */
	while (!mems_g.span && !opt_given(OPT_SPAN_SIZE) && span / 2 >= (uint64_t)SPAN_MIN) {
		span = span / 2 / MEMS_PAGE_SIZE * MEMS_PAGE_SIZE;
		mems_g.span = os_reserve(span, SPAN_ALIGN);
	}
	if (!mems_g.span) {
		int e = errno;
		if (limit != UINT64_MAX)
			mems_diag("cannot reserve a span of %" PRIu64 " bytes: %s (the address "
				  "space is limited to %" PRIu64 " bytes, %" PRIu64 " of them free: "
				  "ulimit -v)", span, mems_strerror(e), limit, room);
		else
			mems_diag("cannot reserve a span of %" PRIu64 " bytes: %s", span,
				  mems_strerror(e));
		init_failed = 1;
		errno = e;
		return -1;
	}
	drop_tomb();
	mems_g.span_size = span;
	mems_g.span_asked = asked;
	if (fl_init(&mems_g.fl, span, MEMS_PAGE_SIZE) != 0) {
		mems_diag("cannot map the free list's metadata");
		goto fail;
	}
	char swap[1024];
	opt_str(OPT_SWAP_FILE, swap, sizeof swap);
	struct pager_config cf = {
		.mode = opt_choice(OPT_PAGER),
		.window = (uint32_t)opt_int(OPT_FAULT_AROUND),
		.spin_us = (uint32_t)opt_int(OPT_HANDLER_SPIN),
		.cap = (uint64_t)opt_int(OPT_RESIDENT_MAX),
		.swap = swap,
		.fifo = !strcmp(opt_choice(OPT_EVICT_POLICY), "fifo"),
		.ahead = (int)opt_int(OPT_FAULT_AHEAD),
	};
	sm_register_barrier();
	if (pager_start(&mems_g.pg, &cf, mems_g.span, span) != 0) {
		mems_diag("no pager: %s", mems_g.pg.reason);
		goto fail;
	}
	char trace[1024];
	opt_str(OPT_TRACE, trace, sizeof trace);
	if (trace[0] && mems_g.pg.mode != MEMS_PAGER_KERNEL &&
	    trace_start(trace, (uint64_t)(uintptr_t)mems_g.span, mems_g.pg.thread_ids) != 0)
		mems_diag("MEMS_TRACE=%s: tracing is off", trace);
	/* Programs often close stderr on their way out (gnulib's close_stdout
	 * does), before destructors run: keep a copy for the report at exit. */
	mems_g.stats_fd = opt_int(OPT_STATS_ON_EXIT) ?
			  os_fd_note(fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 10)) : -1;
	if (!os_fd_mine(mems_g.stats_fd) && mems_g.stats_fd >= 0) {
		close(mems_g.stats_fd);
		mems_g.stats_fd = -1;
	}
	int64_t delay = opt_int(OPT_PURGE_DELAY);
	mems_g.purge_delay_ns = delay < 0 ? -1 : delay * 1000000;
	/* a fault's round trip to the handler costs 20-100 us here, the
	 * ioctl from the allocating thread 1-2 us a page (PERFORMANCE.md) */
	mems_g.populate_max = mems_g.pg.mode == MEMS_PAGER_UFFD && !cf.cap
				      ? (uint64_t)opt_int(OPT_POPULATE) : 0;
	if (sm_start_locked() != 0) {
		int e = errno;
		mems_diag("cannot map the runs of small blocks: %s", mems_strerror(e));
		pager_stop(&mems_g.pg);
		trace_stop();
		errno = e;
		goto fail;
	}
	mems_g.ready = 1;
	atomic_fetch_add(&generation, 1);
	return 0;
fail:;
	int e = errno;
	fl_destroy(&mems_g.fl);
	os_unmap(mems_g.span, span);
	memset(&mems_g, 0, sizeof mems_g);
	init_failed = 1;
	errno = e ? e : ENOMEM;
	return -1;
}

int mems_try_init(void)
{
	mems_lock_take();
	init_failed = 0;
	int rc = mems_init_locked();
	mems_lock_drop();
	return rc;
}

void mems_init(void)
{
	(void)mems_try_init();
}

/* MEMS_STATS_ON_EXIT's report.  The destructor is here, in the file that
 * every program on MeMS links, and not in stats.c: linked statically, a
 * program that calls no stats function would leave stats.o, and the
 * report with it, out of the link. */
__attribute__((destructor)) static void stats_at_exit(void)
{
	mems_stats_at_exit();
}

void mems_finish(void)
{
	mems_lock_take();
	if (mems_g.ready) {
		/* no new pin from here on; wait for the pinned */
		atomic_fetch_add(&generation, 1);
		while (atomic_load(&pinned))
			sched_yield();
		os_fd_close(mems_g.stats_fd);
		sm_stop_locked();
		purge_stop_locked();
		pager_stop(&mems_g.pg);
		trace_stop();
		fl_destroy(&mems_g.fl);
		tomb = mems_g.span;      /* none now: init dropped the last one */
		tomb_bytes = mems_g.span_size;
		if (os_rereserve(tomb, tomb_bytes) != 0)
			drop_tomb();
		memset(&mems_g, 0, sizeof mems_g);
	}
	init_failed = 0;
	mems_lock_drop();
}

/* ---------------------------------------------------------------------
 * Allocation, shared by the seed API and the pointer API (ptr.c)
 * ------------------------------------------------------------------- */

static uint64_t round_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

int mems_alloc_locked(uint64_t size, uint64_t align, uint64_t *offp, unsigned flags)
{
	mems_id s;
	return mems_alloc_seg_locked(size, align, offp, &s, flags);
}

/* The first offset at or after off whose real address is a multiple of
 * align */
static uint64_t align_real(uint64_t off, uint64_t align)
{
	uint64_t base = (uintptr_t)mems_g.span;
	return round_up(base + off, align) - base;
}

/* The bytes of a new node for need bytes (see internal.h) */
static uint64_t node_bytes(uint64_t need, unsigned flags)
{
	uint64_t bytes = round_up(need, MEMS_PAGE_SIZE);
	if (flags & MEMS_NODE_EXACT)
		return bytes;
	uint64_t least = mems_g.fl.committed / 8;
	least = least < (64 << 10) ? 64 << 10 : least > (4 << 20) ? 4 << 20 : least;
	least = round_up(least, MEMS_PAGE_SIZE);
	if (bytes < least && least <= mems_g.span_size - mems_g.fl.committed)
		bytes = least;
	return bytes;
}

int mems_alloc_seg_locked(uint64_t size, uint64_t align, uint64_t *offp, mems_id *segp,
			  unsigned flags)
{
	struct mems_fl *fl = &mems_g.fl;
	uint64_t at = 0;

	if (size > mems_g.span_size || align > mems_g.span_size)
		return ENOMEM;
	/* the lowest hole that fits; with alignment, one that fits once its
	 * start is rounded up (searching for size + align - 1 finds one).
	 * Alignment is of the real address: the span's start is aligned to
	 * SPAN_ALIGN at most (less when there was no room for the slack). */
	mems_id h = fl_find_fit(fl, size);
	if (h) {
		at = align_real(fl_seg(fl, h)->start, align);
		if (at + size > fl_seg(fl, h)->end)
			h = fl_find_fit(fl, size + align - 1);
		if (h)
			at = align_real(fl_seg(fl, h)->start, align);
	}
	int grew = 0;
	if (!h) {
		/* a new node of at least ceil(size / page) pages; node starts
		 * are aligned to the page, or to the span's start when that is
		 * less, so only larger alignments need more */
		uint64_t base = (uintptr_t)mems_g.span, g = base & -base;
		g = g < MEMS_PAGE_SIZE ? g : MEMS_PAGE_SIZE;
		uint64_t need = size + (align > g ? align - g : 0);
		uint64_t bytes = node_bytes(need, flags);
		uint64_t off = fl->committed;
		if (bytes > mems_g.span_size - off)
			return ENOMEM;
		if (pager_commit(&mems_g.pg, off, bytes) != 0)
			return ENOMEM;
		h = fl_add_node(fl, bytes);
		if (!h) {
			pager_uncommit(&mems_g.pg, off, bytes);
			return ENOMEM;
		}
		grew = 1;
		at = align_real(off, align);
	}
	mems_id s = fl_take_at(fl, h, at, size);
	if (!s) {
		if (grew) {
			uint64_t off = fl_seg(fl, h)->start, bytes = fl_seg(fl, h)->end - off;
			fl_drop_last_node(fl, h);
			pager_uncommit(&mems_g.pg, off, bytes);
		}
		return ENOMEM;
	}
	pager_mark_live(&mems_g.pg, at, size);
	*offp = at;
	*segp = s;
	return 0;
}

/* Zero [off, off+size), skipping whole pages that are not resident: the
 * pager will populate them with zeros. */
static void zero_block(uint64_t off, uint64_t size)
{
	uint64_t ps = os_page_size(), end = off + size;
	uint64_t lo = round_up(off, ps), hi = end / ps * ps;
	char *base = mems_g.span;

	if (lo >= hi) {
		memset(base + off, 0, size);
		return;
	}
	memset(base + off, 0, lo - off);
	for (uint64_t p = lo; p < hi; p += ps)
		if (!pager_page_fresh(&mems_g.pg, p / ps))
			memset(base + p, 0, ps);
	memset(base + hi, 0, end - hi);
}

int mems_fill_locked(uint64_t off, uint64_t size, int populate)
{
	if (mems_g.pg.mode == MEMS_PAGER_UFFD_USER)
		return pager_populate(&mems_g.pg, off, size);
	if (populate)
		mems_populate_locked(off, size);
	return 0;
}

int mems_ready_locked(uint64_t off, uint64_t size, int populate)
{
	int saved = errno;
	if (mems_fill_locked(off, size, populate) == 0)
		return 0;
	mems_diag("cannot populate %" PRIu64 " bytes: %s", size, mems_strerror(errno));
	mems_free_locked(fl_find_process(&mems_g.fl, off));
	errno = saved;
	return ENOMEM;
}

void mems_populate_locked(uint64_t off, uint64_t size)
{
	if (size > mems_g.populate_max)
		return;
	int saved = errno;
	pager_populate(&mems_g.pg, off, size);
	errno = saved;
}

unsigned mems_generation_locked(void)
{
	return atomic_load_explicit(&generation, memory_order_relaxed);
}

int mems_pin(unsigned gen)
{
	/* both sequentially consistent: either mems_finish's bump of the
	 * generation comes first and this sees it, or it sees this pin */
	atomic_fetch_add(&pinned, 1);
	if (atomic_load(&generation) == gen)
		return 1;
	atomic_fetch_sub(&pinned, 1);
	return 0;
}

void mems_unpin(void)
{
	atomic_fetch_sub_explicit(&pinned, 1, memory_order_release);
}

int mems_calloc_ready(uint64_t off, uint64_t size, unsigned gen)
{
	if (!mems_pin(gen))
		return -1;
	zero_block(off, size);
	mems_populate_locked(off, size);   /* the pin keeps the pager */
	mems_unpin();
	return 0;
}

/* Give back every OS page wholly inside hole h, and forget it is live. */
static void release_hole(mems_id h)
{
	uint64_t ps = os_page_size();
	uint64_t lo = round_up(fl_seg(&mems_g.fl, h)->start, ps);
	uint64_t hi = fl_seg(&mems_g.fl, h)->end / ps * ps;
	if (lo >= hi)
		return;
	if (mems_g.purge_delay_ns == 0) {
		pager_release(&mems_g.pg, lo, hi - lo);
		return;
	}
	/* free now, given back after the delay (purge.c) */
	pager_free_range(&mems_g.pg, lo, hi - lo);
	if (mems_g.purge_delay_ns > 0)
		purge_freed_locked();
}

void mems_free_locked(mems_id s)
{
	fl_seg(&mems_g.fl, s)->held = 0;
	/* the merged hole: the pages the segment shared with its neighbours
	 * may be wholly free now */
	release_hole(fl_free(&mems_g.fl, s));
}

int mems_shrink_locked(mems_id s, uint64_t size)
{
	mems_id h = fl_shrink(&mems_g.fl, s, size);
	if (!h)
		return -1;
	release_hole(h);
	return 0;
}

int mems_grow_locked(mems_id s, uint64_t size)
{
	uint64_t old_end = fl_seg(&mems_g.fl, s)->end;
	if (fl_grow(&mems_g.fl, s, size) != 0)
		return -1;
	pager_mark_live(&mems_g.pg, old_end, fl_seg(&mems_g.fl, s)->end - old_end);
	return 0;
}

const char *mems_classify_free(uint64_t off, mems_id *sp)
{
	*sp = 0;
	if (!mems_g.ready)
		return "MeMS is not initialised";
	if (off >= mems_g.fl.committed)
		return "not a MeMS address";
	mems_id s = fl_find_process(&mems_g.fl, off);
	if (!s)
		return "not allocated (double free?)";
	*sp = s;
	if (fl_seg(&mems_g.fl, s)->start != off)
		return "inside a segment, not its start";
	if (fl_seg(&mems_g.fl, s)->held)
		return "a run of small blocks, not a block";   /* see small.c */
	return NULL;
}

/* ---------------------------------------------------------------------
 * The seed API
 * ------------------------------------------------------------------- */

void *mems_malloc(size_t size)
{
	uint64_t off;
	int saved = errno;

	if (size == 0) {
		mems_g.failed_allocs++;
		errno = EINVAL;
		return NULL;
	}
	mems_lock_take();
	if (mems_init_locked() != 0) {
		mems_lock_drop();
		errno = ENOMEM;
		return NULL;
	}
	if (size > mems_g.span_size) {
		mems_g.failed_allocs++;
		mems_diag("mems_malloc(%zu): larger than the whole span (%" PRIu64 " bytes)",
			  size, mems_g.span_size);
		mems_lock_drop();
		mems_maybe_abort();
		errno = ENOMEM;
		return NULL;
	}
	int err = mems_alloc_locked(size, 1, &off, MEMS_NODE_EXACT);
	if (!err)
		err = mems_ready_locked(off, size, 0);
	mems_lock_drop();
	if (err) {
		mems_g.failed_allocs++;
		errno = err;
		return NULL;
	}
	errno = saved;
	return (void *)(uintptr_t)(MEMS_VIRTUAL_BASE + off);
}

/* Offset of MeMS virtual address v, or UINT64_MAX when v is not one. */
static uint64_t v_to_off(const void *v)
{
	uintptr_t a = (uintptr_t)v;
	return a < MEMS_VIRTUAL_BASE ? UINT64_MAX : a - MEMS_VIRTUAL_BASE;
}

void mems_free(void *v_ptr)
{
	mems_id s;

	if (!v_ptr)
		return;
	mems_lock_take();
	uint64_t off = v_to_off(v_ptr);
	const char *why = NULL;
	/* a block of the pointer API's runs (small.c), or a segment */
	int rc = sm_free_locked(off, &why, 1);
	if (rc > 0) {
		mems_lock_drop();
		return;
	}
	s = 0;
	if (rc == 0)
		why = mems_classify_free(off, &s);
	if (!why) {
		mems_free_locked(s);
		mems_lock_drop();
		return;
	}
	uint64_t seg_start = s ? fl_seg(&mems_g.fl, s)->start : 0;
	mems_lock_drop();
	mems_g.invalid_frees++;
	if (s)
		mems_diag("mems_free(%" PRIuPTR "): invalid pointer: %s starting at %" PRIu64,
			  (uintptr_t)v_ptr, why, MEMS_VIRTUAL_BASE + seg_start);
	else
		mems_diag("mems_free(%" PRIuPTR "): invalid pointer: %s", (uintptr_t)v_ptr, why);
	mems_maybe_abort();
}

void *mems_get(void *v_ptr)
{
	void *p = NULL;

	mems_lock_take();
	if (mems_g.ready) {
		uint64_t off = v_to_off(v_ptr);
		if (off < mems_g.fl.committed && fl_find_process(&mems_g.fl, off))
			p = mems_g.span + off;
	}
	mems_lock_drop();
	if (!p) {
		mems_g.invalid_gets++;
		if (opt_int(OPT_ABORT_ON_ERROR))
			mems_diag("mems_get(%" PRIuPTR "): not inside an allocated segment",
				  (uintptr_t)v_ptr);
		mems_maybe_abort();
		errno = EFAULT;
	}
	return p;
}
