/*
 * check_evict.c - the resident cap: eviction to the store, page-in,
 * clean drops, failures, fork, and a real program under a cap.
 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#include "evict.h"
#include "fail.h"
#include "store.h"
#include "testutil.h"
#include "trace.h"

#define CAP_MIB 4
#define PS 4096u

static char dir[] = "/tmp/mems-evict-XXXXXX";

static void setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	mems_finish();
	mems_option_reset();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static void start_cap(const char *cap)
{
	ck_assert_int_eq(mems_option_set("resident_max", cap), 0);
	ck_assert_int_eq(mems_option_set("swap_file", dir), 0);
	ck_assert_int_eq(mems_try_init(), 0);
	ck_assert_str_eq(t_stats().mode_name, "uffd");
}

/* Page i of a buffer holds its index and a version in every 64-bit word,
 * so a page from the wrong slot, a stale copy or a torn one all show. */
static void fill(unsigned char *page, uint64_t i, uint64_t ver)
{
	uint64_t *w = (uint64_t *)(void *)page;
	for (unsigned k = 0; k < PS / 8; k++)
		w[k] = (i << 32) ^ (ver << 8) ^ k;
}

static int check(const unsigned char *page, uint64_t i, uint64_t ver)
{
	const uint64_t *w = (const uint64_t *)(const void *)page;
	for (unsigned k = 0; k < PS / 8; k++)
		if (w[k] != ((i << 32) ^ (ver << 8) ^ k))
			return 0;
	return 1;
}

/* A new block of pages pages, page i filled with (i, ver). */
static unsigned char *filled(uint64_t pages, uint64_t ver)
{
	unsigned char *buf = mems_ptr_malloc(pages * PS);
	ck_assert_ptr_nonnull(buf);
	for (uint64_t i = 0; i < pages; i++)
		fill(buf + i * PS, i, ver);
	return buf;
}

/* Stats once the evictor is idle (it runs on while touched is within its
 * headroom of the cap), so that they can be compared with mincore. */
static struct mems_stats settled(void)
{
	struct mems_stats a = t_stats(), b;
	for (;;) {
		usleep(20000);
		b = t_stats();
		if (b.pages_touched == a.pages_touched && b.evictions == a.evictions &&
		    b.clean_drops == a.clean_drops)
			return b;
		a = b;
	}
}

/* The store's file, found through this process's descriptors: its
 * allocated bytes, or -1 when no descriptor refers to a file in dir. */
static long long store_file_bytes(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long long bytes = -1;
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		char link[300], target[512];
		snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		if (strncmp(target, dir, strlen(dir)) != 0)
			continue;
		struct stat sb;
		ck_assert_int_eq(stat(link, &sb), 0);
		bytes = (long long)sb.st_blocks * 512;
	}
	closedir(d);
	return bytes;
}

/* ---------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------- */

