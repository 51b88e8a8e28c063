/*
 * test_histchunk.c - the histogram and float-histogram chunks: round trips,
 * the Appendable verdicts (counter resets, layout changes, new buckets),
 * recoding, stale markers, gauges, bounds on bad bytes; histogram
 * validation; and the head through the storage API (append, select).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/histchunk.h"
#include "storage/storage.h"
#include "storage/storage_int.h"
#include "storage/walrec.h"

#include "histchunk_prom.h"

#define KILN_TEST_MAIN
#include "testutil.h"

/* A histogram over spans and counts given as arrays (borrowed). */
static histogram mk(int is_int, int schema, const hist_span *ps, uint32_t nps, const double *pos,
                    uint32_t npos, const hist_span *ns, uint32_t nns, const double *neg, uint32_t nneg,
                    double zc, double sum) {
    histogram h;
    memset(&h, 0, sizeof h);
    h.is_int = (uint8_t)is_int;
    h.schema = schema;
    h.zero_threshold = 0x1p-128;
    h.zero_count = zc;
    h.sum = sum;
    h.pos_spans = (hist_span *)ps;
    h.npos_spans = nps;
    h.pos = (double *)pos;
    h.npos = npos;
    h.neg_spans = (hist_span *)ns;
    h.nneg_spans = nns;
    h.neg = (double *)neg;
    h.nneg = nneg;
    double c = zc;
    for (uint32_t i = 0; i < npos; i++)
        c += pos[i];
    for (uint32_t i = 0; i < nneg; i++)
        c += neg[i];
    h.count = c;
    return h;
}

