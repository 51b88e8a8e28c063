/*
 * bench_remotewrite.c - a remote write load generator: N keep-alive
 * connections POSTing snappy-compressed protobuf WriteRequests to a URL as
 * fast as the receiver answers, then the samples/s it accepted.
 *
 *   build/opt/tests/bench/bench_remotewrite [--url=http://127.0.0.1:9090/api/v1/write]
 *       [--connections=4] [--series=100000] [--batch=2000] [--duration=10]
 *       [--labels=4] [--interval-ms=1000] [--otlp] [--histograms=N]
 *
 * --otlp sends the same series as OTLP/HTTP instead (an uncompressed
 * protobuf ExportMetricsServiceRequest to e.g. /api/v1/otlp/v1/metrics):
 * one gauge Metric a data point, named as the series' __name__, its other
 * labels as the point's attributes, no resource attributes, so kiln and
 * Prometheus 3 store exactly the series remote write does.
 *
 * Works against kiln and against `prometheus --web.enable-remote-write-receiver`
 * (same URL path).  Series look like scraped ones: __name__ from 100 metric
 * names, instance, job and `--labels` more, ~110 bytes of labels.  Series i
 * belongs to connection i % connections, so each series' samples go out in
 * order; one request carries `batch` series with one sample each, and a
 * connection's next pass over its series advances the timestamps by
 * interval-ms (starting at the current time), as a Prometheus sender would.
 *
 * Speed of the generator itself: each request's protobuf is a template built
 * once, with fixed-width timestamps (6-byte varints, valid from 2004 to 2039)
 * and values patched in place, then snappy-compressed; the client's CPU
 * time is printed so it can be subtracted from a shared machine's budget.
 *
 * --histograms=N sends one native histogram a series instead of a float
 * sample (remote write 1.0 Histogram, integer counts): schema 3, a zero
 * bucket, one span of N populated buckets (N at most 120) whose counts
 * grow by one each pass, count and sum to match; "samples" then counts
 * histograms.  Prometheus 2.42 accepts them with
 * --enable-feature=native-histograms.
 *
 * Output: one line a second (samples/s in that second), then a summary:
 * samples sent and accepted, requests by status, samples/s, and the first
 * error body seen.  Exit status 1 when any request failed.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

typedef struct opts {
    char host[256];
    char port[16];
    char path[512];
    int connections;
    size_t series;
    size_t batch;
    double duration;
    int labels;
    int64_t interval_ms;
    int otlp;
    int hbuckets; /* --histograms: buckets a histogram, 0 for float samples */
} opts;

/* One request slot: its raw protobuf and where each sample's fields are. */
typedef struct slot {
    uint8_t *raw;
    size_t len;
    size_t *val_off; /* offset of the 8-byte double */
    size_t *ts_off;  /* offset of the 6-byte varint (OTLP: of the fixed64 nanoseconds) */
    size_t *h_off;   /* --histograms: offset of the Histogram message (its layout: hist_template) */
    size_t n;
} slot;

typedef struct conn {
    const opts *o;
    int id;
    slot *slots;
    size_t nslots;
    pthread_t th;
    /* results */
    uint64_t sent, accepted, req_ok, req_4xx, req_5xx, req_other;
    char first_err[512];
} conn;

static atomic_uint_fast64_t g_accepted;
static atomic_int g_stop;

/* ---- protobuf encoding ----------------------------------------------------- */

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
} wbuf;

static void wb_need(wbuf *b, size_t k) {
    if (b->n + k <= b->cap)
        return;
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->n + k)
        cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    b->cap = cap;
}

static void wb_put(wbuf *b, const void *p, size_t k) {
    wb_need(b, k);
    memcpy(b->p + b->n, p, k);
    b->n += k;
}

