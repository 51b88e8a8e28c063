/*
 * wal.c - the write-ahead log's segment directory and its writer (the
 * format is drawn in wal.h; walreader.c reads it back and repairs it,
 * checkpoint.c condenses closed segments).
 *
 * Called by the storage: wal_open once the replay is done, wal_log_batch at
 * every appender commit (the acknowledgement point), wal_sync from the
 * fsync policy or a worker, wal_next_segment / wal_truncate_before at head
 * truncation; checkpoint.c writes a checkpoint with a writer of its own.
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
 * Threading: any thread may log, sync, switch or truncate (wal.h); `mu`
 * orders the writes, `sync_mu` one wal_sync at a time (taken before `mu`),
 * and under WAL_FSYNC_PERIODIC a thread of the wal's own calls wal_sync.
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
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "storage/wal_int.h"
#include "util/endian.h"

#define WAL_MAX_PENDING 8

/* ---- the segment directory ------------------------------------------------------ */

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

int wal__list_segments(const char *dir, int **segs, size_t *n, kiln_err *err) {
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
        if (array_grow((void **)&v, &cap, *n + 1, sizeof *v)) {
            free(v);
            *n = 0;
            closedir(d);
            return kiln_err_set(err, KILN_ENOMEM, "wal: out of memory listing %s", dir);
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
    int rc = wal__list_segments(dir, &segs, &n, err);
    if (rc)
        return rc;
    if (n) {
        *first = segs[0];
        *last = segs[n - 1];
    }
    free(segs);
    return 0;
}

int wal__parse_checkpoint_name(const char *s, int *idx) {
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
        if (wal__parse_checkpoint_name(e->d_name, &idx) && idx > best)
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

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int timed_fsync(wal *w, int fd) {
    uint64_t t0 = mono_ns();
    int rc = fault_fsync(fd);
    atomic_fetch_add(&w->fsync_ns, mono_ns() - t0);
    atomic_fetch_add(&w->fsyncs, 1);
    return rc;
}

KILN_MUST_CHECK static int create_segment(wal *w, int seg, kiln_err *err) {
    char p[PATH_MAX];
    wal__segment_path(p, sizeof p, w->dir, seg);
    int fd = fault_open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
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
KILN_MUST_CHECK static int write_out(wal *w, kiln_err *err) {
    size_t off = 0;
    while (off < w->out.len) {
        ssize_t k = fault_write(w->fd, w->out.data + off, w->out.len - off);
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
KILN_MUST_CHECK static int pad_page(wal *w) {
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
KILN_MUST_CHECK static int frag_append(wal *w, const uint8_t *p, size_t plen, uint8_t flags) {
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
        be16_put(o + 1, (uint16_t)n);
        be32_put(o + 3, crc32c(0, p, n));
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
KILN_MUST_CHECK static int switch_segment(wal *w, kiln_err *err) {
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
KILN_MUST_CHECK static int compress_rec(wal *w, const uint8_t **p, size_t *len, uint8_t *flags) {
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

KILN_MUST_CHECK static int log_locked(wal *w, const wal_rec *recs, size_t n, kiln_err *err) {
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
            if ((rc = fileio_fsync_dir(w->dir, err))) {
                kiln_err_prefix(err, "wal");
                return rc;
            }
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
        int rc2 = fileio_fsync_dir(w->dir, rc ? NULL : err);
        if (rc2 && !rc) {
            rc = rc2;
            kiln_err_prefix(err, "wal");
        }
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
            LOG_ERROR("wal: periodic fsync failed", "err=%s", e.msg);
        pthread_mutex_lock(&w->thr_mu);
    }
    pthread_mutex_unlock(&w->thr_mu);
    return NULL;
}

/* Frees w and what it holds (the segments queued for fsync are closed by
 * wal_sync before, or there are none). */
static void wal_free(wal *w) {
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
    if ((rc = fileio_mkdir_p(dir, err))) {
        kiln_err_prefix(err, "wal");
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
    wal_free(w);
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
    int rc = wal__list_segments(w->dir, &segs, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && segs[i] < segment; i++) {
        char p[PATH_MAX];
        wal__segment_path(p, sizeof p, w->dir, segs[i]);
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
    wal_free(w);
    return rc;
}
