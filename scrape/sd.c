/*
 * sd.c - the service discovery runtime (see sd.h): target groups and sets,
 * the SD thread with its HTTP requests, the providers' life, and the
 * handover of discovered groups to the pools on the loop thread.
 *
 * The SD thread loops: it takes the providers the loop thread added and
 * frees the ones released, calls the ticks that are due, lets curl run its
 * transfers and calls the finished requests' done hooks, publishes the
 * providers whose groups changed, then sleeps in curl_multi_poll on curl's
 * sockets and the providers' own (c-ares') until a socket is ready, a tick
 * is due or curl_multi_wakeup (a provider added or released, the stop).
 *
 * Handover: a publish swaps the provider's snapshot under rt->mu and wakes
 * the loop thread (rt->async).  There sd_on_published takes, per pool, the
 * snapshots of all its providers when one changed, no sooner than
 * SD_SYNC_MS after the last take, and syncs the pool's targets
 * (scrape_sync_pool): many changes (a Kubernetes watch's events) make one
 * sync.  A pool whose providers were just replaced (a reload changed its
 * discovery configs) keeps its previous groups until every new provider has
 * answered once (or SD_READY_WAIT_MS passed), so its targets do not vanish
 * in between.
 *
 * Metrics: kiln_sd_refreshes_total and kiln_sd_refresh_failures_total per
 * mechanism, kiln_sd_discovered_targets per job (Prometheus'
 * prometheus_sd_discovered_targets{config,name}), and the mechanisms' own
 * (kiln_sd_http_failures_total, kiln_sd_dns_lookups_total, ...).
 *
 * Threading: the SD thread, except the functions sd.h marks for the loop
 * thread; rt->mu between them.
 */
#include "scrape/sd.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <xxhash.h>

#ifndef KILN_VERSION
#define KILN_VERSION "0.0.0"
#endif

#define SD_TOMB ((sd_tg *)(uintptr_t)1)
#define SD_MAX_FDS 64

/* Each family once per process; the children per mechanism. */
static const struct {
    int type;
    const char *name, *help, *labels;
} sd_families[] = {
    {METRIC_COUNTER, "kiln_sd_refreshes_total", "Refreshes (lists, queries) made by a discovery mechanism.",
     "mechanism"},
    {METRIC_COUNTER, "kiln_sd_refresh_failures_total", "Refreshes of a discovery mechanism that failed.",
     "mechanism"},
    {METRIC_GAUGE, "kiln_sd_discovered_targets", "Targets discovered for a scrape pool, before relabeling.",
     "config,name"},
    {METRIC_COUNTER, "kiln_sd_received_updates_total", "Target group updates received from the providers.",
     NULL},
    {METRIC_COUNTER, "kiln_sd_updates_total", "Syncs of a scrape pool's targets with its discoveries.", NULL},
    {METRIC_COUNTER, "kiln_sd_sync_seconds_total",
     "CPU time the loop thread spent syncing scrape pools with their discoveries.", NULL},
    {METRIC_COUNTER, "kiln_sd_http_failures_total", "Failed HTTP SD refreshes.", NULL},
    {METRIC_COUNTER, "kiln_sd_dns_lookups_total", "DNS SD lookups.", NULL},
    {METRIC_COUNTER, "kiln_sd_dns_lookup_failures_total", "DNS SD lookups that failed.", NULL},
    {METRIC_COUNTER, "kiln_sd_consul_rpc_failures_total", "Consul SD requests that failed.", NULL},
    {METRIC_COUNTER, "kiln_sd_kubernetes_events_total", "Kubernetes objects added, updated and deleted.",
     "role,event"},
    {METRIC_COUNTER, "kiln_sd_kubernetes_failures_total", "Kubernetes SD lists and watches that failed.",
     NULL},
};
#define SD_NFAMILIES (sizeof sd_families / sizeof sd_families[0])

struct sd_runtime {
    scrape_manager *m;
    pthread_t thr;
    int thr_on;
    pthread_mutex_t mu;
    CURLM *multi;
    uv_async_t async; /* SD thread -> loop: published */
    uv_timer_t timer; /* loop: the next pool take that waits */
    int closed;
    metric *fam[SD_NFAMILIES];

    /* rt->mu */
    int stop;
    sd_provider *incoming; /* added by the loop thread, not yet on the SD thread */
    int reap;              /* a provider was released */

    /* the SD thread's */
    sd_provider *provs;
};

