/*
 * querier.c - reading the storage back (storage.h's querier): selects by
 * matchers over the head and the blocks, merged into one sorted series set
 * whose samples are copied out, and label name / value lookups.
 *
 * Called by query/ (the PromQL engine), api/ (series, labels, remote read,
 * federation) and the rules, through storage.h.
 *
 * A querier is a time range fixed when it opens: the head's and the
 * blocks' newest time then bounds it, so what is appended later stays
 * invisible.  Each call holds the gc read lock for its duration, so head
 * truncation and block list changes wait for it, and copies what it returns
 * (labels, samples, strings) into memory the caller owns before releasing
 * it.  Deleted ranges (tombstones) are left out of the head's samples here
 * and of the blocks' in block_select.  A guard set on the querier (the
 * query's deadline and cancellation) is checked while the matchers run over
 * label values and while series are copied; the matchers' errors (a regex
 * over PCRE2's limits) come back from the select.
 *
 * Label lookups with matchers go through the same postings: label values
 * walk the asked label's value postings against the matched set (a value
 * settled at its first visible series), label names read the matched
 * series only until every name is met; neither copies a series' labels.
 *
 * Threading: any thread; one querier used by one thread at a time.  A
 * select decodes the head's series on the parfor pool's helpers too (see
 * decode_head), which only read the head under the caller's gc lock.
 */
#include <stdlib.h>
#include <string.h>

#include "storage/storage_int.h"

struct querier {
    storage *st;
    int64_t mint, maxt;
    match_guard guard; /* checked while matching and copying; zeroed: none */
};

int storage_querier(storage *s, int64_t mint, int64_t maxt, querier **out, kiln_err *err) {
    querier *q = calloc(1, sizeof *q);
    if (!q)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    int64_t hmin, hmax;
    head_time_range(s->h, &hmin, &hmax);
    lockrank_rdlock(&s->gc, LOCK_RANK_GC);
    for (size_t i = 0; i < s->nblocks; i++)
        if (block_get_meta(s->blocks[i])->maxt - 1 > hmax)
            hmax = block_get_meta(s->blocks[i])->maxt - 1;
    lockrank_rwunlock(&s->gc, LOCK_RANK_GC, 1);
    q->st = s;
    q->mint = mint;
    q->maxt = maxt < hmax ? maxt : hmax; /* what is appended from now on stays invisible */
    *out = q;
    return 0;
}

void querier_set_guard(querier *q, const match_guard *g) {
    if (g)
        q->guard = *g;
    else
        memset(&q->guard, 0, sizeof q->guard);
    q->guard.work = 0;
}

void querier_close(querier *q) {
    free(q);
}

void series_set_free(series_set *set) {
    if (!set)
        return;
    arena_free(&set->mem);
    memset(set, 0, sizeof *set);
}

void str_list_free(str_list *l) {
    if (!l)
        return;
    arena_free(&l->mem);
    memset(l, 0, sizeof *l);
}

/* Prometheus' text for a select over select_hints.max_samples. */
#define TOO_MANY_SAMPLES "query processing would load too many samples into memory in query execution"

static int series_cmp(const void *a, const void *b) {
    const series *x = a, *y = b;
    return labels_cmp(x->ls, x->nls, y->ls, y->nls);
}

KILN_MUST_CHECK static int select_locked(querier *q, const matcher *ms, size_t nms, const select_hints *h,
                                         series_set *out, kiln_err *err);

int querier_select(querier *q, const matcher *ms, size_t nms, const select_hints *h, series_set *out,
                   kiln_err *err) {
    lockrank_rdlock(&q->st->gc, LOCK_RANK_GC);
    int rc = select_locked(q, ms, nms, h, out, err);
    lockrank_rwunlock(&q->st->gc, LOCK_RANK_GC, 1);
    return rc;
}

/* Collects a block's series into a selection (labels copied: the result
 * outlives the querier). */
typedef struct bsel {
    series_set *out;
    size_t *cap;
    size_t total, max;
    int over;
} bsel;

