/*
 * httpmsg.c - the request and response helpers every handler uses
 * (api.h's http_req_* and http_resp_*): parameters from the query string
 * and a urlencoded body, headers, and the text and JSON answers; and the
 * percent-decoding the server applies to a request's path.
 *
 * Called by the handlers on worker threads (each on its own request and
 * response) and by api/http.c on the loop thread.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "api/httpmsg.h"

/* ---- request helpers ------------------------------------------------ */

struct http_param {
    char *name, *value;
};

static int hexval(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

char *httpmsg_url_decode(arena *a, const char *s, size_t n, int plus_space) {
    char *out = arena_alloc(a, n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n) {
            int h = hexval((unsigned char)s[i + 1]);
            int l = hexval((unsigned char)s[i + 2]);
            if (h >= 0 && l >= 0) {
                out[o++] = (char)(h * 16 + l);
                i += 2;
                continue;
            }
        }
        out[o++] = plus_space && s[i] == '+' ? ' ' : s[i];
    }
    out[o] = 0;
    return out;
}

static void parse_pairs(http_req *req, const char *s, size_t n, size_t *cap) {
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '&' && s[j] != ';')
            j++;
        if (j > i) {
            const char *eq = memchr(s + i, '=', j - i);
            size_t klen = eq ? (size_t)(eq - (s + i)) : j - i;
            if (req->nparams == *cap) {
                size_t nc = *cap ? *cap * 2 : 16;
                struct http_param *np = arena_alloc(req->arena, nc * sizeof *np);
                if (!np)
                    return;
                if (req->nparams)
                    memcpy(np, req->params, req->nparams * sizeof *np);
                req->params = np;
                *cap = nc;
            }
            struct http_param *p = &req->params[req->nparams];
            p->name = httpmsg_url_decode(req->arena, s + i, klen, 1);
            p->value = eq ? httpmsg_url_decode(req->arena, eq + 1, (size_t)(s + j - eq - 1), 1)
                          : httpmsg_url_decode(req->arena, "", 0, 1);
            if (p->name && p->value)
                req->nparams++;
        }
        i = j + 1;
    }
}

static void parse_params(http_req *req) {
    if (req->params_parsed)
        return;
    req->params_parsed = 1;
    size_t cap = 0;
    parse_pairs(req, req->query, strlen(req->query), &cap);
    const char *ct = http_req_header(req, "Content-Type");
    if (strcmp(req->method, "POST") == 0 && ct &&
        strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0)
        parse_pairs(req, req->body, req->body_len, &cap);
}

const char *http_req_param(http_req *req, const char *name) {
    parse_params(req);
    for (size_t i = 0; i < req->nparams; i++)
        if (strcmp(req->params[i].name, name) == 0)
            return req->params[i].value;
    return NULL;
}

size_t http_req_params(http_req *req, const char *name, const char **vals, size_t max) {
    parse_params(req);
    size_t n = 0;
    for (size_t i = 0; i < req->nparams; i++)
        if (strcmp(req->params[i].name, name) == 0) {
            if (n < max)
                vals[n] = req->params[i].value;
            n++;
        }
    return n;
}

const char *http_req_header(const http_req *req, const char *name) {
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

/* ---- response helpers ---------------------------------------------- */

void http_resp_text(http_resp *resp, int status, const char *text) {
    resp->status = status;
    snprintf(resp->content_type, sizeof resp->content_type, "text/plain; charset=utf-8");
    buf_reset(&resp->body);
    buf_puts(&resp->body, text);
}

void http_resp_header(http_resp *resp, const char *name, const char *value) {
    buf_printf(&resp->headers, "%s: %s\r\n", name, value);
}

void http_resp_json_error(http_resp *resp, int status, const char *type, const char *msg) {
    resp->status = status;
    snprintf(resp->content_type, sizeof resp->content_type, "application/json");
    buf_reset(&resp->body);
    buf_puts(&resp->body, "{\"status\":\"error\",\"errorType\":");
    json_str(&resp->body, type);
    buf_puts(&resp->body, ",\"error\":");
    json_str(&resp->body, msg);
    buf_putc(&resp->body, '}');
}

void http_resp_json_begin(http_resp *resp) {
    resp->status = 200;
    snprintf(resp->content_type, sizeof resp->content_type, "application/json");
    buf_reset(&resp->body);
    buf_puts(&resp->body, "{\"status\":\"success\",\"data\":");
}

void http_resp_json_end(http_resp *resp) {
    buf_putc(&resp->body, '}');
}

void http_resp_json_success(http_resp *resp, const char *data_json, size_t len) {
    http_resp_json_begin(resp);
    buf_append(&resp->body, data_json, len);
    http_resp_json_end(resp);
}
