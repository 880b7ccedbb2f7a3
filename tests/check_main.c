/*
 * check_main.c - runs every suite.  CK_RUN_SUITE / CK_RUN_CASE select, as
 * Check does; MEMS_SUITES="a b" runs only those suites and
 * MEMS_EXCLUDE_SUITES="a b" leaves suites out (the sanitizer builds use
 * them: see the Makefile).
 */
#include "testutil.h"

static int listed(const char *var, const char *name)
{
	const char *ex = getenv(var);
	size_t n = strlen(name);
	for (const char *p = ex; p && (p = strstr(p, name)); p += n)
		if ((p == ex || p[-1] == ' ') && (p[n] == 0 || p[n] == ' '))
			return 1;
	return 0;
}

int main(void)
{
	static const struct { const char *name; Suite *(*make)(void); } suites[] = {
		{ "meta", meta_suite }, { "freelist", freelist_suite },
		{ "options", options_suite }, { "span", span_suite },
		{ "pager", pager_suite }, { "stats", stats_suite },
		{ "api", api_suite }, { "scenario", scenario_suite },
		{ "ptr", ptr_suite }, { "preload", preload_suite },
		{ "trace", trace_suite }, { "evict", evict_suite },
		{ "evict-real", evict_real_suite }, { "check", check_suite },
		{ "fail", fail_suite }, { "badinput", badinput_suite },
		{ "small", small_suite },
	};
	SRunner *sr = NULL;
	for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
		if (listed("MEMS_EXCLUDE_SUITES", suites[i].name) ||
		    (getenv("MEMS_SUITES") && !listed("MEMS_SUITES", suites[i].name)))
			continue;
		Suite *s = suites[i].make();
		if (!sr)
			sr = srunner_create(s);
		else
			srunner_add_suite(sr, s);
	}
	if (!sr)
		return EXIT_FAILURE;
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
