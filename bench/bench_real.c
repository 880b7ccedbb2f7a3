/*
 * bench_real.c - programs run under each allocator in the same run, as
 * ratios against glibc's malloc.
 *
 *   bench_real BUILD_DIR
 *
 *  1. The allocation churn (bench/churn.c: 20,000 slots, 5M operations,
 *     contents checked) under glibc, MeMS (libmems-preload.so) and the
 *     peers that are installed (jemalloc, mimalloc, tcmalloc): wall time
 *     of the work, peak RSS, and RSS a second after freeing everything.
 *  2. The churn with one thread and with two, under glibc and MeMS:
 *     throughput of two threads over one, with the churn's 20,000 live
 *     slots and 2M operations split between the threads, and with each
 *     thread running its own churn of 20,000 slots (twice the memory).
 *  3. Real programs (python3 building dicts and lists, sqlite3 with an
 *     index, sort of a large file): wall time and peak RSS.
 *  4. The churn under MeMS by MEMS_PURGE_DELAY, and in kernel mode
 *     (MEMS_PAGER=kernel: no userfaultfd, as in a fork child).
 * Each figure is the median of REPS runs (PROG_REPS for the real
 * programs and THREAD_REPS for the churn with threads, which take a
 * fraction of a second and need not wait to read RSS), the modes alternating; peak RSS
 * is the largest.  With MEMS_BENCH_RESULTS set, the ratios also go there
 * for bench_report.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchutil.h"

#define REPS 5
#define PROG_REPS 11     /* the real programs are short: more runs */
#define THREAD_REPS 9    /* so is the churn with threads, which need not wait for RSS */

static char work[] = "/tmp/mems-bench-XXXXXX";

/* One run with stdout in out (up to len bytes); wall seconds, *rss_kib the
 * peak RSS of the largest process. */
static double run(const char *cmd, const char *preload, long *rss_kib, char *out, size_t len)
{
	char path[64];
	snprintf(path, sizeof path, "%s/stdout", work);
	fflush(stdout);
	double t0 = now();
	pid_t pid = fork();
	if (pid == 0) {
		if (chdir(work) != 0)
			_exit(126);
		if (preload)
			setenv("LD_PRELOAD", preload, 1);
		else
			unsetenv("LD_PRELOAD");
		if (!freopen(path, "w", stdout))
			_exit(126);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	int status;
	struct rusage ru;
	wait4(pid, &status, 0, &ru);
	double t = now() - t0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench: %s failed (%s)\n", cmd, preload ? preload : "glibc");
		exit(1);
	}
	*rss_kib = ru.ru_maxrss;
	if (out) {
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(out, 1, len - 1, f) : 0;
		out[n] = 0;
		if (f)
			fclose(f);
	}
	return t;
}

/* A churn run: the work's seconds and the RSS after freeing everything. */
struct churned { double secs, after_kib; long peak_kib; };

static struct churned churn_run(const char *cmd, const char *preload)
{
	char out[512];
	struct churned c = { 0, 0, 0 };
	run(cmd, preload, &c.peak_kib, out, sizeof out);
	const char *s = strstr(out, "seconds "), *a = strstr(out, "rss_after_free_kib ");
	if (!s || !a || !strstr(out, "bad 0")) {
		fprintf(stderr, "bench: unexpected churn output: %s\n", out);
		exit(1);
	}
	c.secs = atof(s + 8);
	c.after_kib = atof(a + 19);
	return c;
}

