/*
 * bench_report.c - the summary of one run of make bench: each figure the
 * benchmarks wrote (MEMS_BENCH_RESULTS, "key value" lines) against the
 * targets of docs/PERFORMANCE.md, as a table, and all of them as JSON.
 *
 *   bench_report RESULTS JSON_OUT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fig { char key[96]; double v; };

static const struct target {
	const char *key, *what;
	char op;                 /* '<' at most, '>' at least, 0 shown only */
	double limit;
} targets[] = {
	{ "first_touch_seq_vs_kernel", "first touch, sequential / kernel paging", '<', 0.5 },
	{ "first_touch_seq_vs_populate_write", "first touch, sequential / POPULATE_WRITE", '<', 1.1 },
	{ "first_touch_random_vs_kernel", "first touch, random / kernel paging", '<', 2.0 },
	{ "sparse_1_in_16_pages_per_page_written", "1 page in 16 at random: pages per page written", 0, 0 },
	{ "sparse_1_in_8_pages_per_page_written", "1 page in 8 at random: pages per page written", 0, 0 },
	{ "churn_time_vs_glibc", "churn time / glibc", '<', 1.0 },
	{ "churn_time_vs_jemalloc", "churn time / jemalloc", 0, 0 },
	{ "churn_time_vs_mimalloc", "churn time / mimalloc", 0, 0 },
	{ "churn_time_vs_tcmalloc", "churn time / tcmalloc", 0, 0 },
	{ "churn_kernel_mode_vs_glibc", "churn time in kernel mode / glibc, 2M operations", 0, 0 },
	{ "churn_peak_rss_vs_glibc", "churn peak RSS / glibc", '<', 1.1 },
	{ "churn_rss_after_free_vs_glibc", "churn RSS after freeing all / glibc", '<', 0.25 },
	{ "python3_time_vs_glibc", "python3 time / glibc", '<', 1.2 },
	{ "sqlite3_time_vs_glibc", "sqlite3 time / glibc", '<', 1.2 },
	{ "sort_time_vs_glibc", "sort time / glibc", '<', 1.2 },
	{ "scaling_100k_vs_100", "seed API cost, 100,000 / 100 live segments", '<', 1.5 },
	{ "scaling_100k_vs_100_glibc", "  (glibc malloc, same pattern)", 0, 0 },
	{ "scaling_100k_vs_100_jemalloc", "  (jemalloc, same pattern)", 0, 0 },
	{ "scaling_100k_vs_100_mimalloc", "  (mimalloc, same pattern)", 0, 0 },
	{ "scaling_100k_vs_100_tcmalloc", "  (tcmalloc, same pattern)", 0, 0 },
	{ "threads_2_vs_1_mems", "churn throughput, 2 threads / 1, slots split", '>', 1.5 },
	{ "threads_2_vs_1_glibc", "  (glibc: 2 threads / 1)", 0, 0 },
	{ "threads_2_vs_1_own_mems", "  2 threads / 1, each its own 20,000 slots", 0, 0 },
	{ "threads_2_vs_1_own_glibc", "    (glibc: each its own slots)", 0, 0 },
	{ "tracing_seq_on_vs_off", "first touch with MEMS_TRACE on / off", 0, 0 },
};

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: bench_report RESULTS JSON_OUT\n");
		return 2;
	}
	FILE *f = fopen(argv[1], "r");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	static struct fig figs[256];
	size_t n = 0;
	while (n < 256 && fscanf(f, "%95s %lf", figs[n].key, &figs[n].v) == 2)
		n++;
	fclose(f);
	printf("MeMS performance targets (issue 6), this run\n\n");
	printf("  %-48s %9s %9s  %s\n", "", "measured", "target", "met");
	int met = 0, total = 0;
	for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
		const struct fig *x = NULL;
		for (size_t i = 0; i < n; i++)
			if (!strcmp(figs[i].key, targets[t].key))
				x = &figs[i];
		if (!x) {
			printf("  %-48s %9s\n", targets[t].what, "-");
			continue;
		}
		if (!targets[t].op) {
			printf("  %-48s %8.2fx\n", targets[t].what, x->v);
			continue;
		}
		int ok = targets[t].op == '<' ? x->v <= targets[t].limit : x->v >= targets[t].limit;
		met += ok;
		total++;
		printf("  %-48s %8.2fx  %s %5.2fx  %s\n", targets[t].what, x->v,
		       targets[t].op == '<' ? "<=" : ">=", targets[t].limit, ok ? "yes" : "no");
	}
	printf("\n  %d of %d targets met\n", met, total);
	FILE *j = fopen(argv[2], "w");
	if (!j) {
		perror(argv[2]);
		return 1;
	}
	fprintf(j, "{");
	for (size_t i = 0; i < n; i++)
		fprintf(j, "%s\"%s\":%.6g", i ? "," : "", figs[i].key, figs[i].v);
	fprintf(j, "}\n");
	fclose(j);
	printf("  (all figures as JSON: %s)\n", argv[2]);
	return 0;
}
