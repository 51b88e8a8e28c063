/*
 * query_api.c - the /api/v1 query and metadata endpoints (Prometheus' HTTP
 * API): query, query_range, format_query, parse_query, series, labels,
 * label/<name>/values, metadata, query_exemplars, rules, alerts,
 * alertmanagers, status/tsdb, status/walreplay.
 *
 * Every answer is Prometheus' JSON envelope
 *
 *     {"status":"success","data":<data>[,"warnings":[...]][,"infos":[...]]}
 *     {"status":"error","errorType":"bad_data","error":"..."}
 *
 * with its status codes (400 bad_data, 422 execution, 499 canceled, 503
 * timeout/unavailable, 500 internal) and its error texts, which wrap the
 * cause with the parameter's name: `invalid parameter "start": ...`.
 * Results are written straight into the response body as they are walked:
 * no intermediate copy of a large result is built.
 *
 * Timestamps are written as seconds with the millisecond fraction
 * (Prometheus' marshalTimestamp: "1.100" keeps its zeros) and sample values
 * as strings formatted like Go's FormatFloat(v, 'f', -1, 64).
 *
 * Threading: the handlers run on libuv's worker threads, any number at
 * once.  The api_v1 context is read-only after api_v1_new except for the
 * storage pointer, which is atomic (NULL until the WAL replay is done).
 */
#include <ctype.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "query/ast.h"
#include "query/query.h"
#include "storage/storage.h"

struct api_v1 {
    query_engine engine;
    int enable_admin;
    int max_concurrency;
    storage *_Atomic st;
    api_v1_scrape *_Atomic scrape; /* NULL until scraping runs */
};

#define MAX_MATCH_SETS 1024

static const char TRUNCATED[] = "results truncated due to limit";

/* ---- options and context --------------------------------------------- */

void api_v1_opts_default(api_v1_opts *o) {
    query_engine_opts e = query_engine_opts_default();
    o->lookback_delta_ms = e.lookback_delta_ms;
    o->max_samples = e.max_samples;
    o->timeout_ms = e.timeout_ms;
    o->max_concurrency = 20;
}

int api_v1_new(const api_v1_opts *o, api_v1 **out) {
    api_v1 *a = calloc(1, sizeof *a);
    if (!a)
        return KILN_ENOMEM;
    api_v1_opts d;
    if (!o) {
        api_v1_opts_default(&d);
        o = &d;
    }
    query_engine_opts eo = {o->lookback_delta_ms, o->max_samples, o->timeout_ms};
    query_engine_init(&a->engine, &eo);
    a->enable_admin = o->enable_admin;
    a->max_concurrency = o->max_concurrency;
    atomic_store(&a->st, NULL);
    *out = a;
    return 0;
}

void api_v1_set_storage(api_v1 *a, storage *st) {
    atomic_store(&a->st, st);
}

void api_v1_free(api_v1 *a) {
    if (a)
        free(atomic_load(&a->scrape));
    free(a);
}

int api_v1_set_scrape(api_v1 *a, const api_v1_scrape *s) {
    api_v1_scrape *c = malloc(sizeof *c);
    if (!c)
        return KILN_ENOMEM;
    *c = *s;
    free(atomic_exchange(&a->scrape, c)); /* set once at start-up: no reader holds the old one */
    return 0;
}

/* ---- parameters ------------------------------------------------------- */

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