static int block_series(void *ctx, const label *ls, size_t nls, const sample *smp, size_t n,
                        const hsample *hs, size_t nh) {
    bsel *b = ctx;
    series_set *out = b->out;
    b->total += n + nh;
    if (b->max && b->total > b->max) {
        b->over = 1;
        return KILN_ELIMIT;
    }
    if (array_grow((void **)&out->v, b->cap, out->n + 1, sizeof *out->v) != 0)
        return KILN_ENOMEM;
    series *se = &out->v[out->n];
    if (!(se->ls = labels_copy(&out->mem, ls, nls)))
        return KILN_ENOMEM;
    se->nls = nls;
    se->s = (sample *)smp;
    se->n = n;
    se->hs = (hsample *)hs;
    se->nh = nh;
    out->n++;
    return 0;
}

/* Merges the time-sorted arrays a and b (na, nb elements of size sz, each
 * starting with its int64_t time) into dst; a time in both is kept once,
 * b's.  The count merged. */
static size_t merge_by_time(void *dst, const void *a, size_t na, const void *b, size_t nb, size_t sz) {
    const char *x = a, *y = b;
    char *d = dst;
    size_t i = 0, j = 0, k = 0;
    while (i < na || j < nb) {
        int64_t tx = 0, ty = 0;
        if (i < na)
            memcpy(&tx, x + i * sz, sizeof tx);
        if (j < nb)
            memcpy(&ty, y + j * sz, sizeof ty);
        const char *from;
        if (j >= nb || (i < na && tx < ty)) {
            from = x + i++ * sz;
        } else {
            from = y + j++ * sz;
            i += i < na && tx == ty; /* the same time in both: once */
        }
        memcpy(d + k++ * sz, from, sz);
    }
    return k;
}

/* Joins neighbours with the same labels (a series in blocks and the head):
 * samples merged by time, a time present twice kept once. */
KILN_MUST_CHECK static int merge_same(series_set *out) {
    size_t w = 0;
    for (size_t i = 0; i < out->n; i++) {
        if (w == 0 || series_cmp(&out->v[w - 1], &out->v[i]) != 0) {
            out->v[w++] = out->v[i];
            continue;
        }
        series *a = &out->v[w - 1];
        const series *b = &out->v[i];
        sample *m = arena_alloc_nz(&out->mem, (a->n + b->n + 1) * sizeof *m);
        hsample *hm = arena_alloc_nz(&out->mem, (a->nh + b->nh + 1) * sizeof *hm);
        if (!m || !hm)
            return KILN_ENOMEM;
        a->n = merge_by_time(m, a->s, a->n, b->s, b->n, sizeof *m);
        a->s = m;
        a->nh = merge_by_time(hm, a->hs, a->nh, b->hs, b->nh, sizeof *hm);
        a->hs = a->nh ? hm : NULL;
    }
    out->n = w;
    return 0;
}

/*
 * The head's series of a selection, v[0..n) with the head's interned label
 * strings, sorted by labels and given copies of them in mem (the result
 * outlives a querier; head labels live as long as the head).  The distinct
 * strings, few against the series (names, instances, ...), are each copied
 * once, sorted and laid out in one block in that order, so two copies
 * compare as their addresses do: the series sort compares pointers, not
 * strings (strcmp was most of a select over 100,000 series).
 */
typedef struct strmap {
    const char **key, **val; /* interned -> copy; cap a power of two */
    size_t cap, n;
} strmap;

static size_t strmap_slot(const strmap *m, const char *k) {
    uintptr_t h = (uintptr_t)k * 0x9e3779b97f4a7c15ULL;
    size_t i = (size_t)(h >> 17) & (m->cap - 1);
    while (m->key[i] && m->key[i] != k)
        i = (i + 1) & (m->cap - 1);
    return i;
}

KILN_MUST_CHECK static int strmap_add(strmap *m, const char *k) {
    if (2 * (m->n + 1) > m->cap) {
        strmap g = {calloc(m->cap ? m->cap * 2 : 256, sizeof *g.key), NULL, m->cap ? m->cap * 2 : 256, 0};
        if (!g.key)
            return KILN_ENOMEM;
        for (size_t i = 0; i < m->cap; i++)
            if (m->key[i])
                g.key[strmap_slot(&g, m->key[i])] = m->key[i];
        g.n = m->n;
        free(m->key);
        *m = g;
    }
    size_t i = strmap_slot(m, k);
    if (!m->key[i]) {
        m->key[i] = k;
        m->n++;
    }
    return 0;
}

