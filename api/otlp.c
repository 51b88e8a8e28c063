/*
 * otlp.c - the OTLP/HTTP metrics receiver, POST /api/v1/otlp/v1/metrics,
 * as Prometheus 3 has it (--web.enable-otlp-receiver).
 *
 * A request goes through three steps:
 *
 *   1. inflate      a gzip body (Content-Encoding: gzip) inflates into one
 *                   malloc'd buffer, bounded by max_decompressed_bytes (413).
 *   2. decode       an ExportMetricsServiceRequest (api/otlp.proto) into
 *                   protobuf-c's structs in the request arena, in one pass
 *                   (api/otlp_pb.c), bounded at OTLP_DECODE_FACTOR times
 *                   the body; a JSON body
 *                   (application/json) decodes into the same structs
 *                   (api/otlp_json.c), under the same bound.
 *   3. translate    every data point becomes samples, appended through one
 *                   storage appender and one commit (WAL first) before the
 *                   answer, as Prometheus' otlptranslator names them
 *                   (the names themselves: api/otlp_names.c):
 *
 *   | OTLP                              | Prometheus series                    |
 *   |-----------------------------------|--------------------------------------|
 *   | gauge                             | name (+ unit suffix, `_ratio` for 1) |
 *   | sum, monotonic, cumulative        | name + unit + `_total`               |
 *   | sum, not monotonic, cumulative    | name + unit (a gauge)                |
 *   | sum or histogram, delta           | summed per stream (otlp_delta.c) with |
 *   |                                   | otlp-deltatocumulative, else rejected |
 *   | histogram, cumulative             | `_bucket{le}` (+Inf), `_sum`, `_count` |
 *   |   with convert_histograms_to_nhcb | name: a native histogram, custom buckets |
 *   | exponential histogram, cumulative | name: a native histogram (otlp_hist.c) |
 *   | summary                           | `{quantile}`, `_sum`, `_count`       |
 *   | resource with other attributes    | `target_info` = 1                    |
 *
 *   job = service.namespace/service.name (or service.name), instance =
 *   service.instance.id; promote_resource_attributes are copied onto every
 *   series; the data point's timestamp (ms); the no-recorded-value flag
 *   stores a stale marker; exemplars and start timestamps are ignored.
 *
 * Answers (OTLP/HTTP): 200 with an ExportMetricsServiceResponse, holding
 * partial_success{rejected_data_points, error_message} when some points were
 * not stored; 400 with a google.rpc.Status when the body does not decode;
 * 404 when the receiver is off; 413 over the bounds; 415 for a content type
 * or encoding other than protobuf/JSON and gzip/identity; 500 when storing
 * failed (retryable).  A JSON request is answered in JSON (the same
 * messages in OTLP's JSON mapping).
 *
 * Called by cmd/kiln/main.c (otlp_new, otlp_free, and otlp_handle from the
 * route) and tests.  Threading: otlp_handle runs on HTTP worker threads, any
 * number at once; the receiver is read-only after otlp_new, metrics atomic.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "api.h"
#include "api/otlp.pb-c.h"
#include "api/otlp_private.h"
#include "config/config.h"
#include "storage/storage.h"

#define OTLP_DEFAULT_MAX_DECOMPRESSED ((size_t)32 << 20)
#define OTLP_DECODE_FACTOR 24
#define OTLP_DECODE_SLACK ((size_t)1 << 20)
#define OTLP_MSG_MAX 1024
#define OTLP_NAME_MAX 1024
#define OTLP_NO_CT INT64_MIN
#define OTLP_LAYOUT_MAX 32
#define OTLP_LAYOUTS 8

enum { OC_200, OC_400, OC_404, OC_413, OC_415, OC_500, OC_N };
static const char *const oc_names[OC_N] = {"200", "400", "404", "413", "415", "500"};
static const int oc_status[OC_N] = {200, 400, 404, 413, 415, 500};

enum { OR_DELTA, OR_EXPHIST, OR_INVALID, OR_STORAGE, OR_N };
static const char *const or_names[OR_N] = {"delta_temporality", "exponential_histogram", "invalid",
                                           "storage"};

struct otlp {
    storage *st;
    otlp_opts opts;
    pthread_mutex_t mu; /* guards cfg */
    config *cfg;        /* the applied configuration (its otlp section), or NULL */
    metric_child *requests[OC_N];
    metric_child *rejected[OR_N];
    metric_child *received;
    metric_child *samples;
    otlp_delta *delta; /* --enable-feature=otlp-deltatocumulative: the streams' totals; else NULL */
};

/* ---- one request ------------------------------------------------------------- */

typedef struct oreq {
    otlp *o;
    otlp_opts set; /* the settings of this request */
    config *cfg;   /* retained while the request runs */
    struct {
        const char *key, *name;
    } names[256]; /* attribute key -> label name, direct-mapped by a hash of the key */
    arena *a;
    appender *app;
    size_t points;   /* data points in the request */
    size_t rejected; /* data points not (wholly) stored */
    size_t by_reason[OR_N];
    size_t samples;
    int fatal;      /* a storage error that fails the whole request */
    int trusted;    /* the appender skips labels_check: emit checks values */
    int synthetic;  /* emitting target_info */
    int long_names; /* label_for made a name that may be over LABEL_NAME_MAX_LEN (else none is) */
    int64_t now;    /* wall clock at the start, ms (delta streams' staleness) */
    int64_t ct;     /* the current point's start time (ms) for its zero samples, or OTLP_NO_CT */
    buf key;        /* a delta stream's key */
    struct {
        const char *name, *unit, *out;
        char kind;
    } metric_names[256], metric_ptrs[256]; /* (name, unit, kind) -> metric name, direct-mapped by a
                                            * hash of the strings, of their pointers */
    struct layout {
        size_t n;                           /* keys; 0: none kept */
        const char *keys[OTLP_LAYOUT_MAX];  /* the attribute keys in the order sent */
        const char *names[OTLP_LAYOUT_MAX]; /* their label names in key order (NULL: empty key) */
        uint8_t order[OTLP_LAYOUT_MAX];     /* the index of the j-th key in key order */
        int sorted;                         /* the names in key order are sorted too */
    } layouts[OTLP_LAYOUTS];                /* of recent points, by n % OTLP_LAYOUTS */
    char first[OTLP_MSG_MAX];
    char fatal_msg[OTLP_MSG_MAX];
} oreq;

/* A label set under construction, in the request arena. */
typedef struct lset {
    label *v;
    size_t n, cap;
} lset;

