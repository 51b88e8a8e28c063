/*
 * status.c - the endpoints every kiln has from the start: health and
 * readiness, lifecycle (reload, quit), /metrics, and the /api/v1/status
 * endpoints (buildinfo, flags, config, runtimeinfo).
 *
 * Texts and JSON shapes follow Prometheus' management API and HTTP API.
 * What they report comes from the daemon through api_app's callbacks.
 *
 * Called by cmd/kiln/main.c (api_register_base) and by the HTTP server: the
 * INLINE routes on the loop thread, the others on worker threads.
 */
#include <stdio.h>
#include <string.h>

#include "api.h"

/* The Prometheus version whose API kiln answers like; Grafana reads it from
 * buildinfo to decide which features to use (docs/compatibility.md). */
#define KILN_PROMETHEUS_COMPAT "3.0.0"

static void h_healthy(http_req *req, http_resp *resp, void *data) {
    (void)req, (void)data;
    http_resp_text(resp, 200, "kiln is Healthy.\n");
}

static void h_ready(http_req *req, http_resp *resp, void *data) {
    api_app *a = data;
    (void)req;
    if (a->ready(a->app))
        http_resp_text(resp, 200, "kiln is Ready.\n");
    else
        http_resp_text(resp, 503, "Service Unavailable\n");
}

/* 1 when the lifecycle endpoints are off (--web.enable-lifecycle not
 * given), with the 403 answered. */
static int lifecycle_off(const api_app *a, http_resp *resp) {
    if (a->enable_lifecycle)
        return 0;
    http_resp_text(resp, 403, "Lifecycle API is not enabled.\n");
    return 1;
}

static void h_reload(http_req *req, http_resp *resp, void *data) {
    api_app *a = data;
    (void)req;
    if (lifecycle_off(a, resp))
        return;
    kiln_err err = {0};
    if (a->reload(a->app, &err) != 0) {
        char msg[KILN_ERR_MSG_MAX + 64];
        snprintf(msg, sizeof msg, "failed to reload config: %s\n", err.msg);
        http_resp_text(resp, 500, msg);
        return;
    }
    http_resp_text(resp, 200, "");
}

static void h_quit(http_req *req, http_resp *resp, void *data) {
    api_app *a = data;
    (void)req;
    if (lifecycle_off(a, resp))
        return;
    http_resp_text(resp, 200, "Requesting termination... Goodbye!\n");
    a->quit(a->app);
}

static void h_metrics(http_req *req, http_resp *resp, void *data) {
    (void)req, (void)data;
    snprintf(resp->content_type, sizeof resp->content_type, "text/plain; version=0.0.4; charset=utf-8");
    if (metrics_write_text(&resp->body) != 0)
        http_resp_text(resp, 500, "out of memory\n");
}

static void h_buildinfo(http_req *req, http_resp *resp, void *data) {
    (void)req, (void)data;
    static const char info[] =
        "{\"version\":\"" KILN_PROMETHEUS_COMPAT "\",\"revision\":\"" KILN_REVISION
        "\",\"branch\":\"" KILN_BRANCH "\",\"buildUser\":\"\",\"buildDate\":\"" __DATE__
        "\",\"goVersion\":\"\",\"application\":\"kiln\",\"kilnVersion\":\"" KILN_VERSION "\"}";
    http_resp_json_success(resp, info, sizeof info - 1);
}

static void h_flags(http_req *req, http_resp *resp, void *data) {
    api_app *a = data;
    (void)req;
    buf *b = &resp->body;
    http_resp_json_begin(resp);
    buf_putc(b, '{');
    for (size_t i = 0; i < a->nflags; i++) {
        if (i)
            buf_putc(b, ',');
        json_str(b, a->flag_names[i]);
        buf_putc(b, ':');
        json_str(b, a->flag_values[i] ? a->flag_values[i] : "");
    }
    buf_putc(b, '}');
    http_resp_json_end(resp);
}

static void h_config(http_req *req, http_resp *resp, void *data) {
    api_app *a = data;
    (void)req;
    buf y = BUF_INIT;
    if (a->config_yaml(a->app, &y) != 0 || buf_error(&y) != 0) {
        http_resp_json_error(resp, 500, "internal", "cannot render the configuration");
    } else {
        http_resp_json_begin(resp);
        buf_puts(&resp->body, "{\"yaml\":");
        json_strn(&resp->body, y.data ? y.data : "", y.len);
        buf_putc(&resp->body, '}');
        http_resp_json_end(resp);
    }
    buf_free(&y);
}

static void h_runtimeinfo(http_req *req, http_resp *resp, void *data) {
    api_app *a = data;
    (void)req;
    http_resp_json_begin(resp);
    buf_putc(&resp->body, '{');
    if (a->runtime_info(a->app, &resp->body) != 0) {
        http_resp_json_error(resp, 500, "internal", "cannot read runtime information");
        return;
    }
    buf_putc(&resp->body, '}');
    http_resp_json_end(resp);
}

int api_register_base(http_server *s, api_app *a) {
    static const struct {
        const char *methods, *path;
        unsigned flags;
        http_handler_fn fn;
    } routes[] = {
        {"GET", "/-/healthy", HTTP_ROUTE_INLINE, h_healthy},
        {"GET", "/-/ready", HTTP_ROUTE_INLINE, h_ready},
        {"POST,PUT", "/-/reload", HTTP_ROUTE_WORKER, h_reload},
        {"POST,PUT", "/-/quit", HTTP_ROUTE_INLINE, h_quit},
        {"GET", "/metrics", HTTP_ROUTE_WORKER, h_metrics},
        {"GET", "/api/v1/status/buildinfo", HTTP_ROUTE_INLINE, h_buildinfo},
        {"GET", "/api/v1/status/flags", HTTP_ROUTE_INLINE, h_flags},
        {"GET", "/api/v1/status/config", HTTP_ROUTE_WORKER, h_config},
        {"GET", "/api/v1/status/runtimeinfo", HTTP_ROUTE_WORKER, h_runtimeinfo},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        int rc = http_route(s, routes[i].methods, routes[i].path, routes[i].flags, routes[i].fn, a, NULL);
        if (rc != 0)
            return rc;
    }
    return 0;
}
