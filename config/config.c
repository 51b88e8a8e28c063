/*
 * config.c - loads `prometheus.yml` into a `config`: decodes the yamltree
 * DAG section by section, applies Prometheus' defaults and validation, and
 * names file:line:column in every error.
 *
 * The decoder is driven by the schema: each section has a function that
 * walks its map's keys, so recursion depth is fixed by the schema, never by
 * the input, and every key that is not in the schema is an error.  Sections
 * are decoded in this order: `global` first (scrape configs inherit from
 * it, wherever it stands in the file), then everything else.
 *
 * Memory: the tree lives in a scratch arena freed before returning; the
 * config's strings and arrays are copied into the config's own arena
 * (`config.mem`), so config_free is one arena_free plus the PCRE2 codes.
 *
 * Threading: loading touches nothing shared (getenv aside, for
 * external_labels expansion); a loaded config is read-only.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "config/config.h"
#include "config/yamltree.h"

typedef yamltree_node ynode;

/* A compiled relabel regex, shared by all steps with the same text. */
struct config_regex {
    struct config_regex *next;  /* all of the config's regexes */
    struct config_regex *hnext; /* hash chain while loading */
    const char *text;
    pcre2_code *re;
};

/* Beyond this many distinct regexes, the rest are not JIT-compiled: JIT code
 * costs a few KiB each, and the interpreter gives the same answers. */
#define CONFIG_MAX_JIT 10000

typedef struct dec {
    const char *name; /* file name for messages */
    const char *dir;  /* directory relative paths resolve against, or NULL */
    arena *a;         /* the config's arena */
    kiln_err *err;
    const config_global *global;
    config *c;
    struct config_regex **tab; /* regex text -> compiled, while loading */
    size_t ntab, nre;
} dec;

/* Remembers the legacy bearer_token keys of one http client section. */
typedef struct http_tmp {
    char *bearer_token, *bearer_token_file;
    const ynode *bearer_pos, *basic_pos, *auth_pos;
    const ynode *password_pos, *credentials_pos;
    int has_password, has_password_file, has_credentials, has_credentials_file;
} http_tmp;

static const char *const default_protocols[] = {"OpenMetricsText1.0.0", "OpenMetricsText0.0.1",
                                                "PrometheusText1.0.0", "PrometheusText0.0.4"};
static const char *const known_protocols[] = {"PrometheusProto", "OpenMetricsText0.0.1",
                                              "OpenMetricsText1.0.0", "PrometheusText0.0.4",
                                              "PrometheusText1.0.0"};

static const char *const action_names[] = {
    [CONFIG_RELABEL_REPLACE] = "replace",     [CONFIG_RELABEL_KEEP] = "keep",
    [CONFIG_RELABEL_DROP] = "drop",           [CONFIG_RELABEL_KEEPEQUAL] = "keepequal",
    [CONFIG_RELABEL_DROPEQUAL] = "dropequal", [CONFIG_RELABEL_HASHMOD] = "hashmod",
    [CONFIG_RELABEL_LABELMAP] = "labelmap",   [CONFIG_RELABEL_LABELDROP] = "labeldrop",
    [CONFIG_RELABEL_LABELKEEP] = "labelkeep", [CONFIG_RELABEL_LOWERCASE] = "lowercase",
    [CONFIG_RELABEL_UPPERCASE] = "uppercase",
};
#define N_ACTIONS (sizeof action_names / sizeof action_names[0])

const char *config_relabel_action_name(int action) {
    if (action < 0 || (size_t)action >= N_ACTIONS)
        return "unknown";
    return action_names[action];
}

/* ---- small helpers -------------------------------------------------------- */

static int d_fail(dec *d, const ynode *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int d_fail(dec *d, const ynode *n, const char *fmt, ...) {
    char msg[KILN_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kiln_err_set(d->err, KILN_EINVAL, "%s:%d:%d: %s", d->name, n ? n->line : 1, n ? n->col : 1, msg);
}

static int d_oom(dec *d) {
    return kiln_err_set(d->err, KILN_ENOMEM, "%s: out of memory loading the configuration", d->name);
}

static char *d_strdup(dec *d, const char *s) {
    return arena_strndup(d->a, s, strlen(s));
}

static void *d_array(dec *d, size_t n, size_t size) {
    if (n == 0)
        return NULL;
    if (n > SIZE_MAX / size)
        return NULL;
    return arena_alloc(d->a, n * size);
}

/* Joins a relative path onto the config file's directory (Prometheus'
 * SetDirectory). */
static char *d_path(dec *d, char *p) {
    if (!p || !d->dir || !*p || p[0] == '/')
        return p;
    size_t dl = strlen(d->dir), pl = strlen(p);
    char *out = arena_alloc(d->a, dl + pl + 2);
    if (!out)
        return NULL;
    memcpy(out, d->dir, dl);
    size_t o = dl;
    if (o == 0 || out[o - 1] != '/')
        out[o++] = '/';
    memcpy(out + o, p, pl + 1);
    return out;
}

/* A section that must be a map; null counts as an empty map. */
static int d_expect_map(dec *d, const ynode *v, const char *what) {
    if (v->kind == YAMLTREE_MAP || (v->kind == YAMLTREE_SCALAR && v->is_null))
        return 0;
    return d_fail(d, v, "expected a map for %s, got %s", what, yamltree_kind_name(v));
}

static int d_expect_seq(dec *d, const ynode *v, const char *what) {
    if (v->kind == YAMLTREE_SEQ || (v->kind == YAMLTREE_SCALAR && v->is_null))
        return 0;
    return d_fail(d, v, "expected a list for %s, got %s", what, yamltree_kind_name(v));
}

/* Count of map pairs or list items (0 for null). */
static size_t n_of(const ynode *v) {
    return v->kind == YAMLTREE_SCALAR ? 0 : v->n;
}

static int d_key(dec *d, const ynode *k, const char **key) {
    if (k->kind != YAMLTREE_SCALAR)
        return d_fail(d, k, "map keys must be strings, got %s", yamltree_kind_name(k));
    *key = k->str;
    return 0;
}

static int d_unknown(dec *d, const ynode *k, const char *section) {
    static const char *const unsupported[] = {"scrape_config_files",
                                              "runtime",
                                              "storage",
                                              "tracing",
                                              "otlp",
                                              "oauth2",
                                              "sigv4",
                                              "azuread",
                                              "google_iam",
                                              "http_headers",
                                              "no_proxy",
                                              "proxy_from_environment",
                                              "proxy_connect_header",
                                              "enable_compression",
                                              "scrape_failure_log_file",
                                              "fallback_scrape_protocol",
                                              "keep_dropped_targets",
                                              "extra_scrape_metrics",
                                              "metric_name_validation_scheme",
                                              "metric_name_escaping_scheme",
                                              "scrape_native_histograms",
                                              "always_scrape_classic_histograms",
                                              "convert_classic_histograms_to_nhcb",
                                              "native_histogram_bucket_limit",
                                              "native_histogram_min_bucket_factor",
                                              "username_file",
                                              "round_robin_dns",
                                              "ca",
                                              "cert",
                                              "key",
                                              "max_version",
                                              NULL};
    size_t kl = strlen(k->str);
    if (kl > 10 && strcmp(k->str + kl - 11, "_sd_configs") == 0)
        return d_fail(d, k, "key \"%.100s\" in %s is not supported by kiln", k->str, section);
    for (size_t i = 0; unsupported[i]; i++)
        if (strcmp(k->str, unsupported[i]) == 0)
            return d_fail(d, k, "key \"%.100s\" in %s is not supported by kiln", k->str, section);
    return d_fail(d, k, "unknown key \"%.100s\" in %s", k->str, section);
}

/* A scalar copied into the config; null leaves *out as it is. */
static int d_string(dec *d, const char *key, const ynode *v, char **out) {
    if (v->kind != YAMLTREE_SCALAR)
        return d_fail(d, v, "expected a string for \"%s\", got %s", key, yamltree_kind_name(v));
    if (v->is_null)
        return 0;
    if (memchr(v->str, 0, v->len))
        return d_fail(d, v, "\"%s\" must not contain a NUL character", key);
    if (!utf8_valid(v->str, v->len))
        return d_fail(d, v, "\"%s\" is not valid UTF-8", key);
    char *s = arena_strndup(d->a, v->str, v->len);
    if (!s)
        return d_oom(d);
    *out = s;
    return 0;
}

static int d_bool(dec *d, const char *key, const ynode *v, int *out) {
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                      "on",   "On",   "ON",   "y",   "Y",   NULL};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO",
                                     "off",   "Off",   "OFF",   "n",  "N",  NULL};
    if (v->kind != YAMLTREE_SCALAR)
        return d_fail(d, v, "expected true or false for \"%s\", got %s", key, yamltree_kind_name(v));
    if (v->is_null)
        return 0;
    if (v->plain) {
        for (size_t i = 0; yes[i]; i++)
            if (strcmp(v->str, yes[i]) == 0)
                return *out = 1, 0;
        for (size_t i = 0; no[i]; i++)
            if (strcmp(v->str, no[i]) == 0)
                return *out = 0, 0;
    }
    return d_fail(d, v, "expected true or false for \"%s\", got \"%.100s\"", key, v->str);
}

