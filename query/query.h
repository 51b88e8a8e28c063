/*
 * query.h - the public interface of kiln's PromQL engine: instant and range
 * queries over a storage, their typed results, and the error classes the
 * HTTP API maps to Prometheus' errorType.
 *
 * A query is parsed (query/ast.h), then evaluated against one consistent
 * storage_querier view.  Evaluation follows Prometheus 3.x: 5m lookback,
 * stale markers end a series, left-open range selectors (t-range, t],
 * offset and @, subqueries, delayed __name__ removal.  Every query's memory
 * lives in one arena owned by its result; intermediate data is counted
 * against max_samples.
 *
 * Used by api/ (the query endpoints), the PromQL test runner and the
 * query benchmark.
 * Threading: a query_engine is read-only after query_engine_init and may be
 * shared by any number of threads, each running its own queries; a
 * query_result belongs to the thread that got it.
 */
#ifndef KILN_QUERY_H
#define KILN_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "storage/storage.h"
#include "util/util.h"

/* Engine-wide options (the --query.* flags). */
typedef struct query_engine_opts {
    int64_t lookback_delta_ms; /* default 5m */
    size_t max_samples;        /* default 50,000,000; 0 = unbounded */
    int64_t timeout_ms;        /* default 2m; 0 = none */
    uint32_t features;         /* --enable-feature: util.h's FEATURE_PROMQL_* bits; default none */
} query_engine_opts;

query_engine_opts query_engine_opts_default(void);

typedef struct query_engine {
    query_engine_opts opts;
} query_engine;

/* Copies the options (NULL: the defaults). */
void query_engine_init(query_engine *e, const query_engine_opts *o);

/*
 * Per-query options; pass NULL for none.  The engine polls `cancel_flag`
 * (non-zero: stop) and `cancel_cb` (returns non-zero: stop) every few
 * thousand samples and between steps; a canceled query returns
 * KILN_ECANCELED.  lookback_delta_ms > 0 overrides the engine's value
 * (the lookback_delta parameter of the HTTP API).
 */
typedef struct query_opts {
    const volatile int *cancel_flag;
    int (*cancel_cb)(void *data);
    void *cancel_data;
    int64_t lookback_delta_ms;
} query_opts;

typedef enum query_value_type {
    QUERY_NONE = 0,
    QUERY_SCALAR,
    QUERY_STRING,
    QUERY_VECTOR,
    QUERY_MATRIX,
} query_value_type;

/* One series of a result.  A vector holds one point per series (t = the
 * evaluation time); a matrix holds the points of each step, sorted by t.
 * A point may be a native histogram: then hist is not NULL and hist[j] is
 * the histogram of point j (pts[j].v is 0); hist[j] is NULL for a float
 * point, and hist is NULL when the series has no histogram point. */
typedef struct query_series {
    label *ls;
    size_t nls;
    sample *pts;
    size_t npts;
    histogram **hist;
} query_series;

/*
 * The result of a query; everything, strings included, lives in `mem` and
 * is released by query_result_free.  Vectors come in Prometheus' order
 * (that of the expression: sort(), topk() keep theirs; otherwise the order
 * of evaluation), matrices sorted by labels.  warnings/infos hold
 * annotations as Prometheus words them ("PromQL info: metric might not be a
 * counter, ...").
 */
typedef struct query_result {
    query_value_type type;
    double scalar;   /* QUERY_SCALAR */
    int64_t t;       /* QUERY_SCALAR, QUERY_STRING: the evaluation time */
    const char *str; /* QUERY_STRING */
    query_series *series;
    size_t nseries;
    const char **warnings;
    size_t nwarnings;
    const char **infos;
    size_t ninfos;
    size_t total_samples; /* samples loaded while evaluating (stats) */
    arena mem;
} query_result;

/* One bucket of a native histogram as the API writes it: bounds, count and
 * Prometheus' boundary rule (0: (lower,upper], 1: [lower,upper), 2: open,
 * 3: closed - the zero bucket). */
typedef struct query_hist_bucket {
    int boundary;
    double lower, upper, count;
} query_hist_bucket;

/* The non-empty buckets of h from the lowest to the highest (negative
 * ones, the zero bucket, positive ones; custom buckets in order) in a new
 * malloc'd array *out (free it); returns how many, or -1 when out of
 * memory.  Any thread. */
long query_hist_buckets(const histogram *h, query_hist_bucket **out);

/* Frees everything in r; r may then be reused.  A zeroed result is fine. */
void query_result_free(query_result *r);

/*
 * Evaluates `q` at t_ms.  On success returns 0 and fills *out (free with
 * query_result_free).  On error *out is empty (nothing to free) and err holds
 * Prometheus' message; the return code gives the class (query_error_type):
 *   KILN_EINVAL     the query does not parse or is not allowed (bad_data),
 *                   e.g. `1:5: parse error: unexpected end of input`
 *   KILN_ERANGE     an evaluation error (execution), e.g.
 *                   `vector cannot contain metrics with the same labelset`
 *   KILN_ELIMIT     `query processing would load too many samples into
 *                   memory in query execution` (execution)
 *   KILN_ETIMEOUT   the engine's timeout passed (timeout)
 *   KILN_ECANCELED  the caller canceled (canceled)
 *   KILN_ENOMEM, KILN_EIO, ... (internal)
 * `s` is borrowed for the call; `o` may be NULL.
 */
KILN_MUST_CHECK int query_instant(const query_engine *e, storage *s, const char *q, int64_t t_ms,
                                  const query_opts *o, query_result *out, kiln_err *err);

