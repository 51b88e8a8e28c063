/*
 * headchunks.c - full head chunks in <data>/chunks_head (format and rules in
 * headchunks.h).
 *
 * Called by the head when a chunk fills (headchunks_write) and when a query
 * reads a chunk no longer in memory (headchunks_read / _release), by the
 * storage at start-up (headchunks_open, headchunks_iterate to map the chunks
 * back to their series) and at head truncation (headchunks_truncate).
 *
 * Threading: one mutex guards the writer (file, buffer, lengths); mappings
 * are created under it and published with release stores, read with acquire
 * loads.
 */
#include "storage/headchunks.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/endian.h"

#define HC_MAGIC 0x0130BC91u
#define HC_HEADER 8
#define HC_MAX_FILE (128u << 20)
#define HC_MAX_FILES 65536
#define HC_BUF (256u << 10)
#define HC_CHUNK_META 25 /* ref + mint + maxt + encoding */
#define HC_ENC_XOR 1
#define HC_ENC_FLOAT_HIST 3 /* 2 is the integer histogram */

struct headchunks {
    char dir[4096];
    pthread_mutex_t mu;
    uint8_t *maps[HC_MAX_FILES];
    int64_t fmaxt[HC_MAX_FILES]; /* newest sample in each file (INT64_MIN: none seen) */
    uint32_t first, last;        /* files present at open (0, 0 when none) */
    /* writer */
    int fd;
    uint32_t cur;     /* file being written, 0 before the first write */
    uint64_t len;     /* its length, buffered bytes included */
    uint64_t flushed; /* its length on disk */
    uint8_t *buf;
    size_t blen;
};

static uint8_t *map_file(int fd) {
    void *m = fault_mmap(NULL, HC_MAX_FILE + (1u << 20), PROT_READ, MAP_SHARED, fd, 0);
    return m == MAP_FAILED ? NULL : m;
}

static void file_path(const headchunks *hc, uint32_t n, char *out, size_t sz) {
    snprintf(out, sz, "%s/%06u", hc->dir, n);
}

/* Unmaps and frees (the file is closed or was never opened). */
static void hc_free(headchunks *hc) {
    for (uint32_t i = 0; i < HC_MAX_FILES; i++)
        if (hc->maps[i])
            munmap(hc->maps[i], HC_MAX_FILE + (1u << 20));
    free(hc->buf);
    pthread_mutex_destroy(&hc->mu);
    free(hc);
}

int headchunks_open(const char *dir, headchunks **out, kiln_err *err) {
    headchunks *hc = calloc(1, sizeof *hc);
    if (!hc)
        return kiln_err_set(err, KILN_ENOMEM, "chunks_head: out of memory");
    if (strlen(dir) >= sizeof hc->dir - 16) {
        free(hc);
        return kiln_err_set(err, KILN_EINVAL, "chunks_head: path too long");
    }
    strcpy(hc->dir, dir);
    pthread_mutex_init(&hc->mu, NULL);
    for (uint32_t i = 0; i < HC_MAX_FILES; i++)
        hc->fmaxt[i] = INT64_MIN;
    hc->fd = -1;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        int e = errno;
        hc_free(hc);
        return kiln_err_set(err, KILN_EIO, "chunks_head: mkdir %s: %s", dir, strerror(e));
    }
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        hc_free(hc);
        return kiln_err_set(err, KILN_EIO, "chunks_head: open %s: %s", dir, strerror(e));
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l != 6 || strspn(e->d_name, "0123456789") != 6)
            continue;
        uint32_t n = (uint32_t)atoi(e->d_name);
        if (n == 0 || n >= HC_MAX_FILES)
            continue;
        if (!hc->first || n < hc->first)
            hc->first = n;
        if (n > hc->last)
            hc->last = n;
    }
    closedir(d);
    for (uint32_t n = hc->first; n && n <= hc->last; n++) {
        char p[4200];
        file_path(hc, n, p, sizeof p);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue; /* a gap */
        hc->maps[n] = map_file(fd);
        close(fd);
    }
    *out = hc;
    return 0;
}

/* After a failed write: cuts the file back to what was flushed whole, so
 * that a later write puts its chunks where their references say (a short
 * write would otherwise shift every later chunk).  Returns the error. */
