/*
 * sd_kubernetes.c - kubernetes_sd_configs: the API server's objects of a
 * role, listed then watched, made into target groups by sd_kube_roles.c.
 *
 * A watcher is one resource (pods, nodes, services, endpoints,
 * endpointslices, ingresses) in one namespace (or all), with the config's
 * label and field selectors for its role.  It lists
 * (GET /api/v1[/namespaces/<ns>]/pods?labelSelector=&fieldSelector=), keeps
 * every object's JSON in its store (an sd_set keyed by "ns/name"), then
 * watches from the list's resourceVersion
 * (?watch=1&resourceVersion=<rv>&allowWatchBookmarks=true&timeoutSeconds=300):
 * each line of the stream is an event (ADDED, MODIFIED, DELETED, BOOKMARK,
 * ERROR) applied to the store, the resource version following the events.
 * A stream that ends is watched again from the last version; one that
 * breaks mid-line drops the partial line, counts a failure and watches
 * again after a second; a 410 Gone (the answer's status, or an ERROR event
 * with code 410) lists again, and the objects the new list lacks are
 * deleted.
 *
 * The role's own watchers make the groups; the others are the objects they
 * refer to: services and pods for endpoints and endpointslice, nodes with
 * attach_metadata.node, namespaces with attach_metadata.namespace,
 * replicasets with attach_metadata.deployment and jobs with .job or
 * .cronjob (in the role's namespaces).  A change of one of those rebuilds
 * the groups that use it (a node: its pods; a service or pod: the endpoints
 * of its namespace; a namespace: the objects in it; a ReplicaSet or Job: the
 * pods it controls).  Nothing is published before every watcher has listed once.
 *
 * The API server is kubeconfig_file's current context (config/kubeconfig.c:
 * server, CA, client certificate, token or basic auth; own_namespace is
 * "default" then, as in Prometheus), or api_server with the config's HTTP
 * client settings, or in a cluster https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT with
 * the service account's token and CA (in
 * /var/run/secrets/kubernetes.io/serviceaccount, or the directory named by
 * KILN_KUBERNETES_SA_DIR, a kiln extension for tests); own_namespace reads
 * its namespace file.
 *
 * Threading: the SD thread (sd.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scrape/sd.h"

#define KUBE_WATCH_SECONDS 300
#define KUBE_RETRY_MS 1000
#define KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

enum { W_LIST, W_WATCH };

typedef struct kube_sd kube_sd;

typedef struct kwatch {
    kube_sd *k;
    const char *resource, *role; /* "pods", "pod" */
    char *ns;                    /* NULL: all */
    const char *label_sel, *field_sel;
    int main; /* the role's own objects */
    sd_set store;
    char rv[64];
    int state, gone, listed;
    sd_req req;
    buf line; /* the watch stream's partial line */
    int64_t due_ms;
} kwatch;

struct kube_sd {
    sd_provider *p;
    const char *role;
    char *api; /* https://host:port, no trailing slash */
    config_http http;
    kwatch **ws;
    size_t nws;
    int synced;  /* every watcher listed once */
    int pending; /* changes made before synced */
    sd_gb gb, ob;
    sd_kube_ctx ctx;
    char tokpath[1024], capath[1024]; /* in a cluster: the service account's files */
    config_kubeconfig *kc;            /* kubeconfig_file's settings, or NULL */
    char tmpdir[64];                  /* its *-data fields as files, or "" */
};

/* ---- the stores ---------------------------------------------------------------------- */

static const char *obj_str(const json_val *o, const char *a, const char *b) {
    const char *s = json_get_str(json_get(o, a), b);
    return s ? s : "";
}

/* The object's store entry: source "ns/name", labels t (its JSON), n (the
 * node its pod runs on) and c (its controller, "<kind>/<name>"). */
