/*
 * check_check.c - mems_check(): it passes after every kind of operation in
 * every mode, and it catches each kind of corruption it claims to.
 */
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#include "evict.h"
#include "testutil.h"

static void teardown(void)
{
	mems_finish();
	mems_option_reset();
}

START_TEST(check_passes_after_every_operation)
{
	static const char *const modes[] = { "uffd", "uffd-user", "kernel" };
	ck_assert_int_eq(mems_check(), 0);           /* before init: nothing to check */
	ck_assert_int_eq(mems_option_set("pager", modes[_i]), 0);
	ck_assert_int_eq(mems_try_init(), 0);
	uint64_t seed = 7 + (uint64_t)_i;
	void *live[300] = { 0 };
	int isptr[300] = { 0 };
	for (int op = 0; op < 3000; op++) {
		int k = (int)(t_rand(&seed) % 300);
		uint64_t r = t_rand(&seed) % 10, size = 1 + t_rand(&seed) % (r < 8 ? 3000 : 70000);
		if (live[k]) {
			if (isptr[k] && r < 3) {
				void *q = mems_ptr_realloc(live[k], size);
				ck_assert_ptr_nonnull(q);
				live[k] = q;
			} else {
				if (isptr[k])
					mems_ptr_free(live[k]);
				else
					mems_free(live[k]);
				live[k] = NULL;
			}
		} else if (r < 4) {
			live[k] = mems_malloc(size);
			isptr[k] = 0;
			memset(mems_get(live[k]), 1, size);
		} else {
			live[k] = r < 6 ? mems_ptr_malloc(size) : r < 8 ? mems_ptr_calloc(1, size) :
				  mems_ptr_aligned(64u << (r % 6), size);
			isptr[k] = 1;
			memset(live[k], 2, size);
		}
		ck_assert_msg(mems_check() == 0, "op %d", op);
	}
	for (int k = 0; k < 300; k++)
		if (live[k]) {
			if (isptr[k])
				mems_ptr_free(live[k]);
			else
				mems_free(live[k]);
		}
	ck_assert_int_eq(mems_check(), 0);
	ck_assert_uint_eq(t_stats().pages_touched, 0);
}
END_TEST

START_TEST(check_passes_under_a_resident_cap)
{
	ck_assert_int_eq(mems_option_set("resident_max", "1M"), 0);
	ck_assert_int_eq(mems_try_init(), 0);
	uint64_t seed = 3;
	unsigned char *blk[16];
	for (int i = 0; i < 16; i++) {
		blk[i] = mems_ptr_malloc(1 << 20);
		memset(blk[i], i, 1 << 20);
	}
	for (int op = 0; op < 400; op++) {
		int i = (int)(t_rand(&seed) % 16);
		size_t at = t_rand(&seed) % (1 << 20);
		ck_assert_int_eq(blk[i][at], (unsigned char)i);
		if (op % 3 == 0)
			blk[i][at] = (unsigned char)i;
		if (op % 40 == 0) {
			mems_ptr_free(blk[i]);
			blk[i] = mems_ptr_malloc(1 << 20);
			memset(blk[i], i, 1 << 20);
		}
		ck_assert_msg(mems_check() == 0, "op %d", op);
	}
	ck_assert_uint_gt(t_stats().evictions, 0);
}
END_TEST

/* Each corruption, made by hand, must be reported (and undoing it must
 * make the check pass again). */
static void caught(const char *what)
{
	char *err = t_capture(2, (void (*)(void *))(void *)mems_check, NULL);
	ck_assert_msg(strstr(err, what), "expected \"%s\", got: %s", what, err);
	ck_assert_ptr_nonnull(strstr(err, "mems_check: "));
	free(err);
	ck_assert_int_eq(mems_check(), -1);
	ck_assert_int_eq(errno, EUCLEAN);
}

