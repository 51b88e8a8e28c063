/*
 * tmplfuncs.c - the functions of alert templates: Go text/template's builtins
 * (and, or, not, len, index, print, printf, println, eq, ne, lt, le, gt, ge,
 * html, urlquery) and Prometheus' (template_reference.md), and how values
 * print (Go's fmt %v and printf verbs).
 *
 * Each function is what Prometheus 2.42 runs, down to its error messages,
 * which become part of the annotation text.  The numbers come out as Go's
 * fmt does: %v of a float64 is strconv's shortest 'g' (fmt_double_g), and the
 * humanize functions print with %.4g, which C's printf formats the same way
 * (both round the exact binary value); NaN and infinities are spelled as Go
 * spells them.  Regular expressions are PCRE2 in UTF mode, as config/ uses;
 * a bad pattern's message is PCRE2's, not Go's.
 *
 * Called by template.c's executor on the expanding thread.
 */
#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "rules/tmplint.h"

enum {
    F_NOT = 2,
    F_LEN,
    F_INDEX,
    F_PRINT,
    F_PRINTF,
    F_PRINTLN,
    F_EQ,
    F_NE,
    F_LT,
    F_LE,
    F_GT,
    F_GE,
    F_HTML,
    F_URLQUERY,
    F_QUERY,
    F_FIRST,
    F_LABEL,
    F_VALUE,
    F_STRVALUE,
    F_ARGS,
    F_REREPLACEALL,
    F_SAFEHTML,
    F_MATCH,
    F_TITLE,
    F_TOUPPER,
    F_TOLOWER,
    F_GRAPHLINK,
    F_TABLELINK,
    F_SORTBYLABEL,
    F_HUMANIZE,
    F_HUMANIZE1024,
    F_HUMANIZEDURATION,
    F_HUMANIZEPERCENTAGE,
    F_HUMANIZETIMESTAMP,
    F_TOTIME,
    F_PATHPREFIX,
    F_EXTERNALURL,
    F_PARSEDURATION,
    F_STRIPPORT,
    F_STRIPDOMAIN,
    F_COUNT
};

const tmpl_func tmpl_funcs[] = {
    [F_AND] = {"and", 1, -1, {0}},
    [F_OR] = {"or", 1, -1, {0}},
    [F_NOT] = {"not", 1, 1, {0}},
    [F_LEN] = {"len", 1, 1, {0}},
    [F_INDEX] = {"index", 1, -1, {0}},
    [F_PRINT] = {"print", 0, -1, {0}},
    [F_PRINTF] = {"printf", 1, -1, {PK_STR}},
    [F_PRINTLN] = {"println", 0, -1, {0}},
    [F_EQ] = {"eq", 1, -1, {0}},
    [F_NE] = {"ne", 2, 2, {0}},
    [F_LT] = {"lt", 2, 2, {0}},
    [F_LE] = {"le", 2, 2, {0}},
    [F_GT] = {"gt", 2, 2, {0}},
    [F_GE] = {"ge", 2, 2, {0}},
    [F_HTML] = {"html", 0, -1, {0}},
    [F_URLQUERY] = {"urlquery", 0, -1, {0}},
    [F_QUERY] = {"query", 1, 1, {PK_STR}},
    [F_FIRST] = {"first", 1, 1, {PK_VEC}},
    [F_LABEL] = {"label", 2, 2, {PK_STR, PK_SAMPLE}},
    [F_VALUE] = {"value", 1, 1, {PK_SAMPLE}},
    [F_STRVALUE] = {"strvalue", 1, 1, {PK_SAMPLE}},
    [F_ARGS] = {"args", 0, -1, {0}},
    [F_REREPLACEALL] = {"reReplaceAll", 3, 3, {PK_STR, PK_STR, PK_STR}},
    [F_SAFEHTML] = {"safeHtml", 1, 1, {PK_STR}},
    [F_MATCH] = {"match", 2, 2, {PK_STR, PK_STR}},
    [F_TITLE] = {"title", 1, 1, {PK_STR}},
    [F_TOUPPER] = {"toUpper", 1, 1, {PK_STR}},
    [F_TOLOWER] = {"toLower", 1, 1, {PK_STR}},
    [F_GRAPHLINK] = {"graphLink", 1, 1, {PK_STR}},
    [F_TABLELINK] = {"tableLink", 1, 1, {PK_STR}},
    [F_SORTBYLABEL] = {"sortByLabel", 2, 2, {PK_STR, PK_VEC}},
    [F_HUMANIZE] = {"humanize", 1, 1, {0}},
    [F_HUMANIZE1024] = {"humanize1024", 1, 1, {0}},
    [F_HUMANIZEDURATION] = {"humanizeDuration", 1, 1, {0}},
    [F_HUMANIZEPERCENTAGE] = {"humanizePercentage", 1, 1, {0}},
    [F_HUMANIZETIMESTAMP] = {"humanizeTimestamp", 1, 1, {0}},
    [F_TOTIME] = {"toTime", 1, 1, {0}},
    [F_PATHPREFIX] = {"pathPrefix", 0, 0, {0}},
    [F_EXTERNALURL] = {"externalURL", 0, 0, {0}},
    [F_PARSEDURATION] = {"parseDuration", 1, 1, {PK_STR}},
    [F_STRIPPORT] = {"stripPort", 1, 1, {PK_STR}},
    [F_STRIPDOMAIN] = {"stripDomain", 1, 1, {PK_STR}},
};

int tmpl_func_lookup(const char *name, size_t n) {
    for (int k = 0; k < F_COUNT; k++)
        if (strlen(tmpl_funcs[k].name) == n && memcmp(tmpl_funcs[k].name, name, n) == 0)
            return k;
    return -1;
}

/* ---- values ------------------------------------------------------------------------------- */

const char tmpl_data_type[] = "struct { Labels map[string]string; ExternalLabels map[string]string; "
                              "ExternalURL string; Value float64 }";

const char *tmpl_type_name(const tv *v) {
    /* indexed by the TV_* kinds, in tmplint.h's order */
    static const char *const names[] = {"<nil>",
                                        "bool",
                                        "int",
                                        "float64",
                                        "string",
                                        "map[string]string",
                                        "map[string]interface {}",
                                        "*template.sample",
                                        "template.queryResult",
                                        tmpl_data_type,
                                        "*time.Time"};
    _Static_assert(sizeof names / sizeof *names == TV_TIME + 1, "a Go type name for each value kind");
    return names[v->k];
}

int tmpl_truth(const tv *v, int *ok) {
    *ok = 1;
    switch (v->k) {
    case TV_BOOL:
    case TV_INT:
        return v->i != 0;
    case TV_FLOAT:
        return v->f != 0;
    case TV_STR:
        return v->n > 0;
    case TV_LABELS:
    case TV_ARGS:
    case TV_VEC:
        return v->pn > 0;
    case TV_SAMPLE:
        return v->p != NULL;
    case TV_NIL:
        return 0;
    default:
        return 1;
    }
}

