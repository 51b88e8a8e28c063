/*
 * aggr.c - PromQL aggregation operators: sum min max avg group stddev
 * stdvar count count_values bottomk topk quantile limitk limit_ratio, with
 * by/without.
 *
 * The group of each input series is computed once (labels do not change
 * between steps).  The folding operators then go series by series (see
 * fold_series_major); the selecting ones (topk, quantile, ...) step by step
 * over the points present at each step.  Sums and means use Prometheus 3's compensated
 * (Kahan-Neumaier) arithmetic and its switch to an incremental mean on
 * overflow; topk/bottomk keep Prometheus' heap so ties and output order
 * match.
 *
 * Called by engine.c (pq_eval, for every PROMQL_AGGREGATE node).
 * Threading: runs on the thread evaluating its query; no shared state.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "query/eval.h"
#include "query/nhist.h"

typedef struct group {
    label *ls; /* output labels (not for topk & co) */
    size_t nls;
    uint64_t hash;
    int drop_name; /* a member's __name__ is still to go (delayed removal): the group's goes too */
    /* per-step state (the selecting operators; see cell for the folding ones) */
    int seen;
    size_t *heap; /* indexes into the step's elements */
    size_t nheap;
    double *vals;
    size_t nvals;
    /* output */
    sample *pts;
    size_t npts;
} group;

/* The grouping labels of a series (into the builder). */
KILN_MUST_CHECK static int group_labels(pq_ctx *c, const promql_aggregate *a, const pq_series *s,
                                        const label **out, size_t *n) {
    labels_builder *b = &c->lb;
    lb_reset(b);
    for (size_t i = 0; i < s->nls; i++) {
        const char *nm = s->ls[i].name;
        int is_name = strcmp(nm, LABEL_NAME) == 0;
        int keep;
        if (a->without)
            keep = !is_name && !pq_in_list(nm, a->grouping, a->ngrouping);
        else
            keep = pq_in_list(nm, a->grouping, a->ngrouping);
        if (keep && lb_set(b, nm, s->ls[i].value) < 0)
            return pq_fail(c, KILN_ENOMEM, "out of memory");
    }
    *out = lb_labels(b, n);
    return 0;
}

/* Go container/heap over element indexes; `less` as Prometheus' heaps. */
typedef struct heapctx {
    const double *v;
    int reverse; /* bottomk: vectorByReverseValueHeap */
} heapctx;

static int h_less(const heapctx *h, size_t a, size_t b) {
    double x = h->v[a], y = h->v[b];
    if (isnan(x))
        return 1;
    return h->reverse ? x > y : x < y;
}

static void h_up(const heapctx *h, size_t *hp, size_t j) {
    while (j > 0) {
        size_t i = (j - 1) / 2;
        if (i == j || !h_less(h, hp[j], hp[i]))
            break;
        size_t t = hp[i];
        hp[i] = hp[j];
        hp[j] = t;
        j = i;
    }
}

static void h_down(const heapctx *h, size_t *hp, size_t i0, size_t n) {
    size_t i = i0;
    for (;;) {
        size_t j1 = 2 * i + 1;
        if (j1 >= n)
            break;
        size_t j = j1;
        size_t j2 = j1 + 1;
        if (j2 < n && h_less(h, hp[j2], hp[j1]))
            j = j2;
        if (!h_less(h, hp[j], hp[i]))
            break;
        size_t t = hp[i];
        hp[i] = hp[j];
        hp[j] = t;
        i = j;
    }
}

/* sort.Sort(sort.Reverse(heap)): insertion sort for short inputs as Go. */
static void h_sort_reverse(const heapctx *h, size_t *hp, size_t n) {
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && h_less(h, hp[j - 1], hp[j]); j--) {
            size_t t = hp[j];
            hp[j] = hp[j - 1];
            hp[j - 1] = t;
        }
}

/* limit_ratio's choice, as Prometheus': a series whose labels hash to the
 * fraction h / 2^64 is kept by a ratio r >= 0 when the fraction is below r,
 * by r < 0 when it is at or above 1 + r (the complement of -r). */
static int ratio_keeps(uint64_t h, double ratio) {
    double off = (double)h / 18446744073709551615.0;
    return ratio >= 0 ? off < ratio : off >= 1.0 + ratio;
}

/* The running state of one group at one step, for the folding operators
 * (sum avg count min max group stddev stdvar). */
