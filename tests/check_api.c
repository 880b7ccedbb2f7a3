/*
 * check_api.c - the public functions: bad input, init/finish, fork,
 * threads, the ordinary-user path.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "testutil.h"

static void teardown(void)
{
	mems_finish();
	mems_option_reset();
	unsetenv("MEMS_ABORT_ON_ERROR");
}

/* ------------------------------------------------------------ bad input */

struct call { int kind; void *arg; size_t size; void *ret; int err; };

static void do_call(void *a)
{
	struct call *c = a;
	errno = 0;
	switch (c->kind) {
	case 0: mems_free(c->arg); break;
	case 1: c->ret = mems_get(c->arg); break;
	case 2: c->ret = mems_malloc(c->size); break;
	}
	c->err = errno;
}

/* Runs a call; returns its stderr.  Checks that it wrote at most one line. */
static char *run(struct call *c)
{
	char *err = t_capture(2, do_call, c);
	char *nl = strchr(err, '\n');
	ck_assert_msg(!nl || !nl[1], "more than one line: %s", err);
	return err;
}

START_TEST(bad_input_is_survived_counted_and_changes_nothing)
{
	mems_init();
	void *a = mems_malloc(1000), *b = mems_malloc(3000), *c = mems_malloc(10000);
	mems_free(b);                                  /* a hole in node 1 */
	memset(mems_get(a), 0x5a, 1000);
	char *before = t_capture_stats();
	char *seed_before = t_seed_lines(before);
	struct mems_stats st0 = t_stats();
	int local;
	static const struct { int kind; uintptr_t arg; size_t size; const char *diag; int err; } cases[] = {
		{ 0, 2000, 0, "not allocated (double free?)", 0 },  /* b again */
		{ 0, 1500, 0, "inside a segment, not its start", 0 },
		{ 0, 999, 0, "not a MeMS address", 0 },
		{ 0, 1, 0, "not a MeMS address", 0 },
		{ 0, 0 /* past committed */, 0, "not a MeMS address", 0 },
		{ 0, UINTPTR_MAX, 0, "not a MeMS address", 0 },
		{ 0, 0 /* stack */, 0, "not a MeMS address", 0 },
		{ 1, 2500, 0, NULL, EFAULT },                 /* a hole */
		{ 1, 0, 0, NULL, EFAULT },                    /* NULL */
		{ 1, 999, 0, NULL, EFAULT },
		{ 1, 1u << 31, 0, NULL, EFAULT },
		{ 2, 0, SIZE_MAX, "larger than the whole span", ENOMEM },
		{ 2, 0, (size_t)1 << 60, "larger than the whole span", ENOMEM },
		{ 2, 0, 0, NULL, EINVAL },
	};
	size_t ncases = sizeof cases / sizeof cases[0];
	for (size_t i = 0; i < ncases; i++) {
		struct call k = { cases[i].kind, V(cases[i].arg), cases[i].size, V(1), 0 };
		if (i == 4)
			k.arg = V(1000 + st0.pages_used * st0.page_size + 20);
		if (i == 6)
			k.arg = &local;
		char *err = run(&k);
		if (cases[i].diag)
			ck_assert_msg(strstr(err, cases[i].diag), "case %zu: %s", i, err);
		else
			ck_assert_msg(!*err, "case %zu printed %s", i, err);
		if (cases[i].kind)
			ck_assert_ptr_null(k.ret);
		if (cases[i].err)
			ck_assert_int_eq(k.err, cases[i].err);
		free(err);
	}
	/* free(NULL) is a no-op, silent and not counted */
	struct call k = { 0, NULL, 0, NULL, 0 };
	char *err = run(&k);
	ck_assert_str_eq(err, "");
	free(err);

	char *after = t_capture_stats();
	char *seed_after = t_seed_lines(after);
	ck_assert_str_eq(seed_after, seed_before);
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.invalid_frees, 7);
	ck_assert_uint_eq(st.invalid_gets, 4);
	ck_assert_uint_eq(st.failed_allocs, 3);
	ck_assert_uint_eq(st.errors, 14);
	ck_assert_ptr_nonnull(strstr(after, "Errors:\t14\n"));
	/* and everything still works */
	for (int i = 0; i < 1000; i++)
		ck_assert_int_eq(((unsigned char *)mems_get(a))[i], 0x5a);
	ck_assert_ptr_eq(mems_malloc(3000), V(2000));
	mems_free(c);
	free(before); free(seed_before); free(after); free(seed_after);
}
END_TEST

