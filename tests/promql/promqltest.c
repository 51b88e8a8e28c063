/*
 * promqltest.c - runs PromQL test scripts in Prometheus' promqltest format
 * against kiln's engine in process.
 *
 * Usage: promqltest FILE.test...   Prints each failing eval with file:line,
 * the query, what was expected and what came back, then
 * `N passed, N failed, N skipped`; exits 1 when anything failed.
 *
 * Supported: `load <step>` (and load_with_nhcb, whose float series are
 * loaded) with the expanding notation (`1+2x5`, `-2-1x4`, `1x3`, `_`, `_x3`,
 * `stale`), `clear`, `eval instant at <t> <expr>`, `eval range from <t> to
 * <t> step <d> <expr>`, the old forms eval_fail/eval_warn/eval_info/
 * eval_ordered, and `expect fail|warn|info|no_warn|no_info|ordered|string|
 * range vector` lines (with `msg:` / `regex:`).  Native histograms (`{{...}}`)
 * are not loaded; an eval expecting one, or selecting a series that was one,
 * counts as skipped.  Values match with a relative tolerance of 1e-6, NaN
 * matches NaN.
 *
 * Data goes through the real storage (a temporary directory per file).
 * Threading: single-threaded.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "query/ast.h"
#include "query/query.h"
#include "storage/storage.h"
#include "util/util.h"

typedef struct lset {
    label *ls;
    size_t n;
} lset;

typedef struct runner {
    const char *file;
    char dir[256];
    storage *st;
    arena mem; /* per file (histogram series labels) */
    lset *hist;
    size_t nhist, caphist;
    query_engine eng;
    int passed, failed, skipped;
} runner;

/* ---- small parsing helpers ---- */

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static int is_ident_start(int c) {
    return isalpha(c) || c == '_' || c == ':';
}
static int is_ident(int c) {
    return isalnum(c) || c == '_' || c == ':';
}

/* Parses a quoted string (" ' or `) into a; returns the position after it. */
static const char *parse_quoted(const char *p, arena *a, char **out) {
    char q = *p;
    if (q != '"' && q != '\'' && q != '`')
        return NULL;
    const char *s = p + 1;
    buf b = BUF_INIT;
    while (*s && *s != q) {
        if (*s == '\\' && q != '`') {
            s++;
            switch (*s) {
            case 'n':
                buf_putc(&b, '\n');
                s++;
                break;
            case 't':
                buf_putc(&b, '\t');
                s++;
                break;
            case 'r':
                buf_putc(&b, '\r');
                s++;
                break;
            case '\\':
                buf_putc(&b, '\\');
                s++;
                break;
            case '"':
                buf_putc(&b, '"');
                s++;
                break;
            case '\'':
                buf_putc(&b, '\'');
                s++;
                break;
            case 'x': {
                char h[3] = {s[1], s[2], 0};
                buf_putc(&b, (char)strtol(h, NULL, 16));
                s += 3;
                break;
            }
            case 'u': {
                char h[5] = {0};
                memcpy(h, s + 1, 4);
                long cp = strtol(h, NULL, 16);
                if (cp < 0x80) {
                    buf_putc(&b, (char)cp);
                } else if (cp < 0x800) {
                    buf_putc(&b, (char)(0xc0 | (cp >> 6)));
                    buf_putc(&b, (char)(0x80 | (cp & 0x3f)));
                } else {
                    buf_putc(&b, (char)(0xe0 | (cp >> 12)));
                    buf_putc(&b, (char)(0x80 | ((cp >> 6) & 0x3f)));
                    buf_putc(&b, (char)(0x80 | (cp & 0x3f)));
                }
                s += 5;
                break;
            }
            default:
                buf_putc(&b, *s);
                if (*s)
                    s++;
                break;
            }
            continue;
        }
        buf_putc(&b, *s++);
    }
    if (*s != q) {
        buf_free(&b);
        return NULL;
    }
    *out = arena_strndup(a, b.data ? b.data : "", b.len);
    buf_free(&b);
    return s + 1;
}

