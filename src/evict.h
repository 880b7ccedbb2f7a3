/*
 * evict.h - the resident cap: between pager.c and evict.c only.
 *
 * Every function here is called with pg->lock held, except evict_start,
 * evict_stop, evict_free, evict_roomfd and the fork hooks.
 */
#ifndef MEMS_EVICT_H
#define MEMS_EVICT_H
#include <stdint.h>

#include "pager.h"

/* Bitmaps of the pager: a bit per OS page, words read and written
 * atomically (the writers hold pg->lock; some readers do not). */
static inline int map_get(const uint64_t *m, uint64_t i)
{
	return (__atomic_load_n(&m[i / 64], __ATOMIC_ACQUIRE) >> (i % 64)) & 1;
}
static inline void map_set(uint64_t *m, uint64_t i)
{
	__atomic_fetch_or(&m[i / 64], 1ull << (i % 64), __ATOMIC_RELEASE);
}
static inline void map_clear(uint64_t *m, uint64_t i)
{
	__atomic_fetch_and(&m[i / 64], ~(1ull << (i % 64)), __ATOMIC_RELEASE);
}

/* Set up the cap (cap bytes, store in swap, CLOCK or with fifo FIFO
 * eviction) and start the evictor thread;
 * pg->uffd is open.  -1 with errno and a message in why. */
int evict_start(struct mems_pager *pg, uint64_t cap, const char *swap, int fifo, int poison,
		char *why, size_t whylen);
/* Stop the evictor thread; then, once the handler has stopped too, free
 * everything (evict_free stops the thread first if need be). */
void evict_stop(struct mems_pager *pg);
void evict_free(struct mems_pager *pg);
/* The pipe that becomes readable when the evictor has made room. */
int evict_roomfd(struct mems_pager *pg);
/* What MeMS's threads keep in their own tables under a cap (span.h,
 * os_own_fds): the userfaultfd and the evictor's descriptors (the room
 * pipe, the store, the rings) into fds[0..EVICT_FDS), -1 for none.
 * Returns EVICT_FDS. */
#define EVICT_FDS 6
int evict_fds(struct mems_pager *pg, int *fds);

/* Pages the handler may populate now (UINT64_MAX when it need not wait). */
uint64_t evict_room(struct mems_pager *pg);
/* Wake the evictor. */
void evict_kick(struct mems_pager *pg);
/* The handler puts a fault aside until there is room: the evictor wakes
 * for it, makes room or finds it made by frees, and signals it on the
 * room pipe. */
void evict_wait_room(struct mems_pager *pg);
/* Page pi is evicted: its contents are in the store. */
int evict_swapped(struct mems_pager *pg, uint64_t pi);
/* n fresh pages from pi were populated (zero filled). */
void evict_populated(struct mems_pager *pg, uint64_t pi, uint64_t n);
/* Resolve a missing fault on evicted page pi: read it and up to max-1
 * evicted pages after it back in, clean (write protected), but page pi
 * itself dirty if the fault is a write.  Returns the pages installed (0
 * when the read failed: the page is then poisoned, and the access gets
 * SIGBUS). */
uint64_t evict_page_in(struct mems_pager *pg, uint64_t pi, uint64_t max, int write);
/* A write-protect fault on page pi: make it, and up to max-1 clean pages
 * after it (a sequential writer's next pages), dirty.  Returns how many. */
uint64_t evict_wp_fault(struct mems_pager *pg, uint64_t pi, uint64_t max);
/* Pages [lo, hi) are wholly free: cancel their eviction and free their
 * slots (pager_release then drops what is resident).  With kept, they
 * stay resident for a purge delay: the evictor gives such pages back
 * before it evicts any page in use. */
void evict_release(struct mems_pager *pg, uint64_t lo, uint64_t hi, int kept);

void evict_fork_prepare(struct mems_pager *pg);
void evict_fork_parent(struct mems_pager *pg);
void evict_fork_child(struct mems_pager *pg);
void evict_counters(struct mems_pager *pg, struct pager_evict_counters *c);
/* mems_check's part: the eviction state against the pages that PROCESS
 * segments cover (a bitmap).  0, or -1 with the first problem in why. */
int evict_check(struct mems_pager *pg, const uint64_t *process_map, char *why, size_t len);

/* pager.c: install n pages at pi from src with UFFDIO_COPY (write
 * protected if wp).  Sets the resident bits and the touched count.
 * Returns 0 or an errno value; *woke as populate_run. */
int pager_copy_in(struct mems_pager *pg, uint64_t pi, uint64_t n, const void *src, int wp,
		  int *woke);
void pager_wake(struct mems_pager *pg, uint64_t pi);

#endif
