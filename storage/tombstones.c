/*
 * tombstones.c - deleted time ranges of series (see tombstones.h): the
 * sorted set (add, merge, look up, truncate), applying it to samples and to
 * chunks (re-encoded without the deleted samples), and the block file's
 * encoding.
 *
 * Called by the storage (the head's set: the delete API, WAL replay, head
 * truncation and compaction), by block.c (a block's `tombstones` file, its
 * selects and series walks) and by blockwriter.c (the empty file of a new
 * block).
 *
 * Threading: none; the owner of a set locks.
 */
#include "storage/tombstones.h"

#include <stdlib.h>
#include <string.h>

#include "storage/histchunk.h"
#include "storage/walrec.h"
#include "storage/xorchunk.h"
#include "util/endian.h"

#define TOMBSTONES_MAGIC 0x0130BA30u
#define CHUNK_SAMPLES 120

/* The first entry of ref (or where it would go). */
static size_t lower_bound(const tombstones *t, uint64_t ref) {
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->v[mid].ref < ref)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int tombstones_add(tombstones *t, uint64_t ref, int64_t mint, int64_t maxt) {
    if (mint > maxt)
        return 0;
    size_t lo = lower_bound(t, ref), hi = lo;
    while (hi < t->n && t->v[hi].ref == ref)
        hi++;
    /* [a, b): the entries of ref that overlap or touch the new interval */
    size_t a = lo;
    while (a < hi && t->v[a].maxt < mint && t->v[a].maxt + 1 < mint)
        a++;
    size_t b = a;
    while (b < hi && (t->v[b].mint <= maxt || t->v[b].mint - 1 <= maxt)) {
        if (t->v[b].mint < mint)
            mint = t->v[b].mint;
        if (t->v[b].maxt > maxt)
            maxt = t->v[b].maxt;
        b++;
    }
    if (a == b) {
        if (array_grow((void **)&t->v, &t->cap, t->n + 1, sizeof *t->v))
            return KILN_ENOMEM;
        memmove(t->v + a + 1, t->v + a, (t->n - a) * sizeof *t->v);
        t->n++;
    } else if (b - a > 1) {
        memmove(t->v + a + 1, t->v + b, (t->n - b) * sizeof *t->v);
        t->n -= b - a - 1;
    }
    t->v[a] = (tstone){ref, mint, maxt};
    return 0;
}

const tstone *tombstones_of(const tombstones *t, uint64_t ref, size_t *n) {
    *n = 0;
    if (!t || !t->n)
        return NULL;
    size_t lo = lower_bound(t, ref), hi = lo;
    while (hi < t->n && t->v[hi].ref == ref)
        hi++;
    *n = hi - lo;
    return hi > lo ? t->v + lo : NULL;
}

void tombstones_truncate(tombstones *t, int64_t mint) {
    size_t w = 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].maxt >= mint)
            t->v[w++] = t->v[i];
    t->n = w;
}

int tombstones_copy(tombstones *dst, const tombstones *src) {
    tombstones_free(dst);
    if (!src->n)
        return 0;
    if (!(dst->v = malloc(src->n * sizeof *dst->v)))
        return KILN_ENOMEM;
    memcpy(dst->v, src->v, src->n * sizeof *dst->v);
    dst->n = dst->cap = src->n;
    return 0;
}

void tombstones_free(tombstones *t) {
    free(t->v);
    memset(t, 0, sizeof *t);
}

int tombstones_hit(const tstone *iv, size_t n, int64_t t) {
    for (size_t i = 0; i < n && iv[i].mint <= t; i++)
        if (t <= iv[i].maxt)
            return 1;
    return 0;
}

int tombstones_cover(const tstone *iv, size_t n, int64_t mint, int64_t maxt) {
    for (size_t i = 0; i < n; i++)
        if (iv[i].mint <= mint && maxt <= iv[i].maxt)
            return 1;
    return 0;
}

size_t tombstones_filter(const tstone *iv, size_t n, sample *s, size_t ns) {
    if (!n)
        return ns;
    size_t w = 0, k = 0;
    for (size_t i = 0; i < ns; i++) {
        while (k < n && iv[k].maxt < s[i].t)
            k++;
        if (k < n && iv[k].mint <= s[i].t)
            continue;
        s[w++] = s[i];
    }
    return w;
}

/* ---- the file ---------------------------------------------------------------- */

static int put_be32(buf *b, uint32_t v) {
    uint8_t x[4];
    be32_put(x, v);
    return buf_append(b, x, 4);
}

int tombstones_encode(const tombstones *t, buf *out) {
    if (put_be32(out, TOMBSTONES_MAGIC) || buf_putc(out, 1))
        return KILN_ENOMEM;
    size_t from = out->len;
    for (size_t i = 0; i < t->n; i++) {
        uint8_t e[30];
        size_t n = walrec_put_uvarint(e, t->v[i].ref);
        n += walrec_put_varint(e + n, t->v[i].mint);
        n += walrec_put_varint(e + n, t->v[i].maxt);
        if (buf_append(out, e, n))
            return KILN_ENOMEM;
    }
    return put_be32(out, crc32c(0, out->data + from, out->len - from)) ? KILN_ENOMEM : 0;
}

