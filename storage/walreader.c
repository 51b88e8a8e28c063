/*
 * walreader.c - reading the write-ahead log back (wal_reader_*) and cutting
 * it at the first damage (wal_repair); the format is drawn in wal.h.
 *
 * Called by the storage's start-up replay (which reads every record of the
 * checkpoint and the segments, repairing on corruption before the writer is
 * opened), by checkpoint.c (which reads closed segments), and by the tests,
 * fuzzers and benchmarks.
 *
 * The reader maps each segment read-only and walks it in 1 MiB chunks (whole
 * pages, so a fragment never straddles a chunk; pread into a buffer is the
 * fallback when mapping fails), checks every fragment's header, CRC and
 * sequence, reassembles and decompresses.  A FULL uncompressed record is
 * returned without a copy.  The first damage stops it, with the (segment,
 * offset) of the first record not returned; wal_repair cuts the WAL there.
 *
 * What counts as damage (a writer following the format never produces it):
 *   - a fragment whose CRC does not match, whose length runs past its page,
 *     whose type is not 1..4, or whose sequence is wrong (MIDDLE/LAST without
 *     FIRST, FIRST/FULL inside a record, a segment ending inside a record);
 *   - page padding (type byte 0) holding a non-zero byte, starting a page, or
 *     followed by more data in the segment while 7 or more bytes of the page
 *     are left: the writer pads only a page too full for a header, or the
 *     very last page of a segment, so this is a zeroed (lost) page;
 *   - a file ending inside a fragment (torn write); a missing segment number.
 *
 * Tail mode (wal_reader_open_tail, remote write's watcher) reads the live
 * segment while the writer appends to it: an incomplete fragment at the end
 * of the file is "nothing more yet" rather than damage, the file is read again
 * when it grew, and the reader moves to the next segment once the writer has
 * created it (the segment left behind must then end on a whole record).
 *
 * Threading: a wal_reader belongs to one thread at a time; wal_repair works
 * on files only and must not run while a writer appends to the WAL.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <snappy-c.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "storage/wal_int.h"
#include "util/endian.h"

#define WAL_CHUNK_SIZE (32 * WAL_PAGE_SIZE)
#define WAL_MAX_RECORD ((size_t)512 * 1024 * 1024) /* decompressed record bound */

/* ---- compression -------------------------------------------------------------------- */

/* Decompresses src by flags, appending to out (on an error, out->len is
 * left past the old end: the caller truncates).  Corrupt data is
 * KILN_ECORRUPT with a short reason in err. */
