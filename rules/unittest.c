/*
 * unittest.c - `kiln test rules FILE...`: promtool's rule unit tests, run on
 * kiln's PromQL engine and rule groups, reported byte for byte as Prometheus
 * 2.42's `promtool test rules` reports them.
 *
 * For each test file: "Unit Testing:  FILE" on out, then "  SUCCESS", or
 * "  FAILED:" on errout and every error, each followed by a blank line on
 * out; a blank line after each file.  The exit code is 1 when a file failed.
 *
 * A test group (tests[i]) runs as promtool's does:
 *   1. its input_series become a `load` block ("load <interval>" and one line
 *      "series values" each; the lines are trimmed, and an empty line or one
 *      starting with # ends the block, as in PromQL test scripts) parsed
 *      by unittest_series.c; value i of a series is at i * interval.  The
 *      interval is the group's own: promtool 2.42 does not apply its
 *      documented default (evaluation_interval) to the loaded samples, so
 *      without `interval` every sample of a series is at time 0 and only the
 *      first is kept.  A series written twice keeps its later values.
 *   2. the rule files (globbed once per file, relative to it) are loaded, a
 *      group each, ordered by group_eval_order (groups not named there sort
 *      with the first named one, in file order);
 *   3. a storage of its own in a temporary directory, removed afterwards;
 *      from time 0 to the largest eval_time, every evaluation_interval: the
 *      samples up to that time are appended (promtool loads them lazily, so
 *      a query never sees a later one), each group is evaluated, a rule's
 *      error ends the group ("rule: NAME, time: 2m0s, err: ..."), and the
 *      alert tests whose eval_time falls in [t, t + interval) compare the
 *      FIRING alerts of their alertname (labels with alertname, expanded
 *      annotations) with the expected ones, order aside;
 *   4. then each promql_expr_test runs its query at eval_time and compares
 *      the samples (a scalar is one sample without labels), order aside,
 *      values with ==, so NaN never matches.
 * Queries load at most 10,000 samples and use a 5m lookback, as promtool's
 * test engine.
 *
 * Called by cmd/kiln/main.c; runs on the caller's thread (the storage runs
 * its own WAL thread meanwhile).
 */
#include <errno.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rules/group.h"
#include "rules/unittest.h"

/* What a test file's tests share. */
typedef struct tfile {
    const char *name;
    const ruletest_file *tf;
    int64_t eval_interval_ms;
    char **rule_files; /* after globbing, each once */
    size_t nrule_files;
    FILE *errout;
} tfile;

/* The errors of one test file, in order; each is printed as it is. */
typedef struct errlist {
    char **v;
    size_t n, cap;
    int oom;
} errlist;

static void errs_add_buf(errlist *e, buf *b) {
    char *s = buf_error(b) ? NULL : buf_steal(b);
    buf_free(b);
    if (!s || array_grow((void **)&e->v, &e->cap, e->n + 1, sizeof *e->v) != 0) {
        free(s);
        e->oom = 1;
        return;
    }
    e->v[e->n++] = s;
}

__attribute__((format(printf, 2, 3))) static void errs_addf(errlist *e, const char *fmt, ...) {
    buf b = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    errs_add_buf(e, &b);
}

/* ---- Go's formatting ------------------------------------------------------------------------ */

/* model.Duration.String(): "0s", "1h30m", "10d"; years and weeks only when
 * they divide the duration. */
static void prom_duration(int64_t ms, char *out, size_t n) {
    static const struct {
        const char *unit;
        int64_t ms;
        int exact;
    } units[] = {{"y", 365LL * 86400000, 1},
                 {"w", 7LL * 86400000, 1},
                 {"d", 86400000, 0},
                 {"h", 3600000, 0},
                 {"m", 60000, 0},
                 {"s", 1000, 0},
                 {"ms", 1, 0}};
    size_t off = 0;
    out[0] = 0;
    if (ms == 0) {
        snprintf(out, n, "0s");
        return;
    }
    for (size_t i = 0; i < sizeof units / sizeof *units && off < n; i++) {
        if (units[i].exact && ms % units[i].ms != 0)
            continue;
        int64_t q = ms / units[i].ms;
        if (q > 0) {
            off += (size_t)snprintf(out + off, n - off, "%lld%s", (long long)q, units[i].unit);
            ms -= q * units[i].ms;
        }
    }
}

/* time.Duration.String() of whole milliseconds: "0s", "2m0s", "1h0m0s",
 * "1.5s", "500ms". */
static void go_duration(int64_t ms, char *out, size_t n) {
    if (ms == 0) {
        snprintf(out, n, "0s");
        return;
    }
    if (ms < 1000) {
        snprintf(out, n, "%lldms", (long long)ms);
        return;
    }
    char frac[8] = "";
    if (ms % 1000) {
        snprintf(frac, sizeof frac, ".%03lld", (long long)(ms % 1000));
        for (size_t k = strlen(frac); frac[k - 1] == '0'; k--)
            frac[k - 1] = 0;
    }
    long long s = ms / 1000, h = s / 3600, m = s / 60 % 60;
    if (h)
        snprintf(out, n, "%lldh%lldm%lld%ss", h, m, s % 60, frac);
    else if (m)
        snprintf(out, n, "%lldm%lld%ss", m, s % 60, frac);
    else
        snprintf(out, n, "%lld%ss", s, frac);
}

