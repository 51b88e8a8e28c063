/*
 * emit.c - writes a loaded config back as YAML, defaults filled in, in the
 * shape and key order Prometheus' /api/v1/status/config shows: block style,
 * list items at their parent key's indentation ("- job_name: x"),
 * source_labels in flow style, optional fields left out when unset, and
 * secrets (passwords, credentials) written as `<secret>`.
 *
 * Strings are written plain when YAML would read them back as the same
 * string, otherwise double-quoted with escapes, so config_load_string reads
 * the output back into an equal config.
 *
 * Threading: reads the config only; safe on any thread.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"

typedef struct em {
    buf *b;
    int rc;
    int dash; /* the next line starts a list item: "- " before its first key */
} em;

static void put(em *e, const char *s) {
    if (!e->rc)
        e->rc = buf_puts(e->b, s);
}

static void putn(em *e, const char *s, size_t n) {
    if (!e->rc)
        e->rc = buf_append(e->b, s, n);
}

/* Starts a line at indentation ind (a pending list dash takes the last two
 * columns). */
static void line(em *e, int ind) {
    static const char spaces[] = "                                                                ";
    if (e->dash) {
        putn(e, spaces, (size_t)(ind >= 2 ? ind - 2 : 0));
        put(e, "- ");
        e->dash = 0;
    } else {
        putn(e, spaces, (size_t)ind);
    }
}

static int reserved_word(const char *s) {
    static const char *const words[] = {"true", "false", "yes",  "no", "on", "off",
                                        "y",    "n",     "null", "~",  NULL};
    for (size_t i = 0; words[i]; i++)
        if (strcasecmp(s, words[i]) == 0)
            return 1;
    return 0;
}

/* Decodes one UTF-8 code point at s (valid UTF-8 assumed); returns its length. */
static size_t utf8_next(const unsigned char *s, unsigned *cp) {
    if (s[0] < 0x80)
        return *cp = s[0], 1;
    if ((s[0] & 0xE0) == 0xC0)
        return *cp = ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu), 2;
    if ((s[0] & 0xF0) == 0xE0)
        return *cp = ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu), 3;
    return *cp = ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu), 4;
}

/* What libyaml accepts as a printable character. */
static int printable(unsigned cp) {
    return (cp >= 0x20 && cp <= 0x7E) || cp == 0xA0 || (cp > 0xA0 && cp <= 0xD7FF) ||
           (cp >= 0xE000 && cp <= 0xFFFD && cp != 0xFEFF) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

static int needs_quotes(const char *s, int flow) {
    size_t n = strlen(s);
    if (n == 0 || reserved_word(s) || strcmp(s, "<<") == 0) /* "<<" would read back as a merge key */
        return 1;
    if (strchr("-?:,[]{}#&*!|>'\"%@` ", s[0]))
        return 1;
    if (s[n - 1] == ' ' || s[n - 1] == ':')
        return 1;
    /* anything a YAML 1.1 reader could take for a number */
    if ((s[0] >= '0' && s[0] <= '9') || ((s[0] == '+' || s[0] == '.') && n > 1))
        return 1;
    if (strstr(s, ": ") || strstr(s, " #"))
        return 1;
    if (flow && strpbrk(s, ",[]{}"))
        return 1;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned cp;
        p += utf8_next(p, &cp);
        if (!printable(cp) || cp >= 0x80)
            return 1;
    }
    return 0;
}

static void scalar(em *e, const char *s, int flow) {
    if (!needs_quotes(s, flow)) {
        put(e, s);
        return;
    }
    put(e, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned cp;
        size_t l = utf8_next(p, &cp);
        char esc[16];
        if (cp == '"' || cp == '\\') {
            esc[0] = '\\', esc[1] = (char)cp, esc[2] = 0;
            put(e, esc);
        } else if (cp == '\n') {
            put(e, "\\n");
        } else if (cp == '\t') {
            put(e, "\\t");
        } else if (!printable(cp)) {
            if (cp <= 0xFF)
                snprintf(esc, sizeof esc, "\\x%02X", cp);
            else if (cp <= 0xFFFF)
                snprintf(esc, sizeof esc, "\\u%04X", cp);
            else
                snprintf(esc, sizeof esc, "\\U%08X", cp);
            put(e, esc);
        } else {
            putn(e, (const char *)p, l);
        }
        p += l;
    }
    put(e, "\"");
}

static void key(em *e, int ind, const char *k) {
    line(e, ind);
    put(e, k);
    put(e, ":");
}

static void kv_str(em *e, int ind, const char *k, const char *v) {
    if (!v)
        return;
    key(e, ind, k);
    put(e, " ");
    scalar(e, v, 0);
    put(e, "\n");
}