/* Parses `name{a="b", ...}` (either part optional) into a sorted set. */
static const char *parse_series(const char *p, arena *a, lset *out) {
    label tmp[LABELS_MAX_COUNT];
    size_t n = 0;
    p = skip_ws(p);
    if (is_ident_start((unsigned char)*p)) {
        const char *s = p;
        while (is_ident((unsigned char)*p))
            p++;
        tmp[n++] = (label){LABEL_NAME, arena_strndup(a, s, (size_t)(p - s))};
    }
    if (*p == '{') {
        p++;
        for (;;) {
            p = skip_ws(p);
            if (*p == '}') {
                p++;
                break;
            }
            char *name = NULL, *val = NULL;
            if (*p == '"' || *p == '\'' || *p == '`') {
                if (!(p = parse_quoted(p, a, &name)))
                    return NULL;
            } else {
                const char *s = p;
                while (is_ident((unsigned char)*p))
                    p++;
                if (p == s)
                    return NULL;
                name = arena_strndup(a, s, (size_t)(p - s));
            }
            p = skip_ws(p);
            if (*p == '=') {
                p = skip_ws(p + 1);
                if (!(p = parse_quoted(p, a, &val)))
                    return NULL;
                if (n < LABELS_MAX_COUNT && *val)
                    tmp[n++] = (label){name, val};
            } else {
                if (n < LABELS_MAX_COUNT)
                    tmp[n++] = (label){LABEL_NAME, name};
            }
            p = skip_ws(p);
            if (*p == ',')
                p++;
        }
    }
    labels_sort(tmp, n);
    out->ls = labels_copy(a, tmp, n);
    out->n = n;
    return p;
}

/* A number token: [+-] digits[.digits][e[+-]digits] | [+-]Inf | NaN. */
static const char *parse_num(const char *p, double *v) {
    const char *s = p;
    if (*p == '+' || *p == '-')
        p++;
    if (strncasecmp(p, "inf", 3) == 0) {
        p += 3;
    } else if (strncasecmp(p, "nan", 3) == 0) {
        p += 3;
    } else {
        const char *d = p;
        {
            while (isdigit((unsigned char)*p))
                p++;
            if (*p == '.') {
                p++;
                while (isdigit((unsigned char)*p))
                    p++;
            }
            if (p > d && (*p == 'e' || *p == 'E')) {
                const char *q = p + 1;
                if (*q == '+' || *q == '-')
                    q++;
                if (isdigit((unsigned char)*q)) {
                    p = q;
                    while (isdigit((unsigned char)*p))
                        p++;
                }
            }
        }
        if (p == d)
            return NULL;
    }
    char tmp[64];
    size_t n = (size_t)(p - s);
    if (n >= sizeof tmp)
        return NULL;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    *v = strtod(tmp, NULL);
    return p;
}

/* One expanded point: present or not. */
typedef struct pt {
    int present;
    double v;
} pt;

typedef struct pts {
    pt *v;
    size_t n, cap;
} pts;

static void pts_push(pts *p, int present, double v) {
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->v = realloc(p->v, p->cap * sizeof(pt));
        if (!p->v)
            exit(2);
    }
    p->v[p->n++] = (pt){present, v};
}

static double stale_nan(void) {
    uint64_t b = 0x7ff0000000000002ULL;
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

/* Expands the value notation; -1 on a syntax error, 1 when it holds a
 * native histogram. */
static int parse_values(const char *p, pts *out) {
    if (strstr(p, "{{"))
        return 1;
    for (;;) {
        p = skip_ws(p);
        if (!*p || *p == '#')
            return 0;
        unsigned long times = 0;
        if (*p == '_') {
            p++;
            if (*p == 'x') {
                times = strtoul(p + 1, (char **)&p, 10);
            }
            for (unsigned long i = 0; i <= times; i++)
                pts_push(out, 0, 0);
            if (times == 0) {
                /* `_` alone is one missing point (the loop pushed one) */
            }
            continue;
        }
        if (strncmp(p, "stale", 5) == 0) {
            p += 5;
            if (*p == 'x')
                times = strtoul(p + 1, (char **)&p, 10);
            for (unsigned long i = 0; i <= times; i++)
                pts_push(out, 1, stale_nan());
            continue;
        }
        double start, off = 0;
        const char *q = parse_num(p, &start);
        if (!q)
            return -1;
        p = q;
        if (*p == '+' || *p == '-') {
            int neg = *p == '-';
            q = parse_num(p + 1, &off);
            if (!q || *q != 'x')
                return -1;
            if (neg)
                off = -off;
            p = q;
        }
        if (*p == 'x') {
            times = strtoul(p + 1, (char **)&q, 10);
            if (q == p + 1)
                return -1;
            p = q;
            for (unsigned long i = 0; i <= times; i++)
                pts_push(out, 1, start + off * (double)i);
        } else {
            pts_push(out, 1, start);
        }
        if (*p && *p != ' ' && *p != '\t')
            return -1;
    }
}

static int parse_time(const char *s, int64_t *ms) {
    kiln_err e;
    if (duration_parse(s, ms, &e) == 0)
        return 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end)
        return -1;
    *ms = (int64_t)llround(v * 1000);
    return 0;
}

