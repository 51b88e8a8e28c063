/*
 * testutil.h - the tiny runner shared by the Check unit tests.
 *
 * A test file defines `Suite *make_suite(void)` and includes this header
 * last with KILN_TEST_MAIN defined; main() runs the suite in forked mode and
 * exits non-zero on any failure.  tests/run.py reads Check's summary line.
 */
#ifndef KILN_TESTUTIL_H
#define KILN_TESTUTIL_H

#include <check.h>
#include <stdlib.h>

Suite *make_suite(void);

#ifdef KILN_TEST_MAIN
int main(void) {
    SRunner *sr = srunner_create(make_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
#endif

#endif
