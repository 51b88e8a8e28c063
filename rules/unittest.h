/*
 * unittest.h - what the files of `kiln test rules` share (private to rules/):
 * unittest.c (the runner and its report) and unittest_series.c (the series
 * notation of input_series and exp_samples, parsed as Prometheus 2.42's
 * PromQL parser parses a series description and a metric).
 *
 * Threads: none; one test file at a time, on the caller's thread.
 */
#ifndef KILN_RULES_UNITTEST_H
#define KILN_RULES_UNITTEST_H

#include <stddef.h>
#include <stdint.h>

#include "storage/storage.h"
#include "util/util.h"

/* At most this many values one input series expands to ("1x100000000" would
 * otherwise take gigabytes; promtool has no bound and runs out of memory). */
#define UT_MAX_VALUES 1000000

/* One value of an input series: a number, a stale marker, or missing (`_`). */
typedef struct ut_value {
    double v;
    int omitted;
} ut_value;

/* A parsed series: its labels as written (sorted by name, duplicates and
 * empty values kept, as Prometheus' parser leaves them) and its values. */
typedef struct ut_series {
    label *ls;
    size_t nls;
    ut_value *vals;
    size_t nvals;
} ut_series;

/*
 * Parses one line of a `load` block, `metric{l="v"} 1+2x3 _ stale`, as
 * parser.ParseSeriesDesc does.  0 and *out (memory from a), or KILN_EINVAL
 * with Prometheus' first error appended to msg ("1:13: parse error:
 * unexpected identifier \"a\" in series values, expected number or
 * \"stale\"": the column counts bytes from 1), or KILN_ENOMEM.
 */
KILN_MUST_CHECK int ut_parse_series(const char *line, size_t len, arena *a, ut_series *out, buf *msg);

/* Parses a metric, `name{l="v"}`, as parser.ParseMetric does (exp_samples'
 * labels); out->vals stays empty.  Errors as ut_parse_series. */
KILN_MUST_CHECK int ut_parse_metric(const char *s, size_t len, arena *a, ut_series *out, buf *msg);

#endif
