/*
 * check_fail.c - fault injection (MEMS_FAIL): every system-call point that
 * can fail gives a clean result: NULL and errno or a documented signal, a
 * diagnostic, the state intact (mems_check), nothing lost.
 */
#include <signal.h>
#include <sys/wait.h>

#include "fail.h"
#include "testutil.h"

static void teardown(void)
{
	fail_setup("");
	mems_finish();
	mems_option_reset();
}

static int maps_lines(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, c;
	ck_assert_ptr_nonnull(f);
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static struct t_init init;

START_TEST(mmap_failures_during_init_leave_nothing_behind)
{
	/* fail each mmap of initialisation in turn, in both cap settings and
	 * in kernel mode */
	const char *cap = _i == 1 ? "4M" : "0", *pager = _i == 2 ? "kernel" : "auto";
	int failed = 0, base = maps_lines();
	(void)base;
	for (int n = 1; n < 40; n++) {
		char spec[32];
		snprintf(spec, sizeof spec, "mmap:%d", n);
		/* a span set (not the default, which a failed reservation
		 * halves: below) */
		ck_assert_int_eq(mems_option_set("span_size", "64G"), 0);
		ck_assert_int_eq(mems_option_set("resident_max", cap), 0);
		ck_assert_int_eq(mems_option_set("pager", pager), 0);
		ck_assert_int_eq(mems_option_set("fail", spec), 0);
		char *err = t_capture(2, t_try_init, &init);
		if (init.rc == 0) {
			free(err);
			break;
		}
		ck_assert_msg(strstr(err, "mems: "), "no diagnostic for %s", spec);
		ck_assert_ptr_null(mems_malloc(100));      /* init failed: clean NULL */
#ifndef __SANITIZE_ADDRESS__
		/* nothing leaked (ASan maps memory of its own as the test runs) */
		ck_assert_int_eq(maps_lines(), base);
#endif
		failed++;
		free(err);
	}
	ck_assert_int_eq(init.rc, 0);
	ck_assert_int_ge(failed, _i == 1 ? 8 : 4);
	fprintf(stderr, "fail: %d mmap calls of mems_init (%s) failed in turn, each cleanly\n",
		failed, _i == 1 ? "with a cap" : _i ? "kernel mode" : "without a cap");
	ck_assert_int_eq(fail_setup(""), 0);
	void *v = mems_malloc(100);
	ck_assert_ptr_nonnull(mems_get(v));
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

/* The default span, when its reservation fails, is halved until one
 * fits (valgrind's address space has no room for 64 GiB); a span asked
 * for is not. */
START_TEST(default_span_is_halved_until_it_fits)
{
	ck_assert_int_eq(mems_option_set("span_size", "64G"), 0);
	ck_assert_int_eq(mems_option_set("fail", "mmap:1"), 0);
	char *err = t_capture(2, t_try_init, &init);
	ck_assert_int_eq(init.rc, -1);
	ck_assert_ptr_nonnull(strstr(err, "cannot reserve a span of 68719476736 bytes"));
	free(err);

	mems_option_reset();
	ck_assert_int_eq(mems_option_set("fail", "mmap:1"), 0);
	err = t_capture(2, t_try_init, &init);
	ck_assert_msg(init.rc == 0, "init: %s", err);
	ck_assert_str_eq(err, "");
	free(err);
	ck_assert_uint_eq(t_stats().span_size, 32ull << 30);
	char *p = mems_get(mems_malloc(1 << 20));
	ck_assert_ptr_nonnull(p);
	p[(1 << 20) - 1] = 1;
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

START_TEST(mprotect_failure_fails_the_allocation_cleanly)
{
	ck_assert_int_eq(mems_try_init(), 0);
	void *a = mems_malloc(100);
	char *before = t_capture_stats(), *seed_before = t_seed_lines(before);
	ck_assert_int_eq(fail_setup("mprotect:1"), 0);
	errno = 0;
	size_t big = MEMS_PAGE_SIZE + 5904;          /* 10000 with 4 KiB pages */
	ck_assert_ptr_null(mems_malloc(big));        /* needs a new node: commit fails */
	ck_assert_int_eq(errno, ENOMEM);
	char *after = t_capture_stats(), *seed_after = t_seed_lines(after);
	ck_assert_str_eq(seed_after, seed_before);   /* the list is as it was */
	ck_assert_int_eq(mems_check(), 0);
	void *b = mems_malloc(big);                  /* and the next one works */
	ck_assert_ptr_nonnull(mems_get(b));
	ck_assert_uint_eq(U(b), U(a) + MEMS_PAGE_SIZE);
	ck_assert_int_eq(mems_check(), 0);
	free(before); free(seed_before); free(after); free(seed_after);
}
END_TEST

START_TEST(madvise_failure_keeps_pages_and_counts_them)
{
	ck_assert_int_eq(mems_try_init(), 0);
	unsigned char *p = mems_ptr_malloc(64 * 4096);
	memset(p, 5, 64 * 4096);
	ck_assert_int_eq(fail_setup("madvise:1"), 0);
	char *err = t_capture(2, (void (*)(void *))mems_ptr_free, p);
	ck_assert_msg(strstr(err, "cannot give free pages back: Resource temporarily unavailable"),
		      "%s", err);
	free(err);
	ck_assert_int_eq(mems_check(), 0);           /* touched still equals mincore */
	ck_assert_uint_gt(t_stats().pages_touched, 0);
	/* the memory is reused, zeroed where calloc promises it */
	unsigned char *q = mems_ptr_calloc(64, 4096);
	for (size_t i = 0; i < 64 * 4096; i += 512)
		ck_assert_int_eq(q[i], 0);
	mems_ptr_free(q);                            /* this one is given back */
	ck_assert_uint_eq(t_stats().pages_touched, 0);
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

/* Write one byte into each of n pages of stride bytes from p[0]. */
struct touch { unsigned char *p; size_t n, stride; };

static void touch_pages(void *arg)
{
	const struct touch *t = arg;
	for (size_t i = 0; i < t->n; i++)
		t->p[i * t->stride] = (unsigned char)(i * 3 + 9);
}

START_TEST(populate_failure_is_retried)
{
	ck_assert_int_eq(mems_option_set("pager", "uffd"), 0);
	ck_assert_int_eq(mems_try_init(), 0);
	unsigned char *p = mems_ptr_malloc(16 * 4096);
	ck_assert_int_eq(fail_setup("uffd-copy:1"), 0);
	/* the first fault's ioctl fails: a diagnostic, the thread is woken,
	 * faults again and gets its page */
	struct touch t = { p, 2, 5 * 4096 };
	char *err = t_capture(2, touch_pages, &t);
	ck_assert_msg(strstr(err, "cannot populate page") && strstr(err, "Cannot allocate memory"),
		      "%s", err);
	free(err);
	ck_assert_int_eq(p[0], 9);
	ck_assert_int_eq(p[5 * 4096], 12);
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

/* The fault-ahead helper's copy fails: once (_i 0), or every time (_i 1).
 * The pages are no longer in flight, a thread waiting on them is woken
 * and faults again, and the handler populates them; nothing is lost. */
START_TEST(populate_ahead_failure_falls_back_to_the_handler)
{
	int helper = t_cpus() >= 2;     /* else nothing to fail, nothing said */
	ck_assert_int_eq(mems_option_set("pager", "uffd"), 0);
	ck_assert_int_eq(mems_try_init(), 0);
	size_t ps = os_page_size(), n = 16384;
	unsigned char *p = mems_get(mems_malloc(n * ps));
	ck_assert_int_eq(fail_setup(_i ? "ahead-copy:1+" : "ahead-copy:2"), 0);
	struct touch t = { p, n, ps };
	char *err = t_capture(2, touch_pages, &t);
	ck_assert_int_eq(*err != 0, helper);
	if (helper)
		ck_assert_msg(strstr(err, "cannot populate ahead") &&
			      strstr(err, "Cannot allocate memory"), "%s", err);
	free(err);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(p[i * ps], (unsigned char)(i * 3 + 9));
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.pages_touched, n);
	if (_i || !helper)
		ck_assert_uint_eq(st.pages_ahead, 0);
	else
		ck_assert_uint_gt(st.pages_ahead, 0);       /* the first went through */
	ck_assert_touched_exact();
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

START_TEST(register_and_api_failures_fall_back)
{
	static const char *const spec[] = { "uffd-register:1", "uffd-api:1" };
	static const char *const why[] = { "userfaultfd(2): Operation not permitted",
					   "userfaultfd(2): Invalid argument" };
	ck_assert_int_eq(mems_option_set("pager", "uffd"), 0);
	ck_assert_int_eq(mems_option_set("fail", spec[_i]), 0);
	ck_assert_int_eq(mems_try_init(), 0);
	struct mems_stats st = t_stats();
	ck_assert_str_eq(st.mode_name, "uffd");
	ck_assert_msg(strstr(st.mode_reason, why[_i]) &&
		      strstr(st.mode_reason, "/dev/userfaultfd: ok"), "%s", st.mode_reason);
	unsigned char *p = mems_ptr_malloc(4096);
	p[0] = 1;
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

static unsigned char *wp_buf;
static void fill_8m(void *unused)
{
	(void)unused;
	for (size_t i = 0; i < (8u << 20); i += 4096)
		wp_buf[i] = (unsigned char)(i >> 12);
}

START_TEST(write_protect_failure_keeps_pages_resident)
{
	/* every UFFDIO_WRITEPROTECT fails: nothing can be evicted, so the
	 * heap grows past the cap, counted, with no hang and no loss */
	ck_assert_int_eq(mems_option_set("resident_max", "1M"), 0);
	ck_assert_int_eq(mems_try_init(), 0);
	ck_assert_int_eq(fail_setup("uffd-wp:1+"), 0);
	size_t n = 8u << 20;
	wp_buf = mems_ptr_malloc(n);
	unsigned char *p = wp_buf;
	char *err = t_capture(2, fill_8m, NULL);
	ck_assert_msg(strstr(err, "cannot write protect pages: Cannot allocate memory"), "%s", err);
	free(err);
	for (size_t i = 0; i < n; i += 4096)
		ck_assert_int_eq(p[i], (unsigned char)(i >> 12));
	struct mems_stats st = t_stats();
	ck_assert_uint_gt(st.store_errors, 0);
	ck_assert_uint_gt(st.over_cap, 0);
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

START_TEST(io_uring_setup_failure_fails_init_clearly)
{
	ck_assert_int_eq(mems_option_set("resident_max", "4M"), 0);
	ck_assert_int_eq(mems_option_set("fail", "uring-init:1"), 0);
	char *err = t_capture(2, t_try_init, &init);
	ck_assert_int_eq(init.rc, -1);
	ck_assert_msg(strstr(err, "resident cap: io_uring: Cannot allocate memory"), "%s", err);
	free(err);
	ck_assert_ptr_null(mems_ptr_malloc(10));
	ck_assert_int_eq(mems_option_set("fail", ""), 0);
	ck_assert_int_eq(mems_try_init(), 0);
}
END_TEST

START_TEST(store_read_failure_is_sigbus_for_that_access)
{
	/* in a child of its own (it must die): the data of an evicted page
	 * that cannot be read back is lost, and the access that needs it
	 * gets SIGBUS, as with a swap-in error of the kernel's */
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(fds[1], 2);
		mems_option_set("resident_max", "1M");
		if (mems_try_init() != 0)
			_exit(2);
		size_t n = 8u << 20;
		volatile unsigned char *p = mems_ptr_malloc(n);
		for (size_t i = 0; i < n; i += 4096)
			p[i] = 3;
		fail_setup("uring-read:1");
		(void)p[0];          /* evicted: its read fails */
		_exit(3);
	}
	close(fds[1]);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	char buf[4096] = "";
	ck_assert_int_ge(read(fds[0], buf, sizeof buf - 1), 0);
	close(fds[0]);
#ifdef __SANITIZE_ADDRESS__
	/* ASan catches the SIGBUS, reports it and exits with 1 */
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1 &&
		      strstr(buf, "AddressSanitizer: BUS"), "status %#x: %s", status, buf);
#else
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS, "status %#x: %s", status,
		      buf);
#endif
	ck_assert_msg(strstr(buf, "cannot read an evicted page back from") &&
		      strstr(buf, "Input/output error"), "%s", buf);
}
END_TEST

static int setup_rc;
static void bad_setup(void *spec)
{
	setup_rc = fail_setup(spec);
}

/* A malformed spec is refused, names every point, and arms nothing. */
START_TEST(malformed_spec_names_every_point)
{
	static const char *const bad[] = { "bogus:1", "mmap", "mmap:0", "mmap:x", "thread:1-" };
	static const char *const names[] = { "mmap", "mprotect", "madvise", "uffd-api",
					     "uffd-register", "uffd-copy", "ahead-copy", "uffd-wp",
					     "uring-init", "uring-write", "uring-read", "thread" };
	ck_assert_int_eq(FP_COUNT, sizeof names / sizeof names[0]);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *err = t_capture(2, bad_setup, (void *)bad[i]);
		ck_assert_int_eq(setup_rc, -1);
		for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
			char want[32];
			snprintf(want, sizeof want, k ? " %s," : "(points: %s,", names[k]);
			if (k + 1 == sizeof names / sizeof names[0])
				snprintf(want, sizeof want, " %s)", names[k]);
			ck_assert_msg(strstr(err, want), "%s: no \"%s\" in %s", bad[i], want, err);
		}
		free(err);
	}
	/* nothing armed: MeMS starts and allocates */
	ck_assert_int_eq(mems_try_init(), 0);
	ck_assert_ptr_nonnull(mems_get(mems_malloc(100)));
}
END_TEST

Suite *fail_suite(void)
{
	Suite *s = suite_create("fail");
	TCase *tc = tcase_create("fail");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_loop_test(tc, mmap_failures_during_init_leave_nothing_behind, 0, 3);
	tcase_add_test(tc, default_span_is_halved_until_it_fits);
	tcase_add_test(tc, mprotect_failure_fails_the_allocation_cleanly);
	tcase_add_test(tc, madvise_failure_keeps_pages_and_counts_them);
	tcase_add_test(tc, populate_failure_is_retried);
	tcase_add_loop_test(tc, populate_ahead_failure_falls_back_to_the_handler, 0, 2);
	tcase_add_loop_test(tc, register_and_api_failures_fall_back, 0, 2);
	tcase_add_test(tc, write_protect_failure_keeps_pages_resident);
	tcase_add_test(tc, io_uring_setup_failure_fails_init_clearly);
	tcase_add_test(tc, store_read_failure_is_sigbus_for_that_access);
	tcase_add_test(tc, malformed_spec_names_every_point);
	suite_add_tcase(s, tc);
	return s;
}