KILN_MUST_CHECK static int decompress(int flags, const uint8_t *src, size_t n, buf *out, ZSTD_DCtx **zd,
                                      kiln_err *err) {
    size_t base = out->len;
    if (flags == WAL_FLAG_SNAPPY) {
        size_t ulen;
        if (snappy_uncompressed_length((const char *)src, n, &ulen) != SNAPPY_OK)
            return kiln_err_set(err, KILN_ECORRUPT, "bad snappy header");
        /* snappy expands at most ~22x; a larger claim is corrupt (and a huge allocation) */
        if (ulen > WAL_MAX_RECORD || ulen > n * 32 + 64)
            return kiln_err_set(err, KILN_ECORRUPT, "snappy length %zu implausible", ulen);
        if (buf_reserve(out, ulen))
            return kiln_err_set(err, KILN_ENOMEM, "out of memory");
        size_t got = ulen;
        if (snappy_uncompress((const char *)src, n, out->data + base, &got) != SNAPPY_OK || got != ulen)
            return kiln_err_set(err, KILN_ECORRUPT, "bad snappy data");
        out->len = base + got;
        out->data[out->len] = 0;
        return 0;
    }
    if (flags == WAL_FLAG_ZSTD) {
        if (!*zd && !(*zd = ZSTD_createDCtx()))
            return kiln_err_set(err, KILN_ENOMEM, "out of memory");
        ZSTD_DCtx_reset(*zd, ZSTD_reset_session_only);
        /* the frame's content size only sizes the first buffer, bounded: it is input */
        unsigned long long claim = ZSTD_getFrameContentSize(src, n);
        size_t hint = n * 4 + 4096;
        if (claim != ZSTD_CONTENTSIZE_UNKNOWN && claim != ZSTD_CONTENTSIZE_ERROR && claim < hint)
            hint = (size_t)claim + 1;
        if (buf_reserve(out, hint))
            return kiln_err_set(err, KILN_ENOMEM, "out of memory");
        ZSTD_inBuffer in = {src, n, 0};
        for (;;) {
            ZSTD_outBuffer o = {out->data, out->cap - 1, out->len};
            size_t r = ZSTD_decompressStream(*zd, &o, &in);
            out->len = o.pos;
            if (ZSTD_isError(r))
                return kiln_err_set(err, KILN_ECORRUPT, "bad zstd data: %s", ZSTD_getErrorName(r));
            if (r == 0) {
                if (in.pos != in.size)
                    return kiln_err_set(err, KILN_ECORRUPT, "trailing bytes after the zstd frame");
                out->data[out->len] = 0;
                return 0;
            }
            if (in.pos == in.size && o.pos < o.size)
                return kiln_err_set(err, KILN_ECORRUPT, "truncated zstd frame");
            if (o.pos == o.size) {
                if (out->len - base >= WAL_MAX_RECORD)
                    return kiln_err_set(err, KILN_ECORRUPT, "zstd record larger than %zu bytes",
                                        WAL_MAX_RECORD);
                if (buf_reserve(out, out->len - base))
                    return kiln_err_set(err, KILN_ENOMEM, "out of memory");
            }
        }
    }
    if (flags)
        return kiln_err_set(err, KILN_ECORRUPT, "both compression flags set");
    if (buf_append(out, src, n))
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    return 0;
}

typedef struct wal_src {
    int seg;
    int in_cp;
    int gap; /* the segment before it in the sequence is missing */
} wal_src;

struct wal_reader {
    char *dir;
    char *cpdir; /* NULL without a checkpoint */
    int cp_index;
    wal_src *src;
    size_t nsrc, capsrc, cur;

    int fd;
    int seg, in_cp;
    int64_t fsize;
    int64_t chunk_off; /* file offset of chunk[0], a multiple of the page size */
    size_t chunk_len, pos;
    const uint8_t *chunk; /* in map, or in rbuf */
    uint8_t *map;         /* the segment mapped (read-only), or NULL: read into rbuf */
    size_t map_len;
    uint8_t *rbuf;
    int no_map;

    buf rec;   /* fragments being reassembled */
    buf dec;   /* decompressed record */
    buf *into; /* or, in wal_reader_next_into, where records go */
    int in_rec;
    int64_t rec_start;
    uint8_t rec_flags;
    int64_t last_end;

    /* tail mode (wal_reader_open_tail): the last segment is still written */
    int tail;
    int tail_next;     /* the segment number to look for after the listed ones */
    int64_t start_off; /* where to start in the first segment of dir */

    int corrupt;
    wal_corruption corr;
    ZSTD_DCtx *zd;
    uint64_t records, bytes;
};

KILN_MUST_CHECK static int reader_corrupt(wal_reader *r, int64_t off, kiln_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

KILN_MUST_CHECK static int reader_corrupt(wal_reader *r, int64_t off, kiln_err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->corr.reason, sizeof r->corr.reason, fmt, ap);
    va_end(ap);
    r->corrupt = 1;
    r->corr.segment = r->seg;
    r->corr.in_checkpoint = r->in_cp;
    r->corr.checkpoint = r->in_cp ? r->cp_index : -1;
    r->corr.offset = off;
    if (r->in_cp)
        return kiln_err_set(err, KILN_ECORRUPT, "wal: corruption in %s/%08d at offset %lld: %s", r->cpdir,
                            r->seg, (long long)off, r->corr.reason);
    return kiln_err_set(err, KILN_ECORRUPT, "wal: corruption in %s/%08d at offset %lld: %s", r->dir, r->seg,
                        (long long)off, r->corr.reason);
}