static void wb_varint(wbuf *b, uint64_t v) {
    uint8_t t[10];
    size_t k = 0;
    do {
        t[k++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v);
    wb_put(b, t, k);
}

static void put_ts6(uint8_t *p, int64_t t) {
    uint64_t v = (uint64_t)t;
    for (int i = 0; i < 5; i++) {
        p[i] = (uint8_t)((v & 0x7f) | 0x80);
        v >>= 7;
    }
    p[5] = (uint8_t)(v & 0x7f);
}

/* A 6-byte (padded) varint, which protobuf decoders accept like a short one. */
static void put_varint6(uint8_t *p, uint64_t v) {
    put_ts6(p, (int64_t)v);
}

/*
 * The Histogram message of --histograms, patched in place each pass (the
 * offsets below, from the message start):
 *
 *   +0  count_int       0x08 + 6-byte varint        (patched at +1)
 *   +7  sum             0x19 + double               (patched at +8)
 *   +16 schema 3        0x20 0x06
 *   +18 zero_threshold  0x29 + double 1e-128
 *   +27 zero_count_int  0x30 + 6-byte varint        (patched at +28)
 *   +34 positive_spans  0x5a 4 {offset 5, length n}
 *   +40 positive_deltas 0x62 len, first delta as a 6-byte varint (patched
 *                       at +42), then n-1 deltas alternating +1, -1
 *   +47+n timestamp     0x78 + 6-byte varint        (patched at +48+n)
 */
#define HIST_LEN(n) (54 + (size_t)(n))
static void hist_template(uint8_t *p, int n) {
    memset(p, 0, HIST_LEN(n));
    p[0] = 0x08;
    p[7] = 0x19;
    p[16] = 0x20, p[17] = 0x06;
    p[18] = 0x29;
    double zt = 1e-128;
    memcpy(p + 19, &zt, 8);
    p[27] = 0x30;
    p[34] = 0x5a, p[35] = 4, p[36] = 0x08, p[37] = 0x0a, p[38] = 0x10, p[39] = (uint8_t)n;
    p[40] = 0x62, p[41] = (uint8_t)(6 + n - 1);
    for (int i = 1; i < n; i++)
        p[47 + i] = (uint8_t)(i % 2 ? 2 : 1); /* zigzag(+1), zigzag(-1) */
    p[47 + n] = 0x78;
}

/* Pass c (>= 1) of a histogram: buckets c, c+1, c, ...; zero bucket c. */
static void hist_patch(uint8_t *p, int n, uint64_t c, double sum, int64_t t) {
    uint64_t count = (uint64_t)n * c + (uint64_t)(n / 2) + c;
    put_varint6(p + 1, count);
    memcpy(p + 8, &sum, 8);
    put_varint6(p + 28, c);
    put_varint6(p + 42, c << 1);
    put_ts6(p + 48 + n, t);
}

static void wb_label(wbuf *b, const char *name, const char *value) {
    size_t nl = strlen(name), vl = strlen(value);
    uint8_t t = 0x0a;
    wb_put(b, &t, 1);
    wb_varint(b, 2 + nl + 2 + vl); /* both lengths < 128 */
    t = 0x0a;
    wb_put(b, &t, 1);
    wb_varint(b, nl);
    wb_put(b, name, nl);
    t = 0x12;
    wb_put(b, &t, 1);
    wb_varint(b, vl);
    wb_put(b, value, vl);
}

/* The labels of series i, sorted by name, encoded as TimeSeries.labels. */
static void series_labels(const opts *o, size_t i, wbuf *b) {
    char name[64], inst[64], v[64];
    snprintf(name, sizeof name, "bench_metric_%03zu_total", i % 100);
    snprintf(inst, sizeof inst, "host-%05zu.example.com:9100", (i / 100) % 1000);
    wb_label(b, "__name__", name);
    wb_label(b, "instance", inst);
    snprintf(v, sizeof v, "job-%zu", i / 100000);
    wb_label(b, "job", v);
    for (int k = 0; k < o->labels && k < 10; k++) { /* label_0..label_9 sort after job */
        char ln[32];
        snprintf(ln, sizeof ln, "label_%d", k);
        snprintf(v, sizeof v, "value-%zu-%d", (i / 100000 + (size_t)k * 7919 + i) % 1000, k);
        wb_label(b, ln, v);
    }
}

/* OTLP: a KeyValue{key, AnyValue{string_value}} as NumberDataPoint.attributes. */
static void wb_attr(wbuf *b, const char *key, const char *value) {
    size_t kl = strlen(key), vl = strlen(value);
    uint8_t t = 0x3a;
    wb_put(b, &t, 1);
    wb_varint(b, 2 + kl + 2 + 2 + vl); /* all lengths < 128 */
    t = 0x0a;
    wb_put(b, &t, 1);
    wb_varint(b, kl);
    wb_put(b, key, kl);
    t = 0x12;
    wb_put(b, &t, 1);
    wb_varint(b, 2 + vl);
    t = 0x0a;
    wb_put(b, &t, 1);
    wb_varint(b, vl);
    wb_put(b, value, vl);
}

/* OTLP: series i as Metric{name, gauge{data_points: [point]}}, tagged as
 * ScopeMetrics.metrics; *val and *ts are the offsets of the double and the
 * fixed64 time in b. */
static void otlp_metric(const opts *o, size_t i, wbuf *b, size_t *val, size_t *ts) {
    wbuf ls = {0}, pt = {0}, g = {0};
    series_labels(o, i, &ls);
    /* ls holds 0x0a-tagged Labels: re-read them (name first) into attributes */
    char name[128] = "";
    for (size_t p = 0; p < ls.n;) {
        size_t len = ls.p[p + 1], nl = ls.p[p + 3], vl = ls.p[p + 3 + 1 + nl + 1];
        char ln[128], lv[128];
        memcpy(ln, ls.p + p + 4, nl);
        ln[nl] = 0;
        memcpy(lv, ls.p + p + 4 + nl + 2, vl);
        lv[vl] = 0;
        if (!strcmp(ln, "__name__"))
            snprintf(name, sizeof name, "%s", lv);
        else
            wb_attr(&pt, ln, lv);
        p += 2 + len;
    }
    static const uint8_t tail[1 + 8 + 1 + 8] = {0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0x21};
    size_t tail_at = pt.n;
    wb_put(&pt, tail, sizeof tail);
    uint8_t t = 0x0a; /* Gauge.data_points */
    wb_put(&g, &t, 1);
    wb_varint(&g, pt.n);
    size_t pt_at = g.n;
    wb_put(&g, pt.p, pt.n);
    wbuf m = {0};
    size_t nl = strlen(name);
    t = 0x0a; /* Metric.name */
    wb_put(&m, &t, 1);
    wb_varint(&m, nl);
    wb_put(&m, name, nl);
    t = 0x2a; /* Metric.gauge */
    wb_put(&m, &t, 1);
    wb_varint(&m, g.n);
    size_t g_at = m.n;
    wb_put(&m, g.p, g.n);
    t = 0x12; /* ScopeMetrics.metrics */
    wb_put(b, &t, 1);
    wb_varint(b, m.n);
    size_t base = b->n + g_at + pt_at + tail_at;
    *ts = base + 1;
    *val = base + 10;
    wb_put(b, m.p, m.n);
    free(ls.p);
    free(pt.p);
    free(g.p);
    free(m.p);
}

/* OTLP: wraps the metrics as ExportMetricsServiceRequest{ResourceMetrics{ScopeMetrics}}. */
static void otlp_wrap(slot *sl, wbuf *metrics) {
    wbuf rm = {0}, req = {0};
    uint8_t t = 0x12; /* ResourceMetrics.scope_metrics */
    wb_put(&rm, &t, 1);
    wb_varint(&rm, metrics->n);
    t = 0x0a; /* ExportMetricsServiceRequest.resource_metrics */
    wb_put(&req, &t, 1);
    wb_varint(&req, rm.n + metrics->n);
    wb_put(&req, rm.p, rm.n);
    size_t shift = req.n;
    wb_put(&req, metrics->p, metrics->n);
    for (size_t k = 0; k < sl->n; k++) {
        sl->val_off[k] += shift;
        sl->ts_off[k] += shift;
    }
    free(rm.p);
    sl->raw = req.p;
    sl->len = req.n;
}

static void build_slots(conn *c) {
    const opts *o = c->o;
    size_t mine = 0;
    for (size_t i = (size_t)c->id; i < o->series; i += (size_t)o->connections)
        mine++;
    c->nslots = (mine + o->batch - 1) / o->batch;
    c->slots = calloc(c->nslots ? c->nslots : 1, sizeof *c->slots);
    size_t i = (size_t)c->id;
    wbuf ls = {0}, ts = {0};
    for (size_t s = 0; s < c->nslots; s++) {
        slot *sl = &c->slots[s];
        wbuf req = {0};
        sl->val_off = malloc(o->batch * sizeof *sl->val_off);
        sl->ts_off = malloc(o->batch * sizeof *sl->ts_off);
        sl->h_off = malloc(o->batch * sizeof *sl->h_off);
        for (size_t k = 0; k < o->batch && i < o->series && o->otlp; k++, i += (size_t)o->connections) {
            otlp_metric(o, i, &req, &sl->val_off[sl->n], &sl->ts_off[sl->n]);
            sl->n++;
        }
        if (o->otlp) {
            otlp_wrap(sl, &req);
            free(req.p);
            continue;
        }
        for (size_t k = 0; k < o->batch && i < o->series; k++, i += (size_t)o->connections) {
            ls.n = 0;
            series_labels(o, i, &ls);
            /* TimeSeries = labels + samples{0x09 double, 0x10 6-byte varint} */
            ts.n = 0;
            wb_put(&ts, ls.p, ls.n);
            if (o->hbuckets) {
                /* TimeSeries = labels + histograms{...} */
                uint8_t hh[2] = {0x22, (uint8_t)HIST_LEN(o->hbuckets)};
                wb_put(&ts, hh, 2);
                size_t hoff = ts.n;
                uint8_t tmpl[HIST_LEN(120)];
                hist_template(tmpl, o->hbuckets);
                wb_put(&ts, tmpl, HIST_LEN(o->hbuckets));
                uint8_t tag = 0x0a;
                wb_put(&req, &tag, 1);
                wb_varint(&req, ts.n);
                sl->h_off[sl->n] = req.n + hoff;
                sl->n++;
                wb_put(&req, ts.p, ts.n);
                continue;
            }
            static const uint8_t sample_hdr[] = {0x12, 1 + 8 + 1 + 6, 0x09};
            wb_put(&ts, sample_hdr, 3);
            size_t voff = ts.n;
            uint8_t zero[8 + 1 + 6] = {0};
            zero[8] = 0x10;
            wb_put(&ts, zero, sizeof zero);
            uint8_t tag = 0x0a;
            wb_put(&req, &tag, 1);
            wb_varint(&req, ts.n);
            sl->val_off[sl->n] = req.n + voff;
            sl->ts_off[sl->n] = req.n + voff + 9;
            sl->n++;
            wb_put(&req, ts.p, ts.n);
        }
        sl->raw = req.p;
        sl->len = req.n;
    }
    free(ls.p);
    free(ts.p);
}

/* ---- HTTP ------------------------------------------------------------------ */

static int dial(const opts *o) {
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(o->host, o->port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

static int write_all(int fd, const void *p, size_t n) {
    const char *s = p;
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Reads one response; returns the status or -1; the body (truncated) in errbuf. */
static int read_response(int fd, char *in, size_t cap, size_t *have, char *errbuf, size_t errcap) {
    char *hend = NULL;
    for (;;) {
        in[*have] = 0;
        if ((hend = strstr(in, "\r\n\r\n")))
            break;
        if (*have >= cap - 1)
            return -1;
        ssize_t k = recv(fd, in + *have, cap - 1 - *have, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        *have += (size_t)k;
    }
    int status = 0;
    if (sscanf(in, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    size_t hlen = (size_t)(hend - in) + 4;
    size_t clen = 0;
    int chunked = 0;
    for (char *l = strstr(in, "\r\n"); l && l < hend; l = strstr(l + 2, "\r\n")) {
        if (!strncasecmp(l + 2, "Content-Length:", 15))
            clen = strtoull(l + 17, NULL, 10);
        else if (!strncasecmp(l + 2, "Transfer-Encoding: chunked", 26))
            chunked = 1;
    }
    size_t total;
    for (;;) {
        if (chunked) {
            in[*have] = 0;
            char *end = strstr(in + hlen, "0\r\n\r\n");
            if (end) {
                total = (size_t)(end - in) + 5;
                break;
            }
        } else if (*have >= hlen + clen) {
            total = hlen + clen;
            break;
        }
        if (*have >= cap - 1)
            return -1;
        ssize_t k = recv(fd, in + *have, cap - 1 - *have, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        *have += (size_t)k;
    }
    if (status >= 300 && errbuf[0] == 0)
        snprintf(errbuf, errcap, "HTTP %d: %.*s", status, (int)(total - hlen), in + hlen);
    memmove(in, in + total, *have - total);
    *have -= total;
    return status;
}

static void *conn_main(void *arg) {
    conn *c = arg;
    const opts *o = c->o;
    size_t cmax = 0;
    for (size_t s = 0; s < c->nslots; s++)
        if (snappy_max_compressed_length(c->slots[s].len) > cmax)
            cmax = snappy_max_compressed_length(c->slots[s].len);
    char *z = malloc(cmax + 1024);
    char in[16384];
    size_t have = 0;
    int fd = dial(o);
    if (fd < 0) {
        snprintf(c->first_err, sizeof c->first_err, "cannot connect to %s:%s", o->host, o->port);
        return NULL;
    }
    int64_t t0 = time_now_ms();
    double value = 0;
    for (uint64_t round = 0; !atomic_load(&g_stop); round++) {
        int64_t t = t0 + (int64_t)round * o->interval_ms;
        value += 1;
        for (size_t s = 0; s < c->nslots && !atomic_load(&g_stop); s++) {
            slot *sl = &c->slots[s];
            for (size_t k = 0; k < sl->n; k++) {
                double v = value + (double)k;
                if (o->hbuckets) {
                    hist_patch(sl->raw + sl->h_off[k], o->hbuckets, round + 1, v, t);
                    continue;
                }
                memcpy(sl->raw + sl->val_off[k], &v, 8);
                if (o->otlp) {
                    uint64_t ns = (uint64_t)t * 1000000u;
                    for (int b = 0; b < 8; b++)
                        sl->raw[sl->ts_off[k] + (size_t)b] = (uint8_t)(ns >> (8 * b));
                } else {
                    put_ts6(sl->raw + sl->ts_off[k], t);
                }
            }
            size_t zn = cmax;
            if (o->otlp) { /* sent as is */
                zn = sl->len;
                memcpy(z + 1024, sl->raw, zn);
            } else if (snappy_compress((const char *)sl->raw, sl->len, z + 1024, &zn) != SNAPPY_OK) {
                goto out;
            }
            char hdr[1024];
            int hn =
                o->otlp
                    ? snprintf(hdr, sizeof hdr,
                               "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/x-protobuf\r\n"
                               "User-Agent: kiln-bench-otlp\r\nContent-Length: %zu\r\n\r\n",
                               o->path, o->host, o->port, zn)
                    : snprintf(
                          hdr, sizeof hdr,
                          "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Encoding: snappy\r\n"
                          "Content-Type: application/x-protobuf\r\nUser-Agent: kiln-bench-remotewrite\r\n"
                          "X-Prometheus-Remote-Write-Version: 0.1.0\r\nContent-Length: %zu\r\n\r\n",
                          o->path, o->host, o->port, zn);
            /* the header right before the body: one send */
            char *msg = z + 1024 - hn;
            memcpy(msg, hdr, (size_t)hn);
            if (write_all(fd, msg, (size_t)hn + zn) != 0)
                goto broken;
            int st = read_response(fd, in, sizeof in, &have, c->first_err, sizeof c->first_err);
            if (st < 0)
                goto broken;
            c->sent += sl->n;
            if (st >= 200 && st < 300) {
                c->req_ok++;
                c->accepted += sl->n;
                atomic_fetch_add(&g_accepted, sl->n);
            } else if (st >= 400 && st < 500) {
                c->req_4xx++;
            } else if (st >= 500) {
                c->req_5xx++;
            } else {
                c->req_other++;
            }
        }
    }
    goto out;
broken:
    if (!atomic_load(&g_stop) && c->first_err[0] == 0)
        snprintf(c->first_err, sizeof c->first_err, "connection broken");
    c->req_other++;
out:
    close(fd);
    free(z);
    return NULL;
}

/* ---- main ------------------------------------------------------------------ */

static int parse_url(const char *url, opts *o) {
    if (strncmp(url, "http://", 7))
        return -1;
    const char *h = url + 7;
    const char *slash = strchr(h, '/');
    const char *colon = memchr(h, ':', slash ? (size_t)(slash - h) : strlen(h));
    size_t hl = colon ? (size_t)(colon - h) : slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= sizeof o->host)
        return -1;
    memcpy(o->host, h, hl);
    o->host[hl] = 0;
    if (colon) {
        size_t pl = slash ? (size_t)(slash - colon - 1) : strlen(colon + 1);
        if (pl == 0 || pl >= sizeof o->port)
            return -1;
        memcpy(o->port, colon + 1, pl);
        o->port[pl] = 0;
    } else {
        snprintf(o->port, sizeof o->port, "80");
    }
    snprintf(o->path, sizeof o->path, "%s", slash ? slash : "/");
    return 0;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_remotewrite [--url=http://127.0.0.1:9090/api/v1/write] [--connections=4]\n"
            "       [--series=100000] [--batch=2000] [--duration=10] [--labels=4] [--interval-ms=1000]\n"
            "       [--otlp] [--histograms=N]\n");
}

int main(int argc, char **argv) {
    opts o = {
        .connections = 4, .series = 100000, .batch = 2000, .duration = 10, .labels = 4, .interval_ms = 1000};
    const char *url = "http://127.0.0.1:9090/api/v1/write";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "--url=", 6))
            url = a + 6;
        else if (!strncmp(a, "--connections=", 14))
            o.connections = atoi(a + 14);
        else if (!strncmp(a, "--series=", 9))
            o.series = strtoull(a + 9, NULL, 10);
        else if (!strncmp(a, "--batch=", 8))
            o.batch = strtoull(a + 8, NULL, 10);
        else if (!strncmp(a, "--duration=", 11))
            o.duration = atof(a + 11);
        else if (!strncmp(a, "--labels=", 9))
            o.labels = atoi(a + 9);
        else if (!strncmp(a, "--interval-ms=", 14))
            o.interval_ms = strtoll(a + 14, NULL, 10);
        else if (!strcmp(a, "--otlp"))
            o.otlp = 1;
        else if (!strncmp(a, "--histograms=", 13))
            o.hbuckets = atoi(a + 13);
        else {
            usage();
            return 2;
        }
    }
    if (parse_url(url, &o) != 0 || o.connections < 1 || o.connections > 256 || o.series == 0 ||
        o.batch == 0 || o.duration <= 0 || o.labels < 0 || o.labels > 10 || o.interval_ms <= 0 ||
        o.hbuckets < 0 || o.hbuckets > 120 || (o.hbuckets && o.otlp)) {
        usage();
        return 2;
    }
    conn *cs = calloc((size_t)o.connections, sizeof *cs);
    for (int i = 0; i < o.connections; i++) {
        cs[i].o = &o;
        cs[i].id = i;
        build_slots(&cs[i]);
    }
    printf("bench_remotewrite: %s, %d connections, %zu series, %zu samples a request, %.0fs\n", url,
           o.connections, o.series, o.batch, o.duration);
    fflush(stdout);
    double cpu0 = cpu_seconds();
    double start = time_mono_sec();
    for (int i = 0; i < o.connections; i++)
        pthread_create(&cs[i].th, NULL, conn_main, &cs[i]);
    uint64_t last = 0;
    for (int sec = 1; time_mono_sec() - start < o.duration; sec++) {
        double until = start + sec < start + o.duration ? start + sec : start + o.duration;
        double wait = until - time_mono_sec();
        if (wait > 0) {
            struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
        }
        uint64_t now = atomic_load(&g_accepted);
        printf("  %3ds %10.0f samples/s\n", sec, (double)(now - last));
        fflush(stdout);
        last = now;
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < o.connections; i++)
        pthread_join(cs[i].th, NULL);
    double elapsed = time_mono_sec() - start;
    double cpu = cpu_seconds() - cpu0;
    uint64_t sent = 0, acc = 0, ok = 0, r4 = 0, r5 = 0, ro = 0;
    const char *err = NULL;
    for (int i = 0; i < o.connections; i++) {
        sent += cs[i].sent;
        acc += cs[i].accepted;
        ok += cs[i].req_ok;
        r4 += cs[i].req_4xx;
        r5 += cs[i].req_5xx;
        ro += cs[i].req_other;
        if (!err && cs[i].first_err[0])
            err = cs[i].first_err;
    }
    printf("sent %llu samples, accepted %llu in %.2fs: %.0f samples/s\n", (unsigned long long)sent,
           (unsigned long long)acc, elapsed, (double)acc / elapsed);
    printf("requests: %llu 2xx, %llu 4xx, %llu 5xx, %llu other; client CPU %.2fs (%.0f%% of one core)\n",
           (unsigned long long)ok, (unsigned long long)r4, (unsigned long long)r5, (unsigned long long)ro,
           cpu, 100 * cpu / elapsed);
    if (err)
        printf("first error: %s\n", err);
    for (int i = 0; i < o.connections; i++) {
        for (size_t s = 0; s < cs[i].nslots; s++) {
            free(cs[i].slots[s].raw);
            free(cs[i].slots[s].val_off);
            free(cs[i].slots[s].ts_off);
            free(cs[i].slots[s].h_off);
        }
        free(cs[i].slots);
    }
    free(cs);
    return r4 + r5 + ro ? 1 : 0;
}
