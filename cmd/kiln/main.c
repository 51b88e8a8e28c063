/*
 * main.c - the kiln daemon: flags, wiring, signals, lifecycle.  Nothing else.
 *
 * Start-up order: flags -> logging -> configuration -> data directory lock
 * -> HTTP server listening (so /-/healthy answers and /-/ready says 503) ->
 * storage opened on a worker thread (WAL replay) -> ready.
 * SIGTERM/SIGINT or POST /-/quit: stop accepting, let in-flight requests
 * finish (bounded), flush, exit 0.  SIGHUP or POST /-/reload: reload the
 * configuration atomically; a bad file keeps the old one.
 *
 * The process-wide state lives in one struct, `kiln`, defined here.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "config/config.h"
#include "query/query.h"
#include "remote/remote.h"
#include "rules/rules.h"
#include "scrape/scrape.h"
#include "storage/storage.h"
#include "util/util.h"

/* ---- flags ------------------------------------------------------------ */

/* FLAG_LIST: repeatable, each value a comma-separated list; the values are
 * joined with commas (--enable-feature). */
enum flag_kind { FLAG_STRING, FLAG_BOOL, FLAG_DURATION, FLAG_INT, FLAG_SIZE, FLAG_LIST };

typedef struct flag {
    const char *name;
    enum flag_kind kind;
    const char *def;
    const char *help;
    const char *value; /* points at def or into argv */
} flag;

enum {
    F_CONFIG,
    F_LISTEN,
    F_WEB_CONFIG,
    F_READ_TIMEOUT,
    F_MAX_CONNS,
    F_MAX_HEADER,
    F_MAX_BODY,
    F_LIFECYCLE,
    F_ADMIN,
    F_RW_RECEIVER,
    F_OTLP_RECEIVER,
    F_RW_DISABLE,
    F_RW_MAX_BYTES,
    F_TSDB_PATH,
    F_RETENTION_TIME,
    F_RETENTION_SIZE,
    F_WAL_COMPRESSION,
    F_WAL_FSYNC,
    F_MIN_BLOCK,
    F_MAX_BLOCK,
    F_LOOKBACK,
    F_QUERY_TIMEOUT,
    F_QUERY_MAX_SAMPLES,
    F_QUERY_CONCURRENCY,
    F_QUERY_CACHE_SIZE,
    F_EXTERNAL_URL,
    F_ROUTE_PREFIX,
    F_FOR_OUTAGE,
    F_FOR_GRACE,
    F_RESEND_DELAY,
    F_AM_QUEUE,
    F_READ_SAMPLE_LIMIT,
    F_READ_CONCURRENCY,
    F_READ_FRAME_BYTES,
    F_LOG_LEVEL,
    F_LOG_FORMAT,
    F_ENABLE_FEATURE,
    F_AGENT,
    F_AGENT_PATH,
    F_AGENT_MIN_TIME,
    F_AGENT_MAX_TIME,
    F_AGENT_TRUNCATE,
    F_COUNT
};

static flag flags[F_COUNT] = {
    [F_CONFIG] = {"config.file", FLAG_STRING, "kiln.yml",
                  "Configuration file path; with no flag and no kiln.yml, the embedded default is used.",
                  NULL},
    [F_LISTEN] = {"web.listen-address", FLAG_STRING, "0.0.0.0:9090",
                  "Address to listen on for the API and UI.", NULL},
    [F_WEB_CONFIG] = {"web.config.file", FLAG_STRING, "",
                      "Path to a web configuration file enabling TLS or authentication (docs/security.md).",
                      NULL},
    [F_READ_TIMEOUT] = {"web.read-timeout", FLAG_DURATION, "5m",
                        "Maximum time to read a request, and to keep an idle connection open.", NULL},
    [F_MAX_CONNS] = {"web.max-connections", FLAG_INT, "512", "Maximum number of simultaneous connections.",
                     NULL},
    [F_MAX_HEADER] = {"web.max-header-bytes", FLAG_SIZE, "65536",
                      "Maximum size of a request line and headers (431 beyond).", NULL},
    [F_MAX_BODY] = {"web.max-request-body-bytes", FLAG_SIZE, "67108864",
                    "Maximum size of a request body as sent (413 beyond).", NULL},
    [F_LIFECYCLE] = {"web.enable-lifecycle", FLAG_BOOL, "false",
                     "Enable shutdown and reload via HTTP request.", NULL},
    [F_ADMIN] = {"web.enable-admin-api", FLAG_BOOL, "false",
                 "Enable API endpoints for admin control actions.", NULL},
    [F_RW_RECEIVER] = {"web.enable-remote-write-receiver", FLAG_BOOL, "false",
                       "Accepted for compatibility with Prometheus; kiln's receiver is on by default.", NULL},
    [F_OTLP_RECEIVER] = {"web.enable-otlp-receiver", FLAG_BOOL, "false",
                         "Enable API endpoint accepting OTLP write requests.", NULL},
    [F_RW_DISABLE] = {"web.disable-remote-write-receiver", FLAG_BOOL, "false",
                      "Turn off POST /api/v1/write (it then answers 404).", NULL},
    [F_RW_MAX_BYTES] = {"web.remote-write-max-decompressed-bytes", FLAG_SIZE, "33554432",
                        "Largest remote-write body after snappy decompression (413 beyond).", NULL},
    [F_TSDB_PATH] = {"storage.tsdb.path", FLAG_STRING, "data/", "Base path for metrics storage.", NULL},
    [F_RETENTION_TIME] = {"storage.tsdb.retention.time", FLAG_DURATION, "15d", "How long to retain samples.",
                          NULL},
    [F_RETENTION_SIZE] = {"storage.tsdb.retention.size", FLAG_SIZE, "0B",
                          "Maximum number of bytes that can be stored for blocks (0: no limit).", NULL},
    [F_WAL_COMPRESSION] = {"storage.tsdb.wal-compression-type", FLAG_STRING, "snappy",
                           "Compression of WAL records: snappy, zstd or none.", NULL},
    [F_WAL_FSYNC] = {"storage.tsdb.wal-fsync", FLAG_STRING, "none",
                     "When the WAL reaches the disk: none (the kernel decides; survives a crash of kiln, "
                     "not of the machine), always (before each acknowledgement), or an interval like 1s.",
                     NULL},
    [F_MIN_BLOCK] = {"storage.tsdb.min-block-duration", FLAG_DURATION, "2h", "Duration of the head blocks.",
                     NULL},
    [F_MAX_BLOCK] = {"storage.tsdb.max-block-duration", FLAG_DURATION, "1d",
                     "Maximum duration compacted blocks may span.", NULL},
    [F_LOOKBACK] = {"query.lookback-delta", FLAG_DURATION, "5m",
                    "The maximum lookback duration for retrieving metrics during expression evaluations.",
                    NULL},
    [F_QUERY_TIMEOUT] = {"query.timeout", FLAG_DURATION, "2m",
                         "Maximum time a query may take before it is aborted.", NULL},
    [F_QUERY_MAX_SAMPLES] = {"query.max-samples", FLAG_INT, "50000000",
                             "Maximum number of samples a single query can load into memory.", NULL},
    [F_QUERY_CONCURRENCY] = {"query.max-concurrency", FLAG_INT, "20",
                             "Maximum number of queries executed concurrently.", NULL},
    [F_QUERY_CACHE_SIZE] = {"query.cache-size", FLAG_SIZE, "auto",
                            "Memory for the range-query results cache, e.g. 256MiB; 0 turns it off; auto: "
                            "1/64 of physical memory, at most 1GiB (docs/api.md).",
                            NULL},
    [F_EXTERNAL_URL] =
        {"web.external-url", FLAG_STRING, "",
         "The URL under which kiln is externally reachable: alerts' generatorURL and templates' "
         "externalURL (default: http://<hostname>:<port of --web.listen-address>/).",
         NULL},
    [F_ROUTE_PREFIX] =
        {"web.route-prefix", FLAG_STRING, "",
         "Prefix for the internal routes of web endpoints. Defaults to path of --web.external-url.", NULL},
    [F_FOR_OUTAGE] = {"rules.alert.for-outage-tolerance", FLAG_DURATION, "1h",
                      "Max time to tolerate kiln outage for restoring \"for\" state of alert.", NULL},
    [F_FOR_GRACE] = {"rules.alert.for-grace-period", FLAG_DURATION, "10m",
                     "Minimum duration between alert and restored \"for\" state. This is maintained only for "
                     "alerts with configured \"for\" time greater than grace period.",
                     NULL},
    [F_RESEND_DELAY] = {"rules.alert.resend-delay", FLAG_DURATION, "1m",
                        "Minimum amount of time to wait before resending an alert to Alertmanager.", NULL},
    [F_AM_QUEUE] = {"alertmanager.notification-queue-capacity", FLAG_INT, "10000",
                    "The capacity of the queue for pending Alertmanager notifications.", NULL},
    [F_READ_SAMPLE_LIMIT] =
        {"storage.remote.read-sample-limit", FLAG_INT, "50000000",
         "Maximum overall number of samples to return via the remote read interface, in a "
         "single query (0: no limit; streamed responses are not limited by it).",
         NULL},
    [F_READ_CONCURRENCY] = {"storage.remote.read-concurrent-limit", FLAG_INT, "10",
                            "Maximum number of concurrent remote read calls (0: no limit).", NULL},
    [F_READ_FRAME_BYTES] = {"storage.remote.read-max-bytes-in-frame", FLAG_SIZE, "1048576",
                            "Maximum number of bytes in a single frame of a streamed remote read response.",
                            NULL},
    [F_LOG_LEVEL] = {"log.level", FLAG_STRING, "info",
                     "Only log messages with the given severity or above: "
                     "debug, info, warn, error.",
                     NULL},
    [F_LOG_FORMAT] = {"log.format", FLAG_STRING, "logfmt", "Output format of log messages: logfmt or json.",
                      NULL},
    [F_ENABLE_FEATURE] = {"enable-feature", FLAG_LIST, "",
                          "Comma separated feature names to enable (repeatable); see docs/compatibility.md. "
                          "Unknown names are warned about and ignored.",
                          NULL},
    [F_AGENT] = {"agent", FLAG_BOOL, "false",
                 "Run in agent mode: scrape and forward by remote write only (no queries, rules or blocks).",
                 NULL},
    [F_AGENT_PATH] = {"storage.agent.path", FLAG_STRING, "data-agent/",
                      "Base path for metrics storage. Use with agent mode only.", NULL},
    [F_AGENT_MIN_TIME] = {"storage.agent.retention.min-time", FLAG_DURATION, "5m",
                          "Minimum age samples may be before being considered for deletion when the WAL is "
                          "truncated. Use with agent mode only.",
                          NULL},
    [F_AGENT_MAX_TIME] =
        {"storage.agent.retention.max-time", FLAG_DURATION, "4h",
         "Maximum age samples may be before being forcibly deleted when the WAL is truncated. "
         "Use with agent mode only.",
         NULL},
    [F_AGENT_TRUNCATE] = {"storage.agent.truncate-frequency", FLAG_DURATION, "2h",
                          "How often the agent truncates its WAL (kiln's own). Use with agent mode only.",
                          NULL},
};

