/*
 * params.c - the /api/v1 request parameters, parsed and reported as
 * Prometheus does: timestamps (float unix seconds or RFC 3339), durations
 * (float seconds or "1m30s"), limits, and the match[] series selectors; and
 * the U__ escape of label names in URLs.
 *
 * Called by the /api/v1 handlers (query_api.c, metadata.c, admin.c) on
 * worker threads, any number at once: nothing here holds state.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/v1.h"

/* ---- times and durations ------------------------------------------------- */

/* Go's strconv.ParseFloat on the whole string: no leading space, no
 * trailing garbage.  Returns 1 and the value when it parses. */
static int parse_float(const char *s, double *v) {
    if (!*s || isspace((unsigned char)*s))
        return 0;
    char *end = NULL;
    double d = strtod(s, &end);
    if (end == s || *end)
        return 0;
    *v = d;
    return 1;
}

/* 1 when s begins as layout says: 'd' stands for a digit, any other byte
 * for itself. */
static int has_layout(const char *s, const char *layout) {
    for (; *layout; s++, layout++)
        if (*layout == 'd' ? !isdigit((unsigned char)*s) : *s != *layout)
            return 0;
    return 1;
}

/* The number in the n digits at s (checked by has_layout). */
static int num(const char *s, int n) {
    int v = 0;
    while (n-- > 0)
        v = v * 10 + (*s++ - '0');
    return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m) {
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

/* RFC 3339 as Go's time.Parse(time.RFC3339Nano, s) takes it. */
static int parse_rfc3339(const char *s, int64_t *ms) {
    if (!has_layout(s, "dddd-dd-ddTdd:dd:dd"))
        return 0;
    int y = num(s, 4), mo = num(s + 5, 2), d = num(s + 8, 2);
    int h = num(s + 11, 2), mi = num(s + 14, 2), se = num(s + 17, 2);
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 59)
        return 0;
    const char *p = s + 19;
    int64_t nanos = 0;
    if (*p == '.' || *p == ',') {
        p++;
        int nd = 0;
        while (*p >= '0' && *p <= '9') {
            if (nd < 9)
                nanos = nanos * 10 + (*p - '0');
            nd++;
            p++;
        }
        if (nd == 0)
            return 0;
        for (int i = nd; i < 9; i++)
            nanos *= 10;
    }
    int64_t off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        if (strlen(p) != 6 || !has_layout(p + 1, "dd:dd"))
            return 0;
        int oh = num(p + 1, 2), om = num(p + 4, 2);
        if (oh > 23 || om > 59)
            return 0;
        off = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return 0;
    }
    if (*p)
        return 0;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
    *ms = secs * 1000 + nanos / 1000000;
    return 1;
}

int api_v1_parse_time(const char *s, int64_t *ms, kiln_err *err) {
    double t;
    if (parse_float(s, &t) && isfinite(t)) {
        /* Go: s, ns := math.Modf(t); ns = math.Round(ns*1000)/1000;
         * time.Unix(int64(s), int64(ns*1e9)), then whole milliseconds. */
        if (t > 9.2e15)
            t = 9.2e15;
        if (t < -9.2e15)
            t = -9.2e15;
        double ip;
        double fr = modf(t, &ip);
        fr = round(fr * 1000) / 1000;
        int64_t sec = (int64_t)ip;
        int64_t ns = (int64_t)(fr * 1e9);
        sec += ns / 1000000000;
        ns %= 1000000000;
        if (ns < 0) {
            ns += 1000000000;
            sec--;
        }
        *ms = sec * 1000 + ns / 1000000;
        return 0;
    }
    if (parse_rfc3339(s, ms))
        return 0;
    /* Go's parser takes 4-digit years only; Prometheus accepts its own bounds as written. */
    if (strcmp(s, "-292273086-05-16T16:47:06Z") == 0) {
        *ms = API_V1_MIN_TIME_MS;
        return 0;
    }
    if (strcmp(s, "292277025-08-18T07:12:54.999999999Z") == 0) {
        *ms = API_V1_MAX_TIME_MS;
        return 0;
    }
    return kiln_err_set(err, KILN_EINVAL, "cannot parse \"%s\" to a valid timestamp", s);
}

