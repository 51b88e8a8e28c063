/*
 * head.c - the head block: interned label strings, the series map (sharded
 * hash table by label hash), the reference table, the postings index and the
 * chunks of every series.
 *
 * Memory per series is what the targets are about, so a series is one
 * allocation: the struct with its label array at the end, the strings
 * interned (one copy per distinct string, in an arena).  Series and the
 * bytes of their open chunks come from the slab allocator (util/slab.c): no
 * header per object, and huge pages, which appending needs as it touches a
 * different series for every sample.  A full chunk moves to chunks_head.
 *
 * Chunk cutting follows Prometheus: a chunk holds samples of one chunk range
 * (2h, aligned to multiples of the range); when it has 30 samples (a quarter
 * of the 120 wanted) the end is predicted so the range's samples are spread
 * evenly over its chunks; a chunk is also cut at 240 samples.
 *
 * The series map is SHARDS shards, each an open-addressing table (linear
 * probing, no tombstones: deleting shifts the rest of a cluster back) whose
 * slots hold a series' label hash next to its pointer: a lookup reads
 * adjacent slots and dereferences only a series whose full hash matches,
 * where walking a bucket chain touched a cold series per link.
 *
 * Locks, in the order of storage.h's lock table (checked with
 * KILN_LOCK_DEBUG, see lockrank.h): a shard's rwlock, the index rwlock, the
 * intern mutex, a stripe mutex.  Stripe mutexes (by reference) guard a
 * series' samples; under one only chunks_head's mutex (a chunk cut or read)
 * and the slab allocator's are taken.  One lock of each at a time.
 *
 * Called by the storage (storage.c, replay.c, querier.c, compact.c) only.
 * Threading: see head.h.
 */
#include "storage/head.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "storage/head_int.h"
#include "storage/lockrank.h"

/* ---- small helpers ---------------------------------------------------- */

