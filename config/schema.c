/*
 * schema.c - the sections of prometheus.yml as tables of keys (schema.h),
 * and what the tables cannot say: Prometheus' defaults, the rules across
 * keys, the checks of single values, the inheritance of scrape configs from
 * global, the legacy bearer_token, and the compiled relabel regexes.
 *
 * Each table lists a section's keys in the order config_to_yaml writes
 * them (Prometheus' order in /api/v1/status/config).  The sections are
 * defined leaves first; the document (schema_config) comes last.
 *
 * Keys flagged SCHEMA_UNUSED are parsed and validated, but nothing in kiln
 * acts on them: kiln keeps no query log (global.query_log_file).  A load lists the ones a document sets so
 * that kiln warns about them.
 *
 * Called by decode.c (hooks and checks, on the loading thread), and by
 * emit.c and equal.c (the tables, constant, from any thread).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/schema.h"

/* Beyond this many distinct regexes, the rest are not JIT-compiled: JIT code
 * costs a few KiB each, and the interpreter gives the same answers. */
#define CONFIG_MAX_JIT 10000

/* In the tables: a key's field, or an array and its count n<f>. */
#define FIELD(T, f) .off = offsetof(T, f)
#define ARRAY(T, f) .off = offsetof(T, f), .noff = offsetof(T, n##f)
/* A section: its name, its table of keys, then its other fields. */
#define SECTION(name_, keys_, ...)                                                                           \
    { .name = name_, .keys = keys_, .nkeys = sizeof keys_ / sizeof keys_[0], __VA_ARGS__ }

static const char *const default_protocols[] = {"OpenMetricsText1.0.0", "OpenMetricsText0.0.1",
                                                "PrometheusText1.0.0", "PrometheusText0.0.4"};
/* The default when scrape_native_histograms is on. */
static const char *const proto_first_protocols[] = {"PrometheusProto", "OpenMetricsText1.0.0",
                                                    "OpenMetricsText0.0.1", "PrometheusText1.0.0",
                                                    "PrometheusText0.0.4"};
static int native_histograms_default;

static const char *const known_protocols[] = {"PrometheusProto", "OpenMetricsText0.0.1",
                                              "OpenMetricsText1.0.0", "PrometheusText0.0.4",
                                              "PrometheusText1.0.0"};

void config_set_native_histograms_default(int on) {
    native_histograms_default = on;
}

/* fallback_scrape_protocol: one of the known protocols. */
static int check_fallback_protocol(dec *d, const ynode *v, void *field, size_t n) {
    const char *p = *(char **)field;
    (void)n;
    for (size_t j = 0; p && j < sizeof known_protocols / sizeof known_protocols[0]; j++)
        if (strcmp(p, known_protocols[j]) == 0)
            return 0;
    return p ? decode_fail(
                   d, v,
                   "unknown fallback_scrape_protocol %.100s, supported: [PrometheusProto "
                   "OpenMetricsText0.0.1 OpenMetricsText1.0.0 PrometheusText0.0.4 PrometheusText1.0.0]",
                   p)
             : 0;
}

/* native_histogram_min_bucket_factor: a float, 0 or more. */
static int check_bucket_factor(dec *d, const ynode *v, void *field, size_t n) {
    const char *p = *(char **)field;
    (void)n;
    char *end = NULL;
    double f = p ? strtod(p, &end) : 0;
    if (p && (end == p || *end || !(f >= 0)))
        return decode_fail(d, v,
                           "native_histogram_min_bucket_factor must be a number of 0 or more, got %.100s", p);
    return 0;
}

/* Copies a list of protocol names into *out; 0 or the decoder's oom. */
static int copy_protocols(dec *d, const char *const *from, size_t n, char ***out, size_t *nout) {
    if (!(*out = decode_array(d, n, sizeof **out)))
        return decode_oom(d);
    for (size_t i = 0; i < n; i++)
        if (!((*out)[i] = decode_strdup(d, from[i])))
            return decode_oom(d);
    *nout = n;
    return 0;
}

/* A plausible http(s) URL: scheme, a non-empty host, an optional numeric
 * port, no whitespace or control characters. */
int schema_url_valid(const char *s, int allow_socks) {
    const char *p = NULL;
    if (strncasecmp(s, "http://", 7) == 0)
        p = s + 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        p = s + 8;
    else if (allow_socks && strncasecmp(s, "socks5://", 9) == 0)
        p = s + 9;
    else
        return 0;
    for (const char *q = s; *q; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f)
            return 0;
    const char *end = p + strcspn(p, "/?#");
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at)
        p = at + 1;
    if (p == end)
        return 0;
    const char *hostend = end;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb || rb == p + 1)
            return 0;
        hostend = rb + 1;
        if (hostend != end && *hostend != ':')
            return 0;
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (colon)
            hostend = colon;
        if (hostend == p)
            return 0;
    }
    if (hostend < end) {
        /* ":port" */
        const char *q = hostend + 1;
        if (q == end)
            return 1; /* "host:" is accepted by Go's parser */
        unsigned port = 0;
        for (; q < end; q++) {
            if (*q < '0' || *q > '9')
                return 0;
            port = port * 10 + (unsigned)(*q - '0');
            if (port > 65535)
                return 0;
        }
    }
    return 1;
}

/* "scheme" must be http or https (scrape configs, Alertmanagers). */
static int scheme_valid(dec *d, const char *scheme, const schema_seen *s) {
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
        return decode_fail(d, decode_at(s, "scheme"), "scheme must be \"http\" or \"https\", got \"%.100s\"",
                           scheme);
    return 0;
}

static int check_protocols(dec *d, const ynode *v, void *field, size_t n) {
    char *const *p = *(char **const *)field;
    const size_t nknown = sizeof known_protocols / sizeof known_protocols[0];
    for (size_t i = 0; i < n; i++) {
        size_t j;
        for (j = 0; j < nknown; j++)
            if (strcmp(p[i], known_protocols[j]) == 0)
                break;
        if (j == nknown)
            return decode_fail(
                d, v->kids[i],
                "unknown scrape protocol %.100s, supported: [PrometheusProto OpenMetricsText0.0.1 "
                "OpenMetricsText1.0.0 PrometheusText0.0.4 PrometheusText1.0.0]",
                p[i]);
        for (j = 0; j < i; j++)
            if (strcmp(p[i], p[j]) == 0)
                return decode_fail(d, v->kids[i], "duplicated protocol in scrape_protocols, got %s", p[i]);
    }
    return 0;
}

/* ---- tls_config, basic_auth, authorization ------------------------------------------ */

int schema_check_tls_version(dec *d, const ynode *v, void *field, size_t n) {
    const char *version = *(char **)field;
    (void)n;
    if (version && !config_tls_version(version))
        return decode_fail(d, v, "unknown TLS version: %.100s", version);
    return 0;
}

