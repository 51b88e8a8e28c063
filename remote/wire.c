/*
 * wire.c - the bytes of a remote write 1.0 request: prometheus.WriteRequest
 * (remote.proto in Prometheus' prompb) encoded by hand, then compressed with
 * snappy's block format, as the spec asks.  Only the fields the sender
 * fills are written:
 *
 *   WriteRequest { repeated TimeSeries timeseries = 1; }
 *   TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
 *                  repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
 *   Label        { string name = 1; string value = 2; }
 *   Sample       { double value = 1; int64 timestamp = 2; }
 *   Exemplar     { repeated Label labels = 1; double value = 2; int64 timestamp = 3; }
 *
 * A series' labels are encoded once (wire_labels) and copied into every
 * TimeSeries that carries one of its samples (one sample, histogram or
 * exemplar a TimeSeries, as Prometheus' queue manager sends them).
 *
 * Called by queue.c on the sender thread; no state.
 */
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>

#include "remote/remote_int.h"

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

void wire_bytes(buf *out, uint8_t tag, const void *p, size_t n) {
    buf_putc(out, (char)tag);
    buf_put_uvarint(out, n);
    buf_append(out, p, n);
}

/* A string field: kiln's C0 80 as the NUL byte it stands for (util/strnul.c). */
static void wire_str(buf *out, uint8_t tag, const char *s, size_t n) {
    buf_putc(out, (char)tag);
    buf_put_uvarint(out, nul_out_len(s, n));
    buf_append_nul_out(out, s, n);
}

void wire_labels(buf *out, const label *ls, size_t n) {
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(ls[i].name), vr = strlen(ls[i].value), vl = nul_out_len(ls[i].value, vr);
        buf_putc(out, 0x0a); /* TimeSeries.labels */
        buf_put_uvarint(out, 1 + varint_len(nl) + nl + 1 + varint_len(vl) + vl);
        wire_bytes(out, 0x0a, ls[i].name, nl);
        wire_str(out, 0x12, ls[i].value, vr);
    }
}