/* ---- groups ---------------------------------------------------------------- */

void sd_gb_init(sd_gb *b) {
    memset(b, 0, sizeof *b);
}

void sd_gb_free(sd_gb *b) {
    buf_free(&b->strs);
    free(b->lv);
    free(b->tv);
    free(b->tstart);
    memset(b, 0, sizeof *b);
}

void sd_gb_reset(sd_gb *b) {
    buf_reset(&b->strs);
    b->nl = b->ntl = b->nt = 0;
    b->oom = 0;
}

static size_t gb_str(sd_gb *b, const char *prefix, const char *s, int san) {
    size_t off = b->strs.len;
    if (prefix)
        buf_puts(&b->strs, prefix);
    if (san) {
        for (const char *p = s; *p; p++)
            buf_putc(&b->strs, isalnum((unsigned char)*p) || *p == '_' ? *p : '_');
    } else {
        buf_puts(&b->strs, s);
    }
    buf_putc(&b->strs, 0);
    if (buf_error(&b->strs))
        b->oom = 1;
    return off;
}

static void gb_pair(sd_gb *b, size_t **v, size_t *n, size_t *cap, const char *prefix, const char *name,
                    const char *value, int san) {
    /* empty values are left out, but every target has an __address__ */
    if (!value || b->oom || (!*value && strcmp(name, "__address__") != 0))
        return;
    if (array_grow((void **)v, cap, 2 * (*n + 1), sizeof **v) != 0) {
        b->oom = 1;
        return;
    }
    (*v)[2 * *n] = gb_str(b, prefix, name, san);
    (*v)[2 * *n + 1] = gb_str(b, NULL, value, 0);
    (*n)++;
}

void sd_gb_label(sd_gb *b, const char *name, const char *value) {
    gb_pair(b, &b->lv, &b->nl, &b->capl, NULL, name, value, 0);
}

void sd_gb_label_san(sd_gb *b, const char *prefix, const char *name, const char *value) {
    gb_pair(b, &b->lv, &b->nl, &b->capl, prefix, name, value, 1);
}

void sd_gb_target(sd_gb *b, const char *addr) {
    if (b->oom)
        return;
    if (array_grow((void **)&b->tstart, &b->capt, b->nt + 1, sizeof *b->tstart) != 0) {
        b->oom = 1;
        return;
    }
    b->tstart[b->nt++] = b->ntl;
    gb_pair(b, &b->tv, &b->ntl, &b->captl, NULL, "__address__", addr ? addr : "", 0);
}

void sd_gb_tlabel(sd_gb *b, const char *name, const char *value) {
    if (b->nt)
        gb_pair(b, &b->tv, &b->ntl, &b->captl, NULL, name, value, 0);
}

void sd_gb_tlabel_san(sd_gb *b, const char *prefix, const char *name, const char *value) {
    if (b->nt)
        gb_pair(b, &b->tv, &b->ntl, &b->captl, prefix, name, value, 1);
}

size_t sd_gb_ntargets(const sd_gb *b) {
    return b->nt;
}

static void hash_str(XXH3_state_t *xs, const char *s) {
    XXH3_64bits_update(xs, s, strlen(s) + 1);
}

sd_tg *sd_gb_done(sd_gb *b, const char *source) {
    if (b->oom) {
        sd_gb_reset(b);
        return NULL;
    }
    size_t sl = strlen(source) + 1;
    size_t size = sizeof(sd_tg) + b->nl * sizeof(label) + b->nt * sizeof(sd_target) + b->ntl * sizeof(label) +
                  b->strs.len + sl;
    sd_tg *g = malloc(size);
    if (!g) {
        sd_gb_reset(b);
        return NULL;
    }
    g->refs = 1;
    g->ls = (label *)(g + 1);
    g->nls = b->nl;
    g->t = (sd_target *)(g->ls + b->nl);
    g->nt = b->nt;
    label *tl = (label *)(g->t + b->nt);
    char *strs = (char *)(tl + b->ntl);
    if (b->strs.len)
        memcpy(strs, b->strs.data, b->strs.len);
    g->source = strs + b->strs.len;
    memcpy(g->source, source, sl);
    /* labels sorted by name (labels_get, and equal groups hash the same) */
    XXH3_state_t *xs = XXH3_createState();
    if (xs)
        XXH3_64bits_reset(xs);
    for (size_t i = 0; i < b->nl; i++)
        g->ls[i] = (label){strs + b->lv[2 * i], strs + b->lv[2 * i + 1]};
    labels_sort(g->ls, g->nls);
    for (size_t i = 0; i < b->nl && xs; i++) {
        hash_str(xs, g->ls[i].name);
        hash_str(xs, g->ls[i].value);
    }
    for (size_t i = 0; i < b->ntl; i++)
        tl[i] = (label){strs + b->tv[2 * i], strs + b->tv[2 * i + 1]};
    for (size_t i = 0; i < b->nt; i++) {
        size_t end = i + 1 < b->nt ? b->tstart[i + 1] : b->ntl;
        g->t[i] = (sd_target){tl + b->tstart[i], end - b->tstart[i]};
        labels_sort(g->t[i].ls, g->t[i].n);
        if (xs) {
            XXH3_64bits_update(xs, "\xff", 1);
            for (size_t j = 0; j < g->t[i].n; j++) {
                hash_str(xs, g->t[i].ls[j].name);
                hash_str(xs, g->t[i].ls[j].value);
            }
        }
    }
    if (xs) {
        hash_str(xs, g->source);
        g->hash = XXH3_64bits_digest(xs);
        XXH3_freeState(xs);
    } else {
        g->hash = 0;
    }
    sd_gb_reset(b);
    return g;
}

