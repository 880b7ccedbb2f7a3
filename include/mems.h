/*
 * mems.h - MeMS: a memory manager that is also a userspace pager.
 *
 * The first part is the API of the MeMS assignment, unchanged: a program
 * written against the assignment compiles and runs with this header.  MeMS
 * virtual addresses start at 1000 and are translated to real pointers with
 * mems_get().  Under it, memory lives in one large span of address space
 * registered with userfaultfd: pages are populated lazily on first touch by
 * a fault-handler thread, and pages that become wholly free are given back.
 *
 * The second part is the extended API: options, machine-readable stats.
 * See README.md for the whole story.
 */
#ifndef MEMS_H
#define MEMS_H

/* The assignment's header pulled these in; programs written against it rely
 * on them (its example calls printf without including stdio.h). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MEMS_API __attribute__((visibility("default")))
#else
#define MEMS_API
#endif

/* MeMS page size: the unit of main nodes.  Set at build time
 * (make MEMS_PAGE_SIZE=N); a power of two, at least the OS page size. */
#ifndef MEMS_PAGE_SIZE
#define MEMS_PAGE_SIZE 4096
#endif
#ifndef PAGE_SIZE
#define PAGE_SIZE MEMS_PAGE_SIZE
#endif

/* MeMS virtual address of the first byte of the first main node. */
#define MEMS_VIRTUAL_BASE 1000

/* ------------------------------------------------------------------------
 * Seed API (the assignment's six functions)
 * ---------------------------------------------------------------------- */

/* Reserve the span, start the pager.  A second call while initialised is a
 * no-op.  Failure is reported on stderr; calls that need MeMS then fail
 * cleanly (mems_malloc returns NULL with errno set). */
MEMS_API void mems_init(void);

/* Stop the pager, give back the span and every piece of metadata.
 * mems_init() afterwards starts afresh.  No-op when not initialised. */
MEMS_API void mems_finish(void);

/* Allocate size bytes; returns a MeMS virtual address (>= 1000), or NULL
 * with errno = ENOMEM (span exhausted, or size larger than the span) or
 * EINVAL (size 0).  Initialises MeMS lazily when called first. */
MEMS_API void *mems_malloc(size_t size);

/* Free the segment that starts at MeMS virtual address v_ptr.  NULL is a
 * no-op.  Anything else that is not the start of an allocated segment
 * (double free, interior or foreign address) is a no-op with a one-line
 * diagnostic on stderr and a count in the stats. */
MEMS_API void mems_free(void *v_ptr);

/* Translate a MeMS virtual address anywhere inside an allocated segment to
 * a real pointer.  NULL with errno = EFAULT for anything else. */
MEMS_API void *mems_get(void *v_ptr);

/* Print the 2-D free list and the counters to stdout. */
MEMS_API void mems_print_stats(void);

/* ------------------------------------------------------------------------
 * Extended API
 * ---------------------------------------------------------------------- */

/* mems_init() that tells whether it worked: 0, or -1 with errno. */
MEMS_API int mems_try_init(void);

/* Options.  Each has a MEMS_<NAME> environment variable, read at
 * initialisation; a value set here wins over the environment.  Names are
 * given without the MEMS_ prefix, case-insensitively ("span_size").
 * Returns 0, or -1 with errno = ENOENT (unknown name) or EINVAL (malformed
 * value; a message says why).  Options marked "init" in README take effect
 * at the next mems_init(). */
MEMS_API int mems_option_set(const char *name, const char *value);

/* Current value of an option, rendered as text into buf.  Returns the
 * length it needed (like snprintf), or -1 with errno = ENOENT. */
MEMS_API int mems_option_get(const char *name, char *buf, size_t len);

/* Forget every value set through mems_option_set(). */
MEMS_API void mems_option_reset(void);

enum mems_pager_mode {
	MEMS_PAGER_NONE = 0,   /* not initialised */
	MEMS_PAGER_UFFD,       /* full userfaultfd: every fault goes to the handler */
	MEMS_PAGER_UFFD_USER,  /* user-mode-only userfaultfd: memory populated at allocation */
	MEMS_PAGER_KERNEL,     /* the kernel's own demand paging */
};

