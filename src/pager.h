/*
 * pager.h - userfaultfd pager: lazily populates committed span memory.
 */
#ifndef MEMS_PAGER_H
#define MEMS_PAGER_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "mems.h"

struct mems_pager {
	enum mems_pager_mode mode;
	char reason[160];
	int uffd;
	/* A page registered apart from the span, which only the handler can
	 * populate: mems_finish stops the handler by reading it (pager.c) */
	char *bell;
	_Atomic int stopping, handler_gone;
	pthread_t thread;
	int running;
	char *base;
	uint64_t span;             /* bytes */
	uint64_t ps;               /* OS page size */
	_Atomic uint64_t committed;/* bytes: the handler populates below this */
	_Atomic uint32_t window;   /* fault-around maximum, pages */
	uint64_t spin_ns;          /* read on this long after a batch */
	int thread_ids;            /* faults carry the faulting thread's id */
	/* fault-around streams, the handler's only: [start, end) populated */
	struct { uint64_t start, end; uint32_t win; } streams[4];
	unsigned next_stream;
	/* Protected by lock: the resident bitmap and the populate/release
	 * operations that keep it equal to what the kernel has.  (In kernel
	 * mode, where the kernel populates pages unseen: the free pages that
	 * may be resident, changed under the allocator lock too.) */
	pthread_mutex_t lock;
	uint64_t *resident;        /* a bit per OS page of the span */
	size_t resident_bytes;     /* each of the two bitmaps */
	/* A bit per OS page holding part of a PROCESS segment: set by the
	 * allocator (under the allocator lock), read by the handler, which
	 * never lets fault-around reach into wholly free pages. */
	_Atomic uint64_t *live;
	/* A bit per OS page found free but resident by the last purge scan
	 * (pager_purge_scan); under the allocator lock. */
	uint64_t *seen;
	void *zeros;               /* window pages of zeros, source of UFFDIO_COPY */
	size_t zeros_bytes;
	_Atomic uint64_t touched, faults, populated, released;
	_Atomic uint64_t prepopulated;  /* by pager_populate: no fault */
	_Atomic int error_reported, release_reported;
	/* The fault-ahead helper (pager.c): pages [ahead_lo, ahead_hi) are
	 * being populated by it (ahead_hi 0: none). */
	int ahead_on;              /* it runs (set before the handler starts) */
	int ahead_stop;            /* under ahead_mu */
	pthread_t ahead_thread;
	pthread_mutex_t ahead_mu;  /* after pg->lock */
	pthread_cond_t ahead_work, ahead_idle;
	_Atomic uint64_t ahead_lo, ahead_hi;
	_Atomic uint64_t ahead;    /* pages it populated */
	/* The resident cap (evict.c); NULL when there is none. */
	struct mems_evict *ev;
};

/* What the pager counts about eviction (all zero without a cap). */
struct pager_evict_counters {
	uint64_t cap;              /* pages */
	uint64_t evictions, page_ins, clean_drops, cancelled;
	uint64_t store_pages;      /* slots in use */
	uint64_t bytes_written, bytes_read, io_wait_ns;
	uint64_t store_errors;     /* pages whose write failed (kept resident) */
	uint64_t over_cap;         /* pages populated beyond the cap */
	int direct;                /* the store uses O_DIRECT */
	char store_where[256];
};

/* Choose a mode ("auto", "uffd", "uffd-user", "kernel") and start the pager
 * over [base, base+span).  On failure -1 with errno and pg->reason says why. */
struct pager_config {
	const char *mode;          /* auto, uffd, uffd-user, kernel */
	uint32_t window, spin_us;
	uint64_t cap;              /* resident cap in bytes, 0 for none */
	const char *swap;          /* MEMS_SWAP_FILE */
	int fifo;                  /* MEMS_EVICT_POLICY=fifo (else CLOCK) */
	int ahead;                 /* MEMS_FAULT_AHEAD: the helper thread */
};
int pager_start(struct mems_pager *pg, const struct pager_config *cf, char *base,
		uint64_t span);