sd_tg *sd_tg_ref(sd_tg *g) {
    if (g)
        __atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
    return g;
}

void sd_tg_unref(sd_tg *g) {
    if (g && __atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(g);
}

static int labels_eq(const label *a, const label *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(a[i].name, b[i].name) || strcmp(a[i].value, b[i].value))
            return 0;
    return 1;
}

static int tg_equal(const sd_tg *a, const sd_tg *b) {
    if (a->hash != b->hash || a->nls != b->nls || a->nt != b->nt || strcmp(a->source, b->source))
        return 0;
    if (!labels_eq(a->ls, b->ls, a->nls))
        return 0;
    for (size_t i = 0; i < a->nt; i++)
        if (a->t[i].n != b->t[i].n || !labels_eq(a->t[i].ls, b->t[i].ls, a->t[i].n))
            return 0;
    return 1;
}

/* ---- sets ------------------------------------------------------------------- */

static uint64_t src_hash(const char *s) {
    return XXH3_64bits(s, strlen(s));
}

void sd_set_free(sd_set *s) {
    for (size_t i = 0; i < s->cap; i++)
        if (s->v[i] && s->v[i] != SD_TOMB)
            sd_tg_unref(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* The slot of source, or of where it would go (the first tombstone seen or
 * the empty slot ending the probe). */
static size_t set_slot(const sd_set *s, const char *source, int *found) {
    size_t mask = s->cap - 1, i = (size_t)src_hash(source) & mask, tomb = SIZE_MAX;
    *found = 0;
    for (;;) {
        sd_tg *g = s->v[i];
        if (!g)
            return tomb != SIZE_MAX ? tomb : i;
        if (g == SD_TOMB) {
            if (tomb == SIZE_MAX)
                tomb = i;
        } else if (strcmp(g->source, source) == 0) {
            *found = 1;
            return i;
        }
        i = (i + 1) & mask;
    }
}

static int set_grow(sd_set *s) {
    if (s->cap && (s->used + 1) * 4 < s->cap * 3)
        return 0;
    size_t ncap = s->cap ? s->cap : 16;
    while ((s->n + 1) * 2 >= ncap)
        ncap *= 2;
    sd_tg **nv = calloc(ncap, sizeof *nv);
    if (!nv)
        return KILN_ENOMEM;
    sd_set old = *s;
    s->v = nv;
    s->cap = ncap;
    s->used = s->n;
    for (size_t i = 0; i < old.cap; i++)
        if (old.v[i] && old.v[i] != SD_TOMB) {
            int f;
            s->v[set_slot(s, old.v[i]->source, &f)] = old.v[i];
        }
    free(old.v);
    return 0;
}

int sd_set_put(sd_set *s, sd_tg *g) {
    if (set_grow(s) != 0) {
        sd_tg_unref(g);
        return KILN_ENOMEM;
    }
    int found;
    size_t i = set_slot(s, g->source, &found);
    if (found) {
        if (tg_equal(s->v[i], g)) {
            sd_tg_unref(g);
            return 0;
        }
        sd_tg_unref(s->v[i]);
        s->v[i] = g;
        return 1;
    }
    if (!s->v[i])
        s->used++;
    s->v[i] = g;
    s->n++;
    return 1;
}

sd_tg *sd_set_get(const sd_set *s, const char *source) {
    if (!s->cap)
        return NULL;
    int found;
    size_t i = set_slot(s, source, &found);
    return found ? s->v[i] : NULL;
}

int sd_set_del(sd_set *s, const char *source) {
    if (!s->cap)
        return 0;
    int found;
    size_t i = set_slot(s, source, &found);
    if (!found)
        return 0;
    sd_tg_unref(s->v[i]);
    s->v[i] = SD_TOMB;
    s->n--;
    return 1;
}

int sd_set_replace(sd_set *s, sd_tg **gs, size_t n) {
    sd_set ns = {0};
    int changed = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = sd_set_put(&ns, gs[i]);
        if (rc < 0) {
            for (size_t j = i + 1; j < n; j++)
                sd_tg_unref(gs[j]);
            sd_set_free(&ns);
            return KILN_ENOMEM;
        }
    }
    if (ns.n != s->n) {
        changed = 1;
    } else {
        for (size_t i = 0; i < ns.cap && !changed; i++) {
            if (!ns.v[i] || ns.v[i] == SD_TOMB)
                continue;
            int found = 0;
            size_t j = s->cap ? set_slot(s, ns.v[i]->source, &found) : 0;
            changed = !found || !tg_equal(s->v[j], ns.v[i]);
        }
    }
    sd_set_free(s);
    *s = ns;
    return changed;
}

/* ---- HTTP requests ----------------------------------------------------------- */

static size_t on_req_body(char *p, size_t size, size_t nmemb, void *data) {
    sd_req *r = data;
    size_t n = size * nmemb;
    if (r->on_data)
        return r->on_data(r, p, n) == 0 ? n : 0;
    if (r->body.len + n > (r->limit ? r->limit : SD_BODY_MAX))
        return 0;
    return buf_append(&r->body, p, n) == 0 ? n : 0;
}

static size_t on_req_header(char *p, size_t size, size_t nmemb, void *data) {
    sd_req *r = data;
    size_t n = size * nmemb;
    /* a new response (a redirect's next, say) starts the headers again */
    if (n > 5 && memcmp(p, "HTTP/", 5) == 0)
        buf_reset(&r->hdr);
    if (r->hdr.len + n < 65536)
        buf_append(&r->hdr, p, n);
    return n;
}

static int add_hdr(sd_req *r, const char *line) {
    struct curl_slist *l = curl_slist_append(r->hdrs, line);
    if (!l)
        return KILN_ENOMEM;
    r->hdrs = l;
    return 0;
}

int sd_req_start(sd_runtime *rt, sd_req *r, const char *url, const config_http *h, const char *const *hdrs,
                 int64_t timeout_ms) {
    r->err[0] = 0;
    if (!r->easy && !(r->easy = curl_easy_init()))
        return KILN_ENOMEM;
    CURL *e = r->easy;
    curl_easy_reset(e);
    curl_slist_free_all(r->hdrs);
    curl_slist_free_all(r->connect_to);
    r->hdrs = r->connect_to = NULL;
    buf_reset(&r->body);
    buf_reset(&r->hdr);
    r->code = 0;
    int rc = 0;
    for (size_t i = 0; hdrs && hdrs[i] && rc == 0; i++)
        rc = add_hdr(r, hdrs[i]);
    char *secret = NULL;
    if (rc == 0 && h && h->has_authorization) {
        rc = fetch_read_secret(h->credentials, h->credentials_file, &secret);
        if (rc == 0) {
            buf line = BUF_INIT;
            buf_printf(&line, "Authorization: %s %s", h->auth_type ? h->auth_type : "Bearer",
                       secret ? secret : "");
            rc = buf_error(&line) ? KILN_ENOMEM : add_hdr(r, line.data);
            buf_free(&line);
        }
        free(secret);
        secret = NULL;
    }
    if (rc != 0)
        return rc;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_req_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_req_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "kiln/" KILN_VERSION);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    if (timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    if (h) {
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, h->follow_redirects ? 1L : 0L);
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                         h->enable_http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
        if (h->has_basic_auth) {
            if (fetch_read_secret(h->password, h->password_file, &secret) != 0)
                return KILN_ENOMEM;
            curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
            curl_easy_setopt(e, CURLOPT_USERNAME, h->username ? h->username : "");
            curl_easy_setopt(e, CURLOPT_PASSWORD, secret ? secret : "");
            free(secret);
        }
        const config_tls *tls = &h->tls;
        curltls_files(e, tls->ca_file, tls->cert_file, tls->key_file, tls->insecure_skip_verify);
        rc = curltls_apply(e, url, tls->server_name, config_tls_version(tls->min_version), &r->hdrs,
                           &r->connect_to);
        if (rc != 0) {
            snprintf(r->err, sizeof r->err, "invalid URL %s", url);
            return rc;
        }
        if (h->proxy_url)
            curl_easy_setopt(e, CURLOPT_PROXY, h->proxy_url);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
    if (curl_multi_add_handle(rt->multi, e) != CURLM_OK) {
        snprintf(r->err, sizeof r->err, "cannot start the request");
        return KILN_EIO;
    }
    r->active = 1;
    return 0;
}

void sd_req_cancel(sd_runtime *rt, sd_req *r) {
    if (r->active)
        curl_multi_remove_handle(rt->multi, r->easy);
    r->active = 0;
}

void sd_req_free(sd_runtime *rt, sd_req *r) {
    sd_req_cancel(rt, r);
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    curl_slist_free_all(r->connect_to);
    buf_free(&r->body);
    buf_free(&r->hdr);
    r->easy = NULL;
    r->hdrs = r->connect_to = NULL;
}

const char *sd_req_error(sd_req *r, CURLcode res) {
    if (res != CURLE_OK)
        snprintf(r->err, sizeof r->err, "%s", curl_easy_strerror(res));
    else if (r->code != 200)
        snprintf(r->err, sizeof r->err, "server returned HTTP status %ld %s", r->code,
                 http_status_text((int)r->code, ""));
    else
        return NULL;
    return r->err;
}

const char *sd_req_header(sd_req *r, const char *name) {
    size_t nl = strlen(name);
    if (buf_error(&r->hdr) || !r->hdr.data || buf_putc(&r->hdr, 0) != 0)
        return NULL;
    r->hdr.len--; /* the NUL stays after the data */
    for (char *p = r->hdr.data; p && *p;) {
        char *eol = strchr(p, '\n');
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            char *end = eol ? eol : v + strlen(v);
            while (end > v && (end[-1] == '\r' || end[-1] == ' '))
                end--;
            /* copied into the error buffer, which the caller reads at once */
            snprintf(r->err, sizeof r->err, "%.*s", (int)(end - v), v);
            return r->err;
        }
        p = eol ? eol + 1 : NULL;
    }
    return NULL;
}

