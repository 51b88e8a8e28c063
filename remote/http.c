/*
 * http.c - the HTTP client settings a remote endpoint's libcurl handle gets,
 * shared by the remote-write queues (queue.c) and the remote-read client
 * (read.c): the credentials (basic_auth, authorization, read from their
 * files when the endpoint starts, as a reload rereads them), `headers`,
 * tls_config, proxy_url, follow_redirects, enable_http2 and remote_timeout.
 *
 * Called by queue.c on the sender thread and by read.c on query threads;
 * no state of its own (an rhttp_creds belongs to its caller).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote/remote_int.h"

#define RHTTP_SECRET_MAX 65536

/* A secret from a file, surrounding white space removed (Go's TrimSpace of
 * os.ReadFile), appended to out; 0 or -1. */
static int secret_from_file(const char *path, buf *out) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char *text = calloc(1, RHTTP_SECRET_MAX + 1);
    size_t n = text ? fread(text, 1, RHTTP_SECRET_MAX, f) : 0;
    fclose(f);
    if (!text)
        return -1;
    char *s = text, *e = text + n;
    while (s < e && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        e--;
    buf_append(out, s, (size_t)(e - s));
    free(text);
    return 0;
}

void rhttp_creds_load(rhttp_creds *c, const config_http *h, const char *what, const char *url) {
    if (h->has_basic_auth) {
        buf_puts(&c->user, h->username ? h->username : "");
        if (h->password_file ? secret_from_file(h->password_file, &c->pass) != 0
                             : buf_puts(&c->pass, h->password ? h->password : "") != 0)
            LOG_ERROR("cannot read the password", "component=\"%s\" url=%s", what, url);
        buf_putc(&c->user, 0);
        buf_putc(&c->pass, 0);
    }
    if (h->has_authorization) {
        buf_printf(&c->auth, "Authorization: %s ", h->auth_type ? h->auth_type : "Bearer");
        if (h->credentials_file ? secret_from_file(h->credentials_file, &c->auth) != 0
                                : buf_puts(&c->auth, h->credentials ? h->credentials : "") != 0)
            LOG_ERROR("cannot read the credentials", "component=\"%s\" url=%s", what, url);
    }
}

void rhttp_creds_free(rhttp_creds *c) {
    buf_free(&c->user);
    buf_free(&c->pass);
    buf_free(&c->auth);
}

int rhttp_setup(void *easy, const rhttp_endpoint *ep, const rhttp_creds *cr, const char *const *fixed,
                size_t nfixed, struct curl_slist **headers, struct curl_slist **connect_to) {
    CURL *e = easy;
    const config_http *h = ep->http;
    const config_tls *tls = &h->tls;
    for (size_t i = 0; i < nfixed; i++)
        if (!(*headers = curl_slist_append(*headers, fixed[i])))
            return KILN_ENOMEM;
    if (cr->auth.len && !buf_error(&cr->auth) && !(*headers = curl_slist_append(*headers, cr->auth.data)))
        return KILN_ENOMEM;
    for (size_t i = 0; i < ep->nheaders; i++) {
        buf hb = BUF_INIT;
        buf_printf(&hb, "%s: %s", ep->headers[i].name, ep->headers[i].value);
        struct curl_slist *l = buf_error(&hb) ? NULL : curl_slist_append(*headers, hb.data);
        buf_free(&hb);
        if (!l)
            return KILN_ENOMEM;
        *headers = l;
    }
    curltls_files(e, tls->ca_file, tls->cert_file, tls->key_file, tls->insecure_skip_verify);
    if (h->has_basic_auth) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, cr->user.data ? cr->user.data : "");
        curl_easy_setopt(e, CURLOPT_PASSWORD, cr->pass.data ? cr->pass.data : "");
    }
    if (h->proxy_url)
        curl_easy_setopt(e, CURLOPT_PROXY, h->proxy_url);
    const struct {
        CURLoption opt;
        long v;
    } longs[] = {
        {CURLOPT_FOLLOWLOCATION, h->follow_redirects ? 1L : 0L},
        {CURLOPT_TIMEOUT_MS, (long)(ep->timeout_ms > 0 ? ep->timeout_ms : 30000)},
        {CURLOPT_NOSIGNAL, 1L},
        {CURLOPT_HTTP_VERSION, h->enable_http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1}};
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++)
        curl_easy_setopt(e, longs[i].opt, longs[i].v);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "kiln/" KILN_VERSION);
    curl_easy_setopt(e, CURLOPT_URL, ep->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, *headers);
    /* last: it may replace the URL and add to the headers */
    if (curltls_apply(e, ep->url, tls->server_name, config_tls_version(tls->min_version), headers,
                      connect_to) != 0)
        return KILN_EINVAL;
    return 0;
}
