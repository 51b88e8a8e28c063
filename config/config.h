/*
 * config.h - kiln's configuration model: the `prometheus.yml` keys kiln
 * supports, loaded with libyaml, validated with Prometheus' rules, with
 * every error naming file:line:column.
 *
 * A loaded `config` is immutable and self-contained: every string and array
 * in it is owned by it (allocated from its arena), and the compiled relabel
 * regexes are freed by config_free.  Readers on any thread may use a config
 * concurrently; a reload loads a new one and swaps the pointer (the old one
 * is freed once no reader holds it).
 *
 * Conventions in the structs below:
 *   - durations are int64 milliseconds; defaults from `global` are already
 *     applied (scrape_interval/scrape_timeout/limits/protocols inherited);
 *   - an optional string that was not set is NULL; a string with a default
 *     is never NULL;
 *   - arrays come with a count `n<name>`;
 *   - limits are 0 for "no limit".
 *
 * Relative file paths (rule_files, file_sd files, TLS/password/credential
 * files) are resolved against the directory of the file by
 * config_load_file, as Prometheus does; config_load_string keeps them as
 * written.
 *
 * Some keys are parsed and validated but kiln does nothing with them (the
 * rule, alerting and remote sections, ...): a load lists the ones a
 * document sets in config.unused_keys, and config_log_unused warns about
 * them.
 *
 * Inside config/: config.c (loading, this API), schema.c (the keys of each
 * section as tables, with Prometheus' defaults and rules), decode.c (the
 * decoder those tables drive), emit.c (config_to_yaml), equal.c
 * (config_scrape_equal), yamltree.c (libyaml -> node tree), strtab.c.
 */
#ifndef KILN_CONFIG_H
#define KILN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include "util/util.h"

/* Bounds on what a configuration document may cost. */
#define CONFIG_MAX_BYTES (8u << 20) /* document size */
#define CONFIG_MAX_DEPTH 64         /* nesting of lists and maps */
#define CONFIG_MAX_NODES 1000000    /* nodes after expanding aliases */

/* Relabel actions (the names are Prometheus', matched case-insensitively). */
enum {
    CONFIG_RELABEL_REPLACE = 0,
    CONFIG_RELABEL_KEEP,
    CONFIG_RELABEL_DROP,
    CONFIG_RELABEL_KEEPEQUAL,
    CONFIG_RELABEL_DROPEQUAL,
    CONFIG_RELABEL_HASHMOD,
    CONFIG_RELABEL_LABELMAP,
    CONFIG_RELABEL_LABELDROP,
    CONFIG_RELABEL_LABELKEEP,
    CONFIG_RELABEL_LOWERCASE,
    CONFIG_RELABEL_UPPERCASE,
    CONFIG_RELABEL_NACTIONS /* the count, not an action */
};

typedef struct config_label {
    char *name;
    char *value;
} config_label;

/* One relabel step (relabel_configs, metric_relabel_configs,
 * write_relabel_configs, alert_relabel_configs). */
typedef struct config_relabel {
    char **source_labels;
    size_t nsource_labels;
    char *separator;    /* default ";" */
    char *target_label; /* "" when not set */
    char *regex;        /* the text as written (unanchored), default "(.*)" */
    /* `^(?:regex)$` compiled with PCRE2_UTF | PCRE2_DOTALL |
     * PCRE2_DOLLAR_ENDONLY (Go's RE2 semantics as Prometheus uses them:
     * anchored at both ends, `.` matches a newline); JIT-compiled when the
     * platform allows.  Owned by the config and shared by every relabel
     * step of the config with the same regex text; never NULL.  Matching
     * from several threads at once is safe (one match_data per thread). */
    pcre2_code *re;
    uint64_t modulus;  /* hashmod only; 0 when not set */
    char *replacement; /* default "$1" */
    int action;        /* CONFIG_RELABEL_*, default replace */
} config_relabel;

typedef struct config_tls {
    char *ca_file, *cert_file, *key_file; /* NULL when not set */
    char *server_name;                    /* NULL when not set */
    int insecure_skip_verify;
    char *min_version; /* "TLS10".."TLS13" or NULL */
} config_tls;

