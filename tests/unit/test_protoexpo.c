/*
 * test_protoexpo.c - the protobuf exposition parser (scrape/protoexpo.c):
 * what each metric type becomes (counters, gauges, untyped, summaries,
 * classic histograms with and without +Inf, integer and float native
 * histograms, gauge histograms) under the native/classic options, packed
 * and unpacked repeated fields, exemplars, every error, and the schema
 * reduction and limits of scrape configs (as Prometheus' ReduceResolution
 * and its bucket-limit and bucket-factor appenders).
 *
 * Bodies are written with a small protobuf encoder (pb_*) below; the parser's
 * entries are dumped one line each (see dump()) and compared as text.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "scrape/protoexpo.h"
#include "util/util.h"

#define KILN_TEST_MAIN
#include "testutil.h"

/* ---- a protobuf encoder ---------------------------------------------------- */

static void pb_tag(buf *b, unsigned f, int wt) {
    buf_put_uvarint(b, (uint64_t)f << 3 | (unsigned)wt);
}
static void pb_u(buf *b, unsigned f, uint64_t v) {
    pb_tag(b, f, 0);
    buf_put_uvarint(b, v);
}
static void pb_s(buf *b, unsigned f, int64_t v) {
    pb_u(b, f, (uint64_t)v << 1 ^ (uint64_t)(v >> 63));
}
static void pb_d(buf *b, unsigned f, double v) {
    pb_tag(b, f, 1);
    uint64_t x = double_to_bits(v);
    for (int i = 0; i < 8; i++)
        buf_putc(b, (char)(x >> (8 * i)));
}
static void pb_bytes(buf *b, unsigned f, const char *s, size_t n) {
    pb_tag(b, f, 2);
    buf_put_uvarint(b, n);
    buf_append(b, s, n);
}
static void pb_str(buf *b, unsigned f, const char *s) {
    pb_bytes(b, f, s, strlen(s));
}
/* Appends sub as field f and empties it. */
static void pb_msg(buf *b, unsigned f, buf *sub) {
    pb_bytes(b, f, sub->data ? sub->data : "", sub->len);
    buf_reset(sub);
}
static void pb_label(buf *b, unsigned f, const char *name, const char *value) {
    buf l = BUF_INIT;
    pb_str(&l, 1, name);
    pb_str(&l, 2, value);
    pb_msg(b, f, &l);
    buf_free(&l);
}
static void pb_span(buf *b, unsigned f, int32_t off, uint32_t len) {
    buf s = BUF_INIT;
    pb_s(&s, 1, off);
    pb_u(&s, 2, len);
    pb_msg(b, f, &s);
    buf_free(&s);
}
/* Appends family (a MetricFamily) length-delimited to body, empties it. */
static void delimited(buf *body, buf *family) {
    buf_put_uvarint(body, family->len);
    buf_append(body, family->data ? family->data : "", family->len);
    buf_reset(family);
}

/* ---- dumping what the parser returns ------------------------------------------ */

static void put_value(buf *b, double v) {
    if (isnan(v))
        buf_puts(b, "NaN");
    else if (isinf(v))
        buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    else {
        char t[FMT_DOUBLE_MAX];
        fmt_double_g(v, t);
        buf_puts(b, t);
    }
}

static void put_hist(buf *b, const histogram *h) {
    buf_printf(b, "schema=%d %s hint=%d zt=", h->schema, h->is_int ? "int" : "float", h->hint);
    put_value(b, h->zero_threshold);
    buf_puts(b, " zc=");
    put_value(b, h->zero_count);
    buf_puts(b, " count=");
    put_value(b, h->count);
    buf_puts(b, " sum=");
    put_value(b, h->sum);
    const hist_span *sp[2] = {h->pos_spans, h->neg_spans};
    uint32_t nsp[2] = {h->npos_spans, h->nneg_spans}, nc[2] = {h->npos, h->nneg};
    const double *c[2] = {h->pos, h->neg};
    for (int side = 0; side < 2; side++) {
        buf_puts(b, side ? " neg=" : " pos=");
        for (uint32_t i = 0; i < nsp[side]; i++)
            buf_printf(b, "%s%d:%u", i ? "," : "", sp[side][i].offset, sp[side][i].length);
        buf_puts(b, "/");
        for (uint32_t i = 0; i < nc[side]; i++) {
            if (i)
                buf_putc(b, ',');
            put_value(b, c[side][i]);
        }
    }
}

