/*
 * eval.h - private to query/: the evaluator's data model shared by
 * engine.c (evaluation), funcs.c, rangefuncs.c and histogram.c (functions)
 * and aggr.c (aggregations).
 *
 * An expression is evaluated over all steps of a query at once (an instant
 * query is a range query of one step).  An instant-vector value is a matrix
 * of pq_series holding one point per step where the series has a value; a
 * range-vector value (only as a function argument or a top-level instant
 * result) holds the raw samples.  A scalar holds one value per step.  All
 * memory comes from the query's arena; label arrays are borrowed from
 * storage series sets kept open for the query, or built in the arena.
 *
 * Included by those files only.
 * Threading: one pq_ctx per query, used by one thread.
 */
#ifndef KILN_QUERY_EVAL_H
#define KILN_QUERY_EVAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "query/ast.h"
#include "query/query.h"
#include "storage/storage.h"
#include "util/util.h"

typedef struct pq_series {
    label *ls;
    size_t nls;
    sample *pts;
    size_t npts;
    int drop_name; /* __name__ goes at the end of evaluation */
} pq_series;

typedef struct pq_matrix {
    pq_series *v;
    size_t n, cap;
} pq_matrix;

typedef struct pq_value {
    promql_type type;
    pq_matrix m;     /* VECTOR (points at steps) or MATRIX (raw samples) */
    double *scal;    /* SCALAR: one value per step */
    const char *str; /* STRING */
} pq_value;

/* A collector of output series keyed by label set (hash map), used where
 * outputs are built step by step.  Points may arrive in any order; a label
 * set seen twice at one step is the "same labelset" error. */
typedef struct pq_out_series {
    label *ls;
    size_t nls;
    uint64_t hash;
    sample *pts;
    size_t npts, cap;
    int drop_name;
    int unsorted;
} pq_out_series;

typedef struct pq_out {
    pq_out_series *v;
    size_t n, cap;
    size_t *slots; /* open addressing: index+1, 0 = empty */
    size_t nslots;
} pq_out;

typedef struct pq_ctx {
    arena *mem;
    querier *q;
    storage *st;                  /* for its other sources (remote_read): storage_source_merge */
    int64_t start, end, interval; /* the current evaluation's steps */
    size_t nsteps;
    int64_t qstart, qend, qstep; /* the query's, for @ start()/end(), step() */
    int64_t lookback;
    uint32_t features;    /* the engine's FEATURE_PROMQL_* */
    int64_t default_step; /* subquery default step */
    size_t max_samples, cur_samples;
    const query_opts *o;
    double deadline; /* monotonic seconds, 0 = none */
    unsigned poll;
    const char *query; /* text, for annotation positions */
    kiln_err *err;
    int code; /* first error */
    labels_builder lb;
    /* annotations (deduplicated) */
    const char **warn;
    size_t nwarn, capwarn;
    const char **info;
    size_t ninfo, capinfo;
    /* native histogram points: a point's value is a boxed index here */
    histogram **hists;
    size_t nhists, caphists;
    /* storage results kept until the end of the query */
    series_set **sets;
    size_t nsets, capsets;
} pq_ctx;

/* ---- native histogram points ----
 *
 * A point of a vector or a range holds a native histogram as a NaN whose
 * bits are PQ_HBOX_TAG plus an index into c->hists: every file that moves
 * points (sorting, matching, set operators, label functions, subqueries)
 * carries histograms without knowing them, and arithmetic on such a point
 * quiets the NaN (bit 51), so no computed value is ever taken for a
 * histogram.  Selectors turn a float sample with these bits into a plain
 * NaN.  The histograms themselves live in the storage sets or the arena. */
#define PQ_HBOX_TAG 0x7ff4000000000000ULL
#define PQ_HBOX_MASK 0xffff000000000000ULL