int tombstones_decode(const uint8_t *p, size_t len, tombstones *t, kiln_err *err) {
    tombstones_free(t);
    if (len < 9)
        return kiln_err_set(err, KILN_ECORRUPT, "tombstones: %zu bytes, shorter than a header and checksum",
                            len);
    uint32_t magic = be32_get(p);
    if (magic != TOMBSTONES_MAGIC)
        return kiln_err_set(err, KILN_ECORRUPT, "tombstones: bad magic 0x%08x", magic);
    if (p[4] != 1)
        return kiln_err_set(err, KILN_ECORRUPT, "tombstones: unknown version %u", p[4]);
    const uint8_t *q = p + 5, *end = p + len - 4;
    uint32_t crc = be32_get(end);
    if (crc32c(0, q, (size_t)(end - q)) != crc)
        return kiln_err_set(err, KILN_ECORRUPT, "tombstones: checksum mismatch");
    while (q < end) {
        uint64_t ref;
        int64_t lo, hi;
        size_t at = (size_t)(q - p), k1, k2 = 0, k3 = 0;
        if ((k1 = walrec_get_uvarint(q, (size_t)(end - q), &ref)))
            k2 = walrec_get_varint(q + k1, (size_t)(end - q) - k1, &lo);
        if (k2)
            k3 = walrec_get_varint(q + k1 + k2, (size_t)(end - q) - k1 - k2, &hi);
        if (!k3) {
            tombstones_free(t);
            return kiln_err_set(err, KILN_ECORRUPT, "tombstones: truncated entry at byte %zu", at);
        }
        q += k1 + k2 + k3;
        if (tombstones_add(t, ref, lo, hi) != 0) {
            tombstones_free(t);
            return kiln_err_set(err, KILN_ENOMEM, "tombstones: out of memory");
        }
    }
    return 0;
}

/* ---- applying them to chunks --------------------------------------------------- */

static uint16_t chunk_count(const block_chunk *c) {
    return c->len >= 2 ? (uint16_t)(c->data[0] << 8 | c->data[1]) : 0;
}

int chunks_from_samples(const sample *s, size_t n, arena *mem, block_chunk **out, size_t *nout) {
    size_t nc = (n + CHUNK_SAMPLES - 1) / CHUNK_SAMPLES;
    block_chunk *bc = arena_alloc(mem, (nc + 1) * sizeof *bc);
    if (!bc)
        return KILN_ENOMEM;
    for (size_t j = 0; j < nc; j++) {
        size_t from = j * CHUNK_SAMPLES, to = from + CHUNK_SAMPLES < n ? from + CHUNK_SAMPLES : n;
        xorchunk xc;
        xorchunk_init(&xc);
        int rc = 0;
        for (size_t i = from; i < to && rc == 0; i++)
            rc = xorchunk_append(&xc, s[i].t, s[i].v);
        size_t len;
        const uint8_t *d = rc == 0 ? xorchunk_data(&xc, &len) : NULL;
        uint8_t *copy = d ? arena_alloc_nz(mem, len) : NULL;
        if (copy)
            memcpy(copy, d, len);
        xorchunk_free(&xc);
        if (!copy)
            return KILN_ENOMEM;
        bc[j] = (block_chunk){s[from].t, s[to - 1].t, copy, len, 1};
    }
    *out = bc;
    *nout = nc;
    return 0;
}

size_t tombstones_filter_hist(const tstone *iv, size_t n, hsample *s, size_t ns) {
    size_t w = 0;
    for (size_t i = 0; i < ns; i++)
        if (!n || !tombstones_hit(iv, n, s[i].t))
            s[w++] = s[i];
    return w;
}

/* Copies the open chunk's bytes into the next block chunk (of mem). */
KILN_MUST_CHECK static int hist_emit(const histchunk *c, int64_t mint, arena *mem, block_chunk *bc) {
    size_t len;
    const uint8_t *d = histchunk_data(c, &len);
    uint8_t *copy = arena_alloc_nz(mem, len ? len : 1);
    if (!copy)
        return KILN_ENOMEM;
    memcpy(copy, d, len);
    *bc = (block_chunk){mint, c->t, copy, len, c->is_float ? HISTCHUNK_ENC_FLOAT : HISTCHUNK_ENC_INT};
    return 0;
}