static void put_float(buf *b, double f) {
    char tmp[FMT_DOUBLE_MAX];
    buf_append(b, tmp, (size_t)fmt_double_g(f, tmp));
}

/* Go's time.Time.String() of a UTC time: "2006-01-02 15:04:05.999999999 +0000 UTC". */
static void put_time(buf *b, int64_t ms) {
    time_t sec = (time_t)(ms / 1000 - (ms % 1000 < 0)); /* floor */
    int64_t frac = ms - (int64_t)sec * 1000;
    struct tm tm;
    gmtime_r(&sec, &tm);
    buf_printf(b, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
               tm.tm_min, tm.tm_sec);
    if (frac) {
        char f[8];
        int n = snprintf(f, sizeof f, ".%03d", (int)frac);
        while (f[n - 1] == '0')
            n--;
        buf_append(b, f, (size_t)n);
    }
    buf_puts(b, " +0000 UTC");
}

static void put_labels(buf *b, const tmpl_label *l, size_t n) {
    buf_puts(b, "map[");
    for (size_t k = 0; k < n; k++)
        buf_printf(b, "%s%s:%s", k ? " " : "", l[k].name, l[k].value);
    buf_putc(b, ']');
}

static void put_labels_sorted(buf *b, const tmpl_label *l, size_t n) {
    tmpl_label *sorted = malloc(sizeof *sorted * (n ? n : 1));
    if (!sorted) {
        b->oom = 1;
        return;
    }
    memcpy(sorted, l, sizeof *sorted * n);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(sorted[j - 1].name, sorted[j].name) > 0; j--) {
            tmpl_label t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    put_labels(b, sorted, n);
    free(sorted);
}

size_t tmpl_args_nth(size_t n, size_t k) {
    char prev[32] = "", key[32], best[32];
    size_t bi = 0;
    for (size_t r = 0; r <= k; r++) {
        best[0] = 0;
        for (size_t j = 0; j < n; j++) {
            snprintf(key, sizeof key, "arg%zu", j);
            if (strcmp(key, prev) > 0 && (!best[0] || strcmp(key, best) < 0)) {
                memcpy(best, key, sizeof key);
                bi = j;
            }
        }
        memcpy(prev, best, sizeof prev);
    }
    return bi;
}

/* mode 0: an action prints it; 1: a fmt operand; 2: inside a container. */
void tmpl_print(buf *b, const tv *v, int mode) {
    switch (v->k) {
    case TV_NIL:
        buf_puts(b, mode == 0 ? "<no value>" : "<nil>");
        break;
    case TV_BOOL:
        buf_puts(b, v->i ? "true" : "false");
        break;
    case TV_INT:
        buf_printf(b, "%lld", (long long)v->i);
        break;
    case TV_FLOAT:
        put_float(b, v->f);
        break;
    case TV_STR:
        buf_append(b, v->s, v->n);
        break;
    case TV_LABELS:
        put_labels(b, v->p, v->pn);
        break;
    case TV_ARGS:
        buf_puts(b, "map[");
        for (size_t k = 0; k < v->pn; k++) {
            size_t j = tmpl_args_nth(v->pn, k);
            buf_printf(b, "%sarg%zu:", k ? " " : "", j);
            tmpl_print(b, (const tv *)v->p + j, 2);
        }
        buf_putc(b, ']');
        break;
    case TV_SAMPLE: {
        const tmpl_sample *s = v->p;
        if (!s) {
            buf_puts(b, "<nil>");
            break;
        }
        buf_puts(b, mode == 0 ? "{" : "&{");
        put_labels_sorted(b, s->labels, s->nlabels);
        buf_putc(b, ' ');
        put_float(b, s->value);
        buf_putc(b, '}');
        break;
    }
    case TV_VEC:
        buf_putc(b, '[');
        for (size_t k = 0; k < v->pn; k++) {
            tv s = {.k = TV_SAMPLE, .p = (const tmpl_sample *)v->p + k};
            if (k)
                buf_putc(b, ' ');
            tmpl_print(b, &s, 1);
        }
        buf_putc(b, ']');
        break;
    case TV_DATA: {
        const tmpl_data *d = v->p;
        buf_putc(b, '{');
        put_labels_sorted(b, d->labels, d->nlabels);
        buf_putc(b, ' ');
        put_labels_sorted(b, d->ext_labels, d->next_labels);
        buf_printf(b, " %s ", d->external_url ? d->external_url : "");
        put_float(b, d->value);
        buf_putc(b, '}');
        break;
    }
    case TV_TIME:
        put_time(b, v->i);
        break;
    }
}

/* ---- Go's fmt ------------------------------------------------------------------------------- */

/* strconv.Quote, for printable UTF-8 text (multi-byte runes kept as they are). */
static void put_quoted(buf *b, const char *s, size_t n, char q) {
    buf_putc(b, q);
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        const char *esc = strchr("\a\b\f\n\r\t\v", c);
        if (c == (unsigned char)q || c == '\\')
            buf_printf(b, "\\%c", c);
        else if (c && esc)
            buf_printf(b, "\\%c", "abfnrtv"[esc - "\a\b\f\n\r\t\v"]);
        else if (c < 0x20 || c == 0x7f)
            buf_printf(b, "\\x%02x", c);
        else if (c >= 0x80 && !utf8_valid(s + k, (size_t)tmpl_utf8_decode(s + k, n - k, &(unsigned){0})))
            buf_printf(b, "\\x%02x", c);
        else
            buf_putc(b, (char)c);
    }
    buf_putc(b, q);
}

typedef struct fspec {
    int minus, plus, sharp, zero, space;
    int width, prec; /* -1: none */
} fspec;

static size_t rune_count(const char *s, size_t n) {
    size_t r = 0;
    for (size_t k = 0; k < n; k++)
        r += ((unsigned char)s[k] & 0xc0) != 0x80;
    return r;
}

/* Writes sign and body padded to the width as Go's fmt pads. */
static void pad(buf *b, const fspec *f, const char *sign, const char *body, size_t n, int zero_ok) {
    size_t len = strlen(sign) + rune_count(body, n);
    size_t fill = f->width > 0 && (size_t)f->width > len ? (size_t)f->width - len : 0;
    if (!f->minus && !(f->zero && zero_ok))
        for (size_t k = 0; k < fill; k++)
            buf_putc(b, ' ');
    buf_puts(b, sign);
    if (!f->minus && f->zero && zero_ok)
        for (size_t k = 0; k < fill; k++)
            buf_putc(b, '0');
    buf_append(b, body, n);
    if (f->minus)
        for (size_t k = 0; k < fill; k++)
            buf_putc(b, ' ');
}