/* The HTTP client settings shared by scrape configs, Alertmanagers and
 * remote endpoints.  The legacy bearer_token/bearer_token_file are turned
 * into authorization{type: Bearer} as Prometheus does. */
typedef struct config_http {
    int has_basic_auth;
    char *username, *password, *password_file; /* NULL when not set */
    int has_authorization;
    char *auth_type;                      /* default "Bearer" */
    char *credentials, *credentials_file; /* NULL when not set */
    config_tls tls;
    char *proxy_url;      /* NULL when not set */
    int follow_redirects; /* default 1 */
    int enable_http2;     /* default 1 (0 for remote_write) */
} config_http;

typedef struct config_static {
    char **targets;
    size_t ntargets;
    config_label *labels;
    size_t nlabels;
} config_static;

typedef struct config_file_sd {
    char **files;
    size_t nfiles;
    int64_t refresh_interval_ms; /* default 5m */
} config_file_sd;

/* The service discoveries kiln runs (scrape/sd_*.c), in scrape_configs;
 * their keys are Prometheus'.  Each has its own HTTP client settings. */
typedef struct config_http_sd {
    char *url;                   /* required, http or https */
    int64_t refresh_interval_ms; /* default 60s */
    config_http http;
} config_http_sd;

typedef struct config_dns_sd {
    char **names; /* at least one */
    size_t nnames;
    char *type;                  /* SRV (default), A, AAAA, MX or NS */
    uint64_t port;               /* required unless SRV */
    int64_t refresh_interval_ms; /* default 30s */
} config_dns_sd;

typedef struct config_consul_sd {
    char *server;                                                       /* default "localhost:8500" */
    char *path_prefix;                                                  /* NULL when not set */
    char *token;                                                        /* NULL when not set (a secret) */
    char *datacenter, *namespace_, *partition, *filter, *health_filter; /* NULL when not set */
    char *scheme;                                                       /* default "http" */
    char **services;
    size_t nservices;
    char **tags;
    size_t ntags;
    config_label *node_meta;
    size_t nnode_meta;
    char *tag_separator;         /* default "," */
    int allow_stale;             /* default 1 */
    int64_t refresh_interval_ms; /* default 30s */
    config_http http;
} config_consul_sd;

typedef struct config_kube_selector {
    char *role, *label, *field; /* label and field NULL when not set */
} config_kube_selector;

typedef struct config_kubernetes_sd {
    char *api_server; /* NULL: in the cluster (the service account's files) */
    char *role;       /* node, pod, service, endpoints, endpointslice or ingress */
    char *kubeconfig_file;
    int own_namespace;
    char **namespaces; /* none: all */
    size_t nnamespaces;
    config_kube_selector *selectors;
    size_t nselectors;
    int attach_node, attach_namespace, attach_deployment, attach_job, attach_cronjob;
    config_http http;
} config_kubernetes_sd;

/* A kubeconfig file's current context (config/kubeconfig.c): what
 * kubernetes_sd_configs' kubeconfig_file connects with.  Strings are NULL
 * when not set; files are absolute or the kubeconfig's directory's. */
typedef struct config_kubeconfig {
    arena mem;
    char *server; /* a URL */
    char *ca_file, *cert_file, *key_file;
    char *ca_data, *cert_data, *key_data; /* the *-data fields decoded (PEM), winning over the files */
    size_t ca_len, cert_len, key_len;
    char *server_name, *proxy_url;
    int insecure_skip_verify;
    char *token, *token_file, *username, *password;
} config_kubeconfig;

/* Reads the kubeconfig at path (parse: the document data[0..len) of that
 * name, dir its directory).  0 and *out (free with config_kubeconfig_free);
 * or KILN_EINVAL (not usable: err says what and where), KILN_ENOENT,
 * KILN_EIO, KILN_ENOMEM. */
KILN_MUST_CHECK int config_kubeconfig_load(const char *path, config_kubeconfig **out, kiln_err *err);
KILN_MUST_CHECK int config_kubeconfig_parse(const char *name, const char *dir, const char *data, size_t len,
                                            config_kubeconfig **out, kiln_err *err);
void config_kubeconfig_free(config_kubeconfig *k);

