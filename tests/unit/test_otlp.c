/*
 * test_otlp.c - the OTLP receiver (api/otlp.c): metric and label name
 * translation as Prometheus' otlptranslator does it, and what a request
 * becomes (summaries, stale markers, promoted and colliding attributes,
 * target_info, delta rejections, the answers' protobuf bodies).
 *
 * Requests are built with the protoc-c pack functions.  The storage is a
 * fake defined here: it records every sample as "{labels} value@t".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/otlp.pb-c.h"
#include "storage/storage.h"

#define KILN_TEST_MAIN
#include "testutil.h"

/* ---- a fake storage ------------------------------------------------------ */

#define FS_MAX 64

struct storage {
    char rec[FS_MAX][512];
    size_t n;
};

struct appender {
    storage *s;
    char rec[FS_MAX][512];
    size_t n;
};

appender *storage_appender(storage *s) {
    appender *a = calloc(1, sizeof *a);
    a->s = s;
    return a;
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
    (void)ref, (void)err;
    ck_assert_uint_lt(a->n, FS_MAX);
    char *r = a->rec[a->n++];
    size_t k = (size_t)snprintf(r, 512, "{");
    for (size_t i = 0; i < n; i++) {
        if (i)
            ck_assert_str_lt(ls[i - 1].name, ls[i].name);
        k += (size_t)snprintf(r + k, 512 - k, "%s%s=\"%s\"", i ? "," : "", ls[i].name, ls[i].value);
    }
    if (value_is_stale(v))
        snprintf(r + k, 512 - k, "} stale@%lld", (long long)t);
    else
        snprintf(r + k, 512 - k, "} %g@%lld", v, (long long)t);
    return 0;
}

int appender_commit(appender *a, kiln_err *err) {
    (void)err;
    for (size_t i = 0; i < a->n; i++)
        memcpy(a->s->rec[a->s->n++], a->rec[i], 512);
    free(a);
    return 0;
}

void appender_rollback(appender *a) {
    free(a);
}

static int has(const storage *s, const char *want) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->rec[i], want))
            return 1;
    return 0;
}

static void dump(const storage *s) {
    for (size_t i = 0; i < s->n; i++)
        fprintf(stderr, "  %s\n", s->rec[i]);
}

#define ck_has(s, want)                                                                                      \
    do {                                                                                                     \
        if (!has(s, want))                                                                                   \
            dump(s);                                                                                         \
        ck_assert_msg(has(s, want), "missing %s", want);                                                     \
    } while (0)

/* ---- names ----------------------------------------------------------------- */

static const char *mname(const char *name, const char *unit, char kind, otlp_strategy st) {
    static char out[256];
    ck_assert_int_ge(otlp_metric_name(name, unit, kind, st, out, sizeof out), 0);
    return out;
}

