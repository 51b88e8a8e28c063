/*
 * test_rcache.c - the range-query results cache (query/rcache.c) and the
 * storage's change hook it hears through: answers through the cache equal
 * query_range's; kept steps are reused; late samples, deletions and a
 * change reported while a query runs cut entries back; queries that
 * depend on more than their steps' past are not kept; the memory bound.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "query/query.h"
#include "query_testutil.h"

#define KILN_TEST_MAIN
#include "testutil.h"

#define SEC 1000LL
#define NOW (4000 * SEC) /* the wall clock the tests pass: steps up to 3700 s may be kept */

static void add(storage *to, const char *name, const char *inst, int64_t t, double v) {
    label ls[2] = {{LABEL_NAME, name}, {"instance", inst}};
    appender *a = storage_appender(to);
    uint64_t ref = 0;
    kiln_err err = {0};
    ck_assert_int_eq(appender_append(a, &ref, ls, 2, t, v, &err), 0);
    ck_assert_int_eq(appender_commit(a, &err), 0);
}

/* x{instance="a"} and x{instance="b"} every 15 s over [0, 3600 s]; c only up to 900 s. */
static void fill(storage *to) {
    for (int64_t t = 0; t <= 3600 * SEC; t += 15 * SEC) {
        add(to, "x", "a", t, (double)t / 1000);
        add(to, "x", "b", t, (double)(t % 7919) / 3.0);
        if (t <= 900 * SEC)
            add(to, "x", "c", t, 1.5);
    }
}

/* The fixture: a filled storage with a cache of 1 MiB attached. */
static char dir[64];
static storage *st;
static query_rcache *c;

static void setup(void) {
    st = qt_open(dir, "rcache");
    ck_assert_int_eq(query_rcache_new(1 << 20, &c), 0);
    query_rcache_attach(c, st);
    fill(st);
}

static void teardown(void) {
    query_rcache_free(c);
    qt_close(st, dir);
}

static int same_double(double a, double b) {
    return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b));
}

static void assert_same(const query_result *a, const query_result *b) {
    ck_assert_int_eq(a->type, b->type);
    ck_assert_uint_eq(a->nseries, b->nseries);
    for (size_t i = 0; i < a->nseries; i++) {
        const query_series *x = &a->series[i], *y = &b->series[i];
        ck_assert_int_eq(labels_cmp(x->ls, x->nls, y->ls, y->nls), 0);
        ck_assert_uint_eq(x->npts, y->npts);
        for (size_t j = 0; j < x->npts; j++) {
            ck_assert_int_eq(x->pts[j].t, y->pts[j].t);
            ck_assert_msg(same_double(x->pts[j].v, y->pts[j].v), "series %zu point %zu: %g != %g", i, j,
                          x->pts[j].v, y->pts[j].v);
        }
    }
    ck_assert_uint_eq(a->nwarnings, b->nwarnings);
    ck_assert_uint_eq(a->ninfos, b->ninfos);
}

/* Runs q through the cache and without it, checks they agree. */
static void check(query_rcache *rc, storage *s, const char *q, int64_t start, int64_t end, int64_t step) {
    query_engine e;
    query_engine_init(&e, NULL);
    query_result a, b;
    kiln_err err = {0};
    ck_assert_msg(query_range_cached(rc, &e, s, q, start, end, step, NULL, NOW, &a, &err) == 0, "%s: %s", q,
                  err.msg);
    ck_assert_msg(query_range(&e, s, q, start, end, step, NULL, &b, &err) == 0, "%s: %s", q, err.msg);
    assert_same(&a, &b);
    ck_assert_uint_gt(a.nseries, 0);
    query_result_free(&a);
    query_result_free(&b);
}

static query_rcache_stats stats(query_rcache *rc) {
    query_rcache_stats s;
    query_rcache_stats_get(rc, &s);
    return s;
}