KILN_MUST_CHECK static int reader_add(wal_reader *r, int seg, int in_cp, int gap) {
    if (array_grow((void **)&r->src, &r->capsrc, r->nsrc + 1, sizeof *r->src))
        return KILN_ENOMEM;
    r->src[r->nsrc++] = (wal_src){seg, in_cp, gap};
    return 0;
}

/* Adds the segments of dir within [from, to] (to < 0: all from `from` on);
 * segments are expected to be contiguous from `expect` (< 0: from the first). */
KILN_MUST_CHECK static int reader_add_dir(wal_reader *r, const char *dir, int in_cp, int from, int to,
                                          int expect, kiln_err *err) {
    int *segs;
    size_t n;
    int rc = wal__list_segments(dir, &segs, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (segs[i] < from || (to >= 0 && segs[i] > to))
            continue;
        rc = reader_add(r, segs[i], in_cp, expect >= 0 && segs[i] != expect);
        expect = segs[i] + 1;
    }
    free(segs);
    /* a requested range whose end is missing */
    if (rc == 0 && to >= 0 && expect >= 0 && expect <= to)
        rc = reader_add(r, to, in_cp, 1);
    return rc ? kiln_err_set(err, rc, "wal: out of memory") : 0;
}

int wal__reader_open_at(const char *dir, const char *cpdir, int cp_index, int from, int to, int expect,
                        wal_reader **out, kiln_err *err) {
    *out = NULL;
    wal_reader *r = calloc(1, sizeof *r);
    if (!r)
        return kiln_err_set(err, KILN_ENOMEM, "wal: out of memory");
    r->fd = -1;
    r->cp_index = cpdir ? cp_index : -1;
    r->seg = -1;
    int rc = KILN_ENOMEM;
    if (!(r->dir = strdup(dir)) || !(r->rbuf = malloc(WAL_CHUNK_SIZE)) ||
        (cpdir && !(r->cpdir = strdup(cpdir)))) {
        kiln_err_set(err, rc, "wal: out of memory");
        goto fail;
    }
    if (cpdir && (rc = reader_add_dir(r, cpdir, 1, 0, -1, 0, err)))
        goto fail;
    if ((rc = reader_add_dir(r, dir, 0, from, to, expect, err)))
        goto fail;
    *out = r;
    return 0;
fail:
    wal_reader_close(r);
    return rc;
}

int wal_reader_open(const char *dir, wal_reader **out, kiln_err *err) {
    char cp[PATH_MAX];
    int idx;
    if (wal_last_checkpoint(dir, &idx, cp, sizeof cp, NULL) == 0)
        return wal__reader_open_at(dir, cp, idx, idx + 1, -1, idx + 1, out, err);
    /* no checkpoint (or an unreadable directory, which the listing reports) */
    return wal__reader_open_at(dir, NULL, -1, 0, -1, -1, out, err);
}

int wal_reader_open_range(const char *dir, int first, int last, wal_reader **out, kiln_err *err) {
    *out = NULL;
    if (first < 0 || last < first)
        return kiln_err_set(err, KILN_EINVAL, "wal: bad segment range %d..%d", first, last);
    return wal__reader_open_at(dir, NULL, -1, first, last, first, out, err);
}

KILN_MUST_CHECK static int reader_fill(wal_reader *r, kiln_err *err);