static sd_tg *entry(kube_sd *k, const char *text, size_t len, const json_val *o) {
    char *key = sd_kube_source("x", obj_str(o, "metadata", "namespace"), obj_str(o, "metadata", "name"));
    if (!key)
        return NULL;
    char *t = malloc(len + 1);
    if (!t) {
        free(key);
        return NULL;
    }
    memcpy(t, text, len);
    t[len] = 0;
    sd_gb_reset(&k->ob);
    sd_gb_label(&k->ob, "t", t);
    sd_gb_label(&k->ob, "n", obj_str(o, "spec", "nodeName"));
    const json_val *ctl = sd_kube_controller(o);
    if (ctl) {
        char c[600];
        const char *kind = json_get_str(ctl, "kind"), *name = json_get_str(ctl, "name");
        snprintf(c, sizeof c, "%s/%s", kind ? kind : "", name ? name : "");
        sd_gb_label(&k->ob, "c", c);
    }
    /* "x/ns/name" -> "ns/name" */
    sd_tg *g = sd_gb_done(&k->ob, key + 2);
    free(key);
    free(t);
    return g;
}

static const char *entry_label(const sd_tg *e, const char *name) {
    return labels_get(e->ls, e->nls, name);
}

static const json_val *lookup(kube_sd *k, const char *resource, const char *ns, const char *name, arena *a) {
    char key[600];
    snprintf(key, sizeof key, "%s/%s", ns ? ns : "", name);
    for (size_t i = 0; i < k->nws; i++) {
        kwatch *w = k->ws[i];
        if (strcmp(w->resource, resource) != 0)
            continue;
        const sd_tg *e = sd_set_get(&w->store, key);
        const char *t = e ? entry_label(e, "t") : NULL;
        json_val *v = NULL;
        if (t && json_parse(t, strlen(t), a, &v, NULL) == 0)
            return v;
    }
    return NULL;
}

static const json_val *lookup_node(void *data, const char *name, arena *a) {
    return lookup(data, "nodes", "", name, a);
}

static const json_val *lookup_service(void *data, const char *ns, const char *name, arena *a) {
    return lookup(data, "services", ns, name, a);
}

static const json_val *lookup_pod(void *data, const char *ns, const char *name, arena *a) {
    return lookup(data, "pods", ns, name, a);
}

static const json_val *lookup_namespace(void *data, const char *name, arena *a) {
    return lookup(data, "namespaces", "", name, a);
}

static const json_val *lookup_owner(void *data, const char *resource, const char *ns, const char *name,
                                    arena *a) {
    return lookup(data, resource, ns, name, a);
}

/* ---- groups ------------------------------------------------------------------------------ */

static void changed(kube_sd *k) {
    if (k->synced)
        k->p->dirty = 1;
    else
        k->pending = 1;
}

/* (Re)builds the group of a main object from its stored JSON. */
static void rebuild(kube_sd *k, const sd_tg *e) {
    const char *t = entry_label(e, "t");
    arena a;
    arena_init(&a, 0);
    json_val *o = NULL;
    sd_tg *g = NULL;
    if (t && json_parse(t, strlen(t), &a, &o, NULL) == 0 &&
        sd_kube_build(k->role, o, &k->ctx, &k->gb, &a, &g) == 0 && sd_set_put(&k->p->cur, g) > 0)
        changed(k);
    arena_free(&a);
}

static void remove_group(kube_sd *k, const char *key) {
    const char *slash = strchr(key, '/');
    char ns[256];
    snprintf(ns, sizeof ns, "%.*s", slash ? (int)(slash - key) : 0, key);
    char *src = sd_kube_source(k->role, ns, slash ? slash + 1 : key);
    if (src && sd_set_del(&k->p->cur, src))
        changed(k);
    free(src);
}

/* Whether the pod entry o's controller is the ReplicaSet or Job (resource) name. */
static int controls(const char *resource, const char *name, const sd_tg *o) {
    const char *c = entry_label(o, "c"), *kind = !strcmp(resource, "jobs") ? "Job/" : "ReplicaSet/";
    size_t kl = strlen(kind);
    return c && !strncmp(c, kind, kl) && !strcmp(c + kl, name);
}

