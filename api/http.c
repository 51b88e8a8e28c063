/*
 * http.c - the HTTP/1.1 server: libuv sockets, http-parser, the router.
 *
 * Each connection reads into an input buffer and feeds http-parser.  When a
 * request is complete the parser is paused, so bytes of a pipelined next
 * request stay in the buffer; the request goes to its handler (on a worker
 * thread unless the route is INLINE), the response is written, and only then
 * does parsing resume.  That is how pipelined requests are answered in order.
 *
 * Bounds: request line + headers, every byte received (431: the callbacks
 * check up to their data's end, conn_process adds what no callback saw),
 * body (413, also checked against Content-Length before the body is read),
 * one timer per connection that closes it when a request does not arrive
 * whole within read_timeout (a slow client holds only its own connection),
 * a cap on open connections, and one on the memory all unfinished requests
 * hold together (srv->pending, 503).  A request's headers are kept as
 * received, "name\0value\0" in one buffer, so what a connection holds is
 * about what it sent; pipelined input is read at most one read ahead.
 *
 * Three pools run handlers.  Routes flagged HTTP_ROUTE_QUEUED (query,
 * query_range) run on the query pool (workpool.c), threads of the server's
 * own, and share a number of slots (--query.max-concurrency, as many
 * threads): a request finding them all taken waits in a bounded FIFO on the
 * loop thread, with a timer for its deadline, and runs when a slot frees;
 * past its deadline its handler only writes the error, on libuv's pool.
 * HTTP_ROUTE_LOOKUP routes (series, labels, ...) run on the lookup pool,
 * another workpool, whose few threads they share without slots.  Every
 * other worker route runs on libuv's pool, which therefore neither a query
 * nor a lookup can occupy: remote writes, scrapes and the cheap endpoints
 * answer in their usual time however busy the queries are.
 *
 * Every answer passes through serialize, which checks the body and headers
 * the handler built for lost appends (buf's sticky out-of-memory) before
 * anything is written: such an answer becomes a 500, never a truncated 200.
 *
 * Called by cmd/kiln/main.c (server lifecycle) and by the api/ files that
 * register routes (status.c, v1.c, remotewrite.c); the request and response
 * helpers by every handler.
 *
 * Threading: everything here runs on the loop thread except the handler
 * call and response serialisation (gzip included) in work_exec, on a thread
 * of either pool.
 */
#include <assert.h>
#include <ctype.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>

#include "api.h"
#include "api/httpmsg.h"
#include "api/web.h"
#include "api/workpool.h"

typedef struct http_route_entry {
    const char *methods;
    const char *path;
    size_t prefix_len; /* > 0 for prefix routes */
    unsigned flags;
    http_handler_fn fn;
    void *data;
    const char *label;
} http_route_entry;

/* What one read asks for (the input buffer holds about one read between
 * requests; 64 KiB stays below malloc's mmap threshold). */
#define CONN_READ_SIZE 65536

typedef struct http_conn http_conn;
typedef struct http_work http_work;

struct http_server {
    uv_loop_t *loop;
    http_server_opts opts;
    char listen_addr[256];
    uv_tcp_t listener;
    int listening;
    http_route_entry *routes;
    size_t nroutes, cap_routes;
    http_conn *conns;
    int nconns;
    int inflight; /* requests dispatched and not yet answered */
    int shutting_down;
    int accept_pending; /* a connection waits in the backlog: the limit is reached */
    size_t pending;     /* bytes the unfinished requests hold (their accumulators' capacity) */
    size_t max_pending; /* beyond: 503 */
    uv_timer_t grace_timer;
    int grace_timer_open;
    int listener_open;
    void (*done)(void *);
    void *done_data;
    metric *m_requests, *m_duration;
    /* slots of HTTP_ROUTE_QUEUED requests, the FIFO of those waiting, and
     * the query pool they run on */
    int slots_max, slots_used;
    http_work *wait_head, *wait_tail;
    int nwaiting, wait_max;
    workpool *qpool, *lpool; /* the query and lookup pools */
    int pools_closing;       /* their handles closing; -1 once closed */
    http_queue_timeout_fn queue_timeout;
    void *queue_data;
    web *web; /* TLS, basic auth, headers (--web.config.file); NULL: none */
};

struct http_conn {
    uv_tcp_t tcp;
    tls_conn *tls; /* NULL: plain HTTP */
    uv_timer_t timer;
    int handles_open; /* tcp and timer: freed when both closed */
    http_server *srv;
    http_conn *prev, *next;
    http_parser parser;
    buf in;
    size_t in_off;
    int reading_paused;
    int busy;     /* a request is in a handler or being written */
    int rejected; /* an error answer is on its way; nothing more is read */
    int closing;
    int want_close; /* close after the current response */
    int detached;   /* no socket: http_parse_requests' */
    /* the request being parsed: its headers as "name\0value\0" pairs in
     * head, nhdrs of them (http-parser refuses a NUL in either); held is
     * the capacity of url, head and body, counted in srv->pending */
    int in_request;
    buf url, head;
    size_t nhdrs;
    int last_was_value;
    int headers_done;
    size_t header_bytes;   /* received before this parse call: request line and headers */
    const char *exec_base; /* where this parse call started in c->in */
    size_t held;
    buf body;
    int reject_status; /* set by a callback that stops the parser */
    char reject_msg[160];
    int message_done;
};

struct http_work {
    uv_work_t work;   /* on libuv's pool */
    workpool_job job; /* or on the query or lookup pool */
    uv_write_t write;
    http_server *srv;
    http_conn *conn;
    http_route_entry *route;
    http_req req;
    http_resp resp;
    arena arena;
    buf out;
    double start;
    int keep_alive;
    int body_owned; /* req.body was taken from the connection's buffer */
    int has_slot;   /* counts in srv->slots_used */
    int failed;     /* the answer could not be built (out of memory): close, send nothing */
    int auth_ok;    /* web_auth_verify's verdict */
    http_work *wait_next;
    uv_timer_t *wait_timer; /* its deadline while it waits for a slot */
    double wait_start;
};

