/*
 * test_storage.c - the storage through its public interface: appending with
 * Prometheus' rejection rules (and the future bound), selecting with every matcher type, label
 * names and values, chunk cutting, WAL replay after close and after
 * damage (flipped byte, torn tail, zeroed page), truncation of many series,
 * and concurrent appenders with readers.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/lockrank.h"
#include "storage/storage.h"
#include "storage/storage_int.h"
#include "storage/wal.h"
#include "storage/walrec.h"

#define KILN_TEST_MAIN
#include "testutil.h"

static char dir[256];

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb;
    (void)flag;
    (void)f;
    return remove(p);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/kiln-test-storage-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    log_setup(LOG_ERROR, LOG_FORMAT_LOGFMT);
}

static void teardown(void) {
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static storage *open_st(void) {
    storage_opts o = storage_opts_default();
    o.dir = dir;
    storage *s = NULL;
    kiln_err err = {0};
    ck_assert_msg(storage_open(&o, &s, &err) == 0, "open: %s", err.msg);
    return s;
}

static void close_st(storage *s) {
    kiln_err err = {0};
    ck_assert_msg(storage_close(s, &err) == 0, "close: %s", err.msg);
}

/* Appends one sample to the series ls in its own batch. */
static int put_labels(storage *s, const label *ls, size_t n, int64_t t, double v) {
    appender *a = storage_appender(s);
    uint64_t ref = 0;
    kiln_err err = {0};
    int rc = appender_append(a, &ref, ls, n, t, v, &err);
    if (rc) {
        appender_rollback(a);
        return rc;
    }
    return appender_commit(a, &err);
}

/* Appends one sample to {__name__=name, job=job, i=inst} in its own batch. */
static int put(storage *s, const char *name, const char *job, const char *inst, int64_t t, double v) {
    label ls[3] = {{"__name__", name}, {"i", inst}, {"job", job}};
    return put_labels(s, ls, 3, t, v);
}

static series_set select1(storage *s, const matcher *ms, size_t n, int64_t mint, int64_t maxt) {
    querier *q;
    kiln_err err = {0};
    ck_assert_int_eq(storage_querier(s, mint, maxt, &q, &err), 0);
    series_set set;
    select_hints h = {mint, maxt, 0, 0};
    ck_assert_msg(querier_select(q, ms, n, &h, &set, &err) == 0, "select: %s", err.msg);
    querier_close(q);
    return set;
}

/* The series matching one matcher, over all time. */
static series_set select_m(storage *s, match_type t, const char *name, const char *value) {
    matcher m;
    ck_assert_int_eq(matcher_init(&m, t, name, value, NULL), 0);
    series_set set = select1(s, &m, 1, INT64_MIN, INT64_MAX);
    matcher_free(&m);
    return set;
}

static size_t count_matching(storage *s, match_type t, const char *name, const char *value) {
    series_set set = select_m(s, t, name, value);
    size_t n = set.n;
    series_set_free(&set);
    return n;
}

START_TEST(test_append_rules) {
    storage *s = open_st();
    ck_assert_int_eq(put(s, "m", "a", "1", 0, 1), 0); /* a fresh head accepts t=0 */
    ck_assert_int_eq(put(s, "m", "a", "1", 1000, 2), 0);
    ck_assert_int_eq(put(s, "m", "a", "1", 1000, 2), 0); /* same sample again: ignored */
    label ls[3] = {{"__name__", "m"}, {"i", "1"}, {"job", "a"}};
    appender *a = storage_appender(s);
    uint64_t ref = 0;
    kiln_err err = {0};
    ck_assert_int_eq(appender_append(a, &ref, ls, 3, 500, 1, &err), KILN_EORDER);
    ck_assert_str_eq(err.msg, "out of order sample");
    ck_assert_int_eq(appender_append(a, &ref, ls, 3, 1000, 3, &err), KILN_EEXIST);
    ck_assert_str_eq(err.msg, "duplicate sample for timestamp");
    ck_assert_int_eq(appender_append(a, &ref, ls, 3, 3000, 3, &err), 0);
    ck_assert_uint_ne(ref, 0);
    /* by reference, without labels */
    ck_assert_int_eq(appender_append(a, &ref, NULL, 0, 4000, 4, &err), 0);
    uint64_t bad = 999999;
    ck_assert_int_eq(appender_append(a, &bad, NULL, 0, 4000, 4, &err), KILN_EINVAL);
    ck_assert_int_eq(appender_commit(a, &err), 0);
    /* out of bounds: older than the head's max minus half the chunk range (1h) */
    ck_assert_int_eq(put(s, "m", "b", "1", 10 * 3600 * 1000, 1), 0);
    a = storage_appender(s);
    ref = 0;
    label other[3] = {{"__name__", "m"}, {"i", "9"}, {"job", "c"}};
    ck_assert_int_eq(appender_append(a, &ref, other, 3, 10 * 3600 * 1000 - 3600 * 1000 - 1, 1, &err),
                     KILN_ERANGE);
    ck_assert_str_eq(err.msg, "out of bounds");
    /* bad labels */
    label dup[2] = {{"a", "1"}, {"a", "2"}};
    ref = 0;
    ck_assert_int_eq(appender_append(a, &ref, dup, 2, 10 * 3600 * 1000, 1, &err), KILN_EINVAL);
    appender_rollback(a);

    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "job", "a", NULL), 0);
    series_set set = select1(s, &m, 1, INT64_MIN, INT64_MAX);
    ck_assert_uint_eq(set.n, 1);
    ck_assert_uint_eq(set.v[0].n, 4);
    static const int64_t wt[] = {0, 1000, 3000, 4000};
    static const double wv[] = {1, 2, 3, 4};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(set.v[0].s[i].t, wt[i]);
        ck_assert(set.v[0].s[i].v == wv[i]);
    }
    ck_assert_str_eq(labels_get(set.v[0].ls, set.v[0].nls, "i"), "1");
    series_set_free(&set);
    matcher_free(&m);
    storage_stats st;
    storage_get_stats(s, &st);
    ck_assert_uint_eq(st.head_series, 3); /* the rolled-back series exists, without samples */
    ck_assert_uint_eq(st.samples_appended, 5);
    ck_assert_int_eq(st.head_min_time, 0);
    ck_assert_int_eq(st.head_max_time, 10 * 3600 * 1000);
    close_st(s);
}
END_TEST

