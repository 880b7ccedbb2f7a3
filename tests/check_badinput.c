/*
 * check_badinput.c - the rows of docs/RELIABILITY.md that the api and ptr
 * suites do not already cover: the pointer API's bad sizes, alignments,
 * reallocs and foreign pointers, calls after mems_finish, mems_finish
 * while other threads allocate, writes past the end of a block, and the
 * stress test (8 threads x 1M operations, cookies, cross-thread frees,
 * forks).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "testutil.h"

static void teardown(void)
{
	mems_finish();
	mems_option_reset();
	unsetenv("MEMS_ABORT_ON_ERROR");
}

struct snap {
	char *seed;
	struct mems_stats st;
};

static struct snap snap(void)
{
	char *all = t_capture_stats();
	struct snap s = { t_seed_lines(all), t_stats() };
	free(all);
	return s;
}

/* Nothing but the error counters changed since s. */
static void unchanged(struct snap s)
{
	struct snap now = snap();
	ck_assert_str_eq(now.seed, s.seed);
	ck_assert_uint_eq(now.st.bytes_in_use, s.st.bytes_in_use);
	ck_assert_int_eq(mems_check(), 0);
	free(now.seed);
	free(s.seed);
}

START_TEST(pointer_api_bad_sizes)
{
	ck_assert_int_eq(mems_try_init(), 0);
	void *keep = mems_ptr_malloc(100);
	struct snap s = snap();
	errno = 0;
	ck_assert_ptr_null(mems_ptr_malloc(SIZE_MAX));
	ck_assert_int_eq(errno, ENOMEM);
	errno = 0;
	ck_assert_ptr_null(mems_ptr_malloc((size_t)1 << 62));
	ck_assert_int_eq(errno, ENOMEM);
	errno = 0;
	ck_assert_ptr_null(mems_ptr_calloc(SIZE_MAX / 2, 3));    /* n * size overflows */
	ck_assert_int_eq(errno, ENOMEM);
	errno = 0;
	ck_assert_ptr_null(mems_ptr_calloc((size_t)1 << 33, (size_t)1 << 33));
	ck_assert_int_eq(errno, ENOMEM);
	errno = 0;
	ck_assert_ptr_null(mems_ptr_realloc(keep, SIZE_MAX));
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_uint_eq(mems_ptr_usable_size(keep), 112);      /* the block is kept */
	errno = 0;
	ck_assert_ptr_null(mems_ptr_aligned(4096, SIZE_MAX - 100));
	ck_assert_int_eq(errno, ENOMEM);
	unchanged(s);
	ck_assert_uint_eq(t_stats().failed_allocs, 6);
	mems_ptr_free(keep);
}
END_TEST

START_TEST(pointer_api_bad_alignments)
{
	ck_assert_int_eq(mems_try_init(), 0);
	struct snap s = snap();
	static const size_t bad[] = { 0, 3, 24, 48, 4097, (size_t)1 << 63 | 1 };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		errno = 0;
		ck_assert_ptr_null(mems_ptr_aligned(bad[i], 64));
		ck_assert_int_eq(errno, EINVAL);
	}
	errno = 0;   /* a power of two larger than the span: no memory for it */
	ck_assert_ptr_null(mems_ptr_aligned((size_t)1 << 63, 64));
	ck_assert_int_eq(errno, ENOMEM);
	unchanged(s);
}
END_TEST

static void *realloc_arg;
static void *realloc_ret;
static int realloc_err;
static void do_realloc(void *size)
{
	errno = 0;
	realloc_ret = mems_ptr_realloc(realloc_arg, (size_t)(uintptr_t)size);
	realloc_err = errno;
}

START_TEST(pointer_api_realloc_of_bad_pointers)
{
	ck_assert_int_eq(mems_try_init(), 0);
	char *a = mems_ptr_malloc(100), *b = mems_ptr_malloc(100);
	memset(b, 7, 100);
	mems_ptr_free(a);
	struct snap s = snap();
	int local;
	char *glibc = malloc(64);
	void *bad[] = { a, b + 16, &local, glibc };
	const char *why[] = { "not allocated (double free?)", "inside a segment, not its start",
			      "not a MeMS address", "not a MeMS address" };
	for (int i = 0; i < 4; i++) {
		realloc_arg = bad[i];
		char *err = t_capture(2, do_realloc, (void *)(uintptr_t)200);
		ck_assert_msg(strstr(err, "realloc(") && strstr(err, why[i]), "%d: %s", i, err);
		ck_assert_ptr_null(realloc_ret);
		ck_assert_int_eq(realloc_err, EINVAL);
		free(err);
	}
	unchanged(s);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(b[i], 7);
	free(glibc);                 /* the foreign block is untouched: glibc takes it back */
	ck_assert_uint_eq(t_stats().invalid_frees, 4);
}
END_TEST