/* ------------------------------------------------------------------ */

void http_server_opts_default(http_server_opts *o) {
    memset(o, 0, sizeof *o); /* fields added later (route_prefix, ...) start unset */
    o->listen_address = "0.0.0.0:9090";
    o->max_connections = 512;
    o->read_timeout_ms = 5 * 60 * 1000;
    o->max_header_bytes = 64 * 1024;
    o->max_pending_bytes = 256 << 20;
    o->max_body_bytes = 64 * 1024 * 1024;
    o->shutdown_grace_ms = 5000;
}

static double open_connections(void *data) {
    http_server *s = data;
    return s->nconns;
}

static double queries_running_or_waiting(void *data) {
    http_server *s = data;
    return s->slots_used + s->nwaiting;
}

static double queries_max(void *data) {
    http_server *s = data;
    return s->slots_max;
}

int http_server_new(uv_loop_t *loop, const http_server_opts *opts, http_server **out, kiln_err *err) {
    http_server *s = calloc(1, sizeof *s);
    if (!s)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    s->loop = loop;
    s->opts = *opts;
    /* one request of the largest size fits, its buffers grown by doubling */
    s->max_pending = 2 * (opts->max_body_bytes + 2 * opts->max_header_bytes);
    if (s->max_pending < opts->max_pending_bytes)
        s->max_pending = opts->max_pending_bytes;
    /* http-parser's own bound (80 KiB, process-wide) must not come first */
    if (opts->max_header_bytes >= HTTP_MAX_HEADER_SIZE)
        http_parser_set_max_header_size((uint32_t)(opts->max_header_bytes < UINT32_MAX - 4096
                                                       ? opts->max_header_bytes + 4096
                                                       : UINT32_MAX));
    long lookup_threads = 2 * sysconf(_SC_NPROCESSORS_ONLN);
    if (workpool_new(loop, opts->max_connections, &s->qpool) != 0 ||
        workpool_new(loop,
                     lookup_threads < 4    ? 4
                     : lookup_threads > 16 ? 16
                                           : (int)lookup_threads,
                     &s->lpool) != 0) {
        workpool_free(s->qpool);
        free(s);
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    }
    snprintf(s->listen_addr, sizeof s->listen_addr, "%s", opts->listen_address);
    s->opts.listen_address = s->listen_addr;
    s->m_requests =
        metric_new(METRIC_COUNTER, "kiln_http_requests_total",
                   "Counter of HTTP requests by handler and status code.", "handler,code", NULL, 0);
    s->m_duration = metric_new(METRIC_HISTOGRAM, "kiln_http_request_duration_seconds",
                               "Histogram of latencies for HTTP requests.", "handler", NULL, 0);
    metric_new_func(METRIC_GAUGE, "kiln_http_open_connections", "Number of open HTTP connections.",
                    open_connections, s);
    /* Prometheus' prometheus_engine_queries and prometheus_engine_queries_concurrent_max */
    metric_new_func(METRIC_GAUGE, "kiln_engine_queries",
                    "The current number of queries being executed or waiting (query, query_range).",
                    queries_running_or_waiting, s);
    metric_new_func(METRIC_GAUGE, "kiln_engine_queries_concurrent_max",
                    "The max number of concurrent queries (--query.max-concurrency; 0: no bound).",
                    queries_max, s);
    *out = s;
    return 0;
}

int http_route(http_server *s, const char *methods, const char *path, unsigned flags, http_handler_fn fn,
               void *data, const char *handler_label) {
    int rc = array_grow((void **)&s->routes, &s->cap_routes, s->nroutes + 1, sizeof *s->routes);
    if (rc != 0)
        return rc;
    size_t len = strlen(path);
    http_route_entry *r = &s->routes[s->nroutes++];
    r->methods = methods;
    r->path = path;
    r->prefix_len = len && path[len - 1] == '*' ? len - 1 : 0;
    r->flags = flags;
    r->fn = fn;
    r->data = data;
    r->label = handler_label ? handler_label : path;
    return 0;
}

static int method_allowed(const char *methods, const char *m) {
    size_t ml = strlen(m);
    const char *p = methods;
    if (strcmp(m, "HEAD") == 0)
        m = "GET", ml = 3;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == ml && strncmp(p, m, l) == 0)
            return 1;
        p += l + (e ? 1 : 0);
    }
    return 0;
}

/* Finds the route for path; *path_known says whether any route has the path. */
static http_route_entry *route_find(http_server *s, const char *path, const char *method, int *path_known,
                                    const char **allow) {
    *path_known = 0;
    for (size_t i = 0; i < s->nroutes; i++) {
        http_route_entry *r = &s->routes[i];
        int match = r->prefix_len ? strncmp(path, r->path, r->prefix_len) == 0 : strcmp(path, r->path) == 0;
        if (!match)
            continue;
        *path_known = 1;
        *allow = r->methods;
        if (method_allowed(r->methods, method))
            return r;
    }
    return NULL;
}

/* ---- connections ---------------------------------------------------- */

static void conn_process(http_conn *c);
static void accept_one(http_server *s);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);
static void conn_close(http_conn *c);
static void maybe_done(http_server *s);

static void request_reset(http_conn *c) {
    buf_free(&c->url);
    buf_free(&c->head);
    c->nhdrs = 0;
    c->last_was_value = 0;
    c->headers_done = 0;
    c->header_bytes = 0;
    buf_free(&c->body);
    if (c->held) { /* never for a busy connection: its request was reset at dispatch */
        c->srv->pending -= c->held;
        c->held = 0;
    }
    c->reject_status = 0;
    c->message_done = 0;
    c->in_request = 0;
}

