/*
 * fuzz_remotewrite.c - arbitrary bytes through the remote write receiver
 * (remotewrite_handle in api/remotewrite.c).
 *
 * Input layout: byte 0 picks the mode, the rest is the payload.
 *   mode even  the payload is a WriteRequest in protobuf; the harness
 *              snappy-compresses it, so the fuzzer works on protobuf
 *   mode odd   the payload is the HTTP body as sent (snappy framing fuzzed)
 *   bit 1 set  the request says it is remote write 2.0
 *              (proto=io.prometheus.write.v2.Request): a V2Request
 *
 * The storage is a stub (defined here) that checks what the receiver hands
 * it: labels sorted with unique valid names, values non-empty valid UTF-8
 * without NUL, a __name__, and a series reference reused only after it was
 * handed out; a native histogram's spans cover exactly its counts, which
 * are finite or not but never read past.  Any answer but 204/400/413 traps, as does an error text that
 * is not one line, or an appender left open.
 */
#include <snappy-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "fuzz_body.h"
#include "storage/storage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct storage {
    int unused;
};

struct appender {
    uint64_t next_ref;
    size_t appended;
};

static size_t open_appenders;

appender *storage_appender(storage *s) {
    (void)s;
    appender *a = calloc(1, sizeof *a);
    if (a)
        open_appenders++;
    return a;
}

int appender_append(appender *a, uint64_t *ref, const label *ls, size_t n, int64_t t, double v,
                    kiln_err *err) {
    (void)t, (void)v, (void)err;
    if (*ref) {
        if (ls || *ref >= a->next_ref + 1)
            __builtin_trap();
    } else {
        int has_name = 0;
        if (!ls || n == 0 || n > LABELS_MAX_COUNT)
            __builtin_trap();
        for (size_t i = 0; i < n; i++) {
            size_t nl = strlen(ls[i].name), vl = strlen(ls[i].value);
            if (!label_name_valid(ls[i].name, nl) || vl == 0 || !utf8_valid(ls[i].value, vl))
                __builtin_trap();
            if (i && strcmp(ls[i - 1].name, ls[i].name) >= 0)
                __builtin_trap();
            if (!strcmp(ls[i].name, LABEL_NAME)) {
                if (!metric_name_valid(ls[i].value, vl))
                    __builtin_trap();
                has_name = 1;
            }
        }
        if (!has_name)
            __builtin_trap();
        *ref = ++a->next_ref;
    }
    a->appended++;
    return 0;
}

int appender_append_histogram(appender *a, uint64_t *ref, const label *ls, size_t n, int64_t t,
                              const histogram *h, kiln_err *err) {
    uint64_t pos = 0, neg = 0;
    for (uint32_t i = 0; i < h->npos_spans; i++)
        pos += h->pos_spans[i].length;
    for (uint32_t i = 0; i < h->nneg_spans; i++)
        neg += h->neg_spans[i].length;
    if (pos != h->npos || neg != h->nneg || (h->npos && !h->pos) || (h->nneg && !h->neg))
        __builtin_trap();
    volatile double sum = 0; /* every count is there to read (ASan checks) */
    for (uint32_t i = 0; i < h->npos; i++)
        sum += h->pos[i];
    for (uint32_t i = 0; i < h->nneg; i++)
        sum += h->neg[i];
    (void)sum;
    return appender_append(a, ref, ls, n, t, h->count, err);
}

int appender_commit(appender *a, kiln_err *err) {
    (void)err;
    if (a->appended == 0)
        __builtin_trap(); /* the receiver rolls back empty batches */
    open_appenders--;
    free(a);
    return 0;
}

/* No exemplar store: the receiver counts exemplars as dropped. */
exemplar_store *storage_exemplars(storage *s) {
    (void)s;
    return NULL;
}

int appender_append_exemplar(appender *a, uint64_t ref, const exemplar *e, kiln_err *err) {
    (void)a, (void)ref, (void)e, (void)err;
    __builtin_trap(); /* never staged with exemplar storage off */
}

void appender_trust_labels(appender *a) {
    (void)a;
}

void appender_rollback(appender *a) {
    open_appenders--;
    free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static remotewrite *rw;
    static storage st;
    if (!rw) {
        log_setup(LOG_ERROR, LOG_FORMAT_LOGFMT);
        remotewrite_opts o;
        remotewrite_opts_default(&o);
        o.max_decompressed_bytes = 4 << 20;
        if (remotewrite_new(&st, &o, &rw, NULL) != 0)
            return 0;
    }
    if (size == 0 || size > (4 << 20))
        return 0;
    size_t blen;
    char *body = fuzz_body(data, size, &blen);

    arena a;
    arena_init(&a, 0);
    http_req req;
    memset(&req, 0, sizeof req);
    req.method = "POST";
    req.path = "/api/v1/write";
    req.query = "";
    req.arena = &a;
    req.body = body;
    req.body_len = blen;
    http_header v2[] = {{"Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request"}};
    if (data[0] & 2) {
        req.headers = v2;
        req.nheaders = 1;
    }
    http_resp resp;
    memset(&resp, 0, sizeof resp);
    resp.status = 200;
    remotewrite_handle(rw, &req, &resp);
    if (resp.status != 204 && resp.status != 400 && resp.status != 413)
        __builtin_trap();
    if (resp.status != 204) {
        /* one line of text */
        if (!resp.body.data || resp.body.len < 2 || resp.body.data[resp.body.len - 1] != '\n' ||
            memchr(resp.body.data, '\n', resp.body.len - 1))
            __builtin_trap();
    }
    if (open_appenders)
        __builtin_trap();
    buf_free(&resp.body);
    buf_free(&resp.headers);
    arena_free(&a);
    free(body);
    return 0;
}