static int cmp_strp(const void *a, const void *b) { /* a NUL (C0 80) first, as Prometheus sorts */
    return str_nulcmp(*(const char *const *)a, *(const char *const *)b);
}

static int series_cmp_addr(const void *a, const void *b) {
    const series *x = a, *y = b;
    size_t n = x->nls < y->nls ? x->nls : y->nls;
    for (size_t i = 0; i < n; i++) {
        uintptr_t p = (uintptr_t)x->ls[i].name, q = (uintptr_t)y->ls[i].name;
        if (p == q)
            p = (uintptr_t)x->ls[i].value, q = (uintptr_t)y->ls[i].value;
        if (p != q)
            return p < q ? -1 : 1;
    }
    return x->nls < y->nls ? -1 : x->nls > y->nls;
}

KILN_MUST_CHECK static int head_series_sort_copy(series *v, size_t n, arena *mem) {
    strmap m = {0};
    const char **d = NULL;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        for (size_t j = 0; j < v[i].nls && rc == 0; j++)
            if ((rc = strmap_add(&m, v[i].ls[j].name)) == 0)
                rc = strmap_add(&m, v[i].ls[j].value);
    size_t nd = 0, total = 0;
    if (rc == 0 && !(d = malloc((m.n ? m.n : 1) * sizeof *d)))
        rc = KILN_ENOMEM;
    if (rc == 0 && !(m.val = calloc(m.cap, sizeof *m.val)))
        rc = KILN_ENOMEM;
    for (size_t i = 0; rc == 0 && i < m.cap; i++)
        if (m.key[i]) {
            d[nd++] = m.key[i];
            total += strlen(m.key[i]) + 1;
        }
    char *blk = rc == 0 ? arena_alloc_nz(mem, total ? total : 1) : NULL;
    if (rc == 0 && !blk)
        rc = KILN_ENOMEM;
    if (rc == 0) {
        qsort(d, nd, sizeof *d, cmp_strp);
        const char *prev = NULL;
        for (size_t i = 0; i < nd; i++) {
            if (prev && strcmp(prev, d[i]) == 0) { /* equal strings, one copy */
                m.val[strmap_slot(&m, d[i])] = prev;
                continue;
            }
            size_t len = strlen(d[i]) + 1;
            memcpy(blk, d[i], len);
            m.val[strmap_slot(&m, d[i])] = prev = blk;
            blk += len;
        }
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        label *ls = arena_alloc_nz(mem, (v[i].nls ? v[i].nls : 1) * sizeof *ls);
        if (!ls) {
            rc = KILN_ENOMEM;
            break;
        }
        for (size_t j = 0; j < v[i].nls; j++) {
            ls[j].name = m.val[strmap_slot(&m, v[i].ls[j].name)];
            ls[j].value = m.val[strmap_slot(&m, v[i].ls[j].value)];
        }
        v[i].ls = ls;
    }
    if (rc == 0)
        qsort(v, n, sizeof *v, series_cmp_addr);
    free(m.key);
    free(m.val);
    free(d);
    return rc;
}

/* Sample arrays of a selection live in its arena; decoded straight into it. */
static sample *arena_samples(void *ctx, size_t n) {
    return arena_alloc_nz(ctx, n * sizeof(sample));
}

/* The float samples of head series hs within [mint, maxt], into mem: its
 * chunks' and its out-of-order ones (ooo.h) merged, a time in both
 * answered with the in-order sample. */