/* strconv.FormatFloat(v, 'E', -1, 64). */
static void put_float(buf *b, double v) {
    char f[FMT_DOUBLE_MAX];
    int n = fmt_double_e(v, f);
    for (int i = 0; i < n; i++)
        if (f[i] == 'e')
            f[i] = 'E';
    buf_append(b, f, (size_t)n);
}

/* indentLines: every line after the first gets the indent. */
static void put_indented(buf *b, const char *s, size_t n, const char *indent) {
    for (size_t i = 0; i < n; i++) {
        buf_putc(b, s[i]);
        if (s[i] == '\n')
            buf_puts(b, indent);
    }
}

/* ---- files and paths ---------------------------------------------------------------------------- */

/* Go's error text for a failed system call on path: "open x.yml: permission denied". */
static void os_error(buf *b, const char *op, const char *path, int e) {
    const char *s = strerror(e);
    buf_printf(b, "%s %s: %c%s", op, path, s[0] >= 'A' && s[0] <= 'Z' ? s[0] - 'A' + 'a' : s[0], s + 1);
}

static int read_file(const char *path, char **data, size_t *len, buf *msg) {
    FILE *f = fopen(path, "rb");
    buf b = BUF_INIT;
    *data = NULL;
    if (!f) {
        os_error(msg, "open", path, errno);
        return KILN_EIO;
    }
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= CONFIG_MAX_BYTES)
        buf_append(&b, chunk, n);
    int e = ferror(f) ? errno : 0;
    fclose(f);
    if (e) {
        os_error(msg, "read", path, e);
        buf_free(&b);
        return KILN_EIO;
    }
    if (b.len > CONFIG_MAX_BYTES) {
        buf_printf(msg, "read %s: the file is larger than %u bytes", path, (unsigned)CONFIG_MAX_BYTES);
        buf_free(&b);
        return KILN_ELIMIT;
    }
    buf_putc(&b, 0);
    if (buf_error(&b)) {
        buf_free(&b);
        return KILN_ENOMEM;
    }
    *len = b.len - 1;
    *data = buf_steal(&b);
    return 0;
}

/* filepath.Join(dir of file, rel) with Go's Clean: "a/./b/../c" is "a/c". */
static char *join_clean(const char *file, const char *rel) {
    buf in = BUF_INIT, out = BUF_INIT;
    if (rel[0] != '/') {
        const char *slash = strrchr(file, '/');
        if (slash)
            buf_append(&in, file, (size_t)(slash - file) + (slash == file));
        else
            buf_putc(&in, '.');
        buf_putc(&in, '/');
    }
    buf_puts(&in, rel);
    buf_putc(&in, 0);
    if (buf_error(&in)) {
        buf_free(&in);
        return NULL;
    }
    int rooted = in.data[0] == '/';
    size_t *marks = calloc(in.len + 1, sizeof *marks), nmarks = 0; /* where each kept element starts */
    if (!marks) {
        buf_free(&in);
        return NULL;
    }
    if (rooted)
        buf_putc(&out, '/');
    for (char *p = in.data, *e; *p; p = *e ? e + 1 : e) {
        e = p + strcspn(p, "/");
        size_t n = (size_t)(e - p);
        if (n == 0 || (n == 1 && p[0] == '.'))
            continue;
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (nmarks && !(out.len - marks[nmarks - 1] == 2 && out.data[marks[nmarks - 1]] == '.')) {
                out.len = marks[--nmarks];
                if (out.len > (size_t)rooted)
                    out.len--; /* the separator before it */
                continue;
            }
            if (rooted)
                continue;
        }
        if (out.len > (size_t)rooted)
            buf_putc(&out, '/');
        marks[nmarks++] = out.len;
        buf_append(&out, p, n);
    }
    free(marks);
    buf_free(&in);
    if (out.len == 0)
        buf_putc(&out, '.');
    buf_putc(&out, 0);
    if (buf_error(&out)) {
        buf_free(&out);
        return NULL;
    }
    return buf_steal(&out);
}

/* resolveAndGlobFilepaths: each rule file relative to the test file, then
 * globbed; a pattern matching nothing is a warning on errout. */
