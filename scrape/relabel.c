/*
 * relabel.c - relabel steps (see relabel.h), following Prometheus 2.42's
 * relabel.Process: source values joined by the separator (a missing label
 * is ""), regexes anchored at both ends (compiled by the config loader),
 * templates expanded like Go's Regexp.Expand ($1, ${1}, $name, ${name}, $$).
 */
#include "scrape/relabel.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- MD5 (RFC 1321), for hashmod ---------------------------------------- */

static uint32_t rol(uint32_t x, int c) { return (x << c) | (x >> (32 - c)); }

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
    static const int R[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9,  14, 20, 5, 9,
                              14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                              4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
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

/* ---- matching and templates -------------------------------------------- */

typedef struct match {
    pcre2_match_data *md;
    const char *subject;
    int rc; /* pcre2_match's result: > 0 matched (groups set), 0 matched (ovector too small) */
} match;

/* Matches the whole of s (the pattern is anchored); 1 when it matches. */
static int re_match(const config_relabel *r, const char *s, match *m) {
    m->subject = s;
    m->md = pcre2_match_data_create_from_pattern(r->re, NULL);
    if (!m->md)
        return -1;
    m->rc = pcre2_match(r->re, (PCRE2_SPTR)s, strlen(s), 0, 0, m->md, NULL);
    if (m->rc == PCRE2_ERROR_JIT_STACKLIMIT)
        m->rc = pcre2_match(r->re, (PCRE2_SPTR)s, strlen(s), 0, PCRE2_NO_JIT, m->md, NULL);
    return m->rc >= 0;
}

static void match_done(match *m) {
    pcre2_match_data_free(m->md);
    m->md = NULL;
}

/* Appends group g of the match (nothing when unset or out of range). */
static void put_group(buf *out, const match *m, long g) {
    uint32_t count = pcre2_get_ovector_count(m->md);
    if (g < 0 || (uint32_t)g >= count)
        return;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
    if (ov[2 * g] == PCRE2_UNSET || ov[2 * g + 1] < ov[2 * g])
        return;
    buf_append(out, m->subject + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
}

static int name_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* Go's Regexp.Expand of tmpl with the match m into out. */
static void expand(buf *out, const config_relabel *r, const match *m, const char *tmpl) {
    for (const char *p = tmpl; *p;) {
        if (*p != '$') {
            const char *q = strchr(p, '$');
            size_t n = q ? (size_t)(q - p) : strlen(p);
            buf_append(out, p, n);
            p += n;
            continue;
        }
        if (p[1] == '$') {
            buf_putc(out, '$');
            p += 2;
            continue;
        }
        const char *name = p + 1, *end;
        size_t nlen = 0;
        if (*name == '{') {
            name++;
            while (name_char(name[nlen]))
                nlen++;
            if (nlen == 0 || name[nlen] != '}') {
                buf_putc(out, '$'); /* malformed: the $ is text */
                p++;
                continue;
            }
            end = name + nlen + 1;
        } else {
            while (name_char(name[nlen]))
                nlen++;
            if (nlen == 0) {
                buf_putc(out, '$');
                p++;
                continue;
            }
            end = name + nlen;
        }
        int digits = 1;
        for (size_t i = 0; i < nlen; i++)
            digits &= isdigit((unsigned char)name[i]) != 0;
        char tmp[256];
        if (digits && nlen < 10) {
            put_group(out, m, strtol(name, NULL, 10));
        } else if (nlen < sizeof tmp) {
            memcpy(tmp, name, nlen);
            tmp[nlen] = 0;
            int g = pcre2_substring_number_from_name(r->re, (PCRE2_SPTR)tmp);
            if (g > 0)
                put_group(out, m, g);
        }
        p = end;
    }
}

/* ---- the steps ------------------------------------------------------------ */

static const char *get(labels_builder *b, const char *name) {
    size_t n;
    const label *ls = lb_labels(b, &n);
    const char *v = labels_get(ls, n, name);
    return v ? v : "";
}

static char *adup(arena *a, const buf *b) { return arena_strndup(a, b->data ? b->data : "", b->len); }

static int valid_label_name(const char *s) { return *s && label_name_valid(s, strlen(s)); }

/* One step: 1 keep, 0 drop, KILN_ENOMEM. */
static int step(const config_relabel *r, labels_builder *b, arena *a, buf *tmp) {
    buf_reset(tmp);
    for (size_t i = 0; i < r->nsource_labels; i++) {
        if (i)
            buf_puts(tmp, r->separator ? r->separator : ";");
        buf_puts(tmp, get(b, r->source_labels[i]));
    }
    char *val = adup(a, tmp);
    if (!val)
        return KILN_ENOMEM;
    match m = {0};
    int rc = 1;
    switch (r->action) {
    case CONFIG_RELABEL_DROP:
    case CONFIG_RELABEL_KEEP: {
        int hit = re_match(r, val, &m);
        match_done(&m);
        if (hit < 0)
            return KILN_ENOMEM;
        return r->action == CONFIG_RELABEL_DROP ? !hit : hit;
    }
    case CONFIG_RELABEL_DROPEQUAL: return strcmp(get(b, r->target_label), val) != 0;
    case CONFIG_RELABEL_KEEPEQUAL: return strcmp(get(b, r->target_label), val) == 0;
    case CONFIG_RELABEL_REPLACE: {
        int hit = re_match(r, val, &m);
        if (hit <= 0) {
            match_done(&m);
            return hit < 0 ? KILN_ENOMEM : 1;
        }
        buf_reset(tmp);
        expand(tmp, r, &m, r->target_label);
        char *target = adup(a, tmp);
        buf_reset(tmp);
        expand(tmp, r, &m, r->replacement ? r->replacement : "$1");
        char *res = adup(a, tmp);
        match_done(&m);
        if (!target || !res)
            return KILN_ENOMEM;
        if (!valid_label_name(target) || !*res) {
            lb_del(b, r->target_label);
            return 1;
        }
        return lb_set(b, target, res) == 0 ? 1 : KILN_ENOMEM;
    }
    case CONFIG_RELABEL_LOWERCASE:
    case CONFIG_RELABEL_UPPERCASE:
        for (char *c = val; *c; c++)
            *c = (char)(r->action == CONFIG_RELABEL_LOWERCASE ? tolower((unsigned char)*c)
                                                               : toupper((unsigned char)*c));
        return lb_set(b, r->target_label, val) == 0 ? 1 : KILN_ENOMEM;
    case CONFIG_RELABEL_HASHMOD: {
        uint64_t mod = r->modulus ? relabel_md5_sum64(val, strlen(val)) % r->modulus : 0;
        char num[24];
        snprintf(num, sizeof num, "%llu", (unsigned long long)mod);
        char *v = arena_strndup(a, num, strlen(num));
        return v && lb_set(b, r->target_label, v) == 0 ? 1 : KILN_ENOMEM;
    }
    case CONFIG_RELABEL_LABELMAP:
    case CONFIG_RELABEL_LABELDROP:
    case CONFIG_RELABEL_LABELKEEP: {
        /* over the labels as they were before this step */
        size_t n;
        const label *cur = lb_labels(b, &n);
        label *snap = labels_copy(a, cur, n);
        if (n && !snap)
            return KILN_ENOMEM;
        for (size_t i = 0; i < n && rc == 1; i++) {
            int hit = re_match(r, snap[i].name, &m);
            if (hit < 0) {
                rc = KILN_ENOMEM;
            } else if (r->action == CONFIG_RELABEL_LABELMAP && hit) {
                buf_reset(tmp);
                expand(tmp, r, &m, r->replacement ? r->replacement : "$1");
                char *name = adup(a, tmp);
                if (!name || lb_set(b, name, snap[i].value) != 0)
                    rc = KILN_ENOMEM;
            } else if ((r->action == CONFIG_RELABEL_LABELDROP && hit) ||
                       (r->action == CONFIG_RELABEL_LABELKEEP && !hit)) {
                lb_del(b, snap[i].name);
            }
            match_done(&m);
        }
        return rc;
    }
    default: return 1;
    }
}

int relabel_apply(const config_relabel *steps, size_t n, labels_builder *b, arena *a) {
    buf tmp = {0};
    int rc = 1;
    for (size_t i = 0; i < n && rc == 1; i++)
        rc = step(&steps[i], b, a, &tmp);
    buf_free(&tmp);
    return rc;
}