/*
 * Evaluates `q` at start, start+step, ... up to end (inclusive), returning a
 * matrix (a scalar query gives one series without labels).  The expression
 * must be a scalar or an instant vector: otherwise KILN_EINVAL
 * (`invalid expression type "range vector" for range query, must be Scalar
 * or instant Vector`).  step must be > 0 and end >= start (KILN_EINVAL).
 * Errors as query_instant.
 */
KILN_MUST_CHECK int query_range(const query_engine *e, storage *s, const char *q, int64_t start_ms,
                                int64_t end_ms, int64_t step_ms, const query_opts *o, query_result *out,
                                kiln_err *err);

/* ---- the range-query results cache (query/rcache.c) ---------------------- */

/*
 * Keeps the per-step results of range queries so that a query asked again
 * with its window moved on (a dashboard's refresh) evaluates only the steps
 * not kept: the new ones and those within the lookback of now.  A change to
 * data at or before a kept step (a late sample, a deletion, a block loaded,
 * retention) cuts the entries back, through the storage's change hook.
 * Threading: any number of query threads at once; one mutex inside.
 */
typedef struct query_rcache query_rcache;

typedef struct query_rcache_stats {
    uint64_t hits, misses, uncacheable;     /* range queries */
    uint64_t steps_reused, steps_evaluated; /* their steps */
    uint64_t invalidations, evictions;      /* entries cut back or dropped; freed for room */
    size_t bytes, entries;
} query_rcache_stats;

/* A new cache of at most max_bytes (0: it keeps nothing) in *out (free with
 * query_rcache_free); registers the kiln_query_cache_* metrics, once a
 * process.  0 or KILN_ENOMEM. */
KILN_MUST_CHECK int query_rcache_new(size_t max_bytes, query_rcache **out);
/* Frees c (NULL is fine); the storage it was attached to must be closed. */
void query_rcache_free(query_rcache *c);
/* Makes c hear of s's changes (storage_set_change_hook); once, before the
 * cache serves queries over s. */
void query_rcache_attach(query_rcache *c, storage *s);
/* The change hook itself (data is the cache): data from mint on changed. */
void query_rcache_changed(void *data, int64_t mint);
void query_rcache_stats_get(query_rcache *c, query_rcache_stats *out);
/* Counts a range query answered without the cache (nocache, stats). */
void query_rcache_bypass(query_rcache *c);

/*
 * query_range through the cache c (NULL: none), with the same arguments,
 * results and errors; the answer equals query_range's.  now_ms is the wall
 * clock (0: now): steps after now - lookback are never kept.  Queries with
 * `@`, a negative offset, start()/end()/range(), a duration expression
 * using step() or range(), anchored or smoothed selectors, or over a
 * storage with a remote_read source are evaluated as query_range does.
 */
KILN_MUST_CHECK int query_range_cached(query_rcache *c, const query_engine *e, storage *s, const char *q,
                                       int64_t start_ms, int64_t end_ms, int64_t step_ms, const query_opts *o,
                                       int64_t now_ms, query_result *out, kiln_err *err);

/* Prometheus' errorType for a return code of query_instant/query_range:
 * "bad_data", "execution", "timeout", "canceled" or "internal". */
const char *query_error_type(int code);

/* "scalar", "string", "vector", "matrix" (the resultType of the API). */
const char *query_value_type_name(query_value_type t);

/* ---- the parser for the HTTP API, which sees no tree (query/astjson.c) ---- */

/* Each parses `q` (borrowed for the call).  On a bad query they return
 * KILN_EINVAL with Prometheus' parse error in err (`1:14: parse error: ...`);
 * KILN_ENOMEM when out of memory.  Any thread. */

/* Appends the tree as the JSON of Prometheus' /api/v1/parse_query data
 * (its translateAST: keys sorted, times in milliseconds). */
KILN_MUST_CHECK int query_parse_json(const char *q, buf *out, kiln_err *err);
/* Appends the query as Prometheus' parser.Prettify writes it (format_query). */
KILN_MUST_CHECK int query_parse_pretty(const char *q, buf *out, kiln_err *err);
/* Appends the query's canonical one-line text (Prometheus' String(), what
 * its rules API shows as a rule's query). */
KILN_MUST_CHECK int query_parse_format(const char *q, buf *out, kiln_err *err);
/* Only parses. */
KILN_MUST_CHECK int query_parse_check(const char *q, kiln_err *err);

/* Appends the PromQL members of GET /api/v1/features' data object,
 * `"promql":{...},"promql_functions":{...},"promql_operators":{...}`, for
 * the --enable-feature set `features` (query/features.c).  0 or
 * KILN_ENOMEM (buf_error). */
KILN_MUST_CHECK int query_features_json(uint32_t features, buf *out);

/* A parsed series selector (`up{job="x"}`): its matchers, __name__ included,
 * valid until query_selector_free. */
typedef struct query_selector {
    const matcher *ms;
    size_t nms;
    /* after KILN_EINVAL: NULL for a parse error (err says it), or the type of
     * the expression the text is instead ("scalar", "instant vector", ...) */
    const char *other;
    struct promql_ast *ast; /* owns ms */
} query_selector;

/* Parses s as a series selector into *sel (free with query_selector_free,
 * also after an error). */
KILN_MUST_CHECK int query_selector_parse(const char *s, query_selector *sel, kiln_err *err);
void query_selector_free(query_selector *sel);

/* Every series selector of an expression, in the order written (Prometheus'
 * parser.ExtractSelectors), valid until query_selectors_free (selectors.c). */
typedef struct query_selectors {
    exemplar_matchers *sets;
    size_t n, cap;
    struct promql_ast *ast; /* owns the matchers */
} query_selectors;

/* Parses q: 0, or KILN_EINVAL with the parse error; free also after an error. */
KILN_MUST_CHECK int query_selectors_parse(const char *q, query_selectors *out, kiln_err *err);
void query_selectors_free(query_selectors *s);

#endif
