/*
 * nhist.c - native histogram arithmetic for the PromQL evaluator: addition
 * and subtraction across schemas and zero thresholds, custom-bucket
 * reconciliation, scaling, counter-reset detection, equality, and the
 * per-sample statistics (quantile, fraction, variance), following
 * Prometheus 3's FloatHistogram and its functions.go.
 *
 * The working form of one side of a histogram (positive or negative) is a
 * list of (index, count) pairs sorted by index ("bkts"), expanded from the
 * spans; schema reduction maps index i of schema s to ((i-1) >> (s-t)) + 1
 * of schema t, which keeps the list sorted, so merging equal neighbours is
 * enough.  Results are turned back into spans: consecutive indices share a
 * span, a gap starts a new one.  Empty buckets are kept (as Prometheus keeps
 * them until it compacts); the JSON and the tests look at the non-empty ones.
 *
 * Called by the evaluator files (rangefuncs.c, aggr.c, engine.c, funcs.c,
 * histogram.c) through nhist.h.
 * Threading: pure functions over the caller's arena; any thread.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "query/eval.h"
#include "query/nhbounds.h"
#include "query/nhist.h"

typedef struct bkt {
    int32_t i;
    double c;
} bkt;

typedef struct bkts {
    bkt *v;
    size_t n, cap;
    int oom;
} bkts;

static void bkts_push(bkts *b, int32_t i, double c) {
    if (b->n && b->v[b->n - 1].i == i) {
        b->v[b->n - 1].c += c;
        return;
    }
    if (b->n == b->cap && array_grow((void **)&b->v, &b->cap, b->n + 1, sizeof *b->v) < 0) {
        b->oom = 1;
        return;
    }
    b->v[b->n++] = (bkt){i, c};
}

static void bkts_free(bkts *b) {
    free(b->v);
    memset(b, 0, sizeof *b);
}

/* floor(v / 2^s) for any sign (Go's >> on a signed integer). */
static int32_t shr_floor(int32_t v, int s) {
    return v >= 0 ? v >> s : -((-(int64_t)v - 1) >> s) - 1;
}

static int32_t reduce_idx(int32_t i, int shift) {
    return shift > 0 ? shr_floor(i - 1, shift) + 1 : i;
}

/* Reduces a side's indices by shift schemas in place, merging the buckets
 * that meet (the list stays sorted). */
static void reduce_side(bkts *b, int shift) {
    if (shift <= 0)
        return;
    size_t n = 0;
    for (size_t k = 0; k < b->n; k++) {
        int32_t ni = reduce_idx(b->v[k].i, shift);
        if (n && b->v[n - 1].i == ni)
            b->v[n - 1].c += b->v[k].c;
        else
            b->v[n++] = (bkt){ni, b->v[k].c};
    }
    b->n = n;
}

/* Appends the buckets of spans/counts to out, indices reduced by shift. */
static void expand(const hist_span *sp, uint32_t nsp, const double *cnt, uint32_t ncnt, int shift,
                   bkts *out) {
    int32_t idx = 0;
    uint32_t k = 0;
    for (uint32_t s = 0; s < nsp; s++) {
        idx += sp[s].offset;
        for (uint32_t l = 0; l < sp[s].length && k < ncnt; l++, idx++, k++)
            bkts_push(out, reduce_idx(idx, shift), cnt[k]);
    }
}

double nh_bound(int32_t idx, int32_t schema) {
    if (schema <= 0) {
        int64_t e = (int64_t)idx * ((int64_t)1 << -schema);
        return ldexp(1.0, (int)(e > 2000 ? 2000 : e < -2000 ? -2000 : e));
    }
    int32_t frac = idx & ((1 << schema) - 1);
    int32_t e = shr_floor(idx, schema) + 1;
    /* Prometheus' own fractions: a few differ from exp2's by an ulp, which
     * shows in the JSON's bounds (nhbounds.h says how they were measured) */
    if (schema <= 8)
        return ldexp(NH_FRAC[schema][frac], e);
    return ldexp(0.5 * exp2((double)frac / (double)(1 << schema)), e);
}

/* Bounds of custom bucket i: (lo, hi]. */
static void custom_bounds(const histogram *h, int32_t i, double *lo, double *hi) {
    *lo = i <= 0 ? -INFINITY : h->custom_values[i - 1];
    *hi = (uint32_t)i >= h->ncustom ? INFINITY : h->custom_values[i];
}

/* Moves the buckets of one side that the zero bucket covers into it
 * (Prometheus' zeroCountForLargerThreshold, a side at a time); a
 * populated bucket across the threshold raises it to its upper bound.
 * Returns whether the threshold moved. */
