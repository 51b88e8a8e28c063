/*
 * labels.c - label sets and matchers (the first two sections of storage.h).
 *
 * A label set is a sorted array of borrowed (name, value) strings; this file
 * hashes, orders, checks, formats and copies them, and builds them.
 * Matchers compile regular expressions with PCRE2, anchored like
 * Prometheus ("^(?s:...)$"), JIT where available; plain literals and
 * alternations of literals are matched without PCRE2.
 *
 * Threading: no shared state; a matcher may be used from many threads at
 * once (match data is allocated per call when PCRE2 runs).
 */
#include "storage/storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

/* ---- label sets --------------------------------------------------------- */

uint64_t labels_hash(const label *ls, size_t n) {
    /* one pass over a contiguous copy is several times faster than
     * streaming four small updates a label */
    char stack[1024];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(ls[i].name), vl = strlen(ls[i].value);
        if (len + nl + vl + 2 > sizeof stack)
            goto stream;
        memcpy(stack + len, ls[i].name, nl);
        len += nl;
        stack[len++] = (char)0xff;
        memcpy(stack + len, ls[i].value, vl);
        len += vl;
        stack[len++] = (char)0xff;
    }
    return XXH3_64bits(stack, len);
stream:;
    XXH3_state_t st;
    static const char sep = (char)0xff;
    XXH3_64bits_reset(&st);
    for (size_t i = 0; i < n; i++) {
        XXH3_64bits_update(&st, ls[i].name, strlen(ls[i].name));
        XXH3_64bits_update(&st, &sep, 1);
        XXH3_64bits_update(&st, ls[i].value, strlen(ls[i].value));
        XXH3_64bits_update(&st, &sep, 1);
    }
    return XXH3_64bits_digest(&st);
}

int labels_cmp(const label *a, size_t na, const label *b, size_t nb) {
    size_t n = na < nb ? na : nb;
    for (size_t i = 0; i < n; i++) {
        int c = strcmp(a[i].name, b[i].name);
        if (c)
            return c;
        if ((c = strcmp(a[i].value, b[i].value)) != 0)
            return c;
    }
    return na < nb ? -1 : na > nb;
}

const char *labels_get(const label *ls, size_t n, const char *name) {
    if (n <= 8) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(ls[i].name, name) == 0)
                return ls[i].value;
        return NULL;
    }
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ls[mid].name, name);
        if (c == 0)
            return ls[mid].value;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void insertion_sort(label *ls, size_t n) {
    for (size_t i = 1; i < n; i++) {
        label x = ls[i];
        size_t j = i;
        while (j > 0 && strcmp(ls[j - 1].name, x.name) > 0) {
            ls[j] = ls[j - 1];
            j--;
        }
        ls[j] = x;
    }
}

