/*
 * test_ooo.c - out-of-order ingestion through the storage's interface:
 * the window's rules and error texts, out-of-order samples merged with
 * in-order ones at query time (m-mapped chunks, head chunk, a time in both),
 * the WBL's replay after a close and after kill -9 in the middle of
 * out-of-order commits, the on-disk formats (wbl/ records, 0x81 chunks),
 * and compaction of out-of-order samples into blocks merged with the
 * in-order ones.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "storage/storage.h"
#include "storage/storage_int.h"
#include "storage/wal.h"
#include "storage/wbl.h"

#define KILN_TEST_MAIN
#include "testutil.h"

static char dir[256];
static const int64_t MIN = 60 * 1000, HOUR = 3600 * 1000;

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/kiln-test-ooo-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    log_setup(LOG_ERROR, LOG_FORMAT_LOGFMT);
}

static void teardown(void) {
    ck_assert_int_eq(fileio_rm_rf(dir, NULL), 0);
}

/* The storage in dir with out_of_order_time_window = window; closed by close_st. */
static storage *open_win(int64_t window) {
    storage_opts o = storage_opts_default();
    storage *s = NULL;
    kiln_err err = {0};
    o.ooo_window_ms = window;
    o.dir = dir;
    int rc = storage_open(&o, &s, &err);
    ck_assert_msg(rc == 0, "open: %s", err.msg);
    return s;
}

static void close_st(storage *s) {
    kiln_err err = {0};
    int rc = storage_close(s, &err);
    ck_assert_msg(rc == 0, "close: %s", err.msg);
}

/* Appends (t, v) to {__name__="m", i=inst} in a batch of its own; err may be NULL. */
static int put(storage *s, const char *inst, int64_t t, double v, kiln_err *err) {
    label ls[2] = {{"__name__", "m"}, {"i", inst}};
    appender *a = storage_appender(s);
    uint64_t ref = 0;
    kiln_err e = {0};
    int rc = appender_append(a, &ref, ls, 2, t, v, err ? err : &e);
    if (rc) {
        appender_rollback(a);
        return rc;
    }
    return appender_commit(a, err ? err : &e);
}

/* The samples of {i=inst} within [mint, maxt]. */
static series_set get(storage *s, const char *inst, int64_t mint, int64_t maxt) {
    querier *q;
    kiln_err err = {0};
    ck_assert_int_eq(storage_querier(s, mint, maxt, &q, &err), 0);
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "i", inst, NULL), 0);
    series_set set;
    select_hints h = {mint, maxt, 0, 0};
    ck_assert_msg(querier_select(q, &m, 1, &h, &set, &err) == 0, "select: %s", err.msg);
    matcher_free(&m);
    querier_close(q);
    return set;
}

/* Checks that {i=inst} holds exactly the samples t0 + k*step, k in [0, n),
 * with value k (the merged, sorted answer). */
static void check_seq(storage *s, const char *inst, int64_t t0, int64_t step, int n) {
    series_set set = get(s, inst, INT64_MIN, INT64_MAX);
    ck_assert_uint_eq(set.n, 1);
    ck_assert_uint_eq(set.v[0].n, (size_t)n);
    for (int k = 0; k < n; k++) {
        ck_assert_msg(set.v[0].s[k].t == t0 + k * step, "sample %d at %lld", k, (long long)set.v[0].s[k].t);
        ck_assert_msg(set.v[0].s[k].v == (double)k, "sample %d value %g", k, set.v[0].s[k].v);
    }
    series_set_free(&set);
}