static int widen_side(bkts *b, int32_t schema, double *zc, double *zt) {
    size_t k = 0;
    int moved = 0;
    while (k < b->n) {
        double lo = nh_bound(b->v[k].i - 1, schema), hi = nh_bound(b->v[k].i, schema);
        if (lo >= *zt)
            break;
        *zc += b->v[k].c;
        k++;
        if (hi > *zt) {
            if (b->v[k - 1].c != 0) {
                *zt = hi;
                moved = 1;
            }
            break;
        }
    }
    if (k) {
        memmove(b->v, b->v + k, (b->n - k) * sizeof *b->v);
        b->n -= k;
    }
    return moved;
}

static void widen(bkts *p, bkts *n, int32_t schema, double *zc, double *zt) {
    for (;;) {
        int m = widen_side(p, schema, zc, zt);
        m |= widen_side(n, schema, zc, zt);
        if (!m)
            return;
    }
}

/* Spans and counts for b in a (NULL arrays when b is empty). */
static int build_side(arena *a, const bkts *b, hist_span **sp, uint32_t *nsp, double **cnt, uint32_t *n) {
    *sp = NULL;
    *cnt = NULL;
    *nsp = 0;
    *n = 0;
    if (!b->n)
        return 0;
    size_t spans = 1;
    for (size_t k = 1; k < b->n; k++)
        spans += b->v[k].i != b->v[k - 1].i + 1;
    *sp = arena_alloc_nz(a, spans * sizeof **sp);
    *cnt = arena_alloc_nz(a, b->n * sizeof **cnt);
    if (!*sp || !*cnt)
        return KILN_ENOMEM;
    int32_t next = 0;
    for (size_t k = 0; k < b->n; k++) {
        if (k == 0 || b->v[k].i != b->v[k - 1].i + 1) {
            (*sp)[*nsp].offset = b->v[k].i - next;
            (*sp)[*nsp].length = 0;
            (*nsp)++;
        }
        (*sp)[*nsp - 1].length++;
        (*cnt)[k] = b->v[k].c;
        next = b->v[k].i + 1;
    }
    *n = (uint32_t)b->n;
    return 0;
}

histogram *nh_new(arena *a) {
    return arena_alloc(a, sizeof(histogram));
}

static void *dup_arr(arena *a, const void *p, size_t n, int *oom) {
    if (!n || !p)
        return NULL;
    void *d = arena_alloc_nz(a, n);
    if (!d)
        *oom = 1;
    else
        memcpy(d, p, n);
    return d;
}

histogram *nh_copy(arena *a, const histogram *h) {
    histogram *o = arena_alloc_nz(a, sizeof *o);
    if (!o)
        return NULL;
    *o = *h;
    int oom = 0;
    o->pos_spans = dup_arr(a, h->pos_spans, h->npos_spans * sizeof(hist_span), &oom);
    o->neg_spans = dup_arr(a, h->neg_spans, h->nneg_spans * sizeof(hist_span), &oom);
    o->pos = dup_arr(a, h->pos, h->npos * sizeof(double), &oom);
    o->neg = dup_arr(a, h->neg, h->nneg * sizeof(double), &oom);
    o->custom_values = dup_arr(a, h->custom_values, h->ncustom * sizeof(double), &oom);
    return oom ? NULL : o;
}

static int same_bounds(const histogram *x, const histogram *y) {
    if (x->ncustom != y->ncustom)
        return 0;
    for (uint32_t i = 0; i < x->ncustom; i++)
        if (x->custom_values[i] != y->custom_values[i])
            return 0;
    return 1;
}

/* The bounds in both x and y (arena), for reconciling custom buckets. */
static double *common_bounds(arena *a, const histogram *x, const histogram *y, uint32_t *n) {
    double *v = arena_alloc_nz(a, (x->ncustom < y->ncustom ? x->ncustom : y->ncustom) * sizeof(double) + 1);
    *n = 0;
    if (!v)
        return NULL;
    uint32_t i = 0, j = 0;
    while (i < x->ncustom && j < y->ncustom) {
        double p = x->custom_values[i], q = y->custom_values[j];
        if (p == q) {
            v[(*n)++] = p;
            i++;
            j++;
        } else if (p < q) {
            i++;
        } else {
            j++;
        }
    }
    return v;
}

