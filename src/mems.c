/*
 * mems.c - the entry points: init and finish, the allocator lock,
 * translation between MeMS virtual addresses and real pointers, bad input.
 *
 * A MeMS virtual address is MEMS_VIRTUAL_BASE + the offset into the span;
 * the real pointer is span + offset.  Both ways are arithmetic.
 *
 * Locking: one allocator lock (mems_lock) serialises the free list and
 * init/finish.  The pager has its own lock, taken after this one, and the
 * fault handler takes only that.  No user page is touched while mems_lock
 * is held: pre-population in user-mode-only mode runs after it is dropped,
 * on a segment that is already ours.
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
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "internal.h"
#include "options.h"
#include "span.h"

_Static_assert(MEMS_PAGE_SIZE >= 4096 && MEMS_PAGE_SIZE % 4096 == 0,
	       "MEMS_PAGE_SIZE must be a multiple of 4096 (and of the OS page size)");

pthread_mutex_t mems_lock = PTHREAD_MUTEX_INITIALIZER;
struct mems_state mems_g;
/* The last initialisation failed: lazy initialisation (mems_malloc) does
 * not retry, and say so, on every call; mems_init() and mems_finish() do. */
static int init_failed;

/* ---------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------- */

static void maybe_abort(void)
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
	pthread_mutex_lock(&mems_lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&mems_lock);
}

