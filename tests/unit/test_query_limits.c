/*
 * test_query_limits.c - the limits a query runs under (issue 16): the
 * sample limit counts every point a query materialises, subqueries over
 * vector(), absent() and aggregations included, and fails before the memory
 * is taken; a regex that hits PCRE2's limits is an execution error naming
 * it, never a silent non-match (selectors, !~, label_replace); the timeout
 * holds while matchers run over many label values.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "query/query.h"
#include "storage/storage.h"

#define KILN_TEST_MAIN
#include "query_testutil.h"
#include "testutil.h"

#define TOO_MANY "query processing would load too many samples into memory in query execution"
#define EVIL "(a+)+b|a*c"
/* names a nested quantifier backtracks over for a few milliseconds each,
 * under PCRE2's match limit: (a+)+b tries every split of the a's before
 * it meets the "_" */
#define SLOW_NAMES 300

static storage *st;
static char dir[64];

static void append(appender *a, label *ls, size_t n, int64_t t, double v) {
    kiln_err err = {0};
    uint64_t ref = 0;
    ck_assert_msg(appender_append(a, &ref, ls, n, t, v, &err) == 0, "append: %s", err.msg);
}

static void setup(void) {
    st = qt_open(dir, "qlim");
    kiln_err err = {0};
    appender *a = storage_appender(st);
    ck_assert_ptr_nonnull(a);
    char v[64];
    memset(v, 'a', 40);
    strcpy(v + 40, "c");
    label e1[] = {{LABEL_NAME, "evil"}, {"v", v}};
    label e2[] = {{LABEL_NAME, "evil"}, {"v", "b"}};
    append(a, e1, 2, 3600000, 1);
    append(a, e2, 2, 3600000, 2);
    for (int i = 0; i < SLOW_NAMES; i++) {
        char name[64];
        snprintf(name, sizeof name, "aaaaaaaaaaaaaaaaaaaaaa_b_%04d", i);
        label ls[] = {{LABEL_NAME, name}};
        append(a, ls, 1, 0, i);
    }
    for (int s = 0; s < 3; s++) {
        char inst[16];
        snprintf(inst, sizeof inst, "%d", s);
        label ls[] = {{LABEL_NAME, "up_total"}, {"instance", inst}};
        for (int i = 0; i <= 60; i++)
            append(a, ls, 2, i * 60000, i);
    }
    ck_assert_int_eq(appender_commit(a, &err), 0);
}

static void teardown(void) {
    qt_close(st, dir);
}

static void engine(query_engine *e, size_t max_samples, int64_t timeout_ms) {
    query_engine_opts o = query_engine_opts_default();
    o.max_samples = max_samples;
    o.timeout_ms = timeout_ms;
    query_engine_init(e, &o);
}

/* The instant query's code at t=1h; the error message in *err. */
static int instant(const query_engine *e, const char *q, kiln_err *err) {
    query_result r;
    memset(err, 0, sizeof *err);
    int rc = query_instant(e, st, q, 3600000, NULL, &r, err);
    if (rc == 0)
        query_result_free(&r);
    return rc;
}

/* Runs each of qs[0..n) and checks it fails with `code`, an error of
 * errorType `type` whose message holds `msg`. */
static void expect_errors(const query_engine *e, const char *const *qs, size_t n, int code, const char *type,
                          const char *msg) {
    for (size_t i = 0; i < n; i++) {
        kiln_err err;
        int rc = instant(e, qs[i], &err);
        ck_assert_msg(rc == code, "%s: %d %s", qs[i], rc, err.msg);
        ck_assert_msg(strstr(err.msg, msg), "%s: %s", qs[i], err.msg);
        ck_assert_str_eq(query_error_type(rc), type);
    }
}

/* Subqueries materialise one point a step of whatever they hold; a scalar
 * or vector() inside one is as many points as steps (before: a 3d subquery
 * at 1ms took 6 GB under a limit of a million, a year answered
 * "out of memory"). */
