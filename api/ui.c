/*
 * ui.c - serves kiln's web UI: the files esbuild bundled from web/src,
 * embedded into the binary at build time (web/embed.py writes them as byte
 * arrays, each with its gzip form and an ETag, into build/web/ui_assets.c).
 *
 * The UI is one page (index.html) that routes on the client: every page
 * path answers index.html, which loads assets/app.js and assets/app.css
 * with relative URLs, so the UI works under any path prefix.  / and /graph
 * redirect to /query, as Prometheus 3 does (/graph keeps its parameters,
 * so old bookmarks and Alertmanager's generator URLs still open).
 *
 * Called by cmd/kiln/main.c (ui_register); the handlers are INLINE routes
 * and run on the loop thread: they only copy static bytes.
 */
#include <stdio.h>
#include <string.h>

#include "api.h"

/* The asset called name in the table that ends with a NULL name. */
static const ui_asset *ui_find(const ui_asset *assets, const char *name) {
    for (const ui_asset *a = assets; a->name; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

/* 1 when one of If-None-Match's entity tags is etag (or it is "*"). */
static int etag_matches(const char *inm, const char *etag) {
    if (!inm)
        return 0;
    if (strcmp(inm, "*") == 0)
        return 1;
    size_t n = strlen(etag);
    for (const char *p = strstr(inm, etag); p; p = strstr(p + 1, etag))
        if (p[n] == '\0' || p[n] == ',' || p[n] == ' ')
            return 1;
    return 0;
}

static void serve(http_req *req, http_resp *resp, const ui_asset *a) {
    http_resp_header(resp, "ETag", a->etag);
    http_resp_header(resp, "Cache-Control", "no-cache");
    snprintf(resp->content_type, sizeof resp->content_type, "%s", a->content_type);
    resp->no_gzip = 1;
    if (etag_matches(http_req_header(req, "If-None-Match"), a->etag)) {
        resp->status = 304;
        return;
    }
    resp->status = 200;
    if (req->accept_gzip && a->gz_len > 0) {
        buf_append(&resp->body, a->gz, a->gz_len);
        http_resp_header(resp, "Content-Encoding", "gzip");
    } else {
        buf_append(&resp->body, a->data, a->len);
    }
    http_resp_header(resp, "Vary", "Accept-Encoding");
}

static void h_page(http_req *req, http_resp *resp, void *data) {
    const ui_asset *a = ui_find(data, "index.html");
    if (!a) {
        http_resp_text(resp, 404, "404 page not found\n");
        return;
    }
    serve(req, resp, a);
}

static void h_asset(http_req *req, http_resp *resp, void *data) {
    const ui_asset *a = strcmp(req->route_suffix, "index.html") ? ui_find(data, req->route_suffix) : NULL;
    if (!a) {
        http_resp_text(resp, 404, "404 page not found\n");
        return;
    }
    serve(req, resp, a);
}

/* / -> query; /graph?x -> query?x.  Relative Locations keep a proxy's path
 * prefix (the browser resolves them against the URL it asked for). */
static void h_redirect(http_req *req, http_resp *resp, void *data) {
    (void)data;
    buf loc = BUF_INIT;
    buf_puts(&loc, strcmp(req->path, "/") == 0 ? "./query" : "query");
    if (req->query[0])
        buf_printf(&loc, "?%s", req->query);
    if (buf_error(&loc) == 0) {
        http_resp_header(resp, "Location", loc.data);
        http_resp_text(resp, 302, "");
    } else {
        http_resp_text(resp, 500, "out of memory\n");
    }
    buf_free(&loc);
}

static const char *const ui_pages[] = {"/query",  "/alerts", "/rules", "/targets",    "/service-discovery",
                                       "/status", "/config", "/flags", "/tsdb-status"};

int ui_register(http_server *s, const ui_asset *assets) {
    void *u = (void *)assets;
    int rc = http_route(s, "GET", "/", HTTP_ROUTE_INLINE, h_redirect, u, "/");
    if (rc == 0)
        rc = http_route(s, "GET", "/graph", HTTP_ROUTE_INLINE, h_redirect, u, "/graph");
    for (size_t i = 0; rc == 0 && i < sizeof ui_pages / sizeof ui_pages[0]; i++)
        rc = http_route(s, "GET", ui_pages[i], HTTP_ROUTE_INLINE, h_page, u, ui_pages[i]);
    if (rc == 0)
        rc = http_route(s, "GET", "/assets/*", HTTP_ROUTE_INLINE, h_asset, u, "/assets");
    return rc;
}
