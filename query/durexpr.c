/*
 * durexpr.c - duration expressions (promql-duration-expr): the value of a
 * range, subquery step or offset written as arithmetic, `x[1m+30s]`,
 * `x offset (1h*2)`, `x[5m:step()]`, and the pass that writes those values
 * into a parsed tree for one query.
 *
 * Everything is in seconds as float64, as in Prometheus: a number is
 * seconds, a duration literal its seconds, step() the query's step and
 * range() its end - start (both 0 for an instant query).  The result is
 * truncated to milliseconds.  Ranges and steps must come out > 0; offsets
 * may be negative.
 *
 * Called by parse.c (expressions without step()/range() are resolved while
 * parsing, so their errors are parse errors) and engine.c (every query,
 * before evaluating).  Threading: works on one tree, no shared state.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "query/ast.h"

int promql_duration_is_dynamic(const promql_expr *e) {
    switch (e->kind) {
    case PROMQL_PAREN:
        return promql_duration_is_dynamic(e->u.paren);
    case PROMQL_UNARY:
        return promql_duration_is_dynamic(e->u.unary.expr);
    case PROMQL_BINARY:
        return promql_duration_is_dynamic(e->u.bin.lhs) || promql_duration_is_dynamic(e->u.bin.rhs);
    case PROMQL_CALL:
        if (e->u.call.func->id == PROMQL_FN_STEP || e->u.call.func->id == PROMQL_FN_RANGE)
            return 1;
        for (size_t i = 0; i < e->u.call.nargs; i++)
            if (promql_duration_is_dynamic(e->u.call.args[i]))
                return 1;
        return 0;
    default:
        return 0;
    }
}

static int fail(const char **msg, const promql_expr **at, const char *m, const promql_expr *e) {
    *msg = m;
    *at = e;
    return -1;
}

int promql_duration_eval(const promql_expr *e, int64_t step_ms, int64_t range_ms, double *out,
                         const char **msg, const promql_expr **at) {
    double l, r;
    switch (e->kind) {
    case PROMQL_NUMBER:
        *out = e->u.number;
        return 0;
    case PROMQL_PAREN:
        return promql_duration_eval(e->u.paren, step_ms, range_ms, out, msg, at);
    case PROMQL_UNARY:
        if (promql_duration_eval(e->u.unary.expr, step_ms, range_ms, &r, msg, at) < 0)
            return -1;
        *out = e->u.unary.op == PROMQL_OP_SUB ? -r : r;
        return 0;
    case PROMQL_CALL:
        switch (e->u.call.func->id) {
        case PROMQL_FN_STEP:
            *out = (double)step_ms / 1000.0;
            return 0;
        case PROMQL_FN_RANGE:
            *out = (double)range_ms / 1000.0;
            return 0;
        case PROMQL_FN_MIN_OF:
        case PROMQL_FN_MAX_OF:
            if (e->u.call.nargs != 2 ||
                promql_duration_eval(e->u.call.args[0], step_ms, range_ms, &l, msg, at) < 0 ||
                promql_duration_eval(e->u.call.args[1], step_ms, range_ms, &r, msg, at) < 0)
                return e->u.call.nargs != 2 ? fail(msg, at, "invalid duration expression", e) : -1;
            *out = e->u.call.func->id == PROMQL_FN_MIN_OF ? fmin(l, r) : fmax(l, r);
            return 0;
        default:
            return fail(msg, at, "invalid duration expression", e);
        }
    case PROMQL_BINARY:
        if (promql_duration_eval(e->u.bin.lhs, step_ms, range_ms, &l, msg, at) < 0 ||
            promql_duration_eval(e->u.bin.rhs, step_ms, range_ms, &r, msg, at) < 0)
            return -1;
        switch (e->u.bin.op) {
        case PROMQL_OP_ADD:
            *out = l + r;
            return 0;
        case PROMQL_OP_SUB:
            *out = l - r;
            return 0;
        case PROMQL_OP_MUL:
            *out = l * r;
            return 0;
        case PROMQL_OP_DIV:
            if (r == 0)
                return fail(msg, at, "division by zero", e);
            *out = l / r;
            return 0;
        case PROMQL_OP_MOD:
            if (r == 0)
                return fail(msg, at, "modulo by zero", e);
            *out = fmod(l, r);
            return 0;
        case PROMQL_OP_POW:
            *out = pow(l, r);
            return 0;
        default:
            return fail(msg, at, "invalid duration expression", e);
        }
    default:
        return fail(msg, at, "invalid duration expression", e);
    }
}

/* Resolves one duration expression into *ms; `positive`: must be > 0. */
static int resolve_one(const promql_expr *d, int positive, const char *query, int64_t step_ms,
                       int64_t range_ms, int64_t *ms, kiln_err *err) {
    double v;
    const char *msg = NULL;
    const promql_expr *at = d;
    if (promql_duration_eval(d, step_ms, range_ms, &v, &msg, &at) == 0) {
        double m = trunc(v * 1000.0);
        if (isnan(m))
            msg = "duration out of range";
        else if (positive && m <= 0)
            msg = "duration must be greater than 0";
        else if (m >= 9.2e18 || m <= -9.2e18)
            msg = "duration out of range";
        else
            *ms = (int64_t)m;
        if (msg)
            at = d;
    }
    if (!msg)
        return 0;
    size_t line = 1, col = 1;
    for (size_t i = 0; query && i < at->start && query[i]; i++) {
        if (query[i] == '\n')
            line++, col = 1;
        else
            col++;
    }
    return kiln_err_set(err, KILN_EINVAL, "%zu:%zu: parse error: %s", line, col, msg);
}