static void fork_child(void)
{
	if (mems_g.ready)
		pager_fork_child(&mems_g.pg);
	pthread_mutex_unlock(&mems_lock);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---------------------------------------------------------------------
 * Init and finish
 * ------------------------------------------------------------------- */

static int init_locked(void)
{
	if (mems_g.ready)
		return 0;
	if (init_failed) {
		errno = ENOMEM;
		return -1;
	}
	pthread_once(&atfork_once, register_atfork);
	opts_load();

	size_t ps = os_page_size();
	if (MEMS_PAGE_SIZE % ps != 0) {
		mems_diag("MEMS_PAGE_SIZE %d is not a multiple of the OS page size %zu",
			  MEMS_PAGE_SIZE, ps);
		init_failed = 1;
		errno = EINVAL;
		return -1;
	}
	uint64_t span = (uint64_t)opt_int(OPT_SPAN_SIZE) / MEMS_PAGE_SIZE * MEMS_PAGE_SIZE;
	memset(&mems_g, 0, sizeof mems_g);
	mems_g.span = os_reserve(span);
	if (!mems_g.span) {
		int e = errno;
		mems_diag("cannot reserve a span of %" PRIu64 " bytes: %s", span, strerror(e));
		init_failed = 1;
		errno = e;
		return -1;
	}
	mems_g.span_size = span;
	if (fl_init(&mems_g.fl, span, MEMS_PAGE_SIZE) != 0) {
		mems_diag("cannot map the free list's metadata");
		goto fail;
	}
	if (pager_start(&mems_g.pg, opt_choice(OPT_PAGER), mems_g.span, span,
			(uint32_t)opt_int(OPT_FAULT_AROUND),
			(uint32_t)opt_int(OPT_HANDLER_SPIN)) != 0) {
		mems_diag("no pager: %s", mems_g.pg.reason);
		goto fail;
	}
	mems_g.ready = 1;
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
	pthread_mutex_lock(&mems_lock);
	init_failed = 0;
	int rc = init_locked();
	pthread_mutex_unlock(&mems_lock);
	return rc;
}

void mems_init(void)
{
	(void)mems_try_init();
}

void mems_finish(void)
{
	pthread_mutex_lock(&mems_lock);
	if (mems_g.ready) {
		pager_stop(&mems_g.pg);
		fl_destroy(&mems_g.fl);
		os_unmap(mems_g.span, mems_g.span_size);
		memset(&mems_g, 0, sizeof mems_g);
	}
	init_failed = 0;
	pthread_mutex_unlock(&mems_lock);
}

/* ---------------------------------------------------------------------
 * Allocation
 * ------------------------------------------------------------------- */

void *mems_malloc(size_t size)
{
	if (size == 0) {
		mems_g.failed_allocs++;
		errno = EINVAL;
		return NULL;
	}
	pthread_mutex_lock(&mems_lock);
	if (init_locked() != 0) {
		pthread_mutex_unlock(&mems_lock);
		errno = ENOMEM;
		return NULL;
	}
	struct mems_fl *fl = &mems_g.fl;
	if (size > mems_g.span_size) {
		pthread_mutex_unlock(&mems_lock);
		mems_g.failed_allocs++;
		mems_diag("mems_malloc(%zu): larger than the whole span (%" PRIu64 " bytes)",
			  size, mems_g.span_size);
		maybe_abort();
		errno = ENOMEM;
		return NULL;
	}
	mems_id h = fl_find_fit(fl, size);
	int grew = 0;
	if (!h) {
		uint64_t bytes = (size + MEMS_PAGE_SIZE - 1) / MEMS_PAGE_SIZE * MEMS_PAGE_SIZE;
		uint64_t off = fl->committed;
		if (bytes > mems_g.span_size - off)
			goto nomem;
		if (pager_commit(&mems_g.pg, off, bytes) != 0)
			goto nomem;
		h = fl_add_node(fl, bytes);
		if (!h) {
			pager_uncommit(&mems_g.pg, off, bytes);
			goto nomem;
		}
		grew = 1;
	}
	mems_id s = fl_take(fl, h, size);
	if (!s) {
		if (grew) {
			uint64_t off = fl_seg(fl, h)->start, bytes = fl_seg(fl, h)->end - off;
			fl_drop_last_node(fl, h);
			pager_uncommit(&mems_g.pg, off, bytes);
		}
		goto nomem;
	}
	uint64_t off = fl_seg(fl, s)->start;
	pager_mark_live(&mems_g.pg, off, size);
	int prepopulate = mems_g.pg.mode == MEMS_PAGER_UFFD_USER;
	pthread_mutex_unlock(&mems_lock);

	if (prepopulate && pager_populate(&mems_g.pg, off, size) != 0) {
		int e = errno;
		mems_diag("mems_malloc(%zu): cannot populate: %s", size, strerror(e));
		mems_free((void *)(uintptr_t)(MEMS_VIRTUAL_BASE + off));
		mems_g.failed_allocs++;
		errno = ENOMEM;
		return NULL;
	}
	return (void *)(uintptr_t)(MEMS_VIRTUAL_BASE + off);

nomem:
	pthread_mutex_unlock(&mems_lock);
	mems_g.failed_allocs++;
	errno = ENOMEM;
	return NULL;
}

/* Offset of MeMS virtual address v, or UINT64_MAX when v is not one. */
static uint64_t v_to_off(const void *v)
{
	uintptr_t a = (uintptr_t)v;
	if (a < MEMS_VIRTUAL_BASE || a - MEMS_VIRTUAL_BASE >= mems_g.fl.committed)
		return UINT64_MAX;
	return a - MEMS_VIRTUAL_BASE;
}

void mems_free(void *v_ptr)
{
	if (!v_ptr)
		return;
	pthread_mutex_lock(&mems_lock);
	const char *why = NULL;
	uint64_t off = mems_g.ready ? v_to_off(v_ptr) : UINT64_MAX;
	mems_id s = off == UINT64_MAX ? 0 : fl_find_process(&mems_g.fl, off);
	uint64_t seg_start = s ? fl_seg(&mems_g.fl, s)->start : 0;

	if (!mems_g.ready)
		why = "MeMS is not initialised";
	else if (off == UINT64_MAX)
		why = "not a MeMS address";
	else if (!s)
		why = "not allocated (double free?)";
	else if (seg_start != off)
		why = "inside a segment, not its start";
	if (why) {
		pthread_mutex_unlock(&mems_lock);
		mems_g.invalid_frees++;
		if (s)
			mems_diag("mems_free(%" PRIuPTR "): invalid pointer: %s starting at %" PRIu64,
				  (uintptr_t)v_ptr, why, MEMS_VIRTUAL_BASE + seg_start);
		else
			mems_diag("mems_free(%" PRIuPTR "): invalid pointer: %s",
				  (uintptr_t)v_ptr, why);
		maybe_abort();
		return;
	}

	struct mems_fl *fl = &mems_g.fl;
	mems_id h = fl_free(fl, s);
	/* Give back every OS page wholly inside the merged hole: the pages the
	 * freed segment shared with its neighbours, and any that fault-around
	 * populated in the neighbouring holes. */
	uint64_t ps = os_page_size();
	uint64_t lo = (fl_seg(fl, h)->start + ps - 1) / ps * ps;
	uint64_t hi = fl_seg(fl, h)->end / ps * ps;
	if (lo < hi)
		pager_release(&mems_g.pg, lo, hi - lo);
	pthread_mutex_unlock(&mems_lock);
}

void *mems_get(void *v_ptr)
{
	void *p = NULL;

	pthread_mutex_lock(&mems_lock);
	if (mems_g.ready) {
		uint64_t off = v_to_off(v_ptr);
		if (off != UINT64_MAX && fl_find_process(&mems_g.fl, off))
			p = mems_g.span + off;
	}
	pthread_mutex_unlock(&mems_lock);
	if (!p) {
		mems_g.invalid_gets++;
		if (opt_int(OPT_ABORT_ON_ERROR))
			mems_diag("mems_get(%" PRIuPTR "): not inside an allocated segment",
				  (uintptr_t)v_ptr);
		maybe_abort();
		errno = EFAULT;
	}
	return p;
}
