/*
 * extrange.c - the anchored and smoothed selector modifiers
 * (promql-extended-range-selectors, feature_flags.md "Extended Range
 * Selectors").
 *
 * A window is (t - range, t] at each step t (after offset and @):
 *   anchored  starts at the last sample at or before t - range, if one is
 *             within the lookback delta, else at the first sample in the
 *             window, and ends at the last sample at or before t; no
 *             extrapolation.  rate, increase, delta, resets and changes
 *             read that run of samples.
 *   smoothed  the value at each end of the window is interpolated linearly
 *             between the samples either side of it (within the lookback
 *             delta; for a counter, from 0 when it reset between them),
 *             or is the one sample there is on one side; rate, increase and
 *             delta read those two values and the samples between.  On an
 *             instant selector, the value at t is interpolated the same way
 *             (the last sample alone when none follows).
 * rate is the increase over the range in seconds; increase and rate add
 * back counter resets as usual.  Stale markers are dropped, as for ranges.
 *
 * The parser (check.c) lets these modifiers reach only the functions above;
 * funcs.c and engine.c hand such calls and selectors here.
 * Threading: the query's.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "query/eval.h"

int pq_is_extended_range_call(const promql_expr *e) {
    if (e->u.call.nargs != 1)
        return 0;
    const promql_expr *a = e->u.call.args[0];
    return a->kind == PROMQL_MATRIX_SELECTOR && a->u.ms.vs->u.vs.mode != PROMQL_RANGE_PLAIN;
}

/* The number of samples of s[0..n) at or before t. */
static size_t upto(const sample *s, size_t n, int64_t t) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s[mid].t <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The value at time b from the samples either side within `lookback`;
 * `counter`: a reset between them counts up from 0.  0, or -1 when there
 * is no sample near b. */
static int value_at(const sample *s, size_t n, int64_t b, int64_t lookback, int counter, double *out) {
    size_t i = upto(s, n, b);
    const sample *p = i > 0 && s[i - 1].t > b - lookback ? &s[i - 1] : NULL;
    const sample *q = i < n && s[i].t < b + lookback && !value_is_stale(s[i].v) ? &s[i] : NULL;
    if (p && q) {
        double f = (double)(b - p->t) / (double)(q->t - p->t);
        *out = counter && q->v < p->v ? q->v * f : p->v + (q->v - p->v) * f;
    } else if (p || q) {
        *out = p ? p->v : q->v;
    } else {
        return -1;
    }
    return 0;
}

/* The result of function id over one window ending at te; 0, or -1 for none. */
static int window(promql_func_id id, promql_range_mode mode, const sample *s, size_t n, int64_t te,
                  int64_t range, int64_t lookback, double *out) {
    int64_t ws = te - range;
    size_t a = upto(s, n, ws), b = upto(s, n, te);
    int counter = id == PROMQL_FN_RATE || id == PROMQL_FN_INCREASE;
    double first, last, corr = 0;
    if (mode == PROMQL_RANGE_ANCHORED) {
        size_t si;
        if (a > 0 && s[a - 1].t > ws - lookback)
            si = a - 1;
        else if (a < b)
            si = a;
        else
            return -1;
        size_t ei = b - 1;
        double resets = 0, changes = 0;
        for (size_t j = si + 1; j <= ei; j++) {
            if (s[j].v < s[j - 1].v) {
                resets++;
                corr += s[j - 1].v;
            }
            if (!(s[j].v == s[j - 1].v || (isnan(s[j].v) && isnan(s[j - 1].v))))
                changes++;
        }
        if (id == PROMQL_FN_RESETS || id == PROMQL_FN_CHANGES) {
            *out = id == PROMQL_FN_RESETS ? resets : changes;
            return 0;
        }
        first = s[si].v;
        last = s[ei].v;
    } else {
        if (value_at(s, n, ws, lookback, counter, &first) < 0 ||
            value_at(s, n, te, lookback, counter, &last) < 0)
            return -1;
        double prev = first;
        for (size_t j = a; j < b; j++) {
            if (s[j].v < prev)
                corr += prev;
            prev = s[j].v;
        }
        if (last < prev)
            corr += prev;
    }
    double d = last - first + (counter ? corr : 0);
    *out = id == PROMQL_FN_RATE ? d / ((double)range / 1000.0) : d;
    return 0;
}

