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
 * too, for code that calls them directly.  The calls that ask about the
 * heap (mallinfo2, mallinfo, malloc_info, malloc_stats) answer from
 * MeMS's stats, and malloc_trim gives the free pages a purge delay keeps
 * back at once.
 * Everything else comes from the library itself: MeMS initialises on the
 * first allocation, before main if a constructor allocates; calls that
 * libc makes from inside MeMS go to the bootstrap arena; the handler
 * thread never allocates.
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "mems.h"
#include "purge.h"

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

/* The pages the purge delay keeps resident go back now, as glibc's trim
 * gives its free memory back: 1 when some went, else 0.  pad, which
 * glibc keeps at the top of its heap, has nothing here to apply to. */
EXPORT int malloc_trim(size_t pad)
{
	(void)pad;
	return purge_now() > 0;
}

/* glibc's fields, from MeMS's stats: arena is the bytes of all main
 * nodes, uordblks what the program holds (blocks in runs by their class
 * size, every other block by its segment), fordblks the rest, ordblks the
 * holes.  Nothing is mmapped apart (hblks, hblkhd 0), and no part of the
 * heap is kept for trimming alone (keepcost 0). */
static struct mallinfo2 info_of(const struct mems_stats *st)
{
	struct mallinfo2 mi = { 0 };
	mi.arena = (size_t)(st->pages_used * st->page_size);
	mi.ordblks = (size_t)st->hole_segments;
	mi.uordblks = (size_t)(st->bytes_in_use - st->small_run_bytes + st->small_bytes);
	mi.fordblks = mi.arena - mi.uordblks;
	return mi;
}

EXPORT struct mallinfo2 mallinfo2(void)
{
	struct mems_stats st;
	if (mems_stats_get(&st) != 0)
		return (struct mallinfo2){ 0 };
	return info_of(&st);
}

/* glibc's old interface, its fields ints: each is capped at INT_MAX where
 * glibc's wrap. */
static int as_int(size_t v)
{
	return v > INT_MAX ? INT_MAX : (int)v;
}

EXPORT struct mallinfo mallinfo(void)
{
	struct mallinfo2 m = mallinfo2();
	struct mallinfo mi = { 0 };
	mi.arena = as_int(m.arena);
	mi.ordblks = as_int(m.ordblks);
	mi.uordblks = as_int(m.uordblks);
	mi.fordblks = as_int(m.fordblks);
	return mi;
}

/* glibc's XML, in its elements, from one snapshot of MeMS's stats: one
 * heap; <sizes> the holes by power-of-two class (from and to the smallest
 * and the largest in it, as glibc gives them for a bin), "rest" the holes
 * and the free bytes (fordblks, which counts the free blocks of small
 * runs too), "system" the bytes of all main nodes (arena; MeMS keeps no
 * peak, so max is the same), "aspace" the span reserved and, as
 * "mprotect", the part of it committed read/write. */
EXPORT int malloc_info(int options, FILE *fp)
{
	if (options != 0)
		return EINVAL;
	struct mems_stats st;
	struct mems_hole_class cls[64];
	mems_stats_holes(&st, cls);
	struct mallinfo2 mi = info_of(&st);
	unsigned long long arena = mi.arena, holes = mi.ordblks, free_bytes = mi.fordblks;
	unsigned long long span = st.span_size, committed = st.pages_mapped * st.os_page_size;
	static const char totals[] =
		"<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
		"<total type=\"rest\" count=\"%llu\" size=\"%llu\"/>\n%s"
		"<system type=\"current\" size=\"%llu\"/>\n"
		"<system type=\"max\" size=\"%llu\"/>\n"
		"<aspace type=\"total\" size=\"%llu\"/>\n"
		"<aspace type=\"mprotect\" size=\"%llu\"/>\n";
	fputs("<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n", fp);
	for (int k = 0; k < 64; k++)
		if (cls[k].count)
			fprintf(fp, "  <size from=\"%llu\" to=\"%llu\" total=\"%llu\" count=\"%llu\"/>\n",
				(unsigned long long)cls[k].min, (unsigned long long)cls[k].max,
				(unsigned long long)cls[k].bytes, (unsigned long long)cls[k].count);
	fputs("</sizes>\n", fp);
	fprintf(fp, totals, holes, free_bytes, "", arena, arena, span, committed);
	fputs("</heap>\n", fp);
	fprintf(fp, totals, holes, free_bytes, "<total type=\"mmap\" count=\"0\" size=\"0\"/>\n",
		arena, arena, span, committed);
	fputs("</malloc>\n", fp);
	return 0;
}

/* glibc prints its arenas' figures on stderr; this prints MeMS's stats
 * block there. */
EXPORT void malloc_stats(void)
{
	mems_stats_to_fd(STDERR_FILENO);
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
