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
	struct mems_fl fl;     /* under mems_lock */
	struct mems_pager pg;
	_Atomic uint64_t invalid_frees, invalid_gets, failed_allocs;
	int stats_fd;          /* MEMS_STATS_ON_EXIT: a copy of stderr, or -1 */
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

/* Outside mems_lock, on a block just allocated: zero it if asked (sparing
 * pages the pager will populate with zeros) and populate it in uffd-user
 * mode.  0, or -1 with errno = ENOMEM (the block is freed). */
/* MEMS_POPULATE: populate [off, off+size), a block or run just allocated
 * (or grown) by the pointer API, from this thread if it is small enough.
 * Best effort: what it cannot populate is faulted in as usual.  Under
 * mems_lock (an ioctl: no user page is touched, the handler is never
 * waited for), so that a concurrent mems_finish cannot unmap the pager
 * meanwhile; mems_populate_block takes the lock itself, and does nothing
 * if MeMS was finished (and perhaps started again: mems_generation, under
 * mems_lock, counts the inits) since the block was allocated. */
void mems_populate_locked(uint64_t off, uint64_t size);
void mems_populate_block(uint64_t off, uint64_t size, unsigned gen);
extern unsigned mems_generation;
int mems_block_ready(uint64_t off, uint64_t size, int zero);

void mems_maybe_abort(void);

/* mems_check() under mems_lock: 0, or -1 with the first problem in why. */
int mems_check_locked(char *why, size_t len);

#endif