START_TEST(test_matchers_and_labels) {
    storage *s = open_st();
    const char *jobs[] = {"api", "db", "web"};
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 4; i++) {
            char inst[16];
            snprintf(inst, sizeof inst, "%d", i);
            ck_assert_int_eq(put(s, "up", jobs[j], inst, 1000, 1), 0);
            ck_assert_int_eq(put(s, "req_total", jobs[j], inst, 1000, 1), 0);
        }
    ck_assert_uint_eq(count_matching(s, MATCH_EQ, "__name__", "up"), 12);
    ck_assert_uint_eq(count_matching(s, MATCH_NEQ, "job", "api"), 16);
    ck_assert_uint_eq(count_matching(s, MATCH_RE, "job", "a.*|d.*"), 16);
    ck_assert_uint_eq(count_matching(s, MATCH_RE, "job", "ap"), 0); /* anchored */
    ck_assert_uint_eq(count_matching(s, MATCH_NRE, "job", "a.*"), 16);
    ck_assert_uint_eq(count_matching(s, MATCH_EQ, "nosuch", ""), 24);
    ck_assert_uint_eq(count_matching(s, MATCH_NEQ, "job", ""), 24);
    ck_assert_uint_eq(count_matching(s, MATCH_EQ, "job", "nosuch"), 0);

    /* two matchers: intersection, and subtraction */
    matcher ms[2];
    ck_assert_int_eq(matcher_init(&ms[0], MATCH_EQ, "__name__", "up", NULL), 0);
    ck_assert_int_eq(matcher_init(&ms[1], MATCH_NRE, "i", "[01]", NULL), 0);
    series_set set = select1(s, ms, 2, 0, 2000);
    ck_assert_uint_eq(set.n, 6);
    /* sorted by labels */
    for (size_t i = 1; i < set.n; i++)
        ck_assert(labels_cmp(set.v[i - 1].ls, set.v[i - 1].nls, set.v[i].ls, set.v[i].nls) < 0);
    series_set_free(&set);
    /* a time range without data selects nothing */
    set = select1(s, ms, 2, 2000, 3000);
    ck_assert_uint_eq(set.n, 0);
    series_set_free(&set);

    querier *q;
    ck_assert_int_eq(storage_querier(s, 0, 5000, &q, NULL), 0);
    str_list l;
    ck_assert_int_eq(querier_label_names(q, NULL, 0, &l, NULL), 0);
    ck_assert_uint_eq(l.n, 3);
    ck_assert_str_eq(l.v[0], "__name__");
    ck_assert_str_eq(l.v[1], "i");
    ck_assert_str_eq(l.v[2], "job");
    str_list_free(&l);
    ck_assert_int_eq(querier_label_values(q, "job", NULL, 0, &l, NULL), 0);
    ck_assert_uint_eq(l.n, 3);
    ck_assert_str_eq(l.v[0], "api");
    ck_assert_str_eq(l.v[2], "web");
    str_list_free(&l);
    matcher jm;
    ck_assert_int_eq(matcher_init(&jm, MATCH_EQ, "job", "db", NULL), 0);
    ck_assert_int_eq(querier_label_values(q, "__name__", &jm, 1, &l, NULL), 0);
    ck_assert_uint_eq(l.n, 2);
    ck_assert_str_eq(l.v[0], "req_total");
    ck_assert_str_eq(l.v[1], "up");
    str_list_free(&l);
    ck_assert_int_eq(querier_label_values(q, "nosuch", NULL, 0, &l, NULL), 0);
    ck_assert_uint_eq(l.n, 0);
    str_list_free(&l);
    querier_close(q);
    matcher_free(&jm);
    matcher_free(&ms[0]);
    matcher_free(&ms[1]);
    close_st(s);
}
END_TEST

START_TEST(test_many_samples_and_limit) {
    storage *s = open_st();
    label ls[2] = {{"__name__", "x"}, {"k", "v"}};
    appender *a = storage_appender(s);
    uint64_t ref = 0;
    for (int i = 0; i < 10000; i++) /* 10000 x 15s: many chunks, two chunk ranges */
        ck_assert_int_eq(appender_append(a, &ref, ls, 2, (int64_t)i * 15000, i * 0.5, NULL), 0);
    ck_assert_int_eq(appender_commit(a, NULL), 0);
    storage_stats st;
    storage_get_stats(s, &st);
    ck_assert_uint_ge(st.head_chunks, 10000 / 240);
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "k", "v", NULL), 0);
    series_set set = select1(s, &m, 1, 15000 * 100, 15000 * 9000);
    ck_assert_uint_eq(set.n, 1);
    ck_assert_uint_eq(set.v[0].n, 8901);
    for (size_t i = 0; i < set.v[0].n; i++) {
        ck_assert_int_eq(set.v[0].s[i].t, (int64_t)(i + 100) * 15000);
        ck_assert(set.v[0].s[i].v == (double)(i + 100) * 0.5);
    }
    series_set_free(&set);
    querier *q;
    ck_assert_int_eq(storage_querier(s, 0, INT64_MAX, &q, NULL), 0);
    select_hints h = {0, INT64_MAX, 0, 100};
    kiln_err err = {0};
    ck_assert_int_eq(querier_select(q, &m, 1, &h, &set, &err), KILN_ELIMIT);
    ck_assert_str_eq(err.msg, "query processing would load too many samples into memory in query execution");
    querier_close(q);
    matcher_free(&m);
    close_st(s);
}
END_TEST

/* Writes a known data set; returns the samples written per series. */
static void write_known(storage *s, int nseries, int nsamples) {
    for (int k = 0; k < nsamples; k++) {
        appender *a = storage_appender(s);
        for (int i = 0; i < nseries; i++) {
            char inst[16];
            snprintf(inst, sizeof inst, "%d", i);
            label ls[3] = {{"__name__", "w"}, {"i", inst}, {"job", "j"}};
            uint64_t ref = 0;
            ck_assert_int_eq(appender_append(a, &ref, ls, 3, (int64_t)k * 1000, k + i * 0.25, NULL), 0);
        }
        ck_assert_int_eq(appender_commit(a, NULL), 0);
    }
}

/* Number of series and, per series, samples that are exactly as written. */
static size_t check_known(storage *s, int nseries, size_t *samples) {
    series_set set = select_m(s, MATCH_EQ, "__name__", "w");
    *samples = 0;
    for (size_t j = 0; j < set.n; j++) {
        int i = atoi(labels_get(set.v[j].ls, set.v[j].nls, "i"));
        ck_assert_int_lt(i, nseries);
        for (size_t k = 0; k < set.v[j].n; k++) {
            ck_assert_int_eq(set.v[j].s[k].t, (int64_t)k * 1000);
            ck_assert(set.v[j].s[k].v == k + i * 0.25);
        }
        *samples += set.v[j].n;
    }
    size_t n = set.n;
    series_set_free(&set);
    return n;
}

START_TEST(test_replay) {
    storage *s = open_st();
    write_known(s, 50, 300);
    close_st(s);
    s = open_st();
    size_t samples;
    ck_assert_uint_eq(check_known(s, 50, &samples), 50);
    ck_assert_uint_eq(samples, 50 * 300);
    /* appending continues after replay with the same references */
    ck_assert_int_eq(put(s, "w", "j", "0", 300000, 300), 0);
    ck_assert_int_eq(put(s, "w", "j", "0", 299000, 1), KILN_EORDER);
    storage_stats st;
    storage_get_stats(s, &st);
    ck_assert_uint_eq(st.head_series, 50);
    close_st(s);
    s = open_st();
    storage_get_stats(s, &st);
    ck_assert_uint_eq(st.head_series, 50);
    ck_assert_int_eq(st.head_max_time, 300000);
    close_st(s);
}
END_TEST

/*
 * A commit whose WAL write fails has created series in the head, and later
 * batches append to them (by the reference the failed batch handed out, and
 * by labels).  After a restart every acknowledged sample is there and the
 * replay met no unknown reference: with one failure, because the failed
 * commit logged its series' records after all; with two (that write failed
 * too), because the next commit logged them before its samples.
 */
