/*
 * check_trace.c - fault traces: the library's records against its own
 * counters, and the mems-trace command (outputs, exit status, bad input).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "testutil.h"
#define MEMS_LIBRARY 1
#include "trace.h"

static char dir[] = "/tmp/mems-trace-XXXXXX";
static char tool[600], buildp[512];

static void setup(void)
{
	snprintf(buildp, sizeof buildp, "%s", t_build());
	snprintf(tool, sizeof tool, "%s/tools/mems-trace", buildp);
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[700];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	mems_finish();
	mems_option_reset();
}

/* Read a trace file written by the library. */
struct parsed { uint64_t faults, populated, releases, released, segs, max_touched, allocs, alloc_pages, aheads, ahead_pages; int tids; };

/* Every record is checked; with tid (one thread faulting) also that it is
 * that thread's and that times only grow (with several threads a fault
 * read early can be recorded after another thread's release; a window the
 * fault-ahead helper populated is recorded when it is done, with the time
 * it began, so those are left out of the order). */
static struct parsed parse(const char *path, uintptr_t base, pid_t tid)
{
	struct parsed p = { 0 };
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "%s missing", path);
	struct mems_trace_header h;
	struct mems_trace_rec r;
	ck_assert_int_eq(fread(&h, sizeof h, 1, f), 1);
	ck_assert_mem_eq(h.magic, MEMS_TRACE_MAGIC, 8);
	ck_assert_uint_eq(h.version, MEMS_TRACE_VERSION);
	ck_assert_uint_eq(h.record_size, 56);
	ck_assert_uint_eq(h.pid, (unsigned)getpid());
	ck_assert_uint_eq(h.span_base, base);
	p.segs = 1;
	p.tids = h.flags & 1;
	uint64_t last = 0;
	while (fread(&r, sizeof r, 1, f) == 1) {
		ck_assert_uint_eq(r.real, h.span_base + r.vaddr - 1000);
		if (r.kind == TRACE_AHEAD) {
			/* by the helper thread, never the faulting one */
			if (p.tids && tid)
				ck_assert_uint_ne(r.tid, (unsigned)tid);
			ck_assert_uint_gt(r.pages, 0);
			p.aheads++;
			p.ahead_pages += r.pages;
			p.max_touched = r.touched > p.max_touched ? r.touched : p.max_touched;
			continue;
		}
		if (tid)
			ck_assert_uint_ge(r.t_ns, last);
		last = r.t_ns;
		if (r.kind == TRACE_RELEASE) {
			p.releases++;
			p.released += r.pages;
		} else if (r.kind == TRACE_ALLOC) {
			/* populated by the allocating thread */
			if (p.tids && tid)
				ck_assert_uint_eq(r.tid, (unsigned)tid);
			ck_assert_uint_gt(r.pages, 0);
			p.allocs++;
			p.alloc_pages += r.pages;
		} else {
			ck_assert_int_eq(r.kind, TRACE_WRITE);
			ck_assert_uint_gt(r.latency_ns, 0);
			if (p.tids && tid)
				ck_assert_uint_eq(r.tid, (unsigned)tid);
			p.faults++;
			p.populated += r.pages;
		}
		p.max_touched = r.touched > p.max_touched ? r.touched : p.max_touched;
	}
	fclose(f);
	return p;
}