START_TEST(test_subquery_counts_points) {
    static const char *over[] = {
        "count_over_time(vector(1)[3d:1ms])",
        "count_over_time(vector(1)[1y:1ms])",
        "count_over_time(absent(nonexistent)[3d:1ms])",
        "count_over_time(absent_over_time(nonexistent[1m])[3d:1ms])",
        "count_over_time(vector(time())[3d:1ms])",
        "count_over_time(minute()[3d:1ms])",
        "count_over_time(sum(up_total)[3d:1ms])",
        "count_over_time(up_total[3d:1ms])",
        "count_over_time(rate(up_total[5m])[3d:1ms])",
        "count_over_time((up_total * 2)[3d:1ms])",
        "count_over_time((up_total + up_total)[3d:1ms])",
        "count_over_time(label_replace(up_total, \"x\", \"y\", \"\", \"\")[3d:1ms])",
        "count_over_time(vector(scalar(up_total{instance=\"0\"}))[3d:1ms])",
        "max_over_time(count_over_time(vector(1)[1d:1ms])[1d:1h])",
    };
    query_engine e;
    engine(&e, 1000000, 0);
    kiln_err err;
    expect_errors(&e, over, sizeof over / sizeof *over, KILN_ELIMIT, "execution", TOO_MANY);
    /* nothing selected: no points, however many steps */
    ck_assert_int_eq(instant(&e, "count_over_time(nonexistent[1y:1ms])", &err), 0);
    /* within the limit: a subquery's points count once each */
    query_engine small;
    engine(&small, 1000, 0);
    ck_assert_int_eq(instant(&small, "count_over_time(vector(1)[1h:10s])", &err), 0);
    ck_assert_int_eq(instant(&small, "count_over_time(vector(1)[1h:1s])", &err), KILN_ELIMIT);
    ck_assert_int_eq(instant(&small, "sum_over_time(up_total[10m:1s])", &err), KILN_ELIMIT);
    /* a range query's steps are points too */
    query_result r;
    ck_assert_int_eq(query_range(&small, st, "vector(1)", 0, 3600000, 1000, NULL, &r, &err), KILN_ELIMIT);
    ck_assert_int_eq(query_range(&small, st, "vector(1)", 0, 3600000, 60000, NULL, &r, &err), 0);
    ck_assert_uint_eq(r.series[0].npts, 61);
    query_result_free(&r);
}
END_TEST

/* (a+)+b backtracks over 2^40 ways of splitting the a's before a*c can
 * match: PCRE2 gives up at its match limit.  The selector must then fail,
 * naming the regex; before, it silently did not match. */
START_TEST(test_regex_limit_is_an_error) {
    static const char *qs[] = {
        "evil{v=~\"" EVIL "\"}",
        "evil{v!~\"" EVIL "\"}",
        "label_replace(evil, \"x\", \"$1\", \"v\", \"" EVIL "\")",
    };
    query_engine e;
    engine(&e, 0, 0);
    kiln_err err;
    expect_errors(&e, qs, sizeof qs / sizeof *qs, KILN_ELIMIT, "execution",
                  "regular expression \"" EVIL "\" on label \"v\" exceeded PCRE2's match limit");
    /* regexes PCRE2 settles quickly still answer (every way to match
     * (a+)+b|b ends in a "b" the long value lacks) */
    query_result r;
    ck_assert_int_eq(query_instant(&e, st, "evil{v=~\"(a+)+b|b\"}", 3600000, NULL, &r, &err), 0);
    ck_assert_uint_eq(r.nseries, 1);
    query_result_free(&r);
    ck_assert_int_eq(query_instant(&e, st, "evil{v=~\"b|a*c\"}", 3600000, NULL, &r, &err), 0);
    ck_assert_uint_eq(r.nseries, 2);
    query_result_free(&r);
    ck_assert_int_eq(query_instant(&e, st, "label_replace(evil{v=\"b\"}, \"x\", \"$1\", \"v\", \"(b)\")",
                                   3600000, NULL, &r, &err),
                     0);
    ck_assert_uint_eq(r.nseries, 1);
    ck_assert_str_eq(labels_get(r.series[0].ls, r.series[0].nls, "x"), "b");
    query_result_free(&r);
}
END_TEST

/* A regex that is slow on every label value, but under PCRE2's limits:
 * the timeout stops the select (before, it ran to the end: 45 s over 2,000
 * names with a timeout of 5 s). */
START_TEST(test_timeout_in_matchers) {
    static const char *qs[] = {
        "count({__name__=~\"(a+)+b\"})",
        "count({__name__!~\"(a+)+b\", __name__=~\"a.*\"})",
    };
    query_engine e;
    engine(&e, 0, 200);
    expect_errors(&e, qs, 2, KILN_ETIMEOUT, "timeout", "query timed out in query execution");
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("query_limits");
    TCase *tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_subquery_counts_points);
    tcase_add_test(tc, test_regex_limit_is_an_error);
    tcase_add_test(tc, test_timeout_in_matchers);
    suite_add_tcase(s, tc);
    return s;
}
