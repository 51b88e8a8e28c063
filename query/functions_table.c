/*
 * functions_table.c - the signatures of every PromQL function Prometheus 3.x
 * knows (name, argument types, optional/variadic arguments, return type), in
 * promql_func_id order.  The evaluator dispatches on promql_func.id; the
 * parser checks calls against these entries.
 *
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

static const promql_func funcs[PROMQL_FN_COUNT_] = {
    {PROMQL_FN_ABS, "abs", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_ABSENT, "absent", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_ABSENT_OVER_TIME, "absent_over_time", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_ACOS, "acos", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_ACOSH, "acosh", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_ASIN, "asin", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_ASINH, "asinh", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_ATAN, "atan", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_ATANH, "atanh", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_AVG_OVER_TIME, "avg_over_time", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_CEIL, "ceil", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_CHANGES, "changes", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_CLAMP, "clamp", sig_vss, 3, 0, 3, 3, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_CLAMP_MAX, "clamp_max", sig_vs, 2, 0, 2, 2, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_CLAMP_MIN, "clamp_min", sig_vs, 2, 0, 2, 2, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_COS, "cos", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_COSH, "cosh", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_COUNT_OVER_TIME, "count_over_time", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_DAYS_IN_MONTH, "days_in_month", sig_v, 1, 1, 0, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_DAY_OF_MONTH, "day_of_month", sig_v, 1, 1, 0, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_DAY_OF_WEEK, "day_of_week", sig_v, 1, 1, 0, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_DAY_OF_YEAR, "day_of_year", sig_v, 1, 1, 0, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_DEG, "deg", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_DELTA, "delta", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_DERIV, "deriv", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_DOUBLE_EXPONENTIAL_SMOOTHING, "double_exponential_smoothing", sig_mss, 3, 0, 3, 3,
     PROMQL_TYPE_VECTOR, 1},
    {PROMQL_FN_END, "end", NULL, 0, 0, 0, 0, PROMQL_TYPE_SCALAR, 1},
    {PROMQL_FN_EXP, "exp", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_FIRST_OVER_TIME, "first_over_time", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_FLOOR, "floor", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_HISTOGRAM_AVG, "histogram_avg", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_HISTOGRAM_COUNT, "histogram_count", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_HISTOGRAM_FRACTION, "histogram_fraction", sig_ssv, 3, 0, 3, 3, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_HISTOGRAM_QUANTILE, "histogram_quantile", sig_sv, 2, 0, 2, 2, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_HISTOGRAM_QUANTILES, "histogram_quantiles", sig_vtss, 4, 9, 3, 12, PROMQL_TYPE_VECTOR, 1},
    {PROMQL_FN_HISTOGRAM_STDDEV, "histogram_stddev", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_HISTOGRAM_STDVAR, "histogram_stdvar", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_HISTOGRAM_SUM, "histogram_sum", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_HOUR, "hour", sig_v, 1, 1, 0, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_IDELTA, "idelta", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_INCREASE, "increase", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_INFO, "info", sig_vv, 2, 1, 1, 2, PROMQL_TYPE_VECTOR, 1},
    {PROMQL_FN_IRATE, "irate", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_LABEL_JOIN, "label_join", sig_vttt, 4, -1, 3, -1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_LABEL_REPLACE, "label_replace", sig_vtttt, 5, 0, 5, 5, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_LAST_OVER_TIME, "last_over_time", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_LN, "ln", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_LOG10, "log10", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_LOG2, "log2", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_MAD_OVER_TIME, "mad_over_time", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 1},
    {PROMQL_FN_MAX_OF, "max_of", sig_ss, 2, 0, 2, 2, PROMQL_TYPE_SCALAR, 1},
    {PROMQL_FN_MAX_OVER_TIME, "max_over_time", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_MIN_OF, "min_of", sig_ss, 2, 0, 2, 2, PROMQL_TYPE_SCALAR, 1},
    {PROMQL_FN_MIN_OVER_TIME, "min_over_time", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_MINUTE, "minute", sig_v, 1, 1, 0, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_MONTH, "month", sig_v, 1, 1, 0, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_PI, "pi", NULL, 0, 0, 0, 0, PROMQL_TYPE_SCALAR, 0},
    {PROMQL_FN_PREDICT_LINEAR, "predict_linear", sig_ms, 2, 0, 2, 2, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_PRESENT_OVER_TIME, "present_over_time", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_QUANTILE_OVER_TIME, "quantile_over_time", sig_sm, 2, 0, 2, 2, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_RAD, "rad", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_RANGE, "range", NULL, 0, 0, 0, 0, PROMQL_TYPE_SCALAR, 1},
    {PROMQL_FN_RATE, "rate", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_RESETS, "resets", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_ROUND, "round", sig_vs, 2, 1, 1, 2, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_SCALAR, "scalar", sig_v, 1, 0, 1, 1, PROMQL_TYPE_SCALAR, 0},
    {PROMQL_FN_SGN, "sgn", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_SIN, "sin", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_SINH, "sinh", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_SORT, "sort", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_SORT_BY_LABEL, "sort_by_label", sig_vt, 2, -1, 1, -1, PROMQL_TYPE_VECTOR, 1},
    {PROMQL_FN_SORT_BY_LABEL_DESC, "sort_by_label_desc", sig_vt, 2, -1, 1, -1, PROMQL_TYPE_VECTOR, 1},
    {PROMQL_FN_SORT_DESC, "sort_desc", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_SQRT, "sqrt", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_START, "start", NULL, 0, 0, 0, 0, PROMQL_TYPE_SCALAR, 1},
    {PROMQL_FN_START_TIMESTAMP, "start_timestamp", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_STDDEV_OVER_TIME, "stddev_over_time", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_STDVAR_OVER_TIME, "stdvar_over_time", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_STEP, "step", NULL, 0, 0, 0, 0, PROMQL_TYPE_SCALAR, 1},
    {PROMQL_FN_SUM_OVER_TIME, "sum_over_time", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_TAN, "tan", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_TANH, "tanh", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_TIME, "time", NULL, 0, 0, 0, 0, PROMQL_TYPE_SCALAR, 0},
    {PROMQL_FN_TIMESTAMP, "timestamp", sig_v, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_TS_OF_FIRST_OVER_TIME, "ts_of_first_over_time", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 1},
    {PROMQL_FN_TS_OF_LAST_OVER_TIME, "ts_of_last_over_time", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 1},
    {PROMQL_FN_TS_OF_MAX_OVER_TIME, "ts_of_max_over_time", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 1},
    {PROMQL_FN_TS_OF_MIN_OVER_TIME, "ts_of_min_over_time", sig_m, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 1},
    {PROMQL_FN_VECTOR, "vector", sig_s, 1, 0, 1, 1, PROMQL_TYPE_VECTOR, 0},
    {PROMQL_FN_YEAR, "year", sig_v, 1, 1, 0, 1, PROMQL_TYPE_VECTOR, 0},
};

/* Looks a function up by name (a linear scan: parsing only, ~90 entries). */
const promql_func *promql_func_lookup(const char *name) {
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < PROMQL_FN_COUNT_; i++)
        if (strcmp(funcs[i].name, name) == 0)
            return &funcs[i];
    return NULL;
}

/* The entry for an id; NULL when out of range. */
const promql_func *promql_func_by_id(promql_func_id id) {
    if ((int)id < 0 || id >= PROMQL_FN_COUNT_)
        return NULL;
    return &funcs[id];
}