static int rewind_locked(headchunks *hc, uint64_t to, kiln_err *err, const char *what) {
    int e = errno;
    if (ftruncate(hc->fd, (off_t)to) != 0 || lseek(hc->fd, (off_t)to, SEEK_SET) < 0)
        LOG_ERROR("chunks_head: cannot cut a partly written file back", "file=%06u err=%s", hc->cur,
                  strerror(errno));
    __atomic_store_n(&hc->flushed, to, __ATOMIC_RELEASE);
    return kiln_err_set(err, KILN_EIO, "chunks_head: %s %06u: %s", what, hc->cur, strerror(e));
}

KILN_MUST_CHECK static int flush_locked(headchunks *hc, kiln_err *err) {
    size_t off = 0;
    while (off < hc->blen) {
        ssize_t w = fault_write(hc->fd, hc->buf + off, hc->blen - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return rewind_locked(hc, hc->flushed, err, "write");
        }
        off += (size_t)w;
    }
    __atomic_store_n(&hc->flushed, hc->flushed + hc->blen, __ATOMIC_RELEASE);
    hc->blen = 0;
    return 0;
}

int headchunks_close(headchunks *hc, kiln_err *err) {
    if (!hc)
        return 0;
    int rc = 0;
    if (hc->fd >= 0) {
        rc = flush_locked(hc, err);
        if (rc == 0 && fault_fsync(hc->fd) != 0)
            rc = kiln_err_set(err, KILN_EIO, "chunks_head: fsync: %s", strerror(errno));
        close(hc->fd);
    }
    hc_free(hc);
    return rc;
}

/* Parses the chunk at off in a file of `size` bytes; 0 with the fields,
 * 1 at the end (zeros or no room), -1 when damaged. */
static int parse_chunk(const uint8_t *m, uint64_t size, uint64_t off, uint64_t *sref, int64_t *mint,
                       int64_t *maxt, uint8_t *enc, uint64_t *dlen, uint64_t *total) {
    if (size - off < HC_CHUNK_META + 1 + 4)
        return 1;
    const uint8_t *p = m + off;
    *sref = be64_get(p);
    *mint = (int64_t)be64_get(p + 8);
    *maxt = (int64_t)be64_get(p + 16);
    if (*sref == 0 && *mint == 0 && *maxt == 0)
        return 1;
    *enc = p[24]; /* the top bit: an out-of-order chunk (ooo.h) */
    if ((*enc & 0x7f) < HC_ENC_XOR || (*enc & 0x7f) > HC_ENC_FLOAT_HIST)
        return -1;
    uint64_t l = 0;
    size_t i = HC_CHUNK_META;
    for (int s = 0; i < HC_CHUNK_META + 10; i++, s += 7) {
        if (off + i >= size)
            return -1;
        l |= (uint64_t)(p[i] & 0x7f) << s;
        if (p[i] < 0x80)
            break;
    }
    if (i == HC_CHUNK_META + 10)
        return -1;
    i++;
    if (l > HC_MAX_FILE || off + i + l + 4 > size)
        return -1;
    uint32_t want =
        (uint32_t)p[i + l] << 24 | (uint32_t)p[i + l + 1] << 16 | (uint32_t)p[i + l + 2] << 8 | p[i + l + 3];
    if (crc32c(0, p, i + l) != want)
        return -1;
    *dlen = l;
    *total = i + l + 4;
    return 0;
}

int headchunks_iterate(headchunks *hc, headchunks_fn fn, void *data, kiln_err *err) {
    for (uint32_t n = hc->first; n && n <= hc->last; n++) {
        const uint8_t *m = hc->maps[n];
        if (!m)
            continue;
        char p[4200];
        file_path(hc, n, p, sizeof p);
        struct stat st;
        if (stat(p, &st) != 0)
            continue;
        uint64_t size = (uint64_t)st.st_size, off = HC_HEADER;
        if (size > HC_MAX_FILE)
            size = HC_MAX_FILE;
        if (size < HC_HEADER || be64_get(m) >> 32 != HC_MAGIC || m[4] != 1) {
            LOG_WARN("chunks_head: not a head chunks file, ignored", "file=%s", p);
            continue;
        }
        for (;;) {
            uint64_t sref, dlen, total;
            int64_t mint, maxt;
            uint8_t enc;
            int r = parse_chunk(m, size, off, &sref, &mint, &maxt, &enc, &dlen, &total);
            if (r == 1)
                break;
            if (r < 0) {
                LOG_WARN("chunks_head: damaged chunk; the file is cut there (the WAL still has its samples)",
                         "file=%s offset=%llu", p, (unsigned long long)off);
                if (truncate(p, (off_t)off) != 0)
                    return kiln_err_set(err, KILN_EIO, "chunks_head: truncate %s: %s", p, strerror(errno));
                break;
            }
            if (maxt > hc->fmaxt[n])
                hc->fmaxt[n] = maxt;
            int rc = fn(sref, mint, maxt, (uint64_t)n << 32 | off, enc, data);
            if (rc)
                return rc;
            off += total;
        }
    }
    return 0;
}

