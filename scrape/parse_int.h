/*
 * parse_int.h - the exposition parsers' shared insides (private to
 * parse.c and openmetrics.c): the parser's state, the character classes and
 * the helpers both formats use (errors, numbers, label sets, metadata).
 *
 * parse.c holds the interface, the shared pieces and the text format;
 * openmetrics.c the OpenMetrics lines and every rule of the OpenMetrics 1.0
 * specification beyond the grammar of one line (families, metric points,
 * histograms, exemplars).
 *
 * Threading: a parser belongs to one thread.
 */
#ifndef KILN_SCRAPE_PARSE_INT_H
#define KILN_SCRAPE_PARSE_INT_H

#include <stdarg.h>

#include "scrape/parse.h"

#define EXPO_EXEMPLAR_MAX_RUNES 128

enum { META_TYPE = 1, META_HELP = 2, META_UNIT = 4 };

enum { NUM_OK = 0, NUM_SYNTAX = -1, NUM_RANGE = -2, NUM_NOMEM = -3 };

/* A growable array of labels (pointing into the body or scratch). */
typedef struct expo_lvec {
    expo_label *v;
    size_t n, cap;
} expo_lvec;

/* A name seen in this body: base[0..len) followed by the suffix sfx (an
 * index of the OpenMetrics suffixes), in an open-addressing set. */
typedef struct expo_name {
    const char *base; /* NULL: empty slot */
    size_t len;
    int sfx;
    size_t line; /* where it was first seen */
} expo_name;

typedef struct expo_nameset {
    expo_name *v;
    size_t cap, n;
} expo_nameset;

/* A set of 64-bit hashes that empties in O(1): a slot is taken only when its
 * generation is the set's. */
typedef struct expo_hset {
    uint64_t *h;
    uint32_t *gen;
    size_t cap, n;
    uint32_t cur;
} expo_hset;

/* The histogram or gauge histogram MetricPoint being read (OpenMetrics). */
typedef struct expo_hpoint {
    int nbuckets, has_inf, neg_bucket, has_sum, has_count, neg_sum;
    double last_le, last_value, inf_value, count;
    size_t first_line, bucket_line, sum_line, count_line;
} expo_hpoint;

struct expo_parser {
    expo_format fmt;
    const char *body;
    size_t len;
    size_t pos;  /* start of the next line */
    size_t line; /* number of the current line */
    int state;   /* 0 running, 1 done, -1 failed */
    kiln_err fail;

    /* the current entry */
    const char *metric;
    size_t metric_len;
    const char *series;
    size_t series_len;
    const char *text;
    size_t text_len;
    expo_type type;
    double value;
    int has_ts;     /* 0 none, 1 ts set, -1 out of range (OpenMetrics) */
    double ts_secs; /* OpenMetrics: the timestamp as written */
    int64_t ts;
    expo_lvec ls;
    /* its exemplar (OpenMetrics) */
    int has_ex, ex_has_ts;
    double ex_value;
    int64_t ex_ts;
    expo_lvec exls;

    char *scratch; /* unescaped label values and HELP text of the line */
    size_t scratch_cap, scratch_off;
    char *num; /* NUL-terminated copy of a long number */
    size_t num_cap;
    expo_label *sorted; /* duplicate-name check of a long label set */
    size_t sorted_cap;

    /* OpenMetrics: the current family, its metric point, what was seen */
    const char *fam;
    size_t fam_len, fam_line;
    expo_type fam_type;
    unsigned fam_meta;
    int fam_samples;
    int fam_unit;         /* a non-empty UNIT line was seen */
    int fam_fixed;        /* its type is settled and its sample names taken */
    expo_nameset fams;    /* family names */
    expo_nameset samples; /* the sample names each family may write */
    expo_hset groups;     /* the metrics (label sets) of the family */
    expo_hset pseries;    /* the samples of the current metric point */
    int have_point, point_has_ts;
    uint64_t point_group;
    double point_ts;
    expo_hpoint hp;
    /* created timestamps (expo_created): the sample's suffix, the point's
     * _created when read already, the lookahead's answer for the point */
    int sample_sfx;
    int point_ct_has, ct_checked, ct_has;
    int64_t point_ct, ct_ms;
    struct expo_parser *ahead; /* parses the lines looked ahead at */
};

