/*
 * scrape.c - the scrape manager (see scrape.h).
 *
 * Life of a scrape: the target's timer fires on the loop thread -> its curl
 * easy handle joins the multi handle (fetch_start) -> curl's sockets are
 * polled by libuv (on_curl_socket, on_poll) -> the transfer ends
 * (fetch_done) -> the body is parsed and appended on a worker thread
 * (work_run: scrape_append) -> the result is published (work_done).  A
 * target is in one of three states (IDLE, FETCHING, WORKING); a timer that
 * fires while the previous scrape still runs counts a missed scrape.
 *
 * Target lists and the fields the API reads are guarded by m->mu; the
 * series cache, the report refs and the scratch memory belong to whichever
 * thread runs the target's work (one at a time).
 */
#include "scrape/scrape.h"

#include <curl/curl.h>
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "scrape/parse.h"
#include "scrape/relabel.h"

#ifndef KILN_VERSION
#define KILN_VERSION "0.0.0"
#endif

enum { T_IDLE, T_FETCHING, T_WORKING };
enum { JOB_SCRAPE, JOB_STALE };
enum { H_UNKNOWN, H_UP, H_DOWN };
enum { REP_UP, REP_DURATION, REP_SCRAPED, REP_POST, REP_ADDED, NREP };

static const char *const rep_names[NREP] = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                                            "scrape_samples_post_metric_relabeling", "scrape_series_added"};

static double stale_nan(void) {
    union {
        uint64_t u;
        double d;
    } x = {.u = 0x7ff0000000000002ULL};
    return x.d;
}

/* ---- the series cache ------------------------------------------------- */

/*
 * Entries are kept in the order their lines were first seen, keys in one
 * arena in the same order, and a scrape is expected to list its series in
 * the same order as the last one: the next entry is tried first (no hash, a
 * sequential walk through memory), the hash index only when the body
 * changed order or gained lines.
 */
typedef struct centry {
    const char *key; /* the series as written, in the cache's key arena */
    uint32_t klen;
    uint32_t seen; /* last scrape iteration with this line */
    uint64_t hash;
    uint64_t ref;        /* storage reference; 0 with dropped */
    uint8_t dropped;     /* metric relabeling drops it */
    uint8_t explicit_ts; /* the last sample had its own timestamp */
    uint8_t in_last;     /* has a live sample in the last stored scrape */
} centry;

typedef struct scache {
    centry *v; /* in first-seen order */
    size_t n, capv;
    uint32_t *idx; /* open addressing over v: index + 1, 0 empty; capi a power of two */
    size_t capi;
    arena keys;
    size_t cursor; /* the entry the next line is expected to be */
} scache;

/* The entry at the cursor when it is this line (the common case). */
static centry *cache_next(scache *c, const char *k, size_t klen) {
    if (c->cursor >= c->n)
        return NULL;
    centry *e = &c->v[c->cursor];
    if (e->klen != klen || memcmp(e->key, k, klen) != 0)
        return NULL;
    c->cursor++;
    return e;
}

static centry *cache_lookup(scache *c, uint64_t h, const char *k, size_t klen) {
    if (!c->capi)
        return NULL;
    for (size_t i = h & (c->capi - 1);; i = (i + 1) & (c->capi - 1)) {
        uint32_t x = c->idx[i];
        if (!x)
            return NULL;
        centry *e = &c->v[x - 1];
        if (e->hash == h && e->klen == klen && memcmp(e->key, k, klen) == 0) {
            c->cursor = x; /* the following line is expected next */
            return e;
        }
    }
}

static int cache_reindex(scache *c, size_t want) {
    size_t cap = 64;
    while (cap < want * 2)
        cap *= 2;
    uint32_t *idx = calloc(cap, sizeof *idx);
    if (!idx)
        return KILN_ENOMEM;
    for (size_t j = 0; j < c->n; j++) {
        size_t i = c->v[j].hash & (cap - 1);
        while (idx[i])
            i = (i + 1) & (cap - 1);
        idx[i] = (uint32_t)j + 1;
    }
    free(c->idx);
    c->idx = idx;
    c->capi = cap;
    return 0;
}

/* Forgets the entries last seen before min_seen that have no live sample. */
static int cache_compact(scache *c, uint32_t min_seen) {
    arena keys;
    arena_init(&keys, 0);
    size_t k = 0;
    for (size_t j = 0; j < c->n; j++) {
        centry e = c->v[j];
        if (e.seen < min_seen && !e.in_last)
            continue;
        char *nk = arena_alloc_nz(&keys, e.klen ? e.klen : 1);
        if (!nk) {
            arena_free(&keys);
            return KILN_ENOMEM;
        }
        memcpy(nk, e.key, e.klen);
        e.key = nk;
        c->v[k++] = e;
    }
    arena_free(&c->keys);
    c->keys = keys;
    c->n = k;
    c->cursor = 0;
    return cache_reindex(c, k + 1);
}

static centry *cache_add(scache *c, uint64_t h, const char *k, size_t klen) {
    if (c->n == c->capv) {
        size_t nc = c->capv ? c->capv * 2 : 64;
        centry *nv = realloc(c->v, nc * sizeof *nv);
        if (!nv)
            return NULL;
        c->v = nv;
        c->capv = nc;
    }
    if ((c->n + 1) * 4 > c->capi * 3 && cache_reindex(c, c->n + 1) != 0)
        return NULL;
    char *nk = arena_alloc_nz(&c->keys, klen ? klen : 1);
    if (!nk)
        return NULL;
    memcpy(nk, k, klen);
    centry *e = &c->v[c->n];
    memset(e, 0, sizeof *e);
    e->key = nk;
    e->klen = (uint32_t)klen;
    e->hash = h;
    size_t i = h & (c->capi - 1);
    while (c->idx[i])
        i = (i + 1) & (c->capi - 1);
    c->idx[i] = (uint32_t)++c->n;
    c->cursor = c->n;
    return e;
}

static void cache_free(scache *c) {
    free(c->v);
    free(c->idx);
    arena_free(&c->keys);
    memset(c, 0, sizeof *c);
}

/* ---- metadata --------------------------------------------------------- */

typedef struct mentry {
    char *name;
    int type; /* expo_type */
    char *help, *unit;
} mentry;

static const char *const type_names[] = {"unknown",        "counter", "gauge", "histogram",
                                         "gaugehistogram", "summary", "info",  "stateset"};

/* ---- targets and pools -------------------------------------------------- */

typedef struct pool pool;

typedef struct target {
    scrape_manager *m;
    pool *p;
    struct target *next;
    arena mem;
    label *ls; /* target labels (no "__" names), sorted */
    size_t nls;
    label *full; /* after relabeling, with the "__" names; sorted */
    size_t nfull;
    label *disc; /* discovered labels */
    size_t ndisc;
    label *rep[NREP]; /* the report series' label sets */
    char *url;
    uint64_t hash;
    int64_t interval_ms, timeout_ms;
    const scrape_config *sc; /* the pool's config when the target was (re)configured */

    uv_timer_t timer;
    int timer_closed, dead, stale_pending, state, configured;
    int64_t next_due_ms;
    CURL *easy;
    struct curl_slist *hdrs;
    buf body;
    int body_over;
    char ctype[128];
    int64_t start_ms;
    double start_mono;

    /* the work item */
    uv_work_t work;
    int job;
    const scrape_config *job_sc;
    config *job_cfg;
    char job_err[512];
    double job_duration;
    char job_result[512];
    int job_ok;

    /* owned by the thread running the work */
    scache cache;
    uint32_t iter;
    uint64_t rep_ref[NREP];
    arena scratch;
    labels_builder lb;

    /* guarded by m->mu */
    char last_error[512];
    int64_t last_scrape_ms;
    double last_duration;
    int health;
    mentry *meta;
    size_t nmeta, capmeta;
} target;

typedef struct dropped {
    label *ls;
    size_t n;
} dropped;

struct pool {
    pool *next;
    char *job;
    const scrape_config *sc;
    config *cfg; /* retained */
    target *targets;
    arena dmem; /* dropped targets' discovered labels */
    dropped *dropped;
    size_t ndropped, capdropped;
    /* file_sd_configs: the groups read last, and what the files looked like */
    scrape_manager *m;
    uv_timer_t sd_timer;
    int sd_timer_on;
    arena sd_mem;
    config_static *sd_groups;
    const char **sd_files; /* the file of each group */
    size_t nsd;
    uint64_t sd_sig;
    int64_t sd_read_ms;
};

struct scrape_manager {
    uv_loop_t *loop;
    storage *st;
    CURLM *multi;
    uv_timer_t ctimer;
    uv_async_t async;
    pthread_mutex_t mu;
    config *pending; /* the config to apply next (mu) */
    config *cfg;     /* the config applied last (retained) */
    pool *pools;
    struct csock *socks; /* polled sockets */
    int stopping, handles, works, multi_closed;
    void (*done)(void *);
    void *done_data;
    metric_child *m_missed, *m_late, *m_scrapes, *m_failed, *m_sample_limit, *m_ooo, *m_dup, *m_oob,
        *m_targets, *m_pools, *m_reloads;
};

