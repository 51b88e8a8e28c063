/*
 * fuzz_otlp.c - arbitrary bytes through the OTLP receiver (otlp_handle in
 * api/otlp.c): the protobuf and JSON decoders (api/otlp_json.c), the
 * translation and the answers.
 *
 * Input layout: byte 0 picks the mode, the rest is the payload.
 *   mode & 1   the payload is gzip-compressed by the harness first (so the
 *              fuzzer works on protobuf) and sent with Content-Encoding: gzip
 *   mode & 2   the payload is sent as is with Content-Encoding: gzip
 *              (corrupt gzip fuzzed)
 *   mode & 4   translation strategy NoUTF8EscapingWithSuffixes, & 8
 *              NoTranslation (else UnderscoreEscapingWithSuffixes)
 *   mode & 16  Content-Type: application/json (the payload is OTLP JSON)
 *
 * The storage is a stub (defined here) that checks what the receiver hands
 * it: labels sorted with unique names, values non-empty without NUL, one
 * __name__, no more than LABELS_MAX_COUNT + 1.  Any answer but 200/400/413
 * traps, as does an appender left open.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "api/api.h"
#include "storage/storage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct storage {
    int unused;
};

/* One batch at a time: the receiver's appender is the only one. */
struct appender {
    size_t appended;
    int open;
};
static appender the_appender;

appender *storage_appender(storage *s) {
    (void)s;
    if (the_appender.open)
        __builtin_trap();
    the_appender = (appender){.open = 1};
    return &the_appender;
}

/* Native histograms: recorded as a float sample of their count (this fake
 * checks the labels the same way). */
int appender_append_histogram(appender *a, uint64_t *ref, const label *ls, size_t n, int64_t t,
                              const histogram *h, kiln_err *err) {
    return appender_append(a, ref, ls, n, t, h->count, err);
}

/* The receiver checks the labels itself: this fake checks them all the same. */
void appender_trust_labels(appender *a) {
    (void)a;
}

int appender_append(appender *a, uint64_t *ref, const label *ls, size_t n, int64_t t, double v,
                    kiln_err *err) {
    (void)t, (void)v, (void)err;
    int names = 0;
    if (*ref || !ls || n == 0 || n > LABELS_MAX_COUNT + 1)
        __builtin_trap();
    for (size_t i = 0; i < n; i++) {
        if (!ls[i].name || !ls[i].value || !ls[i].value[0])
            __builtin_trap();
        if (i && strcmp(ls[i - 1].name, ls[i].name) >= 0)
            __builtin_trap();
        names += !strcmp(ls[i].name, LABEL_NAME);
    }
    if (names != 1)
        __builtin_trap();
    *ref = 1;
    a->appended++;
    return 0;
}

int appender_commit(appender *a, kiln_err *err) {
    (void)err;
    if (a->appended == 0)
        __builtin_trap(); /* the receiver rolls back empty batches */
    a->open = 0;
    return 0;
}

void appender_rollback(appender *a) {
    a->open = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static otlp *rcv[3];
    static storage st;
    static const char *const promote[] = {"host.name", "1bad key"};
    if (!rcv[0]) {
        log_setup(LOG_ERROR, LOG_FORMAT_LOGFMT);
        for (int i = 0; i < 3; i++) {
            otlp_opts o = {.enabled = 1,
                           .max_decompressed_bytes = 4 << 20,
                           .strategy = (otlp_strategy)i,
                           .promote = promote,
                           .npromote = 2,
                           .keep_identifying = i == 1};
            if (otlp_new(&st, &o, &rcv[i], NULL) != 0)
                return 0;
        }
    }
    if (size == 0 || size > (1 << 20))
        return 0;
    int mode = data[0];
    char *body;
    size_t blen;
    if (mode & 1) {
        uLongf cap = compressBound(size) + 32;
        body = malloc(cap + 1);
        z_stream z;
        memset(&z, 0, sizeof z);
        if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            __builtin_trap();
        z.next_in = (Bytef *)data + 1;
        z.avail_in = (uInt)(size - 1);
        z.next_out = (Bytef *)body;
        z.avail_out = (uInt)cap;
        if (deflate(&z, Z_FINISH) != Z_STREAM_END)
            __builtin_trap();
        blen = z.total_out;
        deflateEnd(&z);
    } else {
        blen = size - 1;
        body = malloc(blen + 1);
        memcpy(body, data + 1, blen);
    }
    body[blen] = 0;

    arena a;
    arena_init(&a, 0);
    http_header hs[2] = {{"Content-Type", (mode & 16) ? "application/json" : "application/x-protobuf"},
                         {"Content-Encoding", "gzip"}};
    http_req req;
    memset(&req, 0, sizeof req);
    req.method = "POST";
    req.path = "/api/v1/otlp/v1/metrics";
    req.query = "";
    req.headers = hs;
    req.nheaders = (mode & 3) ? 2 : 1;
    req.arena = &a;
    req.body = body;
    req.body_len = blen;
    http_resp resp;
    memset(&resp, 0, sizeof resp);
    resp.status = 200;
    otlp_handle(rcv[(mode & 8) ? 2 : (mode & 4) ? 1 : 0], &req, &resp);
    if (resp.status != 200 && resp.status != 400 && resp.status != 413)
        __builtin_trap();
    if (the_appender.open)
        __builtin_trap();
    buf_free(&resp.body);
    buf_free(&resp.headers);
    arena_free(&a);
    free(body);
    return 0;
}