KILN_MUST_CHECK static int reader_open_src(wal_reader *r, kiln_err *err) {
    wal_src *s = &r->src[r->cur++];
    r->seg = s->seg;
    r->in_cp = s->in_cp;
    r->chunk_off = 0;
    r->chunk_len = r->pos = 0;
    r->in_rec = 0;
    r->last_end = 0;
    if (s->gap)
        return reader_corrupt(r, 0, err, "segment %08d follows a missing segment", s->seg);
    char p[PATH_MAX];
    wal__segment_path(p, sizeof p, s->in_cp ? r->cpdir : r->dir, s->seg);
    r->fd = open(p, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        if (errno == ENOENT)
            return reader_corrupt(r, 0, err, "segment %08d is missing", s->seg);
        return kiln_err_set(err, KILN_EIO, "wal: open %s: %s", p, strerror(errno));
    }
    struct stat st;
    if (fstat(r->fd, &st) < 0)
        return kiln_err_set(err, KILN_EIO, "wal: stat %s: %s", p, strerror(errno));
    r->fsize = st.st_size;
    posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    /* mapped, the pages are read where the page cache holds them: a copy
     * less on the replay's reading thread; if that fails, pread into a
     * buffer */
    if (r->start_off > 0 && !s->in_cp) {
        /* resume inside the segment: chunks stay page-aligned */
        int64_t at = r->start_off < st.st_size ? r->start_off : st.st_size;
        r->start_off = 0;
        r->fsize = st.st_size;
        r->chunk_off = at - at % WAL_PAGE_SIZE;
        int rc = reader_fill(r, err);
        r->pos = (size_t)(at - r->chunk_off);
        r->last_end = at;
        return rc;
    }
    if (st.st_size > 0 && !r->no_map) {
        void *m = fault_mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, r->fd, 0);
        if (m != MAP_FAILED) {
            r->map = m;
            r->map_len = (size_t)st.st_size;
            madvise(m, r->map_len, MADV_SEQUENTIAL);
        }
    }
    return 0;
}

/* Closes the current segment. */
static void reader_close_src(wal_reader *r) {
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    if (r->map)
        munmap(r->map, r->map_len);
    r->map = NULL;
    r->chunk = NULL;
}

/* Reads the next chunk of the current segment; 0 bytes at its end. */
KILN_MUST_CHECK static int reader_fill(wal_reader *r, kiln_err *err) {
    r->chunk_off += (int64_t)r->chunk_len;
    r->chunk_len = r->pos = 0;
    int64_t left = r->fsize - r->chunk_off;
    size_t want = left < WAL_CHUNK_SIZE ? (size_t)left : WAL_CHUNK_SIZE;
    if (r->map) {
        r->chunk = r->map + r->chunk_off;
        r->chunk_len = want;
        return 0;
    }
    r->chunk = r->rbuf;
    while (r->chunk_len < want) {
        ssize_t k =
            pread(r->fd, r->rbuf + r->chunk_len, want - r->chunk_len, r->chunk_off + (off_t)r->chunk_len);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return kiln_err_set(err, KILN_EIO, "wal: read segment %08d: %s", r->seg, strerror(errno));
        }
        if (k == 0) { /* the file shrank: take it as ending here */
            r->fsize = r->chunk_off + (int64_t)r->chunk_len;
            break;
        }
        r->chunk_len += (size_t)k;
    }
    return 0;
}

KILN_MUST_CHECK static int reader_finish(wal_reader *r, const uint8_t *data, size_t n, uint8_t flags,
                                         const uint8_t **rec, size_t *len, kiln_err *err) {
    if (flags || r->into) {
        buf *out = r->into ? r->into : &r->dec;
        size_t start = r->into ? out->len : 0;
        kiln_err e = {0};
        out->len = start;
        int rc = decompress(flags, data, n, out, &r->zd, &e);
        if (rc) {
            out->len = start;
            if (out->data)
                out->data[start] = 0;
        }
        if (rc == KILN_ECORRUPT)
            return reader_corrupt(r, r->rec_start, err, "record does not decompress: %s", e.msg);
        if (rc)
            return kiln_err_set(err, rc, "wal: %s", e.msg);
        data = (const uint8_t *)out->data + start;
        n = out->len - start;
    }
    *rec = data;
    *len = n;
    r->records++;
    r->bytes += n;
    return 1;
}

/* Re-reads the current chunk after the segment grew, keeping the place in it. */
KILN_MUST_CHECK static int tail_refill(wal_reader *r, int64_t size, kiln_err *err) {
    size_t pos = r->pos;
    r->fsize = size;
    r->chunk_len = 0;
    int rc = reader_fill(r, err);
    r->pos = pos;
    return rc ? rc : 1;
}

/*
 * Tail mode, at the end of what the current (live) segment holds, `torn`
 * when a fragment there is incomplete: 1 when there is more to read (the
 * file grew, or the writer moved on to the next segment, which is queued),
 * 0 when the reader is caught up (it stays where it is), or an error.  A
 * segment the writer has left must end on a whole record.
 */