static void conn_free(http_conn *c) {
    request_reset(c);
    tls_conn_free(c->tls);
    buf_free(&c->in);
    free(c);
}

static void on_handle_closed(uv_handle_t *h) {
    http_conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    http_server *s = c->srv;
    if (!c->busy)
        conn_free(c);
    else
        c->srv = NULL; /* the work in flight frees it */
    maybe_done(s);
}

static void conn_close(http_conn *c) {
    if (c->closing)
        return;
    c->closing = 1;
    http_server *s = c->srv;
    DLIST_UNLINK(&s->conns, c);
    s->nconns--;
    if (s->accept_pending)
        accept_one(s);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_timeout(uv_timer_t *t) {
    http_conn *c = t->data;
    /* a request still in a handler is not cut off by the read timeout */
    if (!c->busy)
        conn_close(c);
}

static void timer_restart(http_conn *c) {
    uv_timer_start(&c->timer, on_timeout, (uint64_t)c->srv->opts.read_timeout_ms, 0);
}

typedef struct raw_write {
    uv_write_t w;
    http_conn *conn;
    int close_after;
    char data[];
} raw_write;

static void on_raw_written(uv_write_t *w, int status) {
    raw_write *rw = (raw_write *)w;
    (void)status;
    if (rw->close_after && !rw->conn->closing)
        conn_close(rw->conn);
    free(rw);
}

/* Writes a small response built on the loop thread (errors, 100 Continue). */
static void conn_write_raw(http_conn *c, const char *data, size_t len, int close_after) {
    raw_write *rw = malloc(sizeof *rw + len);
    if (!rw) {
        conn_close(c);
        return;
    }
    memcpy(rw->data, data, len);
    rw->conn = c;
    rw->close_after = close_after;
    uv_buf_t b = uv_buf_init(rw->data, (unsigned)len);
    if (tls_write(c->tls, &rw->w, (uv_stream_t *)&c->tcp, &b, 1, on_raw_written) != 0) {
        free(rw);
        conn_close(c);
    }
}

static void count_request(http_server *s, const char *label, int status, double seconds) {
    char code[16];
    snprintf(code, sizeof code, "%d", status);
    const char *lv[2] = {label, code};
    metric_add(metric_with(s->m_requests, lv), 1);
    metric_observe(metric_with(s->m_duration, lv), seconds);
}

/* Rejects the request being parsed: answer status with msg and close. */
static void conn_reject(http_conn *c, int status, const char *msg) {
    buf b = BUF_INIT;
    buf_printf(&b,
               "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
               "Connection: close\r\n\r\n%s",
               status, http_status_text(status, "Status"), strlen(msg), msg);
    c->rejected = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (buf_error(&b) != 0)
        conn_close(c); /* no memory for even the answer */
    else
        conn_write_raw(c, b.data, b.len, 1);
    count_request(c->srv, "other", status, 0);
    buf_free(&b);
}

/* ---- http-parser callbacks ------------------------------------------ */

static int reject_in_cb(http_conn *c, int status, const char *msg) {
    c->reject_status = status;
    snprintf(c->reject_msg, sizeof c->reject_msg, "%s", msg);
    return 1;
}

/* A request accumulator could not grow: 500, as for any answer that ran
 * out of memory. */
static int out_of_memory_in_cb(http_conn *c) {
    return reject_in_cb(c, 500, "out of memory\n");
}

/* The request line and headers received so far, up to at + n in this
 * parse call (separators, line ends and whitespace included), against
 * --web.max-header-bytes. */
static int check_header_bytes(http_conn *c, const char *at, size_t n) {
    if (c->header_bytes + (size_t)(at + n - c->exec_base) > c->srv->opts.max_header_bytes)
        return reject_in_cb(c, 431, "request header fields too large\n");
    return 0;
}

/*
 * Appends to one of the request's accumulators and accounts for what it
 * holds: the unfinished requests of all connections hold at most
 * max_pending_bytes (beyond, this one gets 503 and is closed: its client may
 * retry); one request of the largest size always fits.
 */
static int acc_append(http_conn *c, buf *b, const char *at, size_t n) {
    if (buf_append(b, at, n))
        return out_of_memory_in_cb(c);
    size_t held = c->url.cap + c->head.cap + c->body.cap;
    if (held > c->held) {
        http_server *s = c->srv;
        s->pending += held - c->held;
        c->held = held;
        if (s->pending > s->max_pending)
            return reject_in_cb(c, 503, "server busy: too much request data in progress, retry later\n");
    }
    return 0;
}

static int on_message_begin(http_parser *p) {
    http_conn *c = p->data;
    c->in_request = 1;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
    http_conn *c = p->data;
    if (check_header_bytes(c, at, n))
        return 1;
    return acc_append(c, &c->url, at, n);
}

/* A field after a value starts a header: the value before it ends with its
 * NUL.  http-parser calls on_header_value for an empty value too, with
 * n = 0, so names and values alternate. */
static int on_header_field(http_parser *p, const char *at, size_t n) {
    http_conn *c = p->data;
    if (check_header_bytes(c, at, n))
        return 1;
    if (c->nhdrs == 0 || c->last_was_value) {
        if (c->nhdrs && acc_append(c, &c->head, "", 1))
            return 1;
        c->nhdrs++;
        c->last_was_value = 0;
    }
    return acc_append(c, &c->head, at, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
    http_conn *c = p->data;
    if (check_header_bytes(c, at, n))
        return 1;
    if (c->nhdrs == 0)
        return 1;
    /* http-parser lets a NUL through as a value's first byte; Go refuses
     * control bytes in values, and the pairs are NUL-separated */
    if (memchr(at, 0, n))
        return reject_in_cb(c, 400, "malformed HTTP request: invalid byte in a header value\n");
    if (!c->last_was_value && acc_append(c, &c->head, "", 1))
        return 1; /* the name's NUL */
    c->last_was_value = 1;
    return acc_append(c, &c->head, at, n);
}

/* Walks the pairs of c->head: the next after *p (NULL: the first), or 0 at
 * the end.  Only once the headers are complete (every pair ends). */
static int head_next(const http_conn *c, const char **p, const char **name, const char **value) {
    if (!c->head.data)
        return 0;
    const char *end = c->head.data + c->head.len;
    const char *q = *p ? *p : c->head.data;
    const char *nul = q < end ? memchr(q, 0, (size_t)(end - q)) : NULL;
    const char *vnul = nul ? memchr(nul + 1, 0, (size_t)(end - nul - 1)) : NULL;
    if (!vnul)
        return 0;
    *name = q;
    *value = nul + 1;
    *p = vnul + 1;
    return 1;
}

static const char *acc_header(http_conn *c, const char *name) {
    const char *p = NULL, *n, *v;
    while (head_next(c, &p, &n, &v))
        if (strcasecmp(n, name) == 0)
            return v;
    return NULL;
}

static int on_headers_complete(http_parser *p) {
    http_conn *c = p->data;
    c->headers_done = 1;
    /* the last pair's end (an empty value when none came) */
    if (c->nhdrs && acc_append(c, &c->head, "\0", c->last_was_value ? 1 : 2))
        return 1;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->srv->opts.max_body_bytes) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body too large: %llu bytes, limit %zu\n",
                 (unsigned long long)p->content_length, c->srv->opts.max_body_bytes);
        return reject_in_cb(c, 413, msg);
    }
    const char *expect = acc_header(c, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && !c->detached)
        conn_write_raw(c, "HTTP/1.1 100 Continue\r\n\r\n", 25, 0);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
    http_conn *c = p->data;
    if (c->body.len + n > c->srv->opts.max_body_bytes) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body too large: limit %zu bytes\n", c->srv->opts.max_body_bytes);
        return reject_in_cb(c, 413, msg);
    }
    return acc_append(c, &c->body, at, n);
}

