/*
 * read.c - the remote read client (`remote_read` in prometheus.yml; see
 * remote.h): a storage_source whose select POSTs a snappy-compressed
 * ReadRequest to each remote_read entry that applies and decodes the
 * SAMPLES answer, as Prometheus' remote read querier does:
 *
 *   - read_recent false: the entry is asked only when the range starts
 *     before the local data (storage_source_query.local_start), and only up
 *     to there (Prometheus' PreferLocalStorageFilter);
 *   - required_matchers: asked only when the selector has each as an
 *     equality matcher;
 *   - filter_external_labels (default true): each external label the
 *     selector does not name becomes an equality matcher, and is removed
 *     from the series returned;
 *   - an error (transport, timeout, a non-2xx status, an undecodable body)
 *     is a warning of the query: "remote server URL returned HTTP status
 *     500 Internal Server Error: <body>" or "error sending request: ...".
 *
 * Threading: selects run on the query threads, each with its own libcurl
 * easy handle (blocking, bounded by remote_timeout); the configuration and
 * the credentials read from it are a reference-counted state swapped under
 * the mutex by remote_reader_apply.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "remote/remote_int.h"

/* The largest answer taken, compressed or not (Prometheus has no bound but
 * the sample limit of the server). */
#define RR_MAX_BODY ((size_t)1 << 30)

typedef struct rr_state {
    atomic_int refs;
    config *cfg;
    rhttp_creds *creds; /* one per remote_read entry */
} rr_state;

struct remote_reader {
    pthread_mutex_t mu;
    rr_state *cur;
};

static void state_release(rr_state *st) {
    if (!st || atomic_fetch_sub(&st->refs, 1) != 1)
        return;
    for (size_t i = 0; st->creds && i < st->cfg->nremote_read; i++)
        rhttp_creds_free(&st->creds[i]);
    free(st->creds);
    config_free(st->cfg);
    free(st);
}

static rr_state *state_get(remote_reader *r) {
    pthread_mutex_lock(&r->mu);
    rr_state *st = r->cur;
    if (st)
        atomic_fetch_add(&st->refs, 1);
    pthread_mutex_unlock(&r->mu);
    return st;
}

int remote_reader_new(remote_reader **out) {
    remote_reader *r = calloc(1, sizeof *r);
    if (!r)
        return KILN_ENOMEM;
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return 0;
}

int remote_reader_apply(remote_reader *r, config *c) {
    rr_state *st = calloc(1, sizeof *st);
    if (!st)
        return KILN_ENOMEM;
    st->creds = calloc(c->nremote_read + 1, sizeof *st->creds);
    if (!st->creds) {
        free(st);
        return KILN_ENOMEM;
    }
    atomic_init(&st->refs, 1);
    st->cfg = config_retain(c);
    for (size_t i = 0; i < c->nremote_read; i++)
        rhttp_creds_load(&st->creds[i], &c->remote_read[i].http, "remote read", c->remote_read[i].url);
    pthread_mutex_lock(&r->mu);
    rr_state *old = r->cur;
    r->cur = st;
    pthread_mutex_unlock(&r->mu);
    state_release(old);
    return 0;
}

void remote_reader_free(remote_reader *r) {
    if (!r)
        return;
    state_release(r->cur);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Whether the selector has every required matcher as an equality matcher. */
static int required_ok(const config_remote_read *c, const matcher *ms, size_t nms) {
    for (size_t i = 0; i < c->nrequired_matchers; i++) {
        int found = 0;
        for (size_t j = 0; j < nms && !found; j++)
            found = ms[j].type == MATCH_EQ && strcmp(ms[j].name, c->required_matchers[i].name) == 0 &&
                    strcmp(ms[j].value, c->required_matchers[i].value) == 0;
        if (!found)
            return 0;
    }
    return 1;
}

static size_t take_body(char *p, size_t size, size_t nmemb, void *data) {
    buf *b = data;
    size_t n = size * nmemb;
    if (b->len + n > RR_MAX_BODY || buf_append(b, p, n) != 0)
        return 0; /* libcurl stops: CURLE_WRITE_ERROR */
    return n;
}

/* The body of an error answer for the message: trimmed, at most 256 bytes. */
static void error_body(const buf *b, char *out, size_t cap) {
    const char *s = b->data ? b->data : "";
    size_t n = b->len;
    while (n && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '\t'))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = 0;
}

/* One entry's ReadRequest for ms over [mint, maxt]: its series appended to
 * *v (memory from a), dropping the labels in drop.  0, or < 0 with err. */