START_TEST(test_refresh_reuses_steps) {
    const char *q = "sum by (instance) (delta(x[1m]))";
    check(c, st, q, 600 * SEC, 3000 * SEC, 30 * SEC);
    query_rcache_stats s = stats(c);
    ck_assert_uint_eq(s.misses, 1);
    ck_assert_uint_eq(s.entries, 1);
    /* the refresh: 30 s on; steps 630..3000 kept, 3030 evaluated */
    check(c, st, q, 630 * SEC, 3030 * SEC, 30 * SEC);
    s = stats(c);
    ck_assert_uint_eq(s.hits, 1);
    ck_assert_uint_eq(s.steps_reused, (3000 - 630) / 30 + 1);
    ck_assert_uint_eq(s.steps_evaluated, (3000 - 600) / 30 + 1 + 1);
    /* an end between steps */
    check(c, st, q, 630 * SEC, 3010 * SEC, 30 * SEC);
    check(c, st, q, 630 * SEC, 3029 * SEC, 30 * SEC);
    s = stats(c);
    /* wholly inside the kept steps: nothing evaluated */
    check(c, st, q, 900 * SEC, 1200 * SEC, 30 * SEC);
    ck_assert_uint_eq(stats(c).steps_evaluated, s.steps_evaluated);
    /* another phase or an earlier start is another entry or a miss */
    check(c, st, q, 615 * SEC, 3015 * SEC, 30 * SEC);
    check(c, st, q, 300 * SEC, 3000 * SEC, 30 * SEC);
    ck_assert_uint_eq(stats(c).misses, 3);
    ck_assert_uint_eq(stats(c).hits, 4);
    /* the same text written otherwise is the same entry */
    check(c, st, "sum  by(instance)(delta(x [1m]))", 660 * SEC, 3060 * SEC, 30 * SEC);
    ck_assert_uint_eq(stats(c).hits, 5);
}
END_TEST

/* Steps after now - lookback are never kept: a refresh evaluates them again. */
START_TEST(test_recent_steps_evaluated) {
    const char *q = "max(x)";
    check(c, st, q, 3000 * SEC, 3900 * SEC, 60 * SEC); /* kept: up to 3660 s (NOW - 5m = 3700 s) */
    uint64_t ev = stats(c).steps_evaluated;
    check(c, st, q, 3000 * SEC, 3900 * SEC, 60 * SEC);
    ck_assert_uint_eq(stats(c).steps_evaluated - ev, (3900 - 3660) / 60);
}
END_TEST

/* A sample arriving at or before kept steps, and a deletion, cut the entry
 * back; the answers stay equal to query_range's. */
START_TEST(test_late_data_and_deletion) {
    const char *q = "sum(x) + count(x)";
    check(c, st, q, 0, 3600 * SEC, 60 * SEC);
    /* above every kept step: no report */
    add(st, "x", "a", 3800 * SEC, 1);
    ck_assert_uint_eq(stats(c).invalidations, 0);
    /* c resumes at 1000 s: late for the kept steps from 1000 s on */
    add(st, "x", "c", 1000 * SEC, 100);
    ck_assert_uint_eq(stats(c).invalidations, 1);
    check(c, st, q, 0, 3600 * SEC, 60 * SEC);
    query_rcache_stats s = stats(c);
    ck_assert_uint_eq(s.hits, 1);
    ck_assert_uint_eq(s.steps_reused, 1000 / 60 + 1); /* 0 .. 960 s */
    /* a new series far back */
    add(st, "x", "d", 300 * SEC, 7);
    check(c, st, q, 0, 3600 * SEC, 60 * SEC);
    /* a deletion */
    matcher m;
    kiln_err err = {0};
    ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "instance", "b", &err), 0);
    ck_assert_int_eq(storage_delete_series(st, &m, 1, 2000 * SEC, 2500 * SEC, &err), 0);
    matcher_free(&m);
    ck_assert_uint_gt(stats(c).invalidations, s.invalidations + 1);
    check(c, st, q, 0, 3600 * SEC, 60 * SEC);
    /* a change before every kept step drops the entry */
    query_rcache_changed(c, INT64_MIN);
    ck_assert_uint_eq(stats(c).entries, 0);
    check(c, st, q, 0, 3600 * SEC, 60 * SEC);
}
END_TEST

