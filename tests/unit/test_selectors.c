/*
 * test_selectors.c - unit tests for selects over many head series
 * (storage/head.c's postings for matchers, storage/querier.c's sorted
 * copy): regex matchers whose postings are a large union (sorted through a
 * bitmap), intersected and subtracted, give exactly the series a brute
 * force over the written label sets gives, sorted by labels, with labels
 * that outlive the querier; label values with matchers agree too.
 */
#include <stdio.h>
#include <string.h>

#include "query_testutil.h"
#include "storage/storage.h"

#define KILN_TEST_MAIN
#include "testutil.h"

#define NAMES 30
#define INSTS 250
#define NSERIES (NAMES * INSTS)

static char dir[64];

/* The labels of series k: written in a scrambled order, so that the
 * references' order is not the labels' order. */
static void series_labels(int k, char *name, char *inst, char *zone, label *ls, size_t *n) {
    int i = (k * 7919) % NSERIES;
    snprintf(name, 16, "node_m%d", i % NAMES);
    snprintf(inst, 16, "host-%d", i / NAMES);
    snprintf(zone, 16, "z%d", i % 3);
    *n = 0;
    ls[(*n)++] = (label){"__name__", name};
    ls[(*n)++] = (label){"instance", inst};
    if (i % 3) /* a third without zone: zone="" matches them */
        ls[(*n)++] = (label){"zone", zone};
}

static storage *fill(void) {
    log_setup(LOG_ERROR, LOG_FORMAT_LOGFMT);
    storage *s = qt_open(dir, "selectors");
    kiln_err err = {0};
    appender *a = storage_appender(s);
    for (int k = 0; k < NSERIES; k++) {
        char name[16], inst[16], zone[16];
        label ls[3];
        size_t n;
        series_labels(k, name, inst, zone, ls, &n);
        uint64_t ref = 0;
        ck_assert_int_eq(appender_append(a, &ref, ls, n, 1000, k, &err), 0);
    }
    ck_assert_int_eq(appender_commit(a, &err), 0);
    return s;
}

typedef struct sel {
    const char *name, *value;
    match_type t;
} sel;

/* The matchers of a case (up to max, ending at a NULL name) into ms; how many. */
static size_t matchers_of(const sel *c, size_t max, matcher *ms) {
    kiln_err err = {0};
    size_t n = 0;
    for (; n < max && c[n].name; n++)
        ck_assert_int_eq(matcher_init(&ms[n], c[n].t, c[n].name, c[n].value, &err), 0);
    return n;
}

static int brute_matches(const matcher *ms, size_t nms, const label *ls, size_t n) {
    for (size_t i = 0; i < nms; i++)
        if (!matcher_matches(&ms[i], labels_get(ls, n, ms[i].name)))
            return 0;
    return 1;
}

START_TEST(test_selects_agree_with_brute_force) {
    static const sel cases[][3] = {
        {{"__name__", "node_.*", MATCH_RE}, {"instance", "host-1.*", MATCH_RE}},
        {{"__name__", "node_m1|node_m2|node_m29", MATCH_RE}},
        {{"__name__", ".+", MATCH_RE}, {"instance", "host-2.*", MATCH_NRE}},
        {{"__name__", "node_m.*", MATCH_RE}, {"zone", "", MATCH_EQ}},
        {{"instance", ".*", MATCH_RE}, {"zone", "z1|z2", MATCH_RE}, {"__name__", "node_m7", MATCH_EQ}},
        {{"__name__", "node_m(1|2)\\d", MATCH_RE}, {"zone", "z.*", MATCH_NRE}},
        {{"instance", "host-.*", MATCH_RE}},
        {{"__name__", "nope.*", MATCH_RE}},
    };
    storage *s = fill();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        matcher ms[3];
        kiln_err err = {0};
        size_t nms = matchers_of(cases[c], 3, ms);
        size_t want = 0;
        for (int k = 0; k < NSERIES; k++) {
            char name[16], inst[16], zone[16];
            label ls[3];
            size_t n;
            series_labels(k, name, inst, zone, ls, &n);
            want += brute_matches(ms, nms, ls, n);
        }
        querier *q;
        ck_assert_int_eq(storage_querier(s, 0, INT64_MAX, &q, &err), 0);
        series_set set;
        select_hints h = {0, INT64_MAX, 0, 0};
        ck_assert_msg(querier_select(q, ms, nms, &h, &set, &err) == 0, "select: %s", err.msg);
        querier_close(q); /* the labels are the set's own */
        ck_assert_msg(set.n == want, "case %zu: %zu series, want %zu", c, set.n, want);
        for (size_t i = 0; i < set.n; i++) {
            ck_assert(brute_matches(ms, nms, set.v[i].ls, set.v[i].nls));
            ck_assert_uint_eq(set.v[i].n, 1);
            if (i)
                ck_assert_int_lt(labels_cmp(set.v[i - 1].ls, set.v[i - 1].nls, set.v[i].ls, set.v[i].nls), 0);
        }
        series_set_free(&set);
        for (size_t i = 0; i < nms; i++)
            matcher_free(&ms[i]);
    }
    qt_close(s, dir);
}
END_TEST

/* Adds s to the distinct strings v[0..*n) (at most 300). */
static void add_distinct(const char **v, size_t *n, const char *s) {
    for (size_t i = 0; i < *n; i++)
        if (strcmp(v[i], s) == 0)
            return;
    ck_assert_uint_lt(*n, 300);
    v[(*n)++] = s;
}

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Label values (of each name) and label names with matchers, through the
 * postings of each value (small and large matched sets) and the series'
 * names, against a brute force over the written label sets. */
