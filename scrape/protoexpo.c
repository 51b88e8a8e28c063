/*
 * protoexpo.c - the protobuf exposition format parser (see protoexpo.h for
 * the interface and what each metric type becomes).
 *
 * The body is a sequence of | uvarint length | MetricFamily | records.
 * Fields of a message may come in any order and repeated scalars may be
 * packed or not, so a family is first scanned for its name, help, type and
 * unit and the byte ranges of its Metric messages; each Metric is decoded
 * when the previous one's entries are used up, into arrays the parser keeps
 * (labels, quantiles, buckets, spans, counts).  The entries of a metric are
 * steps: the native histogram first (when it is one and native histograms
 * are on), then the classic steps _count, _sum, and one per quantile or
 * bucket (+ the +Inf bucket Prometheus adds when the exposition leaves it
 * out).
 *
 *   client_metrics.proto field       | used as
 *   ---------------------------------|--------------------------------------
 *   Histogram.sample_count(_float)   | count; _float > 0 or zero_count_float
 *                                    | > 0 makes a float histogram (counts
 *                                    | from *_count), else integer (deltas)
 *   Histogram.{neg,pos}itive_span    | spans; their lengths must sum to the
 *                                    | number of deltas (or counts)
 *   Bucket.cumulative_count(_float)  | the classic bucket's value
 *   Metric.timestamp_ms              | the sample's timestamp when not 0
 *
 * A histogram is native when it has native parts (Prometheus 3's rule): a
 * zero threshold or zero count above 0, or any span, delta or count.
 *
 * Threading: a parser belongs to one thread.
 */
#include "scrape/protoexpo.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prometheus' MetricType enum values. */
enum {
    PT_COUNTER = 0,
    PT_GAUGE = 1,
    PT_SUMMARY = 2,
    PT_UNTYPED = 3,
    PT_HISTOGRAM = 4,
    PT_GAUGE_HISTOGRAM = 5
};
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

typedef struct slice {
    const uint8_t *p;
    size_t n;
} slice;

typedef struct pbr {
    const uint8_t *p, *end;
} pbr;

/* ---- the wire format ------------------------------------------------------ */

static int pb_uvarint(pbr *r, uint64_t *v) {
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return -1;
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

static int pb_len(pbr *r, slice *s) {
    uint64_t n;
    if (pb_uvarint(r, &n) != 0 || n > (uint64_t)(r->end - r->p))
        return -1;
    s->p = r->p;
    s->n = (size_t)n;
    r->p += n;
    return 0;
}

static int pb_fixed64(pbr *r, uint64_t *v) {
    if (r->end - r->p < 8)
        return -1;
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--)
        x = x << 8 | r->p[i];
    r->p += 8;
    *v = x;
    return 0;
}

/* The next field's tag: 1 with *f and *wt, 0 at the end, -1 when malformed. */
static int pb_tag(pbr *r, uint32_t *f, int *wt) {
    if (r->p >= r->end)
        return 0;
    uint64_t t;
    if (pb_uvarint(r, &t) != 0 || (t >> 3) == 0 || (t >> 3) > UINT32_MAX)
        return -1;
    *f = (uint32_t)(t >> 3);
    *wt = (int)(t & 7);
    return 1;
}

static int pb_skip(pbr *r, int wt) {
    uint64_t v;
    slice s;
    switch (wt) {
    case WT_VARINT:
        return pb_uvarint(r, &v);
    case WT_I64:
        return pb_fixed64(r, &v);
    case WT_LEN:
        return pb_len(r, &s);
    case WT_I32:
        if (r->end - r->p < 4)
            return -1;
        r->p += 4;
        return 0;
    default:
        return -1;
    }
}

/* A double field (wire type 1). */
static int pb_double(pbr *r, int wt, double *d) {
    uint64_t v;
    if (wt != WT_I64 || pb_fixed64(r, &v) != 0)
        return -1;
    *d = double_from_bits(v);
    return 0;
}

static int pb_varint_field(pbr *r, int wt, uint64_t *v) {
    return wt == WT_VARINT ? pb_uvarint(r, v) : -1;
}