START_TEST(pointer_api_foreign_and_stack_pointers)
{
	ck_assert_int_eq(mems_try_init(), 0);
	struct snap s = snap();
	int local;
	char *glibc = malloc(64);
	strcpy(glibc, "glibc's");
	void *bad[] = { glibc, &local, (void *)(uintptr_t)4096, (void *)UINTPTR_MAX };
	for (int i = 0; i < 4; i++) {
		char *err = t_capture(2, t_ptr_free, bad[i]);
		ck_assert_msg(strstr(err, "free(") && strstr(err, "not a MeMS address"), "%s", err);
		free(err);
		ck_assert_uint_eq(mems_ptr_usable_size(bad[i]), 0);
		errno = 0;
		ck_assert_ptr_null(mems_ptr_to_virtual(bad[i]));
		ck_assert_int_eq(errno, EFAULT);
	}
	ck_assert_str_eq(glibc, "glibc's");
	free(glibc);
	unchanged(s);
}
END_TEST

START_TEST(calls_after_finish)
{
	ck_assert_int_eq(mems_try_init(), 0);
	void *v = mems_malloc(100);
	char *p = mems_ptr_malloc(100);
	mems_finish();
	/* old addresses are invalid now: diagnosed, nothing happens */
	char *err = t_capture(2, (void (*)(void *))mems_free, v);
	ck_assert_msg(strstr(err, "MeMS is not initialised"), "%s", err);
	free(err);
	err = t_capture(2, t_ptr_free, p);
	ck_assert_msg(strstr(err, "MeMS is not initialised"), "%s", err);
	free(err);
	errno = 0;
	ck_assert_ptr_null(mems_get(v));
	ck_assert_int_eq(errno, EFAULT);
	ck_assert_uint_eq(mems_ptr_usable_size(p), 0);
	ck_assert_int_eq(mems_check(), 0);
	mems_finish();                                   /* twice: harmless */
	/* and MeMS starts afresh on the next allocation */
	ck_assert_ptr_eq(mems_malloc(10), V(1000));
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

static atomic_int stop_flag;
static atomic_long calls_done;

static void *api_loop(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_flag)) {
		/* calls only: memory from before a finish must not be touched
		 * after it (it is unmapped, like munmap'd memory) */
		void *v = mems_malloc(64);
		if (v)
			(void)mems_get(v);
		void *p = mems_ptr_malloc(32);
		mems_free(v);
		mems_ptr_free(p);
		atomic_fetch_add(&calls_done, 1);
	}
	return NULL;
}

static void finish_while_threads_allocate(void *unused)
{
	(void)unused;
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, api_loop, NULL);
	for (int i = 0; i < 20; i++) {
		usleep(5000);
		mems_finish();
	}
	atomic_store(&stop_flag, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
}

START_TEST(finish_while_other_threads_allocate)
{
	ck_assert_int_eq(mems_try_init(), 0);
	char *err = t_capture(2, finish_while_threads_allocate, NULL);
	/* frees of blocks from before a finish are diagnosed, never crash */
	free(err);
	ck_assert_int_gt(atomic_load(&calls_done), 100);
	ck_assert_int_eq(mems_check(), 0);
	void *v = mems_malloc(100);
	ck_assert_ptr_nonnull(mems_get(v));
}
END_TEST

START_TEST(abort_on_error_aborts_for_the_pointer_api)
{
	setenv("MEMS_ABORT_ON_ERROR", "1", 1);
	ck_assert_int_eq(mems_try_init(), 0);
	char *p = mems_ptr_malloc(100);
	int local;
	switch (_i) {
	case 0: mems_ptr_free(p); mems_ptr_free(p); break;
	case 1: mems_ptr_free(p + 16); break;
	case 2: mems_ptr_free(&local); break;
	case 3: mems_ptr_realloc(p + 16, 200); break;
	}
	ck_abort_msg("did not abort");
}
END_TEST

START_TEST(writing_past_a_block_leaves_the_allocator_intact)
{
	/* metadata lives outside the span: scribbling over everything after
	 * a block (its neighbours, the holes, the rest of the node) can hurt
	 * the neighbours' data but never the allocator */
	ck_assert_int_eq(mems_try_init(), 0);
	char *a = mems_ptr_malloc(100), *b = mems_ptr_malloc(5000), *c = mems_ptr_malloc(300);
	mems_ptr_free(b);
	void *v = mems_malloc(2000);
	struct snap s = snap();
	size_t node_end = mems_g.fl.committed;
	memset(a + 100, 0xff, (size_t)(mems_g.span + node_end - (a + 100)));
	unchanged(s);
	mems_ptr_free(a);
	mems_ptr_free(c);
	mems_free(v);
	ck_assert_int_eq(mems_check(), 0);
	ck_assert_uint_eq(t_stats().process_segments, 0);
	/* the scribbled pages of the node that stayed a hole throughout are
	 * resident (the program wrote them), and counted as such */
	ck_assert_uint_eq(t_stats().pages_touched, t_mincore());
}
END_TEST