int api_v1_parse_duration(const char *s, int64_t *ns, kiln_err *err) {
    double d;
    if (parse_float(s, &d)) {
        double t = d * 1e9;
        if (isnan(t) || t >= 9223372036854775807.0 || t < -9223372036854775808.0)
            return kiln_err_set(err, KILN_EINVAL,
                                "cannot parse \"%s\" to a valid duration. It overflows int64", s);
        *ns = (int64_t)t;
        return 0;
    }
    int64_t ms = 0;
    if (duration_parse(s, &ms, NULL) == 0 && ms <= INT64_MAX / 1000000) {
        *ns = ms * 1000000;
        return 0;
    }
    return kiln_err_set(err, KILN_EINVAL, "cannot parse \"%s\" to a valid duration", s);
}

/* ---- label names in URLs ------------------------------------------------- */

/* Appends code point cp as UTF-8 at out; returns the bytes written. */
static size_t put_utf8(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

const char *api_v1_unescape_name(arena *a, const char *name) {
    if (strncmp(name, "U__", 3) != 0)
        return name;
    const char *e = name + 3;
    size_t n = strlen(e);
    char *out = arena_alloc(a, n * 4 + 1);
    if (!out)
        return name;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i] != '_') {
            out[o++] = e[i];
            continue;
        }
        i++;
        if (i >= n)
            return name;
        if (e[i] == '_') {
            out[o++] = '_';
            continue;
        }
        uint32_t cp = 0;
        int j = 0;
        for (;; j++) {
            if (i >= n || j >= 6)
                return name;
            if (e[i] == '_')
                break;
            int c = tolower((unsigned char)e[i]);
            cp *= 16;
            if (c >= '0' && c <= '9')
                cp += (uint32_t)(c - '0');
            else if (c >= 'a' && c <= 'f')
                cp += (uint32_t)(c - 'a' + 10);
            else
                return name;
            i++;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return name;
        o += put_utf8(out + o, cp);
    }
    out[o] = 0;
    return out;
}

/* ---- request parameters -------------------------------------------------- */

const char *v1_param(http_req *req, const char *name) {
    const char *v = http_req_param(req, name);
    return v ? v : "";
}

int v1_time_param(http_req *req, http_resp *resp, const char *name, int64_t def, int64_t *out) {
    const char *v = v1_param(req, name);
    if (!*v) {
        *out = def;
        return 0;
    }
    kiln_err err = {0};
    if (api_v1_parse_time(v, out, &err) != 0) {
        v1_bad_data(resp, "invalid parameter \"%s\": Invalid time value for '%s': %s", name, name, err.msg);
        return -1;
    }
    return 0;
}

int v1_range_params(http_req *req, http_resp *resp, int64_t *start, int64_t *end) {
    if (v1_time_param(req, resp, "start", API_V1_MIN_TIME_MS, start) != 0 ||
        v1_time_param(req, resp, "end", API_V1_MAX_TIME_MS, end) != 0)
        return -1;
    return 0;
}

int v1_limit_param(http_req *req, http_resp *resp, size_t *out) {
    const char *v = v1_param(req, "limit");
    *out = 0;
    if (!*v)
        return 0;
    char *end = NULL;
    const char *p = v + (*v == '+' || *v == '-');
    long long n = isdigit((unsigned char)*p) ? strtoll(v, &end, 10) : 0;
    if (!end || *end) {
        v1_bad_data(resp, "invalid parameter \"limit\": strconv.Atoi: parsing \"%s\": invalid syntax", v);
        return -1;
    }
    if (n < 0) {
        v1_bad_data(resp, "invalid parameter \"limit\": limit must be non-negative");
        return -1;
    }
    *out = (size_t)n;
    return 0;
}

int v1_int_param(http_req *req, http_resp *resp, const char *name, long *out) {
    const char *v = v1_param(req, name);
    *out = -1;
    if (!*v)
        return 0;
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    if (!end || *end || end == v) {
        v1_bad_data(resp, "invalid parameter \"%s\": strconv.Atoi: parsing \"%s\": invalid syntax", name, v);
        return -1;
    }
    /* Prometheus: a limit of 0 or below means no limit */
    *out = n > 0 ? (long)n : -1;
    return 0;
}

