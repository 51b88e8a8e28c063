/*
 * exemplars.c - exemplar storage (--enable-feature=exemplar-storage), the
 * design of Prometheus' CircularExemplarStorage: one circular buffer of
 * `storage.exemplars.max_exemplars` exemplars shared by all series, each
 * series' exemplars linked oldest to newest through the buffer, an index of
 * the series that have some.  A new exemplar takes the oldest slot of the
 * buffer (unlinking it from its series, and the series from the index when it
 * was its last).  Appenders stage exemplars (storage__exbatch_*, below):
 * checked against the store when staged, written to the WAL in the commit's
 * write after the samples (a type 4 record, walrec.h), added to the store
 * once logged; the replay (replay.c) adds the WAL's back at start, so they
 * survive a restart as in Prometheus.
 *
 * Rules of an add, as Prometheus': label names and values of the exemplar at
 * most 128 code points (KILN_EINVAL); equal to the series' newest exemplar
 * (labels, value, and timestamp when either has one) is a duplicate (KILN_EEXIST,
 * a no-op); a timestamp not after the newest one's is out of order
 * (KILN_EORDER).
 *
 * Callers: storage.c's appenders (staging and commits, on workers),
 * replay.c and api/remotewrite.c (adds),
 * api/exemplars.c (selects, on lookup threads), cmd/kiln (resize on a
 * reload).  Threading: one read-write lock; selects run their callback under
 * the read lock.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage_int.h"
#include "storage/walrec.h"

#define EXEMPLAR_MAX_RUNES 128

typedef struct ex_slot {
    label *ls; /* one allocation with the strings */
    size_t n;
    double v;
    int64_t t;
    int has_ts;
    int32_t next;   /* the series' next slot, -1 at its newest */
    int32_t series; /* -1: empty slot */
} ex_slot;

typedef struct ex_series {
    label *ls; /* one allocation with the strings; NULL: free entry */
    size_t n;
    uint64_t hash;
    int32_t oldest, newest;
} ex_series;

struct exemplar_store {
    pthread_rwlock_t mu;
    ex_slot *slots;
    size_t cap, next;
    ex_series *ser;
    size_t nser, capser;
    int32_t *freeser; /* free entries of ser */
    size_t nfree, capfree;
    int32_t *idx; /* open addressing by hash: entry of ser, -1 empty */
    size_t capidx, nidx;
};

/* A copy of ls[0..n) and its strings in one allocation. */
static label *labels_block(const label *ls, size_t n) {
    size_t bytes = n * sizeof(label);
    for (size_t i = 0; i < n; i++)
        bytes += strlen(ls[i].name) + strlen(ls[i].value) + 2;
    label *out = malloc(bytes ? bytes : 1);
    if (out == NULL)
        return NULL;
    char *w = (char *)(out + n);
    for (size_t i = 0; i < n; i++) {
        size_t a = strlen(ls[i].name) + 1, b = strlen(ls[i].value) + 1;
        memcpy(w, ls[i].name, a);
        out[i].name = w;
        w += a;
        memcpy(w, ls[i].value, b);
        out[i].value = w;
        w += b;
    }
    return out;
}

static size_t runes(const char *s) {
    size_t r = 0;
    for (; *s; s++)
        r += ((unsigned char)*s & 0xc0) != 0x80;
    return r;
}

static int labels_equal(const label *a, size_t na, const label *b, size_t nb) {
    return na == nb && labels_cmp(a, na, b, nb) == 0;
}

/* ---- the series index ----------------------------------------------------- */

static int32_t idx_find(const exemplar_store *es, uint64_t h, const label *ls, size_t n) {
    if (es->capidx == 0)
        return -1;
    for (size_t k = h & (es->capidx - 1); es->idx[k] >= 0; k = (k + 1) & (es->capidx - 1)) {
        const ex_series *s = &es->ser[es->idx[k]];
        if (s->hash == h && labels_equal(s->ls, s->n, ls, n))
            return es->idx[k];
    }
    return -1;
}

