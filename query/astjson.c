/*
 * astjson.c - what the HTTP API asks of the PromQL parser without seeing
 * its tree (query/ast.h stays internal to query/): the tree as the JSON of
 * Prometheus' translateAST (/api/v1/parse_query), the prettified text
 * (/api/v1/format_query), a bare parse check, and series selectors as
 * matchers (the match[] parameters).
 *
 * The JSON is what Prometheus' web UI reads: Go writes the keys of a map
 * sorted, so every object here is too; ranges, offsets, steps and @
 * timestamps are in milliseconds.
 *
 * Called by api/ (query_api.c, params.c, metadata.c) on HTTP worker threads,
 * any number at once: nothing here holds state between calls.
 */
#include <string.h>

#include "query/ast.h"
#include "query/query.h"

/* Go's parser.ValueType names are query_value_type_name's: the two enums
 * list the same types in the same order. */
_Static_assert((int)PROMQL_TYPE_SCALAR == (int)QUERY_SCALAR && (int)PROMQL_TYPE_STRING == (int)QUERY_STRING &&
                   (int)PROMQL_TYPE_VECTOR == (int)QUERY_VECTOR &&
                   (int)PROMQL_TYPE_MATRIX == (int)QUERY_MATRIX,
               "promql_type and query_value_type differ");

static const char *value_type_go(promql_type t) {
    return query_value_type_name((query_value_type)t);
}

static void json_name_list(buf *b, char *const *v, size_t n) {
    buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        json_str(b, v[i]);
    }
    buf_putc(b, ']');
}

/* "startOrEnd":...,"timestamp":... (in milliseconds) */
static void json_at(buf *b, promql_at_kind at, int64_t at_ms) {
    buf_puts(b, "\"startOrEnd\":");
    buf_puts(b, at == PROMQL_AT_START ? "\"start\"" : at == PROMQL_AT_END ? "\"end\"" : "null");
    buf_puts(b, ",\"timestamp\":");
    if (at == PROMQL_AT_TIMESTAMP)
        buf_printf(b, "%lld", (long long)at_ms);
    else
        buf_puts(b, "null");
}

static void json_matchers(buf *b, const promql_vector_selector *vs) {
    buf_puts(b, "\"matchers\":[");
    for (size_t i = 0; i < vs->nmatchers; i++) {
        if (i)
            buf_putc(b, ',');
        buf_puts(b, "{\"name\":");
        json_str(b, vs->matchers[i].name);
        buf_puts(b, ",\"type\":");
        json_str(b, match_type_str(vs->matchers[i].type));
        buf_puts(b, ",\"value\":");
        json_str(b, vs->matchers[i].value);
        buf_putc(b, '}');
    }
    buf_putc(b, ']');
}

static void json_selector(buf *b, const promql_expr *e) {
    int matrix = e->kind == PROMQL_MATRIX_SELECTOR;
    const promql_vector_selector *vs = matrix ? &e->u.ms.vs->u.vs : &e->u.vs;
    buf_putc(b, '{');
    json_matchers(b, vs);
    buf_puts(b, ",\"name\":");
    json_str(b, vs->name ? vs->name : "");
    buf_printf(b, ",\"offset\":%lld,", (long long)vs->offset_ms);
    if (matrix)
        buf_printf(b, "\"range\":%lld,", (long long)e->u.ms.range_ms);
    json_at(b, vs->at, vs->at_ms);
    buf_puts(b, matrix ? ",\"type\":\"matrixSelector\"}" : ",\"type\":\"vectorSelector\"}");
}

static void json_expr(buf *b, const promql_expr *e, int depth);

/* The key (with what precedes it: `{"expr":`) and the subtree e one level down. */
static void json_member(buf *b, const char *key, const promql_expr *e, int depth) {
    buf_puts(b, key);
    json_expr(b, e, depth + 1);
}

static void json_call(buf *b, const promql_call *c, int depth) {
    const promql_func *f = c->func;
    buf_puts(b, "{\"args\":[");
    for (size_t i = 0; i < c->nargs; i++) {
        if (i)
            buf_putc(b, ',');
        json_expr(b, c->args[i], depth + 1);
    }
    buf_puts(b, "],\"func\":{\"argTypes\":[");
    for (int i = 0; f && i < f->nargs; i++) {
        if (i)
            buf_putc(b, ',');
        json_str(b, value_type_go(f->arg_types[i]));
    }
    buf_puts(b, "],\"name\":");
    json_str(b, f ? f->name : "");
    buf_puts(b, ",\"returnType\":");
    json_str(b, value_type_go(f ? f->ret : PROMQL_TYPE_NONE));
    buf_printf(b, ",\"variadic\":%d},\"type\":\"call\"}", f ? f->variadic : 0);
}

static void json_aggregate(buf *b, const promql_aggregate *ag, int depth) {
    json_member(b, "{\"expr\":", ag->expr, depth);
    buf_puts(b, ",\"grouping\":");
    json_name_list(b, ag->grouping, ag->ngrouping);
    buf_puts(b, ",\"op\":");
    json_str(b, promql_aggop_str(ag->op));
    json_member(b, ",\"param\":", ag->param, depth);
    buf_puts(b, ag->without ? ",\"type\":\"aggregation\",\"without\":true}"
                            : ",\"type\":\"aggregation\",\"without\":false}");
}

