/*
 * sd_consul.c - consul_sd_configs: targets from Consul's catalog, as
 * Prometheus' discovery/consul does, with blocking queries.
 *
 * The catalog's services are watched with GET /v1/catalog/services
 * (?index=<X-Consul-Index of the last answer>&wait=2m, so the server holds
 * the request until something changed); each service the config wants
 * (`services`, all when empty, and every one of `tags`) is watched the
 * same way with GET /v1/health/service/<name> (?tag=...&node-meta=k:v).
 * A watch is issued again at most every refresh_interval, as Prometheus'
 * ticker does.  Each service is one target group (source: its name, group
 * labels __meta_consul_service and __meta_consul_dc), one target per
 * instance:
 *
 *   __address__                     service address (or the node's) : port
 *   __meta_consul_address           the node's address
 *   __meta_consul_node              the node's name
 *   __meta_consul_tags              the tags, joined and surrounded by tag_separator
 *   __meta_consul_service_address, _service_port, _service_id
 *   __meta_consul_health            the checks' aggregated status
 *   __meta_consul_namespace, _partition
 *   __meta_consul_metadata_<k>, _service_metadata_<k>, _tagged_address_<k>
 *
 * The datacenter, when the config does not name one, is the agent's
 * (GET /v1/agent/self, Config.Datacenter).  token goes in X-Consul-Token,
 * datacenter as ?dc=, namespace as ?ns=, partition as ?partition=, filter
 * on the catalog and health_filter on the health queries as ?filter=,
 * allow_stale as ?stale.  A failed request keeps the last good groups,
 * counts kiln_sd_consul_rpc_failures_total and is tried again after
 * CONSUL_RETRY_MS (or refresh_interval when shorter).
 *
 * Threading: the SD thread (sd.c), except the decoders (pure, any thread).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scrape/sd.h"

#define CONSUL_WAIT "2m"
#define CONSUL_TIMEOUT_MS (3 * 60 * 1000) /* the wait and Consul's jitter (wait/16) */
#define CONSUL_RETRY_MS 15000

typedef struct consul_svc {
    sd_provider *p;
    char *name;
    sd_req req;
    char index[32];
    int64_t due_ms;
    int wanted; /* in the last catalog answer */
} consul_svc;

typedef struct consul_sd {
    sd_req self, cat;
    char dc[256];
    int have_dc;
    char cat_index[32];
    int64_t self_due, cat_due;
    consul_svc **svcs;
    size_t nsvcs, capsvcs;
    char token_hdr[512];
    sd_gb gb;
} consul_sd;

/* ---- decoding ------------------------------------------------------------------- */

int sd_consul_services(const char *body, size_t len, arena *a, const char ***names, const json_val ***tags,
                       size_t *n, kiln_err *err) {
    json_val *root = NULL;
    *n = 0;
    int rc = json_parse(body, len, a, &root, err);
    if (rc != 0)
        return rc;
    if (root->type != JSON_OBJ)
        return kiln_err_set(err, KILN_EINVAL, "catalog services: expected an object");
    *names = root->n ? arena_alloc(a, root->n * sizeof **names) : NULL;
    *tags = root->n ? arena_alloc(a, root->n * sizeof **tags) : NULL;
    if (root->n && (!*names || !*tags))
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    for (size_t i = 0; i < root->n; i++) {
        const json_val *t = &root->kids[i];
        if (t->type != JSON_ARR && t->type != JSON_NULL)
            return kiln_err_set(err, KILN_EINVAL, "catalog services: the tags of %.100s are not a list",
                                root->keys[i]);
        for (size_t j = 0; t->type == JSON_ARR && j < t->n; j++)
            if (t->kids[j].type != JSON_STR)
                return kiln_err_set(err, KILN_EINVAL, "catalog services: a tag of %.100s is not a string",
                                    root->keys[i]);
        (*names)[i] = root->keys[i];
        (*tags)[i] = t;
    }
    *n = root->n;
    return 0;
}

/* The members of an object-valued member (Meta, TaggedAddresses) as labels
 * prefix<key>; values that are not strings are left out, as Go's decoder
 * into map[string]string would refuse the answer: they make it an error. */
