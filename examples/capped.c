/*
 * capped.c - a heap eight times larger than the memory it may keep.
 *
 * Sets a resident cap of 32 MiB, allocates 256 MiB with the seed API,
 * writes every page, reads every page back twice and checks it, and shows
 * how the pager kept the heap under the cap: pages evicted to the store,
 * read back in, and dropped clean (read, not written, since their last
 * write-out).  Needs full userfaultfd (root, as `make demo` runs).
 */
#include <string.h>

#include "mems.h"

static long rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "VmRSS:", 6))
			kib = strtol(line + 6, NULL, 10);
	fclose(f);
	return kib;
}

static void show(const char *when)
{
	struct mems_stats st;
	mems_stats_get(&st);
	printf("%-24s touched %5lu pages (cap %lu)  evicted %6lu  read back %6lu  "
	       "clean drops %6lu  store %4lu MiB  RSS %6ld KiB\n",
	       when, (unsigned long)st.pages_touched, (unsigned long)st.resident_cap,
	       (unsigned long)st.evictions, (unsigned long)st.page_ins,
	       (unsigned long)st.clean_drops, (unsigned long)(st.store_bytes >> 20), rss_kib());
}

int main(void)
{
	const size_t size = (size_t)256 << 20, ps = 4096;
	if (mems_option_set("resident_max", "32M") != 0 || mems_try_init() != 0) {
		fprintf(stderr, "capped: no MeMS with a resident cap here (see the message above)\n");
		return 1;
	}
	show("after mems_init");
	void *v = mems_malloc(size);
	unsigned char *p = mems_get(v);
	if (!p)
		return 1;
	for (size_t i = 0; i < size; i += ps)
		memset(p + i, (int)(i / ps % 251), ps);
	show("256 MiB written");
	size_t bad = 0;
	for (int pass = 1; pass <= 2; pass++) {
		for (size_t i = 0; i < size; i += ps)
			bad += p[i] != (unsigned char)(i / ps % 251) ||
			       p[i + ps - 1] != (unsigned char)(i / ps % 251);
		show(pass == 1 ? "read back once" : "read back twice");
	}
	printf("pages with wrong contents: %zu\n", bad);
	mems_free(v);
	show("after mems_free");
	mems_print_stats();
	mems_finish();
	return bad != 0;
}
