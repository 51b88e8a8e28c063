/*
 * engine.c - the PromQL evaluator: instant and range queries, selectors
 * (lookback, stale markers, offset, @), subqueries, binary operators with
 * vector matching, and the final shaping of results.
 *
 * Every node is evaluated over all steps of the query at once.  Selectors
 * and range functions go series at a time (each series is loaded once and a
 * window slides over the steps); binary operators and aggregations work
 * step by step over per-series cursors.  __name__ removal is delayed as in
 * Prometheus 3 with the feature on: series carry a drop_name flag that the
 * end of evaluation applies, then checks for equal label sets.
 *
 * Also here: the evaluation context (errors, annotations, the sample limit,
 * cancellation and the deadline) and the output collector the other
 * evaluator files build results with (eval.h).
 *
 * Called by api/query_api.c (the query and query_range endpoints), the
 * PromQL test runner and the query benchmark; evaluates through funcs.c,
 * rangefuncs.c, histogram.c and aggr.c.
 * Threading: a query runs on the thread that called query_instant or
 * query_range (the API's: a libuv worker), any number at once; the
 * query_engine is read-only, each query has its own pq_ctx and arena.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "query/eval.h"
#include "query/nhist.h"

#define QUERY_DEFAULT_STEP_MS 60000

static const uint64_t STALE_BITS = 0x7ff0000000000002ULL;

static int is_stale(double v) {
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b == STALE_BITS;
}

/* ---- public small things ---- */

query_engine_opts query_engine_opts_default(void) {
    query_engine_opts o = {5 * 60 * 1000, 50000000, 2 * 60 * 1000, 0};
    return o;
}

void query_engine_init(query_engine *e, const query_engine_opts *o) {
    e->opts = o ? *o : query_engine_opts_default();
    if (e->opts.lookback_delta_ms <= 0)
        e->opts.lookback_delta_ms = 5 * 60 * 1000;
}

void query_result_free(query_result *r) {
    if (!r)
        return;
    arena_free(&r->mem);
    memset(r, 0, sizeof *r);
}

const char *query_error_type(int code) {
    switch (code) {
    case KILN_EINVAL:
        return "bad_data";
    case KILN_ETIMEOUT:
        return "timeout";
    case KILN_ECANCELED:
        return "canceled";
    case KILN_ENOMEM:
    case KILN_EIO:
    case KILN_ECORRUPT:
        return "internal";
    default:
        return "execution";
    }
}

_Static_assert((int)QUERY_SCALAR == (int)PROMQL_TYPE_SCALAR && (int)QUERY_STRING == (int)PROMQL_TYPE_STRING &&
                   (int)QUERY_VECTOR == (int)PROMQL_TYPE_VECTOR &&
                   (int)QUERY_MATRIX == (int)PROMQL_TYPE_MATRIX,
               "query_value_type numbers the types as promql_type does");

const char *query_value_type_name(query_value_type t) {
    return promql_type_go_name((promql_type)t);
}

/* ---- context helpers ---- */

int pq_fail(pq_ctx *c, int code, const char *fmt, ...) {
    if (c->code == 0) {
        c->code = code;
        if (c->err) {
            va_list ap;
            va_start(ap, fmt);
            c->err->code = code;
            vsnprintf(c->err->msg, sizeof c->err->msg, fmt, ap);
            va_end(ap);
        }
    }
    return c->code;
}