START_TEST(records_match_the_library_counters)
{
	char path[700];
	snprintf(path, sizeof path, "%s/lib.trc", dir);
	ck_assert_int_eq(mems_option_set("trace", path), 0);
	mems_init();
	size_t ps = os_page_size();
	char *a = mems_get(mems_malloc(4096 * ps));
	for (size_t i = 0; i < 4096; i++)                 /* sequential */
		a[i * ps] = 1;
	char *b = mems_get(mems_malloc(2048 * ps));
	for (size_t i = 0; i < 2048; i += 7)              /* sparse */
		b[i * ps] = 2;
	uint64_t peak = t_stats().pages_touched;
	mems_free(mems_ptr_to_virtual(a));
	struct mems_stats st = t_stats();
	uintptr_t base = (uintptr_t)mems_g.span;
	mems_finish();                                    /* writes the rest */
	struct parsed p = parse(path, base, gettid());
	ck_assert_uint_eq(p.faults, st.faults);
	ck_assert_uint_eq(p.populated + p.ahead_pages, st.pages_populated);
	ck_assert_uint_eq(p.ahead_pages, st.pages_ahead);
	/* the sequential 16 MiB reach the full window: the helper took at
	 * least one window after it (none with one CPU: no helper) */
	if (t_cpus() >= 2)
		ck_assert_uint_ge(p.ahead_pages, 256);
	else
		ck_assert_uint_eq(p.aheads, 0);
	ck_assert_uint_eq(p.released, st.pages_released);
	ck_assert_uint_eq(p.released, 4096);
	ck_assert_uint_eq(p.max_touched, peak);
	ck_assert_uint_ge(peak, 4096 + (2048 + 6) / 7);
	ck_assert_int_eq(p.tids, 1);
}
END_TEST

/* The descriptor of trace.c's file, found by its path; -1 if none. */
static int trace_fd_of(const char *path)
{
	for (int fd = 3; fd < 1024; fd++) {
		char link[64], target[800];
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n > 0) {
			target[n] = 0;
			if (!strcmp(target, path))
				return fd;
		}
	}
	return -1;
}

static void touch_pages(void *arg)
{
	size_t ps = os_page_size();
	char *a = mems_get(mems_malloc(512 * ps));
	for (size_t i = 0; i < 512; i++)
		a[i * ps] = 1;
	(void)arg;
	usleep(100000);             /* the writer drains every 5 ms */
}

/* A program that closes the trace file's descriptor and opens a file of
 * its own under the same number gets no trace records in its file, and
 * the file is not closed under it; the trace goes on into the trace file,
 * which the writer holds in a descriptor table of its own. */
