/*
 * block.c - Prometheus-format blocks: writer and reader (see block.h).
 *
 * Byte layouts follow the TSDB format documents (index format 2: series
 * entries 16-byte aligned, a series' ID is its offset / 16; symbols
 * referenced by their position in the sorted table; big-endian fixed-width
 * fields; CRC32-Castagnoli after every section).
 */
#include "storage/block.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/head.h"
#include "storage/tombstones.h"
#include "storage/wal.h"
#include "storage/xorchunk.h"

#define INDEX_MAGIC 0xBAAAD700u
#define CHUNKS_MAGIC 0x85BD40DDu
#define SEGMENT_MAX (512u << 20)
#define TOC_LEN (6 * 8 + 4)

/* ---- small encoders ---------------------------------------------------- */

static void put_be32(buf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    buf_append(b, x, 4);
}

static void put_be64(buf *b, uint64_t v) {
    put_be32(b, (uint32_t)(v >> 32));
    put_be32(b, (uint32_t)v);
}

static void put_uvarint(buf *b, uint64_t v) {
    uint8_t x[10];
    int n = 0;
    while (v >= 0x80) {
        x[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    x[n++] = (uint8_t)v;
    buf_append(b, x, (size_t)n);
}

static void put_varint(buf *b, int64_t v) {
    put_uvarint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static void patch_be32(buf *b, size_t off, uint32_t v) {
    b->data[off] = (char)(v >> 24);
    b->data[off + 1] = (char)(v >> 16);
    b->data[off + 2] = (char)(v >> 8);
    b->data[off + 3] = (char)v;
}

static void pad_to(buf *b, size_t align) {
    while (b->len % align)
        buf_putc(b, 0);
}

/* Appends the CRC32C of b[from..len) (big-endian). */
static void put_crc(buf *b, size_t from) {
    put_be32(b, crc32c(0, b->data + from, b->len - from));
}

static uint32_t rd_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t rd_be64(const uint8_t *p) {
    return (uint64_t)rd_be32(p) << 32 | rd_be32(p + 4);
}

/* A bounded reader over mapped bytes; any overrun sets bad. */
typedef struct rd {
    const uint8_t *p, *end;
    int bad;
} rd;

static uint64_t rd_uvarint(rd *r) {
    uint64_t x = 0;
    for (int s = 0; s < 64; s += 7) {
        if (r->p >= r->end) {
            r->bad = 1;
            return 0;
        }
        uint8_t c = *r->p++;
        x |= (uint64_t)(c & 0x7f) << s;
        if (c < 0x80)
            return x;
    }
    r->bad = 1;
    return 0;
}

static int64_t rd_varint(rd *r) {
    uint64_t u = rd_uvarint(r);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

static const uint8_t *rd_bytes(rd *r, size_t n) {
    if ((size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

/* ---- files ---------------------------------------------------------------- */

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_file(const char *path, const void *p, size_t n, kiln_err *err) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return kiln_err_set(err, KILN_EIO, "create %s: %s", path, strerror(errno));
    if (write_all(fd, p, n) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return kiln_err_set(err, KILN_EIO, "write %s: %s", path, strerror(e));
    }
    close(fd);
    return 0;
}

static void fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static int rm_rf(const char *path) {
    DIR *d = opendir(path);
    if (!d)
        return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        rm_rf(p);
    }
    closedir(d);
    return rmdir(path);
}

/* ---- ULIDs ------------------------------------------------------------------ */

static void new_ulid(char out[BLOCK_ULID_LEN + 1]) {
    static const char enc[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    uint8_t rnd[10] = {0};
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        uint64_t x = (uint64_t)time_mono_sec() * 1000003u ^ (uint64_t)getpid();
        memcpy(rnd, &x, 8);
    }
    uint64_t ms = (uint64_t)time_now_ms();
    for (int i = 9; i >= 0; i--) {
        out[i] = enc[ms & 31];
        ms >>= 5;
    }
    /* 80 random bits as 16 characters of 5 bits, most significant first */
    for (int i = 0; i < 16; i++) {
        unsigned v = 0;
        for (int bit = 0; bit < 5; bit++) {
            int k = i * 5 + bit;
            v = v << 1 | ((rnd[k / 8] >> (7 - k % 8)) & 1);
        }
        out[10 + i] = enc[v];
    }
    out[26] = 0;
}

static int is_ulid(const char *s) {
    if (strlen(s) != BLOCK_ULID_LEN)
        return 0;
    for (const char *c = s; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'A' && *c <= 'Z')))
            return 0;
    return 1;
}

/* ---- the writer ------------------------------------------------------------- */

typedef struct wseries {
    label *ls;
    size_t nls;
    size_t first_chunk, nchunks; /* into w->metas */
} wseries;

typedef struct wmeta {
    int64_t mint, maxt;
    uint64_t ref;
} wmeta;

struct block_writer {
    char dir[2048], tmp[2100], ulid[BLOCK_ULID_LEN + 1];
    int64_t mint, maxt;
    arena mem;
    wseries *series;
    size_t nseries, capseries;
    wmeta *metas;
    size_t nmetas, capmetas;
    int fd;       /* current chunk segment */
    uint32_t seq; /* its number - 1 */
    uint64_t off; /* bytes written to it */
    buf cbuf;     /* not yet written */
    uint64_t samples;
    int level;           /* compaction level (1: from the head) */
    block_meta *parents; /* the blocks merged into this one */
    size_t nparents;
};

static int seg_flush(block_writer *w, kiln_err *err) {
    if (w->cbuf.len && write_all(w->fd, w->cbuf.data, w->cbuf.len) != 0)
        return kiln_err_set(err, KILN_EIO, "block %s: writing chunks: %s", w->ulid, strerror(errno));
    buf_reset(&w->cbuf);
    return 0;
}

static int seg_close(block_writer *w, kiln_err *err) {
    if (w->fd < 0)
        return 0;
    int rc = seg_flush(w, err);
    if (rc == 0 && fsync(w->fd) != 0)
        rc = kiln_err_set(err, KILN_EIO, "block %s: fsync chunks: %s", w->ulid, strerror(errno));
    close(w->fd);
    w->fd = -1;
    return rc;
}

static int seg_open(block_writer *w, kiln_err *err) {
    char p[2200];
    if (w->fd >= 0) {
        int rc = seg_close(w, err);
        if (rc)
            return rc;
        w->seq++;
    }
    snprintf(p, sizeof p, "%s/chunks/%06u", w->tmp, w->seq + 1);
    w->fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0)
        return kiln_err_set(err, KILN_EIO, "create %s: %s", p, strerror(errno));
    put_be32(&w->cbuf, CHUNKS_MAGIC);
    buf_putc(&w->cbuf, 1);
    buf_append(&w->cbuf, "\0\0\0", 3);
    w->off = 8;
    return 0;
}

int block_writer_new(const char *dir, int64_t mint, int64_t maxt, block_writer **out, kiln_err *err) {
    *out = NULL;
    block_writer *w = calloc(1, sizeof *w);
    if (!w)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    w->fd = -1;
    w->mint = mint;
    w->maxt = maxt;
    w->level = 1;
    arena_init(&w->mem, 0);
    new_ulid(w->ulid);
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    snprintf(w->tmp, sizeof w->tmp, "%s/%s.tmp-for-creation", dir, w->ulid);
    char p[2200];
    snprintf(p, sizeof p, "%s/chunks", w->tmp);
    if (mkdir(w->tmp, 0777) != 0 || mkdir(p, 0777) != 0) {
        kiln_err_set(err, KILN_EIO, "create %s: %s", p, strerror(errno));
        block_writer_abort(w);
        return KILN_EIO;
    }
    int rc = seg_open(w, err);
    if (rc) {
        block_writer_abort(w);
        return rc;
    }
    *out = w;
    return 0;
}

int block_writer_add(block_writer *w, const label *ls, size_t nls, const block_chunk *c, size_t nc,
                     kiln_err *err) {
    if (nc == 0)
        return 0;
    if (array_grow((void **)&w->series, &w->capseries, w->nseries + 1, sizeof *w->series) ||
        array_grow((void **)&w->metas, &w->capmetas, w->nmetas + nc, sizeof *w->metas))
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    wseries *s = &w->series[w->nseries];
    if (!(s->ls = labels_copy(&w->mem, ls, nls)) && nls)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    s->nls = nls;
    s->first_chunk = w->nmetas;
    s->nchunks = nc;
    for (size_t i = 0; i < nc; i++) {
        size_t need = c[i].len + 1 + 10 + 4;
        if (w->off + need > SEGMENT_MAX && w->off > 8) {
            int rc = seg_open(w, err);
            if (rc)
                return rc;
        }
        uint64_t ref = (uint64_t)w->seq << 32 | w->off;
        size_t start = w->cbuf.len;
        put_uvarint(&w->cbuf, c[i].len);
        size_t enc = w->cbuf.len;
        buf_putc(&w->cbuf, 1); /* XOR */
        buf_append(&w->cbuf, c[i].data, c[i].len);
        put_be32(&w->cbuf, crc32c(0, w->cbuf.data + enc, w->cbuf.len - enc));
        if (!w->cbuf.data)
            return kiln_err_set(err, KILN_ENOMEM, "out of memory");
        w->off += w->cbuf.len - start;
        w->metas[w->nmetas++] = (wmeta){c[i].mint, c[i].maxt, ref};
        if (c[i].len >= 2)
            w->samples += (uint64_t)(c[i].data[0] << 8 | c[i].data[1]);
        if (w->cbuf.len > (1u << 20)) {
            int rc = seg_flush(w, err);
            if (rc)
                return rc;
        }
    }
    w->nseries++;
    return 0;
}

void block_writer_abort(block_writer *w) {
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp[0])
        rm_rf(w->tmp);
    buf_free(&w->cbuf);
    arena_free(&w->mem);
    free(w->series);
    free(w->metas);
    free(w->parents);
    free(w);
}

int block_writer_set_parents(block_writer *w, const block_meta *parents, size_t n) {
    block_meta *c = malloc((n + 1) * sizeof *c);
    if (!c)
        return KILN_ENOMEM;
    memcpy(c, parents, n * sizeof *c);
    free(w->parents);
    w->parents = c;
    w->nparents = n;
    w->level = 1;
    for (size_t i = 0; i < n; i++)
        if (parents[i].level + 1 > w->level)
            w->level = parents[i].level + 1;
    return 0;
}

void block_writer_set_level(block_writer *w, int level) {
    w->level = level > 0 ? level : 1;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

typedef struct pair {
    const char *name, *value;
    uint32_t id;
} pair;

static int cmp_pair(const void *a, const void *b) {
    const pair *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    if ((c = strcmp(x->value, y->value)))
        return c;
    return x->id < y->id ? -1 : x->id > y->id;
}

static uint32_t sym_ref(const char **syms, size_t n, const char *s) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(syms[mid], s);
        if (c == 0)
            return (uint32_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* The index file of the written series into b. */
static int build_index(block_writer *w, buf *b) {
    int rc = KILN_ENOMEM;
    size_t nstr = 0;
    for (size_t i = 0; i < w->nseries; i++)
        nstr += 2 * w->series[i].nls;
    const char **syms = malloc((nstr + 1) * sizeof *syms);
    pair *pairs = malloc((nstr / 2 + w->nseries + 1) * sizeof *pairs);
    uint32_t *ids = malloc((w->nseries + 1) * sizeof *ids);
    uint64_t *poff = NULL, *loff = NULL;
    buf e = {0};
    if (!syms || !pairs || !ids)
        goto out;
    size_t k = 0;
    for (size_t i = 0; i < w->nseries; i++)
        for (size_t j = 0; j < w->series[i].nls; j++) {
            syms[k++] = w->series[i].ls[j].name;
            syms[k++] = w->series[i].ls[j].value;
        }
    qsort(syms, k, sizeof *syms, cmp_str);
    size_t ns = 0;
    for (size_t i = 0; i < k; i++)
        if (ns == 0 || strcmp(syms[ns - 1], syms[i]) != 0)
            syms[ns++] = syms[i];

    put_be32(b, INDEX_MAGIC);
    buf_putc(b, 2);
    /* symbols */
    size_t toc_sym = b->len;
    put_be32(b, 0);
    put_be32(b, (uint32_t)ns);
    for (size_t i = 0; i < ns; i++) {
        size_t l = strlen(syms[i]);
        put_uvarint(b, l);
        buf_append(b, syms[i], l);
    }
    patch_be32(b, toc_sym, (uint32_t)(b->len - toc_sym - 4));
    put_crc(b, toc_sym + 4);
    /* series */
    pad_to(b, 16);
    size_t toc_series = b->len;
    size_t np = 0;
    for (size_t i = 0; i < w->nseries; i++) {
        pad_to(b, 16);
        const wseries *s = &w->series[i];
        ids[i] = (uint32_t)(b->len / 16);
        buf_reset(&e);
        put_uvarint(&e, s->nls);
        for (size_t j = 0; j < s->nls; j++) {
            put_uvarint(&e, sym_ref(syms, ns, s->ls[j].name));
            put_uvarint(&e, sym_ref(syms, ns, s->ls[j].value));
            pairs[np++] = (pair){s->ls[j].name, s->ls[j].value, ids[i]};
        }
        put_uvarint(&e, s->nchunks);
        const wmeta *m = &w->metas[s->first_chunk];
        for (size_t j = 0; j < s->nchunks; j++) {
            if (j == 0) {
                put_varint(&e, m[0].mint);
                put_uvarint(&e, (uint64_t)(m[0].maxt - m[0].mint));
                put_uvarint(&e, m[0].ref);
            } else {
                put_uvarint(&e, (uint64_t)(m[j].mint - m[j - 1].maxt));
                put_uvarint(&e, (uint64_t)(m[j].maxt - m[j].mint));
                put_varint(&e, (int64_t)(m[j].ref - m[j - 1].ref));
            }
        }
        put_uvarint(b, e.len);
        size_t from = b->len;
        buf_append(b, e.data, e.len);
        put_crc(b, from);
    }
    if (w->nseries == 0)
        toc_series = 0;
    qsort(pairs, np, sizeof *pairs, cmp_pair);
    /* label indices: one per name, its sorted values */
    size_t nnames = 0;
    for (size_t i = 0; i < np; i++)
        nnames += i == 0 || strcmp(pairs[i].name, pairs[i - 1].name) != 0;
    loff = malloc((nnames + 1) * sizeof *loff);
    if (!loff)
        goto out;
    pad_to(b, 4);
    size_t toc_li = nnames ? b->len : 0;
    for (size_t i = 0, n = 0; i < np; n++) {
        size_t j = i;
        while (j < np && strcmp(pairs[j].name, pairs[i].name) == 0)
            j++;
        pad_to(b, 4);
        loff[n] = b->len;
        size_t at = b->len;
        put_be32(b, 0);
        put_be32(b, 1);
        size_t cnt_at = b->len;
        put_be32(b, 0);
        uint32_t cnt = 0;
        for (size_t x = i; x < j; x++)
            if (x == i || strcmp(pairs[x].value, pairs[x - 1].value) != 0) {
                put_be32(b, sym_ref(syms, ns, pairs[x].value));
                cnt++;
            }
        patch_be32(b, cnt_at, cnt);
        patch_be32(b, at, (uint32_t)(b->len - at - 4));
        put_crc(b, at + 4);
        i = j;
    }
    /* label offset table */
    size_t toc_lot = b->len;
    put_be32(b, 0);
    put_be32(b, (uint32_t)nnames);
    for (size_t i = 0, n = 0; i < np; n++) {
        size_t j = i;
        while (j < np && strcmp(pairs[j].name, pairs[i].name) == 0)
            j++;
        buf_putc(b, 1);
        put_uvarint(b, strlen(pairs[i].name));
        buf_puts(b, pairs[i].name);
        put_uvarint(b, loff[n]);
        i = j;
    }
    patch_be32(b, toc_lot, (uint32_t)(b->len - toc_lot - 4));
    put_crc(b, toc_lot + 4);
    /* postings: all series first (name and value empty), then each pair */
    size_t npairs = 0;
    for (size_t i = 0; i < np; i++)
        npairs += i == 0 || cmp_pair(&(pair){pairs[i].name, pairs[i].value, 0},
                                     &(pair){pairs[i - 1].name, pairs[i - 1].value, 0}) != 0;
    poff = malloc((npairs + 2) * sizeof *poff);
    if (!poff)
        goto out;
    pad_to(b, 4);
    size_t toc_post = b->len;
    poff[0] = b->len;
    put_be32(b, (uint32_t)(4 + 4 * w->nseries));
    put_be32(b, (uint32_t)w->nseries);
    for (size_t i = 0; i < w->nseries; i++)
        put_be32(b, ids[i]);
    put_crc(b, poff[0] + 4);
    for (size_t i = 0, n = 1; i < np; n++) {
        size_t j = i;
        while (j < np && !strcmp(pairs[j].name, pairs[i].name) && !strcmp(pairs[j].value, pairs[i].value))
            j++;
        pad_to(b, 4);
        poff[n] = b->len;
        put_be32(b, (uint32_t)(4 + 4 * (j - i)));
        put_be32(b, (uint32_t)(j - i));
        for (size_t x = i; x < j; x++)
            put_be32(b, pairs[x].id);
        put_crc(b, poff[n] + 4);
        i = j;
    }
    /* postings offset table */
    size_t toc_pot = b->len;
    put_be32(b, 0);
    put_be32(b, (uint32_t)(npairs + 1));
    buf_putc(b, 2);
    put_uvarint(b, 0);
    put_uvarint(b, 0);
    put_uvarint(b, poff[0]);
    for (size_t i = 0, n = 1; i < np; n++) {
        size_t j = i;
        while (j < np && !strcmp(pairs[j].name, pairs[i].name) && !strcmp(pairs[j].value, pairs[i].value))
            j++;
        buf_putc(b, 2);
        put_uvarint(b, strlen(pairs[i].name));
        buf_puts(b, pairs[i].name);
        put_uvarint(b, strlen(pairs[i].value));
        buf_puts(b, pairs[i].value);
        put_uvarint(b, poff[n]);
        i = j;
    }
    patch_be32(b, toc_pot, (uint32_t)(b->len - toc_pot - 4));
    put_crc(b, toc_pot + 4);
    /* TOC */
    size_t toc = b->len;
    put_be64(b, toc_sym);
    put_be64(b, toc_series);
    put_be64(b, toc_li);
    put_be64(b, toc_lot);
    put_be64(b, toc_post);
    put_be64(b, toc_pot);
    put_crc(b, toc);
    rc = b->data ? 0 : KILN_ENOMEM;
out:
    buf_free(&e);
    free(syms);
    free(pairs);
    free(ids);
    free(poff);
    free(loff);
    return rc;
}

int block_writer_commit(block_writer *w, char ulid[BLOCK_ULID_LEN + 1], kiln_err *err) {
    buf b = {0};
    char p[2200], fin[2200];
    int rc = seg_close(w, err);
    if (rc)
        goto fail;
    if ((rc = build_index(w, &b)) != 0) {
        kiln_err_set(err, rc, "block %s: out of memory building the index", w->ulid);
        goto fail;
    }
    snprintf(p, sizeof p, "%s/index", w->tmp);
    if ((rc = write_file(p, b.data, b.len, err)) != 0)
        goto fail;
    buf_reset(&b);
    tombstones none = {0};
    if (tombstones_encode(&none, &b) != 0) {
        rc = kiln_err_set(err, KILN_ENOMEM, "block %s: out of memory", w->ulid);
        goto fail;
    }
    snprintf(p, sizeof p, "%s/tombstones", w->tmp);
    if ((rc = write_file(p, b.data, b.len, err)) != 0)
        goto fail;
    buf_reset(&b);
    buf_printf(&b,
               "{\n\t\"ulid\": \"%s\",\n\t\"minTime\": %lld,\n\t\"maxTime\": %lld,\n\t\"stats\": {\n"
               "\t\t\"numSamples\": %llu,\n\t\t\"numSeries\": %zu,\n\t\t\"numChunks\": %zu\n\t},\n"
               "\t\"compaction\": {\n\t\t\"level\": %d,\n\t\t\"sources\": [\n",
               w->ulid, (long long)w->mint, (long long)w->maxt, (unsigned long long)w->samples, w->nseries,
               w->nmetas, w->level);
    if (!w->nparents)
        buf_printf(&b, "\t\t\t\"%s\"\n", w->ulid);
    for (size_t i = 0; i < w->nparents; i++)
        buf_printf(&b, "\t\t\t\"%s\"%s\n", w->parents[i].ulid, i + 1 < w->nparents ? "," : "");
    buf_puts(&b, "\t\t]");
    if (w->nparents) {
        buf_puts(&b, ",\n\t\t\"parents\": [\n");
        for (size_t i = 0; i < w->nparents; i++)
            buf_printf(&b,
                       "\t\t\t{\n\t\t\t\t\"ulid\": \"%s\",\n\t\t\t\t\"minTime\": %lld,\n"
                       "\t\t\t\t\"maxTime\": %lld\n\t\t\t}%s\n",
                       w->parents[i].ulid, (long long)w->parents[i].mint, (long long)w->parents[i].maxt,
                       i + 1 < w->nparents ? "," : "");
        buf_puts(&b, "\t\t]");
    }
    buf_puts(&b, "\n\t},\n\t\"version\": 1\n}\n");
    snprintf(p, sizeof p, "%s/meta.json", w->tmp);
    if ((rc = write_file(p, b.data, b.len, err)) != 0)
        goto fail;
    snprintf(p, sizeof p, "%s/chunks", w->tmp);
    fsync_dir(p);
    fsync_dir(w->tmp);
    snprintf(fin, sizeof fin, "%s/%s", w->dir, w->ulid);
    if (rename(w->tmp, fin) != 0) {
        rc = kiln_err_set(err, KILN_EIO, "rename %s: %s", w->tmp, strerror(errno));
        goto fail;
    }
    fsync_dir(w->dir);
    memcpy(ulid, w->ulid, sizeof w->ulid);
    buf_free(&b);
    w->tmp[0] = 0; /* nothing to remove */
    block_writer_abort(w);
    return 0;
fail:
    buf_free(&b);
    block_writer_abort(w);
    return rc;
}

/* ---- the reader ---------------------------------------------------------------- */

typedef struct pentry {
    const char *name, *value;
    uint64_t off;
} pentry;

typedef struct seg {
    const uint8_t *p;
    size_t len;
} seg;

struct block {
    block_meta meta;
    char path[2200];
    const uint8_t *idx;
    size_t idxlen;
    seg *segs;
    size_t nsegs;
    arena mem;
    const char **syms;
    size_t nsyms;
    pentry *pot; /* postings offset table, sorted by name then value */
    size_t npot;
    uint64_t series_off, bytes;
    char (*parents)[BLOCK_ULID_LEN + 1]; /* meta.json compaction.parents */
    size_t nparents;
    tombstones ts; /* deleted ranges by series ID (changed by block_set_tombstones only) */
};

static int corrupt(kiln_err *err, const block *b, const char *what) {
    return kiln_err_set(err, KILN_ECORRUPT, "block %s: %s", b->path, what);
}

/* Checks the CRC of a len<4b>-prefixed section at off; returns its body. */
static int section(const block *b, uint64_t off, rd *out) {
    if (off + 4 > b->idxlen)
        return -1;
    uint32_t len = rd_be32(b->idx + off);
    if (off + 4 + (uint64_t)len + 4 > b->idxlen)
        return -1;
    const uint8_t *body = b->idx + off + 4;
    if (crc32c(0, body, len) != rd_be32(body + len))
        return -1;
    out->p = body;
    out->end = body + len;
    out->bad = 0;
    return 0;
}

static int json_int(const char *js, const char *key, long long *v) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(js, pat);
    if (!p || !(p = strchr(p + strlen(pat), ':')))
        return -1;
    char *end;
    *v = strtoll(p + 1, &end, 10);
    return end == p + 1 ? -1 : 0;
}

static int read_meta(block *b, const char *dir, const char *ulid, kiln_err *err) {
    char p[2300];
    snprintf(p, sizeof p, "%s/%s/meta.json", dir, ulid);
    FILE *f = fopen(p, "r");
    if (!f)
        return kiln_err_set(err, KILN_ECORRUPT, "block %s: open meta.json: %s", b->path, strerror(errno));
    char js[65536];
    size_t n = fread(js, 1, sizeof js - 1, f);
    fclose(f);
    js[n] = 0;
    long long mint, maxt, v;
    if (json_int(js, "minTime", &mint) || json_int(js, "maxTime", &maxt) || mint >= maxt)
        return corrupt(err, b, "meta.json has no valid minTime/maxTime");
    b->meta.mint = mint;
    b->meta.maxt = maxt;
    b->meta.samples = json_int(js, "numSamples", &v) == 0 ? (uint64_t)v : 0;
    b->meta.series = json_int(js, "numSeries", &v) == 0 ? (uint64_t)v : 0;
    b->meta.chunks = json_int(js, "numChunks", &v) == 0 ? (uint64_t)v : 0;
    b->meta.level = json_int(js, "level", &v) == 0 ? (int)v : 1;
    /* the ULIDs under "parents" (blocks this one replaced) */
    const char *pp = strstr(js, "\"parents\"");
    const char *pend = pp ? strchr(pp, ']') : NULL;
    while (pp && pend && (pp = strstr(pp, "\"ulid\"")) && pp < pend) {
        const char *q = strchr(pp + 6, '"');
        if (!q || !(q = strchr(q + 1, '"')) || !strchr(q + 1, '"'))
            break;
        if (strchr(q + 1, '"') - (q + 1) == BLOCK_ULID_LEN) {
            void *np = realloc(b->parents, (b->nparents + 1) * sizeof *b->parents);
            if (!np)
                return kiln_err_set(err, KILN_ENOMEM, "out of memory");
            b->parents = np;
            memcpy(b->parents[b->nparents], q + 1, BLOCK_ULID_LEN);
            b->parents[b->nparents++][BLOCK_ULID_LEN] = 0;
        }
        pp = q + 1;
    }
    snprintf(b->meta.ulid, sizeof b->meta.ulid, "%s", ulid);
    b->bytes += n;
    return 0;
}

static const void *map_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    void *m = MAP_FAILED;
    if (fstat(fd, &st) == 0 && st.st_size > 0)
        m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return NULL;
    *len = (size_t)st.st_size;
    return m;
}

static int open_chunks(block *b, kiln_err *err) {
    char p[2300];
    for (uint32_t i = 1;; i++) {
        snprintf(p, sizeof p, "%s/chunks/%06u", b->path, i);
        if (access(p, F_OK) != 0)
            break;
        size_t len = 0;
        const uint8_t *m = map_file(p, &len);
        if (!m || len < 8 || rd_be32(m) != CHUNKS_MAGIC) {
            if (m)
                munmap((void *)m, len);
            return kiln_err_set(err, KILN_ECORRUPT, "block %s: chunks/%06u: bad header", b->path, i);
        }
        seg *ns = realloc(b->segs, (b->nsegs + 1) * sizeof *ns);
        if (!ns) {
            munmap((void *)m, len);
            return kiln_err_set(err, KILN_ENOMEM, "out of memory");
        }
        b->segs = ns;
        b->segs[b->nsegs++] = (seg){m, len};
        b->bytes += len;
    }
    return 0;
}

/* The tombstones file (a block without one has nothing deleted). */
static int read_tombstones(block *b, kiln_err *err) {
    char p[2300];
    snprintf(p, sizeof p, "%s/tombstones", b->path);
    size_t len = 0;
    const uint8_t *m = map_file(p, &len);
    if (!m) {
        struct stat st;
        if (stat(p, &st) != 0 && errno == ENOENT)
            return 0;
        if (stat(p, &st) == 0 && st.st_size == 0)
            return corrupt(err, b, "tombstones: empty file");
        return kiln_err_set(err, KILN_ECORRUPT, "block %s: open tombstones: %s", b->path, strerror(errno));
    }
    kiln_err e2;
    int rc = tombstones_decode(m, len, &b->ts, &e2);
    munmap((void *)m, len);
    b->bytes += len;
    if (rc)
        return kiln_err_set(err, rc, "block %s: %s", b->path, e2.msg);
    return 0;
}

/* Walks every series entry and checks its CRC. */
static int check_series(block *b, uint64_t end) {
    uint64_t off = b->series_off;
    while (off < end) {
        off = (off + 15) & ~(uint64_t)15;
        if (off >= end)
            break;
        if (b->idx[off] == 0 && off + 16 <= end) {
            /* padding after the last series */
            int zero = 1;
            for (uint64_t x = off; x < end && zero; x++)
                zero = b->idx[x] == 0;
            if (zero)
                break;
        }
        rd r = {b->idx + off, b->idx + end, 0};
        uint64_t len = rd_uvarint(&r);
        const uint8_t *body = rd_bytes(&r, len);
        const uint8_t *crc = rd_bytes(&r, 4);
        if (r.bad || crc32c(0, body, len) != rd_be32(crc))
            return -1;
        off = (uint64_t)(r.p - b->idx);
    }
    return 0;
}

int block_open(const char *dir, const char *ulid, block **out, kiln_err *err) {
    *out = NULL;
    block *b = calloc(1, sizeof *b);
    if (!b)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    arena_init(&b->mem, 0);
    snprintf(b->path, sizeof b->path, "%s/%s", dir, ulid);
    int rc = read_meta(b, dir, ulid, err);
    char p[2300];
    snprintf(p, sizeof p, "%s/index", b->path);
    if (rc == 0 && !(b->idx = map_file(p, &b->idxlen)))
        rc = kiln_err_set(err, KILN_ECORRUPT, "block %s: open index: %s", b->path, strerror(errno));
    if (rc)
        goto fail;
    b->bytes += b->idxlen;
    if (b->idxlen < 5 + TOC_LEN || rd_be32(b->idx) != INDEX_MAGIC || b->idx[4] != 2) {
        rc = corrupt(err, b, "index: bad magic or version (format 2 expected)");
        goto fail;
    }
    const uint8_t *toc = b->idx + b->idxlen - TOC_LEN;
    if (crc32c(0, toc, 48) != rd_be32(toc + 48)) {
        rc = corrupt(err, b, "index: table of contents checksum mismatch");
        goto fail;
    }
    uint64_t o_sym = rd_be64(toc), o_series = rd_be64(toc + 8), o_li = rd_be64(toc + 16),
             o_lot = rd_be64(toc + 24), o_post = rd_be64(toc + 32), o_pot = rd_be64(toc + 40);
    (void)o_li;
    rd r;
    if (section(b, o_sym, &r) != 0) {
        rc = corrupt(err, b, "index: symbol table damaged");
        goto fail;
    }
    const uint8_t *cnt = rd_bytes(&r, 4);
    b->nsyms = cnt ? rd_be32(cnt) : 0;
    if (!(b->syms = arena_alloc(&b->mem, (b->nsyms + 1) * sizeof *b->syms)))
        goto nomem;
    for (size_t i = 0; i < b->nsyms && !r.bad; i++) {
        uint64_t l = rd_uvarint(&r);
        const uint8_t *s = rd_bytes(&r, l);
        if (s && !(b->syms[i] = arena_strndup(&b->mem, (const char *)s, l)))
            goto nomem;
    }
    if (r.bad) {
        rc = corrupt(err, b, "index: symbol table damaged");
        goto fail;
    }
    if (section(b, o_pot, &r) != 0) {
        rc = corrupt(err, b, "index: postings offset table damaged");
        goto fail;
    }
    cnt = rd_bytes(&r, 4);
    b->npot = cnt ? rd_be32(cnt) : 0;
    if (!(b->pot = arena_alloc(&b->mem, (b->npot + 1) * sizeof *b->pot)))
        goto nomem;
    for (size_t i = 0; i < b->npot && !r.bad; i++) {
        const uint8_t *n2 = rd_bytes(&r, 1);
        uint64_t nl = rd_uvarint(&r);
        const uint8_t *name = rd_bytes(&r, nl);
        uint64_t vl = rd_uvarint(&r);
        const uint8_t *value = rd_bytes(&r, vl);
        uint64_t off = rd_uvarint(&r);
        if (r.bad || *n2 != 2)
            break;
        b->pot[i].name = arena_strndup(&b->mem, (const char *)name, nl);
        b->pot[i].value = arena_strndup(&b->mem, (const char *)value, vl);
        b->pot[i].off = off;
        if (!b->pot[i].name || !b->pot[i].value)
            goto nomem;
    }
    if (r.bad) {
        rc = corrupt(err, b, "index: postings offset table damaged");
        goto fail;
    }
    b->series_off = o_series;
    uint64_t series_end = o_li ? o_li : o_lot ? o_lot : o_post;
    if (o_series && (series_end > b->idxlen || check_series(b, series_end) != 0)) {
        rc = corrupt(err, b, "index: a series entry is damaged");
        goto fail;
    }
    if ((rc = open_chunks(b, err)) != 0)
        goto fail;
    if ((rc = read_tombstones(b, err)) != 0)
        goto fail;
    *out = b;
    return 0;
nomem:
    rc = kiln_err_set(err, KILN_ENOMEM, "out of memory");
fail:
    block_close(b);
    return rc;
}

void block_close(block *b) {
    if (!b)
        return;
    if (b->idx)
        munmap((void *)b->idx, b->idxlen);
    for (size_t i = 0; i < b->nsegs; i++)
        munmap((void *)b->segs[i].p, b->segs[i].len);
    free(b->segs);
    free(b->parents);
    tombstones_free(&b->ts);
    arena_free(&b->mem);
    free(b);
}

const block_meta *block_get_meta(const block *b) {
    return &b->meta;
}

uint64_t block_size(const block *b) {
    return b->bytes;
}

/* The postings list at off: count and a pointer to the big-endian IDs. */
static const uint8_t *postings_at(const block *b, uint64_t off, uint32_t *n) {
    rd r;
    *n = 0;
    if (section(b, off, &r) != 0)
        return NULL;
    const uint8_t *c = rd_bytes(&r, 4);
    if (!c)
        return NULL;
    *n = rd_be32(c);
    return rd_bytes(&r, (size_t)*n * 4) ? c + 4 : NULL;
}

/* [lo, hi) of the table entries with this name. */
static void pot_range(const block *b, const char *name, size_t *lo, size_t *hi) {
    size_t l = 0, h = b->npot;
    while (l < h) {
        size_t m = (l + h) / 2;
        if (strcmp(b->pot[m].name, name) < 0)
            l = m + 1;
        else
            h = m;
    }
    *lo = l;
    while (l < b->npot && strcmp(b->pot[l].name, name) == 0)
        l++;
    *hi = l;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The sorted union of the postings of name's values that m accepts. */
static int matcher_ids(const block *b, const matcher *m, refvec *out) {
    size_t lo, hi;
    pot_range(b, m->name, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        if (!matcher_matches(m, b->pot[i].value))
            continue;
        uint32_t n;
        const uint8_t *p = postings_at(b, b->pot[i].off, &n);
        if (!p)
            return KILN_ECORRUPT;
        if (array_grow((void **)&out->v, &out->cap, out->n + n, sizeof *out->v))
            return KILN_ENOMEM;
        for (uint32_t j = 0; j < n; j++)
            out->v[out->n++] = rd_be32(p + 4 * j);
    }
    if (hi - lo > 1 && out->n) {
        qsort(out->v, out->n, sizeof *out->v, cmp_u32);
        size_t k = 0;
        for (size_t i = 0; i < out->n; i++)
            if (k == 0 || out->v[k - 1] != out->v[i])
                out->v[k++] = out->v[i];
        out->n = k;
    }
    return 0;
}

/* The labels of series id (pointers into the symbol table) in *ls; s is
 * left at the series' chunk count. */
static int series_at(const block *b, uint32_t id, label **ls, size_t *capls, size_t *nls, rd *s) {
    uint64_t off = (uint64_t)id * 16;
    if (off >= b->idxlen)
        return KILN_ECORRUPT;
    rd r = {b->idx + off, b->idx + b->idxlen, 0};
    uint64_t len = rd_uvarint(&r);
    const uint8_t *body = rd_bytes(&r, len);
    if (!body)
        return KILN_ECORRUPT;
    *s = (rd){body, body + len, 0};
    uint64_t n = rd_uvarint(s);
    if (n > LABELS_MAX_COUNT)
        return KILN_ECORRUPT;
    if (array_grow((void **)ls, capls, n + 1, sizeof **ls))
        return KILN_ENOMEM;
    for (uint64_t j = 0; j < n; j++) {
        uint64_t nr = rd_uvarint(s), vr = rd_uvarint(s);
        if (s->bad || nr >= b->nsyms || vr >= b->nsyms)
            return KILN_ECORRUPT;
        (*ls)[j] = (label){b->syms[nr], b->syms[vr]};
    }
    *nls = (size_t)n;
    return 0;
}

/* A series' chunk metas, decoded one by one. */
typedef struct cmeta {
    rd *s;
    uint64_t n, i;
    int64_t mint, maxt;
    uint64_t ref;
} cmeta;

/* 1 with the next meta in c, 0 at the end, KILN_ECORRUPT. */
static int cmeta_next(cmeta *c) {
    if (c->i >= c->n)
        return c->s->bad ? KILN_ECORRUPT : 0;
    if (c->i++ == 0) {
        c->mint = rd_varint(c->s);
        c->maxt = c->mint + (int64_t)rd_uvarint(c->s);
        c->ref = rd_uvarint(c->s);
    } else {
        c->mint = c->maxt + (int64_t)rd_uvarint(c->s);
        c->maxt = c->mint + (int64_t)rd_uvarint(c->s);
        c->ref = (uint64_t)((int64_t)c->ref + rd_varint(c->s));
    }
    return c->s->bad ? KILN_ECORRUPT : 1;
}

/* The XOR bytes of the chunk at ref, its checksum checked. */
static int chunk_at(const block *b, uint64_t ref, const uint8_t **data, size_t *len) {
    uint32_t sq = (uint32_t)(ref >> 32), co = (uint32_t)ref;
    if (sq >= b->nsegs || co >= b->segs[sq].len)
        return KILN_ECORRUPT;
    rd c = {b->segs[sq].p + co, b->segs[sq].p + b->segs[sq].len, 0};
    uint64_t clen = rd_uvarint(&c);
    const uint8_t *encp = rd_bytes(&c, 1);
    const uint8_t *d = rd_bytes(&c, clen);
    const uint8_t *crc = rd_bytes(&c, 4);
    if (c.bad || *encp != 1 || crc32c(0, encp, clen + 1) != rd_be32(crc))
        return KILN_ECORRUPT;
    *data = d;
    *len = (size_t)clen;
    return 0;
}

/* The series IDs the postings of ms allow (all series when no matcher
 * needs a value), sorted; the labels still need checking. */
static int candidates(const block *b, const matcher *ms, size_t nms, refvec *out) {
    refvec cand = {0}, tmp = {0};
    int have = 0, rc = 0;
    for (size_t i = 0; i < nms && rc == 0; i++) {
        if (matcher_matches_empty(&ms[i]))
            continue;
        tmp.n = 0;
        if ((rc = matcher_ids(b, &ms[i], &tmp)) != 0)
            break;
        if (!have) {
            refvec t = cand;
            cand = tmp;
            tmp = t;
            have = 1;
        } else {
            refvec_intersect(&cand, &tmp);
        }
    }
    if (rc == 0 && !have) {
        size_t lo, hi;
        pot_range(b, "", &lo, &hi);
        for (size_t i = lo; i < hi && rc == 0; i++) {
            uint32_t n;
            const uint8_t *p = postings_at(b, b->pot[i].off, &n);
            if (!p) {
                rc = KILN_ECORRUPT;
                break;
            }
            if (array_grow((void **)&cand.v, &cand.cap, n, sizeof *cand.v)) {
                rc = KILN_ENOMEM;
                break;
            }
            for (uint32_t j = 0; j < n; j++)
                cand.v[j] = rd_be32(p + 4 * j);
            cand.n = n;
        }
    }
    free(tmp.v);
    if (rc)
        free(cand.v);
    else
        *out = cand;
    return rc;
}

static int labels_match(const label *ls, size_t nls, const matcher *ms, size_t nms) {
    for (size_t j = 0; j < nms; j++) {
        const char *v = labels_get(ls, nls, ms[j].name);
        if (!matcher_matches(&ms[j], v ? v : ""))
            return 0;
    }
    return 1;
}

int block_select(block *b, const matcher *ms, size_t nms, int64_t mint, int64_t maxt, int labels_only,
                 arena *mem, block_series_fn fn, void *ctx, kiln_err *err) {
    if (maxt < b->meta.mint || mint >= b->meta.maxt)
        return 0;
    refvec cand = {0};
    int rc = candidates(b, ms, nms, &cand);
    label *ls = NULL;
    size_t capls = 0;
    for (size_t i = 0; i < cand.n && rc == 0; i++) {
        rd s;
        size_t nls = 0;
        if ((rc = series_at(b, cand.v[i], &ls, &capls, &nls, &s)) != 0)
            break;
        if (!labels_match(ls, nls, ms, nms))
            continue;
        size_t ndel;
        const tstone *del = tombstones_of(&b->ts, cand.v[i], &ndel);
        /* a first pass sums the sample counts of the chunks in range (their
         * headers), so the samples go into one array of the caller's arena */
        rd s2 = s;
        uint64_t nchunks = rd_uvarint(&s);
        cmeta cm = {&s, nchunks, 0, 0, 0, 0};
        size_t capout = 0;
        int any = 0;
        while (rc == 0 && (rc = cmeta_next(&cm)) == 1) {
            rc = 0;
            if (cm.maxt < mint || cm.mint > maxt || (ndel && tombstones_cover(del, ndel, cm.mint, cm.maxt)))
                continue;
            any = 1;
            const uint8_t *data;
            size_t clen;
            if (!labels_only && (rc = chunk_at(b, cm.ref, &data, &clen)) == 0)
                capout += clen >= 2 ? (size_t)(data[0] << 8 | data[1]) : 0;
        }
        sample *out = NULL;
        size_t nout = 0;
        if (rc == 0 && !labels_only && capout && !(out = arena_alloc_nz(mem, capout * sizeof *out)))
            rc = KILN_ENOMEM;
        cm = (cmeta){&s2, rd_uvarint(&s2), 0, 0, 0, 0};
        while (rc == 0 && !labels_only && (rc = cmeta_next(&cm)) == 1) {
            rc = 0;
            if (cm.maxt < mint || cm.mint > maxt || (ndel && tombstones_cover(del, ndel, cm.mint, cm.maxt)))
                continue;
            const uint8_t *data;
            size_t clen;
            if ((rc = chunk_at(b, cm.ref, &data, &clen)) != 0)
                break;
            xoriter it;
            xoriter_init(&it, data, clen);
            int x = xoriter_seek(&it, mint);
            while (x == 1 && it.t <= maxt && nout < capout) {
                out[nout++] = (sample){it.t, it.v};
                x = xoriter_next(&it);
            }
            if (x < 0)
                rc = KILN_ECORRUPT;
        }
        nout = tombstones_filter(del, ndel, out, nout);
        if (rc == 0 && any && (labels_only || nout))
            rc = fn(ctx, ls, nls, out, nout);
    }
    if (rc == KILN_ECORRUPT)
        kiln_err_set(err, rc, "block %s: damaged index or chunk", b->path);
    else if (rc == KILN_ENOMEM)
        kiln_err_set(err, rc, "out of memory reading block %s", b->path);
    free(ls);
    free(cand.v);
    return rc;
}

int block_label_names(block *b, int (*fn)(const char *s, void *ctx), void *ctx) {
    for (size_t i = 0; i < b->npot; i++) {
        if (!b->pot[i].name[0] || (i && strcmp(b->pot[i].name, b->pot[i - 1].name) == 0))
            continue;
        int rc = fn(b->pot[i].name, ctx);
        if (rc)
            return rc;
    }
    return 0;
}

int block_label_values(block *b, const char *name, int (*fn)(const char *s, void *ctx), void *ctx) {
    size_t lo, hi;
    pot_range(b, name, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        int rc = fn(b->pot[i].value, ctx);
        if (rc)
            return rc;
    }
    return 0;
}

int block_list(const char *dir, int clean, char ***ulids, size_t *n, kiln_err *err) {
    *ulids = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : kiln_err_set(err, KILN_EIO, "open %s: %s", dir, strerror(errno));
    struct dirent *e;
    char **v = NULL;
    size_t k = 0, cap = 0;
    int rc = 0;
    while ((e = readdir(d))) {
        char p[4096];
        if (strstr(e->d_name, ".tmp-for-creation") || strstr(e->d_name, ".tmp-for-deletion")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (clean)
                rm_rf(p);
            continue;
        }
        if (!is_ulid(e->d_name))
            continue;
        snprintf(p, sizeof p, "%s/%s/meta.json", dir, e->d_name);
        if (access(p, F_OK) != 0)
            continue;
        if (array_grow((void **)&v, &cap, k + 1, sizeof *v) || !(v[k] = strdup(e->d_name))) {
            rc = kiln_err_set(err, KILN_ENOMEM, "out of memory");
            break;
        }
        k++;
    }
    closedir(d);
    if (k)
        qsort(v, k, sizeof *v, cmp_str);
    *ulids = v;
    *n = k;
    return rc;
}

int block_delete(const char *dir, const char *ulid, kiln_err *err) {
    char from[4096], to[4200];
    snprintf(from, sizeof from, "%s/%s", dir, ulid);
    snprintf(to, sizeof to, "%s/%s.tmp-for-deletion", dir, ulid);
    if (rename(from, to) != 0)
        return kiln_err_set(err, KILN_EIO, "rename %s: %s", from, strerror(errno));
    fsync_dir(dir);
    if (rm_rf(to) != 0)
        return kiln_err_set(err, KILN_EIO, "remove %s: %s", to, strerror(errno));
    return 0;
}

int block_is_parent_of(const block *b, const char *ulid) {
    for (size_t i = 0; i < b->nparents; i++)
        if (strcmp(b->parents[i], ulid) == 0)
            return 1;
    return 0;
}

int block_foreach_series(block *b, arena *mem, block_chunks_fn fn, void *ctx, kiln_err *err) {
    size_t lo, hi;
    pot_range(b, "", &lo, &hi);
    label *ls = NULL;
    size_t capls = 0;
    block_chunk *cs = NULL;
    size_t capcs = 0;
    int rc = 0;
    for (size_t p = lo; p < hi && rc == 0; p++) {
        uint32_t n;
        const uint8_t *ids = postings_at(b, b->pot[p].off, &n);
        if (!ids) {
            rc = KILN_ECORRUPT;
            break;
        }
        for (uint32_t i = 0; i < n && rc == 0; i++) {
            rd s;
            size_t nls = 0;
            uint32_t id = rd_be32(ids + 4 * i);
            if ((rc = series_at(b, id, &ls, &capls, &nls, &s)) != 0)
                break;
            cmeta cm = {&s, rd_uvarint(&s), 0, 0, 0, 0};
            size_t nc = 0;
            while ((rc = cmeta_next(&cm)) == 1) {
                if (array_grow((void **)&cs, &capcs, nc + 1, sizeof *cs)) {
                    rc = KILN_ENOMEM;
                    break;
                }
                block_chunk *c = &cs[nc];
                c->mint = cm.mint;
                c->maxt = cm.maxt;
                if ((rc = chunk_at(b, cm.ref, &c->data, &c->len)) != 0)
                    break;
                nc++;
            }
            size_t ndel;
            const tstone *del = tombstones_of(&b->ts, id, &ndel);
            const block_chunk *live = cs;
            if (rc == 0 && ndel)
                rc = tombstones_apply(cs, nc, del, ndel, mem, &live, &nc);
            if (rc == 0 && nc)
                rc = fn(ctx, ls, nls, live, nc);
        }
    }
    if (rc == KILN_ECORRUPT)
        kiln_err_set(err, rc, "block %s: damaged index or chunk", b->path);
    else if (rc == KILN_ENOMEM)
        kiln_err_set(err, rc, "out of memory reading block %s", b->path);
    free(ls);
    free(cs);
    return rc;
}

size_t block_tombstones(const block *b) {
    return b->ts.n;
}

int block_delete_series(block *b, const matcher *ms, size_t nms, int64_t mint, int64_t maxt, tombstones *next,
                        kiln_err *err) {
    memset(next, 0, sizeof *next);
    if (maxt < b->meta.mint || mint >= b->meta.maxt)
        return 0;
    refvec cand = {0};
    label *ls = NULL;
    size_t capls = 0, added = 0;
    int rc = candidates(b, ms, nms, &cand);
    if (rc == 0)
        rc = tombstones_copy(next, &b->ts);
    for (size_t i = 0; i < cand.n && rc == 0; i++) {
        rd s;
        size_t nls = 0;
        if ((rc = series_at(b, cand.v[i], &ls, &capls, &nls, &s)) != 0)
            break;
        if (!labels_match(ls, nls, ms, nms))
            continue;
        /* as Prometheus: a series with a chunk in range loses [mint, maxt]
         * clamped to its own first and last sample */
        cmeta cm = {&s, rd_uvarint(&s), 0, 0, 0, 0};
        int64_t first = 0, last = 0;
        int hit = 0;
        while ((rc = cmeta_next(&cm)) == 1) {
            if (cm.i == 1)
                first = cm.mint;
            last = cm.maxt;
            hit |= cm.maxt >= mint && cm.mint <= maxt;
        }
        if (rc == 0 && hit) {
            rc = tombstones_add(next, cand.v[i], mint > first ? mint : first, maxt < last ? maxt : last);
            added++;
        }
    }
    free(ls);
    free(cand.v);
    if (rc == 0 && added) {
        buf out = BUF_INIT;
        char p[2300], tmp[2400];
        snprintf(p, sizeof p, "%s/tombstones", b->path);
        snprintf(tmp, sizeof tmp, "%s.tmp", p);
        if (tombstones_encode(next, &out) != 0)
            rc = kiln_err_set(err, KILN_ENOMEM, "out of memory writing %s", p);
        else if ((rc = write_file(tmp, out.data, out.len, err)) == 0 && rename(tmp, p) != 0)
            rc = kiln_err_set(err, KILN_EIO, "rename %s: %s", tmp, strerror(errno));
        if (rc == 0)
            fsync_dir(b->path);
        else
            unlink(tmp);
        buf_free(&out);
    } else if (rc == KILN_ECORRUPT) {
        kiln_err_set(err, rc, "block %s: damaged index", b->path);
    } else if (rc == KILN_ENOMEM) {
        kiln_err_set(err, rc, "out of memory reading block %s", b->path);
    }
    if (rc || !added)
        tombstones_free(next);
    return rc;
}

void block_set_tombstones(block *b, tombstones *t) {
    tombstones old = b->ts;
    b->ts = *t;
    *t = old;
    tombstones_free(t);
}
