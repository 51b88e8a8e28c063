/*
 * promqltest.c - runs PromQL test scripts in Prometheus' promqltest format
 * against kiln's engine in process.
 *
 * Usage: promqltest [-v] FILE.test...   Prints each failing eval with
 * file:line, the query, what was expected and what came back, then
 * `N passed, N failed, N skipped` (nothing is skipped); exits 1 when
 * anything failed.
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
 * Native histograms are written `{{schema:N sum:S count:C z_bucket:Z
 * z_bucket_w:W buckets:[..] offset:O n_buckets:[..] n_offset:O
 * custom_values:[..] counter_reset_hint:gauge}}`, repeated as `{{...}}xN`
 * or stepped as `{{a}}+{{b}}xN` (each point adds b to the one before, as
 * Prometheus' FloatHistogram.Add does); load_with_nhcb also loads each
 * classic histogram `x_bucket{le=...}` (with `x_sum`) as a native
 * histogram `x` with custom buckets.  An expected histogram matches one
 * with the same schema, zero threshold, custom bounds and non-empty
 * buckets, counts and sum within the tolerance (the counter-reset hint is
 * not compared, as Prometheus' runner does not).  Nothing is skipped.
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
#include "query/nhist.h"
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
    arena mem; /* per file: load lines' labels and histograms */
    query_engine eng;
    int passed, failed;
    int verbose; /* -v: accepted for the old command lines; nothing is skipped */
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

/* One expanded point: none (`_`), a float, or a native histogram. */
enum { PT_NONE, PT_FLOAT, PT_HIST };

typedef struct pt {
    int present; /* PT_* */
    double v;
    histogram *h; /* PT_HIST: in the arena the values were parsed into */
} pt;

typedef struct pts {
    pt *v;
    size_t n, cap;
} pts;

static void pts_push(pts *p, int present, double v, histogram *h) {
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->v = realloc(p->v, p->cap * sizeof(pt));
        if (!p->v)
            exit(2);
    }
    p->v[p->n++] = (pt){present, v, h};
}

/* Reads `[n n ...]` into an arena array; NULL on a syntax error. */
static const char *parse_list(const char *p, arena *a, double **out, uint32_t *n) {
    double tmp[512];
    *n = 0;
    if (*p != '[')
        return NULL;
    p++;
    for (;;) {
        p = skip_ws(p);
        if (*p == ']')
            break;
        if (*n == 512 || !(p = parse_num(p, &tmp[*n])))
            return NULL;
        (*n)++;
    }
    *out = arena_alloc(a, *n * sizeof(double) + 1);
    if (!*out)
        exit(2);
    memcpy(*out, tmp, *n * sizeof(double));
    return p + 1;
}

/* One span of n buckets at offset off (arena). */
static hist_span *one_span(arena *a, int32_t off, uint32_t n) {
    hist_span *sp = arena_alloc(a, sizeof *sp);
    if (!sp)
        exit(2);
    *sp = (hist_span){off, n};
    return sp;
}

/* Parses one `{{...}}` native histogram literal (Prometheus' series
 * notation) into a histogram in a; returns the position after it, NULL on
 * a syntax error. */