START_TEST(trace_never_writes_to_a_reused_descriptor)
{
	char path[700], other[720];
	snprintf(path, sizeof path, "%s/reuse.trc", dir);
	snprintf(other, sizeof other, "%s/theirs", dir);
	ck_assert_int_eq(mems_option_set("trace", path), 0);
	ck_assert_int_eq(mems_try_init(), 0);
	int tfd = trace_fd_of(path);
	ck_assert_int_ge(tfd, 0);
	int o = open(other, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(o, 0);
	ck_assert_int_eq(dup2(o, tfd), tfd);       /* theirs now, under that number */
	close(o);
	char *err = t_capture(2, touch_pages, NULL);
	ck_assert_msg(!strstr(err, "mems:"), "stderr: %s", err);
	free(err);
	ck_assert_int_eq(trace_active(), 1);
	struct mems_stats st = t_stats();
	uintptr_t base = (uintptr_t)mems_g.span;
	mems_finish();
	struct stat sb;
	ck_assert_int_eq(stat(other, &sb), 0);
	ck_assert_int_eq(sb.st_size, 0);
	ck_assert_int_ge(fcntl(tfd, F_GETFD), 0);  /* and it was not closed */
	close(tfd);
	struct parsed p = parse(path, base, gettid());
	ck_assert_uint_gt(p.faults, 0);            /* all of them after the dup2 */
	ck_assert_uint_eq(p.faults, st.faults);
}
END_TEST

/* MEMS_POPULATE: what the allocating thread populates is recorded, as
 * kind 8 on that thread, and counted apart from the faults; mems-trace
 * reports it, and still reads a version 1 file. */
START_TEST(populations_at_malloc_are_recorded)
{
	char path[700];
	snprintf(path, sizeof path, "%s/pop.trc", dir);
	ck_assert_int_eq(mems_option_set("trace", path), 0);
	ck_assert_int_eq(mems_option_set("populate", "64K"), 0);
	mems_init();
	size_t ps = os_page_size();
	char *b[20];
	for (int i = 0; i < 20; i++) {
		b[i] = mems_ptr_malloc((size_t)(i % 4 + 1) * ps);   /* populated */
		memset(b[i], i, (size_t)(i % 4 + 1) * ps);
	}
	char *big = mems_ptr_malloc(256 * ps);                      /* faulted */
	for (size_t i = 0; i < 256; i++)
		big[i * ps] = 1;
	struct mems_stats st = t_stats();
	uintptr_t base = (uintptr_t)mems_g.span;
	mems_finish();
	struct parsed p = parse(path, base, gettid());
	ck_assert_uint_eq(p.alloc_pages, st.pages_prepopulated);
	ck_assert_uint_ge(p.alloc_pages, 50);                     /* 1+2+3+4 pages, 5 times */
	ck_assert_uint_ge(p.allocs, 5);
	ck_assert_uint_eq(p.faults, st.faults);
	ck_assert_uint_gt(p.faults, 0);
	ck_assert_uint_eq(p.populated + p.alloc_pages, st.pages_populated);
	char cmd[2200];
	snprintf(cmd, sizeof cmd, "%s report --json %s/pop.json %s > %s/rep", tool, dir, path, dir);
	ck_assert_int_eq(system(cmd), 0);
	char want[128];
	snprintf(want, sizeof want, "populated at malloc %8" PRIu64 "  pages, in %" PRIu64 " calls",
		 p.alloc_pages, p.allocs);
	char rp[800];
	snprintf(rp, sizeof rp, "%s/rep", dir);
	FILE *f = fopen(rp, "r");
	ck_assert_ptr_nonnull(f);
	char rep[8192];
	rep[fread(rep, 1, sizeof rep - 1, f)] = 0;
	fclose(f);
	ck_assert_msg(strstr(rep, want) != NULL, "%s", rep);
	snprintf(cmd, sizeof cmd, "python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))[\"traceEvents\"]; "
		 "sys.exit(0 if sum(1 for e in d if e.get(\"cat\")==\"populate\" and e[\"ph\"]==\"X\")==%" PRIu64
		 " else 1)' %s/pop.json", p.allocs, dir);
	ck_assert_int_eq(system(cmd), 0);
	/* version 1 (no kind 8): the same file without those records */
	snprintf(cmd, sizeof cmd, "python3 -c 'import sys; d=open(sys.argv[1],\"rb\").read(); "
		 "r=[d[i:i+56] for i in range(64,len(d),56)]; "
		 "open(sys.argv[2],\"wb\").write(d[:8]+bytes([1,0,0,0])+d[12:64]+b\"\".join(x for x in r if x[52]!=8))' "
		 "%s %s/v1.trc && %s report %s/v1.trc > %s/rep1", path, dir, tool, dir, dir);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(rp, sizeof rp, "%s/rep1", dir);
	f = fopen(rp, "r");
	ck_assert_ptr_nonnull(f);
	rep[fread(rep, 1, sizeof rep - 1, f)] = 0;
	fclose(f);
	ck_assert_ptr_null(strstr(rep, "populated at malloc"));
	snprintf(want, sizeof want, "faults            %10" PRIu64 "  (", p.faults);
	ck_assert_msg(strstr(rep, want) != NULL, "%s", rep);
}
END_TEST

static void *toucher(void *arg)
{
	(void)arg;
	size_t ps = os_page_size();
	for (int r = 0; r < 100; r++) {
		char *p = mems_ptr_malloc(64 * ps);
		for (size_t i = 0; i < 64; i += 1 + (size_t)r % 5)
			p[i * ps] = 1;
		mems_ptr_free(p);
	}
	return NULL;
}

/* Faulting and freeing threads, the handler and the writer at once: the
 * file still holds every event the stats count. */
START_TEST(records_match_with_threads)
{
	char path[700];
	snprintf(path, sizeof path, "%s/thr.trc", dir);
	ck_assert_int_eq(mems_option_set("trace", path), 0);
	mems_init();
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, toucher, NULL);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	struct mems_stats st = t_stats();
	uintptr_t base = (uintptr_t)mems_g.span;
	mems_finish();
	struct parsed p = parse(path, base, 0);
	ck_assert_uint_gt(st.faults, 100);
	ck_assert_uint_eq(p.faults, st.faults);
	ck_assert_uint_eq(p.populated, st.pages_populated);
	ck_assert_uint_eq(p.released, st.pages_released);
}
END_TEST

