/*
 * labels.c - label sets and matchers (the "labels" and "matchers" sections
 * of storage.h).
 *
 * A label set is a sorted array of borrowed (name, value) strings; this file
 * hashes, orders, checks, formats and copies them, and builds them.  Every
 * subsystem that handles series calls it: the head and the querier, blocks,
 * the scrape loop and relabeling, remote write, the query engine.
 *
 * Matchers.  A regex matcher must match the whole value like Prometheus'
 * "^(?s:...)$" with Go's `$` (end of text only).  PCRE2 gets the user's
 * pattern untouched with ANCHORED | ENDANCHORED | DOTALL | DOLLAR_ENDONLY:
 * that is the same language, but a pattern such as "a)(" cannot close our
 * wrapper group and slip through, `$` does not match before a final newline,
 * and error offsets are offsets in the user's text.  Patterns of a simple
 * shape never reach PCRE2 (most selectors are like these):
 *
 *   shape              example       matched by
 *   ".*"               .*            anything
 *   ".+"               .+            any non-empty value
 *   lit                foo, a\.b     strcmp
 *   lit|lit|...        a|b|(a|b)     strcmp against each
 *   lit.*              foo.*         prefix
 *   .*lit              .*foo         suffix
 *   .*lit.*            .*foo.*       strstr
 *
 * where lit is plain characters and backslash-escaped ASCII punctuation,
 * optionally in one "(...)" or "(?:...)" group around the whole pattern.
 * A long alternation of literals is sorted once and binary-searched.
 *
 * Errors and guards.  matcher_match says 1, 0, or an error: a regex that
 * hits one of PCRE2's limits (set below) is KILN_ELIMIT naming the regex,
 * never a silent "no match".  A select passes a match_guard, which it
 * charges a unit a literal comparison and MATCH_GUARD_PCRE_COST a PCRE2
 * match, and which checks the query's deadline and cancellation every
 * MATCH_GUARD_EVERY units: a slow regex over thousands of label values
 * stops at the timeout.  The literal paths cost one add and compare more.
 *
 * Threading: a matcher may be used from many threads at once.  pcre2_match
 * needs scratch match data; each thread keeps one (a _Thread_local pointer,
 * freed at thread exit by a pthread key destructor).  That key is the only
 * process-wide state here, created once with pthread_once.
 */
#include "storage/storage.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

/* ---- label sets --------------------------------------------------------- */

uint64_t labels_hash(const label *ls, size_t n) {
    /* One call over a contiguous copy costs much less than four small
     * streaming updates a label; both give the same hash. */
    char stack[1024];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(ls[i].name), vl = strlen(ls[i].value);
        if (nl + vl + 2 > sizeof stack - len)
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
    /* the same pointer is the same string: the head's labels are interned,
     * so sorting its series compares most names and many values that way */
    for (size_t i = 0; i < n; i++) {
        int c;
        if (a[i].name != b[i].name && (c = strcmp(a[i].name, b[i].name)) != 0)
            return c;
        /* a NUL (C0 80 inside kiln) sorts first, as in Prometheus */
        if (a[i].value != b[i].value && (c = str_nulcmp(a[i].value, b[i].value)) != 0)
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

/* Sorts ls[0..n) using tmp[0..n); takes from the right run only when strictly
 * smaller, which keeps equal names in their order. */
static void merge_sort(label *ls, label *tmp, size_t n) {
    if (n <= 16) {
        insertion_sort(ls, n);
        return;
    }
    size_t h = n / 2;
    merge_sort(ls, tmp, h);
    merge_sort(ls + h, tmp, n - h);
    if (strcmp(ls[h - 1].name, ls[h].name) <= 0)
        return; /* already in order: the common case for nearly sorted input */
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
        insertion_sort(ls, n); /* slower, but sorting cannot fail */
        return;
    }
    merge_sort(ls, tmp, n);
    free(tmp);
}

/*
 * Writes s quoted for an error message into dst (of size cap >= 16):
 * `"` and `\` escaped, control bytes and (when s is not UTF-8) bytes >= 0x80
 * as \xNN, cut with "..." when long.
 */
static const char *msg_quote(char *dst, size_t cap, const char *s) {
    size_t sl = strlen(s), k = 0;
    int utf8 = utf8_valid(s, sl);
    dst[k++] = '"';
    for (size_t i = 0; i < sl; i++) {
        unsigned char c = (unsigned char)s[i];
        if (k + 8 >= cap) {
            memcpy(dst + k, "...", 3);
            k += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            dst[k++] = '\\';
            dst[k++] = (char)c;
        } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) {
            k += (size_t)snprintf(dst + k, cap - k, "\\x%02x", c);
        } else {
            dst[k++] = (char)c;
        }
    }
    dst[k++] = '"';
    dst[k] = 0;
    return dst;
}

