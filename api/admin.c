/*
 * admin.c - the TSDB admin endpoints of /api/v1 (Prometheus' admin API,
 * behind --web.enable-admin-api): admin/tsdb/snapshot, delete_series and
 * clean_tombstones, each a call into the storage.  With the flag off they
 * answer 503 "admin APIs disabled", as Prometheus does.
 *
 * Called by the HTTP server through the routes registered
 * here (api_v1_register calls the v1_register_* function), on worker
 * threads (any number at once; the storage serialises what it must).
 */
#include <string.h>

#include "api/v1.h"

/* The storage for an admin endpoint: NULL (the answer sent) when admin APIs
 * are off or the replay is not done. */
static storage *admin_storage(api_v1 *a, http_resp *resp) {
    if (!a->enable_admin) {
        http_resp_json_error(resp, 503, "unavailable", "admin APIs disabled");
        return NULL;
    }
    return v1_storage(a, resp);
}

/* Go's strconv.ParseBool: 1 or 0 in *v, -1 when s is none of its words. */
static int parse_bool(const char *s, int *v) {
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
            *v = strcmp(s, yes[i]) == 0;
            return 0;
        }
    }
    return -1;
}

/* POST /api/v1/admin/tsdb/snapshot[?skip_head=true] */
static void h_snapshot(http_req *req, http_resp *resp, void *data) {
    storage *st = admin_storage(data, resp);
    if (!st)
        return;
    const char *sh = v1_param(req, "skip_head");
    int skip = 0;
    if (*sh && parse_bool(sh, &skip) != 0) {
        v1_bad_data(resp,
                    "unable to parse boolean 'skip_head' argument: strconv.ParseBool: parsing \"%s\": "
                    "invalid syntax",
                    sh);
        return;
    }
    char name[64];
    kiln_err err = {0};
    int rc = storage_snapshot(st, !skip, name, sizeof name, &err);
    if (rc != 0) {
        v1_internal(resp, rc, &err);
        return;
    }
    http_resp_json_begin(resp);
    buf_puts(&resp->body, "{\"name\":");
    json_str(&resp->body, name);
    buf_putc(&resp->body, '}');
    v1_end_success(resp, NULL);
}

/* POST|PUT /api/v1/admin/tsdb/delete_series?match[]=...&start=&end= : 204 */
static void h_delete_series(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    storage *st = admin_storage(a, resp);
    if (!st)
        return;
    const char *one;
    if (http_req_params(req, "match[]", &one, 1) == 0) {
        v1_bad_data(resp, "no match[] parameter provided");
        return;
    }
    int64_t start = 0, end = 0;
    if (v1_range_params(req, resp, &start, &end) != 0)
        return;
    v1_match_sets m;
    if (v1_match_param(req, resp, &m, 1) != 0)
        return;
    for (size_t i = 0; i < m.n; i++) {
        kiln_err err = {0};
        int rc = storage_delete_series(st, m.sel[i].ms, m.sel[i].nms, start, end, &err);
        if (rc != 0) {
            v1_internal(resp, rc, &err);
            v1_match_sets_free(&m);
            return;
        }
    }
    v1_match_sets_free(&m);
    resp->status = 204;
}

/* POST|PUT /api/v1/admin/tsdb/clean_tombstones : 204 */
static void h_clean_tombstones(http_req *req, http_resp *resp, void *data) {
    (void)req;
    storage *st = admin_storage(data, resp);
    if (!st)
        return;
    kiln_err err = {0};
    int rc = storage_clean_tombstones(st, &err);
    if (rc != 0) {
        v1_internal(resp, rc, &err);
        return;
    }
    resp->status = 204;
}

int v1_register_admin(http_server *s, api_v1 *a) {
    static const v1_route routes[] = {
        {"POST,PUT", "/api/v1/admin/tsdb/snapshot", h_snapshot, NULL, HTTP_ROUTE_WORKER},
        {"POST,PUT", "/api/v1/admin/tsdb/delete_series", h_delete_series, NULL, HTTP_ROUTE_LOOKUP},
        {"POST,PUT", "/api/v1/admin/tsdb/clean_tombstones", h_clean_tombstones, NULL, HTTP_ROUTE_WORKER},
    };
    return v1_register_routes(s, a, V1_ROUTES(routes));
}