static void reject(oreq *r, int reason, size_t npoints, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reject(oreq *r, int reason, size_t npoints, const char *fmt, ...) {
    r->rejected += npoints;
    r->by_reason[reason] += npoints;
    if (r->first[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->first, sizeof r->first, fmt, ap);
    va_end(ap);
}

KILN_MUST_CHECK static int lset_reserve(oreq *r, lset *l, size_t more) {
    if (l->n + more <= l->cap)
        return 0;
    size_t cap = (l->n + more) * 2 + 8;
    label *v = arena_alloc_nz(r->a, cap * sizeof *v);
    if (!v)
        return KILN_ENOMEM;
    if (l->n)
        memcpy(v, l->v, l->n * sizeof *v);
    l->v = v;
    l->cap = cap;
    return 0;
}

/* Sets name=value: replaces a label of that name (join: appends ";value"
 * to it, as Prometheus does for attributes that collide after escaping).
 * An empty value is no label. */
KILN_MUST_CHECK static int lset_set(oreq *r, lset *l, const char *name, const char *value, int join) {
    if (!value || !*value)
        return 0;
    for (size_t i = 0; i < l->n; i++) {
        const char *have = l->v[i].name; /* names come back as the same pointers mostly */
        if (have != name && (have[0] != name[0] || strcmp(have, name) != 0))
            continue;
        if (join) {
            size_t a = strlen(l->v[i].value), b = strlen(value);
            char *s = arena_alloc_nz(r->a, a + b + 2);
            if (!s)
                return KILN_ENOMEM;
            memcpy(s, l->v[i].value, a);
            s[a] = ';';
            memcpy(s + a + 1, value, b + 1);
            l->v[i].value = s;
        } else {
            l->v[i].value = value;
        }
        return 0;
    }
    if (lset_reserve(r, l, 1) != 0)
        return KILN_ENOMEM;
    l->v[l->n].name = name;
    l->v[l->n].value = value;
    l->n++;
    return 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void any_to_buf(const Kiln__Otlp__AnyValue *v, buf *b);

/* pdata's Value.AsString: arrays and maps as JSON. */
static void any_to_json(const Kiln__Otlp__AnyValue *v, buf *b) {
    if (v && v->value_case == KILN__OTLP__ANY_VALUE__VALUE_STRING_VALUE) {
        json_str(b, v->string_value ? v->string_value : "");
    } else if (v && v->value_case == KILN__OTLP__ANY_VALUE__VALUE_ARRAY_VALUE && v->array_value) {
        buf_putc(b, '[');
        for (size_t i = 0; i < v->array_value->n_values; i++) {
            if (i)
                buf_putc(b, ',');
            any_to_json(v->array_value->values[i], b);
        }
        buf_putc(b, ']');
    } else if (v && v->value_case == KILN__OTLP__ANY_VALUE__VALUE_KVLIST_VALUE && v->kvlist_value) {
        buf_putc(b, '{');
        for (size_t i = 0; i < v->kvlist_value->n_values; i++) {
            const Kiln__Otlp__KeyValue *kv = v->kvlist_value->values[i];
            if (i)
                buf_putc(b, ',');
            json_str(b, kv->key ? kv->key : "");
            buf_putc(b, ':');
            any_to_json(kv->value, b);
        }
        buf_putc(b, '}');
    } else if (!v || v->value_case == KILN__OTLP__ANY_VALUE__VALUE__NOT_SET) {
        buf_puts(b, "null");
    } else if (v->value_case == KILN__OTLP__ANY_VALUE__VALUE_BYTES_VALUE) {
        buf_putc(b, '"');
        any_to_buf(v, b);
        buf_putc(b, '"');
    } else {
        any_to_buf(v, b);
    }
}

static void any_to_buf(const Kiln__Otlp__AnyValue *v, buf *b) {
    char num[FMT_DOUBLE_MAX];
    if (!v)
        return;
    switch (v->value_case) {
    case KILN__OTLP__ANY_VALUE__VALUE_STRING_VALUE:
        buf_puts(b, v->string_value ? v->string_value : "");
        break;
    case KILN__OTLP__ANY_VALUE__VALUE_BOOL_VALUE:
        buf_puts(b, v->bool_value ? "true" : "false");
        break;
    case KILN__OTLP__ANY_VALUE__VALUE_INT_VALUE:
        buf_printf(b, "%lld", (long long)v->int_value);
        break;
    case KILN__OTLP__ANY_VALUE__VALUE_DOUBLE_VALUE: {
        double d = fabs(v->double_value);
        int n = d != 0 && (d < 1e-6 || d >= 1e21) ? fmt_double_e(v->double_value, num)
                                                  : fmt_double_f(v->double_value, num);
        buf_append(b, num, (size_t)n);
        break;
    }
    case KILN__OTLP__ANY_VALUE__VALUE_BYTES_VALUE: {
        const uint8_t *p = v->bytes_value.data;
        size_t n = v->bytes_value.len;
        for (size_t i = 0; i < n; i += 3) {
            uint32_t w =
                (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
            char q[4] = {b64[w >> 18], b64[(w >> 12) & 63], i + 1 < n ? b64[(w >> 6) & 63] : '=',
                         i + 2 < n ? b64[w & 63] : '='};
            buf_append(b, q, 4);
        }
        break;
    }
    case KILN__OTLP__ANY_VALUE__VALUE_ARRAY_VALUE:
    case KILN__OTLP__ANY_VALUE__VALUE_KVLIST_VALUE:
        any_to_json(v, b);
        break;
    default:
        break;
    }
}

/* An attribute's value as a string in the arena ("" when not set). */
static const char *any_str(oreq *r, const Kiln__Otlp__AnyValue *v) {
    if (!v)
        return "";
    if (v->value_case == KILN__OTLP__ANY_VALUE__VALUE_STRING_VALUE)
        return v->string_value ? v->string_value : "";
    buf b = {0};
    any_to_buf(v, &b);
    char *s = buf_error(&b) ? NULL : arena_strndup(r->a, b.data ? b.data : "", b.len);
    buf_free(&b);
    return s ? s : "";
}

static const Kiln__Otlp__AnyValue *attr_get(Kiln__Otlp__KeyValue *const *kv, size_t n, const char *key) {
    for (size_t i = 0; i < n; i++)
        if (kv[i]->key && !strcmp(kv[i]->key, key))
            return kv[i]->value;
    return NULL;
}

static int kv_cmp(const void *a, const void *b) {
    const Kiln__Otlp__KeyValue *x = *(Kiln__Otlp__KeyValue *const *)a, *y = *(Kiln__Otlp__KeyValue *const *)b;
    return strcmp(x->key ? x->key : "", y->key ? y->key : "");
}

/* A label name for an attribute key, in the arena, or NULL (no memory).
 * The same keys come back in every data point: the last name of each hash
 * slot is kept. */
static const char *label_for(oreq *r, const char *key) {
    uint32_t h = 2166136261u;
    size_t n = 0;
    for (; key[n]; n++)
        h = (h ^ (unsigned char)key[n]) * 16777619u;
    size_t slot = (h ^ (h >> 16)) % (sizeof r->names / sizeof r->names[0]);
    if (r->names[slot].key && !strcmp(r->names[slot].key, key))
        return r->names[slot].name;
    char *out = arena_alloc_nz(r->a, n + 8);
    if (!out || otlp_label_name(key, &r->set, out, n + 8) < 0)
        return NULL;
    r->long_names |= n + 8 > LABEL_NAME_MAX_LEN;
    r->names[slot].key = key;
    r->names[slot].name = out;
    return out;
}

/* Adds attributes (sorted by key, colliding names joined with ';'),
 * skipping the keys in skip[]. */
KILN_MUST_CHECK static int add_attrs(oreq *r, lset *l, Kiln__Otlp__KeyValue *const *kv, size_t n,
                                     const char *const *skip, size_t nskip) {
    if (n == 0)
        return 0;
    Kiln__Otlp__KeyValue *const *s = kv;
    size_t sorted = 1;
    while (sorted < n && kv_cmp(&kv[sorted - 1], &kv[sorted]) <= 0)
        sorted++;
    if (sorted < n) { /* senders mostly sort them already */
        Kiln__Otlp__KeyValue **c = arena_alloc_nz(r->a, n * sizeof *c);
        if (!c)
            return KILN_ENOMEM;
        memcpy(c, kv, n * sizeof *c);
        qsort(c, n, sizeof *c, kv_cmp);
        s = c;
    }
    for (size_t i = 0; i < n; i++) {
        const char *key = s[i]->key ? s[i]->key : "";
        int skipped = 0;
        for (size_t j = 0; j < nskip; j++)
            skipped |= !strcmp(key, skip[j]);
        if (skipped || !*key)
            continue;
        const char *name = label_for(r, key);
        if (!name || lset_set(r, l, name, any_str(r, s[i]->value), 1) != 0)
            return KILN_ENOMEM;
    }
    return 0;
}

/* The attributes of a point by a layout of an earlier point with the same
 * keys in the same order (see oreq.layouts): one strcmp a key in place of
 * the sort check, the name lookup and the merge.  1 when there is none. */
static int layout_attrs(oreq *r, lset *l, Kiln__Otlp__KeyValue *const *kv, size_t n, int *sorted) {
    const struct layout *lo = &r->layouts[n % OTLP_LAYOUTS];
    if (lo->n != n || l->n != 0)
        return 1;
    for (size_t i = 0; i < n; i++)
        if (kv[i]->key != lo->keys[i] && (!kv[i]->key || strcmp(kv[i]->key, lo->keys[i]) != 0))
            return 1;
    if (lset_reserve(r, l, n + 2) != 0)
        return KILN_ENOMEM;
    *sorted = lo->sorted;
    for (size_t j = 0; j < n; j++) {
        if (!lo->names[j])
            continue;
        const Kiln__Otlp__AnyValue *av = kv[lo->order[j]]->value;
        const char *v = av && av->value_case == KILN__OTLP__ANY_VALUE__VALUE_STRING_VALUE && av->string_value
                            ? av->string_value
                            : any_str(r, av);
        if (*v) /* an empty value is no label (lset_set) */
            l->v[l->n++] = (label){lo->names[j], v};
    }
    return 0;
}

/* Keeps the layout of kv[n] for the next points, when its label names are
 * distinct (no joins) and it is small. */
static void layout_keep(oreq *r, Kiln__Otlp__KeyValue *const *kv, size_t n) {
    struct layout *lo = &r->layouts[n % OTLP_LAYOUTS];
    lo->n = 0;
    if (n == 0 || n > OTLP_LAYOUT_MAX)
        return;
    for (size_t i = 0; i < n; i++) {
        if (!kv[i]->key)
            return;
        size_t j = i; /* insertion sort of the indexes by key */
        for (; j > 0 && strcmp(kv[lo->order[j - 1]]->key, kv[i]->key) > 0; j--)
            lo->order[j] = lo->order[j - 1];
        lo->order[j] = (uint8_t)i;
        lo->keys[i] = kv[i]->key;
    }
    for (size_t j = 0; j < n; j++) {
        const char *key = kv[lo->order[j]]->key;
        lo->names[j] = *key ? label_for(r, key) : NULL;
        if (*key && !lo->names[j])
            return;
        for (size_t k = 0; k < j && lo->names[j]; k++)
            if (lo->names[k] && !strcmp(lo->names[k], lo->names[j]))
                return; /* joined with ';': left to add_attrs */
    }
    lo->sorted = 1;
    const char *last = NULL;
    for (size_t j = 0; j < n; j++) {
        if (lo->names[j] && last && strcmp(last, lo->names[j]) >= 0)
            lo->sorted = 0;
        last = lo->names[j] ? lo->names[j] : last;
    }
    lo->n = n;
}

static const char *const identifying[] = {"service.name", "service.namespace", "service.instance.id"};

/* What a resource gives every series: promoted attributes, job, instance. */
typedef struct resctx {
    lset base;
    const char *job, *instance;
    int64_t max_ts;
    int has_ts;
} resctx;

/* The labels of one data point: its attributes, the resource's, then the
 * extra label and the name (these win). */
KILN_MUST_CHECK static int point_labels(oreq *r, const resctx *rc, Kiln__Otlp__KeyValue *const *kv, size_t n,
                                        lset *out) {
    memset(out, 0, sizeof *out);
    int sorted = 0;
    int rc0 = layout_attrs(r, out, kv, n, &sorted);
    if (rc0 < 0)
        return rc0;
    if (rc0 > 0) {
        if (add_attrs(r, out, kv, n, NULL, 0) != 0)
            return KILN_ENOMEM;
        layout_keep(r, kv, n);
    }
    size_t had = out->n;
    for (size_t i = 0; i < rc->base.n; i++) {
        int exists = 0;
        for (size_t j = 0; j < out->n; j++)
            exists |= !strcmp(out->v[j].name, rc->base.v[i].name);
        if (!exists && lset_set(r, out, rc->base.v[i].name, rc->base.v[i].value, 0) != 0)
            return KILN_ENOMEM;
    }
    if ((rc->job && lset_set(r, out, "job", rc->job, 0) != 0) ||
        (rc->instance && lset_set(r, out, "instance", rc->instance, 0) != 0))
        return KILN_ENOMEM;
    if (!sorted || out->n != had)
        labels_sort(out->v, out->n); /* once a point: emit merges into it */
    return 0;
}

/* Whether a label value is one storage takes (labels_check's rule): not
 * too long, UTF-8.  Names need no check: the escaping strategies make
 * valid ones (see trusted()). */
static int value_ok(const char *v) {
    size_t n = 0;
    while ((unsigned char)v[n] - 1u < 0x7fu) /* ASCII but NUL: most values are only that */
        n++;
    if (!v[n])
        return n <= LABEL_VALUE_MAX_LEN;
    size_t rest = strlen(v + n);
    return n + rest <= LABEL_VALUE_MAX_LEN && utf8_valid(v + n, rest);
}

/*
 * Appends one sample of base (sorted, unique names) + {xname=xval} +
 * {__name__=name}: the two merged in at their places, replacing a base
 * label of their name.  The label set is checked here when the appender
 * trusts the receiver (r->trusted), as labels_check would.
 */
static void emit_sample(oreq *r, const lset *base, const char *name, const char *xname, const char *xval,
                        int64_t t, double v, const histogram *h) {
    if (r->fatal)
        return;
    label ls[LABELS_MAX_COUNT + 2], extra[2] = {{LABEL_NAME, name}, {xname, xval}};
    size_t n = 0, e = 0, ne = xname ? 2 : 1;
    if (xname && strcmp(xname, LABEL_NAME) < 0) {
        extra[1] = extra[0];
        extra[0] = (label){xname, xval};
    }
    const char *why = NULL;
    for (size_t i = 0; i < base->n && !why; i++) {
        const char *bn = base->v[i].name;
        int c = -1;
        while (e < ne && (c = strcmp(extra[e].name, bn)) < 0)
            ls[n++] = extra[e++];
        if (c == 0)
            continue; /* the base's label of that name loses */
        if (n >= LABELS_MAX_COUNT)
            why = "too many labels";
        else if (r->trusted &&
                 ((r->long_names && strlen(bn) > LABEL_NAME_MAX_LEN) || !value_ok(base->v[i].value)))
            why = "label name too long, or label value too long or not UTF-8";
        else
            ls[n++] = base->v[i];
    }
    while (e < ne && n <= LABELS_MAX_COUNT)
        ls[n++] = extra[e++];
    if (!why && n > LABELS_MAX_COUNT)
        why = "too many labels";
    if (!why && r->trusted && (!value_ok(name) || (xname && !value_ok(xval))))
        why = "metric name not UTF-8";
    if (why) {
        reject(r, OR_INVALID, 1, "%s for metric \"%.200s\"", why, name);
        return;
    }
    kiln_err err = {0};
    uint64_t ref = 0;
    int rc;
    if (r->ct != OTLP_NO_CT && r->ct < t && !h) {
        /* created-timestamp-zero-ingestion: a 0 at the start time, unless the series has it (or later
         * samples) already, as Prometheus' AppendCTZeroSample */
        rc = appender_append(r->app, &ref, ls, n, r->ct, 0, &err);
        if (rc == KILN_ENOMEM || rc == KILN_EIO) {
            r->fatal = rc;
            snprintf(r->fatal_msg, sizeof r->fatal_msg, "append failed: %s",
                     err.code ? err.msg : kiln_strerror(rc));
            return;
        }
        r->samples += rc == 0;
        err = (kiln_err){0};
        ref = 0;
    }
    rc = h ? appender_append_histogram(r->app, &ref, ls, n, t, h, &err)
           : appender_append(r->app, &ref, ls, n, t, v, &err);
    if (rc == 0) {
        r->samples++;
        return;
    }
    if (rc == KILN_ENOMEM || rc == KILN_EIO) {
        r->fatal = rc;
        snprintf(r->fatal_msg, sizeof r->fatal_msg, "append failed: %s",
                 err.code ? err.msg : kiln_strerror(rc));
        return;
    }
    if (r->synthetic && rc != KILN_EINVAL)
        return;
    reject(r, rc == KILN_EINVAL ? OR_INVALID : OR_STORAGE, 1, "%s for metric \"%s\" at timestamp %lld",
           err.code && err.msg[0] ? err.msg : kiln_strerror(rc), name, (long long)t);
}

/* A float sample (see emit_sample). */
static void emit(oreq *r, const lset *base, const char *name, const char *xname, const char *xval, int64_t t,
                 double v) {
    emit_sample(r, base, name, xname, xval, t, v, NULL);
}

static int64_t ts_ms(uint64_t ns) {
    return (int64_t)(ns / 1000000u);
}

static void note_ts(resctx *rc, int64_t t) {
    if (!rc->has_ts || t > rc->max_ts)
        rc->max_ts = t;
    rc->has_ts = 1;
}

/* name + suffix in the arena. */
static const char *suffixed(oreq *r, const char *name, const char *suffix) {
    size_t a = strlen(name), b = strlen(suffix);
    char *s = arena_alloc_nz(r->a, a + b + 1);
    if (!s)
        return NULL;
    memcpy(s, name, a);
    memcpy(s + a, suffix, b + 1);
    return s;
}

static const char *fmt_bound(oreq *r, double v) {
    char num[FMT_DOUBLE_MAX];
    int n = fmt_double_f(v, num);
    return arena_strndup(r->a, num, (size_t)n);
}

#define NO_RECORDED_VALUE 1u

/* The delta stream key of a point: its kind, metric name and labels, in
 * r->key. */
static const char *delta_key(oreq *r, char kind, const char *name, const lset *l, size_t *len) {
    buf_reset(&r->key);
    buf_putc(&r->key, kind);
    buf_append(&r->key, name, strlen(name) + 1);
    for (size_t i = 0; i < l->n; i++) {
        buf_append(&r->key, l->v[i].name, strlen(l->v[i].name) + 1);
        buf_append(&r->key, l->v[i].value, strlen(l->v[i].value) + 1);
    }
    *len = r->key.len;
    return buf_error(&r->key) ? NULL : r->key.data;
}

/* Whether a delta point could not be made cumulative (rejected then). */
static int delta_failed(oreq *r, int rc, const char *name, int64_t t) {
    if (rc == 0)
        return 0;
    if (rc == KILN_ENOMEM)
        r->fatal = KILN_ENOMEM;
    else
        reject(r, OR_STORAGE, 1, "%s for delta metric \"%s\" at timestamp %lld",
               rc == KILN_EORDER ? "out of order delta" : "too many delta streams", name, (long long)t);
    return 1;
}

/* The start time of a point as its zero samples' time, when they are
 * wanted (created-timestamp-zero-ingestion, counters only): OTLP_NO_CT else. */
static int64_t point_ct(const oreq *r, int counter, int has, uint64_t start_ns) {
    return r->set.ct_zero && counter && has && start_ns ? ts_ms(start_ns) : OTLP_NO_CT;
}

static void number_points(oreq *r, resctx *rc, const char *name, Kiln__Otlp__NumberDataPoint *const *dp,
                          size_t n, int delta, int counter) {
    for (size_t i = 0; i < n && !r->fatal; i++) {
        lset l;
        if (point_labels(r, rc, dp[i]->attributes, dp[i]->n_attributes, &l) != 0) {
            r->fatal = KILN_ENOMEM;
            return;
        }
        int64_t t = ts_ms(dp[i]->time_unix_nano);
        double v = dp[i]->value_case == KILN__OTLP__NUMBER_DATA_POINT__VALUE_AS_INT ? (double)dp[i]->as_int
                                                                                    : dp[i]->as_double;
        if (dp[i]->flags & NO_RECORDED_VALUE) {
            v = stale_nan();
        } else if (delta) {
            size_t kl;
            const char *key = delta_key(r, 'n', name, &l, &kl);
            if (!key || delta_failed(r, otlp_delta_sum(r->o->delta, key, kl, t, r->now, &v), name, t)) {
                r->fatal = key ? r->fatal : KILN_ENOMEM;
                continue;
            }
        }
        note_ts(rc, t);
        r->ct = point_ct(r, counter && !delta && !value_is_stale(v), dp[i]->has_start_time_unix_nano,
                         dp[i]->start_time_unix_nano);
        emit(r, &l, name, NULL, NULL, t, v);
        r->ct = OTLP_NO_CT;
    }
}

/*
 * The common start of a histogram or summary point: its labels into l, its
 * timestamp into *t, whether it is stale.  0, or -1 with r->fatal set.
 */
static int point_begin(oreq *r, resctx *rc, Kiln__Otlp__KeyValue *const *attrs, size_t nattrs, uint64_t tns,
                       uint32_t flags, lset *l, int64_t *t, int *stale) {
    if (point_labels(r, rc, attrs, nattrs, l) != 0) {
        r->fatal = KILN_ENOMEM;
        return -1;
    }
    *t = ts_ms(tns);
    *stale = (flags & NO_RECORDED_VALUE) != 0;
    note_ts(rc, *t);
    return 0;
}

/* A histogram's or summary's _sum (when sent) and _count samples. */
static void sum_and_count(oreq *r, const lset *l, const char *const names[2], const double *sum, double count,
                          int64_t t, int stale) {
    if (sum)
        emit(r, l, names[0], NULL, NULL, t, stale ? stale_nan() : *sum);
    emit(r, l, names[1], NULL, NULL, t, stale ? stale_nan() : count);
}

/* One sample of name{xname=<v formatted>}. */
static void emit_with_bound(oreq *r, const lset *l, const char *name, const char *xname, double bound,
                            int64_t t, double v) {
    const char *b = fmt_bound(r, bound);
    if (!b) {
        r->fatal = KILN_ENOMEM;
        return;
    }
    emit(r, l, name, xname, b, t, v);
}

static void histogram_points(oreq *r, resctx *rc, const char *name, Kiln__Otlp__HistogramDataPoint *const *dp,
                             size_t n, int delta) {
    const char *names[2] = {suffixed(r, name, "_sum"), suffixed(r, name, "_count")};
    const char *nb = suffixed(r, name, "_bucket");
    if (!nb || !names[0] || !names[1]) {
        r->fatal = KILN_ENOMEM;
        return;
    }
    for (size_t i = 0; i < n && !r->fatal; i++) {
        const Kiln__Otlp__HistogramDataPoint *p = dp[i];
        lset l;
        int64_t t;
        int stale;
        if (point_begin(r, rc, p->attributes, p->n_attributes, p->time_unix_nano, p->flags, &l, &t, &stale) !=
            0)
            return;
        size_t nbounds = p->n_explicit_bounds;
        uint64_t *per = arena_alloc(r->a, (nbounds + 1) * sizeof *per), count = p->count;
        double sum = p->has_sum ? p->sum : 0;
        if (!per) {
            r->fatal = KILN_ENOMEM;
            return;
        }
        for (size_t b = 0; b <= nbounds && b < p->n_bucket_counts; b++)
            per[b] = p->bucket_counts[b];
        if (delta && !stale) {
            size_t kl;
            const char *key = delta_key(r, 'h', name, &l, &kl);
            if (!key) {
                r->fatal = KILN_ENOMEM;
                return;
            }
            int drc = otlp_delta_histogram(r->o->delta, key, kl, t, r->now, &sum, &count, p->explicit_bounds,
                                           nbounds, per);
            if (delta_failed(r, drc, name, t))
                continue;
        }
        if (r->set.nhcb) { /* one native histogram with custom buckets instead of the classic series */
            Kiln__Otlp__HistogramDataPoint c = *p;
            c.bucket_counts = per;
            c.n_bucket_counts = nbounds + 1;
            c.count = count;
            c.sum = sum;
            histogram h;
            if (otlp_nhcb(r->a, &c, &h) != 0) {
                r->fatal = KILN_ENOMEM;
                return;
            }
            emit_sample(r, &l, name, NULL, NULL, t, 0, &h);
            continue;
        }
        r->ct = point_ct(r, !delta && !stale, p->has_start_time_unix_nano, p->start_time_unix_nano);
        sum_and_count(r, &l, names, p->has_sum ? &sum : NULL, (double)count, t, stale);
        uint64_t cum = 0;
        for (size_t b = 0; b < nbounds && !r->fatal; b++) {
            cum += per[b];
            emit_with_bound(r, &l, nb, "le", p->explicit_bounds[b], t, stale ? stale_nan() : (double)cum);
        }
        emit(r, &l, nb, "le", "+Inf", t, stale ? stale_nan() : (double)count);
        r->ct = OTLP_NO_CT;
    }
}

/* Exponential histogram points as native histograms of the metric's name. */
static void exp_histogram_points(oreq *r, resctx *rc, const char *name,
                                 Kiln__Otlp__ExponentialHistogramDataPoint *const *dp, size_t n) {
    for (size_t i = 0; i < n && !r->fatal; i++) {
        lset l;
        int64_t t;
        int stale;
        if (point_begin(r, rc, dp[i]->attributes, dp[i]->n_attributes, dp[i]->time_unix_nano, dp[i]->flags,
                        &l, &t, &stale) != 0)
            return;
        histogram h;
        char why[160];
        int hrc = otlp_exp_histogram(r->a, dp[i], 0, &h, why, sizeof why);
        if (hrc == KILN_ENOMEM) {
            r->fatal = hrc;
            return;
        }
        if (hrc != 0) {
            reject(r, OR_EXPHIST, 1, "%s (metric \"%s\")", why, name);
            continue;
        }
        emit_sample(r, &l, name, NULL, NULL, t, 0, &h);
    }
}

static void summary_points(oreq *r, resctx *rc, const char *name, Kiln__Otlp__SummaryDataPoint *const *dp,
                           size_t n) {
    const char *names[2] = {suffixed(r, name, "_sum"), suffixed(r, name, "_count")};
    if (!names[0] || !names[1]) {
        r->fatal = KILN_ENOMEM;
        return;
    }
    for (size_t i = 0; i < n && !r->fatal; i++) {
        const Kiln__Otlp__SummaryDataPoint *p = dp[i];
        lset l;
        int64_t t;
        int stale;
        if (point_begin(r, rc, p->attributes, p->n_attributes, p->time_unix_nano, p->flags, &l, &t, &stale) !=
            0)
            return;
        r->ct = point_ct(r, !stale, p->has_start_time_unix_nano, p->start_time_unix_nano);
        sum_and_count(r, &l, names, &p->sum, (double)p->count, t, stale); /* not the quantiles: gauges */
        r->ct = OTLP_NO_CT;
        for (size_t q = 0; q < p->n_quantile_values && !r->fatal; q++)
            emit_with_bound(r, &l, name, "quantile", p->quantile_values[q]->quantile, t,
                            stale ? stale_nan() : p->quantile_values[q]->value);
    }
}

static const char *metric_name_of(oreq *r, const char *name, const char *unit, char kind);

/* The Prometheus name of a metric, in the arena, or NULL (none: r->fatal
 * set when out of memory).  A request sends the same names again and again
 * (a metric a series, in some senders): the last of each hash slot is kept,
 * by the strings' pointers and by their contents. */
static const char *metric_name_for(oreq *r, const char *name, const char *unit, char kind) {
    /* the protobuf decoder hands out one copy of equal names: by the pointers first */
    uintptr_t ph = ((uintptr_t)name ^ ((uintptr_t)unit << 7) ^ (uintptr_t)kind) * 0x9e3779b97f4a7c15u;
    size_t pslot = (size_t)(ph >> 56) % (sizeof r->metric_ptrs / sizeof r->metric_ptrs[0]);
    if (r->metric_ptrs[pslot].name == name && r->metric_ptrs[pslot].unit == unit &&
        r->metric_ptrs[pslot].kind == kind && r->metric_ptrs[pslot].out)
        return r->metric_ptrs[pslot].out;
    const char *s = metric_name_of(r, name, unit, kind);
    if (s) {
        r->metric_ptrs[pslot].name = name;
        r->metric_ptrs[pslot].unit = unit;
        r->metric_ptrs[pslot].kind = kind;
        r->metric_ptrs[pslot].out = s;
    }
    return s;
}

static const char *metric_name_of(oreq *r, const char *name, const char *unit, char kind) {
    uint32_t h = 2166136261u;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    for (const char *p = unit; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ (unsigned char)kind) * 16777619u;
    size_t slot = (h ^ (h >> 16)) % (sizeof r->metric_names / sizeof r->metric_names[0]);
    if (r->metric_names[slot].out && r->metric_names[slot].kind == kind &&
        !strcmp(r->metric_names[slot].name, name) && !strcmp(r->metric_names[slot].unit, unit))
        return r->metric_names[slot].out;
    char out[OTLP_NAME_MAX];
    int n = otlp_metric_name(name, unit, kind, r->set.strategy, out, sizeof out);
    if (n <= 0)
        return NULL;
    char *s = arena_strndup(r->a, out, (size_t)n);
    if (!s) {
        r->fatal = KILN_ENOMEM;
        return NULL;
    }
    r->metric_names[slot].name = name;
    r->metric_names[slot].unit = unit;
    r->metric_names[slot].kind = kind;
    r->metric_names[slot].out = s;
    return s;
}

static void one_metric(oreq *r, resctx *rc, const Kiln__Otlp__Metric *m) {
    char kind = 'g';
    size_t npoints = 0;
    int temporality = 2;
    switch (m->data_case) {
    case KILN__OTLP__METRIC__DATA_GAUGE:
        npoints = m->gauge->n_data_points;
        break;
    case KILN__OTLP__METRIC__DATA_SUM:
        npoints = m->sum->n_data_points;
        kind = m->sum->is_monotonic ? 'c' : 's';
        temporality = m->sum->aggregation_temporality;
        break;
    case KILN__OTLP__METRIC__DATA_HISTOGRAM:
        npoints = m->histogram->n_data_points;
        kind = 'h';
        temporality = m->histogram->aggregation_temporality;
        break;
    case KILN__OTLP__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
        npoints = m->exponential_histogram->n_data_points;
        kind = 'h';
        temporality = m->exponential_histogram->aggregation_temporality;
        if (temporality == 1 && npoints) { /* the delta-to-cumulative state holds explicit buckets only */
            r->points += npoints;
            reject(r, OR_EXPHIST, npoints,
                   "delta exponential histogram \"%s\": kiln stores cumulative exponential histograms only",
                   m->name ? m->name : "");
            return;
        }
        break;
    case KILN__OTLP__METRIC__DATA_SUMMARY:
        npoints = m->summary->n_data_points;
        kind = 'S';
        break;
    default:
        return; /* no data: nothing to store, nothing rejected */
    }
    r->points += npoints;
    if (npoints == 0)
        return;
    int delta = temporality == 1 && r->o->delta;
    if (temporality != 2 && !delta) {
        reject(r, temporality == 1 ? OR_DELTA : OR_INVALID, npoints,
               "invalid temporality and type combination for metric \"%s\": %s temporality; kiln stores "
               "cumulative sums and histograms%s",
               m->name ? m->name : "", temporality == 1 ? "delta" : "unspecified",
               temporality == 1 ? ", and deltas with --enable-feature=otlp-deltatocumulative" : "");
        return;
    }
    const char *nm = metric_name_for(r, m->name ? m->name : "", m->unit ? m->unit : "", kind);
    if (!nm) {
        if (!r->fatal)
            reject(r, OR_INVALID, npoints, "metric \"%.200s\": no valid Prometheus name",
                   m->name ? m->name : "");
        return;
    }
    switch (m->data_case) {
    case KILN__OTLP__METRIC__DATA_GAUGE:
        number_points(r, rc, nm, m->gauge->data_points, npoints, 0, 0);
        break;
    case KILN__OTLP__METRIC__DATA_SUM:
        number_points(r, rc, nm, m->sum->data_points, npoints, delta, kind == 'c');
        break;
    case KILN__OTLP__METRIC__DATA_HISTOGRAM:
        histogram_points(r, rc, nm, m->histogram->data_points, npoints, delta);
        break;
    case KILN__OTLP__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
        exp_histogram_points(r, rc, nm, m->exponential_histogram->data_points, npoints);
        break;
    default:
        summary_points(r, rc, nm, m->summary->data_points, npoints);
        break;
    }
}

/* The promoted resource attributes into l: those listed, or with
 * promote_all every one but those listed. */
KILN_MUST_CHECK static int promote(oreq *r, lset *l, Kiln__Otlp__KeyValue *const *ra, size_t nra) {
    const otlp_opts *o = &r->set;
    for (size_t i = 0; i < (o->promote_all ? nra : o->npromote); i++) {
        const char *key = o->promote_all ? ra[i]->key : o->promote[i];
        const Kiln__Otlp__AnyValue *v = NULL;
        if (o->promote_all) {
            int ignored = !key || !*key;
            for (size_t j = 0; j < o->npromote && !ignored; j++)
                ignored = !strcmp(key, o->promote[j]);
            if (ignored)
                continue;
            v = ra[i]->value;
        } else if (!(v = attr_get(ra, nra, key))) {
            continue;
        }
        const char *name = label_for(r, key);
        if (!name)
            return KILN_ENOMEM;
        int exists = 0;
        for (size_t j = 0; j < l->n; j++)
            exists |= !strcmp(l->v[j].name, name);
        if (!exists && lset_set(r, l, name, any_str(r, v), 0) != 0)
            return KILN_ENOMEM;
    }
    return 0;
}

/* promote_scope_metadata: otel_scope_name, _version, _schema_url and
 * otel_scope_<attribute>, when the scope has a name. */
KILN_MUST_CHECK static int scope_labels(oreq *r, lset *l, const Kiln__Otlp__ScopeMetrics *sm) {
    const Kiln__Otlp__InstrumentationScope *sc = sm->scope;
    if (!sc || !sc->name || !*sc->name)
        return 0;
    if (lset_set(r, l, "otel_scope_name", sc->name, 0) != 0 ||
        lset_set(r, l, "otel_scope_version", sc->version, 0) != 0 ||
        lset_set(r, l, "otel_scope_schema_url", sm->schema_url, 0) != 0)
        return KILN_ENOMEM;
    for (size_t i = 0; i < sc->n_attributes; i++) {
        const char *k = sc->attributes[i]->key ? sc->attributes[i]->key : "";
        const char *full = suffixed(r, "otel_scope_", k);
        const char *name = full ? label_for(r, full) : NULL;
        if (!name || lset_set(r, l, name, any_str(r, sc->attributes[i]->value), 0) != 0)
            return KILN_ENOMEM;
    }
    return 0;
}

/* Every metric of one ResourceMetrics, then its target_info. */
static void one_resource(oreq *r, const Kiln__Otlp__ResourceMetrics *rm) {
    resctx rc;
    memset(&rc, 0, sizeof rc);
    Kiln__Otlp__KeyValue *const *ra = rm->resource ? rm->resource->attributes : NULL;
    size_t nra = rm->resource ? rm->resource->n_attributes : 0;
    const Kiln__Otlp__AnyValue *svc = attr_get(ra, nra, "service.name"),
                               *ns = attr_get(ra, nra, "service.namespace"),
                               *inst = attr_get(ra, nra, "service.instance.id");
    if (svc) {
        const char *s = any_str(r, svc);
        if (ns) {
            const char *n = any_str(r, ns);
            size_t a = strlen(n), b = strlen(s);
            char *j = arena_alloc_nz(r->a, a + b + 2);
            if (!j) {
                r->fatal = KILN_ENOMEM;
                return;
            }
            memcpy(j, n, a);
            j[a] = '/';
            memcpy(j + a + 1, s, b + 1);
            s = j;
        }
        rc.job = s;
    }
    if (inst)
        rc.instance = any_str(r, inst);
    if (promote(r, &rc.base, ra, nra) != 0) {
        r->fatal = KILN_ENOMEM;
        return;
    }
    size_t nbase = rc.base.n;
    for (size_t s = 0; s < rm->n_scope_metrics && !r->fatal; s++) {
        rc.base.n = nbase;
        if (r->set.promote_scope && scope_labels(r, &rc.base, rm->scope_metrics[s]) != 0) {
            r->fatal = KILN_ENOMEM;
            return;
        }
        for (size_t m = 0; m < rm->scope_metrics[s]->n_metrics && !r->fatal; m++)
            one_metric(r, &rc, rm->scope_metrics[s]->metrics[m]);
    }

    /* target_info: when the resource has more than the identifying attributes */
    size_t others = nra;
    for (size_t i = 0; i < 3; i++)
        others -= attr_get(ra, nra, identifying[i]) != NULL;
    if (others == 0 || !rc.has_ts || r->fatal || (!rc.job && !rc.instance))
        return;
    lset l = {0};
    int keep = r->set.keep_identifying;
    if (add_attrs(r, &l, ra, nra, keep ? NULL : identifying, keep ? 0 : 3) != 0 ||
        lset_set(r, &l, "job", rc.job, 0) != 0 || lset_set(r, &l, "instance", rc.instance, 0) != 0) {
        r->fatal = KILN_ENOMEM;
        return;
    }
    labels_sort(l.v, l.n);
    r->synthetic = 1; /* not a data point: not counted as one when storage refuses it (out of order) */
    emit(r, &l, "target_info", NULL, NULL, rc.max_ts, 1);
    r->synthetic = 0;
}

/* ---- decoding ------------------------------------------------------------------ */

/* protobuf-c's allocations: many small structs a data point, bumped out of
 * OTLP_CHUNK pieces of the request arena, bounded in total by limit. */
typedef struct oalloc {
    arena *a;
    char *cur;
    size_t left;
    size_t used, limit;
    int over; /* 1: over the limit, 2: out of memory */
} oalloc;

#define OTLP_CHUNK ((size_t)64 << 10)

static void *oalloc_fn(void *data, size_t n) {
    oalloc *al = data;
    size_t need = (n + 7) & ~(size_t)7;
    if (n > al->limit - al->used || need > al->limit - al->used) {
        al->over = 1;
        return NULL;
    }
    if (need > al->left) {
        size_t piece = need > OTLP_CHUNK ? need : OTLP_CHUNK;
        if (!(al->cur = arena_alloc_nz(al->a, piece))) {
            al->left = 0;
            al->over = 2;
            return NULL;
        }
        al->left = piece;
    }
    void *p = al->cur;
    al->cur += need;
    al->left -= need;
    al->used += need;
    return p;
}

static void ofree_fn(void *data, void *p) {
    (void)data, (void)p;
}

/* Inflates a gzip (or zlib) body into *out (malloc'd).  0, KILN_EINVAL or
 * KILN_ELIMIT / KILN_ENOMEM. */
KILN_MUST_CHECK static int inflate_body(const char *in, size_t len, size_t max, char **out, size_t *outlen) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 32) != Z_OK)
        return KILN_ENOMEM;
    size_t cap = len * 4 + 4096, n = 0;
    if (cap > max + 1)
        cap = max + 1;
    char *b = malloc(cap);
    int rc = 0;
    if (!b) {
        inflateEnd(&z);
        return KILN_ENOMEM;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                rc = KILN_ELIMIT;
                break;
            }
            size_t nc = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(b, nc);
            if (!nb) {
                rc = KILN_ENOMEM;
                break;
            }
            b = nb;
            cap = nc;
        }
        z.next_out = (Bytef *)b + n;
        z.avail_out = (uInt)(cap - n);
        int zr = inflate(&z, Z_NO_FLUSH);
        n = cap - z.avail_out;
        if (zr == Z_STREAM_END)
            break;
        if (zr != Z_OK && !(zr == Z_BUF_ERROR && z.avail_out == 0)) {
            rc = KILN_EINVAL;
            break;
        }
        if (z.avail_in == 0 && z.avail_out != 0) {
            rc = KILN_EINVAL; /* truncated */
            break;
        }
    }
    inflateEnd(&z);
    if (rc == 0 && n > max)
        rc = KILN_ELIMIT;
    if (rc != 0) {
        free(b);
        return rc;
    }
    *out = b;
    *outlen = n;
    return 0;
}

