/*
 * churn.c - an allocation churn: random sizes from 2 to 2048 bytes with an
 * occasional large block (64 KiB to 1 MiB), a fixed number of live slots,
 * every block filled and checked before it is freed.  Run it plainly and
 * under a preloaded allocator to compare them.
 *
 *   churn [SLOTS [OPS [THREADS [WAIT_MS]]]]
 *     defaults: 20000 slots, 2000000 operations, 1 thread, 1000 ms
 *
 * With THREADS > 1 each thread runs its own churn of SLOTS slots and OPS
 * operations (the work grows with the threads; compare throughput).  It
 * reports the seconds the work took (creating the threads to the last
 * free); then, after WAIT_MS (a second by default: longer than the purge
 * delays an allocator would use by default), its resident memory:
 *
 *   churn: ... bad 0 seconds S rss_after_free_kib N
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchutil.h"

struct job {
	size_t slots, ops;
	uint64_t seed, bad, sum;
};

static void *churn(void *arg)
{
	struct job *j = arg;
	unsigned char **p = calloc(j->slots, sizeof *p);
	size_t *len = calloc(j->slots, sizeof *len);
	if (!p || !len) {
		perror("calloc");
		exit(1);
	}
	for (size_t op = 0; op < j->ops; op++) {
		size_t k = rng(&j->seed) % j->slots;
		if (p[k]) {
			unsigned char want = (unsigned char)(k ^ len[k]);
			if (p[k][0] != want || p[k][len[k] - 1] != want || p[k][len[k] / 2] != want)
				j->bad++;
			j->sum += p[k][len[k] / 2];
			free(p[k]);
		}
		len[k] = rng(&j->seed) % 1000 == 0 ? 65536 + rng(&j->seed) % (1 << 20)
						   : 2 + rng(&j->seed) % 2047;
		p[k] = malloc(len[k]);
		if (!p[k]) {
			perror("malloc");
			exit(1);
		}
		memset(p[k], (unsigned char)(k ^ len[k]), len[k]);
	}
	for (size_t k = 0; k < j->slots; k++)
		free(p[k]);
	free(p);
	free(len);
	return NULL;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

int main(int argc, char **argv)
{
	size_t slots = 20000, ops = 2000000, nt = 1, wait_ms = 1000;
	size_t *arg[] = { &slots, &ops, &nt, &wait_ms };
	int wrong = argc > 5;
	for (int i = 1; i < argc && !wrong; i++)
		wrong = parse_count(argv[i], arg[i - 1]) != 0;
	if (wrong || !slots || nt < 1 || nt > 64 || wait_ms > 60000) {
		fprintf(stderr, "usage: churn [SLOTS [OPS [THREADS (1-64) [WAIT_MS (0-60000)]]]]\n");
		return 2;
	}
	int threads = (int)nt;
	struct job jobs[64];
	pthread_t t[64];
	double t0 = now();
	for (int i = 0; i < threads; i++) {
		jobs[i] = (struct job){ slots, ops, 12345 + (uint64_t)i * 7919, 0, 0 };
		if (threads > 1 && pthread_create(&t[i], NULL, churn, &jobs[i]) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	if (threads == 1)
		churn(&jobs[0]);
	uint64_t bad = 0, sum = 0;
	for (int i = 0; i < threads; i++) {
		if (threads > 1)
			pthread_join(t[i], NULL);
		bad += jobs[i].bad;
		sum += jobs[i].sum;
	}
	double secs = now() - t0;
	usleep((useconds_t)wait_ms * 1000);
	printf("churn: %zu slots, %zu operations, %d thread%s, checksum %llu, bad %llu "
	       "seconds %.3f rss_after_free_kib %ld\n",
	       slots, ops, threads, threads > 1 ? "s" : "", (unsigned long long)sum,
	       (unsigned long long)bad, secs, rss_kib());
	return bad != 0;
}