/* Decodes every sample of c into ts[] and checks each against want[]. */
static void check_chunk(const histchunk *c, const int64_t *ts, const histogram *want, size_t n) {
    size_t len;
    const uint8_t *d = histchunk_data(c, &len);
    histiter it;
    histiter_init(&it, d, len, c->is_float);
    size_t i = 0;
    int rc;
    while ((rc = histiter_next(&it)) == 1) {
        ck_assert_uint_lt(i, n);
        ck_assert_int_eq(it.t, ts[i]);
        histogram got = it.h;
        got.hint = want[i].hint;
        ck_assert_msg(histogram_equal(&got, &want[i]), "sample %zu differs", i);
        i++;
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(i, n);
    histiter_free(&it);
}

START_TEST(test_int_round_trip) {
    hist_span ps[2] = {{-2, 3}, {4, 2}}, ns[1] = {{1, 2}};
    double p[5][5] = {
        {1, 2, 3, 4, 5}, {2, 2, 3, 9, 5}, {3, 7, 3, 9, 6}, {3, 7, 300, 9, 60000}, {4, 8, 301, 10, 60001}};
    double neg[5][2] = {{0, 1}, {1, 1}, {1, 2}, {5, 9}, {6, 9}};
    int64_t ts[5] = {1700000000000, 1700000015000, 1700000030000, 1700000046000, 1700000060000};
    histogram hs[5];
    histchunk c;
    histchunk_init(&c, 0);
    for (int i = 0; i < 5; i++) {
        hs[i] = mk(1, 3, ps, 2, p[i], 5, ns, 1, neg[i], 2, (double)i, 1.5 * i);
        ck_assert_int_eq(histchunk_appendable(&c, &hs[i]), HISTCHUNK_APPEND);
        ck_assert_int_eq(histchunk_append(&c, ts[i], &hs[i]), 0);
    }
    ck_assert_uint_eq(c.count, 5);
    check_chunk(&c, ts, hs, 5);
    /* reloading gives the same bytes and state: appending goes on alike */
    size_t len;
    const uint8_t *d = histchunk_data(&c, &len);
    histchunk r;
    ck_assert_int_eq(histchunk_load(&r, 0, d, len), 0);
    size_t rlen;
    const uint8_t *rd = histchunk_data(&r, &rlen);
    ck_assert_uint_eq(rlen, len);
    ck_assert_mem_eq(rd, d, len);
    histogram h6 = mk(1, 3, ps, 2, p[4], 5, ns, 1, neg[4], 2, 9, 99);
    ck_assert_int_eq(histchunk_append(&c, 1700000075000, &h6), 0);
    ck_assert_int_eq(histchunk_append(&r, 1700000075000, &h6), 0);
    d = histchunk_data(&c, &len);
    rd = histchunk_data(&r, &rlen);
    ck_assert_uint_eq(rlen, len);
    ck_assert_mem_eq(rd, d, len);
    histchunk_free(&r);
    histchunk_free(&c);
}
END_TEST

START_TEST(test_float_round_trip) {
    hist_span ps[1] = {{0, 3}};
    double p[3][3] = {{0.5, 1.25, 3}, {0.75, 1.25, 1e300}, {NAN, INFINITY, 0}};
    int64_t ts[3] = {-5, 10, 1000000};
    histogram hs[3];
    histchunk c;
    histchunk_init(&c, 1);
    for (int i = 0; i < 3; i++) {
        hs[i] = mk(0, -2, ps, 1, p[i], 3, NULL, 0, NULL, 0, 0.5, -2.5 * i);
        hs[i].hint = HIST_HINT_GAUGE; /* NaN and a fall: only a gauge takes them in one chunk */
        ck_assert_int_eq(histchunk_append(&c, ts[i], &hs[i]), 0);
    }
    histchunk_set_header(&c, HISTCHUNK_GAUGE);
    check_chunk(&c, ts, hs, 3);
    size_t len;
    const uint8_t *d = histchunk_data(&c, &len);
    ck_assert_uint_eq(d[2], HISTCHUNK_GAUGE);
    histiter it;
    histiter_init(&it, d, len, 1);
    while (histiter_next(&it) == 1)
        ck_assert_int_eq(it.h.hint, HIST_HINT_GAUGE);
    histiter_free(&it);
    histchunk_free(&c);
}
END_TEST

START_TEST(test_appendable_verdicts) {
    hist_span ps[1] = {{0, 2}}, wider[1] = {{0, 3}}, moved[1] = {{1, 2}};
    double a[2] = {5, 5}, fell[2] = {4, 7}, w[3] = {5, 5, 1};
    histchunk c;
    histchunk_init(&c, 0);
    histogram h = mk(1, 0, ps, 1, a, 2, NULL, 0, NULL, 0, 1, 10);
    ck_assert_int_eq(histchunk_append(&c, 1000, &h), 0);
    histogram same = h;
    ck_assert_int_eq(histchunk_appendable(&c, &same), HISTCHUNK_APPEND);
    ck_assert(histchunk_last_equal(&c, &same));
    histogram x = mk(1, 0, ps, 1, fell, 2, NULL, 0, NULL, 0, 1, 10);
    x.count = h.count + 1; /* more in all, one bucket fewer: still a reset */
    ck_assert_int_eq(histchunk_appendable(&c, &x), HISTCHUNK_CUT_RESET);
    x = mk(1, 0, ps, 1, a, 2, NULL, 0, NULL, 0, 1, 10);
    x.count = h.count - 1;
    ck_assert_int_eq(histchunk_appendable(&c, &x), HISTCHUNK_CUT_RESET);
    x = mk(1, 1, ps, 1, a, 2, NULL, 0, NULL, 0, 1, 10);
    ck_assert_int_eq(histchunk_appendable(&c, &x), HISTCHUNK_CUT);
    x = mk(1, 0, ps, 1, a, 2, NULL, 0, NULL, 0, 1, 10);
    x.zero_threshold = 0.001;
    ck_assert_int_eq(histchunk_appendable(&c, &x), HISTCHUNK_CUT);
    x = mk(1, 0, moved, 1, a, 2, NULL, 0, NULL, 0, 1, 10); /* bucket 0 gone */
    ck_assert_int_eq(histchunk_appendable(&c, &x), HISTCHUNK_CUT_RESET);
    x = mk(1, 0, ps, 1, a, 2, NULL, 0, NULL, 0, 0, 10);
    ck_assert_int_eq(histchunk_appendable(&c, &x), HISTCHUNK_CUT_RESET); /* zero bucket fell */
    x = mk(1, 0, ps, 1, a, 2, NULL, 0, NULL, 0, 1, 10);
    x.hint = HIST_HINT_GAUGE;
    ck_assert_int_eq(histchunk_appendable(&c, &x), HISTCHUNK_CUT);
    /* new bucket: recode, then the old samples read with a zero there */
    histogram nw = mk(1, 0, wider, 1, w, 3, NULL, 0, NULL, 0, 1, 11);
    ck_assert_int_eq(histchunk_appendable(&c, &nw), HISTCHUNK_RECODE);
    ck_assert_int_eq(histchunk_recode(&c, &nw), 0);
    ck_assert_int_eq(histchunk_append(&c, 2000, &nw), 0);
    double w0[3] = {5, 5, 0};
    histogram want[2] = {mk(1, 0, wider, 1, w0, 3, NULL, 0, NULL, 0, 1, 10), nw};
    int64_t ts[2] = {1000, 2000};
    check_chunk(&c, ts, want, 2);
    /* recoding gives the bytes of a chunk written on the wide layout from the start */
    histchunk d;
    histchunk_init(&d, 0);
    ck_assert_int_eq(histchunk_append(&d, 1000, &want[0]), 0);
    ck_assert_int_eq(histchunk_append(&d, 2000, &want[1]), 0);
    size_t l1, l2;
    const uint8_t *b1 = histchunk_data(&c, &l1), *b2 = histchunk_data(&d, &l2);
    ck_assert_uint_eq(l1, l2);
    ck_assert_mem_eq(b1, b2, l1);
    histchunk_free(&d);
    histchunk_free(&c);
}
END_TEST

START_TEST(test_stale_markers) {
    hist_span ps[1] = {{0, 2}};
    double a[2] = {1, 2};
    histchunk c;
    histchunk_init(&c, 0);
    histogram h = mk(1, 0, ps, 1, a, 2, NULL, 0, NULL, 0, 0, 3);
    histogram st = {0};
    st.sum = stale_nan();
    st.is_int = 1;
    ck_assert_int_eq(histchunk_append(&c, 10, &h), 0);
    ck_assert_int_eq(histchunk_appendable(&c, &st), HISTCHUNK_APPEND);
    ck_assert_int_eq(histchunk_append(&c, 20, &st), 0);
    ck_assert(histchunk_last_stale(&c));
    ck_assert_int_eq(histchunk_appendable(&c, &h), HISTCHUNK_CUT); /* only stale markers follow one */
    ck_assert_int_eq(histchunk_append(&c, 30, &st), 0);
    size_t len;
    const uint8_t *d = histchunk_data(&c, &len);
    histiter it;
    histiter_init(&it, d, len, 0);
    ck_assert_int_eq(histiter_next(&it), 1);
    ck_assert_double_eq(it.h.count, 3);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(histiter_next(&it), 1);
        ck_assert(value_is_stale(it.h.sum));
        ck_assert_uint_eq(it.h.npos, 0);
    }
    ck_assert_int_eq(histiter_next(&it), 0);
    histiter_free(&it);
    histchunk_free(&c);
}
END_TEST