static int64_t zigzag(uint64_t v) {
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static int pb_sub(pbr *r, int wt, pbr *sub) {
    slice s;
    if (wt != WT_LEN || pb_len(r, &s) != 0)
        return -1;
    sub->p = s.p;
    sub->end = s.p + s.n;
    return 0;
}

/* ---- the parser ------------------------------------------------------------- */

typedef struct pquant {
    double q, v;
} pquant;

typedef struct pbucket {
    double cum, upper;
    slice ex; /* the bucket's exemplar, n 0 when none */
} pbucket;

/* One side of a native histogram as read: spans and either deltas or counts. */
typedef struct pside {
    hist_span *spans;
    size_t nspans, capspans;
    int64_t *deltas;
    size_t ndeltas, capdeltas;
    double *counts;
    size_t ncounts, capcounts;
} pside;

/* The current Metric, decoded. */
typedef struct pmetric {
    expo_label *ls; /* room for one more: le / quantile */
    size_t nls, capls;
    int has_ts;
    int64_t ts;
    double value; /* counter, gauge, untyped: of the family's type */
    slice counter_ex;
    /* summary and histogram */
    double count, sum;
    uint64_t count_int;
    double count_float;
    pquant *q;
    size_t nq, capq;
    pbucket *b;
    size_t nb, capb;
    int32_t schema;
    double zt;
    uint64_t zc_int;
    double zc_float;
    pside pos, neg;
    slice *hex; /* the histogram's exemplars */
    size_t nhex, caphex;
    int native; /* has native parts */
} pmetric;

struct pexpo {
    pbr body;
    pexpo_opts o;
    int failed;
    size_t nfam; /* families read, for messages */
    /* the family */
    slice name, help, unit;
    int type;
    slice *metrics;
    size_t nmetrics, capmetrics, mi;
    /* the current entry */
    expo_entry kind;
    int meta_step; /* 0 help, 1 type, 2 unit, 3 metrics */
    pmetric m;
    size_t step, nsteps;
    int emit_native; /* step 0 is the native histogram */
    size_t nclassic; /* classic steps after _count and _sum */
    int add_inf;
    size_t cur_nls;    /* labels of the entry: the metric's and maybe le / quantile */
    size_t cur_bucket; /* the classic bucket of the entry, SIZE_MAX when none */
    char *namebuf;
    size_t namecap, namelen;
    char lebuf[FMT_DOUBLE_MAX + 4];
    buf key;
    double value;
    histogram h;
    double *hpos, *hneg;
    size_t caphpos, caphneg;
    expo_label *exls;
    size_t capexls;
};

pexpo *pexpo_new(const char *body, size_t len, const pexpo_opts *o) {
    pexpo *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->body.p = (const uint8_t *)(body ? body : "");
    p->body.end = p->body.p + (body ? len : 0);
    if (o)
        p->o = *o;
    p->meta_step = 3;
    return p;
}

static void pside_free(pside *s) {
    free(s->spans);
    free(s->deltas);
    free(s->counts);
}

void pexpo_free(pexpo *p) {
    if (!p)
        return;
    free(p->metrics);
    free(p->m.ls);
    free(p->m.q);
    free(p->m.b);
    free(p->m.hex);
    pside_free(&p->m.pos);
    pside_free(&p->m.neg);
    free(p->namebuf);
    buf_free(&p->key);
    free(p->hpos);
    free(p->hneg);
    free(p->exls);
    free(p);
}

static int fail(pexpo *p, kiln_err *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(pexpo *p, kiln_err *err, const char *fmt, ...) {
    char msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->failed = 1;
    int nl = p->name.n > 100 ? 100 : (int)p->name.n;
    return kiln_err_set(err, KILN_EINVAL, "metric family %zu (\"%.*s\"): %s", p->nfam, nl,
                        p->name.p ? (const char *)p->name.p : "", msg);
}

static int nomem(pexpo *p, kiln_err *err) {
    p->failed = 1;
    return kiln_err_set(err, KILN_ENOMEM, "out of memory parsing the protobuf exposition");
}

/* Grows an array of the parser to hold n + 1 elements. */
#define GROW(v, cap, n) array_grow((void **)&(v), &(cap), (n) + 1, sizeof *(v))

static int valid_string(slice s) {
    return s.n == 0 || (utf8_valid((const char *)s.p, s.n) && !memchr(s.p, 0, s.n));
}

/* Scans the next family; 1, 0 at the end of the body, or an error. */
KILN_MUST_CHECK static int read_family(pexpo *p, kiln_err *err) {
    if (p->body.p >= p->body.end)
        return 0;
    p->nfam++;
    p->name = p->help = p->unit = (slice){0};
    slice fam;
    if (pb_len(&p->body, &fam) != 0)
        return fail(p, err, "truncated length-delimited record");
    pbr r = {fam.p, fam.p + fam.n};
    p->type = PT_COUNTER;
    p->nmetrics = p->mi = 0;
    uint32_t f;
    int wt, rc;
    uint64_t v;
    while ((rc = pb_tag(&r, &f, &wt)) == 1) {
        slice s;
        if ((f == 1 || f == 2 || f == 4 || f == 5) && (wt != WT_LEN || pb_len(&r, &s) != 0))
            return fail(p, err, "malformed field %u of MetricFamily", f);
        switch (f) {
        case 1:
            p->name = s;
            break;
        case 2:
            p->help = s;
            break;
        case 5:
            p->unit = s;
            break;
        case 4:
            if (GROW(p->metrics, p->capmetrics, p->nmetrics) != 0)
                return nomem(p, err);
            p->metrics[p->nmetrics++] = s;
            break;
        case 3:
            if (pb_varint_field(&r, wt, &v) != 0)
                return fail(p, err, "malformed field 3 of MetricFamily");
            if (v > PT_GAUGE_HISTOGRAM)
                return fail(p, err, "unknown metric type %llu", (unsigned long long)v);
            p->type = (int)v;
            break;
        default:
            if (pb_skip(&r, wt) != 0)
                return fail(p, err, "malformed field %u of MetricFamily", f);
        }
    }
    if (rc < 0)
        return fail(p, err, "malformed MetricFamily");
    if (p->name.n == 0)
        return fail(p, err, "missing metric family name");
    if (!valid_string(p->name) || !valid_string(p->help) || !valid_string(p->unit))
        return fail(p, err, "invalid UTF-8 or a NUL byte in the name, help or unit");
    return 1;
}

/* A LabelPair into *l; 0 or -1 with why. */
static int read_label(pbr *r, expo_label *l, const char **why) {
    uint32_t f;
    int wt, rc;
    slice name = {0}, value = {0};
    while ((rc = pb_tag(r, &f, &wt)) == 1) {
        slice s;
        if (f == 1 || f == 2) {
            if (wt != WT_LEN || pb_len(r, &s) != 0)
                return *why = "malformed LabelPair", -1;
            *(f == 1 ? &name : &value) = s;
        } else if (pb_skip(r, wt) != 0) {
            return *why = "malformed LabelPair", -1;
        }
    }
    if (rc < 0)
        return *why = "malformed LabelPair", -1;
    if (name.n == 0)
        return *why = "empty label name", -1;
    if (!valid_string(name) || !valid_string(value))
        return *why = "invalid UTF-8 or a NUL byte in a label", -1;
    l->name = (const char *)name.p;
    l->name_len = name.n;
    l->value = value.p ? (const char *)value.p : "";
    l->value_len = value.n;
    return 0;
}

/* A message with one double field 1 (Gauge, Untyped) or Counter (value 1,
 * exemplar 2). */
static int read_value(pbr *r, double *v, slice *ex) {
    uint32_t f;
    int wt, rc;
    while ((rc = pb_tag(r, &f, &wt)) == 1) {
        if (f == 1) {
            if (pb_double(r, wt, v) != 0)
                return -1;
        } else if (f == 2 && ex) {
            if (wt != WT_LEN || pb_len(r, ex) != 0)
                return -1;
        } else if (pb_skip(r, wt) != 0) {
            return -1;
        }
    }
    return rc;
}

static int read_summary(pmetric *m, pbr *r) {
    uint32_t f;
    int wt, rc;
    uint64_t v;
    while ((rc = pb_tag(r, &f, &wt)) == 1) {
        pbr sub;
        switch (f) {
        case 1:
            if (pb_varint_field(r, wt, &v) != 0)
                return -1;
            m->count = (double)v;
            break;
        case 2:
            if (pb_double(r, wt, &m->sum) != 0)
                return -1;
            break;
        case 3: {
            if (pb_sub(r, wt, &sub) != 0 || GROW(m->q, m->capq, m->nq) != 0)
                return -1;
            pquant *q = &m->q[m->nq++];
            q->q = q->v = 0;
            uint32_t qf;
            int qwt, qrc;
            while ((qrc = pb_tag(&sub, &qf, &qwt)) == 1) {
                if (qf == 1 || qf == 2) {
                    if (pb_double(&sub, qwt, qf == 1 ? &q->q : &q->v) != 0)
                        return -1;
                } else if (pb_skip(&sub, qwt) != 0) {
                    return -1;
                }
            }
            if (qrc < 0)
                return -1;
            break;
        }
        default:
            if (pb_skip(r, wt) != 0)
                return -1;
        }
    }
    return rc;
}

static int read_bucket(pmetric *m, pbr *r) {
    if (GROW(m->b, m->capb, m->nb) != 0)
        return -1;
    pbucket *b = &m->b[m->nb++];
    memset(b, 0, sizeof *b);
    uint64_t cum = 0;
    double cumf = 0;
    uint32_t f;
    int wt, rc;
    while ((rc = pb_tag(r, &f, &wt)) == 1) {
        int bad = 0;
        switch (f) {
        case 1:
            bad = pb_varint_field(r, wt, &cum);
            break;
        case 2:
            bad = pb_double(r, wt, &b->upper);
            break;
        case 3:
            bad = wt != WT_LEN || pb_len(r, &b->ex) != 0;
            break;
        case 4:
            bad = pb_double(r, wt, &cumf);
            break;
        default:
            bad = pb_skip(r, wt);
        }
        if (bad)
            return -1;
    }
    b->cum = cumf > 0 ? cumf : (double)cum;
    return rc;
}

static int read_span(pside *s, pbr *r) {
    if (GROW(s->spans, s->capspans, s->nspans) != 0)
        return -1;
    hist_span *sp = &s->spans[s->nspans++];
    sp->offset = 0;
    sp->length = 0;
    uint32_t f;
    int wt, rc;
    uint64_t v;
    while ((rc = pb_tag(r, &f, &wt)) == 1) {
        if (f == 1 || f == 2) {
            if (pb_varint_field(r, wt, &v) != 0)
                return -1;
            if (f == 1) {
                int64_t o = zigzag(v);
                if (o < INT32_MIN || o > INT32_MAX)
                    return -1;
                sp->offset = (int32_t)o;
            } else {
                if (v > UINT32_MAX)
                    return -1;
                sp->length = (uint32_t)v;
            }
        } else if (pb_skip(r, wt) != 0) {
            return -1;
        }
    }
    return rc;
}

/* A repeated sint64 (packed or not) appended to s->deltas. */
static int read_deltas(pside *s, pbr *r, int wt) {
    uint64_t v;
    if (wt == WT_VARINT) {
        if (pb_uvarint(r, &v) != 0 || GROW(s->deltas, s->capdeltas, s->ndeltas) != 0)
            return -1;
        s->deltas[s->ndeltas++] = zigzag(v);
        return 0;
    }
    pbr sub;
    if (pb_sub(r, wt, &sub) != 0)
        return -1;
    while (sub.p < sub.end) {
        if (pb_uvarint(&sub, &v) != 0 || GROW(s->deltas, s->capdeltas, s->ndeltas) != 0)
            return -1;
        s->deltas[s->ndeltas++] = zigzag(v);
    }
    return 0;
}

/* A repeated double (packed or not) appended to s->counts. */
static int read_counts(pside *s, pbr *r, int wt) {
    if (wt == WT_I64) {
        if (GROW(s->counts, s->capcounts, s->ncounts) != 0)
            return -1;
        return pb_double(r, wt, &s->counts[s->ncounts++]);
    }
    pbr sub;
    if (pb_sub(r, wt, &sub) != 0 || (sub.end - sub.p) % 8)
        return -1;
    while (sub.p < sub.end) {
        if (GROW(s->counts, s->capcounts, s->ncounts) != 0)
            return -1;
        uint64_t v = 0;
        (void)pb_fixed64(&sub, &v);
        s->counts[s->ncounts++] = double_from_bits(v);
    }
    return 0;
}

static int read_histogram(pmetric *m, pbr *r) {
    uint32_t f;
    int wt, rc;
    uint64_t v;
    while ((rc = pb_tag(r, &f, &wt)) == 1) {
        pbr sub;
        int bad = 0;
        switch (f) {
        case 1:
            bad = pb_varint_field(r, wt, &m->count_int);
            break;
        case 2:
            bad = pb_double(r, wt, &m->sum);
            break;
        case 3:
            bad = pb_sub(r, wt, &sub) != 0 || read_bucket(m, &sub) != 0;
            break;
        case 4:
            bad = pb_double(r, wt, &m->count_float);
            break;
        case 5:
            if (!(bad = pb_varint_field(r, wt, &v))) {
                int64_t s = zigzag(v);
                bad = s < INT32_MIN || s > INT32_MAX;
                m->schema = (int32_t)s;
            }
            break;
        case 6:
            bad = pb_double(r, wt, &m->zt);
            break;
        case 7:
            bad = pb_varint_field(r, wt, &m->zc_int);
            break;
        case 8:
            bad = pb_double(r, wt, &m->zc_float);
            break;
        case 9:
        case 12:
            bad = pb_sub(r, wt, &sub) != 0 || read_span(f == 9 ? &m->neg : &m->pos, &sub) != 0;
            break;
        case 10:
        case 13:
            bad = read_deltas(f == 10 ? &m->neg : &m->pos, r, wt);
            break;
        case 11:
        case 14:
            bad = read_counts(f == 11 ? &m->neg : &m->pos, r, wt);
            break;
        case 16:
            if (!(bad = GROW(m->hex, m->caphex, m->nhex) != 0))
                bad = wt != WT_LEN || pb_len(r, &m->hex[m->nhex++]) != 0;
            break;
        default:
            bad = pb_skip(r, wt);
        }
        if (bad)
            return -1;
    }
    m->count = m->count_float > 0 ? m->count_float : (double)m->count_int;
    m->native = m->zt > 0 || m->zc_int > 0 || m->zc_float > 0 || m->pos.nspans || m->neg.nspans ||
                m->pos.ndeltas || m->neg.ndeltas || m->pos.ncounts || m->neg.ncounts;
    return rc;
}

static void pmetric_reset(pmetric *m) {
    m->nls = m->nq = m->nb = m->nhex = 0;
    m->has_ts = 0;
    m->ts = 0;
    m->value = m->count = m->sum = m->count_float = m->zt = m->zc_float = 0;
    m->count_int = m->zc_int = 0;
    m->schema = 0;
    m->counter_ex = (slice){0};
    m->pos.nspans = m->pos.ndeltas = m->pos.ncounts = 0;
    m->neg.nspans = m->neg.ndeltas = m->neg.ncounts = 0;
    m->native = 0;
}

/* Decodes metric s of the family into p->m; 0 or an error. */
KILN_MUST_CHECK static int read_metric(pexpo *p, slice s, kiln_err *err) {
    pmetric *m = &p->m;
    pmetric_reset(m);
    pbr r = {s.p, s.p + s.n};
    uint32_t f;
    int wt, rc;
    uint64_t v;
    const char *why = NULL;
    /* the fields of the family's type: Gauge 2, Counter 3, Summary 4, Untyped 5, Histogram 7 */
    static const uint32_t field_of[] = {3, 2, 4, 5, 7, 7};
    while ((rc = pb_tag(&r, &f, &wt)) == 1) {
        pbr sub;
        if (f == 1) {
            if (pb_sub(&r, wt, &sub) != 0)
                goto malformed;
            if (GROW(m->ls, m->capls, m->nls + 1) != 0)
                return nomem(p, err);
            if (read_label(&sub, &m->ls[m->nls], &why) != 0)
                return fail(p, err, "metric %zu: %s", p->mi + 1, why);
            m->nls++;
        } else if (f == 6) {
            if (pb_varint_field(&r, wt, &v) != 0)
                goto malformed;
            m->ts = (int64_t)v;
            m->has_ts = m->ts != 0;
        } else if (f == field_of[p->type]) {
            if (pb_sub(&r, wt, &sub) != 0)
                goto malformed;
            switch (p->type) {
            case PT_COUNTER:
                rc = read_value(&sub, &m->value, &m->counter_ex);
                break;
            case PT_GAUGE:
            case PT_UNTYPED:
                rc = read_value(&sub, &m->value, NULL);
                break;
            case PT_SUMMARY:
                rc = read_summary(m, &sub);
                break;
            default:
                rc = read_histogram(m, &sub);
            }
            if (rc < 0)
                goto malformed;
        } else if (pb_skip(&r, wt) != 0) {
            goto malformed;
        }
    }
    if (rc < 0)
        goto malformed;
    if (!m->ls && GROW(m->ls, m->capls, 0) != 0)
        return nomem(p, err);
    return 0;
malformed:
    return fail(p, err, "metric %zu: malformed Metric message", p->mi + 1);
}

/* Sets the entry's name to the family name + suffix. */
KILN_MUST_CHECK static int set_name(pexpo *p, const char *suffix) {
    size_t sl = strlen(suffix);
    if (array_grow((void **)&p->namebuf, &p->namecap, p->name.n + sl + 1, 1) != 0)
        return KILN_ENOMEM;
    memcpy(p->namebuf, p->name.p, p->name.n);
    memcpy(p->namebuf + p->name.n, suffix, sl + 1);
    p->namelen = p->name.n + sl;
    return 0;
}

/* Formats v as Prometheus' formatOpenMetricsFloat: Go's %v, ".0" added when
 * there is neither "." nor "e". */
static size_t fmt_om_float(double v, char *out) {
    int n = fmt_double_g(v, out);
    if (isfinite(v) && !strpbrk(out, ".e")) {
        memcpy(out + n, ".0", 3);
        n += 2;
    }
    return (size_t)n;
}

/* Builds the key of the current series: 0xff, the name, then each label
 * as uvarint-length-prefixed name and value. */
KILN_MUST_CHECK static int make_key(pexpo *p, size_t nls) {
    buf_reset(&p->key);
    buf_putc(&p->key, (char)0xff);
    buf_append(&p->key, p->namebuf, p->namelen);
    for (size_t i = 0; i < nls; i++) {
        const expo_label *l = &p->m.ls[i];
        buf_put_uvarint(&p->key, l->name_len);
        buf_append(&p->key, l->name, l->name_len);
        buf_put_uvarint(&p->key, l->value_len);
        buf_append(&p->key, l->value, l->value_len);
    }
    return buf_error(&p->key) != 0 ? KILN_ENOMEM : 0;
}

static double canon(double v) {
    return isnan(v) ? double_from_bits(0x7ff8000000000001ULL) : v;
}

/* Absolute counts of one side into *out (grown), from deltas or counts. */
KILN_MUST_CHECK static int side_counts(pexpo *p, const pside *s, int is_float, double **out, size_t *cap,
                                       uint32_t *n, kiln_err *err) {
    uint64_t want = 0;
    for (size_t i = 0; i < s->nspans; i++)
        want += s->spans[i].length;
    size_t have = is_float ? s->ncounts : s->ndeltas;
    if (want != have)
        return fail(p, err, "metric %zu: the spans cover %llu buckets but %zu %s are given", p->mi,
                    (unsigned long long)want, have, is_float ? "counts" : "deltas");
    if (have && array_grow((void **)out, cap, have, sizeof **out) != 0)
        return nomem(p, err);
    int64_t abs = 0;
    for (size_t i = 0; i < have; i++) {
        if (is_float) {
            (*out)[i] = s->counts[i];
        } else {
            abs += s->deltas[i];
            (*out)[i] = (double)abs;
        }
    }
    *n = (uint32_t)have;
    return 0;
}

/* The native histogram of the current metric into p->h. */
KILN_MUST_CHECK static int make_histogram(pexpo *p, kiln_err *err) {
    pmetric *m = &p->m;
    histogram *h = &p->h;
    memset(h, 0, sizeof *h);
    int is_float = m->count_float > 0 || m->zc_float > 0;
    h->schema = m->schema;
    h->hint = p->type == PT_GAUGE_HISTOGRAM ? HIST_HINT_GAUGE : HIST_HINT_UNKNOWN;
    h->is_int = !is_float;
    h->zero_threshold = m->zt;
    h->zero_count = is_float ? m->zc_float : (double)m->zc_int;
    h->count = m->count;
    h->sum = m->sum;
    h->pos_spans = m->pos.spans;
    h->npos_spans = (uint32_t)m->pos.nspans;
    h->neg_spans = m->neg.spans;
    h->nneg_spans = (uint32_t)m->neg.nspans;
    int rc = side_counts(p, &m->pos, is_float, &p->hpos, &p->caphpos, &h->npos, err);
    if (rc == 0)
        rc = side_counts(p, &m->neg, is_float, &p->hneg, &p->caphneg, &h->nneg, err);
    h->pos = p->hpos;
    h->neg = p->hneg;
    return rc;
}

/* Plans the entries of the current metric. */
static void plan_metric(pexpo *p) {
    pmetric *m = &p->m;
    p->step = 0;
    p->emit_native = 0;
    p->nclassic = 0;
    p->add_inf = 0;
    switch (p->type) {
    case PT_SUMMARY:
        p->nclassic = m->nq;
        p->nsteps = 2 + m->nq;
        return;
    case PT_HISTOGRAM:
    case PT_GAUGE_HISTOGRAM: {
        int classic = 1;
        if (m->native && p->o.native) {
            p->emit_native = 1;
            int real_bucket = 0;
            for (size_t i = 0; i < m->nb && !real_bucket; i++)
                real_bucket = !isinf(m->b[i].upper) || m->b[i].upper < 0;
            classic = p->o.classic && real_bucket;
        }
        if (classic) {
            p->add_inf = m->nb == 0 || !(isinf(m->b[m->nb - 1].upper) && m->b[m->nb - 1].upper > 0);
            p->nclassic = m->nb + (size_t)p->add_inf;
        }
        p->nsteps = (size_t)p->emit_native + (classic ? 2 + p->nclassic : 0);
        return;
    }
    default:
        p->nsteps = 1;
    }
}

/* Fills the entry for step p->step of the current metric. */
KILN_MUST_CHECK static int emit_step(pexpo *p, kiln_err *err) {
    pmetric *m = &p->m;
    size_t nls = m->nls;
    const char *suffix = "";
    size_t k = p->step;
    p->kind = EXPO_SAMPLE;
    p->cur_bucket = SIZE_MAX;
    if (p->type == PT_COUNTER || p->type == PT_GAUGE || p->type == PT_UNTYPED) {
        p->value = m->value;
    } else if (p->emit_native && k == 0) {
        p->kind = EXPO_NHIST;
        int rc = make_histogram(p, err);
        if (rc != 0)
            return rc;
    } else {
        k -= (size_t)p->emit_native;
        if (k == 0) {
            suffix = "_count";
            p->value = m->count;
        } else if (k == 1) {
            suffix = "_sum";
            p->value = m->sum;
        } else {
            size_t i = k - 2;
            expo_label *extra = &m->ls[nls++];
            double bound;
            if (p->type == PT_SUMMARY) {
                extra->name = "quantile";
                extra->name_len = 8;
                bound = m->q[i].q;
                p->value = m->q[i].v;
            } else {
                suffix = "_bucket";
                extra->name = "le";
                extra->name_len = 2;
                bound = i < m->nb ? m->b[i].upper : INFINITY;
                p->cur_bucket = i;
                p->value = i < m->nb ? m->b[i].cum : m->count;
            }
            extra->value = p->lebuf;
            extra->value_len = fmt_om_float(bound, p->lebuf);
        }
    }
    p->value = canon(p->value);
    p->cur_nls = nls;
    if (set_name(p, suffix) != 0 || make_key(p, nls) != 0)
        return nomem(p, err);
    return 0;
}

int pexpo_next(pexpo *p, expo_entry *kind, kiln_err *err) {
    if (p->failed)
        return kiln_err_set(err, KILN_EINVAL, "the parser failed before");
    for (;;) {
        if (p->meta_step < 3) {
            int st = p->meta_step++;
            if (st == 0 && p->help.n) {
                *kind = p->kind = EXPO_HELP;
            } else if (st == 1) {
                *kind = p->kind = EXPO_TYPE;
            } else if (st == 2 && p->unit.n) {
                *kind = p->kind = EXPO_UNIT;
            } else {
                continue;
            }
            if (set_name(p, "") != 0)
                return nomem(p, err);
            return 1;
        }
        if (p->step < p->nsteps) {
            int rc = emit_step(p, err);
            p->step++;
            if (rc != 0)
                return rc;
            *kind = p->kind;
            return 1;
        }
        if (p->mi < p->nmetrics) {
            int rc = read_metric(p, p->metrics[p->mi], err);
            if (rc != 0)
                return rc;
            p->mi++;
            plan_metric(p);
            continue;
        }
        int rc = read_family(p, err);
        if (rc <= 0)
            return rc;
        p->meta_step = 0;
        p->step = p->nsteps = 0;
    }
}

const char *pexpo_metric(const pexpo *p, size_t *len) {
    *len = p->namelen;
    return p->namebuf ? p->namebuf : "";
}

const char *pexpo_series(const pexpo *p, size_t *len) {
    *len = p->key.len;
    return p->key.data ? p->key.data : "";
}

size_t pexpo_labels(const pexpo *p, const expo_label **ls) {
    *ls = p->m.ls;
    return p->cur_nls;
}

double pexpo_value(const pexpo *p) {
    return p->value;
}

histogram *pexpo_histogram(pexpo *p) {
    return &p->h;
}

int pexpo_timestamp(const pexpo *p, int64_t *ms) {
    if (p->m.has_ts)
        *ms = p->m.ts;
    return p->m.has_ts;
}

const char *pexpo_text(const pexpo *p, size_t *len) {
    slice s = p->kind == EXPO_UNIT ? p->unit : p->help;
    *len = s.n;
    return s.p ? (const char *)s.p : "";
}

expo_type pexpo_metric_type(const pexpo *p) {
    static const expo_type t[] = {EXPO_COUNTER, EXPO_GAUGE,     EXPO_SUMMARY,
                                  EXPO_UNTYPED, EXPO_HISTOGRAM, EXPO_GAUGEHISTOGRAM};
    return t[p->type];
}

/* The exemplar message of the current entry's i-th exemplar, n 0 when none. */
static slice exemplar_of(const pexpo *p, size_t i) {
    const pmetric *m = &p->m;
    if (p->type == PT_COUNTER)
        return i == 0 ? m->counter_ex : (slice){0};
    if (p->type != PT_HISTOGRAM && p->type != PT_GAUGE_HISTOGRAM)
        return (slice){0};
    if (p->kind == EXPO_NHIST) {
        if (m->nhex)
            return i < m->nhex ? m->hex[i] : (slice){0};
        /* no histogram exemplars: the buckets' ones, in order */
        for (size_t j = 0; j < m->nb; j++)
            if (m->b[j].ex.n && i-- == 0)
                return m->b[j].ex;
        return (slice){0};
    }
    if (i == 0 && p->cur_bucket < m->nb)
        return m->b[p->cur_bucket].ex;
    return (slice){0};
}

int pexpo_exemplar(pexpo *p, size_t i, pexpo_ex *ex, kiln_err *err) {
    slice s = exemplar_of(p, i);
    if (!s.n)
        return 0;
    memset(ex, 0, sizeof *ex);
    pbr r = {s.p, s.p + s.n};
    uint32_t f;
    int wt, rc;
    size_t n = 0;
    const char *why = "malformed Exemplar";
    while ((rc = pb_tag(&r, &f, &wt)) == 1) {
        pbr sub;
        if (f == 1) {
            if (pb_sub(&r, wt, &sub) != 0)
                goto bad;
            if (GROW(p->exls, p->capexls, n) != 0)
                return nomem(p, err);
            if (read_label(&sub, &p->exls[n], &why) != 0)
                goto bad;
            n++;
        } else if (f == 2) {
            if (pb_double(&r, wt, &ex->value) != 0)
                goto bad;
        } else if (f == 3) {
            /* google.protobuf.Timestamp: seconds 1, nanos 2 */
            uint64_t sec = 0, nanos = 0;
            if (pb_sub(&r, wt, &sub) != 0)
                goto bad;
            while ((rc = pb_tag(&sub, &f, &wt)) == 1) {
                int bad = f == 1   ? pb_varint_field(&sub, wt, &sec)
                          : f == 2 ? pb_varint_field(&sub, wt, &nanos)
                                   : pb_skip(&sub, wt);
                if (bad)
                    goto bad;
            }
            if (rc < 0)
                goto bad;
            ex->has_ts = 1;
            /* wraps (no overflow) for seconds no clock reaches */
            ex->ts_ms = (int64_t)(sec * 1000 + (uint64_t)((int64_t)(int32_t)nanos / 1000000));
        } else if (pb_skip(&r, wt) != 0) {
            goto bad;
        }
    }
    if (rc < 0)
        goto bad;
    ex->ls = p->exls;
    ex->nls = n;
    ex->value = canon(ex->value);
    return 1;
bad:
    return kiln_err_set(err, KILN_EINVAL, "metric family %zu: metric %zu: %s", p->nfam, p->mi, why);
}

/* ---- schema reduction and limits ------------------------------------------------ */

/* Merges one side's buckets into the lower schema, in place. */
static void reduce_side(hist_span *spans, uint32_t *nspans, double *counts, uint32_t *ncounts,
                        int32_t delta) {
    uint32_t ns = 0, nc = 0;
    int64_t idx = 0, last = 0;
    size_t ci = 0;
    uint32_t in_spans = *nspans;
    for (uint32_t s = 0; s < in_spans; s++) {
        hist_span sp = spans[s]; /* read before the slot may be overwritten */
        idx += sp.offset;
        for (uint32_t j = 0; j < sp.length; j++, idx++, ci++) {
            /* Go's >> on a negative int rounds toward -inf, as C's does on gcc and clang */
            int64_t t = ((idx - 1) >> delta) + 1;
            double c = counts[ci];
            if (nc == 0) {
                spans[ns++] = (hist_span){(int32_t)t, 1};
                counts[nc++] = c;
            } else if (t == last) {
                counts[nc - 1] += c;
            } else if (t == last + 1) {
                spans[ns - 1].length++;
                counts[nc++] = c;
            } else {
                spans[ns++] = (hist_span){(int32_t)(t - last - 1), 1};
                counts[nc++] = c;
            }
            last = t;
        }
    }
    *nspans = ns;
    *ncounts = nc;
}

void hist_reduce_resolution(histogram *h, int32_t target) {
    if (target >= h->schema)
        return;
    int32_t delta = h->schema - target;
    reduce_side(h->pos_spans, &h->npos_spans, h->pos, &h->npos, delta);
    reduce_side(h->neg_spans, &h->nneg_spans, h->neg, &h->nneg, delta);
    h->schema = target;
}

int hist_apply_limits(histogram *h, uint64_t bucket_limit, double min_bucket_factor) {
    if (h->schema == HIST_SCHEMA_CUSTOM)
        return bucket_limit && (uint64_t)h->npos + h->nneg > bucket_limit ? KILN_ELIMIT : 0;
    if (h->schema < HIST_SCHEMA_MIN || h->schema > 52)
        return KILN_EINVAL;
    int32_t max = HIST_SCHEMA_MAX;
    if (min_bucket_factor > 1) {
        double fl = floor(-log2(log2(min_bucket_factor)));
        max = fl >= HIST_SCHEMA_MAX ? HIST_SCHEMA_MAX : fl <= HIST_SCHEMA_MIN ? HIST_SCHEMA_MIN : (int32_t)fl;
    }
    if (h->schema > max)
        hist_reduce_resolution(h, max);
    while (bucket_limit && (uint64_t)h->npos + h->nneg > bucket_limit) {
        if (h->schema <= HIST_SCHEMA_MIN)
            return KILN_ELIMIT;
        hist_reduce_resolution(h, h->schema - 1);
    }
    return 0;
}
