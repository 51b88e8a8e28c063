/*
 * histogram.c - helpers on storage.h's native histogram sample: validation
 * (Prometheus' ValidateHistogram rules), copying into an arena, equality,
 * and bucket layouts (spans as sets of bucket indices: subset checks and
 * moving counts onto a wider layout).
 *
 * A layout's spans name absolute bucket indices: the first span starts at
 * its offset, each later one `offset` indices after the end of the one
 * before; a span of length 0 only moves the position.
 *
 * Called by the appender (validation), the head's chunks (layouts), the
 * querier (copies) and any layer above storage that needs them.
 *
 * Threading: none; pure functions.
 */
#include <math.h>
#include <string.h>

#include "storage/storage.h"

uint32_t histogram_nbuckets(const hist_span *sp, uint32_t n) {
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += sp[i].length;
    return total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
}

int histogram_is_stale(const histogram *h) {
    return value_is_stale(h->sum);
}

/* The spans of one side against its counts, then the counts themselves. */
static int check_side(const char *side, const hist_span *sp, uint32_t nsp, const double *v, uint32_t nv,
                      double *total, kiln_err *err) {
    uint64_t want = 0;
    for (uint32_t i = 0; i < nsp; i++) {
        if (i > 0 && sp[i].offset < 0)
            return kiln_err_set(err, KILN_EINVAL,
                                "%s side: span number %u with offset %d: histogram has a span whose offset "
                                "is negative",
                                side, i + 1, (int)sp[i].offset);
        want += sp[i].length;
    }
    if (want != nv)
        return kiln_err_set(err, KILN_EINVAL,
                            "%s side: spans need %llu buckets, have %u buckets: histogram spans specify "
                            "different number of buckets than provided",
                            side, (unsigned long long)want, nv);
    for (uint32_t i = 0; i < nv; i++) {
        if (v[i] < 0 || isnan(v[i]))
            return kiln_err_set(err, KILN_EINVAL,
                                "%s side: bucket number %u has observation count of %g: histogram has a "
                                "bucket whose observation count is negative",
                                side, i + 1, v[i]);
        *total += v[i];
    }
    return 0;
}

int histogram_validate(const histogram *h, kiln_err *err) {
    if (histogram_is_stale(h))
        return 0; /* a stale marker's buckets do not matter */
    int custom = h->schema == HIST_SCHEMA_CUSTOM;
    if (!custom && (h->schema < HIST_SCHEMA_MIN || h->schema > HIST_SCHEMA_MAX))
        return kiln_err_set(err, KILN_EINVAL, "histogram has an invalid schema %d (must be -4..8 or -53)",
                            (int)h->schema);
    if (!(h->zero_threshold >= 0) || isinf(h->zero_threshold))
        return kiln_err_set(err, KILN_EINVAL, "histogram has an invalid zero threshold %g",
                            h->zero_threshold);
    if ((h->npos && !h->pos) || (h->nneg && !h->neg) || (h->npos_spans && !h->pos_spans) ||
        (h->nneg_spans && !h->neg_spans) || (h->ncustom && !h->custom_values))
        return kiln_err_set(err, KILN_EINVAL, "histogram has counts or spans without their array");
    double total = 0;
    int rc = check_side("negative", h->neg_spans, h->nneg_spans, h->neg, h->nneg, &total, err);
    if (rc == 0)
        rc = check_side("positive", h->pos_spans, h->npos_spans, h->pos, h->npos, &total, err);
    if (rc)
        return rc;
    if (!(h->zero_count >= 0))
        return kiln_err_set(err, KILN_EINVAL, "histogram has a negative zero count %g", h->zero_count);
    total += h->zero_count;
    if (!(h->count >= 0) && !isnan(h->count))
        return kiln_err_set(err, KILN_EINVAL, "histogram has a negative count %g", h->count);
    /* float histograms are not held to it: Prometheus 3 skips the check
     * for them, as sums of float counts can come out a little above the count */
    if (h->is_int && total > h->count)
        return kiln_err_set(err, KILN_EINVAL,
                            "%.17g observations found in buckets, but the Count field is %.17g: histogram's "
                            "observation count should be at least the number of observations found in the "
                            "buckets",
                            total, h->count);
    if (h->is_int) {
        double all[3] = {h->count, h->zero_count, 0};
        for (int i = 0; i < 2; i++)
            if (all[i] != floor(all[i]) || all[i] > 18446744073709549568.0)
                return kiln_err_set(err, KILN_EINVAL, "integer histogram has a non-integer count %g", all[i]);
        for (uint32_t i = 0; i < h->npos + h->nneg; i++) {
            double v = i < h->npos ? h->pos[i] : h->neg[i - h->npos];
            if (v != floor(v) || v > 9007199254740992.0)
                return kiln_err_set(err, KILN_EINVAL, "integer histogram has a non-integer bucket count %g",
                                    v);
        }
    }
    if (custom) {
        if (h->nneg || h->nneg_spans || h->zero_count != 0 || h->zero_threshold != 0)
            return kiln_err_set(err, KILN_EINVAL,
                                "histogram with custom buckets must have no negative buckets and no zero "
                                "bucket");
        for (uint32_t i = 0; i < h->ncustom; i++) {
            if (isnan(h->custom_values[i]) || (i > 0 && !(h->custom_values[i] > h->custom_values[i - 1])))
                return kiln_err_set(err, KILN_EINVAL,
                                    "histogram custom bounds must be in strictly increasing "
                                    "order");
        }
        /* every bucket index must name a bound (the last, +Inf, is implied) */
        int64_t idx = 0, last = -1;
        for (uint32_t i = 0; i < h->npos_spans; i++) {
            idx += h->pos_spans[i].offset;
            if (h->pos_spans[i].length) {
                if (idx < 0)
                    return kiln_err_set(err, KILN_EINVAL, "histogram custom buckets span a negative index");
                last = idx + h->pos_spans[i].length - 1;
            }
            idx += h->pos_spans[i].length;
        }
        if (last > (int64_t)h->ncustom)
            return kiln_err_set(err, KILN_EINVAL,
                                "histogram custom buckets: bucket index %lld has no bound (%u bounds)",
                                (long long)last, h->ncustom);
    } else if (h->ncustom) {
        return kiln_err_set(err, KILN_EINVAL,
                            "histogram with exponential schema must not have custom bounds");
    }
    return 0;
}