START_TEST(test_commit_failure_logs_series) {
    storage *s = open_st();
    kiln_err err = {0};
    ck_assert_int_eq(put(s, "m", "a", "0", 1000, 1), 0);
    for (int fails = 1; fails <= 2; fails++) {
        char inst[16];
        snprintf(inst, sizeof inst, "%d", fails);
        label fresh[3] = {{"__name__", "m"}, {"i", inst}, {"job", "a"}};
        label known[3] = {{"__name__", "m"}, {"i", "0"}, {"job", "a"}};
        uint64_t ref = 0, ref0 = 0;
        appender *a = storage_appender(s);
        ck_assert_int_eq(appender_append(a, &ref, fresh, 3, 2000, 2, &err), 0);
        ck_assert_int_eq(appender_append(a, &ref0, known, 3, 2000, 2, &err), 0);
        storage__fail_wal_writes(s, fails);
        ck_assert_int_eq(appender_commit(a, &err), KILN_EIO);
        storage__fail_wal_writes(s, 0); /* the writes after fail no more */
        a = storage_appender(s);
        ck_assert_int_eq(appender_append(a, &ref, NULL, 0, 3000, 3, &err), 0);
        ck_assert_msg(appender_commit(a, &err) == 0, "commit: %s", err.msg);
        ck_assert_int_eq(put(s, "m", "a", inst, 4000, 4), 0);
    }
    storage_stats st;
    storage_get_stats(s, &st);
    ck_assert_uint_eq(st.head_series, 3);
    close_st(s);

    s = open_st();
    storage_get_stats(s, &st);
    ck_assert_uint_eq(st.replay_unknown_refs, 0);
    series_set set = select_m(s, MATCH_EQ, "job", "a");
    ck_assert_uint_eq(set.n, 3);
    /* i=0 has what was acknowledged only: not the failed batch's 2000 */
    ck_assert_uint_eq(set.v[0].n, 1);
    ck_assert_int_eq(set.v[0].s[0].t, 1000);
    for (size_t i = 1; i < 3; i++) {
        ck_assert_uint_eq(set.v[i].n, 2);
        ck_assert_int_eq(set.v[i].s[0].t, 3000);
        ck_assert_int_eq(set.v[i].s[1].t, 4000);
    }
    series_set_free(&set);
    close_st(s);
}
END_TEST

/* A rollback logs the series its batch created, as a failed commit does. */
START_TEST(test_rollback_logs_series) {
    storage *s = open_st();
    kiln_err err = {0};
    label ls[3] = {{"__name__", "m"}, {"i", "1"}, {"job", "r"}};
    uint64_t ref = 0;
    appender *a = storage_appender(s);
    ck_assert_int_eq(appender_append(a, &ref, ls, 3, 1000, 1, &err), 0);
    appender_rollback(a);
    a = storage_appender(s);
    ck_assert_int_eq(appender_append(a, &ref, NULL, 0, 2000, 2, &err), 0);
    ck_assert_int_eq(appender_commit(a, &err), 0);
    close_st(s);
    s = open_st();
    storage_stats st;
    storage_get_stats(s, &st);
    ck_assert_uint_eq(st.replay_unknown_refs, 0);
    ck_assert_uint_eq(count_matching(s, MATCH_EQ, "job", "r"), 1);
    close_st(s);
}
END_TEST

/* The lock order is checked: a stripe mutex, then the gc lock, aborts. */
START_TEST(test_lock_order_checked) {
    lockrank_acquire(LOCK_RANK_STRIPE, 0);
    lockrank_acquire(LOCK_RANK_GC, 1);
}
END_TEST

/* A read lock over a read lock of the same rank is allowed; over a write lock, not. */
START_TEST(test_lock_order_recursive_read) {
    lockrank_acquire(LOCK_RANK_GC, 1);
    lockrank_acquire(LOCK_RANK_GC, 1);
    lockrank_acquire(LOCK_RANK_STRIPE, 0);
    lockrank_release(LOCK_RANK_STRIPE, 0);
    lockrank_release(LOCK_RANK_GC, 1);
    lockrank_release(LOCK_RANK_GC, 1);
    lockrank_acquire(LOCK_RANK_GC, 0);
    lockrank_acquire(LOCK_RANK_GC, 1);
}
END_TEST

#ifdef KILN_LOCK_DEBUG
/* The storage's locks go through the check: compacting while holding an
 * appender (the gc read lock) takes compact_mu out of order (without the
 * check it would deadlock once truncation wants the gc write lock). */
START_TEST(test_lock_order_appender_then_compact) {
    storage *s = open_st();
    appender *a = storage_appender(s);
    kiln_err err = {0};
    ck_assert_int_eq(storage_compact(s, &err), 0); /* not reached */
    appender_rollback(a);
}
END_TEST
#endif

/* Full batches: every worker sorts parts of tens of thousands of samples
 * over a thousand series, with two workers and with three (a reference's
 * worker by a mask, then by a division). */
START_TEST(test_replay_large_batches) {
    enum { SERIES = 1000, SAMPLES = 100 };
    storage *s = open_st();
    write_known(s, SERIES, SAMPLES);
    close_st(s);
    for (int threads = 2; threads <= 3; threads++) {
        storage_opts o = storage_opts_default();
        o.dir = dir;
        o.replay_threads = threads;
        kiln_err err = {0};
        ck_assert_msg(storage_open(&o, &s, &err) == 0, "open: %s", err.msg);
        size_t samples;
        ck_assert_uint_eq(check_known(s, SERIES, &samples), SERIES);
        ck_assert_uint_eq(samples, (size_t)SERIES * SAMPLES);
        close_st(s);
    }
}
END_TEST

/* Replay builds the head appending does: the same series and chunks, in the
 * same bytes of memory (chunks are sized at the same counts), then trims
 * the open chunks to their bytes (head_fit).  Appending goes on into the
 * trimmed chunks and every sample reads back. */
START_TEST(test_replay_same_memory) {
    enum { SERIES = 200 };
    slab_stats st;
    slab_get_stats(&st);
    size_t before = st.bytes;
    storage *s = open_st();
    write_known(s, SERIES, 100);
    slab_get_stats(&st);
    size_t live = st.bytes - before;
    storage_stats ss;
    storage_get_stats(s, &ss);
    uint64_t nchunks = ss.head_chunks;
    close_st(s);
    s = open_st();
    slab_get_stats(&st);
    size_t replayed = st.bytes - before;
    ck_assert_uint_gt(replayed, SERIES * 100);
    ck_assert_uint_lt(replayed, live);
    storage_get_stats(s, &ss);
    ck_assert_uint_eq(ss.head_chunks, nchunks);
    close_st(s);
    /* the trimmed chunks take more samples, growing again */
    s = open_st();
    for (int k = 100; k < 130; k++)
        for (int i = 0; i < SERIES; i++) {
            char inst[16];
            snprintf(inst, sizeof inst, "%d", i);
            ck_assert_int_eq(put(s, "w", "j", inst, (int64_t)k * 1000, k + i * 0.25), 0);
        }
    size_t samples;
    ck_assert_uint_eq(check_known(s, SERIES, &samples), SERIES);
    ck_assert_uint_eq(samples, (size_t)SERIES * 130);
    close_st(s);
}
END_TEST

/* A new WAL in <dir>/wal, for a test to write as another writer would. */
static wal *new_wal(int compression) {
    char wdir[300];
    snprintf(wdir, sizeof wdir, "%s/wal", dir);
    ck_assert_int_eq(mkdir(wdir, 0755), 0);
    wal *w;
    kiln_err err = {0};
    wal_opts o = wal_opts_default();
    o.compression = compression;
    ck_assert_msg(wal_open(wdir, &o, &w, &err) == 0, "%s", err.msg);
    return w;
}

/* Logs one series record {__name__="h", i=inst} under ref. */
static void log_series(wal *w, uint64_t ref, const char *inst) {
    walrec_label ls[2] = {{"__name__", 8, "h", 1}, {"i", 1, inst, strlen(inst)}};
    walrec_series ser = {ref, ls, 2};
    buf b = {0};
    ck_assert_int_eq(walrec_encode_series(&b, &ser, 1), 0);
    ck_assert_int_eq(wal_log(w, b.data, b.len, NULL), 0);
    buf_free(&b);
}

static void log_samples(wal *w, const walrec_sample *x, size_t n) {
    buf b = {0};
    ck_assert_int_eq(walrec_encode_samples(&b, x, n), 0);
    ck_assert_int_eq(wal_log(w, b.data, b.len, NULL), 0);
    buf_free(&b);
}