START_TEST(abort_on_error_aborts)
{
	setenv("MEMS_ABORT_ON_ERROR", "1", 1);
	mems_init();
	void *a = mems_malloc(100);
	switch (_i) {
	case 0: mems_free(a); mems_free(a); break;     /* double free */
	case 1: mems_get(V(5000)); break;
	case 2: mems_malloc(SIZE_MAX); break;
	}
	ck_abort_msg("did not abort");
}
END_TEST

START_TEST(running_out_of_span_is_enomem_not_abort)
{
	/* a span of 1 MiB, or of four MeMS pages if they are larger */
	uint64_t span = MEMS_PAGE_SIZE > (256 << 10) ? 4 * (uint64_t)MEMS_PAGE_SIZE : 1 << 20;
	char opt[32];
	snprintf(opt, sizeof opt, "%lluK", (unsigned long long)(span >> 10));
	setenv("MEMS_ABORT_ON_ERROR", "1", 1);
	ck_assert_int_eq(mems_option_set("span_size", opt), 0);
	mems_init();
	ck_assert_ptr_nonnull(mems_malloc(span / 1024 * 500));
	uint64_t left = span - t_stats().pages_used * MEMS_PAGE_SIZE;
	errno = 0;
	ck_assert_ptr_null(mems_malloc(span / 1024 * 600));     /* fits the span, not what is left */
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_ptr_nonnull(mems_malloc(left));       /* what is left does */
	ck_assert_uint_eq(t_stats().failed_allocs, 1);
}
END_TEST

/* ------------------------------------------------------------ lifecycle */

/* Entries of a directory, -1 when it cannot be read.  (No ck_assert: a
 * child of a test that closed Check's descriptors uses it too.) */
static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	int n = 0;
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* The threads in /proc/self/task once it reads want, or after a second.
 * A joined thread can still be listed for a moment: pthread_join returns
 * when the kernel clears its tid, before the task is released. */
