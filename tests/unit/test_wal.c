/*
 * test_wal.c - the WAL file layer: CRC32C vectors, the bits of a FULL
 * fragment, round trips across pages and segments with each compression,
 * batches and concurrent writers, reopening, corruption of every kind with
 * repair (everything before the damage must come back, nothing after), and
 * checkpoints.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/wal.h"
#include "storage/walrec.h"
#include "util/util.h"

#define KILN_TEST_MAIN
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

static void rm_rf(const char *dir) {
    kiln_err err = {0};
    ck_assert_msg(fileio_rm_rf(dir, &err) == 0, "%s", err.msg);
}

static char *tmp_dir(void) {
    char *d = strdup("/tmp/kiln_test_wal_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(d));
    return d;
}

static int64_t file_size(const char *dir, int seg) {
    char p[512];
    snprintf(p, sizeof p, "%s/%08d", dir, seg);
    struct stat st;
    return stat(p, &st) == 0 ? st.st_size : -1;
}

static void read_file(const char *dir, int seg, buf *b) {
    char p[512];
    snprintf(p, sizeof p, "%s/%08d", dir, seg);
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    char tmp[65536];
    size_t n;
    b->len = 0;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_append(b, tmp, n);
    fclose(f);
}

static void patch_file(const char *dir, int seg, int64_t off, const void *p, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%08d", dir, seg);
    int fd = open(path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, p, n, off), (ssize_t)n);
    close(fd);
}

/* Deterministic record i: its length from a size class, content a mix of
 * a counter (compressible) and noise. */
static size_t rec_len(size_t i) {
    static const size_t sizes[] = {1, 10, 100, 1000, 33000, 70000, 300000, 5, 40, 4000};
    if (i % 97 == 96)
        return 0;
    return sizes[i % 10] + i % 7;
}

static void make_rec(size_t i, buf *b) {
    size_t n = rec_len(i);
    b->len = 0;
    buf_reserve(b, n);
    uint64_t x = i * 0x9E3779B97F4A7C15ull + 1;
    for (size_t k = 0; k < n; k++) {
        if (k % 16 < 8) {
            b->data[k] = (char)(k / 16 + i);
        } else {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            b->data[k] = (char)x;
        }
    }
    b->len = n;
}

/* Writes records [first, first+n) with the options. */
static void write_recs(const char *dir, const wal_opts *o, size_t first, size_t n) {
    wal *w;
    kiln_err err = {0};
    ck_assert_msg(wal_open(dir, o, &w, &err) == 0, "%s", err.msg);
    buf b = BUF_INIT;
    for (size_t i = first; i < first + n; i++) {
        make_rec(i, &b);
        ck_assert_msg(wal_log(w, b.data, b.len, &err) == 0, "%s", err.msg);
    }
    ck_assert_int_eq(wal_close(w, &err), 0);
    buf_free(&b);
}

typedef struct pos {
    int seg;
    int64_t end;
} pos;

/* Reads the WAL, checks every record against make_rec(i) from 0 on, and
 * returns the count and the reader's rc; positions[i] gets each record's end. */
static size_t read_once(const char *dir, int *rc_out, pos *positions, size_t cap, int use_pread) {
    wal_reader *r;
    kiln_err err = {0};
    ck_assert_msg(wal_reader_open(dir, &r, &err) == 0, "%s", err.msg);
    if (use_pread)
        wal_reader_use_pread(r);
    buf want = BUF_INIT;
    size_t i = 0;
    const uint8_t *rec;
    size_t len;
    int rc;
    while ((rc = wal_reader_next(r, &rec, &len, &err)) == 1) {
        make_rec(i, &want);
        ck_assert_msg(len == want.len, "record %zu: len %zu want %zu", i, len, want.len);
        ck_assert_msg(len == 0 || memcmp(rec, want.data, len) == 0, "record %zu differs", i);
        if (positions && i < cap)
            wal_reader_position(r, &positions[i].seg, &positions[i].end);
        i++;
    }
    if (rc == KILN_ECORRUPT) {
        const wal_corruption *c = wal_reader_corruption(r);
        ck_assert_ptr_nonnull(c);
        ck_assert_msg(strstr(err.msg, "offset"), "%s", err.msg);
        /* the same error again, no more records */
        ck_assert_int_eq(wal_reader_next(r, &rec, &len, &err), KILN_ECORRUPT);
    } else {
        ck_assert_msg(rc == 0, "rc %d: %s", rc, err.msg);
        ck_assert_ptr_null(wal_reader_corruption(r));
    }
    uint64_t nrec, nbytes;
    wal_reader_counts(r, &nrec, &nbytes);
    ck_assert_uint_eq(nrec, i);
    *rc_out = rc;
    wal_reader_close(r);
    buf_free(&want);
    return i;
}

