/*
 * block.c - reading persistent blocks in Prometheus' format (the layout is
 * in block.h; blockwriter.c writes them): opening a block directory
 * (meta.json, the index and chunk files mapped read-only, tombstones),
 * selecting series and samples, walking every series for compaction, label
 * names and values, deleting series (a new tombstones file), and listing and
 * removing block directories.
 *
 * Called by the storage: at start-up (block_list, block_open), by queriers
 * (block_select, block_label_*), by compaction and retention
 * (block_foreach_series, block_delete) and by the delete API
 * (block_delete_series).
 *
 * Index format 2: a series' ID is its offset / 16; symbols are referenced by
 * their position in the sorted table; big-endian fixed-width fields; a
 * CRC32-Castagnoli after every section, checked when the block is opened
 * (sections, series entries) or read (postings, chunks).
 *
 * Threading: an open block is immutable and may be read from any thread,
 * except its tombstones, replaced by block_set_tombstones where no select
 * runs (the storage's gc write lock).
 */
#include "storage/block.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/head.h"
#include "storage/histchunk.h"
#include "storage/tombstones.h"
#include "storage/xorchunk.h"
#include "util/endian.h"

/* ---- a bounded reader over mapped bytes ------------------------------------ */

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

KILN_MUST_CHECK static int corrupt(kiln_err *err, const block *b, const char *what) {
    return kiln_err_set(err, KILN_ECORRUPT, "block %s: %s", b->path, what);
}

/* Sets err for a failure rc met while reading b's index or chunks (a
 * damaged one, or out of memory; other codes carry their own message). */
static void read_error(const block *b, int rc, kiln_err *err) {
    if (rc == KILN_ECORRUPT)
        kiln_err_set(err, rc, "block %s: damaged index or chunk", b->path);
    else if (rc == KILN_ENOMEM)
        kiln_err_set(err, rc, "out of memory reading block %s", b->path);
}