static int tasks_settled(int want)
{
	int n = count_dir("/proc/self/task");
	for (int i = 0; i < 200 && n != want; i++) {
		usleep(5000);
		n = count_dir("/proc/self/task");
	}
	return n;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1     /* the sanitizer runtime maps memory of its own */
#else
#define SANITIZED 0
#endif

static int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, c;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

START_TEST(before_init)
{
	char *err;
	struct call k = { 0, V(1000), 0, NULL, 0 };
	err = run(&k);
	ck_assert_ptr_nonnull(strstr(err, "MeMS is not initialised"));
	free(err);
	ck_assert_ptr_null(mems_get(V(1000)));
	char *s = t_capture_stats();
	ck_assert_str_eq(s, "----- MeMS SYSTEM STATS -----\n"
			    "Pages used:\t0\nSpace unused:\t0\nMain Chain Length:\t0\n"
			    "Sub-chain Length array: []\nPages touched:\t0\nPages mapped:\t0\n"
			    "Faults:\t0\nErrors:\t2\nPager:\tnone (not initialised)\n"
			    "-----------------------------\n");
	free(s);
	mems_finish();                                  /* harmless */
	/* mems_malloc initialises lazily */
	ck_assert_ptr_eq(mems_malloc(10), V(1000));
	ck_assert_str_eq(t_stats().mode_name, "uffd");
}
END_TEST

/* mems_finish keeps its span reserved until the next init has its own;
 * where the address space has no room for two spans (ulimit -v), the next
 * init gives the old one up first rather than fail.  (Not under the
 * sanitizers, whose shadow memory does not fit under such a limit.) */
START_TEST(init_after_finish_under_an_address_space_limit)
{
	if (SANITIZED)
		return;
	ck_assert_int_eq(mems_option_set("span_size", "8G"), 0);
	ck_assert_int_eq(mems_try_init(), 0);
	mems_finish();                      /* its 8 GiB stay reserved */
	struct rlimit rl, was;
	ck_assert_int_eq(getrlimit(RLIMIT_AS, &was), 0);
	rl = was;
	rl.rlim_cur = ((rlim_t)t_status_kib("VmSize") << 10) + (4ull << 30);
	ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
	ck_assert_int_eq(mems_try_init(), 0);
	char *p = mems_ptr_malloc(100);
	ck_assert_ptr_nonnull(p);
	strcpy(p, "room");
	ck_assert_str_eq(p, "room");
	mems_finish();
	mems_option_reset();
	ck_assert_int_eq(setrlimit(RLIMIT_AS, &was), 0);   /* even with CK_FORK=no */
}
END_TEST

/* Under an address-space limit (ulimit -v) the default span is half the
 * room the limit leaves, and is usable to its end; a span asked for that
 * does not fit fails with ENOMEM and says why. */
START_TEST(default_span_fits_an_address_space_limit)
{
	const uint64_t room = 3ull << 30, block = 64 << 20;
	struct t_init init;
	struct rlimit rl, was;
	ck_assert_int_eq(getrlimit(RLIMIT_AS, &was), 0);
	rl = was;
	rl.rlim_cur = ((rlim_t)t_status_kib("VmSize") << 10) + room;
	ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
	char *err = t_capture(2, t_try_init, &init);
	ck_assert_msg(init.rc == 0, "init: %s", err);
	ck_assert_str_eq(err, "");
	free(err);
	uint64_t span = t_stats().span_size;
	char *text = t_capture_stats(), want[128];
	snprintf(want, sizeof want, "\nSpan:\t%" PRIu64 " bytes (the default, 68719476736, did not fit",
		 span);
	ck_assert_msg(strstr(text, want), "stats: %s", text);
	free(text);
	/* (what the test itself mapped since it measured takes a little) */
	ck_assert_uint_le(span, room / 2);
	ck_assert_uint_ge(span, room / 2 - (32 << 20));
	uint64_t n = 0;
	char *v;
	while ((v = mems_malloc(block))) {
		char *p = mems_get(v);
		p[0] = p[block - 1] = 1;
		n++;
	}
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_uint_eq(n, span / block);
	ck_assert_int_eq(mems_check(), 0);
	mems_finish();
	/* again, while the span just finished stays reserved: the same room */
	ck_assert_int_eq(mems_try_init(), 0);
	ck_assert_uint_ge(t_stats().span_size, span - (32 << 20));
	mems_finish();

	ck_assert_int_eq(mems_option_set("span_size", "64G"), 0);
	err = t_capture(2, t_try_init, &init);
	ck_assert_int_eq(init.rc, -1);
	ck_assert_int_eq(init.err, ENOMEM);
	ck_assert_msg(strstr(err, "cannot reserve a span of 68719476736 bytes") &&
		      strstr(err, "ulimit -v"), "message: %s", err);
	free(err);
	mems_option_reset();
	ck_assert_int_eq(setrlimit(RLIMIT_AS, &was), 0);   /* even with CK_FORK=no */
	ck_assert_int_eq(mems_try_init(), 0);
	ck_assert_uint_eq(t_stats().span_size, 64ull << 30);
	text = t_capture_stats();
	ck_assert_ptr_null(strstr(text, "\nSpan:"));
	free(text);
}
END_TEST

/* MEMS_STATS_ON_EXIT keeps a copy of stderr.  A program that closes it
 * and opens a file of its own under the same number (closing every
 * descriptor is common in daemons) gets no stats block in that file, and
 * mems_finish does not close it; the block goes to fd 2 instead while that
 * is still the file the copy was of, and nowhere when it is not. */
static off_t file_size(int fd)
{
	struct stat sb;
	ck_assert_int_eq(fstat(fd, &sb), 0);
	return sb.st_size;
}

START_TEST(stats_at_exit_never_go_to_a_reused_descriptor)
{
	enum { REUSED, REUSED_FINISH, CLOSED, STDERR_ELSEWHERE, NCASES };
	int f[3];                              /* the program's, stderr, another */
	for (int i = 0; i < 3; i++) {
		char path[] = "/tmp/mems-statsfd-XXXXXX";
		f[i] = mkstemp(path);
		ck_assert_int_ge(f[i], 0);
		unlink(path);
	}
	for (int c = 0; c < NCASES; c++) {
		fflush(NULL);
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			if (dup2(f[1], STDERR_FILENO) != STDERR_FILENO)
				_exit(2);
			if (mems_option_set("stats_on_exit", "1") != 0 || mems_try_init() != 0)
				_exit(3);
			int sfd = mems_g.stats_fd;
			if (sfd < 0 || close(sfd) != 0)
				_exit(4);
			if ((c == REUSED || c == REUSED_FINISH) && dup2(f[0], sfd) != sfd)
				_exit(4);
			if (c == STDERR_ELSEWHERE && dup2(f[2], STDERR_FILENO) != STDERR_FILENO)
				_exit(4);
			if (c == REUSED_FINISH) {
				mems_finish();
				if (fcntl(sfd, F_GETFD) < 0)
					_exit(5);       /* closed the program's file */
			}
			exit(0);                        /* destructors run */
		}
		int st;
		ck_assert_int_eq(waitpid(pid, &st, 0), pid);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "case %d: child status %#x", c,
			      st);
		ck_assert_int_eq(file_size(f[0]), 0);
		ck_assert_int_eq(file_size(f[2]), 0);
		int want = c == REUSED || c == CLOSED;        /* a block on fd 2 */
		char buf[64] = "";
		ck_assert_int_eq(file_size(f[1]) > 0, want);
		if (want) {
			ck_assert_int_gt(pread(f[1], buf, sizeof buf - 1, 0), 0);
			ck_assert_msg(strstr(buf, "MeMS SYSTEM STATS"), "case %d: %s", c, buf);
			ck_assert_int_eq(ftruncate(f[1], 0), 0);
			ck_assert_int_eq(lseek(f[1], 0, SEEK_SET), 0);  /* the child's offset */
		}
	}
	for (int i = 0; i < 3; i++)
		close(f[i]);
}
END_TEST

