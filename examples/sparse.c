/*
 * sparse.c - a large allocation touched sparsely: mapped vs touched pages.
 *
 * Allocates 1 GiB, writes one byte in every 256th page (every MiB), and
 * shows that only the pages written (and their fault-around windows, for
 * the pager) became resident; then frees it and shows them given back.
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
	printf("%-28s mapped %8lu pages  touched %6lu pages  faults %5lu  RSS %7ld KiB\n",
	       when, (unsigned long)st.pages_mapped, (unsigned long)st.pages_touched,
	       (unsigned long)st.faults, rss_kib());
}

int main(void)
{
	const size_t size = (size_t)1 << 30, stride = (size_t)1 << 20;
	char fa[16] = "";

	mems_init();
	mems_option_get("fault_around", fa, sizeof fa);
	show("after mems_init");
	char *v = mems_malloc(size);
	if (!v) {
		perror("mems_malloc");
		return 1;
	}
	show("after mems_malloc(1 GiB)");
	char *p = mems_get(v);
	for (size_t off = 0; off < size; off += stride)
		p[off] = (char)off;
	show("after writing every MiB");
	printf("\n");
	mems_print_stats();
	printf("\n");
	mems_free(v);
	show("after mems_free");
	struct mems_stats st;
	mems_stats_get(&st);
	printf("\nPager %s; fault-around window %s pages: each fault populates the\n"
	       "faulting page and the missing pages after it, so %lu writes cost %lu faults.\n",
	       st.mode_name, fa, (unsigned long)(size / stride), (unsigned long)st.faults);
	mems_finish();
	return 0;
}
