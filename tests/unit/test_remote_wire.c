/*
 * test_remote_wire.c - remote/wire.c: the prometheus.WriteRequest bytes of
 * the remote-write sender, checked against the encoding worked out by hand
 * from the protobuf definition, and the snappy block round trip.
 */
#include <snappy-c.h>
#include <string.h>

#include "api/remote.pb-c.h"
#include "remote/remote_int.h"

#define KILN_TEST_MAIN
#include "testutil.h"

START_TEST(test_one_timeseries) {
    label ls[] = {{"a", "b"}};
    buf lb = BUF_INIT, out = BUF_INIT;
    wire_labels(&lb, ls, 1);
    static const uint8_t want_labels[] = {0x0a, 0x06, 0x0a, 0x01, 'a', 0x12, 0x01, 'b'};
    ck_assert_uint_eq(lb.len, sizeof want_labels);
    ck_assert_mem_eq(lb.data, want_labels, sizeof want_labels);
    wire_timeseries(&out, (const uint8_t *)lb.data, lb.len, 1, 1.0);
    static const uint8_t want[] = {0x0a, 0x15,                                   /* timeseries, 21 bytes */
                                   0x0a, 0x06, 0x0a, 0x01, 'a', 0x12, 0x01, 'b', /* labels */
                                   0x12, 0x0b, 0x09, 0,    0,   0,    0,    0,
                                   0,    0xf0, 0x3f, /* samples: value 1.0 */
                                   0x10, 0x01};
    ck_assert_uint_eq(out.len, sizeof want);
    ck_assert_mem_eq(out.data, want, sizeof want);
    ck_assert(!buf_error(&out));
    buf_free(&lb);
    buf_free(&out);
}
END_TEST

/* A negative timestamp is a 10-byte varint (int64, two's complement). */
START_TEST(test_negative_timestamp) {
    buf out = BUF_INIT;
    wire_timeseries(&out, NULL, 0, -1, 0.0);
    /* 0a len | 12 len | 09 x8 | 10 ff ff ff ff ff ff ff ff ff 01 */
    ck_assert_uint_eq(out.len, 2 + 2 + 9 + 11);
    ck_assert_uint_eq((uint8_t)out.data[1], 2 + 9 + 11);
    ck_assert_uint_eq((uint8_t)out.data[out.len - 1], 0x01);
    ck_assert_uint_eq((uint8_t)out.data[out.len - 2], 0xff);
    buf_free(&out);
}
END_TEST

START_TEST(test_snappy_round_trip) {
    buf raw = BUF_INIT, scratch = BUF_INIT, orig = BUF_INIT;
    label ls[] = {{"__name__", "up"}, {"job", "kiln"}};
    buf lb = BUF_INIT;
    wire_labels(&lb, ls, 2);
    for (int i = 0; i < 1000; i++)
        wire_timeseries(&raw, (const uint8_t *)lb.data, lb.len, 1700000000000 + i, (double)i);
    buf_append(&orig, raw.data, raw.len);
    ck_assert_int_eq(wire_snappy(&raw, &scratch), 0);
    ck_assert_uint_lt(raw.len, orig.len / 4); /* the repeated labels compress */
    size_t n;
    ck_assert_int_eq(snappy_uncompressed_length(raw.data, raw.len, &n), SNAPPY_OK);
    ck_assert_uint_eq(n, orig.len);
    char *back = malloc(n);
    ck_assert_int_eq(snappy_uncompress(raw.data, raw.len, back, &n), SNAPPY_OK);
    ck_assert_mem_eq(back, orig.data, n);
    free(back);
    buf_free(&raw);
    buf_free(&scratch);
    buf_free(&orig);
    buf_free(&lb);
}
END_TEST

/* Remote write 2.0: symbols "" a b once, then two TimeSeries whose
 * labels_refs point at them. */
