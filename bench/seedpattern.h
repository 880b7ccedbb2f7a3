/*
 * seedpattern.h - the seed API's scaling pattern, which bench_core times
 * and seed_loop counts: live blocks of 16-515 bytes, then operations that
 * each free a random one and allocate another and write into it, through
 * the seed API (mems_free, mems_malloc, mems_get) or glibc's free and
 * malloc (libc).
 */
#ifndef MEMS_SEEDPATTERN_H
#define MEMS_SEEDPATTERN_H
#include <stdlib.h>

#include "benchutil.h"
#include "mems.h"

/* Fill slot[0..live): 0, or -1 when an allocation failed. */
static inline int seed_fill(void **slot, size_t live, uint64_t *seed, int libc)
{
	for (size_t i = 0; i < live; i++) {
		size_t n = 16 + rng(seed) % 500;
		slot[i] = libc ? malloc(n) : mems_malloc(n);
		if (!slot[i])
			return -1;
	}
	return 0;
}

/* One operation: the slot and the size are drawn first, in this order. */
static inline void seed_op(void **slot, size_t live, uint64_t *seed, int libc)
{
	size_t k = rng(seed) % live;
	size_t n = 16 + rng(seed) % 500;
	if (libc) {
		free(slot[k]);
		slot[k] = malloc(n);
	} else {
		mems_free(slot[k]);
		slot[k] = mems_malloc(n);
	}
	if (!slot[k]) {
		fprintf(stderr, "bench: allocating %zu bytes failed\n", n);
		exit(1);
	}
	if (libc)
		*(volatile char *)((char *)slot[k] + 3) = 1;
	else
		*(volatile char *)mems_get((char *)slot[k] + 3) = 1;
}

#endif