typedef struct cell {
    double value, mean, kc, count;
    int seen, incremental;
    /* native histograms: sum and avg add them up (h, when the first
     * element was one); a group mixing them with floats has no value */
    histogram *h;
    uint8_t has_float, has_hist, bad, owned; /* owned: h is the cell's own, added to in place */
    /* avg of histograms: hinc once h is the running mean (the sum would
     * have overflowed), hmag a bound of the sum's largest magnitude */
    uint8_t hinc;
    double hmag;
} cell;

static int is_folding(promql_aggop op) {
    switch (op) {
    case PROMQL_AGG_SUM:
    case PROMQL_AGG_AVG:
    case PROMQL_AGG_COUNT:
    case PROMQL_AGG_MIN:
    case PROMQL_AGG_MAX:
    case PROMQL_AGG_GROUP:
    case PROMQL_AGG_STDDEV:
    case PROMQL_AGG_STDVAR:
        return 1;
    default:
        return 0;
    }
}

static void cell_first(cell *s, promql_aggop op, double v) {
    s->seen = 1;
    s->value = v;
    s->mean = v;
    s->kc = 0;
    s->count = 1;
    s->incremental = 0;
    if (op == PROMQL_AGG_STDDEV || op == PROMQL_AGG_STDVAR)
        s->value = 0 * (v - v); /* NaN and Inf propagate */
    else if (op == PROMQL_AGG_GROUP)
        s->value = 1;
}

static void cell_fold(cell *s, promql_aggop op, double v) {
    s->count++;
    switch (op) {
    case PROMQL_AGG_SUM:
        pq_kahan_inc(v, &s->value, &s->kc);
        break;
    case PROMQL_AGG_AVG: {
        if (!s->incremental) {
            double nv = s->value, nc = s->kc;
            pq_kahan_inc(v, &nv, &nc);
            if (!isinf(nv)) {
                s->value = nv;
                s->kc = nc;
                break;
            }
            s->incremental = 1;
            s->mean = s->value / (s->count - 1);
            s->kc /= s->count - 1;
        }
        if (isinf(s->mean)) {
            if (isinf(v) && (s->mean > 0) == (v > 0))
                break;
            if (!isinf(v) && !isnan(v))
                break;
        }
        double cm = s->mean + s->kc;
        pq_kahan_inc(v / s->count - cm / s->count, &s->mean, &s->kc);
        break;
    }
    case PROMQL_AGG_MAX:
        if (s->value < v || isnan(s->value))
            s->value = v;
        break;
    case PROMQL_AGG_MIN:
        if (s->value > v || isnan(s->value))
            s->value = v;
        break;
    case PROMQL_AGG_STDDEV:
    case PROMQL_AGG_STDVAR: {
        double delta = v - s->mean;
        s->mean += delta / s->count;
        s->value += delta * (v - s->mean);
        break;
    }
    default:
        break;
    }
}

static double cell_result(const cell *s, promql_aggop op) {
    switch (op) {
    case PROMQL_AGG_SUM:
        return s->value + s->kc;
    case PROMQL_AGG_AVG:
        return s->incremental ? s->mean + s->kc : (s->value + s->kc) / s->count;
    case PROMQL_AGG_COUNT:
        return s->count;
    case PROMQL_AGG_STDVAR:
        return s->value / s->count;
    case PROMQL_AGG_STDDEV:
        return sqrt(s->value / s->count);
    default:
        return s->value;
    }
}

static const char *agg_name(promql_aggop op) {
    switch (op) {
    case PROMQL_AGG_MIN:
        return "min";
    case PROMQL_AGG_MAX:
        return "max";
    case PROMQL_AGG_STDDEV:
        return "stddev";
    case PROMQL_AGG_STDVAR:
        return "stdvar";
    case PROMQL_AGG_QUANTILE:
        return "quantile";
    case PROMQL_AGG_TOPK:
        return "topk";
    case PROMQL_AGG_BOTTOMK:
        return "bottomk";
    default:
        return "";
    }
}

/* A bound of any count or sum that adding h to something can make: its
 * count, its sum, or all its buckets together (schema reduction merges
 * them). */
static double hist_mag(const histogram *h) {
    double b = fabs(h->zero_count);
    for (uint32_t i = 0; i < h->npos; i++)
        b += fabs(h->pos[i]);
    for (uint32_t i = 0; i < h->nneg; i++)
        b += fabs(h->neg[i]);
    return fmax(b, fmax(fabs(h->count), fabs(h->sum)));
}

