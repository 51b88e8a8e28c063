/*
 * test_delete.c - deleted ranges: the tombstones set and file format, and
 * deletion through the storage (head, blocks, restart, compaction,
 * clean_tombstones).
 */
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage.h"
#include "storage/tombstones.h"
#include "storage/wal.h"
#include "storage/xorchunk.h"

#define KILN_TEST_MAIN
#include "testutil.h"

/* ---- the set ----------------------------------------------------------------- */

START_TEST(test_add_merges) {
    tombstones t = {0};
    ck_assert_int_eq(tombstones_add(&t, 7, 10, 20), 0);
    ck_assert_int_eq(tombstones_add(&t, 3, 0, 5), 0);
    ck_assert_int_eq(tombstones_add(&t, 7, 40, 50), 0);
    ck_assert_int_eq(tombstones_add(&t, 7, 21, 25), 0); /* touches [10,20]: merged */
    ck_assert_int_eq(tombstones_add(&t, 7, 30, 35), 0);
    ck_assert_int_eq(tombstones_add(&t, 7, 5, 5), 0);
    size_t n;
    const tstone *iv = tombstones_of(&t, 7, &n);
    ck_assert_uint_eq(n, 4);
    ck_assert(iv[0].mint == 5 && iv[0].maxt == 5);
    ck_assert(iv[1].mint == 10 && iv[1].maxt == 25);
    ck_assert(iv[2].mint == 30 && iv[2].maxt == 35);
    ck_assert(iv[3].mint == 40 && iv[3].maxt == 50);
    /* one interval swallowing three */
    ck_assert_int_eq(tombstones_add(&t, 7, 8, 45), 0);
    iv = tombstones_of(&t, 7, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert(iv[1].mint == 8 && iv[1].maxt == 50);
    iv = tombstones_of(&t, 3, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_ptr_null(tombstones_of(&t, 4, &n));
    ck_assert_uint_eq(n, 0);
    /* the extremes do not overflow */
    ck_assert_int_eq(tombstones_add(&t, 9, INT64_MIN, INT64_MAX), 0);
    ck_assert_int_eq(tombstones_add(&t, 9, 0, 1), 0);
    iv = tombstones_of(&t, 9, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert(iv[0].mint == INT64_MIN && iv[0].maxt == INT64_MAX);
    tombstones_truncate(&t, 6);
    ck_assert_ptr_null(tombstones_of(&t, 3, &n));
    iv = tombstones_of(&t, 7, &n);
    ck_assert_uint_eq(n, 1);
    tombstones_free(&t);
}
END_TEST

START_TEST(test_filter_and_cover) {
    tstone iv[2] = {{1, 10, 19}, {1, 30, 30}};
    sample s[50];
    for (int i = 0; i < 50; i++)
        s[i] = (sample){i, i * 2.0};
    size_t n = tombstones_filter(iv, 2, s, 50);
    ck_assert_uint_eq(n, 39);
    ck_assert(s[9].t == 9 && s[10].t == 20 && s[19].t == 29 && s[20].t == 31);
    ck_assert(tombstones_cover(iv, 2, 12, 19));
    ck_assert(!tombstones_cover(iv, 2, 12, 20));
    ck_assert(tombstones_hit(iv, 2, 30));
    ck_assert(!tombstones_hit(iv, 2, 29));
}
END_TEST

/* The file form: Prometheus' layout, byte for byte, and its damage reported. */
START_TEST(test_file_format) {
    tombstones t = {0}, back = {0};
    ck_assert_int_eq(tombstones_add(&t, 16, -5, 300), 0);
    ck_assert_int_eq(tombstones_add(&t, 2, 1, 2), 0);
    buf b = BUF_INIT;
    ck_assert_int_eq(tombstones_encode(&t, &b), 0);
    /* magic, version, {2,1,2} {16,-5,300} zigzag varints, CRC */
    static const uint8_t want_head[] = {0x01, 0x30, 0xBA, 0x30, 0x01, 0x02,
                                        0x02, 0x04, 0x10, 0x09, 0xD8, 0x04};
    ck_assert_uint_eq(b.len, sizeof want_head + 4);
    ck_assert_mem_eq(b.data, want_head, sizeof want_head);
    kiln_err err = {0};
    ck_assert_int_eq(tombstones_decode((uint8_t *)b.data, b.len, &back, &err), 0);
    ck_assert_uint_eq(back.n, 2);
    ck_assert(back.v[1].ref == 16 && back.v[1].mint == -5 && back.v[1].maxt == 300);
    /* the empty file kiln writes with every block */
    tombstones none = {0};
    buf e = BUF_INIT;
    ck_assert_int_eq(tombstones_encode(&none, &e), 0);
    ck_assert_uint_eq(e.len, 9);
    ck_assert_int_eq(tombstones_decode((uint8_t *)e.data, e.len, &back, &err), 0);
    ck_assert_uint_eq(back.n, 0);
    /* damage */
    uint8_t *d = (uint8_t *)b.data;
    d[6] ^= 1;
    ck_assert_int_eq(tombstones_decode(d, b.len, &back, &err), KILN_ECORRUPT);
    ck_assert_str_eq(err.msg, "tombstones: checksum mismatch");
    d[6] ^= 1;
    d[0] = 0;
    ck_assert_int_eq(tombstones_decode(d, b.len, &back, &err), KILN_ECORRUPT);
    ck_assert_str_eq(err.msg, "tombstones: bad magic 0x0030ba30");
    d[0] = 1;
    d[4] = 2;
    ck_assert_int_eq(tombstones_decode(d, b.len, &back, &err), KILN_ECORRUPT);
    ck_assert_str_eq(err.msg, "tombstones: unknown version 2");
    ck_assert_int_eq(tombstones_decode(d, 5, &back, &err), KILN_ECORRUPT);
    /* an entry cut short, with a CRC that matches what is there */
    buf cut = BUF_INIT;
    static const uint8_t part[] = {0x01, 0x30, 0xBA, 0x30, 0x01, 0x02, 0x02};
    buf_append(&cut, part, sizeof part);
    uint32_t crc = crc32c(0, part + 5, 2);
    uint8_t c4[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
    buf_append(&cut, c4, 4);
    ck_assert_int_eq(tombstones_decode((uint8_t *)cut.data, cut.len, &back, &err), KILN_ECORRUPT);
    ck_assert_str_eq(err.msg, "tombstones: truncated entry at byte 5");
    ck_assert_uint_eq(back.n, 0);
    buf_free(&cut);
    buf_free(&b);
    buf_free(&e);
    tombstones_free(&t);
    tombstones_free(&back);
}
END_TEST

/* Chunks with deletions: untouched ones pass, covered ones go, the rest
 * are encoded again without the deleted samples. */
START_TEST(test_apply_to_chunks) {
    sample s[360];
    for (int i = 0; i < 360; i++)
        s[i] = (sample){1000 + i * 10, (double)i};
    arena a;
    arena_init(&a, 0);
    block_chunk *c;
    size_t nc;
    ck_assert_int_eq(chunks_from_samples(s, 360, &a, &c, &nc), 0);
    ck_assert_uint_eq(nc, 3);
    ck_assert(c[1].mint == 2200 && c[1].maxt == 3390);
    /* nothing touched: the same array back */
    tstone far[1] = {{0, 90000, 95000}};
    const block_chunk *out;
    size_t nout;
    ck_assert_int_eq(tombstones_apply(c, nc, far, 1, &a, &out, &nout), 0);
    ck_assert_ptr_eq(out, c);
    ck_assert_uint_eq(nout, 3);
    /* the middle chunk gone whole, two samples of the last */
    tstone iv[2] = {{0, 2200, 3390}, {0, 3400, 3410}};
    ck_assert_int_eq(tombstones_apply(c, nc, iv, 2, &a, &out, &nout), 0);
    ck_assert_uint_eq(nout, 2);
    ck_assert_ptr_eq(out[0].data, c[0].data);
    ck_assert(out[1].mint == 3420 && out[1].maxt == 4590);
    xoriter it;
    xoriter_init(&it, out[1].data, out[1].len);
    int k = 0;
    while (xoriter_next(&it) == 1) {
        ck_assert(it.t == 3420 + k * 10 && it.v == 242.0 + k);
        k++;
    }
    ck_assert_int_eq(k, 118);
    /* everything */
    tstone all[1] = {{0, INT64_MIN, INT64_MAX}};
    ck_assert_int_eq(tombstones_apply(c, nc, all, 1, &a, &out, &nout), 0);
    ck_assert_uint_eq(nout, 0);
    arena_free(&a);
}
END_TEST

/* ---- deletion through the storage --------------------------------------------- */

static char dir[256];

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/kiln-test-delete-XXXXXX");
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

static const int64_t H = 3600 * 1000;
static const int64_t T0 = 1700000000000LL / (2 * 3600 * 1000) * (2 * 3600 * 1000);

/* 4 series {__name__="m", i="0".."3"}, one sample a minute, minutes
 * [k0, k1) after T0. */
static void fill_range(storage *s, int k0, int k1) {
    for (int k = k0; k < k1; k++) {
        appender *a = storage_appender(s);
        for (int i = 0; i < 4; i++) {
            char inst[16];
            snprintf(inst, sizeof inst, "%d", i);
            label ls[2] = {{"__name__", "m"}, {"i", inst}};
            uint64_t ref = 0;
            ck_assert_int_eq(appender_append(a, &ref, ls, 2, T0 + k * 60000, i * 1000.0 + k, NULL), 0);
        }
        ck_assert_int_eq(appender_commit(a, NULL), 0);
    }
}

/* The first 5 h. */
static void fill(storage *s) {
    fill_range(s, 0, 300);
}

/* A storage whose head was filled and then compacted into one block. */
static storage *open_compacted(void) {
    storage *s = open_st();
    fill(s);
    kiln_err err = {0};
    ck_assert_msg(storage_compact(s, &err) == 0, "%s", err.msg);
    return s;
}

/* The samples of {i=inst}: count, and that none lies in [dmin, dmax]. */
static size_t samples_of(storage *s, const char *inst, int64_t dmin, int64_t dmax) {
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "i", inst, NULL), 0);
    querier *q;
    ck_assert_int_eq(storage_querier(s, INT64_MIN, INT64_MAX, &q, NULL), 0);
    series_set set;
    select_hints h = {INT64_MIN, INT64_MAX, 0, 0};
    kiln_err err = {0};
    ck_assert_msg(querier_select(q, &m, 1, &h, &set, &err) == 0, "%s", err.msg);
    size_t n = 0;
    for (size_t i = 0; i < set.n; i++)
        for (size_t k = 0; k < set.v[i].n; k++, n++) {
            ck_assert_msg(set.v[i].s[k].t < dmin || set.v[i].s[k].t > dmax, "deleted sample at %lld",
                          (long long)set.v[i].s[k].t);
            if (k)
                ck_assert(set.v[i].s[k].t > set.v[i].s[k - 1].t);
        }
    series_set_free(&set);
    querier_close(q);
    matcher_free(&m);
    return n;
}

static int blocks_in_dir(char names[][300], int max) {
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strlen(e->d_name) == 26 && n < max)
            snprintf(names[n++], 300, "%s", e->d_name);
    closedir(d);
    return n;
}

static long tombstones_size(const char *ulid) {
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s/tombstones", dir, ulid);
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static void del(storage *s, const char *inst, int64_t mint, int64_t maxt) {
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "i", inst, NULL), 0);
    kiln_err err = {0};
    ck_assert_msg(storage_delete_series(s, &m, 1, mint, maxt, &err) == 0, "%s", err.msg);
    matcher_free(&m);
}

