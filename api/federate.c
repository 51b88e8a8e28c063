/*
 * federate.c - GET /federate: the current value of every series matching
 * one of the match[] selectors, in the text exposition format 0.0.4 (or
 * OpenMetrics 1.0 when the client asks for it), for another server to scrape
 * with honor_labels, as Prometheus' federation handler answers it.
 *
 * The current value is the series' latest sample in the lookback window
 * (--query.lookback-delta) before now; a series whose latest sample is a
 * stale marker is left out.  Samples carry their timestamps.  The external
 * labels are added to each series that lacks them, after its own labels
 * (Prometheus writes them in that order).  Families come sorted by name, each
 * as `# TYPE <name> untyped` (`unknown` in OpenMetrics): the type of a
 * stored series is not known.  No match[] is an empty answer; a selector
 * that does not parse is 400 with the parser's message as text.
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
        if (s->n == 0 || value_is_stale(s->s[s->n - 1].v))
            continue;
        const char *name = labels_get(s->ls, s->nls, "__name__");
        if (!name)
            continue;
        if (*n == *cap && array_grow((void **)v, cap, *n + 1, sizeof **v) != 0)
            return KILN_ENOMEM;
        /* the set is sorted by name, so __name__ is first when present */
        size_t skip = strcmp(s->ls[0].name, "__name__") == 0;
        (*v)[(*n)++] = (fed_sample){s->ls + skip, s->nls - skip, name, s->s[s->n - 1].t, s->s[s->n - 1].v};
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

static int wants_openmetrics(const http_req *req) {
    const char *acc = http_req_header(req, "Accept");
    return acc && strstr(acc, "application/openmetrics-text") != NULL;
}

static void h_federate(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    storage *st = v1_storage(a, resp);
    if (!st)
        return;
    int om = wants_openmetrics(req);
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
             om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                : "text/plain; version=0.0.4; charset=utf-8");
    buf *b = &resp->body;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && fed_cmp(&v[i - 1], &v[i]) == 0)
            continue; /* matched by two selectors */
        if (i == 0 || strcmp(v[i - 1].name, v[i].name) != 0)
            buf_printf(b, "# TYPE %s %s\n", v[i].name, om ? "unknown" : "untyped");
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