/* Reads every record, checking each; the count of good ones.  Twice: from
 * the mapped segments and with pread (what the reader falls back to), which
 * must agree. */
static size_t read_check(const char *dir, int *rc_out, pos *positions, size_t cap) {
    int rc2;
    size_t n2 = read_once(dir, &rc2, NULL, 0, 1);
    size_t n = read_once(dir, rc_out, positions, cap, 0);
    ck_assert_uint_eq(n, n2);
    ck_assert_int_eq(*rc_out, rc2);
    return n;
}

static wal_opts small_opts(int compression) {
    wal_opts o = wal_opts_default();
    o.segment_size = 4 * WAL_PAGE_SIZE;
    o.compression = compression;
    return o;
}

/* ---- tests ------------------------------------------------------------------ */

START_TEST(test_crc32c) {
    static const struct {
        const char *in;
        size_t n;
        uint32_t crc;
    } cases[] = {
        {"", 0, 0},
        {"123456789", 9, 0xE3069283u},
        {"a", 1, 0xC1D04330u},
        {"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 32, 0x8A9136AAu},
        {"The quick brown fox jumps over the lazy dog", 43, 0x22620404u},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_uint_eq(crc32c(0, cases[i].in, cases[i].n), cases[i].crc);
        ck_assert_uint_eq(crc32c_sw(0, cases[i].in, cases[i].n), cases[i].crc);
    }
    uint8_t ff[32];
    memset(ff, 0xff, sizeof ff);
    ck_assert_uint_eq(crc32c(0, ff, 32), 0x62A8AB43u);
    /* both paths agree on every length and alignment, and chain */
    uint8_t data[300];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 131 + 7);
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n + off <= sizeof data; n += 13) {
            uint32_t a = crc32c(0, data + off, n);
            ck_assert_uint_eq(a, crc32c_sw(0, data + off, n));
            size_t h = n / 3;
            ck_assert_uint_eq(a, crc32c(crc32c(0, data + off, h), data + off + h, n - h));
        }
}
END_TEST

