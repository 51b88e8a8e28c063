/*
 * relabel.c - relabel steps (see relabel.h), following Prometheus 2.42's
 * relabel.Process one step at a time:
 *
 *   action       reads                     does
 *   ----------   -----------------------   -------------------------------------
 *   replace      the joined value          on a match: Expand(target_label) =
 *                                          Expand(replacement); an invalid
 *                                          expanded name or an empty value
 *                                          deletes target_label (unexpanded)
 *   keep, drop   the joined value          drops the set unless / when the
 *                                          regex matches
 *   keepequal,   the joined value and      drops the set unless / when they
 *   dropequal    target_label's value      are equal
 *   hashmod      the joined value          target = sum64(MD5(value)) % modulus
 *   labelmap     every label name          a matching name's value is copied to
 *                                          the label named Expand(replacement)
 *   labeldrop    every label name          matching labels deleted
 *   labelkeep    every label name          labels that do not match deleted
 *   lowercase,   the joined value          target = Go's strings.ToLower /
 *   uppercase                              strings.ToUpper of it
 *
 * The joined value is the source labels' values joined by the separator (a
 * missing label is "").  Regexes are anchored at both ends; the config
 * loader compiles them so.  Setting a label to "" deletes it.  The
 * label-name actions go over the labels as they were before the step.
 *
 * Templates are expanded as Go's Regexp.Expand does: "$$" is "$"; "$name"
 * and "${name}" are a group, by number when the name is all digits without
 * a leading zero, otherwise by name; a name is the longest run of letters,
 * digits and "_" (so "$1x" is the group named "1x", which does not exist:
 * ""); a group that does not exist or did not take part is ""; a "$" not
 * followed by a name (or "${" without its "}") is literal.
 *
 * Go's regexp sees each byte of invalid UTF-8 as U+FFFD, where PCRE2 in UTF
 * mode refuses such a subject; it is then matched as a copy with those bytes
 * replaced by U+FFFD, so whether it matches is Go's answer (groups then hold
 * U+FFFD rather than the raw byte; Prometheus rejects such a value after
 * relabeling anyway).  Case mapping and non-ASCII letters in template names
 * use the C.UTF-8 locale's tables (Unicode simple case mapping, as Go's
 * unicode package); if that locale is missing only ASCII is mapped.
 *
 * Threading: any thread.  Process-wide state: the C.UTF-8 locale handle and
 * the pthread key of the per-thread PCRE2 match data, each created once.
 */
#include "scrape/relabel.h"

#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

/* ---- MD5 (RFC 1321), for hashmod ---------------------------------------- */

static uint32_t rol(uint32_t x, int c) {
    return (x << c) | (x >> (32 - c));
}

static void md5_block(uint32_t h[4], const uint8_t *p) {
    static const uint32_t K[64] = {
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
        0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
        0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
        0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
        0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
        0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
        0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};
    static const int R[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                              5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                              4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                              6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
               (uint32_t)p[4 * i + 3] << 24;
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16) {
            f = (b & c) | (~b & d);
            g = i;
        } else if (i < 32) {
            f = (d & b) | (~d & c);
            g = (5 * i + 1) % 16;
        } else if (i < 48) {
            f = b ^ c ^ d;
            g = (3 * i + 5) % 16;
        } else {
            f = c ^ (b | ~d);
            g = (7 * i) % 16;
        }
        uint32_t tmp = d;
        d = c;
        c = b;
        b = b + rol(a + f + K[i] + w[g], R[i]);
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
}

uint64_t relabel_md5_sum64(const char *s, size_t n) {
    uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    const uint8_t *p = (const uint8_t *)s;
    size_t left = n;
    for (; left >= 64; left -= 64, p += 64)
        md5_block(h, p);
    uint8_t tail[128] = {0};
    memcpy(tail, p, left);
    tail[left] = 0x80;
    size_t tl = left + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++)
        tail[tl - 8 + (size_t)i] = (uint8_t)(bits >> (8 * i));
    md5_block(h, tail);
    if (tl == 128)
        md5_block(h, tail + 64);
    uint8_t dig[16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            dig[4 * i + j] = (uint8_t)(h[i] >> (8 * j));
    uint64_t r = 0;
    for (int i = 8; i < 16; i++)
        r = r << 8 | dig[i];
    return r;
}

/* ---- UTF-8 and case ------------------------------------------------------- */

