/*
 * remoteread.c - POST /api/v1/read: Prometheus' remote read API, for
 * Thanos, another Prometheus or kiln's remote_read to query kiln's data.
 *
 * The request is a snappy block holding a protobuf ReadRequest
 * (api/remote.proto): queries, each a time range and label matchers.  The
 * answer is, as the client accepts (the first type of its
 * accepted_response_types kiln knows; none given means SAMPLES):
 *
 *   SAMPLES              one snappy-compressed ReadResponse, a QueryResult
 *                        of raw samples a query (native histograms as
 *                        TimeSeries.histograms, as Prometheus' Histogram
 *                        messages: deltas for an integer one, counts for a
 *                        float one; they count against the sample limit);
 *                        Content-Type: application/x-protobuf
 *   STREAMED_XOR_CHUNKS  a stream of frames, each uvarint(size) +
 *                        CRC32C(message) big-endian + a ChunkedReadResponse
 *                        holding one series (labels and chunks of up to 120
 *                        samples: XOR chunks for floats, HISTOGRAM or
 *                        FLOAT_HISTOGRAM chunks for native histograms, in
 *                        time order) and the index of its query; a series
 *                        whose chunks pass --storage.remote.read-max-bytes-
 *                        in-frame continues in the next frame.  Content-Type:
 *                        application/x-streamed-protobuf;
 *                        proto=prometheus.ChunkedReadResponse
 *
 * As in Prometheus, the external labels are added to every series returned
 * (where the series lacks them), and an equality matcher on an external
 * label with its value is rewritten to match the series that lack the label
 * (the stored series do not carry it).  Bounds: the SAMPLES answer holds at
 * most --storage.remote.read-sample-limit samples (beyond: 400 "exceeded
 * sample limit (N)"); at most --storage.remote.read-concurrent-limit reads
 * run at once (the others wait); the request decompresses to at most
 * REMOTEREAD_MAX_REQUEST bytes.  Errors are 400 (bad request) or 500, as
 * plain text.
 *
 * Called by api/http.c on a worker thread (registered by api_v1_register).
 * The responses are encoded here by hand; the field numbers are
 * remote.proto's.
 */
#include <pthread.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>

#include "api/remote.pb-c.h"
#include "api/v1.h"

#define REMOTEREAD_MAX_REQUEST ((size_t)4 << 20)

/* ---- protobuf writing ---------------------------------------------------- */

static void pb_bytes(buf *b, unsigned field, const void *p, size_t n) {
    buf_put_uvarint(b, (uint64_t)field << 3 | 2);
    buf_put_uvarint(b, n);
    buf_append(b, p, n);
}

static void pb_str(buf *b, unsigned field, const char *s) {
    size_t n = strlen(s); /* kiln's C0 80 as the NUL byte it stands for (util/strnul.c) */
    buf_put_uvarint(b, (uint64_t)field << 3 | 2);
    buf_put_uvarint(b, nul_out_len(s, n));
    buf_append_nul_out(b, s, n);
}

static void pb_int(buf *b, unsigned field, int64_t v) {
    buf_put_uvarint(b, (uint64_t)field << 3);
    buf_put_uvarint(b, (uint64_t)v);
}

static void pb_double(buf *b, unsigned field, double v) {
    buf_put_uvarint(b, (uint64_t)field << 3 | 1);
    uint64_t bits = double_to_bits(v);
    for (int j = 0; j < 8; j++)
        buf_putc(b, (char)(bits >> (8 * j)));
}

static uint64_t zigzag64(int64_t v) {
    return (uint64_t)v << 1 ^ (uint64_t)(v >> 63);
}

/* One side of a Histogram: spans (field f), then packed deltas (f+1) for an
 * integer histogram or packed counts (f+2) for a float one. */