/* *acc += sign * y (a new histogram when acc is not the cell's own), with
 * nh_add's annotations; 0 or an error. */
KILN_MUST_CHECK static int cell_hist_add(pq_ctx *c, const promql_expr *pos, cell *ce, histogram **acc,
                                         const histogram *y, int sub) {
    int rec = 0, rc = nh_add(c->mem, *acc, y, sub, acc, &rec);
    if (rc < 0)
        return pq_fail(c, rc, "out of memory");
    if (rc == NH_EMIXED) {
        ce->bad = 1;
        pq_warn_mixed_schemas(c, pos, "");
    }
    if (rec)
        pq_info(c, pos, "mismatched custom buckets were reconciled during aggregation");
    return 0;
}

/* avg's step once the sum would overflow, as Prometheus' incremental mean:
 * mean += h/n - mean/n (the first time, mean = sum/(n-1)). */
KILN_MUST_CHECK static int cell_hist_mean(pq_ctx *c, const promql_expr *pos, cell *ce, const histogram *h) {
    if (!ce->hinc) {
        ce->hinc = 1;
        if (!(ce->h = nh_scale(c->mem, ce->h, ce->count - 1, 1)))
            return pq_fail(c, KILN_ENOMEM, "out of memory");
    }
    histogram *d = nh_scale(c->mem, h, ce->count, 1), *m = nh_scale(c->mem, ce->h, ce->count, 1);
    if (!d || !m)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    int rc = cell_hist_add(c, pos, ce, &d, m, 1);
    if (rc < 0 || ce->bad)
        return rc;
    ce->owned = 1;
    return cell_hist_add(c, pos, ce, &ce->h, d, 0);
}

/* Folds a histogram into a cell (Prometheus' aggregation: sum and avg add
 * histograms, count and group count them, the others ignore them; avg
 * turns to an incremental mean where the sum would overflow). */
KILN_MUST_CHECK static int cell_hist(pq_ctx *c, const promql_expr *pos, cell *ce, promql_aggop op, double v) {
    histogram *h = pq_hist(c, v);
    switch (op) {
    case PROMQL_AGG_SUM:
    case PROMQL_AGG_AVG: {
        ce->has_hist = 1;
        if (!ce->seen) {
            cell_first(ce, op, 0);
            ce->h = h;
            ce->hmag = hist_mag(h);
            return 0;
        }
        ce->count++;
        if (!ce->h || ce->bad)
            return 0;
        if (op == PROMQL_AGG_AVG) {
            double m = hist_mag(h);
            if (ce->hinc || (isfinite(ce->hmag) && isfinite(m) && isinf(ce->hmag + m)))
                return cell_hist_mean(c, pos, ce, h);
            ce->hmag += m;
        }
        if (ce->owned && nh_add_into(ce->h, h, 1))
            return 0;
        ce->owned = 1;
        return cell_hist_add(c, pos, ce, &ce->h, h, 0);
    }
    case PROMQL_AGG_COUNT:
    case PROMQL_AGG_GROUP:
        if (ce->seen)
            ce->count++;
        else
            cell_first(ce, op, 0);
        return 0;
    default:
        pq_info(c, pos, "ignored histogram in %s aggregation", agg_name(op));
        return 0;
    }
}

/* A cell's value at output: 1 with *v set, 0 for none (a mix of floats
 * and histograms: warned), < 0 on error. */
KILN_MUST_CHECK static int cell_out(pq_ctx *c, const promql_expr *pos, const cell *ce, promql_aggop op,
                                    double *v) {
    if (!ce->has_hist) {
        *v = cell_result(ce, op);
        return 1;
    }
    if (op != PROMQL_AGG_SUM && op != PROMQL_AGG_AVG) {
        *v = cell_result(ce, op);
        return 1;
    }
    if (ce->has_float) {
        pq_warn(c, pos, "encountered a mix of histograms and floats for aggregation");
        return 0;
    }
    if (ce->bad)
        return 0;
    histogram *h = nh_scale(c->mem, ce->h, op == PROMQL_AGG_AVG && !ce->hinc ? ce->count : 1, 1);
    if (!h)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    h->hint = HIST_HINT_UNKNOWN;
    *v = pq_hbox(c, h);
    return c->code ? c->code : 1;
}

/* count_values' equality: floats by value (NaN equals NaN), histograms by
 * Prometheus' Equals. */
