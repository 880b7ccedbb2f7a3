/*
 * preload_edge.c - the malloc family's edge cases, printed so that a plain
 * run (glibc) and a run under libmems-preload.so can be compared line for
 * line.  With --mems it instead checks that blocks come from MeMS.
 */
/* the point is to make the calls compilers warn about */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wnon-power-of-two-alignment"
#pragma clang diagnostic ignored "-Wbuiltin-assume-aligned-alignment"
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
#else
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mems.h"

static void show(const char *what, void *p, size_t align, size_t want)
{
	int e = errno;
	printf("%-34s %s errno=%-6s aligned=%d usable>=%d\n", what, p ? "ptr " : "NULL",
	       e == 0 ? "0" : e == ENOMEM ? "ENOMEM" : e == EINVAL ? "EINVAL" : "other",
	       p ? (int)((uintptr_t)p % align == 0) : -1,
	       p ? (int)(malloc_usable_size(p) >= want) : -1);
	errno = 0;
}

static void show_rc(const char *what, int rc, void *p, size_t align)
{
	printf("%-34s rc=%s errno=%d aligned=%d\n", what,
	       rc == 0 ? "0" : rc == EINVAL ? "EINVAL" : rc == ENOMEM ? "ENOMEM" : "other",
	       errno, rc == 0 ? (int)((uintptr_t)p % align == 0) : -1);
	errno = 0;
}

/* What malloc_info(options) writes, *len bytes, and in *rc what it gives. */
static char *info_xml(int options, int *rc, size_t *len)
{
	char *xml = NULL;
	FILE *f = open_memstream(&xml, len);
	*rc = malloc_info(options, f);
	fclose(f);
	return xml;
}

/* mallinfo2, mallinfo and malloc_trim: what holds under glibc and MeMS
 * alike */
static int info(void)
{
	enum { N = 20000, SIZE = 100 };
	static void *blk[N];
	struct mallinfo2 a = mallinfo2();
	for (int i = 0; i < N; i++)
		memset(blk[i] = malloc(SIZE), 1, SIZE);
	struct mallinfo2 b = mallinfo2();
	printf("mallinfo2: %d blocks of %d bytes add them to uordblks: %d\n", N, SIZE,
	       b.uordblks >= a.uordblks + (size_t)N * SIZE);
	printf("mallinfo2: arena = uordblks + fordblks: %d\n", b.arena == b.uordblks + b.fordblks);
	printf("mallinfo2: nothing mmapped apart: %d\n", b.hblks == 0 && b.hblkhd == 0);
	struct mallinfo old = mallinfo();
	printf("mallinfo agrees: %d\n", old.arena == (int)b.arena && old.uordblks == (int)b.uordblks &&
					 old.fordblks == (int)b.fordblks && old.ordblks == (int)b.ordblks);
	for (int i = 0; i < N; i++)
		free(blk[i]);
	struct mallinfo2 c = mallinfo2();
	printf("mallinfo2: freeing them takes them off: %d\n",
	       c.uordblks + (size_t)N * SIZE <= b.uordblks);
	printf("malloc_trim(0) after freeing them: %d\n", malloc_trim(0));
	printf("malloc_trim(0) again: %d\n", malloc_trim(0));
	int rc;
	size_t len;
	char *xml = info_xml(0, &rc, &len);
	printf("malloc_info(0): %d, one <malloc> element: %d\n", rc,
	       !strncmp(xml, "<malloc version=\"1\">\n", 21) && len > 32 &&
	       !strcmp(xml + len - 11, "\n</malloc>\n") && strstr(xml, "</malloc>") == xml + len - 10);
	free(xml);
	xml = info_xml(1, &rc, &len);
	printf("malloc_info(1): %s, wrote nothing: %d\n", rc == EINVAL ? "EINVAL" : "other", len == 0);
	free(xml);
	return 0;
}