static int tls_finish(dec *d, void *obj, const schema_seen *s) {
    config_tls *t = obj;
    if ((t->cert_file && !t->key_file) || (!t->cert_file && t->key_file))
        return decode_fail(
            d, s->map,
            "exactly one of key or key_file must be configured when a client certificate is configured");
    t->ca_file = decode_path(d, t->ca_file);
    t->cert_file = decode_path(d, t->cert_file);
    t->key_file = decode_path(d, t->key_file);
    return 0;
}

static const schema_key tls_keys[] = {
    {"ca_file", SCHEMA_STRING, FIELD(config_tls, ca_file)},
    {"cert_file", SCHEMA_STRING, FIELD(config_tls, cert_file)},
    {"key_file", SCHEMA_STRING, FIELD(config_tls, key_file)},
    {"server_name", SCHEMA_STRING, FIELD(config_tls, server_name)},
    {"insecure_skip_verify", SCHEMA_BOOL, FIELD(config_tls, insecure_skip_verify)},
    {"min_version", SCHEMA_STRING, FIELD(config_tls, min_version), .check = schema_check_tls_version},
};

static const schema_section tls_sec = SECTION("tls_config", tls_keys, .null_ok = 1, .finish = tls_finish);

/* A secret given inline (key) or in a file (key_file), as basic_auth's
 * password and authorization's credentials: at most one of them, and the
 * file's path resolved. */
static int one_secret(dec *d, const schema_seen *s, const char *key, const char *secret, char **file) {
    char file_key[32];
    snprintf(file_key, sizeof file_key, "%s_file", key);
    if (secret && *secret && *file && **file)
        return decode_fail(d, decode_later_key(s, key, file_key),
                           "at most one of %s %s & %s must be configured", s->sec->name, key, file_key);
    *file = decode_path(d, *file);
    return 0;
}

static int basic_auth_finish(dec *d, void *obj, const schema_seen *s) {
    config_http *h = obj;
    return one_secret(d, s, "password", h->password, &h->password_file);
}

/* basic_auth and authorization decode into the config_http they are part of */
static const schema_key basic_auth_keys[] = {
    {"username", SCHEMA_STRING, FIELD(config_http, username)},
    {"password", SCHEMA_STRING, FIELD(config_http, password), .flags = SCHEMA_SECRET},
    {"password_file", SCHEMA_STRING, FIELD(config_http, password_file)},
};

static const schema_section basic_auth_sec =
    SECTION("basic_auth", basic_auth_keys, .null_ok = 1, .has_present = 1,
            .present_off = offsetof(config_http, has_basic_auth), .finish = basic_auth_finish);

static int check_auth_type(dec *d, const ynode *v, void *field, size_t n) {
    const char *type = *(char **)field;
    (void)n;
    if (type && strcasecmp(type, "basic") == 0)
        return decode_fail(d, v, "authorization type cannot be set to \"basic\", use \"basic_auth\" instead");
    return 0;
}

static int authorization_finish(dec *d, void *obj, const schema_seen *s) {
    config_http *h = obj;
    return one_secret(d, s, "credentials", h->credentials, &h->credentials_file);
}

static const schema_key authorization_keys[] = {
    {"type", SCHEMA_STRING, FIELD(config_http, auth_type), .check = check_auth_type},
    {"credentials", SCHEMA_STRING, FIELD(config_http, credentials), .flags = SCHEMA_SECRET},
    {"credentials_file", SCHEMA_STRING, FIELD(config_http, credentials_file)},
};

static const schema_section authorization_sec =
    SECTION("authorization", authorization_keys, .null_ok = 1, .has_present = 1,
            .present_off = offsetof(config_http, has_authorization), .finish = authorization_finish);

/* ---- the http client keys (inline in scrape configs, Alertmanagers, remote endpoints) ---- */

/* The legacy bearer_token keys, turned into authorization by http_finish. */
typedef struct http_tmp {
    char *bearer_token, *bearer_token_file;
} http_tmp;

_Static_assert(sizeof(http_tmp) <= SCHEMA_MAX_TMP, "http_tmp must fit a section's scratch");

static int check_proxy_url(dec *d, const ynode *v, void *field, size_t n) {
    const char *url = *(char **)field;
    (void)n;
    if (url && !schema_url_valid(url, 1))
        return decode_fail(d, v, "invalid proxy_url \"%.100s\"", url);
    return 0;
}

/* Prometheus' HTTPClientConfig.Validate, then bearer_token -> authorization.
 * s: where the http keys were found (the parent's inline keys). */
int schema_http_finish(dec *d, config_http *h, const schema_seen *s) {
    const http_tmp *t = s->tmp;
    const ynode *bearer_pos = decode_later_key(s, "bearer_token", "bearer_token_file");
    int bt = t->bearer_token && *t->bearer_token, btf = t->bearer_token_file && *t->bearer_token_file;
    if (h->has_basic_auth && (bt || btf))
        return decode_fail(
            d, bearer_pos,
            "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured");
    if (bt && btf)
        return decode_fail(d, bearer_pos,
                           "at most one of bearer_token & bearer_token_file must be configured");
    if (h->has_authorization && (bt || btf))
        return decode_fail(d, bearer_pos,
                           "authorization is not compatible with bearer_token & bearer_token_file");
    if (h->has_basic_auth && h->has_authorization)
        return decode_fail(d, decode_later_key(s, "authorization", NULL),
                           "at most one of basic_auth, oauth2 & authorization must be configured");
    if (bt || btf) {
        h->has_authorization = 1;
        if (bt)
            h->credentials = t->bearer_token;
        else
            h->credentials_file = decode_path(d, t->bearer_token_file);
    }
    if (h->has_authorization && (!h->auth_type || !*h->auth_type)) {
        if (!(h->auth_type = decode_strdup(d, "Bearer")))
            return decode_oom(d);
    }
    return 0;
}

static const schema_key http_keys[] = {
    {"basic_auth", SCHEMA_MAP, .sub = &basic_auth_sec},
    {"authorization", SCHEMA_MAP, .sub = &authorization_sec},
    {"bearer_token", SCHEMA_STRING, FIELD(http_tmp, bearer_token), .flags = SCHEMA_TMP},
    {"bearer_token_file", SCHEMA_STRING, FIELD(http_tmp, bearer_token_file), .flags = SCHEMA_TMP},
    {"tls_config", SCHEMA_MAP, FIELD(config_http, tls), .sub = &tls_sec},
    {"proxy_url", SCHEMA_STRING, FIELD(config_http, proxy_url), .flags = SCHEMA_EMPTY_NULL,
     .check = check_proxy_url},
    {"follow_redirects", SCHEMA_BOOL, FIELD(config_http, follow_redirects), .def = 1},
    {"enable_http2", SCHEMA_BOOL, FIELD(config_http, enable_http2), .def = 1}, /* remote_write: 0 */
};

/* Its keys sit in the parent's map (SCHEMA_INLINE); the parent's finish
 * hook calls http_finish. */
const schema_section schema_http = SECTION("http client", http_keys, .tmp_size = sizeof(http_tmp));

