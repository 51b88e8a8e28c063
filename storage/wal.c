/*
 * wal.c - the write-ahead log's file layer: segments of 32 KiB pages holding
 * CRC32C-checked record fragments in Prometheus' format (layout tables in
 * wal.h), the writer, the reader with its corruption report, repair, and
 * checkpoints.
 *
 * Writer: under the mutex, each record is compressed (snappy or zstd, kept
 * only when smaller), fragmented into the output buffer at the page position
 * the segment has reached, and the whole buffer goes to the segment with one
 * write(2).  Nothing is buffered between calls, so the bytes of an
 * acknowledged record are always in the kernel.  A segment the writer leaves
 * is padded to a whole page and queued for fsync; wal_sync (or the periodic
 * thread) fsyncs the queue and a dup() of the current segment's descriptor
 * outside the write mutex, so writers do not wait for the disk.
 *
 * Reader: reads each segment in 1 MiB chunks (whole pages, so a fragment
 * never straddles a chunk), checks every fragment's header, CRC and sequence,
 * reassembles and decompresses.  A FULL uncompressed record is returned
 * without a copy.  The first damage stops it, with the (segment, offset) of
 * the first record not returned; wal_repair cuts the WAL there.
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
 * Threading: see wal.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "storage/wal.h"
#include "storage/walrec.h"

#define WAL_CHUNK_SIZE (32 * WAL_PAGE_SIZE)
#define WAL_MAX_RECORD ((size_t)512 * 1024 * 1024) /* decompressed record bound */
#define WAL_MAX_PENDING 8

/* ---- small file helpers --------------------------------------------------------- */

static inline void put_be16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline uint32_t get_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void seg_path(char *out, size_t n, const char *dir, int seg) {
    snprintf(out, n, "%s/%08d", dir, seg);
}

static int fsync_path(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* mkdir -p */
static int mkdir_all(const char *dir) {
    char tmp[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, 0777) < 0 && errno != EEXIST)
                return -1;
            tmp[i] = c;
        }
    }
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* Removes a directory of plain files (a checkpoint). */
static int remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    char p[PATH_MAX];
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) < 0)
            rc = -1;
    }
    closedir(d);
    if (rmdir(dir) < 0)
        rc = -1;
    return rc;
}

/* A segment name: 1..9 digits. */
static int parse_seg_name(const char *s, int *seg) {
    size_t n = strlen(s);
    if (n == 0 || n > 9)
        return 0;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *seg = v;
    return 1;
}

static int int_cmp(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The sorted segment numbers in dir (*segs malloc'd, may be NULL when n is 0). */
static int list_segments(const char *dir, int **segs, size_t *n, kiln_err *err) {
    *segs = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return kiln_err_set(err, errno == ENOENT ? KILN_ENOENT : KILN_EIO, "wal: open dir %s: %s", dir,
                            strerror(errno));
    size_t cap = 0;
    int *v = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        int seg;
        if (!parse_seg_name(e->d_name, &seg))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            int *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                free(v);
                closedir(d);
                return kiln_err_set(err, KILN_ENOMEM, "wal: out of memory listing %s", dir);
            }
            v = nv;
        }
        v[(*n)++] = seg;
    }
    closedir(d);
    if (*n)
        qsort(v, *n, sizeof *v, int_cmp);
    *segs = v;
    return 0;
}

int wal_segments(const char *dir, int *first, int *last, kiln_err *err) {
    int *segs;
    size_t n;
    *first = *last = -1;
    int rc = list_segments(dir, &segs, &n, err);
    if (rc)
        return rc;
    if (n) {
        *first = segs[0];
        *last = segs[n - 1];
    }
    free(segs);
    return 0;
}

/* "checkpoint.<digits>" exactly; the .tmp ones are not checkpoints. */
static int parse_checkpoint_name(const char *s, int *idx) {
    static const char pfx[] = "checkpoint.";
    if (strncmp(s, pfx, sizeof pfx - 1))
        return 0;
    return parse_seg_name(s + sizeof pfx - 1, idx);
}

int wal_last_checkpoint(const char *dir, int *index, char *path, size_t n, kiln_err *err) {
    DIR *d = opendir(dir);
    if (!d)
        return kiln_err_set(err, errno == ENOENT ? KILN_ENOENT : KILN_EIO, "wal: open dir %s: %s", dir,
                            strerror(errno));
    int best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        int idx;
        if (parse_checkpoint_name(e->d_name, &idx) && idx > best)
            best = idx;
    }
    closedir(d);
    if (best < 0)
        return kiln_err_set(err, KILN_ENOENT, "wal: no checkpoint in %s", dir);
    *index = best;
    if (path)
        snprintf(path, n, "%s/checkpoint.%08d", dir, best);
    return 0;
}

/* ---- compression -------------------------------------------------------------------- */

/* Decompresses src by flags, appending to out (on an error, out->len is
 * left past the old end: the caller truncates).  Corrupt data is
 * KILN_ECORRUPT with a short reason in err. */
