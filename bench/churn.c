/*
 * churn.c - an allocation churn: random sizes from 2 to 2048 bytes with an
 * occasional large block (64 KiB to 1 MiB), a fixed number of live slots,
 * every block filled and checked before it is freed.  Run it plainly and
 * under a preloaded allocator to compare them.
 *
 *   churn [SLOTS [OPS]]      defaults: 20000 slots, 2000000 operations
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

int main(int argc, char **argv)
{
	size_t slots = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000;
	size_t ops = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000000;
	unsigned char **p = calloc(slots, sizeof *p);
	size_t *len = calloc(slots, sizeof *len);
	uint64_t seed = 12345, bad = 0, sum = 0;

	for (size_t op = 0; op < ops; op++) {
		size_t k = rng(&seed) % slots;
		if (p[k]) {
			unsigned char want = (unsigned char)(k ^ len[k]);
			if (p[k][0] != want || p[k][len[k] - 1] != want || p[k][len[k] / 2] != want)
				bad++;
			sum += p[k][len[k] / 2];
			free(p[k]);
		}
		len[k] = rng(&seed) % 1000 == 0 ? 65536 + rng(&seed) % (1 << 20)
						 : 2 + rng(&seed) % 2047;
		p[k] = malloc(len[k]);
		if (!p[k]) {
			perror("malloc");
			return 1;
		}
		memset(p[k], (unsigned char)(k ^ len[k]), len[k]);
	}
	for (size_t k = 0; k < slots; k++)
		free(p[k]);
	printf("churn: %zu slots, %zu operations, checksum %llu, bad %llu\n", slots, ops,
	       (unsigned long long)sum, (unsigned long long)bad);
	return bad != 0;
}