/* A referred object changed: rebuild the main groups that may use it. */
static void dependents(kube_sd *k, kwatch *w, const sd_tg *e) {
    const char *key = e->source, *slash = strchr(key, '/');
    size_t nsl = slash ? (size_t)(slash - key) : 0;
    for (size_t i = 0; i < k->nws; i++) {
        kwatch *m = k->ws[i];
        if (!m->main)
            continue;
        for (size_t j = 0; j < m->store.cap; j++) {
            const sd_tg *o = m->store.v[j];
            if (!o || (uintptr_t)o == 1)
                continue;
            int use;
            if (!strcmp(w->resource, "nodes"))
                use = !strcmp(k->role, "pod")
                          ? !strcmp(entry_label(o, "n") ? entry_label(o, "n") : "", slash + 1)
                          : 1;
            else if (!strcmp(w->resource, "namespaces")) /* the objects in it */
                use =
                    !strncmp(o->source, slash + 1, strlen(slash + 1)) && o->source[strlen(slash + 1)] == '/';
            else if (!strcmp(w->resource, "replicasets") || !strcmp(w->resource, "jobs")) /* its pods */
                use = !strncmp(o->source, key, nsl + 1) && controls(w->resource, slash + 1, o);
            else /* services and pods: the endpoints of the namespace */
                use = !strncmp(o->source, key, nsl + 1);
            if (use)
                rebuild(k, o);
        }
    }
}

static void count_event(kube_sd *k, const char *event) {
    const char *v[] = {k->role, event};
    metric_add(sd_metric(k->p->rt, "kiln_sd_kubernetes_events_total", v), 1);
}

/* An object added or modified (e: its new entry, taken) or deleted (e NULL, key). */
static void apply(kwatch *w, sd_tg *e, const char *key) {
    kube_sd *k = w->k;
    if (e) {
        int existed = sd_set_get(&w->store, key) != NULL;
        if (sd_set_put(&w->store, e) <= 0)
            return; /* unchanged (a resync) or out of memory */
        const sd_tg *cur = sd_set_get(&w->store, key);
        if (w->main)
            count_event(k, existed ? "update" : "add");
        /* before every watcher listed, check_synced builds the groups */
        if (w->main && k->synced)
            rebuild(k, cur);
        else if (!w->main && k->synced)
            dependents(k, w, cur);
        return;
    }
    sd_tg *old = sd_set_get(&w->store, key);
    if (!old)
        return;
    sd_tg_ref(old);
    sd_set_del(&w->store, key);
    if (w->main) {
        count_event(k, "delete");
        remove_group(k, key);
    } else if (k->synced) {
        dependents(k, w, old);
    }
    sd_tg_unref(old);
}

/* ---- list and watch ------------------------------------------------------------------------ */

static const char *api_prefix(const char *resource) {
    if (!strcmp(resource, "endpointslices"))
        return "/apis/discovery.k8s.io/v1";
    if (!strcmp(resource, "ingresses"))
        return "/apis/networking.k8s.io/v1";
    if (!strcmp(resource, "replicasets"))
        return "/apis/apps/v1";
    if (!strcmp(resource, "jobs"))
        return "/apis/batch/v1";
    return "/api/v1";
}

static char *watch_url(kwatch *w, int watch) {
    buf u = BUF_INIT;
    buf_printf(&u, "%s%s", w->k->api, api_prefix(w->resource));
    if (w->ns)
        buf_printf(&u, "/namespaces/%s", w->ns);
    buf_printf(&u, "/%s?", w->resource);
    const char *sels[2][2] = {{"labelSelector", w->label_sel}, {"fieldSelector", w->field_sel}};
    for (int i = 0; i < 2; i++)
        if (sels[i][1]) {
            char *e = curl_easy_escape(NULL, sels[i][1], 0);
            buf_printf(&u, "%s=%s&", sels[i][0], e ? e : "");
            curl_free(e);
        }
    if (watch)
        buf_printf(&u, "watch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%d", w->rv,
                   KUBE_WATCH_SECONDS);
    else
        buf_puts(&u, "limit=0");
    buf_putc(&u, 0);
    if (buf_error(&u)) {
        buf_free(&u);
        return NULL;
    }
    return buf_steal(&u);
}

static void failed(kwatch *w, const char *what, const char *e) {
    kube_sd *k = w->k;
    LOG_ERROR("Kubernetes SD request failed",
              "discovery=kubernetes scrape_pool=%s role=%s resource=%s request=%s err=%s", k->p->job, k->role,
              w->resource, what, e);
    metric_add(sd_metric(k->p->rt, "kiln_sd_kubernetes_failures_total", NULL), 1);
}