/* One URL parameter with its values (`params: {module: [a, b]}`). */
typedef struct config_param {
    char *name;
    char **values;
    size_t nvalues;
} config_param;

/* The limits of one scrape, in scrape_config and (as the defaults) in
 * config_global; 0 is "no limit". */
#define CONFIG_SCRAPE_LIMITS                                                                                 \
    uint64_t body_size_limit; /* bytes */                                                                    \
    uint64_t sample_limit;                                                                                   \
    uint64_t label_limit;                                                                                    \
    uint64_t label_name_length_limit;                                                                        \
    uint64_t label_value_length_limit;                                                                       \
    uint64_t target_limit

/* Where the targets of a job (scrape_config, config_alertmanager) come from,
 * and how they are relabeled. */
#define CONFIG_TARGETS                                                                                       \
    config_static *static_configs;                                                                           \
    size_t nstatic_configs;                                                                                  \
    config_file_sd *file_sd_configs;                                                                         \
    size_t nfile_sd_configs;                                                                                 \
    config_relabel *relabel_configs;                                                                         \
    size_t nrelabel_configs

typedef struct scrape_config {
    char *job_name;
    int honor_labels;               /* default 0 */
    int honor_timestamps;           /* default 1 */
    int track_timestamps_staleness; /* default 0 */
    int64_t scrape_interval_ms;     /* inherited from global when not set */
    int64_t scrape_timeout_ms;      /* inherited, and never above the interval */
    char **scrape_protocols;        /* inherited from global when not set (or the default list,
                                       PrometheusProto first when scrape_native_histograms) */
    size_t nscrape_protocols;
    char *fallback_scrape_protocol;           /* NULL: a missing or unknown Content-Type fails the scrape */
    int scrape_native_histograms;             /* inherited from global when not set */
    int always_scrape_classic_histograms;     /* inherited from global when not set */
    uint64_t native_histogram_bucket_limit;   /* 0: no limit */
    char *native_histogram_min_bucket_factor; /* a float as written; NULL: no limit */
    int enable_compression;                   /* default 1 */
    char *scrape_failure_log_file;            /* inherited from global when not set; NULL: none */
    char *metrics_path;                       /* default "/metrics" */
    char *scheme;                             /* "http" (default) or "https" */
    config_param *params;
    size_t nparams;
    config_http http;
    CONFIG_SCRAPE_LIMITS; /* each inherited from global when 0 */
    CONFIG_TARGETS;
    config_relabel *metric_relabel_configs;
    size_t nmetric_relabel_configs;
    config_http_sd *http_sd_configs;
    size_t nhttp_sd_configs;
    config_dns_sd *dns_sd_configs;
    size_t ndns_sd_configs;
    config_consul_sd *consul_sd_configs;
    size_t nconsul_sd_configs;
    config_kubernetes_sd *kubernetes_sd_configs;
    size_t nkubernetes_sd_configs;
} scrape_config;

typedef struct config_global {
    int64_t scrape_interval_ms;     /* default 1m */
    int64_t scrape_timeout_ms;      /* default 10s (or the interval when that is shorter) */
    int64_t evaluation_interval_ms; /* default 1m */
    int64_t rule_query_offset_ms;   /* default 0 */
    config_label *external_labels;
    size_t nexternal_labels;
    char **scrape_protocols; /* default OpenMetricsText1.0.0, OpenMetricsText0.0.1,
                                PrometheusText1.0.0, PrometheusText0.0.4 */
    size_t nscrape_protocols;
    CONFIG_SCRAPE_LIMITS;         /* the defaults of every scrape config */
    char *query_log_file;         /* NULL when not set */
    int scrape_native_histograms; /* default: config_set_native_histograms_default's */
    int always_scrape_classic_histograms;
    char *scrape_failure_log_file;
    int native_set;        /* scrape_native_histograms was written (not a key) */
    int protocols_default; /* scrape_protocols was not written: the list is the default (not a key) */
} config_global;

typedef struct config_alertmanager {
    int64_t timeout_ms; /* default 10s */
    char *api_version;  /* "v2" */
    char *path_prefix;  /* default "/" */
    char *scheme;       /* default "http" */
    config_http http;
    CONFIG_TARGETS;
    config_relabel *alert_relabel_configs; /* per-Alertmanager alert relabeling */
    size_t nalert_relabel_configs;
} config_alertmanager;

