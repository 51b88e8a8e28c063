/*
 * v1.c - the /api/v1 query and metadata API as a whole: its context
 * (api_v1_new, the storage, scrape and rule views set once they run), the
 * answer envelope every handler writes (see v1.h), the route table, the
 * rule manager's endpoints (rules, alerts, alertmanagers: empty answers
 * until it runs) and walreplay.  The other handlers live by subject, each file with its
 * route table, in query_api.c, metadata.c, tsdb_status.c and admin.c;
 * their parameters are parsed in params.c.
 *
 * Called by cmd/kiln/main.c (new, set_storage, set_scrape, set_rules,
 * register, free) and by the handlers.  Threading: as v1.h says, handlers on
 * worker threads; api_v1_set_storage, api_v1_set_scrape and
 * api_v1_set_rules from any thread.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/v1.h"
#include "rules/rules.h"

/* ---- options and context --------------------------------------------- */

void api_v1_opts_default(api_v1_opts *o) {
    query_engine_opts e = query_engine_opts_default();
    o->lookback_delta_ms = e.lookback_delta_ms;
    o->max_samples = e.max_samples;
    o->timeout_ms = e.timeout_ms;
    o->max_concurrency = 20;
    o->read_sample_limit = 50000000;
    o->read_concurrency = 10;
    o->read_max_frame_bytes = 1048576;
    o->features = 0;
}

int api_v1_new(const api_v1_opts *o, api_v1 **out) {
    api_v1 *a = calloc(1, sizeof *a);
    if (!a)
        return KILN_ENOMEM;
    api_v1_opts d;
    if (!o) {
        api_v1_opts_default(&d);
        o = &d;
    }
    query_engine_opts eo = {o->lookback_delta_ms, o->max_samples, o->timeout_ms, o->features};
    query_engine_init(&a->engine, &eo);
    a->enable_admin = o->enable_admin;
    a->max_concurrency = o->max_concurrency;
    a->read_sample_limit = o->read_sample_limit;
    a->read_concurrency = o->read_concurrency;
    a->read_max_frame_bytes = o->read_max_frame_bytes;
    if (query_rcache_new(o->cache_bytes, &a->rcache) != 0) {
        free(a);
        return KILN_ENOMEM;
    }
    atomic_store(&a->st, NULL);
    *out = a;
    return 0;
}

void api_v1_set_storage(api_v1 *a, storage *st) {
    if (st)
        query_rcache_attach(a->rcache, st);
    atomic_store(&a->st, st);
}

void api_v1_free(api_v1 *a) {
    if (a) {
        free(atomic_load(&a->scrape));
        query_rcache_free(a->rcache);
    }
    free(a);
}

int api_v1_set_scrape(api_v1 *a, const api_v1_scrape *s) {
    api_v1_scrape *c = malloc(sizeof *c);
    if (!c)
        return KILN_ENOMEM;
    *c = *s;
    free(atomic_exchange(&a->scrape, c)); /* set once at start-up: no reader holds the old one */
    return 0;
}

void api_v1_set_rules(api_v1 *a, rules_manager *rm) {
    atomic_store(&a->rules, rm);
}

/* ---- the envelope ------------------------------------------------------- */

static void json_str_array(buf *b, const char *key, const char *const *v, size_t n, const char *extra) {
    if (n == 0 && !extra)
        return;
    buf_printf(b, ",\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        json_str(b, v[i]);
    }
    if (extra) {
        if (n)
            buf_putc(b, ',');
        json_str(b, extra);
    }
    buf_putc(b, ']');
}

void v1_end_success(http_resp *resp, const v1_notes *nt) {
    if (nt) {
        json_str_array(&resp->body, "warnings", nt->w, nt->nw, nt->extra);
        json_str_array(&resp->body, "infos", nt->i, nt->ni, NULL);
    }
    http_resp_json_end(resp);
}

