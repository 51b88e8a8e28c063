/*
 * test_xorchunk.c - the XOR chunk: bit-exact with chunks Prometheus wrote,
 * round trips of special values and timestamps, iterator bounds, loading.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"
#include "storage/xorchunk.h"

#define KILN_TEST_MAIN
#include "testutil.h"

/* Chunks written by Debian's promtool 2.42 (tsdb create-blocks-from
 * openmetrics) for one gauge with irregular intervals (dods of every bucket)
 * and value jumps; kiln must decode them and re-encode the same bytes. */
static const char *const prom_chunks[] = {
    "0025b08aadfef96240590000000000009875de1f5e12c3903baecde2de0193b558b8ff84a2cf0a60467e72b3ce45ead7433dd67f"
    "03715a60000000040000061d4bc0000000056e94cf00000000001e49e8820000050914915fffffffffffc36c3100000000100000"
    "010000000001600a612c2000000007000005d76201920000000020000070a6043bacfe200000000ee65d21b8ad2c3a978772edda"
    "b03781be00000000003c93d0fffffffffffe1b6188000000003ce31c80000000150000080000000ff00000425840b976ec000000"
    "0baec80000000047b94500c907db4e8b86e96ff853022027d2a700000007759fc4000000000800003715a58752f00000000fc000"
    "00",
    "002ffee5e184fa6241f65a0bc60e9c959875d8be24d9d7f34002ff0800f6891d00040000212c175d9b56fbdbae0191c29811fe00"
    "007afcdeeb3f8cdc7fa1ddbaa44a3da00000000068000dc5698000000000800030ea5de00000000003c93d1fe10000998bffffff"
    "ffffff0db0c6e5a63d7f7f4003fd00022000484b0ff000003223dd762019200150000e14c087759fc6d5f6eb52bfba00038e7dc5"
    "69800700018752f00010003c00000000007927a1fffffffffffc36c31000a8001fe1000e6184a000c000020002000042586e5a27"
    "3ebbaecfe78007806470a6044001bbacfe2000480016e2b4c001b0ea5ffc000069b8be00000000003c93d1000200007fffffffff"
    "ff0db0c06c639b3a75fe1001f4cbcc258400040000baec80070000100c9000780000",
    "002cd4aab38bfa62420836e212c284b79875ff0000127d6b72d12ad3ee2b4b0ea5de00000000003c93d13c66dbfffffffffffc36"
    "c31fe10007b7e988001000008001000010961000100002ebb2000ed3efc032400660000e14c087759fc1b57c7bd77b8ad3fe1000"
    "6dd48e1d4bc00080000f00000000001e49e8800300001fffffffffffc36c31000e800010006000006e5a675e584b0fe78001baec"
    "d797da6ce0f2f77300c90000000038001c29811fe0000027cdeeb3f81b8ad30003000061d4bc00020001e00000000003c93d1fe1"
    "00079fe2ffffffffffff0db0c0400750000212c20001abee5d764000d00008064deb5c9ecbc29811fd1000bf759fc400027f8400"
    "1e4b27b8ad2c3a978000400000",
    "000294ace593fa624211b1f3f91db6a89875fe780010"};

static uint8_t *unhex(const char *h, size_t *n) {
    *n = strlen(h) / 2;
    uint8_t *b = malloc(*n);
    for (size_t i = 0; i < *n; i++) {
        unsigned x;
        sscanf(h + 2 * i, "%2x", &x);
        b[i] = (uint8_t)x;
    }
    return b;
}