static int d_duration(dec *d, const char *key, const ynode *v, int64_t *out) {
    if (v->kind != YAMLTREE_SCALAR)
        return d_fail(d, v, "expected a duration for \"%s\", got %s", key, yamltree_kind_name(v));
    if (v->is_null)
        return 0;
    kiln_err e = {0};
    char tmp[128];
    const char *s = v->str;
    if (v->len >= sizeof tmp || memchr(v->str, 0, v->len)) {
        /* far longer than any duration: keep the message short */
        snprintf(tmp, sizeof tmp, "%.60s...", v->str);
        return d_fail(d, v, "not a valid duration string: \"%s\"", tmp);
    }
    if (duration_parse(s, out, &e) != 0)
        return d_fail(d, v, "%s", e.msg);
    return 0;
}

static int d_uint(dec *d, const char *key, const ynode *v, uint64_t *out) {
    if (v->kind != YAMLTREE_SCALAR)
        return d_fail(d, v, "expected a non-negative integer for \"%s\", got %s", key, yamltree_kind_name(v));
    if (v->is_null)
        return 0;
    const char *p = v->str;
    if (*p == '+')
        p++;
    if (!*p || !v->plain)
        goto bad;
    uint64_t n = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            goto bad;
        if (n > (UINT64_MAX - 9) / 10)
            return d_fail(d, v, "integer out of range for \"%s\": \"%.100s\"", key, v->str);
        n = n * 10 + (uint64_t)(*p - '0');
    }
    *out = n;
    return 0;
bad:
    return d_fail(d, v, "expected a non-negative integer for \"%s\", got \"%.100s\"", key, v->str);
}

/* A size with a unit, base 2 as in Prometheus ("512MB" = 512 MiB): B, KB,
 * MB, GB, TB, PB, EB (also KiB...); "0" alone is allowed. */
