/*
 * check_small.c - small blocks in runs (small.c): the pointer API's blocks
 * of up to SM_MAX_SIZE bytes, with MEMS_SMALL_RUNS on.
 */
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "small.h"

static void start(const char *mode)
{
	ck_assert_int_eq(mems_option_set("small_runs", "1"), 0);
	ck_assert_int_eq(mems_option_set("pager", mode), 0);
	ck_assert_int_eq(mems_try_init(), 0);
}

static void teardown(void)
{
	mems_finish();
	mems_option_reset();
}

/* The size classes of small.c: 16-byte steps to 256, 32 to 512, 64 to
 * 1024, 128 to 2048. */
static size_t class_size(size_t n)
{
	size_t step = n <= 256 ? 16 : n <= 512 ? 32 : n <= 1024 ? 64 : 128;
	return n ? (n + step - 1) / step * step : 16;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

START_TEST(runs_serve_small_blocks_and_the_stats_say_so)
{
	start(_i ? "kernel" : "uffd");
	enum { N = 3000 };
	static unsigned char *b[N];
	static size_t len[N];
	uint64_t seed = 7, bytes = 0;
	for (int i = 0; i < N; i++) {
		len[i] = rnd(&seed) % (SM_MAX_SIZE + 1);
		b[i] = mems_ptr_malloc(len[i]);
		ck_assert_ptr_nonnull(b[i]);
		ck_assert_uint_eq(U(b[i]) % 16, 0);
		ck_assert_uint_eq(mems_ptr_usable_size(b[i]), class_size(len[i]));
		memset(b[i], i & 0xff, class_size(len[i]));
		bytes += class_size(len[i]);
	}
	/* no two blocks overlap: every block still holds its own pattern */
	for (int i = 0; i < N; i++)
		for (size_t k = 0; k < class_size(len[i]); k += 7)
			ck_assert_uint_eq(b[i][k], (unsigned)(i & 0xff));
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.small_blocks, N);
	ck_assert_uint_eq(st.small_bytes, bytes);
	ck_assert_uint_gt(st.small_runs, 0);
	/* each run is one PROCESS segment of the list, counted whole */
	ck_assert_uint_eq(st.process_segments, st.small_runs);
	ck_assert_uint_eq(st.bytes_in_use, st.small_run_bytes);
	ck_assert_uint_ge(st.small_run_bytes, bytes);
	ck_assert_int_eq(mems_check(), 0);
	/* the printed stats have a line for them */
	char *out = t_capture_stats();
	char want[160];
	snprintf(want, sizeof want, "Small blocks:\t%d blocks of %" PRIu64 " bytes in %" PRIu64 " runs",
		 N, bytes, st.small_runs);
	ck_assert_ptr_nonnull(strstr(out, want));
	free(out);
	/* blocks from runs and from the list translate both ways */
	void *v = mems_ptr_to_virtual(b[5] + 3);
	ck_assert_ptr_eq(mems_get(v), b[5] + 3);
	for (int i = 0; i < N; i++)
		mems_ptr_free(b[i]);
	st = t_stats();
	ck_assert_uint_eq(st.small_blocks, 0);
	ck_assert_uint_eq(st.small_bytes, 0);
	/* what is left is this thread's own run of each class it used */
	ck_assert_uint_le(st.small_runs, SM_MAX_SIZE / 16);
	ck_assert_uint_eq(st.invalid_frees, 0);
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

START_TEST(larger_blocks_and_the_seed_api_stay_segments)
{
	start("uffd");
	void *big = mems_ptr_malloc(SM_MAX_SIZE + 1);
	void *al = mems_ptr_aligned(64, 100);          /* alignments over 16 too */
	void *v = mems_malloc(100);
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.small_runs, 0);
	ck_assert_uint_eq(st.process_segments, 3);
	ck_assert_uint_eq(U(al) % 64, 0);
	mems_ptr_free(big);
	mems_ptr_free(al);
	mems_free(v);
	ck_assert_uint_eq(t_stats().process_segments, 0);
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

/* POSIX 2024: free() never changes errno, on any of its paths: a run's
 * block (the last one retires the run, which gives its pages back), a
 * list block, a bad pointer (diagnosed). */
START_TEST(free_keeps_errno)
{
	start("uffd");
	void *blk[64];
	for (int i = 0; i < 64; i++)
		blk[i] = mems_ptr_malloc(1000);
	void *big = mems_ptr_malloc(100000);
	ck_assert_uint_gt(t_stats().small_runs, 1);
	errno = EDOM;
	for (int i = 0; i < 64; i++)
		mems_ptr_free(blk[i]);
	ck_assert_int_eq(errno, EDOM);
	ck_assert_uint_eq(t_stats().small_runs, 1);      /* all but the thread's own retired */
	errno = ERANGE;
	mems_ptr_free(big);
	ck_assert_int_eq(errno, ERANGE);
	errno = EDOM;
	free(t_capture(2, t_ptr_free, (char *)big + 16));
	ck_assert_int_eq(errno, EDOM);
	ck_assert_uint_eq(t_stats().invalid_frees, 1);
}
END_TEST

START_TEST(off_by_option)
{
	ck_assert_int_eq(mems_option_set("small_runs", "0"), 0);
	ck_assert_int_eq(mems_try_init(), 0);
	void *p = mems_ptr_malloc(40);
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.small_runs, 0);
	ck_assert_uint_eq(st.process_segments, 1);
	ck_assert_uint_eq(st.bytes_in_use, 48);
	mems_ptr_free(p);
}
END_TEST