START_TEST(test_delete_head_and_block) {
    storage *s = open_compacted();
    kiln_err err = {0};
    char names[8][300];
    ck_assert_int_eq(blocks_in_dir(names, 8), 1);
    ck_assert_int_eq(tombstones_size(names[0]), 9);
    ck_assert_uint_eq(samples_of(s, "1", 0, -1), 300);
    /* 1 h .. 3 h of series 1: 60 samples in the block, 61 in the head */
    int64_t dmin = T0 + H, dmax = T0 + 3 * H;
    del(s, "1", dmin, dmax);
    ck_assert_uint_eq(samples_of(s, "1", dmin, dmax), 300 - 121);
    ck_assert_uint_eq(samples_of(s, "2", 0, -1), 300);
    ck_assert_int_gt(tombstones_size(names[0]), 9);
    /* all of series 3 */
    del(s, "3", INT64_MIN, INT64_MAX);
    ck_assert_uint_eq(samples_of(s, "3", 0, -1), 0);
    /* a matcher nothing matches changes nothing */
    del(s, "nope", INT64_MIN, INT64_MAX);
    ck_assert_int_eq(storage_delete_series(s, NULL, 0, 0, 1, &err), KILN_EINVAL);
    /* kept over a restart: the block's file and the WAL's record */
    close_st(s);
    s = open_st();
    ck_assert_uint_eq(samples_of(s, "1", dmin, dmax), 300 - 121);
    ck_assert_uint_eq(samples_of(s, "3", 0, -1), 0);
    ck_assert_uint_eq(samples_of(s, "0", 0, -1), 300);
    /* appends go on after the deleted range */
    appender *a = storage_appender(s);
    label ls[2] = {{"__name__", "m"}, {"i", "1"}};
    uint64_t ref = 0;
    ck_assert_int_eq(appender_append(a, &ref, ls, 2, T0 + 300 * 60000, 1, NULL), 0);
    ck_assert_int_eq(appender_commit(a, NULL), 0);
    ck_assert_uint_eq(samples_of(s, "1", dmin, dmax), 300 - 121 + 1);
    close_st(s);
}
END_TEST

