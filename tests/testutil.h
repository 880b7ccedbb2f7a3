/*
 * testutil.h - helpers shared by the Check suites.
 */
#ifndef MEMS_TESTUTIL_H
#define MEMS_TESTUTIL_H
#include <check.h>
#include <sched.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "mems.h"
#include "span.h"

Suite *meta_suite(void);
Suite *freelist_suite(void);
Suite *options_suite(void);
Suite *span_suite(void);
Suite *pager_suite(void);
Suite *stats_suite(void);
Suite *api_suite(void);
Suite *scenario_suite(void);
Suite *ptr_suite(void);
Suite *preload_suite(void);
Suite *trace_suite(void);
Suite *evict_suite(void);
Suite *evict_real_suite(void);
Suite *check_suite(void);
Suite *fail_suite(void);
Suite *badinput_suite(void);
Suite *small_suite(void);

/* Where make put the programs the tests run (MEMS_TEST_BUILD). */
static inline const char *t_build(void)
{
	const char *b = getenv("MEMS_TEST_BUILD");
	return b ? b : "build";
}

/* CPUs this process may run on (the fault-ahead helper needs two). */
static inline int t_cpus(void)
{
	cpu_set_t set;
	return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
}

#define V(x) ((void *)(uintptr_t)(x))
#define U(p) ((uintptr_t)(p))

/* Resident pages of the committed span, as the kernel sees them. */
static inline uint64_t t_mincore(void)
{
	int64_t n = os_resident_pages(mems_g.span, mems_g.fl.committed);
	ck_assert_int_ge(n, 0);
	return (uint64_t)n;
}

static inline struct mems_stats t_stats(void)
{
	struct mems_stats st;
	ck_assert_int_eq(mems_stats_get(&st), 0);
	return st;
}

/* The library's count of touched pages equals the kernel's. */
#define ck_assert_touched_exact()                                              \
	do {                                                                   \
		struct mems_stats st_ = t_stats();                             \
		ck_assert_uint_eq(st_.pages_touched, t_mincore());             \
	} while (0)

/* A "Key:  N kB" line of /proc/self/status, in KiB. */
static inline long t_status_kib(const char *key)
{
	char line[256];
	long kib = -1;
	size_t n = strlen(key);
	FILE *f = fopen("/proc/self/status", "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, key, n) && line[n] == ':')
			kib = strtol(line + n + 1, NULL, 10);
	fclose(f);
	ck_assert_int_ge(kib, 0);
	return kib;
}

/* Anonymous resident memory of this process, KiB. */
static inline long t_rss_anon_kib(void)
{
	return t_status_kib("RssAnon");
}

/* What fn(arg) writes to file descriptor target (1 or 2); free() it. */
static inline char *t_capture(int target, void (*fn)(void *), void *arg)
{
	fflush(NULL);
	int fd = memfd_create("capture", 0);
	ck_assert_int_ge(fd, 0);
	int saved = dup(target);
	dup2(fd, target);
	fn(arg);
	fflush(NULL);
	dup2(saved, target);
	close(saved);
	off_t len = lseek(fd, 0, SEEK_END);
	char *buf = calloc(1, (size_t)len + 1);
	ck_assert_int_eq(pread(fd, buf, (size_t)len, 0), len);
	close(fd);
	return buf;
}

static inline void t_print_stats(void *unused)
{
	(void)unused;
	mems_print_stats();
}

/* mems_try_init(), for t_capture: its result and errno into *(struct
 * t_init *)arg, what it diagnoses on stderr. */
struct t_init {
	int rc, err;
};
static inline void t_try_init(void *arg)
{
	struct t_init *r = arg;
	errno = 0;
	r->rc = mems_try_init();
	r->err = errno;
}

/* mems_ptr_free(p), for t_capture: what a bad free diagnoses on stderr. */
static inline void t_ptr_free(void *p)
{
	mems_ptr_free(p);
}

/* What mems_print_stats() writes to stdout; free() it. */
static inline char *t_capture_stats(void)
{
	return t_capture(1, t_print_stats, NULL);
}

/* The seed lines of a stats block: everything up to and including the
 * "Sub-chain Length array" line. */
static inline char *t_seed_lines(const char *block)
{
	const char *e = strstr(block, "Sub-chain Length array:");
	ck_assert_ptr_nonnull(e);
	e = strchr(e, '\n');
	return strndup(block, (size_t)(e - block + 1));
}

static inline uint64_t t_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

#endif