void v1_bad_data(http_resp *resp, const char *fmt, ...) {
    char msg[KILN_ERR_MSG_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    http_resp_json_error(resp, 400, "bad_data", msg);
}

void v1_invalid_param(http_resp *resp, const char *param, const kiln_err *err) {
    v1_bad_data(resp, "invalid parameter \"%s\": %s", param, err->msg);
}

void v1_internal(http_resp *resp, int rc, const kiln_err *err) {
    http_resp_json_error(resp, 500, "internal", err && err->msg[0] ? err->msg : kiln_strerror(rc));
}

void v1_send_buf(http_resp *resp, buf *b, int rc) {
    if (rc == 0)
        rc = buf_error(b);
    if (rc == 0 && !b->data)
        rc = KILN_ENOMEM;
    if (rc != 0)
        v1_internal(resp, rc, NULL);
    else
        http_resp_json_success(resp, b->data, b->len);
    buf_free(b);
}

storage *v1_storage(api_v1 *a, http_resp *resp) {
    storage *st = atomic_load(&a->st);
    if (!st)
        http_resp_json_error(resp, 503, "unavailable", "kiln is starting: the WAL replay is not done yet");
    return st;
}

int v1_open_querier(http_resp *resp, storage *st, int64_t mint, int64_t maxt, querier **q) {
    kiln_err err = {0};
    int rc = storage_querier(st, mint, maxt, q, &err);
    if (rc != 0) {
        v1_internal(resp, rc, &err);
        return -1;
    }
    return 0;
}

/* ---- the WAL replay's progress ------------------------------------------ */

static void h_walreplay(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    (void)req;
    static const char done[] = "{\"min\":0,\"max\":0,\"current\":0,\"state\":\"done\"}";
    static const char waiting[] = "{\"min\":0,\"max\":0,\"current\":0,\"state\":\"in progress\"}";
    if (atomic_load(&a->st))
        http_resp_json_success(resp, done, sizeof done - 1);
    else
        http_resp_json_success(resp, waiting, sizeof waiting - 1);
}

/* ---- the rule manager's views ------------------------------------------ */

/* All values of a repeated parameter (rule_name[], ...) in *vals (malloc'd,
 * NULL when none); the count, or -1 when out of memory. */
static long multi_param(http_req *req, const char *name, const char ***vals) {
    size_t n = http_req_params(req, name, NULL, 0);
    *vals = NULL;
    if (n == 0)
        return 0;
    if (!(*vals = malloc(n * sizeof **vals)))
        return -1;
    return (long)http_req_params(req, name, *vals, n);
}

/* Go's strconv.ParseBool of the lowercased value: 1, 0 or -1 (invalid). */
static int parse_bool(const char *v) {
    static const char *const t[] = {"1", "t", "true"}, *const f[] = {"0", "f", "false"};
    char low[8];
    size_t n = strlen(v);
    if (n >= sizeof low)
        return -1;
    for (size_t i = 0; i <= n; i++)
        low[i] = (char)tolower((unsigned char)v[i]);
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(low, t[i]) == 0)
            return 1;
        if (strcmp(low, f[i]) == 0)
            return 0;
    }
    return -1;
}