static void json_binary(buf *b, const promql_binary *bi, int depth) {
    json_member(b, bi->return_bool ? "{\"bool\":true,\"lhs\":" : "{\"bool\":false,\"lhs\":", bi->lhs, depth);
    buf_puts(b, ",\"matching\":");
    if (bi->has_matching) {
        static const char *const cards[] = {"one-to-one", "many-to-one", "one-to-many", "many-to-many"};
        unsigned c = (unsigned)bi->matching.card;
        buf_puts(b, "{\"card\":");
        json_str(b, c < 4 ? cards[c] : "one-to-one");
        buf_puts(b, ",\"include\":");
        json_name_list(b, bi->matching.include, bi->matching.ninclude);
        buf_puts(b, ",\"labels\":");
        json_name_list(b, bi->matching.matching, bi->matching.nmatching);
        buf_puts(b, bi->matching.on ? ",\"on\":true}" : ",\"on\":false}");
    } else {
        buf_puts(b, "null");
    }
    buf_puts(b, ",\"op\":");
    json_str(b, promql_binop_str(bi->op));
    json_member(b, ",\"rhs\":", bi->rhs, depth);
    buf_puts(b, ",\"type\":\"binaryExpr\"}");
}

/* The subtree at e; depth bounds the recursion (the parser bounds it too). */
static void json_expr(buf *b, const promql_expr *e, int depth) {
    if (!e || depth > 200) {
        buf_puts(b, "null");
        return;
    }
    char num[FMT_DOUBLE_MAX];
    switch (e->kind) {
    case PROMQL_NUMBER:
        fmt_double_f(e->u.number, num);
        buf_puts(b, "{\"type\":\"numberLiteral\",\"val\":");
        json_str(b, num);
        buf_putc(b, '}');
        break;
    case PROMQL_STRING:
        buf_puts(b, "{\"type\":\"stringLiteral\",\"val\":");
        json_strn(b, e->u.string.s, e->u.string.len);
        buf_putc(b, '}');
        break;
    case PROMQL_VECTOR_SELECTOR:
    case PROMQL_MATRIX_SELECTOR:
        json_selector(b, e);
        break;
    case PROMQL_SUBQUERY:
        json_member(b, "{\"expr\":", e->u.sq.expr, depth);
        buf_printf(b, ",\"offset\":%lld,\"range\":%lld,", (long long)e->u.sq.offset_ms,
                   (long long)e->u.sq.range_ms);
        json_at(b, e->u.sq.at, e->u.sq.at_ms);
        buf_printf(b, ",\"step\":%lld,\"type\":\"subquery\"}", (long long)e->u.sq.step_ms);
        break;
    case PROMQL_CALL:
        json_call(b, &e->u.call, depth);
        break;
    case PROMQL_AGGREGATE:
        json_aggregate(b, &e->u.agg, depth);
        break;
    case PROMQL_BINARY:
        json_binary(b, &e->u.bin, depth);
        break;
    case PROMQL_UNARY:
        json_member(b, "{\"expr\":", e->u.unary.expr, depth);
        buf_puts(b, ",\"op\":");
        json_str(b, promql_binop_str(e->u.unary.op));
        buf_puts(b, ",\"type\":\"unaryExpr\"}");
        break;
    case PROMQL_PAREN:
        json_member(b, "{\"expr\":", e->u.paren, depth);
        buf_puts(b, ",\"type\":\"parenExpr\"}");
        break;
    default:
        buf_puts(b, "null");
    }
}

int query_parse_json(const char *q, buf *out, kiln_err *err) {
    promql_ast *ast = NULL;
    int rc = promql_parse(q, &ast, err);
    if (rc != 0)
        return rc;
    json_expr(out, ast->root, 0);
    promql_ast_free(ast);
    return buf_error(out) ? kiln_err_set(err, KILN_ENOMEM, "out of memory") : 0;
}

/* Parses q and prints it with `print`. */
static int parse_print(const char *q, int (*print)(buf *, const promql_expr *), buf *out, kiln_err *err) {
    promql_ast *ast = NULL;
    int rc = promql_parse(q, &ast, err);
    if (rc != 0)
        return rc;
    rc = print(out, ast->root);
    promql_ast_free(ast);
    if (rc == 0)
        rc = buf_error(out);
    return rc ? kiln_err_set(err, rc, "out of memory") : 0;
}

int query_parse_pretty(const char *q, buf *out, kiln_err *err) {
    return parse_print(q, promql_prettify, out, err);
}

int query_parse_format(const char *q, buf *out, kiln_err *err) {
    return parse_print(q, promql_format, out, err);
}

int query_parse_check(const char *q, kiln_err *err) {
    promql_ast *ast = NULL;
    int rc = promql_parse(q, &ast, err);
    promql_ast_free(ast);
    return rc;
}

int query_selector_parse(const char *s, query_selector *sel, kiln_err *err) {
    memset(sel, 0, sizeof *sel);
    promql_ast *ast = NULL;
    int rc = promql_parse(s, &ast, err);
    if (rc != 0)
        return rc;
    if (ast->root->kind != PROMQL_VECTOR_SELECTOR) {
        sel->other = promql_type_name(promql_expr_type(ast->root));
        promql_ast_free(ast);
        return KILN_EINVAL;
    }
    sel->ms = ast->root->u.vs.matchers;
    sel->nms = ast->root->u.vs.nmatchers;
    sel->ast = ast;
    return 0;
}

void query_selector_free(query_selector *sel) {
    promql_ast_free(sel->ast);
    memset(sel, 0, sizeof *sel);
}