static int on_message_complete(http_parser *p) {
    http_conn *c = p->data;
    c->message_done = 1;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- dispatch -------------------------------------------------------- */

/* The gzip form of in, in out: grown as deflate fills it (JSON compresses
 * about tenfold, so out stays a fraction of in). */
KILN_MUST_CHECK static int gzip_body(const buf *in, buf *out) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return KILN_ENOMEM;
    zs.next_in = (Bytef *)in->data;
    zs.avail_in = (uInt)in->len;
    int rc = Z_OK;
    while (rc == Z_OK) {
        size_t room = in->len / 8 + 4096;
        if (buf_reserve(out, room)) {
            deflateEnd(&zs);
            return KILN_ENOMEM;
        }
        zs.next_out = (Bytef *)out->data + out->len;
        zs.avail_out = (uInt)room;
        rc = deflate(&zs, Z_FINISH);
        out->len += room - zs.avail_out;
        if (rc == Z_BUF_ERROR && zs.avail_out == 0)
            rc = Z_OK; /* needs more room */
    }
    deflateEnd(&zs);
    return rc == Z_STREAM_END ? 0 : KILN_EIO;
}

/* A handler's answer that lost an append to out-of-memory becomes a 500;
 * its extra headers are dropped with it. */
static void check_answer(http_resp *r) {
    if (buf_error(&r->body) == 0 && buf_error(&r->headers) == 0)
        return;
    buf_free(&r->headers);
    r->no_gzip = 0;
    if (strncmp(r->content_type, "application/json", 16) == 0)
        http_resp_json_error(r, 500, "internal", "out of memory");
    else
        http_resp_text(r, 500, "out of memory\n");
}

/* Serialises resp's status line and headers into w->out; the body stays in
 * resp->body (gzipped in place of the plain one when asked) and is written
 * from there: a large answer is never held twice.  The answer is checked
 * here, once, for lost appends (check_answer); when even the 500 or the
 * head cannot be built, w->failed is set and the connection is closed
 * instead of sending anything. */
static void serialize(http_work *w) {
    http_resp *r = &w->resp;
    check_answer(r);
    buf gz = BUF_INIT;
    int gzipped = 0;
    if (w->req.accept_gzip && !r->no_gzip && r->body.len > 0 && gzip_body(&r->body, &gz) == 0) {
        buf_free(&r->body);
        r->body = gz;
        gzipped = 1;
    } else {
        buf_free(&gz);
    }
    buf_printf(&w->out, "HTTP/1.1 %d %s\r\n", r->status, http_status_text(r->status, "Status"));
    if (r->status != 204)
        buf_printf(&w->out, "Content-Type: %s\r\nContent-Length: %zu\r\n", r->content_type, r->body.len);
    if (gzipped)
        buf_puts(&w->out, "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n");
    if (!w->keep_alive)
        buf_puts(&w->out, "Connection: close\r\n");
    if (r->headers.len)
        buf_append(&w->out, r->headers.data, r->headers.len);
    if (w->srv->web && w->srv->web->headers.len)
        buf_append(&w->out, w->srv->web->headers.data, w->srv->web->headers.len);
    buf_puts(&w->out, "\r\n");
    if (w->req.is_head || r->status == 204)
        buf_reset(&r->body);
    w->failed = buf_error(&w->out) != 0 || buf_error(&r->body) != 0;
}

/* The handler and the serialisation, on a worker thread of either pool. */
static void work_exec(http_work *w) {
    w->route->fn(&w->req, &w->resp, w->route->data);
    serialize(w);
}

