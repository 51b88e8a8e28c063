/*
 * test_nhist.c - unit tests of query/nhist.c, the native histogram
 * arithmetic of the PromQL engine: addition across schemas and zero
 * thresholds, custom-bucket reconciliation, scaling, counter-reset
 * detection, equality, quantile, fraction, variance, the text form and
 * the trim operators.
 */
#include <math.h>
#include <string.h>

#include "query/eval.h"
#include "query/nhist.h"
#define KILN_TEST_MAIN
#include "testutil.h"

/* The tests' arena, made and freed around each test. */
static arena A;
static void setup(void) {
    arena_init(&A, 0);
}
static void teardown(void) {
    arena_free(&A);
}

/* A histogram with one positive span at offset `off` holding n counts. */
static histogram mk(int32_t schema, double count, double sum, int32_t off, const double *b, uint32_t n,
                    hist_span *sp) {
    histogram h;
    memset(&h, 0, sizeof h);
    h.schema = schema;
    h.count = count;
    h.sum = sum;
    if (n) {
        sp->offset = off;
        sp->length = n;
        h.pos_spans = sp;
        h.npos_spans = 1;
        h.pos = (double *)b;
        h.npos = n;
    }
    return h;
}

/* The count of positive bucket idx (0 when absent). */
static double pos_at(const histogram *h, int32_t idx) {
    int32_t i = 0;
    uint32_t k = 0;
    for (uint32_t s = 0; s < h->npos_spans; s++) {
        i += h->pos_spans[s].offset;
        for (uint32_t l = 0; l < h->pos_spans[s].length; l++, i++, k++)
            if (i == idx)
                return h->pos[k];
    }
    return 0;
}

START_TEST(add_same_schema) {
    hist_span s1, s2;
    double b1[] = {1, 2}, b2[] = {3, 4};
    histogram x = mk(0, 3, 5, 0, b1, 2, &s1), y = mk(0, 7, 9, 1, b2, 2, &s2);
    histogram *r;
    ck_assert_int_eq(nh_add(&A, &x, &y, 0, &r, NULL), 0);
    ck_assert_int_eq(r->schema, 0);
    ck_assert(r->count == 10 && r->sum == 14);
    ck_assert(pos_at(r, 0) == 1 && pos_at(r, 1) == 5 && pos_at(r, 2) == 4);
    ck_assert_int_eq(nh_add(&A, &x, &y, 1, &r, NULL), 0);
    ck_assert(r->count == -4 && pos_at(r, 1) == -1 && pos_at(r, 2) == -4);
}
END_TEST

START_TEST(add_reduces_schema) {
    hist_span s1, s2;
    double b1[] = {1, 1, 1, 1}, b2[] = {1};
    histogram x = mk(1, 4, 0, 1, b1, 4, &s1), y = mk(0, 1, 0, 1, b2, 1, &s2);
    histogram *r;
    ck_assert_int_eq(nh_add(&A, &x, &y, 0, &r, NULL), 0);
    /* schema 1 buckets 1,2 -> schema 0 bucket 1; 3,4 -> 2 */
    ck_assert_int_eq(r->schema, 0);
    ck_assert(pos_at(r, 1) == 3 && pos_at(r, 2) == 2);
    ck_assert_uint_eq(r->npos, 2);
    /* negative indices floor: schema 2 bucket -1 goes to schema 0 bucket 0 */
    double b3[] = {5};
    histogram z = mk(2, 5, 0, -1, b3, 1, &s1);
    ck_assert_int_eq(nh_add(&A, &z, &y, 0, &r, NULL), 0);
    ck_assert(pos_at(r, 0) == 5 && pos_at(r, 1) == 1);
}
END_TEST

