/*
 * openmetrics.c - the OpenMetrics 1.0 text format: its lines and every rule
 * of the specification (specs/open_metrics_spec.md), each failure naming
 * the line and the rule.  Called by parse.c's expo_next, one line at a time,
 * on the thread that owns the parser.
 *
 * The grammar of a line is the spec's ABNF: exactly one space between
 * tokens, no blank lines, no comments, no carriage returns, every line ends
 * in "\n" except `# EOF`, which must be last; labels with commas between
 * them and none after the last, names unique and not beginning with "_";
 * numbers as `realnumber` or Inf/NaN, timestamps as `realnumber` (float
 * seconds, truncated to ms like Prometheus: int64(ts * 1000)); a timestamp
 * beyond the int64 range of ms keeps the line valid and marks the sample
 * (expo_timestamp answers -1): the scrape drops only that sample, as
 * Prometheus does.  Exemplars (" # {...} v [ts]") are kept for the caller.
 *
 * Beyond a line, a metric family is tracked from its first line to the
 * next family's:
 *   - families: metadata once each and before the samples; the sample-name
 *     suffixes of each type (counter _total/_created; histogram
 *     _bucket/_count/_sum/_created; gaugehistogram _bucket/_gcount/_gsum;
 *     summary bare/_count/_sum/_created; info _info; stateset, gauge and
 *     unknown bare); a sample that fits no suffix of the current family
 *     starts a family of type unknown; a family name seen before is an
 *     interleaved family; the sample names a family may write (its name
 *     with each suffix of its type) must not be another family's (a gauge
 *     "foo_created" next to a counter "foo");
 *   - metrics: a metric is a label set of the family (without "le" for
 *     buckets, "quantile" for quantiles, the state label of a stateset);
 *     its samples come together (a label set seen before, after another, is
 *     an interleaved metric); a metric point is its samples with one
 *     timestamp: timestamps are on all of a metric's samples or none, and
 *     never go backwards; a sample appears once in a point;
 *   - values: counter totals, bucket and count values not NaN nor
 *     negative, bucket and count values integers; histogram _sum not NaN nor
 *     negative; summary _sum not NaN nor negative, quantile values not
 *     negative; info 1; stateset 0 or 1; "le" a number, not NaN, +Inf written
 *     "+Inf"; "quantile" within [0, 1];
 *   - histogram points: buckets in increasing "le" order and cumulative, a
 *     +Inf bucket, _count (_gcount) present exactly when _sum (_gsum) is and
 *     equal to the +Inf bucket, no _sum with a negative bucket, no negative
 *     _gsum without one;
 *   - exemplars only on counter _total and (gauge) histogram _bucket
 *     samples, within the bucket (value <= le), their label names and values
 *     at most 128 code points.
 *
 * The sets are keyed by pointers into the body (names) or by 64-bit hashes
 * of label sets, order independent; a collision of two different label
 * sets would only make a valid body fail, at odds of 2^-64.
 *
 * Threading: a parser belongs to one thread.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scrape/parse_int.h"

/* The sample-name suffixes of OpenMetrics families. */
enum {
    SFX_NONE,
    SFX_TOTAL,
    SFX_CREATED,
    SFX_BUCKET,
    SFX_COUNT,
    SFX_SUM,
    SFX_GCOUNT,
    SFX_GSUM,
    SFX_INFO,
    SFX_N,
};

static const struct {
    const char *s;
    size_t n;
} sfx_names[SFX_N] = {
    {"", 0},     {"_total", 6},  {"_created", 8}, {"_bucket", 7}, {"_count", 6},
    {"_sum", 4}, {"_gcount", 7}, {"_gsum", 5},    {"_info", 5},
};

#define B(x) (1u << (x))
static const unsigned type_sfx[] = {
    [EXPO_UNTYPED] = B(SFX_NONE),
    [EXPO_COUNTER] = B(SFX_TOTAL) | B(SFX_CREATED),
    [EXPO_GAUGE] = B(SFX_NONE),
    [EXPO_HISTOGRAM] = B(SFX_BUCKET) | B(SFX_COUNT) | B(SFX_SUM) | B(SFX_CREATED),
    [EXPO_GAUGEHISTOGRAM] = B(SFX_BUCKET) | B(SFX_GCOUNT) | B(SFX_GSUM),
    [EXPO_SUMMARY] = B(SFX_NONE) | B(SFX_COUNT) | B(SFX_SUM) | B(SFX_CREATED),
    [EXPO_INFO] = B(SFX_INFO),
    [EXPO_STATESET] = B(SFX_NONE),
};
#undef B

static const char *const type_names[EXPO_STATESET + 1] = {
    [EXPO_UNTYPED] = "unknown",
    [EXPO_COUNTER] = "counter",
    [EXPO_GAUGE] = "gauge",
    [EXPO_HISTOGRAM] = "histogram",
    [EXPO_GAUGEHISTOGRAM] = "gaugehistogram",
    [EXPO_SUMMARY] = "summary",
    [EXPO_INFO] = "info",
    [EXPO_STATESET] = "stateset",
};