static void work_run(uv_work_t *req) {
    work_exec(req->data);
}

static void job_run(workpool_job *j) {
    work_exec((http_work *)((char *)j - offsetof(http_work, job)));
}

static void work_free(http_work *w) {
    if (w->body_owned)
        free(w->req.body);
    buf_free(&w->resp.body);
    buf_free(&w->resp.headers);
    buf_free(&w->out);
    arena_free(&w->arena);
    free(w);
}

/* The end of a request: counted, freed; the server may be waiting for it. */
static void work_finish(http_work *w) {
    http_server *s = w->srv;
    count_request(s, w->route->label, w->resp.status, time_mono_sec() - w->start);
    work_free(w);
    s->inflight--;
}

static void on_response_written(uv_write_t *wr, int status) {
    http_work *w = wr->data;
    http_conn *c = w->conn;
    http_server *s = w->srv;
    int keep = w->keep_alive && status == 0 && !s->shutting_down && !c->want_close;
    work_finish(w);
    c->busy = 0;
    if (!c->srv) { /* the connection closed while the request ran */
        conn_free(c);
    } else if (!c->closing) {
        if (!keep) {
            conn_close(c);
        } else {
            timer_restart(c);
            if (c->reading_paused) {
                c->reading_paused = 0;
                uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
            }
            conn_process(c);
        }
    }
    maybe_done(s);
}

static void write_response(http_work *w) {
    http_conn *c = w->conn;
    http_server *s = w->srv;
    if (w->failed && !c->closing)
        conn_close(c);
    if (c->closing) {
        work_finish(w);
        c->busy = 0;
        if (!c->srv)
            conn_free(c);
        maybe_done(s);
        return;
    }
    uv_buf_t b[2] = {uv_buf_init(w->out.data, (unsigned)w->out.len),
                     uv_buf_init(w->resp.body.data, (unsigned)w->resp.body.len)};
    w->write.data = w;
    if (tls_write(c->tls, &w->write, (uv_stream_t *)&c->tcp, b, w->resp.body.len ? 2 : 1,
                  on_response_written) != 0) {
        work_finish(w);
        c->busy = 0;
        conn_close(c);
    }
}

static void start_work(http_work *w);

static void free_timer(uv_handle_t *h) {
    free(h);
}

/* Takes w out of the waiting FIFO (and stops its deadline). */
static void wait_unlink(http_work *w) {
    http_server *s = w->srv;
    http_work **pp = &s->wait_head, *prev = NULL;
    while (*pp && *pp != w) {
        prev = *pp;
        pp = &(*pp)->wait_next;
    }
    if (*pp) {
        *pp = w->wait_next;
        if (s->wait_tail == w)
            s->wait_tail = prev;
        s->nwaiting--;
    }
    w->wait_next = NULL;
    if (w->wait_timer) {
        uv_close((uv_handle_t *)w->wait_timer, free_timer);
        w->wait_timer = NULL;
    }
    int64_t ms = (int64_t)((time_mono_sec() - w->wait_start) * 1000.0);
    w->req.queued_ms = ms > 0 ? ms : 0;
}

/* Hands waiting requests to the pool while slots are free. */
static void slots_pump(http_server *s) {
    while (s->wait_head && (s->slots_max <= 0 || s->slots_used < s->slots_max)) {
        http_work *w = s->wait_head;
        wait_unlink(w);
        w->has_slot = 1;
        s->slots_used++;
        start_work(w);
    }
}

static void on_wait_expired(uv_timer_t *t) {
    http_work *w = t->data;
    wait_unlink(w);
    w->req.queue_timed_out = 1;
    start_work(w); /* on libuv's pool, without a slot: the handler only writes the error */
}

static void queue_wait(http_work *w) {
    http_server *s = w->srv;
    w->wait_start = time_mono_sec();
    w->wait_next = NULL;
    if (s->wait_tail)
        s->wait_tail->wait_next = w;
    else
        s->wait_head = w;
    s->wait_tail = w;
    s->nwaiting++;
    int64_t ms = s->queue_timeout ? s->queue_timeout(&w->req, s->queue_data) : 0;
    if (ms > 0 && (w->wait_timer = malloc(sizeof *w->wait_timer)) != NULL) {
        uv_timer_init(s->loop, w->wait_timer);
        w->wait_timer->data = w;
        uv_timer_start(w->wait_timer, on_wait_expired, (uint64_t)ms, 0);
    }
}

static void work_finished(http_work *w) {
    if (w->has_slot) {
        w->has_slot = 0;
        w->srv->slots_used--;
        slots_pump(w->srv);
    }
    write_response(w);
}

static void work_done(uv_work_t *req, int status) {
    (void)status;
    work_finished(req->data);
}

static void job_done(workpool_job *j) {
    work_finished((http_work *)((char *)j - offsetof(http_work, job)));
}

/* Queries run on the query pool, lookups on the lookup pool, everything
 * else on libuv's, so that no query can hold a thread a remote write or a
 * scrape needs.  A query that waited its whole deadline for a slot only
 * writes its error: it runs on libuv's pool, where it takes a moment. */
static void start_work(http_work *w) {
    http_server *s = w->srv;
    int rc;
    workpool *p = (w->route->flags & HTTP_ROUTE_QUEUED) && !w->req.queue_timed_out ? s->qpool
                  : (w->route->flags & HTTP_ROUTE_LOOKUP)                          ? s->lpool
                                                                                   : NULL;
    if (p) {
        w->job.run = job_run;
        w->job.done = job_done;
        rc = workpool_submit(p, &w->job);
    } else {
        w->work.data = w;
        rc = uv_queue_work(s->loop, &w->work, work_run, work_done);
    }
    if (rc != 0) {
        if (w->has_slot) {
            w->has_slot = 0;
            s->slots_used--;
        }
        http_resp_text(&w->resp, 503, "server busy\n");
        serialize(w);
        write_response(w);
    }
}

