/*
 * log.c - logfmt and JSON logging in Prometheus' shape.
 *
 *   ts=2026-11-24T21:32:00.123Z level=info caller=wal.c:120 msg="WAL replay done" segments=3
 *   {"ts":"2026-11-24T21:32:00.123Z","level":"info","caller":"wal.c:120","msg":"WAL replay
 * done","segments":"3"}
 *
 * Callers pass their pairs as a printf format of `key=template` words
 * ("segment=%d err=%s"); the logger formats each template on its own and
 * quotes the result itself, so a value is one value whatever bytes it holds:
 * in logfmt it is quoted as go-kit/slog quote (when it is empty or holds a
 * space, '=', '"', a control byte or invalid UTF-8; inner quotes and
 * backslashes escaped), in JSON it becomes its own string member.  A template
 * may be wrapped in double quotes to hold literal spaces.
 *
 * A whole line is built in memory and written with one write(2), so lines
 * from different threads never interleave.  Any thread may log.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static int log_min_level = LOG_INFO;
static int log_fmt = LOG_FORMAT_LOGFMT;
static int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *s) {
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

int log_format_parse(const char *s) {
    if (strcmp(s, "logfmt") == 0)
        return LOG_FORMAT_LOGFMT;
    if (strcmp(s, "json") == 0)
        return LOG_FORMAT_JSON;
    return -1;
}

void log_setup(int level, int format) {
    log_min_level = level;
    log_fmt = format;
}

void log_set_fd(int fd) {
    log_fd = fd;
}

/* The length of the valid UTF-8 sequence at s[0..n), 0 when it is not one. */
static size_t utf8_seq(const char *s, size_t n) {
    unsigned char c = (unsigned char)s[0];
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    return len && len <= n && utf8_valid(s, len) ? len : 0;
}

/* A double-quoted string with JSON escapes; invalid UTF-8 becomes U+FFFD so
 * the result is always valid JSON (and a valid quoted logfmt value). */
static void put_quoted(buf *b, const char *s, size_t n) {
    buf_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = utf8_seq(s + i, n - i);
        if (len == 0) {
            buf_puts(b, "\\ufffd");
            i++;
            continue;
        }
        if (c == '"' || c == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, (char)c);
        } else if (c == '\n') {
            buf_puts(b, "\\n");
        } else if (c == '\r') {
            buf_puts(b, "\\r");
        } else if (c == '\t') {
            buf_puts(b, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            buf_printf(b, "\\u%04x", c);
        } else {
            buf_append(b, s + i, len);
        }
        i += len;
    }
    buf_putc(b, '"');
}

/* logfmt: bare unless empty or holding a space, '=', '"', a control byte or
 * invalid UTF-8 (slog's TextHandler rule; a lone backslash stays bare). */
