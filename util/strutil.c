/*
 * strutil.c - UTF-8 decoding and validation, Go's string quoting, Prometheus name
 * checks and HTTP reason phrases.
 * Pure functions: any thread.
 */
#include <string.h>

#include "util.h"

size_t utf8_decode(const char *s, size_t n, uint32_t *r) {
    const unsigned char *p = (const unsigned char *)s;
    if (p[0] < 0x80) {
        *r = p[0];
        return 1;
    }
    size_t len;
    uint32_t c, min;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2, c = p[0] & 0x1f, min = 0x80;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3, c = p[0] & 0x0f, min = 0x800;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4, c = p[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *r = c;
    return len;
}

int utf8_valid(const char *s, size_t n) {
    uint32_t r;
    size_t i = 0;
    for (uint64_t w; i + 8 <= n; i += 8) { /* ASCII, the common case, 8 bytes at a time */
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull)
            break;
    }
    for (size_t len; i < n; i += len)
        if ((len = utf8_decode(s + i, n - i, &r)) == 0)
            return 0;
    return 1;
}

/*
 * Whether Go's strconv.Quote would escape the (non-ASCII) rune r: controls,
 * format characters, separators other than ASCII space, private use and
 * noncharacters.  Go also escapes unassigned code points, which would need
 * the Unicode tables; those pass through here.
 */
static int rune_unprintable(uint32_t r) {
    static const uint32_t ranges[][2] = {
        {0x80, 0xa0},       {0xad, 0xad},        {0x600, 0x605},     {0x61c, 0x61c},     {0x6dd, 0x6dd},
        {0x70f, 0x70f},     {0x890, 0x891},      {0x8e2, 0x8e2},     {0x1680, 0x1680},   {0x180e, 0x180e},
        {0x2000, 0x200f},   {0x2028, 0x202f},    {0x205f, 0x2064},   {0x2066, 0x206f},   {0x3000, 0x3000},
        {0xe000, 0xf8ff},   {0xfdd0, 0xfdef},    {0xfeff, 0xfeff},   {0xfff9, 0xfffb},   {0x110bd, 0x110bd},
        {0x110cd, 0x110cd}, {0x13430, 0x1343f},  {0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a}, {0xe0001, 0xe0001},
        {0xe0020, 0xe007f}, {0xf0000, 0x10ffff},
    };
    if ((r & 0xfffe) == 0xfffe)
        return 1; /* U+xxFFFE and U+xxFFFF are noncharacters in every plane */
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (r >= ranges[i][0] && r <= ranges[i][1])
            return 1;
    return 0;
}

void go_quote(buf *out, const char *s, size_t n, char q) {
    static const char hex[] = "0123456789abcdef", ctl[] = "\a\b\f\n\r\t\v", letters[] = "abfnrtv";
    const unsigned char *p = (const unsigned char *)s;
    buf_putc(out, q);
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        const char *e = c ? strchr(ctl, c) : NULL;
        if (e || c == (unsigned char)q || c == '\\') {
            char x[2] = {'\\', e ? letters[e - ctl] : (char)c};
            buf_append(out, x, 2);
            i++;
            continue;
        }
        if (c >= 0x20 && c < 0x7f) {
            /* copy a run of plain ASCII at once */
            size_t j = i + 1;
            while (j < n && p[j] >= 0x20 && p[j] < 0x7f && p[j] != (unsigned char)q && p[j] != '\\')
                j++;
            buf_append(out, p + i, j - i);
            i = j;
            continue;
        }
        uint32_t r = 0;
        size_t len = c < 0x80 ? 1 : utf8_decode(s + i, n - i, &r);
        if (c < 0x80 || len == 0) {
            char x[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            buf_append(out, x, 4);
            i++;
        } else if (rune_unprintable(r)) {
            if (r < 0x10000)
                buf_printf(out, "\\u%04x", (unsigned)r);
            else
                buf_printf(out, "\\U%08x", (unsigned)r);
            i += len;
        } else {
            buf_append(out, p + i, len);
            i += len;
        }
    }
    buf_putc(out, q);
}

static int name_valid(const char *s, size_t n, int colon) {
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

int label_name_valid(const char *s, size_t n) {
    return name_valid(s, n, 0);
}

int metric_name_valid(const char *s, size_t n) {
    return name_valid(s, n, 1);
}

const char *http_status_text(int code, const char *unknown) {
    switch (code) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 413:
        return "Request Entity Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return unknown;
    }
}
