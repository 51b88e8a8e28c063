/*
 * status.c - the endpoints every kiln has from the start: health and
 * readiness, lifecycle (reload, quit), /metrics, and the /api/v1/status endpoints.
 *
 * Texts and JSON shapes follow Prometheus' management API and HTTP API.
 */
#include <stdio.h>
#include <string.h>

#include "api.h"

#ifndef KILN_VERSION
#define KILN_VERSION "0.0.0"
#endif
#ifndef KILN_REVISION
#define KILN_REVISION "unknown"
#endif
#ifndef KILN_BRANCH
#define KILN_BRANCH "unknown"
#endif

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

static void h_reload(http_req *req, http_resp *resp, void *data) {
    api_app *a = data;
    (void)req;
    if (!a->enable_lifecycle) {
        http_resp_text(resp, 403, "Lifecycle API is not enabled.\n");
        return;
    }
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
    if (!a->enable_lifecycle) {
        http_resp_text(resp, 403, "Lifecycle API is not enabled.\n");
        return;
    }
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
    buf b = BUF_INIT;
    buf_puts(&b, "{\"version\":\"" KILN_PROMETHEUS_COMPAT "\",\"revision\":\"" KILN_REVISION
                 "\",\"branch\":\"" KILN_BRANCH "\",\"buildUser\":\"\",\"buildDate\":\"" __DATE__
                 "\",\"goVersion\":\"\",\"application\":\"kiln\",\"kilnVersion\":\"" KILN_VERSION "\"}");
    http_resp_json_success(resp, b.data, b.len);
    buf_free(&b);
}

static void h_flags(http_req *req, http_resp *resp, void *data) {
    api_app *a = data;
    (void)req;
    buf b = BUF_INIT;
    buf_putc(&b, '{');
    for (size_t i = 0; i < a->nflags; i++) {
        if (i)
            buf_putc(&b, ',');
        json_str(&b, a->flag_names[i]);
        buf_putc(&b, ':');
        json_str(&b, a->flag_values[i] ? a->flag_values[i] : "");
    }
    buf_putc(&b, '}');
    http_resp_json_success(resp, b.data, b.len);
    buf_free(&b);
}

static void h_config(http_req *req, http_resp *resp, void *data) {
    api_app *a = data;
    (void)req;
    buf y = BUF_INIT, b = BUF_INIT;
    if (a->config_yaml(a->app, &y) != 0) {
        http_resp_json_error(resp, 500, "internal", "cannot render the configuration");
    } else {
        buf_puts(&b, "{\"yaml\":");
        json_strn(&b, y.data ? y.data : "", y.len);
        buf_putc(&b, '}');
        http_resp_json_success(resp, b.data, b.len);
    }
    buf_free(&y);
    buf_free(&b);
}

static void h_runtimeinfo(http_req *req, http_resp *resp, void *data) {
    api_app *a = data;
    (void)req;
    buf b = BUF_INIT;
    buf_putc(&b, '{');
    if (a->runtime_info(a->app, &b) != 0) {
        http_resp_json_error(resp, 500, "internal", "cannot read runtime information");
    } else {
        buf_putc(&b, '}');
        http_resp_json_success(resp, b.data, b.len);
    }
    buf_free(&b);
}

int api_register_base(http_server *s, api_app *a) {
    int rc = 0;
    rc |= http_route(s, "GET", "/-/healthy", HTTP_ROUTE_INLINE, h_healthy, a, NULL);
    rc |= http_route(s, "GET", "/-/ready", HTTP_ROUTE_INLINE, h_ready, a, NULL);
    rc |= http_route(s, "POST,PUT", "/-/reload", HTTP_ROUTE_WORKER, h_reload, a, NULL);
    rc |= http_route(s, "POST,PUT", "/-/quit", HTTP_ROUTE_INLINE, h_quit, a, NULL);
    rc |= http_route(s, "GET", "/metrics", HTTP_ROUTE_WORKER, h_metrics, a, NULL);
    rc |= http_route(s, "GET", "/api/v1/status/buildinfo", HTTP_ROUTE_INLINE, h_buildinfo, a, NULL);
    rc |= http_route(s, "GET", "/api/v1/status/flags", HTTP_ROUTE_INLINE, h_flags, a, NULL);
    rc |= http_route(s, "GET", "/api/v1/status/config", HTTP_ROUTE_WORKER, h_config, a, NULL);
    rc |= http_route(s, "GET", "/api/v1/status/runtimeinfo", HTTP_ROUTE_WORKER, h_runtimeinfo, a, NULL);
    return rc ? KILN_ENOMEM : 0;
}
