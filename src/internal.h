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
};

/* The allocator lock: protects mems_g.ready, .span and .fl.  Taken before
 * pg.lock (see pager.c), never by the fault handler. */
extern pthread_mutex_t mems_lock;
extern struct mems_state mems_g;

#endif