int labels_check(const label *ls, size_t n, kiln_err *err) {
    char q[160];
    if (n > LABELS_MAX_COUNT)
        return kiln_err_set(err, KILN_EINVAL, "too many labels: %zu (at most %d)", n, LABELS_MAX_COUNT);
    for (size_t i = 0; i < n; i++) {
        const char *name = ls[i].name ? ls[i].name : "";
        const char *value = ls[i].value ? ls[i].value : "";
        size_t nl = strlen(name), vl = strlen(value);
        if (nl == 0)
            return kiln_err_set(err, KILN_EINVAL, "empty label name");
        if (nl > LABEL_NAME_MAX_LEN)
            return kiln_err_set(err, KILN_EINVAL, "label name %s is longer than %d bytes",
                                msg_quote(q, 80, name), LABEL_NAME_MAX_LEN);
        if (!label_name_valid(name, nl))
            return kiln_err_set(err, KILN_EINVAL, "invalid label name %s", msg_quote(q, sizeof q, name));
        if (i > 0) {
            int c = strcmp(ls[i - 1].name, name);
            if (c == 0)
                return kiln_err_set(err, KILN_EINVAL, "duplicate label name \"%s\"", name);
            if (c > 0)
                return kiln_err_set(err, KILN_EINVAL, "labels not sorted: \"%s\" before \"%s\"",
                                    ls[i - 1].name, name);
        }
        if (vl == 0)
            return kiln_err_set(err, KILN_EINVAL, "empty value for label \"%s\"", name);
        if (vl > LABEL_VALUE_MAX_LEN)
            return kiln_err_set(err, KILN_EINVAL, "the value of label \"%s\" is longer than %d bytes", name,
                                LABEL_VALUE_MAX_LEN);
        if (!utf8_valid_nul(value, vl)) /* C0 80 is kiln's NUL (util/strnul.c) */
            return kiln_err_set(err, KILN_EINVAL, "invalid UTF-8 in the value of label \"%s\"", name);
    }
    return 0;
}

/* Go %q (strconv.Quote) of s into out. */
static int quote(buf *out, const char *s) {
    go_quote(out, s, strlen(s), '"');
    return buf_error(out);
}

int labels_format(buf *out, const label *ls, size_t n) {
    int rc = buf_putc(out, '{');
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i)
            rc = buf_puts(out, ", ");
        if (rc == 0) {
            /* like Prometheus, only names outside the legacy charset are quoted */
            const char *name = ls[i].name;
            rc = label_name_valid(name, strlen(name)) ? buf_puts(out, name) : quote(out, name);
        }
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

/* ---- builder ------------------------------------------------------------ */

void lb_init(labels_builder *b) {
    memset(b, 0, sizeof *b);
}

void lb_reset(labels_builder *b) {
    b->n = 0;
}

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
    if (array_grow((void **)&b->v, &b->cap, b->n + 1, sizeof *b->v))
        return KILN_ENOMEM;
    b->v[b->n++] = (label){name, value};
    return 0;
}

int lb_from(labels_builder *b, const label *ls, size_t n) {
    if (ls == b->v) {
        /* starting from our own lb_labels(): nothing to copy */
        b->n = n <= b->n ? n : b->n;
        return 0;
    }
    b->n = 0;
    if (array_grow((void **)&b->v, &b->cap, n, sizeof *b->v))
        return KILN_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (ls[i].value && ls[i].value[0]) /* an empty value means no such label */
            b->v[b->n++] = ls[i];
    return 0;
}

const label *lb_labels(labels_builder *b, size_t *n) {
    labels_sort(b->v, b->n);
    *n = b->n;
    return b->v;
}

/* ---- matchers ----------------------------------------------------------- */

enum { RE_PCRE, RE_ANY, RE_NONEMPTY, RE_SET, RE_PREFIX, RE_SUFFIX, RE_CONTAINS };