START_TEST(test_lookups_agree_with_brute_force) {
    static const sel cases[][2] = {
        {{"__name__", "node_m1.*", MATCH_RE}, {"instance", "host-2.*", MATCH_RE}},
        {{"instance", "host-.*", MATCH_RE}}, /* every series: a bitmap of the matched set */
        {{"__name__", "node_m7", MATCH_EQ}},
        {{"zone", "", MATCH_EQ}, {"__name__", "node_m2.*", MATCH_RE}},
        {{"zone", "z1", MATCH_EQ}},
        {{"__name__", "nope", MATCH_EQ}},
    };
    static const char *names[] = {"__name__", "instance", "zone", "missing"};
    static char keep[NSERIES][3][16]; /* the brute force's strings */
    storage *s = fill();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        matcher ms[2];
        kiln_err err = {0};
        size_t nms = matchers_of(cases[c], 2, ms);
        querier *q;
        ck_assert_int_eq(storage_querier(s, 0, INT64_MAX, &q, &err), 0);
        for (size_t ni = 0; ni <= 4; ni++) {
            const char *want[300];
            size_t nwant = 0;
            for (int k = 0; k < NSERIES; k++) {
                label ls[3];
                size_t n;
                series_labels(k, keep[k][0], keep[k][1], keep[k][2], ls, &n);
                if (!brute_matches(ms, nms, ls, n))
                    continue;
                for (size_t j = 0; j < n; j++)
                    if (ni == 4)
                        add_distinct(want, &nwant, ls[j].name);
                    else if (strcmp(ls[j].name, names[ni]) == 0)
                        add_distinct(want, &nwant, ls[j].value);
            }
            qsort(want, nwant, sizeof *want, cmp_cstr);
            str_list l;
            int rc = ni == 4 ? querier_label_names(q, ms, nms, &l, &err)
                             : querier_label_values(q, names[ni], ms, nms, &l, &err);
            ck_assert_msg(rc == 0, "case %zu: %s", c, err.msg);
            ck_assert_msg(l.n == nwant, "case %zu, name %zu: %zu values, want %zu", c, ni, l.n, nwant);
            for (size_t i = 0; i < l.n; i++)
                ck_assert_str_eq(l.v[i], want[i]);
            str_list_free(&l);
        }
        querier_close(q);
        for (size_t i = 0; i < nms; i++)
            matcher_free(&ms[i]);
    }
    qt_close(s, dir);
}
END_TEST

/* A series whose samples lie outside the querier's range gives no value
 * or name, though its postings match. */
START_TEST(test_lookups_leave_out_series_without_data_in_range) {
    storage *s = fill();
    kiln_err err = {0};
    appender *a = storage_appender(s);
    label late[] = {{"__name__", "node_late"}, {"instance", "host-late"}, {"rack", "r1"}};
    uint64_t ref = 0;
    ck_assert_int_eq(appender_append(a, &ref, late, 3, 900000, 1, &err), 0);
    ck_assert_int_eq(appender_commit(a, &err), 0);
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_RE, "instance", "host-.*", &err), 0);
    for (int wide = 0; wide < 2; wide++) {
        querier *q;
        ck_assert_int_eq(storage_querier(s, 0, wide ? INT64_MAX : 500000, &q, &err), 0);
        str_list l;
        ck_assert_int_eq(querier_label_values(q, "instance", &m, 1, &l, &err), 0);
        ck_assert_uint_eq(l.n, INSTS + (size_t)wide);
        str_list_free(&l);
        ck_assert_int_eq(querier_label_names(q, &m, 1, &l, &err), 0);
        ck_assert_uint_eq(l.n, 3 + (size_t)wide); /* __name__ instance [rack] zone */
        str_list_free(&l);
        querier_close(q);
    }
    matcher_free(&m);
    qt_close(s, dir);
}
END_TEST

START_TEST(test_label_values_with_matchers) {
    storage *s = fill();
    kiln_err err = {0};
    matcher ms[2];
    ck_assert_int_eq(matcher_init(&ms[0], MATCH_RE, "__name__", "node_m1.*", &err), 0);
    ck_assert_int_eq(matcher_init(&ms[1], MATCH_RE, "instance", "host-2.*", &err), 0);
    querier *q;
    ck_assert_int_eq(storage_querier(s, 0, INT64_MAX, &q, &err), 0);
    str_list l;
    ck_assert_int_eq(querier_label_values(q, "__name__", ms, 2, &l, &err), 0);
    /* node_m1, node_m10..node_m19: sorted as strings */
    ck_assert_uint_eq(l.n, 11);
    ck_assert_str_eq(l.v[0], "node_m1");
    ck_assert_str_eq(l.v[1], "node_m10");
    ck_assert_str_eq(l.v[10], "node_m19");
    str_list_free(&l);
    ck_assert_int_eq(querier_label_values(q, "instance", ms, 2, &l, &err), 0);
    /* host-2, host-20..29, host-200..249 */
    ck_assert_uint_eq(l.n, 1 + 10 + 50);
    for (size_t i = 1; i < l.n; i++)
        ck_assert_int_lt(strcmp(l.v[i - 1], l.v[i]), 0);
    str_list_free(&l);
    querier_close(q);
    matcher_free(&ms[0]);
    matcher_free(&ms[1]);
    qt_close(s, dir);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("selectors");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_selects_agree_with_brute_force);
    tcase_add_test(tc, test_label_values_with_matchers);
    tcase_add_test(tc, test_lookups_agree_with_brute_force);
    tcase_add_test(tc, test_lookups_leave_out_series_without_data_in_range);
    suite_add_tcase(s, tc);
    return s;
}
