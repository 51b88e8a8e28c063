/*
 * test_par.c - unit tests for a query on every core (util/parfor.c,
 * query/par.c, the sharded decode in storage/querier.c and the sharded
 * range functions in query/rangefuncs.c): over random counters and gauges
 * (resets, NaN, infinities, gaps, stale markers, a few series without the
 * metric suffix a rate expects), range and instant queries give, bit for
 * bit, the answer one thread gives - series, labels, times, value bits,
 * annotations, the sample count - and fail alike over the sample limit;
 * parfor_run runs every shard once.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"
#include "storage/storage.h"

#define KILN_TEST_MAIN
#include "query_testutil.h"
#include "testutil.h"

#define NSERIES 3000
#define NSAMPLES 120
#define T0 1700000000000LL
#define STEP 15000LL

static storage *st;
static char dir[64];

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double stale_marker(void) {
    uint64_t b = 0x7ff0000000000002ULL;
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static void setup(void) {
    st = qt_open(dir, "par");
    kiln_err err = {0};
    appender *a = storage_appender(st);
    ck_assert_ptr_nonnull(a);
    for (int j = 0; j < NSERIES; j++) {
        char inst[32], mode[16], cpu[16];
        snprintf(inst, sizeof inst, "host-%03d", j / 40);
        snprintf(mode, sizeof mode, "m%d", j % 5);
        snprintf(cpu, sizeof cpu, "%d", (j / 5) % 8);
        /* every 97th series has a name a rate warns about */
        const char *name = j % 97 == 0 ? "node_odd_gauge" : "node_cpu_seconds_total";
        label ls[] = {{LABEL_NAME, name}, {"cpu", cpu}, {"instance", inst}, {"mode", mode}};
        uint64_t ref = 0;
        double v = (double)(next_rand() % 1000);
        for (int k = 0; k < NSAMPLES; k++) {
            uint64_t r = next_rand();
            if (r % 13 == 0)
                continue; /* a gap */
            if (r % 211 == 0)
                v = 0; /* a counter reset */
            else
                v += (double)(r % 10007) / 7.0 + 1e-7 * (double)(r % 3);
            double w = v;
            if (r % 1009 == 0)
                w = NAN;
            else if (r % 1499 == 0)
                w = r % 2 ? INFINITY : -INFINITY;
            else if (r % 1201 == 0)
                w = stale_marker();
            ck_assert_msg(appender_append(a, &ref, ls, 4, T0 + k * STEP, w, &err) == 0, "append: %s",
                          err.msg);
        }
    }
    ck_assert_int_eq(appender_commit(a, &err), 0);
}

static void teardown(void) {
    qt_close(st, dir);
}

static const char *const QUERIES[] = {
    "sum by (mode) (rate(node_cpu_seconds_total[5m]))",
    "sum(rate({__name__=~\"node_.*\"}[5m]))",
    "topk(5, rate(node_cpu_seconds_total[5m]))",
    "quantile(0.9, rate(node_cpu_seconds_total[5m]))",
    "sum by (instance) (irate(node_cpu_seconds_total{mode!=\"m0\"}[5m]))",
    "avg by (instance) (increase({__name__=~\"node_.*\"}[3m]))",
    "stddev(delta(node_cpu_seconds_total[2m]))",
    "rate({__name__=~\"node_.*\"}[5m])",
    "max_over_time(node_cpu_seconds_total[4m])",
    "sum_over_time(node_cpu_seconds_total[10m]) / count_over_time(node_cpu_seconds_total[10m])",
    "quantile_over_time(0.3, node_cpu_seconds_total[5m])",
    "deriv(node_cpu_seconds_total[5m])",
    "sum(avg_over_time({__name__=~\"node_.*\"}[7m]))",
    "count(node_cpu_seconds_total)",
    "rate(node_cpu_seconds_total[5m] offset 3m)",
};

static int same_bits(double a, double b) {
    return memcmp(&a, &b, sizeof a) == 0;
}