static int decompress(int flags, const uint8_t *src, size_t n, buf *out, ZSTD_DCtx **zd, kiln_err *err) {
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

/* ---- writer --------------------------------------------------------------------------- */

struct wal {
    char *dir;
    wal_opts opts;
    uint64_t seg_size;

    pthread_mutex_t mu; /* everything below up to the atomics */
    int fd;             /* current segment */
    int seg;
    uint64_t seg_off; /* bytes written to the current segment */
    int broken;       /* a write failed and could not be undone: switch segments first */
    buf out;          /* the bytes of one write */
    buf cbuf;         /* compression output */
    ZSTD_CCtx *zc;
    int pending[WAL_MAX_PENDING]; /* finished segments awaiting fsync + close */
    size_t npending;
    int dir_dirty; /* a segment was created since the last directory fsync */

    pthread_mutex_t sync_mu; /* one wal_sync at a time */

    pthread_t thr; /* WAL_FSYNC_PERIODIC */
    int thr_started;
    pthread_mutex_t thr_mu;
    pthread_cond_t thr_cv;
    int stopping;

    _Atomic uint64_t fsyncs, fsync_ns, writes_failed, records, bytes, rec_bytes, corruptions;
    _Atomic int64_t seg_current;
};

wal_opts wal_opts_default(void) {
    wal_opts o = {0};
    o.segment_size = WAL_DEFAULT_SEGMENT_SIZE;
    o.compression = WAL_COMPRESS_SNAPPY;
    o.fsync_policy = WAL_FSYNC_NONE;
    o.fsync_interval_ms = 1000;
    return o;
}

static int timed_fsync(wal *w, int fd) {
    uint64_t t0 = mono_ns();
    int rc = fsync(fd);
    atomic_fetch_add(&w->fsync_ns, mono_ns() - t0);
    atomic_fetch_add(&w->fsyncs, 1);
    return rc;
}

static int create_segment(wal *w, int seg, kiln_err *err) {
    char p[PATH_MAX];
    seg_path(p, sizeof p, w->dir, seg);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
        w->broken = 1; /* the next log retries the switch */
        return kiln_err_set(err, KILN_EIO, "wal: create segment %s: %s", p, strerror(errno));
    }
    w->fd = fd;
    w->seg = seg;
    w->seg_off = 0;
    w->broken = 0;
    w->dir_dirty = 1;
    atomic_store(&w->seg_current, seg);
    return 0;
}

/* Writes w->out to the segment.  On failure cuts the segment back to where
 * it was (or marks the writer broken) and drops the buffer. */
static int write_out(wal *w, kiln_err *err) {
    size_t off = 0;
    while (off < w->out.len) {
        ssize_t k = write(w->fd, w->out.data + off, w->out.len - off);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            if (ftruncate(w->fd, (off_t)w->seg_off) < 0 || lseek(w->fd, (off_t)w->seg_off, SEEK_SET) < 0)
                w->broken = 1;
            w->out.len = 0;
            return kiln_err_set(err, KILN_EIO, "wal: write segment %s/%08d: %s", w->dir, w->seg, strerror(e));
        }
        off += (size_t)k;
    }
    w->seg_off += w->out.len;
    atomic_fetch_add(&w->bytes, w->out.len);
    w->out.len = 0;
    return 0;
}

/* Bytes a record of plen bytes takes when its first fragment goes at
 * segment position pos (padding included). */
static uint64_t frag_size(uint64_t pos, size_t plen) {
    uint64_t start = pos;
    for (;;) {
        uint64_t room = WAL_PAGE_SIZE - pos % WAL_PAGE_SIZE;
        if (room < WAL_HEADER_SIZE) {
            pos += room;
            continue;
        }
        size_t n = plen < room - WAL_HEADER_SIZE ? plen : (size_t)(room - WAL_HEADER_SIZE);
        pos += WAL_HEADER_SIZE + n;
        plen -= n;
        if (plen == 0)
            return pos - start;
    }
}

/* Appends zero padding to the end of the current page. */
static int pad_page(wal *w) {
    uint64_t pos = w->seg_off + w->out.len;
    size_t r = pos % WAL_PAGE_SIZE ? WAL_PAGE_SIZE - pos % WAL_PAGE_SIZE : 0;
    if (!r)
        return 0;
    if (buf_reserve(&w->out, r))
        return KILN_ENOMEM;
    memset(w->out.data + w->out.len, 0, r);
    w->out.len += r;
    return 0;
}