KILN_MUST_CHECK static int read_one(const config_remote_read *c, const rhttp_creds *cr, const matcher *ms,
                                    size_t nms, int64_t mint, int64_t maxt, const char *const *drop,
                                    size_t ndrop, arena *a, series **v, size_t *nv, size_t *cap,
                                    kiln_err *err) {
    buf req = BUF_INIT, scratch = BUF_INIT, resp = BUF_INIT;
    struct curl_slist *headers = NULL, *connect_to = NULL;
    char *raw = NULL;
    int rc;
    rr_encode_request(&req, ms, nms, mint, maxt);
    if ((rc = wire_snappy(&req, &scratch)) < 0) {
        kiln_err_set(err, rc, "out of memory");
        goto done;
    }
    CURL *e = curl_easy_init();
    if (!e) {
        rc = kiln_err_set(err, KILN_ENOMEM, "out of memory");
        goto done;
    }
    static const char *const fixed[] = {"Content-Encoding: snappy", "Content-Type: application/x-protobuf",
                                        "X-Prometheus-Remote-Read-Version: 0.1.0", "Accept-Encoding: snappy",
                                        "Expect:"};
    rhttp_endpoint ep = {c->url, &c->http, c->headers, c->nheaders, c->remote_timeout_ms};
    if ((rc = rhttp_setup(e, &ep, cr, fixed, sizeof fixed / sizeof fixed[0], &headers, &connect_to)) < 0) {
        kiln_err_set(err, rc, "remote read %s: cannot set up the request", c->url);
        curl_easy_cleanup(e);
        goto done;
    }
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req.data);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req.len);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, take_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &resp);
    CURLcode cc = curl_easy_perform(e);
    long status = 0;
    char *ctype = NULL;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ctype);
    int streamed = ctype && strncmp(ctype, "application/x-streamed-protobuf", 31) == 0;
    curl_easy_cleanup(e);
    if (cc != CURLE_OK) {
        rc = kiln_err_set(err, KILN_EIO, "error sending request: Post \"%s\": %s", c->url,
                          cc == CURLE_WRITE_ERROR ? "response too large" : curl_easy_strerror(cc));
        goto done;
    }
    if (status / 100 != 2) {
        char body[257];
        error_body(&resp, body, sizeof body);
        rc = kiln_err_set(err, KILN_EIO, "remote server %s returned HTTP status %ld %s: %s", c->url, status,
                          http_status_text((int)status, ""), body);
        goto done;
    }
    if (streamed) { /* asked first: frames of ChunkedReadResponse, not compressed */
        rc = buf_error(&resp) ? kiln_err_set(err, KILN_ENOMEM, "out of memory")
                              : rr_decode_chunked((const uint8_t *)(resp.data ? resp.data : ""), resp.len,
                                                  drop, ndrop, a, v, nv, cap, err);
        goto done;
    }
    size_t ulen;
    if (buf_error(&resp) ||
        snappy_uncompressed_length(resp.data ? resp.data : "", resp.len, &ulen) != SNAPPY_OK ||
        ulen > RR_MAX_BODY) {
        rc = kiln_err_set(err, KILN_EINVAL, "remote read %s: the answer is not a snappy block", c->url);
        goto done;
    }
    if (!(raw = malloc(ulen + 1))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "out of memory");
        goto done;
    }
    if (snappy_uncompress(resp.data ? resp.data : "", resp.len, raw, &ulen) != SNAPPY_OK) {
        rc = kiln_err_set(err, KILN_EINVAL, "remote read %s: the answer is not a snappy block", c->url);
        goto done;
    }
    rc = rr_decode_response((const uint8_t *)raw, ulen, drop, ndrop, a, v, nv, cap, err);
done:
    free(raw);
    curl_slist_free_all(headers);
    curl_slist_free_all(connect_to);
    buf_free(&req);
    buf_free(&scratch);
    buf_free(&resp);
    return rc;
}

/* storage_source.select: every entry that applies, in order. */
static int rr_select(void *data, const storage_source_query *q, series_set *out, kiln_err *warn) {
    rr_state *st = state_get(data);
    if (!st)
        return 0;
    const config *cfg = st->cfg;
    series *v = NULL;
    size_t nv = 0, cap = 0;
    int failed = 0;
    matcher *ms = calloc(q->nms + cfg->global.nexternal_labels + 1, sizeof *ms);
    const char **drop = calloc(cfg->global.nexternal_labels + 1, sizeof *drop);
    if (!ms || !drop) {
        kiln_err_set(warn, KILN_ENOMEM, "remote read: out of memory");
        failed = 1;
    }
    for (size_t i = 0; !failed && i < cfg->nremote_read; i++) {
        const config_remote_read *c = &cfg->remote_read[i];
        int64_t mint = q->mint, maxt = q->maxt;
        if (!c->read_recent) {
            if (mint > q->local_start)
                continue;
            if (maxt > q->local_start)
                maxt = q->local_start;
        }
        if (!required_ok(c, q->ms, q->nms))
            continue;
        /* the selector's matchers (borrowed) and the external labels it does
         * not name, whose equality matchers need no regex */
        size_t nms = q->nms, ndrop = 0;
        memcpy(ms, q->ms, q->nms * sizeof *ms);
        for (size_t k = 0; c->filter_external_labels && k < cfg->global.nexternal_labels; k++) {
            const config_label *el = &cfg->global.external_labels[k];
            int named = 0;
            for (size_t j = 0; j < q->nms && !named; j++)
                named = strcmp(q->ms[j].name, el->name) == 0;
            if (named)
                continue;
            ms[nms++] = (matcher){MATCH_EQ, el->name, el->value, NULL};
            drop[ndrop++] = el->name;
        }
        kiln_err e;
        memset(&e, 0, sizeof e);
        size_t before = nv;
        if (read_one(c, &st->creds[i], ms, nms, mint, maxt, drop, ndrop, &out->mem, &v, &nv, &cap, &e) < 0) {
            nv = before; /* nothing of a failed answer */
            if (!warn->msg[0])
                kiln_err_set(warn, e.code, "%s", e.msg);
            if (e.code == KILN_ENOMEM)
                break;
        }
    }
    free(ms);
    free(drop);
    if (nv) {
        out->v = arena_alloc_nz(&out->mem, nv * sizeof *v);
        if (out->v) {
            memcpy(out->v, v, nv * sizeof *v);
            out->n = nv;
        } else if (!warn->msg[0]) {
            kiln_err_set(warn, KILN_ENOMEM, "remote read: out of memory");
        }
    }
    free(v);
    state_release(st);
    return warn->msg[0] ? -1 : 0;
}

/* Whether the configuration has remote_read entries (storage_source.active). */
static int rr_active(void *data) {
    rr_state *st = state_get(data);
    int n = st && st->cfg->nremote_read > 0;
    state_release(st);
    return n;
}

storage_source remote_reader_source(remote_reader *r) {
    return (storage_source){rr_select, r, rr_active};
}