static inline int pq_is_hist(double v) {
    return (double_to_bits(v) & PQ_HBOX_MASK) == PQ_HBOX_TAG;
}
/* The histogram a boxed value stands for. */
static inline histogram *pq_hist(const pq_ctx *c, double v) {
    return c->hists[double_to_bits(v) & ~PQ_HBOX_MASK];
}
/* Boxes h (borrowed: it must live as long as the query); NaN with c->code
 * set when out of memory. */
double pq_hbox(pq_ctx *c, histogram *h);

/* ---- engine.c: the context, errors, limits, result building ---- */

/* Records the error (the first one wins: later calls keep it) and returns
 * the recorded code, so `return pq_fail(c, ...)` passes it up.  Not
 * KILN_MUST_CHECK: c->code keeps the error for whoever looks next. */
int pq_fail(pq_ctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Adds an annotation (deduplicated); `e` gives the position (may be NULL). */
void pq_warn(pq_ctx *c, const promql_expr *e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void pq_info(pq_ctx *c, const promql_expr *e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Checks cancellation and the deadline (loops that run long between
 * pq_account calls call it now and then); < 0 with the error set. */
KILN_MUST_CHECK int pq_poll(pq_ctx *c);
/* Prometheus' error for a query over --query.max-samples (KILN_ELIMIT). */
#define PQ_TOO_MANY_SAMPLES "query processing would load too many samples into memory in query execution"

/*
 * Counts n points against max_samples and now and then polls as pq_poll
 * does; < 0 with the error set.  Every point a query materialises (loaded
 * samples, each step of a scalar, every point an operator or function
 * produces) is counted BEFORE the memory for it is taken, so a query over
 * the limit fails without allocating it: subqueries multiply steps, and a
 * 1 ms step over days is billions of points.
 */
KILN_MUST_CHECK int pq_account(pq_ctx *c, size_t n);
/* Room for n points of a series in the query's memory, counted against
 * max_samples first (one extra slot, as the series builders want); NULL with
 * the error set (c->code) when the limit or memory runs out. */
sample *pq_points(pq_ctx *c, size_t n);
/* The room a scratch array of one series' points over the current steps
 * needs: the steps, or the points the limit still allows plus one when that
 * is fewer (filling it whole then means the limit is exceeded). */
size_t pq_step_cap(const pq_ctx *c);

/* Appends a zeroed series to m (arena memory) and points *out at it. */
KILN_MUST_CHECK int pq_matrix_push(pq_ctx *c, pq_matrix *m, pq_series **out);
/* Appends a series with labels ls and points pts[0..n) (both borrowed: arena
 * memory or the input's, living as long as the query). */
KILN_MUST_CHECK int pq_matrix_push_pts(pq_ctx *c, pq_matrix *m, label *ls, size_t nls, int drop_name,
                                       sample *pts, size_t n);
/* Appends a series with labels ls (borrowed) and an arena copy of
 * pts[0..n), after counting the n samples against max_samples. */
KILN_MUST_CHECK int pq_matrix_push_copy(pq_ctx *c, pq_matrix *m, label *ls, size_t nls, int drop_name,
                                        const sample *pts, size_t n);
/* ---- par.c: per-series work on every core ----
 *
 * pq_par_run calls fn(shard context, k, data) for k in [0, nshards), on
 * the parfor pool's threads, each with a context of its own copied from c,
 * and merges them into c in shard order (error, annotations, sample count,
 * arena); with nshards 1, fn(c, 0, data) on this thread.  fn works on its
 * own shard k of the input and writes its output where only shard k
 * writes; it must not box histograms nor select (see par.c).  Returns
 * c->code. */
typedef int (*pq_shard_fn)(pq_ctx *c, size_t shard, void *data);
KILN_MUST_CHECK int pq_par_run(pq_ctx *c, size_t nshards, pq_shard_fn fn, void *data);
/* How many shards n series are cut into: 1 when the pool has one thread
 * or n is under 2 * min_per_shard, else a few a thread. */
size_t pq_par_shards(const pq_ctx *c, size_t n, size_t min_per_shard);

/* Makes out a scalar: an arena array of one value per step, zeroed (the
 * steps counted as points, as Prometheus' evaluator does). */
KILN_MUST_CHECK int pq_new_scalar(pq_ctx *c, pq_value *out);
/* Appends a series without labels holding scal[k] at each step k (what a
 * scalar becomes where a vector or matrix is wanted). */
KILN_MUST_CHECK int pq_push_scalar_series(pq_ctx *c, pq_matrix *m, const double *scal);
/* Step index of t in the current evaluation. */
static inline size_t pq_step_idx(const pq_ctx *c, int64_t t) {
    return (size_t)((t - c->start) / c->interval);
}

void pq_out_init(pq_out *o);
void pq_out_free(pq_out *o);
/* Adds a point to the series with labels ls (copied on first sight). */
KILN_MUST_CHECK int pq_out_add(pq_ctx *c, pq_out *o, const label *ls, size_t nls, int drop_name, int64_t t,
                               double v);
/* Adds v to the point at t of the series with labels ls (points arrive in
 * time order), or adds the point: count_values' groups that end with the
 * same labels count together. */
KILN_MUST_CHECK int pq_out_count(pq_ctx *c, pq_out *o, const label *ls, size_t nls, int64_t t, double v);
/* Moves the series into m (arena memory), sorting points; duplicate
 * timestamps in a series are the "same labelset" error. */
KILN_MUST_CHECK int pq_out_finish(pq_ctx *c, pq_out *o, pq_matrix *m);

/* Vector matching (engine.c): whether label `name` takes part (one of the
 * on() labels, or any but the ignoring() ones and __name__), and a series'
 * signature, the hash of those labels. */
int pq_matches_on(const char *name, const promql_vector_matching *m);
uint64_t pq_match_sig(const pq_series *s, const promql_vector_matching *m);
/* Selecting (engine.c): the time of an @ modifier; the series of vs with
 * samples in [mint, maxt] (stale markers included), kept until the end of
 * the query and counted against the sample limit. */
int64_t pq_at_time(const pq_ctx *c, promql_at_kind k, int64_t at_ms);
KILN_MUST_CHECK int pq_select(pq_ctx *c, const promql_vector_selector *vs, int64_t mint, int64_t maxt,
                              series_set **out);

/* extrange.c: anchored and smoothed selectors.  Whether the call reads an
 * anchored/smoothed range selector; its evaluation; an instant selector
 * with smoothed. */
int pq_is_extended_range_call(const promql_expr *e);
KILN_MUST_CHECK int pq_eval_extended_range(pq_ctx *c, const promql_expr *e, pq_value *out);
KILN_MUST_CHECK int pq_eval_smoothed_selector(pq_ctx *c, const promql_expr *e, pq_value *out);

/* A hash and an index, ordered by hash then index by pq_cmp_hashed (a qsort
 * comparator; engine.c). */
typedef struct pq_hashed {
    uint64_t h;
    size_t i;
} pq_hashed;
int pq_cmp_hashed(const void *a, const void *b);

/* info.c: info(v, [data-label-selector]). */
KILN_MUST_CHECK int pq_eval_info(pq_ctx *c, const promql_expr *e, pq_value *out);

/* fill.c: adds the series the fill modifiers of b fill in to l and r. */
KILN_MUST_CHECK int pq_binop_fill(pq_ctx *c, const promql_binary *b, pq_value *l, pq_value *r);

/* Whether name is one of list[0..n). */
static inline int pq_in_list(const char *name, char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

/* Labels without __name__ (arena copy; the same array when absent). */
label *pq_drop_name(pq_ctx *c, label *ls, size_t *nls);

/* Go's %g of a float ("NaN", "+Inf", "1e+06"); returns out. */
const char *pq_gfmt(double v, char *out);
/* Prometheus' labels.Hash (xxhash64 over name 0xff value 0xff ...). */
uint64_t pq_prom_hash(const label *ls, size_t n);

/* ---- Go's and Prometheus' float arithmetic, inline for the inner loops ---- */

/* Go's math.Max / math.Min: an infinity of the right sign wins, then NaN;
 * +0 is above -0. */
static inline double pq_go_max(double a, double b) {
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

static inline double pq_go_min(double a, double b) {
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

/* Neumaier-compensated addition as Prometheus' kahanSumInc: adds inc to
 * *sum, the lost low-order part to *c (the result is *sum + *c). */
static inline void pq_kahan_inc(double inc, double *sum, double *c) {
    double t = *sum + inc;
    if (isinf(t))
        *c = 0;
    else if (fabs(*sum) >= fabs(inc))
        *c += (*sum - t) + inc;
    else
        *c += (inc - t) + *sum;
    *sum = t;
}

/* ---- funcs.c ---- */

/* Evaluates a function call (any argument types). */
KILN_MUST_CHECK int pq_eval_call(pq_ctx *c, const promql_expr *e, pq_value *out);
/* The per-step values of scalar argument i of call e; NULL with the error
 * set in c. */
double *pq_scalar_arg(pq_ctx *c, const promql_expr *e, size_t i);
/* Warns, once, of the first step whose quantile q[k] is outside [0, 1];
 * `arg` is the argument for the position. */
void pq_warn_quantile(pq_ctx *c, const promql_expr *arg, const double *q);
/* Adds absent()'s output series to out: the points pts[0..np) (arena
 * memory, kept) and the labels of the equality matchers of vs (none when vs
 * is NULL).  Adds nothing when np is 0. */
KILN_MUST_CHECK int pq_push_absent(pq_ctx *c, pq_value *out, sample *pts, size_t np,
                                   const promql_vector_selector *vs);
/* Prometheus' quantile over v[0..n) (reordered in place). */
double pq_quantile(double q, double *v, size_t n);

/* ---- rangefuncs.c, histogram.c: called by pq_eval_call ---- */

KILN_MUST_CHECK int pq_eval_range_func(pq_ctx *c, const promql_expr *e, pq_value *out);
KILN_MUST_CHECK int pq_eval_histogram(pq_ctx *c, const promql_expr *e, pq_value *out);

/* ---- nhops.c: histogram values in operators ---- */

enum { PQ_HB_FALSE = 0, PQ_HB_KEEP = 1, PQ_HB_DROP = 2 };
/* l op r where l or r is a boxed histogram: PQ_HB_KEEP with the result in
 * *out (for == and !=, *out is l), PQ_HB_FALSE (a comparison that does not
 * hold), PQ_HB_DROP (no result; the annotation is added at e), or an error
 * code. */
KILN_MUST_CHECK int pq_hist_binop(pq_ctx *c, const promql_expr *e, promql_binop op, double l, double r,
                                  double *out);

/* Prometheus' warning for exponential and custom-bucket histograms met in
 * one operation (name: the metric's, "" when none). */
void pq_warn_mixed_schemas(pq_ctx *c, const promql_expr *pos, const char *name);

/* ---- aggr.c ---- */

KILN_MUST_CHECK int pq_eval_aggregate(pq_ctx *c, const promql_expr *e, pq_value *out);

/* ---- engine.c: evaluation of any node ---- */

/* Evaluates e over the current steps into *out (zeroed first); 0 or the
 * error code, also recorded in c. */
KILN_MUST_CHECK int pq_eval(pq_ctx *c, const promql_expr *e, pq_value *out);
/* Evaluates a range argument (matrix selector or subquery) into raw series
 * plus the window parameters of each step. */
typedef struct pq_range_arg {
    pq_matrix m; /* raw samples, stale markers removed */
    int64_t range_ms;
    int64_t offset_ms;
    int at; /* fixed evaluation time */
    int64_t at_ms;
    const promql_expr *sel; /* the vector selector, or NULL for a subquery */
    int hist;               /* some point is a native histogram (boxed) */
} pq_range_arg;
KILN_MUST_CHECK int pq_eval_range_arg(pq_ctx *c, const promql_expr *e, pq_range_arg *out);

/* Strips parentheses. */
const promql_expr *pq_unparen(const promql_expr *e);

#endif