/* ---- the SD thread -------------------------------------------------------------- */

metric_child *sd_metric(sd_runtime *rt, const char *family, const char *const *values) {
    for (size_t i = 0; i < SD_NFAMILIES; i++)
        if (rt->fam[i] && strcmp(sd_families[i].name, family) == 0)
            return sd_families[i].labels ? metric_with(rt->fam[i], values) : metric_default(rt->fam[i]);
    return NULL;
}

void sd_count_refresh(sd_provider *p, int failed) {
    const char *v[] = {p->ops->mechanism};
    metric_add(sd_metric(p->rt, "kiln_sd_refreshes_total", v), 1);
    if (failed)
        metric_add(sd_metric(p->rt, "kiln_sd_refresh_failures_total", v), 1);
}

void sd_publish(sd_provider *p) {
    sd_tg **snap = NULL;
    size_t n = 0;
    int first = 0;
    pthread_mutex_lock(&p->rt->mu);
    first = !p->ready;
    pthread_mutex_unlock(&p->rt->mu);
    if (first)
        p->dirty = 1; /* the first answer replaces what the pool held, even when empty */
    if (p->dirty) {
        snap = calloc(p->cur.n ? p->cur.n : 1, sizeof *snap);
        if (!snap)
            return; /* published at the next change */
        for (size_t i = 0; i < p->cur.cap; i++)
            if (p->cur.v[i] && p->cur.v[i] != SD_TOMB)
                snap[n++] = sd_tg_ref(p->cur.v[i]);
    }
    sd_runtime *rt = p->rt;
    pthread_mutex_lock(&rt->mu);
    sd_tg **old = NULL;
    size_t nold = 0;
    int wake = !p->ready || p->dirty;
    if (p->dirty) {
        old = p->snap;
        nold = p->nsnap;
        p->snap = snap;
        p->nsnap = n;
        p->changed = 1;
    }
    p->ready = 1;
    pthread_mutex_unlock(&rt->mu);
    if (p->dirty)
        metric_add(sd_metric(rt, "kiln_sd_received_updates_total", NULL), 1);
    p->dirty = 0;
    for (size_t i = 0; i < nold; i++)
        sd_tg_unref(old[i]);
    free(old);
    if (wake)
        uv_async_send(&rt->async);
}