START_TEST(test_window_rules) {
    const int64_t t0 = 1700000000000LL;
    storage *s = open_win(0);
    ck_assert_int_eq(put(s, "a", t0, 0, NULL), 0);
    kiln_err err = {0};
    ck_assert_int_eq(put(s, "a", t0 - 1000, 0, &err), KILN_EORDER);
    ck_assert_str_eq(err.msg, "out of order sample");
    /* a reload turns the window on */
    ck_assert_int_eq(storage_set_ooo_window(s, 10 * MIN, &err), 0);
    ck_assert_int_eq(storage_ooo_window(s), 10 * MIN);
    ck_assert_int_eq(put(s, "a", t0 - 1000, 7, &err), 0);
    ck_assert_int_eq(put(s, "a", t0 - 10 * MIN, 8, &err), 0); /* the window's edge is in */
    ck_assert_int_eq(put(s, "a", t0 - 10 * MIN - 1, 9, &err), KILN_ERANGE);
    ck_assert_str_eq(err.msg, "too old sample");
    /* a new series: older than the head's newest time is out of order for the head too */
    ck_assert_int_eq(put(s, "b", t0 - 5 * MIN, 1, &err), 0);
    ck_assert_int_eq(put(s, "b", t0 - 11 * MIN, 1, &err), KILN_ERANGE);
    /* the in-order duplicate rule stands; an out-of-order time taken once: the first wins */
    ck_assert_int_eq(put(s, "a", t0, 1, &err), KILN_EEXIST);
    ck_assert_int_eq(put(s, "a", t0 - 1000, 100, &err), 0);
    series_set set = get(s, "a", INT64_MIN, INT64_MAX);
    ck_assert_uint_eq(set.n, 1);
    ck_assert_uint_eq(set.v[0].n, 3);
    ck_assert(set.v[0].s[0].t == t0 - 10 * MIN && set.v[0].s[0].v == 8);
    ck_assert(set.v[0].s[1].t == t0 - 1000 && set.v[0].s[1].v == 7);
    ck_assert(set.v[0].s[2].t == t0 && set.v[0].s[2].v == 0);
    series_set_free(&set);
    /* within one batch: a sample older than the one staged before it */
    label ls[2] = {{"__name__", "m"}, {"i", "c"}};
    appender *a = storage_appender(s);
    uint64_t ref = 0;
    ck_assert_int_eq(appender_append(a, &ref, ls, 2, t0 - 1000, 2, &err), 0);
    ck_assert_int_eq(appender_append(a, &ref, ls, 2, t0 - 3000, 1, &err), 0);
    ck_assert_int_eq(appender_append(a, &ref, ls, 2, t0 - 2000, 1.5, &err), 0);
    ck_assert_int_eq(appender_commit(a, &err), 0);
    set = get(s, "c", INT64_MIN, INT64_MAX);
    ck_assert_uint_eq(set.v[0].n, 3);
    ck_assert(set.v[0].s[0].v == 1 && set.v[0].s[1].v == 1.5 && set.v[0].s[2].v == 2);
    series_set_free(&set);
    storage_stats st;
    storage_get_stats(s, &st);
    ck_assert_uint_eq(st.samples_appended, 7); /* a: 3, b: 1 (in order: a new series), c: 3 */
    ck_assert_uint_eq(__atomic_load_n(&s->ooo_appended, __ATOMIC_RELAXED), 4);
    ck_assert_uint_eq(__atomic_load_n(&s->rejected_too_old, __ATOMIC_RELAXED), 2);
    /* the samples a select over a range sees: only those in it */
    set = get(s, "a", t0 - 2000, t0 - 500);
    ck_assert_uint_eq(set.v[0].n, 1);
    series_set_free(&set);
    close_st(s);
}
END_TEST