typedef struct re_lit {
    const char *s; /* into mre.pool */
    size_t n;
} re_lit;

/* Private state behind matcher.re. */
typedef struct mre {
    int kind;
    pcre2_code *code; /* RE_PCRE */
    re_lit *lits;     /* RE_SET: the alternatives; PREFIX/SUFFIX/CONTAINS: lits[0] */
    size_t nlits;
    int sorted;    /* RE_SET of many: lits sorted, found by binary search */
    unsigned cost; /* of one match in match_guard units */
    char *pool;    /* the unescaped literals, NUL-terminated */
} mre;

static void mre_free(mre *r) {
    if (!r)
        return;
    if (r->code)
        pcre2_code_free(r->code);
    free(r->lits);
    free(r->pool);
    free(r);
}

/*
 * Recognises the simple shapes of the table at the top.  Returns 1 and fills
 * r when re[0..len) is one, 0 when PCRE2 must handle it, KILN_ENOMEM.  re is
 * valid UTF-8, so bytes >= 0x80 are parts of literal characters.
 */
static int simple_shape(const char *re, size_t len, mre *r) {
    const char *p = re, *e = re + len;
    if (len >= 2 && p[0] == '(' && e[-1] == ')') {
        const char *ip = p + 1, *ie = e - 1;
        if (ie - ip >= 2 && ip[0] == '?' && ip[1] == ':')
            ip += 2;
        if (!memchr(ip, '(', (size_t)(ie - ip)) && !memchr(ip, ')', (size_t)(ie - ip)))
            p = ip, e = ie; /* one group around everything: drop it */
    }
    if (e - p == 2 && p[0] == '.' && (p[1] == '*' || p[1] == '+')) {
        r->kind = p[1] == '*' ? RE_ANY : RE_NONEMPTY;
        return 1;
    }

    size_t nalts = 1;
    for (const char *q = p; q < e; q++) {
        if (*q == '\\' && q + 1 < e)
            q++;
        else if (*q == '|')
            nalts++;
    }
    if (!(r->pool = malloc((size_t)(e - p) + nalts)) || !(r->lits = calloc(nalts, sizeof *r->lits)))
        return KILN_ENOMEM;

    char *out = r->pool;
    int lead = 0, trail = 0;
    const char *q = p;
    for (size_t a = 0; a < nalts; a++) {
        re_lit *l = &r->lits[a];
        l->s = out;
        if (e - q >= 2 && q[0] == '.' && q[1] == '*') {
            lead = 1;
            q += 2;
        }
        while (q < e && *q != '|') {
            unsigned char c = (unsigned char)*q;
            if (c == '.' && q + 1 < e && q[1] == '*' && (q + 2 == e || q[2] == '|')) {
                trail = 1;
                q += 2;
                break;
            }
            if (c == '\\') {
                /* a backslash before ASCII punctuation makes it literal;
                 * anything else (\d, \b, \Q, ...) is for PCRE2 */
                unsigned char d = q + 1 < e ? (unsigned char)q[1] : 0;
                if (d < 0x21 || d > 0x7e || (d >= '0' && d <= '9') || (d >= 'a' && d <= 'z') ||
                    (d >= 'A' && d <= 'Z'))
                    return 0;
                *out++ = (char)d;
                q += 2;
                continue;
            }
            if (strchr("^$.?*+()[]{}", c) || c == 0)
                return 0;
            *out++ = (char)c;
            q++;
        }
        l->n = (size_t)(out - l->s);
        *out++ = 0;
        if (q < e && *q == '|')
            q++;
    }
    r->nlits = nalts;
    if (nalts > 1) {
        if (lead || trail)
            return 0;
        r->kind = RE_SET;
    } else if (lead && trail) {
        r->kind = r->lits[0].n ? RE_CONTAINS : RE_ANY;
    } else if (lead) {
        r->kind = RE_SUFFIX;
    } else if (trail) {
        r->kind = RE_PREFIX;
    } else {
        r->kind = RE_SET;
    }
    return 1;
}

/* Alternations of at least this many literals are searched in a sorted
 * array: below it, comparing each in turn is as fast. */
#define RE_SET_SORT_MIN 16

static int set_cmp(const void *a, const void *b) {
    return strcmp(((const re_lit *)a)->s, ((const re_lit *)b)->s);
}