/* A Sample's bytes (the same message in 1.0 and 2.0) into smp; their count. */
static size_t put_sample(uint8_t smp[20], int64_t t, double v) {
    size_t sn = 0;
    uint64_t bits = double_to_bits(v);
    smp[sn++] = 0x09; /* Sample.value, fixed64 little-endian */
    for (int i = 0; i < 8; i++)
        smp[sn++] = (uint8_t)(bits >> (8 * i));
    smp[sn++] = 0x10; /* Sample.timestamp, varint (two's complement when negative) */
    uint64_t u = (uint64_t)t;
    while (u >= 0x80) {
        smp[sn++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    smp[sn++] = (uint8_t)u;
    return sn;
}

/* An Exemplar's value and timestamp fields (2 and 3): a Sample's with the tags moved. */
static size_t put_exemplar_vt(uint8_t smp[20], int64_t t, double v) {
    size_t n = put_sample(smp, t, v);
    smp[0] = 0x11; /* Exemplar.value, fixed64 */
    smp[9] = 0x18; /* Exemplar.timestamp, varint */
    return n;
}

void wire_timeseries_exemplar(buf *out, const uint8_t *labels, size_t len, const uint8_t *elabels,
                              size_t elen, int64_t t, double v) {
    uint8_t vt[20];
    size_t vn = put_exemplar_vt(vt, t, v), xn = elen + vn;
    buf_putc(out, 0x0a); /* WriteRequest.timeseries */
    buf_put_uvarint(out, len + 1 + varint_len(xn) + xn);
    buf_append(out, labels, len);
    buf_putc(out, 0x1a); /* TimeSeries.exemplars (3) */
    buf_put_uvarint(out, xn);
    buf_append(out, elabels, elen); /* Exemplar.labels: the same Label fields (1) */
    buf_append(out, vt, vn);
}

void wire_timeseries(buf *out, const uint8_t *labels, size_t len, int64_t t, double v) {
    uint8_t smp[20];
    size_t sn = put_sample(smp, t, v);
    size_t ts_len = len + 1 + varint_len(sn) + sn;
    buf_putc(out, 0x0a); /* WriteRequest.timeseries */
    buf_put_uvarint(out, ts_len);
    buf_append(out, labels, len);
    wire_bytes(out, 0x12, smp, sn); /* TimeSeries.samples */
}

int wire_snappy(buf *raw, buf *scratch) {
    if (buf_error(raw))
        return KILN_ENOMEM;
    size_t n = snappy_max_compressed_length(raw->len);
    buf_reset(scratch);
    if (buf_reserve(scratch, n))
        return KILN_ENOMEM;
    if (snappy_compress(raw->data ? raw->data : "", raw->len, scratch->data, &n) != SNAPPY_OK)
        return KILN_ENOMEM;
    scratch->len = n;
    buf tmp = *raw;
    *raw = *scratch;
    *scratch = tmp;
    return 0;
}

/* ---- remote write 2.0: io.prometheus.write.v2.Request ------------------------------------------ */

static uint64_t sym_hash(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/* The reference of p[0..n) in the request's symbols, added when new; -1 when
 * out of memory. */
static long v2_symbol(wire_v2 *w, const uint8_t *p, size_t n) {
    if ((w->nsyms + 1) * 2 > w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 256;
        wire_v2_sym *t = calloc(ncap, sizeof *t);
        if (!t)
            return -1;
        for (size_t i = 0; i < w->cap; i++)
            if (w->tab[i].p) {
                size_t j = sym_hash(w->tab[i].p, w->tab[i].n) & (ncap - 1);
                while (t[j].p)
                    j = (j + 1) & (ncap - 1);
                t[j] = w->tab[i];
            }
        free(w->tab);
        w->tab = t;
        w->cap = ncap;
    }
    static const uint8_t empty[1];
    if (!n)
        p = empty; /* "" is a symbol like any other (the first) */
    size_t j = sym_hash(p, n) & (w->cap - 1);
    for (; w->tab[j].p; j = (j + 1) & (w->cap - 1))
        if (w->tab[j].n == n && memcmp(w->tab[j].p, p, n) == 0)
            return (long)w->tab[j].ref;
    w->tab[j] = (wire_v2_sym){p, n, (uint32_t)w->nsyms};
    wire_str(&w->symbols, 0x22, (const char *)p, n); /* Request.symbols */
    return (long)w->nsyms++;
}

void wire_v2_reset(wire_v2 *w) {
    if (w->cap)
        memset(w->tab, 0, w->cap * sizeof *w->tab);
    w->nsyms = 0;
    buf_reset(&w->symbols);
    buf_reset(&w->series);
    w->oom = v2_symbol(w, NULL, 0) < 0; /* symbols[0] is "" */
}

void wire_v2_free(wire_v2 *w) {
    free(w->tab);
    buf_free(&w->symbols);
    buf_free(&w->series);
    buf_free(&w->refs);
    buf_free(&w->xrefs);
    buf_free(&w->xmsg);
    buf_free(&w->md);
    memset(w, 0, sizeof *w);
}

/* The next varint of p[*i..n); 0 when malformed (not reached: the bytes are
 * wire_labels'). */
static uint64_t get_varint(const uint8_t *p, size_t n, size_t *i) {
    uint64_t v = 0;
    for (unsigned sh = 0; *i < n && sh < 64; sh += 7) {
        uint8_t b = p[(*i)++];
        v |= (uint64_t)(b & 0x7f) << sh;
        if (!(b & 0x80))
            return v;
    }
    return 0;
}

/* The symbol references of labels (wire_labels' bytes: per label
 * 0a L (0a nl name 12 vl value)) appended to refs; 0, or -1 out of memory. */
static int v2_refs(wire_v2 *w, const uint8_t *labels, size_t len, buf *refs) {
    for (size_t i = 0; i < len;) {
        i++; /* 0x0a */
        size_t end = (size_t)get_varint(labels, len, &i);
        end += i;
        while (i < end && end <= len) {
            i++; /* 0x0a or 0x12 */
            size_t sl = (size_t)get_varint(labels, len, &i);
            long ref = sl <= len - i ? v2_symbol(w, labels + i, sl) : -1;
            if (ref < 0) {
                w->oom = 1;
                return -1;
            }
            buf_put_uvarint(refs, (uint64_t)ref);
            i += sl;
        }
    }
    return 0;
}

/* Appends to w->series the TimeSeries of w->refs with one field (tag,
 * p[0..n)) and md's Metadata (type, help and unit as symbol references). */
static void v2_put_series(wire_v2 *w, uint8_t tag, const void *p, size_t n, const wire_v2_meta *md) {
    buf_reset(&w->md);
    if (md && md->type) {
        buf_putc(&w->md, 0x08); /* Metadata.type */
        buf_put_uvarint(&w->md, (uint64_t)md->type);
    }
    const char *text[2] = {md ? md->help : NULL, md ? md->unit : NULL};
    for (int k = 0; k < 2; k++) {
        long ref = text[k] && *text[k] ? v2_symbol(w, (const uint8_t *)text[k], strlen(text[k])) : 0;
        if (ref < 0) {
            w->oom = 1;
            return;
        }
        if (ref > 0) {
            buf_putc(&w->md, k ? 0x20 : 0x18); /* Metadata.unit_ref (4), help_ref (3) */
            buf_put_uvarint(&w->md, (uint64_t)ref);
        }
    }
    size_t ml = w->md.len;
    buf_putc(&w->series, 0x2a); /* Request.timeseries */
    buf_put_uvarint(&w->series, 1 + varint_len(w->refs.len) + w->refs.len + 1 + varint_len(n) + n +
                                    (ml ? 1 + varint_len(ml) + ml : 0));
    wire_bytes(&w->series, 0x0a, w->refs.data, w->refs.len); /* TimeSeries.labels_refs, packed */
    wire_bytes(&w->series, tag, p, n);
    if (ml)
        wire_bytes(&w->series, 0x2a, w->md.data, ml); /* TimeSeries.metadata (5) */
}

void wire_v2_exemplar(wire_v2 *w, const uint8_t *labels, size_t len, const uint8_t *elabels, size_t elen,
                      int64_t t, double v, const wire_v2_meta *md) {
    buf_reset(&w->refs);
    buf_reset(&w->xrefs);
    if (v2_refs(w, labels, len, &w->refs) != 0 || v2_refs(w, elabels, elen, &w->xrefs) != 0)
        return;
    uint8_t vt[20];
    size_t vn = put_exemplar_vt(vt, t, v);
    buf_reset(&w->xmsg);
    if (w->xrefs.len)
        wire_bytes(&w->xmsg, 0x0a, w->xrefs.data, w->xrefs.len); /* Exemplar.labels_refs, packed */
    buf_append(&w->xmsg, vt, vn);
    v2_put_series(w, 0x22, w->xmsg.data, w->xmsg.len, md); /* TimeSeries.exemplars (4) */
}

void wire_v2_timeseries(wire_v2 *w, const uint8_t *labels, size_t len, int64_t t, double v, const uint8_t *h,
                        size_t hlen, const wire_v2_meta *md) {
    buf_reset(&w->refs);
    if (v2_refs(w, labels, len, &w->refs) != 0)
        return;
    uint8_t smp[20];
    if (h)
        v2_put_series(w, 0x1a, h, hlen, md); /* TimeSeries.histograms (the same Histogram message) */
    else
        v2_put_series(w, 0x12, smp, put_sample(smp, t, v), md); /* TimeSeries.samples */
}

void wire_v2_finish(wire_v2 *w, buf *out) {
    buf_reset(out);
    buf_append(out, w->symbols.data, w->symbols.len);
    buf_append(out, w->series.data, w->series.len);
    if (w->oom || buf_error(&w->symbols) || buf_error(&w->series) || buf_error(&w->refs))
        out->oom = 1;
}

/* ---- metadata (WriteRequest.metadata) ---------------------------------------------------------- */

int wire_metadata(buf *out, const char *family, const char *type, const char *help, const char *unit) {
    static const char *const types[] = {"unknown",        "counter", "gauge", "histogram",
                                        "gaugehistogram", "summary", "info",  "stateset"};
    uint64_t t = 0;
    for (uint64_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (type && strcmp(type, types[i]) == 0)
            t = i;
    buf m = BUF_INIT;
    if (t) {
        buf_putc(&m, 0x08); /* MetricMetadata.type */
        buf_put_uvarint(&m, t);
    }
    wire_bytes(&m, 0x12, family, strlen(family)); /* metric_family_name */
    if (help && *help)
        wire_bytes(&m, 0x22, help, strlen(help)); /* help */
    if (unit && *unit)
        wire_bytes(&m, 0x2a, unit, strlen(unit)); /* unit */
    int rc = buf_error(&m);
    wire_bytes(out, 0x1a, m.data, m.len); /* WriteRequest.metadata */
    buf_free(&m);
    return rc ? rc : buf_error(out);
}

/* ---- native histograms (TimeSeries.histograms) ------------------------------------------------ */

static void put_key(buf *b, unsigned field, unsigned wt) {
    buf_put_uvarint(b, (uint64_t)field << 3 | wt);
}

static void put_fixed64(buf *b, unsigned field, double v) {
    uint64_t bits = double_to_bits(v);
    uint8_t t[8];
    for (int i = 0; i < 8; i++)
        t[i] = (uint8_t)(bits >> (8 * i));
    put_key(b, field, 1);
    buf_append(b, t, 8);
}

static uint64_t zigzag(int64_t v) {
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/* One side's spans and counts: integer counts as deltas (sint64), float
 * ones absolute (double), both packed. */
static void put_side(buf *b, buf *tmp, unsigned span_field, const hist_span *sp, uint32_t nsp,
                     const double *c, uint32_t n, int is_int) {
    for (uint32_t i = 0; i < nsp; i++) {
        buf_reset(tmp);
        put_key(tmp, 1, 0);
        buf_put_uvarint(tmp, zigzag(sp[i].offset));
        put_key(tmp, 2, 0);
        buf_put_uvarint(tmp, sp[i].length);
        put_key(b, span_field, 2);
        buf_put_uvarint(b, tmp->len);
        buf_append(b, tmp->data, tmp->len);
    }
    if (!n)
        return;
    buf_reset(tmp);
    double prev = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (is_int) {
            buf_put_uvarint(tmp, zigzag((int64_t)c[i] - (int64_t)prev));
            prev = c[i];
        } else {
            uint64_t bits = double_to_bits(c[i]);
            for (int k = 0; k < 8; k++)
                buf_putc(tmp, (char)(bits >> (8 * k)));
        }
    }
    put_key(b, span_field + (is_int ? 1 : 2), 2); /* the deltas or the counts */
    buf_put_uvarint(b, tmp->len);
    buf_append(b, tmp->data, tmp->len);
}

int wire_histogram(buf *out, const histogram *h, int64_t t) {
    buf tmp = BUF_INIT;
    if (h->is_int) {
        put_key(out, 1, 0); /* count_int */
        buf_put_uvarint(out, (uint64_t)h->count);
    } else {
        put_fixed64(out, 2, h->count); /* count_float */
    }
    put_fixed64(out, 3, h->sum);
    put_key(out, 4, 0); /* schema, sint32 */
    buf_put_uvarint(out, zigzag(h->schema));
    put_fixed64(out, 5, h->zero_threshold);
    if (h->is_int) {
        put_key(out, 6, 0); /* zero_count_int */
        buf_put_uvarint(out, (uint64_t)h->zero_count);
    } else {
        put_fixed64(out, 7, h->zero_count); /* zero_count_float */
    }
    put_side(out, &tmp, 8, h->neg_spans, h->nneg_spans, h->neg, h->nneg, h->is_int);
    put_side(out, &tmp, 11, h->pos_spans, h->npos_spans, h->pos, h->npos, h->is_int);
    if (h->hint) {
        put_key(out, 14, 0); /* reset_hint: the same values as hist_reset_hint */
        buf_put_uvarint(out, h->hint);
    }
    put_key(out, 15, 0); /* timestamp */
    buf_put_uvarint(out, (uint64_t)t);
    if (h->ncustom) {
        buf_reset(&tmp);
        for (uint32_t i = 0; i < h->ncustom; i++) {
            uint64_t bits = double_to_bits(h->custom_values[i]);
            for (int k = 0; k < 8; k++)
                buf_putc(&tmp, (char)(bits >> (8 * k)));
        }
        put_key(out, 16, 2); /* custom_values, packed */
        buf_put_uvarint(out, tmp.len);
        buf_append(out, tmp.data, tmp.len);
    }
    int rc = buf_error(&tmp);
    buf_free(&tmp);
    return rc ? rc : buf_error(out);
}

void wire_timeseries_hist(buf *out, const uint8_t *labels, size_t len, const uint8_t *h, size_t hlen) {
    size_t ts_len = len + 1 + varint_len(hlen) + hlen;
    buf_putc(out, 0x0a); /* WriteRequest.timeseries */
    buf_put_uvarint(out, ts_len);
    buf_append(out, labels, len);
    wire_bytes(out, 0x22, h, hlen); /* TimeSeries.histograms (4) */
}