/* Clamps a length for "%.*s". */
static int cl(size_t n) {
    return n > 64 ? 64 : (int)n;
}

/* ---- hashing ------------------------------------------------------------ */

static uint64_t fnv(uint64_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t label_hash(const expo_label *l) {
    uint64_t h = fnv(14695981039346656037ULL, l->name, l->name_len);
    h = fnv(h * 31 + 0x3d, l->value, l->value_len);
    return mix(h);
}

/* ---- a set of names (base + suffix) ------------------------------------ */

static uint64_t name_hash(const char *base, size_t len, int sfx) {
    return fnv(fnv(14695981039346656037ULL, base, len), sfx_names[sfx].s, sfx_names[sfx].n);
}

static char name_at(const char *base, size_t len, int sfx, size_t i) {
    return i < len ? base[i] : sfx_names[sfx].s[i - len];
}

static int name_eq(const expo_name *e, const char *base, size_t len, int sfx) {
    size_t n = len + sfx_names[sfx].n;
    if (e->len + sfx_names[e->sfx].n != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (name_at(e->base, e->len, e->sfx, i) != name_at(base, len, sfx, i))
            return 0;
    return 1;
}

static const expo_name *nameset_find(const expo_nameset *s, const char *base, size_t len, int sfx) {
    if (s->cap == 0)
        return NULL;
    for (size_t k = name_hash(base, len, sfx) & (s->cap - 1); s->v[k].base != NULL;
         k = (k + 1) & (s->cap - 1))
        if (name_eq(&s->v[k], base, len, sfx))
            return &s->v[k];
    return NULL;
}

/* Adds a name known not to be in the set. */
KILN_MUST_CHECK static int nameset_add(expo_nameset *s, const char *base, size_t len, int sfx, size_t line) {
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        expo_name *t = calloc(cap, sizeof *t);
        if (t == NULL)
            return KILN_ENOMEM;
        for (size_t i = 0; i < s->cap; i++) {
            if (s->v[i].base == NULL)
                continue;
            size_t k = name_hash(s->v[i].base, s->v[i].len, s->v[i].sfx) & (cap - 1);
            while (t[k].base != NULL)
                k = (k + 1) & (cap - 1);
            t[k] = s->v[i];
        }
        free(s->v);
        s->v = t;
        s->cap = cap;
    }
    size_t k = name_hash(base, len, sfx) & (s->cap - 1);
    while (s->v[k].base != NULL)
        k = (k + 1) & (s->cap - 1);
    s->v[k] = (expo_name){base, len, sfx, line};
    s->n++;
    return 0;
}

/* ---- a set of hashes emptied in O(1) ------------------------------------ */

static void hset_clear(expo_hset *s) {
    s->n = 0;
    if (++s->cur == 0) {
        if (s->gen != NULL)
            memset(s->gen, 0, s->cap * sizeof *s->gen);
        s->cur = 1;
    }
}

/* Adds h: 1 added, 0 already there, KILN_ENOMEM. */
KILN_MUST_CHECK static int hset_add(expo_hset *s, uint64_t h) {
    if (s->cur == 0)
        s->cur = 1;
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        uint64_t *nh = malloc(cap * sizeof *nh);
        uint32_t *ng = calloc(cap, sizeof *ng);
        if (nh == NULL || ng == NULL) {
            free(nh);
            free(ng);
            return KILN_ENOMEM;
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (s->gen[i] != s->cur)
                continue;
            size_t k = s->h[i] & (cap - 1);
            while (ng[k] == s->cur)
                k = (k + 1) & (cap - 1);
            nh[k] = s->h[i];
            ng[k] = s->cur;
        }
        free(s->h);
        free(s->gen);
        s->h = nh;
        s->gen = ng;
        s->cap = cap;
    }
    size_t k = h & (s->cap - 1);
    for (; s->gen[k] == s->cur; k = (k + 1) & (s->cap - 1))
        if (s->h[k] == h)
            return 0;
    s->h[k] = h;
    s->gen[k] = s->cur;
    s->n++;
    return 1;
}

static int hset_has(const expo_hset *s, uint64_t h) {
    if (s->cap == 0)
        return 0;
    for (size_t k = h & (s->cap - 1); s->gen[k] == s->cur; k = (k + 1) & (s->cap - 1))
        if (s->h[k] == h)
            return 1;
    return 0;
}

void expo_om_free(expo_parser *p) {
    expo_parser_free(p->ahead);
    free(p->fams.v);
    free(p->samples.v);
    free(p->groups.h);
    free(p->groups.gen);
    free(p->pseries.h);
    free(p->pseries.gen);
}

/* ---- families ------------------------------------------------------------ */

static int is_int(double v) {
    return isfinite(v) && v == floor(v);
}

/* The label set of the current sample as written ("{...}", or "{}"). */
static void series_labels(const expo_parser *p, const char **s, int *n) {
    size_t k = p->series_len - p->metric_len;
    *s = k ? p->series + p->metric_len : "{}";
    *n = k ? cl(k) : 2;
}

