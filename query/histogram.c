/*
 * histogram.c - histogram_quantile() and histogram_fraction() over classic
 * histograms: series of one metric that differ only in their "le" label,
 * each the cumulative count of observations <= le.
 *
 * At each step the buckets present in a group are sorted by upper bound and
 * merged where bounds are equal; then, as Prometheus' bucketQuantile and
 * HistogramFraction do, counts that are almost equal are made equal and
 * counts that go down are raised (with an info annotation) so the
 * cumulative counts are monotonic, and the quantile is interpolated
 * linearly inside the bucket its rank falls in.  A native histogram point
 * is answered on its own (nhist.c's nh_quantile/nh_fraction), keeping its
 * series' labels but the name.
 *
 * Called by funcs.c (pq_eval_call).
 * Threading: runs on the thread evaluating its query; no shared state.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query/eval.h"
#include "query/nhist.h"

typedef struct bucket {
    double ub, count;
} bucket;

static int cmp_bucket(const void *pa, const void *pb) {
    const bucket *a = pa, *b = pb;
    return a->ub < b->ub ? -1 : a->ub > b->ub ? 1 : 0;
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
        if (double_almost_equal(prev, cur, 1e-12)) {
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
    if (rank == 0) {
        /* the minimum: empty buckets (a rate of 0, say) hold nothing, so
         * it is in the first bucket with observations, at its start */
        size_t k = 0;
        while (k < n - 1 && b[k].count == 0)
            k++;
        if (k == n - 1)
            return b[n - 2].ub;
        return k > 0 ? b[k - 1].ub : b[0].ub <= 0 ? b[0].ub : 0;
    }
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