START_TEST(test_metric_names) {
    const otlp_strategy U = OTLP_UNDERSCORE_ESCAPING_WITH_SUFFIXES;
    ck_assert_str_eq(mname("system.filesystem.usage", "By", 'g', U), "system_filesystem_usage_bytes");
    ck_assert_str_eq(mname("system.network.io", "By", 'c', U), "system_network_io_bytes_total");
    ck_assert_str_eq(mname("bytes.sent", "By", 'c', U), "bytes_sent_total"); /* unit already a word */
    ck_assert_str_eq(mname("cpu.utilization", "1", 'g', U), "cpu_utilization_ratio");
    ck_assert_str_eq(mname("queue.depth", "1", 's', U), "queue_depth"); /* _ratio for gauges only */
    ck_assert_str_eq(mname("hits", "1", 'c', U), "hits_total");
    ck_assert_str_eq(mname("request.duration", "s", 'h', U), "request_duration_seconds");
    ck_assert_str_eq(mname("rpc.latency", "ms", 'S', U), "rpc_latency_milliseconds");
    ck_assert_str_eq(mname("throughput", "By/s", 'g', U), "throughput_bytes_per_second");
    ck_assert_str_eq(mname("speed", "m/h", 'g', U), "speed_meters_per_hour");
    ck_assert_str_eq(mname("rate", "{packet}/s", 'g', U), "rate_per_second");
    ck_assert_str_eq(mname("active", "{session}", 's', U), "active");
    ck_assert_str_eq(mname("odd", "furlongs/fortnight", 'g', U), "odd_furlongs_per_fortnight");
    ck_assert_str_eq(mname("mem", "MiBy", 'g', U), "mem_mebibytes");
    ck_assert_str_eq(mname("temp", "Cel", 'g', U), "temp_celsius");
    ck_assert_str_eq(mname("disk", "%", 'g', U), "disk_percent");
    ck_assert_str_eq(mname("total.requests", "", 'c', U), "requests_total"); /* total moved last */
    ck_assert_str_eq(mname("requests_total", "", 'c', U), "requests_total");
    ck_assert_str_eq(mname("2xx.responses", "", 'g', U), "_2xx_responses");
    ck_assert_str_eq(mname("a__b..c", "", 'g', U), "a_b_c");
    ck_assert_str_eq(mname("ns:sub.x", "", 'g', U), "ns:sub_x");
    ck_assert_str_eq(mname("caf\xc3\xa9.x", "", 'g', U), "caf_x");
    ck_assert_str_eq(mname("x", " s ", 'g', U), "x_seconds");
    /* UTF-8: the name's own separators stay */
    ck_assert_str_eq(mname("http.server.duration", "s", 'h', OTLP_NO_UTF8_ESCAPING_WITH_SUFFIXES),
                     "http.server.duration_seconds");
    ck_assert_str_eq(mname("a.b", "", 'c', OTLP_NO_UTF8_ESCAPING_WITH_SUFFIXES), "a.b_total");
    /* without suffixes: escaped, underscores kept, no unit or type words */
    ck_assert_str_eq(mname("http.server__duration", "s", 'c', OTLP_UNDERSCORE_ESCAPING_WITHOUT_SUFFIXES),
                     "http_server__duration");
    ck_assert_str_eq(mname("1up", "1", 'g', OTLP_UNDERSCORE_ESCAPING_WITHOUT_SUFFIXES), "_1up");
    /* no translation: as sent */
    ck_assert_str_eq(mname("http.server.duration", "s", 'c', OTLP_NO_TRANSLATION), "http.server.duration");
    char small[8];
    ck_assert_int_eq(otlp_metric_name("a.long.name", "s", 'c', U, small, sizeof small), -1);
}
END_TEST

static const char *lname(const char *key, otlp_strategy st) {
    static char out[256];
    otlp_opts o = {.strategy = st};
    ck_assert_int_ge(otlp_label_name(key, &o, out, sizeof out), 0);
    return out;
}

START_TEST(test_label_names) {
    const otlp_strategy U = OTLP_UNDERSCORE_ESCAPING_WITH_SUFFIXES;
    ck_assert_str_eq(lname("http.status_code", U), "http_status_code");
    ck_assert_str_eq(lname("2xx", U), "key_2xx");
    ck_assert_str_eq(lname("_private", U), "key_private");
    ck_assert_str_eq(lname("__reserved", U), "__reserved");
    ck_assert_str_eq(lname("caf\xc3\xa9", U), "caf_"); /* one '_' per character */
    ck_assert_str_eq(lname("a-b c", U), "a_b_c");
    ck_assert_str_eq(lname(".dot", U), "key_dot"); /* the prefix goes on the escaped name */
    ck_assert_str_eq(lname("a..b__c", U), "a__b__c");
    ck_assert_str_eq(lname("x", OTLP_UNDERSCORE_ESCAPING_WITHOUT_SUFFIXES), "x");
    ck_assert_str_eq(lname("http.status_code", OTLP_NO_UTF8_ESCAPING_WITH_SUFFIXES), "http.status_code");
    /* label_name_underscore_sanitization: false, label_name_preserve_multiple_underscores: false */
    char out[64];
    otlp_opts o = {.no_key_underscore = 1, .collapse_underscores = 1};
    ck_assert_int_eq(otlp_label_name("_a..b__c", &o, out, sizeof out), 6);
    ck_assert_str_eq(out, "_a_b_c");
    ck_assert_int_eq(otlp_label_name("9.x", &o, out, sizeof out), 7);
    ck_assert_str_eq(out, "key_9_x");
}
END_TEST

/* ---- requests ---------------------------------------------------------------- */

