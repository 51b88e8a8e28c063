/*
 * ast.h - the PromQL abstract syntax tree, the parser that builds it and the
 * printer that turns it back into canonical PromQL.
 *
 * The tree mirrors Prometheus' promql/parser AST: one promql_expr a node, a
 * `kind` tag and a union of per-kind payloads.  promql_parse() returns a
 * promql_ast owning the whole tree: every node, string and array lives in the
 * ast's arena, except the compiled matchers of the selectors, which
 * promql_ast_free() releases with matcher_free().  Nothing in the tree may be
 * freed on its own.
 *
 * The parser does Prometheus' parse-time checks (argument counts and types,
 * set operators only between instant vectors, bool needed for comparisons
 * between scalars, ...) so an evaluator can trust the tree: types are those
 * promql_expr_type() reports, and arguments match the function signature.
 *
 * Positions are byte offsets into the query text: [start, end).
 *
 * Internal to query/ (api/ reaches the parser through query.h's
 * query_parse_* in astjson.c); also included by the PromQL test runner,
 * test_parse and the fuzz harness.
 * Threading: a parsed tree is immutable and may be read from any number of
 * threads at once; parsing and printing use no shared state.
 */
#ifndef KILN_QUERY_AST_H
#define KILN_QUERY_AST_H

#include <stddef.h>
#include <stdint.h>

#include "storage/storage.h"
#include "util/util.h"

/* Bounds the parser enforces (errors, not crashes). */
#define PROMQL_MAX_DEPTH 500           /* height of the tree (nesting, operator chains) */
#define PROMQL_MAX_QUERY_LEN (1 << 20) /* bytes of query text */

/* ---- value types --------------------------------------------------------- */

typedef enum promql_type {
    PROMQL_TYPE_NONE = 0, /* never the type of a valid expression */
    PROMQL_TYPE_SCALAR,
    PROMQL_TYPE_STRING,
    PROMQL_TYPE_VECTOR, /* instant vector */
    PROMQL_TYPE_MATRIX, /* range vector */
} promql_type;

/* "scalar", "string", "instant vector", "range vector" ("none" for NONE). */
const char *promql_type_name(promql_type t);
/* Go's ValueType.String(): "scalar", "string", "vector", "matrix", "none"
 * (also the resultType names of the HTTP API). */
const char *promql_type_go_name(promql_type t);

/* ---- operators ----------------------------------------------------------- */

typedef enum promql_binop {
    PROMQL_OP_ADD = 0, /* + */
    PROMQL_OP_SUB,     /* - */
    PROMQL_OP_MUL,     /* * */
    PROMQL_OP_DIV,     /* / */
    PROMQL_OP_MOD,     /* % */
    PROMQL_OP_POW,     /* ^ */
    PROMQL_OP_ATAN2,   /* atan2 */
    PROMQL_OP_EQL,     /* == */
    PROMQL_OP_NEQ,     /* != */
    PROMQL_OP_GTR,     /* > */
    PROMQL_OP_LSS,     /* < */
    PROMQL_OP_GTE,     /* >= */
    PROMQL_OP_LTE,     /* <= */
    PROMQL_OP_AND,     /* and */
    PROMQL_OP_OR,      /* or */
    PROMQL_OP_UNLESS,  /* unless */
    /* histogram trim operators (operators.md): a native histogram on the
     * left, a float threshold on the right; a float on the left is dropped */
    PROMQL_OP_TRIM_UPPER, /* </ */
    PROMQL_OP_TRIM_LOWER, /* >/ */
} promql_binop;

/* The operator's text: "+", "==", "and", "atan2", ... */
const char *promql_binop_str(promql_binop op);
/* == != > < >= <= */
int promql_binop_is_comparison(promql_binop op);
/* and or unless */
int promql_binop_is_set(promql_binop op);