static void usage(FILE *out) {
    fprintf(out, "usage: kiln [<flags>]\n\nkiln, a Prometheus-compatible time-series database.\n\nFlags:\n");
    fprintf(out, "  %-40s %s\n", "-h, --help", "Show this help.");
    fprintf(out, "  %-40s %s\n", "--version", "Show the version.");
    fprintf(out, "  %-40s %s\n", "--check-rules FILE...",
            "Check rule files as `promtool check rules` does; exits 1 on any error.");
    fprintf(out, "  %-40s %s\n", "test rules FILE...",
            "Run rule unit tests as `promtool test rules` does; exits 1 when one fails.");
    for (int i = 0; i < F_COUNT; i++) {
        char name[64];
        snprintf(name, sizeof name, "--%s%s", flags[i].name, flags[i].kind == FLAG_BOOL ? "" : "=VALUE");
        if (*flags[i].def)
            fprintf(out, "  %-40s %s (default: %s)\n", name, flags[i].help, flags[i].def);
        else
            fprintf(out, "  %-40s %s\n", name, flags[i].help);
    }
}

KILN_MUST_CHECK static int parse_size(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    int64_t mul = 1;
    if (!strcmp(end, "") || !strcmp(end, "B"))
        mul = 1;
    else if (!strcmp(end, "KB") || !strcmp(end, "KiB"))
        mul = 1024;
    else if (!strcmp(end, "MB") || !strcmp(end, "MiB"))
        mul = 1024 * 1024;
    else if (!strcmp(end, "GB") || !strcmp(end, "GiB"))
        mul = 1024LL * 1024 * 1024;
    else if (!strcmp(end, "TB") || !strcmp(end, "TiB"))
        mul = 1024LL * 1024 * 1024 * 1024;
    else
        return -1;
    if (v > INT64_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

KILN_MUST_CHECK static int flag_validate(const flag *f, kiln_err *err) {
    int64_t v;
    switch (f->kind) {
    case FLAG_BOOL:
        if (strcmp(f->value, "true") && strcmp(f->value, "false"))
            return kiln_err_set(err, KILN_EINVAL, "flag --%s: expected true or false, got \"%s\"", f->name,
                                f->value);
        return 0;
    case FLAG_DURATION:
        if (duration_parse(f->value, &v, err) != 0) {
            kiln_err_prefix(err, "flag --%s", f->name);
            return KILN_EINVAL;
        }
        return 0;
    case FLAG_INT:
    case FLAG_SIZE:
        if (f == &flags[F_QUERY_CACHE_SIZE] && strcmp(f->value, "auto") == 0)
            return 0;
        if (parse_size(f->value, &v) != 0 || (f->kind == FLAG_INT && strchr(f->value, 'B')))
            return kiln_err_set(err, KILN_EINVAL, "flag --%s: invalid number \"%s\"", f->name, f->value);
        return 0;
    default:
        return 0;
    }
}

/* The values of the FLAG_LIST flag (one: --enable-feature), joined with commas. */
static char list_values[4096];

/* Adds one value of a FLAG_LIST flag; the flag's value becomes all of them
 * joined with commas. */
KILN_MUST_CHECK static int flag_list_append(flag *f, const char *v, kiln_err *err) {
    size_t used = strlen(list_values);
    if (used + 1 + strlen(v) >= sizeof list_values)
        return kiln_err_set(err, KILN_EINVAL, "flag --%s: values too long", f->name);
    snprintf(list_values + used, sizeof list_values - used, "%s%s", used ? "," : "", v);
    f->value = list_values;
    return 0;
}

/* Returns 1 to continue, 0 to exit successfully (--help, --version), -1 on error. */
KILN_MUST_CHECK static int flags_parse(int argc, char **argv, kiln_err *err) {
    for (int i = 0; i < F_COUNT; i++)
        flags[i].value = flags[i].def;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--version")) {
            printf("kiln, version %s (branch: %s, revision: %s)\n", KILN_VERSION, KILN_BRANCH, KILN_REVISION);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0) {
            kiln_err_set(err, KILN_EINVAL, "unexpected argument \"%s\"; flags start with --", a);
            return -1;
        }
        const char *name = a + 2;
        int negated = 0;
        if (!strncmp(name, "no-", 3)) {
            negated = 1;
            name += 3;
        }
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        flag *f = NULL;
        for (int k = 0; k < F_COUNT; k++)
            if (strlen(flags[k].name) == nlen && !strncmp(flags[k].name, name, nlen))
                f = &flags[k];
        if (!f || (negated && f->kind != FLAG_BOOL)) {
            kiln_err_set(err, KILN_EINVAL, "unknown flag --%.*s (see --help)", (int)nlen + (negated ? 3 : 0),
                         a + 2);
            return -1;
        }
        if (f->kind == FLAG_BOOL) {
            f->value = eq ? eq + 1 : negated ? "false" : "true";
        } else if (f->kind == FLAG_LIST) {
            const char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
            if (!v) {
                kiln_err_set(err, KILN_EINVAL, "flag --%s needs a value", f->name);
                return -1;
            }
            if (flag_list_append(f, v, err) != 0)
                return -1;
        } else if (eq) {
            f->value = eq + 1;
        } else if (i + 1 < argc) {
            f->value = argv[++i];
        } else {
            kiln_err_set(err, KILN_EINVAL, "flag --%s needs a value", f->name);
            return -1;
        }
        if (flag_validate(f, err) != 0)
            return -1;
    }
    if (log_level_parse(flags[F_LOG_LEVEL].value) < 0) {
        kiln_err_set(err, KILN_EINVAL, "flag --log.level: unrecognized log level \"%s\"",
                     flags[F_LOG_LEVEL].value);
        return -1;
    }
    if (log_format_parse(flags[F_LOG_FORMAT].value) < 0) {
        kiln_err_set(err, KILN_EINVAL, "flag --log.format: unrecognized log format \"%s\"",
                     flags[F_LOG_FORMAT].value);
        return -1;
    }
    const char *wc = flags[F_WAL_COMPRESSION].value;
    if (strcmp(wc, "snappy") && strcmp(wc, "zstd") && strcmp(wc, "none")) {
        kiln_err_set(err, KILN_EINVAL,
                     "flag --storage.tsdb.wal-compression-type: want snappy, zstd or none, got \"%s\"", wc);
        return -1;
    }
    const char *fs = flags[F_WAL_FSYNC].value;
    int64_t fs_ms = 0;
    if (strcmp(fs, "none") && strcmp(fs, "always") && (duration_parse(fs, &fs_ms, NULL) != 0 || fs_ms <= 0)) {
        kiln_err_set(err, KILN_EINVAL,
                     "flag --storage.tsdb.wal-fsync: want none, always or a duration, got \"%s\"", fs);
        return -1;
    }
    return 1;
}

