/*
 * otlp_hist.c - OTLP histogram points as kiln's native histograms
 * (storage.h's struct histogram), as Prometheus 3's OTLP translator makes
 * them:
 *
 *   exponential histogram   schema = scale (a scale above 8 is merged down
 *                           to 8, one below -4 refused); OTLP's bucket k,
 *                           (base^k, base^(k+1)], is Prometheus' bucket
 *                           k + 1, (base^k, base^(k+1)]; zero bucket, count
 *                           and sum as sent
 *   explicit-bucket         convert_histograms_to_nhcb: schema -53 (custom
 *   histogram               buckets), the bounds as custom values (a last
 *                           bound of +Inf dropped), the per-bucket counts
 *                           (the last one is the +Inf bucket)
 *
 * Buckets become spans the way Prometheus lays them out: a run of up to two
 * empty buckets between filled ones stays inside a span, a longer one
 * starts the next span.  A point with the no-recorded-value flag is a stale
 * marker (sum = stale NaN).  Everything is allocated in the caller's arena.
 *
 * Called by api/otlp.c on HTTP worker threads; no state.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "api/otlp_private.h"

#define OTLP_MAX_SPAN_GAP 2

/* floor(k / 2^shift) for any sign of k. */
static int64_t down(int64_t k, int shift) {
    return k >= 0 ? k >> shift : -((-k + ((int64_t)1 << shift) - 1) >> shift);
}

/*
 * One side's buckets: counts[n] at indices first, first+1, ... (each index
 * divided down by 2^shift, so neighbours merge) into spans and absolute
 * counts.  0 or KILN_ENOMEM.
 */
static int side(arena *a, int64_t first, const uint64_t *counts, size_t n, int shift, hist_span **spans,
                uint32_t *nspans, double **vals, uint32_t *nvals) {
    *spans = NULL;
    *vals = NULL;
    *nspans = *nvals = 0;
    if (n == 0)
        return 0;
    /* at most n buckets, n spans; the zeros kept inside spans at most 2 a gap */
    hist_span *sp = arena_alloc(a, n * sizeof *sp);
    double *v = arena_alloc(a, 3 * n * sizeof *v);
    if (!sp || !v)
        return KILN_ENOMEM;
    uint32_t ns = 0, nv = 0;
    int64_t last = 0; /* the index of v[nv - 1] */
    for (size_t j = 0; j < n; j++) {
        int64_t idx = down(first + (int64_t)j, shift);
        if (counts[j] == 0)
            continue;
        if (nv && idx == last) { /* merged into the bucket before */
            v[nv - 1] += (double)counts[j];
            continue;
        }
        int64_t gap = nv ? idx - last - 1 : 0;
        if (!nv || gap > OTLP_MAX_SPAN_GAP) {
            sp[ns].offset = (int32_t)(nv ? gap : idx);
            sp[ns].length = 0;
            ns++;
        } else {
            for (int64_t g = 0; g < gap; g++)
                v[nv++] = 0;
            sp[ns - 1].length += (uint32_t)gap;
        }
        v[nv++] = (double)counts[j];
        sp[ns - 1].length++;
        last = idx;
    }
    *spans = sp;
    *nspans = ns;
    *vals = v;
    *nvals = nv;
    return 0;
}

int otlp_exp_histogram(arena *a, const Kiln__Otlp__ExponentialHistogramDataPoint *p, int gauge, histogram *h,
                       char *why, size_t cap) {
    memset(h, 0, sizeof *h);
    int32_t scale = p->scale;
    if (scale < HIST_SCHEMA_MIN) {
        snprintf(why, cap, "cannot convert exponential to native histogram: scale must be >= %d, was %d",
                 HIST_SCHEMA_MIN, scale);
        return KILN_EINVAL;
    }
    int shift = scale > HIST_SCHEMA_MAX ? scale - HIST_SCHEMA_MAX : 0;
    h->schema = scale - shift;
    h->hint = gauge ? HIST_HINT_GAUGE : HIST_HINT_UNKNOWN;
    h->is_int = 1;
    h->zero_threshold = p->has_zero_threshold ? p->zero_threshold : 0;
    h->zero_count = (double)p->zero_count;
    h->count = (double)p->count;
    h->sum = (p->flags & 1) ? stale_nan() : p->has_sum ? p->sum : 0;
    const Kiln__Otlp__ExponentialHistogramDataPoint__Buckets *b[2] = {p->positive, p->negative};
    for (int s = 0; s < 2; s++) {
        if (!b[s])
            continue;
        /* OTLP's index k is Prometheus' k + 1: the first bucket's index, merged down, plus one */
        int rc = s == 0 ? side(a, b[s]->offset, b[s]->bucket_counts, b[s]->n_bucket_counts, shift,
                               &h->pos_spans, &h->npos_spans, &h->pos, &h->npos)
                        : side(a, b[s]->offset, b[s]->bucket_counts, b[s]->n_bucket_counts, shift,
                               &h->neg_spans, &h->nneg_spans, &h->neg, &h->nneg);
        if (rc != 0)
            return rc;
        hist_span *sp = s == 0 ? h->pos_spans : h->neg_spans;
        if (sp)
            sp[0].offset += 1;
    }
    return 0;
}

int otlp_nhcb(arena *a, const Kiln__Otlp__HistogramDataPoint *p, histogram *h) {
    memset(h, 0, sizeof *h);
    h->schema = HIST_SCHEMA_CUSTOM;
    h->is_int = 1;
    h->count = (double)p->count;
    h->sum = (p->flags & 1) ? stale_nan() : p->has_sum ? p->sum : 0;
    size_t nb = p->n_explicit_bounds;
    if (nb && isinf(p->explicit_bounds[nb - 1]) && p->explicit_bounds[nb - 1] > 0)
        nb--; /* +Inf is the overflow bucket's bound already */
    h->custom_values = p->explicit_bounds;
    h->ncustom = (uint32_t)nb;
    size_t nc = p->n_bucket_counts < nb + 1 ? p->n_bucket_counts : nb + 1;
    return side(a, 0, p->bucket_counts, nc, 0, &h->pos_spans, &h->npos_spans, &h->pos, &h->npos);
}
