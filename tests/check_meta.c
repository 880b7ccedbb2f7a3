/*
 * check_meta.c - slab records.
 */
#include "testutil.h"
#include "meta.h"
#include "bits.h"

START_TEST(slab_hands_out_zeroed_records_in_order)
{
	struct mems_slab s;
	ck_assert_int_eq(slab_init(&s, 24, 100), 0);
	mems_id a = slab_alloc(&s), b = slab_alloc(&s);
	ck_assert_uint_eq(a, 1);
	ck_assert_uint_eq(b, 2);
	memset(slab_at(&s, a), 0xff, 24);
	slab_free(&s, a);
	ck_assert_uint_eq(s.live, 1);
	mems_id c = slab_alloc(&s);
	ck_assert_uint_eq(c, a);          /* recycled */
	char zero[24] = { 0 };
	ck_assert_mem_eq(slab_at(&s, c), zero, 24);
	slab_destroy(&s);
}
END_TEST

START_TEST(slab_full_returns_zero_with_enomem)
{
	struct mems_slab s;
	ck_assert_int_eq(slab_init(&s, 8, 4), 0);
	ck_assert_uint_ne(slab_alloc(&s), 0);
	ck_assert_uint_ne(slab_alloc(&s), 0);
	ck_assert_uint_ne(slab_alloc(&s), 0);
	errno = 0;
	ck_assert_uint_eq(slab_alloc(&s), 0);
	ck_assert_int_eq(errno, ENOMEM);
	slab_free(&s, 2);
	ck_assert_uint_eq(slab_alloc(&s), 2);
	slab_destroy(&s);
}
END_TEST

START_TEST(slab_rejects_bad_geometry)
{
	struct mems_slab s;
	errno = 0;
	ck_assert_int_eq(slab_init(&s, 2, 10), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(slab_init(&s, 8, 1), -1);
}
END_TEST

START_TEST(slab_is_outside_malloc_and_lazily_backed)
{
	/* a large slab costs nothing until used */
	long before = t_rss_anon_kib();
	struct mems_slab s;
	ck_assert_int_eq(slab_init(&s, 64, 1u << 24), 0);   /* 1 GiB reserved */
	for (int i = 0; i < 1000; i++)
		ck_assert_uint_ne(slab_alloc(&s), 0);
	ck_assert_int_lt(t_rss_anon_kib() - before, 1024);
	slab_destroy(&s);
}
END_TEST

/* A typesafe slab relinks records through their first word only: a
 * thread holding a stale id still reads a record of the type (see
 * small.c's runs), never zeros written under it. */
START_TEST(typesafe_slab_keeps_record_contents)
{
	struct mems_slab s;
	ck_assert_int_eq(slab_init(&s, 32, 100), 0);
	s.typesafe = 1;
	mems_id a = slab_alloc(&s);
	ck_assert_uint_ne(a, 0);
	memset(slab_at(&s, a), 0xab, 32);
	slab_free(&s, a);
	const unsigned char *rec = slab_at(&s, a);
	for (int i = 4; i < 32; i++)          /* the first word links the free list */
		ck_assert_uint_eq(rec[i], 0xab);
	ck_assert_uint_eq(slab_alloc(&s), a);  /* reused, still not cleared */
	ck_assert_uint_eq(rec[31], 0xab);
	ck_assert_uint_eq(s.live, 1);
	slab_destroy(&s);
}
END_TEST

START_TEST(bits_count_counts_set_bits)
{
	uint64_t seed = 77;
	ck_assert_uint_eq(bits_count(0), 0);
	ck_assert_uint_eq(bits_count(~0ull), 64);
	ck_assert_uint_eq(bits_count(1ull << 63), 1);
	int wrong = 0;       /* one assertion, not 100,000 messages to check */
	for (int i = 0; i < 100000; i++) {
		uint64_t x = t_rand(&seed) >> (i % 64), n = 0;
		for (uint64_t y = x; y; y &= y - 1)
			n++;
		wrong += bits_count(x) != n;
	}
	ck_assert_int_eq(wrong, 0);
}
END_TEST

Suite *meta_suite(void)
{
	Suite *s = suite_create("meta");
	TCase *tc = tcase_create("slab");
	tcase_add_test(tc, slab_hands_out_zeroed_records_in_order);
	tcase_add_test(tc, slab_full_returns_zero_with_enomem);
	tcase_add_test(tc, slab_rejects_bad_geometry);
	tcase_add_test(tc, slab_is_outside_malloc_and_lazily_backed);
	tcase_add_test(tc, typesafe_slab_keeps_record_contents);
	tcase_add_test(tc, bits_count_counts_set_bits);
	suite_add_tcase(s, tc);
	return s;
}