void pager_stop(struct mems_pager *pg);

/* Take pg->lock once nothing is in flight for the fault-ahead helper:
 * the bitmap and the counters are then exact.  Every path but the
 * handler's and the evictor's (which runs only with a cap, when there is
 * no helper) takes the lock through this. */
void pager_lock(struct mems_pager *pg);

/* Commit [off, off+len) read/write; the pager may populate it from now on. */
int pager_commit(struct mems_pager *pg, uint64_t off, uint64_t len);
/* Undo the last commit of [off, off+len) (nothing in it was handed out). */
void pager_uncommit(struct mems_pager *pg, uint64_t off, uint64_t len);
/* The OS pages overlapping [off, off+len) now belong to a segment. */
void pager_mark_live(struct mems_pager *pg, uint64_t off, uint64_t len);
/* Give back the pages of [off, off+len) (page aligned), now wholly free. */
void pager_release(struct mems_pager *pg, uint64_t off, uint64_t len);
/* The first step only, for a purge delay: the pages are free now (not
 * live; their store slots freed), and are given back later by
 * pager_purge_scan(), which spares pages that have become live again. */
void pager_free_range(struct mems_pager *pg, uint64_t off, uint64_t len);
/* Page i overlaps a live segment.  The allocator writes the live bits
 * under its own lock, not pg->lock, so they are read atomically. */
static inline int pager_live_get(const struct mems_pager *pg, uint64_t i)
{
	return (atomic_load_explicit(&pg->live[i / 64], memory_order_acquire) >> (i % 64)) & 1;
}
/* Give back the resident pages of [lo, hi) (page numbers) that are not
 * live (pg->lock held); counted as released.  The purge scan's, and the
 * evictor's for the free pages a purge delay keeps (evict.c). */
void pager_purge_locked(struct mems_pager *pg, uint64_t lo, uint64_t hi);
/* Under the allocator lock, once per purge delay (purge.c): give back the
 * pages found free but resident by the last scan too, and remember the
 * ones found so now.  A page allocated meanwhile (pager_mark_live) starts
 * afresh.  Returns how many pages wait for the next scan. */
uint64_t pager_purge_scan(struct mems_pager *pg);
/* Under the allocator lock: give back every page that is free but
 * resident now, whatever the delay (malloc_trim).  Returns how many went. */
uint64_t pager_purge_now(struct mems_pager *pg);
/* Populate every missing page over [off, off+len) now, from the calling
 * thread (user-mode-only mode, where the kernel cannot fault them in for a
 * system call; MEMS_POPULATE, where a fault's round trip costs more than
 * the ioctl).  Counted in prepopulated, traced as TRACE_ALLOC. */
int pager_populate(struct mems_pager *pg, uint64_t off, uint64_t len);
/* OS page pi is known not to be resident (it will read as zero when first
 * touched).  Only meaningful for a page inside a live block. */
int pager_page_fresh(struct mems_pager *pg, uint64_t pi);
/* Resident pages of the committed span, and the event counters. */
void pager_counters(struct mems_pager *pg, uint64_t *touched, uint64_t *faults,
		    uint64_t *populated, uint64_t *released, uint64_t *prepopulated,
		    uint64_t *ahead);

void pager_evict_counters(struct mems_pager *pg, struct pager_evict_counters *c);

/* Around fork(): with a cap, every evicted page is read back in before
 * fork (the cap may be exceeded then) and eviction pauses until after. */
void pager_fork_prepare(struct mems_pager *pg);
void pager_fork_parent(struct mems_pager *pg);
/* In the child of fork(): no handler thread and no registration. */
void pager_fork_child(struct mems_pager *pg);

const char *pager_mode_name(enum mems_pager_mode m);

/* The calling thread is the fault handler (which must never allocate). */
extern __thread int pager_in_handler_ __attribute__((tls_model("initial-exec")));
static inline int pager_in_handler(void)
{
	return pager_in_handler_;
}

#endif