int matcher_init(matcher *m, match_type type, const char *name, const char *value, kiln_err *err) {
    memset(m, 0, sizeof *m);
    m->type = type;
    if (type != MATCH_EQ && type != MATCH_NEQ && type != MATCH_RE && type != MATCH_NRE)
        return kiln_err_set(err, KILN_EINVAL, "unknown match type %d", (int)type);
    if (!(m->name = strdup(name)) || !(m->value = strdup(value)))
        goto nomem;
    if (type != MATCH_RE && type != MATCH_NRE)
        return 0;
    mre *r = calloc(1, sizeof *r);
    if (!r)
        goto nomem;
    m->re = r;
    size_t vl = strlen(value);
    if (utf8_valid(value, vl)) {
        int rc = simple_shape(value, vl, r);
        if (rc < 0)
            goto nomem;
        if (rc > 0 && r->kind == RE_SET && r->nlits >= RE_SET_SORT_MIN) {
            qsort(r->lits, r->nlits, sizeof *r->lits, set_cmp);
            r->sorted = 1;
        }
        /* a comparison each, or a few for a short unsorted set */
        r->cost = 1 + (r->kind == RE_SET && !r->sorted ? (unsigned)r->nlits / 4 : 0);
        if (rc > 0)
            return 0;
        free(r->lits);
        free(r->pool);
        r->lits = NULL;
        r->pool = NULL;
        r->nlits = 0;
    }
    r->kind = RE_PCRE;
    r->cost = MATCH_GUARD_PCRE_COST;
    int ecode = 0;
    PCRE2_SIZE eoff = 0;
    char *raw = nul_out_len(value, vl) < vl ? malloc(vl) : NULL; /* kiln's NUL as a NUL (strnul.c) */
    r->code = pcre2_compile((PCRE2_SPTR)(raw ? raw : value), raw ? nul_out(raw, value, vl) : vl,
                            PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_DOTALL |
                                PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C,
                            &ecode, &eoff, NULL);
    free(raw);
    if (!r->code) {
        if (ecode == PCRE2_ERROR_NOMEMORY || ecode == PCRE2_ERROR_HEAP_FAILED)
            goto nomem;
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(ecode, msg, sizeof msg) < 0)
            snprintf((char *)msg, sizeof msg, "error %d", ecode);
        char q[200];
        kiln_err_set(err, KILN_EINVAL, "invalid regular expression %s: %s at offset %zu",
                     msg_quote(q, sizeof q, value), (char *)msg, (size_t)eoff);
        matcher_free(m);
        return KILN_EINVAL;
    }
    (void)pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE); /* without JIT it still works, slower */
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

/*
 * PCRE2's limits, set explicitly so that no build's defaults decide: a
 * regex with nested repetition ((a+)+b) can backtrack for years on a value
 * of forty characters.  The match limit bounds the steps of one match
 * (about 25 ms of JIT at 10 million, PCRE2's own default); the depth and
 * heap limits bound the interpreter's backtracking frames, which a match
 * that outgrows JIT's stack falls back to (a million frames deep, 64 MiB).
 * A regex any selector needs on values up to LABEL_VALUE_MAX_LEN stays far
 * below them.  A limit hit is an error naming the regex, never a non-match.
 */
#define MATCHER_MATCH_LIMIT 10000000u
#define MATCHER_DEPTH_LIMIT 1000000u
#define MATCHER_HEAP_LIMIT_KIB (64u * 1024)

/* Per-thread match data: created on a thread's first PCRE2 match, freed by
 * the key's destructor when the thread exits. */
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static pthread_key_t md_key;
static int md_key_ok;
static _Thread_local pcre2_match_data *md_cache;
/* The limits every match runs under (see the top), shared by all threads:
 * pcre2_match only reads a match context. */
static pcre2_match_context *mctx;

static void md_destroy(void *p) {
    pcre2_match_data_free(p);
    md_cache = NULL;
}

static void md_key_init(void) {
    md_key_ok = pthread_key_create(&md_key, md_destroy) == 0;
    if ((mctx = pcre2_match_context_create(NULL)) != NULL) {
        pcre2_set_match_limit(mctx, MATCHER_MATCH_LIMIT);
        pcre2_set_depth_limit(mctx, MATCHER_DEPTH_LIMIT);
        pcre2_set_heap_limit(mctx, MATCHER_HEAP_LIMIT_KIB);
    }
}

