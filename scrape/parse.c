/*
 * parse.c - pull tokenizers for the Prometheus text format 0.0.4 and
 * OpenMetrics 1.0 (see parse.h for the interface).
 *
 * Both formats are line oriented, so expo_next finds the end of the next
 * line with memchr and then works on [line, eol) with plain indexes; nothing
 * is copied except label values and HELP text holding an escape, which are
 * unescaped into `scratch`.  Unescaping never makes a string longer, so
 * reserving the line length in `scratch` before a line is parsed means the
 * buffer never moves while a line's labels point into it.  Numbers are
 * copied (NUL-terminated) into a small stack buffer, or `num` when long, for
 * strtod.
 *
 * What each format accepts follows Prometheus 2.42 where the specs leave
 * room:
 *
 *   text         blank lines and whitespace around tokens (outside label
 *                values); commas between labels optional, a trailing one
 *                allowed; a last line without "\n"; timestamps are integer
 *                milliseconds (digits only); # TYPE is one of counter,
 *                gauge, histogram, summary, untyped (any case); any other #
 *                line is a comment.
 *   OpenMetrics  exactly one space between tokens, no blank lines, no
 *                comments, every line ends in "\n" except `# EOF`, which must
 *                be last; timestamps are float seconds, truncated to ms
 *                like Prometheus (int64(ts * 1000)); exemplars (" # {...} v
 *                [ts]") are checked and skipped.
 *
 * OpenMetrics metric families are tracked to enforce the spec's MUSTs: the
 * sample-name suffixes of each type (counter _total/_created; histogram
 * _bucket/_count/_sum/_created; gaugehistogram _bucket/_gcount/_gsum;
 * summary bare/_count/_sum/_created; info _info; stateset and gauge and
 * unknown bare), the labels they need (le, quantile, the stateset's own
 * name) or must not have, the values that cannot be NaN or negative, one of
 * each metadata line before the samples, and no interleaved families (a set
 * of the family names seen, pointing into the body).  A sample that does not
 * fit the current family starts a new family of type unknown.
 *
 * Values follow Go's strconv.ParseFloat as Prometheus calls it: decimal
 * with optional sign, fraction and exponent; "Inf"/"Infinity" with optional
 * sign and "NaN", any case; no hex, no underscores; overflow is an error,
 * underflow is not.  A parsed NaN becomes Prometheus' canonical
 * 0x7ff8000000000001 so that it can never be the stale marker.
 *
 * Threading: a parser belongs to one thread.
 */
#include "scrape/parse.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EXPO_EXEMPLAR_MAX_RUNES 128

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

/* The # TYPE names of each format, indexed by expo_type (NULL: none). */
static const char *const text_type_names[EXPO_STATESET + 1] = {
    [EXPO_UNTYPED] = "untyped",     [EXPO_COUNTER] = "counter", [EXPO_GAUGE] = "gauge",
    [EXPO_HISTOGRAM] = "histogram", [EXPO_SUMMARY] = "summary",
};
static const char *const om_type_names[EXPO_STATESET + 1] = {
    [EXPO_UNTYPED] = "unknown",
    [EXPO_COUNTER] = "counter",
    [EXPO_GAUGE] = "gauge",
    [EXPO_HISTOGRAM] = "histogram",
    [EXPO_GAUGEHISTOGRAM] = "gaugehistogram",
    [EXPO_SUMMARY] = "summary",
    [EXPO_INFO] = "info",
    [EXPO_STATESET] = "stateset",
};

enum { META_TYPE = 1, META_HELP = 2, META_UNIT = 4 };

/* A family name seen in this body (OpenMetrics), in an open-addressing set. */
typedef struct fam_slot {
    const char *name; /* NULL: empty slot */
    size_t len;
} fam_slot;

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
    int has_ts;
    int64_t ts;
    expo_label *labels;
    size_t nlabels, labels_cap;

    char *scratch; /* unescaped label values and HELP text of the line */
    size_t scratch_cap;
    char *num; /* NUL-terminated copy of a long number */
    size_t num_cap;

    /* OpenMetrics: the current family and every family name seen */
    const char *fam;
    size_t fam_len;
    expo_type fam_type;
    unsigned fam_meta;
    int fam_samples;
    int fam_unit; /* a non-empty UNIT line was seen */
    fam_slot *fams;
    size_t fams_cap, fams_n;
};

/* ---- characters ------------------------------------------------------- */

static int is_alpha(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}
static int is_mname_start(unsigned char c) {
    return is_alpha(c) || c == '_' || c == ':';
}
static int is_mname_char(unsigned char c) {
    return is_mname_start(c) || is_digit(c);
}
static int is_lname_start(unsigned char c) {
    return is_alpha(c) || c == '_';
}
static int is_lname_char(unsigned char c) {
    return is_lname_start(c) || is_digit(c);
}
static int is_blank(unsigned char c) {
    return c == ' ' || c == '\t';
}
/* The first index at or after j that is not a blank (n at the end). */
static size_t skip_blanks(const char *s, size_t n, size_t j) {
    while (j < n && is_blank((unsigned char)s[j]))
        j++;
    return j;
}

