/*
 * exemplars.c - GET/POST /api/v1/query_exemplars: the exemplars, in
 * [start, end], of the series any selector of `query` selects, from the
 * storage's exemplar store (storage/exemplars.c), as Prometheus' JSON:
 *   [{"seriesLabels":{...},"exemplars":[{"labels":{...},"value":"6",
 *     "timestamp":1600096945.479}, ...]}, ...]
 * A query without selectors answers null, as Prometheus; with exemplar
 * storage off, [] (Prometheus' no-op store).
 *
 * Called by the HTTP server on lookup pool threads (v1.c registers it).
 */
#include <stdint.h>

#include "api/v1.h"
#include "query/query.h"

typedef struct ex_out {
    buf *b;
    int first;
} ex_out;

static int put_series(void *ctx, const label *ls, size_t n, const exemplar *ex, size_t nex) {
    ex_out *o = ctx;
    buf *b = o->b;
    buf_puts(b, o->first ? "{\"seriesLabels\":" : ",{\"seriesLabels\":");
    o->first = 0;
    labels_json(b, ls, n);
    buf_puts(b, ",\"exemplars\":[");
    for (size_t i = 0; i < nex; i++) {
        buf_puts(b, i ? ",{\"labels\":" : "{\"labels\":");
        labels_json(b, ex[i].ls, ex[i].n);
        buf_puts(b, ",\"value\":");
        api_v1_json_value(b, ex[i].v);
        buf_puts(b, ",\"timestamp\":");
        api_v1_json_time(b, ex[i].t);
        buf_putc(b, '}');
    }
    buf_puts(b, "]}");
    return 0;
}

static void h_query_exemplars(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    int64_t start = 0, end = 0;
    if (v1_range_params(req, resp, &start, &end) != 0)
        return;
    if (end < start) {
        v1_bad_data(resp, "end timestamp must not be before start time");
        return;
    }
    kiln_err err = {0};
    query_selectors sel;
    int rc = query_selectors_parse(v1_param(req, "query"), &sel, &err);
    if (rc != 0) {
        query_selectors_free(&sel);
        if (rc == KILN_EINVAL)
            v1_invalid_param(resp, "query", &err);
        else
            v1_internal(resp, rc, NULL);
        return;
    }
    storage *st = v1_storage(a, resp);
    if (st == NULL) {
        query_selectors_free(&sel);
        return;
    }
    exemplar_store *es = storage_exemplars(st);
    http_resp_json_begin(resp);
    if (sel.n == 0) {
        buf_puts(&resp->body, "null");
    } else {
        ex_out o = {&resp->body, 1};
        buf_putc(&resp->body, '[');
        if (es != NULL && (rc = exemplar_select(es, start, end, sel.sets, sel.n, put_series, &o)) != 0) {
            query_selectors_free(&sel);
            v1_internal(resp, rc, NULL);
            return;
        }
        buf_putc(&resp->body, ']');
    }
    query_selectors_free(&sel);
    v1_end_success(resp, NULL);
}

int v1_register_exemplars(http_server *s, api_v1 *a) {
    static const v1_route routes[] = {
        {"GET,POST", "/api/v1/query_exemplars", h_query_exemplars, NULL, HTTP_ROUTE_LOOKUP},
    };
    return v1_register_routes(s, a, V1_ROUTES(routes));
}
