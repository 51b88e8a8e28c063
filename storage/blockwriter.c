/*
 * blockwriter.c - writing a persistent block in Prometheus' format
 * (block_writer_*; the directory layout is in block.h): chunk segment files
 * streamed as series are added, then the index (format 2), an empty
 * tombstones file and meta.json at commit.
 *
 * Called by the storage's compaction (the head's oldest range written as a
 * block), by block merging and rewriting (leveled compaction, deletions
 * applied) and by snapshots.  Everything is written under
 * `<ULID>.tmp-for-creation`, fsynced, then renamed into place and the parent
 * fsynced: a failed commit leaves no block behind.
 *
 * Index layout (the TSDB format documents): series entries 16-byte aligned,
 * a series' ID is its offset / 16; symbols referenced by their position in
 * the sorted table; big-endian fixed-width fields; CRC32-Castagnoli after
 * every section.
 *
 * Threading: a block_writer belongs to the one thread that made it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/block.h"
#include "storage/tombstones.h"
#include "storage/walrec.h"
#include "util/endian.h"

/* ---- appending to a buf ----------------------------------------------------
 * Appends are not checked one by one: a buf that failed one stays failed
 * (buf_error), and is checked before it is written. */

static void put_be32(buf *b, uint32_t v) {
    uint8_t x[4];
    be32_put(x, v);
    buf_append(b, x, 4);
}

static void put_be64(buf *b, uint64_t v) {
    uint8_t x[8];
    be64_put(x, v);
    buf_append(b, x, 8);
}

static void put_uvarint(buf *b, uint64_t v) {
    uint8_t x[10];
    buf_append(b, x, walrec_put_uvarint(x, v));
}

static void put_varint(buf *b, int64_t v) {
    uint8_t x[10];
    buf_append(b, x, walrec_put_varint(x, v));
}

/* Overwrites the 4 bytes at off (a length or count written as 0 first). */
static void patch_be32(buf *b, size_t off, uint32_t v) {
    if (!buf_error(b))
        be32_put((uint8_t *)b->data + off, v);
}

static void pad_to(buf *b, size_t align) {
    while (b->len % align)
        buf_putc(b, 0);
}