/*
 * Decodes the rune at s as Go's utf8.DecodeRuneInString does: the rune, with
 * its width in *w, or -1 with *w = 1 when s does not start a valid sequence
 * (overlong forms, surrogates and values past U+10FFFF are invalid).  s is
 * NUL-terminated: a NUL is never a continuation byte, so it stops the scan.
 */
static long utf8_rune(const char *s, size_t *w) {
    const unsigned char *p = (const unsigned char *)s;
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    size_t more;
    long r;
    *w = 1;
    if (c < 0x80)
        return (long)c;
    if (c >= 0xC2 && c <= 0xDF) {
        more = 1;
        r = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        more = 2;
        r = c & 0x0F;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* no overlong forms */
        hi = c == 0xED ? 0x9F : 0xBF; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        more = 3;
        r = c & 0x07;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF; /* at most U+10FFFF */
    } else {
        return -1;
    }
    for (size_t i = 1; i <= more; i++) {
        unsigned x = p[i];
        if (x < (i == 1 ? lo : 0x80) || x > (i == 1 ? hi : 0xBF))
            return -1;
        r = r << 6 | (long)(x & 0x3F);
    }
    *w = more + 1;
    return r;
}

/* Appends rune r as UTF-8 (out of memory is out's, sticky). */
static void utf8_put(buf *out, long r) {
    char e[4];
    size_t n;
    if (r < 0x80) {
        e[0] = (char)r;
        n = 1;
    } else if (r < 0x800) {
        e[0] = (char)(0xC0 | r >> 6);
        e[1] = (char)(0x80 | (r & 0x3F));
        n = 2;
    } else if (r < 0x10000) {
        e[0] = (char)(0xE0 | r >> 12);
        e[1] = (char)(0x80 | (r >> 6 & 0x3F));
        e[2] = (char)(0x80 | (r & 0x3F));
        n = 3;
    } else {
        e[0] = (char)(0xF0 | r >> 18);
        e[1] = (char)(0x80 | (r >> 12 & 0x3F));
        e[2] = (char)(0x80 | (r >> 6 & 0x3F));
        e[3] = (char)(0x80 | (r & 0x3F));
        n = 4;
    }
    buf_append(out, e, n);
}

#define RUNE_ERROR 0xFFFD

/* s with every byte that is not part of valid UTF-8 replaced by U+FFFD;
 * 0 or KILN_ENOMEM. */
KILN_MUST_CHECK static int utf8_fix(buf *out, const char *s) {
    while (*s) {
        size_t w;
        long r = utf8_rune(s, &w);
        if (r < 0)
            utf8_put(out, RUNE_ERROR);
        else
            buf_append(out, s, w);
        s += w;
    }
    return buf_error(out);
}

static pthread_once_t loc_once = PTHREAD_ONCE_INIT;
static locale_t loc_utf8; /* (locale_t)0 when C.UTF-8 is missing */

static void loc_init(void) {
    loc_utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static locale_t loc_get(void) {
    pthread_once(&loc_once, loc_init);
    return loc_utf8;
}

/*
 * Appends Go's strings.ToUpper(s) (upper) or strings.ToLower(s): rune by
 * rune with the simple case mapping; a string with any byte >= 0x80 goes
 * through Go's strings.Map, which writes each invalid byte as U+FFFD.
 * 0 or KILN_ENOMEM.
 */
KILN_MUST_CHECK static int map_case(buf *out, const char *s, int upper) {
    locale_t loc = (locale_t)0;
    while (*s) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x80) {
            if (upper && c >= 'a' && c <= 'z')
                c = (unsigned char)(c - 'a' + 'A');
            else if (!upper && c >= 'A' && c <= 'Z')
                c = (unsigned char)(c - 'A' + 'a');
            buf_putc(out, (char)c);
            s++;
            continue;
        }
        size_t w;
        long r = utf8_rune(s, &w);
        if (r < 0) {
            r = RUNE_ERROR;
        } else {
            if (!loc)
                loc = loc_get();
            if (loc)
                r = (long)(upper ? towupper_l((wint_t)r, loc) : towlower_l((wint_t)r, loc));
        }
        utf8_put(out, r);
        s += w;
    }
    return buf_error(out);
}

/* The width of the template-name character at s: ASCII letters, digits and
 * "_", or a non-ASCII letter or digit (Go's unicode.IsLetter / IsDigit);
 * 0 when s does not start one. */
static size_t name_char(const char *s) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    size_t w;
    long r = utf8_rune(s, &w);
    locale_t loc = loc_get();
    return r >= 0 && loc && iswalnum_l((wint_t)r, loc) ? w : 0;
}

