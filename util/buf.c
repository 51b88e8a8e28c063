/*
 * buf.c - a growable byte buffer, always NUL-terminated after an append,
 * whose out-of-memory is sticky (see util.h), and JSON string literals.
 * Used by every subsystem to build responses, records and files; a buf
 * belongs to one thread at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int buf_reserve(buf *b, size_t extra) {
    if (b->oom)
        return KILN_ENOMEM;
    if (extra > SIZE_MAX / 2 - b->len) {
        b->oom = 1;
        return KILN_ENOMEM;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return KILN_ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(buf *b, const void *p, size_t n) {
    if (buf_reserve(b, n))
        return KILN_ENOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int buf_puts(buf *b, const char *s) {
    return buf_append(b, s, strlen(s));
}

int buf_putc(buf *b, char c) {
    return buf_append(b, &c, 1);
}

int buf_vprintf(buf *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        b->oom = 1; /* nothing sensible was appended: the contents are incomplete */
        return KILN_EINVAL;
    }
    if ((size_t)n < sizeof tmp)
        return buf_append(b, tmp, (size_t)n);
    if (buf_reserve(b, (size_t)n))
        return KILN_ENOMEM;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_printf(buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void buf_reset(buf *b) {
    b->len = 0;
    b->oom = 0;
    if (b->data)
        b->data[0] = 0;
}

void buf_free(buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

char *buf_steal(buf *b) {
    char *p = b->data;
    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
    return p;
}

void json_strn(buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    static const char *const named[128] = {
        ['"'] = "\\\"", ['\\'] = "\\\\", ['\n'] = "\\n", ['\r'] = "\\r", ['\t'] = "\\t",
    };
    buf_reserve(b, n + 2);
    buf_putc(b, '"');
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' && c != 0xc0)
            continue;
        buf_append(b, s + start, i - start);
        start = i + 1;
        if (c == 0xc0) { /* C0 80 is kiln's NUL (strnul.c); a lone C0 stays */
            int nul = i + 1 < n && (unsigned char)s[i + 1] == 0x80;
            buf_append(b, nul ? "\\u0000" : s + i, nul ? 6 : 1);
            i += (size_t)nul;
            start = i + 1;
        } else if (c < 128 && named[c]) {
            buf_puts(b, named[c]);
        } else {
            /* Go's encoder escapes <, > and & as \u003c etc.; Prometheus' JSON does too */
            char e[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
            buf_puts(b, e);
        }
    }
    buf_append(b, s + start, n - start);
    buf_putc(b, '"');
}

void json_str(buf *b, const char *s) {
    json_strn(b, s, strlen(s));
}

int array_grow(void **v, size_t *cap, size_t need, size_t size) {
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    void *nv = realloc(*v, nc * size);
    if (!nv)
        return KILN_ENOMEM;
    *v = nv;
    *cap = nc;
    return 0;
}