START_TEST(add_widens_zero_bucket) {
    hist_span s1;
    double b1[] = {1, 2};
    histogram x = mk(0, 3, 0, 0, b1, 2, &s1), y = mk(0, 3, 0, 0, NULL, 0, NULL);
    y.zero_threshold = 1;
    y.zero_count = 3;
    histogram *r;
    ck_assert_int_eq(nh_add(&A, &x, &y, 0, &r, NULL), 0);
    /* (0.5,1] moves into the zero bucket of width 1; (1,2] stays */
    ck_assert(r->zero_threshold == 1 && r->zero_count == 4);
    ck_assert(pos_at(r, 0) == 0 && pos_at(r, 1) == 2);
}
END_TEST

START_TEST(add_custom_buckets) {
    hist_span s1, s2;
    double b1[] = {1, 2, 3, 4}, b2[] = {10, 20, 30}, cv1[] = {1, 5, 10}, cv2[] = {5, 10};
    histogram x = mk(HIST_SCHEMA_CUSTOM, 10, 0, 0, b1, 4, &s1),
              y = mk(HIST_SCHEMA_CUSTOM, 60, 0, 0, b2, 3, &s2);
    x.custom_values = cv1;
    x.ncustom = 3;
    y.custom_values = cv2;
    y.ncustom = 2;
    histogram *r;
    int rec = 0;
    ck_assert_int_eq(nh_add(&A, &x, &y, 0, &r, &rec), 0);
    ck_assert_int_eq(rec, 1);
    ck_assert_uint_eq(r->ncustom, 2);
    ck_assert(r->custom_values[0] == 5 && r->custom_values[1] == 10);
    ck_assert(pos_at(r, 0) == 13 && pos_at(r, 1) == 23 && pos_at(r, 2) == 34);
    /* exponential and custom do not mix */
    histogram e = mk(0, 1, 0, 0, b1, 1, &s2);
    ck_assert_int_eq(nh_add(&A, &x, &e, 0, &r, NULL), NH_EMIXED);
}
END_TEST

START_TEST(scale_and_equal) {
    hist_span s1;
    double b1[] = {1, 2};
    histogram x = mk(0, 3, 5, 0, b1, 2, &s1);
    histogram *m = nh_scale(&A, &x, 2, 0), *d = nh_scale(&A, m, 2, 1);
    ck_assert(m->count == 6 && m->sum == 10 && pos_at(m, 1) == 4);
    ck_assert(b1[1] == 2); /* the input is not changed */
    ck_assert(nh_equal(&x, d, 0));
    ck_assert(!nh_equal(&x, m, 0));
    ck_assert(nh_equal(m, m, 1e-6));
}
END_TEST

START_TEST(detect_reset) {
    hist_span s1, s2;
    double b1[] = {1, 2}, b2[] = {2, 1};
    histogram prev = mk(0, 3, 5, 0, b1, 2, &s1), cur = mk(0, 3, 5, 0, b2, 2, &s2);
    ck_assert(nh_detect_reset(&cur, &prev)); /* a bucket went down */
    ck_assert(!nh_detect_reset(&prev, &prev));
    cur.hint = HIST_HINT_NOT_RESET;
    ck_assert(!nh_detect_reset(&cur, &prev));
    histogram less = mk(0, 2, 5, 0, b1, 2, &s2);
    ck_assert(nh_detect_reset(&less, &prev)); /* the count went down */
    histogram finer = mk(1, 3, 5, 0, b1, 2, &s2);
    ck_assert(nh_detect_reset(&finer, &prev));
}
END_TEST