typedef enum promql_aggop {
    PROMQL_AGG_SUM = 0,
    PROMQL_AGG_AVG,
    PROMQL_AGG_COUNT,
    PROMQL_AGG_MIN,
    PROMQL_AGG_MAX,
    PROMQL_AGG_GROUP,
    PROMQL_AGG_STDDEV,
    PROMQL_AGG_STDVAR,
    PROMQL_AGG_TOPK,         /* param: scalar */
    PROMQL_AGG_BOTTOMK,      /* param: scalar */
    PROMQL_AGG_QUANTILE,     /* param: scalar */
    PROMQL_AGG_COUNT_VALUES, /* param: string */
    PROMQL_AGG_LIMITK,       /* param: scalar */
    PROMQL_AGG_LIMIT_RATIO,  /* param: scalar */
} promql_aggop;

/* "sum", "count_values", ... */
const char *promql_aggop_str(promql_aggop op);
/* Whether the aggregation takes a parameter before the expression. */
int promql_aggop_has_param(promql_aggop op);

/* Unary operators are PROMQL_OP_ADD or PROMQL_OP_SUB. */

typedef enum promql_card {
    PROMQL_CARD_ONE_TO_ONE = 0,
    PROMQL_CARD_MANY_TO_ONE,  /* group_left */
    PROMQL_CARD_ONE_TO_MANY,  /* group_right */
    PROMQL_CARD_MANY_TO_MANY, /* set operators */
} promql_card;

/* ---- functions ----------------------------------------------------------- */

/* One entry a PromQL function; the table is in functions_table.c. */
typedef enum promql_func_id {
    PROMQL_FN_ABS = 0,
    PROMQL_FN_ABSENT,
    PROMQL_FN_ABSENT_OVER_TIME,
    PROMQL_FN_ACOS,
    PROMQL_FN_ACOSH,
    PROMQL_FN_ASIN,
    PROMQL_FN_ASINH,
    PROMQL_FN_ATAN,
    PROMQL_FN_ATANH,
    PROMQL_FN_AVG_OVER_TIME,
    PROMQL_FN_CEIL,
    PROMQL_FN_CHANGES,
    PROMQL_FN_CLAMP,
    PROMQL_FN_CLAMP_MAX,
    PROMQL_FN_CLAMP_MIN,
    PROMQL_FN_COS,
    PROMQL_FN_COSH,
    PROMQL_FN_COUNT_OVER_TIME,
    PROMQL_FN_DAYS_IN_MONTH,
    PROMQL_FN_DAY_OF_MONTH,
    PROMQL_FN_DAY_OF_WEEK,
    PROMQL_FN_DAY_OF_YEAR,
    PROMQL_FN_DEG,
    PROMQL_FN_DELTA,
    PROMQL_FN_DERIV,
    PROMQL_FN_DOUBLE_EXPONENTIAL_SMOOTHING,
    PROMQL_FN_END,
    PROMQL_FN_EXP,
    PROMQL_FN_FIRST_OVER_TIME,
    PROMQL_FN_FLOOR,
    PROMQL_FN_HISTOGRAM_AVG,
    PROMQL_FN_HISTOGRAM_COUNT,
    PROMQL_FN_HISTOGRAM_FRACTION,
    PROMQL_FN_HISTOGRAM_QUANTILE,
    PROMQL_FN_HISTOGRAM_QUANTILES,
    PROMQL_FN_HISTOGRAM_STDDEV,
    PROMQL_FN_HISTOGRAM_STDVAR,
    PROMQL_FN_HISTOGRAM_SUM,
    PROMQL_FN_HOUR,
    PROMQL_FN_IDELTA,
    PROMQL_FN_INCREASE,
    PROMQL_FN_INFO,
    PROMQL_FN_IRATE,
    PROMQL_FN_LABEL_JOIN,
    PROMQL_FN_LABEL_REPLACE,
    PROMQL_FN_LAST_OVER_TIME,
    PROMQL_FN_LN,
    PROMQL_FN_LOG10,
    PROMQL_FN_LOG2,
    PROMQL_FN_MAD_OVER_TIME,
    PROMQL_FN_MAX_OF,
    PROMQL_FN_MAX_OVER_TIME,
    PROMQL_FN_MIN_OF,
    PROMQL_FN_MIN_OVER_TIME,
    PROMQL_FN_MINUTE,
    PROMQL_FN_MONTH,
    PROMQL_FN_PI,
    PROMQL_FN_PREDICT_LINEAR,
    PROMQL_FN_PRESENT_OVER_TIME,
    PROMQL_FN_QUANTILE_OVER_TIME,
    PROMQL_FN_RAD,
    PROMQL_FN_RANGE,
    PROMQL_FN_RATE,
    PROMQL_FN_RESETS,
    PROMQL_FN_ROUND,
    PROMQL_FN_SCALAR,
    PROMQL_FN_SGN,
    PROMQL_FN_SIN,
    PROMQL_FN_SINH,
    PROMQL_FN_SORT,
    PROMQL_FN_SORT_BY_LABEL,
    PROMQL_FN_SORT_BY_LABEL_DESC,
    PROMQL_FN_SORT_DESC,
    PROMQL_FN_SQRT,
    PROMQL_FN_START,
    PROMQL_FN_START_TIMESTAMP,
    PROMQL_FN_STDDEV_OVER_TIME,
    PROMQL_FN_STDVAR_OVER_TIME,
    PROMQL_FN_STEP,
    PROMQL_FN_SUM_OVER_TIME,
    PROMQL_FN_TAN,
    PROMQL_FN_TANH,
    PROMQL_FN_TIME,
    PROMQL_FN_TIMESTAMP,
    PROMQL_FN_TS_OF_FIRST_OVER_TIME,
    PROMQL_FN_TS_OF_LAST_OVER_TIME,
    PROMQL_FN_TS_OF_MAX_OVER_TIME,
    PROMQL_FN_TS_OF_MIN_OVER_TIME,
    PROMQL_FN_VECTOR,
    PROMQL_FN_YEAR,
    PROMQL_FN_COUNT_ /* number of functions */
} promql_func_id;