/* Custom buckets of h re-indexed onto bounds nb[0..nn). */
static void expand_custom(const histogram *h, const double *nb, uint32_t nn, int remap, bkts *out) {
    bkts tmp = {0};
    expand(h->pos_spans, h->npos_spans, h->pos, h->npos, 0, remap ? &tmp : out);
    if (!remap)
        return;
    size_t j = 0;
    for (size_t k = 0; k < tmp.n; k++) {
        double lo, hi;
        custom_bounds(h, tmp.v[k].i, &lo, &hi);
        while (j < nn && nb[j] < hi)
            j++;
        bkts_push(out, (int32_t)j, tmp.v[k].c);
    }
    out->oom |= tmp.oom;
    bkts_free(&tmp);
}

/* Merges sorted lists x and sign*y into out. */
static void merge(const bkts *x, const bkts *y, double sign, bkts *out) {
    size_t i = 0, j = 0;
    while (i < x->n || j < y->n) {
        if (j == y->n || (i < x->n && x->v[i].i < y->v[j].i)) {
            bkts_push(out, x->v[i].i, x->v[i].c);
            i++;
        } else if (i == x->n || y->v[j].i < x->v[i].i) {
            bkts_push(out, y->v[j].i, sign * y->v[j].c);
            j++;
        } else {
            bkts_push(out, x->v[i].i, x->v[i].c + sign * y->v[j].c);
            i++;
            j++;
        }
    }
}

/* Prometheus' rule for the hint of a sum: equal hints stay, a gauge on
 * either side makes a gauge, anything else is unknown. */
static uint8_t sum_hint(uint8_t a, uint8_t b) {
    return a == b ? a : (a == HIST_HINT_GAUGE || b == HIST_HINT_GAUGE) ? HIST_HINT_GAUGE : HIST_HINT_UNKNOWN;
}

/* Whether x and y have the same bucket layout: schema, zero threshold,
 * spans and (custom) bounds, so their counts line up index by index. */
static int same_spans(const hist_span *a, uint32_t na, const hist_span *b, uint32_t nb) {
    if (na != nb)
        return 0;
    if (a == b)
        return 1;
    for (uint32_t i = 0; i < na; i++)
        if (a[i].offset != b[i].offset || a[i].length != b[i].length)
            return 0;
    return 1;
}

int nh_same_layout(const histogram *x, const histogram *y) {
    return x->schema == y->schema && x->zero_threshold == y->zero_threshold && x->npos == y->npos &&
           x->nneg == y->nneg && same_spans(x->pos_spans, x->npos_spans, y->pos_spans, y->npos_spans) &&
           same_spans(x->neg_spans, x->nneg_spans, y->neg_spans, y->nneg_spans) &&
           (!nh_is_custom(x) || same_bounds(x, y));
}

int nh_add_into(histogram *acc, const histogram *y, double sign) {
    if (!nh_same_layout(acc, y))
        return 0;
    acc->count += sign * y->count;
    acc->sum += sign * y->sum;
    acc->zero_count += sign * y->zero_count;
    for (uint32_t i = 0; i < acc->npos; i++)
        acc->pos[i] += sign * y->pos[i];
    for (uint32_t i = 0; i < acc->nneg; i++)
        acc->neg[i] += sign * y->neg[i];
    acc->hint = sum_hint(acc->hint, y->hint);
    return 1;
}

