/*
 * seed_loop.c - bench_core's seed-API scaling pattern as a program of its
 * own, for counting rather than timing (tools/bench-misses.sh runs it
 * under cachegrind):
 *
 *   seed_loop mems|glibc LIVE OPS
 *
 * LIVE blocks of 16-515 bytes are allocated, then OPS times a random one
 * is freed, another allocated and written into: through the seed API
 * (mems_free, mems_malloc, mems_get), or glibc's free and malloc
 * (seedpattern.h, shared with bench_core).  With OPS 0 it does only the
 * setup, so two runs give the cost of OPS operations by difference; the
 * blocks are left to the process's exit.
 */
#include <stdlib.h>
#include <string.h>

#include "seedpattern.h"

/* the blocks, still reachable at exit (left to it: see main) */
static void **slot;

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[1], "mems") && strcmp(argv[1], "glibc"))) {
		fprintf(stderr, "usage: seed_loop mems|glibc LIVE OPS\n");
		return 2;
	}
	int libc = !strcmp(argv[1], "glibc");
	size_t live, ops;
	if (parse_count(argv[2], &live) != 0 || live == 0 || parse_count(argv[3], &ops) != 0) {
		fprintf(stderr, "seed_loop: LIVE must be a positive number and OPS a number\n");
		return 2;
	}
	slot = calloc(live, sizeof *slot);
	uint64_t seed = 0x12345;
	if (!slot || (!libc && mems_try_init() != 0) || seed_fill(slot, live, &seed, libc) != 0) {
		fprintf(stderr, "seed_loop: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < ops; i++)
		seed_op(slot, live, &seed, libc);
	/* no teardown: freeing in the slots' order after OPS operations would
	 * cost what freeing them after none does not */
	return 0;
}