/*
 * A function signature, with Prometheus' variadic convention:
 *   variadic == 0: exactly nargs arguments;
 *   variadic  > 0: between nargs-1 and nargs-1+variadic arguments;
 *   variadic  < 0: at least nargs-1 arguments.
 * Arguments past nargs have the type of the last one.  min_args/max_args
 * spell this out (max_args -1 = unbounded).
 */
typedef struct promql_func {
    promql_func_id id;
    const char *name;
    const promql_type *arg_types; /* nargs entries (NULL when nargs is 0) */
    int nargs;
    int variadic;
    int min_args;
    int max_args;
    promql_type ret;
    int experimental; /* behind Prometheus' promql-experimental-functions flag */
} promql_func;

/* The function named `name`, or NULL.  Returns a static entry. */
const promql_func *promql_func_lookup(const char *name);
/* The function with this id (id < PROMQL_FN_COUNT_), or NULL. */
const promql_func *promql_func_by_id(promql_func_id id);

/* ---- nodes --------------------------------------------------------------- */

typedef enum promql_node_kind {
    PROMQL_NUMBER = 0,
    PROMQL_STRING,
    PROMQL_VECTOR_SELECTOR,
    PROMQL_MATRIX_SELECTOR,
    PROMQL_SUBQUERY,
    PROMQL_CALL,
    PROMQL_AGGREGATE,
    PROMQL_BINARY,
    PROMQL_UNARY,
    PROMQL_PAREN,
} promql_node_kind;

/* The anchored / smoothed modifiers of a selector
 * (promql-extended-range-selectors). */
typedef enum promql_range_mode {
    PROMQL_RANGE_PLAIN = 0,
    PROMQL_RANGE_ANCHORED,
    PROMQL_RANGE_SMOOTHED,
} promql_range_mode;

/* The @ modifier. */
typedef enum promql_at_kind {
    PROMQL_AT_NONE = 0,
    PROMQL_AT_TIMESTAMP, /* at_ms holds the time */
    PROMQL_AT_START,     /* @ start() */
    PROMQL_AT_END,       /* @ end() */
} promql_at_kind;

typedef struct promql_expr promql_expr;