int nh_add(arena *a, const histogram *x, const histogram *y, int sub, histogram **out, int *reconciled) {
    if (nh_is_custom(x) != nh_is_custom(y))
        return NH_EMIXED;
    double sign = sub ? -1 : 1;
    if (nh_same_layout(x, y)) {
        /* the common case: one layout, counts add index by index */
        histogram *f = nh_copy(a, x);
        if (!f)
            return KILN_ENOMEM;
        nh_add_into(f, y, sign);
        *out = f;
        return 0;
    }
    histogram *o = nh_new(a);
    if (!o)
        return KILN_ENOMEM;
    o->count = x->count + sign * y->count;
    o->sum = x->sum + sign * y->sum;
    o->hint = sum_hint(x->hint, y->hint);
    bkts xp = {0}, xn = {0}, yp = {0}, yn = {0}, rp = {0}, rn = {0};
    int rc = 0;
    if (nh_is_custom(x)) {
        o->schema = HIST_SCHEMA_CUSTOM;
        if (same_bounds(x, y)) {
            o->custom_values = x->custom_values;
            o->ncustom = x->ncustom;
            expand_custom(x, NULL, 0, 0, &xp);
            expand_custom(y, NULL, 0, 0, &yp);
        } else {
            o->custom_values = common_bounds(a, x, y, &o->ncustom);
            if (!o->custom_values) {
                rc = KILN_ENOMEM;
                goto done;
            }
            if (reconciled)
                *reconciled = 1;
            expand_custom(x, o->custom_values, o->ncustom, 1, &xp);
            expand_custom(y, o->custom_values, o->ncustom, 1, &yp);
        }
    } else {
        /* zero buckets first, each side at its own schema */
        double xzc = x->zero_count, xzt = x->zero_threshold, yzc = y->zero_count, yzt = y->zero_threshold;
        expand(x->pos_spans, x->npos_spans, x->pos, x->npos, 0, &xp);
        expand(x->neg_spans, x->nneg_spans, x->neg, x->nneg, 0, &xn);
        expand(y->pos_spans, y->npos_spans, y->pos, y->npos, 0, &yp);
        expand(y->neg_spans, y->nneg_spans, y->neg, y->nneg, 0, &yn);
        while (xzt != yzt) {
            if (xzt < yzt) {
                xzt = yzt;
                widen(&xp, &xn, x->schema, &xzc, &xzt);
            } else {
                yzt = xzt;
                widen(&yp, &yn, y->schema, &yzc, &yzt);
            }
        }
        o->zero_threshold = xzt;
        o->zero_count = xzc + sign * yzc;
        o->schema = x->schema < y->schema ? x->schema : y->schema;
        /* reduce the finer side in place */
        reduce_side(&xp, x->schema - o->schema);
        reduce_side(&xn, x->schema - o->schema);
        reduce_side(&yp, y->schema - o->schema);
        reduce_side(&yn, y->schema - o->schema);
        merge(&xn, &yn, sign, &rn);
    }
    merge(&xp, &yp, sign, &rp);
    if (xp.oom || xn.oom || yp.oom || yn.oom || rp.oom || rn.oom) {
        rc = KILN_ENOMEM;
        goto done;
    }
    if (build_side(a, &rp, &o->pos_spans, &o->npos_spans, &o->pos, &o->npos) < 0 ||
        build_side(a, &rn, &o->neg_spans, &o->nneg_spans, &o->neg, &o->nneg) < 0)
        rc = KILN_ENOMEM;
done:
    bkts_free(&xp);
    bkts_free(&xn);
    bkts_free(&yp);
    bkts_free(&yn);
    bkts_free(&rp);
    bkts_free(&rn);
    if (rc == 0)
        *out = o;
    return rc;
}

void nh_scale_inplace(histogram *h, double f, int div) {
#define NH_OP(x) ((x) = div ? (x) / f : (x)*f)
    NH_OP(h->count);
    NH_OP(h->sum);
    NH_OP(h->zero_count);
    for (uint32_t i = 0; i < h->npos; i++)
        NH_OP(h->pos[i]);
    for (uint32_t i = 0; i < h->nneg; i++)
        NH_OP(h->neg[i]);
#undef NH_OP
}

histogram *nh_scale(arena *a, const histogram *h, double f, int div) {
    histogram *o = nh_copy(a, h);
    if (o)
        nh_scale_inplace(o, f, div);
    return o;
}

/* Whether some bucket of prev (already at cur's schema and threshold) has
 * more than cur's bucket of the same index (a missing one counts 0). */
static int side_went_down(const bkts *prev, const bkts *cur) {
    size_t j = 0;
    for (size_t k = 0; k < prev->n; k++) {
        while (j < cur->n && cur->v[j].i < prev->v[k].i)
            j++;
        double c = j < cur->n && cur->v[j].i == prev->v[k].i ? cur->v[j].c : 0;
        if (c < prev->v[k].c)
            return 1;
    }
    return 0;
}

