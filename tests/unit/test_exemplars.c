/*
 * test_exemplars.c - the exemplar store (storage/exemplars.c): the circular
 * buffer evicting the oldest exemplar of all series, series leaving the index
 * with their last exemplar, Prometheus' duplicate and out-of-order rules, the
 * 128-character limit, selects by matchers and time, and resizing.
 */
#include <stdio.h>
#include <string.h>

#include "storage/storage.h"

#define KILN_TEST_MAIN
#include "testutil.h"

typedef struct got {
    char text[4096];
    size_t len;
} got;

/* Writes "<series value of a>:<ex value>@<t>," for each exemplar. */
static int collect(void *ctx, const label *ls, size_t n, const exemplar *ex, size_t nex) {
    got *g = ctx;
    for (size_t i = 0; i < nex; i++)
        g->len += (size_t)snprintf(g->text + g->len, sizeof g->text - g->len, "%s:%g@%lld,",
                                   labels_get(ls, n, "a"), ex[i].v, (long long)ex[i].t);
    return 0;
}

/* Everything in [mint, maxt] of series matching a=~re, series in index order. */
static const char *sel(exemplar_store *es, const char *re, int64_t mint, int64_t maxt, got *g) {
    matcher m;
    kiln_err err = {0};
    ck_assert_int_eq(matcher_init(&m, MATCH_RE, "a", re, &err), 0);
    exemplar_matchers set = {&m, 1};
    memset(g, 0, sizeof *g);
    ck_assert_int_eq(exemplar_select(es, mint, maxt, &set, 1, collect, g), 0);
    matcher_free(&m);
    return g->text;
}

static int add(exemplar_store *es, const char *sname, double v, int64_t t, int has_ts) {
    label s[] = {{"a", sname}};
    label e[] = {{"trace_id", "x"}};
    exemplar ex = {e, 1, v, t, has_ts};
    kiln_err err = {0};
    return exemplar_add(es, s, 1, &ex, &err);
}

START_TEST(test_circular_buffer) {
    exemplar_store *es = exemplar_store_new(3);
    got g;
    ck_assert_int_eq(add(es, "1", 1, 10, 1), 0);
    ck_assert_int_eq(add(es, "2", 2, 11, 1), 0);
    ck_assert_int_eq(add(es, "1", 3, 12, 1), 0);
    ck_assert_str_eq(sel(es, ".*", 0, 100, &g), "1:1@10,1:3@12,2:2@11,");
    /* the fourth takes the oldest slot (series 1's first) */
    ck_assert_int_eq(add(es, "3", 4, 13, 1), 0);
    ck_assert_str_eq(sel(es, ".*", 0, 100, &g), "1:3@12,2:2@11,3:4@13,");
    /* series 2 loses its only exemplar and leaves the index */
    size_t nser = 0;
    ck_assert_int_eq(add(es, "3", 5, 14, 1), 0);
    ck_assert_uint_eq(exemplar_store_size(es, &nser), 3);
    ck_assert_uint_eq(nser, 2);
    ck_assert_str_eq(sel(es, ".*", 0, 100, &g), "1:3@12,3:4@13,3:5@14,");
    /* matchers and time */
    ck_assert_str_eq(sel(es, "3", 0, 100, &g), "3:4@13,3:5@14,");
    ck_assert_str_eq(sel(es, ".*", 13, 13, &g), "3:4@13,");
    ck_assert_str_eq(sel(es, "9", 0, 100, &g), "");
    /* many series through a small buffer: the index stays consistent */
    char name[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "s%d", i % 37);
        ck_assert_int_eq(add(es, name, i, 100 + i, 1), 0);
    }
    ck_assert_uint_eq(exemplar_store_size(es, &nser), 3);
    ck_assert_uint_eq(nser, 3);
    ck_assert_str_eq(sel(es, ".*", 0, 10000, &g), "s35:997@1097,s0:999@1099,s36:998@1098,");
    exemplar_store_free(es);
}
END_TEST

START_TEST(test_duplicates_and_order) {
    exemplar_store *es = exemplar_store_new(10);
    got g;
    ck_assert_int_eq(add(es, "1", 1, 10, 1), 0);
    ck_assert_int_eq(add(es, "1", 1, 10, 1), KILN_EEXIST); /* the same one scraped again */
    ck_assert_int_eq(add(es, "1", 2, 10, 1), KILN_EORDER); /* same time, other value */
    ck_assert_int_eq(add(es, "1", 2, 9, 1), KILN_EORDER);
    /* without a timestamp: equal labels and value are the same exemplar, whatever the scrape time */
    ck_assert_int_eq(add(es, "2", 5, 20, 0), 0);
    ck_assert_int_eq(add(es, "2", 5, 30, 0), KILN_EEXIST);
    ck_assert_int_eq(add(es, "2", 6, 30, 0), 0);
    ck_assert_str_eq(sel(es, ".*", 0, 100, &g), "1:1@10,2:5@20,2:6@30,");
    /* 128 characters of names and values at most */
    char v[200];
    memset(v, 'x', sizeof v);
    v[120] = 0;
    label s[] = {{"a", "3"}};
    label e[] = {{"trace_id", v}};
    exemplar ex = {e, 1, 1, 50, 1};
    kiln_err err = {0};
    ck_assert_int_eq(exemplar_add(es, s, 1, &ex, &err), 0); /* 8 + 120 */
    v[120] = 'x';
    v[121] = 0;
    ex.t = 51;
    ck_assert_int_eq(exemplar_add(es, s, 1, &ex, &err), KILN_EINVAL);
    exemplar_store_free(es);
}
END_TEST

START_TEST(test_resize) {
    exemplar_store *es = exemplar_store_new(4);
    got g;
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(add(es, i % 2 ? "odd" : "even", i, 10 + i, 1), 0);
    /* smaller: the newest two stay */
    ck_assert_int_eq(exemplar_store_resize(es, 2), 0);
    ck_assert_str_eq(sel(es, ".*", 0, 100, &g), "even:2@12,odd:3@13,");
    /* larger: nothing lost, and room for more */
    ck_assert_int_eq(exemplar_store_resize(es, 5), 0);
    ck_assert_int_eq(add(es, "odd", 9, 20, 1), 0);
    ck_assert_int_eq(add(es, "new", 8, 21, 1), 0);
    ck_assert_str_eq(sel(es, ".*", 0, 100, &g), "even:2@12,odd:3@13,odd:9@20,new:8@21,");
    /* 0: nothing is kept or stored */
    size_t nser = 0;
    ck_assert_int_eq(exemplar_store_resize(es, 0), 0);
    ck_assert_uint_eq(exemplar_store_size(es, &nser), 0);
    ck_assert_uint_eq(nser, 0);
    ck_assert_int_eq(add(es, "odd", 10, 30, 1), 0);
    ck_assert_str_eq(sel(es, ".*", 0, 100, &g), "");
    exemplar_store_free(es);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("exemplars");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_circular_buffer);
    tcase_add_test(tc, test_duplicates_and_order);
    tcase_add_test(tc, test_resize);
    suite_add_tcase(s, tc);
    return s;
}