START_TEST(test_gauge_union) {
    hist_span s1[1] = {{0, 2}}, s2[1] = {{1, 2}};
    double a[2] = {3, 4}, b[2] = {1, 2};
    histchunk c;
    histchunk_init(&c, 1);
    histogram g1 = mk(0, 0, s1, 1, a, 2, NULL, 0, NULL, 0, 0, 1);
    g1.hint = HIST_HINT_GAUGE;
    histogram g2 = mk(0, 0, s2, 1, b, 2, NULL, 0, NULL, 0, 0, 1);
    g2.hint = HIST_HINT_GAUGE;
    ck_assert_int_eq(histchunk_append(&c, 1, &g1), 0);
    histchunk_set_header(&c, HISTCHUNK_GAUGE);
    ck_assert_int_eq(histchunk_appendable(&c, &g2), HISTCHUNK_RECODE);
    ck_assert_int_eq(histchunk_recode(&c, &g2), 0);
    ck_assert_int_eq(histchunk_header(&c), HISTCHUNK_GAUGE);
    ck_assert_int_eq(histchunk_append(&c, 2, &g2), 0);
    hist_span u[1] = {{0, 3}};
    double ua[3] = {3, 4, 0}, ub[3] = {0, 1, 2};
    histogram want[2] = {mk(0, 0, u, 1, ua, 3, NULL, 0, NULL, 0, 0, 1),
                         mk(0, 0, u, 1, ub, 3, NULL, 0, NULL, 0, 0, 1)};
    int64_t ts[2] = {1, 2};
    check_chunk(&c, ts, want, 2);
    histchunk_free(&c);
}
END_TEST

START_TEST(test_custom_bounds) {
    hist_span ps[1] = {{0, 3}};
    double a[3] = {1, 2, 3}, bounds[2] = {0.25, 1e9};
    histogram h = mk(0, HIST_SCHEMA_CUSTOM, ps, 1, a, 3, NULL, 0, NULL, 0, 0, 2);
    h.zero_threshold = 0;
    h.custom_values = bounds;
    h.ncustom = 2;
    ck_assert_int_eq(histogram_validate(&h, NULL), 0);
    histchunk c;
    histchunk_init(&c, 1);
    ck_assert_int_eq(histchunk_append(&c, 5, &h), 0);
    int64_t ts[1] = {5};
    check_chunk(&c, ts, &h, 1);
    double other[2] = {0.5, 1e9};
    histogram o = h;
    o.custom_values = other;
    ck_assert_int_eq(histchunk_appendable(&c, &o), HISTCHUNK_CUT);
    histchunk_free(&c);
}
END_TEST

/* Every prefix and every flipped byte of a valid chunk: errors, never a read out of bounds. */
START_TEST(test_bad_bytes) {
    hist_span ps[1] = {{0, 4}};
    double p[4] = {1, 200, 3, 4000};
    histchunk c;
    histchunk_init(&c, 0);
    for (int i = 0; i < 10; i++) {
        histogram h = mk(1, 2, ps, 1, p, 4, NULL, 0, NULL, 0, i, i * 1.5);
        ck_assert_int_eq(histchunk_append(&c, i * 15000 + (i % 3), &h), 0);
        p[i % 4] += i * 7;
    }
    size_t len;
    const uint8_t *d = histchunk_data(&c, &len);
    uint8_t *copy = malloc(len);
    for (size_t cut = 0; cut < len; cut++) {
        histiter it;
        histiter_init(&it, d, cut, 0);
        int rc, n = 0;
        while ((rc = histiter_next(&it)) == 1)
            n++;
        ck_assert(rc <= 0);
        histiter_free(&it);
    }
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, d, len);
        copy[i] ^= 0x5a;
        histiter it;
        histiter_init(&it, copy, len, i % 2);
        while (histiter_next(&it) == 1) {
        }
        histiter_free(&it);
    }
    free(copy);
    histchunk_free(&c);
}
END_TEST

START_TEST(test_validate) {
    hist_span ps[2] = {{0, 2}, {-1, 1}}, ok[1] = {{0, 2}};
    double p[3] = {1, 2, 3}, neg[2] = {1, -1};
    kiln_err err = {0};
    histogram h = mk(1, 0, ps, 2, p, 3, NULL, 0, NULL, 0, 0, 1);
    ck_assert_int_eq(histogram_validate(&h, &err), KILN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "positive side: span number 2 with offset -1"));
    h = mk(1, 0, ok, 1, p, 3, NULL, 0, NULL, 0, 0, 1);
    ck_assert_int_eq(histogram_validate(&h, &err), KILN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "spans need 2 buckets, have 3 buckets"));
    h = mk(1, 0, ok, 1, p, 2, ok, 1, neg, 2, 0, 1);
    ck_assert_int_eq(histogram_validate(&h, &err), KILN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "negative side: bucket number 2"));
    h = mk(1, 0, ok, 1, p, 2, NULL, 0, NULL, 0, 2, 1);
    h.count = 4;
    ck_assert_int_eq(histogram_validate(&h, &err), KILN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "observations found in buckets, but the Count field is 4"));
    h.count = 9; /* NaN observations count without a bucket */
    ck_assert_int_eq(histogram_validate(&h, &err), 0);
    h.schema = 9;
    ck_assert_int_eq(histogram_validate(&h, &err), KILN_EINVAL);
    h.schema = 0;
    h.count = 9.5;
    ck_assert_int_eq(histogram_validate(&h, &err), KILN_EINVAL); /* integer histogram */
    h.is_int = 0;
    ck_assert_int_eq(histogram_validate(&h, &err), 0);
}
END_TEST

