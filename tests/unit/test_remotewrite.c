/*
 * test_remotewrite.c - the remote write receiver (api/remotewrite.c):
 * decoding, validation, the answers to every kind of bad body, and what
 * reaches the appender.
 *
 * Request bodies are built with the protoc-c pack functions and libsnappy.
 * The storage is a fake defined here (storage_appender, appender_append,
 * appender_append_histogram, appender_commit, appender_rollback,
 * storage_exemplars: none): it records what was committed (a histogram as
 * a sample of its count, the last one kept whole) and
 * rejects samples like the head does (out of order, duplicate, out of
 * bounds), so the tests see exactly what the receiver hands to storage.
 */
#include <math.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/remote.pb-c.h"
#include "storage/storage.h"

#define KILN_TEST_MAIN
#include "testutil.h"

/* ---- a fake storage ------------------------------------------------------ */

#define FS_MAX_SERIES 64
#define FS_MAX_SAMPLES 4096

typedef struct fs_rec {
    size_t series;
    int64_t t;
    uint64_t vbits;
} fs_rec;

struct storage {
    char keys[FS_MAX_SERIES][512];
    int64_t last_t[FS_MAX_SERIES];
    uint64_t last_v[FS_MAX_SERIES];
    size_t nseries;
    fs_rec recs[FS_MAX_SAMPLES];
    size_t nrecs;
    int64_t min_t;   /* samples before: out of bounds */
    int fail_commit; /* commit returns KILN_EIO */
    size_t nomem_at; /* the nth append (1-based) returns KILN_ENOMEM; 0 never */
    size_t appends, lookups, commits, rollbacks, open;
    size_t hists;     /* appender_append_histogram calls */
    histogram last_h; /* the last histogram appended, its arrays copied below */
    hist_span last_spans[8];
    double last_pos[16];
};

struct appender {
    storage *st;
    fs_rec staged[FS_MAX_SAMPLES];
    size_t n;
};

static uint64_t dbits(double v) {
    uint64_t b;
    memcpy(&b, &v, 8);
    return b;
}

appender *storage_appender(storage *s) {
    appender *a = calloc(1, sizeof *a);
    a->st = s;
    s->open++;
    return a;
}

int appender_append(appender *a, uint64_t *ref, const label *ls, size_t n, int64_t t, double v,
                    kiln_err *err) {
    storage *st = a->st;
    size_t idx;
    st->appends++;
    if (st->nomem_at && st->appends == st->nomem_at)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    if (*ref == 0) {
        char key[512] = "";
        size_t k = 0;
        ck_assert_ptr_nonnull(ls);
        for (size_t i = 0; i < n; i++) {
            ck_assert(strlen(ls[i].value) > 0);
            if (i)
                ck_assert_int_lt(strcmp(ls[i - 1].name, ls[i].name), 0);
            k += (size_t)snprintf(key + k, sizeof key - k, "%s%s=%s", i ? "," : "", ls[i].name, ls[i].value);
        }
        st->lookups++;
        for (idx = 0; idx < st->nseries && strcmp(st->keys[idx], key); idx++)
            ;
        if (idx == st->nseries) {
            ck_assert_uint_lt(idx, FS_MAX_SERIES);
            snprintf(st->keys[idx], sizeof st->keys[idx], "%s", key);
            st->last_t[idx] = INT64_MIN;
            st->nseries++;
        }
    } else {
        ck_assert_ptr_null(ls);
        idx = (size_t)(*ref - 1);
    }
    int64_t last = st->last_t[idx];
    uint64_t lastv = st->last_v[idx];
    for (size_t i = 0; i < a->n; i++)
        if (a->staged[i].series == idx && a->staged[i].t >= last) {
            last = a->staged[i].t;
            lastv = a->staged[i].vbits;
        }
    if (t < st->min_t)
        return kiln_err_set(err, KILN_ERANGE, "out of bounds");
    if (t < last)
        return kiln_err_set(err, KILN_EORDER, "out of order sample");
    if (t == last && dbits(v) != lastv)
        return kiln_err_set(err, KILN_EEXIST, "duplicate sample for timestamp");
    *ref = idx + 1;
    if (t == last)
        return 0; /* the same sample again: accepted, nothing new (like Prometheus) */
    ck_assert_uint_lt(a->n, FS_MAX_SAMPLES);
    a->staged[a->n++] = (fs_rec){idx, t, dbits(v)};
    *ref = idx + 1;
    return 0;
}

/* A histogram follows the float rules, as a sample whose value is its count. */
int appender_append_histogram(appender *a, uint64_t *ref, const label *ls, size_t n, int64_t t,
                              const histogram *h, kiln_err *err) {
    storage *st = a->st;
    uint64_t covered = 0;
    for (uint32_t i = 0; i < h->npos_spans; i++)
        covered += h->pos_spans[i].length;
    ck_assert_uint_eq(covered, h->npos); /* the receiver checked the spans */
    st->hists++;
    st->last_h = *h;
    ck_assert_uint_le(h->npos_spans, 8);
    ck_assert_uint_le(h->npos, 16);
    memcpy(st->last_spans, h->pos_spans, h->npos_spans * sizeof *h->pos_spans);
    memcpy(st->last_pos, h->pos, h->npos * sizeof *h->pos);
    return appender_append(a, ref, ls, n, t, h->count, err);
}

int appender_commit(appender *a, kiln_err *err) {
    storage *st = a->st;
    int rc = 0;
    st->open--;
    if (st->fail_commit) {
        rc = kiln_err_set(err, KILN_EIO, "write WAL segment 3: No space left on device");
        goto out;
    }
    st->commits++;
    for (size_t i = 0; i < a->n; i++) {
        ck_assert_uint_lt(st->nrecs, FS_MAX_SAMPLES);
        st->recs[st->nrecs++] = a->staged[i];
        st->last_t[a->staged[i].series] = a->staged[i].t;
        st->last_v[a->staged[i].series] = a->staged[i].vbits;
    }
out:
    free(a);
    return rc;
}