/* ---------------------------------------------------------------------
 * Stress: 8 threads x 1M operations
 * ------------------------------------------------------------------- */

#define STRESS_THREADS 8
#define STRESS_OPS 1000000
#define SHARED 4096

static _Atomic(uint64_t *) shared[SHARED];
static atomic_long stress_bad;

static uint64_t cookie(const uint64_t *p, size_t size)
{
	return ((uintptr_t)p * 0x9e3779b97f4a7c15ull) ^ size;
}

/* A block: size in word 0, cookie in word 1 and in its last word. */
static uint64_t *make(size_t size)
{
	uint64_t *p = mems_ptr_malloc(size);
	if (!p)
		return NULL;
	p[0] = size;
	p[1] = cookie(p, size);
	p[size / 8 - 1] = cookie(p, size);
	return p;
}

static void check_and_free(uint64_t *p)
{
	size_t size = p[0];
	if (size < 24 || size > 24 + 511 * 8 || p[1] != cookie(p, size) || p[size / 8 - 1] != cookie(p, size))
		atomic_fetch_add(&stress_bad, 1);
	mems_ptr_free(p);
}

static void *stress(void *arg)
{
	uint64_t seed = 1 + (uintptr_t)arg, *mine[64] = { 0 };
	for (long op = 0; op < STRESS_OPS; op++) {
		uint64_t r = t_rand(&seed);
		unsigned k = (unsigned)(r % 64);
		if (r & 0x100) {
			/* own blocks */
			if (mine[k]) {
				check_and_free(mine[k]);
				mine[k] = NULL;
			} else {
				mine[k] = make(24 + (r >> 16) % 512 * 8);
			}
		} else {
			/* blocks shared with the other threads: freed by whoever
			 * takes them */
			unsigned i = (unsigned)((r >> 20) % SHARED);
			uint64_t *p = atomic_exchange(&shared[i], NULL);
			if (p)
				check_and_free(p);
			else if ((p = make(24 + (r >> 32) % 512 * 8)))
				if ((p = atomic_exchange(&shared[i], p)))
					check_and_free(p);
		}
		if ((uintptr_t)arg == 0 && op % 250000 == 125000) {
			/* fork in the middle: the child checks its copies of
			 * this thread's blocks, allocates and frees, and exits */
			pid_t pid = fork();
			if (pid == 0) {
				long bad = 0;
				for (int j = 0; j < 64; j++)
					if (mine[j] && mine[j][1] != cookie(mine[j], mine[j][0]))
						bad++;
				for (int j = 0; j < 1000; j++)
					check_and_free(make(64));
				_exit(bad || atomic_load(&stress_bad) ? 1 : 0);
			}
			int status;
			if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0)
				atomic_fetch_add(&stress_bad, 1);
		}
	}
	for (int j = 0; j < 64; j++)
		if (mine[j])
			check_and_free(mine[j]);
	return NULL;
}

START_TEST(stress_8_threads_1m_operations_with_forks)
{
	ck_assert_int_eq(mems_try_init(), 0);
	pthread_t t[STRESS_THREADS];
	for (uintptr_t i = 0; i < STRESS_THREADS; i++)
		pthread_create(&t[i], NULL, stress, (void *)i);
	for (int i = 0; i < STRESS_THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < SHARED; i++) {
		uint64_t *p = atomic_exchange(&shared[i], NULL);
		if (p)
			check_and_free(p);
	}
	ck_assert_int_eq(atomic_load(&stress_bad), 0);
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.process_segments, 0);
	ck_assert_uint_eq(st.errors, 0);
	ck_assert_uint_eq(st.pages_touched, 0);
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

Suite *badinput_suite(void)
{
	Suite *s = suite_create("badinput");
	TCase *tc = tcase_create("badinput");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, pointer_api_bad_sizes);
	tcase_add_test(tc, pointer_api_bad_alignments);
	tcase_add_test(tc, pointer_api_realloc_of_bad_pointers);
	tcase_add_test(tc, pointer_api_foreign_and_stack_pointers);
	tcase_add_test(tc, calls_after_finish);
	tcase_add_test(tc, finish_while_other_threads_allocate);
	tcase_add_loop_test_raise_signal(tc, abort_on_error_aborts_for_the_pointer_api, SIGABRT, 0, 4);
	tcase_add_test(tc, writing_past_a_block_leaves_the_allocator_intact);
	suite_add_tcase(s, tc);
	tc = tcase_create("stress");
	tcase_set_timeout(tc, 600);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, stress_8_threads_1m_operations_with_forks);
	suite_add_tcase(s, tc);
	return s;
}