static int glob_rule_files(tfile *t) {
    for (size_t i = 0; i < t->tf->nrule_files; i++) {
        const char *rf = t->tf->rule_files[i];
        char *pat = *rf ? join_clean(t->name, rf) : strdup("");
        if (!pat)
            return KILN_ENOMEM;
        glob_t g;
        int flags = 0;
#ifdef GLOB_PERIOD
        flags |= GLOB_PERIOD; /* Go's `*` matches a leading dot */
#endif
        int rc = *pat ? glob(pat, flags, NULL, &g) : GLOB_NOMATCH;
        if (rc == GLOB_NOSPACE) {
            free(pat);
            return KILN_ENOMEM;
        }
        if (rc != 0 || g.gl_pathc == 0)
            fprintf(t->errout, "  WARNING: no file match pattern %s\n", pat);
        for (size_t k = 0; rc == 0 && k < g.gl_pathc; k++) {
            size_t j = 0;
            while (j < t->nrule_files && strcmp(t->rule_files[j], g.gl_pathv[k]) != 0)
                j++;
            if (j < t->nrule_files)
                continue;
            char *s = strdup(g.gl_pathv[k]);
            size_t cap = t->nrule_files;
            if (!s || array_grow((void **)&t->rule_files, &cap, t->nrule_files + 1, sizeof *t->rule_files)) {
                free(s);
                globfree(&g);
                free(pat);
                return KILN_ENOMEM;
            }
            t->rule_files[t->nrule_files++] = s;
        }
        if (rc == 0)
            globfree(&g);
        free(pat);
    }
    return 0;
}

/* ---- a test group ---------------------------------------------------------------------------------- */

/* An input series: its values, and how many of them are in the storage. */
typedef struct in_series {
    ut_series s;
    const char *bad; /* why the storage refuses it (promtool's words), or NULL */
    size_t next;     /* the next value to append */
    uint64_t ref;
} in_series;

/* An ordered rule group. */
typedef struct tgroup {
    rule_group *g;
    size_t order;
} tgroup;

typedef struct run {
    const tfile *t;
    const ruletest_group *tg;
    errlist *errs;
    arena mem;
    in_series *in;
    size_t nin;
    rulefile_set **sets;
    size_t nsets;
    tgroup *groups;
    size_t ngroups;
    char dir[64];
    storage *st;
    rules_env env;
    label *ext;
} run;

static const char *const ws = " \t\n\v\f\r";

/* The load block: parse each line, later definitions of a label set
 * replacing earlier ones. */
static int load_series(run *r) {
    const ruletest_group *tg = r->tg;
    buf text = BUF_INIT, msg = BUF_INIT;
    for (size_t i = 0; i < tg->ninput_series; i++)
        buf_printf(&text, "  %s %s\n", tg->input_series[i].series, tg->input_series[i].values);
    if (buf_error(&text))
        return KILN_ENOMEM;
    size_t cap = 0;
    int rc = 0;
    for (char *p = text.data, *e; p && p < text.data + text.len; p = e + 1) {
        e = strchr(p, '\n');
        while (p < e && strchr(ws, *p))
            p++;
        char *end = e;
        while (end > p && strchr(ws, end[-1]))
            end--;
        if (end == p || *p == '#')
            break;
        ut_series s;
        if ((rc = ut_parse_series(p, (size_t)(end - p), &r->mem, &s, &msg)) != 0) {
            if (rc == KILN_EINVAL)
                errs_add_buf(r->errs, &msg);
            break;
        }
        size_t k = 0;
        while (k < r->nin && !(r->in[k].s.nls == s.nls && labels_cmp(r->in[k].s.ls, s.nls, s.ls, s.nls) == 0))
            k++;
        if (k == r->nin) {
            if ((rc = array_grow((void **)&r->in, &cap, r->nin + 1, sizeof *r->in)) != 0)
                break;
            r->nin++;
        }
        memset(&r->in[k], 0, sizeof r->in[k]);
        r->in[k].s = s;
    }
    buf_free(&text);
    buf_free(&msg);
    if (rc)
        return rc;
    /* what the head appender refuses, in its words; empty values are dropped first */
    for (size_t i = 0; i < r->nin; i++) {
        in_series *in = &r->in[i];
        size_t k = 0;
        for (size_t j = 0; j < in->s.nls; j++)
            if (*in->s.ls[j].value)
                in->s.ls[k++] = in->s.ls[j];
        in->s.nls = k;
        if (k == 0)
            in->bad = "empty labelset: invalid sample";
        for (size_t j = 1; j < k && !in->bad; j++) {
            if (strcmp(in->s.ls[j].name, in->s.ls[j - 1].name) == 0) {
                buf b = BUF_INIT;
                buf_printf(&b, "label name \"%s\" is not unique: invalid sample", in->s.ls[j].name);
                if (buf_error(&b) || !(in->bad = arena_strndup(&r->mem, b.data, b.len)))
                    rc = KILN_ENOMEM;
                buf_free(&b);
            }
        }
    }
    return rc;
}

/* Appends every sample at or before ts (promtool's WithSamplesTill).  A
 * series the storage refuses fails the step: nothing is appended and the
 * error is returned in msg. */
