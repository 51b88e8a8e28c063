/*
 * metadata.c - the /api/v1 metadata endpoints: series, labels and
 * label/<name>/values, read from the storage's querier; and metadata,
 * targets and targets/metadata, written by the scrape manager's views.
 *
 * series, labels and label values answer alike: the querier's answer for
 * each match[] set (or for all series), merged when there are several
 * sets (sorted, duplicates dropped), cut at the limit parameter with
 * Prometheus' truncation warning, and written as one JSON array.  One
 * routine, write_list, does that for the three.
 *
 * Called by the HTTP server through the routes registered
 * here (api_v1_register calls the v1_register_* function); the handlers
 * run on libuv's worker threads, any number at once (see v1.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/v1.h"

/* ---- the shared answer -------------------------------------------------- */

/* What a list holds: pointers to series (written as their label sets) or
 * to strings (label names or values). */
typedef enum list_kind { LIST_SERIES, LIST_STRINGS } list_kind;

static int series_ptr_cmp(const void *a, const void *b) {
    const series *x = *(const series *const *)a, *y = *(const series *const *)b;
    return labels_cmp(x->ls, x->nls, y->ls, y->nls);
}

static int str_ptr_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * The answer of series, labels and label values: v holds n pointers of the
 * kind.  When they were gathered from more than one match[] set (`merged`)
 * they are sorted and the duplicates dropped first, in v; otherwise v is
 * only read.  Then the first `limit` of them (0: all) are written as a JSON
 * array in the success envelope, with the truncation warning when some
 * were cut.
 */
static void write_list(http_resp *resp, void *v, size_t n, int merged, size_t limit, list_kind kind) {
    if (merged && n > 1) {
        size_t size = kind == LIST_SERIES ? sizeof(const series *) : sizeof(const char *);
        int (*cmp)(const void *, const void *) = kind == LIST_SERIES ? series_ptr_cmp : str_ptr_cmp;
        char *e = v;
        qsort(v, n, size, cmp);
        size_t k = 1;
        for (size_t i = 1; i < n; i++)
            if (cmp(e + i * size, e + (k - 1) * size) != 0)
                memcpy(e + k++ * size, e + i * size, size);
        n = k;
    }
    const char *trunc = NULL;
    if (limit && n > limit) {
        n = limit;
        trunc = V1_TRUNCATED;
    }
    buf *b = &resp->body;
    http_resp_json_begin(resp);
    buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        if (kind == LIST_SERIES) {
            const series *s = ((const series *const *)v)[i];
            labels_json(b, s->ls, s->nls);
        } else {
            json_str(b, ((const char *const *)v)[i]);
        }
    }
    buf_putc(b, ']');
    v1_notes nt = {NULL, 0, NULL, 0, trunc};
    v1_end_success(resp, &nt);
}

/* ---- what series, labels and label values read -------------------------- */

/* A metadata request: its range, limit and match[] sets, and a querier over
 * the range. */
typedef struct meta_req {
    int64_t start, end;
    size_t limit;
    v1_match_sets m;
    querier *q;
} meta_req;

/* Parses start, end, limit and match[] (errors wrapped with the parameter's
 * name when `wrap`) and opens the querier.  -1 when the answer is written
 * (nothing to free); else 0, and meta_end frees r. */
static int meta_begin(api_v1 *a, http_req *req, http_resp *resp, int wrap, meta_req *r) {
    r->q = NULL;
    if (v1_range_params(req, resp, &r->start, &r->end) != 0 || v1_limit_param(req, resp, &r->limit) != 0 ||
        v1_match_param(req, resp, &r->m, wrap) != 0)
        return -1;
    storage *st = v1_storage(a, resp);
    if (!st || v1_open_querier(resp, st, r->start, r->end, &r->q) != 0) {
        v1_match_sets_free(&r->m);
        return -1;
    }
    return 0;
}

static void meta_end(meta_req *r) {
    querier_close(r->q);
    v1_match_sets_free(&r->m);
}

/* ---- series ----------------------------------------------------------- */