static const char *const type_names[] = {"untyped",        "counter", "gauge", "histogram",
                                         "gaugehistogram", "summary", "info",  "stateset"};

/*
 * One line per entry:
 *   S <metric>{name="value",...} <value> [@ts] [ex=<value>{labels}@ts]
 *   N <metric>{...} <histogram> [@ts]
 *   H <metric> <text>    T <metric> <type>    U <metric> <unit>
 * and "E <message>" on an error (which ends the dump).
 */
static char *dump(const buf *body, int native, int classic) {
    buf b = BUF_INIT;
    pexpo_opts o = {.native = native, .classic = classic};
    pexpo *p = pexpo_new(body->data, body->len, &o);
    ck_assert_ptr_nonnull(p);
    expo_entry kind;
    kiln_err err = {0};
    int rc;
    while ((rc = pexpo_next(p, &kind, &err)) == 1) {
        size_t n;
        const char *s = pexpo_metric(p, &n);
        switch ((int)kind) {
        case EXPO_HELP:
        case EXPO_UNIT: {
            size_t tn;
            const char *t = pexpo_text(p, &tn);
            buf_printf(&b, "%c %.*s %.*s\n", kind == EXPO_HELP ? 'H' : 'U', (int)n, s, (int)tn, t);
            break;
        }
        case EXPO_TYPE:
            buf_printf(&b, "T %.*s %s\n", (int)n, s, type_names[pexpo_metric_type(p)]);
            break;
        case EXPO_SAMPLE:
        case EXPO_NHIST: {
            buf_printf(&b, "%c %.*s{", kind == EXPO_SAMPLE ? 'S' : 'N', (int)n, s);
            const expo_label *ls;
            size_t nl = pexpo_labels(p, &ls);
            for (size_t i = 0; i < nl; i++)
                buf_printf(&b, "%s%.*s=\"%.*s\"", i ? "," : "", (int)ls[i].name_len, ls[i].name,
                           (int)ls[i].value_len, ls[i].value);
            buf_puts(&b, "} ");
            if (kind == EXPO_SAMPLE)
                put_value(&b, pexpo_value(p));
            else
                put_hist(&b, pexpo_histogram(p));
            int64_t ts;
            if (pexpo_timestamp(p, &ts))
                buf_printf(&b, " @%lld", (long long)ts);
            pexpo_ex ex;
            for (size_t i = 0; pexpo_exemplar(p, i, &ex, &err) == 1; i++) {
                buf_puts(&b, " ex=");
                put_value(&b, ex.value);
                buf_putc(&b, '{');
                for (size_t k = 0; k < ex.nls; k++)
                    buf_printf(&b, "%s%.*s=%.*s", k ? "," : "", (int)ex.ls[k].name_len, ex.ls[k].name,
                               (int)ex.ls[k].value_len, ex.ls[k].value);
                buf_putc(&b, '}');
                if (ex.has_ts)
                    buf_printf(&b, "@%lld", (long long)ex.ts_ms);
            }
            buf_putc(&b, '\n');
            /* the key is unique per series and never looks like a text series */
            size_t kl;
            const char *k = pexpo_series(p, &kl);
            ck_assert(kl > n && (unsigned char)k[0] == 0xff && memcmp(k + 1, s, n) == 0);
            break;
        }
        default:
            ck_abort_msg("unexpected kind %d", kind);
        }
    }
    if (rc < 0) {
        ck_assert_int_eq(err.code, rc);
        buf_printf(&b, "E %s\n", err.msg);
        kiln_err again = {0};
        ck_assert_int_lt(pexpo_next(p, &kind, &again), 0); /* stays failed */
    }
    pexpo_free(p);
    ck_assert_int_eq(buf_error(&b), 0);
    buf_putc(&b, 0);
    return buf_steal(&b);
}