/* ---- targets: static_configs, file_sd_configs ------------------------------------------- */

static int check_targets(dec *d, const ynode *v, void *field, size_t n) {
    char *const *targets = *(char **const *)field;
    for (size_t j = 0; j < n; j++)
        if (strchr(targets[j], '/'))
            return decode_fail(d, v->kids[j], "\"%.100s\" is not a valid hostname", targets[j]);
    return 0;
}

static const schema_key static_keys[] = {
    {"targets", SCHEMA_STRINGS, ARRAY(config_static, targets), .check = check_targets},
    {"labels", SCHEMA_LABELS, ARRAY(config_static, labels), .flags = SCHEMA_NAMES},
};

const schema_section schema_static =
    SECTION("static_config", static_keys, .size = sizeof(config_static), .empty_item = "targets: []");

/* Prometheus' pattern for file_sd names:
 * ^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$ */
static int file_sd_name_ok(const char *s) {
    static const char *const exts[] = {"json", "yml", "yaml", "JSON", "YML", "YAML"};
    const char *dot = strrchr(s, '.');
    if (!dot)
        return 0;
    int ok = 0;
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (strcmp(dot + 1, exts[i]) == 0)
            ok = 1;
    if (!ok)
        return 0;
    const char *star = strchr(s, '*');
    if (!star)
        return 1;
    for (const char *p = star + 1; p < dot; p++)
        if (*p == '*' || *p == '/')
            return 0;
    return 1;
}

static int file_sd_finish(dec *d, void *obj, const schema_seen *s) {
    config_file_sd *f = obj;
    const ynode *files = decode_at(s, "files");
    if (f->nfiles == 0)
        return decode_fail(d, s->map, "file service discovery config must contain at least one path name");
    for (size_t j = 0; j < f->nfiles; j++) {
        if (!file_sd_name_ok(f->files[j]))
            return decode_fail(d, files->kind == YAMLTREE_SEQ ? files->kids[j] : files,
                               "path name \"%.100s\" is not valid for file discovery", f->files[j]);
        if (!(f->files[j] = decode_path(d, f->files[j])))
            return decode_oom(d);
    }
    return 0;
}

static const schema_key file_sd_keys[] = {
    {"files", SCHEMA_STRINGS, ARRAY(config_file_sd, files)},
    {"refresh_interval", SCHEMA_DURATION, FIELD(config_file_sd, refresh_interval_ms), .def = 5 * 60 * 1000},
};

static const schema_section file_sd_sec =
    SECTION("file_sd_config", file_sd_keys, .size = sizeof(config_file_sd), .finish = file_sd_finish);

/* ---- relabel_config ------------------------------------------------------------------ */

/* Sets r->re to the compiled `^(?:regex)$`, reusing an equal one. */
static int compile_regex(dec *d, const ynode *at, config_relabel *r) {
    pcre2_code *re = strtab_get(&d->regexes, r->regex);
    if (re) {
        r->re = re;
        return 0;
    }
    struct config_regex *e = arena_alloc(d->a, sizeof *e);
    size_t rl = strlen(r->regex);
    char *pat = malloc(rl + 8);
    if (!e || !pat) {
        free(pat);
        return decode_oom(d);
    }
    memcpy(pat, "^(?:", 4);
    memcpy(pat + 4, r->regex, rl);
    memcpy(pat + 4 + rl, ")$", 3);
    int ecode;
    PCRE2_SIZE eoff;
    re = pcre2_compile((PCRE2_SPTR)pat, rl + 6, PCRE2_UTF | PCRE2_DOTALL | PCRE2_DOLLAR_ENDONLY, &ecode,
                       &eoff, NULL);
    free(pat);
    if (!re) {
        PCRE2_UCHAR emsg[256];
        if (pcre2_get_error_message(ecode, emsg, sizeof emsg) < 0)
            strcpy((char *)emsg, "invalid pattern");
        return decode_fail(d, at, "invalid regular expression \"%.100s\": %s", r->regex, (const char *)emsg);
    }
    if (d->nregexes < CONFIG_MAX_JIT)
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
    /* on the config's list first, so config_free frees it whatever follows */
    e->re = re;
    e->next = d->c->regexes;
    d->c->regexes = e;
    d->nregexes++;
    if (strtab_put(&d->regexes, r->regex, re) != 0)
        return decode_oom(d);
    r->re = re;
    return 0;
}

static int has_dollar(const char *s) {
    return strchr(s, '$') != NULL;
}

static int check_label_names(dec *d, const ynode *v, void *field, size_t n) {
    char *const *names = *(char **const *)field;
    for (size_t j = 0; j < n; j++)
        if (!label_name_valid(names[j], strlen(names[j])))
            return decode_fail(d, v->kids[j], "\"%.100s\" is not a valid label name", names[j]);
    return 0;
}

/* The regex, then Prometheus' rules for each action. */
static int relabel_finish(dec *d, void *obj, const schema_seen *s) {
    config_relabel *r = obj;
    const ynode *v = s->map, *at = decode_at(s, "action");
    /* compile first: the regex text is checked whatever the action */
    int rc = compile_regex(d, decode_at(s, "regex"), r);
    if (rc)
        return rc;
    const char *an = config_relabel_action_name(r->action);
    int act = r->action;
    if (act == CONFIG_RELABEL_HASHMOD && r->modulus == 0)
        return decode_fail(d, at, "relabel configuration for hashmod requires non-zero modulus");
    if ((act == CONFIG_RELABEL_REPLACE || act == CONFIG_RELABEL_HASHMOD || act == CONFIG_RELABEL_LOWERCASE ||
         act == CONFIG_RELABEL_UPPERCASE || act == CONFIG_RELABEL_KEEPEQUAL ||
         act == CONFIG_RELABEL_DROPEQUAL) &&
        !*r->target_label)
        return decode_fail(d, v, "relabel configuration for %s action requires 'target_label' value", an);
    int tl_valid = label_name_valid(r->target_label, strlen(r->target_label));
    if (act == CONFIG_RELABEL_REPLACE && !has_dollar(r->target_label) && !tl_valid)
        return decode_fail(d, v, "\"%.100s\" is invalid 'target_label' for %s action", r->target_label, an);
    if ((act == CONFIG_RELABEL_LOWERCASE || act == CONFIG_RELABEL_UPPERCASE ||
         act == CONFIG_RELABEL_KEEPEQUAL || act == CONFIG_RELABEL_DROPEQUAL ||
         act == CONFIG_RELABEL_HASHMOD) &&
        !tl_valid)
        return decode_fail(d, v, "\"%.100s\" is invalid 'target_label' for %s action", r->target_label, an);
    if ((act == CONFIG_RELABEL_LOWERCASE || act == CONFIG_RELABEL_UPPERCASE) &&
        strcmp(r->replacement, "$1") != 0)
        return decode_fail(d, v, "'replacement' can not be set for %s action", an);
    if (act == CONFIG_RELABEL_LABELMAP && !has_dollar(r->replacement) &&
        !label_name_valid(r->replacement, strlen(r->replacement)))
        return decode_fail(d, v, "\"%.100s\" is invalid 'replacement' for %s action", r->replacement, an);
    if ((act == CONFIG_RELABEL_KEEPEQUAL || act == CONFIG_RELABEL_DROPEQUAL) &&
        (strcmp(r->regex, "(.*)") != 0 || r->modulus != 0 || strcmp(r->separator, ";") != 0 ||
         strcmp(r->replacement, "$1") != 0))
        return decode_fail(
            d, v, "%s action requires only 'source_labels' and `target_label`, and no other fields", an);
    if ((act == CONFIG_RELABEL_LABELDROP || act == CONFIG_RELABEL_LABELKEEP) &&
        (r->nsource_labels != 0 || *r->target_label || r->modulus != 0 || strcmp(r->separator, ";") != 0 ||
         strcmp(r->replacement, "$1") != 0))
        return decode_fail(d, v, "%s action requires only 'regex', and no other fields", an);
    return 0;
}