void appender_trust_labels(appender *a) {
    (void)a;
}

exemplar_store *storage_exemplars(storage *s) {
    (void)s;
    return NULL; /* exemplar storage off: exemplars are counted as dropped */
}

int appender_append_exemplar(appender *a, uint64_t ref, const exemplar *e, kiln_err *err) {
    (void)a, (void)ref, (void)e, (void)err;
    ck_abort_msg("an exemplar staged with exemplar storage off");
    return 0;
}

void appender_rollback(appender *a) {
    a->st->open--;
    a->st->rollbacks++;
    free(a);
}

/* The index of the series with this key, or -1. */
static int fs_series(const storage *st, const char *key) {
    for (size_t i = 0; i < st->nseries; i++)
        if (!strcmp(st->keys[i], key))
            return (int)i;
    return -1;
}

/* Number of committed samples of a series. */
static size_t fs_count(const storage *st, const char *key) {
    int idx = fs_series(st, key);
    size_t n = 0;
    for (size_t i = 0; i < st->nrecs; i++)
        n += idx >= 0 && st->recs[i].series == (size_t)idx;
    return n;
}

/* ---- building requests ----------------------------------------------------- */

typedef struct body {
    char *p;
    size_t n;
} body;

typedef struct wr_builder {
    arena a;
    Kiln__Remote__WriteRequest wr;
    Kiln__Remote__TimeSeries *ts[64];
} wr_builder;

static void wb_init(wr_builder *b) {
    arena_init(&b->a, 0);
    Kiln__Remote__WriteRequest init = KILN__REMOTE__WRITE_REQUEST__INIT;
    b->wr = init;
    b->wr.timeseries = b->ts;
}