static void bad_verb(buf *b, char verb, const tv *v) {
    buf_printf(b, "%%!%c(", verb);
    if (v->k != TV_NIL)
        buf_printf(b, "%s=", tmpl_type_name(v));
    tmpl_print(b, v, 1);
    buf_putc(b, ')');
}

static void fmt_int(buf *b, const fspec *f, char verb, const tv *v) {
    char body[80];
    int neg = v->i < 0;
    unsigned long long u = neg ? 0ULL - (unsigned long long)v->i : (unsigned long long)v->i;
    int n;
    switch (verb) {
    case 'v':
    case 'd':
        n = snprintf(body, sizeof body, "%llu", u);
        break;
    case 'x':
    case 'X':
        n = snprintf(body, sizeof body, verb == 'x' ? "%s%llx" : "%s%llX",
                     f->sharp ? (verb == 'x' ? "0x" : "0X") : "", u);
        break;
    case 'o':
        n = snprintf(body, sizeof body, f->sharp ? "0%llo" : "%llo", u);
        break;
    case 'b':
        n = 0;
        for (int k = 63; k >= 0; k--)
            if (n || (u >> k & 1) || k == 0)
                body[n++] = (char)('0' + (u >> k & 1));
        break;
    case 'c':
    case 'q':
    case 'U': {
        unsigned r = v->i < 0 || v->i > 0x10ffff ? 0xfffd : (unsigned)v->i;
        char *o = body;
        if (verb == 'U') {
            n = snprintf(body, sizeof body, "U+%04X", r);
        } else {
            tmpl_put_utf8(&o, r);
            n = (int)(o - body);
            if (verb == 'q') {
                buf tmp = BUF_INIT;
                put_quoted(&tmp, body, (size_t)n, '\'');
                pad(b, f, "", tmp.data ? tmp.data : "", tmp.len, 0);
                if (tmp.oom)
                    b->oom = 1;
                buf_free(&tmp);
                return;
            }
        }
        pad(b, f, "", body, (size_t)n, 0);
        return;
    }
    default:
        bad_verb(b, verb, v);
        return;
    }
    if (f->prec >= 0) { /* minimum digits; zero padding then does not apply */
        char t[160];
        int z = f->prec > n ? f->prec - n : 0;
        if (z > 80)
            z = 80;
        memset(t, '0', (size_t)z);
        memcpy(t + z, body, (size_t)n);
        if (f->prec == 0 && u == 0)
            z = n = 0;
        pad(b, f, neg ? "-" : f->plus ? "+" : f->space ? " " : "", t, (size_t)(z + n), 0);
        return;
    }
    pad(b, f, neg ? "-" : f->plus ? "+" : f->space ? " " : "", body, (size_t)n, 1);
}

static void fmt_float(buf *b, const fspec *f, char verb, double x) {
    char body[FMT_DOUBLE_MAX + 16];
    const char *sign = signbit(x) ? "-" : f->plus ? "+" : f->space ? " " : "";
    if (isnan(x) || isinf(x)) {
        sign = isnan(x) ? (f->plus ? "+" : f->space ? " " : "") : x < 0 ? "-" : "+";
        pad(b, f, sign, isnan(x) ? "NaN" : "Inf", 3, 0);
        return;
    }
    int n;
    double a = fabs(x);
    if ((verb == 'v' || verb == 'g' || verb == 'G') && f->prec < 0) {
        n = fmt_double_g(a, body);
        if (verb == 'G')
            for (int k = 0; k < n; k++)
                if (body[k] == 'e')
                    body[k] = 'E';
    } else {
        char spec[16];
        snprintf(spec, sizeof spec, "%%%s.*%c", f->sharp ? "#" : "", verb == 'v' ? 'g' : verb);
        n = snprintf(body, sizeof body, spec, f->prec < 0 ? 6 : f->prec > 300 ? 300 : f->prec, a);
        if (n < 0 || n >= (int)sizeof body)
            n = 0;
    }
    pad(b, f, sign, body, (size_t)n, 1);
}

static void fmt_one(buf *b, const fspec *f, char verb, const tv *v) {
    if (v->k == TV_BOOL && (verb == 'v' || verb == 't')) {
        pad(b, f, "", v->i ? "true" : "false", v->i ? 4 : 5, 0);
    } else if (v->k == TV_INT && !strchr("eEfFgGst", verb)) {
        fmt_int(b, f, verb, v);
    } else if (v->k == TV_FLOAT && strchr("veEfFgG", verb)) {
        fmt_float(b, f, verb, v->f);
    } else if (v->k == TV_STR && strchr("vsqxX", verb)) {
        size_t n = v->n;
        if (f->prec >= 0 && (verb == 's' || verb == 'v')) { /* at most prec runes */
            size_t k = 0, r = 0;
            while (k < n && r < (size_t)f->prec) {
                k += (size_t)tmpl_utf8_decode(v->s + k, n - k, &(unsigned){0});
                r++;
            }
            n = k;
        }
        if (verb == 'q' || verb == 'x' || verb == 'X') {
            buf tmp = BUF_INIT;
            if (verb == 'q')
                put_quoted(&tmp, v->s, n, '"');
            else
                for (size_t k = 0; k < n; k++)
                    buf_printf(&tmp, verb == 'x' ? "%02x" : "%02X", (unsigned char)v->s[k]);
            pad(b, f, "", tmp.data ? tmp.data : "", tmp.len, 0);
            if (tmp.oom)
                b->oom = 1;
            buf_free(&tmp);
        } else {
            pad(b, f, "", v->s, n, 0);
        }
    } else if (v->k != TV_NIL && v->k != TV_BOOL && v->k != TV_INT && v->k != TV_FLOAT && v->k != TV_STR &&
               (verb == 'v' || verb == 's')) {
        buf tmp = BUF_INIT;
        tmpl_print(&tmp, v, 1);
        pad(b, f, "", tmp.data ? tmp.data : "", tmp.len, 0);
        if (tmp.oom)
            b->oom = 1;
        buf_free(&tmp);
    } else if (v->k == TV_NIL && verb == 'v') {
        pad(b, f, "", "<nil>", 5, 0);
    } else {
        bad_verb(b, verb, v);
    }
}

/* fmt.Sprintf(format, args...) with Go's verbs, flags, widths and its
 * %!verb(type=value), %!verb(MISSING) and %!(EXTRA ...) complaints. */