static void provider_destroy(sd_provider *p) {
    if (p->started && p->ops->free)
        p->ops->free(p);
    sd_set_free(&p->cur);
    for (size_t i = 0; i < p->nsnap; i++)
        sd_tg_unref(p->snap[i]);
    free(p->snap);
    config_free(p->cfg);
    free(p->job);
    free(p);
}

static void run_done(sd_runtime *rt) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(rt->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *e = msg->easy_handle;
        CURLcode res = msg->data.result;
        sd_req *r = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
        curl_multi_remove_handle(rt->multi, e);
        if (!r)
            continue;
        r->active = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->code);
        if (r->done)
            r->done(r, res);
    }
}

static void *sd_thread(void *arg) {
    sd_runtime *rt = arg;
    struct curl_waitfd fds[SD_MAX_FDS];
    for (;;) {
        pthread_mutex_lock(&rt->mu);
        int stop = rt->stop;
        while (rt->incoming) {
            sd_provider *p = rt->incoming;
            rt->incoming = p->next;
            p->next = rt->provs;
            rt->provs = p;
        }
        /* the released ones go, those just in among them */
        if (rt->reap || stop) {
            rt->reap = 0;
            sd_provider **pp = &rt->provs;
            while (*pp) {
                sd_provider *p = *pp;
                if (p->dead || stop) {
                    *pp = p->next;
                    pthread_mutex_unlock(&rt->mu);
                    provider_destroy(p);
                    pthread_mutex_lock(&rt->mu);
                } else {
                    pp = &p->next;
                }
            }
        }
        pthread_mutex_unlock(&rt->mu);
        for (sd_provider *p = rt->provs; p; p = p->next) {
            if (p->started)
                continue;
            p->due_ms = INT64_MAX;
            p->started = 1;
            if (p->ops->start(p) != 0) {
                LOG_ERROR("Cannot start service discovery", "discovery=%s scrape_pool=%s", p->ops->mechanism,
                          p->job);
                sd_publish(p);
            }
        }
        if (stop)
            break;
        int64_t now = time_now_ms();
        for (sd_provider *p = rt->provs; p; p = p->next)
            if (p->due_ms <= now) {
                p->due_ms = INT64_MAX;
                p->ops->tick(p);
            }
        int running;
        curl_multi_perform(rt->multi, &running);
        run_done(rt);
        int64_t wait = 1000;
        now = time_now_ms();
        size_t nfds = 0;
        for (sd_provider *p = rt->provs; p; p = p->next) {
            if (p->dirty)
                sd_publish(p);
            if (p->due_ms != INT64_MAX && p->due_ms - now < wait)
                wait = p->due_ms - now;
            p->fd_off = nfds;
            p->fd_n = 0;
            if (p->ops->poll_fds && nfds < SD_MAX_FDS) {
                p->fd_n = p->ops->poll_fds(p, fds + nfds, SD_MAX_FDS - nfds, &wait);
                nfds += p->fd_n;
            }
        }
        if (wait < 0)
            wait = 0;
        for (size_t i = 0; i < nfds; i++)
            fds[i].revents = 0;
        curl_multi_poll(rt->multi, nfds ? fds : NULL, (unsigned)nfds, (int)wait, NULL);
        for (sd_provider *p = rt->provs; p; p = p->next)
            if (p->ops->poll_done)
                p->ops->poll_done(p, fds + p->fd_off, p->fd_n);
    }
    return NULL;
}