static int flag_bool(int f) {
    return strcmp(flags[f].value, "true") == 0;
}

static int64_t flag_ms(int f) {
    int64_t v = 0;
    if (duration_parse(flags[f].value, &v, NULL) != 0)
        return 0; /* not reached: flag_validate refused the flag at start */
    return v;
}

static int64_t flag_int(int f) {
    int64_t v = 0;
    if (parse_size(flags[f].value, &v) != 0)
        return 0; /* not reached: flag_validate refused the flag at start */
    return v;
}

/* --query.cache-size: auto is 1/64 of physical memory, at most 1 GiB. */
static size_t query_cache_bytes(void) {
    if (strcmp(flags[F_QUERY_CACHE_SIZE].value, "auto") != 0)
        return (size_t)flag_int(F_QUERY_CACHE_SIZE);
    int64_t mem = (int64_t)sysconf(_SC_PHYS_PAGES) * (int64_t)sysconf(_SC_PAGESIZE) / 64;
    return mem > 0 && mem < (1LL << 30) ? (size_t)mem : (size_t)1 << 30;
}

/* ---- agent mode (--agent) ---- */

static int is_agent(void) {
    return flag_bool(F_AGENT);
}

/* The data directory: --storage.agent.path in agent mode. */
static const char *data_path(void) {
    return flags[is_agent() ? F_AGENT_PATH : F_TSDB_PATH].value;
}

/* As Prometheus: a server flag given in agent mode, or an agent flag given
 * outside it, stops kiln at start (their names listed as Go's %q does). */
KILN_MUST_CHECK static int agent_flags_check(kiln_err *err) {
    static const char *const server_only[] = {"storage.tsdb.", "storage.remote.read-", "query.", "rules.",
                                              "alertmanager."};
    int agent = is_agent();
    char list[1024] = "";
    for (int i = 0; i < F_COUNT; i++) {
        int srv = 0;
        for (size_t j = 0; j < sizeof server_only / sizeof server_only[0]; j++)
            srv |= strncmp(flags[i].name, server_only[j], strlen(server_only[j])) == 0;
        int agent_only = strncmp(flags[i].name, "storage.agent.", 14) == 0;
        if (flags[i].value != flags[i].def && (agent ? srv : agent_only))
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"--%s\"", *list ? " " : "",
                     flags[i].name);
    }
    if (*list)
        return kiln_err_set(err, KILN_EINVAL, "The following flag(s) can %s agent mode: [%s]",
                            agent ? "not be used in" : "only be used in", list);
    return 0;
}

/* The sections Prometheus' agent refuses. */
KILN_MUST_CHECK static int agent_config_check(const config *c, kiln_err *err) {
    const char *field = c->nrule_files                                                     ? "rule_files"
                        : c->alerting.nalertmanagers || c->alerting.nalert_relabel_configs ? "alerting"
                        : c->nremote_read                                                  ? "remote_read"
                                                                                           : NULL;
    return field ? kiln_err_set(err, KILN_EINVAL, "%s: field %s is not allowed in agent mode", c->name, field)
                 : 0;
}

/* Query endpoints in agent mode: Prometheus' agent answers them so. */
static void agent_unavailable(http_req *req, http_resp *resp, void *data) {
    (void)req, (void)data;
    http_resp_json_error(resp, 422, "execution", "unavailable with Prometheus Agent");
}

/* /federate and remote read: the WAL cannot be read back. */
static void agent_no_reads(http_req *req, http_resp *resp, void *data) {
    (void)req, (void)data;
    http_resp_text(resp, 500, "unsupported operation with WAL-only storage\n");
}

/* Registered before the API's own routes, which they shadow (the first
 * route registered for a path answers). */
KILN_MUST_CHECK static int agent_routes(http_server *h) {
    static const struct {
        const char *methods, *path;
    } q[] = {{"GET,POST", "/api/v1/query"},
             {"GET,POST", "/api/v1/query_range"},
             {"GET,POST", "/api/v1/query_exemplars"},
             {"GET,POST", "/api/v1/format_query"},
             {"GET,POST", "/api/v1/parse_query"},
             {"GET,POST", "/api/v1/labels"},
             {"GET", "/api/v1/label/*"},
             {"GET,POST,DELETE", "/api/v1/series"},
             {"GET", "/api/v1/rules"},
             {"GET", "/api/v1/alerts"},
             {"GET", "/api/v1/alertmanagers"},
             {"GET", "/api/v1/status/tsdb"},
             {"POST,PUT", "/api/v1/admin/tsdb/*"}};
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
        if (http_route(h, q[i].methods, q[i].path, HTTP_ROUTE_INLINE, agent_unavailable, NULL, q[i].path) !=
            0)
            return KILN_ENOMEM;
    if (http_route(h, "GET,POST", "/federate", HTTP_ROUTE_INLINE, agent_no_reads, NULL, "/federate") != 0 ||
        http_route(h, "POST", "/api/v1/read", HTTP_ROUTE_INLINE, agent_no_reads, NULL, "/api/v1/read") != 0)
        return KILN_ENOMEM;
    return 0;
}

/* ---- the daemon --------------------------------------------------------- */