/* Fragments p[0..plen) into w->out at the current position. */
static int frag_append(wal *w, const uint8_t *p, size_t plen, uint8_t flags) {
    uint64_t pos = w->seg_off + w->out.len;
    if (buf_reserve(&w->out, frag_size(pos, plen)))
        return KILN_ENOMEM;
    uint8_t *o = (uint8_t *)w->out.data + w->out.len;
    int first = 1;
    for (;;) {
        size_t room = WAL_PAGE_SIZE - (size_t)(pos % WAL_PAGE_SIZE);
        if (room < WAL_HEADER_SIZE) {
            memset(o, 0, room);
            o += room;
            pos += room;
            continue;
        }
        size_t n = plen < room - WAL_HEADER_SIZE ? plen : room - WAL_HEADER_SIZE;
        int last = n == plen;
        uint8_t typ = first && last ? WAL_FRAG_FULL
                      : first       ? WAL_FRAG_FIRST
                      : last        ? WAL_FRAG_LAST
                                    : WAL_FRAG_MIDDLE;
        o[0] = typ | flags;
        put_be16(o + 1, (uint16_t)n);
        put_be32(o + 3, crc32c(0, p, n));
        if (n)
            memcpy(o + WAL_HEADER_SIZE, p, n);
        o += WAL_HEADER_SIZE + n;
        pos += WAL_HEADER_SIZE + n;
        p += n;
        plen -= n;
        first = 0;
        if (last)
            break;
    }
    w->out.len = (size_t)(o - (uint8_t *)w->out.data);
    return 0;
}

/* Finishes the current segment (pads, writes, queues its fsync) and opens
 * the next.  Called with mu held. */
static int switch_segment(wal *w, kiln_err *err) {
    int rc = 0;
    if (!w->broken) {
        if (w->seg_off + w->out.len > 0 && pad_page(w))
            return kiln_err_set(err, KILN_ENOMEM, "wal: out of memory");
        if ((rc = write_out(w, err)))
            return rc;
    }
    w->out.len = 0;
    int old = w->fd;
    if (old < 0) {
        /* an earlier switch failed to create the segment */
    } else if (w->opts.fsync_policy == WAL_FSYNC_ALWAYS || w->npending == WAL_MAX_PENDING) {
        if (timed_fsync(w, old) < 0)
            rc = kiln_err_set(err, KILN_EIO, "wal: fsync segment %s/%08d: %s", w->dir, w->seg,
                              strerror(errno));
        close(old);
    } else {
        w->pending[w->npending++] = old;
    }
    w->fd = -1;
    int rc2 = create_segment(w, w->seg + 1, err);
    return rc2 ? rc2 : rc;
}

/* Compresses one record into w->cbuf when that makes it smaller. */
static int compress_rec(wal *w, const uint8_t **p, size_t *len, uint8_t *flags) {
    *flags = 0;
    if (*len == 0 || w->opts.compression == WAL_COMPRESS_NONE)
        return 0;
    if (w->opts.compression == WAL_COMPRESS_SNAPPY) {
        size_t cap = snappy_max_compressed_length(*len);
        if (buf_reserve(&w->cbuf, cap))
            return KILN_ENOMEM;
        size_t clen = cap;
        if (snappy_compress((const char *)*p, *len, w->cbuf.data, &clen) != SNAPPY_OK)
            return 0;
        if (clen < *len) {
            *p = (const uint8_t *)w->cbuf.data;
            *len = clen;
            *flags = WAL_FLAG_SNAPPY;
        }
        return 0;
    }
    size_t cap = ZSTD_compressBound(*len);
    if (buf_reserve(&w->cbuf, cap))
        return KILN_ENOMEM;
    size_t clen = ZSTD_compressCCtx(w->zc, w->cbuf.data, cap, *p, *len, w->opts.zstd_level);
    if (!ZSTD_isError(clen) && clen < *len) {
        *p = (const uint8_t *)w->cbuf.data;
        *len = clen;
        *flags = WAL_FLAG_ZSTD;
    }
    return 0;
}

static int log_locked(wal *w, const wal_rec *recs, size_t n, kiln_err *err) {
    int rc;
    if (w->broken && (rc = switch_segment(w, err)))
        return rc;
    uint64_t raw = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = recs[i].data;
        size_t len = recs[i].len;
        uint8_t flags;
        raw += len;
        if (compress_rec(w, &p, &len, &flags))
            goto oom;
        uint64_t pos = w->seg_off + w->out.len;
        if (pos > 0 && pos + frag_size(pos, len) > w->seg_size) {
            /* p may point into cbuf, which the switch does not touch */
            if ((rc = switch_segment(w, err)))
                return rc;
        }
        if (frag_append(w, p, len, flags))
            goto oom;
    }
    if ((rc = write_out(w, err)))
        return rc;
    if (w->opts.fsync_policy == WAL_FSYNC_ALWAYS) {
        if (timed_fsync(w, w->fd) < 0)
            return kiln_err_set(err, KILN_EIO, "wal: fsync segment %s/%08d: %s", w->dir, w->seg,
                                strerror(errno));
        /* a new segment's directory entry must be durable too */
        if (w->dir_dirty) {
            if (fsync_path(w->dir) < 0)
                return kiln_err_set(err, KILN_EIO, "wal: fsync dir %s: %s", w->dir, strerror(errno));
            atomic_fetch_add(&w->fsyncs, 1);
            w->dir_dirty = 0;
        }
    }
    atomic_fetch_add(&w->records, n);
    atomic_fetch_add(&w->rec_bytes, raw);
    return 0;
oom:
    w->out.len = 0;
    return kiln_err_set(err, KILN_ENOMEM, "wal: out of memory");
}

