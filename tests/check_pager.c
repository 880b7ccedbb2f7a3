/*
 * check_pager.c - the userfaultfd pager, in each mode.
 */
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <inttypes.h>

#include "fail.h"
#include "testutil.h"

static const char *const modes[] = { "uffd", "uffd-user", "kernel" };

static void start(const char *mode)
{
	ck_assert_int_eq(mems_option_set("pager", mode), 0);
	if (mems_try_init() != 0)
		ck_abort_msg("pager %s did not start (running as uid %d)", mode, (int)geteuid());
	ck_assert_str_eq(t_stats().mode_name, mode);
}

static void teardown(void)
{
	mems_finish();
	mems_option_reset();
}

START_TEST(modes_start_and_say_why)
{
	start(modes[_i]);
	struct mems_stats st = t_stats();
	ck_assert_ptr_nonnull(strstr(st.mode_reason, "MEMS_PAGER="));
	if (_i == 0)
		ck_assert_ptr_nonnull(strstr(st.mode_reason, ": ok"));
}
END_TEST

START_TEST(auto_takes_full_userfaultfd_as_root)
{
	ck_assert_int_eq(geteuid(), 0);     /* the suite runs as root; see user_helper */
	ck_assert_int_eq(mems_try_init(), 0);
	struct mems_stats st = t_stats();
	ck_assert_str_eq(st.mode_name, "uffd");
	ck_assert_str_eq(st.mode_reason, "MEMS_PAGER=auto; userfaultfd(2): ok");
}
END_TEST

/* Make userfaultfd(2) fail with EPERM in this (forked) test process, and
 * with dev also the /dev/userfaultfd ioctl that makes a descriptor. */
static void deny_userfaultfd(int dev)
{
#if defined(__x86_64__)
	const uint32_t arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
	const uint32_t arch = AUDIT_ARCH_AARCH64;
#endif
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, dev ? __NR_ioctl : UINT32_MAX, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)USERFAULTFD_IOC_NEW, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
	ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	ck_assert_int_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
	ck_assert_int_eq(syscall(SYS_userfaultfd, 0), -1);
	ck_assert_int_eq(errno, EPERM);
}

START_TEST(auto_falls_back_to_dev_userfaultfd)
{
	deny_userfaultfd(0);
	ck_assert_int_eq(mems_try_init(), 0);
	struct mems_stats st = t_stats();
	ck_assert_str_eq(st.mode_name, "uffd");
	ck_assert_str_eq(st.mode_reason, "MEMS_PAGER=auto; userfaultfd(2): Operation not "
					 "permitted; /dev/userfaultfd: ok");
	size_t ps = os_page_size();
	char *p = mems_get(mems_malloc(100 * ps));
	for (size_t i = 0; i < 100; i += 3)
		p[i * ps] = 1;
	/* every third page: one fault each until the region looks dense */
	ck_assert_uint_ge(t_stats().faults, 4);
	ck_assert_uint_le(t_stats().faults, 34);
	ck_assert_touched_exact();
}
END_TEST

START_TEST(auto_falls_back_to_kernel_paging)
{
	deny_userfaultfd(1);
	ck_assert_int_eq(mems_try_init(), 0);
	struct mems_stats st = t_stats();
	ck_assert_str_eq(st.mode_name, "kernel");
	ck_assert_str_eq(st.mode_reason, "MEMS_PAGER=auto; userfaultfd(2): Operation not "
					 "permitted; /dev/userfaultfd: Operation not permitted; "
					 "user-mode-only: Operation not permitted; kernel paging");
	char *p = mems_get(mems_malloc(1 << 20));
	memset(p, 1, 1 << 20);
	ck_assert_uint_eq(t_stats().pages_touched, (1 << 20) / os_page_size());
	ck_assert_touched_exact();
	/* a mode that insists fails, saying why */
	mems_finish();
	mems_option_set("pager", "uffd-user");
	errno = 0;
	ck_assert_int_eq(mems_try_init(), -1);
	ck_assert_int_eq(errno, ENOTSUP);
	ck_assert_str_eq(t_stats().mode_name, "none");
}
END_TEST