/* Queries whose steps depend on more than the samples before them. */
START_TEST(test_not_cacheable) {
    static const char *const qs[] = {
        "x @ 1000",     "x offset -1m",    "rate(x[5m] @ end())", "max_over_time(x[10m:1m] offset -2m)",
        "x[1m:1m] @ 5", "x + 0 * start()",
    };
    query_engine e;
    query_engine_init(&e, NULL);
    for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
        query_result a, b;
        kiln_err err = {0};
        int rc = query_range_cached(c, &e, st, qs[i], 600 * SEC, 1800 * SEC, 60 * SEC, NULL, NOW, &a, &err);
        int rc2 = query_range(&e, st, qs[i], 600 * SEC, 1800 * SEC, 60 * SEC, NULL, &b, &err);
        ck_assert_int_eq(rc, rc2);
        if (rc == 0)
            assert_same(&a, &b);
        query_result_free(&a);
        query_result_free(&b);
    }
    query_rcache_stats s = stats(c);
    ck_assert_uint_eq(s.uncacheable, sizeof qs / sizeof *qs);
    ck_assert_uint_eq(s.entries, 0);
    /* offset is fine: its steps read older samples still */
    check(c, st, "x offset 5m", 600 * SEC, 1800 * SEC, 60 * SEC);
    check(c, st, "x offset 5m", 660 * SEC, 1860 * SEC, 60 * SEC);
    ck_assert_uint_eq(stats(c).hits, 1);
    /* time() is the step's time: fine too */
    check(c, st, "time() - x", 600 * SEC, 1800 * SEC, 60 * SEC);
    check(c, st, "time() - x", 660 * SEC, 1860 * SEC, 60 * SEC);
    ck_assert_uint_eq(stats(c).hits, 2);
    /* a cache of 0 bytes keeps nothing */
    query_rcache *off = NULL;
    ck_assert_int_eq(query_rcache_new(0, &off), 0);
    check(off, st, "x", 600 * SEC, 1800 * SEC, 60 * SEC);
    ck_assert_uint_eq(stats(off).entries, 0);
    query_rcache_free(off);
}
END_TEST

/* The memory bound: least recently used entries go first; an entry over a
 * quarter of the cache is not kept. */
START_TEST(test_bound_and_eviction) {
    query_rcache_free(c);
    c = NULL;
    ck_assert_int_eq(query_rcache_new(16 << 10, &c), 0);
    query_rcache_attach(c, st);
    char q[64];
    for (int i = 0; i < 40; i++) {
        snprintf(q, sizeof q, "sum(x) + %d", i);
        check(c, st, q, 0, 3600 * SEC, 60 * SEC);
        ck_assert_uint_le(stats(c).bytes, 16 << 10);
    }
    query_rcache_stats s = stats(c);
    ck_assert_uint_gt(s.evictions, 0);
    ck_assert_uint_eq(s.entries + s.evictions, 40);
    /* the newest is kept, the first is gone */
    check(c, st, "sum(x) + 39", 0, 3600 * SEC, 60 * SEC);
    ck_assert_uint_eq(stats(c).hits, 1);
    check(c, st, "sum(x) + 0", 0, 3600 * SEC, 60 * SEC);
    ck_assert_uint_eq(stats(c).hits, 1);
    /* three series of 721 steps: over a quarter of 16 KiB */
    uint64_t n = stats(c).entries;
    check(c, st, "x", 0, 3600 * SEC, 5 * SEC);
    ck_assert_uint_le(stats(c).entries, n);
    check(c, st, "x", 0, 3600 * SEC, 5 * SEC);
    ck_assert_uint_eq(stats(c).hits, 1);
}
END_TEST