static void set_rv(kwatch *w, const json_val *o) {
    const char *rv = obj_str(o, "metadata", "resourceVersion");
    if (*rv)
        snprintf(w->rv, sizeof w->rv, "%s", rv);
}

static void check_synced(kube_sd *k) {
    if (k->synced)
        return;
    for (size_t i = 0; i < k->nws; i++)
        if (!k->ws[i]->listed)
            return;
    k->synced = 1;
    /* the main groups once every referred object is known */
    for (size_t i = 0; i < k->nws; i++)
        if (k->ws[i]->main)
            for (size_t j = 0; j < k->ws[i]->store.cap; j++) {
                const sd_tg *o = k->ws[i]->store.v[j];
                if (o && (uintptr_t)o != 1)
                    rebuild(k, o);
            }
    k->p->dirty = 1;
    sd_publish(k->p);
}

static void list_done(sd_req *r, CURLcode res) {
    kwatch *w = r->data;
    kube_sd *k = w->k;
    int64_t now = time_now_ms();
    const char *e = sd_req_error(r, res);
    arena a;
    arena_init(&a, 0);
    json_val *root = NULL;
    kiln_err err = {0};
    if (!e && json_parse(r->body.data ? r->body.data : "", r->body.len, &a, &root, &err) != 0)
        e = err.msg;
    const json_val *items = root ? json_get(root, "items") : NULL;
    if (!e && (!items || (items->type != JSON_ARR && items->type != JSON_NULL)))
        e = "the list has no items";
    sd_count_refresh(k->p, e != NULL);
    if (e) {
        failed(w, "list", e);
        w->due_ms = now + KUBE_RETRY_MS;
    } else {
        /* the new list replaces the store: what it lacks was deleted */
        sd_set fresh = {0};
        for (size_t i = 0; items->type == JSON_ARR && i < items->n; i++) {
            const json_val *o = &items->kids[i];
            if (o->type != JSON_OBJ || !*obj_str(o, "metadata", "name"))
                continue;
            sd_tg *en = entry(k, r->body.data + o->off, o->end - o->off, o);
            if (en)
                (void)sd_set_put(&fresh, sd_tg_ref(en));
            if (en) {
                const char *key = en->source;
                char *kc = strdup(key);
                apply(w, en, kc ? kc : "");
                free(kc);
            }
        }
        for (size_t j = 0; j < w->store.cap; j++) {
            sd_tg *o = w->store.v[j];
            if (!o || (uintptr_t)o == 1 || sd_set_get(&fresh, o->source))
                continue;
            char *kc = strdup(o->source);
            if (kc)
                apply(w, NULL, kc);
            free(kc);
        }
        sd_set_free(&fresh);
        set_rv(w, root);
        w->state = W_WATCH;
        w->listed = 1;
        w->due_ms = now;
        check_synced(k);
    }
    buf_free(&r->body);
    arena_free(&a);
    k->p->due_ms = 0;
}

/* One complete line of the watch stream. */
static void watch_line(kwatch *w, const char *line, size_t len) {
    kube_sd *k = w->k;
    if (len == 0 || w->gone)
        return;
    arena a;
    arena_init(&a, 0);
    int type;
    const json_val *o;
    long code;
    kiln_err err = {0};
    if (sd_kube_event(line, len, &a, &type, &o, &code, &err) != 0) {
        failed(w, "watch", err.msg);
    } else if (type == SD_KUBE_ERROR) {
        if (code == 410)
            w->gone = 1;
        else
            failed(w, "watch", "an ERROR event");
    } else {
        set_rv(w, o);
        if (type != SD_KUBE_BOOKMARK) {
            char *key =
                sd_kube_source("x", obj_str(o, "metadata", "namespace"), obj_str(o, "metadata", "name"));
            if (key) {
                if (type == SD_KUBE_DELETED) {
                    apply(w, NULL, key + 2);
                } else {
                    sd_tg *en = entry(k, line + o->off, o->end - o->off, o);
                    if (en)
                        apply(w, en, key + 2);
                }
            }
            free(key);
        }
    }
    arena_free(&a);
}