int headchunks_truncate(headchunks *hc, int64_t mint, kiln_err *err) {
    int rc = 0;
    pthread_mutex_lock(&hc->mu);
    uint32_t upto = hc->cur ? hc->cur : hc->last + 1;
    for (uint32_t n = 1; n < upto && n < HC_MAX_FILES; n++) {
        if (!hc->maps[n] || hc->fmaxt[n] >= mint || hc->fmaxt[n] == INT64_MIN)
            continue;
        char p[4200];
        file_path(hc, n, p, sizeof p);
        if (unlink(p) != 0 && errno != ENOENT && rc == 0)
            rc = kiln_err_set(err, KILN_EIO, "chunks_head: remove %s: %s", p, strerror(errno));
        munmap(hc->maps[n], HC_MAX_FILE + (1u << 20));
        __atomic_store_n(&hc->maps[n], NULL, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&hc->mu);
    return rc;
}

void headchunks_release(headchunks *hc) {
    for (uint32_t n = hc->first; n && n <= hc->last; n++)
        if (hc->maps[n])
            madvise(hc->maps[n], HC_MAX_FILE, MADV_DONTNEED);
}

/* Starts the next file; mu held. */
KILN_MUST_CHECK static int cut_file(headchunks *hc, kiln_err *err) {
    if (hc->fd >= 0) {
        int rc = flush_locked(hc, err);
        if (rc)
            return rc;
        close(hc->fd);
        hc->fd = -1;
    }
    uint32_t n = hc->cur ? hc->cur + 1 : hc->last + 1;
    if (n >= HC_MAX_FILES)
        return kiln_err_set(err, KILN_ELIMIT, "chunks_head: out of file numbers");
    char p[4200];
    file_path(hc, n, p, sizeof p);
    int fd = fault_open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        return kiln_err_set(err, KILN_EIO, "chunks_head: create %s: %s", p, strerror(errno));
    /* the header goes to disk at once: a file is never empty */
    static const uint8_t hdr[HC_HEADER] = {0x01, 0x30, 0xBC, 0x91, 1, 0, 0, 0};
    if (fault_write(fd, hdr, sizeof hdr) != (ssize_t)sizeof hdr) {
        int e = errno;
        close(fd);
        return kiln_err_set(err, KILN_EIO, "chunks_head: write %s: %s", p, strerror(e));
    }
    uint8_t *m = map_file(fd);
    if (!m) {
        close(fd);
        return kiln_err_set(err, KILN_EIO, "chunks_head: mmap %s: %s", p, strerror(errno));
    }
    if (!hc->buf && !(hc->buf = malloc(HC_BUF))) {
        munmap(m, HC_MAX_FILE + (1u << 20));
        close(fd);
        return kiln_err_set(err, KILN_ENOMEM, "chunks_head: out of memory");
    }
    hc->fd = fd;
    __atomic_store_n(&hc->maps[n], m, __ATOMIC_RELEASE);
    __atomic_store_n(&hc->cur, n, __ATOMIC_RELEASE);
    hc->blen = 0;
    hc->len = sizeof hdr;
    __atomic_store_n(&hc->flushed, (uint64_t)sizeof hdr, __ATOMIC_RELEASE);
    return 0;
}

/* Buffers one whole chunk (parts p[0..3]); the buffer is flushed only at
 * chunk boundaries, so the file on disk always ends with a whole chunk. */
KILN_MUST_CHECK static int put_chunk_locked(headchunks *hc, const uint8_t *const *p, const size_t *n,
                                            kiln_err *err) {
    size_t total = n[0] + n[1] + n[2];
    if (hc->blen + total > HC_BUF) {
        int rc = flush_locked(hc, err);
        if (rc)
            return rc;
    }
    if (total > HC_BUF) { /* bigger than the buffer: straight to the file */
        uint64_t start = hc->flushed;
        for (int i = 0; i < 3; i++) {
            size_t off = 0;
            while (off < n[i]) {
                ssize_t w = fault_write(hc->fd, p[i] + off, n[i] - off);
                if (w < 0 && errno == EINTR)
                    continue;
                if (w < 0)
                    return rewind_locked(hc, start, err, "write");
                off += (size_t)w;
            }
        }
        __atomic_store_n(&hc->flushed, start + total, __ATOMIC_RELEASE);
        return 0;
    }
    for (int i = 0; i < 3; i++) {
        memcpy(hc->buf + hc->blen, p[i], n[i]);
        hc->blen += n[i];
    }
    return 0;
}

int headchunks_write(headchunks *hc, uint64_t series_ref, int64_t mint, int64_t maxt, const uint8_t *data,
                     size_t len, uint64_t *cref, kiln_err *err) {
    return headchunks_write_enc(hc, series_ref, mint, maxt, HC_ENC_XOR, data, len, cref, err);
}

int headchunks_write_enc(headchunks *hc, uint64_t series_ref, int64_t mint, int64_t maxt, uint8_t enc,
                         const uint8_t *data, size_t len, uint64_t *cref, kiln_err *err) {
    uint8_t meta[HC_CHUNK_META + 10], crc[4];
    be64_put(meta, series_ref);
    be64_put(meta + 8, (uint64_t)mint);
    be64_put(meta + 16, (uint64_t)maxt);
    meta[24] = enc;
    size_t m = HC_CHUNK_META;
    uint64_t l = len;
    while (l >= 0x80) {
        meta[m++] = (uint8_t)(l | 0x80);
        l >>= 7;
    }
    meta[m++] = (uint8_t)l;
    uint32_t c = crc32c(crc32c(0, meta, m), data, len);
    crc[0] = (uint8_t)(c >> 24);
    crc[1] = (uint8_t)(c >> 16);
    crc[2] = (uint8_t)(c >> 8);
    crc[3] = (uint8_t)c;
    uint64_t total = m + len + 4;
    pthread_mutex_lock(&hc->mu);
    int rc = 0;
    if (hc->fd < 0 || hc->len + total > HC_MAX_FILE)
        rc = cut_file(hc, err);
    if (rc == 0) {
        uint64_t off = hc->len;
        const uint8_t *parts[3] = {meta, data, crc};
        const size_t lens[3] = {m, len, 4};
        if ((rc = put_chunk_locked(hc, parts, lens, err)) == 0) {
            hc->len += total;
            if (maxt > hc->fmaxt[hc->cur])
                hc->fmaxt[hc->cur] = maxt;
            *cref = (uint64_t)hc->cur << 32 | off;
        }
    }
    pthread_mutex_unlock(&hc->mu);
    return rc;
}

int headchunks_read(headchunks *hc, uint64_t cref, const uint8_t **data, size_t *len) {
    uint32_t n = (uint32_t)(cref >> 32);
    uint64_t off = cref & 0xffffffffu;
    if (n == 0 || n >= HC_MAX_FILES)
        return KILN_ECORRUPT;
    const uint8_t *m = __atomic_load_n(&hc->maps[n], __ATOMIC_ACQUIRE);
    if (!m)
        return KILN_ECORRUPT;
    /* the buffer is flushed at chunk boundaries only: a chunk that starts
     * below the flushed length is on disk whole */
    if (n == __atomic_load_n(&hc->cur, __ATOMIC_ACQUIRE) &&
        off >= __atomic_load_n(&hc->flushed, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&hc->mu);
        int rc = 0;
        if (n == hc->cur && hc->blen > 0) /* the chunk may be (partly) in the buffer */
            rc = flush_locked(hc, NULL);
        (void)off;
        pthread_mutex_unlock(&hc->mu);
        if (rc)
            return rc;
    }
    const uint8_t *p = m + off + HC_CHUNK_META;
    uint64_t l = 0;
    int s = 0;
    while (*p & 0x80) {
        l |= (uint64_t)(*p++ & 0x7f) << s;
        s += 7;
    }
    l |= (uint64_t)*p++ << s;
    *data = p;
    *len = (size_t)l;
    return 0;
}
