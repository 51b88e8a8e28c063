/*
 * test_query.c - the engine's public API: result types, error classes
 * (bad_data, execution, canceled), max_samples, cancellation, and results
 * that outlive the storage's series sets.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "query/query.h"
#include "storage/storage.h"

#define KILN_TEST_MAIN
#include "query_testutil.h"
#include "testutil.h"

static storage *st;
static char dir[64];

static void setup(void) {
    st = qt_open(dir, "query");
    kiln_err err = {0};
    appender *a = storage_appender(st);
    ck_assert_ptr_nonnull(a);
    for (int s = 0; s < 3; s++) {
        char inst[16];
        snprintf(inst, sizeof inst, "%d", s);
        label ls[] = {{LABEL_NAME, "up_total"}, {"instance", inst}};
        uint64_t ref = 0;
        for (int i = 0; i <= 10; i++)
            ck_assert_int_eq(
                appender_append(a, &ref, ref ? NULL : ls, ref ? 0 : 2, i * 60000, i * (s + 1), &err), 0);
    }
    ck_assert_int_eq(appender_commit(a, &err), 0);
}

static void teardown(void) {
    qt_close(st, dir);
}

START_TEST(test_instant_vector) {
    query_engine e;
    query_engine_init(&e, NULL);
    query_result r;
    kiln_err err = {0};
    ck_assert_int_eq(query_instant(&e, st, "sort_desc(up_total)", 300000, NULL, &r, &err), 0);
    ck_assert_int_eq(r.type, QUERY_VECTOR);
    ck_assert_uint_eq(r.nseries, 3);
    ck_assert_str_eq(labels_get(r.series[0].ls, r.series[0].nls, "instance"), "2");
    ck_assert(r.series[0].pts[0].v == 15);
    ck_assert_int_eq(r.series[0].pts[0].t, 300000);
    query_result_free(&r);

    ck_assert_int_eq(query_instant(&e, st, "sum(rate(up_total[5m]))", 600000, NULL, &r, &err), 0);
    ck_assert_uint_eq(r.nseries, 1);
    ck_assert_uint_eq(r.series[0].nls, 0);
    ck_assert(fabs(r.series[0].pts[0].v - 0.1) < 1e-12);
    query_result_free(&r);

    ck_assert_int_eq(query_instant(&e, st, "1 + 2", 0, NULL, &r, &err), 0);
    ck_assert_int_eq(r.type, QUERY_SCALAR);
    ck_assert(r.scalar == 3);
    query_result_free(&r);

    ck_assert_int_eq(query_instant(&e, st, "\"hi\"", 0, NULL, &r, &err), 0);
    ck_assert_int_eq(r.type, QUERY_STRING);
    ck_assert_str_eq(r.str, "hi");
    query_result_free(&r);

    ck_assert_int_eq(query_instant(&e, st, "up_total{instance=\"1\"}[3m]", 600000, NULL, &r, &err), 0);
    ck_assert_int_eq(r.type, QUERY_MATRIX);
    ck_assert_uint_eq(r.nseries, 1);
    ck_assert_uint_eq(r.series[0].npts, 3);
    query_result_free(&r);
}
END_TEST

START_TEST(test_range_matrix) {
    query_engine e;
    query_engine_init(&e, NULL);
    query_result r;
    kiln_err err = {0};
    ck_assert_int_eq(query_range(&e, st, "up_total * 2", 0, 120000, 60000, NULL, &r, &err), 0);
    ck_assert_int_eq(r.type, QUERY_MATRIX);
    ck_assert_uint_eq(r.nseries, 3);
    /* sorted by labels, __name__ dropped */
    ck_assert_str_eq(r.series[0].ls[0].value, "0");
    ck_assert_uint_eq(r.series[2].npts, 3);
    ck_assert(r.series[2].pts[2].v == 12);
    query_result_free(&r);

    ck_assert_int_eq(query_range(&e, st, "time()", 0, 120000, 60000, NULL, &r, &err), 0);
    ck_assert_int_eq(r.type, QUERY_MATRIX);
    ck_assert_uint_eq(r.nseries, 1);
    ck_assert(r.series[0].pts[2].v == 120);
    query_result_free(&r);
}
END_TEST

static int cancel_now(void *data) {
    (void)data;
    return 1;
}

START_TEST(test_errors) {
    query_engine e;
    query_engine_init(&e, NULL);
    query_result r;
    kiln_err err = {0};
    int rc = query_instant(&e, st, "sum(", 0, NULL, &r, &err);
    ck_assert_int_eq(rc, KILN_EINVAL);
    ck_assert_str_eq(query_error_type(rc), "bad_data");
    ck_assert_ptr_nonnull(strstr(err.msg, "parse error"));

    rc = query_range(&e, st, "up_total[5m]", 0, 60000, 60000, NULL, &r, &err);
    ck_assert_int_eq(rc, KILN_EINVAL);
    ck_assert_str_eq(
        err.msg,
        "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector");

    rc = query_range(&e, st, "up_total", 0, 60000, 0, NULL, &r, &err);
    ck_assert_int_eq(rc, KILN_EINVAL);

    rc = query_instant(&e, st, "up_total / on() up_total", 60000, NULL, &r, &err);
    ck_assert_int_eq(rc, KILN_ERANGE);
    ck_assert_str_eq(query_error_type(rc), "execution");
    ck_assert_ptr_nonnull(strstr(err.msg, "found duplicate series for the match group {}"));

    rc = query_instant(&e, st, "label_replace(up_total, \"instance\", \"x\", \"\", \"\")", 60000, NULL, &r,
                       &err);
    ck_assert_int_eq(rc, KILN_ERANGE);
    ck_assert_str_eq(err.msg, "vector cannot contain metrics with the same labelset");

    query_engine_opts eo = query_engine_opts_default();
    eo.max_samples = 10;
    query_engine small;
    query_engine_init(&small, &eo);
    rc = query_range(&small, st, "up_total", 0, 600000, 60000, NULL, &r, &err);
    ck_assert_int_eq(rc, KILN_ELIMIT);
    ck_assert_str_eq(err.msg, "query processing would load too many samples into memory in query execution");
    ck_assert_str_eq(query_error_type(rc), "execution");

    query_opts qo = {0};
    qo.cancel_cb = cancel_now;
    rc = query_instant(&e, st, "up_total", 60000, &qo, &r, &err);
    ck_assert_int_eq(rc, KILN_ECANCELED);
    ck_assert_str_eq(query_error_type(rc), "canceled");
    ck_assert_int_eq(r.type, QUERY_NONE);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("query");
    TCase *tc = tcase_create("api");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_instant_vector);
    tcase_add_test(tc, test_range_matrix);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}
