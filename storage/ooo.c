/*
 * ooo.c - the head's out-of-order samples (the rules are in ooo.h).
 *
 * A series' entry (oseries) holds its out-of-order head chunk, a sorted
 * array of at most OOO_CAP samples (as Prometheus' OOOChunk: inserting in
 * the middle is a memmove of a few hundred bytes at most), and the list of
 * its m-mapped out-of-order chunks in chunks_head (encoding 0x81).
 *
 * Entries are found by series reference in a table of the series' stripe
 * (open addressing, linear probing), under the stripe lock head.c takes for
 * the series' samples: nothing else is locked, and only series that had an
 * out-of-order sample have an entry.  HS_OOO in the series' flags says so
 * without a lookup; queries and compaction test it first.
 *
 * Called by storage.c (commits), querier.c (selects), replay (start-up)
 * and ooocompact.c (compaction).  Threading: see ooo.h.
 */
#include "storage/ooo.h"

#include <stdlib.h>
#include <string.h>

#include "storage/head_int.h"
#include "storage/lockrank.h"
#include "storage/xorchunk.h"

typedef struct ochunk {
    int64_t mint, maxt;
    uint64_t cref;
} ochunk;

typedef struct oseries {
    hseries *s;
    sample *buf; /* the head chunk: n samples sorted by time */
    uint32_t n, cap;
    ochunk *mm; /* m-mapped chunks, in the order they were cut */
    uint32_t nmm, capmm;
} oseries;

typedef struct otab {
    oseries **t;
    uint32_t nb, n; /* slots (0 or a power of two), entries */
} otab;

struct ooo_head {
    head *h;
    headchunks *hc;
    int64_t window;                  /* atomic */
    int64_t mint, maxt;              /* atomics */
    uint64_t nseries, nmm, nsamples; /* atomics */
    otab tabs[STRIPES];              /* by the series' stripe */
};

static pthread_mutex_t *lock_of(ooo_head *o, const hseries *s) {
    return &o->h->stripes[s->ref & (STRIPES - 1)].mu;
}

static otab *tab_of(ooo_head *o, uint32_t ref) {
    return &o->tabs[ref & (STRIPES - 1)];
}

/* The home slot of ref: the bits above the stripe's, mixed. */
static uint32_t home(uint32_t ref, uint32_t nb) {
    return ((ref / STRIPES) * 2654435761u) & (nb - 1);
}

int ooo_new(head *h, headchunks *hc, ooo_head **out) {
    ooo_head *o = calloc(1, sizeof *o);
    if (!o)
        return KILN_ENOMEM;
    o->h = h;
    o->hc = hc;
    o->mint = INT64_MAX;
    o->maxt = INT64_MIN;
    *out = o;
    return 0;
}

static void oseries_free(oseries *e) {
    free(e->buf);
    free(e->mm);
    free(e);
}

void ooo_free(ooo_head *o) {
    if (!o)
        return;
    for (size_t i = 0; i < STRIPES; i++) {
        for (uint32_t j = 0; j < o->tabs[i].nb; j++)
            if (o->tabs[i].t[j])
                oseries_free(o->tabs[i].t[j]);
        free(o->tabs[i].t);
    }
    free(o);
}

void ooo_set_window(ooo_head *o, int64_t ms) {
    __atomic_store_n(&o->window, ms > 0 ? ms : 0, __ATOMIC_RELAXED);
}

int64_t ooo_window(const ooo_head *o) {
    return __atomic_load_n(&o->window, __ATOMIC_RELAXED);
}

int ooo_series_has(const hseries *s) {
    return (__atomic_load_n(&s->hflags, __ATOMIC_RELAXED) & HS_OOO) != 0;
}

/* ---- the stripe tables (stripe lock held) ------------------------------ */

static oseries *find(ooo_head *o, const hseries *s) {
    const otab *tb = tab_of(o, s->ref);
    if (!tb->nb)
        return NULL;
    for (uint32_t i = home(s->ref, tb->nb);; i = (i + 1) & (tb->nb - 1)) {
        oseries *e = tb->t[i];
        if (!e || e->s == s)
            return e;
    }
}

static void put(otab *tb, oseries *e) {
    uint32_t i = home(e->s->ref, tb->nb);
    while (tb->t[i])
        i = (i + 1) & (tb->nb - 1);
    tb->t[i] = e;
}