static void go_sprintf(buf *b, const char *fm, size_t fl, const tv *args, int nargs) {
    int ai = 0;
    for (size_t k = 0; k < fl; k++) {
        if (fm[k] != '%') {
            buf_putc(b, fm[k]);
            continue;
        }
        fspec f = {0, 0, 0, 0, 0, -1, -1};
        for (k++; k < fl && strchr("+-# 0", fm[k]); k++) {
            f.plus |= fm[k] == '+';
            f.minus |= fm[k] == '-';
            f.sharp |= fm[k] == '#';
            f.zero |= fm[k] == '0';
            f.space |= fm[k] == ' ';
        }
        if (k < fl && fm[k] == '*') {
            k++;
            if (ai < nargs && args[ai].k == TV_INT)
                f.width = (int)(args[ai].i > 10000 ? 10000 : args[ai].i < -10000 ? -10000 : args[ai].i);
            else
                buf_puts(b, "%!(BADWIDTH)");
            ai++;
            if (f.width < 0) {
                f.minus = 1;
                f.width = -f.width;
            }
        }
        for (; k < fl && fm[k] >= '0' && fm[k] <= '9'; k++)
            f.width = f.width < 0 ? fm[k] - '0' : f.width < 10000 ? f.width * 10 + fm[k] - '0' : f.width;
        if (k < fl && fm[k] == '.') {
            f.prec = 0;
            if (++k < fl && fm[k] == '*') {
                k++;
                if (ai < nargs && args[ai].k == TV_INT && args[ai].i >= 0)
                    f.prec = (int)(args[ai].i > 10000 ? 10000 : args[ai].i);
                else
                    buf_puts(b, "%!(BADPREC)");
                ai++;
            }
            for (; k < fl && fm[k] >= '0' && fm[k] <= '9'; k++)
                f.prec = f.prec < 10000 ? f.prec * 10 + fm[k] - '0' : f.prec;
        }
        if (f.minus)
            f.zero = 0;
        if (k >= fl) {
            buf_puts(b, "%!(NOVERB)");
            break;
        }
        char verb = fm[k];
        if (verb == '%') {
            buf_putc(b, '%');
            continue;
        }
        if (ai >= nargs) {
            buf_printf(b, "%%!%c(MISSING)", verb);
            continue;
        }
        fmt_one(b, &f, verb, &args[ai++]);
    }
    if (ai < nargs) {
        buf_puts(b, "%!(EXTRA ");
        for (; ai < nargs; ai++) {
            if (args[ai].k != TV_NIL)
                buf_printf(b, "%s=", tmpl_type_name(&args[ai]));
            tmpl_print(b, &args[ai], 1);
            buf_puts(b, ai + 1 < nargs ? ", " : ")");
        }
    }
}

/* fmt.Sprint (spaces between operands when neither is a string) and fmt.Sprintln. */
static void go_sprint(buf *b, const tv *args, int nargs, int ln) {
    for (int k = 0; k < nargs; k++) {
        if (k && (ln || (args[k].k != TV_STR && args[k - 1].k != TV_STR)))
            buf_putc(b, ' ');
        tmpl_print(b, &args[k], 1);
    }
    if (ln)
        buf_putc(b, '\n');
}

/* ---- numbers ------------------------------------------------------------------------------ */

#define FAIL(e, fn, ...) tmpl_fail(e, "error calling %s: " __VA_ARGS__)

/* Go's strconv.Quote of s for error messages (no width). */
static const char *quoted(tmpl_ex *e, const char *s, size_t n) {
    buf q = BUF_INIT;
    put_quoted(&q, s, n, '"');
    if (buf_error(&q) < 0) {
        buf_free(&q);
        tmpl_oom(e);
    }
    char *c = tmpl_alloc(e, q.len + 1);
    memcpy(c, q.data, q.len + 1);
    buf_free(&q);
    return c;
}

/* Prometheus' convertToFloat: float64, int, or a string strconv.ParseFloat takes. */
static double to_float(tmpl_ex *e, const char *fn, const tv *v) {
    if (v->k == TV_FLOAT)
        return v->f;
    if (v->k == TV_INT)
        return (double)v->i;
    if (v->k != TV_STR)
        tmpl_fail(e, "error calling %s: can't convert %s to float", fn, tmpl_type_name(v));
    char tmp[128], *end;
    const char *why = "invalid syntax";
    if (v->n == 0 || v->n >= sizeof tmp)
        goto bad;
    memcpy(tmp, v->s, v->n);
    tmp[v->n] = 0;
    const char *d = tmp + (tmp[0] == '+' || tmp[0] == '-');
    int hex = d[0] == '0' && (d[1] == 'x' || d[1] == 'X');
    if (strchr(tmp, ' ') || strchr(tmp, '\t') || strchr(tmp, '\n') || strchr(tmp, '(') ||
        (hex && !strpbrk(d, "pP")))
        goto bad;
    int infnan = strncasecmp(d, "inf", 3) == 0 || strncasecmp(d, "nan", 3) == 0;
    if (infnan && strcasecmp(d, "inf") != 0 && strcasecmp(d, "infinity") != 0 && strcasecmp(d, "nan") != 0)
        goto bad;
    if (!infnan && !((d[0] >= '0' && d[0] <= '9') || d[0] == '.'))
        goto bad;
    double x = strtod(tmp, &end);
    if (*end)
        goto bad;
    if (isinf(x) && !infnan) {
        why = "value out of range";
        goto bad;
    }
    return x;
bad:
    tmpl_fail(e, "error calling %s: strconv.ParseFloat: parsing %s: %s", fn, quoted(e, v->s, v->n), why);
}

/* Go's fmt "%.4g" followed by a suffix. */
static void g4(buf *b, double v, const char *suffix) {
    char special[FMT_DOUBLE_MAX];
    if (isfinite(v)) {
        buf_printf(b, "%.4g", v);
    } else {
        fmt_double_g(v, special); /* NaN, +Inf, -Inf as Go prints them */
        buf_puts(b, special);
    }
    buf_puts(b, suffix);
}

static void humanize(buf *b, double v, int base) {
    static const char *const big[] = {"k", "M", "G", "T", "P", "E", "Z", "Y"};
    static const char *const big2[] = {"ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"};
    static const char *const small[] = {"m", "u", "n", "p", "f", "a", "z", "y"};
    const char *prefix = "";
    if (base == 1024) {
        if (fabs(v) <= 1 || isnan(v) || isinf(v))
            return g4(b, v, "");
        for (int k = 0; k < 8 && fabs(v) >= 1024; k++) {
            prefix = big2[k];
            v /= 1024;
        }
    } else if (v == 0 || isnan(v) || isinf(v)) {
        return g4(b, v, "");
    } else if (fabs(v) >= 1) {
        for (int k = 0; k < 8 && fabs(v) >= 1000; k++) {
            prefix = big[k];
            v /= 1000;
        }
    } else {
        for (int k = 0; k < 8 && fabs(v) < 1; k++) {
            prefix = small[k];
            v *= 1000;
        }
    }
    g4(b, v, prefix);
}

