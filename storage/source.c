/*
 * source.c - other sources of series besides the local data (storage.h's
 * storage_source): the remote_read client the daemon hands the storage, and
 * the merge of what it returns into a select's result, for the query
 * engine.  The source is a function pointer so that query/ and storage/
 * stay below remote/ (docs/architecture.md).
 *
 * The merge works as Prometheus' merge querier with the chained series
 * merge: series sorted by labels, one series a label set, samples of a
 * label set found in several places merged by time, the local one's value
 * kept where both have a sample at the same time.
 *
 * Called by the daemon (storage_set_source, once) and by the query engine
 * on query threads (storage_source_merge); the source's select runs on the
 * calling thread.
 */
#include <stdlib.h>
#include <string.h>

#include "storage/storage_int.h"

void storage_set_source(storage *s, const storage_source *src) {
    if (src)
        s->source = *src;
    else
        memset(&s->source, 0, sizeof s->source);
}

/* Prometheus' readyStorage.StartTime: the first block's start, or now when
 * there is none, plus a margin of two block ranges. */
static int64_t local_start(storage *s) {
    int64_t t = time_now_ms();
    lockrank_rdlock(&s->gc, LOCK_RANK_GC);
    if (s->nblocks)
        t = block_get_meta(s->blocks[0])->mint;
    lockrank_rwunlock(&s->gc, LOCK_RANK_GC, 1);
    return t + 2 * s->o.block_range_ms;
}

int storage_source_merge(storage *s, const matcher *ms, size_t nms, const select_hints *h, series_set *set,
                         kiln_err *warn) {
    warn->code = 0;
    warn->msg[0] = 0;
    if (!s || !s->source.select)
        return 0;
    storage_source_query q = {ms, nms, h->mint, h->maxt, local_start(s)};
    series_set add;
    memset(&add, 0, sizeof add);
    arena_init(&add.mem, 0);
    int bad = s->source.select(s->source.data, &q, &add, warn) != 0;
    if (series_set_merge(set, &add) < 0) {
        kiln_err_set(warn, KILN_ENOMEM, "remote read: out of memory merging the series");
        bad = 1;
    }
    series_set_free(&add);
    return bad;
}

typedef struct merge_ent {
    const series *s;
    int origin; /* 0: set's (kept first), 1: add's */
    size_t idx;
} merge_ent;

static int ent_cmp(const void *a, const void *b) {
    const merge_ent *x = a, *y = b;
    int c = labels_cmp(x->s->ls, x->s->nls, y->s->ls, y->s->nls);
    if (c)
        return c;
    if (x->origin != y->origin)
        return x->origin - y->origin;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Whether t is one of the histogram samples' times. */
static int in_hs(const hsample *hs, size_t nh, int64_t t) {
    size_t lo = 0, hi = nh;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (hs[mid].t < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < nh && hs[lo].t == t;
}

/* The samples of v[0..k) (one label set) merged by time into *out (memory
 * from a), the earlier entry's kept on equal times; dropped where the
 * local series has a histogram sample. */
KILN_MUST_CHECK static int merge_samples(arena *a, const merge_ent *v, size_t k, const series *local,
                                         series *out) {
    size_t tot = 0;
    for (size_t i = 0; i < k; i++)
        tot += v[i].s->n;
    sample *acc = arena_alloc_nz(a, tot * sizeof(sample) + 1),
           *tmp = arena_alloc_nz(a, tot * sizeof(sample) + 1);
    if (!acc || !tmp)
        return KILN_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < k; i++) {
        const sample *b = v[i].s->s;
        size_t nb = v[i].s->n, x = 0, y = 0, m = 0;
        while (x < n || y < nb) {
            if (y == nb || (x < n && acc[x].t <= b[y].t)) {
                if (y < nb && acc[x].t == b[y].t)
                    y++; /* the earlier source wins */
                tmp[m++] = acc[x++];
            } else {
                tmp[m++] = b[y++];
            }
        }
        sample *sw = acc;
        acc = tmp;
        tmp = sw;
        n = m;
    }
    if (local && local->nh) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (!in_hs(local->hs, local->nh, acc[i].t))
                acc[m++] = acc[i];
        n = m;
    }
    out->s = acc;
    out->n = n;
    return 0;
}

int series_set_merge(series_set *set, const series_set *add) {
    if (!add->n)
        return 0;
    size_t n = set->n + add->n;
    merge_ent *v = malloc(n * sizeof *v);
    series *out = arena_alloc(&set->mem, n * sizeof(series));
    if (!v || !out) {
        free(v);
        return KILN_ENOMEM;
    }
    for (size_t i = 0; i < set->n; i++)
        v[i] = (merge_ent){&set->v[i], 0, i};
    for (size_t i = 0; i < add->n; i++)
        v[set->n + i] = (merge_ent){&add->v[i], 1, i};
    qsort(v, n, sizeof *v, ent_cmp);
    size_t no = 0;
    int rc = 0;
    for (size_t i = 0, j; i < n && rc == 0; i = j) {
        for (j = i + 1; j < n && labels_cmp(v[i].s->ls, v[i].s->nls, v[j].s->ls, v[j].s->nls) == 0; j++)
            ;
        const series *local = v[i].origin == 0 ? v[i].s : NULL;
        series *d = &out[no++];
        if (local && j == i + 1) {
            *d = *local;
            continue;
        }
        memset(d, 0, sizeof *d);
        if (local) {
            d->ls = local->ls;
            d->hs = local->hs;
            d->nh = local->nh;
        } else if (!(d->ls = labels_copy(&set->mem, v[i].s->ls, v[i].s->nls)) && v[i].s->nls) {
            rc = KILN_ENOMEM;
            break;
        }
        d->nls = v[i].s->nls;
        rc = merge_samples(&set->mem, &v[i], j - i, local, d);
    }
    free(v);
    if (rc < 0)
        return rc;
    set->v = out;
    set->n = no;
    return 0;
}