struct mems_stats {
	/* the seed lines */
	uint64_t page_size;        /* MeMS page size */
	uint64_t pages_used;       /* MeMS pages in main nodes ("Pages used") */
	uint64_t main_nodes;       /* main chain length */
	uint64_t segments;         /* sum of sub-chain lengths */
	uint64_t process_segments;
	uint64_t hole_segments;
	uint64_t bytes_in_use;     /* bytes in PROCESS segments */
	uint64_t bytes_in_holes;   /* bytes in HOLE segments ("Space unused") */
	/* the pager (in OS pages) */
	uint64_t os_page_size;
	uint64_t pages_mapped;     /* committed (read/write) pages */
	uint64_t pages_touched;    /* resident pages: populated and not released */
	/* the next three are 0 in kernel mode, where the kernel populates
	 * pages without MeMS seeing it (pages_touched is mincore(2) there) */
	uint64_t faults;           /* faults resolved by the handler */
	uint64_t pages_populated;  /* pages populated (faults, fault-around, fault-ahead, pre-population) */
	uint64_t pages_released;   /* pages given back on free */
	uint64_t span_size;        /* bytes reserved */
	/* errors */
	uint64_t invalid_frees;    /* double, interior, unknown frees */
	uint64_t invalid_gets;     /* mems_get outside a PROCESS segment */
	uint64_t failed_allocs;    /* mems_malloc that returned NULL */
	uint64_t errors;           /* sum of the three */
	enum mems_pager_mode mode;
	char mode_name[16];        /* "uffd", "uffd-user", "kernel", "none" */
	char mode_reason[160];     /* how the mode was chosen */
	/* the resident cap (MEMS_RESIDENT_MAX; all 0 without one), in OS pages
	 * unless said otherwise */
	uint64_t resident_cap;     /* most pages_touched allowed, 0 for no cap */
	uint64_t evictions;        /* dirty pages written to the store and dropped */
	uint64_t page_ins;         /* pages read back from the store on fault */
	uint64_t clean_drops;      /* clean pages dropped with no write (copy kept) */
	uint64_t evictions_cancelled; /* written to while being evicted: kept */
	uint64_t store_bytes;      /* store space in use (evicted + clean copies) */
	uint64_t store_written;    /* bytes written to the store */
	uint64_t store_read;       /* bytes read from the store */
	uint64_t io_wait_ns;       /* time spent waiting for store I/O */
	uint64_t store_errors;     /* pages whose write failed (kept resident) */
	uint64_t over_cap;         /* pages populated beyond the cap after such a failure */
	char store_path[256];      /* the store's directory or file ("" without a cap) */
	int store_direct;          /* the store bypasses the page cache (O_DIRECT) */
	/* small blocks of the pointer API (MEMS_SMALL_RUNS): each run is one
	 * PROCESS segment, counted in bytes_in_use whole */
	uint64_t small_runs;       /* runs (PROCESS segments cut into blocks) */
	uint64_t small_blocks;     /* blocks allocated in them */
	uint64_t small_bytes;      /* those blocks' bytes */
	uint64_t small_run_bytes;  /* the runs' bytes */
	/* pages populated by the allocating thread, not by a fault: every
	 * block in uffd-user mode, blocks and runs up to MEMS_POPULATE bytes
	 * otherwise; included in pages_populated */
	uint64_t pages_prepopulated;
	/* pages populated ahead of a sequential stream by the fault-ahead
	 * helper thread (MEMS_FAULT_AHEAD), not by a fault; included in
	 * pages_populated */
	uint64_t pages_ahead;
};

/* Fill *st.  Returns 0, or -1 with errno = EINVAL for a NULL pointer. */
MEMS_API int mems_stats_get(struct mems_stats *st);

/* Validate the whole state: the 2-D list, the hole index, the address map,
 * the counters, touched pages against the kernel (mincore), and the
 * resident cap's bookkeeping.  0, or -1 with errno = EUCLEAN and a one-line
 * diagnostic naming the first inconsistency.  For debugging: it takes time
 * linear in the heap.  (0 before mems_init.) */
MEMS_API int mems_check(void);

/* Render the stats as one JSON object into buf (snprintf rules: returns the
 * length needed, writes at most len bytes including the terminating NUL). */
MEMS_API int mems_stats_json(char *buf, size_t len);

/* ------------------------------------------------------------------------
 * Pointer API: real pointers, for code that wants malloc semantics
 *
 * The same free list: every block is a PROCESS segment and shows in the
 * stats, except that with the small_runs option (MEMS_SMALL_RUNS, on in
 * libmems-preload.so) blocks of up to 2048 bytes come from runs: PROCESS
 * segments cut into blocks of one size class (struct mems_stats, small_*).
 * Blocks are 16-byte aligned and sized in multiples of 16.
 * Errors are glibc's: NULL with errno = ENOMEM, EINVAL for a bad alignment.
 * ---------------------------------------------------------------------- */

/* size bytes (0 gives a minimal block), or NULL with errno = ENOMEM. */
MEMS_API void *mems_ptr_malloc(size_t size);
/* n * size zeroed bytes; NULL with errno = ENOMEM on overflow too. */
MEMS_API void *mems_ptr_calloc(size_t n, size_t size);
/* Resize, in place when the hole after the block allows.  realloc(NULL, n)
 * is malloc(n); realloc(p, 0) frees p and returns NULL (as glibc). */
MEMS_API void *mems_ptr_realloc(void *p, size_t size);
/* size bytes aligned to align, a power of two; EINVAL otherwise. */
MEMS_API void *mems_ptr_aligned(size_t align, size_t size);
/* Free a block; NULL is a no-op; anything else that is not a block's start
 * gets a one-line diagnostic and a count, as mems_free. */
MEMS_API void mems_ptr_free(void *p);
/* Bytes usable in the block starting at p (0 for NULL or a non-block). */
MEMS_API size_t mems_ptr_usable_size(const void *p);
/* The MeMS virtual address of a real pointer anywhere inside a block (the
 * reverse of mems_get); NULL with errno = EFAULT otherwise. */
MEMS_API void *mems_ptr_to_virtual(const void *p);

#ifdef __cplusplus
}
#endif
#endif /* MEMS_H */