typedef struct config_alerting {
    config_relabel *alert_relabel_configs;
    size_t nalert_relabel_configs;
    config_alertmanager *alertmanagers;
    size_t nalertmanagers;
} config_alerting;

typedef struct config_queue {
    uint64_t capacity;              /* default 10000 */
    uint64_t max_shards;            /* default 50 */
    uint64_t min_shards;            /* default 1 */
    uint64_t max_samples_per_send;  /* default 2000 */
    int64_t batch_send_deadline_ms; /* default 5s */
    int64_t min_backoff_ms;         /* default 30ms */
    int64_t max_backoff_ms;         /* default 5s */
    int retry_on_http_429;          /* default 0 */
    int64_t sample_age_limit_ms;    /* default 0 */
} config_queue;

typedef struct config_metadata {
    int send;                      /* default 1 */
    int64_t send_interval_ms;      /* default 1m */
    uint64_t max_samples_per_send; /* default 2000 */
} config_metadata;

typedef struct config_remote_write {
    char *url;                 /* required, http or https */
    char *name;                /* NULL when not set; unique among remote_write */
    int64_t remote_timeout_ms; /* default 30s */
    config_label *headers;     /* name -> value */
    size_t nheaders;
    config_relabel *write_relabel_configs;
    size_t nwrite_relabel_configs;
    int send_exemplars;
    int send_native_histograms;
    char *protobuf_message; /* default "prometheus.WriteRequest" */
    config_queue queue;
    config_metadata metadata;
    config_http http; /* enable_http2 defaults to 0 here */
} config_remote_write;

typedef struct config_remote_read {
    char *url;                 /* required, http or https */
    char *name;                /* NULL when not set; unique among remote_read */
    int64_t remote_timeout_ms; /* default 1m, as in Prometheus */
    config_label *headers;
    size_t nheaders;
    config_label *required_matchers;
    size_t nrequired_matchers;
    int read_recent;            /* default 0 */
    int filter_external_labels; /* default 1 */
    config_http http;
} config_remote_read;

/* The otlp section: how the OTLP receiver (api/otlp.c) translates.  The
 * attribute lists are trimmed and checked as Prometheus does. */
typedef struct config_otlp {
    char **promote_resource_attributes;
    size_t npromote_resource_attributes;
    int promote_all_resource_attributes;
    char **ignore_resource_attributes; /* with promote_all_resource_attributes only */
    size_t nignore_resource_attributes;
    char *translation_strategy; /* default "UnderscoreEscapingWithSuffixes" */
    int keep_identifying_resource_attributes;
    int convert_histograms_to_nhcb; /* parsed, not acted on: kiln has no native histograms */
    int promote_scope_metadata;
    int label_name_underscore_sanitization;       /* default 1 */
    int label_name_preserve_multiple_underscores; /* default 1 */
} config_otlp;

/* A key the document sets that kiln parses but does not act on.  The path
 * leaves list indexes out ("scrape_configs[].tls_config.server_name"), so a
 * path is listed once whatever the number of items setting it; line:col is
 * where it is first set. */
typedef struct config_unused_key {
    char *path;
    int line, col;
} config_unused_key;

/* The storage section: storage.exemplars.max_exemplars, the size of the
 * exemplar store when --enable-feature=exemplar-storage is on (0, or not
 * written: Prometheus' default, CONFIG_DEFAULT_MAX_EXEMPLARS). */
#define CONFIG_DEFAULT_MAX_EXEMPLARS 100000
typedef struct config_storage_exemplars {
    uint64_t max_exemplars;
} config_storage_exemplars;

/* storage.tsdb: out_of_order_time_window (0, the default: out-of-order
 * samples are refused). */
typedef struct config_storage_tsdb {
    int64_t out_of_order_time_window_ms;
} config_storage_tsdb;

typedef struct config_storage {
    config_storage_tsdb tsdb;
    config_storage_exemplars exemplars;
} config_storage;