typedef struct kvs {
    Kiln__Otlp__KeyValue kv[8];
    Kiln__Otlp__AnyValue v[8];
    Kiln__Otlp__KeyValue *p[8];
    size_t n;
} kvs;

static void kv_str(kvs *k, const char *key, const char *val) {
    kiln__otlp__key_value__init(&k->kv[k->n]);
    kiln__otlp__any_value__init(&k->v[k->n]);
    k->kv[k->n].key = (char *)key;
    k->kv[k->n].value = &k->v[k->n];
    k->v[k->n].value_case = KILN__OTLP__ANY_VALUE__VALUE_STRING_VALUE;
    k->v[k->n].string_value = (char *)val;
    k->p[k->n] = &k->kv[k->n];
    k->n++;
}

static void kv_int(kvs *k, const char *key, int64_t val) {
    kv_str(k, key, NULL);
    k->v[k->n - 1].value_case = KILN__OTLP__ANY_VALUE__VALUE_INT_VALUE;
    k->v[k->n - 1].int_value = val;
}

/* POSTs the packed request to a receiver; the answer in resp (caller frees). */
static void post(otlp *o, const Kiln__Otlp__ExportMetricsServiceRequest *r, http_resp *resp) {
    size_t n = kiln__otlp__export_metrics_service_request__get_packed_size(r);
    uint8_t *body = malloc(n + 1);
    kiln__otlp__export_metrics_service_request__pack(r, body);
    arena a;
    arena_init(&a, 0);
    http_header hs[1] = {{"Content-Type", "application/x-protobuf"}};
    http_req req;
    memset(&req, 0, sizeof req);
    req.method = "POST";
    req.path = "/api/v1/otlp/v1/metrics";
    req.query = "";
    req.headers = hs;
    req.nheaders = 1;
    req.arena = &a;
    req.body = (char *)body;
    req.body_len = n;
    memset(resp, 0, sizeof *resp);
    otlp_handle(o, &req, resp);
    arena_free(&a);
    free(body);
}

/* POSTs metrics ms[n] of one scope of one resource with attributes res. */
static void post_metrics(otlp *o, Kiln__Otlp__Metric **ms, size_t n, kvs *res, http_resp *resp) {
    Kiln__Otlp__ScopeMetrics sm = KILN__OTLP__SCOPE_METRICS__INIT, *smp = &sm;
    sm.n_metrics = n;
    sm.metrics = ms;
    Kiln__Otlp__Resource r = KILN__OTLP__RESOURCE__INIT;
    r.n_attributes = res->n;
    r.attributes = res->p;
    Kiln__Otlp__ResourceMetrics rm = KILN__OTLP__RESOURCE_METRICS__INIT, *rmp = &rm;
    rm.resource = &r;
    rm.n_scope_metrics = 1;
    rm.scope_metrics = &smp;
    Kiln__Otlp__ExportMetricsServiceRequest er = KILN__OTLP__EXPORT_METRICS_SERVICE_REQUEST__INIT;
    er.n_resource_metrics = 1;
    er.resource_metrics = &rmp;
    post(o, &er, resp);
}

/* Checks a 200 answer's partial success: rejected points, a part of its message; frees the body. */
static void ck_partial(http_resp *resp, int64_t rejected, const char *says) {
    ck_assert_int_eq(resp->status, 200);
    ck_assert_str_eq(resp->content_type, "application/x-protobuf");
    Kiln__Otlp__ExportMetricsServiceResponse *ans =
        kiln__otlp__export_metrics_service_response__unpack(NULL, resp->body.len, (uint8_t *)resp->body.data);
    ck_assert_ptr_nonnull(ans);
    ck_assert_ptr_nonnull(ans->partial_success);
    ck_assert_int_eq(ans->partial_success->rejected_data_points, rejected);
    ck_assert_ptr_nonnull(strstr(ans->partial_success->error_message, says));
    kiln__otlp__export_metrics_service_response__free_unpacked(ans, NULL);
    buf_free(&resp->body);
    buf_free(&resp->headers);
}

/* A receiver with the default settings over the empty fake storage st. */
static otlp *receiver(storage *st) {
    memset(st, 0, sizeof *st);
    otlp_opts oo = {.enabled = 1};
    otlp *o = NULL;
    ck_assert_int_eq(otlp_new(st, &oo, &o, NULL), 0);
    return o;
}