static void humanize_duration(buf *b, double v) {
    static const char *const small[] = {"ms", "us", "ns", "ps", "fs", "as", "zs", "ys"};
    if (isnan(v) || isinf(v))
        return g4(b, v, "");
    if (v == 0)
        return g4(b, v, "s");
    if (fabs(v) >= 1) {
        const char *sign = v < 0 ? "-" : "";
        v = fabs(v);
        int64_t d = v >= 9.2e18 ? INT64_MIN : (int64_t)v; /* Go's int64(v) of a huge float */
        int64_t s = d % 60, m = d / 60 % 60, h = d / 3600 % 24, days = d / 86400;
        if (days)
            buf_printf(b, "%s%lldd %lldh %lldm %llds", sign, (long long)days, (long long)h, (long long)m,
                       (long long)s);
        else if (h)
            buf_printf(b, "%s%lldh %lldm %llds", sign, (long long)h, (long long)m, (long long)s);
        else if (m)
            buf_printf(b, "%s%lldm %llds", sign, (long long)m, (long long)s);
        else {
            buf_puts(b, sign);
            g4(b, v, "s");
        }
        return;
    }
    const char *suffix = "s";
    for (int k = 0; k < 8 && fabs(v) < 1; k++) {
        suffix = small[k];
        v *= 1000;
    }
    g4(b, v, suffix);
}

/* Prometheus' floatToTime: a Unix time in seconds to milliseconds. */
static int64_t to_time(tmpl_ex *e, const char *fn, double v) {
    if (isnan(v) || isinf(v))
        tmpl_fail(e, "error calling %s: value is NaN or Inf", fn);
    double ns = v * 1e9;
    if (ns >= 9223372036854775807.0 || ns < -9223372036854775808.0) {
        char tmp[FMT_DOUBLE_MAX];
        fmt_double_g(v, tmp);
        tmpl_fail(
            e,
            "error calling %s: %s cannot be represented as a nanoseconds timestamp since it overflows int64",
            fn, tmp);
    }
    return (int64_t)ns / 1000000;
}

/* ---- comparisons -------------------------------------------------------------------------- */

static int basic(const tv *v) {
    return v->k == TV_BOOL || v->k == TV_INT || v->k == TV_FLOAT || v->k == TV_STR;
}

static int tv_eq(tmpl_ex *e, const tv *a, const tv *b) {
    if (a->k != b->k) {
        if (a->k != TV_NIL && b->k != TV_NIL)
            tmpl_fail(e, "error calling eq: incompatible types for comparison");
        return 0;
    }
    switch (a->k) {
    case TV_BOOL:
    case TV_INT:
        return a->i == b->i;
    case TV_FLOAT:
        return a->f == b->f;
    case TV_STR:
        return a->n == b->n && memcmp(a->s, b->s, a->n) == 0;
    case TV_SAMPLE:
        return a->p == b->p;
    case TV_NIL:
        return 1;
    default: {
        buf v = BUF_INIT;
        tmpl_print(&v, a, 1);
        buf_putc(&v, 0);
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s", v.data ? v.data : "");
        buf_free(&v);
        tmpl_fail(e, "error calling eq: non-comparable type %s: %s", tmp, tmpl_type_name(a));
    }
    }
}

static int tv_lt(tmpl_ex *e, const char *fn, const tv *a, const tv *b) {
    if (!basic(a) || !basic(b) || a->k == TV_BOOL || b->k == TV_BOOL) {
        if (basic(a) && basic(b) && a->k == b->k)
            tmpl_fail(e, "error calling %s: invalid type for comparison", fn);
        if (!basic(a) || !basic(b))
            tmpl_fail(e, "error calling %s: invalid type for comparison", fn);
    }
    if (a->k != b->k)
        tmpl_fail(e, "error calling %s: incompatible types for comparison", fn);
    if (a->k == TV_INT)
        return a->i < b->i;
    if (a->k == TV_FLOAT)
        return a->f < b->f;
    size_t n = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->s, b->s, n);
    return c < 0 || (c == 0 && a->n < b->n);
}

/* ---- strings ------------------------------------------------------------------------------ */

/* Upper and lower case of the letters of Latin-1, Latin Extended-A, Greek and
 * Cyrillic; other runes map to themselves. */
static unsigned rune_case(unsigned r, int upper) {
    if (r < 0x80)
        return upper ? (r >= 'a' && r <= 'z' ? r - 32 : r) : (r >= 'A' && r <= 'Z' ? r + 32 : r);
    if (upper) {
        if ((r >= 0xe0 && r <= 0xfe && r != 0xf7) || (r >= 0x3b1 && r <= 0x3c9 && r != 0x3c2) ||
            (r >= 0x430 && r <= 0x44f))
            return r - 0x20;
        if (r == 0x3c2)
            return 0x3a3;
        if (r >= 0x450 && r <= 0x45f)
            return r - 0x50;
        if (r == 0xff)
            return 0x178;
    } else {
        if ((r >= 0xc0 && r <= 0xde && r != 0xd7) || (r >= 0x391 && r <= 0x3a9 && r != 0x3a2) ||
            (r >= 0x410 && r <= 0x42f))
            return r + 0x20;
        if (r >= 0x400 && r <= 0x40f)
            return r + 0x50;
        if (r == 0x178)
            return 0xff;
    }
    if (r >= 0x100 && r <= 0x17f && r != 0x130 && r != 0x131 && r != 0x138 && r != 0x149 && r != 0x17f) {
        int odd_upper = (r >= 0x139 && r <= 0x148) || (r >= 0x179 && r <= 0x17e);
        int is_upper = odd_upper ? (r & 1) : !(r & 1);
        if (upper && !is_upper)
            return r - 1;
        if (!upper && is_upper)
            return r + 1;
    }
    return r;
}

/* mode 0: toLower, 1: toUpper, 2: title (strings.Title: a letter after a separator). */
static tv map_case(tmpl_ex *e, const tv *s, int mode) {
    char *o = tmpl_alloc(e, s->n * 2 + 1), *start = o;
    int prev_sep = 1;
    for (size_t k = 0; k < s->n;) {
        unsigned r;
        int len = tmpl_utf8_decode(s->s + k, s->n - k, &r);
        int sep = r < 0x80 ? !((r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') ||
                               r == '_')
                           : 0;
        unsigned m = mode == 2 ? (prev_sep ? rune_case(r, 1) : r) : rune_case(r, mode);
        if (m == r) {
            memcpy(o, s->s + k, (size_t)len);
            o += len;
        } else {
            tmpl_put_utf8(&o, m);
        }
        prev_sep = sep;
        k += (size_t)len;
    }
    return tv_str(start, (size_t)(o - start));
}

/* url.QueryEscape */
void tmpl_query_escape(buf *b, const char *s, size_t n) {
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-_.~", c))
            buf_putc(b, (char)c);
        else if (c == ' ')
            buf_putc(b, '+');
        else
            buf_printf(b, "%%%02X", c);
    }
}

