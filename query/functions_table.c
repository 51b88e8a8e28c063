/*
 * functions_table.c - the signatures of every PromQL function Prometheus 3.x
 * knows (name, argument types, optional/variadic arguments, return type), in
 * promql_func_id order.  The evaluator dispatches on promql_func.id; the
 * parser checks calls against these entries.
 *
 * Called by parse.c (promql_func_lookup); the evaluator reads the entries
 * the tree points at.
 * Threading: the table is constant; any thread may read it.
 */
#include <string.h>

#include "query/ast.h"

static const promql_type sig_v[] = {PROMQL_TYPE_VECTOR};
static const promql_type sig_m[] = {PROMQL_TYPE_MATRIX};
static const promql_type sig_vss[] = {PROMQL_TYPE_VECTOR, PROMQL_TYPE_SCALAR, PROMQL_TYPE_SCALAR};
static const promql_type sig_vs[] = {PROMQL_TYPE_VECTOR, PROMQL_TYPE_SCALAR};
static const promql_type sig_mss[] = {PROMQL_TYPE_MATRIX, PROMQL_TYPE_SCALAR, PROMQL_TYPE_SCALAR};
static const promql_type sig_ssv[] = {PROMQL_TYPE_SCALAR, PROMQL_TYPE_SCALAR, PROMQL_TYPE_VECTOR};
static const promql_type sig_sv[] = {PROMQL_TYPE_SCALAR, PROMQL_TYPE_VECTOR};
static const promql_type sig_vtss[] = {PROMQL_TYPE_VECTOR, PROMQL_TYPE_STRING, PROMQL_TYPE_SCALAR,
                                       PROMQL_TYPE_SCALAR};
static const promql_type sig_vv[] = {PROMQL_TYPE_VECTOR, PROMQL_TYPE_VECTOR};
static const promql_type sig_vttt[] = {PROMQL_TYPE_VECTOR, PROMQL_TYPE_STRING, PROMQL_TYPE_STRING,
                                       PROMQL_TYPE_STRING};
static const promql_type sig_vtttt[] = {PROMQL_TYPE_VECTOR, PROMQL_TYPE_STRING, PROMQL_TYPE_STRING,
                                        PROMQL_TYPE_STRING, PROMQL_TYPE_STRING};
static const promql_type sig_ss[] = {PROMQL_TYPE_SCALAR, PROMQL_TYPE_SCALAR};
static const promql_type sig_ms[] = {PROMQL_TYPE_MATRIX, PROMQL_TYPE_SCALAR};
static const promql_type sig_sm[] = {PROMQL_TYPE_SCALAR, PROMQL_TYPE_MATRIX};
static const promql_type sig_vt[] = {PROMQL_TYPE_VECTOR, PROMQL_TYPE_STRING};
static const promql_type sig_s[] = {PROMQL_TYPE_SCALAR};

/*
 * One entry a function, [PROMQL_FN_x] = {...}.  FN gives a signature in
 * Prometheus' terms (argument types, nargs, variadic; see ast.h) and
 * derives min_args and max_args from it; the others name the common
 * shapes.  `ret` is the return type, `exp` whether the function is
 * experimental.
 */
#define FN(id, name, sig, nargs, variadic, ret, exp)                                                         \
    [PROMQL_FN_##id] = {PROMQL_FN_##id,                                                                      \
                        name,                                                                                \
                        sig,                                                                                 \
                        nargs,                                                                               \
                        variadic,                                                                            \
                        (variadic) ? (nargs)-1 : (nargs),                                                    \
                        (variadic) == 0  ? (nargs)                                                           \
                        : (variadic) < 0 ? -1                                                                \
                                         : (nargs)-1 + (variadic),                                           \
                        PROMQL_TYPE_##ret,                                                                   \
                        exp}
/* f(instant vector) -> instant vector */
#define VEC(id, name) FN(id, name, sig_v, 1, 0, VECTOR, 0)
/* f(range vector) -> instant vector */
#define RANGE(id, name, exp) FN(id, name, sig_m, 1, 0, VECTOR, exp)
/* f([instant vector]) -> instant vector: the date functions, vector(time()) by default */
#define DATE(id, name) FN(id, name, sig_v, 1, 1, VECTOR, 0)
/* f() -> scalar */
#define NOARGS(id, name, exp) FN(id, name, NULL, 0, 0, SCALAR, exp)