/* The checks of a histogram's metric point once its last sample is read. */
KILN_MUST_CHECK static int finish_point(expo_parser *p, kiln_err *err) {
    if (!p->have_point || (p->fam_type != EXPO_HISTOGRAM && p->fam_type != EXPO_GAUGEHISTOGRAM))
        return 0;
    p->have_point = 0;
    const expo_hpoint *h = &p->hp;
    const char *ty = type_names[p->fam_type];
    int fl = cl(p->fam_len);
    int gauge = p->fam_type == EXPO_GAUGEHISTOGRAM;
    const char *cnt = gauge ? "_gcount" : "_count", *sum = gauge ? "_gsum" : "_sum";
    if (h->nbuckets == 0)
        return expo_fail_at(p, h->first_line, err,
                            "%s \"%.*s\": a metric point without buckets (it MUST have a bucket with an +Inf "
                            "threshold)",
                            ty, fl, p->fam);
    if (!h->has_inf)
        return expo_fail_at(p, h->bucket_line, err,
                            "%s \"%.*s\": no +Inf bucket (a metric point MUST have a bucket with an +Inf "
                            "threshold)",
                            ty, fl, p->fam);
    if (h->has_count && h->count != h->inf_value)
        return expo_fail_at(p, h->count_line, err,
                            "%s \"%.*s\": %s is %.17g but the +Inf bucket is %.17g (they MUST be equal)", ty,
                            fl, p->fam, cnt, h->count, h->inf_value);
    if (h->has_sum && !h->has_count)
        return expo_fail_at(p, h->sum_line, err,
                            "%s \"%.*s\": %s without %s (the +Inf value MUST appear as %s if and only if %s "
                            "does)",
                            ty, fl, p->fam, sum, cnt, cnt, sum);
    if (h->has_count && !h->has_sum)
        return expo_fail_at(p, h->count_line, err,
                            "%s \"%.*s\": %s without %s (the +Inf value MUST appear as %s if and only if %s "
                            "does)",
                            ty, fl, p->fam, cnt, sum, cnt, sum);
    if (!gauge && h->neg_bucket && h->has_sum)
        return expo_fail_at(
            p, h->sum_line, err,
            "histogram \"%.*s\": a _sum with negative buckets (such a metric point MUST NOT have "
            "a sum)",
            fl, p->fam);
    if (gauge && h->neg_sum && !h->neg_bucket)
        return expo_fail_at(p, h->sum_line, err,
                            "gaugehistogram \"%.*s\": a negative _gsum without negative buckets (it may be "
                            "negative only when they are present)",
                            fl, p->fam);
    return 0;
}

/* Settles the family's type: the sample names it may write are taken, and
 * must not be another family's. */
KILN_MUST_CHECK static int fix_family(expo_parser *p, size_t line, kiln_err *err) {
    if (p->fam == NULL || p->fam_fixed)
        return 0;
    p->fam_fixed = 1;
    unsigned allowed = type_sfx[p->fam_type];
    for (int k = 0; k < SFX_N; k++) {
        if (!(allowed & (1u << k)))
            continue;
        const expo_name *e = nameset_find(&p->samples, p->fam, p->fam_len, k);
        if (e != NULL)
            return expo_fail_at(
                p, line, err,
                "%s \"%.*s\" may write samples named \"%.*s%s\", as the family on line %zu may "
                "(families MUST NOT be interleaved and their sample names MUST NOT clash)",
                type_names[p->fam_type], cl(p->fam_len), p->fam, cl(p->fam_len), p->fam, sfx_names[k].s,
                e->line);
        if (nameset_add(&p->samples, p->fam, p->fam_len, k, line) < 0)
            return expo_fail_nomem(p, err);
    }
    return 0;
}

KILN_MUST_CHECK static int end_family(expo_parser *p, kiln_err *err) {
    int rc = finish_point(p, err);
    if (rc < 0)
        return rc;
    return fix_family(p, p->fam_line, err);
}

KILN_MUST_CHECK static int begin_family(expo_parser *p, const char *s, size_t n, kiln_err *err) {
    int rc = end_family(p, err);
    if (rc < 0)
        return rc;
    const expo_name *e = nameset_find(&p->fams, s, n, SFX_NONE);
    if (e != NULL)
        return expo_fail(p, err,
                         "metric family \"%.*s\" appears again after another family (first on line %zu; "
                         "families MUST NOT be interleaved)",
                         cl(n), s, e->line);
    if (s[0] == '_')
        return expo_fail(p, err,
                         "metric family \"%.*s\" begins with \"_\" (reserved: such names MUST NOT be used)",
                         cl(n), s);
    if (nameset_add(&p->fams, s, n, SFX_NONE, p->line) < 0)
        return expo_fail_nomem(p, err);
    p->fam = s;
    p->fam_len = n;
    p->fam_line = p->line;
    p->fam_type = EXPO_UNTYPED;
    p->fam_meta = 0;
    p->fam_samples = 0;
    p->fam_unit = 0;
    p->fam_fixed = 0;
    p->have_point = 0;
    hset_clear(&p->groups);
    return 0;
}