/* ---- storage per file ---- */

static int storage_fresh(runner *r) {
    kiln_err e;
    if (r->st) {
        storage_close(r->st, &e);
        r->st = NULL;
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
        if (system(cmd) != 0)
            return -1;
    }
    snprintf(r->dir, sizeof r->dir, "/tmp/kiln-promqltest-XXXXXX");
    if (!mkdtemp(r->dir))
        return -1;
    storage_opts o = storage_opts_default();
    o.dir = r->dir;
    o.block_range_ms = (int64_t)100 * 365 * 86400 * 1000;
    o.retention_ms = 0;
    o.replay_threads = 1;
    if (storage_open(&o, &r->st, &e) < 0) {
        fprintf(stderr, "storage_open: %s\n", e.msg);
        return -1;
    }
    return 0;
}

static void storage_drop(runner *r) {
    kiln_err e;
    if (!r->st)
        return;
    storage_close(r->st, &e);
    r->st = NULL;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", r->dir);
}

/* ---- eval ---- */

typedef struct expect_series {
    lset ls;
    pts p;
    int line;
} expect_series;

typedef struct eval_cmd {
    int line;
    int is_range;
    int64_t at, start, end, step;
    char *expr;
    int want_fail, ordered, want_warn, want_info, no_warn, no_info;
    char *fail_msg, *fail_re, *warn_msg, *warn_re, *info_msg, *info_re;
    int has_scalar;
    double scalar;
    int has_string;
    char *string;
    int range_vec; /* expect range vector from..to..step */
    int64_t rv_start, rv_end, rv_step;
    expect_series *es;
    size_t nes, capes;
    int skip;
} eval_cmd;

static int almost_equal(double a, double b) {
    const double min_normal = 2.2250738585072014e-308, eps = 1e-6;
    if (isnan(a) && isnan(b))
        return 1;
    if (a == b)
        return 1;
    double abs_sum = fabs(a) + fabs(b), diff = fabs(a - b);
    if (a == 0 || b == 0 || abs_sum < min_normal)
        return diff < eps * min_normal;
    return diff / fmin(abs_sum, 1.7976931348623157e308) < eps;
}

static int regex_match(const char *re, const char *s) {
    matcher m;
    kiln_err e;
    buf b = BUF_INIT;
    buf_printf(&b, ".*(?:%s).*", re);
    if (matcher_init(&m, MATCH_RE, "x", b.data, &e) < 0) {
        buf_free(&b);
        return 0;
    }
    int r = matcher_matches(&m, s);
    matcher_free(&m);
    buf_free(&b);
    return r;
}

static int list_has(const char **v, size_t n, const char *msg, const char *re) {
    for (size_t i = 0; i < n; i++) {
        if (msg && strcmp(v[i], msg) == 0)
            return 1;
        if (re && regex_match(re, v[i]))
            return 1;
    }
    return 0;
}

static void print_series(FILE *f, const label *ls, size_t n) {
    buf b = BUF_INIT;
    labels_format(&b, ls, n);
    fputs(b.data ? b.data : "{}", f);
    buf_free(&b);
}