/*
 * An instant vector selector.  `matchers` holds every matcher in the order
 * written; when a metric name was written before the braces, the parser adds
 * its `__name__="<name>"` matcher as the last one (as Prometheus does), and
 * `name` points at the name (otherwise name is NULL).  offset_ms and the @
 * modifier are those written on the selector (or, for a range selector, after
 * its brackets).
 */
typedef struct promql_vector_selector {
    const char *name;
    matcher *matchers;
    size_t nmatchers;
    int64_t offset_ms; /* may be negative */
    promql_at_kind at;
    int64_t at_ms;            /* when at == PROMQL_AT_TIMESTAMP */
    promql_expr *offset_expr; /* a duration expression offset_ms comes from, or NULL (see below) */
    promql_range_mode mode;   /* anchored / smoothed, on x or x[5m] */
} promql_vector_selector;

/* x[5m]: `vs` is a PROMQL_VECTOR_SELECTOR node holding offset and @. */
typedef struct promql_matrix_selector {
    promql_expr *vs;
    int64_t range_ms;
    promql_expr *range_expr; /* a duration expression range_ms comes from, or NULL */
} promql_matrix_selector;

/* expr[range:step] */
typedef struct promql_subquery {
    promql_expr *expr;
    int64_t range_ms;
    int64_t step_ms; /* 0: the default evaluation interval */
    int64_t offset_ms;
    promql_at_kind at;
    int64_t at_ms;
    promql_expr *range_expr, *step_expr, *offset_expr; /* duration expressions, or NULL */
} promql_subquery;

typedef struct promql_call {
    const promql_func *func;
    promql_expr **args;
    size_t nargs;
} promql_call;

typedef struct promql_aggregate {
    promql_aggop op;
    promql_expr *expr;
    promql_expr *param; /* NULL unless promql_aggop_has_param(op) */
    char **grouping;    /* label names of by/without, as written */
    size_t ngrouping;
    int without; /* 1: without (...), 0: by (...) or none */
} promql_aggregate;

/*
 * Vector matching of a binary expression between two instant vectors
 * (present, card ONE_TO_ONE or MANY_TO_MANY for set operators, even when
 * nothing was written).  For other operand types `has_matching` is 0.
 */
typedef struct promql_vector_matching {
    promql_card card;
    int on;          /* on(...) rather than ignoring(...) */
    char **matching; /* labels of on/ignoring */
    size_t nmatching;
    char **include; /* labels of group_left/group_right */
    size_t ninclude;
} promql_vector_matching;

/* fill(v), fill_left(v), fill_right(v) after the other modifiers
 * (promql-binop-fill-modifiers): a side with no match for a series of the
 * other gets one with that value and the matching labels. */
typedef struct promql_binary {
    promql_binop op;
    promql_expr *lhs, *rhs;
    int return_bool;
    int has_matching;
    promql_vector_matching matching;
    int fill_lhs, fill_rhs; /* whether to fill that side */
    double fill_lhs_value, fill_rhs_value;
} promql_binary;

typedef struct promql_unary {
    promql_binop op; /* PROMQL_OP_ADD or PROMQL_OP_SUB */
    promql_expr *expr;
} promql_unary;

/*
 * Duration expressions (promql-duration-expr): where a range, a subquery
 * step or an offset was written as arithmetic (`x[1m+30s]`, `offset (1h*2)`,
 * `[5m:step()]`), the *_expr field holds it, a tree of PROMQL_NUMBER (in
 * seconds; `duration` set when written as one, `5m`), PROMQL_PAREN,
 * PROMQL_UNARY, PROMQL_BINARY (+ - * / % ^) and PROMQL_CALL of step(),
 * range(), min_of() and max_of().  The parser resolves one that does not
 * use step() or range() into the *_ms field; the engine resolves them all
 * for its query (promql_durations_resolve).  Written as a plain literal,
 * the *_expr field is NULL.
 */