/* ---- small helpers -------------------------------------------------- */

static char *amemdup(arena *a, const char *s, size_t n) {
    return arena_strndup(a, s, n);
}

static char *astrdup(arena *a, const char *s) {
    return arena_strndup(a, s, strlen(s));
}

static void url_escape(buf *b, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
            c == '_' || c == '.' || c == '~')
            buf_putc(b, (char)c);
        else if (c == ' ')
            buf_putc(b, '+');
        else {
            buf_putc(b, '%');
            buf_putc(b, hex[c >> 4]);
            buf_putc(b, hex[c & 15]);
        }
    }
}

typedef struct kv {
    const char *k, *v;
} kv;

static int kv_cmp(const void *a, const void *b) {
    const kv *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : (x < y ? -1 : x > y);
}

/* scheme://address/path?params, the params of the config overridden by
 * __param_<name> labels, sorted by name as Go's url.Values.Encode does. */
static char *target_url(arena *a, const scrape_config *sc, const label *ls, size_t n) {
    size_t np = 0;
    for (size_t i = 0; i < sc->nparams; i++)
        np += sc->params[i].nvalues;
    for (size_t i = 0; i < n; i++)
        np += strncmp(ls[i].name, "__param_", 8) == 0;
    kv *ps = calloc(np ? np : 1, sizeof *ps);
    if (!ps)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < sc->nparams; i++) {
        const char *ov = NULL;
        for (size_t j = 0; j < n; j++)
            if (strncmp(ls[j].name, "__param_", 8) == 0 && strcmp(ls[j].name + 8, sc->params[i].name) == 0)
                ov = ls[j].value;
        for (size_t j = 0; j < sc->params[i].nvalues; j++)
            ps[k++] = (kv){sc->params[i].name, j == 0 && ov ? ov : sc->params[i].values[j]};
    }
    for (size_t j = 0; j < n; j++) {
        if (strncmp(ls[j].name, "__param_", 8) != 0)
            continue;
        int have = 0;
        for (size_t i = 0; i < sc->nparams; i++)
            have |= sc->params[i].nvalues > 0 && strcmp(ls[j].name + 8, sc->params[i].name) == 0;
        if (!have)
            ps[k++] = (kv){ls[j].name + 8, ls[j].value};
    }
    qsort(ps, k, sizeof *ps, kv_cmp);
    buf b = {0};
    const char *scheme = labels_get(ls, n, "__scheme__"), *addr = labels_get(ls, n, "__address__"),
               *path = labels_get(ls, n, "__metrics_path__");
    buf_printf(&b, "%s://%s%s%s", scheme ? scheme : "http", addr ? addr : "",
               path && path[0] != '/' ? "/" : "", path ? path : "");
    for (size_t i = 0; i < k; i++) {
        buf_putc(&b, i ? '&' : '?');
        url_escape(&b, ps[i].k);
        buf_putc(&b, '=');
        url_escape(&b, ps[i].v);
    }
    free(ps);
    char *u = b.data ? astrdup(a, b.data) : NULL;
    buf_free(&b);
    return u;
}

/* Whether addr ends in a port (host:port or [v6]:port). */
static int has_port(const char *addr) {
    const char *c = strrchr(addr, ':');
    if (!c)
        return 0;
    if (addr[0] == '[')
        return c > strchr(addr, ']');
    return 1;
}

/*
 * Builds a target from one address of a static group, as Prometheus'
 * populateLabels does.  Returns 1 (an active target: *t filled), 0 (dropped
 * by relabeling: disc filled) or KILN_EINVAL (err says why).
 */
static int build_target(const scrape_config *sc, const config_static *g, const char *file, const char *addr,
                        arena *a, labels_builder *lb, label **disc, size_t *ndisc, target *t, kiln_err *err) {
    char ival[32], tval[32];
    duration_format(sc->scrape_interval_ms, ival, sizeof ival);
    duration_format(sc->scrape_timeout_ms, tval, sizeof tval);
    lb_reset(lb);
    int rc = lb_set(lb, "__address__", addr);
    if (file && rc == 0)
        rc = lb_set(lb, "__meta_filepath", file);
    for (size_t i = 0; i < g->nlabels && rc == 0; i++)
        rc = lb_set(lb, g->labels[i].name, g->labels[i].value);
    const char *defs[][2] = {{"job", sc->job_name},
                             {"__scrape_interval__", ival},
                             {"__scrape_timeout__", tval},
                             {"__metrics_path__", sc->metrics_path},
                             {"__scheme__", sc->scheme}};
    for (size_t i = 0; i < sizeof defs / sizeof defs[0] && rc == 0; i++) {
        size_t n;
        const label *cur = lb_labels(lb, &n);
        if (!labels_get(cur, n, defs[i][0]))
            rc = lb_set(lb, defs[i][0], defs[i][1]);
    }
    for (size_t i = 0; i < sc->nparams && rc == 0; i++) {
        if (sc->params[i].nvalues == 0)
            continue;
        char *name = arena_alloc(a, strlen(sc->params[i].name) + 9);
        if (!name)
            return KILN_ENOMEM;
        sprintf(name, "__param_%s", sc->params[i].name);
        rc = lb_set(lb, name, sc->params[i].values[0]);
    }
    if (rc != 0)
        return KILN_ENOMEM;
    size_t n;
    const label *ls = lb_labels(lb, &n);
    if (!(*disc = labels_copy(a, ls, n)))
        return KILN_ENOMEM;
    *ndisc = n;
    rc = relabel_apply(sc->relabel_configs, sc->nrelabel_configs, lb, a);
    if (rc < 0)
        return KILN_ENOMEM;
    if (rc == 0)
        return 0;
    ls = lb_labels(lb, &n);
    const char *address = labels_get(ls, n, "__address__");
    if (!address || !*address)
        return kiln_err_set(err, KILN_EINVAL, "no address");
    const char *scheme = labels_get(ls, n, "__scheme__");
    if (!has_port(address)) {
        if (scheme && strcmp(scheme, "http") && strcmp(scheme, "https") && *scheme)
            return kiln_err_set(err, KILN_EINVAL, "invalid scheme: \"%s\"", scheme);
        char *full = arena_alloc(a, strlen(address) + 5);
        if (!full)
            return KILN_ENOMEM;
        sprintf(full, "%s:%s", address, scheme && !strcmp(scheme, "https") ? "443" : "80");
        address = full;
        if (lb_set(lb, "__address__", full) != 0)
            return KILN_ENOMEM;
    }
    if (strchr(address, '/'))
        return kiln_err_set(err, KILN_EINVAL, "%s is not a valid hostname", address);
    ls = lb_labels(lb, &n);
    const char *iv = labels_get(ls, n, "__scrape_interval__"), *tv = labels_get(ls, n, "__scrape_timeout__");
    int64_t ims = 0, tms = 0;
    if (!iv || duration_parse(iv, &ims, NULL) != 0 || ims <= 0)
        return kiln_err_set(err, KILN_EINVAL, "error parsing interval: \"%s\"", iv ? iv : "");
    if (!tv || duration_parse(tv, &tms, NULL) != 0 || tms <= 0)
        return kiln_err_set(err, KILN_EINVAL, "error parsing timeout: \"%s\"", tv ? tv : "");
    if (tms > ims)
        return kiln_err_set(err, KILN_EINVAL,
                            "scrape timeout cannot be greater than scrape interval (\"%s\" > \"%s\")", tv,
                            iv);
    for (size_t i = 0; i < n; i++)
        if (strncmp(ls[i].name, "__meta_", 7) == 0) {
            lb_del(lb, ls[i].name);
            ls = lb_labels(lb, &n);
            i--;
        }
    if (!labels_get(ls, n, "instance") && lb_set(lb, "instance", address) != 0)
        return KILN_ENOMEM;
    ls = lb_labels(lb, &n);
    for (size_t i = 0; i < n; i++)
        if (!utf8_valid(ls[i].value, strlen(ls[i].value)))
            return kiln_err_set(err, KILN_EINVAL, "invalid label value for \"%s\": \"%s\"", ls[i].name,
                                ls[i].value);
    if (!(t->full = labels_copy(a, ls, n)))
        return KILN_ENOMEM;
    t->nfull = n;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += strncmp(ls[i].name, "__", 2) != 0;
    if (!(t->ls = arena_alloc(a, (k ? k : 1) * sizeof *t->ls)))
        return KILN_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (strncmp(t->full[i].name, "__", 2) != 0)
            t->ls[t->nls++] = t->full[i];
    if (!(t->url = target_url(a, sc, t->full, t->nfull)))
        return KILN_ENOMEM;
    t->interval_ms = ims;
    t->timeout_ms = tms;
    XXH3_state_t *xs = XXH3_createState();
    if (!xs)
        return KILN_ENOMEM;
    XXH3_64bits_reset(xs);
    uint64_t lh = labels_hash(t->full, t->nfull);
    XXH3_64bits_update(xs, &lh, sizeof lh);
    XXH3_64bits_update(xs, t->url, strlen(t->url));
    t->hash = XXH3_64bits_digest(xs);
    XXH3_freeState(xs);
    for (int r = 0; r < NREP; r++) {
        label *rl = arena_alloc(a, (t->nls + 1) * sizeof *rl);
        if (!rl)
            return KILN_ENOMEM;
        memcpy(rl, t->ls, t->nls * sizeof *rl);
        rl[t->nls] = (label){LABEL_NAME, rep_names[r]};
        labels_sort(rl, t->nls + 1);
        t->rep[r] = rl;
    }
    return 1;
}