static void kv_secret(em *e, int ind, const char *k, const char *v) {
    if (v && *v)
        kv_str(e, ind, k, "<secret>");
}

static void kv_bool(em *e, int ind, const char *k, int v) {
    key(e, ind, k);
    put(e, v ? " true\n" : " false\n");
}

static void kv_u64(em *e, int ind, const char *k, uint64_t v) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, " %llu\n", (unsigned long long)v);
    key(e, ind, k);
    put(e, tmp);
}

static void kv_dur(em *e, int ind, const char *k, int64_t ms) {
    char tmp[64];
    duration_format(ms, tmp, sizeof tmp);
    key(e, ind, k);
    put(e, " ");
    put(e, tmp);
    put(e, "\n");
}

static void kv_size(em *e, int ind, const char *k, uint64_t v) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0;
    uint64_t n = v;
    while (u < 6 && n && n % 1024 == 0)
        n /= 1024, u++;
    char tmp[48];
    snprintf(tmp, sizeof tmp, " %llu%s\n", (unsigned long long)n, units[u]);
    key(e, ind, k);
    put(e, tmp);
}

static void kv_strlist(em *e, int ind, const char *k, char *const *v, size_t n) {
    if (!n)
        return;
    key(e, ind, k);
    put(e, "\n");
    for (size_t i = 0; i < n; i++) {
        line(e, ind);
        put(e, "- ");
        scalar(e, v[i], 0);
        put(e, "\n");
    }
}

static void kv_labels(em *e, int ind, const char *k, const config_label *l, size_t n) {
    if (!n)
        return;
    key(e, ind, k);
    put(e, "\n");
    for (size_t i = 0; i < n; i++) {
        line(e, ind + 2);
        scalar(e, l[i].name, 0);
        put(e, ": ");
        scalar(e, l[i].value, 0);
        put(e, "\n");
    }
}

static void relabels(em *e, int ind, const char *k, const config_relabel *r, size_t n) {
    if (!n)
        return;
    key(e, ind, k);
    put(e, "\n");
    for (size_t i = 0; i < n; i++) {
        e->dash = 1;
        if (r[i].nsource_labels) {
            key(e, ind + 2, "source_labels");
            put(e, " [");
            for (size_t j = 0; j < r[i].nsource_labels; j++) {
                if (j)
                    put(e, ", ");
                scalar(e, r[i].source_labels[j], 1);
            }
            put(e, "]\n");
        }
        kv_str(e, ind + 2, "separator", r[i].separator);
        kv_str(e, ind + 2, "regex", r[i].regex);
        if (r[i].modulus)
            kv_u64(e, ind + 2, "modulus", r[i].modulus);
        if (r[i].target_label && *r[i].target_label)
            kv_str(e, ind + 2, "target_label", r[i].target_label);
        kv_str(e, ind + 2, "replacement", r[i].replacement);
        kv_str(e, ind + 2, "action", config_relabel_action_name(r[i].action));
    }
}

static void http(em *e, int ind, const config_http *h) {
    if (h->has_basic_auth && !h->username && !h->password && !h->password_file) {
        key(e, ind, "basic_auth");
        put(e, " {}\n");
    } else if (h->has_basic_auth) {
        key(e, ind, "basic_auth");
        put(e, "\n");
        kv_str(e, ind + 2, "username", h->username);
        kv_secret(e, ind + 2, "password", h->password);
        kv_str(e, ind + 2, "password_file", h->password_file);
    }
    if (h->has_authorization) {
        key(e, ind, "authorization");
        put(e, "\n");
        kv_str(e, ind + 2, "type", h->auth_type);
        kv_secret(e, ind + 2, "credentials", h->credentials);
        kv_str(e, ind + 2, "credentials_file", h->credentials_file);
    }
    const config_tls *t = &h->tls;
    if (t->ca_file || t->cert_file || t->key_file || t->server_name || t->insecure_skip_verify ||
        t->min_version) {
        key(e, ind, "tls_config");
        put(e, "\n");
        kv_str(e, ind + 2, "ca_file", t->ca_file);
        kv_str(e, ind + 2, "cert_file", t->cert_file);
        kv_str(e, ind + 2, "key_file", t->key_file);
        kv_str(e, ind + 2, "server_name", t->server_name);
        kv_bool(e, ind + 2, "insecure_skip_verify", t->insecure_skip_verify);
        kv_str(e, ind + 2, "min_version", t->min_version);
    }
    kv_str(e, ind, "proxy_url", h->proxy_url);
    kv_bool(e, ind, "follow_redirects", h->follow_redirects);
    kv_bool(e, ind, "enable_http2", h->enable_http2);
}