KILN_MUST_CHECK static int om_meta(expo_parser *p, const char *s, size_t n, size_t j, int which,
                                   expo_entry *kind, kiln_err *err) {
    const char *what = which == META_HELP ? "HELP" : which == META_TYPE ? "TYPE" : "UNIT";
    int rc = expo_meta_name(p, s, n, &j, what, err);
    if (rc < 0)
        return rc;
    const char *name = p->metric;
    size_t nlen = p->metric_len;
    if (j >= n || s[j] != ' ')
        return expo_fail_got(p, err, "expected a space after the metric name", s + j, s + n);
    j++;
    const char *t = s + j;
    size_t tn = n - j;

    if (p->fam != NULL && p->fam_len == nlen && memcmp(p->fam, name, nlen) == 0) {
        if (p->fam_samples)
            return expo_fail(p, err, "%s line for \"%.*s\" after its samples (metadata comes first)", what,
                             cl(nlen), name);
        if (p->fam_meta & (unsigned)which)
            return expo_fail(p, err, "second %s line for \"%.*s\" (one of each at most)", what, cl(nlen),
                             name);
    } else if ((rc = begin_family(p, name, nlen, err)) < 0) {
        return rc;
    }
    p->fam_meta |= (unsigned)which;

    if (which == META_TYPE) {
        if ((rc = expo_type_text(p, type_names, 0, t, tn, kind, err)) < 0)
            return rc;
        p->fam_type = p->type;
        if ((p->type == EXPO_INFO || p->type == EXPO_STATESET) && p->fam_unit)
            return expo_fail(p, err, "%s \"%.*s\" cannot have a unit (its unit MUST be empty)",
                             type_names[p->type], cl(nlen), name);
        if ((rc = fix_family(p, p->line, err)) < 0)
            return rc;
        return 1;
    }
    if (which == META_UNIT) {
        for (size_t k = 0; k < tn; k++)
            if (!expo_is_mname_char((unsigned char)t[k]))
                return expo_fail_got(p, err, "invalid character in unit", t + k, t + tn);
        if (tn > 0) {
            if (nlen < tn + 1 || memcmp(name + nlen - tn, t, tn) != 0 || name[nlen - tn - 1] != '_')
                return expo_fail(p, err,
                                 "unit \"%.*s\" is not a suffix of metric \"%.*s\" (it MUST be, after "
                                 "an underscore)",
                                 cl(tn), t, cl(nlen), name);
            if (p->fam_type == EXPO_INFO || p->fam_type == EXPO_STATESET)
                return expo_fail(p, err, "%s \"%.*s\" cannot have a unit (its unit MUST be empty)",
                                 type_names[p->fam_type], cl(nlen), name);
            p->fam_unit = 1;
        }
        p->text = t;
        p->text_len = tn;
        *kind = EXPO_UNIT;
        return 1;
    }
    return expo_help_text(p, t, tn, 1, kind, err);
}

/* ---- numbers ------------------------------------------------------------- */

/* A float token s[*j..] up to a space or the end of the line. */
KILN_MUST_CHECK static int om_number(expo_parser *p, const char *s, size_t n, size_t *j, const char *what,
                                     double *out, kiln_err *err) {
    size_t v = *j;
    while (*j < n && s[*j] != ' ')
        (*j)++;
    if (*j == v) {
        char msg[64];
        snprintf(msg, sizeof msg, "expected %s", what);
        return expo_fail_got(p, err, msg, s + v, s + n);
    }
    int rc = expo_parse_float(p, s + v, *j - v, out);
    return rc < 0 ? expo_fail_number(p, err, rc, what, s + v, *j - v) : 0;
}

/* int64(secs * 1000) when in range: 1, else 0. */
static int secs_to_ms(double secs, int64_t *ms) {
    double x = secs * 1000;
    if (!(x > -9223372036854775808.0 && x < 9223372036854775808.0))
        return 0;
    *ms = (int64_t)x;
    return 1;
}

/* A timestamp (the ABNF's realnumber): *secs as written; *ms and 1, or -1
 * when int64(secs * 1000) is out of range (the sample is to be dropped). */
KILN_MUST_CHECK static int om_timestamp(expo_parser *p, const char *s, size_t n, size_t *j, const char *what,
                                        double *secs, int64_t *ms, int *has, kiln_err *err) {
    size_t start = *j;
    int rc = om_number(p, s, n, j, what, secs, err);
    if (rc < 0)
        return rc;
    if (isnan(*secs) || isinf(*secs))
        return expo_fail(p, err, "invalid %s \"%.*s\" (a timestamp is a real number)", what, cl(*j - start),
                         s + start);
    *ms = 0;
    *has = secs_to_ms(*secs, ms) ? 1 : -1;
    return 0;
}