static Kiln__Remote__Label **mk_labels(arena *a, const char *const *kv, size_t n) {
    Kiln__Remote__Label **v = arena_alloc(a, (n + 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        Kiln__Remote__Label init = KILN__REMOTE__LABEL__INIT;
        v[i] = arena_alloc(a, sizeof *v[i]);
        *v[i] = init;
        v[i]->name.data = (uint8_t *)kv[2 * i];
        v[i]->name.len = strlen(kv[2 * i]);
        v[i]->value.data = (uint8_t *)kv[2 * i + 1];
        v[i]->value.len = strlen(kv[2 * i + 1]);
    }
    return v;
}

/* Adds a series: kv is name, value, ..., NULL; samples (t, v) pairs. */
static Kiln__Remote__TimeSeries *wb_series(wr_builder *b, const char *const *kv, const int64_t *ts,
                                           const double *vs, size_t ns) {
    size_t nl = 0;
    while (kv[2 * nl])
        nl++;
    Kiln__Remote__TimeSeries init = KILN__REMOTE__TIME_SERIES__INIT;
    Kiln__Remote__TimeSeries *s = arena_alloc(&b->a, sizeof *s);
    *s = init;
    s->n_labels = nl;
    s->labels = mk_labels(&b->a, kv, nl);
    s->n_samples = ns;
    s->samples = arena_alloc(&b->a, (ns + 1) * sizeof *s->samples);
    for (size_t i = 0; i < ns; i++) {
        Kiln__Remote__Sample si = KILN__REMOTE__SAMPLE__INIT;
        s->samples[i] = arena_alloc(&b->a, sizeof *s->samples[i]);
        *s->samples[i] = si;
        s->samples[i]->timestamp = ts[i];
        s->samples[i]->value = vs[i];
    }
    ck_assert_uint_lt(b->wr.n_timeseries, 64);
    b->ts[b->wr.n_timeseries++] = s;
    return s;
}

static body compress(const void *raw, size_t n) {
    body out;
    size_t cap = snappy_max_compressed_length(n);
    out.p = malloc(cap);
    out.n = cap;
    ck_assert_int_eq(snappy_compress(raw, n, out.p, &out.n), SNAPPY_OK);
    return out;
}

/* Packs and compresses; frees the builder. */
static body wb_finish(wr_builder *b) {
    size_t n = kiln__remote__write_request__get_packed_size(&b->wr);
    uint8_t *raw = malloc(n + 1);
    ck_assert_uint_eq(kiln__remote__write_request__pack(&b->wr, raw), n);
    body out = compress(raw, n);
    free(raw);
    arena_free(&b->a);
    return out;
}

/* ---- running the handler ----------------------------------------------------- */

typedef struct result {
    int status;
    char text[2048];
    size_t arena_used;
} result;

static remotewrite *new_rw(storage *st) {
    remotewrite_opts o;
    remotewrite_opts_default(&o);
    remotewrite *rw = NULL;
    kiln_err err = {0};
    ck_assert_int_eq(remotewrite_new(st, &o, &rw, &err), 0);
    return rw;
}

static result post_h(remotewrite *rw, const void *p, size_t n, const char *ce, const char *ct) {
    arena a;
    arena_init(&a, 0);
    http_header hdr[2];
    size_t nh = 0;
    if (ce)
        hdr[nh++] = (http_header){"Content-Encoding", (char *)ce};
    if (ct)
        hdr[nh++] = (http_header){"Content-Type", (char *)ct};
    http_req req;
    memset(&req, 0, sizeof req);
    req.method = "POST";
    req.path = "/api/v1/write";
    req.query = "";
    req.arena = &a;
    /* the server's body is NUL-terminated; keep that, in a buffer of exactly n + 1 */
    req.body = malloc(n + 1);
    if (n)
        memcpy(req.body, p, n);
    req.body[n] = 0;
    req.body_len = n;
    req.headers = hdr;
    req.nheaders = nh;
    http_resp resp;
    memset(&resp, 0, sizeof resp);
    resp.status = 200;
    remotewrite_handle(rw, &req, &resp);
    result r;
    r.status = resp.status;
    snprintf(r.text, sizeof r.text, "%s", resp.body.data ? resp.body.data : "");
    r.arena_used = a.used_total;
    buf_free(&resp.body);
    buf_free(&resp.headers);
    free(req.body);
    arena_free(&a);
    return r;
}

static result post(remotewrite *rw, const void *p, size_t n) {
    return post_h(rw, p, n, "snappy", "application/x-protobuf");
}

static result post_body(remotewrite *rw, body b) {
    result r = post(rw, b.p, b.n);
    free(b.p);
    return r;
}

/* A 4xx/5xx text is exactly one line. */
static void assert_one_line(const result *r) {
    size_t n = strlen(r->text);
    ck_assert_uint_gt(n, 1);
    ck_assert_int_eq(r->text[n - 1], '\n');
    ck_assert_ptr_eq(strchr(r->text, '\n'), r->text + n - 1);
}

static int metrics_has(const char *line) {
    buf b = BUF_INIT;
    ck_assert_int_eq(metrics_write_text(&b), 0);
    int found = b.data && strstr(b.data, line) != NULL;
    if (!found)
        fprintf(stderr, "metrics lack \"%s\":\n%s\n", line, b.data ? b.data : "");
    buf_free(&b);
    return found;
}

static void done(remotewrite *rw) {
    remotewrite_free(rw);
    metrics_shutdown();
}

/* ---- the tests ------------------------------------------------------------ */

START_TEST(test_valid_request) {
    storage st = {0};
    remotewrite *rw = new_rw(&st);
    wr_builder b;
    wb_init(&b);
    const char *s1[] = {"__name__", "up", "instance", "a:9100", "job", "node", NULL};
    const char *s2[] = {"__name__", "node_load1", "empty", "", "job", "node", NULL};
    const char *s3[] = {"__name__", "cafe_total", "city", "M\xc3\xbcnchen", NULL};
    int64_t t[] = {1000, 2000, 3000};
    double v1[] = {1, 0, 1}, v2[] = {0.25, 0.5, -1e300}, v3[] = {42};
    wb_series(&b, s1, t, v1, 3);
    wb_series(&b, s2, t, v2, 3);
    wb_series(&b, s3, t, v3, 1);
    result r = post_body(rw, wb_finish(&b));
    ck_assert_int_eq(r.status, 204);
    ck_assert_str_eq(r.text, "");
    ck_assert_uint_eq(st.commits, 1);
    ck_assert_uint_eq(st.rollbacks, 0);
    ck_assert_uint_eq(st.open, 0);
    ck_assert_uint_eq(st.nrecs, 7);
    ck_assert_uint_eq(fs_count(&st, "__name__=up,instance=a:9100,job=node"), 3);
    /* the empty-valued label is dropped, not stored as "" */
    ck_assert_uint_eq(fs_count(&st, "__name__=node_load1,job=node"), 3);
    ck_assert_uint_eq(fs_count(&st, "__name__=cafe_total,city=M\xc3\xbcnchen"), 1);
    /* values and timestamps arrive unchanged, in order */
    int i2 = fs_series(&st, "__name__=node_load1,job=node");
    size_t k = 0;
    for (size_t i = 0; i < st.nrecs; i++)
        if (st.recs[i].series == (size_t)i2) {
            ck_assert_int_eq(st.recs[i].t, t[k]);
            ck_assert_uint_eq(st.recs[i].vbits, dbits(v2[k]));
            k++;
        }
    /* one label lookup per series; later samples go by reference */
    ck_assert_uint_eq(st.lookups, 3);
    ck_assert_uint_eq(st.appends, 7);
    ck_assert(metrics_has("kiln_remote_write_requests_total{code=\"204\"} 1\n"));
    ck_assert(metrics_has("kiln_remote_write_samples_received_total 7\n"));
    ck_assert(metrics_has("kiln_remote_write_decode_duration_seconds_count 1\n"));
    done(rw);
}
END_TEST

START_TEST(test_stale_marker_kept) {
    storage st = {0};
    remotewrite *rw = new_rw(&st);
    uint64_t stale_bits = 0x7ff0000000000002ull;
    double stale;
    memcpy(&stale, &stale_bits, 8);
    wr_builder b;
    wb_init(&b);
    const char *s1[] = {"__name__", "up", NULL};
    int64_t t[] = {1000, 2000};
    double v[] = {1, stale};
    wb_series(&b, s1, t, v, 2);
    result r = post_body(rw, wb_finish(&b));
    ck_assert_int_eq(r.status, 204);
    ck_assert_uint_eq(st.nrecs, 2);
    ck_assert_uint_eq(st.recs[1].vbits, stale_bits);
    done(rw);
}
END_TEST

START_TEST(test_empty_request) {
    storage st = {0};
    remotewrite *rw = new_rw(&st);
    wr_builder b;
    wb_init(&b);
    result r = post_body(rw, wb_finish(&b));
    ck_assert_int_eq(r.status, 204);
    ck_assert_uint_eq(st.appends, 0);
    ck_assert_uint_eq(st.commits + st.rollbacks + st.open, 0);
    done(rw);
}
END_TEST

START_TEST(test_not_snappy) {
    storage st = {0};
    remotewrite *rw = new_rw(&st);
    /* raw protobuf without compression, a text body, an empty body */
    static const unsigned char pb[] = {0x0a, 0x0b, 0x0a, 0x09, 0x0a, 0x01, 'a',
                                       0x12, 0x04, 'b',  'c',  'd',  'e'};
    const struct {
        const char *p;
        size_t n;
    } cases[] = {
        {(const char *)pb, sizeof pb}, {"hello, world", 12}, {"", 0}, {"\xff\xff\xff\xff\xff\xff", 6}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        result r = post(rw, cases[i].p, cases[i].n);
        ck_assert_msg(r.status == 400, "case %zu: %d %s", i, r.status, r.text);
        assert_one_line(&r);
        ck_assert_ptr_nonnull(strstr(r.text, "snappy"));
    }
    ck_assert_uint_eq(st.appends, 0);
    ck_assert(metrics_has("kiln_remote_write_requests_total{code=\"400\"} 4\n"));
    done(rw);
}
END_TEST

START_TEST(test_truncated_snappy) {
    storage st = {0};
    remotewrite *rw = new_rw(&st);
    wr_builder b;
    wb_init(&b);
    const char *s1[] = {"__name__", "up", "job", "a_rather_long_job_name_to_get_some_bytes", NULL};
    const char *s2[] = {"__name__", "up", "job", "another_rather_long_job_name", NULL};
    int64_t t[] = {1, 2, 3, 4, 5, 6, 7, 8};
    double v[] = {1, 2, 3, 4, 5, 6, 7, 8};
    wb_series(&b, s1, t, v, 8);
    wb_series(&b, s2, t, v, 8);
    body full = wb_finish(&b);
    for (size_t cut = 1; cut < full.n; cut += 7) {
        result r = post(rw, full.p, cut);
        ck_assert_msg(r.status == 400, "cut %zu: %d %s", cut, r.status, r.text);
        assert_one_line(&r);
    }
    ck_assert_uint_eq(st.appends, 0);
    /* the uncut body still works */
    result r = post(rw, full.p, full.n);
    ck_assert_int_eq(r.status, 204);
    ck_assert_uint_eq(st.nrecs, 16);
    free(full.p);
    done(rw);
}
END_TEST

START_TEST(test_garbage_protobuf) {
    storage st = {0};
    remotewrite *rw = new_rw(&st);
    static const struct {
        const char *p;
        size_t n;
        const char *what;
    } cases[] = {
        {"\xff\xff\xff\xff", 4, "bad wire type"},
        {"\x0a\x05\x0a\x03", 4, "series shorter than its length"},
        /* a varint of 11 bytes: longer than any 64-bit varint */
        {"\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12, "huge varint"},
        /* a length prefix of 2^62 */
        {"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x40", 10, "huge length"},
        /* a sample whose timestamp varint runs off the end */
        {"\x0a\x06\x12\x04\x10\xff\xff\xff", 8, "truncated varint"},
        {"\x0a\x02\x0a\x00\x0f", 5, "end-group tag"},
        {"this is not protobuf at all", 27, "text"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        body bd = compress(cases[i].p, cases[i].n);
        result r = post_body(rw, bd);
        ck_assert_msg(r.status == 400, "%s: %d %s", cases[i].what, r.status, r.text);
        assert_one_line(&r);
        ck_assert_msg(strstr(r.text, "protobuf") != NULL, "%s: %s", cases[i].what, r.text);
    }
    ck_assert_uint_eq(st.appends, 0);
    done(rw);
}
END_TEST

/* A label table: each bad series sent next to a good one; the good one is stored. */
START_TEST(test_bad_labels) {
    static const struct {
        const char *kv[9];
        const char *want;
    } cases[] = {
        {{"job", "a", "__name__", "up", NULL}, "labels not sorted by name: \"job\" before \"__name__\""},
        {{"__name__", "up", "job", "a", "job", "b", NULL}, "duplicate label name \"job\""},
        {{"", "x", "__name__", "up", NULL}, "empty label name"},
        {{"job", "a", NULL}, "missing metric name"},
        {{"__name__", "", "job", "a", NULL}, "missing metric name"},
        {{"__name__", "up", "job", "a\xff\xfe", NULL}, "invalid UTF-8 in the value of label \"job\""},
        {{"__name__", "up", "job", "\xc3", NULL}, "invalid UTF-8 in the value of label \"job\""},
        {{"1abc", "x", "__name__", "up", NULL}, "invalid label name \"1abc\""},
        {{"__name__", "up", "a-b", "x", NULL}, "invalid label name \"a-b\""},
        {{"__name__", "up-time", NULL}, "invalid metric name \"up-time\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        storage st = {0};
        remotewrite *rw = new_rw(&st);
        wr_builder b;
        wb_init(&b);
        const char *good[] = {"__name__", "good", NULL};
        int64_t t[] = {10, 20};
        double v[] = {1, 2};
        wb_series(&b, good, t, v, 1);
        wb_series(&b, cases[i].kv, t, v, 2);
        wb_series(&b, good, t + 1, v + 1, 1);
        result r = post_body(rw, wb_finish(&b));
        ck_assert_msg(r.status == 400, "case %zu: %d %s", i, r.status, r.text);
        assert_one_line(&r);
        ck_assert_msg(strstr(r.text, cases[i].want) != NULL, "case %zu: %s", i, r.text);
        ck_assert_msg(strncmp(r.text, "invalid series {", 16) == 0, "case %zu: %s", i, r.text);
        ck_assert_msg(strstr(r.text, "; 2 of 4 samples rejected\n") != NULL, "case %zu: %s", i, r.text);
        ck_assert_uint_eq(fs_count(&st, "__name__=good"), 2);
        ck_assert_uint_eq(st.nseries, 1);
        ck_assert(metrics_has("kiln_remote_write_samples_rejected_total{reason=\"invalid_labels\"} 2\n"));
        ck_assert(metrics_has("kiln_remote_write_requests_total{code=\"400\"} 1\n"));
        done(rw);
    }
}
END_TEST

START_TEST(test_nul_in_value) {
    storage st = {0};
    remotewrite *rw = new_rw(&st);
    wr_builder b;
    wb_init(&b);
    const char *kv[] = {"__name__", "up", "job", "abc", NULL};
    int64_t t[] = {10};
    double v[] = {1};
    Kiln__Remote__TimeSeries *s = wb_series(&b, kv, t, v, 1);
    s->labels[1]->value.data = (uint8_t *)"a\0c";
    result r = post_body(rw, wb_finish(&b));
    /* kept whole, as Prometheus keeps it: the NUL as C0 80 inside kiln (util/strnul.c) */
    ck_assert_int_eq(r.status, 204);
    ck_assert_uint_eq(fs_count(&st, "__name__=up,job=a\xc0\x80"
                                    "c"),
                      1);
    ck_assert_uint_eq(st.appends, 1);
    done(rw);
}
END_TEST

START_TEST(test_huge_label_value) {
    storage st = {0};
    remotewrite *rw = new_rw(&st);
    size_t n = 1 << 20;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = 0;
    wr_builder b;
    wb_init(&b);
    const char *kv[] = {"__name__", "up", "blob", big, NULL};
    const char *good[] = {"__name__", "fine", NULL};
    int64_t t[] = {10};
    double v[] = {1};
    wb_series(&b, kv, t, v, 1);
    wb_series(&b, good, t, v, 1);
    result r = post_body(rw, wb_finish(&b));
    ck_assert_int_eq(r.status, 400);
    assert_one_line(&r);
    ck_assert_ptr_nonnull(
        strstr(r.text, "value of label \"blob\" is 1048576 bytes, more than the limit of 65536"));
    /* the value is shown cut short, not in full */
    ck_assert_uint_lt(strlen(r.text), 1100);
    ck_assert_ptr_nonnull(strstr(r.text, "...(1048576 bytes)"));
    ck_assert_uint_eq(fs_count(&st, "__name__=fine"), 1);
    free(big);
    done(rw);
}
END_TEST

START_TEST(test_many_labels) {
    storage st = {0};
    remotewrite *rw = new_rw(&st);
    size_t n = 10000;
    const char **kv = calloc(2 * n + 2, sizeof *kv);
    char(*names)[16] = calloc(n, sizeof *names);
    kv[0] = "__name__";
    kv[1] = "up";
    for (size_t i = 1; i < n; i++) {
        snprintf(names[i], sizeof names[i], "l%05zu", i);
        kv[2 * i] = names[i];
        kv[2 * i + 1] = "v";
    }
    wr_builder b;
    wb_init(&b);
    int64_t t[] = {10};
    double v[] = {1};
    wb_series(&b, kv, t, v, 1);
    result r = post_body(rw, wb_finish(&b));
    ck_assert_int_eq(r.status, 400);
    assert_one_line(&r);
    ck_assert_ptr_nonnull(strstr(r.text, "10000 labels, more than the limit of 256"));
    ck_assert_ptr_nonnull(strstr(r.text, "...9988 more labels}"));
    ck_assert_uint_eq(st.appends, 0);
    free(kv);
    free(names);
    done(rw);
}
END_TEST

START_TEST(test_decompressed_too_large) {
    storage st = {0};
    remotewrite *rw = new_rw(&st);
    /* a snappy header claiming 1 GiB (varint 0x40000000), then a little garbage */
    static const char claim[] = "\x80\x80\x80\x80\x04\x00\x01\x02\x03";
    result r = post(rw, claim, sizeof claim - 1);
    ck_assert_int_eq(r.status, 413);
    assert_one_line(&r);
    ck_assert_ptr_nonnull(strstr(r.text, "1073741824 bytes, more than the limit of 33554432"));
    /* refused before decoding: nothing taken from the request arena */
    ck_assert_uint_eq(r.arena_used, 0);
    ck_assert(metrics_has("kiln_remote_write_requests_total{code=\"413\"} 1\n"));
    done(rw);
}
END_TEST

START_TEST(test_decompressed_limit_flag) {
    storage st = {0};
    remotewrite_opts o;
    remotewrite_opts_default(&o);
    o.max_decompressed_bytes = 100;
    remotewrite *rw = NULL;
    ck_assert_int_eq(remotewrite_new(&st, &o, &rw, NULL), 0);
    wr_builder b;
    wb_init(&b);
    const char *kv[] = {"__name__", "up", "job", "0123456789012345678901234567890123456789", NULL};
    int64_t t[] = {1, 2, 3, 4};
    double v[] = {1, 2, 3, 4};
    wb_series(&b, kv, t, v, 4);
    wb_series(&b, kv, t, v, 4);
    result r = post_body(rw, wb_finish(&b));
    ck_assert_int_eq(r.status, 413);
    ck_assert_ptr_nonnull(strstr(r.text, "more than the limit of 100 bytes"));
    /* a small one still passes */
    wb_init(&b);
    const char *small[] = {"__name__", "up", NULL};
    wb_series(&b, small, t, v, 1);
    r = post_body(rw, wb_finish(&b));
    ck_assert_int_eq(r.status, 204);
    done(rw);
}
END_TEST

/* Decoded structures are bigger than their wire form; a body of nothing but
 * empty labels would blow up 32 times, and is refused at the decode bound. */
START_TEST(test_decode_memory_bound) {
    storage st = {0};
    remotewrite *rw = new_rw(&st);
    size_t nlabels = 2u << 20; /* 2 bytes each on the wire: 4 MiB */
    size_t inner = 2 * nlabels;
    size_t n = 1 + 4 + inner; /* tag, 4-byte length, labels */
    unsigned char *raw = malloc(n);
    raw[0] = 0x0a;
    raw[1] = (unsigned char)(0x80 | (inner & 0x7f));
    raw[2] = (unsigned char)(0x80 | ((inner >> 7) & 0x7f));
    raw[3] = (unsigned char)(0x80 | ((inner >> 14) & 0x7f));
    raw[4] = (unsigned char)((inner >> 21) & 0x7f);
    for (size_t i = 0; i < nlabels; i++) {
        raw[5 + 2 * i] = 0x0a;
        raw[6 + 2 * i] = 0x00;
    }
    result r = post_body(rw, compress(raw, n));
    free(raw);
    ck_assert_int_eq(r.status, 413);
    assert_one_line(&r);
    ck_assert_ptr_nonnull(strstr(r.text, "decoding the request needs more than"));
    /* bounded: 16 x 4 MiB + 1 MiB, plus one chunk of slack */
    ck_assert_uint_le(r.arena_used, ((size_t)65 << 20) + (512u << 10));
    done(rw);
}
END_TEST

START_TEST(test_out_of_order_partial) {
    storage st = {0};
    st.min_t = 100;
    remotewrite *rw = new_rw(&st);
    wr_builder b;
    wb_init(&b);
    const char *a[] = {"__name__", "a", NULL};
    const char *c[] = {"__name__", "c", "x", "y", NULL};
    int64_t ta[] = {1000, 2000, 1500, 3000}; /* 1500 is out of order */
    double va[] = {1, 2, 3, 4};
    int64_t tc[] = {50, 200, 200, 300}; /* 50 out of bounds, second 200 duplicate (other value) */
    double vc[] = {1, 2, 9, 4};
    wb_series(&b, a, ta, va, 4);
    wb_series(&b, c, tc, vc, 4);
    result r = post_body(rw, wb_finish(&b));
    ck_assert_int_eq(r.status, 400);
    assert_one_line(&r);
    ck_assert_str_eq(
        r.text,
        "out of order sample for series {__name__=\"a\"} at timestamp 1500; 3 of 8 samples rejected\n");
    ck_assert_uint_eq(st.commits, 1);
    ck_assert_uint_eq(fs_count(&st, "__name__=a"), 3);
    ck_assert_uint_eq(fs_count(&st, "__name__=c,x=y"), 2);
    ck_assert(metrics_has("kiln_remote_write_samples_rejected_total{reason=\"out_of_order\"} 1\n"));
    ck_assert(metrics_has("kiln_remote_write_samples_rejected_total{reason=\"out_of_bounds\"} 1\n"));
    ck_assert(metrics_has("kiln_remote_write_samples_rejected_total{reason=\"duplicate\"} 1\n"));

    /* a resend of what is stored: same values are no-ops, so 204 */
    wb_init(&b);
    int64_t t2[] = {3000};
    double v2[] = {4};
    wb_series(&b, a, t2, v2, 1);
    r = post_body(rw, wb_finish(&b));
    ck_assert_int_eq(r.status, 204);

    /* everything rejected: no commit at all */
    size_t commits = st.commits;
    wb_init(&b);
    int64_t t3[] = {10};
    wb_series(&b, a, t3, v2, 1);
    r = post_body(rw, wb_finish(&b));
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(
        strstr(r.text, "out of bounds for series {__name__=\"a\"} at timestamp 10; 1 of 1 samples"));
    ck_assert_uint_eq(st.commits, commits);
    ck_assert_uint_eq(st.open, 0);
    done(rw);
}
END_TEST

START_TEST(test_storage_failures_are_5xx) {
    storage st = {0};
    remotewrite *rw = new_rw(&st);
    const char *a[] = {"__name__", "a", NULL};
    int64_t t[] = {1, 2, 3};
    double v[] = {1, 2, 3};

    st.fail_commit = 1;
    wr_builder b;
    wb_init(&b);
    wb_series(&b, a, t, v, 3);
    result r = post_body(rw, wb_finish(&b));
    ck_assert_int_eq(r.status, 500);
    assert_one_line(&r);
    ck_assert_ptr_nonnull(strstr(r.text, "No space left on device"));
    ck_assert_uint_eq(st.nrecs, 0);

    st.fail_commit = 0;
    st.nomem_at = st.appends + 2;
    wb_init(&b);
    wb_series(&b, a, t, v, 3);
    r = post_body(rw, wb_finish(&b));
    ck_assert_int_eq(r.status, 500);
    ck_assert_uint_eq(st.rollbacks, 1);
    ck_assert_uint_eq(st.nrecs, 0);
    ck_assert_uint_eq(st.open, 0);

    /* the retry a sender makes after a 5xx succeeds */
    st.nomem_at = 0;
    wb_init(&b);
    wb_series(&b, a, t, v, 3);
    r = post_body(rw, wb_finish(&b));
    ck_assert_int_eq(r.status, 204);
    ck_assert_uint_eq(st.nrecs, 3);
    ck_assert(metrics_has("kiln_remote_write_requests_total{code=\"500\"} 2\n"));
    done(rw);
}
END_TEST

START_TEST(test_exemplars_histograms_metadata) {
    storage st = {0};
    remotewrite *rw = new_rw(&st);
    arena a;
    arena_init(&a, 0);
    wr_builder b;
    wb_init(&b);
    const char *kv[] = {"__name__", "http_requests_total", NULL};
    int64_t t[] = {1000};
    double v[] = {5};
    Kiln__Remote__TimeSeries *s = wb_series(&b, kv, t, v, 1);

    /* two exemplars on the float series */
    const char *ekv[] = {"trace_id", "abc123"};
    Kiln__Remote__Exemplar ex = KILN__REMOTE__EXEMPLAR__INIT;
    ex.n_labels = 1;
    ex.labels = mk_labels(&a, ekv, 1);
    ex.value = 0.3;
    ex.timestamp = 999;
    Kiln__Remote__Exemplar *exs[2] = {&ex, &ex};
    s->n_exemplars = 2;
    s->exemplars = exs;

    /* a series with three native histogram samples and no float samples */
    const char *hkv[] = {"__name__", "rpc_duration_seconds", NULL};
    Kiln__Remote__TimeSeries *hs = wb_series(&b, hkv, t, v, 0);
    Kiln__Remote__Histogram h = KILN__REMOTE__HISTOGRAM__INIT;
    h.count_case = KILN__REMOTE__HISTOGRAM__COUNT_COUNT_INT;
    h.count_int = 7;
    h.sum = 12.5;
    h.schema = 3;
    Kiln__Remote__BucketSpan span = KILN__REMOTE__BUCKET_SPAN__INIT;
    span.offset = -2;
    span.length = 2;
    Kiln__Remote__BucketSpan *spans[1] = {&span};
    int64_t deltas[2] = {3, 1};
    h.n_positive_spans = 1;
    h.positive_spans = spans;
    h.n_positive_deltas = 2;
    h.positive_deltas = deltas;
    h.timestamp = 1000;
    Kiln__Remote__Histogram *hv[3] = {&h, &h, &h};
    hs->n_histograms = 3;
    hs->histograms = hv;

    Kiln__Remote__MetricMetadata md = KILN__REMOTE__METRIC_METADATA__INIT;
    md.type = KILN__REMOTE__METRIC_METADATA__METRIC_TYPE__COUNTER;
    md.metric_family_name = "http_requests_total";
    md.help = "Requests.";
    md.unit = "";
    Kiln__Remote__MetricMetadata *mds[1] = {&md};
    b.wr.n_metadata = 1;
    b.wr.metadata = mds;

    result r = post_body(rw, wb_finish(&b));
    arena_free(&a);
    ck_assert_int_eq(r.status, 204);
    /* the float sample and the histogram (its two copies are the same sample again) */
    ck_assert_uint_eq(st.nrecs, 2);
    ck_assert_uint_eq(st.hists, 3);
    ck_assert_uint_eq(fs_count(&st, "__name__=http_requests_total"), 1);
    ck_assert_uint_eq(fs_count(&st, "__name__=rpc_duration_seconds"), 1);
    /* deltas 3, 1 are counts 3, 4 */
    ck_assert(st.last_h.is_int && st.last_h.schema == 3 && st.last_h.count == 7 && st.last_h.sum == 12.5);
    ck_assert_uint_eq(st.last_h.npos, 2);
    ck_assert(st.last_pos[0] == 3 && st.last_pos[1] == 4);
    ck_assert_int_eq(st.last_spans[0].offset, -2);
    ck_assert(metrics_has("kiln_remote_write_exemplars_dropped_total 2\n"));
    ck_assert(metrics_has("kiln_remote_write_histograms_received_total 3\n"));
    ck_assert(metrics_has("kiln_remote_write_metadata_received_total 1\n"));
    ck_assert(metrics_has("kiln_remote_write_samples_received_total 1\n"));
    done(rw);
}
END_TEST

/* A float histogram keeps its counts; spans that disagree with the buckets,
 * or counts in an integer histogram, are rejected (400), the rest stored. */
START_TEST(test_histogram_rules) {
    storage st = {0};
    remotewrite *rw = new_rw(&st);
    wr_builder b;
    wb_init(&b);
    const char *kv[] = {"__name__", "fh", NULL}, *bkv[] = {"__name__", "bad", NULL};
    Kiln__Remote__TimeSeries *s = wb_series(&b, kv, NULL, NULL, 0);
    Kiln__Remote__TimeSeries *bad = wb_series(&b, bkv, NULL, NULL, 0);
    Kiln__Remote__Histogram f = KILN__REMOTE__HISTOGRAM__INIT, g = KILN__REMOTE__HISTOGRAM__INIT,
                            i = KILN__REMOTE__HISTOGRAM__INIT;
    Kiln__Remote__BucketSpan span = KILN__REMOTE__BUCKET_SPAN__INIT;
    span.offset = 1;
    span.length = 2;
    Kiln__Remote__BucketSpan *spans[1] = {&span};
    double counts[2] = {0.5, 2.25};
    int64_t deltas[1] = {1};
    f.count_case = KILN__REMOTE__HISTOGRAM__COUNT_COUNT_FLOAT;
    f.count_float = 2.75;
    f.zero_count_case = KILN__REMOTE__HISTOGRAM__ZERO_COUNT_ZERO_COUNT_FLOAT;
    f.schema = -1;
    f.n_positive_spans = 1;
    f.positive_spans = spans;
    f.n_positive_counts = 2;
    f.positive_counts = counts;
    f.reset_hint = KILN__REMOTE__HISTOGRAM__RESET_HINT__RESET_GAUGE;
    f.timestamp = 2000;
    g = f; /* a float histogram with deltas too */
    g.n_positive_deltas = 1;
    g.positive_deltas = deltas;
    g.timestamp = 3000;
    i.count_case = KILN__REMOTE__HISTOGRAM__COUNT_COUNT_INT; /* 2 buckets, 1 delta */
    i.count_int = 1;
    i.n_positive_spans = 1;
    i.positive_spans = spans;
    i.n_positive_deltas = 1;
    i.positive_deltas = deltas;
    i.timestamp = 2000;
    Kiln__Remote__Histogram *fv[2] = {&f, &g}, *iv[1] = {&i};
    s->n_histograms = 2;
    s->histograms = fv;
    bad->n_histograms = 1;
    bad->histograms = iv;
    result r = post_body(rw, wb_finish(&b));
    ck_assert_int_eq(r.status, 400);
    assert_one_line(&r);
    ck_assert_msg(strstr(r.text,
                         "histogram spans and counts disagree (or deltas given in a float histogram) for "
                         "series {__name__=\"fh\"} at timestamp 3000"),
                  "%s", r.text);
    ck_assert_msg(strstr(r.text, "0 of 0 samples rejected, 2 of 3 histograms rejected"), "%s", r.text);
    ck_assert_uint_eq(st.hists, 1);
    ck_assert_uint_eq(st.nrecs, 1);
    ck_assert(!st.last_h.is_int && st.last_h.count == 2.75 && st.last_h.hint == HIST_HINT_GAUGE);
    ck_assert(st.last_pos[0] == 0.5 && st.last_pos[1] == 2.25);
    ck_assert(metrics_has("kiln_remote_write_samples_rejected_total{reason=\"invalid_labels\"} 2\n"));
    done(rw);
}
END_TEST

START_TEST(test_headers) {
    storage st = {0};
    remotewrite *rw = new_rw(&st);
    wr_builder b;
    wb_init(&b);
    const char *kv[] = {"__name__", "up", NULL};
    int64_t t[] = {1000};
    double v[] = {1};
    wb_series(&b, kv, t, v, 1);
    body bd = wb_finish(&b);

    result r = post_h(rw, bd.p, bd.n, "gzip", "application/x-protobuf");
    ck_assert_int_eq(r.status, 415);
    assert_one_line(&r);
    ck_assert_ptr_nonnull(strstr(r.text, "Content-Encoding \"gzip\""));

    r = post_h(rw, bd.p, bd.n, "snappy", "application/x-protobuf;proto=io.prometheus.write.v3.Request");
    ck_assert_int_eq(r.status, 415);
    ck_assert_ptr_nonnull(strstr(r.text, "\"io.prometheus.write.v3.Request\""));
    ck_assert_uint_eq(st.appends, 0);

    /* explicit 1.0, and no headers at all: both decode */
    r = post_h(rw, bd.p, bd.n, "SNAPPY", "application/x-protobuf; proto=prometheus.WriteRequest");
    ck_assert_int_eq(r.status, 204);
    r = post_h(rw, bd.p, bd.n, NULL, NULL);
    ck_assert_int_eq(r.status, 204);
    ck_assert_uint_eq(st.nrecs, 1);
    free(bd.p);
    done(rw);
}
END_TEST

START_TEST(test_disabled) {
    storage st = {0};
    remotewrite_opts o;
    remotewrite_opts_default(&o);
    o.enabled = 0;
    remotewrite *rw = NULL;
    ck_assert_int_eq(remotewrite_new(&st, &o, &rw, NULL), 0);
    wr_builder b;
    wb_init(&b);
    const char *kv[] = {"__name__", "up", NULL};
    int64_t t[] = {1000};
    double v[] = {1};
    wb_series(&b, kv, t, v, 1);
    result r = post_body(rw, wb_finish(&b));
    ck_assert_int_eq(r.status, 404);
    assert_one_line(&r);
    ck_assert_ptr_nonnull(strstr(r.text, "remote write receiver is disabled"));
    ck_assert_uint_eq(st.appends, 0);
    done(rw);
}
END_TEST

/* Fields kiln does not know (a newer sender) are skipped, not an error. */
START_TEST(test_unknown_fields) {
    storage st = {0};
    remotewrite *rw = new_rw(&st);
    wr_builder b;
    wb_init(&b);
    const char *kv[] = {"__name__", "up", NULL};
    int64_t t[] = {1000};
    double v[] = {1};
    wb_series(&b, kv, t, v, 1);
    size_t n = kiln__remote__write_request__get_packed_size(&b.wr);
    uint8_t *raw = malloc(n + 16);
    kiln__remote__write_request__pack(&b.wr, raw);
    /* field 2 (Cortex' source, varint) and field 9 (length-delimited "zz") */
    memcpy(raw + n, "\x10\x01\x4a\x02zz", 6);
    result r = post_body(rw, compress(raw, n + 6));
    free(raw);
    arena_free(&b.a);
    ck_assert_int_eq(r.status, 204);
    ck_assert_uint_eq(st.nrecs, 1);
    done(rw);
}
END_TEST

/* A request bigger than the thread's decode slab grows it; the next
 * requests reuse it and must see only their own data. */
START_TEST(test_slab_reuse) {
    storage st = {0};
    remotewrite *rw = new_rw(&st);
    char *pad = malloc(5001);
    memset(pad, 'x', 5000);
    pad[5000] = 0;
    char idx[60][8];
    for (int round = 0; round < 3; round++) {
        wr_builder b;
        wb_init(&b);
        size_t nser = round == 0 ? 2 : 60; /* small, then past the slab, then within it */
        for (size_t i = 0; i < nser; i++) {
            snprintf(idx[i], sizeof idx[i], "%zu", i);
            const char *kv[] = {"__name__", "big", "i", idx[i], "pad", pad, NULL};
            int64_t t[] = {1000 * (round + 1)};
            double v[] = {(double)(round * 100 + (int)i)};
            wb_series(&b, kv, t, v, 1);
        }
        result r = post_body(rw, wb_finish(&b));
        ck_assert_msg(r.status == 204, "round %d: %d %s", round, r.status, r.text);
    }
    ck_assert_uint_eq(st.nrecs, 122);
    ck_assert_uint_eq(st.nseries, 60);
    /* the last round's values, each on its own series */
    for (size_t k = 62; k < 122; k++) {
        double v;
        memcpy(&v, &st.recs[k].vbits, 8);
        ck_assert_int_eq(st.recs[k].t, 3000);
        ck_assert_double_eq(v, 200 + (double)st.recs[k].series);
    }
    free(pad);
    done(rw);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("remotewrite");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_valid_request);
    tcase_add_test(tc, test_stale_marker_kept);
    tcase_add_test(tc, test_empty_request);
    tcase_add_test(tc, test_not_snappy);
    tcase_add_test(tc, test_truncated_snappy);
    tcase_add_test(tc, test_garbage_protobuf);
    tcase_add_test(tc, test_bad_labels);
    tcase_add_test(tc, test_nul_in_value);
    tcase_add_test(tc, test_huge_label_value);
    tcase_add_test(tc, test_many_labels);
    tcase_add_test(tc, test_decompressed_too_large);
    tcase_add_test(tc, test_decompressed_limit_flag);
    tcase_add_test(tc, test_decode_memory_bound);
    tcase_add_test(tc, test_out_of_order_partial);
    tcase_add_test(tc, test_storage_failures_are_5xx);
    tcase_add_test(tc, test_exemplars_histograms_metadata);
    tcase_add_test(tc, test_histogram_rules);
    tcase_add_test(tc, test_headers);
    tcase_add_test(tc, test_disabled);
    tcase_add_test(tc, test_unknown_fields);
    tcase_add_test(tc, test_slab_reuse);
    suite_add_tcase(s, tc);
    return s;
}
