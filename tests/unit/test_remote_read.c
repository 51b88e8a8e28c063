/*
 * test_remote_read.c - the remote read client's pieces: the ReadRequest
 * bytes (remote/readwire.c) checked against the encoding worked out by hand
 * from remote.proto, the ReadResponse decoder (labels sorted, empty and
 * external labels removed, samples sorted, malformed input refused), the
 * streamed chunks decoder (frames, CRC32C, XOR chunks, a series over two
 * frames joined), and the
 * merge of a source's series into a select's result (storage/source.c).
 */
#include <stdlib.h>
#include <string.h>

#include "remote/remote_int.h"

#define KILN_TEST_MAIN
#include "testutil.h"

START_TEST(test_encode_request) {
    matcher m[2];
    kiln_err err;
    ck_assert_int_eq(matcher_init(&m[0], MATCH_EQ, "__name__", "up", &err), 0);
    ck_assert_int_eq(matcher_init(&m[1], MATCH_RE, "j", "a.*", &err), 0);
    buf b = BUF_INIT;
    rr_encode_request(&b, m, 2, 1, 2);
    static const uint8_t want[] = {
        0x0a, 0x26,             /* queries, 4 + 16 + 12 + 6 = 38 bytes */
        0x08, 0x01, 0x10, 0x02, /* start 1, end 2 */
        0x1a, 0x0e, 0x12, 0x08, '_',  '_',  'n', 'a',  'm',  'e', '_', '_', 0x1a, 0x02, 'u', 'p', /* EQ */
        0x1a, 0x0a, 0x08, 0x02, 0x12, 0x01, 'j', 0x1a, 0x03, 'a', '.', '*',                       /* RE */
        0x22, 0x04, 0x18, 0x01, 0x20, 0x02, /* hints start, end */
        0x10, 0x01, 0x10, 0x00};            /* STREAMED_XOR_CHUNKS, SAMPLES */
    ck_assert_uint_eq(b.len, sizeof want);
    ck_assert_mem_eq(b.data, want, sizeof want);
    buf_free(&b);
    matcher_free(&m[0]);
    matcher_free(&m[1]);
}
END_TEST

/* A TimeSeries of labels (name, value) pairs and samples, wrapped in a
 * QueryResult and a ReadResponse. */
static void put_label(buf *ts, const char *n, const char *v) {
    buf l = BUF_INIT;
    wire_bytes(&l, 0x0a, n, strlen(n));
    wire_bytes(&l, 0x12, v, strlen(v));
    wire_bytes(ts, 0x0a, l.data, l.len);
    buf_free(&l);
}