/* In uffd-user mode a system call writing into a block cannot fault its
 * page in (EFAULT): a run is populated whole when it is made, and every
 * block of it can be read(2) into at once. */
START_TEST(runs_in_user_mode_are_resident_from_the_start)
{
	start("uffd-user");
	int fd[2];
	ck_assert_int_eq(pipe(fd), 0);
	static char *b[2000];
	for (int i = 0; i < 2000; i++) {
		size_t n = 16 + (size_t)(i * 37) % 2000;
		b[i] = mems_ptr_malloc(n);
		ck_assert_ptr_nonnull(b[i]);
		ck_assert_int_eq(write(fd[1], "0123456789abcdef", 16), 16);
		ck_assert_int_eq(read(fd[0], b[i], 16), 16);      /* no EFAULT */
		ck_assert_int_eq(memcmp(b[i], "0123456789abcdef", 16), 0);
	}
	struct mems_stats st = t_stats();
	ck_assert_uint_gt(st.small_runs, 10);
	ck_assert_uint_eq(st.small_blocks, 2000);
	/* every page of every run is resident, and was populated at malloc */
	ck_assert_uint_ge(st.pages_touched, st.small_run_bytes / os_page_size());
	ck_assert_uint_eq(st.pages_prepopulated, st.pages_populated);
	ck_assert_uint_eq(st.faults, 0);
	ck_assert_touched_exact();
	ck_assert_int_eq(mems_check(), 0);
	for (int i = 0; i < 2000; i++)
		mems_ptr_free(b[i]);
	st = t_stats();
	ck_assert_uint_eq(st.small_blocks, 0);
	ck_assert_uint_le(st.small_runs, 40);    /* the ones this thread owns */
	ck_assert_int_eq(mems_check(), 0);
	close(fd[0]);
	close(fd[1]);
}
END_TEST

static void bad_frees(void *arg)
{
	unsigned char **b = arg;
	mems_ptr_free(b[1]);                 /* twice */
	mems_ptr_free(b[2] + 16);            /* inside a block */
	mems_free(mems_ptr_to_virtual(b[3]));  /* the seed API frees it ... */
	mems_ptr_free(b[3]);                 /* ... so this is a double free */
	errno = 0;
	ck_assert_ptr_null(mems_ptr_realloc(b[1], 10));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_uint_eq(mems_ptr_usable_size(b[1]), 0);
}