static void h_rules(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    rules_manager *rm = atomic_load(&a->rules);
    rules_filter f = {0};
    const char *type = v1_param(req, "type");
    if (!strcmp(type, "alert"))
        f.type = RULEFILE_ALERT;
    else if (!strcmp(type, "record"))
        f.type = RULEFILE_RECORD;
    else if (*type) {
        v1_bad_data(resp, "invalid parameter \"type\": not supported value \"%s\"", type);
        return;
    }
    const char *ex = v1_param(req, "exclude_alerts");
    if (*ex && (f.exclude_alerts = parse_bool(ex)) < 0) {
        v1_bad_data(
            resp,
            "invalid parameter \"exclude_alerts\": error converting exclude_alerts: strconv.ParseBool: "
            "parsing \"%s\": invalid syntax",
            ex);
        return;
    }
    if (!rm) {
        static const char none[] = "{\"groups\":[]}";
        http_resp_json_success(resp, none, sizeof none - 1);
        return;
    }
    const char **names = NULL, **groups = NULL, **files = NULL;
    long nn = multi_param(req, "rule_name[]", &names), ng = multi_param(req, "rule_group[]", &groups),
         nf = multi_param(req, "file[]", &files);
    buf b = BUF_INIT;
    int rc = KILN_ENOMEM;
    if (nn >= 0 && ng >= 0 && nf >= 0) {
        f.rule_names = names, f.nrule_names = (size_t)nn;
        f.rule_groups = groups, f.nrule_groups = (size_t)ng;
        f.files = files, f.nfiles = (size_t)nf;
        rc = rules_manager_rules_json(rm, &f, &b);
    }
    free(names);
    free(groups);
    free(files);
    v1_send_buf(resp, &b, rc);
}

/* A view of the manager written by fn, or the empty answer until the
 * manager runs. */
static void manager_view(http_resp *resp, api_v1 *a, int (*fn)(rules_manager *, buf *), const char *none) {
    rules_manager *rm = atomic_load(&a->rules);
    if (!rm) {
        http_resp_json_success(resp, none, strlen(none));
        return;
    }
    buf b = BUF_INIT;
    int rc = fn(rm, &b);
    v1_send_buf(resp, &b, rc);
}

static void h_alerts(http_req *req, http_resp *resp, void *data) {
    (void)req;
    manager_view(resp, data, rules_manager_alerts_json, "{\"alerts\":[]}");
}

static void h_alertmanagers(http_req *req, http_resp *resp, void *data) {
    (void)req;
    manager_view(resp, data, rules_manager_alertmanagers_json,
                 "{\"activeAlertmanagers\":[],\"droppedAlertmanagers\":[]}");
}

/* GET /api/v1/features (api.md, Prometheus 3.8): the API's and PromQL's. */
static void h_features(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    (void)req;
    buf b = BUF_INIT;
    buf_printf(&b, "{\"api\":{\"admin\":%s},", a->enable_admin ? "true" : "false");
    int rc = query_features_json(a->engine.opts.features, &b);
    buf_putc(&b, '}');
    v1_send_buf(resp, &b, rc);
}

/* ---- registration ----------------------------------------------------- */

int v1_register_routes(http_server *s, api_v1 *a, const v1_route *r, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int rc = http_route(s, r[i].methods, r[i].path, r[i].flags, r[i].fn, a, r[i].label);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int api_v1_register(http_server *s, api_v1 *a) {
    static const v1_route routes[] = {
        {"GET", "/api/v1/rules", h_rules, NULL, HTTP_ROUTE_WORKER},
        {"GET", "/api/v1/alerts", h_alerts, NULL, HTTP_ROUTE_WORKER},
        {"GET", "/api/v1/alertmanagers", h_alertmanagers, NULL, HTTP_ROUTE_WORKER},
        {"GET", "/api/v1/status/walreplay", h_walreplay, NULL, HTTP_ROUTE_WORKER},
        {"GET", "/api/v1/features", h_features, NULL, HTTP_ROUTE_WORKER},
    };
    int rc = v1_register_query(s, a);
    if (rc == 0)
        rc = v1_register_metadata(s, a);
    if (rc == 0)
        rc = v1_register_admin(s, a);
    if (rc == 0)
        rc = v1_register_tsdb(s, a);
    if (rc == 0)
        rc = v1_register_federate(s, a);
    if (rc == 0)
        rc = v1_register_read(s, a);
    if (rc == 0)
        rc = v1_register_exemplars(s, a);
    if (rc == 0)
        rc = v1_register_routes(s, a, V1_ROUTES(routes));
    return rc;
}