#define CHECK_DUMP(body, native, classic, want)                                                              \
    do {                                                                                                     \
        char *got_ = dump(body, native, classic);                                                            \
        ck_assert_str_eq(got_, want);                                                                        \
        free(got_);                                                                                          \
    } while (0)

/* ---- bodies ------------------------------------------------------------------------ */

START_TEST(simple_types) {
    buf body = BUF_INIT, fam = BUF_INIT, m = BUF_INIT, v = BUF_INIT, ex = BUF_INIT, ts = BUF_INIT;
    /* a counter with an exemplar and a timestamp */
    pb_str(&fam, 1, "requests_total");
    pb_str(&fam, 2, "Requests.");
    pb_u(&fam, 3, 0);
    pb_label(&m, 1, "code", "200");
    pb_label(&m, 1, "path", "/a \"b\"");
    pb_d(&v, 1, 42);
    pb_label(&ex, 1, "trace_id", "abc");
    pb_d(&ex, 2, 0.5);
    pb_u(&ts, 1, 1700000000);
    pb_u(&ts, 2, 250000000);
    pb_msg(&ex, 3, &ts);
    pb_msg(&v, 2, &ex);
    pb_msg(&m, 3, &v);
    pb_u(&m, 6, 1234);
    pb_msg(&fam, 4, &m);
    pb_d(&v, 1, 1); /* a second metric without labels */
    pb_msg(&m, 3, &v);
    pb_msg(&fam, 4, &m);
    delimited(&body, &fam);
    /* a gauge, fields out of order, with a unit and a field kiln does not know */
    pb_d(&v, 1, -1.5);
    pb_msg(&m, 2, &v);
    pb_u(&m, 99, 7);
    pb_msg(&fam, 4, &m);
    pb_u(&fam, 3, 1);
    pb_str(&fam, 5, "seconds");
    pb_str(&fam, 1, "temp");
    delimited(&body, &fam);
    /* untyped with a NaN value, and a counter family whose metric has a gauge field only */
    pb_str(&fam, 1, "u");
    pb_u(&fam, 3, 3);
    pb_d(&v, 1, NAN);
    pb_msg(&m, 5, &v);
    pb_msg(&fam, 4, &m);
    delimited(&body, &fam);
    pb_str(&fam, 1, "c");
    pb_d(&v, 1, 5);
    pb_msg(&m, 2, &v);
    pb_msg(&fam, 4, &m);
    delimited(&body, &fam);
    CHECK_DUMP(
        &body, 1, 0,
        "H requests_total Requests.\n"
        "T requests_total counter\n"
        "S requests_total{code=\"200\",path=\"/a \"b\"\"} 42 @1234 ex=0.5{trace_id=abc}@1700000000250\n"
        "S requests_total{} 1\n"
        "T temp gauge\n"
        "U temp seconds\n"
        "S temp{} -1.5\n"
        "T u untyped\n"
        "S u{} NaN\n"
        "T c counter\n"
        "S c{} 0\n");
    /* the NaN is Prometheus' canonical one, not the stale marker */
    pexpo_opts o = {0};
    pexpo *p = pexpo_new(body.data, body.len, &o);
    expo_entry k;
    kiln_err err = {0};
    int rc;
    while ((rc = pexpo_next(p, &k, &err)) == 1) {
        size_t n;
        const char *s = pexpo_metric(p, &n);
        if (k == EXPO_SAMPLE && n == 1 && s[0] == 'u')
            ck_assert_uint_eq(double_to_bits(pexpo_value(p)), 0x7ff8000000000001ULL);
    }
    ck_assert_int_eq(rc, 0);
    pexpo_free(p);
    buf_free(&body), buf_free(&fam), buf_free(&m), buf_free(&v), buf_free(&ex), buf_free(&ts);
}
END_TEST