/* ---- errors ----------------------------------------------------------- */

/* Writes what was found at s (up to end) to out as `"token"`, or `end of
 * line`: the run up to the next byte of delims (NUL counts as one), at least
 * one byte and at most 32, quoted. */
static void describe(const char *s, const char *end, const char *delims, char *out, size_t cap) {
    if (s >= end) {
        snprintf(out, cap, "end of line");
        return;
    }
    size_t n = 0;
    while (s + n < end && n < 32 && (s[n] == 0 || !strchr(delims, s[n])))
        n++;
    if (n == 0)
        n = 1;
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n && o + 6 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            out[o++] = (char)c;
        } else {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        }
    }
    if (s + n < end && n == 32 && o + 4 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = 0;
}

/* Fails the parser: `line N: <msg>`. */
KILN_MUST_CHECK static int fail(expo_parser *p, kiln_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(expo_parser *p, kiln_err *err, const char *fmt, ...) {
    char msg[KILN_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->state = -1;
    kiln_err_set(&p->fail, KILN_EINVAL, "line %zu: %s", p->line, msg);
    return kiln_err_set(err, KILN_EINVAL, "%s", p->fail.msg);
}

/* Fails with `line N: <what>, got "<token at s>"`. */
KILN_MUST_CHECK static int fail_got(expo_parser *p, kiln_err *err, const char *what, const char *s,
                                    const char *end) {
    char got[160];
    describe(s, end, " \t{}=,\"#", got, sizeof got);
    return fail(p, err, "%s, got %s", what, got);
}

/* Like fail_got, quoting the start of the line instead of a token. */
KILN_MUST_CHECK static int fail_line(expo_parser *p, kiln_err *err, const char *what, const char *s,
                                     const char *end) {
    char got[160];
    describe(s, end, "", got, sizeof got);
    return fail(p, err, "%s, got %s", what, got);
}

KILN_MUST_CHECK static int fail_nomem(expo_parser *p, kiln_err *err) {
    p->state = -1;
    kiln_err_set(&p->fail, KILN_ENOMEM, "line %zu: out of memory", p->line);
    return kiln_err_set(err, KILN_ENOMEM, "%s", p->fail.msg);
}

/* ---- numbers ---------------------------------------------------------- */

enum { NUM_OK = 0, NUM_SYNTAX = -1, NUM_RANGE = -2, NUM_NOMEM = -3 };

/* Go's strconv.ParseFloat(s, 64) restricted to what Prometheus accepts. */
KILN_MUST_CHECK static int parse_float(expo_parser *p, const char *s, size_t n, double *out) {
    if (n == 0)
        return NUM_SYNTAX;
    size_t i = 0;
    int neg = 0;
    if (s[0] == '+' || s[0] == '-') {
        neg = s[0] == '-';
        i = 1;
    }
    if ((n - i == 3 && strncasecmp(s + i, "inf", 3) == 0) ||
        (n - i == 8 && strncasecmp(s + i, "infinity", 8) == 0)) {
        *out = neg ? -INFINITY : INFINITY;
        return NUM_OK;
    }
    if (n == 3 && strncasecmp(s, "nan", 3) == 0) {
        uint64_t bits = 0x7ff8000000000001ULL;
        memcpy(out, &bits, sizeof *out);
        return NUM_OK;
    }
    size_t digits = 0;
    while (i < n && is_digit((unsigned char)s[i]))
        i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && is_digit((unsigned char)s[i]))
            i++, digits++;
    }
    if (digits == 0)
        return NUM_SYNTAX;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t ed = 0;
        while (i < n && is_digit((unsigned char)s[i]))
            i++, ed++;
        if (ed == 0)
            return NUM_SYNTAX;
    }
    if (i != n)
        return NUM_SYNTAX;

    char small[64];
    char *z = small;
    if (n >= sizeof small) {
        if (array_grow((void **)&p->num, &p->num_cap, n < 128 ? 128 : n + 1, 1) != 0)
            return NUM_NOMEM;
        z = p->num;
    }
    memcpy(z, s, n);
    z[n] = 0;
    char *e = NULL;
    errno = 0;
    double v = strtod(z, &e);
    if (e != z + n)
        return NUM_SYNTAX;
    if (isinf(v))
        return NUM_RANGE; /* the grammar above has no Inf: it overflowed */
    *out = v;
    return NUM_OK;
}

/* ---- shared pieces ---------------------------------------------------- */

/* Room in scratch for a line of n bytes (at least 256, so that most bodies
 * grow it once); the test stays here, on the sample path, the call only
 * when it grows. */
KILN_MUST_CHECK static int reserve_line(expo_parser *p, size_t n) {
    if (n + 1 <= p->scratch_cap)
        return 0;
    return array_grow((void **)&p->scratch, &p->scratch_cap, n < 256 ? 256 : n + 1, 1);
}