/* ---- through the storage API --------------------------------------------- */

/* Each test of the "head" case gets a fresh data directory. */
static char dir[256];

static void setup(void) {
    log_setup(LOG_ERROR, LOG_FORMAT_LOGFMT);
    ck_assert_int_gt(snprintf(dir, sizeof dir, "/tmp/kiln-test-histchunk-XXXXXX"), 0);
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
    ck_assert_int_eq(fileio_rm_rf(dir, NULL), 0);
}

static storage *open_st(void) {
    storage_opts o = storage_opts_default();
    storage *s = NULL;
    kiln_err err = {0};
    o.dir = dir;
    int rc = storage_open(&o, &s, &err);
    ck_assert_msg(rc == 0, "open: %s", err.msg);
    return s;
}

static series_set select_all(storage *s, const char *name) {
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "__name__", name, NULL), 0);
    querier *q;
    kiln_err err = {0};
    ck_assert_int_eq(storage_querier(s, INT64_MIN, INT64_MAX, &q, &err), 0);
    series_set set;
    select_hints h = {INT64_MIN, INT64_MAX, 0, 0};
    ck_assert_msg(querier_select(q, &m, 1, &h, &set, &err) == 0, "select: %s", err.msg);
    querier_close(q);
    matcher_free(&m);
    return set;
}

START_TEST(test_head_append_select) {
    storage *s = open_st();
    label ls[1] = {{"__name__", "lat"}};
    hist_span ps[1] = {{0, 3}};
    int64_t t0 = (time_now_ms() / 1000) * 1000 - 2 * 3600 * 1000;
    uint64_t ref = 0;
    kiln_err err = {0};
    /* 300 samples: chunks cut by count; a reset at 150; floats between 200 and 210 */
    for (int i = 0; i < 300; i++) {
        appender *a = storage_appender(s);
        double p[3] = {(double)(i % 150), 2.0 * (i % 150), 1};
        int64_t t = t0 + i * 15000;
        int rc;
        if (i >= 200 && i < 210) {
            rc = appender_append(a, &ref, ref ? NULL : ls, 1, t, i, &err);
        } else {
            histogram h = mk(1, 1, ps, 1, p, 3, NULL, 0, NULL, 0, 0, i);
            rc = appender_append_histogram(a, &ref, ref ? NULL : ls, 1, t, &h, &err);
        }
        ck_assert_msg(rc == 0, "append %d: %s", i, err.msg);
        ck_assert_int_eq(appender_commit(a, &err), 0);
    }
    /* same time: the same histogram is taken, another one is a duplicate, a float too */
    appender *a = storage_appender(s);
    double p[3] = {299 % 150, 2.0 * (299 % 150), 1};
    histogram h = mk(1, 1, ps, 1, p, 3, NULL, 0, NULL, 0, 0, 299);
    ck_assert_int_eq(appender_append_histogram(a, &ref, NULL, 0, t0 + 299 * 15000, &h, &err), 0);
    h.sum = 1;
    ck_assert_int_eq(appender_append_histogram(a, &ref, NULL, 0, t0 + 299 * 15000, &h, &err), KILN_EEXIST);
    ck_assert_int_eq(appender_append(a, &ref, NULL, 0, t0 + 299 * 15000, 1, &err), KILN_EEXIST);
    ck_assert_int_eq(appender_append_histogram(a, &ref, NULL, 0, t0 + 290 * 15000, &h, &err), KILN_EORDER);
    h.pos_spans = NULL; /* invalid */
    ck_assert_int_eq(appender_append_histogram(a, &ref, NULL, 0, t0 + 400 * 15000, &h, &err), KILN_EINVAL);
    ck_assert_int_eq(appender_commit(a, &err), 0);

    series_set set = select_all(s, "lat");
    ck_assert_uint_eq(set.n, 1);
    ck_assert_uint_eq(set.v[0].n, 10);
    ck_assert_uint_eq(set.v[0].nh, 290);
    int resets = 0;
    for (size_t i = 0; i < set.v[0].nh; i++) {
        int k = (int)(i < 200 ? i : i + 10);
        const hsample *x = &set.v[0].hs[i];
        ck_assert_int_eq(x->t, t0 + k * 15000);
        ck_assert_double_eq(x->h->pos[0], (double)(k % 150));
        ck_assert_double_eq(x->h->sum, (double)k);
        ck_assert(x->h->is_int);
        if (x->h->hint == HIST_HINT_RESET)
            resets++;
        if (k == 150)
            ck_assert_int_eq(x->h->hint, HIST_HINT_RESET);
        if (k == 210)
            ck_assert_int_eq(x->h->hint, HIST_HINT_UNKNOWN); /* after floats: nothing to compare */
        if (k == 1)
            ck_assert_int_eq(x->h->hint, HIST_HINT_NOT_RESET);
    }
    ck_assert_int_eq(resets, 1);
    series_set_free(&set);

    /* a float stale marker ends a histogram series with a histogram stale marker */
    a = storage_appender(s);
    ck_assert_int_eq(appender_append(a, &ref, NULL, 0, t0 + 300 * 15000, stale_nan(), &err), 0);
    ck_assert_int_eq(appender_commit(a, &err), 0);
    set = select_all(s, "lat");
    ck_assert_uint_eq(set.v[0].nh, 291);
    ck_assert(histogram_is_stale(set.v[0].hs[290].h));
    ck_assert_uint_eq(set.v[0].n, 10);
    series_set_free(&set);
    ck_assert_int_eq(storage_close(s, &err), 0);
}
END_TEST