/* The series of the sets, their pointers in one list. */
static void write_series(http_resp *resp, meta_req *r) {
    series_set *sets = calloc(r->m.n, sizeof *sets);
    const series **all = NULL;
    size_t nsets = 0;
    if (!sets) {
        v1_internal(resp, KILN_ENOMEM, NULL);
        goto out;
    }
    size_t total = 0;
    select_hints h = {r->start, r->end, 1, 0};
    for (; nsets < r->m.n; nsets++) {
        kiln_err err = {0};
        int rc = querier_select(r->q, r->m.sel[nsets].ms, r->m.sel[nsets].nms, &h, &sets[nsets], &err);
        if (rc != 0) {
            if (err.code == KILN_ELIMIT)
                http_resp_json_error(resp, 422, "execution", err.msg);
            else
                v1_internal(resp, rc, &err);
            goto out;
        }
        total += sets[nsets].n;
    }
    all = malloc((total ? total : 1) * sizeof *all);
    if (!all) {
        v1_internal(resp, KILN_ENOMEM, NULL);
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < nsets; i++)
        for (size_t j = 0; j < sets[i].n; j++)
            all[n++] = &sets[i].v[j];
    write_list(resp, all, n, nsets > 1, r->limit, LIST_SERIES);
out:
    free(all);
    for (size_t i = 0; i < nsets; i++)
        series_set_free(&sets[i]);
    free(sets);
}

static void h_series(http_req *req, http_resp *resp, void *data) {
    const char *one;
    if (http_req_params(req, "match[]", &one, 1) == 0) {
        v1_bad_data(resp, "no match[] parameter provided");
        return;
    }
    meta_req r;
    if (meta_begin(data, req, resp, 1, &r) != 0)
        return;
    write_series(resp, &r);
    meta_end(&r);
}

/* ---- labels and label values ------------------------------------------ */

/* Writes the union of the sorted lists. */
static void write_str_union(http_resp *resp, str_list *lists, size_t nl, size_t limit) {
    if (nl == 1) {
        /* already sorted and unique: written from where it is */
        write_list(resp, (void *)lists[0].v, lists[0].n, 0, limit, LIST_STRINGS);
        return;
    }
    size_t total = 0;
    for (size_t i = 0; i < nl; i++)
        total += lists[i].n;
    const char **v = malloc((total ? total : 1) * sizeof *v);
    if (!v) {
        v1_internal(resp, KILN_ENOMEM, NULL);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < nl; i++)
        for (size_t j = 0; j < lists[i].n; j++)
            v[n++] = lists[i].v[j];
    write_list(resp, v, n, 1, limit, LIST_STRINGS);
    free(v);
}

/* labels (name == NULL) or label/<name>/values: one list a match[] set (or
 * one over all series). */
static void label_query(api_v1 *a, http_req *req, http_resp *resp, const char *name) {
    meta_req r;
    if (meta_begin(a, req, resp, 0, &r) != 0)
        return;
    size_t nl = r.m.n ? r.m.n : 1;
    str_list *lists = calloc(nl, sizeof *lists);
    size_t done = 0;
    if (!lists) {
        v1_internal(resp, KILN_ENOMEM, NULL);
        goto out;
    }
    for (; done < nl; done++) {
        kiln_err err = {0};
        const matcher *ms = r.m.n ? r.m.sel[done].ms : NULL;
        size_t nms = r.m.n ? r.m.sel[done].nms : 0;
        int rc = name ? querier_label_values(r.q, name, ms, nms, &lists[done], &err)
                      : querier_label_names(r.q, ms, nms, &lists[done], &err);
        if (rc != 0) {
            v1_internal(resp, rc, &err);
            goto out;
        }
    }
    write_str_union(resp, lists, nl, r.limit);
out:
    for (size_t i = 0; i < done; i++)
        str_list_free(&lists[i]);
    free(lists);
    meta_end(&r);
}

static void h_labels(http_req *req, http_resp *resp, void *data) {
    label_query(data, req, resp, NULL);
}

