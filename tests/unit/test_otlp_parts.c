/*
 * test_otlp_parts.c - the OTLP receiver's one-pass protobuf decoder
 * (api/otlp_pb.c) against protobuf-c's own unpack: random
 * ExportMetricsServiceRequests (every metric kind, nested attribute values,
 * exemplars with ids, packed arrays) packed by protoc-c, decoded by both and
 * packed again must give the same bytes; so must random corruptions of them
 * whenever both decoders accept one, and both must accept and refuse the
 * same inputs.  Then the corners protobuf-c's packer never writes: unpacked
 * repeated numbers, a oneof given as one member then another, a message
 * given twice (merged), unknown fields; the JSON decoder (api/otlp_json.c)
 * on the OTLP/HTTP JSON mapping; and histogram points as native histograms
 * (api/otlp_hist.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/otlp.pb-c.h"
#include "api/otlp_private.h"

#define KILN_TEST_MAIN
#include "testutil.h"

typedef Kiln__Otlp__ExportMetricsServiceRequest req_t;

static unsigned long long rng = 88172645463325252ull;
static unsigned rnd(unsigned n) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void *arena_alloc_fn(void *data, size_t n) {
    return arena_alloc_nz(data, n);
}
static void arena_free_fn(void *data, void *p) {
    (void)data, (void)p;
}

/* ---- a random request, built in an arena --------------------------------- */

static arena A;
static void *dup_init(const void *init, size_t n) {
    void *x = arena_alloc(&A, n);
    memcpy(x, init, n);
    return x;
}
#define NEW(T, init) ((T *)dup_init(&(T)init, sizeof(T)))
#define ARR(T, n) ((T *)arena_alloc(&A, sizeof(T) * ((n) ? (n) : 1)))

/* Short words and long ones: the decoder keeps one copy of equal strings of
 * up to 64 bytes, compares up to 16 by two words, and decodes attributes of
 * strings under 128 bytes by a path of its own. */
static char *rstr(void) {
    static const char *const w[] = {"",
                                    "a",
                                    "service.name",
                                    "http.method",
                                    "k8s.pod.name",
                                    "é",
                                    "x y",
                                    "123",
                                    "abcdefgh-long-key",
                                    "abcdefgh-lung-key",
                                    "a.name.of.exactly.sixty-four.bytes.for.the.decoders.string.table",
                                    "a.name.of.exactly.sixty-four.bytes.for.the.decoders.string.tablf",
                                    "a value of more than one hundred and twenty-eight bytes, so that its "
                                    "length takes two bytes of varint "
                                    "and the attribute path gives it up"};
    return (char *)w[rnd(sizeof w / sizeof w[0])];
}

static Kiln__Otlp__AnyValue *rany(int depth);

static Kiln__Otlp__KeyValue **rattrs(size_t *n, int depth) {
    *n = rnd(4);
    Kiln__Otlp__KeyValue **kv = ARR(Kiln__Otlp__KeyValue *, *n);
    for (size_t i = 0; i < *n; i++) {
        kv[i] = NEW(Kiln__Otlp__KeyValue, KILN__OTLP__KEY_VALUE__INIT);
        kv[i]->key = rstr();
        kv[i]->value = rnd(8) ? rany(depth + 1) : NULL;
    }
    return kv;
}

static Kiln__Otlp__AnyValue *rany(int depth) {
    Kiln__Otlp__AnyValue *v = NEW(Kiln__Otlp__AnyValue, KILN__OTLP__ANY_VALUE__INIT);
    switch (rnd(depth > 2 ? 5 : 7)) {
    case 0:
        v->value_case = KILN__OTLP__ANY_VALUE__VALUE_STRING_VALUE;
        v->string_value = rstr();
        break;
    case 1:
        v->value_case = KILN__OTLP__ANY_VALUE__VALUE_BOOL_VALUE;
        v->bool_value = rnd(2);
        break;
    case 2:
        v->value_case = KILN__OTLP__ANY_VALUE__VALUE_INT_VALUE;
        v->int_value = (int64_t)rnd(1000) - 500 - (rnd(2) ? (int64_t)1 << 40 : 0);
        break;
    case 3:
        v->value_case = KILN__OTLP__ANY_VALUE__VALUE_DOUBLE_VALUE;
        v->double_value = rnd(1000) / 7.0;
        break;
    case 4:
        v->value_case = KILN__OTLP__ANY_VALUE__VALUE_BYTES_VALUE;
        v->bytes_value.len = rnd(5);
        v->bytes_value.data = (uint8_t *)"\x00\x01\xfe\xff\x80";
        break;
    case 5: {
        v->value_case = KILN__OTLP__ANY_VALUE__VALUE_ARRAY_VALUE;
        v->array_value = NEW(Kiln__Otlp__ArrayValue, KILN__OTLP__ARRAY_VALUE__INIT);
        v->array_value->n_values = rnd(3);
        v->array_value->values = ARR(Kiln__Otlp__AnyValue *, v->array_value->n_values);
        for (size_t i = 0; i < v->array_value->n_values; i++)
            v->array_value->values[i] = rany(depth + 1);
        break;
    }
    default:
        v->value_case = KILN__OTLP__ANY_VALUE__VALUE_KVLIST_VALUE;
        v->kvlist_value = NEW(Kiln__Otlp__KeyValueList, KILN__OTLP__KEY_VALUE_LIST__INIT);
        v->kvlist_value->values = rattrs(&v->kvlist_value->n_values, depth + 1);
    }
    return v;
}