/* The samples of {__name__="h", i=inst}: their count, and each must be t = k * 1000, v = k + base. */
static size_t check_h(storage *s, const char *inst, double base) {
    matcher m[2];
    ck_assert_int_eq(matcher_init(&m[0], MATCH_EQ, "__name__", "h", NULL), 0);
    ck_assert_int_eq(matcher_init(&m[1], MATCH_EQ, "i", inst, NULL), 0);
    series_set set = select1(s, m, 2, INT64_MIN, INT64_MAX);
    size_t n = 0;
    if (set.n == 1) {
        n = set.v[0].n;
        for (size_t k = 0; k < n; k++) {
            ck_assert_int_eq(set.v[0].s[k].t, (int64_t)k * 1000);
            ck_assert(set.v[0].s[k].v == (double)k + base);
        }
    }
    series_set_free(&set);
    matcher_free(&m[0]);
    matcher_free(&m[1]);
    return n;
}

/* Appends one sample to {__name__="h", i=inst} in its own batch. */
static int put_h(storage *s, const char *inst, int64_t t, double v) {
    label ls[2] = {{"__name__", "h"}, {"i", inst}};
    return put_labels(s, ls, 2, t, v);
}

/*
 * A series whose last chunk comes from chunks_head, with no samples after it
 * in the WAL, has no open chunk: the duplicate check compares with the value
 * that chunk ends with (kept in the emptied open chunk), and appending goes
 * on after it.
 */
START_TEST(test_duplicate_after_chunks_head) {
    storage *s = open_st();
    for (int k = 0; k < 300; k++)
        ck_assert_int_eq(put_h(s, "a", (int64_t)k * 1000, k), 0);
    close_st(s);
    char wdir[300];
    snprintf(wdir, sizeof wdir, "%s/wal", dir);
    kiln_err err = {0};
    ck_assert_int_eq(fileio_rm_rf(wdir, &err), 0);
    wal *w = new_wal(WAL_COMPRESS_NONE);
    log_series(w, 1, "a"); /* the series, none of its samples */
    ck_assert_int_eq(wal_close(w, &err), 0);
    s = open_st();
    storage_stats st;
    storage_get_stats(s, &st);
    int64_t last = st.head_max_time;
    ck_assert_int_ge(last, 100000); /* a full chunk or two in chunks_head */
    ck_assert_int_lt(last, 299000);
    int64_t k = last / 1000;
    ck_assert_int_eq(put_h(s, "a", last, (double)k), 0); /* the same sample again */
    ck_assert_int_eq(put_h(s, "a", last, (double)k + 0.5), KILN_EEXIST);
    ck_assert_int_eq(put_h(s, "a", last - 1000, (double)k - 1), KILN_EORDER);
    ck_assert_int_eq(put_h(s, "a", last + 1000, (double)k + 1), 0);
    ck_assert_uint_eq(check_h(s, "a", 0), (size_t)k + 2);
    close_st(s);
}
END_TEST

/*
 * Series records of every length modulo 8, each followed by a samples record
 * and its series' next record: replay terminates label strings in the
 * record's own bytes (the byte after the last one is padding it adds), so a
 * record ending on an 8-byte boundary must not touch the next one.
 */
START_TEST(test_replay_series_record_lengths) {
    kiln_err err = {0};
    wal *w = new_wal(WAL_COMPRESS_NONE);
    char inst[17][20];
    for (int k = 1; k <= 16; k++) {
        snprintf(inst[k], sizeof inst[k], "%.*s", k, "abcdefghijklmnopq");
        log_series(w, (uint64_t)k, inst[k]);
        walrec_sample x[3];
        for (int j = 0; j < 3; j++)
            x[j] = (walrec_sample){(uint64_t)k, (int64_t)j * 1000, j + k};
        log_samples(w, x, 3);
    }
    ck_assert_int_eq(wal_close(w, &err), 0);
    storage *s = open_st();
    for (int k = 1; k <= 16; k++)
        ck_assert_uint_eq(check_h(s, inst[k], k), 3);
    storage_stats st;
    storage_get_stats(s, &st);
    ck_assert_uint_eq(st.head_series, 16);
    close_st(s);
}
END_TEST

/*
 * A WAL written record by record, as another writer (Prometheus) may leave
 * it: dense and very sparse references (the replay sorts each by a different
 * method), the same labels logged again under a second reference (one beyond
 * 2^32 too), samples of a reference never logged, and samples logged before
 * their series (both dropped, as Prometheus does).  Many records, so the replay's batches turn.
 */