/* ---- answers -------------------------------------------------------------------- */

static void answer(otlp *o, http_resp *resp, int code, int json, size_t rejected, const char *msg) {
    metric_add(o->requests[code], 1);
    resp->status = oc_status[code];
    buf_reset(&resp->body);
    if (json) {
        snprintf(resp->content_type, sizeof resp->content_type, "application/json");
        if (code == OC_200) {
            buf_puts(&resp->body, "{");
            if (rejected || (msg && *msg)) {
                buf_printf(&resp->body,
                           "\"partialSuccess\":{\"rejectedDataPoints\":\"%zu\",\"errorMessage\":", rejected);
                json_str(&resp->body, msg ? msg : "");
                buf_puts(&resp->body, "}");
            }
            buf_puts(&resp->body, "}");
        } else {
            buf_printf(&resp->body, "{\"code\":%d,\"message\":", code == OC_500 ? 13 : 3);
            json_str(&resp->body, msg ? msg : "");
            buf_puts(&resp->body, "}");
        }
        return;
    }
    snprintf(resp->content_type, sizeof resp->content_type, "application/x-protobuf");
    uint8_t *out = NULL;
    size_t n = 0;
    if (code == OC_200) {
        Kiln__Otlp__ExportMetricsServiceResponse r = KILN__OTLP__EXPORT_METRICS_SERVICE_RESPONSE__INIT;
        Kiln__Otlp__ExportMetricsPartialSuccess ps = KILN__OTLP__EXPORT_METRICS_PARTIAL_SUCCESS__INIT;
        if (rejected || (msg && *msg)) {
            ps.has_rejected_data_points = 1;
            ps.rejected_data_points = (int64_t)rejected;
            ps.error_message = (char *)(msg ? msg : "");
            r.partial_success = &ps;
        }
        n = kiln__otlp__export_metrics_service_response__get_packed_size(&r);
        if (n && (out = malloc(n)))
            kiln__otlp__export_metrics_service_response__pack(&r, out);
    } else {
        Kiln__Otlp__Status st = KILN__OTLP__STATUS__INIT;
        st.has_code = 1;
        st.code = code == OC_500 ? 13 : 3; /* INTERNAL, INVALID_ARGUMENT */
        st.message = (char *)(msg ? msg : "");
        n = kiln__otlp__status__get_packed_size(&st);
        if ((out = malloc(n ? n : 1)))
            kiln__otlp__status__pack(&st, out);
    }
    if (out)
        buf_append(&resp->body, out, n);
    free(out);
}