static void annotate(pq_ctx *c, int warn, const promql_expr *e, const char *fmt, va_list ap) {
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "%s", warn ? "PromQL warning: " : "PromQL info: ");
    n += vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    if (e && c->query && (size_t)n < sizeof msg) {
        size_t line = 1, col = 1;
        for (size_t i = 0; i < e->start && c->query[i]; i++) {
            if (c->query[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        snprintf(msg + n, sizeof msg - (size_t)n, " (%zu:%zu)", line, col);
    }
    const char ***v = warn ? &c->warn : &c->info;
    size_t *nv = warn ? &c->nwarn : &c->ninfo, *cap = warn ? &c->capwarn : &c->capinfo;
    for (size_t i = 0; i < *nv; i++)
        if (strcmp((*v)[i], msg) == 0)
            return;
    if (*nv == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        const char **nvv = arena_alloc(c->mem, nc * sizeof(char *));
        if (!nvv)
            return;
        if (*nv)
            memcpy(nvv, *v, *nv * sizeof(char *));
        *v = nvv;
        *cap = nc;
    }
    char *s = arena_strndup(c->mem, msg, strlen(msg));
    if (s)
        (*v)[(*nv)++] = s;
}

void pq_warn(pq_ctx *c, const promql_expr *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    annotate(c, 1, e, fmt, ap);
    va_end(ap);
}

void pq_info(pq_ctx *c, const promql_expr *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    annotate(c, 0, e, fmt, ap);
    va_end(ap);
}

#define PQ_CANCELED "query was canceled in query execution"
#define PQ_TIMED_OUT "query timed out in query execution"

/* Whether the caller canceled the query (query_opts' flag or callback);
 * also the querier's guard's cancel callback, data the query_opts. */
static int canceled(void *data) {
    const query_opts *o = data;
    return o && ((o->cancel_flag && *o->cancel_flag) || (o->cancel_cb && o->cancel_cb(o->cancel_data)));
}

KILN_MUST_CHECK static int poll_cancel(pq_ctx *c) {
    if (canceled((void *)c->o))
        return pq_fail(c, KILN_ECANCELED, PQ_CANCELED);
    if (c->deadline > 0 && time_mono_sec() > c->deadline)
        return pq_fail(c, KILN_ETIMEOUT, PQ_TIMED_OUT);
    return 0;
}

int pq_poll(pq_ctx *c) {
    return poll_cancel(c);
}

/* Beyond this many points an array of them would not fit in size_t bytes:
 * out of memory even with the limit off. */
#define PQ_MAX_POINTS (SIZE_MAX / 64)

int pq_account(pq_ctx *c, size_t n) {
    if (n > PQ_MAX_POINTS - c->cur_samples)
        return pq_fail(c, c->max_samples ? KILN_ELIMIT : KILN_ENOMEM, "%s",
                       c->max_samples ? PQ_TOO_MANY_SAMPLES : "out of memory");
    c->cur_samples += n;
    if (c->max_samples && c->cur_samples > c->max_samples)
        return pq_fail(c, KILN_ELIMIT, "%s", PQ_TOO_MANY_SAMPLES);
    if ((++c->poll & 63) == 0)
        return poll_cancel(c);
    return 0;
}

size_t pq_step_cap(const pq_ctx *c) {
    size_t left = PQ_MAX_POINTS - c->cur_samples;
    if (c->max_samples)
        left = c->cur_samples < c->max_samples ? c->max_samples - c->cur_samples : 0;
    return c->nsteps <= left ? c->nsteps : left + 1;
}

int pq_matrix_push(pq_ctx *c, pq_matrix *m, pq_series **out) {
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 16;
        pq_series *nv = arena_alloc(c->mem, nc * sizeof *nv);
        if (!nv)
            return pq_fail(c, KILN_ENOMEM, "out of memory");
        if (m->n)
            memcpy(nv, m->v, m->n * sizeof *nv);
        m->v = nv;
        m->cap = nc;
    }
    *out = &m->v[m->n++];
    memset(*out, 0, sizeof **out);
    return 0;
}

int pq_matrix_push_pts(pq_ctx *c, pq_matrix *m, label *ls, size_t nls, int drop_name, sample *pts, size_t n) {
    pq_series *o;
    if (pq_matrix_push(c, m, &o) < 0)
        return c->code;
    o->ls = ls;
    o->nls = nls;
    o->drop_name = drop_name;
    o->pts = pts;
    o->npts = n;
    return 0;
}

sample *pq_points(pq_ctx *c, size_t n) {
    if (pq_account(c, n) < 0)
        return NULL;
    sample *pts = arena_alloc_nz(c->mem, n * sizeof(sample) + 1);
    if (!pts)
        pq_fail(c, KILN_ENOMEM, "out of memory");
    return pts;
}

int pq_matrix_push_copy(pq_ctx *c, pq_matrix *m, label *ls, size_t nls, int drop_name, const sample *pts,
                        size_t n) {
    if (pq_account(c, n) < 0)
        return c->code;
    sample *copy = arena_alloc_nz(c->mem, n * sizeof(sample));
    if (!copy)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    memcpy(copy, pts, n * sizeof(sample));
    return pq_matrix_push_pts(c, m, ls, nls, drop_name, copy, n);
}

int pq_new_scalar(pq_ctx *c, pq_value *out) {
    if (pq_account(c, c->nsteps) < 0)
        return c->code;
    out->type = PROMQL_TYPE_SCALAR;
    out->scal = arena_alloc(c->mem, (c->nsteps + 1) * sizeof(double));
    return out->scal ? 0 : pq_fail(c, KILN_ENOMEM, "out of memory");
}

int pq_push_scalar_series(pq_ctx *c, pq_matrix *m, const double *scal) {
    pq_series *o;
    if (pq_account(c, c->nsteps) < 0 || pq_matrix_push(c, m, &o) < 0)
        return c->code;
    o->pts = arena_alloc_nz(c->mem, c->nsteps * sizeof(sample) + 1);
    if (!o->pts)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    for (size_t k = 0; k < c->nsteps; k++)
        o->pts[k] = (sample){c->start + (int64_t)k * c->interval, scal[k]};
    o->npts = c->nsteps;
    return 0;
}

const promql_expr *pq_unparen(const promql_expr *e) {
    while (e->kind == PROMQL_PAREN)
        e = e->u.paren;
    return e;
}

label *pq_drop_name(pq_ctx *c, label *ls, size_t *nls) {
    size_t i;
    for (i = 0; i < *nls; i++)
        if (strcmp(ls[i].name, LABEL_NAME) == 0)
            break;
    if (i == *nls)
        return ls;
    label *n = arena_alloc(c->mem, (*nls) * sizeof(label) + 1);
    if (!n)
        return NULL;
    size_t k = 0;
    for (size_t j = 0; j < *nls; j++)
        if (j != i)
            n[k++] = ls[j];
    *nls = k;
    return n;
}

/* Adds one label to a hash as Prometheus' labels.Hash does: name 0xff value 0xff. */
static void hash_label(XXH64_state_t *st, const label *l) {
    static const char sep = (char)0xff;
    XXH64_update(st, l->name, strlen(l->name));
    XXH64_update(st, &sep, 1);
    XXH64_update(st, l->value, strlen(l->value));
    XXH64_update(st, &sep, 1);
}

uint64_t pq_prom_hash(const label *ls, size_t n) {
    XXH64_state_t st;
    XXH64_reset(&st, 0);
    for (size_t i = 0; i < n; i++)
        hash_label(&st, &ls[i]);
    return XXH64_digest(&st);
}

const char *pq_gfmt(double v, char *out) {
    fmt_double_g(v, out);
    return out;
}

/* ---- output collector ---- */

void pq_out_init(pq_out *o) {
    memset(o, 0, sizeof *o);
}

void pq_out_free(pq_out *o) {
    for (size_t i = 0; i < o->n; i++)
        free(o->v[i].pts);
    free(o->v);
    free(o->slots);
    memset(o, 0, sizeof *o);
}

KILN_MUST_CHECK static int out_grow_slots(pq_out *o) {
    size_t ns = o->nslots ? o->nslots * 2 : 64;
    size_t *sl = calloc(ns, sizeof(size_t));
    if (!sl)
        return KILN_ENOMEM;
    for (size_t i = 0; i < o->n; i++) {
        size_t h = (size_t)o->v[i].hash & (ns - 1);
        while (sl[h])
            h = (h + 1) & (ns - 1);
        sl[h] = i + 1;
    }
    free(o->slots);
    o->slots = sl;
    o->nslots = ns;
    return 0;
}

KILN_MUST_CHECK static int out_point(pq_ctx *c, pq_out_series *s, int64_t t, double v) {
    if (pq_account(c, 1) < 0)
        return c->code;
    if (s->npts == s->cap && array_grow((void **)&s->pts, &s->cap, s->npts + 1, sizeof *s->pts) < 0)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    if (s->npts && s->pts[s->npts - 1].t >= t)
        s->unsorted = 1;
    s->pts[s->npts++] = (sample){t, v};
    return 0;
}

/* Finds or creates the series; returns its index or a negative code. */
KILN_MUST_CHECK static long out_series(pq_ctx *c, pq_out *o, const label *ls, size_t nls, int drop_name) {
    uint64_t h = labels_hash(ls, nls);
    if (o->n * 2 >= o->nslots && out_grow_slots(o) < 0)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    size_t i = (size_t)h & (o->nslots - 1);
    while (o->slots[i]) {
        pq_out_series *s = &o->v[o->slots[i] - 1];
        if (s->hash == h && labels_cmp(s->ls, s->nls, ls, nls) == 0) {
            if (!drop_name)
                s->drop_name = 0;
            return (long)(o->slots[i] - 1);
        }
        i = (i + 1) & (o->nslots - 1);
    }
    if (o->n == o->cap && array_grow((void **)&o->v, &o->cap, o->n + 1, sizeof *o->v) < 0)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    pq_out_series *s = &o->v[o->n];
    memset(s, 0, sizeof *s);
    s->ls = labels_copy(c->mem, ls, nls);
    if (!s->ls && nls)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    s->nls = nls;
    s->hash = h;
    s->drop_name = drop_name;
    o->slots[i] = ++o->n;
    return (long)(o->n - 1);
}

int pq_out_add(pq_ctx *c, pq_out *o, const label *ls, size_t nls, int drop_name, int64_t t, double v) {
    long i = out_series(c, o, ls, nls, drop_name);
    if (i < 0)
        return (int)i;
    return out_point(c, &o->v[i], t, v);
}

int pq_out_count(pq_ctx *c, pq_out *o, const label *ls, size_t nls, int64_t t, double v) {
    long i = out_series(c, o, ls, nls, 0);
    if (i < 0)
        return (int)i;
    pq_out_series *s = &o->v[i];
    if (s->npts && s->pts[s->npts - 1].t == t) {
        s->pts[s->npts - 1].v += v;
        return 0;
    }
    return out_point(c, s, t, v);
}

static int cmp_sample_t(const void *a, const void *b) {
    int64_t x = ((const sample *)a)->t, y = ((const sample *)b)->t;
    return x < y ? -1 : x > y;
}

int pq_out_finish(pq_ctx *c, pq_out *o, pq_matrix *m) {
    for (size_t i = 0; i < o->n; i++) {
        pq_out_series *s = &o->v[i];
        if (s->unsorted) {
            qsort(s->pts, s->npts, sizeof(sample), cmp_sample_t);
            for (size_t j = 1; j < s->npts; j++)
                if (s->pts[j].t == s->pts[j - 1].t)
                    return pq_fail(c, KILN_ERANGE, "vector cannot contain metrics with the same labelset");
        }
        pq_series *d;
        if (pq_matrix_push(c, m, &d) < 0)
            return c->code;
        d->ls = s->ls;
        d->nls = s->nls;
        d->drop_name = s->drop_name;
        d->pts = arena_alloc_nz(c->mem, s->npts * sizeof(sample) + 1);
        if (!d->pts)
            return pq_fail(c, KILN_ENOMEM, "out of memory");
        if (s->npts)
            memcpy(d->pts, s->pts, s->npts * sizeof(sample));
        d->npts = s->npts;
    }
    return 0;
}

/* ---- selectors ---- */

int64_t pq_at_time(const pq_ctx *c, promql_at_kind k, int64_t at_ms) {
    switch (k) {
    case PROMQL_AT_TIMESTAMP:
        return at_ms;
    case PROMQL_AT_START:
        return c->qstart;
    case PROMQL_AT_END:
        return c->qend;
    default:
        return 0;
    }
}

int pq_select(pq_ctx *c, const promql_vector_selector *vs, int64_t mint, int64_t maxt, series_set **out) {
    if (c->nsets == c->capsets &&
        array_grow((void **)&c->sets, &c->capsets, c->nsets + 1, sizeof *c->sets) < 0)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    series_set *set = calloc(1, sizeof *set);
    if (!set)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    select_hints h = {mint, maxt, 0, 0};
    if (c->max_samples)
        h.max_samples =
            c->max_samples - (c->cur_samples < c->max_samples ? c->cur_samples : c->max_samples) + 1;
    kiln_err e;
    memset(&e, 0, sizeof e);
    int rc = querier_select(c->q, vs->matchers, vs->nmatchers, &h, set, &e);
    c->sets[c->nsets++] = set;
    if (rc == 0 && storage_source_merge(c->st, vs->matchers, vs->nmatchers, &h, set, &e))
        pq_warn(c, NULL, "%s", e.msg); /* remote_read failed: a warning, as in Prometheus */
    /* the querier's guard stopped the matchers: the engine's words */
    if (rc == KILN_ETIMEOUT)
        return pq_fail(c, rc, PQ_TIMED_OUT);
    if (rc == KILN_ECANCELED)
        return pq_fail(c, rc, PQ_CANCELED);
    if (rc < 0)
        return pq_fail(c, rc, "%s", e.msg);
    size_t tot = 0;
    for (size_t i = 0; i < set->n; i++)
        tot += set->v[i].n;
    if (pq_account(c, tot) < 0)
        return c->code;
    *out = set;
    return 0;
}

double pq_hbox(pq_ctx *c, histogram *h) {
    if (c->nhists == c->caphists &&
        array_grow((void **)&c->hists, &c->caphists, c->nhists + 1, sizeof *c->hists) < 0) {
        pq_fail(c, KILN_ENOMEM, "out of memory");
        return NAN;
    }
    c->hists[c->nhists] = h;
    return double_from_bits(PQ_HBOX_TAG | (uint64_t)c->nhists++);
}

/* The points of storage series s in time order: its floats, and its
 * histograms boxed (a stale histogram becomes a stale marker).  A float
 * with a box's bits becomes a plain NaN.  Series without histograms keep
 * their array (the set is the query's); NULL with c->code set when out of
 * memory. */
static sample *series_points(pq_ctx *c, series *s, size_t *n) {
    for (size_t j = 0; j < s->n; j++)
        if (pq_is_hist(s->s[j].v))
            s->s[j].v = NAN;
    *n = s->n;
    if (!s->nh)
        return s->s;
    sample *p = arena_alloc_nz(c->mem, (s->n + s->nh) * sizeof *p);
    if (!p) {
        pq_fail(c, KILN_ENOMEM, "out of memory");
        return NULL;
    }
    size_t i = 0, j = 0, k = 0;
    while (i < s->n || j < s->nh) {
        if (j == s->nh || (i < s->n && s->s[i].t < s->hs[j].t)) {
            p[k++] = s->s[i++];
            continue;
        }
        histogram *h = s->hs[j].h;
        p[k].t = s->hs[j++].t;
        p[k++].v = value_is_stale(h->sum) ? stale_nan() : pq_hbox(c, h);
    }
    *n = k;
    return c->code ? NULL : p;
}

/* Instant vector selector over all steps; `ts_values`: the value is the
 * sample's timestamp in seconds (timestamp()). */
KILN_MUST_CHECK static int eval_vector_selector(pq_ctx *c, const promql_expr *e, int ts_values,
                                                pq_value *out) {
    const promql_vector_selector *vs = &e->u.vs;
    int has_at = vs->at != PROMQL_AT_NONE;
    int64_t at = has_at ? pq_at_time(c, vs->at, vs->at_ms) : 0;
    int64_t tmin = (has_at ? at : c->start) - vs->offset_ms;
    int64_t tmax = (has_at ? at : c->end) - vs->offset_ms;
    series_set *set;
    if (pq_select(c, vs, tmin - c->lookback + 1, tmax, &set) < 0)
        return c->code;
    out->type = PROMQL_TYPE_VECTOR;
    if (!set->n)
        return 0;
    /* a series has a point at each step at most, and more points than the
     * limit allows fail it: the scratch is the smaller of the two */
    size_t cap = pq_step_cap(c);
    sample *tmp = malloc((cap + 1) * sizeof(sample));
    if (!tmp)
        return pq_fail(c, KILN_ENOMEM, "out of memory");
    for (size_t i = 0; i < set->n; i++) {
        size_t sn;
        const sample *ss = series_points(c, &set->v[i], &sn);
        if (!ss)
            break;
        const series *s = &set->v[i];
        size_t j = 0, np = 0;
        for (size_t k = 0; k < c->nsteps; k++) {
            int64_t t = c->start + (int64_t)k * c->interval;
            if ((k & 0xfffff) == 0xfffff && pq_poll(c) < 0)
                break;
            int64_t te = (has_at ? at : t) - vs->offset_ms;
            while (j < sn && ss[j].t <= te)
                j++;
            const sample *p = j ? &ss[j - 1] : NULL;
            if (!p || p->t <= te - c->lookback || is_stale(p->v)) {
                /* no point until the next sample's step: skip to it (a
                 * subquery's steps can be billions, its samples few) */
                if (has_at || j == sn)
                    break;
                int64_t next = ss[j].t + vs->offset_ms;
                if (next > t) {
                    size_t kn = (size_t)((next - c->start + c->interval - 1) / c->interval);
                    if (kn > k + 1)
                        k = kn - 1;
                }
                continue;
            }
            if (np == cap) {
                pq_fail(c, KILN_ELIMIT, "%s", PQ_TOO_MANY_SAMPLES);
                break;
            }
            tmp[np++] = (sample){t, ts_values ? (double)p->t / 1000 : p->v};
        }
        if (c->code)
            break;
        if (np && pq_matrix_push_copy(c, &out->m, s->ls, s->nls, ts_values, tmp, np) < 0)
            break;
    }
    free(tmp);
    return c->code;
}

int pq_eval_range_arg(pq_ctx *c, const promql_expr *e, pq_range_arg *out) {
    e = pq_unparen(e);
    memset(out, 0, sizeof *out);
    if (e->kind == PROMQL_MATRIX_SELECTOR) {
        const promql_expr *vse = e->u.ms.vs;
        const promql_vector_selector *vs = &vse->u.vs;
        out->range_ms = e->u.ms.range_ms;
        out->offset_ms = vs->offset_ms;
        out->at = vs->at != PROMQL_AT_NONE;
        out->at_ms = out->at ? pq_at_time(c, vs->at, vs->at_ms) : 0;
        out->sel = vse;
        int64_t tmin = (out->at ? out->at_ms : c->start) - vs->offset_ms;
        int64_t tmax = (out->at ? out->at_ms : c->end) - vs->offset_ms;
        series_set *set;
        if (pq_select(c, vs, tmin - out->range_ms + 1, tmax, &set) < 0)
            return c->code;
        for (size_t i = 0; i < set->n; i++) {
            series *s = &set->v[i];
            size_t sn;
            out->hist |= s->nh > 0;
            sample *ss = series_points(c, s, &sn);
            if (!ss)
                return c->code;
            /* drop stale markers in place (the set, or the copy, is ours) */
            size_t k = 0;
            for (size_t j = 0; j < sn; j++)
                if (!is_stale(ss[j].v))
                    ss[k++] = ss[j];
            pq_series *o;
            if (pq_matrix_push(c, &out->m, &o) < 0)
                return c->code;
            o->ls = s->ls;
            o->nls = s->nls;
            o->pts = ss;
            o->npts = k;
        }
        return 0;
    }
    if (e->kind != PROMQL_SUBQUERY)
        return pq_fail(c, KILN_ERANGE, "expected a range vector argument");
    const promql_subquery *sq = &e->u.sq;
    out->range_ms = sq->range_ms;
    out->offset_ms = sq->offset_ms;
    out->at = sq->at != PROMQL_AT_NONE;
    out->at_ms = out->at ? pq_at_time(c, sq->at, sq->at_ms) : 0;
    int64_t tmin = (out->at ? out->at_ms : c->start) - sq->offset_ms;
    int64_t tmax = (out->at ? out->at_ms : c->end) - sq->offset_ms;
    int64_t step = sq->step_ms > 0 ? sq->step_ms : c->default_step;
    int64_t ns = step * ((tmin - sq->range_ms) / step);
    if (ns <= tmin - sq->range_ms)
        ns += step;
    int64_t s0 = c->start, e0 = c->end, i0 = c->interval;
    size_t n0 = c->nsteps;
    pq_value v;
    memset(&v, 0, sizeof v);
    int rc = 0;
    if (ns <= tmax) {
        c->start = ns;
        c->end = tmax;
        c->interval = step;
        c->nsteps = (size_t)((tmax - ns) / step) + 1;
        rc = pq_eval(c, sq->expr, &v);
        if (rc == 0 && v.type == PROMQL_TYPE_SCALAR) {
            rc = pq_push_scalar_series(c, &out->m, v.scal);
        } else if (rc == 0) {
            out->m = v.m;
            for (size_t i = 0; i < v.m.n && !out->hist; i++)
                for (size_t j = 0; j < v.m.v[i].npts && !out->hist; j++)
                    out->hist = pq_is_hist(v.m.v[i].pts[j].v);
        }
    }
    c->start = s0;
    c->end = e0;
    c->interval = i0;
    c->nsteps = n0;
    return rc;
}

/* ---- binary operators ---- */

/* Arithmetic or comparison of two floats; returns whether to keep (for
 * comparisons) and the value in *out. */
static int binop_apply(promql_binop op, double l, double r, double *out) {
    switch (op) {
    case PROMQL_OP_ADD:
        *out = l + r;
        return 1;
    case PROMQL_OP_SUB:
        *out = l - r;
        return 1;
    case PROMQL_OP_MUL:
        *out = l * r;
        return 1;
    case PROMQL_OP_DIV:
        *out = l / r;
        return 1;
    case PROMQL_OP_MOD:
        *out = fmod(l, r);
        return 1;
    case PROMQL_OP_POW:
        *out = pow(l, r);
        return 1;
    case PROMQL_OP_ATAN2:
        *out = atan2(l, r);
        return 1;
    case PROMQL_OP_EQL:
        *out = l;
        return l == r;
    case PROMQL_OP_NEQ:
        *out = l;
        return l != r;
    case PROMQL_OP_GTR:
        *out = l;
        return l > r;
    case PROMQL_OP_LSS:
        *out = l;
        return l < r;
    case PROMQL_OP_GTE:
        *out = l;
        return l >= r;
    case PROMQL_OP_LTE:
        *out = l;
        return l <= r;
    default:
        *out = 0;
        return 0;
    }
}

static int is_arith(promql_binop op) {
    return op <= PROMQL_OP_ATAN2;
}

/* Whether l op r goes to nhops.c: a histogram on a side, or a trim
 * operator (which takes histograms only and flags floats). */
static int hist_op(promql_binop op, double l, double r) {
    return pq_is_hist(l) || pq_is_hist(r) || op == PROMQL_OP_TRIM_UPPER || op == PROMQL_OP_TRIM_LOWER;
}

KILN_MUST_CHECK static int eval_scalar_binop(pq_ctx *c, const promql_binary *b, const pq_value *l,
                                             const pq_value *r, pq_value *out) {
    if (pq_new_scalar(c, out) < 0)
        return c->code;
    for (size_t k = 0; k < c->nsteps; k++) {
        double v;
        int keep = binop_apply(b->op, l->scal[k], r->scal[k], &v);
        if (promql_binop_is_comparison(b->op))
            v = keep ? 1 : 0;
        out->scal[k] = v;
    }
    return 0;
}

KILN_MUST_CHECK static int eval_vector_scalar(pq_ctx *c, const promql_expr *e, const pq_value *vec,
                                              const double *sc, int swap, pq_value *out) {
    const promql_binary *b = &e->u.bin;
    out->type = PROMQL_TYPE_VECTOR;
    int cmp = promql_binop_is_comparison(b->op);
    for (size_t i = 0; i < vec->m.n; i++) {
        const pq_series *s = &vec->m.v[i];
        sample *pts = pq_points(c, s->npts);
        if (!pts)
            return c->code;
        size_t np = 0;
        for (size_t j = 0; j < s->npts; j++) {
            double lv = s->pts[j].v, rv = sc[pq_step_idx(c, s->pts[j].t)], v;
            if (swap) {
                double t = lv;
                lv = rv;
                rv = t;
            }
            int keep;
            if (hist_op(b->op, lv, rv)) {
                keep = pq_hist_binop(c, e, b->op, lv, rv, &v);
                if (keep < 0)
                    return keep;
                if (keep == PQ_HB_DROP)
                    continue;
            } else {
                keep = binop_apply(b->op, lv, rv, &v);
            }
            if (cmp && swap)
                v = rv;
            if (b->return_bool) {
                v = keep ? 1 : 0;
                keep = 1;
            }
            if (keep)
                pts[np++] = (sample){s->pts[j].t, v};
        }
        if (!np)
            continue;
        if (pq_matrix_push_pts(c, &out->m, s->ls, s->nls, s->drop_name || is_arith(b->op) || b->return_bool,
                               pts, np) < 0)
            return c->code;
    }
    return 0;
}

/* Whether label `name` takes part in vector matching: one of the on()
 * labels, or any label but the ignoring() ones and __name__. */
int pq_matches_on(const char *name, const promql_vector_matching *m) {
    return m->on ? pq_in_list(name, m->matching, m->nmatching)
                 : (strcmp(name, LABEL_NAME) != 0 && !pq_in_list(name, m->matching, m->nmatching));
}

/* Matching signature of a series: the hash of its matching labels. */
uint64_t pq_match_sig(const pq_series *s, const promql_vector_matching *m) {
    XXH64_state_t st;
    XXH64_reset(&st, 0);
    for (size_t i = 0; i < s->nls; i++)
        if (pq_matches_on(s->ls[i].name, m))
            hash_label(&st, &s->ls[i]);
    return XXH64_digest(&st);
}

/* A small open-addressing map from 64-bit keys to indexes. */
typedef struct u64map {
    uint64_t *k;
    size_t *v; /* index + 1; 0 = empty */
    size_t cap;
} u64map;

KILN_MUST_CHECK static int u64map_init(u64map *m, size_t n) {
    m->cap = 16;
    while (m->cap < n * 2 + 2)
        m->cap *= 2;
    m->k = malloc(m->cap * sizeof(uint64_t));
    m->v = calloc(m->cap, sizeof(size_t));
    return m->k && m->v ? 0 : KILN_ENOMEM;
}

static void u64map_clear(u64map *m) {
    memset(m->v, 0, m->cap * sizeof(size_t));
}

static void u64map_free(u64map *m) {
    free(m->k);
    free(m->v);
}

/* Returns a pointer to the slot's value for key (0 when new). */
static size_t *u64map_slot(u64map *m, uint64_t key) {
    size_t i = (size_t)(key * 0x9E3779B97F4A7C15ULL) & (m->cap - 1);
    while (m->v[i] && m->k[i] != key)
        i = (i + 1) & (m->cap - 1);
    m->k[i] = key;
    return &m->v[i];
}

static void format_match_labels(buf *b, const pq_series *s, const promql_vector_matching *m) {
    label tmp[LABELS_MAX_COUNT];
    size_t n = 0;
    for (size_t i = 0; i < s->nls && n < LABELS_MAX_COUNT; i++)
        if (pq_matches_on(s->ls[i].name, m))
            tmp[n++] = s->ls[i];
    labels_format(b, tmp, n);
}

typedef struct side {
    const pq_matrix *m;
    uint64_t *sig;
    size_t *cur;
    size_t *act; /* series with a point at this step */
    double *val;
    size_t nact;
} side;

KILN_MUST_CHECK static int side_init(side *s, const pq_matrix *m, const promql_vector_matching *vm) {
    s->m = m;
    s->sig = malloc((m->n + 1) * sizeof(uint64_t));
    s->cur = calloc(m->n + 1, sizeof(size_t));
    s->act = malloc((m->n + 1) * sizeof(size_t));
    s->val = malloc((m->n + 1) * sizeof(double));
    if (!s->sig || !s->cur || !s->act || !s->val)
        return KILN_ENOMEM;
    for (size_t i = 0; i < m->n; i++)
        s->sig[i] = pq_match_sig(&m->v[i], vm);
    return 0;
}

static void side_free(side *s) {
    free(s->sig);
    free(s->cur);
    free(s->act);
    free(s->val);
}

static void side_step(side *s, int64_t t) {
    s->nact = 0;
    for (size_t i = 0; i < s->m->n; i++) {
        const pq_series *ps = &s->m->v[i];
        size_t *c = &s->cur[i];
        while (*c < ps->npts && ps->pts[*c].t < t)
            (*c)++;
        if (*c < ps->npts && ps->pts[*c].t == t) {
            s->val[s->nact] = ps->pts[*c].v;
            s->act[s->nact++] = i;
        }
    }
}

/* Labels of the result of a vector-vector operation (Prometheus' resultMetric). */
static const label *result_metric(pq_ctx *c, const pq_series *l, const pq_series *r, const promql_binary *b,
                                  size_t *nls) {
    const promql_vector_matching *m = &b->matching;
    labels_builder *lb = &c->lb;
    *nls = SIZE_MAX;
    if (lb_from(lb, l->ls, l->nls) < 0)
        return NULL;
    if (is_arith(b->op))
        lb_del(lb, LABEL_NAME);
    if (m->card == PROMQL_CARD_ONE_TO_ONE) {
        if (m->on) {
            size_t n = lb->n;
            for (size_t i = 0; i < n;) {
                if (!pq_in_list(lb->v[i].name, m->matching, m->nmatching)) {
                    lb->v[i] = lb->v[--lb->n];
                    n--;
                } else {
                    i++;
                }
            }
        } else {
            for (size_t i = 0; i < m->nmatching; i++)
                lb_del(lb, m->matching[i]);
        }
    }
    for (size_t i = 0; i < m->ninclude; i++) {
        const char *v = labels_get(r->ls, r->nls, m->include[i]);
        if (v && *v) {
            if (lb_set(lb, m->include[i], v) < 0) {
                *nls = SIZE_MAX;
                return NULL;
            }
        } else {
            lb_del(lb, m->include[i]);
        }
    }
    return lb_labels(lb, nls);
}

KILN_MUST_CHECK static int eval_vector_vector(pq_ctx *c, const promql_expr *e, const pq_value *lv,
                                              const pq_value *rv, pq_value *out) {
    const promql_binary *b = &e->u.bin;
    out->type = PROMQL_TYPE_VECTOR;
    const promql_vector_matching *vm = &b->matching;
    side L, R;
    memset(&L, 0, sizeof L);
    memset(&R, 0, sizeof R);
    u64map sigs, matched;
    memset(&sigs, 0, sizeof sigs);
    memset(&matched, 0, sizeof matched);
    pq_out col;
    pq_out_init(&col);
    buf eb = BUF_INIT;
    int rc = 0;
    long *cache_j = NULL, *cache_o = NULL;
    if (side_init(&L, &lv->m, vm) < 0 || side_init(&R, &rv->m, vm) < 0)
        goto nomem;
    if (u64map_init(&sigs, lv->m.n + rv->m.n) < 0 || u64map_init(&matched, lv->m.n + rv->m.n) < 0)
        goto nomem;
    int setop = promql_binop_is_set(b->op);
    int swap = vm->card == PROMQL_CARD_ONE_TO_MANY;
    side *many = swap ? &R : &L, *one = swap ? &L : &R;
    cache_j = malloc((many->m->n + 1) * sizeof(long));
    cache_o = malloc((many->m->n + 1) * sizeof(long));
    if (!cache_j || !cache_o)
        goto nomem;
    for (size_t i = 0; i < many->m->n; i++)
        cache_j[i] = -1;

    for (size_t k = 0; k < c->nsteps; k++) {
        int64_t t = c->start + (int64_t)k * c->interval;
        side_step(&L, t);
        side_step(&R, t);
        if ((rc = pq_account(c, 0)) < 0)
            goto done;
        if (setop) {
            if (b->op == PROMQL_OP_OR) {
                u64map_clear(&sigs);
                for (size_t a = 0; a < L.nact; a++) {
                    const pq_series *s = &L.m->v[L.act[a]];
                    *u64map_slot(&sigs, L.sig[L.act[a]]) = 1;
                    if ((rc = pq_out_add(c, &col, s->ls, s->nls, s->drop_name, t, L.val[a])) < 0)
                        goto done;
                }
                for (size_t a = 0; a < R.nact; a++) {
                    if (*u64map_slot(&sigs, R.sig[R.act[a]]))
                        continue;
                    const pq_series *s = &R.m->v[R.act[a]];
                    if ((rc = pq_out_add(c, &col, s->ls, s->nls, s->drop_name, t, R.val[a])) < 0)
                        goto done;
                }
            } else {
                u64map_clear(&sigs);
                for (size_t a = 0; a < R.nact; a++)
                    *u64map_slot(&sigs, R.sig[R.act[a]]) = 1;
                for (size_t a = 0; a < L.nact; a++) {
                    int found = *u64map_slot(&sigs, L.sig[L.act[a]]) != 0;
                    if (found != (b->op == PROMQL_OP_AND))
                        continue;
                    const pq_series *s = &L.m->v[L.act[a]];
                    if ((rc = pq_out_add(c, &col, s->ls, s->nls, s->drop_name, t, L.val[a])) < 0)
                        goto done;
                }
            }
            continue;
        }
        if (L.nact == 0 || R.nact == 0)
            continue;
        u64map_clear(&sigs);
        for (size_t a = 0; a < one->nact; a++) {
            size_t *slot = u64map_slot(&sigs, one->sig[one->act[a]]);
            if (*slot) {
                const pq_series *s1 = &one->m->v[one->act[a]], *s2 = &one->m->v[one->act[*slot - 1]];
                buf_reset(&eb);
                format_match_labels(&eb, s1, vm);
                buf_printf(&eb, " on the %s hand-side of the operation: [", swap ? "left" : "right");
                labels_format(&eb, s2->ls, s2->nls);
                buf_puts(&eb, ", ");
                labels_format(&eb, s1->ls, s1->nls);
                if (buf_error(&eb))
                    goto nomem;
                rc = pq_fail(
                    c, KILN_ERANGE,
                    "found duplicate series for the match group %s];many-to-many matching not allowed: "
                    "matching labels must be unique on one side",
                    eb.data);
                goto done;
            }
            *slot = a + 1;
        }
        u64map_clear(&matched);
        for (size_t a = 0; a < many->nact; a++) {
            size_t i = many->act[a];
            uint64_t sig = many->sig[i];
            size_t ia = *u64map_slot(&sigs, sig);
            if (!ia)
                continue;
            size_t j = one->act[ia - 1];
            double fl = many->val[a], fr = one->val[ia - 1], v;
            if (swap) {
                double tt = fl;
                fl = fr;
                fr = tt;
            }
            int keep;
            if (hist_op(b->op, fl, fr)) {
                if ((keep = pq_hist_binop(c, e, b->op, fl, fr, &v)) < 0) {
                    rc = keep;
                    goto done;
                }
                if (keep == PQ_HB_DROP)
                    continue;
            } else {
                keep = binop_apply(b->op, fl, fr, &v);
            }
            long oi;
            if (cache_j[i] == (long)j) {
                oi = cache_o[i];
            } else {
                size_t nls;
                const label *ls = result_metric(c, &many->m->v[i], &one->m->v[j], b, &nls);
                if (!ls && nls == SIZE_MAX)
                    goto nomem;
                oi = out_series(c, &col, ls, nls, b->return_bool);
                if (oi < 0) {
                    rc = (int)oi;
                    goto done;
                }
                cache_j[i] = (long)j;
                cache_o[i] = oi;
            }
            if (vm->card == PROMQL_CARD_ONE_TO_ONE) {
                size_t *ms = u64map_slot(&matched, sig);
                if (*ms) {
                    rc = pq_fail(c, KILN_ERANGE,
                                 "multiple matches for labels: many-to-one matching must be explicit "
                                 "(group_left/group_right)");
                    goto done;
                }
                *ms = 1;
            } else {
                uint64_t key = sig ^ (col.v[oi].hash * 0x9E3779B97F4A7C15ULL);
                size_t *ms = u64map_slot(&matched, key);
                if (*ms) {
                    rc = pq_fail(c, KILN_ERANGE,
                                 "multiple matches for labels: grouping labels must ensure unique matches");
                    goto done;
                }
                *ms = 1;
            }
            if (b->return_bool) {
                v = keep ? 1 : 0;
            } else if (!keep) {
                continue;
            }
            if ((rc = out_point(c, &col.v[oi], t, v)) < 0)
                goto done;
        }
    }
    rc = pq_out_finish(c, &col, &out->m);
done:
    free(cache_j);
    free(cache_o);
    buf_free(&eb);
    pq_out_free(&col);
    u64map_free(&sigs);
    u64map_free(&matched);
    side_free(&L);
    side_free(&R);
    return rc;
nomem:
    rc = pq_fail(c, KILN_ENOMEM, "out of memory");
    goto done;
}

KILN_MUST_CHECK static int eval_binary(pq_ctx *c, const promql_expr *e, pq_value *out) {
    const promql_binary *b = &e->u.bin;
    pq_value l, r;
    memset(&l, 0, sizeof l);
    memset(&r, 0, sizeof r);
    int rc = pq_eval(c, b->lhs, &l);
    if (rc < 0)
        return rc;
    if ((rc = pq_eval(c, b->rhs, &r)) < 0)
        return rc;
    if (l.type == PROMQL_TYPE_SCALAR && r.type == PROMQL_TYPE_SCALAR)
        return eval_scalar_binop(c, b, &l, &r, out);
    if (l.type == PROMQL_TYPE_VECTOR && r.type == PROMQL_TYPE_SCALAR)
        return eval_vector_scalar(c, e, &l, r.scal, 0, out);
    if (l.type == PROMQL_TYPE_SCALAR && r.type == PROMQL_TYPE_VECTOR)
        return eval_vector_scalar(c, e, &r, l.scal, 1, out);
    if (l.type == PROMQL_TYPE_VECTOR && r.type == PROMQL_TYPE_VECTOR) {
        if ((b->fill_lhs || b->fill_rhs) && (rc = pq_binop_fill(c, b, &l, &r)) < 0)
            return rc;
        return eval_vector_vector(c, e, &l, &r, out);
    }
    return pq_fail(c, KILN_ERANGE, "invalid operand types for binary operator \"%s\"",
                   promql_binop_str(b->op));
}

/* Replaces the series of out by copies that drop __name__ and hold, at the
 * same times, the negated values (unary minus) or, with to_time, the times
 * in seconds (timestamp() of anything but a selector). */
KILN_MUST_CHECK static int remap_points(pq_ctx *c, pq_value *out, int to_time) {
    pq_matrix m;
    memset(&m, 0, sizeof m);
    for (size_t i = 0; i < out->m.n; i++) {
        const pq_series *s = &out->m.v[i];
        pq_series *o;
        if (pq_matrix_push(c, &m, &o) < 0)
            return c->code;
        *o = *s;
        o->drop_name = 1;
        if (!(o->pts = pq_points(c, s->npts)))
            return c->code;
        for (size_t j = 0; j < s->npts; j++) {
            o->pts[j] = (sample){s->pts[j].t, to_time ? (double)s->pts[j].t / 1000 : -s->pts[j].v};
            if (!to_time && pq_is_hist(s->pts[j].v)) {
                histogram *h = nh_scale(c->mem, pq_hist(c, s->pts[j].v), -1, 0);
                if (!h)
                    return pq_fail(c, KILN_ENOMEM, "out of memory");
                o->pts[j].v = pq_hbox(c, h);
            }
        }
    }
    out->m = m;
    return 0;
}

KILN_MUST_CHECK static int eval_unary(pq_ctx *c, const promql_expr *e, pq_value *out) {
    int rc = pq_eval(c, e->u.unary.expr, out);
    if (rc < 0 || e->u.unary.op != PROMQL_OP_SUB)
        return rc;
    if (out->type == PROMQL_TYPE_SCALAR) {
        const double *v = out->scal;
        if (pq_new_scalar(c, out) < 0)
            return c->code;
        for (size_t k = 0; k < c->nsteps; k++)
            out->scal[k] = -v[k];
        return 0;
    }
    return remap_points(c, out, 0);
}

KILN_MUST_CHECK static int finish_names(pq_ctx *c, pq_matrix *m);
KILN_MUST_CHECK static int eval_node(pq_ctx *c, const promql_expr *e, pq_value *out);

/* Without promql-delayed-name-removal __name__ goes as soon as the node that
 * drops it is evaluated (Prometheus' default); with it, at the end (run). */
int pq_eval(pq_ctx *c, const promql_expr *e, pq_value *out) {
    int rc = eval_node(c, e, out);
    if (rc == 0 && out->type == PROMQL_TYPE_VECTOR && !(c->features & FEATURE_PROMQL_DELAYED_NAME_REMOVAL))
        rc = finish_names(c, &out->m);
    return rc;
}

static int eval_node(pq_ctx *c, const promql_expr *e, pq_value *out) {
    memset(out, 0, sizeof *out);
    if (c->code)
        return c->code;
    if (poll_cancel(c) < 0)
        return c->code;
    switch (e->kind) {
    case PROMQL_NUMBER:
        if (pq_new_scalar(c, out) < 0)
            return c->code;
        for (size_t k = 0; k < c->nsteps; k++)
            out->scal[k] = e->u.number;
        return 0;
    case PROMQL_STRING:
        out->type = PROMQL_TYPE_STRING;
        out->str = e->u.string.s;
        return 0;
    case PROMQL_PAREN:
        return pq_eval(c, e->u.paren, out);
    case PROMQL_UNARY:
        return eval_unary(c, e, out);
    case PROMQL_VECTOR_SELECTOR:
        if (e->u.vs.mode == PROMQL_RANGE_SMOOTHED)
            return pq_eval_smoothed_selector(c, e, out);
        return eval_vector_selector(c, e, 0, out);
    case PROMQL_CALL:
        if (e->u.call.func->id == PROMQL_FN_TIMESTAMP) {
            const promql_expr *a = pq_unparen(e->u.call.args[0]);
            if (a->kind == PROMQL_VECTOR_SELECTOR)
                return eval_vector_selector(c, a, 1, out);
            int rc = pq_eval(c, a, out);
            return rc < 0 ? rc : remap_points(c, out, 1);
        }
        return pq_eval_call(c, e, out);
    case PROMQL_AGGREGATE:
        return pq_eval_aggregate(c, e, out);
    case PROMQL_BINARY:
        return eval_binary(c, e, out);
    case PROMQL_MATRIX_SELECTOR:
    case PROMQL_SUBQUERY: {
        /* only reachable as a top-level instant result */
        pq_range_arg ra;
        int rc = pq_eval_range_arg(c, e, &ra);
        if (rc < 0)
            return rc;
        out->type = PROMQL_TYPE_MATRIX;
        int64_t te = (ra.at ? ra.at_ms : c->start) - ra.offset_ms;
        for (size_t i = 0; i < ra.m.n; i++) {
            pq_series *s = &ra.m.v[i];
            size_t lo = 0, hi = 0;
            while (lo < s->npts && s->pts[lo].t <= te - ra.range_ms)
                lo++;
            hi = lo;
            while (hi < s->npts && s->pts[hi].t <= te)
                hi++;
            if (hi == lo)
                continue;
            pq_series *o;
            if (pq_matrix_push(c, &out->m, &o) < 0)
                return c->code;
            *o = *s;
            o->pts = s->pts + lo;
            o->npts = hi - lo;
        }
        return 0;
    }
    }
    return pq_fail(c, KILN_ERANGE, "unknown expression node");
}

/* ---- queries ---- */

static int cmp_series_labels(const void *a, const void *b) {
    const pq_series *x = a, *y = b;
    return labels_cmp(x->ls, x->nls, y->ls, y->nls);
}

int pq_cmp_hashed(const void *a, const void *b) {
    const pq_hashed *x = a, *y = b;
    return x->h < y->h ? -1 : x->h > y->h ? 1 : x->i < y->i ? -1 : x->i > y->i;
}

/* Whether two series of m have equal label sets: 1, 0, or -1 when out of
 * memory.  Sorting hashes is cheaper than rebuilding the matrix point by
 * point, which every name-dropping node would pay without
 * promql-delayed-name-removal. */
static int has_equal_labels(const pq_matrix *m) {
    pq_hashed *v = malloc(m->n * sizeof *v);
    if (!v)
        return -1;
    for (size_t i = 0; i < m->n; i++)
        v[i] = (pq_hashed){labels_hash(m->v[i].ls, m->v[i].nls), i};
    qsort(v, m->n, sizeof *v, pq_cmp_hashed);
    int eq = 0;
    for (size_t a = 0; a < m->n && !eq; a++)
        for (size_t b = a + 1; b < m->n && v[b].h == v[a].h && !eq; b++)
            eq = labels_cmp(m->v[v[a].i].ls, m->v[v[a].i].nls, m->v[v[b].i].ls, m->v[v[b].i].nls) == 0;
    free(v);
    return eq;
}

/* Applies delayed name removal; series left with equal label sets merge
 * when their points do not overlap, else it is the "same labelset" error. */
KILN_MUST_CHECK static int finish_names(pq_ctx *c, pq_matrix *m) {
    int any = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (!m->v[i].drop_name)
            continue;
        m->v[i].ls = pq_drop_name(c, m->v[i].ls, &m->v[i].nls);
        if (!m->v[i].ls && m->v[i].nls)
            return pq_fail(c, KILN_ENOMEM, "out of memory");
        m->v[i].drop_name = 0;
        any = 1;
    }
    if (!any || m->n < 2)
        return 0;
    int eq = has_equal_labels(m);
    if (eq <= 0) /* nothing to merge (the common case), or out of memory */
        return eq < 0 ? pq_fail(c, KILN_ENOMEM, "out of memory") : 0;
    pq_out col;
    pq_out_init(&col);
    int rc = 0;
    for (size_t i = 0; i < m->n && rc == 0; i++)
        for (size_t j = 0; j < m->v[i].npts && rc == 0; j++)
            rc = pq_out_add(c, &col, m->v[i].ls, m->v[i].nls, 0, m->v[i].pts[j].t, m->v[i].pts[j].v);
    if (rc == 0 && col.n != m->n) {
        pq_matrix nm;
        memset(&nm, 0, sizeof nm);
        rc = pq_out_finish(c, &col, &nm);
        if (rc == 0)
            *m = nm;
    }
    pq_out_free(&col);
    return rc;
}