static uint8_t *unhex(const char *h, size_t *n) {
    size_t l = strlen(h) / 2;
    uint8_t *b = malloc(l ? l : 1);
    for (size_t i = 0; i < l; i++) {
        unsigned x;
        ck_assert_int_eq(sscanf(h + 2 * i, "%2x", &x), 1);
        b[i] = (uint8_t)x;
    }
    *n = l;
    return b;
}

#define NPROM (sizeof prom_hist_chunks / sizeof *prom_hist_chunks)

/* Each chunk Prometheus wrote decodes, and its samples encode to the same bytes. */
START_TEST(test_prometheus_bytes) {
    for (size_t k = 0; k < NPROM; k++) {
        size_t n;
        uint8_t *d = unhex(prom_hist_chunks[k].hex, &n);
        int is_float = prom_hist_chunks[k].enc == HISTCHUNK_ENC_FLOAT;
        histiter it;
        histiter_init(&it, d, n, is_float);
        histchunk c;
        histchunk_init(&c, is_float);
        int rc, cnt = 0;
        while ((rc = histiter_next(&it)) == 1) {
            histogram h = it.h;
            ck_assert_int_eq(histchunk_append(&c, it.t, &h), 0);
            cnt++;
        }
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(cnt, d[0] << 8 | d[1]);
        histchunk_set_header(&c, d[2]);
        size_t len;
        const uint8_t *e = histchunk_data(&c, &len);
        ck_assert_msg(len == n && memcmp(e, d, n) == 0, "chunk %zu (%s) differs", k,
                      prom_hist_chunks[k].name);
        histiter_free(&it);
        histchunk_free(&c);
        free(d);
    }
}
END_TEST

typedef struct got_chunks {
    uint8_t *b[32];
    size_t len[32];
    uint8_t enc[32];
    int n;
} got_chunks;

static int collect_chunk(void *ctx, int64_t mint, int64_t maxt, uint8_t enc, const uint8_t *d, size_t len) {
    got_chunks *g = ctx;
    (void)mint;
    (void)maxt;
    ck_assert_int_lt(g->n, 32);
    g->b[g->n] = malloc(len);
    memcpy(g->b[g->n], d, len);
    g->len[g->n] = len;
    g->enc[g->n++] = enc;
    return 0;
}

/* The samples of Prometheus' chunks through kiln's head: it cuts the same
 * chunks with the same counter-reset flags (resets, a stale marker, a
 * schema change, chunks cut by count, a gauge whose buckets come and go). */
START_TEST(test_prometheus_cuts) {
    const char *names[8];
    size_t nnames = 0;
    hsample *smp[8] = {0};
    size_t nsmp[8] = {0};
    arena mem;
    arena_init(&mem, 0);
    for (size_t k = 0; k < NPROM; k++) {
        size_t j = 0;
        while (j < nnames && strcmp(names[j], prom_hist_chunks[k].name) != 0)
            j++;
        if (j == nnames)
            names[nnames++] = prom_hist_chunks[k].name;
        size_t n;
        uint8_t *d = unhex(prom_hist_chunks[k].hex, &n);
        histiter it;
        histiter_init(&it, d, n, prom_hist_chunks[k].enc == HISTCHUNK_ENC_FLOAT);
        smp[j] = realloc(smp[j], (nsmp[j] + (size_t)(d[0] << 8 | d[1])) * sizeof *smp[j]);
        while (histiter_next(&it) == 1) {
            histogram *c = histogram_copy(&mem, &it.h);
            if (c->hint != HIST_HINT_GAUGE)
                c->hint = HIST_HINT_UNKNOWN; /* as remote write sent them: kiln must find the resets */
            smp[j][nsmp[j]++] = (hsample){it.t, c};
        }
        histiter_free(&it);
        free(d);
    }
    storage *s = open_st();
    uint64_t refs[8] = {0};
    kiln_err err = {0};
    for (size_t i = 0;; i++) {
        appender *a = storage_appender(s);
        int any = 0;
        for (size_t j = 0; j < nnames; j++) {
            if (i >= nsmp[j])
                continue;
            label ls[2] = {{"__name__", names[j]}, {"job", "fixture"}};
            ck_assert_msg(appender_append_histogram(a, &refs[j], refs[j] ? NULL : ls, 2, smp[j][i].t,
                                                    smp[j][i].h, &err) == 0,
                          "%s %zu: %s", names[j], i, err.msg);
            any = 1;
        }
        ck_assert_int_eq(appender_commit(a, &err), 0);
        if (!any)
            break;
    }
    for (size_t j = 0; j < nnames; j++) {
        got_chunks g = {0};
        hseries *hs = head_series(s->h, refs[j]);
        ck_assert_ptr_nonnull(hs);
        ck_assert_int_eq(head_series_hist_chunks(s->h, hs, INT64_MIN, INT64_MAX, collect_chunk, &g), 0);
        int k = 0;
        for (size_t f = 0; f < NPROM; f++) {
            if (strcmp(prom_hist_chunks[f].name, names[j]) != 0)
                continue;
            size_t n;
            uint8_t *d = unhex(prom_hist_chunks[f].hex, &n);
            ck_assert_msg(k < g.n, "%s: kiln has %d chunks", names[j], g.n);
            ck_assert_int_eq(g.enc[k], prom_hist_chunks[f].enc);
            ck_assert_msg(g.len[k] == n && memcmp(g.b[k], d, n) == 0,
                          "%s chunk %d differs (header %02x vs %02x)", names[j], k, g.b[k][2], d[2]);
            free(d);
            k++;
        }
        ck_assert_int_eq(k, g.n);
        for (int i = 0; i < g.n; i++)
            free(g.b[i]);
        free(smp[j]);
    }
    arena_free(&mem);
    ck_assert_int_eq(storage_close(s, &err), 0);
}
END_TEST