START_TEST(test_clean_tombstones) {
    storage *s = open_compacted();
    kiln_err err = {0};
    char before[8][300], after[8][300];
    ck_assert_int_eq(blocks_in_dir(before, 8), 1);
    /* nothing to clean: the block stays */
    ck_assert_msg(storage_clean_tombstones(s, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(blocks_in_dir(after, 8), 1);
    ck_assert_str_eq(after[0], before[0]);
    int64_t dmin = T0 + 30 * 60000, dmax = T0 + 45 * 60000;
    del(s, "2", dmin, dmax);
    del(s, "3", INT64_MIN, INT64_MAX);
    ck_assert_msg(storage_clean_tombstones(s, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(blocks_in_dir(after, 8), 1);
    ck_assert_str_ne(after[0], before[0]);
    ck_assert_int_eq(tombstones_size(after[0]), 9);
    ck_assert_uint_eq(samples_of(s, "2", dmin, dmax), 300 - 16);
    ck_assert_uint_eq(samples_of(s, "3", 0, -1), 0);
    ck_assert_uint_eq(samples_of(s, "0", 0, -1), 300);
    /* the head's deletion holds through its compaction into a block */
    fill_range(s, 300, 400);
    ck_assert_msg(storage_compact(s, &err) == 0, "%s", err.msg);
    ck_assert_int_ge(blocks_in_dir(after, 8), 2);
    ck_assert_uint_eq(samples_of(s, "3", 0, T0 + 300 * 60000 - 1), 100);
    close_st(s);
    s = open_st();
    ck_assert_uint_eq(samples_of(s, "3", 0, T0 + 300 * 60000 - 1), 100);
    ck_assert_uint_eq(samples_of(s, "2", dmin, dmax), 400 - 16);
    close_st(s);
}
END_TEST

/* Compaction rewrites a block whose tombstones outnumber 5% of its series
 * when it spans the middle block range (here the only one: 2 h). */
START_TEST(test_compaction_rewrites_deleted) {
    storage_opts o = storage_opts_default();
    o.dir = dir;
    o.max_block_range_ms = 2 * H;
    storage *s = NULL;
    ck_assert_int_eq(storage_open(&o, &s, NULL), 0);
    fill(s);
    kiln_err err = {0};
    ck_assert_msg(storage_compact(s, &err) == 0, "%s", err.msg);
    char before[8][300], after[8][300];
    ck_assert_int_eq(blocks_in_dir(before, 8), 1);
    del(s, "2", T0, T0 + 10 * 60000); /* 1 of 4 series: 25% */
    ck_assert_int_gt(tombstones_size(before[0]), 9);
    ck_assert_msg(storage_compact(s, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(blocks_in_dir(after, 8), 1);
    ck_assert_str_ne(after[0], before[0]);
    ck_assert_int_eq(tombstones_size(after[0]), 9);
    ck_assert_uint_eq(samples_of(s, "2", T0, T0 + 10 * 60000), 300 - 11);
    close_st(s);
    /* with the default ranges (2 h, 6 h, 18 h) a 2 h block is left alone */
    s = open_st();
    del(s, "1", T0, T0 + 10 * 60000);
    ck_assert_msg(storage_compact(s, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(blocks_in_dir(before, 8), 1);
    ck_assert_str_eq(before[0], after[0]);
    ck_assert_int_gt(tombstones_size(before[0]), 9);
    close_st(s);
}
END_TEST

/* A block whose every series is deleted goes away on clean_tombstones. */
START_TEST(test_clean_empties_block) {
    storage *s = open_compacted();
    kiln_err err = {0};
    char names[8][300];
    ck_assert_int_eq(blocks_in_dir(names, 8), 1);
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "__name__", "m", NULL), 0);
    ck_assert_int_eq(storage_delete_series(s, &m, 1, T0, T0 + 2 * H - 1, &err), 0);
    matcher_free(&m);
    ck_assert_msg(storage_clean_tombstones(s, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(blocks_in_dir(names, 8), 0);
    ck_assert_uint_eq(samples_of(s, "0", 0, -1), 180);
    close_st(s);
}
END_TEST

/* A damaged tombstones file: the block is reported and skipped, the rest serves. */
START_TEST(test_damaged_tombstones_file) {
    storage *s = open_compacted();
    kiln_err err = {0};
    close_st(s);
    char names[8][300], p[1024];
    ck_assert_int_eq(blocks_in_dir(names, 8), 1);
    snprintf(p, sizeof p, "%s/%s/tombstones", dir, names[0]);
    FILE *f = fopen(p, "wb");
    fputs("garbage!!", f);
    fclose(f);
    block *b = NULL;
    ck_assert_int_eq(block_open(dir, names[0], &b, &err), KILN_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "tombstones: bad magic 0x67617262"));
    ck_assert_ptr_null(b);
    s = open_st();
    /* the head's 3 h at least (the WAL may still hold the older samples) */
    ck_assert_uint_ge(samples_of(s, "0", 0, -1), 180);

    close_st(s);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("delete");
    TCase *tc = tcase_create("tombstones");
    tcase_add_test(tc, test_add_merges);
    tcase_add_test(tc, test_filter_and_cover);
    tcase_add_test(tc, test_file_format);
    tcase_add_test(tc, test_apply_to_chunks);
    suite_add_tcase(s, tc);
    TCase *ts = tcase_create("storage");
    tcase_set_timeout(ts, 60);
    tcase_add_checked_fixture(ts, setup, teardown);
    tcase_add_test(ts, test_delete_head_and_block);
    tcase_add_test(ts, test_clean_tombstones);
    tcase_add_test(ts, test_clean_empties_block);
    tcase_add_test(ts, test_compaction_rewrites_deleted);
    tcase_add_test(ts, test_damaged_tombstones_file);
    suite_add_tcase(s, ts);
    return s;
}