int promql_durations_resolve(promql_expr *e, const char *query, int64_t step_ms, int64_t range_ms,
                             kiln_err *err) {
    int rc = 0;
    switch (e->kind) {
    case PROMQL_VECTOR_SELECTOR:
        if (e->u.vs.offset_expr)
            rc = resolve_one(e->u.vs.offset_expr, 0, query, step_ms, range_ms, &e->u.vs.offset_ms, err);
        return rc;
    case PROMQL_MATRIX_SELECTOR:
        if (e->u.ms.range_expr &&
            (rc = resolve_one(e->u.ms.range_expr, 1, query, step_ms, range_ms, &e->u.ms.range_ms, err)) < 0)
            return rc;
        return promql_durations_resolve(e->u.ms.vs, query, step_ms, range_ms, err);
    case PROMQL_SUBQUERY:
        if (e->u.sq.range_expr &&
            (rc = resolve_one(e->u.sq.range_expr, 1, query, step_ms, range_ms, &e->u.sq.range_ms, err)) < 0)
            return rc;
        if (e->u.sq.step_expr &&
            (rc = resolve_one(e->u.sq.step_expr, 1, query, step_ms, range_ms, &e->u.sq.step_ms, err)) < 0)
            return rc;
        if (e->u.sq.offset_expr &&
            (rc = resolve_one(e->u.sq.offset_expr, 0, query, step_ms, range_ms, &e->u.sq.offset_ms, err)) < 0)
            return rc;
        return promql_durations_resolve(e->u.sq.expr, query, step_ms, range_ms, err);
    case PROMQL_PAREN:
        return promql_durations_resolve(e->u.paren, query, step_ms, range_ms, err);
    case PROMQL_UNARY:
        return promql_durations_resolve(e->u.unary.expr, query, step_ms, range_ms, err);
    case PROMQL_BINARY:
        if ((rc = promql_durations_resolve(e->u.bin.lhs, query, step_ms, range_ms, err)) < 0)
            return rc;
        return promql_durations_resolve(e->u.bin.rhs, query, step_ms, range_ms, err);
    case PROMQL_CALL:
        for (size_t i = 0; i < e->u.call.nargs && rc == 0; i++)
            rc = promql_durations_resolve(e->u.call.args[i], query, step_ms, range_ms, err);
        return rc;
    case PROMQL_AGGREGATE:
        if (e->u.agg.param &&
            (rc = promql_durations_resolve(e->u.agg.param, query, step_ms, range_ms, err)) < 0)
            return rc;
        return promql_durations_resolve(e->u.agg.expr, query, step_ms, range_ms, err);
    default:
        return 0;
    }
}
