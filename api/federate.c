/*
 * federate.c - GET /federate: the current value of every series matching
 * one of the match[] selectors, in the text exposition format 0.0.4 (or
 * OpenMetrics 1.0, or the protobuf format, when the client asks for it), for
 * another server to scrape with honor_labels, as Prometheus' federation
 * handler answers it.
 *
 * The current value is the series' latest sample in the lookback window
 * (--query.lookback-delta) before now, a float or a native histogram; a
 * series whose latest sample is a stale marker is left out.  A native
 * histogram can only be written in the protobuf format
 * (application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
 * encoding=delimited, chosen when Accept names it): the text formats leave
 * such series out, as Prometheus does.  In protobuf, floats are untyped
 * metrics and histograms are written as Prometheus writes them, float
 * histograms (sample_count_float, zero_count_float, absolute
 * positive/negative_count) in a HISTOGRAM family, or GAUGE_HISTOGRAM for a
 * gauge one; a new family starts where the name or that kind changes.  Samples carry their timestamps.  The
 * external labels are added to each series that lacks them, after its own labels (Prometheus writes them in
 * that order).  Families come sorted by name, each as `# TYPE <name> untyped` (`unknown` in OpenMetrics): the
 * type of a stored series is not known.  No match[] is an empty answer; a selector that does not parse is 400
 * with the parser's message as text.
 *
 * Called by api/http.c on a worker thread (registered by api_v1_register).
 */
#include <stdlib.h>
#include <string.h>

#include "api/v1.h"

typedef struct fed_sample {
    const label *ls; /* without __name__ */
    size_t nls;
    const char *name;
    int64_t t;
    double v;
    const histogram *h; /* the latest sample is this histogram (v unused) */
} fed_sample;

static int fed_cmp(const void *pa, const void *pb) {
    const fed_sample *a = pa, *b = pb;
    int c = strcmp(a->name, b->name);
    return c ? c : labels_cmp(a->ls, a->nls, b->ls, b->nls);
}

/* The latest sample of each series of set, unless stale, appended to *v. */
static int take_latest(series_set *set, fed_sample **v, size_t *n, size_t *cap) {
    for (size_t i = 0; i < set->n; i++) {
        series *s = &set->v[i];
        const histogram *h =
            s->nh && (s->n == 0 || s->hs[s->nh - 1].t > s->s[s->n - 1].t) ? s->hs[s->nh - 1].h : NULL;
        if (h ? value_is_stale(h->sum) : s->n == 0 || value_is_stale(s->s[s->n - 1].v))
            continue;
        const char *name = labels_get(s->ls, s->nls, "__name__");
        if (!name)
            continue;
        if (*n == *cap && array_grow((void **)v, cap, *n + 1, sizeof **v) != 0)
            return KILN_ENOMEM;
        /* the set is sorted by name, so __name__ is first when present */
        size_t skip = strcmp(s->ls[0].name, "__name__") == 0;
        (*v)[(*n)++] =
            h ? (fed_sample){s->ls + skip, s->nls - skip, name, s->hs[s->nh - 1].t, 0, h}
              : (fed_sample){s->ls + skip, s->nls - skip, name, s->s[s->n - 1].t, s->s[s->n - 1].v, NULL};
    }
    return 0;
}

static void write_series(buf *b, const fed_sample *x, const label *ext, size_t next, int om) {
    char num[FMT_DOUBLE_MAX];
    buf_puts(b, x->name);
    size_t written = 0;
    for (size_t i = 0; i < x->nls + next; i++) {
        const label *l = i < x->nls ? &x->ls[i] : &ext[i - x->nls];
        if (i >= x->nls && labels_get(x->ls, x->nls, l->name))
            continue;
        buf_puts(b, written++ ? "," : "{");
        buf_puts(b, l->name);
        buf_puts(b, "=\"");
        metrics_write_escaped(b, l->value, 0);
        buf_putc(b, '"');
    }
    if (written)
        buf_putc(b, '}');
    fmt_double_g(x->v, num);
    buf_putc(b, ' ');
    buf_puts(b, num);
    if (om) { /* seconds */
        fmt_double_g((double)x->t / 1000.0, num);
        buf_printf(b, " %s\n", num);
    } else {
        buf_printf(b, " %lld\n", (long long)x->t);
    }
}

/* ---- the protobuf format ------------------------------------------------------ */

static void pb_key(buf *b, unsigned field, unsigned wt) {
    buf_put_uvarint(b, (uint64_t)field << 3 | wt);
}