static uint64_t hash_ptr(const void *p) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static void atomic_min64(int64_t *p, int64_t v) {
    int64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v < cur && !__atomic_compare_exchange_n(p, &cur, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static void atomic_max64(int64_t *p, int64_t v) {
    int64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v > cur && !__atomic_compare_exchange_n(p, &cur, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static pthread_mutex_t *stripe_of(head *h, uint32_t ref) {
    return &h->stripes[ref & (STRIPES - 1)].mu;
}

static uint64_t dbits(double v) {
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

void refvec_free(refvec *r) {
    free(r->v);
    r->v = NULL;
    r->n = r->cap = 0;
}

KILN_MUST_CHECK static int refvec_append(refvec *r, const uint32_t *x, size_t n) {
    if (array_grow((void **)&r->v, &r->cap, r->n + n, sizeof *r->v) != 0)
        return KILN_ENOMEM;
    if (n)
        memcpy(r->v + r->n, x, n * sizeof *x);
    r->n += n;
    return 0;
}

/* ---- lifecycle -------------------------------------------------------- */

int head_new(int64_t chunk_range_ms, headchunks *hc, head **out, kiln_err *err) {
    head *h = calloc(1, sizeof *h);
    if (!h)
        return kiln_err_set(err, KILN_ENOMEM, "head: out of memory");
    h->hc = hc;
    h->chunk_range = chunk_range_ms > 0 ? chunk_range_ms : 2 * 3600 * 1000;
    for (int i = 0; i < SHARDS; i++)
        pthread_rwlock_init(&h->shards[i].lock, NULL);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&h->stripes[i].mu, NULL);
    pthread_rwlock_init(&h->index_lock, NULL);
    pthread_mutex_init(&h->intern_lock, NULL);
    arena_init(&h->strings, 0);
    h->next_ref = 1;
    h->mint = INT64_MAX;
    h->maxt = INT64_MIN;
    h->min_valid = INT64_MIN;
    headhist_init(&h->hist, hc, h->chunk_range, &h->nchunks, &h->chunks_created);
    *out = h;
    return 0;
}

_Static_assert(sizeof(hseries) == 88, "a series' fixed part: see head_int.h");

static size_t series_size(size_t nls) {
    return sizeof(hseries) + nls * sizeof(label);
}

static void series_free(hseries *s) {
    xorchunk_free(&s->open);
    free(s->closed);
    slab_free(s, series_size(s->nls));
}

void head_free(head *h) {
    if (!h)
        return;
    for (int i = 0; i < SHARDS; i++) {
        shard *sh = &h->shards[i];
        for (size_t j = 0; j < sh->nb; j++)
            if (sh->t[j].s)
                series_free(sh->t[j].s);
        free(sh->t);
        pthread_rwlock_destroy(&sh->lock);
    }
    for (size_t i = 0; i < REF_PAGES; i++)
        free(h->pages[i]);
    for (size_t i = 0; i < h->nnames_slots; i++) {
        pname *pn = &h->names[i];
        if (!pn->name)
            continue;
        for (size_t j = 0; j < pn->nslots; j++)
            free(pn->slots[j].p.v);
        free(pn->slots);
    }
    free(h->names);
    free(h->all.v);
    free(h->istr);
    arena_free(&h->strings);
    headhist_free(&h->hist);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&h->stripes[i].mu);
    pthread_rwlock_destroy(&h->index_lock);
    pthread_mutex_destroy(&h->intern_lock);
    free(h);
}

/* ---- postings index (index_lock held for writing) --------------------- */

KILN_MUST_CHECK static int plist_add(plist *p, uint32_t ref) {
    if (p->n == p->cap) {
        uint32_t nc = p->cap ? p->cap * 2 : 1;
        uint32_t *nv = realloc(p->v, (size_t)nc * sizeof *nv);
        if (!nv)
            return KILN_ENOMEM;
        p->v = nv;
        p->cap = nc;
    }
    /* references mostly arrive in order; replay may not */
    uint32_t i = p->n;
    while (i > 0 && p->v[i - 1] > ref) {
        p->v[i] = p->v[i - 1];
        i--;
    }
    p->v[i] = ref;
    p->n++;
    return 0;
}

/*
 * The index's tables - label names, and each name's values - are open
 * addressing tables keyed by an interned string's address, which is the
 * first member of each slot (NULL in an empty one).
 */
static const void *slot_key(const char *slot) {
    const void *k;
    memcpy(&k, slot, sizeof k);
    return k;
}

/* The slot holding key, or the empty one where it goes (one is left). */
static char *ptab_probe(char *t, size_t nslots, size_t size, const void *key) {
    size_t mask = nslots - 1;
    for (size_t i = hash_ptr(key) & mask;; i = (i + 1) & mask) {
        const void *k = slot_key(t + i * size);
        if (k == key || !k)
            return t + i * size;
    }
}

/* The slot of key in the table *t (*nslots slots of size bytes, *n of
 * them used), or NULL.  With create, a missing key is added, the table
 * growing (to `first` slots, then doubling) to stay at most `quarters`
 * quarters full; NULL then means out of memory. */
static void *ptab_get(void **t, size_t *nslots, size_t *n, size_t size, const void *key, int create,
                      size_t first, size_t quarters) {
    if (*nslots) {
        char *slot = ptab_probe(*t, *nslots, size, key);
        if (slot_key(slot))
            return slot;
    }
    if (!create)
        return NULL;
    if ((*n + 1) * 4 > *nslots * quarters) {
        size_t ns = *nslots ? *nslots * 2 : first;
        char *nv = calloc(ns, size);
        if (!nv)
            return NULL;
        for (size_t i = 0; i < *nslots; i++) {
            const char *old = (const char *)*t + i * size;
            const void *k = slot_key(old);
            if (k)
                memcpy(ptab_probe(nv, ns, size, k), old, size);
        }
        free(*t);
        *t = nv;
        *nslots = ns;
    }
    char *slot = ptab_probe(*t, *nslots, size, key);
    memcpy(slot, &key, sizeof key);
    (*n)++;
    return slot;
}

/* A name's entry: the names' table grows at half full. */
static pname *index_name(head *h, const char *name, int create) {
    return ptab_get((void **)&h->names, &h->nnames_slots, &h->nnames, sizeof *h->names, name, create, 64, 2);
}

/* A value's entry: the values' tables, many and mostly small, grow at 3/4 full. */
static pvalue *index_value(pname *pn, const char *value, int create) {
    return ptab_get((void **)&pn->slots, &pn->nslots, &pn->n, sizeof *pn->slots, value, create, 4, 3);
}

KILN_MUST_CHECK static int index_add(head *h, hseries *s) {
    for (uint32_t i = 0; i < s->nls; i++) {
        pname *pn = index_name(h, s->ls[i].name, 1);
        pvalue *pv = pn ? index_value(pn, s->ls[i].value, 1) : NULL;
        if (!pv || plist_add(&pv->p, s->ref) != 0)
            return KILN_ENOMEM;
    }
    return plist_add(&h->all, s->ref);
}

/* ---- series map -------------------------------------------------------- */

static int labels_eq(const hseries *s, const label *ls, size_t n) {
    if (s->nls != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(s->ls[i].name, ls[i].name) != 0 || strcmp(s->ls[i].value, ls[i].value) != 0)
            return 0;
    return 1;
}

/* A hash's home slot.  The low 6 bits chose the shard and are the same for
 * all its series, so the slot comes from the bits above. */
_Static_assert(SHARDS == 64, "slot_home skips the bits that choose the shard");
static size_t slot_home(uint64_t hv, size_t mask) {
    return (size_t)(hv >> 6) & mask;
}

/* The table always has an empty slot (it grows at 3/4 full), so probing for
 * one ends, in shard_find as here. */
static void slot_put(sslot *t, size_t mask, uint64_t hv, hseries *s) {
    size_t i = slot_home(hv, mask);
    while (t[i].s)
        i = (i + 1) & mask;
    t[i] = (sslot){hv, s};
}

static hseries *shard_find(const shard *sh, const label *ls, size_t n, uint64_t hv) {
    if (!sh->nb)
        return NULL;
    size_t mask = sh->nb - 1;
    for (size_t i = slot_home(hv, mask); sh->t[i].s; i = (i + 1) & mask)
        if (sh->t[i].hash == hv && labels_eq(sh->t[i].s, ls, n))
            return sh->t[i].s;
    return NULL;
}

/*
 * Grows at 3/4 full rather than 1/2: a slot is 16 bytes, so the table costs
 * 21 to 43 bytes a series, about what the buckets (8 to 16) and the two
 * fields it took out of the series (16) did; at 1/2 it would be 32 to 64.  A
 * miss - both lookups of a series being created - probes 8.5 slots expected
 * just before growing, 2.5 at half full: two or three adjacent cache lines
 * at worst, not a series each.
 */
KILN_MUST_CHECK static int shard_insert(shard *sh, hseries *s, uint64_t hv) {
    if (sh->n + 1 > sh->nb / 4 * 3) {
        size_t nb = sh->nb ? sh->nb * 2 : 256;
        sslot *t = calloc(nb, sizeof *t);
        if (!t)
            return KILN_ENOMEM;
        for (size_t i = 0; i < sh->nb; i++)
            if (sh->t[i].s)
                slot_put(t, nb - 1, sh->t[i].hash, sh->t[i].s);
        free(sh->t);
        sh->t = t;
        sh->nb = nb;
    }
    slot_put(sh->t, sh->nb - 1, hv, s);
    sh->n++;
    return 0;
}

/*
 * Empties slot i by backward-shift deletion: each later member of its
 * cluster that may sit in the hole (the hole lies on its probe path from its
 * home) moves into it and leaves a hole in turn, until an empty slot.  No
 * lookup then meets an empty slot before its series, and none has to step
 * over tombstones.  Series move only between slot i and the next empty slot.
 */
static void shard_delete_at(shard *sh, size_t i) {
    size_t mask = sh->nb - 1;
    for (size_t j = (i + 1) & mask; sh->t[j].s; j = (j + 1) & mask) {
        size_t home = slot_home(sh->t[j].hash, mask);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            sh->t[i] = sh->t[j];
            i = j;
        }
    }
    sh->t[i] = (sslot){0, NULL};
    sh->n--;
}

/* Points ref at s, making the reference table's page when needed; 0 or
 * KILN_ENOMEM. */
KILN_MUST_CHECK static int ref_table_set(head *h, uint32_t ref, hseries *s) {
    uint32_t pg = ref >> REF_PAGE_BITS;
    hseries **page = __atomic_load_n(&h->pages[pg], __ATOMIC_ACQUIRE);
    if (!page) {
        page = calloc(REF_PAGE_SIZE, sizeof *page);
        if (!page)
            return KILN_ENOMEM;
        __atomic_store_n(&h->pages[pg], page, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&page[ref & (REF_PAGE_SIZE - 1)], s, __ATOMIC_RELEASE);
    return 0;
}

/* Makes ref resolve to no series (never allocates: no page, no series). */
static void ref_table_clear(head *h, uint32_t ref) {
    hseries **page = __atomic_load_n(&h->pages[ref >> REF_PAGE_BITS], __ATOMIC_ACQUIRE);
    if (page)
        __atomic_store_n(&page[ref & (REF_PAGE_SIZE - 1)], NULL, __ATOMIC_RELEASE);
}

hseries *head_series(head *h, uint64_t ref) {
    if (ref == 0 || ref > UINT32_MAX)
        return NULL;
    hseries **page = __atomic_load_n(&h->pages[ref >> REF_PAGE_BITS], __ATOMIC_ACQUIRE);
    return page ? __atomic_load_n(&page[ref & (REF_PAGE_SIZE - 1)], __ATOMIC_ACQUIRE) : NULL;
}

void head_bump_ref(head *h, uint64_t ref) {
    lockrank_wrlock(&h->index_lock, LOCK_RANK_INDEX);
    if (ref + 1 > h->next_ref)
        h->next_ref = ref + 1;
    lockrank_rwunlock(&h->index_lock, LOCK_RANK_INDEX, 0);
}

int head_get_or_create(head *h, const label *ls, size_t n, uint64_t want_ref, hseries **out, int *created,
                       kiln_err *err) {
    uint64_t hv = labels_hash(ls, n);
    shard *sh = &h->shards[hv & (SHARDS - 1)];
    *created = 0;
    hseries *s;
    /* an append mostly finds its series, under the read lock; a series record
     * being replayed (want_ref) is mostly new: one lookup, under the write lock */
    if (!want_ref) {
        lockrank_rdlock(&sh->lock, LOCK_RANK_SHARD);
        s = shard_find(sh, ls, n, hv);
        lockrank_rwunlock(&sh->lock, LOCK_RANK_SHARD, 1);
        if (s) {
            *out = s;
            return 0;
        }
    }
    lockrank_wrlock(&sh->lock, LOCK_RANK_SHARD);
    if ((s = shard_find(sh, ls, n, hv)) != NULL) {
        lockrank_rwunlock(&sh->lock, LOCK_RANK_SHARD, 0);
        *out = s;
        return 0;
    }
    if (want_ref > UINT32_MAX) {
        lockrank_rwunlock(&sh->lock, LOCK_RANK_SHARD, 0);
        return kiln_err_set(err, KILN_ERANGE, "series reference %llu beyond the supported 2^32",
                            (unsigned long long)want_ref);
    }
    s = slab_alloc(series_size(n));
    if (!s)
        goto nomem;
    memset(s, 0, series_size(n));
    s->nls = (uint16_t)n;
    s->maxt = INT64_MIN;
    xorchunk_init(&s->open);
    xorchunk_use_slab(&s->open);
    if (head_intern_labels(h, ls, n, s->ls) != 0)
        goto nomem;
    lockrank_wrlock(&h->index_lock, LOCK_RANK_INDEX);
    uint64_t ref = want_ref ? want_ref : h->next_ref;
    if (ref > UINT32_MAX || head_series(h, ref)) {
        lockrank_rwunlock(&h->index_lock, LOCK_RANK_INDEX, 0);
        lockrank_rwunlock(&sh->lock, LOCK_RANK_SHARD, 0);
        slab_free(s, series_size(n));
        return kiln_err_set(err, ref > UINT32_MAX ? KILN_ERANGE : KILN_EEXIST,
                            "series reference %llu is taken or out of range", (unsigned long long)ref);
    }
    s->ref = (uint32_t)ref;
    if (ref_table_set(h, s->ref, s) != 0 || index_add(h, s) != 0) {
        /* the index may hold the reference now; it resolves to no series */
        ref_table_clear(h, s->ref);
        lockrank_rwunlock(&h->index_lock, LOCK_RANK_INDEX, 0);
        goto nomem;
    }
    if (ref + 1 > h->next_ref)
        h->next_ref = ref + 1;
    lockrank_rwunlock(&h->index_lock, LOCK_RANK_INDEX, 0);
    if (shard_insert(sh, s, hv) != 0) {
        /* keep it reachable by reference; it will not be found by labels */
        lockrank_rwunlock(&sh->lock, LOCK_RANK_SHARD, 0);
        return kiln_err_set(err, KILN_ENOMEM, "head: out of memory");
    }
    lockrank_rwunlock(&sh->lock, LOCK_RANK_SHARD, 0);
    __atomic_add_fetch(&h->nseries, 1, __ATOMIC_RELAXED);
    *out = s;
    *created = 1;
    return 0;
nomem:
    lockrank_rwunlock(&sh->lock, LOCK_RANK_SHARD, 0);
    slab_free(s, series_size(n));
    return kiln_err_set(err, KILN_ENOMEM, "head: out of memory creating a series");
}

uint64_t hseries_ref(const hseries *s) {
    return s->ref;
}

void hseries_prefetch(const hseries *s, int deep) {
    if (!deep) {
        /* the fields appending reads span 128 bytes: two or three cache lines */
        __builtin_prefetch(s, 1, 3);
        __builtin_prefetch((const char *)s + 64, 1, 3);
        __builtin_prefetch((const char *)s + 127, 1, 3);
        return;
    }
    /* the struct is in cache by now: fetch where the next sample goes */
    if (s->open.b) {
        /* the header (its count changes on every append), the tail and the line after it */
        const uint8_t *tail = s->open.b + (s->open.nbits >> 3);
        __builtin_prefetch(s->open.b, 1, 3);
        __builtin_prefetch(tail, 1, 3);
        if (tail + 64 < s->open.b + s->open.cap)
            __builtin_prefetch(tail + 64, 1, 3);
    }
}

const label *hseries_labels(const hseries *s, size_t *n) {
    *n = s->nls;
    return s->ls;
}

/* ---- appending --------------------------------------------------------- */

/* The end of the chunk range holding t (ranges are aligned to multiples). */
int64_t head_range_end(int64_t t, int64_t width) {
    int64_t q = t / width;
    if (t < 0 && q * width != t)
        q--;
    return (q + 1) * width;
}

/* Prometheus' prediction of where a chunk should end so the samples of the
 * range spread evenly over its chunks (integer arithmetic, as in Go). */
int64_t head_chunk_end_time(int64_t start, int64_t cur, int64_t max) {
    int64_t n = (max - start) / ((cur - start + 1) * 4);
    if (n <= 1)
        return max;
    return start + (max - start) / n;
}

static int order_check(const hseries *s, int64_t t, double v) {
    if (s->maxt == INT64_MIN && xorchunk_count(&s->open) == 0 && s->nclosed == 0)
        return HEAD_APPEND_OK;
    if (t > s->maxt)
        return HEAD_APPEND_OK;
    if (t < s->maxt)
        return KILN_EORDER;
    if (s->hflags & HS_HOPEN)
        return KILN_EEXIST; /* a histogram there */
    return dbits(v) == s->open.v ? HEAD_APPEND_SAME : KILN_EEXIST;
}

static int hist_order_check(head *h, const hseries *s, int64_t t, const histogram *hg);

/* head_append_check for a float v, or for the histogram hg when not NULL. */
static int append_check(head *h, hseries *s, int64_t t, double v, const histogram *hg, kiln_err *err) {
    int64_t hmaxt = __atomic_load_n(&h->maxt, __ATOMIC_RELAXED);
    if ((hmaxt != INT64_MIN && t < hmaxt - h->chunk_range / 2) ||
        t < __atomic_load_n(&h->min_valid, __ATOMIC_RELAXED))
        return kiln_err_set(err, KILN_ERANGE, "out of bounds");
    /* the common case, a newer sample, needs no lock: the commit checks again under it */
    if (t > __atomic_load_n(&s->maxt, __ATOMIC_RELAXED))
        return HEAD_APPEND_OK;
    pthread_mutex_t *mu = stripe_of(h, s->ref);
    lockrank_mutex_lock(mu, LOCK_RANK_STRIPE);
    int rc = hg ? hist_order_check(h, s, t, hg) : order_check(s, t, v);
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
    if (rc == KILN_EORDER)
        return kiln_err_set(err, rc, "out of order sample");
    if (rc == KILN_EEXIST)
        return kiln_err_set(err, rc, "duplicate sample for timestamp");
    return rc;
}

int head_append_check(head *h, hseries *s, int64_t t, double v, kiln_err *err) {
    return append_check(h, s, t, v, NULL, err);
}

/* The slots allocated for n closed chunks: 2, then powers of two (the
 * capacity is not stored; truncation may leave more allocated, never less). */
static int closed_full(uint32_t n) {
    return n == 0 || (n >= 2 && (n & (n - 1)) == 0);
}

/* Not array_grow: its first 16 slots would be most of a series' memory; a
 * series holds a few full chunks at a time. */
KILN_MUST_CHECK static int push_closed(hseries *s, int64_t mint, int64_t maxt, uint64_t cref) {
    if (closed_full(s->nclosed)) {
        size_t nc = s->nclosed ? (size_t)s->nclosed * 2 : 2;
        hchunk *nv = realloc(s->closed, nc * sizeof *nv);
        if (!nv)
            return KILN_ENOMEM;
        s->closed = nv;
    }
    s->closed[s->nclosed++] = (hchunk){mint, maxt, cref};
    return 0;
}

/* The bytes to give a chunk after one of len bytes: room for samples that vary more. */
static size_t next_chunk_size(size_t len) {
    return len + len / 8 + 16;
}

/* Moves the open chunk to chunks_head. */
KILN_MUST_CHECK static int cut_chunk(head *h, hseries *s) {
    size_t len;
    const uint8_t *d = xorchunk_data(&s->open, &len);
    uint64_t cref;
    kiln_err err;
    int64_t mint = xorchunk_first_time(&s->open);
    int rc = headchunks_write(h->hc, s->ref, mint, s->maxt, d, len, &cref, &err);
    s->last_len = (uint16_t)(len < UINT16_MAX ? len : UINT16_MAX);
    if (rc == 0)
        rc = push_closed(s, mint, s->maxt, cref);
    if (rc) {
        if (__atomic_fetch_add(&h->cut_failures, 1, __ATOMIC_RELAXED) == 0)
            LOG_ERROR("cannot move a full chunk to chunks_head; keeping it in memory", "err=%s",
                      rc == KILN_ENOMEM ? "out of memory" : err.msg);
        return rc;
    }
    xorchunk_reuse(&s->open, next_chunk_size(len));
    return 0;
}

int head_attach_chunk(head *h, hseries *s, int64_t mint, int64_t maxt, uint64_t cref, int last) {
    const uint8_t *d = NULL;
    size_t len = 0;
    if (last && headchunks_read(h->hc, cref, &d, &len) != 0)
        return KILN_ECORRUPT;
    pthread_mutex_t *mu = stripe_of(h, s->ref);
    lockrank_mutex_lock(mu, LOCK_RANK_STRIPE);
    int rc = 0;
    if (xorchunk_count(&s->open) || (s->maxt != INT64_MIN && mint <= s->maxt)) {
        rc = KILN_EORDER; /* overlaps what the series has: ignore it */
        goto out;
    }
    /* appending goes on after the last chunk: its last sample is needed (the
     * others' end is in chunks_head's index, and their bytes stay unread) */
    uint64_t lastv = 0;
    int64_t lastt = maxt;
    if (last) {
        xoriter it;
        xoriter_init(&it, d, len);
        int r;
        lastt = INT64_MIN;
        while ((r = xoriter_next(&it)) == 1) {
            lastt = it.t;
            memcpy(&lastv, &it.v, sizeof lastv);
        }
        if (r < 0 || lastt == INT64_MIN) {
            rc = KILN_ECORRUPT;
            goto out;
        }
    }
    if ((rc = push_closed(s, mint, maxt, cref)) != 0)
        goto out;
    __atomic_store_n(&s->maxt, lastt, __ATOMIC_RELAXED); /* head_append_check reads it unlocked */
    s->open.v = lastv;
    __atomic_add_fetch(&h->nchunks, 1, __ATOMIC_RELAXED);
out:
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
    if (rc == 0) {
        atomic_min64(&h->mint, mint);
        atomic_max64(&h->maxt, lastt);
    }
    return rc;
}

int head_attach_hist_chunk(head *h, hseries *s, int64_t mint, int64_t maxt, uint64_t cref, uint8_t enc) {
    pthread_mutex_t *mu = stripe_of(h, s->ref);
    lockrank_mutex_lock(mu, LOCK_RANK_STRIPE);
    int rc = KILN_EORDER; /* overlapping what the series has: ignored */
    if (!xorchunk_count(&s->open) && !(s->hflags & HS_HOPEN) && (s->maxt == INT64_MIN || mint > s->maxt) &&
        (rc = headhist_attach(&h->hist, s->ref, mint, maxt, cref, enc)) == 0) {
        __atomic_or_fetch(&s->hflags, HS_HIST, __ATOMIC_RELAXED);
        __atomic_store_n(&s->maxt, maxt, __ATOMIC_RELAXED);
    }
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
    if (rc == 0)
        head_note_range(h, mint, maxt);
    return rc;
}

/* A series' first chunk has no earlier size to go by: it is sized once, from
 * its first FIRST_SIZING samples (not after chunks from chunks_head: that
 * overestimated, costing memory). */
#define FIRST_SIZING 6
static int first_chunk_unsized(const hseries *s) {
    return !s->last_len && !s->nclosed;
}

/* The count of the open chunk, n or the next one after it, at which
 * append_locked does more than encode a sample: it sizes a first chunk,
 * predicts the chunk's end (a quarter of SAMPLES_PER_CHUNK), or cuts it. */
static unsigned next_busy_count(const hseries *s, unsigned n) {
    if (n <= FIRST_SIZING && first_chunk_unsized(s))
        return FIRST_SIZING;
    if (n <= SAMPLES_PER_CHUNK / 4)
        return SAMPLES_PER_CHUNK / 4;
    return SAMPLES_PER_CHUNK * 2;
}

KILN_MUST_CHECK static int hist_append_locked(head *h, hseries *s, int64_t t, const histogram *hg);

KILN_MUST_CHECK static int append_locked(head *h, hseries *s, int64_t t, double v) {
    int rc = order_check(s, t, v);
    if (rc != HEAD_APPEND_OK)
        goto out;
    if (s->hflags & HS_HOPEN) {
        int is_float = 0;
        if (value_is_stale(v) && headhist_open(&h->hist, s->ref, &is_float)) {
            /* a series of histograms ends with a histogram stale marker, as in Prometheus */
            histogram st = {.sum = v, .is_int = (uint8_t)!is_float};
            return hist_append_locked(h, s, t, &st);
        }
        headhist_close(&h->hist, s->ref); /* a float follows: the chunks must not overlap */
        __atomic_and_fetch(&s->hflags, (uint8_t)~HS_HOPEN, __ATOMIC_RELAXED);
    }
    uint16_t n = xorchunk_count(&s->open);
    int created = 0;
    if (n > 0) {
        if (n == SAMPLES_PER_CHUNK / 4)
            s->next_at = head_chunk_end_time(xorchunk_first_time(&s->open), s->maxt, s->next_at);
        if (n == FIRST_SIZING && first_chunk_unsized(s))
            xorchunk_expect(&s->open, SAMPLES_PER_CHUNK);
        if ((t >= s->next_at || n >= SAMPLES_PER_CHUNK * 2) && cut_chunk(h, s) == 0)
            n = 0; /* when the cut failed the open chunk grows on */
    }
    if (n == 0) {
        s->next_at = head_range_end(t, h->chunk_range);
        created = 1;
        if (s->last_len)
            xorchunk_presize(&s->open, next_chunk_size(s->last_len));
    }
    if ((rc = xorchunk_append(&s->open, t, v)) != 0)
        goto out;
    __atomic_store_n(&s->maxt, t, __ATOMIC_RELAXED); /* head_append_check reads it unlocked */
    if (created) {
        __atomic_add_fetch(&h->chunks_created, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&h->nchunks, 1, __ATOMIC_RELAXED);
    }
out:
    return rc;
}

int head_append(head *h, hseries *s, int64_t t, double v) {
    pthread_mutex_t *mu = stripe_of(h, s->ref);
    lockrank_mutex_lock(mu, LOCK_RANK_STRIPE);
    int rc = append_locked(h, s, t, v);
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
    return rc;
}

/* Order as order_check; at the last sample's time, the same histogram is
 * HEAD_APPEND_SAME, anything else a duplicate. */
static int hist_order_check(head *h, const hseries *s, int64_t t, const histogram *hg) {
    if (s->maxt == INT64_MIN || t > s->maxt)
        return HEAD_APPEND_OK;
    if (t < s->maxt)
        return KILN_EORDER;
    return s->hflags & HS_HOPEN ? headhist_same(&h->hist, s->ref, hg) : KILN_EEXIST;
}

KILN_MUST_CHECK static int hist_append_locked(head *h, hseries *s, int64_t t, const histogram *hg) {
    int rc = hist_order_check(h, s, t, hg);
    if (rc != HEAD_APPEND_OK)
        return rc;
    if (xorchunk_count(&s->open) && cut_chunk(h, s) != 0)
        return KILN_ENOMEM; /* the float chunk stays open: a histogram would overlap it */
    if ((rc = headhist_append(&h->hist, s->ref, t, hg)) != 0)
        return rc;
    __atomic_or_fetch(&s->hflags, HS_HIST | HS_HOPEN, __ATOMIC_RELAXED); /* read unlocked as a hint */
    __atomic_store_n(&s->maxt, t, __ATOMIC_RELAXED); /* head_append_check reads it unlocked */
    return 0;
}

int head_append_histogram_check(head *h, hseries *s, int64_t t, const histogram *hg, kiln_err *err) {
    return append_check(h, s, t, 0, hg, err);
}

int head_append_histogram(head *h, hseries *s, int64_t t, const histogram *hg) {
    pthread_mutex_t *mu = stripe_of(h, s->ref);
    lockrank_mutex_lock(mu, LOCK_RANK_STRIPE);
    int rc = hist_append_locked(h, s, t, hg);
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
    return rc;
}

int head_series_histograms(head *h, hseries *s, int64_t mint, int64_t maxt, arena *a, hsample **out,
                           size_t *n) {
    *out = NULL;
    *n = 0;
    if (!(__atomic_load_n(&s->hflags, __ATOMIC_RELAXED) & HS_HIST))
        return 0;
    pthread_mutex_t *mu = stripe_of(h, s->ref);
    lockrank_mutex_lock(mu, LOCK_RANK_STRIPE);
    int rc = headhist_read(&h->hist, s->ref, mint, maxt, a, out, n);
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
    return rc;
}

int head_series_last_histogram(head *h, hseries *s, int *is_float) {
    if (!(__atomic_load_n(&s->hflags, __ATOMIC_RELAXED) & HS_HOPEN))
        return 0;
    pthread_mutex_t *mu = stripe_of(h, s->ref);
    lockrank_mutex_lock(mu, LOCK_RANK_STRIPE);
    int r = (s->hflags & HS_HOPEN) && headhist_open(&h->hist, s->ref, is_float);
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
    return r;
}

int head_series_hist_chunks(head *h, hseries *s, int64_t mint, int64_t maxt, headhist_chunk_fn fn,
                            void *ctx) {
    if (!(__atomic_load_n(&s->hflags, __ATOMIC_RELAXED) & HS_HIST))
        return 0;
    pthread_mutex_t *mu = stripe_of(h, s->ref);
    lockrank_mutex_lock(mu, LOCK_RANK_STRIPE);
    int rc = headhist_chunks(&h->hist, s->ref, mint, maxt, fn, ctx);
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
    return rc;
}

int head_append_owned_run(head *h, hseries *s, const sample *v, size_t n, int64_t *mint, int64_t *maxt,
                          uint64_t *taken, uint64_t *dropped) {
    int64_t lo = *mint, hi = *maxt;
    uint64_t ok = 0, bad = 0;
    int nomem = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t cnt = xorchunk_count(&s->open);
        unsigned upto = next_busy_count(s, cnt);
        if (cnt >= 2 && upto > cnt && v[i].t > s->maxt) {
            /* newer samples into the open chunk, up to where append_locked has more to do */
            int k = xorchunk_append_run(&s->open, v + i, n - i, s->next_at, upto);
            if (k > 0) {
                const sample *last = &v[i + (size_t)k - 1];
                lo = v[i].t < lo ? v[i].t : lo;
                hi = last->t > hi ? last->t : hi;
                ok += (uint64_t)k;
                __atomic_store_n(&s->maxt, last->t,
                                 __ATOMIC_RELAXED); /* head_append_check reads it unlocked */
                i += (size_t)k - 1;
                continue;
            }
        }
        int rc = append_locked(h, s, v[i].t, v[i].v);
        if (rc == HEAD_APPEND_OK) {
            ok++;
            lo = v[i].t < lo ? v[i].t : lo;
            hi = v[i].t > hi ? v[i].t : hi;
        } else if (rc == KILN_ENOMEM) {
            nomem = 1;
        } else if (rc < 0) {
            bad++;
        } else {
            ok++; /* HEAD_APPEND_SAME: a duplicate of the last sample, taken as stored */
        }
    }
    *mint = lo;
    *maxt = hi;
    *taken += ok;
    *dropped += bad;
    return nomem ? KILN_ENOMEM : 0;
}

int head_append_owned(head *h, hseries *s, int64_t t, double v, int64_t *mint, int64_t *maxt) {
    int rc = append_locked(h, s, t, v);
    if (rc == HEAD_APPEND_OK) {
        if (t < *mint)
            *mint = t;
        if (t > *maxt)
            *maxt = t;
    }
    return rc;
}

void head_note_range(head *h, int64_t mint, int64_t maxt) {
    if (mint <= maxt) {
        atomic_min64(&h->mint, mint);
        atomic_max64(&h->maxt, maxt);
    }
}

void head_time_range(head *h, int64_t *mint, int64_t *maxt) {
    *mint = __atomic_load_n(&h->mint, __ATOMIC_RELAXED);
    *maxt = __atomic_load_n(&h->maxt, __ATOMIC_RELAXED);
}

void head_get_counts(head *h, head_counts *out) {
    out->series = __atomic_load_n(&h->nseries, __ATOMIC_RELAXED);
    out->chunks = __atomic_load_n(&h->nchunks, __ATOMIC_RELAXED);
    out->chunks_created = __atomic_load_n(&h->chunks_created, __ATOMIC_RELAXED);
}

/* ---- reading ----------------------------------------------------------- */

/* Decodes the samples of one chunk within [mint, maxt] into dst[*n..cap). */
KILN_MUST_CHECK static int chunk_fill(const uint8_t *d, size_t len, int64_t mint, int64_t maxt, sample *dst,
                                      size_t cap, size_t *n) {
    xoriter it;
    xoriter_init(&it, d, len);
    int rc = xoriter_seek(&it, mint);
    while (rc == 1 && it.t <= maxt && *n < cap) {
        dst[*n].t = it.t;
        dst[*n].v = it.v;
        (*n)++;
        rc = xoriter_next(&it);
    }
    return rc < 0 ? rc : 0;
}

/* The bytes of the next full chunk of s, from the *i-th on, that overlaps
 * [mint, maxt] (stripe lock held): 1 with *d and *len set and *i past it, 0
 * when none is left, or headchunks_read's error. */
KILN_MUST_CHECK static int next_closed(head *h, const hseries *s, int64_t mint, int64_t maxt, uint32_t *i,
                                       const uint8_t **d, size_t *len) {
    for (; *i < s->nclosed; (*i)++) {
        const hchunk *c = &s->closed[*i];
        if (c->maxt < mint || c->mint > maxt)
            continue;
        (*i)++;
        int rc = headchunks_read(h->hc, c->cref, d, len);
        return rc < 0 ? rc : 1;
    }
    return 0;
}

int head_series_samples(head *h, hseries *s, int64_t mint, int64_t maxt, head_alloc_fn alloc, void *ctx,
                        sample **out, size_t *n) {
    pthread_mutex_t *mu = stripe_of(h, s->ref);
    int rc;
    size_t bound = 0, len;
    const uint8_t *d;
    uint32_t i = 0;
    *n = 0;
    *out = NULL;
    lockrank_mutex_lock(mu, LOCK_RANK_STRIPE);
    /* an upper bound from the chunks' sample counts, then one exact-ish array */
    while ((rc = next_closed(h, s, mint, maxt, &i, &d, &len)) == 1)
        if (len >= 2)
            bound += (size_t)(d[0] << 8 | d[1]);
    int open = xorchunk_count(&s->open) && s->maxt >= mint && xorchunk_first_time(&s->open) <= maxt;
    if (open)
        bound += xorchunk_count(&s->open);
    if (rc == 0 && bound) {
        sample *dst = alloc(ctx, bound);
        if (!dst)
            rc = KILN_ENOMEM;
        for (i = 0; rc == 0 && (rc = next_closed(h, s, mint, maxt, &i, &d, &len)) == 1;)
            rc = chunk_fill(d, len, mint, maxt, dst, bound, n);
        if (rc == 0 && open) {
            d = xorchunk_data(&s->open, &len);
            rc = chunk_fill(d, len, mint, maxt, dst, bound, n);
        }
        *out = dst;
    }
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
    return rc;
}

int head_series_chunks(head *h, hseries *s, int64_t mint, int64_t maxt, head_chunk_fn fn, void *ctx) {
    pthread_mutex_t *mu = stripe_of(h, s->ref);
    int rc = 0;
    lockrank_mutex_lock(mu, LOCK_RANK_STRIPE);
    for (uint32_t i = 0; i < s->nclosed && rc == 0; i++) {
        const hchunk *c = &s->closed[i];
        if (c->mint < mint || c->maxt >= maxt)
            continue;
        const uint8_t *d;
        size_t len;
        if ((rc = headchunks_read(h->hc, c->cref, &d, &len)) == 0)
            rc = fn(ctx, c->mint, c->maxt, d, len);
    }
    int64_t omint = xorchunk_first_time(&s->open); /* INT64_MIN when empty */
    if (rc == 0 && xorchunk_count(&s->open) && omint >= mint && s->maxt < maxt) {
        size_t len;
        const uint8_t *d = xorchunk_data(&s->open, &len);
        rc = fn(ctx, omint, s->maxt, d, len);
    }
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
    return rc;
}

void head_set_min_valid(head *h, int64_t t) {
    atomic_max64(&h->min_valid, t);
}

int64_t head_min_valid(head *h) {
    return __atomic_load_n(&h->min_valid, __ATOMIC_RELAXED);
}

int head_series_time_range(head *h, hseries *s, int64_t *mint, int64_t *maxt) {
    pthread_mutex_t *mu = stripe_of(h, s->ref);
    int64_t t = INT64_MAX;
    lockrank_mutex_lock(mu, LOCK_RANK_STRIPE);
    if (s->nclosed)
        t = s->closed[0].mint;
    else if (xorchunk_count(&s->open))
        t = xorchunk_first_time(&s->open);
    if (s->hflags & HS_HIST) {
        int64_t ht = headhist_mint(&h->hist, s->ref);
        t = ht < t ? ht : t;
    }
    *maxt = s->maxt; /* the last sample appended, in the head while any is */
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
    *mint = t;
    return t != INT64_MAX;
}

static sample *malloc_samples(void *ctx, size_t n) {
    (void)ctx;
    return malloc(n * sizeof(sample));
}

int head_series_has_data(head *h, hseries *s, int64_t mint, int64_t maxt) {
    pthread_mutex_t *mu = stripe_of(h, s->ref);
    int found = 0, certain = 0;
    lockrank_mutex_lock(mu, LOCK_RANK_STRIPE);
    /* A chunk's mint and maxt are times of samples in it: when either lies
     * in the range the answer is known without decoding the chunk (label
     * lookups ask this of every series they match). */
    for (uint32_t i = 0; i < s->nclosed && !certain; i++)
        if (s->closed[i].maxt >= mint && s->closed[i].mint <= maxt) {
            found = 1;
            certain = s->closed[i].mint >= mint || s->closed[i].maxt <= maxt;
        }
    int64_t omint; /* read from the chunk's bytes only when needed: one more cache line */
    if (!certain && xorchunk_count(&s->open) && s->maxt >= mint &&
        (omint = xorchunk_first_time(&s->open)) <= maxt) {
        found = 1;
        certain = omint >= mint || s->maxt <= maxt;
    }
    /* histogram chunks' bounds: close enough for label lookups */
    if (!found && (s->hflags & HS_HIST) && headhist_overlaps(&h->hist, s->ref, mint, maxt))
        found = certain = 1;
    lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
    if (!found)
        return 0;
    if (certain)
        return 1;
    /* chunk bounds overlap; check that a sample really lies in range */
    sample *tmp = NULL;
    size_t n = 0;
    int rc = head_series_samples(h, s, mint, maxt, malloc_samples, NULL, &tmp, &n);
    free(tmp);
    return rc == 0 && n > 0;
}

/* ---- postings for matchers -------------------------------------------- */

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts and deduplicates a union of postings lists: a large one (a regex
 * matching many values) over a range not much wider than its count through
 * a bitmap of that range, linear where qsort was most of such a select. */
static void sort_unique(refvec *r) {
    if (r->n < 2)
        return;
    if (r->n >= 4096) {
        uint32_t lo = r->v[0], hi = r->v[0];
        for (size_t i = 1; i < r->n; i++) {
            lo = r->v[i] < lo ? r->v[i] : lo;
            hi = r->v[i] > hi ? r->v[i] : hi;
        }
        size_t words = ((size_t)(hi - lo) >> 6) + 1;
        uint64_t *bits = words <= r->n ? calloc(words, sizeof *bits) : NULL;
        if (bits) {
            for (size_t i = 0; i < r->n; i++)
                bits[(r->v[i] - lo) >> 6] |= (uint64_t)1 << ((r->v[i] - lo) & 63);
            size_t w = 0;
            for (size_t k = 0; k < words; k++)
                for (uint64_t b = bits[k]; b; b &= b - 1)
                    r->v[w++] = lo + (uint32_t)(k << 6) + (uint32_t)__builtin_ctzll(b);
            r->n = w;
            free(bits);
            return;
        }
    }
    qsort(r->v, r->n, sizeof *r->v, cmp_u32);
    size_t w = 1;
    for (size_t i = 1; i < r->n; i++)
        if (r->v[i] != r->v[w - 1])
            r->v[w++] = r->v[i];
    r->n = w;
}

/* A regex over more values than this is matched with index_lock released. */
#define VALUES_MATCHED_UNLOCKED 64

/*
 * values_union for a regex over many values: the values are gathered under
 * index_lock, matched with it released (a regex over thousands of values
 * may take up to the query's timeout, and an append that creates a series
 * needs index_lock for writing: ingestion must not wait for a query), and
 * their postings collected with it taken again.  The interned value strings
 * stay valid meanwhile: they are freed only by head truncation, which the
 * select's gc read lock keeps out.  The name's value table may grow while
 * the lock is released, so it is looked up again.  Values added meanwhile
 * are not seen, as series created after the select began are not.
 */
KILN_MUST_CHECK static int values_union_unlocked(head *h, const char *iname, pname *pn, const matcher *m,
                                                 int want, refvec *out, match_guard *g, kiln_err *err) {
    const char **vals = malloc(pn->n * sizeof *vals);
    if (!vals)
        return kiln_err_set(err, KILN_ENOMEM, "head: out of memory selecting series");
    size_t nv = 0;
    for (size_t i = 0; i < pn->nslots && nv < pn->n; i++)
        if (pn->slots[i].value && pn->slots[i].p.n)
            vals[nv++] = pn->slots[i].value;
    lockrank_rwunlock(&h->index_lock, LOCK_RANK_INDEX, 1);
    size_t nm = 0;
    int rc = 0;
    for (size_t i = 0; i < nv; i++) {
        int ok = matcher_match(m, vals[i], g, err);
        if (ok < 0) {
            rc = ok;
            break;
        }
        if (ok == want)
            vals[nm++] = vals[i];
    }
    lockrank_rdlock(&h->index_lock, LOCK_RANK_INDEX);
    pn = rc == 0 && nm ? index_name(h, iname, 0) : NULL;
    int lists = 0;
    for (size_t i = 0; pn && i < nm; i++) {
        pvalue *pv = index_value(pn, vals[i], 0);
        if (!pv || !pv->p.n)
            continue;
        if (refvec_append(out, pv->p.v, pv->p.n) != 0) {
            rc = kiln_err_set(err, KILN_ENOMEM, "head: out of memory selecting series");
            break;
        }
        lists++;
    }
    free(vals);
    if (rc == 0 && lists > 1)
        sort_unique(out);
    return rc;
}

/* Union of the postings of the values of `name` for which m matches
 * (want = 1) or does not match (want = 0).  index_lock held.  A matcher's
 * error (a regex over PCRE2's limits, g's deadline) is returned with err
 * set. */
KILN_MUST_CHECK static int values_union(head *h, const matcher *m, int want, refvec *out, match_guard *g,
                                        kiln_err *err) {
    out->n = 0;
    const char *iname = head_intern_find(h, m->name);
    pname *pn = iname ? index_name(h, iname, 0) : NULL;
    if (!pn)
        return 0;
    if (m->type == MATCH_EQ && want) {
        const char *iv = head_intern_find(h, m->value);
        pvalue *pv = iv ? index_value(pn, iv, 0) : NULL;
        if (pv && refvec_append(out, pv->p.v, pv->p.n) != 0)
            return kiln_err_set(err, KILN_ENOMEM, "head: out of memory selecting series");
        return 0;
    }
    if ((m->type == MATCH_RE || m->type == MATCH_NRE) && pn->n > VALUES_MATCHED_UNLOCKED)
        return values_union_unlocked(h, iname, pn, m, want, out, g, err);
    int lists = 0;
    for (size_t i = 0; i < pn->nslots; i++) {
        pvalue *pv = &pn->slots[i];
        if (!pv->value || !pv->p.n)
            continue;
        int ok = matcher_match(m, pv->value, g, err);
        if (ok < 0)
            return ok;
        if (ok != want)
            continue;
        if (refvec_append(out, pv->p.v, pv->p.n) != 0)
            return kiln_err_set(err, KILN_ENOMEM, "head: out of memory selecting series");
        lists++;
    }
    if (lists > 1)
        sort_unique(out);
    return 0;
}

/* Keeps the refs of a that are in b[0..nb) (both sorted).  b is searched by
 * galloping, so a short a against a long b (a selector's `svc="x"` against
 * its `__name__`) costs |a| log |b|, not |b|. */
/* The first index at or after j of b[0..nb) (sorted) whose ref is >= x,
 * found by galloping; nb when none. */
static size_t gallop(const uint32_t *b, size_t nb, size_t j, uint32_t x) {
    if (j >= nb || b[j] >= x)
        return j;
    size_t lo = j, step = 1;
    while (lo + step < nb && b[lo + step] < x) {
        lo += step;
        step <<= 1;
    }
    size_t hi = lo + step < nb ? lo + step : nb;
    lo++;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void intersect_sorted(refvec *a, const uint32_t *b, size_t nb) {
    size_t j = 0, w = 0;
    for (size_t i = 0; i < a->n && j < nb; i++) {
        uint32_t x = a->v[i];
        if (b[j] < x && (j = gallop(b, nb, j, x)) == nb)
            break;
        if (b[j] == x) {
            a->v[w++] = x;
            j++;
        }
    }
    a->n = w;
}

void refvec_intersect(refvec *a, const refvec *b) {
    intersect_sorted(a, b->v, b->n);
}

/* The postings of an equality matcher with a value, in place (no copy):
 * 1 and *out, or 0 when no series has that label value. */
static int eq_postings(head *h, const matcher *m, const plist **out) {
    const char *iname = head_intern_find(h, m->name);
    pname *pn = iname ? index_name(h, iname, 0) : NULL;
    const char *iv = pn ? head_intern_find(h, m->value) : NULL;
    pvalue *pv = iv ? index_value(pn, iv, 0) : NULL;
    *out = pv && pv->p.n ? &pv->p : NULL;
    return *out != NULL;
}

static void subtract(refvec *a, const refvec *b) {
    size_t i = 0, j = 0, w = 0;
    while (i < a->n) {
        while (j < b->n && b->v[j] < a->v[i])
            j++;
        if (j < b->n && b->v[j] == a->v[i]) {
            i++;
            continue;
        }
        a->v[w++] = a->v[i++];
    }
    a->n = w;
}

int head_postings(head *h, const matcher *ms, size_t nms, match_guard *g, refvec *out, kiln_err *err) {
    refvec tmp = {0};
    int have = 0, rc = 0;
    out->n = 0;
    lockrank_rdlock(&h->index_lock, LOCK_RANK_INDEX);
    /* Equality matchers first, without copying their lists: the shortest
     * is copied and the others intersected with it in place. */
    const plist *eq[16];
    size_t neq = 0, shortest = 0;
    for (size_t i = 0; i < nms && neq < 16; i++) {
        if (ms[i].type != MATCH_EQ || !ms[i].value[0])
            continue;
        if (!eq_postings(h, &ms[i], &eq[neq]))
            goto done;
        if (eq[neq]->n < eq[shortest]->n)
            shortest = neq;
        neq++;
    }
    if (neq) {
        if ((rc = refvec_append(out, eq[shortest]->v, eq[shortest]->n)) != 0)
            goto nomem;
        for (size_t k = 0; k < neq && out->n; k++)
            if (k != shortest)
                intersect_sorted(out, eq[k]->v, eq[k]->n);
        have = 1;
        if (out->n == 0)
            goto done;
    }
    for (size_t i = 0, seen = 0; i < nms && rc == 0; i++) {
        if (matcher_matches_empty(&ms[i]))
            continue;
        if (ms[i].type == MATCH_EQ && seen < neq) {
            seen++;
            continue;
        }
        if ((rc = values_union(h, &ms[i], 1, have ? &tmp : out, g, err)) != 0)
            break;
        if (have)
            refvec_intersect(out, &tmp);
        have = 1;
        if (out->n == 0)
            goto done;
    }
    for (size_t i = 0; i < nms && rc == 0; i++) {
        if (!matcher_matches_empty(&ms[i]))
            continue;
        if (!have) {
            if ((rc = refvec_append(out, h->all.v, h->all.n)) != 0)
                goto nomem;
            have = 1;
        }
        if ((rc = values_union(h, &ms[i], 0, &tmp, g, err)) != 0)
            break;
        subtract(out, &tmp);
    }
    if (!have && rc == 0 && (rc = refvec_append(out, h->all.v, h->all.n)) != 0)
        goto nomem;
done:
    lockrank_rwunlock(&h->index_lock, LOCK_RANK_INDEX, 1);
    refvec_free(&tmp);
    return rc;
nomem:
    rc = kiln_err_set(err, rc, "head: out of memory selecting series");
    goto done;
}

int head_label_names(head *h, int (*fn)(const char *name, void *data), void *data) {
    int rc = 0;
    lockrank_rdlock(&h->index_lock, LOCK_RANK_INDEX);
    for (size_t i = 0; i < h->nnames_slots && rc == 0; i++)
        if (h->names[i].name && h->names[i].n)
            rc = fn(h->names[i].name, data);
    lockrank_rwunlock(&h->index_lock, LOCK_RANK_INDEX, 1);
    return rc;
}

int head_label_values(head *h, const char *name, int (*fn)(const char *value, void *data), void *data) {
    int rc = 0;
    const char *iname = head_intern_find(h, name);
    if (!iname)
        return 0;
    lockrank_rdlock(&h->index_lock, LOCK_RANK_INDEX);
    pname *pn = index_name(h, iname, 0);
    for (size_t i = 0; pn && i < pn->nslots && rc == 0; i++)
        if (pn->slots[i].value && pn->slots[i].p.n)
            rc = fn(pn->slots[i].value, data);
    lockrank_rwunlock(&h->index_lock, LOCK_RANK_INDEX, 1);
    return rc;
}

int head_label_values_among(head *h, const char *name, const refvec *among,
                            int (*fn)(const char *value, uint32_t ref, void *data), void *data) {
    const char *iname = among->n ? head_intern_find(h, name) : NULL;
    if (!iname)
        return 0;
    const uint32_t *a = among->v;
    uint32_t lo = a[0], hi = a[among->n - 1];
    /* a large set as a bitmap over its range when that is dense enough:
     * each value's postings are then tested ref by ref */
    uint64_t *bits = NULL;
    if (among->n >= 4096 && (hi - lo) / 256 <= among->n) {
        if (!(bits = calloc((size_t)(hi - lo) / 64 + 1, sizeof *bits)))
            return KILN_ENOMEM;
        for (size_t i = 0; i < among->n; i++)
            bits[(a[i] - lo) >> 6] |= 1ULL << ((a[i] - lo) & 63);
    }
    int rc = 0;
    lockrank_rdlock(&h->index_lock, LOCK_RANK_INDEX);
    pname *pn = index_name(h, iname, 0);
    for (size_t i = 0; pn && i < pn->nslots && rc >= 0; i++) {
        const pvalue *pv = &pn->slots[i];
        const uint32_t *p = pv->p.v;
        size_t n = pv->p.n;
        if (!pv->value || !n || p[n - 1] < lo || p[0] > hi)
            continue;
        rc = 0;
        if (bits) {
            for (size_t k = gallop(p, n, 0, lo); k < n && p[k] <= hi && rc == 0; k++)
                if (bits[(p[k] - lo) >> 6] >> ((p[k] - lo) & 63) & 1)
                    rc = fn(pv->value, p[k], data);
            continue;
        }
        for (size_t j = 0, k = 0; j < among->n && k < n && rc == 0;) {
            if (a[j] < p[k])
                j = gallop(a, among->n, j, p[k]);
            else if (p[k] < a[j])
                k = gallop(p, n, k, a[j]);
            else
                rc = fn(pv->value, p[k++], data), j++;
        }
    }
    lockrank_rwunlock(&h->index_lock, LOCK_RANK_INDEX, 1);
    free(bits);
    return rc < 0 ? rc : 0;
}

/* ---- truncation ------------------------------------------------------------ */

static int cmp_u32_key(const void *k, const void *e) {
    uint32_t a = *(const uint32_t *)k, b = *(const uint32_t *)e;
    return a < b ? -1 : a > b;
}

/* Removes the dead references (sorted) from a postings list. */
static void plist_filter(plist *p, const refvec *dead) {
    uint32_t w = 0;
    for (uint32_t i = 0; i < p->n; i++)
        if (!bsearch(&p->v[i], dead->v, dead->n, sizeof *dead->v, cmp_u32_key))
            p->v[w++] = p->v[i];
    p->n = w;
}

int head_truncate(head *h, int64_t mint, head_truncate_stats *st) {
    refvec dead = {0};
    int rc = 0;
    memset(st, 0, sizeof *st);
    for (int si = 0; si < SHARDS; si++) {
        shard *sh = &h->shards[si];
        lockrank_wrlock(&sh->lock, LOCK_RANK_SHARD);
        /*
         * Every slot once, from the one after an empty slot round to that
         * slot, which stays empty (nothing is inserted meanwhile).  A
         * deletion shifts series back from the slots ahead, never across an
         * empty slot: none lands behind the current slot (to be skipped) or
         * wraps round from the start (to be seen twice).  After a deletion
         * the same slot is looked at again, for the series shifted into it.
         */
        size_t mask = sh->nb - 1, e = 0;
        while (e < sh->nb && sh->t[e].s)
            e++;
        for (size_t step = 1; step <= sh->nb;) {
            size_t i = (e + step) & mask;
            hseries *s = sh->t[i].s;
            if (!s) {
                step++;
                continue;
            }
            pthread_mutex_t *mu = stripe_of(h, s->ref);
            lockrank_mutex_lock(mu, LOCK_RANK_STRIPE);
            uint32_t k = 0;
            while (k < s->nclosed && s->closed[k].maxt < mint)
                k++;
            if (k) {
                memmove(s->closed, s->closed + k, (s->nclosed - k) * sizeof *s->closed);
                s->nclosed -= k;
                st->chunks_removed += k;
                __atomic_sub_fetch(&h->nchunks, k, __ATOMIC_RELAXED);
            }
            int idle = s->maxt < mint, hleft = 0;
            if (idle && xorchunk_count(&s->open)) {
                xorchunk_free(&s->open);
                st->chunks_removed++;
                __atomic_sub_fetch(&h->nchunks, 1, __ATOMIC_RELAXED);
            }
            if (s->hflags & HS_HIST) {
                st->chunks_removed += headhist_truncate(&h->hist, s->ref, mint, idle, &hleft);
                if (!hleft)
                    __atomic_and_fetch(&s->hflags, (uint8_t)HS_OOO, __ATOMIC_RELAXED);
                else if (idle)
                    __atomic_and_fetch(&s->hflags, (uint8_t)~HS_HOPEN, __ATOMIC_RELAXED);
            }
            int remove = idle && s->nclosed == 0 && !hleft && !(s->hflags & HS_OOO);
            lockrank_mutex_unlock(mu, LOCK_RANK_STRIPE);
            if (!remove) {
                step++;
                continue;
            }
            if (refvec_append(&dead, &s->ref, 1) != 0) {
                rc = KILN_ENOMEM; /* keep it; the next truncation retries */
                step++;
                continue;
            }
            shard_delete_at(sh, i);
            ref_table_clear(h, s->ref);
            series_free(s);
            st->series_removed++;
            __atomic_sub_fetch(&h->nseries, 1, __ATOMIC_RELAXED);
        }
        lockrank_rwunlock(&sh->lock, LOCK_RANK_SHARD, 0);
    }
    if (dead.n) {
        qsort(dead.v, dead.n, sizeof *dead.v, cmp_u32);
        lockrank_wrlock(&h->index_lock, LOCK_RANK_INDEX);
        for (size_t i = 0; i < h->nnames_slots; i++) {
            pname *pn = &h->names[i];
            if (!pn->name)
                continue;
            for (size_t j = 0; j < pn->nslots; j++)
                if (pn->slots[j].value)
                    plist_filter(&pn->slots[j].p, &dead);
        }
        plist_filter(&h->all, &dead);
        lockrank_rwunlock(&h->index_lock, LOCK_RANK_INDEX, 0);
    }
    refvec_free(&dead);
    atomic_max64(&h->min_valid, mint);
    atomic_max64(&h->mint, mint);
    return rc;
}
