/*
 * api.h - kiln's HTTP server, its router, and the JSON writer the handlers use.
 *
 * Threads: the server runs on one libuv loop (the loop thread), which owns
 * every socket and timer.  A route is INLINE (a handler that answers at once
 * from memory, run on the loop thread), WORKER (the default: on a thread of
 * libuv's pool, where remote writes, scrapes and the cheap endpoints run),
 * QUEUED (queries: on the server's query pool) or LOOKUP (series and label
 * lookups: on the server's lookup pool); those two pools are threads of the
 * server's own, so that no query can hold a thread ingestion needs.  The request is
 * handed to the worker whole, the handler fills an http_resp, and the loop
 * writes it.  A connection handles one request at a time; pipelined requests
 * wait in its input buffer and are answered in order.
 *
 * Used by cmd/kiln/main.c, which creates the server and registers the
 * endpoint groups below; the handlers' files in api/ include it too.
 */
#ifndef KILN_API_H
#define KILN_API_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/util.h"

typedef struct http_server http_server;
struct config_web;

typedef struct http_header {
    char *name; /* as sent */
    char *value;
} http_header;

typedef struct http_req {
    const char *method; /* "GET", "POST", ... */
    char *path;         /* percent-decoded path, without the query */
    char *query;        /* raw query string after '?', or "" */
    http_header *headers;
    size_t nheaders;
    char *body; /* NUL-terminated for convenience; body_len excludes the NUL */
    size_t body_len;
    int is_head;
    int accept_gzip;
    const char *route_suffix; /* for prefix routes: the rest of the path after the prefix */
    arena *arena;             /* per-request memory, freed after the response is written */
    /* parsed parameters (query string, then a urlencoded body) */
    struct http_param *params;
    size_t nparams;
    int params_parsed;
    /* HTTP_ROUTE_QUEUED routes: how long the request waited for a slot, and
     * whether it gave up waiting (its handler then only writes the error) */
    int64_t queued_ms;
    int queue_timed_out;
} http_req;

typedef struct http_resp {
    int status;
    char content_type[96];
    buf headers; /* extra header lines, each "Name: value\r\n" */
    buf body;
    int no_gzip; /* set when the body must not be compressed (already compressed) */
} http_resp;

/* A handler fills resp (status defaults to 200, content type to JSON). */
typedef void (*http_handler_fn)(http_req *req, http_resp *resp, void *data);

typedef struct http_server_opts {
    const char *listen_address; /* "host:port", host may be empty or 0.0.0.0 */
    int max_connections;        /* accepted connections beyond get 503 and are closed */
    int64_t read_timeout_ms;    /* whole request must arrive within; also the keep-alive idle time */
    size_t max_header_bytes;    /* request line + headers, every byte received; beyond: 431 */
    size_t max_body_bytes;      /* beyond: 413 */
    size_t max_pending_bytes;   /* what all unfinished requests may hold together (at least one
                                 * request of the largest size); beyond: 503 */
    int64_t shutdown_grace_ms;  /* how long http_server_shutdown waits for in-flight requests */
    /* --web.route-prefix: NULL or "" for none, else "/path" without a trailing
     * slash; every route is served under it (borrowed) */
    const char *route_prefix;
} http_server_opts;

void http_server_opts_default(http_server_opts *o);

/* Creates a server on loop; does not listen yet.  Returns 0 or a KILN_E* code. */
KILN_MUST_CHECK int http_server_new(uv_loop_t *loop, const http_server_opts *opts, http_server **out,
                                    kiln_err *err);

/*
 * WORKER: the handler runs on libuv's worker pool; INLINE: on the loop
 * thread (cheap handlers only); QUEUED: on the server's query pool once one
 * of its slots is free (see http_server_set_queue): the routes that evaluate
 * PromQL; LOOKUP: on the server's lookup pool (two threads a core, 4 to 16;
 * more wait for one, without a deadline): the routes that select series
 * without evaluating PromQL, which do not wait for query slots.
 */
