/*
 * printer.c - turns a PromQL tree back into canonical text, as Prometheus'
 * String() methods do (the form /api/v1/format_query and error messages
 * show): single spaces around binary operators, `sum by (job) (x)`, label
 * matchers sorted, durations in their shortest form, `@ 10.000`, numbers
 * like Go's %v, strings quoted like Go's strconv.Quote.
 *
 * The printer keeps every ParenExpr of the tree and adds none, so printing
 * then parsing gives back the same tree.  One exception to Prometheus' text:
 * +Inf on the left of ^ is written "Inf", since "+Inf ^ 2" reads back as
 * +(Inf ^ 2).  Where Prometheus 2.x would lose
 * information (`ignoring() group_left`), the modifier is printed anyway.
 *
 * promql_prettify writes the multi-line form of Prometheus' prettier.go
 * (parser.Prettify, 2.x and 3.x alike): each node that does not fit on a
 * line of 100 bytes is split, its children one indentation level deeper;
 * whether a node fits is decided on its canonical one-line text.
 *
 * Also here: the names of types and operators.
 *
 * Called by astjson.c (the API's format_query and parse_query), the parser
 * (type and operator names in its messages), the evaluator and tests.
 * Threading: pure functions over an immutable tree.
 */
#define PROMQL_PARSER_INTERNAL
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "query/ast.h"

/* Each type's name in Prometheus' messages, and Go's ValueType.String(). */
static const struct {
    const char *name, *go;
} type_names[] = {
    [PROMQL_TYPE_SCALAR] = {"scalar", "scalar"},
    [PROMQL_TYPE_STRING] = {"string", "string"},
    [PROMQL_TYPE_VECTOR] = {"instant vector", "vector"},
    [PROMQL_TYPE_MATRIX] = {"range vector", "matrix"},
};

static int type_known(promql_type t) {
    return (size_t)t < sizeof type_names / sizeof type_names[0] && type_names[t].name;
}

const char *promql_type_name(promql_type t) {
    return type_known(t) ? type_names[t].name : "none";
}

const char *promql_type_go_name(promql_type t) {
    return type_known(t) ? type_names[t].go : "none";
}

static const char *const binop_names[] = {
    [PROMQL_OP_ADD] = "+",         [PROMQL_OP_SUB] = "-",         [PROMQL_OP_MUL] = "*",
    [PROMQL_OP_DIV] = "/",         [PROMQL_OP_MOD] = "%",         [PROMQL_OP_POW] = "^",
    [PROMQL_OP_ATAN2] = "atan2",   [PROMQL_OP_EQL] = "==",        [PROMQL_OP_NEQ] = "!=",
    [PROMQL_OP_GTR] = ">",         [PROMQL_OP_LSS] = "<",         [PROMQL_OP_GTE] = ">=",
    [PROMQL_OP_LTE] = "<=",        [PROMQL_OP_AND] = "and",       [PROMQL_OP_OR] = "or",
    [PROMQL_OP_UNLESS] = "unless", [PROMQL_OP_TRIM_UPPER] = "</", [PROMQL_OP_TRIM_LOWER] = ">/",
};

const char *promql_binop_str(promql_binop op) {
    if ((int)op < 0 || (size_t)op >= sizeof binop_names / sizeof binop_names[0])
        return "?";
    return binop_names[op];
}

int promql_binop_is_comparison(promql_binop op) {
    return op >= PROMQL_OP_EQL && op <= PROMQL_OP_LTE;
}

int promql_binop_is_set(promql_binop op) {
    return op >= PROMQL_OP_AND && op <= PROMQL_OP_UNLESS;
}

static const char *const aggop_names[] = {
    [PROMQL_AGG_SUM] = "sum",           [PROMQL_AGG_AVG] = "avg",
    [PROMQL_AGG_COUNT] = "count",       [PROMQL_AGG_MIN] = "min",
    [PROMQL_AGG_MAX] = "max",           [PROMQL_AGG_GROUP] = "group",
    [PROMQL_AGG_STDDEV] = "stddev",     [PROMQL_AGG_STDVAR] = "stdvar",
    [PROMQL_AGG_TOPK] = "topk",         [PROMQL_AGG_BOTTOMK] = "bottomk",
    [PROMQL_AGG_QUANTILE] = "quantile", [PROMQL_AGG_COUNT_VALUES] = "count_values",
    [PROMQL_AGG_LIMITK] = "limitk",     [PROMQL_AGG_LIMIT_RATIO] = "limit_ratio",
};