/* net.SplitHostPort: 0 and the host and port spans, or -1. */
static int split_host_port(const char *s, size_t n, size_t *hs, size_t *hl, size_t *ps) {
    const char *colon = NULL;
    for (size_t k = n; k-- > 0;)
        if (s[k] == ':') {
            colon = s + k;
            break;
        }
    if (!colon)
        return -1;
    size_t c = (size_t)(colon - s);
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close || (size_t)(close - s) + 1 != c)
            return -1;
        *hs = 1;
        *hl = (size_t)(close - s) - 1;
    } else {
        *hs = 0;
        *hl = c;
        if (memchr(s, ':', c))
            return -1;
    }
    if (memchr(s + *hs, '[', *hl) || memchr(s + *hs, ']', *hl) || memchr(s + c + 1, '[', n - c - 1) ||
        memchr(s + c + 1, ']', n - c - 1))
        return -1;
    *ps = c + 1;
    return 0;
}

static int is_ip(const char *s, size_t n) {
    char tmp[64];
    unsigned char addr[16];
    if (n == 0 || n >= sizeof tmp)
        return 0;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    return inet_pton(AF_INET, tmp, addr) == 1 || inet_pton(AF_INET6, tmp, addr) == 1;
}

static tv strip_domain(tmpl_ex *e, const tv *in) {
    size_t hs = 0, hl = in->n, ps = in->n;
    int port = split_host_port(in->s, in->n, &hs, &hl, &ps) == 0 && ps < in->n;
    if (!port) {
        hs = 0;
        hl = in->n;
    }
    if (is_ip(in->s + hs, hl))
        return *in;
    const char *dot = memchr(in->s + hs, '.', hl);
    size_t short_len = dot ? (size_t)(dot - in->s) - hs : hl;
    if (!port)
        return tv_str(in->s + hs, short_len);
    buf b = BUF_INIT;
    int v6 = memchr(in->s + hs, ':', short_len) != NULL;
    buf_printf(&b, "%s%.*s%s:%.*s", v6 ? "[" : "", (int)short_len, in->s + hs, v6 ? "]" : "",
               (int)(in->n - ps), in->s + ps);
    if (buf_error(&b) < 0) {
        buf_free(&b);
        tmpl_oom(e);
    }
    char *c = tmpl_alloc(e, b.len + 1);
    memcpy(c, b.data, b.len + 1);
    tv r = tv_str(c, b.len);
    buf_free(&b);
    return r;
}

/* ---- regular expressions ------------------------------------------------------------------ */

static pcre2_code *re_compile(tmpl_ex *e, const char *fn, const tv *pat) {
    int ec;
    PCRE2_SIZE eoff;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pat->s, pat->n, PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY,
                      &ec, &eoff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(ec, msg, sizeof msg) < 0)
            strcpy((char *)msg, "invalid pattern");
        /* Go's words for the common mistakes; its message quotes the pattern */
        if (ec == 114 || ec == 122 || ec == 106) {
            snprintf((char *)msg, sizeof msg, "%s: `%.*s`",
                     ec == 114   ? "missing closing )"
                     : ec == 122 ? "unexpected )"
                                 : "missing closing ]",
                     (int)pat->n, pat->s);
        }
        if (strcmp(fn, "match") == 0)
            FAIL(e, fn, "error parsing regexp: %s", fn, (const char *)msg);
        FAIL(e, fn, "regexp: Compile(`%.*s`): error parsing regexp: %s", fn, (int)pat->n, pat->s,
             (const char *)msg);
    }
    return re;
}

static int is_name_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c >= 0x80;
}

/* Appends Go's Regexp.Expand of repl for the match ov. */
static void expand_repl(buf *b, const pcre2_code *re, const tv *repl, const char *src, const PCRE2_SIZE *ov,
                        uint32_t ngroups) {
    const char *t = repl->s, *end = repl->s + repl->n;
    while (t < end) {
        const char *d = memchr(t, '$', (size_t)(end - t));
        if (!d) {
            buf_append(b, t, (size_t)(end - t));
            return;
        }
        buf_append(b, t, (size_t)(d - t));
        t = d + 1;
        if (t < end && *t == '$') {
            buf_putc(b, '$');
            t++;
            continue;
        }
        int brace = t < end && *t == '{';
        const char *ns = t + brace, *ne = ns;
        while (ne < end && (is_name_byte((unsigned char)*ne)))
            ne++;
        if (ne == ns || (brace && (ne >= end || *ne != '}'))) {
            buf_putc(b, '$'); /* malformed: the '$' is text */
            continue;
        }
        t = ne + brace;
        long num = -1;
        if (ne - ns < 9) {
            num = 0;
            for (const char *c = ns; c < ne && num >= 0; c++)
                num = *c >= '0' && *c <= '9' ? num * 10 + (*c - '0') : -1;
        }
        if (num < 0) {
            char name[256];
            if (ne - ns >= (long)sizeof name)
                continue;
            memcpy(name, ns, (size_t)(ne - ns));
            name[ne - ns] = 0;
            int g = pcre2_substring_number_from_name(re, (PCRE2_SPTR)name);
            num = g > 0 ? g : -1;
        }
        if (num >= 0 && (uint32_t)num < ngroups && ov[2 * num] != PCRE2_UNSET)
            buf_append(b, src + ov[2 * num], ov[2 * num + 1] - ov[2 * num]);
    }
}

/* Regexp.ReplaceAllString, with Go's rule for empty matches. */
static tv re_replace_all(tmpl_ex *e, const tv *pat, const tv *repl, const tv *src) {
    pcre2_code *re = re_compile(e, "reReplaceAll", pat);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    buf b = BUF_INIT;
    if (!md)
        goto oom;
    size_t search = 0, last = 0;
    uint32_t ng = pcre2_get_ovector_count(md);
    while (search <= src->n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)src->s, src->n, search, 0, md, NULL);
        if (rc < 0)
            break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        buf_append(&b, src->s + last, ov[0] - last);
        if (ov[1] > last || ov[0] == 0)
            expand_repl(&b, re, repl, src->s, ov, ng);
        last = ov[1];
        unsigned r;
        size_t width = search < src->n ? (size_t)tmpl_utf8_decode(src->s + search, src->n - search, &r) : 0;
        if (search + width > ov[1])
            search += width;
        else if (search + 1 > ov[1])
            search++;
        else
            search = ov[1];
    }
    buf_append(&b, src->s + last, src->n - last);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    if (buf_error(&b) < 0)
        goto oom;
    char *c = tmpl_alloc(e, b.len + 1);
    memcpy(c, b.data ? b.data : "", b.len + 1);
    tv out = tv_str(c, b.len);
    buf_free(&b);
    return out;
