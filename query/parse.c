/*
 * parse.c - the PromQL parser: recursive descent over lex.c's tokens,
 * building the tree of ast.h in an arena, then Prometheus' type checks.
 *
 * Binary operators by precedence climbing, lowest first:
 *     or  <  and unless  <  == != <= < >= >  <  + -  <  * / % atan2  <  ^
 * all left-associative but ^.  A unary sign binds like * (so -2^2 is
 * -(2^2)) and folds into a number literal as Prometheus does.  offset, @
 * and [...] are postfix on any operand, checked for the kinds they allow.
 *
 * Ranges, subquery steps and offsets may be duration expressions
 * (promql-duration-expr, see ast.h), parsed by the dur_* functions into
 * small trees durexpr.c evaluates.  Features off in the parser's set are
 * errors naming their --enable-feature flag (need_feature).
 *
 * Errors follow Prometheus: the first one wins; syntax errors (and the
 * semantic errors Prometheus raises while parsing: offsets, @, ranges,
 * unknown functions, aggregation arguments) stop the parse; the type checks
 * (check.c) run on a complete tree in Prometheus' order (children first).
 * The message is "<line>:<col>: parse error: <what>", col counted in bytes
 * from 1.
 *
 * Called by engine.c (every query), astjson.c (the API's format_query,
 * parse_query and match[] selectors), the PromQL test runner and tests.
 * Threading: a parse uses only its own state; any thread may parse.
 */
#define PROMQL_PARSER_INTERNAL
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "query/ast.h"

typedef struct parser {
    promql_lexer lx;
    promql_token la[2]; /* lookahead tokens */
    int nla;
    promql_ast *ast;
    arena *a;
    int depth;
    size_t last_closing;
    uint32_t features; /* FEATURE_PROMQL_* allowed */
    int failed;
    int code;
    size_t err_pos;
    char err[400];
} parser;

/* Binding powers; 0 = not a binary operator. */
enum { PREC_OR = 1, PREC_AND, PREC_CMP, PREC_ADD, PREC_MUL, PREC_POW };

/* ---- errors ----------------------------------------------------------- */