static int append_till(run *r, int64_t ts, buf *msg) {
    int64_t iv = r->tg->interval_ms;
    for (size_t i = 0; i < r->nin; i++) {
        in_series *in = &r->in[i];
        size_t k = in->next;
        while (k < in->s.nvals && in->s.vals[k].omitted)
            k++;
        if (in->bad && k < in->s.nvals && (int64_t)k * iv <= ts) {
            buf_puts(msg, in->bad);
            return KILN_EINVAL;
        }
    }
    appender *a = storage_appender(r->st);
    if (!a)
        return KILN_ENOMEM;
    for (size_t i = 0; i < r->nin; i++) {
        in_series *in = &r->in[i];
        for (; !in->bad && in->next < in->s.nvals && (int64_t)in->next * iv <= ts; in->next++) {
            const ut_value *v = &in->s.vals[in->next];
            kiln_err e;
            if (v->omitted)
                continue;
            /* a sample at a time already taken (an interval of 0, or a label
             * set written twice) is dropped, as Prometheus' commit drops it */
            int rc = appender_append(a, &in->ref, in->ref ? NULL : in->s.ls, in->s.nls,
                                     (int64_t)in->next * iv, v->v, &e);
            if (rc == KILN_ENOMEM) {
                appender_rollback(a);
                return rc;
            }
        }
    }
    kiln_err e = {0};
    if (appender_commit(a, &e) != 0) {
        buf_puts(msg, e.msg);
        return KILN_EIO;
    }
    return 0;
}

/* A rule file's error as promtool prints it, "FILE: LINE:COL: ..." (kiln
 * writes "FILE:LINE:COL: ..."). */
static void report_rule_error(void *data, const char *msg) {
    buf *b = data;
    size_t n = strlen(msg), k = n;
    /* the last ":LINE:COL: " before the first ": group" or the end */
    const char *g = strstr(msg, ": group ");
    for (size_t i = 0; i < (g ? (size_t)(g - msg) : n); i++) {
        size_t d1 = strspn(msg + i + 1, "0123456789");
        if (msg[i] == ':' && d1 && msg[i + 1 + d1] == ':') {
            size_t d2 = strspn(msg + i + 2 + d1, "0123456789");
            if (d2 && msg[i + 2 + d1 + d2] == ':' && msg[i + 3 + d1 + d2] == ' ')
                k = i;
        }
    }
    if (b->len)
        buf_putc(b, '\n');
    if (k < n)
        buf_printf(b, "%.*s: %s", (int)k, msg, msg + k + 1);
    else
        buf_puts(b, msg);
}

/* LoadGroups: every rule file, stopping at the first with errors (each of
 * its errors is one error of the test group). */
static int load_groups(run *r) {
    const tfile *t = r->t;
    buf msgs = BUF_INIT;
    rulefile_opts o = {.check_expr = query_parse_check,
                       .check_template = tmpl_check,
                       .report = report_rule_error,
                       .data = &msgs};
    if (t->nrule_files && !(r->sets = calloc(t->nrule_files, sizeof *r->sets)))
        return KILN_ENOMEM;
    for (size_t i = 0; i < t->nrule_files; i++) {
        kiln_err e = {0};
        rulefile_set *s = NULL;
        int rc = rulefile_load_file(t->rule_files[i], &o, &s, &e);
        if (rc == KILN_ENOMEM) {
            buf_free(&msgs);
            return rc;
        }
        if (rc != 0) {
            if (!msgs.len)
                buf_puts(&msgs, e.msg);
            for (char *p = msgs.data, *nl; p && *p; p = nl ? nl + 1 : NULL) {
                nl = strchr(p, '\n');
                errs_addf(r->errs, "%.*s", (int)(nl ? nl - p : (ptrdiff_t)strlen(p)), p);
            }
            buf_free(&msgs);
            return KILN_EINVAL;
        }
        r->sets[r->nsets++] = s;
    }
    buf_free(&msgs);
    return 0;
}

