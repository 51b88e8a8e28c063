/*
 * promqltest.c - runs PromQL test scripts in Prometheus' promqltest format
 * against kiln's engine in process.
 *
 * Usage: promqltest [-v] [-k KNOWN] FILE.test...   Prints each failing eval with
 * file:line, the query, what was expected and what came back; then one
 * `skipped N: <reason>` line per reason any eval was skipped for, then
 * `N passed, N failed, N skipped`; exits 1 when anything failed.  -v also
 * prints every skipped eval (and, for those that ran, how they failed).
 *
 * Supported: `load <step>` (and load_with_nhcb, whose float series are
 * loaded) with the expanding notation (`1+2x5`, `-2-1x4`, `1x3`, `_`, `_x3`,
 * `stale`), `clear`, `eval instant at <t> <expr>`, `eval range from <t> to
 * <t> step <d> <expr>`, the old forms eval_fail/eval_warn/eval_info/
 * eval_ordered, and `expect fail|warn|info|no_warn|no_info|ordered|string|
 * range vector` lines (with `msg:` / `regex:`).  Anything else - an unknown
 * command or expect line, a load or expected line that does not parse - is a
 * failure naming file:line, never a skip.  Values match with a relative
 * tolerance of 1e-6, NaN matches NaN.
 *
 * Native histograms (`{{...}}`) are not in kiln yet, and are the only skips:
 * an eval whose expected result holds one is skipped without running; a load
 * line holding some loads the line's float samples and remembers the series
 * (and load_with_nhcb's `x` for each `x_bucket`), and an eval that reads
 * such a series is run, and skipped only when it fails (Prometheus read
 * histogram samples kiln has not got) AND the KNOWN file (-k) lists it as
 * `name.test:line`: each listed eval was reviewed to fail for that reason
 * alone.  Such an eval that fails unlisted is a failure, and so is a listed
 * one that does not fail.  Each reason is counted on its own; tests/skips.txt
 * holds the counts expected.
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

/* Why an eval is skipped.  The two reasons are native histograms, which kiln
 * does not have yet; tests/run.py compares the counts with tests/skips.txt. */
enum { SKIP_HIST_EXPECTED, SKIP_HIST_READ, SKIP_NREASONS };

static const char *const skip_reason[SKIP_NREASONS] = {
    [SKIP_HIST_EXPECTED] = "native histograms: the expected result holds a native histogram",
    [SKIP_HIST_READ] = "native histograms: fails, and reads a series loaded with native histogram "
                       "samples (kiln loads only its float samples)",
};