static void statics(em *e, int ind, const config_static *s, size_t n) {
    if (!n)
        return;
    key(e, ind, "static_configs");
    put(e, "\n");
    for (size_t i = 0; i < n; i++) {
        e->dash = 1;
        if (!s[i].ntargets && !s[i].nlabels) {
            line(e, ind + 2);
            put(e, "targets: []\n");
            continue;
        }
        if (s[i].ntargets)
            kv_strlist(e, ind + 2, "targets", s[i].targets, s[i].ntargets);
        kv_labels(e, ind + 2, "labels", s[i].labels, s[i].nlabels);
    }
}

static void file_sds(em *e, int ind, const config_file_sd *f, size_t n) {
    if (!n)
        return;
    key(e, ind, "file_sd_configs");
    put(e, "\n");
    for (size_t i = 0; i < n; i++) {
        e->dash = 1;
        kv_strlist(e, ind + 2, "files", f[i].files, f[i].nfiles);
        kv_dur(e, ind + 2, "refresh_interval", f[i].refresh_interval_ms);
    }
}

static void global(em *e, const config_global *g) {
    put(e, "global:\n");
    kv_dur(e, 2, "scrape_interval", g->scrape_interval_ms);
    kv_dur(e, 2, "scrape_timeout", g->scrape_timeout_ms);
    kv_strlist(e, 2, "scrape_protocols", g->scrape_protocols, g->nscrape_protocols);
    kv_dur(e, 2, "evaluation_interval", g->evaluation_interval_ms);
    if (g->rule_query_offset_ms)
        kv_dur(e, 2, "rule_query_offset", g->rule_query_offset_ms);
    kv_labels(e, 2, "external_labels", g->external_labels, g->nexternal_labels);
    kv_str(e, 2, "query_log_file", g->query_log_file);
    if (g->body_size_limit)
        kv_size(e, 2, "body_size_limit", g->body_size_limit);
    if (g->sample_limit)
        kv_u64(e, 2, "sample_limit", g->sample_limit);
    if (g->label_limit)
        kv_u64(e, 2, "label_limit", g->label_limit);
    if (g->label_name_length_limit)
        kv_u64(e, 2, "label_name_length_limit", g->label_name_length_limit);
    if (g->label_value_length_limit)
        kv_u64(e, 2, "label_value_length_limit", g->label_value_length_limit);
    if (g->target_limit)
        kv_u64(e, 2, "target_limit", g->target_limit);
}

static void scrape(em *e, const scrape_config *s) {
    e->dash = 1;
    kv_str(e, 2, "job_name", s->job_name);
    if (s->honor_labels)
        kv_bool(e, 2, "honor_labels", 1);
    kv_bool(e, 2, "honor_timestamps", s->honor_timestamps);
    kv_bool(e, 2, "track_timestamps_staleness", s->track_timestamps_staleness);
    if (s->nparams) {
        key(e, 2, "params");
        put(e, "\n");
        for (size_t i = 0; i < s->nparams; i++) {
            line(e, 4);
            scalar(e, s->params[i].name, 0);
            put(e, ":");
            if (!s->params[i].nvalues) {
                put(e, " []\n");
                continue;
            }
            put(e, "\n");
            for (size_t j = 0; j < s->params[i].nvalues; j++) {
                line(e, 4);
                put(e, "- ");
                scalar(e, s->params[i].values[j], 0);
                put(e, "\n");
            }
        }
    }
    kv_dur(e, 2, "scrape_interval", s->scrape_interval_ms);
    kv_dur(e, 2, "scrape_timeout", s->scrape_timeout_ms);
    kv_strlist(e, 2, "scrape_protocols", s->scrape_protocols, s->nscrape_protocols);
    kv_str(e, 2, "metrics_path", s->metrics_path);
    kv_str(e, 2, "scheme", s->scheme);
    if (s->body_size_limit)
        kv_size(e, 2, "body_size_limit", s->body_size_limit);
    if (s->sample_limit)
        kv_u64(e, 2, "sample_limit", s->sample_limit);
    if (s->target_limit)
        kv_u64(e, 2, "target_limit", s->target_limit);
    if (s->label_limit)
        kv_u64(e, 2, "label_limit", s->label_limit);
    if (s->label_name_length_limit)
        kv_u64(e, 2, "label_name_length_limit", s->label_name_length_limit);
    if (s->label_value_length_limit)
        kv_u64(e, 2, "label_value_length_limit", s->label_value_length_limit);
    http(e, 2, &s->http);
    relabels(e, 2, "relabel_configs", s->relabel_configs, s->nrelabel_configs);
    relabels(e, 2, "metric_relabel_configs", s->metric_relabel_configs, s->nmetric_relabel_configs);
    file_sds(e, 2, s->file_sd_configs, s->nfile_sd_configs);
    statics(e, 2, s->static_configs, s->nstatic_configs);
}