/* ---- fetching (loop thread) ------------------------------------------ */

static void check_stopped(scrape_manager *m);
static void fetch_done(target *t, CURLcode res);
static void queue_job(target *t, int job);

typedef struct csock {
    uv_poll_t poll;
    curl_socket_t fd;
    scrape_manager *m;
    struct csock *prev, *next; /* m->socks */
} csock;

static void check_multi(scrape_manager *m) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *e = msg->easy_handle;
        CURLcode res = msg->data.result;
        target *t = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&t);
        curl_multi_remove_handle(m->multi, e);
        if (t)
            fetch_done(t, res);
    }
}

static void on_poll(uv_poll_t *h, int status, int events) {
    csock *c = h->data;
    int flags = status < 0 ? CURL_CSELECT_ERR : 0;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(c->m->multi, c->fd, flags, &running);
    check_multi(c->m);
}

static void csock_closed(uv_handle_t *h) {
    csock *c = h->data;
    scrape_manager *m = c->m;
    free(c);
    m->handles--;
    check_stopped(m);
}

static void csock_close(scrape_manager *m, csock *c) {
    if (c->prev)
        c->prev->next = c->next;
    else
        m->socks = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_poll_stop(&c->poll);
    uv_close((uv_handle_t *)&c->poll, csock_closed);
}

static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
    (void)e;
    scrape_manager *m = userp;
    csock *c = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (c) {
            csock_close(m, c);
            if (!m->multi_closed)
                curl_multi_assign(m->multi, s, NULL);
        }
        return 0;
    }
    if (!c) {
        if (!(c = calloc(1, sizeof *c)))
            return -1;
        c->fd = s;
        c->m = m;
        if (uv_poll_init_socket(m->loop, &c->poll, s) != 0) {
            free(c);
            return -1;
        }
        c->poll.data = c;
        c->next = m->socks;
        if (m->socks)
            m->socks->prev = c;
        m->socks = c;
        m->handles++;
        curl_multi_assign(m->multi, s, c);
    }
    int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&c->poll, ev, on_poll);
    return 0;
}

static void on_curl_timeout(uv_timer_t *h) {
    scrape_manager *m = h->data;
    int running;
    curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi(m);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    scrape_manager *m = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&m->ctimer);
    else
        uv_timer_start(&m->ctimer, on_curl_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *data) {
    target *t = data;
    size_t n = size * nmemb;
    uint64_t limit = t->job_sc ? t->job_sc->body_size_limit : 0;
    if (limit && t->body.len + n > limit) {
        t->body_over = 1;
        return 0;
    }
    return buf_append(&t->body, p, n) == 0 ? n : 0;
}

static char *read_secret(const char *inline_value, const char *file) {
    if (inline_value)
        return strdup(inline_value);
    if (!file)
        return NULL;
    FILE *f = fopen(file, "r");
    if (!f)
        return NULL;
    buf b = {0};
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_append(&b, tmp, n);
    fclose(f);
    while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
        b.data[--b.len] = 0;
    return b.data ? buf_steal(&b) : strdup("");
}

/* The Accept header for the config's protocols, OpenMetrics first by default. */
static void accept_header(const scrape_config *sc, buf *b) {
    static const double q[] = {1, 0.75, 0.5, 0.4, 0.3, 0.2};
    buf_puts(b, "Accept: ");
    size_t k = 0;
    for (size_t i = 0; i < sc->nscrape_protocols; i++) {
        const char *p = sc->scrape_protocols[i], *mt = NULL;
        if (!strcmp(p, "OpenMetricsText1.0.0"))
            mt = "application/openmetrics-text;version=1.0.0";
        else if (!strcmp(p, "OpenMetricsText0.0.1"))
            mt = "application/openmetrics-text;version=0.0.1";
        else if (!strcmp(p, "PrometheusText1.0.0"))
            mt = "text/plain;version=1.0.0";
        else if (!strcmp(p, "PrometheusText0.0.4"))
            mt = "text/plain;version=0.0.4";
        if (!mt)
            continue;
        buf_printf(b, "%s%s", k ? "," : "", mt);
        if (k)
            buf_printf(b, ";q=%g", q[k < 5 ? k : 5]);
        k++;
    }
    buf_printf(b, "%s*/*;q=0.1", k ? "," : "");
}

/* Sets the easy handle up for the target's current config. */
static int easy_setup(target *t) {
    const scrape_config *sc = t->sc;
    if (!t->easy && !(t->easy = curl_easy_init()))
        return KILN_ENOMEM;
    CURL *e = t->easy;
    curl_easy_reset(e);
    curl_slist_free_all(t->hdrs);
    t->hdrs = NULL;
    buf h = {0};
    accept_header(sc, &h);
    t->hdrs = curl_slist_append(t->hdrs, h.data ? h.data : "Accept: */*");
    buf_reset(&h);
    buf_printf(&h, "X-Prometheus-Scrape-Timeout-Seconds: %g", (double)t->timeout_ms / 1000.0);
    t->hdrs = curl_slist_append(t->hdrs, h.data ? h.data : "");
    if (sc->http.has_authorization) {
        char *cred = read_secret(sc->http.credentials, sc->http.credentials_file);
        buf_reset(&h);
        buf_printf(&h, "Authorization: %s %s", sc->http.auth_type ? sc->http.auth_type : "Bearer",
                   cred ? cred : "");
        free(cred);
        t->hdrs = curl_slist_append(t->hdrs, h.data ? h.data : "");
    }
    buf_free(&h);
    curl_easy_setopt(e, CURLOPT_URL, t->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->hdrs);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "kiln/" KILN_VERSION);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, sc->http.follow_redirects ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     sc->http.enable_http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
    if (sc->http.has_basic_auth) {
        char *pw = read_secret(sc->http.password, sc->http.password_file);
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, sc->http.username ? sc->http.username : "");
        curl_easy_setopt(e, CURLOPT_PASSWORD, pw ? pw : "");
        free(pw);
    }
    const config_tls *tls = &sc->http.tls;
    if (tls->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, tls->ca_file);
    if (tls->cert_file)
        curl_easy_setopt(e, CURLOPT_SSLCERT, tls->cert_file);
    if (tls->key_file)
        curl_easy_setopt(e, CURLOPT_SSLKEY, tls->key_file);
    if (tls->insecure_skip_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (sc->http.proxy_url)
        curl_easy_setopt(e, CURLOPT_PROXY, sc->http.proxy_url);
    t->configured = 1;
    return 0;
}

static void fetch_start(target *t) {
    scrape_manager *m = t->m;
    t->state = T_FETCHING;
    t->start_ms = time_now_ms();
    t->start_mono = time_mono_sec();
    t->job_sc = t->sc;
    t->job_cfg = config_retain(t->p->cfg);
    t->body_over = 0;
    t->job_err[0] = 0;
    buf_reset(&t->body);
    if (!t->configured && easy_setup(t) != 0) {
        snprintf(t->job_err, sizeof t->job_err, "out of memory setting up the request");
        fetch_done(t, CURLE_OK);
        return;
    }
    if (curl_multi_add_handle(m->multi, t->easy) != CURLM_OK) {
        snprintf(t->job_err, sizeof t->job_err, "cannot start the request");
        fetch_done(t, CURLE_OK);
    }
}

static const char *status_text(long code) {
    switch (code) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    default:
        return "";
    }
}

static void fetch_done(target *t, CURLcode res) {
    t->job_duration = time_mono_sec() - t->start_mono;
    t->ctype[0] = 0;
    if (!t->job_err[0]) {
        long code = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
        if (t->body_over)
            snprintf(t->job_err, sizeof t->job_err, "body size limit exceeded (limit: %llu bytes)",
                     (unsigned long long)t->job_sc->body_size_limit);
        else if (res == CURLE_OPERATION_TIMEDOUT)
            snprintf(t->job_err, sizeof t->job_err, "Get \"%s\": context deadline exceeded", t->url);
        else if (res != CURLE_OK)
            snprintf(t->job_err, sizeof t->job_err, "Get \"%s\": %s", t->url, curl_easy_strerror(res));
        else if (code != 200)
            snprintf(t->job_err, sizeof t->job_err, "server returned HTTP status %ld %s", code,
                     status_text(code));
        char *ct = NULL;
        if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
            snprintf(t->ctype, sizeof t->ctype, "%s", ct);
    }
    queue_job(t, JOB_SCRAPE);
}

