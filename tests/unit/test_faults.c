/*
 * test_faults.c - the storage under injected file-system failures
 * (util/fault.c): a write that fails short then with ENOSPC, an fsync, a
 * rename, an open or an mmap that fails, at every point of the WAL's
 * appends, chunks_head's chunk writes, a checkpoint and a block write.
 * After each failure and a restart, every acknowledged sample is there
 * with its value, nothing is there twice, and no half-written block is
 * served.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage.h"

#define KILN_TEST_MAIN
#include "testutil.h"

#define NSERIES 8

static char dir[256];

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

static void fresh_dir(void) {
    if (dir[0])
        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    snprintf(dir, sizeof dir, "/tmp/kiln-test-faults-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void setup(void) {
    dir[0] = 0;
    log_setup(LOG_ERROR + 1, LOG_FORMAT_LOGFMT); /* the injected failures log errors: keep quiet */
    fresh_dir();
}

static void teardown(void) {
    fault_disarm_all();
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static storage *open_st(int fsync_each) {
    storage_opts o = storage_opts_default();
    o.dir = dir;
    o.wal_fsync_every_commit = fsync_each;
    storage *s = NULL;
    kiln_err err = {0};
    ck_assert_msg(storage_open(&o, &s, &err) == 0, "open: %s", err.msg);
    return s;
}

/* One batch: sample (t, value(i, t)) for each of the NSERIES series.  0 when acknowledged. */
static double value_of(int i, int64_t t) {
    return (double)i * 1e6 + (double)(t / 1000);
}

static int put_batch(storage *s, int64_t t) {
    appender *a = storage_appender(s);
    ck_assert_ptr_nonnull(a);
    for (int i = 0; i < NSERIES; i++) {
        char inst[16];
        snprintf(inst, sizeof inst, "%d", i);
        label ls[2] = {{"__name__", "m"}, {"i", inst}};
        uint64_t ref = 0;
        kiln_err err = {0};
        if (appender_append(a, &ref, ls, 2, t, value_of(i, t), &err) != 0) {
            appender_rollback(a);
            return -1;
        }
    }
    kiln_err err = {0};
    return appender_commit(a, &err);
}

/*
 * Checks that every series holds exactly the acknowledged timestamps (and
 * possibly some of the `maybe` ones: a batch whose commit failed after its
 * record reached the file may come back), each once, with its value, in
 * [mint, maxt].
 */
static void check_data(storage *s, const int64_t *acked, size_t nacked, const int64_t *maybe, size_t nmaybe,
                       int64_t mint) {
    querier *q;
    ck_assert_int_eq(storage_querier(s, mint, INT64_MAX, &q, NULL), 0);
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "__name__", "m", NULL), 0);
    select_hints h = {mint, INT64_MAX, 0, 0};
    series_set set;
    kiln_err err = {0};
    ck_assert_msg(querier_select(q, &m, 1, &h, &set, &err) == 0, "%s", err.msg);
    size_t want = 0;
    for (size_t k = 0; k < nacked; k++)
        want += acked[k] >= mint;
    if (want)
        ck_assert_uint_eq(set.n, NSERIES);
    for (size_t i = 0; i < set.n; i++) {
        int idx = atoi(labels_get(set.v[i].ls, set.v[i].nls, "i"));
        size_t k = 0, found = 0;
        for (size_t j = 0; j < set.v[i].n; j++) {
            int64_t t = set.v[i].s[j].t;
            ck_assert_msg(set.v[i].s[j].v == value_of(idx, t), "series %d at %lld: wrong value", idx,
                          (long long)t);
            while (k < nacked && acked[k] < t)
                ck_assert_msg(acked[k++] < mint, "series %d: acknowledged sample at %lld lost", idx,
                              (long long)acked[k - 1]);
            if (k < nacked && acked[k] == t) {
                k++, found++;
                continue;
            }
            int ok = 0;
            for (size_t x = 0; x < nmaybe; x++)
                ok |= maybe[x] == t;
            ck_assert_msg(ok, "series %d: sample at %lld was never acknowledged or attempted", idx,
                          (long long)t);
        }
        while (k < nacked)
            ck_assert_msg(acked[k++] < mint, "series %d: acknowledged sample at %lld lost", idx,
                          (long long)acked[k - 1]);
        ck_assert_uint_eq(found, want);
    }
    series_set_free(&set);
    matcher_free(&m);
    querier_close(q);
}

/*
 * Appends nbatch batches (timestamps step_ms apart from t0) with `op`
 * failing once with e after `skip` calls; then disarms, appends 5 more
 * (the storage must work again), closes (its result is not asserted: a
 * close may find the failure too), reopens and checks the data.  Returns
 * the number of failures injected (0 once skip is past the last call).
 */