START_TEST(test_replay_foreign_refs) {
    char wd[300];
    snprintf(wd, sizeof wd, "%s/wal", dir);
    ck_assert_int_eq(mkdir(wd, 0777), 0);
    wal_opts wo = wal_opts_default();
    wal *w;
    ck_assert_int_eq(wal_open(wd, &wo, &w, NULL), 0);
    enum { DENSE = 300, ROUNDS = 1200 };
    const uint64_t sparse[3] = {4000000000ULL, 70000, 2000000000ULL};
    char inst[32];
    for (int i = 0; i < DENSE; i++) {
        snprintf(inst, sizeof inst, "d%d", i);
        log_series(w, (uint64_t)i + 1, inst);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(inst, sizeof inst, "s%d", i);
        log_series(w, sparse[i], inst);
    }
    log_series(w, 7000, "d7"); /* the labels of ref 8 again, among many new series */
    walrec_sample *x = calloc(DENSE + 8, sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (int k = 0; k < ROUNDS; k++) {
        size_t n = 0;
        /* descending references within a record, as nothing promises an order */
        for (int i = DENSE - 1; i >= 0; i--)
            x[n++] = (walrec_sample){(uint64_t)i + 1, (int64_t)k * 1000, k + i * 0.5};
        for (int i = 0; i < 3; i++)
            x[n++] = (walrec_sample){sparse[i], (int64_t)k * 1000, k + 1000.0 * (i + 1)};
        x[n++] = (walrec_sample){999999, (int64_t)k * 1000, 1}; /* never logged */
        if (k < 600) {                                          /* before their series records */
            x[n++] = (walrec_sample){5000, (int64_t)k * 1000, 7};
            x[n++] = (walrec_sample){1ULL << 33, (int64_t)k * 1000, 7};
        }
        log_samples(w, x, n);
        if (k == 599) {
            log_series(w, 5000, "late");
            log_series(w, 6000, "d3");       /* the labels of ref 4 again */
            log_series(w, 1ULL << 33, "d5"); /* and of ref 6, under a reference beyond 2^32 */
        }
    }
    /* samples logged under the second references of d3, d5 and d7 land on them */
    walrec_sample al[3] = {{6000, (int64_t)ROUNDS * 1000, ROUNDS + 3 * 0.5},
                           {1ULL << 33, (int64_t)ROUNDS * 1000, ROUNDS + 5 * 0.5},
                           {7000, (int64_t)ROUNDS * 1000, ROUNDS + 7 * 0.5}};
    log_samples(w, al, 3);
    ck_assert_int_eq(wal_close(w, NULL), 0);
    free(x);

    /* by the default number of workers, then by three (not a power of two), WAL only */
    for (int threads = 0; threads <= 3; threads += 3) {
        char ch[300];
        snprintf(ch, sizeof ch, "%s/chunks_head", dir);
        nftw(ch, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        storage_opts o = storage_opts_default();
        o.dir = dir;
        o.replay_threads = threads;
        storage *s = NULL;
        ck_assert_int_eq(storage_open(&o, &s, NULL), 0);
        for (int i = 0; i < DENSE; i++) {
            snprintf(inst, sizeof inst, "d%d", i);
            ck_assert_uint_eq(check_h(s, inst, i * 0.5), i == 3 || i == 5 || i == 7 ? ROUNDS + 1 : ROUNDS);
        }
        for (int i = 0; i < 3; i++) {
            snprintf(inst, sizeof inst, "s%d", i);
            ck_assert_uint_eq(check_h(s, inst, 1000.0 * (i + 1)), ROUNDS);
        }
        ck_assert_uint_eq(check_h(s, "late", 0), 0);
        storage_stats st;
        storage_get_stats(s, &st);
        ck_assert_uint_eq(st.head_series, DENSE + 4);
        close_st(s);
    }
}
END_TEST

/* zstd-compressed WAL, and a switch of compression between runs. */
START_TEST(test_replay_zstd_and_mixed) {
    storage_opts o = storage_opts_default();
    o.dir = dir;
    o.wal_compression = STORAGE_WAL_ZSTD;
    storage *s = NULL;
    ck_assert_int_eq(storage_open(&o, &s, NULL), 0);
    write_known(s, 30, 200);
    close_st(s);
    s = open_st(); /* snappy from here on */
    size_t samples;
    ck_assert_uint_eq(check_known(s, 30, &samples), 30);
    ck_assert_uint_eq(samples, 30 * 200);
    close_st(s);
    o.wal_compression = STORAGE_WAL_NONE;
    ck_assert_int_eq(storage_open(&o, &s, NULL), 0);
    ck_assert_uint_eq(check_known(s, 30, &samples), 30);
    ck_assert_uint_eq(samples, 30 * 200);
    close_st(s);
}
END_TEST

/* The path of the last WAL segment and its size. */
static void last_segment(char *path, size_t n, off_t *size) {
    char wd[300];
    snprintf(wd, sizeof wd, "%s/wal", dir);
    DIR *d = opendir(wd);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int best = -1;
    while ((e = readdir(d)))
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && atoi(e->d_name) > best) {
            char p[600];
            snprintf(p, sizeof p, "%s/%s", wd, e->d_name);
            struct stat sb;
            if (stat(p, &sb) == 0 && sb.st_size > 0)
                best = atoi(e->d_name);
        }
    closedir(d);
    ck_assert_int_ge(best, 0);
    snprintf(path, n, "%s/%08d", wd, best);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    *size = sb.st_size;
}

enum { DAMAGE_FLIP, DAMAGE_TRUNCATE, DAMAGE_ZERO_PAGE };

/* A damaged chunks_head file costs nothing: the WAL has its samples. */
START_TEST(test_damaged_head_chunks) {
    storage *s = open_st();
    write_known(s, 10, 1000);
    close_st(s);
    char p[400];
    snprintf(p, sizeof p, "%s/chunks_head/000001", dir);
    struct stat sb;
    ck_assert_int_eq(stat(p, &sb), 0);
    ck_assert_int_gt(sb.st_size, 1000);
    int fd = open(p, O_RDWR);
    unsigned char c;
    ck_assert_int_eq(pread(fd, &c, 1, sb.st_size / 3), 1);
    c ^= 0xff;
    ck_assert_int_eq(pwrite(fd, &c, 1, sb.st_size / 3), 1);
    close(fd);
    s = open_st();
    size_t samples;
    ck_assert_uint_eq(check_known(s, 10, &samples), 10);
    ck_assert_uint_eq(samples, 10 * 1000);
    close_st(s);
    /* and a restart after that still has everything */
    s = open_st();
    ck_assert_uint_eq(check_known(s, 10, &samples), 10);
    ck_assert_uint_eq(samples, 10 * 1000);
    close_st(s);
}
END_TEST

static void damage_test(int how) {
    storage *s = open_st();
    write_known(s, 20, 2000); /* a few pages */
    close_st(s);
    char seg[700];
    off_t size;
    last_segment(seg, sizeof seg, &size);
    ck_assert_int_gt(size, 3 * 32768);
    int fd = open(seg, O_RDWR);
    ck_assert_int_ge(fd, 0);
    off_t at = size / 2;
    if (how == DAMAGE_FLIP) {
        unsigned char c;
        ck_assert_int_eq(pread(fd, &c, 1, at), 1);
        c ^= 0x5a;
        ck_assert_int_eq(pwrite(fd, &c, 1, at), 1);
    } else if (how == DAMAGE_TRUNCATE) {
        ck_assert_int_eq(ftruncate(fd, at + 3), 0);
    } else {
        static char zero[32768];
        ck_assert_int_eq(pwrite(fd, zero, sizeof zero, (at / 32768) * 32768), 32768);
    }
    close(fd);
    s = open_st();
    /* everything before the damage is there, in order, exact; nothing after it */
    size_t samples;
    size_t nser = check_known(s, 20, &samples);
    ck_assert_uint_eq(nser, 20);
    ck_assert_uint_gt(samples, 20 * 500);
    ck_assert_uint_lt(samples, 20 * 2000);
    /* kiln goes on: append after the damage point, reopen, still all there */
    close_st(s);
    s = open_st();
    size_t samples2;
    check_known(s, 20, &samples2);
    ck_assert_uint_eq(samples2, samples);
    close_st(s);
}

START_TEST(test_replay_flipped_byte) {
    damage_test(DAMAGE_FLIP);
}
END_TEST
START_TEST(test_replay_torn_tail) {
    damage_test(DAMAGE_TRUNCATE);
}
END_TEST
START_TEST(test_replay_zeroed_page) {
    damage_test(DAMAGE_ZERO_PAGE);
}
END_TEST

START_TEST(test_truncate_and_checkpoint) {
    storage *s = open_st();
    /* "old" has samples at 0..999s only; "live" from 0 to 2999s */
    for (int k = 0; k < 3000; k++) {
        if (k < 1000)
            ck_assert_int_eq(put(s, "m", "old", "1", (int64_t)k * 1000, k), 0);
        ck_assert_int_eq(put(s, "m", "live", "1", (int64_t)k * 1000, k), 0);
    }
    kiln_err err = {0};
    ck_assert_msg(storage_truncate(s, 2000 * 1000, &err) == 0, "%s", err.msg);
    storage_stats st;
    storage_get_stats(s, &st);
    ck_assert_uint_eq(st.head_series, 1);
    ck_assert_uint_eq(count_matching(s, MATCH_EQ, "job", "old"), 0);
    ck_assert_uint_eq(count_matching(s, MATCH_EQ, "job", "live"), 1);
    querier *q;
    ck_assert_int_eq(storage_querier(s, INT64_MIN, INT64_MAX, &q, NULL), 0);
    str_list l;
    ck_assert_int_eq(querier_label_values(q, "job", NULL, 0, &l, NULL), 0);
    ck_assert_uint_eq(l.n, 1);
    ck_assert_str_eq(l.v[0], "live");
    str_list_free(&l);
    querier_close(q);
    /* whole chunks before the truncation point are gone; what is left starts at or after
     * the first chunk that reaches it */
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "job", "live", NULL), 0);
    series_set set = select1(s, &m, 1, INT64_MIN, INT64_MAX);
    ck_assert_uint_eq(set.n, 1);
    ck_assert_int_le(set.v[0].s[0].t, 2000 * 1000);
    ck_assert_int_gt(set.v[0].s[0].t, 1000 * 1000);
    ck_assert_int_eq(set.v[0].s[set.v[0].n - 1].t, 2999 * 1000);
    size_t kept = set.v[0].n;
    series_set_free(&set);
    /* appends before the truncation point are out of bounds */
    ck_assert_int_eq(put(s, "m", "new", "1", 1999 * 1000, 1), KILN_ERANGE);
    ck_assert_int_eq(put(s, "m", "live", "1", 3000 * 1000, 3000), 0);
    close_st(s);
    char cp[400];
    snprintf(cp, sizeof cp, "%s/wal", dir);
    DIR *d = opendir(cp);
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        found |= strncmp(e->d_name, "checkpoint.", 11) == 0;
    closedir(d);
    ck_assert_msg(found, "no WAL checkpoint");
    /* after a restart: the live series with its samples from the checkpoint on */
    s = open_st();
    storage_get_stats(s, &st);
    ck_assert_uint_eq(st.head_series, 2); /* live, and "new" (created before its sample was refused) */
    ck_assert_uint_eq(count_matching(s, MATCH_EQ, "job", "old"), 0);
    set = select1(s, &m, 1, 2000 * 1000, INT64_MAX);
    ck_assert_uint_eq(set.n, 1);
    ck_assert_uint_eq(set.v[0].n, 1001);
    ck_assert_int_ge((int64_t)kept, 1000);
    series_set_free(&set);
    matcher_free(&m);
    close_st(s);
}
END_TEST

