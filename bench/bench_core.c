/*
 * bench_core.c - core benchmarks, every peer measured in the same run and
 * reported as ratios (these machines are shared and noisy: absolute times
 * are printed only to show what the ratios are made of).
 *
 *  1. Scaling: per-operation cost of mems_free + mems_malloc (+ mems_get)
 *     with 100 live segments and with 100,000; and free + malloc on the
 *     same pattern under glibc and the peers that are installed (jemalloc,
 *     mimalloc, tcmalloc), each in a process of its own (this program
 *     again, with the allocator preloaded), for scale.
 *  2. First touch, one write per page of a fresh 256 MiB region:
 *     MeMS (its pager) vs the kernel's demand paging on plain mmap memory vs
 *     MADV_POPULATE_WRITE, in sequential and in random page order; MeMS
 *     without its fault-ahead helper (MEMS_FAULT_AHEAD=0); and
 *     MeMS with MEMS_TRACE on against off (the cost of recording); and the
 *     cost of fault-around in pages nobody touches: one page in 16 written
 *     at random, pages populated per page written; and a write stream
 *     stopped part way, pages populated beyond its end.
 *
 * Each figure is the median of several repetitions, the peers' runs
 * interleaved.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "mems.h"
#include "seedpattern.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define REPS 5
#define TOUCH_REPS 7    /* first touch: more runs, each a fraction of a second */

/* ---------------------------------------------------------------- scaling */

/* Free a random one of live blocks and allocate another of 16-515 bytes,
 * and write into it: through the seed API, or (libc) glibc's malloc. */
static double churn_ns(size_t live, size_t ops, int libc)
{
	void **slot = calloc(live, sizeof *slot);
	uint64_t seed = 0x12345;
	if (!libc)
		mems_init();
	if (!slot || seed_fill(slot, live, &seed, libc) != 0) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	double t0 = now();
	for (size_t i = 0; i < ops; i++)
		seed_op(slot, live, &seed, libc);
	double t = now() - t0;
	if (libc)
		for (size_t i = 0; i < live; i++)
			free(slot[i]);
	else
		mems_finish();
	free(slot);
	return t / (double)ops * 1e9;
}

#define SEED_OPS 200000
#define SEED_MALLOC_ARG "--seed-malloc"

/* One run of the pattern through malloc, at 100 and at 100,000 live
 * blocks, in a process of its own: this program again (SEED_MALLOC_ARG),
 * with preload (NULL: glibc) as LD_PRELOAD.  0, or -1 when it failed. */