static const promql_func funcs[PROMQL_FN_COUNT_] = {
    VEC(ABS, "abs"),
    VEC(ABSENT, "absent"),
    RANGE(ABSENT_OVER_TIME, "absent_over_time", 0),
    VEC(ACOS, "acos"),
    VEC(ACOSH, "acosh"),
    VEC(ASIN, "asin"),
    VEC(ASINH, "asinh"),
    VEC(ATAN, "atan"),
    VEC(ATANH, "atanh"),
    RANGE(AVG_OVER_TIME, "avg_over_time", 0),
    VEC(CEIL, "ceil"),
    RANGE(CHANGES, "changes", 0),
    FN(CLAMP, "clamp", sig_vss, 3, 0, VECTOR, 0),
    FN(CLAMP_MAX, "clamp_max", sig_vs, 2, 0, VECTOR, 0),
    FN(CLAMP_MIN, "clamp_min", sig_vs, 2, 0, VECTOR, 0),
    VEC(COS, "cos"),
    VEC(COSH, "cosh"),
    RANGE(COUNT_OVER_TIME, "count_over_time", 0),
    DATE(DAYS_IN_MONTH, "days_in_month"),
    DATE(DAY_OF_MONTH, "day_of_month"),
    DATE(DAY_OF_WEEK, "day_of_week"),
    DATE(DAY_OF_YEAR, "day_of_year"),
    VEC(DEG, "deg"),
    RANGE(DELTA, "delta", 0),
    RANGE(DERIV, "deriv", 0),
    FN(DOUBLE_EXPONENTIAL_SMOOTHING, "double_exponential_smoothing", sig_mss, 3, 0, VECTOR, 1),
    NOARGS(END, "end", 1),
    VEC(EXP, "exp"),
    RANGE(FIRST_OVER_TIME, "first_over_time", 0),
    VEC(FLOOR, "floor"),
    VEC(HISTOGRAM_AVG, "histogram_avg"),
    VEC(HISTOGRAM_COUNT, "histogram_count"),
    FN(HISTOGRAM_FRACTION, "histogram_fraction", sig_ssv, 3, 0, VECTOR, 0),
    FN(HISTOGRAM_QUANTILE, "histogram_quantile", sig_sv, 2, 0, VECTOR, 0),
    FN(HISTOGRAM_QUANTILES, "histogram_quantiles", sig_vtss, 4, 9, VECTOR, 1),
    VEC(HISTOGRAM_STDDEV, "histogram_stddev"),
    VEC(HISTOGRAM_STDVAR, "histogram_stdvar"),
    VEC(HISTOGRAM_SUM, "histogram_sum"),
    DATE(HOUR, "hour"),
    RANGE(IDELTA, "idelta", 0),
    RANGE(INCREASE, "increase", 0),
    FN(INFO, "info", sig_vv, 2, 1, VECTOR, 1),
    RANGE(IRATE, "irate", 0),
    FN(LABEL_JOIN, "label_join", sig_vttt, 4, -1, VECTOR, 0),
    FN(LABEL_REPLACE, "label_replace", sig_vtttt, 5, 0, VECTOR, 0),
    RANGE(LAST_OVER_TIME, "last_over_time", 0),
    VEC(LN, "ln"),
    VEC(LOG10, "log10"),
    VEC(LOG2, "log2"),
    RANGE(MAD_OVER_TIME, "mad_over_time", 1),
    FN(MAX_OF, "max_of", sig_ss, 2, 0, SCALAR, 1),
    RANGE(MAX_OVER_TIME, "max_over_time", 0),
    FN(MIN_OF, "min_of", sig_ss, 2, 0, SCALAR, 1),
    RANGE(MIN_OVER_TIME, "min_over_time", 0),
    DATE(MINUTE, "minute"),
    DATE(MONTH, "month"),
    NOARGS(PI, "pi", 0),
    FN(PREDICT_LINEAR, "predict_linear", sig_ms, 2, 0, VECTOR, 0),
    RANGE(PRESENT_OVER_TIME, "present_over_time", 0),
    FN(QUANTILE_OVER_TIME, "quantile_over_time", sig_sm, 2, 0, VECTOR, 0),
    VEC(RAD, "rad"),
    NOARGS(RANGE, "range", 1),
    RANGE(RATE, "rate", 0),
    RANGE(RESETS, "resets", 0),
    FN(ROUND, "round", sig_vs, 2, 1, VECTOR, 0),
    FN(SCALAR, "scalar", sig_v, 1, 0, SCALAR, 0),
    VEC(SGN, "sgn"),
    VEC(SIN, "sin"),
    VEC(SINH, "sinh"),
    VEC(SORT, "sort"),
    FN(SORT_BY_LABEL, "sort_by_label", sig_vt, 2, -1, VECTOR, 1),
    FN(SORT_BY_LABEL_DESC, "sort_by_label_desc", sig_vt, 2, -1, VECTOR, 1),
    VEC(SORT_DESC, "sort_desc"),
    VEC(SQRT, "sqrt"),
    NOARGS(START, "start", 1),
    VEC(START_TIMESTAMP, "start_timestamp"),
    RANGE(STDDEV_OVER_TIME, "stddev_over_time", 0),
    RANGE(STDVAR_OVER_TIME, "stdvar_over_time", 0),
    NOARGS(STEP, "step", 1),
    RANGE(SUM_OVER_TIME, "sum_over_time", 0),
    VEC(TAN, "tan"),
    VEC(TANH, "tanh"),
    NOARGS(TIME, "time", 0),
    VEC(TIMESTAMP, "timestamp"),
    RANGE(TS_OF_FIRST_OVER_TIME, "ts_of_first_over_time", 1),
    RANGE(TS_OF_LAST_OVER_TIME, "ts_of_last_over_time", 1),
    RANGE(TS_OF_MAX_OVER_TIME, "ts_of_max_over_time", 1),
    RANGE(TS_OF_MIN_OVER_TIME, "ts_of_min_over_time", 1),
    FN(VECTOR, "vector", sig_s, 1, 0, VECTOR, 0),
    DATE(YEAR, "year"),
};

/* Looks a function up by name (a linear scan: parsing only, ~90 entries). */
const promql_func *promql_func_lookup(const char *name) {
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < PROMQL_FN_COUNT_; i++)
        if (funcs[i].name != NULL && strcmp(funcs[i].name, name) == 0)
            return &funcs[i];
    return NULL;
}

/* The entry for an id; NULL when out of range. */
const promql_func *promql_func_by_id(promql_func_id id) {
    if ((int)id < 0 || id >= PROMQL_FN_COUNT_)
        return NULL;
    return &funcs[id];
}