static void merge_sort(label *ls, label *tmp, size_t n) {
    if (n <= 16) {
        insertion_sort(ls, n);
        return;
    }
    size_t h = n / 2;
    merge_sort(ls, tmp, h);
    merge_sort(ls + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = strcmp(ls[j].name, ls[i].name) < 0 ? ls[j++] : ls[i++];
    while (i < h)
        tmp[k++] = ls[i++];
    while (j < n)
        tmp[k++] = ls[j++];
    memcpy(ls, tmp, n * sizeof *ls);
}

void labels_sort(label *ls, size_t n) {
    if (n <= 16) {
        insertion_sort(ls, n);
        return;
    }
    label *tmp = malloc(n * sizeof *tmp);
    if (!tmp) {
        insertion_sort(ls, n);
        return;
    }
    merge_sort(ls, tmp, n);
    free(tmp);
}

int labels_check(const label *ls, size_t n, kiln_err *err) {
    if (n > LABELS_MAX_COUNT)
        return kiln_err_set(err, KILN_EINVAL, "too many labels: %zu (at most %d)", n, LABELS_MAX_COUNT);
    for (size_t i = 0; i < n; i++) {
        const char *name = ls[i].name, *value = ls[i].value;
        size_t nl = strlen(name), vl = strlen(value);
        if (nl == 0)
            return kiln_err_set(err, KILN_EINVAL, "empty label name");
        if (nl > LABEL_NAME_MAX_LEN)
            return kiln_err_set(err, KILN_EINVAL, "label name \"%.64s...\" is longer than %d bytes", name,
                                LABEL_NAME_MAX_LEN);
        if (!label_name_valid(name, nl))
            return kiln_err_set(err, KILN_EINVAL, "invalid label name \"%.200s\"", name);
        if (i > 0) {
            int c = strcmp(ls[i - 1].name, name);
            if (c == 0)
                return kiln_err_set(err, KILN_EINVAL, "duplicate label name \"%s\"", name);
            if (c > 0)
                return kiln_err_set(err, KILN_EINVAL, "labels not sorted: \"%s\" before \"%s\"", ls[i - 1].name,
                                    name);
        }
        if (vl == 0)
            return kiln_err_set(err, KILN_EINVAL, "empty value for label \"%s\"", name);
        if (vl > LABEL_VALUE_MAX_LEN)
            return kiln_err_set(err, KILN_EINVAL, "the value of label \"%s\" is longer than %d bytes", name,
                                LABEL_VALUE_MAX_LEN);
        if (!utf8_valid(value, vl))
            return kiln_err_set(err, KILN_EINVAL, "invalid UTF-8 in the value of label \"%s\"", name);
    }
    return 0;
}

/* Go %q-style quoting of s into out. */
static int quote(buf *out, const char *s) {
    int rc = buf_putc(out, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p && rc == 0; p++) {
        switch (*p) {
        case '"': rc = buf_puts(out, "\\\""); break;
        case '\\': rc = buf_puts(out, "\\\\"); break;
        case '\n': rc = buf_puts(out, "\\n"); break;
        case '\t': rc = buf_puts(out, "\\t"); break;
        case '\r': rc = buf_puts(out, "\\r"); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                rc = buf_printf(out, "\\x%02x", *p);
            else
                rc = buf_putc(out, (char)*p);
        }
    }
    return rc ? rc : buf_putc(out, '"');
}

int labels_format(buf *out, const label *ls, size_t n) {
    int rc = buf_putc(out, '{');
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i)
            rc = buf_puts(out, ", ");
        if (rc == 0)
            rc = buf_puts(out, ls[i].name);
        if (rc == 0)
            rc = buf_putc(out, '=');
        if (rc == 0)
            rc = quote(out, ls[i].value);
    }
    return rc ? rc : buf_putc(out, '}');
}

label *labels_copy(arena *a, const label *ls, size_t n) {
    label *r = arena_alloc(a, (n ? n : 1) * sizeof *r);
    if (!r)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        r[i].name = arena_strndup(a, ls[i].name, strlen(ls[i].name));
        r[i].value = arena_strndup(a, ls[i].value, strlen(ls[i].value));
        if (!r[i].name || !r[i].value)
            return NULL;
    }
    return r;
}

/* ---- builder -------------------------------------------------------------- */

void lb_init(labels_builder *b) { memset(b, 0, sizeof *b); }

void lb_reset(labels_builder *b) { b->n = 0; }

void lb_free(labels_builder *b) {
    free(b->v);
    lb_init(b);
}

void lb_del(labels_builder *b, const char *name) {
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->v[i].name, name) == 0) {
            memmove(b->v + i, b->v + i + 1, (b->n - i - 1) * sizeof *b->v);
            b->n--;
            return;
        }
}

int lb_set(labels_builder *b, const char *name, const char *value) {
    if (!value || !*value) {
        lb_del(b, name);
        return 0;
    }
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->v[i].name, name) == 0) {
            b->v[i].value = value;
            return 0;
        }
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 16;
        label *nv = realloc(b->v, nc * sizeof *nv);
        if (!nv)
            return KILN_ENOMEM;
        b->v = nv;
        b->cap = nc;
    }
    b->v[b->n++] = (label){name, value};
    return 0;
}

int lb_from(labels_builder *b, const label *ls, size_t n) {
    b->n = 0;
    if (n > b->cap) {
        label *nv = realloc(b->v, n * sizeof *nv);
        if (!nv)
            return KILN_ENOMEM;
        b->v = nv;
        b->cap = n;
    }
    if (n)
        memcpy(b->v, ls, n * sizeof *ls);
    b->n = n;
    return 0;
}

const label *lb_labels(labels_builder *b, size_t *n) {
    labels_sort(b->v, b->n);
    *n = b->n;
    return b->v;
}

/* ---- matchers ---------------------------------------------------------------- */

/* Private state behind matcher.re. */
typedef struct mre {
    pcre2_code *code;
    int kind; /* RE_PCRE, RE_ANY (".*"), RE_NONEMPTY (".+"), RE_LITERALS */
    char **lits;
    size_t nlits;
} mre;