typedef struct config {
    config_global global;
    char **rule_files; /* globs, as written (resolved against the file's directory) */
    size_t nrule_files;
    scrape_config *scrape_configs;
    size_t nscrape_configs;
    config_alerting alerting;
    config_remote_write *remote_write;
    size_t nremote_write;
    config_remote_read *remote_read;
    size_t nremote_read;
    config_otlp otlp;
    config_storage storage;

    char *source; /* the original document text (NUL-terminated) */
    size_t source_len;
    uint64_t source_hash; /* XXH3-64 of the original text */
    char *name;           /* the file name used in messages */

    config_unused_key *unused_keys; /* global's first, then in document order; see config_log_unused */
    size_t nunused_keys;

    struct config_regex *regexes; /* internal: every compiled regex, freed by config_free */
    arena mem;                    /* owns everything above */
    int refs;                     /* internal: config_retain / config_free */
} config;

/*
 * Reads and loads the file at `path`.  On success *out is a new config (free
 * with config_free) and 0 is returned; otherwise a negative KILN_E* code and
 * err says what and where ("kiln.yml:12:5: unknown key ...").
 */
KILN_MUST_CHECK int config_load_file(const char *path, config **out, kiln_err *err);

/*
 * Loads a configuration from yaml[0..len).  `name` is used in messages and
 * kept as config->name.  An empty document is a valid configuration with all
 * defaults.  Borrows yaml and name for the call.
 */
KILN_MUST_CHECK int config_load_string(const char *name, const char *yaml, size_t len, config **out,
                                       kiln_err *err);

/* Frees c and everything it owns; NULL is fine. */
void config_free(config *c);
/* Another holder of c (a scrape pool keeps the config its steps point
 * into): each config_retain is matched by a config_free, and the last one
 * frees.  Safe from any thread. */
config *config_retain(config *c);

/*
 * Reads a file_sd_configs file (YAML or JSON): a list of target groups,
 * each `{targets: [...], labels: {...}}`.  The groups are allocated from a.
 * Errors name the file, line and column.
 */
KILN_MUST_CHECK int config_load_targets(const char *path, arena *a, config_static **out, size_t *n,
                                        kiln_err *err);

/*
 * The configuration kiln runs with when no file is given: global
 * scrape_interval and evaluation_interval 15s, and one job `kiln` scraping
 * itself on localhost:9090 every 15s.  A static string.
 */
const char *config_default_yaml(void);

/*
 * Appends c to out as YAML with every default filled in, in the form
 * Prometheus' /api/v1/status/config shows (secrets as `<secret>`).  Loading
 * the output again gives an equal configuration (save for the secrets).
 * Returns 0 or KILN_ENOMEM.
 */
KILN_MUST_CHECK int config_to_yaml(const config *c, buf *out);

/*
 * 1 when the two scrape configs would scrape the same way (every field
 * equal, regexes compared by text), else 0: a reload keeps the scrape loops
 * of jobs whose configs are equal.
 */
int config_scrape_equal(const scrape_config *a, const scrape_config *b);

/* 1 when the two scrape configs have the same service discoveries (the
 * *_sd_configs lists other than file_sd_configs): a reload keeps them
 * running. */
int config_sd_equal(const scrape_config *a, const scrape_config *b);

/* The same for two remote_write entries: a reload keeps the queues of
 * unchanged ones running. */
int config_remote_write_equal(const config_remote_write *a, const config_remote_write *b);

/*
 * Logs a warning for each of c->unused_keys: `msg="configuration key is
 * parsed but not acted on" key=global.evaluation_interval
 * at=kiln.yml:3:3`.  Called at load and at each reload.
 */
void config_log_unused(const config *c);

/*
 * The default of global.scrape_native_histograms for every later load (0
 * unless set): --enable-feature=native-histograms sets it, as Prometheus
 * does.  Call before the first load (process-wide, not thread-safe).
 */
void config_set_native_histograms_default(int on);

/* Name of a CONFIG_RELABEL_* action ("replace", "hashmod", ...). */
const char *config_relabel_action_name(int action);