START_TEST(touched_equals_mincore_through_every_kind_of_touch)
{
	start(modes[_i]);
	size_t ps = os_page_size();
	size_t n = 2048;
	ck_assert_uint_eq(t_stats().pages_touched, 0);
	char *v = mems_malloc(n * ps);
	char *p = mems_get(v);
	ck_assert_touched_exact();
	for (size_t i = 0; i < n / 2; i++)               /* sequential writes */
		p[i * ps] = 1;
	ck_assert_touched_exact();
	uint64_t seed = 42;
	for (int i = 0; i < 200; i++)                     /* random writes */
		p[(n / 2 + t_rand(&seed) % (n / 4)) * ps + 5] = 2;
	ck_assert_touched_exact();
	volatile char sum = 0;
	for (size_t i = 3 * n / 4; i < n; i += 3)         /* reads */
		sum += p[i * ps];
	ck_assert_int_eq(sum, 0);
	ck_assert_touched_exact();
	mems_free(v);
	ck_assert_touched_exact();
	ck_assert_uint_eq(t_stats().pages_touched, 0);
}
END_TEST

START_TEST(handler_that_never_spins_works_the_same)
{
	ck_assert_int_eq(mems_option_set("handler_spin", "0"), 0);
	start("uffd");
	ck_assert_uint_eq(mems_g.pg.spin_ns, 0);
	size_t ps = os_page_size(), n = 512;
	char *p = mems_get(mems_malloc(n * ps));
	for (size_t i = 0; i < n; i += 2)
		p[i * ps] = (char)i;
	ck_assert_uint_ge(t_stats().faults, n / 64);
	ck_assert_uint_lt(t_stats().faults, n / 2);     /* dense: blocks per fault */
	ck_assert_touched_exact();
	for (size_t i = 0; i < n; i += 2)
		ck_assert_int_eq(p[i * ps], (char)i);
}
END_TEST

START_TEST(sequential_first_touch_needs_few_faults)
{
	start("uffd");
	size_t ps = os_page_size(), n = 16384;           /* 64 MiB */
	char *p = mems_get(mems_malloc(n * ps));
	for (size_t i = 0; i < n; i++)
		p[i * ps] = (char)i;
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.pages_touched, n);
	ck_assert_uint_eq(st.pages_populated, n);
	/* windows double up to 256 pages: 64 faults for the bulk, a few to grow */
	ck_assert_uint_le(st.faults, n / 256 + 16);
	ck_assert_uint_ge(st.faults, n / 512);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(p[i * ps], (char)i);
}
END_TEST

/* A stream of writes at the full window: the fault-ahead helper populates
 * the window after the stream's while the handler populates the stream's
 * own, and nothing is populated twice or lost.  Without a helper
 * (MEMS_FAULT_AHEAD=0, or one CPU) the handler populates it all. */
START_TEST(fault_ahead_populates_the_next_window_of_a_write_stream)
{
	int ahead = _i == 0 && t_cpus() >= 2;
	if (_i)
		ck_assert_int_eq(mems_option_set("fault_ahead", "0"), 0);
	start("uffd");
	ck_assert_int_eq(mems_g.pg.ahead_on, ahead);
	size_t ps = os_page_size(), n = 16384;           /* 64 MiB */
	char *p = mems_get(mems_malloc(n * ps));
	for (size_t i = 0; i < n; i++)
		p[i * ps] = (char)(i * 7);
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.pages_touched, n);
	ck_assert_uint_eq(st.pages_populated, n);
	if (ahead) {
		/* the first window at full size is handed over whatever the
		 * timing (the helper is idle then) */
		ck_assert_uint_ge(st.pages_ahead, 256);
		ck_assert_uint_le(st.pages_ahead, n - 511);   /* not the ramp */
	} else {
		ck_assert_uint_eq(st.pages_ahead, 0);
	}
	char *text = t_capture_stats();
	ck_assert_int_eq(strstr(text, "Populated ahead:") != NULL, ahead);
	free(text);
	ck_assert_touched_exact();
	ck_assert_int_eq(mems_check(), 0);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(p[i * ps], (char)(i * 7));
	/* a read stream maps the zero page: no helper, no memory */
	char *q = mems_get(mems_malloc(n * ps));
	unsigned sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += (unsigned char)q[i * ps];
	ck_assert_uint_eq(sum, 0);
	ck_assert_uint_eq(t_stats().pages_ahead, st.pages_ahead);
}
END_TEST