static const char *parse_histogram(const char *p, arena *a, histogram **out) {
    histogram *h = arena_alloc(a, sizeof *h);
    if (!h)
        exit(2);
    double off = 0, noff = 0;
    p += 2;
    for (;;) {
        p = skip_ws(p);
        if (p[0] == '}' && p[1] == '}')
            break;
        const char *k = p;
        while (*p && *p != ':' && !isspace((unsigned char)*p))
            p++;
        size_t kl = (size_t)(p - k);
        if (*p != ':')
            return NULL;
        p = skip_ws(p + 1);
#define KEY(s) (kl == strlen(s) && strncmp(k, s, kl) == 0)
        double v = 0;
        if (KEY("buckets")) {
            p = parse_list(p, a, &h->pos, &h->npos);
        } else if (KEY("n_buckets")) {
            p = parse_list(p, a, &h->neg, &h->nneg);
        } else if (KEY("custom_values")) {
            p = parse_list(p, a, &h->custom_values, &h->ncustom);
        } else if (KEY("counter_reset_hint")) {
            static const char *const hints[] = {"unknown", "reset", "not_reset", "gauge"};
            const char *w = p;
            while (isalpha((unsigned char)*p) || *p == '_')
                p++;
            int found = 0;
            for (int i = 0; i < 4 && !found; i++)
                if ((size_t)(p - w) == strlen(hints[i]) && strncmp(w, hints[i], (size_t)(p - w)) == 0) {
                    h->hint = (uint8_t)i;
                    found = 1;
                }
            if (!found)
                return NULL;
        } else {
            if (!(p = parse_num(p, &v)))
                return NULL;
            if (KEY("schema"))
                h->schema = (int32_t)v;
            else if (KEY("sum"))
                h->sum = v;
            else if (KEY("count"))
                h->count = v;
            else if (KEY("z_bucket"))
                h->zero_count = v;
            else if (KEY("z_bucket_w"))
                h->zero_threshold = v;
            else if (KEY("offset"))
                off = v;
            else if (KEY("n_offset"))
                noff = v;
            else
                return NULL;
        }
#undef KEY
        if (!p)
            return NULL;
    }
    if (h->npos) {
        h->pos_spans = one_span(a, (int32_t)off, h->npos);
        h->npos_spans = 1;
    }
    if (h->nneg) {
        h->neg_spans = one_span(a, (int32_t)noff, h->nneg);
        h->nneg_spans = 1;
    }
    *out = h;
    return p + 2;
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
 * native histograms `{{...}}`, `{{...}}xN`, `{{a}}+{{b}}xN`, `{{a}}-{{b}}xN`
 * (histograms in a).  Returns how many histogram points it holds, or -1 on
 * a syntax error. */
static int parse_values(const char *p, arena *a, pts *out) {
    int nhist = 0;
    for (;;) {
        p = skip_ws(p);
        if (!*p || *p == '#')
            return nhist;
        unsigned long times = 0;
        int kind = PT_FLOAT;
        double start = 0, off = 0;
        histogram *h = NULL, *inc = NULL;
        int sub = 0;
        if (*p == '_') {
            kind = PT_NONE;
            p = parse_times(p + 1, &times);
        } else if (strncmp(p, "stale", 5) == 0) {
            start = stale_nan();
            p = parse_times(p + 5, &times);
        } else if (p[0] == '{' && p[1] == '{') {
            kind = PT_HIST;
            p = parse_histogram(p, a, &h);
            if (p && (*p == '+' || *p == '-')) {
                sub = *p == '-';
                if (p[1] != '{' || p[2] != '{')
                    return -1;
                p = parse_histogram(p + 1, a, &inc);
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
        for (unsigned long i = 0; i <= times; i++) {
            if (kind == PT_HIST && inc && i > 0) {
                histogram *nh;
                if (nh_add(a, h, inc, sub, &nh, NULL) != 0)
                    return -1;
                h = nh;
            }
            /* no arithmetic on a stale marker: it would quiet the NaN */
            pts_push(out, kind, off != 0 ? start + off * (double)i : start, h);
        }
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
    int bad_line;  /* the first malformed line of the eval, 0 when none */
    char bad[200]; /* what is wrong with it */
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

/* A histogram in the test scripts' notation (one span a side per run of
 * buckets: `offset` is the first index of the first span). */
static void print_hist(FILE *f, const histogram *h) {
    char num[FMT_DOUBLE_MAX];
    fprintf(f, " {{schema:%d", h->schema);
    fmt_double_g(h->sum, num);
    fprintf(f, " sum:%s", num);
    fmt_double_g(h->count, num);
    fprintf(f, " count:%s", num);
    if (h->zero_count != 0 || h->zero_threshold != 0) {
        fmt_double_g(h->zero_count, num);
        fprintf(f, " z_bucket:%s", num);
        fmt_double_g(h->zero_threshold, num);
        fprintf(f, " z_bucket_w:%s", num);
    }
    const char *side[2] = {"buckets", "n_buckets"};
    for (int s = 0; s < 2; s++) {
        const hist_span *sp = s ? h->neg_spans : h->pos_spans;
        uint32_t nsp = s ? h->nneg_spans : h->npos_spans;
        const double *c = s ? h->neg : h->pos;
        uint32_t k = 0;
        int32_t idx = 0;
        if (!nsp)
            continue;
        fprintf(f, " %s:[", side[s]);
        for (uint32_t i = 0; i < nsp; i++) {
            idx += sp[i].offset;
            fprintf(f, "%s@%d:", i ? " " : "", idx);
            for (uint32_t l = 0; l < sp[i].length; l++, k++, idx++) {
                fmt_double_g(c[k], num);
                fprintf(f, "%s%s", l ? " " : "", num);
            }
        }
        fputc(']', f);
    }
    if (h->ncustom) {
        fputs(" custom_values:[", f);
        for (uint32_t i = 0; i < h->ncustom; i++) {
            fmt_double_g(h->custom_values[i], num);
            fprintf(f, "%s%s", i ? " " : "", num);
        }
        fputc(']', f);
    }
    if (h->hint)
        fprintf(f, " hint:%d", h->hint);
    fputs("}}", f);
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
                if (res->series[i].hist && res->series[i].hist[j]) {
                    print_hist(f, res->series[i].hist[j]);
                    if (res->type == QUERY_MATRIX)
                        fprintf(f, "@%lld", (long long)res->series[i].pts[j].t / 1000);
                    continue;
                }
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
            } else if (ev->es[i].p.v[j].present == PT_HIST) {
                print_hist(f, ev->es[i].p.v[j].h);
            } else {
                fputs(" _", f);
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

/* Whether point j of rs matches the expected point e. */
static int point_match(const query_series *rs, size_t j, const pt *e) {
    const histogram *h = rs->hist ? rs->hist[j] : NULL;
    if (e->present == PT_HIST)
        return h && nh_equal(e->h, h, 1e-6);
    return !h && values_match(rs->pts[j].v, e->v);
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
            if (es->p.n != 1 || es->p.v[0].present == PT_NONE || rs->npts != 1)
                return "bad expected vector value";
            if (!point_match(rs, 0, &es->p.v[0]))
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
            if (!point_match(rs, k, &es->p.v[j]))
                return "points differ (values)";
            k++;
        }
        if (k != rs->npts)
            return "more points than expected";
    }
    return NULL;
}

static void run_eval(runner *r, eval_cmd *ev) {
    if (ev->bad_line) {
        r->failed++;
        printf("FAIL %s:%d: %s\n", r->file, ev->bad_line, ev->bad);
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
    int nhist = parse_values(p, a, &es.p);
    if (nhist < 0 || es.p.n == 0) {
        free(es.p.v);
        eval_bad(ev, lineno, "malformed values in the expected result", line);
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

/* The load being built: series (merged by label set) and their points. */
typedef struct loadset {
    lset *sets;
    pts *vals;
    int *first;
    size_t n, cap;
} loadset;

static size_t loadset_add(loadset *l, lset ls, int line) {
    for (size_t k = 0; k < l->n; k++)
        if (labels_cmp(l->sets[k].ls, l->sets[k].n, ls.ls, ls.n) == 0)
            return k;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->sets = realloc(l->sets, l->cap * sizeof *l->sets);
        l->vals = realloc(l->vals, l->cap * sizeof *l->vals);
        l->first = realloc(l->first, l->cap * sizeof *l->first);
        if (!l->sets || !l->vals || !l->first)
            exit(2);
    }
    l->sets[l->n] = ls;
    memset(&l->vals[l->n], 0, sizeof(pts));
    l->first[l->n] = line;
    return l->n++;
}

/* ls without `le`, named `base` (arena). */
static lset strip_le(runner *r, lset ls, const char *base, size_t nb) {
    lset h = {arena_alloc(&r->mem, (ls.n + 1) * sizeof(label)), 0};
    if (!h.ls)
        exit(2);
    for (size_t i = 0; i < ls.n; i++) {
        if (strcmp(ls.ls[i].name, "le") == 0)
            continue;
        h.ls[h.n] = ls.ls[i];
        if (strcmp(ls.ls[i].name, LABEL_NAME) == 0)
            h.ls[h.n].value = arena_strndup(&r->mem, base, nb);
        h.n++;
    }
    return h;
}

static int cmp_le(const void *a, const void *b) {
    double x = ((const double *)a)[0], y = ((const double *)b)[0];
    return x < y ? -1 : x > y;
}

/* load_with_nhcb: each classic histogram (the `x_bucket{le=...}` series of
 * one label set, with `x_sum` when loaded) becomes also a native histogram
 * `x` with custom buckets, at each step where every bucket has a float. */
static void add_nhcb(runner *r, loadset *l) {
    size_t n0 = l->n;
    for (size_t k = 0; k < n0; k++) {
        const char *name = labels_get(l->sets[k].ls, l->sets[k].n, LABEL_NAME);
        size_t nl = name ? strlen(name) : 0;
        if (nl <= 7 || strcmp(name + nl - 7, "_bucket") != 0 ||
            !labels_get(l->sets[k].ls, l->sets[k].n, "le"))
            continue;
        lset h = strip_le(r, l->sets[k], name, nl - 7);
        size_t before = l->n, hk = loadset_add(l, h, l->first[k]);
        if (hk < before)
            continue; /* built from an earlier bucket series */
        /* the bucket series of the group, and the sum */
        size_t nb = 0, bk[64];
        const pts *sum = NULL;
        for (size_t j = 0; j < n0 && nb < 64; j++) {
            const char *nj = labels_get(l->sets[j].ls, l->sets[j].n, LABEL_NAME);
            if (!nj || strncmp(nj, name, nl - 7) != 0)
                continue;
            int is_bucket = strcmp(nj + nl - 7, "_bucket") == 0, is_sum = strcmp(nj + nl - 7, "_sum") == 0;
            if (!is_bucket && !is_sum)
                continue;
            lset hj = strip_le(r, l->sets[j], name, nl - 7);
            if (labels_cmp(hj.ls, hj.n, h.ls, h.n) != 0)
                continue;
            if (is_sum)
                sum = &l->vals[j];
            else
                bk[nb++] = j;
        }
        size_t np = 0;
        for (size_t b = 0; b < nb; b++)
            np = l->vals[bk[b]].n > np ? l->vals[bk[b]].n : np;
        for (size_t t = 0; t < np; t++) {
            double les[64][2];
            int all = nb > 0;
            for (size_t b = 0; b < nb && all; b++) {
                const pts *v = &l->vals[bk[b]];
                all = t < v->n && v->v[t].present == PT_FLOAT;
                les[b][0] = strtod(labels_get(l->sets[bk[b]].ls, l->sets[bk[b]].n, "le"), NULL);
                les[b][1] = all ? v->v[t].v : 0;
            }
            if (!all) {
                pts_push(&l->vals[hk], PT_NONE, 0, NULL);
                continue;
            }
            qsort(les, nb, sizeof les[0], cmp_le);
            histogram *hh = arena_alloc(&r->mem, sizeof *hh);
            size_t nfin = isinf(les[nb - 1][0]) ? nb - 1 : nb;
            hh->schema = HIST_SCHEMA_CUSTOM;
            hh->custom_values = arena_alloc(&r->mem, (nfin + 1) * sizeof(double));
            hh->pos = arena_alloc(&r->mem, (nb + 1) * sizeof(double));
            if (!hh->custom_values || !hh->pos)
                exit(2);
            for (size_t b = 0; b < nb; b++) {
                if (b < nfin)
                    hh->custom_values[b] = les[b][0];
                hh->pos[b] = les[b][1] - (b ? les[b - 1][1] : 0);
            }
            hh->ncustom = (uint32_t)nfin;
            hh->npos = (uint32_t)nb;
            hh->pos_spans = one_span(&r->mem, 0, (uint32_t)nb);
            hh->npos_spans = 1;
            hh->count = les[nb - 1][1];
            hh->sum = sum && t < sum->n && sum->v[t].present == PT_FLOAT ? sum->v[t].v : 0;
            pts_push(&l->vals[hk], PT_HIST, 0, hh);
        }
    }
}

/* Loads the body of a `load`: a series written twice keeps the later
 * value where both have one (as Prometheus' test storage does).  A line
 * that does not parse, or a sample the storage refuses, fails (counted in
 * r->failed). */
static void do_load(runner *r, int64_t step, int nhcb, char **lines, int *linenos, size_t n) {
    kiln_err e;
    loadset l;
    memset(&l, 0, sizeof l);
    for (size_t i = 0; i < n; i++) {
        lset ls;
        const char *p = parse_series(lines[i], &r->mem, &ls);
        pts v;
        memset(&v, 0, sizeof v);
        int nhist = p ? parse_values(p, &r->mem, &v) : -1;
        if (nhist < 0 || v.n == 0) {
            printf("FAIL %s:%d: malformed load line: %s\n", r->file, linenos[i], skip_ws(lines[i]));
            r->failed++;
            free(v.v);
            continue;
        }
        size_t before = l.n, k = loadset_add(&l, ls, linenos[i]);
        if (k == before) {
            l.vals[k] = v;
            continue;
        }
        for (size_t j = 0; j < v.n; j++) {
            while (l.vals[k].n <= j)
                pts_push(&l.vals[k], PT_NONE, 0, NULL);
            if (v.v[j].present != PT_NONE)
                l.vals[k].v[j] = v.v[j];
        }
        free(v.v);
    }
    if (nhcb)
        add_nhcb(r, &l);
    appender *ap = storage_appender(r->st);
    if (!ap)
        exit(2);
    for (size_t k = 0; k < l.n; k++) {
        uint64_t ref = 0;
        for (size_t j = 0; j < l.vals[k].n; j++) {
            const pt *q = &l.vals[k].v[j];
            if (q->present == PT_NONE)
                continue;
            const label *ls = ref ? NULL : l.sets[k].ls;
            size_t nls = ref ? 0 : l.sets[k].n;
            int rc = q->present == PT_HIST
                         ? appender_append_histogram(ap, &ref, ls, nls, (int64_t)j * step, q->h, &e)
                         : appender_append(ap, &ref, ls, nls, (int64_t)j * step, q->v, &e);
            if (rc < 0) {
                printf("FAIL %s:%d: the storage refused point %zu: %s\n", r->file, l.first[k], j, e.msg);
                r->failed++;
                break;
            }
        }
        free(l.vals[k].v);
    }
    free(l.sets);
    free(l.vals);
    free(l.first);
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
    if (i == argc) {
        fprintf(stderr, "usage: promqltest [-v] FILE.test...\n");
        return 2;
    }
    for (; i < argc; i++)
        run_file(&r, argv[i]);
    printf("%d passed, %d failed, 0 skipped\n", r.passed, r.failed);
    return r.failed ? 1 : 0;
}