int nh_detect_reset(const histogram *cur, const histogram *prev) {
    if (cur->hint == HIST_HINT_RESET)
        return 1;
    if (cur->hint == HIST_HINT_NOT_RESET)
        return 0;
    if (cur->count < prev->count)
        return 1;
    if (nh_is_custom(cur) != nh_is_custom(prev))
        return 1;
    if (nh_same_layout(cur, prev)) {
        if (cur->zero_count < prev->zero_count)
            return 1;
        for (uint32_t i = 0; i < cur->npos; i++)
            if (cur->pos[i] < prev->pos[i])
                return 1;
        for (uint32_t i = 0; i < cur->nneg; i++)
            if (cur->neg[i] < prev->neg[i])
                return 1;
        return 0;
    }
    bkts pp = {0}, pn = {0}, cp = {0}, cn = {0};
    int reset = 0;
    if (nh_is_custom(cur)) {
        if (same_bounds(cur, prev)) {
            expand_custom(prev, NULL, 0, 0, &pp);
            expand_custom(cur, NULL, 0, 0, &cp);
        } else {
            /* reconciled to the common bounds, as Prometheus 3 subtracts them */
            arena tmp;
            arena_init(&tmp, 0);
            uint32_t nb = 0;
            double *b = common_bounds(&tmp, cur, prev, &nb);
            if (b) {
                expand_custom(prev, b, nb, 1, &pp);
                expand_custom(cur, b, nb, 1, &cp);
            }
            arena_free(&tmp);
        }
        reset = side_went_down(&pp, &cp);
        goto done;
    }
    if (cur->schema > prev->schema || cur->zero_threshold < prev->zero_threshold) {
        reset = 1;
        goto done;
    }
    expand(prev->pos_spans, prev->npos_spans, prev->pos, prev->npos, 0, &pp);
    expand(prev->neg_spans, prev->nneg_spans, prev->neg, prev->nneg, 0, &pn);
    double zc = prev->zero_count, zt = prev->zero_threshold;
    if (zt < cur->zero_threshold) {
        zt = cur->zero_threshold;
        widen(&pp, &pn, prev->schema, &zc, &zt);
    }
    if (zt != cur->zero_threshold || cur->zero_count < zc) {
        reset = 1;
        goto done;
    }
    reduce_side(&pp, prev->schema - cur->schema);
    reduce_side(&pn, prev->schema - cur->schema);
    expand(cur->pos_spans, cur->npos_spans, cur->pos, cur->npos, 0, &cp);
    expand(cur->neg_spans, cur->nneg_spans, cur->neg, cur->nneg, 0, &cn);
    reset = side_went_down(&pp, &cp) || side_went_down(&pn, &cn);
done:
    bkts_free(&pp);
    bkts_free(&pn);
    bkts_free(&cp);
    bkts_free(&cn);
    return reset;
}

/* Whether the non-empty buckets of two sides are the same. */
static int near(double a, double b, double eps) {
    if (eps == 0)
        return a == b || (isnan(a) && isnan(b));
    return (isnan(a) && isnan(b)) || double_almost_equal(a, b, eps);
}

static int side_equal(const hist_span *as, uint32_t nas, const double *a, uint32_t na, const hist_span *bs,
                      uint32_t nbs, const double *b, uint32_t nb, double eps) {
    bkts x = {0}, y = {0};
    expand(as, nas, a, na, 0, &x);
    expand(bs, nbs, b, nb, 0, &y);
    size_t i = 0, j = 0;
    int eq = !x.oom && !y.oom;
    while (eq) {
        while (i < x.n && x.v[i].c == 0)
            i++;
        while (j < y.n && y.v[j].c == 0)
            j++;
        if (i == x.n || j == y.n) {
            eq = i == x.n && j == y.n;
            break;
        }
        eq = x.v[i].i == y.v[j].i && near(x.v[i].c, y.v[j].c, eps);
        i++;
        j++;
    }
    bkts_free(&x);
    bkts_free(&y);
    return eq;
}

int nh_equal(const histogram *a, const histogram *b, double eps) {
    if (a->schema != b->schema || !near(a->count, b->count, eps) || a->zero_threshold != b->zero_threshold ||
        !near(a->zero_count, b->zero_count, eps) || !near(a->sum, b->sum, eps))
        return 0;
    if (nh_is_custom(a) && !same_bounds(a, b))
        return 0;
    return side_equal(a->pos_spans, a->npos_spans, a->pos, a->npos, b->pos_spans, b->npos_spans, b->pos,
                      b->npos, eps) &&
           side_equal(a->neg_spans, a->nneg_spans, a->neg, a->nneg, b->neg_spans, b->nneg_spans, b->neg,
                      b->nneg, eps);
}

/* ---- all buckets in order, for the statistics ---- */

typedef struct span_bkt {
    double lo, hi, c;
} span_bkt;

/* Every bucket of h from the lowest to the highest (negative ones, the
 * zero bucket when it has a count or a width, positive ones), malloc'd into
 * *out; returns the count, or -1 when out of memory. */