START_TEST(summary) {
    buf body = BUF_INIT, fam = BUF_INIT, m = BUF_INIT, s = BUF_INIT, q = BUF_INIT;
    pb_str(&fam, 1, "rpc");
    pb_u(&fam, 3, 2);
    pb_label(&m, 1, "svc", "x");
    pb_u(&s, 1, 10);
    pb_d(&s, 2, 3.5);
    pb_d(&q, 1, 0.5);
    pb_d(&q, 2, 0.25);
    pb_msg(&s, 3, &q);
    pb_d(&q, 1, 1);
    pb_d(&q, 2, 0.75);
    pb_msg(&s, 3, &q);
    pb_msg(&m, 4, &s);
    pb_msg(&fam, 4, &m);
    delimited(&body, &fam);
    CHECK_DUMP(&body, 1, 1,
               "T rpc summary\n"
               "S rpc_count{svc=\"x\"} 10\n"
               "S rpc_sum{svc=\"x\"} 3.5\n"
               "S rpc{svc=\"x\",quantile=\"0.5\"} 0.25\n"
               "S rpc{svc=\"x\",quantile=\"1.0\"} 0.75\n");
    buf_free(&body), buf_free(&fam), buf_free(&m), buf_free(&s), buf_free(&q);
}
END_TEST

/* A classic histogram: buckets 0.1 and 1 (no +Inf), one with an exemplar. */
static void classic_family(buf *body, const char *name, int with_inf) {
    buf fam = BUF_INIT, m = BUF_INIT, h = BUF_INIT, bk = BUF_INIT, ex = BUF_INIT;
    pb_str(&fam, 1, name);
    pb_u(&fam, 3, 4);
    pb_u(&h, 1, 5);
    pb_d(&h, 2, 2.5);
    pb_u(&bk, 1, 1);
    pb_d(&bk, 2, 0.1);
    pb_msg(&h, 3, &bk);
    pb_u(&bk, 1, 4);
    pb_d(&bk, 2, 1);
    pb_label(&ex, 1, "t", "x");
    pb_d(&ex, 2, 0.7);
    pb_msg(&bk, 3, &ex);
    pb_msg(&h, 3, &bk);
    if (with_inf) {
        pb_u(&bk, 1, 5);
        pb_d(&bk, 2, INFINITY);
        pb_msg(&h, 3, &bk);
    }
    pb_msg(&m, 7, &h);
    pb_msg(&fam, 4, &m);
    delimited(body, &fam);
    buf_free(&fam), buf_free(&m), buf_free(&h), buf_free(&bk), buf_free(&ex);
}

START_TEST(classic_histogram) {
    buf body = BUF_INIT;
    classic_family(&body, "lat", 0);
    classic_family(&body, "lat2", 1);
    static const char want[] = "T lat histogram\n"
                               "S lat_count{} 5\n"
                               "S lat_sum{} 2.5\n"
                               "S lat_bucket{le=\"0.1\"} 1\n"
                               "S lat_bucket{le=\"1.0\"} 4 ex=0.7{t=x}\n"
                               "S lat_bucket{le=\"+Inf\"} 5\n"
                               "T lat2 histogram\n"
                               "S lat2_count{} 5\n"
                               "S lat2_sum{} 2.5\n"
                               "S lat2_bucket{le=\"0.1\"} 1\n"
                               "S lat2_bucket{le=\"1.0\"} 4 ex=0.7{t=x}\n"
                               "S lat2_bucket{le=\"+Inf\"} 5\n";
    /* native histograms on or off: a classic one is classic */
    CHECK_DUMP(&body, 1, 0, want);
    CHECK_DUMP(&body, 0, 0, want);
    buf_free(&body);
}
END_TEST