/* Appends (t, v) to {__name__="m", i=<i>, job=<job>} by labels (ref 0) in a;
 * returns the series' reference. */
static uint64_t put_i(appender *a, int i, const char *job, int64_t t, double v) {
    char inst[16];
    snprintf(inst, sizeof inst, "%d", i);
    label ls[3] = {{"__name__", "m"}, {"i", inst}, {"job", job}};
    uint64_t ref = 0;
    kiln_err err = {0};
    ck_assert_msg(appender_append(a, &ref, ls, 3, t, v, &err) == 0, "series %d: %s", i, err.msg);
    return ref;
}

static void commit_ok(appender *a) {
    kiln_err err = {0};
    ck_assert_msg(appender_commit(a, &err) == 0, "commit: %s", err.msg);
}

/*
 * Truncation removing every third of many series: about 700 a map shard, so
 * its table is grown several times and near full, with long probe clusters
 * for the removals to cut.  Every survivor must still be found by its labels
 * (its own reference back, no second series made), the removed come back as
 * new series, and a further round by labels finds all of them again.
 */
START_TEST(test_truncate_many_series) {
    enum { N = 45000, MORE = 3000 };
    const int64_t old_t = 1000, cut = 5000 * 1000, new_t = 10000 * 1000;
    uint64_t *refs = calloc(N + MORE, sizeof *refs);
    ck_assert_ptr_nonnull(refs);
    storage *s = open_st();
    appender *a = storage_appender(s);
    for (int i = 0; i < N; i++)
        refs[i] = put_i(a, i, i % 3 ? "kept" : "gone", old_t, i);
    commit_ok(a);
    a = storage_appender(s);
    for (int i = 0; i < N; i++)
        if (i % 3)
            ck_assert_uint_eq(put_i(a, i, "kept", new_t, i), refs[i]);
    commit_ok(a);

    kiln_err err = {0};
    ck_assert_msg(storage_truncate(s, cut, &err) == 0, "%s", err.msg);
    storage_stats st;
    storage_get_stats(s, &st);
    ck_assert_uint_eq(st.head_series, N - N / 3);
    ck_assert_uint_eq(count_matching(s, MATCH_EQ, "job", "gone"), 0);

    uint64_t maxref = 0;
    for (int i = 0; i < N; i++)
        if (refs[i] > maxref)
            maxref = refs[i];
    a = storage_appender(s);
    for (int i = 0; i < N; i++)
        if (i % 3)
            ck_assert_uint_eq(put_i(a, i, "kept", new_t + 1000, i), refs[i]);
    commit_ok(a);
    storage_get_stats(s, &st);
    ck_assert_uint_eq(st.head_series, N - N / 3);

    a = storage_appender(s);
    for (int i = 0; i < N + MORE; i++)
        if (i % 3 == 0 || i >= N) {
            refs[i] = put_i(a, i, i % 3 ? "kept" : "gone", new_t + 1000, i);
            ck_assert_uint_gt(refs[i], maxref);
        }
    commit_ok(a);
    storage_get_stats(s, &st);
    ck_assert_uint_eq(st.head_series, N + MORE);

    a = storage_appender(s);
    for (int i = 0; i < N + MORE; i++)
        ck_assert_uint_eq(put_i(a, i, i % 3 ? "kept" : "gone", new_t + 2000, i), refs[i]);
    commit_ok(a);
    storage_get_stats(s, &st);
    ck_assert_uint_eq(st.head_series, N + MORE);
    ck_assert_uint_eq(count_matching(s, MATCH_EQ, "job", "gone"), (N + MORE + 2) / 3);
    ck_assert_uint_eq(count_matching(s, MATCH_EQ, "job", "kept"), N + MORE - (N + MORE + 2) / 3);
    close_st(s);
    free(refs);
}
END_TEST

START_TEST(test_compaction_blocks) {
    storage *s = open_st();
    /* 20 series x 5 h at 60 s, in the past: the head spans more than 1.5 x 2 h */
    const int64_t h = 3600 * 1000, t0 = 1700000000000LL / (2 * h) * (2 * h);
    for (int k = 0; k < 300; k++) {
        appender *a = storage_appender(s);
        for (int i = 0; i < 20; i++) {
            char inst[16];
            snprintf(inst, sizeof inst, "%02d", i);
            label ls[3] = {{"__name__", "m"}, {"i", inst}, {"job", i < 10 ? "a" : "b"}};
            uint64_t ref = 0;
            ck_assert_int_eq(appender_append(a, &ref, ls, 3, t0 + k * 60000, i * 1000.0 + k, NULL), 0);
        }
        ck_assert_int_eq(appender_commit(a, NULL), 0);
    }
    kiln_err err = {0};
    ck_assert_msg(storage_compact(s, &err) == 0, "%s", err.msg);
    /* one block [t0, t0+2h); the head keeps 2 h..5 h (not more than 1.5 ranges) */
    storage_stats st;
    storage_get_stats(s, &st);
    ck_assert_int_ge(st.head_min_time, t0 + 2 * h);
    int blocks = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        blocks += strlen(e->d_name) == 26;
    closedir(d);
    ck_assert_int_eq(blocks, 1);
    /* every sample through blocks and head together */
    for (int pass = 0; pass < 2; pass++) {
        matcher m;
        ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "job", "b", NULL), 0);
        series_set set = select1(s, &m, 1, INT64_MIN, INT64_MAX);
        ck_assert_uint_eq(set.n, 10);
        for (size_t i = 0; i < set.n; i++) {
            ck_assert_uint_eq(set.v[i].n, 300);
            for (size_t k = 0; k < set.v[i].n; k++) {
                ck_assert(set.v[i].s[k].t == t0 + (int64_t)k * 60000);
                ck_assert(set.v[i].s[k].v == (10.0 + (double)i) * 1000.0 + (double)k);
            }
        }
        series_set_free(&set);
        /* a range inside the block only */
        set = select1(s, &m, 1, t0 + 600000, t0 + 1200000);
        ck_assert_uint_eq(set.n, 10);
        ck_assert_uint_eq(set.v[0].n, 11);
        series_set_free(&set);
        matcher_free(&m);
        querier *q;
        ck_assert_int_eq(storage_querier(s, INT64_MIN, INT64_MAX, &q, NULL), 0);
        str_list l;
        ck_assert_int_eq(querier_label_values(q, "i", NULL, 0, &l, NULL), 0);
        ck_assert_uint_eq(l.n, 20);
        str_list_free(&l);
        querier_close(q);
        /* appends into the block's time are out of bounds */
        ck_assert_int_eq(put(s, "m", "a", "00", t0 + 60000, 1), KILN_ERANGE);
        /* and all of it again after a restart */
        close_st(s);
        s = open_st();
    }
    close_st(s);
}
END_TEST