/* Copies n elements of size sz into a (NULL for none). */
static void *dup_into(arena *a, const void *p, size_t n, size_t sz, int *fail) {
    if (!n || !p)
        return NULL;
    void *d = arena_alloc_nz(a, n * sz);
    if (!d) {
        *fail = 1;
        return NULL;
    }
    memcpy(d, p, n * sz);
    return d;
}

histogram *histogram_copy(arena *a, const histogram *h) {
    histogram *c = arena_alloc_nz(a, sizeof *c);
    if (!c)
        return NULL;
    int fail = 0;
    *c = *h;
    c->pos_spans = dup_into(a, h->pos_spans, h->npos_spans, sizeof *h->pos_spans, &fail);
    c->neg_spans = dup_into(a, h->neg_spans, h->nneg_spans, sizeof *h->neg_spans, &fail);
    c->pos = dup_into(a, h->pos, h->npos, sizeof *h->pos, &fail);
    c->neg = dup_into(a, h->neg, h->nneg, sizeof *h->neg, &fail);
    c->custom_values = dup_into(a, h->custom_values, h->ncustom, sizeof *h->custom_values, &fail);
    if (!c->pos_spans)
        c->npos_spans = 0;
    if (!c->neg_spans)
        c->nneg_spans = 0;
    if (!c->pos)
        c->npos = 0;
    if (!c->neg)
        c->nneg = 0;
    if (!c->custom_values)
        c->ncustom = 0;
    return fail ? NULL : c;
}

static int same_bits(const double *a, const double *b, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (double_to_bits(a[i]) != double_to_bits(b[i]))
            return 0;
    return 1;
}

static int same_spans(const hist_span *a, const hist_span *b, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (a[i].offset != b[i].offset || a[i].length != b[i].length)
            return 0;
    return 1;
}

int histogram_equal(const histogram *a, const histogram *b) {
    if (a->schema != b->schema || a->is_int != b->is_int || a->npos_spans != b->npos_spans ||
        a->nneg_spans != b->nneg_spans || a->npos != b->npos || a->nneg != b->nneg ||
        a->ncustom != b->ncustom)
        return 0;
    double sa[4] = {a->zero_threshold, a->zero_count, a->count, a->sum};
    double sb[4] = {b->zero_threshold, b->zero_count, b->count, b->sum};
    return same_bits(sa, sb, 4) && same_spans(a->pos_spans, b->pos_spans, a->npos_spans) &&
           same_spans(a->neg_spans, b->neg_spans, a->nneg_spans) && same_bits(a->pos, b->pos, a->npos) &&
           same_bits(a->neg, b->neg, a->nneg) && same_bits(a->custom_values, b->custom_values, a->ncustom);
}

void histogram_span_iter_init(histogram_span_iter *it, const hist_span *sp, uint32_t n) {
    memset(it, 0, sizeof *it);
    it->sp = sp;
    it->n = n;
}

int histogram_span_iter_next(histogram_span_iter *it, int32_t *idx) {
    while (it->si < it->n) {
        const hist_span *s = &it->sp[it->si];
        if (it->li == 0)
            it->next += s->offset; /* the first span's offset is its start */
        if (it->li < s->length) {
            it->li++;
            *idx = (int32_t)it->next++;
            return 1;
        }
        it->si++;
        it->li = 0;
    }
    return 0;
}

int histogram_fit(const hist_span *sp, uint32_t nsp, const double *v, const hist_span *to, uint32_t nto,
                  double *out, uint32_t nout) {
    histogram_span_iter a, b;
    histogram_span_iter_init(&a, sp, nsp);
    histogram_span_iter_init(&b, to, nto);
    int32_t ia = 0, ib;
    int has = histogram_span_iter_next(&a, &ia);
    uint32_t k = 0, j = 0;
    while (histogram_span_iter_next(&b, &ib)) {
        if (j >= nout)
            return -1;
        if (has && ia < ib)
            return -1; /* a bucket of sp is missing in `to` */
        if (has && ia == ib) {
            out[j++] = v ? v[k] : 0;
            k++;
            has = histogram_span_iter_next(&a, &ia);
        } else {
            out[j++] = 0;
        }
    }
    return has || j != nout ? -1 : 0;
}