/* Pages the helper has in flight when their block is freed: the free waits
 * for them, then gives them back with the rest.  (Without the wait the
 * helper's copy lands after the release and the pages stay resident in a
 * hole.)  Stats and mems_check wait for them too. */
START_TEST(a_free_waits_for_pages_in_flight)
{
	start("uffd");
	size_t ps = os_page_size(), n = 8192;
	for (int r = 0; r < 40; r++) {
		char *v = mems_malloc(n * ps), *p = mems_get(v);
		/* stop part way into a window: the one after may be in flight */
		size_t upto = n / 2 + (size_t)r * 37;
		for (size_t i = 0; i < upto; i++)
			p[i * ps] = 1;
		if (r % 2)
			ck_assert_int_eq(mems_check(), 0);
		mems_free(v);
		struct mems_stats st = t_stats();
		ck_assert_uint_eq(st.pages_touched, 0);
		ck_assert_touched_exact();
	}
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

/* Filled from its end down (as sort(1) fills its line table), a buffer
 * takes as few faults as filled upwards; sparse, downwards, a page a fault. */
START_TEST(a_buffer_filled_downwards_needs_few_faults)
{
	start("uffd");
	size_t ps = os_page_size(), n = 16384;
	char *p = mems_get(mems_malloc(n * ps));
	for (size_t i = n; i-- > 0;)
		p[i * ps] = (char)i;
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.pages_touched, n);
	ck_assert_uint_le(st.faults, n / 256 + 16);
	ck_assert_touched_exact();
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(p[i * ps], (char)i);
	char *q = mems_get(mems_malloc(n * ps));
	uint64_t before = st.pages_touched, faults = st.faults, k = 0;
	for (size_t i = n; i >= 97; i -= 97, k++)
		q[(i - 1) * ps] = 1;
	st = t_stats();
	ck_assert_uint_eq(st.pages_touched - before, k);
	ck_assert_uint_eq(st.faults - faults, k);
	ck_assert_touched_exact();
}
END_TEST

START_TEST(sparse_touch_populates_only_what_is_touched)
{
	start("uffd");
	size_t ps = os_page_size(), n = 32768;
	char *p = mems_get(mems_malloc(n * ps));
	for (size_t i = 0; i < n; i += 97)
		p[i * ps] = 1;
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.pages_touched, (n + 96) / 97);
	ck_assert_uint_eq(st.faults, (n + 96) / 97);
	ck_assert_uint_eq(st.pages_mapped, n);
}
END_TEST

/* Wait (up to 5 s, for a loaded machine) until cond holds. */
#define WAIT_UNTIL(cond)                                                       \
	do {                                                                   \
		for (int ms_ = 0; !(cond) && ms_ < 5000; ms_ += 10)            \
			usleep(10000);                                         \
	} while (0)

static void shuffle(size_t *v, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		v[i] = i;
	for (size_t i = n - 1; i > 0; i--) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		size_t j = (size_t)(seed >> 33) % (i + 1), t = v[i];
		v[i] = v[j];
		v[j] = t;
	}
}

