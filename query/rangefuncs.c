/*
 * rangefuncs.c - the PromQL functions over range vectors: rate, increase,
 * delta, irate, idelta, the *_over_time family (absent_over_time too),
 * changes, resets, deriv, predict_linear, double_exponential_smoothing.
 *
 * Each input series is evaluated once for all steps: a window [t - offset -
 * range, t - offset] slides over its samples (both ends only move forward,
 * or are reset for every step under @), and range_fn computes the value of
 * one window.  The arithmetic follows Prometheus 3.x where results depend on
 * it: extrapolatedRate (counter resets, extrapolation to the range
 * boundaries limited to 1.1x the average sample interval, zero point of
 * counters), Neumaier-compensated sums and means with the switch to an
 * incremental mean on overflow, least squares relative to the evaluation
 * time, Prometheus' quantile.
 *
 * Called by funcs.c (pq_eval_call dispatches range functions here).
 * Threading: runs on the thread evaluating its query; an argument of many
 * float series is cut into shards evaluated on par.c's threads too (each
 * shard its own scratch and output, joined in series order).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "query/eval.h"
#include "query/nhist.h"

typedef struct win {
    const sample *s;
    size_t n;
    int64_t t;           /* evaluation time (step or @) */
    int64_t range_start; /* t - offset - range */
    int64_t range_end;   /* t - offset */
    int64_t range_ms;
    const uint32_t *resets; /* counter resets up to each sample of s (prefix counts), or NULL */
} win;

/* The factor extrapolatedRate scales a window's increase by: extrapolation
 * to the range's ends, limited to 1.1x the average sample interval and,
 * for counters, to the counter's zero point (result and first are the
 * increase and the first value: of the counts, for histograms); per second
 * for rate. */