/* The entry of s, made when missing; NULL when out of memory. */
static oseries *find_or_add(ooo_head *o, hseries *s) {
    oseries *e = find(o, s);
    if (e)
        return e;
    otab *tb = tab_of(o, s->ref);
    if ((tb->n + 1) * 2 > tb->nb) {
        uint32_t nb = tb->nb ? tb->nb * 2 : 4;
        otab grown = {calloc(nb, sizeof *grown.t), nb, tb->n};
        if (!grown.t)
            return NULL;
        for (uint32_t i = 0; i < tb->nb; i++)
            if (tb->t[i])
                put(&grown, tb->t[i]);
        free(tb->t);
        *tb = grown;
    }
    if (!(e = calloc(1, sizeof *e)))
        return NULL;
    e->s = s;
    put(tb, e);
    tb->n++;
    __atomic_add_fetch(&o->nseries, 1, __ATOMIC_RELAXED);
    __atomic_or_fetch(&s->hflags, HS_OOO, __ATOMIC_RELAXED);
    return e;
}

/* The entry of s with its stripe lock taken (*mu, to unlock), or NULL with
 * no lock taken when s has none. */
static oseries *lock_entry(ooo_head *o, const hseries *s, pthread_mutex_t **mu) {
    if (!ooo_series_has(s))
        return NULL;
    *mu = lock_of(o, s);
    lockrank_mutex_lock(*mu, LOCK_RANK_STRIPE);
    oseries *e = find(o, s);
    if (!e)
        lockrank_mutex_unlock(*mu, LOCK_RANK_STRIPE);
    return e;
}

/* Removes e from its table (the entries after it in its cluster move back)
 * and frees it. */
static void drop_entry(ooo_head *o, oseries *e) {
    otab *tb = tab_of(o, e->s->ref);
    uint32_t mask = tb->nb - 1, i = home(e->s->ref, tb->nb);
    while (tb->t[i] != e)
        i = (i + 1) & mask;
    tb->t[i] = NULL;
    for (uint32_t j = (i + 1) & mask; tb->t[j]; j = (j + 1) & mask) {
        oseries *m = tb->t[j];
        tb->t[j] = NULL;
        put(tb, m);
    }
    tb->n--;
    __atomic_and_fetch(&e->s->hflags, (uint8_t)~HS_OOO, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&o->nseries, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&o->nmm, e->nmm, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&o->nsamples, e->n, __ATOMIC_RELAXED);
    oseries_free(e);
}

