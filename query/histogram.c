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
 * linearly inside the bucket its rank falls in.  Native histograms are not
 * stored by kiln yet, so none reach these functions.
 *
 * Called by funcs.c (pq_eval_call).
 * Threading: runs on the thread evaluating its query; no shared state.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query/eval.h"

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

int pq_eval_histogram(pq_ctx *c, const promql_expr *e, pq_value *out) {
    promql_func_id id = e->u.call.func->id;
    const promql_call *call = &e->u.call;
    int frac = id == PROMQL_FN_HISTOGRAM_FRACTION;
    double *q = NULL, *up = NULL;
    if (!(q = pq_scalar_arg(c, e, 0)))
        return c->code;
    if (frac && !(up = pq_scalar_arg(c, e, 1)))
        return c->code;
    pq_value in;
    memset(&in, 0, sizeof in);
    int rc = pq_eval(c, call->args[frac ? 2 : 1], &in);
    if (rc < 0)
        return rc;
    out->type = PROMQL_TYPE_VECTOR;
    if (!frac)
        pq_warn_quantile(c, call->args[0], q);
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
    /* a group's buckets: room for its members, not for every input series
     * (groups x series would grow with the square of the input) */
    for (size_t i = 0; i < n; i++)
        if (grp[i] != SIZE_MAX)
            g[grp[i]].n++;
    for (size_t j = 0; j < ng; j++) {
        g[j].b = malloc((g[j].n + 1) * sizeof(bucket));
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
nomem:
    rc = pq_fail(c, KILN_ENOMEM, "out of memory");
    goto done;
}