/* ==== rule files (rulefile.c) ============================================
 *
 * Prometheus' rule files (its rulefmt): `groups[]` with name, interval,
 * limit, query_offset, labels and rules; each rule `record` or `alert`
 * with expr, for, keep_firing_for, labels and annotations.  A load checks
 * everything promtool's `check rules` checks, and names file:line:col and
 * the group and rule in every error:
 *   FILE:4:17: group "g", rule 1, "bad name": invalid recording rule name: bad name
 * Unknown keys, values of the wrong type and bad durations stop the load of
 * a file at once (promtool stops at them too); the checks of names, labels,
 * expressions and templates go on through the whole file, so every error is
 * reported (see rulefile_opts.report).
 *
 * config/ depends on util/ only, so the PromQL parser and the template
 * parser come in as hooks (rulefile_opts): without them an expression is
 * not checked and a template is checked only for balanced `{{ }}`.
 *
 * A rulefile_set is immutable and self-contained like a config: every
 * string and array is in its arena, freed by rulefile_free.  Any thread may
 * read it; loading touches nothing shared.
 */

enum { RULEFILE_RECORD = 1, RULEFILE_ALERT = 2 };

typedef struct rulefile_rule {
    int kind;                   /* RULEFILE_RECORD or RULEFILE_ALERT */
    char *name;                 /* the `record` metric name or the `alert` name */
    char *expr;                 /* the PromQL text as written */
    int64_t for_ms;             /* alerts; 0 when not set */
    int64_t keep_firing_for_ms; /* alerts; 0 when not set */
    config_label *labels;       /* in document order; an alert's values are templates */
    size_t nlabels;
    config_label *annotations; /* alerts only; templates */
    size_t nannotations;
    int line, col; /* of the rule in its file */
} rulefile_rule;

typedef struct rulefile_group {
    char *name;
    const char *file;    /* the file it came from, as loaded (a string of the set) */
    int64_t interval_ms; /* 0 when not set: global.evaluation_interval applies */
    int64_t limit;       /* alerts or series a rule may produce; 0 (or below) is no limit */
    int has_query_offset;
    int64_t query_offset_ms; /* when has_query_offset; otherwise global.rule_query_offset applies */
    config_label *labels;    /* added to every rule's output; a rule's own labels win */
    size_t nlabels;
    rulefile_rule *rules;
    size_t nrules;
    int line, col; /* of the group in its file */
} rulefile_group;

typedef struct rulefile_set {
    rulefile_group *groups; /* the files in load order, each file's groups in its order */
    size_t ngroups;
    char **files; /* every file loaded, once each, in load order */
    size_t nfiles;
    size_t nrules; /* over all groups */
    arena mem;     /* owns everything above */
} rulefile_set;

/* What a load checks beyond the file's own shape, and where its errors go.
 * Every member may be NULL (a zeroed struct is the plainest load). */
typedef struct rulefile_opts {
    /* Parses a rule's `expr`: 0, or non-zero with the parser's message in
     * err ("1:5: parse error: unclosed left parenthesis").  kiln's daemon
     * and --check-rules set it to query/'s query_parse_check.  NULL: the
     * expression is only required to be there. */
    int (*check_expr)(const char *expr, kiln_err *err);
    /* Parses a template (the value of an alerting rule's label or
     * annotation) named `name` ("__alert_<alert name>", as Prometheus
     * names it): 0, or non-zero with the message in err ("template:
     * __alert_X:1: unexpected {{end}}").  For the rule manager to set to
     * the template engine's parser.  NULL: rulefile_template_balanced. */
    int (*check_template)(const char *name, const char *text, kiln_err *err);
    /* Called with each error as it is found ("file:line:col: ..."), and the
     * load goes on to find the others.  NULL: the load stops at the first
     * error. */
    void (*report)(void *data, const char *msg);
    void *data; /* for report */
} rulefile_opts;

/*
 * Expands each of globs[0..n) with glob(3) (a pattern matching nothing adds
 * nothing; `*` matches dotfiles, as Go's filepath.Glob does) and loads every
 * file found, each once.  config.rule_files are the globs, already resolved
 * against the configuration file's directory.  On success *out is a new set
 * (free with rulefile_free); otherwise a negative KILN_E* code, *out is
 * NULL and err holds the first error.  o may be NULL.
 */