/* " # {labels} value [timestamp]" to the end of the line, s[j] at "{". */
KILN_MUST_CHECK static int om_exemplar(expo_parser *p, const char *s, size_t n, size_t j, kiln_err *err) {
    j++;
    size_t nr = 0;
    int rc = expo_parse_labels(p, s, n, &j, &p->exls, &nr, err);
    if (rc < 0)
        return rc;
    if (nr > EXPO_EXEMPLAR_MAX_RUNES)
        return expo_fail(p, err, "exemplar labels have %zu characters, more than %d", nr,
                         EXPO_EXEMPLAR_MAX_RUNES);
    if (j >= n || s[j] != ' ')
        return expo_fail_got(p, err, "expected a space after the exemplar labels", s + j, s + n);
    j++;
    if ((rc = om_number(p, s, n, &j, "exemplar value", &p->ex_value, err)) < 0)
        return rc;
    p->has_ex = 1;
    p->ex_has_ts = 0;
    if (j < n) {
        j++; /* the space om_number stopped at */
        double secs = 0;
        if ((rc = om_timestamp(p, s, n, &j, "exemplar timestamp", &secs, &p->ex_ts, &p->ex_has_ts, err)) < 0)
            return rc;
        if (j < n) /* show what follows the space, unless that is nothing */
            return expo_fail_got(p, err, "expected end of line after the exemplar timestamp",
                                 s + j + (j + 1 < n), s + n);
    }
    return 0;
}

/* ---- samples ------------------------------------------------------------- */

/* Which suffix of the current family the name is, or -1 when the sample
 * does not belong to it. */
static int family_suffix(const expo_parser *p, const char *name, size_t n) {
    if (p->fam == NULL || n < p->fam_len || memcmp(name, p->fam, p->fam_len) != 0)
        return -1;
    unsigned allowed = type_sfx[p->fam_type];
    for (int k = 0; k < SFX_N; k++)
        if ((allowed & (1u << k)) && n - p->fam_len == sfx_names[k].n &&
            memcmp(name + p->fam_len, sfx_names[k].s, sfx_names[k].n) == 0)
            return k;
    return -1;
}

/* A bucket's "le": the number, or a failure. */
KILN_MUST_CHECK static int bucket_le(expo_parser *p, double *b, kiln_err *err) {
    const char *ty = type_names[p->fam_type];
    const expo_label *le = expo_find_label(&p->ls, "le", 2);
    if (le == NULL)
        return expo_fail(p, err,
                         "%s \"%.*s\" bucket without an \"le\" label (every bucket MUST have a threshold)",
                         ty, cl(p->fam_len), p->fam);
    int rc = expo_parse_float(p, le->value, le->value_len, b);
    if (rc == NUM_NOMEM)
        return expo_fail_nomem(p, err);
    if (rc < 0 || isnan(*b))
        return expo_fail(p, err,
                         "%s \"%.*s\" bucket has an invalid \"le\" value \"%.*s\" (a number, not NaN)", ty,
                         cl(p->fam_len), p->fam, cl(le->value_len), le->value);
    if (isinf(*b) &&
        !(le->value_len == 4 && (memcmp(le->value, "+Inf", 4) == 0 || memcmp(le->value, "-Inf", 4) == 0)))
        return expo_fail(p, err,
                         "%s \"%.*s\" bucket has \"le\" value \"%.*s\" (infinity MUST be written \"+Inf\")",
                         ty, cl(p->fam_len), p->fam, cl(le->value_len), le->value);
    return 0;
}