/* A program that closes every descriptor above 2 (daemons and ssh do),
 * MeMS's among them, and opens files of its own under their numbers, under
 * a resident cap: the evicted pages come back intact (the userfaultfd, the
 * store and the rings live on in the tables of MeMS's own threads), the
 * program's files get nothing written into them, mems_finish stops every
 * thread (through the bell, not a descriptor) and closes none of them. */
START_TEST(closing_every_descriptor_loses_nothing)
{
	char dir[] = "/tmp/mems-closeall-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	int err = memfd_create("stderr", 0);
	ck_assert_int_ge(err, 0);
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		alarm(60);                                /* a hang fails */
		if (dup2(err, STDERR_FILENO) != STDERR_FILENO)
			_exit(2);
		int tasks = count_dir("/proc/self/task");
		/* the store named: on a /tmp in memory the default would say
		 * so on stderr, which must stay empty here */
		if (mems_option_set("resident_max", "1M") != 0 ||
		    mems_option_set("swap_file", dir) != 0 || mems_try_init() != 0)
			_exit(3);
		size_t len = 4 << 20;                     /* 4x the cap */
		unsigned char *p = mems_get(mems_malloc(len));
		for (size_t i = 0; i < len; i++)
			p[i] = (unsigned char)(i * 7 + i / 4096);
		if (syscall(SYS_close_range, 3, ~0u, 0) != 0)
			_exit(4);
		int mine[8];
		char path[96], want[32];
		for (int i = 0; i < 8; i++) {
			snprintf(path, sizeof path, "%s/theirs.%d", dir, i);
			mine[i] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
			int n = snprintf(want, sizeof want, "file %d\n", i);
			if (mine[i] != 3 + i || write(mine[i], want, (size_t)n) != n)
				_exit(5);                 /* the lowest numbers: MeMS's */
		}
		for (int round = 0; round < 2; round++)
			for (size_t i = 0; i < len; i++)
				if (p[i] != (unsigned char)(i * 7 + i / 4096))
					_exit(6);
		unsigned char *q = mems_get(mems_malloc(len));   /* fresh pages too */
		memset(q, 0x5a, len);
		for (size_t i = 0; i < len; i += 4096)
			if (q[i] != 0x5a)
				_exit(7);
		struct mems_stats st;
		mems_stats_get(&st);
		if (strcmp(st.mode_name, "uffd") || !st.evictions || !st.page_ins || st.errors)
			_exit(8);
		/* fork reads every evicted page back first, by faults now */
		pid_t kid = fork();
		if (kid == 0) {
			for (size_t i = 0; i < len; i++)
				if (p[i] != (unsigned char)(i * 7 + i / 4096))
					_exit(1);
			_exit(0);
		}
		int ks;
		if (kid < 0 || waitpid(kid, &ks, 0) != kid || !WIFEXITED(ks) || WEXITSTATUS(ks))
			_exit(11);
		mems_finish();
		if (tasks_settled(tasks) != tasks)
			_exit(9);                         /* every thread of MeMS gone */
		for (int i = 0; i < 8; i++) {
			char got[32] = "";
			int n = snprintf(want, sizeof want, "file %d\n", i);
			if (pread(mine[i], got, sizeof got, 0) != n || memcmp(got, want, (size_t)n))
				_exit(10);                /* still open, and only ours */
		}
		_exit(0);
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	char text[4096] = "";
	ck_assert_int_ge(pread(err, text, sizeof text - 1, 0), 0);
	close(err);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x; stderr: %s", st,
		      text);
	ck_assert_msg(!strstr(text, "mems:"), "stderr: %s", text);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(finish_and_init_cycles_leave_nothing_behind)
{
	int tasks = count_dir("/proc/self/task");    /* no thread of MeMS yet */
	mems_init();
	mems_finish();
	tasks = tasks_settled(tasks);
	int fds = count_dir("/proc/self/fd");
	int maps = count_maps();
	long rss = t_rss_anon_kib(), vm = t_status_kib("VmSize");
	for (int i = 0; i < 40; i++) {
		mems_init();
		char *span = mems_g.span;
		mems_init();                               /* harmless */
		ck_assert_ptr_eq(mems_g.span, span);
		/* the handler, and the fault-ahead helper given two CPUs */
		ck_assert_int_eq(tasks_settled(tasks + 1 + (t_cpus() >= 2)), tasks + 1 + (t_cpus() >= 2));
		void *v = mems_malloc(1 << 20);
		ck_assert_ptr_eq(v, V(1000));               /* afresh */
		memset(mems_get(v), i, 1 << 20);
		mems_malloc(100);
		mems_finish();
		ck_assert_ptr_null(mems_get(v));
		ck_assert_str_eq(t_stats().mode_name, "none");
	}
	ck_assert_int_eq(count_dir("/proc/self/fd"), fds);
	ck_assert_int_eq(tasks_settled(tasks), tasks);
	if (!SANITIZED)
		ck_assert_int_eq(count_maps(), maps);
	/* one cycle maps over 64 GiB of span and metadata: nothing of it stays */
	ck_assert_int_le(t_status_kib("VmSize") - vm, 16 * 1024);
	ck_assert_int_le(t_rss_anon_kib() - rss, 4096);  /* 40 MiB were touched */
}
END_TEST

