/*
 * check_ptr.c - the pointer API.
 */
#include <pthread.h>
#include <sys/wait.h>

#include "testutil.h"
#include "boot.h"

static const char *const modes[] = { "uffd", "uffd-user", "kernel" };

static void setup_mode(int i)
{
	ck_assert_int_eq(mems_option_set("pager", modes[i]), 0);
	ck_assert_int_eq(mems_try_init(), 0);
}

static void teardown(void)
{
	mems_finish();
	mems_option_reset();
}

START_TEST(malloc_is_aligned_sized_and_listed)
{
	setup_mode(_i);
	void *b[64];
	for (int i = 0; i < 64; i++) {
		size_t n = (size_t)i * 37;
		b[i] = mems_ptr_malloc(n);
		ck_assert_ptr_nonnull(b[i]);
		ck_assert_uint_eq((uintptr_t)b[i] % 16, 0);
		size_t u = mems_ptr_usable_size(b[i]);
		ck_assert_uint_ge(u, n ? n : 1);
		ck_assert_uint_lt(u, n + 16 + (n == 0) * 16);
		memset(b[i], i, u);
	}
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.process_segments, 64);
	for (int i = 0; i < 64; i++) {
		unsigned char *p = b[i];
		for (size_t k = 0; k < mems_ptr_usable_size(p); k++)
			ck_assert_int_eq(p[k], i);
		/* real <-> virtual, interior addresses too */
		void *v = mems_ptr_to_virtual(p);
		ck_assert_ptr_eq(mems_get(v), p);
		ck_assert_ptr_eq(mems_ptr_to_virtual(p + 5), (char *)v + 5);
		mems_ptr_free(p);
	}
	ck_assert_uint_eq(t_stats().process_segments, 0);
	ck_assert_uint_eq(t_stats().pages_touched, 0);
	ck_assert_touched_exact();
}
END_TEST

START_TEST(calloc_zeroes_reused_memory_and_checks_overflow)
{
	setup_mode(_i);
	size_t ps = os_page_size();
	/* dirty a block, keep a neighbour so its pages stay resident */
	unsigned char *a = mems_ptr_malloc(3 * ps);
	unsigned char *keep = mems_ptr_malloc(16);
	memset(a, 0xee, 3 * ps);
	mems_ptr_free(a);
	unsigned char *c = mems_ptr_calloc(3, ps);
	ck_assert_ptr_eq(c, a);                         /* reuses the hole */
	for (size_t i = 0; i < 3 * ps; i++)
		ck_assert_int_eq(c[i], 0);
	unsigned char *d = mems_ptr_calloc(1000, 1000);  /* fresh pages */
	for (size_t i = 0; i < 1000000; i += 4093)
		ck_assert_int_eq(d[i], 0);
	errno = 0;
	ck_assert_ptr_null(mems_ptr_calloc(SIZE_MAX / 2, 3));
	ck_assert_int_eq(errno, ENOMEM);
	errno = 0;
	ck_assert_ptr_null(mems_ptr_malloc(SIZE_MAX));
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_ptr_null(mems_ptr_malloc((size_t)1 << 60));
	mems_ptr_free(keep);
	ck_assert_touched_exact();
}
END_TEST

START_TEST(realloc_grows_in_place_moves_and_shrinks)
{
	setup_mode(_i);
	unsigned char *p = mems_ptr_malloc(100);
	memset(p, 7, 100);
	unsigned char *q = mems_ptr_realloc(p, 3000);     /* hole after it: in place */
	ck_assert_ptr_eq(q, p);
	ck_assert_uint_ge(mems_ptr_usable_size(q), 3000);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(q[i], 7);
	memset(q, 8, 3000);
	unsigned char *wall = mems_ptr_malloc(10);        /* right after q */
	ck_assert_ptr_eq(wall, q + 3008);
	unsigned char *r = mems_ptr_realloc(q, 20000);     /* must move */
	ck_assert_ptr_ne(r, q);
	for (int i = 0; i < 3000; i++)
		ck_assert_int_eq(r[i], 8);
	ck_assert_uint_eq(mems_ptr_usable_size(q), 0);     /* old one freed */
	unsigned char *s = mems_ptr_realloc(r, 50);        /* shrinks in place */
	ck_assert_ptr_eq(s, r);
	ck_assert_uint_eq(mems_ptr_usable_size(s), 64);
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(s[i], 8);
	ck_assert_ptr_null(mems_ptr_realloc(s, 0));        /* frees */
	ck_assert_uint_eq(mems_ptr_usable_size(s), 0);
	unsigned char *n = mems_ptr_realloc(NULL, 40);
	ck_assert_ptr_nonnull(n);
	errno = 0;
	ck_assert_ptr_null(mems_ptr_realloc(n, SIZE_MAX));
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_uint_eq(mems_ptr_usable_size(n), 48);    /* untouched */
	mems_ptr_free(n);
	mems_ptr_free(wall);
	ck_assert_uint_eq(t_stats().pages_touched, 0);
	ck_assert_touched_exact();
}
END_TEST

