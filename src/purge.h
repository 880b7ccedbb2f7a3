/*
 * purge.h - the purge delay's background thread (purge.c).
 */
#ifndef MEMS_PURGE_H
#define MEMS_PURGE_H
#include <stdint.h>

/* Under mems_lock, with a purge delay above 0: pages became free (not
 * live); the purger gives them back after the delay (when no thread
 * could be started, this call scans, once per delay). */
void purge_freed_locked(void);
/* Under mems_lock, at finish: stop the thread. */
void purge_stop_locked(void);
/* Give back every wholly free page now, whatever the delay (the preload
 * library's malloc_trim).  Takes mems_lock; returns the pages given back. */
uint64_t purge_now(void);
/* In a fork child. */
void purge_fork_child(void);

#endif
