/*
 * test_feature.c - the --enable-feature table (util/feature.c) and what the
 * PromQL feature set changes: parse errors naming the flag when a feature
 * is off, and __name__ removal at once or delayed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/ast.h"
#include "query/query.h"
#include "storage/storage.h"

#define KILN_TEST_MAIN
#include "query_testutil.h"
#include "testutil.h"

START_TEST(test_lookup) {
    const char *n = "promql-experimental-functions";
    const feature_desc *f = feature_lookup(n, strlen(n));
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(f->bit, FEATURE_PROMQL_EXPERIMENTAL_FUNCTIONS);
    ck_assert_ptr_null(feature_lookup("promql-experimental", 19));
    ck_assert_ptr_null(feature_lookup("no-such-feature", 15));
    ck_assert_str_eq(feature_name(FEATURE_PROMQL_DURATION_EXPR), "promql-duration-expr");
    /* every entry is found by its own name, and the bits are distinct */
    size_t nt;
    const feature_desc *t = feature_table(&nt);
    uint32_t seen = 0;
    for (size_t i = 0; i < nt; i++) {
        ck_assert_ptr_eq(feature_lookup(t[i].name, strlen(t[i].name)), &t[i]);
        ck_assert_uint_eq(seen & t[i].bit, 0);
        seen |= t[i].bit;
    }
    ck_assert_uint_eq(seen & FEATURE_PROMQL_ALL, FEATURE_PROMQL_ALL);
}
END_TEST

START_TEST(test_parse_list) {
    uint32_t set = 0;
    feature_parse_list("bogus,promql-duration-expr,,promql-at-modifier", &set);
    ck_assert_uint_eq(set, FEATURE_PROMQL_DURATION_EXPR);
    feature_parse_list("promql-delayed-name-removal", &set);
    ck_assert_uint_eq(set, FEATURE_PROMQL_DURATION_EXPR | FEATURE_PROMQL_DELAYED_NAME_REMOVAL);
    feature_parse_list("", &set);
    ck_assert_uint_eq(set, FEATURE_PROMQL_DURATION_EXPR | FEATURE_PROMQL_DELAYED_NAME_REMOVAL);
}
END_TEST

/* Each query fails without its feature, with a message naming the flag,
 * and parses with it. */