static int watch_data(sd_req *r, const char *p, size_t n) {
    kwatch *w = r->data;
    long code = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200)
        return 0; /* an error's body (a Status); done looks at the code */
    if (buf_append(&w->line, p, n) != 0)
        return 1;
    size_t start = 0;
    for (size_t i = 0; i < w->line.len; i++)
        if (w->line.data[i] == '\n') {
            watch_line(w, w->line.data + start, i - start);
            start = i + 1;
        }
    if (start) {
        memmove(w->line.data, w->line.data + start, w->line.len - start);
        w->line.len -= start;
    }
    return w->gone; /* a 410: end the stream and list again */
}

static void watch_done(sd_req *r, CURLcode res) {
    kwatch *w = r->data;
    kube_sd *k = w->k;
    int64_t now = time_now_ms();
    buf_reset(&w->line); /* a line the stream broke in the middle of is dropped */
    if (w->gone || r->code == 410) {
        LOG_INFO("Kubernetes watch: resource version gone, listing again", "scrape_pool=%s resource=%s rv=%s",
                 k->p->job, w->resource, w->rv);
        w->state = W_LIST;
        w->due_ms = now;
    } else if (res == CURLE_OK && r->code == 200) {
        w->due_ms = now; /* the server ended the watch: watch on */
    } else {
        const char *e = sd_req_error(r, res);
        failed(w, "watch", e ? e : "the stream broke");
        w->due_ms = now + KUBE_RETRY_MS;
    }
    w->gone = 0;
    k->p->due_ms = 0;
}

static void kube_tick(sd_provider *p) {
    kube_sd *k = p->state;
    int64_t now = time_now_ms(), next = INT64_MAX;
    for (size_t i = 0; i < k->nws; i++) {
        kwatch *w = k->ws[i];
        if (!w->req.active && w->due_ms <= now) {
            int watch = w->state == W_WATCH;
            char *url = watch_url(w, watch);
            w->req.on_data = watch ? watch_data : NULL;
            w->req.done = watch ? watch_done : list_done;
            const char *hdrs[] = {"Accept: application/json", NULL};
            int rc = url ? sd_req_start(p->rt, &w->req, url, &k->http, hdrs, watch ? 0 : 60000) : KILN_ENOMEM;
            if (rc != 0) {
                failed(w, watch ? "watch" : "list", w->req.err[0] ? w->req.err : "cannot start the request");
                w->due_ms = now + KUBE_RETRY_MS;
            }
            free(url);
        }
        if (!w->req.active && w->due_ms < next)
            next = w->due_ms;
    }
    p->due_ms = next;
}

/* ---- setup -------------------------------------------------------------------------------------- */