START_TEST(test_full_record_bits) {
    char *dir = tmp_dir();
    wal_opts o = small_opts(WAL_COMPRESS_NONE);
    wal *w;
    kiln_err err = {0};
    ck_assert_int_eq(wal_open(dir, &o, &w, &err), 0);
    ck_assert_int_eq(wal_log(w, "hello", 5, &err), 0);
    ck_assert_int_eq(file_size(dir, 0), 12); /* written through at once */
    /* a compressible record with snappy on: the flag is bit 3 */
    ck_assert_int_eq(wal_close(w, &err), 0);
    buf b = BUF_INIT;
    read_file(dir, 0, &b);
    ck_assert_uint_eq(b.len, WAL_PAGE_SIZE); /* close pads the page */
    const uint8_t *p = (const uint8_t *)b.data;
    ck_assert_uint_eq(p[0], 0x01); /* FULL, no compression flags */
    ck_assert_uint_eq(p[1], 0x00);
    ck_assert_uint_eq(p[2], 0x05); /* big-endian length */
    uint32_t crc = crc32c(0, "hello", 5);
    ck_assert_uint_eq(p[3], crc >> 24);
    ck_assert_uint_eq(p[4], (crc >> 16) & 0xff);
    ck_assert_uint_eq(p[5], (crc >> 8) & 0xff);
    ck_assert_uint_eq(p[6], crc & 0xff);
    ck_assert_int_eq(memcmp(p + 7, "hello", 5), 0);
    for (size_t i = 12; i < b.len; i++)
        ck_assert_uint_eq(p[i], 0);

    /* snappy and zstd set bits 3 and 4 on a compressible record */
    static const struct {
        int c;
        uint8_t type;
    } comp[] = {{WAL_COMPRESS_SNAPPY, 0x09}, {WAL_COMPRESS_ZSTD, 0x11}};
    char big[2000];
    memset(big, 'x', sizeof big);
    for (size_t k = 0; k < 2; k++) {
        rm_rf(dir);
        o.compression = comp[k].c;
        ck_assert_int_eq(wal_open(dir, &o, &w, &err), 0);
        ck_assert_int_eq(wal_log(w, big, sizeof big, &err), 0);
        ck_assert_int_eq(wal_log(w, "ab", 2, &err), 0); /* does not shrink: stored raw */
        ck_assert_int_eq(wal_close(w, &err), 0);
        read_file(dir, 0, &b);
        p = (const uint8_t *)b.data;
        ck_assert_uint_eq(p[0], comp[k].type);
        size_t l = (size_t)p[1] << 8 | p[2];
        ck_assert_uint_lt(l, 200);
        ck_assert_uint_eq(p[7 + l], 0x01);
        int rc;
        wal_reader *r;
        ck_assert_int_eq(wal_reader_open(dir, &r, &err), 0);
        const uint8_t *rec;
        size_t len;
        ck_assert_int_eq(wal_reader_next(r, &rec, &len, &err), 1);
        ck_assert_uint_eq(len, sizeof big);
        ck_assert_int_eq(memcmp(rec, big, len), 0);
        ck_assert_int_eq(wal_reader_next(r, &rec, &len, &err), 1);
        ck_assert_uint_eq(len, 2);
        rc = wal_reader_next(r, &rec, &len, &err);
        ck_assert_int_eq(rc, 0);
        wal_reader_close(r);
    }
    buf_free(&b);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_fragments_layout) {
    /* a 70005-byte record at offset 0: FIRST and MIDDLE fill pages 0 and 1, LAST goes in page 2 */
    char *dir = tmp_dir();
    wal_opts o = small_opts(WAL_COMPRESS_NONE);
    wal *w;
    kiln_err err = {0};
    buf rec = BUF_INIT, f = BUF_INIT;
    make_rec(5, &rec);
    ck_assert_uint_eq(rec.len, 70005);
    ck_assert_int_eq(wal_open(dir, &o, &w, &err), 0);
    ck_assert_int_eq(wal_log(w, rec.data, rec.len, &err), 0);
    ck_assert_int_eq(wal_close(w, &err), 0);
    read_file(dir, 0, &f);
    const uint8_t *p = (const uint8_t *)f.data;
    ck_assert_uint_eq(p[0], WAL_FRAG_FIRST);
    ck_assert_uint_eq((size_t)p[1] << 8 | p[2], WAL_PAGE_SIZE - 7);
    ck_assert_uint_eq(p[WAL_PAGE_SIZE], WAL_FRAG_MIDDLE);
    ck_assert_uint_eq((size_t)p[WAL_PAGE_SIZE + 1] << 8 | p[WAL_PAGE_SIZE + 2], WAL_PAGE_SIZE - 7);
    ck_assert_uint_eq(p[2 * WAL_PAGE_SIZE], WAL_FRAG_LAST);
    ck_assert_uint_eq((size_t)p[2 * WAL_PAGE_SIZE + 1] << 8 | p[2 * WAL_PAGE_SIZE + 2],
                      70005 - 2 * (WAL_PAGE_SIZE - 7));
    ck_assert_uint_eq(f.len, 3 * WAL_PAGE_SIZE);
    buf_free(&rec);
    buf_free(&f);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_roundtrip_each_compression) {
    static const int comps[] = {WAL_COMPRESS_NONE, WAL_COMPRESS_SNAPPY, WAL_COMPRESS_ZSTD};
    enum { N = 300 };
    for (size_t c = 0; c < 3; c++) {
        char *dir = tmp_dir();
        wal_opts o = small_opts(comps[c]);
        /* two writer sessions: the second continues in a new segment */
        write_recs(dir, &o, 0, N / 2);
        int first, last;
        kiln_err err = {0};
        ck_assert_int_eq(wal_segments(dir, &first, &last, &err), 0);
        int last1 = last;
        write_recs(dir, &o, N / 2, N - N / 2);
        ck_assert_int_eq(wal_segments(dir, &first, &last, &err), 0);
        ck_assert_int_eq(first, 0);
        ck_assert_int_gt(last, last1);
        ck_assert_int_gt(last, 5);
        /* segments hold whole pages and respect the size unless a record is bigger */
        for (int s = first; s <= last; s++) {
            int64_t sz = file_size(dir, s);
            ck_assert_int_eq(sz % WAL_PAGE_SIZE, 0);
            /* only a 300 KB record gets an oversized segment, of its own */
            if (sz > (int64_t)o.segment_size)
                ck_assert_int_le(sz, 300006 + 10 * 7 + WAL_PAGE_SIZE);
        }
        int rc;
        size_t n = read_check(dir, &rc, NULL, 0);
        ck_assert_int_eq(rc, 0);
        ck_assert_uint_eq(n, N);
        /* wal_reader_next_into appends each record, decompressed, after what the buffer holds */
        wal_reader *r;
        ck_assert_int_eq(wal_reader_open(dir, &r, &err), 0);
        buf all = BUF_INIT, want = BUF_INIT;
        ck_assert_int_eq(buf_puts(&all, "head"), 0);
        size_t len, i = 0;
        while ((rc = wal_reader_next_into(r, &all, &len, &err)) == 1) {
            make_rec(i++, &want);
            ck_assert_uint_eq(len, want.len);
            ck_assert_int_eq(memcmp(all.data + all.len - len, want.data, len), 0);
            ck_assert_int_eq(all.data[all.len], 0);
        }
        ck_assert_int_eq(rc, 0);
        ck_assert_uint_eq(i, N);
        ck_assert_int_eq(memcmp(all.data, "head", 4), 0);
        size_t total = 4;
        for (size_t k = 0; k < N; k++)
            total += rec_len(k);
        ck_assert_uint_eq(all.len, total);
        wal_reader_close(r);
        buf_free(&all);
        buf_free(&want);
        rm_rf(dir);
        free(dir);
    }
}
END_TEST