static void perr(parser *p, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void perr(parser *p, size_t pos, const char *fmt, ...) {
    if (p->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    p->failed = 1;
    p->code = KILN_EINVAL;
    p->err_pos = pos;
}

static void perr_nomem(parser *p) {
    if (p->failed)
        return;
    snprintf(p->err, sizeof p->err, "out of memory");
    p->failed = 1;
    p->code = KILN_ENOMEM;
    p->err_pos = 0;
}

static void fill(parser *p, int want) {
    while (p->nla < want) {
        promql_token *t = &p->la[p->nla++];
        promql_lex_next(&p->lx, t);
        if (t->type == PT_ERROR)
            perr(p, t->pos, "%s", p->lx.err);
    }
}

static promql_token *peek(parser *p) {
    fill(p, 1);
    return &p->la[0];
}

/* The token after the lookahead. */
static promql_token *peek2(parser *p) {
    fill(p, 2);
    return &p->la[1];
}

static promql_token next(parser *p) {
    promql_token t = *peek(p);
    if (t.type != PT_EOF && t.type != PT_ERROR) {
        p->la[0] = p->la[1];
        p->nla--;
    }
    switch (t.type) {
    case PT_RBRACE:
    case PT_RPAREN:
    case PT_RBRACKET:
    case PT_DURATION:
    case PT_NUMBER:
        p->last_closing = t.pos + t.len;
        break;
    default:
        break;
    }
    return t;
}

/* "unexpected <token>[ in <context>][, expected <expected>]" at the
 * lookahead; a lexer error is already recorded and wins. */
static void unexpected(parser *p, const char *context, const char *expected) {
    promql_token *t = peek(p);
    if (t->type == PT_ERROR || p->failed)
        return;
    buf m = BUF_INIT;
    buf_puts(&m, "unexpected ");
    promql_tok_desc(&p->lx, t, &m);
    if (context && *context)
        buf_printf(&m, " in %s", context);
    if (expected && *expected)
        buf_printf(&m, ", expected %s", expected);
    if (buf_error(&m))
        perr_nomem(p);
    else
        perr(p, t->pos, "%s", m.data);
    buf_free(&m);
}

/* An error unless `feature` is on: "<what> is experimental and must be
 * enabled with --enable-feature=<name>"; 0 or -1. */
static int need_feature(parser *p, size_t pos, uint32_t feature, const char *what) {
    if (p->features & feature)
        return 0;
    perr(p, pos, "%s is experimental and must be enabled with --enable-feature=%s", what,
         feature_name(feature));
    return -1;
}

/* ---- allocation ---------------------------------------------------------- */

static promql_expr *node(parser *p, promql_node_kind kind, size_t start, size_t end) {
    promql_expr *e = arena_alloc(p->a, sizeof *e);
    if (e == NULL) {
        perr_nomem(p);
        return NULL;
    }
    e->kind = kind;
    e->start = start;
    e->end = end;
    return e;
}

static char *tok_str(parser *p, const promql_token *t) {
    char *s = arena_strndup(p->a, p->lx.in + t->pos, t->len);
    if (s == NULL)
        perr_nomem(p);
    return s;
}

/*
 * array_grow for the arrays the tree keeps (label and argument lists),
 * which live in the arena: makes room for one more element after v[0..n)
 * (*v moves to a new arena block when *cap, doubled from 4, is reached);
 * 0, or -1 with the error recorded.
 */
static int arena_grow(parser *p, void **v, size_t n, size_t *cap, size_t size) {
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 4;
    void *nv = arena_alloc(p->a, nc * size);
    if (nv == NULL) {
        perr_nomem(p);
        return -1;
    }
    if (n)
        memcpy(nv, *v, n * size);
    *v = nv;
    *cap = nc;
    return 0;
}

/* Label lists and argument lists (grown with arena_grow). */
typedef struct strlist {
    char **v;
    size_t n, cap;
} strlist;

typedef struct exprlist {
    promql_expr **v;
    size_t n, cap;
} exprlist;

/* Hands a selector's matchers to the ast, which frees them with it; 0 or
 * KILN_ENOMEM (the matchers are then still the caller's). */
KILN_MUST_CHECK static int ast_track_matchers(promql_ast *a, matcher *m, size_t n) {
    if (array_grow((void **)&a->sels, &a->capsel, a->nsel + 1, sizeof *a->sels) < 0)
        return KILN_ENOMEM;
    a->sels[a->nsel++] = (promql_matchers){m, n};
    return 0;
}

/* ---- literals --------------------------------------------------------------- */

static int number_token(parser *p, const promql_token *t, double *out) {
    int rc = promql_parse_number(p->lx.in + t->pos, t->len, out);
    if (rc == 0)
        return 0;
    perr(p, t->pos, "error parsing number: strconv.ParseFloat: parsing \"%.*s\": %s", (int)t->len,
         p->lx.in + t->pos, rc == -2 ? "value out of range" : "invalid syntax");
    return -1;
}

/* A duration token or (as in Prometheus 3) a number of seconds; > 0. */
static int duration_token(parser *p, const promql_token *t, int64_t *ms) {
    if (t->type == PT_NUMBER) {
        double v;
        if (number_token(p, t, &v) < 0)
            return -1;
        double m = v * 1000.0;
        if (!(m >= 0.5) || m > 9.2e18 || isnan(m)) {
            if (isnan(m) || m < 0.5)
                perr(p, t->pos, "duration must be greater than 0");
            else
                perr(p, t->pos, "duration out of range");
            return -1;
        }
        *ms = (int64_t)llround(m);
        return 0;
    }
    char tmp[64];
    if (t->len >= sizeof tmp) {
        perr(p, t->pos, "not a valid duration string: \"%.*s\"", (int)t->len, p->lx.in + t->pos);
        return -1;
    }
    memcpy(tmp, p->lx.in + t->pos, t->len);
    tmp[t->len] = 0;
    if (duration_parse(tmp, ms, NULL) < 0) {
        perr(p, t->pos, "not a valid duration string: \"%s\"", tmp);
        return -1;
    }
    if (*ms == 0) {
        perr(p, t->pos, "duration must be greater than 0");
        return -1;
    }
    return 0;
}

/* ---- grammar ------------------------------------------------------------------ */

static promql_expr *parse_expr(parser *p, int min_prec);
static int deeper(parser *p);

static int tok_is_aggr(promql_tok t) {
    return t >= PT_SUM && t <= PT_LIMIT_RATIO;
}

/* Tokens that may name a metric outside braces (Prometheus' metric_identifier). */
static int tok_is_metric_name(promql_tok t) {
    switch (t) {
    case PT_IDENT:
    case PT_METRIC_IDENT:
    case PT_AND:
    case PT_OR:
    case PT_UNLESS:
    case PT_OFFSET:
    case PT_BY:
    case PT_WITHOUT:
    case PT_START:
    case PT_END:
        return 1;
    default:
        return tok_is_aggr(t);
    }
}

/* Tokens that may be a label in grouping lists (Prometheus' maybe_label). */
static int tok_is_label(promql_tok t) {
    if (tok_is_metric_name(t))
        return 1;
    switch (t) {
    case PT_ON:
    case PT_IGNORING:
    case PT_GROUP_LEFT:
    case PT_GROUP_RIGHT:
    case PT_BOOL:
    case PT_ATAN2:
        return 1;
    default:
        return 0;
    }
}

/* ( label, ... ) in by/without/on/ignoring/group_x. */
static int parse_grouping(parser *p, strlist *out) {
    if (peek(p)->type != PT_LPAREN) {
        unexpected(p, "grouping opts", "\"(\"");
        return -1;
    }
    next(p);
    for (;;) {
        promql_token *t = peek(p);
        if (t->type == PT_RPAREN) {
            next(p);
            return 0;
        }
        char *name = NULL;
        if (t->type == PT_STRING) {
            size_t n;
            name = promql_unquote(p->a, p->lx.in + t->pos, t->len, &n);
            if (name == NULL) {
                perr_nomem(p);
                return -1;
            }
            if (n == 0 || !utf8_valid(name, n) || strlen(name) != n) {
                perr(p, t->pos, "invalid label name for grouping: \"%.*s\"", (int)t->len, p->lx.in + t->pos);
                return -1;
            }
        } else if (tok_is_label(t->type)) {
            name = tok_str(p, t);
            if (name == NULL)
                return -1;
            if (!label_name_valid(name, strlen(name))) {
                perr(p, t->pos, "invalid label name for grouping: \"%s\"", name);
                return -1;
            }
        } else {
            unexpected(p, "grouping opts", "label");
            return -1;
        }
        next(p);
        if (arena_grow(p, (void **)&out->v, out->n, &out->cap, sizeof *out->v) < 0)
            return -1;
        out->v[out->n++] = name;
        t = peek(p);
        if (t->type == PT_COMMA) {
            next(p);
        } else if (t->type != PT_RPAREN) {
            unexpected(p, "grouping opts", "\",\" or \")\"");
            return -1;
        }
    }
}

static void free_matchers(matcher *m, size_t n) {
    for (size_t i = 0; i < n; i++)
        matcher_free(&m[i]);
    free(m);
}

/* { matcher, ... } plus the name matcher; fills vs. */
static int parse_selector(parser *p, promql_expr *e, const char *name) {
    promql_vector_selector *vs = &e->u.vs;
    matcher *tmp = NULL;
    size_t n = 0, cap = 0;
    if (peek(p)->type == PT_LBRACE) {
        next(p);
        for (;;) {
            promql_token t = *peek(p);
            if (t.type == PT_RBRACE) {
                next(p);
                break;
            }
            char *lname;
            if (t.type == PT_IDENT) {
                lname = tok_str(p, &t);
            } else if (t.type == PT_STRING) {
                size_t ln;
                lname = promql_unquote(p->a, p->lx.in + t.pos, t.len, &ln);
                if (lname == NULL)
                    perr_nomem(p);
            } else {
                unexpected(p, "label matching", "identifier or \"}\"");
                goto fail;
            }
            if (lname == NULL)
                goto fail;
            next(p);
            match_type mt;
            const char *value;
            promql_token vt;
            size_t name_pos = t.pos;
            switch (peek(p)->type) {
            case PT_EQL:
                mt = MATCH_EQ;
                break;
            case PT_NEQ:
                mt = MATCH_NEQ;
                break;
            case PT_EQL_REGEX:
                mt = MATCH_RE;
                break;
            case PT_NEQ_REGEX:
                mt = MATCH_NRE;
                break;
            case PT_COMMA:
            case PT_RBRACE:
                if (t.type == PT_STRING) {
                    /* {"my.metric"}: a bare quoted name matches __name__. */
                    mt = MATCH_EQ;
                    value = lname;
                    lname = LABEL_NAME;
                    vt = t;
                    goto add;
                }
                /* fallthrough */
            default:
                unexpected(p, "label matching", "label matching operator");
                goto fail;
            }
            next(p);
            vt = *peek(p);
            if (vt.type != PT_STRING) {
                unexpected(p, "label matching", "string");
                goto fail;
            }
            {
                size_t vn;
                char *v = promql_unquote(p->a, p->lx.in + vt.pos, vt.len, &vn);
                if (v == NULL) {
                    perr_nomem(p);
                    goto fail;
                }
                value = v;
            }
            next(p);
        add:
            if (array_grow((void **)&tmp, &cap, n + 1, sizeof *tmp) < 0) {
                perr_nomem(p);
                goto fail;
            }
            {
                kiln_err merr = {0};
                int rc = matcher_init(&tmp[n], mt, lname, value, &merr);
                if (rc == KILN_ENOMEM) {
                    perr_nomem(p);
                    goto fail;
                }
                if (rc < 0) {
                    perr(p, name_pos, "%s", merr.msg);
                    goto fail;
                }
                n++;
            }
            promql_token *sep = peek(p);
            if (sep->type == PT_COMMA) {
                next(p);
            } else if (sep->type != PT_RBRACE) {
                unexpected(p, "label matching", "\",\" or \"}\"");
                goto fail;
            }
        }
        e->end = p->last_closing;
    }
    if (name != NULL) {
        if (array_grow((void **)&tmp, &cap, n + 1, sizeof *tmp) < 0) {
            perr_nomem(p);
            goto fail;
        }
        kiln_err merr = {0};
        if (matcher_init(&tmp[n], MATCH_EQ, LABEL_NAME, name, &merr) < 0) {
            perr_nomem(p);
            goto fail;
        }
        n++;
    }
    if (ast_track_matchers(p->ast, tmp, n) < 0) {
        perr_nomem(p);
        goto fail;
    }
    vs->name = name;
    vs->matchers = tmp;
    vs->nmatchers = n;
    return 0;
fail:
    free_matchers(tmp, n);
    return -1;
}

/* ( args ) of a function call or aggregation; `context` names the error
 * context Prometheus uses ("aggregation" or none). */
static int parse_call_body(parser *p, exprlist *args, const char *context) {
    if (peek(p)->type != PT_LPAREN) {
        unexpected(p, context, "\"(\"");
        return -1;
    }
    next(p);
    if (peek(p)->type == PT_RPAREN) {
        next(p);
        return 0;
    }
    for (;;) {
        promql_expr *a = parse_expr(p, 0);
        if (a == NULL)
            return -1;
        if (arena_grow(p, (void **)&args->v, args->n, &args->cap, sizeof *args->v) < 0)
            return -1;
        args->v[args->n++] = a;
        promql_token t = *peek(p);
        if (t.type == PT_RPAREN) {
            next(p);
            return 0;
        }
        if (t.type != PT_COMMA) {
            unexpected(p, context, NULL);
            return -1;
        }
        next(p);
        if (peek(p)->type == PT_RPAREN) {
            perr(p, t.pos, "trailing commas not allowed in function call args");
            return -1;
        }
    }
}

static promql_expr *parse_aggregate(parser *p) {
    promql_token op = next(p);
    promql_expr *e = node(p, PROMQL_AGGREGATE, op.pos, op.pos + op.len);
    if (e == NULL)
        return NULL;
    promql_aggregate *ag = &e->u.agg;
    ag->op = (promql_aggop)(op.type - PT_SUM);
    strlist g = {0};
    exprlist args = {0};
    int have_mod = 0;
    promql_tok t = peek(p)->type;
    if (t == PT_BY || t == PT_WITHOUT) {
        next(p);
        ag->without = t == PT_WITHOUT;
        have_mod = 1;
        if (parse_grouping(p, &g) < 0)
            return NULL;
    }
    if (parse_call_body(p, &args, "aggregation") < 0)
        return NULL;
    if (!have_mod) {
        t = peek(p)->type;
        if (t == PT_BY || t == PT_WITHOUT) {
            next(p);
            ag->without = t == PT_WITHOUT;
            if (parse_grouping(p, &g) < 0)
                return NULL;
        }
    }
    e->end = p->last_closing;
    ag->grouping = g.v;
    ag->ngrouping = g.n;
    if (args.n == 0) {
        perr(p, e->start, "no arguments for aggregate expression provided");
        return NULL;
    }
    size_t want = promql_aggop_has_param(ag->op) ? 2 : 1;
    if (args.n != want) {
        perr(p, e->start,
             "wrong number of arguments for aggregate expression provided, expected %zu, got %zu", want,
             args.n);
        return NULL;
    }
    if ((ag->op == PROMQL_AGG_LIMITK || ag->op == PROMQL_AGG_LIMIT_RATIO) &&
        need_feature(p, e->start, FEATURE_PROMQL_EXPERIMENTAL_FUNCTIONS, "limitk() and limit_ratio()") < 0)
        return NULL;
    if (want == 2)
        ag->param = args.v[0];
    ag->expr = args.v[want - 1];
    return e;
}

static promql_expr *parse_call(parser *p) {
    promql_token id = next(p);
    char *name = tok_str(p, &id);
    if (name == NULL)
        return NULL;
    const promql_func *f = promql_func_lookup(name);
    if (f == NULL) {
        perr(p, id.pos, "unknown function with name \"%s\"", name);
        return NULL;
    }
    if (f->experimental && !(p->features & FEATURE_PROMQL_EXPERIMENTAL_FUNCTIONS)) {
        perr(
            p, id.pos,
            "function \"%s\" is not enabled; it is experimental and must be enabled with --enable-feature=%s",
            name, feature_name(FEATURE_PROMQL_EXPERIMENTAL_FUNCTIONS));
        return NULL;
    }
    promql_expr *e = node(p, PROMQL_CALL, id.pos, id.pos + id.len);
    if (e == NULL)
        return NULL;
    exprlist args = {0};
    if (parse_call_body(p, &args, NULL) < 0)
        return NULL;
    e->end = p->last_closing;
    e->u.call.func = f;
    e->u.call.args = args.v;
    e->u.call.nargs = args.n;
    return e;
}

static promql_expr *parse_primary(parser *p) {
    promql_token t = *peek(p);
    promql_tok after;
    switch (t.type) {
    case PT_NUMBER: {
        next(p);
        promql_expr *e = node(p, PROMQL_NUMBER, t.pos, t.pos + t.len);
        if (e == NULL || number_token(p, &t, &e->u.number) < 0)
            return NULL;
        return e;
    }
    case PT_DURATION: {
        /* a duration where a number goes is its number of seconds (Prometheus 3) */
        next(p);
        promql_expr *e = node(p, PROMQL_NUMBER, t.pos, t.pos + t.len);
        int64_t ms;
        if (e == NULL || duration_token(p, &t, &ms) < 0)
            return NULL;
        e->u.number = (double)ms / 1000.0;
        return e;
    }
    case PT_STRING: {
        next(p);
        promql_expr *e = node(p, PROMQL_STRING, t.pos, t.pos + t.len);
        if (e == NULL)
            return NULL;
        e->u.string.s = promql_unquote(p->a, p->lx.in + t.pos, t.len, &e->u.string.len);
        if (e->u.string.s == NULL) {
            perr_nomem(p);
            return NULL;
        }
        return e;
    }
    case PT_LPAREN: {
        next(p);
        promql_expr *e = node(p, PROMQL_PAREN, t.pos, t.pos + 1);
        if (e == NULL)
            return NULL;
        e->u.paren = parse_expr(p, 0);
        if (e->u.paren == NULL)
            return NULL;
        if (peek(p)->type != PT_RPAREN) {
            unexpected(p, NULL, NULL);
            return NULL;
        }
        next(p);
        e->end = p->last_closing;
        return e;
    }
    case PT_LBRACE: {
        promql_expr *e = node(p, PROMQL_VECTOR_SELECTOR, t.pos, t.pos + 1);
        if (e == NULL || parse_selector(p, e, NULL) < 0)
            return NULL;
        return e;
    }
    default:
        break;
    }
    if (!tok_is_metric_name(t.type)) {
        unexpected(p, NULL, NULL);
        return NULL;
    }
    after = peek2(p)->type;
    if (p->failed)
        return NULL;
    if (tok_is_aggr(t.type) && (after == PT_LPAREN || after == PT_BY || after == PT_WITHOUT))
        return parse_aggregate(p);
    if ((t.type == PT_IDENT || t.type == PT_START || t.type == PT_END) && after == PT_LPAREN)
        return parse_call(p);
    next(p);
    promql_expr *e = node(p, PROMQL_VECTOR_SELECTOR, t.pos, t.pos + t.len);
    if (e == NULL)
        return NULL;
    char *name = tok_str(p, &t);
    if (name == NULL || parse_selector(p, e, name) < 0)
        return NULL;
    return e;
}

/* ---- postfix: [range], [range:step], offset, @ ---------------------------- */

static int is_selector_like(const promql_expr *e) {
    return e->kind == PROMQL_VECTOR_SELECTOR || e->kind == PROMQL_MATRIX_SELECTOR ||
           e->kind == PROMQL_SUBQUERY;
}

/* Where offset and @ of e live; NULL when e cannot carry them. */
static void modifier_slots(promql_expr *e, int64_t **offset, promql_at_kind **at, int64_t **at_ms) {
    promql_expr *t = e;
    if (e->kind == PROMQL_MATRIX_SELECTOR)
        t = e->u.ms.vs;
    if (t->kind == PROMQL_VECTOR_SELECTOR) {
        *offset = &t->u.vs.offset_ms;
        *at = &t->u.vs.at;
        *at_ms = &t->u.vs.at_ms;
    } else if (t->kind == PROMQL_SUBQUERY) {
        *offset = &t->u.sq.offset_ms;
        *at = &t->u.sq.at;
        *at_ms = &t->u.sq.at_ms;
    } else {
        *offset = NULL;
        *at = NULL;
        *at_ms = NULL;
    }
}

/* Where the offset expression of e (which modifier_target accepted) lives. */
static promql_expr **modifier_offset_expr(promql_expr *e) {
    if (e->kind == PROMQL_MATRIX_SELECTOR)
        e = e->u.ms.vs;
    return e->kind == PROMQL_SUBQUERY ? &e->u.sq.offset_expr : &e->u.vs.offset_expr;
}

/* modifier_slots for the `what` modifier ("offset" or "@") written after e:
 * 0, or -1 with the error when e cannot carry it. */
static int modifier_target(parser *p, promql_expr *e, const char *what, int64_t **offset, promql_at_kind **at,
                           int64_t **at_ms) {
    modifier_slots(e, offset, at, at_ms);
    if (*offset != NULL && is_selector_like(e))
        return 0;
    perr(p, e->start,
         "%s modifier must be preceded by an instant vector selector or range vector selector or a subquery",
         what);
    return -1;
}

/* ---- duration expressions (promql-duration-expr, see ast.h) ---------------- */

static promql_expr *dur_expr(parser *p, int min_prec);
static int parse_bin_matching(parser *p, promql_binary *b);
static int binop_of(promql_tok t, promql_binop *op, int *prec);

/* A number or duration literal token as a PROMQL_NUMBER of seconds. */
static promql_expr *dur_literal(parser *p, promql_token t) {
    promql_expr *e = node(p, PROMQL_NUMBER, t.pos, t.pos + t.len);
    if (e == NULL)
        return NULL;
    if (t.type == PT_NUMBER)
        return number_token(p, &t, &e->u.number) < 0 ? NULL : e;
    char tmp[64];
    int64_t ms;
    if (t.len >= sizeof tmp) {
        perr(p, t.pos, "not a valid duration string: \"%.*s\"", (int)t.len, p->lx.in + t.pos);
        return NULL;
    }
    memcpy(tmp, p->lx.in + t.pos, t.len);
    tmp[t.len] = 0;
    if (duration_parse(tmp, &ms, NULL) < 0) {
        perr(p, t.pos, "not a valid duration string: \"%s\"", tmp);
        return NULL;
    }
    e->u.number = (double)ms / 1000.0;
    e->duration = 1;
    return e;
}

/* The ")" closing e, which then ends there; e, or NULL on error. */
static promql_expr *dur_close(parser *p, promql_expr *e) {
    if (peek(p)->type != PT_RPAREN) {
        unexpected(p, "duration expression", "\")\"");
        return NULL;
    }
    next(p);
    e->end = p->last_closing;
    return e;
}

/* step() range() min_of(d, d) max_of(d, d) inside a duration expression. */
static promql_expr *dur_call(parser *p) {
    promql_token id = next(p);
    char *name = tok_str(p, &id);
    const promql_func *f = name ? promql_func_lookup(name) : NULL;
    if (f == NULL || (f->id != PROMQL_FN_STEP && f->id != PROMQL_FN_RANGE && f->id != PROMQL_FN_MIN_OF &&
                      f->id != PROMQL_FN_MAX_OF)) {
        if (name)
            perr(p, id.pos, "unexpected function \"%s\" in duration expression", name);
        return NULL;
    }
    promql_expr *e = node(p, PROMQL_CALL, id.pos, id.pos + id.len);
    if (e == NULL)
        return NULL;
    e->u.call.func = f;
    if (peek(p)->type != PT_LPAREN) {
        unexpected(p, "duration expression", "\"(\"");
        return NULL;
    }
    next(p);
    int want = f->id == PROMQL_FN_MIN_OF || f->id == PROMQL_FN_MAX_OF ? 2 : 0;
    if (want) {
        e->u.call.args = arena_alloc(p->a, 2 * sizeof *e->u.call.args);
        if (e->u.call.args == NULL) {
            perr_nomem(p);
            return NULL;
        }
        for (int i = 0; i < 2; i++) {
            if ((e->u.call.args[i] = dur_expr(p, 0)) == NULL)
                return NULL;
            if (peek(p)->type != (i == 0 ? PT_COMMA : PT_RPAREN)) {
                unexpected(p, "duration expression", i == 0 ? "\",\"" : "\")\"");
                return NULL;
            }
            if (i == 0)
                next(p);
        }
        e->u.call.nargs = 2;
    }
    return dur_close(p, e);
}

/* A literal, a parenthesised duration expression, a signed operand or a
 * duration function call. */
static promql_expr *dur_operand(parser *p) {
    promql_token t = *peek(p);
    if (deeper(p) < 0)
        return NULL;
    switch (t.type) {
    case PT_NUMBER:
    case PT_DURATION:
        next(p);
        return dur_literal(p, t);
    case PT_ADD:
    case PT_SUB: {
        next(p);
        promql_expr *inner = dur_expr(p, PREC_POW);
        promql_expr *u = inner ? node(p, PROMQL_UNARY, t.pos, inner->end) : NULL;
        if (u == NULL)
            return NULL;
        u->u.unary.op = t.type == PT_SUB ? PROMQL_OP_SUB : PROMQL_OP_ADD;
        u->u.unary.expr = inner;
        return u;
    }
    case PT_LPAREN: {
        next(p);
        promql_expr *e = node(p, PROMQL_PAREN, t.pos, t.pos + 1);
        if (e == NULL || (e->u.paren = dur_expr(p, 0)) == NULL)
            return NULL;
        return dur_close(p, e);
    }
    case PT_IDENT:
        return dur_call(p);
    default:
        unexpected(p, "duration expression", NULL);
        return NULL;
    }
}

/* Takes the operator token at the lookahead and starts a binary node of op
 * with lhs (the caller parses the right side); NULL on error. */
static promql_expr *binary_node(parser *p, promql_expr *lhs, promql_binop op) {
    if (deeper(p) < 0)
        return NULL;
    next(p);
    promql_expr *b = node(p, PROMQL_BINARY, lhs->start, lhs->end);
    if (b == NULL)
        return NULL;
    b->u.bin.op = op;
    b->u.bin.lhs = lhs;
    return b;
}

/* The binary operators of duration expressions, after lhs. */
static promql_expr *dur_continue(parser *p, promql_expr *lhs, int min_prec) {
    while (lhs != NULL) {
        promql_binop op;
        int prec;
        promql_tok t = peek(p)->type;
        if (t != PT_ADD && t != PT_SUB && t != PT_MUL && t != PT_DIV && t != PT_MOD && t != PT_POW)
            break;
        if (!binop_of(t, &op, &prec) || prec < min_prec)
            break;
        promql_expr *b = binary_node(p, lhs, op);
        if (b == NULL)
            return NULL;
        if ((b->u.bin.rhs = dur_expr(p, op == PROMQL_OP_POW ? prec : prec + 1)) == NULL)
            return NULL;
        b->end = b->u.bin.rhs->end;
        lhs = b;
    }
    return p->failed ? NULL : lhs;
}

static promql_expr *dur_expr(parser *p, int min_prec) {
    int depth0 = p->depth;
    promql_expr *e = dur_continue(p, dur_operand(p), min_prec);
    p->depth = depth0;
    return e;
}

/*
 * A duration inside brackets: a literal alone before `]` or `:` goes into
 * *ms as before (duration_token's checks; *dexpr NULL); anything else is a
 * duration expression (the feature must be on) into *dexpr; the caller
 * resolves it (resolve_static).
 */
static int parse_bracket_duration(parser *p, int64_t *ms, promql_expr **dexpr) {
    *dexpr = NULL;
    promql_token t = *peek(p);
    promql_expr *lhs = NULL;
    if (t.type == PT_DURATION || t.type == PT_NUMBER) {
        next(p);
        promql_tok after = peek(p)->type;
        if (after == PT_RBRACKET || after == PT_COLON || p->failed)
            return duration_token(p, &t, ms);
        if ((lhs = dur_literal(p, t)) == NULL)
            return -1;
    }
    if (need_feature(p, t.pos, FEATURE_PROMQL_DURATION_EXPR, "a duration expression") < 0)
        return -1;
    promql_expr *d = lhs ? dur_continue(p, lhs, 0) : dur_expr(p, 0);
    if (d == NULL)
        return -1;
    *dexpr = d;
    return 0;
}

/* Resolves a duration expression without step()/range() now, so that its
 * errors are parse errors; 0 or -1. */
static int resolve_static(parser *p, promql_expr *d, int positive, int64_t *ms) {
    if (d == NULL || promql_duration_is_dynamic(d))
        return 0;
    double v;
    const char *msg = NULL;
    const promql_expr *at = d;
    if (promql_duration_eval(d, 0, 0, &v, &msg, &at) == 0) {
        double m = trunc(v * 1000.0);
        if (isnan(m) || m >= 9.2e18 || m <= -9.2e18)
            msg = "duration out of range";
        else if (positive && m <= 0)
            msg = "duration must be greater than 0";
        else
            *ms = (int64_t)m;
        at = d;
    }
    if (msg)
        perr(p, at->start, "%s", msg);
    return msg ? -1 : 0;
}

static promql_expr *parse_brackets(parser *p, promql_expr *e) {
    promql_token lb = next(p);
    promql_token t = *peek(p);
    /* a sign first starts a duration expression ([-5m+35m]); without them
     * it is Prometheus' error */
    int sign = (t.type == PT_ADD || t.type == PT_SUB) && (p->features & FEATURE_PROMQL_DURATION_EXPR);
    if (t.type != PT_DURATION && t.type != PT_NUMBER && t.type != PT_LPAREN && t.type != PT_IDENT && !sign) {
        if (t.type != PT_ERROR)
            perr(p, t.pos, "missing unit character in duration");
        return NULL;
    }
    int64_t range = 0;
    promql_expr *range_expr;
    if (parse_bracket_duration(p, &range, &range_expr) < 0 || resolve_static(p, range_expr, 1, &range) < 0)
        return NULL;
    promql_token t2 = *peek(p);
    if (t2.type == PT_RBRACKET) {
        next(p);
        const char *msg = NULL;
        if (e->kind != PROMQL_VECTOR_SELECTOR)
            msg = "ranges only allowed for vector selectors";
        else if (e->u.vs.offset_ms != 0)
            msg = "no offset modifiers allowed before range";
        else if (e->u.vs.at != PROMQL_AT_NONE)
            msg = "no @ modifiers allowed before range";
        if (msg) {
            perr(p, lb.pos, "%s", msg);
            return NULL;
        }
        promql_expr *m = node(p, PROMQL_MATRIX_SELECTOR, e->start, t2.pos + 1);
        if (m == NULL)
            return NULL;
        m->u.ms.vs = e;
        m->u.ms.range_ms = range;
        m->u.ms.range_expr = range_expr;
        return m;
    }
    if (t2.type != PT_COLON) {
        unexpected(p, "subquery or range", "\":\" or \"]\"");
        return NULL;
    }
    next(p);
    int64_t step = 0;
    int have_step = 0;
    promql_expr *step_expr = NULL;
    promql_token t3 = *peek(p);
    if (t3.type == PT_DURATION || t3.type == PT_NUMBER || t3.type == PT_LPAREN || t3.type == PT_IDENT) {
        if (parse_bracket_duration(p, &step, &step_expr) < 0 || resolve_static(p, step_expr, 1, &step) < 0)
            return NULL;
        have_step = 1;
        t3 = *peek(p);
    }
    if (t3.type != PT_RBRACKET) {
        unexpected(p, "subquery selector", have_step ? "\"]\"" : "duration or \"]\"");
        return NULL;
    }
    next(p);
    promql_expr *s = node(p, PROMQL_SUBQUERY, e->start, t3.pos + 1);
    if (s == NULL)
        return NULL;
    s->u.sq.expr = e;
    s->u.sq.range_ms = range;
    s->u.sq.step_ms = step;
    s->u.sq.range_expr = range_expr;
    s->u.sq.step_expr = step_expr;
    return s;
}

static int parse_offset(parser *p, promql_expr *e) {
    next(p);
    int neg = 0;
    if (peek(p)->type == PT_SUB) {
        next(p);
        neg = 1;
    }
    promql_token t = *peek(p);
    int64_t d = 0;
    promql_expr *dexpr = NULL;
    if (t.type == PT_LPAREN || t.type == PT_IDENT) {
        /* offset (1h / 2), offset step(): one operand; a sign before it
         * belongs to it */
        if (need_feature(p, t.pos, FEATURE_PROMQL_DURATION_EXPR, "a duration expression") < 0 ||
            (dexpr = dur_operand(p)) == NULL)
            return -1;
        if (neg) {
            promql_expr *u = node(p, PROMQL_UNARY, t.pos - 1, dexpr->end);
            if (u == NULL)
                return -1;
            u->u.unary.op = PROMQL_OP_SUB;
            u->u.unary.expr = dexpr;
            dexpr = u;
            neg = 0;
        }
        if (resolve_static(p, dexpr, 0, &d) < 0)
            return -1;
    } else if (t.type != PT_DURATION && t.type != PT_NUMBER) {
        unexpected(p, "offset", "duration");
        return -1;
    } else {
        next(p);
        if (duration_token(p, &t, &d) < 0)
            return -1;
    }
    int64_t *off;
    promql_at_kind *at;
    int64_t *at_ms;
    if (modifier_target(p, e, "offset", &off, &at, &at_ms) < 0)
        return -1;
    promql_expr **slot = modifier_offset_expr(e);
    if (*off != 0 || *slot != NULL) {
        perr(p, e->start, "offset may not be set multiple times");
        return -1;
    }
    *off = neg ? -d : d;
    *slot = dexpr;
    e->end = p->last_closing;
    return 0;
}

static int parse_at(parser *p, promql_expr *e) {
    next(p);
    promql_token t = *peek(p);
    promql_at_kind kind = PROMQL_AT_TIMESTAMP;
    double ts = 0;
    if (t.type == PT_START || t.type == PT_END) {
        next(p);
        if (peek(p)->type != PT_LPAREN) {
            unexpected(p, "@", "timestamp");
            return -1;
        }
        next(p);
        if (peek(p)->type != PT_RPAREN) {
            unexpected(p, "@", "timestamp");
            return -1;
        }
        next(p);
        kind = t.type == PT_START ? PROMQL_AT_START : PROMQL_AT_END;
    } else {
        int neg = 0;
        if (t.type == PT_ADD || t.type == PT_SUB) {
            neg = t.type == PT_SUB;
            next(p);
            t = *peek(p);
        }
        if (t.type == PT_DURATION) {
            /* a duration literal is its seconds (Prometheus 3): x @ 100s */
            next(p);
            promql_expr *lit = dur_literal(p, t);
            if (lit == NULL)
                return -1;
            ts = lit->u.number;
        } else if (t.type != PT_NUMBER) {
            unexpected(p, "@", "timestamp");
            return -1;
        } else {
            next(p);
            if (number_token(p, &t, &ts) < 0)
                return -1;
        }
        if (neg)
            ts = -ts;
    }
    int64_t *off;
    promql_at_kind *at;
    int64_t *at_ms;
    if (modifier_target(p, e, "@", &off, &at, &at_ms) < 0)
        return -1;
    if (*at != PROMQL_AT_NONE) {
        perr(p, e->start, "@ <timestamp> may not be set multiple times");
        return -1;
    }
    if (kind == PROMQL_AT_TIMESTAMP) {
        double ms = round(ts * 1000.0);
        if (isnan(ts) || isinf(ts) || ts >= 9223372036854775807.0 || ts <= -9223372036854775808.0 ||
            ms >= 9.2233720368547e18 || ms <= -9.2233720368547e18) {
            if (isnan(ts))
                perr(p, e->start, "timestamp out of bounds for @ modifier: NaN");
            else if (isinf(ts))
                perr(p, e->start, "timestamp out of bounds for @ modifier: %s", ts > 0 ? "+Inf" : "-Inf");
            else
                perr(p, e->start, "timestamp out of bounds for @ modifier: %f", ts);
            return -1;
        }
        *at_ms = (int64_t)ms;
    }
    *at = kind;
    e->end = p->last_closing;
    return 0;
}

/* Whether the lookahead is the word `w`. */
static int word_ahead(parser *p, const char *w) {
    promql_token *t = peek(p);
    return t->type == PT_IDENT && t->len == strlen(w) && !strncmp(p->lx.in + t->pos, w, t->len);
}

/* anchored or smoothed after a selector (promql-extended-range-selectors). */
static int parse_range_mode(parser *p, promql_expr *e) {
    promql_token t = next(p);
    int anchored = t.len == 8 && !strncmp(p->lx.in + t.pos, "anchored", 8);
    const char *what = anchored ? "the anchored modifier" : "the smoothed modifier";
    if (need_feature(p, t.pos, FEATURE_PROMQL_EXTENDED_RANGE_SELECTORS, what) < 0)
        return -1;
    promql_expr *vs = e->kind == PROMQL_MATRIX_SELECTOR ? e->u.ms.vs : e;
    if (vs->kind != PROMQL_VECTOR_SELECTOR) {
        perr(p, t.pos, "%s can only follow an instant or range vector selector, not a %s", what + 4,
             e->kind == PROMQL_SUBQUERY ? "subquery" : "expression");
        return -1;
    }
    if (vs->u.vs.mode != PROMQL_RANGE_PLAIN) {
        perr(p, t.pos, "anchored or smoothed may be set once only");
        return -1;
    }
    vs->u.vs.mode = anchored ? PROMQL_RANGE_ANCHORED : PROMQL_RANGE_SMOOTHED;
    e->end = p->last_closing = t.pos + t.len;
    return 0;
}

static promql_expr *parse_postfix(parser *p, promql_expr *e) {
    for (;;) {
        if (word_ahead(p, "anchored") || word_ahead(p, "smoothed")) {
            if (parse_range_mode(p, e) < 0)
                return NULL;
            continue;
        }
        switch (peek(p)->type) {
        case PT_LBRACKET:
            if (deeper(p) < 0)
                return NULL;
            e = parse_brackets(p, e);
            if (e == NULL)
                return NULL;
            break;
        case PT_OFFSET:
            if (parse_offset(p, e) < 0)
                return NULL;
            break;
        case PT_AT:
            if (parse_at(p, e) < 0)
                return NULL;
            break;
        default:
            return p->failed ? NULL : e;
        }
    }
}

/* ---- operands and binary operators ---------------------------------------- */

static promql_expr *parse_operand(parser *p) {
    promql_token t = *peek(p);
    if (t.type == PT_ADD || t.type == PT_SUB) {
        next(p);
        promql_expr *inner = parse_expr(p, PREC_POW);
        if (inner == NULL)
            return NULL;
        if (inner->kind == PROMQL_NUMBER) {
            if (t.type == PT_SUB)
                inner->u.number = -inner->u.number;
            inner->start = t.pos;
            return inner;
        }
        promql_expr *u = node(p, PROMQL_UNARY, t.pos, inner->end);
        if (u == NULL)
            return NULL;
        u->u.unary.op = t.type == PT_SUB ? PROMQL_OP_SUB : PROMQL_OP_ADD;
        u->u.unary.expr = inner;
        return u;
    }
    promql_expr *e = parse_primary(p);
    if (e == NULL)
        return NULL;
    return parse_postfix(p, e);
}

static int binop_of(promql_tok t, promql_binop *op, int *prec) {
    switch (t) {
    case PT_OR:
        *op = PROMQL_OP_OR, *prec = PREC_OR;
        return 1;
    case PT_AND:
        *op = PROMQL_OP_AND, *prec = PREC_AND;
        return 1;
    case PT_UNLESS:
        *op = PROMQL_OP_UNLESS, *prec = PREC_AND;
        return 1;
    case PT_EQLC:
        *op = PROMQL_OP_EQL, *prec = PREC_CMP;
        return 1;
    case PT_NEQ:
        *op = PROMQL_OP_NEQ, *prec = PREC_CMP;
        return 1;
    case PT_LTE:
        *op = PROMQL_OP_LTE, *prec = PREC_CMP;
        return 1;
    case PT_LSS:
        *op = PROMQL_OP_LSS, *prec = PREC_CMP;
        return 1;
    case PT_GTE:
        *op = PROMQL_OP_GTE, *prec = PREC_CMP;
        return 1;
    case PT_GTR:
        *op = PROMQL_OP_GTR, *prec = PREC_CMP;
        return 1;
    case PT_ADD:
        *op = PROMQL_OP_ADD, *prec = PREC_ADD;
        return 1;
    case PT_SUB:
        *op = PROMQL_OP_SUB, *prec = PREC_ADD;
        return 1;
    case PT_MUL:
        *op = PROMQL_OP_MUL, *prec = PREC_MUL;
        return 1;
    case PT_DIV:
        *op = PROMQL_OP_DIV, *prec = PREC_MUL;
        return 1;
    case PT_MOD:
        *op = PROMQL_OP_MOD, *prec = PREC_MUL;
        return 1;
    case PT_ATAN2:
        *op = PROMQL_OP_ATAN2, *prec = PREC_MUL;
        return 1;
    case PT_TRIM_UPPER:
        *op = PROMQL_OP_TRIM_UPPER, *prec = PREC_MUL;
        return 1;
    case PT_TRIM_LOWER:
        *op = PROMQL_OP_TRIM_LOWER, *prec = PREC_MUL;
        return 1;
    case PT_POW:
        *op = PROMQL_OP_POW, *prec = PREC_POW;
        return 1;
    default:
        return 0;
    }
}

/* Whether the lookahead starts a fill modifier: fill, fill_left or
 * fill_right followed by "(". */
static int fill_ahead(parser *p) {
    promql_token *t = peek(p);
    if (t->type != PT_IDENT || peek2(p)->type != PT_LPAREN)
        return 0;
    const char *w = p->lx.in + t->pos;
    return (t->len == 4 && !strncmp(w, "fill", 4)) || (t->len == 9 && !strncmp(w, "fill_left", 9)) ||
           (t->len == 10 && !strncmp(w, "fill_right", 10));
}

/* fill(v) | fill_left(v) [fill_right(v)] | fill_right(v) [fill_left(v)],
 * v a number literal with an optional sign. */
static int parse_fill(parser *p, promql_binary *b) {
    int seen_left = 0, seen_right = 0;
    while (fill_ahead(p)) {
        promql_token id = next(p);
        if (need_feature(p, id.pos, FEATURE_PROMQL_BINOP_FILL_MODIFIERS, "the fill modifier") < 0)
            return -1;
        int left = id.len != 10, right = id.len != 9; /* fill: both */
        if ((left && seen_left) || (right && seen_right) || (id.len == 4 && (seen_left || seen_right))) {
            perr(p, id.pos, "fill modifier set multiple times");
            return -1;
        }
        next(p); /* ( */
        int neg = 0;
        if (peek(p)->type == PT_ADD || peek(p)->type == PT_SUB)
            neg = next(p).type == PT_SUB;
        promql_token t = *peek(p);
        double v;
        if (t.type != PT_NUMBER) {
            unexpected(p, "fill modifier", "number literal");
            return -1;
        }
        next(p);
        if (number_token(p, &t, &v) < 0)
            return -1;
        if (peek(p)->type != PT_RPAREN) {
            unexpected(p, "fill modifier", "\")\"");
            return -1;
        }
        next(p);
        if (neg)
            v = -v;
        if (left)
            b->fill_lhs = seen_left = 1, b->fill_lhs_value = v;
        if (right)
            b->fill_rhs = seen_right = 1, b->fill_rhs_value = v;
    }
    return p->failed ? -1 : 0;
}

/* bool, on/ignoring (...), group_left/group_right [(...)], then fill
 * modifiers, after an operator. */
static int parse_bin_modifiers(parser *p, promql_binary *b) {
    if (parse_bin_matching(p, b) < 0)
        return -1;
    return parse_fill(p, b);
}

/* bool, on/ignoring (...), group_left/group_right [(...)]. */
static int parse_bin_matching(parser *p, promql_binary *b) {
    if (peek(p)->type == PT_BOOL) {
        next(p);
        b->return_bool = 1;
    }
    promql_tok t = peek(p)->type;
    if (t != PT_ON && t != PT_IGNORING)
        return p->failed ? -1 : 0;
    next(p);
    b->matching.on = t == PT_ON;
    strlist ml = {0};
    if (parse_grouping(p, &ml) < 0)
        return -1;
    b->matching.matching = ml.v;
    b->matching.nmatching = ml.n;
    t = peek(p)->type;
    if (t != PT_GROUP_LEFT && t != PT_GROUP_RIGHT)
        return p->failed ? -1 : 0;
    next(p);
    b->matching.card = t == PT_GROUP_LEFT ? PROMQL_CARD_MANY_TO_ONE : PROMQL_CARD_ONE_TO_MANY;
    if (peek(p)->type == PT_LPAREN) {
        strlist il = {0};
        if (parse_grouping(p, &il) < 0)
            return -1;
        b->matching.include = il.v;
        b->matching.ninclude = il.n;
    }
    return p->failed ? -1 : 0;
}

/* Counts one more level of tree height; an error past the bound.  Every
 * node is created at a depth >= its height, so printing, checking and
 * evaluating recursively stay within PROMQL_MAX_DEPTH frames. */
static int deeper(parser *p) {
    if (++p->depth > PROMQL_MAX_DEPTH) {
        perr(p, peek(p)->pos, "expression nesting too deep (more than %d levels)", PROMQL_MAX_DEPTH);
        return -1;
    }
    return 0;
}

static promql_expr *parse_expr(parser *p, int min_prec) {
    int depth0 = p->depth;
    if (deeper(p) < 0)
        return NULL;
    promql_expr *lhs = parse_operand(p);
    while (lhs != NULL) {
        promql_binop op;
        int prec;
        if (!binop_of(peek(p)->type, &op, &prec) || prec < min_prec)
            break;
        promql_expr *b = binary_node(p, lhs, op);
        if (b == NULL)
            return NULL;
        if (parse_bin_modifiers(p, &b->u.bin) < 0)
            return NULL;
        /* ^ is right-associative: its right side may hold another ^. */
        promql_expr *rhs = parse_expr(p, op == PROMQL_OP_POW ? prec : prec + 1);
        if (rhs == NULL)
            return NULL;
        b->u.bin.rhs = rhs;
        b->end = rhs->end;
        lhs = b;
    }
    p->depth = depth0;
    return p->failed ? NULL : lhs;
}

/* ---- entry points ---------------------------------------------------------- */

void promql_ast_free(promql_ast *a) {
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nsel; i++)
        free_matchers(a->sels[i].v, a->sels[i].n);
    free(a->sels);
    arena_free(&a->mem);
    free(a->query);
    free(a);
}

int promql_parse(const char *query, promql_ast **out, kiln_err *err) {
    return promql_parse_features(query, FEATURE_PROMQL_ALL, out, err);
}

int promql_parse_features(const char *query, uint32_t features, promql_ast **out, kiln_err *err) {
    *out = NULL;
    size_t len = strlen(query);
    if (len > PROMQL_MAX_QUERY_LEN)
        return kiln_err_set(err, KILN_ELIMIT, "query too long: %zu bytes (max %d)", len,
                            PROMQL_MAX_QUERY_LEN);
    promql_ast *a = calloc(1, sizeof *a);
    parser *p = calloc(1, sizeof *p);
    if (a == NULL || p == NULL)
        goto nomem;
    arena_init(&a->mem, 0);
    a->query = strdup(query);
    if (a->query == NULL)
        goto nomem;
    p->ast = a;
    p->a = &a->mem;
    p->features = features;
    promql_lex_init(&p->lx, a->query, len);

    promql_expr *root = NULL;
    if (peek(p)->type == PT_EOF)
        perr(p, 0, "no expression found in input");
    else
        root = parse_expr(p, 0);
    if (root != NULL && !p->failed && peek(p)->type != PT_EOF)
        unexpected(p, NULL, NULL);
    if (!p->failed && promql_check(root, p->lx.in, p->lx.len, &p->err_pos, p->err, sizeof p->err) < 0) {
        p->failed = 1;
        p->code = KILN_EINVAL;
    }
    if (p->failed) {
        int code = p->code;
        if (code == KILN_ENOMEM) {
            kiln_err_set(err, code, "out of memory parsing the query");
        } else {
            size_t line = 1, last_nl = 0;
            int have_nl = 0;
            for (size_t i = 0; i < p->err_pos && i < len; i++)
                if (query[i] == '\n')
                    line++, last_nl = i, have_nl = 1;
            size_t col = have_nl ? p->err_pos - last_nl : p->err_pos + 1;
            kiln_err_set(err, code, "%zu:%zu: parse error: %s", line, col, p->err);
        }
        free(p);
        promql_ast_free(a);
        return code;
    }
    a->root = root;
    free(p);
    *out = a;
    return 0;
nomem:
    free(p);
    if (a) {
        free(a->query);
        arena_free(&a->mem);
        free(a);
    }
    return kiln_err_set(err, KILN_ENOMEM, "out of memory parsing the query");
}