int chunks_from_hist_samples(const hsample *s, size_t n, arena *mem, block_chunk **out, size_t *nout) {
    /* a chunk a sample at worst (each a reset), usually CHUNK_SAMPLES */
    block_chunk *bc = arena_alloc(mem, (n + 1) * sizeof *bc);
    if (!bc)
        return KILN_ENOMEM;
    size_t nb = 0;
    int64_t mint = 0;
    histchunk c;
    histchunk_init(&c, 0);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const histogram *h = s[i].h;
        int v = c.count && c.is_float == !h->is_int ? histchunk_appendable(&c, h) : HISTCHUNK_CUT;
        int had = c.count && c.is_float == !h->is_int;
        if (c.count && (v >= HISTCHUNK_CUT || c.count >= CHUNK_SAMPLES)) {
            if ((rc = hist_emit(&c, mint, mem, &bc[nb])) != 0)
                break;
            nb++;
            histchunk_free(&c);
        }
        if (!c.count) {
            histchunk_init(&c, !h->is_int);
            mint = s[i].t;
        } else if (v == HISTCHUNK_RECODE && (rc = histchunk_recode(&c, h)) != 0) {
            break;
        }
        int first = c.count == 0;
        if ((rc = histchunk_append(&c, s[i].t, h)) != 0)
            break;
        if (first)
            histchunk_set_header(&c, h->hint == HIST_HINT_GAUGE       ? HISTCHUNK_GAUGE
                                     : v == HISTCHUNK_CUT_RESET       ? HISTCHUNK_RESET
                                     : had && v <= HISTCHUNK_RECODE   ? HISTCHUNK_NOT_RESET
                                     : h->hint == HIST_HINT_RESET     ? HISTCHUNK_RESET
                                     : h->hint == HIST_HINT_NOT_RESET ? HISTCHUNK_NOT_RESET
                                                                      : HISTCHUNK_UNKNOWN);
    }
    if (rc == 0 && c.count && (rc = hist_emit(&c, mint, mem, &bc[nb])) == 0)
        nb++;
    histchunk_free(&c);
    if (rc)
        return rc == KILN_EINVAL ? KILN_ECORRUPT : rc;
    *out = bc;
    *nout = nb;
    return 0;
}

static int cmp_chunk_mint(const void *a, const void *b) {
    const block_chunk *x = a, *y = b;
    return x->mint < y->mint ? -1 : x->mint > y->mint;
}

/* Moves the block chunks bc[0..nb) to res[*nres..]. */
static void take_chunks(block_chunk *res, size_t *nres, const block_chunk *bc, size_t nb) {
    memcpy(res + *nres, bc, nb * sizeof *bc);
    *nres += nb;
}

int tombstones_apply(const block_chunk *c, size_t nc, const tstone *iv, size_t niv, arena *mem,
                     const block_chunk **out, size_t *nout) {
    *out = c;
    *nout = nc;
    int touched = 0;
    for (size_t i = 0; i < nc && !touched; i++)
        for (size_t k = 0; k < niv && !touched; k++)
            touched = iv[k].mint <= c[i].maxt && c[i].mint <= iv[k].maxt;
    if (!touched)
        return 0;
    size_t total = 0;
    for (size_t i = 0; i < nc; i++)
        total += chunk_count(&c[i]);
    block_chunk *res = arena_alloc(mem, (2 * nc + 2 * total + 2) * sizeof *res);
    sample *v = malloc((total + 1) * sizeof *v);
    hsample *hv = malloc((total + 1) * sizeof *hv);
    if (!res || !v || !hv) {
        free(v);
        free(hv);
        return KILN_ENOMEM;
    }
    size_t nres = 0, nv = 0, nhv = 0;
    int rc = 0;
    /* samples of touched chunks gather in v until an untouched chunk comes */
    for (size_t i = 0; i <= nc && rc == 0; i++) {
        int keep_whole = 0, pending_flush = i == nc;
        if (i < nc) {
            int hit = 0;
            for (size_t k = 0; k < niv && !hit; k++)
                hit = iv[k].mint <= c[i].maxt && c[i].mint <= iv[k].maxt;
            if (!hit)
                keep_whole = pending_flush = 1;
            else if (!tombstones_cover(iv, niv, c[i].mint, c[i].maxt) && c[i].enc > 1) {
                size_t from = nhv;
                rc = histchunk_fill(c[i].data, c[i].len, c[i].enc == HISTCHUNK_ENC_FLOAT, INT64_MIN,
                                    INT64_MAX, mem, hv, total, &nhv);
                nhv = from + tombstones_filter_hist(iv, niv, hv + from, nhv - from);
            } else if (!tombstones_cover(iv, niv, c[i].mint, c[i].maxt)) {
                xoriter it;
                xoriter_init(&it, c[i].data, c[i].len);
                int x;
                while ((x = xoriter_next(&it)) == 1 && nv < total)
                    if (!tombstones_hit(iv, niv, it.t))
                        v[nv++] = (sample){it.t, it.v};
                if (x < 0)
                    rc = KILN_ECORRUPT;
            }
        }
        block_chunk *bc;
        size_t nb;
        if (rc == 0 && pending_flush && nv) {
            if ((rc = chunks_from_samples(v, nv, mem, &bc, &nb)) == 0)
                take_chunks(res, &nres, bc, nb);
            nv = 0;
        }
        if (rc == 0 && pending_flush && nhv) {
            if ((rc = chunks_from_hist_samples(hv, nhv, mem, &bc, &nb)) == 0)
                take_chunks(res, &nres, bc, nb);
            nhv = 0;
        }
        if (rc == 0 && keep_whole)
            res[nres++] = c[i];
    }
    free(v);
    free(hv);
    if (rc)
        return rc;
    qsort(res, nres, sizeof *res, cmp_chunk_mint); /* float and histogram chunks in time order again */
    *out = res;
    *nout = nres;
    return 0;
}