const char *promql_aggop_str(promql_aggop op) {
    if ((int)op < 0 || (size_t)op >= sizeof aggop_names / sizeof aggop_names[0])
        return "?";
    return aggop_names[op];
}

int promql_aggop_has_param(promql_aggop op) {
    switch (op) {
    case PROMQL_AGG_TOPK:
    case PROMQL_AGG_BOTTOMK:
    case PROMQL_AGG_QUANTILE:
    case PROMQL_AGG_COUNT_VALUES:
    case PROMQL_AGG_LIMITK:
    case PROMQL_AGG_LIMIT_RATIO:
        return 1;
    default:
        return 0;
    }
}

/* ---- printing ------------------------------------------------------------ */

/* Label names outside [a-zA-Z_][a-zA-Z0-9_]* are written quoted. */
static void put_label_name(buf *out, const char *name) {
    if (name[0] != 0 && label_name_valid(name, strlen(name)))
        buf_puts(out, name);
    else
        promql_quote(out, name, strlen(name));
}

static void put_label_list(buf *out, char **v, size_t n) {
    buf_putc(out, '(');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_puts(out, ", ");
        /* Outside braces "inf" and "nan" read as numbers: quote them. */
        if (strcasecmp(v[i], "inf") == 0 || strcasecmp(v[i], "nan") == 0)
            promql_quote(out, v[i], strlen(v[i]));
        else
            put_label_name(out, v[i]);
    }
    buf_putc(out, ')');
}

/* Like Prometheus' model.Duration.String(): years and weeks only when they
 * divide the rest exactly ("90d", not "12w6d"). */
static void put_duration(buf *out, int64_t ms) {
    static const struct {
        const char *unit;
        int64_t mult;
        int exact;
    } units[] = {
        {"y", 365LL * 24 * 3600 * 1000, 1},
        {"w", 7LL * 24 * 3600 * 1000, 1},
        {"d", 24LL * 3600 * 1000, 0},
        {"h", 3600LL * 1000, 0},
        {"m", 60LL * 1000, 0},
        {"s", 1000, 0},
        {"ms", 1, 0},
    };
    if (ms <= 0) {
        buf_puts(out, "0s");
        return;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (units[i].exact && ms % units[i].mult != 0)
            continue;
        int64_t v = ms / units[i].mult;
        if (v > 0) {
            buf_printf(out, "%lld%s", (long long)v, units[i].unit);
            ms -= v * units[i].mult;
        }
    }
}

KILN_MUST_CHECK static int put_expr(buf *out, const promql_expr *e);

/* A range, step or offset: its duration expression as written, else the
 * duration. */
KILN_MUST_CHECK static int put_dur(buf *out, const promql_expr *dexpr, int64_t ms) {
    if (dexpr)
        return put_expr(out, dexpr);
    put_duration(out, ms);
    return 0;
}

KILN_MUST_CHECK static int put_at_offset(buf *out, promql_at_kind at, int64_t at_ms, int64_t offset_ms,
                                         const promql_expr *offset_expr) {
    switch (at) {
    case PROMQL_AT_TIMESTAMP:
        buf_printf(out, " @ %.3f", (double)at_ms / 1000.0);
        break;
    case PROMQL_AT_START:
        buf_puts(out, " @ start()");
        break;
    case PROMQL_AT_END:
        buf_puts(out, " @ end()");
        break;
    default:
        break;
    }
    if (offset_expr) {
        buf_puts(out, " offset ");
        return put_expr(out, offset_expr);
    }
    if (offset_ms > 0) {
        buf_puts(out, " offset ");
        put_duration(out, offset_ms);
    } else if (offset_ms < 0) {
        buf_puts(out, " offset -");
        put_duration(out, offset_ms == INT64_MIN ? INT64_MAX : -offset_ms);
    }
    return 0;
}