START_TEST(aligned_allocation)
{
	setup_mode(_i);
	mems_malloc(3);                                   /* misalign the list */
	for (size_t a = 1; a <= (1u << 20); a <<= 1) {
		for (size_t n = 1; n < 5000; n += 1237) {
			unsigned char *p = mems_ptr_aligned(a, n);
			ck_assert_ptr_nonnull(p);
			ck_assert_uint_eq((uintptr_t)p % (a < 16 ? 16 : a), 0);
			memset(p, 1, n);
			if (n % 2)
				mems_ptr_free(p);
		}
	}
	/* alignments past the span's own: of the real address, not of the
	 * offset in the span */
	for (size_t a = 4u << 20; a <= (1u << 30); a <<= 2) {
		unsigned char *p = mems_ptr_aligned(a, 100);
		ck_assert_ptr_nonnull(p);
		ck_assert_msg((uintptr_t)p % a == 0, "%p is not aligned to %zu", (void *)p, a);
		memset(p, 2, 100);
		mems_ptr_free(p);
	}
	errno = 0;
	ck_assert_ptr_null(mems_ptr_aligned(24, 10));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(mems_ptr_aligned(0, 10));
	ck_assert_int_eq(mems_check(), 0);
	ck_assert_touched_exact();
}
END_TEST

START_TEST(bad_frees_are_reported_and_harmless)
{
	setup_mode(0);
	char *p = mems_ptr_malloc(64);
	int local;
	char *stats = t_capture_stats(), *seed = t_seed_lines(stats);
	void *bad[] = { p + 8, &local, (void *)16 };
	const char *why[] = { "inside a segment", "not a MeMS address", "not a MeMS address" };
	for (int i = 0; i < 3; i++) {
		char *err = t_capture(2, t_ptr_free, bad[i]);
		ck_assert_msg(strstr(err, "free(") && strstr(err, why[i]), "%s", err);
		free(err);
	}
	char *stats2 = t_capture_stats(), *seed2 = t_seed_lines(stats2);
	ck_assert_str_eq(seed2, seed);                 /* nothing changed */
	free(stats2);
	free(seed2);
	mems_ptr_free(p);
	char *err = t_capture(2, t_ptr_free, p);
	ck_assert_ptr_nonnull(strstr(err, "double free"));
	free(err);
	ck_assert_uint_eq(t_stats().invalid_frees, 4);
	mems_ptr_free(NULL);
	ck_assert_uint_eq(t_stats().invalid_frees, 4);
	free(stats);
	free(seed);
}
END_TEST

/* mems_finish keeps its span reserved, empty, until the next init has its
 * own: a pointer from before the finish never names a block of the next
 * initialisation, and freeing it is diagnosed instead of freeing that
 * block (with the span unmapped, all 3 modes failed: the new span took the
 * old range and each free silently freed a new block). */
START_TEST(a_pointer_from_before_a_finish_names_nothing_after_it)
{
	setup_mode(_i);
	char *old[20];
	for (int i = 0; i < 20; i++)
		old[i] = mems_ptr_malloc(100);
	mems_finish();
	ck_assert_int_eq(mems_try_init(), 0);
	char *q[20];
	for (int i = 0; i < 20; i++) {
		q[i] = mems_ptr_malloc(100);
		strcpy(q[i], "new");
	}
	char *err = t_capture(2, t_ptr_free, old[0]);
	ck_assert_msg(strstr(err, "not a MeMS address"), "%s", err);
	free(err);
	for (int i = 1; i < 20; i++)
		free(t_capture(2, t_ptr_free, old[i]));
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.invalid_frees, 20);
	ck_assert_uint_eq(st.process_segments, 20);    /* the new blocks, all there */
	for (int i = 0; i < 20; i++)
		ck_assert_str_eq(q[i], "new");
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