/* Run a shell command; its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *slurp(const char *fmt, const char *arg)
{
	char path[800];
	snprintf(path, sizeof path, fmt, dir, arg);
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s missing", path);
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* Exact counts need the handler alone: with the fault-ahead helper how
 * much of a stream it takes depends on timing (tested after). */
START_TEST(command_traces_a_linked_program)
{
	ck_assert_int_eq(sh("MEMS_FAULT_AHEAD=0 %s --no-preload -o %s/s.trc --json %s/s.json --svg %s/s.svg "
			    "--csv %s/s.csv -- %s/examples/sparse > %s/out 2> %s/err", tool, dir, dir, dir,
			    dir, buildp, dir, dir), 0);
	char *out = slurp("%s/%s", "out");
	/* the program's own output passes through, then the summary */
	ck_assert_ptr_nonnull(strstr(out, "Sparse: 1024 writes, 1024 faults"));
	ck_assert_ptr_nonnull(strstr(out, "faults                  1096  (read 0, write 1096, write-protect 0, page-in 0)"));
	ck_assert_ptr_nonnull(strstr(out, "pages populated        17408"));
	ck_assert_ptr_nonnull(strstr(out, "releases                1024  (1024 pages given back)"));
	ck_assert_ptr_nonnull(strstr(out, "peak mapped           262144 pages"));
	ck_assert_ptr_nonnull(strstr(out, "fault latency (read to resolved), microseconds"));
	ck_assert_ptr_nonnull(strstr(out, "busiest threads\n  thread "));
	ck_assert_ptr_nonnull(strstr(out, "busiest address ranges"));
	/* JSON: parses, one slice per fault, counters, releases */
	ck_assert_int_eq(sh("python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))[\"traceEvents\"]; "
			    "n=lambda f: sum(1 for e in d if f(e)); "
			    "sys.exit(0 if n(lambda e: e.get(\"ph\")==\"X\" and e[\"name\"]==\"write fault\")==1096 "
			    "and n(lambda e: e.get(\"ph\")==\"C\" and \"touched\" in e[\"args\"])==2120 "
			    "and n(lambda e: e.get(\"name\")==\"release\")==1024 else 1)' %s/s.json", dir), 0);
	/* SVG: well formed, one rect per non-empty cell, axes and legend */
	ck_assert_int_eq(sh("xmllint --noout %s/s.svg", dir), 0);
	char *svg = slurp("%s/%s", "s.svg");
	int cells = 0, one = 0;
	for (char *c = svg; (c = strstr(c, "</title></rect>")); c++) {
		cells++;
		one += strncmp(c - 8, ">1 fault", 8) == 0;
	}
	ck_assert_int_gt(one, 0);
	ck_assert_ptr_null(strstr(svg, ">1 faults<"));
	ck_assert_int_gt(cells, 20);
	ck_assert_ptr_nonnull(strstr(svg, "time since the trace began (ms)"));
	ck_assert_ptr_nonnull(strstr(svg, "MeMS virtual address (MiB)"));
	ck_assert_ptr_nonnull(strstr(svg, "faults per cell"));
	/* CSV: a header and a line per record */
	ck_assert_int_eq(sh("test $(wc -l < %s/s.csv) -eq 2121", dir), 0);
	/* report reads the file again, the same summary */
	ck_assert_int_eq(sh("%s report %s/s.trc > %s/rep", tool, dir, dir), 0);
	ck_assert_ptr_nonnull(strstr(slurp("%s/%s", "rep"), "faults                  1096"));

	/* With the helper: the pages populated by faults and ahead add up to
	 * the same 17408, and each window ahead is a slice named "ahead". */
	ck_assert_int_eq(sh("MEMS_FAULT_AHEAD=1 %s --no-preload -o %s/a.trc --json %s/a.json "
			    "-- %s/examples/sparse > %s/out 2> %s/err", tool, dir, dir, buildp, dir, dir), 0);
	out = slurp("%s/%s", "out");
	unsigned long by_faults = 0, ahead = 0, windows = 0;
	char *l = strstr(out, "pages populated   ");
	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(sscanf(l, "pages populated %lu", &by_faults), 1);
	l = strstr(out, "populated ahead   ");
	ck_assert_int_eq(l != NULL, t_cpus() >= 2);
	if (l) {
		ck_assert_int_eq(sscanf(l, "populated ahead %lu pages, in %lu windows", &ahead, &windows), 2);
		ck_assert_uint_ge(ahead, 256);
		ck_assert_uint_gt(windows, 0);
	}
	ck_assert_uint_eq(by_faults + ahead, 17408);
	ck_assert_int_eq(sh("python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))[\"traceEvents\"]; "
			    "a=[e for e in d if e.get(\"name\")==\"ahead\"]; "
			    "sys.exit(0 if len(a)==%lu and sum(e[\"args\"][\"pages\"] for e in a)==%lu "
			    "and all(e[\"ph\"]==\"X\" for e in a) else 1)' %s/a.json", windows, ahead, dir), 0);
}
END_TEST