/* ------------------------------------------------------------ fork */

START_TEST(fork_child_keeps_working)
{
	static const char *const modes[] = { "uffd", "uffd-user", "kernel" };
	mems_option_set("pager", modes[_i]);
	mems_init();
	size_t ps = os_page_size();
	char *v = mems_malloc(64 * ps);
	char *p = mems_get(v);
	for (size_t i = 0; i < 32 * ps; i++)           /* half touched */
		p[i] = (char)(i % 251);
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int bad = 0;
		for (size_t i = 0; i < 32 * ps; i++)
			bad |= p[i] != (char)(i % 251);
		for (size_t i = 32 * ps; i < 64 * ps; i++)   /* untouched: zeros */
			bad |= p[i] != 0;
		if (bad)
			_exit(2);
		for (int r = 0; r < 200; r++) {
			char *w = mems_malloc(1 + (size_t)r * 997);
			char *q = mems_get(w);
			memset(q, r, 1 + (size_t)r * 997);
			if (q[(size_t)r * 997] != (char)r)
				_exit(3);
			if (r % 2)
				mems_free(w);
		}
		mems_free(v);
		struct mems_stats st;
		mems_stats_get(&st);
		if (strcmp(st.mode_name, "kernel"))
			_exit(4);
		if (_i < 2 && !strstr(st.mode_reason, "fork"))
			_exit(6);
		if (st.pages_touched != (uint64_t)os_resident_pages(mems_g.span, mems_g.fl.committed))
			_exit(5);
		mems_finish();
		_exit(0);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	/* the parent is untouched by what the child did */
	ck_assert_str_eq(t_stats().mode_name, modes[_i]);
	for (size_t i = 0; i < 32 * ps; i++)
		ck_assert_int_eq(p[i], (char)(i % 251));
	char *w = mems_get(mems_malloc(100 * ps));
	memset(w, 7, 100 * ps);
	ck_assert_touched_exact();
}
END_TEST