static int d_size(dec *d, const char *key, const ynode *v, uint64_t *out) {
    static const char *const units[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
    if (v->kind != YAMLTREE_SCALAR)
        return d_fail(d, v, "expected a size for \"%s\", got %s", key, yamltree_kind_name(v));
    if (v->is_null)
        return 0;
    const char *p = v->str;
    if (strcmp(p, "0") == 0)
        return *out = 0, 0;
    if (!*p)
        goto bad;
    uint64_t total = 0;
    int last_unit = 7;
    while (*p) {
        uint64_t n = 0;
        if (!isdigit((unsigned char)*p))
            goto bad;
        while (isdigit((unsigned char)*p)) {
            if (n > (UINT64_MAX - 9) / 10)
                goto range;
            n = n * 10 + (uint64_t)(*p++ - '0');
        }
        int u = -1;
        size_t ul = 0;
        for (int i = 6; i >= 0; i--) {
            size_t l = strlen(units[i]);
            if (i > 0 && p[0] == units[i][0] && p[1] == 'i' && p[2] == 'B') {
                u = i, ul = 3;
                break;
            }
            if (strncmp(p, units[i], l) == 0) {
                u = i, ul = l;
                break;
            }
        }
        if (u < 0 || u >= last_unit)
            goto bad;
        last_unit = u;
        uint64_t mul = (uint64_t)1 << (10 * u);
        if (n > UINT64_MAX / mul || total > UINT64_MAX - n * mul)
            goto range;
        total += n * mul;
        p += ul;
    }
    *out = total;
    return 0;
bad:
    return d_fail(d, v,
                  "not a valid size for \"%s\": \"%.100s\" (a unit is required: B, KB, MB, GB, TB, PB, EB)",
                  key, v->str);
range:
    return d_fail(d, v, "size out of range for \"%s\": \"%.100s\"", key, v->str);
}

static int d_string_list(dec *d, const char *key, const ynode *v, char ***out, size_t *n) {
    int rc = d_expect_seq(d, v, key);
    if (rc)
        return rc;
    size_t cnt = n_of(v);
    char **arr = d_array(d, cnt, sizeof *arr);
    if (cnt && !arr)
        return d_oom(d);
    for (size_t i = 0; i < cnt; i++) {
        arr[i] = NULL;
        if ((rc = d_string(d, key, v->kids[i], &arr[i])) != 0)
            return rc;
        if (!arr[i] && !(arr[i] = d_strdup(d, "")))
            return d_oom(d);
    }
    *out = arr;
    *n = cnt;
    return 0;
}

/* A map of label names to values.  names: 1 = legacy label names, 0 = any. */
static int d_label_map(dec *d, const char *key, const ynode *v, int names, config_label **out, size_t *n) {
    int rc = d_expect_map(d, v, key);
    if (rc)
        return rc;
    size_t cnt = n_of(v);
    config_label *arr = d_array(d, cnt, sizeof *arr);
    if (cnt && !arr)
        return d_oom(d);
    for (size_t i = 0; i < cnt; i++) {
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        const char *name = NULL;
        if ((rc = d_key(d, k, &name)) != 0)
            return rc;
        if (names && !label_name_valid(name, k->len))
            return d_fail(d, k, "\"%.100s\" is not a valid label name", name);
        if ((rc = d_string(d, key, k, &arr[i].name)) != 0)
            return rc;
        if (!arr[i].name && !(arr[i].name = d_strdup(d, "")))
            return d_oom(d);
        if ((rc = d_string(d, key, val, &arr[i].value)) != 0)
            return rc;
        if (!arr[i].value && !(arr[i].value = d_strdup(d, "")))
            return d_oom(d);
    }
    *out = arr;
    *n = cnt;
    return 0;
}

/* A plausible http(s) URL: scheme, a non-empty host, an optional numeric
 * port, no whitespace or control characters. */
static int url_valid(const char *s, int allow_socks) {
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

/* Expands $var and ${var} from the environment; "$$" is a literal "$". */
static char *expand_env(dec *d, const char *s) {
    buf b = BUF_INIT;
    char *out = NULL;
    for (const char *p = s; *p;) {
        if (*p != '$') {
            if (buf_putc(&b, *p++))
                goto done;
            continue;
        }
        if (p[1] == '$') {
            if (buf_putc(&b, '$'))
                goto done;
            p += 2;
            continue;
        }
        const char *ns = p + 1, *ne;
        int braced = *ns == '{';
        if (braced) {
            ns++;
            ne = strchr(ns, '}');
            if (!ne) {
                /* no closing brace: kept as written */
                if (buf_puts(&b, p))
                    goto done;
                break;
            }
        } else {
            ne = ns;
            while (isalnum((unsigned char)*ne) || *ne == '_')
                ne++;
            if (ne == ns) {
                if (buf_putc(&b, '$'))
                    goto done;
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
            if (val && buf_puts(&b, val))
                goto done;
        }
        p = braced ? ne + 1 : ne;
    }
    out = arena_strndup(d->a, b.data ? b.data : "", b.len);
done:
    buf_free(&b);
    return out;
}

/* ---- relabel_config ----------------------------------------------------- */

static int has_dollar(const char *s) {
    return strchr(s, '$') != NULL;
}

static size_t hash_text(const char *s) {
    size_t h = (size_t)1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * (size_t)1099511628211ull;
    return h;
}

/* Sets r->re to the compiled `^(?:regex)$`, reusing an equal one. */
static int d_regex(dec *d, const ynode *at, config_relabel *r) {
    size_t h = hash_text(r->regex);
    if (d->ntab) {
        for (struct config_regex *e = d->tab[h & (d->ntab - 1)]; e; e = e->hnext) {
            if (strcmp(e->text, r->regex) == 0) {
                r->re = e->re;
                return 0;
            }
        }
    }
    if (d->nre >= d->ntab * 4) {
        size_t nt = d->ntab ? d->ntab * 4 : 64;
        struct config_regex **tab = calloc(nt, sizeof *tab);
        if (!tab)
            return d_oom(d);
        for (size_t i = 0; i < d->ntab; i++) {
            struct config_regex *e = d->tab[i];
            while (e) {
                struct config_regex *next = e->hnext;
                size_t j = hash_text(e->text) & (nt - 1);
                e->hnext = tab[j];
                tab[j] = e;
                e = next;
            }
        }
        free(d->tab);
        d->tab = tab;
        d->ntab = nt;
    }
    struct config_regex *e = arena_alloc(d->a, sizeof *e);
    size_t rl = strlen(r->regex);
    char *pat = malloc(rl + 8);
    if (!e || !pat) {
        free(pat);
        return d_oom(d);
    }
    memcpy(pat, "^(?:", 4);
    memcpy(pat + 4, r->regex, rl);
    memcpy(pat + 4 + rl, ")$", 3);
    int ecode;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, rl + 6, PCRE2_UTF | PCRE2_DOTALL | PCRE2_DOLLAR_ENDONLY,
                                   &ecode, &eoff, NULL);
    free(pat);
    if (!re) {
        PCRE2_UCHAR emsg[256];
        if (pcre2_get_error_message(ecode, emsg, sizeof emsg) < 0)
            strcpy((char *)emsg, "invalid pattern");
        return d_fail(d, at, "invalid regular expression \"%.100s\": %s", r->regex, (const char *)emsg);
    }
    if (d->nre < CONFIG_MAX_JIT)
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
    e->text = r->regex;
    e->re = re;
    e->next = d->c->regexes;
    d->c->regexes = e;
    size_t j = h & (d->ntab - 1);
    e->hnext = d->tab[j];
    d->tab[j] = e;
    d->nre++;
    r->re = re;
    return 0;
}

static int d_relabel(dec *d, const ynode *v, config_relabel *r) {
    int rc;
    if (v->kind != YAMLTREE_MAP)
        return d_fail(d, v, "expected a map for relabel_config, got %s",
                      v->is_null ? "nothing" : yamltree_kind_name(v));
    r->separator = d_strdup(d, ";");
    r->target_label = d_strdup(d, "");
    r->regex = d_strdup(d, "(.*)");
    r->replacement = d_strdup(d, "$1");
    r->action = CONFIG_RELABEL_REPLACE;
    if (!r->separator || !r->target_label || !r->regex || !r->replacement)
        return d_oom(d);
    const ynode *regex_node = v, *action_node = v;
    for (size_t i = 0; i < v->n; i++) {
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        const char *key = NULL;
        if ((rc = d_key(d, k, &key)) != 0)
            return rc;
        if (strcmp(key, "source_labels") == 0) {
            if ((rc = d_string_list(d, key, val, &r->source_labels, &r->nsource_labels)) != 0)
                return rc;
            for (size_t j = 0; j < r->nsource_labels; j++)
                if (!label_name_valid(r->source_labels[j], strlen(r->source_labels[j])))
                    return d_fail(d, val->kids[j], "\"%.100s\" is not a valid label name",
                                  r->source_labels[j]);
        } else if (strcmp(key, "separator") == 0) {
            rc = d_string(d, key, val, &r->separator);
        } else if (strcmp(key, "target_label") == 0) {
            rc = d_string(d, key, val, &r->target_label);
        } else if (strcmp(key, "regex") == 0) {
            rc = d_string(d, key, val, &r->regex);
            regex_node = val;
        } else if (strcmp(key, "modulus") == 0) {
            rc = d_uint(d, key, val, &r->modulus);
        } else if (strcmp(key, "replacement") == 0) {
            rc = d_string(d, key, val, &r->replacement);
        } else if (strcmp(key, "action") == 0) {
            char *a = NULL;
            if ((rc = d_string(d, key, val, &a)) != 0)
                return rc;
            action_node = val;
            if (!a || !*a)
                return d_fail(d, val, "relabel action cannot be empty");
            size_t j;
            for (j = 0; j < N_ACTIONS; j++)
                if (strcasecmp(a, action_names[j]) == 0)
                    break;
            if (j == N_ACTIONS)
                return d_fail(d, val, "unknown relabel action \"%.100s\"", a);
            r->action = (int)j;
        } else {
            rc = d_unknown(d, k, "relabel_config");
        }
        if (rc)
            return rc;
    }

    /* compile first: the regex text is checked whatever the action */
    if ((rc = d_regex(d, regex_node, r)) != 0)
        return rc;

    /* Prometheus' per-action rules */
    const char *an = action_names[r->action];
    int act = r->action;
    const ynode *at = action_node;
    if (act == CONFIG_RELABEL_HASHMOD && r->modulus == 0)
        return d_fail(d, at, "relabel configuration for hashmod requires non-zero modulus");
    if ((act == CONFIG_RELABEL_REPLACE || act == CONFIG_RELABEL_HASHMOD || act == CONFIG_RELABEL_LOWERCASE ||
         act == CONFIG_RELABEL_UPPERCASE || act == CONFIG_RELABEL_KEEPEQUAL ||
         act == CONFIG_RELABEL_DROPEQUAL) &&
        !*r->target_label)
        return d_fail(d, v, "relabel configuration for %s action requires 'target_label' value", an);
    int tl_valid = label_name_valid(r->target_label, strlen(r->target_label));
    if (act == CONFIG_RELABEL_REPLACE && !has_dollar(r->target_label) && !tl_valid)
        return d_fail(d, v, "\"%.100s\" is invalid 'target_label' for %s action", r->target_label, an);
    if ((act == CONFIG_RELABEL_LOWERCASE || act == CONFIG_RELABEL_UPPERCASE ||
         act == CONFIG_RELABEL_KEEPEQUAL || act == CONFIG_RELABEL_DROPEQUAL ||
         act == CONFIG_RELABEL_HASHMOD) &&
        !tl_valid)
        return d_fail(d, v, "\"%.100s\" is invalid 'target_label' for %s action", r->target_label, an);
    if ((act == CONFIG_RELABEL_LOWERCASE || act == CONFIG_RELABEL_UPPERCASE) &&
        strcmp(r->replacement, "$1") != 0)
        return d_fail(d, v, "'replacement' can not be set for %s action", an);
    if (act == CONFIG_RELABEL_LABELMAP && !has_dollar(r->replacement) &&
        !label_name_valid(r->replacement, strlen(r->replacement)))
        return d_fail(d, v, "\"%.100s\" is invalid 'replacement' for %s action", r->replacement, an);
    if ((act == CONFIG_RELABEL_KEEPEQUAL || act == CONFIG_RELABEL_DROPEQUAL) &&
        (strcmp(r->regex, "(.*)") != 0 || r->modulus != 0 || strcmp(r->separator, ";") != 0 ||
         strcmp(r->replacement, "$1") != 0))
        return d_fail(d, v, "%s action requires only 'source_labels' and `target_label`, and no other fields",
                      an);
    if ((act == CONFIG_RELABEL_LABELDROP || act == CONFIG_RELABEL_LABELKEEP) &&
        (r->nsource_labels != 0 || *r->target_label || r->modulus != 0 || strcmp(r->separator, ";") != 0 ||
         strcmp(r->replacement, "$1") != 0))
        return d_fail(d, v, "%s action requires only 'regex', and no other fields", an);
    return 0;
}

static int d_relabel_list(dec *d, const char *key, const ynode *v, config_relabel **out, size_t *n) {
    int rc = d_expect_seq(d, v, key);
    if (rc)
        return rc;
    size_t cnt = n_of(v);
    config_relabel *arr = d_array(d, cnt, sizeof *arr);
    if (cnt && !arr)
        return d_oom(d);
    /* publish the (zeroed) array first so config_free finds every code */
    *out = arr;
    *n = cnt;
    for (size_t i = 0; i < cnt; i++)
        if ((rc = d_relabel(d, v->kids[i], &arr[i])) != 0)
            return rc;
    return 0;
}

/* ---- http client --------------------------------------------------------- */

static void http_defaults(config_http *h, int http2) {
    memset(h, 0, sizeof *h);
    h->follow_redirects = 1;
    h->enable_http2 = http2;
}

static int d_tls(dec *d, const ynode *v, config_tls *t) {
    int rc = d_expect_map(d, v, "tls_config");
    if (rc)
        return rc;
    for (size_t i = 0; i < n_of(v); i++) {
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        const char *key = NULL;
        if ((rc = d_key(d, k, &key)) != 0)
            return rc;
        if (strcmp(key, "ca_file") == 0)
            rc = d_string(d, key, val, &t->ca_file);
        else if (strcmp(key, "cert_file") == 0)
            rc = d_string(d, key, val, &t->cert_file);
        else if (strcmp(key, "key_file") == 0)
            rc = d_string(d, key, val, &t->key_file);
        else if (strcmp(key, "server_name") == 0)
            rc = d_string(d, key, val, &t->server_name);
        else if (strcmp(key, "insecure_skip_verify") == 0)
            rc = d_bool(d, key, val, &t->insecure_skip_verify);
        else if (strcmp(key, "min_version") == 0) {
            if ((rc = d_string(d, key, val, &t->min_version)) == 0 && t->min_version &&
                strcmp(t->min_version, "TLS10") != 0 && strcmp(t->min_version, "TLS11") != 0 &&
                strcmp(t->min_version, "TLS12") != 0 && strcmp(t->min_version, "TLS13") != 0)
                rc = d_fail(d, val, "unknown TLS version: %.100s", t->min_version);
        } else
            rc = d_unknown(d, k, "tls_config");
        if (rc)
            return rc;
    }
    if ((t->cert_file && !t->key_file) || (!t->cert_file && t->key_file))
        return d_fail(
            d, v,
            "exactly one of key or key_file must be configured when a client certificate is configured");
    t->ca_file = d_path(d, t->ca_file);
    t->cert_file = d_path(d, t->cert_file);
    t->key_file = d_path(d, t->key_file);
    return 0;
}

static int d_basic_auth(dec *d, const ynode *v, config_http *h, http_tmp *t) {
    int rc = d_expect_map(d, v, "basic_auth");
    if (rc)
        return rc;
    h->has_basic_auth = 1;
    for (size_t i = 0; i < n_of(v); i++) {
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        const char *key = NULL;
        if ((rc = d_key(d, k, &key)) != 0)
            return rc;
        if (strcmp(key, "username") == 0)
            rc = d_string(d, key, val, &h->username);
        else if (strcmp(key, "password") == 0)
            rc = d_string(d, key, val, &h->password), t->password_pos = k;
        else if (strcmp(key, "password_file") == 0)
            rc = d_string(d, key, val, &h->password_file), t->password_pos = k;
        else
            rc = d_unknown(d, k, "basic_auth");
        if (rc)
            return rc;
    }
    if (h->password && *h->password && h->password_file && *h->password_file)
        return d_fail(d, t->password_pos,
                      "at most one of basic_auth password & password_file must be configured");
    h->password_file = d_path(d, h->password_file);
    return 0;
}

static int d_authorization(dec *d, const ynode *v, config_http *h, http_tmp *t) {
    int rc = d_expect_map(d, v, "authorization");
    if (rc)
        return rc;
    h->has_authorization = 1;
    for (size_t i = 0; i < n_of(v); i++) {
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        const char *key = NULL;
        if ((rc = d_key(d, k, &key)) != 0)
            return rc;
        if (strcmp(key, "type") == 0) {
            if ((rc = d_string(d, key, val, &h->auth_type)) == 0 && h->auth_type &&
                strcasecmp(h->auth_type, "basic") == 0)
                rc = d_fail(d, val,
                            "authorization type cannot be set to \"basic\", use \"basic_auth\" instead");
        } else if (strcmp(key, "credentials") == 0)
            rc = d_string(d, key, val, &h->credentials), t->credentials_pos = k;
        else if (strcmp(key, "credentials_file") == 0)
            rc = d_string(d, key, val, &h->credentials_file), t->credentials_pos = k;
        else
            rc = d_unknown(d, k, "authorization");
        if (rc)
            return rc;
    }
    if (h->credentials && *h->credentials && h->credentials_file && *h->credentials_file)
        return d_fail(d, t->credentials_pos,
                      "at most one of authorization credentials & credentials_file must be configured");
    h->credentials_file = d_path(d, h->credentials_file);
    return 0;
}

/* Handles the http client keys; *handled = 0 for any other key. */
static int d_http_key(dec *d, const ynode *k, const ynode *v, config_http *h, http_tmp *t, int *handled) {
    const char *key = k->str;
    *handled = 1;
    if (strcmp(key, "basic_auth") == 0) {
        t->basic_pos = k;
        return d_basic_auth(d, v, h, t);
    }
    if (strcmp(key, "authorization") == 0) {
        t->auth_pos = k;
        return d_authorization(d, v, h, t);
    }
    if (strcmp(key, "bearer_token") == 0) {
        t->bearer_pos = k;
        return d_string(d, key, v, &t->bearer_token);
    }
    if (strcmp(key, "bearer_token_file") == 0) {
        t->bearer_pos = k;
        return d_string(d, key, v, &t->bearer_token_file);
    }
    if (strcmp(key, "tls_config") == 0)
        return d_tls(d, v, &h->tls);
    if (strcmp(key, "proxy_url") == 0) {
        int rc = d_string(d, key, v, &h->proxy_url);
        if (rc == 0 && h->proxy_url && *h->proxy_url && !url_valid(h->proxy_url, 1))
            rc = d_fail(d, v, "invalid proxy_url \"%.100s\"", h->proxy_url);
        if (rc == 0 && h->proxy_url && !*h->proxy_url)
            h->proxy_url = NULL;
        return rc;
    }
    if (strcmp(key, "follow_redirects") == 0)
        return d_bool(d, key, v, &h->follow_redirects);
    if (strcmp(key, "enable_http2") == 0)
        return d_bool(d, key, v, &h->enable_http2);
    *handled = 0;
    return 0;
}

/* Prometheus' HTTPClientConfig.Validate, then bearer_token -> authorization. */
static int http_finish(dec *d, config_http *h, http_tmp *t) {
    int bt = t->bearer_token && *t->bearer_token, btf = t->bearer_token_file && *t->bearer_token_file;
    if (h->has_basic_auth && (bt || btf))
        return d_fail(
            d, t->bearer_pos,
            "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured");
    if (bt && btf)
        return d_fail(d, t->bearer_pos, "at most one of bearer_token & bearer_token_file must be configured");
    if (h->has_authorization && (bt || btf))
        return d_fail(d, t->bearer_pos,
                      "authorization is not compatible with bearer_token & bearer_token_file");
    if (h->has_basic_auth && h->has_authorization)
        return d_fail(d, t->auth_pos, "at most one of basic_auth, oauth2 & authorization must be configured");
    if (bt || btf) {
        h->has_authorization = 1;
        if (bt)
            h->credentials = t->bearer_token;
        else
            h->credentials_file = d_path(d, t->bearer_token_file);
    }
    if (h->has_authorization && (!h->auth_type || !*h->auth_type)) {
        if (!(h->auth_type = d_strdup(d, "Bearer")))
            return d_oom(d);
    }
    return 0;
}

/* ---- targets ----------------------------------------------------------------- */

static int d_static(dec *d, const ynode *v, config_static *s) {
    int rc;
    if (v->kind != YAMLTREE_MAP)
        return d_fail(d, v, "expected a map for static_config, got %s",
                      v->is_null ? "nothing" : yamltree_kind_name(v));
    for (size_t i = 0; i < v->n; i++) {
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        const char *key = NULL;
        if ((rc = d_key(d, k, &key)) != 0)
            return rc;
        if (strcmp(key, "targets") == 0) {
            if ((rc = d_string_list(d, key, val, &s->targets, &s->ntargets)) != 0)
                return rc;
            for (size_t j = 0; j < s->ntargets; j++)
                if (strchr(s->targets[j], '/'))
                    return d_fail(d, val->kids[j], "\"%.100s\" is not a valid hostname", s->targets[j]);
        } else if (strcmp(key, "labels") == 0) {
            rc = d_label_map(d, key, val, 1, &s->labels, &s->nlabels);
        } else {
            rc = d_unknown(d, k, "static_config");
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int d_static_list(dec *d, const ynode *v, config_static **out, size_t *n) {
    int rc = d_expect_seq(d, v, "static_configs");
    if (rc)
        return rc;
    size_t cnt = n_of(v);
    config_static *arr = d_array(d, cnt, sizeof *arr);
    if (cnt && !arr)
        return d_oom(d);
    *out = arr;
    *n = cnt;
    for (size_t i = 0; i < cnt; i++)
        if ((rc = d_static(d, v->kids[i], &arr[i])) != 0)
            return rc;
    return 0;
}

/* Prometheus' pattern for file_sd names:
 * ^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$ */
static int file_sd_name_ok(const char *s) {
    const char *dot = strrchr(s, '.');
    if (!dot)
        return 0;
    const char *ext = dot + 1;
    static const char *const exts[] = {"json", "yml", "yaml", "JSON", "YML", "YAML"};
    int ok = 0;
    for (size_t i = 0; i < 6; i++)
        if (strcmp(ext, exts[i]) == 0)
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

static int d_file_sd(dec *d, const ynode *v, config_file_sd *f) {
    int rc;
    if (v->kind != YAMLTREE_MAP)
        return d_fail(d, v, "expected a map for file_sd_config, got %s",
                      v->is_null ? "nothing" : yamltree_kind_name(v));
    f->refresh_interval_ms = 5 * 60 * 1000;
    const ynode *files_node = v;
    for (size_t i = 0; i < v->n; i++) {
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        const char *key = NULL;
        if ((rc = d_key(d, k, &key)) != 0)
            return rc;
        if (strcmp(key, "files") == 0) {
            files_node = val;
            rc = d_string_list(d, key, val, &f->files, &f->nfiles);
        } else if (strcmp(key, "refresh_interval") == 0) {
            rc = d_duration(d, key, val, &f->refresh_interval_ms);
        } else {
            rc = d_unknown(d, k, "file_sd_config");
        }
        if (rc)
            return rc;
    }
    if (f->nfiles == 0)
        return d_fail(d, v, "file service discovery config must contain at least one path name");
    for (size_t j = 0; j < f->nfiles; j++) {
        if (!file_sd_name_ok(f->files[j]))
            return d_fail(d, files_node->kind == YAMLTREE_SEQ ? files_node->kids[j] : files_node,
                          "path name \"%.100s\" is not valid for file discovery", f->files[j]);
        if (!(f->files[j] = d_path(d, f->files[j])))
            return d_oom(d);
    }
    return 0;
}

static int d_file_sd_list(dec *d, const ynode *v, config_file_sd **out, size_t *n) {
    int rc = d_expect_seq(d, v, "file_sd_configs");
    if (rc)
        return rc;
    size_t cnt = n_of(v);
    config_file_sd *arr = d_array(d, cnt, sizeof *arr);
    if (cnt && !arr)
        return d_oom(d);
    *out = arr;
    *n = cnt;
    for (size_t i = 0; i < cnt; i++)
        if ((rc = d_file_sd(d, v->kids[i], &arr[i])) != 0)
            return rc;
    return 0;
}

static int d_protocols(dec *d, const char *key, const ynode *v, char ***out, size_t *n) {
    int rc = d_string_list(d, key, v, out, n);
    if (rc)
        return rc;
    for (size_t i = 0; i < *n; i++) {
        size_t j;
        for (j = 0; j < sizeof known_protocols / sizeof known_protocols[0]; j++)
            if (strcmp((*out)[i], known_protocols[j]) == 0)
                break;
        if (j == sizeof known_protocols / sizeof known_protocols[0])
            return d_fail(d, v->kids[i],
                          "unknown scrape protocol %.100s, supported: [PrometheusProto OpenMetricsText0.0.1 "
                          "OpenMetricsText1.0.0 PrometheusText0.0.4 PrometheusText1.0.0]",
                          (*out)[i]);
        for (j = 0; j < i; j++)
            if (strcmp((*out)[i], (*out)[j]) == 0)
                return d_fail(d, v->kids[i], "duplicated protocol in scrape_protocols, got %s", (*out)[i]);
    }
    return 0;
}

/* ---- global ----------------------------------------------------------------- */

static int d_global(dec *d, const ynode *v, config_global *g) {
    int rc = d_expect_map(d, v, "global");
    if (rc)
        return rc;
    const ynode *timeout_node = v;
    for (size_t i = 0; i < n_of(v); i++) {
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        const char *key = NULL;
        if ((rc = d_key(d, k, &key)) != 0)
            return rc;
        if (strcmp(key, "scrape_interval") == 0)
            rc = d_duration(d, key, val, &g->scrape_interval_ms);
        else if (strcmp(key, "scrape_timeout") == 0)
            rc = d_duration(d, key, val, &g->scrape_timeout_ms), timeout_node = val;
        else if (strcmp(key, "evaluation_interval") == 0)
            rc = d_duration(d, key, val, &g->evaluation_interval_ms);
        else if (strcmp(key, "rule_query_offset") == 0)
            rc = d_duration(d, key, val, &g->rule_query_offset_ms);
        else if (strcmp(key, "external_labels") == 0) {
            if ((rc = d_label_map(d, key, val, 1, &g->external_labels, &g->nexternal_labels)) == 0) {
                for (size_t j = 0; j < g->nexternal_labels; j++) {
                    char *x = expand_env(d, g->external_labels[j].value);
                    if (!x)
                        return d_oom(d);
                    if (!utf8_valid(x, strlen(x)))
                        return d_fail(d, val->kids[2 * j + 1], "\"%.100s\" is not a valid label value", x);
                    g->external_labels[j].value = x;
                }
            }
        } else if (strcmp(key, "scrape_protocols") == 0)
            rc = d_protocols(d, key, val, &g->scrape_protocols, &g->nscrape_protocols);
        else if (strcmp(key, "body_size_limit") == 0)
            rc = d_size(d, key, val, &g->body_size_limit);
        else if (strcmp(key, "sample_limit") == 0)
            rc = d_uint(d, key, val, &g->sample_limit);
        else if (strcmp(key, "label_limit") == 0)
            rc = d_uint(d, key, val, &g->label_limit);
        else if (strcmp(key, "label_name_length_limit") == 0)
            rc = d_uint(d, key, val, &g->label_name_length_limit);
        else if (strcmp(key, "label_value_length_limit") == 0)
            rc = d_uint(d, key, val, &g->label_value_length_limit);
        else if (strcmp(key, "target_limit") == 0)
            rc = d_uint(d, key, val, &g->target_limit);
        else if (strcmp(key, "query_log_file") == 0) {
            if ((rc = d_string(d, key, val, &g->query_log_file)) == 0 && g->query_log_file &&
                !*g->query_log_file)
                g->query_log_file = NULL;
        } else
            rc = d_unknown(d, k, "global");
        if (rc)
            return rc;
    }
    if (g->query_log_file && !(g->query_log_file = d_path(d, g->query_log_file)))
        return d_oom(d);
    if (g->scrape_interval_ms == 0)
        g->scrape_interval_ms = 60000;
    if (g->scrape_timeout_ms > g->scrape_interval_ms)
        return d_fail(d, timeout_node, "global scrape timeout greater than scrape interval");
    if (g->scrape_timeout_ms == 0)
        g->scrape_timeout_ms = 10000 > g->scrape_interval_ms ? g->scrape_interval_ms : 10000;
    if (g->evaluation_interval_ms == 0)
        g->evaluation_interval_ms = 60000;
    return 0;
}

static int global_defaults(dec *d, config_global *g) {
    if (g->scrape_interval_ms == 0)
        g->scrape_interval_ms = 60000;
    if (g->scrape_timeout_ms == 0)
        g->scrape_timeout_ms = 10000 > g->scrape_interval_ms ? g->scrape_interval_ms : 10000;
    if (g->evaluation_interval_ms == 0)
        g->evaluation_interval_ms = 60000;
    if (g->nscrape_protocols == 0) {
        size_t n = sizeof default_protocols / sizeof default_protocols[0];
        g->scrape_protocols = d_array(d, n, sizeof *g->scrape_protocols);
        if (!g->scrape_protocols)
            return d_oom(d);
        for (size_t i = 0; i < n; i++)
            if (!(g->scrape_protocols[i] = d_strdup(d, default_protocols[i])))
                return d_oom(d);
        g->nscrape_protocols = n;
    }
    return 0;
}

/* ---- scrape_config --------------------------------------------------------- */

static int d_params(dec *d, const ynode *v, config_param **out, size_t *n) {
    int rc = d_expect_map(d, v, "params");
    if (rc)
        return rc;
    size_t cnt = n_of(v);
    config_param *arr = d_array(d, cnt, sizeof *arr);
    if (cnt && !arr)
        return d_oom(d);
    for (size_t i = 0; i < cnt; i++) {
        const ynode *k = v->kids[2 * i];
        const char *key = NULL;
        if ((rc = d_key(d, k, &key)) != 0)
            return rc;
        if ((rc = d_string(d, "params", k, &arr[i].name)) != 0)
            return rc;
        if (!arr[i].name && !(arr[i].name = d_strdup(d, "")))
            return d_oom(d);
        if ((rc = d_string_list(d, key, v->kids[2 * i + 1], &arr[i].values, &arr[i].nvalues)) != 0)
            return rc;
    }
    *out = arr;
    *n = cnt;
    return 0;
}

static int d_scrape(dec *d, const ynode *v, scrape_config *s) {
    int rc;
    const config_global *g = d->global;
    if (v->kind != YAMLTREE_MAP)
        return v->is_null ? d_fail(d, v, "empty or null scrape config section")
                          : d_fail(d, v, "expected a map for scrape_config, got %s", yamltree_kind_name(v));
    s->honor_timestamps = 1;
    http_defaults(&s->http, 1);
    http_tmp t;
    memset(&t, 0, sizeof t);
    const ynode *timeout_node = v, *scheme_node = v;
    for (size_t i = 0; i < v->n; i++) {
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        const char *key = NULL;
        int handled;
        if ((rc = d_key(d, k, &key)) != 0)
            return rc;
        if ((rc = d_http_key(d, k, val, &s->http, &t, &handled)) != 0)
            return rc;
        if (handled)
            continue;
        if (strcmp(key, "job_name") == 0)
            rc = d_string(d, key, val, &s->job_name);
        else if (strcmp(key, "honor_labels") == 0)
            rc = d_bool(d, key, val, &s->honor_labels);
        else if (strcmp(key, "honor_timestamps") == 0)
            rc = d_bool(d, key, val, &s->honor_timestamps);
        else if (strcmp(key, "track_timestamps_staleness") == 0)
            rc = d_bool(d, key, val, &s->track_timestamps_staleness);
        else if (strcmp(key, "scrape_interval") == 0)
            rc = d_duration(d, key, val, &s->scrape_interval_ms);
        else if (strcmp(key, "scrape_timeout") == 0)
            rc = d_duration(d, key, val, &s->scrape_timeout_ms), timeout_node = val;
        else if (strcmp(key, "scrape_protocols") == 0)
            rc = d_protocols(d, key, val, &s->scrape_protocols, &s->nscrape_protocols);
        else if (strcmp(key, "metrics_path") == 0)
            rc = d_string(d, key, val, &s->metrics_path);
        else if (strcmp(key, "scheme") == 0)
            rc = d_string(d, key, val, &s->scheme), scheme_node = val;
        else if (strcmp(key, "params") == 0)
            rc = d_params(d, val, &s->params, &s->nparams);
        else if (strcmp(key, "body_size_limit") == 0)
            rc = d_size(d, key, val, &s->body_size_limit);
        else if (strcmp(key, "sample_limit") == 0)
            rc = d_uint(d, key, val, &s->sample_limit);
        else if (strcmp(key, "label_limit") == 0)
            rc = d_uint(d, key, val, &s->label_limit);
        else if (strcmp(key, "label_name_length_limit") == 0)
            rc = d_uint(d, key, val, &s->label_name_length_limit);
        else if (strcmp(key, "label_value_length_limit") == 0)
            rc = d_uint(d, key, val, &s->label_value_length_limit);
        else if (strcmp(key, "target_limit") == 0)
            rc = d_uint(d, key, val, &s->target_limit);
        else if (strcmp(key, "static_configs") == 0)
            rc = d_static_list(d, val, &s->static_configs, &s->nstatic_configs);
        else if (strcmp(key, "file_sd_configs") == 0)
            rc = d_file_sd_list(d, val, &s->file_sd_configs, &s->nfile_sd_configs);
        else if (strcmp(key, "relabel_configs") == 0)
            rc = d_relabel_list(d, key, val, &s->relabel_configs, &s->nrelabel_configs);
        else if (strcmp(key, "metric_relabel_configs") == 0)
            rc = d_relabel_list(d, key, val, &s->metric_relabel_configs, &s->nmetric_relabel_configs);
        else
            rc = d_unknown(d, k, "scrape_config");
        if (rc)
            return rc;
    }
    if (!s->job_name || !*s->job_name)
        return d_fail(d, v, "job_name is empty");
    if ((rc = http_finish(d, &s->http, &t)) != 0)
        return rc;
    if (!s->metrics_path && !(s->metrics_path = d_strdup(d, "/metrics")))
        return d_oom(d);
    if (!s->scheme && !(s->scheme = d_strdup(d, "http")))
        return d_oom(d);
    if (strcmp(s->scheme, "http") != 0 && strcmp(s->scheme, "https") != 0)
        return d_fail(d, scheme_node, "scheme must be \"http\" or \"https\", got \"%.100s\"", s->scheme);

    /* inheritance from global, as Prometheus' ScrapeConfig.Validate */
    if (s->scrape_interval_ms == 0)
        s->scrape_interval_ms = g->scrape_interval_ms;
    if (s->scrape_timeout_ms > s->scrape_interval_ms)
        return d_fail(
            d, timeout_node,
            "scrape timeout greater than scrape interval for scrape config with job name \"%.100s\"",
            s->job_name);
    if (s->scrape_timeout_ms == 0)
        s->scrape_timeout_ms =
            g->scrape_timeout_ms > s->scrape_interval_ms ? s->scrape_interval_ms : g->scrape_timeout_ms;
    if (s->nscrape_protocols == 0) {
        s->scrape_protocols = d_array(d, g->nscrape_protocols, sizeof *s->scrape_protocols);
        if (!s->scrape_protocols)
            return d_oom(d);
        for (size_t i = 0; i < g->nscrape_protocols; i++)
            if (!(s->scrape_protocols[i] = d_strdup(d, g->scrape_protocols[i])))
                return d_oom(d);
        s->nscrape_protocols = g->nscrape_protocols;
    }
    if (!s->body_size_limit)
        s->body_size_limit = g->body_size_limit;
    if (!s->sample_limit)
        s->sample_limit = g->sample_limit;
    if (!s->label_limit)
        s->label_limit = g->label_limit;
    if (!s->label_name_length_limit)
        s->label_name_length_limit = g->label_name_length_limit;
    if (!s->label_value_length_limit)
        s->label_value_length_limit = g->label_value_length_limit;
    if (!s->target_limit)
        s->target_limit = g->target_limit;
    return 0;
}

/* ---- alerting --------------------------------------------------------------- */

static int d_alertmanager(dec *d, const ynode *v, config_alertmanager *am) {
    int rc;
    if (v->kind != YAMLTREE_MAP)
        return d_fail(d, v, "expected a map for alertmanager_config, got %s",
                      v->is_null ? "nothing" : yamltree_kind_name(v));
    am->timeout_ms = 10000;
    http_defaults(&am->http, 1);
    http_tmp t;
    memset(&t, 0, sizeof t);
    const ynode *scheme_node = v;
    for (size_t i = 0; i < v->n; i++) {
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        const char *key = NULL;
        int handled;
        if ((rc = d_key(d, k, &key)) != 0)
            return rc;
        if ((rc = d_http_key(d, k, val, &am->http, &t, &handled)) != 0)
            return rc;
        if (handled)
            continue;
        if (strcmp(key, "timeout") == 0)
            rc = d_duration(d, key, val, &am->timeout_ms);
        else if (strcmp(key, "api_version") == 0) {
            if ((rc = d_string(d, key, val, &am->api_version)) == 0 && am->api_version &&
                strcmp(am->api_version, "v2") != 0)
                rc = d_fail(d, val, "expected Alertmanager api version to be one of [v2] but got %.100s",
                            am->api_version);
        } else if (strcmp(key, "path_prefix") == 0)
            rc = d_string(d, key, val, &am->path_prefix);
        else if (strcmp(key, "scheme") == 0)
            rc = d_string(d, key, val, &am->scheme), scheme_node = val;
        else if (strcmp(key, "static_configs") == 0)
            rc = d_static_list(d, val, &am->static_configs, &am->nstatic_configs);
        else if (strcmp(key, "file_sd_configs") == 0)
            rc = d_file_sd_list(d, val, &am->file_sd_configs, &am->nfile_sd_configs);
        else if (strcmp(key, "relabel_configs") == 0)
            rc = d_relabel_list(d, key, val, &am->relabel_configs, &am->nrelabel_configs);
        else if (strcmp(key, "alert_relabel_configs") == 0)
            rc = d_relabel_list(d, key, val, &am->alert_relabel_configs, &am->nalert_relabel_configs);
        else
            rc = d_unknown(d, k, "alertmanager_config");
        if (rc)
            return rc;
    }
    if ((rc = http_finish(d, &am->http, &t)) != 0)
        return rc;
    if (!am->api_version && !(am->api_version = d_strdup(d, "v2")))
        return d_oom(d);
    if (!am->path_prefix && !(am->path_prefix = d_strdup(d, "/")))
        return d_oom(d);
    if (!am->scheme && !(am->scheme = d_strdup(d, "http")))
        return d_oom(d);
    if (strcmp(am->scheme, "http") != 0 && strcmp(am->scheme, "https") != 0)
        return d_fail(d, scheme_node, "scheme must be \"http\" or \"https\", got \"%.100s\"", am->scheme);
    return 0;
}

static int d_alerting(dec *d, const ynode *v, config_alerting *al) {
    int rc = d_expect_map(d, v, "alerting");
    if (rc)
        return rc;
    for (size_t i = 0; i < n_of(v); i++) {
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        const char *key = NULL;
        if ((rc = d_key(d, k, &key)) != 0)
            return rc;
        if (strcmp(key, "alert_relabel_configs") == 0) {
            rc = d_relabel_list(d, key, val, &al->alert_relabel_configs, &al->nalert_relabel_configs);
        } else if (strcmp(key, "alertmanagers") == 0) {
            if ((rc = d_expect_seq(d, val, key)) != 0)
                return rc;
            size_t cnt = n_of(val);
            al->alertmanagers = d_array(d, cnt, sizeof *al->alertmanagers);
            if (cnt && !al->alertmanagers)
                return d_oom(d);
            al->nalertmanagers = cnt;
            for (size_t j = 0; j < cnt && rc == 0; j++)
                rc = d_alertmanager(d, val->kids[j], &al->alertmanagers[j]);
        } else {
            rc = d_unknown(d, k, "alerting");
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- remote write / read ----------------------------------------------------- */

static int d_headers(dec *d, const ynode *v, config_label **out, size_t *n) {
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
    int rc = d_label_map(d, "headers", v, 0, out, n);
    if (rc)
        return rc;
    for (size_t i = 0; i < *n; i++) {
        const char *h = (*out)[i].name;
        const ynode *k = v->kids[2 * i];
        if (!*h || strcspn(h, " \t:\r\n()<>@,;\\\"/[]?={}") != strlen(h))
            return d_fail(d, k, "\"%.100s\" is not a valid header name", h);
        if (strcasecmp(h, "Authorization") == 0)
            return d_fail(
                d, k, "authorization header must be changed via the basic_auth or authorization parameter");
        for (size_t j = 0; reserved[j]; j++)
            if (strcasecmp(h, reserved[j]) == 0)
                return d_fail(d, k, "%s is a reserved header. It must not be changed", reserved[j]);
    }
    return 0;
}

static int d_queue(dec *d, const ynode *v, config_queue *q) {
    int rc = d_expect_map(d, v, "queue_config");
    if (rc)
        return rc;
    for (size_t i = 0; i < n_of(v); i++) {
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        const char *key = NULL;
        if ((rc = d_key(d, k, &key)) != 0)
            return rc;
        if (strcmp(key, "capacity") == 0)
            rc = d_uint(d, key, val, &q->capacity);
        else if (strcmp(key, "max_shards") == 0)
            rc = d_uint(d, key, val, &q->max_shards);
        else if (strcmp(key, "min_shards") == 0)
            rc = d_uint(d, key, val, &q->min_shards);
        else if (strcmp(key, "max_samples_per_send") == 0)
            rc = d_uint(d, key, val, &q->max_samples_per_send);
        else if (strcmp(key, "batch_send_deadline") == 0)
            rc = d_duration(d, key, val, &q->batch_send_deadline_ms);
        else if (strcmp(key, "min_backoff") == 0)
            rc = d_duration(d, key, val, &q->min_backoff_ms);
        else if (strcmp(key, "max_backoff") == 0)
            rc = d_duration(d, key, val, &q->max_backoff_ms);
        else if (strcmp(key, "retry_on_http_429") == 0)
            rc = d_bool(d, key, val, &q->retry_on_http_429);
        else if (strcmp(key, "sample_age_limit") == 0)
            rc = d_duration(d, key, val, &q->sample_age_limit_ms);
        else
            rc = d_unknown(d, k, "queue_config");
        if (rc)
            return rc;
    }
    return 0;
}

static int d_metadata(dec *d, const ynode *v, config_metadata *m) {
    int rc = d_expect_map(d, v, "metadata_config");
    if (rc)
        return rc;
    for (size_t i = 0; i < n_of(v); i++) {
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        const char *key = NULL;
        if ((rc = d_key(d, k, &key)) != 0)
            return rc;
        if (strcmp(key, "send") == 0)
            rc = d_bool(d, key, val, &m->send);
        else if (strcmp(key, "send_interval") == 0)
            rc = d_duration(d, key, val, &m->send_interval_ms);
        else if (strcmp(key, "max_samples_per_send") == 0)
            rc = d_uint(d, key, val, &m->max_samples_per_send);
        else
            rc = d_unknown(d, k, "metadata_config");
        if (rc)
            return rc;
    }
    return 0;
}

static int check_url(dec *d, const ynode *v, const ynode *url_node, const char *url, const char *what) {
    if (!url || !*url)
        return d_fail(d, v, "url for %s is empty", what);
    if (!url_valid(url, 0))
        return d_fail(d, url_node, "url for %s is not a valid http or https URL: \"%.100s\"", what, url);
    return 0;
}

static int d_remote_write(dec *d, const ynode *v, config_remote_write *w) {
    int rc;
    if (v->kind != YAMLTREE_MAP)
        return d_fail(d, v, "expected a map for remote_write, got %s",
                      v->is_null ? "nothing" : yamltree_kind_name(v));
    w->remote_timeout_ms = 30000;
    w->queue = (config_queue){10000, 50, 1, 2000, 5000, 30, 5000, 0, 0};
    w->metadata = (config_metadata){1, 60000, 2000};
    http_defaults(&w->http, 0);
    http_tmp t;
    memset(&t, 0, sizeof t);
    const ynode *url_node = v;
    for (size_t i = 0; i < v->n; i++) {
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        const char *key = NULL;
        int handled;
        if ((rc = d_key(d, k, &key)) != 0)
            return rc;
        if ((rc = d_http_key(d, k, val, &w->http, &t, &handled)) != 0)
            return rc;
        if (handled)
            continue;
        if (strcmp(key, "url") == 0)
            rc = d_string(d, key, val, &w->url), url_node = val;
        else if (strcmp(key, "name") == 0)
            rc = d_string(d, key, val, &w->name);
        else if (strcmp(key, "remote_timeout") == 0)
            rc = d_duration(d, key, val, &w->remote_timeout_ms);
        else if (strcmp(key, "headers") == 0)
            rc = d_headers(d, val, &w->headers, &w->nheaders);
        else if (strcmp(key, "write_relabel_configs") == 0)
            rc = d_relabel_list(d, key, val, &w->write_relabel_configs, &w->nwrite_relabel_configs);
        else if (strcmp(key, "send_exemplars") == 0)
            rc = d_bool(d, key, val, &w->send_exemplars);
        else if (strcmp(key, "send_native_histograms") == 0)
            rc = d_bool(d, key, val, &w->send_native_histograms);
        else if (strcmp(key, "protobuf_message") == 0) {
            if ((rc = d_string(d, key, val, &w->protobuf_message)) == 0 && w->protobuf_message &&
                strcmp(w->protobuf_message, "prometheus.WriteRequest") != 0 &&
                strcmp(w->protobuf_message, "io.prometheus.write.v2.Request") != 0)
                rc = d_fail(
                    d, val,
                    "unknown remote write protobuf message %.100s, supported: prometheus.WriteRequest, "
                    "io.prometheus.write.v2.Request",
                    w->protobuf_message);
        } else if (strcmp(key, "queue_config") == 0)
            rc = d_queue(d, val, &w->queue);
        else if (strcmp(key, "metadata_config") == 0)
            rc = d_metadata(d, val, &w->metadata);
        else
            rc = d_unknown(d, k, "remote_write");
        if (rc)
            return rc;
    }
    if ((rc = check_url(d, v, url_node, w->url, "remote_write")) != 0)
        return rc;
    if (w->name && !*w->name)
        w->name = NULL;
    if (!w->protobuf_message && !(w->protobuf_message = d_strdup(d, "prometheus.WriteRequest")))
        return d_oom(d);
    return http_finish(d, &w->http, &t);
}

static int d_remote_read(dec *d, const ynode *v, config_remote_read *r) {
    int rc;
    if (v->kind != YAMLTREE_MAP)
        return d_fail(d, v, "expected a map for remote_read, got %s",
                      v->is_null ? "nothing" : yamltree_kind_name(v));
    r->remote_timeout_ms = 60000;
    r->filter_external_labels = 1;
    http_defaults(&r->http, 1);
    http_tmp t;
    memset(&t, 0, sizeof t);
    const ynode *url_node = v;
    for (size_t i = 0; i < v->n; i++) {
        const ynode *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        const char *key = NULL;
        int handled;
        if ((rc = d_key(d, k, &key)) != 0)
            return rc;
        if ((rc = d_http_key(d, k, val, &r->http, &t, &handled)) != 0)
            return rc;
        if (handled)
            continue;
        if (strcmp(key, "url") == 0)
            rc = d_string(d, key, val, &r->url), url_node = val;
        else if (strcmp(key, "name") == 0)
            rc = d_string(d, key, val, &r->name);
        else if (strcmp(key, "remote_timeout") == 0)
            rc = d_duration(d, key, val, &r->remote_timeout_ms);
        else if (strcmp(key, "headers") == 0)
            rc = d_headers(d, val, &r->headers, &r->nheaders);
        else if (strcmp(key, "required_matchers") == 0)
            rc = d_label_map(d, key, val, 1, &r->required_matchers, &r->nrequired_matchers);
        else if (strcmp(key, "read_recent") == 0)
            rc = d_bool(d, key, val, &r->read_recent);
        else if (strcmp(key, "filter_external_labels") == 0)
            rc = d_bool(d, key, val, &r->filter_external_labels);
        else
            rc = d_unknown(d, k, "remote_read");
        if (rc)
            return rc;
    }
    if ((rc = check_url(d, v, url_node, r->url, "remote_read")) != 0)
        return rc;
    if (r->name && !*r->name)
        r->name = NULL;
    return http_finish(d, &r->http, &t);
}

/* ---- the document --------------------------------------------------------- */

static int d_rule_files(dec *d, const ynode *v, config *c) {
    int rc = d_string_list(d, "rule_files", v, &c->rule_files, &c->nrule_files);
    if (rc)
        return rc;
    for (size_t i = 0; i < c->nrule_files; i++) {
        /* a glob whose character class never closes can match nothing */
        const char *p = c->rule_files[i];
        int open = 0;
        for (; *p; p++) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '[')
                open = 1;
            else if (*p == ']')
                open = 0;
        }
        if (open)
            return d_fail(d, v->kids[i], "invalid rule file path \"%.100s\"", c->rule_files[i]);
        if (!(c->rule_files[i] = d_path(d, c->rule_files[i])))
            return d_oom(d);
    }
    return 0;
}

typedef struct named {
    const char *name;
    size_t idx;
} named;

static int cmp_named(const void *pa, const void *pb) {
    const named *a = pa, *b = pb;
    int c = strcmp(a->name, b->name);
    if (c)
        return c;
    return a->idx < b->idx ? -1 : (a->idx > b->idx);
}

/* The first index whose name repeats an earlier entry's (NULL names never
 * repeat), n when none does, or SIZE_MAX when out of memory.  O(n log n):
 * thousands of jobs must not cost a quadratic check. */
static size_t first_dup(const void *base, size_t n, size_t stride, size_t name_off) {
    named *v = n ? malloc(n * sizeof *v) : NULL;
    size_t m = 0, best = n;
    if (n && !v)
        return SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        const char *name = *(const char *const *)((const char *)base + i * stride + name_off);
        if (name)
            v[m++] = (named){name, i};
    }
    if (m < 2) {
        free(v);
        return n;
    }
    qsort(v, m, sizeof *v, cmp_named);
    for (size_t i = 1; i < m; i++)
        if (strcmp(v[i].name, v[i - 1].name) == 0 && v[i].idx < best &&
            (i < 2 || strcmp(v[i - 2].name, v[i].name) != 0))
            best = v[i].idx;
    free(v);
    return best;
}

static int d_config(dec *d, const ynode *root, config *c) {
    int rc;
    d->global = &c->global;
    if (root && root->kind != YAMLTREE_MAP && !root->is_null)
        return d_fail(d, root, "expected a map at the top level, got %s", yamltree_kind_name(root));
    size_t n = root ? n_of(root) : 0;
    /* global first: the rest inherits from it */
    for (size_t i = 0; i < n; i++) {
        const ynode *k = root->kids[2 * i];
        const char *key = NULL;
        if ((rc = d_key(d, k, &key)) != 0)
            return rc;
        if (strcmp(key, "global") == 0 && (rc = d_global(d, root->kids[2 * i + 1], &c->global)) != 0)
            return rc;
    }
    if ((rc = global_defaults(d, &c->global)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const ynode *k = root->kids[2 * i], *v = root->kids[2 * i + 1];
        const char *key = k->str;
        rc = 0;
        if (strcmp(key, "global") == 0) {
            continue;
        } else if (strcmp(key, "rule_files") == 0) {
            rc = d_rule_files(d, v, c);
        } else if (strcmp(key, "scrape_configs") == 0) {
            if ((rc = d_expect_seq(d, v, key)) != 0)
                return rc;
            size_t cnt = n_of(v);
            c->scrape_configs = d_array(d, cnt, sizeof *c->scrape_configs);
            if (cnt && !c->scrape_configs)
                return d_oom(d);
            c->nscrape_configs = cnt;
            for (size_t j = 0; j < cnt; j++) {
                if ((rc = d_scrape(d, v->kids[j], &c->scrape_configs[j])) != 0)
                    return rc;
            }
            size_t dup = first_dup(c->scrape_configs, cnt, sizeof *c->scrape_configs,
                                   offsetof(scrape_config, job_name));
            if (dup == SIZE_MAX)
                return d_oom(d);
            if (dup < cnt)
                return d_fail(d, v->kids[dup], "found multiple scrape configs with job name \"%.100s\"",
                              c->scrape_configs[dup].job_name);
        } else if (strcmp(key, "alerting") == 0) {
            rc = d_alerting(d, v, &c->alerting);
        } else if (strcmp(key, "remote_write") == 0) {
            if ((rc = d_expect_seq(d, v, key)) != 0)
                return rc;
            size_t cnt = n_of(v);
            c->remote_write = d_array(d, cnt, sizeof *c->remote_write);
            if (cnt && !c->remote_write)
                return d_oom(d);
            c->nremote_write = cnt;
            for (size_t j = 0; j < cnt; j++) {
                if ((rc = d_remote_write(d, v->kids[j], &c->remote_write[j])) != 0)
                    return rc;
            }
            size_t dup =
                first_dup(c->remote_write, cnt, sizeof *c->remote_write, offsetof(config_remote_write, name));
            if (dup == SIZE_MAX)
                return d_oom(d);
            if (dup < cnt)
                return d_fail(d, v->kids[dup], "found multiple remote write configs with job name \"%.100s\"",
                              c->remote_write[dup].name);
        } else if (strcmp(key, "remote_read") == 0) {
            if ((rc = d_expect_seq(d, v, key)) != 0)
                return rc;
            size_t cnt = n_of(v);
            c->remote_read = d_array(d, cnt, sizeof *c->remote_read);
            if (cnt && !c->remote_read)
                return d_oom(d);
            c->nremote_read = cnt;
            for (size_t j = 0; j < cnt; j++) {
                if ((rc = d_remote_read(d, v->kids[j], &c->remote_read[j])) != 0)
                    return rc;
            }
            size_t dup =
                first_dup(c->remote_read, cnt, sizeof *c->remote_read, offsetof(config_remote_read, name));
            if (dup == SIZE_MAX)
                return d_oom(d);
            if (dup < cnt)
                return d_fail(d, v->kids[dup], "found multiple remote read configs with job name \"%.100s\"",
                              c->remote_read[dup].name);
        } else {
            rc = d_unknown(d, k, "the configuration");
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- public API -------------------------------------------------------------- */

config *config_retain(config *c) {
    if (c)
        __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

void config_free(config *c) {
    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (struct config_regex *e = c->regexes; e; e = e->next)
        pcre2_code_free(e->re);
    arena_free(&c->mem);
    free(c);
}

static int load(const char *name, const char *dir, const char *yaml, size_t len, config **out,
                kiln_err *err) {
    config *c = NULL;
    arena scratch;
    int rc;
    yamltree_node *root = NULL;

    arena_init(&scratch, 0);
    *out = NULL;
    if (!name)
        name = "<config>";
    if (len > CONFIG_MAX_BYTES) {
        rc = kiln_err_set(err, KILN_ELIMIT, "%s: the document is %zu bytes, more than the limit of %u bytes",
                          name, len, (unsigned)CONFIG_MAX_BYTES);
        goto fail;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", name);
        goto fail;
    }
    c->refs = 1;
    arena_init(&c->mem, 0);
    c->source = arena_strndup(&c->mem, yaml ? yaml : "", yaml ? len : 0);
    c->name = arena_strndup(&c->mem, name, strlen(name));
    if (!c->source || !c->name) {
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", name);
        goto fail;
    }
    c->source_len = yaml ? len : 0;
    c->source_hash = XXH3_64bits(c->source, c->source_len);

    if ((rc = yamltree_parse(name, c->source, c->source_len, &scratch, &root, err)) != 0)
        goto fail;
    dec d;
    memset(&d, 0, sizeof d);
    d.name = name;
    d.dir = dir;
    d.a = &c->mem;
    d.err = err;
    d.c = c;
    rc = d_config(&d, root, c);
    free(d.tab);
    if (rc)
        goto fail;
    arena_free(&scratch);
    *out = c;
    return 0;

fail:
    arena_free(&scratch);
    config_free(c);
    return rc;
}

int config_load_string(const char *name, const char *yaml, size_t len, config **out, kiln_err *err) {
    return load(name, NULL, yaml, len, out, err);
}

/* Reads a whole document of at most CONFIG_MAX_BYTES; *data is NUL-terminated. */
static int read_doc(const char *path, char **data, size_t *len, kiln_err *err) {
    struct stat st;
    int rc = 0;
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return kiln_err_set(err, errno == ENOENT ? KILN_ENOENT : KILN_EIO, "open %s: %s", path,
                            strerror(errno));
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = kiln_err_set(err, KILN_EIO, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > CONFIG_MAX_BYTES) {
        rc = kiln_err_set(err, KILN_ELIMIT, "%s: the document is %lld bytes, more than the limit of %u bytes",
                          path, (long long)st.st_size, (unsigned)CONFIG_MAX_BYTES);
        goto out;
    }
    if (!(*data = malloc((size_t)st.st_size + 1))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    *len = fread(*data, 1, (size_t)st.st_size, f);
    (*data)[*len] = 0;
    if (ferror(f)) {
        rc = kiln_err_set(err, KILN_EIO, "read %s: %s", path, strerror(errno));
        free(*data);
        *data = NULL;
    }
out:
    fclose(f);
    return rc;
}

int config_load_file(const char *path, config **out, kiln_err *err) {
    char *data = NULL, *dir = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = read_doc(path, &data, &len, err);
    if (rc != 0)
        return rc;
    const char *slash = strrchr(path, '/');
    if (slash) {
        size_t dl = slash == path ? 1 : (size_t)(slash - path);
        if (!(dir = strndup(path, dl))) {
            free(data);
            return kiln_err_set(err, KILN_ENOMEM, "%s: out of memory", path);
        }
    }
    rc = load(path, dir, data, len, out, err);
    free(dir);
    free(data);
    return rc;
}

int config_load_targets(const char *path, arena *a, config_static **out, size_t *n, kiln_err *err) {
    char *data = NULL;
    size_t len = 0;
    arena scratch;
    yamltree_node *root = NULL;
    *out = NULL;
    *n = 0;
    int rc = read_doc(path, &data, &len, err);
    if (rc != 0)
        return rc;
    arena_init(&scratch, 0);
    if ((rc = yamltree_parse(path, data, len, &scratch, &root, err)) == 0 && root) {
        dec d;
        memset(&d, 0, sizeof d);
        d.name = path;
        d.a = a;
        d.err = err;
        rc = d_static_list(&d, root, out, n);
    }
    arena_free(&scratch);
    free(data);
    return rc;
}

const char *config_default_yaml(void) {
    return "# kiln's built-in configuration, used when no configuration file exists.\n"
           "global:\n"
           "  scrape_interval: 15s\n"
           "  evaluation_interval: 15s\n"
           "\n"
           "scrape_configs:\n"
           "  # kiln scrapes its own /metrics.\n"
           "  - job_name: kiln\n"
           "    scrape_interval: 15s\n"
           "    static_configs:\n"
           "      - targets: [\"localhost:9090\"]\n";
}

/* ---- equality ------------------------------------------------------------- */

static int str_eq(const char *a, const char *b) {
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

static int strs_eq(char *const *a, size_t na, char *const *b, size_t nb) {
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (!str_eq(a[i], b[i]))
            return 0;
    return 1;
}

static int labels_eq(const config_label *a, size_t na, const config_label *b, size_t nb) {
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (!str_eq(a[i].name, b[i].name) || !str_eq(a[i].value, b[i].value))
            return 0;
    return 1;
}

static int relabels_eq(const config_relabel *a, size_t na, const config_relabel *b, size_t nb) {
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++) {
        const config_relabel *x = &a[i], *y = &b[i];
        if (!strs_eq(x->source_labels, x->nsource_labels, y->source_labels, y->nsource_labels) ||
            !str_eq(x->separator, y->separator) || !str_eq(x->target_label, y->target_label) ||
            !str_eq(x->regex, y->regex) || x->modulus != y->modulus ||
            !str_eq(x->replacement, y->replacement) || x->action != y->action)
            return 0;
    }
    return 1;
}

static int http_eq(const config_http *a, const config_http *b) {
    return a->has_basic_auth == b->has_basic_auth && str_eq(a->username, b->username) &&
           str_eq(a->password, b->password) && str_eq(a->password_file, b->password_file) &&
           a->has_authorization == b->has_authorization && str_eq(a->auth_type, b->auth_type) &&
           str_eq(a->credentials, b->credentials) && str_eq(a->credentials_file, b->credentials_file) &&
           str_eq(a->tls.ca_file, b->tls.ca_file) && str_eq(a->tls.cert_file, b->tls.cert_file) &&
           str_eq(a->tls.key_file, b->tls.key_file) && str_eq(a->tls.server_name, b->tls.server_name) &&
           a->tls.insecure_skip_verify == b->tls.insecure_skip_verify &&
           str_eq(a->tls.min_version, b->tls.min_version) && str_eq(a->proxy_url, b->proxy_url) &&
           a->follow_redirects == b->follow_redirects && a->enable_http2 == b->enable_http2;
}

int config_scrape_equal(const scrape_config *a, const scrape_config *b) {
    if (a == b)
        return 1;
    if (!a || !b)
        return 0;
    if (!str_eq(a->job_name, b->job_name) || a->honor_labels != b->honor_labels ||
        a->honor_timestamps != b->honor_timestamps ||
        a->track_timestamps_staleness != b->track_timestamps_staleness ||
        a->scrape_interval_ms != b->scrape_interval_ms || a->scrape_timeout_ms != b->scrape_timeout_ms ||
        !strs_eq(a->scrape_protocols, a->nscrape_protocols, b->scrape_protocols, b->nscrape_protocols) ||
        !str_eq(a->metrics_path, b->metrics_path) || !str_eq(a->scheme, b->scheme) ||
        !http_eq(&a->http, &b->http) || a->body_size_limit != b->body_size_limit ||
        a->sample_limit != b->sample_limit || a->label_limit != b->label_limit ||
        a->label_name_length_limit != b->label_name_length_limit ||
        a->label_value_length_limit != b->label_value_length_limit || a->target_limit != b->target_limit)
        return 0;
    if (a->nparams != b->nparams || a->nstatic_configs != b->nstatic_configs ||
        a->nfile_sd_configs != b->nfile_sd_configs)
        return 0;
    for (size_t i = 0; i < a->nparams; i++)
        if (!str_eq(a->params[i].name, b->params[i].name) ||
            !strs_eq(a->params[i].values, a->params[i].nvalues, b->params[i].values, b->params[i].nvalues))
            return 0;
    for (size_t i = 0; i < a->nstatic_configs; i++)
        if (!strs_eq(a->static_configs[i].targets, a->static_configs[i].ntargets,
                     b->static_configs[i].targets, b->static_configs[i].ntargets) ||
            !labels_eq(a->static_configs[i].labels, a->static_configs[i].nlabels, b->static_configs[i].labels,
                       b->static_configs[i].nlabels))
            return 0;
    for (size_t i = 0; i < a->nfile_sd_configs; i++)
        if (!strs_eq(a->file_sd_configs[i].files, a->file_sd_configs[i].nfiles, b->file_sd_configs[i].files,
                     b->file_sd_configs[i].nfiles) ||
            a->file_sd_configs[i].refresh_interval_ms != b->file_sd_configs[i].refresh_interval_ms)
            return 0;
    return relabels_eq(a->relabel_configs, a->nrelabel_configs, b->relabel_configs, b->nrelabel_configs) &&
           relabels_eq(a->metric_relabel_configs, a->nmetric_relabel_configs, b->metric_relabel_configs,
                       b->nmetric_relabel_configs);
}