static const char *resource_of(const char *role) {
    static const char *const map[][2] = {
        {"node", "nodes"},        {"namespace", "namespaces"},   {"pod", "pods"},
        {"service", "services"},  {"endpoints", "endpoints"},    {"endpointslice", "endpointslices"},
        {"ingress", "ingresses"}, {"replicaset", "replicasets"}, {"job", "jobs"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(map[i][0], role))
            return map[i][1];
    return "pods";
}

static int add_watch(kube_sd *k, const char *role, const char *ns, int main) {
    const config_kubernetes_sd *c = k->p->conf;
    kwatch *w = calloc(1, sizeof *w);
    kwatch **ws = realloc(k->ws, (k->nws + 1) * sizeof *ws);
    if (!w || !ws) {
        free(w);
        if (ws)
            k->ws = ws;
        return KILN_ENOMEM;
    }
    k->ws = ws;
    w->k = k;
    w->role = role;
    w->resource = resource_of(role);
    w->main = main;
    if (ns && !(w->ns = strdup(ns))) {
        free(w);
        return KILN_ENOMEM;
    }
    for (size_t i = 0; i < c->nselectors; i++)
        if (!strcmp(c->selectors[i].role, role)) {
            w->label_sel = c->selectors[i].label;
            w->field_sel = c->selectors[i].field;
        }
    w->req.data = w;
    k->ws[k->nws++] = w;
    return 0;
}

static char *read_small(const char *dir, const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char tmp[512];
    size_t n = fread(tmp, 1, sizeof tmp - 1, f);
    fclose(f);
    tmp[n] = 0;
    while (n && (tmp[n - 1] == '\n' || tmp[n - 1] == ' '))
        tmp[--n] = 0;
    return strdup(tmp);
}

/* kubeconfig_file: the API server and client settings of its current
 * context, in place of api_server's (Prometheus uses the file's alone).  The
 * certificates and key given inline (*-data) are written to files in a
 * directory of kiln's own (mode 0700), removed at the end. */
static int kubeconfig_setup(kube_sd *k, const char *path) {
    kiln_err err = {0};
    int rc = config_kubeconfig_load(path, &k->kc, &err);
    if (rc != 0) {
        LOG_ERROR("Kubernetes SD: cannot use the kubeconfig file", "scrape_pool=%s err=%s", k->p->job,
                  err.msg);
        return rc;
    }
    config_kubeconfig *kc = k->kc;
    memset(&k->http, 0, sizeof k->http);
    k->http.follow_redirects = 1;
    k->http.enable_http2 = 1;
    config_tls *t = &k->http.tls;
    t->ca_file = kc->ca_file;
    t->cert_file = kc->cert_file;
    t->key_file = kc->key_file;
    t->server_name = kc->server_name;
    t->insecure_skip_verify = kc->insecure_skip_verify;
    k->http.proxy_url = kc->proxy_url;
    if (kc->token || kc->token_file) {
        k->http.has_authorization = 1;
        k->http.auth_type = (char *)"Bearer";
        k->http.credentials = kc->token;
        k->http.credentials_file = kc->token_file;
    } else if (kc->username || kc->password) {
        k->http.has_basic_auth = 1;
        k->http.username = kc->username;
        k->http.password = kc->password;
    }
    const char *data[3] = {kc->ca_data, kc->cert_data, kc->key_data},
               *names[3] = {"ca.crt", "client.crt", "client.key"};
    const size_t lens[3] = {kc->ca_len, kc->cert_len, kc->key_len};
    char **dst[3] = {&t->ca_file, &t->cert_file, &t->key_file};
    for (int i = 0; i < 3; i++) {
        if (!data[i])
            continue;
        if (!k->tmpdir[0]) {
            const char *tmp = getenv("TMPDIR");
            snprintf(k->tmpdir, sizeof k->tmpdir, "%s/kiln-kubeconfig-XXXXXX",
                     tmp && *tmp && strlen(tmp) < 32 ? tmp : "/tmp");
            if (!mkdtemp(k->tmpdir)) {
                LOG_ERROR("Kubernetes SD: cannot make a directory for the kubeconfig's certificates",
                          "scrape_pool=%s dir=%s err=%s", k->p->job, k->tmpdir, strerror(errno));
                k->tmpdir[0] = 0;
                return KILN_EIO;
            }
        }
        size_t n = strlen(k->tmpdir) + 16;
        char *f = arena_alloc_nz(&kc->mem, n);
        if (!f)
            return KILN_ENOMEM;
        snprintf(f, n, "%s/%s", k->tmpdir, names[i]);
        if ((rc = fileio_write_file(f, data[i], lens[i], &err)) != 0) {
            LOG_ERROR("Kubernetes SD: cannot write the kubeconfig's certificates", "scrape_pool=%s err=%s",
                      k->p->job, err.msg);
            return rc;
        }
        *dst[i] = f;
    }
    k->api = strdup(kc->server);
    return k->api ? 0 : KILN_ENOMEM;
}

static int kube_start(sd_provider *p) {
    const config_kubernetes_sd *c = p->conf;
    kube_sd *k = calloc(1, sizeof *k);
    if (!k)
        return KILN_ENOMEM;
    p->state = k;
    k->p = p;
    k->role = c->role;
    sd_gb_init(&k->gb);
    sd_gb_init(&k->ob);
    k->ctx = (sd_kube_ctx){.node = lookup_node,
                           .service = lookup_service,
                           .pod = lookup_pod,
                           .data = k,
                           .attach_node = c->attach_node,
                           .ns = lookup_namespace,
                           .attach_namespace = c->attach_namespace && strcmp(c->role, "node") != 0,
                           .owner = lookup_owner,
                           .attach_deployment = c->attach_deployment && !strcmp(c->role, "pod"),
                           .attach_job = c->attach_job && !strcmp(c->role, "pod"),
                           .attach_cronjob = c->attach_cronjob && !strcmp(c->role, "pod")};
    const char *sa = getenv("KILN_KUBERNETES_SA_DIR");
    if (!sa || !*sa)
        sa = KUBE_SA_DIR;
    k->http = c->http;
    if (c->kubeconfig_file) {
        int krc = kubeconfig_setup(k, c->kubeconfig_file);
        if (krc != 0)
            return krc;
    } else if (c->api_server) {
        k->api = strdup(c->api_server);
    } else {
        const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
        if (!host || !*host || !port || !*port) {
            LOG_ERROR(
                "Kubernetes SD: not in a cluster (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are "
                "not set) and no api_server",
                "scrape_pool=%s", p->job);
            return KILN_EINVAL;
        }
        size_t n = strlen(host) + strlen(port) + 16;
        if ((k->api = malloc(n)))
            snprintf(k->api, n, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port);
        /* the service account's token (read again at each request) and CA */
        snprintf(k->tokpath, sizeof k->tokpath, "%s/token", sa);
        snprintf(k->capath, sizeof k->capath, "%s/ca.crt", sa);
        k->http.has_authorization = 1;
        k->http.auth_type = (char *)"Bearer";
        k->http.credentials = NULL;
        k->http.credentials_file = k->tokpath;
        k->http.tls.ca_file = k->capath;
    }
    if (!k->api)
        return KILN_ENOMEM;
    size_t al = strlen(k->api);
    while (al && k->api[al - 1] == '/')
        k->api[--al] = 0;
    /* the namespaces: the configured ones, the own one, or all */
    char *own = !c->own_namespace    ? NULL
                : c->kubeconfig_file ? strdup("default") /* as Prometheus with a kubeconfig */
                                     : read_small(sa, "namespace");
    if (c->own_namespace && !own)
        LOG_ERROR("Kubernetes SD: cannot read the own namespace", "scrape_pool=%s dir=%s", p->job, sa);
    size_t nns = c->nnamespaces + (own ? 1 : 0);
    int rc = 0;
    for (size_t i = 0; i < (nns ? nns : 1) && rc == 0; i++) {
        const char *ns = !nns ? NULL : i < c->nnamespaces ? c->namespaces[i] : own;
        rc = add_watch(k, c->role, ns, 1);
        if (rc == 0 && (!strcmp(c->role, "endpoints") || !strcmp(c->role, "endpointslice"))) {
            rc = add_watch(k, "service", ns, 0);
            if (rc == 0)
                rc = add_watch(k, "pod", ns, 0);
        }
        if (rc == 0 && k->ctx.attach_deployment)
            rc = add_watch(k, "replicaset", ns, 0);
        if (rc == 0 && (k->ctx.attach_job || k->ctx.attach_cronjob))
            rc = add_watch(k, "job", ns, 0);
    }
    free(own);
    if (rc == 0 && c->attach_node && strcmp(c->role, "node") && strcmp(c->role, "service") &&
        strcmp(c->role, "ingress"))
        rc = add_watch(k, "node", NULL, 0);
    if (rc == 0 && k->ctx.attach_namespace)
        rc = add_watch(k, "namespace", NULL, 0);
    p->due_ms = 0;
    return rc;
}

static void kube_free(sd_provider *p) {
    kube_sd *k = p->state;
    if (!k)
        return;
    for (size_t i = 0; i < k->nws; i++) {
        kwatch *w = k->ws[i];
        sd_req_free(p->rt, &w->req);
        sd_set_free(&w->store);
        buf_free(&w->line);
        free(w->ns);
        free(w);
    }
    free(k->ws);
    free(k->api);
    if (k->tmpdir[0]) {
        kiln_err err = {0};
        if (fileio_rm_rf(k->tmpdir, &err) != 0)
            LOG_WARN("Kubernetes SD: cannot remove the kubeconfig's certificates", "dir=%s err=%s", k->tmpdir,
                     err.msg);
    }
    config_kubeconfig_free(k->kc);
    sd_gb_free(&k->gb);
    sd_gb_free(&k->ob);
    free(k);
    p->state = NULL;
}

const sd_ops sd_kube_ops = {
    .mechanism = "kubernetes",
    .start = kube_start,
    .tick = kube_tick,
    .free = kube_free,
};
