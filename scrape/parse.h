/*
 * parse.h - the exposition-format parsers (private to scrape/): the
 * Prometheus text format 0.0.4 and OpenMetrics 1.0, one pull tokenizer each
 * behind one interface.
 *
 * parse.c has the text format, openmetrics.c OpenMetrics with every rule of
 * its specification; parse_int.h is their shared state.
 *
 * Zero copy: names, label names and the raw series text point into the
 * body; a label value is unescaped (\\ \" \n) into the parser's scratch
 * memory only when it holds an escape.  Everything returned for an entry is
 * valid until the next expo_next call.  No allocation per sample in the
 * steady state.
 *
 * Errors name the line: `line 3: expected label value, got "x"` (KILN_EINVAL).
 *
 * Callers: append.c, once per scrape on the worker thread that appends it;
 * tests/unit/test_scrape_parse.c and tests/fuzz/fuzz_expo.c.
 *
 * Threading: a parser belongs to one thread.
 */
#ifndef KILN_SCRAPE_PARSE_H
#define KILN_SCRAPE_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

typedef enum expo_format { EXPO_TEXT = 0, EXPO_OPENMETRICS = 1 } expo_format;

typedef enum expo_entry {
    EXPO_SAMPLE = 1,
    EXPO_HELP,
    EXPO_TYPE,
    EXPO_UNIT,    /* OpenMetrics */
    EXPO_COMMENT, /* any other # line */
} expo_entry;

/* Metric types of # TYPE lines. */
typedef enum expo_type {
    EXPO_UNTYPED = 0, /* "untyped" (text) / "unknown" (OpenMetrics) */
    EXPO_COUNTER,
    EXPO_GAUGE,
    EXPO_HISTOGRAM,
    EXPO_GAUGEHISTOGRAM,
    EXPO_SUMMARY,
    EXPO_INFO,
    EXPO_STATESET,
} expo_type;

typedef struct expo_label {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} expo_label;

typedef struct expo_parser expo_parser;

/* Picks the format from a Content-Type header value (NULL: text). */
expo_format expo_format_of(const char *content_type);

/* A parser over body[0..len) (borrowed).  NULL when out of memory. */
expo_parser *expo_parser_new(expo_format f, const char *body, size_t len);
void expo_parser_free(expo_parser *p);

/*
 * Moves to the next entry: returns 1 with *kind set, 0 at the end (for
 * OpenMetrics: after `# EOF`; a missing `# EOF` is an error), or KILN_EINVAL
 * with err naming the line.  After an error the parser stays failed.
 */
KILN_MUST_CHECK int expo_next(expo_parser *p, expo_entry *kind, kiln_err *err);

/* The line number of the current entry (1-based). */
size_t expo_line(const expo_parser *p);

/* SAMPLE, HELP, TYPE, UNIT: the metric name (for samples the full series
 * name, e.g. "x_bucket"). */
const char *expo_metric(const expo_parser *p, size_t *len);

/* SAMPLE: the series exactly as written, name and labels ("x{a=\"b\"}"), the
 * key of a scrape cache. */
const char *expo_series(const expo_parser *p, size_t *len);

/* SAMPLE: the labels as written (without the name), in written order. */
size_t expo_labels(const expo_parser *p, const expo_label **ls);

/* SAMPLE: the value (Go ParseFloat semantics: NaN, +Inf, -Inf, ...). */
double expo_value(const expo_parser *p);

/* SAMPLE: 1 with *ms set when the line has a timestamp (text: integer ms;
 * OpenMetrics: float seconds, converted), else 0; -1 (OpenMetrics) when the
 * timestamp is a valid number out of the range of int64 milliseconds: the
 * sample is then dropped (and counted out of bounds) unless the scrape
 * ignores timestamps, as Prometheus does. */
int expo_timestamp(const expo_parser *p, int64_t *ms);

/* SAMPLE (OpenMetrics): 1 when the line has an exemplar, with its labels
 * (*ls, *n), value, and timestamp (*has_ts as for expo_timestamp; *ts in
 * ms when 1); else 0. */
int expo_has_exemplar(const expo_parser *p);
int expo_exemplar(const expo_parser *p, const expo_label **ls, size_t *n, double *v, int *has_ts,
                  int64_t *ts);

/* SAMPLE (OpenMetrics): 1 when the sample is its counter's, histogram's or
 * summary's _created. */
int expo_is_created(const expo_parser *p);

/* SAMPLE (OpenMetrics, counter, histogram and summary samples other than
 * _created): 1 with *ms the created timestamp of the sample's metric point
 * (the value of its _created line, before or after it), else 0.  Looks
 * ahead in the body once a metric point. */
int expo_created(expo_parser *p, int64_t *ms);

/* HELP: the (unescaped) text; UNIT: the unit. */
const char *expo_text(const expo_parser *p, size_t *len);

/* TYPE: the type. */
expo_type expo_metric_type(const expo_parser *p);

#endif