static void print_result(FILE *f, const query_result *res) {
    char num[FMT_DOUBLE_MAX];
    switch (res->type) {
    case QUERY_SCALAR:
        fmt_double_g(res->scalar, num);
        fprintf(f, "    scalar %s\n", num);
        break;
    case QUERY_STRING:
        fprintf(f, "    string \"%s\"\n", res->str);
        break;
    default:
        for (size_t i = 0; i < res->nseries && i < 40; i++) {
            fputs("    ", f);
            print_series(f, res->series[i].ls, res->series[i].nls);
            for (size_t j = 0; j < res->series[i].npts && j < 30; j++) {
                fmt_double_g(res->series[i].pts[j].v, num);
                if (res->type == QUERY_MATRIX)
                    fprintf(f, " %s@%lld", num, (long long)res->series[i].pts[j].t / 1000);
                else
                    fprintf(f, " %s", num);
            }
            fputc('\n', f);
        }
        if (res->nseries == 0)
            fprintf(f, "    (empty %s)\n", query_value_type_name(res->type));
    }
    for (size_t i = 0; i < res->nwarnings; i++)
        fprintf(f, "    warning: %s\n", res->warnings[i]);
    for (size_t i = 0; i < res->ninfos; i++)
        fprintf(f, "    info: %s\n", res->infos[i]);
}

static void print_expected(FILE *f, const eval_cmd *ev) {
    char num[FMT_DOUBLE_MAX];
    if (ev->want_fail)
        fprintf(f, "    an error%s%s\n", ev->fail_msg ? ": " : "", ev->fail_msg ? ev->fail_msg : "");
    if (ev->has_scalar) {
        fmt_double_g(ev->scalar, num);
        fprintf(f, "    scalar %s\n", num);
    }
    if (ev->has_string)
        fprintf(f, "    string \"%s\"\n", ev->string);
    for (size_t i = 0; i < ev->nes; i++) {
        fputs("    ", f);
        print_series(f, ev->es[i].ls.ls, ev->es[i].ls.n);
        for (size_t j = 0; j < ev->es[i].p.n && j < 30; j++) {
            if (ev->es[i].p.v[j].present) {
                fmt_double_g(ev->es[i].p.v[j].v, num);
                fprintf(f, " %s", num);
            } else {
                fputs(" _", f);
            }
        }
        fputc('\n', f);
    }
    if (!ev->want_fail && !ev->has_scalar && !ev->has_string && ev->nes == 0)
        fprintf(f, "    (nothing)\n");
}

/* Compares a result with the expectation; NULL when equal, else why. */
static const char *compare(const eval_cmd *ev, const query_result *res) {
    static char why[512];
    if (ev->has_scalar) {
        if (res->type != QUERY_SCALAR)
            return "expected a scalar";
        return almost_equal(res->scalar, ev->scalar) ? NULL : "scalar value differs";
    }
    if (ev->has_string) {
        if (res->type != QUERY_STRING)
            return "expected a string";
        return strcmp(res->str, ev->string) == 0 ? NULL : "string differs";
    }
    if (res->type == QUERY_SCALAR || res->type == QUERY_STRING) {
        if (ev->nes == 0)
            return "expected an empty vector";
        return "expected a vector";
    }
    if (ev->is_range || ev->range_vec) {
        if (res->type != QUERY_MATRIX)
            return "expected a matrix";
    } else if (res->type != QUERY_VECTOR) {
        return "expected a vector";
    }
    if (res->nseries != ev->nes) {
        snprintf(why, sizeof why, "expected %zu series, got %zu", ev->nes, res->nseries);
        return why;
    }
    for (size_t i = 0; i < ev->nes; i++) {
        const expect_series *es = &ev->es[i];
        const query_series *rs = NULL;
        if (ev->ordered) {
            rs = &res->series[i];
            if (labels_cmp(rs->ls, rs->nls, es->ls.ls, es->ls.n) != 0)
                return "order or labels differ";
        } else {
            for (size_t j = 0; j < res->nseries; j++)
                if (labels_cmp(res->series[j].ls, res->series[j].nls, es->ls.ls, es->ls.n) == 0) {
                    rs = &res->series[j];
                    break;
                }
            if (!rs)
                return "an expected series is missing";
        }
        if (res->type == QUERY_VECTOR) {
            if (es->p.n != 1 || !es->p.v[0].present || rs->npts != 1)
                return "bad expected vector value";
            if (!almost_equal(rs->pts[0].v, es->p.v[0].v))
                return "value differs";
            continue;
        }
        int64_t st = ev->range_vec ? ev->rv_start : ev->start;
        int64_t step = ev->range_vec ? ev->rv_step : ev->step;
        size_t k = 0;
        for (size_t j = 0; j < es->p.n; j++) {
            if (!es->p.v[j].present)
                continue;
            int64_t t = st + (int64_t)j * step;
            if (k >= rs->npts || rs->pts[k].t != t)
                return "points differ (timestamps)";
            if (!almost_equal(rs->pts[k].v, es->p.v[j].v))
                return "points differ (values)";
            k++;
        }
        if (k != rs->npts)
            return "more points than expected";
    }
    return NULL;
}