KILN_MUST_CHECK static int head_floats(storage *s, hseries *hs, int64_t mint, int64_t maxt, arena *mem,
                                       sample **got, size_t *n) {
    int rc = head_series_samples(s->h, hs, mint, maxt, arena_samples, mem, got, n);
    sample *os, *m;
    size_t on;
    if (rc || !ooo_series_has(hs) || (rc = ooo_samples(s->ooo, hs, mint, maxt, mem, &os, &on)) != 0 || !on)
        return rc;
    if (!(m = arena_alloc_nz(mem, (*n + on) * sizeof *m)))
        return KILN_ENOMEM;
    *n = merge_by_time(m, os, on, *got, *n, sizeof *m);
    *got = m;
    return 0;
}

/* 1 when head series hs has a sample within [mint, maxt] that its
 * tombstones leave, 0 when not, or a negative error with err set (a
 * deleted range makes it decode the samples, into mem). */
KILN_MUST_CHECK static int head_visible(storage *s, hseries *hs, int64_t mint, int64_t maxt, arena *mem,
                                        kiln_err *err) {
    uint32_t ref = (uint32_t)hseries_ref(hs);
    size_t ndel;
    const tstone *del = tombstones_of(&s->hts, ref, &ndel);
    if (!ndel)
        return head_series_has_data(s->h, hs, mint, maxt) || ooo_has_data(s->ooo, hs, mint, maxt);
    sample *got = NULL;
    hsample *hgot = NULL;
    size_t n = 0, nh = 0;
    int rc = head_floats(s, hs, mint, maxt, mem, &got, &n);
    if (rc == 0)
        rc = head_series_histograms(s->h, hs, mint, maxt, mem, &hgot, &nh);
    if (rc == KILN_ENOMEM)
        return kiln_err_set(err, rc, "out of memory selecting series");
    if (rc < 0)
        return kiln_err_set(err, rc, "reading series %u: corrupt chunk", ref);
    return tombstones_filter(del, ndel, got, n) + tombstones_filter_hist(del, ndel, hgot, nh) > 0;
}

/*
 * The head's part of a select is decoded in shards of its references, on
 * every core (util/parfor.c): each shard into an arena and a series array
 * of its own, joined in shard order after (the series are sorted by labels
 * next anyway).  The sample limit is a total all shards add to; the first
 * shard over it, or failing, makes the others stop.
 */
#define DECODE_SHARD_MIN 1024 /* references: fewer are decoded on the caller alone */

typedef struct dshard {
    const struct decode *d;
    size_t from, to; /* refs.v[from..to) */
    arena own;       /* the shard's memory (but shard 0's: the set's) */
    arena *mem;
    series *v;
    size_t n, cap;
    match_guard guard; /* a copy: its work counter is the shard's */
    int rc;
    kiln_err err;
} dshard;

typedef struct decode {
    storage *s;
    const refvec *refs;
    int64_t mint, maxt;
    const select_hints *h;
    size_t total; /* atomic: samples taken by all shards */
    int stop;     /* atomic: a shard failed */
    dshard *sh;
} decode;