enum { HTTP_ROUTE_WORKER = 0, HTTP_ROUTE_INLINE = 1, HTTP_ROUTE_QUEUED = 2, HTTP_ROUTE_LOOKUP = 4 };

/* How long a QUEUED request may wait for a slot, ms (<= 0: as long as it
 * takes).  Called on the loop thread: must be cheap. */
typedef int64_t (*http_queue_timeout_fn)(http_req *req, void *data);

/*
 * At most max_running requests of HTTP_ROUTE_QUEUED routes run at once, on
 * as many threads of the query pool (0: no bound but the connections').
 * The others wait, first come first served, on the loop thread: no thread is
 * held while they wait.  At most max_waiting wait (0: no bound): beyond, 503
 * {"errorType":"unavailable"}.  One that has waited timeout(req, data) ms
 * runs anyway, without a slot, on libuv's pool, with req->queue_timed_out
 * set, so that its handler answers the error (and nothing more); one that
 * gets a slot runs with req->queued_ms telling how long it waited.
 */
void http_server_set_queue(http_server *s, int max_running, int max_waiting, http_queue_timeout_fn timeout,
                           void *data);

/*
 * Registers a handler.  methods: comma-separated ("GET,POST"); HEAD is
 * allowed wherever GET is.  path: exact, or a prefix ending in '*'
 * ("/api/v1/label/" followed by a star), the rest of the path is passed as req->route_suffix.
 * handler_label names the route in kiln_http_requests_total; NULL uses path.
 * Borrows the strings (they must outlive the server: use literals).
 */
KILN_MUST_CHECK int http_route(http_server *s, const char *methods, const char *path, unsigned flags,
                               http_handler_fn fn, void *data, const char *handler_label);

/*
 * TLS, basic authentication and response headers from a web configuration
 * file (config_web, --web.config.file); call before http_server_listen.
 * Borrows w until the server is freed.  Fails when the certificate, key
 * or client CA cannot be loaded (err names the file).
 */
KILN_MUST_CHECK int http_server_set_web(http_server *s, const struct config_web *w, kiln_err *err);

/* Binds and listens; errors name the address. */
KILN_MUST_CHECK int http_server_listen(http_server *s, kiln_err *err);

/*
 * Stops accepting, closes idle connections, lets in-flight requests finish
 * (up to shutdown_grace_ms, then closes them), and calls done(data) on the
 * loop thread when the server holds no more handles.  Loop thread only.
 */
void http_server_shutdown(http_server *s, void (*done)(void *data), void *data);

/* Frees the server after shutdown completed. */
void http_server_free(http_server *s);

/*
 * For the tests and the fuzzer (tests/fuzz/fuzz_http_request.c): parses
 * data as one connection's input, handed over `piece` bytes at a time (0:
 * all at once), with o's limits (max_pending_bytes as given), as the server
 * does, without a socket.  Returns the number of requests parsed whole, or
 * -status when one was refused (-431, -413, -400, -503, -500); *nheaders is
 * the header count of the last request parsed.
 */
int http_parse_requests(const http_server_opts *o, const char *data, size_t len, size_t piece,
                        size_t *nheaders);

/* Number of open connections (for metrics). */
int http_server_connections(http_server *s);

/* ---- request helpers (any thread, for the request being handled) ---- */

/* The first value of a query or form parameter, percent-decoded; NULL when absent. */
const char *http_req_param(http_req *req, const char *name);
/* All values of a parameter (e.g. "match[]"); returns the count, fills up to max. */
size_t http_req_params(http_req *req, const char *name, const char **vals, size_t max);
/* A request header value (case-insensitive name), or NULL. */
const char *http_req_header(const http_req *req, const char *name);