/* Median seconds, median RSS after free, largest peak of n runs (n <= REPS). */
static struct churned churn_fold(const struct churned *c, int n)
{
	double s[REPS], a[REPS];
	long peak = 0;
	for (int k = 0; k < n; k++) {
		s[k] = c[k].secs;
		a[k] = c[k].after_kib;
		peak = c[k].peak_kib > peak ? c[k].peak_kib : peak;
	}
	return (struct churned){ median(s, n), median(a, n), peak };
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench_real BUILD_DIR\n");
		return 2;
	}
	char preload[4200], churn[4200], cmd[4096];
	if (!realpath(argv[1], cmd)) {
		perror(argv[1]);
		return 2;
	}
	snprintf(preload, sizeof preload, "%s/libmems-preload.so", cmd);
	snprintf(churn, sizeof churn, "%s/bench/churn", cmd);
	if (!mkdtemp(work)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(cmd, sizeof cmd,
		 "cd %s && awk 'BEGIN { s = 7; for (i = 0; i < 1500000; i++) { s = (s * 1103515245 + 12345) %% 2147483648; "
		 "printf \"%%d line %%d\\n\", s %% 100000, i } }' > big.txt && "
		 "printf 'd = {(\"key%%%%d\" %%%% i): [i, str(i) * 8] for i in range(300000)}\\n"
		 "l = [bytes(600 + i %%%% 900) for i in range(150000)]\\nprint(len(d), len(l))\\n' > build.py && "
		 "printf 'CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER);\\n"
		 "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) "
		 "INSERT INTO t SELECT x, \"n\" || x, x %%%% 97 FROM c;\\nCREATE INDEX g ON t(grp);\\n"
		 "SELECT grp, count(*) FROM t GROUP BY grp;\\n' > rows.sql", work);
	if (system(cmd) != 0) {
		fprintf(stderr, "bench: cannot make the inputs\n");
		return 1;
	}

	/* 1. the churn under every allocator, the runs interleaved */
	enum { NAL = 2 + NPEER_LIBS };
	struct bench_alloc al[NAL] = { { "glibc", NULL }, { "MeMS", preload } };
	char paths[NPEER_LIBS][256];
	peer_allocs(al + 2, paths);
	char churn_cmd[4300];
	snprintf(churn_cmd, sizeof churn_cmd, "%s 20000 5000000", churn);
	struct churned runs[NAL][REPS], res[NAL];
	for (int k = 0; k < REPS; k++)
		for (int a = 0; a < NAL; a++)
			if (a < 2 || al[a].lib)
				runs[a][k] = churn_run(churn_cmd, al[a].lib);
	for (int a = 0; a < NAL; a++)
		if (a < 2 || al[a].lib)
			res[a] = churn_fold(runs[a], REPS);
	printf("allocation churn (20,000 slots, 5M operations, sizes 2-2048 B and 0.1%% of 64 KiB-1 MiB,\n"
	       "contents checked), LD_PRELOAD, median of %d runs; ratios against glibc\n\n", REPS);
	printf("  %-10s %8s %7s   %9s %7s   %14s %7s\n", "", "work s", "time", "peak MiB", "peak",
	       "after free MiB", "after");
	double g_s = res[0].secs, g_a = res[0].after_kib;
	for (int a = 0; a < NAL; a++) {
		if (a >= 2 && !al[a].lib) {
			printf("  %-10s not installed (apt-get install %s)\n", al[a].name,
			       peer_lib(a - 2)->package);
			continue;
		}
		double s = res[a].secs, af = res[a].after_kib;
		double pk = (double)res[a].peak_kib / (double)res[0].peak_kib;
		printf("  %-10s %8.2f %6.2fx   %9.1f %6.2fx   %14.1f %6.2fx\n", al[a].name, s, s / g_s,
		       res[a].peak_kib / 1024.0, pk, af / 1024.0, af / g_a);
		if (a == 1) {
			bench_result("churn_time_vs_glibc", s / g_s);
			bench_result("churn_peak_rss_vs_glibc", pk);
			bench_result("churn_rss_after_free_vs_glibc", af / g_a);
		} else if (a >= 2) {
			char key[64];
			snprintf(key, sizeof key, "churn_time_vs_%s", al[a].name);
			bench_result(key, res[1].secs / s);
		}
	}

	/* 2. two threads against one: the churn's 20,000 live slots and 2M
	 * operations split between them (the target), and each thread its own
	 * 20,000 slots (twice the memory: past this machine's L3, every
	 * allocator's churn loop runs slower per operation) */
	const struct { const char *key, *one, *two; double work; } tw[] = {
		{ "threads_2_vs_1", "20000 2000000 1 0", "10000 1000000 2 0", 1 },
		{ "threads_2_vs_1_own", "20000 1000000 1 0", "20000 1000000 2 0", 2 },
	};
	double x[2][2];
	for (int a = 0; a < 2; a++)
		for (int w = 0; w < 2; w++) {
			double one[THREAD_REPS], two[THREAD_REPS];
			char c1[4300], c2[4300];
			snprintf(c1, sizeof c1, "%s %s", churn, tw[w].one);
			snprintf(c2, sizeof c2, "%s %s", churn, tw[w].two);
			for (int k = 0; k < THREAD_REPS; k++) {
				one[k] = churn_run(c1, al[a].lib).secs;
				two[k] = churn_run(c2, al[a].lib).secs;
			}
			x[a][w] = tw[w].work * median(one, THREAD_REPS) / median(two, THREAD_REPS);
			char key[64];
			snprintf(key, sizeof key, "%s_%s", tw[w].key, a ? "mems" : "glibc");
			bench_result(key, x[a][w]);
		}
	printf("\nthe churn with 1 thread and with 2: throughput of 2 threads over 1\n"
	       "(2.00x is perfect on 2 cores), median of %d runs.  Split: 1 thread with\n"
	       "20,000 slots and 2M operations against 2 with 10,000 and 1M each.  Each its\n"
	       "own: 1 thread with 20,000 slots and 1M operations against 2 with as many each\n\n",
	       THREAD_REPS);
	printf("  %-10s %22s %22s\n", "", "the churn split", "each its own churn");
	printf("  %-10s %22s %22s\n", "", "(2 x 10,000 slots)", "(2 x 20,000 slots)");
	for (int a = 0; a < 2; a++)
		printf("  %-10s %21.2fx %21.2fx\n", al[a].name, x[a][0], x[a][1]);

	/* 3. real programs */
	const struct { const char *name, *key, *cmd; } progs[] = {
		{ "python3 dicts and lists", "python3", "/usr/bin/python3 build.py" },
		{ "sqlite3 100,000 rows + index", "sqlite3", "rm -f db && sqlite3 db < rows.sql" },
		{ "sort 1,500,000 lines", "sort", "sort -k2 big.txt" },
	};
	printf("\nreal programs, glibc vs MeMS (LD_PRELOAD): wall time and peak RSS, median of %d runs\n\n",
	       PROG_REPS);
	printf("  %-30s %9s %9s %7s   %9s %9s %7s\n", "", "glibc s", "MeMS s", "ratio",
	       "glibc MiB", "MeMS MiB", "ratio");
	for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
		double tg[PROG_REPS], tm[PROG_REPS];
		long rg = 0, rm = 0, r;
		for (int k = 0; k < PROG_REPS; k++) {
			tg[k] = run(progs[i].cmd, NULL, &r, NULL, 0);
			rg = r > rg ? r : rg;
			tm[k] = run(progs[i].cmd, preload, &r, NULL, 0);
			rm = r > rm ? r : rm;
		}
		double g = median(tg, PROG_REPS), m = median(tm, PROG_REPS);
		printf("  %-30s %9.3f %9.3f %6.2fx   %9.1f %9.1f %6.2fx\n", progs[i].name, g, m,
		       m / g, rg / 1024.0, rm / 1024.0, (double)rm / (double)rg);
		char key[64];
		snprintf(key, sizeof key, "%s_time_vs_glibc", progs[i].key);
		bench_result(key, m / g);
	}

	/* 4. the purge delay (MEMS_PURGE_DELAY) on the churn, and in kernel
	 * mode (which keeps it) the preload's default against none */
	static const struct { const char *label, *env; } delays[] = {
		{ "0", "MEMS_PURGE_DELAY=0" },
		{ "10", "MEMS_PURGE_DELAY=10" },
		{ "100", "MEMS_PURGE_DELAY=100" },
		{ "1000", "MEMS_PURGE_DELAY=1000" },
		{ "-1", "MEMS_PURGE_DELAY=-1" },
		{ "0 kernel", "MEMS_PAGER=kernel MEMS_PURGE_DELAY=0" },
		{ "100 kernel", "MEMS_PAGER=kernel MEMS_PURGE_DELAY=100" },
	};
	enum { DREPS = 3, NDELAYS = sizeof delays / sizeof delays[0] };
	char sweep[4300];
	snprintf(sweep, sizeof sweep, "%s 20000 2000000", churn);
	/* glibc and every row in turn, so that a slow spell falls on all */
	struct churned gr[DREPS], dr[NDELAYS][DREPS];
	for (int k = 0; k < DREPS; k++) {
		gr[k] = churn_run(sweep, NULL);
		for (size_t d = 0; d < NDELAYS; d++) {
			char dcmd[4400];
			snprintf(dcmd, sizeof dcmd, "%s %s", delays[d].env, sweep);
			dr[d][k] = churn_run(dcmd, preload);
		}
	}
	struct churned g = churn_fold(gr, DREPS);
	printf("\nthe churn (2M operations) under MeMS by MEMS_PURGE_DELAY (ms; -1 never; \"kernel\":\n"
	       "MEMS_PAGER=kernel), against glibc in the same run, median of %d interleaved runs\n\n",
	       DREPS);
	printf("  %-10s %8s %7s %9s %7s %14s %7s\n", "delay", "work s", "time", "peak MiB", "peak",
	       "after free MiB", "after");
	for (size_t d = 0; d < NDELAYS; d++) {
		struct churned c = churn_fold(dr[d], DREPS);
		if (!strcmp(delays[d].label, "100 kernel"))
			bench_result("churn_kernel_mode_vs_glibc", c.secs / g.secs);
		printf("  %-10s %8.2f %6.2fx %9.1f %6.2fx %14.1f %6.2fx\n", delays[d].label, c.secs,
		       c.secs / g.secs, c.peak_kib / 1024.0, (double)c.peak_kib / (double)g.peak_kib,
		       c.after_kib / 1024.0, c.after_kib / g.after_kib);
	}
	snprintf(cmd, sizeof cmd, "rm -rf %s", work);
	return system(cmd) != 0;
}