/*
 * The share of observations in (lower, upper], with histogram_quantile's
 * view of where observations lie: linearly spread over each bucket, the
 * lowest starting at 0 when its upper bound is positive and otherwise all
 * at that bound (a bucket from -Inf); those of the +Inf bucket above every
 * finite value.
 */
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
        /* a value inside the bucket: the observations below it by linear
         * interpolation; none when the bucket is a point or unbounded */
        double part = !isinf(lb) && !isinf(ub) ? (b[i].count - rank) / (ub - lb) : 0;
        if (!lset && lb < lower && ub > lower) {
            lrank = isinf(lb) ? rank : rank + part * (lower - lb);
            lset = 1;
        }
        if (!uset && lb < upper && ub > upper) {
            urank = isinf(lb) ? rank : rank + part * (upper - lb);
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

/* Whether two label sets are equal but for "le" (and __name__ when
 * `noname`). */
static int same_but_le(const pq_series *s, const pq_series *f, int noname) {
    size_t a = 0, b = 0;
    for (;;) {
        while (a < s->nls && (!strcmp(s->ls[a].name, "le") || (noname && !strcmp(s->ls[a].name, LABEL_NAME))))
            a++;
        while (b < f->nls && (!strcmp(f->ls[b].name, "le") || (noname && !strcmp(f->ls[b].name, LABEL_NAME))))
            b++;
        if (a == s->nls || b == f->nls)
            return a == s->nls && b == f->nls;
        if (strcmp(s->ls[a].name, f->ls[b].name) || strcmp(s->ls[a].value, f->ls[b].value))
            return 0;
        a++;
        b++;
    }
}

/* histogram_quantiles' label value for a quantile: Go's FormatFloat(q, 'f', -1). */
static const char *quantile_label(pq_ctx *c, double q) {
    char v[FMT_DOUBLE_MAX];
    fmt_double_f(q, v);
    return arena_strndup(c->mem, v, strlen(v));
}

/* Adds one result of a histogram at t: the histogram's labels without
 * "le" (and without __name__ unless delayed), plus histogram_quantiles'
 * label; the monotonicity info once a query. */
static int emit(pq_ctx *c, pq_out *col, const promql_call *call, const pq_series *first, int forced,
                int *forced_warned, int delayed, const char *qlabel, double qv, int64_t t, double v) {
    if (forced && !*forced_warned) {
        const char *nm = labels_get(first->ls, first->nls, LABEL_NAME);
        pq_info(c, call->args[call->func->id == PROMQL_FN_HISTOGRAM_QUANTILES ? 0 : 1],
                "input to histogram_quantile needed to be fixed for monotonicity (see "
                "https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) "
                "for metric name \"%s\"",
                nm ? nm : "");
        *forced_warned = 1;
    }
    if (lb_from(&c->lb, first->ls, first->nls) < 0)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    lb_del(&c->lb, "le");
    if (!delayed)
        lb_del(&c->lb, LABEL_NAME);
    if (qlabel) {
        const char *qs = quantile_label(c, qv);
        if (!qs || lb_set(&c->lb, qlabel, qs) < 0)
            return pq_fail(c, KILN_ENOMEM, "out of memory");
    }
    size_t nls;
    const label *ls = lb_labels(&c->lb, &nls);
    return pq_out_add(c, col, ls, nls, delayed, t, v);
}

/*
 * histogram_quantile(q, v), histogram_fraction(lo, hi, v) and
 * histogram_quantiles(v, label, q1, ...): v's series are grouped by their
 * labels but "le" into classic histograms.  __name__ goes with "le" unless
 * its removal is delayed: the name then separates histograms and stays on
 * the result, dropped at the end.
 */
int pq_eval_histogram(pq_ctx *c, const promql_expr *e, pq_value *out) {
    promql_func_id id = e->u.call.func->id;
    const promql_call *call = &e->u.call;
    int frac = id == PROMQL_FN_HISTOGRAM_FRACTION, multi = id == PROMQL_FN_HISTOGRAM_QUANTILES;
    int delayed = (c->features & FEATURE_PROMQL_DELAYED_NAME_REMOVAL) != 0;
    size_t vi = multi ? 0 : frac ? 2 : 1; /* the argument holding the buckets */
    size_t nq = multi ? call->nargs - 2 : 1;
    double *q[10] = {NULL}, *up = NULL;
    const char *qlabel = multi ? call->args[1]->u.string.s : NULL;
    if (nq > sizeof q / sizeof q[0])
        return pq_fail(c, KILN_EINVAL, "histogram_quantiles takes at most %zu quantiles",
                       sizeof q / sizeof q[0]);
    for (size_t i = 0; i < nq; i++)
        if (!(q[i] = pq_scalar_arg(c, e, multi ? 2 + i : 0)))
            return c->code;
    if (frac && !(up = pq_scalar_arg(c, e, 1)))
        return c->code;
    pq_value in;
    memset(&in, 0, sizeof in);
    int rc = pq_eval(c, call->args[vi], &in);
    if (rc < 0)
        return rc;
    out->type = PROMQL_TYPE_VECTOR;
    for (size_t i = 0; i < nq && !frac; i++)
        pq_warn_quantile(c, call->args[multi ? 2 + i : 0], q[i]);
    /* group the input series by their labels without "le" */
    size_t n = in.m.n;
    size_t *grp = malloc((n + 1) * sizeof(size_t));
    double *les = malloc((n + 1) * sizeof(double));
    hgroup *g = calloc(n + 1, sizeof *g);
    size_t *cur = calloc(n + 1, sizeof(size_t)), *curh = calloc(n + 1, sizeof(size_t));
    char *native = calloc(n + 1, 1);
    pq_out col;
    pq_out_init(&col);
    size_t ng = 0;
    int forced_warned = 0;
    if (!grp || !les || !g || !cur || !curh || !native)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        const pq_series *s = &in.m.v[i];
        grp[i] = SIZE_MAX;
        /* native histogram points are answered each on its own, step by
         * step below (after the classic buckets of the step are known) */
        size_t nfloat = 0;
        for (size_t j = 0; j < s->npts; j++) {
            if (pq_is_hist(s->pts[j].v))
                native[i] = 1;
            else
                nfloat++;
        }
        if (!nfloat)
            continue;
        if (parse_le(labels_get(s->ls, s->nls, "le"), &les[i]) < 0) {
            const char *nm = labels_get(s->ls, s->nls, LABEL_NAME);
            const char *le = labels_get(s->ls, s->nls, "le");
            pq_warn(
                c, call->args[vi],
                "bucket label \"le\" is missing or has a malformed value of \"%s\" for metric name \"%s\"",
                le ? le : "", nm ? nm : "");
            continue;
        }
        for (size_t j = 0; j < ng; j++) {
            if (same_but_le(s, g[j].first, !delayed)) {
                grp[i] = j;
                break;
            }
        }
        if (grp[i] == SIZE_MAX) {
            grp[i] = ng;
            g[ng++].first = s;
        }
    }
    /* a group's buckets: room for its members, not for every input series
     * (groups x series would grow with the square of the input) */
    for (size_t i = 0; i < n; i++)
        if (grp[i] != SIZE_MAX)
            g[grp[i]].n++;
    for (size_t j = 0; j < ng; j++) {
        g[j].b = malloc((2 * g[j].n + 1) * sizeof(bucket));
        if (!g[j].b)
            goto nomem;
    }
    for (size_t k = 0; k < c->nsteps; k++) {
        int64_t t = c->start + (int64_t)k * c->interval;
        for (size_t j = 0; j < ng; j++)
            g[j].n = 0;
        for (size_t i = 0; i < n; i++) {
            const pq_series *s = &in.m.v[i];
            while (cur[i] < s->npts && s->pts[cur[i]].t < t)
                cur[i]++;
            if (grp[i] == SIZE_MAX || cur[i] >= s->npts || s->pts[cur[i]].t != t ||
                pq_is_hist(s->pts[cur[i]].v))
                continue;
            hgroup *h = &g[grp[i]];
            h->b[h->n++] = (bucket){les[i], s->pts[cur[i]].v};
        }
        for (size_t i = 0; i < n; i++) {
            const pq_series *s = &in.m.v[i];
            if (!native[i])
                continue;
            while (curh[i] < s->npts && s->pts[curh[i]].t < t)
                curh[i]++;
            if (curh[i] >= s->npts || s->pts[curh[i]].t != t || !pq_is_hist(s->pts[curh[i]].v))
                continue;
            /* classic buckets and a native histogram with the same labels
             * at this step: Prometheus answers neither, with a warning */
            size_t j = 0;
            while (j < ng && !(g[j].n && same_but_le(s, g[j].first, !delayed)))
                j++;
            if (j < ng) {
                const char *nm = labels_get(s->ls, s->nls, LABEL_NAME);
                pq_warn(c, call->args[vi],
                        "vector contains a mix of classic and native histograms for metric name \"%s\"",
                        nm ? nm : "");
                g[j].n = 0;
                continue;
            }
            histogram *h = pq_hist(c, s->pts[curh[i]].v);
            for (size_t qi = 0; qi < nq; qi++) {
                double r = frac ? nh_fraction(q[0][k], up[k], h) : nh_quantile(q[qi][k], h);
                if ((rc = emit(c, &col, call, s, 0, &forced_warned, delayed, qlabel, multi ? q[qi][k] : 0, t,
                               r)) < 0)
                    goto done;
            }
        }
        for (size_t j = 0; j < ng; j++)
            for (size_t qi = 0; qi < nq && g[j].n; qi++) {
                /* each quantile sorts and fixes a copy of the buckets */
                bucket *bk = g[j].b + g[j].n;
                memcpy(bk, g[j].b, g[j].n * sizeof *bk);
                int forced = 0;
                double v = frac ? bucket_fraction(q[0][k], up[k], bk, g[j].n)
                                : bucket_quantile(q[qi][k], bk, g[j].n, &forced);
                if ((rc = emit(c, &col, call, g[j].first, forced, &forced_warned, delayed, qlabel,
                               multi ? q[qi][k] : 0, t, v)) < 0)
                    goto done;
            }
    }
    rc = pq_out_finish(c, &col, &out->m);
done:
    if (g)
        for (size_t j = 0; j < ng; j++)
            free(g[j].b);
    free(g);
    free(cur);
    free(curh);
    free(native);
    free(grp);
    free(les);
    pq_out_free(&col);
    return rc;
nomem:
    rc = pq_fail(c, KILN_ENOMEM, "out of memory");
    goto done;
}