static double extrapolation(const win *w, int is_counter, int is_rate, double result, double first) {
    size_t nm1 = w->n - 1;
    int64_t first_t = w->s[0].t, last_t = w->s[nm1].t;
    double to_start = (double)(first_t - w->range_start) / 1000;
    double to_end = (double)(w->range_end - last_t) / 1000;
    double sampled = (double)(last_t - first_t) / 1000;
    double avg = sampled / (double)nm1;
    double threshold = avg * 1.1;
    double interval = sampled;
    if (to_start >= threshold)
        to_start = avg / 2;
    if (is_counter && result > 0 && first >= 0) {
        double to_zero = sampled * (first / result);
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
    return factor;
}

static int extrapolated_rate(const win *w, int is_counter, int is_rate, double *out) {
    if (w->n < 2)
        return 0;
    size_t nm1 = w->n - 1;
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
    *out = result * extrapolation(w, is_counter, is_rate, result, w->s[0].v);
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
KILN_MUST_CHECK static int range_fn(pq_ctx *c, promql_func_id id, const win *w, double a0, double a1,
                                    double *out) {
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

/* ---- windows holding native histograms ---- */

#define MIX_WARN "encountered a mix of histograms and floats for metric name \"%s\""

/* a - b (sub) or a + b into *out, a new histogram; 0, or 1 when the
 * schemas do not mix (warned), or an error code.  `what` names the
 * operation in the custom-bucket reconciliation info. */
static int hist_combine(pq_ctx *c, const promql_expr *pos, const char *name, const histogram *a,
                        const histogram *b, int sub, const char *what, histogram **out) {
    int rec = 0, rc = nh_add(c->mem, a, b, sub, out, &rec);
    if (rc < 0)
        return pq_fail(c, rc, "out of memory");
    if (rc == NH_EMIXED) {
        pq_warn_mixed_schemas(c, pos, name);
        return 1;
    }
    if (rec)
        pq_info(c, pos, "mismatched custom buckets were reconciled during %s", what);
    return 0;
}

/* Prometheus' histogramRate: the last histogram minus the first, plus the
 * histogram before each counter reset, extrapolated as floats are. */
static int hist_rate(pq_ctx *c, const win *w, int is_counter, int is_rate, const char *name,
                     const promql_expr *pos, double *out) {
    if (w->n < 2)
        return 0;
    const histogram *first = pq_hist(c, w->s[0].v), *last = pq_hist(c, w->s[w->n - 1].v);
    int32_t min_schema = first->schema < last->schema ? first->schema : last->schema;
    for (size_t i = 0; i < w->n; i++) {
        const histogram *h = pq_hist(c, w->s[i].v);
        if (nh_is_custom(h) != nh_is_custom(first)) {
            pq_warn_mixed_schemas(c, pos, name);
            return 0;
        }
        if (is_counter && h->hint == HIST_HINT_GAUGE)
            pq_warn(c, pos, "this native histogram metric is not a counter: \"%s\"", name);
        if (h->schema < min_schema)
            min_schema = h->schema;
    }
    if (!is_counter && (first->hint != HIST_HINT_GAUGE || last->hint != HIST_HINT_GAUGE))
        pq_warn(c, pos, "this native histogram metric is not a gauge: \"%s\"", name);
    histogram *h;
    int rc = hist_combine(c, pos, name, last, first, 1, "subtraction", &h);
    if (rc)
        return rc > 0 ? 0 : rc;
    /* the prefix counts of resets say whether the window has any */
    if (is_counter && (!w->resets || w->resets[w->n - 1] != w->resets[0])) {
        const histogram *prev = first;
        for (size_t i = 1; i < w->n; i++) {
            const histogram *cur = pq_hist(c, w->s[i].v);
            if (nh_detect_reset(cur, prev) && (rc = nh_add(c->mem, h, prev, 0, &h, NULL)) != 0)
                return rc < 0 ? pq_fail(c, rc, "out of memory") : 0;
            prev = cur;
        }
    }
    if (h->schema > min_schema) {
        /* the coarsest schema of the window, as Prometheus reduces to it first */
        histogram empty;
        memset(&empty, 0, sizeof empty);
        empty.schema = min_schema;
        empty.zero_threshold = h->zero_threshold;
        if ((rc = nh_add(c->mem, h, &empty, 0, &h, NULL)) != 0)
            return rc < 0 ? pq_fail(c, rc, "out of memory") : 0;
    }
    nh_scale_inplace(h, extrapolation(w, is_counter, is_rate, h->count, first->count), 0);
    h->hint = HIST_HINT_GAUGE;
    *out = pq_hbox(c, h);
    return c->code ? c->code : 1;
}

/* irate/idelta of two histograms (Prometheus' instantValue). */
static int hist_instant(pq_ctx *c, const win *w, int is_rate, const char *name, const promql_expr *pos,
                        double *out) {
    const sample *ls = &w->s[w->n - 1], *ps = &w->s[w->n - 2];
    const histogram *last = pq_hist(c, ls->v), *prev = pq_hist(c, ps->v);
    if (is_rate && (last->hint == HIST_HINT_GAUGE || prev->hint == HIST_HINT_GAUGE))
        pq_warn(c, pos, "this native histogram metric is not a counter: \"%s\"", name);
    if (!is_rate && (last->hint != HIST_HINT_GAUGE || prev->hint != HIST_HINT_GAUGE))
        pq_warn(c, pos, "this native histogram metric is not a gauge: \"%s\"", name);
    histogram *h;
    if (is_rate && nh_detect_reset(last, prev)) {
        if (!(h = nh_copy(c->mem, last)))
            return pq_fail(c, KILN_ENOMEM, "out of memory");
    } else {
        int rc = hist_combine(c, pos, name, last, prev, 1, "subtraction", &h);
        if (rc)
            return rc > 0 ? 0 : rc;
    }
    h->hint = HIST_HINT_GAUGE;
    if (is_rate) {
        if (ls->t == ps->t)
            return 0;
        nh_scale_inplace(h, (double)(ls->t - ps->t) / 1000, 1);
    }
    *out = pq_hbox(c, h);
    return c->code ? c->code : 1;
}

/* sum_over_time / avg_over_time of histograms. */
static int hist_sum(pq_ctx *c, const win *w, int avg, const char *name, const promql_expr *pos, double *out) {
    histogram *h = pq_hist(c, w->s[0].v);
    for (size_t i = 1; i < w->n; i++) {
        int rc = hist_combine(c, pos, name, h, pq_hist(c, w->s[i].v), 0, "aggregation", &h);
        if (rc)
            return rc > 0 ? 0 : rc;
    }
    if (!(h = nh_scale(c->mem, h, avg ? (double)w->n : 1, 1)))
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    *out = pq_hbox(c, h);
    return c->code ? c->code : 1;
}

/* changes() and resets() over floats and histograms: a switch between a
 * float and a histogram counts as both. */
static int hist_changes(pq_ctx *c, const win *w, int resets, double *out) {
    double n = 0;
    for (size_t i = 1; i < w->n; i++) {
        double p = w->s[i - 1].v, q = w->s[i].v;
        int ph = pq_is_hist(p), qh = pq_is_hist(q);
        if (ph != qh)
            n++;
        else if (!ph)
            n += resets ? q < p : (q != p && !(isnan(q) && isnan(p)));
        else if (resets)
            n += nh_detect_reset(pq_hist(c, q), pq_hist(c, p));
        else
            n += !nh_equal(pq_hist(c, q), pq_hist(c, p), 0);
    }
    *out = n;
    return 1;
}

/* A window holding nh > 0 histograms among its w->n points; fl is scratch
 * room for w->n floats.  Returns as range_fn does. */
static int hist_window(pq_ctx *c, promql_func_id id, const win *w, size_t nh, const char *name,
                       const promql_expr *pos, double a0, double a1, sample *fl, double *out) {
    int mixed = nh < w->n;
    switch (id) {
    case PROMQL_FN_RATE:
    case PROMQL_FN_INCREASE:
    case PROMQL_FN_DELTA:
        if (mixed) {
            pq_warn(c, pos, MIX_WARN, name);
            return 0;
        }
        return hist_rate(c, w, id != PROMQL_FN_DELTA, id == PROMQL_FN_RATE, name, pos, out);
    case PROMQL_FN_IRATE:
    case PROMQL_FN_IDELTA: {
        if (w->n < 2)
            return 0;
        int a = pq_is_hist(w->s[w->n - 2].v), b = pq_is_hist(w->s[w->n - 1].v);
        if (!a && !b)
            return range_fn(c, id, w, a0, a1, out);
        if (a != b) {
            pq_warn(c, pos, MIX_WARN, name);
            return 0;
        }
        return hist_instant(c, w, id == PROMQL_FN_IRATE, name, pos, out);
    }
    case PROMQL_FN_SUM_OVER_TIME:
    case PROMQL_FN_AVG_OVER_TIME:
        if (mixed) {
            pq_warn(c, pos, MIX_WARN, name);
            return 0;
        }
        return hist_sum(c, w, id == PROMQL_FN_AVG_OVER_TIME, name, pos, out);
    case PROMQL_FN_COUNT_OVER_TIME:
    case PROMQL_FN_LAST_OVER_TIME:
    case PROMQL_FN_FIRST_OVER_TIME:
    case PROMQL_FN_TS_OF_LAST_OVER_TIME:
    case PROMQL_FN_TS_OF_FIRST_OVER_TIME:
    case PROMQL_FN_PRESENT_OVER_TIME:
        return range_fn(c, id, w, a0, a1, out);
    case PROMQL_FN_CHANGES:
    case PROMQL_FN_RESETS:
        return hist_changes(c, w, id == PROMQL_FN_RESETS, out);
    default: {
        /* functions of floats: the histograms are left out */
        if (!mixed)
            return 0;
        pq_info(c, pos,
                "ignored histograms in a range containing both floats and histograms for metric name \"%s\"",
                name);
        size_t k = 0;
        for (size_t i = 0; i < w->n; i++)
            if (!pq_is_hist(w->s[i].v))
                fl[k++] = w->s[i];
        win fw = *w;
        fw.s = fl;
        fw.n = k;
        fw.resets = NULL;
        return range_fn(c, id, &fw, a0, a1, out);
    }
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

/* A range function over series of its argument, cut in shards (par.c). */
#define RF_SHARD_MIN 256 /* series: fewer are one shard */
#define RF_NOT_COUNTER                                                                                       \
    "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"%s\""

typedef struct rf_job {
    promql_func_id id;
    const pq_range_arg *ra;
    const promql_expr *argpos;
    const double *a0, *a1;
    size_t nshards;
    pq_matrix *outs;         /* shard k's output series */
    const char **noncounter; /* shard k's first float series a rate should not see, by name */
} rf_job;

static int rf_shard(pq_ctx *c, size_t shard, void *data) {
    const rf_job *job = data;
    const pq_range_arg ra = *job->ra;
    promql_func_id id = job->id;
    const promql_expr *argpos = job->argpos;
    const double *a0 = job->a0, *a1 = job->a1;
    pq_matrix *outm = &job->outs[shard];
    size_t from = ra.m.n * shard / job->nshards, to = ra.m.n * (shard + 1) / job->nshards;
    int rc = 0;
    int is_rateish = id == PROMQL_FN_RATE || id == PROMQL_FN_INCREASE;
    size_t cap = pq_step_cap(c);
    sample *tmp = malloc((cap + 1) * sizeof(sample));
    uint32_t *resets = NULL, *hpre = NULL;
    size_t resets_cap = 0, hpre_cap = 0, fl_cap = 0;
    sample *fl = NULL;
    if (!tmp)
        goto nomem;
    for (size_t i = from; i < to; i++) {
        const pq_series *in = &ra.m.v[i];
        size_t lo = 0, hi = 0, np = 0;
        /* histogram points: prefix counts, so a window knows how many it has */
        int any_hist = 0;
        for (size_t j = 0; j < in->npts && !any_hist; j++)
            any_hist = pq_is_hist(in->pts[j].v);
        const char *hname = "";
        if (any_hist) {
            if (array_grow((void **)&hpre, &hpre_cap, in->npts + 1, sizeof *hpre) < 0 ||
                array_grow((void **)&fl, &fl_cap, in->npts + 1, sizeof *fl) < 0)
                goto nomem;
            hpre[0] = 0;
            for (size_t j = 0; j < in->npts; j++)
                hpre[j + 1] = hpre[j] + (uint32_t)pq_is_hist(in->pts[j].v);
            const char *nm = labels_get(in->ls, in->nls, LABEL_NAME);
            hname = nm ? nm : "";
        }
        if (is_rateish && in->npts) {
            if (array_grow((void **)&resets, &resets_cap, in->npts, sizeof *resets) < 0)
                goto nomem;
            resets[0] = 0;
            for (size_t j = 1; j < in->npts; j++) {
                double p = in->pts[j - 1].v, q = in->pts[j].v;
                /* histograms: Prometheus' reset detection, once a pair */
                int r =
                    pq_is_hist(p) && pq_is_hist(q) ? nh_detect_reset(pq_hist(c, q), pq_hist(c, p)) : q < p;
                resets[j] = resets[j - 1] + (uint32_t)r;
            }
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
            size_t nh = any_hist ? hpre[hi] - hpre[lo] : 0;
            if (w.n && !nh)
                had_floats = 1;
            double v = 0;
            /* a long series of wide windows (subqueries) checks the deadline as it goes */
            int r = (k & 1023) == 1023 && pq_poll(c) < 0 ? c->code
                    : nh ? hist_window(c, id, &w, nh, hname, argpos, a0 ? a0[k] : 0, a1 ? a1[k] : 0, fl, &v)
                         : range_fn(c, id, &w, a0 ? a0[k] : 0, a1 ? a1[k] : 0, &v);
            if (r < 0) {
                rc = r;
                goto done;
            }
            if (r && np == cap) {
                rc = pq_fail(c, KILN_ELIMIT, "%s", PQ_TOO_MANY_SAMPLES);
                goto done;
            }
            if (r)
                tmp[np++] = (sample){t, v};
        }
        if (is_rateish && had_floats && !job->noncounter[shard]) {
            const char *name = labels_get(in->ls, in->nls, LABEL_NAME);
            if (name && !name_is_counterish(name) && (job->noncounter[shard] = name) && job->nshards == 1)
                pq_info(c, argpos, RF_NOT_COUNTER, name); /* in its place among the others */
        }
        if (np && (rc = pq_matrix_push_copy(c, outm, in->ls, in->nls, keeps_name(id) ? in->drop_name : 1, tmp,
                                            np)) < 0)
            goto done;
    }
    rc = 0;
done:
    free(tmp);
    free(resets);
    free(hpre);
    free(fl);
    return rc;
nomem:
    rc = pq_fail(c, KILN_ENOMEM, "out of memory");
    goto done;
}

int pq_eval_range_func(pq_ctx *c, const promql_expr *e, pq_value *out) {
    promql_func_id id = e->u.call.func->id;
    size_t mi = 0;
    double *a0 = NULL, *a1 = NULL;
    if (id == PROMQL_FN_QUANTILE_OVER_TIME) {
        mi = 1;
        if (!(a0 = pq_scalar_arg(c, e, 0)))
            return c->code;
    } else if (id == PROMQL_FN_PREDICT_LINEAR) {
        if (!(a0 = pq_scalar_arg(c, e, 1)))
            return c->code;
    } else if (id == PROMQL_FN_DOUBLE_EXPONENTIAL_SMOOTHING) {
        if (!(a0 = pq_scalar_arg(c, e, 1)) || !(a1 = pq_scalar_arg(c, e, 2)))
            return c->code;
    }
    pq_range_arg ra;
    memset(&ra, 0, sizeof ra);
    int rc = pq_eval_range_arg(c, e->u.call.args[mi], &ra);
    if (rc < 0)
        return rc;
    out->type = PROMQL_TYPE_VECTOR;
    const promql_expr *argpos = e->u.call.args[mi];

    if (id == PROMQL_FN_QUANTILE_OVER_TIME)
        pq_warn_quantile(c, e->u.call.args[0], a0);
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
        /* One output series: 1 at each step where no input has a sample
         * (room for as many points as the limit allows). */
        size_t cap = pq_step_cap(c);
        sample *pts = arena_alloc_nz(c->mem, cap * sizeof(sample) + 1);
        if (!pts)
            return pq_fail(c, KILN_ENOMEM, "out of memory");
        size_t np = 0;
        for (size_t k = 0; k < c->nsteps; k++) {
            if ((k & 1023) == 1023 && pq_poll(c) < 0)
                return c->code;
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
            if (found)
                continue;
            if (np == cap)
                return pq_fail(c, KILN_ELIMIT, "%s", PQ_TOO_MANY_SAMPLES);
            pts[np++] = (sample){t, 1};
        }
        if (pq_account(c, np) < 0)
            return c->code;
        return pq_push_absent(c, out, pts, np, ra.sel ? &ra.sel->u.vs : NULL);
    }

    /* series by series, on every core when there are many (par.c): the
     * shards' series and notes joined in order are one thread's */
    rf_job job = {id, &ra, argpos, a0, a1, pq_par_shards(c, ra.hist ? 0 : ra.m.n, RF_SHARD_MIN), NULL, NULL};
    job.outs = calloc(job.nshards, sizeof *job.outs);
    job.noncounter = calloc(job.nshards, sizeof *job.noncounter);
    if (!job.outs || !job.noncounter) {
        rc = pq_fail(c, KILN_ENOMEM, "out of memory");
    } else if ((rc = pq_par_run(c, job.nshards, rf_shard, &job)) == 0) {
        size_t n = 0;
        for (size_t k = 0; k < job.nshards; k++)
            n += job.outs[k].n;
        out->m = job.outs[0];
        if (job.nshards > 1 && !(out->m.v = arena_alloc_nz(c->mem, (n + 1) * sizeof *out->m.v)))
            rc = pq_fail(c, KILN_ENOMEM, "out of memory");
        for (size_t k = 0, at = 0; k < job.nshards && rc == 0 && job.nshards > 1; k++) {
            if (job.outs[k].n)
                memcpy(out->m.v + at, job.outs[k].v, job.outs[k].n * sizeof *out->m.v);
            at += job.outs[k].n;
        }
        out->m.n = out->m.cap = n;
        for (size_t k = 0; k < job.nshards && rc == 0 && job.nshards > 1; k++)
            if (job.noncounter[k]) {
                pq_info(c, argpos, RF_NOT_COUNTER, job.noncounter[k]);
                break;
            }
    }
    free(job.outs);
    free(job.noncounter);
    return rc;
}