/* A record that does not decompress leaves wal_reader_next_into's buffer as it was. */
START_TEST(test_next_into_corrupt_record) {
    char *dir = tmp_dir();
    wal_opts o = small_opts(WAL_COMPRESS_SNAPPY);
    write_recs(dir, &o, 3, 1); /* 1000 bytes, compressible */
    /* the fragment header is 7 bytes; break the snappy length varint and fix the CRC */
    char path[512];
    snprintf(path, sizeof path, "%s/%08d", dir, 0);
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    uint8_t h[7];
    ck_assert_int_eq(pread(fd, h, 7, 0), 7);
    size_t flen = (size_t)h[1] << 8 | h[2];
    uint8_t *d = malloc(flen);
    ck_assert_int_eq(pread(fd, d, flen, 7), (ssize_t)flen);
    d[0] = 0xff, d[1] = 0xff, d[2] = 0xff, d[3] = 0xff, d[4] = 0x7f; /* claims a huge record */
    uint32_t crc = crc32c(0, d, flen);
    uint8_t c[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
    ck_assert_int_eq(pwrite(fd, d, flen, 7), (ssize_t)flen);
    ck_assert_int_eq(pwrite(fd, c, 4, 3), 4);
    close(fd);
    free(d);
    wal_reader *r;
    kiln_err err = {0};
    ck_assert_int_eq(wal_reader_open(dir, &r, &err), 0);
    buf out = BUF_INIT;
    ck_assert_int_eq(buf_puts(&out, "kept"), 0);
    size_t len;
    ck_assert_int_eq(wal_reader_next_into(r, &out, &len, &err), KILN_ECORRUPT);
    ck_assert_msg(strstr(err.msg, "does not decompress") != NULL, "%s", err.msg);
    ck_assert_uint_eq(out.len, 4);
    ck_assert_str_eq(out.data, "kept");
    wal_reader_close(r);
    buf_free(&out);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_batch_and_stats) {
    char *dir = tmp_dir();
    wal_opts o = small_opts(WAL_COMPRESS_SNAPPY);
    o.fsync_policy = WAL_FSYNC_ALWAYS;
    wal *w;
    kiln_err err = {0};
    ck_assert_int_eq(wal_open(dir, &o, &w, &err), 0);
    enum { N = 40 };
    buf bufs[N];
    wal_rec recs[N];
    size_t raw = 0;
    for (size_t i = 0; i < N; i++) {
        bufs[i] = (buf)BUF_INIT;
        make_rec(i, &bufs[i]);
        recs[i].data = bufs[i].data;
        recs[i].len = bufs[i].len;
        raw += bufs[i].len;
    }
    ck_assert_int_eq(wal_log_batch(w, recs, 20, &err), 0);
    ck_assert_int_eq(wal_log_batch(w, recs + 20, N - 20, &err), 0);
    wal_stats st;
    wal_get_stats(w, &st);
    ck_assert_uint_eq(st.records_written, N);
    ck_assert_uint_eq(st.record_bytes, raw);
    ck_assert_uint_ge(st.fsyncs, 2);
    ck_assert_uint_eq(st.writes_failed, 0);
    int seg = wal_next_segment(w, &err);
    ck_assert_int_gt(seg, 0);
    wal_get_stats(w, &st);
    ck_assert_int_eq(st.segment_current, seg);
    ck_assert_int_eq(wal_sync(w, &err), 0);
    wal_count_corruption(w, 2);
    wal_get_stats(w, &st);
    ck_assert_uint_eq(st.corruptions, 2);
    uint64_t on_disk = 0;
    for (int s = 0; s <= seg; s++)
        on_disk += (uint64_t)file_size(dir, s);
    ck_assert_uint_eq(st.bytes_written, on_disk);
    ck_assert_int_eq(wal_close(w, &err), 0);
    int rc;
    ck_assert_uint_eq(read_check(dir, &rc, NULL, 0), N);
    ck_assert_int_eq(rc, 0);
    for (size_t i = 0; i < N; i++)
        buf_free(&bufs[i]);
    rm_rf(dir);
    free(dir);
}
END_TEST

typedef struct thr_arg {
    wal *w;
    int id;
} thr_arg;

static void *logger(void *p) {
    thr_arg *a = p;
    char rec[64];
    for (int i = 0; i < 500; i++) {
        int n = snprintf(rec, sizeof rec, "%d:%d:", a->id, i);
        memset(rec + n, 'a' + a->id, (size_t)(i % 40));
        if (wal_log(a->w, rec, (size_t)n + (size_t)(i % 40), NULL))
            return (void *)1;
    }
    return NULL;
}

START_TEST(test_concurrent_writers) {
    char *dir = tmp_dir();
    wal_opts o = small_opts(WAL_COMPRESS_SNAPPY);
    o.fsync_policy = WAL_FSYNC_PERIODIC;
    o.fsync_interval_ms = 5;
    wal *w;
    kiln_err err = {0};
    ck_assert_int_eq(wal_open(dir, &o, &w, &err), 0);
    pthread_t t[4];
    thr_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i].w = w;
        a[i].id = i;
        pthread_create(&t[i], NULL, logger, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        void *res;
        pthread_join(t[i], &res);
        ck_assert_ptr_null(res);
    }
    ck_assert_int_eq(wal_close(w, &err), 0);
    wal_reader *r;
    ck_assert_int_eq(wal_reader_open(dir, &r, &err), 0);
    int next[4] = {0};
    const uint8_t *rec;
    size_t len;
    int rc, total = 0;
    while ((rc = wal_reader_next(r, &rec, &len, &err)) == 1) {
        int id, i, n;
        char tmp[80];
        memcpy(tmp, rec, len);
        tmp[len] = 0;
        ck_assert_int_eq(sscanf(tmp, "%d:%d:%n", &id, &i, &n), 2);
        ck_assert(id >= 0 && id < 4);
        ck_assert_int_eq(i, next[id]); /* each thread's records in its order */
        ck_assert_uint_eq(len, (size_t)n + (size_t)(i % 40));
        next[id]++;
        total++;
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(total, 2000);
    wal_reader_close(r);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- corruption ------------------------------------------------------------------- */

enum { CN = 120 };

typedef enum { FLIP, TRUNCATE, ZERO_PAGE, GARBAGE_TAIL, ZERO_TAIL, DELETE_SEGMENT, BAD_TYPE } damage;

/* How many records end at or before (seg, off). */
static size_t recs_before(const pos *p, size_t n, int seg, int64_t off) {
    size_t k = 0;
    while (k < n && (p[k].seg < seg || (p[k].seg == seg && p[k].end <= off)))
        k++;
    return k;
}

static void corruption_case(damage d, int compression) {
    char *dir = tmp_dir();
    wal_opts o = small_opts(compression);
    o.segment_size = 8 * WAL_PAGE_SIZE;
    write_recs(dir, &o, 0, CN);
    static pos p[CN];
    int rc, first, last;
    kiln_err err = {0};
    ck_assert_uint_eq(read_check(dir, &rc, p, CN), CN);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(wal_segments(dir, &first, &last, &err), 0);
    ck_assert_int_ge(last, 3);
    int seg = last / 2;
    int64_t sz = file_size(dir, seg);
    size_t expect = CN;
    int expect_corrupt = 1;
    switch (d) {
    case FLIP: {
        int64_t off = sz / 2;
        buf b = BUF_INIT;
        read_file(dir, seg, &b);
        char c = (char)(b.data[off] ^ 0x20);
        patch_file(dir, seg, off, &c, 1);
        /* the record holding that byte and all after are lost; the byte may also sit in padding */
        expect = recs_before(p, CN, seg, off);
        buf_free(&b);
        break;
    }
    case TRUNCATE: {
        seg = last;
        /* cut in the middle of the last multi-fragment or any record of the last segment */
        int64_t off = p[CN - 1].end - 3;
        char path[512];
        snprintf(path, sizeof path, "%s/%08d", dir, seg);
        ck_assert_int_eq(truncate(path, off), 0);
        expect = recs_before(p, CN, seg, off);
        ck_assert_uint_eq(expect, CN - 1);
        break;
    }
    case ZERO_PAGE: {
        ck_assert_int_ge(sz, 2 * WAL_PAGE_SIZE);
        int64_t off = WAL_PAGE_SIZE;
        static char z[WAL_PAGE_SIZE];
        patch_file(dir, seg, off, z, sizeof z);
        expect = recs_before(p, CN, seg, off);
        break;
    }
    case GARBAGE_TAIL: {
        seg = last;
        static const char g[] = "\x05garbage after the tail";
        patch_file(dir, seg, file_size(dir, seg), g, sizeof g);
        expect = CN;
        break;
    }
    case ZERO_TAIL: {
        /* a crash can leave a zero-filled page at the end: a torn tail, nothing lost */
        seg = last;
        static char z[WAL_PAGE_SIZE];
        patch_file(dir, seg, file_size(dir, seg), z, sizeof z);
        expect = CN;
        break;
    }
    case DELETE_SEGMENT: {
        char path[512];
        snprintf(path, sizeof path, "%s/%08d", dir, seg);
        ck_assert_int_eq(unlink(path), 0);
        expect = recs_before(p, CN, seg - 1, INT64_MAX);
        break;
    }
    case BAD_TYPE: {
        /* an unknown fragment type at the start of a segment */
        char c = 0x07;
        patch_file(dir, seg, 0, &c, 1);
        expect = recs_before(p, CN, seg - 1, INT64_MAX);
        break;
    }
    }
    size_t got = read_check(dir, &rc, NULL, 0);
    ck_assert_msg(got == expect, "damage %d comp %d: read %zu want %zu", d, compression, got, expect);
    ck_assert_int_eq(rc, expect_corrupt ? KILN_ECORRUPT : 0);

    /* the corruption names a position; repair cuts there */
    wal_reader *r;
    ck_assert_int_eq(wal_reader_open(dir, &r, &err), 0);
    const uint8_t *rec;
    size_t len;
    while ((rc = wal_reader_next(r, &rec, &len, &err)) == 1)
        ;
    ck_assert_int_eq(rc, KILN_ECORRUPT);
    wal_corruption c = *wal_reader_corruption(r);
    wal_reader_close(r);
    ck_assert_int_eq(c.in_checkpoint, 0);
    ck_assert_msg(wal_repair(dir, c.segment, c.offset, &err) == 0, "%s", err.msg);
    got = read_check(dir, &rc, NULL, 0);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(got, expect);
    ck_assert_int_eq(wal_segments(dir, &first, &last, &err), 0);
    ck_assert_int_le(last, c.segment);

    /* writing goes on in a new segment and replays after the survivors */
    wal *w;
    ck_assert_int_eq(wal_open(dir, &o, &w, &err), 0);
    buf b = BUF_INIT;
    make_rec(expect, &b);
    ck_assert_int_eq(wal_log(w, b.data, b.len, &err), 0);
    ck_assert_int_eq(wal_close(w, &err), 0);
    buf_free(&b);
    got = read_check(dir, &rc, NULL, 0);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(got, expect + 1);
    rm_rf(dir);
    free(dir);
}

START_TEST(test_corruption) {
    static const damage ds[] = {FLIP, TRUNCATE, ZERO_PAGE, GARBAGE_TAIL, ZERO_TAIL, DELETE_SEGMENT, BAD_TYPE};
    static const int cs[] = {WAL_COMPRESS_NONE, WAL_COMPRESS_SNAPPY, WAL_COMPRESS_ZSTD};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
        for (size_t j = 0; j < 3; j++)
            corruption_case(ds[i], cs[j]);
}
END_TEST

START_TEST(test_flip_every_region) {
    /* flips at many offsets of a small uncompressed WAL: never more records than before the damage */
    char *dir = tmp_dir();
    wal_opts o = small_opts(WAL_COMPRESS_NONE);
    write_recs(dir, &o, 0, 12);
    static pos p[12];
    int rc;
    ck_assert_uint_eq(read_check(dir, &rc, p, 12), 12);
    buf orig = BUF_INIT;
    read_file(dir, 0, &orig);
    for (int64_t off = 0; off < (int64_t)orig.len; off += 997) {
        char c = (char)(orig.data[off] ^ 0x01);
        patch_file(dir, 0, off, &c, 1);
        size_t got = read_check(dir, &rc, NULL, 0);
        size_t before = recs_before(p, 12, 0, off);
        ck_assert_msg(rc == KILN_ECORRUPT, "flip at %lld not detected", (long long)off);
        ck_assert_msg(got == before, "flip at %lld: %zu records, %zu before it", (long long)off, got, before);
        patch_file(dir, 0, off, orig.data + off, 1);
    }
    buf_free(&orig);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- checkpoints ----------------------------------------------------------------------- */

static int keep_odd(uint64_t ref, void *data) {
    (void)data;
    return ref & 1;
}

/* Writes series 1..nser and samples t = t0..t0+nt-1 for each. */
static void write_series_and_samples(wal *w, uint64_t ser0, uint64_t nser, int64_t t0, int64_t nt) {
    buf b = BUF_INIT;
    kiln_err err = {0};
    for (uint64_t s = ser0; s < ser0 + nser; s++) {
        char v[32];
        int n = snprintf(v, sizeof v, "%llu", (unsigned long long)s);
        walrec_label l[2] = {{"__name__", 8, "m", 1}, {"id", 2, v, (size_t)n}};
        walrec_series se = {s, l, 2};
        buf_reset(&b);
        ck_assert_int_eq(walrec_encode_series(&b, &se, 1), 0);
        ck_assert_int_eq(wal_log(w, b.data, b.len, &err), 0);
    }
    walrec_sample *sm = calloc((size_t)nser, sizeof *sm);
    for (int64_t t = t0; t < t0 + nt; t++) {
        for (uint64_t s = 0; s < nser; s++)
            sm[s] = (walrec_sample){ser0 + s, t, (double)t * 0.5};
        buf_reset(&b);
        ck_assert_int_eq(walrec_encode_samples(&b, sm, (size_t)nser), 0);
        ck_assert_int_eq(wal_log(w, b.data, b.len, &err), 0);
    }
    free(sm);
    buf_free(&b);
}

typedef struct tally {
    size_t series, series_even, samples, samples_early, tombstones;
} tally;

static tally tally_dir(const char *dir) {
    tally t = {0};
    wal_reader *r;
    kiln_err err = {0};
    ck_assert_int_eq(wal_reader_open(dir, &r, &err), 0);
    const uint8_t *rec;
    size_t len;
    int rc;
    arena a;
    arena_init(&a, 0);
    static walrec_sample sm[4096];
    while ((rc = wal_reader_next(r, &rec, &len, &err)) == 1) {
        size_t n;
        switch (walrec_type(rec, len)) {
        case WALREC_SERIES: {
            walrec_series *s;
            ck_assert_int_eq(walrec_decode_series(rec, len, &a, &s, &n, &err), 0);
            for (size_t i = 0; i < n; i++) {
                t.series++;
                t.series_even += !(s[i].ref & 1);
                ck_assert_uint_eq(s[i].nlabels, 2);
            }
            break;
        }
        case WALREC_SAMPLES:
            ck_assert_int_eq(walrec_decode_samples(rec, len, sm, 4096, &n, &err), 0);
            for (size_t i = 0; i < n; i++) {
                t.samples++;
                t.samples_early += sm[i].t < 50;
                ck_assert(sm[i].v == (double)sm[i].t * 0.5);
            }
            break;
        case WALREC_TOMBSTONES:
            t.tombstones++;
            break;
        default:
            break;
        }
    }
    ck_assert_msg(rc == 0, "%s", err.msg);
    arena_free(&a);
    wal_reader_close(r);
    return t;
}

START_TEST(test_checkpoint) {
    char *dir = tmp_dir();
    wal_opts o = small_opts(WAL_COMPRESS_SNAPPY);
    wal *w;
    kiln_err err = {0};
    ck_assert_int_eq(wal_open(dir, &o, &w, &err), 0);
    /* 40 series x 100 samples (t 0..99), a tombstone for an odd and an even series and an old one */
    write_series_and_samples(w, 1, 40, 0, 100);
    buf b = BUF_INIT;
    walrec_tombstone ts[] = {{3, 60, 70}, {4, 60, 70}, {5, 0, 10}};
    ck_assert_int_eq(walrec_encode_tombstones(&b, ts, 3), 0);
    ck_assert_int_eq(wal_log(w, b.data, b.len, &err), 0);
    int cut = wal_next_segment(w, &err);
    ck_assert_int_ge(cut, 1);
    /* newer data in the open segment: 10 more series, 10 samples each from t=100 */
    write_series_and_samples(w, 41, 10, 100, 10);

    wal_checkpoint_opts co = {.mint = 50, .compression = WAL_COMPRESS_SNAPPY};
    wal_checkpoint_stats st;
    ck_assert_msg(wal_checkpoint(dir, 0, cut - 1, keep_odd, NULL, &co, &st, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(st.series_kept, 20);
    ck_assert_uint_eq(st.series_dropped, 20);
    ck_assert_uint_eq(st.samples_kept, 40 * 50);
    ck_assert_uint_eq(st.samples_dropped, 40 * 50);
    ck_assert_uint_eq(st.tombstones_kept, 1);
    ck_assert_uint_eq(st.tombstones_dropped, 2);
    int idx;
    char path[512];
    ck_assert_int_eq(wal_last_checkpoint(dir, &idx, path, sizeof path, &err), 0);
    ck_assert_int_eq(idx, cut - 1);
    ck_assert_int_eq(wal_truncate_before(w, cut, &err), 0);
    int first, last;
    ck_assert_int_eq(wal_segments(dir, &first, &last, &err), 0);
    ck_assert_int_eq(first, cut);

    ck_assert_int_eq(wal_close(w, &err), 0);
    tally t = tally_dir(dir);
    ck_assert_uint_eq(t.series, 20 + 10);
    ck_assert_uint_eq(t.series_even, 5); /* 42..50 even ones from the live segment */
    ck_assert_uint_eq(t.samples, 40 * 50 + 10 * 10);
    ck_assert_uint_eq(t.samples_early, 0);
    ck_assert_uint_eq(t.tombstones, 1);

    /* a second checkpoint builds on the first and deletes it */
    ck_assert_int_eq(wal_open(dir, &o, &w, &err), 0);
    int cut2 = wal_next_segment(w, &err);
    co.mint = 105;
    ck_assert_msg(wal_checkpoint(dir, cut, cut2 - 1, keep_odd, NULL, &co, &st, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(wal_truncate_before(w, cut2, &err), 0);
    ck_assert_int_eq(wal_close(w, &err), 0);
    ck_assert_int_eq(wal_last_checkpoint(dir, &idx, path, sizeof path, &err), 0);
    ck_assert_int_eq(idx, cut2 - 1);
    snprintf(path, sizeof path, "%s/checkpoint.%08d", dir, cut - 1);
    struct stat sst;
    ck_assert_int_ne(stat(path, &sst), 0);
    t = tally_dir(dir);
    ck_assert_uint_eq(t.series, 20 + 5);
    ck_assert_uint_eq(t.samples, 50 * 0 + 10 * 5);
    /* a checkpoint that would skip segments is refused */
    ck_assert_int_lt(wal_checkpoint(dir, cut2 + 5, cut2 + 6, keep_odd, NULL, &co, &st, &err), 0);
    buf_free(&b);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_segments_and_truncate) {
    char *dir = tmp_dir();
    kiln_err err = {0};
    int first, last;
    ck_assert_int_eq(wal_segments(dir, &first, &last, &err), 0);
    ck_assert_int_eq(first, -1);
    ck_assert_int_eq(last, -1);
    wal_opts o = small_opts(WAL_COMPRESS_NONE);
    wal *w;
    ck_assert_int_eq(wal_open(dir, &o, &w, &err), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(wal_next_segment(w, &err), i + 1);
    /* files that are not segments are ignored */
    char p[512];
    snprintf(p, sizeof p, "%s/00000002.tmp", dir);
    fclose(fopen(p, "w"));
    ck_assert_int_eq(wal_segments(dir, &first, &last, &err), 0);
    ck_assert_int_eq(first, 0);
    ck_assert_int_eq(last, 5);
    ck_assert_int_eq(wal_truncate_before(w, 3, &err), 0);
    ck_assert_int_eq(wal_segments(dir, &first, &last, &err), 0);
    ck_assert_int_eq(first, 3);
    /* never the current segment */
    ck_assert_int_eq(wal_truncate_before(w, 100, &err), 0);
    ck_assert_int_eq(wal_segments(dir, &first, &last, &err), 0);
    ck_assert_int_eq(first, 5);
    ck_assert_int_eq(last, 5);
    ck_assert_int_eq(wal_close(w, &err), 0);
    ck_assert_int_eq(wal_segments("/nonexistent/kiln", &first, &last, &err), KILN_ENOENT);
    rm_rf(dir);
    free(dir);
}
END_TEST

Suite *make_suite(void) {
    log_setup(LOG_ERROR, LOG_FORMAT_LOGFMT); /* repairs warn; keep the output readable */
    Suite *s = suite_create("wal");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_crc32c);
    tcase_add_test(tc, test_full_record_bits);
    tcase_add_test(tc, test_fragments_layout);
    tcase_add_test(tc, test_roundtrip_each_compression);
    tcase_add_test(tc, test_next_into_corrupt_record);
    tcase_add_test(tc, test_batch_and_stats);
    tcase_add_test(tc, test_concurrent_writers);
    tcase_add_test(tc, test_corruption);
    tcase_add_test(tc, test_flip_every_region);
    tcase_add_test(tc, test_checkpoint);
    tcase_add_test(tc, test_segments_and_truncate);
    suite_add_tcase(s, tc);
    return s;
}