/* ---- appending (worker thread) ------------------------------------- */

static int appended(target *t, int rc, kiln_err *e, char *why, size_t whyn) {
    scrape_manager *m = t->m;
    switch (rc) {
    case 0:
        return 0;
    case KILN_EORDER:
        metric_add(m->m_ooo, 1);
        return 0;
    case KILN_EEXIST:
        metric_add(m->m_dup, 1);
        return 0;
    case KILN_ERANGE:
        metric_add(m->m_oob, 1);
        return 0;
    default:
        snprintf(why, whyn, "%s", e->msg);
        return rc;
    }
}

/* Appends a sample by ref, creating the series again from ls when the ref
 * is no longer known (the head dropped an idle series). */
static int append_ref(appender *a, uint64_t *ref, const label *ls, size_t n, int64_t ts, double v,
                      kiln_err *e) {
    if (*ref) {
        int rc = appender_append(a, ref, NULL, 0, ts, v, e);
        if (rc != KILN_EINVAL)
            return rc;
        *ref = 0;
    }
    return appender_append(a, ref, ls, n, ts, v, e);
}

/* Merges the target labels into the sample's labels in lb (Prometheus'
 * mutateSampleLabels): with honor_labels the scraped ones win, otherwise
 * the target's do and clashing scraped labels become exported_<name>. */
static int merge_target_labels(target *t, const scrape_config *sc, labels_builder *lb, arena *a) {
    size_t n;
    const label *cur;
    for (size_t i = 0; i < t->nls; i++) {
        cur = lb_labels(lb, &n);
        const char *have = labels_get(cur, n, t->ls[i].name);
        if (sc->honor_labels) {
            if (!have && lb_set(lb, t->ls[i].name, t->ls[i].value) != 0)
                return KILN_ENOMEM;
            continue;
        }
        if (have) {
            /* find a free exported_ name for the scraped value */
            size_t nl = strlen(t->ls[i].name);
            char *name = NULL;
            for (int k = 1; k < 16; k++) {
                name = arena_alloc(a, nl + (size_t)k * 9 + 1);
                if (!name)
                    return KILN_ENOMEM;
                name[0] = 0;
                for (int j = 0; j < k; j++)
                    strcat(name, "exported_");
                strcat(name, t->ls[i].name);
                cur = lb_labels(lb, &n);
                int clash = labels_get(cur, n, name) != NULL || labels_get(t->ls, t->nls, name) != NULL;
                if (!clash)
                    break;
            }
            if (lb_set(lb, name, have) != 0)
                return KILN_ENOMEM;
        }
        if (lb_set(lb, t->ls[i].name, t->ls[i].value) != 0)
            return KILN_ENOMEM;
    }
    return 0;
}

/* Records a # HELP / # TYPE / # UNIT line. */
static void meta_note(target *t, expo_parser *p, expo_entry kind) {
    size_t nlen, tlen = 0;
    const char *name = expo_metric(p, &nlen);
    const char *text = kind == EXPO_TYPE ? NULL : expo_text(p, &tlen);
    mentry *e = NULL;
    for (size_t i = 0; i < t->nmeta; i++)
        if (strlen(t->meta[i].name) == nlen && memcmp(t->meta[i].name, name, nlen) == 0) {
            e = &t->meta[i];
            break;
        }
    if (e) {
        /* unchanged: nothing to do (the common case, no lock) */
        if (kind == EXPO_TYPE && e->type == (int)expo_metric_type(p))
            return;
        const char *old = kind == EXPO_HELP ? e->help : e->unit;
        if (kind != EXPO_TYPE && old && strlen(old) == tlen && memcmp(old, text, tlen) == 0)
            return;
    }
    pthread_mutex_lock(&t->m->mu);
    if (!e) {
        if (t->nmeta == t->capmeta) {
            size_t nc = t->capmeta ? t->capmeta * 2 : 16;
            mentry *nv = realloc(t->meta, nc * sizeof *nv);
            if (!nv)
                goto out;
            t->meta = nv;
            t->capmeta = nc;
        }
        e = &t->meta[t->nmeta];
        memset(e, 0, sizeof *e);
        if (!(e->name = strndup(name, nlen)))
            goto out;
        t->nmeta++;
    }
    if (kind == EXPO_TYPE) {
        e->type = (int)expo_metric_type(p);
    } else {
        char **slot = kind == EXPO_HELP ? &e->help : &e->unit;
        char *v = strndup(text, tlen);
        if (v) {
            free(*slot);
            *slot = v;
        }
    }
out:
    pthread_mutex_unlock(&t->m->mu);
}

/* Stale markers for the series of the last stored scrape that are not in
 * this one (all of them when `all`); then forgets series long gone. */
static int write_stale(target *t, appender *a, int64_t ts, int all, int track_explicit, char *why,
                       size_t whyn) {
    kiln_err e = {0};
    size_t gone = 0;
    for (size_t i = 0; i < t->cache.n; i++) {
        centry *c = &t->cache.v[i];
        int live = !all && c->seen == t->iter && !c->dropped;
        if (c->in_last && !live && (!c->explicit_ts || track_explicit)) {
            int rc = appender_append(a, &c->ref, NULL, 0, ts, stale_nan(), &e);
            if (rc == KILN_EINVAL)
                rc = 0; /* the series is gone from the head already */
            if ((rc = appended(t, rc, &e, why, whyn)) != 0)
                return rc;
        }
        c->in_last = live;
        gone += c->seen != t->iter;
    }
    if (gone && cache_compact(&t->cache, t->iter) != 0)
        return KILN_ENOMEM;
    return 0;
}

static int write_report(target *t, appender *a, int64_t ts, const double *v, char *why, size_t whyn) {
    kiln_err e = {0};
    for (int r = 0; r < NREP; r++) {
        int rc = append_ref(a, &t->rep_ref[r], t->rep[r], t->nls + 1, ts, v[r], &e);
        if ((rc = appended(t, rc, &e, why, whyn)) != 0)
            return rc;
    }
    return 0;
}