static void pb_hist_side(buf *b, buf *tmp, unsigned f, const hist_span *sp, uint32_t nsp, const double *c,
                         uint32_t n, int is_int) {
    for (uint32_t i = 0; i < nsp; i++) {
        buf_reset(tmp);
        buf_put_uvarint(tmp, 1 << 3);
        buf_put_uvarint(tmp, zigzag64(sp[i].offset));
        buf_put_uvarint(tmp, 2 << 3);
        buf_put_uvarint(tmp, sp[i].length);
        pb_bytes(b, f, tmp->data, tmp->len);
    }
    if (!n)
        return;
    buf_reset(tmp);
    int64_t prev = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (is_int) {
            int64_t v = (int64_t)c[i];
            buf_put_uvarint(tmp, zigzag64((int64_t)((uint64_t)v - (uint64_t)prev)));
            prev = v;
        } else {
            uint64_t bits = double_to_bits(c[i]);
            for (int j = 0; j < 8; j++)
                buf_putc(tmp, (char)(bits >> (8 * j)));
        }
    }
    pb_bytes(b, is_int ? f + 1 : f + 2, tmp->data, tmp->len);
}

/* Histogram (remote.proto's field numbers) of one sample into b; tmp is scratch. */
static void pb_histogram(buf *b, buf *tmp, const hsample *hs) {
    const histogram *h = hs->h;
    if (h->is_int) {
        buf_put_uvarint(b, 1 << 3);
        buf_put_uvarint(b, (uint64_t)h->count);
    } else {
        pb_double(b, 2, h->count);
    }
    pb_double(b, 3, h->sum);
    buf_put_uvarint(b, 4 << 3);
    buf_put_uvarint(b, zigzag64(h->schema));
    pb_double(b, 5, h->zero_threshold);
    if (h->is_int) {
        buf_put_uvarint(b, 6 << 3);
        buf_put_uvarint(b, (uint64_t)h->zero_count);
    } else {
        pb_double(b, 7, h->zero_count);
    }
    pb_hist_side(b, tmp, 8, h->neg_spans, h->nneg_spans, h->neg, h->nneg, h->is_int);
    pb_hist_side(b, tmp, 11, h->pos_spans, h->npos_spans, h->pos, h->npos, h->is_int);
    if (h->hint)
        pb_int(b, 14, h->hint);
    pb_int(b, 15, hs->t);
    for (uint32_t i = 0; i < h->ncustom; i++)
        pb_double(b, 16, h->custom_values[i]);
}

/* Label{name=1, value=2} as field `field` of the enclosing message. */
static void pb_label(buf *b, buf *tmp, unsigned field, const char *name, const char *value) {
    buf_reset(tmp);
    pb_str(tmp, 1, name);
    pb_str(tmp, 2, value);
    pb_bytes(b, field, tmp->data, tmp->len);
}

/* ---- the read ------------------------------------------------------------ */

typedef struct rr_ctx {
    api_v1 *a;
    label *ext; /* sorted */
    size_t next;
    size_t frame_limit;
    buf out, ser, tmp, chunks;
    int64_t query_index;
    const series *cur; /* the series being streamed */
    size_t nchunks_in_frame;
} rr_ctx;

/* Writes the labels of s and then the external labels it lacks, as field
 * `field` repeated. */
static void put_labels(rr_ctx *c, buf *b, unsigned field, const series *s) {
    size_t i = 0, j = 0;
    /* merge in name order: series labels, and the external ones they lack */
    while (i < s->nls || j < c->next) {
        int cmp = i == s->nls ? 1 : j == c->next ? -1 : strcmp(s->ls[i].name, c->ext[j].name);
        if (cmp <= 0) {
            pb_label(b, &c->tmp, field, s->ls[i].name, s->ls[i].value);
            i++;
            if (cmp == 0)
                j++;
        } else {
            pb_label(b, &c->tmp, field, c->ext[j].name, c->ext[j].value);
            j++;
        }
    }
}

