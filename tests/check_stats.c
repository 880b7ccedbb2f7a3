/*
 * check_stats.c - the stats struct, its JSON, the printed pager lines.
 */
#include <ctype.h>

#include "testutil.h"

static void teardown(void)
{
	mems_finish();
	mems_option_reset();
}

/* A strict little JSON parser: objects, strings, non-negative integers.
 * Returns the end of the value or NULL. */
static const char *j_value(const char *s);
static const char *j_string(const char *s)
{
	if (*s++ != '"')
		return NULL;
	for (; *s && *s != '"'; s++) {
		if ((unsigned char)*s < 0x20)
			return NULL;
		if (*s == '\\' && !*++s)
			return NULL;
	}
	return *s == '"' ? s + 1 : NULL;
}
static const char *j_value(const char *s)
{
	if (*s == '"')
		return j_string(s);
	if (isdigit((unsigned char)*s)) {
		while (isdigit((unsigned char)*s))
			s++;
		return s;
	}
	if (!strncmp(s, "true", 4))
		return s + 4;
	if (!strncmp(s, "false", 5))
		return s + 5;
	if (*s != '{')
		return NULL;
	s++;
	if (*s == '}')
		return s + 1;
	for (;;) {
		if (!(s = j_string(s)) || *s++ != ':' || !(s = j_value(s)))
			return NULL;
		if (*s == '}')
			return s + 1;
		if (*s++ != ',')
			return NULL;
	}
}

static uint64_t j_get(const char *js, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = strstr(js, pat);
	ck_assert_msg(p != NULL, "no %s in %s", key, js);
	return strtoull(p + strlen(pat), NULL, 10);
}

START_TEST(struct_and_json_agree_with_the_list)
{
	mems_init();
	/* a in a node of one MeMS page, then b (whole MeMS pages, more than
	 * a's node has left) in a node of its own, then 20 bytes after a */
	size_t ps = os_page_size(), mp = MEMS_PAGE_SIZE;
	size_t bsize = mp + (4 * ps + mp - 1) / mp * mp, bpages = bsize / ps;
	void *a = mems_malloc(1000);
	void *b = mems_malloc(bsize);
	mems_malloc(20);
	memset(mems_get(b), 1, bsize);
	mems_free(a);
	mems_free(a);                      /* one invalid free */
	mems_get(V(1000));                 /* one invalid get */
	struct mems_stats st = t_stats();
	ck_assert_uint_eq(st.page_size, mp);
	ck_assert_uint_eq(st.main_nodes, 2);
	ck_assert_uint_eq(st.pages_used, 1 + bsize / mp);
	ck_assert_uint_eq(st.pages_mapped, (mp + bsize) / ps);
	ck_assert_uint_eq(st.process_segments, 2);
	ck_assert_uint_eq(st.hole_segments, 2);
	ck_assert_uint_eq(st.segments, 4);
	ck_assert_uint_eq(st.bytes_in_use, bsize + 20);
	ck_assert_uint_eq(st.bytes_in_holes, mp - 20);
	ck_assert_uint_eq(st.pages_touched, bpages);
	ck_assert_uint_ge(st.faults, 1);
	ck_assert_uint_eq(st.pages_populated, bpages);
	ck_assert_uint_eq(st.invalid_frees, 1);
	ck_assert_uint_eq(st.invalid_gets, 1);
	ck_assert_uint_eq(st.errors, 2);
	ck_assert_int_eq(st.mode, MEMS_PAGER_UFFD);

	char js[4096];
	int n = mems_stats_json(js, sizeof js);
	ck_assert_int_eq(n, (int)strlen(js));
	const char *end = j_value(js);
	ck_assert_msg(end && !*end, "not JSON: %s", js);
	ck_assert_uint_eq(j_get(js, "pages_touched"), bpages);
	ck_assert_uint_eq(j_get(js, "pages_mapped"), st.pages_mapped);
	ck_assert_uint_eq(j_get(js, "bytes_in_use"), st.bytes_in_use);
	ck_assert_uint_eq(j_get(js, "bytes_in_holes"), st.bytes_in_holes);
	ck_assert_uint_eq(j_get(js, "faults"), st.faults);
	ck_assert_uint_eq(j_get(js, "pages_populated"), bpages);
	ck_assert_uint_eq(j_get(js, "errors"), 2);
	ck_assert_ptr_nonnull(strstr(js, "\"mode\":\"uffd\""));
	ck_assert_ptr_nonnull(strstr(js, "\"mode_reason\":\"MEMS_PAGER=auto; userfaultfd(2): ok\""));

	/* snprintf rules */
	char small[10];
	ck_assert_int_eq(mems_stats_json(small, sizeof small), n);
	ck_assert_uint_eq(strlen(small), 9);
	ck_assert_int_eq(mems_stats_json(NULL, 0), n);
}
END_TEST

START_TEST(stats_get_rejects_null)
{
	errno = 0;
	ck_assert_int_eq(mems_stats_get(NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(printed_pager_lines_follow_the_seed_lines)
{
	/* no fault-ahead: its line would follow the pager's when the node
	 * (a MeMS page of 2 MiB or more) is long enough to be streamed */
	ck_assert_int_eq(mems_option_set("fault_ahead", "0"), 0);
	mems_init();
	/* a node of 8 OS pages, or of one MeMS page when that is more */
	size_t ps = os_page_size(), n = (8 * ps + MEMS_PAGE_SIZE - 1) / MEMS_PAGE_SIZE * MEMS_PAGE_SIZE;
	void *v = mems_malloc(n);
	memset(mems_get(v), 1, n);
	char *s = t_capture_stats(), want[128];
	snprintf(want, sizeof want, "Sub-chain Length array: [1, ]\nPages touched:\t%zu\n"
		 "Pages mapped:\t%zu\nFaults:\t", n / ps, n / ps);
	ck_assert_msg(strstr(s, want) != NULL, "wanted %s in:\n%s", want, s);
	ck_assert_ptr_nonnull(strstr(s, "Errors:\t0\n"
					"Pager:\tuffd (MEMS_PAGER=auto; userfaultfd(2): ok)\n"
					"-----------------------------\n"));
	free(s);
	mems_free(v);
	s = t_capture_stats();
	snprintf(want, sizeof want, "Pages touched:\t0\nPages mapped:\t%zu\n", n / ps);
	ck_assert_msg(strstr(s, want) != NULL, "wanted %s in:\n%s", want, s);
	free(s);
}
END_TEST

START_TEST(large_lists_print_completely)
{
	mems_init();
	for (int i = 0; i < 20000; i++)
		mems_malloc(1 + (size_t)i % 50);
	char *s = t_capture_stats();
	size_t p = 0;
	for (const char *c = s; (c = strstr(c, "P[")); c++)
		p++;
	ck_assert_uint_eq(p, 20000);
	ck_assert_ptr_nonnull(strstr(s, "-----------------------------\n"));
	free(s);
}
END_TEST

Suite *stats_suite(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("stats");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, struct_and_json_agree_with_the_list);
	tcase_add_test(tc, stats_get_rejects_null);
	tcase_add_test(tc, printed_pager_lines_follow_the_seed_lines);
	tcase_add_test(tc, large_lists_print_completely);
	suite_add_tcase(s, tc);
	return s;
}