START_TEST(command_traces_python_under_the_preload)
{
	ck_assert_int_eq(sh("%s -o %s/py.trc -- /usr/bin/python3 -c "
			    "'l = [bytes(1000 + i %% 500) for i in range(50000)]; print(len(l))' > %s/out",
			    tool, dir, dir), 0);
	char *out = slurp("%s/%s", "out");
	ck_assert_ptr_nonnull(strstr(out, "50000\n"));
	ck_assert_ptr_nonnull(strstr(out, "mems-trace: "));
	char *f = strstr(out, "\nfaults ");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_gt(atoi(f + 8), 10);
}
END_TEST

START_TEST(command_summarises_paging_under_a_cap)
{
	/* a 16 MiB buffer written, then read, under a 4 MiB cap */
	ck_assert_int_eq(sh("MEMS_RESIDENT_MAX=4M MEMS_SWAP_FILE=%s %s -o %s/cap.trc -- /usr/bin/python3 -c "
			    "'b = bytearray(16 << 20)\nfor i in range(0, len(b), 4096): b[i] = i >> 12 & 255\n"
			    "print(sum(b[i] for i in range(0, len(b), 4096)))' > %s/out",
			    dir, tool, dir, dir), 0);
	char *out = slurp("%s/%s", "out");
	ck_assert_ptr_nonnull(strstr(out, "522240\n"));
	unsigned long long ev = 0, runs = 0, in = 0, infaults = 0;
	char *l = strstr(out, "\npages evicted ");
	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(sscanf(l, " pages evicted %llu (written, then dropped in %llu runs)", &ev, &runs), 2);
	ck_assert_uint_gt(ev, 2048);
	ck_assert_uint_ge(ev, runs);
	ck_assert_uint_gt(runs, 0);
	l = strstr(out, "\npages read back ");
	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(sscanf(l, " pages read back %llu (%llu page-in faults)", &in, &infaults), 2);
	ck_assert_uint_gt(in, 0);
	ck_assert_uint_ge(in, infaults);
	ck_assert_ptr_nonnull(strstr(out, "\nclean drops "));
}
END_TEST