/* ------------------------------------------------------------ threads */

#define NTHREADS 4
#define SLOTS 512
static _Atomic uintptr_t slots[SLOTS];
static _Atomic int thread_errors;

static unsigned char pattern(uintptr_t v, size_t i)
{
	return (unsigned char)(v * 31 + i * 7);
}

static size_t size_of(uintptr_t v)
{
	return 1 + (v * 2654435761u) % 6000;       /* derived, so any thread can check */
}

static void fill_block(uintptr_t v, size_t size)
{
	unsigned char *p = mems_get(V(v));
	for (size_t i = 0; i < size; i++)
		p[i] = pattern(v, i);
}

static void check_and_free(uintptr_t v)
{
	size_t size = size_of(v);
	unsigned char *p = mems_get(V(v));
	if (!p) {
		thread_errors++;
		return;
	}
	for (size_t i = 0; i < size; i++)
		if (p[i] != pattern(v, i)) {
			thread_errors++;
			break;
		}
	if (mems_get(V(v + size - 1)) != p + size - 1)
		thread_errors++;
	mems_free(V(v));
}

static void *worker(void *arg)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull * (uintptr_t)arg + 1;
	for (int op = 0; op < 20000; op++) {
		int k = (int)(t_rand(&seed) % SLOTS);
		uint64_t r = t_rand(&seed) % 1000;
		if (r == 0) {
			mems_init();                          /* harmless while running */
			struct mems_stats st;
			mems_stats_get(&st);
			char js[2048];
			mems_stats_json(js, sizeof js);
		}
		/* allocate until the size we get matches the derived one */
		size_t want = 1 + t_rand(&seed) % 6000;
		void *v = mems_malloc(want);
		if (!v) {
			thread_errors++;
			continue;
		}
		if (size_of(U(v)) > want) {
			/* keep blocks whose derived size fits what we asked for */
			mems_free(v);
			continue;
		}
		fill_block(U(v), size_of(U(v)));
		uintptr_t old = atomic_exchange(&slots[k], U(v));
		if (old)
			check_and_free(old);                  /* often another thread's */
	}
	return NULL;
}

START_TEST(threads_allocate_and_free_across_threads)
{
	mems_init();
	pthread_t t[NTHREADS];
	for (uintptr_t i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(thread_errors, 0);
	ck_assert_touched_exact();
	for (int k = 0; k < SLOTS; k++)
		if (slots[k])
			check_and_free(slots[k]);
	ck_assert_int_eq(thread_errors, 0);
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.process_segments, 0);
	ck_assert_uint_eq(st.errors, 0);
	ck_assert_uint_eq(st.pages_touched, 0);
	ck_assert_touched_exact();
}
END_TEST

static _Atomic int stop_faulting;

/* Allocates, touches (faulting) and frees until told to stop. */
static void *faulter(void *arg)
{
	(void)arg;
	size_t ps = os_page_size();
	while (!stop_faulting) {
		char *v = mems_malloc(64 * ps);
		char *p = mems_get(v);
		for (size_t i = 0; i < 64; i += 5)
			p[i * ps] = 1;
		mems_free(v);
	}
	return NULL;
}