/* Copies the samples of s without stale markers into the query's memory. */
static sample *unstale(pq_ctx *c, const series *s, size_t *n) {
    sample *v = arena_alloc_nz(c->mem, (s->n + 1) * sizeof *v);
    *n = 0;
    if (!v)
        return NULL;
    for (size_t j = 0; j < s->n; j++)
        if (!value_is_stale(s->s[j].v))
            v[(*n)++] = s->s[j];
    return v;
}

/* Evaluates, for each series of selector vs and each step, `fn` of its
 * samples at te (the step's time after offset and @), selecting `before`
 * and `after` more; `range`: a range function (stale markers dropped,
 * __name__ dropped from the result). */
typedef int (*step_fn)(const promql_expr *e, const sample *s, size_t n, int64_t te, int64_t lookback,
                       double *out);

KILN_MUST_CHECK static int each_series(pq_ctx *c, const promql_expr *e, const promql_vector_selector *vs,
                                       int64_t before, int64_t after, int range, step_fn fn, pq_value *out) {
    int has_at = vs->at != PROMQL_AT_NONE;
    int64_t at = has_at ? pq_at_time(c, vs->at, vs->at_ms) : 0;
    int64_t tmin = (has_at ? at : c->start) - vs->offset_ms;
    int64_t tmax = (has_at ? at : c->end) - vs->offset_ms;
    series_set *set;
    if (pq_select(c, vs, tmin - before + 1, tmax + after, &set) < 0)
        return c->code;
    out->type = PROMQL_TYPE_VECTOR;
    size_t cap = pq_step_cap(c);
    sample *tmp = malloc((cap + 1) * sizeof *tmp);
    if (!tmp)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    for (size_t i = 0; i < set->n && !c->code; i++) {
        size_t n = set->v[i].n, np = 0;
        /* a range drops stale markers; an instant selector stops at one */
        const sample *s = range ? unstale(c, &set->v[i], &n) : set->v[i].s;
        if (!s) {
            pq_fail(c, KILN_ENOMEM, "out of memory");
            break;
        }
        for (size_t k = 0; k < c->nsteps && n; k++) {
            int64_t t = c->start + (int64_t)k * c->interval;
            double v;
            if ((k & 0xffff) == 0xffff && pq_poll(c) < 0)
                break;
            if (fn(e, s, n, (has_at ? at : t) - vs->offset_ms, c->lookback, &v) < 0)
                continue;
            if (np == cap) {
                pq_fail(c, KILN_ELIMIT, "%s", PQ_TOO_MANY_SAMPLES);
                break;
            }
            tmp[np++] = (sample){t, v};
        }
        if (!c->code && np &&
            pq_matrix_push_copy(c, &out->m, set->v[i].ls, set->v[i].nls, range, tmp, np) < 0)
            break;
    }
    free(tmp);
    return c->code;
}

static int range_step(const promql_expr *e, const sample *s, size_t n, int64_t te, int64_t lookback,
                      double *out) {
    const promql_expr *ms = e->u.call.args[0];
    return window(e->u.call.func->id, ms->u.ms.vs->u.vs.mode, s, n, te, ms->u.ms.range_ms, lookback, out);
}

int pq_eval_extended_range(pq_ctx *c, const promql_expr *e, pq_value *out) {
    const promql_expr *ms = e->u.call.args[0];
    const promql_vector_selector *vs = &ms->u.ms.vs->u.vs;
    int64_t after = vs->mode == PROMQL_RANGE_SMOOTHED ? c->lookback : 0;
    return each_series(c, e, vs, ms->u.ms.range_ms + c->lookback, after, 1, range_step, out);
}

static int instant_step(const promql_expr *e, const sample *s, size_t n, int64_t te, int64_t lookback,
                        double *out) {
    (void)e;
    size_t i = upto(s, n, te);
    if (i == 0 || s[i - 1].t <= te - lookback || value_is_stale(s[i - 1].v))
        return -1; /* nothing to interpolate from, or stale: no value, as without smoothed */
    return value_at(s, n, te, lookback, 0, out);
}

int pq_eval_smoothed_selector(pq_ctx *c, const promql_expr *e, pq_value *out) {
    return each_series(c, e, &e->u.vs, c->lookback, c->lookback, 0, instant_step, out);
}
