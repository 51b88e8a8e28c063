/*
 * strutil.c - UTF-8 decoding and validation, Go's string quoting, Prometheus name
 * checks and HTTP reason phrases.
 * Pure functions: any thread.
 */
#include "util.h"

size_t utf8_decode(const char *str, size_t n, uint32_t *r) {
    const unsigned char *s = (const unsigned char *)str;
    unsigned char c = s[0];
    if (c < 0x80) {
        *r = c;
        return 1;
    }
    size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    uint32_t cp = c & (0x7F >> len);
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    /* overlong forms, surrogates, beyond U+10FFFF */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    *r = cp;
    return len;
}

int utf8_valid(const char *s, size_t n) {
    uint32_t r;
    for (size_t i = 0, len; i < n; i += len)
        if ((len = utf8_decode(s + i, n - i, &r)) == 0)
            return 0;
    return 1;
}

/* Runes Go's strconv.IsPrint rejects beyond ASCII's controls, for the ranges
 * a label value or an expression is likely to hold: C1 controls, the soft
 * hyphen, the line and paragraph separators, format characters, the BOM and
 * non-characters. */
static int go_unprintable(uint32_t r) {
    return (r >= 0x80 && r <= 0xA0) || r == 0xAD || (r >= 0x2000 && r <= 0x200F) ||
           (r >= 0x2028 && r <= 0x202F) || (r >= 0x205F && r <= 0x206F) || r == 0x3000 || r == 0xFEFF ||
           (r >= 0xFFF0 && r <= 0xFFFB) || (r >= 0xD800 && r <= 0xDFFF);
}

void go_quote(buf *b, const char *s, size_t n, char q) {
    static const char ctl[] = "\\a\\b\\t\\n\\v\\f\\r"; /* escapes of 7..13 */
    buf_putc(b, q);
    for (size_t i = 0, len; i < n; i += len) {
        uint32_t r;
        unsigned char c = (unsigned char)s[i];
        if ((len = utf8_decode(s + i, n - i, &r)) == 0) {
            buf_printf(b, "\\x%02x", c);
            len = 1;
        } else if (r == (uint32_t)(unsigned char)q || r == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, (char)r);
        } else if (r >= 7 && r <= 13) {
            buf_append(b, ctl + 2 * (r - 7), 2);
        } else if (r < 0x20 || r == 0x7F) {
            buf_printf(b, "\\x%02x", c);
        } else if (go_unprintable(r)) {
            buf_printf(b, r > 0xFFFF ? "\\U%08x" : "\\u%04x", (unsigned)r);
        } else {
            buf_append(b, s + i, len);
        }
    }
    buf_putc(b, q);
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
