/*
 * timeutil.c - clocks, and Prometheus durations ("1h30m", "15s", "1y").
 * Used by config/, the API's parameters, flags and storage; pure functions,
 * any thread.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util.h"

int64_t time_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double time_now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double time_mono_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int time_format_rfc3339(char *out, int64_t sec, int64_t nsec, int frac) {
    sec += nsec / 1000000000;
    int64_t sub = nsec % 1000000000;
    if (sub < 0) {
        sub += 1000000000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    int n = snprintf(out, TIME_RFC3339_MAX, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (frac == 3) {
        n += snprintf(out + n, (size_t)(TIME_RFC3339_MAX - n), ".%03d", (int)(sub / 1000000));
    } else if (frac < 0 && sub) {
        n += snprintf(out + n, (size_t)(TIME_RFC3339_MAX - n), ".%09d", (int)sub);
        while (out[n - 1] == '0')
            n--;
    }
    out[n++] = 'Z';
    out[n] = 0;
    return n;
}

static const struct {
    const char *name;
    int64_t ms;
} duration_units[] = {
    {"y", 365LL * 24 * 3600 * 1000},
    {"w", 7LL * 24 * 3600 * 1000},
    {"d", 24LL * 3600 * 1000},
    {"h", 3600LL * 1000},
    {"m", 60LL * 1000},
    {"s", 1000},
    {"ms", 1},
};
#define N_UNITS (sizeof duration_units / sizeof duration_units[0])

int duration_parse(const char *s, int64_t *ms, kiln_err *err) {
    if (!s || !*s)
        return kiln_err_set(err, KILN_EINVAL, "empty duration string");
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    const char *p = s;
    size_t next_unit = 0; /* units must come largest first, each once */
    int64_t total = 0;
    while (*p) {
        if (!isdigit((unsigned char)*p))
            goto bad;
        int64_t n = 0;
        while (isdigit((unsigned char)*p)) {
            if (n > (INT64_MAX - 9) / 10)
                goto overflow;
            n = n * 10 + (*p - '0');
            p++;
        }
        size_t u;
        for (u = next_unit; u < N_UNITS; u++) {
            size_t ul = strlen(duration_units[u].name);
            /* "m" must not match the start of "ms" */
            if (strncmp(p, duration_units[u].name, ul) == 0 && !(ul == 1 && p[0] == 'm' && p[1] == 's'))
                break;
        }
        if (u == N_UNITS)
            goto bad;
        if (n > INT64_MAX / duration_units[u].ms || total > INT64_MAX - n * duration_units[u].ms)
            goto overflow;
        total += n * duration_units[u].ms;
        p += strlen(duration_units[u].name);
        next_unit = u + 1;
    }
    *ms = total;
    return 0;
bad:
    return kiln_err_set(err, KILN_EINVAL, "not a valid duration string: \"%s\"", s);
overflow:
    return kiln_err_set(err, KILN_ERANGE, "duration out of range: \"%s\"", s);
}

void duration_format(int64_t ms, char *out, size_t n) {
    if (n == 0)
        return;
    out[0] = 0;
    if (ms == 0) {
        snprintf(out, n, "0s");
        return;
    }
    size_t off = 0;
    if (ms < 0) {
        off += (size_t)snprintf(out, n, "-");
        ms = -ms;
    }
    for (size_t u = 0; u < N_UNITS && off < n; u++) {
        int64_t q = ms / duration_units[u].ms;
        if (q) {
            off += (size_t)snprintf(out + off, n - off, "%lld%s", (long long)q, duration_units[u].name);
            ms -= q * duration_units[u].ms;
        }
    }
}
