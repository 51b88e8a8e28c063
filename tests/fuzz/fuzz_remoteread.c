/*
 * fuzz_remoteread.c - arbitrary bytes through POST /api/v1/read
 * (api_v1_read_handle in api/remoteread.c) over a real storage holding a
 * few series (floats, and integer and float native histograms), opened once
 * in a temporary directory.
 *
 * Input layout: byte 0 picks the mode, the rest is the payload.
 *   mode even  the payload is a ReadRequest in protobuf; the harness
 *              snappy-compresses it, so the fuzzer works on protobuf
 *   mode odd   the payload is the HTTP body as sent
 *
 * Any answer but 200 or 400 traps, as does a 400 whose text is not one line.
 */
#include <snappy-c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "fuzz_body.h"
#include "storage/storage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/kiln-fuzz-remoteread-XXXXXX";
static storage *st;
static api_v1 *api;

/* At exit: the storage closed and its directory removed (LeakSanitizer
 * checks after this). */
static void teardown(void) {
    kiln_err err = {0};
    api_v1_free(api);
    if (storage_close(st, &err) != 0)
        fprintf(stderr, "close: %s\n", err.msg);
    if (fileio_rm_rf(dir, &err) != 0)
        fprintf(stderr, "%s\n", err.msg);
}

static api_v1 *setup(void) {
    log_setup(LOG_ERROR, LOG_FORMAT_LOGFMT);
    if (!mkdtemp(dir))
        return NULL;
    storage_opts o = storage_opts_default();
    o.dir = dir;
    if (storage_open(&o, &st, NULL) != 0 || api_v1_new(NULL, &api) != 0)
        return NULL;
    atexit(teardown);
    appender *ap = storage_appender(st);
    for (int i = 0; ap && i < 20; i++) {
        char inst[16];
        snprintf(inst, sizeof inst, "%d", i % 4);
        label ls[3] = {{"__name__", i % 2 ? "up" : "x"}, {"i", inst}, {"job", i % 3 ? "a" : "b"}};
        uint64_t ref = 0;
        for (int k = 0; k < 300; k++)
            if (appender_append(ap, &ref, ls, 3, 1000 * k, k * 0.5, NULL) != 0)
                break;
    }
    /* native histograms too (SAMPLES answers carry them): one integer and one float series */
    hist_span sp[2] = {{-1, 2}, {3, 1}}, nsp[1] = {{-2, 1}};
    for (int i = 0; ap && i < 2; i++) {
        label ls[3] = {{"__name__", "h"}, {"i", i ? "float" : "int"}, {"job", "a"}};
        uint64_t ref = 0;
        for (int k = 0; k < 50; k++) {
            double c[3] = {k, 2.0 * k, 1}, neg[1] = {3};
            histogram h = {0};
            h.schema = i ? -1 : 3;
            h.is_int = (uint8_t)!i;
            h.zero_threshold = 0.001;
            h.zero_count = 1;
            h.sum = 0.25 * k;
            h.pos_spans = sp, h.npos_spans = 2, h.pos = c, h.npos = 3;
            if (!i) /* the float one has no negative buckets */
                h.neg_spans = nsp, h.nneg_spans = 1, h.neg = neg, h.nneg = 1;
            h.count = 3.0 * k + 2 + (i ? 0 : 3);
            if (appender_append_histogram(ap, &ref, ls, 3, 1000 * k, &h, NULL) != 0)
                break;
        }
    }
    if (!ap || appender_commit(ap, NULL) != 0)
        return NULL;
    api_v1_set_storage(api, st);
    return api;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static api_v1 *a;
    if (!a && !(a = setup()))
        __builtin_trap();
    if (size == 0 || size > (1 << 20))
        return 0;
    size_t blen;
    char *body = fuzz_body(data, size, &blen);
    arena ar;
    arena_init(&ar, 0);
    http_req req;
    memset(&req, 0, sizeof req);
    req.method = "POST";
    req.path = "/api/v1/read";
    req.query = "";
    req.arena = &ar;
    req.body = body;
    req.body_len = blen;
    http_resp resp;
    memset(&resp, 0, sizeof resp);
    resp.status = 200;
    api_v1_read_handle(a, &req, &resp);
    if (resp.status != 200 && resp.status != 400)
        __builtin_trap();
    if (resp.status == 400 &&
        (!resp.body.data || resp.body.len < 2 || resp.body.data[resp.body.len - 1] != '\n' ||
         memchr(resp.body.data, '\n', resp.body.len - 1)))
        __builtin_trap();
    buf_free(&resp.body);
    buf_free(&resp.headers);
    arena_free(&ar);
    free(body);
    return 0;
}