START_TEST(command_passes_exit_status_and_reports_errors)
{
	ck_assert_int_eq(sh("%s -o %s/x.trc -- /bin/sh -c 'exit 3' > %s/out 2>&1", tool, dir, dir), 3);
	/* a heap of under 64 MiB: buckets of 1 MiB, even with no fault */
	ck_assert_ptr_nonnull(strstr(slurp("%s/%s", "out"), "(MeMS virtual, 1024 KiB each)"));
	/* an output that cannot be written: said before the program runs */
	static const char *const unwritable[] = { "-o %s/no/x.trc", "--json %s/no/x.json",
						  "--svg %s/no/x.svg", "--csv %s/no/x.csv" };
	for (size_t i = 0; i < sizeof unwritable / sizeof unwritable[0]; i++) {
		char opt[600];
		snprintf(opt, sizeof opt, unwritable[i], dir);
		ck_assert_int_eq(sh("%s %s -- /bin/sh -c 'touch %s/ran' 2> %s/err", tool, opt, dir, dir), 2);
		const char *err = slurp("%s/%s", "err");
		ck_assert_msg(strstr(err, "/no/x.") && strstr(err, ": No such file or directory"), "%s: %s",
			      opt, err);
		char ran[600];
		snprintf(ran, sizeof ran, "%s/ran", dir);
		ck_assert_msg(access(ran, F_OK) != 0, "%s: the program ran", opt);
	}
	ck_assert_int_eq(sh("%s report --svg %s/no/x.svg %s/x.trc 2> %s/err", tool, dir, dir, dir), 2);
	ck_assert_ptr_nonnull(strstr(slurp("%s/%s", "err"), "/no/x.svg: No such file or directory"));
	ck_assert_int_eq(sh("%s -o %s/x.trc -- /bin/sh -c 'ls / > /dev/null; exit 0' > /dev/null", tool, dir), 0);
	ck_assert_int_eq(sh("%s -o %s/x.trc -- /no/such/program 2> %s/err", tool, dir, dir), 127);
	ck_assert_ptr_nonnull(strstr(slurp("%s/%s", "err"), "/no/such/program: No such file or directory"));
	ck_assert_int_eq(sh("%s --bogus 2> %s/err", tool, dir), 2);
	ck_assert_ptr_nonnull(strstr(slurp("%s/%s", "err"), "--help"));
	ck_assert_int_eq(sh("%s --top x -- true 2> %s/err", tool, dir), 2);
	ck_assert_int_eq(sh("%s 2> %s/err", tool, dir), 2);
	ck_assert_ptr_nonnull(strstr(slurp("%s/%s", "err"), "no PROGRAM"));
	ck_assert_int_eq(sh("%s --help | grep -q 'report'", tool), 0);
	ck_assert_int_eq(sh("%s --version > %s/out", tool, dir), 0);
	ck_assert_str_eq(slurp("%s/%s", "out"), "mems-trace (MeMS) " MEMS_TEST_VERSION "\n");
}
END_TEST

