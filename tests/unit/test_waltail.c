/*
 * test_waltail.c - following the WAL as it is written (storage_wal_tail_*,
 * the tail mode of walreader.c): a first start sends only what comes after
 * it, a resume only what follows its position, records cut anywhere by a
 * write in progress come out whole once the rest is written, the follower
 * moves to the next segment, and one behind a truncation reads the
 * checkpoint's samples.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage.h"
#include "storage/wal.h"
#include "storage/walrec.h"
#include "util/util.h"

#define KILN_TEST_MAIN
#include "testutil.h"

static char *tmp_dir(void) {
    char *d = strdup("/tmp/kiln_test_waltail_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(d));
    return d;
}

static void walpath(char *out, size_t n, const char *data) {
    snprintf(out, n, "%s/wal", data);
}

static void log_series(wal *w, uint64_t ref, const char *name) {
    walrec_label l = {"__name__", 8, name, strlen(name)};
    walrec_series s = {ref, &l, 1};
    buf b = BUF_INIT;
    kiln_err err = {0};
    ck_assert_int_eq(walrec_encode_series(&b, &s, 1), 0);
    ck_assert_msg(wal_log(w, b.data, b.len, &err) == 0, "%s", err.msg);
    buf_free(&b);
}

/* n samples of ref at t0, t0+1, ... with value t */
static void log_samples(wal *w, uint64_t ref, int64_t t0, size_t n) {
    walrec_sample *s = calloc(n, sizeof *s);
    for (size_t i = 0; i < n; i++)
        s[i] = (walrec_sample){ref, t0 + (int64_t)i, (double)(t0 + (int64_t)i)};
    buf b = BUF_INIT;
    kiln_err err = {0};
    ck_assert_int_eq(walrec_encode_samples(&b, s, n), 0);
    ck_assert_msg(wal_log(w, b.data, b.len, &err) == 0, "%s", err.msg);
    buf_free(&b);
    free(s);
}

/* Reads until caught up: series seen, samples returned (their t summed for a check). */
static void drain(storage_wal_tail *t, size_t *nseries, size_t *nsamples, int64_t *tsum) {
    storage_wal_record r;
    kiln_err err = {0};
    int rc;
    while ((rc = storage_wal_tail_next(t, &r, &err)) == 1) {
        *nseries += r.nseries;
        *nsamples += r.nsamples;
        for (size_t i = 0; i < r.nsamples; i++) {
            *tsum += r.samples[i].t;
            ck_assert_double_eq(r.samples[i].v, (double)r.samples[i].t);
        }
        for (size_t i = 0; i < r.nseries; i++)
            ck_assert_str_eq(r.series[i].ls[0].name, "__name__");
    }
    ck_assert_msg(rc == 0, "%s", err.msg);
}

START_TEST(test_first_start_then_follow) {
    char *d = tmp_dir(), wd[512];
    walpath(wd, sizeof wd, d);
    wal_opts o = wal_opts_default();
    o.segment_size = 4 * WAL_PAGE_SIZE;
    wal *w;
    kiln_err err = {0};
    ck_assert_int_eq(wal_open(wd, &o, &w, &err), 0);
    log_series(w, 1, "a");
    log_samples(w, 1, 0, 10);

    storage_wal_tail *t;
    ck_assert_int_eq(storage_wal_tail_open(d, (storage_wal_pos){-1, 0}, &t, &err), 0);
    size_t ns = 0, nsm = 0;
    int64_t sum = 0;
    drain(t, &ns, &nsm, &sum);
    ck_assert_uint_eq(ns, 1);  /* the series, for the cache */
    ck_assert_uint_eq(nsm, 0); /* samples written before the first start are not sent */

    log_series(w, 2, "b");
    log_samples(w, 2, 100, 5);
    /* a record bigger than a page (FIRST/MIDDLE/LAST), then across segments */
    log_samples(w, 1, 1000, 5000);
    ck_assert_int_ge(wal_next_segment(w, &err), 1);
    log_samples(w, 2, 10000, 3);
    ns = nsm = 0;
    sum = 0;
    drain(t, &ns, &nsm, &sum);
    ck_assert_uint_eq(ns, 1);
    ck_assert_uint_eq(nsm, 5 + 5000 + 3);
    ck_assert_int_eq(sum, (100 + 104) * 5 / 2 + (int64_t)(1000 + 5999) * 5000 / 2 + 10000 + 10001 + 10002);
    storage_wal_pos p = storage_wal_tail_pos(t);
    ck_assert_int_ge(p.segment, 1);
    storage_wal_tail_close(t);

    /* a resume from the position after the 5000: only the last record's samples */
    ck_assert_int_eq(wal_close(w, &err), 0);
    ck_assert_int_eq(storage_wal_tail_open(d, (storage_wal_pos){0, 0}, &t, &err), 0);
    ns = nsm = 0;
    sum = 0;
    drain(t, &ns, &nsm, &sum);
    ck_assert_uint_eq(ns, 2);
    ck_assert_uint_eq(nsm, 10 + 5 + 5000 + 3);
    storage_wal_tail_close(t);
    ck_assert_int_eq(storage_wal_tail_open(d, p, &t, &err), 0);
    ns = nsm = 0;
    sum = 0;
    drain(t, &ns, &nsm, &sum);
    ck_assert_uint_eq(nsm, 0);
    storage_wal_tail_close(t);
    ck_assert_int_eq(fileio_rm_rf(d, &err), 0);
    free(d);
}
END_TEST