static void idx_put(int32_t *idx, size_t cap, const ex_series *ser, int32_t e) {
    size_t k = ser[e].hash & (cap - 1);
    while (idx[k] >= 0)
        k = (k + 1) & (cap - 1);
    idx[k] = e;
}

KILN_MUST_CHECK static int idx_grow(exemplar_store *es) {
    if (2 * (es->nidx + 1) <= es->capidx)
        return 0;
    size_t cap = es->capidx ? es->capidx * 2 : 64;
    int32_t *idx = malloc(cap * sizeof *idx);
    if (idx == NULL)
        return KILN_ENOMEM;
    memset(idx, 0xff, cap * sizeof *idx);
    for (size_t k = 0; k < es->capidx; k++)
        if (es->idx[k] >= 0)
            idx_put(idx, cap, es->ser, es->idx[k]);
    free(es->idx);
    es->idx = idx;
    es->capidx = cap;
    return 0;
}

/* Removes series entry e from the index (backward-shift deletion) and frees it. */
static void series_drop(exemplar_store *es, int32_t e) {
    size_t mask = es->capidx - 1, k = es->ser[e].hash & mask;
    while (es->idx[k] != e)
        k = (k + 1) & mask;
    for (size_t j = (k + 1) & mask; es->idx[j] >= 0; j = (j + 1) & mask) {
        size_t home = es->ser[es->idx[j]].hash & mask;
        /* move idx[j] into the hole at k when its home is not in (k, j] */
        if ((j > k && (home <= k || home > j)) || (j < k && (home <= k && home > j))) {
            es->idx[k] = es->idx[j];
            k = j;
        }
    }
    es->idx[k] = -1;
    es->nidx--;
    free(es->ser[e].ls);
    es->ser[e].ls = NULL;
    es->freeser[es->nfree++] = e; /* room: capfree >= capser */
}

/* ---- the store ------------------------------------------------------------ */

static void slot_clear(exemplar_store *es, size_t i) {
    ex_slot *sl = &es->slots[i];
    if (sl->series < 0)
        return;
    ex_series *s = &es->ser[sl->series];
    /* the buffer's oldest slot is its series' oldest */
    s->oldest = sl->next;
    if (s->oldest < 0)
        series_drop(es, sl->series);
    free(sl->ls);
    sl->ls = NULL;
    sl->series = -1;
}

exemplar_store *exemplar_store_new(size_t max) {
    exemplar_store *es = calloc(1, sizeof *es);
    if (es == NULL)
        return NULL;
    pthread_rwlock_init(&es->mu, NULL);
    if (max > 0 && exemplar_store_resize(es, max) != 0) {
        exemplar_store_free(es);
        return NULL;
    }
    return es;
}

void exemplar_store_free(exemplar_store *es) {
    if (es == NULL)
        return;
    for (size_t i = 0; i < es->cap; i++)
        free(es->slots[i].ls);
    for (size_t i = 0; i < es->nser; i++)
        free(es->ser[i].ls);
    free(es->slots);
    free(es->ser);
    free(es->freeser);
    free(es->idx);
    pthread_rwlock_destroy(&es->mu);
    free(es);
}

/* Appends to the buffer's next slot (room known). */
static void put(exemplar_store *es, int32_t sid, label *ls, size_t n, double v, int64_t t, int has_ts) {
    slot_clear(es, es->next);
    ex_slot *sl = &es->slots[es->next];
    *sl = (ex_slot){ls, n, v, t, has_ts, -1, sid};
    ex_series *s = &es->ser[sid];
    if (s->newest >= 0)
        es->slots[s->newest].next = (int32_t)es->next;
    else
        s->oldest = (int32_t)es->next;
    s->newest = (int32_t)es->next;
    es->next = (es->next + 1) % es->cap;
}