static const int64_t T = 1700000000123; /* ms */
#define T_NS ((uint64_t)T * 1000000u + 456)

START_TEST(test_translation) {
    static storage st;
    memset(&st, 0, sizeof st);
    static const char *const promote[] = {"k8s.pod.name"};
    otlp_opts oo = {.enabled = 1, .promote = promote, .npromote = 1};
    otlp *o = NULL;
    ck_assert_int_eq(otlp_new(&st, &oo, &o, NULL), 0);

    kvs res = {0}, attrs = {0};
    kv_str(&res, "service.name", "api");
    kv_str(&res, "host.name", "h1");
    kv_str(&res, "k8s.pod.name", "p-1");
    kv_str(&attrs, "a_b", "2");
    kv_str(&attrs, "a.b", "1");
    kv_str(&attrs, "__name__", "ignored");
    kv_int(&attrs, "code", 200);

    /* a summary */
    Kiln__Otlp__SummaryDataPoint__ValueAtQuantile q[2];
    Kiln__Otlp__SummaryDataPoint__ValueAtQuantile *qp[2] = {&q[0], &q[1]};
    for (int i = 0; i < 2; i++) {
        kiln__otlp__summary_data_point__value_at_quantile__init(&q[i]);
        q[i].has_quantile = q[i].has_value = 1;
        q[i].quantile = i ? 0.99 : 0.5;
        q[i].value = i ? 9 : 4;
    }
    Kiln__Otlp__SummaryDataPoint sp = KILN__OTLP__SUMMARY_DATA_POINT__INIT;
    sp.has_time_unix_nano = sp.has_count = sp.has_sum = 1;
    sp.time_unix_nano = T_NS;
    sp.count = 10;
    sp.sum = 45;
    sp.n_quantile_values = 2;
    sp.quantile_values = qp;
    Kiln__Otlp__SummaryDataPoint *spp = &sp;
    Kiln__Otlp__Summary sum = KILN__OTLP__SUMMARY__INIT;
    sum.n_data_points = 1;
    sum.data_points = &spp;
    Kiln__Otlp__Metric m0 = KILN__OTLP__METRIC__INIT;
    m0.name = "rpc.latency";
    m0.unit = "ms";
    m0.data_case = KILN__OTLP__METRIC__DATA_SUMMARY;
    m0.summary = &sum;

    /* a gauge: an int point with attributes, then a no-recorded-value point */
    Kiln__Otlp__NumberDataPoint g[2] = {KILN__OTLP__NUMBER_DATA_POINT__INIT,
                                        KILN__OTLP__NUMBER_DATA_POINT__INIT};
    Kiln__Otlp__NumberDataPoint *gp[2] = {&g[0], &g[1]};
    g[0].has_time_unix_nano = g[1].has_time_unix_nano = 1;
    g[0].time_unix_nano = T_NS;
    g[1].time_unix_nano = T_NS + 1000000000u;
    g[0].value_case = KILN__OTLP__NUMBER_DATA_POINT__VALUE_AS_INT;
    g[0].as_int = -3;
    g[0].n_attributes = attrs.n;
    g[0].attributes = attrs.p;
    g[1].has_flags = 1;
    g[1].flags = 1;
    g[1].n_attributes = attrs.n;
    g[1].attributes = attrs.p;
    Kiln__Otlp__Gauge gauge = KILN__OTLP__GAUGE__INIT;
    gauge.n_data_points = 2;
    gauge.data_points = gp;
    Kiln__Otlp__Metric m1 = KILN__OTLP__METRIC__INIT;
    m1.name = "temp";
    m1.data_case = KILN__OTLP__METRIC__DATA_GAUGE;
    m1.gauge = &gauge;

    /* a delta counter: rejected */
    Kiln__Otlp__NumberDataPoint d = KILN__OTLP__NUMBER_DATA_POINT__INIT, *dp = &d;
    d.value_case = KILN__OTLP__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
    d.as_double = 1;
    Kiln__Otlp__Sum dsum = KILN__OTLP__SUM__INIT;
    dsum.n_data_points = 1;
    dsum.data_points = &dp;
    dsum.has_aggregation_temporality = dsum.has_is_monotonic = 1;
    dsum.aggregation_temporality = 1;
    dsum.is_monotonic = 1;
    Kiln__Otlp__Metric m2 = KILN__OTLP__METRIC__INIT;
    m2.name = "jobs";
    m2.data_case = KILN__OTLP__METRIC__DATA_SUM;
    m2.sum = &dsum;

    Kiln__Otlp__Metric *ms[3] = {&m0, &m1, &m2};
    http_resp resp;
    post_metrics(o, ms, 3, &res, &resp);
    ck_partial(&resp, 1, "invalid temporality and type combination for metric \"jobs\"");

    ck_has(&st, "{__name__=\"rpc_latency_milliseconds\",job=\"api\",k8s_pod_name=\"p-1\",quantile=\"0.5\"} "
                "4@1700000000123");
    ck_has(&st, "{__name__=\"rpc_latency_milliseconds\",job=\"api\",k8s_pod_name=\"p-1\",quantile=\"0.99\"} "
                "9@1700000000123");
    ck_has(&st,
           "{__name__=\"rpc_latency_milliseconds_sum\",job=\"api\",k8s_pod_name=\"p-1\"} 45@1700000000123");
    ck_has(&st,
           "{__name__=\"rpc_latency_milliseconds_count\",job=\"api\",k8s_pod_name=\"p-1\"} 10@1700000000123");
    /* colliding names joined in key order; the __name__ attribute loses; ints as decimal */
    ck_has(&st,
           "{__name__=\"temp\",a_b=\"1;2\",code=\"200\",job=\"api\",k8s_pod_name=\"p-1\"} -3@1700000000123");
    ck_has(
        &st,
        "{__name__=\"temp\",a_b=\"1;2\",code=\"200\",job=\"api\",k8s_pod_name=\"p-1\"} stale@1700000001123");
    /* target_info at the latest timestamp: the non-identifying attributes, promoted ones included */
    ck_has(&st,
           "{__name__=\"target_info\",host_name=\"h1\",job=\"api\",k8s_pod_name=\"p-1\"} 1@1700000001123");
    ck_assert_uint_eq(st.n, 7);
    otlp_free(o);
}
END_TEST

