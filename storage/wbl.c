/*
 * wbl.c - the write-behind log's records and its reader (see wbl.h).
 *
 * The m-map markers record is Prometheus' record.MmapMarkers; the samples
 * record is the WAL's (walrec.c).  Reading goes through the WAL's reader
 * and repair (walreader.c): the segments are the same format.
 *
 * Called by ooostore.c at start-up and commit, and by the fuzz harness.
 */
#include "storage/wbl.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "storage/wal.h"
#include "util/endian.h"

void wbl_encode_markers(buf *out, const wbl_marker *m, size_t n) {
    buf_putc(out, WALREC_MMAP_MARKERS);
    for (size_t i = 0; i < n; i++) {
        uint8_t b[16];
        be64_put(b, m[i].ref);
        be64_put(b + 8, m[i].cref);
        buf_append(out, b, sizeof b);
    }
}

size_t wbl_markers_max(size_t len) {
    return len / 16 + 1;
}

int wbl_decode_markers(const void *rec, size_t len, wbl_marker *out, size_t cap, size_t *n, kiln_err *err) {
    const uint8_t *p = rec;
    *n = 0;
    if (len < 1 || p[0] != WALREC_MMAP_MARKERS)
        return kiln_err_set(err, KILN_ECORRUPT, "m-map markers record: wrong type");
    for (size_t at = 1; at < len; at += 16) {
        if (len - at < 16)
            return kiln_err_set(err, KILN_ECORRUPT,
                                "m-map markers record: %zu bytes left at offset %zu, not 16", len - at, at);
        if (*n == cap)
            return kiln_err_set(err, KILN_ECORRUPT, "m-map markers record: too many entries");
        out[(*n)++] = (wbl_marker){be64_get(p + at), be64_get(p + at + 8)};
    }
    return 0;
}

/* One record to the visitor; KILN_ECORRUPT when it does not decode. */
KILN_MUST_CHECK static int visit(const uint8_t *rec, size_t len, const wbl_visitor *v, wbl_read_stats *st,
                                 kiln_err *err) {
    int type = walrec_type(rec, len), rc = 0;
    size_t n = 0;
    if (type == WALREC_SAMPLES) {
        size_t cap = walrec_samples_max(len);
        walrec_sample *s = malloc((cap ? cap : 1) * sizeof *s);
        if (!s)
            return kiln_err_set(err, KILN_ENOMEM, "WBL replay: out of memory");
        if ((rc = walrec_decode_samples(rec, len, s, cap, &n, err)) == 0) {
            st->samples += n;
            rc = v->samples ? v->samples(v->ctx, s, n) : 0;
        }
        free(s);
    } else if (type == WALREC_MMAP_MARKERS) {
        size_t cap = wbl_markers_max(len);
        wbl_marker *m = malloc(cap * sizeof *m);
        if (!m)
            return kiln_err_set(err, KILN_ENOMEM, "WBL replay: out of memory");
        if ((rc = wbl_decode_markers(rec, len, m, cap, &n, err)) == 0) {
            st->markers += n;
            rc = v->markers ? v->markers(v->ctx, m, n) : 0;
        }
        free(m);
    }
    return rc;
}

int wbl_read(const char *dir, const wbl_visitor *v, int repair, wbl_read_stats *st, kiln_err *err) {
    struct stat sb;
    *st = (wbl_read_stats){0};
    if (stat(dir, &sb) != 0)
        return errno == ENOENT ? 0 : kiln_err_set(err, KILN_EIO, "WBL: stat %s failed", dir);
    wal_reader *r;
    int rc = wal_reader_open(dir, &r, err);
    if (rc)
        return rc;
    const uint8_t *rec;
    size_t len;
    while ((rc = wal_reader_next(r, &rec, &len, err)) == 1) {
        st->records++;
        kiln_err e2;
        int x = visit(rec, len, v, st, &e2);
        if (x == KILN_ECORRUPT) {
            st->undecodable++;
            LOG_WARN("WBL replay: undecodable record skipped", "err=%s", e2.msg);
        } else if (x) {
            rc = x;
            if (err)
                *err = e2;
            break;
        }
    }
    if (rc == KILN_ECORRUPT) {
        const wal_corruption *c = wal_reader_corruption(r);
        int seg = c->segment;
        int64_t off = c->offset;
        st->corrupt = 1;
        LOG_WARN("WBL is corrupt; truncating at the last good record", "segment=%d offset=%lld reason=%s",
                 seg, (long long)off, c->reason);
        wal_reader_close(r);
        return repair ? wal_repair(dir, seg, off, err) : KILN_ECORRUPT;
    }
    wal_reader_close(r);
    return rc;
}
