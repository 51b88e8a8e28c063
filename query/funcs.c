/*
 * funcs.c - PromQL function calls: the dispatch of every function
 * (pq_eval_call), the instant-vector functions applied point by point (math,
 * dates, clamp, round), label_replace and label_join, sort and its label
 * variants, absent, scalar, vector and the scalar functions (time, pi,
 * step, ...); and the helpers the other function files share (a scalar
 * argument, the quantile warning, absent()'s output, Prometheus' quantile).
 * The range-vector functions are in rangefuncs.c, histogram_quantile and
 * histogram_fraction in histogram.c.
 *
 * Called by engine.c (pq_eval, for every PROMQL_CALL node but timestamp(),
 * which needs the selector's sample times and stays there).
 * Threading: runs on the thread evaluating its query; no shared state.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "query/eval.h"
#include "query/nhist.h"

/* ---- helpers shared with rangefuncs.c, histogram.c and aggr.c ---- */

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

double *pq_scalar_arg(pq_ctx *c, const promql_expr *e, size_t i) {
    pq_value v;
    memset(&v, 0, sizeof v);
    if (pq_eval(c, e->u.call.args[i], &v) < 0)
        return NULL;
    return v.scal;
}

void pq_warn_quantile(pq_ctx *c, const promql_expr *arg, const double *q) {
    for (size_t k = 0; k < c->nsteps; k++)
        if (isnan(q[k]) || q[k] < 0 || q[k] > 1) {
            char g[FMT_DOUBLE_MAX];
            pq_warn(c, arg, "quantile value should be between 0 and 1, got %s", pq_gfmt(q[k], g));
            return;
        }
}