static int map_labels(sd_gb *b, const json_val *obj, const char *key, const char *prefix, kiln_err *err) {
    const json_val *m = json_get(obj, key);
    if (!m || m->type == JSON_NULL)
        return 0;
    if (m->type != JSON_OBJ)
        return kiln_err_set(err, KILN_EINVAL, "health service: %s is not an object", key);
    for (size_t i = 0; i < m->n; i++) {
        const json_val *v = &m->kids[i];
        if (v->type == JSON_OBJ && !strcmp(key, "TaggedAddresses"))
            v = json_get(v, "Address"); /* Service.TaggedAddresses: {"lan": {"Address": ..., "Port": ...}} */
        if (!v || v->type != JSON_STR)
            return kiln_err_set(err, KILN_EINVAL, "health service: %s.%.100s is not a string", key,
                                m->keys[i]);
        sd_gb_tlabel_san(b, prefix, m->keys[i], v->str);
    }
    return 0;
}

static const char *str_member(const json_val *o, const char *key) {
    const char *s = json_get_str(o, key);
    return s ? s : "";
}

/* Consul's api.HealthChecks.AggregatedStatus. */
static const char *aggregated_status(const json_val *checks) {
    int passing = 0, warning = 0, critical = 0, maint = 0;
    for (size_t i = 0; checks && checks->type == JSON_ARR && i < checks->n; i++) {
        const json_val *c = &checks->kids[i];
        const char *id = str_member(c, "CheckID"), *st = str_member(c, "Status");
        if (!strcmp(id, "_node_maintenance") || !strncmp(id, "_service_maintenance:", 21)) {
            maint = 1;
            continue;
        }
        if (!strcmp(st, "passing"))
            passing = 1;
        else if (!strcmp(st, "warning"))
            warning = 1;
        else if (!strcmp(st, "critical"))
            critical = 1;
        else
            return "";
    }
    (void)passing;
    return maint ? "maintenance" : critical ? "critical" : warning ? "warning" : "passing";
}

int sd_consul_health(const char *body, size_t len, const char *service, const char *dc, const char *sep,
                     sd_gb *b, sd_tg **out, kiln_err *err) {
    *out = NULL;
    arena a;
    arena_init(&a, 0);
    json_val *root = NULL;
    int rc = json_parse(body, len, &a, &root, err);
    if (rc == 0 && root->type != JSON_ARR && root->type != JSON_NULL)
        rc = kiln_err_set(err, KILN_EINVAL, "health service: expected a list");
    sd_gb_reset(b);
    sd_gb_label(b, "__meta_consul_service", service);
    sd_gb_label(b, "__meta_consul_dc", dc);
    for (size_t i = 0; rc == 0 && root->type == JSON_ARR && i < root->n; i++) {
        const json_val *e = &root->kids[i], *node = json_get(e, "Node"), *svc = json_get(e, "Service");
        if (e->type != JSON_OBJ || !node || node->type != JSON_OBJ || !svc || svc->type != JSON_OBJ) {
            rc = kiln_err_set(err, KILN_EINVAL, "health service: entry %zu has no Node or Service object", i);
            break;
        }
        const json_val *port = json_get(svc, "Port"), *tags = json_get(svc, "Tags");
        if (port && port->type != JSON_NUM && port->type != JSON_NULL) {
            rc = kiln_err_set(err, KILN_EINVAL, "health service: entry %zu: Port is not a number", i);
            break;
        }
        long long pn = port && port->type == JSON_NUM ? (long long)port->num : 0;
        char pstr[32], addr[600];
        snprintf(pstr, sizeof pstr, "%lld", pn);
        const char *saddr = str_member(svc, "Address"), *naddr = str_member(node, "Address");
        const char *host = *saddr ? saddr : naddr;
        snprintf(addr, sizeof addr, strchr(host, ':') ? "[%.500s]:%s" : "%.500s:%s", host, pstr);
        buf tl = BUF_INIT;
        buf_puts(&tl, sep);
        for (size_t j = 0; tags && tags->type == JSON_ARR && j < tags->n; j++) {
            if (tags->kids[j].type != JSON_STR) {
                rc = kiln_err_set(err, KILN_EINVAL, "health service: entry %zu: a tag is not a string", i);
                break;
            }
            if (j)
                buf_puts(&tl, sep);
            buf_puts(&tl, tags->kids[j].str);
        }
        buf_puts(&tl, sep);
        buf_putc(&tl, 0);
        if (rc == 0 && buf_error(&tl))
            rc = kiln_err_set(err, KILN_ENOMEM, "out of memory");
        if (rc == 0) {
            sd_gb_target(b, addr);
            sd_gb_tlabel(b, "__meta_consul_address", naddr);
            sd_gb_tlabel(b, "__meta_consul_node", str_member(node, "Node"));
            sd_gb_tlabel(b, "__meta_consul_namespace", str_member(svc, "Namespace"));
            sd_gb_tlabel(b, "__meta_consul_partition", str_member(svc, "Partition"));
            sd_gb_tlabel(b, "__meta_consul_tags", tl.data);
            sd_gb_tlabel(b, "__meta_consul_service_address", saddr);
            sd_gb_tlabel(b, "__meta_consul_service_port", pstr);
            sd_gb_tlabel(b, "__meta_consul_service_id", str_member(svc, "ID"));
            sd_gb_tlabel(b, "__meta_consul_health", aggregated_status(json_get(e, "Checks")));
            rc = map_labels(b, node, "Meta", "__meta_consul_metadata_", err);
            if (rc == 0)
                rc = map_labels(b, svc, "Meta", "__meta_consul_service_metadata_", err);
            if (rc == 0)
                rc = map_labels(b, node, "TaggedAddresses", "__meta_consul_tagged_address_", err);
        }
        buf_free(&tl);
    }
    arena_free(&a);
    if (rc != 0) {
        sd_gb_reset(b);
        return rc;
    }
    if (!(*out = sd_gb_done(b, service)))
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    return 0;
}