/*
 * A native integer histogram, schema 0: positive buckets at indices 0, 1 and
 * 4, 5 (spans 0:2 and 2:2) with deltas 2,1,-2,3 (counts 2,3,1,4); a negative
 * bucket at -1 (count 1, a packed delta); zero bucket 2; and optionally one
 * classic bucket.
 */
static void native_family(buf *body, int type, int classic_bucket, int packed) {
    buf fam = BUF_INIT, m = BUF_INIT, h = BUF_INIT, bk = BUF_INIT, pk = BUF_INIT;
    pb_str(&fam, 1, "nh");
    pb_u(&fam, 3, (uint64_t)type);
    pb_label(&m, 1, "job", "a");
    pb_u(&h, 1, 13);
    pb_d(&h, 2, 42.5);
    pb_s(&h, 5, 0);
    pb_d(&h, 6, 0.001);
    pb_u(&h, 7, 2);
    pb_span(&h, 12, 0, 2);
    pb_span(&h, 12, 2, 2);
    if (packed) {
        int64_t d[] = {2, 1, -2, 3};
        for (int i = 0; i < 4; i++)
            buf_put_uvarint(&pk, (uint64_t)d[i] << 1 ^ (uint64_t)(d[i] >> 63));
        pb_msg(&h, 13, &pk);
    } else {
        pb_s(&h, 13, 2);
        pb_s(&h, 13, 1);
        pb_s(&h, 13, -2);
        pb_s(&h, 13, 3);
    }
    pb_span(&h, 9, -1, 1);
    buf_put_uvarint(&pk, 2); /* zigzag(1) */
    pb_msg(&h, 10, &pk);
    if (classic_bucket) {
        pb_u(&bk, 1, 6);
        pb_d(&bk, 2, 1);
        pb_msg(&h, 3, &bk);
    }
    pb_msg(&m, 7, &h);
    pb_u(&m, 6, 5000);
    pb_msg(&fam, 4, &m);
    delimited(body, &fam);
    buf_free(&fam), buf_free(&m), buf_free(&h), buf_free(&bk), buf_free(&pk);
}

START_TEST(native_histogram) {
    buf body = BUF_INIT;
    native_family(&body, 4, 0, 1);
    CHECK_DUMP(&body, 1, 1,
               "T nh histogram\n"
               "N nh{job=\"a\"} schema=0 int hint=0 zt=0.001 zc=2 count=13 sum=42.5 pos=0:2,2:2/2,3,1,4 "
               "neg=-1:1/1 @5000\n");
    /* native histograms off: its classic side, only the +Inf bucket */
    CHECK_DUMP(&body, 0, 0,
               "T nh histogram\n"
               "S nh_count{job=\"a\"} 13 @5000\n"
               "S nh_sum{job=\"a\"} 42.5 @5000\n"
               "S nh_bucket{job=\"a\",le=\"+Inf\"} 13 @5000\n");
    buf_reset(&body);
    /* unpacked deltas, a gauge histogram, and a classic bucket */
    native_family(&body, 5, 1, 0);
    static const char nat[] = "T nh gaugehistogram\n"
                              "N nh{job=\"a\"} schema=0 int hint=3 zt=0.001 zc=2 count=13 sum=42.5 "
                              "pos=0:2,2:2/2,3,1,4 neg=-1:1/1 @5000\n";
    CHECK_DUMP(&body, 1, 0, nat);
    /* always_scrape_classic_histograms: the classic series follow */
    char want[1024];
    snprintf(want, sizeof want,
             "%sS nh_count{job=\"a\"} 13 @5000\n"
             "S nh_sum{job=\"a\"} 42.5 @5000\n"
             "S nh_bucket{job=\"a\",le=\"1.0\"} 6 @5000\n"
             "S nh_bucket{job=\"a\",le=\"+Inf\"} 13 @5000\n",
             nat);
    CHECK_DUMP(&body, 1, 1, want);
    buf_free(&body);
}
END_TEST

