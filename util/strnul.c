/*
 * strnul.c - NUL bytes inside kiln's strings.  kiln's label names and values
 * are NUL-terminated C strings through the head, the WAL, blocks and the API,
 * yet a label value may hold a NUL byte (valid OpenMetrics, kept whole by
 * Prometheus).  Inside kiln such a byte is held as the two bytes C0 80 (the
 * "modified UTF-8" trick: C0 is never a byte of valid UTF-8, so the pair is
 * unambiguous), and converted at every boundary: nul_in where bytes come in
 * (scrape parsers, remote write, OTLP, PromQL literals, the WAL and block
 * readers), nul_out where they go out (JSON, exposition, protobuf, the WAL
 * and block writers).  Both are a memchr and no copy when there is nothing
 * to convert.
 * Called by the boundaries above; pure functions: any thread.
 */
#include <string.h>

#include "util.h"

size_t nul_in_len(const char *s, size_t n) {
    const char *p = n ? memchr(s, 0, n) : NULL;
    size_t len = n;
    for (const char *e = s + n; p; p = p + 1 < e ? memchr(p + 1, 0, (size_t)(e - p - 1)) : NULL)
        len++;
    return len;
}

/* nul_in (in: each NUL to C0 80) and nul_out (each C0 80 to a NUL): runs
 * without the byte sought copied whole. */
static size_t convert(char *out, const char *s, size_t n, int in) {
    char *o = out;
    for (const char *e = s + n, *c; s < e; s = c) {
        c = memchr(s, in ? 0 : 0xc0, (size_t)(e - s));
        size_t k = c ? (size_t)(c - s) : (size_t)(e - s);
        memmove(o, s, k);
        o += k;
        if (!c)
            break;
        if (in) {
            memcpy(o, NUL_IN_KILN, 2), o += 2, c++;
        } else {
            int pair = c + 1 < e && (unsigned char)c[1] == 0x80; /* a lone C0 stays */
            *o++ = pair ? 0 : *c;
            c += 1 + pair;
        }
    }
    return (size_t)(o - out);
}

size_t nul_in(char *out, const char *s, size_t n) {
    return convert(out, s, n, 1);
}

char *arena_strndup_nul(arena *a, const char *s, size_t n) {
    size_t len = nul_in_len(s, n);
    if (len == n)
        return arena_strndup(a, s, n);
    char *p = arena_alloc_nz(a, len + 1);
    if (p)
        p[nul_in(p, s, n)] = 0;
    return p;
}

size_t nul_out_len(const char *s, size_t n) {
    const char *p = n ? memchr(s, 0xc0, n) : NULL;
    size_t len = n;
    for (const char *e = s + n; p; p = p + 1 < e ? memchr(p + 1, 0xc0, (size_t)(e - p - 1)) : NULL)
        if (p + 1 < e && (unsigned char)p[1] == 0x80)
            len--;
    return len;
}

size_t nul_out(char *out, const char *s, size_t n) {
    return convert(out, s, n, 0);
}

int buf_append_nul_out(buf *b, const char *s, size_t n) {
    size_t len = nul_out_len(s, n);
    if (len == n)
        return buf_append(b, s, n);
    if (buf_reserve(b, len))
        return KILN_ENOMEM;
    b->len += nul_out(b->data + b->len, s, n);
    b->data[b->len] = 0;
    return 0;
}

/* A byte's rank in the order of the strings nul_out gives: the end first,
 * then C0 80 (a NUL), then the other bytes. */
static inline int nul_rank(unsigned char c) {
    return c == 0 ? -1 : c == 0xc0 ? 0 : c;
}

int str_nulcmp(const char *a, const char *b) {
    const unsigned char *p = (const unsigned char *)a, *q = (const unsigned char *)b;
    while (*p && *p == *q)
        p++, q++;
    return nul_rank(*p) - nul_rank(*q);
}

int utf8_valid_nul(const char *s, size_t n) {
    const char *e = s + n;
    for (const char *c; (c = s < e ? memchr(s, 0xc0, (size_t)(e - s)) : NULL) != NULL; s = c + 2)
        if (!utf8_valid(s, (size_t)(c - s)) || c + 1 == e || (unsigned char)c[1] != 0x80)
            return 0;
    return utf8_valid(s, (size_t)(e - s));
}