/* ---- requests ------------------------------------------------------------------- */

/* scheme://server[/path_prefix]/v1/<path>?<common params><extra> */
static char *consul_url(const config_consul_sd *c, const char *path, const char *index, int health) {
    buf u = BUF_INIT;
    buf_printf(&u, "%s://%s", c->scheme, c->server);
    if (c->path_prefix)
        buf_printf(&u, "%s%s", c->path_prefix[0] == '/' ? "" : "/", c->path_prefix);
    buf_printf(&u, "/v1/%s?wait=" CONSUL_WAIT, path);
    if (index && *index)
        buf_printf(&u, "&index=%s", index);
    if (c->allow_stale)
        buf_puts(&u, "&stale=");
    const struct {
        const char *name, *value;
    } ps[] = {{"dc", c->datacenter},
              {"ns", c->namespace_},
              {"partition", c->partition},
              {"filter", health ? c->health_filter : c->filter}};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        if (ps[i].value) {
            char *e = curl_easy_escape(NULL, ps[i].value, 0);
            buf_printf(&u, "&%s=%s", ps[i].name, e ? e : "");
            curl_free(e);
        }
    for (size_t i = 0; i < c->nnode_meta; i++) {
        char *k = curl_easy_escape(NULL, c->node_meta[i].name, 0),
             *v = curl_easy_escape(NULL, c->node_meta[i].value, 0);
        buf_printf(&u, "&node-meta=%s:%s", k ? k : "", v ? v : "");
        curl_free(k);
        curl_free(v);
    }
    for (size_t i = 0; health && i < c->ntags; i++) {
        char *t = curl_easy_escape(NULL, c->tags[i], 0);
        buf_printf(&u, "&tag=%s", t ? t : "");
        curl_free(t);
    }
    buf_putc(&u, 0);
    if (buf_error(&u)) {
        buf_free(&u);
        return NULL;
    }
    return buf_steal(&u);
}

static void rpc_failed(sd_provider *p, const char *what, const char *e) {
    LOG_ERROR("Error refreshing service", "discovery=consul scrape_pool=%s request=%s err=%s", p->job, what,
              e);
    metric_add(sd_metric(p->rt, "kiln_sd_consul_rpc_failures_total", NULL), 1);
}

static int64_t retry_ms(const config_consul_sd *c) {
    return c->refresh_interval_ms < CONSUL_RETRY_MS ? c->refresh_interval_ms : CONSUL_RETRY_MS;
}

static int start_req(sd_provider *p, sd_req *r, const char *path, const char *index, int health) {
    consul_sd *d = p->state;
    const config_consul_sd *c = p->conf;
    char *url = consul_url(c, path, index, health);
    const char *hdrs[] = {"Accept: application/json", d->token_hdr[0] ? d->token_hdr : NULL, NULL};
    int rc = url ? sd_req_start(p->rt, r, url, &c->http, hdrs, CONSUL_TIMEOUT_MS) : KILN_ENOMEM;
    if (rc != 0)
        rpc_failed(p, path, r->err[0] ? r->err : "cannot start the request");
    free(url);
    return rc;
}