/* Whether the query selects a series loaded as a native histogram. */
static int touches_histogram(runner *r, const promql_expr *e) {
    if (!e)
        return 0;
    switch (e->kind) {
    case PROMQL_VECTOR_SELECTOR:
        for (size_t h = 0; h < r->nhist; h++) {
            int all = 1;
            for (size_t i = 0; i < e->u.vs.nmatchers && all; i++) {
                const char *v = labels_get(r->hist[h].ls, r->hist[h].n, e->u.vs.matchers[i].name);
                if (!matcher_matches(&e->u.vs.matchers[i], v ? v : ""))
                    all = 0;
            }
            if (all)
                return 1;
        }
        return 0;
    case PROMQL_MATRIX_SELECTOR:
        return touches_histogram(r, e->u.ms.vs);
    case PROMQL_SUBQUERY:
        return touches_histogram(r, e->u.sq.expr);
    case PROMQL_CALL:
        for (size_t i = 0; i < e->u.call.nargs; i++)
            if (touches_histogram(r, e->u.call.args[i]))
                return 1;
        return 0;
    case PROMQL_AGGREGATE:
        return touches_histogram(r, e->u.agg.expr) || touches_histogram(r, e->u.agg.param);
    case PROMQL_BINARY:
        return touches_histogram(r, e->u.bin.lhs) || touches_histogram(r, e->u.bin.rhs);
    case PROMQL_UNARY:
        return touches_histogram(r, e->u.unary.expr);
    case PROMQL_PAREN:
        return touches_histogram(r, e->u.paren);
    default:
        return 0;
    }
}

static void run_eval(runner *r, eval_cmd *ev) {
    if (!ev->skip && r->nhist && !getenv("PROMQLTEST_RUN_HISTOGRAM_SELECTS")) {
        promql_ast *ast = NULL;
        kiln_err e;
        if (promql_parse(ev->expr, &ast, &e) == 0) {
            if (touches_histogram(r, ast->root))
                ev->skip = 1;
            promql_ast_free(ast);
        }
    }
    if (ev->skip) {
        r->skipped++;
        return;
    }
    query_result res;
    memset(&res, 0, sizeof res);
    kiln_err err;
    memset(&err, 0, sizeof err);
    int rc = ev->is_range
                 ? query_range(&r->eng, r->st, ev->expr, ev->start, ev->end, ev->step, NULL, &res, &err)
                 : query_instant(&r->eng, r->st, ev->expr, ev->at, NULL, &res, &err);
    const char *why = NULL;
    if (ev->want_fail) {
        if (rc == 0)
            why = "expected an error, the query succeeded";
        else if (ev->fail_msg && strcmp(ev->fail_msg, err.msg) != 0)
            why = "error message differs";
        else if (ev->fail_re && !regex_match(ev->fail_re, err.msg))
            why = "error message does not match the regex";
    } else if (rc < 0) {
        why = "unexpected error";
    } else {
        why = compare(ev, &res);
        if (!why && ev->want_warn &&
            (res.nwarnings == 0 || ((ev->warn_msg || ev->warn_re) &&
                                    !list_has(res.warnings, res.nwarnings, ev->warn_msg, ev->warn_re))))
            why = "expected warning missing";
        if (!why && ev->want_info &&
            (res.ninfos == 0 ||
             ((ev->info_msg || ev->info_re) && !list_has(res.infos, res.ninfos, ev->info_msg, ev->info_re))))
            why = "expected info missing";
        if (!why && ev->no_warn && res.nwarnings)
            why = "unexpected warning";
        if (!why && ev->no_info && res.ninfos)
            why = "unexpected info";
    }
    if (why) {
        r->failed++;
        printf("FAIL %s:%d: %s\n  query: %s\n  expected:\n", r->file, ev->line, why, ev->expr);
        print_expected(stdout, ev);
        printf("  got:\n");
        if (rc < 0)
            printf("    error: %s\n", err.msg);
        else
            print_result(stdout, &res);
    } else {
        r->passed++;
    }
    query_result_free(&res);
}

static void eval_free(eval_cmd *ev) {
    for (size_t i = 0; i < ev->nes; i++)
        free(ev->es[i].p.v);
    free(ev->es);
    memset(ev, 0, sizeof *ev);
}