static long all_buckets(const histogram *h, span_bkt **out) {
    bkts p = {0}, n = {0};
    expand(h->pos_spans, h->npos_spans, h->pos, h->npos, 0, &p);
    expand(h->neg_spans, h->nneg_spans, h->neg, h->nneg, 0, &n);
    span_bkt *v = malloc((p.n + n.n + 1) * sizeof *v);
    long k = 0;
    if (!v || p.oom || n.oom) {
        free(v);
        bkts_free(&p);
        bkts_free(&n);
        return -1;
    }
    if (nh_is_custom(h)) {
        for (size_t i = 0; i < p.n; i++) {
            v[k].c = p.v[i].c;
            custom_bounds(h, p.v[i].i, &v[k].lo, &v[k].hi);
            k++;
        }
    } else {
        for (size_t i = n.n; i-- > 0;) {
            v[k++] = (span_bkt){-nh_bound(n.v[i].i, h->schema), -nh_bound(n.v[i].i - 1, h->schema), n.v[i].c};
        }
        if (h->zero_count != 0 || h->zero_threshold != 0)
            v[k++] = (span_bkt){-h->zero_threshold, h->zero_threshold, h->zero_count};
        for (size_t i = 0; i < p.n; i++)
            v[k++] = (span_bkt){nh_bound(p.v[i].i - 1, h->schema), nh_bound(p.v[i].i, h->schema), p.v[i].c};
    }
    bkts_free(&p);
    bkts_free(&n);
    *out = v;
    return k;
}

static int has_buckets(const double *c, uint32_t n) {
    return n > 0 && c != NULL;
}

double nh_quantile(double q, const histogram *h) {
    if (q < 0)
        return -INFINITY;
    if (q > 1)
        return INFINITY;
    if (h->count == 0 || isnan(q))
        return NAN;
    span_bkt *b;
    long n = all_buckets(h, &b);
    if (n <= 0) {
        if (n == 0)
            free(b);
        return NAN;
    }
    int fwd = isnan(h->sum) || q < 0.5;
    double rank = fwd ? q * h->count : (1 - q) * h->count, count = 0;
    span_bkt cur = {0, 0, 0};
    for (long k = 0; k < n; k++) {
        span_bkt x = b[fwd ? k : n - 1 - k];
        if (x.c == 0)
            continue;
        cur = x;
        count += x.c;
        if (count >= rank)
            break;
    }
    free(b);
    if (!nh_is_custom(h) && cur.lo < 0 && cur.hi > 0) {
        if (!has_buckets(h->neg, h->nneg) && has_buckets(h->pos, h->npos))
            cur.lo = 0;
        else if (!has_buckets(h->pos, h->npos) && has_buckets(h->neg, h->nneg))
            cur.hi = 0;
    } else if (nh_is_custom(h)) {
        if (isinf(cur.lo) && cur.lo < 0) {
            if (cur.hi <= 0)
                return cur.hi;
            cur.lo = 0;
        } else if (isinf(cur.hi) && cur.hi > 0) {
            return cur.lo;
        }
    }
    if (count > h->count)
        count = h->count;
    if (count < rank)
        return cur.hi;
    if (fwd)
        rank -= count - cur.c;
    else
        rank = count - rank;
    double fraction = rank / cur.c;
    if (nh_is_custom(h) || (cur.lo <= 0 && cur.hi >= 0))
        return cur.lo + (cur.hi - cur.lo) * fraction;
    double llo = log2(fabs(cur.lo)), lhi = log2(fabs(cur.hi));
    if (cur.lo > 0)
        return exp2(llo + (lhi - llo) * fraction);
    return -exp2(lhi + (llo - lhi) * (1 - fraction));
}

static double interp(const span_bkt *b, double rank, double v, int linear) {
    if (linear)
        return rank + b->c * (v - b->lo) / (b->hi - b->lo);
    double llo = log2(fabs(b->lo)), lhi = log2(fabs(b->hi)), lv = log2(fabs(v)), f;
    if (v > 0)
        f = (lv - llo) / (lhi - llo);
    else
        f = 1 - ((lv - lhi) / (llo - lhi));
    return rank + b->c * f;
}