static uint64_t bits_of(double v) {
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double from_bits(uint64_t b) {
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

START_TEST(test_prometheus_bytes) {
    for (size_t k = 0; k < sizeof prom_chunks / sizeof prom_chunks[0]; k++) {
        size_t n;
        uint8_t *b = unhex(prom_chunks[k], &n);
        xoriter it;
        xoriter_init(&it, b, n);
        xorchunk c;
        xorchunk_init(&c);
        int rc, count = 0;
        int64_t last = INT64_MIN;
        while ((rc = xoriter_next(&it)) == 1) {
            ck_assert(it.t > last);
            last = it.t;
            ck_assert_int_eq(xorchunk_append(&c, it.t, it.v), 0);
            count++;
        }
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(count, (b[0] << 8) | b[1]);
        size_t len;
        const uint8_t *d = xorchunk_data(&c, &len);
        ck_assert_uint_eq(len, n);
        ck_assert_msg(memcmp(d, b, n) == 0, "chunk %zu differs from Prometheus' bytes", k);
        xorchunk_free(&c);
        free(b);
    }
}
END_TEST

/* Bytes worked out by hand from the chunk format for
 * (1000,1.0) (2000,1.0) (3000,2.0) (4005,2.0):
 *   00 04                    sample count
 *   d0 0f                    t0 = 1000 as zig-zag varint (2000)
 *   3f f0 00 00 00 00 00 00  v0 = 1.0
 *   e8 07                    t1 - t0 = 1000 as uvarint
 * then the bit stream:
 *   0                        v1 xor v0 = 0
 *   0                        dod 0
 *   11 00001 001011 1x11     2.0 ^ 1.0 = 0x7ff0..: new window, leading 1,
 *                            11 significant bits (trailing 52)
 *   10 00000000000101        dod 5 in the 14-bit bucket
 *   0                        value unchanged
 *   00000                    padding
 * = 0011 0000 1001 0111 1111 1111 1110 0000 0000 0001 0100 0000 */
START_TEST(test_golden_bytes) {
    static const uint8_t want[] = {0x00, 0x04, 0xd0, 0x0f, 0x3f, 0xf0, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0xe8, 0x07, 0x30, 0x97, 0xff, 0xe0, 0x01, 0x40};
    static const int64_t ts[] = {1000, 2000, 3000, 4005};
    static const double vs[] = {1.0, 1.0, 2.0, 2.0};
    xorchunk c;
    xorchunk_init(&c);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(xorchunk_append(&c, ts[i], vs[i]), 0);
    size_t len;
    const uint8_t *d = xorchunk_data(&c, &len);
    ck_assert_uint_eq(len, sizeof want);
    for (size_t i = 0; i < len; i++)
        ck_assert_msg(d[i] == want[i], "byte %zu: %02x want %02x", i, d[i], want[i]);
    xoriter it;
    xoriter_init(&it, want, sizeof want);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(xoriter_next(&it), 1);
        ck_assert_int_eq(it.t, ts[i]);
        ck_assert(it.v == vs[i]);
    }
    ck_assert_int_eq(xoriter_next(&it), 0);
    xorchunk_free(&c);
}
END_TEST

/* Encodes ts/vs, decodes, compares bit patterns. */
static void roundtrip(const int64_t *ts, const double *vs, size_t n) {
    xorchunk c;
    xorchunk_init(&c);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(xorchunk_append(&c, ts[i], vs[i]), 0);
    ck_assert_uint_eq(xorchunk_count(&c), n);
    ck_assert_int_eq(xorchunk_shrink(&c), 0);
    size_t len;
    const uint8_t *d = xorchunk_data(&c, &len);
    xoriter it;
    xoriter_init(&it, d, len);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(xoriter_next(&it), 1);
        ck_assert_msg(it.t == ts[i], "sample %zu: t %lld want %lld", i, (long long)it.t, (long long)ts[i]);
        ck_assert_msg(bits_of(it.v) == bits_of(vs[i]), "sample %zu: value bits differ", i);
    }
    ck_assert_int_eq(xoriter_next(&it), 0);
    ck_assert_int_eq(xoriter_next(&it), 0);
    /* load + continue equals a straight encode */
    if (n >= 2 && ts[n - 1] < INT64_MAX - 15000) {
        xorchunk l;
        ck_assert_int_eq(xorchunk_load(&l, d, len, NULL), 0);
        xorchunk s;
        xorchunk_init(&s);
        for (size_t i = 0; i < n; i++)
            ck_assert_int_eq(xorchunk_append(&s, ts[i], vs[i]), 0);
        ck_assert_int_eq(xorchunk_append(&l, ts[n - 1] + 15000, 42.5), 0);
        ck_assert_int_eq(xorchunk_append(&s, ts[n - 1] + 15000, 42.5), 0);
        size_t la, lb;
        const uint8_t *da = xorchunk_data(&l, &la), *db = xorchunk_data(&s, &lb);
        ck_assert_uint_eq(la, lb);
        ck_assert(memcmp(da, db, la) == 0);
        xorchunk_free(&l);
        xorchunk_free(&s);
    }
    xorchunk_free(&c);
}

START_TEST(test_special_values) {
    int64_t ts[16];
    double vs[16] = {NAN,
                     INFINITY,
                     -INFINITY,
                     from_bits(0x7ff0000000000002ULL),
                     -0.0,
                     0.0,
                     1.0,
                     1.0,
                     1.0,
                     -1e308,
                     5e-324,
                     1.7976931348623157e308,
                     3.14159,
                     NAN,
                     from_bits(0x7ff0000000000002ULL),
                     0};
    for (int i = 0; i < 16; i++)
        ts[i] = 1000 * i;
    roundtrip(ts, vs, 16);
}
END_TEST