struct promql_expr {
    promql_node_kind kind;
    int duration;      /* PROMQL_NUMBER in a duration expression: written as a duration */
    size_t start, end; /* byte positions in the query: [start, end) */
    union {
        double number; /* PROMQL_NUMBER */
        struct {
            const char *s; /* PROMQL_STRING: unescaped value, NUL-terminated */
            size_t len;    /* may contain NULs */
        } string;
        promql_vector_selector vs;
        promql_matrix_selector ms;
        promql_subquery sq;
        promql_call call;
        promql_aggregate agg;
        promql_binary bin;
        promql_unary unary;
        promql_expr *paren; /* PROMQL_PAREN: the inner expression */
    } u;
};

/* The value type of an expression (as Prometheus' Expr.Type()). */
promql_type promql_expr_type(const promql_expr *e);

/* ---- the tree and its owner ---------------------------------------------- */

/* The matchers of one selector, released with the tree. */
typedef struct promql_matchers {
    matcher *v;
    size_t n;
} promql_matchers;

typedef struct promql_ast {
    promql_expr *root;
    arena mem;             /* every node, string and array of the tree */
    promql_matchers *sels; /* matcher arrays to release (one per selector) */
    size_t nsel, capsel;
    char *query; /* copy of the query text (positions point into it) */
} promql_ast;

/*
 * Parses `query` into a new tree in *out (free with promql_ast_free).  On a
 * bad query returns KILN_EINVAL with Prometheus' message in err, e.g.
 * `1:14: parse error: unexpected end of input` (line:column, both from 1,
 * column in bytes); KILN_ENOMEM when out of memory.  *out is NULL on error.
 */
KILN_MUST_CHECK int promql_parse(const char *query, promql_ast **out, kiln_err *err);
/*
 * promql_parse with only the language features of `features` (util.h's
 * FEATURE_PROMQL_* bits, the --enable-feature set); promql_parse allows
 * them all.  Using one that is off is a parse error naming its flag:
 * `1:1: parse error: function "mad_over_time" is not enabled; it is
 * experimental and must be enabled with --enable-feature=promql-experimental-functions`.
 */
KILN_MUST_CHECK int promql_parse_features(const char *query, uint32_t features, promql_ast **out,
                                          kiln_err *err);

/*
 * Evaluates every duration expression in the tree under `e` for a query of
 * this step and range (end - start; both 0 for an instant query: step() and
 * range() are then 0) into the ranges, steps and offsets (query/durexpr.c).
 * Returns 0, or KILN_EINVAL with the error in err (`duration must be greater
 * than 0`, `division by zero`, `modulo by zero`, `duration out of range`;
 * `query` gives the line:column).  Any thread; writes into the tree.
 */
KILN_MUST_CHECK int promql_durations_resolve(promql_expr *e, const char *query, int64_t step_ms,
                                             int64_t range_ms, kiln_err *err);
/* Whether the duration expression `e` calls step() or range() (its value
 * then depends on the query). */
int promql_duration_is_dynamic(const promql_expr *e);
/* The value of one duration expression in seconds; 0, or -1 with a static
 * message in *msg and the offending node in *at. */
int promql_duration_eval(const promql_expr *e, int64_t step_ms, int64_t range_ms, double *out,
                         const char **msg, const promql_expr **at);

/* Frees the tree, its arena and matchers.  NULL is a no-op. */
void promql_ast_free(promql_ast *a);

/*
 * Appends canonical PromQL for `e` to out, as Prometheus' String() does:
 * `sum by (job) (rate(x{a="b"}[5m]))`.  Printing then parsing the output gives
 * an equal tree.  0 or KILN_ENOMEM.
 */
KILN_MUST_CHECK int promql_format(buf *out, const promql_expr *e);

/* Lines longer than this are split by promql_prettify (Prometheus' maxCharactersPerLine). */
#define PROMQL_PRETTY_MAX_LINE 100

/*
 * Appends `e` as Prometheus' parser.Prettify writes it (the answer of
 * /api/v1/format_query): an expression whose canonical form (promql_format)
 * fits in PROMQL_PRETTY_MAX_LINE bytes stays on one line; a longer one is
 * split, two spaces of indentation a level: a binary operator on its own
 * line between its operands, the arguments of a call and the parameter and
 * operand of an aggregation one a line inside `name(` ... `)`, a
 * parenthesis' content on its own lines.  Selectors, numbers and strings
 * are never split.  0 or KILN_ENOMEM.
 */