START_TEST(test_size_retention) {
    storage_opts o = storage_opts_default();
    o.dir = dir;
    o.retention_bytes = 1; /* every block but the newest is over it */
    storage *s = NULL;
    kiln_err err = {0};
    ck_assert_msg(storage_open(&o, &s, &err) == 0, "%s", err.msg);
    const int64_t h = 3600 * 1000, t0 = 1700000000000LL / (2 * h) * (2 * h);
    for (int k = 0; k < 8 * 60; k++)
        ck_assert_int_eq(put(s, "m", "a", "1", t0 + k * 60000, k), 0);
    ck_assert_msg(storage_compact(s, &err) == 0, "%s", err.msg);
    int blocks = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        blocks += strlen(e->d_name) == 26;
    closedir(d);
    ck_assert_int_eq(blocks, 1);
    /* what is left: the newest block (4 h..6 h) and the head (6 h..8 h) */
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "job", "a", NULL), 0);
    series_set set = select1(s, &m, 1, INT64_MIN, INT64_MAX);
    ck_assert_uint_eq(set.n, 1);
    ck_assert(set.v[0].s[0].t == t0 + 4 * h);
    ck_assert_uint_eq(set.v[0].n, 4 * 60);
    series_set_free(&set);
    matcher_free(&m);
    close_st(s);
}
END_TEST

START_TEST(test_leveled_compaction) {
    storage *s = open_st();
    /* 20 h of 6 series at 60 s: 2 h blocks, then merged into 6 h and 18 h ones */
    const int64_t h = 3600 * 1000, t0 = 1700000000000LL / (54 * h) * (54 * h);
    for (int k = 0; k < 20 * 60; k++) {
        appender *a = storage_appender(s);
        for (int i = 0; i < 6; i++) {
            char inst[16];
            snprintf(inst, sizeof inst, "%d", i);
            label ls[3] = {{"__name__", "m"}, {"i", inst}, {"job", "lv"}};
            uint64_t ref = 0;
            ck_assert_int_eq(appender_append(a, &ref, ls, 3, t0 + k * 60000, i * 100000.0 + k, NULL), 0);
        }
        ck_assert_int_eq(appender_commit(a, NULL), 0);
    }
    kiln_err err = {0};
    ck_assert_msg(storage_compact(s, &err) == 0, "%s", err.msg);
    int blocks = 0, merged = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strlen(e->d_name) != 26)
            continue;
        blocks++;
        char p[600], js[4096];
        snprintf(p, sizeof p, "%s/%s/meta.json", dir, e->d_name);
        FILE *f = fopen(p, "r");
        size_t n = fread(js, 1, sizeof js - 1, f);
        fclose(f);
        js[n] = 0;
        merged += strstr(js, "\"parents\"") != NULL;
    }
    closedir(d);
    /* 9 head blocks (0..18 h) became fewer, some of them merged ones */
    ck_assert_int_lt(blocks, 9);
    ck_assert_int_ge(merged, 1);
    for (int pass = 0; pass < 2; pass++) {
        matcher m;
        ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "job", "lv", NULL), 0);
        series_set set = select1(s, &m, 1, INT64_MIN, INT64_MAX);
        ck_assert_uint_eq(set.n, 6);
        for (size_t i = 0; i < set.n; i++) {
            ck_assert_uint_eq(set.v[i].n, 20 * 60);
            for (size_t k = 0; k < set.v[i].n; k++) {
                ck_assert(set.v[i].s[k].t == t0 + (int64_t)k * 60000);
                ck_assert(set.v[i].s[k].v == (double)i * 100000.0 + (double)k);
            }
        }
        series_set_free(&set);
        matcher_free(&m);
        close_st(s);
        s = open_st();
    }
    close_st(s);
}
END_TEST

typedef struct worker_arg {
    storage *s;
    int id;
    int failures;
} worker_arg;

static void *writer(void *p) {
    worker_arg *w = p;
    char job[16];
    snprintf(job, sizeof job, "w%d", w->id);
    for (int k = 0; k < 200; k++) {
        appender *a = storage_appender(w->s);
        for (int i = 0; i < 50; i++) {
            char inst[16];
            snprintf(inst, sizeof inst, "%d", i);
            label ls[3] = {{"__name__", "c"}, {"i", inst}, {"job", job}};
            uint64_t ref = 0;
            if (appender_append(a, &ref, ls, 3, (int64_t)k * 1000, k, NULL) != 0)
                w->failures++;
        }
        if (appender_commit(a, NULL) != 0)
            w->failures++;
    }
    return NULL;
}

static void *reader(void *p) {
    worker_arg *w = p;
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "__name__", "c", NULL), 0);
    for (int k = 0; k < 100; k++) {
        querier *q;
        ck_assert_int_eq(storage_querier(w->s, INT64_MIN, INT64_MAX, &q, NULL), 0);
        series_set set;
        select_hints h = {INT64_MIN, INT64_MAX, 0, 0};
        if (querier_select(q, &m, 1, &h, &set, NULL) != 0)
            w->failures++;
        /* each series' samples are a prefix 0..n-1 of what is written */
        for (size_t i = 0; i < set.n; i++)
            for (size_t j = 0; j < set.v[i].n; j++)
                if (set.v[i].s[j].t != (int64_t)j * 1000 || set.v[i].s[j].v != (double)j)
                    w->failures++;
        series_set_free(&set);
        querier_close(q);
    }
    matcher_free(&m);
    return NULL;
}

static void *truncator(void *p) {
    worker_arg *w = p;
    /* nothing is old enough to go, but the locks, the WAL checkpoint and
     * segment switches run while the others append and read */
    for (int k = 0; k < 5; k++) {
        kiln_err err;
        if (storage_truncate(w->s, -1000, &err) != 0)
            w->failures++;
        usleep(2000);
    }
    return NULL;
}

START_TEST(test_concurrent) {
    storage *s = open_st();
    pthread_t th[7];
    worker_arg args[7];
    for (int i = 0; i < 7; i++) {
        args[i] = (worker_arg){s, i, 0};
        pthread_create(&th[i], NULL, i < 4 ? writer : i < 6 ? reader : truncator, &args[i]);
    }
    for (int i = 0; i < 7; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(args[i].failures, 0);
    }
    storage_stats st;
    storage_get_stats(s, &st);
    ck_assert_uint_eq(st.head_series, 200);
    ck_assert_uint_eq(st.samples_appended, 4 * 200 * 50);
    close_st(s);
}
END_TEST

/* A sample more than STORAGE_MAX_FUTURE_MS ahead of the clock is out of
 * bounds: refused, counted, and the head's range stays where it was, so
 * current samples still go in (issue 16, finding 6). */
START_TEST(test_append_far_future_refused) {
    storage *s = open_st();
    int64_t now = time_now_ms();
    int64_t far = now + 100LL * 365 * 86400 * 1000;
    ck_assert_int_eq(put(s, "m", "a", "1", now - 60000, 1), 0);
    label ls[3] = {{"__name__", "m"}, {"i", "1"}, {"job", "a"}};
    appender *a = storage_appender(s);
    uint64_t ref = 0;
    kiln_err err = {0};
    ck_assert_int_eq(appender_append(a, &ref, ls, 3, far, 2, &err), KILN_ERANGE);
    ck_assert_msg(strstr(err.msg, "out of bounds") && strstr(err.msg, "future"), "%s", err.msg);
    ck_assert_int_eq(appender_append(a, &ref, ls, 3, now - 30000, 3, &err), 0);
    ck_assert_int_eq(appender_commit(a, &err), 0);
    /* a sample within the bound is taken (clocks differ a little) */
    ck_assert_int_eq(put(s, "m", "a", "2", now + STORAGE_MAX_FUTURE_MS - 60000, 1), 0);
    ck_assert_int_eq(put(s, "m", "a", "3", far, 1), KILN_ERANGE);
    storage_stats st;
    storage_get_stats(s, &st);
    ck_assert_int_lt(st.head_max_time, now + STORAGE_MAX_FUTURE_MS);
    /* the current time still goes in, on old and new series */
    ck_assert_int_eq(put(s, "m", "a", "1", now, 4), 0);
    ck_assert_int_eq(put(s, "m", "a", "4", now, 4), 0);
    ck_assert_uint_eq(count_matching(s, MATCH_EQ, "i", "3"), 0); /* refused before its series was made */
    close_st(s);

    /* and after a restart */
    s = open_st();
    storage_get_stats(s, &st);
    ck_assert_int_lt(st.head_max_time, now + STORAGE_MAX_FUTURE_MS);
    ck_assert_int_eq(put(s, "m", "a", "1", time_now_ms(), 5), 0);
    close_st(s);
}
END_TEST