/* ---- the loop thread's side ----------------------------------------------------- */

static void rt_closed(uv_handle_t *h) {
    sd_runtime *rt = h->data;
    scrape_handle_gone(rt->m);
}

static void on_take_timer(uv_timer_t *h) {
    sd_runtime *rt = h->data;
    sd_on_published(rt->m);
}

static void on_async(uv_async_t *a) {
    sd_runtime *rt = a->data;
    sd_on_published(rt->m);
}

int sd_runtime_new(scrape_manager *m, sd_runtime **out) {
    *out = NULL;
    sd_runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        return KILN_ENOMEM;
    rt->m = m;
    if (!(rt->multi = curl_multi_init())) {
        free(rt);
        return KILN_ENOMEM;
    }
    pthread_mutex_init(&rt->mu, NULL);
    for (size_t i = 0; i < SD_NFAMILIES; i++)
        rt->fam[i] = metric_new(sd_families[i].type, sd_families[i].name, sd_families[i].help,
                                sd_families[i].labels, NULL, 0);
    uv_async_init(m->loop, &rt->async, on_async);
    rt->async.data = rt;
    uv_timer_init(m->loop, &rt->timer);
    rt->timer.data = rt;
    m->handles += 2;
    if (pthread_create(&rt->thr, NULL, sd_thread, rt) != 0) {
        LOG_ERROR("Cannot start the service discovery thread", NULL);
    } else {
        rt->thr_on = 1;
        pthread_setname_np(rt->thr, "kiln-sd");
    }
    *out = rt;
    return 0;
}

