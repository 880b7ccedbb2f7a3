/*
 * preload.c - libmems-preload.so: the malloc family on MeMS.
 *
 *   LD_PRELOAD=/usr/local/lib/libmems-preload.so PROGRAM
 *
 * runs PROGRAM's heap on MeMS, on the userfaultfd-paged span: blocks of up
 * to 2048 bytes in runs (small.c), each run a PROCESS segment of the 2-D
 * list, and larger blocks each a PROCESS segment of their own.  Each function keeps glibc's
 * results and errno for the edge cases (glibc 2.36, which this is built
 * against): malloc(0) and friends return a minimal block; realloc(p, 0)
 * frees p and returns NULL; overflowing calloc/reallocarray and impossible
 * sizes give NULL with ENOMEM; posix_memalign returns EINVAL for an
 * alignment that is not a power of two multiple of sizeof(void *);
 * memalign and aligned_alloc round other alignments up to a power of two
 * and fail with EINVAL only beyond SIZE_MAX / 2 + 1; pvalloc rounds the
 * size up to whole pages (0 stays 0).
 *
 * The glibc-internal names (__libc_malloc and friends) are overridden
 * too, for code that calls them directly.  Everything else comes from the
 * library itself: MeMS initialises on the first allocation, before main if
 * a constructor allocates; calls that libc makes from inside MeMS go to
 * the bootstrap arena; the handler thread never allocates.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "mems.h"

#define EXPORT __attribute__((visibility("default")))

/* Read by options.c (weakly: it is absent from libmems itself): the
 * malloc replacement defaults to a purge delay of 100 ms and to small
 * blocks in runs, where libmems keeps the assignment's contract of giving
 * pages back on every free and of one segment per block. */
const int mems_preload_library = 1;

/* names no header declares */
void cfree(void *p);
void *__libc_malloc(size_t size);
void __libc_free(void *p);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void *__libc_memalign(size_t align, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);
int __posix_memalign(void **out, size_t align, size_t size);

EXPORT void *malloc(size_t size)
{
	return mems_ptr_malloc(size);
}

EXPORT void free(void *p)
{
	mems_ptr_free(p);
}

EXPORT void cfree(void *p)
{
	mems_ptr_free(p);
}

EXPORT void *calloc(size_t n, size_t size)
{
	return mems_ptr_calloc(n, size);
}

EXPORT void *realloc(void *p, size_t size)
{
	return mems_ptr_realloc(p, size);
}

EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return mems_ptr_realloc(p, total);
}

/* glibc's _mid_memalign: small alignments are malloc's; others round up
 * to a power of two. */
EXPORT void *memalign(size_t align, size_t size)
{
	if (align <= 16)
		return mems_ptr_malloc(size);
	if (align > SIZE_MAX / 2 + 1) {
		errno = EINVAL;
		return NULL;
	}
	if (align & (align - 1)) {
		size_t a = 32;
		while (a < align)
			a <<= 1;
		align = a;
	}
	return mems_ptr_aligned(align, size);
}

EXPORT void *aligned_alloc(size_t align, size_t size)
{
	return memalign(align, size);
}

EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
	if (align % sizeof(void *) || (align & (align - 1)) || align == 0)
		return EINVAL;
	void *p = memalign(align, size);
	if (!p)
		return errno;          /* and errno is set, as glibc leaves it */
	*out = p;
	return 0;
}

EXPORT void *valloc(size_t size)
{
	return memalign((size_t)sysconf(_SC_PAGESIZE), size);
}

EXPORT void *pvalloc(size_t size)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	if (size > SIZE_MAX - ps) {
		errno = ENOMEM;
		return NULL;
	}
	return memalign(ps, (size + ps - 1) / ps * ps);
}

EXPORT size_t malloc_usable_size(void *p)
{
	return mems_ptr_usable_size(p);
}

/* MeMS gives wholly free pages back as they become free. */
EXPORT int malloc_trim(size_t pad)
{
	(void)pad;
	return 0;
}

/* No tunables of glibc's apply; report success as glibc does for the
 * parameters it accepts. */
EXPORT int mallopt(int param, int value)
{
	(void)param;
	(void)value;
	return 1;
}

/* glibc-internal names */
EXPORT void *__libc_malloc(size_t size) { return malloc(size); }
EXPORT void __libc_free(void *p) { free(p); }
EXPORT void *__libc_calloc(size_t n, size_t size) { return calloc(n, size); }
EXPORT void *__libc_realloc(void *p, size_t size) { return realloc(p, size); }
EXPORT void *__libc_memalign(size_t align, size_t size) { return memalign(align, size); }
EXPORT void *__libc_valloc(size_t size) { return valloc(size); }
EXPORT void *__libc_pvalloc(size_t size) { return pvalloc(size); }
EXPORT int __posix_memalign(void **out, size_t align, size_t size)
{
	return posix_memalign(out, align, size);
}