START_TEST(syscalls_read_into_fresh_blocks)
{
	setup_mode(_i);
	char path[] = "/tmp/mems-ptr-XXXXXX";
	int fd = mkstemp(path);
	unlink(path);
	static char src[300000];
	for (size_t i = 0; i < sizeof src; i++)
		src[i] = (char)(i * 11);
	ck_assert_int_eq(write(fd, src, sizeof src), (ssize_t)sizeof src);
	for (int r = 0; r < 5; r++) {
		char *b = r % 2 ? mems_ptr_calloc(1, sizeof src) : mems_ptr_malloc(sizeof src);
		ck_assert_int_eq(pread(fd, b, sizeof src, 0), (ssize_t)sizeof src);
		ck_assert_mem_eq(b, src, sizeof src);
		b = mems_ptr_realloc(b, 2 * sizeof src);
		ck_assert_int_eq(pread(fd, b + sizeof src, sizeof src, 0), (ssize_t)sizeof src);
		ck_assert_mem_eq(b + sizeof src, src, sizeof src);
		if (r % 2)
			mems_ptr_free(b);
	}
	close(fd);
	ck_assert_touched_exact();
}
END_TEST

/* What libc does when it allocates, frees or resizes from inside one of
 * our calls (pthread_create under the allocator lock). */
START_TEST(calls_made_under_our_own_lock_do_not_deadlock)
{
	setup_mode(0);
	char *a = mems_ptr_malloc(100), *b = mems_ptr_malloc(200);
	memset(a, 'a', 100);
	memset(b, 'b', 200);
	mems_lock_take();
	char *boot = mems_ptr_malloc(50);
	ck_assert(boot_owns(boot));
	char *z = mems_ptr_calloc(10, 10);
	ck_assert(boot_owns(z));
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(z[i], 0);
	ck_assert_uint_eq(mems_ptr_usable_size(a), 112);
	mems_ptr_free(a);                                /* a MeMS block */
	char *moved = mems_ptr_realloc(b, 300);          /* into the arena */
	ck_assert(boot_owns(moved));
	for (int i = 0; i < 200; i++)
		ck_assert_int_eq(moved[i], 'b');
	mems_lock_drop();
	ck_assert_uint_eq(mems_ptr_usable_size(a), 0);   /* both freed */
	ck_assert_uint_eq(mems_ptr_usable_size(b), 0);
	ck_assert_uint_eq(t_stats().process_segments, 0);
	/* arena blocks outlive the lock: usable, resizable into MeMS, freeable */
	char *back = mems_ptr_realloc(moved, 1000);
	ck_assert(!boot_owns(back));
	ck_assert_int_eq(back[199], 'b');
	mems_ptr_free(back);
	mems_ptr_free(boot);
	mems_ptr_free(z);
	ck_assert_uint_eq(t_stats().invalid_frees, 0);
}
END_TEST

static void *ptr_worker(void *arg)
{
	uint64_t seed = (uintptr_t)arg * 7919 + 3;
	unsigned char *slot[64] = { 0 };
	size_t len[64] = { 0 };
	long bad = 0;
	for (int op = 0; op < 20000; op++) {
		int k = (int)(t_rand(&seed) % 64);
		if (slot[k]) {
			for (size_t i = 0; i < len[k]; i += 7)
				bad += slot[k][i] != (unsigned char)(k + len[k]);
			if (t_rand(&seed) % 2) {
				mems_ptr_free(slot[k]);
				slot[k] = NULL;
				continue;
			}
			size_t n = 1 + t_rand(&seed) % 3000;
			slot[k] = mems_ptr_realloc(slot[k], n);
			size_t keep = len[k] < n ? len[k] : n;
			for (size_t i = 0; i < keep; i += 7)
				bad += slot[k][i] != (unsigned char)(k + len[k]);
			len[k] = n;
		} else {
			len[k] = 1 + t_rand(&seed) % 3000;
			slot[k] = t_rand(&seed) % 4 ? mems_ptr_malloc(len[k]) : mems_ptr_calloc(1, len[k]);
		}
		memset(slot[k], (unsigned char)(k + len[k]), len[k]);
	}
	for (int k = 0; k < 64; k++)
		mems_ptr_free(slot[k]);
	return (void *)bad;
}