typedef struct kiln {
    uv_loop_t loop;
    http_server *http;
    api_app app;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_async_t quit_async;
    uv_work_t reload_work;
    int reload_running;
    atomic_int ready;
    atomic_int stopping;
    pthread_mutex_t cfg_mu;
    config *cfg;
    config_web *web;   /* --web.config.file; NULL when not given */
    int cfg_from_file; /* 0: the embedded default is in use */
    int64_t cfg_time_ms;
    int cfg_last_ok;
    int lock_fd;
    char lock_path[4096];
    const char *flag_names[F_COUNT];
    const char *flag_values[F_COUNT];
    metric_child *m_reload_ok, *m_reload_ts, *m_ready;
    storage *st;                    /* set by the start-up work once the WAL is replayed */
    remotewrite *_Atomic rw;        /* set once st is open */
    otlp *_Atomic otlp;             /* set once st is open */
    api_v1 *qapi;                   /* the /api/v1 query and metadata handlers */
    scrape_manager *_Atomic scrape; /* set once st is open (loop thread) */
    rules_manager *_Atomic rules;   /* set once st is open (loop thread) */
    remote *_Atomic sender;         /* remote_write: set once st is open (loop thread) */
    remote_reader *reader;          /* remote_read: the storage's other source */
    rulefile_set *rules_pending;    /* the start-up configuration's rules, until the manager takes them */
    char external_url[1024];        /* --web.external-url, or Prometheus' default */
    char route_prefix[1024];        /* --web.route-prefix: "" or "/path" */
    uv_timer_t housekeeping_timer;  /* housekeeping on a worker every second */
    uv_work_t housekeeping_work;
    int housekeeping_running, housekeeping_timer_on;
    unsigned housekeeping_ticks;
    int64_t agent_truncate_at; /* agent mode: when the WAL is truncated next */
    kiln_err startup_err;
    int startup_failed;
    int64_t start_ms;
    uint32_t features; /* --enable-feature: util.h's FEATURE_* bits */
    int exit_code;
} kiln;

/* Loads the configuration file, or the embedded default when no --config.file
 * was given and kiln.yml does not exist; a file named by the flag must exist. */
KILN_MUST_CHECK static int load_config(const char *path, config **out, int *from_file, kiln_err *err) {
    struct stat st;
    int given = flags[F_CONFIG].value != flags[F_CONFIG].def; /* value points into argv when given */
    if (!given && stat(path, &st) != 0 && errno == ENOENT) {
        const char *y = config_default_yaml();
        *from_file = 0;
        return config_load_string("<embedded default>", y, strlen(y), out, err);
    }
    *from_file = 1;
    int rc = config_load_file(path, out, err);
    if (rc == 0 && is_agent() && (rc = agent_config_check(*out, err)) != 0) {
        config_free(*out);
        *out = NULL;
    }
    return rc;
}

/* storage.exemplars.max_exemplars (when exemplar storage is on). */
static size_t max_exemplars(const config *c) {
    uint64_t m = c ? c->storage.exemplars.max_exemplars : 0;
    return m ? (size_t)m : CONFIG_DEFAULT_MAX_EXEMPLARS;
}

static int kiln_reload(void *p, kiln_err *err) {
    kiln *k = p;
    config *c = NULL;
    int from_file = 0;
    const char *path = flags[F_CONFIG].value;
    rulefile_set *rs = NULL;
    int rc = load_config(path, &c, &from_file, err);
    /* the rules are checked before anything is swapped: a bad rule file
     * keeps the old configuration and rules, as a bad configuration does */
    if (rc == 0 && (rc = rules_load(c, &rs, err)) != 0) {
        config_free(c);
        c = NULL;
    }
    pthread_mutex_lock(&k->cfg_mu);
    /* the rules and the alerting section first: they may still fail (the
     * manager then keeps the previous ones), and then nothing else changes */
    rules_manager *rm = atomic_load(&k->rules);
    if (rc == 0 && rm && (rc = rules_manager_apply(rm, c, rs, err)) != 0) {
        kiln_err_prefix(err, "applying the rules");
        config_free(c);
        c = NULL;
    } else if (rc == 0 && !rm) { /* not started yet: it starts with this configuration's rules */
        rulefile_free(k->rules_pending);
        k->rules_pending = rs;
    }
    if (rc == 0) {
        config *old = k->cfg;
        scrape_manager *sm = atomic_load(&k->scrape);
        if (sm)
            scrape_manager_apply(sm, c);
        remote *snd = atomic_load(&k->sender);
        if (snd && remote_apply(snd, c) != 0)
            LOG_ERROR("remote write: out of memory applying the configuration", NULL);
        if (k->reader && remote_reader_apply(k->reader, c) != 0)
            LOG_ERROR("remote read: out of memory applying the configuration", NULL);
        otlp *ot = atomic_load(&k->otlp);
        if (ot)
            otlp_apply(ot, c);
        /* the storage is open once rw is set */
        exemplar_store *es = atomic_load(&k->rw) ? storage_exemplars(k->st) : NULL;
        if (es && exemplar_store_resize(es, max_exemplars(c)) != 0)
            LOG_ERROR("exemplar storage: out of memory resizing it", NULL);
        kiln_err we = {0};
        if (atomic_load(&k->rw) && !is_agent() &&
            storage_set_ooo_window(k->st, c->storage.tsdb.out_of_order_time_window_ms, &we) != 0)
            LOG_ERROR("out_of_order_time_window: opening the WBL failed", "err=%s", we.msg);
        k->cfg = c;
        k->cfg_from_file = from_file;
        k->cfg_time_ms = time_now_ms();
        k->cfg_last_ok = 1;
        if (from_file) /* the warnings are about the user's file */
            config_log_unused(c);
        config_free(old);
    } else {
        k->cfg_last_ok = 0;
    }
    pthread_mutex_unlock(&k->cfg_mu);
    metric_set(k->m_reload_ok, rc == 0 ? 1 : 0);
    if (rc == 0) {
        metric_set(k->m_reload_ts, (double)(time_now_ms() / 1000));
        LOG_INFO("Completed loading of configuration file", "filename=%s",
                 from_file ? path : "<embedded default>");
    } else {
        LOG_ERROR("Error reloading config", "err=%s", err->msg);
    }
    return rc;
}

static int kiln_ready(void *p) {
    kiln *k = p;
    return atomic_load(&k->ready);
}

static void kiln_quit(void *p) {
    kiln *k = p;
    uv_async_send(&k->quit_async);
}

static int kiln_config_yaml(void *p, buf *out) {
    kiln *k = p;
    pthread_mutex_lock(&k->cfg_mu);
    int rc = config_to_yaml(k->cfg, out);
    pthread_mutex_unlock(&k->cfg_mu);
    return rc;
}

/* The running configuration's external labels, for /federate. */
static int kiln_external_labels(void *p, arena *a, label **out, size_t *n) {
    kiln *k = p;
    int rc = 0;
    pthread_mutex_lock(&k->cfg_mu);
    const config_global *g = &k->cfg->global;
    label *v = g->nexternal_labels ? arena_alloc(a, g->nexternal_labels * sizeof *v) : NULL;
    for (size_t i = 0; v && i < g->nexternal_labels; i++) {
        v[i].name = arena_strndup(a, g->external_labels[i].name, strlen(g->external_labels[i].name));
        v[i].value = arena_strndup(a, g->external_labels[i].value, strlen(g->external_labels[i].value));
        if (!v[i].name || !v[i].value)
            rc = KILN_ENOMEM;
    }
    if (g->nexternal_labels && !v)
        rc = KILN_ENOMEM;
    *n = v ? g->nexternal_labels : 0;
    pthread_mutex_unlock(&k->cfg_mu);
    *out = v;
    if (rc == 0 && *n)
        labels_sort(v, *n);
    return rc;
}