oom:
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    buf_free(&b);
    tmpl_oom(e);
}

static int re_match(tmpl_ex *e, const tv *pat, const tv *s) {
    pcre2_code *re = re_compile(e, "match", pat);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int rc = md ? pcre2_match(re, (PCRE2_SPTR)s->s, s->n, 0, 0, md, NULL) : PCRE2_ERROR_NOMEMORY;
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    if (rc == PCRE2_ERROR_NOMEMORY)
        tmpl_oom(e);
    return rc >= 0;
}

/* ---- the calls ---------------------------------------------------------------------------- */

typedef struct sort_item {
    const tmpl_sample *s;
    const char *key;
    size_t idx;
} sort_item;

static int sort_item_cmp(const void *a, const void *b) {
    const sort_item *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static const char *sample_label(const tmpl_sample *s, const char *name, size_t n) {
    if (s)
        for (size_t k = 0; k < s->nlabels; k++)
            if (strlen(s->labels[k].name) == n && memcmp(s->labels[k].name, name, n) == 0)
                return s->labels[k].value;
    return "";
}

static tv from_buf(tmpl_ex *e, buf *b) {
    if (buf_error(b) < 0) {
        buf_free(b);
        tmpl_oom(e);
    }
    char *c = tmpl_alloc(e, b->len + 1);
    memcpy(c, b->data ? b->data : "", b->len + 1);
    tv v = tv_str(c, b->len);
    buf_free(b);
    return v;
}

static tv do_index(tmpl_ex *e, tv item, const tv *idx, int n) {
    for (int k = 0; k < n; k++) {
        if (item.k == TV_NIL)
            FAIL(e, "index", "index of untyped nil", "index");
        if (item.k == TV_LABELS || item.k == TV_ARGS) {
            if (idx[k].k != TV_STR)
                FAIL(e, "index", "value has type %s; should be string", "index", tmpl_type_name(&idx[k]));
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)idx[k].n, idx[k].s);
            if (item.k == TV_LABELS) {
                const tmpl_label *l = item.p;
                tv r = tv_str("", 0);
                for (size_t j = 0; j < item.pn; j++)
                    if (strlen(l[j].name) == idx[k].n && memcmp(l[j].name, idx[k].s, idx[k].n) == 0)
                        r = tv_str(l[j].value, strlen(l[j].value));
                item = r;
            } else {
                tv r = {0};
                for (size_t j = 0; j < item.pn; j++) {
                    char name[32];
                    snprintf(name, sizeof name, "arg%zu", j);
                    if (strcmp(name, key) == 0)
                        r = ((const tv *)item.p)[j];
                }
                item = r;
            }
        } else if (item.k == TV_VEC || item.k == TV_STR) {
            if (idx[k].k == TV_NIL)
                FAIL(e, "index", "cannot index slice/array with nil", "index");
            if (idx[k].k != TV_INT)
                FAIL(e, "index", "cannot index slice/array with type %s", "index", tmpl_type_name(&idx[k]));
            size_t len = item.k == TV_VEC ? item.pn : item.n;
            if (idx[k].i < 0 || (uint64_t)idx[k].i >= len)
                FAIL(e, "index", "index out of range: %lld", "index", (long long)idx[k].i);
            if (item.k == TV_VEC)
                item = (tv){.k = TV_SAMPLE, .p = (const tmpl_sample *)item.p + idx[k].i};
            else
                item = (tv){.k = TV_INT, .i = (unsigned char)item.s[idx[k].i]};
        } else if (item.k == TV_SAMPLE && !item.p) {
            FAIL(e, "index", "index of nil pointer", "index");
        } else {
            FAIL(e, "index", "can't index item of type %s", "index", tmpl_type_name(&item));
        }
    }
    return item;
}

static tv do_query(tmpl_ex *e, const tv *q) {
    const tmpl_data *d = e->d;
    if (!d->query)
        FAIL(e, "query", "no query engine", "query");
    char *expr = tmpl_alloc(e, q->n + 1);
    memcpy(expr, q->s, q->n);
    expr[q->n] = 0;
    kiln_err err = {0};
    tmpl_qres *r = tmpl_alloc(e, sizeof *r);
    memset(r, 0, sizeof *r);
    int rc = d->query(d->query_data, expr, d->ts_ms, &r->v, &r->n, &err);
    if (rc == KILN_ENOMEM)
        tmpl_oom(e);
    if (rc < 0)
        FAIL(e, "query", "%s", "query", err.msg);
    r->next = e->qres;
    e->qres = r;
    return (tv){.k = TV_VEC, .p = r->v, .pn = r->n};
}