/* Late series written by another thread while queries run through the
 * cache: afterwards the cached answer is query_range's (a report during a
 * query clips what it keeps). */
static void *late_writer(void *arg) {
    storage *to = arg;
    for (int i = 0; i < 60; i++) {
        char inst[16];
        snprintf(inst, sizeof inst, "w%d", i);
        for (int64_t t = (400 + (i * 37) % 3000) * SEC; t <= 3600 * SEC; t += 120 * SEC)
            add(to, "x", inst, t, i);
    }
    return NULL;
}

START_TEST(test_concurrent_late_writes) {
    query_engine e;
    query_engine_init(&e, NULL);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, late_writer, st), 0);
    for (int i = 0; i < 40; i++) {
        query_result r;
        kiln_err err = {0};
        ck_assert_int_eq(query_range_cached(c, &e, st, "sum(x)", (i % 4) * 60 * SEC, 3600 * SEC, 60 * SEC,
                                            NULL, NOW, &r, &err),
                         0);
        query_result_free(&r);
    }
    pthread_join(th, NULL);
    ck_assert_uint_gt(stats(c).invalidations, 0);
    for (int i = 0; i < 4; i++)
        check(c, st, "sum(x)", i * 60 * SEC, 3600 * SEC, 60 * SEC);
}
END_TEST

/* The storage reports only changes at or below its watch, and every
 * deletion. */
typedef struct seen {
    int n;
    int64_t mint;
} seen;

static void on_change(void *data, int64_t mint) {
    seen *s = data;
    s->n++;
    s->mint = mint;
}

START_TEST(test_storage_watch) {
    char wdir[64];
    storage *ws = qt_open(wdir, "rcache-watch");
    seen s = {0, 0};
    storage_set_change_hook(ws, on_change, &s);
    ck_assert(storage_local_only(ws));
    add(ws, "y", "a", 1000, 1);
    ck_assert_int_eq(s.n, 0); /* no watch yet */
    storage_watch_raise(ws, 5000);
    storage_watch_raise(ws, 2000); /* never lowered */
    add(ws, "y", "a", 6000, 1);
    ck_assert_int_eq(s.n, 0);
    add(ws, "y", "b", 4000, 1);
    ck_assert_int_eq(s.n, 1);
    ck_assert_int_eq(s.mint, 4000);
    add(ws, "y", "b", 5000, 1);
    ck_assert_int_eq(s.n, 2);
    /* a rejected sample changes nothing */
    label ls[2] = {{LABEL_NAME, "y"}, {"instance", "b"}};
    appender *a = storage_appender(ws);
    uint64_t ref = 0;
    kiln_err err = {0};
    ck_assert_int_ne(appender_append(a, &ref, ls, 2, 100, 1, &err), 0);
    ck_assert_int_eq(appender_commit(a, &err), 0);
    ck_assert_int_eq(s.n, 2);
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "instance", "a", &err), 0);
    ck_assert_int_eq(storage_delete_series(ws, &m, 1, 7000, 8000, &err), 0);
    matcher_free(&m);
    ck_assert_int_eq(s.n, 3);
    ck_assert_int_eq(s.mint, 7000);
    storage_set_change_hook(ws, NULL, NULL);
    qt_close(ws, wdir);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("rcache");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_refresh_reuses_steps);
    tcase_add_test(tc, test_recent_steps_evaluated);
    tcase_add_test(tc, test_late_data_and_deletion);
    tcase_add_test(tc, test_not_cacheable);
    tcase_add_test(tc, test_bound_and_eviction);
    tcase_add_test(tc, test_storage_watch);
    tcase_add_test(tc, test_concurrent_late_writes);
    suite_add_tcase(s, tc);
    return s;
}