/* Parses and stages the body; 0, or an error with why set (the batch is then dropped). */
static int stage_samples(target *t, const scrape_config *sc, appender *a, int64_t ts, size_t *scraped,
                         size_t *post, size_t *added, char *why, size_t whyn) {
    kiln_err e = {0};
    t->cache.cursor = 0;
    expo_parser *p = expo_parser_new(expo_format_of(t->ctype[0] ? t->ctype : NULL),
                                     t->body.data ? t->body.data : "", t->body.len);
    if (!p) {
        snprintf(why, whyn, "out of memory");
        return KILN_ENOMEM;
    }
    int rc;
    expo_entry kind;
    while ((rc = expo_next(p, &kind, &e)) == 1) {
        if (kind != EXPO_SAMPLE) {
            if (kind == EXPO_TYPE || kind == EXPO_HELP || kind == EXPO_UNIT)
                meta_note(t, p, kind);
            continue;
        }
        (*scraped)++;
        size_t klen;
        const char *key = expo_series(p, &klen);
        uint64_t h = 0;
        centry *c = cache_next(&t->cache, key, klen);
        if (!c) {
            h = XXH3_64bits(key, klen);
            c = cache_lookup(&t->cache, h, key, klen);
        }
        int64_t st = ts;
        int explicit_ts = sc->honor_timestamps && expo_timestamp(p, &st);
        if (!explicit_ts)
            st = ts;
        double v = expo_value(p);
        if (c && c->dropped) {
            c->seen = t->iter;
            continue;
        }
        if (sc->sample_limit && *post + 1 > sc->sample_limit) {
            snprintf(why, whyn, "sample limit exceeded");
            metric_add(t->m->m_sample_limit, 1);
            rc = KILN_ELIMIT;
            break;
        }
        if (c && c->ref) {
            rc = appender_append(a, &c->ref, NULL, 0, st, v, &e);
            if (rc != KILN_EINVAL) {
                if ((rc = appended(t, rc, &e, why, whyn)) != 0)
                    break;
                c->seen = t->iter;
                c->explicit_ts = (uint8_t)explicit_ts;
                (*post)++;
                continue;
            }
            c->ref = 0; /* unknown ref: make the labels again */
        }
        /* a series new to the cache: build its labels */
        labels_builder *lb = &t->lb;
        lb_reset(lb);
        size_t mlen;
        const char *mname = expo_metric(p, &mlen);
        char *nm = amemdup(&t->scratch, mname, mlen);
        if (!nm || lb_set(lb, LABEL_NAME, nm) != 0)
            goto nomem;
        const expo_label *el;
        size_t nel = expo_labels(p, &el);
        for (size_t i = 0; i < nel; i++) {
            char *ln = amemdup(&t->scratch, el[i].name, el[i].name_len);
            char *lv = amemdup(&t->scratch, el[i].value, el[i].value_len);
            if (!ln || !lv || lb_set(lb, ln, lv) != 0)
                goto nomem;
        }
        if (merge_target_labels(t, sc, lb, &t->scratch) != 0)
            goto nomem;
        int keep = relabel_apply(sc->metric_relabel_configs, sc->nmetric_relabel_configs, lb, &t->scratch);
        if (keep < 0)
            goto nomem;
        size_t n = 0;
        const label *ls = lb_labels(lb, &n);
        if (keep && n == 0)
            keep = 0;
        if (!c && !(c = cache_add(&t->cache, h, key, klen)))
            goto nomem;
        c->seen = t->iter;
        if (!keep) {
            c->dropped = 1;
            continue;
        }
        if (!labels_get(ls, n, LABEL_NAME)) {
            snprintf(why, whyn, "missing metric name (__name__ label)");
            rc = KILN_EINVAL;
            break;
        }
        if (sc->label_limit && n > sc->label_limit) {
            snprintf(why, whyn, "label_limit exceeded (metric: %.50s, number of labels: %zu, limit: %llu)",
                     labels_get(ls, n, LABEL_NAME), n, (unsigned long long)sc->label_limit);
            rc = KILN_ELIMIT;
            break;
        }
        for (size_t i = 0; i < n && rc == 1; i++) {
            if (sc->label_name_length_limit && strlen(ls[i].name) > sc->label_name_length_limit) {
                snprintf(why, whyn,
                         "label_name_length_limit exceeded (metric: %.50s, label name: %.50s, limit: %llu)",
                         labels_get(ls, n, LABEL_NAME), ls[i].name,
                         (unsigned long long)sc->label_name_length_limit);
                rc = KILN_ELIMIT;
            } else if (sc->label_value_length_limit && strlen(ls[i].value) > sc->label_value_length_limit) {
                snprintf(
                    why, whyn,
                    "label_value_length_limit exceeded (metric: %.50s, label name: %.50s, value: \"%.50s\", "
                    "limit: %llu)",
                    labels_get(ls, n, LABEL_NAME), ls[i].name, ls[i].value,
                    (unsigned long long)sc->label_value_length_limit);
                rc = KILN_ELIMIT;
            }
        }
        if (rc != 1)
            break;
        uint64_t ref = 0;
        rc = appender_append(a, &ref, ls, n, st, v, &e);
        if (rc == KILN_EINVAL) {
            snprintf(why, whyn, "%s", e.msg);
            break;
        }
        if ((rc = appended(t, rc, &e, why, whyn)) != 0)
            break;
        c->ref = ref;
        c->explicit_ts = (uint8_t)explicit_ts;
        (*post)++;
        (*added)++;
        continue;
    nomem:
        snprintf(why, whyn, "out of memory");
        rc = KILN_ENOMEM;
        break;
    }
    if (rc < 0 && !why[0])
        snprintf(why, whyn, "%s", e.msg);
    expo_parser_free(p);
    return rc < 0 ? rc : 0;
}

static void scrape_append(target *t) {
    const scrape_config *sc = t->job_sc;
    storage *st = t->m->st;
    int64_t ts = t->start_ms;
    char why[512] = "";
    size_t scraped = 0, post = 0, added = 0;
    kiln_err e = {0};
    t->iter++;
    appender *a = storage_appender(st);
    int ok = a != NULL && !t->job_err[0];
    if (!a)
        snprintf(why, sizeof why, "out of memory");
    else if (t->job_err[0])
        snprintf(why, sizeof why, "%s", t->job_err);
    else if (stage_samples(t, sc, a, ts, &scraped, &post, &added, why, sizeof why) != 0) {
        ok = 0;
        appender_rollback(a);
        a = storage_appender(st);
    }
    if (!ok)
        scraped = post = added = 0;
    if (a) {
        char w2[512] = "";
        double rep[NREP] = {ok ? 1 : 0, t->job_duration, (double)scraped, (double)post, (double)added};
        if (write_stale(t, a, ts, !ok, sc->track_timestamps_staleness, w2, sizeof w2) != 0 ||
            write_report(t, a, ts, rep, w2, sizeof w2) != 0) {
            appender_rollback(a);
            if (ok)
                snprintf(why, sizeof why, "%s", w2);
            ok = 0;
        } else if (appender_commit(a, &e) != 0) {
            snprintf(why, sizeof why, "%s", e.msg);
            ok = 0;
        }
    }
    arena_free(&t->scratch);
    arena_init(&t->scratch, 0);
    t->job_ok = ok;
    snprintf(t->job_result, sizeof t->job_result, "%s", ok ? "" : why);
}

/* The target went away: stale markers for everything it had. */
static void stale_all(target *t) {
    appender *a = storage_appender(t->m->st);
    if (!a)
        return;
    char why[256] = "";
    int64_t ts = time_now_ms();
    double nan[NREP];
    for (int r = 0; r < NREP; r++)
        nan[r] = stale_nan();
    kiln_err e = {0};
    t->iter++;
    if (write_stale(t, a, ts, 1, 1, why, sizeof why) != 0 ||
        write_report(t, a, ts, nan, why, sizeof why) != 0) {
        appender_rollback(a);
        return;
    }
    if (appender_commit(a, &e) != 0)
        LOG_WARN("writing stale markers failed", "target=%s err=\"%s\"", t->url, e.msg);
}

static void work_run(uv_work_t *w) {
    target *t = w->data;
    if (t->job == JOB_STALE)
        stale_all(t);
    else
        scrape_append(t);
}

/* ---- target lifecycle (loop thread) --------------------------------- */

static void target_destroy(target *t) {
    scrape_manager *m = t->m;
    if (t->easy)
        curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->hdrs);
    buf_free(&t->body);
    cache_free(&t->cache);
    arena_free(&t->scratch);
    arena_free(&t->mem);
    lb_free(&t->lb);
    for (size_t i = 0; i < t->nmeta; i++) {
        free(t->meta[i].name);
        free(t->meta[i].help);
        free(t->meta[i].unit);
    }
    free(t->meta);
    free(t);
    metric_add(m->m_targets, -1);
}

static void maybe_destroy(target *t) {
    if (t->timer_closed && t->state == T_IDLE)
        target_destroy(t);
}

static void work_done(uv_work_t *w, int status) {
    target *t = w->data;
    scrape_manager *m = t->m;
    (void)status;
    m->works--;
    if (t->job == JOB_SCRAPE) {
        pthread_mutex_lock(&m->mu);
        snprintf(t->last_error, sizeof t->last_error, "%s", t->job_result);
        t->last_scrape_ms = t->start_ms;
        t->last_duration = t->job_duration;
        t->health = t->job_ok ? H_UP : H_DOWN;
        pthread_mutex_unlock(&m->mu);
        metric_add(m->m_scrapes, 1);
        if (!t->job_ok)
            metric_add(m->m_failed, 1);
    }
    config_free(t->job_cfg);
    t->job_cfg = NULL;
    t->state = T_IDLE;
    if (t->dead && t->stale_pending && !m->stopping) {
        t->stale_pending = 0;
        queue_job(t, JOB_STALE);
        return;
    }
    if (t->dead)
        maybe_destroy(t);
    check_stopped(m); /* a finished work may be the last thing a stop waits for */
}

static void queue_job(target *t, int job) {
    scrape_manager *m = t->m;
    t->state = T_WORKING;
    t->job = job;
    t->work.data = t;
    m->works++;
    if (uv_queue_work(m->loop, &t->work, work_run, work_done) != 0) {
        m->works--;
        t->state = T_IDLE;
        config_free(t->job_cfg);
        t->job_cfg = NULL;
    }
}

static void on_target_timer(uv_timer_t *h) {
    target *t = h->data;
    scrape_manager *m = t->m;
    int64_t now = time_now_ms();
    if (t->next_due_ms && now - t->next_due_ms > t->interval_ms / 10)
        metric_add(m->m_late, 1);
    t->next_due_ms = (t->next_due_ms ? t->next_due_ms : now) + t->interval_ms;
    if (t->next_due_ms < now)
        t->next_due_ms = now + t->interval_ms;
    if (t->state != T_IDLE) {
        metric_add(m->m_missed, 1);
        return;
    }
    fetch_start(t);
}

/* Starts (or restarts) the target's loop, offset in the interval by its hash. */
static void target_start(target *t) {
    int64_t iv = t->interval_ms;
    int64_t now = time_now_ms();
    int64_t base = iv - now % iv;
    int64_t off = (int64_t)(t->hash % (uint64_t)iv);
    int64_t first = (base + off) % iv;
    t->next_due_ms = now + first;
    uv_timer_start(&t->timer, on_target_timer, (uint64_t)first, (uint64_t)iv);
}

