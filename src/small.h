/*
 * small.h - small blocks in runs, for the pointer API (small.c).
 */
#ifndef MEMS_SMALL_H
#define MEMS_SMALL_H
#include <stddef.h>
#include <stdint.h>

#define SM_MAX_SIZE 2048       /* largest block served from runs */

/* The fast paths, without the allocator lock.
 * sm_malloc: a block of at least size bytes (zeroed if asked), or NULL
 * when the caller must take the slow path (runs are off, this thread has
 * no record, the list is out of memory: the slow path then says why).
 * sm_free: 1 when p was a small block and is freed, 0 when p is not in a
 * run (the slow path looks at it), -1 when p is in a run but is not an
 * allocated block (*why says what it is).  Never with mems_lock held (it
 * may take it to give an emptied run back): use sm_free_locked then. */
void *sm_malloc(size_t size, int zero);
int sm_free(void *p, const char **why);

/* Under mems_lock: the same questions for the slow paths (seed mems_free,
 * realloc, malloc_usable_size, a thread without a record).  may_retire
 * is 0 when the caller is inside the list's own work (libc allocating in
 * one of our calls): a run that empties is then left as it is. */
int sm_free_locked(uint64_t off, const char **why, int may_retire);
/* Size of the allocated small block at off; 0 if off is not in a run,
 * -1 (as SIZE_MAX) with *why if it is in a run but not an allocated block. */
size_t sm_block_size_locked(uint64_t off, const char **why);

void sm_register_barrier(void);    /* at init, before any thread starts */
int sm_start_locked(void);         /* at init: 0, or -1 with errno */
void sm_stop_locked(void);         /* at finish, before the span goes */
void sm_fork_prepare(void);        /* after mems_lock */
void sm_fork_parent(void);
void sm_fork_child_locked(void);   /* the child's other threads are gone */

/* Under mems_lock: runs, blocks allocated in them and those blocks' bytes. */
uint64_t sm_counts_locked(uint64_t *blocks, uint64_t *bytes, uint64_t *run_bytes);
/* Under mems_lock: every run against the list and the page map. */
int sm_check_locked(char *why, size_t len);

#endif