KILN_MUST_CHECK static int push_label(expo_parser *p, const char *name, size_t nlen, const char *value,
                                      size_t vlen) {
    if (p->nlabels == p->labels_cap &&
        array_grow((void **)&p->labels, &p->labels_cap, p->nlabels + 1, sizeof *p->labels) != 0)
        return KILN_ENOMEM;
    p->labels[p->nlabels++] = (expo_label){name, nlen, value, vlen};
    return 0;
}

/*
 * Unescapes s[0..n) into *o (scratch, advanced): \\ -> \, \n -> newline,
 * and \" -> " when quote is set; any other backslash stays as written, as
 * Prometheus' replacers leave it.  Returns the start of the copy.
 */
static char *unescape(const char *s, size_t n, int quote, char **o) {
    char *start = *o, *w = *o;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n &&
            (s[i + 1] == '\\' || s[i + 1] == 'n' || (quote && s[i + 1] == '"'))) {
            w[0] = s[i + 1] == 'n' ? '\n' : s[i + 1];
            w++;
            i++;
        } else {
            *w++ = s[i];
        }
    }
    *o = w;
    return start;
}

/*
 * Scans a quoted label value starting after its opening quote at s[*i]:
 * sets *v, *vn to the raw text and *i past the closing quote, *esc to the
 * number of \\, \" and \n escapes (each one character).  0, or -1 when the
 * line ends first (the caller reports it).
 */
KILN_MUST_CHECK static int scan_quoted(const char *s, size_t n, size_t *i, size_t *vn, size_t *esc) {
    size_t j = *i, e = 0;
    while (j < n && s[j] != '"') {
        if (s[j] == '\\') {
            if (j + 1 >= n)
                return -1;
            if (s[j + 1] == '\\' || s[j + 1] == '"' || s[j + 1] == 'n')
                e++;
            j += 2;
            continue;
        }
        j++;
    }
    if (j >= n)
        return -1;
    *vn = j - *i;
    *esc = e;
    *i = j + 1;
    return 0;
}

/* Code points of valid UTF-8. */
static size_t runes(const char *s, size_t n) {
    size_t r = 0;
    for (size_t i = 0; i < n; i++)
        r += ((unsigned char)s[i] & 0xc0) != 0x80;
    return r;
}

/*
 * Parses a label set, s[*i] being just after "{", up to and including "}".
 * Text: whitespace around tokens, commas optional.  OpenMetrics: no
 * whitespace, commas between labels, a trailing one allowed.  store: append
 * to p->labels (values with an escape unescaped into scratch, reserved here
 * for the whole line s[0..n)); otherwise only check, adding the code points
 * of names and values to *nrunes (exemplars).
 */
KILN_MUST_CHECK static int parse_labels(expo_parser *p, const char *s, size_t n, size_t *i, int store,
                                        size_t *nrunes, kiln_err *err) {
    int text = p->fmt == EXPO_TEXT;
    size_t j = *i;
    char *o = NULL;
    if (store) {
        if (reserve_line(p, n) < 0)
            return fail_nomem(p, err);
        o = p->scratch;
    }
    int first = 1;
    for (;;) {
        if (text)
            j = skip_blanks(s, n, j);
        if (j < n && s[j] == '}') {
            j++;
            break;
        }
        if (!text && !first) {
            if (j >= n || s[j] != ',')
                return fail_got(p, err, "expected \",\" or \"}\" after label value", s + j, s + n);
            j++;
            if (j < n && s[j] == '}') {
                j++;
                break;
            }
        }
        if (j >= n || !is_lname_start((unsigned char)s[j]))
            return fail_got(p, err, "expected label name", s + j, s + n);
        size_t ln = j;
        while (j < n && is_lname_char((unsigned char)s[j]))
            j++;
        size_t lnn = j - ln;
        if (text)
            j = skip_blanks(s, n, j);
        if (j >= n || s[j] != '=')
            return fail_got(p, err, "expected \"=\" after label name", s + j, s + n);
        j++;
        if (text)
            j = skip_blanks(s, n, j);
        if (j >= n || s[j] != '"')
            return fail_got(p, err, "expected label value", s + j, s + n);
        j++;
        size_t vs = j, vn = 0, esc = 0;
        if (scan_quoted(s, n, &j, &vn, &esc) < 0)
            return fail(p, err, "label value of \"%.*s\" not closed before the end of the line", (int)lnn,
                        s + ln);
        if (!utf8_valid(s + vs, vn))
            return fail(p, err, "invalid UTF-8 in the value of label \"%.*s\"", (int)lnn, s + ln);
        if (store) {
            const char *v = s + vs;
            size_t len = vn;
            if (memchr(s + vs, '\\', vn) != NULL) {
                char *w = o;
                v = unescape(s + vs, vn, 1, &o);
                len = (size_t)(o - w);
            }
            if (push_label(p, s + ln, lnn, v, len) < 0)
                return fail_nomem(p, err);
        } else {
            *nrunes += lnn + runes(s + vs, vn) - esc;
        }
        first = 0;
        if (text) {
            j = skip_blanks(s, n, j);
            if (j < n && s[j] == ',')
                j++;
        }
    }
    *i = j;
    return 0;
}