START_TEST(test_gated_syntax) {
    static const struct {
        const char *q;
        uint32_t feature;
        const char *msg;
    } cases[] = {
        {"mad_over_time(x[5m])", FEATURE_PROMQL_EXPERIMENTAL_FUNCTIONS,
         "1:1: parse error: function \"mad_over_time\" is not enabled; it is experimental and must be "
         "enabled "
         "with --enable-feature=promql-experimental-functions"},
        {"sort_by_label(x, \"a\")", FEATURE_PROMQL_EXPERIMENTAL_FUNCTIONS, NULL},
        {"1 + step()", FEATURE_PROMQL_EXPERIMENTAL_FUNCTIONS, NULL},
        {"limitk(2, x)", FEATURE_PROMQL_EXPERIMENTAL_FUNCTIONS,
         "1:1: parse error: limitk() and limit_ratio() is experimental and must be enabled with "
         "--enable-feature=promql-experimental-functions"},
        {"limit_ratio(0.5, x)", FEATURE_PROMQL_EXPERIMENTAL_FUNCTIONS, NULL},
        {"x[1m+30s]", FEATURE_PROMQL_DURATION_EXPR,
         "1:3: parse error: a duration expression is experimental and must be enabled with "
         "--enable-feature=promql-duration-expr"},
        {"x[5m:step()]", FEATURE_PROMQL_DURATION_EXPR, NULL},
        {"x offset (1h / 2)", FEATURE_PROMQL_DURATION_EXPR, NULL},
        {"rate(x[(5 + 2) * 1m])", FEATURE_PROMQL_DURATION_EXPR, NULL},
        {"a / ignoring(code) fill(0) b", FEATURE_PROMQL_BINOP_FILL_MODIFIERS,
         "1:20: parse error: the fill modifier is experimental and must be enabled with "
         "--enable-feature=promql-binop-fill-modifiers"},
        {"a + on(x) group_left fill_right(1) b", FEATURE_PROMQL_BINOP_FILL_MODIFIERS, NULL},
        {"rate(x[5m] anchored)", FEATURE_PROMQL_EXTENDED_RANGE_SELECTORS,
         "1:12: parse error: the anchored modifier is experimental and must be enabled with "
         "--enable-feature=promql-extended-range-selectors"},
        {"x smoothed", FEATURE_PROMQL_EXTENDED_RANGE_SELECTORS, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        promql_ast *a = NULL;
        kiln_err err = {0};
        ck_assert_msg(promql_parse_features(cases[i].q, 0, &a, &err) == KILN_EINVAL, "%s", cases[i].q);
        ck_assert_ptr_null(a);
        ck_assert_msg(strstr(err.msg, feature_name(cases[i].feature)) != NULL, "%s: %s", cases[i].q, err.msg);
        if (cases[i].msg)
            ck_assert_str_eq(err.msg, cases[i].msg);
        ck_assert_msg(promql_parse_features(cases[i].q, cases[i].feature, &a, &err) == 0, "%s: %s",
                      cases[i].q, err.msg);
        promql_ast_free(a);
    }
}
END_TEST

/* rate() drops __name__: at once by default, so label_replace no longer
 * sees it and sum by (__name__) makes one group; at the end with
 * promql-delayed-name-removal, so label_replace can read it and keep a new
 * one, and sum by (__name__) groups by it. */
START_TEST(test_name_removal) {
    char dir[64];
    storage *st = qt_open(dir, "feature");
    kiln_err err = {0};
    appender *ap = storage_appender(st);
    ck_assert_ptr_nonnull(ap);
    /* a and b differ in i, c and d only in the name */
    const char *names[] = {"a_total", "b_total", "c_total", "d_total"};
    const char *is[] = {"1", "2", "3", "3"};
    for (int s = 0; s < 4; s++) {
        label ls[] = {{LABEL_NAME, names[s]}, {"i", is[s]}};
        uint64_t ref = 0;
        for (int i = 0; i <= 10; i++)
            ck_assert_int_eq(
                appender_append(ap, &ref, ref ? NULL : ls, ref ? 0 : 2, i * 60000, i * (s + 1), &err), 0);
    }
    ck_assert_int_eq(appender_commit(ap, &err), 0);

    query_engine e;
    query_engine_init(&e, NULL);
    query_result r;
    const char *q = "sum by (__name__) (rate({__name__=~\"a_total|b_total\"}[5m]))";
    /* eager: both lose the name before the sum, one group */
    ck_assert_int_eq(query_instant(&e, st, q, 600000, NULL, &r, &err), 0);
    ck_assert_uint_eq(r.nseries, 1);
    ck_assert_uint_eq(r.series[0].nls, 0);
    query_result_free(&r);
    /* eager: rate's result of two series with equal labels is an error */
    ck_assert_int_eq(
        query_instant(&e, st, "rate({__name__=~\"c_total|d_total\"}[5m])", 600000, NULL, &r, &err),
        KILN_ERANGE);
    ck_assert(strstr(err.msg, "same labelset") != NULL);
    const char *lr = "label_replace(rate(a_total[5m]), \"__name__\", \"x\", \"i\", \".*\")";
    ck_assert_int_eq(query_instant(&e, st, lr, 600000, NULL, &r, &err), 0);
    ck_assert_uint_eq(r.nseries, 1);
    ck_assert_str_eq(labels_get(r.series[0].ls, r.series[0].nls, LABEL_NAME), "x");
    query_result_free(&r);

    const char *lr2 = "label_replace(rate(a_total[5m]), \"__name__\", \"rate_$1\", \"__name__\", \"(.+)\")";
    ck_assert_int_eq(query_instant(&e, st, lr2, 600000, NULL, &r, &err), 0);
    ck_assert_uint_eq(r.nseries, 1);
    ck_assert_ptr_null(labels_get(r.series[0].ls, r.series[0].nls, LABEL_NAME));
    query_result_free(&r);

    /* delayed: grouped by the names rate has not dropped yet, two groups
     * that collide once they go (feature_flags.md's example) */
    e.opts.features = FEATURE_PROMQL_DELAYED_NAME_REMOVAL;
    ck_assert_int_eq(query_instant(&e, st, q, 600000, NULL, &r, &err), KILN_ERANGE);
    ck_assert(strstr(err.msg, "same labelset") != NULL);
    ck_assert_int_eq(query_instant(&e, st, lr2, 600000, NULL, &r, &err), 0);
    ck_assert_uint_eq(r.nseries, 1);
    ck_assert_str_eq(labels_get(r.series[0].ls, r.series[0].nls, LABEL_NAME), "rate_a_total");
    query_result_free(&r);
    ck_assert_int_eq(
        query_instant(&e, st, "rate({__name__=~\"c_total|d_total\"}[5m])", 600000, NULL, &r, &err),
        KILN_ERANGE);
    ck_assert_int_eq(query_instant(&e, st, lr, 600000, NULL, &r, &err), 0);
    ck_assert_str_eq(labels_get(r.series[0].ls, r.series[0].nls, LABEL_NAME), "x");
    query_result_free(&r);
    qt_close(st, dir);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("feature");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_lookup);
    tcase_add_test(tc, test_parse_list);
    tcase_add_test(tc, test_gated_syntax);
    tcase_add_test(tc, test_name_removal);
    suite_add_tcase(s, tc);
    return s;
}