static int edge(void)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	void *p = NULL, *q;
	int rc;
	errno = 0;
	show("malloc(0)", p = malloc(0), 16, 0); free(p);
	show("malloc(1)", p = malloc(1), 16, 1); free(p);
	show("malloc(SIZE_MAX)", malloc(SIZE_MAX), 1, 0);
	show("malloc(PTRDIFF_MAX)", malloc(PTRDIFF_MAX), 1, 0);
	show("malloc(1 << 60)", malloc((size_t)1 << 60), 1, 0);
	free(NULL);
	printf("free(NULL) errno=%d\n", errno);
	show("calloc(0, 0)", p = calloc(0, 0), 16, 0); free(p);
	show("calloc(SIZE_MAX / 2, 3)", calloc(SIZE_MAX / 2, 3), 1, 0);
	show("calloc(1000, 1000)", p = calloc(1000, 1000), 16, 1000000);
	int zero = 1;
	for (size_t i = 0; i < 1000000; i++)
		zero &= ((unsigned char *)p)[i] == 0;
	printf("calloc zeroed: %d\n", zero);
	free(p);
	show("realloc(NULL, 10)", p = realloc(NULL, 10), 16, 10);
	memcpy(p, "abcdefghi", 10);
	show("realloc(p, 5000)", p = realloc(p, 5000), 16, 5000);
	printf("realloc kept: %s\n", (char *)p);
	show("realloc(p, SIZE_MAX)", q = realloc(p, SIZE_MAX), 1, 0);
	printf("realloc failure kept: %s\n", (char *)p);
	show("realloc(p, 0)", realloc(p, 0), 1, 0);
	show("reallocarray(NULL, SIZE_MAX/2, 3)", reallocarray(NULL, SIZE_MAX / 2, 3), 1, 0);
	show("reallocarray(NULL, 4, 8)", p = reallocarray(NULL, 4, 8), 16, 32); free(p);
	rc = posix_memalign(&p, 3, 10); show_rc("posix_memalign(3)", rc, p, 1);
	rc = posix_memalign(&p, 0, 10); show_rc("posix_memalign(0)", rc, p, 1);
	rc = posix_memalign(&p, 12, 10); show_rc("posix_memalign(12)", rc, p, 1);
	rc = posix_memalign(&p, 8, 10); show_rc("posix_memalign(8)", rc, p, 8); free(p);
	rc = posix_memalign(&p, 4096, 10); show_rc("posix_memalign(4096)", rc, p, 4096); free(p);
	rc = posix_memalign(&p, 1 << 20, 10); show_rc("posix_memalign(1 MiB)", rc, p, 1 << 20); free(p);
	rc = posix_memalign(&p, 64 << 20, 10); show_rc("posix_memalign(64 MiB)", rc, p, 64 << 20); free(p);
	show("aligned_alloc(1 GiB, 100)", p = aligned_alloc(1 << 30, 100), 1 << 30, 100); free(p);
	rc = posix_memalign(&p, 64, SIZE_MAX); show_rc("posix_memalign(64, SIZE_MAX)", rc, p, 1);
	show("aligned_alloc(64, 100)", p = aligned_alloc(64, 100), 64, 100); free(p);
	show("aligned_alloc(24, 100)", p = aligned_alloc(24, 100), 32, 100); free(p);
	show("aligned_alloc(SIZE_MAX, 10)", aligned_alloc(SIZE_MAX, 10), 1, 0);
	show("memalign(3, 10)", p = memalign(3, 10), 16, 10); free(p);
	show("memalign(256, 10)", p = memalign(256, 10), 256, 10); free(p);
	show("valloc(10)", p = valloc(10), ps, 10); free(p);
	show("pvalloc(0)", p = pvalloc(0), ps, 0); free(p);
	show("pvalloc(ps + 1)", p = pvalloc(ps + 1), ps, 2 * ps); free(p);
	printf("malloc_usable_size(NULL) = %zu\n", malloc_usable_size(NULL));
	errno = 1234;
	p = malloc(100);
	q = calloc(10, 10);
	p = realloc(p, 10000);
	free(q);
	free(p);
	printf("errno kept across successful calls: %d\n", errno);
	return info();
}

/* Under the preload, blocks of every kind are MeMS blocks. */
static int blocks_are_mems(void)
{
	void *(*to_virtual)(const void *) = (void *(*)(const void *))dlsym(RTLD_DEFAULT,
									      "mems_ptr_to_virtual");
	if (!to_virtual) {
		fprintf(stderr, "preload_edge: mems_ptr_to_virtual not found: not preloaded?\n");
		return 1;
	}
	void *p = NULL;
	void *blocks[] = { malloc(10), calloc(3, 7), realloc(NULL, 100), aligned_alloc(4096, 10),
			   memalign(64, 3), valloc(1), (posix_memalign(&p, 256, 9), p), strdup("x") };
	for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
		if (!to_virtual(blocks[i])) {
			fprintf(stderr, "preload_edge: block %zu (%p) is not MeMS's\n", i, blocks[i]);
			return 1;
		}
	printf("all blocks are MeMS blocks\n");
	return 0;
}

/* The attribute attr of the first element that starts with elem in
 * malloc_info's XML; ~0 when there is none. */
static unsigned long long xml_value(const char *xml, const char *elem, const char *attr)
{
	const char *e = strstr(xml, elem), *end = e ? strstr(e, "/>") : NULL;
	char key[32];
	snprintf(key, sizeof key, " %s=\"", attr);
	const char *a = e ? strstr(e, key) : NULL;
	return a && a < end ? strtoull(a + strlen(key), NULL, 10) : ~0ULL;
}

