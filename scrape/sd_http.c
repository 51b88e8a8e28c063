/*
 * sd_http.c - http_sd_configs: target groups fetched from an HTTP endpoint
 * every refresh_interval, as Prometheus' discovery/http does.
 *
 * The endpoint answers 200 with Content-Type application/json and a JSON
 * list of static configs:
 *
 *   [{"targets": ["host:port", ...], "labels": {"name": "value", ...}}, ...]
 *
 * Each group gets the meta label __meta_url (the endpoint) and the source
 * "<url>:<index>".  A refresh that fails (transport, status, content type,
 * JSON, a bad label name) keeps the groups of the last good one and counts
 * kiln_sd_http_failures_total.  The request carries
 * X-Prometheus-Refresh-Interval-Seconds as Prometheus' does.
 *
 * Threading: the SD thread (sd.c), except sd_http_decode (pure, any thread).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scrape/sd.h"

typedef struct http_sd {
    sd_req req;
    char hdr_refresh[96];
} http_sd;

int sd_http_decode(const char *body, size_t len, const char *url, sd_tg ***out, size_t *nout, kiln_err *err) {
    *out = NULL;
    *nout = 0;
    arena a;
    arena_init(&a, 0);
    json_val *root = NULL;
    int rc = json_parse(body, len, &a, &root, err);
    sd_gb b;
    sd_gb_init(&b);
    sd_tg **gs = NULL;
    size_t n = 0;
    if (rc == 0 && root->type != JSON_ARR)
        rc = kiln_err_set(err, KILN_EINVAL, "expected a JSON list of target groups");
    if (rc == 0 && root->n && !(gs = calloc(root->n, sizeof *gs)))
        rc = kiln_err_set(err, KILN_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < root->n; i++) {
        const json_val *g = &root->kids[i];
        if (g->type == JSON_NULL)
            continue; /* Go decodes a null group to nothing */
        if (g->type != JSON_OBJ) {
            rc = kiln_err_set(err, KILN_EINVAL, "target group %zu: expected an object", i);
            break;
        }
        const json_val *ts = json_get(g, "targets"), *ls = json_get(g, "labels");
        if (ts && ts->type != JSON_ARR && ts->type != JSON_NULL) {
            rc = kiln_err_set(err, KILN_EINVAL, "target group %zu: \"targets\" must be a list of strings", i);
            break;
        }
        if (ls && ls->type != JSON_OBJ && ls->type != JSON_NULL) {
            rc = kiln_err_set(err, KILN_EINVAL, "target group %zu: \"labels\" must be an object", i);
            break;
        }
        for (size_t j = 0; ls && ls->type == JSON_OBJ && j < ls->n && rc == 0; j++) {
            const char *name = ls->keys[j];
            if (!label_name_valid(name, strlen(name)))
                rc = kiln_err_set(err, KILN_EINVAL, "target group %zu: \"%.100s\" is not a valid label name",
                                  i, name);
            else if (ls->kids[j].type != JSON_STR)
                rc = kiln_err_set(err, KILN_EINVAL,
                                  "target group %zu: the value of label \"%.100s\" is not a string", i, name);
            else
                sd_gb_label(&b, name, ls->kids[j].str);
        }
        sd_gb_label(&b, "__meta_url", url);
        for (size_t j = 0; ts && ts->type == JSON_ARR && j < ts->n && rc == 0; j++) {
            if (ts->kids[j].type != JSON_STR)
                rc = kiln_err_set(err, KILN_EINVAL, "target group %zu: target %zu is not a string", i, j);
            else
                sd_gb_target(&b, ts->kids[j].str);
        }
        if (rc != 0)
            break;
        char *src = malloc(strlen(url) + 24);
        if (!src) {
            rc = kiln_err_set(err, KILN_ENOMEM, "out of memory");
            break;
        }
        sprintf(src, "%s:%zu", url, i);
        gs[n] = sd_gb_done(&b, src);
        free(src);
        if (!gs[n])
            rc = kiln_err_set(err, KILN_ENOMEM, "out of memory");
        else
            n++;
    }
    sd_gb_free(&b);
    arena_free(&a);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            sd_tg_unref(gs[i]);
        free(gs);
        return rc;
    }
    *out = gs;
    *nout = n;
    return 0;
}

/* Content-Type application/json, parameters allowed (Prometheus' ^application/json(;.*)?$). */
static int json_type(const char *ct) {
    return ct && strncasecmp(ct, "application/json", 16) == 0 && (ct[16] == 0 || ct[16] == ';');
}

static void http_done(sd_req *r, CURLcode res) {
    sd_provider *p = r->data;
    const config_http_sd *c = p->conf;
    const char *e = sd_req_error(r, res);
    kiln_err err = {0};
    char *ct = NULL;
    if (!e && (curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct) != CURLE_OK || !json_type(ct))) {
        snprintf(err.msg, sizeof err.msg, "unsupported content type \"%s\"", ct ? ct : "");
        e = err.msg;
    }
    sd_tg **gs = NULL;
    size_t n = 0;
    if (!e && sd_http_decode(r->body.data ? r->body.data : "", r->body.len, c->url, &gs, &n, &err) != 0)
        e = err.msg;
    if (!e && sd_set_replace(&p->cur, gs, n) > 0)
        p->dirty = 1;
    free(gs);
    if (e) {
        LOG_ERROR("Unable to refresh target groups", "discovery=http scrape_pool=%s url=%s err=%s", p->job,
                  c->url, e);
        metric_add(sd_metric(p->rt, "kiln_sd_http_failures_total", NULL), 1);
    }
    sd_count_refresh(p, e != NULL);
    buf_free(&r->body);
    sd_publish(p);
    p->due_ms = time_now_ms() + c->refresh_interval_ms;
}

static int http_start(sd_provider *p) {
    http_sd *h = calloc(1, sizeof *h);
    if (!h)
        return KILN_ENOMEM;
    p->state = h;
    h->req.done = http_done;
    h->req.data = p;
    p->due_ms = 0;
    return 0;
}

static void http_tick(sd_provider *p) {
    http_sd *h = p->state;
    const config_http_sd *c = p->conf;
    if (h->req.active)
        return;
    snprintf(h->hdr_refresh, sizeof h->hdr_refresh, "X-Prometheus-Refresh-Interval-Seconds: %g",
             (double)c->refresh_interval_ms / 1000.0);
    const char *hdrs[] = {"Accept: application/json", h->hdr_refresh, NULL};
    int64_t timeout = c->refresh_interval_ms < 60000 ? 60000 : c->refresh_interval_ms;
    if (sd_req_start(p->rt, &h->req, c->url, &c->http, hdrs, timeout) != 0) {
        LOG_ERROR("Unable to refresh target groups", "discovery=http scrape_pool=%s url=%s err=%s", p->job,
                  c->url, h->req.err[0] ? h->req.err : "out of memory");
        metric_add(sd_metric(p->rt, "kiln_sd_http_failures_total", NULL), 1);
        sd_count_refresh(p, 1);
        sd_publish(p);
        p->due_ms = time_now_ms() + c->refresh_interval_ms;
    }
}

static void http_free(sd_provider *p) {
    http_sd *h = p->state;
    if (!h)
        return;
    sd_req_free(p->rt, &h->req);
    free(h);
    p->state = NULL;
}

const sd_ops sd_http_ops = {
    .mechanism = "http",
    .start = http_start,
    .tick = http_tick,
    .free = http_free,
};
