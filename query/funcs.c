/*
 * funcs.c - PromQL functions: the range-vector functions (rate, the
 * *_over_time family, deriv, ...) evaluated series at a time by sliding a
 * window over all steps, the instant-vector functions (math, dates, clamp,
 * label_replace, sort, histogram_quantile, ...) and the scalar ones.
 *
 * The arithmetic follows Prometheus 3.x exactly where results depend on it:
 * extrapolatedRate (counter resets, extrapolation to the range boundaries
 * limited to 1.1x the average sample interval, zero point of counters),
 * Neumaier-compensated sums and means, least squares relative to the
 * evaluation time, Prometheus' quantile and classic-bucket interpolation
 * with its monotonicity fixes.
 *
 * Threading: called by the evaluator of one query (one thread).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "query/eval.h"

/* ---- small numeric helpers ---- */

double pq_go_max(double a, double b) {
    if (isinf(a) && a > 0)
        return a;
    if (isinf(b) && b > 0)
        return b;
    if (isnan(a) || isnan(b))
        return NAN;
    if (a == 0 && b == 0)
        return signbit(a) ? b : a;
    return a > b ? a : b;
}

double pq_go_min(double a, double b) {
    if (isinf(a) && a < 0)
        return a;
    if (isinf(b) && b < 0)
        return b;
    if (isnan(a) || isnan(b))
        return NAN;
    if (a == 0 && b == 0)
        return signbit(a) ? a : b;
    return a < b ? a : b;
}

void pq_kahan_inc(double inc, double *sum, double *c) {
    double t = *sum + inc;
    if (isinf(t))
        *c = 0;
    else if (fabs(*sum) >= fabs(inc))
        *c += (*sum - t) + inc;
    else
        *c += (inc - t) + *sum;
    *sum = t;
}

/* NaN sorts first, as Prometheus' vectorByValueHeap. */
static int nan_first_less(double a, double b) {
    return isnan(a) ? !isnan(b) : !isnan(b) && a < b;
}

/*
 * Moves the k-th smallest value (NaN first) of v[0..n) to v[k], the smaller
 * ones before it and the others after it (quickselect, Hoare partition):
 * linear time, where sorting the whole input would cost n log n (quantile()
 * over a big vector at each step of a range query).
 */
static void nth_nan_first(double *v, size_t n, size_t k) {
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;
    while (hi > lo) {
        double a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi];
        double pivot = nan_first_less(a, b) ? (nan_first_less(b, c)   ? b
                                               : nan_first_less(a, c) ? c
                                                                      : a)
                                            : (nan_first_less(a, c)   ? a
                                               : nan_first_less(b, c) ? c
                                                                      : b);
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (nan_first_less(v[i], pivot))
                i++;
            while (nan_first_less(pivot, v[j]))
                j--;
            if (i <= j) {
                double t = v[i];
                v[i++] = v[j];
                v[j--] = t;
            }
        }
        /* v[lo..j] <= pivot, v[i..hi] >= pivot, anything between == pivot */
        if (kk <= j)
            hi = j;
        else if (kk >= i)
            lo = i;
        else
            return;
    }
}

double pq_quantile(double q, double *v, size_t n) {
    if (n == 0 || isnan(q))
        return NAN;
    if (q < 0)
        return -INFINITY;
    if (q > 1)
        return INFINITY;
    double fn = (double)n;
    double rank = q * (fn - 1);
    double lower = fmax(0, floor(rank));
    double upper = fmin(fn - 1, lower + 1);
    double weight = rank - floor(rank);
    size_t li = (size_t)lower, ui = (size_t)upper;
    nth_nan_first(v, n, li);
    /* the next value in order is the least of those after v[li] */
    double uv = v[li];
    if (ui > li) {
        uv = v[li + 1];
        for (size_t i = li + 2; i < n; i++)
            if (nan_first_less(v[i], uv))
                uv = v[i];
    }
    return v[li] * (1 - weight) + uv * weight;
}

/* ---- range-vector functions over one window ---- */

typedef struct win {
    const sample *s;
    size_t n;
    int64_t t;           /* evaluation time (step or @) */
    int64_t range_start; /* t - offset - range */
    int64_t range_end;   /* t - offset */
    int64_t range_ms;
    const uint32_t *resets; /* counter resets up to each sample of s (prefix counts), or NULL */
} win;

static int extrapolated_rate(const win *w, int is_counter, int is_rate, double *out) {
    if (w->n < 2)
        return 0;
    size_t nm1 = w->n - 1;
    int64_t first_t = w->s[0].t, last_t = w->s[nm1].t;
    double result = w->s[nm1].v - w->s[0].v;
    /* with the prefix counts, a window without a reset skips the scan */
    if (is_counter && (!w->resets || w->resets[nm1] != w->resets[0])) {
        double prev = w->s[0].v;
        for (size_t i = 1; i < w->n; i++) {
            if (w->s[i].v < prev)
                result += prev;
            prev = w->s[i].v;
        }
    }
    double to_start = (double)(first_t - w->range_start) / 1000;
    double to_end = (double)(w->range_end - last_t) / 1000;
    double sampled = (double)(last_t - first_t) / 1000;
    double avg = sampled / (double)nm1;
    double threshold = avg * 1.1;
    double interval = sampled;
    if (to_start >= threshold)
        to_start = avg / 2;
    if (is_counter && result > 0 && w->s[0].v >= 0) {
        double to_zero = sampled * (w->s[0].v / result);
        if (to_zero < to_start)
            to_start = to_zero;
    }
    interval += to_start;
    if (to_end >= threshold)
        to_end = avg / 2;
    interval += to_end;
    double factor = interval / sampled;
    if (is_rate)
        factor /= (double)w->range_ms / 1000;
    *out = result * factor;
    return 1;
}

static int instant_value(const win *w, int is_rate, double *out) {
    if (w->n < 2)
        return 0;
    const sample *last = &w->s[w->n - 1], *prev = &w->s[w->n - 2];
    double r;
    if (is_rate && last->v < prev->v)
        r = last->v;
    else
        r = last->v - prev->v;
    if (is_rate) {
        int64_t dt = last->t - prev->t;
        if (dt == 0)
            return 0;
        r /= (double)dt / 1000;
    }
    *out = r;
    return 1;
}