START_TEST(test_first_batch) {
    /* the head's first batch: its later samples are the newest time the window counts back from */
    const int64_t t0 = 1700000000000LL;
    storage *s = open_win(10 * MIN);
    label ls[2] = {{"__name__", "m"}, {"i", "a"}};
    appender *a = storage_appender(s);
    uint64_t ref = 0;
    kiln_err err = {0};
    ck_assert_int_eq(appender_append(a, &ref, ls, 2, t0, 1, &err), 0);
    ck_assert_int_eq(appender_append(a, &ref, ls, 2, t0 - 5 * MIN, 0, &err), 0);
    ck_assert_int_eq(appender_append(a, &ref, ls, 2, t0 - 11 * MIN, 0, &err), KILN_ERANGE);
    ck_assert_str_eq(err.msg, "too old sample");
    ck_assert_int_eq(appender_commit(a, &err), 0);
    series_set set = get(s, "a", INT64_MIN, INT64_MAX);
    ck_assert_uint_eq(set.v[0].n, 2);
    ck_assert(set.v[0].s[0].t == t0 - 5 * MIN && set.v[0].s[1].t == t0);
    series_set_free(&set);
    close_st(s);
}
END_TEST

/* In-order samples at even multiples of step, out-of-order ones (sent after
 * them, newest first) at the odd ones below the last even one: n samples in
 * all (an odd n - 1 comes in order). */
static void write_interleaved(storage *s, const char *inst, int64_t t0, int64_t step, int n) {
    for (int k = 0; k < n; k += 2)
        ck_assert_int_eq(put(s, inst, t0 + k * step, k, NULL), 0);
    for (int k = (n - 1) | 1; k > 0; k -= 2)
        if (k < n)
            ck_assert_int_eq(put(s, inst, t0 + k * step, k, NULL), 0);
}

START_TEST(test_query_merge) {
    const int64_t t0 = 1700000000000LL;
    storage *s = open_win(30 * MIN);
    /* 99 out-of-order samples: three m-mapped chunks of 32 and a head chunk of 3 */
    write_interleaved(s, "x", t0, 1000, 200);
    check_seq(s, "x", t0, 1000, 200);
    ck_assert_uint_eq(__atomic_load_n(&s->ooo_appended, __ATOMIC_RELAXED), 99); /* 199 came in order */
    ooo_counts oc;
    ooo_get_counts(s->ooo, &oc);
    ck_assert_uint_eq(oc.series, 1);
    ck_assert_uint_eq(oc.mmapped, 3);
    ck_assert_uint_eq(oc.samples, 3);
    /* an out-of-order sample at an in-order sample's time: the in-order one answers */
    ck_assert_int_eq(put(s, "x", t0 + 2000, -1, NULL), 0);
    check_seq(s, "x", t0, 1000, 200);
    /* an out-of-order sample at a time an m-mapped chunk holds: the first one written answers */
    ck_assert_int_eq(put(s, "x", t0 + 1000, -1, NULL), 0);
    check_seq(s, "x", t0, 1000, 200);
    /* a window inside the out-of-order chunks */
    series_set set = get(s, "x", t0 + 10000, t0 + 20000);
    ck_assert_uint_eq(set.v[0].n, 11);
    for (int k = 0; k < 11; k++)
        ck_assert(set.v[0].s[k].v == 10 + k);
    series_set_free(&set);
    close_st(s);
}
END_TEST

/* The record types of the WBL's segments. */
typedef struct wbl_count {
    uint64_t samples, markers;
} wbl_count;

static int count_samples(void *ctx, const walrec_sample *v, size_t n) {
    (void)v;
    ((wbl_count *)ctx)->samples += n;
    return 0;
}

static int count_markers(void *ctx, const wbl_marker *m, size_t n) {
    (void)m;
    ((wbl_count *)ctx)->markers += n;
    return 0;
}

static int count_ooo_chunk(uint64_t sref, int64_t mint, int64_t maxt, uint64_t cref, uint8_t enc,
                           void *data) {
    (void)sref;
    (void)mint;
    (void)maxt;
    (void)cref;
    *(int *)data += enc == 0x81;
    return 0;
}

