/*
 * bench_real.c - wall time and peak RSS of programs run plainly (glibc)
 * and under libmems-preload.so, in the same run, as ratios.
 *
 *   bench_real BUILD_DIR
 *
 * The programs: the allocation churn (bench/churn.c) and some of the real
 * programs of the test suite (python3 building dicts and lists, sqlite3
 * with an index, sort of a large file).  Each runs REPS times in each mode,
 * alternating; the median wall time and the largest peak RSS are kept.
 * Then the churn again under each of several purge delays.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REPS 3

static char work[] = "/tmp/mems-bench-XXXXXX";

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* One run; wall seconds, *rss_kib peak RSS of the largest process. */
static double run(const char *cmd, const char *preload, long *rss_kib)
{
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
		if (!freopen("/dev/null", "w", stdout))
			_exit(126);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	int status;
	struct rusage ru;
	wait4(pid, &status, 0, &ru);
	double t = now() - t0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench: %s failed (%s)\n", cmd, preload ? "MeMS" : "glibc");
		exit(1);
	}
	*rss_kib = ru.ru_maxrss;
	return t;
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
		 "cd %s && awk 'BEGIN { s = 7; for (i = 0; i < 400000; i++) { s = (s * 1103515245 + 12345) %% 2147483648; "
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
	char churn_cmd[4300];
	snprintf(churn_cmd, sizeof churn_cmd, "%s 20000 2000000", churn);
	const struct { const char *name, *cmd; } progs[] = {
		{ "churn (20000 slots, 2M ops)", churn_cmd },
		{ "python3 dicts and lists", "/usr/bin/python3 build.py" },
		{ "sqlite3 100,000 rows + index", "rm -f db && sqlite3 db < rows.sql" },
		{ "sort 400,000 lines", "sort -k2 big.txt" },
	};
	printf("wall time and peak RSS, glibc vs MeMS (LD_PRELOAD), median of %d runs each\n\n", REPS);
	printf("  %-30s %9s %9s %7s   %9s %9s %7s\n", "", "glibc s", "MeMS s", "ratio",
	       "glibc MiB", "MeMS MiB", "ratio");
	for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
		double tg[REPS], tm[REPS];
		long rg = 0, rm = 0, r;
		for (int k = 0; k < REPS; k++) {
			tg[k] = run(progs[i].cmd, NULL, &r);
			rg = r > rg ? r : rg;
			tm[k] = run(progs[i].cmd, preload, &r);
			rm = r > rm ? r : rm;
		}
		qsort(tg, REPS, sizeof *tg, cmp);
		qsort(tm, REPS, sizeof *tm, cmp);
		double g = tg[REPS / 2], m = tm[REPS / 2];
		printf("  %-30s %9.2f %9.2f %6.2fx   %9.1f %9.1f %6.2fx\n", progs[i].name, g, m,
		       m / g, rg / 1024.0, rm / 1024.0, (double)rm / (double)rg);
	}

	/* the purge delay (MEMS_PURGE_DELAY) on the churn: how long wholly
	 * free pages stay before they go back, against time and peak RSS */
	static const char *const delays[] = { "0", "10", "100", "1000", "-1" };
	double tg[REPS];
	long rg = 0, r;
	for (int k = 0; k < REPS; k++) {
		tg[k] = run(churn_cmd, NULL, &r);
		rg = r > rg ? r : rg;
	}
	qsort(tg, REPS, sizeof *tg, cmp);
	printf("\nchurn under MeMS by MEMS_PURGE_DELAY (ms; -1 never), against glibc in the same run\n");
	printf("  %-8s %9s %7s %9s %7s\n", "delay", "MeMS s", "time", "MeMS MiB", "RSS");
	for (size_t d = 0; d < sizeof delays / sizeof delays[0]; d++) {
		char dcmd[4400];
		double tm[REPS];
		long rm = 0;
		snprintf(dcmd, sizeof dcmd, "MEMS_PURGE_DELAY=%s %s", delays[d], churn_cmd);
		for (int k = 0; k < REPS; k++) {
			tm[k] = run(dcmd, preload, &r);
			rm = r > rm ? r : rm;
		}
		qsort(tm, REPS, sizeof *tm, cmp);
		printf("  %-8s %9.2f %6.2fx %9.1f %6.2fx\n", delays[d], tm[REPS / 2],
		       tm[REPS / 2] / tg[REPS / 2], rm / 1024.0, (double)rm / (double)rg);
	}
	snprintf(cmd, sizeof cmd, "rm -rf %s", work);
	return system(cmd) != 0;
}
