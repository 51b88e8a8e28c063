/*
 * fuzz_walreader.c - arbitrary bytes as a WAL segment, read back by the WAL
 * reader (storage/wal.h) with every record decoded.  Beyond not crashing:
 * when the reader reports damage after k records, wal_repair at the reported
 * position must leave a WAL that reads back exactly those k records with no
 * error.  The write-behind log of out-of-order samples (storage/wbl.h) is
 * read by the same reader: its m-map marker records are decoded too, and
 * must encode back to a record that decodes to the same markers (the
 * corpus holds WBL segments of kiln and of Prometheus 2.42).  The input is
 * written to a private temporary directory, reused.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/wal.h"
#include "storage/walrec.h"
#include "storage/wbl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void cleanup(void) {
    char p[128];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%08d", dir, i);
        unlink(p);
    }
    rmdir(dir);
}

/* An m-map markers record: decoded, encoded again, decoded to the same. */
static void check_markers(const uint8_t *rec, size_t len) {
    size_t cap = wbl_markers_max(len), n, k;
    wbl_marker *m = malloc(cap * sizeof *m), *back = NULL;
    kiln_err err;
    buf b = BUF_INIT;
    if (m && wbl_decode_markers(rec, len, m, cap, &n, &err) == 0) {
        wbl_encode_markers(&b, m, n);
        back = malloc(wbl_markers_max(b.len) * sizeof *back);
        if (buf_error(&b) || !back ||
            wbl_decode_markers(b.data, b.len, back, wbl_markers_max(b.len), &k, &err) || k != n ||
            (n && memcmp(back, m, n * sizeof *m) != 0))
            __builtin_trap();
    }
    buf_free(&b);
    free(back);
    free(m);
}

/* Reads everything; returns the record count, *corrupt set when damage was found. */
static size_t read_all(wal_corruption *c, int *corrupt) {
    wal_reader *r;
    kiln_err err;
    *corrupt = 0;
    if (wal_reader_open(dir, &r, &err))
        __builtin_trap();
    const uint8_t *rec;
    size_t len, n = 0;
    int rc;
    arena a;
    arena_init(&a, 0);
    while ((rc = wal_reader_next(r, &rec, &len, &err)) == 1) {
        n++;
        size_t k;
        if (walrec_type(rec, len) == WALREC_SERIES) {
            walrec_series *s;
            (void)walrec_decode_series(rec, len, &a, &s, &k, &err);
        } else if (walrec_type(rec, len) == WALREC_SAMPLES) {
            size_t cap = walrec_samples_max(len);
            walrec_sample *s = malloc((cap ? cap : 1) * sizeof *s);
            (void)walrec_decode_samples(rec, len, s, cap, &k, &err);
            free(s);
        } else if (walrec_type(rec, len) == WALREC_MMAP_MARKERS) {
            check_markers(rec, len);
        }
        arena_free(&a);
    }
    if (rc == KILN_ECORRUPT) {
        *corrupt = 1;
        *c = *wal_reader_corruption(r);
    } else if (rc != 0) {
        __builtin_trap();
    }
    wal_reader_close(r);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/kiln_fuzz_wal_XXXXXX");
        if (!mkdtemp(dir))
            return 0;
        atexit(cleanup);
    }
    char p[128];
    snprintf(p, sizeof p, "%s/%08d", dir, 0);
    FILE *f = fopen(p, "wb");
    if (!f)
        return 0;
    if (size)
        fwrite(data, 1, size, f);
    fclose(f);
    wal_corruption c;
    int corrupt;
    size_t n = read_all(&c, &corrupt);
    if (corrupt) {
        kiln_err err;
        if (c.in_checkpoint || wal_repair(dir, c.segment, c.offset, &err))
            __builtin_trap();
        wal_corruption c2;
        size_t n2 = read_all(&c2, &corrupt);
        if (corrupt || n2 != n)
            __builtin_trap();
    }
    unlink(p);
    return 0;
}