static long ingest_with_fault(fault_op op, long skip, int e, int fsync_each, int nbatch, int64_t step_ms) {
    fresh_dir();
    storage *s = open_st(fsync_each);
    int64_t acked[400], maybe[400];
    size_t na = 0, nm = 0;
    const int64_t t0 = time_now_ms() - (int64_t)(nbatch + 10) * step_ms;
    fault_arm(op, skip, 1, e);
    long before = fault_failures();
    for (int b = 0; b < nbatch + 5; b++) {
        if (b == nbatch)
            fault_disarm_all();
        int64_t t = t0 + (int64_t)b * step_ms;
        if (put_batch(s, t) == 0)
            acked[na++] = t;
        else
            maybe[nm++] = t;
    }
    long injected = fault_failures() - before;
    fault_disarm_all();
    /* the five batches after the fault must have been acknowledged */
    ck_assert_msg(nm == 0 || maybe[nm - 1] < t0 + (int64_t)nbatch * step_ms, "storage did not recover");
    kiln_err err = {0};
    int crc = storage_close(s, &err); /* may report the injected failure; what matters is the reopen */
    (void)crc;
    s = open_st(0);
    check_data(s, acked, na, maybe, nm, INT64_MIN);
    kiln_err cerr = {0};
    ck_assert_msg(storage_close(s, &cerr) == 0, "%s", cerr.msg);
    return injected;
}

/* ingest_with_fault for skip = 0, step, 2 step, ... below `to`; returns
 * how many of the runs met the fault. */
static long sweep(fault_op op, long to, long step, int e, int fsync_each, int nbatch) {
    long hits = 0;
    for (long skip = 0; skip < to; skip += step)
        hits += ingest_with_fault(op, skip, e, fsync_each, nbatch, 15000) > 0;
    return hits;
}

/* A write failing (short, then ENOSPC) at each of the first writes of the
 * WAL: records of 20 batches. */
START_TEST(test_wal_write_enospc) {
    ck_assert_int_ge(sweep(FAULT_WRITE, 30, 1, ENOSPC, 0, 20), 20);
}
END_TEST

/* fsync failing with EIO with --storage.tsdb.wal-fsync=always: the commit
 * that meets it is not acknowledged. */
START_TEST(test_wal_fsync_eio) {
    ck_assert_int_ge(sweep(FAULT_FSYNC, 25, 1, EIO, 1, 20), 20);
}
END_TEST

/* Enough samples for chunks to be cut and written to chunks_head/ (120
 * samples a chunk): failures land in those writes and in the WAL's. */
START_TEST(test_chunks_head_write_failures) {
    ck_assert_int_ge(sweep(FAULT_WRITE, 400, 23, EIO, 0, 300), 10);
    /* a chunks_head file that cannot be opened or mapped */
    ck_assert_int_ge(ingest_with_fault(FAULT_OPEN, 0, EIO, 0, 300, 15000) +
                         ingest_with_fault(FAULT_MMAP, 0, ENOMEM, 0, 300, 15000),
                     1);
}
END_TEST

/* Data old enough to make one block (5 h at 60 s), then storage_compact
 * with `op` failing after `skip` calls: whatever the compaction did, every
 * sample is there once, before and after a restart, and every block
 * directory is whole. */
static long compact_with_fault(fault_op op, long skip, int e) {
    fresh_dir();
    storage *s = open_st(0);
    const int64_t hour = 3600 * 1000, t0 = 1700000000000LL / (2 * hour) * (2 * hour);
    int64_t acked[300];
    size_t na = 0;
    for (int k = 0; k < 300; k++) {
        ck_assert_int_eq(put_batch(s, t0 + k * 60000), 0);
        acked[na++] = t0 + k * 60000;
    }
    fault_arm(op, skip, 1, e);
    long before = fault_failures();
    kiln_err err = {0};
    int rc = storage_compact(s, &err);
    long injected = fault_failures() - before;
    fault_disarm_all();
    if (!injected)
        ck_assert_msg(rc == 0, "compaction failed without a fault: %s", err.msg);
    check_data(s, acked, na, NULL, 0, INT64_MIN);
    kiln_err cerr = {0};
    int crc = storage_close(s, &cerr); /* may report the injected failure */
    (void)crc;
    s = open_st(0);
    check_data(s, acked, na, NULL, 0, INT64_MIN);
    /* a compaction after the failure succeeds and loses nothing */
    ck_assert_msg(storage_compact(s, &err) == 0, "%s", err.msg);
    check_data(s, acked, na, NULL, 0, INT64_MIN);
    ck_assert_msg(storage_close(s, &cerr) == 0, "%s", cerr.msg);
    /* every block directory left is whole: it has its meta.json */
    DIR *d = opendir(dir);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strlen(de->d_name) != 26)
            continue;
        char p[600];
        struct stat stt;
        snprintf(p, sizeof p, "%s/%s/meta.json", dir, de->d_name);
        ck_assert_msg(stat(p, &stt) == 0, "block %s has no meta.json", de->d_name);
    }
    closedir(d);
    return injected;
}