START_TEST(fork_while_other_threads_fault)
{
	mems_init();
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, faulter, NULL);
	for (int n = 0; n < 30; n++) {
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			size_t len = 1 << 20;
			unsigned char *p = mems_get(mems_malloc(len));
			for (size_t i = 0; i < len; i++)
				p[i] = (unsigned char)(i * 13);
			for (size_t i = 0; i < len; i++)
				if (p[i] != (unsigned char)(i * 13))
					_exit(2);
			struct mems_stats st;
			mems_stats_get(&st);
			_exit(st.mode == MEMS_PAGER_KERNEL ? 0 : 3);
		}
		int status;
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "child %d status %#x", n, status);
	}
	stop_faulting = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ck_assert_touched_exact();
	ck_assert_uint_eq(t_stats().pages_touched, 0);
}
END_TEST

/* fork() while the fault-ahead helper may have pages in flight (a stream
 * stopped part way): the child has no helper and nothing in flight, and
 * the calls that would wait for the helper do not hang in it. */
START_TEST(fork_while_pages_are_in_flight)
{
	ck_assert_int_eq(mems_option_set("pager", "uffd"), 0);
	ck_assert_int_eq(mems_try_init(), 0);
	size_t ps = os_page_size(), n = 4096;
	for (int r = 0; r < 20; r++) {
		char *v = mems_malloc(n * ps), *p = mems_get(v);
		size_t upto = n / 2 + (size_t)r * 41;
		for (size_t i = 0; i < upto; i++)
			p[i * ps] = (char)i;
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			alarm(5);       /* a hang is a failure */
			struct mems_stats st;
			if (mems_stats_get(&st) != 0 || st.mode != MEMS_PAGER_KERNEL)
				_exit(2);
			for (size_t i = 0; i < n; i++)
				if (p[i * ps] != (i < upto ? (char)i : 0))
					_exit(3);
			if (mems_check() != 0)
				_exit(4);
			mems_free(v);
			_exit(mems_check() == 0 ? 0 : 5);
		}
		int status;
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "child %d status %#x", r, status);
		mems_free(v);
		ck_assert_uint_eq(t_stats().pages_touched, 0);
	}
	ck_assert_touched_exact();
}
END_TEST

/* Each writes streams into blocks of its own, some stopped part way, and
 * frees them: the helper serves one stream at a time, the handler the
 * rest, and frees wait for pages in flight. */
static _Atomic int stream_errors;

static void *streamer(void *arg)
{
	size_t ps = os_page_size(), n = 2048;
	unsigned seed = (unsigned)(uintptr_t)arg;
	for (int r = 0; r < 12; r++) {
		char *v = mems_malloc(n * ps), *p = mems_get(v);
		if (!p) {
			stream_errors++;
			continue;
		}
		size_t upto = n / 2 + rand_r(&seed) % (n / 2);
		for (size_t i = 0; i < upto; i++)
			p[i * ps] = (char)(i + r);
		for (size_t i = 0; i < n; i++)
			if (p[i * ps] != (i < upto ? (char)(i + r) : 0))
				stream_errors++;
		mems_free(v);
	}
	return NULL;
}

