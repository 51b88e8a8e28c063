/*
 * headhist.c - the head's native histogram chunks (rules in headhist.h).
 *
 * Entries live in a page table by series reference (4096 a page, pages
 * allocated when a series of theirs first gets a histogram), so the float
 * series' struct carries nothing for them.
 *
 * Called by head.c under the series' stripe lock (appends, reads,
 * truncation) and at start-up by the replay.
 */
#include "storage/headhist.h"

#include <stdlib.h>
#include <string.h>

#include "storage/head.h"
#include "storage/histchunk.h"

#define SAMPLES_PER_CHUNK 120

/* A full chunk in chunks_head. */
typedef struct hhchunk {
    int64_t mint, maxt;
    uint64_t cref;
    uint8_t enc;
} hhchunk;

struct hhist {
    histchunk open;
    int64_t open_mint, next_at;
    hhchunk *closed;
    uint32_t nclosed, capclosed;
    size_t mem; /* what `open` holds, as last counted in headhist.bytes */
};

void headhist_init(headhist *hh, headchunks *hc, int64_t chunk_range, uint64_t *nchunks,
                   uint64_t *chunks_created) {
    hh->hc = hc;
    hh->chunk_range = chunk_range;
    hh->nchunks = nchunks;
    hh->chunks_created = chunks_created;
    hh->bytes = 0;
}

static void entry_free(hhist *e) {
    histchunk_free(&e->open);
    free(e->closed);
    free(e);
}

void headhist_free(headhist *hh) {
    for (size_t i = 0; i < HEADHIST_PAGES; i++) {
        hhist **pg = hh->pages[i];
        if (!pg)
            continue;
        for (size_t j = 0; j < (1u << HEADHIST_PAGE_BITS); j++)
            if (pg[j])
                entry_free(pg[j]);
        free(pg);
        hh->pages[i] = NULL;
    }
}