START_TEST(statistics) {
    hist_span s1;
    double b1[] = {1, 2, 1};
    histogram h = mk(0, 4, 5, 0, b1, 3, &s1); /* (0.5,1]:1 (1,2]:2 (2,4]:1 */
    ck_assert(fabs(nh_quantile(0.25, &h) - 1.0) < 1e-9);
    ck_assert(fabs(nh_quantile(0.5, &h) - sqrt(2)) < 1e-9); /* exponential interpolation */
    ck_assert(isinf(nh_quantile(2, &h)) && nh_quantile(2, &h) > 0);
    ck_assert(isinf(nh_quantile(-1, &h)) && nh_quantile(-1, &h) < 0);
    ck_assert(fabs(nh_fraction(0, 1, &h) - 0.25) < 1e-9);
    ck_assert(fabs(nh_fraction(0, 4, &h) - 1) < 1e-9);
    ck_assert(nh_fraction(3, 1, &h) == 0);
    double mean = 5.0 / 4, v1 = sqrt(0.5), v2 = sqrt(2), v3 = sqrt(8);
    double want = ((v1 - mean) * (v1 - mean) + 2 * (v2 - mean) * (v2 - mean) + (v3 - mean) * (v3 - mean)) / 4;
    ck_assert(fabs(nh_stdvar(&h) - want) < 1e-12);
    histogram empty = mk(0, 0, 0, 0, NULL, 0, NULL);
    ck_assert(isnan(nh_quantile(0.5, &empty)));
}
END_TEST

START_TEST(text_form) {
    hist_span s1, s2;
    double p[] = {1, 2}, n[] = {1, 2};
    histogram h = mk(0, 20, 10, 0, p, 2, &s1);
    s2 = (hist_span){0, 2};
    h.neg_spans = &s2;
    h.nneg_spans = 1;
    h.neg = n;
    h.nneg = 2;
    h.zero_threshold = 0.001;
    h.zero_count = 2;
    buf b = BUF_INIT;
    nh_string(&h, &b);
    ck_assert_str_eq(b.data,
                     "{count:20, sum:10, [-2,-1):2, [-1,-0.5):1, [-0.001,0.001]:2, (0.5,1]:1, (1,2]:2}");
    buf_free(&b);
}
END_TEST

/* The trim operators keep the layout and the flavor, leave their input
 * alone, and trim nothing at a NaN threshold. */
START_TEST(trim) {
    hist_span s1;
    double b1[] = {1, 2, 1};
    histogram h = mk(0, 4, 5, 0, b1, 3, &s1); /* (0.5,1]:1 (1,2]:2 (2,4]:1 */
    h.hint = HIST_HINT_NOT_RESET;
    h.is_int = 1;
    histogram *o = nh_trim(&A, &h, 1.5, 1);
    ck_assert(o != NULL && o != &h);
    ck_assert_int_eq(o->hint, HIST_HINT_NOT_RESET);
    ck_assert_int_eq(o->is_int, 0);
    ck_assert_int_eq(o->npos, 3);
    ck_assert(o->pos[0] == 1 && fabs(o->pos[1] - 2 * log2(1.5)) < 1e-12 && o->pos[2] == 0);
    ck_assert(fabs(o->count - (1 + 2 * log2(1.5))) < 1e-12);
    ck_assert(b1[1] == 2 && h.count == 4 && h.sum == 5); /* the input is untouched */
    o = nh_trim(&A, &h, 1.5, 0);
    ck_assert(o->pos[0] == 0 && fabs(o->pos[1] - 2 * (1 - log2(1.5))) < 1e-12 && o->pos[2] == 1);
    o = nh_trim(&A, &h, NAN, 1);
    ck_assert(o->count == 4 && o->sum == 5 && o->pos[2] == 1 && o->is_int == 1);
    h.hint = HIST_HINT_GAUGE;
    o = nh_trim(&A, &h, 0, 1);
    ck_assert(o->count == 0 && o->sum == 0 && o->hint == HIST_HINT_GAUGE);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("nhist");
    TCase *t = tcase_create("core");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, add_same_schema);
    tcase_add_test(t, add_reduces_schema);
    tcase_add_test(t, add_widens_zero_bucket);
    tcase_add_test(t, add_custom_buckets);
    tcase_add_test(t, scale_and_equal);
    tcase_add_test(t, detect_reset);
    tcase_add_test(t, statistics);
    tcase_add_test(t, text_form);
    tcase_add_test(t, trim);
    suite_add_tcase(s, t);
    return s;
}