KILN_MUST_CHECK int promql_prettify(buf *out, const promql_expr *e);

/* Appends s[0..n) quoted like Go's strconv.Quote (the printer's strings and
 * label values, error messages).  Out of memory is left in out's sticky
 * flag (buf_error). */
void promql_quote(buf *out, const char *s, size_t n);

/* ---- internal to query/: the lexer shared by parse.c and lex.c ---------- */
#ifdef PROMQL_PARSER_INTERNAL

/* The value of a number token's text s[0..n) (lex.c): 0, -1 when it is not
 * a number, -2 when it is out of range. */
int promql_parse_number(const char *s, size_t n, double *out);

/* Prometheus' checks of a complete tree (check.c): 0, or -1 with the
 * message in err[0..errlen) and its byte position in *err_pos.  Fills in
 * what the checks settle (set operators' many-to-many matching). */
int promql_check(promql_expr *root, const char *in, size_t len, size_t *err_pos, char *err, size_t errlen);

typedef enum promql_tok {
    PT_EOF = 0,
    PT_ERROR,
    PT_IDENT,
    PT_METRIC_IDENT, /* an identifier holding ':' */
    PT_NUMBER,
    PT_STRING,
    PT_DURATION,
    PT_LPAREN,
    PT_RPAREN,
    PT_LBRACE,
    PT_RBRACE,
    PT_LBRACKET,
    PT_RBRACKET,
    PT_COMMA,
    PT_EQL, /* = */
    PT_COLON,
    /* operators */
    PT_AT,
    PT_ADD,
    PT_SUB,
    PT_MUL,
    PT_DIV,
    PT_MOD,
    PT_POW,
    PT_EQLC,
    PT_NEQ,
    PT_LSS,
    PT_LTE,
    PT_GTR,
    PT_GTE,
    PT_EQL_REGEX,
    PT_NEQ_REGEX,
    PT_AND,
    PT_OR,
    PT_UNLESS,
    PT_TRIM_UPPER, /* </ */
    PT_TRIM_LOWER, /* >/ */
    PT_ATAN2,
    /* aggregators, in promql_aggop order */
    PT_SUM,
    PT_AVG,
    PT_COUNT,
    PT_MIN,
    PT_MAX,
    PT_GROUP,
    PT_STDDEV,
    PT_STDVAR,
    PT_TOPK,
    PT_BOTTOMK,
    PT_QUANTILE,
    PT_COUNT_VALUES,
    PT_LIMITK,
    PT_LIMIT_RATIO,
    /* keywords */
    PT_OFFSET,
    PT_BY,
    PT_WITHOUT,
    PT_ON,
    PT_IGNORING,
    PT_GROUP_LEFT,
    PT_GROUP_RIGHT,
    PT_BOOL,
    /* preprocessors */
    PT_START,
    PT_END,
} promql_tok;

typedef struct promql_token {
    promql_tok type;
    size_t pos, len; /* bytes of the query */
} promql_token;

typedef struct promql_lexer {
    const char *in;
    size_t len, pos, start;
    int paren_depth, brace_open, bracket_open, got_colon;
    int done; /* EOF or an error was returned: keep returning it */
    promql_token last;
    char err[256]; /* the message of a PT_ERROR token */
} promql_lexer;

void promql_lex_init(promql_lexer *l, const char *in, size_t len);
/* The next token, comments skipped.  PT_ERROR: l->err says why, the token
 * position is where the bad token starts. */
void promql_lex_next(promql_lexer *l, promql_token *t);
/* The token as Prometheus names it in "unexpected ..." messages:
 * `end of input`, `identifier "foo"`, `<op:+>`, `<aggr:sum>`, `<by>`, `","`. */
void promql_tok_desc(const promql_lexer *l, const promql_token *t, buf *out);
/* Decodes a string token (quotes included, already validated by the lexer)
 * into arena memory; NULL when out of memory. */
char *promql_unquote(arena *a, const char *tok, size_t len, size_t *outlen);

#endif /* PROMQL_PARSER_INTERNAL */

#endif
