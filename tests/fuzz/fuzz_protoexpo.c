/*
 * fuzz_protoexpo.c - libFuzzer harness for the protobuf exposition parser
 * (scrape/protoexpo.c) and the schema reduction of scrape limits.
 *
 * The first byte picks the options (bit 0: native histograms, bit 1: keep
 * classic buckets) and a bucket limit (bits 2..7); the rest (at most
 * 64 KiB) is the body, copied to a buffer of exactly its size so that any
 * read past the end trips ASan.  Every entry is checked: names and label
 * values are valid UTF-8, a series key starts with 0xff and the name, a
 * native histogram's spans cover exactly its counts.  An error must be
 * KILN_EINVAL with a "metric family N" message and must stick.
 *
 * Each native histogram with an exponential schema is also run through
 * hist_apply_limits: the result must keep the total of its bucket counts
 * (merging moves counts, never drops them), its spans must still cover its
 * counts, and the bucket count must fit the limit when it succeeds.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scrape/protoexpo.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t span_total(const hist_span *s, uint32_t n) {
    uint64_t t = 0;
    for (uint32_t i = 0; i < n; i++)
        t += s[i].length;
    return t;
}

static double count_total(const double *c, uint32_t n) {
    double t = 0;
    for (uint32_t i = 0; i < n; i++)
        t += c[i];
    return t;
}

static void check_limits(const histogram *in, uint64_t limit) {
    if (in->schema < HIST_SCHEMA_MIN || in->schema > 52)
        return;
    histogram h = *in;
    hist_span *ps = malloc((in->npos_spans + 1) * sizeof *ps),
              *ns = malloc((in->nneg_spans + 1) * sizeof *ns);
    double *pc = malloc((in->npos + 1) * sizeof *pc), *nc = malloc((in->nneg + 1) * sizeof *nc);
    if (!ps || !ns || !pc || !nc)
        abort();
    if (in->npos_spans)
        memcpy(ps, in->pos_spans, in->npos_spans * sizeof *ps);
    if (in->nneg_spans)
        memcpy(ns, in->neg_spans, in->nneg_spans * sizeof *ns);
    if (in->npos)
        memcpy(pc, in->pos, in->npos * sizeof *pc);
    if (in->nneg)
        memcpy(nc, in->neg, in->nneg * sizeof *nc);
    h.pos_spans = ps, h.neg_spans = ns, h.pos = pc, h.neg = nc;
    double before = count_total(in->pos, in->npos) + count_total(in->neg, in->nneg);
    int rc = hist_apply_limits(&h, limit, 0);
    if (rc != 0 && rc != KILN_ELIMIT)
        abort();
    if (span_total(h.pos_spans, h.npos_spans) != h.npos || span_total(h.neg_spans, h.nneg_spans) != h.nneg)
        abort();
    if (h.schema > HIST_SCHEMA_MAX || h.schema > in->schema || h.npos > in->npos || h.nneg > in->nneg)
        abort();
    double after = count_total(h.pos, h.npos) + count_total(h.neg, h.nneg);
    /* integral counts add exactly below 2^53; others may round */
    if (isfinite(before) && fabs(before) < 9e15 && in->is_int && after != before)
        abort();
    if (rc == 0 && limit && (uint64_t)h.npos + h.nneg > limit)
        abort();
    free(ps), free(ns), free(pc), free(nc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    pexpo_opts o = {.native = data[0] & 1, .classic = (data[0] >> 1) & 1};
    uint64_t limit = data[0] >> 2;
    data++;
    size--;
    if (size > 65536)
        size = 65536;
    char *body = malloc(size ? size : 1);
    if (!body)
        return 0;
    memcpy(body, data, size);
    pexpo *p = pexpo_new(body, size, &o);
    if (!p)
        abort();
    expo_entry kind;
    kiln_err err = {0};
    int rc;
    size_t n = 0;
    while ((rc = pexpo_next(p, &kind, &err)) == 1 && n++ < 100000) {
        size_t ml;
        const char *m = pexpo_metric(p, &ml);
        if (ml == 0 || !utf8_valid(m, ml))
            abort();
        if (kind == EXPO_HELP || kind == EXPO_UNIT) {
            size_t tl;
            const char *t = pexpo_text(p, &tl);
            if (!utf8_valid(t, tl))
                abort();
        }
        if (kind == EXPO_TYPE &&
            (pexpo_metric_type(p) < EXPO_UNTYPED || pexpo_metric_type(p) > EXPO_STATESET))
            abort();
        if (kind != EXPO_SAMPLE && kind != EXPO_NHIST)
            continue;
        size_t kl;
        const char *k = pexpo_series(p, &kl);
        if (kl < ml + 1 || (unsigned char)k[0] != 0xff || memcmp(k + 1, m, ml) != 0)
            abort();
        const expo_label *ls;
        size_t nl = pexpo_labels(p, &ls);
        for (size_t i = 0; i < nl; i++)
            if (ls[i].name_len == 0 || !utf8_valid(ls[i].name, ls[i].name_len) ||
                !utf8_valid(ls[i].value, ls[i].value_len))
                abort();
        int64_t ts;
        (void)pexpo_timestamp(p, &ts);
        pexpo_ex ex;
        kiln_err xe = {0};
        for (size_t i = 0; i < 64 && pexpo_exemplar(p, i, &ex, &xe) == 1; i++)
            for (size_t j = 0; j < ex.nls; j++)
                if (ex.ls[j].name_len == 0)
                    abort();
        if (kind == EXPO_SAMPLE) {
            double v = pexpo_value(p);
            if (double_to_bits(v) == 0x7ff0000000000002ULL) /* never the stale marker */
                abort();
            continue;
        }
        const histogram *h = pexpo_histogram(p);
        if (span_total(h->pos_spans, h->npos_spans) != h->npos ||
            span_total(h->neg_spans, h->nneg_spans) != h->nneg)
            abort();
        check_limits(h, limit);
    }
    if (rc < 0) {
        if (rc != KILN_EINVAL && rc != KILN_ENOMEM)
            abort();
        if (rc == KILN_EINVAL && strncmp(err.msg, "metric family ", 14) != 0) {
            fprintf(stderr, "bad error: %s\n", err.msg);
            abort();
        }
        kiln_err again = {0};
        if (pexpo_next(p, &kind, &again) >= 0)
            abort();
    }
    pexpo_free(p);
    free(body);
    return 0;
}