/* Out of order and duplicate samples of one series within one batch are
 * refused at append as against the head (issue 16, finding 7), not
 * dropped silently at commit. */
START_TEST(test_append_order_within_batch) {
    storage *s = open_st();
    label la[3] = {{"__name__", "m"}, {"i", "1"}, {"job", "a"}};
    label lb[3] = {{"__name__", "m"}, {"i", "2"}, {"job", "a"}};
    appender *a = storage_appender(s);
    uint64_t ra = 0, rb = 0, ra2 = 0;
    kiln_err err = {0};
    ck_assert_int_eq(appender_append(a, &ra, la, 3, 2000, 1, &err), 0);
    ck_assert_int_eq(appender_append(a, &rb, lb, 3, 2000, 1, &err), 0);
    ck_assert_int_eq(appender_append(a, &ra, NULL, 0, 1000, 1, &err), KILN_EORDER);
    ck_assert_str_eq(err.msg, "out of order sample");
    /* the same series looked up again by its labels, after another series */
    ck_assert_int_eq(appender_append(a, &ra2, la, 3, 1500, 1, &err), KILN_EORDER);
    ck_assert_int_eq(appender_append(a, &ra, NULL, 0, 2000, 7, &err), KILN_EEXIST);
    ck_assert_str_eq(err.msg, "duplicate sample for timestamp");
    ck_assert_int_eq(appender_append(a, &ra, NULL, 0, 2000, 1, &err), 0); /* the same sample: ignored */
    ck_assert_int_eq(appender_append(a, &ra, NULL, 0, 3000, 2, &err), 0);
    ck_assert_int_eq(appender_append(a, &rb, NULL, 0, 2500, 2, &err), 0);
    /* a's latest run (2000, 3000) is the one compared with, not its first sample */
    ck_assert_int_eq(appender_append(a, &ra, NULL, 0, 2999, 2, &err), KILN_EORDER);
    ck_assert_int_eq(appender_append(a, &rb, NULL, 0, 2600, 2, &err), 0);
    ck_assert_int_eq(appender_append(a, &ra, NULL, 0, 3000, 2, &err), 0);
    ck_assert_int_eq(appender_append(a, &rb, NULL, 0, 2600, 3, &err), KILN_EEXIST);
    ck_assert_int_eq(appender_commit(a, &err), 0);
    series_set set = select_m(s, MATCH_EQ, "i", "1");
    ck_assert_uint_eq(set.n, 1);
    ck_assert_uint_eq(set.v[0].n, 2);
    ck_assert_int_eq(set.v[0].s[0].t, 2000);
    ck_assert(set.v[0].s[0].v == 1);
    ck_assert_int_eq(set.v[0].s[1].t, 3000);
    series_set_free(&set);
    set = select_m(s, MATCH_EQ, "i", "2");
    ck_assert_uint_eq(set.n, 1);
    ck_assert_uint_eq(set.v[0].n, 3);
    series_set_free(&set);

    /* many series, each sent twice in one batch (the set grows): older twice refused, newer taken */
    enum { N = 5000 };
    uint64_t *refs = calloc(N, sizeof *refs);
    a = storage_appender(s);
    for (int round = 0; round < 3; round++) {
        for (int k = 0; k < N; k++) {
            char inst[16];
            snprintf(inst, sizeof inst, "m%d", k);
            label lm[3] = {{"__name__", "many"}, {"i", inst}, {"job", "a"}};
            int64_t t = round == 0 ? 10000 : round == 1 ? 9000 : 11000;
            int want = round == 1 ? KILN_EORDER : 0;
            uint64_t r = round == 0 ? 0 : refs[k];
            ck_assert_int_eq(appender_append(a, &r, r ? NULL : lm, r ? 0 : 3, t, k, &err), want);
            refs[k] = r;
        }
    }
    ck_assert_int_eq(appender_commit(a, &err), 0);
    free(refs);
    ck_assert_uint_eq(count_matching(s, MATCH_EQ, "__name__", "many"), N);
    set = select_m(s, MATCH_EQ, "i", "m4321");
    ck_assert_uint_eq(set.v[0].n, 2);
    series_set_free(&set);
    close_st(s);
}
END_TEST

/* A data dir whose WAL already holds a far-future sample (written before the
 * bound existed) opens with the sample dropped: the head's range does not
 * move and current samples go in (issue 16, finding 6). */
START_TEST(test_replay_drops_far_future) {
    kiln_err err = {0};
    wal *w = new_wal(wal_opts_default().compression);
    log_series(w, 1, "a");
    int64_t far = time_now_ms() + 100LL * 365 * 86400 * 1000;
    walrec_sample x[3] = {{1, 0, 0}, {1, 1000, 1}, {1, far, 9}};
    log_samples(w, x, 3);
    ck_assert_int_eq(wal_close(w, &err), 0);
    storage *s = open_st();
    storage_stats st;
    storage_get_stats(s, &st);
    ck_assert_int_eq(st.head_max_time, 1000);
    ck_assert_uint_eq(check_h(s, "a", 0), 2);
    label ls[2] = {{"__name__", "h"}, {"i", "a"}};
    appender *a = storage_appender(s);
    uint64_t ref = 0;
    ck_assert_int_eq(appender_append(a, &ref, ls, 2, time_now_ms(), 2, &err), 0);
    ck_assert_int_eq(appender_commit(a, &err), 0);
    close_st(s);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("storage");
    TCase *tc = tcase_create("storage");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_append_rules);
    tcase_add_test(tc, test_append_far_future_refused);
    tcase_add_test(tc, test_append_order_within_batch);
    tcase_add_test(tc, test_replay_drops_far_future);
    tcase_add_test(tc, test_matchers_and_labels);
    tcase_add_test(tc, test_many_samples_and_limit);
    tcase_add_test(tc, test_replay);
    tcase_add_test(tc, test_replay_zstd_and_mixed);
    tcase_add_test(tc, test_replay_series_record_lengths);
    tcase_add_test(tc, test_replay_large_batches);
    tcase_add_test(tc, test_replay_same_memory);
    tcase_add_test(tc, test_duplicate_after_chunks_head);
    tcase_add_test(tc, test_replay_foreign_refs);
    tcase_add_test(tc, test_replay_flipped_byte);
    tcase_add_test(tc, test_replay_torn_tail);
    tcase_add_test(tc, test_replay_zeroed_page);
    tcase_add_test(tc, test_concurrent);
    tcase_add_test(tc, test_damaged_head_chunks);
    tcase_add_test(tc, test_truncate_and_checkpoint);
    tcase_add_test(tc, test_truncate_many_series);
    tcase_add_test(tc, test_compaction_blocks);
    tcase_add_test(tc, test_size_retention);
    tcase_add_test(tc, test_leveled_compaction);
    tcase_add_test(tc, test_commit_failure_logs_series);
    tcase_add_test(tc, test_rollback_logs_series);
    suite_add_tcase(s, tc);
    /* these abort, so the data directory is made and removed around them
     * all, in the parent process */
    TCase *lk = tcase_create("lock order");
    tcase_add_unchecked_fixture(lk, setup, teardown);
    tcase_add_test_raise_signal(lk, test_lock_order_checked, SIGABRT);
    tcase_add_test_raise_signal(lk, test_lock_order_recursive_read, SIGABRT);
#ifdef KILN_LOCK_DEBUG
    tcase_add_test_raise_signal(lk, test_lock_order_appender_then_compact, SIGABRT);
#endif
    suite_add_tcase(s, lk);
    return s;
}