START_TEST(bad_frees_are_diagnosed_and_change_nothing)
{
	start("uffd");
	unsigned char *b[8];
	for (int i = 0; i < 8; i++) {
		b[i] = mems_ptr_malloc(48);
		memset(b[i], 0x40 + i, 48);
	}
	mems_ptr_free(b[1]);
	uint64_t blocks = t_stats().small_blocks;
	char *err = t_capture(2, bad_frees, b);
	ck_assert_ptr_nonnull(strstr(err, "not allocated (double free?)"));
	ck_assert_ptr_nonnull(strstr(err, "inside a block, not its start"));
	free(err);
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.invalid_frees, 4);     /* two double frees, one inside, realloc */
	ck_assert_uint_eq(st.small_blocks, blocks - 1);   /* b[3] only */
	for (int i = 0; i < 8; i++)
		if (i != 1 && i != 3)
			for (int k = 0; k < 48; k++)
				ck_assert_uint_eq(b[i][k], 0x40u + (unsigned)i);
	/* a double-freed block is handed out once, not twice */
	unsigned char *x = mems_ptr_malloc(48), *y = mems_ptr_malloc(48);
	ck_assert_ptr_ne(x, y);
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

START_TEST(realloc_and_calloc_of_small_blocks)
{
	start("uffd");
	char *p = mems_ptr_malloc(20);
	memcpy(p, "0123456789abcdefghi", 20);
	ck_assert_ptr_eq(mems_ptr_realloc(p, 32), p);    /* same class */
	ck_assert_ptr_eq(mems_ptr_realloc(p, 8), p);     /* shrinking keeps it */
	char *q = mems_ptr_realloc(p, 100);
	ck_assert_ptr_ne(q, p);
	ck_assert_str_eq(q, "0123456789abcdefghi");
	char *r = mems_ptr_realloc(q, 10000);            /* to the list */
	ck_assert_str_eq(r, "0123456789abcdefghi");
	char *s = mems_ptr_realloc(r, 30);               /* a list block shrinks in place */
	ck_assert_ptr_eq(s, r);
	mems_ptr_free(s);
	/* calloc zeroes a block that held data */
	char *d = mems_ptr_malloc(200);
	memset(d, 0xff, 200);
	mems_ptr_free(d);
	char *z = mems_ptr_calloc(25, 8);
	ck_assert_ptr_eq(z, d);
	for (int i = 0; i < 200; i++)
		ck_assert_int_eq(z[i], 0);
	ck_assert_uint_eq(t_stats().small_blocks, 1);
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

/* ---------------------------------------------------------------------
 * Threads
 * ------------------------------------------------------------------- */

enum { HANDOFF = 4096 };
static _Atomic(unsigned char *) handoff[HANDOFF];
static atomic_long handed;

/* A churn with checked contents; a quarter of the blocks are handed to
 * another thread to free.  Returns the number of bad bytes and failed
 * mallocs (a ck_assert per byte would write millions of messages to
 * check's results file, which its runner then reads back). */
static void *churner(void *arg)
{
	uintptr_t bad = 0;
	uint64_t seed = (uint64_t)(uintptr_t)arg * 7919 + 1;
	enum { SLOTS = 512 };
	unsigned char *b[SLOTS] = { 0 };
	size_t len[SLOTS];
	for (int op = 0; op < 60000; op++) {
		unsigned k = (unsigned)(rnd(&seed) % SLOTS);
		if (b[k]) {
			for (size_t i = 0; i < len[k]; i += 13)
				bad += b[k][i] != (unsigned char)(k ^ len[k]);
			if (rnd(&seed) % 4 == 0) {
				unsigned char *old = atomic_exchange(&handoff[rnd(&seed) % HANDOFF], b[k]);
				if (old)
					mems_ptr_free(old);     /* another thread's block */
				atomic_fetch_add(&handed, 1);
			} else {
				mems_ptr_free(b[k]);
			}
		}
		len[k] = 1 + rnd(&seed) % SM_MAX_SIZE;
		b[k] = mems_ptr_malloc(len[k]);
		if (!b[k]) {
			bad++;
			continue;
		}
		memset(b[k], (unsigned char)(k ^ len[k]), len[k]);
	}
	for (int k = 0; k < SLOTS; k++)
		mems_ptr_free(b[k]);
	return (void *)bad;
}

START_TEST(threads_allocate_and_free_each_others_blocks)
{
	start("uffd");
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, churner, (void *)(uintptr_t)i), 0);
	for (int i = 0; i < 4; i++) {
		void *bad;
		pthread_join(t[i], &bad);
		ck_assert_uint_eq((uintptr_t)bad, 0);
	}
	ck_assert_int_gt(atomic_load(&handed), 1000);
	uint64_t left = 0;
	for (int i = 0; i < HANDOFF; i++)
		if (atomic_load(&handoff[i]))
			left++;
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.small_blocks, left);
	ck_assert_uint_eq(st.invalid_frees, 0);
	ck_assert_int_eq(mems_check(), 0);
	for (int i = 0; i < HANDOFF; i++)
		mems_ptr_free(atomic_exchange(&handoff[i], NULL));
	st = t_stats();
	ck_assert_uint_eq(st.small_blocks, 0);
	/* the threads have exited: their runs were let go, and every run
	 * that emptied went back to the list */
	ck_assert_uint_eq(st.small_runs, 0);
	ck_assert_uint_eq(st.process_segments, 0);
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

