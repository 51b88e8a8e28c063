/*
 * check.c - Prometheus' checkAST over a parsed tree: argument counts and
 * types of calls, operand types of binary and unary operators, set
 * operators and `bool`, vector matching only between instant vectors,
 * selectors with a non-empty matcher.  The first error found (children
 * first, in Prometheus' order) wins.  Also the type of an expression.
 *
 * Called by parse.c once a tree is complete.  Threading: works on one tree.
 */
#define PROMQL_PARSER_INTERNAL
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "query/ast.h"

typedef struct checker {
    const char *in; /* the query text, for operator positions */
    size_t len;
    int failed;
    size_t err_pos;
    char *err;
    size_t errlen;
    const promql_expr *ext_ok; /* the range selector a function may read anchored/smoothed */
} checker;

static void perr(checker *p, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void perr(checker *p, size_t pos, const char *fmt, ...) {
    if (p->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, p->errlen, fmt, ap);
    va_end(ap);
    p->failed = 1;
    p->err_pos = pos;
}

promql_type promql_expr_type(const promql_expr *e) {
    if (e == NULL)
        return PROMQL_TYPE_NONE;
    switch (e->kind) {
    case PROMQL_NUMBER:
        return PROMQL_TYPE_SCALAR;
    case PROMQL_STRING:
        return PROMQL_TYPE_STRING;
    case PROMQL_VECTOR_SELECTOR:
        return PROMQL_TYPE_VECTOR;
    case PROMQL_MATRIX_SELECTOR:
        return PROMQL_TYPE_MATRIX;
    case PROMQL_SUBQUERY:
        return PROMQL_TYPE_MATRIX;
    case PROMQL_CALL:
        return e->u.call.func->ret;
    case PROMQL_AGGREGATE:
        return PROMQL_TYPE_VECTOR;
    case PROMQL_BINARY:
        if (promql_expr_type(e->u.bin.lhs) == PROMQL_TYPE_SCALAR &&
            promql_expr_type(e->u.bin.rhs) == PROMQL_TYPE_SCALAR)
            return PROMQL_TYPE_SCALAR;
        return PROMQL_TYPE_VECTOR;
    case PROMQL_UNARY:
        return promql_expr_type(e->u.unary.expr);
    case PROMQL_PAREN:
        return promql_expr_type(e->u.paren);
    }
    return PROMQL_TYPE_NONE;
}

static promql_type check(checker *p, promql_expr *e, int depth);

static void expect_type(checker *p, promql_expr *e, promql_type want, const char *context, int depth) {
    promql_type t = check(p, e, depth + 1);
    if (t != want)
        perr(p, e->start, "expected type %s in %s, got %s", promql_type_name(want), context,
             promql_type_name(t));
}

/* The operator's text without the spaces around it (for error positions). */
static size_t op_pos(checker *p, const promql_expr *e) {
    size_t i = e->u.bin.lhs->end;
    while (i < p->len && (p->in[i] == ' ' || p->in[i] == '\t' || p->in[i] == '\n' || p->in[i] == '\r'))
        i++;
    return i;
}

static void check_binary(checker *p, promql_expr *e, int depth) {
    promql_binary *b = &e->u.bin;
    promql_type lt = check(p, b->lhs, depth + 1);
    promql_type rt = check(p, b->rhs, depth + 1);
    int cmp = promql_binop_is_comparison(b->op), set = promql_binop_is_set(b->op);
    if (b->return_bool && !cmp)
        perr(p, op_pos(p, e), "bool modifier can only be used on comparison operators");
    if (cmp && !b->return_bool && lt == PROMQL_TYPE_SCALAR && rt == PROMQL_TYPE_SCALAR)
        perr(p, op_pos(p, e), "comparisons between scalars must use BOOL modifier");
    if (set && b->matching.card == PROMQL_CARD_ONE_TO_ONE)
        b->matching.card = PROMQL_CARD_MANY_TO_MANY;
    if (b->matching.on)
        for (size_t i = 0; i < b->matching.nmatching; i++)
            for (size_t j = 0; j < b->matching.ninclude; j++)
                if (strcmp(b->matching.matching[i], b->matching.include[j]) == 0)
                    perr(p, op_pos(p, e), "label \"%s\" must not occur in ON and GROUP clause at once",
                         b->matching.matching[i]);
    if (lt != PROMQL_TYPE_SCALAR && lt != PROMQL_TYPE_VECTOR)
        perr(p, b->lhs->start, "binary expression must contain only scalar and instant vector types");
    if ((b->op == PROMQL_OP_TRIM_UPPER || b->op == PROMQL_OP_TRIM_LOWER) && lt != PROMQL_TYPE_VECTOR)
        perr(p, op_pos(p, e), "operator \"%s\" needs an instant vector of histograms on its left side",
             promql_binop_str(b->op));
    if (rt != PROMQL_TYPE_SCALAR && rt != PROMQL_TYPE_VECTOR)
        perr(p, b->rhs->start, "binary expression must contain only scalar and instant vector types");
    if (lt != PROMQL_TYPE_VECTOR || rt != PROMQL_TYPE_VECTOR) {
        if (b->matching.nmatching > 0)
            perr(p, e->start, "vector matching only allowed between instant vectors");
        memset(&b->matching, 0, sizeof b->matching);
        b->has_matching = 0;
    } else {
        b->has_matching = 1;
        if (set) {
            if (b->matching.card == PROMQL_CARD_ONE_TO_MANY || b->matching.card == PROMQL_CARD_MANY_TO_ONE)
                perr(p, e->start, "no grouping allowed for \"%s\" operation", promql_binop_str(b->op));
        }
    }
    if ((b->fill_lhs || b->fill_rhs) && set)
        perr(p, op_pos(p, e), "fill modifiers are not allowed for set operator \"%s\"",
             promql_binop_str(b->op));
    else if ((b->fill_lhs || b->fill_rhs) && (lt != PROMQL_TYPE_VECTOR || rt != PROMQL_TYPE_VECTOR))
        perr(p, op_pos(p, e), "fill modifiers only allowed between instant vectors");
    if ((lt == PROMQL_TYPE_SCALAR || rt == PROMQL_TYPE_SCALAR) && set)
        perr(p, e->start, "set operator \"%s\" not allowed in binary scalar expression",
             promql_binop_str(b->op));
}

/* Whether function id reads `arg` when it is an anchored / smoothed range
 * selector (feature_flags.md: anchored with resets, changes, rate, increase
 * and delta; smoothed with rate, increase and delta). */
static int ext_range_fn(promql_func_id id, const promql_expr *arg) {
    if (arg->kind != PROMQL_MATRIX_SELECTOR)
        return 0;
    switch (id) {
    case PROMQL_FN_RATE:
    case PROMQL_FN_INCREASE:
    case PROMQL_FN_DELTA:
        return 1;
    case PROMQL_FN_RESETS:
    case PROMQL_FN_CHANGES:
        return arg->u.ms.vs->u.vs.mode == PROMQL_RANGE_ANCHORED;
    default:
        return 0;
    }
}

static void check_call(checker *p, promql_expr *e, int depth) {
    const promql_func *f = e->u.call.func;
    size_t n = e->u.call.nargs;
    if (f->variadic == 0) {
        if ((size_t)f->nargs != n)
            perr(p, e->start, "expected %d argument(s) in call to \"%s\", got %zu", f->nargs, f->name, n);
    } else {
        size_t na = (size_t)f->nargs - 1;
        if (na > n)
            perr(p, e->start, "expected at least %zu argument(s) in call to \"%s\", got %zu", na, f->name, n);
        else if (f->variadic > 0 && na + (size_t)f->variadic < n)
            perr(p, e->start, "expected at most %zu argument(s) in call to \"%s\", got %zu",
                 na + (size_t)f->variadic, f->name, n);
    }
    char ctx[96];
    snprintf(ctx, sizeof ctx, "call to function \"%s\"", f->name);
    for (size_t i = 0; i < n; i++) {
        size_t k = i;
        if (k >= (size_t)f->nargs) {
            if (f->variadic == 0 || f->nargs == 0)
                break;
            k = (size_t)f->nargs - 1;
        }
        if (f->id == PROMQL_FN_INFO && i == 1) {
            /* not a real instant vector: label matchers in braces only */
            const promql_expr *a = e->u.call.args[i];
            if (a->kind != PROMQL_VECTOR_SELECTOR || a->u.vs.name != NULL || a->u.vs.offset_ms != 0 ||
                a->u.vs.offset_expr != NULL || a->u.vs.at != PROMQL_AT_NONE ||
                a->u.vs.mode != PROMQL_RANGE_PLAIN)
                perr(p, a->start, "expected label selectors only, got %s instead",
                     a->kind == PROMQL_VECTOR_SELECTOR ? "vector selector"
                                                       : promql_type_name(promql_expr_type(a)));
            continue;
        }
        p->ext_ok = ext_range_fn(f->id, e->u.call.args[i]) ? e->u.call.args[i] : NULL;
        expect_type(p, e->u.call.args[i], f->arg_types[k], ctx, depth);
        p->ext_ok = NULL;
    }
}

static void check_selector(checker *p, promql_expr *e) {
    promql_vector_selector *vs = &e->u.vs;
    if (vs->name != NULL) {
        for (size_t i = 0; i + 1 < vs->nmatchers; i++)
            if (strcmp(vs->matchers[i].name, LABEL_NAME) == 0)
                perr(p, e->start, "metric name must not be set twice: \"%s\" or \"%s\"", vs->name,
                     vs->matchers[i].value);
        return;
    }
    for (size_t i = 0; i < vs->nmatchers; i++)
        if (!matcher_matches_empty(&vs->matchers[i]))
            return;
    perr(p, e->start, "vector selector must contain at least one non-empty matcher");
}

/* Prometheus' checkAST: the first error found wins. */
static promql_type check(checker *p, promql_expr *e, int depth) {
    promql_type ty = promql_expr_type(e);
    if (depth > 2 * PROMQL_MAX_DEPTH + 8)
        return ty; /* the parser bounds depth; never reached */
    switch (e->kind) {
    case PROMQL_AGGREGATE:
        expect_type(p, e->u.agg.expr, PROMQL_TYPE_VECTOR, "aggregation expression", depth);
        if (e->u.agg.param != NULL)
            expect_type(p, e->u.agg.param,
                        e->u.agg.op == PROMQL_AGG_COUNT_VALUES ? PROMQL_TYPE_STRING : PROMQL_TYPE_SCALAR,
                        "aggregation parameter", depth);
        break;
    case PROMQL_BINARY:
        check_binary(p, e, depth);
        break;
    case PROMQL_CALL:
        check_call(p, e, depth);
        break;
    case PROMQL_PAREN:
        check(p, e->u.paren, depth + 1);
        break;
    case PROMQL_UNARY: {
        promql_type t = check(p, e->u.unary.expr, depth + 1);
        if (t != PROMQL_TYPE_SCALAR && t != PROMQL_TYPE_VECTOR)
            perr(p, e->start,
                 "unary expression only allowed on expressions of type scalar or instant vector, got \"%s\"",
                 promql_type_name(t));
        break;
    }
    case PROMQL_SUBQUERY: {
        promql_type t = check(p, e->u.sq.expr, depth + 1);
        if (t != PROMQL_TYPE_VECTOR)
            perr(p, e->start, "subquery is only allowed on instant vector, got %s instead",
                 promql_type_go_name(t));
        break;
    }
    case PROMQL_MATRIX_SELECTOR: {
        promql_range_mode mode = e->u.ms.vs->u.vs.mode;
        if (mode == PROMQL_RANGE_ANCHORED && p->ext_ok != e)
            perr(p, e->start,
                 "anchored modifier can only be used with: changes, delta, increase, rate, resets");
        else if (mode == PROMQL_RANGE_SMOOTHED && p->ext_ok != e)
            perr(p, e->start, "smoothed modifier can only be used with: delta, increase, rate");
        check(p, e->u.ms.vs, depth + 1);
        break;
    }
    case PROMQL_VECTOR_SELECTOR:
        check_selector(p, e);
        break;
    case PROMQL_NUMBER:
    case PROMQL_STRING:
        break;
    }
    return ty;
}

int promql_check(promql_expr *root, const char *in, size_t len, size_t *err_pos, char *err, size_t errlen) {
    checker c = {in, len, 0, 0, err, errlen, NULL};
    check(&c, root, 0);
    if (c.failed)
        *err_pos = c.err_pos;
    return c.failed ? -1 : 0;
}