static void widen(ooo_head *o, int64_t mint, int64_t maxt) {
    int64_t cur = __atomic_load_n(&o->mint, __ATOMIC_RELAXED);
    while (mint < cur &&
           !__atomic_compare_exchange_n(&o->mint, &cur, mint, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    cur = __atomic_load_n(&o->maxt, __ATOMIC_RELAXED);
    while (maxt > cur &&
           !__atomic_compare_exchange_n(&o->maxt, &cur, maxt, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

KILN_MUST_CHECK static int push_mm(ooo_head *o, oseries *e, int64_t mint, int64_t maxt, uint64_t cref) {
    if (e->nmm == e->capmm) {
        uint32_t nc = e->capmm ? e->capmm * 2 : 2;
        ochunk *nv = realloc(e->mm, nc * sizeof *nv);
        if (!nv)
            return KILN_ENOMEM;
        e->mm = nv;
        e->capmm = nc;
    }
    e->mm[e->nmm++] = (ochunk){mint, maxt, cref};
    __atomic_add_fetch(&o->nmm, 1, __ATOMIC_RELAXED);
    return 0;
}

/* Writes v[0..n) (sorted, distinct times) to chunks_head as an out-of-order
 * chunk of ref; *cref its reference.  0, KILN_ENOMEM or KILN_EIO. */
KILN_MUST_CHECK static int write_chunk(ooo_head *o, uint32_t ref, const sample *v, size_t n, uint64_t *cref) {
    xorchunk c;
    xorchunk_init(&c);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = xorchunk_append(&c, v[i].t, v[i].v);
    if (rc == 0) {
        size_t len;
        const uint8_t *d = xorchunk_data(&c, &len);
        kiln_err err;
        if (headchunks_write_enc(o->hc, ref, v[0].t, v[n - 1].t, 1 | OOO_ENC_BIT, d, len, cref, &err) != 0) {
            LOG_ERROR("cannot write an out-of-order chunk to chunks_head", "err=%s", err.msg);
            rc = KILN_EIO;
        }
    }
    xorchunk_free(&c);
    return rc;
}

/* Moves the head chunk of e to chunks_head; *cref its reference. */
KILN_MUST_CHECK static int mmap_head(ooo_head *o, oseries *e, uint64_t *cref) {
    int rc = write_chunk(o, e->s->ref, e->buf, e->n, cref);
    if (rc == 0 && (rc = push_mm(o, e, e->buf[0].t, e->buf[e->n - 1].t, *cref)) == 0) {
        __atomic_sub_fetch(&o->nsamples, e->n, __ATOMIC_RELAXED);
        e->n = 0;
    }
    return rc;
}

/* ---- appending and replay ---------------------------------------------- */

int ooo_insert(ooo_head *o, hseries *s, int64_t t, double v, uint64_t *marker) {
    pthread_mutex_t *mu = lock_of(o, s);
    int rc = 0;
    *marker = 0;
    lockrank_mutex_lock(mu, LOCK_RANK_STRIPE);
    oseries *e = find_or_add(o, s);
    if (!e) {
        rc = KILN_ENOMEM;
        goto out;
    }
    if (e->n == OOO_CAP && (rc = mmap_head(o, e, marker)) != 0)
        goto out;
    /* the first sample at a time or after it */
    uint32_t lo = 0, hi = e->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (e->buf[mid].t < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < e->n && e->buf[lo].t == t) {
        rc = HEAD_APPEND_SAME;
        goto out;
    }
    if (e->n == e->cap) {
        uint32_t nc = e->cap ? e->cap * 2 : 4;
        sample *nv = realloc(e->buf, (nc < OOO_CAP ? nc : OOO_CAP) * sizeof *nv);
        if (!nv) {
            rc = KILN_ENOMEM;
            goto out;
        }
        e->buf = nv;
        e->cap = nc < OOO_CAP ? nc : OOO_CAP;
    }
    memmove(e->buf + lo + 1, e->buf + lo, (e->n - lo) * sizeof *e->buf);
    e->buf[lo] = (sample){t, v};
    e->n++;
    __atomic_add_fetch(&o->nsamples, 1, __ATOMIC_RELAXED);
out:
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
    if (rc == 0)
        widen(o, t, t);
    return rc;
}

void ooo_replay_marker(ooo_head *o, hseries *s, uint64_t cref) {
    pthread_mutex_t *mu;
    oseries *e = lock_entry(o, s, &mu);
    if (!e)
        return;
    uint32_t i = e->nmm;
    while (i > 0 && e->mm[i - 1].cref != cref)
        i--;
    if (i) {
        __atomic_sub_fetch(&o->nsamples, e->n, __ATOMIC_RELAXED);
        e->n = 0;
    }
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
}

int ooo_attach(ooo_head *o, hseries *s, int64_t mint, int64_t maxt, uint64_t cref) {
    pthread_mutex_t *mu = lock_of(o, s);
    lockrank_mutex_lock(mu, LOCK_RANK_STRIPE);
    oseries *e = find_or_add(o, s);
    int rc = e ? push_mm(o, e, mint, maxt, cref) : KILN_ENOMEM;
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
    if (rc == 0)
        widen(o, mint, maxt);
    return rc;
}

/* ---- reading ------------------------------------------------------------ */

static int cmp_t(const void *a, const void *b) {
    const sample *x = a, *y = b;
    return x->t < y->t ? -1 : x->t > y->t;
}

/* Appends the samples of chunk bytes d within [mint, maxt] to dst[*n..cap). */
KILN_MUST_CHECK static int decode_into(const uint8_t *d, size_t len, int64_t mint, int64_t maxt, sample *dst,
                                       size_t cap, size_t *n) {
    xoriter it;
    xoriter_init(&it, d, len);
    int r;
    while ((r = xoriter_next(&it)) == 1 && *n < cap)
        if (it.t >= mint && it.t <= maxt)
            dst[(*n)++] = (sample){it.t, it.v};
    return r < 0 ? KILN_ECORRUPT : 0;
}

int ooo_samples(ooo_head *o, hseries *s, int64_t mint, int64_t maxt, arena *a, sample **out, size_t *n) {
    pthread_mutex_t *mu;
    oseries *e = lock_entry(o, s, &mu);
    int rc = 0;
    *out = NULL;
    *n = 0;
    if (!e)
        return 0;
    size_t bound = 0, k = 0;
    const uint8_t *d;
    size_t len;
    for (uint32_t i = 0; i < e->nmm && rc == 0; i++)
        if (e->mm[i].maxt >= mint && e->mm[i].mint <= maxt &&
            (rc = headchunks_read(o->hc, e->mm[i].cref, &d, &len)) == 0)
            bound += len >= 2 ? (size_t)(d[0] << 8 | d[1]) : 0;
    if (rc == 0)
        bound += e->n;
    sample *v = bound && rc == 0 ? arena_alloc_nz(a, bound * sizeof *v) : NULL;
    if (bound && rc == 0 && !v)
        rc = KILN_ENOMEM;
    for (uint32_t i = 0; v && i < e->nmm && rc == 0; i++)
        if (e->mm[i].maxt >= mint && e->mm[i].mint <= maxt &&
            (rc = headchunks_read(o->hc, e->mm[i].cref, &d, &len)) == 0)
            rc = decode_into(d, len, mint, maxt, v, bound, &k);
    for (uint32_t i = 0; v && i < e->n && rc == 0; i++)
        if (e->buf[i].t >= mint && e->buf[i].t <= maxt && k < bound)
            v[k++] = e->buf[i];
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
    if (rc || !k)
        return rc;
    qsort(v, k, sizeof *v, cmp_t);
    size_t w = 1;
    for (size_t i = 1; i < k; i++)
        if (v[i].t != v[w - 1].t)
            v[w++] = v[i];
    *out = v;
    *n = w;
    return 0;
}

int ooo_has_data(ooo_head *o, hseries *s, int64_t mint, int64_t maxt) {
    pthread_mutex_t *mu;
    oseries *e = lock_entry(o, s, &mu);
    int found = 0;
    if (!e)
        return 0;
    for (uint32_t i = 0; i < e->nmm && !found; i++)
        found = e->mm[i].maxt >= mint && e->mm[i].mint <= maxt;
    for (uint32_t i = 0; i < e->n && !found; i++)
        found = e->buf[i].t >= mint && e->buf[i].t <= maxt;
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
    return found;
}

void ooo_time_range(ooo_head *o, int64_t *mint, int64_t *maxt) {
    *mint = __atomic_load_n(&o->mint, __ATOMIC_RELAXED);
    *maxt = __atomic_load_n(&o->maxt, __ATOMIC_RELAXED);
}

void ooo_get_counts(ooo_head *o, ooo_counts *out) {
    out->series = __atomic_load_n(&o->nseries, __ATOMIC_RELAXED);
    out->mmapped = __atomic_load_n(&o->nmm, __ATOMIC_RELAXED);
    out->samples = __atomic_load_n(&o->nsamples, __ATOMIC_RELAXED);
}

/* ---- compaction --------------------------------------------------------- */

/* Calls fn for every entry, a stripe at a time under its lock, until fn
 * returns non-zero; fn returns DROPPED when it removed the entry (a later
 * entry may then have moved into its slot, and is looked at next). */
#define DROPPED 1
typedef int (*entry_fn)(ooo_head *o, oseries *e, void *ctx);

KILN_MUST_CHECK static int each_entry(ooo_head *o, entry_fn fn, void *ctx) {
    int rc = 0;
    for (size_t i = 0; i < STRIPES && rc == 0; i++) {
        otab *tb = &o->tabs[i];
        if (!__atomic_load_n(&tb->n, __ATOMIC_RELAXED))
            continue;
        pthread_mutex_t *mu = &o->h->stripes[i].mu;
        lockrank_mutex_lock(mu, LOCK_RANK_STRIPE);
        for (uint32_t j = 0; j < tb->nb && rc == 0;) {
            rc = tb->t[j] ? fn(o, tb->t[j], ctx) : 0;
            if (rc == DROPPED)
                rc = 0;
            else
                j++;
        }
        lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
    }
    return rc;
}

typedef struct slist {
    hseries **v;
    size_t n, cap;
} slist;

static int add_series(ooo_head *o, oseries *e, void *ctx) {
    (void)o;
    slist *l = ctx;
    if (array_grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v) != 0)
        return KILN_ENOMEM;
    l->v[l->n++] = e->s;
    return 0;
}

int ooo_series_list(ooo_head *o, hseries ***out, size_t *n) {
    slist l = {0};
    int rc = each_entry(o, add_series, &l);
    if (rc)
        free(l.v);
    *out = rc ? NULL : l.v;
    *n = rc ? 0 : l.n;
    return rc;
}

/* Makes sure the chunk cref (just written) reached the file: reading a
 * chunk still in chunks_head's buffer flushes it. */
KILN_MUST_CHECK static int flush_upto(ooo_head *o, uint64_t cref) {
    const uint8_t *d;
    size_t len;
    return cref && headchunks_read(o->hc, cref, &d, &len) != 0 ? KILN_EIO : 0;
}

static int mmap_entry(ooo_head *o, oseries *e, void *ctx) {
    return e->n ? mmap_head(o, e, ctx) : 0;
}

int ooo_mmap_all(ooo_head *o) {
    uint64_t last = 0;
    int rc = each_entry(o, mmap_entry, &last);
    return rc ? rc : flush_upto(o, last);
}

/* Keeps in e the m-mapped samples at or after t (stripe lock held); the
 * last chunk reference written in *last. */
KILN_MUST_CHECK static int drop_in(ooo_head *o, oseries *e, int64_t t, uint64_t *last) {
    uint32_t w = 0;
    int rc = 0;
    for (uint32_t i = 0; i < e->nmm; i++) {
        ochunk c = e->mm[i];
        if (rc == 0 && c.maxt < t) {
            __atomic_sub_fetch(&o->nmm, 1, __ATOMIC_RELAXED);
            continue;
        }
        if (rc == 0 && c.mint < t) { /* straddles t: its later samples in a chunk of their own */
            const uint8_t *d;
            size_t len, n = 0;
            sample v[256]; /* Prometheus' out_of_order_cap_max is at most 255 */
            if ((rc = headchunks_read(o->hc, c.cref, &d, &len)) == 0 &&
                (rc = decode_into(d, len, t, INT64_MAX, v, sizeof v / sizeof *v, &n)) == 0 && n &&
                (rc = write_chunk(o, e->s->ref, v, n, &c.cref)) == 0) {
                c.mint = v[0].t;
                c.maxt = v[n - 1].t;
                *last = c.cref;
            }
        }
        e->mm[w++] = c;
    }
    e->nmm = w;
    return rc;
}

typedef struct drop_ctx {
    int64_t t, lo, hi;
    uint64_t last;
    int rc; /* the first failure; the other series go on */
} drop_ctx;

static int drop_entry_before(ooo_head *o, oseries *e, void *ctx) {
    drop_ctx *c = ctx;
    int r = drop_in(o, e, c->t, &c->last);
    c->rc = c->rc ? c->rc : r;
    if (e->nmm == 0 && e->n == 0) {
        drop_entry(o, e);
        return DROPPED;
    }
    for (uint32_t k = 0; k < e->nmm; k++) {
        c->lo = e->mm[k].mint < c->lo ? e->mm[k].mint : c->lo;
        c->hi = e->mm[k].maxt > c->hi ? e->mm[k].maxt : c->hi;
    }
    if (e->n) {
        c->lo = e->buf[0].t < c->lo ? e->buf[0].t : c->lo;
        c->hi = e->buf[e->n - 1].t > c->hi ? e->buf[e->n - 1].t : c->hi;
    }
    return 0;
}

int ooo_drop_before(ooo_head *o, int64_t t) {
    drop_ctx c = {t, INT64_MAX, INT64_MIN, 0, 0};
    int rc = each_entry(o, drop_entry_before, &c);
    /* appends meanwhile may have widened the range: it is recomputed here
     * and only grows from here (a narrower range only delays compaction) */
    __atomic_store_n(&o->mint, c.lo, __ATOMIC_RELAXED);
    __atomic_store_n(&o->maxt, c.hi, __ATOMIC_RELAXED);
    int r = flush_upto(o, c.last);
    return rc ? rc : c.rc ? c.rc : r;
}