/* Fails for parse_float's rc < 0 on the number s[0..n), read as what: `invalid
 * number while parsing value "x"`. */
KILN_MUST_CHECK static int fail_number(expo_parser *p, kiln_err *err, int rc, const char *what, const char *s,
                                       size_t n) {
    if (rc == NUM_NOMEM)
        return fail_nomem(p, err);
    return fail(p, err, "%s while parsing %s \"%.*s\"",
                rc == NUM_RANGE ? "value out of range" : "invalid number", what, (int)(n > 64 ? 64 : n), s);
}

/* The metric name of a # HELP/TYPE/UNIT line (what) at s[*j]: sets
 * p->metric and moves *j past it.  0, or fails. */
KILN_MUST_CHECK static int meta_name(expo_parser *p, const char *s, size_t n, size_t *j, const char *what,
                                     kiln_err *err) {
    size_t m = *j;
    if (m >= n || !is_mname_start((unsigned char)s[m])) {
        char msg[64];
        snprintf(msg, sizeof msg, "expected metric name after %s", what);
        return fail_got(p, err, msg, s + m, s + n);
    }
    while (*j < n && is_mname_char((unsigned char)s[*j]))
        (*j)++;
    p->metric = s + m;
    p->metric_len = *j - m;
    return 0;
}

/* A TYPE line's type t[0..tn): one of names (indexed by expo_type), compared
 * exactly or, with nocase, ignoring ASCII case; the entry is EXPO_TYPE. */
KILN_MUST_CHECK static int type_text(expo_parser *p, const char *const *names, int nocase, const char *t,
                                     size_t tn, expo_entry *kind, kiln_err *err) {
    for (int k = 0; k <= EXPO_STATESET; k++) {
        if (names[k] && strlen(names[k]) == tn &&
            (nocase ? strncasecmp(names[k], t, tn) : memcmp(names[k], t, tn)) == 0) {
            p->type = (expo_type)k;
            p->text = t;
            p->text_len = tn;
            *kind = EXPO_TYPE;
            return 1;
        }
    }
    return fail(p, err, "invalid metric type \"%.*s\"", (int)(tn > 64 ? 64 : tn), t);
}

/* A HELP line's text t[0..tn), checked to be UTF-8 and unescaped (\\ and \n;
 * \" too when quote, as OpenMetrics has it): the entry is EXPO_HELP. */
KILN_MUST_CHECK static int help_text(expo_parser *p, const char *t, size_t tn, int quote, expo_entry *kind,
                                     kiln_err *err) {
    if (!utf8_valid(t, tn))
        return fail(p, err, "help text is not valid UTF-8");
    if (memchr(t, '\\', tn) != NULL) {
        if (reserve_line(p, tn) < 0)
            return fail_nomem(p, err);
        char *o = p->scratch;
        t = unescape(t, tn, quote, &o);
        tn = (size_t)(o - p->scratch);
    }
    p->text = t;
    p->text_len = tn;
    *kind = EXPO_HELP;
    return 1;
}

/* ---- the text format -------------------------------------------------- */

KILN_MUST_CHECK static int text_meta(expo_parser *p, const char *s, size_t n, size_t j, int help,
                                     expo_entry *kind, kiln_err *err) {
    j = skip_blanks(s, n, j);
    int rc = meta_name(p, s, n, &j, help ? "HELP" : "TYPE", err);
    if (rc < 0)
        return rc;
    if (j < n) {
        if (!is_blank((unsigned char)s[j]))
            return fail_got(p, err, "expected whitespace after metric name", s + j, s + n);
        j++;
    }
    const char *t = s + j;
    size_t tn = n - j;
    if (!help) {
        while (tn > 0 && is_blank((unsigned char)*t))
            t++, tn--;
        while (tn > 0 && is_blank((unsigned char)t[tn - 1]))
            tn--;
        return type_text(p, text_type_names, 1, t, tn, kind, err);
    }
    return help_text(p, t, tn, 0, kind, err);
}