static void alerting(em *e, const config_alerting *a) {
    if (!a->nalert_relabel_configs && !a->nalertmanagers)
        return;
    put(e, "alerting:\n");
    relabels(e, 2, "alert_relabel_configs", a->alert_relabel_configs, a->nalert_relabel_configs);
    if (!a->nalertmanagers)
        return;
    put(e, "  alertmanagers:\n");
    for (size_t i = 0; i < a->nalertmanagers; i++) {
        const config_alertmanager *am = &a->alertmanagers[i];
        e->dash = 1;
        http(e, 4, &am->http);
        kv_str(e, 4, "scheme", am->scheme);
        kv_str(e, 4, "path_prefix", am->path_prefix);
        kv_dur(e, 4, "timeout", am->timeout_ms);
        kv_str(e, 4, "api_version", am->api_version);
        relabels(e, 4, "relabel_configs", am->relabel_configs, am->nrelabel_configs);
        relabels(e, 4, "alert_relabel_configs", am->alert_relabel_configs, am->nalert_relabel_configs);
        file_sds(e, 4, am->file_sd_configs, am->nfile_sd_configs);
        statics(e, 4, am->static_configs, am->nstatic_configs);
    }
}

static void remote_write(em *e, const config_remote_write *w) {
    e->dash = 1;
    kv_str(e, 2, "url", w->url);
    kv_dur(e, 2, "remote_timeout", w->remote_timeout_ms);
    kv_labels(e, 2, "headers", w->headers, w->nheaders);
    kv_str(e, 2, "name", w->name);
    relabels(e, 2, "write_relabel_configs", w->write_relabel_configs, w->nwrite_relabel_configs);
    kv_bool(e, 2, "send_exemplars", w->send_exemplars);
    kv_bool(e, 2, "send_native_histograms", w->send_native_histograms);
    kv_str(e, 2, "protobuf_message", w->protobuf_message);
    http(e, 2, &w->http);
    put(e, "  queue_config:\n");
    kv_u64(e, 4, "capacity", w->queue.capacity);
    kv_u64(e, 4, "max_shards", w->queue.max_shards);
    kv_u64(e, 4, "min_shards", w->queue.min_shards);
    kv_u64(e, 4, "max_samples_per_send", w->queue.max_samples_per_send);
    kv_dur(e, 4, "batch_send_deadline", w->queue.batch_send_deadline_ms);
    kv_dur(e, 4, "min_backoff", w->queue.min_backoff_ms);
    kv_dur(e, 4, "max_backoff", w->queue.max_backoff_ms);
    if (w->queue.retry_on_http_429)
        kv_bool(e, 4, "retry_on_http_429", 1);
    if (w->queue.sample_age_limit_ms)
        kv_dur(e, 4, "sample_age_limit", w->queue.sample_age_limit_ms);
    put(e, "  metadata_config:\n");
    kv_bool(e, 4, "send", w->metadata.send);
    kv_dur(e, 4, "send_interval", w->metadata.send_interval_ms);
    kv_u64(e, 4, "max_samples_per_send", w->metadata.max_samples_per_send);
}

static void remote_read(em *e, const config_remote_read *r) {
    e->dash = 1;
    kv_str(e, 2, "url", r->url);
    kv_dur(e, 2, "remote_timeout", r->remote_timeout_ms);
    kv_labels(e, 2, "headers", r->headers, r->nheaders);
    kv_bool(e, 2, "read_recent", r->read_recent);
    kv_str(e, 2, "name", r->name);
    kv_labels(e, 2, "required_matchers", r->required_matchers, r->nrequired_matchers);
    kv_bool(e, 2, "filter_external_labels", r->filter_external_labels);
    http(e, 2, &r->http);
}

int config_to_yaml(const config *c, buf *out) {
    em e = {out, 0, 0};
    if (!c)
        return KILN_EINVAL;
    global(&e, &c->global);
    alerting(&e, &c->alerting);
    kv_strlist(&e, 0, "rule_files", c->rule_files, c->nrule_files);
    if (c->nscrape_configs) {
        put(&e, "scrape_configs:\n");
        for (size_t i = 0; i < c->nscrape_configs; i++)
            scrape(&e, &c->scrape_configs[i]);
    }
    if (c->nremote_write) {
        put(&e, "remote_write:\n");
        for (size_t i = 0; i < c->nremote_write; i++)
            remote_write(&e, &c->remote_write[i]);
    }
    if (c->nremote_read) {
        put(&e, "remote_read:\n");
        for (size_t i = 0; i < c->nremote_read; i++)
            remote_read(&e, &c->remote_read[i]);
    }
    return e.rc ? KILN_ENOMEM : 0;
}