START_TEST(report_rejects_bad_files)
{
	/* a good trace to damage */
	ck_assert_int_eq(sh("%s -o %s/g.trc -- /bin/ls / > /dev/null", tool, dir), 0);
	static const struct { const char *how, *msg; } bad[] = {
		{ "head -c 40 %s/g.trc > %s/b.trc", "not a whole header" },
		{ "head -c $(( $(stat -c %%s %s/g.trc) - 20 )) %s/g.trc > %s/b.trc", "after the last whole record" },
		{ "(printf 'NOTATRAC'; tail -c +9 %s/g.trc) > %s/b.trc", "bad magic" },
		{ ": > %s/b.trc", "empty file" },
		{ "(head -c 8 %s/g.trc; printf '\\011\\000\\000\\000'; tail -c +13 %s/g.trc) > %s/b.trc", "version 9" },
		{ "(head -c 64 %s/g.trc; head -c 52 /dev/zero; printf '\\011\\000\\000\\000'; tail -c +121 %s/g.trc) > %s/b.trc", "corrupt record" },
		{ "/bin/true", "No such file" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char how[1024], b[700];
		/* every %s in the recipe is the directory */
		snprintf(how, sizeof how, bad[i].how, dir, dir, dir, dir);
		snprintf(b, sizeof b, "%s/b.trc", dir);
		unlink(b);
		ck_assert_int_eq(sh("%s", how), 0);
		int st = sh("%s report %s/b.trc > /dev/null 2> %s/err", tool, dir, dir);
		ck_assert_msg(st == 1, "case %zu: status %d", i, st);
		char *err = slurp("%s/%s", "err");
		ck_assert_msg(strstr(err, bad[i].msg) != NULL, "case %zu: %s", i, err);
	}
}
END_TEST

START_TEST(fork_and_exec_are_handled_as_documented)
{
	/* preload_stress allocates from 6 threads, forks a child (not traced:
	 * it runs on the kernel's paging), then execs itself: a second
	 * segment in the same file */
	ck_assert_int_eq(sh("%s -o %s/fx.trc -- %s/tests/preload_stress > %s/out", tool, dir,
			    buildp, dir), 0);
	char *out = slurp("%s/%s", "out");
	ck_assert_ptr_nonnull(strstr(out, "fork child: ok\n"));
	ck_assert_ptr_nonnull(strstr(out, "exec ok\n"));
	ck_assert_ptr_nonnull(strstr(out, "fx.trc: 2 segments"));
	ck_assert_ptr_null(strstr(out, "other processes traced"));
	/* processes started by the program write files of their own, listed
	 * in order of PID; an earlier run's are removed, not listed */
	ck_assert_int_eq(sh("touch %s/sh.trc.1 %s/sh.trc.4194305.2", dir, dir), 0);
	ck_assert_int_eq(sh("%s -o %s/sh.trc -- /bin/sh -c 'ls / > /dev/null; ls / > /dev/null' > %s/out",
			    tool, dir, dir), 0);
	out = slurp("%s/%s", "out");
	char *o = strstr(out, "other processes traced:");
	ck_assert_ptr_nonnull(o);
	ck_assert_ptr_null(strstr(out, "sh.trc.1 "));
	ck_assert_ptr_null(strstr(out, "sh.trc.4194305.2"));
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/sh.trc.1", dir);
	ck_assert_int_ne(access(path, F_OK), 0);
	snprintf(path, sizeof path, "%s/sh.trc.4194305.2", dir);
	ck_assert_int_ne(access(path, F_OK), 0);
	int n = 0;
	long last = 0;
	for (char *c = o; (c = strstr(c, "sh.trc.")); c++) {
		long pid = strtol(c + strlen("sh.trc."), NULL, 10);
		ck_assert_int_gt(pid, last);
		snprintf(path, sizeof path, "%s/sh.trc.%ld", dir, pid);
		ck_assert_msg(access(path, F_OK) == 0, "%s is listed but not there", path);
		last = pid;
		n++;
	}
	ck_assert_int_ge(n, 2);
	char head[64];
	snprintf(head, sizeof head, "\n%d other processes traced: ", n);
	ck_assert_ptr_nonnull(strstr(out, head));
}
END_TEST

Suite *trace_suite(void)
{
	Suite *s = suite_create("trace");
	TCase *tc = tcase_create("trace");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, records_match_the_library_counters);
	tcase_add_test(tc, populations_at_malloc_are_recorded);
	tcase_add_test(tc, trace_never_writes_to_a_reused_descriptor);
	tcase_add_test(tc, command_traces_a_linked_program);
	tcase_add_test(tc, command_traces_python_under_the_preload);
	tcase_add_test(tc, command_summarises_paging_under_a_cap);
	tcase_add_test(tc, command_passes_exit_status_and_reports_errors);
	tcase_add_test(tc, report_rejects_bad_files);
	tcase_add_test(tc, fork_and_exec_are_handled_as_documented);
	suite_add_tcase(s, tc);
	TCase *th = tcase_create("threads");
	tcase_set_timeout(th, 120);
	tcase_add_checked_fixture(th, setup, teardown);
	tcase_add_test(th, records_match_with_threads);
	suite_add_tcase(s, th);
	return s;
}