int wal_log_batch(wal *w, const wal_rec *recs, size_t n, kiln_err *err) {
    pthread_mutex_lock(&w->mu);
    int rc = log_locked(w, recs, n, err);
    pthread_mutex_unlock(&w->mu);
    if (rc)
        atomic_fetch_add(&w->writes_failed, 1);
    return rc;
}

int wal_log(wal *w, const void *rec, size_t len, kiln_err *err) {
    wal_rec r = {rec, len};
    return wal_log_batch(w, &r, 1, err);
}

int wal_sync(wal *w, kiln_err *err) {
    int fds[WAL_MAX_PENDING], segs0, cur = -1, dd;
    size_t np;
    int rc = 0;
    pthread_mutex_lock(&w->sync_mu);
    pthread_mutex_lock(&w->mu);
    np = w->npending;
    memcpy(fds, w->pending, np * sizeof *fds);
    w->npending = 0;
    if (w->fd >= 0)
        cur = dup(w->fd);
    segs0 = w->seg;
    dd = w->dir_dirty;
    w->dir_dirty = 0;
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; i < np; i++) {
        if (timed_fsync(w, fds[i]) < 0 && !rc)
            rc =
                kiln_err_set(err, KILN_EIO, "wal: fsync finished segment in %s: %s", w->dir, strerror(errno));
        close(fds[i]);
    }
    if (cur >= 0) {
        if (timed_fsync(w, cur) < 0 && !rc)
            rc =
                kiln_err_set(err, KILN_EIO, "wal: fsync segment %s/%08d: %s", w->dir, segs0, strerror(errno));
        close(cur);
    }
    if (dd) {
        uint64_t t0 = mono_ns();
        if (fsync_path(w->dir) < 0 && !rc)
            rc = kiln_err_set(err, KILN_EIO, "wal: fsync dir %s: %s", w->dir, strerror(errno));
        atomic_fetch_add(&w->fsync_ns, mono_ns() - t0);
        atomic_fetch_add(&w->fsyncs, 1);
    }
    pthread_mutex_unlock(&w->sync_mu);
    return rc;
}

static void *sync_thread(void *arg) {
    wal *w = arg;
    pthread_mutex_lock(&w->thr_mu);
    while (!w->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + (int64_t)w->opts.fsync_interval_ms * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&w->thr_cv, &w->thr_mu, &ts);
        if (w->stopping)
            break;
        pthread_mutex_unlock(&w->thr_mu);
        kiln_err e = {0};
        if (wal_sync(w, &e) < 0)
            LOG_ERROR("wal: periodic fsync failed", "err=\"%s\"", e.msg);
        pthread_mutex_lock(&w->thr_mu);
    }
    pthread_mutex_unlock(&w->thr_mu);
    return NULL;
}

int wal_open(const char *dir, const wal_opts *opts, wal **out, kiln_err *err) {
    *out = NULL;
    wal *w = calloc(1, sizeof *w);
    if (!w)
        return kiln_err_set(err, KILN_ENOMEM, "wal: out of memory");
    w->fd = -1;
    w->opts = opts ? *opts : wal_opts_default();
    if (w->opts.segment_size == 0)
        w->opts.segment_size = WAL_DEFAULT_SEGMENT_SIZE;
    w->seg_size = (w->opts.segment_size + WAL_PAGE_SIZE - 1) / WAL_PAGE_SIZE * WAL_PAGE_SIZE;
    if (w->opts.zstd_level == 0)
        w->opts.zstd_level = 3;
    if (w->opts.fsync_interval_ms <= 0)
        w->opts.fsync_interval_ms = 1000;
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->sync_mu, NULL);
    pthread_mutex_init(&w->thr_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->thr_cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc, first, last;
    if (w->opts.compression < WAL_COMPRESS_NONE || w->opts.compression > WAL_COMPRESS_ZSTD ||
        w->opts.fsync_policy < WAL_FSYNC_NONE || w->opts.fsync_policy > WAL_FSYNC_ALWAYS) {
        rc = kiln_err_set(err, KILN_EINVAL, "wal: unknown compression %d or fsync policy %d",
                          w->opts.compression, w->opts.fsync_policy);
        goto fail;
    }
    if (!(w->dir = strdup(dir))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "wal: out of memory");
        goto fail;
    }
    if (mkdir_all(dir) < 0) {
        rc = kiln_err_set(err, KILN_EIO, "wal: create dir %s: %s", dir, strerror(errno));
        goto fail;
    }
    if (w->opts.compression == WAL_COMPRESS_ZSTD && !(w->zc = ZSTD_createCCtx())) {
        rc = kiln_err_set(err, KILN_ENOMEM, "wal: out of memory");
        goto fail;
    }
    if ((rc = wal_segments(dir, &first, &last, err)))
        goto fail;
    if ((rc = create_segment(w, last + 1, err)))
        goto fail;
    if (w->opts.fsync_policy == WAL_FSYNC_PERIODIC) {
        if (pthread_create(&w->thr, NULL, sync_thread, w)) {
            rc = kiln_err_set(err, KILN_ENOMEM, "wal: cannot start the fsync thread");
            goto fail;
        }
        w->thr_started = 1;
    }
    *out = w;
    return 0;