double nh_fraction(double lower, double upper, const histogram *h) {
    if (h->count == 0 || isnan(lower) || isnan(upper))
        return NAN;
    if (lower >= upper)
        return 0;
    span_bkt *v;
    long n = all_buckets(h, &v);
    if (n < 0)
        return NAN;
    double rank = 0, lrank = 0, urank = 0;
    int lset = 0, uset = 0;
    for (long k = 0; k < n; k++) {
        span_bkt b = v[k];
        int zero = 0;
        if (nh_is_custom(h)) {
            if (isinf(b.lo) && b.lo < 0 && b.hi > 0)
                b.lo = 0;
        } else if (b.lo <= 0 && b.hi >= 0) {
            zero = 1;
            if (!has_buckets(h->neg, h->nneg) && has_buckets(h->pos, h->npos))
                b.lo = 0;
            else if (!has_buckets(h->pos, h->npos) && has_buckets(h->neg, h->nneg))
                b.hi = 0;
        }
        int linear = zero || nh_is_custom(h);
        if (!lset && b.lo >= lower) {
            lrank = rank;
            lset = 1;
        }
        if (!uset && b.lo >= upper) {
            urank = rank;
            uset = 1;
        }
        if (lset && uset)
            break;
        if (!lset && b.lo < lower && b.hi > lower) {
            lrank = interp(&b, rank, lower, linear);
            lset = 1;
        }
        if (!uset && b.lo < upper && b.hi > upper) {
            urank = interp(&b, rank, upper, linear);
            uset = 1;
        }
        if (lset && uset)
            break;
        rank += b.c;
    }
    free(v);
    if (!lset || lrank > h->count)
        lrank = h->count;
    if (!uset || urank > h->count)
        urank = h->count;
    return (urank - lrank) / h->count;
}

/* ---- the trim operators </ and >/ ---- */

/* Whether a side has a bucket with observations in it. */
static int populated(const double *c, uint32_t n) {
    for (uint32_t k = 0; k < n; k++)
        if (c[k] != 0)
            return 1;
    return 0;
}

/* One bucket as the trim operators see it: its observations spread over
 * [lo, hi] (linearly, or exponentially for a regular bucket of a standard
 * schema), or, when point is set, all of them at lo = hi (NHCB's open-ended
 * buckets); at is the value a point bucket's observations count as in the
 * estimated sum. */
typedef struct trim_bkt {
    double lo, hi, at;
    int linear, point;
} trim_bkt;

typedef struct trim_acc {
    double t;
    int upper;                  /* </ (drops what is above t), else >/ (below t) */
    int removed;                /* some observations went */
    double kept, sum, sum_comp; /* what is left: count, estimated sum (Kahan) */
} trim_acc;

/* Trims *c, the count of bucket b; adds what stays to the totals. */
static void trim_one(trim_acc *ac, const trim_bkt *b, double *c) {
    if (*c == 0)
        return;
    double t = ac->t, keep, lo = b->lo, hi = b->hi;
    if (b->point) {
        keep = (ac->upper ? lo <= t : lo >= t) ? 1 : 0;
    } else {
        double below = 1;
        if (t <= lo)
            below = 0;
        else if (t < hi)
            below = interp(&(span_bkt){lo, hi, 1}, 0, t, b->linear);
        if (!(below >= 0)) /* NaN from a bound that under- or overflowed */
            below = 0;
        else if (below > 1)
            below = 1;
        keep = ac->upper ? below : 1 - below;
        /* the surviving part of the bucket the threshold cuts */
        if (keep > 0 && keep < 1) {
            if (ac->upper)
                hi = t;
            else
                lo = t;
        }
    }
    if (keep >= 1) {
        keep = 1;
    } else {
        ac->removed = 1;
        *c *= keep;
    }
    if (*c == 0)
        return;
    ac->kept += *c;
    double at = b->at;
    if (!b->point && b->linear)
        at = (lo + hi) / 2;
    else if (!b->point)
        at = (hi < 0 ? -1 : 1) * sqrt(fabs(lo)) * sqrt(fabs(hi)); /* no overflow of lo * hi */
    pq_kahan_inc(*c * at, &ac->sum, &ac->sum_comp);
}

/* The custom bucket of index i (NHCB: linear inside; the lowest starts at 0
 * when its upper bound is positive, else all of it is at -Inf; the overflow
 * bucket is all at +Inf; a histogram without bounds has everything at 0). */
static trim_bkt custom_trim_bkt(const histogram *h, int32_t i) {
    trim_bkt b = {0, 0, 0, 1, 0};
    custom_bounds(h, i, &b.lo, &b.hi);
    if (isinf(b.lo) && isinf(b.hi))
        return (trim_bkt){0, 0, 0, 1, 1};
    if (isinf(b.lo)) {
        if (b.hi > 0)
            b.lo = 0;
        else
            b = (trim_bkt){-INFINITY, -INFINITY, b.hi, 1, 1};
    } else if (isinf(b.hi)) {
        b = (trim_bkt){INFINITY, INFINITY, b.lo, 1, 1};
    }
    return b;
}