/* Prometheus 2.42's histogram WAL records decode, and encode back to the same bytes. */
START_TEST(test_prometheus_wal_records) {
    const char *recs[2] = {prom_wal_rec_7, prom_wal_rec_8};
    for (int k = 0; k < 2; k++) {
        size_t n;
        uint8_t *d = unhex(recs[k], &n);
        arena a;
        arena_init(&a, 0);
        walrec_histogram *v;
        size_t nv;
        kiln_err err = {0};
        ck_assert_msg(walrec_decode_histograms(d, n, &a, &v, &nv, &err) == 0, "%s", err.msg);
        ck_assert_uint_gt(nv, 3);
        ck_assert_int_eq(v[0].h.schema, 3);
        ck_assert_double_eq(v[0].h.zero_threshold, 0x1p-128);
        ck_assert_int_eq(v[0].h.is_int, k == 0);
        for (size_t i = 0; i < nv; i++)
            ck_assert_int_eq(histogram_validate(&v[i].h, &err), 0);
        buf out = BUF_INIT;
        ck_assert_int_eq(walrec_encode_histograms(&out, v, nv, walrec_histogram_type(&v[0].h)), 0);
        ck_assert_uint_eq(out.len, n);
        ck_assert_mem_eq(out.data, d, n);
        buf_free(&out);
        arena_free(&a);
        free(d);
    }
}
END_TEST

/* Histograms in the WAL: a restart replays them (chunks cut alike), the
 * follower sees them. */