/* The shared match context; NULL when it could not be made (out of memory
 * at the first match: the caller fails). */
static pcre2_match_context *mctx_get(void) {
    pthread_once(&md_once, md_key_init);
    return mctx;
}

/* The thread's match data, or NULL (then the caller makes its own). */
static pcre2_match_data *md_get(void) {
    if (md_cache)
        return md_cache;
    pthread_once(&md_once, md_key_init);
    if (!md_key_ok)
        return NULL;
    /* one pair is enough: we want "matched", not the groups (a match with
     * more groups returns 0, which is still a match) */
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md)
        return NULL;
    if (pthread_setspecific(md_key, md) != 0) {
        pcre2_match_data_free(md);
        return NULL;
    }
    md_cache = md;
    return md;
}

/* A match in the interpreter, which keeps its backtracking frames on the
 * heap under the depth and heap limits, after JIT's stack proved too small
 * (a deeply nested match).  md NULL: match data of its own, freed, so that
 * a big frame vector is not kept by the thread. */
static int pcre_nojit(const pcre2_code *code, const char *v, size_t len, pcre2_match_data *md) {
    pcre2_match_context *mc = mctx_get();
    pcre2_match_data *own = md ? md : pcre2_match_data_create(1, NULL);
    int rc =
        mc && own ? pcre2_match(code, (PCRE2_SPTR)v, len, 0, PCRE2_NO_JIT, own, mc) : PCRE2_ERROR_NOMEMORY;
    if (!md)
        pcre2_match_data_free(own);
    return rc;
}

/* pcre2_match's result as 1 (match), 0 (none), or an error naming the
 * regex: a limit is KILN_ELIMIT.  Other failures (a value that is not
 * UTF-8) are no match, as they always were. */
static int pcre_result(int rc, const char *re, const char *name, const char *v, kiln_err *err) {
    if (rc >= 0)
        return rc > 0 ? rc : 1;
    const char *what;
    switch (rc) {
    case PCRE2_ERROR_MATCHLIMIT:
        what = "match limit";
        break;
    case PCRE2_ERROR_DEPTHLIMIT:
        what = "depth limit";
        break;
    case PCRE2_ERROR_HEAPLIMIT:
        what = "heap limit";
        break;
    case PCRE2_ERROR_JIT_STACKLIMIT:
        what = "JIT stack limit";
        break;
    case PCRE2_ERROR_NOMEMORY:
        return kiln_err_set(err, KILN_ENOMEM, "out of memory matching a regular expression");
    default:
        return 0;
    }
    char qre[160], qv[64];
    return kiln_err_set(err, KILN_ELIMIT,
                        "regular expression %s on label \"%s\" exceeded PCRE2's %s on the value %s: "
                        "it backtracks too much; rewrite it (nested repetition such as (a+)+ is the usual "
                        "cause)",
                        msg_quote(qre, sizeof qre, re), name, what, msg_quote(qv, sizeof qv, v));
}

int matcher_pcre2_match(const void *code, const char *re, const char *name, const char *v, void *md,
                        kiln_err *err) {
    pcre2_match_context *mc = mctx_get();
    size_t len = strlen(v);
    int rc = mc ? pcre2_match(code, (PCRE2_SPTR)v, len, 0, 0, md, mc) : PCRE2_ERROR_NOMEMORY;
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre_nojit(code, v, len, md);
    return pcre_result(rc, re, name, v, err);
}

/* pcre_match of a value that may hold kiln's NUL (C0 80, util/strnul.c):
 * matched with the NUL bytes, as the pattern was compiled. */
static int pcre_match_nul(const matcher *m, const pcre2_code *code, const char *v, size_t len,
                          kiln_err *err) {
    char small[256], *raw = len < sizeof small ? small : malloc(len + 1);
    if (!raw)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory matching a regular expression");
    size_t n = nul_out(raw, v, len);
    pcre2_match_context *mc = mctx_get();
    pcre2_match_data *md = md_get();
    int rc = mc && md ? pcre2_match(code, (PCRE2_SPTR)raw, n, 0, 0, md, mc) : PCRE2_ERROR_JIT_STACKLIMIT;
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre_nojit(code, raw, n, NULL);
    if (raw != small)
        free(raw);
    rc = pcre_result(rc, m->value, m->name, v, err);
    return rc > 0 ? 1 : rc;
}