START_TEST(test_timestamps) {
    /* negative and huge timestamps, every dod bucket and its edges */
    static const int64_t dods[] = {0,      1,       -1,        8191,         8192,   -8191,
                                   -8192,  65536,   -65535,    65537,        524288, -524287,
                                   524289, -524288, 1LL << 40, -(1LL << 40), 0};
    int64_t ts[40];
    double vs[40];
    size_t n = 0;
    int64_t t = -5000000000000LL, d = 3000000;
    ts[n] = t;
    vs[n++] = 1;
    for (size_t i = 0; i < sizeof dods / sizeof dods[0]; i++) {
        d += dods[i];
        t += d;
        ts[n] = t;
        vs[n] = (double)i;
        n++;
    }
    roundtrip(ts, vs, n);
    int64_t big[3] = {INT64_MAX - 30, INT64_MAX - 20, INT64_MAX - 1};
    double bv[3] = {1, 2, 3};
    roundtrip(big, bv, 3);
    int64_t small[3] = {INT64_MIN + 1, INT64_MIN + 10, INT64_MIN + 11};
    roundtrip(small, bv, 3);
    int64_t one[1] = {0};
    roundtrip(one, bv, 1);
}
END_TEST

/* Appends 120 samples of a random walk starting at t0 to c. */
static void fill_walk(xorchunk *c, int64_t t0, unsigned seed) {
    srand(seed);
    double v = rand() / 3.0;
    for (int i = 0; i < 120; i++) {
        v += (rand() % 2000 - 1000) / 8.0;
        ck_assert_int_eq(xorchunk_append(c, t0 + i * 15000 + rand() % 50, v), 0);
    }
}

/* A chunk on the slab allocator encodes the same bytes; reused for the next
 * chunk it keeps its memory and encodes that chunk as a fresh one would. */
START_TEST(test_slab_and_reuse) {
    xorchunk a, b;
    xorchunk_init(&a);
    xorchunk_init(&b);
    xorchunk_use_slab(&b);
    fill_walk(&a, 1000, 7);
    fill_walk(&b, 1000, 7);
    size_t la, lb;
    const uint8_t *da = xorchunk_data(&a, &la), *db = xorchunk_data(&b, &lb);
    ck_assert_uint_eq(la, lb);
    ck_assert_mem_eq(da, db, la);

    const uint8_t *mem = b.b;
    xorchunk_reuse(&b, lb + lb / 8);
    ck_assert_ptr_eq(b.b, mem);
    ck_assert_uint_eq(xorchunk_count(&b), 0);
    xorchunk_free(&a);
    fill_walk(&a, 5000000, 8);
    fill_walk(&b, 5000000, 8);
    da = xorchunk_data(&a, &la);
    db = xorchunk_data(&b, &lb);
    ck_assert_uint_eq(la, lb);
    ck_assert_mem_eq(da, db, la); /* nothing left over from the first chunk */
    ck_assert_int_eq(b.slabbed, 1);

    /* bytes far too many for the next chunk are freed */
    xorchunk_reuse(&b, lb / 4);
    ck_assert_ptr_null(b.b);
    ck_assert_int_eq(b.slabbed, 1);
    xorchunk_free(&a);
    xorchunk_free(&b);
}
END_TEST

/* A chunk trimmed by xorchunk_fit while open (as after a replay) keeps only
 * its bytes and the spare ones appending needs, and appending goes on to
 * the same bytes as in a chunk never trimmed, on malloc and on the slab. */
