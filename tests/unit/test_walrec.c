/*
 * test_walrec.c - WAL record encoding and decoding: exact Prometheus bytes for
 * each record type, round trips, varint edge cases, and corrupt input.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "storage/walrec.h"
#include "util/util.h"

#define KILN_TEST_MAIN
#include "testutil.h"

#define L(n, v)                                                                                              \
    { n, sizeof(n) - 1, v, sizeof(v) - 1 }

static void assert_bytes(const buf *b, const uint8_t *want, size_t n) {
    ck_assert_uint_eq(b->len, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg((uint8_t)b->data[i] == want[i], "byte %zu: got 0x%02x want 0x%02x", i,
                      (uint8_t)b->data[i], want[i]);
}

START_TEST(test_varints) {
    static const struct {
        int64_t v;
        uint8_t bytes[10];
        size_t n;
    } cases[] = {
        {0, {0x00}, 1},
        {-1, {0x01}, 1},
        {1, {0x02}, 1},
        {-64, {0x7f}, 1},
        {64, {0x80, 0x01}, 2},
        {300, {0xd8, 0x04}, 2},
        {INT64_MAX, {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 10},
        {INT64_MIN, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 10},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t b[10];
        size_t n = walrec_put_varint(b, cases[i].v);
        ck_assert_uint_eq(n, cases[i].n);
        ck_assert_int_eq(memcmp(b, cases[i].bytes, n), 0);
        int64_t back = 0;
        ck_assert_uint_eq(walrec_get_varint(b, n, &back), n);
        ck_assert(back == cases[i].v);
        /* one byte short: must fail, not read past */
        ck_assert_uint_eq(walrec_get_varint(b, n - 1, &back), 0);
    }
    uint64_t u;
    uint8_t b[11];
    ck_assert_uint_eq(walrec_put_uvarint(b, UINT64_MAX), 10);
    ck_assert_uint_eq(walrec_get_uvarint(b, 10, &u), 10);
    ck_assert(u == UINT64_MAX);
    /* an 11-byte or overflowing uvarint is refused */
    memset(b, 0xff, sizeof b);
    ck_assert_uint_eq(walrec_get_uvarint(b, sizeof b, &u), 0);
    b[9] = 0x02;
    ck_assert_uint_eq(walrec_get_uvarint(b, 10, &u), 0);
}
END_TEST

START_TEST(test_series_bytes_and_roundtrip) {
    walrec_label l1[] = {L("__name__", "up"), L("job", "a")};
    walrec_label l2[] = {L("x", "")};
    walrec_series s[] = {{1, l1, 2}, {0xfedcba9876543210ull, l2, 1}, {7, NULL, 0}};
    buf b = BUF_INIT;
    ck_assert_int_eq(walrec_encode_series(&b, s, 1), 0);
    static const uint8_t want[] = {0x01, 0,   0,   0,   0,   0, 0,   0,   1, 2,   8,   '_', '_', 'n',
                                   'a',  'm', 'e', '_', '_', 2, 'u', 'p', 3, 'j', 'o', 'b', 1,   'a'};
    assert_bytes(&b, want, sizeof want);
    ck_assert_int_eq(walrec_type(b.data, b.len), WALREC_SERIES);

    buf_reset(&b);
    ck_assert_int_eq(walrec_encode_series(&b, s, 3), 0);
    arena a;
    arena_init(&a, 0);
    walrec_series *out;
    size_t n;
    kiln_err err = {0};
    ck_assert_int_eq(walrec_decode_series(b.data, b.len, &a, &out, &n, &err), 0);
    ck_assert_uint_eq(n, 3);
    for (size_t i = 0; i < n; i++) {
        ck_assert(out[i].ref == s[i].ref);
        ck_assert_uint_eq(out[i].nlabels, s[i].nlabels);
        for (size_t j = 0; j < s[i].nlabels; j++) {
            ck_assert_uint_eq(out[i].labels[j].name_len, s[i].labels[j].name_len);
            ck_assert_int_eq(memcmp(out[i].labels[j].name, s[i].labels[j].name, s[i].labels[j].name_len), 0);
            ck_assert_uint_eq(out[i].labels[j].value_len, s[i].labels[j].value_len);
            ck_assert_int_eq(memcmp(out[i].labels[j].value, s[i].labels[j].value, s[i].labels[j].value_len),
                             0);
        }
    }
    /* every truncation of the record is reported as corruption, never read past */
    for (size_t cut = 1; cut < b.len; cut++) {
        kiln_err e = {0};
        int rc = walrec_decode_series(b.data, cut, &a, &out, &n, &e);
        /* cuts at entry boundaries are valid shorter records */
        if (cut == 1 || cut == 1 + 8 + 1 + 9 + 3 + 4 + 2 || cut == 1 + 8 + 1 + 9 + 3 + 4 + 2 + 8 + 1 + 2 + 1)
            ck_assert_int_eq(rc, 0);
        else {
            ck_assert_msg(rc == KILN_ECORRUPT, "cut %zu: rc %d", cut, rc);
            ck_assert_msg(strstr(e.msg, "offset"), "no offset in: %s", e.msg);
        }
    }
    arena_free(&a);
    buf_free(&b);
}
END_TEST