/* 1, 0, or < 0 with err set (a PCRE2 limit or out of memory). */
static int pcre_match(const matcher *m, const pcre2_code *code, const char *v, kiln_err *err) {
    size_t len = strlen(v);
    if (memchr(v, 0xc0, len))
        return pcre_match_nul(m, code, v, len, err);
    pcre2_match_data *md = md_get();
    int rc = PCRE2_ERROR_JIT_STACKLIMIT; /* without the thread's match data: the interpreter */
    /* md_get made the context before the match data (its once), so this
     * thread sees mctx set: the usual path reads it without the once */
    if (md && mctx) {
        rc = pcre2_match(code, (PCRE2_SPTR)v, len, 0, 0, md, mctx);
        if (rc >= 0)
            return 1;
        if (rc == PCRE2_ERROR_NOMATCH)
            return 0;
    }
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre_nojit(code, v, len, NULL);
    rc = pcre_result(rc, m->value, m->name, v, err);
    return rc > 0 ? 1 : rc;
}

/* Inlined into both entry points below: the bool one then carries no
 * guard or error code at all. */
#define MATCH_INLINE static inline __attribute__((always_inline))

MATCH_INLINE int re_match(const matcher *m, const mre *r, const char *v, kiln_err *err) {
    switch (r->kind) {
    case RE_ANY:
        return 1;
    case RE_NONEMPTY:
        return *v != 0;
    case RE_SET:
        if (r->sorted) {
            re_lit key = {v, 0};
            return bsearch(&key, r->lits, r->nlits, sizeof *r->lits, set_cmp) != NULL;
        }
        for (size_t i = 0; i < r->nlits; i++)
            if (strcmp(r->lits[i].s, v) == 0)
                return 1;
        return 0;
    case RE_PREFIX:
        return strncmp(v, r->lits[0].s, r->lits[0].n) == 0;
    case RE_SUFFIX: {
        size_t vl = strlen(v);
        return vl >= r->lits[0].n && memcmp(v + vl - r->lits[0].n, r->lits[0].s, r->lits[0].n) == 0;
    }
    case RE_CONTAINS:
        return strstr(v, r->lits[0].s) != NULL;
    default:
        return pcre_match(m, r->code, v, err);
    }
}

int match_guard_check(match_guard *g, kiln_err *err) {
    g->work = 0;
    if (g->cancel && g->cancel(g->cancel_data))
        return kiln_err_set(err, KILN_ECANCELED, "canceled while matching label values");
    if (g->deadline > 0 && time_mono_sec() > g->deadline)
        return kiln_err_set(err, KILN_ETIMEOUT, "timed out while matching label values");
    return 0;
}

MATCH_INLINE int match_core(const matcher *m, const char *value, match_guard *g, kiln_err *err) {
    if (!value)
        value = "";
    int rc;
    switch (m->type) {
    case MATCH_EQ:
        rc = strcmp(m->value, value) == 0;
        break;
    case MATCH_NEQ:
        rc = strcmp(m->value, value) != 0;
        break;
    case MATCH_RE:
    case MATCH_NRE:
        if (g && (rc = match_guard_tick(g, ((const mre *)m->re)->cost, err)) < 0)
            return rc;
        rc = re_match(m, m->re, value, err);
        if (rc < 0)
            return rc;
        return m->type == MATCH_RE ? rc : !rc;
    default:
        return 0;
    }
    if (g) {
        int e = match_guard_tick(g, 1, err);
        if (e < 0)
            return e;
    }
    return rc;
}

int matcher_match(const matcher *m, const char *value, match_guard *g, kiln_err *err) {
    return match_core(m, value, g, err);
}

int matcher_matches(const matcher *m, const char *value) {
    return match_core(m, value, NULL, NULL) > 0;
}

int matcher_matches_empty(const matcher *m) {
    return matcher_matches(m, "");
}

const char *match_type_str(match_type t) {
    static const char *const ops[] = {
        [MATCH_EQ] = "=", [MATCH_NEQ] = "!=", [MATCH_RE] = "=~", [MATCH_NRE] = "!~"};
    return (unsigned)t < sizeof ops / sizeof *ops ? ops[t] : "?";
}

int labels_json(buf *b, const label *ls, size_t n) {
    buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        json_str(b, ls[i].name);
        buf_putc(b, ':');
        json_str(b, ls[i].value);
    }
    return buf_putc(b, '}');
}