START_TEST(fault_around_adapts_to_random_access)
{
	start("uffd");
	size_t ps = os_page_size(), n = 8192;
	static size_t order[8192];
	char *p = mems_get(mems_malloc(n * ps));
	/* dense: every page, in random order; regions fill in a few faults */
	shuffle(order, n, 1);
	for (size_t i = 0; i < n; i++)
		p[order[i] * ps] = 1;
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.pages_touched, n);
	ck_assert_uint_le(st.faults, n / 4);
	ck_assert_touched_exact();
	/* sparse: one page in 32, at random: about a page a fault, and few
	 * pages populated that are never touched */
	char *q = mems_get(mems_malloc(n * ps));
	uint64_t before = t_stats().pages_touched, faults = t_stats().faults;
	shuffle(order, n / 32, 2);
	for (size_t i = 0; i < n / 32; i++)
		q[order[i] * 32 * ps + (order[i] % 32) * ps] = 1;
	st = t_stats();
	ck_assert_uint_le(st.pages_touched - before, n / 32 + n / 32 / 4);
	ck_assert_uint_ge(st.faults - faults, n / 32 - n / 32 / 4);
	ck_assert_touched_exact();
}
END_TEST

START_TEST(window_is_clipped_to_committed_memory)
{
	start("uffd");
	size_t ps = os_page_size();
	char *p = mems_get(mems_malloc(3 * ps));
	for (size_t i = 0; i < 3 * ps; i += 64)
		p[i] = 1;
	ck_assert_uint_eq(t_stats().pages_touched, 3);
	/* the node is whole MeMS pages */
	ck_assert_uint_eq(t_stats().pages_mapped * ps, (3 * ps + MEMS_PAGE_SIZE - 1) / MEMS_PAGE_SIZE * MEMS_PAGE_SIZE);
	ck_assert_touched_exact();
}
END_TEST

START_TEST(fault_around_option_bounds_the_window)
{
	ck_assert_int_eq(mems_option_set("fault_around", "4"), 0);
	start("uffd");
	size_t ps = os_page_size(), n = 4096;
	char *p = mems_get(mems_malloc(n * ps));
	for (size_t i = 0; i < n; i++)
		p[i * ps] = 1;
	/* windows 1, 2, 4, 4, ...: about n/4 faults */
	ck_assert_uint_ge(t_stats().faults, n / 4);
	ck_assert_uint_le(t_stats().faults, n / 4 + 3);
}
END_TEST

START_TEST(system_calls_write_into_fresh_memory)
{
	start(modes[_i]);
	char path[] = "/tmp/mems-pager-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	size_t len = 256 * 1024;
	char *src = malloc(len);
	for (size_t i = 0; i < len; i++)
		src[i] = (char)(i * 7 + 3);
	ck_assert_int_eq(write(fd, src, len), (ssize_t)len);
	char *dst = mems_get(mems_malloc(len));          /* never touched by us */
	ck_assert_int_eq(pread(fd, dst, len, 0), (ssize_t)len);
	ck_assert_mem_eq(dst, src, len);
	char *dst2 = mems_get(mems_malloc(len));
	lseek(fd, 0, SEEK_SET);
	ck_assert_int_eq(read(fd, dst2, len), (ssize_t)len);
	ck_assert_mem_eq(dst2, src, len);
	ck_assert_touched_exact();
	free(src);
	close(fd);
}
END_TEST

START_TEST(user_mode_only_populates_at_allocation)
{
	start("uffd-user");
	size_t ps = os_page_size();
	mems_malloc(10 * ps + 1);
	ck_assert_uint_eq(t_stats().pages_touched, 11);
	ck_assert_touched_exact();
}
END_TEST

START_TEST(free_gives_pages_and_rss_back)
{
	start(modes[_i]);
	size_t len = 64 << 20;
	long rss0 = t_rss_anon_kib();
	char *v = mems_malloc(len);
	memset(mems_get(v), 0xab, len);
	long rss1 = t_rss_anon_kib();
	ck_assert_int_ge(rss1 - rss0, 60 * 1024);
	ck_assert_uint_eq(t_stats().pages_touched, len / os_page_size());
	mems_free(v);
	long rss2 = t_rss_anon_kib();
	ck_assert_int_le(rss2 - rss0, 2 * 1024);
	ck_assert_uint_eq(t_stats().pages_touched, 0);
	ck_assert_uint_eq(t_stats().pages_mapped, len / os_page_size()); /* node stays */
	ck_assert_touched_exact();
}
END_TEST