static int group_order_cmp(const void *a, const void *b) {
    const tgroup *x = a, *y = b;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* The groups, each a rule_group over the test's storage, in evaluation order. */
static int make_groups(run *r) {
    const ruletest_file *tf = r->t->tf;
    config_global global = {0};
    global.evaluation_interval_ms = r->tg->interval_ms ? r->tg->interval_ms : r->t->eval_interval_ms;
    size_t n = 0, seq = 0;
    for (size_t i = 0; i < r->nsets; i++)
        n += r->sets[i]->ngroups;
    if (n && !(r->groups = calloc(n, sizeof *r->groups)))
        return KILN_ENOMEM;
    for (size_t i = 0; i < r->nsets; i++) {
        for (size_t j = 0; j < r->sets[i]->ngroups; j++, seq++) {
            const rulefile_group *fg = &r->sets[i]->groups[j];
            kiln_err e = {0};
            tgroup *g = &r->groups[r->ngroups];
            int rc = rule_group_new(fg, &global, &r->env, &g->g, &e);
            if (rc != 0) {
                if (rc != KILN_ENOMEM)
                    errs_addf(r->errs, "%s: %s", fg->file, e.msg);
                return rc;
            }
            r->ngroups++;
            /* groupOrderMap: a group not named sorts as 0, with the first named */
            size_t k = 0;
            while (k < tf->ngroup_eval_order && strcmp(tf->group_eval_order[k], fg->name) != 0)
                k++;
            g->order = (k < tf->ngroup_eval_order ? k : 0) * n + seq;
        }
    }
    if (r->ngroups)
        qsort(r->groups, r->ngroups, sizeof *r->groups, group_order_cmp);
    return 0;
}

/* One alert of a comparison. */
typedef struct la {
    label *ls;
    size_t nls;
    label *ann;
    size_t nann;
} la;

typedef struct la_list {
    la *v;
    size_t n, cap;
    const char *name; /* collecting: the alertname */
    arena *mem;
    int oom;
} la_list;

static int collect_firing(void *data, const rule_alert_view *a) {
    la_list *l = data;
    if (a->state != RULE_ALERT_FIRING || strcmp(a->rule_name, l->name) != 0)
        return 0;
    if (array_grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v) != 0) {
        l->oom = 1;
        return 1;
    }
    la *x = &l->v[l->n++];
    x->ls = labels_copy(l->mem, a->labels, a->nlabels);
    x->nls = a->nlabels;
    x->ann = labels_copy(l->mem, a->annotations, a->nannotations);
    x->nann = a->nannotations;
    if (!x->ls || !x->ann)
        l->oom = 1;
    return l->oom;
}

static int la_cmp(const void *a, const void *b) {
    const la *x = a, *y = b;
    int c = labels_cmp(x->ls, x->nls, y->ls, y->nls);
    return c ? c : labels_cmp(x->ann, x->nann, y->ann, y->nann);
}

static int la_equal(const la_list *a, const la_list *b) {
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].nls != b->v[i].nls || a->v[i].nann != b->v[i].nann || la_cmp(&a->v[i], &b->v[i]) != 0)
            return 0;
    return 1;
}

/* labelsAndAnnotations.String(), indented as the report shows it. */
static void put_la_list(buf *b, const la_list *l) {
    if (l->n == 0) {
        buf_puts(b, "[]");
        return;
    }
    buf s = BUF_INIT;
    buf_puts(&s, "[\n");
    for (size_t i = 0; i < l->n; i++) {
        buf one = BUF_INIT;
        buf_puts(&one, "\nLabels:");
        labels_format(&one, l->v[i].ls, l->v[i].nls);
        buf_puts(&one, "\nAnnotations:");
        labels_format(&one, l->v[i].ann, l->v[i].nann);
        buf_printf(&s, "%s%zu:", i ? ",\n" : "", i);
        put_indented(&s, one.data ? one.data : "", one.len, "  ");
        if (buf_error(&one))
            buf_puts(&s, "\n(out of memory)");
        buf_free(&one);
    }
    buf_puts(&s, "\n]");
    put_indented(b, s.data ? s.data : "", s.len, "            ");
    if (buf_error(&s))
        buf_puts(b, "(out of memory)");
    buf_free(&s);
}

/* A label set as written in a test (a map) into a sorted label array. */
static label *map_labels(arena *a, const config_label *m, size_t n, const char *alertname, size_t *count) {
    label *ls = arena_alloc(a, (n + 1) * sizeof *ls);
    size_t k = 0;
    if (!ls)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (alertname && strcmp(m[i].name, "alertname") == 0)
            continue;
        size_t j = 0;
        while (j < k && strcmp(ls[j].name, m[i].name) != 0)
            j++;
        ls[j].name = m[i].name;
        ls[j].value = m[i].value;
        k += j == k;
    }
    if (alertname) {
        ls[k].name = "alertname";
        ls[k++].value = alertname;
    }
    labels_sort(ls, k);
    *count = k;
    return ls;
}

/* The alert tests at eval time t, against the groups' state after the
 * evaluation at or before it. */