START_TEST(float_histogram) {
    buf body = BUF_INIT, fam = BUF_INIT, m = BUF_INIT, h = BUF_INIT, pk = BUF_INIT, ex = BUF_INIT;
    pb_str(&fam, 1, "fh");
    pb_u(&fam, 3, 4);
    pb_d(&h, 4, 7.5); /* sample_count_float */
    pb_d(&h, 2, 1);
    pb_s(&h, 5, 3);
    pb_d(&h, 8, 0.5); /* zero_count_float */
    pb_span(&h, 12, 3, 2);
    pb_d(&h, 14, 1.5); /* unpacked counts */
    pb_d(&h, 14, 5.5);
    pb_label(&ex, 1, "id", "1");
    pb_d(&ex, 2, 9);
    pb_msg(&h, 16, &ex);
    pb_label(&ex, 1, "id", "2");
    pb_d(&ex, 2, 10);
    pb_msg(&h, 16, &ex);
    pb_msg(&m, 7, &h);
    pb_msg(&fam, 4, &m);
    delimited(&body, &fam);
    CHECK_DUMP(&body, 1, 0,
               "T fh histogram\n"
               "N fh{} schema=3 float hint=0 zt=0 zc=0.5 count=7.5 sum=1 pos=3:2/1.5,5.5 neg=/ "
               "ex=9{id=1} ex=10{id=2}\n");
    /* packed counts read the same */
    buf_reset(&body);
    pb_str(&fam, 1, "fh");
    pb_u(&fam, 3, 4);
    pb_d(&h, 4, 7.5);
    pb_s(&h, 5, 3);
    pb_d(&h, 8, 0.5);
    pb_span(&h, 12, 3, 2);
    double c[] = {1.5, 5.5};
    for (int i = 0; i < 2; i++) {
        uint64_t x = double_to_bits(c[i]);
        for (int k = 0; k < 8; k++)
            buf_putc(&pk, (char)(x >> (8 * k)));
    }
    pb_msg(&h, 14, &pk);
    pb_msg(&m, 7, &h);
    pb_msg(&fam, 4, &m);
    delimited(&body, &fam);
    CHECK_DUMP(&body, 1, 0,
               "T fh histogram\n"
               "N fh{} schema=3 float hint=0 zt=0 zc=0.5 count=7.5 sum=0 pos=3:2/1.5,5.5 neg=/\n");
    buf_free(&body), buf_free(&fam), buf_free(&m), buf_free(&h), buf_free(&pk), buf_free(&ex);
}
END_TEST

/* A native histogram with no observations yet is native by its zero threshold. */
START_TEST(empty_native) {
    buf body = BUF_INIT, fam = BUF_INIT, m = BUF_INIT, h = BUF_INIT;
    pb_str(&fam, 1, "e");
    pb_u(&fam, 3, 4);
    pb_d(&h, 6, 1e-128);
    pb_s(&h, 5, 3);
    pb_span(&h, 12, 0, 0);
    pb_msg(&m, 7, &h);
    pb_msg(&fam, 4, &m);
    delimited(&body, &fam);
    CHECK_DUMP(&body, 1, 1,
               "T e histogram\n"
               "N e{} schema=3 int hint=0 zt=1e-128 zc=0 count=0 sum=0 pos=0:0/ neg=/\n");
    buf_free(&body), buf_free(&fam), buf_free(&m), buf_free(&h);
}
END_TEST