static int same_value(pq_ctx *c, double a, double b) {
    int ha = pq_is_hist(a), hb = pq_is_hist(b);
    if (ha || hb)
        return ha && hb && nh_equal(pq_hist(c, a), pq_hist(c, b), 0);
    return a == b || (isnan(a) && isnan(b));
}

/* Whether time t is a step of the grid t0, t0 + interval, ... (t >= t0),
 * and then which one in *k.  Points between steps are passed over. */
static inline int on_grid(int64_t t, int64_t t0, int64_t interval, size_t *k) {
    if (t < t0)
        return 0;
    *k = interval ? (size_t)((t - t0) / interval) : 0;
    return t0 + (int64_t)*k * interval == t;
}

/*
 * The folding operators series by series: each series' points (contiguous
 * in memory) are folded into the cells of its group, a window of steps at a
 * time so that groups x window cells stay bounded.  For any one cell the
 * points still arrive in series order, so the sums are the same, bit for
 * bit, as folding step by step; but memory is read in order instead of
 * one point of every series per step.
 */
#define AGG_MAX_CELLS (1u << 18)

KILN_MUST_CHECK static int fold_series_major(pq_ctx *c, const promql_expr *pos, promql_aggop op,
                                             const pq_matrix *m, const size_t *gid, group *g, size_t ng) {
    size_t n = m->n, win = c->nsteps;
    if (ng * win > AGG_MAX_CELLS)
        win = AGG_MAX_CELLS / ng ? AGG_MAX_CELLS / ng : 1;
    cell *cells = malloc(ng * win * sizeof *cells);
    size_t *cur = calloc(n + 1, sizeof *cur);
    int rc = 0;
    if (!cells || !cur) {
        rc = pq_fail(c, KILN_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t k0 = 0; k0 < c->nsteps; k0 += win) {
        size_t w = c->nsteps - k0 < win ? c->nsteps - k0 : win;
        if ((rc = pq_account(c, 0)) < 0)
            goto out;
        memset(cells, 0, ng * w * sizeof *cells);
        int64_t t0 = c->start + (int64_t)k0 * c->interval;
        int64_t tend = c->start + (int64_t)(k0 + w - 1) * c->interval;
        for (size_t i = 0; i < n; i++) {
            const pq_series *s = &m->v[i];
            cell *row = cells + gid[i] * w;
            size_t p = cur[i], k;
            for (; p < s->npts && s->pts[p].t <= tend; p++) {
                if (!on_grid(s->pts[p].t, t0, c->interval, &k))
                    continue;
                cell *ce = &row[k];
                double v = s->pts[p].v;
                if (pq_is_hist(v)) {
                    if ((rc = cell_hist(c, pos, ce, op, v)) < 0)
                        goto out;
                    continue;
                }
                ce->has_float = 1;
                if (ce->seen)
                    cell_fold(ce, op, v);
                else
                    cell_first(ce, op, v);
            }
            cur[i] = p;
        }
        for (size_t j = 0; j < ng; j++)
            for (size_t k = 0; k < w; k++) {
                const cell *ce = &cells[j * w + k];
                double v = 0;
                if (!ce->seen)
                    continue;
                int r = cell_out(c, pos, ce, op, &v);
                if (r < 0) {
                    rc = r;
                    goto out;
                }
                if (r)
                    g[j].pts[g[j].npts++] = (sample){t0 + (int64_t)k * c->interval, v};
            }
    }
out:
    free(cells);
    free(cur);
    return rc;
}

int pq_eval_aggregate(pq_ctx *c, const promql_expr *e, pq_value *out) {
    const promql_aggregate *a = &e->u.agg;
    promql_aggop op = a->op;
    double *param = NULL;
    const char *strparam = NULL;
    int rc = 0;
    if (a->param) {
        pq_value pv;
        memset(&pv, 0, sizeof pv);
        if ((rc = pq_eval(c, a->param, &pv)) < 0)
            return rc;
        if (pv.type == PROMQL_TYPE_STRING)
            strparam = pv.str;
        else
            param = pv.scal;
    }
    pq_value in;
    memset(&in, 0, sizeof in);
    if ((rc = pq_eval(c, a->expr, &in)) < 0)
        return rc;
    out->type = PROMQL_TYPE_VECTOR;

    if (op == PROMQL_AGG_COUNT_VALUES) {
        size_t n = strparam ? strlen(strparam) : 0;
        if (!strparam || n == 0 || !utf8_valid(strparam, n)) {
            buf q = BUF_INIT;
            promql_quote(&q, strparam ? strparam : "", n);
            rc = buf_error(&q) ? pq_fail(c, KILN_ENOMEM, "out of memory")
                               : pq_fail(c, KILN_ERANGE, "invalid label name %s", q.data);
            buf_free(&q);
            return rc;
        }
    }
    char g1[FMT_DOUBLE_MAX], g2[FMT_DOUBLE_MAX];
    if (param) {
        for (size_t k = 0; k < c->nsteps; k++) {
            double p = param[k];
            if (op == PROMQL_AGG_TOPK || op == PROMQL_AGG_BOTTOMK || op == PROMQL_AGG_LIMITK) {
                if (isnan(p))
                    return pq_fail(c, KILN_ERANGE, "Parameter value is NaN");
                if (p >= 9223372036854775807.0 || p <= -9223372036854775808.0)
                    return pq_fail(c, KILN_ERANGE, "Scalar value %s overflows int64", pq_gfmt(p, g1));
            } else if (op == PROMQL_AGG_LIMIT_RATIO) {
                if (isnan(p))
                    return pq_fail(c, KILN_ERANGE, "Ratio value is NaN");
                if (p < -1 || p > 1)
                    pq_warn(c, a->param, "ratio value should be between -1 and 1, got %s, capping to %s",
                            pq_gfmt(p, g1), pq_gfmt(p < -1 ? -1.0 : 1.0, g2));
            } else if (op == PROMQL_AGG_QUANTILE) {
                if (isnan(p) || p < 0 || p > 1)
                    pq_warn(c, a->param, "quantile value should be between 0 and 1, got %s", pq_gfmt(p, g1));
            }
        }
    }

    size_t n = in.m.n;
    size_t *gid = malloc((n + 1) * sizeof(size_t));
    size_t *cur = calloc(n + 1, sizeof(size_t));
    group *g = calloc(n + 1, sizeof(group));
    size_t *slots = NULL, nslots = 16;
    size_t ng = 0;
    double *ev = malloc((n + 1) * sizeof(double)); /* this step's values by series */
    size_t *el = malloc((n + 1) * sizeof(size_t)); /* series present this step */
    pq_out col;
    pq_out_init(&col);
    int by_series = op == PROMQL_AGG_TOPK || op == PROMQL_AGG_BOTTOMK || op == PROMQL_AGG_LIMITK ||
                    op == PROMQL_AGG_LIMIT_RATIO;
    uint64_t *phash = NULL;
    double *wv = NULL;  /* a window of steps' values, step-major */
    uint8_t *wp = NULL; /* and whether each is present */
    while (nslots < n * 2 + 2)
        nslots *= 2;
    slots = calloc(nslots, sizeof(size_t));
    if (!gid || !cur || !g || !slots || !ev || !el)
        goto nomem;
    if (op == PROMQL_AGG_LIMIT_RATIO) {
        phash = malloc((n + 1) * sizeof(uint64_t));
        if (!phash)
            goto nomem;
        for (size_t i = 0; i < n; i++)
            phash[i] = pq_prom_hash(in.m.v[i].ls, in.m.v[i].nls);
    }

    /* groups, in order of first appearance */
    for (size_t i = 0; i < n; i++) {
        const label *ls = NULL;
        size_t nls = 0;
        if ((rc = group_labels(c, a, &in.m.v[i], &ls, &nls)) < 0)
            goto done;
        uint64_t h = labels_hash(ls, nls);
        size_t s = (size_t)(h * 0x9E3779B97F4A7C15ULL) & (nslots - 1);
        while (slots[s]) {
            group *o = &g[slots[s] - 1];
            if (o->hash == h && labels_cmp(o->ls, o->nls, ls, nls) == 0)
                break;
            s = (s + 1) & (nslots - 1);
        }
        if (!slots[s]) {
            group *ng_ = &g[ng];
            ng_->ls = labels_copy(c->mem, ls, nls);
            if (!ng_->ls && nls)
                goto nomem;
            ng_->nls = nls;
            ng_->hash = h;
            slots[s] = ++ng;
        }
        gid[i] = slots[s] - 1;
        g[gid[i]].drop_name |= in.m.v[i].drop_name;
    }
    /* members per group, for heaps and value lists; a group has a point
     * where a member has one, so at most the steps or its members' points,
     * counted against the limit before they are taken */
    size_t *members = calloc(2 * (ng + 1), sizeof(size_t)), *mpts = members + ng + 1;
    if (!members)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        members[gid[i]]++;
        mpts[gid[i]] += in.m.v[i].npts;
    }
    for (size_t j = 0; j < ng; j++) {
        g[j].heap = malloc((members[j] + 1) * sizeof(size_t));
        g[j].vals = malloc((members[j] + 1) * sizeof(double));
        int pts = !by_series && op != PROMQL_AGG_COUNT_VALUES;
        size_t np = mpts[j] < c->nsteps ? mpts[j] : c->nsteps;
        if (pts && (rc = pq_account(c, np)) < 0) {
            free(members);
            goto done;
        }
        if (pts)
            g[j].pts = arena_alloc_nz(c->mem, np * sizeof(sample) + 1);
        if (!g[j].heap || !g[j].vals || (pts && !g[j].pts)) {
            free(members);
            goto nomem;
        }
    }
    free(members);

    if (is_folding(op)) {
        if ((rc = fold_series_major(c, a->expr, op, &in.m, gid, g, ng)) < 0)
            goto done;
        goto emit;
    }
    /* the selecting operators need every value of a step at once: the
     * points are first laid out step-major for a window of steps, reading
     * each series in order (one point of every series per step would touch
     * a page per series per step) */
    size_t win = n ? AGG_MAX_CELLS / n : 1;
    if (win < 1)
        win = 1;
    if (win > c->nsteps)
        win = c->nsteps;
    wv = malloc((win * n + 1) * sizeof *wv);
    wp = malloc(win * n + 1);
    if (!wv || !wp)
        goto nomem;
    size_t k0 = 0;
    for (size_t k = 0; k < c->nsteps; k++) {
        int64_t t = c->start + (int64_t)k * c->interval;
        if ((rc = pq_account(c, 0)) < 0)
            goto done;
        if (k == 0 || k - k0 == win) {
            k0 = k;
            size_t w = c->nsteps - k0 < win ? c->nsteps - k0 : win;
            int64_t tend = c->start + (int64_t)(k0 + w - 1) * c->interval;
            memset(wp, 0, w * n);
            for (size_t i = 0; i < n; i++) {
                const pq_series *s = &in.m.v[i];
                size_t p = cur[i], kk;
                for (; p < s->npts && s->pts[p].t <= tend; p++) {
                    if (!on_grid(s->pts[p].t, t, c->interval, &kk))
                        continue;
                    wv[kk * n + i] = s->pts[p].v;
                    wp[kk * n + i] = 1;
                }
                cur[i] = p;
            }
        }
        size_t nel = 0;
        const double *rv = wv + (k - k0) * n;
        const uint8_t *rp = wp + (k - k0) * n;
        for (size_t i = 0; i < n; i++)
            if (rp[i]) {
                ev[i] = rv[i];
                el[nel++] = i;
            }
        if (!nel)
            continue;
        for (size_t j = 0; j < ng; j++) {
            g[j].seen = 0;
            g[j].nheap = 0;
            g[j].nvals = 0;
        }
        double p = param ? param[k] : 0;
        int64_t kk = 0;
        if (op == PROMQL_AGG_TOPK || op == PROMQL_AGG_BOTTOMK || op == PROMQL_AGG_LIMITK) {
            kk = (int64_t)p;
            if (kk < 1)
                continue;
        }
        double ratio = p < -1 ? -1 : p > 1 ? 1 : p;
        if (op == PROMQL_AGG_LIMIT_RATIO && ratio == 0)
            continue;
        heapctx hc = {ev, op == PROMQL_AGG_BOTTOMK};
        for (size_t x = 0; x < nel; x++) {
            size_t i = el[x];
            group *gr = &g[gid[i]];
            double v = ev[i];
            if (pq_is_hist(v) &&
                (op == PROMQL_AGG_TOPK || op == PROMQL_AGG_BOTTOMK || op == PROMQL_AGG_QUANTILE)) {
                pq_info(c, a->expr, "ignored histogram in %s aggregation", agg_name(op));
                continue;
            }
            /* the first element of a group at a step takes the same path
             * as the others: the heaps and lists start empty */
            gr->seen = 1;
            switch (op) {
            case PROMQL_AGG_TOPK:
            case PROMQL_AGG_BOTTOMK: {
                if ((int64_t)gr->nheap < kk) {
                    gr->heap[gr->nheap++] = i;
                    h_up(&hc, gr->heap, gr->nheap - 1);
                } else {
                    double top = ev[gr->heap[0]];
                    int repl = op == PROMQL_AGG_TOPK ? (top < v || (isnan(top) && !isnan(v)))
                                                     : (top > v || (isnan(top) && !isnan(v)));
                    if (repl) {
                        gr->heap[0] = i;
                        if (kk > 1)
                            h_down(&hc, gr->heap, 0, gr->nheap);
                    }
                }
                break;
            }
            case PROMQL_AGG_LIMITK:
                if ((int64_t)gr->nheap < kk)
                    gr->heap[gr->nheap++] = i;
                break;
            case PROMQL_AGG_LIMIT_RATIO:
                if (ratio_keeps(phash[i], ratio))
                    gr->heap[gr->nheap++] = i;
                break;
            case PROMQL_AGG_QUANTILE:
            case PROMQL_AGG_COUNT_VALUES:
                gr->vals[gr->nvals++] = v;
                break;
            default:
                break;
            }
        }
        /* emit */
        for (size_t j = 0; j < ng; j++) {
            group *gr = &g[j];
            if (!gr->seen)
                continue;
            double v = 0;
            switch (op) {
            case PROMQL_AGG_QUANTILE:
                v = pq_quantile(p, gr->vals, gr->nvals);
                break;
            case PROMQL_AGG_TOPK:
            case PROMQL_AGG_BOTTOMK:
                h_sort_reverse(&hc, gr->heap, gr->nheap); /* fallthrough */
            case PROMQL_AGG_LIMITK:
            case PROMQL_AGG_LIMIT_RATIO:
                for (size_t x = 0; x < gr->nheap; x++) {
                    const pq_series *s = &in.m.v[gr->heap[x]];
                    if ((rc = pq_out_add(c, &col, s->ls, s->nls, s->drop_name, t, ev[gr->heap[x]])) < 0)
                        goto done;
                }
                continue;
            case PROMQL_AGG_COUNT_VALUES: {
                /* count per distinct value, in order of first appearance
                 * (a histogram's value is its text) */
                for (size_t x = 0; x < gr->nvals; x++) {
                    double vx = gr->vals[x];
                    int dup = 0;
                    for (size_t y = 0; y < x && !dup; y++)
                        if (same_value(c, gr->vals[y], vx))
                            dup = 1;
                    if (dup)
                        continue;
                    double cnt = 0;
                    for (size_t y = x; y < gr->nvals; y++)
                        if (same_value(c, gr->vals[y], vx))
                            cnt++;
                    char num[FMT_DOUBLE_MAX];
                    fmt_double_f(vx, num);
                    const char *lv = num;
                    if (pq_is_hist(vx)) {
                        buf hs = BUF_INIT;
                        nh_string(pq_hist(c, vx), &hs);
                        lv = buf_error(&hs) ? NULL : arena_strndup(c->mem, hs.data, hs.len);
                        buf_free(&hs);
                    }
                    if (!lv || lb_from(&c->lb, gr->ls, gr->nls) < 0 || lb_set(&c->lb, strparam, lv) < 0)
                        goto nomem;
                    size_t nls;
                    const label *ls = lb_labels(&c->lb, &nls);
                    if ((rc = pq_out_count(c, &col, ls, nls, t, cnt)) < 0)
                        goto done;
                }
                continue;
            }
            default:
                break;
            }
            gr->pts[gr->npts++] = (sample){t, v};
        }
    }
    if (by_series || op == PROMQL_AGG_COUNT_VALUES) {
        rc = pq_out_finish(c, &col, &out->m);
        goto done;
    }
emit:
    for (size_t j = 0; j < ng; j++) {
        if (!g[j].npts)
            continue;
        if ((rc = pq_matrix_push_pts(c, &out->m, g[j].ls, g[j].nls, g[j].drop_name, g[j].pts, g[j].npts)) < 0)
            goto done;
    }
    rc = 0;
done:
    if (g)
        for (size_t j = 0; j < ng; j++) {
            free(g[j].heap);
            free(g[j].vals);
        }
    free(g);
    free(gid);
    free(cur);
    free(slots);
    free(ev);
    free(el);
    free(phash);
    free(wv);
    free(wp);
    pq_out_free(&col);
    return rc;
nomem:
    rc = pq_fail(c, KILN_ENOMEM, "out of memory");
    goto done;
}