START_TEST(test_wal_replay_and_tail) {
    storage *s = open_st();
    label ls[1] = {{"__name__", "lat"}};
    hist_span ps[1] = {{0, 3}};
    int64_t t0 = (time_now_ms() / 1000) * 1000 - 2 * 3600 * 1000;
    uint64_t ref = 0, fref = 0;
    kiln_err err = {0};
    for (int i = 0; i < 200; i++) {
        appender *a = storage_appender(s);
        double p[3] = {(double)(i % 90), 2.0 * (i % 90), 1};
        histogram h = mk(i % 2, 1, ps, 1, p, 3, NULL, 0, NULL, 0, 0, i);
        ck_assert_int_eq(appender_append_histogram(a, &ref, ref ? NULL : ls, 1, t0 + i * 15000, &h, &err), 0);
        label fl[1] = {{"__name__", "f"}};
        ck_assert_int_eq(appender_append(a, &fref, fref ? NULL : fl, 1, t0 + i * 15000, i, &err), 0);
        ck_assert_int_eq(appender_commit(a, &err), 0);
    }
    appender *a = storage_appender(s);
    ck_assert_int_eq(appender_append(a, &ref, NULL, 0, t0 + 200 * 15000, stale_nan(), &err), 0);
    ck_assert_int_eq(appender_commit(a, &err), 0);
    series_set before = select_all(s, "lat");
    ck_assert_int_eq(storage_close(s, &err), 0);

    s = open_st();
    series_set after = select_all(s, "lat");
    ck_assert_uint_eq(after.n, 1);
    ck_assert_uint_eq(after.v[0].nh, before.v[0].nh);
    ck_assert_uint_eq(after.v[0].nh, 201);
    for (size_t i = 0; i < after.v[0].nh; i++) {
        ck_assert_int_eq(after.v[0].hs[i].t, before.v[0].hs[i].t);
        ck_assert(histogram_equal(after.v[0].hs[i].h, before.v[0].hs[i].h));
        ck_assert_int_eq(after.v[0].hs[i].h->hint, before.v[0].hs[i].h->hint);
    }
    ck_assert(histogram_is_stale(after.v[0].hs[200].h));
    series_set_free(&before);
    series_set_free(&after);
    series_set fs = select_all(s, "f");
    ck_assert_uint_eq(fs.v[0].n, 200);
    series_set_free(&fs);
    ck_assert_int_eq(storage_close(s, &err), 0);

    storage_wal_tail *t;
    ck_assert_int_eq(storage_wal_tail_open(dir, (storage_wal_pos){0, 0}, &t, &err), 0);
    storage_wal_record r;
    size_t nh = 0, nf = 0;
    int rc;
    while ((rc = storage_wal_tail_next(t, &r, &err)) == 1) {
        nf += r.nsamples;
        for (size_t i = 0; i < r.nhistograms; i++, nh++) {
            ck_assert_uint_eq(r.histograms[i].ref, ref);
            ck_assert_int_eq(r.histograms[i].t, t0 + (int64_t)nh * 15000);
        }
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(nh, 201);
    ck_assert_uint_eq(nf, 200);
    storage_wal_tail_close(t);
}
END_TEST

/* The i-th sample of series k: growing, a reset at 200, integer or float. */
static histogram *test_hist(arena *a, int k, int i) {
    hist_span ps[2] = {{-1, 2}, {3, 2}};
    int j = i < 200 ? i : i - 200;
    double p[4] = {j, 2.0 * j, 3.0 * j + k, 1};
    histogram h = mk(k == 0, 2, ps, 2, p, 4, NULL, 0, NULL, 0, j % 7 == 0 ? 0 : 1, 0.5 * i);
    h.zero_count = 0;
    h.count -= j % 7 == 0 ? 0 : 1;
    return histogram_copy(a, &h);
}

/* Checks that select returns series k's samples i in [from, to) but [dfrom, dto). */
static void check_series(storage *s, const char *name, int k, int64_t t0, int from, int to, int dfrom,
                         int dto) {
    arena a;
    arena_init(&a, 0);
    series_set set = select_all(s, name);
    ck_assert_uint_eq(set.n, 1);
    size_t w = 0;
    for (int i = from; i < to; i++) {
        if (i >= dfrom && i < dto)
            continue;
        ck_assert_msg(w < set.v[0].nh, "%s: %zu samples, want more", name, set.v[0].nh);
        const hsample *x = &set.v[0].hs[w++];
        ck_assert_int_eq(x->t, t0 + (int64_t)i * 60000);
        histogram *want = test_hist(&a, k, i);
        ck_assert_msg(histogram_equal(x->h, want), "%s sample %d differs", name, i);
    }
    ck_assert_uint_eq(set.v[0].nh, w);
    series_set_free(&set);
    arena_free(&a);
}

/* Histograms through compaction (head to block), a restart (the block read
 * back, chunks_head attached), deletion (head and block) and
 * clean_tombstones (the block rewritten). */
START_TEST(test_blocks_and_deletion) {
    storage_opts o = storage_opts_default();
    o.dir = dir;
    o.block_range_ms = 3600 * 1000;
    storage *s = NULL;
    kiln_err err = {0};
    ck_assert_int_eq(storage_open(&o, &s, &err), 0);
    int64_t t0 = (time_now_ms() / 3600000 - 5) * 3600000;
    const char *names[2] = {"hi", "hf"};
    uint64_t refs[2] = {0, 0};
    arena a;
    arena_init(&a, 0);
    int n = 290; /* about 5 h at 1 m */
    for (int i = 0; i < n; i++) {
        appender *ap = storage_appender(s);
        for (int k = 0; k < 2; k++) {
            label ls[1] = {{"__name__", names[k]}};
            ck_assert_msg(appender_append_histogram(ap, &refs[k], refs[k] ? NULL : ls, 1,
                                                    t0 + (int64_t)i * 60000, test_hist(&a, k, i), &err) == 0,
                          "%d: %s", i, err.msg);
        }
        ck_assert_int_eq(appender_commit(ap, &err), 0);
    }
    arena_free(&a);
    ck_assert_int_eq(storage_compact(s, &err), 0);
    ck_assert_uint_gt(s->nblocks, 0);
    for (int k = 0; k < 2; k++)
        check_series(s, names[k], k, t0, 0, n, 0, 0);
    ck_assert_int_eq(storage_close(s, &err), 0);

    ck_assert_int_eq(storage_open(&o, &s, &err), 0);
    ck_assert_uint_gt(s->nblocks, 0);
    for (int k = 0; k < 2; k++)
        check_series(s, names[k], k, t0, 0, n, 0, 0);
    /* samples 30..100 (in the block) and 250..260 (in the head) deleted */
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "__name__", "hf", NULL), 0);
    ck_assert_int_eq(storage_delete_series(s, &m, 1, t0 + 30 * 60000, t0 + 99 * 60000, &err), 0);
    ck_assert_int_eq(storage_delete_series(s, &m, 1, t0 + 250 * 60000, t0 + 259 * 60000, &err), 0);
    matcher_free(&m);
    series_set set = select_all(s, "hf");
    ck_assert_uint_eq(set.v[0].nh, (size_t)n - 70 - 10);
    series_set_free(&set);
    ck_assert_int_eq(storage_clean_tombstones(s, &err), 0);
    check_series(s, "hi", 0, t0, 0, n, 0, 0);
    set = select_all(s, "hf");
    ck_assert_uint_eq(set.v[0].nh, (size_t)n - 80);
    for (size_t i = 1; i < set.v[0].nh; i++)
        ck_assert_int_lt(set.v[0].hs[i - 1].t, set.v[0].hs[i].t);
    series_set_free(&set);
    ck_assert_int_eq(storage_close(s, &err), 0);
}
END_TEST

/* Custom-bucket histograms (schema -53) survive a restart: WAL record types
 * 9 and 10, bounds in the chunks. */
START_TEST(test_custom_buckets_restart) {
    storage *s = open_st();
    hist_span ps[1] = {{0, 3}};
    double bounds[2] = {0.1, 2.5};
    int64_t t0 = (time_now_ms() / 1000) * 1000 - 600000;
    uint64_t refs[2] = {0, 0};
    kiln_err err = {0};
    for (int i = 0; i < 5; i++) {
        appender *a = storage_appender(s);
        for (int k = 0; k < 2; k++) {
            double p[3] = {i, 2.0 * i, 1};
            histogram h = mk(k, HIST_SCHEMA_CUSTOM, ps, 1, p, 3, NULL, 0, NULL, 0, 0, i);
            h.zero_threshold = 0;
            h.custom_values = bounds;
            h.ncustom = 2;
            label ls[1] = {{"__name__", k ? "nhcb_int" : "nhcb_float"}};
            ck_assert_msg(
                appender_append_histogram(a, &refs[k], refs[k] ? NULL : ls, 1, t0 + i * 15000, &h, &err) == 0,
                "%s", err.msg);
        }
        ck_assert_int_eq(appender_commit(a, &err), 0);
    }
    ck_assert_int_eq(storage_close(s, &err), 0);
    s = open_st();
    for (int k = 0; k < 2; k++) {
        series_set set = select_all(s, k ? "nhcb_int" : "nhcb_float");
        ck_assert_uint_eq(set.n, 1);
        ck_assert_uint_eq(set.v[0].nh, 5);
        const histogram *h = set.v[0].hs[4].h;
        ck_assert_int_eq(h->schema, HIST_SCHEMA_CUSTOM);
        ck_assert_int_eq(h->is_int, k);
        ck_assert_uint_eq(h->ncustom, 2);
        ck_assert_double_eq(h->custom_values[1], 2.5);
        ck_assert_double_eq(h->pos[1], 8);
        series_set_free(&set);
    }
    ck_assert_int_eq(storage_close(s, &err), 0);
}
END_TEST