/* ---- response helpers ----
 *
 * A handler may append to resp->body and resp->headers without checking
 * each append: buf's out-of-memory is sticky, and the server checks both
 * once when the handler returns.  A response that lost an append is never
 * sent: it becomes a 500 (or, when even that cannot be built, the
 * connection is closed). */

void http_resp_text(http_resp *resp, int status, const char *text);
void http_resp_header(http_resp *resp, const char *name, const char *value);
/* {"status":"error","errorType":type,"error":msg} with the status code. */
void http_resp_json_error(http_resp *resp, int status, const char *type, const char *msg);
/* {"status":"success","data":<data_json>} */
void http_resp_json_success(http_resp *resp, const char *data_json, size_t len);
/* The same written in place: begin sets 200 and the body to
 * `{"status":"success","data":`, the caller appends the data to resp->body,
 * end closes the envelope. */
void http_resp_json_begin(http_resp *resp);
void http_resp_json_end(http_resp *resp);

/* ---- lifecycle, status and /metrics endpoints (api/status.c) ---- */

/* The build's identity, given by the Makefile (-DKILN_VERSION=...); these
 * defaults are for builds without it.  --version, buildinfo and
 * kiln_build_info read them. */
#ifndef KILN_VERSION
#define KILN_VERSION "0.0.0"
#endif
#ifndef KILN_REVISION
#define KILN_REVISION "unknown"
#endif
#ifndef KILN_BRANCH
#define KILN_BRANCH "unknown"
#endif

/*
 * What the lifecycle and status handlers need from the daemon.  Callbacks
 * are called from worker threads and must be thread-safe.
 */
typedef struct api_app {
    void *app;
    int (*ready)(void *app);                       /* 1 once startup is done */
    int (*reload)(void *app, kiln_err *err);       /* reload the configuration */
    void (*quit)(void *app);                       /* begin a graceful stop */
    int (*config_yaml)(void *app, buf *out);       /* the running configuration as YAML */
    int (*runtime_info)(void *app, buf *json_out); /* the members of runtimeinfo's data object */
    const char *const *flag_names;                 /* without the leading "--" */
    const char *const *flag_values;
    size_t nflags;
    int enable_lifecycle;
} api_app;

/* Registers /-/healthy, /-/ready, /-/reload, /-/quit, /metrics and
 * /api/v1/status/{buildinfo,flags,config,runtimeinfo}.  Borrows a. */
KILN_MUST_CHECK int api_register_base(http_server *s, api_app *a);

/* ---- the web UI (api/ui.c) ---- */

/* One file of the UI bundle, embedded at build time (web/embed.py writes
 * build/web/ui_assets.c from esbuild's output). */
typedef struct ui_asset {
    const char *name;         /* "index.html", "app.js", ... */
    const char *content_type; /* "text/javascript; charset=utf-8" */
    const char *etag;         /* quoted: "\"<hash>\"" */
    const unsigned char *data, *gz;
    size_t len, gz_len;
} ui_asset;

/* Defined by the generated build/web/ui_assets.c, linked into bin/kiln;
 * the last entry's name is NULL. */
extern const ui_asset kiln_ui_assets[];

/*
 * Registers the UI's pages on s: / and /graph redirect to /query (keeping
 * /graph's parameters), /query, /alerts, /rules, /targets,
 * /service-discovery, /status, /config, /flags and /tsdb-status answer
 * index.html, and /assets/<name> the other files.  Files are answered with
 * their ETag (If-None-Match: 304), Cache-Control: no-cache, and their gzip
 * form when the client accepts it.  Borrows assets (static data, ending
 * with a NULL name).
 */
KILN_MUST_CHECK int ui_register(http_server *s, const ui_asset *assets);

/* ---- remote write (api/remotewrite.c) ---- */

struct storage;

/* Default bound on a request body after snappy decompression (413 beyond). */
#define REMOTEWRITE_DEFAULT_MAX_DECOMPRESSED ((size_t)32 << 20)