static void iso_time(int64_t ms, char *out, size_t n) {
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static int kiln_runtime_info(void *p, buf *b) {
    kiln *k = p;
    char start[64], last[64], cwd[4096];
    iso_time(k->start_ms, start, sizeof start);
    pthread_mutex_lock(&k->cfg_mu);
    iso_time(k->cfg_time_ms, last, sizeof last);
    int ok = k->cfg_last_ok;
    pthread_mutex_unlock(&k->cfg_mu);
    if (!getcwd(cwd, sizeof cwd))
        strcpy(cwd, "");
    buf_printf(b, "\"startTime\":\"%s\",\"CWD\":", start);
    json_str(b, cwd);
    buf_printf(b,
               ",\"reloadConfigSuccess\":%s,\"lastConfigTime\":\"%s\",\"corruptionCount\":0,"
               "\"goroutineCount\":0,\"GOMAXPROCS\":%ld,\"GOMEMLIMIT\":0,\"GOGC\":\"\",\"GODEBUG\":\"\","
               "\"storageRetention\":",
               ok ? "true" : "false", last, sysconf(_SC_NPROCESSORS_ONLN));
    json_str(b, flags[F_RETENTION_TIME].value);
    return b->data ? 0 : KILN_ENOMEM;
}

/* Prometheus' --web.route-prefix: the flag, or the external URL's path; ""
 * for the root, else "/path" without trailing slashes. */
static void route_prefix(const char *given, const char *ext, char *out, size_t n) {
    if (!*given) {
        const char *sep = strstr(ext, "://");
        given = strchr(sep ? sep + 3 : ext, '/');
        given = given ? given : "";
    }
    snprintf(out, n, "%s%s", *given == '/' ? "" : "/", given);
    size_t len = strlen(out);
    while (len > 0 && out[len - 1] == '/')
        out[--len] = '\0';
}

/* Prometheus' external URL: --web.external-url, or http://<hostname>:<port of
 * the listen address>/ when empty; the path's trailing slashes cut. */
KILN_MUST_CHECK static int external_url(const char *given, const char *listen, char *out, size_t n,
                                        kiln_err *err) {
    char host[256] = "localhost";
    if (!*given) {
        const char *colon = strrchr(listen, ':');
        if (gethostname(host, sizeof host - 1) != 0)
            strcpy(host, "localhost");
        snprintf(out, n, "http://%s:%s/", host, colon ? colon + 1 : "9090");
    } else if ((size_t)snprintf(out, n, "%s", given) >= n) {
        return kiln_err_set(err, KILN_EINVAL, "flag --web.external-url: too long");
    }
    size_t len = strlen(out);
    if (len && (out[0] == '"' || out[0] == '\'' || out[len - 1] == '"' || out[len - 1] == '\''))
        return kiln_err_set(err, KILN_EINVAL, "URL must not begin or end with quotes");
    const char *sep = strstr(out, "://");
    char *path = strchr(sep ? sep + 3 : out, '/');
    while (path && len > (size_t)(path - out) && out[len - 1] == '/')
        out[--len] = '\0';
    return 0;
}

/* ---- data directory ------------------------------------------------------ */

KILN_MUST_CHECK static int lock_data_dir(kiln *k, const char *dir, kiln_err *err) {
    int rc = fileio_mkdir_p(dir, err);
    if (rc) {
        kiln_err_prefix(err, "create data directory");
        return rc;
    }
    snprintf(k->lock_path, sizeof k->lock_path, "%s/lock", dir);
    k->lock_fd = open(k->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (k->lock_fd < 0)
        return kiln_err_set(err, KILN_EIO, "open lock file %s: %s", k->lock_path, strerror(errno));
    if (flock(k->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        close(k->lock_fd);
        k->lock_fd = -1;
        return kiln_err_set(
            err, KILN_EBUSY,
            "lock DB directory %s: already locked by another process (is another kiln running?)", dir);
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(k->lock_fd, 0) != 0 || write(k->lock_fd, pid, (size_t)n) != n)
        LOG_WARN("cannot write pid into lock file", "path=%s", k->lock_path);
    return 0;
}

static void unlock_data_dir(kiln *k) {
    if (k->lock_fd >= 0) {
        unlink(k->lock_path);
        close(k->lock_fd);
        k->lock_fd = -1;
    }
}

/* ---- start-up and shutdown ----------------------------------------------- */

/* POST /api/v1/write: 503 until the storage is open (senders retry). */
static void handle_write(http_req *req, http_resp *resp, void *data) {
    kiln *k = data;
    remotewrite *rw = atomic_load(&k->rw);
    if (!rw) {
        http_resp_text(resp, 503, "kiln is starting: the WAL replay is not done yet");
        return;
    }
    remotewrite_handle(rw, req, resp);
}

/* POST /api/v1/otlp/v1/metrics: 503 until the storage is open. */
static void handle_otlp(http_req *req, http_resp *resp, void *data) {
    kiln *k = data;
    otlp *o = atomic_load(&k->otlp);
    if (!o) {
        http_resp_text(resp, 503, "kiln is starting: the WAL replay is not done yet");
        return;
    }
    otlp_handle(o, req, resp);
}

/* The scrape manager's views for the API. */
static int scrape_targets_hook(void *d, const char *state, const char *pool, buf *out) {
    return scrape_targets_json(d, state, pool, out);
}

static int scrape_targets_metadata_hook(void *d, const matcher *ms, size_t nms, const char *name, long limit,
                                        buf *out) {
    return scrape_targets_metadata_json(d, ms, nms, name, limit, out, NULL);
}

static int scrape_metadata_hook(void *d, const char *name, long limit, long lpm, buf *out) {
    return scrape_metadata_json(d, name, limit, lpm, out);
}

/* ---- housekeeping, every second on a worker ------------------------------ */

/* Compaction is checked every 5 s (cheap unless the head is due).  Every
 * second the heap memory freed since the last time goes back to the system:
 * glibc keeps freed memory inside its heaps, and since the head's series and
 * chunks live in the slab allocator, what requests and queries free there is
 * not taken again soon (megabytes after a remote-write burst).  A trim is
 * cheap. */
static void housekeeping_run(uv_work_t *w) {
    kiln *k = w->data;
    kiln_err err = {0};
    if (k->housekeeping_ticks++ % 5 != 0) {
    } else if (!is_agent()) {
        if (storage_compact(k->st, &err) != 0)
            LOG_WARN("Compaction pass stopped; the next one tries again", "err=%s", err.msg);
    } else if (time_now_ms() >= k->agent_truncate_at) { /* the agent writes no blocks: it truncates */
        int64_t now = time_now_ms();
        k->agent_truncate_at = now + flag_ms(F_AGENT_TRUNCATE);
        remote *snd = atomic_load(&k->sender);
        int64_t keep = remote_wal_keep_from(snd ? remote_lowest_sent_ms(snd) : INT64_MAX, now,
                                            flag_ms(F_AGENT_MIN_TIME), flag_ms(F_AGENT_MAX_TIME));
        if (storage_truncate(k->st, keep, &err) != 0)
            LOG_WARN("Truncating the agent's WAL failed; the next time tries again", "err=%s", err.msg);
    }
    malloc_trim(0);
}

static void housekeeping_done(uv_work_t *w, int status) {
    kiln *k = w->data;
    (void)status;
    k->housekeeping_running = 0;
}

static void on_housekeeping_timer(uv_timer_t *t) {
    kiln *k = t->data;
    if (k->housekeeping_running || atomic_load(&k->stopping))
        return;
    k->housekeeping_running = 1;
    k->housekeeping_work.data = k;
    if (uv_queue_work(&k->loop, &k->housekeeping_work, housekeeping_run, housekeeping_done) != 0)
        k->housekeeping_running = 0;
}

/* Starts scraping with the current configuration (loop thread). */
static void start_scraping(kiln *k) {
    scrape_manager *sm = NULL;
    kiln_err err = {0};
    if (scrape_manager_new(&k->loop, k->st, &sm, &err) != 0) {
        LOG_ERROR("scraping unavailable", "err=%s", err.msg);
        return;
    }
    scrape_manager_set_features(sm, k->features);
    api_v1_scrape hooks = {sm, scrape_targets_hook, scrape_targets_metadata_hook, scrape_metadata_hook};
    if (api_v1_set_scrape(k->qapi, &hooks) != 0)
        LOG_WARN("out of memory: the targets API stays empty", NULL);
    pthread_mutex_lock(&k->cfg_mu);
    atomic_store(&k->scrape, sm);
    scrape_manager_apply(sm, k->cfg);
    pthread_mutex_unlock(&k->cfg_mu);
}

/* Starts the rule manager with the current configuration and the rules
 * loaded with it (loop thread). */
static void start_rules(kiln *k) {
    rules_options o = rules_options_default();
    o.engine.lookback_delta_ms = flag_ms(F_LOOKBACK);
    o.engine.timeout_ms = flag_ms(F_QUERY_TIMEOUT);
    o.engine.max_samples = (size_t)flag_int(F_QUERY_MAX_SAMPLES);
    o.engine.features = k->features;
    o.outage_tolerance_ms = flag_ms(F_FOR_OUTAGE);
    o.for_grace_period_ms = flag_ms(F_FOR_GRACE);
    o.resend_delay_ms = flag_ms(F_RESEND_DELAY);
    o.queue_capacity = (size_t)flag_int(F_AM_QUEUE);
    o.external_url = k->external_url;
    o.relabel = relabel_process;
    rules_manager *rm = NULL;
    kiln_err err = {0};
    if (rules_manager_new(k->st, &o, &rm, &err) != 0) {
        LOG_ERROR("rule evaluation unavailable", "err=%s", err.msg);
        return;
    }
    pthread_mutex_lock(&k->cfg_mu);
    rulefile_set *rs = k->rules_pending;
    k->rules_pending = NULL;
    if (!rs && rules_load(k->cfg, &rs, &err) != 0) /* not reached: a reload loaded them */
        rs = NULL;
    int rc = rs ? rules_manager_apply(rm, k->cfg, rs, &err) : KILN_EINVAL;
    if (rc == 0)
        atomic_store(&k->rules, rm);
    pthread_mutex_unlock(&k->cfg_mu);
    if (rc != 0 || rules_manager_run(rm) != 0) {
        LOG_ERROR("rule evaluation unavailable", "err=%s", err.msg);
        atomic_store(&k->rules, NULL);
        rules_manager_free(rm);
        return;
    }
    api_v1_set_rules(k->qapi, rm);
}

/* ---- remote write out ---- */

/* Starts the remote-write sender with the current configuration (loop
 * thread, once the storage is open: it follows the WAL the storage writes). */
/* The scraped families' metadata for metadata_config (the sender thread;
 * the sender stops before the scrape manager is freed). */
static int remote_metadata_hook(void *d, buf *out) {
    scrape_manager *sm = atomic_load(&((kiln *)d)->scrape);
    return sm ? scrape_metadata_json(sm, NULL, -1, -1, out) : buf_puts(out, "{}");
}

static void start_remote_write(kiln *k) {
    remote_options o = {.data_dir = data_path(),
                        .relabel = relabel_process,
                        .metadata = remote_metadata_hook,
                        .metadata_data = k};
    remote *snd = NULL;
    kiln_err err = {0};
    if (remote_new(&o, &snd, &err) != 0) {
        LOG_ERROR("remote write unavailable", "err=%s", err.msg);
        return;
    }
    pthread_mutex_lock(&k->cfg_mu);
    if (remote_apply(snd, k->cfg) != 0)
        LOG_ERROR("remote write: out of memory applying the configuration", NULL);
    atomic_store(&k->sender, snd);
    pthread_mutex_unlock(&k->cfg_mu);
}

/* Opens the storage (replaying the WAL) on a worker thread. */
static void startup_work(uv_work_t *w) {
    kiln *k = w->data;
    storage_opts o = storage_opts_default();
    o.dir = data_path();
    const char *wc = flags[F_WAL_COMPRESSION].value;
    o.wal_compression = strcmp(wc, "zstd") == 0   ? STORAGE_WAL_ZSTD
                        : strcmp(wc, "none") == 0 ? STORAGE_WAL_NONE
                                                  : STORAGE_WAL_SNAPPY;
    o.block_range_ms = flag_ms(F_MIN_BLOCK);
    o.max_block_range_ms = flag_ms(F_MAX_BLOCK);
    const char *fs = flags[F_WAL_FSYNC].value;
    if (strcmp(fs, "always") == 0)
        o.wal_fsync_every_commit = 1;
    else if (strcmp(fs, "none") != 0)
        o.wal_fsync_interval_ms = flag_ms(F_WAL_FSYNC);
    o.retention_ms = flag_ms(F_RETENTION_TIME);
    if (k->features & FEATURE_EXEMPLAR_STORAGE)
        o.max_exemplars = max_exemplars(k->cfg);
    /* the agent keeps no out-of-order head: its WAL truncation would never clear a WBL */
    o.ooo_window_ms = k->cfg && !is_agent() ? k->cfg->storage.tsdb.out_of_order_time_window_ms : 0;
    int64_t rsize = 0;
    if (parse_size(flags[F_RETENTION_SIZE].value, &rsize) == 0)
        o.retention_bytes = (uint64_t)rsize;
    if (storage_open(&o, &k->st, &k->startup_err) != 0)
        k->startup_failed = 1;
    else if (k->reader) {
        storage_source src = remote_reader_source(k->reader); /* remote_read, merged by the query engine */
        storage_set_source(k->st, &src);
    }
}

static void begin_stop(kiln *k, const char *why);

static void startup_done(uv_work_t *w, int status) {
    kiln *k = w->data;
    (void)status;
    free(w);
    if (k->startup_failed) {
        LOG_ERROR("Opening storage failed", "err=%s", k->startup_err.msg);
        k->exit_code = 1;
        begin_stop(k, "storage");
        return;
    }
    if (storage_register_metrics(k->st) != 0)
        LOG_WARN("could not register the storage metrics", NULL);
    remotewrite_opts ro;
    remotewrite_opts_default(&ro);
    ro.enabled = !flag_bool(F_RW_DISABLE);
    ro.max_decompressed_bytes = (size_t)flag_int(F_RW_MAX_BYTES);
    remotewrite *rw = NULL;
    kiln_err rerr = {0};
    if (remotewrite_new(k->st, &ro, &rw, &rerr) != 0)
        LOG_ERROR("remote-write receiver unavailable", "err=%s", rerr.msg);
    atomic_store(&k->rw, rw);
    otlp_opts oo = {.enabled = flag_bool(F_OTLP_RECEIVER),
                    .max_decompressed_bytes = (size_t)flag_int(F_RW_MAX_BYTES),
                    .delta_to_cumulative = (k->features & FEATURE_OTLP_DELTATOCUMULATIVE) != 0,
                    .ct_zero = (k->features & FEATURE_CREATED_TIMESTAMP_ZERO_INGESTION) != 0};
    otlp *ot = NULL;
    if (otlp_new(k->st, &oo, &ot, &rerr) != 0)
        LOG_ERROR("OTLP receiver unavailable", "err=%s", rerr.msg);
    pthread_mutex_lock(&k->cfg_mu); /* a reload applies to it from now on */
    if (ot)
        otlp_apply(ot, k->cfg);
    atomic_store(&k->otlp, ot);
    pthread_mutex_unlock(&k->cfg_mu);
    api_v1_set_external_labels(k->qapi, kiln_external_labels, k);
    api_v1_set_storage(k->qapi, k->st);
    if (atomic_load(&k->stopping))
        return;
    start_scraping(k);
    if (!is_agent()) /* the agent evaluates no rules */
        start_rules(k);
    start_remote_write(k);
    k->agent_truncate_at = time_now_ms() + flag_ms(F_AGENT_TRUNCATE);
    uv_timer_init(&k->loop, &k->housekeeping_timer);
    k->housekeeping_timer.data = k;
    k->housekeeping_timer_on = 1;
    uv_timer_start(&k->housekeeping_timer, on_housekeeping_timer, 1000, 1000);
    atomic_store(&k->ready, 1);
    metric_set(k->m_ready, 1);
    LOG_INFO("Server is ready to receive web requests.", NULL);
}

static void on_handle_closed(uv_handle_t *h) {
    (void)h;
}

static void on_http_down(void *data) {
    kiln *k = data;
    uv_close((uv_handle_t *)&k->sig_term, on_handle_closed);
    uv_close((uv_handle_t *)&k->sig_int, on_handle_closed);
    uv_close((uv_handle_t *)&k->sig_hup, on_handle_closed);
    uv_close((uv_handle_t *)&k->quit_async, on_handle_closed);
    LOG_INFO("HTTP server stopped", NULL);
}

static void begin_stop(kiln *k, const char *why) {
    if (atomic_exchange(&k->stopping, 1))
        return;
    LOG_WARN("Received shutdown request, exiting gracefully...", "reason=%s", why);
    atomic_store(&k->ready, 0);
    scrape_manager *sm = atomic_load(&k->scrape);
    if (sm)
        scrape_manager_stop(sm, NULL, NULL);
    if (k->housekeeping_timer_on) {
        uv_timer_stop(&k->housekeeping_timer);
        uv_close((uv_handle_t *)&k->housekeeping_timer, on_handle_closed);
        k->housekeeping_timer_on = 0;
    }
    http_server_shutdown(k->http, on_http_down, k);
}

static void on_quit_async(uv_async_t *a) {
    begin_stop(a->data, "quit");
}

static void reload_work_run(uv_work_t *w) {
    kiln *k = w->data;
    kiln_err err = {0};
    kiln_reload(k, &err);
}

static void reload_work_done(uv_work_t *w, int status) {
    kiln *k = w->data;
    (void)status;
    k->reload_running = 0;
}

static void on_signal(uv_signal_t *s, int signum) {
    kiln *k = s->data;
    if (signum == SIGHUP) {
        if (k->reload_running || atomic_load(&k->stopping))
            return;
        k->reload_running = 1;
        k->reload_work.data = k;
        if (uv_queue_work(&k->loop, &k->reload_work, reload_work_run, reload_work_done) != 0)
            k->reload_running = 0;
        return;
    }
    begin_stop(k, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static double build_info_value(void *d) {
    (void)d;
    return 1;
}

KILN_MUST_CHECK static int register_metrics(kiln *k) {
    metric *bi = metric_new(METRIC_GAUGE, "kiln_build_info",
                            "A metric with a constant '1' value labeled by version, revision and branch.",
                            "version,revision,branch", NULL, 0);
    metric *ok = metric_new(METRIC_GAUGE, "kiln_config_last_reload_successful",
                            "Whether the last configuration reload attempt was successful.", NULL, NULL, 0);
    metric *ts = metric_new(METRIC_GAUGE, "kiln_config_last_reload_success_timestamp_seconds",
                            "Timestamp of the last successful configuration reload.", NULL, NULL, 0);
    metric *rd = metric_new(METRIC_GAUGE, "kiln_ready", "Whether kiln's startup is done and it is ready.",
                            NULL, NULL, 0);
    if (!bi || !ok || !ts || !rd || process_metrics_register() != 0)
        return KILN_ENOMEM;
    const char *lv[3] = {KILN_VERSION, KILN_REVISION, KILN_BRANCH};
    metric_set(metric_with(bi, lv), build_info_value(NULL));
    k->m_reload_ok = metric_default(ok);
    k->m_reload_ts = metric_default(ts);
    k->m_ready = metric_default(rd);
    return 0;
}

/* ---- kiln --check-rules FILE... ----------------------------------------- */

static int check_rules_expr(const char *expr, kiln_err *err) {
    return query_parse_check(expr, err);
}

static void check_rules_report(void *data, const char *msg) {
    buf *b = data;
    buf_printf(b, "%s\n", msg);
}

/* promtool check rules' output: "Checking FILE", then "  SUCCESS: N rules
 * found" on stdout or "  FAILED:" and every error on stderr, a blank line
 * after each file.  0 when every file is good, else 1. */
static int check_rules(int n, char **files) {
    int failed = 0;
    buf errs = BUF_INIT;
    rulefile_opts o = {.check_expr = check_rules_expr,
                       .check_template = tmpl_check,
                       .report = check_rules_report,
                       .data = &errs};
    for (int i = 0; i < n; i++) {
        rulefile_set *s = NULL;
        kiln_err err = {0};
        buf_reset(&errs);
        printf("Checking %s\n", files[i]);
        fflush(stdout);
        if (rulefile_load_file(files[i], &o, &s, &err) != 0) {
            fprintf(stderr, "  FAILED:\n%s", buf_error(&errs) == 0 && errs.len ? errs.data : err.msg);
            if (buf_error(&errs) != 0 || !errs.len)
                fputc('\n', stderr);
            fflush(stderr);
            failed = 1;
        } else {
            printf("  SUCCESS: %zu rules found\n", s->nrules);
        }
        printf("\n");
        rulefile_free(s);
    }
    buf_free(&errs);
    return failed;
}

int main(int argc, char **argv) {
    static kiln k;
    if (argc >= 2 && strcmp(argv[1], "--check-rules") == 0) {
        if (argc == 2) {
            fprintf(stderr, "kiln: error: --check-rules needs at least one rule file\n");
            return 2;
        }
        return check_rules(argc - 2, argv + 2);
    }
    if (argc >= 3 && strcmp(argv[1], "test") == 0 && strcmp(argv[2], "rules") == 0) {
        if (argc == 3) {
            fprintf(stderr, "kiln: error: required argument 'test-rule-file' not provided, try --help\n");
            return 1;
        }
        return rules_test_main(argc - 3, argv + 3, stdout, stderr);
    }
    kiln_err err = {0};
    k.lock_fd = -1;
    k.exit_code = 1;

    int fr = flags_parse(argc, argv, &err);
    if (fr <= 0) {
        if (fr < 0)
            fprintf(stderr, "kiln: error: %s\n", err.msg);
        return fr < 0 ? 2 : 0;
    }
    if (agent_flags_check(&err) != 0) {
        fprintf(stderr, "kiln: error: %s\n", err.msg);
        return 3;
    }
    log_setup(log_level_parse(flags[F_LOG_LEVEL].value), log_format_parse(flags[F_LOG_FORMAT].value));
    signal(SIGPIPE, SIG_IGN);
    if (!getenv("UV_THREADPOOL_SIZE")) {
        /* libuv's pool runs ingestion (remote writes, scrapes), housekeeping
         * and the cheap endpoints; queries have the HTTP server's own pool.
         * Two threads a core, at least 8 (room for appends waiting on the WAL
         * and a compaction beside them) and at most 32: every worker thread
         * that has run keeps stack and allocator memory */
        int64_t n = 2 * sysconf(_SC_NPROCESSORS_ONLN);
        char v[16];
        snprintf(v, sizeof v, "%lld", (long long)(n < 8 ? 8 : n > 32 ? 32 : n));
        setenv("UV_THREADPOOL_SIZE", v, 1);
    }

    k.start_ms = time_now_ms();
    feature_parse_list(flags[F_ENABLE_FEATURE].value, &k.features);
    config_set_native_histograms_default((k.features & FEATURE_NATIVE_HISTOGRAMS) != 0);
    pthread_mutex_init(&k.cfg_mu, NULL);
    for (int i = 0; i < F_COUNT; i++) {
        k.flag_names[i] = flags[i].name;
        k.flag_values[i] = flags[i].value;
    }
    LOG_INFO(is_agent() ? "Starting kiln agent" : "Starting kiln", "mode=%s version=%s revision=%s",
             is_agent() ? "agent" : "server", KILN_VERSION, KILN_REVISION);
    if (register_metrics(&k) != 0) {
        LOG_ERROR("out of memory", NULL);
        goto out;
    }

    if (load_config(flags[F_CONFIG].value, &k.cfg, &k.cfg_from_file, &err) != 0) {
        LOG_ERROR("Error loading config", "err=%s", err.msg);
        goto out;
    }
    k.cfg_time_ms = time_now_ms();
    k.cfg_last_ok = 1;
    metric_set(k.m_reload_ok, 1);
    metric_set(k.m_reload_ts, (double)(k.cfg_time_ms / 1000));
    LOG_INFO("Loaded configuration", "filename=%s",
             k.cfg_from_file ? flags[F_CONFIG].value : "<embedded default>");
    if (k.cfg_from_file)
        config_log_unused(k.cfg);
    if (remote_reader_new(&k.reader) != 0 || remote_reader_apply(k.reader, k.cfg) != 0) {
        LOG_ERROR("remote read: out of memory", NULL);
        goto out;
    }
    /* a bad rule file at start is a start-up error, as in Prometheus */
    if (rules_load(k.cfg, &k.rules_pending, &err) != 0) {
        LOG_ERROR("Error loading rule files", "err=%s", err.msg);
        goto out;
    }
    if (external_url(flags[F_EXTERNAL_URL].value, flags[F_LISTEN].value, k.external_url,
                     sizeof k.external_url, &err) != 0) {
        LOG_ERROR("parse external URL", "err=%s", err.msg);
        goto out;
    }

    if (lock_data_dir(&k, data_path(), &err) != 0) {
        LOG_ERROR("Opening storage failed", "err=%s", err.msg);
        goto out;
    }

    route_prefix(flags[F_ROUTE_PREFIX].value, k.external_url, k.route_prefix, sizeof k.route_prefix);

    uv_loop_init(&k.loop);
    http_server_opts ho;
    http_server_opts_default(&ho);
    ho.listen_address = flags[F_LISTEN].value;
    ho.read_timeout_ms = flag_ms(F_READ_TIMEOUT);
    ho.max_connections = (int)flag_int(F_MAX_CONNS);
    ho.max_header_bytes = (size_t)flag_int(F_MAX_HEADER);
    ho.max_body_bytes = (size_t)flag_int(F_MAX_BODY);
    ho.shutdown_grace_ms = 3000;
    ho.route_prefix = k.route_prefix;
    if (http_server_new(&k.loop, &ho, &k.http, &err) != 0)
        goto fail_loop;
    if (*flags[F_WEB_CONFIG].value && (config_web_load_file(flags[F_WEB_CONFIG].value, &k.web, &err) != 0 ||
                                       http_server_set_web(k.http, k.web, &err) != 0))
        goto fail_loop;
    config_web_log_unused(k.web);
    k.app = (api_app){
        .app = &k,
        .ready = kiln_ready,
        .reload = kiln_reload,
        .quit = kiln_quit,
        .config_yaml = kiln_config_yaml,
        .runtime_info = kiln_runtime_info,
        .flag_names = k.flag_names,
        .flag_values = k.flag_values,
        .nflags = F_COUNT,
        .enable_lifecycle = flag_bool(F_LIFECYCLE),
    };
    api_v1_opts qo;
    api_v1_opts_default(&qo);
    qo.lookback_delta_ms = flag_ms(F_LOOKBACK);
    qo.timeout_ms = flag_ms(F_QUERY_TIMEOUT);
    qo.max_samples = (size_t)flag_int(F_QUERY_MAX_SAMPLES);
    qo.features = k.features;
    qo.enable_admin = flag_bool(F_ADMIN);
    qo.max_concurrency = (int)flag_int(F_QUERY_CONCURRENCY);
    qo.cache_bytes = query_cache_bytes();
    qo.read_sample_limit = (size_t)flag_int(F_READ_SAMPLE_LIMIT);
    qo.read_concurrency = (int)flag_int(F_READ_CONCURRENCY);
    qo.read_max_frame_bytes = (size_t)flag_int(F_READ_FRAME_BYTES);
    if ((is_agent() && agent_routes(k.http) != 0) || api_register_base(k.http, &k.app) != 0 ||
        http_route(k.http, "POST", "/api/v1/write", HTTP_ROUTE_WORKER, handle_write, &k, "/api/v1/write") !=
            0 ||
        http_route(k.http, "POST", "/api/v1/otlp/v1/metrics", HTTP_ROUTE_WORKER, handle_otlp, &k,
                   "/api/v1/otlp/v1/metrics") != 0 ||
        api_v1_new(&qo, &k.qapi) != 0 || api_v1_register(k.http, k.qapi) != 0 ||
        ui_register(k.http, kiln_ui_assets) != 0) {
        kiln_err_set(&err, KILN_ENOMEM, "out of memory");
        goto fail_loop;
    }
    if (http_server_listen(k.http, &err) != 0)
        goto fail_loop;
    LOG_INFO("Listening", "address=%s", flags[F_LISTEN].value);

    uv_signal_init(&k.loop, &k.sig_term);
    uv_signal_init(&k.loop, &k.sig_int);
    uv_signal_init(&k.loop, &k.sig_hup);
    k.sig_term.data = k.sig_int.data = k.sig_hup.data = &k;
    uv_signal_start(&k.sig_term, on_signal, SIGTERM);
    uv_signal_start(&k.sig_int, on_signal, SIGINT);
    uv_signal_start(&k.sig_hup, on_signal, SIGHUP);
    uv_async_init(&k.loop, &k.quit_async, on_quit_async);
    k.quit_async.data = &k;

    uv_work_t *sw = calloc(1, sizeof *sw);
    if (!sw)
        goto fail_loop;
    sw->data = &k;
    uv_queue_work(&k.loop, sw, startup_work, startup_done);

    k.exit_code = 0;
    uv_run(&k.loop, UV_RUN_DEFAULT);
    /* the sender first: it reads the scrape manager's metadata (and the WAL,
     * before the storage closes) */
    remote_free(atomic_exchange(&k.sender, NULL));
    scrape_manager_free(atomic_load(&k.scrape));
    /* the rules stop before the storage closes: an evaluation in progress finishes */
    api_v1_set_rules(k.qapi, NULL);
    rules_manager_free(atomic_exchange(&k.rules, NULL));
    remotewrite_free(atomic_load(&k.rw));
    otlp_free(atomic_load(&k.otlp));
    if (k.st) {
        kiln_err cerr = {0};
        if (storage_close(k.st, &cerr) != 0) {
            LOG_ERROR("Closing storage failed", "err=%s", cerr.msg);
            k.exit_code = 1;
        }
        k.st = NULL;
    }
    if (k.exit_code == 0)
        LOG_INFO("See you next time!", NULL);
    goto close_loop;

fail_loop:
    LOG_ERROR("Start-up failed", "err=%s", err.msg);
    if (k.http) {
        /* let libuv release what was opened */
        atomic_store(&k.stopping, 1);
        http_server_shutdown(k.http, NULL, NULL);
        uv_run(&k.loop, UV_RUN_DEFAULT);
    }
close_loop:
    http_server_free(k.http);
    api_v1_free(k.qapi);
    if (uv_loop_close(&k.loop) != 0)
        LOG_WARN("event loop closed with handles open", NULL);
out:
    unlock_data_dir(&k);
    rulefile_free(k.rules_pending);
    remote_reader_free(k.reader); /* the storage, its user, is closed */
    config_free(k.cfg);
    config_web_free(k.web);
    metrics_shutdown();
    pthread_mutex_destroy(&k.cfg_mu);
    return k.exit_code;
}