/* Parses "msg: text" / "regex: text" after an expect keyword. */
static void parse_msg(const char *p, arena *a, char **msg, char **re) {
    p = skip_ws(p);
    if (strncmp(p, "msg:", 4) == 0)
        *msg = arena_strndup(a, skip_ws(p + 4), strlen(skip_ws(p + 4)));
    else if (strncmp(p, "regex:", 6) == 0)
        *re = arena_strndup(a, skip_ws(p + 6), strlen(skip_ws(p + 6)));
}

static int parse_eval_header(runner *r, const char *line, eval_cmd *ev, arena *a) {
    const char *p = line;
    const char *kw_end = p;
    while (*kw_end && !isspace((unsigned char)*kw_end))
        kw_end++;
    size_t kl = (size_t)(kw_end - p);
    if (kl == 9 && strncmp(p, "eval_fail", 9) == 0)
        ev->want_fail = 1;
    else if (kl == 9 && strncmp(p, "eval_warn", 9) == 0)
        ev->want_warn = 1;
    else if (kl == 9 && strncmp(p, "eval_info", 9) == 0)
        ev->want_info = 1;
    else if (kl == 12 && strncmp(p, "eval_ordered", 12) == 0)
        ev->ordered = 1;
    p = skip_ws(kw_end);
    char tok[64];
    if (strncmp(p, "instant", 7) == 0) {
        p = skip_ws(p + 7);
        if (strncmp(p, "at ", 3) != 0)
            return -1;
        p = skip_ws(p + 3);
        size_t n = 0;
        while (*p && !isspace((unsigned char)*p) && n < sizeof tok - 1)
            tok[n++] = *p++;
        tok[n] = 0;
        if (parse_time(tok, &ev->at) < 0)
            return -1;
    } else if (strncmp(p, "range", 5) == 0) {
        ev->is_range = 1;
        p = skip_ws(p + 5);
        int64_t *dst[3] = {&ev->start, &ev->end, &ev->step};
        const char *kws[3] = {"from ", "to ", "step "};
        for (int i = 0; i < 3; i++) {
            if (strncmp(p, kws[i], strlen(kws[i])) != 0)
                return -1;
            p = skip_ws(p + strlen(kws[i]));
            size_t n = 0;
            while (*p && !isspace((unsigned char)*p) && n < sizeof tok - 1)
                tok[n++] = *p++;
            tok[n] = 0;
            if (parse_time(tok, dst[i]) < 0)
                return -1;
            p = skip_ws(p);
        }
    } else {
        return -1;
    }
    p = skip_ws(p);
    ev->expr = arena_strndup(a, p, strlen(p));
    (void)r;
    return 0;
}

static void add_expect_series(eval_cmd *ev, runner *r, const char *line, int lineno, arena *a) {
    expect_series es;
    memset(&es, 0, sizeof es);
    es.line = lineno;
    const char *p = parse_series(line, a, &es.ls);
    if (!p) {
        fprintf(stderr, "%s:%d: bad series line\n", r->file, lineno);
        ev->skip = 1;
        return;
    }
    int rc = parse_values(p, &es.p);
    if (rc == 1)
        ev->skip = 1;
    if (rc != 0) {
        free(es.p.v);
        if (rc < 0) {
            fprintf(stderr, "%s:%d: bad values\n", r->file, lineno);
            ev->skip = 1;
        }
        return;
    }
    if (ev->nes == ev->capes) {
        ev->capes = ev->capes ? ev->capes * 2 : 8;
        ev->es = realloc(ev->es, ev->capes * sizeof *ev->es);
        if (!ev->es)
            exit(2);
    }
    ev->es[ev->nes++] = es;
}

/* Loads the body of a `load`: a series written twice keeps the later
 * value where both have one (as Prometheus' test storage does). */