static const schema_key relabel_keys[] = {
    {"source_labels", SCHEMA_STRINGS, ARRAY(config_relabel, source_labels), .flags = SCHEMA_FLOW,
     .check = check_label_names},
    {"separator", SCHEMA_STRING, FIELD(config_relabel, separator), .def_str = ";"},
    {"regex", SCHEMA_STRING, FIELD(config_relabel, regex), .def_str = "(.*)"},
    {"modulus", SCHEMA_UINT, FIELD(config_relabel, modulus), .flags = SCHEMA_OMIT_ZERO},
    {"target_label", SCHEMA_STRING, FIELD(config_relabel, target_label), .flags = SCHEMA_OMIT_ZERO,
     .def_str = ""},
    {"replacement", SCHEMA_STRING, FIELD(config_relabel, replacement), .def_str = "$1"},
    {"action", SCHEMA_ACTION, FIELD(config_relabel, action)}, /* 0: CONFIG_RELABEL_REPLACE */
};

static const schema_section relabel_sec =
    SECTION("relabel_config", relabel_keys, .size = sizeof(config_relabel), .finish = relabel_finish);

/* ---- global ---------------------------------------------------------------------------- */

/* Expands $var and ${var} from the environment; "$$" is a literal "$". */
static char *expand_env(dec *d, const char *s) {
    buf b = BUF_INIT;
    char *out = NULL;
    for (const char *p = s; *p;) {
        if (*p != '$') {
            buf_putc(&b, *p++);
            continue;
        }
        if (p[1] == '$') {
            buf_putc(&b, '$');
            p += 2;
            continue;
        }
        const char *ns = p + 1, *ne;
        int braced = *ns == '{';
        if (braced) {
            ns++;
            ne = strchr(ns, '}');
            if (!ne) {
                buf_puts(&b, p); /* no closing brace: kept as written */
                break;
            }
        } else {
            ne = ns;
            while (isalnum((unsigned char)*ne) || *ne == '_')
                ne++;
            if (ne == ns) {
                buf_putc(&b, '$');
                p++;
                continue;
            }
        }
        char name[256];
        size_t nl = (size_t)(ne - ns);
        if (nl < sizeof name) {
            memcpy(name, ns, nl);
            name[nl] = 0;
            const char *val = getenv(name);
            if (val)
                buf_puts(&b, val);
        }
        p = braced ? ne + 1 : ne;
    }
    if (buf_error(&b) == 0)
        out = arena_strndup(d->a, b.data ? b.data : "", b.len);
    buf_free(&b);
    return out;
}

static int check_external_labels(dec *d, const ynode *v, void *field, size_t n) {
    config_label *labels = *(config_label **)field;
    for (size_t j = 0; j < n; j++) {
        char *x = expand_env(d, labels[j].value);
        if (!x)
            return decode_oom(d);
        if (!utf8_valid(x, strlen(x)))
            return decode_fail(d, v->kids[2 * j + 1], "\"%.100s\" is not a valid label value", x);
        labels[j].value = x;
    }
    return 0;
}

static int global_finish(dec *d, void *obj, const schema_seen *s) {
    config_global *g = obj;
    if (g->query_log_file && !(g->query_log_file = decode_path(d, g->query_log_file)))
        return decode_oom(d);
    if (g->scrape_interval_ms == 0)
        g->scrape_interval_ms = 60000;
    if (g->scrape_timeout_ms > g->scrape_interval_ms)
        return decode_fail(d, decode_at(s, "scrape_timeout"),
                           "global scrape timeout greater than scrape interval");
    g->native_set = decode_later_key(s, "scrape_native_histograms", NULL) != NULL;
    if (g->scrape_failure_log_file &&
        !(g->scrape_failure_log_file = decode_path(d, g->scrape_failure_log_file)))
        return decode_oom(d);
    return 0;
}

/* Prometheus' defaults for what global leaves unset (or for no global). */
static int global_defaults(dec *d, config_global *g) {
    if (g->scrape_interval_ms == 0)
        g->scrape_interval_ms = 60000;
    if (g->scrape_timeout_ms == 0)
        g->scrape_timeout_ms = 10000 > g->scrape_interval_ms ? g->scrape_interval_ms : 10000;
    if (g->evaluation_interval_ms == 0)
        g->evaluation_interval_ms = 60000;
    if (!g->native_set)
        g->scrape_native_histograms = native_histograms_default;
    if (g->nscrape_protocols == 0) {
        g->protocols_default = 1;
        return g->scrape_native_histograms
                   ? copy_protocols(d, proto_first_protocols, 5, &g->scrape_protocols, &g->nscrape_protocols)
                   : copy_protocols(d, default_protocols, 4, &g->scrape_protocols, &g->nscrape_protocols);
    }
    return 0;
}

static const schema_key global_keys[] = {
    {"scrape_interval", SCHEMA_DURATION, FIELD(config_global, scrape_interval_ms)},
    {"scrape_timeout", SCHEMA_DURATION, FIELD(config_global, scrape_timeout_ms)},
    {"scrape_protocols", SCHEMA_STRINGS, ARRAY(config_global, scrape_protocols), .check = check_protocols},
    {"evaluation_interval", SCHEMA_DURATION, FIELD(config_global, evaluation_interval_ms)},
    {"rule_query_offset", SCHEMA_DURATION, FIELD(config_global, rule_query_offset_ms),
     .flags = SCHEMA_OMIT_ZERO},
    {"external_labels", SCHEMA_LABELS, ARRAY(config_global, external_labels), .flags = SCHEMA_NAMES,
     .check = check_external_labels},
    {"query_log_file", SCHEMA_STRING, FIELD(config_global, query_log_file),
     .flags = SCHEMA_EMPTY_NULL | SCHEMA_UNUSED},
    {"body_size_limit", SCHEMA_SIZE, FIELD(config_global, body_size_limit), .flags = SCHEMA_OMIT_ZERO},
    {"sample_limit", SCHEMA_UINT, FIELD(config_global, sample_limit), .flags = SCHEMA_OMIT_ZERO},
    {"label_limit", SCHEMA_UINT, FIELD(config_global, label_limit), .flags = SCHEMA_OMIT_ZERO},
    {"label_name_length_limit", SCHEMA_UINT, FIELD(config_global, label_name_length_limit),
     .flags = SCHEMA_OMIT_ZERO},
    {"label_value_length_limit", SCHEMA_UINT, FIELD(config_global, label_value_length_limit),
     .flags = SCHEMA_OMIT_ZERO},
    {"target_limit", SCHEMA_UINT, FIELD(config_global, target_limit), .flags = SCHEMA_OMIT_ZERO},
    {"scrape_native_histograms", SCHEMA_BOOL, FIELD(config_global, scrape_native_histograms)},
    {"always_scrape_classic_histograms", SCHEMA_BOOL, FIELD(config_global, always_scrape_classic_histograms),
     .flags = SCHEMA_OMIT_ZERO},
    {"scrape_failure_log_file", SCHEMA_STRING, FIELD(config_global, scrape_failure_log_file),
     .flags = SCHEMA_EMPTY_NULL},
};