void tmpl_call(tmpl_ex *e, int fn, tv *a, int n, tv *ret) {
    const char *name = tmpl_funcs[fn].name;
    buf b = BUF_INIT;
    int ok;
    memset(ret, 0, sizeof *ret);
    switch (fn) {
    case F_NOT:
        *ret = (tv){.k = TV_BOOL, .i = !tmpl_truth(&a[0], &ok)};
        return;
    case F_LEN:
        if (a[0].k == TV_STR)
            *ret = (tv){.k = TV_INT, .i = (int64_t)a[0].n};
        else if (a[0].k == TV_LABELS || a[0].k == TV_ARGS || a[0].k == TV_VEC)
            *ret = (tv){.k = TV_INT, .i = (int64_t)a[0].pn};
        else if (a[0].k == TV_NIL)
            FAIL(e, name, "reflect: call of reflect.Value.Type on zero Value", name);
        else if (a[0].k == TV_SAMPLE && !a[0].p)
            FAIL(e, name, "len of nil pointer", name);
        else
            FAIL(e, name, "len of type %s", name,
                 a[0].k == TV_SAMPLE ? "template.sample" : tmpl_type_name(&a[0]));
        return;
    case F_INDEX:
        *ret = do_index(e, a[0], a + 1, n - 1);
        return;
    case F_PRINT:
    case F_PRINTLN:
        go_sprint(&b, a, n, fn == F_PRINTLN);
        break;
    case F_PRINTF:
        go_sprintf(&b, a[0].s, a[0].n, a + 1, n - 1);
        break;
    case F_EQ:
        if (n < 2)
            FAIL(e, name, "missing argument for comparison", name);
        ret->k = TV_BOOL;
        for (int k = 1; k < n && !ret->i; k++)
            ret->i = tv_eq(e, &a[0], &a[k]);
        return;
    case F_NE:
        *ret = (tv){.k = TV_BOOL, .i = !tv_eq(e, &a[0], &a[1])};
        return;
    case F_LT:
    case F_GE:
        *ret = (tv){.k = TV_BOOL, .i = tv_lt(e, name, &a[0], &a[1]) ^ (fn == F_GE)};
        return;
    case F_LE:
    case F_GT:
        ret->k = TV_BOOL;
        ret->i = tv_lt(e, name, &a[0], &a[1]);
        if (!ret->i)
            ret->i = tv_eq(e, &a[0], &a[1]);
        ret->i ^= fn == F_GT;
        return;
    case F_HTML:
    case F_URLQUERY: {
        tv s = n == 1 && a[0].k == TV_STR ? a[0] : (go_sprint(&b, a, n, 0), from_buf(e, &b));
        if (fn == F_URLQUERY) {
            tmpl_query_escape(&b, s.s, s.n);
            break;
        }
        for (size_t k = 0; k < s.n; k++) {
            const char *r = s.s[k] == '<'    ? "&lt;"
                            : s.s[k] == '>'  ? "&gt;"
                            : s.s[k] == '&'  ? "&amp;"
                            : s.s[k] == '\'' ? "&#39;"
                            : s.s[k] == '"'  ? "&#34;"
                            : s.s[k] == 0    ? "\xef\xbf\xbd"
                                             : NULL;
            if (r)
                buf_puts(&b, r);
            else
                buf_putc(&b, s.s[k]);
        }
        break;
    }
    case F_QUERY:
        *ret = do_query(e, &a[0]);
        return;
    case F_FIRST:
        if (a[0].pn == 0)
            FAIL(e, name, "first() called on vector with no elements", name);
        *ret = (tv){.k = TV_SAMPLE, .p = a[0].p};
        return;
    case F_LABEL:
    case F_VALUE:
    case F_STRVALUE:
        if (!a[fn == F_LABEL].p) /* 2.42 dereferences the nil pointer */
            FAIL(e, name, "runtime error: invalid memory address or nil pointer dereference", name);
        break;
    default:
        break;
    }
    switch (fn) {
    case F_LABEL: {
        const char *v = sample_label(a[1].p, a[0].s, a[0].n);
        *ret = tv_str(v, strlen(v));
        return;
    }
    case F_VALUE:
        *ret = (tv){.k = TV_FLOAT, .f = a[0].p ? ((const tmpl_sample *)a[0].p)->value : 0};
        return;
    case F_STRVALUE: {
        const char *v = sample_label(a[0].p, "__value__", 9);
        *ret = tv_str(v, strlen(v));
        return;
    }
    case F_ARGS: {
        tv *c = tmpl_alloc(e, sizeof *c * (size_t)n);
        memcpy(c, a, sizeof *c * (size_t)n);
        *ret = (tv){.k = TV_ARGS, .p = c, .pn = (size_t)n};
        return;
    }
    case F_REREPLACEALL:
        *ret = re_replace_all(e, &a[0], &a[1], &a[2]);
        return;
    case F_MATCH:
        *ret = (tv){.k = TV_BOOL, .i = re_match(e, &a[0], &a[1])};
        return;
    case F_SAFEHTML:
        *ret = a[0];
        return;
    case F_TITLE:
    case F_TOUPPER:
    case F_TOLOWER:
        *ret = map_case(e, &a[0], fn == F_TITLE ? 2 : fn == F_TOUPPER);
        return;
    case F_GRAPHLINK:
    case F_TABLELINK:
        buf_puts(&b, "/graph?g0.expr=");
        tmpl_query_escape(&b, a[0].s, a[0].n);
        buf_puts(&b, fn == F_GRAPHLINK ? "&g0.tab=0" : "&g0.tab=1");
        break;
    case F_SORTBYLABEL: {
        size_t cnt = a[1].pn;
        sort_item *it = tmpl_alloc(e, sizeof *it * cnt);
        tmpl_sample *out = tmpl_alloc(e, sizeof *out * cnt);
        for (size_t k = 0; k < cnt; k++) {
            it[k].s = (const tmpl_sample *)a[1].p + k;
            it[k].key = sample_label(it[k].s, a[0].s, a[0].n);
            it[k].idx = k;
        }
        qsort(it, cnt, sizeof *it, sort_item_cmp);
        for (size_t k = 0; k < cnt; k++)
            out[k] = *it[k].s;
        *ret = (tv){.k = TV_VEC, .p = out, .pn = cnt};
        return;
    }
    case F_HUMANIZE:
    case F_HUMANIZE1024:
        humanize(&b, to_float(e, name, &a[0]), fn == F_HUMANIZE ? 1000 : 1024);
        break;
    case F_HUMANIZEDURATION:
        humanize_duration(&b, to_float(e, name, &a[0]));
        break;
    case F_HUMANIZEPERCENTAGE:
        g4(&b, to_float(e, name, &a[0]) * 100, "%");
        break;
    case F_HUMANIZETIMESTAMP: {
        double v = to_float(e, name, &a[0]);
        if (isnan(v) || isinf(v))
            g4(&b, v, "");
        else
            put_time(&b, to_time(e, name, v));
        break;
    }
    case F_TOTIME:
        *ret = (tv){.k = TV_TIME, .i = to_time(e, name, to_float(e, name, &a[0]))};
        return;
    case F_EXTERNALURL:
    case F_PATHPREFIX: {
        const char *u = e->d->external_url ? e->d->external_url : "";
        if (fn == F_PATHPREFIX) {
            const char *sch = strstr(u, "://");
            const char *p = sch ? strchr(sch + 3, '/') : u;
            u = p ? p : "";
            *ret = tv_str(u, strcspn(u, "?#"));
        } else {
            *ret = tv_str(u, strlen(u));
        }
        return;
    }
    case F_PARSEDURATION: {
        char *s = tmpl_alloc(e, a[0].n + 1);
        memcpy(s, a[0].s, a[0].n);
        s[a[0].n] = 0;
        int64_t ms;
        kiln_err err = {0};
        if (a[0].n == 0)
            FAIL(e, name, "empty duration string", name);
        if (duration_parse(s, &ms, &err) < 0)
            FAIL(e, name, "not a valid duration string: %s", name, quoted(e, a[0].s, a[0].n));
        *ret = (tv){.k = TV_FLOAT, .f = (double)ms / 1000};
        return;
    }
    case F_STRIPPORT: {
        size_t hs, hl, ps;
        *ret = split_host_port(a[0].s, a[0].n, &hs, &hl, &ps) < 0 ? a[0] : tv_str(a[0].s + hs, hl);
        return;
    }
    case F_STRIPDOMAIN:
        *ret = strip_domain(e, &a[0]);
        return;
    }
    *ret = from_buf(e, &b);
}
