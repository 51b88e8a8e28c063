/*
 * nhist.h - private to query/: native histogram arithmetic (nhist.c) as
 * Prometheus 3's FloatHistogram does it, on storage's `struct histogram`
 * (spans plus absolute bucket counts, specs/native_histograms.md).
 *
 * Every result is a new histogram in the arena passed in (its arrays too);
 * inputs are never changed.  Mixing schemas reduces the finer one to the
 * coarser (bucket i of schema s goes to ((i-1) >> (s-t)) + 1 of schema t);
 * mixing zero thresholds widens the smaller zero bucket to the larger,
 * moving the buckets it covers into it; custom-bucket histograms (schema
 * -53) with different bounds are reconciled to the bounds both have.
 *
 * Used by the evaluator files and tests/unit/test_nhist.c.
 * Threading: pure functions; any thread.
 */
#ifndef KILN_QUERY_NHIST_H
#define KILN_QUERY_NHIST_H

#include "storage/storage.h"
#include "util/util.h"

/* nh_add's outcomes besides 0 and KILN_ENOMEM. */
#define NH_EMIXED 1 /* one histogram has exponential buckets, the other custom ones */

static inline int nh_is_custom(const histogram *h) {
    return h->schema == HIST_SCHEMA_CUSTOM;
}

/* A zeroed histogram of schema 0 in a. */
histogram *nh_new(arena *a);
/* A deep copy of h in a; NULL when out of memory. */
histogram *nh_copy(arena *a, const histogram *h);

/*
 * *out = x + y (sub: x - y), a new histogram in a of the smaller schema and
 * the larger zero threshold; the hint is x's when equal to y's, a gauge when
 * either is, else unknown.  Returns 0, NH_EMIXED (nothing
 * made) or KILN_ENOMEM.  *reconciled (may be NULL) is set to 1 when custom
 * bounds differed and were reconciled.
 */
KILN_MUST_CHECK int nh_add(arena *a, const histogram *x, const histogram *y, int sub, histogram **out,
                           int *reconciled);
/* Whether x and y have the same buckets (schema, zero threshold, spans,
 * custom bounds): their counts then line up index by index. */
int nh_same_layout(const histogram *x, const histogram *y);
/* acc += sign * y in place when both have the same layout (returns 1);
 * returns 0, changing nothing, when they do not.  acc must be the
 * caller's own (not a stored sample). */
int nh_add_into(histogram *acc, const histogram *y, double sign);
/* h with every count and the sum multiplied (div: divided) by f; NULL when
 * out of memory. */
histogram *nh_scale(arena *a, const histogram *h, double f, int div);
/* Makes the counts, the sum, the zero count and every bucket of h the
 * product (div: quotient) with f, in place. */
void nh_scale_inplace(histogram *h, double f, int div);

/* Whether cur, following prev in a series, starts a new counter
 * (Prometheus' DetectReset: the hint, a count going down, a finer schema, a
 * smaller zero threshold, any bucket going down). */
int nh_detect_reset(const histogram *cur, const histogram *prev);

/* Equality as Prometheus' Equals (schema, thresholds, counts, sum, custom
 * bounds, buckets with empty ones ignored); eps 0 is exact (NaN equals
 * NaN), else counts and the sum match with that relative tolerance. */
int nh_equal(const histogram *a, const histogram *b, double eps);

/*
 * The trim operators (operators.md, specs/native_histograms.md "Trim
 * operators"): h without its observations above t (upper: </) or below t
 * (>/), a new histogram in a with h's layout and flavor; NULL when out of
 * memory.  A bucket the threshold cuts keeps the share of its count that
 * interpolation puts on the kept side (linear in NHCB buckets and the zero
 * bucket, exponential in the regular buckets of standard schemas; NHCB's
 * open-ended buckets hold observations at -Inf/+Inf, a bound-less NHCB all
 * at 0).  When anything went, the count is what the buckets keep (plus
 * observations in no bucket) and the sum is estimated from the kept buckets
 * (a mean of each, the cut one's surviving part).  A NaN t trims nothing.
 */
histogram *nh_trim(arena *a, const histogram *h, double t, int upper);

/* histogram_quantile, histogram_fraction, histogram_stdvar of one sample. */
double nh_quantile(double q, const histogram *h);
double nh_fraction(double lower, double upper, const histogram *h);
double nh_stdvar(const histogram *h);

/* Appends h as Prometheus' FloatHistogram.String writes it (count_values'
 * label value): "{count:20, sum:10, [-2,-1):2, [-0.001,0.001]:2, (1,2]:2}". */
void nh_string(const histogram *h, buf *b);

/* The upper bound of bucket idx of an exponential schema. */
double nh_bound(int32_t idx, int32_t schema);

#endif
