/*
 * fuzz_expo.c - libFuzzer harness for the exposition parsers
 * (scrape/parse.c).
 *
 * The first byte picks the format (even: text 0.0.4, odd: OpenMetrics); the
 * rest (at most 64 KiB) is the body, copied to a buffer of exactly its size
 * so that any read past the end trips ASan.  Every entry is checked: names
 * follow the name rules, label values are valid UTF-8, the series text
 * starts with the metric name, line numbers grow; exemplars' labels too, and
 * the created-time lookahead is called on every sample.  An error must be
 * KILN_EINVAL with a "line N: " message (N the current line or an earlier
 * one) and must stick.
 *
 * A body that parses is written back in its format (labels and HELP
 * escaped, values with 17 digits, exemplars dropped) and must parse again
 * into the same entries: same kinds, names, labels, value bits (any NaN for
 * NaN), timestamps (OpenMetrics: within 1 ms, as seconds are truncated to
 * ms; one beyond int64 ms is written 1e300).  OpenMetrics timestamps
 * truncated to ms may merge two metric points, so a written form with
 * timestamps may fail where the original did not.
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scrape/parse.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ENTRIES 20000

typedef struct entry {
    expo_entry kind;
    size_t metric_off, metric_len; /* into the strings buffer */
    size_t text_off, text_len;
    size_t labels_off, nlabels; /* into the labels array */
    expo_type type;
    double value;
    int has_ts;
    int64_t ts;
} entry;

typedef struct lbl {
    size_t name_off, name_len, value_off, value_len;
} lbl;

typedef struct run {
    entry *es;
    size_t n, cap;
    lbl *ls;
    size_t nl, lcap;
    buf strs;
    int failed;
    int any_ts; /* a sample has a timestamp */
} run;

static size_t keep(run *r, const char *s, size_t n) {
    size_t off = r->strs.len;
    if (buf_append(&r->strs, s, n) < 0)
        abort();
    return off;
}

static void check_name(const char *s, size_t n, int metric) {
    if (metric ? !metric_name_valid(s, n) : !label_name_valid(s, n)) {
        fprintf(stderr, "invalid %s name \"%.*s\"\n", metric ? "metric" : "label", (int)n, s);
        abort();
    }
}

/* Parses body and records every entry; checks the invariants on the way. */
static void parse(expo_format f, const char *body, size_t len, run *r) {
    expo_parser *p = expo_parser_new(f, body, len);
    if (p == NULL)
        abort();
    expo_entry kind;
    kiln_err err = {0};
    int rc;
    size_t last_line = 0;
    while ((rc = expo_next(p, &kind, &err)) == 1) {
        size_t line = expo_line(p);
        if (line <= last_line || line > len + 1)
            abort();
        last_line = line;
        if (array_grow((void **)&r->es, &r->cap, r->n + 1, sizeof *r->es) != 0)
            abort();
        entry *e = &r->es[r->n++];
        memset(e, 0, sizeof *e);
        e->kind = kind;
        size_t n = 0;
        const char *s;
        if (kind != EXPO_COMMENT) {
            s = expo_metric(p, &n);
            check_name(s, n, 1);
            e->metric_off = keep(r, s, n);
            e->metric_len = n;
        }
        switch (kind) {
        case EXPO_SAMPLE: {
            size_t sn = 0;
            const char *series = expo_series(p, &sn);
            if (sn < n || series != s)
                abort();
            const expo_label *ls;
            size_t nl = expo_labels(p, &ls);
            e->labels_off = r->nl;
            e->nlabels = nl;
            for (size_t i = 0; i < nl; i++) {
                check_name(ls[i].name, ls[i].name_len, 0);
                if (!utf8_valid(ls[i].value, ls[i].value_len))
                    abort();
                if (array_grow((void **)&r->ls, &r->lcap, r->nl + 1, sizeof *r->ls) != 0)
                    abort();
                lbl *l = &r->ls[r->nl++];
                l->name_off = keep(r, ls[i].name, ls[i].name_len);
                l->name_len = ls[i].name_len;
                l->value_off = keep(r, ls[i].value, ls[i].value_len);
                l->value_len = ls[i].value_len;
            }
            e->value = expo_value(p);
            e->has_ts = expo_timestamp(p, &e->ts);
            /* the exemplar's labels follow the rules too; the created-time
             * lookahead must not disturb the parse that goes on */
            const expo_label *xl;
            size_t nx = 0;
            double xv;
            int xts;
            int64_t xt, ct;
            if (expo_exemplar(p, &xl, &nx, &xv, &xts, &xt)) {
                if (f != EXPO_OPENMETRICS || !expo_has_exemplar(p))
                    abort();
                for (size_t k = 0; k < nx; k++)
                    if (!label_name_valid(xl[k].name, xl[k].name_len) ||
                        !utf8_valid(xl[k].value, xl[k].value_len))
                        abort();
            }
            if ((expo_created(p, &ct) || expo_is_created(p)) && f != EXPO_OPENMETRICS)
                abort();
            r->any_ts |= e->has_ts != 0;
            break;
        }
        case EXPO_TYPE:
            e->type = expo_metric_type(p);
            if ((int)e->type < EXPO_UNTYPED || e->type > EXPO_STATESET)
                abort();
            break;
        case EXPO_HELP:
        case EXPO_UNIT:
        case EXPO_COMMENT:
            s = expo_text(p, &n);
            if (kind == EXPO_HELP && !utf8_valid(s, n))
                abort();
            if (kind == EXPO_COMMENT && (f != EXPO_TEXT || n == 0 || s[0] != '#'))
                abort();
            e->text_off = keep(r, s, n);
            e->text_len = n;
            break;
        default:
            abort();
        }
        if (r->n > MAX_ENTRIES)
            break;
    }
    if (rc < 0) {
        r->failed = 1;
        /* the line named is the current one, or an earlier one for a rule
         * checked once a metric point or family is complete */
        size_t named = 0;
        int used = 0;
        if (rc != KILN_EINVAL || err.code != KILN_EINVAL ||
            sscanf(err.msg, "line %zu: %n", &named, &used) != 1 || used == 0 || named == 0 ||
            named > expo_line(p)) {
            fprintf(stderr, "bad error %d: %s\n", rc, err.msg);
            abort();
        }
        kiln_err again = {0};
        if (expo_next(p, &kind, &again) != KILN_EINVAL || strcmp(again.msg, err.msg) != 0)
            abort();
    } else if (rc == 0 && expo_next(p, &kind, &err) != 0) {
        abort();
    }
    expo_parser_free(p);
}