void http_server_set_queue(http_server *s, int max_running, int max_waiting, http_queue_timeout_fn timeout,
                           void *data) {
    s->slots_max = max_running > 0 ? max_running : 0;
    s->wait_max = max_waiting > 0 ? max_waiting : 0;
    s->queue_timeout = timeout;
    s->queue_data = data;
    /* without a bound on slots, the connections bound the queries running */
    workpool_set_max(s->qpool, s->slots_max ? s->slots_max : s->opts.max_connections);
}

static http_route_entry fallback = {"", "", 0, HTTP_ROUTE_INLINE, NULL, NULL, "other"};
static void route_request(http_work *w);

static void auth_run(uv_work_t *req) {
    http_work *w = req->data;
    w->auth_ok = web_auth_verify(w->srv->web, &w->req) == WEB_AUTH_OK;
}

static void auth_done(uv_work_t *req, int status) {
    http_work *w = req->data;
    (void)status;
    if (w->auth_ok) {
        route_request(w);
        return;
    }
    w->route = &fallback;
    web_auth_deny(&w->resp);
    serialize(w);
    write_response(w);
}

/* A complete request is in c's accumulators: route it and start its handler. */
static void dispatch(http_conn *c) {
    http_server *s = c->srv;
    http_work *w = calloc(1, sizeof *w);
    if (!w) {
        conn_reject(c, 500, "out of memory\n");
        return;
    }
    arena_init(&w->arena, 0);
    w->srv = s;
    s->inflight++;
    w->conn = c;
    w->start = time_mono_sec();
    w->keep_alive = http_should_keep_alive(&c->parser) && !s->shutting_down && !c->want_close;
    http_req *r = &w->req;
    r->arena = &w->arena;
    r->method = http_method_str((enum http_method)c->parser.method);
    r->is_head = c->parser.method == HTTP_HEAD;

    const char *url = c->url.data ? c->url.data : "/";
    struct http_parser_url u;
    http_parser_url_init(&u);
    const char *path = url;
    size_t path_len = strlen(url);
    r->query = "";
    if (http_parser_parse_url(url, strlen(url), 0, &u) == 0) {
        if (u.field_set & (1 << UF_PATH)) {
            path = url + u.field_data[UF_PATH].off;
            path_len = u.field_data[UF_PATH].len;
        }
        if (u.field_set & (1 << UF_QUERY))
            r->query = arena_strndup(&w->arena, url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
    }
    r->path = httpmsg_url_decode(&w->arena, path, path_len, 0);
    /* the headers point into one copy of the pairs */
    char *pairs = arena_alloc(&w->arena, c->head.len + 1);
    r->headers = arena_alloc(&w->arena, (c->nhdrs + 1) * sizeof *r->headers);
    if (pairs && r->headers) {
        memcpy(pairs, c->head.data ? c->head.data : "", c->head.len);
        const char *it = NULL, *n, *v;
        while (r->nheaders < c->nhdrs && head_next(c, &it, &n, &v)) {
            r->headers[r->nheaders].name = pairs + (n - c->head.data);
            r->headers[r->nheaders].value = pairs + (v - c->head.data);
            r->nheaders++;
        }
    }
    /* the body buffer moves to the request: no copy of a large body */
    r->body_len = c->body.len;
    w->body_owned = c->body.data != NULL;
    r->body = c->body.data ? buf_steal(&c->body) : arena_strndup(&w->arena, "", 0);
    if (!r->path || !r->headers || !r->query || !r->body) {
        work_free(w);
        conn_reject(c, 500, "out of memory\n");
        return;
    }
    const char *ae = http_req_header(r, "Accept-Encoding");
    r->accept_gzip = ae && strstr(ae, "gzip") != NULL;
    request_reset(c);

    w->resp.status = 200;
    snprintf(w->resp.content_type, sizeof w->resp.content_type, "application/json");
    c->busy = 1;
    uv_timer_stop(&c->timer);
    /* basic auth: cached verdicts here, bcrypt on a worker before the route */
    int auth = web_auth_check(s->web, r);
    w->work.data = w;
    if (auth == WEB_AUTH_VERIFY && uv_queue_work(s->loop, &w->work, auth_run, auth_done) == 0)
        return;
    if (auth != WEB_AUTH_OK) {
        w->route = &fallback;
        web_auth_deny(&w->resp);
        serialize(w);
        write_response(w);
        return;
    }
    route_request(w);
}

/* Routes the request of w (authenticated if need be) and starts its handler. */
/* --web.route-prefix, as Prometheus: a path under the prefix loses it before
 * routing; "/" and the bare prefix redirect to the prefix and a slash; any
 * other path is 404.  Returns 1 when the request goes on to its route. */
static int route_prefix_strip(http_work *w) {
    const char *p = w->srv->opts.route_prefix;
    http_req *r = &w->req;
    size_t n = p ? strlen(p) : 0;
    if (n == 0)
        return 1;
    if (strncmp(r->path, p, n) == 0 && r->path[n] == '/') {
        r->path += n; /* arena memory: nothing to free */
        return 1;
    }
    w->route = &fallback;
    char *loc = arena_alloc(&w->arena, n + 2);
    if (loc && (strcmp(r->path, "/") == 0 || strcmp(r->path, p) == 0)) {
        memcpy(loc, p, n);
        loc[n] = '/';
        http_resp_header(&w->resp, "Location", loc);
        http_resp_text(&w->resp, 302, "");
    } else {
        http_resp_text(&w->resp, 404, "404 page not found\n");
    }
    serialize(w);
    write_response(w);
    return 0;
}

static void route_request(http_work *w) {
    http_server *s = w->srv;
    http_req *r = &w->req;
    int known = 0;
    const char *allow = NULL;
    if (!route_prefix_strip(w))
        return;
    http_route_entry *route = route_find(s, r->path, r->method, &known, &allow);
    if (!route) {
        w->route = &fallback;
        if (known) {
            char msg[160];
            snprintf(msg, sizeof msg, "method %s not allowed for %s\n", r->method, r->path);
            http_resp_text(&w->resp, 405, msg);
            http_resp_header(&w->resp, "Allow", allow);
        } else if (strncmp(r->path, "/api/", 5) == 0) {
            char msg[300];
            snprintf(msg, sizeof msg, "unknown API endpoint %.250s", r->path);
            http_resp_json_error(&w->resp, 404, "not_found", msg);
        } else {
            http_resp_text(&w->resp, 404, "404 page not found\n");
        }
        serialize(w);
        write_response(w);
        return;
    }
    w->route = route;
    r->route_suffix = route->prefix_len ? r->path + route->prefix_len : "";
    if (route->flags & HTTP_ROUTE_INLINE) {
        route->fn(r, &w->resp, route->data);
        serialize(w);
        write_response(w);
        return;
    }
    if ((route->flags & HTTP_ROUTE_QUEUED) && s->slots_max > 0) {
        if (s->slots_used >= s->slots_max || s->wait_head) {
            if (s->wait_max > 0 && s->nwaiting >= s->wait_max) {
                char msg[160];
                snprintf(msg, sizeof msg,
                         "too many queries: %d running and %d waiting (--query.max-concurrency)",
                         s->slots_used, s->nwaiting);
                http_resp_json_error(&w->resp, 503, "unavailable", msg);
                serialize(w);
                write_response(w);
                return;
            }
            queue_wait(w);
            return;
        }
        w->has_slot = 1;
        s->slots_used++;
    }
    start_work(w);
}

/*
 * Parses what c->in holds from c->in_off: 1 when a request is complete (the
 * parser paused after it), 0 when more input is needed, -1 when the request
 * is refused (c->reject_status and c->reject_msg say how).
 */
static int conn_parse(http_conn *c) {
    while (c->in_off < c->in.len) {
        http_parser_pause(&c->parser, 0);
        size_t avail = c->in.len - c->in_off;
        c->exec_base = c->in.data + c->in_off;
        size_t n = http_parser_execute(&c->parser, &parser_settings, c->exec_base, avail);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        c->in_off += n;
        /* every byte of the request line and headers counts, whitespace and
         * line ends too: what the callbacks did not see is added here */
        if (!c->reject_status && c->in_request && !c->headers_done &&
            (c->header_bytes += n) > c->srv->opts.max_header_bytes)
            reject_in_cb(c, 431, "request header fields too large\n");
        if (c->reject_status)
            return -1;
        if (e != HPE_OK && e != HPE_PAUSED) {
            if (e == HPE_HEADER_OVERFLOW) {
                reject_in_cb(c, 431, "request header fields too large\n");
            } else {
                char msg[sizeof c->reject_msg];
                snprintf(msg, sizeof msg, "malformed HTTP request: %.100s\n", http_errno_description(e));
                reject_in_cb(c, 400, msg);
            }
            return -1;
        }
        if (c->message_done)
            return 1;
        if (n < avail && e == HPE_OK)
            break;
    }
    return 0;
}

/* Gives back the input consumed (and a buffer grown past one read's size). */
static void conn_compact(http_conn *c) {
    if (c->in_off == c->in.len) {
        if (c->in.cap > 2 * CONN_READ_SIZE)
            buf_free(&c->in);
        buf_reset(&c->in);
        c->in_off = 0;
    } else if (c->in_off > CONN_READ_SIZE) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
}

/* Parses what is buffered; dispatches at most one request at a time. */
static void conn_process(http_conn *c) {
    while (!c->busy && !c->rejected && !c->closing) {
        int r = conn_parse(c);
        if (r < 0) {
            conn_reject(c, c->reject_status, c->reject_msg);
            return;
        }
        if (r == 0)
            break;
        dispatch(c);
    }
    conn_compact(c);
}

int http_parse_requests(const http_server_opts *o, const char *data, size_t len, size_t piece,
                        size_t *nheaders) {
    http_server s;
    memset(&s, 0, sizeof s);
    s.opts = *o;
    s.max_pending = o->max_pending_bytes;
    http_conn c;
    memset(&c, 0, sizeof c);
    c.srv = &s;
    c.detached = 1;
    http_parser_init(&c.parser, HTTP_REQUEST);
    c.parser.data = &c;
    int requests = 0, r = 0;
    *nheaders = 0;
    for (size_t off = 0; off < len && r >= 0;) {
        size_t n = piece && piece < len - off ? piece : len - off;
        if (buf_append(&c.in, data + off, n)) {
            r = -1;
            reject_in_cb(&c, 500, "out of memory\n");
            break;
        }
        off += n;
        while ((r = conn_parse(&c)) == 1) {
            /* the pairs walk to the buffer's end, one a header */
            const char *it = NULL, *name, *value;
            size_t walked = 0;
            while (head_next(&c, &it, &name, &value))
                walked++;
            assert(walked == c.nhdrs && (!c.nhdrs || it == c.head.data + c.head.len));
            *nheaders = walked;
            requests++;
            request_reset(&c);
        }
        conn_compact(&c);
    }
    int status = r < 0 ? c.reject_status : 0;
    request_reset(&c);
    assert(s.pending == 0);
    buf_free(&c.in);
    return status ? -status : requests;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
    http_conn *c = h->data;
    (void)suggested;
    if (c->tls) {
        tls_conn_alloc(c->tls, b);
        return;
    }
    if (buf_reserve(&c->in, CONN_READ_SIZE - 1)) {
        *b = uv_buf_init(NULL, 0);
        return;
    }
    *b = uv_buf_init(c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len - 1));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
    http_conn *c = st->data;
    (void)b;
    if (nread < 0) {
        if (!c->busy)
            conn_close(c);
        else
            c->want_close = 1, uv_read_stop(st);
        return;
    }
    /* TLS: the ciphertext read becomes plaintext in c->in, as a plain read lands there */
    if (nread > 0 && c->tls && (nread = tls_conn_input(c->tls, st, (size_t)nread, &c->in)) < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (!c->in_request && !c->busy && c->in.len == c->in_off)
        timer_restart(c); /* the first byte of a request starts its read deadline */
    c->in.len += (size_t)nread;
    c->in.data[c->in.len] = 0;
    /* a client that pipelines ahead of our answers is paused: what it sends
     * next waits in the kernel, not in our memory */
    if (c->busy && c->in.len - c->in_off >= CONN_READ_SIZE) {
        uv_read_stop(st);
        c->reading_paused = 1;
        return;
    }
    conn_process(c);
}

/*
 * Accepts one waiting connection.  At the connection limit nothing is
 * accepted: libuv then stops polling the listening socket and new clients
 * wait in the kernel's backlog until a connection closes (as Prometheus'
 * limited listener does), so open descriptors stay bounded.
 */
static void accept_one(http_server *s) {
    if (s->nconns >= s->opts.max_connections || s->shutting_down || !s->listener_open) {
        s->accept_pending = 1;
        return;
    }
    s->accept_pending = 0;
    http_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->handles_open = 2;
    c->tcp.data = c;
    c->timer.data = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    DLIST_PUSH(&s->conns, c);
    s->nconns++;
    if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (s->web && s->web->tls && !(c->tls = tls_conn_new(s->web->tls))) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    timer_restart(c);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0)
        return;
    accept_one(server->data);
}