KILN_MUST_CHECK static int text_sample(expo_parser *p, const char *s, size_t n, size_t j, expo_entry *kind,
                                       kiln_err *err) {
    size_t start = j;
    while (j < n && is_mname_char((unsigned char)s[j]))
        j++;
    p->metric = s + start;
    p->metric_len = j - start;
    size_t sep = j;
    j = skip_blanks(s, n, j);
    size_t series_end = sep;
    if (j < n && s[j] == '{') {
        j++;
        int rc = parse_labels(p, s, n, &j, 1, NULL, err);
        if (rc < 0)
            return rc;
        series_end = j;
        j = skip_blanks(s, n, j);
    } else if (j == n) {
        return fail(p, err, "expected value after metric, got end of line");
    } else if (j == sep) {
        return fail_got(p, err, "expected whitespace or \"{\" after metric name", s + j, s + n);
    }
    p->series = s + start;
    p->series_len = series_end - start;

    size_t v = j;
    while (j < n && s[j] != '{' && !is_blank((unsigned char)s[j]))
        j++;
    if (j == v)
        return fail_got(p, err, "expected value after metric", s + j, s + n);
    int rc = parse_float(p, s + v, j - v, &p->value);
    if (rc < 0)
        return fail_number(p, err, rc, "value", s + v, j - v);
    j = skip_blanks(s, n, j);
    p->has_ts = 0;
    if (j < n) {
        size_t t = j;
        int64_t ts = 0;
        while (j < n && is_digit((unsigned char)s[j])) {
            int d = s[j] - '0';
            if (ts > (INT64_MAX - d) / 10)
                return fail(p, err, "timestamp out of range");
            ts = ts * 10 + d;
            j++;
        }
        if (j == t)
            return fail_got(p, err, "expected timestamp or end of line", s + j, s + n);
        j = skip_blanks(s, n, j);
        if (j < n)
            return fail_got(p, err, "expected end of line after timestamp", s + j, s + n);
        p->has_ts = 1;
        p->ts = ts;
    }
    *kind = EXPO_SAMPLE;
    return 1;
}

KILN_MUST_CHECK static int text_line(expo_parser *p, const char *s, size_t n, expo_entry *kind,
                                     kiln_err *err) {
    size_t j = 0;
    j = skip_blanks(s, n, j);
    if (j == n)
        return 0; /* blank */
    if (s[j] == '#') {
        size_t k = j + 1;
        k = skip_blanks(s, n, k);
        /* "# HELP" needs whitespace after "#" and after the keyword; else a comment */
        if (k > j + 1 && n - k > 4 && is_blank((unsigned char)s[k + 4]) &&
            (memcmp(s + k, "HELP", 4) == 0 || memcmp(s + k, "TYPE", 4) == 0))
            return text_meta(p, s, n, k + 4, s[k] == 'H', kind, err);
        p->text = s + j;
        p->text_len = n - j;
        *kind = EXPO_COMMENT;
        return 1;
    }
    if (!is_mname_start((unsigned char)s[j]))
        return fail_got(p, err, "expected metric name or \"#\"", s + j, s + n);
    return text_sample(p, s, n, j, kind, err);
}

/* ---- OpenMetrics ------------------------------------------------------ */