fail:
    if (w->fd >= 0)
        close(w->fd);
    ZSTD_freeCCtx(w->zc);
    pthread_cond_destroy(&w->thr_cv);
    pthread_mutex_destroy(&w->thr_mu);
    pthread_mutex_destroy(&w->sync_mu);
    pthread_mutex_destroy(&w->mu);
    free(w->dir);
    free(w);
    return rc;
}

int wal_next_segment(wal *w, kiln_err *err) {
    pthread_mutex_lock(&w->mu);
    int rc = switch_segment(w, err);
    int seg = w->seg;
    pthread_mutex_unlock(&w->mu);
    return rc ? rc : seg;
}

int wal_truncate_before(wal *w, int segment, kiln_err *err) {
    pthread_mutex_lock(&w->mu);
    int cur = w->seg;
    pthread_mutex_unlock(&w->mu);
    if (segment > cur)
        segment = cur;
    int *segs;
    size_t n;
    int rc = list_segments(w->dir, &segs, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && segs[i] < segment; i++) {
        char p[PATH_MAX];
        seg_path(p, sizeof p, w->dir, segs[i]);
        if (unlink(p) < 0 && errno != ENOENT && !rc)
            rc = kiln_err_set(err, KILN_EIO, "wal: delete %s: %s", p, strerror(errno));
    }
    free(segs);
    return rc;
}

void wal_get_stats(wal *w, wal_stats *o) {
    o->fsyncs = atomic_load(&w->fsyncs);
    o->fsync_ns = atomic_load(&w->fsync_ns);
    o->segment_current = atomic_load(&w->seg_current);
    o->writes_failed = atomic_load(&w->writes_failed);
    o->records_written = atomic_load(&w->records);
    o->bytes_written = atomic_load(&w->bytes);
    o->record_bytes = atomic_load(&w->rec_bytes);
    o->corruptions = atomic_load(&w->corruptions);
}

void wal_count_corruption(wal *w, uint64_t n) {
    atomic_fetch_add(&w->corruptions, n);
}

const char *wal_dir(const wal *w) {
    return w->dir;
}

int wal_close(wal *w, kiln_err *err) {
    if (!w)
        return 0;
    int rc = 0;
    if (w->thr_started) {
        pthread_mutex_lock(&w->thr_mu);
        w->stopping = 1;
        pthread_cond_signal(&w->thr_cv);
        pthread_mutex_unlock(&w->thr_mu);
        pthread_join(w->thr, NULL);
    }
    pthread_mutex_lock(&w->mu);
    /* pad the last page as Prometheus does, so the segment ends on a page */
    if (!w->broken && w->fd >= 0 && w->seg_off % WAL_PAGE_SIZE) {
        if (pad_page(w))
            rc = kiln_err_set(err, KILN_ENOMEM, "wal: out of memory");
        else
            rc = write_out(w, err);
    }
    pthread_mutex_unlock(&w->mu);
    int rc2 = wal_sync(w, rc ? NULL : err);
    if (!rc)
        rc = rc2;
    if (w->fd >= 0)
        close(w->fd);
    ZSTD_freeCCtx(w->zc);
    buf_free(&w->out);
    buf_free(&w->cbuf);
    pthread_cond_destroy(&w->thr_cv);
    pthread_mutex_destroy(&w->thr_mu);
    pthread_mutex_destroy(&w->sync_mu);
    pthread_mutex_destroy(&w->mu);
    free(w->dir);
    free(w);
    return rc;
}

/* ---- reader ------------------------------------------------------------------------------ */

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
    size_t nsrc, cur;

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

    int corrupt;
    wal_corruption corr;
    ZSTD_DCtx *zd;
    uint64_t records, bytes;
};

static int reader_corrupt(wal_reader *r, int64_t off, kiln_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int reader_corrupt(wal_reader *r, int64_t off, kiln_err *err, const char *fmt, ...) {
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

static int reader_add(wal_reader *r, int seg, int in_cp, int gap) {
    wal_src *ns = realloc(r->src, (r->nsrc + 1) * sizeof *ns);
    if (!ns)
        return KILN_ENOMEM;
    r->src = ns;
    ns[r->nsrc].seg = seg;
    ns[r->nsrc].in_cp = in_cp;
    ns[r->nsrc].gap = gap;
    r->nsrc++;
    return 0;
}

/* Adds the segments of dir within [from, to] (to < 0: all from `from` on);
 * segments are expected to be contiguous from `expect` (< 0: from the first). */
static int reader_add_dir(wal_reader *r, const char *dir, int in_cp, int from, int to, int expect,
                          kiln_err *err) {
    int *segs;
    size_t n;
    int rc = list_segments(dir, &segs, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (segs[i] < from || (to >= 0 && segs[i] > to))
            continue;
        int gap = expect >= 0 && segs[i] != expect;
        if (reader_add(r, segs[i], in_cp, gap)) {
            free(segs);
            return kiln_err_set(err, KILN_ENOMEM, "wal: out of memory");
        }
        expect = segs[i] + 1;
    }
    free(segs);
    /* a requested range whose end is missing */
    if (to >= 0 && expect >= 0 && expect <= to) {
        if (reader_add(r, to, in_cp, 1))
            return kiln_err_set(err, KILN_ENOMEM, "wal: out of memory");
    }
    return 0;
}

static int reader_new(const char *dir, wal_reader **out, kiln_err *err) {
    wal_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->dir = strdup(dir)) || !(r->rbuf = malloc(WAL_CHUNK_SIZE))) {
        if (r)
            free(r->dir);
        free(r);
        return kiln_err_set(err, KILN_ENOMEM, "wal: out of memory");
    }
    r->fd = -1;
    r->cp_index = -1;
    r->seg = -1;
    *out = r;
    return 0;
}