/* --info: mallinfo2, mallinfo and malloc_info are MeMS's stats,
 * malloc_trim gives the free pages a purge delay keeps back at once,
 * malloc_stats prints the stats block on stderr. */
static int info_is_mems(void)
{
	int (*get)(struct mems_stats *) = (int (*)(struct mems_stats *))dlsym(RTLD_DEFAULT,
									     "mems_stats_get");
	if (!get) {
		fprintf(stderr, "preload_edge: mems_stats_get not found: not preloaded?\n");
		return 1;
	}
	enum { N = 20000 };
	static void *blk[N];
	for (int i = 0; i < N; i++)
		memset(blk[i] = malloc(100 + i % 3000), 1, 100 + i % 3000);
	for (int i = 0; i < N; i += 2)
		free(blk[i]);
	char *xml = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&xml, &len);   /* before the figures: it allocates */
	struct mems_stats st;
	struct mallinfo2 mi = mallinfo2();
	struct mallinfo old = mallinfo();
	get(&st);
	malloc_info(0, f);      /* the same figures: nothing allocated since */
	fclose(f);
	printf("arena: %d\n", mi.arena == st.pages_used * st.page_size);
	printf("uordblks: %d\n", mi.uordblks == st.bytes_in_use - st.small_run_bytes + st.small_bytes);
	printf("fordblks: %d\n", mi.fordblks == mi.arena - mi.uordblks);
	printf("ordblks: %d\n", mi.ordblks == st.hole_segments);
	printf("mallinfo: %d\n", old.uordblks == (int)mi.uordblks && old.arena == (int)mi.arena);
	unsigned long long holes = xml_value(xml, "<total type=\"rest\"", "count"),
			   free_bytes = xml_value(xml, "<total type=\"rest\"", "size"),
			   arena = xml_value(xml, "<system type=\"current\"", "size"),
			   span = xml_value(xml, "<aspace type=\"total\"", "size"),
			   committed = xml_value(xml, "<aspace type=\"mprotect\"", "size");
	/* <sizes>: the holes by power-of-two class, in rising order */
	unsigned long long n_sized = 0, sized = 0, last_to = 0;
	int classes_ok = 1;
	for (const char *e = xml; (e = strstr(e, "<size ")); e++) {
		unsigned long long from = xml_value(e, "<size ", "from"), to = xml_value(e, "<size ", "to");
		unsigned long long n = xml_value(e, "<size ", "count"), tot = xml_value(e, "<size ", "total");
		classes_ok &= from <= to && from > last_to && 63 - __builtin_clzll(from) ==
			      63 - __builtin_clzll(to) && n > 0 && tot >= n * from && tot <= n * to;
		last_to = to;
		n_sized += n;
		sized += tot;
	}
	free(xml);
	printf("malloc_info: holes %d, free bytes %d, arena %d, span %d, committed %d\n",
	       holes == st.hole_segments, free_bytes == mi.fordblks, arena == mi.arena,
	       span == st.span_size, committed == st.pages_mapped * st.os_page_size);
	printf("malloc_info sizes: classes %d, holes %d, their bytes %d\n", classes_ok && n_sized > 1,
	       n_sized == st.hole_segments, sized == st.bytes_in_holes);
	for (int i = 1; i < N; i += 2)
		free(blk[i]);
	get(&st);
	uint64_t touched = st.pages_touched, released = st.pages_released;
	int r = malloc_trim(0);
	get(&st);
	printf("malloc_trim: %d, touched pages down: %d, by the pages released: %d\n", r,
	       st.pages_touched < touched, touched - st.pages_touched == st.pages_released - released);
	printf("malloc_trim again: %d\n", malloc_trim(0));
	fflush(stdout);
	malloc_stats();
	return 0;
}

/* --option NAME: the value MeMS gives the option (its defaults under the
 * preload library differ from libmems's). */
static int show_option(const char *name)
{
	int (*get)(const char *, char *, size_t) =
		(int (*)(const char *, char *, size_t))dlsym(RTLD_DEFAULT, "mems_option_get");
	char buf[64];
	if (!get || get(name, buf, sizeof buf) < 0) {
		fprintf(stderr, "preload_edge: no option %s: not preloaded?\n", name);
		return 1;
	}
	printf("%s=%s\n", name, buf);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[1], "--option"))
		return show_option(argv[2]);
	if (argc > 1 && !strcmp(argv[1], "--mems"))
		return blocks_are_mems();
	if (argc > 1 && !strcmp(argv[1], "--info"))
		return info_is_mems();
	return edge();
}