/* The two results are the same, bit for bit. */
static void assert_same(const char *q, const query_result *x, const query_result *y) {
    ck_assert_msg(x->type == y->type, "%s: types", q);
    ck_assert_msg(x->nseries == y->nseries, "%s: %zu vs %zu series", q, x->nseries, y->nseries);
    ck_assert_msg(x->total_samples == y->total_samples, "%s: %zu vs %zu samples", q, x->total_samples,
                  y->total_samples);
    ck_assert_msg(same_bits(x->scalar, y->scalar), "%s: scalar", q);
    for (size_t i = 0; i < x->nseries; i++) {
        const query_series *a = &x->series[i], *b = &y->series[i];
        ck_assert_msg(labels_cmp(a->ls, a->nls, b->ls, b->nls) == 0, "%s: labels of series %zu", q, i);
        ck_assert_msg(a->npts == b->npts, "%s: points of series %zu", q, i);
        for (size_t j = 0; j < a->npts; j++) {
            ck_assert_msg(a->pts[j].t == b->pts[j].t, "%s: time of %zu/%zu", q, i, j);
            ck_assert_msg(same_bits(a->pts[j].v, b->pts[j].v), "%s: series %zu point %zu: %.17g vs %.17g", q,
                          i, j, a->pts[j].v, b->pts[j].v);
        }
    }
    ck_assert_uint_eq(x->nwarnings, y->nwarnings);
    ck_assert_uint_eq(x->ninfos, y->ninfos);
    for (size_t i = 0; i < x->nwarnings; i++)
        ck_assert_str_eq(x->warnings[i], y->warnings[i]);
    for (size_t i = 0; i < x->ninfos; i++)
        ck_assert_str_eq(x->infos[i], y->infos[i]);
}

/* q as a range query (or an instant one) on one thread, then on every
 * core; *code the two runs' result code (asserted equal). */
static void run_both(const query_engine *e, const char *q, int instant, int *code) {
    query_result r[2];
    kiln_err err[2];
    int rc[2];
    for (int par = 0; par < 2; par++) {
        parfor_set_width(par ? 0 : 1);
        memset(&err[par], 0, sizeof err[par]);
        int64_t start = T0 + 7 * STEP + 1234, end = T0 + (NSAMPLES - 1) * STEP;
        rc[par] = instant ? query_instant(e, st, q, end, NULL, &r[par], &err[par])
                          : query_range(e, st, q, start, end, STEP, NULL, &r[par], &err[par]);
    }
    parfor_set_width(0);
    ck_assert_msg(rc[0] == rc[1], "%s: %d vs %d (%s / %s)", q, rc[0], rc[1], err[0].msg, err[1].msg);
    if (rc[0] == 0)
        assert_same(q, &r[0], &r[1]);
    else
        ck_assert_str_eq(err[0].msg, err[1].msg);
    *code = rc[0];
    query_result_free(&r[0]);
    query_result_free(&r[1]);
}

START_TEST(test_parallel_is_bit_identical) {
    ck_assert_uint_gt(parfor_width(), 0);
    query_engine e;
    query_engine_init(&e, NULL);
    size_t with_info = 0;
    for (size_t i = 0; i < sizeof QUERIES / sizeof QUERIES[0]; i++)
        for (int instant = 0; instant < 2; instant++) {
            int code;
            run_both(&e, QUERIES[i], instant, &code);
            ck_assert_msg(code == 0, "%s failed", QUERIES[i]);
        }
    /* the rate over both names warns about the gauge's, once, as on one thread */
    query_result r;
    kiln_err err = {0};
    ck_assert_int_eq(query_range(&e, st, QUERIES[1], T0 + 600000, T0 + 1200000, STEP, NULL, &r, &err), 0);
    with_info = r.ninfos;
    query_result_free(&r);
    ck_assert_uint_eq(with_info, 1);
}
END_TEST

/* Over the sample limit: both fail, with the same words; under it, both
 * give the same answer. */
START_TEST(test_parallel_sample_limit) {
    static const size_t limits[] = {1000, 300000, 720000, 2000000};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        query_engine_opts o = query_engine_opts_default();
        o.max_samples = limits[i];
        query_engine e;
        query_engine_init(&e, &o);
        int failed = 0;
        for (size_t k = 0; k < 3; k++) {
            int code;
            run_both(&e, QUERIES[k], 0, &code);
            failed += code == KILN_ELIMIT;
        }
        if (i == 0)
            ck_assert_int_eq(failed, 3);
        if (i == sizeof limits / sizeof limits[0] - 1)
            ck_assert_int_eq(failed, 0);
    }
}
END_TEST

typedef struct counts {
    int hits[1000];
} counts;

static void count_shard(void *ctx, size_t k) {
    counts *c = ctx;
    __atomic_add_fetch(&c->hits[k], 1, __ATOMIC_RELAXED);
}

START_TEST(test_parfor_runs_every_shard_once) {
    static counts c;
    for (size_t n = 0; n <= 1000; n += 111) {
        memset(&c, 0, sizeof c);
        parfor_run(n, count_shard, &c);
        for (size_t k = 0; k < 1000; k++)
            ck_assert_int_eq(c.hits[k], k < n);
    }
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("par");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_parallel_is_bit_identical);
    tcase_add_test(tc, test_parallel_sample_limit);
    tcase_add_test(tc, test_parfor_runs_every_shard_once);
    suite_add_tcase(s, tc);
    return s;
}