/* Ends a frame: ChunkedReadResponse{chunked_series=[{labels, chunks}], query_index}. */
static void flush_frame(rr_ctx *c) {
    buf_reset(&c->ser);
    put_labels(c, &c->ser, 1, c->cur);
    buf_append(&c->ser, c->chunks.data, c->chunks.len);
    buf_reset(&c->tmp);
    buf msg = BUF_INIT;
    pb_bytes(&msg, 1, c->ser.data, c->ser.len);
    if (c->query_index)
        pb_int(&msg, 2, c->query_index);
    buf_put_uvarint(&c->out, msg.len);
    uint32_t crc = crc32c(0, msg.data, msg.len);
    uint8_t be[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
    buf_append(&c->out, be, 4);
    buf_append(&c->out, msg.data, msg.len);
    if (buf_error(&msg))
        c->out.oom = 1; /* sticky: the answer is not sent */
    buf_free(&msg);
    buf_reset(&c->chunks);
    c->nchunks_in_frame = 0;
}

/* storage_hist_chunks' callback: Chunk{min=1, max=2, type=3, data=4}, the
 * type 1 (XOR), 2 (HISTOGRAM) or 3 (FLOAT_HISTOGRAM) as remote.proto's. */
static int add_chunk_of(void *data, int64_t mint, int64_t maxt, int enc, const uint8_t *b, size_t len) {
    rr_ctx *c = data;
    buf one = BUF_INIT;
    pb_int(&one, 1, mint);
    pb_int(&one, 2, maxt);
    pb_int(&one, 3, enc);
    pb_bytes(&one, 4, b, len);
    if (c->nchunks_in_frame && c->chunks.len + one.len > c->frame_limit)
        flush_frame(c);
    pb_bytes(&c->chunks, 2, one.data, one.len);
    c->nchunks_in_frame++;
    int rc = buf_error(&one) ? KILN_ENOMEM : 0;
    buf_free(&one);
    return rc;
}

/* storage_xor_chunks' callback. */
static int add_chunk(void *data, int64_t mint, int64_t maxt, const uint8_t *b, size_t len) {
    return add_chunk_of(data, mint, maxt, 1, b, len);
}

/* The chunks of series s in time order: each run of float samples as XOR
 * chunks, each run of histograms as histogram chunks (no t is in both). */
static int stream_series(rr_ctx *c, const series *s) {
    size_t i = 0, j = 0;
    int rc = 0;
    while (rc == 0 && (i < s->n || j < s->nh)) {
        if (j == s->nh || (i < s->n && s->s[i].t < s->hs[j].t)) {
            size_t k = i;
            while (k < s->n && (j == s->nh || s->s[k].t < s->hs[j].t))
                k++;
            rc = storage_xor_chunks(s->s + i, k - i, 120, add_chunk, c);
            i = k;
        } else {
            size_t k = j;
            while (k < s->nh && (i == s->n || s->hs[k].t < s->s[i].t))
                k++;
            rc = storage_hist_chunks(s->hs + j, k - j, 120, add_chunk_of, c);
            j = k;
        }
    }
    return rc;
}

/* The matchers of query q, with equality matchers on external labels
 * rewritten as Prometheus does.  0, or KILN_EINVAL with err. */
static int build_matchers(rr_ctx *c, const Kiln__Remote__Query *q, matcher *ms, kiln_err *err) {
    for (size_t i = 0; i < q->n_matchers; i++) {
        const Kiln__Remote__LabelMatcher *m = q->matchers[i];
        const char *value = m->value;
        if (m->type == 0) {
            const char *ev = labels_get(c->ext, c->next, m->name);
            if (ev && strcmp(ev, m->value) == 0)
                value = "";
        }
        /* prompb's EQ, NEQ, RE, NRE are 0..3, as kiln's match_type */
        int rc = m->type < 0 || m->type > 3
                     ? kiln_err_set(err, KILN_EINVAL, "unknown matcher type %d", (int)m->type)
                     : matcher_init(&ms[i], (match_type)m->type, m->name, value, err);
        if (rc != 0) {
            for (size_t j = 0; j < i; j++)
                matcher_free(&ms[j]);
            return rc;
        }
    }
    return 0;
}

/* The series of one query, sorted by labels. */
static int select_query(rr_ctx *c, storage *st, const Kiln__Remote__Query *q, series_set *set,
                        kiln_err *err) {
    if (q->n_matchers == 0)
        return kiln_err_set(err, KILN_EINVAL, "no matchers in query %lld", (long long)c->query_index);
    matcher *ms = calloc(q->n_matchers, sizeof *ms);
    if (!ms)
        return KILN_ENOMEM;
    int rc = build_matchers(c, q, ms, err);
    if (rc != 0) {
        free(ms);
        return rc;
    }
    querier *qr = NULL;
    rc = storage_querier(st, q->start_timestamp_ms, q->end_timestamp_ms, &qr, err);
    if (rc == 0) {
        select_hints h = {q->start_timestamp_ms, q->end_timestamp_ms, 0, 0};
        rc = querier_select(qr, ms, q->n_matchers, &h, set, err);
        querier_close(qr);
    }
    for (size_t i = 0; i < q->n_matchers; i++)
        matcher_free(&ms[i]);
    free(ms);
    return rc;
}

/* QueryResult{timeseries=[TimeSeries{labels=1, samples=2}]} of one query;
 * counts samples against the limit. */
static int put_samples_result(rr_ctx *c, const series_set *set, size_t *total, size_t limit, kiln_err *err) {
    buf qr = BUF_INIT;
    for (size_t i = 0; i < set->n; i++) {
        const series *s = &set->v[i];
        *total += s->n + s->nh;
        if (limit && *total > limit) {
            buf_free(&qr);
            return kiln_err_set(err, KILN_ELIMIT, "exceeded sample limit (%zu)", limit);
        }
        buf_reset(&c->ser);
        put_labels(c, &c->ser, 1, s);
        for (size_t k = 0; k < s->n; k++) {
            uint8_t one[1 + 8 + 1 + 10];
            size_t n = 0;
            one[n++] = 1 << 3 | 1; /* value, fixed64 */
            uint64_t bits = double_to_bits(s->s[k].v);
            for (int j = 0; j < 8; j++)
                one[n++] = (uint8_t)(bits >> (8 * j));
            buf_reset(&c->tmp);
            pb_int(&c->tmp, 2, s->s[k].t);
            buf_put_uvarint(&c->ser, 2 << 3 | 2);
            buf_put_uvarint(&c->ser, n + c->tmp.len);
            buf_append(&c->ser, one, n);
            buf_append(&c->ser, c->tmp.data, c->tmp.len);
        }
        for (size_t k = 0; k < s->nh; k++) {
            buf one = BUF_INIT;
            pb_histogram(&one, &c->tmp, &s->hs[k]);
            pb_bytes(&c->ser, 4, one.data, one.len);
            if (buf_error(&one))
                c->ser.oom = 1;
            buf_free(&one);
        }
        pb_bytes(&qr, 1, c->ser.data, c->ser.len);
    }
    pb_bytes(&c->out, 1, qr.data, qr.len);
    int rc = buf_error(&qr) ? KILN_ENOMEM : 0;
    buf_free(&qr);
    return rc;
}

static void text_error(http_resp *resp, int status, const char *msg) {
    resp->status = status;
    snprintf(resp->content_type, sizeof resp->content_type, "text/plain; charset=utf-8");
    buf_reset(&resp->body);
    buf_printf(&resp->body, "%s\n", msg);
}

/* --storage.remote.read-concurrent-limit: a counting semaphore. */
static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slots_cv = PTHREAD_COND_INITIALIZER;
static int slots_used;

void api_v1_read_handle(api_v1 *a, http_req *req, http_resp *resp) {
    storage *st = v1_storage(a, resp);
    if (!st)
        return;
    size_t ulen = 0;
    if (snappy_uncompressed_length(req->body, req->body_len, &ulen) != SNAPPY_OK) {
        text_error(resp, 400, "snappy: corrupt input (the body must be snappy block format)");
        return;
    }
    if (ulen > REMOTEREAD_MAX_REQUEST) {
        text_error(resp, 400, "read request decompresses to more than 4 MiB");
        return;
    }
    char *raw = malloc(ulen ? ulen : 1);
    if (!raw) {
        text_error(resp, 500, "out of memory");
        return;
    }
    size_t got = ulen;
    Kiln__Remote__ReadRequest *rq = NULL;
    if (snappy_uncompress(req->body, req->body_len, raw, &got) != SNAPPY_OK || got != ulen ||
        !(rq = kiln__remote__read_request__unpack(NULL, ulen, (const uint8_t *)raw))) {
        free(raw);
        text_error(resp, 400, "cannot decode the body as a snappy-compressed remote read ReadRequest");
        return;
    }
    free(raw);

    int streamed = 0;
    for (size_t i = 0; i < rq->n_accepted_response_types; i++) {
        int t = rq->accepted_response_types[i];
        if (t == KILN__REMOTE__READ_REQUEST__RESPONSE_TYPE__STREAMED_XOR_CHUNKS ||
            t == KILN__REMOTE__READ_REQUEST__RESPONSE_TYPE__SAMPLES) {
            streamed = t == KILN__REMOTE__READ_REQUEST__RESPONSE_TYPE__STREAMED_XOR_CHUNKS;
            break;
        }
    }
    if (rq->n_accepted_response_types && !streamed) {
        int known = 0;
        for (size_t i = 0; i < rq->n_accepted_response_types; i++)
            known |= rq->accepted_response_types[i] == KILN__REMOTE__READ_REQUEST__RESPONSE_TYPE__SAMPLES;
        if (!known) {
            kiln__remote__read_request__free_unpacked(rq, NULL);
            text_error(resp, 400, "server does not support any of the requested response types");
            return;
        }
    }

    if (a->read_concurrency > 0) {
        pthread_mutex_lock(&slots_mu);
        while (slots_used >= a->read_concurrency)
            pthread_cond_wait(&slots_cv, &slots_mu);
        slots_used++;
        pthread_mutex_unlock(&slots_mu);
    }

    rr_ctx c = {.a = a, .frame_limit = a->read_max_frame_bytes ? a->read_max_frame_bytes : 1048576};
    c.out = c.ser = c.tmp = c.chunks = (buf)BUF_INIT;
    arena ea;
    arena_init(&ea, 0);
    kiln_err err = {0};
    int rc = 0;
    api_v1_ext_labels_fn fn = atomic_load(&a->ext_labels);
    if (fn)
        rc = fn(a->ext_labels_data, &ea, &c.ext, &c.next);
    size_t total = 0;
    for (size_t qi = 0; rc == 0 && qi < rq->n_queries; qi++) {
        series_set set = {0};
        c.query_index = (int64_t)qi;
        rc = select_query(&c, st, rq->queries[qi], &set, &err);
        if (rc == 0 && streamed) {
            for (size_t i = 0; rc == 0 && i < set.n; i++) {
                c.cur = &set.v[i];
                rc = stream_series(&c, &set.v[i]);
                if (rc == 0 && c.nchunks_in_frame)
                    flush_frame(&c);
            }
        } else if (rc == 0) {
            rc = put_samples_result(&c, &set, &total, a->read_sample_limit, &err);
        }
        series_set_free(&set);
    }
    if (rc == 0 && (buf_error(&c.out) || buf_error(&c.ser) || buf_error(&c.tmp) || buf_error(&c.chunks)))
        rc = KILN_ENOMEM;

    if (rc == KILN_EINVAL || rc == KILN_ELIMIT) {
        text_error(resp, 400, err.msg);
    } else if (rc != 0) {
        text_error(resp, 500, err.msg[0] ? err.msg : "out of memory");
    } else if (streamed) {
        snprintf(resp->content_type, sizeof resp->content_type,
                 "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse");
        buf_free(&resp->body);
        resp->body = c.out;
        c.out = (buf)BUF_INIT;
    } else {
        size_t max = snappy_max_compressed_length(c.out.len);
        buf_reset(&resp->body);
        if (buf_reserve(&resp->body, max) != 0) {
            text_error(resp, 500, "out of memory");
        } else {
            size_t clen = max;
            snappy_compress(c.out.data ? c.out.data : "", c.out.len, resp->body.data, &clen);
            resp->body.len = clen;
            snprintf(resp->content_type, sizeof resp->content_type, "application/x-protobuf");
            http_resp_header(resp, "Content-Encoding", "snappy");
            resp->no_gzip = 1;
        }
    }
    if (a->read_concurrency > 0) {
        pthread_mutex_lock(&slots_mu);
        slots_used--;
        pthread_cond_signal(&slots_cv);
        pthread_mutex_unlock(&slots_mu);
    }
    buf_free(&c.out);
    buf_free(&c.ser);
    buf_free(&c.tmp);
    buf_free(&c.chunks);
    arena_free(&ea);
    kiln__remote__read_request__free_unpacked(rq, NULL);
}

static void h_read(http_req *req, http_resp *resp, void *data) {
    api_v1_read_handle(data, req, resp);
}

int v1_register_read(http_server *s, api_v1 *a) {
    return http_route(s, "POST", "/api/v1/read", HTTP_ROUTE_LOOKUP, h_read, a, "/api/v1/read");
}