static int do_load(runner *r, int64_t step, char **lines, int *linenos, size_t n) {
    kiln_err e;
    lset *sets = calloc(n + 1, sizeof *sets);
    pts *vals = calloc(n + 1, sizeof *vals);
    size_t ns = 0;
    if (!sets || !vals)
        exit(2);
    for (size_t i = 0; i < n; i++) {
        lset ls;
        const char *p = parse_series(lines[i], &r->mem, &ls);
        if (!p) {
            fprintf(stderr, "%s:%d: bad series\n", r->file, linenos[i]);
            continue;
        }
        pts v;
        memset(&v, 0, sizeof v);
        int rc = parse_values(p, &v);
        if (rc == 1) {
            if (r->nhist == r->caphist) {
                r->caphist = r->caphist ? r->caphist * 2 : 8;
                r->hist = realloc(r->hist, r->caphist * sizeof(lset));
                if (!r->hist)
                    exit(2);
            }
            r->hist[r->nhist++] = ls;
            free(v.v);
            continue;
        }
        if (rc < 0)
            fprintf(stderr, "%s:%d: bad values\n", r->file, linenos[i]);
        size_t k;
        for (k = 0; k < ns; k++)
            if (labels_cmp(sets[k].ls, sets[k].n, ls.ls, ls.n) == 0)
                break;
        if (k == ns) {
            sets[ns] = ls;
            vals[ns++] = v;
            continue;
        }
        for (size_t j = 0; j < v.n; j++) {
            while (vals[k].n <= j)
                pts_push(&vals[k], 0, 0);
            if (v.v[j].present)
                vals[k].v[j] = v.v[j];
        }
        free(v.v);
    }
    appender *ap = storage_appender(r->st);
    if (!ap)
        exit(2);
    for (size_t k = 0; k < ns; k++) {
        uint64_t ref = 0;
        for (size_t j = 0; j < vals[k].n; j++) {
            if (!vals[k].v[j].present)
                continue;
            appender_append(ap, &ref, ref ? NULL : sets[k].ls, ref ? 0 : sets[k].n, (int64_t)j * step,
                            vals[k].v[j].v, &e);
        }
        free(vals[k].v);
    }
    free(sets);
    free(vals);
    if (appender_commit(ap, &e) < 0) {
        fprintf(stderr, "%s: commit: %s\n", r->file, e.msg);
        return -1;
    }
    return 0;
}

static int is_indented_or_data(const char *line) {
    return line[0] == ' ' || line[0] == '\t';
}