static void put_logfmt_value(buf *b, const char *s, size_t n) {
    int bare = n > 0;
    for (size_t i = 0; i < n && bare;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = utf8_seq(s + i, n - i);
        if (len == 0 || c <= ' ' || c == '"' || c == '=' || c == 0x7f)
            bare = 0;
        i += len ? len : 1;
    }
    if (bare)
        buf_append(b, s, n);
    else
        put_quoted(b, s, n);
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
/*
 * Formats the one conversion at *pp (just past its '%') into out, taking its
 * argument from ap, and advances *pp past it.  Returns -1 on a conversion the
 * logger does not take (%n, or a malformed one): the rest of the pairs is
 * then dropped, since the arguments can no longer be matched.
 */
static int put_conversion(buf *out, const char **pp, va_list *ap) {
    const char *p = *pp;
    char spec[64];
    size_t k = 0;
    spec[k++] = '%';
    while (*p && strchr("-+ #0'", *p) && k < 20)
        spec[k++] = *p++;
    for (int part = 0; part < 2; part++) { /* width, then precision */
        if (part == 1) {
            if (*p != '.')
                break;
            spec[k++] = *p++;
        }
        if (*p == '*') {
            k += (size_t)snprintf(spec + k, 16, "%d", va_arg(*ap, int));
            p++;
        } else {
            while (*p >= '0' && *p <= '9' && k < 50)
                spec[k++] = *p++;
        }
    }
    enum { L_NONE, L_HH, L_H, L_L, L_LL, L_Z, L_J, L_T, L_BIGL } len = L_NONE;
    if (p[0] == 'h' && p[1] == 'h')
        len = L_HH, p += 2;
    else if (p[0] == 'l' && p[1] == 'l')
        len = L_LL, p += 2;
    else if (*p == 'h')
        len = L_H, p++;
    else if (*p == 'l')
        len = L_L, p++;
    else if (*p == 'z')
        len = L_Z, p++;
    else if (*p == 'j')
        len = L_J, p++;
    else if (*p == 't')
        len = L_T, p++;
    else if (*p == 'L')
        len = L_BIGL, p++;
    char conv = *p;
    if (!conv)
        return -1;
    p++;
    *pp = p;
    /* the length modifier is re-spelled so the argument's type and the spec agree */
    static const char *const mods[] = {"", "hh", "h", "l", "ll", "z", "j", "t", "L"};
    if (conv == '%') {
        buf_putc(out, '%');
        return 0;
    }
    snprintf(spec + k, sizeof spec - k, "%s%c", strchr("csp", conv) ? "" : mods[len], conv);
    switch (conv) {
    case 'd':
    case 'i':
        switch (len) {
        case L_L:
            buf_printf(out, spec, va_arg(*ap, long));
            break;
        case L_LL:
            buf_printf(out, spec, va_arg(*ap, long long));
            break;
        case L_Z:
            buf_printf(out, spec, va_arg(*ap, ptrdiff_t));
            break; /* signed size_t */
        case L_J:
            buf_printf(out, spec, va_arg(*ap, intmax_t));
            break;
        case L_T:
            buf_printf(out, spec, va_arg(*ap, ptrdiff_t));
            break;
        default:
            buf_printf(out, spec, va_arg(*ap, int));
            break;
        }
        return 0;
    case 'u':
    case 'x':
    case 'X':
    case 'o':
        switch (len) {
        case L_L:
            buf_printf(out, spec, va_arg(*ap, unsigned long));
            break;
        case L_LL:
            buf_printf(out, spec, va_arg(*ap, unsigned long long));
            break;
        case L_Z:
            buf_printf(out, spec, va_arg(*ap, size_t));
            break;
        case L_J:
            buf_printf(out, spec, va_arg(*ap, uintmax_t));
            break;
        case L_T:
            buf_printf(out, spec, va_arg(*ap, size_t));
            break;
        default:
            buf_printf(out, spec, va_arg(*ap, unsigned));
            break;
        }
        return 0;
    case 'c':
        buf_printf(out, spec, va_arg(*ap, int));
        return 0;
    case 's': {
        const char *s = va_arg(*ap, const char *);
        buf_printf(out, spec, s ? s : "(null)");
        return 0;
    }
    case 'p':
        buf_printf(out, spec, va_arg(*ap, void *));
        return 0;
    case 'f':
    case 'F':
    case 'e':
    case 'E':
    case 'g':
    case 'G':
    case 'a':
    case 'A':
        if (len == L_BIGL)
            buf_printf(out, spec, va_arg(*ap, long double));
        else
            buf_printf(out, spec, va_arg(*ap, double));
        return 0;
    default:
        return -1;
    }
}
#pragma GCC diagnostic pop

/* Formats a template of n bytes into out (cleared first). */
static int format_template(buf *out, const char *t, size_t n, va_list *ap) {
    buf_reset(out);
    const char *p = t, *end = t + n;
    while (p < end) {
        const char *pct = memchr(p, '%', (size_t)(end - p));
        if (!pct) {
            buf_append(out, p, (size_t)(end - p));
            break;
        }
        buf_append(out, p, (size_t)(pct - p));
        p = pct + 1;
        if (put_conversion(out, &p, ap) != 0 || p > end)
            return -1;
    }
    return 0;
}

/* Appends the pairs of the format kv (see the file comment), their values
 * taken from ap, to b: ` key=value` in logfmt, `,"key":"value"` in JSON. */
static void put_pairs(buf *b, int json, const char *kv, va_list *ap) {
    buf val = BUF_INIT;
    const char *p = kv;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ')
            p++;
        size_t klen = (size_t)(p - k);
        const char *t = p, *tend = p;
        if (*p == '=') {
            p++;
            if (*p == '"') {
                t = ++p;
                while (*p && *p != '"')
                    p++;
                tend = p;
                if (*p == '"')
                    p++;
            } else {
                t = p;
                while (*p && *p != ' ')
                    p++;
                tend = p;
            }
        }
        int rc = format_template(&val, t, (size_t)(tend - t), ap);
        if (json) {
            buf_putc(b, ',');
            put_quoted(b, k, klen);
            buf_putc(b, ':');
            put_quoted(b, val.data ? val.data : "", val.len);
        } else {
            buf_putc(b, ' ');
            buf_append(b, k, klen);
            buf_putc(b, '=');
            put_logfmt_value(b, val.data ? val.data : "", val.len);
        }
        if (rc != 0)
            break;
    }
    buf_free(&val);
}

void log_at(int level, const char *file, int line, const char *msg, const char *kv, ...) {
    if (level < log_min_level)
        return;
    if (level < 0 || level > LOG_ERROR)
        level = LOG_ERROR;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char tsbuf[96];
    snprintf(tsbuf, sizeof tsbuf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ts.tv_nsec / 1000000) % 1000);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    char caller[128];
    snprintf(caller, sizeof caller, "%s:%d", base, line);

    int json = log_fmt == LOG_FORMAT_JSON;
    buf b = BUF_INIT;
    if (json) {
        buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"caller\":", tsbuf, level_names[level]);
        put_quoted(&b, caller, strlen(caller));
        buf_puts(&b, ",\"msg\":");
        put_quoted(&b, msg, strlen(msg));
    } else {
        buf_printf(&b, "ts=%s level=%s caller=", tsbuf, level_names[level]);
        put_logfmt_value(&b, caller, strlen(caller));
        buf_puts(&b, " msg=");
        put_logfmt_value(&b, msg, strlen(msg));
    }
    if (kv) {
        va_list ap;
        va_start(ap, kv);
        put_pairs(&b, json, kv, &ap);
        va_end(ap);
    }
    buf_puts(&b, json ? "}\n" : "\n");
    if (b.data && !buf_error(&b)) {
        ssize_t off = 0;
        while ((size_t)off < b.len) {
            ssize_t w = write(log_fd, b.data + off, b.len - (size_t)off);
            if (w <= 0)
                break;
            off += w;
        }
    }
    buf_free(&b);
}