static int seed_malloc_run(const char *preload, double *small, double *large)
{
	int fd[2];
	if (pipe(fd) != 0)
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		close(fd[0]);
		close(fd[1]);
		return -1;
	}
	if (pid == 0) {
		if (dup2(fd[1], STDOUT_FILENO) < 0)
			_exit(126);
		close(fd[0]);
		close(fd[1]);
		if (preload)
			setenv("LD_PRELOAD", preload, 1);
		else
			unsetenv("LD_PRELOAD");
		execl("/proc/self/exe", "bench_core", SEED_MALLOC_ARG, (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	FILE *f = fdopen(fd[0], "r");
	int got = f && fscanf(f, "%lf %lf", small, large) == 2;
	if (f)
		fclose(f);
	else
		close(fd[0]);
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		got = 0;
	return got ? 0 : -1;
}

/* ---------------------------------------------------------------- first touch */

enum peer { P_MEMS, P_KERNEL, P_POPULATE, P_TRACED, P_ALONE, NPEERS };
static const char *const peer_name[] = { "MeMS (uffd pager)", "kernel demand paging",
					 "MADV_POPULATE_WRITE", "MeMS, MEMS_TRACE on",
					 "MeMS, FAULT_AHEAD=0" };

static size_t *order;

static double touch_ns(enum peer p, size_t pages, int random)
{
	size_t ps = 4096, len = pages * ps;
	char *base = NULL, *v = NULL;
	char trace[64];
	snprintf(trace, sizeof trace, "/tmp/mems-bench-%d.trc", (int)getpid());
	if (p == P_MEMS || p == P_TRACED || p == P_ALONE) {
		if (p == P_TRACED)
			mems_option_set("trace", trace);
		if (p == P_ALONE)
			mems_option_set("fault_ahead", "0");
		mems_init();
		v = mems_malloc(len);
		base = mems_get(v);
	} else {
		base = mmap(NULL, len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		madvise(base, len, MADV_NOHUGEPAGE);
	}
	double t0 = now();
	if (p == P_POPULATE) {
		if (madvise(base, len, MADV_POPULATE_WRITE) != 0) {
			perror("MADV_POPULATE_WRITE");
			exit(1);
		}
		for (size_t i = 0; i < pages; i++)
			base[(random ? order[i] : i) * ps] = 1;
	} else {
		for (size_t i = 0; i < pages; i++)
			base[(random ? order[i] : i) * ps] = 1;
	}
	double t = now() - t0;
	if (p == P_MEMS || p == P_TRACED || p == P_ALONE) {
		struct mems_stats st;
		mems_stats_get(&st);
		if (st.pages_touched < pages) {
			fprintf(stderr, "bench: MeMS touched %lu of %zu pages\n",
				(unsigned long)st.pages_touched, pages);
			exit(1);
		}
		mems_finish();
		mems_option_reset();
		unlink(trace);
	} else {
		munmap(base, len);
	}
	return t / (double)pages * 1e9;
}

/* Sparse random writes: one page of each group of `every`, the groups
 * in random order.  Pages resident per page written (1.00 is no waste),
 * *faults_per the faults per page written. */
static double sparse_extra(size_t pages, size_t every, double *faults_per)
{
	size_t ps = 4096, n = pages / every;
	uint64_t seed = 4242;
	size_t *chunk = malloc(n * sizeof *chunk);
	for (size_t i = 0; i < n; i++)
		chunk[i] = i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = rng(&seed) % (i + 1), t = chunk[i];
		chunk[i] = chunk[j];
		chunk[j] = t;
	}
	mems_init();
	char *base = mems_get(mems_malloc(pages * ps));
	for (size_t i = 0; i < n; i++)
		base[(chunk[i] * every + rng(&seed) % every) * ps] = 1;
	free(chunk);
	struct mems_stats st;
	mems_stats_get(&st);
	mems_finish();
	*faults_per = (double)st.faults / (double)n;
	return (double)st.pages_touched / (double)n;
}

/* A sequential write stream that stops part way into a block: pages
 * populated beyond the last one written (fault-around's window, and with
 * the fault-ahead helper the window after it), median over stops. */
static double stream_overshoot(const char *ahead)
{
	size_t ps = 4096, n = 16384;
	double v[REPS];
	for (int r = 0; r < REPS; r++) {
		mems_option_set("fault_ahead", ahead);
		mems_init();
		char *base = mems_get(mems_malloc(n * ps));
		size_t upto = n / 2 + (size_t)r * 997;
		for (size_t i = 0; i < upto; i++)
			base[i * ps] = 1;
		struct mems_stats st;
		mems_stats_get(&st);
		v[r] = (double)(st.pages_touched - upto);
		mems_finish();
		mems_option_reset();
	}
	return median(v, REPS);
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], SEED_MALLOC_ARG)) {
		/* ld.so only warns when a preload cannot be loaded, and the
		 * run would time glibc under the peer's name */
		const char *lib = getenv("LD_PRELOAD");
		if (lib && *lib && !dlopen(lib, RTLD_NOW | RTLD_NOLOAD)) {
			fprintf(stderr, "bench: %s is not loaded\n", lib);
			return 1;
		}
		double small = churn_ns(100, SEED_OPS, 1);
		printf("%.3f %.3f\n", small, churn_ns(100000, SEED_OPS, 1));
		return 0;
	}
	if (argc > 1) {
		fprintf(stderr, "usage: bench_core\n");
		return 2;
	}
	printf("MeMS core benchmarks (median of %d runs; ratios are what counts)\n\n", REPS);

	/* 1. scaling: MeMS here, the mallocs each in a process of its own,
	 * the runs interleaved */
	enum { NAL = 2 + NPEER_LIBS };
	struct bench_alloc al[NAL] = { { "MeMS seed API", NULL }, { "glibc", NULL } };
	char paths[NPEER_LIBS][256];
	peer_allocs(al + 2, paths);
	double small[NAL][REPS], large[NAL][REPS], s[NAL], l[NAL];
	for (int r = 0; r < REPS; r++)
		for (int a = 0; a < NAL; a++) {
			if (a == 0) {
				small[a][r] = churn_ns(100, SEED_OPS, 0);
				large[a][r] = churn_ns(100000, SEED_OPS, 0);
			} else if ((a == 1 || al[a].lib) &&
				   seed_malloc_run(al[a].lib, &small[a][r], &large[a][r]) != 0) {
				fprintf(stderr, "bench: the seed pattern under %s failed\n", al[a].name);
				return 1;
			}
		}
	for (int a = 0; a < NAL; a++)
		if (a < 2 || al[a].lib) {
			s[a] = median(small[a], REPS);
			l[a] = median(large[a], REPS);
		}
	printf("free + malloc + get + a write, per operation pair (a random one of the\n"
	       "live blocks freed, 16-515 bytes allocated; the mallocs: no get)\n");
	printf("  %-24s", "");
	for (int a = 0; a < NAL; a++)
		if (a < 2 || al[a].lib)
			printf(" %*s", a ? 11 : 14, al[a].name);
	static const char *const row[] = { "100 live segments", "100,000 live segments",
					   "ratio 100,000 / 100" };
	for (int i = 0; i < 3; i++) {
		printf("\n  %-24s", row[i]);
		for (int a = 0; a < NAL; a++) {
			if (a >= 2 && !al[a].lib)
				continue;
			double v = i == 0 ? s[a] : i == 1 ? l[a] : l[a] / s[a];
			if (i < 2)
				printf(" %*.1f ns", a ? 8 : 11, v);
			else
				printf(" %*.2fx", a ? 10 : 13, v);
		}
	}
	printf("\n");
	for (int a = 2; a < NAL; a++)
		if (!al[a].lib)
			printf("  (%s not installed: apt-get install %s)\n", al[a].name,
			       peer_lib(a - 2)->package);
	printf("\n");
	for (int a = 0; a < NAL; a++)
		if (a < 2 || al[a].lib) {
			char key[64];
			snprintf(key, sizeof key, "scaling_100k_vs_100%s%s", a ? "_" : "",
				 a ? al[a].name : "");
			bench_result(key, l[a] / s[a]);
		}

	/* 2. first touch */
	size_t pages = 65536;                  /* 256 MiB */
	order = malloc(pages * sizeof *order);
	for (size_t i = 0; i < pages; i++)
		order[i] = i;
	uint64_t seed = 99;
	for (size_t i = pages - 1; i > 0; i--) {
		size_t j = rng(&seed) % (i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	struct mems_stats st;
	mems_init();
	mems_stats_get(&st);
	mems_finish();
	printf("first touch, one write per page of 256 MiB (pager: %s), median of %d runs\n",
	       st.mode_name, TOUCH_REPS);
	printf("  %-24s %14s %14s\n", "", "sequential", "random");
	/* the peers interleaved, so that a slow spell of this shared machine
	 * falls on all of them rather than on one peer's runs */
	double res[NPEERS][2];
	for (int rnd = 0; rnd < 2; rnd++) {
		double v[NPEERS][TOUCH_REPS];
		for (int r = 0; r < TOUCH_REPS; r++)
			for (int p = 0; p < NPEERS; p++)
				v[p][r] = touch_ns((enum peer)p, pages, rnd);
		for (int p = 0; p < NPEERS; p++)
			res[p][rnd] = median(v[p], TOUCH_REPS);
	}
	for (int p = 0; p < NPEERS; p++)
		printf("  %-24s %11.0f ns %11.0f ns  per page\n", peer_name[p], res[p][0], res[p][1]);
	printf("  %-24s %13.2fx %13.2fx\n", "MeMS / kernel paging",
	       res[P_MEMS][0] / res[P_KERNEL][0], res[P_MEMS][1] / res[P_KERNEL][1]);
	printf("  %-24s %13.2fx %13.2fx\n", "MeMS / POPULATE_WRITE",
	       res[P_MEMS][0] / res[P_POPULATE][0], res[P_MEMS][1] / res[P_POPULATE][1]);
	printf("  %-24s %13.2fx %13.2fx\n", "FAULT_AHEAD=0 / kernel",
	       res[P_ALONE][0] / res[P_KERNEL][0], res[P_ALONE][1] / res[P_KERNEL][1]);
	printf("  %-24s %13.2fx %13.2fx\n", "tracing on / off",
	       res[P_TRACED][0] / res[P_MEMS][0], res[P_TRACED][1] / res[P_MEMS][1]);
	bench_result("first_touch_seq_vs_kernel", res[P_MEMS][0] / res[P_KERNEL][0]);
	bench_result("first_touch_seq_vs_populate_write", res[P_MEMS][0] / res[P_POPULATE][0]);
	bench_result("first_touch_random_vs_kernel", res[P_MEMS][1] / res[P_KERNEL][1]);
	bench_result("tracing_seq_on_vs_off", res[P_TRACED][0] / res[P_MEMS][0]);
	bench_result("first_touch_seq_no_fault_ahead_vs_kernel", res[P_ALONE][0] / res[P_KERNEL][0]);
	printf("\nfault-around on sparse random writes (one page of each group, groups in\n"
	       "random order): pages resident and faults per page written\n");
	printf("  %-12s %10s %10s\n", "one page in", "pages", "faults");
	static const size_t every[] = { 8, 16, 32 };
	for (int e = 0; e < 3; e++) {
		double fpp, extra = sparse_extra(pages, every[e], &fpp);
		printf("  %-12zu %10.2f %10.2f\n", every[e], extra, fpp);
		char key[64];
		snprintf(key, sizeof key, "sparse_1_in_%zu_pages_per_page_written", every[e]);
		bench_result(key, extra);
	}
	double over = stream_overshoot("1"), alone = stream_overshoot("0");
	printf("\na write stream stopped part way into a 64 MiB block: pages populated\n"
	       "beyond the last one written (median of %d stops)\n", REPS);
	printf("  %-24s %10.0f pages\n", "MeMS", over);
	printf("  %-24s %10.0f pages\n", "MeMS, FAULT_AHEAD=0", alone);
	bench_result("stream_stop_pages_beyond", over);
	bench_result("stream_stop_pages_beyond_no_fault_ahead", alone);
	free(order);
	return 0;
}