static void timer_closed(uv_handle_t *h) {
    target *t = h->data;
    scrape_manager *m = t->m;
    t->timer_closed = 1;
    maybe_destroy(t);
    m->handles--;
    check_stopped(m);
}

/* Takes a target out (caller holds nothing; the target is already unlinked). */
static void target_remove(target *t, int stale) {
    scrape_manager *m = t->m;
    t->dead = 1;
    uv_timer_stop(&t->timer);
    if (t->state == T_FETCHING) {
        curl_multi_remove_handle(m->multi, t->easy);
        config_free(t->job_cfg);
        t->job_cfg = NULL;
        t->state = T_IDLE;
    }
    if (t->state == T_IDLE && stale && !m->stopping)
        queue_job(t, JOB_STALE);
    else if (t->state == T_WORKING)
        t->stale_pending = stale;
    uv_close((uv_handle_t *)&t->timer, timer_closed);
}

static target *target_new(scrape_manager *m, pool *p) {
    target *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->m = m;
    t->p = p;
    t->sc = p->sc;
    arena_init(&t->mem, 0);
    arena_init(&t->scratch, 0);
    lb_init(&t->lb);
    return t;
}

/* ---- applying a config (loop thread) ------------------------------- */

static void pool_destroy(pool *p) {
    config_free(p->cfg);
    arena_free(&p->dmem);
    arena_free(&p->sd_mem);
    free(p->sd_files);
    free(p->dropped);
    free(p->job);
    free(p);
}

static void sd_timer_closed(uv_handle_t *h) {
    pool *p = h->data;
    scrape_manager *m = p->m;
    pool_destroy(p);
    m->handles--;
    check_stopped(m);
}

static void pool_free(pool *p) {
    if (p->sd_timer_on) {
        uv_timer_stop(&p->sd_timer);
        uv_close((uv_handle_t *)&p->sd_timer, sd_timer_closed);
    } else {
        pool_destroy(p);
    }
}

/* ---- file_sd_configs (loop thread) ------------------------------------ */

#define SD_POLL_MS 5000

/*
 * Reads the pool's target files again when their names, sizes or mtimes
 * changed, or the refresh interval passed.  Returns 1 when the groups were
 * replaced.  A file that does not load keeps the previous groups (and is
 * tried again at the next poll).
 */
static int sd_read(pool *p, const scrape_config *sc) {
    XXH3_state_t *xs = XXH3_createState();
    if (!xs)
        return 0;
    XXH3_64bits_reset(xs);
    glob_t *gs = calloc(sc->nfile_sd_configs + 1, sizeof *gs);
    if (!gs) {
        XXH3_freeState(xs);
        return 0;
    }
    int64_t refresh = INT64_MAX;
    for (size_t i = 0; i < sc->nfile_sd_configs; i++) {
        const config_file_sd *f = &sc->file_sd_configs[i];
        if (f->refresh_interval_ms > 0 && f->refresh_interval_ms < refresh)
            refresh = f->refresh_interval_ms;
        for (size_t j = 0; j < f->nfiles; j++)
            glob(f->files[j], j ? GLOB_APPEND : 0, NULL, &gs[i]);
        for (size_t j = 0; j < gs[i].gl_pathc; j++) {
            struct stat st;
            const char *path = gs[i].gl_pathv[j];
            XXH3_64bits_update(xs, path, strlen(path) + 1);
            if (stat(path, &st) == 0) {
                int64_t v[3] = {(int64_t)st.st_mtim.tv_sec, (int64_t)st.st_mtim.tv_nsec, (int64_t)st.st_size};
                XXH3_64bits_update(xs, v, sizeof v);
            }
        }
    }
    uint64_t sig = XXH3_64bits_digest(xs) | 1;
    XXH3_freeState(xs);
    int64_t now = time_now_ms();
    int changed = 0;
    if (sig != p->sd_sig || now - p->sd_read_ms >= refresh) {
        arena na;
        arena_init(&na, 0);
        config_static *groups = NULL;
        const char **files = NULL;
        size_t n = 0, cap = 0;
        int ok = 1;
        for (size_t i = 0; i < sc->nfile_sd_configs && ok; i++)
            for (size_t j = 0; j < gs[i].gl_pathc && ok; j++) {
                config_static *g = NULL;
                size_t ng = 0;
                kiln_err err = {0};
                const char *path = gs[i].gl_pathv[j];
                if (config_load_targets(path, &na, &g, &ng, &err) != 0) {
                    LOG_ERROR("Error reading file", "discovery=file scrape_pool=%s path=%s err=\"%s\"",
                              sc->job_name, path, err.msg);
                    ok = 0;
                    break;
                }
                const char *kept = astrdup(&na, path);
                if (n + ng > cap) {
                    size_t nc = (n + ng) * 2 + 8;
                    config_static *ngv = realloc(groups, nc * sizeof *ngv);
                    const char **nf = ngv ? realloc(files, nc * sizeof *nf) : NULL;
                    if (ngv)
                        groups = ngv;
                    if (!nf || !kept) {
                        ok = 0;
                        break;
                    }
                    files = nf;
                    cap = nc;
                }
                for (size_t k = 0; k < ng; k++) {
                    groups[n] = g[k];
                    files[n++] = kept;
                }
            }
        /* the groups move into the arena with everything they point to */
        config_static *copy = n ? arena_alloc(&na, n * sizeof *copy) : NULL;
        if (ok && (copy || !n)) {
            if (n)
                memcpy(copy, groups, n * sizeof *copy);
            free(groups);
            arena_free(&p->sd_mem);
            free(p->sd_files);
            p->sd_mem = na;
            p->sd_groups = copy;
            p->sd_files = files;
            p->nsd = n;
            p->sd_sig = sig;
            p->sd_read_ms = now;
            changed = 1;
        } else {
            arena_free(&na);
            free(groups);
            free(files);
        }
    }
    for (size_t i = 0; i < sc->nfile_sd_configs; i++)
        globfree(&gs[i]);
    free(gs);
    return changed;
}

static void sync_pool(scrape_manager *m, pool *p, const scrape_config *sc, config *cfg);

static void on_sd_timer(uv_timer_t *h) {
    pool *p = h->data;
    if (!p->m->stopping && sd_read(p, p->sc))
        sync_pool(p->m, p, p->sc, p->cfg);
}

/* Starts or stops the pool's file polling for its (new) config. */
static void sd_setup(scrape_manager *m, pool *p, const scrape_config *sc) {
    if (sc->nfile_sd_configs == 0) {
        if (p->sd_timer_on)
            uv_timer_stop(&p->sd_timer);
        arena_free(&p->sd_mem);
        free(p->sd_files);
        p->sd_files = NULL;
        p->sd_groups = NULL;
        p->nsd = 0;
        p->sd_sig = 0;
        return;
    }
    p->sd_sig = 0; /* the patterns may have changed: read again */
    sd_read(p, sc);
    if (!p->sd_timer_on) {
        uv_timer_init(m->loop, &p->sd_timer);
        p->sd_timer.data = p;
        p->sd_timer_on = 1;
        m->handles++;
    }
    uv_timer_start(&p->sd_timer, on_sd_timer, SD_POLL_MS, SD_POLL_MS);
}