KILN_MUST_CHECK static int tail_at_end(wal_reader *r, int torn, kiln_err *err) {
    struct stat st;
    if (fstat(r->fd, &st) < 0)
        return kiln_err_set(err, KILN_EIO, "wal: stat segment %08d: %s", r->seg, strerror(errno));
    if (st.st_size > r->fsize)
        return tail_refill(r, st.st_size, err);
    char p[PATH_MAX];
    wal__segment_path(p, sizeof p, r->dir, r->seg + 1);
    if (r->cur >= r->nsrc && access(p, F_OK) != 0)
        return 0;
    /* the next segment exists: whatever was written before it was created is visible now */
    if (fstat(r->fd, &st) < 0)
        return kiln_err_set(err, KILN_EIO, "wal: stat segment %08d: %s", r->seg, strerror(errno));
    if (st.st_size > r->fsize)
        return tail_refill(r, st.st_size, err);
    if (r->in_rec || torn)
        return reader_corrupt(r, r->in_rec ? r->rec_start : r->chunk_off + (int64_t)r->pos, err,
                              "segment ends inside a record");
    if (r->cur >= r->nsrc && reader_add(r, r->seg + 1, 0, 0))
        return kiln_err_set(err, KILN_ENOMEM, "wal: out of memory");
    r->tail_next = r->seg + 2;
    reader_close_src(r);
    return 1;
}