int wal_reader_open(const char *dir, wal_reader **out, kiln_err *err) {
    wal_reader *r = NULL;
    *out = NULL;
    int rc = reader_new(dir, &r, err);
    if (rc)
        return rc;
    char cp[PATH_MAX];
    int idx;
    kiln_err e2;
    if (wal_last_checkpoint(dir, &idx, cp, sizeof cp, &e2) == 0) {
        r->cp_index = idx;
        if (!(r->cpdir = strdup(cp))) {
            rc = kiln_err_set(err, KILN_ENOMEM, "wal: out of memory");
            goto fail;
        }
        if ((rc = reader_add_dir(r, cp, 1, 0, -1, 0, err)))
            goto fail;
    }
    if ((rc = reader_add_dir(r, dir, 0, r->cp_index + 1, -1, r->cpdir ? r->cp_index + 1 : -1, err)))
        goto fail;
    *out = r;
    return 0;
fail:
    wal_reader_close(r);
    return rc;
}

int wal_reader_open_range(const char *dir, int first, int last, wal_reader **out, kiln_err *err) {
    wal_reader *r = NULL;
    *out = NULL;
    if (first < 0 || last < first)
        return kiln_err_set(err, KILN_EINVAL, "wal: bad segment range %d..%d", first, last);
    int rc = reader_new(dir, &r, err);
    if (rc)
        return rc;
    if ((rc = reader_add_dir(r, dir, 0, first, last, first, err))) {
        wal_reader_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

static int reader_open_src(wal_reader *r, kiln_err *err) {
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
    seg_path(p, sizeof p, s->in_cp ? r->cpdir : r->dir, s->seg);
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
    /* mapped, the pages are read where the page cache holds them: a copy less
     * (reading was a tenth of the reading thread's time at replay); if that
     * fails, pread into a buffer */
    if (st.st_size > 0 && !r->no_map) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, r->fd, 0);
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
static int reader_fill(wal_reader *r, kiln_err *err) {
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

static int reader_finish(wal_reader *r, const uint8_t *data, size_t n, uint8_t flags, const uint8_t **rec,
                         size_t *len, kiln_err *err) {
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

int wal_reader_next(wal_reader *r, const uint8_t **rec, size_t *len, kiln_err *err) {
    if (r->corrupt)
        return kiln_err_set(err, KILN_ECORRUPT, "wal: corruption in segment %08d at offset %lld: %s",
                            r->corr.segment, (long long)r->corr.offset, r->corr.reason);
    int rc;
    for (;;) {
        if (r->fd < 0) {
            if (r->cur >= r->nsrc)
                return 0;
            if ((rc = reader_open_src(r, err)))
                return rc;
            continue;
        }
        if (r->pos >= r->chunk_len) {
            if (r->chunk_off + (int64_t)r->chunk_len >= r->fsize) {
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
        if (avail < WAL_HEADER_SIZE)
            return reader_corrupt(r, bad_at, err,
                                  at_eof ? "torn fragment header" : "fragment header crosses a page");
        uint8_t typ = h[0] & 7, flags = h[0] & 0x18;
        if (typ < WAL_FRAG_FULL || typ > WAL_FRAG_LAST || (h[0] & 0xe0))
            return reader_corrupt(r, bad_at, err, "invalid fragment type byte 0x%02x", h[0]);
        size_t flen = (size_t)h[1] << 8 | h[2];
        if (WAL_HEADER_SIZE + flen > avail)
            return reader_corrupt(r, bad_at, err,
                                  at_eof && WAL_HEADER_SIZE + flen <= page_left
                                      ? "torn fragment (file ends)"
                                      : "fragment length %zu exceeds the page",
                                  flen);
        const uint8_t *d = h + WAL_HEADER_SIZE;
        if (crc32c(0, d, flen) != get_be32(h + 3))
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

int wal_repair(const char *dir, int segment, int64_t offset, kiln_err *err) {
    if (segment < 0 || offset < 0)
        return kiln_err_set(err, KILN_EINVAL, "wal: repair: bad position %d/%lld", segment,
                            (long long)offset);
    int *segs;
    size_t n;
    int rc = list_segments(dir, &segs, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (segs[i] <= segment)
            continue;
        char p[PATH_MAX];
        seg_path(p, sizeof p, dir, segs[i]);
        if (unlink(p) < 0 && errno != ENOENT) {
            rc = kiln_err_set(err, KILN_EIO, "wal: repair: delete %s: %s", p, strerror(errno));
            goto done;
        }
        LOG_WARN("wal: repair deleted a segment after the damage", "segment=%s", p);
    }
    char p[PATH_MAX];
    seg_path(p, sizeof p, dir, segment);
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
            if (truncate(p, offset) < 0 || fsync_path(p) < 0) {
                rc = kiln_err_set(err, KILN_EIO, "wal: repair: truncate %s: %s", p, strerror(errno));
                goto done;
            }
            LOG_WARN("wal: repair truncated a segment at the last good record", "segment=%s offset=%lld", p,
                     (long long)offset);
        }
    }
    if (fsync_path(dir) < 0)
        rc = kiln_err_set(err, KILN_EIO, "wal: repair: fsync %s: %s", dir, strerror(errno));
done:
    free(segs);
    return rc;
}

/* ---- checkpoint ----------------------------------------------------------------------------- */

typedef struct cp_state {
    wal_keep_fn keep;
    void *data;
    int64_t mint;
    wal_checkpoint_stats st;
    arena a;
    buf out;
    walrec_sample *smp;
    size_t smp_cap;
    walrec_tombstone *tomb;
    size_t tomb_cap;
} cp_state;

/* Filters one record into cs->out (left empty when nothing is kept). */
static int cp_filter(cp_state *cs, const uint8_t *rec, size_t len, kiln_err *err) {
    cs->out.len = 0;
    int type = walrec_type(rec, len);
    size_t n = 0, k = 0;
    int rc = 0;
    switch (type) {
    case WALREC_SERIES: {
        walrec_series *s;
        if ((rc = walrec_decode_series(rec, len, &cs->a, &s, &n, err)))
            return rc;
        for (size_t i = 0; i < n; i++)
            if (cs->keep(s[i].ref, cs->data))
                s[k++] = s[i];
        cs->st.series_kept += k;
        cs->st.series_dropped += n - k;
        if (k)
            rc = walrec_encode_series(&cs->out, s, k);
        break;
    }
    case WALREC_SAMPLES:
        if (array_grow((void **)&cs->smp, &cs->smp_cap, walrec_samples_max(len), sizeof *cs->smp))
            return kiln_err_set(err, KILN_ENOMEM, "wal: checkpoint: out of memory");
        if ((rc = walrec_decode_samples(rec, len, cs->smp, cs->smp_cap, &n, err)))
            return rc;
        for (size_t i = 0; i < n; i++)
            if (cs->smp[i].t >= cs->mint)
                cs->smp[k++] = cs->smp[i];
        cs->st.samples_kept += k;
        cs->st.samples_dropped += n - k;
        if (k)
            rc = walrec_encode_samples(&cs->out, cs->smp, k);
        break;
    case WALREC_TOMBSTONES:
        if (array_grow((void **)&cs->tomb, &cs->tomb_cap, walrec_tombstones_max(len), sizeof *cs->tomb))
            return kiln_err_set(err, KILN_ENOMEM, "wal: checkpoint: out of memory");
        if ((rc = walrec_decode_tombstones(rec, len, cs->tomb, cs->tomb_cap, &n, err)))
            return rc;
        for (size_t i = 0; i < n; i++)
            if (cs->tomb[i].maxt >= cs->mint && cs->keep(cs->tomb[i].ref, cs->data))
                cs->tomb[k++] = cs->tomb[i];
        cs->st.tombstones_kept += k;
        cs->st.tombstones_dropped += n - k;
        if (k)
            rc = walrec_encode_tombstones(&cs->out, cs->tomb, k);
        break;
    case WALREC_EXEMPLARS: {
        walrec_exemplar *e;
        if ((rc = walrec_decode_exemplars(rec, len, &cs->a, &e, &n, err)))
            return rc;
        for (size_t i = 0; i < n; i++)
            if (e[i].t >= cs->mint)
                e[k++] = e[i];
        cs->st.exemplars_kept += k;
        cs->st.exemplars_dropped += n - k;
        if (k)
            rc = walrec_encode_exemplars(&cs->out, e, k);
        break;
    }
    case WALREC_METADATA: {
        size_t kept = 0, dropped = 0;
        rc = walrec_filter_metadata(rec, len, cs->keep, cs->data, &cs->out, &kept, &dropped, err);
        cs->st.other_kept += kept;
        cs->st.other_dropped += dropped;
        return rc;
    }
    case WALREC_HISTOGRAM_SAMPLES:
    case WALREC_FLOAT_HISTOGRAM_SAMPLES:
    case WALREC_CUSTOM_BUCKETS_HISTOGRAM_SAMPLES:
    case WALREC_CUSTOM_BUCKETS_FLOAT_HISTOGRAM_SAMPLES: {
        size_t kept = 0, dropped = 0;
        rc = walrec_filter_histograms(rec, len, cs->mint, &cs->out, &kept, &dropped, err);
        cs->st.other_kept += kept;
        cs->st.other_dropped += dropped;
        return rc;
    }
    default:
        cs->st.other_dropped++;
        return 0;
    }
    if (rc)
        return kiln_err_set(err, KILN_ENOMEM, "wal: checkpoint: out of memory");
    return 0;
}

int wal_checkpoint(const char *dir, int from_seg, int to_seg, wal_keep_fn keep, void *data,
                   const wal_checkpoint_opts *opts, wal_checkpoint_stats *stats, kiln_err *err) {
    cp_state cs;
    memset(&cs, 0, sizeof cs);
    cs.keep = keep;
    cs.data = data;
    cs.mint = opts ? opts->mint : INT64_MIN;
    arena_init(&cs.a, 0);
    wal_reader *r = NULL;
    wal *w = NULL;
    char tmp[PATH_MAX], final[PATH_MAX], prev[PATH_MAX];
    int rc, prev_idx = -1;
    kiln_err e2;
    snprintf(final, sizeof final, "%s/checkpoint.%08d", dir, to_seg);
    snprintf(tmp, sizeof tmp, "%s/checkpoint.%08d.tmp", dir, to_seg);

    if (from_seg < 0 || to_seg < 0) {
        rc = kiln_err_set(err, KILN_EINVAL, "wal: checkpoint: bad range %d..%d", from_seg, to_seg);
        goto fail;
    }
    if (wal_last_checkpoint(dir, &prev_idx, prev, sizeof prev, &e2) == 0) {
        if (from_seg > prev_idx + 1) {
            rc = kiln_err_set(err, KILN_EINVAL, "wal: checkpoint: gap between checkpoint.%08d and segment %d",
                              prev_idx, from_seg);
            goto fail;
        }
        if (prev_idx >= to_seg) {
            rc = kiln_err_set(err, KILN_EEXIST, "wal: checkpoint: checkpoint.%08d already covers segment %d",
                              prev_idx, to_seg);
            goto fail;
        }
        from_seg = prev_idx + 1;
    }
    if (from_seg > to_seg) {
        rc = kiln_err_set(err, KILN_EINVAL, "wal: checkpoint: bad range %d..%d", from_seg, to_seg);
        goto fail;
    }
    if ((rc = reader_new(dir, &r, err)))
        goto fail;
    if (prev_idx >= 0) {
        r->cp_index = prev_idx;
        if (!(r->cpdir = strdup(prev))) {
            rc = kiln_err_set(err, KILN_ENOMEM, "wal: out of memory");
            goto fail;
        }
        if ((rc = reader_add_dir(r, prev, 1, 0, -1, 0, err)))
            goto fail;
    }
    if ((rc = reader_add_dir(r, dir, 0, from_seg, to_seg, from_seg, err)))
        goto fail;

    if (remove_dir(tmp) < 0) {
        rc = kiln_err_set(err, KILN_EIO, "wal: checkpoint: remove stale %s: %s", tmp, strerror(errno));
        goto fail;
    }
    wal_opts wo = wal_opts_default();
    wo.compression = opts ? opts->compression : WAL_COMPRESS_SNAPPY;
    if ((rc = wal_open(tmp, &wo, &w, err)))
        goto fail;
    for (;;) {
        const uint8_t *rec;
        size_t len;
        rc = wal_reader_next(r, &rec, &len, err);
        if (rc == 0)
            break;
        if (rc < 0) {
            kiln_err_prefix(err, "wal: checkpoint");
            goto fail;
        }
        if ((rc = cp_filter(&cs, rec, len, err))) {
            kiln_err_prefix(err, "wal: checkpoint: segment %08d", r->seg);
            goto fail;
        }
        arena_free(&cs.a);
        if (cs.out.len && (rc = wal_log(w, cs.out.data, cs.out.len, err)))
            goto fail;
    }
    rc = wal_close(w, err);
    w = NULL;
    if (rc)
        goto fail;
    if (rename(tmp, final) < 0) {
        rc = kiln_err_set(err, KILN_EIO, "wal: checkpoint: rename %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (fsync_path(dir) < 0) {
        rc = kiln_err_set(err, KILN_EIO, "wal: checkpoint: fsync %s: %s", dir, strerror(errno));
        goto fail;
    }
    /* older checkpoints are now redundant */
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            int idx;
            if (parse_checkpoint_name(e->d_name, &idx) && idx < to_seg) {
                char p[PATH_MAX];
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                if (remove_dir(p) < 0)
                    LOG_WARN("wal: checkpoint: cannot delete an old checkpoint", "dir=%s", p);
            }
        }
        closedir(d);
    }
    if (stats)
        *stats = cs.st;
    wal_reader_close(r);
    arena_free(&cs.a);
    buf_free(&cs.out);
    free(cs.smp);
    free(cs.tomb);
    return 0;
fail:
    wal_close(w, NULL);
    remove_dir(tmp);
    wal_reader_close(r);
    arena_free(&cs.a);
    buf_free(&cs.out);
    free(cs.smp);
    free(cs.tomb);
    return rc;
}
