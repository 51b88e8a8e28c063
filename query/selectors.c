/*
 * selectors.c - the series selectors of a PromQL expression (Prometheus'
 * parser.ExtractSelectors), for /api/v1/query_exemplars (api/exemplars.c),
 * which answers with the exemplars of the series any of them selects.
 * Any thread.
 */
#include <stdlib.h>
#include <string.h>

#include "query/ast.h"
#include "query/query.h"

KILN_MUST_CHECK static int collect(const promql_expr *e, query_selectors *out) {
    if (e == NULL)
        return 0;
    int rc = 0;
    switch (e->kind) {
    case PROMQL_VECTOR_SELECTOR:
        if (array_grow((void **)&out->sets, &out->cap, out->n + 1, sizeof *out->sets) != 0)
            return KILN_ENOMEM;
        out->sets[out->n++] = (exemplar_matchers){e->u.vs.matchers, e->u.vs.nmatchers};
        return 0;
    case PROMQL_MATRIX_SELECTOR:
        return collect(e->u.ms.vs, out);
    case PROMQL_SUBQUERY:
        return collect(e->u.sq.expr, out);
    case PROMQL_CALL:
        for (size_t i = 0; i < e->u.call.nargs && rc == 0; i++)
            rc = collect(e->u.call.args[i], out);
        return rc;
    case PROMQL_AGGREGATE:
        if ((rc = collect(e->u.agg.param, out)) != 0)
            return rc;
        return collect(e->u.agg.expr, out);
    case PROMQL_BINARY:
        if ((rc = collect(e->u.bin.lhs, out)) != 0)
            return rc;
        return collect(e->u.bin.rhs, out);
    case PROMQL_UNARY:
        return collect(e->u.unary.expr, out);
    case PROMQL_PAREN:
        return collect(e->u.paren, out);
    default:
        return 0;
    }
}

int query_selectors_parse(const char *q, query_selectors *out, kiln_err *err) {
    memset(out, 0, sizeof *out);
    int rc = promql_parse(q, &out->ast, err);
    if (rc != 0)
        return rc;
    if ((rc = collect(out->ast->root, out)) != 0) {
        query_selectors_free(out);
        return kiln_err_set(err, rc, "out of memory");
    }
    return 0;
}

void query_selectors_free(query_selectors *s) {
    promql_ast_free(s->ast);
    free(s->sets);
    memset(s, 0, sizeof *s);
}
