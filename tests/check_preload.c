/*
 * check_preload.c - libmems-preload.so under real programs.
 *
 * Each program runs twice, plainly (glibc) and under the preload library
 * with MEMS_STATS_ON_EXIT=1, from fresh directories; its exit status and
 * standard output must be identical, and so must its standard error once
 * the stats blocks are taken out.  Every process of the preloaded run must
 * have printed a block with mapped pages: the heap really was on MeMS.
 * The same runs are repeated as an ordinary user (setpriv to nobody), where
 * the pager is user-mode-only userfaultfd and system calls read into fresh
 * heap memory.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "testutil.h"

static char work[] = "/tmp/mems-real-XXXXXX";
static char preload[600];
static char build[512];

static void write_file(const char *name, const char *text)
{
	char path[700];
	snprintf(path, sizeof path, "%s/%s", work, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	chmod(path, 0644);
}

static void sh(const char *cmd)
{
	ck_assert_msg(system(cmd) == 0, "%s", cmd);
}

static void copy_to_work(const char *from, const char *name, mode_t mode)
{
	char cmd[1600];
	snprintf(cmd, sizeof cmd, "cp '%s' '%s/%s' && chmod %o '%s/%s'", from, work, name,
		 (unsigned)mode, work, name);
	sh(cmd);
}

/* Everything the programs read, made once; readable by nobody. */
static void setup(void)
{
	snprintf(build, sizeof build, "%s", t_build());
	ck_assert_ptr_nonnull(mkdtemp(work));
	chmod(work, 0777);
	char from[700];
	snprintf(from, sizeof from, "%s/libmems-preload.so", build);
	copy_to_work(from, "libmems-preload.so", 0755);
	snprintf(preload, sizeof preload, "%s/libmems-preload.so", work);
	static const char *const progs[] = { "preload_edge", "preload_stress", "preload_ctor",
					     "libpreload_dso.so" };
	for (int i = 0; i < 4; i++) {
		snprintf(from, sizeof from, "%s/tests/%s", build, progs[i]);
		copy_to_work(from, progs[i], 0755);
	}
	char cmd[1200];
	/* 400,000 lines of text, about 12 MB */
	snprintf(cmd, sizeof cmd, "cd %s && awk 'BEGIN { s = 7; for (i = 0; i < 400000; i++) "
		 "{ s = (s * 1103515245 + 12345) %% 2147483648; "
		 "printf \"%%d line %%d %%s\\n\", s %% 100000, i, substr(\"abcdefghijklmnopqrstuvwxyz\", s %% 26 + 1) } }' "
		 "> big.txt && chmod 644 big.txt", work);
	sh(cmd);
	snprintf(cmd, sizeof cmd, "cd %s && awk 'BEGIN { printf \"[\"; for (i = 0; i < 100000; i++) "
		 "printf \"%%s{\\\"k\\\":\\\"key%%d\\\",\\\"v\\\":%%d,\\\"t\\\":[%%d,%%d]}\", i ? \",\" : \"\", i, i * 7 %% 1000, i, i %% 3; "
		 "print \"]\" }' > data.json && chmod 644 data.json", work);
	sh(cmd);
	write_file("build.py",
		"import hashlib\n"
		"lists = [bytes([i % 251]) * (600 + i % 900) for i in range(250000)]\n"
		"d = {('key%d' % i): [i, str(i) * 8, float(i) / 3] for i in range(300000)}\n"
		"d2 = {k: v for k, v in d.items() if v[0] % 3}\n"
		"h = hashlib.sha256()\n"
		"for b in lists[::97]: h.update(b)\n"
		"print(len(lists), sum(map(len, lists)), len(d), len(d2), h.hexdigest())\n"
		"del lists\n"
		"print(sum(v[0] for v in d.values()))\n");
	/* a daemon's first act: close every descriptor above 2, MeMS's too;
	 * then files of its own take their numbers */
	write_file("closeall.py",
		"import os, hashlib\n"
		"os.closerange(3, 1 << 16)\n"
		"fs = [open('f%d' % i, 'w+b') for i in range(8)]\n"
		"blocks = [bytes([i % 251]) * (4096 + i % 3000) for i in range(12000)]\n"
		"for i, f in enumerate(fs): f.write(b'x' * (1000 + i))\n"
		"h = hashlib.sha256()\n"
		"for b in blocks: h.update(b)\n"
		"print([f.fileno() for f in fs], sum(map(len, blocks)), h.hexdigest())\n"
		"print([(f.seek(0), len(f.read()))[1] for f in fs])\n");
	write_file("rows.sql",
		"CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, val REAL);\n"
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)\n"
		"INSERT INTO t SELECT x, 'name' || x, x % 97, x * 1.5 FROM c;\n"
		"CREATE INDEX t_grp ON t(grp, val);\n"
		"SELECT grp, count(*), sum(val), min(name) FROM t WHERE grp BETWEEN 10 AND 14 GROUP BY grp;\n"
		"SELECT count(*) FROM t WHERE name LIKE 'name9%';\n");
	write_file("prog.c",
		"#include <stdio.h>\n#include <stdlib.h>\n"
		"static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }\n"
		"int main(void) { int n = 200000, *v = malloc(n * sizeof *v); long s = 0;\n"
		"  for (int i = 0; i < n; i++) v[i] = (i * 7919) % 100003;\n"
		"  qsort(v, n, sizeof *v, cmp); for (int i = 0; i < n; i += 1000) s += v[i];\n"
		"  printf(\"%ld\\n\", s); free(v); return 0; }\n");
	/* 1 MiB of static TLS, which glibc carves out of every thread's
	 * stack, MeMS's threads' included */
	write_file("tls.c",
		"#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
		"__thread char big[1 << 20];\n"
		"int main(void) { char *p = malloc(300000); memset(p, 7, 300000);\n"
		"  big[12345] = 5; printf(\"%d\\n\", p[299999] + big[12345]); free(p); return 0; }\n");
	snprintf(cmd, sizeof cmd, "cd %s && gcc -O2 -o tls tls.c", work);
	sh(cmd);
	snprintf(cmd, sizeof cmd, "chmod -R a+rX %s", work);
	sh(cmd);
}