static Kiln__Otlp__Exemplar **rexemplars(size_t *n) {
    *n = rnd(3) == 0;
    Kiln__Otlp__Exemplar **e = ARR(Kiln__Otlp__Exemplar *, *n);
    for (size_t i = 0; i < *n; i++) {
        e[i] = NEW(Kiln__Otlp__Exemplar, KILN__OTLP__EXEMPLAR__INIT);
        e[i]->has_time_unix_nano = 1;
        e[i]->time_unix_nano = 1700000000000000000ull;
        e[i]->value_case = KILN__OTLP__EXEMPLAR__VALUE_AS_DOUBLE;
        e[i]->as_double = 0.5;
        e[i]->has_trace_id = e[i]->has_span_id = 1;
        e[i]->trace_id.len = 16;
        e[i]->trace_id.data = (uint8_t *)"0123456789abcdef";
        e[i]->span_id.len = 8;
        e[i]->span_id.data = (uint8_t *)"\x01\x02\x03\x04\x05\x06\x07\x08";
        e[i]->filtered_attributes = rattrs(&e[i]->n_filtered_attributes, 1);
    }
    return e;
}

#define TIMES(p)                                                                                             \
    do {                                                                                                     \
        (p)->has_time_unix_nano = 1;                                                                         \
        (p)->time_unix_nano = 1700000000000000000ull + rnd(1000);                                            \
        (p)->has_start_time_unix_nano = rnd(2);                                                              \
        (p)->start_time_unix_nano = 1600000000000000000ull;                                                  \
        (p)->has_flags = rnd(2);                                                                             \
        (p)->flags = rnd(2);                                                                                 \
        (p)->attributes = rattrs(&(p)->n_attributes, 0);                                                     \
    } while (0)