START_TEST(only_wholly_free_pages_are_released)
{
	start(modes[_i]);
	size_t ps = os_page_size();
	/* one node of three pages holding a | b | c; only b's middle page is
	 * its own */
	mems_free(mems_malloc(3 * ps));
	char *a = mems_malloc(ps / 2);
	char *b = mems_malloc(2 * ps);
	char *c = mems_malloc(ps / 2);
	memset(mems_get(a), 1, ps / 2);
	memset(mems_get(b), 2, 2 * ps);
	memset(mems_get(c), 3, ps / 2);
	ck_assert_uint_eq(t_stats().pages_touched, 3);
	mems_free(b);     /* only the middle page is wholly free */
	ck_assert_uint_eq(t_stats().pages_touched, 2);
	ck_assert_touched_exact();
	ck_assert_int_eq(((char *)mems_get(a))[ps / 2 - 1], 1);
	ck_assert_int_eq(((char *)mems_get(c))[0], 3);
	mems_free(a);
	ck_assert_uint_eq(t_stats().pages_touched, 1);
	mems_free(c);
	ck_assert_uint_eq(t_stats().pages_touched, 0);
	ck_assert_touched_exact();
	/* memory handed out again reads as zero */
	char *d = mems_get(mems_malloc(3 * ps));
	for (size_t i = 0; i < 3 * ps; i++)
		ck_assert_int_eq(d[i], 0);
}
END_TEST

/* ---------------------------------------------------------------------
 * Purge delay (MEMS_PURGE_DELAY)
 * ------------------------------------------------------------------- */

