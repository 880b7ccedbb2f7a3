/*
 * ptr.c - the pointer API: malloc-style functions that hand out real
 * pointers.
 *
 * A thin layer over the same free list as the seed API: every block is a
 * PROCESS segment of the 2-D list and shows in the stats.  Sizes are
 * rounded up to 16 bytes and blocks aligned to 16, so that blocks allocated
 * here keep each other aligned; larger alignments are carved out of a hole
 * with the padding before them left as a hole.
 *
 * realloc grows in place into the hole after a block when it can, shrinks
 * in place always, and otherwise copies, outside the allocator lock.
 * calloc zeroes only what may hold old data: pages the pager has not
 * populated yet will be populated with zeros.  Both copy and zeroing run
 * pinned (mems_pin), so another thread's mems_finish waits for them.
 *
 * Small blocks (up to SM_MAX_SIZE) come from runs when runs are on
 * (small.c): PROCESS segments of the list cut into blocks of one size,
 * allocated and freed without the allocator lock.
 *
 * A call that reaches here while this thread holds the allocator lock
 * (libc allocating inside one of our own calls) is served from the
 * bootstrap arena (boot.c); frees and lookups then work on the list
 * without taking the lock again.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "boot.h"
#include "diag.h"
#include "internal.h"
#include "options.h"
#include "small.h"

#define GRAIN 16u

static uint64_t grain(size_t size)
{
	return size ? ((uint64_t)size + GRAIN - 1) / GRAIN * GRAIN : GRAIN;
}

static void *failed(int err)
{
	mems_g.failed_allocs++;
	errno = err;
	return NULL;
}

/* The block is allocated and ready (errno as it was), or NULL with errno. */
static void *alloc(size_t size, size_t align, int zero)
{
	uint64_t off;
	int saved = errno;      /* initialisation tries things that fail */

	if (pager_in_handler()) {
		/* a fault that needed the handler would wait for itself */
		mems_diag("the fault handler thread called malloc: aborting");
		abort();
	}
	if (mems_lock_held())
		return boot_alloc(size, align);
	if (align <= GRAIN) {
		void *p = sm_malloc(size, zero);
		if (p)
			return p;
	}
	if (size > SIZE_MAX - GRAIN)
		return failed(ENOMEM);
	int runs_tried = 0;
again:
	mems_lock_take();
	int was_ready = mems_g.ready;
	if (mems_init_locked() != 0) {
		mems_lock_drop();
		return failed(ENOMEM);
	}
	if (!was_ready && !runs_tried && align <= GRAIN) {
		/* this call initialised MeMS: the runs are there now */
		mems_lock_drop();
		void *p = sm_malloc(size, zero);
		if (p) {
			errno = saved;
			return p;
		}
		runs_tried = 1;
		goto again;     /* another thread may have finished MeMS meanwhile */
	}
	int err = mems_alloc_locked(grain(size), align < GRAIN ? GRAIN : align, &off, 0);
	if (!err)       /* calloc's block is populated after its zeroing */
		err = mems_ready_locked(off, grain(size), !zero);
	unsigned gen = mems_generation_locked();
	char *p = err ? NULL : mems_g.span + off;
	mems_lock_drop();
	if (err)
		return failed(err);
	/* MeMS finished by another thread meanwhile: as a call after it */
	if (zero && mems_calloc_ready(off, grain(size), gen) != 0)
		goto again;
	errno = saved;
	return p;
}

void *mems_ptr_malloc(size_t size)
{
	return alloc(size, GRAIN, 0);
}

void *mems_ptr_calloc(size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total))
		return failed(ENOMEM);
	return alloc(total, GRAIN, 1);
}

void *mems_ptr_aligned(size_t align, size_t size)
{
	if (align == 0 || (align & (align - 1))) {
		errno = EINVAL;
		return NULL;
	}
	return alloc(size, align, 0);
}

/* Take the allocator lock unless this thread holds it already: libc may
 * free or resize what it allocated earlier while we are inside one of our
 * own calls (creating the handler thread); the free list is consistent at
 * those points.  Returns whether it took the lock. */
static int lock(void)
{
	if (mems_lock_held())
		return 0;
	mems_lock_take();
	return 1;
}

static void unlock(int took)
{
	if (took)
		mems_lock_drop();
}

/* Span offset of real pointer p, or UINT64_MAX when p is outside the span. */
static uint64_t p_to_off(const void *p)
{
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)mems_g.span;
	return mems_g.ready && a >= b && a - b < mems_g.span_size ? a - b : UINT64_MAX;
}

static void bad_free(const char *fn, const void *p, const char *why)
{
	mems_g.invalid_frees++;
	mems_diag("%s(%p): invalid pointer: %s", fn, p, why);
	mems_maybe_abort();
}