static Kiln__Otlp__Metric *rmetric(void) {
    Kiln__Otlp__Metric *m = NEW(Kiln__Otlp__Metric, KILN__OTLP__METRIC__INIT);
    m->name = rstr();
    m->unit = rnd(2) ? "s" : NULL;
    m->description = rnd(2) ? "d" : NULL;
    size_t n = rnd(3);
    switch (rnd(5)) {
    case 0:
    case 1: {
        Kiln__Otlp__NumberDataPoint **dp = ARR(Kiln__Otlp__NumberDataPoint *, n);
        for (size_t i = 0; i < n; i++) {
            dp[i] = NEW(Kiln__Otlp__NumberDataPoint, KILN__OTLP__NUMBER_DATA_POINT__INIT);
            TIMES(dp[i]);
            dp[i]->value_case = rnd(2) ? KILN__OTLP__NUMBER_DATA_POINT__VALUE_AS_INT
                                       : KILN__OTLP__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
            dp[i]->as_int = -(int64_t)rnd(100);
            dp[i]->exemplars = rexemplars(&dp[i]->n_exemplars);
        }
        if (rnd(2)) {
            m->data_case = KILN__OTLP__METRIC__DATA_GAUGE;
            m->gauge = NEW(Kiln__Otlp__Gauge, KILN__OTLP__GAUGE__INIT);
            m->gauge->n_data_points = n;
            m->gauge->data_points = dp;
        } else {
            m->data_case = KILN__OTLP__METRIC__DATA_SUM;
            m->sum = NEW(Kiln__Otlp__Sum, KILN__OTLP__SUM__INIT);
            m->sum->n_data_points = n;
            m->sum->data_points = dp;
            m->sum->has_aggregation_temporality = m->sum->has_is_monotonic = 1;
            m->sum->aggregation_temporality = (int32_t)rnd(3);
            m->sum->is_monotonic = rnd(2);
        }
        break;
    }
    case 2: {
        m->data_case = KILN__OTLP__METRIC__DATA_HISTOGRAM;
        m->histogram = NEW(Kiln__Otlp__Histogram, KILN__OTLP__HISTOGRAM__INIT);
        m->histogram->has_aggregation_temporality = 1;
        m->histogram->aggregation_temporality = 2;
        m->histogram->n_data_points = n;
        m->histogram->data_points = ARR(Kiln__Otlp__HistogramDataPoint *, n);
        for (size_t i = 0; i < n; i++) {
            Kiln__Otlp__HistogramDataPoint *p =
                NEW(Kiln__Otlp__HistogramDataPoint, KILN__OTLP__HISTOGRAM_DATA_POINT__INIT);
            TIMES(p);
            p->has_count = p->has_sum = 1;
            p->count = rnd(100);
            p->sum = 1.25;
            p->n_explicit_bounds = rnd(4);
            p->explicit_bounds = ARR(double, p->n_explicit_bounds);
            p->n_bucket_counts = p->n_explicit_bounds + 1;
            p->bucket_counts = ARR(uint64_t, p->n_bucket_counts);
            for (size_t b = 0; b < p->n_explicit_bounds; b++)
                p->explicit_bounds[b] = (double)b * 0.5;
            for (size_t b = 0; b < p->n_bucket_counts; b++)
                p->bucket_counts[b] = rnd(3) ? rnd(100) : (uint64_t)1 << 50;
            p->has_min = rnd(2);
            p->min = -1;
            m->histogram->data_points[i] = p;
        }
        break;
    }
    case 3: {
        m->data_case = KILN__OTLP__METRIC__DATA_EXPONENTIAL_HISTOGRAM;
        m->exponential_histogram =
            NEW(Kiln__Otlp__ExponentialHistogram, KILN__OTLP__EXPONENTIAL_HISTOGRAM__INIT);
        m->exponential_histogram->n_data_points = n;
        m->exponential_histogram->data_points = ARR(Kiln__Otlp__ExponentialHistogramDataPoint *, n);
        for (size_t i = 0; i < n; i++) {
            Kiln__Otlp__ExponentialHistogramDataPoint *p =
                NEW(Kiln__Otlp__ExponentialHistogramDataPoint,
                    KILN__OTLP__EXPONENTIAL_HISTOGRAM_DATA_POINT__INIT);
            TIMES(p);
            p->has_scale = 1;
            p->scale = (int32_t)rnd(10) - 5;
            p->positive = NEW(Kiln__Otlp__ExponentialHistogramDataPoint__Buckets,
                              KILN__OTLP__EXPONENTIAL_HISTOGRAM_DATA_POINT__BUCKETS__INIT);
            p->positive->has_offset = 1;
            p->positive->offset = -3;
            p->positive->n_bucket_counts = rnd(4);
            p->positive->bucket_counts = ARR(uint64_t, p->positive->n_bucket_counts);
            for (size_t b = 0; b < p->positive->n_bucket_counts; b++)
                p->positive->bucket_counts[b] = b * 300;
            m->exponential_histogram->data_points[i] = p;
        }
        break;
    }
    default: {
        m->data_case = KILN__OTLP__METRIC__DATA_SUMMARY;
        m->summary = NEW(Kiln__Otlp__Summary, KILN__OTLP__SUMMARY__INIT);
        m->summary->n_data_points = n;
        m->summary->data_points = ARR(Kiln__Otlp__SummaryDataPoint *, n);
        for (size_t i = 0; i < n; i++) {
            Kiln__Otlp__SummaryDataPoint *p =
                NEW(Kiln__Otlp__SummaryDataPoint, KILN__OTLP__SUMMARY_DATA_POINT__INIT);
            TIMES(p);
            p->n_quantile_values = rnd(3);
            p->quantile_values = ARR(Kiln__Otlp__SummaryDataPoint__ValueAtQuantile *, p->n_quantile_values);
            for (size_t q = 0; q < p->n_quantile_values; q++) {
                p->quantile_values[q] = NEW(Kiln__Otlp__SummaryDataPoint__ValueAtQuantile,
                                            KILN__OTLP__SUMMARY_DATA_POINT__VALUE_AT_QUANTILE__INIT);
                p->quantile_values[q]->has_quantile = p->quantile_values[q]->has_value = 1;
                p->quantile_values[q]->quantile = 0.5;
                p->quantile_values[q]->value = NAN;
            }
            m->summary->data_points[i] = p;
        }
    }
    }
    return m;
}