static int split_host_port(const char *addr, char *host, size_t hostsz, int *port) {
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return -1;
    size_t hl = (size_t)(colon - addr);
    if (addr[0] == '[' && hl >= 2 && addr[hl - 1] == ']') {
        addr++;
        hl -= 2;
    }
    if (hl >= hostsz)
        return -1;
    memcpy(host, addr, hl);
    host[hl] = 0;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535 || end == colon + 1)
        return -1;
    *port = (int)p;
    if (!*host)
        strcpy(host, "0.0.0.0");
    return 0;
}

int http_server_set_web(http_server *s, const config_web *w, kiln_err *err) {
    web_free(s->web);
    s->web = NULL;
    return web_new(w, &s->web, err);
}

int http_server_listen(http_server *s, kiln_err *err) {
    char host[200];
    int port;
    if (split_host_port(s->listen_addr, host, sizeof host, &port) != 0)
        return kiln_err_set(err, KILN_EINVAL, "invalid listen address \"%s\": want host:port",
                            s->listen_addr);
    struct sockaddr_storage sa;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&sa) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa) != 0) {
        if (strcmp(host, "localhost") == 0)
            uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)&sa);
        else
            return kiln_err_set(err, KILN_EINVAL, "invalid listen address \"%s\": host must be an IP address",
                                s->listen_addr);
    }
    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    s->listener_open = 1;
    int rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
    if (rc != 0)
        return kiln_err_set(err, KILN_EIO, "listen tcp %s: %s", s->listen_addr, uv_strerror(rc));
    s->listening = 1;
    return 0;
}