START_TEST(test_replay_and_formats) {
    const int64_t t0 = 1700000000000LL;
    storage *s = open_win(30 * MIN);
    write_interleaved(s, "x", t0, 1000, 200);
    write_interleaved(s, "y", t0, 500, 41);
    close_st(s);
    /* wbl/ holds Prometheus' records: the 99 + 20 samples and the 3 markers */
    char wd[300];
    snprintf(wd, sizeof wd, "%s/wbl", dir);
    wbl_count c = {0};
    wbl_visitor v = {count_samples, count_markers, &c};
    wbl_read_stats rs;
    kiln_err err = {0};
    ck_assert_int_eq(wbl_read(wd, &v, 0, &rs, &err), 0);
    ck_assert_uint_eq(c.samples, 119);
    ck_assert_uint_eq(c.markers, 3);
    ck_assert_int_eq(rs.corrupt, 0);
    /* chunks_head holds the three out-of-order chunks with encoding 0x81 */
    char hd[300];
    snprintf(hd, sizeof hd, "%s/chunks_head", dir);
    headchunks *hc;
    ck_assert_int_eq(headchunks_open(hd, &hc, &err), 0);
    int ooo = 0;
    ck_assert_int_eq(headchunks_iterate(hc, count_ooo_chunk, &ooo, &err), 0);
    ck_assert_int_eq(ooo, 3);
    ck_assert_int_eq(headchunks_close(hc, &err), 0);
    /* replayed, twice (the second start reads what the first wrote again) */
    for (int pass = 0; pass < 2; pass++) {
        s = open_win(30 * MIN);
        check_seq(s, "x", t0, 1000, 200);
        check_seq(s, "y", t0, 500, 41 + pass);
        ooo_counts oc;
        ooo_get_counts(s->ooo, &oc);
        ck_assert_uint_eq(oc.mmapped, 3);
        ck_assert_uint_eq(oc.samples, 3 + 20);
        /* appending goes on after the replay */
        ck_assert_int_eq(put(s, "y", t0 + (41 + pass) * 500, 41 + pass, NULL), 0);
        close_st(s);
        s = open_win(30 * MIN);
        check_seq(s, "y", t0, 500, 42 + pass);
        close_st(s);
        /* the window off: the log stays readable */
        s = open_win(0);
        check_seq(s, "x", t0, 1000, 200);
        close_st(s);
    }
}
END_TEST

/*
 * kill -9 during out-of-order ingestion: a child appends batches of
 * in-order and out-of-order samples and reports each acknowledged batch
 * through a pipe; the parent kills it mid-stream, reopens, and finds every
 * acknowledged sample.
 */
START_TEST(test_kill9_replay) {
    const int64_t t0 = 1700000000000LL;
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        storage *s = open_win(60 * MIN);
        uint64_t refs[10] = {0};
        const char *insts[10] = {"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"};
        for (int b = 0;; b++) {
            /* batch b: 10 series, an in-order sample at t0 + (2b+1) s, and an
             * out-of-order one at t0 + 2b s written after it */
            appender *a = storage_appender(s);
            for (int i = 0; i < 10; i++) {
                label ls[2] = {{"__name__", "m"}, {"i", insts[i]}};
                if (appender_append(a, &refs[i], ls, 2, t0 + (2 * b + 1) * 1000, 2 * b + 1, NULL) != 0 ||
                    (b > 0 && appender_append(a, &refs[i], ls, 2, t0 + 2 * b * 1000, 2 * b, NULL) != 0))
                    _exit(2);
            }
            if (appender_commit(a, NULL) != 0)
                _exit(3);
            if (write(fds[1], &b, sizeof b) != sizeof b)
                _exit(4);
        }
    }
    close(fds[1]);
    int acked = -1, b;
    while (acked < 400 && read(fds[0], &b, sizeof b) == sizeof b)
        acked = b;
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    /* batches acknowledged after the last one read may be there too */
    while (read(fds[0], &b, sizeof b) == sizeof b)
        acked = b;
    close(fds[0]);
    ck_assert_int_ge(acked, 400);
    storage *s = open_win(60 * MIN);
    for (int i = 0; i < 10; i++) {
        char inst[16];
        snprintf(inst, sizeof inst, "s%d", i);
        series_set set = get(s, inst, INT64_MIN, INT64_MAX);
        ck_assert_uint_eq(set.n, 1);
        /* samples t0 + 1 s ... t0 + (2 acked + 1) s, each once, value =
         * seconds; then maybe some of the batch being written at the kill */
        ck_assert_uint_ge(set.v[0].n, (size_t)(2 * acked + 1));
        for (size_t k = 0; k < set.v[0].n; k++) {
            int64_t sec = (set.v[0].s[k].t - t0) / 1000;
            ck_assert(k > (size_t)(2 * acked) || sec == (int64_t)k + 1);
            ck_assert(set.v[0].s[k].v == (double)sec && sec <= 2 * acked + 3);
        }
        series_set_free(&set);
    }
    close_st(s);
}
END_TEST