static int check_alerts(run *r, int64_t t) {
    const ruletest_group *tg = r->tg;
    int rc = 0;
    for (size_t i = 0; i < tg->nalert_rule_test && rc == 0; i++) {
        const ruletest_alert_case *c = &tg->alert_rule_test[i];
        if (c->eval_time_ms != t)
            continue;
        la_list got = {.name = c->alertname, .mem = &r->mem}, exp = {.mem = &r->mem};
        for (size_t g = 0; g < r->ngroups && !got.oom; g++)
            rule_group_foreach_alert(r->groups[g].g, collect_firing, &got);
        if (c->nexp_alerts && !(exp.v = arena_alloc(&r->mem, c->nexp_alerts * sizeof *exp.v)))
            exp.oom = 1;
        for (size_t k = 0; k < c->nexp_alerts && !exp.oom; k++) {
            const ruletest_alert *a = &c->exp_alerts[k];
            la *x = &exp.v[exp.n++];
            x->ls = map_labels(&r->mem, a->labels, a->nlabels, c->alertname, &x->nls);
            x->ann = map_labels(&r->mem, a->annotations, a->nannotations, NULL, &x->nann);
            if (!x->ls || !x->ann)
                exp.oom = 1;
        }
        if (got.oom || exp.oom) {
            rc = KILN_ENOMEM;
        } else {
            if (got.n)
                qsort(got.v, got.n, sizeof *got.v, la_cmp);
            if (exp.n)
                qsort(exp.v, exp.n, sizeof *exp.v, la_cmp);
            if (!la_equal(&exp, &got)) {
                buf b = BUF_INIT;
                char d[64];
                prom_duration(c->eval_time_ms, d, sizeof d);
                if (*tg->name)
                    buf_printf(&b, "    name: %s,\n", tg->name);
                buf_printf(&b, "    alertname: %s, time: %s, \n        exp:", c->alertname, d);
                put_la_list(&b, &exp);
                buf_puts(&b, ", \n        got:");
                put_la_list(&b, &got);
                errs_add_buf(r->errs, &b);
            }
        }
        free(got.v);
    }
    return rc;
}

/* One sample of a promql_expr_test comparison. */
typedef struct psample {
    label *ls;
    size_t nls;
    double v;
} psample;

static int psample_cmp(const void *a, const void *b) {
    const psample *x = a, *y = b;
    return labels_cmp(x->ls, x->nls, y->ls, y->nls);
}

/* parsedSamplesString: "nil", or each "LABELS VALUE" joined by ", ". */
static void put_samples(buf *b, const psample *s, size_t n) {
    if (n == 0)
        buf_puts(b, "nil");
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_puts(b, ", ");
        labels_format(b, s[i].ls, s[i].nls);
        buf_putc(b, ' ');
        put_float(b, s[i].v);
    }
}

static int check_expr(run *r, const ruletest_expr_case *c) {
    query_result res;
    kiln_err e = {0};
    char d[64];
    buf b = BUF_INIT;
    psample *got = NULL, *exp = NULL;
    size_t ngot = 0;
    prom_duration(c->eval_time_ms, d, sizeof d);
    buf_puts(&b, "    expr: ");
    go_quote(&b, c->expr, strlen(c->expr), '"');
    buf_printf(&b, ", time: %s", d);
    int rc = query_instant(&r->env.engine, r->st, c->expr, c->eval_time_ms, NULL, &res, &e);
    if (rc == KILN_ENOMEM)
        goto out;
    if (rc != 0) {
        buf_printf(&b, ", err: %s", e.msg);
        errs_add_buf(r->errs, &b);
        return 0;
    }
    if (res.type != QUERY_VECTOR && res.type != QUERY_SCALAR) {
        buf_puts(&b, ", err: rule result is not a vector or scalar");
        errs_add_buf(r->errs, &b);
        query_result_free(&res);
        return 0;
    }
    ngot = res.type == QUERY_SCALAR ? 1 : res.nseries;
    got = calloc(ngot + 1, sizeof *got);
    exp = calloc(c->nexp_samples + 1, sizeof *exp);
    rc = KILN_ENOMEM;
    if (!got || !exp)
        goto out;
    if (res.type == QUERY_SCALAR)
        got[0].v = res.scalar;
    for (size_t i = 0; res.type == QUERY_VECTOR && i < ngot; i++) {
        got[i].ls = res.series[i].ls;
        got[i].nls = res.series[i].nls;
        got[i].v = res.series[i].npts ? res.series[i].pts[0].v : 0;
    }
    for (size_t i = 0; i < c->nexp_samples; i++) {
        const ruletest_sample *s = &c->exp_samples[i];
        buf msg = BUF_INIT;
        ut_series m;
        rc = ut_parse_metric(s->labels, strlen(s->labels), &r->mem, &m, &msg);
        if (rc == KILN_EINVAL) {
            buf_puts(&b, ", err: labels ");
            go_quote(&b, s->labels, strlen(s->labels), '"');
            buf_printf(&b, ": %s", msg.data ? msg.data : "");
            buf_free(&msg);
            errs_add_buf(r->errs, &b);
            rc = 0;
            goto out;
        }
        buf_free(&msg);
        if (rc != 0)
            goto out;
        exp[i] = (psample){m.ls, m.nls, s->value};
    }
    rc = 0;
    qsort(got, ngot, sizeof *got, psample_cmp);
    qsort(exp, c->nexp_samples, sizeof *exp, psample_cmp);
    int equal = ngot == c->nexp_samples;
    for (size_t i = 0; equal && i < ngot; i++)
        equal = got[i].nls == exp[i].nls && psample_cmp(&got[i], &exp[i]) == 0 && got[i].v == exp[i].v;
    if (!equal) {
        buf_puts(&b, ",\n        exp: ");
        put_samples(&b, exp, c->nexp_samples);
        buf_puts(&b, "\n        got: ");
        put_samples(&b, got, ngot);
        errs_add_buf(r->errs, &b);
    }
out:
    buf_free(&b);
    free(got);
    free(exp);
    query_result_free(&res);
    return rc;
}