int http_server_connections(http_server *s) {
    return s->nconns;
}

static void on_listener_closed(uv_handle_t *h) {
    http_server *s = h->data;
    s->listener_open = 0;
    maybe_done(s);
}

static void on_pool_closed(void *data) {
    http_server *s = data;
    if (--s->pools_closing == 0)
        s->pools_closing = -1;
    maybe_done(s);
}

static void on_grace_closed(uv_handle_t *h) {
    http_server *s = h->data;
    s->grace_timer_open = 0;
    maybe_done(s);
}

static void maybe_done(http_server *s) {
    if (!s || !s->shutting_down || s->listener_open || s->nconns > 0 || s->inflight > 0)
        return;
    if (s->grace_timer_open == 1) {
        s->grace_timer_open = 2;
        uv_close((uv_handle_t *)&s->grace_timer, on_grace_closed);
        return;
    }
    if (s->grace_timer_open)
        return;
    if (s->pools_closing == 0) {
        s->pools_closing =
            workpool_close(s->qpool, on_pool_closed, s) + workpool_close(s->lpool, on_pool_closed, s);
        if (s->pools_closing == 0)
            s->pools_closing = -1;
    }
    if (s->pools_closing > 0)
        return;
    if (s->done) {
        void (*done)(void *) = s->done;
        s->done = NULL;
        done(s->done_data);
    }
}

static void on_grace_expired(uv_timer_t *t) {
    http_server *s = t->data;
    for (http_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        conn_close(c);
    }
}

void http_server_shutdown(http_server *s, void (*done)(void *data), void *data) {
    if (s->shutting_down)
        return;
    s->shutting_down = 1;
    s->done = done;
    s->done_data = data;
    if (s->listener_open)
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (http_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (!c->busy)
            conn_close(c);
        else
            c->want_close = 1;
    }
    uv_timer_init(s->loop, &s->grace_timer);
    s->grace_timer.data = s;
    s->grace_timer_open = 1;
    uv_timer_start(&s->grace_timer, on_grace_expired, (uint64_t)s->opts.shutdown_grace_ms, 0);
    maybe_done(s);
}

void http_server_free(http_server *s) {
    if (!s)
        return;
    workpool_free(s->qpool);
    workpool_free(s->lpool);
    free(s->routes);
    web_free(s->web);
    free(s);
}
