/*
 * template.h - alert label and annotation templates (private to rules/ for now).
 *
 * Prometheus renders an alert's labels and annotations with Go's text/template
 * and its own functions (template_reference.md).  This is that language, the
 * subset rule files use, with byte-equal output to Prometheus 2.42: parse once
 * when the rule file loads (an unknown function or a syntax error is reported
 * with line:col), expand at every evaluation.  A runtime error becomes the
 * text Prometheus puts in its place, "<error expanding template: ...>".
 *
 * As in Prometheus' alerting rule, the variables $labels, $externalLabels,
 * $externalURL and $value are defined before the text, and runtime error
 * positions count the 112 bytes of those definitions on line 1.
 *
 * Not supported (a parse error): define, template, block, and the Go builtins
 * call, js and slice.  Threads: a parsed tmpl is read-only and may be expanded
 * by several threads at once.
 */
#ifndef KILN_RULES_TEMPLATE_H
#define KILN_RULES_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

typedef struct tmpl tmpl;

typedef struct tmpl_label {
    const char *name;
    const char *value;
} tmpl_label;

/* One element of a query result: labels (any order, __name__ included) and
 * the value.  A scalar result is one sample without labels. */
typedef struct tmpl_sample {
    tmpl_label *labels;
    size_t nlabels;
    double value;
} tmpl_sample;

/*
 * Runs PromQL for the `query` function at ts_ms.  On success fills *out with
 * *n samples owned by the callee until query_free is called with them (at the
 * end of the expansion); on failure returns a negative KILN_E* code and sets
 * err, whose message becomes the template's error text.
 */
typedef int (*tmpl_query_fn)(void *data, const char *expr, int64_t ts_ms, tmpl_sample **out, size_t *n,
                             kiln_err *err);
typedef void (*tmpl_query_free_fn)(void *data, tmpl_sample *v, size_t n);

/* What an alert's template sees; everything is borrowed for the call. */
typedef struct tmpl_data {
    const tmpl_label *labels; /* .Labels, $labels (any order) */
    size_t nlabels;
    const tmpl_label *ext_labels; /* .ExternalLabels, $externalLabels */
    size_t next_labels;
    const char *external_url; /* .ExternalURL, externalURL, pathPrefix; NULL = "" */
    double value;             /* .Value, $value */
    int64_t ts_ms;            /* the evaluation time, for query */
    tmpl_query_fn query;      /* NULL: query fails with "no query engine" */
    tmpl_query_free_fn query_free;
    void *query_data;
} tmpl_data;

/*
 * Parses `text`; `name` is the template's name in runtime error messages
 * (Prometheus uses "__alert_" + the alert name).  On success *out is a new
 * template (free with tmpl_free).  On a syntax error returns KILN_EINVAL with
 * "line:col: message" in err (Go's message, e.g. `function "foo" not
 * defined`); KILN_ENOMEM when memory runs out.
 */
KILN_MUST_CHECK int tmpl_parse(const char *text, const char *name, tmpl **out, kiln_err *err);

/*
 * Appends the expansion of t with d to out, or, when the template fails at
 * run time, Prometheus' "<error expanding template: ...>" text instead of
 * anything it printed.  Returns 0, or KILN_ENOMEM (out is then incomplete; its
 * sticky error is set too).
 */
KILN_MUST_CHECK int tmpl_expand(const tmpl *t, const tmpl_data *d, buf *out);

void tmpl_free(tmpl *t);

/* Appends Go's url.QueryEscape of s[0..n) to b (tableLink, graphLink, and
 * the generatorURL of alerts). */
void tmpl_query_escape(buf *b, const char *s, size_t n);

/*
 * Whether text parses, for rule-file checks (config/'s
 * rulefile_opts.check_template has this shape): 0, or KILN_EINVAL with the
 * message as Prometheus and promtool print it, "template: NAME:LINE: msg"
 * (Go gives no column); KILN_ENOMEM when memory runs out.
 */
KILN_MUST_CHECK int tmpl_check(const char *name, const char *text, kiln_err *err);

#endif
