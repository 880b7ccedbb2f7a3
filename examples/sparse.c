/*
 * sparse.c - a large allocation touched sparsely: mapped vs touched pages.
 *
 * Allocates 1 GiB, writes one byte in every 256th page (every MiB), and
 * shows that only the pages written became resident; frees it and shows
 * them given back; then fills 64 MiB sequentially, where fault-around
 * populates up to MEMS_FAULT_AROUND pages per fault.
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
	uint64_t sparse_faults = st.faults;
	char *w = mems_malloc(64 << 20);
	memset(mems_get(w), 1, 64 << 20);
	show("after filling 64 MiB");
	mems_stats_get(&st);
	if (st.mode == MEMS_PAGER_KERNEL) {
		printf("\nPager kernel (%s): the kernel pages on its own, so\n"
		       "MeMS sees no faults; touched pages come from mincore(2).\n", st.mode_reason);
		mems_finish();
		return 0;
	}
	printf("\nPager %s.  Sparse: %lu writes, %lu faults, one page each.\n"
	       "Sequential: %d pages in %lu faults (fault-around doubles on a sequential\n"
	       "run, up to %s pages a fault)",
	       st.mode_name, (unsigned long)(size / stride), (unsigned long)sparse_faults,
	       (64 << 20) / 4096, (unsigned long)(st.faults - sparse_faults), fa);
	if (st.pages_ahead)
		printf(";\n%lu of them populated ahead by the fault-ahead helper thread, with\n"
		       "no fault, while the handler populated the window before them",
		       (unsigned long)st.pages_ahead);
	printf(".\n");
	mems_finish();
	return 0;
}