START_TEST(threads_use_the_pointer_api)
{
	setup_mode(_i);
	pthread_t t[4];
	for (uintptr_t i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, ptr_worker, (void *)i);
	for (int i = 0; i < 4; i++) {
		void *bad;
		pthread_join(t[i], &bad);
		ck_assert_ptr_null(bad);
	}
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.process_segments, 0);
	ck_assert_uint_eq(st.errors, 0);
	ck_assert_uint_eq(st.pages_touched, 0);
	ck_assert_touched_exact();
}
END_TEST

/* MEMS_POPULATE: blocks (and runs) of up to that many bytes are populated
 * by the allocating thread, with no fault; larger ones, the seed API's
 * and every block in kernel mode are left to the faults.  _i: 0 uffd, 1
 * uffd with small runs, 2 kernel, 3 uffd with the option 0, 4 uffd under
 * a resident cap (no pre-population there: it would not ask for room). */
START_TEST(populate_option_populates_blocks_at_malloc)
{
	size_t ps = os_page_size();
	ck_assert_int_eq(mems_option_set("populate", _i == 3 ? "0" : "64K"), 0);
	ck_assert_int_eq(mems_option_set("small_runs", _i == 1 ? "1" : "0"), 0);
	if (_i == 4)
		ck_assert_int_eq(mems_option_set("resident_max", "64M"), 0);
	setup_mode(_i == 2 ? 2 : 0);
	int on = _i < 2;

	struct mems_stats a = t_stats();
	ck_assert_uint_eq(a.pages_prepopulated, 0);
	unsigned char *b = mems_ptr_malloc(3 * ps);          /* 3 pages, page aligned */
	struct mems_stats s1 = t_stats();
	ck_assert_uint_eq(s1.pages_touched - a.pages_touched, on ? 3 : 0);
	ck_assert_uint_eq(s1.pages_prepopulated, on ? 3 : 0);
	ck_assert_touched_exact();
	for (size_t i = 0; i < 3 * ps; i += 512)               /* fresh: zeros */
		ck_assert_int_eq(b[i], 0);
	memset(b, 1, 3 * ps);
	struct mems_stats s2 = t_stats();
	if (on)                      /* no fault for a populated block */
		ck_assert_uint_eq(s2.faults, s1.faults);
	else if (_i != 2)
		ck_assert_uint_gt(s2.faults, s1.faults);

	unsigned char *big = mems_ptr_malloc(128 << 10);     /* over 64K: faults */
	ck_assert_uint_eq(t_stats().pages_touched, s2.pages_touched);
	big[0] = 1;
	ck_assert_uint_ge(t_stats().pages_touched, s2.pages_touched + 1);
	void *v = mems_malloc(2 * ps);                        /* seed API: faults */
	struct mems_stats s3 = t_stats();
	ck_assert_uint_eq(s3.pages_prepopulated, s1.pages_prepopulated);

	/* a block grown in place, up to the limit: the growth is populated */
	unsigned char *g = mems_ptr_malloc(ps);
	struct mems_stats s4 = t_stats();
	ck_assert_ptr_eq(mems_ptr_realloc(g, 4 * ps), g);
	ck_assert_uint_eq(t_stats().pages_prepopulated - s4.pages_prepopulated, on ? 3 : 0);

	if (_i == 1) {              /* a new run is populated whole */
		struct mems_stats s5 = t_stats();
		char *x = mems_ptr_malloc(100);
		struct mems_stats s6 = t_stats();
		ck_assert_uint_eq(s6.small_runs, s5.small_runs + 1);
		ck_assert_uint_eq(s6.pages_prepopulated - s5.pages_prepopulated,
				  s6.small_run_bytes / ps);
		x[0] = 1;
		ck_assert_uint_eq(t_stats().faults, s6.faults);
		mems_ptr_free(x);
	}
	/* the stats say so, printed and in JSON */
	char *out = t_capture_stats();
	ck_assert_int_eq(strstr(out, "Populated at malloc:\t") != NULL, on);
	free(out);
	char js[8192];
	ck_assert_int_lt(mems_stats_json(js, sizeof js), (int)sizeof js);
	ck_assert_ptr_nonnull(strstr(js, "\"pages_prepopulated\":"));
	ck_assert_int_eq(mems_check(), 0);
	mems_ptr_free(b);
	mems_ptr_free(big);
	mems_ptr_free(g);
	mems_free(v);
	ck_assert_touched_exact();
}
END_TEST