static req_t *rrequest(void) {
    req_t *r = NEW(req_t, KILN__OTLP__EXPORT_METRICS_SERVICE_REQUEST__INIT);
    r->n_resource_metrics = rnd(3);
    r->resource_metrics = ARR(Kiln__Otlp__ResourceMetrics *, r->n_resource_metrics);
    for (size_t i = 0; i < r->n_resource_metrics; i++) {
        Kiln__Otlp__ResourceMetrics *rm =
            NEW(Kiln__Otlp__ResourceMetrics, KILN__OTLP__RESOURCE_METRICS__INIT);
        if (rnd(4)) {
            rm->resource = NEW(Kiln__Otlp__Resource, KILN__OTLP__RESOURCE__INIT);
            rm->resource->attributes = rattrs(&rm->resource->n_attributes, 0);
        }
        rm->schema_url = rnd(2) ? "https://opentelemetry.io/schemas/1.21.0" : NULL;
        rm->n_scope_metrics = rnd(3);
        rm->scope_metrics = ARR(Kiln__Otlp__ScopeMetrics *, rm->n_scope_metrics);
        for (size_t s = 0; s < rm->n_scope_metrics; s++) {
            Kiln__Otlp__ScopeMetrics *sm = NEW(Kiln__Otlp__ScopeMetrics, KILN__OTLP__SCOPE_METRICS__INIT);
            if (rnd(2)) {
                sm->scope = NEW(Kiln__Otlp__InstrumentationScope, KILN__OTLP__INSTRUMENTATION_SCOPE__INIT);
                sm->scope->name = rstr();
                sm->scope->attributes = rattrs(&sm->scope->n_attributes, 0);
            }
            sm->n_metrics = rnd(5);
            sm->metrics = ARR(Kiln__Otlp__Metric *, sm->n_metrics);
            for (size_t m = 0; m < sm->n_metrics; m++)
                sm->metrics[m] = rmetric();
            rm->scope_metrics[s] = sm;
        }
        r->resource_metrics[i] = rm;
    }
    return r;
}

/* ---- the two decoders, packed back ---------------------------------------- */

/* Packs m (NULL: "") into a new malloc'd buffer. */
static uint8_t *pack(const ProtobufCMessage *m, size_t *n) {
    *n = m ? protobuf_c_message_get_packed_size(m) : 0;
    uint8_t *b = malloc(*n + 1);
    if (m)
        protobuf_c_message_pack(m, b);
    return b;
}

/* Decodes in[n] with otlp_pb_decode, repacked into *out; the return code. */
static int ours(const uint8_t *in, size_t n, uint8_t **out, size_t *outn) {
    arena a;
    arena_init(&a, 0);
    ProtobufCAllocator al = {.alloc = arena_alloc_fn, .free = arena_free_fn, .allocator_data = &a};
    ProtobufCMessage *m = NULL;
    int rc = otlp_pb_decode(in, n, &kiln__otlp__export_metrics_service_request__descriptor, &al, &m);
    *out = rc == 0 ? pack(m, outn) : NULL;
    arena_free(&a);
    return rc;
}

/* Forgets the unknown fields protobuf-c keeps (and packs again): the
 * receiver's decoder skips them. */
static void drop_unknown(ProtobufCMessage *m) {
    m->n_unknown_fields = 0;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        char *base = (char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(size_t *)(base + f->quantifier_offset);
            for (size_t k = 0; k < n; k++)
                drop_unknown((*(ProtobufCMessage ***)(base + f->offset))[k]);
        } else if (*(ProtobufCMessage **)(base + f->offset) &&
                   (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
                    *(uint32_t *)(base + f->quantifier_offset) == f->id)) {
            drop_unknown(*(ProtobufCMessage **)(base + f->offset));
        }
    }
}

static int theirs(const uint8_t *in, size_t n, uint8_t **out, size_t *outn) {
    arena a;
    arena_init(&a, 0);
    ProtobufCAllocator al = {.alloc = arena_alloc_fn, .free = arena_free_fn, .allocator_data = &a};
    ProtobufCMessage *m =
        protobuf_c_message_unpack(&kiln__otlp__export_metrics_service_request__descriptor, &al, n, in);
    if (m)
        drop_unknown(m);
    *out = m ? pack(m, outn) : NULL;
    arena_free(&a);
    return m ? 0 : KILN_EINVAL;
}