/* The checks of one sample's labels and value for its family's type. */
KILN_MUST_CHECK static int check_sample(expo_parser *p, int sfx, double *le, kiln_err *err) {
    const char *ty = type_names[p->fam_type];
    int fl = cl(p->fam_len);
    int ml = cl(p->metric_len);
    double v = p->value;
    int rc;
    switch (p->fam_type) {
    case EXPO_COUNTER:
        if (sfx == SFX_TOTAL && (isnan(v) || v < 0))
            return expo_fail(p, err, "counter \"%.*s\" total must not be NaN or negative", fl, p->fam);
        break;
    case EXPO_HISTOGRAM:
    case EXPO_GAUGEHISTOGRAM:
        if (sfx == SFX_BUCKET) {
            if ((rc = bucket_le(p, le, err)) < 0)
                return rc;
        } else if (expo_find_label(&p->ls, "le", 2) != NULL) {
            return expo_fail(p, err, "%s \"%.*s\" sample \"%.*s\" must not have an \"le\" label", ty, fl,
                             p->fam, ml, p->metric);
        }
        if ((sfx == SFX_BUCKET || sfx == SFX_COUNT || sfx == SFX_GCOUNT) && (isnan(v) || v < 0))
            return expo_fail(p, err, "%s \"%.*s\" sample \"%.*s\" must not be NaN or negative", ty, fl,
                             p->fam, ml, p->metric);
        if ((sfx == SFX_BUCKET || sfx == SFX_COUNT || sfx == SFX_GCOUNT) && !is_int(v))
            return expo_fail(
                p, err, "%s \"%.*s\" sample \"%.*s\" is %.17g (bucket and count values MUST be integers)", ty,
                fl, p->fam, ml, p->metric, v);
        if (sfx == SFX_GSUM && isnan(v))
            return expo_fail(p, err, "%s \"%.*s\" sample \"%.*s\" must not be NaN", ty, fl, p->fam, ml,
                             p->metric);
        if (sfx == SFX_SUM && (isnan(v) || v < 0))
            return expo_fail(p, err,
                             "%s \"%.*s\" sample \"%.*s\" must not be NaN or negative (a sum is a counter)",
                             ty, fl, p->fam, ml, p->metric);
        break;
    case EXPO_SUMMARY: {
        const expo_label *q = expo_find_label(&p->ls, "quantile", 8);
        if (sfx == SFX_NONE) {
            if (q == NULL)
                return expo_fail(p, err, "summary \"%.*s\" quantile without a \"quantile\" label", fl,
                                 p->fam);
            double b = 0;
            rc = expo_parse_float(p, q->value, q->value_len, &b);
            if (rc == NUM_NOMEM)
                return expo_fail_nomem(p, err);
            if (rc < 0 || !(b >= 0 && b <= 1))
                return expo_fail(
                    p, err,
                    "summary \"%.*s\" has an invalid \"quantile\" value \"%.*s\" (quantiles MUST be "
                    "between 0 and 1)",
                    fl, p->fam, cl(q->value_len), q->value);
            if (v < 0)
                return expo_fail(p, err, "summary \"%.*s\" quantile value %.17g is negative (it MUST NOT be)",
                                 fl, p->fam, v);
        } else if (q != NULL) {
            return expo_fail(p, err, "summary \"%.*s\" sample \"%.*s\" must not have a \"quantile\" label",
                             fl, p->fam, ml, p->metric);
        }
        if (sfx == SFX_COUNT && (isnan(v) || v < 0 || !is_int(v)))
            return expo_fail(p, err,
                             "summary \"%.*s\" count must not be NaN or negative and MUST be an integer", fl,
                             p->fam);
        if (sfx == SFX_SUM && (isnan(v) || v < 0))
            return expo_fail(p, err, "summary \"%.*s\" sum must not be NaN or negative (a sum is a counter)",
                             fl, p->fam);
        break;
    }
    case EXPO_STATESET:
        if (expo_find_label(&p->ls, p->fam, p->fam_len) == NULL)
            return expo_fail(p, err, "stateset \"%.*s\" sample without a \"%.*s\" label", fl, p->fam, fl,
                             p->fam);
        if (v != 0 && v != 1)
            return expo_fail(p, err, "stateset \"%.*s\" value must be 0 or 1", fl, p->fam);
        break;
    case EXPO_INFO:
        if (v != 1)
            return expo_fail(p, err, "info \"%.*s\" value must be 1", fl, p->fam);
        break;
    default:
        break;
    }
    if (p->has_ex) {
        int bucket =
            (p->fam_type == EXPO_HISTOGRAM || p->fam_type == EXPO_GAUGEHISTOGRAM) && sfx == SFX_BUCKET;
        if (!bucket && !(p->fam_type == EXPO_COUNTER && sfx == SFX_TOTAL))
            return expo_fail(
                p, err,
                "an exemplar on %s sample \"%.*s\" (exemplars are allowed only on counter _total and "
                "histogram _bucket samples)",
                ty, ml, p->metric);
        if (bucket && !(p->ex_value <= *le))
            return expo_fail(
                p, err, "exemplar value %.17g is above its bucket's le %.17g (it MUST be within the bucket)",
                p->ex_value, *le);
    }
    return 0;
}

/* The hash of the metric a sample with labels ls and suffix sfx belongs to
 * (its labels without "le", "quantile" or the state label); *all: of all
 * its labels. */
static uint64_t group_hash(const expo_parser *p, const expo_lvec *ls, int sfx, uint64_t *all) {
    const char *skip = NULL;
    size_t skipn = 0;
    if ((p->fam_type == EXPO_HISTOGRAM || p->fam_type == EXPO_GAUGEHISTOGRAM) && sfx == SFX_BUCKET)
        skip = "le", skipn = 2;
    else if (p->fam_type == EXPO_SUMMARY && sfx == SFX_NONE)
        skip = "quantile", skipn = 8;
    else if (p->fam_type == EXPO_STATESET)
        skip = p->fam, skipn = p->fam_len;
    uint64_t a = 0, group = 0;
    for (size_t i = 0; i < ls->n; i++) {
        uint64_t h = label_hash(&ls->v[i]);
        a += h;
        if (!(skip && ls->v[i].name_len == skipn && memcmp(ls->v[i].name, skip, skipn) == 0))
            group += h;
    }
    *all = a;
    return group;
}