static void decode_shard(void *ctx, size_t k) {
    decode *d = ctx;
    dshard *ds = &d->sh[k];
    storage *s = d->s;
    const select_hints *h = d->h;
    int rc = 0;
    for (size_t i = ds->from; i < ds->to && rc == 0; i++) {
        if ((rc = match_guard_tick(&ds->guard, 1, &ds->err)) != 0 ||
            __atomic_load_n(&d->stop, __ATOMIC_RELAXED))
            break;
        uint32_t ref = d->refs->v[i];
        hseries *hs = head_series(s->h, ref);
        if (!hs)
            continue;
        size_t n = 0, nh = 0, ndel;
        sample *got = NULL;
        hsample *hgot = NULL;
        const tstone *del = tombstones_of(&s->hts, ref, &ndel);
        if (h && h->labels_only) {
            if ((rc = head_visible(s, hs, d->mint, d->maxt, ds->mem, &ds->err)) != 1)
                continue; /* 0: not in range; < 0 ends the loop */
            rc = 0;
        } else {
            rc = head_floats(s, hs, d->mint, d->maxt, ds->mem, &got, &n);
            if (rc == 0)
                rc = head_series_histograms(s->h, hs, d->mint, d->maxt, ds->mem, &hgot, &nh);
            if (rc == KILN_ENOMEM)
                rc = kiln_err_set(&ds->err, rc, "out of memory selecting series");
            else if (rc < 0)
                rc = kiln_err_set(&ds->err, rc, "reading series %u: corrupt chunk", ref);
            if (rc < 0)
                break;
            n = tombstones_filter(del, ndel, got, n);
            nh = tombstones_filter_hist(del, ndel, hgot, nh);
            if (n == 0 && nh == 0)
                continue;
            size_t total = __atomic_add_fetch(&d->total, n + nh, __ATOMIC_RELAXED);
            if (h && h->max_samples && total > h->max_samples) {
                rc = kiln_err_set(&ds->err, KILN_ELIMIT, "%s", TOO_MANY_SAMPLES);
                break;
            }
        }
        if (array_grow((void **)&ds->v, &ds->cap, ds->n + 1, sizeof *ds->v) != 0) {
            rc = kiln_err_set(&ds->err, KILN_ENOMEM, "out of memory selecting series");
            break;
        }
        series *se = &ds->v[ds->n++];
        size_t nls;
        se->ls = (label *)hseries_labels(hs, &nls); /* copied once sorted */
        se->nls = nls;
        se->n = n;
        se->s = n ? got : NULL;
        se->nh = nh;
        se->hs = nh ? hgot : NULL;
    }
    ds->rc = rc;
    if (rc)
        __atomic_store_n(&d->stop, 1, __ATOMIC_RELAXED);
}

/* The head's series of refs with their samples in [mint, maxt] into out
 * (out->v grown from *cap; its arena holding the samples), in reference
 * order; *total the samples taken. */
KILN_MUST_CHECK static int decode_head(querier *q, const refvec *refs, int64_t mint, int64_t maxt,
                                       const select_hints *h, series_set *out, size_t *cap, size_t *total,
                                       kiln_err *err) {
    size_t nsh = parfor_width() > 1 ? refs->n / DECODE_SHARD_MIN : 1;
    if (nsh > 4 * parfor_width())
        nsh = 4 * parfor_width(); /* a few shards a thread: one slow shard does not hold the others */
    if (nsh < 1)
        nsh = 1;
    dshard *sh = calloc(nsh, sizeof *sh);
    if (!sh)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory selecting series");
    decode d = {q->st, refs, mint, maxt, h, 0, 0, sh};
    for (size_t k = 0; k < nsh; k++) {
        sh[k].d = &d;
        sh[k].from = refs->n * k / nsh;
        sh[k].to = refs->n * (k + 1) / nsh;
        arena_init(&sh[k].own, 0);
        sh[k].mem = k ? &sh[k].own : &out->mem;
        sh[k].guard = q->guard;
        sh[k].guard.work = 0;
    }
    if (mint <= maxt)
        parfor_run(nsh, decode_shard, &d);
    int rc = 0;
    for (size_t k = 0; k < nsh; k++) {
        if (sh[k].rc && !rc) {
            rc = sh[k].rc;
            *err = sh[k].err; /* the first shard's error in shard order */
        }
        if (!rc && sh[k].n) {
            if (array_grow((void **)&out->v, cap, out->n + sh[k].n, sizeof *out->v) != 0)
                rc = kiln_err_set(err, KILN_ENOMEM, "out of memory selecting series");
            else
                memcpy(out->v + out->n, sh[k].v, sh[k].n * sizeof *sh[k].v);
            out->n += rc ? 0 : sh[k].n;
        }
        arena_adopt(&out->mem, &sh[k].own);
        free(sh[k].v);
    }
    *total = d.total;
    free(sh);
    return rc;
}