START_TEST(test_fit_then_append) {
    for (int slabbed = 0; slabbed < 2; slabbed++) {
        xorchunk a, b;
        xorchunk_init(&a);
        xorchunk_init(&b);
        if (slabbed)
            xorchunk_use_slab(&b);
        ck_assert_int_eq(xorchunk_fit(&b), 0); /* empty: nothing to do */
        ck_assert_ptr_null(b.b);
        srand(11);
        double v = 1;
        for (int i = 0; i < 240; i++) {
            v += (rand() % 1000) / 100.0;
            int64_t t = 1000 + i * 15000 + rand() % 50;
            ck_assert_int_eq(xorchunk_append(&a, t, v), 0);
            ck_assert_int_eq(xorchunk_append(&b, t, v), 0);
            if (i == 99 || i == 100 || i == 170) {
                xorchunk_expect(&b, 240); /* slack to take back */
                ck_assert_int_eq(xorchunk_fit(&b), 0);
                size_t need = (b.nbits + 7) / 8 + 9;
                ck_assert_uint_ge(b.cap, need);
                ck_assert_uint_lt(b.cap, need + 16);
            }
        }
        size_t la, lb;
        const uint8_t *da = xorchunk_data(&a, &la), *db = xorchunk_data(&b, &lb);
        ck_assert_uint_eq(la, lb);
        ck_assert_mem_eq(da, db, la);
        /* growing back after the trim took an eighth at a time, not half */
        ck_assert_uint_lt(b.cap, lb + lb / 4 + 64);
        xorchunk_free(&a);
        xorchunk_free(&b);
    }
}
END_TEST

START_TEST(test_random_walks) {
    srand(42);
    for (int round = 0; round < 20; round++) {
        static const size_t fixed[] = {1, 2, 120, 1000};
        size_t n = round < 4 ? fixed[round] : (size_t)(1 + rand() % 1000);
        int64_t *ts = malloc(n * sizeof *ts);
        double *vs = malloc(n * sizeof *vs);
        int64_t t = rand();
        double v = rand() / 7.0;
        for (size_t i = 0; i < n; i++) {
            t += 15000 + (rand() % 200) - 100;
            if (rand() % 3)
                v += (rand() % 2000 - 1000) / 8.0;
            if (round % 4 == 0)
                v = floor(v); /* integer counters */
            ts[i] = t;
            vs[i] = v;
        }
        roundtrip(ts, vs, n);
        free(ts);
        free(vs);
    }
}
END_TEST

START_TEST(test_equal_values_compress) {
    xorchunk c;
    xorchunk_init(&c);
    for (int i = 0; i < 120; i++)
        ck_assert_int_eq(xorchunk_append(&c, 1000000 + 15000 * i, 7), 0);
    size_t len;
    xorchunk_data(&c, &len);
    /* header + ~12 bytes for the first two samples + 2 bits per sample after */
    ck_assert_uint_le(len, 2 + 20 + 120 * 2 / 8 + 2);
    xorchunk_free(&c);
}
END_TEST

START_TEST(test_corrupt_and_truncated) {
    xorchunk c;
    xorchunk_init(&c);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(xorchunk_append(&c, 1000 * i + (i % 3) * 7, i * 1.5 + (i % 4)), 0);
    size_t len;
    const uint8_t *d = xorchunk_data(&c, &len);
    /* every truncation ends or reports corruption, never reads past len */
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *b = malloc(cut ? cut : 1);
        memcpy(b, d, cut);
        xoriter it;
        xoriter_init(&it, b, cut);
        int rc, got = 0;
        while ((rc = xoriter_next(&it)) == 1)
            got++;
        ck_assert(cut < 2 ? (rc == 0 && got == 0) : (rc == KILN_ECORRUPT && got < 50));
        if (cut >= 2) {
            xorchunk l;
            ck_assert_int_eq(xorchunk_load(&l, b, cut, NULL), KILN_ECORRUPT);
        }
        free(b);
    }
    /* a count beyond the data */
    uint8_t *b = malloc(len);
    memcpy(b, d, len);
    b[0] = 0xff;
    xoriter it;
    xoriter_init(&it, b, len);
    int rc;
    while ((rc = xoriter_next(&it)) == 1) {
    }
    ck_assert_int_eq(rc, KILN_ECORRUPT);
    free(b);
    xorchunk_free(&c);
}
END_TEST

/* A time delta of INT64_MAX then a dod of +1: the sums wrap like Go's int64
 * (no signed overflow; UBSan traps in this build if they do not). */
START_TEST(test_delta_overflow_wraps) {
    static const uint8_t b[] = {0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
                                0x78, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08};
    static const int64_t want[] = {0, INT64_MAX, -1};
    xoriter it;
    xoriter_init(&it, b, sizeof b);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(xoriter_next(&it), 1);
        ck_assert_int_eq(it.t, want[i]);
        ck_assert(it.v == 0);
    }
    ck_assert_int_eq(xoriter_next(&it), 0);
}
END_TEST

/* xorchunk_append_run writes the bytes xorchunk_append writes sample by
 * sample, stops where it must (an older or equal time, `until`, `upto`), and
 * continues where it stopped. */