static void teardown(void)
{
	char cmd[700];
	snprintf(cmd, sizeof cmd, "rm -rf %s", work);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", work);
}

struct result {
	int status;
	char *out, *err;
};

static char *slurp(int fd)
{
	off_t len = lseek(fd, 0, SEEK_END);
	char *buf = calloc(1, (size_t)len + 1);
	ck_assert_int_eq(pread(fd, buf, (size_t)len, 0), len);
	close(fd);
	return buf;
}

/* Run cmd with sh in a fresh directory under work. */
static struct result run(const char *cmd, int use_preload, int nobody)
{
	char dir[700];
	snprintf(dir, sizeof dir, "%s/run-XXXXXX", work);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	chmod(dir, 0777);
	int out = memfd_create("out", 0), err = memfd_create("err", 0);
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (chdir(dir) != 0)
			_exit(125);
		dup2(out, 1);
		dup2(err, 2);
		/* as a shell starts a program: nothing open above 2 (and so
		 * MeMS's descriptors take the numbers a shell script's
		 * "exec 3>file" takes) */
		syscall(SYS_close_range, 3, ~0u, 0);
		setenv("HOME", dir, 1);
		setenv("WORK", work, 1);
		setenv("LC_ALL", "C", 1);
		setenv("TZ", "UTC", 1);
		setenv("PYTHONHASHSEED", "0", 1);
		setenv("PATH", "/usr/local/bin:/usr/bin:/bin", 1);
		unsetenv("MEMS_PAGER");
		unsetenv("LD_PRELOAD");
		char assign[700];
		snprintf(assign, sizeof assign, "%s=%s", use_preload ? "LD_PRELOAD" : "PLAIN_RUN",
			 preload);
		if (nobody && geteuid() == 0) {
			/* setpriv itself runs plainly: it changes per-thread
			 * credentials, which a process with the pager's thread
			 * cannot (README, Limits); env preloads what it runs */
			execl("/usr/bin/setpriv", "setpriv", "--reuid=nobody", "--regid=nogroup",
			      "--clear-groups", "--", "/usr/bin/env", assign, "MEMS_STATS_ON_EXIT=1",
			      "/bin/sh", "-c", cmd, (char *)NULL);
			_exit(127);
		}
		putenv(assign);
		setenv("MEMS_STATS_ON_EXIT", "1", 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	struct result r;
	ck_assert_int_eq(waitpid(pid, &r.status, 0), pid);
	r.out = slurp(out);
	r.err = slurp(err);
	return r;
}

/* Take the stats blocks out of s; returns how many there were, and checks
 * each shows a heap (mapped pages) and the expected pager mode. */
static int strip_stats(char *s, const char *mode)
{
	const char *head = "----- MeMS SYSTEM STATS -----\n";
	const char *rule = "\n-----------------------------\n";
	int blocks = 0;
	char *b;
	while ((b = strstr(s, head))) {
		char *e = strstr(b, rule);
		ck_assert_ptr_nonnull(e);
		e += strlen(rule);
		char *mapped = strstr(b, "Pages mapped:\t");
		ck_assert_msg(mapped && mapped < e && strtoul(mapped + 14, NULL, 10) > 0,
			      "a process ran without a MeMS heap");
		char want[64];
		snprintf(want, sizeof want, "Pager:\t%s (", mode);
		char *pager = strstr(b, want);
		ck_assert_msg(pager && pager < e, "pager mode is not %s", mode);
		memmove(b, e, strlen(e) + 1);
		blocks++;
	}
	return blocks;
}

/* cmd gives the same results plainly and on MeMS; min_procs processes
 * (at least) ran on MeMS. */
static void same(const char *cmd, int min_procs, int nobody)
{
	struct result a = run(cmd, 0, nobody), b = run(cmd, 1, nobody);
	ck_assert_msg(WIFEXITED(a.status) && WEXITSTATUS(a.status) == 0,
		      "plain run of %s: status %#x\n%s", cmd, a.status, a.err);
	ck_assert_msg(a.status == b.status, "%s: status %#x plainly, %#x on MeMS\n%s", cmd,
		      a.status, b.status, b.err);
	ck_assert_msg(!strcmp(a.out, b.out), "%s: output differs:\n--- plain\n%.2000s\n--- MeMS\n%.2000s",
		      cmd, a.out, b.out);
	int procs = strip_stats(b.err, nobody && geteuid() == 0 ? "uffd-user" : "uffd");
	ck_assert_msg(!strcmp(a.err, b.err), "%s: stderr differs:\n--- plain\n%s\n--- MeMS\n%s",
		      cmd, a.err, b.err);
	ck_assert_msg(procs >= min_procs, "%s: %d processes on MeMS, expected %d", cmd, procs,
		      min_procs);
	ck_assert_msg(strlen(a.out) > 0, "%s printed nothing", cmd);
	free(a.out); free(a.err); free(b.out); free(b.err);
}

static const struct { const char *name, *cmd; int procs; } progs[] = {
	{ "edge cases", "$WORK/preload_edge", 1 },
	{ "constructors and dlopen", "$WORK/preload_ctor $WORK/libpreload_dso.so", 1 },
	{ "threads, fork, exec", "$WORK/preload_stress", 1 },
	{ "python3", "/usr/bin/python3 $WORK/build.py", 1 },
	{ "perl", "perl -e 'my %h; $h{\"k$_\"} = \"v\" x ($_ % 50) for 1..200000; "
		  "my $t = 0; $t += length for values %h; my @k = sort keys %h; "
		  "print scalar(@k), \" $t $k[0] $k[-1]\\n\"'", 1 },
	{ "sqlite3", "sqlite3 db.sqlite < $WORK/rows.sql", 1 },
	{ "gcc", "gcc -O2 -o prog $WORK/prog.c && ./prog", 3 },
	{ "git", "git init -q r && cd r && for i in 1 2 3 4 5; do seq 1 $((i * 2000)) > f$i; "
		 "git add f$i && GIT_AUTHOR_DATE='2020-01-01T00:00:00Z' GIT_COMMITTER_DATE='2020-01-01T00:00:00Z' "
		 "git -c user.name=t -c user.email=t@e -c commit.gpgsign=false commit -q -m c$i; done && "
		 "git log --format='%H %s' && git gc -q && git count-objects -v | grep -v size", 5 },
	{ "sort", "sort -k2 $WORK/big.txt | cksum && sort -n -S 8M $WORK/big.txt | tail -3", 2 },
	{ "xz -T2", "xz -T2 -c $WORK/big.txt > big.xz && cksum < big.xz && xz -T2 -dc big.xz | cksum", 2 },
	{ "jq", "jq -c '[.[] | select(.v % 3 == 0) | .k] | length' $WORK/data.json && "
		"jq -c 'map(.t[1]) | group_by(.) | map(length)' $WORK/data.json", 2 },
	{ "awk", "awk '{ c[$1 % 1000]++; n += length($0) } END { for (k in c) m++; print m, n, NR }' "
		 "$WORK/big.txt", 1 },
	/* a shell taking the lowest numbers for its own files, where MeMS's
	 * userfaultfd was: its fork children once closed the shell's file
	 * there ("sh: 1: 3: Bad file descriptor", o3 empty) */
	{ "sh exec 3>", "sh -c 'exec 3>o3 4>o4 5>o5; seq 1 100000 | sort -r >&3; seq 1 50 >&4; "
			"echo five >&5; exec 3>&- 4>&- 5>&-; cksum o3 o4 o5'", 3 },
};

START_TEST(real_program_as_root)
{
	same(progs[_i].cmd, progs[_i].procs, 0);
}
END_TEST

START_TEST(real_program_as_ordinary_user)
{
	same(progs[_i].cmd, progs[_i].procs, 1);
}
END_TEST

START_TEST(stats_on_exit_goes_to_stderr)
{
	struct result r = run("$WORK/preload_ctor $WORK/libpreload_dso.so", 1, 0);
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_null(strstr(r.out, "MeMS SYSTEM STATS"));
	ck_assert_ptr_nonnull(strstr(r.err, "----- MeMS SYSTEM STATS -----\nMAIN["));
	ck_assert_ptr_nonnull(strstr(r.err, "Pager:\tuffd (MEMS_PAGER=auto; userfaultfd(2): ok)\n"));
	free(r.out); free(r.err);
	struct result q = run("MEMS_STATS_ON_EXIT=0 $WORK/preload_ctor $WORK/libpreload_dso.so", 1, 0);
	ck_assert_str_eq(q.err, "");
	free(q.out); free(q.err);
}
END_TEST

/* Under an address-space limit (ulimit -v: 1 GB here), which the default
 * 64 GiB span does not fit, programs run as they do plainly: the span is
 * cut to fit (README, MEMS_SPAN_SIZE).  Under 40 MB, MeMS's own threads
 * still start, with nothing on stderr: their stacks are small. */
START_TEST(programs_run_under_an_address_space_limit)
{
	same("ulimit -v 1000000 && sort -k2 $WORK/big.txt | cksum && "
	     "/usr/bin/python3 $WORK/build.py", 2, 0);
	same("ulimit -v 40000 && sort -k2 $WORK/big.txt | cksum", 1, 0);
}
END_TEST

/* A program that closes every descriptor above 2 (daemons do, and ssh),
 * under a resident cap a fifth of its heap: the evicted pages come back
 * (MeMS's threads keep the userfaultfd and the store in descriptor tables
 * of their own), its files under MeMS's old numbers hold only what it
 * wrote, and nothing is said on stderr (same() compares it). */
START_TEST(program_that_closes_every_descriptor_loses_nothing)
{
	same("MEMS_RESIDENT_MAX=16M MEMS_SWAP_FILE=$WORK /usr/bin/python3 $WORK/closeall.py", 1, 0);
}
END_TEST

/* A program with much static TLS (glibc puts it on every thread's stack)
 * still gets MeMS's threads, and the uffd pager (same() checks the mode). */
START_TEST(program_with_a_large_static_tls_runs_on_the_uffd_pager)
{
	same("$WORK/tls", 1, 0);
}
END_TEST

START_TEST(blocks_really_are_mems_blocks)
{
	struct result r = run("$WORK/preload_edge --mems", 1, 0);
	ck_assert_msg(r.status == 0, "%s", r.err);
	ck_assert_str_eq(r.out, "all blocks are MeMS blocks\n");
	free(r.out); free(r.err);
}
END_TEST

START_TEST(mallinfo_trim_and_stats_are_mems)
{
	struct result r = run("MEMS_STATS_ON_EXIT=0 $WORK/preload_edge --info", 1, 0);
	ck_assert_msg(r.status == 0, "%s", r.err);
	ck_assert_str_eq(r.out, "arena: 1\nuordblks: 1\nfordblks: 1\nordblks: 1\nmallinfo: 1\n"
				"malloc_info: holes 1, free bytes 1, arena 1, span 1, committed 1\n"
				"malloc_info sizes: classes 1, holes 1, their bytes 1\n"
				"malloc_trim: 1, touched pages down: 1, by the pages released: 1\n"
				"malloc_trim again: 0\n");
	/* malloc_stats: the stats block, on stderr */
	ck_assert_msg(!strncmp(r.err, "----- MeMS SYSTEM STATS -----\n", 30), "%s", r.err);
	ck_assert_ptr_nonnull(strstr(r.err, "\nPages touched:\t"));
	free(r.out); free(r.err);
}
END_TEST

START_TEST(preload_defaults_to_a_100_ms_purge_small_runs_and_populate)
{
	/* libmems gives pages back on every free (the assignment's contract);
	 * the malloc replacement waits 100 ms (docs/PERFORMANCE.md) */
	struct result r = run("MEMS_STATS_ON_EXIT=0 $WORK/preload_edge --option purge_delay", 1, 0);
	ck_assert_msg(r.status == 0, "%s", r.err);
	ck_assert_str_eq(r.out, "purge_delay=100\n");
	free(r.out); free(r.err);
	r = run("MEMS_STATS_ON_EXIT=0 MEMS_PURGE_DELAY=0 $WORK/preload_edge --option purge_delay", 1, 0);
	ck_assert_str_eq(r.out, "purge_delay=0\n");
	free(r.out); free(r.err);
	char buf[16];
	mems_option_get("purge_delay", buf, sizeof buf);
	ck_assert_str_eq(buf, "0");
	/* and small blocks in runs, where libmems keeps a segment per block */
	r = run("MEMS_STATS_ON_EXIT=0 $WORK/preload_edge --option small_runs", 1, 0);
	ck_assert_str_eq(r.out, "small_runs=1\n");
	free(r.out); free(r.err);
	r = run("MEMS_STATS_ON_EXIT=0 MEMS_SMALL_RUNS=0 $WORK/preload_edge --option small_runs", 1, 0);
	ck_assert_str_eq(r.out, "small_runs=0\n");
	free(r.out); free(r.err);
	mems_option_get("small_runs", buf, sizeof buf);
	ck_assert_str_eq(buf, "0");
	/* and blocks of up to 64 KiB populated at malloc, not faulted in */
	r = run("MEMS_STATS_ON_EXIT=0 $WORK/preload_edge --option populate", 1, 0);
	ck_assert_str_eq(r.out, "populate=64K\n");
	free(r.out); free(r.err);
	r = run("MEMS_STATS_ON_EXIT=0 MEMS_POPULATE=1k $WORK/preload_edge --option populate", 1, 0);
	ck_assert_str_eq(r.out, "populate=64K\n");
	ck_assert_ptr_nonnull(strstr(r.err, "MEMS_POPULATE=\"1k\": expected 0 (off) or a size from 4K to 1G"));
	free(r.out); free(r.err);
	mems_option_get("populate", buf, sizeof buf);
	ck_assert_str_eq(buf, "0");
}
END_TEST

Suite *preload_suite(void)
{
	Suite *s = suite_create("preload");
	TCase *tc = tcase_create("preload");
	tcase_set_timeout(tc, 240);
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_add_test(tc, stats_on_exit_goes_to_stderr);
	tcase_add_test(tc, blocks_really_are_mems_blocks);
	tcase_add_test(tc, mallinfo_trim_and_stats_are_mems);
	tcase_add_test(tc, programs_run_under_an_address_space_limit);
	tcase_add_test(tc, program_with_a_large_static_tls_runs_on_the_uffd_pager);
	tcase_add_test(tc, program_that_closes_every_descriptor_loses_nothing);
	tcase_add_test(tc, preload_defaults_to_a_100_ms_purge_small_runs_and_populate);
	int n = (int)(sizeof progs / sizeof progs[0]);
	tcase_add_loop_test(tc, real_program_as_root, 0, n);
	tcase_add_loop_test(tc, real_program_as_ordinary_user, 0, n);
	suite_add_tcase(s, tc);
	return s;
}