/* The bytes of segment 0 of a finished WAL appended to a live copy in
 * pieces cut at every kind of place: each record comes out once, whole. */
START_TEST(test_records_cut_anywhere) {
    char *src = tmp_dir(), *dst = tmp_dir(), wd[512], p[600];
    walpath(wd, sizeof wd, src);
    wal_opts o = wal_opts_default();
    o.compression = WAL_COMPRESS_NONE;
    wal *w;
    kiln_err err = {0};
    ck_assert_int_eq(wal_open(wd, &o, &w, &err), 0);
    log_series(w, 7, "x");
    int64_t want = 0;
    size_t nwant = 0;
    for (int i = 0; i < 40; i++) {
        size_t n = (size_t)(i % 7 == 0 ? 3000 : 1 + i);
        log_samples(w, 7, i * 10000, n);
        want += (int64_t)n * (i * 10000) + (int64_t)n * ((int64_t)n - 1) / 2;
        nwant += n;
    }
    ck_assert_int_eq(wal_close(w, &err), 0);
    snprintf(p, sizeof p, "%s/00000000", wd);
    buf all = BUF_INIT;
    FILE *f = fopen(p, "rb");
    char tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_append(&all, tmp, k);
    fclose(f);

    walpath(wd, sizeof wd, dst);
    ck_assert_int_eq(fileio_mkdir_p(wd, &err), 0);
    snprintf(p, sizeof p, "%s/00000000", wd);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    storage_wal_tail *t;
    ck_assert_int_eq(storage_wal_tail_open(dst, (storage_wal_pos){0, 0}, &t, &err), 0);
    size_t ns = 0, nsm = 0, at = 0;
    int64_t sum = 0;
    for (size_t step = 1; at < all.len; step = step * 3 % 9973 + 5) {
        size_t n = all.len - at < step ? all.len - at : step;
        ck_assert_int_eq(fileio_write_all(fd, all.data + at, n), 0);
        at += n;
        drain(t, &ns, &nsm, &sum);
    }
    close(fd);
    ck_assert_uint_eq(ns, 1);
    ck_assert_uint_eq(nsm, nwant);
    ck_assert_int_eq(sum, want);
    storage_wal_tail_close(t);
    buf_free(&all);
    ck_assert_int_eq(fileio_rm_rf(src, &err), 0);
    ck_assert_int_eq(fileio_rm_rf(dst, &err), 0);
    free(src);
    free(dst);
}
END_TEST

static int keep_all(uint64_t ref, void *data) {
    (void)ref;
    (void)data;
    return 1;
}

/* Behind a truncation: the resume segment is gone, the checkpoint holds its samples. */
START_TEST(test_behind_truncation) {
    char *d = tmp_dir(), wd[512];
    walpath(wd, sizeof wd, d);
    wal *w;
    kiln_err err = {0};
    ck_assert_int_eq(wal_open(wd, NULL, &w, &err), 0);
    log_series(w, 3, "c");
    log_samples(w, 3, 0, 4);
    ck_assert_int_eq(wal_next_segment(w, &err), 1);
    log_samples(w, 3, 10, 2);
    ck_assert_int_eq(wal_next_segment(w, &err), 2);
    wal_checkpoint_opts co = {.mint = 0, .compression = WAL_COMPRESS_SNAPPY};
    ck_assert_msg(wal_checkpoint(wd, 0, 1, keep_all, NULL, &co, NULL, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(wal_truncate_before(w, 2, &err), 0);
    log_samples(w, 3, 20, 1);
    storage_wal_tail *t;
    /* the queue had sent segment 0 up to its first record only */
    ck_assert_int_eq(storage_wal_tail_open(d, (storage_wal_pos){0, 1}, &t, &err), 0);
    size_t ns = 0, nsm = 0;
    int64_t sum = 0;
    drain(t, &ns, &nsm, &sum);
    ck_assert_uint_eq(ns, 1);
    ck_assert_uint_eq(nsm, 4 + 2 + 1); /* at least once: the checkpoint's samples, then segment 2 */
    storage_wal_tail_close(t);
    ck_assert_int_eq(wal_close(w, &err), 0);
    ck_assert_int_eq(fileio_rm_rf(d, &err), 0);
    free(d);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("waltail");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_first_start_then_follow);
    tcase_add_test(tc, test_records_cut_anywhere);
    tcase_add_test(tc, test_behind_truncation);
    suite_add_tcase(s, tc);
    return s;
}