KILN_MUST_CHECK int rulefile_load_globs(const char *const *globs, size_t n, const rulefile_opts *o,
                                        rulefile_set **out, kiln_err *err);

/* Loads one rule file (at most CONFIG_MAX_BYTES), as rulefile_load_globs. */
KILN_MUST_CHECK int rulefile_load_file(const char *path, const rulefile_opts *o, rulefile_set **out,
                                       kiln_err *err);

/* Loads a rule file from yaml[0..len); `name` is its file name in messages
 * and in the groups.  Borrows everything for the call. */
KILN_MUST_CHECK int rulefile_load_string(const char *name, const char *yaml, size_t len,
                                         const rulefile_opts *o, rulefile_set **out, kiln_err *err);

/* Frees s and everything it owns; NULL is fine. */
void rulefile_free(rulefile_set *s);

/*
 * The template check used when rulefile_opts.check_template is NULL: every
 * `{{` has its `}}` (quoted strings, raw strings and comments inside an
 * action skipped, as Go's lexer does).  0, or KILN_EINVAL with err in Go's
 * words: "template: NAME:LINE: unclosed action".
 */
KILN_MUST_CHECK int rulefile_template_balanced(const char *name, const char *text, kiln_err *err);

/* ==== the web configuration file (webconfig.c) ===========================
 *
 * The file `--web.config.file` names, in the format of Prometheus'
 * exporter-toolkit (https.md): TLS for kiln's own HTTP server, HTTP
 * headers set on every answer, and basic-auth users with bcrypt hashes.
 * A load checks what `promtool check web-config` checks (unknown keys, TLS
 * versions, cipher suite and curve names, the headers the toolkit allows
 * and their values, each hash's bcrypt form and cost, cert_file and
 * key_file given together, client_auth_type, a client CA with a policy)
 * with file:line:col in every error.  Loading the certificate, key and
 * client CA files themselves is left to the TLS server (api/), which
 * refuses to start without them.
 */

enum {
    CONFIG_CLIENT_AUTH_NONE = 0,          /* NoClientCert (the default) */
    CONFIG_CLIENT_AUTH_REQUEST,           /* RequestClientCert: asked for, not checked */
    CONFIG_CLIENT_AUTH_REQUIRE_ANY,       /* RequireAnyClientCert (or RequireClientCert) */
    CONFIG_CLIENT_AUTH_VERIFY_IF_GIVEN,   /* VerifyClientCertIfGiven */
    CONFIG_CLIENT_AUTH_REQUIRE_AND_VERIFY /* RequireAndVerifyClientCert */
};

typedef struct config_web_tls {
    int enabled;                     /* any of cert_file, key_file, client_auth_type, client_ca_file set */
    char *cert_file, *key_file;      /* resolved against the file's directory; NULL when not set */
    char *client_auth_type;          /* as written; NULL when not set */
    int client_auth;                 /* CONFIG_CLIENT_AUTH_* */
    char *client_ca_file;            /* NULL when not set */
    char *min_version, *max_version; /* "TLS10".."TLS13"; default TLS12 and TLS13 */
    char **cipher_suites;            /* Go's names (config_web_cipher_openssl maps them) */
    size_t ncipher_suites;
    char **curve_preferences; /* Go's names: CurveP256, CurveP384, CurveP521, X25519 */
    size_t ncurve_preferences;
    int prefer_server_cipher_suites; /* default 1 */
    char **client_allowed_sans;      /* a client certificate must carry one of them as a SAN */
    size_t nclient_allowed_sans;
} config_web_tls;

typedef struct config_web {
    config_web_tls tls;
    int http2;             /* default 1; not acted on (kiln speaks HTTP/1.1) */
    config_label *headers; /* set on every answer; names among the five the toolkit allows */
    size_t nheaders;
    config_label *users; /* name -> bcrypt hash ($2a$, $2b$ or $2y$); none: no authentication */
    size_t nusers;
    config_unused_key *unused_keys; /* keys set but not acted on (http2) */
    size_t nunused_keys;
    char *name; /* the file name used in messages */
    arena mem;  /* owns everything above */
} config_web;

