/*
 * testutil.h - helpers shared by the Check suites.
 */
#ifndef MEMS_TESTUTIL_H
#define MEMS_TESTUTIL_H
#include <check.h>
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

/* Anonymous resident memory of this process, KiB. */
static inline long t_rss_anon_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "RssAnon:", 8))
			kib = strtol(line + 8, NULL, 10);
	fclose(f);
	return kib;
}

/* What mems_print_stats() writes to stdout; free() it. */
static inline char *t_capture_stats(void)
{
	fflush(stdout);
	int fd = memfd_create("stats", 0);
	ck_assert_int_ge(fd, 0);
	int saved = dup(1);
	dup2(fd, 1);
	mems_print_stats();
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	off_t len = lseek(fd, 0, SEEK_END);
	char *buf = calloc(1, (size_t)len + 1);
	ck_assert_int_eq(pread(fd, buf, (size_t)len, 0), len);
	close(fd);
	return buf;
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

/* Run stderr into a memfd while fn(arg) runs; returns what was written. */
static inline char *t_capture_stderr(void (*fn)(void *), void *arg)
{
	int fd = memfd_create("err", 0);
	int saved = dup(2);
	dup2(fd, 2);
	fn(arg);
	dup2(saved, 2);
	close(saved);
	off_t len = lseek(fd, 0, SEEK_END);
	char *buf = calloc(1, (size_t)len + 1);
	ck_assert_int_eq(pread(fd, buf, (size_t)len, 0), len);
	close(fd);
	return buf;
}

static inline uint64_t t_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

#endif