typedef struct remotewrite_opts {
    int enabled;                   /* 0: POST /api/v1/write answers 404 naming the flag */
    size_t max_decompressed_bytes; /* 0 means REMOTEWRITE_DEFAULT_MAX_DECOMPRESSED */
} remotewrite_opts;

/* enabled = 1, max_decompressed_bytes = the default. */
void remotewrite_opts_default(remotewrite_opts *o);

typedef struct remotewrite remotewrite;

/*
 * Creates the remote-write receiver and registers its kiln_remote_write_*
 * metrics (create one per process).  Borrows st, which must outlive the
 * receiver; copies o.  Free with remotewrite_free after the HTTP server is freed.
 */
KILN_MUST_CHECK int remotewrite_new(struct storage *st, const remotewrite_opts *o, remotewrite **out,
                                    kiln_err *err);

/* Registers POST /api/v1/write (worker route) on s; borrows rw. */
KILN_MUST_CHECK int remotewrite_register(http_server *s, remotewrite *rw);

/*
 * Handles one request: snappy + protobuf WriteRequest in req->body, decode
 * memory from req->arena.  Fills resp: 204, 400/413/415 with a one-line
 * text reason, 5xx when storing failed (a retry may succeed).  The route's
 * handler; public for tests.  Thread-safe.
 */
void remotewrite_handle(remotewrite *rw, http_req *req, http_resp *resp);

/* NULL is a no-op.  The metrics stay registered (metrics_shutdown frees them). */
void remotewrite_free(remotewrite *rw);

/* ---- OTLP receiver (api/otlp.c) ---- */

/* How OTLP metric and attribute names become Prometheus names
 * (configuration.md, otlp.translation_strategy). */
typedef enum otlp_strategy {
    OTLP_UNDERSCORE_ESCAPING_WITH_SUFFIXES, /* the default */
    OTLP_UNDERSCORE_ESCAPING_WITHOUT_SUFFIXES,
    OTLP_NO_UTF8_ESCAPING_WITH_SUFFIXES, /* refused by the configuration (kiln's names are classic) */
    OTLP_NO_TRANSLATION,                 /* refused by the configuration */
} otlp_strategy;

/* What otlp_new starts with; the configuration's otlp section, once
 * applied with otlp_apply, replaces the translation settings. */
typedef struct otlp_opts {
    int enabled;                   /* --web.enable-otlp-receiver; 0: 404 */
    size_t max_decompressed_bytes; /* gzip bodies inflate to at most this (413 beyond); 0: the default */
    otlp_strategy strategy;
    const char *const *promote; /* resource attributes copied onto every series (borrowed) */
    size_t npromote;
    int promote_all;          /* every resource attribute but those in promote[] */
    int keep_identifying;     /* keep service.* on target_info */
    int promote_scope;        /* otel_scope_* labels */
    int no_key_underscore;    /* label_name_underscore_sanitization: false */
    int collapse_underscores; /* label_name_preserve_multiple_underscores: false */
    int delta_to_cumulative;  /* --enable-feature=otlp-deltatocumulative: deltas summed per stream */
    int ct_zero;              /* --enable-feature=created-timestamp-zero-ingestion: 0 at start times */
    int nhcb;                 /* convert_histograms_to_nhcb: histograms as native ones, custom buckets */
} otlp_opts;

struct config;
typedef struct otlp otlp;

/* Creates the receiver and registers its kiln_otlp_* metrics (one per
 * process).  Borrows st and o's strings; copies o. */
KILN_MUST_CHECK int otlp_new(struct storage *st, const otlp_opts *o, otlp **out, kiln_err *err);

/* Handles POST /api/v1/otlp/v1/metrics: protobuf or JSON body, gzip or
 * not.  200 with an ExportMetricsServiceResponse (partial_success when some
 * data points were rejected), 400 with a google.rpc.Status, 404 when
 * disabled, 413, 415, 500.  Thread-safe. */