/* The X-Consul-Index of the answer into index; a blocking query's index
 * must grow: one that went backwards (a restarted server) starts again. */
static int take_index(sd_req *r, char *index, size_t n) {
    const char *h = sd_req_header(r, "X-Consul-Index");
    char old[32];
    snprintf(old, sizeof old, "%s", index);
    snprintf(index, n, "%s", h ? h : "");
    if (*old && *index && strtoull(index, NULL, 10) < strtoull(old, NULL, 10))
        index[0] = 0;
    return strcmp(old, index) != 0;
}

static void svc_done(sd_req *r, CURLcode res) {
    consul_svc *s = r->data;
    sd_provider *p = s->p;
    consul_sd *d = p->state;
    const config_consul_sd *c = p->conf;
    int64_t now = time_now_ms();
    const char *e = sd_req_error(r, res);
    kiln_err err = {0};
    sd_tg *g = NULL;
    if (!e && sd_consul_health(r->body.data ? r->body.data : "", r->body.len, s->name, d->dc,
                               c->tag_separator, &d->gb, &g, &err) != 0)
        e = err.msg;
    if (!e) {
        take_index(r, s->index, sizeof s->index);
        if (s->wanted && sd_set_put(&p->cur, g) > 0)
            p->dirty = 1;
        else if (!s->wanted)
            sd_tg_unref(g);
        s->due_ms = now + c->refresh_interval_ms;
    } else {
        rpc_failed(p, s->name, e);
        s->due_ms = now + retry_ms(c);
    }
    sd_count_refresh(p, e != NULL);
    buf_free(&r->body);
    sd_publish(p);
    p->due_ms = 0; /* the tick issues what this answer made due */
}

/* Whether the config wants service name with these tags. */
static int wants(const config_consul_sd *c, const char *name, const json_val *tags) {
    int ok = c->nservices == 0;
    for (size_t i = 0; i < c->nservices && !ok; i++)
        ok = strcmp(c->services[i], name) == 0;
    for (size_t i = 0; i < c->ntags && ok; i++) {
        int has = 0;
        for (size_t j = 0; tags && tags->type == JSON_ARR && j < tags->n && !has; j++)
            has = strcmp(tags->kids[j].str, c->tags[i]) == 0;
        ok = has;
    }
    return ok;
}

static void svc_free(sd_provider *p, consul_svc *s) {
    sd_req_free(p->rt, &s->req);
    free(s->name);
    free(s);
}

static void cat_done(sd_req *r, CURLcode res) {
    sd_provider *p = r->data;
    consul_sd *d = p->state;
    const config_consul_sd *c = p->conf;
    int64_t now = time_now_ms();
    const char *e = sd_req_error(r, res);
    kiln_err err = {0};
    arena a;
    arena_init(&a, 0);
    const char **names = NULL;
    const json_val **tags = NULL;
    size_t n = 0;
    if (!e &&
        sd_consul_services(r->body.data ? r->body.data : "", r->body.len, &a, &names, &tags, &n, &err) != 0)
        e = err.msg;
    d->cat_due = now + (e ? retry_ms(c) : c->refresh_interval_ms);
    if (e) {
        rpc_failed(p, "catalog/services", e);
        sd_count_refresh(p, 1);
        sd_publish(p);
    } else {
        take_index(r, d->cat_index, sizeof d->cat_index);
        for (size_t i = 0; i < d->nsvcs; i++)
            d->svcs[i]->wanted = 0;
        for (size_t i = 0; i < n; i++) {
            if (!wants(c, names[i], tags[i]))
                continue;
            size_t j = 0;
            while (j < d->nsvcs && strcmp(d->svcs[j]->name, names[i]) != 0)
                j++;
            if (j == d->nsvcs) {
                consul_svc *s = calloc(1, sizeof *s);
                if (!s || !(s->name = strdup(names[i])) ||
                    array_grow((void **)&d->svcs, &d->capsvcs, d->nsvcs + 1, sizeof *d->svcs) != 0) {
                    if (s)
                        free(s->name);
                    free(s);
                    continue;
                }
                s->p = p;
                s->req.data = s;
                s->req.done = svc_done;
                d->svcs[d->nsvcs++] = s;
            }
            d->svcs[j]->wanted = 1;
        }
        /* services gone from the catalog go, with their groups */
        for (size_t i = 0; i < d->nsvcs;) {
            consul_svc *s = d->svcs[i];
            if (s->wanted) {
                i++;
                continue;
            }
            if (sd_set_del(&p->cur, s->name))
                p->dirty = 1;
            svc_free(p, s);
            d->svcs[i] = d->svcs[--d->nsvcs];
        }
        sd_count_refresh(p, 0);
        /* a catalog with no wanted service is an answer too */
        if (d->nsvcs == 0)
            sd_publish(p);
    }
    buf_free(&r->body);
    arena_free(&a);
    p->due_ms = 0;
}