static int label_name_cmp(const void *a, const void *b) {
    return strcmp(((const label *)a)->name, ((const label *)b)->name);
}

static int sorted(const label *ls, size_t n) {
    for (size_t i = 1; i < n; i++)
        if (strcmp(ls[i - 1].name, ls[i].name) > 0)
            return 0;
    return 1;
}

/* KILN_EINVAL when e's labels are over 128 code points. */
KILN_MUST_CHECK static int check_runes(const exemplar *e, kiln_err *err) {
    size_t r = 0;
    for (size_t i = 0; i < e->n; i++)
        r += runes(e->ls[i].name) + runes(e->ls[i].value);
    if (r > EXEMPLAR_MAX_RUNES)
        return kiln_err_set(err, KILN_EINVAL, "exemplar label set is longer than %d characters",
                            EXEMPLAR_MAX_RUNES);
    return 0;
}

/* e (labels ls[0..e->n), sorted) after the series' newest exemplar nw: 0,
 * KILN_EEXIST when it repeats it (Prometheus' Exemplar.Equals: the same
 * labels and value, and the same time when either has one), KILN_EORDER
 * when not after it. */
static int versus_newest(const exemplar *nw, const label *ls, const exemplar *e, kiln_err *err) {
    if ((!(nw->has_ts || e->has_ts) || nw->t == e->t) && labels_equal(nw->ls, nw->n, ls, e->n) &&
        (nw->v == e->v || (nw->v != nw->v && e->v != e->v)))
        return KILN_EEXIST;
    if (e->t <= nw->t)
        return kiln_err_set(err, KILN_EORDER, "out of order exemplar");
    return 0;
}

static exemplar slot_exemplar(const ex_slot *sl) {
    return (exemplar){sl->ls, sl->n, sl->v, sl->t, sl->has_ts};
}

int exemplar_add(exemplar_store *es, const label *sls_in, size_t ns, const exemplar *e, kiln_err *err) {
    if (check_runes(e, err) != 0)
        return KILN_EINVAL;
    /* both label sets sorted by name, as the API writes them (a sender's may not be) */
    label *ls = labels_block(e->ls, e->n);
    label *tmp = NULL;
    if (ls == NULL)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    qsort(ls, e->n, sizeof *ls, label_name_cmp);
    if (!sorted(sls_in, ns)) {
        if ((tmp = malloc(ns * sizeof *tmp)) == NULL) {
            free(ls);
            return kiln_err_set(err, KILN_ENOMEM, "out of memory");
        }
        memcpy(tmp, sls_in, ns * sizeof *tmp);
        qsort(tmp, ns, sizeof *tmp, label_name_cmp);
        sls_in = tmp;
    }
    uint64_t h = labels_hash(sls_in, ns);
    pthread_rwlock_wrlock(&es->mu);
    int rc = 0;
    if (es->cap == 0)
        goto out;
    int32_t s = idx_find(es, h, sls_in, ns);
    if (s >= 0) {
        exemplar nw = slot_exemplar(&es->slots[es->ser[s].newest]);
        if ((rc = versus_newest(&nw, ls, e, err)) != 0)
            goto out;
    }
    if (s < 0) {
        label *sls = NULL;
        if (idx_grow(es) != 0 ||
            (es->nfree == 0 &&
             (array_grow((void **)&es->ser, &es->capser, es->nser + 1, sizeof *es->ser) != 0 ||
              array_grow((void **)&es->freeser, &es->capfree, es->capser, sizeof *es->freeser) != 0)) ||
            (sls = labels_block(sls_in, ns)) == NULL) {
            rc = kiln_err_set(err, KILN_ENOMEM, "out of memory");
            goto out;
        }
        s = es->nfree ? es->freeser[--es->nfree] : (int32_t)es->nser++;
        es->ser[s] = (ex_series){sls, ns, h, -1, -1};
        idx_put(es->idx, es->capidx, es->ser, s);
        es->nidx++;
    }
    put(es, s, ls, e->n, e->v, e->t, e->has_ts);
    ls = NULL;
out:
    pthread_rwlock_unlock(&es->mu);
    free(ls);
    free(tmp);
    return rc;
}