int pq_push_absent(pq_ctx *c, pq_value *out, sample *pts, size_t np, const promql_vector_selector *vs) {
    if (!np)
        return 0;
    pq_series *o;
    if (pq_matrix_push(c, &out->m, &o) < 0)
        return c->code;
    o->pts = pts;
    o->npts = np;
    if (!vs)
        return 0;
    /* the labels of the equality matchers; a label matched twice gets none */
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

static int is_hist_stat(promql_func_id id) {
    return id == PROMQL_FN_HISTOGRAM_COUNT || id == PROMQL_FN_HISTOGRAM_SUM ||
           id == PROMQL_FN_HISTOGRAM_AVG || id == PROMQL_FN_HISTOGRAM_STDDEV ||
           id == PROMQL_FN_HISTOGRAM_STDVAR;
}

/* histogram_count, _sum, _avg, _stddev, _stdvar of one native histogram. */
static double hist_stat(promql_func_id id, const histogram *h) {
    switch (id) {
    case PROMQL_FN_HISTOGRAM_COUNT:
        return h->count;
    case PROMQL_FN_HISTOGRAM_SUM:
        return h->sum;
    case PROMQL_FN_HISTOGRAM_AVG:
        return h->sum / h->count;
    case PROMQL_FN_HISTOGRAM_STDDEV:
        return sqrt(nh_stdvar(h));
    default:
        return nh_stdvar(h);
    }
}

/* The functions of one point: math and date functions of floats, the
 * histogram_* statistics of native histograms. */
KILN_MUST_CHECK static int eval_pointwise(pq_ctx *c, const promql_expr *e, pq_value *out) {
    promql_func_id id = e->u.call.func->id;
    const promql_call *call = &e->u.call;
    double *a = NULL, *b = NULL;
    if (id == PROMQL_FN_CLAMP) {
        if (!(a = pq_scalar_arg(c, e, 1)) || !(b = pq_scalar_arg(c, e, 2)))
            return c->code;
    } else if ((id == PROMQL_FN_CLAMP_MAX || id == PROMQL_FN_CLAMP_MIN) ||
               (id == PROMQL_FN_ROUND && call->nargs > 1)) {
        if (!(a = pq_scalar_arg(c, e, 1)))
            return c->code;
    }
    out->type = PROMQL_TYPE_VECTOR;
    pq_value in;
    memset(&in, 0, sizeof in);
    if (call->nargs == 0) {
        /* date functions default to vector(time()) */
        pq_series *o;
        if (pq_account(c, c->nsteps) < 0 || pq_matrix_push(c, &out->m, &o) < 0)
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
        sample *pts = pq_points(c, s->npts);
        if (!pts)
            return c->code;
        size_t np = 0;
        for (size_t j = 0; j < s->npts; j++) {
            size_t k = pq_step_idx(c, s->pts[j].t);
            double av = a ? a[k] : 1, bv = b ? b[k] : 0;
            int hist = pq_is_hist(s->pts[j].v);
            /* functions of floats leave histograms out, those of
             * histograms floats */
            if ((id == PROMQL_FN_CLAMP && bv < av) || hist != is_hist_stat(id))
                continue;
            pts[np++] = (sample){s->pts[j].t, hist ? hist_stat(id, pq_hist(c, s->pts[j].v))
                                                   : math_fn(id, s->pts[j].v, av, bv)};
        }
        if (!np)
            continue;
        if (pq_matrix_push_pts(c, &out->m, s->ls, s->nls, 1, pts, np) < 0)
            return c->code;
    }
    return 0;
}

/* ---- label_replace / label_join ---- */

static int dst_name_valid(const char *s) {
    size_t n = strlen(s);
    return n > 0 && utf8_valid(s, n);
}

/* The end of the group name that starts at p ([A-Za-z0-9_]*). */
static const char *name_end(const char *p) {
    while (*p == '_' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
        p++;
    return p;
}

/* Appends the expansion of template `tpl` (Go's Regexp.Expand); out of
 * memory is left in out's sticky flag. */
static void expand_tpl(buf *out, const char *tpl, const char *subj, PCRE2_SIZE *ov, int nmatch,
                       pcre2_code *re) {
    for (const char *p = tpl; *p;) {
        if (*p != '$') {
            buf_putc(out, *p++);
            continue;
        }
        p++;
        if (*p == '$') {
            buf_putc(out, '$');
            p++;
            continue;
        }
        /* $name or ${name}; a '$' without a name stands for itself */
        int braced = *p == '{';
        const char *nm = p + braced, *q = name_end(nm);
        if (q == nm || (braced && *q != '}')) {
            buf_putc(out, '$');
            continue;
        }
        size_t nl = (size_t)(q - nm);
        p = q + braced;
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
        if (idx >= 0 && idx < nmatch && ov[2 * idx] != PCRE2_UNSET)
            buf_append(out, subj + ov[2 * idx], ov[2 * idx + 1] - ov[2 * idx]);
    }
}

static const char *str_arg(const promql_expr *e) {
    e = pq_unparen(e);
    return e->kind == PROMQL_STRING ? e->u.string.s : "";
}

KILN_MUST_CHECK static int eval_label_fn(pq_ctx *c, const promql_expr *e, pq_value *out) {
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

    if (id == PROMQL_FN_LABEL_REPLACE) {
        const char *regex = str_arg(call->args[4]);
        buf pat = BUF_INIT;
        buf_printf(&pat, "^(?s:%s)$", regex);
        if (buf_error(&pat)) {
            buf_free(&pat);
            goto nomem;
        }
        int ecode;
        PCRE2_SIZE eoff;
        re = pcre2_compile((PCRE2_SPTR)pat.data, pat.len, PCRE2_UTF | PCRE2_DOLLAR_ENDONLY, &ecode, &eoff,
                           NULL);
        buf_free(&pat);
        if (!re) {
            rc = pq_fail(c, KILN_ERANGE, "invalid regular expression in label_replace(): %s", regex);
            goto done;
        }
        md = pcre2_match_data_create_from_pattern(re, NULL);
        if (!md)
            goto nomem;
    }
    if (!dst_name_valid(dst)) {
        rc = pq_fail(c, KILN_ERANGE, "invalid destination label name in %s(): %s", fname, dst);
        goto done;
    }
    if (id == PROMQL_FN_LABEL_JOIN) {
        for (size_t i = 3; i < call->nargs; i++) {
            const char *src = str_arg(call->args[i]);
            if (!dst_name_valid(src)) {
                rc = pq_fail(c, KILN_ERANGE, "invalid source label name in label_join(): %s", src);
                goto done;
            }
        }
    }
    pq_value in;
    memset(&in, 0, sizeof in);
    if ((rc = pq_eval(c, call->args[0], &in)) < 0)
        goto done;
    out->type = PROMQL_TYPE_VECTOR;
    for (size_t i = 0; i < in.m.n; i++) {
        const pq_series *s = &in.m.v[i];
        buf_reset(&val);
        int set = 0;
        if (id == PROMQL_FN_LABEL_REPLACE) {
            const char *src = labels_get(s->ls, s->nls, str_arg(call->args[3]));
            if (!src)
                src = "";
            kiln_err me = {0};
            int m = matcher_pcre2_match(re, str_arg(call->args[4]), str_arg(call->args[3]), src, md, &me);
            if (m < 0) {
                rc = pq_fail(c, m, "label_replace(): %s", me.msg);
                goto done;
            }
            if (m > 0) {
                expand_tpl(&val, str_arg(call->args[2]), src, pcre2_get_ovector_pointer(md), m, re);
                set = 1;
            }
        } else {
            const char *sep = str_arg(call->args[2]);
            for (size_t j = 3; j < call->nargs; j++) {
                const char *v = labels_get(s->ls, s->nls, str_arg(call->args[j]));
                if (j > 3)
                    buf_puts(&val, sep);
                if (v)
                    buf_puts(&val, v);
            }
            set = 1;
        }
        if (buf_error(&val))
            goto nomem;
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
                goto done;
    }
    rc = pq_out_finish(c, &col, &out->m);
done:
    pq_out_free(&col);
    buf_free(&val);
    if (md)
        pcre2_match_data_free(md);
    if (re)
        pcre2_code_free(re);
    return rc;
nomem:
    rc = pq_fail(c, KILN_ENOMEM, "out of memory");
    goto done;
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

KILN_MUST_CHECK static int eval_sort(pq_ctx *c, const promql_expr *e, pq_value *out) {
    promql_func_id id = e->u.call.func->id;
    int rc = pq_eval(c, e->u.call.args[0], out);
    if (rc < 0)
        return rc;
    if (c->start != c->end) {
        pq_warn(c, e, "sort is ineffective for range queries since results are always ordered by labels");
        return 0;
    }
    int desc = id == PROMQL_FN_SORT_DESC || id == PROMQL_FN_SORT_BY_LABEL_DESC;
    int bylabel = id == PROMQL_FN_SORT_BY_LABEL || id == PROMQL_FN_SORT_BY_LABEL_DESC;
    if (!bylabel) {
        /* sort and sort_desc leave histograms out */
        size_t k = 0;
        for (size_t i = 0; i < out->m.n; i++)
            if (!out->m.v[i].npts || !pq_is_hist(out->m.v[i].pts[0].v))
                out->m.v[k++] = out->m.v[i];
        out->m.n = k;
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

/* ---- step-wise helpers: scalar(), vector(), absent(), time() ---- */

KILN_MUST_CHECK static int eval_absent(pq_ctx *c, const promql_expr *e, pq_value *out) {
    pq_value in;
    memset(&in, 0, sizeof in);
    int rc = pq_eval(c, e->u.call.args[0], &in);
    if (rc < 0)
        return rc;
    out->type = PROMQL_TYPE_VECTOR;
    /* the output has a point at every step the input has none: more than
     * the limit allows when the steps outnumber the input points by that
     * much (no need for a flag a step to know) */
    size_t nin = 0;
    for (size_t i = 0; i < in.m.n; i++)
        nin += in.m.v[i].npts;
    size_t cap = pq_step_cap(c);
    if (cap < c->nsteps && c->nsteps > nin && c->nsteps - nin >= cap)
        return pq_fail(c, KILN_ELIMIT, "%s", PQ_TOO_MANY_SAMPLES);
    unsigned char *has = calloc(c->nsteps + 1, 1);
    if (!has)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    size_t np = c->nsteps;
    for (size_t i = 0; i < in.m.n; i++)
        for (size_t j = 0; j < in.m.v[i].npts; j++) {
            size_t k = pq_step_idx(c, in.m.v[i].pts[j].t);
            np -= !has[k];
            has[k] = 1;
        }
    sample *pts = NULL;
    if (pq_account(c, np) < 0 || !(pts = arena_alloc_nz(c->mem, np * sizeof(sample) + 1))) {
        free(has);
        return c->code ? c->code : pq_fail(c, KILN_ENOMEM, "out of memory");
    }
    np = 0;
    for (size_t k = 0; k < c->nsteps; k++)
        if (!has[k])
            pts[np++] = (sample){c->start + (int64_t)k * c->interval, 1};
    free(has);
    const promql_expr *a = e->u.call.args[0];
    return pq_push_absent(c, out, pts, np, a->kind == PROMQL_VECTOR_SELECTOR ? &a->u.vs : NULL);
}

KILN_MUST_CHECK static int eval_scalar_fn(pq_ctx *c, const promql_expr *e, pq_value *out) {
    pq_value in;
    memset(&in, 0, sizeof in);
    int rc = pq_eval(c, e->u.call.args[0], &in);
    if (rc < 0 || (rc = pq_new_scalar(c, out)) < 0)
        return rc;
    unsigned *cnt = calloc(c->nsteps + 1, sizeof(unsigned));
    if (!cnt)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    for (size_t k = 0; k < c->nsteps; k++)
        out->scal[k] = NAN;
    for (size_t i = 0; i < in.m.n; i++)
        for (size_t j = 0; j < in.m.v[i].npts; j++) {
            size_t k = pq_step_idx(c, in.m.v[i].pts[j].t);
            double v = in.m.v[i].pts[j].v;
            if (pq_is_hist(v))
                continue; /* scalar() looks at the floats only */
            out->scal[k] = ++cnt[k] == 1 ? v : NAN;
        }
    free(cnt);
    return 0;
}

int pq_eval_call(pq_ctx *c, const promql_expr *e, pq_value *out) {
    const promql_call *call = &e->u.call;
    promql_func_id id = call->func->id;
    if (pq_is_extended_range_call(e))
        return pq_eval_extended_range(c, e, out);
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
        return pq_eval_range_func(c, e, out);
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
    case PROMQL_FN_HISTOGRAM_QUANTILES:
    case PROMQL_FN_HISTOGRAM_FRACTION:
        return pq_eval_histogram(c, e, out);
    case PROMQL_FN_INFO:
        return pq_eval_info(c, e, out);
    case PROMQL_FN_START_TIMESTAMP:
        /* empty without use-start-timestamps (functions.md), which kiln lacks */
        out->type = PROMQL_TYPE_VECTOR;
        return 0;
    case PROMQL_FN_HISTOGRAM_COUNT:
    case PROMQL_FN_HISTOGRAM_SUM:
    case PROMQL_FN_HISTOGRAM_AVG:
    case PROMQL_FN_HISTOGRAM_STDDEV:
    case PROMQL_FN_HISTOGRAM_STDVAR:
        return eval_pointwise(c, e, out);
    case PROMQL_FN_ABSENT:
        return eval_absent(c, e, out);
    case PROMQL_FN_SCALAR:
        return eval_scalar_fn(c, e, out);
    case PROMQL_FN_STEP:
    case PROMQL_FN_RANGE:
    case PROMQL_FN_START:
    case PROMQL_FN_END: {
        int rc = pq_new_scalar(c, out);
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
        int rc = pq_new_scalar(c, out);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < call->nargs; i++) {
            double *a = pq_scalar_arg(c, e, i);
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
        int rc = pq_new_scalar(c, out);
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
        return pq_push_scalar_series(c, &out->m, in.scal);
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