static void sync_pool(scrape_manager *m, pool *p, const scrape_config *sc, config *cfg) {
    int changed = !p->sc || !config_scrape_equal(p->sc, sc);
    target *fresh = NULL;
    arena dmem;
    arena_init(&dmem, 0);
    dropped *drops = NULL;
    size_t ndrops = 0, capdrops = 0;
    labels_builder lb;
    lb_init(&lb);
    for (size_t g = 0; g < sc->nstatic_configs + p->nsd; g++) {
        int from_file = g >= sc->nstatic_configs;
        const config_static *grp =
            from_file ? &p->sd_groups[g - sc->nstatic_configs] : &sc->static_configs[g];
        const char *file = from_file ? p->sd_files[g - sc->nstatic_configs] : NULL;
        for (size_t i = 0; i < grp->ntargets; i++) {
            target *t = target_new(m, p);
            if (!t)
                continue;
            t->sc = sc;
            kiln_err err = {0};
            label *disc = NULL;
            size_t ndisc = 0;
            int rc = build_target(sc, grp, file, grp->targets[i], &t->mem, &lb, &disc, &ndisc, t, &err);
            if (rc == 1) {
                t->disc = disc;
                t->ndisc = ndisc;
                /* duplicates of a target in one pool scrape once */
                int dup = 0;
                for (target *o = fresh; o; o = o->next)
                    dup |= o->hash == t->hash;
                if (!dup) {
                    t->next = fresh;
                    fresh = t;
                    continue;
                }
            } else if (rc == 0) {
                if (ndrops == capdrops) {
                    size_t nc = capdrops ? capdrops * 2 : 16;
                    dropped *nv = realloc(drops, nc * sizeof *nv);
                    if (nv) {
                        drops = nv;
                        capdrops = nc;
                    }
                }
                if (ndrops < capdrops) {
                    label *c = labels_copy(&dmem, disc, ndisc);
                    if (c)
                        drops[ndrops++] = (dropped){c, ndisc};
                }
            } else {
                LOG_WARN("Creating target failed", "scrape_pool=%s target=%s err=\"%s\"", sc->job_name,
                         grp->targets[i], err.msg);
            }
            lb_free(&t->lb);
            arena_free(&t->mem);
            arena_free(&t->scratch);
            free(t);
        }
    }
    lb_free(&lb);
    if (sc->target_limit) {
        size_t n = 0;
        for (target *t = fresh; t; t = t->next)
            n++;
        if (n > sc->target_limit)
            LOG_WARN("target_limit exceeded: no target of the pool is scraped",
                     "scrape_pool=%s targets=%zu limit=%llu", sc->job_name, n,
                     (unsigned long long)sc->target_limit);
        if (n > sc->target_limit)
            while (fresh) {
                target *t = fresh;
                fresh = t->next;
                lb_free(&t->lb);
                arena_free(&t->mem);
                arena_free(&t->scratch);
                free(t);
            }
    }
    /* keep the running targets that are still wanted, start the new ones */
    target *keep = NULL, *gone = NULL;
    pthread_mutex_lock(&m->mu);
    target *old = p->targets;
    p->targets = NULL;
    while (old) {
        target *o = old;
        old = o->next;
        target **pf = &fresh, *match = NULL;
        for (; *pf; pf = &(*pf)->next)
            if ((*pf)->hash == o->hash) {
                match = *pf;
                *pf = match->next;
                break;
            }
        if (match) {
            lb_free(&match->lb);
            arena_free(&match->mem);
            arena_free(&match->scratch);
            free(match);
            o->next = keep;
            keep = o;
        } else {
            o->next = gone;
            gone = o;
        }
    }
    for (target *t = keep; t;) {
        target *n = t->next;
        t->next = p->targets;
        p->targets = t;
        t = n;
    }
    for (target *t = fresh; t;) {
        target *n = t->next;
        t->next = p->targets;
        p->targets = t;
        t = n;
    }
    config *old_cfg = p->cfg;
    p->cfg = config_retain(cfg); /* cfg may be p->cfg itself (a file_sd change) */
    config_free(old_cfg);
    p->sc = sc;
    arena_free(&p->dmem);
    free(p->dropped);
    p->dmem = dmem;
    p->dropped = drops;
    p->ndropped = ndrops;
    p->capdropped = capdrops;
    pthread_mutex_unlock(&m->mu);

    for (target *t = gone; t;) {
        target *n = t->next;
        target_remove(t, 1);
        t = n;
    }
    for (target *t = p->targets; t; t = t->next) {
        int is_new = !t->timer.loop;
        t->sc = sc; /* the old config goes once no scrape holds it */
        if (is_new) {
            uv_timer_init(m->loop, &t->timer);
            t->timer.data = t;
            m->handles++;
            metric_add(m->m_targets, 1);
            target_start(t);
        } else if (changed) {
            /* same target, new settings: restart with the new interval */
            t->sc = sc;
            t->configured = 0;
            uv_timer_stop(&t->timer);
            target_start(t);
        }
    }
}

static void apply_now(scrape_manager *m, config *cfg) {
    metric_add(m->m_reloads, 1);
    /* pools no longer configured go away with their targets */
    pool **pp = &m->pools;
    while (*pp) {
        pool *p = *pp;
        int wanted = 0;
        for (size_t i = 0; i < cfg->nscrape_configs; i++)
            wanted |= strcmp(cfg->scrape_configs[i].job_name, p->job) == 0;
        if (wanted) {
            pp = &p->next;
            continue;
        }
        pthread_mutex_lock(&m->mu);
        *pp = p->next;
        target *ts = p->targets;
        p->targets = NULL;
        pthread_mutex_unlock(&m->mu);
        while (ts) {
            target *n = ts->next;
            target_remove(ts, 1);
            ts = n;
        }
        pool_free(p);
    }
    for (size_t i = 0; i < cfg->nscrape_configs; i++) {
        const scrape_config *sc = &cfg->scrape_configs[i];
        pool *p = m->pools;
        while (p && strcmp(p->job, sc->job_name) != 0)
            p = p->next;
        if (!p) {
            if (!(p = calloc(1, sizeof *p)) || !(p->job = strdup(sc->job_name))) {
                free(p);
                continue;
            }
            arena_init(&p->dmem, 0);
            arena_init(&p->sd_mem, 0);
            p->m = m;
            pthread_mutex_lock(&m->mu);
            p->next = m->pools;
            m->pools = p;
            pthread_mutex_unlock(&m->mu);
        }
        if (!p->sc || !config_scrape_equal(p->sc, sc) || sc->nfile_sd_configs)
            sd_setup(m, p, sc);
        sync_pool(m, p, sc, cfg);
    }
    size_t np = 0;
    for (pool *p = m->pools; p; p = p->next)
        np++;
    metric_set(m->m_pools, (double)np);
    config_free(m->cfg);
    m->cfg = cfg;
}

static void on_async(uv_async_t *a) {
    scrape_manager *m = a->data;
    pthread_mutex_lock(&m->mu);
    config *c = m->pending;
    m->pending = NULL;
    pthread_mutex_unlock(&m->mu);
    if (c && m->stopping)
        config_free(c);
    else if (c)
        apply_now(m, c);
}

void scrape_manager_apply(scrape_manager *m, config *cfg) {
    config_retain(cfg);
    pthread_mutex_lock(&m->mu);
    if (m->stopping) {
        pthread_mutex_unlock(&m->mu);
        config_free(cfg);
        return;
    }
    config *old = m->pending;
    m->pending = cfg;
    pthread_mutex_unlock(&m->mu);
    config_free(old);
    uv_async_send(&m->async);
}

/* ---- the manager ------------------------------------------------------ */

static int register_metrics(scrape_manager *m) {
    struct {
        metric_child **slot;
        int type;
        const char *name, *help;
    } defs[] = {
        {&m->m_missed, METRIC_COUNTER, "kiln_scrape_missed_total",
         "Scrapes skipped because the previous scrape of the target was still running."},
        {&m->m_late, METRIC_COUNTER, "kiln_scrape_late_total",
         "Scrapes started more than a tenth of the interval after they were due."},
        {&m->m_scrapes, METRIC_COUNTER, "kiln_scrapes_total", "Scrapes done."},
        {&m->m_failed, METRIC_COUNTER, "kiln_scrapes_failed_total", "Scrapes that stored up 0."},
        {&m->m_sample_limit, METRIC_COUNTER, "kiln_target_scrapes_exceeded_sample_limit_total",
         "Scrapes that hit the sample limit and were rejected."},
        {&m->m_ooo, METRIC_COUNTER, "kiln_target_scrapes_sample_out_of_order_total",
         "Samples rejected as out of order."},
        {&m->m_dup, METRIC_COUNTER, "kiln_target_scrapes_sample_duplicate_timestamp_total",
         "Samples rejected for a duplicate timestamp with a different value."},
        {&m->m_oob, METRIC_COUNTER, "kiln_target_scrapes_sample_out_of_bounds_total",
         "Samples rejected for a timestamp out of the head's bounds."},
        {&m->m_targets, METRIC_GAUGE, "kiln_scrape_targets", "Active scrape targets."},
        {&m->m_pools, METRIC_GAUGE, "kiln_scrape_pools", "Scrape pools (jobs)."},
        {&m->m_reloads, METRIC_COUNTER, "kiln_scrape_config_applied_total", "Scrape configurations applied."},
    };
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        metric *f = metric_new(defs[i].type, defs[i].name, defs[i].help, NULL, NULL, 0);
        if (!f || !(*defs[i].slot = metric_default(f)))
            return KILN_ENOMEM;
    }
    return 0;
}

int scrape_manager_new(uv_loop_t *loop, storage *st, scrape_manager **out, kiln_err *err) {
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return kiln_err_set(err, KILN_EIO, "scrape: libcurl initialisation failed");
    scrape_manager *m = calloc(1, sizeof *m);
    if (!m)
        return kiln_err_set(err, KILN_ENOMEM, "scrape: out of memory");
    m->loop = loop;
    m->st = st;
    pthread_mutex_init(&m->mu, NULL);
    if (!(m->multi = curl_multi_init())) {
        pthread_mutex_destroy(&m->mu);
        free(m);
        return kiln_err_set(err, KILN_ENOMEM, "scrape: out of memory");
    }
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    uv_timer_init(loop, &m->ctimer);
    m->ctimer.data = m;
    uv_async_init(loop, &m->async, on_async);
    m->async.data = m;
    m->handles = 2;
    if (register_metrics(m) != 0)
        LOG_WARN("could not register the scrape metrics", NULL);
    *out = m;
    return 0;
}