static int digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
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
    size_t n = strlen(s);
    int y, mo, d, h, mi, se;
    if (n < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
        return 0;
    if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) || !digits(s + 11, 2, &h) ||
        !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se))
        return 0;
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
        int oh, om;
        if (strlen(p) != 6 || p[3] != ':' || !digits(p + 1, 2, &oh) || !digits(p + 4, 2, &om) || oh > 23 ||
            om > 59)
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
        if (cp < 0x80) {
            out[o++] = (char)cp;
        } else if (cp < 0x800) {
            out[o++] = (char)(0xC0 | (cp >> 6));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[o++] = (char)(0xE0 | (cp >> 12));
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        } else {
            out[o++] = (char)(0xF0 | (cp >> 18));
            out[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    out[o] = 0;
    return out;
}

/* ---- JSON pieces ------------------------------------------------------ */

void api_v1_json_time(buf *b, int64_t ms) {
    /* as Prometheus' marshalTimestamp: integer division, never through a double */
    uint64_t u = (uint64_t)ms;
    if (ms < 0) {
        buf_putc(b, '-');
        u = (uint64_t)0 - u;
    }
    unsigned frac = (unsigned)(u % 1000);
    if (frac)
        buf_printf(b, "%llu.%03u", (unsigned long long)(u / 1000), frac);
    else
        buf_printf(b, "%llu", (unsigned long long)(u / 1000));
}

/* Prometheus' sample value format: Go's 'f' with the shortest digits, but
 * the exponent form ('e', which equals 'g' there) below 1e-6 and from 1e21
 * on ("4.4e-07", "1e+21"). */
void api_v1_json_value(buf *b, double v) {
    char tmp[FMT_DOUBLE_MAX + 2];
    tmp[0] = '"';
    double a = fabs(v);
    int n = a != 0 && isfinite(a) && (a < 1e-6 || a >= 1e21) ? fmt_double_g(v, tmp + 1)
                                                             : fmt_double_f(v, tmp + 1);
    tmp[n + 1] = '"';
    buf_append(b, tmp, (size_t)n + 2);
}

static void json_point(buf *b, int64_t t, double v) {
    buf_putc(b, '[');
    api_v1_json_time(b, t);
    buf_putc(b, ',');
    api_v1_json_value(b, v);
    buf_putc(b, ']');
}

/* A plain JSON number for stats (Go's float encoding for ordinary values). */
static void json_number(buf *b, double v) {
    char tmp[FMT_DOUBLE_MAX];
    if (!isfinite(v))
        v = 0;
    if (v != 0 && fabs(v) < 1e-6)
        buf_printf(b, "%.6e", v);
    else
        buf_append(b, tmp, (size_t)fmt_double_f(v, tmp));
}

/* ---- responses -------------------------------------------------------- */

/* Warnings and infos gathered while answering; strings borrowed. */
typedef struct notes {
    const char *const *w;
    size_t nw;
    const char *const *i;
    size_t ni;
    const char *extra; /* one more warning (truncation) */
} notes;

static void begin_success(http_resp *resp) {
    resp->status = 200;
    snprintf(resp->content_type, sizeof resp->content_type, "application/json");
    buf_reset(&resp->body);
    buf_puts(&resp->body, "{\"status\":\"success\",\"data\":");
}

static void json_str_array(buf *b, const char *key, const char *const *v, size_t n, const char *extra) {
    if (n == 0 && !extra)
        return;
    buf_printf(b, ",\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        json_str(b, v[i]);
    }
    if (extra) {
        if (n)
            buf_putc(b, ',');
        json_str(b, extra);
    }
    buf_putc(b, ']');
}

static void end_success(http_resp *resp, const notes *nt) {
    if (nt) {
        json_str_array(&resp->body, "warnings", nt->w, nt->nw, nt->extra);
        json_str_array(&resp->body, "infos", nt->i, nt->ni, NULL);
    }
    buf_putc(&resp->body, '}');
}

static void bad_data(http_resp *resp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad_data(http_resp *resp, const char *fmt, ...) {
    char msg[KILN_ERR_MSG_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    http_resp_json_error(resp, 400, "bad_data", msg);
}

static void invalid_param(http_resp *resp, const char *param, const kiln_err *err) {
    bad_data(resp, "invalid parameter \"%s\": %s", param, err->msg);
}

static storage *get_storage(api_v1 *a, http_resp *resp) {
    storage *st = atomic_load(&a->st);
    if (!st)
        http_resp_json_error(resp, 503, "unavailable", "kiln is starting: the WAL replay is not done yet");
    return st;
}

static const char *param(http_req *req, const char *name) {
    const char *v = http_req_param(req, name);
    return v ? v : "";
}

/* The time parameter `name`, or def when absent or empty.  Prometheus wraps
 * the cause: `invalid parameter "start": Invalid time value for 'start': ...`. */
static int time_param(http_req *req, http_resp *resp, const char *name, int64_t def, int64_t *out) {
    const char *v = param(req, name);
    if (!*v) {
        *out = def;
        return 0;
    }
    kiln_err err = {0};
    if (api_v1_parse_time(v, out, &err) != 0) {
        bad_data(resp, "invalid parameter \"%s\": Invalid time value for '%s': %s", name, name, err.msg);
        return -1;
    }
    return 0;
}

/* The limit parameter: absent or empty is 0 (no limit). */
static int limit_param(http_req *req, http_resp *resp, size_t *out) {
    const char *v = param(req, "limit");
    *out = 0;
    if (!*v)
        return 0;
    char *end = NULL;
    const char *p = v + (*v == '+' || *v == '-');
    long long n = isdigit((unsigned char)*p) ? strtoll(v, &end, 10) : 0;
    if (!end || *end) {
        bad_data(resp, "invalid parameter \"limit\": strconv.Atoi: parsing \"%s\": invalid syntax", v);
        return -1;
    }
    if (n < 0) {
        bad_data(resp, "invalid parameter \"limit\": limit must be non-negative");
        return -1;
    }
    *out = (size_t)n;
    return 0;
}

/* ---- query and query_range -------------------------------------------- */

/* The status code of an errorType (Prometheus' respondError). */
static int error_status(const char *type) {
    if (strcmp(type, "bad_data") == 0)
        return 400;
    if (strcmp(type, "execution") == 0)
        return 422;
    if (strcmp(type, "canceled") == 0)
        return 499;
    if (strcmp(type, "timeout") == 0 || strcmp(type, "unavailable") == 0)
        return 503;
    if (strcmp(type, "not_found") == 0)
        return 404;
    return 500;
}

/* Prometheus wraps an instant query's parse error with the parameter's
 * name (`invalid parameter "query": 1:5: ...`) but not a range query's. */
static void query_error(http_resp *resp, int rc, const kiln_err *err, int wrap) {
    const char *type = query_error_type(rc);
    if (rc == KILN_EINVAL && wrap) {
        invalid_param(resp, "query", err);
        return;
    }
    http_resp_json_error(resp, error_status(type), type, err->msg[0] ? err->msg : kiln_strerror(rc));
}

/* timeout, lookback_delta and stats, common to both query endpoints. */
typedef struct qparams {
    query_engine eng; /* the engine's options with this request's timeout */
    query_opts o;
    size_t limit;
    int stats;
} qparams;

static int query_params(api_v1 *a, http_req *req, http_resp *resp, qparams *qp) {
    memset(qp, 0, sizeof *qp);
    qp->eng = a->engine;
    kiln_err err = {0};
    const char *to = param(req, "timeout");
    if (*to) {
        int64_t ns = 0;
        if (api_v1_parse_duration(to, &ns, &err) != 0) {
            invalid_param(resp, "timeout", &err);
            return -1;
        }
        int64_t ms = ns / 1000000;
        if (ms < 1)
            ms = 1; /* an already expired deadline: the query times out at once */
        if (qp->eng.opts.timeout_ms == 0 || ms < qp->eng.opts.timeout_ms)
            qp->eng.opts.timeout_ms = ms;
    }
    const char *lb = param(req, "lookback_delta");
    if (*lb) {
        int64_t ns = 0;
        if (api_v1_parse_duration(lb, &ns, &err) != 0) {
            bad_data(resp, "error parsing lookback delta duration: %s", err.msg);
            return -1;
        }
        qp->o.lookback_delta_ms = ns / 1000000;
    }
    qp->stats = *param(req, "stats") != 0;
    return 0;
}

/*
 * --query.max-concurrency: query and query_range wait for a slot in the
 * HTTP server's queue (api/http.c), and the wait counts against their
 * timeout as in Prometheus, whose queries wait with their context.  This
 * tells the queue how long a request may wait: its timeout parameter
 * capped by --query.timeout.  Called on the loop thread.
 */
static int64_t queue_timeout_ms(http_req *req, void *data) {
    api_v1 *a = data;
    int64_t ms = a->engine.opts.timeout_ms;
    const char *to = param(req, "timeout");
    if (*to) {
        int64_t ns = 0;
        kiln_err err = {0};
        if (api_v1_parse_duration(to, &ns, &err) != 0)
            return 1; /* the handler answers bad_data */
        int64_t t = ns / 1000000;
        if (t < 1)
            t = 1;
        if (ms <= 0 || t < ms)
            ms = t;
    }
    return ms;
}

/* After the parameters are checked: a query that waited its whole timeout
 * for a slot is answered as Prometheus does (503 "query timed out in query
 * queue"; its parse error first); one that got a slot has what is left of
 * its timeout.  1 when the response is written. */
static int queue_check(http_req *req, http_resp *resp, qparams *qp, int wrap) {
    if (req->queue_timed_out) {
        promql_ast *ast = NULL;
        kiln_err err = {0};
        int rc = promql_parse(param(req, "query"), &ast, &err);
        promql_ast_free(ast);
        if (rc != 0)
            query_error(resp, rc, &err, wrap);
        else
            http_resp_json_error(resp, 503, "timeout", "query timed out in query queue");
        return 1;
    }
    if (req->queued_ms > 0 && qp->eng.opts.timeout_ms > 0) {
        int64_t left = qp->eng.opts.timeout_ms - req->queued_ms;
        qp->eng.opts.timeout_ms = left > 1 ? left : 1;
    }
    return 0;
}

static void write_series_obj(buf *b, const query_series *s, int matrix) {
    buf_puts(b, "{\"metric\":");
    labels_json(b, s->ls, s->nls);
    if (matrix) {
        buf_puts(b, ",\"values\":[");
        for (size_t j = 0; j < s->npts; j++) {
            if (j)
                buf_putc(b, ',');
            json_point(b, s->pts[j].t, s->pts[j].v);
        }
        buf_puts(b, "]}");
    } else {
        buf_puts(b, ",\"value\":");
        if (s->npts)
            json_point(b, s->pts[0].t, s->pts[0].v);
        else
            buf_puts(b, "null");
        buf_putc(b, '}');
    }
}

/* Writes {"resultType":...,"result":...[,"stats":...]} and the envelope. */
static void write_result(http_resp *resp, const query_result *r, const qparams *qp, double secs) {
    buf *b = &resp->body;
    begin_success(resp);
    buf_puts(b, "{\"resultType\":\"");
    buf_puts(b, query_value_type_name(r->type));
    buf_puts(b, "\",\"result\":");
    const char *trunc = NULL;
    switch (r->type) {
    case QUERY_SCALAR:
        json_point(b, r->t, r->scalar);
        break;
    case QUERY_STRING:
        buf_putc(b, '[');
        api_v1_json_time(b, r->t);
        buf_putc(b, ',');
        json_str(b, r->str ? r->str : "");
        buf_putc(b, ']');
        break;
    case QUERY_VECTOR:
    case QUERY_MATRIX: {
        size_t n = r->nseries;
        if (qp->limit && n > qp->limit) {
            n = qp->limit;
            trunc = TRUNCATED;
        }
        buf_putc(b, '[');
        for (size_t i = 0; i < n; i++) {
            if (i)
                buf_putc(b, ',');
            write_series_obj(b, &r->series[i], r->type == QUERY_MATRIX);
        }
        buf_putc(b, ']');
        break;
    }
    default:
        buf_puts(b, "null");
    }
    if (qp->stats) {
        buf_puts(b, ",\"stats\":{\"timings\":{\"evalTotalTime\":");
        json_number(b, secs);
        buf_puts(b, ",\"resultSortTime\":0,\"queryPreparationTime\":0,\"innerEvalTime\":");
        json_number(b, secs);
        buf_puts(b, ",\"execQueueTime\":0,\"execTotalTime\":");
        json_number(b, secs);
        buf_printf(b, "},\"samples\":{\"totalQueryableSamples\":%zu,\"peakSamples\":%zu}}", r->total_samples,
                   r->total_samples);
    }
    buf_putc(b, '}');
    notes nt = {(const char *const *)r->warnings, r->nwarnings, (const char *const *)r->infos, r->ninfos,
                trunc};
    end_success(resp, &nt);
}

static void h_query(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    size_t limit = 0;
    if (limit_param(req, resp, &limit) != 0)
        return;
    int64_t t = 0;
    if (time_param(req, resp, "time", time_now_ms(), &t) != 0)
        return;
    qparams qp;
    if (query_params(a, req, resp, &qp) != 0 || queue_check(req, resp, &qp, 1))
        return;
    qp.limit = limit;
    storage *st = get_storage(a, resp);
    if (!st)
        return;
    query_result r;
    memset(&r, 0, sizeof r);
    kiln_err err = {0};
    double t0 = time_mono_sec();
    int rc = query_instant(&qp.eng, st, param(req, "query"), t, &qp.o, &r, &err);
    if (rc != 0) {
        query_error(resp, rc, &err, 1);
        return;
    }
    write_result(resp, &r, &qp, time_mono_sec() - t0);
    query_result_free(&r);
}

static void h_query_range(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    size_t limit = 0;
    if (limit_param(req, resp, &limit) != 0)
        return;
    kiln_err err = {0};
    int64_t start = 0, end = 0, step_ns = 0;
    if (api_v1_parse_time(param(req, "start"), &start, &err) != 0) {
        invalid_param(resp, "start", &err);
        return;
    }
    if (api_v1_parse_time(param(req, "end"), &end, &err) != 0) {
        invalid_param(resp, "end", &err);
        return;
    }
    if (end < start) {
        bad_data(resp, "invalid parameter \"end\": end timestamp must not be before start time");
        return;
    }
    if (api_v1_parse_duration(param(req, "step"), &step_ns, &err) != 0) {
        invalid_param(resp, "step", &err);
        return;
    }
    if (step_ns <= 0) {
        bad_data(
            resp,
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. "
            "Try a positive integer");
        return;
    }
    /* end.Sub(start)/step > 11000, in Go's saturating nanoseconds */
    uint64_t span_ms = (uint64_t)end - (uint64_t)start;
    int64_t span_ns = span_ms > (uint64_t)(INT64_MAX / 1000000) ? INT64_MAX : (int64_t)span_ms * 1000000;
    if (span_ns / step_ns > 11000) {
        bad_data(resp,
                 "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query "
                 "resolution (?step=XX)");
        return;
    }
    qparams qp;
    if (query_params(a, req, resp, &qp) != 0 || queue_check(req, resp, &qp, 0))
        return;
    qp.limit = limit;
    int64_t step_ms = step_ns / 1000000;
    if (step_ms < 1)
        step_ms = 1; /* the engine works in milliseconds */
    storage *st = get_storage(a, resp);
    if (!st)
        return;
    query_result r;
    memset(&r, 0, sizeof r);
    double t0 = time_mono_sec();
    int rc = query_range(&qp.eng, st, param(req, "query"), start, end, step_ms, &qp.o, &r, &err);
    if (rc != 0) {
        query_error(resp, rc, &err, 0);
        return;
    }
    write_result(resp, &r, &qp, time_mono_sec() - t0);
    query_result_free(&r);
}

/* ---- format_query and parse_query ------------------------------------- */

static void h_format_query(http_req *req, http_resp *resp, void *data) {
    (void)data;
    promql_ast *ast = NULL;
    kiln_err err = {0};
    int rc = promql_parse(param(req, "query"), &ast, &err);
    if (rc != 0) {
        if (rc == KILN_EINVAL)
            invalid_param(resp, "query", &err);
        else
            http_resp_json_error(resp, 500, "internal", kiln_strerror(rc));
        return;
    }
    buf f = BUF_INIT;
    if (promql_prettify(&f, ast->root) != 0) {
        http_resp_json_error(resp, 500, "internal", "out of memory");
    } else {
        begin_success(resp);
        json_strn(&resp->body, f.data ? f.data : "", f.len);
        end_success(resp, NULL);
    }
    buf_free(&f);
    promql_ast_free(ast);
}

static void json_name_list(buf *b, char **v, size_t n) {
    buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        json_str(b, v[i]);
    }
    buf_putc(b, ']');
}

/* "startOrEnd":...,"timestamp":... (in milliseconds) */
static void json_at(buf *b, promql_at_kind at, int64_t at_ms) {
    buf_puts(b, "\"startOrEnd\":");
    buf_puts(b, at == PROMQL_AT_START ? "\"start\"" : at == PROMQL_AT_END ? "\"end\"" : "null");
    buf_puts(b, ",\"timestamp\":");
    if (at == PROMQL_AT_TIMESTAMP)
        buf_printf(b, "%lld", (long long)at_ms);
    else
        buf_puts(b, "null");
}

static void json_matchers(buf *b, const promql_vector_selector *vs) {
    buf_puts(b, "\"matchers\":[");
    for (size_t i = 0; i < vs->nmatchers; i++) {
        if (i)
            buf_putc(b, ',');
        buf_puts(b, "{\"name\":");
        json_str(b, vs->matchers[i].name);
        buf_puts(b, ",\"type\":");
        json_str(b, match_type_str(vs->matchers[i].type));
        buf_puts(b, ",\"value\":");
        json_str(b, vs->matchers[i].value);
        buf_putc(b, '}');
    }
    buf_putc(b, ']');
}

/* Go's parser.ValueType names. */
static const char *value_type_go(promql_type t) {
    switch (t) {
    case PROMQL_TYPE_SCALAR:
        return "scalar";
    case PROMQL_TYPE_STRING:
        return "string";
    case PROMQL_TYPE_VECTOR:
        return "vector";
    case PROMQL_TYPE_MATRIX:
        return "matrix";
    default:
        return "none";
    }
}

/*
 * The AST as the JSON of Prometheus' translateAST (what its web UI reads).
 * Go writes the keys of a map sorted, so every object here is too; ranges,
 * offsets, steps and @ timestamps are in milliseconds.
 */
static void json_ast(buf *b, const promql_expr *e, int depth) {
    if (!e || depth > 200) {
        buf_puts(b, "null");
        return;
    }
    char num[FMT_DOUBLE_MAX];
    switch (e->kind) {
    case PROMQL_NUMBER:
        fmt_double_f(e->u.number, num);
        buf_puts(b, "{\"type\":\"numberLiteral\",\"val\":");
        json_str(b, num);
        buf_putc(b, '}');
        break;
    case PROMQL_STRING:
        buf_puts(b, "{\"type\":\"stringLiteral\",\"val\":");
        json_strn(b, e->u.string.s, e->u.string.len);
        buf_putc(b, '}');
        break;
    case PROMQL_VECTOR_SELECTOR:
    case PROMQL_MATRIX_SELECTOR: {
        int matrix = e->kind == PROMQL_MATRIX_SELECTOR;
        const promql_vector_selector *vs = matrix ? &e->u.ms.vs->u.vs : &e->u.vs;
        buf_putc(b, '{');
        json_matchers(b, vs);
        buf_puts(b, ",\"name\":");
        json_str(b, vs->name ? vs->name : "");
        buf_printf(b, ",\"offset\":%lld,", (long long)vs->offset_ms);
        if (matrix)
            buf_printf(b, "\"range\":%lld,", (long long)e->u.ms.range_ms);
        json_at(b, vs->at, vs->at_ms);
        buf_puts(b, matrix ? ",\"type\":\"matrixSelector\"}" : ",\"type\":\"vectorSelector\"}");
        break;
    }
    case PROMQL_SUBQUERY:
        buf_puts(b, "{\"expr\":");
        json_ast(b, e->u.sq.expr, depth + 1);
        buf_printf(b, ",\"offset\":%lld,\"range\":%lld,", (long long)e->u.sq.offset_ms,
                   (long long)e->u.sq.range_ms);
        json_at(b, e->u.sq.at, e->u.sq.at_ms);
        buf_printf(b, ",\"step\":%lld,\"type\":\"subquery\"}", (long long)e->u.sq.step_ms);
        break;
    case PROMQL_CALL: {
        const promql_func *f = e->u.call.func;
        buf_puts(b, "{\"args\":[");
        for (size_t i = 0; i < e->u.call.nargs; i++) {
            if (i)
                buf_putc(b, ',');
            json_ast(b, e->u.call.args[i], depth + 1);
        }
        buf_puts(b, "],\"func\":{\"argTypes\":[");
        for (int i = 0; f && i < f->nargs; i++) {
            if (i)
                buf_putc(b, ',');
            json_str(b, value_type_go(f->arg_types[i]));
        }
        buf_puts(b, "],\"name\":");
        json_str(b, f ? f->name : "");
        buf_puts(b, ",\"returnType\":");
        json_str(b, value_type_go(f ? f->ret : PROMQL_TYPE_NONE));
        buf_printf(b, ",\"variadic\":%d},\"type\":\"call\"}", f ? f->variadic : 0);
        break;
    }
    case PROMQL_AGGREGATE:
        buf_puts(b, "{\"expr\":");
        json_ast(b, e->u.agg.expr, depth + 1);
        buf_puts(b, ",\"grouping\":");
        json_name_list(b, e->u.agg.grouping, e->u.agg.ngrouping);
        buf_puts(b, ",\"op\":");
        json_str(b, promql_aggop_str(e->u.agg.op));
        buf_puts(b, ",\"param\":");
        json_ast(b, e->u.agg.param, depth + 1);
        buf_puts(b, e->u.agg.without ? ",\"type\":\"aggregation\",\"without\":true}"
                                     : ",\"type\":\"aggregation\",\"without\":false}");
        break;
    case PROMQL_BINARY: {
        const promql_binary *bi = &e->u.bin;
        buf_puts(b, bi->return_bool ? "{\"bool\":true,\"lhs\":" : "{\"bool\":false,\"lhs\":");
        json_ast(b, bi->lhs, depth + 1);
        buf_puts(b, ",\"matching\":");
        if (bi->has_matching) {
            static const char *const cards[] = {"one-to-one", "many-to-one", "one-to-many", "many-to-many"};
            unsigned c = (unsigned)bi->matching.card;
            buf_puts(b, "{\"card\":");
            json_str(b, c < 4 ? cards[c] : "one-to-one");
            buf_puts(b, ",\"include\":");
            json_name_list(b, bi->matching.include, bi->matching.ninclude);
            buf_puts(b, ",\"labels\":");
            json_name_list(b, bi->matching.matching, bi->matching.nmatching);
            buf_puts(b, bi->matching.on ? ",\"on\":true}" : ",\"on\":false}");
        } else {
            buf_puts(b, "null");
        }
        buf_puts(b, ",\"op\":");
        json_str(b, promql_binop_str(bi->op));
        buf_puts(b, ",\"rhs\":");
        json_ast(b, bi->rhs, depth + 1);
        buf_puts(b, ",\"type\":\"binaryExpr\"}");
        break;
    }
    case PROMQL_UNARY:
        buf_puts(b, "{\"expr\":");
        json_ast(b, e->u.unary.expr, depth + 1);
        buf_puts(b, ",\"op\":");
        json_str(b, promql_binop_str(e->u.unary.op));
        buf_puts(b, ",\"type\":\"unaryExpr\"}");
        break;
    case PROMQL_PAREN:
        buf_puts(b, "{\"expr\":");
        json_ast(b, e->u.paren, depth + 1);
        buf_puts(b, ",\"type\":\"parenExpr\"}");
        break;
    default:
        buf_puts(b, "null");
    }
}

static void h_parse_query(http_req *req, http_resp *resp, void *data) {
    (void)data;
    promql_ast *ast = NULL;
    kiln_err err = {0};
    int rc = promql_parse(param(req, "query"), &ast, &err);
    if (rc != 0) {
        if (rc == KILN_EINVAL)
            invalid_param(resp, "query", &err);
        else
            http_resp_json_error(resp, 500, "internal", kiln_strerror(rc));
        return;
    }
    begin_success(resp);
    json_ast(&resp->body, ast->root, 0);
    end_success(resp, NULL);
    promql_ast_free(ast);
}

/* ---- match[] ---------------------------------------------------------- */

typedef struct match_sets {
    promql_ast *ast[MAX_MATCH_SETS];
    const matcher *ms[MAX_MATCH_SETS];
    size_t nms[MAX_MATCH_SETS];
    size_t n;
} match_sets;

static void match_sets_free(match_sets *m) {
    for (size_t i = 0; i < m->n; i++)
        promql_ast_free(m->ast[i]);
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

/*
 * Parses every match[] as a series selector (Prometheus' parseMatchersParam).
 * A parse error is `invalid parameter "match[]": <parse error>` when `wrap`
 * (series), the bare parse error otherwise (labels, label values); a set
 * whose matchers all match "" is `match[] must contain at least one
 * non-empty matcher`.
 */
static int match_param(http_req *req, http_resp *resp, match_sets *m, int wrap) {
    const char *vals[MAX_MATCH_SETS];
    memset(m, 0, sizeof *m);
    size_t n = http_req_params(req, "match[]", vals, MAX_MATCH_SETS);
    if (n > MAX_MATCH_SETS) {
        bad_data(resp, "too many match[] parameters (at most %d)", MAX_MATCH_SETS);
        return -1;
    }
    static const char empty_msg[] = "match[] must contain at least one non-empty matcher";
    for (size_t i = 0; i < n; i++) {
        promql_ast *ast = NULL;
        kiln_err err = {0};
        int rc = promql_parse(vals[i], &ast, &err);
        if (rc == 0 && ast->root->kind != PROMQL_VECTOR_SELECTOR) {
            if (!selector_error(vals[i], &err))
                kiln_err_set(&err, KILN_EINVAL, "1:1: parse error: unexpected %s, expected a series selector",
                             promql_type_name(promql_expr_type(ast->root)));
            promql_ast_free(ast);
            ast = NULL;
            rc = KILN_EINVAL;
        } else if (rc == KILN_EINVAL && strstr(err.msg, "must contain at least one non-empty matcher")) {
            /* PromQL rejects {a=~".*"} itself; Prometheus' selector parser leaves it to this check */
            kiln_err_set(&err, KILN_EINVAL, "%s", empty_msg);
        } else if (rc == KILN_EINVAL) {
            selector_error(vals[i], &err);
        }
        if (rc != 0) {
            match_sets_free(m);
            if (rc != KILN_EINVAL)
                http_resp_json_error(resp, 500, "internal", kiln_strerror(rc));
            else if (wrap)
                invalid_param(resp, "match[]", &err);
            else
                http_resp_json_error(resp, 400, "bad_data", err.msg);
            return -1;
        }
        m->ast[m->n] = ast;
        m->ms[m->n] = ast->root->u.vs.matchers;
        m->nms[m->n] = ast->root->u.vs.nmatchers;
        m->n++;
    }
    for (size_t i = 0; i < m->n; i++) {
        int ok = 0;
        for (size_t j = 0; j < m->nms[i] && !ok; j++)
            ok = !matcher_matches_empty(&m->ms[i][j]);
        if (!ok) {
            match_sets_free(m);
            if (wrap)
                bad_data(resp, "invalid parameter \"match[]\": %s", empty_msg);
            else
                bad_data(resp, "%s", empty_msg);
            return -1;
        }
    }
    return 0;
}

static int open_querier(http_resp *resp, storage *st, int64_t mint, int64_t maxt, querier **q) {
    kiln_err err = {0};
    if (storage_querier(st, mint, maxt, q, &err) != 0) {
        http_resp_json_error(resp, 500, "internal", err.msg);
        return -1;
    }
    return 0;
}

/* ---- series ----------------------------------------------------------- */

static int series_ptr_cmp(const void *a, const void *b) {
    const series *x = *(const series *const *)a, *y = *(const series *const *)b;
    return labels_cmp(x->ls, x->nls, y->ls, y->nls);
}

static void h_series(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    const char *one;
    if (http_req_params(req, "match[]", &one, 1) == 0) {
        bad_data(resp, "no match[] parameter provided");
        return;
    }
    int64_t start = 0, end = 0;
    size_t limit = 0;
    if (time_param(req, resp, "start", API_V1_MIN_TIME_MS, &start) != 0 ||
        time_param(req, resp, "end", API_V1_MAX_TIME_MS, &end) != 0 || limit_param(req, resp, &limit) != 0)
        return;
    match_sets m;
    if (match_param(req, resp, &m, 1) != 0)
        return;
    storage *st = get_storage(a, resp);
    querier *q = NULL;
    series_set *sets = NULL;
    const series **all = NULL;
    size_t nsets = 0;
    if (!st || open_querier(resp, st, start, end, &q) != 0)
        goto out;
    sets = calloc(m.n, sizeof *sets);
    if (!sets) {
        http_resp_json_error(resp, 500, "internal", "out of memory");
        goto out;
    }
    size_t total = 0;
    select_hints h = {start, end, 1, 0};
    for (; nsets < m.n; nsets++) {
        kiln_err err = {0};
        if (querier_select(q, m.ms[nsets], m.nms[nsets], &h, &sets[nsets], &err) != 0) {
            http_resp_json_error(resp, err.code == KILN_ELIMIT ? 422 : 500,
                                 err.code == KILN_ELIMIT ? "execution" : "internal", err.msg);
            goto out;
        }
        total += sets[nsets].n;
    }
    all = malloc((total ? total : 1) * sizeof *all);
    if (!all) {
        http_resp_json_error(resp, 500, "internal", "out of memory");
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < nsets; i++)
        for (size_t j = 0; j < sets[i].n; j++)
            all[n++] = &sets[i].v[j];
    if (nsets > 1 && n > 1) {
        qsort(all, n, sizeof *all, series_ptr_cmp);
        size_t k = 1;
        for (size_t i = 1; i < n; i++)
            if (labels_cmp(all[i]->ls, all[i]->nls, all[k - 1]->ls, all[k - 1]->nls) != 0)
                all[k++] = all[i];
        n = k;
    }
    const char *trunc = NULL;
    if (limit && n > limit) {
        n = limit;
        trunc = TRUNCATED;
    }
    begin_success(resp);
    buf_putc(&resp->body, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(&resp->body, ',');
        labels_json(&resp->body, all[i]->ls, all[i]->nls);
    }
    buf_putc(&resp->body, ']');
    notes nt = {NULL, 0, NULL, 0, trunc};
    end_success(resp, &nt);
out:
    free(all);
    for (size_t i = 0; i < nsets; i++)
        series_set_free(&sets[i]);
    free(sets);
    if (q)
        querier_close(q);
    match_sets_free(&m);
}

/* ---- labels and label values ------------------------------------------ */

static int str_ptr_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Writes the sorted union of lists as a JSON array (with limit). */
static void write_str_union(http_resp *resp, str_list *lists, size_t nl, size_t limit) {
    size_t total = 0;
    for (size_t i = 0; i < nl; i++)
        total += lists[i].n;
    const char **v = NULL;
    const char *const *src;
    size_t n;
    if (nl == 1) {
        src = lists[0].v;
        n = lists[0].n;
    } else {
        v = malloc((total ? total : 1) * sizeof *v);
        if (!v) {
            http_resp_json_error(resp, 500, "internal", "out of memory");
            return;
        }
        n = 0;
        for (size_t i = 0; i < nl; i++)
            for (size_t j = 0; j < lists[i].n; j++)
                v[n++] = lists[i].v[j];
        qsort(v, n, sizeof *v, str_ptr_cmp);
        size_t k = n ? 1 : 0;
        for (size_t i = 1; i < n; i++)
            if (strcmp(v[i], v[k - 1]) != 0)
                v[k++] = v[i];
        n = k;
        src = v;
    }
    const char *trunc = NULL;
    if (limit && n > limit) {
        n = limit;
        trunc = TRUNCATED;
    }
    begin_success(resp);
    buf_putc(&resp->body, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(&resp->body, ',');
        json_str(&resp->body, src[i]);
    }
    buf_putc(&resp->body, ']');
    notes nt = {NULL, 0, NULL, 0, trunc};
    end_success(resp, &nt);
    free(v);
}

/* labels (name == NULL) or label/<name>/values. */
static void label_query(api_v1 *a, http_req *req, http_resp *resp, const char *name) {
    int64_t start = 0, end = 0;
    size_t limit = 0;
    if (time_param(req, resp, "start", API_V1_MIN_TIME_MS, &start) != 0 ||
        time_param(req, resp, "end", API_V1_MAX_TIME_MS, &end) != 0 || limit_param(req, resp, &limit) != 0)
        return;
    match_sets m;
    if (match_param(req, resp, &m, 0) != 0)
        return;
    storage *st = get_storage(a, resp);
    querier *q = NULL;
    size_t nl = m.n ? m.n : 1;
    str_list *lists = NULL;
    size_t done = 0;
    if (!st || open_querier(resp, st, start, end, &q) != 0)
        goto out;
    lists = calloc(nl, sizeof *lists);
    if (!lists) {
        http_resp_json_error(resp, 500, "internal", "out of memory");
        goto out;
    }
    for (; done < nl; done++) {
        kiln_err err = {0};
        const matcher *ms = m.n ? m.ms[done] : NULL;
        size_t nms = m.n ? m.nms[done] : 0;
        int rc = name ? querier_label_values(q, name, ms, nms, &lists[done], &err)
                      : querier_label_names(q, ms, nms, &lists[done], &err);
        if (rc != 0) {
            http_resp_json_error(resp, 500, "internal", err.msg[0] ? err.msg : kiln_strerror(rc));
            goto out;
        }
    }
    write_str_union(resp, lists, nl, limit);
out:
    for (size_t i = 0; i < done; i++)
        str_list_free(&lists[i]);
    free(lists);
    if (q)
        querier_close(q);
    match_sets_free(&m);
}

static void h_labels(http_req *req, http_resp *resp, void *data) {
    label_query(data, req, resp, NULL);
}

static void h_label_values(http_req *req, http_resp *resp, void *data) {
    const char *suffix = req->route_suffix ? req->route_suffix : "";
    size_t n = strlen(suffix);
    static const char tail[] = "/values";
    size_t tl = sizeof tail - 1;
    if (n <= tl || strcmp(suffix + n - tl, tail) != 0 || memchr(suffix, '/', n - tl)) {
        char msg[300];
        snprintf(msg, sizeof msg, "unknown API endpoint %.250s", req->path);
        http_resp_json_error(resp, 404, "not_found", msg);
        return;
    }
    char *raw = arena_strndup(req->arena, suffix, n - tl);
    if (!raw) {
        http_resp_json_error(resp, 500, "internal", "out of memory");
        return;
    }
    const char *name = api_v1_unescape_name(req->arena, raw);
    if (!*name || !utf8_valid(name, strlen(name))) {
        bad_data(resp, "invalid label name: \"%s\"", name);
        return;
    }
    label_query(data, req, resp, name);
}

/* ---- status/tsdb ------------------------------------------------------ */

/* One (name, value) pair counted over the head's series. */
typedef struct pair_stat {
    const char *name, *value;
    uint64_t hash;
    uint64_t series;
} pair_stat;

typedef struct top_stat {
    const char *name; /* for pairs: "name=value" built on output */
    const char *value;
    uint64_t count;
} top_stat;

static uint64_t str_hash(const char *s, uint64_t h) {
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static int top_cmp(const void *a, const void *b) {
    const top_stat *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return strcmp(x->value ? x->value : "", y->value ? y->value : "");
}

static int name_value_cmp(const void *a, const void *b) {
    const top_stat *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static void write_top(buf *b, const char *key, top_stat *v, size_t n, size_t limit, int pairs) {
    qsort(v, n, sizeof *v, top_cmp);
    if (n > limit)
        n = limit;
    buf_printf(b, ",\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        buf_puts(b, "{\"name\":");
        if (pairs) {
            buf tmp = BUF_INIT;
            buf_printf(&tmp, "%s=%s", v[i].name, v[i].value);
            json_strn(b, tmp.data ? tmp.data : "", tmp.len);
            buf_free(&tmp);
        } else {
            json_str(b, v[i].name);
        }
        buf_printf(b, ",\"value\":%llu}", (unsigned long long)v[i].count);
    }
    buf_putc(b, ']');
}

static void h_tsdb(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    size_t limit = 10;
    const char *lv = param(req, "limit");
    if (*lv) {
        char *end = NULL;
        long long l = strtoll(lv, &end, 10);
        if (*end || l < 1 || l > 10000) {
            bad_data(resp, "limit must be a positive number");
            return;
        }
        limit = (size_t)l;
    }
    storage *st = get_storage(a, resp);
    if (!st)
        return;
    storage_stats ss;
    storage_get_stats(st, &ss);
    querier *q = NULL;
    series_set set;
    memset(&set, 0, sizeof set);
    pair_stat *tab = NULL;
    top_stat *tops = NULL;
    size_t cap = 0, npairs = 0;
    if (open_querier(resp, st, ss.head_min_time <= ss.head_max_time ? ss.head_min_time : 0,
                     ss.head_min_time <= ss.head_max_time ? ss.head_max_time : 0, &q) != 0)
        goto out;
    /* every series, labels only: one pass counts all the statistics */
    matcher any;
    kiln_err err = {0};
    if (matcher_init(&any, MATCH_RE, LABEL_NAME, ".+", &err) != 0) {
        http_resp_json_error(resp, 500, "internal", err.msg);
        goto out;
    }
    select_hints h = {API_V1_MIN_TIME_MS, API_V1_MAX_TIME_MS, 1, 0};
    int rc = ss.head_series ? querier_select(q, &any, 1, &h, &set, &err) : 0;
    matcher_free(&any);
    if (rc != 0) {
        http_resp_json_error(resp, 500, "internal", err.msg);
        goto out;
    }
    size_t want = 64;
    for (size_t i = 0; i < set.n; i++)
        want += set.v[i].nls;
    cap = 64;
    while (cap < want * 2)
        cap *= 2;
    tab = calloc(cap, sizeof *tab);
    if (!tab) {
        http_resp_json_error(resp, 500, "internal", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < set.n; i++)
        for (size_t j = 0; j < set.v[i].nls; j++) {
            const label *l = &set.v[i].ls[j];
            uint64_t hv = str_hash(l->value, str_hash(l->name, 0xcbf29ce484222325ULL) ^ 0xff);
            size_t k = (size_t)hv & (cap - 1);
            while (tab[k].name && !(tab[k].hash == hv && strcmp(tab[k].name, l->name) == 0 &&
                                    strcmp(tab[k].value, l->value) == 0))
                k = (k + 1) & (cap - 1);
            if (!tab[k].name) {
                tab[k].name = l->name;
                tab[k].value = l->value;
                tab[k].hash = hv;
                npairs++;
            }
            tab[k].series++;
        }
    tops = calloc(npairs * 2 + 1, sizeof *tops);
    if (!tops) {
        http_resp_json_error(resp, 500, "internal", "out of memory");
        goto out;
    }
    buf *b = &resp->body;
    begin_success(resp);
    buf_printf(
        b,
        "{\"headStats\":{\"numSeries\":%llu,\"numLabelPairs\":%zu,\"chunkCount\":%llu,\"minTime\":%lld,"
        "\"maxTime\":%lld}",
        (unsigned long long)ss.head_series, npairs, (unsigned long long)ss.head_chunks,
        (long long)ss.head_min_time, (long long)ss.head_max_time);
    /* seriesCountByMetricName */
    size_t n = 0;
    for (size_t k = 0; k < cap; k++)
        if (tab[k].name && strcmp(tab[k].name, LABEL_NAME) == 0)
            tops[n++] = (top_stat){tab[k].value, NULL, tab[k].series};
    write_top(b, "seriesCountByMetricName", tops, n, limit, 0);
    /* labelValueCountByLabelName and memoryInBytesByLabelName: group the pairs by name */
    n = 0;
    for (size_t k = 0; k < cap; k++)
        if (tab[k].name)
            tops[n++] = (top_stat){tab[k].name, tab[k].value, tab[k].series};
    qsort(tops, n, sizeof *tops, name_value_cmp);
    top_stat *byname = tops + npairs;
    size_t nn = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && strcmp(tops[j].name, tops[i].name) == 0)
            j++;
        byname[nn++] = (top_stat){tops[i].name, NULL, (uint64_t)(j - i)};
        i = j;
    }
    write_top(b, "labelValueCountByLabelName", byname, nn, limit, 0);
    nn = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        uint64_t bytes = 0;
        while (j < n && strcmp(tops[j].name, tops[i].name) == 0) {
            bytes += strlen(tops[j].value) * tops[j].count;
            j++;
        }
        byname[nn++] = (top_stat){tops[i].name, NULL, bytes};
        i = j;
    }
    write_top(b, "memoryInBytesByLabelName", byname, nn, limit, 0);
    write_top(b, "seriesCountByLabelValuePair", tops, n, limit, 1);
    buf_putc(b, '}');
    end_success(resp, NULL);
out:
    free(tops);
    free(tab);
    series_set_free(&set);
    if (q)
        querier_close(q);
}

/* ---- endpoints with nothing to report yet ----------------------------- */

static void h_walreplay(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    (void)req;
    static const char done[] = "{\"min\":0,\"max\":0,\"current\":0,\"state\":\"done\"}";
    static const char waiting[] = "{\"min\":0,\"max\":0,\"current\":0,\"state\":\"in progress\"}";
    if (atomic_load(&a->st))
        http_resp_json_success(resp, done, sizeof done - 1);
    else
        http_resp_json_success(resp, waiting, sizeof waiting - 1);
}

/* A non-negative integer parameter (Prometheus' strconv.Atoi), -1 when absent. */
static int int_param(http_req *req, http_resp *resp, const char *name, long *out) {
    const char *v = param(req, name);
    *out = -1;
    if (!*v)
        return 0;
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    if (!end || *end || end == v) {
        bad_data(resp, "invalid parameter \"%s\": strconv.Atoi: parsing \"%s\": invalid syntax", name, v);
        return -1;
    }
    /* Prometheus: a limit of 0 or below means no limit */
    *out = n > 0 ? (long)n : -1;
    return 0;
}

static void send_buf(http_resp *resp, buf *b, int rc) {
    if (rc != 0 || !b->data)
        http_resp_json_error(resp, 500, "internal", kiln_strerror(rc ? rc : KILN_ENOMEM));
    else
        http_resp_json_success(resp, b->data, b->len);
    buf_free(b);
}

static void h_metadata(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    long limit, lpm;
    if (int_param(req, resp, "limit", &limit) != 0 || int_param(req, resp, "limit_per_metric", &lpm) != 0)
        return;
    api_v1_scrape *sc = atomic_load(&a->scrape);
    if (!sc) {
        http_resp_json_success(resp, "{}", 2);
        return;
    }
    buf b = {0};
    send_buf(resp, &b, sc->metadata(sc->data, param(req, "metric"), limit, lpm, &b));
}

static void h_targets(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    char state[16];
    snprintf(state, sizeof state, "%s", param(req, "state"));
    for (char *c = state; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    api_v1_scrape *sc = atomic_load(&a->scrape);
    if (!sc) {
        static const char none[] = "{\"activeTargets\":[],\"droppedTargets\":[]}";
        http_resp_json_success(resp, none, sizeof none - 1);
        return;
    }
    buf b = {0};
    send_buf(resp, &b, sc->targets(sc->data, state, param(req, "scrapePool"), &b));
}

static void h_targets_metadata(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    long limit;
    if (int_param(req, resp, "limit", &limit) != 0)
        return;
    const char *sel = param(req, "match_target");
    promql_ast *ast = NULL;
    if (*sel) {
        kiln_err err = {0};
        int rc = promql_parse(sel, &ast, &err);
        if (rc == 0 && ast->root->kind != PROMQL_VECTOR_SELECTOR) {
            promql_ast_free(ast);
            bad_data(resp, "invalid parameter \"match_target\": not a series selector: %s", sel);
            return;
        }
        if (rc != 0) {
            invalid_param(resp, "match_target", &err);
            return;
        }
    }
    api_v1_scrape *sc = atomic_load(&a->scrape);
    buf b = {0};
    int rc = 0;
    if (!sc)
        buf_puts(&b, "[]");
    else
        rc = sc->targets_metadata(sc->data, ast ? ast->root->u.vs.matchers : NULL,
                                  ast ? ast->root->u.vs.nmatchers : 0, param(req, "metric"), limit, &b);
    promql_ast_free(ast);
    send_buf(resp, &b, rc);
}

static void h_exemplars(http_req *req, http_resp *resp, void *data) {
    (void)data;
    int64_t start = 0, end = 0;
    if (time_param(req, resp, "start", API_V1_MIN_TIME_MS, &start) != 0 ||
        time_param(req, resp, "end", API_V1_MAX_TIME_MS, &end) != 0)
        return;
    if (end < start) {
        bad_data(resp, "end timestamp must not be before start time");
        return;
    }
    promql_ast *ast = NULL;
    kiln_err err = {0};
    int rc = promql_parse(param(req, "query"), &ast, &err);
    if (rc != 0) {
        if (rc == KILN_EINVAL)
            invalid_param(resp, "query", &err);
        else
            http_resp_json_error(resp, 500, "internal", kiln_strerror(rc));
        return;
    }
    promql_ast_free(ast);
    http_resp_json_success(resp, "[]", 2);
}

/* The storage for an admin endpoint: NULL (the answer sent) when admin APIs
 * are off or the replay is not done. */
static storage *admin_storage(api_v1 *a, http_resp *resp) {
    if (!a->enable_admin) {
        http_resp_json_error(resp, 503, "unavailable", "admin APIs disabled");
        return NULL;
    }
    return get_storage(a, resp);
}

/* POST /api/v1/admin/tsdb/snapshot[?skip_head=true] */
static void h_snapshot(http_req *req, http_resp *resp, void *data) {
    storage *st = admin_storage(data, resp);
    if (!st)
        return;
    const char *sh = param(req, "skip_head");
    int skip = 0;
    if (*sh) {
        if (!strcmp(sh, "true") || !strcmp(sh, "1") || !strcmp(sh, "t") || !strcmp(sh, "T") ||
            !strcmp(sh, "TRUE") || !strcmp(sh, "True"))
            skip = 1;
        else if (strcmp(sh, "false") && strcmp(sh, "0") && strcmp(sh, "f") && strcmp(sh, "F") &&
                 strcmp(sh, "FALSE") && strcmp(sh, "False")) {
            bad_data(resp,
                     "unable to parse boolean 'skip_head' argument: strconv.ParseBool: parsing \"%s\": "
                     "invalid syntax",
                     sh);
            return;
        }
    }
    char name[64];
    kiln_err err = {0};
    if (storage_snapshot(st, !skip, name, sizeof name, &err) != 0) {
        http_resp_json_error(resp, 500, "internal", err.msg);
        return;
    }
    buf b = {0};
    buf_puts(&b, "{\"name\":");
    json_str(&b, name);
    buf_putc(&b, '}');
    send_buf(resp, &b, 0);
}

/* POST|PUT /api/v1/admin/tsdb/delete_series?match[]=...&start=&end= : 204 */
static void h_delete_series(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    storage *st = admin_storage(a, resp);
    if (!st)
        return;
    const char *one;
    if (http_req_params(req, "match[]", &one, 1) == 0) {
        bad_data(resp, "no match[] parameter provided");
        return;
    }
    int64_t start = 0, end = 0;
    if (time_param(req, resp, "start", API_V1_MIN_TIME_MS, &start) != 0 ||
        time_param(req, resp, "end", API_V1_MAX_TIME_MS, &end) != 0)
        return;
    match_sets m;
    if (match_param(req, resp, &m, 1) != 0)
        return;
    for (size_t i = 0; i < m.n; i++) {
        kiln_err err = {0};
        if (storage_delete_series(st, m.ms[i], m.nms[i], start, end, &err) != 0) {
            http_resp_json_error(resp, 500, "internal", err.msg);
            match_sets_free(&m);
            return;
        }
    }
    match_sets_free(&m);
    resp->status = 204;
}

/* POST|PUT /api/v1/admin/tsdb/clean_tombstones : 204 */
static void h_clean_tombstones(http_req *req, http_resp *resp, void *data) {
    (void)req;
    storage *st = admin_storage(data, resp);
    if (!st)
        return;
    kiln_err err = {0};
    if (storage_clean_tombstones(st, &err) != 0) {
        http_resp_json_error(resp, 500, "internal", err.msg);
        return;
    }
    resp->status = 204;
}

static void h_rules(http_req *req, http_resp *resp, void *data) {
    (void)req, (void)data;
    http_resp_json_success(resp, "{\"groups\":[]}", 13);
}

static void h_alerts(http_req *req, http_resp *resp, void *data) {
    (void)req, (void)data;
    http_resp_json_success(resp, "{\"alerts\":[]}", 13);
}

static void h_alertmanagers(http_req *req, http_resp *resp, void *data) {
    (void)req, (void)data;
    static const char am[] = "{\"activeAlertmanagers\":[],\"droppedAlertmanagers\":[]}";
    http_resp_json_success(resp, am, sizeof am - 1);
}

/* ---- registration ----------------------------------------------------- */

int api_v1_register(http_server *s, api_v1 *a) {
    static const struct {
        const char *methods, *path;
        http_handler_fn fn;
        const char *label;
        unsigned flags;
    } routes[] = {
        {"GET,POST", "/api/v1/query", h_query, NULL, HTTP_ROUTE_QUEUED},
        {"GET,POST", "/api/v1/query_range", h_query_range, NULL, HTTP_ROUTE_QUEUED},
        {"GET,POST", "/api/v1/format_query", h_format_query, NULL, HTTP_ROUTE_WORKER},
        {"GET,POST", "/api/v1/parse_query", h_parse_query, NULL, HTTP_ROUTE_WORKER},
        {"GET,POST", "/api/v1/series", h_series, NULL, HTTP_ROUTE_WORKER},
        {"GET,POST", "/api/v1/labels", h_labels, NULL, HTTP_ROUTE_WORKER},
        {"GET", "/api/v1/label/*", h_label_values, "/api/v1/label/:name/values", HTTP_ROUTE_WORKER},
        {"GET", "/api/v1/metadata", h_metadata, NULL, HTTP_ROUTE_WORKER},
        {"GET", "/api/v1/targets", h_targets, NULL, HTTP_ROUTE_WORKER},
        {"POST,PUT", "/api/v1/admin/tsdb/snapshot", h_snapshot, NULL, HTTP_ROUTE_WORKER},
        {"POST,PUT", "/api/v1/admin/tsdb/delete_series", h_delete_series, NULL, HTTP_ROUTE_WORKER},
        {"POST,PUT", "/api/v1/admin/tsdb/clean_tombstones", h_clean_tombstones, NULL, HTTP_ROUTE_WORKER},
        {"GET", "/api/v1/targets/metadata", h_targets_metadata, NULL, HTTP_ROUTE_WORKER},
        {"GET,POST", "/api/v1/query_exemplars", h_exemplars, NULL, HTTP_ROUTE_WORKER},
        {"GET", "/api/v1/rules", h_rules, NULL, HTTP_ROUTE_WORKER},
        {"GET", "/api/v1/alerts", h_alerts, NULL, HTTP_ROUTE_WORKER},
        {"GET", "/api/v1/alertmanagers", h_alertmanagers, NULL, HTTP_ROUTE_WORKER},
        {"GET", "/api/v1/status/tsdb", h_tsdb, NULL, HTTP_ROUTE_WORKER},
        {"GET", "/api/v1/status/walreplay", h_walreplay, NULL, HTTP_ROUTE_WORKER},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (http_route(s, routes[i].methods, routes[i].path, routes[i].flags, routes[i].fn, a,
                       routes[i].label) != 0)
            return KILN_ENOMEM;
    http_server_set_queue(s, a->max_concurrency, queue_timeout_ms, a);
    return 0;
}
