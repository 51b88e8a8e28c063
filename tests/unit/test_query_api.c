/*
 * test_query_api.c - the /api/v1 query handlers' pieces: timestamp, duration
 * and step parsing as Prometheus does it, JSON time and value formatting,
 * U__ label-name unescaping.
 */
#include <math.h>
#include <string.h>

#include "api/api.h"
#include "storage/storage.h"

#define KILN_TEST_MAIN
#include "testutil.h"

START_TEST(test_parse_time) {
    static const struct {
        const char *in;
        int64_t ms;
        int ok;
    } cases[] = {
        {"0", 0, 1},
        {"1435781451", 1435781451000LL, 1},
        {"1435781451.781", 1435781451781LL, 1},
        {"1435781451.7815", 1435781451782LL, 1}, /* rounded to the millisecond */
        {"1435781451.7814", 1435781451781LL, 1},
        {"1.5e9", 1500000000000LL, 1},
        {"-1.5", -1500, 1},
        {"-0.001", -1, 1},
        {"2015-07-01T20:10:51.781Z", 1435781451781LL, 1},
        {"2015-07-01T20:10:51Z", 1435781451000LL, 1},
        {"2015-07-01T20:10:51.7819999Z", 1435781451781LL, 1}, /* truncated, as time.Time -> ms */
        {"2015-07-01T22:10:51.781+02:00", 1435781451781LL, 1},
        {"2015-07-01T18:40:51-01:30", 1435781451000LL, 1},
        {"1970-01-01T00:00:00Z", 0, 1},
        {"2000-02-29T00:00:00Z", 951782400000LL, 1},
        {"-292273086-05-16T16:47:06Z", API_V1_MIN_TIME_MS, 1},
        {"292277025-08-18T07:12:54.999999999Z", API_V1_MAX_TIME_MS, 1},
        {"", 0, 0},
        {"x", 0, 0},
        {" 1", 0, 0},
        {"1 ", 0, 0},
        {"NaN", 0, 0},
        {"2015-07-01", 0, 0},
        {"2015-07-01T20:10:51", 0, 0},  /* no zone */
        {"2015-07-01 20:10:51Z", 0, 0}, /* space for T */
        {"2015-02-29T00:00:00Z", 0, 0}, /* not a leap year */
        {"2015-13-01T00:00:00Z", 0, 0},
        {"2015-07-01T24:00:00Z", 0, 0},
        {"2015-07-01T20:10:51.Z", 0, 0},
        {"2015-07-01T20:10:51+0200", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ms = -7;
        kiln_err err = {0};
        int rc = api_v1_parse_time(cases[i].in, &ms, &err);
        if (cases[i].ok) {
            ck_assert_msg(rc == 0, "%s: %s", cases[i].in, err.msg);
            ck_assert_msg(ms == cases[i].ms, "%s: got %lld want %lld", cases[i].in, (long long)ms,
                          (long long)cases[i].ms);
        } else {
            ck_assert_msg(rc == KILN_EINVAL, "%s accepted as %lld", cases[i].in, (long long)ms);
            char want[128];
            snprintf(want, sizeof want, "cannot parse \"%s\" to a valid timestamp", cases[i].in);
            ck_assert_str_eq(err.msg, want);
        }
    }
}
END_TEST

START_TEST(test_parse_duration) {
    static const struct {
        const char *in;
        int64_t ns;
        int ok;
    } cases[] = {
        {"15", 15000000000LL, 1},
        {"15s", 15000000000LL, 1},
        {"1m30s", 90000000000LL, 1},
        {"0.5", 500000000LL, 1},
        {"90.5", 90500000000LL, 1},
        {"0.0001", 100000LL, 1}, /* below a millisecond: still positive */
        {"0", 0, 1},
        {"-15", -15000000000LL, 1}, /* negative floats parse; the step check rejects them */
        {"1e-3", 1000000LL, 1},
        {"500ms", 500000000LL, 1},
        {"1d", 86400000000000LL, 1},
        {"", 0, 0},
        {"fast", 0, 0},
        {"1.5m", 0, 0},
        {"-1m", 0, 0},
        {"15 s", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ns = -7;
        kiln_err err = {0};
        int rc = api_v1_parse_duration(cases[i].in, &ns, &err);
        if (cases[i].ok) {
            ck_assert_msg(rc == 0, "%s: %s", cases[i].in, err.msg);
            ck_assert_msg(ns == cases[i].ns, "%s: got %lld", cases[i].in, (long long)ns);
        } else {
            ck_assert_msg(rc == KILN_EINVAL, "%s accepted", cases[i].in);
            char want[128];
            snprintf(want, sizeof want, "cannot parse \"%s\" to a valid duration", cases[i].in);
            ck_assert_str_eq(err.msg, want);
        }
    }
    int64_t ns = 0;
    kiln_err err = {0};
    ck_assert_int_eq(api_v1_parse_duration("1e12", &ns, &err), KILN_EINVAL);
    ck_assert_str_eq(err.msg, "cannot parse \"1e12\" to a valid duration. It overflows int64");
}
END_TEST

START_TEST(test_json_time) {
    static const struct {
        int64_t ms;
        const char *out;
    } cases[] = {
        {0, "0"},
        {1435781430781LL, "1435781430.781"},
        {1435781430100LL, "1435781430.100"}, /* zeros kept, as Prometheus writes them */
        {1435781430001LL, "1435781430.001"},
        {1435781430000LL, "1435781430"},
        {-1500, "-1.500"},
        {-1, "-0.001"},
        {INT64_MIN, "-9223372036854775.808"},
        {INT64_MAX, "9223372036854775.807"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf b = BUF_INIT;
        api_v1_json_time(&b, cases[i].ms);
        ck_assert_str_eq(b.data, cases[i].out);
        buf_free(&b);
    }
}
END_TEST

START_TEST(test_json_value) {
    static const struct {
        double v;
        const char *out;
    } cases[] = {
        {1, "\"1\""},
        {0.5, "\"0.5\""},
        {-0.0, "\"-0\""},
        {1e21, "\"1e+21\""},
        {1e20, "\"100000000000000000000\""},
        {1.25e-7, "\"1.25e-07\""},
        {4.4e-07, "\"4.4e-07\""},
        {1e-6, "\"0.000001\""},
        {-2.5e-9, "\"-2.5e-09\""},
        {0.1 + 0.2, "\"0.30000000000000004\""},
        {NAN, "\"NaN\""},
        {INFINITY, "\"+Inf\""},
        {-INFINITY, "\"-Inf\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf b = BUF_INIT;
        api_v1_json_value(&b, cases[i].v);
        ck_assert_str_eq(b.data, cases[i].out);
        buf_free(&b);
    }
}
END_TEST

START_TEST(test_json_histogram) {
    /* schema 0: zero bucket [-0.001,0.001], (0.5,1], (1,2]; negative [-1,-0.5) */
    hist_span ps = {0, 3}, ns = {0, 1};
    double pos[] = {1, 0, 2}, neg[] = {3};
    histogram h;
    memset(&h, 0, sizeof h);
    h.count = 8;
    h.sum = 2.5;
    h.zero_threshold = 0.001;
    h.zero_count = 2;
    h.pos_spans = &ps;
    h.npos_spans = 1;
    h.pos = pos;
    h.npos = 3;
    h.neg_spans = &ns;
    h.nneg_spans = 1;
    h.neg = neg;
    h.nneg = 1;
    buf b = BUF_INIT;
    api_v1_json_histogram(&b, &h);
    ck_assert_str_eq(b.data,
                     "{\"count\":\"8\",\"sum\":\"2.5\",\"buckets\":[[1,\"-1\",\"-0.5\",\"3\"],"
                     "[3,\"-0.001\",\"0.001\",\"2\"],[0,\"0.5\",\"1\",\"1\"],[0,\"2\",\"4\",\"2\"]]}");
    /* no buckets: no "buckets" key */
    histogram e;
    memset(&e, 0, sizeof e);
    buf_reset(&b);
    api_v1_json_histogram(&b, &e);
    ck_assert_str_eq(b.data, "{\"count\":\"0\",\"sum\":\"0\"}");
    buf_free(&b);
}
END_TEST

START_TEST(test_unescape_name) {
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"job", "job"},
        {"U__job", "job"},
        {"U__http_2e_status__code", "http.status_code"},
        {"U______name____", "__name__"},
        {"U___2603_", "\xe2\x98\x83"},
        {"U___1f600_", "\xf0\x9f\x98\x80"},
        {"U__a_", "U__a_"},                 /* dangling underscore: as written */
        {"U__a_zz_", "U__a_zz_"},           /* not hex */
        {"U__a_1234567_", "U__a_1234567_"}, /* too long */
        {"U__a_d800_", "U__a_d800_"},       /* a surrogate is no rune */
        {"U__a_2e", "U__a_2e"},             /* unclosed */
    };
    arena a;
    arena_init(&a, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_str_eq(api_v1_unescape_name(&a, cases[i].in), cases[i].out);
    arena_free(&a);
}
END_TEST

START_TEST(test_context) {
    api_v1_opts o;
    api_v1_opts_default(&o);
    ck_assert_int_eq(o.lookback_delta_ms, 5 * 60 * 1000);
    ck_assert_int_eq(o.timeout_ms, 2 * 60 * 1000);
    ck_assert_uint_eq(o.max_samples, 50000000);
    api_v1 *a = NULL;
    ck_assert_int_eq(api_v1_new(&o, &a), 0);
    ck_assert_ptr_nonnull(a);
    api_v1_set_storage(a, NULL);
    api_v1_free(a);
    api_v1_free(NULL);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("query_api");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_parse_time);
    tcase_add_test(tc, test_parse_duration);
    tcase_add_test(tc, test_json_time);
    tcase_add_test(tc, test_json_value);
    tcase_add_test(tc, test_unescape_name);
    tcase_add_test(tc, test_json_histogram);
    tcase_add_test(tc, test_context);
    suite_add_tcase(s, tc);
    return s;
}