static void check_stopped(scrape_manager *m) {
    if (m->stopping && m->handles == 0 && m->works == 0 && m->done) {
        void (*d)(void *) = m->done;
        m->done = NULL;
        d(m->done_data);
    }
}

static void manager_handle_closed(uv_handle_t *h) {
    scrape_manager *m = h->data;
    m->handles--;
    check_stopped(m);
}

void scrape_manager_stop(scrape_manager *m, void (*done)(void *data), void *data) {
    if (m->stopping)
        return;
    m->done = done;
    m->done_data = data;
    pthread_mutex_lock(&m->mu);
    m->stopping = 1;
    pool *ps = m->pools;
    m->pools = NULL;
    pthread_mutex_unlock(&m->mu);
    while (ps) {
        pool *p = ps;
        ps = p->next;
        target *ts = p->targets;
        p->targets = NULL;
        while (ts) {
            target *n = ts->next;
            target_remove(ts, 0);
            ts = n;
        }
        pool_free(p);
    }
    m->multi_closed = 1;
    curl_multi_cleanup(m->multi);
    m->multi = NULL;
    while (m->socks) /* sockets curl did not say goodbye to */
        csock_close(m, m->socks);
    uv_timer_stop(&m->ctimer);
    uv_close((uv_handle_t *)&m->ctimer, manager_handle_closed);
    uv_close((uv_handle_t *)&m->async, manager_handle_closed);
}

void scrape_manager_free(scrape_manager *m) {
    if (!m)
        return;
    config_free(m->pending);
    config_free(m->cfg);
    if (m->multi)
        curl_multi_cleanup(m->multi);
    pthread_mutex_destroy(&m->mu);
    free(m);
    curl_global_cleanup();
}

/* ---- the API's views (any thread) --------------------------------------- */

/* RFC 3339 with milliseconds, UTC; Go's zero time when never. */
static void json_time(buf *b, int64_t ms) {
    if (ms == 0) {
        buf_puts(b, "\"0001-01-01T00:00:00Z\"");
        return;
    }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    buf_printf(b, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
               tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static void json_target(buf *b, const target *t, const char *job) {
    static const char *const health[] = {"unknown", "up", "down"};
    char iv[32], tv[32], num[40];
    buf_puts(b, "{\"discoveredLabels\":");
    labels_json(b, t->disc, t->ndisc);
    buf_puts(b, ",\"labels\":");
    labels_json(b, t->ls, t->nls);
    buf_puts(b, ",\"scrapePool\":");
    json_str(b, job);
    buf_puts(b, ",\"scrapeUrl\":");
    json_str(b, t->url);
    buf_puts(b, ",\"globalUrl\":");
    json_str(b, t->url);
    buf_puts(b, ",\"lastError\":");
    json_str(b, t->last_error);
    buf_puts(b, ",\"lastScrape\":");
    json_time(b, t->last_scrape_ms);
    fmt_double_g(t->last_duration, num);
    duration_format(t->interval_ms, iv, sizeof iv);
    duration_format(t->timeout_ms, tv, sizeof tv);
    buf_printf(
        b, ",\"lastScrapeDuration\":%s,\"health\":\"%s\",\"scrapeInterval\":\"%s\",\"scrapeTimeout\":\"%s\"}",
        num, health[t->health], iv, tv);
}

int scrape_targets_json(scrape_manager *m, const char *state, const char *pool_name, buf *out) {
    int active = !state || !*state || !strcmp(state, "any") || !strcmp(state, "active");
    int drop = !state || !*state || !strcmp(state, "any") || !strcmp(state, "dropped");
    buf_puts(out, "{\"activeTargets\":[");
    pthread_mutex_lock(&m->mu);
    int first = 1;
    for (pool *p = m->pools; p && active; p = p->next) {
        if (pool_name && *pool_name && strcmp(pool_name, p->job))
            continue;
        for (target *t = p->targets; t; t = t->next) {
            if (!first)
                buf_putc(out, ',');
            first = 0;
            json_target(out, t, p->job);
        }
    }
    buf_puts(out, "],\"droppedTargets\":[");
    first = 1;
    for (pool *p = m->pools; p && drop; p = p->next) {
        if (pool_name && *pool_name && strcmp(pool_name, p->job))
            continue;
        for (size_t i = 0; i < p->ndropped; i++) {
            if (!first)
                buf_putc(out, ',');
            first = 0;
            buf_puts(out, "{\"discoveredLabels\":");
            labels_json(out, p->dropped[i].ls, p->dropped[i].n);
            buf_putc(out, '}');
        }
    }
    pthread_mutex_unlock(&m->mu);
    buf_puts(out, "]}");
    return out->data ? 0 : KILN_ENOMEM;
}

static void json_meta_fields(buf *b, const mentry *e) {
    buf_printf(
        b, "\"type\":\"%s\",\"help\":", type_names[e->type >= 0 && e->type <= EXPO_STATESET ? e->type : 0]);
    json_str(b, e->help ? e->help : "");
    buf_puts(b, ",\"unit\":");
    json_str(b, e->unit ? e->unit : "");
}

int scrape_targets_metadata_json(scrape_manager *m, const matcher *ms, size_t nms, const char *name,
                                 long limit, buf *out, kiln_err *err) {
    (void)err;
    long n = 0;
    buf_putc(out, '[');
    pthread_mutex_lock(&m->mu);
    for (pool *p = m->pools; p; p = p->next)
        for (target *t = p->targets; t; t = t->next) {
            int match = 1;
            for (size_t i = 0; i < nms && match; i++) {
                const char *v = labels_get(t->ls, t->nls, ms[i].name);
                match = matcher_matches(&ms[i], v ? v : "");
            }
            if (!match)
                continue;
            for (size_t i = 0; i < t->nmeta && (limit < 0 || n < limit); i++) {
                const mentry *e = &t->meta[i];
                if (name && *name && strcmp(name, e->name))
                    continue;
                buf_puts(out, n ? ",{\"target\":" : "{\"target\":");
                labels_json(out, t->ls, t->nls);
                buf_puts(out, ",\"metric\":");
                json_str(out, e->name);
                buf_putc(out, ',');
                json_meta_fields(out, e);
                buf_putc(out, '}');
                n++;
            }
        }
    pthread_mutex_unlock(&m->mu);
    buf_putc(out, ']');
    return out->data ? 0 : KILN_ENOMEM;
}

typedef struct mref {
    const char *name;
    const mentry *e;
} mref;

static int mref_cmp(const void *a, const void *b) {
    const mref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    if (x->e->type != y->e->type)
        return x->e->type - y->e->type;
    c = strcmp(x->e->help ? x->e->help : "", y->e->help ? y->e->help : "");
    return c ? c : strcmp(x->e->unit ? x->e->unit : "", y->e->unit ? y->e->unit : "");
}

int scrape_metadata_json(scrape_manager *m, const char *name, long limit, long limit_per_metric, buf *out) {
    pthread_mutex_lock(&m->mu);
    size_t total = 0;
    for (pool *p = m->pools; p; p = p->next)
        for (target *t = p->targets; t; t = t->next)
            total += t->nmeta;
    mref *v = calloc(total ? total : 1, sizeof *v);
    if (!v) {
        pthread_mutex_unlock(&m->mu);
        return KILN_ENOMEM;
    }
    size_t k = 0;
    for (pool *p = m->pools; p; p = p->next)
        for (target *t = p->targets; t; t = t->next)
            for (size_t i = 0; i < t->nmeta; i++)
                if (!name || !*name || !strcmp(name, t->meta[i].name))
                    v[k++] = (mref){t->meta[i].name, &t->meta[i]};
    qsort(v, k, sizeof *v, mref_cmp);
    buf_putc(out, '{');
    long metrics = 0, per = 0;
    for (size_t i = 0; i < k; i++) {
        int new_metric = i == 0 || strcmp(v[i].name, v[i - 1].name) != 0;
        if (!new_metric && mref_cmp(&v[i], &v[i - 1]) == 0)
            continue; /* the same metadata from another target */
        if (new_metric) {
            if (limit >= 0 && metrics >= limit)
                break;
            if (metrics)
                buf_puts(out, "],");
            json_str(out, v[i].name);
            buf_puts(out, ":[");
            metrics++;
            per = 0;
        }
        if (limit_per_metric >= 0 && per >= limit_per_metric)
            continue;
        buf_puts(out, per ? ",{" : "{");
        json_meta_fields(out, v[i].e);
        buf_putc(out, '}');
        per++;
    }
    if (metrics)
        buf_putc(out, ']');
    buf_putc(out, '}');
    pthread_mutex_unlock(&m->mu);
    free(v);
    return out->data ? 0 : KILN_ENOMEM;
}