START_TEST(test_samples_bytes_and_roundtrip) {
    walrec_sample s[] = {{5, 1000, 1.0}, {7, 1015, -2.5}, {3, 990, 0.0}};
    buf b = BUF_INIT;
    ck_assert_int_eq(walrec_encode_samples(&b, s, 3), 0);
    static const uint8_t want[] = {
        0x02, 0,    0,    0,    0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0x03, 0xe8, /* header */
        0x00, 0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0,                            /* +0 +0 1.0 */
        0x04, 0x1e, 0xc0, 0x04, 0, 0, 0, 0, 0, 0,                            /* +2 +15 -2.5 */
        0x03, 0x13, 0,    0,    0, 0, 0, 0, 0, 0,                            /* -2 -10 0 */
    };
    assert_bytes(&b, want, sizeof want);
    walrec_sample out[8];
    size_t n = 0;
    kiln_err err = {0};
    ck_assert_uint_ge(walrec_samples_max(b.len), 3);
    ck_assert_int_eq(walrec_decode_samples(b.data, b.len, out, 8, &n, &err), 0);
    ck_assert_uint_eq(n, 3);
    for (size_t i = 0; i < 3; i++) {
        ck_assert(out[i].ref == s[i].ref);
        ck_assert(out[i].t == s[i].t);
        ck_assert(out[i].v == s[i].v);
    }
    ck_assert_int_eq(walrec_decode_samples(b.data, b.len, out, 2, &n, &err), KILN_ERANGE);
    ck_assert_int_eq(walrec_decode_samples(b.data, b.len - 1, out, 8, &n, &err), KILN_ECORRUPT);
    ck_assert_msg(strstr(err.msg, "offset 39"), "%s", err.msg);
    /* wrong type byte */
    b.data[0] = 1;
    ck_assert_int_eq(walrec_decode_samples(b.data, b.len, out, 8, &n, &err), KILN_ECORRUPT);

    /* extremes: big deltas, NaN bits, stale-marker bit pattern preserved */
    uint64_t stale = 0x7ff0000000000002ull;
    double stale_d;
    memcpy(&stale_d, &stale, 8);
    walrec_sample x[] = {
        {UINT64_MAX, INT64_MIN + 5, stale_d}, {0, INT64_MAX, -0.0}, {1ull << 40, 0, INFINITY}};
    buf_reset(&b);
    ck_assert_int_eq(walrec_encode_samples(&b, x, 3), 0);
    ck_assert_int_eq(walrec_decode_samples(b.data, b.len, out, 8, &n, &err), 0);
    ck_assert_uint_eq(n, 3);
    for (size_t i = 0; i < 3; i++) {
        ck_assert(out[i].ref == x[i].ref);
        ck_assert(out[i].t == x[i].t);
        ck_assert_int_eq(memcmp(&out[i].v, &x[i].v, 8), 0);
    }
    /* an empty record is the type byte alone and holds nothing */
    buf_reset(&b);
    ck_assert_int_eq(walrec_encode_samples(&b, NULL, 0), 0);
    ck_assert_uint_eq(b.len, 1);
    ck_assert_int_eq(walrec_decode_samples(b.data, b.len, out, 8, &n, &err), 0);
    ck_assert_uint_eq(n, 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_samples_many) {
    enum { N = 5000 };
    static walrec_sample s[N], out[N];
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        s[i].ref = 1000 + (x % 4000);
        s[i].t = 1700000000000LL + (int64_t)(x >> 40) % 100000 - 50000;
        s[i].v = (double)(x >> 11) / 3.0;
    }
    buf b = BUF_INIT;
    ck_assert_int_eq(walrec_encode_samples(&b, s, N), 0);
    size_t n;
    kiln_err err = {0};
    ck_assert_uint_ge(walrec_samples_max(b.len), N);
    ck_assert_int_eq(walrec_decode_samples(b.data, b.len, out, N, &n, &err), 0);
    ck_assert_uint_eq(n, N);
    ck_assert_int_eq(memcmp(s, out, sizeof s), 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_tombstones) {
    walrec_tombstone t[] = {{9, -5, 300}, {10, INT64_MIN, INT64_MAX}};
    buf b = BUF_INIT;
    ck_assert_int_eq(walrec_encode_tombstones(&b, t, 1), 0);
    static const uint8_t want[] = {0x03, 0, 0, 0, 0, 0, 0, 0, 9, 0x09, 0xd8, 0x04};
    assert_bytes(&b, want, sizeof want);
    buf_reset(&b);
    ck_assert_int_eq(walrec_encode_tombstones(&b, t, 2), 0);
    walrec_tombstone out[4];
    size_t n;
    kiln_err err = {0};
    ck_assert_int_eq(walrec_decode_tombstones(b.data, b.len, out, walrec_tombstones_max(b.len), &n, &err), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(memcmp(out, t, sizeof t), 0);
    ck_assert_int_eq(walrec_decode_tombstones(b.data, b.len - 1, out, 4, &n, &err), KILN_ECORRUPT);
    buf_free(&b);
}
END_TEST

START_TEST(test_exemplars) {
    walrec_label l1[] = {L("trace_id", "abc")};
    walrec_exemplar e[] = {{4, 100, 0.5, l1, 1}, {2, 90, 7, NULL, 0}};
    buf b = BUF_INIT;
    ck_assert_int_eq(walrec_encode_exemplars(&b, e, 2), 0);
    static const uint8_t want[] = {0x04, 0,   0,    0,    0,    0,    0,    0,    4,   0,   0,   0, 0,
                                   0,    0,   0,    100,  0x00, 0x00, 0x3f, 0xe0, 0,   0,   0,   0, 0,
                                   0,    1,   8,    't',  'r',  'a',  'c',  'e',  '_', 'i', 'd', 3, 'a',
                                   'b',  'c', 0x03, 0x13, 0x40, 0x1c, 0,    0,    0,   0,   0,   0, 0};
    assert_bytes(&b, want, sizeof want);
    arena a;
    arena_init(&a, 0);
    walrec_exemplar *out;
    size_t n;
    kiln_err err = {0};
    ck_assert_int_eq(walrec_decode_exemplars(b.data, b.len, &a, &out, &n, &err), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert(out[0].ref == 4 && out[0].t == 100 && out[0].v == 0.5 && out[0].nlabels == 1);
    ck_assert_int_eq(memcmp(out[0].labels[0].value, "abc", 3), 0);
    ck_assert(out[1].ref == 2 && out[1].t == 90 && out[1].v == 7 && out[1].nlabels == 0);
    for (size_t cut = 2; cut < b.len; cut++)
        ck_assert_msg(walrec_decode_exemplars(b.data, cut, &a, &out, &n, &err) ==
                          (cut == 17 || cut == 41 ? 0 : KILN_ECORRUPT),
                      "cut %zu", cut);
    arena_free(&a);
    buf_free(&b);
}
END_TEST

static int keep_odd(uint64_t ref, void *data) {
    (void)data;
    return ref & 1;
}

START_TEST(test_metadata_filter) {
    /* ref 3 counter UNIT="" HELP="h"; ref 4 gauge; ref 5 with no fields */
    static const uint8_t rec[] = {0x06, 3,   1,   2, 4,   'U', 'N', 'I', 'T', 0,   4,   'H',
                                  'E',  'L', 'P', 1, 'h', 4,   2,   2,   4,   'U', 'N', 'I',
                                  'T',  1,   's', 4, 'H', 'E', 'L', 'P', 0,   5,   3,   0};
    buf out = BUF_INIT;
    uint64_t kept = 0, dropped = 0;
    kiln_err err = {0};
    ck_assert_int_eq(walrec_filter_metadata(rec, sizeof rec, keep_odd, NULL, &out, &kept, &dropped, &err), 0);
    ck_assert_uint_eq(kept, 2);
    ck_assert_uint_eq(dropped, 1);
    static const uint8_t want[] = {0x06, 3,   1,   2,   4,   'U', 'N', 'I', 'T', 0,
                                   4,    'H', 'E', 'L', 'P', 1,   'h', 5,   3,   0};
    assert_bytes(&out, want, sizeof want);
    buf_reset(&out);
    ck_assert_int_eq(walrec_filter_metadata(rec, sizeof rec - 1, keep_odd, NULL, &out, NULL, NULL, &err),
                     KILN_ECORRUPT);
    ck_assert_uint_eq(out.len, 0);
    buf_free(&out);
}
END_TEST

/* One integer histogram entry body: hint, schema, zero threshold, zero count,
 * count, sum, 1 positive span (offset 0, len 2), 0 negative spans, 2 positive
 * buckets, 0 negative buckets. */
static const uint8_t HBODY[] = {0x00, 0x00, 0x3f, 0x50, 0x62, 0x4d, 0xd2, 0xf1, 0xa9, 0xfc, 1, 5, 0x40, 0x24,
                                0,    0,    0,    0,    0,    0,    1,    0,    2,    0,    2, 2, 2,    0};

START_TEST(test_histogram_filter) {
    buf in = BUF_INIT, out = BUF_INIT;
    static const uint8_t hdr[] = {0x07, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 100};
    buf_append(&in, hdr, sizeof hdr);
    buf_append(&in, "\x00\x00", 2); /* ref 10 t 100 */
    buf_append(&in, HBODY, sizeof HBODY);
    buf_append(&in, "\x02\x64", 2); /* ref 11 t 150 */
    buf_append(&in, HBODY, sizeof HBODY);
    uint64_t kept = 0, dropped = 0;
    kiln_err err = {0};
    ck_assert_int_eq(walrec_filter_histograms(in.data, in.len, 120, &out, &kept, &dropped, &err), 0);
    ck_assert_uint_eq(kept, 1);
    ck_assert_uint_eq(dropped, 1);
    /* re-based on the kept entry */
    uint8_t want[17 + 2 + sizeof HBODY] = {0x07, 0, 0, 0, 0, 0, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0, 150, 0, 0};
    memcpy(want + 19, HBODY, sizeof HBODY);
    assert_bytes(&out, want, sizeof want);
    /* all kept: identical bytes */
    buf_reset(&out);
    ck_assert_int_eq(walrec_filter_histograms(in.data, in.len, 0, &out, NULL, NULL, &err), 0);
    assert_bytes(&out, (const uint8_t *)in.data, in.len);
    /* none kept: nothing appended */
    buf_reset(&out);
    ck_assert_int_eq(walrec_filter_histograms(in.data, in.len, 1000, &out, NULL, NULL, &err), 0);
    ck_assert_uint_eq(out.len, 0);
    /* truncated entry */
    ck_assert_int_eq(walrec_filter_histograms(in.data, in.len - 3, 0, &out, NULL, NULL, &err), KILN_ECORRUPT);

    /* custom buckets (schema -53 = zigzag 105) carry custom values */
    static const uint8_t cb[] = {0x09, 0,   0, 0, 0, 0, 0, 0, 1, 0,    0,    0, 0, 0, 0, 0, 1, 0, 0,
                                 0x00, 105, 0, 0, 0, 0, 0, 0, 0, 0,    0,    3, 0, 0, 0, 0, 0, 0, 0,
                                 0,    1,   0, 1, 0, 1, 6, 0, 1, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0};
    buf_reset(&out);
    kept = 0;
    ck_assert_int_eq(walrec_filter_histograms(cb, sizeof cb, 0, &out, &kept, NULL, &err), 0);
    ck_assert_uint_eq(kept, 1);
    assert_bytes(&out, cb, sizeof cb);
    ck_assert_int_eq(walrec_filter_histograms(cb, sizeof cb - 8, 0, &out, NULL, NULL, &err), KILN_ECORRUPT);
    buf_free(&in);
    buf_free(&out);
}
END_TEST

START_TEST(test_types) {
    static const struct {
        uint8_t b;
        int type;
        const char *name;
    } cases[] = {{1, WALREC_SERIES, "series"},
                 {2, WALREC_SAMPLES, "samples"},
                 {3, WALREC_TOMBSTONES, "tombstones"},
                 {4, WALREC_EXEMPLARS, "exemplars"},
                 {5, WALREC_MMAP_MARKERS, "mmap markers"},
                 {6, WALREC_METADATA, "metadata"},
                 {7, WALREC_HISTOGRAM_SAMPLES, "histogram samples"},
                 {10, 10, "custom buckets float histogram samples"},
                 {0, WALREC_UNKNOWN, "unknown"},
                 {11, WALREC_UNKNOWN, "unknown"},
                 {255, WALREC_UNKNOWN, "unknown"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(walrec_type(&cases[i].b, 1), cases[i].type);
        ck_assert_str_eq(walrec_type_name(walrec_type(&cases[i].b, 1)), cases[i].name);
    }
    ck_assert_int_eq(walrec_type("", 0), WALREC_UNKNOWN);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("walrec");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_varints);
    tcase_add_test(tc, test_series_bytes_and_roundtrip);
    tcase_add_test(tc, test_samples_bytes_and_roundtrip);
    tcase_add_test(tc, test_samples_many);
    tcase_add_test(tc, test_tombstones);
    tcase_add_test(tc, test_exemplars);
    tcase_add_test(tc, test_metadata_filter);
    tcase_add_test(tc, test_histogram_filter);
    tcase_add_test(tc, test_types);
    suite_add_tcase(s, tc);
    return s;
}
