/*
 * fail.c - fault injection.
 *
 * MEMS_FAIL (or the "fail" option) names system-call points and which of
 * their calls fail: "madvise:3" makes the third MADV_DONTNEED fail,
 * "uring-write:20+" every store write from the twentieth on.  Each point
 * fails with the errno its system call would give in a real shortage.
 * Calls are counted per point from the last fail_setup() (each mems_init
 * arms the option's spec afresh).  The tests use it to show that every
 * such failure gives a clean result: NULL and errno, a diagnostic, the
 * state intact, nothing lost.  Checking costs one relaxed load when
 * nothing is armed.
 */
#include "fail.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

static const struct {
	const char *name;
	int err;
} points[FP_COUNT] = {
	[FP_MMAP] = { "mmap", ENOMEM },
	[FP_MPROTECT] = { "mprotect", ENOMEM },
	[FP_MADVISE] = { "madvise", EAGAIN },
	[FP_UFFD_API] = { "uffd-api", EINVAL },
	[FP_UFFD_REGISTER] = { "uffd-register", EPERM },
	[FP_UFFD_COPY] = { "uffd-copy", ENOMEM },
	[FP_AHEAD_COPY] = { "ahead-copy", ENOMEM },
	[FP_UFFD_WP] = { "uffd-wp", ENOMEM },
	[FP_URING_INIT] = { "uring-init", ENOMEM },
	[FP_URING_WRITE] = { "uring-write", EIO },
	[FP_URING_READ] = { "uring-read", EIO },
	[FP_THREAD] = { "thread", EAGAIN },
};

static atomic_int armed;
static _Atomic uint64_t calls[FP_COUNT];
/* (atomics: a test may re-arm while the handler or evictor checks) */
static _Atomic uint64_t nth[FP_COUNT];   /* 0: not armed */
static atomic_int onward[FP_COUNT];

int fail_now(enum fail_point p)
{
	if (!atomic_load_explicit(&armed, memory_order_acquire))
		return 0;
	uint64_t at = atomic_load(&nth[p]);
	if (!at)
		return 0;
	uint64_t n = atomic_fetch_add(&calls[p], 1) + 1;
	return n == at || (atomic_load(&onward[p]) && n > at) ? points[p].err : 0;
}

int fail_setup(const char *spec)
{
	uint64_t want[FP_COUNT] = { 0 };
	int on[FP_COUNT] = { 0 };

	for (const char *s = spec; s && *s;) {
		const char *colon = strchr(s, ':');
		size_t len = colon ? (size_t)(colon - s) : 0;
		int p = 0;
		while (p < FP_COUNT && !(len && strlen(points[p].name) == len &&
					 !strncmp(points[p].name, s, len)))
			p++;
		char *end = NULL;
		unsigned long long n = colon && colon[1] >= '1' && colon[1] <= '9' ?
				       strtoull(colon + 1, &end, 10) : 0;
		if (p == FP_COUNT || !n || !end || (*end && *end != '+' && *end != ',') ||
		    (*end == '+' && end[1] && end[1] != ',')) {
			char names[256] = "";
			for (int i = 0, at = 0; i < FP_COUNT && at < (int)sizeof names; i++)
				at += snprintf(names + at, sizeof names - (size_t)at, "%s%s",
					       i ? ", " : "", points[i].name);
			mems_diag("MEMS_FAIL=\"%s\": expected point:N or point:N+ (points: %s), "
				  "comma separated", spec, names);
			return -1;
		}
		want[p] = n;
		on[p] = *end == '+';
		s = end + (*end == '+');
		if (*s == ',')
			s++;
	}
	atomic_store(&armed, 0);
	int any = 0;
	for (int p = 0; p < FP_COUNT; p++) {
		atomic_store(&nth[p], want[p]);
		atomic_store(&onward[p], on[p]);
		atomic_store(&calls[p], 0);
		any |= want[p] != 0;
	}
	atomic_store(&armed, any);
	return 0;
}