/* Where the sample stands in its metric and metric point (see the top). */
KILN_MUST_CHECK static int track_point(expo_parser *p, int sfx, double le, kiln_err *err) {
    uint64_t all = 0, group = group_hash(p, &p->ls, sfx, &all);
    int has_ts = p->has_ts != 0;
    double ts = p->ts_secs;
    const char *ls;
    int lsn;
    int rc;
    if (p->have_point && group == p->point_group) {
        if (has_ts != p->point_has_ts) {
            series_labels(p, &ls, &lsn);
            return expo_fail(p, err,
                             "a timestamp on some samples of metric %.*s%.*s and not others (timestamps MUST "
                             "NOT come and go within a metric)",
                             cl(p->fam_len), p->fam, lsn, ls);
        }
        if (has_ts && ts < p->point_ts) {
            series_labels(p, &ls, &lsn);
            return expo_fail(
                p, err,
                "timestamp %.17g of metric %.*s%.*s is before the previous one %.17g (a metric's "
                "points MUST have increasing timestamps)",
                ts, cl(p->fam_len), p->fam, lsn, ls, p->point_ts);
        }
        if (has_ts && ts > p->point_ts) {
            if ((rc = finish_point(p, err)) < 0)
                return rc;
            goto start;
        }
    } else {
        if (hset_has(&p->groups, group)) {
            series_labels(p, &ls, &lsn);
            return expo_fail(p, err,
                             "metric %.*s%.*s appears again after another metric of its family (metrics and "
                             "metric points MUST NOT be interleaved)",
                             cl(p->fam_len), p->fam, lsn, ls);
        }
        if ((rc = finish_point(p, err)) < 0)
            return rc;
        if (hset_add(&p->groups, group) < 0)
            return expo_fail_nomem(p, err);
        goto start;
    }
    goto add;
start:
    p->have_point = 1;
    p->point_group = group;
    p->point_has_ts = has_ts;
    p->point_ts = ts;
    hset_clear(&p->pseries);
    memset(&p->hp, 0, sizeof p->hp);
    p->hp.first_line = p->line;
    p->point_ct_has = 0;
    p->ct_checked = 0;
add:
    if ((rc = hset_add(&p->pseries, all + mix((uint64_t)sfx + 1))) <= 0) {
        if (rc < 0)
            return expo_fail_nomem(p, err);
        series_labels(p, &ls, &lsn);
        return expo_fail(p, err, "sample %.*s%.*s appears twice in one metric point%s", cl(p->metric_len),
                         p->metric, lsn, ls,
                         has_ts ? " (same timestamp)" : " (without timestamps a metric has one point)");
    }
    if (p->fam_type != EXPO_HISTOGRAM && p->fam_type != EXPO_GAUGEHISTOGRAM)
        return 0;
    expo_hpoint *h = &p->hp;
    double v = p->value;
    const char *ty = type_names[p->fam_type];
    switch (sfx) {
    case SFX_BUCKET:
        if (h->nbuckets && !(le > h->last_le))
            return expo_fail(
                p, err,
                "%s \"%.*s\": bucket le %.17g after le %.17g (buckets MUST be sorted by increasing le, "
                "thresholds unique)",
                ty, cl(p->fam_len), p->fam, le, h->last_le);
        if (h->nbuckets && v < h->last_value)
            return expo_fail(
                p, err,
                "%s \"%.*s\": bucket le %.17g holds %.17g, less than the previous bucket's %.17g "
                "(buckets MUST be cumulative)",
                ty, cl(p->fam_len), p->fam, le, v, h->last_value);
        h->nbuckets++;
        h->last_le = le;
        h->last_value = v;
        h->bucket_line = p->line;
        if (le < 0)
            h->neg_bucket = 1;
        if (isinf(le) && le > 0) {
            h->has_inf = 1;
            h->inf_value = v;
        }
        break;
    case SFX_COUNT:
    case SFX_GCOUNT:
        h->has_count = 1;
        h->count = v;
        h->count_line = p->line;
        break;
    case SFX_SUM:
    case SFX_GSUM:
        h->has_sum = 1;
        h->neg_sum = v < 0;
        h->sum_line = p->line;
        break;
    default:
        break;
    }
    return 0;
}

KILN_MUST_CHECK static int om_sample(expo_parser *p, const char *s, size_t n, kiln_err *err) {
    size_t j = 0;
    while (j < n && expo_is_mname_char((unsigned char)s[j]))
        j++;
    p->metric = s;
    p->metric_len = j;
    if (j < n && s[j] == '{') {
        j++;
        int rc = expo_parse_labels(p, s, n, &j, &p->ls, NULL, err);
        if (rc < 0)
            return rc;
    }
    p->series = s;
    p->series_len = j;
    if (j >= n || s[j] != ' ')
        return expo_fail_got(p, err, "expected a space and the value after the metric", s + j, s + n);
    j++;
    int rc = om_number(p, s, n, &j, "value", &p->value, err);
    if (rc < 0)
        return rc;
    p->has_ts = 0;
    if (j < n) {
        j++; /* the space */
        if (n - j >= 3 && memcmp(s + j, "# {", 3) == 0)
            return om_exemplar(p, s, n, j + 2, err);
        if ((rc = om_timestamp(p, s, n, &j, "timestamp", &p->ts_secs, &p->ts, &p->has_ts, err)) < 0)
            return rc;
        if (j < n) {
            if (n - j >= 4 && memcmp(s + j, " # {", 4) == 0)
                return om_exemplar(p, s, n, j + 3, err);
            return expo_fail_got(p, err, "expected end of line or an exemplar after the timestamp",
                                 s + j + (j + 1 < n), s + n);
        }
    }
    return 0;
}