static void linear_regression(const sample *s, size_t n, int64_t icept_t, double *slope, double *icept) {
    double cnt = 0, sx = 0, cx = 0, sy = 0, cy = 0, sxy = 0, cxy = 0, sx2 = 0, cx2 = 0;
    double init = s[0].v;
    int const_y = 1;
    for (size_t i = 0; i < n; i++) {
        if (const_y && i > 0 && s[i].v != init)
            const_y = 0;
        cnt += 1;
        double x = (double)(s[i].t - icept_t) / 1e3;
        pq_kahan_inc(x, &sx, &cx);
        pq_kahan_inc(s[i].v, &sy, &cy);
        pq_kahan_inc(x * s[i].v, &sxy, &cxy);
        pq_kahan_inc(x * x, &sx2, &cx2);
    }
    if (const_y) {
        if (isinf(init)) {
            *slope = NAN;
            *icept = NAN;
        } else {
            *slope = 0;
            *icept = init;
        }
        return;
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    double cov = sxy - sx * sy / cnt;
    double var = sx2 - sx * sx / cnt;
    *slope = cov / var;
    *icept = sy / cnt - *slope * sx / cnt;
}

static double avg_values(const sample *s, size_t n) {
    double sum = 0, mean = 0, count = 0, kc = 0;
    int incremental = 0;
    for (size_t i = 0; i < n; i++) {
        double f = s[i].v;
        count++;
        if (!incremental) {
            double ns = sum, nc = kc;
            pq_kahan_inc(f, &ns, &nc);
            if (count == 1 || !isinf(ns)) {
                sum = ns;
                kc = nc;
                continue;
            }
            incremental = 1;
            mean = sum / (count - 1);
            kc /= count - 1;
        }
        if (isinf(mean)) {
            if (isinf(f) && (mean > 0) == (f > 0))
                continue;
            if (!isinf(f) && !isnan(f))
                continue;
        }
        double corrected = mean + kc;
        pq_kahan_inc(f / count - corrected / count, &mean, &kc);
    }
    if (incremental)
        return mean + kc;
    return (sum + kc) / count;
}

static double stdvar_values(const sample *s, size_t n) {
    double count = 0, mean = 0, cmean = 0, aux = 0, caux = 0;
    for (size_t i = 0; i < n; i++) {
        count++;
        double delta = s[i].v - (mean + cmean);
        pq_kahan_inc(delta / count, &mean, &cmean);
        pq_kahan_inc(delta * (s[i].v - (mean + cmean)), &aux, &caux);
    }
    return (aux + caux) / count;
}

static int des_value(const sample *s, size_t n, double sf, double tf, double *out) {
    if (n < 2)
        return 0;
    double s0 = 0, s1 = s[0].v, b = s[1].v - s[0].v;
    for (size_t i = 1; i < n; i++) {
        double x = sf * s[i].v;
        if (i - 1 != 0)
            b = tf * (s1 - s0) + (1 - tf) * b;
        double y = (1 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    *out = s1;
    return 1;
}

/* Computes a range function over one window; 1 when it has a value. */
static int range_fn(pq_ctx *c, promql_func_id id, const win *w, double a0, double a1, double *out) {
    const sample *s = w->s;
    size_t n = w->n;
    switch (id) {
    case PROMQL_FN_RATE:
        return extrapolated_rate(w, 1, 1, out);
    case PROMQL_FN_INCREASE:
        return extrapolated_rate(w, 1, 0, out);
    case PROMQL_FN_DELTA:
        return extrapolated_rate(w, 0, 0, out);
    case PROMQL_FN_IRATE:
        return instant_value(w, 1, out);
    case PROMQL_FN_IDELTA:
        return instant_value(w, 0, out);
    default:
        break;
    }
    if (n == 0)
        return 0;
    switch (id) {
    case PROMQL_FN_AVG_OVER_TIME:
        *out = avg_values(s, n);
        return 1;
    case PROMQL_FN_SUM_OVER_TIME: {
        double sum = 0, kc = 0;
        for (size_t i = 0; i < n; i++)
            pq_kahan_inc(s[i].v, &sum, &kc);
        *out = isinf(sum) ? sum : sum + kc;
        return 1;
    }
    case PROMQL_FN_COUNT_OVER_TIME:
        *out = (double)n;
        return 1;
    case PROMQL_FN_MIN_OVER_TIME: {
        double m = s[0].v;
        for (size_t i = 1; i < n; i++)
            if (s[i].v < m || isnan(m))
                m = s[i].v;
        *out = m;
        return 1;
    }
    case PROMQL_FN_MAX_OVER_TIME: {
        double m = s[0].v;
        for (size_t i = 1; i < n; i++)
            if (s[i].v > m || isnan(m))
                m = s[i].v;
        *out = m;
        return 1;
    }
    case PROMQL_FN_LAST_OVER_TIME:
        *out = s[n - 1].v;
        return 1;
    case PROMQL_FN_FIRST_OVER_TIME:
        *out = s[0].v;
        return 1;
    case PROMQL_FN_TS_OF_LAST_OVER_TIME:
        *out = (double)s[n - 1].t / 1000;
        return 1;
    case PROMQL_FN_TS_OF_FIRST_OVER_TIME:
        *out = (double)s[0].t / 1000;
        return 1;
    case PROMQL_FN_TS_OF_MAX_OVER_TIME:
    case PROMQL_FN_TS_OF_MIN_OVER_TIME: {
        size_t best = 0;
        for (size_t i = 1; i < n; i++) {
            double m = s[best].v;
            int better =
                id == PROMQL_FN_TS_OF_MAX_OVER_TIME ? (s[i].v >= m || isnan(m)) : (s[i].v <= m || isnan(m));
            if (better && !isnan(s[i].v))
                best = i;
            else if (isnan(m))
                best = i;
        }
        *out = (double)s[best].t / 1000;
        return 1;
    }
    case PROMQL_FN_PRESENT_OVER_TIME:
        *out = 1;
        return 1;
    case PROMQL_FN_STDDEV_OVER_TIME:
        *out = sqrt(stdvar_values(s, n));
        return 1;
    case PROMQL_FN_STDVAR_OVER_TIME:
        *out = stdvar_values(s, n);
        return 1;
    case PROMQL_FN_QUANTILE_OVER_TIME:
    case PROMQL_FN_MAD_OVER_TIME: {
        double *v = malloc(n * sizeof(double));
        if (!v)
            return pq_fail(c, KILN_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++)
            v[i] = s[i].v;
        if (id == PROMQL_FN_QUANTILE_OVER_TIME) {
            *out = pq_quantile(a0, v, n);
        } else {
            int has_nan = 0;
            for (size_t i = 0; i < n; i++)
                if (isnan(v[i]))
                    has_nan = 1;
            if (has_nan) {
                free(v);
                *out = NAN;
                return 1;
            }
            double med = pq_quantile(0.5, v, n);
            for (size_t i = 0; i < n; i++)
                v[i] = fabs(s[i].v - med);
            *out = pq_quantile(0.5, v, n);
        }
        free(v);
        return 1;
    }
    case PROMQL_FN_CHANGES: {
        double ch = 0;
        for (size_t i = 1; i < n; i++) {
            double p = s[i - 1].v, q = s[i].v;
            if (q != p && !(isnan(q) && isnan(p)))
                ch++;
        }
        *out = ch;
        return 1;
    }
    case PROMQL_FN_RESETS: {
        double r = 0;
        for (size_t i = 1; i < n; i++)
            if (s[i].v < s[i - 1].v)
                r++;
        *out = r;
        return 1;
    }
    case PROMQL_FN_DERIV: {
        if (n < 2)
            return 0;
        double slope, icept;
        linear_regression(s, n, s[0].t, &slope, &icept);
        *out = slope;
        return 1;
    }
    case PROMQL_FN_PREDICT_LINEAR: {
        if (n < 2)
            return 0;
        double slope, icept;
        linear_regression(s, n, w->t, &slope, &icept);
        *out = slope * a0 + icept;
        return 1;
    }
    case PROMQL_FN_DOUBLE_EXPONENTIAL_SMOOTHING:
        return des_value(s, n, a0, a1, out);
    default:
        return 0;
    }
}

static int keeps_name(promql_func_id id) {
    return id == PROMQL_FN_LAST_OVER_TIME || id == PROMQL_FN_FIRST_OVER_TIME;
}

static int name_is_counterish(const char *name) {
    static const char *suf[] = {"_total", "_sum", "_count", "_bucket"};
    size_t n = strlen(name);
    for (size_t i = 0; i < 4; i++) {
        size_t k = strlen(suf[i]);
        if (n >= k && memcmp(name + n - k, suf[i], k) == 0)
            return 1;
    }
    return 0;
}

/* Scalar argument i (per step values) of call e; NULL on error. */
static double *scalar_arg(pq_ctx *c, const promql_expr *e, size_t i) {
    pq_value v;
    memset(&v, 0, sizeof v);
    if (pq_eval(c, e->u.call.args[i], &v) < 0)
        return NULL;
    return v.scal;
}

static int eval_range_func(pq_ctx *c, const promql_expr *e, pq_value *out) {
    promql_func_id id = e->u.call.func->id;
    size_t mi = 0;
    double *a0 = NULL, *a1 = NULL;
    if (id == PROMQL_FN_QUANTILE_OVER_TIME) {
        mi = 1;
        if (!(a0 = scalar_arg(c, e, 0)))
            return c->code;
    } else if (id == PROMQL_FN_PREDICT_LINEAR) {
        if (!(a0 = scalar_arg(c, e, 1)))
            return c->code;
    } else if (id == PROMQL_FN_DOUBLE_EXPONENTIAL_SMOOTHING) {
        if (!(a0 = scalar_arg(c, e, 1)) || !(a1 = scalar_arg(c, e, 2)))
            return c->code;
    }
    pq_range_arg ra;
    memset(&ra, 0, sizeof ra);
    int rc = pq_eval_range_arg(c, e->u.call.args[mi], &ra);
    if (rc < 0)
        return rc;
    out->type = PROMQL_TYPE_VECTOR;
    const promql_expr *argpos = e->u.call.args[mi];

    if (id == PROMQL_FN_QUANTILE_OVER_TIME) {
        for (size_t k = 0; k < c->nsteps; k++)
            if (isnan(a0[k]) || a0[k] < 0 || a0[k] > 1) {
                char g[FMT_DOUBLE_MAX];
                pq_warn(c, e->u.call.args[0], "quantile value should be between 0 and 1, got %s",
                        pq_gfmt(a0[k], g));
                break;
            }
    }
    if (id == PROMQL_FN_DOUBLE_EXPONENTIAL_SMOOTHING && ra.m.n > 0) {
        for (size_t k = 0; k < c->nsteps; k++) {
            if (a0[k] <= 0 || a0[k] >= 1 || isnan(a0[k]))
                return pq_fail(c, KILN_ERANGE, "invalid smoothing factor. Expected: 0 < sf < 1, got: %f",
                               a0[k]);
            if (a1[k] <= 0 || a1[k] >= 1 || isnan(a1[k]))
                return pq_fail(c, KILN_ERANGE, "invalid trend factor. Expected: 0 < tf < 1, got: %f", a1[k]);
        }
    }

    if (id == PROMQL_FN_ABSENT_OVER_TIME) {
        /* One output series: 1 at each step where no input has a sample. */
        sample *pts = arena_alloc_nz(c->mem, c->nsteps * sizeof(sample) + 1);
        size_t *lo = calloc(ra.m.n + 1, sizeof(size_t));
        if (!pts || !lo) {
            free(lo);
            return pq_fail(c, KILN_ENOMEM, "out of memory");
        }
        size_t np = 0;
        for (size_t k = 0; k < c->nsteps; k++) {
            int64_t t = c->start + (int64_t)k * c->interval;
            int64_t te = (ra.at ? ra.at_ms : t) - ra.offset_ms;
            int found = 0;
            for (size_t i = 0; i < ra.m.n && !found; i++) {
                const pq_series *s = &ra.m.v[i];
                size_t j = 0;
                while (j < s->npts && s->pts[j].t <= te - ra.range_ms)
                    j++;
                if (j < s->npts && s->pts[j].t <= te)
                    found = 1;
            }
            if (!found)
                pts[np++] = (sample){t, 1};
        }
        free(lo);
        if (np) {
            pq_series *o;
            if (pq_matrix_push(c, &out->m, &o) < 0)
                return c->code;
            size_t nls = 0;
            label *ls = NULL;
            if (ra.sel) {
                /* labels from the equality matchers, as Prometheus' absent */
                labels_builder *b = &c->lb;
                lb_reset(b);
                const promql_vector_selector *vs = &ra.sel->u.vs;
                for (size_t i = 0; i < vs->nmatchers; i++) {
                    const matcher *m = &vs->matchers[i];
                    if (strcmp(m->name, LABEL_NAME) == 0)
                        continue;
                    int has = 0;
                    for (size_t j = 0; j < i; j++)
                        if (strcmp(vs->matchers[j].name, m->name) == 0 && vs->matchers[j].type == MATCH_EQ)
                            has = 1;
                    if (m->type == MATCH_EQ && !has) {
                        if (lb_set(b, m->name, m->value) < 0)
                            return pq_fail(c, KILN_ENOMEM, "out of memory");
                    } else {
                        lb_del(b, m->name);
                    }
                }
                const label *bl = lb_labels(b, &nls);
                ls = labels_copy(c->mem, bl, nls);
                if (!ls && nls)
                    return pq_fail(c, KILN_ENOMEM, "out of memory");
            }
            o->ls = ls;
            o->nls = nls;
            o->pts = pts;
            o->npts = np;
        }
        return 0;
    }

    int is_rateish = id == PROMQL_FN_RATE || id == PROMQL_FN_INCREASE;
    int info_done = 0;
    sample *tmp = c->nsteps ? malloc(c->nsteps * sizeof(sample)) : NULL;
    if (c->nsteps && !tmp)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    uint32_t *resets = NULL;
    size_t resets_cap = 0;
    for (size_t i = 0; i < ra.m.n; i++) {
        const pq_series *in = &ra.m.v[i];
        size_t lo = 0, hi = 0, np = 0;
        if (is_rateish && in->npts) {
            if (in->npts > resets_cap) {
                uint32_t *nr = realloc(resets, in->npts * sizeof *nr);
                if (!nr) {
                    free(tmp);
                    free(resets);
                    return pq_fail(c, KILN_ENOMEM, "out of memory");
                }
                resets = nr;
                resets_cap = in->npts;
            }
            resets[0] = 0;
            for (size_t j = 1; j < in->npts; j++)
                resets[j] = resets[j - 1] + (in->pts[j].v < in->pts[j - 1].v);
        }
        int had_floats = 0;
        for (size_t k = 0; k < c->nsteps; k++) {
            int64_t t = c->start + (int64_t)k * c->interval;
            int64_t te = (ra.at ? ra.at_ms : t) - ra.offset_ms;
            int64_t rs = te - ra.range_ms;
            if (ra.at) {
                lo = 0;
                hi = 0;
            }
            while (lo < in->npts && in->pts[lo].t <= rs)
                lo++;
            if (hi < lo)
                hi = lo;
            while (hi < in->npts && in->pts[hi].t <= te)
                hi++;
            win w = {in->pts + lo, hi - lo, t, rs, te, ra.range_ms, is_rateish ? resets + lo : NULL};
            if (w.n)
                had_floats = 1;
            double v = 0;
            /* a long series of wide windows (subqueries) checks the deadline as it goes */
            int r = (k & 1023) == 1023 && pq_poll(c) < 0
                        ? c->code
                        : range_fn(c, id, &w, a0 ? a0[k] : 0, a1 ? a1[k] : 0, &v);
            if (r < 0) {
                free(tmp);
                free(resets);
                return r;
            }
            if (r)
                tmp[np++] = (sample){t, v};
        }
        if (is_rateish && had_floats && !info_done) {
            const char *name = labels_get(in->ls, in->nls, LABEL_NAME);
            if (name && !name_is_counterish(name)) {
                pq_info(
                    c, argpos,
                    "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"%s\"",
                    name);
                info_done = 1;
            }
        }
        if (!np)
            continue;
        if (pq_account(c, np) < 0) {
            free(tmp);
            free(resets);
            return c->code;
        }
        pq_series *o;
        if (pq_matrix_push(c, &out->m, &o) < 0) {
            free(tmp);
            free(resets);
            return c->code;
        }
        o->ls = in->ls;
        o->nls = in->nls;
        o->drop_name = keeps_name(id) ? in->drop_name : 1;
        o->pts = arena_alloc_nz(c->mem, np * sizeof(sample));
        if (!o->pts) {
            free(tmp);
            free(resets);
            return pq_fail(c, KILN_ENOMEM, "out of memory");
        }
        memcpy(o->pts, tmp, np * sizeof(sample));
        o->npts = np;
    }
    free(tmp);
    free(resets);
    return 0;
}

/* ---- instant-vector functions applied point by point ---- */

static double date_part(promql_func_id id, double v) {
    if (isnan(v) || isinf(v))
        return NAN;
    time_t tt = (time_t)(int64_t)v;
    struct tm tm;
    if (!gmtime_r(&tt, &tm))
        return NAN;
    switch (id) {
    case PROMQL_FN_DAY_OF_MONTH:
        return tm.tm_mday;
    case PROMQL_FN_DAY_OF_WEEK:
        return tm.tm_wday;
    case PROMQL_FN_DAY_OF_YEAR:
        return tm.tm_yday + 1;
    case PROMQL_FN_HOUR:
        return tm.tm_hour;
    case PROMQL_FN_MINUTE:
        return tm.tm_min;
    case PROMQL_FN_MONTH:
        return tm.tm_mon + 1;
    case PROMQL_FN_YEAR:
        return (double)tm.tm_year + 1900;
    case PROMQL_FN_DAYS_IN_MONTH: {
        static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int y = tm.tm_year + 1900, d = dim[tm.tm_mon];
        if (tm.tm_mon == 1 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
            d = 29;
        return d;
    }
    default:
        return NAN;
    }
}

static double math_fn(promql_func_id id, double v, double a, double b) {
    switch (id) {
    case PROMQL_FN_ABS:
        return fabs(v);
    case PROMQL_FN_CEIL:
        return ceil(v);
    case PROMQL_FN_FLOOR:
        return floor(v);
    case PROMQL_FN_EXP:
        return exp(v);
    case PROMQL_FN_SQRT:
        return sqrt(v);
    case PROMQL_FN_LN:
        return log(v);
    case PROMQL_FN_LOG2:
        return log2(v);
    case PROMQL_FN_LOG10:
        return log10(v);
    case PROMQL_FN_SIN:
        return sin(v);
    case PROMQL_FN_COS:
        return cos(v);
    case PROMQL_FN_TAN:
        return tan(v);
    case PROMQL_FN_ASIN:
        return asin(v);
    case PROMQL_FN_ACOS:
        return acos(v);
    case PROMQL_FN_ATAN:
        return atan(v);
    case PROMQL_FN_SINH:
        return sinh(v);
    case PROMQL_FN_COSH:
        return cosh(v);
    case PROMQL_FN_TANH:
        return tanh(v);
    case PROMQL_FN_ASINH:
        return asinh(v);
    case PROMQL_FN_ACOSH:
        return acosh(v);
    case PROMQL_FN_ATANH:
        return atanh(v);
    case PROMQL_FN_DEG:
        return v * 180 / M_PI;
    case PROMQL_FN_RAD:
        return v * M_PI / 180;
    case PROMQL_FN_SGN:
        return v > 0 ? 1 : v < 0 ? -1 : v;
    case PROMQL_FN_CLAMP:
        return pq_go_max(a, pq_go_min(b, v));
    case PROMQL_FN_CLAMP_MAX:
        return pq_go_min(a, v);
    case PROMQL_FN_CLAMP_MIN:
        return pq_go_max(a, v);
    case PROMQL_FN_ROUND: {
        double inv = 1.0 / a;
        return floor(v * inv + 0.5) / inv;
    }
    default:
        return date_part(id, v);
    }
}

static int eval_pointwise(pq_ctx *c, const promql_expr *e, pq_value *out) {
    promql_func_id id = e->u.call.func->id;
    const promql_call *call = &e->u.call;
    double *a = NULL, *b = NULL;
    if (id == PROMQL_FN_CLAMP) {
        if (!(a = scalar_arg(c, e, 1)) || !(b = scalar_arg(c, e, 2)))
            return c->code;
    } else if ((id == PROMQL_FN_CLAMP_MAX || id == PROMQL_FN_CLAMP_MIN) ||
               (id == PROMQL_FN_ROUND && call->nargs > 1)) {
        if (!(a = scalar_arg(c, e, 1)))
            return c->code;
    }
    out->type = PROMQL_TYPE_VECTOR;
    pq_value in;
    memset(&in, 0, sizeof in);
    if (call->nargs == 0) {
        /* date functions default to vector(time()) */
        pq_series *o;
        if (pq_matrix_push(c, &out->m, &o) < 0)
            return c->code;
        o->pts = arena_alloc_nz(c->mem, c->nsteps * sizeof(sample) + 1);
        if (!o->pts)
            return pq_fail(c, KILN_ENOMEM, "out of memory");
        for (size_t k = 0; k < c->nsteps; k++) {
            int64_t t = c->start + (int64_t)k * c->interval;
            o->pts[k] = (sample){t, math_fn(id, (double)(t / 1000), 0, 0)};
        }
        o->npts = c->nsteps;
        return 0;
    }
    int rc = pq_eval(c, call->args[0], &in);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < in.m.n; i++) {
        const pq_series *s = &in.m.v[i];
        sample *pts = arena_alloc_nz(c->mem, s->npts * sizeof(sample) + 1);
        if (!pts)
            return pq_fail(c, KILN_ENOMEM, "out of memory");
        size_t np = 0;
        for (size_t j = 0; j < s->npts; j++) {
            size_t k = pq_step_idx(c, s->pts[j].t);
            double av = a ? a[k] : 1, bv = b ? b[k] : 0;
            if (id == PROMQL_FN_CLAMP && bv < av)
                continue;
            pts[np++] = (sample){s->pts[j].t, math_fn(id, s->pts[j].v, av, bv)};
        }
        if (!np)
            continue;
        pq_series *o;
        if (pq_matrix_push(c, &out->m, &o) < 0)
            return c->code;
        o->ls = s->ls;
        o->nls = s->nls;
        o->drop_name = 1;
        o->pts = pts;
        o->npts = np;
    }
    return 0;
}

/* ---- label_replace / label_join ---- */

static int dst_name_valid(const char *s) {
    size_t n = strlen(s);
    return n > 0 && utf8_valid(s, n);
}

/* Appends the expansion of template `tpl` (Go's Regexp.Expand). */
static int expand_tpl(buf *out, const char *tpl, const char *subj, PCRE2_SIZE *ov, int nmatch,
                      pcre2_code *re) {
    for (const char *p = tpl; *p;) {
        if (*p != '$') {
            if (buf_putc(out, *p++) < 0)
                return KILN_ENOMEM;
            continue;
        }
        p++;
        if (*p == '$') {
            if (buf_putc(out, '$') < 0)
                return KILN_ENOMEM;
            p++;
            continue;
        }
        const char *nm;
        size_t nl;
        if (*p == '{') {
            const char *q = p + 1;
            while (*q && (*q == '_' || (*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z') ||
                          (*q >= 'A' && *q <= 'Z')))
                q++;
            if (*q != '}' || q == p + 1) {
                if (buf_putc(out, '$') < 0)
                    return KILN_ENOMEM;
                continue;
            }
            nm = p + 1;
            nl = (size_t)(q - nm);
            p = q + 1;
        } else {
            const char *q = p;
            while (*q && (*q == '_' || (*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z') ||
                          (*q >= 'A' && *q <= 'Z')))
                q++;
            if (q == p) {
                if (buf_putc(out, '$') < 0)
                    return KILN_ENOMEM;
                continue;
            }
            nm = p;
            nl = (size_t)(q - p);
            p = q;
        }
        long idx = -1;
        int numeric = 1;
        for (size_t i = 0; i < nl; i++)
            if (nm[i] < '0' || nm[i] > '9')
                numeric = 0;
        char name[128];
        if (numeric) {
            idx = nl < 9 ? strtol(nm, NULL, 10) : -1;
        } else if (nl < sizeof name) {
            memcpy(name, nm, nl);
            name[nl] = 0;
            int r = pcre2_substring_number_from_name(re, (PCRE2_SPTR)name);
            idx = r >= 0 ? r : -1;
        }
        if (idx >= 0 && idx < nmatch && ov[2 * idx] != PCRE2_UNSET) {
            if (buf_append(out, subj + ov[2 * idx], ov[2 * idx + 1] - ov[2 * idx]) < 0)
                return KILN_ENOMEM;
        }
    }
    return 0;
}

static const char *str_arg(const promql_expr *e) {
    e = pq_unparen(e);
    return e->kind == PROMQL_STRING ? e->u.string.s : "";
}

static int eval_label_fn(pq_ctx *c, const promql_expr *e, pq_value *out) {
    promql_func_id id = e->u.call.func->id;
    const promql_call *call = &e->u.call;
    const char *dst = str_arg(call->args[1]);
    pcre2_code *re = NULL;
    pcre2_match_data *md = NULL;
    buf val = BUF_INIT;
    pq_out col;
    pq_out_init(&col);
    int rc = 0;
    const char *fname = id == PROMQL_FN_LABEL_REPLACE ? "label_replace" : "label_join";

    for (size_t i = 2; i < call->nargs; i++) {
        /* strings must be literals for these functions; nothing to do */
    }
    if (id == PROMQL_FN_LABEL_REPLACE) {
        const char *regex = str_arg(call->args[4]);
        buf pat = BUF_INIT;
        if (buf_puts(&pat, "^(?s:") < 0 || buf_puts(&pat, regex) < 0 || buf_puts(&pat, ")$") < 0) {
            buf_free(&pat);
            rc = pq_fail(c, KILN_ENOMEM, "out of memory");
            goto fail;
        }
        int ecode;
        PCRE2_SIZE eoff;
        re = pcre2_compile((PCRE2_SPTR)pat.data, pat.len, PCRE2_UTF | PCRE2_DOLLAR_ENDONLY, &ecode, &eoff,
                           NULL);
        buf_free(&pat);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(ecode, msg, sizeof msg);
            rc = pq_fail(c, KILN_ERANGE, "invalid regular expression in label_replace(): %s", regex);
            goto fail;
        }
        md = pcre2_match_data_create_from_pattern(re, NULL);
        if (!md) {
            rc = pq_fail(c, KILN_ENOMEM, "out of memory");
            goto fail;
        }
    }
    if (!dst_name_valid(dst)) {
        rc = pq_fail(c, KILN_ERANGE, "invalid destination label name in %s(): %s", fname, dst);
        goto fail;
    }
    if (id == PROMQL_FN_LABEL_JOIN) {
        for (size_t i = 3; i < call->nargs; i++) {
            const char *src = str_arg(call->args[i]);
            if (!dst_name_valid(src)) {
                rc = pq_fail(c, KILN_ERANGE, "invalid source label name in label_join(): %s", src);
                goto fail;
            }
        }
    }
    pq_value in;
    memset(&in, 0, sizeof in);
    if ((rc = pq_eval(c, call->args[0], &in)) < 0)
        goto fail;
    out->type = PROMQL_TYPE_VECTOR;
    for (size_t i = 0; i < in.m.n; i++) {
        const pq_series *s = &in.m.v[i];
        buf_reset(&val);
        int set = 0;
        if (id == PROMQL_FN_LABEL_REPLACE) {
            const char *src = labels_get(s->ls, s->nls, str_arg(call->args[3]));
            if (!src)
                src = "";
            int m = pcre2_match(re, (PCRE2_SPTR)src, strlen(src), 0, 0, md, NULL);
            if (m > 0) {
                if (expand_tpl(&val, str_arg(call->args[2]), src, pcre2_get_ovector_pointer(md), m, re) < 0) {
                    rc = pq_fail(c, KILN_ENOMEM, "out of memory");
                    goto fail;
                }
                set = 1;
            }
        } else {
            const char *sep = str_arg(call->args[2]);
            for (size_t j = 3; j < call->nargs; j++) {
                const char *v = labels_get(s->ls, s->nls, str_arg(call->args[j]));
                if (j > 3 && buf_puts(&val, sep) < 0)
                    goto nomem;
                if (v && buf_puts(&val, v) < 0)
                    goto nomem;
            }
            set = 1;
        }
        const label *ls = s->ls;
        size_t nls = s->nls;
        int drop = s->drop_name;
        if (set) {
            if (lb_from(&c->lb, s->ls, s->nls) < 0)
                goto nomem;
            char *v = arena_strndup(c->mem, val.data ? val.data : "", val.len);
            if (!v)
                goto nomem;
            if (lb_set(&c->lb, dst, v) < 0)
                goto nomem;
            ls = lb_labels(&c->lb, &nls);
            if (strcmp(dst, LABEL_NAME) == 0)
                drop = 0;
        }
        for (size_t j = 0; j < s->npts; j++)
            if ((rc = pq_out_add(c, &col, ls, nls, drop, s->pts[j].t, s->pts[j].v)) < 0)
                goto fail;
    }
    rc = pq_out_finish(c, &col, &out->m);
    goto done;
nomem:
    rc = pq_fail(c, KILN_ENOMEM, "out of memory");
fail:
done:
    pq_out_free(&col);
    buf_free(&val);
    if (md)
        pcre2_match_data_free(md);
    if (re)
        pcre2_code_free(re);
    return rc;
}

/* ---- sort ---- */

typedef struct sort_item {
    const pq_series *s;
    double v;
    const char *const *by;
    size_t nby;
    int desc;
} sort_item;

/* Natural order: runs of digits compare as numbers. */
static int natcmp(const char *a, const char *b) {
    while (*a && *b) {
        if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
            const char *ea = a, *eb = b;
            while (*a == '0')
                a++;
            while (*b == '0')
                b++;
            const char *da = a, *db = b;
            while (*ea >= '0' && *ea <= '9')
                ea++;
            while (*eb >= '0' && *eb <= '9')
                eb++;
            while (*a >= '0' && *a <= '9')
                a++;
            while (*b >= '0' && *b <= '9')
                b++;
            size_t la = (size_t)(a - da), lb = (size_t)(b - db);
            if (la != lb)
                return la < lb ? -1 : 1;
            int r = memcmp(da, db, la);
            if (r)
                return r;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    if (*a)
        return 1;
    if (*b)
        return -1;
    return 0;
}

static int cmp_by_label(const sort_item *x, const sort_item *y) {
    for (size_t i = 0; i < x->nby; i++) {
        const char *a = labels_get(x->s->ls, x->s->nls, x->by[i]);
        const char *b = labels_get(y->s->ls, y->s->nls, x->by[i]);
        if (!a)
            a = "";
        if (!b)
            b = "";
        if (strcmp(a, b) == 0)
            continue;
        int r = natcmp(a, b);
        if (r == 0)
            r = strcmp(a, b);
        return x->desc ? -r : r;
    }
    int r = labels_cmp(x->s->ls, x->s->nls, y->s->ls, y->s->nls);
    return x->desc ? -r : r;
}

/* sort: ascending, NaN last; sort_desc: descending, NaN last. */
static int cmp_by_value(const sort_item *x, const sort_item *y) {
    if (isnan(x->v))
        return isnan(y->v) ? 0 : 1;
    if (isnan(y->v))
        return -1;
    if (x->v == y->v)
        return 0;
    int r = x->v < y->v ? -1 : 1;
    return x->desc ? -r : r;
}

static int eval_sort(pq_ctx *c, const promql_expr *e, pq_value *out) {
    promql_func_id id = e->u.call.func->id;
    int rc = pq_eval(c, e->u.call.args[0], out);
    if (rc < 0)
        return rc;
    if (c->start != c->end) {
        pq_warn(c, e, "sort is ineffective for range queries since results are always ordered by labels");
        return 0;
    }
    size_t n = out->m.n;
    if (n < 2)
        return 0;
    const char *by[64];
    size_t nby = 0;
    for (size_t i = 1; i < e->u.call.nargs && nby < 64; i++)
        by[nby++] = str_arg(e->u.call.args[i]);
    sort_item *it = malloc(n * sizeof *it);
    pq_series *cp = malloc(n * sizeof *cp);
    if (!it || !cp) {
        free(it);
        free(cp);
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    }
    int desc = id == PROMQL_FN_SORT_DESC || id == PROMQL_FN_SORT_BY_LABEL_DESC;
    int bylabel = id == PROMQL_FN_SORT_BY_LABEL || id == PROMQL_FN_SORT_BY_LABEL_DESC;
    for (size_t i = 0; i < n; i++)
        it[i] = (sort_item){&out->m.v[i], out->m.v[i].npts ? out->m.v[i].pts[0].v : NAN, by, nby, desc};
    /* stable insertion sort: ties keep the input order */
    for (size_t i = 1; i < n; i++) {
        sort_item x = it[i];
        size_t j = i;
        while (j > 0 && (bylabel ? cmp_by_label(&x, &it[j - 1]) : cmp_by_value(&x, &it[j - 1])) < 0) {
            it[j] = it[j - 1];
            j--;
        }
        it[j] = x;
    }
    for (size_t i = 0; i < n; i++)
        cp[i] = *it[i].s;
    memcpy(out->m.v, cp, n * sizeof *cp);
    free(it);
    free(cp);
    return 0;
}

/* ---- histogram_quantile / histogram_fraction over classic buckets ---- */

typedef struct bucket {
    double ub, count;
} bucket;

static int cmp_bucket(const void *pa, const void *pb) {
    const bucket *a = pa, *b = pb;
    return a->ub < b->ub ? -1 : a->ub > b->ub ? 1 : 0;
}

static int almost_equal(double a, double b, double eps) {
    const double min_normal = 2.2250738585072014e-308;
    if (a == b)
        return 1;
    double abs_sum = fabs(a) + fabs(b), diff = fabs(a - b);
    if (a == 0 || b == 0 || abs_sum < min_normal)
        return diff < eps * min_normal;
    return diff / fmin(abs_sum, 1.7976931348623157e308) < eps;
}

static size_t coalesce(bucket *b, size_t n) {
    bucket last = b[0];
    size_t i = 0;
    for (size_t j = 1; j < n; j++) {
        if (b[j].ub == last.ub) {
            last.count += b[j].count;
        } else {
            b[i++] = last;
            last = b[j];
        }
    }
    b[i] = last;
    return i + 1;
}

static double bucket_quantile(double q, bucket *b, size_t n, int *forced) {
    *forced = 0;
    if (isnan(q))
        return NAN;
    if (q < 0)
        return -INFINITY;
    if (q > 1)
        return INFINITY;
    qsort(b, n, sizeof *b, cmp_bucket);
    if (!(isinf(b[n - 1].ub) && b[n - 1].ub > 0))
        return NAN;
    n = coalesce(b, n);
    double prev = b[0].count;
    for (size_t i = 1; i < n; i++) {
        double cur = b[i].count;
        if (cur == prev)
            continue;
        if (almost_equal(prev, cur, 1e-12)) {
            b[i].count = prev;
            continue;
        }
        if (cur < prev) {
            b[i].count = prev;
            *forced = 1;
            continue;
        }
        prev = cur;
    }
    if (n < 2)
        return NAN;
    double obs = b[n - 1].count;
    if (obs == 0)
        return NAN;
    double rank = q * obs;
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (b[mid].count >= rank)
            hi = mid;
        else
            lo = mid + 1;
    }
    size_t k = lo;
    if (k == n - 1)
        return b[n - 2].ub;
    if (k == 0 && b[0].ub <= 0)
        return b[0].ub;
    double start = 0, end = b[k].ub, count = b[k].count;
    if (k > 0) {
        start = b[k - 1].ub;
        count -= b[k - 1].count;
        rank -= b[k - 1].count;
    }
    return start + (end - start) * (rank / count);
}

static double bucket_fraction(double lower, double upper, bucket *b, size_t n) {
    qsort(b, n, sizeof *b, cmp_bucket);
    if (!(isinf(b[n - 1].ub) && b[n - 1].ub > 0))
        return NAN;
    n = coalesce(b, n);
    double count = b[n - 1].count;
    if (count == 0 || isnan(lower) || isnan(upper))
        return NAN;
    if (lower >= upper)
        return 0;
    double rank = 0, lrank = 0, urank = 0;
    int lset = 0, uset = 0;
    for (size_t i = 0; i < n; i++) {
        double lb = i > 0 ? b[i - 1].ub : (b[0].ub > 0 ? 0 : -INFINITY);
        double ub = b[i].ub;
        if (!lset && lb >= lower) {
            lrank = rank;
            lset = 1;
        }
        if (!uset && lb >= upper) {
            urank = rank;
            uset = 1;
        }
        if (lset && uset)
            break;
        if (!lset && lb < lower && ub > lower) {
            lrank = isinf(ub) ? b[i].count : rank + (b[i].count - rank) * (lower - lb) / (ub - lb);
            lset = 1;
        }
        if (!uset && lb < upper && ub > upper) {
            urank = isinf(ub) ? rank : rank + (b[i].count - rank) * (upper - lb) / (ub - lb);
            uset = 1;
        }
        if (lset && uset)
            break;
        rank = b[i].count;
    }
    if (!lset || lrank > count)
        lrank = count;
    if (!uset || urank > count)
        urank = count;
    return (urank - lrank) / count;
}

typedef struct hgroup {
    const pq_series *first;
    bucket *b;
    size_t n, cap;
} hgroup;

static int parse_le(const char *s, double *out) {
    if (!s || !*s)
        return -1;
    char *end;
    *out = strtod(s, &end);
    return *end ? -1 : 0;
}

static int eval_histogram(pq_ctx *c, const promql_expr *e, pq_value *out) {
    promql_func_id id = e->u.call.func->id;
    const promql_call *call = &e->u.call;
    int frac = id == PROMQL_FN_HISTOGRAM_FRACTION;
    double *q = NULL, *up = NULL;
    if (!(q = scalar_arg(c, e, 0)))
        return c->code;
    if (frac && !(up = scalar_arg(c, e, 1)))
        return c->code;
    pq_value in;
    memset(&in, 0, sizeof in);
    int rc = pq_eval(c, call->args[frac ? 2 : 1], &in);
    if (rc < 0)
        return rc;
    out->type = PROMQL_TYPE_VECTOR;
    if (!frac)
        for (size_t k = 0; k < c->nsteps; k++)
            if (isnan(q[k]) || q[k] < 0 || q[k] > 1) {
                char g[FMT_DOUBLE_MAX];
                pq_warn(c, call->args[0], "quantile value should be between 0 and 1, got %s",
                        pq_gfmt(q[k], g));
                break;
            }
    /* group the input series by their labels without "le" */
    size_t n = in.m.n;
    size_t *grp = malloc((n + 1) * sizeof(size_t));
    double *les = malloc((n + 1) * sizeof(double));
    hgroup *g = calloc(n + 1, sizeof *g);
    size_t *cur = calloc(n + 1, sizeof(size_t));
    pq_out col;
    pq_out_init(&col);
    size_t ng = 0;
    if (!grp || !les || !g || !cur)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        const pq_series *s = &in.m.v[i];
        grp[i] = SIZE_MAX;
        if (parse_le(labels_get(s->ls, s->nls, "le"), &les[i]) < 0) {
            const char *nm = labels_get(s->ls, s->nls, LABEL_NAME);
            const char *le = labels_get(s->ls, s->nls, "le");
            pq_warn(
                c, call->args[frac ? 2 : 1],
                "bucket label \"le\" is missing or has a malformed value of \"%s\" for metric name \"%s\"",
                le ? le : "", nm ? nm : "");
            continue;
        }
        for (size_t j = 0; j < ng; j++) {
            const pq_series *f = g[j].first;
            /* equal except le */
            size_t a = 0, b = 0;
            int eq = 1;
            while (eq) {
                while (a < s->nls && strcmp(s->ls[a].name, "le") == 0)
                    a++;
                while (b < f->nls && strcmp(f->ls[b].name, "le") == 0)
                    b++;
                if (a == s->nls || b == f->nls) {
                    eq = a == s->nls && b == f->nls;
                    break;
                }
                if (strcmp(s->ls[a].name, f->ls[b].name) || strcmp(s->ls[a].value, f->ls[b].value))
                    eq = 0;
                a++;
                b++;
            }
            if (eq) {
                grp[i] = j;
                break;
            }
        }
        if (grp[i] == SIZE_MAX) {
            grp[i] = ng;
            g[ng++].first = s;
        }
    }
    for (size_t j = 0; j < ng; j++) {
        g[j].b = malloc((n + 1) * sizeof(bucket));
        if (!g[j].b)
            goto nomem;
    }
    int forced_warned = 0;
    for (size_t k = 0; k < c->nsteps; k++) {
        int64_t t = c->start + (int64_t)k * c->interval;
        for (size_t j = 0; j < ng; j++)
            g[j].n = 0;
        for (size_t i = 0; i < n; i++) {
            const pq_series *s = &in.m.v[i];
            while (cur[i] < s->npts && s->pts[cur[i]].t < t)
                cur[i]++;
            if (grp[i] == SIZE_MAX || cur[i] >= s->npts || s->pts[cur[i]].t != t)
                continue;
            hgroup *h = &g[grp[i]];
            h->b[h->n++] = (bucket){les[i], s->pts[cur[i]].v};
        }
        for (size_t j = 0; j < ng; j++) {
            if (!g[j].n)
                continue;
            int forced = 0;
            double v = frac ? bucket_fraction(q[k], up[k], g[j].b, g[j].n)
                            : bucket_quantile(q[k], g[j].b, g[j].n, &forced);
            if (forced && !forced_warned) {
                const char *nm = labels_get(g[j].first->ls, g[j].first->nls, LABEL_NAME);
                pq_info(
                    c, call->args[1],
                    "input to histogram_quantile needed to be fixed for monotonicity (see "
                    "https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) "
                    "for metric name \"%s\"",
                    nm ? nm : "");
                forced_warned = 1;
            }
            if (lb_from(&c->lb, g[j].first->ls, g[j].first->nls) < 0)
                goto nomem;
            lb_del(&c->lb, "le");
            lb_del(&c->lb, LABEL_NAME);
            size_t nls;
            const label *ls = lb_labels(&c->lb, &nls);
            if ((rc = pq_out_add(c, &col, ls, nls, 0, t, v)) < 0)
                goto done;
        }
    }
    rc = pq_out_finish(c, &col, &out->m);
    goto done;
nomem:
    rc = pq_fail(c, KILN_ENOMEM, "out of memory");
done:
    if (g)
        for (size_t j = 0; j < ng; j++)
            free(g[j].b);
    free(g);
    free(cur);
    free(grp);
    free(les);
    pq_out_free(&col);
    return rc;
}

/* ---- step-wise helpers: scalar(), vector(), absent(), time() ---- */

static int eval_absent(pq_ctx *c, const promql_expr *e, pq_value *out) {
    pq_value in;
    memset(&in, 0, sizeof in);
    int rc = pq_eval(c, e->u.call.args[0], &in);
    if (rc < 0)
        return rc;
    out->type = PROMQL_TYPE_VECTOR;
    unsigned char *has = calloc(c->nsteps + 1, 1);
    if (!has)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    for (size_t i = 0; i < in.m.n; i++)
        for (size_t j = 0; j < in.m.v[i].npts; j++)
            has[pq_step_idx(c, in.m.v[i].pts[j].t)] = 1;
    sample *pts = arena_alloc_nz(c->mem, c->nsteps * sizeof(sample) + 1);
    if (!pts) {
        free(has);
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    }
    size_t np = 0;
    for (size_t k = 0; k < c->nsteps; k++)
        if (!has[k])
            pts[np++] = (sample){c->start + (int64_t)k * c->interval, 1};
    free(has);
    if (!np)
        return 0;
    pq_series *o;
    if (pq_matrix_push(c, &out->m, &o) < 0)
        return c->code;
    o->pts = pts;
    o->npts = np;
    const promql_expr *a = e->u.call.args[0];
    const promql_vector_selector *vs = NULL;
    if (a->kind == PROMQL_VECTOR_SELECTOR)
        vs = &a->u.vs;
    if (vs) {
        labels_builder *b = &c->lb;
        lb_reset(b);
        for (size_t i = 0; i < vs->nmatchers; i++) {
            const matcher *m = &vs->matchers[i];
            if (strcmp(m->name, LABEL_NAME) == 0)
                continue;
            int has_eq = 0;
            for (size_t j = 0; j < i; j++)
                if (strcmp(vs->matchers[j].name, m->name) == 0 && vs->matchers[j].type == MATCH_EQ)
                    has_eq = 1;
            if (m->type == MATCH_EQ && !has_eq) {
                if (lb_set(b, m->name, m->value) < 0)
                    return pq_fail(c, KILN_ENOMEM, "out of memory");
            } else {
                lb_del(b, m->name);
            }
        }
        size_t nls;
        const label *bl = lb_labels(b, &nls);
        o->ls = labels_copy(c->mem, bl, nls);
        if (!o->ls && nls)
            return pq_fail(c, KILN_ENOMEM, "out of memory");
        o->nls = nls;
    }
    return 0;
}

static int new_scalar(pq_ctx *c, pq_value *out) {
    out->type = PROMQL_TYPE_SCALAR;
    out->scal = arena_alloc(c->mem, (c->nsteps + 1) * sizeof(double));
    return out->scal ? 0 : pq_fail(c, KILN_ENOMEM, "out of memory");
}

static int eval_scalar_fn(pq_ctx *c, const promql_expr *e, pq_value *out) {
    pq_value in;
    memset(&in, 0, sizeof in);
    int rc = pq_eval(c, e->u.call.args[0], &in);
    if (rc < 0 || (rc = new_scalar(c, out)) < 0)
        return rc;
    unsigned *cnt = calloc(c->nsteps + 1, sizeof(unsigned));
    if (!cnt)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    for (size_t k = 0; k < c->nsteps; k++)
        out->scal[k] = NAN;
    for (size_t i = 0; i < in.m.n; i++)
        for (size_t j = 0; j < in.m.v[i].npts; j++) {
            size_t k = pq_step_idx(c, in.m.v[i].pts[j].t);
            out->scal[k] = ++cnt[k] == 1 ? in.m.v[i].pts[j].v : NAN;
        }
    free(cnt);
    return 0;
}

int pq_eval_call(pq_ctx *c, const promql_expr *e, pq_value *out) {
    const promql_call *call = &e->u.call;
    promql_func_id id = call->func->id;
    switch (id) {
    case PROMQL_FN_RATE:
    case PROMQL_FN_INCREASE:
    case PROMQL_FN_DELTA:
    case PROMQL_FN_IRATE:
    case PROMQL_FN_IDELTA:
    case PROMQL_FN_AVG_OVER_TIME:
    case PROMQL_FN_SUM_OVER_TIME:
    case PROMQL_FN_COUNT_OVER_TIME:
    case PROMQL_FN_MIN_OVER_TIME:
    case PROMQL_FN_MAX_OVER_TIME:
    case PROMQL_FN_LAST_OVER_TIME:
    case PROMQL_FN_FIRST_OVER_TIME:
    case PROMQL_FN_TS_OF_FIRST_OVER_TIME:
    case PROMQL_FN_TS_OF_LAST_OVER_TIME:
    case PROMQL_FN_TS_OF_MAX_OVER_TIME:
    case PROMQL_FN_TS_OF_MIN_OVER_TIME:
    case PROMQL_FN_PRESENT_OVER_TIME:
    case PROMQL_FN_STDDEV_OVER_TIME:
    case PROMQL_FN_STDVAR_OVER_TIME:
    case PROMQL_FN_QUANTILE_OVER_TIME:
    case PROMQL_FN_MAD_OVER_TIME:
    case PROMQL_FN_CHANGES:
    case PROMQL_FN_RESETS:
    case PROMQL_FN_DERIV:
    case PROMQL_FN_PREDICT_LINEAR:
    case PROMQL_FN_DOUBLE_EXPONENTIAL_SMOOTHING:
    case PROMQL_FN_ABSENT_OVER_TIME:
        return eval_range_func(c, e, out);
    case PROMQL_FN_ABS:
    case PROMQL_FN_CEIL:
    case PROMQL_FN_FLOOR:
    case PROMQL_FN_EXP:
    case PROMQL_FN_SQRT:
    case PROMQL_FN_LN:
    case PROMQL_FN_LOG2:
    case PROMQL_FN_LOG10:
    case PROMQL_FN_SIN:
    case PROMQL_FN_COS:
    case PROMQL_FN_TAN:
    case PROMQL_FN_ASIN:
    case PROMQL_FN_ACOS:
    case PROMQL_FN_ATAN:
    case PROMQL_FN_SINH:
    case PROMQL_FN_COSH:
    case PROMQL_FN_TANH:
    case PROMQL_FN_ASINH:
    case PROMQL_FN_ACOSH:
    case PROMQL_FN_ATANH:
    case PROMQL_FN_DEG:
    case PROMQL_FN_RAD:
    case PROMQL_FN_SGN:
    case PROMQL_FN_CLAMP:
    case PROMQL_FN_CLAMP_MAX:
    case PROMQL_FN_CLAMP_MIN:
    case PROMQL_FN_ROUND:
    case PROMQL_FN_DAY_OF_MONTH:
    case PROMQL_FN_DAY_OF_WEEK:
    case PROMQL_FN_DAY_OF_YEAR:
    case PROMQL_FN_DAYS_IN_MONTH:
    case PROMQL_FN_HOUR:
    case PROMQL_FN_MINUTE:
    case PROMQL_FN_MONTH:
    case PROMQL_FN_YEAR:
        return eval_pointwise(c, e, out);
    case PROMQL_FN_LABEL_REPLACE:
    case PROMQL_FN_LABEL_JOIN:
        return eval_label_fn(c, e, out);
    case PROMQL_FN_SORT:
    case PROMQL_FN_SORT_DESC:
    case PROMQL_FN_SORT_BY_LABEL:
    case PROMQL_FN_SORT_BY_LABEL_DESC:
        return eval_sort(c, e, out);
    case PROMQL_FN_HISTOGRAM_QUANTILE:
    case PROMQL_FN_HISTOGRAM_FRACTION:
        return eval_histogram(c, e, out);
    case PROMQL_FN_ABSENT:
        return eval_absent(c, e, out);
    case PROMQL_FN_SCALAR:
        return eval_scalar_fn(c, e, out);
    case PROMQL_FN_STEP:
    case PROMQL_FN_RANGE:
    case PROMQL_FN_START:
    case PROMQL_FN_END: {
        int rc = new_scalar(c, out);
        if (rc < 0)
            return rc;
        double v = id == PROMQL_FN_STEP    ? (c->qstart == c->qend ? 0 : (double)c->qstep / 1000)
                   : id == PROMQL_FN_RANGE ? (double)(c->qend - c->qstart) / 1000
                   : id == PROMQL_FN_START ? (double)c->qstart / 1000
                                           : (double)c->qend / 1000;
        for (size_t k = 0; k < c->nsteps; k++)
            out->scal[k] = v;
        return 0;
    }
    case PROMQL_FN_MIN_OF:
    case PROMQL_FN_MAX_OF: {
        int rc = new_scalar(c, out);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < call->nargs; i++) {
            double *a = scalar_arg(c, e, i);
            if (!a)
                return c->code;
            for (size_t k = 0; k < c->nsteps; k++)
                out->scal[k] = i == 0                   ? a[k]
                               : id == PROMQL_FN_MIN_OF ? pq_go_min(out->scal[k], a[k])
                                                        : pq_go_max(out->scal[k], a[k]);
        }
        return 0;
    }
    case PROMQL_FN_TIME:
    case PROMQL_FN_PI: {
        int rc = new_scalar(c, out);
        if (rc < 0)
            return rc;
        for (size_t k = 0; k < c->nsteps; k++)
            out->scal[k] = id == PROMQL_FN_PI ? M_PI : (double)(c->start + (int64_t)k * c->interval) / 1000;
        return 0;
    }
    case PROMQL_FN_VECTOR: {
        pq_value in;
        memset(&in, 0, sizeof in);
        int rc = pq_eval(c, call->args[0], &in);
        if (rc < 0)
            return rc;
        out->type = PROMQL_TYPE_VECTOR;
        pq_series *o;
        if (pq_matrix_push(c, &out->m, &o) < 0)
            return c->code;
        o->pts = arena_alloc_nz(c->mem, c->nsteps * sizeof(sample) + 1);
        if (!o->pts)
            return pq_fail(c, KILN_ENOMEM, "out of memory");
        for (size_t k = 0; k < c->nsteps; k++)
            o->pts[k] = (sample){c->start + (int64_t)k * c->interval, in.scal[k]};
        o->npts = c->nsteps;
        return 0;
    }
    case PROMQL_FN_TIMESTAMP: {
        /* evaluated in engine.c (needs the sample timestamps of a selector) */
        break;
    }
    default:
        break;
    }
    return pq_fail(c, KILN_ERANGE, "function \"%s\" is not supported", call->func->name);
}