KILN_MUST_CHECK static int run(const query_engine *eng, storage *st, const char *q, int64_t start,
                               int64_t end, int64_t step, int is_range, const query_opts *o,
                               query_result *out, kiln_err *err) {
    memset(out, 0, sizeof *out);
    arena_init(&out->mem, 0);
    promql_ast *ast = NULL;
    pq_ctx c;
    memset(&c, 0, sizeof c);
    /* the timeout runs from here: parsing compiles the regexes */
    c.deadline = eng->opts.timeout_ms > 0 ? time_mono_sec() + (double)eng->opts.timeout_ms / 1000 : 0;
    int rc = promql_parse_features(q, eng->opts.features, &ast, err);
    if (rc < 0) {
        arena_free(&out->mem);
        return rc;
    }
    /* step() and range() in durations: 0 for an instant query */
    if ((rc = promql_durations_resolve(ast->root, ast->query, is_range ? step : 0, end - start, err)) < 0)
        goto fail;
    promql_type rt = promql_expr_type(ast->root);
    if (is_range && rt != PROMQL_TYPE_SCALAR && rt != PROMQL_TYPE_VECTOR) {
        rc = kiln_err_set(err, KILN_EINVAL,
                          "invalid expression type \"%s\" for range query, must be Scalar or instant Vector",
                          promql_type_name(rt));
        goto fail;
    }
    c.mem = &out->mem;
    c.st = st;
    c.start = start;
    c.end = end;
    c.interval = step > 0 ? step : 1;
    c.nsteps = (size_t)((end - start) / c.interval) + 1;
    c.qstart = start;
    c.qend = end;
    c.qstep = step;
    c.lookback = (o && o->lookback_delta_ms > 0) ? o->lookback_delta_ms : eng->opts.lookback_delta_ms;
    c.default_step = QUERY_DEFAULT_STEP_MS;
    c.max_samples = eng->opts.max_samples;
    c.features = eng->opts.features;
    c.o = o;
    c.query = ast->query;
    c.err = err;
    lb_init(&c.lb);
    kiln_err qe;
    memset(&qe, 0, sizeof qe);
    if ((rc = storage_querier(st, INT64_MIN / 4, INT64_MAX / 4, &c.q, &qe)) < 0) {
        kiln_err_set(err, rc, "%s", qe.msg);
        goto fail;
    }
    /* selects stop at the deadline or cancellation while they match label
     * values, however slow the regex */
    match_guard g = {c.deadline, o ? canceled : NULL, (void *)o, 0};
    querier_set_guard(c.q, &g);
    pq_value v;
    if ((rc = pq_eval(&c, ast->root, &v)) < 0)
        goto fail;
    if (v.type == PROMQL_TYPE_VECTOR || v.type == PROMQL_TYPE_MATRIX) {
        if ((rc = finish_names(&c, &v.m)) < 0)
            goto fail;
    }
    if (v.type == PROMQL_TYPE_SCALAR && is_range) {
        /* a range query of a scalar answers one series without labels */
        memset(&v.m, 0, sizeof v.m);
        if ((rc = pq_push_scalar_series(&c, &v.m, v.scal)) < 0)
            goto fail;
        v.type = PROMQL_TYPE_VECTOR;
    }
    out->t = start;
    switch (v.type) {
    case PROMQL_TYPE_SCALAR:
        out->type = QUERY_SCALAR;
        out->scalar = v.scal[0];
        break;
    case PROMQL_TYPE_STRING:
        out->type = QUERY_STRING;
        out->str = arena_strndup(c.mem, v.str, strlen(v.str));
        if (!out->str)
            goto nomem;
        break;
    case PROMQL_TYPE_VECTOR:
    case PROMQL_TYPE_MATRIX:
        out->type = (is_range || v.type == PROMQL_TYPE_MATRIX) ? QUERY_MATRIX : QUERY_VECTOR;
        if (out->type == QUERY_MATRIX && v.m.n > 1)
            qsort(v.m.v, v.m.n, sizeof(pq_series), cmp_series_labels);
        out->series = arena_alloc(c.mem, (v.m.n + 1) * sizeof(query_series));
        if (!out->series)
            goto nomem;
        for (size_t i = 0; i < v.m.n; i++) {
            if (!v.m.v[i].npts)
                continue;
            query_series *d = &out->series[out->nseries++];
            d->ls = v.m.v[i].ls;
            d->nls = v.m.v[i].nls;
            d->pts = v.m.v[i].pts;
            d->npts = v.m.v[i].npts;
        }
        break;
    default:
        break;
    }
    out->warnings = c.warn;
    out->nwarnings = c.nwarn;
    out->infos = c.info;
    out->ninfos = c.ninfo;
    out->total_samples = c.cur_samples;
    /* Labels borrowed from storage sets must outlive them: copy them. */
    for (size_t i = 0; i < out->nseries; i++) {
        query_series *d = &out->series[i];
        label *ls = labels_copy(c.mem, d->ls, d->nls);
        if (!ls && d->nls)
            goto nomem;
        d->ls = ls;
        sample *p = arena_alloc_nz(c.mem, d->npts * sizeof(sample) + 1);
        if (!p)
            goto nomem;
        if (d->npts)
            memcpy(p, d->pts, d->npts * sizeof(sample));
        d->pts = p;
        /* histograms live in storage sets about to go: copy them too */
        for (size_t j = 0; j < d->npts; j++) {
            if (!pq_is_hist(p[j].v))
                continue;
            if (!d->hist && !(d->hist = arena_alloc(c.mem, d->npts * sizeof *d->hist)))
                goto nomem;
            if (!(d->hist[j] = nh_copy(c.mem, pq_hist(&c, p[j].v))))
                goto nomem;
            p[j].v = 0;
        }
    }
    rc = 0;
    goto done;
nomem:
    rc = pq_fail(&c, KILN_ENOMEM, "out of memory");
fail:
done:
    if (c.q)
        querier_close(c.q);
    for (size_t i = 0; i < c.nsets; i++) {
        series_set_free(c.sets[i]);
        free(c.sets[i]);
    }
    free(c.sets);
    free(c.hists);
    lb_free(&c.lb);
    promql_ast_free(ast);
    if (rc < 0) {
        arena_free(&out->mem);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

int query_instant(const query_engine *e, storage *s, const char *q, int64_t t_ms, const query_opts *o,
                  query_result *out, kiln_err *err) {
    return run(e, s, q, t_ms, t_ms, 1, 0, o, out, err);
}

int query_range(const query_engine *e, storage *s, const char *q, int64_t start_ms, int64_t end_ms,
                int64_t step_ms, const query_opts *o, query_result *out, kiln_err *err) {
    memset(out, 0, sizeof *out);
    if (step_ms <= 0)
        return kiln_err_set(
            err, KILN_EINVAL,
            "zero or negative query resolution step widths are not accepted. Try a positive integer");
    if (end_ms < start_ms)
        return kiln_err_set(err, KILN_EINVAL, "end timestamp must not be before start time");
    return run(e, s, q, start_ms, end_ms, step_ms, 1, o, out, err);
}