START_TEST(check_catches_corruption)
{
	ck_assert_int_eq(mems_try_init(), 0);
	/* a and c in a node of one MeMS page, b in a node of two after it */
	const uint64_t mp = MEMS_PAGE_SIZE;
	void *a = mems_malloc(1000), *b = mems_malloc(mp + 904), *c = mems_malloc(100);
	mems_free(b);
	memset(mems_get(a), 1, 1000);
	memset(mems_get(c), 1, 100);
	ck_assert_int_eq(mems_check(), 0);
	struct mems_fl *fl = &mems_g.fl;
	mems_id sa = fl_find_process(fl, 0);
	struct mems_seg *s = fl_seg(fl, sa);

	s->end += 8;
	caught("expected next");
	s->end -= 8;

	fl->bytes_in_use++;
	caught("counters");
	fl->bytes_in_use--;

	/* the hole index: a grain's entry (b's hole, at mp), the entry
	 * above it, an entry past the committed span */
	uint32_t *leaf = fl->hmax + fl->hoff[0], *up = fl->hmax + fl->hoff[1];
	uint64_t g = mp / FL_GRAIN, u = g / FL_FAN;
	char what[128];
	leaf[g] += 4096;
	snprintf(what, sizeof what, "hole index: the grain at %llu says %llu bytes, its largest hole has %llu",
		 (unsigned long long)mp, (unsigned long long)(2 * mp + 4096), (unsigned long long)(2 * mp));
	caught(what);
	leaf[g] -= 4096;

	up[u]--;
	snprintf(what, sizeof what, "hole index maximum %llu at level 1 entry %llu, should be %llu",
		 (unsigned long long)(2 * mp - 1), (unsigned long long)u, (unsigned long long)(2 * mp));
	caught(what);
	up[u]++;

	leaf[fl->committed / FL_GRAIN] = 1;
	caught("past the committed span");
	leaf[fl->committed / FL_GRAIN] = 0;

	fl->htop++;
	snprintf(what, sizeof what, "hole index: searches start at level %d, the committed span needs %d",
		 fl->htop, fl->htop - 1);
	caught(what);
	fl->htop--;

	mems_id f = fl->first[0];
	fl->first[0] = 0;
	caught("address map");
	fl->first[0] = f;

	fl_seg(fl, sa)->type = SEG_HOLE;
	caught("");
	fl_seg(fl, sa)->type = SEG_PROCESS;

	struct mems_pager *pg = &mems_g.pg;
	pg->touched++;
	caught("the resident bitmap has");
	pg->touched--;

	uint64_t lw = atomic_load(&pg->live[0]);
	atomic_store(&pg->live[0], 0);
	caught("live bitmap");
	atomic_store(&pg->live[0], lw);

	ck_assert_int_eq(mems_check(), 0);
	mems_free(a);
	mems_free(c);
	ck_assert_int_eq(mems_check(), 0);
}
END_TEST

START_TEST(check_catches_a_clean_page_made_writable)
{
	ck_assert_int_eq(mems_option_set("resident_max", "1M"), 0);
	ck_assert_int_eq(mems_try_init(), 0);
	size_t n = 4u << 20;
	volatile unsigned char *p = mems_ptr_malloc(n);
	for (size_t i = 0; i < n; i += 4096)
		p[i] = 1;
	/* read the first page back: it comes in clean, write protected */
	ck_assert_int_eq(p[0], 1);
	ck_assert_int_eq(mems_check(), 0);
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)p, .len = 4096 }, .mode = 0 };
	ck_assert_int_eq(ioctl(mems_g.pg.uffd, UFFDIO_WRITEPROTECT, &wp), 0);
	caught("clean (its copy kept) but writable");
}
END_TEST

Suite *check_suite(void)
{
	Suite *s = suite_create("check");
	TCase *tc = tcase_create("check");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_loop_test(tc, check_passes_after_every_operation, 0, 3);
	tcase_add_test(tc, check_passes_under_a_resident_cap);
#ifndef MEMS_DEBUG
	/* (a debug build aborts at the first unlock after a corruption) */
	tcase_add_test(tc, check_catches_corruption);
	tcase_add_test(tc, check_catches_a_clean_page_made_writable);
#endif
	suite_add_tcase(s, tc);
	return s;
}