static void pb_len(buf *b, unsigned field, const buf *m) {
    pb_key(b, field, 2);
    buf_put_uvarint(b, m->len);
    buf_append(b, m->data ? m->data : "", m->len);
}

static void pb_f64(buf *b, unsigned field, double v) {
    pb_key(b, field, 1);
    uint64_t x = double_to_bits(v);
    for (int i = 0; i < 8; i++)
        buf_putc(b, (char)(x >> (8 * i)));
}

static void pb_text(buf *b, unsigned field, const char *s) {
    size_t n = strlen(s); /* kiln's C0 80 as the NUL byte it stands for (util/strnul.c) */
    pb_key(b, field, 2);
    buf_put_uvarint(b, nul_out_len(s, n));
    buf_append_nul_out(b, s, n);
}

/* Histogram's spans (field f) and absolute counts (field f + 2, packed). */
static void pb_side(buf *b, buf *tmp, unsigned f, const hist_span *sp, uint32_t nsp, const double *c,
                    uint32_t n) {
    for (uint32_t i = 0; i < nsp; i++) {
        buf_reset(tmp);
        pb_key(tmp, 1, 0);
        buf_put_uvarint(tmp, (uint64_t)sp[i].offset << 1 ^ (uint64_t)(sp[i].offset >> 31));
        pb_key(tmp, 2, 0);
        buf_put_uvarint(tmp, sp[i].length);
        pb_len(b, f, tmp);
    }
    if (!n)
        return;
    pb_key(b, f + 2, 2);
    buf_put_uvarint(b, (uint64_t)n * 8);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t x = double_to_bits(c[i]);
        for (int k = 0; k < 8; k++)
            buf_putc(b, (char)(x >> (8 * k)));
    }
}

/* One Metric of x (labels, value or histogram, timestamp) into m. */
static void pb_metric(buf *m, buf *t1, buf *t2, const fed_sample *x, const label *ext, size_t next) {
    for (size_t i = 0; i < x->nls + next; i++) {
        const label *l = i < x->nls ? &x->ls[i] : &ext[i - x->nls];
        if (i >= x->nls && labels_get(x->ls, x->nls, l->name))
            continue;
        buf_reset(t1);
        pb_text(t1, 1, l->name);
        pb_text(t1, 2, l->value);
        pb_len(m, 1, t1);
    }
    buf_reset(t1);
    if (x->h) {
        const histogram *h = x->h;
        pb_f64(t1, 2, h->sum);
        pb_f64(t1, 4, h->count);
        pb_key(t1, 5, 0);
        buf_put_uvarint(t1, (uint64_t)h->schema << 1 ^ (uint64_t)(h->schema >> 31));
        pb_f64(t1, 6, h->zero_threshold);
        pb_f64(t1, 8, h->zero_count);
        pb_side(t1, t2, 9, h->neg_spans, h->nneg_spans, h->neg, h->nneg);
        pb_side(t1, t2, 12, h->pos_spans, h->npos_spans, h->pos, h->npos);
        pb_len(m, 7, t1);
    } else {
        pb_f64(t1, 1, x->v);
        pb_len(m, 5, t1);
    }
    pb_key(m, 6, 0);
    buf_put_uvarint(m, (uint64_t)x->t);
}

/* The family kind of a sample: 0 untyped, 1 histogram, 2 gauge histogram. */
static int fed_kind(const fed_sample *x) {
    return !x->h ? 0 : x->h->hint == HIST_HINT_GAUGE ? 2 : 1;
}

/* Writes v[0..n) as length-delimited MetricFamily messages. */
static int write_protobuf(buf *out, const fed_sample *v, size_t n, const label *ext, size_t next) {
    static const unsigned types[] = {3, 4, 5}; /* UNTYPED, HISTOGRAM, GAUGE_HISTOGRAM */
    buf fam = BUF_INIT, m = BUF_INIT, t1 = BUF_INIT, t2 = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && fed_cmp(&v[i - 1], &v[i]) == 0)
            continue; /* matched by two selectors */
        if (i == 0 || strcmp(v[i - 1].name, v[i].name) != 0 || fed_kind(&v[i - 1]) != fed_kind(&v[i])) {
            if (fam.len) {
                buf_put_uvarint(out, fam.len);
                buf_append(out, fam.data, fam.len);
            }
            buf_reset(&fam);
            pb_text(&fam, 1, v[i].name);
            pb_key(&fam, 3, 0);
            buf_put_uvarint(&fam, types[fed_kind(&v[i])]);
        }
        buf_reset(&m);
        pb_metric(&m, &t1, &t2, &v[i], ext, next);
        pb_len(&fam, 4, &m);
    }
    if (fam.len) {
        buf_put_uvarint(out, fam.len);
        buf_append(out, fam.data, fam.len);
    }
    int rc = buf_error(&fam) || buf_error(&m) || buf_error(&t1) || buf_error(&t2) ? KILN_ENOMEM : 0;
    buf_free(&fam), buf_free(&m), buf_free(&t1), buf_free(&t2);
    return rc;
}