static uint64_t name_hash(const char *s, size_t n) {
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* Adds a family name: 1 added, 0 already there, KILN_ENOMEM. */
KILN_MUST_CHECK static int fams_add(expo_parser *p, const char *s, size_t n) {
    if (2 * (p->fams_n + 1) > p->fams_cap) {
        size_t cap = p->fams_cap ? p->fams_cap * 2 : 64;
        fam_slot *t = calloc(cap, sizeof *t);
        if (t == NULL)
            return KILN_ENOMEM;
        for (size_t i = 0; i < p->fams_cap; i++) {
            if (p->fams[i].name == NULL)
                continue;
            size_t k = name_hash(p->fams[i].name, p->fams[i].len) & (cap - 1);
            while (t[k].name != NULL)
                k = (k + 1) & (cap - 1);
            t[k] = p->fams[i];
        }
        free(p->fams);
        p->fams = t;
        p->fams_cap = cap;
    }
    size_t k = name_hash(s, n) & (p->fams_cap - 1);
    while (p->fams[k].name != NULL) {
        if (p->fams[k].len == n && memcmp(p->fams[k].name, s, n) == 0)
            return 0;
        k = (k + 1) & (p->fams_cap - 1);
    }
    p->fams[k] = (fam_slot){s, n};
    p->fams_n++;
    return 1;
}

KILN_MUST_CHECK static int begin_family(expo_parser *p, const char *s, size_t n, kiln_err *err) {
    int rc = fams_add(p, s, n);
    if (rc < 0)
        return fail_nomem(p, err);
    if (rc == 0)
        return fail(p, err, "metric family \"%.*s\" appears again after another family", (int)n, s);
    p->fam = s;
    p->fam_len = n;
    p->fam_type = EXPO_UNTYPED;
    p->fam_meta = 0;
    p->fam_samples = 0;
    p->fam_unit = 0;
    return 0;
}

KILN_MUST_CHECK static int om_meta(expo_parser *p, const char *s, size_t n, size_t j, int which,
                                   expo_entry *kind, kiln_err *err) {
    const char *what = which == META_HELP ? "HELP" : which == META_TYPE ? "TYPE" : "UNIT";
    int rc = meta_name(p, s, n, &j, what, err);
    if (rc < 0)
        return rc;
    const char *name = p->metric;
    size_t nlen = p->metric_len;
    if (j >= n || s[j] != ' ')
        return fail_got(p, err, "expected a space after the metric name", s + j, s + n);
    j++;
    const char *t = s + j;
    size_t tn = n - j;

    if (p->fam != NULL && p->fam_len == nlen && memcmp(p->fam, name, nlen) == 0) {
        if (p->fam_samples)
            return fail(p, err, "%s line for \"%.*s\" after its samples", what, (int)nlen, name);
        if (p->fam_meta & (unsigned)which)
            return fail(p, err, "second %s line for \"%.*s\"", what, (int)nlen, name);
    } else if ((rc = begin_family(p, name, nlen, err)) < 0) {
        return rc;
    }
    p->fam_meta |= (unsigned)which;

    if (which == META_TYPE) {
        if ((rc = type_text(p, om_type_names, 0, t, tn, kind, err)) < 0)
            return rc;
        p->fam_type = p->type;
        if ((p->type == EXPO_INFO || p->type == EXPO_STATESET) && p->fam_unit)
            return fail(p, err, "%s \"%.*s\" cannot have a unit", om_type_names[p->type], (int)nlen, name);
        return 1;
    }
    if (which == META_UNIT) {
        for (size_t k = 0; k < tn; k++)
            if (!is_mname_char((unsigned char)t[k]))
                return fail_got(p, err, "invalid character in unit", t + k, t + tn);
        if (tn > 0) {
            if (nlen < tn + 1 || memcmp(name + nlen - tn, t, tn) != 0 || name[nlen - tn - 1] != '_')
                return fail(p, err, "unit \"%.*s\" is not a suffix of metric \"%.*s\"", (int)tn, t, (int)nlen,
                            name);
            if (p->fam_type == EXPO_INFO || p->fam_type == EXPO_STATESET)
                return fail(p, err, "%s \"%.*s\" cannot have a unit", om_type_names[p->fam_type], (int)nlen,
                            name);
            p->fam_unit = 1;
        }
        p->text = t;
        p->text_len = tn;
        *kind = EXPO_UNIT;
        return 1;
    }
    return help_text(p, t, tn, 1, kind, err);
}

/* A float token s[*j..] up to a space or the end of the line. */
KILN_MUST_CHECK static int om_number(expo_parser *p, const char *s, size_t n, size_t *j, const char *what,
                                     double *out, kiln_err *err) {
    size_t v = *j;
    while (*j < n && s[*j] != ' ')
        (*j)++;
    if (*j == v) {
        char msg[64];
        snprintf(msg, sizeof msg, "expected %s", what);
        return fail_got(p, err, msg, s + v, s + n);
    }
    int rc = parse_float(p, s + v, *j - v, out);
    return rc < 0 ? fail_number(p, err, rc, what, s + v, *j - v) : 0;
}

KILN_MUST_CHECK static int om_timestamp(expo_parser *p, const char *s, size_t n, size_t *j, const char *what,
                                        int64_t *ms, kiln_err *err) {
    double ts = 0;
    int rc = om_number(p, s, n, j, what, &ts, err);
    if (rc < 0)
        return rc;
    if (isnan(ts) || isinf(ts))
        return fail(p, err, "invalid %s", what);
    double x = ts * 1000;
    /* int64(ts * 1000) as Prometheus does: truncation; out of range is an error, not UB */
    if (!(x > -9223372036854775808.0 && x < 9223372036854775808.0))
        return fail(p, err, "%s out of range", what);
    *ms = (int64_t)x;
    return 0;
}

/* " # {labels} value [timestamp]" to the end of the line, s[j] at "{". */
KILN_MUST_CHECK static int om_exemplar(expo_parser *p, const char *s, size_t n, size_t j, kiln_err *err) {
    j++;
    size_t nr = 0;
    int rc = parse_labels(p, s, n, &j, 0, &nr, err);
    if (rc < 0)
        return rc;
    if (nr > EXPO_EXEMPLAR_MAX_RUNES)
        return fail(p, err, "exemplar labels have %zu characters, more than %d", nr, EXPO_EXEMPLAR_MAX_RUNES);
    if (j >= n || s[j] != ' ')
        return fail_got(p, err, "expected a space after the exemplar labels", s + j, s + n);
    j++;
    double v = 0;
    if ((rc = om_number(p, s, n, &j, "exemplar value", &v, err)) < 0)
        return rc;
    if (j < n) {
        j++; /* the space om_number stopped at */
        int64_t ms = 0;
        if ((rc = om_timestamp(p, s, n, &j, "exemplar timestamp", &ms, err)) < 0)
            return rc;
        if (j < n) /* show what follows the space, unless that is nothing */
            return fail_got(p, err, "expected end of line after the exemplar timestamp", s + j + (j + 1 < n),
                            s + n);
    }
    return 0;
}

static const expo_label *find_label(const expo_parser *p, const char *name, size_t n) {
    for (size_t i = 0; i < p->nlabels; i++)
        if (p->labels[i].name_len == n && memcmp(p->labels[i].name, name, n) == 0)
            return &p->labels[i];
    return NULL;
}

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

/* The checks a sample's labels and value must pass for its family type. */
KILN_MUST_CHECK static int om_check_sample(expo_parser *p, int sfx, kiln_err *err) {
    const char *ty = om_type_names[p->fam_type];
    int fl = (int)p->fam_len;
    double v = p->value;
    switch (p->fam_type) {
    case EXPO_COUNTER:
        if (sfx == SFX_TOTAL && (isnan(v) || v < 0))
            return fail(p, err, "counter \"%.*s\" total must not be NaN or negative", fl, p->fam);
        break;
    case EXPO_HISTOGRAM:
    case EXPO_GAUGEHISTOGRAM: {
        const expo_label *le = find_label(p, "le", 2);
        if (sfx == SFX_BUCKET) {
            if (le == NULL)
                return fail(p, err, "%s \"%.*s\" bucket without an \"le\" label", ty, fl, p->fam);
            double b = 0;
            int rc = parse_float(p, le->value, le->value_len, &b);
            if (rc == NUM_NOMEM)
                return fail_nomem(p, err);
            if (rc < 0 || isnan(b))
                return fail(p, err, "%s \"%.*s\" bucket has an invalid \"le\" value \"%.*s\"", ty, fl, p->fam,
                            (int)(le->value_len > 64 ? 64 : le->value_len), le->value);
        } else if (le != NULL) {
            return fail(p, err, "%s \"%.*s\" sample \"%.*s\" must not have an \"le\" label", ty, fl, p->fam,
                        (int)p->metric_len, p->metric);
        }
        if ((sfx == SFX_BUCKET || sfx == SFX_COUNT || sfx == SFX_GCOUNT) && (isnan(v) || v < 0))
            return fail(p, err, "%s \"%.*s\" sample \"%.*s\" must not be NaN or negative", ty, fl, p->fam,
                        (int)p->metric_len, p->metric);
        if ((sfx == SFX_SUM || sfx == SFX_GSUM) && isnan(v))
            return fail(p, err, "%s \"%.*s\" sample \"%.*s\" must not be NaN", ty, fl, p->fam,
                        (int)p->metric_len, p->metric);
        break;
    }
    case EXPO_SUMMARY: {
        const expo_label *q = find_label(p, "quantile", 8);
        if (sfx == SFX_NONE) {
            if (q == NULL)
                return fail(p, err, "summary \"%.*s\" quantile without a \"quantile\" label", fl, p->fam);
            double b = 0;
            int rc = parse_float(p, q->value, q->value_len, &b);
            if (rc == NUM_NOMEM)
                return fail_nomem(p, err);
            if (rc < 0 || !(b >= 0 && b <= 1))
                return fail(p, err, "summary \"%.*s\" has an invalid \"quantile\" value \"%.*s\"", fl, p->fam,
                            (int)(q->value_len > 64 ? 64 : q->value_len), q->value);
        } else if (q != NULL) {
            return fail(p, err, "summary \"%.*s\" sample \"%.*s\" must not have a \"quantile\" label", fl,
                        p->fam, (int)p->metric_len, p->metric);
        }
        if (sfx == SFX_COUNT && (isnan(v) || v < 0))
            return fail(p, err, "summary \"%.*s\" count must not be NaN or negative", fl, p->fam);
        break;
    }
    case EXPO_STATESET:
        if (find_label(p, p->fam, p->fam_len) == NULL)
            return fail(p, err, "stateset \"%.*s\" sample without a \"%.*s\" label", fl, p->fam, fl, p->fam);
        if (v != 0 && v != 1)
            return fail(p, err, "stateset \"%.*s\" value must be 0 or 1", fl, p->fam);
        break;
    case EXPO_INFO:
        if (v != 1)
            return fail(p, err, "info \"%.*s\" value must be 1", fl, p->fam);
        break;
    default:
        break;
    }
    return 0;
}

KILN_MUST_CHECK static int om_sample(expo_parser *p, const char *s, size_t n, kiln_err *err) {
    size_t j = 0;
    while (j < n && is_mname_char((unsigned char)s[j]))
        j++;
    p->metric = s;
    p->metric_len = j;
    if (j < n && s[j] == '{') {
        j++;
        int rc = parse_labels(p, s, n, &j, 1, NULL, err);
        if (rc < 0)
            return rc;
    }
    p->series = s;
    p->series_len = j;
    if (j >= n || s[j] != ' ')
        return fail_got(p, err, "expected a space and the value after the metric", s + j, s + n);
    j++;
    int rc = om_number(p, s, n, &j, "value", &p->value, err);
    if (rc < 0)
        return rc;
    p->has_ts = 0;
    if (j < n) {
        j++; /* the space */
        if (n - j >= 3 && memcmp(s + j, "# {", 3) == 0)
            return om_exemplar(p, s, n, j + 2, err);
        if ((rc = om_timestamp(p, s, n, &j, "timestamp", &p->ts, err)) < 0)
            return rc;
        p->has_ts = 1;
        if (j < n) {
            if (n - j >= 4 && memcmp(s + j, " # {", 4) == 0)
                return om_exemplar(p, s, n, j + 3, err);
            return fail_got(p, err, "expected end of line or an exemplar after the timestamp",
                            s + j + (j + 1 < n), s + n);
        }
    }
    return 0;
}

KILN_MUST_CHECK static int om_line(expo_parser *p, const char *s, size_t n, int last, expo_entry *kind,
                                   kiln_err *err) {
    if (n == 5 && memcmp(s, "# EOF", 5) == 0) {
        if (p->pos < p->len)
            return fail(p, err, "unexpected data after # EOF");
        p->state = 1;
        return 0;
    }
    if (last)
        return fail(p, err, "data does not end with # EOF");
    if (n == 0)
        return fail(p, err, "blank line (not allowed in OpenMetrics)");
    if (s[0] == '#') {
        if (n >= 7 && s[1] == ' ' && s[6] == ' ') {
            if (memcmp(s + 2, "HELP", 4) == 0)
                return om_meta(p, s, n, 7, META_HELP, kind, err);
            if (memcmp(s + 2, "TYPE", 4) == 0)
                return om_meta(p, s, n, 7, META_TYPE, kind, err);
            if (memcmp(s + 2, "UNIT", 4) == 0)
                return om_meta(p, s, n, 7, META_UNIT, kind, err);
        }
        return fail_line(p, err, "expected \"# HELP\", \"# TYPE\", \"# UNIT\" or \"# EOF\"", s, s + n);
    }
    if (!is_mname_start((unsigned char)s[0]))
        return fail_got(p, err, "expected metric name or \"#\"", s, s + n);

    int rc = om_sample(p, s, n, err);
    if (rc < 0)
        return rc;
    int sfx = family_suffix(p, p->metric, p->metric_len);
    if (sfx < 0) {
        if (p->fam != NULL && p->fam_len == p->metric_len && memcmp(p->fam, p->metric, p->fam_len) == 0)
            return fail(p, err, "%s \"%.*s\" cannot have a sample named \"%.*s\"", om_type_names[p->fam_type],
                        (int)p->fam_len, p->fam, (int)p->metric_len, p->metric);
        if ((rc = begin_family(p, p->metric, p->metric_len, err)) < 0)
            return rc;
        sfx = SFX_NONE;
    }
    p->fam_samples = 1;
    if ((rc = om_check_sample(p, sfx, err)) < 0)
        return rc;
    *kind = EXPO_SAMPLE;
    return 1;
}

/* ---- interface -------------------------------------------------------- */

expo_format expo_format_of(const char *ct) {
    if (ct == NULL)
        return EXPO_TEXT;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    static const char om[] = "application/openmetrics-text";
    size_t n = sizeof om - 1;
    if (strncasecmp(ct, om, n) == 0 && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t'))
        return EXPO_OPENMETRICS;
    return EXPO_TEXT;
}

expo_parser *expo_parser_new(expo_format f, const char *body, size_t len) {
    expo_parser *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->fmt = f;
    p->body = body;
    p->len = body == NULL ? 0 : len;
    return p;
}

void expo_parser_free(expo_parser *p) {
    if (p == NULL)
        return;
    free(p->labels);
    free(p->scratch);
    free(p->num);
    free(p->fams);
    free(p);
}

int expo_next(expo_parser *p, expo_entry *kind, kiln_err *err) {
    if (p->state < 0)
        return kiln_err_set(err, p->fail.code, "%s", p->fail.msg);
    if (p->state > 0)
        return 0;
    for (;;) {
        if (p->pos >= p->len) {
            if (p->fmt == EXPO_OPENMETRICS) {
                p->line++;
                return fail(p, err, "data does not end with # EOF");
            }
            p->state = 1;
            return 0;
        }
        const char *s = p->body + p->pos;
        const char *nl = memchr(s, '\n', p->len - p->pos);
        size_t n = nl != NULL ? (size_t)(nl - s) : p->len - p->pos;
        p->pos += n + (nl != NULL);
        p->line++;
        p->nlabels = 0;
        p->has_ts = 0;
        int rc = p->fmt == EXPO_OPENMETRICS ? om_line(p, s, n, nl == NULL, kind, err)
                                            : text_line(p, s, n, kind, err);
        if (rc != 0 || p->state != 0)
            return rc;
    }
}

size_t expo_line(const expo_parser *p) {
    return p->line;
}

const char *expo_metric(const expo_parser *p, size_t *len) {
    *len = p->metric_len;
    return p->metric;
}

const char *expo_series(const expo_parser *p, size_t *len) {
    *len = p->series_len;
    return p->series;
}

size_t expo_labels(const expo_parser *p, const expo_label **ls) {
    *ls = p->labels;
    return p->nlabels;
}

double expo_value(const expo_parser *p) {
    return p->value;
}

int expo_timestamp(const expo_parser *p, int64_t *ms) {
    if (p->has_ts)
        *ms = p->ts;
    return p->has_ts;
}

const char *expo_text(const expo_parser *p, size_t *len) {
    *len = p->text_len;
    return p->text;
}

expo_type expo_metric_type(const expo_parser *p) {
    return p->type;
}