START_TEST(errors) {
    static const struct {
        const char *body;
        size_t len;
        const char *err;
    } cases[] = {
        /* a length past the end */
        {"\x05\x0a\x01x", 4, "metric family 1 (\"\"): truncated length-delimited record"},
        /* no name */
        {"\x02\x18\x01", 3, "metric family 1 (\"\"): missing metric family name"},
        /* type 9 */
        {"\x05\x0a\x01x\x18\x09", 6, "metric family 1 (\"x\"): unknown metric type 9"},
        /* name with wire type 0 */
        {"\x02\x08\x01", 3, "metric family 1 (\"\"): malformed field 1 of MetricFamily"},
        /* invalid UTF-8 in the name */
        {"\x03\x0a\x01\xff", 4,
         "metric family 1 (\"\xff\"): invalid UTF-8 or a NUL byte in the name, help or unit"},
        /* a metric with a label without a name: Metric{label{value "v"}} */
        {"\x0b\x0a\x01x\x22\x06\x0a\x04\x12\x02vv", 12,
         "metric family 1 (\"x\"): metric 1: empty label name"},
        /* a truncated Metric */
        {"\x07\x0a\x01x\x22\x02\x0a\x05", 8, "metric family 1 (\"x\"): metric 1: malformed Metric message"},
        /* a field number 0 */
        {"\x02\x00\x00", 3, "metric family 1 (\"\"): malformed MetricFamily"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf b = BUF_INIT;
        buf_append(&b, cases[i].body, cases[i].len);
        char *got = dump(&b, 1, 0);
        char want[512];
        snprintf(want, sizeof want, "%sE %s\n", strstr(cases[i].err, "metric 1:") ? "T x counter\n" : "",
                 cases[i].err);
        ck_assert_msg(strcmp(got, want) == 0, "case %zu: got %s want %s", i, got, want);
        free(got);
        buf_free(&b);
    }
    /* spans that disagree with the deltas */
    buf body = BUF_INIT, fam = BUF_INIT, m = BUF_INIT, h = BUF_INIT;
    pb_str(&fam, 1, "bad");
    pb_u(&fam, 3, 4);
    pb_u(&h, 1, 3);
    pb_span(&h, 12, 0, 3);
    pb_s(&h, 13, 1);
    pb_msg(&m, 7, &h);
    pb_msg(&fam, 4, &m);
    delimited(&body, &fam);
    CHECK_DUMP(&body, 1, 0,
               "T bad histogram\n"
               "E metric family 1 (\"bad\"): metric 1: the spans cover 3 buckets but 1 deltas are given\n");
    /* native off: the same body is a classic histogram, no error */
    CHECK_DUMP(&body, 0, 0, "T bad histogram\nS bad_count{} 3\nS bad_sum{} 0\nS bad_bucket{le=\"+Inf\"} 3\n");
    buf_free(&body), buf_free(&fam), buf_free(&m), buf_free(&h);
    /* an empty body is no families */
    buf e = BUF_INIT;
    CHECK_DUMP(&e, 1, 0, "");
}
END_TEST

/* ---- schema reduction and limits --------------------------------------------------- */

/* Prometheus' TestReduceResolution case: schema 0 -> -1. */
START_TEST(reduce_resolution) {
    hist_span pos[] = {{0, 4}, {0, 0}, {3, 2}}, neg[] = {{-2, 2}};
    double pc[] = {1, 2, 3, 4, 5, 6}, nc[] = {1, 1};
    histogram h = {.schema = 0,
                   .pos_spans = pos,
                   .npos_spans = 3,
                   .pos = pc,
                   .npos = 6,
                   .neg_spans = neg,
                   .nneg_spans = 1,
                   .neg = nc,
                   .nneg = 2};
    hist_reduce_resolution(&h, -1);
    buf b = BUF_INIT;
    put_hist(&b, &h);
    buf_putc(&b, 0);
    /* negative indices -2 and -1 -> ((-3)>>1)+1 = -1 and ((-2)>>1)+1 = 0 */
    ck_assert_str_eq(b.data,
                     "schema=-1 float hint=0 zt=0 zc=0 count=0 sum=0 pos=0:3,1:1/1,5,4,11 neg=-1:2/1,1");
    buf_free(&b);
}
END_TEST

START_TEST(limits) {
    /* schema 3, 8 buckets in a row at 1..8 */
    hist_span sp[1];
    double c[8];
    histogram h;
#define FRESH(sch)                                                                                           \
    do {                                                                                                     \
        sp[0] = (hist_span){1, 8};                                                                           \
        for (int i = 0; i < 8; i++)                                                                          \
            c[i] = i + 1;                                                                                    \
        h = (histogram){.schema = (sch), .pos_spans = sp, .npos_spans = 1, .pos = c, .npos = 8};             \
    } while (0)
    FRESH(3);
    ck_assert_int_eq(hist_apply_limits(&h, 0, 0), 0);
    ck_assert_int_eq(h.schema, 3); /* no limits, nothing changes */
    ck_assert_uint_eq(h.npos, 8);
    /* factor 2: schema 0; indices 1..8 -> 1,1,1,1,1,1,1,1? ((i-1)>>3)+1 = 1 for 1..8 */
    FRESH(3);
    ck_assert_int_eq(hist_apply_limits(&h, 0, 2), 0);
    ck_assert_int_eq(h.schema, 0);
    ck_assert_uint_eq(h.npos, 1);
    ck_assert(h.pos[0] == 36);
    /* factor 1.1: schema 2 (the docs' table) */
    FRESH(3);
    ck_assert_int_eq(hist_apply_limits(&h, 0, 1.1), 0);
    ck_assert_int_eq(h.schema, 2);
    ck_assert_uint_eq(h.npos, 4); /* 1..8 -> 1,1,2,2,3,3,4,4 */
    ck_assert(h.pos[0] == 3 && h.pos[3] == 15);
    /* factor 65536 and beyond: schema -4 at most */
    FRESH(3);
    ck_assert_int_eq(hist_apply_limits(&h, 0, 1e10), 0);
    ck_assert_int_eq(h.schema, -4);
    /* bucket limit 4: down one schema */
    FRESH(3);
    ck_assert_int_eq(hist_apply_limits(&h, 4, 0), 0);
    ck_assert_int_eq(h.schema, 2);
    ck_assert_uint_eq(h.npos, 4);
    /* bucket limit 2: down to schema 1 (1..8 -> 1,1,1,1,2,2,2,2) */
    FRESH(3);
    ck_assert_int_eq(hist_apply_limits(&h, 2, 0), 0);
    ck_assert_int_eq(h.schema, 1);
    ck_assert_uint_eq(h.npos, 2);
    /* a schema above 8 is lowered to 8 */
    FRESH(12);
    ck_assert_int_eq(hist_apply_limits(&h, 0, 0), 0);
    ck_assert_int_eq(h.schema, 8);
    ck_assert_uint_eq(h.npos, 1);
    /* schema 53 and -5 are not known */
    FRESH(53);
    ck_assert_int_eq(hist_apply_limits(&h, 0, 0), KILN_EINVAL);
    FRESH(-5);
    ck_assert_int_eq(hist_apply_limits(&h, 0, 0), KILN_EINVAL);
    /* a limit schema -4 cannot meet: 2 buckets far apart */
    sp[0] = (hist_span){1, 1};
    hist_span two[2] = {{1, 1}, {1000000, 1}};
    double cc[2] = {1, 1};
    h = (histogram){.schema = 0, .pos_spans = two, .npos_spans = 2, .pos = cc, .npos = 2};
    ck_assert_int_eq(hist_apply_limits(&h, 1, 0), KILN_ELIMIT);
    /* custom buckets over the limit fail, under it pass */
    double bounds[] = {1, 2};
    h = (histogram){.schema = HIST_SCHEMA_CUSTOM,
                    .pos_spans = two,
                    .npos_spans = 1,
                    .pos = cc,
                    .npos = 2,
                    .custom_values = bounds,
                    .ncustom = 2};
    ck_assert_int_eq(hist_apply_limits(&h, 1, 0), KILN_ELIMIT);
    ck_assert_int_eq(hist_apply_limits(&h, 2, 2), 0);
#undef FRESH
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("protoexpo");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, simple_types);
    tcase_add_test(tc, summary);
    tcase_add_test(tc, classic_histogram);
    tcase_add_test(tc, native_histogram);
    tcase_add_test(tc, float_histogram);
    tcase_add_test(tc, empty_native);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, reduce_resolution);
    tcase_add_test(tc, limits);
    suite_add_tcase(s, tc);
    return s;
}
