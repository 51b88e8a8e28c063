/*
 * query_api.c - the PromQL endpoints of /api/v1: query and query_range
 * (evaluated by query/ and written as Prometheus writes them),
 * format_query and parse_query; and the JSON of times and sample values
 * (query_exemplars is in exemplars.c).
 *
 * Timestamps are written as seconds with the millisecond fraction
 * (Prometheus' marshalTimestamp: "1.100" keeps its zeros) and sample values
 * as strings formatted like Go's FormatFloat(v, 'f', -1, 64).  The result
 * writers append straight into the response body, point by point.
 *
 * query and query_range are QUEUED routes: they run on the HTTP server's
 * query pool, at most --query.max-concurrency at once, and the others wait
 * in its queue (see queue_timeout_ms).  Remote writes and the other endpoints wait for neither.
 *
 * Called by the HTTP server through the routes registered
 * here (api_v1_register calls the v1_register_* function); query and
 * query_range run on query pool threads, the others on libuv's worker threads (see v1.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/v1.h"

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
        v1_invalid_param(resp, "query", err);
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

/* A query's timeout in *ms: its timeout parameter capped by --query.timeout
 * (engine_ms; 0: none), engine_ms when absent.  KILN_EINVAL when the
 * parameter does not parse. */
static int query_timeout(http_req *req, int64_t engine_ms, int64_t *ms, kiln_err *err) {
    const char *to = v1_param(req, "timeout");
    *ms = engine_ms;
    if (!*to)
        return 0;
    int64_t ns = 0;
    int rc = api_v1_parse_duration(to, &ns, err);
    if (rc != 0)
        return rc;
    int64_t t = ns / 1000000;
    if (t < 1)
        t = 1; /* an already expired deadline: the query times out at once */
    if (engine_ms <= 0 || t < engine_ms)
        *ms = t;
    return 0;
}

static int query_params(api_v1 *a, http_req *req, http_resp *resp, qparams *qp) {
    memset(qp, 0, sizeof *qp);
    qp->eng = a->engine;
    kiln_err err = {0};
    if (query_timeout(req, a->engine.opts.timeout_ms, &qp->eng.opts.timeout_ms, &err) != 0) {
        v1_invalid_param(resp, "timeout", &err);
        return -1;
    }
    const char *lb = v1_param(req, "lookback_delta");
    if (*lb) {
        int64_t ns = 0;
        if (api_v1_parse_duration(lb, &ns, &err) != 0) {
            v1_bad_data(resp, "error parsing lookback delta duration: %s", err.msg);
            return -1;
        }
        qp->o.lookback_delta_ms = ns / 1000000;
    }
    qp->stats = *v1_param(req, "stats") != 0;
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
    int64_t ms = 0;
    if (query_timeout(req, a->engine.opts.timeout_ms, &ms, NULL) != 0)
        return 1; /* the handler answers bad_data */
    return ms;
}

/* After the parameters are checked: a query that waited its whole timeout
 * for a slot is answered as Prometheus does (503 "query timed out in query
 * queue"; its parse error first); one that got a slot has what is left of
 * its timeout.  1 when the response is written. */