static const schema_section global_sec =
    SECTION("global", global_keys, .null_ok = 1, .finish = global_finish);

/* ---- scrape_config ---------------------------------------------------------------------- */

/* The limits (CONFIG_SCRAPE_LIMITS) a scrape config inherits from global when 0. */
#define LIMIT(f)                                                                                             \
    { offsetof(scrape_config, f), offsetof(config_global, f) }
static const struct {
    size_t scrape, global;
} limits[] = {
    LIMIT(body_size_limit),          LIMIT(sample_limit), LIMIT(label_limit), LIMIT(label_name_length_limit),
    LIMIT(label_value_length_limit), LIMIT(target_limit)};

/* Defaults, then the inheritance from global, as Prometheus'
 * ScrapeConfig.Validate. */
static int scrape_finish(dec *d, void *obj, const schema_seen *seen) {
    scrape_config *s = obj;
    const config_global *g = d->global;
    int rc;
    if (!s->job_name || !*s->job_name)
        return decode_fail(d, seen->map, "job_name is empty");
    if ((rc = schema_http_finish(d, &s->http, seen->inl)) != 0 ||
        (rc = scheme_valid(d, s->scheme, seen)) != 0)
        return rc;
    if (s->scrape_interval_ms == 0)
        s->scrape_interval_ms = g->scrape_interval_ms;
    if (s->scrape_timeout_ms > s->scrape_interval_ms)
        return decode_fail(
            d, decode_at(seen, "scrape_timeout"),
            "scrape timeout greater than scrape interval for scrape config with job name \"%.100s\"",
            s->job_name);
    if (s->scrape_timeout_ms == 0)
        s->scrape_timeout_ms =
            g->scrape_timeout_ms > s->scrape_interval_ms ? s->scrape_interval_ms : g->scrape_timeout_ms;
    if (!decode_later_key(seen, "scrape_native_histograms", NULL))
        s->scrape_native_histograms = g->scrape_native_histograms;
    if (!decode_later_key(seen, "always_scrape_classic_histograms", NULL))
        s->always_scrape_classic_histograms = g->always_scrape_classic_histograms;
    if (s->scrape_failure_log_file) {
        if (!(s->scrape_failure_log_file = decode_path(d, s->scrape_failure_log_file)))
            return decode_oom(d);
    } else if (g->scrape_failure_log_file &&
               !(s->scrape_failure_log_file = decode_strdup(d, g->scrape_failure_log_file))) {
        return decode_oom(d);
    }
    /* the default list follows this config's scrape_native_histograms, as Prometheus' */
    if (s->nscrape_protocols == 0 && g->protocols_default &&
        s->scrape_native_histograms != g->scrape_native_histograms) {
        if ((rc = s->scrape_native_histograms ? copy_protocols(d, proto_first_protocols, 5,
                                                               &s->scrape_protocols, &s->nscrape_protocols)
                                              : copy_protocols(d, default_protocols, 4, &s->scrape_protocols,
                                                               &s->nscrape_protocols)) != 0)
            return rc;
    }
    if (s->nscrape_protocols == 0 &&
        (rc = copy_protocols(d, (const char *const *)g->scrape_protocols, g->nscrape_protocols,
                             &s->scrape_protocols, &s->nscrape_protocols)) != 0)
        return rc;
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        uint64_t *l = (uint64_t *)(void *)((char *)s + limits[i].scrape);
        if (*l == 0)
            *l = *(const uint64_t *)(const void *)((const char *)g + limits[i].global);
    }
    return 0;
}

static const schema_key scrape_keys[] = {
    {"job_name", SCHEMA_STRING, FIELD(scrape_config, job_name)},
    {"honor_labels", SCHEMA_BOOL, FIELD(scrape_config, honor_labels), .flags = SCHEMA_OMIT_ZERO},
    {"honor_timestamps", SCHEMA_BOOL, FIELD(scrape_config, honor_timestamps), .def = 1},
    {"track_timestamps_staleness", SCHEMA_BOOL, FIELD(scrape_config, track_timestamps_staleness)},
    {"params", SCHEMA_PARAMS, ARRAY(scrape_config, params)},
    {"scrape_interval", SCHEMA_DURATION, FIELD(scrape_config, scrape_interval_ms)},
    {"scrape_timeout", SCHEMA_DURATION, FIELD(scrape_config, scrape_timeout_ms)},
    {"scrape_protocols", SCHEMA_STRINGS, ARRAY(scrape_config, scrape_protocols), .check = check_protocols},
    {"fallback_scrape_protocol", SCHEMA_STRING, FIELD(scrape_config, fallback_scrape_protocol),
     .flags = SCHEMA_EMPTY_NULL, .check = check_fallback_protocol},
    {"scrape_native_histograms", SCHEMA_BOOL, FIELD(scrape_config, scrape_native_histograms)},
    {"always_scrape_classic_histograms", SCHEMA_BOOL, FIELD(scrape_config, always_scrape_classic_histograms),
     .flags = SCHEMA_OMIT_ZERO},
    {"native_histogram_bucket_limit", SCHEMA_UINT, FIELD(scrape_config, native_histogram_bucket_limit),
     .flags = SCHEMA_OMIT_ZERO},
    {"native_histogram_min_bucket_factor", SCHEMA_STRING,
     FIELD(scrape_config, native_histogram_min_bucket_factor), .flags = SCHEMA_EMPTY_NULL,
     .check = check_bucket_factor},
    {"enable_compression", SCHEMA_BOOL, FIELD(scrape_config, enable_compression), .def = 1},
    {"scrape_failure_log_file", SCHEMA_STRING, FIELD(scrape_config, scrape_failure_log_file),
     .flags = SCHEMA_EMPTY_NULL},
    {"metrics_path", SCHEMA_STRING, FIELD(scrape_config, metrics_path), .def_str = "/metrics"},
    {"scheme", SCHEMA_STRING, FIELD(scrape_config, scheme), .def_str = "http"},
    {"body_size_limit", SCHEMA_SIZE, FIELD(scrape_config, body_size_limit), .flags = SCHEMA_OMIT_ZERO},
    {"sample_limit", SCHEMA_UINT, FIELD(scrape_config, sample_limit), .flags = SCHEMA_OMIT_ZERO},
    {"target_limit", SCHEMA_UINT, FIELD(scrape_config, target_limit), .flags = SCHEMA_OMIT_ZERO},
    {"label_limit", SCHEMA_UINT, FIELD(scrape_config, label_limit), .flags = SCHEMA_OMIT_ZERO},
    {"label_name_length_limit", SCHEMA_UINT, FIELD(scrape_config, label_name_length_limit),
     .flags = SCHEMA_OMIT_ZERO},
    {"label_value_length_limit", SCHEMA_UINT, FIELD(scrape_config, label_value_length_limit),
     .flags = SCHEMA_OMIT_ZERO},
    {NULL, SCHEMA_INLINE, FIELD(scrape_config, http), .sub = &schema_http},
    {"relabel_configs", SCHEMA_LIST, ARRAY(scrape_config, relabel_configs), .sub = &relabel_sec},
    {"metric_relabel_configs", SCHEMA_LIST, ARRAY(scrape_config, metric_relabel_configs),
     .sub = &relabel_sec},
    {"file_sd_configs", SCHEMA_LIST, ARRAY(scrape_config, file_sd_configs), .sub = &file_sd_sec},
    {"static_configs", SCHEMA_LIST, ARRAY(scrape_config, static_configs), .sub = &schema_static},
    {"http_sd_configs", SCHEMA_LIST, ARRAY(scrape_config, http_sd_configs), .sub = &schema_http_sd},
    {"dns_sd_configs", SCHEMA_LIST, ARRAY(scrape_config, dns_sd_configs), .sub = &schema_dns_sd},
    {"consul_sd_configs", SCHEMA_LIST, ARRAY(scrape_config, consul_sd_configs), .sub = &schema_consul_sd},
    {"kubernetes_sd_configs", SCHEMA_LIST, ARRAY(scrape_config, kubernetes_sd_configs),
     .sub = &schema_kubernetes_sd},
};