enum { FED_TEXT, FED_OM, FED_PROTO };

static int wanted_format(const http_req *req) {
    const char *acc = http_req_header(req, "Accept");
    if (acc && strstr(acc, "application/vnd.google.protobuf") && strstr(acc, "encoding=delimited"))
        return FED_PROTO;
    return acc && strstr(acc, "application/openmetrics-text") != NULL ? FED_OM : FED_TEXT;
}

static void h_federate(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    storage *st = v1_storage(a, resp);
    if (!st)
        return;
    int fmt = wanted_format(req), om = fmt == FED_OM;
    v1_match_sets *m = malloc(sizeof *m);
    if (!m) {
        v1_internal(resp, KILN_ENOMEM, NULL);
        return;
    }
    kiln_err err = {0};
    int prc = v1_match_parse(req, m, &err);
    if (prc != 0) {
        free(m);
        if (prc != KILN_EINVAL) {
            v1_internal(resp, prc, &err);
            return;
        }
        resp->status = 400;
        snprintf(resp->content_type, sizeof resp->content_type, "text/plain; charset=utf-8");
        buf_printf(&resp->body, "%s\n", err.msg);
        return;
    }
    size_t nparsed = m->n;
    query_selector *parsed = m->sel;

    int64_t now = time_now_ms(), mint = now - a->engine.opts.lookback_delta_ms;
    querier *q = NULL;
    series_set *sets = calloc(nparsed ? nparsed : 1, sizeof *sets);
    fed_sample *v = NULL;
    size_t n = 0, cap = 0;
    int rc = sets ? 0 : KILN_ENOMEM;
    if (rc == 0 && nparsed)
        rc = storage_querier(st, mint, now, &q, &err);
    select_hints h = {mint, now, 0, 0};
    for (size_t i = 0; rc == 0 && i < nparsed; i++) {
        rc = querier_select(q, parsed[i].ms, parsed[i].nms, &h, &sets[i], &err);
        if (rc == 0)
            rc = take_latest(&sets[i], &v, &n, &cap);
    }
    if (rc != 0) {
        v1_internal(resp, rc, &err);
        goto done;
    }
    if (n)
        qsort(v, n, sizeof *v, fed_cmp);

    label *ext = NULL;
    size_t next = 0;
    arena ea;
    arena_init(&ea, 0);
    api_v1_ext_labels_fn fn = atomic_load(&a->ext_labels);
    if (fn && fn(a->ext_labels_data, &ea, &ext, &next) != 0) {
        v1_internal(resp, KILN_ENOMEM, NULL);
        arena_free(&ea);
        goto done;
    }
    snprintf(resp->content_type, sizeof resp->content_type, "%s",
             fmt == FED_PROTO ? "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
                                "encoding=delimited"
             : om             ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                              : "text/plain; version=0.0.4; charset=utf-8");
    buf *b = &resp->body;
    if (fmt == FED_PROTO) {
        if (write_protobuf(b, v, n, ext, next) != 0)
            v1_internal(resp, KILN_ENOMEM, NULL);
        arena_free(&ea);
        goto done;
    }
    const char *last = NULL; /* the family written last */
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && fed_cmp(&v[i - 1], &v[i]) == 0)
            continue; /* matched by two selectors */
        if (v[i].h)
            continue; /* the text formats have no native histograms */
        if (!last || strcmp(last, v[i].name) != 0)
            buf_printf(b, "# TYPE %s %s\n", v[i].name, om ? "unknown" : "untyped");
        last = v[i].name;
        write_series(b, &v[i], ext, next, om);
    }
    if (om)
        buf_puts(b, "# EOF\n");
    arena_free(&ea);
done:
    free(v);
    for (size_t i = 0; sets && i < nparsed; i++)
        series_set_free(&sets[i]);
    free(sets);
    querier_close(q);
    v1_match_sets_free(m);
    free(m);
}

int v1_register_federate(http_server *s, api_v1 *a) {
    return http_route(s, "GET", "/federate", HTTP_ROUTE_LOOKUP, h_federate, a, "/federate");
}

void api_v1_set_external_labels(api_v1 *a, api_v1_ext_labels_fn fn, void *data) {
    a->ext_labels_data = data;
    atomic_store(&a->ext_labels, fn);
}