static void run_file(runner *r, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("FAIL %s: cannot open\n", path);
        r->failed++;
        return;
    }
    r->file = path;
    arena_init(&r->mem, 0);
    r->nhist = 0;
    if (storage_fresh(r) < 0) {
        printf("FAIL %s: cannot open a storage\n", path);
        r->failed++;
        fclose(f);
        arena_free(&r->mem);
        return;
    }
    /* read all lines */
    char **lines = NULL;
    size_t nl = 0, capl = 0;
    char *l = NULL;
    size_t lcap = 0;
    ssize_t got;
    while ((got = getline(&l, &lcap, f)) >= 0) {
        while (got > 0 && (l[got - 1] == '\n' || l[got - 1] == '\r'))
            l[--got] = 0;
        if (nl == capl) {
            capl = capl ? capl * 2 : 256;
            lines = realloc(lines, capl * sizeof(char *));
            if (!lines)
                exit(2);
        }
        lines[nl++] = strdup(l);
    }
    free(l);
    fclose(f);

    for (size_t i = 0; i < nl;) {
        const char *line = lines[i];
        const char *t = skip_ws(line);
        if (!*t || *t == '#') {
            i++;
            continue;
        }
        if (strncmp(t, "clear", 5) == 0 && (!t[5] || isspace((unsigned char)t[5]))) {
            storage_fresh(r);
            r->nhist = 0;
            i++;
            continue;
        }
        if (strncmp(t, "load", 4) == 0) {
            const char *p = t + 4;
            if (strncmp(p, "_with_nhcb", 10) == 0)
                p += 10;
            p = skip_ws(p);
            int64_t step = 0;
            if (parse_time(p, &step) < 0) {
                printf("FAIL %s:%zu: bad load interval\n", path, i + 1);
                r->failed++;
            }
            size_t j = i + 1;
            char **body = malloc((nl + 1) * sizeof(char *));
            int *nos = malloc((nl + 1) * sizeof(int));
            size_t nb = 0;
            while (j < nl) {
                const char *s = skip_ws(lines[j]);
                if (!*s)
                    break;
                if (*s == '#') {
                    j++;
                    continue;
                }
                if (!is_indented_or_data(lines[j]))
                    break;
                body[nb] = lines[j];
                nos[nb++] = (int)j + 1;
                j++;
            }
            if (step > 0)
                do_load(r, step, body, nos, nb);
            free(body);
            free(nos);
            i = j;
            continue;
        }
        if (strncmp(t, "eval", 4) == 0) {
            eval_cmd ev;
            memset(&ev, 0, sizeof ev);
            ev.line = (int)i + 1;
            arena a;
            arena_init(&a, 0);
            if (parse_eval_header(r, t, &ev, &a) < 0) {
                printf("FAIL %s:%d: cannot parse eval line\n", path, ev.line);
                r->failed++;
                arena_free(&a);
                i++;
                continue;
            }
            size_t j = i + 1;
            while (j < nl) {
                const char *s = skip_ws(lines[j]);
                if (!*s)
                    break;
                if (*s == '#') {
                    j++;
                    continue;
                }
                if (!is_indented_or_data(lines[j]) &&
                    (strncmp(s, "eval", 4) == 0 || strncmp(s, "load", 4) == 0 || strncmp(s, "clear", 5) == 0))
                    break;
                if (strncmp(s, "expect ", 7) == 0) {
                    const char *p = skip_ws(s + 7);
                    if (strncmp(p, "fail", 4) == 0) {
                        ev.want_fail = 1;
                        parse_msg(p + 4, &a, &ev.fail_msg, &ev.fail_re);
                    } else if (strncmp(p, "warn", 4) == 0) {
                        ev.want_warn = 1;
                        parse_msg(p + 4, &a, &ev.warn_msg, &ev.warn_re);
                    } else if (strncmp(p, "info", 4) == 0) {
                        ev.want_info = 1;
                        parse_msg(p + 4, &a, &ev.info_msg, &ev.info_re);
                    } else if (strncmp(p, "no_warn", 7) == 0) {
                        ev.no_warn = 1;
                    } else if (strncmp(p, "no_info", 7) == 0) {
                        ev.no_info = 1;
                    } else if (strncmp(p, "ordered", 7) == 0) {
                        ev.ordered = 1;
                    } else if (strncmp(p, "string", 6) == 0) {
                        ev.has_string = 1;
                        const char *q = skip_ws(p + 6);
                        if (!parse_quoted(q, &a, &ev.string))
                            ev.string = arena_strndup(&a, q, strlen(q));
                    } else if (strncmp(p, "range vector", 12) == 0) {
                        char a1[64], a2[64], a3[64];
                        ev.range_vec = 1;
                        if (sscanf(p + 12, " from %63s to %63s step %63s", a1, a2, a3) != 3 ||
                            parse_time(a1, &ev.rv_start) < 0 || parse_time(a2, &ev.rv_end) < 0 ||
                            parse_time(a3, &ev.rv_step) < 0)
                            ev.skip = 1;
                    } else {
                        ev.skip = 1;
                    }
                } else {
                    double v;
                    const char *q = parse_num(s, &v);
                    if (q && !*skip_ws(q) && !is_ident_start((unsigned char)*s)) {
                        ev.has_scalar = 1;
                        ev.scalar = v;
                    } else if (q && !*skip_ws(q)) {
                        /* NaN / Inf as a bare scalar */
                        ev.has_scalar = 1;
                        ev.scalar = v;
                    } else {
                        add_expect_series(&ev, r, s, (int)j + 1, &a);
                    }
                }
                j++;
            }
            run_eval(r, &ev);
            eval_free(&ev);
            arena_free(&a);
            i = j;
            continue;
        }
        printf("FAIL %s:%zu: unknown command: %s\n", path, i + 1, t);
        r->failed++;
        i++;
    }
    for (size_t i = 0; i < nl; i++)
        free(lines[i]);
    free(lines);
    storage_drop(r);
    free(r->hist);
    r->hist = NULL;
    r->nhist = r->caphist = 0;
    arena_free(&r->mem);
}

int main(int argc, char **argv) {
    runner r;
    memset(&r, 0, sizeof r);
    log_setup(LOG_WARN, LOG_FORMAT_LOGFMT);
    query_engine_init(&r.eng, NULL);
    r.eng.opts.timeout_ms = 0;
    for (int i = 1; i < argc; i++)
        run_file(&r, argv[i]);
    printf("%d passed, %d failed, %d skipped\n", r.passed, r.failed, r.skipped);
    return r.failed ? 1 : 0;
}