static hhist **slot_of(headhist *hh, uint32_t ref, int create) {
    hhist ***pp = &hh->pages[ref >> HEADHIST_PAGE_BITS];
    hhist **pg = __atomic_load_n(pp, __ATOMIC_ACQUIRE);
    if (!pg && create) {
        hhist **np = calloc(1u << HEADHIST_PAGE_BITS, sizeof *np);
        if (!np)
            return NULL;
        /* series of one page append under different stripe locks */
        if (__atomic_compare_exchange_n(pp, &pg, np, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            pg = np;
        else
            free(np);
    }
    return pg ? &pg[ref & ((1u << HEADHIST_PAGE_BITS) - 1)] : NULL;
}

static hhist *entry_of(headhist *hh, uint32_t ref) {
    hhist **sl = slot_of(hh, ref, 0);
    return sl ? *sl : NULL;
}

static hhist *entry_make(headhist *hh, uint32_t ref, int is_float) {
    hhist **sl = slot_of(hh, ref, 1);
    if (!sl)
        return NULL;
    if (!*sl) {
        hhist *e = calloc(1, sizeof *e);
        if (!e)
            return NULL;
        histchunk_init(&e->open, is_float);
        *sl = e;
    }
    return *sl;
}

/* Keeps headhist.bytes in step with the open chunk's memory. */
static void account(headhist *hh, hhist *e) {
    size_t m = histchunk_mem(&e->open);
    if (m >= e->mem)
        __atomic_add_fetch(&hh->bytes, m - e->mem, __ATOMIC_RELAXED);
    else
        __atomic_sub_fetch(&hh->bytes, e->mem - m, __ATOMIC_RELAXED);
    e->mem = m;
}

int headhist_same(headhist *hh, uint32_t ref, const histogram *h) {
    hhist *e = entry_of(hh, ref);
    return e && histchunk_last_equal(&e->open, h) ? HEAD_APPEND_SAME : KILN_EEXIST;
}

int headhist_open(headhist *hh, uint32_t ref, int *is_float) {
    hhist *e = entry_of(hh, ref);
    if (!e || !e->open.count)
        return 0;
    *is_float = e->open.is_float;
    return 1;
}

KILN_MUST_CHECK static int push_closed(hhist *e, hhchunk c) {
    if (e->nclosed == e->capclosed) {
        uint32_t nc = e->capclosed ? e->capclosed * 2 : 2;
        hhchunk *nv = realloc(e->closed, nc * sizeof *nv);
        if (!nv)
            return KILN_ENOMEM;
        e->closed = nv;
        e->capclosed = nc;
    }
    e->closed[e->nclosed++] = c;
    return 0;
}

/* Moves the open chunk to chunks_head; it is kept open when that fails. */
KILN_MUST_CHECK static int cut(headhist *hh, hhist *e, uint32_t ref) {
    size_t len;
    const uint8_t *d = histchunk_data(&e->open, &len);
    uint8_t enc = e->open.is_float ? HISTCHUNK_ENC_FLOAT : HISTCHUNK_ENC_INT;
    uint64_t cref;
    kiln_err err;
    int rc = headchunks_write_enc(hh->hc, ref, e->open_mint, e->open.t, enc, d, len, &cref, &err);
    if (rc == 0)
        rc = push_closed(e, (hhchunk){e->open_mint, e->open.t, cref, enc});
    if (rc) {
        LOG_ERROR("cannot move a full histogram chunk to chunks_head; keeping it in memory", "err=%s",
                  rc == KILN_ENOMEM ? "out of memory" : err.msg);
        return rc;
    }
    int is_float = e->open.is_float;
    histchunk_free(&e->open);
    histchunk_init(&e->open, is_float);
    return 0;
}

void headhist_close(headhist *hh, uint32_t ref) {
    hhist *e = entry_of(hh, ref);
    if (e && e->open.count && cut(hh, e, ref) == 0)
        account(hh, e);
}

int headhist_append(headhist *hh, uint32_t ref, int64_t t, const histogram *h) {
    int is_float = !h->is_int;
    hhist *e = entry_make(hh, ref, is_float);
    if (!e)
        return KILN_ENOMEM;
    uint16_t n = e->open.count;
    int verdict = HISTCHUNK_CUT, had = n > 0 && e->open.is_float == is_float;
    if (had)
        verdict = histchunk_appendable(&e->open, h);
    if (n > 0) {
        if (n == SAMPLES_PER_CHUNK / 4)
            e->next_at = head_chunk_end_time(e->open_mint, e->open.t, e->next_at);
        int full = t >= e->next_at || n >= SAMPLES_PER_CHUNK * 2;
        if ((full || verdict >= HISTCHUNK_CUT) && cut(hh, e, ref) == 0)
            n = 0;
        else if (verdict >= HISTCHUNK_CUT)
            return KILN_ENOMEM; /* could not cut: the sample cannot go in */
    }
    int created = n == 0;
    if (created) {
        e->open.is_float = (uint8_t)is_float;
        e->open_mint = t;
        e->next_at = head_range_end(t, hh->chunk_range);
    } else if (verdict == HISTCHUNK_RECODE && histchunk_recode(&e->open, h) != 0) {
        return KILN_ENOMEM;
    }
    if (histchunk_append(&e->open, t, h) != 0) {
        account(hh, e);
        return KILN_ENOMEM;
    }
    if (created) {
        histchunk_set_header(&e->open, histchunk_new_header(h, verdict, had));
        __atomic_add_fetch(hh->chunks_created, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(hh->nchunks, 1, __ATOMIC_RELAXED);
    }
    account(hh, e);
    return 0;
}

int headhist_read(headhist *hh, uint32_t ref, int64_t mint, int64_t maxt, arena *a, hsample **out,
                  size_t *n) {
    hhist *e = entry_of(hh, ref);
    *out = NULL;
    *n = 0;
    if (!e)
        return 0;
    size_t bound = 0, len;
    const uint8_t *d;
    int rc = 0;
    for (uint32_t i = 0; i < e->nclosed && rc == 0; i++) {
        const hhchunk *c = &e->closed[i];
        if (c->maxt < mint || c->mint > maxt)
            continue;
        if ((rc = headchunks_read(hh->hc, c->cref, &d, &len)) == 0 && len >= 2)
            bound += (size_t)(d[0] << 8 | d[1]);
    }
    int open = e->open.count && e->open.t >= mint && e->open_mint <= maxt;
    if (open)
        bound += e->open.count;
    if (rc || !bound)
        return rc;
    hsample *dst = arena_alloc_nz(a, bound * sizeof *dst);
    if (!dst)
        return KILN_ENOMEM;
    for (uint32_t i = 0; i < e->nclosed && rc == 0; i++) {
        const hhchunk *c = &e->closed[i];
        if (c->maxt < mint || c->mint > maxt)
            continue;
        if ((rc = headchunks_read(hh->hc, c->cref, &d, &len)) == 0)
            rc = histchunk_fill(d, len, c->enc == HISTCHUNK_ENC_FLOAT, mint, maxt, a, dst, bound, n);
    }
    if (rc == 0 && open) {
        d = histchunk_data(&e->open, &len);
        rc = histchunk_fill(d, len, e->open.is_float, mint, maxt, a, dst, bound, n);
    }
    *out = *n ? dst : NULL;
    return rc;
}

int64_t headhist_mint(headhist *hh, uint32_t ref) {
    hhist *e = entry_of(hh, ref);
    if (!e)
        return INT64_MAX;
    if (e->nclosed)
        return e->closed[0].mint;
    return e->open.count ? e->open_mint : INT64_MAX;
}

int headhist_overlaps(headhist *hh, uint32_t ref, int64_t mint, int64_t maxt) {
    hhist *e = entry_of(hh, ref);
    if (!e)
        return 0;
    for (uint32_t i = 0; i < e->nclosed; i++)
        if (e->closed[i].maxt >= mint && e->closed[i].mint <= maxt)
            return 1;
    return e->open.count && e->open.t >= mint && e->open_mint <= maxt;
}

int headhist_chunks(headhist *hh, uint32_t ref, int64_t mint, int64_t maxt, headhist_chunk_fn fn, void *ctx) {
    hhist *e = entry_of(hh, ref);
    int rc = 0;
    if (!e)
        return 0;
    for (uint32_t i = 0; i < e->nclosed && rc == 0; i++) {
        const hhchunk *c = &e->closed[i];
        if (c->mint < mint || c->maxt >= maxt)
            continue;
        const uint8_t *d;
        size_t len;
        if ((rc = headchunks_read(hh->hc, c->cref, &d, &len)) == 0)
            rc = fn(ctx, c->mint, c->maxt, c->enc, d, len);
    }
    if (rc == 0 && e->open.count && e->open_mint >= mint && e->open.t < maxt) {
        size_t len;
        const uint8_t *d = histchunk_data(&e->open, &len);
        rc = fn(ctx, e->open_mint, e->open.t, e->open.is_float ? HISTCHUNK_ENC_FLOAT : HISTCHUNK_ENC_INT, d,
                len);
    }
    return rc;
}

int headhist_attach(headhist *hh, uint32_t ref, int64_t mint, int64_t maxt, uint64_t cref, uint8_t enc) {
    hhist *e = entry_make(hh, ref, enc == HISTCHUNK_ENC_FLOAT);
    if (!e || push_closed(e, (hhchunk){mint, maxt, cref, enc}) != 0)
        return KILN_ENOMEM;
    __atomic_add_fetch(hh->nchunks, 1, __ATOMIC_RELAXED);
    return 0;
}

uint64_t headhist_truncate(headhist *hh, uint32_t ref, int64_t mint, int idle, int *left) {
    hhist *e = entry_of(hh, ref);
    *left = 0;
    if (!e)
        return 0;
    uint32_t k = 0;
    while (k < e->nclosed && e->closed[k].maxt < mint)
        k++;
    if (k) {
        memmove(e->closed, e->closed + k, (e->nclosed - k) * sizeof *e->closed);
        e->nclosed -= k;
    }
    uint64_t dropped = k;
    if (idle && e->open.count) {
        int is_float = e->open.is_float;
        histchunk_free(&e->open);
        histchunk_init(&e->open, is_float);
        account(hh, e);
        dropped++;
    }
    if (dropped)
        __atomic_sub_fetch(hh->nchunks, dropped, __ATOMIC_RELAXED);
    *left = e->nclosed || e->open.count;
    if (!*left)
        headhist_drop(hh, ref);
    return dropped;
}

void headhist_drop(headhist *hh, uint32_t ref) {
    hhist **sl = slot_of(hh, ref, 0);
    if (!sl || !*sl)
        return;
    __atomic_sub_fetch(&hh->bytes, (*sl)->mem, __ATOMIC_RELAXED);
    entry_free(*sl);
    *sl = NULL;
}
