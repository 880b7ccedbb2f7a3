/*
 * preload_stress.c - a threaded malloc stress for running under
 * libmems-preload.so: several threads allocate with every function of the
 * family, hand blocks to each other through a shared table, check their
 * contents and free blocks other threads allocated.  Then it forks (the
 * child allocates on, checks everything it inherited and exits) and
 * execs itself once.  Prints a line that does not depend on the allocator.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 6
#define SLOTS 4096
#define OPS 150000

struct block { size_t len; uint32_t tag; unsigned char data[]; };

static _Atomic(struct block *) table[SLOTS];
static _Atomic long errors, checked;

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static struct block *make(uint64_t *seed)
{
	size_t len = rng(seed) % 100 < 90 ? rng(seed) % 512 : rng(seed) % 70000;
	struct block *b;
	switch (rng(seed) % 4) {
	case 0: b = malloc(sizeof *b + len); break;
	case 1: b = calloc(1, sizeof *b + len); break;
	case 2: b = aligned_alloc(64, sizeof *b + len); break;
	default: b = realloc(NULL, sizeof *b + len); break;
	}
	if (!b) {
		errors++;
		return NULL;
	}
	b->len = len;
	b->tag = (uint32_t)rng(seed);
	for (size_t i = 0; i < len; i++)
		b->data[i] = (unsigned char)(b->tag + i);
	return b;
}

static void check(struct block *b)
{
	for (size_t i = 0; i < b->len; i++)
		if (b->data[i] != (unsigned char)(b->tag + i)) {
			errors++;
			return;
		}
	checked++;
}

static void *worker(void *arg)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uintptr_t)arg * 1000003;
	for (int op = 0; op < OPS; op++) {
		int k = (int)(rng(&seed) % SLOTS);
		struct block *b = make(&seed);
		if (b && rng(&seed) % 8 == 0) {        /* grow it, keeping the data */
			size_t extra = rng(&seed) % 4000;
			struct block *g = realloc(b, sizeof *b + b->len + extra);
			if (!g) {
				errors++;
			} else {
				b = g;
				for (size_t i = b->len; i < b->len + extra; i++)
					b->data[i] = (unsigned char)(b->tag + i);
				b->len += extra;
			}
		}
		struct block *old = atomic_exchange(&table[k], b);
		if (old) {                              /* often another thread's */
			check(old);
			free(old);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--exec")) {
		char *p = malloc(1000);
		strcpy(p, "exec ok");
		puts(p);
		free(p);
		return 0;
	}
	pthread_t t[THREADS];
	for (uintptr_t i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);

	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		long before = errors;
		for (int k = 0; k < SLOTS; k++)
			if (table[k])
				check(table[k]);
		uint64_t seed = 42;
		for (int i = 0; i < 20000; i++) {
			struct block *b = make(&seed);
			if (b) {
				check(b);
				free(b);
			}
		}
		_exit(errors == before ? 0 : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	printf("fork child: %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "FAILED");

	for (int k = 0; k < SLOTS; k++) {
		struct block *b = table[k];
		if (b) {
			check(b);
			free(b);
		}
	}
	printf("threads: %d, errors: %ld\n", THREADS, (long)errors);
	fflush(stdout);
	execl("/proc/self/exe", argv[0], "--exec", (char *)NULL);
	perror("exec");
	return 1;
}
