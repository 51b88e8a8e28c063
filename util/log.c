/*
 * log.c - logfmt and JSON logging in Prometheus' shape.
 *
 *   ts=2026-11-24T21:32:00.123Z level=info caller=wal.c:120 msg="WAL replay done" segments=3
 *   {"ts":"2026-11-24T21:32:00.123Z","level":"info","caller":"wal.c:120","msg":"WAL replay
 * done","segments":"3"}
 *
 * A whole line is built in memory and written with one write(2), so lines
 * from different threads never interleave.
 */
#include <pthread.h>
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

static void put_json_string(buf *b, const char *s, size_t n) {
    buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, (char)c);
        } else if (c == '\n') {
            buf_puts(b, "\\n");
        } else if (c < 0x20) {
            buf_printf(b, "\\u%04x", c);
        } else {
            buf_putc(b, (char)c);
        }
    }
    buf_putc(b, '"');
}

/* logfmt quoting: bare when the value has no space, quote, '=' or control byte. */
static void put_logfmt_value(buf *b, const char *s, size_t n) {
    int bare = n > 0;
    for (size_t i = 0; i < n && bare; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\')
            bare = 0;
    }
    if (bare)
        buf_append(b, s, n);
    else
        put_json_string(b, s, n);
}

/* Converts logfmt pairs in kv to JSON members appended to b. */
static void kv_to_json(buf *b, const char *kv) {
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
        buf tmp = BUF_INIT;
        if (*p == '=') {
            p++;
            if (*p == '"') {
                p++;
                while (*p && *p != '"') {
                    if (*p == '\\' && p[1]) {
                        p++;
                        buf_putc(&tmp, *p == 'n' ? '\n' : *p);
                    } else {
                        buf_putc(&tmp, *p);
                    }
                    p++;
                }
                if (*p == '"')
                    p++;
            } else {
                const char *v = p;
                while (*p && *p != ' ')
                    p++;
                buf_append(&tmp, v, (size_t)(p - v));
            }
        }
        buf_putc(b, ',');
        put_json_string(b, k, klen);
        buf_putc(b, ':');
        put_json_string(b, tmp.data ? tmp.data : "", tmp.len);
        buf_free(&tmp);
    }
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

    buf pairs = BUF_INIT;
    if (kv) {
        va_list ap;
        va_start(ap, kv);
        buf_vprintf(&pairs, kv, ap);
        va_end(ap);
    }
    buf b = BUF_INIT;
    if (log_fmt == LOG_FORMAT_JSON) {
        buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"caller\":\"%s\",\"msg\":", tsbuf,
                   level_names[level], caller);
        put_json_string(&b, msg, strlen(msg));
        if (pairs.len)
            kv_to_json(&b, pairs.data);
        buf_puts(&b, "}\n");
    } else {
        buf_printf(&b, "ts=%s level=%s caller=%s msg=", tsbuf, level_names[level], caller);
        put_logfmt_value(&b, msg, strlen(msg));
        if (pairs.len) {
            buf_putc(&b, ' ');
            buf_append(&b, pairs.data, pairs.len);
        }
        buf_putc(&b, '\n');
    }
    if (b.data) {
        ssize_t off = 0;
        while ((size_t)off < b.len) {
            ssize_t w = write(log_fd, b.data + off, b.len - (size_t)off);
            if (w <= 0)
                break;
            off += w;
        }
    }
    buf_free(&b);
    buf_free(&pairs);
}
