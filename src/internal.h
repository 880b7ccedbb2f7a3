/*
 * internal.h - the state shared by the entry points (mems.c) and the
 * stats (stats.c).
 */
#ifndef MEMS_INTERNAL_H
#define MEMS_INTERNAL_H
#include <pthread.h>
#include <stdatomic.h>

#include "freelist.h"
#include "mems.h"
#include "pager.h"


struct mems_state {
	int ready;             /* initialised and usable */
	char *span;            /* the reserved span */
	uint64_t span_size;
	uint64_t span_asked;   /* MEMS_SPAN_SIZE or its default: span_size
				* is less when the default did not fit */
	struct mems_fl fl;     /* under mems_lock */
	struct mems_pager pg;
	_Atomic uint64_t invalid_frees, invalid_gets, failed_allocs;
	int stats_fd;          /* MEMS_STATS_ON_EXIT: a copy of stderr (noted,
				* span.h), or -1 */
	/* MEMS_PURGE_DELAY: wholly free pages are given back one to two times
	 * this long after they became free (0 at once, -1 never; purge.c) */
	int64_t purge_delay_ns;
	/* MEMS_POPULATE: pointer-API blocks and runs of up to this many bytes
	 * are populated by the allocating thread (uffd mode without a cap
	 * only; else 0) */
	uint64_t populate_max;
};

/* The allocator lock: protects mems_g.ready, .span and .fl.  Taken before
 * pg.lock (see pager.c), never by the fault handler. */
extern pthread_mutex_t mems_lock;
extern struct mems_state mems_g;

/* MEMS_STATS_ON_EXIT's report (stats.c), for the destructor in mems.c */
void mems_stats_at_exit(void);
/* The stats block, written to fd (write(2); nothing allocated). */
void mems_stats_to_fd(int fd);
/* The holes by size class, class k holding sizes from 2^k to 2^(k+1) - 1:
 * how many, their bytes, the smallest and the largest (0 when empty). */
struct mems_hole_class {
	uint64_t count, bytes, min, max;
};
/* The stats and the holes' classes in one snapshot (malloc_info);
 * linear in the segments. */
void mems_stats_holes(struct mems_stats *st, struct mems_hole_class cls[64]);

void mems_lock_take(void);
void mems_lock_drop(void);
/* This thread holds mems_lock (a call from libc inside our own). */
extern __thread int mems_lock_held_ __attribute__((tls_model("initial-exec")));
static inline int mems_lock_held(void)
{
	return mems_lock_held_;
}
/* Take mems_lock if it is free: 1, else 0. */
int mems_lock_try(void);

/* Under mems_lock: */
int mems_init_locked(void);                     /* 0, or -1 with errno */
/* Carve size bytes aligned to align out of the list: 0 and *off, or an
 * errno value.  When no hole fits, a new main node is appended: of exactly
 * the pages needed with MEMS_NODE_EXACT (the seed API's rule), else of at
 * least an eighth of the committed span (64 KiB to 4 MiB; the rest a
 * HOLE), so that a growing heap takes few nodes and mprotect calls. */
#define MEMS_NODE_EXACT 1
int mems_alloc_locked(uint64_t size, uint64_t align, uint64_t *off, unsigned flags);
/* The same, also giving the segment. */
int mems_alloc_seg_locked(uint64_t size, uint64_t align, uint64_t *off, mems_id *seg,
			  unsigned flags);
void mems_free_locked(mems_id seg);
int mems_shrink_locked(mems_id seg, uint64_t size);   /* 0, or -1 */
int mems_grow_locked(mems_id seg, uint64_t size);     /* 0, or -1 */
/* Why freeing span offset off is invalid (NULL when it is fine); *seg is
 * the PROCESS segment containing off, if any. */
const char *mems_classify_free(uint64_t off, mems_id *seg);

/* Under mems_lock, on [off, off+size) just allocated or grown (a block, a
 * run): populate all of it in uffd-user mode, where a system call writing
 * into a missing page cannot fault it in (0, or -1 with errno and the
 * caller undoes the allocation), else (if populate) as MEMS_POPULATE
 * says, best effort (0). */
int mems_fill_locked(uint64_t off, uint64_t size, int populate);
/* mems_fill_locked for a block just allocated: 0, or ENOMEM with the block
 * freed and a diagnostic (failed_allocs is the caller's to count). */
int mems_ready_locked(uint64_t off, uint64_t size, int populate);
/* MEMS_POPULATE: populate [off, off+size), a block or run just allocated
 * (or grown) by the pointer API, from this thread if it is small enough.
 * Best effort: what it cannot populate is faulted in as usual.  An ioctl
 * (no user page is touched, the handler is never waited for), called
 * under mems_lock or pinned, so that mems_finish cannot unmap the pager
 * meanwhile. */
void mems_populate_locked(uint64_t off, uint64_t size);
/* Pins: work on a block outside mems_lock (calloc's zeroing, realloc's
 * copy).  Read the generation under mems_lock when the block is
 * allocated; mems_pin(gen) fails (0) if MeMS was finished since, else
 * mems_finish waits for the mems_unpin().  Nothing done pinned may wait
 * for mems_lock. */
unsigned mems_generation_locked(void);
int mems_pin(unsigned gen);
void mems_unpin(void);
/* calloc's block, allocated in generation gen: zero what may hold old
 * data (pages the pager has not populated will be populated with zeros),
 * then populate it as MEMS_POPULATE says.  0, or -1 if MeMS was finished
 * meanwhile. */
int mems_calloc_ready(uint64_t off, uint64_t size, unsigned gen);

void mems_maybe_abort(void);

/* mems_check() under mems_lock: 0, or -1 with the first problem in why. */
int mems_check_locked(char *why, size_t len);

#endif
