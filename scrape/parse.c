/*
 * parse.c - pull tokenizers for the Prometheus text format 0.0.4 and
 * OpenMetrics 1.0 (see parse.h for the interface): the interface, what both
 * formats share (errors, numbers, label sets, metadata lines) and the text
 * format.  The OpenMetrics lines and rules are in openmetrics.c; the
 * parser's state is in parse_int.h.
 *
 * Both formats are line oriented, so expo_next finds the end of the next
 * line with memchr and then works on [line, eol) with plain indexes; nothing
 * is copied except label values and HELP text holding an escape, which are
 * unescaped into `scratch`.  Unescaping never makes a string longer, so
 * reserving the line length in `scratch` before a line is parsed means the
 * buffer never moves while a line's labels point into it (the sample's and
 * its exemplar's labels share it, one after the other).  Numbers are copied
 * (NUL-terminated) into a small stack buffer, or `num` when long, for
 * strtod.
 *
 * What the text format accepts follows Prometheus 2.42 where the spec
 * leaves room: blank lines and whitespace around tokens (outside label
 * values); commas between labels optional, a trailing one allowed; a last
 * line without "\n"; timestamps are integer milliseconds (digits only);
 * # TYPE is one of counter, gauge, histogram, summary, untyped (any case);
 * any other # line is a comment.  OpenMetrics is strict: see openmetrics.c.
 *
 * Values follow Go's strconv.ParseFloat as Prometheus calls it: decimal
 * with optional sign, fraction and exponent; "Inf"/"Infinity" with optional
 * sign and "NaN", any case; no hex, no underscores; overflow is an error,
 * underflow is not.  A parsed NaN becomes Prometheus' canonical
 * 0x7ff8000000000001 so that it can never be the stale marker.
 *
 * Threading: a parser belongs to one thread.
 */
#include "scrape/parse_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The # TYPE names of the text format, indexed by expo_type (NULL: none). */
static const char *const text_type_names[EXPO_STATESET + 1] = {
    [EXPO_UNTYPED] = "untyped",     [EXPO_COUNTER] = "counter", [EXPO_GAUGE] = "gauge",
    [EXPO_HISTOGRAM] = "histogram", [EXPO_SUMMARY] = "summary",
};

/* ---- characters ------------------------------------------------------- */