START_TEST(test_v2_request) {
    label ls[] = {{"a", "b"}};
    buf lb = BUF_INIT, out = BUF_INIT;
    wire_labels(&lb, ls, 1);
    wire_v2 w;
    memset(&w, 0, sizeof w);
    for (int round = 0; round < 2; round++) { /* a request built after another is the same */
        wire_v2_reset(&w);
        wire_v2_timeseries(&w, (const uint8_t *)lb.data, lb.len, 1, 1.0, NULL, 0, NULL);
        wire_v2_timeseries(&w, (const uint8_t *)lb.data, lb.len, 2, 1.0, NULL, 0, NULL);
        wire_v2_finish(&w, &out);
        static const uint8_t want[] = {0x22, 0x00, 0x22, 0x01, 'a',  0x22, 0x01, 'b', /* symbols "", a, b */
                                       0x2a, 0x11, 0x0a, 0x02, 0x01, 0x02, /* timeseries: labels_refs 1 2 */
                                       0x12, 0x0b, 0x09, 0,    0,    0,    0,    0,    0,    0xf0,
                                       0x3f, 0x10, 0x01, /* sample 1.0 @1 */
                                       0x2a, 0x11, 0x0a, 0x02, 0x01, 0x02, 0x12, 0x0b, 0x09, 0,
                                       0,    0,    0,    0,    0,    0xf0, 0x3f, 0x10, 0x02};
        ck_assert(!buf_error(&out));
        ck_assert_uint_eq(out.len, sizeof want);
        ck_assert_mem_eq(out.data, want, sizeof want);
    }
    wire_v2_free(&w);
    buf_free(&lb);
    buf_free(&out);
}
END_TEST

/* WriteRequest.metadata: a counter with help and no unit; an unknown type
 * leaves the type field out (UNKNOWN is 0). */
START_TEST(test_metadata) {
    buf out = BUF_INIT;
    ck_assert_int_eq(wire_metadata(&out, "up", "counter", "h", ""), 0);
    ck_assert_int_eq(wire_metadata(&out, "x", "what", NULL, "s"), 0);
    static const uint8_t want[] = {0x1a, 0x09, 0x08, 0x01, 0x12, 0x02, 'u',  'p', 0x22, 0x01, 'h', /* up */
                                   0x1a, 0x06, 0x12, 0x01, 'x',  0x2a, 0x01, 's'};                 /* x */
    ck_assert_uint_eq(out.len, sizeof want);
    ck_assert_mem_eq(out.data, want, sizeof want);
    buf_free(&out);
}
END_TEST

/* An integer histogram: counts as zigzag deltas, spans as BucketSpans; a
 * float one: absolute counts, count and zero count as doubles. */
START_TEST(test_histogram) {
    hist_span sp = {0, 2};
    double pos[] = {1, 3};
    histogram h = {.schema = 0,
                   .is_int = 1,
                   .count = 4,
                   .sum = 5,
                   .pos_spans = &sp,
                   .npos_spans = 1,
                   .pos = pos,
                   .npos = 2};
    buf out = BUF_INIT;
    ck_assert_int_eq(wire_histogram(&out, &h, 1), 0);
    static const uint8_t want[] = {0x08, 0x04,                                        /* count_int 4 */
                                   0x19, 0,    0,    0,    0,    0,    0, 0x14, 0x40, /* sum 5.0 */
                                   0x20, 0x00,                                        /* schema 0 */
                                   0x29, 0,    0,    0,    0,    0,    0, 0,    0,    /* zero_threshold */
                                   0x30, 0x00,                                        /* zero_count_int */
                                   0x5a, 0x04, 0x08, 0x00, 0x10, 0x02, /* positive_spans {0, 2} */
                                   0x62, 0x02, 0x02, 0x04,             /* positive_deltas 1, 2 */
                                   0x78, 0x01};                        /* timestamp 1 */
    ck_assert_uint_eq(out.len, sizeof want);
    ck_assert_mem_eq(out.data, want, sizeof want);
    buf_reset(&out);
    h.is_int = 0;
    h.hint = HIST_HINT_GAUGE;
    ck_assert_int_eq(wire_histogram(&out, &h, 1), 0);
    ck_assert_uint_eq(out.data[0], 0x11); /* count_float */
    const uint8_t *p = (const uint8_t *)out.data;
    const uint8_t counts[] = {0x6a, 0x10, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f}; /* positive_counts 1.0, ... */
    ck_assert(memmem(p, out.len, counts, sizeof counts) != NULL);
    const uint8_t hint[] = {0x70, 0x03}; /* reset_hint GAUGE */
    ck_assert(memmem(p, out.len, hint, sizeof hint) != NULL);
    buf_free(&out);
}
END_TEST

/* An exemplar's TimeSeries (send_exemplars), 1.0 and 2.0, read back by the
 * receiver's protobuf-c decoder: the series' labels, the exemplar's, its
 * value and (negative) timestamp; 2.0's metadata of a series (type, help
 * and unit references). */