static void h_label_values(http_req *req, http_resp *resp, void *data) {
    const char *suffix = req->route_suffix ? req->route_suffix : "";
    size_t n = strlen(suffix);
    static const char tail[] = "/values";
    size_t tl = sizeof tail - 1;
    if (n <= tl || strcmp(suffix + n - tl, tail) != 0 || memchr(suffix, '/', n - tl)) {
        char msg[300];
        snprintf(msg, sizeof msg, "unknown API endpoint %.250s", req->path);
        http_resp_json_error(resp, 404, "not_found", msg);
        return;
    }
    char *raw = arena_strndup(req->arena, suffix, n - tl);
    if (!raw) {
        v1_internal(resp, KILN_ENOMEM, NULL);
        return;
    }
    const char *name = api_v1_unescape_name(req->arena, raw);
    if (!*name || !utf8_valid(name, strlen(name))) {
        v1_bad_data(resp, "invalid label name: \"%s\"", name);
        return;
    }
    label_query(data, req, resp, name);
}

/* ---- the scrape manager's views ------------------------------------------ */

static void h_metadata(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    long limit, lpm;
    if (v1_int_param(req, resp, "limit", &limit) != 0 ||
        v1_int_param(req, resp, "limit_per_metric", &lpm) != 0)
        return;
    api_v1_scrape *sc = atomic_load(&a->scrape);
    if (!sc) {
        http_resp_json_success(resp, "{}", 2);
        return;
    }
    buf b = BUF_INIT;
    v1_send_buf(resp, &b, sc->metadata(sc->data, v1_param(req, "metric"), limit, lpm, &b));
}

static void h_targets(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    char state[16];
    snprintf(state, sizeof state, "%s", v1_param(req, "state"));
    for (char *c = state; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    api_v1_scrape *sc = atomic_load(&a->scrape);
    if (!sc) {
        static const char none[] = "{\"activeTargets\":[],\"droppedTargets\":[]}";
        http_resp_json_success(resp, none, sizeof none - 1);
        return;
    }
    buf b = BUF_INIT;
    v1_send_buf(resp, &b, sc->targets(sc->data, state, v1_param(req, "scrapePool"), &b));
}

static void h_targets_metadata(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    long limit;
    if (v1_int_param(req, resp, "limit", &limit) != 0)
        return;
    const char *text = v1_param(req, "match_target");
    query_selector sel = {0};
    if (*text) {
        kiln_err err = {0};
        if (query_selector_parse(text, &sel, &err) != 0) {
            if (sel.other)
                v1_bad_data(resp, "invalid parameter \"match_target\": not a series selector: %s", text);
            else
                v1_invalid_param(resp, "match_target", &err);
            query_selector_free(&sel);
            return;
        }
    }
    api_v1_scrape *sc = atomic_load(&a->scrape);
    buf b = BUF_INIT;
    int rc = 0;
    if (!sc)
        buf_puts(&b, "[]");
    else
        rc = sc->targets_metadata(sc->data, sel.ms, sel.nms, v1_param(req, "metric"), limit, &b);
    query_selector_free(&sel);
    v1_send_buf(resp, &b, rc);
}

int v1_register_metadata(http_server *s, api_v1 *a) {
    static const v1_route routes[] = {
        {"GET,POST", "/api/v1/series", h_series, NULL, HTTP_ROUTE_LOOKUP},
        {"GET,POST", "/api/v1/labels", h_labels, NULL, HTTP_ROUTE_LOOKUP},
        {"GET", "/api/v1/label/*", h_label_values, "/api/v1/label/:name/values", HTTP_ROUTE_LOOKUP},
        {"GET", "/api/v1/metadata", h_metadata, NULL, HTTP_ROUTE_WORKER},
        {"GET", "/api/v1/targets", h_targets, NULL, HTTP_ROUTE_WORKER},
        {"GET", "/api/v1/targets/metadata", h_targets_metadata, NULL, HTTP_ROUTE_WORKER},
    };
    return v1_register_routes(s, a, V1_ROUTES(routes));
}