static void put_range_mode(buf *out, promql_range_mode m) {
    if (m == PROMQL_RANGE_ANCHORED)
        buf_puts(out, " anchored");
    else if (m == PROMQL_RANGE_SMOOTHED)
        buf_puts(out, " smoothed");
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* name{matchers} without @ and offset. */
KILN_MUST_CHECK static int put_selector(buf *out, const promql_vector_selector *vs) {
    buf parts = BUF_INIT;
    char **strs = NULL;
    size_t n = 0;
    int rc = 0;
    if (vs->nmatchers > 0) {
        strs = calloc(vs->nmatchers, sizeof *strs);
        size_t *offs = calloc(vs->nmatchers, sizeof *offs);
        if (strs == NULL || offs == NULL) {
            free(offs);
            rc = KILN_ENOMEM;
            goto done;
        }
        for (size_t i = 0; i < vs->nmatchers; i++) {
            const matcher *m = &vs->matchers[i];
            if (vs->name != NULL && m->type == MATCH_EQ && strcmp(m->name, LABEL_NAME) == 0 &&
                strcmp(m->value, vs->name) == 0 && m->value[0] != 0)
                continue;
            offs[n++] = parts.len;
            put_label_name(&parts, m->name);
            buf_puts(&parts, match_type_str(m->type));
            promql_quote(&parts, m->value, strlen(m->value));
            buf_putc(&parts, 0); /* separator; strings are read back below */
        }
        if (buf_error(&parts)) {
            free(offs);
            rc = KILN_ENOMEM;
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            strs[i] = parts.data + offs[i];
        free(offs);
        qsort(strs, n, sizeof *strs, cmp_str);
    }
    if (vs->name != NULL)
        buf_puts(out, vs->name);
    if (n > 0) {
        buf_putc(out, '{');
        for (size_t i = 0; i < n; i++) {
            if (i)
                buf_putc(out, ',');
            buf_puts(out, strs[i]);
        }
        buf_putc(out, '}');
    }
done:
    free(strs);
    buf_free(&parts);
    return rc;
}

/* " by (a, b) " or " without (a) " between an aggregation's name and "(". */
static void put_grouping(buf *out, const promql_aggregate *ag) {
    if (ag->without) {
        buf_puts(out, " without ");
        put_label_list(out, ag->grouping, ag->ngrouping);
        buf_putc(out, ' ');
    } else if (ag->ngrouping > 0) {
        buf_puts(out, " by ");
        put_label_list(out, ag->grouping, ag->ngrouping);
        buf_putc(out, ' ');
    }
}

/* " fill(0)", " fill_left(1) fill_right(2)" */
static void put_fill(buf *out, const promql_binary *b) {
    char d[FMT_DOUBLE_MAX];
    if (b->fill_lhs && b->fill_rhs &&
        (b->fill_lhs_value == b->fill_rhs_value || (isnan(b->fill_lhs_value) && isnan(b->fill_rhs_value)))) {
        fmt_double_g(b->fill_lhs_value, d);
        buf_printf(out, " fill(%s)", d);
        return;
    }
    if (b->fill_lhs) {
        fmt_double_g(b->fill_lhs_value, d);
        buf_printf(out, " fill_left(%s)", d);
    }
    if (b->fill_rhs) {
        fmt_double_g(b->fill_rhs_value, d);
        buf_printf(out, " fill_right(%s)", d);
    }
}

/* What follows a binary operator on its line: " bool", " on (a)",
 * " group_left (b)", " fill(0)" (the same text as put_binary). */
static void put_binary_modifiers(buf *out, const promql_binary *b) {
    if (b->return_bool)
        buf_puts(out, " bool");
    const promql_vector_matching *m = &b->matching;
    int grouped = m->card == PROMQL_CARD_MANY_TO_ONE || m->card == PROMQL_CARD_ONE_TO_MANY;
    if (b->has_matching && (m->nmatching > 0 || m->on || grouped)) {
        buf_puts(out, m->on ? " on " : " ignoring ");
        put_label_list(out, m->matching, m->nmatching);
        if (grouped) {
            buf_puts(out, m->card == PROMQL_CARD_MANY_TO_ONE ? " group_left " : " group_right ");
            put_label_list(out, m->include, m->ninclude);
        }
    }
    put_fill(out, b);
}

/* "[5m:1m] @ 10.000 offset 1m" of a subquery. */
KILN_MUST_CHECK static int put_subquery_suffix(buf *out, const promql_subquery *sq) {
    buf_putc(out, '[');
    int rc = put_dur(out, sq->range_expr, sq->range_ms);
    buf_putc(out, ':');
    if (rc == 0 && (sq->step_ms != 0 || sq->step_expr))
        rc = put_dur(out, sq->step_expr, sq->step_ms);
    buf_putc(out, ']');
    return rc < 0 ? rc : put_at_offset(out, sq->at, sq->at_ms, sq->offset_ms, sq->offset_expr);
}

/* The left operand of ^ is +Inf: it is written "Inf", since "+Inf ^ x"
 * would read back as +(Inf ^ x). */
static int lhs_is_pow_inf(const promql_binary *b) {
    return b->op == PROMQL_OP_POW && b->lhs->kind == PROMQL_NUMBER && isinf(b->lhs->u.number) &&
           b->lhs->u.number > 0;
}

KILN_MUST_CHECK static int put_binary(buf *out, const promql_binary *b) {
    int rc = 0;
    if (lhs_is_pow_inf(b))
        buf_puts(out, "Inf");
    else
        rc = put_expr(out, b->lhs);
    if (rc < 0)
        return rc;
    buf_putc(out, ' ');
    buf_puts(out, promql_binop_str(b->op));
    put_binary_modifiers(out, b);
    buf_putc(out, ' ');
    return put_expr(out, b->rhs);
}

KILN_MUST_CHECK static int put_expr(buf *out, const promql_expr *e) {
    int rc = 0;
    switch (e->kind) {
    case PROMQL_NUMBER: {
        double ms = e->u.number * 1000.0;
        if (e->duration && ms >= 0 && ms < 9e18 && ms == trunc(ms)) {
            put_duration(out, (int64_t)ms);
            break;
        }
        char d[FMT_DOUBLE_MAX];
        fmt_double_g(e->u.number, d);
        buf_puts(out, d);
        break;
    }
    case PROMQL_STRING:
        promql_quote(out, e->u.string.s, e->u.string.len);
        break;
    case PROMQL_VECTOR_SELECTOR:
        rc = put_selector(out, &e->u.vs);
        if (rc == 0)
            rc = put_at_offset(out, e->u.vs.at, e->u.vs.at_ms, e->u.vs.offset_ms, e->u.vs.offset_expr);
        put_range_mode(out, e->u.vs.mode);
        break;
    case PROMQL_MATRIX_SELECTOR: {
        const promql_vector_selector *vs = &e->u.ms.vs->u.vs;
        rc = put_selector(out, vs);
        buf_putc(out, '[');
        if (rc == 0)
            rc = put_dur(out, e->u.ms.range_expr, e->u.ms.range_ms);
        buf_putc(out, ']');
        if (rc == 0)
            rc = put_at_offset(out, vs->at, vs->at_ms, vs->offset_ms, vs->offset_expr);
        put_range_mode(out, vs->mode);
        break;
    }
    case PROMQL_SUBQUERY:
        rc = put_expr(out, e->u.sq.expr);
        if (rc == 0)
            rc = put_subquery_suffix(out, &e->u.sq);
        break;
    case PROMQL_CALL:
        buf_puts(out, e->u.call.func->name);
        buf_putc(out, '(');
        for (size_t i = 0; i < e->u.call.nargs && rc == 0; i++) {
            if (i)
                buf_puts(out, ", ");
            rc = put_expr(out, e->u.call.args[i]);
        }
        buf_putc(out, ')');
        break;
    case PROMQL_AGGREGATE: {
        const promql_aggregate *ag = &e->u.agg;
        buf_puts(out, promql_aggop_str(ag->op));
        put_grouping(out, ag);
        buf_putc(out, '(');
        if (ag->param != NULL) {
            rc = put_expr(out, ag->param);
            buf_puts(out, ", ");
        }
        if (rc == 0)
            rc = put_expr(out, ag->expr);
        buf_putc(out, ')');
        break;
    }
    case PROMQL_BINARY:
        rc = put_binary(out, &e->u.bin);
        break;
    case PROMQL_UNARY:
        buf_puts(out, e->u.unary.op == PROMQL_OP_SUB ? "-" : "+");
        rc = put_expr(out, e->u.unary.expr);
        break;
    case PROMQL_PAREN:
        buf_putc(out, '(');
        rc = put_expr(out, e->u.paren);
        buf_putc(out, ')');
        break;
    }
    return rc;
}

/* The end of promql_format and promql_prettify: rc, or KILN_ENOMEM when an
 * append failed; on error what was appended since `before` is taken back. */
KILN_MUST_CHECK static int finish(buf *out, size_t before, int rc) {
    if (rc == 0)
        rc = buf_error(out);
    if (rc < 0 && out->len > before) {
        out->len = before;
        out->data[before] = 0;
    }
    return rc;
}

int promql_format(buf *out, const promql_expr *e) {
    if (e == NULL)
        return 0;
    size_t before = out->len;
    return finish(out, before, put_expr(out, e));
}

/* ---- prettifying ---------------------------------------------------------- */

static void put_indent(buf *out, int level) {
    for (int i = 0; i < level; i++)
        buf_puts(out, "  ");
}

KILN_MUST_CHECK static int pretty(buf *out, const promql_expr *e, int level);

/* A new line, then `)` at the indentation of the node it closes. */
static void put_close(buf *out, int level) {
    buf_putc(out, '\n');
    put_indent(out, level);
    buf_putc(out, ')');
}

/*
 * Prometheus' Node.Pretty(level): `level` is the indentation the node's
 * first line gets (its parent put it on a new line when level > 0).
 */
KILN_MUST_CHECK static int pretty(buf *out, const promql_expr *e, int level) {
    buf flat = BUF_INIT;
    int rc = put_expr(&flat, e);
    if (rc == 0)
        rc = buf_error(&flat);
    if (rc < 0)
        goto done;
    /* numbers, strings and selectors are never split; a node that fits
     * stays on its line (a subquery without indentation, as Prometheus) */
    int splittable = e->kind == PROMQL_SUBQUERY || e->kind == PROMQL_CALL || e->kind == PROMQL_AGGREGATE ||
                     e->kind == PROMQL_BINARY || e->kind == PROMQL_PAREN;
    if (e->kind != PROMQL_UNARY && (!splittable || flat.len <= PROMQL_PRETTY_MAX_LINE)) {
        if (e->kind != PROMQL_SUBQUERY)
            put_indent(out, level);
        buf_append(out, flat.data, flat.len);
        goto done;
    }
    switch (e->kind) {
    case PROMQL_SUBQUERY:
        rc = pretty(out, e->u.sq.expr, level);
        if (rc == 0)
            rc = put_subquery_suffix(out, &e->u.sq);
        break;
    case PROMQL_CALL:
        put_indent(out, level);
        buf_puts(out, e->u.call.func->name);
        buf_puts(out, "(\n");
        for (size_t i = 0; i < e->u.call.nargs && rc == 0; i++) {
            if (i)
                buf_puts(out, ",\n");
            rc = pretty(out, e->u.call.args[i], level + 1);
        }
        put_close(out, level);
        break;
    case PROMQL_AGGREGATE: {
        const promql_aggregate *ag = &e->u.agg;
        put_indent(out, level);
        buf_puts(out, promql_aggop_str(ag->op));
        put_grouping(out, ag);
        buf_puts(out, "(\n");
        if (ag->param != NULL) {
            rc = pretty(out, ag->param, level + 1);
            buf_puts(out, ",\n");
        }
        if (rc == 0)
            rc = pretty(out, ag->expr, level + 1);
        put_close(out, level);
        break;
    }
    case PROMQL_BINARY: {
        const promql_binary *b = &e->u.bin;
        if (lhs_is_pow_inf(b)) {
            put_indent(out, level + 1);
            buf_puts(out, "Inf");
        } else {
            rc = pretty(out, b->lhs, level + 1);
        }
        buf_putc(out, '\n');
        put_indent(out, level);
        buf_puts(out, promql_binop_str(b->op));
        put_binary_modifiers(out, b);
        buf_putc(out, '\n');
        if (rc == 0)
            rc = pretty(out, b->rhs, level + 1);
        break;
    }
    case PROMQL_PAREN:
        put_indent(out, level);
        buf_puts(out, "(\n");
        rc = pretty(out, e->u.paren, level + 1);
        put_close(out, level);
        break;
    case PROMQL_UNARY: {
        /* the operand as at this level, its leading indentation and
         * trailing space dropped (Prometheus' strings.TrimSpace) */
        buf child = BUF_INIT;
        rc = pretty(&child, e->u.unary.expr, level);
        if (rc == 0)
            rc = buf_error(&child);
        if (rc == 0) {
            size_t from = 0, to = child.len;
            while (from < to && (child.data[from] == ' ' || child.data[from] == '\n'))
                from++;
            while (to > from && (child.data[to - 1] == ' ' || child.data[to - 1] == '\n'))
                to--;
            put_indent(out, level);
            buf_puts(out, e->u.unary.op == PROMQL_OP_SUB ? "-" : "+");
            buf_append(out, child.data + from, to - from);
        }
        buf_free(&child);
        break;
    }
    default: /* handled above */
        break;
    }
done:
    buf_free(&flat);
    return rc;
}

int promql_prettify(buf *out, const promql_expr *e) {
    if (e == NULL)
        return 0;
    size_t before = out->len;
    return finish(out, before, pretty(out, e, 0));
}