static void put_escaped(buf *b, const char *s, size_t n, int quote) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\')
            buf_puts(b, "\\\\");
        else if (s[i] == '\n')
            buf_puts(b, "\\n");
        else if (quote && s[i] == '"')
            buf_puts(b, "\\\"");
        else
            buf_putc(b, s[i]);
    }
}

static const char *const text_types[] = {"untyped",        "counter", "gauge", "histogram",
                                         "gaugehistogram", "summary", "info",  "stateset"};
static const char *const om_types[] = {"unknown",        "counter", "gauge", "histogram",
                                       "gaugehistogram", "summary", "info",  "stateset"};

/* Writes the entries back in format f. */
static void write_back(expo_format f, const run *r, buf *out) {
    const char *S = r->strs.data;
    for (size_t i = 0; i < r->n; i++) {
        const entry *e = &r->es[i];
        switch (e->kind) {
        case EXPO_SAMPLE: {
            buf_append(out, S + e->metric_off, e->metric_len);
            buf_putc(out, '{');
            for (size_t k = 0; k < e->nlabels; k++) {
                const lbl *l = &r->ls[e->labels_off + k];
                if (k)
                    buf_putc(out, ',');
                buf_append(out, S + l->name_off, l->name_len);
                buf_puts(out, "=\"");
                put_escaped(out, S + l->value_off, l->value_len, 1);
                buf_putc(out, '"');
            }
            buf_puts(out, "} ");
            if (isnan(e->value))
                buf_puts(out, "NaN");
            else if (isinf(e->value))
                buf_puts(out, e->value > 0 ? "+Inf" : "-Inf");
            else
                buf_printf(out, "%.17g", e->value);
            if (e->has_ts < 0) {
                buf_puts(out, " 1e300"); /* beyond int64 ms, as the original */
            } else if (e->has_ts) {
                if (f == EXPO_TEXT) {
                    buf_printf(out, " %" PRId64, e->ts);
                } else {
                    uint64_t a = e->ts < 0 ? (uint64_t)0 - (uint64_t)e->ts : (uint64_t)e->ts;
                    buf_printf(out, " %s%" PRIu64 ".%03" PRIu64, e->ts < 0 ? "-" : "", a / 1000, a % 1000);
                }
            }
            break;
        }
        case EXPO_HELP:
            buf_puts(out, "# HELP ");
            buf_append(out, S + e->metric_off, e->metric_len);
            buf_putc(out, ' ');
            put_escaped(out, S + e->text_off, e->text_len, f == EXPO_OPENMETRICS);
            break;
        case EXPO_UNIT:
            buf_puts(out, "# UNIT ");
            buf_append(out, S + e->metric_off, e->metric_len);
            buf_putc(out, ' ');
            buf_append(out, S + e->text_off, e->text_len);
            break;
        case EXPO_TYPE:
            buf_puts(out, "# TYPE ");
            buf_append(out, S + e->metric_off, e->metric_len);
            buf_printf(out, " %s", (f == EXPO_TEXT ? text_types : om_types)[e->type]);
            break;
        case EXPO_COMMENT:
            buf_append(out, S + e->text_off, e->text_len);
            break;
        }
        buf_putc(out, '\n');
    }
    if (f == EXPO_OPENMETRICS)
        buf_puts(out, "# EOF\n");
}

