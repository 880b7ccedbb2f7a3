/*
 * check_main.c - runs every suite.  CK_RUN_SUITE / CK_RUN_CASE select.
 */
#include "testutil.h"

int main(void)
{
	SRunner *sr = srunner_create(meta_suite());
	srunner_add_suite(sr, freelist_suite());
	srunner_add_suite(sr, options_suite());
	srunner_add_suite(sr, span_suite());
	srunner_add_suite(sr, pager_suite());
	srunner_add_suite(sr, stats_suite());
	srunner_add_suite(sr, api_suite());
	srunner_add_suite(sr, scenario_suite());
	srunner_add_suite(sr, ptr_suite());
	srunner_add_suite(sr, preload_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