/* Allocate 64-byte blocks until one comes from a run made for the call:
 * the blocks before it (the current run's, from the first block this call
 * took) into b, how many into *n, and that block into b[*n]. */
static void fill_run(char **b, unsigned *n)
{
	uint64_t runs = t_stats().small_runs;
	b[0] = mems_ptr_malloc(64);
	*n = 1;
	if (t_stats().small_runs != runs)      /* b[0] began a run */
		runs = t_stats().small_runs;
	for (;;) {
		char *p = mems_ptr_malloc(64);
		if (t_stats().small_runs != runs) {
			b[*n] = p;
			return;
		}
		b[(*n)++] = p;
	}
}

static int in_run(const char *p, char *const *b, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (p == b[i])
			return 1;
	return 0;
}

/* Allocate until a block comes from one of the runs given by two block
 * lists: 1 for the first, 2 for the second, 0 if a new run came first. */
static int next_run_is(char *const *b1, unsigned n1, char *const *b2, unsigned n2)
{
	uint64_t runs = t_stats().small_runs;
	for (int i = 0; i < 1000 && t_stats().small_runs == runs; i++) {
		char *p = mems_ptr_malloc(64);
		if (in_run(p, b1, n1))
			return 1;
		if (in_run(p, b2, n2))
			return 2;
	}
	return 0;
}

static sem_t hold;

static void *attach_and_wait(void *arg)
{
	mems_ptr_free(mems_ptr_malloc(64));       /* a thread record in use */
	sem_post(arg);
	sem_wait(&hold);
	return NULL;
}

/* A run let go when full goes back on the partial list at its first free
 * block while one thread uses runs; with two, only once a quarter of its
 * blocks are free (each block would otherwise cost two trips through the
 * class's lock, which the threads queue on). */