static int64_t cmp_i64(int64_t a, int64_t b) {
    return (a > b) - (a < b);
}
static int time_cmp(const void *a, const void *b) {
    return (int)cmp_i64(*(const int64_t *)a, *(const int64_t *)b);
}

/* Steps the groups through time and runs the tests (promtool's test()). */
static int evaluate(run *r) {
    const ruletest_group *tg = r->tg;
    int64_t iv = r->t->eval_interval_ms, maxt = 0;
    int64_t *times = calloc(tg->nalert_rule_test + 1, sizeof *times);
    size_t ntimes = 0, curr = 0;
    int rc = 0;
    if (!times)
        return KILN_ENOMEM;
    for (size_t i = 0; i < tg->nalert_rule_test; i++) {
        int64_t t = tg->alert_rule_test[i].eval_time_ms;
        maxt = t > maxt ? t : maxt;
        size_t k = 0;
        while (k < ntimes && times[k] != t)
            k++;
        if (k == ntimes)
            times[ntimes++] = t;
    }
    if (ntimes)
        qsort(times, ntimes, sizeof *times, time_cmp);
    for (size_t i = 0; i < tg->npromql_expr_test; i++)
        maxt = tg->promql_expr_test[i].eval_time_ms > maxt ? tg->promql_expr_test[i].eval_time_ms : maxt;

    for (int64_t ts = 0; ts <= maxt && rc == 0; ts += iv) {
        buf msg = BUF_INIT;
        size_t before = r->errs->n;
        rc = append_till(r, ts, &msg);
        if (rc == KILN_EINVAL || rc == KILN_EIO) {
            errs_add_buf(r->errs, &msg);
            rc = 0;
        } else if (rc == 0) {
            before = r->errs->n;
            for (size_t g = 0; g < r->ngroups && rc == 0; g++) {
                rule_group *grp = r->groups[g].g;
                if ((rc = rule_group_eval(grp, ts)) != 0)
                    break;
                pthread_mutex_lock(&grp->mu);
                for (size_t k = 0; k < grp->nrules; k++) {
                    if (grp->rules[k].last_error) {
                        char d[64];
                        go_duration(ts, d, sizeof d);
                        errs_addf(r->errs, "    rule: %s, time: %s, err: %s", grp->rules[k].def->name, d,
                                  grp->rules[k].last_error);
                    }
                }
                pthread_mutex_unlock(&grp->mu);
            }
            if (rc == 0 && r->errs->n > before) {
                buf_free(&msg);
                free(times);
                return 1; /* a rule's error ends the test group */
            }
        }
        buf_free(&msg);
        for (; rc == 0 && curr < ntimes && ts <= times[curr] && times[curr] < ts + iv; curr++)
            rc = check_alerts(r, times[curr]);
    }
    free(times);
    for (size_t i = 0; i < tg->npromql_expr_test && rc == 0; i++)
        rc = check_expr(r, &tg->promql_expr_test[i]);
    return rc;
}

static int run_group(const tfile *t, const ruletest_group *tg, errlist *errs) {
    run r;
    memset(&r, 0, sizeof r);
    r.t = t;
    r.tg = tg;
    r.errs = errs;
    arena_init(&r.mem, 0);
    kiln_err e = {0};
    size_t before = errs->n;
    int rc = load_series(&r);
    if (rc != 0 || errs->n > before)
        goto out;
    if ((rc = load_groups(&r)) != 0)
        goto out;
    for (size_t i = 0; i < tg->nalert_rule_test; i++) {
        if (!*tg->alert_rule_test[i].alertname) {
            char d[64];
            prom_duration(tg->alert_rule_test[i].eval_time_ms, d, sizeof d);
            errs_addf(
                errs,
                "an item under alert_rule_test misses required attribute alertname at eval_time %s%s%s%s", d,
                *tg->name ? " (in TestGroup " : "", tg->name, *tg->name ? ")" : "");
            goto out;
        }
    }

    const char *tmp = getenv("TMPDIR");
    snprintf(r.dir, sizeof r.dir, "%s/kiln-ruletest-XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    if (!mkdtemp(r.dir)) {
        errs_addf(errs, "creating a temporary directory for the test data: %s", strerror(errno));
        r.dir[0] = 0;
        goto out;
    }
    storage_opts so = storage_opts_default();
    so.dir = r.dir;
    so.retention_ms = 0;
    if ((rc = storage_open(&so, &r.st, &e)) != 0) {
        errs_addf(errs, "opening the test storage: %s", e.msg);
        rc = 0;
        goto out;
    }
    query_engine_opts qo = query_engine_opts_default();
    qo.max_samples = 10000; /* promtool's test engine */
    qo.timeout_ms = 100000; /* and its timeout */
    r.env.st = r.st;
    query_engine_init(&r.env.engine, &qo);
    r.ext = map_labels(&r.mem, tg->external_labels, tg->nexternal_labels, NULL, &r.env.nexternal_labels);
    if (!r.ext) {
        rc = KILN_ENOMEM;
        goto out;
    }
    r.env.external_labels = r.ext;
    r.env.external_url = tg->external_url;
    r.env.resend_delay_ms = 60000;
    r.env.outage_tolerance_ms = 3600000;
    r.env.for_grace_period_ms = 600000;
    if ((rc = make_groups(&r)) != 0) {
        rc = rc == KILN_ENOMEM ? rc : 0;
        goto out;
    }
    rc = evaluate(&r);
    if (rc > 0)
        rc = 0;
out:
    if (rc == KILN_EINVAL)
        rc = 0; /* reported: the next test group runs */
    for (size_t i = 0; i < r.ngroups; i++)
        rule_group_free(r.groups[i].g);
    free(r.groups);
    for (size_t i = 0; i < r.nsets; i++)
        rulefile_free(r.sets[i]);
    free(r.sets);
    if (r.st && storage_close(r.st, &e) != 0)
        errs_addf(errs, "closing the test storage: %s", e.msg);
    if (r.dir[0] && fileio_rm_rf(r.dir, &e) != 0)
        fprintf(t->errout, "  WARNING: %s\n", e.msg);
    free(r.in);
    arena_free(&r.mem);
    return rc;
}