/* A fork child runs on the kernel's paging: nothing left to populate. */
START_TEST(populate_in_a_fork_child)
{
	ck_assert_int_eq(mems_option_set("populate", "64K"), 0);
	setup_mode(0);
	pid_t pid = fork();
	if (pid == 0) {
		char *p = mems_ptr_malloc(5 * os_page_size());
		memset(p, 3, 5 * os_page_size());
		_exit(p && t_stats().pages_prepopulated == 0 && mems_check() == 0 ? 0 : 1);
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
}
END_TEST

/* The pointer API appends nodes of at least an eighth of the committed
 * span (64 KiB to 4 MiB), the seed API nodes of exactly the pages asked
 * for; blocks share the pointer API's nodes by first fit. */
START_TEST(pointer_api_nodes_grow_with_the_heap)
{
	setup_mode(_i);
	/* the seed node's hole, 3192 bytes, is too small for 5000 */
	uint64_t mp = t_stats().page_size, seed = 2 * mp;
	void *v = mems_malloc(seed - 3192);            /* seed: a node of its pages */
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.main_nodes, 1);
	ck_assert_uint_eq(st.pages_used * mp, seed);
	void *a = mems_ptr_malloc(5000), *b = mems_ptr_malloc(5000);
	st = t_stats();
	ck_assert_uint_eq(st.main_nodes, 2);           /* one node of 64 KiB (or a page) for both */
	ck_assert_uint_eq(st.pages_used * mp, seed + ((64 << 10) + mp - 1) / mp * mp);
	ck_assert_uint_eq(st.process_segments, 3);
	ck_assert_uint_eq(st.hole_segments, 2);
	void *big = mems_ptr_malloc(16 << 20);         /* larger than the least node */
	uint64_t used = t_stats().pages_used * mp;
	/* as large as the pointer API's first node: no hole fits, and a node
	 * of an eighth of ~16 MiB comes */
	void *c = mems_ptr_malloc(((64 << 10) + mp - 1) / mp * mp);
	st = t_stats();
	ck_assert_uint_eq(st.main_nodes, 4);
	uint64_t least = (used / 8 + mp - 1) / mp * mp;
	ck_assert_uint_eq(st.pages_used * mp - used, least > (4 << 20) ? 4 << 20 : least);
	ck_assert_int_eq(mems_check(), 0);
	mems_ptr_free(a);
	mems_ptr_free(b);
	mems_ptr_free(big);
	mems_ptr_free(c);
	mems_free(v);
	ck_assert_uint_eq(t_stats().process_segments, 0);
	ck_assert_touched_exact();
}
END_TEST

Suite *ptr_suite(void)
{
	Suite *s = suite_create("ptr");
	TCase *tc = tcase_create("ptr");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_loop_test(tc, malloc_is_aligned_sized_and_listed, 0, 3);
	tcase_add_loop_test(tc, calloc_zeroes_reused_memory_and_checks_overflow, 0, 3);
	tcase_add_loop_test(tc, realloc_grows_in_place_moves_and_shrinks, 0, 3);
	tcase_add_loop_test(tc, aligned_allocation, 0, 3);
	tcase_add_test(tc, bad_frees_are_reported_and_harmless);
	tcase_add_loop_test(tc, a_pointer_from_before_a_finish_names_nothing_after_it, 0, 3);
	tcase_add_test(tc, calls_made_under_our_own_lock_do_not_deadlock);
	tcase_add_loop_test(tc, syscalls_read_into_fresh_blocks, 0, 3);
	tcase_add_loop_test(tc, populate_option_populates_blocks_at_malloc, 0, 5);
	tcase_add_test(tc, populate_in_a_fork_child);
	tcase_add_loop_test(tc, pointer_api_nodes_grow_with_the_heap, 0, 3);
	suite_add_tcase(s, tc);
	TCase *th = tcase_create("threads");
	tcase_set_timeout(th, 120);
	tcase_add_checked_fixture(th, NULL, teardown);
	tcase_add_loop_test(th, threads_use_the_pointer_api, 0, 3);
	suite_add_tcase(s, th);
	return s;
}