KILN_MUST_CHECK static int select_locked(querier *q, const matcher *ms, size_t nms, const select_hints *h,
                                         series_set *out, kiln_err *err) {
    storage *s = q->st;
    refvec refs = {0};
    size_t total = 0, cap = 0;
    int rc;
    int64_t mint = h && h->mint > q->mint ? h->mint : q->mint;
    int64_t maxt = h && h->maxt < q->maxt ? h->maxt : q->maxt;
    memset(out, 0, sizeof *out);
    arena_init(&out->mem, 0);
    if ((rc = head_postings(s->h, ms, nms, &q->guard, &refs, err)) != 0)
        goto fail;
    if ((rc = decode_head(q, &refs, mint, maxt, h, out, &cap, &total, err)) != 0)
        goto fail;
    /* the head's series sorted and their labels copied */
    size_t from_head = out->n;
    if (from_head && head_series_sort_copy(out->v, from_head, &out->mem) != 0)
        goto nomem;
    /* the blocks' series, then one series per label set */
    if (mint <= maxt) {
        bsel bs = {out, &cap, total, h ? h->max_samples : 0, 0};
        for (size_t i = 0; i < s->nblocks; i++) {
            const block_meta *bm = block_get_meta(s->blocks[i]);
            if (bm->maxt <= mint || bm->mint > maxt)
                continue;
            rc = block_select(s->blocks[i], ms, nms, &q->guard, mint, maxt, h && h->labels_only, &out->mem,
                              block_series, &bs, err);
            if (bs.over)
                rc = kiln_err_set(err, KILN_ELIMIT, "%s", TOO_MANY_SAMPLES);
            if (rc == KILN_ENOMEM && !bs.over)
                goto nomem;
            if (rc)
                goto fail;
        }
    }
    /* the series array itself moves into the arena so series_set_free frees all */
    if (out->n) {
        series *v = arena_alloc(&out->mem, out->n * sizeof *v);
        if (!v)
            goto nomem;
        memcpy(v, out->v, out->n * sizeof *v);
        free(out->v);
        out->v = v;
        if (out->n > from_head) {
            qsort(out->v, out->n, sizeof *out->v, series_cmp);
            if ((rc = merge_same(out)) != 0)
                goto nomem;
        }
    } else {
        free(out->v);
        out->v = NULL;
    }
    refvec_free(&refs);
    return 0;
nomem:
    rc = kiln_err_set(err, KILN_ENOMEM, "out of memory selecting series");
fail:
    free(out->v);
    out->v = NULL;
    out->n = 0;
    arena_free(&out->mem);
    refvec_free(&refs);
    return rc;
}

typedef struct strs {
    const char **v;
    size_t n, cap;
} strs;

static int strs_add(const char *x, void *data) {
    strs *s = data;
    return array_grow((void **)&s->v, &s->cap, s->n + 1, sizeof *s->v) ? KILN_ENOMEM
                                                                       : ((s->v[s->n++] = x), 0);
}