/* ---- characters ------------------------------------------------------- */

static inline int expo_is_alpha(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static inline int expo_is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}
static inline int expo_is_mname_start(unsigned char c) {
    return expo_is_alpha(c) || c == '_' || c == ':';
}
static inline int expo_is_mname_char(unsigned char c) {
    return expo_is_mname_start(c) || expo_is_digit(c);
}

/* ---- parse.c: helpers both formats use ---------------------------------- */

/* Fails the parser: `line N: <msg>` (the current line, or `line`). */
KILN_MUST_CHECK int expo_fail(expo_parser *p, kiln_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
KILN_MUST_CHECK int expo_fail_at(expo_parser *p, size_t line, kiln_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* `<what>, got "<token at s>"`, the token ending at a delimiter. */
KILN_MUST_CHECK int expo_fail_got(expo_parser *p, kiln_err *err, const char *what, const char *s,
                                  const char *end);
/* Like expo_fail_got, quoting the start of the line. */
KILN_MUST_CHECK int expo_fail_line(expo_parser *p, kiln_err *err, const char *what, const char *s,
                                   const char *end);
KILN_MUST_CHECK int expo_fail_nomem(expo_parser *p, kiln_err *err);
/* For expo_parse_float's rc < 0 on the number s[0..n) read as what. */
KILN_MUST_CHECK int expo_fail_number(expo_parser *p, kiln_err *err, int rc, const char *what, const char *s,
                                     size_t n);

/* Go's strconv.ParseFloat(s, 64) restricted to what Prometheus accepts
 * (NUM_OK or a NUM_* error; NaN is Prometheus' canonical NaN). */
KILN_MUST_CHECK int expo_parse_float(expo_parser *p, const char *s, size_t n, double *out);

/* A label set, s[*i] just after "{", up to and including "}", appended to
 * dst; adds the code points of names and values to *nrunes when not NULL. */
KILN_MUST_CHECK int expo_parse_labels(expo_parser *p, const char *s, size_t n, size_t *i, expo_lvec *dst,
                                      size_t *nrunes, kiln_err *err);

/* The metric name of a # HELP/TYPE/UNIT line at s[*j] into p->metric. */
KILN_MUST_CHECK int expo_meta_name(expo_parser *p, const char *s, size_t n, size_t *j, const char *what,
                                   kiln_err *err);
/* A TYPE line's type among names (indexed by expo_type): 1 (EXPO_TYPE). */
KILN_MUST_CHECK int expo_type_text(expo_parser *p, const char *const *names, int nocase, const char *t,
                                   size_t tn, expo_entry *kind, kiln_err *err);
/* A HELP line's text, unescaped: 1 (EXPO_HELP). */
KILN_MUST_CHECK int expo_help_text(expo_parser *p, const char *t, size_t tn, int quote, expo_entry *kind,
                                   kiln_err *err);

/* The label named name[0..n) of ls, or NULL. */
const expo_label *expo_find_label(const expo_lvec *ls, const char *name, size_t n);

/* ---- openmetrics.c ------------------------------------------------------ */

/* One OpenMetrics line s[0..n) (last: it has no "\n"): 1 with *kind set, 0
 * when it is # EOF (p->state set) or, or an error. */
KILN_MUST_CHECK int expo_om_line(expo_parser *p, const char *s, size_t n, int last, expo_entry *kind,
                                 kiln_err *err);
/* Frees the OpenMetrics state. */
void expo_om_free(expo_parser *p);

#endif