/* ---- matching -------------------------------------------------------------- */

/* Per-thread match data, big enough for the regex with the most groups the
 * thread has matched (created and grown on demand, freed at thread exit by
 * the key's destructor). */
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static pthread_key_t md_key;
static int md_key_ok;
static _Thread_local pcre2_match_data *md_cache;
static _Thread_local uint32_t md_pairs;

static void md_destroy(void *p) {
    pcre2_match_data_free(p);
    md_cache = NULL;
    md_pairs = 0;
}

static void md_key_init(void) {
    md_key_ok = pthread_key_create(&md_key, md_destroy) == 0;
}

/* The thread's match data with a pair for every group of re, or NULL (the
 * caller then makes its own). */
static pcre2_match_data *md_get(const pcre2_code *re) {
    uint32_t groups = 0;
    if (pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &groups) != 0)
        return NULL;
    if (md_cache && md_pairs > groups)
        return md_cache;
    pthread_once(&md_once, md_key_init);
    if (!md_key_ok)
        return NULL;
    uint32_t pairs = groups < 15 ? 16 : groups + 1;
    pcre2_match_data *md = pcre2_match_data_create(pairs, NULL);
    if (!md)
        return NULL;
    if (pthread_setspecific(md_key, md) != 0) {
        pcre2_match_data_free(md);
        return NULL;
    }
    pcre2_match_data_free(md_cache);
    md_cache = md;
    md_pairs = pairs;
    return md;
}

typedef struct match {
    pcre2_match_data *md; /* the thread's, or own */
    int own;
    int npairs;          /* pairs set by the match (pcre2_match's result) */
    const char *subject; /* what was matched: the input or fixed.data */
    buf fixed;           /* the input with invalid UTF-8 replaced */
} match;

static void match_done(match *m) {
    if (m->own)
        pcre2_match_data_free(m->md);
    buf_free(&m->fixed);
    memset(m, 0, sizeof *m);
}

KILN_MUST_CHECK static int match_run(const pcre2_code *re, match *m) {
    size_t len = strlen(m->subject);
    int rc = pcre2_match(re, (PCRE2_SPTR)m->subject, len, 0, 0, m->md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
        /* a deeply nested match outgrew JIT's stack; the interpreter keeps
         * its frames on the heap, in match data of its own so that the
         * thread's does not keep a big frame vector */
        if (!m->own) {
            if (!(m->md = pcre2_match_data_create_from_pattern(re, NULL)))
                return PCRE2_ERROR_NOMEMORY;
            m->own = 1;
        }
        rc = pcre2_match(re, (PCRE2_SPTR)m->subject, len, 0, PCRE2_NO_JIT, m->md, NULL);
    }
    return rc;
}

/*
 * Matches the whole of s (the regex is anchored): 1 when it matches (the
 * groups are then in m), 0 when not, KILN_ENOMEM.  Call match_done after,
 * whatever the result.  A match that hits PCRE2's limits counts as none.
 */
KILN_MUST_CHECK static int re_match(const pcre2_code *re, const char *s, match *m) {
    memset(m, 0, sizeof *m);
    m->subject = s;
    if (!(m->md = md_get(re))) {
        if (!(m->md = pcre2_match_data_create_from_pattern(re, NULL)))
            return KILN_ENOMEM;
        m->own = 1;
    }
    int rc = match_run(re, m);
    if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21) {
        if (utf8_fix(&m->fixed, s) != 0)
            return KILN_ENOMEM;
        m->subject = m->fixed.data;
        rc = match_run(re, m);
    }
    if (rc == PCRE2_ERROR_NOMEMORY)
        return KILN_ENOMEM;
    /* rc 0 (ovector too small) cannot happen: the match data has a pair for every group */
    m->npairs = rc > 0 ? rc : 0;
    return rc >= 0;
}

/* Appends group g of the match (nothing when it does not exist or did not
 * take part).  Pairs past the match's last set one are
 * not looked at: the thread's match data may be bigger than the regex needs
 * and hold an earlier match's offsets there. */