START_TEST(streams_of_several_threads_with_frees_and_checks)
{
	ck_assert_int_eq(mems_option_set("pager", "uffd"), 0);
	ck_assert_int_eq(mems_try_init(), 0);
	pthread_t t[2];
	for (uintptr_t i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, streamer, (void *)(i + 1));
	int bad = 0;
	for (int i = 0; i < 20; i++) {
		bad += mems_check() != 0;
		struct mems_stats st;
		bad += mems_stats_get(&st) != 0 || st.pages_touched > st.pages_mapped;
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(bad, 0);
	ck_assert_int_eq(stream_errors, 0);
	ck_assert_uint_eq(t_stats().pages_touched, 0);
	ck_assert_touched_exact();
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

static void *printer(void *arg)
{
	(void)arg;
	for (int i = 0; i < 50; i++)
		mems_print_stats();
	return NULL;
}

START_TEST(threads_print_while_others_allocate)
{
	mems_init();
	fflush(stdout);
	int saved = dup(1);
	int null = open("/dev/null", O_WRONLY);
	dup2(null, 1);
	pthread_t t[3];
	pthread_create(&t[0], NULL, printer, NULL);
	pthread_create(&t[1], NULL, worker, (void *)7);
	pthread_create(&t[2], NULL, worker, (void *)8);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	fflush(stdout);
	dup2(saved, 1);
	close(null);
	close(saved);
	ck_assert_int_eq(thread_errors, 0);
	ck_assert_touched_exact();
}
END_TEST

/* ------------------------------------------------------------ ordinary user */

/* Copy the helper where an ordinary user can run it; returns its path. */
static char *stage_helper(char *dir)
{
	char src[512], *dst = malloc(600);
	snprintf(src, sizeof src, "%s/tests/user_helper", t_build());
	ck_assert_ptr_nonnull(mkdtemp(dir));
	chmod(dir, 0755);
	snprintf(dst, 600, "%s/user_helper", dir);
	FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
	ck_assert_msg(in != NULL, "%s: build it first (make check)", src);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		fwrite(buf, 1, n, out);
	fclose(in);
	fclose(out);
	chmod(dst, 0755);
	return dst;
}

static int run_as_nobody(char *const argv[])
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		if (geteuid() == 0) {
			char *args[16] = { "setpriv", "--reuid=nobody", "--regid=nogroup",
					   "--clear-groups", "--" };
			int n = 5;
			for (int i = 0; argv[i] && n < 15; i++)
				args[n++] = argv[i];
			args[n] = NULL;
			execvp("setpriv", args);
			_exit(126);
		}
		execv(argv[0], argv);      /* already an ordinary user */
		_exit(127);
	}
	int status;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

START_TEST(ordinary_user_gets_user_mode_only_and_syscalls_work)
{
	char dir[] = "/tmp/mems-user-XXXXXX";
	char *helper = stage_helper(dir);
	char file[600];
	snprintf(file, sizeof file, "%s/data", dir);
	FILE *f = fopen(file, "wb");
	uint64_t seed = 77;
	for (int i = 0; i < 300000; i++)
		fputc((int)(t_rand(&seed) & 0xff), f);
	fclose(f);
	chmod(file, 0644);
	char *const a1[] = { helper, file, "uffd-user", NULL };
	ck_assert_int_eq(run_as_nobody(a1), 0);
	/* the program closes the userfaultfd in its table: the allocating
	 * thread can no longer populate with it, and reads the pages instead */
	char *const a3[] = { helper, file, "uffd-user", "--close-all", NULL };
	ck_assert_int_eq(run_as_nobody(a3), 0);
	char *const a2[] = { helper, "--force-uffd", NULL };
	ck_assert_int_eq(run_as_nobody(a2), 0);
	unlink(file);
	unlink(helper);
	rmdir(dir);
	free(helper);
}
END_TEST

Suite *api_suite(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, bad_input_is_survived_counted_and_changes_nothing);
	tcase_add_loop_test_raise_signal(tc, abort_on_error_aborts, SIGABRT, 0, 3);
	tcase_add_test(tc, running_out_of_span_is_enomem_not_abort);
	tcase_add_test(tc, before_init);
	tcase_add_test(tc, finish_and_init_cycles_leave_nothing_behind);
	tcase_add_test(tc, init_after_finish_under_an_address_space_limit);
	tcase_add_test(tc, default_span_fits_an_address_space_limit);
	tcase_add_test(tc, stats_at_exit_never_go_to_a_reused_descriptor);
	tcase_add_test(tc, closing_every_descriptor_loses_nothing);
	tcase_add_loop_test(tc, fork_child_keeps_working, 0, 3);
	tcase_add_test(tc, ordinary_user_gets_user_mode_only_and_syscalls_work);
	suite_add_tcase(s, tc);

	TCase *th = tcase_create("threads");
	tcase_set_timeout(th, 120);
	tcase_add_checked_fixture(th, NULL, teardown);
	tcase_add_test(th, threads_allocate_and_free_across_threads);
	tcase_add_test(th, threads_print_while_others_allocate);
	tcase_add_test(th, fork_while_other_threads_fault);
	tcase_add_test(th, fork_while_pages_are_in_flight);
	tcase_add_test(th, streams_of_several_threads_with_frees_and_checks);
	suite_add_tcase(s, th);
	return s;
}
