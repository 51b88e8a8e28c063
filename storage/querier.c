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
 * Threading: any thread; one querier used by one thread at a time.
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
                                         int lookup, series_set *out, kiln_err *err);

int querier_select(querier *q, const matcher *ms, size_t nms, const select_hints *h, series_set *out,
                   kiln_err *err) {
    lockrank_rdlock(&q->st->gc, LOCK_RANK_GC);
    int rc = select_locked(q, ms, nms, h, 0, out, err);
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

static int cmp_strp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
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

/*
 * `lookup` is for label lookups, which deduplicate strings themselves and
 * hold the gc lock until they have copied the ones they keep: the series
 * come in any order, one in blocks and the head may come twice, and head
 * labels are borrowed, not copied.
 */
KILN_MUST_CHECK static int select_locked(querier *q, const matcher *ms, size_t nms, const select_hints *h,
                                         int lookup, series_set *out, kiln_err *err) {
    storage *s = q->st;
    refvec refs = {0};
    sample *got = NULL;
    size_t total = 0, cap = 0;
    int rc;
    int64_t mint = h && h->mint > q->mint ? h->mint : q->mint;
    int64_t maxt = h && h->maxt < q->maxt ? h->maxt : q->maxt;
    memset(out, 0, sizeof *out);
    arena_init(&out->mem, 0);
    if ((rc = head_postings(s->h, ms, nms, &q->guard, &refs, err)) != 0)
        goto fail;
    for (size_t i = 0; i < refs.n; i++) {
        if ((rc = match_guard_tick(&q->guard, 1, err)) != 0)
            goto fail;
        hseries *hs = head_series(s->h, refs.v[i]);
        if (!hs || mint > maxt)
            continue;
        size_t n = 0, nh = 0, ndel;
        hsample *hgot = NULL;
        const tstone *del = tombstones_of(&s->hts, refs.v[i], &ndel);
        if (h && h->labels_only && !ndel) {
            if (!head_series_has_data(s->h, hs, mint, maxt))
                continue;
        } else {
            rc = head_series_samples(s->h, hs, mint, maxt, arena_samples, &out->mem, &got, &n);
            if (rc == 0)
                rc = head_series_histograms(s->h, hs, mint, maxt, &out->mem, &hgot, &nh);
            if (rc == KILN_ENOMEM)
                goto nomem;
            if (rc < 0) {
                rc = kiln_err_set(err, rc, "reading series %u: corrupt chunk", refs.v[i]);
                goto fail;
            }
            n = tombstones_filter(del, ndel, got, n);
            nh = tombstones_filter_hist(del, ndel, hgot, nh);
            if (n == 0 && nh == 0)
                continue;
            if (h && h->labels_only)
                n = nh = 0;
            total += n + nh;
            if (h && h->max_samples && total > h->max_samples) {
                rc = kiln_err_set(err, KILN_ELIMIT, "%s", TOO_MANY_SAMPLES);
                goto fail;
            }
        }
        if (array_grow((void **)&out->v, &cap, out->n + 1, sizeof *out->v) != 0)
            goto nomem;
        series *se = &out->v[out->n];
        size_t nls;
        se->ls = (label *)hseries_labels(hs, &nls); /* copied below, once sorted */
        se->nls = nls;
        se->n = n;
        se->s = n ? got : NULL;
        se->nh = nh;
        se->hs = nh ? hgot : NULL;
        out->n++;
    }
    /* the head's series sorted and their labels copied; lookups borrow
     * them unsorted */
    size_t from_head = out->n;
    if (!lookup && from_head && head_series_sort_copy(out->v, from_head, &out->mem) != 0)
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
        if (!lookup && out->n > from_head) {
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

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
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

KILN_MUST_CHECK static int collect_from_series(querier *q, const char *name, const matcher *ms, size_t nms,
                                               str_list *out, kiln_err *err) {
    series_set set;
    select_hints h = {q->mint, q->maxt, 1, 0};
    lockrank_rdlock(&q->st->gc, LOCK_RANK_GC);
    int rc = select_locked(q, ms, nms, &h, 1, &set, err);
    if (rc) {
        lockrank_rwunlock(&q->st->gc, LOCK_RANK_GC, 1);
        return rc;
    }
    strset seen = {0};
    /* the previous series' strings: neighbours often share them */
    const char *last = NULL;
    for (size_t i = 0; i < set.n && rc == 0; i++) {
        if (name) {
            const char *v = labels_get(set.v[i].ls, set.v[i].nls, name);
            if (v && !(last && strcmp(last, v) == 0))
                rc = strset_add(&seen, last = v);
        } else {
            for (size_t j = 0; j < set.v[i].nls && rc == 0; j++)
                rc = strset_add(&seen, set.v[i].ls[j].name);
        }
    }
    strs s = {0};
    for (size_t i = 0; i < seen.cap && rc == 0; i++)
        if (seen.slot[i])
            rc = strs_add(seen.slot[i], &s);
    free(seen.slot);
    if (rc) {
        free(s.v);
        rc = kiln_err_set(err, KILN_ENOMEM, "out of memory listing labels");
    } else {
        rc = strs_finish(&s, out, err); /* copies the strings before the head may drop them */
    }
    lockrank_rwunlock(&q->st->gc, LOCK_RANK_GC, 1);
    series_set_free(&set);
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
