/*
 * protoexpo.h - the protobuf exposition format (private to scrape/): a
 * pull parser over a body of length-delimited io.prometheus.client.MetricFamily
 * messages (application/vnd.google.protobuf;
 * proto=io.prometheus.client.MetricFamily; encoding=delimited), the format
 * that carries native histograms from targets.
 *
 * It yields the entries expo_next yields for the text formats (parse.h:
 * HELP, TYPE, UNIT, SAMPLE with a series key, name, labels, value and
 * timestamp) and one more, EXPO_NHIST, a native histogram sample.  What
 * a family becomes follows Prometheus' protobuf parser:
 *
 *   counter, gauge, untyped   one sample named as the family
 *   summary                   <name>_count, <name>_sum, <name>{quantile=q}...
 *   histogram, gauge hist.    native (has native parts and opts.native): one
 *                             EXPO_NHIST named as the family, then the
 *                             classic series too when opts.classic and it
 *                             has a classic bucket other than +Inf;
 *                             otherwise classic: <name>_count, <name>_sum,
 *                             <name>_bucket{le=...}... and le="+Inf" (the
 *                             count) when the buckets do not end with it
 *
 * le and quantile values are written as OpenMetrics floats ("1.0", "0.25",
 * "+Inf"), as Prometheus' protobuf parser writes them.
 *
 * Zero copy: names, label names and values point into the body; a series
 * key, a suffixed name, an le value and a histogram's arrays live in the
 * parser's memory, reused from one entry to the next (no allocation per
 * sample once warm).  Everything returned is valid until the next
 * pexpo_next.
 *
 * Errors name the family: `metric family 3 ("x"): ...` (KILN_EINVAL).
 *
 * Callers: append.c, once per scrape on the worker thread appending it;
 * tests/unit/test_protoexpo.c and tests/fuzz/fuzz_protoexpo.c.
 *
 * Threading: a parser belongs to one thread.
 */
#ifndef KILN_SCRAPE_PROTOEXPO_H
#define KILN_SCRAPE_PROTOEXPO_H

#include <stddef.h>
#include <stdint.h>

#include "scrape/parse.h"
#include "storage/storage.h"
#include "util/util.h"

/* The Content-Type (media type) of the format, and the one Accept names. */
#define PEXPO_MEDIA_TYPE "application/vnd.google.protobuf"
#define PEXPO_ACCEPT                                                                                         \
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"

typedef struct pexpo pexpo;

/* The entry kind of a native histogram sample, beyond parse.h's kinds (the
 * text formats never yield it). */
#define EXPO_NHIST ((expo_entry)16)

typedef struct pexpo_opts {
    int native;  /* native histograms become EXPO_NHIST (scrape_native_histograms) */
    int classic; /* and their classic buckets are kept too (always_scrape_classic_histograms) */
} pexpo_opts;

/* An exemplar of the current entry: labels point into the body. */
typedef struct pexpo_exemplar {
    const expo_label *ls;
    size_t nls;
    double value;
    int has_ts;
    int64_t ts_ms;
} pexpo_ex;

/* A parser over body[0..len) (borrowed).  NULL when out of memory. */
pexpo *pexpo_new(const char *body, size_t len, const pexpo_opts *o);
void pexpo_free(pexpo *p);

/*
 * Moves to the next entry: 1 with *kind set (EXPO_SAMPLE, EXPO_NHIST,
 * EXPO_HELP, EXPO_TYPE, EXPO_UNIT), 0 at the end of the body, KILN_EINVAL
 * with err naming the family (truncated or malformed protobuf, an empty
 * family name, an unknown metric type, an empty label name or bad UTF-8, a
 * native histogram whose spans and buckets disagree), or KILN_ENOMEM.  After
 * an error the parser stays failed.
 */
KILN_MUST_CHECK int pexpo_next(pexpo *p, expo_entry *kind, kiln_err *err);

/* The metric name of the entry (for samples with its suffix: "x_bucket"). */
const char *pexpo_metric(const pexpo *p, size_t *len);
/* SAMPLE, HISTOGRAM: a key unique to the series (name and labels), for a
 * scrape cache; never equal to a text format series. */
const char *pexpo_series(const pexpo *p, size_t *len);
/* SAMPLE, HISTOGRAM: the labels (not the name), le/quantile last. */
size_t pexpo_labels(const pexpo *p, const expo_label **ls);
/* SAMPLE: the value (a NaN is Prometheus' canonical NaN, never the stale marker). */
double pexpo_value(const pexpo *p);
/* HISTOGRAM: the sample (absolute counts; arrays in the parser, which the
 * caller may change in place, e.g. with hist_apply_limits). */
histogram *pexpo_histogram(pexpo *p);
/* SAMPLE, HISTOGRAM: 1 with *ms set when the metric has timestamp_ms. */
int pexpo_timestamp(const pexpo *p, int64_t *ms);
/* HELP: the text; UNIT: the unit. */
const char *pexpo_text(const pexpo *p, size_t *len);
/* TYPE: the type. */
expo_type pexpo_metric_type(const pexpo *p);
/*
 * SAMPLE, HISTOGRAM: the entry's i-th exemplar (a counter's, a classic
 * bucket's, a native histogram's): 1 with *ex set, 0 when there is no i-th,
 * KILN_EINVAL when it is malformed.  ex->ls is valid until the next call.
 */
KILN_MUST_CHECK int pexpo_exemplar(pexpo *p, size_t i, pexpo_ex *ex, kiln_err *err);

/*
 * Lowers h's resolution to schema `target` (< h->schema, both exponential
 * schemas) in place by merging neighbouring buckets, as Prometheus'
 * ReduceResolution: bucket i of schema s goes to ((i - 1) >> (s - target)) + 1.
 * The arrays shrink, never grow, so the caller's memory is reused.
 */
void hist_reduce_resolution(histogram *h, int32_t target);

/*
 * Applies a scrape config's native histogram limits as Prometheus does:
 * a schema above 8 (up to 52) is lowered to 8; min_bucket_factor > 1 caps
 * the schema at floor(-log2(log2(factor))) within -4..8; bucket_limit (> 0)
 * lowers the schema until the bucket count fits.  0, or KILN_ELIMIT when
 * the limit cannot be met (a custom-bucket histogram, or schema -4 reached),
 * or KILN_EINVAL for a schema that is not a known one.  h's arrays are
 * reused.
 */
KILN_MUST_CHECK int hist_apply_limits(histogram *h, uint64_t bucket_limit, double min_bucket_factor);

#endif