int wal_reader_next(wal_reader *r, const uint8_t **rec, size_t *len, kiln_err *err) {
    if (r->corrupt)
        return kiln_err_set(err, KILN_ECORRUPT, "wal: corruption in segment %08d at offset %lld: %s",
                            r->corr.segment, (long long)r->corr.offset, r->corr.reason);
    int rc;
    for (;;) {
        if (r->fd < 0) {
            if (r->cur >= r->nsrc && r->tail) {
                /* after a checkpoint with no segment listed yet */
                char p[PATH_MAX];
                wal__segment_path(p, sizeof p, r->dir, r->tail_next);
                if (access(p, F_OK) != 0)
                    return 0;
                if (reader_add(r, r->tail_next++, 0, 0))
                    return kiln_err_set(err, KILN_ENOMEM, "wal: out of memory");
            }
            if (r->cur >= r->nsrc)
                return 0;
            if ((rc = reader_open_src(r, err)))
                return rc;
            continue;
        }
        if (r->pos >= r->chunk_len) {
            if (r->chunk_off + (int64_t)r->chunk_len >= r->fsize) {
                if (r->tail && !r->in_cp) {
                    if ((rc = tail_at_end(r, 0, err)) == 1)
                        continue;
                    return rc;
                }
                if (r->in_rec)
                    return reader_corrupt(r, r->rec_start, err, "segment ends inside a record");
                reader_close_src(r);
                continue;
            }
            if ((rc = reader_fill(r, err)))
                return rc;
            continue;
        }
        int64_t foff = r->chunk_off + (int64_t)r->pos;
        size_t inpage = (size_t)(foff % WAL_PAGE_SIZE);
        size_t page_left = WAL_PAGE_SIZE - inpage;
        size_t avail = r->chunk_len - r->pos < page_left ? r->chunk_len - r->pos : page_left;
        const uint8_t *h = r->chunk + r->pos;
        int64_t bad_at = r->in_rec ? r->rec_start : foff;
        int at_eof = foff + (int64_t)avail >= r->fsize;

        if (h[0] == 0) {
            for (size_t i = 1; i < avail; i++)
                if (h[i])
                    return reader_corrupt(r, bad_at, err, "non-zero byte in page padding at offset %lld",
                                          (long long)(foff + (int64_t)i));
            if (page_left >= WAL_HEADER_SIZE && (inpage == 0 || foff + (int64_t)page_left < r->fsize))
                return reader_corrupt(r, bad_at, err, "zeroed page at offset %lld", (long long)foff);
            r->pos += avail;
            continue;
        }
        if (r->tail && !r->in_cp && at_eof &&
            (avail < WAL_HEADER_SIZE || WAL_HEADER_SIZE + (size_t)be16_get(h + 1) > avail)) {
            /* a fragment still being written (or the padding's first bytes) */
            if ((rc = tail_at_end(r, 1, err)) == 1)
                continue;
            return rc;
        }
        if (avail < WAL_HEADER_SIZE)
            return reader_corrupt(r, bad_at, err,
                                  at_eof ? "torn fragment header" : "fragment header crosses a page");
        uint8_t typ = h[0] & 7, flags = h[0] & 0x18;
        if (typ < WAL_FRAG_FULL || typ > WAL_FRAG_LAST || (h[0] & 0xe0))
            return reader_corrupt(r, bad_at, err, "invalid fragment type byte 0x%02x", h[0]);
        size_t flen = be16_get(h + 1);
        if (WAL_HEADER_SIZE + flen > avail)
            return reader_corrupt(r, bad_at, err,
                                  at_eof && WAL_HEADER_SIZE + flen <= page_left
                                      ? "torn fragment (file ends)"
                                      : "fragment length %zu exceeds the page",
                                  flen);
        const uint8_t *d = h + WAL_HEADER_SIZE;
        if (crc32c(0, d, flen) != be32_get(h + 3))
            return reader_corrupt(r, bad_at, err, "checksum mismatch in fragment at offset %lld",
                                  (long long)foff);
        r->pos += WAL_HEADER_SIZE + flen;
        switch (typ) {
        case WAL_FRAG_FULL:
            if (r->in_rec)
                return reader_corrupt(r, bad_at, err, "FULL fragment inside a record");
            r->rec_start = foff;
            r->last_end = foff + WAL_HEADER_SIZE + (int64_t)flen;
            return reader_finish(r, d, flen, flags, rec, len, err);
        case WAL_FRAG_FIRST:
            if (r->in_rec)
                return reader_corrupt(r, bad_at, err, "FIRST fragment inside a record");
            r->in_rec = 1;
            r->rec_start = foff;
            r->rec_flags = flags;
            r->rec.len = 0;
            if (buf_append(&r->rec, d, flen))
                return kiln_err_set(err, KILN_ENOMEM, "wal: out of memory");
            break;
        default: /* MIDDLE, LAST */
            if (!r->in_rec)
                return reader_corrupt(r, bad_at, err, "%s fragment without a FIRST",
                                      typ == WAL_FRAG_MIDDLE ? "MIDDLE" : "LAST");
            if (r->rec.len + flen > WAL_MAX_RECORD)
                return reader_corrupt(r, bad_at, err, "record larger than %zu bytes", WAL_MAX_RECORD);
            if (buf_append(&r->rec, d, flen))
                return kiln_err_set(err, KILN_ENOMEM, "wal: out of memory");
            if (typ == WAL_FRAG_LAST) {
                r->in_rec = 0;
                r->last_end = foff + WAL_HEADER_SIZE + (int64_t)flen;
                return reader_finish(r, (const uint8_t *)r->rec.data, r->rec.len, r->rec_flags, rec, len,
                                     err);
            }
        }
    }
}

int wal_reader_next_into(wal_reader *r, buf *out, size_t *len, kiln_err *err) {
    const uint8_t *rec;
    r->into = out;
    int rc = wal_reader_next(r, &rec, len, err);
    r->into = NULL;
    return rc;
}

int wal_reader_open_tail(const char *dir, int segment, int64_t offset, wal_reader **out, kiln_err *err) {
    char cp[PATH_MAX];
    int idx = -1, rc;
    *out = NULL;
    if (segment < 0 && wal_last_checkpoint(dir, &idx, cp, sizeof cp, NULL) == 0)
        rc = wal__reader_open_at(dir, cp, idx, idx + 1, -1, idx + 1, out, err);
    else
        rc = wal__reader_open_at(dir, NULL, -1, segment < 0 ? 0 : segment, -1, segment < 0 ? -1 : segment,
                                 out, err);
    if (rc)
        return rc;
    wal_reader *r = *out;
    r->tail = 1;
    r->no_map = 1; /* the live segment grows: read it with pread */
    r->start_off = segment < 0 ? 0 : offset;
    r->tail_next = segment < 0 ? idx + 1 : segment;
    for (size_t i = 0; i < r->nsrc; i++)
        if (!r->src[i].in_cp && r->src[i].seg >= r->tail_next)
            r->tail_next = r->src[i].seg + 1;
    return 0;
}