int exemplar_store_resize(exemplar_store *es, size_t max) {
    if (max > INT32_MAX)
        max = INT32_MAX;
    pthread_rwlock_wrlock(&es->mu);
    if (max == es->cap) {
        pthread_rwlock_unlock(&es->mu);
        return 0;
    }
    ex_slot *old = es->slots;
    size_t ocap = es->cap, onext = es->next;
    ex_slot *slots = max ? malloc(max * sizeof *slots) : NULL;
    if (max && slots == NULL) {
        pthread_rwlock_unlock(&es->mu);
        return KILN_ENOMEM;
    }
    for (size_t i = 0; i < max; i++)
        slots[i] = (ex_slot){.series = -1, .next = -1};
    /* every series starts over; the newest exemplars that fit are added again, oldest first */
    for (size_t i = 0; i < es->nser; i++)
        if (es->ser[i].ls != NULL)
            es->ser[i].oldest = es->ser[i].newest = -1;
    es->slots = slots;
    es->cap = max;
    es->next = 0;
    size_t keep = ocap < max ? ocap : max;
    for (size_t k = ocap - keep; k < ocap; k++) {
        ex_slot *sl = &old[(onext + k) % ocap];
        if (sl->series < 0)
            continue;
        put(es, sl->series, sl->ls, sl->n, sl->v, sl->t, sl->has_ts);
        sl->series = -1;
        sl->ls = NULL;
    }
    for (size_t i = 0; i < ocap; i++)
        free(old[i].ls);
    free(old);
    /* series left without exemplars go */
    for (size_t i = 0; i < es->nser; i++)
        if (es->ser[i].ls != NULL && es->ser[i].oldest < 0)
            series_drop(es, (int32_t)i);
    pthread_rwlock_unlock(&es->mu);
    return 0;
}

size_t exemplar_store_size(exemplar_store *es, size_t *nseries) {
    pthread_rwlock_rdlock(&es->mu);
    size_t n = 0;
    for (size_t i = 0; i < es->cap; i++)
        n += es->slots[i].series >= 0;
    if (nseries)
        *nseries = es->nidx;
    pthread_rwlock_unlock(&es->mu);
    return n;
}

/* Whether the series' labels match every matcher of the set. */
static int set_matches(const label *ls, size_t n, const matcher *ms, size_t nms) {
    for (size_t i = 0; i < nms; i++) {
        const char *v = labels_get(ls, n, ms[i].name);
        if (!matcher_matches(&ms[i], v ? v : ""))
            return 0;
    }
    return 1;
}

int exemplar_select(exemplar_store *es, int64_t mint, int64_t maxt, const exemplar_matchers *sets,
                    size_t nsets, exemplar_series_fn fn, void *ctx) {
    pthread_rwlock_rdlock(&es->mu);
    int rc = 0;
    exemplar *hits = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < es->nser && rc == 0; i++) {
        const ex_series *s = &es->ser[i];
        if (s->ls == NULL)
            continue;
        int hit = 0;
        for (size_t k = 0; k < nsets && !hit; k++)
            hit = set_matches(s->ls, s->n, sets[k].ms, sets[k].nms);
        if (!hit)
            continue;
        size_t n = 0;
        for (int32_t j = s->oldest; j >= 0; j = es->slots[j].next) {
            const ex_slot *sl = &es->slots[j];
            if (sl->t > maxt)
                break;
            if (sl->t < mint)
                continue;
            if (array_grow((void **)&hits, &cap, n + 1, sizeof *hits) != 0) {
                rc = KILN_ENOMEM;
                break;
            }
            hits[n++] = slot_exemplar(sl);
        }
        if (rc == 0 && n > 0)
            rc = fn(ctx, s->ls, s->n, hits, n);
    }
    pthread_rwlock_unlock(&es->mu);
    free(hits);
    return rc;
}