START_TEST(test_block_write_failures) {
    long hits = 0;
    for (long skip = 0; skip < 40; skip += 3)
        hits += compact_with_fault(FAULT_WRITE, skip, ENOSPC) > 0;
    for (long skip = 0; skip < 12; skip++)
        hits += compact_with_fault(FAULT_FSYNC, skip, EIO) > 0;
    for (long skip = 0; skip < 6; skip++)
        hits += compact_with_fault(FAULT_RENAME, skip, EIO) > 0;
    for (long skip = 0; skip < 6; skip++)
        hits += compact_with_fault(FAULT_OPEN, skip, EIO) > 0;
    ck_assert_int_ge(hits, 20);
}
END_TEST

/* storage_truncate writes a checkpoint (write, fsync, rename): a failure
 * anywhere in it keeps every sample at or after the truncation point. */
START_TEST(test_checkpoint_failures) {
    static const fault_op ops[] = {FAULT_WRITE, FAULT_FSYNC, FAULT_RENAME, FAULT_OPEN};
    long hits = 0;
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        for (long skip = 0; skip < 8; skip++) {
            fresh_dir();
            storage *s = open_st(0);
            int64_t acked[600];
            size_t na = 0;
            const int64_t t0 = 1700000000000LL;
            for (int k = 0; k < 600; k++) {
                ck_assert_int_eq(put_batch(s, t0 + k * 30000), 0);
                acked[na++] = t0 + k * 30000;
            }
            int64_t mint = t0 + 300 * 30000;
            fault_arm(ops[o], skip, 1, EIO);
            long before = fault_failures();
            kiln_err err = {0};
            int trc = storage_truncate(s, mint, &err);
            (void)trc; /* fails when the fault hits; the data is what is checked */
            hits += fault_failures() > before;
            fault_disarm_all();
            check_data(s, acked, na, NULL, 0, mint);
            int crc = storage_close(s, &err);
            (void)crc;
            s = open_st(0);
            check_data(s, acked, na, NULL, 0, mint);
            ck_assert_msg(storage_close(s, &err) == 0, "%s", err.msg);
        }
    }
    ck_assert_int_ge(hits, 8);
}
END_TEST

/* KILN_FAULTS' syntax, as the integration tests use it on the binary. */
START_TEST(test_fault_spec) {
    kiln_err err = {0};
    ck_assert_int_eq(fault_parse("write:3:1:ENOSPC,fsync:0:-1:EIO", &err), 0);
    fault_disarm_all();
    ck_assert_int_eq(fault_parse("write:3:1:ENOSPACE", &err), KILN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "write:3:1:ENOSPACE"));
    ck_assert_int_eq(fault_parse("write", &err), KILN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "op:skip:count:ERRNO"));
    fault_disarm_all();
    /* an armed fsync fails `count` times after `skip` successes */
    FILE *f = tmpfile();
    int fd = fileno(f);
    fault_arm(FAULT_FSYNC, 1, 2, EIO);
    ck_assert_int_eq(fault_fsync(fd), 0);
    ck_assert_int_eq(fault_fsync(fd), -1);
    ck_assert_int_eq(errno, EIO);
    ck_assert_int_eq(fault_fsync(fd), -1);
    ck_assert_int_eq(fault_fsync(fd), 0);
    /* a write fails short first, then with the error */
    fault_arm(FAULT_WRITE, 0, 1, ENOSPC);
    ck_assert_int_eq(fault_write(fd, "abcdefgh", 8), 4);
    ck_assert_int_eq(fault_write(fd, "efgh", 4), -1);
    ck_assert_int_eq(errno, ENOSPC);
    ck_assert_int_eq(fault_write(fd, "efgh", 4), 4);
    fault_disarm_all();
    fclose(f);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("faults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_fault_spec);
    tcase_add_test(tc, test_wal_write_enospc);
    tcase_add_test(tc, test_wal_fsync_eio);
    tcase_add_test(tc, test_chunks_head_write_failures);
    tcase_add_test(tc, test_checkpoint_failures);
    tcase_add_test(tc, test_block_write_failures);
    suite_add_tcase(s, tc);
    return s;
}