void sd_runtime_stop(sd_runtime *rt) {
    if (!rt || rt->closed)
        return;
    rt->closed = 1;
    pthread_mutex_lock(&rt->mu);
    rt->stop = 1;
    pthread_mutex_unlock(&rt->mu);
    curl_multi_wakeup(rt->multi);
    if (rt->thr_on)
        pthread_join(rt->thr, NULL);
    rt->thr_on = 0;
    uv_timer_stop(&rt->timer);
    uv_close((uv_handle_t *)&rt->async, rt_closed);
    uv_close((uv_handle_t *)&rt->timer, rt_closed);
}

void sd_runtime_free(sd_runtime *rt) {
    if (!rt)
        return;
    while (rt->incoming) { /* the thread never ran */
        sd_provider *p = rt->incoming;
        rt->incoming = p->next;
        provider_destroy(p);
    }
    while (rt->provs) {
        sd_provider *p = rt->provs;
        rt->provs = p->next;
        provider_destroy(p);
    }
    curl_multi_cleanup(rt->multi);
    pthread_mutex_destroy(&rt->mu);
    free(rt);
}

static void provider_release(sd_runtime *rt, sd_provider *p) {
    pthread_mutex_lock(&rt->mu);
    p->dead = 1;
    rt->reap = 1;
    /* one still incoming is destroyed by the thread before it starts */
    pthread_mutex_unlock(&rt->mu);
    curl_multi_wakeup(rt->multi);
}

static void drop_snap(pool *p) {
    for (size_t i = 0; i < p->nsd_snap; i++)
        sd_tg_unref(p->sd_snap[i]);
    free(p->sd_snap);
    p->sd_snap = NULL;
    p->nsd_snap = 0;
}

void sd_pool_free(pool *p) {
    sd_runtime *rt = p->m ? p->m->sd : NULL;
    for (size_t i = 0; i < p->nsdp && rt; i++)
        provider_release(rt, p->sdp[i]);
    free(p->sdp);
    p->sdp = NULL;
    p->nsdp = 0;
    drop_snap(p);
    metric_remove(p->sd_metric);
    p->sd_metric = NULL;
}

static sd_provider *provider_new(sd_runtime *rt, const sd_ops *ops, const char *job, size_t idx, config *cfg,
                                 const void *conf) {
    sd_provider *p = calloc(1, sizeof *p);
    if (!p || !(p->job = strdup(job))) {
        free(p);
        return NULL;
    }
    p->ops = ops;
    p->rt = rt;
    p->cfg = config_retain(cfg);
    p->conf = conf;
    snprintf(p->name, sizeof p->name, "%s/%zu", ops->mechanism, idx);
    return p;
}