/*
 * Reads and loads the web configuration at path.  On success *out is new
 * (free with config_web_free) and 0 is returned; otherwise a negative
 * KILN_E* code, *out is NULL and err says what and where
 * ("web.yml:3:5: unknown TLS version: TLS14").
 */
KILN_MUST_CHECK int config_web_load_file(const char *path, config_web **out, kiln_err *err);

/* Loads a web configuration from yaml[0..len); relative file names are
 * resolved against dir (NULL: left as they are).  Borrows everything for
 * the call. */
KILN_MUST_CHECK int config_web_load_string(const char *name, const char *dir, const char *yaml, size_t len,
                                           config_web **out, kiln_err *err);

/* Frees w and everything it owns; NULL is fine. */
void config_web_free(config_web *w);

/* Logs a warning for each of w->unused_keys, as config_log_unused does. */
void config_web_log_unused(const config_web *w);

/* OpenSSL's name of the cipher suite Go calls go_name: "" for the TLS 1.3
 * suites (not configurable, in Go as here), NULL for a name Go does not
 * know.  A static string. */
const char *config_web_cipher_openssl(const char *go_name);

/* OpenSSL's name of the curve Go calls go_name ("CurveP256" -> "P-256"),
 * NULL when unknown.  A static string. */
const char *config_web_curve_openssl(const char *go_name);

/* The protocol version number of a TLS version name ("TLS12" -> 0x0303,
 * as OpenSSL's TLS1_2_VERSION), 0 for NULL or an unknown name. */
int config_tls_version(const char *name);

/* ==== rule unit-test files (ruletest.c) ===================================
 *
 * The input of `kiln test rules`, promtool's rule unit-test format, decoded
 * as Prometheus 2.42's promtool decodes it (yaml.v2, strictly: an unknown
 * key is an error).  Strings are never NULL ("" when not set); durations
 * are milliseconds, 0 when not set; maps are in document order.  Everything
 * lives in the file's arena, freed by ruletest_free.
 */

typedef struct ruletest_series {
    char *series; /* `metric{label="value"}` */
    char *values; /* the expanding notation, "1+2x3 _ stale" */
} ruletest_series;

typedef struct ruletest_alert {
    config_label *labels; /* exp_labels */
    size_t nlabels;
    config_label *annotations; /* exp_annotations */
    size_t nannotations;
} ruletest_alert;

typedef struct ruletest_alert_case {
    int64_t eval_time_ms;
    char *alertname;
    ruletest_alert *exp_alerts;
    size_t nexp_alerts;
} ruletest_alert_case;

typedef struct ruletest_sample {
    char *labels; /* a series in the notation of `series` */
    double value;
} ruletest_sample;

typedef struct ruletest_expr_case {
    char *expr;
    int64_t eval_time_ms;
    ruletest_sample *exp_samples;
    size_t nexp_samples;
} ruletest_expr_case;

typedef struct ruletest_group {
    int64_t interval_ms;
    ruletest_series *input_series;
    size_t ninput_series;
    ruletest_alert_case *alert_rule_test;
    size_t nalert_rule_test;
    ruletest_expr_case *promql_expr_test;
    size_t npromql_expr_test;
    config_label *external_labels;
    size_t nexternal_labels;
    char *external_url;
    char *name;
} ruletest_group;

typedef struct ruletest_file {
    char **rule_files; /* as written */
    size_t nrule_files;
    int64_t evaluation_interval_ms;
    char **group_eval_order;
    size_t ngroup_eval_order;
    ruletest_group *tests;
    size_t ntests;
    arena mem; /* owns everything above */
} ruletest_file;

/*
 * Decodes a test file from data[0..len).  0 and *out (free with
 * ruletest_free), or KILN_EINVAL with promtool's message appended to msg
 * (yaml.v2's words: "yaml: line 3: did not find expected key", "yaml:
 * unmarshal errors:\n  line 2: field foo not found in type
 * main.unitTestFile", `not a valid duration string: "5x"`), or KILN_ENOMEM.
 */
KILN_MUST_CHECK int ruletest_load_string(const char *data, size_t len, ruletest_file **out, buf *msg);
void ruletest_free(ruletest_file *t);

#endif
