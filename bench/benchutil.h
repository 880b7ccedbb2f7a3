/*
 * benchutil.h - what the benchmarks share: a clock, medians, a generator,
 * command-line counts, the summary's figures, the peers' libraries.
 */
#ifndef MEMS_BENCHUTIL_H
#define MEMS_BENCHUTIL_H
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static inline double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The median of v[0..n) (v is sorted). */
static inline double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return v[n / 2];
}

static inline uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A command-line count: s as a decimal number, digits only.  0, or -1
 * when s is not one (empty, signed, trailing text, out of range). */
static inline int parse_count(const char *s, size_t *v)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*v = strtoul(s, &end, 10);
	return *end || errno ? -1 : 0;
}

/* One measured figure for the summary (bench_report): appended as
 * "key value" to the file $MEMS_BENCH_RESULTS names, if it is set. */
static inline void bench_result(const char *key, double value)
{
	const char *path = getenv("MEMS_BENCH_RESULTS");
	FILE *f = path ? fopen(path, "a") : NULL;
	if (f) {
		fprintf(f, "%s %.6g\n", key, value);
		fclose(f);
	}
}

/* The allocators besides glibc that the benchmarks preload, and the
 * Debian package each comes in: peer i of NPEER_LIBS. */
struct peer_lib { const char *name, *soname, *package; };
#define NPEER_LIBS 3
static inline const struct peer_lib *peer_lib(int i)
{
	static const struct peer_lib t[NPEER_LIBS] = {
		{ "jemalloc", "libjemalloc.so.2", "libjemalloc-dev" },
		{ "mimalloc", "libmimalloc.so.2", "libmimalloc-dev" },
		{ "tcmalloc", "libtcmalloc_minimal.so.4", "libgoogle-perftools-dev" },
	};
	return &t[i];
}

/* The path of peer i's library in the usual library directories, written
 * to buf; NULL when it is not installed. */
static inline const char *peer_lib_path(int i, char *buf, size_t len)
{
	static const char *const dirs[] = { "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib",
					    "/usr/local/lib" };
	for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++) {
		snprintf(buf, len, "%s/%s", dirs[d], peer_lib(i)->soname);
		if (access(buf, R_OK) == 0)
			return buf;
	}
	return NULL;
}

/* An allocator a benchmark runs under: its name and the library to
 * preload (NULL: none, or not installed). */
struct bench_alloc { const char *name, *lib; };

/* al[0..NPEER_LIBS) become the peers, each with its library's path in
 * paths[i] (lib NULL when it is not installed). */
static inline void peer_allocs(struct bench_alloc *al, char paths[][256])
{
	for (int i = 0; i < NPEER_LIBS; i++) {
		al[i].name = peer_lib(i)->name;
		al[i].lib = peer_lib_path(i, paths[i], 256);
	}
}

#endif