const schema_section schema_scrape =
    SECTION("scrape_config", scrape_keys, .size = sizeof(scrape_config),
            .null_msg = "empty or null scrape config section", .dup_what = "scrape configs",
            .dup_off = offsetof(scrape_config, job_name), .finish = scrape_finish);

/* ---- alerting ------------------------------------------------------------------------------ */

static int check_api_version(dec *d, const ynode *v, void *field, size_t n) {
    const char *version = *(char **)field;
    (void)n;
    if (version && strcmp(version, "v2") != 0)
        return decode_fail(d, v, "expected Alertmanager api version to be one of [v2] but got %.100s",
                           version);
    return 0;
}

static int alertmanager_finish(dec *d, void *obj, const schema_seen *s) {
    config_alertmanager *am = obj;
    int rc;
    if ((rc = schema_http_finish(d, &am->http, s->inl)) != 0)
        return rc;
    return scheme_valid(d, am->scheme, s);
}

static const schema_key alertmanager_keys[] = {
    {NULL, SCHEMA_INLINE, FIELD(config_alertmanager, http), .sub = &schema_http},
    {"scheme", SCHEMA_STRING, FIELD(config_alertmanager, scheme), .def_str = "http"},
    {"path_prefix", SCHEMA_STRING, FIELD(config_alertmanager, path_prefix), .def_str = "/"},
    {"timeout", SCHEMA_DURATION, FIELD(config_alertmanager, timeout_ms), .def = 10000},
    {"api_version", SCHEMA_STRING, FIELD(config_alertmanager, api_version), .def_str = "v2",
     .check = check_api_version},
    {"relabel_configs", SCHEMA_LIST, ARRAY(config_alertmanager, relabel_configs), .sub = &relabel_sec},
    {"alert_relabel_configs", SCHEMA_LIST, ARRAY(config_alertmanager, alert_relabel_configs),
     .sub = &relabel_sec},
    {"file_sd_configs", SCHEMA_LIST, ARRAY(config_alertmanager, file_sd_configs), .sub = &file_sd_sec},
    {"static_configs", SCHEMA_LIST, ARRAY(config_alertmanager, static_configs), .sub = &schema_static},
};

static const schema_section alertmanager_sec =
    SECTION("alertmanager_config", alertmanager_keys, .size = sizeof(config_alertmanager),
            .finish = alertmanager_finish);

static const schema_key alerting_keys[] = {
    {"alert_relabel_configs", SCHEMA_LIST, ARRAY(config_alerting, alert_relabel_configs),
     .sub = &relabel_sec},
    {"alertmanagers", SCHEMA_LIST, ARRAY(config_alerting, alertmanagers), .sub = &alertmanager_sec},
};

static const schema_section alerting_sec = SECTION("alerting", alerting_keys, .null_ok = 1);

/* ---- remote_write, remote_read -------------------------------------------------------------- */

static int check_headers(dec *d, const ynode *v, void *field, size_t n) {
    const config_label *hs = *(config_label **)field;
    static const char *const reserved[] = {"Host",
                                           "Content-Encoding",
                                           "Content-Length",
                                           "Content-Type",
                                           "User-Agent",
                                           "Connection",
                                           "Keep-Alive",
                                           "Proxy-Authenticate",
                                           "Proxy-Authorization",
                                           "Www-Authenticate",
                                           "X-Prometheus-Remote-Write-Version",
                                           "X-Prometheus-Remote-Read-Version",
                                           NULL};
    for (size_t i = 0; i < n; i++) {
        const char *h = hs[i].name;
        const ynode *k = v->kids[2 * i];
        if (!*h || strcspn(h, " \t:\r\n()<>@,;\\\"/[]?={}") != strlen(h))
            return decode_fail(d, k, "\"%.100s\" is not a valid header name", h);
        if (strcasecmp(h, "Authorization") == 0)
            return decode_fail(
                d, k, "authorization header must be changed via the basic_auth or authorization parameter");
        for (size_t j = 0; reserved[j]; j++)
            if (strcasecmp(h, reserved[j]) == 0)
                return decode_fail(d, k, "%s is a reserved header. It must not be changed", reserved[j]);
    }
    return 0;
}

/* remote_write and remote_read (s->sec->name): the url is required, then
 * the http client's rules. */
static int remote_finish(dec *d, const schema_seen *s, const char *url, config_http *h) {
    if (!url || !*url)
        return decode_fail(d, s->map, "url for %s is empty", s->sec->name);
    if (!schema_url_valid(url, 0))
        return decode_fail(d, decode_at(s, "url"), "url for %s is not a valid http or https URL: \"%.100s\"",
                           s->sec->name, url);
    return schema_http_finish(d, h, s->inl);
}