void otlp_handle(otlp *o, http_req *req, http_resp *resp);

/* Takes the translation settings of c's otlp section (retains c; NULL
 * keeps otlp_new's).  Thread-safe: requests in flight keep what they began
 * with. */
void otlp_apply(otlp *o, struct config *c);

/* NULL is a no-op; releases the applied configuration. */
void otlp_free(otlp *o);

/*
 * The Prometheus metric name of an OTLP metric (name, unit, kind) under a
 * strategy, into out (cap bytes, NUL-terminated).  kind: 'g' gauge, 'c'
 * monotonic sum, 's' non-monotonic sum, 'h' histogram, 'S' summary.
 * Returns the length, or -1 when it does not fit.  Public for tests.
 */
int otlp_metric_name(const char *name, const char *unit, char kind, otlp_strategy strategy, char *out,
                     size_t cap);

/* An attribute key as a label name (Prometheus' LabelNamer) under o's
 * strategy and label options; same contract. */
int otlp_label_name(const char *key, const otlp_opts *o, char *out, size_t cap);

/* ---- /api/v1 query and metadata (api/v1.c; handlers in query_api.c,
 * metadata.c, tsdb_status.c and admin.c, parameters in params.c) ---- */

/*
 * The /api/v1 query and metadata endpoints: query, query_range,
 * format_query, parse_query, series, labels, label/<name>/values, metadata,
 * query_exemplars, rules, alerts, alertmanagers, status/tsdb and
 * status/walreplay, answered as Prometheus answers them; /federate
 * (api/federate.c) and POST /api/v1/read (api/remoteread.c).
 *
 * The daemon registers the routes before the storage is open; until
 * api_v1_set_storage() is called the endpoints that read data answer 503
 * {"errorType":"unavailable"}.  Handlers run on worker threads; the api_v1 is
 * read-only after api_v1_new except for the storage pointer (atomic).
 */

/* The --query.* flags. */
typedef struct api_v1_opts {
    int64_t lookback_delta_ms;   /* --query.lookback-delta, default 5m */
    size_t max_samples;          /* --query.max-samples, default 50,000,000 */
    int64_t timeout_ms;          /* --query.timeout, default 2m; the timeout parameter is capped by it */
    int enable_admin;            /* --web.enable-admin-api: /api/v1/admin/tsdb/... */
    int max_concurrency;         /* --query.max-concurrency, default 20: query and query_range evaluating
                                  * at once on the query pool, the others wait (their timeout
                                  * counts); 0: no bound */
    size_t read_sample_limit;    /* --storage.remote.read-sample-limit, default 5e7; 0: no limit */
    int read_concurrency;        /* --storage.remote.read-concurrent-limit, default 10; 0: no limit */
    size_t read_max_frame_bytes; /* --storage.remote.read-max-bytes-in-frame, default 1 MiB */
    uint32_t features;           /* --enable-feature (util.h's FEATURE_*): the query engine's */
    size_t cache_bytes;          /* --query.cache-size: the range-query results cache; 0 (the default
                                  * here; the daemon's is a share of memory): none */
} api_v1_opts;

void api_v1_opts_default(api_v1_opts *o);

typedef struct api_v1 api_v1;

/* Creates the handlers' context (copies o; NULL: the defaults).  0 or KILN_ENOMEM. */
KILN_MUST_CHECK int api_v1_new(const api_v1_opts *o, api_v1 **out);

/* Makes the storage visible to the handlers once the WAL replay is done
 * (any thread).  Borrows st: keep it open until the HTTP server is freed. */
void api_v1_set_storage(api_v1 *a, struct storage *st);

/* What the scrape manager shows through the API: /api/v1/targets,
 * /api/v1/targets/metadata and /api/v1/metadata (see scrape/scrape.h for
 * the JSON each writes). */