START_TEST(test_random_requests_agree) {
    size_t corrupt_both = 0, corrupt_refused = 0;
    for (int iter = 0; iter < 400; iter++) {
        arena_init(&A, 0);
        req_t *r = rrequest();
        size_t n;
        uint8_t *wire = pack(&r->base, &n);
        arena_free(&A);
        uint8_t *a, *b;
        size_t an, bn;
        ck_assert_int_eq(ours(wire, n, &a, &an), 0);
        ck_assert_int_eq(theirs(wire, n, &b, &bn), 0);
        ck_assert_uint_eq(an, n);
        ck_assert_int_eq(memcmp(a, wire, n), 0);
        ck_assert_int_eq(memcmp(b, wire, n), 0);
        free(a);
        free(b);
        /* corruptions: a byte changed, or the body cut short */
        for (int k = 0; k < 8 && n; k++) {
            uint8_t *c = malloc(n);
            memcpy(c, wire, n);
            size_t cn = n;
            if (k == 7)
                cn = rnd((unsigned)n);
            else
                c[rnd((unsigned)n)] ^= (uint8_t)(1 + rnd(255));
            int ra = ours(c, cn, &a, &an), rb = theirs(c, cn, &b, &bn);
            ck_assert_msg(ra == rb, "iteration %d corruption %d: ours %d, protobuf-c %d", iter, k, ra, rb);
            if (ra == 0) {
                corrupt_both++;
                ck_assert_uint_eq(an, bn);
                ck_assert_int_eq(memcmp(a, b, an), 0);
            } else {
                corrupt_refused++;
            }
            free(a);
            free(b);
            free(c);
        }
        free(wire);
    }
    ck_assert_uint_gt(corrupt_both, 100);
    ck_assert_uint_gt(corrupt_refused, 100);
}
END_TEST

/* ---- the corners the packer never writes ------------------------------------ */

static req_t *decode(arena *a, const char *wire, size_t n) {
    static ProtobufCAllocator al = {.alloc = arena_alloc_fn, .free = arena_free_fn};
    al.allocator_data = a;
    ProtobufCMessage *m = NULL;
    if (otlp_pb_decode((const uint8_t *)wire, n, &kiln__otlp__export_metrics_service_request__descriptor, &al,
                       &m) != 0)
        return NULL;
    return (req_t *)m;
}

/* ExportMetricsServiceRequest{ResourceMetrics{ScopeMetrics{Metric m[n]}}} */
static size_t wrap_metric(const char *m, size_t n, char *out) {
    /* lengths < 128: one byte each */
    size_t k = 0;
    out[k++] = 0x0a, out[k++] = (char)(n + 4);
    out[k++] = 0x12, out[k++] = (char)(n + 2);
    out[k++] = 0x12, out[k++] = (char)n;
    memcpy(out + k, m, n);
    return k + n;
}