void sd_setup(scrape_manager *m, pool *p, const scrape_config *sc, config *cfg) {
    sd_runtime *rt = m->sd;
    if (!rt || (p->sc && p->nsdp && config_sd_equal(p->sc, sc)))
        return;
    if (!p->sd_metric) {
        const char *v[] = {sc->job_name, "scrape"};
        p->sd_metric = sd_metric(rt, "kiln_sd_discovered_targets", v);
    }
    for (size_t i = 0; i < p->nsdp; i++)
        provider_release(rt, p->sdp[i]);
    free(p->sdp);
    p->sdp = NULL;
    p->nsdp = 0;
    size_t n =
        sc->nhttp_sd_configs + sc->ndns_sd_configs + sc->nconsul_sd_configs + sc->nkubernetes_sd_configs;
    if (n == 0) {
        drop_snap(p);
        metric_set(p->sd_metric, 0);
        return;
    }
    if (!(p->sdp = calloc(n, sizeof *p->sdp)))
        return;
    struct {
        const sd_ops *ops;
        const char *items;
        size_t n, size;
    } kinds[] = {
        {&sd_http_ops, (const char *)sc->http_sd_configs, sc->nhttp_sd_configs, sizeof(config_http_sd)},
        {&sd_dns_ops, (const char *)sc->dns_sd_configs, sc->ndns_sd_configs, sizeof(config_dns_sd)},
        {&sd_consul_ops, (const char *)sc->consul_sd_configs, sc->nconsul_sd_configs,
         sizeof(config_consul_sd)},
        {&sd_kube_ops, (const char *)sc->kubernetes_sd_configs, sc->nkubernetes_sd_configs,
         sizeof(config_kubernetes_sd)},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (size_t i = 0; i < kinds[k].n; i++) {
            sd_provider *pr =
                provider_new(rt, kinds[k].ops, sc->job_name, i, cfg, kinds[k].items + i * kinds[k].size);
            if (pr)
                p->sdp[p->nsdp++] = pr;
        }
    p->sd_since_ms = time_now_ms();
    pthread_mutex_lock(&rt->mu);
    for (size_t i = 0; i < p->nsdp; i++) {
        p->sdp[i]->next = rt->incoming;
        rt->incoming = p->sdp[i];
    }
    pthread_mutex_unlock(&rt->mu);
    curl_multi_wakeup(rt->multi);
}

/* Takes p's providers' snapshots when one changed and the pool may sync
 * now; 1 when it took them, 0 when nothing changed, or the time (ms) at
 * which to look again. */
static int64_t pool_take(sd_runtime *rt, pool *p, int64_t now) {
    if (!p->nsdp)
        return 0;
    pthread_mutex_lock(&rt->mu);
    int changed = 0, ready = 1;
    size_t n = 0;
    for (size_t i = 0; i < p->nsdp; i++) {
        changed |= p->sdp[i]->changed;
        ready &= p->sdp[i]->ready;
        n += p->sdp[i]->nsnap;
    }
    if (!changed || (!ready && now - p->sd_since_ms < SD_READY_WAIT_MS) ||
        now - p->sd_synced_ms < SD_SYNC_MS) {
        pthread_mutex_unlock(&rt->mu);
        if (!changed)
            return 0;
        int64_t at = p->sd_synced_ms + SD_SYNC_MS;
        if (!ready && p->sd_since_ms + SD_READY_WAIT_MS > at)
            at = p->sd_since_ms + SD_READY_WAIT_MS;
        return at > now ? at : now + 1;
    }
    sd_tg **snap = calloc(n ? n : 1, sizeof *snap);
    if (!snap) {
        pthread_mutex_unlock(&rt->mu);
        return now + SD_SYNC_MS;
    }
    size_t k = 0;
    for (size_t i = 0; i < p->nsdp; i++) {
        for (size_t j = 0; j < p->sdp[i]->nsnap; j++)
            snap[k++] = sd_tg_ref(p->sdp[i]->snap[j]);
        p->sdp[i]->changed = 0;
    }
    pthread_mutex_unlock(&rt->mu);
    drop_snap(p);
    p->sd_snap = snap;
    p->nsd_snap = k;
    p->sd_synced_ms = now;
    size_t targets = 0;
    for (size_t i = 0; i < k; i++)
        targets += snap[i]->nt;
    metric_set(p->sd_metric, (double)targets);
    return 1;
}

/* The calling thread's CPU time, seconds. */
static double thread_cpu_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sd_on_published(scrape_manager *m) {
    sd_runtime *rt = m->sd;
    if (!rt || m->stopping)
        return;
    int64_t now = time_now_ms(), next = INT64_MAX;
    for (pool *p = m->pools; p; p = p->next) {
        int64_t r = pool_take(rt, p, now);
        if (r == 1) {
            double t0 = thread_cpu_sec();
            metric_add(sd_metric(rt, "kiln_sd_updates_total", NULL), 1);
            scrape_sync_pool(m, p, p->sc, p->cfg);
            metric_add(sd_metric(rt, "kiln_sd_sync_seconds_total", NULL), thread_cpu_sec() - t0);
        } else if (r > 1 && r < next) {
            next = r;
        }
    }
    if (next != INT64_MAX)
        uv_timer_start(&rt->timer, on_take_timer, (uint64_t)(next - now), 0);
}