/* ---- match[] ---------------------------------------------------------- */

void v1_match_sets_free(v1_match_sets *m) {
    for (size_t i = 0; i < m->n; i++)
        query_selector_free(&m->sel[i]);
    m->n = 0;
}

/* The token a series selector cannot hold, as Go's ParseMetricSelector
 * names it ("1:4: parse error: unexpected \"(\""), for a selector that
 * parses as a wider PromQL expression; 0 when no such simple case. */
static int selector_error(const char *s, kiln_err *err) {
    size_t i = 0;
    while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')
        i++;
    if (!(isalpha((unsigned char)s[i]) || s[i] == '_' || s[i] == ':') || strchr(s, '\n'))
        return 0;
    while (isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':')
        i++;
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    char c = s[i];
    const char *desc = NULL;
    char tmp[16];
    if (c == '(' || c == ')' || c == '[' || c == ']' || c == ',' || c == '}') {
        snprintf(tmp, sizeof tmp, "\"%c\"", c);
        desc = tmp;
    } else if (strchr("+-*/%^", c) && c) {
        snprintf(tmp, sizeof tmp, "<op:%c>", c);
        desc = tmp;
    }
    if (!desc)
        return 0;
    kiln_err_set(err, KILN_EINVAL, "1:%zu: parse error: unexpected %s", i + 1, desc);
    return 1;
}

static const char EMPTY_MATCHERS[] = "match[] must contain at least one non-empty matcher";

/* One match[] value into sel; on error the message Prometheus gives in err. */
static int match_one(const char *v, query_selector *sel, kiln_err *err) {
    int rc = query_selector_parse(v, sel, err);
    if (rc != KILN_EINVAL)
        return rc;
    if (sel->other) {
        /* a PromQL expression, but not a selector */
        if (!selector_error(v, err))
            kiln_err_set(err, KILN_EINVAL, "1:1: parse error: unexpected %s, expected a series selector",
                         sel->other);
    } else if (strstr(err->msg, "must contain at least one non-empty matcher")) {
        /* PromQL rejects {a=~".*"} itself; Prometheus' selector parser leaves it to the check below */
        kiln_err_set(err, KILN_EINVAL, "%s", EMPTY_MATCHERS);
    } else {
        selector_error(v, err);
    }
    return rc;
}

/* 1 when a matcher of the set does not match "". */
static int has_nonempty_matcher(const query_selector *sel) {
    for (size_t j = 0; j < sel->nms; j++)
        if (!matcher_matches_empty(&sel->ms[j]))
            return 1;
    return 0;
}

int v1_match_parse(http_req *req, v1_match_sets *m, kiln_err *err) {
    const char *vals[V1_MAX_MATCH_SETS];
    m->n = 0;
    size_t n = http_req_params(req, "match[]", vals, V1_MAX_MATCH_SETS);
    if (n > V1_MAX_MATCH_SETS)
        return kiln_err_set(err, KILN_EINVAL, "too many match[] parameters (at most %d)", V1_MAX_MATCH_SETS);
    for (size_t i = 0; i < n; i++) {
        int rc = match_one(vals[i], &m->sel[m->n], err);
        if (rc != 0) {
            query_selector_free(&m->sel[m->n]);
            v1_match_sets_free(m);
            return rc;
        }
        m->n++;
    }
    for (size_t i = 0; i < m->n; i++) {
        if (!has_nonempty_matcher(&m->sel[i])) {
            v1_match_sets_free(m);
            return kiln_err_set(err, KILN_EINVAL, "%s", EMPTY_MATCHERS);
        }
    }
    return 0;
}

int v1_match_param(http_req *req, http_resp *resp, v1_match_sets *m, int wrap) {
    kiln_err err = {0};
    int rc = v1_match_parse(req, m, &err);
    if (rc == 0)
        return 0;
    if (rc != KILN_EINVAL)
        v1_internal(resp, rc, NULL);
    else if (wrap && !strstr(err.msg, "too many match[]"))
        v1_invalid_param(resp, "match[]", &err);
    else
        http_resp_json_error(resp, 400, "bad_data", err.msg);
    return -1;
}