static int remote_write_finish(dec *d, void *obj, const schema_seen *s) {
    config_remote_write *w = obj;
    return remote_finish(d, s, w->url, &w->http);
}

static int remote_read_finish(dec *d, void *obj, const schema_seen *s) {
    config_remote_read *r = obj;
    return remote_finish(d, s, r->url, &r->http);
}

static const schema_key queue_keys[] = {
    {"capacity", SCHEMA_UINT, FIELD(config_queue, capacity), .def = 10000},
    {"max_shards", SCHEMA_UINT, FIELD(config_queue, max_shards), .def = 50},
    {"min_shards", SCHEMA_UINT, FIELD(config_queue, min_shards), .def = 1},
    {"max_samples_per_send", SCHEMA_UINT, FIELD(config_queue, max_samples_per_send), .def = 2000},
    {"batch_send_deadline", SCHEMA_DURATION, FIELD(config_queue, batch_send_deadline_ms), .def = 5000},
    {"min_backoff", SCHEMA_DURATION, FIELD(config_queue, min_backoff_ms), .def = 30},
    {"max_backoff", SCHEMA_DURATION, FIELD(config_queue, max_backoff_ms), .def = 5000},
    {"retry_on_http_429", SCHEMA_BOOL, FIELD(config_queue, retry_on_http_429), .flags = SCHEMA_OMIT_ZERO},
    {"sample_age_limit", SCHEMA_DURATION, FIELD(config_queue, sample_age_limit_ms),
     .flags = SCHEMA_OMIT_ZERO},
};

static const schema_section queue_sec = SECTION("queue_config", queue_keys, .null_ok = 1);

static const schema_key metadata_keys[] = {
    {"send", SCHEMA_BOOL, FIELD(config_metadata, send), .def = 1},
    {"send_interval", SCHEMA_DURATION, FIELD(config_metadata, send_interval_ms), .def = 60000},
    {"max_samples_per_send", SCHEMA_UINT, FIELD(config_metadata, max_samples_per_send), .def = 2000},
};

static const schema_section metadata_sec = SECTION("metadata_config", metadata_keys, .null_ok = 1);

static int remote_write_init(dec *d, void *obj, const ynode *map) {
    (void)d, (void)map;
    ((config_remote_write *)obj)->http.enable_http2 = 0; /* as Prometheus' remote write client */
    return 0;
}

static int check_protobuf_message(dec *d, const ynode *v, void *field, size_t n) {
    const char *m = *(char **)field;
    (void)n;
    if (m && strcmp(m, "prometheus.WriteRequest") != 0 && strcmp(m, "io.prometheus.write.v2.Request") != 0)
        return decode_fail(
            d, v,
            "unknown remote write protobuf message %.100s, supported: prometheus.WriteRequest, "
            "io.prometheus.write.v2.Request",
            m);
    return 0;
}

static const schema_key remote_write_keys[] = {
    {"url", SCHEMA_STRING, FIELD(config_remote_write, url)},
    {"remote_timeout", SCHEMA_DURATION, FIELD(config_remote_write, remote_timeout_ms), .def = 30000},
    {"headers", SCHEMA_LABELS, ARRAY(config_remote_write, headers), .check = check_headers},
    {"name", SCHEMA_STRING, FIELD(config_remote_write, name), .flags = SCHEMA_EMPTY_NULL},
    {"write_relabel_configs", SCHEMA_LIST, ARRAY(config_remote_write, write_relabel_configs),
     .sub = &relabel_sec},
    {"send_exemplars", SCHEMA_BOOL, FIELD(config_remote_write, send_exemplars)},
    {"send_native_histograms", SCHEMA_BOOL, FIELD(config_remote_write, send_native_histograms)},
    {"protobuf_message", SCHEMA_STRING, FIELD(config_remote_write, protobuf_message),
     .def_str = "prometheus.WriteRequest", .check = check_protobuf_message},
    {NULL, SCHEMA_INLINE, FIELD(config_remote_write, http), .sub = &schema_http},
    {"queue_config", SCHEMA_MAP, FIELD(config_remote_write, queue), .flags = SCHEMA_ALWAYS,
     .sub = &queue_sec},
    {"metadata_config", SCHEMA_MAP, FIELD(config_remote_write, metadata), .flags = SCHEMA_ALWAYS,
     .sub = &metadata_sec},
};

const schema_section schema_remote_write =
    SECTION("remote_write", remote_write_keys, .size = sizeof(config_remote_write),
            .dup_what = "remote write configs", .dup_off = offsetof(config_remote_write, name),
            .init = remote_write_init, .finish = remote_write_finish);

static const schema_key remote_read_keys[] = {
    {"url", SCHEMA_STRING, FIELD(config_remote_read, url)},
    {"remote_timeout", SCHEMA_DURATION, FIELD(config_remote_read, remote_timeout_ms), .def = 60000},
    {"headers", SCHEMA_LABELS, ARRAY(config_remote_read, headers), .check = check_headers},
    {"read_recent", SCHEMA_BOOL, FIELD(config_remote_read, read_recent)},
    {"name", SCHEMA_STRING, FIELD(config_remote_read, name), .flags = SCHEMA_EMPTY_NULL},
    {"required_matchers", SCHEMA_LABELS, ARRAY(config_remote_read, required_matchers), .flags = SCHEMA_NAMES},
    {"filter_external_labels", SCHEMA_BOOL, FIELD(config_remote_read, filter_external_labels), .def = 1},
    {NULL, SCHEMA_INLINE, FIELD(config_remote_read, http), .sub = &schema_http},
};

static const schema_section remote_read_sec = SECTION(
    "remote_read", remote_read_keys, .size = sizeof(config_remote_read), .dup_what = "remote read configs",
    .dup_off = offsetof(config_remote_read, name), .finish = remote_read_finish);

/* ---- the document --------------------------------------------------------------------------- */

static int check_rule_files(dec *d, const ynode *v, void *field, size_t n) {
    char **files = *(char ***)field;
    for (size_t i = 0; i < n; i++) {
        /* a glob whose character class never closes can match nothing */
        int open = 0;
        for (const char *p = files[i]; *p; p++) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '[')
                open = 1;
            else if (*p == ']')
                open = 0;
        }
        if (open)
            return decode_fail(d, v->kids[i], "invalid rule file path \"%.100s\"", files[i]);
        if (!(files[i] = decode_path(d, files[i])))
            return decode_oom(d);
    }
    return 0;
}

/* ---- otlp ------------------------------------------------------------------------------------ */

static int check_translation_strategy(dec *d, const ynode *v, void *field, size_t n) {
    const char *s = *(char **)field;
    (void)n;
    if (!s || !strcmp(s, "UnderscoreEscapingWithSuffixes") || !strcmp(s, "UnderscoreEscapingWithoutSuffixes"))
        return 0;
    /* kiln's names are the classic ones: Prometheus' answer under the legacy validation scheme */
    if (!strcmp(s, "NoTranslation") || !strcmp(s, "NoUTF8EscapingWithSuffixes"))
        return decode_fail(d, v, "OTLP translation strategy \"%s\" is not allowed when UTF8 is disabled", s);
    return decode_fail(d, v, "unsupported OTLP translation strategy \"%.100s\"", s);
}

