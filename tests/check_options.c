/*
 * check_options.c - the options table: parsing, environment, API.
 */
#include "testutil.h"
#include "options.h"

static void teardown(void)
{
	mems_option_reset();
	unsetenv("MEMS_SPAN_SIZE");
	unsetenv("MEMS_PAGER");
	unsetenv("MEMS_FAULT_AROUND");
	unsetenv("MEMS_ABORT_ON_ERROR");
}

START_TEST(sizes_take_suffixes)
{
	char buf[32];
	static const struct { const char *in; int64_t want; } ok[] = {
		{ "1048576", 1 << 20 }, { "1M", 1 << 20 }, { "2048k", 2 << 20 },
		{ "2G", 2ll << 30 }, { "3GiB", 3ll << 30 }, { "1T", 1ll << 40 },
		{ "5mb", 5 << 20 },
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		ck_assert_int_eq(mems_option_set("span_size", ok[i].in), 0);
		ck_assert_int_eq(opt_int(OPT_SPAN_SIZE), ok[i].want);
	}
	ck_assert_int_eq(mems_option_set("MEMS_SPAN_SIZE", "1536M"), 0);
	mems_option_get("span_size", buf, sizeof buf);
	ck_assert_str_eq(buf, "1536M");
}
END_TEST

struct set_call { const char *name, *value; int rc, err; };

static void do_set(void *arg)
{
	struct set_call *c = arg;
	errno = 0;
	c->rc = mems_option_set(c->name, c->value);
	c->err = errno;
}

/* mems_option_set() that must fail with err and print a message naming the
 * option, the value and what it expected. */
static void set_fails(const char *name, const char *value, int err, const char *expected)
{
	struct set_call c = { name, value, 0, 0 };
	char *msg = t_capture(2, do_set, &c);
	ck_assert_msg(c.rc == -1, "%s=%s accepted", name, value);
	ck_assert_int_eq(c.err, err);
	ck_assert_msg(strstr(msg, expected) != NULL, "%s=%s: message \"%s\"", name, value, msg);
	if (err == EINVAL) {
		char want[128];
		snprintf(want, sizeof want, "%s=\"%s\": expected ", name, value);
		ck_assert_msg(strstr(msg, want) != NULL, "message \"%s\"", msg);
	}
	ck_assert_int_eq((int)(strchr(msg, '\n') - msg) + 1, (int)strlen(msg)); /* one line */
	free(msg);
}

START_TEST(malformed_values_fail_with_einval_and_keep_the_old_value)
{
	static const char *bad[] = { "", "12Q", "-1G", "1.5G", "G", "99999999999999999999",
				     "17T", "1K" /* below 1M */, "16777216T", NULL };
	ck_assert_int_eq(mems_option_set("span_size", "2G"), 0);
	for (int i = 0; bad[i]; i++) {
		set_fails("span_size", bad[i], EINVAL,
			  "a size from 1M to 16T (a number with an optional K, M, G or T suffix)");
		ck_assert_int_eq(opt_int(OPT_SPAN_SIZE), 2ll << 30);
	}
	set_fails("fault_around", "0", EINVAL, "an integer from 1 to 512");
	set_fails("fault_around", "513", EINVAL, "an integer from 1 to 512");
	set_fails("fault_around", "12x", EINVAL, "an integer from 1 to 512");
	set_fails("handler_spin", "-1", EINVAL, "an integer from 0 to 10000");
	set_fails("handler_spin", "10001", EINVAL, "an integer from 0 to 10000");
	set_fails("pager", "fast", EINVAL, "one of auto, uffd, uffd-user, kernel");
	set_fails("abort_on_error", "maybe", EINVAL, "a boolean (1/0, yes/no, true/false, on/off)");
	set_fails("no_such_option", "1", ENOENT, "unknown option \"no_such_option\"");
	ck_assert_int_eq(opt_int(OPT_FAULT_AROUND), 256);
	errno = 0;
	ck_assert_int_eq(mems_option_set("span_size", NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
	char buf[8];
	ck_assert_int_eq(mems_option_get("no_such_option", buf, sizeof buf), -1);
}
END_TEST

static void load(void *arg)
{
	(void)arg;
	opts_load();
}

START_TEST(environment_is_read_and_malformed_values_are_reported)
{
	setenv("MEMS_PAGER", "KERNEL", 1);
	setenv("MEMS_FAULT_AROUND", "32", 1);
	setenv("MEMS_ABORT_ON_ERROR", "yes", 1);
	setenv("MEMS_SPAN_SIZE", "12Q", 1);
	char *err = t_capture(2, load, NULL);
	ck_assert_ptr_nonnull(strstr(err, "MEMS_SPAN_SIZE=\"12Q\": expected a size"));
	ck_assert_ptr_nonnull(strstr(err, "using the default, 64G"));
	ck_assert_ptr_null(strstr(err, "MEMS_PAGER"));
	free(err);
	ck_assert_str_eq(opt_choice(OPT_PAGER), "kernel");
	ck_assert_int_eq(opt_int(OPT_FAULT_AROUND), 32);
	ck_assert_int_eq(opt_int(OPT_ABORT_ON_ERROR), 1);
	ck_assert_int_eq(opt_int(OPT_SPAN_SIZE), 64ll << 30);
	/* a malformed value leaves the option to its default */
	ck_assert_int_eq(opt_given(OPT_SPAN_SIZE), 0);
	ck_assert_int_eq(opt_given(OPT_FAULT_AROUND), 1);
	ck_assert_int_eq(opt_given(OPT_TRACE), 0);
}
END_TEST

START_TEST(api_value_wins_over_environment_until_reset)
{
	setenv("MEMS_FAULT_AROUND", "32", 1);
	opts_load();
	ck_assert_int_eq(mems_option_set("fault_around", "8"), 0);
	opts_load();
	ck_assert_int_eq(opt_int(OPT_FAULT_AROUND), 8);
	ck_assert_int_eq(mems_option_set("span_size", "2G"), 0);
	ck_assert_int_eq(opt_given(OPT_SPAN_SIZE), 1);
	mems_option_reset();
	ck_assert_int_eq(opt_given(OPT_SPAN_SIZE), 0);
	ck_assert_int_eq(opt_int(OPT_FAULT_AROUND), 32);
	char buf[4];
	/* snprintf rules for a short buffer */
	ck_assert_int_eq(mems_option_get("pager", buf, sizeof buf), 4);
	ck_assert_str_eq(buf, "aut");
}
END_TEST

Suite *options_suite(void)
{
	Suite *s = suite_create("options");
	TCase *tc = tcase_create("options");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, sizes_take_suffixes);
	tcase_add_test(tc, malformed_values_fail_with_einval_and_keep_the_old_value);
	tcase_add_test(tc, environment_is_read_and_malformed_values_are_reported);
	tcase_add_test(tc, api_value_wins_over_environment_until_reset);
	suite_add_tcase(s, tc);
	return s;
}