START_TEST(a_full_run_is_reused_once_a_quarter_is_free)
{
	start("uffd");
	static char *b1[300], *b2[300];
	unsigned n1, n2;
	fill_run(b1, &n1);                         /* one thread: run 1, whole */
	ck_assert_uint_ge(n1, 8);
	mems_ptr_free(b1[0]);
	ck_assert_int_eq(next_run_is(b1, n1, NULL, 0), 1);
	/* a second thread with a record */
	sem_t up;
	sem_init(&up, 0, 0);
	sem_init(&hold, 0, 0);
	pthread_t t;
	pthread_create(&t, NULL, attach_and_wait, &up);
	sem_wait(&up);
	fill_run(b2, &n2);                         /* run 2, whole (or what is left) */
	for (unsigned i = 0; i < n2 / 4 - 1; i++)  /* not yet a quarter */
		mems_ptr_free(b2[i]);
	/* the current run fills up, and a new run is made rather than run 2
	 * taken back */
	ck_assert_int_eq(next_run_is(b2, n2, NULL, 0), 0);
	/* a quarter free: run 2 is the next run taken */
	mems_ptr_free(b2[n2 / 4 - 1]);
	ck_assert_int_eq(next_run_is(b2, n2, NULL, 0), 1);
	sem_post(&hold);
	pthread_join(t, NULL);
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

static sem_t go_w, done_w;
static char *wb[300];
static unsigned wn;
static int w_result;

static void *worker_steps(void *arg)
{
	char **mb = arg;
	sem_wait(&go_w);
	fill_run(wb, &wn);                          /* step 1: run W, whole */
	sem_post(&done_w);
	sem_wait(&go_w);                            /* step 2: the next run */
	w_result = next_run_is(wb, wn, mb, 300);
	sem_post(&done_w);
	return NULL;
}

/* A thread that needs a run takes back one it owned before rather than
 * another thread's on top of the partial list: their blocks side by side
 * would put their frees and allocations on the same cache lines. */
START_TEST(a_thread_takes_back_its_own_run_first)
{
	start("uffd");
	static char *mb[300];
	unsigned mn;
	sem_init(&go_w, 0, 0);
	sem_init(&done_w, 0, 0);
	pthread_t t;
	pthread_create(&t, NULL, worker_steps, mb);
	sem_post(&go_w);
	sem_wait(&done_w);
	fill_run(mb, &mn);                          /* this thread: run M, whole */
	for (unsigned i = 0; i < wn / 2; i++)       /* W half free, listed first */
		mems_ptr_free(wb[i]);
	for (unsigned i = 0; i < mn / 2; i++)       /* then M: on top of the list */
		mems_ptr_free(mb[i]);
	for (unsigned i = mn; i < 300; i++)
		mb[i] = NULL;
	sem_post(&go_w);
	sem_wait(&done_w);
	pthread_join(t, NULL);
	ck_assert_int_eq(w_result, 1);
	/* and this thread's own next run is M */
	ck_assert_int_eq(next_run_is(mb, mn, wb, wn), 1);
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

static void *alloc_some(void *arg)
{
	void **out = arg;
	for (int i = 0; i < 100; i++)
		out[i] = mems_ptr_malloc(64);
	return NULL;
}

START_TEST(a_thread_that_exits_lets_its_runs_go)
{
	start("uffd");
	static void *blk[100];
	pthread_t t;
	pthread_create(&t, NULL, alloc_some, blk);
	pthread_join(t, NULL);
	for (int i = 0; i < 100; i += 2)
		mems_ptr_free(blk[i]);
	uint64_t runs = t_stats().small_runs;
	/* this thread reuses the freed room of the dead thread's runs */
	void *mine[50];
	for (int i = 0; i < 50; i++)
		mine[i] = mems_ptr_malloc(64);
	ck_assert_uint_eq(t_stats().small_runs, runs);
	ck_assert_uint_eq(t_stats().small_blocks, 100);
	for (int i = 0; i < 50; i++)
		mems_ptr_free(mine[i]);
	for (int i = 1; i < 100; i += 2)
		mems_ptr_free(blk[i]);
	ck_assert_uint_eq(t_stats().small_blocks, 0);
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

static atomic_int stop_flag;

/* Two threads malloc and free, while a third callocs and reallocs: every
 * call that does work on a block after dropping the allocator lock (a
 * small calloc zeroes in its fast path, a larger one after the lock,
 * realloc copies) races the finishes.  The test never touches a block, as
 * any may have gone with a finish; a pointer from before a finish may even
 * name another thread's block after it, so only the third thread's calls
 * write blocks (two writers could then race on one block, by the test's
 * fault).  The third counts the callocs that returned NULL: a calloc that
 * loses its block to a finish starts over. */
static void *alloc_loop(void *arg)
{
	uintptr_t null_callocs = 0;
	while (!atomic_load(&stop_flag)) {
		void *p = mems_ptr_malloc(32), *q = mems_ptr_malloc(700);
		mems_ptr_free(p);
		mems_ptr_free(q);
		if (!arg)
			continue;
		void *c = mems_ptr_calloc(1, 100), *C = mems_ptr_calloc(3, 3000);
		null_callocs += !c + !C;
		void *r = mems_ptr_realloc(mems_ptr_malloc(24), 200);     /* a run's block moves */
		void *R = mems_ptr_realloc(mems_ptr_malloc(5000), 9000); /* grows or moves */
		void *M = mems_ptr_realloc(mems_ptr_malloc(3000), 100);  /* shrinks in place */
		mems_ptr_free(c);
		mems_ptr_free(C);
		mems_ptr_free(r);
		mems_ptr_free(R);
		mems_ptr_free(M);
	}
	return (void *)null_callocs;
}

static void finish_repeatedly(void *unused)
{
	(void)unused;
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, alloc_loop, i == 0 ? &stop_flag : NULL);
	for (int i = 0; i < 20; i++) {
		usleep(3000);
		mems_finish();
	}
	atomic_store(&stop_flag, 1);
	for (int i = 0; i < 3; i++) {
		void *null_callocs;
		pthread_join(t[i], &null_callocs);
		ck_assert_uint_eq((uintptr_t)null_callocs, 0);
	}
}

START_TEST(finish_while_threads_use_runs)
{
	/* _i = 1: new runs are populated by the thread that makes them */
	if (_i)
		ck_assert_int_eq(mems_option_set("populate", "64K"), 0);
	start("uffd");
	/* blocks from before a finish are diagnosed when freed after it */
	free(t_capture(2, finish_repeatedly, NULL));
	ck_assert_int_eq(mems_check(), 0);
	void *p = mems_ptr_malloc(100);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(t_stats().small_blocks, 1);
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

START_TEST(a_fork_child_uses_the_runs)
{
	start("uffd");
	static void *blk[100];
	pthread_t t;
	pthread_create(&t, NULL, alloc_some, blk);  /* runs of a thread that ... */
	pthread_join(t, NULL);
	char *mine = mems_ptr_malloc(64);
	strcpy(mine, "parent");
	pid_t pid = fork();
	if (pid == 0) {
		int ok = !strcmp(mine, "parent");
		for (int i = 0; i < 100; i++)
			mems_ptr_free(blk[i]);
		char *c[300];
		for (int i = 0; i < 300; i++) {
			c[i] = mems_ptr_malloc(64);
			ok &= c[i] != NULL;
			memset(c[i], 1, 64);
		}
		struct mems_stats st;
		mems_stats_get(&st);
		ok &= st.small_blocks == 301 && st.invalid_frees == 0;
		ok &= mems_check() == 0;
		_exit(ok ? 0 : 1);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_str_eq(mine, "parent");
	ck_assert_uint_eq(t_stats().small_blocks, 101);
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

Suite *small_suite(void)
{
	Suite *s = suite_create("small");
	TCase *tc = tcase_create("small");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_loop_test(tc, runs_serve_small_blocks_and_the_stats_say_so, 0, 2);
	tcase_add_test(tc, larger_blocks_and_the_seed_api_stay_segments);
	tcase_add_test(tc, off_by_option);
	tcase_add_test(tc, free_keeps_errno);
	tcase_add_test(tc, runs_in_user_mode_are_resident_from_the_start);
	tcase_add_test(tc, bad_frees_are_diagnosed_and_change_nothing);
	tcase_add_test(tc, realloc_and_calloc_of_small_blocks);
	tcase_add_test(tc, a_thread_that_exits_lets_its_runs_go);
	tcase_add_test(tc, a_full_run_is_reused_once_a_quarter_is_free);
	tcase_add_test(tc, a_thread_takes_back_its_own_run_first);
	tcase_add_test(tc, a_fork_child_uses_the_runs);
	suite_add_tcase(s, tc);
	TCase *th = tcase_create("threads");
	tcase_set_timeout(th, 120);
	tcase_add_checked_fixture(th, NULL, teardown);
	tcase_add_test(th, threads_allocate_and_free_each_others_blocks);
	tcase_add_loop_test(th, finish_while_threads_use_runs, 0, 2);
	suite_add_tcase(s, th);
	return s;
}