typedef struct runner {
    const char *file;
    char dir[256];
    storage *st;
    arena mem; /* per file (histogram series labels) */
    lset *hist;
    size_t nhist, caphist;
    query_engine eng;
    int passed, failed;
    int skipped[SKIP_NREASONS];
    int verbose; /* -v: print every skipped eval, and why a skipped one failed */
    /* -k FILE: the evals (`name.test:line`) that read a histogram-loaded
     * series and are known to fail for that reason alone; only these skip. */
    const char *known_path;
    char **known;
    int *known_used;
    size_t nknown;
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

/* One expanded point: none (`_`), a float, or a native histogram (only
 * its place is kept). */
enum { PT_NONE, PT_FLOAT, PT_HIST };

typedef struct pt {
    int present; /* PT_* */
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

/* Skips one `{{...}}` native histogram literal; NULL when it is not closed.
 * The literal's content is not read: kiln has no native histograms yet. */
static const char *skip_histogram(const char *p) {
    const char *e = strstr(p + 2, "}}");
    return e ? e + 2 : NULL;
}

/* Reads the `xN` after a point: *times = N (0 when there is none); NULL when
 * the x has no count after it. */
static const char *parse_times(const char *p, unsigned long *times) {
    *times = 0;
    if (*p != 'x')
        return p;
    char *q;
    *times = strtoul(p + 1, &q, 10);
    return q == p + 1 ? NULL : q;
}

/* Expands the value notation into out: floats, `_` (PT_NONE), `stale` and
 * native histograms `{{...}}`, `{{...}}xN`, `{{...}}+{{...}}xN` (PT_HIST,
 * only their positions kept).  Returns how many histogram points it holds,
 * or -1 on a syntax error. */
static int parse_values(const char *p, pts *out) {
    int nhist = 0;
    for (;;) {
        p = skip_ws(p);
        if (!*p || *p == '#')
            return nhist;
        unsigned long times = 0;
        int kind = PT_FLOAT;
        double start = 0, off = 0;
        if (*p == '_') {
            kind = PT_NONE;
            p = parse_times(p + 1, &times);
        } else if (strncmp(p, "stale", 5) == 0) {
            start = stale_nan();
            p = parse_times(p + 5, &times);
        } else if (p[0] == '{' && p[1] == '{') {
            kind = PT_HIST;
            p = skip_histogram(p);
            if (p && (*p == '+' || *p == '-')) {
                if (p[1] != '{' || p[2] != '{')
                    return -1;
                p = skip_histogram(p + 1);
                if (!p || *p != 'x')
                    return -1;
            }
            if (p)
                p = parse_times(p, &times);
            nhist += (int)times + 1;
        } else {
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
            p = parse_times(p, &times);
        }
        if (!p || (*p && *p != ' ' && *p != '\t'))
            return -1;
        /* no arithmetic on a stale marker: it would quiet the NaN */
        for (unsigned long i = 0; i <= times; i++)
            pts_push(out, kind, off != 0 ? start + off * (double)i : start);
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
        if (storage_close(r->st, &e) != 0)
            fprintf(stderr, "%s: closing the storage: %s\n", r->file, e.msg);
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
    if (storage_close(r->st, &e) != 0)
        fprintf(stderr, "%s: closing the storage: %s\n", r->file, e.msg);
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
    int hist_expected; /* an expected value is a native histogram */
    int bad_line;      /* the first malformed line of the eval, 0 when none */
    char bad[200];     /* what is wrong with it */
} eval_cmd;

/* Marks the eval malformed (the first problem wins): it fails without running. */
static void eval_bad(eval_cmd *ev, int lineno, const char *what, const char *text) {
    if (ev->bad_line)
        return;
    ev->bad_line = lineno;
    snprintf(ev->bad, sizeof ev->bad, "%s: %.120s", what, text);
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
            if (ev->es[i].p.v[j].present == PT_FLOAT) {
                fmt_double_g(ev->es[i].p.v[j].v, num);
                fprintf(f, " %s", num);
            } else {
                fputs(ev->es[i].p.v[j].present == PT_HIST ? " {{...}}" : " _", f);
            }
        }
        fputc('\n', f);
    }
    if (!ev->want_fail && !ev->has_scalar && !ev->has_string && ev->nes == 0)
        fprintf(f, "    (nothing)\n");
}

/* The test scripts' tolerance: a relative 1e-6, and NaN matches NaN. */
static int values_match(double a, double b) {
    return (isnan(a) && isnan(b)) || double_almost_equal(a, b, 1e-6);
}

/* Compares a result with the expectation; NULL when equal, else why. */
static const char *compare(const eval_cmd *ev, const query_result *res) {
    static char why[512];
    if (ev->has_scalar) {
        if (res->type != QUERY_SCALAR)
            return "expected a scalar";
        return values_match(res->scalar, ev->scalar) ? NULL : "scalar value differs";
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
            if (es->p.n != 1 || es->p.v[0].present != PT_FLOAT || rs->npts != 1)
                return "bad expected vector value";
            if (!values_match(rs->pts[0].v, es->p.v[0].v))
                return "value differs";
            continue;
        }
        int64_t st = ev->range_vec ? ev->rv_start : ev->start;
        int64_t step = ev->range_vec ? ev->rv_step : ev->step;
        size_t k = 0;
        for (size_t j = 0; j < es->p.n; j++) {
            if (es->p.v[j].present == PT_NONE)
                continue;
            int64_t t = st + (int64_t)j * step;
            if (k >= rs->npts || rs->pts[k].t != t)
                return "points differ (timestamps)";
            if (!values_match(rs->pts[k].v, es->p.v[j].v))
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

/* Whether `name.test:line` of this eval is in the -k list (and marks it seen). */
static int known_histogram_read(runner *r, int line) {
    const char *base = strrchr(r->file, '/');
    base = base ? base + 1 : r->file;
    char key[512];
    snprintf(key, sizeof key, "%s:%d", base, line);
    for (size_t i = 0; i < r->nknown; i++)
        if (strcmp(r->known[i], key) == 0) {
            r->known_used[i] = 1;
            return 1;
        }
    return 0;
}

/* Reads the -k list: one `name.test:line` a line, `#` starts a comment.
 * Returns 0, or -1 when the file cannot be read. */
static int load_known(runner *r, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    r->known_path = path;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *h = strchr(line, '#');
        if (h)
            *h = 0;
        char *b = line, *e;
        while (*b == ' ' || *b == '\t')
            b++;
        for (e = b; *e && *e != ' ' && *e != '\t' && *e != '\n'; e++)
            ;
        if (e == b)
            continue;
        *e = 0;
        char **nk = realloc(r->known, (r->nknown + 1) * sizeof *nk);
        int *nu = realloc(r->known_used, (r->nknown + 1) * sizeof *nu);
        if (nk)
            r->known = nk;
        if (nu)
            r->known_used = nu;
        if (!nk || !nu || !(r->known[r->nknown] = strdup(b))) {
            fclose(f);
            return -1;
        }
        r->known_used[r->nknown++] = 0;
    }
    fclose(f);
    return 0;
}

static void run_eval(runner *r, eval_cmd *ev) {
    if (ev->bad_line) {
        r->failed++;
        printf("FAIL %s:%d: %s\n", r->file, ev->bad_line, ev->bad);
        return;
    }
    if (ev->hist_expected) {
        r->skipped[SKIP_HIST_EXPECTED]++;
        if (r->verbose)
            printf("SKIP %s:%d: %s\n  query: %s\n", r->file, ev->line, skip_reason[SKIP_HIST_EXPECTED],
                   ev->expr);
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
    int hist_read = 0;
    if (why && r->nhist) {
        promql_ast *ast = NULL;
        kiln_err e;
        if (promql_parse(ev->expr, &ast, &e) == 0) {
            hist_read = touches_histogram(r, ast->root);
            promql_ast_free(ast);
        }
    }
    if (why && hist_read && !known_histogram_read(r, ev->line)) {
        r->failed++;
        printf("FAIL %s:%d: %s; it reads a histogram-loaded series but is not listed in %s\n  query: %s\n",
               r->file, ev->line, why, r->known_path ? r->known_path : "a -k file", ev->expr);
        goto done;
    }
    if (why && hist_read) {
        /* Prometheus read histogram samples kiln did not load: the answers
         * differ for that reason (each one is listed in the -k file after a
         * review).  -v shows each one. */
        r->skipped[SKIP_HIST_READ]++;
        if (!r->verbose)
            goto done;
        printf("SKIP %s:%d: %s\n  failure: %s\n  query: %s\n  expected:\n", r->file, ev->line,
               skip_reason[SKIP_HIST_READ], why, ev->expr);
        print_expected(stdout, ev);
        printf("  got:\n");
        if (rc < 0)
            printf("    error: %s\n", err.msg);
        else
            print_result(stdout, &res);
    } else if (why) {
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
done:
    query_result_free(&res);
}

static void eval_free(eval_cmd *ev) {
    for (size_t i = 0; i < ev->nes; i++)
        free(ev->es[i].p.v);
    free(ev->es);
    memset(ev, 0, sizeof *ev);
}

/* Parses what may follow an expect keyword: nothing, "msg: text" or
 * "regex: text"; -1 for anything else. */
static int parse_msg(const char *p, arena *a, char **msg, char **re) {
    if (*p && *p != ' ' && *p != '\t')
        return -1; /* `expect failure`, not `expect fail` */
    p = skip_ws(p);
    if (strncmp(p, "msg:", 4) == 0)
        *msg = arena_strndup(a, skip_ws(p + 4), strlen(skip_ws(p + 4)));
    else if (strncmp(p, "regex:", 6) == 0)
        *re = arena_strndup(a, skip_ws(p + 6), strlen(skip_ws(p + 6)));
    else if (*p)
        return -1;
    return 0;
}

/* Whether p is the word w followed by nothing but blanks. */
static int is_word(const char *p, const char *w) {
    size_t n = strlen(w);
    return strncmp(p, w, n) == 0 && !*skip_ws(p + n);
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
    else if (kl != 4 || strncmp(p, "eval", 4) != 0)
        return -1;
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

static void add_expect_series(eval_cmd *ev, const char *line, int lineno, arena *a) {
    expect_series es;
    memset(&es, 0, sizeof es);
    es.line = lineno;
    const char *p = parse_series(line, a, &es.ls);
    if (!p) {
        eval_bad(ev, lineno, "malformed series in the expected result", line);
        return;
    }
    int nhist = parse_values(p, &es.p);
    if (nhist < 0 || es.p.n == 0) {
        free(es.p.v);
        eval_bad(ev, lineno, "malformed values in the expected result", line);
        return;
    }
    if (nhist > 0)
        ev->hist_expected = 1;
    if (ev->nes == ev->capes) {
        ev->capes = ev->capes ? ev->capes * 2 : 8;
        ev->es = realloc(ev->es, ev->capes * sizeof *ev->es);
        if (!ev->es)
            exit(2);
    }
    ev->es[ev->nes++] = es;
}

/* Remembers a series Prometheus would hold native histogram samples in. */
static void add_hist(runner *r, lset ls) {
    if (r->nhist == r->caphist) {
        r->caphist = r->caphist ? r->caphist * 2 : 8;
        r->hist = realloc(r->hist, r->caphist * sizeof(lset));
        if (!r->hist)
            exit(2);
    }
    r->hist[r->nhist++] = ls;
}

/* load_with_nhcb also turns each classic histogram `x_bucket{le=...}` into
 * a native histogram series `x` without `le`, which kiln does not build:
 * remembered as a histogram series. */
static void add_nhcb(runner *r, lset ls) {
    const char *name = labels_get(ls.ls, ls.n, LABEL_NAME);
    size_t nl = name ? strlen(name) : 0;
    if (nl <= 7 || strcmp(name + nl - 7, "_bucket") != 0 || !labels_get(ls.ls, ls.n, "le"))
        return;
    lset h = {arena_alloc(&r->mem, ls.n * sizeof(label)), 0};
    for (size_t i = 0; i < ls.n; i++) {
        if (strcmp(ls.ls[i].name, "le") == 0)
            continue;
        h.ls[h.n] = ls.ls[i];
        if (strcmp(ls.ls[i].name, LABEL_NAME) == 0)
            h.ls[h.n].value = arena_strndup(&r->mem, name, nl - 7);
        h.n++;
    }
    add_hist(r, h);
}

/* Loads the body of a `load`: a series written twice keeps the later
 * value where both have one (as Prometheus' test storage does).  Native
 * histogram samples are not loaded (kiln has none yet): their series are
 * remembered in r->hist and their float samples loaded.  A line that does
 * not parse, or a sample the storage refuses, fails (counted in r->failed). */
static void do_load(runner *r, int64_t step, int nhcb, char **lines, int *linenos, size_t n) {
    kiln_err e;
    lset *sets = calloc(n + 1, sizeof *sets);
    pts *vals = calloc(n + 1, sizeof *vals);
    int *first = calloc(n + 1, sizeof *first);
    size_t ns = 0;
    if (!sets || !vals || !first)
        exit(2);
    for (size_t i = 0; i < n; i++) {
        lset ls;
        const char *p = parse_series(lines[i], &r->mem, &ls);
        pts v;
        memset(&v, 0, sizeof v);
        int nhist = p ? parse_values(p, &v) : -1;
        if (nhist < 0 || v.n == 0) {
            printf("FAIL %s:%d: malformed load line: %s\n", r->file, linenos[i], skip_ws(lines[i]));
            r->failed++;
            free(v.v);
            continue;
        }
        if (nhist > 0)
            add_hist(r, ls);
        if (nhcb)
            add_nhcb(r, ls);
        size_t k;
        for (k = 0; k < ns; k++)
            if (labels_cmp(sets[k].ls, sets[k].n, ls.ls, ls.n) == 0)
                break;
        if (k == ns) {
            sets[ns] = ls;
            first[ns] = linenos[i];
            vals[ns++] = v;
            continue;
        }
        for (size_t j = 0; j < v.n; j++) {
            while (vals[k].n <= j)
                pts_push(&vals[k], PT_NONE, 0);
            if (v.v[j].present != PT_NONE)
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
            if (vals[k].v[j].present != PT_FLOAT)
                continue;
            if (appender_append(ap, &ref, ref ? NULL : sets[k].ls, ref ? 0 : sets[k].n, (int64_t)j * step,
                                vals[k].v[j].v, &e) < 0) {
                printf("FAIL %s:%d: the storage refused point %zu: %s\n", r->file, first[k], j, e.msg);
                r->failed++;
                break;
            }
        }
        free(vals[k].v);
    }
    free(sets);
    free(vals);
    free(first);
    if (appender_commit(ap, &e) < 0) {
        printf("FAIL %s: commit: %s\n", r->file, e.msg);
        r->failed++;
    }
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
        int nhcb = strncmp(t, "load_with_nhcb", 14) == 0;
        size_t kw = nhcb ? 14 : 4;
        if (strncmp(t, "load", 4) == 0 && (t[kw] == ' ' || t[kw] == '\t')) {
            int64_t step = 0;
            if (parse_time(skip_ws(t + kw), &step) < 0 || step <= 0) {
                printf("FAIL %s:%zu: bad load interval: %s\n", path, i + 1, t);
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
                do_load(r, step, nhcb, body, nos, nb);
            free(body);
            free(nos);
            i = j;
            continue;
        }
        if (strncmp(t, "eval", 4) == 0 && (t[4] == '_' || t[4] == ' ' || t[4] == '\t')) {
            eval_cmd ev;
            memset(&ev, 0, sizeof ev);
            ev.line = (int)i + 1;
            arena a;
            arena_init(&a, 0);
            if (parse_eval_header(r, t, &ev, &a) < 0) {
                printf("FAIL %s:%d: malformed eval line: %s\n", path, ev.line, t);
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
                int lineno = (int)j + 1;
                if (strncmp(s, "expect ", 7) == 0) {
                    const char *p = skip_ws(s + 7);
                    int bad = 0;
                    if (strncmp(p, "fail", 4) == 0) {
                        ev.want_fail = 1;
                        bad = parse_msg(p + 4, &a, &ev.fail_msg, &ev.fail_re);
                    } else if (strncmp(p, "warn", 4) == 0) {
                        ev.want_warn = 1;
                        bad = parse_msg(p + 4, &a, &ev.warn_msg, &ev.warn_re);
                    } else if (strncmp(p, "info", 4) == 0) {
                        ev.want_info = 1;
                        bad = parse_msg(p + 4, &a, &ev.info_msg, &ev.info_re);
                    } else if (is_word(p, "no_warn")) {
                        ev.no_warn = 1;
                    } else if (is_word(p, "no_info")) {
                        ev.no_info = 1;
                    } else if (is_word(p, "ordered")) {
                        ev.ordered = 1;
                    } else if (strncmp(p, "string ", 7) == 0) {
                        ev.has_string = 1;
                        const char *q = skip_ws(p + 7);
                        if (!parse_quoted(q, &a, &ev.string))
                            ev.string = arena_strndup(&a, q, strlen(q));
                    } else if (strncmp(p, "range vector ", 13) == 0) {
                        char a1[64], a2[64], a3[64], rest[2];
                        ev.range_vec = 1;
                        bad = sscanf(p + 13, " from %63s to %63s step %63s %1s", a1, a2, a3, rest) != 3 ||
                              parse_time(a1, &ev.rv_start) < 0 || parse_time(a2, &ev.rv_end) < 0 ||
                              parse_time(a3, &ev.rv_step) < 0;
                    } else {
                        eval_bad(&ev, lineno, "unknown expect line", s);
                    }
                    if (bad)
                        eval_bad(&ev, lineno, "malformed expect line", s);
                } else {
                    double v;
                    const char *q = parse_num(s, &v);
                    if (q && !*skip_ws(q)) {
                        /* a bare scalar (NaN and Inf too) */
                        ev.has_scalar = 1;
                        ev.scalar = v;
                    } else {
                        add_expect_series(&ev, s, lineno, &a);
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
    r.eng.opts.features = FEATURE_PROMQL_ALL; /* what Prometheus' test engine turns on */
    int i = 1;
    if (i < argc && strcmp(argv[i], "-v") == 0) {
        r.verbose = 1;
        i++;
    }
    if (i + 1 < argc && strcmp(argv[i], "-k") == 0) {
        if (load_known(&r, argv[i + 1]) != 0) {
            fprintf(stderr, "promqltest: cannot read %s\n", argv[i + 1]);
            return 2;
        }
        i += 2;
    }
    if (i == argc) {
        fprintf(stderr, "usage: promqltest [-v] [-k KNOWN] FILE.test...\n");
        return 2;
    }
    for (; i < argc; i++)
        run_file(&r, argv[i]);
    /* a listed eval that no longer fails (or is gone) must leave the list */
    for (size_t k = 0; k < r.nknown; k++) {
        if (!r.known_used[k]) {
            r.failed++;
            printf("FAIL %s: %s is listed but did not fail for a histogram read: remove it\n", r.known_path,
                   r.known[k]);
        }
        free(r.known[k]);
    }
    free(r.known);
    free(r.known_used);
    int skipped = 0;
    for (int k = 0; k < SKIP_NREASONS; k++) {
        if (r.skipped[k])
            printf("skipped %d: %s\n", r.skipped[k], skip_reason[k]);
        skipped += r.skipped[k];
    }
    printf("%d passed, %d failed, %d skipped\n", r.passed, r.failed, skipped);
    return r.failed ? 1 : 0;
}