/* ---- an appender's exemplars (storage_int.h) ------------------------------ */

struct exbatch_entry {
    const hseries *s;
    label *ls; /* sorted, in the batch's arena */
    exemplar e;
};

int storage__exbatch_add(exbatch *b, exemplar_store *es, const hseries *hs, const exemplar *e,
                         kiln_err *err) {
    if (es->cap == 0) /* storing turned off by a reload */
        return 0;
    if (check_runes(e, err) != 0)
        return KILN_EINVAL;
    if (!b->mem_init) {
        arena_init(&b->mem, 0);
        b->mem_init = 1;
    }
    label *ls = arena_alloc_nz(&b->mem, (e->n ? e->n : 1) * sizeof *ls);
    if (!ls || array_grow((void **)&b->v, &b->cap, b->n + 1, sizeof *b->v) != 0)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    for (size_t i = 0; i < e->n; i++) {
        ls[i].name = arena_strndup(&b->mem, e->ls[i].name, strlen(e->ls[i].name));
        ls[i].value = arena_strndup(&b->mem, e->ls[i].value, strlen(e->ls[i].value));
        if (!ls[i].name || !ls[i].value)
            return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    }
    qsort(ls, e->n, sizeof *ls, label_name_cmp);
    /* against the series' newest: the one staged just before, or the store's */
    int rc = 0;
    if (b->n && b->v[b->n - 1].s == hs) {
        rc = versus_newest(&b->v[b->n - 1].e, ls, e, err);
    } else {
        size_t ns;
        const label *sls = hseries_labels(hs, &ns);
        pthread_rwlock_rdlock(&es->mu);
        int32_t s = es->cap ? idx_find(es, labels_hash(sls, ns), sls, ns) : -1;
        if (s >= 0) {
            exemplar nw = slot_exemplar(&es->slots[es->ser[s].newest]);
            rc = versus_newest(&nw, ls, e, err);
        }
        pthread_rwlock_unlock(&es->mu);
    }
    if (rc)
        return rc;
    b->v[b->n++] = (exbatch_entry){hs, ls, {ls, e->n, e->v, e->t, e->has_ts}};
    return 0;
}

int storage__exbatch_encode(const exbatch *b, buf *out) {
    if (b->n == 0)
        return 0;
    size_t nl = 0;
    for (size_t i = 0; i < b->n; i++)
        nl += b->v[i].e.n;
    walrec_exemplar *we = malloc(b->n * sizeof *we);
    walrec_label *wl = malloc((nl ? nl : 1) * sizeof *wl);
    int rc = KILN_ENOMEM;
    if (we && wl) {
        size_t k = 0;
        for (size_t i = 0; i < b->n; i++) {
            const exemplar *e = &b->v[i].e;
            we[i] = (walrec_exemplar){hseries_ref(b->v[i].s), e->t, e->v, wl + k, e->n};
            for (size_t j = 0; j < e->n; j++, k++)
                wl[k] = (walrec_label){e->ls[j].name, strlen(e->ls[j].name), e->ls[j].value,
                                       strlen(e->ls[j].value)};
        }
        rc = walrec_encode_exemplars(out, we, b->n);
    }
    free(we);
    free(wl);
    return rc;
}

size_t storage__exbatch_commit(const exbatch *b, exemplar_store *es) {
    size_t added = 0;
    for (size_t i = 0; i < b->n; i++) {
        size_t ns;
        const label *sls = hseries_labels(b->v[i].s, &ns);
        kiln_err e;
        added += exemplar_add(es, sls, ns, &b->v[i].e, &e) == 0;
    }
    return added;
}

void storage__exbatch_free(exbatch *b) {
    if (b->mem_init)
        arena_free(&b->mem);
    free(b->v);
    memset(b, 0, sizeof *b);
}