/* Checks the CRC of a len<4b>-prefixed section at off; returns its body. */
static int section(const block *b, uint64_t off, rd *out) {
    if (off + 4 > b->idxlen)
        return -1;
    uint32_t len = be32_get(b->idx + off);
    if (off + 4 + (uint64_t)len + 4 > b->idxlen)
        return -1;
    const uint8_t *body = b->idx + off + 4;
    if (crc32c(0, body, len) != be32_get(body + len))
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

KILN_MUST_CHECK static int read_meta(block *b, const char *dir, const char *ulid, kiln_err *err) {
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
        m = fault_mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return NULL;
    *len = (size_t)st.st_size;
    return m;
}

KILN_MUST_CHECK static int open_chunks(block *b, kiln_err *err) {
    char p[2300];
    for (uint32_t i = 1;; i++) {
        snprintf(p, sizeof p, "%s/chunks/%06u", b->path, i);
        if (access(p, F_OK) != 0)
            break;
        size_t len = 0;
        const uint8_t *m = map_file(p, &len);
        if (!m || len < 8 || be32_get(m) != BLOCK_CHUNKS_MAGIC) {
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
KILN_MUST_CHECK static int read_tombstones(block *b, kiln_err *err) {
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
        if (r.bad || crc32c(0, body, len) != be32_get(crc))
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
    if (b->idxlen < 5 + BLOCK_TOC_LEN || be32_get(b->idx) != BLOCK_INDEX_MAGIC || b->idx[4] != 2) {
        rc = corrupt(err, b, "index: bad magic or version (format 2 expected)");
        goto fail;
    }
    const uint8_t *toc = b->idx + b->idxlen - BLOCK_TOC_LEN;
    if (crc32c(0, toc, 48) != be32_get(toc + 48)) {
        rc = corrupt(err, b, "index: table of contents checksum mismatch");
        goto fail;
    }
    uint64_t o_sym = be64_get(toc), o_series = be64_get(toc + 8), o_li = be64_get(toc + 16),
             o_lot = be64_get(toc + 24), o_post = be64_get(toc + 32), o_pot = be64_get(toc + 40);
    (void)o_li;
    rd r;
    if (section(b, o_sym, &r) != 0) {
        rc = corrupt(err, b, "index: symbol table damaged");
        goto fail;
    }
    const uint8_t *cnt = rd_bytes(&r, 4);
    b->nsyms = cnt ? be32_get(cnt) : 0;
    if (!(b->syms = arena_alloc(&b->mem, (b->nsyms + 1) * sizeof *b->syms)))
        goto nomem;
    for (size_t i = 0; i < b->nsyms && !r.bad; i++) {
        uint64_t l = rd_uvarint(&r);
        const uint8_t *s = rd_bytes(&r, l);
        if (s && !(b->syms[i] = arena_strndup_nul(&b->mem, (const char *)s, l))) /* NUL: C0 80 */
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
    b->npot = cnt ? be32_get(cnt) : 0;
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
        b->pot[i].value = arena_strndup_nul(&b->mem, (const char *)value, vl);
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
    *n = be32_get(c);
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

/* The sorted union of the postings of name's values that m accepts; a
 * matcher's error (see matcher_match) with err set. */
KILN_MUST_CHECK static int matcher_ids(const block *b, const matcher *m, match_guard *g, refvec *out,
                                       kiln_err *err) {
    size_t lo, hi;
    pot_range(b, m->name, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        int ok = matcher_match(m, b->pot[i].value, g, err);
        if (ok < 0)
            return ok;
        if (!ok)
            continue;
        uint32_t n;
        const uint8_t *p = postings_at(b, b->pot[i].off, &n);
        if (!p)
            return KILN_ECORRUPT;
        if (array_grow((void **)&out->v, &out->cap, out->n + n, sizeof *out->v))
            return KILN_ENOMEM;
        for (uint32_t j = 0; j < n; j++)
            out->v[out->n++] = be32_get(p + 4 * j);
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
KILN_MUST_CHECK static int series_at(const block *b, uint32_t id, label **ls, size_t *capls, size_t *nls,
                                     rd *s) {
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
/* The chunk metas of the series entry s is at (its chunk count next). */
static inline cmeta cmeta_start(rd *s) {
    uint64_t n = rd_uvarint(s);
    return (cmeta){s, n, 0, 0, 0, 0};
}

KILN_MUST_CHECK static int cmeta_next(cmeta *c) {
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

/* The bytes of the chunk at ref and its encoding (1 XOR, 2, 3 histograms),
 * its checksum checked. */
KILN_MUST_CHECK static int chunk_at(const block *b, uint64_t ref, const uint8_t **data, size_t *len,
                                    uint8_t *enc) {
    uint32_t sq = (uint32_t)(ref >> 32), co = (uint32_t)ref;
    if (sq >= b->nsegs || co >= b->segs[sq].len)
        return KILN_ECORRUPT;
    rd c = {b->segs[sq].p + co, b->segs[sq].p + b->segs[sq].len, 0};
    uint64_t clen = rd_uvarint(&c);
    const uint8_t *encp = rd_bytes(&c, 1);
    const uint8_t *d = rd_bytes(&c, clen);
    const uint8_t *crc = rd_bytes(&c, 4);
    if (c.bad || *encp < 1 || *encp > 3 || crc32c(0, encp, clen + 1) != be32_get(crc))
        return KILN_ECORRUPT;
    *enc = *encp;
    *data = d;
    *len = (size_t)clen;
    return 0;
}

/* The series IDs the postings of ms allow (all series when no matcher
 * needs a value), sorted; the labels still need checking. */
KILN_MUST_CHECK static int candidates(const block *b, const matcher *ms, size_t nms, match_guard *g,
                                      refvec *out, kiln_err *err) {
    refvec cand = {0}, tmp = {0};
    int have = 0, rc = 0;
    for (size_t i = 0; i < nms && rc == 0; i++) {
        if (matcher_matches_empty(&ms[i]))
            continue;
        tmp.n = 0;
        if ((rc = matcher_ids(b, &ms[i], g, &tmp, err)) != 0)
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
                cand.v[j] = be32_get(p + 4 * j);
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

/* 1 when the labels satisfy all of ms, 0, or a matcher's error. */
KILN_MUST_CHECK static int labels_match(const label *ls, size_t nls, const matcher *ms, size_t nms,
                                        match_guard *g, kiln_err *err) {
    for (size_t j = 0; j < nms; j++) {
        int ok = matcher_match(&ms[j], labels_get(ls, nls, ms[j].name), g, err);
        if (ok <= 0)
            return ok;
    }
    return 1;
}

/* A walk over the series of a block that match a selector. */
typedef struct matching {
    refvec cand; /* candidate IDs from the postings */
    size_t next; /* the next candidate */
    uint32_t id; /* the current series */
    label *ls;   /* its labels (pointers into the symbol table) */
    size_t nls, capls;
    rd s; /* its entry, at the chunk count */
} matching;

/* Starts the walk; 0, or KILN_ECORRUPT / KILN_ENOMEM, or a matcher's
 * error.  Free with matching_free either way. */
KILN_MUST_CHECK static int matching_init(matching *m, const block *b, const matcher *ms, size_t nms,
                                         match_guard *g, kiln_err *err) {
    memset(m, 0, sizeof *m);
    return candidates(b, ms, nms, g, &m->cand, err);
}

/* 1 with the next matching series in m, 0 at the end, or KILN_ECORRUPT /
 * KILN_ENOMEM, or a matcher's error. */
KILN_MUST_CHECK static int matching_next(matching *m, const block *b, const matcher *ms, size_t nms,
                                         match_guard *g, kiln_err *err) {
    while (m->next < m->cand.n) {
        m->id = m->cand.v[m->next++];
        int rc = series_at(b, m->id, &m->ls, &m->capls, &m->nls, &m->s);
        if (rc)
            return rc;
        if ((rc = labels_match(m->ls, m->nls, ms, nms, g, err)) != 0)
            return rc;
    }
    return 0;
}

static void matching_free(matching *m) {
    free(m->ls);
    free(m->cand.v);
}

/* Whether a chunk has samples in [mint, maxt] not all deleted by del. */
static inline int chunk_wanted(const cmeta *c, int64_t mint, int64_t maxt, const tstone *del, size_t ndel) {
    return c->maxt >= mint && c->mint <= maxt && !(ndel && tombstones_cover(del, ndel, c->mint, c->maxt));
}

int block_select(block *b, const matcher *ms, size_t nms, match_guard *g, int64_t mint, int64_t maxt,
                 int labels_only, arena *mem, block_series_fn fn, void *ctx, kiln_err *err) {
    if (maxt < b->meta.mint || mint >= b->meta.maxt)
        return 0;
    matching m;
    int rc = matching_init(&m, b, ms, nms, g, err);
    while (rc == 0 && (rc = matching_next(&m, b, ms, nms, g, err)) == 1) {
        size_t ndel;
        const tstone *del = tombstones_of(&b->ts, m.id, &ndel);
        /* a first pass sums the sample counts of the chunks in range (their
         * headers), so the samples go into one array of the caller's arena */
        rd s2 = m.s;
        cmeta cm = cmeta_start(&m.s);
        size_t capout = 0, caph = 0;
        int any = 0;
        rc = 0;
        while (rc == 0 && (rc = cmeta_next(&cm)) == 1) {
            rc = 0;
            if (!chunk_wanted(&cm, mint, maxt, del, ndel))
                continue;
            any = 1;
            const uint8_t *data;
            size_t clen;
            uint8_t enc;
            if (!labels_only && (rc = chunk_at(b, cm.ref, &data, &clen, &enc)) == 0)
                *(enc == 1 ? &capout : &caph) += clen >= 2 ? (size_t)(data[0] << 8 | data[1]) : 0;
        }
        sample *out = NULL;
        hsample *hout = NULL;
        size_t nout = 0, nh = 0;
        if (rc == 0 && !labels_only && capout && !(out = arena_alloc_nz(mem, capout * sizeof *out)))
            rc = KILN_ENOMEM;
        if (rc == 0 && !labels_only && caph && !(hout = arena_alloc_nz(mem, caph * sizeof *hout)))
            rc = KILN_ENOMEM;
        cm = cmeta_start(&s2);
        while (rc == 0 && !labels_only && (rc = cmeta_next(&cm)) == 1) {
            rc = 0;
            if (!chunk_wanted(&cm, mint, maxt, del, ndel))
                continue;
            const uint8_t *data;
            size_t clen;
            uint8_t enc;
            if ((rc = chunk_at(b, cm.ref, &data, &clen, &enc)) != 0)
                break;
            if (enc != 1) {
                rc = histchunk_fill(data, clen, enc == HISTCHUNK_ENC_FLOAT, mint, maxt, mem, hout, caph, &nh);
                continue;
            }
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
        nh = tombstones_filter_hist(del, ndel, hout, nh);
        if (rc == 0 && any && (labels_only || nout || nh))
            rc = fn(ctx, m.ls, m.nls, out, nout, hout, nh);
    }
    read_error(b, rc, err);
    matching_free(&m);
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

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
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
            kiln_err e2 = {0};
            if (clean && fileio_rm_rf(p, &e2))
                LOG_WARN("block: cannot remove a leftover directory", "err=%s", e2.msg);
            continue;
        }
        if (!ulid_valid(e->d_name))
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
    if (fault_rename(from, to) != 0)
        return kiln_err_set(err, KILN_EIO, "rename %s: %s", from, strerror(errno));
    /* renamed aside, the block is gone for the next start even if the
     * removal stops half-way; a failed fsync is still reported */
    int rc = fileio_fsync_dir(dir, err);
    int rc2 = fileio_rm_rf(to, rc ? NULL : err);
    return rc ? rc : rc2;
}

int block_is_parent_of(const block *b, const char *ulid) {
    for (size_t i = 0; i < b->nparents; i++)
        if (strcmp(b->parents[i], ulid) == 0)
            return 1;
    return 0;
}

int block_foreach_series(block *b, arena *mem, block_chunks_fn fn, void *ctx, kiln_err *err) {
    block_chunk *cs = NULL;
    size_t capcs = 0;
    matching m; /* no matcher: every series, in the order of the all-series postings */
    int rc = matching_init(&m, b, NULL, 0, NULL, err);
    while (rc == 0 && (rc = matching_next(&m, b, NULL, 0, NULL, err)) == 1) {
        cmeta cm = cmeta_start(&m.s);
        size_t nc = 0;
        while ((rc = cmeta_next(&cm)) == 1) {
            if (array_grow((void **)&cs, &capcs, nc + 1, sizeof *cs)) {
                rc = KILN_ENOMEM;
                break;
            }
            block_chunk *c = &cs[nc];
            c->mint = cm.mint;
            c->maxt = cm.maxt;
            if ((rc = chunk_at(b, cm.ref, &c->data, &c->len, &c->enc)) != 0)
                break;
            nc++;
        }
        size_t ndel;
        const tstone *del = tombstones_of(&b->ts, m.id, &ndel);
        const block_chunk *live = cs;
        if (rc == 0 && ndel)
            rc = tombstones_apply(cs, nc, del, ndel, mem, &live, &nc);
        if (rc == 0 && nc)
            rc = fn(ctx, m.ls, m.nls, live, nc);
    }
    read_error(b, rc, err);
    matching_free(&m);
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
    matching m;
    size_t added = 0;
    int rc = matching_init(&m, b, ms, nms, NULL, err);
    if (rc == 0)
        rc = tombstones_copy(next, &b->ts);
    while (rc == 0 && (rc = matching_next(&m, b, ms, nms, NULL, err)) == 1) {
        /* as Prometheus: a series with a chunk in range loses [mint, maxt]
         * clamped to its own first and last sample */
        cmeta cm = cmeta_start(&m.s);
        int64_t first = 0, last = 0;
        int hit = 0;
        while ((rc = cmeta_next(&cm)) == 1) {
            if (cm.i == 1)
                first = cm.mint;
            last = cm.maxt;
            hit |= cm.maxt >= mint && cm.mint <= maxt;
        }
        if (rc == 0 && hit) {
            rc = tombstones_add(next, m.id, mint > first ? mint : first, maxt < last ? maxt : last);
            added++;
        }
    }
    matching_free(&m);
    if (rc == 0 && added) {
        buf out = BUF_INIT;
        char p[2300], tmp[2400];
        snprintf(p, sizeof p, "%s/tombstones", b->path);
        snprintf(tmp, sizeof tmp, "%s.tmp", p);
        if (tombstones_encode(next, &out) != 0)
            rc = kiln_err_set(err, KILN_ENOMEM, "out of memory writing %s", p);
        else if ((rc = fileio_write_file(tmp, out.data, out.len, err)) == 0 && fault_rename(tmp, p) != 0)
            rc = kiln_err_set(err, KILN_EIO, "rename %s: %s", tmp, strerror(errno));
        if (rc == 0)
            rc = fileio_fsync_dir(b->path, err);
        else
            unlink(tmp);
        buf_free(&out);
    } else {
        read_error(b, rc, err);
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