/* Appends the CRC32C of b[from..len) (big-endian). */
static void put_crc(buf *b, size_t from) {
    put_be32(b, crc32c(0, b->data + from, b->len - from));
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

/* Writes the buffered chunk bytes to the current segment file. */
KILN_MUST_CHECK static int seg_flush(block_writer *w, kiln_err *err) {
    if (buf_error(&w->cbuf))
        return kiln_err_set(err, KILN_ENOMEM, "block %s: out of memory", w->ulid);
    if (w->cbuf.len && fileio_write_all(w->fd, w->cbuf.data, w->cbuf.len) != 0)
        return kiln_err_set(err, KILN_EIO, "block %s: writing chunks: %s", w->ulid, strerror(errno));
    buf_reset(&w->cbuf);
    return 0;
}

/* Flushes, fsyncs and closes the current segment file. */
KILN_MUST_CHECK static int seg_close(block_writer *w, kiln_err *err) {
    if (w->fd < 0)
        return 0;
    int rc = seg_flush(w, err);
    if (rc == 0 && fault_fsync(w->fd) != 0)
        rc = kiln_err_set(err, KILN_EIO, "block %s: fsync chunks: %s", w->ulid, strerror(errno));
    close(w->fd);
    w->fd = -1;
    return rc;
}

/* Closes the current segment file (if any) and starts the next, with its
 * header (magic, format 1, padding) buffered. */
KILN_MUST_CHECK static int seg_open(block_writer *w, kiln_err *err) {
    char p[2200];
    if (w->fd >= 0) {
        int rc = seg_close(w, err);
        if (rc)
            return rc;
        w->seq++;
    }
    snprintf(p, sizeof p, "%s/chunks/%06u", w->tmp, w->seq + 1);
    w->fd = fault_open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0)
        return kiln_err_set(err, KILN_EIO, "create %s: %s", p, strerror(errno));
    put_be32(&w->cbuf, BLOCK_CHUNKS_MAGIC);
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
    ulid_new(w->ulid);
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
        if (w->off + need > BLOCK_SEGMENT_MAX && w->off > 8) {
            int rc = seg_open(w, err);
            if (rc)
                return rc;
        }
        uint64_t ref = (uint64_t)w->seq << 32 | w->off;
        size_t start = w->cbuf.len;
        put_uvarint(&w->cbuf, c[i].len);
        size_t enc = w->cbuf.len;
        buf_putc(&w->cbuf, c[i].enc ? c[i].enc : 1); /* 1: XOR */
        buf_append(&w->cbuf, c[i].data, c[i].len);
        put_be32(&w->cbuf, crc32c(0, w->cbuf.data + enc, w->cbuf.len - enc));
        if (buf_error(&w->cbuf))
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
    kiln_err e = {0};
    if (w->tmp[0] && fileio_rm_rf(w->tmp, &e))
        LOG_WARN("block: cannot remove an unfinished block", "err=%s", e.msg);
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

/* Symbols and values sort as Prometheus sorts them once written, with
 * kiln's C0 80 as a NUL byte (util/strnul.c): first. */
static int cmp_str(const void *a, const void *b) {
    return str_nulcmp(*(const char *const *)a, *(const char *const *)b);
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
    if ((c = str_nulcmp(x->value, y->value)))
        return c;
    return x->id < y->id ? -1 : x->id > y->id;
}

static uint32_t sym_ref(const char **syms, size_t n, const char *s) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = str_nulcmp(syms[mid], s);
        if (c == 0)
            return (uint32_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* The end of the run of pairs from i with pairs[i]'s name (and its value
 * too, with by_value). */
static size_t run_end(const pair *p, size_t np, size_t i, int by_value) {
    size_t j = i + 1;
    while (j < np && strcmp(p[j].name, p[i].name) == 0 && (!by_value || strcmp(p[j].value, p[i].value) == 0))
        j++;
    return j;
}

/* The number of runs in pairs (see run_end). */
static size_t count_runs(const pair *p, size_t np, int by_value) {
    size_t n = 0;
    for (size_t i = 0; i < np; i = run_end(p, np, i, by_value))
        n++;
    return n;
}

/* A string as the index writes it: uvarint length, bytes. */
static void put_str(buf *b, const char *s) {
    size_t l = strlen(s);
    put_uvarint(b, nul_out_len(s, l)); /* kiln's C0 80 as a NUL byte (util/strnul.c) */
    buf_append_nul_out(b, s, l);
}

/* Starts a section of the index: its length, patched by section_end. */
static size_t section_begin(buf *b) {
    size_t at = b->len;
    put_be32(b, 0);
    return at;
}

/* Ends the section begun at `at`: its length, then the CRC of its body. */
static void section_end(buf *b, size_t at) {
    patch_be32(b, at, (uint32_t)(b->len - at - 4));
    put_crc(b, at + 4);
}

/* A series entry: labels as symbol references, chunk metas as deltas. */
static void put_series(buf *e, const block_writer *w, const wseries *s, const char **syms, size_t ns) {
    put_uvarint(e, s->nls);
    for (size_t j = 0; j < s->nls; j++) {
        put_uvarint(e, sym_ref(syms, ns, s->ls[j].name));
        put_uvarint(e, sym_ref(syms, ns, s->ls[j].value));
    }
    put_uvarint(e, s->nchunks);
    const wmeta *m = &w->metas[s->first_chunk];
    for (size_t j = 0; j < s->nchunks; j++) {
        if (j == 0) {
            put_varint(e, m[0].mint);
            put_uvarint(e, (uint64_t)(m[0].maxt - m[0].mint));
            put_uvarint(e, m[0].ref);
        } else {
            put_uvarint(e, (uint64_t)(m[j].mint - m[j - 1].maxt));
            put_uvarint(e, (uint64_t)(m[j].maxt - m[j].mint));
            put_varint(e, (int64_t)(m[j].ref - m[j - 1].ref));
        }
    }
}

/* The index file of the written series into b. */
KILN_MUST_CHECK static int build_index(block_writer *w, buf *b) {
    int rc = KILN_ENOMEM;
    size_t nstr = 0;
    for (size_t i = 0; i < w->nseries; i++)
        nstr += 2 * w->series[i].nls;
    const char **syms = malloc((nstr + 1) * sizeof *syms);
    pair *pairs = malloc((nstr / 2 + w->nseries + 1) * sizeof *pairs);
    uint32_t *ids = malloc((w->nseries + 1) * sizeof *ids);
    uint64_t *poff = NULL, *loff = NULL;
    buf e = BUF_INIT;
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

    put_be32(b, BLOCK_INDEX_MAGIC);
    buf_putc(b, 2);
    /* symbols */
    size_t toc_sym = section_begin(b);
    put_be32(b, (uint32_t)ns);
    for (size_t i = 0; i < ns; i++)
        put_str(b, syms[i]);
    section_end(b, toc_sym);
    /* series: each 16-byte aligned, its ID its offset / 16 */
    pad_to(b, 16);
    size_t toc_series = w->nseries ? b->len : 0;
    size_t np = 0;
    for (size_t i = 0; i < w->nseries; i++) {
        pad_to(b, 16);
        const wseries *s = &w->series[i];
        ids[i] = (uint32_t)(b->len / 16);
        for (size_t j = 0; j < s->nls; j++)
            pairs[np++] = (pair){s->ls[j].name, s->ls[j].value, ids[i]};
        buf_reset(&e);
        put_series(&e, w, s, syms, ns);
        if (buf_error(&e))
            goto out;
        put_uvarint(b, e.len);
        size_t from = b->len;
        buf_append(b, e.data, e.len);
        put_crc(b, from);
    }
    qsort(pairs, np, sizeof *pairs, cmp_pair);
    /* label indices: one per name, its sorted values */
    size_t nnames = count_runs(pairs, np, 0);
    loff = malloc((nnames + 1) * sizeof *loff);
    if (!loff)
        goto out;
    pad_to(b, 4);
    size_t toc_li = nnames ? b->len : 0;
    for (size_t i = 0, j, n = 0; i < np; i = j, n++) {
        j = run_end(pairs, np, i, 0);
        pad_to(b, 4);
        loff[n] = b->len;
        size_t at = section_begin(b);
        put_be32(b, 1);
        size_t cnt_at = b->len;
        put_be32(b, 0);
        uint32_t cnt = 0;
        for (size_t x = i; x < j; x = run_end(pairs, j, x, 1), cnt++)
            put_be32(b, sym_ref(syms, ns, pairs[x].value));
        patch_be32(b, cnt_at, cnt);
        section_end(b, at);
    }
    /* label offset table */
    size_t toc_lot = section_begin(b);
    put_be32(b, (uint32_t)nnames);
    for (size_t i = 0, n = 0; i < np; i = run_end(pairs, np, i, 0), n++) {
        buf_putc(b, 1);
        put_str(b, pairs[i].name);
        put_uvarint(b, loff[n]);
    }
    section_end(b, toc_lot);
    /* postings: all series first (name and value empty), then each pair */
    size_t npairs = count_runs(pairs, np, 1);
    poff = malloc((npairs + 2) * sizeof *poff);
    if (!poff)
        goto out;
    pad_to(b, 4);
    size_t toc_post = b->len;
    poff[0] = section_begin(b);
    put_be32(b, (uint32_t)w->nseries);
    for (size_t i = 0; i < w->nseries; i++)
        put_be32(b, ids[i]);
    section_end(b, poff[0]);
    for (size_t i = 0, j, n = 1; i < np; i = j, n++) {
        j = run_end(pairs, np, i, 1);
        pad_to(b, 4);
        poff[n] = section_begin(b);
        put_be32(b, (uint32_t)(j - i));
        for (size_t x = i; x < j; x++)
            put_be32(b, pairs[x].id);
        section_end(b, poff[n]);
    }
    /* postings offset table */
    size_t toc_pot = section_begin(b);
    put_be32(b, (uint32_t)(npairs + 1));
    buf_putc(b, 2);
    put_str(b, "");
    put_str(b, "");
    put_uvarint(b, poff[0]);
    for (size_t i = 0, n = 1; i < np; i = run_end(pairs, np, i, 1), n++) {
        buf_putc(b, 2);
        put_str(b, pairs[i].name);
        put_str(b, pairs[i].value);
        put_uvarint(b, poff[n]);
    }
    section_end(b, toc_pot);
    /* TOC */
    size_t toc = b->len;
    put_be64(b, toc_sym);
    put_be64(b, toc_series);
    put_be64(b, toc_li);
    put_be64(b, toc_lot);
    put_be64(b, toc_post);
    put_be64(b, toc_pot);
    put_crc(b, toc);
    rc = buf_error(b);
out:
    buf_free(&e);
    free(syms);
    free(pairs);
    free(ids);
    free(poff);
    free(loff);
    return rc;
}

/* meta.json: the block's range, counts, compaction level, sources and
 * parents, laid out as Prometheus writes it. */
static void build_meta(const block_writer *w, buf *b) {
    buf_printf(b,
               "{\n\t\"ulid\": \"%s\",\n\t\"minTime\": %lld,\n\t\"maxTime\": %lld,\n\t\"stats\": {\n"
               "\t\t\"numSamples\": %llu,\n\t\t\"numSeries\": %zu,\n\t\t\"numChunks\": %zu\n\t},\n"
               "\t\"compaction\": {\n\t\t\"level\": %d,\n\t\t\"sources\": [\n",
               w->ulid, (long long)w->mint, (long long)w->maxt, (unsigned long long)w->samples, w->nseries,
               w->nmetas, w->level);
    if (!w->nparents)
        buf_printf(b, "\t\t\t\"%s\"\n", w->ulid);
    for (size_t i = 0; i < w->nparents; i++)
        buf_printf(b, "\t\t\t\"%s\"%s\n", w->parents[i].ulid, i + 1 < w->nparents ? "," : "");
    buf_puts(b, "\t\t]");
    if (w->nparents) {
        buf_puts(b, ",\n\t\t\"parents\": [\n");
        for (size_t i = 0; i < w->nparents; i++)
            buf_printf(b,
                       "\t\t\t{\n\t\t\t\t\"ulid\": \"%s\",\n\t\t\t\t\"minTime\": %lld,\n"
                       "\t\t\t\t\"maxTime\": %lld\n\t\t\t}%s\n",
                       w->parents[i].ulid, (long long)w->parents[i].mint, (long long)w->parents[i].maxt,
                       i + 1 < w->nparents ? "," : "");
        buf_puts(b, "\t\t]");
    }
    buf_puts(b, "\n\t},\n\t\"version\": 1\n}\n");
}

/* Writes b as <tmp>/<name>, fsynced, and empties b; a buf that lost an
 * append is not written. */
KILN_MUST_CHECK static int write_part(block_writer *w, const char *name, buf *b, kiln_err *err) {
    char p[2200];
    int rc = buf_error(b);
    snprintf(p, sizeof p, "%s/%s", w->tmp, name);
    if (rc)
        kiln_err_set(err, rc, "block %s: out of memory writing %s", w->ulid, name);
    else
        rc = fileio_write_file(p, b->data, b->len, err);
    buf_reset(b);
    return rc;
}

int block_writer_commit(block_writer *w, char ulid[BLOCK_ULID_LEN + 1], kiln_err *err) {
    buf b = BUF_INIT;
    char p[2200], fin[2200];
    tombstones none = {0};
    int rc = seg_close(w, err);
    if (rc)
        goto out;
    if ((rc = build_index(w, &b)) != 0) {
        kiln_err_set(err, rc, "block %s: out of memory building the index", w->ulid);
        goto out;
    }
    if ((rc = write_part(w, "index", &b, err)) != 0)
        goto out;
    if ((rc = tombstones_encode(&none, &b)) != 0) {
        kiln_err_set(err, rc, "block %s: out of memory", w->ulid);
        goto out;
    }
    if ((rc = write_part(w, "tombstones", &b, err)) != 0)
        goto out;
    build_meta(w, &b);
    if ((rc = write_part(w, "meta.json", &b, err)) != 0)
        goto out;
    snprintf(p, sizeof p, "%s/chunks", w->tmp);
    if ((rc = fileio_fsync_dir(p, err)) != 0 || (rc = fileio_fsync_dir(w->tmp, err)) != 0)
        goto out;
    snprintf(fin, sizeof fin, "%s/%s", w->dir, w->ulid);
    if (fault_rename(w->tmp, fin) != 0) {
        rc = kiln_err_set(err, KILN_EIO, "rename %s: %s", w->tmp, strerror(errno));
        goto out;
    }
    w->tmp[0] = 0; /* renamed: nothing is left to remove under that name */
    if ((rc = fileio_fsync_dir(w->dir, err)) != 0) {
        /* the rename may not survive a crash: take the block out again, so
         * that a failed commit leaves no block (compaction tries again) */
        kiln_err e2 = {0};
        if (fileio_rm_rf(fin, &e2))
            LOG_WARN("block: cannot remove a block whose commit failed", "err=%s", e2.msg);
        goto out;
    }
    memcpy(ulid, w->ulid, sizeof w->ulid);
out:
    buf_free(&b);
    block_writer_abort(w);
    return rc;
}