START_TEST(test_exemplar) {
    label ls[] = {{"__name__", "m"}, {"a", "b"}}, el[] = {{"trace_id", "abc"}};
    buf lb = BUF_INIT, eb = BUF_INIT, out = BUF_INIT;
    wire_labels(&lb, ls, 2);
    wire_labels(&eb, el, 1);
    wire_timeseries_exemplar(&out, (const uint8_t *)lb.data, lb.len, (const uint8_t *)eb.data, eb.len, -5,
                             2.5);
    ck_assert(!buf_error(&out));
    Kiln__Remote__WriteRequest *r =
        kiln__remote__write_request__unpack(NULL, out.len, (const uint8_t *)out.data);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->n_timeseries, 1);
    Kiln__Remote__TimeSeries *ts = r->timeseries[0];
    ck_assert_uint_eq(ts->n_labels, 2);
    ck_assert_mem_eq(ts->labels[1]->value.data, "b", 1);
    ck_assert_uint_eq(ts->n_samples, 0);
    ck_assert_uint_eq(ts->n_exemplars, 1);
    ck_assert_uint_eq(ts->exemplars[0]->n_labels, 1);
    ck_assert_mem_eq(ts->exemplars[0]->labels[0]->name.data, "trace_id", 8);
    ck_assert_mem_eq(ts->exemplars[0]->labels[0]->value.data, "abc", 3);
    ck_assert(ts->exemplars[0]->value == 2.5);
    ck_assert_int_eq(ts->exemplars[0]->timestamp, -5);
    kiln__remote__write_request__free_unpacked(r, NULL);

    wire_v2 w;
    memset(&w, 0, sizeof w);
    wire_v2_reset(&w);
    wire_v2_meta md = {1, "Requests.", "seconds"}; /* a counter with help and unit */
    wire_v2_timeseries(&w, (const uint8_t *)lb.data, lb.len, 7, 1.0, NULL, 0, NULL);
    wire_v2_exemplar(&w, (const uint8_t *)lb.data, lb.len, (const uint8_t *)eb.data, eb.len, 7, 2.5, &md);
    wire_v2_exemplar(&w, (const uint8_t *)lb.data, lb.len, NULL, 0, 8, 3, NULL); /* no labels */
    wire_v2_finish(&w, &out);
    ck_assert(!buf_error(&out));
    Kiln__Remote__V2Request *r2 = kiln__remote__v2_request__unpack(NULL, out.len, (const uint8_t *)out.data);
    ck_assert_ptr_nonnull(r2);
    ck_assert_uint_eq(r2->n_symbols, 9); /* "", __name__, m, a, b, trace_id, abc, Requests., seconds */
    ck_assert_ptr_null(r2->timeseries[0]->metadata);
    Kiln__Remote__V2Metadata *m2 = r2->timeseries[1]->metadata;
    ck_assert_ptr_nonnull(m2);
    ck_assert_int_eq(m2->type, 1);
    ck_assert_mem_eq(r2->symbols[m2->help_ref].data, "Requests.", 9);
    ck_assert_mem_eq(r2->symbols[m2->unit_ref].data, "seconds", 7);
    ck_assert_uint_eq(r2->n_timeseries, 3);
    Kiln__Remote__V2TimeSeries *t2 = r2->timeseries[1];
    ck_assert_uint_eq(t2->n_labels_refs, 4);
    ck_assert_uint_eq(t2->n_samples, 0);
    ck_assert_uint_eq(t2->n_exemplars, 1);
    Kiln__Remote__V2Exemplar *x = t2->exemplars[0];
    ck_assert_uint_eq(x->n_labels_refs, 2);
    ck_assert_mem_eq(r2->symbols[x->labels_refs[0]].data, "trace_id", 8);
    ck_assert_mem_eq(r2->symbols[x->labels_refs[1]].data, "abc", 3);
    ck_assert(x->value == 2.5);
    ck_assert_int_eq(x->timestamp, 7);
    x = r2->timeseries[2]->exemplars[0];
    ck_assert_uint_eq(x->n_labels_refs, 0);
    ck_assert(x->value == 3);
    ck_assert_int_eq(x->timestamp, 8);
    kiln__remote__v2_request__free_unpacked(r2, NULL);
    wire_v2_free(&w);
    buf_free(&lb);
    buf_free(&eb);
    buf_free(&out);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("remote_wire");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_one_timeseries);
    tcase_add_test(tc, test_negative_timestamp);
    tcase_add_test(tc, test_snappy_round_trip);
    tcase_add_test(tc, test_v2_request);
    tcase_add_test(tc, test_metadata);
    tcase_add_test(tc, test_histogram);
    tcase_add_test(tc, test_exemplar);
    suite_add_tcase(s, tc);
    return s;
}