static int same_str(const run *a, size_t ao, size_t an, const run *b, size_t bo, size_t bn) {
    return an == bn && memcmp(a->strs.data + ao, b->strs.data + bo, an) == 0;
}

static void compare(expo_format f, const run *a, const run *b, const buf *text) {
    const char *why = NULL;
    size_t i = 0;
    if (b->failed && f == EXPO_OPENMETRICS && a->any_ts)
        return; /* timestamps truncated to ms may merge two metric points into one */
    if (b->failed || a->n != b->n) {
        why = b->failed ? "written form fails" : "entry count";
        goto bad;
    }
    for (; i < a->n; i++) {
        const entry *x = &a->es[i], *y = &b->es[i];
        if (x->kind != y->kind ||
            !same_str(a, x->metric_off, x->metric_len, b, y->metric_off, y->metric_len)) {
            why = "kind or metric";
            goto bad;
        }
        if (x->kind == EXPO_TYPE && x->type != y->type) {
            why = "type";
            goto bad;
        }
        if (x->kind != EXPO_SAMPLE && x->kind != EXPO_TYPE &&
            !same_str(a, x->text_off, x->text_len, b, y->text_off, y->text_len)) {
            why = "text";
            goto bad;
        }
        if (x->kind != EXPO_SAMPLE)
            continue;
        if (x->nlabels != y->nlabels) {
            why = "label count";
            goto bad;
        }
        for (size_t k = 0; k < x->nlabels; k++) {
            const lbl *p = &a->ls[x->labels_off + k], *q = &b->ls[y->labels_off + k];
            if (!same_str(a, p->name_off, p->name_len, b, q->name_off, q->name_len) ||
                !same_str(a, p->value_off, p->value_len, b, q->value_off, q->value_len)) {
                why = "labels";
                goto bad;
            }
        }
        if (isnan(x->value) ? !isnan(y->value) : memcmp(&x->value, &y->value, sizeof x->value) != 0) {
            why = "value";
            goto bad;
        }
        if (x->has_ts != y->has_ts) {
            why = "timestamp presence";
            goto bad;
        }
        if (x->has_ts > 0) {
            int64_t d = x->ts > y->ts ? x->ts - y->ts : y->ts - x->ts;
            if (f == EXPO_TEXT ? d != 0 : d > 1) {
                why = "timestamp";
                goto bad;
            }
        }
    }
    return;
bad:
    fprintf(stderr, "written form differs (%s) at entry %zu:\n%.*s\n", why, i, (int)text->len, text->data);
    abort();
}

static void run_free(run *r) {
    free(r->es);
    free(r->ls);
    buf_free(&r->strs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    expo_format f = (data[0] & 1) ? EXPO_OPENMETRICS : EXPO_TEXT;
    data++;
    size--;
    if (size > 65536)
        size = 65536;
    char *body = malloc(size ? size : 1);
    if (body == NULL)
        return 0;
    memcpy(body, data, size);

    run first = {0}, second = {0};
    buf text = BUF_INIT;
    parse(f, body, size, &first);
    /* OpenMetrics timestamps beyond 2^43 ms (year 2248) lose more than a ms
     * going through seconds as a double, and may not even read back */
    int exact = 1;
    for (size_t i = 0; f == EXPO_OPENMETRICS && i < first.n; i++)
        if (first.es[i].has_ts &&
            (first.es[i].ts > (INT64_C(1) << 43) || first.es[i].ts < -(INT64_C(1) << 43)))
            exact = 0;
    if (!first.failed && first.n <= MAX_ENTRIES && exact) {
        write_back(f, &first, &text);
        if (buf_error(&text) == 0) { /* out of memory: nothing to compare */
            parse(f, text.data, text.len, &second);
            compare(f, &first, &second, &text);
        }
    }
    buf_free(&text);
    run_free(&first);
    run_free(&second);
    free(body);
    return 0;
}
