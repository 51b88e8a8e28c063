/*
 * fetch.c - the HTTP fetch of a scrape: one curl easy handle per target,
 * driven by libcurl's multi-socket API on the manager's libuv loop.
 *
 * A target's timer (target.c) calls fetch_start: the easy handle joins the
 * multi handle -> curl asks for its sockets to be polled (on_curl_socket)
 * and for a timeout (on_curl_timer) -> libuv reports readiness (on_poll,
 * on_curl_timeout) and curl reads the body into t->body (on_body, bounded
 * by body_size_limit) -> the transfer ends (check_multi -> fetch_done),
 * which sets t->job_err for a failed fetch and queues the target's work.
 * The manager (scrape.c) calls fetch_init, fetch_close and fetch_free.
 *
 * Threading: the loop thread only.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scrape/internal.h"

#ifndef KILN_VERSION
#define KILN_VERSION "0.0.0"
#endif

static void fetch_done(target *t, CURLcode res);

typedef struct csock {
    uv_poll_t poll;
    curl_socket_t fd;
    scrape_manager *m;
    struct csock *prev, *next; /* m->socks */
} csock;

static void check_multi(scrape_manager *m) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *e = msg->easy_handle;
        CURLcode res = msg->data.result;
        target *t = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&t);
        curl_multi_remove_handle(m->multi, e);
        if (t)
            fetch_done(t, res);
    }
}

static void on_poll(uv_poll_t *h, int status, int events) {
    csock *c = h->data;
    int flags = status < 0 ? CURL_CSELECT_ERR : 0;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(c->m->multi, c->fd, flags, &running);
    check_multi(c->m);
}

static void csock_closed(uv_handle_t *h) {
    csock *c = h->data;
    scrape_manager *m = c->m;
    free(c);
    scrape_handle_gone(m);
}

static void csock_close(scrape_manager *m, csock *c) {
    DLIST_UNLINK(&m->socks, c);
    uv_poll_stop(&c->poll);
    uv_close((uv_handle_t *)&c->poll, csock_closed);
}

static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
    (void)e;
    scrape_manager *m = userp;
    csock *c = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (c) {
            csock_close(m, c);
            if (!m->multi_closed)
                curl_multi_assign(m->multi, s, NULL);
        }
        return 0;
    }
    if (!c) {
        if (!(c = calloc(1, sizeof *c)))
            return -1;
        c->fd = s;
        c->m = m;
        if (uv_poll_init_socket(m->loop, &c->poll, s) != 0) {
            free(c);
            return -1;
        }
        c->poll.data = c;
        DLIST_PUSH(&m->socks, c);
        m->handles++;
        curl_multi_assign(m->multi, s, c);
    }
    int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&c->poll, ev, on_poll);
    return 0;
}

static void on_curl_timeout(uv_timer_t *h) {
    scrape_manager *m = h->data;
    int running;
    curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi(m);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    scrape_manager *m = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&m->ctimer);
    else
        uv_timer_start(&m->ctimer, on_curl_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *data) {
    target *t = data;
    size_t n = size * nmemb;
    uint64_t limit = t->job_sc ? t->job_sc->body_size_limit : 0;
    if (limit && t->body.len + n > limit) {
        t->body_over = 1;
        return 0;
    }
    return buf_append(&t->body, p, n) == 0 ? n : 0;
}

/* See internal.h; the request then goes with an empty secret. */
int fetch_read_secret(const char *inline_value, const char *file, char **out) {
    *out = NULL;
    if (inline_value)
        return (*out = strdup(inline_value)) ? 0 : KILN_ENOMEM;
    if (!file)
        return 0;
    FILE *f = fopen(file, "r");
    if (!f)
        return 0;
    buf b = BUF_INIT;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_append(&b, tmp, n);
    fclose(f);
    buf_append(&b, "", 0); /* data non-NULL for an empty file */
    if (buf_error(&b) != 0) {
        buf_free(&b);
        return KILN_ENOMEM;
    }
    while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
        b.data[--b.len] = 0;
    *out = buf_steal(&b);
    return 0;
}

/* Adds the header written in h to the target's list and empties h; 0 or
 * KILN_ENOMEM. */
KILN_MUST_CHECK static int add_header(target *t, buf *h) {
    if (buf_error(h) != 0)
        return KILN_ENOMEM;
    struct curl_slist *l = curl_slist_append(t->hdrs, h->data ? h->data : "");
    if (!l)
        return KILN_ENOMEM;
    t->hdrs = l;
    buf_reset(h);
    return 0;
}

/* Sets the easy handle up for the target's current config; 0 or
 * KILN_ENOMEM. */