START_TEST(cap_option_is_checked)
{
	char buf[32];
	ck_assert_int_eq(mems_option_set("resident_max", "512K"), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(mems_option_set("resident_max", "lots"), -1);
	ck_assert_int_eq(mems_option_set("resident_max", "-1"), -1);
	ck_assert_int_eq(mems_option_set("resident_max", "0"), 0);
	ck_assert_int_eq(mems_option_set("resident_max", "8M"), 0);
	mems_option_get("resident_max", buf, sizeof buf);
	ck_assert_str_eq(buf, "8M");
	/* the bad values left the good one in place */
	ck_assert_int_eq(mems_option_set("resident_max", "1k"), -1);
	mems_option_get("resident_max", buf, sizeof buf);
	ck_assert_str_eq(buf, "8M");
	ck_assert_int_eq(mems_option_set("evict_policy", "lru"), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(mems_option_set("evict_policy", "fifo"), 0);
	mems_option_get("evict_policy", buf, sizeof buf);
	ck_assert_str_eq(buf, "fifo");
}
END_TEST

static void init_fails(void *unused)
{
	(void)unused;
	ck_assert_int_eq(mems_try_init(), -1);
}

START_TEST(cap_needs_full_userfaultfd)
{
	static const char *const modes[] = { "uffd-user", "kernel" };
	ck_assert_int_eq(mems_option_set("resident_max", "8M"), 0);
	ck_assert_int_eq(mems_option_set("pager", modes[_i]), 0);
	char *err = t_capture(2, init_fails, NULL);
	ck_assert_msg(strstr(err, "MEMS_RESIDENT_MAX needs MEMS_PAGER=uffd or auto"), "%s", err);
	free(err);
	ck_assert_ptr_null(mems_ptr_malloc(16));
}
END_TEST

START_TEST(cap_as_an_ordinary_user_fails_clearly)
{
	/* nobody gets only user-mode-only userfaultfd, which cannot see the
	 * kernel's own faults on evicted pages */
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(2);
		mems_option_set("resident_max", "8M");
		char *err = t_capture(2, init_fails, NULL);
		_exit(strstr(err, "MEMS_RESIDENT_MAX needs full userfaultfd") ? 0 : 1);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
}
END_TEST

START_TEST(named_store_must_be_new_and_goes_away)
{
	char path[128];
	snprintf(path, sizeof path, "%s/store", dir);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(mems_option_set("resident_max", "4M"), 0);
	ck_assert_int_eq(mems_option_set("swap_file", path), 0);
	char *err = t_capture(2, init_fails, NULL);
	ck_assert_msg(strstr(err, "File exists"), "%s", err);
	free(err);
	/* the user's file is untouched */
	struct stat sb;
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(unlink(path), 0);

	ck_assert_int_eq(mems_try_init(), 0);
	/* unlinked at once: nothing is left behind however the process ends */
	ck_assert_int_eq(stat(path, &sb), -1);
	ck_assert_int_ge(store_file_bytes(), 0);
	ck_assert_str_eq(t_stats().store_path, path);
	mems_finish();
	ck_assert_int_eq(store_file_bytes(), -1);
}
END_TEST

/* ---------------------------------------------------------------------
 * The store by itself
 * ------------------------------------------------------------------- */

START_TEST(store_batches_runs_and_reports_each_page)
{
	struct mems_store st;
	struct io_uring ring;
	char why[256];
	ck_assert_int_eq(store_open(&st, dir, 1024, PS, why, sizeof why), 0);
	ck_assert_int_eq(store_ring_init(&ring, 128), 0);
	unsigned char *buf = aligned_alloc(PS, 4 * PS), *back = aligned_alloc(PS, 4 * PS);
	for (int i = 0; i < 4; i++)
		memset(buf + i * PS, 'a' + i, PS);
	/* two runs (slots 3-4 and 9-10); the second request fails */
	uint64_t slots[4] = { 3, 4, 9, 10 };
	int res[4];
	struct store_io io = { buf, slots, res, 4 };
	ck_assert_int_eq(fail_setup("uring-write:2"), 0);
	ck_assert_uint_eq(store_io(&st, &ring, 1, &io), 2);
	ck_assert_int_eq(res[0], 0);
	ck_assert_int_eq(res[1], 0);
	ck_assert_int_eq(res[2], -EIO);
	ck_assert_int_eq(res[3], -EIO);
	fail_setup("");
	/* what was reported written was written */
	struct store_io rd = { back, slots, res, 2 };
	ck_assert_uint_eq(store_io(&st, &ring, 0, &rd), 0);
	ck_assert_int_eq(memcmp(back, buf, 2 * PS), 0);
	/* a slot never written reads as an error, not as zeros */
	uint64_t never[1] = { 500 };
	struct store_io rn = { back, never, res, 1 };
	ck_assert_uint_eq(store_io(&st, &ring, 0, &rn), 1);
	ck_assert_int_eq(res[0], -EIO);
	io_uring_queue_exit(&ring);
	store_close(&st);
	free(buf);
	free(back);
}
END_TEST

/* ---------------------------------------------------------------------
 * Eviction and page-in
 * ------------------------------------------------------------------- */

struct worker {
	unsigned char *buf;
	uint64_t pages, first, stride, ops, seed;
	uint32_t *ver;              /* per page, in glibc memory */
	uint64_t bad, done;
};

/* Each thread owns the pages first, first+stride, ...: it reads one at
 * random, checks it, and rewrites it with the next version. */
static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t own = (w->pages - w->first + w->stride - 1) / w->stride;
	for (uint64_t op = 0; op < w->ops; op++) {
		uint64_t i = w->first + (t_rand(&w->seed) % own) * w->stride;
		unsigned char *p = w->buf + i * PS;
		if (!check(p, i, w->ver[i]))
			w->bad++;
		if (t_rand(&w->seed) % 4)
			fill(p, i, ++w->ver[i]);
		w->done++;
	}
	return NULL;
}

struct sampler {
	atomic_int stop;
	uint64_t max_touched;
	long max_rss;
};

static void *sample(void *arg)
{
	struct sampler *s = arg;
	while (!s->stop) {
		uint64_t t = t_stats().pages_touched;
		long r = t_rss_anon_kib();
		s->max_touched = t > s->max_touched ? t : s->max_touched;
		s->max_rss = r > s->max_rss ? r : s->max_rss;
		usleep(1000);
	}
	return NULL;
}

START_TEST(working_set_8x_cap_with_threads)
{
	enum { THREADS = 4 };
	const uint64_t cap = CAP_MIB << 20, pages = 8 * cap / PS;
	start_cap("4M");
	long base = t_rss_anon_kib();
	unsigned char *buf = filled(pages, 0);
	uint32_t *ver = calloc(pages, sizeof *ver);

	struct sampler sm = { 0 };
	pthread_t st, th[THREADS];
	struct worker w[THREADS];
	pthread_create(&st, NULL, sample, &sm);
	for (int t = 0; t < THREADS; t++) {
		w[t] = (struct worker){ .buf = buf, .pages = pages, .first = (uint64_t)t,
					.stride = THREADS, .ops = 12000, .seed = 77 + (uint64_t)t,
					.ver = ver };
		pthread_create(&th[t], NULL, work, &w[t]);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	sm.stop = 1;
	pthread_join(st, NULL);

	uint64_t bad = 0;
	for (int t = 0; t < THREADS; t++)
		bad += w[t].bad;
	for (uint64_t i = 0; i < pages; i++)
		bad += !check(buf + i * PS, i, ver[i]);
	ck_assert_uint_eq(bad, 0);

	struct mems_stats s = settled();
	ck_assert_uint_eq(s.resident_cap, cap / PS);
	ck_assert_uint_le(sm.max_touched, cap / PS);
	ck_assert_uint_le(s.pages_touched, cap / PS);
	ck_assert_uint_eq(s.pages_touched, t_mincore());
	ck_assert_uint_gt(s.evictions, pages);
	ck_assert_uint_gt(s.page_ins, pages);
	ck_assert_uint_eq(s.store_errors, 0);
	ck_assert_uint_eq(s.over_cap, 0);
	ck_assert_uint_eq(s.store_written % PS, 0);
	ck_assert_uint_ge(s.store_read, s.page_ins * PS);
	/* RSS: the cap, plus the slack docs/DESIGN.md gives (staging buffers
	 * and the pager's maps) */
#if !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
	/* (a sanitizer's shadow memory of the pages counts in RssAnon) */
	long slack_kib = 2048;
	ck_assert_msg(sm.max_rss - base <= (long)(cap >> 10) + slack_kib,
		      "RssAnon grew by %ld KiB over a %llu KiB cap", sm.max_rss - base,
		      (unsigned long long)(cap >> 10));
#endif
	fprintf(stderr, "evict: 8x cap, 4 threads: peak touched %llu of %llu, RssAnon +%ld KiB, "
		"evictions %llu, page-ins %llu, clean drops %llu, cancelled %llu\n",
		(unsigned long long)sm.max_touched, (unsigned long long)(cap / PS),
		sm.max_rss - base, (unsigned long long)s.evictions,
		(unsigned long long)s.page_ins, (unsigned long long)s.clean_drops,
		(unsigned long long)s.evictions_cancelled);

	/* freeing gives the store space back */
	ck_assert_uint_gt(s.store_bytes, 0);
	mems_ptr_free(buf);
	s = t_stats();
	ck_assert_uint_eq(s.store_bytes, 0);
	ck_assert_uint_eq(s.pages_touched, 0);
	/* the evictor punches the file's space back soon after */
	for (int i = 0; i < 500 && store_file_bytes() > 0; i++)
		usleep(10000);
	ck_assert_int_eq(store_file_bytes(), 0);
	free(ver);
}
END_TEST

/* n random accesses to pages of buf (version 1): each reads its page and
 * checks it, and (write) writes it back unchanged. */
static void random_pass(unsigned char *buf, uint64_t pages, uint64_t *seed, int n, int write)
{
	uint64_t bad = 0;
	for (int k = 0; k < n; k++) {
		*seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t i = (*seed >> 33) % pages;
		bad += !check(buf + i * PS, i, 1);
		if (write)
			fill(buf + i * PS, i, 1);
	}
	ck_assert_uint_eq(bad, 0);
}

START_TEST(freed_store_space_goes_back_once_eviction_rests)
{
	/* Freed slots keep their file space while the evictor works (the
	 * next batches take them again) and give it back once it has had
	 * nothing to evict for a moment: then the file holds the pages in
	 * the store, whatever was freed in between, and no more than the
	 * file system's own blocks beside them (ext4 counts the blocks of
	 * a fragmented file's extent tree: 3 here). */
	const uint64_t pages = 4 * (CAP_MIB << 20) / PS;
	start_cap("4M");
	unsigned char *a = filled(pages, 1), *b = filled(pages, 2);
	/* read and rewrite pages of a at random: page-ins, each freeing its
	 * slot at the write, while eviction goes on */
	uint64_t seed = 7, bad = 0;
	random_pass(a, pages, &seed, 3000, 1);
	mems_ptr_free(b);
	struct mems_stats s = settled();
	ck_assert_uint_gt(s.store_bytes, 0);
	const long long fs_own = 64 << 10;
	long long file = store_file_bytes();
	for (int i = 0; i < 500 && file > (long long)s.store_bytes + fs_own; i++) {
		usleep(10000);
		s = t_stats();
		file = store_file_bytes();
	}
	ck_assert_int_ge(file, (long long)s.store_bytes);
	ck_assert_int_le(file, (long long)s.store_bytes + fs_own);
	for (uint64_t i = 0; i < pages; i++)
		bad += !check(a + i * PS, i, 1);
	ck_assert_uint_eq(bad, 0);
}
END_TEST

START_TEST(read_faults_go_in_writable_while_clean_pages_get_written)
{
	/* a read followed by a write, at random: while the pages read back
	 * clean are mostly written, a read fault reads its page back
	 * writable, and the write-protect fault that would follow it is not
	 * taken (all but one page-in in eight); once they are mostly not
	 * written, pages go in clean again and are dropped with no write */
	const uint64_t pages = 4 * (CAP_MIB << 20) / PS;
	start_cap("4M");
	unsigned char *buf = filled(pages, 1);
	uint64_t seed = 11;
	random_pass(buf, pages, &seed, 3000, 1);
	struct mems_stats a = t_stats();
	random_pass(buf, pages, &seed, 2000, 1);
	struct mems_stats b = t_stats();
	uint64_t ins = b.page_ins - a.page_ins, faults = b.faults - a.faults;
	ck_assert_uint_gt(ins, 1000);
	ck_assert_msg(faults < ins + ins / 2, "%llu faults for %llu page-ins",
		      (unsigned long long)faults, (unsigned long long)ins);
	/* reads only */
	random_pass(buf, pages, &seed, 6000, 0);
	a = t_stats();
	random_pass(buf, pages, &seed, 2000, 0);
	b = t_stats();
	ins = b.page_ins - a.page_ins;
	uint64_t written = b.evictions - a.evictions;
	ck_assert_uint_gt(ins, 1000);
	ck_assert_msg(written < ins / 4, "%llu pages written for %llu page-ins of reads",
		      (unsigned long long)written, (unsigned long long)ins);
	ck_assert_uint_gt(b.clean_drops - a.clean_drops, ins / 2);
}
END_TEST

START_TEST(clean_pages_are_dropped_without_a_write)
{
	static const char *const policy[] = { "clock", "fifo" };
	const uint64_t pages = 8 * (CAP_MIB << 20) / PS;
	ck_assert_int_eq(mems_option_set("evict_policy", policy[_i]), 0);
	start_cap("4M");
	unsigned char *buf = filled(pages, 1);
	uint64_t bad = 0, written[3];
	for (int pass = 0; pass < 3; pass++) {
		for (uint64_t i = 0; i < pages; i++)
			bad += !check(buf + i * PS, i, 1);
		written[pass] = t_stats().store_written;
	}
	ck_assert_uint_eq(bad, 0);
	/* after the first pass every page has its copy: reading never writes */
	ck_assert_uint_eq(written[1], written[0]);
	ck_assert_uint_eq(written[2], written[0]);
	struct mems_stats s = t_stats();
	ck_assert_uint_ge(s.clean_drops, pages);
	ck_assert_uint_le(s.evictions, pages);
	/* a write to a clean page frees its copy: the store shrinks */
	uint64_t before = s.store_bytes;
	for (uint64_t i = 0; i < pages; i += 2)
		fill(buf + i * PS, i, 2);
	ck_assert_uint_lt(t_stats().store_bytes, before);
	for (uint64_t i = 0; i < pages; i++)
		bad += !check(buf + i * PS, i, i % 2 ? 1 : 2);
	ck_assert_uint_eq(bad, 0);
}
END_TEST

/* n blocks of pages pages each, block i filled with version i, then all
 * but every every-th freed (a[i] NULL).  Returns the pages touched
 * before the frees. */
static uint64_t blocks_thinned(unsigned char **a, int n, uint64_t pages, int every)
{
	for (int i = 0; i < n; i++)
		a[i] = filled(pages, (uint64_t)i);
	uint64_t touched = t_stats().pages_touched;
	for (int i = 0; i < n; i++)
		if (i % every) {
			mems_ptr_free(a[i]);
			a[i] = NULL;
		}
	return touched;
}

/* Pages of the blocks blocks_thinned() kept that do not hold their data. */
static uint64_t kept_blocks_bad(unsigned char **a, int n, uint64_t pages, int every)
{
	uint64_t bad = 0;
	for (int i = 0; i < n; i += every)
		for (uint64_t k = 0; k < pages; k++)
			bad += !check(a[i] + k * PS, k, (uint64_t)i);
	return bad;
}

static void kept_blocks_free(unsigned char **a, int n, int every)
{
	for (int i = 0; i < n; i += every)
		mems_ptr_free(a[i]);
}

/* A purge delay holds under a cap: freed pages stay resident, counted,
 * until the cap needs their room; then the evictor gives them back before
 * it evicts anything in use, and with no write to the store. */
START_TEST(freed_pages_under_a_cap_wait_for_the_delay_and_go_first)
{
	enum { BLOCKS = 128, BLOCK_PAGES = 4 };
	const uint64_t cap = (CAP_MIB << 20) / PS, b_pages = cap * 3 / 4;
	ck_assert_int_eq(mems_option_set("purge_delay", "-1"), 0);
	start_cap("4M");
	/* half a cap of blocks; seven in eight freed, so that the free pages
	 * are scattered over the bitmaps' words */
	unsigned char *a[BLOCKS];
	uint64_t before = blocks_thinned(a, BLOCKS, BLOCK_PAGES, 8);
	struct mems_stats s = settled();
	ck_assert_uint_eq(s.pages_touched, before);
	ck_assert_uint_eq(s.pages_released, 0);

	/* the new block does not fit beside them: the free pages make room */
	unsigned char *b = filled(b_pages, 1000);
	uint64_t bad = 0;
	for (uint64_t i = 0; i < b_pages; i++)
		bad += !check(b + i * PS, i, 1000);
	bad += kept_blocks_bad(a, BLOCKS, BLOCK_PAGES, 8);
	ck_assert_uint_eq(bad, 0);
	s = settled();
	ck_assert_uint_le(s.pages_touched, cap);
	ck_assert_uint_eq(s.evictions, 0);
	ck_assert_uint_eq(s.store_written, 0);
	ck_assert_uint_ge(s.pages_released, before + b_pages - cap);
	ck_assert_uint_eq(s.pages_touched, t_mincore());
	ck_assert_int_eq(mems_check(), 0);
	mems_ptr_free(b);
	kept_blocks_free(a, BLOCKS, 8);
}
END_TEST

/* A give-back of free pages whose write protection fails is tried again:
 * the free pages are not left resident for live ones to be evicted in
 * their place.  Too few free pages for a batch, so that the sweep that
 * found them has nothing left to find. */
/* A fault put aside for room waits on the room pipe.  The evictor, woken
 * for it, may find nothing to evict: the program freed pages meanwhile (a
 * python3 under a 16 MiB cap hung at exit 2 times in 10 that way, its main
 * thread's fault put aside while 327 of 4,096 pages were resident).  It
 * must say there is room all the same.  Here the handler's request is made
 * by hand, with the pager lock held as the handler holds it, and nothing
 * resident: the pipe must become readable (the handler, with no fault put
 * aside, is not reading it). */
START_TEST(a_wait_for_room_is_answered_when_frees_made_the_room)
{
	ck_assert_int_eq(mems_option_set("resident_max", "1M"), 0);
	mems_init();
	struct mems_pager *pg = &mems_g.pg;
	struct pollfd p = { .fd = evict_roomfd(pg), .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, 0), 0);
	pager_lock(pg);
	evict_wait_room(pg);
	pthread_mutex_unlock(&pg->lock);
	ck_assert_int_eq(poll(&p, 1, 10000), 1);
	char c;
	ck_assert_int_eq(read(p.fd, &c, 1), 1);
	mems_finish();
}
END_TEST

START_TEST(free_pages_are_given_back_after_a_failed_protection)
{
	enum { BLOCKS = 8, BLOCK_PAGES = 4 };
	const uint64_t cap = (CAP_MIB << 20) / PS, headroom = cap / 8;
	const uint64_t nfree = BLOCKS / 4 * 3 * BLOCK_PAGES, kept = BLOCKS * BLOCK_PAGES - nfree;
	/* over the target with the free pages resident, under it without */
	const uint64_t b_pages = cap - headroom - kept - nfree / 2;
	ck_assert_int_eq(mems_option_set("purge_delay", "-1"), 0);
	start_cap("4M");
	unsigned char *a[BLOCKS];
	ck_assert_uint_eq(blocks_thinned(a, BLOCKS, BLOCK_PAGES, 4), kept + nfree);
	struct mems_stats s = settled();
	ck_assert_uint_eq(s.pages_touched, kept + nfree);
	ck_assert_uint_eq(s.pages_released, 0);

	ck_assert_int_eq(fail_setup("uffd-wp:1"), 0);
	unsigned char *b = filled(b_pages, 1000);
	/* the evictor waits a second after the failure */
	for (int i = 0; i < 500 && t_stats().pages_released < nfree; i++)
		usleep(10000);
	s = settled();
	ck_assert_int_eq(fail_setup(""), 0);
	ck_assert_uint_eq(s.pages_released, nfree);
	ck_assert_uint_eq(s.evictions, 0);
	ck_assert_uint_eq(s.store_written, 0);
	ck_assert_uint_eq(s.pages_touched, kept + b_pages);
	ck_assert_uint_eq(s.pages_touched, t_mincore());
	uint64_t bad = 0;
	for (uint64_t i = 0; i < b_pages; i++)
		bad += !check(b + i * PS, i, 1000);
	bad += kept_blocks_bad(a, BLOCKS, BLOCK_PAGES, 4);
	ck_assert_uint_eq(bad, 0);
	ck_assert_int_eq(mems_check(), 0);
	mems_ptr_free(b);
	kept_blocks_free(a, BLOCKS, 4);
}
END_TEST

/* Pages whose free has not reached the evictor yet (the allocator frees
 * the segment and clears the pages' live bits under its own lock only,
 * then tells the pager) are not written out, and the free then gives
 * them back with no write.  The window is made here by doing the first
 * half of a free by hand; then a block that needs evictions. */
START_TEST(pages_on_their_way_to_a_free_are_not_written_out)
{
	enum { A_PAGES = 64 };
	const uint64_t cap = (CAP_MIB << 20) / PS, b_pages = cap - cap / 8;
	ck_assert_int_eq(mems_option_set("evict_policy", _i ? "fifo" : "clock"), 0);
	start_cap("4M");
	unsigned char *a = filled(A_PAGES, 1);
	uint64_t off = (uint64_t)((char *)a - mems_g.span), pi = off / PS;
	ck_assert_uint_eq(off % PS, 0);
	mems_lock_take();
	mems_id seg = fl_find_process(&mems_g.fl, off);
	if (seg) {
		fl_free(&mems_g.fl, seg);
		for (uint64_t i = pi; i < pi + A_PAGES; i++)
			atomic_fetch_and(&mems_g.pg.live[i / 64], ~(1ull << (i % 64)));
	}
	mems_lock_drop();
	ck_assert_uint_ne(seg, 0);

	unsigned char *b = filled(b_pages, 2);
	/* the handler fills up to the cap; the evictor brings it down to
	 * its headroom below, in the background */
	for (int i = 0; i < 500 && t_stats().evictions < A_PAGES; i++)
		usleep(10000);
	struct mems_stats s = settled();
	ck_assert_uint_ge(s.evictions, A_PAGES);
	ck_assert_int_eq(os_resident_pages(a, A_PAGES * PS), A_PAGES);

	/* the free's second half: they go back, with no write */
	uint64_t written = s.store_written, released = s.pages_released;
	mems_lock_take();
	pager_release(&mems_g.pg, off, A_PAGES * PS);
	mems_lock_drop();
	s = settled();
	ck_assert_uint_ge(s.pages_released, released + A_PAGES);
	ck_assert_uint_eq(s.store_written, written);
	ck_assert_int_eq(os_resident_pages(a, A_PAGES * PS), 0);
	unsigned char *c = filled(A_PAGES, 3);
	uint64_t bad = 0;
	for (uint64_t i = 0; i < b_pages; i++)
		bad += !check(b + i * PS, i, 2);
	for (uint64_t i = 0; i < A_PAGES; i++)
		bad += !check(c + i * PS, i, 3);
	ck_assert_uint_eq(bad, 0);
	s = settled();
	ck_assert_uint_eq(s.pages_touched, t_mincore());
	ck_assert_int_eq(mems_check(), 0);
	mems_ptr_free(b);
	mems_ptr_free(c);
}
END_TEST

/* Threads allocate, fill, check and free blocks under a cap that keeps
 * the evictor giving free pages back while they are allocated again: a
 * page made live and written during its give-back keeps the write. */
struct churner {
	uint64_t seed, bad, ops;
};

static void *churn_blocks(void *arg)
{
	enum { SLOTS = 12 };
	struct churner *c = arg;
	unsigned char *blk[SLOTS] = { 0 };
	uint64_t len[SLOTS] = { 0 }, ver[SLOTS] = { 0 };
	for (uint64_t op = 0; op < c->ops; op++) {
		unsigned k = (unsigned)(t_rand(&c->seed) % SLOTS);
		if (blk[k]) {
			for (uint64_t i = 0; i < len[k]; i++)
				c->bad += !check(blk[k] + i * PS, i, ver[k]);
			mems_ptr_free(blk[k]);
		}
		len[k] = 1 + t_rand(&c->seed) % 24;
		ver[k] = op;
		blk[k] = mems_ptr_malloc(len[k] * PS);
		if (!blk[k]) {
			c->bad++;
			continue;
		}
		for (uint64_t i = 0; i < len[k]; i++)
			fill(blk[k] + i * PS, i, ver[k]);
	}
	for (unsigned k = 0; k < SLOTS; k++)
		if (blk[k]) {
			for (uint64_t i = 0; i < len[k]; i++)
				c->bad += !check(blk[k] + i * PS, i, ver[k]);
			mems_ptr_free(blk[k]);
		}
	return NULL;
}

START_TEST(threads_reuse_free_pages_while_the_evictor_gives_them_back)
{
	enum { THREADS = 4 };
	static const char *const policy[] = { "clock", "fifo" };
	ck_assert_int_eq(mems_option_set("evict_policy", policy[_i]), 0);
	ck_assert_int_eq(mems_option_set("purge_delay", "-1"), 0);
	start_cap("1M");
	pthread_t th[THREADS];
	struct churner c[THREADS];
	for (int t = 0; t < THREADS; t++) {
		c[t] = (struct churner){ .seed = 991 + (uint64_t)t, .ops = 3000 };
		pthread_create(&th[t], NULL, churn_blocks, &c[t]);
	}
	uint64_t bad = 0;
	for (int t = 0; t < THREADS; t++) {
		pthread_join(th[t], NULL);
		bad += c[t].bad;
	}
	ck_assert_uint_eq(bad, 0);
	struct mems_stats s = settled();
	/* with no purge, only the evictor gives free pages back */
	ck_assert_uint_gt(s.pages_released, 0);
	ck_assert_uint_le(s.pages_touched, s.resident_cap);
	ck_assert_uint_eq(s.pages_touched, t_mincore());
	ck_assert_int_eq(mems_check(), 0);
	fprintf(stderr, "evict: free pages reused under a 1 MiB cap (%s): %llu given back, "
		"%llu evictions, %llu page-ins\n", policy[_i], (unsigned long long)s.pages_released,
		(unsigned long long)s.evictions, (unsigned long long)s.page_ins);
}
END_TEST

struct hammer {
	volatile uint64_t *words;
	unsigned n;
	atomic_int stop;
	uint64_t count;
};

static void *hammer(void *arg)
{
	struct hammer *h = arg;
	while (!h->stop) {
		h->count++;
		for (unsigned k = 0; k < h->n; k++)
			h->words[k * (PS / 8)] = h->count;
	}
	return NULL;
}

START_TEST(writes_during_eviction_are_kept)
{
	/* one thread keeps writing 16 pages while the main thread streams
	 * through 8x the cap, so the evictor keeps choosing them: every write
	 * must survive, whether it landed before, during or after eviction */
	const uint64_t pages = 8 * (CAP_MIB << 20) / PS;
	start_cap("4M");
	struct hammer h = { .n = 16 };
	h.words = mems_ptr_aligned(PS, h.n * PS);
	unsigned char *buf = mems_ptr_malloc(pages * PS);
	pthread_t t;
	pthread_create(&t, NULL, hammer, &h);
	for (int pass = 0; pass < 4; pass++)
		for (uint64_t i = 0; i < pages; i++)
			buf[i * PS] = (unsigned char)(i + (uint64_t)pass);
	h.stop = 1;
	pthread_join(t, NULL);
	for (unsigned k = 0; k < h.n; k++)
		ck_assert_uint_eq(h.words[k * (PS / 8)], h.count);
	for (uint64_t i = 0; i < pages; i++)
		ck_assert_uint_eq(buf[i * PS], (unsigned char)(i + 3));
	struct mems_stats s = t_stats();
	fprintf(stderr, "evict: hammered pages: %llu rounds, %llu evictions cancelled by a write\n",
		(unsigned long long)h.count, (unsigned long long)s.evictions_cancelled);
}
END_TEST

START_TEST(system_calls_read_and_write_evicted_pages)
{
	/* the kernel's own accesses (read(2) into, write(2) from an evicted
	 * page) fault to the handler too, and page in */
	const uint64_t pages = 8 * (CAP_MIB << 20) / PS;
	start_cap("4M");
	unsigned char *buf = filled(pages, 5);
	int fd = memfd_create("io", 0);
	ck_assert_int_ge(fd, 0);
	/* the first pages are evicted by now */
	ck_assert_int_eq(write(fd, buf, 64 * PS), 64 * PS);
	ck_assert_int_eq(pread(fd, buf + (pages - 64) * PS, 64 * PS, 0), 64 * PS);
	for (uint64_t i = 0; i < 64; i++) {
		ck_assert(check(buf + i * PS, i, 5));
		ck_assert(check(buf + (pages - 64 + i) * PS, i, 5));
	}
	close(fd);
}
END_TEST

/* What a debugger reads at addr through /proc/PID/mem, as gdb does: 1 when
 * it reads len bytes, 0 when the kernel refuses (EIO). */
static int debugger_reads(int memfd, const void *addr, void *out, size_t len)
{
	ssize_t n = pread(memfd, out, len, (off_t)(uintptr_t)addr);
	if (n < 0)
		ck_assert_int_eq(errno, EIO);
	else
		ck_assert_int_eq(n, (ssize_t)len);
	return n >= 0;
}

START_TEST(debuggers_see_pages_populated_for_them)
{
	/* README, Known limits: the kernel cannot wait for the handler on a
	 * debugger's behalf, so a page never touched, or one in the store,
	 * is a hole to it until the program populates it (gdb: call madvise
	 * with MADV_POPULATE_READ), which must bring in the stored copy. */
	const uint64_t pages = 8 * (CAP_MIB << 20) / PS;
	start_cap("4M");
	unsigned char *buf = filled(pages, 9);
	unsigned char *fresh = mems_ptr_malloc(64 * PS);
	ck_assert_ptr_nonnull(fresh);
	settled();
	int memfd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(memfd, 0);
	unsigned char page[PS], in[1];
	/* a page of the block that went to the store */
	uint64_t i = 0;
	for (; i < pages; i++) {
		ck_assert_int_eq(mincore(buf + i * PS, PS, in), 0);
		if (!(in[0] & 1))
			break;
	}
	ck_assert_uint_lt(i, pages);
	uint64_t ins = t_stats().page_ins;
	ck_assert(!debugger_reads(memfd, buf + i * PS, page, PS));
	ck_assert(!debugger_reads(memfd, fresh + 5 * PS, page, PS));
	ck_assert_uint_eq(t_stats().page_ins, ins);
	/* each read right after its populate: the evictor could take a
	 * fresh page back in between */
	ck_assert_int_eq(madvise(buf + i * PS, PS, MADV_POPULATE_READ), 0);
	ck_assert(debugger_reads(memfd, buf + i * PS, page, PS));
	ck_assert(check(page, i, 9));
	ck_assert_uint_gt(t_stats().page_ins, ins);
	ck_assert_int_eq(madvise(fresh + 5 * PS, PS, MADV_POPULATE_READ), 0);
	ck_assert(debugger_reads(memfd, fresh + 5 * PS, page, PS));
	for (unsigned k = 0; k < PS; k++)
		ck_assert_uint_eq(page[k], 0);
	close(memfd);
}
END_TEST

START_TEST(fork_child_reads_evicted_pages)
{
	const uint64_t pages = 8 * (CAP_MIB << 20) / PS;
	start_cap("4M");
	unsigned char *buf = filled(pages, 3);
	struct mems_stats s = t_stats();
	ck_assert_uint_ge(s.evictions, pages - s.resident_cap);
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint64_t bad = 0;
		for (uint64_t i = 0; i < pages; i++)
			bad += !check(buf + i * PS, i, 3);
		/* and the child goes on allocating and writing */
		unsigned char *more = mems_ptr_malloc(1 << 20);
		memset(more, 7, 1 << 20);
		for (uint64_t i = 0; i < pages; i += 3)
			fill(buf + i * PS, i, 4);
		_exit(bad ? 1 : more[12345] == 7 ? 0 : 2);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	/* the parent's data is its own, and the cap holds again */
	uint64_t bad = 0;
	for (uint64_t i = 0; i < pages; i++)
		bad += !check(buf + i * PS, i, 3);
	ck_assert_uint_eq(bad, 0);
	/* the evictor brings the heap back under the cap (a generous bound on
	 * a loaded machine, not a timing measurement) */
	for (int i = 0; i < 1000 && t_stats().pages_touched > t_stats().resident_cap; i++)
		usleep(10000);
	ck_assert_uint_le(t_stats().pages_touched, t_stats().resident_cap);
}
END_TEST

/* ---------------------------------------------------------------------
 * Failures
 * ------------------------------------------------------------------- */

static void write_and_check(uint64_t pages, uint64_t ver)
{
	unsigned char *buf = filled(pages, ver);
	uint64_t bad = 0;
	for (int pass = 0; pass < 2; pass++)
		for (uint64_t i = 0; i < pages; i++)
			bad += !check(buf + i * PS, i, ver);
	ck_assert_uint_eq(bad, 0);
}

static void io_error_run(void *unused)
{
	(void)unused;
	ck_assert_int_eq(fail_setup("uring-write:20+"), 0);
	write_and_check(4 * (CAP_MIB << 20) / PS, 6);
}

START_TEST(write_errors_keep_pages_resident)
{
	start_cap("4M");
	char *err = t_capture(2, io_error_run, NULL);
	ck_assert_msg(strstr(err, "cannot write to the store") && strstr(err, "Input/output error"),
		      "%s", err);
	ck_assert_ptr_null(strstr(strstr(err, "cannot write") + 1, "cannot write"));
	free(err);
	struct mems_stats s = settled();
	ck_assert_uint_gt(s.store_errors, 0);
	ck_assert_uint_gt(s.over_cap, 0);
	ck_assert_uint_gt(s.pages_touched, s.resident_cap);
	ck_assert_uint_eq(s.pages_touched, t_mincore());
	/* the store recovers: with writes working again the cap comes back */
	ck_assert_int_eq(fail_setup(""), 0);
	sleep(1);
	write_and_check(4 * (CAP_MIB << 20) / PS, 7);
	ck_assert_uint_le(t_stats().pages_touched, t_stats().resident_cap);
}
END_TEST

static void enospc_run(void *unused)
{
	(void)unused;
	write_and_check(4 * (CAP_MIB << 20) / PS, 8);
}

START_TEST(full_store_on_tmpfs_loses_nothing)
{
	/* a real ENOSPC: the store on a 1 MiB tmpfs, in a mount namespace of
	 * this (forked) test process */
	ck_assert_int_eq(geteuid(), 0);
	ck_assert_int_eq(unshare(CLONE_NEWNS), 0);
	ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	ck_assert_int_eq(mount("tmpfs", dir, "tmpfs", 0, "size=1m"), 0);
	start_cap("4M");
	char *err = t_capture(2, enospc_run, NULL);
	ck_assert_msg(strstr(err, "No space left on device"), "%s", err);
	free(err);
	struct mems_stats s = settled();
	ck_assert_uint_gt(s.store_errors, 0);
	ck_assert_uint_gt(s.over_cap, 0);
	ck_assert_uint_le(s.store_bytes, 1 << 20);
	ck_assert_uint_gt(s.pages_touched, s.resident_cap);
	ck_assert_uint_eq(s.pages_touched, t_mincore());
	mems_finish();
	ck_assert_int_eq(umount(dir), 0);
}
END_TEST

static void init_and_use(void *unused)
{
	(void)unused;
	ck_assert_int_eq(mems_option_set("resident_max", "4M"), 0);
	ck_assert_int_eq(mems_try_init(), 0);
	write_and_check(4 * (CAP_MIB << 20) / PS, 3);
	ck_assert_uint_gt(t_stats().evictions, 0);
	mems_finish();
}

START_TEST(a_store_in_memory_is_said_unless_chosen)
{
	/* /tmp is tmpfs on many systems: a store there bounds the heap's
	 * RSS but not the RAM it takes, which the user is told, unless the
	 * store was named on purpose */
	ck_assert_int_eq(geteuid(), 0);
	ck_assert_int_eq(unshare(CLONE_NEWNS), 0);
	ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	ck_assert_int_eq(mount("tmpfs", dir, "tmpfs", 0, "size=64m"), 0);
	ck_assert_int_eq(setenv("TMPDIR", dir, 1), 0);
	char *err = t_capture(2, init_and_use, NULL);
	ck_assert_msg(strstr(err, "resident cap: the store's directory") && strstr(err, dir) &&
		      strstr(err, "is in memory (tmpfs): evicted pages still take RAM; "
			     "set MEMS_SWAP_FILE to a directory on disk"), "%s", err);
	ck_assert_ptr_null(strstr(strstr(err, "is in memory") + 1, "is in memory"));
	free(err);
	ck_assert_int_eq(mems_option_set("swap_file", dir), 0);
	err = t_capture(2, init_and_use, NULL);
	ck_assert_msg(!strstr(err, "is in memory"), "%s", err);
	free(err);
	/* and a store on disk is not: this test's own /tmp */
	ck_assert_int_eq(umount(dir), 0);
	struct statfs fs;
	ck_assert_int_eq(statfs(dir, &fs), 0);
	if (fs.f_type != TMPFS_MAGIC) {
		mems_option_reset();
		err = t_capture(2, init_and_use, NULL);
		ck_assert_msg(!strstr(err, "is in memory"), "%s", err);
		free(err);
	}
}
END_TEST

START_TEST(finish_has_closed_the_store_when_it_returns)
{
	/* The evictor holds the store in a descriptor table of its own, which
	 * the kernel releases after the join may have returned.  Before the
	 * thread closed it itself, the store's file system was still busy
	 * after mems_finish in 2-7 rounds of 100. */
	ck_assert_int_eq(geteuid(), 0);
	ck_assert_int_eq(unshare(CLONE_NEWNS), 0);
	ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	int busy = 0;
	for (int round = 0; round < 100; round++) {
		ck_assert_int_eq(mount("tmpfs", dir, "tmpfs", 0, "size=64m"), 0);
		start_cap("1M");
		unsigned char *buf = filled(4 * 256, round);
		ck_assert(check(buf, 0, round));
		ck_assert_uint_gt(t_stats().evictions, 0);
		mems_finish();
		if (umount(dir) != 0) {
			ck_assert_int_eq(errno, EBUSY);
			busy++;
			for (int i = 0; i < 1000 && umount(dir) != 0; i++)
				usleep(1000);
		}
	}
	ck_assert_int_eq(busy, 0);
}
END_TEST

/* ---------------------------------------------------------------------
 * A real program under the preload library, with a cap below its peak
 * ------------------------------------------------------------------- */

/* Run cmd with sh; its stdout and stderr into out/err (malloc'd). */
static int run_sh(const char *cmd, int capped, char **out, char **err)
{
	char lib[600];
	snprintf(lib, sizeof lib, "%s/libmems-preload.so", t_build());
	if (lib[0] != '/') {
		char cwd[400];
		ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
		snprintf(lib, sizeof lib, "%s/%s/libmems-preload.so", cwd, t_build());
	}
	int fo = memfd_create("out", 0), fe = memfd_create("err", 0);
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(fo, 1);
		dup2(fe, 2);
		setenv("LC_ALL", "C", 1);
		setenv("PYTHONHASHSEED", "0", 1);
		setenv("WORK", dir, 1);
		if (capped) {
			setenv("LD_PRELOAD", lib, 1);
			setenv("MEMS_RESIDENT_MAX", "16M", 1);
			setenv("MEMS_SWAP_FILE", dir, 1);
			setenv("MEMS_STATS_ON_EXIT", "1", 1);
		}
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	int fds[2] = { fo, fe };
	char **bufs[2] = { out, err };
	for (int i = 0; i < 2; i++) {
		off_t len = lseek(fds[i], 0, SEEK_END);
		*bufs[i] = calloc(1, (size_t)len + 1);
		ck_assert_int_eq(pread(fds[i], *bufs[i], (size_t)len, 0), len);
		close(fds[i]);
	}
	return status;
}

/* The most evictions of any process's stats block in err (each process
 * of the command prints one at exit, every one under the cap). */
static uint64_t evictions_in(const char *err)
{
	const char *q = err;
	uint64_t most = 0;
	int blocks = 0;
	while ((q = strstr(q, "Resident cap:\t"))) {
		const char *e = strstr(q, "evictions ");
		ck_assert_ptr_nonnull(e);
		uint64_t n = strtoull(e + 10, NULL, 10);
		most = n > most ? n : most;
		blocks++;
		q++;
	}
	ck_assert_msg(blocks > 0, "no resident cap in the stats:\n%s", err);
	return most;
}

static void same_under_cap(const char *cmd)
{
	char *o1, *e1, *o2, *e2;
	int s1 = run_sh(cmd, 0, &o1, &e1), s2 = run_sh(cmd, 1, &o2, &e2);
	ck_assert_msg(WIFEXITED(s1) && WEXITSTATUS(s1) == 0, "%s: %#x\n%s", cmd, s1, e1);
	ck_assert_msg(s1 == s2, "%s: status %#x plainly, %#x under a cap\n%s", cmd, s1, s2, e2);
	ck_assert_msg(strlen(o1) > 0 && !strcmp(o1, o2), "%s: output differs:\n%.500s\n---\n%.500s",
		      cmd, o1, o2);
	uint64_t ev = evictions_in(e2);
	ck_assert_msg(ev > 4096, "%s: only %llu pages evicted", cmd, (unsigned long long)ev);
	ck_assert_ptr_null(strstr(e2, "cannot"));
	fprintf(stderr, "evict: %.40s...: same output under a 16M cap, %llu pages evicted\n", cmd,
		(unsigned long long)ev);
	free(o1); free(e1); free(o2); free(e2);
}

START_TEST(python_under_a_cap_gives_the_same_output)
{
	/* about 150 MB at its peak, under a 16 MiB cap */
	same_under_cap("python3 -c '"
		       "import hashlib\n"
		       "d = {}\n"
		       "for i in range(400000): d[\"k%d\" % i] = [i, str(i) * 20, (i * 7) % 1000]\n"
		       "h = hashlib.sha256()\n"
		       "for k in sorted(d, key=lambda k: d[k][2]): h.update(k.encode() + d[k][1].encode())\n"
		       "print(len(d), h.hexdigest())'");
}
END_TEST

START_TEST(sort_under_a_cap_gives_the_same_output)
{
	same_under_cap("seq 1 1500000 | sed 's/$/ some text to make the lines longer/' > $WORK/in && "
		       "sort -S 200M $WORK/in | md5sum && sort -n -r -S 200M $WORK/in | tail -3");
}
END_TEST

/* ---------------------------------------------------------------------
 * Stats and trace
 * ------------------------------------------------------------------- */

START_TEST(stats_show_the_cap_only_when_set)
{
	ck_assert_int_eq(mems_try_init(), 0);
	char *out = t_capture_stats();
	ck_assert_ptr_null(strstr(out, "Resident cap:"));
	free(out);
	mems_finish();
	start_cap("4M");
	write_and_check(2 * (CAP_MIB << 20) / PS, 1);
	out = t_capture_stats();
	struct mems_stats s = t_stats();
	char want[160];
	snprintf(want, sizeof want, "Resident cap:\t1024 pages; evictions %llu, page-ins %llu",
		 (unsigned long long)s.evictions, (unsigned long long)s.page_ins);
	ck_assert_msg(strstr(out, want), "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "Store:\t"));
	free(out);
	char js[4096];
	mems_stats_json(js, sizeof js);
	snprintf(want, sizeof want, "\"evictions\":%llu,", (unsigned long long)s.evictions);
	ck_assert_msg(strstr(js, want), "%s", js);
}
END_TEST

START_TEST(trace_records_evictions_and_page_ins)
{
	char path[128];
	snprintf(path, sizeof path, "%s/t.trc", dir);
	ck_assert_int_eq(mems_option_set("trace", path), 0);
	start_cap("4M");
	write_and_check(4 * (CAP_MIB << 20) / PS, 2);
	/* the evictor may still be dropping pages down to its low mark: take
	 * the counters once they hold still (nothing else wakes it then) */
	struct mems_stats s = t_stats(), s2;
	for (int ms = 0; ms < 5000; ms += 20, s = s2) {
		usleep(20000);
		s2 = t_stats();
		if (s2.evictions == s.evictions && s2.page_ins == s.page_ins &&
		    s2.clean_drops == s.clean_drops)
			break;
	}
	mems_finish();
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	struct mems_trace_header h;
	ck_assert_int_eq(fread(&h, sizeof h, 1, f), 1);
	uint64_t pages[TRACE_KIND_MAX + 1] = { 0 };
	struct mems_trace_rec r;
	while (fread(&r, sizeof r, 1, f) == 1) {
		ck_assert_uint_le(r.kind, TRACE_KIND_MAX);
		pages[r.kind] += r.pages;
	}
	fclose(f);
	ck_assert_uint_eq(pages[TRACE_EVICT], s.evictions);
	ck_assert_uint_eq(pages[TRACE_PAGEIN], s.page_ins);
	ck_assert_uint_eq(pages[TRACE_DROP], s.clean_drops);
	ck_assert_uint_gt(s.evictions, 0);
}
END_TEST

Suite *evict_suite(void)
{
	Suite *s = suite_create("evict");
	TCase *tc = tcase_create("evict");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, cap_option_is_checked);
	tcase_add_loop_test(tc, cap_needs_full_userfaultfd, 0, 2);
	tcase_add_test(tc, cap_as_an_ordinary_user_fails_clearly);
	tcase_add_test(tc, named_store_must_be_new_and_goes_away);
	tcase_add_test(tc, store_batches_runs_and_reports_each_page);
	tcase_add_loop_test(tc, clean_pages_are_dropped_without_a_write, 0, 2);
	tcase_add_test(tc, freed_store_space_goes_back_once_eviction_rests);
	tcase_add_test(tc, read_faults_go_in_writable_while_clean_pages_get_written);
	tcase_add_test(tc, system_calls_read_and_write_evicted_pages);
	tcase_add_test(tc, fork_child_reads_evicted_pages);
	tcase_add_test(tc, debuggers_see_pages_populated_for_them);
	tcase_add_test(tc, write_errors_keep_pages_resident);
	tcase_add_test(tc, full_store_on_tmpfs_loses_nothing);
	tcase_add_test(tc, finish_has_closed_the_store_when_it_returns);
	tcase_add_test(tc, a_store_in_memory_is_said_unless_chosen);
	tcase_add_test(tc, stats_show_the_cap_only_when_set);
	tcase_add_test(tc, trace_records_evictions_and_page_ins);
	tcase_add_test(tc, freed_pages_under_a_cap_wait_for_the_delay_and_go_first);
	tcase_add_test(tc, free_pages_are_given_back_after_a_failed_protection);
	tcase_add_test(tc, a_wait_for_room_is_answered_when_frees_made_the_room);
	tcase_add_loop_test(tc, pages_on_their_way_to_a_free_are_not_written_out, 0, 2);
	suite_add_tcase(s, tc);
	/* run under ThreadSanitizer too (make check-tsan) */
	tc = tcase_create("threads");
	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, working_set_8x_cap_with_threads);
	tcase_add_test(tc, writes_during_eviction_are_kept);
	tcase_add_loop_test(tc, threads_reuse_free_pages_while_the_evictor_gives_them_back, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

/* Real programs with the preload library: a suite of its own, because the
 * sanitizer builds cannot preload an ASan library (see the Makefile). */
Suite *evict_real_suite(void)
{
	Suite *s = suite_create("evict-real");
	TCase *tc = tcase_create("evict-real");
	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, python_under_a_cap_gives_the_same_output);
	tcase_add_test(tc, sort_under_a_cap_gives_the_same_output);
	suite_add_tcase(s, tc);
	return s;
}