START_TEST(purge_delay_option_is_checked)
{
	char buf[16];
	ck_assert_int_eq(mems_option_set("purge_delay", "-2"), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(mems_option_set("purge_delay", "60001"), -1);
	ck_assert_int_eq(mems_option_set("purge_delay", "soon"), -1);
	ck_assert_int_eq(mems_option_set("purge_delay", "-1"), 0);
	mems_option_get("purge_delay", buf, sizeof buf);
	ck_assert_str_eq(buf, "-1");
}
END_TEST

START_TEST(never_purged_pages_are_reused_without_faults)
{
	ck_assert_int_eq(mems_option_set("purge_delay", "-1"), 0);
	start(modes[_i]);
	size_t ps = os_page_size(), len = 64 * ps;
	char *p = mems_ptr_malloc(len);
	memset(p, 0xab, len);
	uint64_t touched = t_stats().pages_touched;
	mems_ptr_free(p);
	/* free, still resident, and counted as it is */
	ck_assert_uint_eq(t_stats().pages_touched, touched);
	ck_assert_touched_exact();
	ck_assert_int_eq(mems_check(), 0);      /* not live any more */
	uint64_t faults = t_stats().faults;
	char *q = mems_ptr_calloc(1, len);
	ck_assert_ptr_eq(q, p);
	for (size_t i = 0; i < len; i += 512)
		ck_assert_int_eq(q[i], 0);          /* calloc zeroes what it reuses */
	memset(q, 1, len);
	ck_assert_uint_eq(t_stats().faults, faults);
	ck_assert_uint_eq(t_stats().pages_touched, touched);
	mems_ptr_free(q);
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

/* The purge delay in the modes that see faults and in the one that does
 * not (there touched is mincore(2), and released is not counted). */
static const char *const purge_modes[] = { "uffd", "kernel" };

START_TEST(purge_happens_after_the_delay_and_spares_reused_pages)
{
	ck_assert_int_eq(mems_option_set("purge_delay", "50"), 0);
	start(purge_modes[_i]);
	int counted = !_i;
	size_t ps = os_page_size();
	char *a = mems_ptr_aligned(ps, 64 * ps);
	memset(a, 1, 64 * ps);
	mems_ptr_free(a);
	/* half of it is taken again before the delay ends */
	char *b = mems_ptr_aligned(ps, 32 * ps);
	ck_assert_ptr_eq(b, a);
	memset(b, 2, 32 * ps);
	ck_assert_uint_eq(t_stats().pages_touched, 64);
	usleep(20000);                          /* before the delay: still there */
	ck_assert_uint_eq(t_stats().pages_touched, 64);
	ck_assert_uint_eq(t_stats().pages_released, 0);
	/* the purge thread gives the rest back with no further call: one to
	 * two delays after the free (allow for a loaded machine) */
	WAIT_UNTIL(t_stats().pages_touched == 32);
	ck_assert_uint_eq(t_stats().pages_touched, 32);   /* b only */
	ck_assert_uint_eq(t_stats().pages_released, counted ? 32 : 0);
	ck_assert_touched_exact();
	for (size_t i = 0; i < 32 * ps; i += 256)
		ck_assert_int_eq(b[i], 2);
	mems_ptr_free(b);
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

START_TEST(every_freed_range_goes_back_after_the_delay)
{
	ck_assert_int_eq(mems_option_set("purge_delay", "30"), 0);
	start(purge_modes[_i]);
	int counted = !_i;
	size_t ps = os_page_size();
	enum { N = 3000 };
	static char *blk[N];
	for (int i = 0; i < N; i++) {           /* a page each, with a guard between */
		blk[i] = mems_ptr_aligned(ps, ps);
		blk[i][0] = 1;
		(void)mems_ptr_malloc(16);
	}
	uint64_t touched = t_stats().pages_touched;
	for (int i = 0; i < N; i++)
		mems_ptr_free(blk[i]);
	ck_assert_uint_eq(t_stats().pages_released, 0);
	ck_assert_uint_eq(t_stats().pages_touched, touched);
	WAIT_UNTIL(t_stats().pages_touched <= touched - N);
	/* 3000 separate ranges, none forgotten, and the guards untouched */
	ck_assert_uint_eq(t_stats().pages_released, counted ? N : 0);
	ck_assert_uint_eq(t_stats().pages_touched, touched - N);
	ck_assert_touched_exact();
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

/* A child after fork() runs in kernel mode and keeps the delay: what it
 * frees stays resident for a while, then goes back with no further call,
 * and so do the free pages it shares with its parent. */
START_TEST(fork_child_keeps_the_purge_delay)
{
	ck_assert_int_eq(mems_option_set("purge_delay", "50"), 0);
	start(purge_modes[_i]);
	size_t ps = os_page_size();
	char *a = mems_ptr_aligned(ps, 64 * ps), *c = mems_ptr_aligned(ps, 64 * ps);
	char *d = mems_ptr_aligned(ps, 64 * ps), *keep = mems_ptr_aligned(ps, 16 * ps);
	memset(a, 1, 64 * ps);
	memset(c, 2, 64 * ps);
	memset(d, 4, 64 * ps);
	memset(keep, 3, 16 * ps);
	/* the parent's purge thread first, its start over: a thread starting
	 * as the process forks can leave ASan's allocator locked in the child */
	uint64_t before = t_stats().pages_touched;
	mems_ptr_free(d);
	WAIT_UNTIL(t_stats().pages_touched == before - 64);
	ck_assert_uint_eq(t_stats().pages_touched, before - 64);
	mems_ptr_free(c);        /* free in the parent, perhaps still resident */
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		alarm(20);       /* a hang is a failure */
		struct mems_stats st = t_stats();
		if (st.mode != MEMS_PAGER_KERNEL)
			_exit(2);
		int64_t shared = os_resident_pages(c, 64 * ps);
		uint64_t touched = st.pages_touched;
		mems_ptr_free(a);
		if (t_stats().pages_touched != touched)     /* not given back at once */
			_exit(3);
		if (mems_check() != 0)
			_exit(4);
		uint64_t want = touched - 64 - (uint64_t)shared;
		WAIT_UNTIL(t_stats().pages_touched == want);
		if (t_stats().pages_touched != want) {
			fprintf(stderr, "fork child: touched %" PRIu64 ", want %" PRIu64
				" (%" PRIu64 " before the free, %" PRId64 " of c resident)\n",
				t_stats().pages_touched, want, touched, shared);
			_exit(5);
		}
		for (size_t i = 0; i < 16 * ps; i += 64)
			if (keep[i] != 3)
				_exit(6);
		_exit(mems_check() == 0 ? 0 : 7);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	for (size_t i = 0; i < 64 * ps; i += 64)
		ck_assert_int_eq(a[i], 1);
}
END_TEST

/* No purge thread (it could not be started): the frees give pages back
 * instead, at most once per delay, and say so once. */
START_TEST(without_a_purge_thread_frees_give_pages_back)
{
	enum { TRIGGERS = 400 };
	static char *trig[TRIGGERS];
	ck_assert_int_eq(mems_option_set("purge_delay", "50"), 0);
	start(purge_modes[_i]);
	size_t ps = os_page_size();
	char *a = mems_ptr_aligned(ps, 64 * ps);
	/* pages to free later, each wholly free once freed, never touched */
	for (int i = 0; i < TRIGGERS; i++)
		trig[i] = mems_ptr_aligned(ps, ps);
	memset(a, 1, 64 * ps);
	uint64_t touched = t_stats().pages_touched;
	ck_assert_int_eq(fail_setup("thread:1+"), 0);
	char *err = t_capture(2, t_ptr_free, a);
	ck_assert_msg(strstr(err, "mems: cannot start the purge thread: Resource temporarily "
				  "unavailable; frees give pages back instead"), "said: %s", err);
	free(err);
	ck_assert_uint_eq(t_stats().pages_touched, touched);   /* not at once */
	usleep(200000);           /* nothing goes back without a call */
	ck_assert_uint_eq(t_stats().pages_touched, touched);
	int frees = 0;
	for (; frees < TRIGGERS && t_stats().pages_touched != touched - 64; frees++) {
		mems_ptr_free(trig[frees]);
		usleep(10000);
	}
	ck_assert_uint_eq(t_stats().pages_touched, touched - 64);
	ck_assert_touched_exact();
	ck_assert_int_eq(mems_check(), 0);
	ck_assert_int_eq(fail_setup(""), 0);
}
END_TEST

Suite *pager_suite(void)
{
	Suite *s = suite_create("pager");
	TCase *tc = tcase_create("pager");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_loop_test(tc, modes_start_and_say_why, 0, 3);
	tcase_add_test(tc, auto_takes_full_userfaultfd_as_root);
	tcase_add_test(tc, auto_falls_back_to_dev_userfaultfd);
	tcase_add_test(tc, auto_falls_back_to_kernel_paging);
	tcase_add_loop_test(tc, touched_equals_mincore_through_every_kind_of_touch, 0, 3);
	tcase_add_test(tc, handler_that_never_spins_works_the_same);
	tcase_add_test(tc, sequential_first_touch_needs_few_faults);
	tcase_add_test(tc, a_buffer_filled_downwards_needs_few_faults);
	tcase_add_loop_test(tc, fault_ahead_populates_the_next_window_of_a_write_stream, 0, 2);
	tcase_add_test(tc, a_free_waits_for_pages_in_flight);
	tcase_add_test(tc, sparse_touch_populates_only_what_is_touched);
	tcase_add_test(tc, window_is_clipped_to_committed_memory);
	tcase_add_test(tc, fault_around_adapts_to_random_access);
	tcase_add_test(tc, fault_around_option_bounds_the_window);
	tcase_add_loop_test(tc, system_calls_write_into_fresh_memory, 0, 3);
	tcase_add_test(tc, user_mode_only_populates_at_allocation);
	tcase_add_loop_test(tc, free_gives_pages_and_rss_back, 0, 3);
	tcase_add_loop_test(tc, only_wholly_free_pages_are_released, 0, 3);
	tcase_add_test(tc, purge_delay_option_is_checked);
	tcase_add_loop_test(tc, never_purged_pages_are_reused_without_faults, 0, 3);
	tcase_add_loop_test(tc, purge_happens_after_the_delay_and_spares_reused_pages, 0, 2);
	tcase_add_loop_test(tc, every_freed_range_goes_back_after_the_delay, 0, 2);
	tcase_add_loop_test(tc, fork_child_keeps_the_purge_delay, 0, 2);
	tcase_add_loop_test(tc, without_a_purge_thread_frees_give_pages_back, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}