void wal_reader_use_pread(wal_reader *r) {
    r->no_map = 1;
}

const wal_corruption *wal_reader_corruption(const wal_reader *r) {
    return r->corrupt ? &r->corr : NULL;
}

void wal_reader_position(const wal_reader *r, int *segment, int64_t *offset) {
    *segment = r->seg;
    *offset = r->last_end;
}

int wal_reader_in_checkpoint(const wal_reader *r, int *index) {
    *index = r->cp_index;
    return r->fd >= 0 && r->in_cp;
}

void wal_reader_counts(const wal_reader *r, uint64_t *records, uint64_t *bytes) {
    *records = r->records;
    *bytes = r->bytes;
}

void wal_reader_close(wal_reader *r) {
    if (!r)
        return;
    reader_close_src(r);
    ZSTD_freeDCtx(r->zd);
    buf_free(&r->rec);
    buf_free(&r->dec);
    free(r->rbuf);
    free(r->src);
    free(r->cpdir);
    free(r->dir);
    free(r);
}

/* ---- repair --------------------------------------------------------------------------------- */

/* Cuts the file at path to len bytes and fsyncs it; 0, or -1 with errno. */
static int truncate_sync(const char *path, off_t len) {
    int fd = fault_open(path, O_WRONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rc = ftruncate(fd, len) == 0 && fault_fsync(fd) == 0 ? 0 : -1;
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int wal_repair(const char *dir, int segment, int64_t offset, kiln_err *err) {
    if (segment < 0 || offset < 0)
        return kiln_err_set(err, KILN_EINVAL, "wal: repair: bad position %d/%lld", segment,
                            (long long)offset);
    int *segs;
    size_t n;
    int rc = wal__list_segments(dir, &segs, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (segs[i] <= segment)
            continue;
        char p[PATH_MAX];
        wal__segment_path(p, sizeof p, dir, segs[i]);
        if (unlink(p) < 0 && errno != ENOENT) {
            rc = kiln_err_set(err, KILN_EIO, "wal: repair: delete %s: %s", p, strerror(errno));
            goto done;
        }
        LOG_WARN("wal: repair deleted a segment after the damage", "segment=%s", p);
    }
    char p[PATH_MAX];
    wal__segment_path(p, sizeof p, dir, segment);
    struct stat st;
    if (stat(p, &st) < 0) {
        if (errno != ENOENT) {
            rc = kiln_err_set(err, KILN_EIO, "wal: repair: stat %s: %s", p, strerror(errno));
            goto done;
        }
        /* a missing segment (a gap): deleting what followed was the repair */
    } else {
        if (offset > st.st_size) {
            rc = kiln_err_set(err, KILN_EINVAL, "wal: repair: offset %lld beyond the end of %s (%lld bytes)",
                              (long long)offset, p, (long long)st.st_size);
            goto done;
        }
        if (offset == 0) {
            /* nothing good in it: remove it, so the numbering stays contiguous for the next writer */
            if (unlink(p) < 0) {
                rc = kiln_err_set(err, KILN_EIO, "wal: repair: delete %s: %s", p, strerror(errno));
                goto done;
            }
            LOG_WARN("wal: repair deleted the damaged segment", "segment=%s", p);
        } else {
            if (truncate_sync(p, offset) < 0) {
                rc = kiln_err_set(err, KILN_EIO, "wal: repair: truncate %s: %s", p, strerror(errno));
                goto done;
            }
            LOG_WARN("wal: repair truncated a segment at the last good record", "segment=%s offset=%lld", p,
                     (long long)offset);
        }
    }
    if ((rc = fileio_fsync_dir(dir, err)))
        kiln_err_prefix(err, "wal: repair");
done:
    free(segs);
    return rc;
}