static void self_done(sd_req *r, CURLcode res) {
    sd_provider *p = r->data;
    consul_sd *d = p->state;
    const char *e = sd_req_error(r, res);
    arena a;
    arena_init(&a, 0);
    json_val *root = NULL;
    kiln_err err = {0};
    if (!e && json_parse(r->body.data ? r->body.data : "", r->body.len, &a, &root, &err) != 0)
        e = err.msg;
    const char *dc = e ? NULL : json_get_str(json_get(root, "Config"), "Datacenter");
    if (!e && !dc)
        e = "no Config.Datacenter in the agent's answer";
    if (e) {
        rpc_failed(p, "agent/self", e);
        d->self_due = time_now_ms() + retry_ms(p->conf);
        sd_publish(p);
    } else {
        snprintf(d->dc, sizeof d->dc, "%s", dc);
        d->have_dc = 1;
    }
    buf_free(&r->body);
    arena_free(&a);
    p->due_ms = 0;
}

static void consul_tick(sd_provider *p) {
    consul_sd *d = p->state;
    int64_t now = time_now_ms(), next = INT64_MAX;
    if (!d->have_dc) {
        if (!d->self.active && d->self_due <= now && start_req(p, &d->self, "agent/self", NULL, 0) != 0)
            d->self_due = now + retry_ms(p->conf);
        if (!d->self.active)
            next = d->self_due;
        p->due_ms = next;
        return;
    }
    if (!d->cat.active && d->cat_due <= now &&
        start_req(p, &d->cat, "catalog/services", d->cat_index, 0) != 0)
        d->cat_due = now + retry_ms(p->conf);
    if (!d->cat.active && d->cat_due < next)
        next = d->cat_due;
    for (size_t i = 0; i < d->nsvcs; i++) {
        consul_svc *s = d->svcs[i];
        if (!s->req.active && s->due_ms <= now) {
            char *path = malloc(strlen(s->name) * 3 + 32);
            char *en = curl_easy_escape(NULL, s->name, 0);
            if (path && en) {
                sprintf(path, "health/service/%s", en);
                if (start_req(p, &s->req, path, s->index, 1) != 0)
                    s->due_ms = now + retry_ms(p->conf);
            }
            free(path);
            curl_free(en);
        }
        if (!s->req.active && s->due_ms < next)
            next = s->due_ms;
    }
    p->due_ms = next;
}

static int consul_start(sd_provider *p) {
    const config_consul_sd *c = p->conf;
    consul_sd *d = calloc(1, sizeof *d);
    if (!d)
        return KILN_ENOMEM;
    p->state = d;
    sd_gb_init(&d->gb);
    d->self.data = p;
    d->self.done = self_done;
    d->cat.data = p;
    d->cat.done = cat_done;
    if (c->datacenter) {
        snprintf(d->dc, sizeof d->dc, "%s", c->datacenter);
        d->have_dc = 1;
    }
    if (c->token)
        snprintf(d->token_hdr, sizeof d->token_hdr, "X-Consul-Token: %s", c->token);
    p->due_ms = 0;
    return 0;
}

static void consul_free(sd_provider *p) {
    consul_sd *d = p->state;
    if (!d)
        return;
    sd_req_free(p->rt, &d->self);
    sd_req_free(p->rt, &d->cat);
    for (size_t i = 0; i < d->nsvcs; i++)
        svc_free(p, d->svcs[i]);
    free(d->svcs);
    sd_gb_free(&d->gb);
    free(d);
    p->state = NULL;
}

const sd_ops sd_consul_ops = {
    .mechanism = "consul",
    .start = consul_start,
    .tick = consul_tick,
    .free = consul_free,
};