static void trim_side(trim_acc *ac, const histogram *h, const hist_span *sp, uint32_t nsp, double *cnt,
                      uint32_t n, int neg) {
    histogram_span_iter it;
    histogram_span_iter_init(&it, sp, nsp);
    int32_t idx;
    for (uint32_t k = 0; k < n && histogram_span_iter_next(&it, &idx); k++) {
        trim_bkt b;
        if (nh_is_custom(h))
            b = custom_trim_bkt(h, idx);
        else if (neg)
            b = (trim_bkt){-nh_bound(idx, h->schema), -nh_bound(idx - 1, h->schema), 0, 0, 0};
        else
            b = (trim_bkt){nh_bound(idx - 1, h->schema), nh_bound(idx, h->schema), 0, 0, 0};
        trim_one(ac, &b, &cnt[k]);
    }
}

histogram *nh_trim(arena *a, const histogram *h, double t, int upper) {
    histogram *o = nh_copy(a, h);
    if (!o || isnan(t))
        return o;
    trim_acc ac = {.t = t, .upper = upper};
    double before = o->zero_count;
    for (uint32_t k = 0; k < o->npos; k++)
        before += o->pos[k];
    for (uint32_t k = 0; k < o->nneg; k++)
        before += o->neg[k];
    if (!nh_is_custom(o)) {
        /* the zero bucket: linear, and only on the side of zero the regular
         * buckets are on when they are all on one side */
        int p = populated(o->pos, o->npos), n = populated(o->neg, o->nneg);
        trim_bkt z = {-o->zero_threshold, o->zero_threshold, 0, 1, 0};
        if (p && !n)
            z.lo = 0;
        else if (n && !p)
            z.hi = 0;
        if (z.lo == z.hi)
            z.point = 1;
        trim_one(&ac, &z, &o->zero_count);
        trim_side(&ac, o, o->neg_spans, o->nneg_spans, o->neg, o->nneg, 1);
    }
    trim_side(&ac, o, o->pos_spans, o->npos_spans, o->pos, o->npos, 0);
    if (ac.removed) {
        /* observations in no bucket (NaN ones) stay */
        o->count = ac.kept + (h->count - before);
        o->sum = ac.sum + ac.sum_comp;
        o->is_int = 0;
    }
    return o;
}

double nh_stdvar(const histogram *h) {
    double mean = h->sum / h->count, var = 0, cvar = 0;
    span_bkt *v;
    long n = all_buckets(h, &v);
    if (n < 0)
        return NAN;
    for (long k = 0; k < n; k++) {
        if (v[k].c == 0)
            continue;
        double val;
        if (nh_is_custom(h))
            val = (v[k].hi + v[k].lo) / 2.0;
        else if (v[k].lo <= 0 && v[k].hi >= 0)
            val = 0;
        else {
            val = sqrt(v[k].hi * v[k].lo);
            if (v[k].hi < 0)
                val = -val;
        }
        double d = val - mean;
        pq_kahan_inc(v[k].c * d * d, &var, &cvar);
    }
    free(v);
    return (var + cvar) / h->count;
}

long query_hist_buckets(const histogram *h, query_hist_bucket **out) {
    span_bkt *v;
    long n = all_buckets(h, &v), k = 0;
    if (n < 0)
        return -1;
    query_hist_bucket *o = malloc(((size_t)n + 1) * sizeof *o);
    if (!o) {
        free(v);
        return -1;
    }
    for (long i = 0; i < n; i++) {
        if (v[i].c == 0)
            continue;
        int zero = !nh_is_custom(h) && v[i].lo < 0 && v[i].hi > 0 && v[i].lo == -h->zero_threshold;
        int neg = !nh_is_custom(h) && !zero && v[i].hi <= 0;
        o[k++] = (query_hist_bucket){zero ? 3 : neg ? 1 : 0, v[i].lo, v[i].hi, v[i].c};
    }
    free(v);
    *out = o;
    return k;
}

void nh_string(const histogram *h, buf *b) {
    char x[FMT_DOUBLE_MAX], y[FMT_DOUBLE_MAX], z[FMT_DOUBLE_MAX];
    buf_printf(b, "{count:%s, sum:%s", pq_gfmt(h->count, x), pq_gfmt(h->sum, y));
    query_hist_bucket *v;
    long n = query_hist_buckets(h, &v);
    /* Go's Bucket.String: the brackets say which ends are inclusive */
    for (long k = 0; k < n; k++)
        buf_printf(b, ", %c%s,%s%c:%s", v[k].boundary & 1 ? '[' : '(', pq_gfmt(v[k].lower, x),
                   pq_gfmt(v[k].upper, y), v[k].boundary == 1 ? ')' : ']', pq_gfmt(v[k].count, z));
    if (n >= 0)
        free(v);
    buf_putc(b, '}');
}
