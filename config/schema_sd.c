/*
 * schema_sd.c - the service discovery sections of a scrape config as tables
 * of keys (see schema.h): http_sd_configs, dns_sd_configs,
 * consul_sd_configs and kubernetes_sd_configs, with Prometheus' defaults
 * and validation (its discovery packages' UnmarshalYAML).  scrape/sd_*.c
 * run them.
 *
 * Called by decode.c (hooks and checks, on the loading thread), and by
 * emit.c and equal.c through schema_scrape's table (from any thread).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/schema.h"

#define FIELD(T, f) .off = offsetof(T, f)
#define ARRAY(T, f) .off = offsetof(T, f), .noff = offsetof(T, n##f)
#define SECTION(name_, keys_, ...)                                                                           \
    { .name = name_, .keys = keys_, .nkeys = sizeof keys_ / sizeof keys_[0], __VA_ARGS__ }

/* ---- http_sd_config --------------------------------------------------------------- */

static int http_sd_finish(dec *d, void *obj, const schema_seen *s) {
    config_http_sd *h = obj;
    if (!h->url || !*h->url)
        return decode_fail(d, s->map, "URL is missing");
    if (strncasecmp(h->url, "http://", 7) != 0 && strncasecmp(h->url, "https://", 8) != 0)
        return decode_fail(d, decode_at(s, "url"), "URL scheme must be 'http' or 'https'");
    if (!schema_url_valid(h->url, 0))
        return decode_fail(d, decode_at(s, "url"), "invalid URL \"%.100s\"", h->url);
    return schema_http_finish(d, &h->http, s->inl);
}

static const schema_key http_sd_keys[] = {
    {"url", SCHEMA_STRING, FIELD(config_http_sd, url)},
    {"refresh_interval", SCHEMA_DURATION, FIELD(config_http_sd, refresh_interval_ms), .def = 60 * 1000},
    {NULL, SCHEMA_INLINE, FIELD(config_http_sd, http), .sub = &schema_http},
};

const schema_section schema_http_sd =
    SECTION("http_sd_config", http_sd_keys, .size = sizeof(config_http_sd), .finish = http_sd_finish);

/* ---- dns_sd_config ---------------------------------------------------------------- */