KILN_MUST_CHECK static int easy_setup(target *t) {
    const scrape_config *sc = t->sc;
    if (!t->easy && !(t->easy = curl_easy_init()))
        return KILN_ENOMEM;
    CURL *e = t->easy;
    curl_easy_reset(e);
    curl_slist_free_all(t->hdrs);
    curl_slist_free_all(t->connect_to);
    t->hdrs = t->connect_to = NULL;
    buf h = BUF_INIT;
    protocols_accept(sc, &h);
    int rc = add_header(t, &h);
    if (rc == 0 && !sc->enable_compression) {
        buf_puts(&h, "Accept-Encoding: identity");
        rc = add_header(t, &h);
    }
    if (rc == 0) {
        buf_printf(&h, "X-Prometheus-Scrape-Timeout-Seconds: %g", (double)t->timeout_ms / 1000.0);
        rc = add_header(t, &h);
    }
    if (rc == 0 && sc->http.has_authorization) {
        char *cred = NULL;
        rc = fetch_read_secret(sc->http.credentials, sc->http.credentials_file, &cred);
        if (rc == 0) {
            buf_printf(&h, "Authorization: %s %s", sc->http.auth_type ? sc->http.auth_type : "Bearer",
                       cred ? cred : "");
            rc = add_header(t, &h);
        }
        free(cred);
    }
    buf_free(&h);
    if (rc != 0)
        return rc;
    curl_easy_setopt(e, CURLOPT_URL, t->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->hdrs);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "kiln/" KILN_VERSION);
    if (sc->enable_compression)
        curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, sc->http.follow_redirects ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     sc->http.enable_http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
    if (sc->http.has_basic_auth) {
        char *pw = NULL;
        if (fetch_read_secret(sc->http.password, sc->http.password_file, &pw) != 0)
            return KILN_ENOMEM;
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, sc->http.username ? sc->http.username : "");
        curl_easy_setopt(e, CURLOPT_PASSWORD, pw ? pw : "");
        free(pw);
    }
    const config_tls *tls = &sc->http.tls;
    if (tls->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, tls->ca_file);
    if (tls->cert_file)
        curl_easy_setopt(e, CURLOPT_SSLCERT, tls->cert_file);
    if (tls->key_file)
        curl_easy_setopt(e, CURLOPT_SSLKEY, tls->key_file);
    if (tls->insecure_skip_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    int trc = curltls_apply(e, t->url, tls->server_name, config_tls_version(tls->min_version), &t->hdrs,
                            &t->connect_to);
    if (trc != 0)
        return trc;
    if (sc->http.proxy_url)
        curl_easy_setopt(e, CURLOPT_PROXY, sc->http.proxy_url);
    t->configured = 1;
    return 0;
}

void fetch_start(target *t) {
    scrape_manager *m = t->m;
    t->state = T_FETCHING;
    t->start_ms = time_now_ms();
    t->start_mono = time_mono_sec();
    t->job_sc = t->sc;
    t->job_cfg = config_retain(t->p->cfg);
    t->body_over = 0;
    t->job_err[0] = 0;
    buf_reset(&t->body);
    if (!t->configured && easy_setup(t) != 0) {
        snprintf(t->job_err, sizeof t->job_err, "out of memory setting up the request");
        fetch_done(t, CURLE_OK);
        return;
    }
    if (curl_multi_add_handle(m->multi, t->easy) != CURLM_OK) {
        snprintf(t->job_err, sizeof t->job_err, "cannot start the request");
        fetch_done(t, CURLE_OK);
    }
}

static void fetch_done(target *t, CURLcode res) {
    t->job_duration = time_mono_sec() - t->start_mono;
    t->ctype[0] = 0;
    if (!t->job_err[0]) {
        long code = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
        if (t->body_over)
            snprintf(t->job_err, sizeof t->job_err, "body size limit exceeded (limit: %llu bytes)",
                     (unsigned long long)t->job_sc->body_size_limit);
        else if (res == CURLE_OPERATION_TIMEDOUT)
            snprintf(t->job_err, sizeof t->job_err, "Get \"%s\": context deadline exceeded", t->url);
        else if (res != CURLE_OK)
            snprintf(t->job_err, sizeof t->job_err, "Get \"%s\": %s", t->url, curl_easy_strerror(res));
        else if (code != 200)
            snprintf(t->job_err, sizeof t->job_err, "server returned HTTP status %ld %s", code,
                     http_status_text((int)code, ""));
        char *ct = NULL;
        if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
            snprintf(t->ctype, sizeof t->ctype, "%s", ct);
    }
    target_queue_job(t, JOB_SCRAPE);
}

void fetch_cancel(target *t) {
    curl_multi_remove_handle(t->m->multi, t->easy);
}

void fetch_target_free(target *t) {
    if (t->easy)
        curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->hdrs);
    curl_slist_free_all(t->connect_to);
    t->easy = NULL;
    t->hdrs = t->connect_to = NULL;
}

int fetch_init(scrape_manager *m, kiln_err *err) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return kiln_err_set(err, KILN_EIO, "scrape: libcurl initialisation failed");
    if (!(m->multi = curl_multi_init())) {
        curl_global_cleanup();
        return kiln_err_set(err, KILN_ENOMEM, "scrape: out of memory");
    }
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    uv_timer_init(m->loop, &m->ctimer);
    m->ctimer.data = m;
    m->handles++;
    return 0;
}

void fetch_close(scrape_manager *m) {
    m->multi_closed = 1;
    curl_multi_cleanup(m->multi);
    m->multi = NULL;
    while (m->socks) /* sockets curl did not say goodbye to */
        csock_close(m, m->socks);
    uv_timer_stop(&m->ctimer);
    uv_close((uv_handle_t *)&m->ctimer, scrape_handle_closed);
}

void fetch_free(scrape_manager *m) {
    if (m->multi)
        curl_multi_cleanup(m->multi);
    m->multi = NULL;
    curl_global_cleanup();
}