struct matcher;
typedef struct api_v1_scrape {
    void *data;
    int (*targets)(void *data, const char *state, const char *pool, buf *out);
    int (*targets_metadata)(void *data, const struct matcher *ms, size_t nms, const char *metric, long limit,
                            buf *out);
    int (*metadata)(void *data, const char *metric, long limit, long limit_per_metric, buf *out);
} api_v1_scrape;

/* Connects the scrape views once scraping runs (any thread; copies s).
 * Until then the targets are empty lists and the metadata empty. */
KILN_MUST_CHECK int api_v1_set_scrape(api_v1 *a, const api_v1_scrape *s);

/* The external labels (global.external_labels of the running
 * configuration), sorted, copied into a; 0 or KILN_ENOMEM.  Any thread. */
struct label;
typedef int (*api_v1_ext_labels_fn)(void *data, arena *a, struct label **out, size_t *n);

/* Connects the external labels /federate adds (any thread). */
void api_v1_set_external_labels(api_v1 *a, api_v1_ext_labels_fn fn, void *data);

/* Connects /api/v1/rules, /api/v1/alerts and /api/v1/alertmanagers to the
 * rule manager once it runs (any thread); NULL disconnects them (their empty
 * answers again).  Borrows rm: it must outlive the handlers' use, i.e. be
 * freed after the HTTP server stopped. */
struct rules_manager;
void api_v1_set_rules(api_v1 *a, struct rules_manager *rm);

/* POST /api/v1/read (api/remoteread.c), the route's handler; public for
 * the fuzz harness.  Thread-safe. */
void api_v1_read_handle(api_v1 *a, http_req *req, http_resp *resp);

/* Registers every route above on s (worker routes); borrows a. */
KILN_MUST_CHECK int api_v1_register(http_server *s, api_v1 *a);

/* Frees a after the HTTP server is freed.  NULL is a no-op. */
void api_v1_free(api_v1 *a);

/* Prometheus' bounds for absent start/end (series, labels, label values):
 * its MinTime and MaxTime in milliseconds. */
#define API_V1_MIN_TIME_MS (-9223309901257974000LL)
#define API_V1_MAX_TIME_MS (9223309901257974999LL)

/*
 * Parses an API timestamp as Prometheus does: a float of unix seconds
 * (milliseconds rounded), or RFC 3339 with optional fraction and zone
 * ("2015-07-01T20:10:51.781Z", "...+02:00").  KILN_EINVAL with
 * `cannot parse "x" to a valid timestamp`.  Exposed for the unit tests.
 */
KILN_MUST_CHECK int api_v1_parse_time(const char *s, int64_t *ms, kiln_err *err);

/*
 * Parses a step, lookback delta or timeout: float seconds or a Prometheus
 * duration ("1m30s").  Writes nanoseconds (Go's time.Duration, so a step
 * below a millisecond is seen) to *ns.  KILN_EINVAL with
 * `cannot parse "x" to a valid duration`.
 */
KILN_MUST_CHECK int api_v1_parse_duration(const char *s, int64_t *ns, kiln_err *err);

/* Appends a timestamp in seconds with the millisecond fraction Prometheus
 * writes (1435781430.781, 1435781430.100, 12). */
void api_v1_json_time(buf *b, int64_t ms);

/* Appends a sample value as a JSON string ("1", "0.5", "NaN", "+Inf"). */
void api_v1_json_value(buf *b, double v);

/* Appends a native histogram as Prometheus' API writes it:
 * {"count":"4","sum":"5","buckets":[[0,"0.5","1","1"],...]} (non-empty
 * buckets only, each [boundary rule, lower, upper, count]). */
struct histogram;
void api_v1_json_histogram(buf *b, const struct histogram *h);

/* Undoes the U__ value-encoding escape of a label name in a URL
 * ("U__http_2e_status" -> "http.status"); an invalid escape is returned as
 * written.  The result lives in a. */
const char *api_v1_unescape_name(arena *a, const char *name);

#endif