static int dns_sd_finish(dec *d, void *obj, const schema_seen *s) {
    config_dns_sd *c = obj;
    static const char *const types[] = {"SRV", "A", "AAAA", "MX", "NS"};
    if (c->nnames == 0)
        return decode_fail(d, s->map, "DNS-SD config must contain at least one SRV record name");
    for (char *p = c->type; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    int known = 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        known |= strcmp(c->type, types[i]) == 0;
    if (!known)
        return decode_fail(d, decode_at(s, "type"), "invalid DNS-SD records type %.20s", c->type);
    if (strcmp(c->type, "SRV") != 0 && c->port == 0)
        return decode_fail(d, s->map, "a port is required in DNS-SD configs for all record types except SRV");
    if (c->port > 65535)
        return decode_fail(d, decode_at(s, "port"), "port %llu out of range", (unsigned long long)c->port);
    return 0;
}

static const schema_key dns_sd_keys[] = {
    {"names", SCHEMA_STRINGS, ARRAY(config_dns_sd, names)},
    {"type", SCHEMA_STRING, FIELD(config_dns_sd, type), .def_str = "SRV"},
    {"port", SCHEMA_UINT, FIELD(config_dns_sd, port), .flags = SCHEMA_OMIT_ZERO},
    {"refresh_interval", SCHEMA_DURATION, FIELD(config_dns_sd, refresh_interval_ms), .def = 30 * 1000},
};

const schema_section schema_dns_sd =
    SECTION("dns_sd_config", dns_sd_keys, .size = sizeof(config_dns_sd), .finish = dns_sd_finish);

/* ---- consul_sd_config ------------------------------------------------------------- */

static int consul_sd_finish(dec *d, void *obj, const schema_seen *s) {
    config_consul_sd *c = obj;
    const char *p = c->server;
    while (*p && isspace((unsigned char)*p))
        p++;
    if (!*p)
        return decode_fail(d, decode_at(s, "server"), "consul SD configuration requires a server address");
    if (strcmp(c->scheme, "http") != 0 && strcmp(c->scheme, "https") != 0)
        return decode_fail(d, decode_at(s, "scheme"), "scheme must be \"http\" or \"https\", got \"%.100s\"",
                           c->scheme);
    return schema_http_finish(d, &c->http, s->inl);
}

static const schema_key consul_sd_keys[] = {
    {"server", SCHEMA_STRING, FIELD(config_consul_sd, server), .def_str = "localhost:8500"},
    {"path_prefix", SCHEMA_STRING, FIELD(config_consul_sd, path_prefix), .flags = SCHEMA_EMPTY_NULL},
    {"token", SCHEMA_STRING, FIELD(config_consul_sd, token), .flags = SCHEMA_SECRET | SCHEMA_EMPTY_NULL},
    {"datacenter", SCHEMA_STRING, FIELD(config_consul_sd, datacenter), .flags = SCHEMA_EMPTY_NULL},
    {"namespace", SCHEMA_STRING, FIELD(config_consul_sd, namespace_), .flags = SCHEMA_EMPTY_NULL},
    {"partition", SCHEMA_STRING, FIELD(config_consul_sd, partition), .flags = SCHEMA_EMPTY_NULL},
    {"scheme", SCHEMA_STRING, FIELD(config_consul_sd, scheme), .def_str = "http"},
    {"services", SCHEMA_STRINGS, ARRAY(config_consul_sd, services)},
    {"filter", SCHEMA_STRING, FIELD(config_consul_sd, filter), .flags = SCHEMA_EMPTY_NULL},
    {"health_filter", SCHEMA_STRING, FIELD(config_consul_sd, health_filter), .flags = SCHEMA_EMPTY_NULL},
    {"tags", SCHEMA_STRINGS, ARRAY(config_consul_sd, tags)},
    {"node_meta", SCHEMA_LABELS, ARRAY(config_consul_sd, node_meta)},
    {"tag_separator", SCHEMA_STRING, FIELD(config_consul_sd, tag_separator), .def_str = ","},
    {"allow_stale", SCHEMA_BOOL, FIELD(config_consul_sd, allow_stale), .def = 1},
    {"refresh_interval", SCHEMA_DURATION, FIELD(config_consul_sd, refresh_interval_ms), .def = 30 * 1000},
    {NULL, SCHEMA_INLINE, FIELD(config_consul_sd, http), .sub = &schema_http},
};

const schema_section schema_consul_sd =
    SECTION("consul_sd_config", consul_sd_keys, .size = sizeof(config_consul_sd), .finish = consul_sd_finish);

/* ---- kubernetes_sd_config --------------------------------------------------------- */

static const char *const kube_roles[] = {"pod", "service", "endpoints", "endpointslice", "node", "ingress"};

static int kube_role_ok(const char *r) {
    for (size_t i = 0; i < sizeof kube_roles / sizeof kube_roles[0]; i++)
        if (strcmp(r, kube_roles[i]) == 0)
            return 1;
    return 0;
}

static int check_kube_role(dec *d, const ynode *v, void *field, size_t n) {
    const char *r = *(char **)field;
    (void)n;
    if (r && *r && !kube_role_ok(r))
        return decode_fail(d, v, "unknown Kubernetes SD role %.100s", r);
    return 0;
}

static const schema_key selector_keys[] = {
    {"role", SCHEMA_STRING, FIELD(config_kube_selector, role), .check = check_kube_role},
    {"label", SCHEMA_STRING, FIELD(config_kube_selector, label), .flags = SCHEMA_EMPTY_NULL},
    {"field", SCHEMA_STRING, FIELD(config_kube_selector, field), .flags = SCHEMA_EMPTY_NULL},
};

static const schema_section selector_sec =
    SECTION("selectors", selector_keys, .size = sizeof(config_kube_selector));

static const schema_key namespaces_keys[] = {
    {"own_namespace", SCHEMA_BOOL, FIELD(config_kubernetes_sd, own_namespace), .flags = SCHEMA_OMIT_ZERO},
    {"names", SCHEMA_STRINGS, ARRAY(config_kubernetes_sd, namespaces)},
};

static const schema_section namespaces_sec = SECTION("namespaces", namespaces_keys, .null_ok = 1);

static const schema_key attach_keys[] = {
    {"node", SCHEMA_BOOL, FIELD(config_kubernetes_sd, attach_node)},
    {"namespace", SCHEMA_BOOL, FIELD(config_kubernetes_sd, attach_namespace), .flags = SCHEMA_OMIT_ZERO},
    {"deployment", SCHEMA_BOOL, FIELD(config_kubernetes_sd, attach_deployment), .flags = SCHEMA_OMIT_ZERO},
    {"job", SCHEMA_BOOL, FIELD(config_kubernetes_sd, attach_job), .flags = SCHEMA_OMIT_ZERO},
    {"cronjob", SCHEMA_BOOL, FIELD(config_kubernetes_sd, attach_cronjob), .flags = SCHEMA_OMIT_ZERO},
};

static const schema_section attach_sec = SECTION("attach_metadata", attach_keys, .null_ok = 1);

/* Whether the http client keys are all at their defaults. */
static int http_default(const config_http *h) {
    return !h->has_basic_auth && !h->has_authorization && !h->tls.ca_file && !h->tls.cert_file &&
           !h->tls.key_file && !h->tls.server_name && !h->tls.insecure_skip_verify && !h->proxy_url;
}

static int kube_sd_finish(dec *d, void *obj, const schema_seen *s) {
    config_kubernetes_sd *k = obj;
    int rc = schema_http_finish(d, &k->http, s->inl);
    if (rc != 0)
        return rc;
    if (!k->role || !*k->role)
        return decode_fail(d, s->map,
                           "role missing (one of: pod, service, endpoints, endpointslice, node, ingress)");
    if (k->api_server && k->kubeconfig_file)
        return decode_fail(d, decode_later_key(s, "api_server", "kubeconfig_file"),
                           "cannot use 'kubeconfig_file' and 'api_server' simultaneously");
    if (k->kubeconfig_file && !(k->kubeconfig_file = decode_path(d, k->kubeconfig_file)))
        return decode_oom(d);
    if (k->api_server && !schema_url_valid(k->api_server, 0))
        return decode_fail(d, decode_at(s, "api_server"), "invalid api_server URL \"%.100s\"", k->api_server);
    if (!k->api_server && !k->kubeconfig_file && !http_default(&k->http))
        return decode_fail(d, s->map,
                           "to use custom HTTP client configuration please provide the 'api_server' URL "
                           "explicitly");
    for (size_t i = 0; i < k->nselectors; i++) {
        const char *r = k->selectors[i].role;
        if (!r || !*r)
            return decode_fail(d, decode_at(s, "selectors"), "selector role missing");
        int ok = strcmp(r, k->role) == 0;
        if (!strcmp(k->role, "endpoints") || !strcmp(k->role, "endpointslice"))
            ok |= !strcmp(r, "pod") || !strcmp(r, "service") || !strcmp(r, k->role);
        if (!strcmp(k->role, "pod") && k->attach_node)
            ok |= !strcmp(r, "node");
        if (!ok)
            return decode_fail(d, decode_at(s, "selectors"), "%s role supports only %s selectors", k->role,
                               k->role);
    }
    return 0;
}

static const schema_key kube_sd_keys[] = {
    {"api_server", SCHEMA_STRING, FIELD(config_kubernetes_sd, api_server), .flags = SCHEMA_EMPTY_NULL},
    {"role", SCHEMA_STRING, FIELD(config_kubernetes_sd, role), .check = check_kube_role},
    {"kubeconfig_file", SCHEMA_STRING, FIELD(config_kubernetes_sd, kubeconfig_file),
     .flags = SCHEMA_EMPTY_NULL},
    {"namespaces", SCHEMA_MAP, .sub = &namespaces_sec},
    {"selectors", SCHEMA_LIST, ARRAY(config_kubernetes_sd, selectors), .sub = &selector_sec},
    {"attach_metadata", SCHEMA_MAP, .sub = &attach_sec},
    {NULL, SCHEMA_INLINE, FIELD(config_kubernetes_sd, http), .sub = &schema_http},
};

const schema_section schema_kubernetes_sd = SECTION(
    "kubernetes_sd_config", kube_sd_keys, .size = sizeof(config_kubernetes_sd), .finish = kube_sd_finish);