/* Prometheus' sanitizeAttributes: trimmed, none empty, none twice. */
static int otlp_attributes(dec *d, const ynode *at, char **v, size_t n, const char *key,
                           const char *adjective) {
    for (size_t i = 0; i < n; i++) {
        char *a = v[i];
        while (isspace((unsigned char)*a))
            a++;
        size_t len = strlen(a);
        while (len && isspace((unsigned char)a[len - 1]))
            len--;
        memmove(v[i], a, len);
        v[i][len] = 0;
        if (len == 0)
            return decode_fail(d, at, "invalid '%s': empty %s OTel resource attribute", key, adjective);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(v[j], v[i]))
                return decode_fail(d, at, "invalid '%s': duplicated %s OTel resource attribute \"%.100s\"",
                                   key, adjective, v[i]);
    }
    return 0;
}

static int otlp_finish(dec *d, void *obj, const schema_seen *s) {
    config_otlp *o = obj;
    const ynode *at = s->map;
    if (o->promote_all_resource_attributes) {
        if (o->npromote_resource_attributes)
            return decode_fail(d, at,
                               "'promote_all_resource_attributes' and 'promote_resource_attributes' cannot "
                               "be configured simultaneously");
        return otlp_attributes(d, at, o->ignore_resource_attributes, o->nignore_resource_attributes,
                               "ignore_resource_attributes", "ignored");
    }
    if (o->nignore_resource_attributes)
        return decode_fail(d, at,
                           "'ignore_resource_attributes' cannot be configured unless "
                           "'promote_all_resource_attributes' is true");
    return otlp_attributes(d, at, o->promote_resource_attributes, o->npromote_resource_attributes,
                           "promote_resource_attributes", "promoted");
}

/* In Prometheus' order; written as Prometheus does (omitempty). */
static const schema_key otlp_keys[] = {
    {"promote_all_resource_attributes", SCHEMA_BOOL, FIELD(config_otlp, promote_all_resource_attributes),
     .flags = SCHEMA_OMIT_ZERO},
    {"promote_resource_attributes", SCHEMA_STRINGS, ARRAY(config_otlp, promote_resource_attributes),
     .flags = SCHEMA_OMIT_ZERO},
    {"ignore_resource_attributes", SCHEMA_STRINGS, ARRAY(config_otlp, ignore_resource_attributes),
     .flags = SCHEMA_OMIT_ZERO},
    {"translation_strategy", SCHEMA_STRING, FIELD(config_otlp, translation_strategy),
     .def_str = "UnderscoreEscapingWithSuffixes", .check = check_translation_strategy},
    {"keep_identifying_resource_attributes", SCHEMA_BOOL,
     FIELD(config_otlp, keep_identifying_resource_attributes), .flags = SCHEMA_OMIT_ZERO},
    {"convert_histograms_to_nhcb", SCHEMA_BOOL, FIELD(config_otlp, convert_histograms_to_nhcb),
     .flags = SCHEMA_UNUSED | SCHEMA_OMIT_ZERO},
    {"promote_scope_metadata", SCHEMA_BOOL, FIELD(config_otlp, promote_scope_metadata),
     .flags = SCHEMA_OMIT_ZERO},
    {"label_name_underscore_sanitization", SCHEMA_BOOL,
     FIELD(config_otlp, label_name_underscore_sanitization), .def = 1, .flags = SCHEMA_OMIT_ZERO},
    {"label_name_preserve_multiple_underscores", SCHEMA_BOOL,
     FIELD(config_otlp, label_name_preserve_multiple_underscores), .def = 1, .flags = SCHEMA_OMIT_ZERO},
};

static const schema_section otlp_sec = SECTION("otlp", otlp_keys, .null_ok = 1, .finish = otlp_finish);

/* ---- storage ----------------------------------------------------------------------------------- */

static const schema_key storage_exemplars_keys[] = {
    {"max_exemplars", SCHEMA_UINT, FIELD(config_storage_exemplars, max_exemplars), .flags = SCHEMA_OMIT_ZERO},
};
static const schema_section storage_exemplars_sec =
    SECTION("exemplars", storage_exemplars_keys, .null_ok = 1);
static const schema_key storage_tsdb_keys[] = {
    {"out_of_order_time_window", SCHEMA_DURATION, FIELD(config_storage_tsdb, out_of_order_time_window_ms),
     .flags = SCHEMA_OMIT_ZERO},
};
static const schema_section storage_tsdb_sec = SECTION("tsdb", storage_tsdb_keys, .null_ok = 1);
static const schema_key storage_keys[] = {
    {"tsdb", SCHEMA_MAP, FIELD(config_storage, tsdb), .sub = &storage_tsdb_sec},
    {"exemplars", SCHEMA_MAP, FIELD(config_storage, exemplars), .sub = &storage_exemplars_sec},
};
static const schema_section storage_sec = SECTION("storage", storage_keys, .null_ok = 1);

static const schema_key config_keys[] = {
    /* first: decoded by config_init before everything else */
    {"global", SCHEMA_MAP, FIELD(config, global), .flags = SCHEMA_FIRST | SCHEMA_ALWAYS, .sub = &global_sec},
    {"alerting", SCHEMA_MAP, FIELD(config, alerting), .sub = &alerting_sec},
    {"rule_files", SCHEMA_STRINGS, ARRAY(config, rule_files), .check = check_rule_files},
    {"scrape_configs", SCHEMA_LIST, ARRAY(config, scrape_configs), .sub = &schema_scrape},
    {"remote_write", SCHEMA_LIST, ARRAY(config, remote_write), .sub = &schema_remote_write},
    {"remote_read", SCHEMA_LIST, ARRAY(config, remote_read), .sub = &remote_read_sec},
    {"otlp", SCHEMA_MAP, FIELD(config, otlp), .sub = &otlp_sec},
    {"storage", SCHEMA_MAP, FIELD(config, storage), .sub = &storage_sec},
};

/* global first, wherever it stands in the file: the rest inherits from it */
static int config_init(dec *d, void *obj, const ynode *map) {
    config *c = obj;
    int rc;
    d->global = &c->global;
    for (size_t i = 0; map && map->kind == YAMLTREE_MAP && i < map->n; i++) {
        const ynode *k = map->kids[2 * i];
        const char *name = NULL;
        if ((rc = decode_key(d, k, &name)) != 0)
            return rc;
        if (strcmp(name, "global") == 0 &&
            (rc = decode_value(d, &config_keys[0], k, map->kids[2 * i + 1], c, NULL)))
            return rc;
    }
    return global_defaults(d, &c->global);
}

const schema_section schema_config = SECTION("the configuration", config_keys, .size = sizeof(config),
                                             .null_ok = 1, .top = 1, .init = config_init);