static void put_sample(buf *ts, int64_t t, double v) {
    uint8_t s[32];
    size_t n = 0;
    uint64_t bits = double_to_bits(v);
    s[n++] = 0x09;
    for (int i = 0; i < 8; i++)
        s[n++] = (uint8_t)(bits >> (8 * i));
    s[n++] = 0x10;
    uint64_t u = (uint64_t)t;
    while (u >= 0x80) {
        s[n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    s[n++] = (uint8_t)u;
    wire_bytes(ts, 0x12, s, n);
}

static void wrap(buf *resp, const buf *ts) {
    buf qr = BUF_INIT;
    wire_bytes(&qr, 0x0a, ts->data, ts->len);
    wire_bytes(resp, 0x0a, qr.data, qr.len);
    buf_free(&qr);
}

START_TEST(test_decode_response) {
    buf ts = BUF_INIT, resp = BUF_INIT;
    put_label(&ts, "region", "eu"); /* an external label: removed */
    put_label(&ts, "job", "x");
    put_label(&ts, "__name__", "up");
    put_label(&ts, "empty", ""); /* no such label */
    put_sample(&ts, 30, 3);
    put_sample(&ts, 10, 1);
    put_sample(&ts, 20, 2);
    put_sample(&ts, 10, 9); /* a duplicate time: one kept */
    wrap(&resp, &ts);
    arena a;
    arena_init(&a, 0);
    series *v = NULL;
    size_t nv = 0, cap = 0;
    kiln_err err;
    const char *drop[] = {"region"};
    ck_assert_int_eq(
        rr_decode_response((const uint8_t *)resp.data, resp.len, drop, 1, &a, &v, &nv, &cap, &err), 0);
    ck_assert_uint_eq(nv, 1);
    ck_assert_uint_eq(v[0].nls, 2);
    ck_assert_str_eq(v[0].ls[0].name, "__name__");
    ck_assert_str_eq(v[0].ls[1].value, "x");
    ck_assert_uint_eq(v[0].n, 3);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(v[0].s[i].t, (int64_t)(i + 1) * 10);
        ck_assert(v[0].s[i].v == (double)(i + 1) || (i == 0 && v[0].s[i].v == 9));
    }
    /* truncated bytes, and a label set that is not valid */
    ck_assert_int_eq(
        rr_decode_response((const uint8_t *)resp.data, resp.len - 3, NULL, 0, &a, &v, &nv, &cap, &err),
        KILN_EINVAL);
    buf_reset(&ts);
    buf_reset(&resp);
    put_label(&ts, "a", "1");
    put_label(&ts, "a", "2");
    wrap(&resp, &ts);
    ck_assert_int_eq(
        rr_decode_response((const uint8_t *)resp.data, resp.len, NULL, 0, &a, &v, &nv, &cap, &err),
        KILN_EINVAL);
    ck_assert_msg(strstr(err.msg, "duplicate label name"), "%s", err.msg);
    free(v);
    arena_free(&a);
    buf_free(&ts);
    buf_free(&resp);
}
END_TEST

/* One frame of a ChunkedReadResponse: the series {__name__="m", a=<a>}
 * with samples (t, t/10) for t in [from, to) step 10, as XOR chunks of 50. */
typedef struct chunks_out {
    buf *cs;
} chunks_out;

static int put_chunk(void *data, int64_t mint, int64_t maxt, const uint8_t *b, size_t len) {
    buf c = BUF_INIT;
    buf_putc(&c, 0x08);
    buf_put_uvarint(&c, (uint64_t)mint);
    buf_putc(&c, 0x10);
    buf_put_uvarint(&c, (uint64_t)maxt);
    buf_putc(&c, 0x18); /* type XOR */
    buf_put_uvarint(&c, 1);
    wire_bytes(&c, 0x22, b, len);
    wire_bytes(((chunks_out *)data)->cs, 0x12, c.data, c.len); /* ChunkedSeries.chunks */
    buf_free(&c);
    return 0;
}

static void put_frame(buf *out, const char *a, int64_t from, int64_t to) {
    buf cs = BUF_INIT, msg = BUF_INIT;
    put_label(&cs, "__name__", "m");
    put_label(&cs, "a", a);
    sample s[200];
    size_t n = 0;
    for (int64_t t = from; t < to; t += 10)
        s[n++] = (sample){t, (double)t / 10};
    chunks_out co = {&cs};
    ck_assert_int_eq(storage_xor_chunks(s, n, 50, put_chunk, &co), 0);
    wire_bytes(&msg, 0x0a, cs.data, cs.len); /* ChunkedReadResponse.chunked_series */
    buf_put_uvarint(out, msg.len);
    uint32_t crc = crc32c(0, msg.data, msg.len);
    for (int i = 3; i >= 0; i--)
        buf_putc(out, (char)(crc >> (8 * i)));
    buf_append(out, msg.data, msg.len);
    buf_free(&cs);
    buf_free(&msg);
}

START_TEST(test_decode_chunked) {
    buf resp = BUF_INIT;
    put_frame(&resp, "x", 0, 1200);    /* 120 samples, 3 chunks */
    put_frame(&resp, "x", 1200, 1500); /* the same series, continued */
    put_frame(&resp, "y", 5, 15);
    arena a;
    arena_init(&a, 0);
    series *v = NULL;
    size_t nv = 0, cap = 0;
    kiln_err err;
    ck_assert_int_eq(
        rr_decode_chunked((const uint8_t *)resp.data, resp.len, NULL, 0, &a, &v, &nv, &cap, &err), 0);
    ck_assert_uint_eq(nv, 2);
    ck_assert_str_eq(v[0].ls[1].value, "x");
    ck_assert_uint_eq(v[0].n, 150);
    for (size_t i = 0; i < 150; i++)
        ck_assert(v[0].s[i].t == (int64_t)i * 10 && v[0].s[i].v == (double)i);
    ck_assert_str_eq(v[1].ls[1].value, "y");
    ck_assert_uint_eq(v[1].n, 1);
    ck_assert(v[1].s[0].t == 5 && v[1].s[0].v == 0.5);
    /* a flipped byte fails the frame's CRC; a cut frame is refused */
    nv = 0;
    resp.data[resp.len - 3] ^= 1;
    ck_assert_int_eq(
        rr_decode_chunked((const uint8_t *)resp.data, resp.len, NULL, 0, &a, &v, &nv, &cap, &err),
        KILN_EINVAL);
    ck_assert_msg(strstr(err.msg, "CRC32C"), "%s", err.msg);
    resp.data[resp.len - 3] ^= 1;
    ck_assert_int_eq(
        rr_decode_chunked((const uint8_t *)resp.data, resp.len - 1, NULL, 0, &a, &v, &nv, &cap, &err),
        KILN_EINVAL);
    free(v);
    arena_free(&a);
    buf_free(&resp);
}
END_TEST

/* The local set {a: t 1,2,3}, {c: t 1}; the source {a: t 3,4}, {b: t 5}:
 * sorted a, b, c; a's samples merged, the local value kept at t 3. */
START_TEST(test_merge) {
    series_set set, add;
    memset(&set, 0, sizeof set);
    memset(&add, 0, sizeof add);
    arena_init(&set.mem, 0);
    arena_init(&add.mem, 0);
    static label la[] = {{"__name__", "a"}}, lb[] = {{"__name__", "b"}}, lc[] = {{"__name__", "c"}};
    static sample sa[] = {{1, 1}, {2, 2}, {3, 3}}, sc[] = {{1, 7}}, ra[] = {{3, 30}, {4, 40}},
                  rb[] = {{5, 5}};
    series local[2] = {{la, 1, sa, 3, NULL, 0}, {lc, 1, sc, 1, NULL, 0}};
    series theirs[2] = {{lb, 1, rb, 1, NULL, 0}, {la, 1, ra, 2, NULL, 0}};
    set.v = local;
    set.n = 2;
    add.v = theirs;
    add.n = 2;
    ck_assert_int_eq(series_set_merge(&set, &add), 0);
    ck_assert_uint_eq(set.n, 3);
    ck_assert_str_eq(set.v[0].ls[0].value, "a");
    ck_assert_str_eq(set.v[1].ls[0].value, "b");
    ck_assert_str_eq(set.v[2].ls[0].value, "c");
    ck_assert(set.v[1].ls != lb); /* copied: the source's set is freed after */
    ck_assert_uint_eq(set.v[0].n, 4);
    static const double want[] = {1, 2, 3, 40};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(set.v[0].s[i].t, (int64_t)i + 1);
        ck_assert(set.v[0].s[i].v == want[i]);
    }
    ck_assert_uint_eq(set.v[2].n, 1);
    /* nothing to add: unchanged */
    add.n = 0;
    ck_assert_int_eq(series_set_merge(&set, &add), 0);
    ck_assert_uint_eq(set.n, 3);
    arena_free(&set.mem);
    arena_free(&add.mem);
}
END_TEST

/* Without a source, the engine's merge does nothing and warns of nothing. */
START_TEST(test_no_source) {
    series_set set;
    memset(&set, 0, sizeof set);
    kiln_err w;
    select_hints h = {0, 10, 0, 0};
    ck_assert_int_eq(storage_source_merge(NULL, NULL, 0, &h, &set, &w), 0);
    ck_assert_str_eq(w.msg, "");
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("remote_read");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_encode_request);
    tcase_add_test(tc, test_decode_response);
    tcase_add_test(tc, test_decode_chunked);
    tcase_add_test(tc, test_merge);
    tcase_add_test(tc, test_no_source);
    suite_add_tcase(s, tc);
    return s;
}