static int is_lname_start(unsigned char c) {
    return expo_is_alpha(c) || c == '_';
}
static int is_lname_char(unsigned char c) {
    return is_lname_start(c) || expo_is_digit(c);
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

static int fail_v(expo_parser *p, size_t line, kiln_err *err, const char *fmt, va_list ap) {
    char msg[KILN_ERR_MSG_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    p->state = -1;
    kiln_err_set(&p->fail, KILN_EINVAL, "line %zu: %s", line, msg);
    return kiln_err_set(err, KILN_EINVAL, "%s", p->fail.msg);
}

int expo_fail(expo_parser *p, kiln_err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = fail_v(p, p->line, err, fmt, ap);
    va_end(ap);
    return rc;
}

int expo_fail_at(expo_parser *p, size_t line, kiln_err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = fail_v(p, line, err, fmt, ap);
    va_end(ap);
    return rc;
}

/* Fails with `line N: <what>, got "<token at s>"`. */
int expo_fail_got(expo_parser *p, kiln_err *err, const char *what, const char *s, const char *end) {
    char got[160];
    describe(s, end, " \t{}=,\"#", got, sizeof got);
    return expo_fail(p, err, "%s, got %s", what, got);
}

/* Like fail_got, quoting the start of the line instead of a token. */
int expo_fail_line(expo_parser *p, kiln_err *err, const char *what, const char *s, const char *end) {
    char got[160];
    describe(s, end, "", got, sizeof got);
    return expo_fail(p, err, "%s, got %s", what, got);
}

int expo_fail_nomem(expo_parser *p, kiln_err *err) {
    p->state = -1;
    kiln_err_set(&p->fail, KILN_ENOMEM, "line %zu: out of memory", p->line);
    return kiln_err_set(err, KILN_ENOMEM, "%s", p->fail.msg);
}

/* ---- numbers ---------------------------------------------------------- */

/* Go's strconv.ParseFloat(s, 64) restricted to what Prometheus accepts. */
int expo_parse_float(expo_parser *p, const char *s, size_t n, double *out) {
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
    while (i < n && expo_is_digit((unsigned char)s[i]))
        i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && expo_is_digit((unsigned char)s[i]))
            i++, digits++;
    }
    if (digits == 0)
        return NUM_SYNTAX;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t ed = 0;
        while (i < n && expo_is_digit((unsigned char)s[i]))
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

KILN_MUST_CHECK static int push_label(expo_lvec *d, const char *name, size_t nlen, const char *value,
                                      size_t vlen) {
    if (d->n == d->cap && array_grow((void **)&d->v, &d->cap, d->n + 1, sizeof *d->v) != 0)
        return KILN_ENOMEM;
    d->v[d->n++] = (expo_label){name, nlen, value, vlen};
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

static int label_cmp(const void *a, const void *b) {
    const expo_label *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* The first label name of ls[0..n) that appears twice, or NULL (pairs for a
 * short set, a sorted copy for a long one). */
static const expo_label *duplicate_name(expo_parser *p, const expo_label *ls, size_t n, int *nomem) {
    if (n <= 16) {
        for (size_t i = 1; i < n; i++)
            for (size_t k = 0; k < i; k++)
                if (ls[i].name_len == ls[k].name_len && memcmp(ls[i].name, ls[k].name, ls[i].name_len) == 0)
                    return &ls[i];
        return NULL;
    }
    if (array_grow((void **)&p->sorted, &p->sorted_cap, n, sizeof *p->sorted) != 0) {
        *nomem = 1;
        return NULL;
    }
    memcpy(p->sorted, ls, n * sizeof *ls);
    qsort(p->sorted, n, sizeof *p->sorted, label_cmp);
    for (size_t i = 1; i < n; i++)
        if (label_cmp(&p->sorted[i - 1], &p->sorted[i]) == 0)
            return &p->sorted[i];
    return NULL;
}

/*
 * Parses a label set, s[*i] being just after "{", up to and including "}",
 * into dst (values with an escape unescaped into scratch, reserved here for
 * the whole line s[0..n)).  Text: whitespace around tokens, commas optional
 * (a trailing one allowed), as Prometheus.  OpenMetrics, as its ABNF: no
 * whitespace, commas between labels and none after the last, no name
 * beginning with "_" (reserved), no name twice.  nrunes (not NULL): adds the
 * code points of names and values (the exemplar limit).
 */
int expo_parse_labels(expo_parser *p, const char *s, size_t n, size_t *i, expo_lvec *dst, size_t *nrunes,
                      kiln_err *err) {
    int text = p->fmt == EXPO_TEXT;
    size_t j = *i, first_label = dst->n;
    if (reserve_line(p, n) < 0)
        return expo_fail_nomem(p, err);
    char *o = p->scratch + p->scratch_off;
    int first = 1;
    for (;;) {
        if (text)
            j = skip_blanks(s, n, j);
        if (j < n && s[j] == '}' && (text || first)) {
            j++;
            break;
        }
        if (!text && !first) {
            if (j < n && s[j] == '}') {
                j++;
                break;
            }
            if (j >= n || s[j] != ',')
                return expo_fail_got(p, err, "expected \",\" or \"}\" after label value", s + j, s + n);
            j++;
            if (j < n && s[j] == '}')
                return expo_fail(p, err, "a comma after the last label (the ABNF has no trailing comma)");
        }
        if (j >= n || !is_lname_start((unsigned char)s[j]))
            return expo_fail_got(p, err, "expected label name", s + j, s + n);
        size_t ln = j;
        while (j < n && is_lname_char((unsigned char)s[j]))
            j++;
        size_t lnn = j - ln;
        if (!text && s[ln] == '_')
            return expo_fail(p, err,
                             "label name \"%.*s\" begins with \"_\" (reserved: such names MUST NOT be used)",
                             (int)(lnn > 64 ? 64 : lnn), s + ln);
        if (text)
            j = skip_blanks(s, n, j);
        if (j >= n || s[j] != '=')
            return expo_fail_got(p, err, "expected \"=\" after label name", s + j, s + n);
        j++;
        if (text)
            j = skip_blanks(s, n, j);
        if (j >= n || s[j] != '"')
            return expo_fail_got(p, err, "expected label value", s + j, s + n);
        j++;
        size_t vs = j, vn = 0, esc = 0;
        if (scan_quoted(s, n, &j, &vn, &esc) < 0)
            return expo_fail(p, err, "label value of \"%.*s\" not closed before the end of the line",
                             (int)lnn, s + ln);
        if (!utf8_valid(s + vs, vn))
            return expo_fail(p, err, "invalid UTF-8 in the value of label \"%.*s\"", (int)lnn, s + ln);
        const char *v = s + vs;
        size_t len = vn;
        if (memchr(s + vs, '\\', vn) != NULL) {
            char *w = o;
            v = unescape(s + vs, vn, 1, &o);
            len = (size_t)(o - w);
        }
        if (push_label(dst, s + ln, lnn, v, len) < 0)
            return expo_fail_nomem(p, err);
        if (nrunes != NULL)
            *nrunes += lnn + runes(s + vs, vn) - esc;
        first = 0;
        if (text) {
            j = skip_blanks(s, n, j);
            if (j < n && s[j] == ',')
                j++;
        }
    }
    p->scratch_off = (size_t)(o - p->scratch);
    if (!text && dst->n > first_label) {
        int nomem = 0;
        const expo_label *d = duplicate_name(p, dst->v + first_label, dst->n - first_label, &nomem);
        if (nomem)
            return expo_fail_nomem(p, err);
        if (d != NULL)
            return expo_fail(p, err, "label \"%.*s\" appears twice in a label set (names MUST be unique)",
                             (int)(d->name_len > 64 ? 64 : d->name_len), d->name);
    }
    *i = j;
    return 0;
}

const expo_label *expo_find_label(const expo_lvec *ls, const char *name, size_t n) {
    for (size_t i = 0; i < ls->n; i++)
        if (ls->v[i].name_len == n && memcmp(ls->v[i].name, name, n) == 0)
            return &ls->v[i];
    return NULL;
}

/* Fails for parse_float's rc < 0 on the number s[0..n), read as what: `invalid
 * number while parsing value "x"`. */
int expo_fail_number(expo_parser *p, kiln_err *err, int rc, const char *what, const char *s, size_t n) {
    if (rc == NUM_NOMEM)
        return expo_fail_nomem(p, err);
    return expo_fail(p, err, "%s while parsing %s \"%.*s\"",
                     rc == NUM_RANGE ? "value out of range" : "invalid number", what, (int)(n > 64 ? 64 : n),
                     s);
}

/* The metric name of a # HELP/TYPE/UNIT line (what) at s[*j]: sets
 * p->metric and moves *j past it.  0, or fails. */
int expo_meta_name(expo_parser *p, const char *s, size_t n, size_t *j, const char *what, kiln_err *err) {
    size_t m = *j;
    if (m >= n || !expo_is_mname_start((unsigned char)s[m])) {
        char msg[64];
        snprintf(msg, sizeof msg, "expected metric name after %s", what);
        return expo_fail_got(p, err, msg, s + m, s + n);
    }
    while (*j < n && expo_is_mname_char((unsigned char)s[*j]))
        (*j)++;
    p->metric = s + m;
    p->metric_len = *j - m;
    return 0;
}

/* A TYPE line's type t[0..tn): one of names (indexed by expo_type), compared
 * exactly or, with nocase, ignoring ASCII case; the entry is EXPO_TYPE. */
int expo_type_text(expo_parser *p, const char *const *names, int nocase, const char *t, size_t tn,
                   expo_entry *kind, kiln_err *err) {
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
    return expo_fail(p, err, "invalid metric type \"%.*s\"", (int)(tn > 64 ? 64 : tn), t);
}

/* A HELP line's text t[0..tn), checked to be UTF-8 and unescaped (\\ and \n;
 * \" too when quote, as OpenMetrics has it): the entry is EXPO_HELP. */
int expo_help_text(expo_parser *p, const char *t, size_t tn, int quote, expo_entry *kind, kiln_err *err) {
    if (!utf8_valid(t, tn))
        return expo_fail(p, err, "help text is not valid UTF-8");
    if (quote) { /* OpenMetrics' escaped-string: no bare '"', no "\" at the end */
        for (size_t k = 0; k < tn; k++) {
            if (t[k] == '"')
                return expo_fail(p, err, "a bare '\"' in help text (the ABNF's escaped-string needs \\\")");
            if (t[k] == '\\' && ++k == tn)
                return expo_fail(p, err, "help text ends in a lone \"\\\" (the ABNF's escaped-string)");
        }
    }
    if (memchr(t, '\\', tn) != NULL) {
        if (reserve_line(p, tn) < 0)
            return expo_fail_nomem(p, err);
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
    int rc = expo_meta_name(p, s, n, &j, help ? "HELP" : "TYPE", err);
    if (rc < 0)
        return rc;
    if (j < n) {
        if (!is_blank((unsigned char)s[j]))
            return expo_fail_got(p, err, "expected whitespace after metric name", s + j, s + n);
        j++;
    }
    const char *t = s + j;
    size_t tn = n - j;
    if (!help) {
        while (tn > 0 && is_blank((unsigned char)*t))
            t++, tn--;
        while (tn > 0 && is_blank((unsigned char)t[tn - 1]))
            tn--;
        return expo_type_text(p, text_type_names, 1, t, tn, kind, err);
    }
    return expo_help_text(p, t, tn, 0, kind, err);
}

KILN_MUST_CHECK static int text_sample(expo_parser *p, const char *s, size_t n, size_t j, expo_entry *kind,
                                       kiln_err *err) {
    size_t start = j;
    while (j < n && expo_is_mname_char((unsigned char)s[j]))
        j++;
    p->metric = s + start;
    p->metric_len = j - start;
    size_t sep = j;
    j = skip_blanks(s, n, j);
    size_t series_end = sep;
    if (j < n && s[j] == '{') {
        j++;
        int rc = expo_parse_labels(p, s, n, &j, &p->ls, NULL, err);
        if (rc < 0)
            return rc;
        series_end = j;
        j = skip_blanks(s, n, j);
    } else if (j == n) {
        return expo_fail(p, err, "expected value after metric, got end of line");
    } else if (j == sep) {
        return expo_fail_got(p, err, "expected whitespace or \"{\" after metric name", s + j, s + n);
    }
    p->series = s + start;
    p->series_len = series_end - start;

    size_t v = j;
    while (j < n && s[j] != '{' && !is_blank((unsigned char)s[j]))
        j++;
    if (j == v)
        return expo_fail_got(p, err, "expected value after metric", s + j, s + n);
    int rc = expo_parse_float(p, s + v, j - v, &p->value);
    if (rc < 0)
        return expo_fail_number(p, err, rc, "value", s + v, j - v);
    j = skip_blanks(s, n, j);
    p->has_ts = 0;
    if (j < n) {
        size_t t = j;
        int64_t ts = 0;
        while (j < n && expo_is_digit((unsigned char)s[j])) {
            int d = s[j] - '0';
            if (ts > (INT64_MAX - d) / 10)
                return expo_fail(p, err, "timestamp out of range");
            ts = ts * 10 + d;
            j++;
        }
        if (j == t)
            return expo_fail_got(p, err, "expected timestamp or end of line", s + j, s + n);
        j = skip_blanks(s, n, j);
        if (j < n)
            return expo_fail_got(p, err, "expected end of line after timestamp", s + j, s + n);
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
    if (!expo_is_mname_start((unsigned char)s[j]))
        return expo_fail_got(p, err, "expected metric name or \"#\"", s + j, s + n);
    return text_sample(p, s, n, j, kind, err);
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
    free(p->ls.v);
    free(p->exls.v);
    free(p->scratch);
    free(p->num);
    free(p->sorted);
    expo_om_free(p);
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
                return expo_fail(p, err, "data does not end with # EOF");
            }
            p->state = 1;
            return 0;
        }
        const char *s = p->body + p->pos;
        const char *nl = memchr(s, '\n', p->len - p->pos);
        size_t n = nl != NULL ? (size_t)(nl - s) : p->len - p->pos;
        p->pos += n + (nl != NULL);
        p->line++;
        p->ls.n = 0;
        p->exls.n = 0;
        p->has_ts = 0;
        p->has_ex = 0;
        p->scratch_off = 0;
        int rc = p->fmt == EXPO_OPENMETRICS ? expo_om_line(p, s, n, nl == NULL, kind, err)
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
    *ls = p->ls.v;
    return p->ls.n;
}

double expo_value(const expo_parser *p) {
    return p->value;
}

int expo_timestamp(const expo_parser *p, int64_t *ms) {
    if (p->has_ts > 0)
        *ms = p->ts;
    return p->has_ts;
}

int expo_has_exemplar(const expo_parser *p) {
    return p->has_ex;
}

int expo_exemplar(const expo_parser *p, const expo_label **ls, size_t *n, double *v, int *has_ts,
                  int64_t *ts) {
    if (!p->has_ex)
        return 0;
    *ls = p->exls.v;
    *n = p->exls.n;
    *v = p->ex_value;
    *has_ts = p->ex_has_ts;
    *ts = p->ex_has_ts > 0 ? p->ex_ts : 0;
    return 1;
}

const char *expo_text(const expo_parser *p, size_t *len) {
    *len = p->text_len;
    return p->text;
}

expo_type expo_metric_type(const expo_parser *p) {
    return p->type;
}