static int queue_check(http_req *req, http_resp *resp, qparams *qp, int wrap) {
    if (req->queue_timed_out) {
        kiln_err err = {0};
        int rc = query_parse_check(v1_param(req, "query"), &err);
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

/* As Prometheus' MarshalHistogram: no "buckets" key when all are empty. */
void api_v1_json_histogram(buf *b, const histogram *h) {
    buf_puts(b, "{\"count\":");
    api_v1_json_value(b, h->count);
    buf_puts(b, ",\"sum\":");
    api_v1_json_value(b, h->sum);
    query_hist_bucket *v;
    long n = query_hist_buckets(h, &v);
    if (n < 0) {
        b->oom = 1; /* the sticky out-of-memory the response checks */
        return;
    }
    for (long k = 0; k < n; k++) {
        buf_puts(b, k ? ",[" : ",\"buckets\":[[");
        buf_printf(b, "%d,", v[k].boundary);
        api_v1_json_value(b, v[k].lower);
        buf_putc(b, ',');
        api_v1_json_value(b, v[k].upper);
        buf_putc(b, ',');
        api_v1_json_value(b, v[k].count);
        buf_putc(b, ']');
    }
    if (n > 0)
        buf_putc(b, ']');
    free(v);
    buf_putc(b, '}');
}

static void json_hpoint(buf *b, int64_t t, const histogram *h) {
    buf_putc(b, '[');
    api_v1_json_time(b, t);
    buf_putc(b, ',');
    api_v1_json_histogram(b, h);
    buf_putc(b, ']');
}

/* A series: a vector's "value" or "histogram"; a matrix's "values" (float
 * points) and "histograms" (histogram points), each only when it has some. */
static void write_series_obj(buf *b, const query_series *s, int matrix) {
    buf_puts(b, "{\"metric\":");
    labels_json(b, s->ls, s->nls);
    if (matrix) {
        size_t nh = 0;
        for (size_t j = 0; s->hist && j < s->npts; j++)
            nh += s->hist[j] != NULL;
        if (nh < s->npts || s->npts == 0) {
            buf_puts(b, ",\"values\":[");
            int first = 1;
            for (size_t j = 0; j < s->npts; j++) {
                if (s->hist && s->hist[j])
                    continue;
                if (!first)
                    buf_putc(b, ',');
                first = 0;
                json_point(b, s->pts[j].t, s->pts[j].v);
            }
            buf_putc(b, ']');
        }
        if (nh) {
            buf_puts(b, ",\"histograms\":[");
            int first = 1;
            for (size_t j = 0; j < s->npts; j++) {
                if (!s->hist[j])
                    continue;
                if (!first)
                    buf_putc(b, ',');
                first = 0;
                json_hpoint(b, s->pts[j].t, s->hist[j]);
            }
            buf_putc(b, ']');
        }
        buf_putc(b, '}');
    } else {
        if (s->npts && s->hist && s->hist[0]) {
            buf_puts(b, ",\"histogram\":");
            json_hpoint(b, s->pts[0].t, s->hist[0]);
        } else {
            buf_puts(b, ",\"value\":");
            if (s->npts)
                json_point(b, s->pts[0].t, s->pts[0].v);
            else
                buf_puts(b, "null");
        }
        buf_putc(b, '}');
    }
}

/* Writes {"resultType":...,"result":...[,"stats":...]} and the envelope. */
static void write_result(http_resp *resp, const query_result *r, const qparams *qp, double secs) {
    buf *b = &resp->body;
    http_resp_json_begin(resp);
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
            trunc = V1_TRUNCATED;
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
    v1_notes nt = {(const char *const *)r->warnings, r->nwarnings, (const char *const *)r->infos, r->ninfos,
                   trunc};
    v1_end_success(resp, &nt);
}

static void h_query(http_req *req, http_resp *resp, void *data) {
    api_v1 *a = data;
    size_t limit = 0;
    if (v1_limit_param(req, resp, &limit) != 0)
        return;
    int64_t t = 0;
    if (v1_time_param(req, resp, "time", time_now_ms(), &t) != 0)
        return;
    qparams qp;
    if (query_params(a, req, resp, &qp) != 0 || queue_check(req, resp, &qp, 1))
        return;
    qp.limit = limit;
    storage *st = v1_storage(a, resp);
    if (!st)
        return;
    query_result r;
    memset(&r, 0, sizeof r);
    kiln_err err = {0};
    double t0 = time_mono_sec();
    int rc = query_instant(&qp.eng, st, v1_param(req, "query"), t, &qp.o, &r, &err);
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
    if (v1_limit_param(req, resp, &limit) != 0)
        return;
    kiln_err err = {0};
    int64_t start = 0, end = 0, step_ns = 0;
    if (api_v1_parse_time(v1_param(req, "start"), &start, &err) != 0) {
        v1_invalid_param(resp, "start", &err);
        return;
    }
    if (api_v1_parse_time(v1_param(req, "end"), &end, &err) != 0) {
        v1_invalid_param(resp, "end", &err);
        return;
    }
    if (end < start) {
        v1_bad_data(resp, "invalid parameter \"end\": end timestamp must not be before start time");
        return;
    }
    if (api_v1_parse_duration(v1_param(req, "step"), &step_ns, &err) != 0) {
        v1_invalid_param(resp, "step", &err);
        return;
    }
    if (step_ns <= 0) {
        v1_bad_data(
            resp,
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. "
            "Try a positive integer");
        return;
    }
    /* end.Sub(start)/step > 11000, in Go's saturating nanoseconds */
    uint64_t span_ms = (uint64_t)end - (uint64_t)start;
    int64_t span_ns = span_ms > (uint64_t)(INT64_MAX / 1000000) ? INT64_MAX : (int64_t)span_ms * 1000000;
    if (span_ns / step_ns > 11000) {
        v1_bad_data(resp,
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
    storage *st = v1_storage(a, resp);
    if (!st)
        return;
    query_result r;
    memset(&r, 0, sizeof r);
    double t0 = time_mono_sec();
    /* the results cache, unless asked not to (its samples count would
     * leave out the steps it kept, so not with stats either) */
    const char *cc = http_req_header(req, "Cache-Control");
    query_rcache *rcache = a->rcache;
    if (qp.stats || strcmp(v1_param(req, "nocache"), "1") == 0 || (cc && strstr(cc, "no-cache"))) {
        query_rcache_bypass(rcache);
        rcache = NULL;
    }
    int rc = query_range_cached(rcache, &qp.eng, st, v1_param(req, "query"), start, end, step_ms, &qp.o, 0,
                                &r, &err);
    if (rc != 0) {
        query_error(resp, rc, &err, 0);
        return;
    }
    write_result(resp, &r, &qp, time_mono_sec() - t0);
    query_result_free(&r);
}

/* ---- format_query, parse_query ------------------------------------------ */

/* The answer to a query parameter that failed to parse: 400 with the
 * parse error, 500 for anything else. */
static void parse_failed(http_resp *resp, int rc, const kiln_err *err) {
    if (rc == KILN_EINVAL)
        v1_invalid_param(resp, "query", err);
    else
        v1_internal(resp, rc, NULL);
}

static void h_format_query(http_req *req, http_resp *resp, void *data) {
    (void)data;
    kiln_err err = {0};
    buf f = BUF_INIT;
    int rc = query_parse_pretty(v1_param(req, "query"), &f, &err);
    if (rc != 0) {
        parse_failed(resp, rc, &err);
    } else {
        http_resp_json_begin(resp);
        json_strn(&resp->body, f.data ? f.data : "", f.len);
        v1_end_success(resp, NULL);
    }
    buf_free(&f);
}

static void h_parse_query(http_req *req, http_resp *resp, void *data) {
    (void)data;
    kiln_err err = {0};
    http_resp_json_begin(resp);
    int rc = query_parse_json(v1_param(req, "query"), &resp->body, &err);
    if (rc != 0)
        parse_failed(resp, rc, &err); /* replaces what was begun */
    else
        v1_end_success(resp, NULL);
}

int v1_register_query(http_server *s, api_v1 *a) {
    static const v1_route routes[] = {
        {"GET,POST", "/api/v1/query", h_query, NULL, HTTP_ROUTE_QUEUED},
        {"GET,POST", "/api/v1/query_range", h_query_range, NULL, HTTP_ROUTE_QUEUED},
        {"GET,POST", "/api/v1/format_query", h_format_query, NULL, HTTP_ROUTE_WORKER},
        {"GET,POST", "/api/v1/parse_query", h_parse_query, NULL, HTTP_ROUTE_WORKER},
    };
    int rc = v1_register_routes(s, a, V1_ROUTES(routes));
    /* a burst of dashboards' queries may wait, a flood is refused */
    int waiting = a->max_concurrency > 16 ? 4 * a->max_concurrency : 64;
    if (rc == 0)
        http_server_set_queue(s, a->max_concurrency, a->max_concurrency ? waiting : 0, queue_timeout_ms, a);
    return rc;
}