/* Points whose attribute keys repeat (the receiver reuses the translated,
 * ordered names of an earlier point's keys), change, collide after
 * escaping, or sort differently as names than as keys: each answer must be
 * what the point's own attributes give. */
START_TEST(test_repeated_layouts) {
    static storage st;
    otlp *o = receiver(&st);
    static const char *const pts[][6] = {
        {"b", "1", "a", "2", "c", ""},
        {"b", "3", "a", "4", "c", "x"},
        {"a", "5", "b", "6", "d", "7"},
        {"b", "8", "a", "9", "c", "y"},
        {"x.y", "1", "x_y", "2", "q", "3"},
        {"x.y", "4", "x_y", "5", "q", "6"},
        {"a_b", "1", "a.z", "2", "e", "3"},
        {"a_b", "4", "a.z", "5", "e", "6"},
        {"b", "", "a", "", "c", ""},
        {"job", "j", "a", "1", "__name__", "n"},
        {"a", "caf\xc3\xa9", "b", "x\xffy", "c", "1"}, /* not UTF-8: rejected */
        {"a", "caf\xc3\xa9", "b", "0123456789abcdef\xc3\xa9", "c", "1"},
    };
    enum { NP = sizeof pts / sizeof pts[0] };
    kvs attrs[NP];
    Kiln__Otlp__NumberDataPoint g[NP], *gp[NP];
    for (size_t i = 0; i < NP; i++) {
        memset(&attrs[i], 0, sizeof attrs[i]);
        for (int k = 0; k < 3; k++)
            kv_str(&attrs[i], pts[i][2 * k], pts[i][2 * k + 1]);
        kiln__otlp__number_data_point__init(&g[i]);
        g[i].has_time_unix_nano = 1;
        g[i].time_unix_nano = T_NS + i * 1000000000u;
        g[i].value_case = KILN__OTLP__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
        g[i].as_double = (double)i;
        g[i].n_attributes = attrs[i].n;
        g[i].attributes = attrs[i].p;
        gp[i] = &g[i];
    }
    Kiln__Otlp__Gauge gauge = KILN__OTLP__GAUGE__INIT;
    gauge.n_data_points = NP;
    gauge.data_points = gp;
    Kiln__Otlp__Metric m = KILN__OTLP__METRIC__INIT, *mp = &m;
    m.name = "g";
    m.data_case = KILN__OTLP__METRIC__DATA_GAUGE;
    m.gauge = &gauge;
    kvs res = {0};
    kv_str(&res, "service.instance.id", "i-1");
    http_resp resp;
    post_metrics(o, &mp, 1, &res, &resp);
    ck_partial(&resp, 1, "not UTF-8");
    ck_has(&st, "{__name__=\"g\",a=\"2\",b=\"1\",instance=\"i-1\"} 0@1700000000123");
    ck_has(&st, "{__name__=\"g\",a=\"4\",b=\"3\",c=\"x\",instance=\"i-1\"} 1@1700000001123");
    ck_has(&st, "{__name__=\"g\",a=\"5\",b=\"6\",d=\"7\",instance=\"i-1\"} 2@1700000002123");
    ck_has(&st, "{__name__=\"g\",a=\"9\",b=\"8\",c=\"y\",instance=\"i-1\"} 3@1700000003123");
    ck_has(&st, "{__name__=\"g\",instance=\"i-1\",q=\"3\",x_y=\"1;2\"} 4@1700000004123");
    ck_has(&st, "{__name__=\"g\",instance=\"i-1\",q=\"6\",x_y=\"4;5\"} 5@1700000005123");
    ck_has(&st, "{__name__=\"g\",a_b=\"1\",a_z=\"2\",e=\"3\",instance=\"i-1\"} 6@1700000006123");
    ck_has(&st, "{__name__=\"g\",a_b=\"4\",a_z=\"5\",e=\"6\",instance=\"i-1\"} 7@1700000007123");
    ck_has(&st, "{__name__=\"g\",instance=\"i-1\"} 8@1700000008123");
    ck_has(&st, "{__name__=\"g\",a=\"1\",instance=\"i-1\",job=\"j\"} 9@1700000009123");
    ck_has(&st, "{__name__=\"g\",a=\"caf\xc3\xa9\",b=\"0123456789abcdef\xc3\xa9\",c=\"1\",instance=\"i-1\"} "
                "11@1700000011123");
    ck_assert_uint_eq(st.n, NP - 1);
    otlp_free(o);
}
END_TEST