/* storage_hist_chunks (remote read's streamed chunks): cut at per_chunk, at a
 * counter reset, at a change of kind; each chunk's header, range and
 * samples; the callback's error stops it. */
typedef struct rr_chunk {
    int enc;
    int64_t mint, maxt;
    uint8_t hdr;
    size_t n;
    double first_count;
} rr_chunk;

typedef struct rr_chunks {
    rr_chunk v[8];
    size_t n;
    int fail_at;
} rr_chunks;

static int rr_on_chunk(void *data, int64_t mint, int64_t maxt, int enc, const uint8_t *b, size_t len) {
    rr_chunks *g = data;
    if (g->n == (size_t)g->fail_at)
        return KILN_EINVAL;
    ck_assert_uint_lt(g->n, 8);
    rr_chunk *c = &g->v[g->n++];
    c->enc = enc;
    c->mint = mint;
    c->maxt = maxt;
    c->hdr = len > 2 ? b[2] & 0xc0 : 0xff;
    histiter it;
    histiter_init(&it, b, len, enc == HISTCHUNK_ENC_FLOAT);
    int rc;
    while ((rc = histiter_next(&it)) == 1) {
        if (c->n++ == 0)
            c->first_count = it.h.count;
    }
    ck_assert_int_eq(rc, 0);
    histiter_free(&it);
    return 0;
}

START_TEST(test_storage_hist_chunks) {
    enum { N = 260 };
    static histogram hs[N];
    static double pos[N][2];
    static hsample s[N];
    hist_span sp = {0, 2};
    for (int i = 0; i < N; i++) {
        int base = i < 130 ? i : i - 130; /* a counter reset at 130 */
        pos[i][0] = base + 1;
        pos[i][1] = 2 * base;
        hs[i] = mk(i < 250, 0, &sp, 1, pos[i], 2, NULL, 0, NULL, 0, 0, base * 0.5); /* floats from 250 */
        s[i].t = 1000 * (int64_t)i;
        s[i].h = &hs[i];
    }
    rr_chunks g = {.fail_at = -1};
    ck_assert_int_eq(storage_hist_chunks(s, N, 120, rr_on_chunk, &g), 0);
    ck_assert_uint_eq(g.n, 4);
    const struct {
        int enc;
        size_t first, n;
        uint8_t hdr;
    } want[4] = {{HISTCHUNK_ENC_INT, 0, 120, HISTCHUNK_UNKNOWN},
                 {HISTCHUNK_ENC_INT, 120, 10, HISTCHUNK_NOT_RESET},
                 {HISTCHUNK_ENC_INT, 130, 120, HISTCHUNK_RESET},
                 {HISTCHUNK_ENC_FLOAT, 250, 10, HISTCHUNK_UNKNOWN}};
    for (int k = 0; k < 4; k++) {
        ck_assert_int_eq(g.v[k].enc, want[k].enc);
        ck_assert_uint_eq(g.v[k].n, want[k].n);
        ck_assert_uint_eq(g.v[k].hdr, want[k].hdr);
        ck_assert_int_eq(g.v[k].mint, s[want[k].first].t);
        ck_assert_int_eq(g.v[k].maxt, s[want[k].first + want[k].n - 1].t);
        ck_assert_double_eq(g.v[k].first_count, hs[want[k].first].count);
    }
    rr_chunks f = {.fail_at = 1};
    ck_assert_int_eq(storage_hist_chunks(s, N, 120, rr_on_chunk, &f), KILN_EINVAL);
    ck_assert_uint_eq(f.n, 1);
    rr_chunks e = {.fail_at = -1};
    ck_assert_int_eq(storage_hist_chunks(s, 0, 120, rr_on_chunk, &e), 0);
    ck_assert_uint_eq(e.n, 0);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("histchunk");
    TCase *tc = tcase_create("histchunk");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_int_round_trip);
    tcase_add_test(tc, test_float_round_trip);
    tcase_add_test(tc, test_appendable_verdicts);
    tcase_add_test(tc, test_stale_markers);
    tcase_add_test(tc, test_gauge_union);
    tcase_add_test(tc, test_custom_bounds);
    tcase_add_test(tc, test_bad_bytes);
    tcase_add_test(tc, test_validate);
    tcase_add_test(tc, test_prometheus_bytes);
    tcase_add_test(tc, test_prometheus_wal_records);
    tcase_add_test(tc, test_storage_hist_chunks);
    suite_add_tcase(s, tc);
    TCase *st = tcase_create("head");
    tcase_set_timeout(st, 60);
    tcase_add_checked_fixture(st, setup, teardown);
    tcase_add_test(st, test_head_append_select);
    tcase_add_test(st, test_prometheus_cuts);
    tcase_add_test(st, test_wal_replay_and_tail);
    tcase_add_test(st, test_blocks_and_deletion);
    tcase_add_test(st, test_custom_buckets_restart);
    suite_add_tcase(s, st);
    return s;
}