START_TEST(test_compaction) {
    const int64_t t0 = 1700000000000LL / (2 * HOUR) * (2 * HOUR);
    storage *s = open_win(6 * HOUR);
    /* in order: every other minute over 5 h; out of order: the minutes between, sent late */
    const int n = 300;
    write_interleaved(s, "x", t0, MIN, n);
    /* a series with out-of-order samples only in the first range, and one sample after */
    ck_assert_int_eq(put(s, "y", t0 + 5 * HOUR, 2, NULL), 0);
    ck_assert_int_eq(put(s, "y", t0 + 30 * MIN, 0, NULL), 0);
    ck_assert_int_eq(put(s, "y", t0 + 150 * MIN, 1, NULL), 0);
    kiln_err err = {0};
    ck_assert_msg(storage_compact(s, &err) == 0, "%s", err.msg);
    /* the head's block and the out-of-order block of the same range merged into one */
    ck_assert_int_eq(s->nblocks, 1);
    ck_assert_int_eq(block_get_meta(s->blocks[0])->mint, t0);
    ck_assert_int_eq(block_get_meta(s->blocks[0])->maxt, t0 + 2 * HOUR);
    for (int pass = 0; pass < 2; pass++) {
        ck_assert_int_eq(s->nblocks, 1); /* on disk too: the sources were deleted */
        check_seq(s, "x", t0, MIN, n);
        series_set set = get(s, "y", INT64_MIN, INT64_MAX);
        ck_assert_uint_eq(set.v[0].n, 3);
        ck_assert(set.v[0].s[0].t == t0 + 30 * MIN && set.v[0].s[1].t == t0 + 150 * MIN);
        series_set_free(&set);
        /* what is left in the head's out-of-order chunks is at or after the block's end */
        ooo_counts oc;
        ooo_get_counts(s->ooo, &oc);
        ck_assert_uint_eq(oc.series, 2);
        close_st(s);
        s = open_win(6 * HOUR);
    }
    /* a late sample for the compacted range: taken (the window allows it), answered with the block's */
    ck_assert_int_eq(put(s, "y", t0 + 20 * MIN, 9, NULL), 0);
    series_set set = get(s, "y", t0, t0 + 40 * MIN);
    ck_assert_uint_eq(set.v[0].n, 2);
    ck_assert(set.v[0].s[0].v == 9 && set.v[0].s[1].v == 0);
    series_set_free(&set);
    close_st(s);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("ooo");
    TCase *rules = tcase_create("appending and querying"), *disk = tcase_create("replay and compaction");
    tcase_add_checked_fixture(rules, setup, teardown);
    tcase_add_test(rules, test_window_rules);
    tcase_add_test(rules, test_query_merge);
    tcase_add_test(rules, test_first_batch);
    suite_add_tcase(s, rules);
    tcase_set_timeout(disk, 120); /* kill -9 and compaction under the sanitizers */
    tcase_add_checked_fixture(disk, setup, teardown);
    tcase_add_test(disk, test_replay_and_formats);
    tcase_add_test(disk, test_kill9_replay);
    tcase_add_test(disk, test_compaction);
    suite_add_tcase(s, disk);
    return s;
}
