/*
 * check_span.c - the OS layer.
 */
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "testutil.h"

START_TEST(reserve_commit_release_and_count)
{
	size_t ps = os_page_size(), len = 64 * ps;
	char *p = os_reserve(1 << 30, os_page_size());
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(os_resident_pages(p, len), 0);
	ck_assert_int_eq(os_commit(p, len), 0);
	ck_assert_int_eq(os_resident_pages(p, len), 0);      /* committed, untouched */
	for (size_t i = 0; i < len; i += 2 * ps)
		p[i] = 1;
	ck_assert_int_eq(os_resident_pages(p, len), 32);
	ck_assert_int_eq(os_release(p, 16 * ps), 0);
	ck_assert_int_eq(os_resident_pages(p, len), 24);
	ck_assert_int_eq(p[0], 0);                            /* zero after release */
	ck_assert_int_eq(os_decommit(p, len), 0);
	ck_assert_int_eq(os_resident_pages(p, len), 0);
	ck_assert_int_eq(os_unmap(p, 1 << 30), 0);
}
END_TEST

/* The span starts on a multiple of what is asked, or, with no room for
 * the slack under an address-space limit, on a page. */
START_TEST(reserve_aligns_when_there_is_room)
{
	size_t ps = os_page_size(), len = 64u << 20, al = 32u << 20;
	for (int i = 0; i < 8; i++) {
		char *p = os_reserve(len, al);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq((uintptr_t)p % al, 0);
		/* the slack went back: the bytes after the span are not ours */
		ck_assert_int_eq(msync(p + len, ps, MS_ASYNC), -1);
		ck_assert_int_eq(errno, ENOMEM);
		ck_assert_int_eq(os_unmap(p, len), 0);
	}
	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit rl;
		rl.rlim_cur = rl.rlim_max = ((rlim_t)t_status_kib("VmSize") << 10) + len + (16u << 20);
		if (setrlimit(RLIMIT_AS, &rl) != 0)
			_exit(3);
		char *p = os_reserve(len, 1u << 30);     /* no room for 1 GiB of slack */
		_exit(!p ? 4 : (uintptr_t)p % ps ? 5 : 0);
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
}
END_TEST

static sigjmp_buf jb;
static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(jb, 1);
}

START_TEST(uncommitted_memory_is_a_guard)
{
	char *p = os_reserve(1 << 20, os_page_size());
	ck_assert_ptr_nonnull(p);
	signal(SIGSEGV, on_segv);
	volatile int faulted = 0;
	if (sigsetjmp(jb, 1) == 0)
		p[100] = 1;
	else
		faulted = 1;
	signal(SIGSEGV, SIG_DFL);
	ck_assert_int_eq(faulted, 1);
	os_unmap(p, 1 << 20);
}
END_TEST

START_TEST(meta_mapping_is_zeroed_read_write)
{
	size_t len = 1 << 20;
	unsigned char *m = os_map_meta(len);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(m[len - 1], 0);
	m[12345] = 7;
	ck_assert_int_eq(m[12345], 7);
	os_unmap(m, len);
}
END_TEST

Suite *span_suite(void)
{
	Suite *s = suite_create("span");
	TCase *tc = tcase_create("os");
	tcase_add_test(tc, reserve_commit_release_and_count);
	tcase_add_test(tc, reserve_aligns_when_there_is_room);
	tcase_add_test(tc, uncommitted_memory_is_a_guard);
	tcase_add_test(tc, meta_mapping_is_zeroed_read_write);
	suite_add_tcase(s, tc);
	return s;
}