/* ---- a test file ---------------------------------------------------------------------------------- */

static void run_file(const char *name, FILE *errout, errlist *errs) {
    char *data = NULL;
    size_t len = 0;
    buf msg = BUF_INIT;
    ruletest_file *tf = NULL;
    tfile t = {.name = name, .errout = errout};
    int rc = read_file(name, &data, &len, &msg);
    if (rc == 0)
        rc = ruletest_load_string(data, len, &tf, &msg);
    if (rc != 0) {
        if (!msg.len)
            buf_puts(&msg, "out of memory");
        errs_add_buf(errs, &msg);
        free(data);
        return;
    }
    t.tf = tf;
    t.eval_interval_ms = tf->evaluation_interval_ms ? tf->evaluation_interval_ms : 60000;
    if ((rc = glob_rule_files(&t)) == 0) {
        for (size_t i = 0; i < tf->ngroup_eval_order && rc == 0; i++) {
            for (size_t j = 0; j < i; j++) {
                if (strcmp(tf->group_eval_order[i], tf->group_eval_order[j]) == 0) {
                    errs_addf(errs, "group name repeated in evaluation order: %s", tf->group_eval_order[i]);
                    rc = KILN_EINVAL;
                    break;
                }
            }
        }
    }
    for (size_t i = 0; i < tf->ntests && rc == 0; i++)
        rc = run_group(&t, &tf->tests[i], errs);
    if (rc == KILN_ENOMEM)
        errs_addf(errs, "out of memory");
    else if (rc < 0 && rc != KILN_EINVAL)
        errs_addf(errs, "the test could not run: %s", kiln_strerror(rc));
    for (size_t i = 0; i < t.nrule_files; i++)
        free(t.rule_files[i]);
    free(t.rule_files);
    ruletest_free(tf);
    buf_free(&msg);
    free(data);
}

int rules_test_main(int nfiles, char **files, FILE *out, FILE *errout) {
    int failed = 0;
    log_setup(LOG_ERROR, LOG_FORMAT_LOGFMT); /* the storage's and rules' chatter is not the report's */
    /* kingpin's ExistingFiles, before anything runs */
    for (int i = 0; i < nfiles; i++) {
        struct stat st;
        if (stat(files[i], &st) != 0 && errno == ENOENT) {
            fprintf(errout, "kiln: error: path '%s' does not exist, try --help\n", files[i]);
            return 1;
        }
        if (stat(files[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            fprintf(errout, "kiln: error: '%s' is a directory, try --help\n", files[i]);
            return 1;
        }
    }
    for (int i = 0; i < nfiles; i++) {
        errlist errs = {0};
        fprintf(out, "Unit Testing:  %s\n", files[i]);
        fflush(out);
        run_file(files[i], errout, &errs);
        if (errs.n || errs.oom) {
            fprintf(errout, "  FAILED:\n");
            for (size_t k = 0; k < errs.n; k++) {
                fprintf(errout, "%s\n", errs.v[k]);
                fflush(errout);
                fprintf(out, "\n");
            }
            if (errs.oom)
                fprintf(errout, "out of memory\n");
            failed = 1;
        } else {
            fprintf(out, "  SUCCESS\n");
        }
        fprintf(out, "\n");
        fflush(out);
        fflush(errout);
        for (size_t k = 0; k < errs.n; k++)
            free(errs.v[k]);
        free(errs.v);
    }
    return failed;
}