static int ct_is(const char *ct, const char *want) {
    size_t n = strlen(want);
    while (*ct == ' ')
        ct++;
    return !strncasecmp(ct, want, n) && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

/* This request's settings: otlp_new's, then the applied configuration's. */
static void settings(otlp *o, oreq *r) {
    pthread_mutex_lock(&o->mu);
    r->cfg = o->cfg ? config_retain(o->cfg) : NULL;
    pthread_mutex_unlock(&o->mu);
    r->set = o->opts;
    if (!r->cfg)
        return;
    const config_otlp *c = &r->cfg->otlp;
    const char *ts = c->translation_strategy ? c->translation_strategy : "";
    r->set.strategy = !strcmp(ts, "UnderscoreEscapingWithoutSuffixes")
                          ? OTLP_UNDERSCORE_ESCAPING_WITHOUT_SUFFIXES
                      : !strcmp(ts, "NoUTF8EscapingWithSuffixes") ? OTLP_NO_UTF8_ESCAPING_WITH_SUFFIXES
                      : !strcmp(ts, "NoTranslation")              ? OTLP_NO_TRANSLATION
                                                                  : OTLP_UNDERSCORE_ESCAPING_WITH_SUFFIXES;
    r->set.promote_all = c->promote_all_resource_attributes;
    r->set.promote = (const char *const *)(r->set.promote_all ? c->ignore_resource_attributes
                                                              : c->promote_resource_attributes);
    r->set.npromote = r->set.promote_all ? c->nignore_resource_attributes : c->npromote_resource_attributes;
    r->set.keep_identifying = c->keep_identifying_resource_attributes;
    r->set.promote_scope = c->promote_scope_metadata;
    r->set.no_key_underscore = !c->label_name_underscore_sanitization;
    r->set.collapse_underscores = !c->label_name_preserve_multiple_underscores;
    r->set.nhcb = c->convert_histograms_to_nhcb;
}

void otlp_apply(otlp *o, config *c) {
    if (c)
        config_retain(c);
    pthread_mutex_lock(&o->mu);
    config *old = o->cfg;
    o->cfg = c;
    pthread_mutex_unlock(&o->mu);
    config_free(old);
}

void otlp_handle(otlp *o, http_req *req, http_resp *resp) {
    char msg[OTLP_MSG_MAX];
    const char *ct = http_req_header(req, "Content-Type");
    int json = ct && ct_is(ct, "application/json");
    if (!o->opts.enabled) {
        answer(o, resp, OC_404, json, 0,
               "the OTLP receiver is disabled; start kiln with --web.enable-otlp-receiver");
        return;
    }
    if (!ct || (!json && !ct_is(ct, "application/x-protobuf"))) {
        snprintf(msg, sizeof msg,
                 "unsupported Content-Type \"%.100s\": kiln's OTLP receiver takes "
                 "application/x-protobuf or application/json bodies",
                 ct ? ct : "");
        answer(o, resp, OC_415, json, 0, msg);
        return;
    }
    const char *ce = http_req_header(req, "Content-Encoding");
    const char *body = req->body;
    size_t len = req->body_len;
    char *inflated = NULL;
    if (ce && *ce && strcasecmp(ce, "identity") != 0) {
        if (strcasecmp(ce, "gzip") != 0) {
            snprintf(msg, sizeof msg, "unsupported Content-Encoding \"%.100s\": kiln accepts gzip", ce);
            answer(o, resp, OC_415, json, 0, msg);
            return;
        }
        int rc = inflate_body(req->body, req->body_len, o->opts.max_decompressed_bytes, &inflated, &len);
        if (rc != 0) {
            if (rc == KILN_ELIMIT)
                snprintf(msg, sizeof msg, "request body inflates to more than %zu bytes",
                         o->opts.max_decompressed_bytes);
            else
                snprintf(msg, sizeof msg, "gzip: %s", rc == KILN_EINVAL ? "corrupt body" : "out of memory");
            answer(o, resp, rc == KILN_ELIMIT ? OC_413 : rc == KILN_EINVAL ? OC_400 : OC_500, json, 0, msg);
            return;
        }
        body = inflated;
    }
    oalloc al = {.a = req->arena, .limit = len * OTLP_DECODE_FACTOR + OTLP_DECODE_SLACK};
    ProtobufCAllocator pa = {.alloc = oalloc_fn, .free = ofree_fn, .allocator_data = &al};
    const ProtobufCMessageDescriptor *desc = &kiln__otlp__export_metrics_service_request__descriptor;
    ProtobufCMessage *m = NULL;
    msg[0] = 0;
    int drc = json ? otlp_json_decode(body, len, desc, &pa, &m, msg, sizeof msg)
                   : otlp_pb_decode((const uint8_t *)body, len, desc, &pa, &m);
    Kiln__Otlp__ExportMetricsServiceRequest *er =
        drc == 0 ? (Kiln__Otlp__ExportMetricsServiceRequest *)m : NULL;
    if (!er && (!json || al.over)) /* the JSON decoder says what and where itself */
        snprintf(msg, sizeof msg, "%s",
                 al.over == 1   ? "decoding the request needs more memory than its bound"
                 : al.over == 2 ? "out of memory decoding the request"
                                : "protobuf: cannot decode the body as an ExportMetricsServiceRequest");
    free(inflated);
    if (!er) {
        answer(o, resp, al.over == 1 ? OC_413 : al.over == 2 ? OC_500 : OC_400, json, 0, msg);
        return;
    }

    oreq *r = arena_alloc(req->arena, sizeof *r);
    if (!r || !(r->app = storage_appender(o->st))) {
        answer(o, resp, OC_500, json, 0, "out of memory: cannot start an append batch");
        return;
    }
    r->o = o;
    r->a = req->arena;
    r->now = time_now_ms();
    r->ct = OTLP_NO_CT;
    settings(o, r);
    /* the escaping strategies make valid label names by construction: emit checks the values and storage
     * need not check again (UTF-8 names, kept as sent, go through labels_check) */
    if (r->set.strategy == OTLP_UNDERSCORE_ESCAPING_WITH_SUFFIXES ||
        r->set.strategy == OTLP_UNDERSCORE_ESCAPING_WITHOUT_SUFFIXES) {
        r->trusted = 1;
        appender_trust_labels(r->app);
    }
    for (size_t i = 0; i < er->n_resource_metrics && !r->fatal; i++)
        one_resource(r, er->resource_metrics[i]);
    config_free(r->cfg); /* the names are in the arena or in er */
    buf_free(&r->key);
    metric_add(o->received, (double)r->points);
    if (r->fatal) {
        appender_rollback(r->app);
        answer(o, resp, OC_500, json, 0, r->fatal_msg[0] ? r->fatal_msg : "out of memory");
        return;
    }
    if (r->samples == 0) {
        appender_rollback(r->app);
    } else {
        kiln_err err = {0};
        if (appender_commit(r->app, &err) != 0) {
            snprintf(msg, sizeof msg, "storing samples failed: %s", err.msg);
            LOG_ERROR("OTLP append failed", "err=%s", msg);
            answer(o, resp, OC_500, json, 0, msg);
            return;
        }
    }
    metric_add(o->samples, (double)r->samples);
    for (int i = 0; i < OR_N; i++)
        if (r->by_reason[i])
            metric_add(o->rejected[i], (double)r->by_reason[i]);
    if (r->rejected) {
        snprintf(msg, sizeof msg, "%.900s; %zu of %zu data points rejected", r->first, r->rejected,
                 r->points);
        LOG_WARN("OTLP request rejected in part", "err=%s", msg);
    }
    answer(o, resp, OC_200, json, r->rejected, r->rejected ? msg : NULL);
}

/* ---- lifecycle -------------------------------------------------------------------- */

int otlp_new(storage *st, const otlp_opts *opts, otlp **out, kiln_err *err) {
    *out = NULL;
    otlp *o = calloc(1, sizeof *o);
    if (!o)
        goto nomem;
    o->st = st;
    o->opts = *opts;
    pthread_mutex_init(&o->mu, NULL);
    if (!o->opts.max_decompressed_bytes)
        o->opts.max_decompressed_bytes = OTLP_DEFAULT_MAX_DECOMPRESSED;
    if (o->opts.delta_to_cumulative && !(o->delta = otlp_delta_new()))
        goto nomem;
    metric *req = metric_new(METRIC_COUNTER, "kiln_otlp_requests_total",
                             "OTLP metrics export requests received, by HTTP status code.", "code", NULL, 0);
    metric *rej = metric_new(METRIC_COUNTER, "kiln_otlp_data_points_rejected_total",
                             "OTLP data points not stored (or not wholly), by reason.", "reason", NULL, 0);
    metric *rcv = metric_new(METRIC_COUNTER, "kiln_otlp_data_points_received_total",
                             "Data points in decoded OTLP requests, stored or not.", NULL, NULL, 0);
    metric *smp = metric_new(METRIC_COUNTER, "kiln_otlp_samples_appended_total",
                             "Samples the OTLP receiver's data points became and stored.", NULL, NULL, 0);
    if (!req || !rej || !rcv || !smp)
        goto nomem;
    for (int i = 0; i < OC_N; i++) {
        const char *v[1] = {oc_names[i]};
        if (!(o->requests[i] = metric_with(req, v)))
            goto nomem;
    }
    for (int i = 0; i < OR_N; i++) {
        const char *v[1] = {or_names[i]};
        if (!(o->rejected[i] = metric_with(rej, v)))
            goto nomem;
    }
    if (!(o->received = metric_default(rcv)) || !(o->samples = metric_default(smp)))
        goto nomem;
    *out = o;
    return 0;
nomem:
    otlp_delta_free(o ? o->delta : NULL);
    free(o);
    return kiln_err_set(err, KILN_ENOMEM, "OTLP receiver: out of memory");
}

void otlp_free(otlp *o) {
    if (!o)
        return;
    config_free(o->cfg);
    otlp_delta_free(o->delta);
    pthread_mutex_destroy(&o->mu);
    free(o);
}