static void put_group(buf *out, const match *m, long g) {
    if (g < 0 || g >= m->npairs)
        return;
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
    if (ov[2 * g] == PCRE2_UNSET || ov[2 * g + 1] < ov[2 * g]) /* \K can end before it starts */
        return;
    buf_append(out, m->subject + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
}

/* Appends the group a template names (name[0..n), n > 0). */
static void put_ref(buf *out, const pcre2_code *re, const match *m, const char *name, size_t n) {
    /* Go: a number when all digits, below 1e8 while parsing, no leading 0 */
    long num = 0;
    for (size_t i = 0; i < n; i++) {
        if (name[i] < '0' || name[i] > '9' || num >= 100000000) {
            num = -1;
            break;
        }
        num = num * 10 + (name[i] - '0');
    }
    if (name[0] == '0' && n > 1)
        num = -1;
    if (num >= 0) {
        put_group(out, m, num);
        return;
    }
    char tmp[256];
    if (n >= sizeof tmp)
        return; /* longer than any group name PCRE2 allows */
    memcpy(tmp, name, n);
    tmp[n] = 0;
    int g = pcre2_substring_number_from_name(re, (PCRE2_SPTR)tmp);
    if (g > 0)
        put_group(out, m, g);
}

/* Appends Go's re.ExpandString(tmpl) for the match m; 0 or KILN_ENOMEM. */
KILN_MUST_CHECK static int expand(buf *out, const pcre2_code *re, const match *m, const char *tmpl) {
    const char *p = tmpl;
    for (;;) {
        const char *d = strchr(p, '$');
        if (!d) {
            buf_puts(out, p);
            break;
        }
        buf_append(out, p, (size_t)(d - p));
        p = d + 1;
        if (*p == '$') {
            buf_putc(out, '$');
            p++;
            continue;
        }
        int brace = *p == '{';
        const char *name = p + brace;
        size_t n = 0, w;
        while ((w = name_char(name + n)) > 0)
            n += w;
        if (n == 0 || (brace && name[n] != '}')) {
            buf_putc(out, '$'); /* malformed: the $ is text, the rest is read on */
            continue;
        }
        put_ref(out, re, m, name, n);
        p = name + n + brace;
    }
    /* a template with no text still yields a string (data non-NULL) */
    buf_append(out, "", 0);
    return buf_error(out);
}

/* ---- the steps ------------------------------------------------------------- */

typedef struct relabel_ctx {
    labels_builder *b;
    arena *a;
    buf val;     /* the joined source values */
    buf out;     /* an expansion or a case-mapped value */
    label *snap; /* the labels before a label-name step */
    size_t snapcap;
} relabel_ctx;

/* A copy of out's text in the arena, or NULL. */
static char *out_dup(relabel_ctx *c) {
    return arena_strndup(c->a, c->out.data ? c->out.data : "", c->out.len);
}

KILN_MUST_CHECK static int set_out(relabel_ctx *c, const char *name) {
    char *v = out_dup(c);
    return v && lb_set(c->b, name, v) == 0 ? 1 : KILN_ENOMEM;
}

KILN_MUST_CHECK static int step_replace(const config_relabel *r, relabel_ctx *c) {
    match m;
    int hit = re_match(r->re, c->val.data, &m);
    if (hit <= 0) {
        match_done(&m);
        return hit < 0 ? KILN_ENOMEM : 1;
    }
    char *target = NULL;
    buf_reset(&c->out);
    int rc = expand(&c->out, r->re, &m, r->target_label);
    if (rc == 0 && !(target = out_dup(c)))
        rc = KILN_ENOMEM;
    buf_reset(&c->out);
    if (rc == 0)
        rc = expand(&c->out, r->re, &m, r->replacement);
    match_done(&m);
    if (rc != 0)
        return KILN_ENOMEM;
    if (!label_name_valid(target, strlen(target)) || c->out.len == 0) {
        lb_del(c->b, r->target_label);
        return 1;
    }
    return set_out(c, target);
}

/* labelmap, labeldrop, labelkeep: over the labels before the step. */
KILN_MUST_CHECK static int step_names(const config_relabel *r, relabel_ctx *c) {
    size_t n = 0;
    const label *cur = lb_labels(c->b, &n);
    if (n > c->snapcap && array_grow((void **)&c->snap, &c->snapcap, n, sizeof *c->snap) != 0)
        return KILN_ENOMEM;
    if (n)
        memcpy(c->snap, cur, n * sizeof *cur);
    int rc = 1;
    for (size_t i = 0; i < n && rc == 1; i++) {
        match m;
        int hit = re_match(r->re, c->snap[i].name, &m);
        if (hit < 0) {
            rc = KILN_ENOMEM;
        } else if (r->action == CONFIG_RELABEL_LABELMAP) {
            if (hit) {
                buf_reset(&c->out);
                rc = expand(&c->out, r->re, &m, r->replacement) == 0 ? 1 : KILN_ENOMEM;
                char *name = rc == 1 ? out_dup(c) : NULL;
                if (rc == 1 && (!name || lb_set(c->b, name, c->snap[i].value) != 0))
                    rc = KILN_ENOMEM;
            }
        } else if (hit == (r->action == CONFIG_RELABEL_LABELDROP)) {
            lb_del(c->b, c->snap[i].name);
        }
        match_done(&m);
    }
    return rc;
}

/* One step: 1 keep, 0 drop, KILN_ENOMEM. */
KILN_MUST_CHECK static int step(const config_relabel *r, relabel_ctx *c) {
    size_t n = 0;
    const label *cur = lb_labels(c->b, &n);
    buf_reset(&c->val);
    for (size_t i = 0; i < r->nsource_labels; i++) {
        if (i)
            buf_puts(&c->val, r->separator ? r->separator : ";");
        const char *v = labels_get(cur, n, r->source_labels[i]);
        buf_puts(&c->val, v ? v : "");
    }
    buf_append(&c->val, "", 0); /* data non-NULL and terminated */
    if (buf_error(&c->val) != 0)
        return KILN_ENOMEM;
    const char *val = c->val.data;
    const char *target = r->target_label ? r->target_label : "";

    switch (r->action) {
    case CONFIG_RELABEL_REPLACE:
        return step_replace(r, c);
    case CONFIG_RELABEL_KEEP:
    case CONFIG_RELABEL_DROP: {
        match m;
        int hit = re_match(r->re, val, &m);
        match_done(&m);
        if (hit < 0)
            return KILN_ENOMEM;
        return r->action == CONFIG_RELABEL_KEEP ? hit : !hit;
    }
    case CONFIG_RELABEL_KEEPEQUAL:
    case CONFIG_RELABEL_DROPEQUAL: {
        const char *tv = labels_get(cur, n, target);
        int eq = strcmp(tv ? tv : "", val) == 0;
        return r->action == CONFIG_RELABEL_KEEPEQUAL ? eq : !eq;
    }
    case CONFIG_RELABEL_HASHMOD: {
        /* the loader refuses a zero modulus; Go would panic on it */
        uint64_t mod = r->modulus ? relabel_md5_sum64(val, c->val.len) % r->modulus : 0;
        buf_reset(&c->out);
        buf_printf(&c->out, "%llu", (unsigned long long)mod);
        if (buf_error(&c->out) != 0)
            return KILN_ENOMEM;
        return set_out(c, target);
    }
    case CONFIG_RELABEL_LOWERCASE:
    case CONFIG_RELABEL_UPPERCASE:
        buf_reset(&c->out);
        if (map_case(&c->out, val, r->action == CONFIG_RELABEL_UPPERCASE) != 0)
            return KILN_ENOMEM;
        return set_out(c, target);
    case CONFIG_RELABEL_LABELMAP:
    case CONFIG_RELABEL_LABELDROP:
    case CONFIG_RELABEL_LABELKEEP:
        return step_names(r, c);
    default:
        return 1; /* the loader knows no other action */
    }
}

int relabel_apply(const config_relabel *steps, size_t n, labels_builder *b, arena *a) {
    if (n == 0)
        return 1;
    relabel_ctx c = {.b = b, .a = a};
    int rc = 1;
    for (size_t i = 0; i < n && rc == 1; i++)
        rc = step(&steps[i], &c);
    buf_free(&c.val);
    buf_free(&c.out);
    free(c.snap);
    return rc;
}

int relabel_process(const config_relabel *steps, size_t nsteps, const label *ls, size_t n, arena *a,
                    label **out, size_t *nout) {
    *out = NULL;
    *nout = 0;
    labels_builder b;
    lb_init(&b);
    int rc = lb_from(&b, ls, n) == 0 ? relabel_apply(steps, nsteps, &b, a) : KILN_ENOMEM;
    if (rc == 1) {
        size_t m = 0;
        const label *res = lb_labels(&b, &m);
        label *cp = m ? arena_alloc_nz(a, m * sizeof *cp) : NULL;
        if (m && !cp) {
            rc = KILN_ENOMEM;
        } else {
            if (m)
                memcpy(cp, res, m * sizeof *cp);
            *out = cp;
            *nout = m;
        }
    }
    lb_free(&b);
    return rc;
}