START_TEST(test_append_run) {
    enum { N = 600 };
    static sample v[N];
    uint64_t x = 88172645463325252ull;
    int64_t t = -5000;
    double val = 1;
    for (size_t i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        /* intervals of every delta-of-delta size, values steady, repeated, jumping, special */
        static const int64_t steps[] = {15000, 15000, 15001, 14000, 30000, 100000, 700000, 15000, 5000000000};
        t += steps[x % 9];
        if (x % 5 == 0)
            val += (double)(x % 1000) / 7;
        else if (x % 5 == 1)
            val = -val * 1e12;
        else if (x % 97 == 2)
            val = NAN;
        v[i] = (sample){t, val};
    }
    xorchunk one, run;
    xorchunk_init(&one);
    xorchunk_init(&run);
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(xorchunk_append(&one, v[i].t, v[i].v), 0);
    /* fewer than two samples: nothing */
    ck_assert_int_eq(xorchunk_append_run(&run, v, N, INT64_MAX, 1000), 0);
    ck_assert_int_eq(xorchunk_append(&run, v[0].t, v[0].v), 0);
    ck_assert_int_eq(xorchunk_append_run(&run, v + 1, N - 1, INT64_MAX, 1000), 0);
    ck_assert_int_eq(xorchunk_append(&run, v[1].t, v[1].v), 0);
    /* stops before the count reaches upto */
    ck_assert_int_eq(xorchunk_append_run(&run, v + 2, N - 2, INT64_MAX, 10), 8);
    ck_assert_uint_eq(xorchunk_count(&run), 10);
    /* stops at a time not after the last one's, and at `until` */
    ck_assert_int_eq(xorchunk_append_run(&run, v + 9, N - 9, INT64_MAX, 1000), 0);
    ck_assert_int_eq(xorchunk_append_run(&run, v + 10, N - 10, v[20].t, 1000), 10);
    size_t i = 20;
    while (i < N) {
        int k = xorchunk_append_run(&run, v + i, (size_t)(x % 37) + 1 < N - i ? (size_t)(x % 37) + 1 : N - i,
                                    INT64_MAX, 1000);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ck_assert_int_gt(k, 0);
        i += (size_t)k;
    }
    size_t n1, n2;
    const uint8_t *b1 = xorchunk_data(&one, &n1), *b2 = xorchunk_data(&run, &n2);
    ck_assert_uint_eq(xorchunk_count(&run), N);
    ck_assert_uint_eq(n1, n2);
    ck_assert_int_eq(memcmp(b1, b2, n1), 0);
    /* and appending one by one goes on from there alike */
    ck_assert_int_eq(xorchunk_append(&one, t + 1, 3), 0);
    ck_assert_int_eq(xorchunk_append(&run, t + 1, 3), 0);
    b1 = xorchunk_data(&one, &n1);
    b2 = xorchunk_data(&run, &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_int_eq(memcmp(b1, b2, n1), 0);
    xorchunk_free(&one);
    xorchunk_free(&run);
}
END_TEST

START_TEST(test_seek) {
    xorchunk c;
    xorchunk_init(&c);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(xorchunk_append(&c, 10 * i, i), 0);
    size_t len;
    const uint8_t *d = xorchunk_data(&c, &len);
    xoriter it;
    xoriter_init(&it, d, len);
    ck_assert_int_eq(xoriter_seek(&it, 455), 1);
    ck_assert_int_eq(it.t, 460);
    ck_assert_int_eq(xoriter_seek(&it, 100), 1); /* stays */
    ck_assert_int_eq(it.t, 460);
    ck_assert_int_eq(xoriter_seek(&it, 990), 1);
    ck_assert(it.v == 99);
    ck_assert_int_eq(xoriter_seek(&it, 991), 0);
    xorchunk_free(&c);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("xorchunk");
    TCase *tc = tcase_create("xorchunk");
    tcase_add_test(tc, test_prometheus_bytes);
    tcase_add_test(tc, test_golden_bytes);
    tcase_add_test(tc, test_special_values);
    tcase_add_test(tc, test_timestamps);
    tcase_add_test(tc, test_random_walks);
    tcase_add_test(tc, test_equal_values_compress);
    tcase_add_test(tc, test_corrupt_and_truncated);
    tcase_add_test(tc, test_seek);
    tcase_add_test(tc, test_append_run);
    tcase_add_test(tc, test_delta_overflow_wraps);
    tcase_add_test(tc, test_slab_and_reuse);
    tcase_add_test(tc, test_fit_then_append);
    suite_add_tcase(s, tc);
    return s;
}