int expo_om_line(expo_parser *p, const char *s, size_t n, int last, expo_entry *kind, kiln_err *err) {
    int rc;
    if (n == 5 && memcmp(s, "# EOF", 5) == 0) {
        if (p->pos < p->len)
            return expo_fail(p, err, "unexpected data after # EOF");
        if ((rc = end_family(p, err)) < 0)
            return rc;
        p->state = 1;
        return 0;
    }
    if (p->line == 1 && n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
        return expo_fail(p, err, "a byte order mark (BOMs MUST NOT be used)");
    if (n > 0 && s[n - 1] == '\r')
        return expo_fail(p, err, "line ends in a carriage return (line endings MUST be a line feed alone)");
    if (last)
        return expo_fail(p, err, "data does not end with # EOF");
    if (n == 0)
        return expo_fail(p, err, "blank line (not allowed in OpenMetrics)");
    if (s[0] == '#') {
        if (n >= 7 && s[1] == ' ' && s[6] == ' ') {
            if (memcmp(s + 2, "HELP", 4) == 0)
                return om_meta(p, s, n, 7, META_HELP, kind, err);
            if (memcmp(s + 2, "TYPE", 4) == 0)
                return om_meta(p, s, n, 7, META_TYPE, kind, err);
            if (memcmp(s + 2, "UNIT", 4) == 0)
                return om_meta(p, s, n, 7, META_UNIT, kind, err);
        }
        return expo_fail_line(p, err, "expected \"# HELP\", \"# TYPE\", \"# UNIT\" or \"# EOF\"", s, s + n);
    }
    if (!expo_is_mname_start((unsigned char)s[0]))
        return expo_fail_got(p, err, "expected metric name or \"#\"", s, s + n);

    if ((rc = om_sample(p, s, n, err)) < 0)
        return rc;
    int sfx = family_suffix(p, p->metric, p->metric_len);
    if (sfx < 0) {
        if (p->fam != NULL && p->fam_len == p->metric_len && memcmp(p->fam, p->metric, p->fam_len) == 0)
            return expo_fail(p, err, "%s \"%.*s\" cannot have a sample named \"%.*s\"",
                             type_names[p->fam_type], cl(p->fam_len), p->fam, cl(p->metric_len), p->metric);
        if ((rc = begin_family(p, p->metric, p->metric_len, err)) < 0)
            return rc;
        sfx = SFX_NONE;
    }
    p->fam_samples = 1;
    if ((rc = fix_family(p, p->line, err)) < 0)
        return rc;
    double le = 0;
    if ((rc = check_sample(p, sfx, &le, err)) < 0)
        return rc;
    if ((rc = track_point(p, sfx, le, err)) < 0)
        return rc;
    p->sample_sfx = sfx;
    int64_t ct = 0;
    if (sfx == SFX_CREATED && secs_to_ms(p->value, &ct)) {
        p->point_ct_has = 1;
        p->point_ct = ct;
    }
    *kind = EXPO_SAMPLE;
    return 1;
}

/* ---- created timestamps ---------------------------------------------------- */

int expo_is_created(const expo_parser *p) {
    return p->fmt == EXPO_OPENMETRICS && p->sample_sfx == SFX_CREATED;
}

/* The created timestamp of the current sample's point: its _created seen
 * already, or found by looking ahead at the lines of the same metric (as
 * Prometheus' CreatedTimestamp peeks), once per point. */
int expo_created(expo_parser *p, int64_t *ms) {
    if (p->fmt != EXPO_OPENMETRICS || p->sample_sfx == SFX_CREATED || !p->have_point ||
        !(type_sfx[p->fam_type] & (1u << SFX_CREATED)))
        return 0;
    if (p->point_ct_has) {
        *ms = p->point_ct;
        return 1;
    }
    if (!p->ct_checked) {
        p->ct_checked = 1;
        p->ct_has = 0;
        if (p->ahead == NULL && (p->ahead = expo_parser_new(EXPO_OPENMETRICS, NULL, 0)) == NULL)
            return 0;
        expo_parser *a = p->ahead;
        a->fam = p->fam;
        a->fam_len = p->fam_len;
        a->fam_type = p->fam_type;
        for (size_t pos = p->pos; pos < p->len;) {
            const char *s = p->body + pos;
            const char *nl = memchr(s, '\n', p->len - pos);
            if (nl == NULL)
                break;
            size_t n = (size_t)(nl - s), j = 0;
            pos += n + 1;
            while (j < n && expo_is_mname_char((unsigned char)s[j]))
                j++;
            int sfx = family_suffix(p, s, j);
            if (sfx < 0)
                break; /* metadata, # EOF, another family */
            kiln_err e = {0};
            a->ls.n = 0;
            a->scratch_off = 0;
            a->state = 0;
            if (j < n && s[j] == '{' && (++j, expo_parse_labels(a, s, n, &j, &a->ls, NULL, &e)) < 0)
                break;
            uint64_t all;
            if (group_hash(a, &a->ls, sfx, &all) != p->point_group)
                break; /* the metric's point ended */
            if (sfx != SFX_CREATED)
                continue;
            size_t v = ++j;
            while (j < n && s[j] != ' ')
                j++;
            double secs = 0;
            p->ct_has =
                j > v && expo_parse_float(a, s + v, j - v, &secs) == NUM_OK && secs_to_ms(secs, &p->ct_ms);
            break;
        }
    }
    if (p->ct_has)
        *ms = p->ct_ms;
    return p->ct_has;
}