enum { RE_PCRE, RE_ANY, RE_NONEMPTY, RE_LITERALS };

/* Whether c is a regex metacharacter. */
static int is_meta(char c) { return strchr("\\^$.|?*+()[]{}", c) != NULL; }

/* A regex made of plain literals separated by '|' becomes a list. */
static int literal_alternation(const char *re, mre *m) {
    size_t n = 1;
    for (const char *p = re; *p; p++) {
        if (*p == '|')
            n++;
        else if (is_meta(*p))
            return 0;
    }
    if (!(m->lits = calloc(n, sizeof *m->lits)))
        return -1;
    const char *start = re;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(start, '|');
        size_t len = end ? (size_t)(end - start) : strlen(start);
        if (!(m->lits[i] = strndup(start, len)))
            return -1;
        m->nlits++;
        start = end ? end + 1 : start + len;
    }
    m->kind = RE_LITERALS;
    return 1;
}

static void mre_free(mre *m) {
    if (!m)
        return;
    if (m->code)
        pcre2_code_free(m->code);
    for (size_t i = 0; i < m->nlits; i++)
        free(m->lits[i]);
    free(m->lits);
    free(m);
}

int matcher_init(matcher *m, match_type type, const char *name, const char *value, kiln_err *err) {
    memset(m, 0, sizeof *m);
    m->type = type;
    if (!(m->name = strdup(name)) || !(m->value = strdup(value)))
        goto nomem;
    if (type != MATCH_RE && type != MATCH_NRE)
        return 0;
    mre *r = calloc(1, sizeof *r);
    if (!r)
        goto nomem;
    m->re = r;
    if (strcmp(value, ".*") == 0) {
        r->kind = RE_ANY;
        return 0;
    }
    if (strcmp(value, ".+") == 0) {
        r->kind = RE_NONEMPTY;
        return 0;
    }
    int lit = literal_alternation(value, r);
    if (lit < 0)
        goto nomem;
    if (lit > 0)
        return 0;
    size_t vl = strlen(value);
    char *pat = malloc(vl + 16);
    if (!pat)
        goto nomem;
    snprintf(pat, vl + 16, "^(?s:%s)$", value);
    int ecode;
    PCRE2_SIZE eoff;
    r->code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ecode, &eoff, NULL);
    free(pat);
    if (!r->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ecode, msg, sizeof msg);
        long off = (long)eoff - 5; /* offset in the user's text, not the anchored pattern */
        kiln_err_set(err, KILN_EINVAL, "invalid regular expression \"%s\": %s at offset %ld", value, (char *)msg,
                     off < 0 ? 0 : off);
        matcher_free(m);
        return KILN_EINVAL;
    }
    pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE); /* without JIT it still works, slower */
    return 0;
nomem:
    matcher_free(m);
    return kiln_err_set(err, KILN_ENOMEM, "out of memory building a matcher");
}

void matcher_free(matcher *m) {
    if (!m)
        return;
    free(m->name);
    free(m->value);
    mre_free(m->re);
    m->name = m->value = NULL;
    m->re = NULL;
}

static int re_match(const mre *r, const char *v) {
    switch (r->kind) {
    case RE_ANY: return 1;
    case RE_NONEMPTY: return *v != 0;
    case RE_LITERALS:
        for (size_t i = 0; i < r->nlits; i++)
            if (strcmp(r->lits[i], v) == 0)
                return 1;
        return 0;
    default: break;
    }
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md)
        return 0;
    int rc = pcre2_match(r->code, (PCRE2_SPTR)v, strlen(v), 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

int matcher_matches(const matcher *m, const char *value) {
    if (!value)
        value = "";
    switch (m->type) {
    case MATCH_EQ: return strcmp(m->value, value) == 0;
    case MATCH_NEQ: return strcmp(m->value, value) != 0;
    case MATCH_RE: return re_match(m->re, value);
    case MATCH_NRE: return !re_match(m->re, value);
    }
    return 0;
}

int matcher_matches_empty(const matcher *m) { return matcher_matches(m, ""); }

const char *match_type_str(match_type t) {
    switch (t) {
    case MATCH_EQ: return "=";
    case MATCH_NEQ: return "!=";
    case MATCH_RE: return "=~";
    case MATCH_NRE: return "!~";
    }
    return "?";
}