static int cmp_str(const void *a, const void *b) { /* a NUL (C0 80) first, as Prometheus sorts */
    return str_nulcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts, deduplicates and copies into out. */
KILN_MUST_CHECK static int strs_finish(strs *s, str_list *out, kiln_err *err) {
    memset(out, 0, sizeof *out);
    arena_init(&out->mem, 0);
    if (s->n)
        qsort(s->v, s->n, sizeof *s->v, cmp_str);
    size_t w = 0;
    for (size_t i = 0; i < s->n; i++)
        if (w == 0 || strcmp(s->v[w - 1], s->v[i]) != 0)
            s->v[w++] = s->v[i];
    if (w) {
        out->v = arena_alloc(&out->mem, w * sizeof *out->v);
        if (!out->v)
            goto nomem;
        for (size_t i = 0; i < w; i++)
            if (!(out->v[i] = arena_strndup(&out->mem, s->v[i], strlen(s->v[i]))))
                goto nomem;
    }
    out->n = w;
    free(s->v);
    return 0;
nomem:
    free(s->v);
    arena_free(&out->mem);
    memset(out, 0, sizeof *out);
    return kiln_err_set(err, KILN_ENOMEM, "out of memory listing labels");
}

/*
 * A set of strings by content, open addressing: the label names or values
 * of many series repeat a few strings, so they are deduplicated as they come
 * and only the distinct ones are sorted (sorting every series' copies was
 * where a lookup over many series spent its time).
 */
typedef struct strset {
    const char **slot;
    size_t cap, n; /* cap a power of two, n <= cap / 2 */
} strset;

static uint64_t strset_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

/* Adds s (borrowed) when not there yet; KILN_ENOMEM. */
KILN_MUST_CHECK static int strset_add(strset *set, const char *s) {
    if (2 * (set->n + 1) > set->cap) {
        size_t nc = set->cap ? set->cap * 2 : 64;
        const char **ns = calloc(nc, sizeof *ns);
        if (!ns)
            return KILN_ENOMEM;
        for (size_t i = 0; i < set->cap; i++)
            if (set->slot[i]) {
                size_t j = strset_hash(set->slot[i]) & (nc - 1);
                while (ns[j])
                    j = (j + 1) & (nc - 1);
                ns[j] = set->slot[i];
            }
        free(set->slot);
        set->slot = ns;
        set->cap = nc;
    }
    size_t j = strset_hash(s) & (set->cap - 1);
    while (set->slot[j]) {
        if (strcmp(set->slot[j], s) == 0)
            return 0;
        j = (j + 1) & (set->cap - 1);
    }
    set->slot[j] = s;
    set->n++;
    return 0;
}

/*
 * A label lookup with matchers: the distinct values of one label (name) or
 * the label names of the series that match and have a sample in the
 * querier's range.  The strings are borrowed (the head's, interned, or a
 * block's) and deduplicated by content in `seen`; the caller holds the gc
 * lock until they are copied.
 */
typedef struct lookup {
    querier *q;
    int64_t mint, maxt;
    const char *name; /* NULL: label names */
    strset seen;
    strmap names; /* label names: the head's interned names met so far */
    arena scratch;
    kiln_err *err;
} lookup;

/* head_label_values_among's callback: a value is in once one of its
 * matched series is visible. */
static int lookup_value(const char *value, uint32_t ref, void *data) {
    lookup *lk = data;
    int rc = match_guard_tick(&lk->q->guard, 1, lk->err);
    hseries *hs = rc ? NULL : head_series(lk->q->st->h, ref);
    if (hs && (rc = head_visible(lk->q->st, hs, lk->mint, lk->maxt, &lk->scratch, lk->err)) == 1)
        rc = strset_add(&lk->seen, value) ? kiln_err_set(lk->err, KILN_ENOMEM, "out of memory listing labels")
                                          : 1;
    return rc;
}

static int count_name(const char *name, void *data) {
    (void)name;
    ++*(size_t *)data;
    return 0;
}

/* The label names of the matched head series refs: a series is read only
 * when it brings a name not met yet, and the walk stops once every name
 * the head has is met. */
KILN_MUST_CHECK static int lookup_head_names(lookup *lk, const refvec *refs) {
    storage *s = lk->q->st;
    size_t all = 0;
    int rc = head_label_names(s->h, count_name, &all);
    for (size_t i = 0; i < refs->n && rc == 0 && lk->names.n < all; i++) {
        if ((rc = match_guard_tick(&lk->q->guard, 1, lk->err)) != 0)
            break;
        hseries *hs = head_series(s->h, refs->v[i]);
        size_t nls = 0, j = 0;
        const label *ls = hs ? hseries_labels(hs, &nls) : NULL;
        while (j < nls && lk->names.n && lk->names.key[strmap_slot(&lk->names, ls[j].name)])
            j++;
        if (j == nls || (rc = head_visible(s, hs, lk->mint, lk->maxt, &lk->scratch, lk->err)) != 1) {
            rc = rc < 0 ? rc : 0;
            continue;
        }
        rc = 0;
        for (j = 0; j < nls && rc == 0; j++)
            if ((rc = strmap_add(&lk->names, ls[j].name)) == 0)
                rc = strset_add(&lk->seen, ls[j].name);
        if (rc)
            rc = kiln_err_set(lk->err, KILN_ENOMEM, "out of memory listing labels");
    }
    return rc;
}

/* block_select's callback for lookups: the series' names or the value. */
static int lookup_block_series(void *ctx, const label *ls, size_t nls, const sample *smp, size_t n,
                               const hsample *hs, size_t nh) {
    (void)smp, (void)n, (void)hs, (void)nh;
    lookup *lk = ctx;
    if (lk->name) {
        const char *v = labels_get(ls, nls, lk->name);
        return v ? strset_add(&lk->seen, v) : 0;
    }
    int rc = 0;
    for (size_t j = 0; j < nls && rc == 0; j++)
        rc = strset_add(&lk->seen, ls[j].name);
    return rc;
}

KILN_MUST_CHECK static int collect_from_series(querier *q, const char *name, const matcher *ms, size_t nms,
                                               str_list *out, kiln_err *err) {
    storage *s = q->st;
    lookup lk = {q, q->mint, q->maxt, name, {0}, {0}, {0}, err};
    refvec refs = {0};
    strs found = {0};
    arena_init(&lk.scratch, 0);
    lockrank_rdlock(&s->gc, LOCK_RANK_GC);
    int rc = lk.mint <= lk.maxt ? head_postings(s->h, ms, nms, &q->guard, &refs, err) : 0;
    if (rc == 0 && refs.n) {
        if (name)
            rc = head_label_values_among(s->h, name, &refs, lookup_value, &lk);
        else
            rc = lookup_head_names(&lk, &refs);
        if (rc == KILN_ENOMEM)
            rc = kiln_err_set(err, rc, "out of memory listing labels");
    }
    for (size_t i = 0; i < s->nblocks && rc == 0 && lk.mint <= lk.maxt; i++) {
        const block_meta *bm = block_get_meta(s->blocks[i]);
        if (bm->maxt <= lk.mint || bm->mint > lk.maxt)
            continue;
        rc = block_select(s->blocks[i], ms, nms, &q->guard, lk.mint, lk.maxt, 1, &lk.scratch,
                          lookup_block_series, &lk, err);
        if (rc == KILN_ENOMEM)
            rc = kiln_err_set(err, rc, "out of memory listing labels");
    }
    for (size_t i = 0; i < lk.seen.cap && rc == 0; i++)
        if (lk.seen.slot[i] && strs_add(lk.seen.slot[i], &found) != 0)
            rc = kiln_err_set(err, KILN_ENOMEM, "out of memory listing labels");
    if (rc == 0)
        rc = strs_finish(&found, out, err); /* copies the strings before the head may drop them */
    else
        free(found.v);
    lockrank_rwunlock(&s->gc, LOCK_RANK_GC, 1);
    free(lk.seen.slot);
    free(lk.names.key);
    arena_free(&lk.scratch);
    refvec_free(&refs);
    return rc;
}

static int block_overlaps(const querier *q, block *b) {
    const block_meta *m = block_get_meta(b);
    return m->maxt > q->mint && m->mint <= q->maxt;
}

/* Label names (name NULL) or the values of label `name`, of all series in
 * the head and the blocks the querier overlaps. */
KILN_MUST_CHECK static int list_labels(querier *q, const char *name, str_list *out, kiln_err *err) {
    storage *s = q->st;
    strs found = {0};
    int rc =
        name ? head_label_values(s->h, name, strs_add, &found) : head_label_names(s->h, strs_add, &found);
    lockrank_rdlock(&s->gc, LOCK_RANK_GC);
    for (size_t i = 0; i < s->nblocks && rc == 0; i++)
        if (block_overlaps(q, s->blocks[i]))
            rc = name ? block_label_values(s->blocks[i], name, strs_add, &found)
                      : block_label_names(s->blocks[i], strs_add, &found);
    /* strs_finish copies the strings before the blocks can go */
    if (rc == 0)
        rc = strs_finish(&found, out, err);
    else
        free(found.v);
    lockrank_rwunlock(&s->gc, LOCK_RANK_GC, 1);
    return rc ? kiln_err_set(err, KILN_ENOMEM, "out of memory listing labels") : 0;
}

int querier_label_names(querier *q, const matcher *ms, size_t nms, str_list *out, kiln_err *err) {
    return nms ? collect_from_series(q, NULL, ms, nms, out, err) : list_labels(q, NULL, out, err);
}

int querier_label_values(querier *q, const char *name, const matcher *ms, size_t nms, str_list *out,
                         kiln_err *err) {
    return nms ? collect_from_series(q, name, ms, nms, out, err) : list_labels(q, name, out, err);
}