START_TEST(test_errors) {
    static storage st;
    otlp *o = receiver(&st);
    arena a;
    arena_init(&a, 0);
    char body[] = "\x0a\xff\xff\xff\x0f";
    http_header hs[1] = {{"Content-Type", "application/x-protobuf"}};
    http_req req;
    memset(&req, 0, sizeof req);
    req.method = "POST";
    req.headers = hs;
    req.nheaders = 1;
    req.arena = &a;
    req.body = body;
    req.body_len = sizeof body - 1;
    http_resp resp;
    memset(&resp, 0, sizeof resp);
    otlp_handle(o, &req, &resp);
    ck_assert_int_eq(resp.status, 400);
    Kiln__Otlp__Status *s = kiln__otlp__status__unpack(NULL, resp.body.len, (uint8_t *)resp.body.data);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->code, 3);
    ck_assert_ptr_nonnull(strstr(s->message, "ExportMetricsServiceRequest"));
    kiln__otlp__status__free_unpacked(s, NULL);
    buf_free(&resp.body);

    /* JSON is answered in JSON */
    hs[0].value = "application/json";
    memset(&resp, 0, sizeof resp);
    otlp_handle(o, &req, &resp);
    ck_assert_str_eq(resp.content_type, "application/json");
    ck_assert_int_ne(resp.status, 200);
    buf_free(&resp.body);
    ck_assert_uint_eq(st.n, 0);
    arena_free(&a);
    otlp_free(o);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("otlp");
    TCase *tc = tcase_create("core");
    log_setup(LOG_ERROR, LOG_FORMAT_LOGFMT);
    tcase_add_test(tc, test_metric_names);
    tcase_add_test(tc, test_label_names);
    tcase_add_test(tc, test_translation);
    tcase_add_test(tc, test_repeated_layouts);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}