void mems_ptr_free(void *p)
{
	mems_id s;

	if (!p || boot_owns(p))
		return;
	const char *why = NULL;
	int rc = mems_lock_held() ? 0 : sm_free(p, &why);   /* keeps errno */
	if (rc > 0)
		return;
	int saved = errno;      /* free never changes errno (POSIX 2024) */
	if (rc == 0) {
		int took = lock();
		uint64_t off = p_to_off(p);
		rc = sm_free_locked(off, &why, took);
		if (rc == 0) {
			why = mems_classify_free(off, &s);
			if (!why)
				mems_free_locked(s);
		}
		unlock(took);
	}
	if (why)
		bad_free("free", p, why);
	errno = saved;
}

size_t mems_ptr_usable_size(const void *p)
{
	mems_id s;
	size_t n = 0;

	if (!p)
		return 0;
	if (boot_owns(p))
		return boot_size(p);
	const char *why;
	int took = lock();
	uint64_t off = p_to_off(p);
	size_t small = sm_block_size_locked(off, &why);
	if (small)
		n = small == SIZE_MAX ? 0 : small;
	else if (!mems_classify_free(off, &s))
		n = fl_seg(&mems_g.fl, s)->end - fl_seg(&mems_g.fl, s)->start;
	unlock(took);
	return n;
}

/* realloc's copy from p, a block of generation gen, is done pinned: 0
 * when pinned, else (MeMS was finished by another thread meanwhile, and p
 * with it) q is freed and p diagnosed as a stale pointer would be. */
static int finished_during(void *p, void *q, unsigned gen)
{
	if (mems_pin(gen))
		return 0;
	mems_ptr_free(q);
	bad_free("realloc", p, "MeMS was finished during the call");
	errno = EINVAL;
	return 1;
}

void *mems_ptr_realloc(void *p, size_t size)
{
	mems_id s;

	if (!p)
		return mems_ptr_malloc(size);
	if (size == 0) {                 /* glibc: frees and returns NULL */
		mems_ptr_free(p);
		return NULL;
	}
	if (boot_owns(p)) {
		void *q = mems_ptr_malloc(size);
		if (q)
			memcpy(q, p, boot_size(p) < size ? boot_size(p) : size);
		return q;
	}
	if (mems_lock_held()) {
		/* libc resizing from inside one of our calls: move the block to
		 * the bootstrap arena */
		size_t have = mems_ptr_usable_size(p);
		void *q = boot_alloc(size, GRAIN);
		if (q) {
			memcpy(q, p, have < size ? have : size);
			mems_ptr_free(p);
		}
		return q;
	}
	if (size > SIZE_MAX - GRAIN)
		return failed(ENOMEM);
	uint64_t want = grain(size);
	int saved = errno;
	mems_lock_take();
	uint64_t off = p_to_off(p);
	const char *why = NULL;
	size_t small = sm_block_size_locked(off, &why);
	unsigned gen = mems_generation_locked();
	if (small && small != SIZE_MAX) {
		/* a block of a run keeps its size class: move it */
		mems_lock_drop();
		if (want <= small) {
			errno = saved;
			return p;
		}
		void *q = mems_ptr_malloc(size);
		if (q && !finished_during(p, q, gen)) {
			memcpy(q, p, small);
			mems_unpin();
			mems_ptr_free(p);
			return q;
		}
		return NULL;
	}
	if (!small)
		why = mems_classify_free(off, &s);
	if (why) {
		mems_lock_drop();
		bad_free("realloc", p, why);
		errno = EINVAL;
		return NULL;
	}
	uint64_t have = fl_seg(&mems_g.fl, s)->end - off;
	if (want <= have) {
		if (want < have)
			mems_shrink_locked(s, want);      /* on failure it just stays */
		mems_lock_drop();
		errno = saved;
		return p;
	}
	if (mems_grow_locked(s, want) == 0) {
		if (mems_fill_locked(off + have, want - have, want <= mems_g.populate_max) != 0) {
			/* the kernel is out of memory: give the growth back */
			mems_diag("cannot populate %" PRIu64 " bytes: %s", want - have,
				  mems_strerror(errno));
			mems_shrink_locked(s, have);
			mems_lock_drop();
			return failed(ENOMEM);
		}
		mems_lock_drop();
		errno = saved;
		return p;
	}
	uint64_t noff;
	int err = mems_alloc_locked(want, GRAIN, &noff, 0);
	if (!err)
		err = mems_ready_locked(noff, want, 1);
	char *q = err ? NULL : mems_g.span + noff;
	mems_lock_drop();
	if (err)
		return failed(err);
	if (finished_during(p, NULL, gen))
		return NULL;
	memcpy(q, p, have);
	mems_unpin();
	mems_ptr_free(p);
	errno = saved;
	return q;
}

void *mems_ptr_to_virtual(const void *p)
{
	uint64_t off = UINT64_MAX;

	int took = lock();
	uint64_t o = p_to_off(p);
	if (o < mems_g.fl.committed && fl_find_process(&mems_g.fl, o))
		off = o;
	unlock(took);
	if (off == UINT64_MAX) {
		errno = EFAULT;
		return NULL;
	}
	return (void *)(uintptr_t)(MEMS_VIRTUAL_BASE + off);
}