START_TEST(test_wire_corners) {
    arena a;
    arena_init(&a, 0);
    char w[256];
    /* Metric{histogram{data_points{bucket_counts 1, 2 unpacked (fixed64, wire type 1), explicit_bounds
     * packed}}} */
    static const char hist[] = "\x4a\x20"                     /* histogram, 32 bytes */
                               "\x0a\x1c"                     /* data_points, 28 bytes */
                               "\x31\x01\0\0\0\0\0\0\0"       /* bucket_counts 1 */
                               "\x31\x02\0\0\0\0\0\0\0"       /* bucket_counts 2 */
                               "\x3a\x08\0\0\0\0\0\0\xf0\x3f" /* explicit_bounds [1.0] */
                               "\x10\x02";                    /* aggregation_temporality 2 */
    req_t *r = decode(&a, w, wrap_metric(hist, sizeof hist - 1, w));
    ck_assert_ptr_nonnull(r);
    Kiln__Otlp__Metric *m = r->resource_metrics[0]->scope_metrics[0]->metrics[0];
    ck_assert_int_eq(m->data_case, KILN__OTLP__METRIC__DATA_HISTOGRAM);
    ck_assert_uint_eq(m->histogram->n_data_points, 1);
    Kiln__Otlp__HistogramDataPoint *p = m->histogram->data_points[0];
    ck_assert_uint_eq(p->n_bucket_counts, 2);
    ck_assert_uint_eq(p->bucket_counts[0], 1);
    ck_assert_uint_eq(p->bucket_counts[1], 2);
    ck_assert_uint_eq(p->n_explicit_bounds, 1);
    ck_assert(p->explicit_bounds[0] == 1.0);

    /* a oneof given as gauge, then as sum: the sum, not a gauge read as one; a message twice merges */
    static const char oneof[] = "\x2a\x02\x0a\x00" /* gauge{data_points{}} */
                                "\x3a\x02\x18\x01" /* sum{is_monotonic: true} */
                                "\x3a\x02\x10\x02" /* sum{aggregation_temporality: 2}: merged */
                                "\xf8\x07\x05"     /* field 127, varint: unknown, skipped */
                                "\x0a\x01n";       /* name "n" */
    r = decode(&a, w, wrap_metric(oneof, sizeof oneof - 1, w));
    ck_assert_ptr_nonnull(r);
    m = r->resource_metrics[0]->scope_metrics[0]->metrics[0];
    ck_assert_int_eq(m->data_case, KILN__OTLP__METRIC__DATA_SUM);
    ck_assert_int_eq(m->sum->is_monotonic, 1);
    ck_assert_int_eq(m->sum->aggregation_temporality, 2);
    ck_assert_uint_eq(m->sum->n_data_points, 0);
    ck_assert_str_eq(m->name, "n");

    /* refused: a wire type that does not fit, a group, a varint over 10 bytes, a length past the end */
    static const char *const bad[] = {"\x0d\0\0\0\0", "\x0b",
                                      "\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "\x0a\x05\x12"};
    static const size_t badn[] = {5, 1, 12, 3};
    for (size_t i = 0; i < 4; i++)
        ck_assert_ptr_null(decode(&a, bad[i], badn[i]));

    /* a bool in any wire type, read as protobuf-c reads it: Sum{is_monotonic} length-delimited (empty,
     * one zero byte), fixed64 (0x80: false; 1), fixed32 (2) */
    static const char *const bools[] = {"\x3a\x02\x1a\x00", "\x3a\x03\x1a\x01\x00",
                                        "\x3a\x09\x19\x80\0\0\0\0\0\0\0", "\x3a\x09\x19\x01\0\0\0\0\0\0\0",
                                        "\x3a\x05\x1d\x02\0\0\0"};
    static const size_t boolsn[] = {4, 5, 11, 11, 7};
    static const int want[] = {0, 1, 0, 1, 1};
    for (size_t i = 0; i < 5; i++) {
        size_t n = wrap_metric(bools[i], boolsn[i], w), an, bn;
        uint8_t *x, *y;
        ck_assert_int_eq(ours((const uint8_t *)w, n, &x, &an), 0);
        ck_assert_int_eq(theirs((const uint8_t *)w, n, &y, &bn), 0);
        ck_assert_uint_eq(an, bn);
        ck_assert_int_eq(memcmp(x, y, an), 0);
        free(x);
        free(y);
        r = decode(&a, w, n);
        ck_assert_int_eq(r->resource_metrics[0]->scope_metrics[0]->metrics[0]->sum->is_monotonic, want[i]);
    }
    arena_free(&a);
}
END_TEST

/* ---- JSON ---------------------------------------------------------------------- */

static req_t *decode_json(arena *a, const char *s, char *msg) {
    static ProtobufCAllocator al = {.alloc = arena_alloc_fn, .free = arena_free_fn};
    al.allocator_data = a;
    ProtobufCMessage *m = NULL;
    if (otlp_json_decode(s, strlen(s), &kiln__otlp__export_metrics_service_request__descriptor, &al, &m, msg,
                         256) != 0)
        return NULL;
    return (req_t *)m;
}

START_TEST(test_json) {
    arena a;
    arena_init(&a, 0);
    char msg[256] = "";
    req_t *r = decode_json(
        &a,
        "{\"resourceMetrics\":[{\"resource\":{\"attributes\":[{\"key\":\"a\\u00e9\\ud83d\\ude00\",\"value\":{"
        "\"bytesValue\":\"AP/+\"}}]},\"scope_metrics\":[{\"metrics\":[{\"name\":\"m\",\"sum\":{"
        "\"aggregationTemporality\":\"AGGREGATION_TEMPORALITY_DELTA\",\"isMonotonic\":true,\"dataPoints\":[{"
        "\"timeUnixNano\":\"18446744073709551615\",\"asInt\":\"-9223372036854775808\",\"flags\":1,"
        "\"exemplars\":[{\"traceId\":\"00ff\",\"spanId\":\"\",\"asDouble\":\"-Infinity\"}]},{\"asDouble\":1e-"
        "3,"
        "\"timeUnixNano\":5e2}]}}]}],\"unknown\":{\"deep\":[[[null]]]}}]}",
        msg);
    ck_assert_msg(r != NULL, "%s", msg);
    Kiln__Otlp__ResourceMetrics *rm = r->resource_metrics[0];
    ck_assert_str_eq(rm->resource->attributes[0]->key, "a\xc3\xa9\xf0\x9f\x98\x80");
    Kiln__Otlp__AnyValue *v = rm->resource->attributes[0]->value;
    ck_assert_int_eq(v->value_case, KILN__OTLP__ANY_VALUE__VALUE_BYTES_VALUE);
    ck_assert_uint_eq(v->bytes_value.len, 3);
    ck_assert_int_eq(memcmp(v->bytes_value.data, "\x00\xff\xfe", 3), 0);
    Kiln__Otlp__Metric *m = rm->scope_metrics[0]->metrics[0];
    ck_assert_int_eq(m->data_case, KILN__OTLP__METRIC__DATA_SUM);
    ck_assert_int_eq(m->sum->aggregation_temporality, 1);
    ck_assert_int_eq(m->sum->is_monotonic, 1);
    ck_assert_uint_eq(m->sum->n_data_points, 2);
    Kiln__Otlp__NumberDataPoint *p = m->sum->data_points[0];
    ck_assert(p->time_unix_nano == UINT64_MAX);
    ck_assert_int_eq(p->value_case, KILN__OTLP__NUMBER_DATA_POINT__VALUE_AS_INT);
    ck_assert(p->as_int == INT64_MIN);
    ck_assert_uint_eq(p->flags, 1);
    ck_assert_uint_eq(p->exemplars[0]->trace_id.len, 2);
    ck_assert_int_eq(p->exemplars[0]->trace_id.data[1], 0xff);
    ck_assert(isinf(p->exemplars[0]->as_double) && p->exemplars[0]->as_double < 0);
    ck_assert(m->sum->data_points[1]->as_double == 1e-3);
    ck_assert(m->sum->data_points[1]->time_unix_nano == 500);

    static const char *const bad[][2] = {
        {"{\"resourceMetrics\":[{\"schemaUrl\":1}]}", "expected a string at byte"},
        {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"sum\":{\"isMonotonic\":1}}]}]}]}",
         "expected true or false"},
        {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"gauge\":{\"dataPoints\":[{\"flags\":-1}]}"
         "}]}]}]"
         "}",
         "bad number"},
        {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"gauge\":{\"dataPoints\":[{\"flags\":"
         "4294967296}]}}]}]}]}",
         "out of range"},
        {"{\"resourceMetrics\":[{\"resource\":{\"attributes\":[{\"value\":{\"bytesValue\":\"a\"}}]}}]}",
         "not base64"},
        {"{\"resourceMetrics\":[null]}", "null in an array"},
        {"{\"resourceMetrics\":[{\"schemaUrl\":\"\\x\"}]}", "bad escape"},
        {"{\"resourceMetrics\":[{\"schemaUrl\":\"a\nb\"}]}", "control character"},
        {"{\"resourceMetrics\":[],}", "expected '\"'"},
        {"", "expected '{', found the end at byte 0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msg[0] = 0;
        ck_assert_ptr_null(decode_json(&a, bad[i][0], msg));
        ck_assert_msg(strstr(msg, bad[i][1]) != NULL, "%s: got \"%s\"", bad[i][0], msg);
    }
    arena_free(&a);
}
END_TEST

/* ---- native histograms ---------------------------------------------------------- */

static void ck_spans(const hist_span *sp, uint32_t n, const int32_t (*want)[2], uint32_t nwant) {
    ck_assert_uint_eq(n, nwant);
    for (uint32_t i = 0; i < n; i++) {
        ck_assert_int_eq(sp[i].offset, want[i][0]);
        ck_assert_uint_eq(sp[i].length, (uint32_t)want[i][1]);
    }
}

static void ck_vals(const double *v, uint32_t n, const double *want, uint32_t nwant) {
    ck_assert_uint_eq(n, nwant);
    for (uint32_t i = 0; i < n; i++)
        ck_assert(v[i] == want[i]);
}

START_TEST(test_native_histograms) {
    arena a;
    arena_init(&a, 0);
    char why[160];
    histogram h;
    Kiln__Otlp__ExponentialHistogramDataPoint p = KILN__OTLP__EXPONENTIAL_HISTOGRAM_DATA_POINT__INIT;
    Kiln__Otlp__ExponentialHistogramDataPoint__Buckets
        pos = KILN__OTLP__EXPONENTIAL_HISTOGRAM_DATA_POINT__BUCKETS__INIT,
        neg = KILN__OTLP__EXPONENTIAL_HISTOGRAM_DATA_POINT__BUCKETS__INIT;
    /* OTLP buckets -2, 2, 4 filled are Prometheus' -1, 3, 5: three empty ones between the first two split the
     * span, one between the others does not */
    uint64_t c1[] = {1, 0, 0, 0, 2, 0, 3};
    pos.offset = -2;
    pos.bucket_counts = c1;
    pos.n_bucket_counts = 7;
    p.positive = &pos;
    p.scale = 3;
    p.count = 9;
    p.zero_count = 3;
    p.has_sum = 1;
    p.sum = 12.5;
    p.has_zero_threshold = 1;
    p.zero_threshold = 1e-9;
    ck_assert_int_eq(otlp_exp_histogram(&a, &p, 0, &h, why, sizeof why), 0);
    ck_assert_int_eq(h.schema, 3);
    ck_assert(h.count == 9 && h.sum == 12.5 && h.zero_count == 3 && h.zero_threshold == 1e-9);
    ck_assert_int_eq(h.is_int, 1);
    ck_assert_int_eq(h.hint, HIST_HINT_UNKNOWN);
    ck_spans(h.pos_spans, h.npos_spans, (const int32_t[][2]){{-1, 1}, {3, 3}}, 2);
    ck_vals(h.pos, h.npos, (const double[]){1, 2, 0, 3}, 4);
    ck_assert_uint_eq(h.nneg_spans, 0);

    /* scale 10 merged down to 8: four buckets become one */
    uint64_t c2[] = {1, 1, 1, 1, 1}, c3[] = {1, 1, 1};
    pos.offset = 0;
    pos.bucket_counts = c2;
    pos.n_bucket_counts = 5;
    neg.offset = -3;
    neg.bucket_counts = c3;
    neg.n_bucket_counts = 3;
    p.negative = &neg;
    p.scale = 10;
    p.flags = 1; /* no recorded value: a stale marker */
    ck_assert_int_eq(otlp_exp_histogram(&a, &p, 1, &h, why, sizeof why), 0);
    ck_assert_int_eq(h.schema, 8);
    ck_assert_int_eq(h.hint, HIST_HINT_GAUGE);
    ck_assert(value_is_stale(h.sum));
    ck_spans(h.pos_spans, h.npos_spans, (const int32_t[][2]){{1, 2}}, 1);
    ck_vals(h.pos, h.npos, (const double[]){4, 1}, 2);
    ck_spans(h.neg_spans, h.nneg_spans, (const int32_t[][2]){{0, 1}}, 1);
    ck_vals(h.neg, h.nneg, (const double[]){3}, 1);

    p.scale = -5;
    ck_assert_int_eq(otlp_exp_histogram(&a, &p, 0, &h, why, sizeof why), KILN_EINVAL);
    ck_assert_str_eq(why, "cannot convert exponential to native histogram: scale must be >= -4, was -5");

    /* custom buckets: the bounds as they are, +Inf dropped; two empty buckets stay inside the span */
    Kiln__Otlp__HistogramDataPoint e = KILN__OTLP__HISTOGRAM_DATA_POINT__INIT;
    double b1[] = {0.1, 0.5, 1, INFINITY};
    uint64_t c4[] = {1, 0, 0, 4, 0};
    e.explicit_bounds = b1;
    e.n_explicit_bounds = 4;
    e.bucket_counts = c4;
    e.n_bucket_counts = 5;
    e.count = 5;
    e.has_sum = 1;
    e.sum = 7;
    ck_assert_int_eq(otlp_nhcb(&a, &e, &h), 0);
    ck_assert_int_eq(h.schema, HIST_SCHEMA_CUSTOM);
    ck_assert_uint_eq(h.ncustom, 3);
    ck_assert(h.custom_values[2] == 1 && h.count == 5 && h.sum == 7);
    ck_spans(h.pos_spans, h.npos_spans, (const int32_t[][2]){{0, 4}}, 1);
    ck_vals(h.pos, h.npos, (const double[]){1, 0, 0, 4}, 4);
    arena_free(&a);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("otlp_parts");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_random_requests_agree);
    tcase_add_test(tc, test_wire_corners);
    tcase_add_test(tc, test_json);
    tcase_add_test(tc, test_native_histograms);
    suite_add_tcase(s, tc);
    return s;
}
