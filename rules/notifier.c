/*
 * notifier.c - the Alertmanager notifier (see notifier.h for what it does,
 * its threads and its lock).
 *
 * Parts: the v2 JSON encoding (notifier_encode), queued alerts (one
 * allocation each: the alert, its label arrays and its strings), the queue
 * (a ring of at most `cap` alerts), the Alertmanager sets built from a
 * configuration (am_sets, reference-counted, swapped whole at reload or
 * when a file SD file changes), and the sender thread that takes batches
 * and POSTs them with libcurl's multi interface, every Alertmanager at once.
 *
 * Invariants:
 * 1. qlen <= cap; the queued alerts are ring[(qhead + i) % cap], i < qlen,
 *    oldest first.
 * 2. n->sets is never NULL after notifier_new; a holder of a reference
 *    (sets->refs, counted under n->mu) may read the sets without the lock;
 *    the sets retain the configuration their pointers point into.
 * 3. Only the sender thread uses n->multi (notifier_free only wakes it).
 */
#include "rules/notifier.h"

#include <curl/curl.h>
#include <glob.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#ifndef KILN_VERSION
#define KILN_VERSION "0.0.0"
#endif

#define SD_POLL_MS 5000  /* how often file SD files are looked at */
#define SECRET_MAX 65536 /* bytes read from a password_file or credentials_file */
#define ALERTS_PATH_MAX 4096

/* ---- the v2 JSON encoding -------------------------------------------------------------------- */

/* Go's time.Format("2006-01-02T15:04:05.000Z07:00") of a UTC time. */
static void put_time(buf *out, int64_t ms) {
    char tmp[TIME_RFC3339_MAX];
    buf_putc(out, '"');
    if (ms == NOTIFIER_TIME_ZERO)
        buf_puts(out, "0001-01-01T00:00:00.000Z");
    else
        buf_append(out, tmp, (size_t)time_format_rfc3339(tmp, ms / 1000, ms % 1000 * 1000000, 3));
    buf_putc(out, '"');
}

/* A Go map[string]string as encoding/json writes it: keys sorted.  Label
 * sets are small, so the next name is found by a scan (no allocation). */
static void put_labelset(buf *out, const label *ls, size_t n) {
    const char *prev = NULL;
    buf_putc(out, '{');
    for (size_t k = 0; k < n; k++) {
        const label *next = NULL;
        for (size_t i = 0; i < n; i++)
            if ((!prev || strcmp(ls[i].name, prev) > 0) && (!next || strcmp(ls[i].name, next->name) < 0))
                next = &ls[i];
        if (!next)
            break;
        if (k)
            buf_putc(out, ',');
        json_str(out, next->name);
        buf_putc(out, ':');
        json_str(out, next->value);
        prev = next->name;
    }
    buf_putc(out, '}');
}

void notifier_encode(buf *out, const notifier_alert *alerts, size_t count) {
    buf_putc(out, '[');
    for (size_t i = 0; i < count; i++) {
        const notifier_alert *a = &alerts[i];
        buf_puts(out, i ? ",{" : "{");
        /* go-swagger's PostableAlert: its own fields, then the embedded
         * Alert's; `annotations` and `generatorURL` are omitempty. */
        if (a->nannotations) {
            buf_puts(out, "\"annotations\":");
            put_labelset(out, a->annotations, a->nannotations);
            buf_putc(out, ',');
        }
        buf_puts(out, "\"endsAt\":");
        put_time(out, a->ends_at_ms);
        buf_puts(out, ",\"startsAt\":");
        put_time(out, a->starts_at_ms);
        if (a->generator_url && *a->generator_url) {
            buf_puts(out, ",\"generatorURL\":");
            json_str(out, a->generator_url);
        }
        buf_puts(out, ",\"labels\":");
        put_labelset(out, a->labels, a->nlabels);
        buf_putc(out, '}');
    }
    buf_putc(out, ']');
}

/* ---- queued alerts ----------------------------------------------------------------------------- */

/* A copy of `src` with the labels ls[0..nls) (instead of src's), in one
 * allocation freed with free(); NULL when out of memory. */
static notifier_alert *alert_copy(const notifier_alert *src, const label *ls, size_t nls) {
    size_t nann = src->nannotations, strs = 0;
    for (size_t i = 0; i < nls; i++)
        strs += strlen(ls[i].name) + strlen(ls[i].value) + 2;
    for (size_t i = 0; i < nann; i++)
        strs += strlen(src->annotations[i].name) + strlen(src->annotations[i].value) + 2;
    const char *gen = src->generator_url ? src->generator_url : "";
    strs += strlen(gen) + 1;
    notifier_alert *a = malloc(sizeof *a + (nls + nann) * sizeof(label) + strs);
    if (!a)
        return NULL;
    label *arr = (label *)(a + 1);
    char *p = (char *)(arr + nls + nann);
#define COPY_STR(dst, s)                                                                                     \
    do {                                                                                                     \
        size_t len_ = strlen(s) + 1;                                                                         \
        memcpy(p, (s), len_);                                                                                \
        (dst) = p;                                                                                           \
        p += len_;                                                                                           \
    } while (0)
    for (size_t i = 0; i < nls; i++) {
        COPY_STR(arr[i].name, ls[i].name);
        COPY_STR(arr[i].value, ls[i].value);
    }
    for (size_t i = 0; i < nann; i++) {
        COPY_STR(arr[nls + i].name, src->annotations[i].name);
        COPY_STR(arr[nls + i].value, src->annotations[i].value);
    }
    COPY_STR(a->generator_url, gen);
#undef COPY_STR
    a->labels = arr;
    a->nlabels = nls;
    a->annotations = arr + nls;
    a->nannotations = nann;
    a->starts_at_ms = src->starts_at_ms;
    a->ends_at_ms = src->ends_at_ms;
    return a;
}

/* ---- the Alertmanager sets ---------------------------------------------------------------------- */

typedef struct am {
    char *url;
    metric_child *sent, *errors, *latency;
} am;

typedef struct am_set {
    const config_alertmanager *cfg;
    am *ams;
    size_t nams;
    char **dropped; /* URLs before relabeling of the targets relabel_configs dropped */
    size_t ndropped;
} am_set;

typedef struct am_sets {
    int refs; /* under n->mu */
    config *cfg;
    am_set *sets;
    size_t nsets;
    uint64_t sd_sig;       /* of the file SD files' names, sizes and mtimes when read */
    int64_t sd_read_ms;    /* when they were read */
    int64_t sd_refresh_ms; /* the shortest refresh_interval; 0 without file SD */
    arena mem;             /* owns everything above but cfg */
} am_sets;

struct notifier {
    notifier_options opts;
    pthread_mutex_t mu;
    pthread_cond_t more;
    notifier_alert **ring; /* invariant 1 */
    size_t cap, qhead, qlen;
    am_sets *sets; /* invariant 2 */
    atomic_int stopping;
    int running;
    pthread_t thread;
    CURLM *multi; /* invariant 3 */
    metric *m_sent, *m_errors, *m_latency;
    metric_child *c_dropped, *c_qlen, *c_qcap, *c_discovered;
};

static void sets_release(notifier *n, am_sets *s) {
    pthread_mutex_lock(&n->mu);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&n->mu);
    if (!last)
        return;
    config_free(s->cfg);
    arena_free(&s->mem);
    free(s);
}

static am_sets *sets_acquire(notifier *n) {
    pthread_mutex_lock(&n->mu);
    am_sets *s = n->sets;
    s->refs++;
    pthread_mutex_unlock(&n->mu);
    return s;
}

/* Go's path.Join("/", prefix, rest): '/'-separated, "." and ".." resolved,
 * no trailing slash, always absolute.  out has ALERTS_PATH_MAX bytes. */
static void path_join(const char *prefix, const char *rest, char *out) {
    char tmp[ALERTS_PATH_MAX];
    snprintf(tmp, sizeof tmp, "/%s/%s", prefix ? prefix : "", rest);
    size_t len = 0;
    for (char *save = NULL, *seg = strtok_r(tmp, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
        if (strcmp(seg, ".") == 0)
            continue;
        if (strcmp(seg, "..") == 0) {
            while (len > 0 && out[len - 1] != '/')
                len--;
            if (len > 0)
                len--;
            continue;
        }
        size_t sl = strlen(seg);
        if (len + sl + 2 > ALERTS_PATH_MAX)
            break;
        out[len++] = '/';
        memcpy(out + len, seg, sl);
        len += sl;
    }
    if (len == 0)
        out[len++] = '/';
    out[len] = 0;
}

static const char *label_get(const label *ls, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(ls[i].name, name) == 0)
            return ls[i].value;
    return "";
}

/* Sets name=value in ls[0..*n) (room for one more is the caller's). */
static void label_put(label *ls, size_t *n, const char *name, const char *value) {
    for (size_t i = 0; i < *n; i++)
        if (strcmp(ls[i].name, name) == 0) {
            ls[i].value = value;
            return;
        }
    ls[*n].name = name;
    ls[*n].value = value;
    (*n)++;
}

/* `<__scheme__>://<__address__><__alerts_path__>` as Go's url.URL prints it;
 * NULL when out of memory. */
static char *am_url(arena *a, const label *ls, size_t n) {
    const char *path = label_get(ls, n, "__alerts_path__");
    buf b = BUF_INIT;
    buf_printf(&b, "%s://%s%s%s", label_get(ls, n, "__scheme__"), label_get(ls, n, "__address__"),
               *path && *path != '/' ? "/" : "", path);
    char *s = buf_error(&b) ? NULL : arena_strndup(a, b.data, b.len);
    buf_free(&b);
    return s;
}

/*
 * Adds the Alertmanagers of one target group to set: each target's labels
 * as Prometheus' AlertmanagerFromGroup builds them, relabeled, and kept
 * when its URL is new to the set.  `file` names the group's file (file SD)
 * or is NULL.  0 or KILN_ENOMEM.
 */
static int add_group(notifier *n, am_sets *s, am_set *set, const config_static *g, const char *file,
                     size_t *cap_ams, size_t *cap_dropped) {
    const config_alertmanager *cfg = set->cfg;
    char path[ALERTS_PATH_MAX];
    path_join(cfg->path_prefix, "/api/v2/alerts", path);
    label *ls = arena_alloc(&s->mem, (g->nlabels + 4) * sizeof *ls);
    if (!ls)
        return KILN_ENOMEM;
    for (size_t t = 0; t < g->ntargets; t++) {
        size_t nls = 0;
        label_put(ls, &nls, "__address__", g->targets[t]);
        label_put(ls, &nls, "__scheme__", cfg->scheme ? cfg->scheme : "http");
        label_put(ls, &nls, "__alerts_path__", path);
        if (file)
            label_put(ls, &nls, "__meta_filepath", file);
        for (size_t i = 0; i < g->nlabels; i++)
            if (strcmp(g->labels[i].name, "__address__") != 0)
                label_put(ls, &nls, g->labels[i].name, g->labels[i].value);
        label *out = ls;
        size_t nout = nls;
        int keep = 1;
        if (cfg->nrelabel_configs) {
            keep =
                n->opts.relabel(cfg->relabel_configs, cfg->nrelabel_configs, ls, nls, &s->mem, &out, &nout);
            if (keep < 0)
                return keep;
            keep = keep && nout > 0;
        }
        if (!keep) {
            if (array_grow((void **)&set->dropped, cap_dropped, set->ndropped + 1, sizeof *set->dropped))
                return KILN_ENOMEM;
            if (!(set->dropped[set->ndropped++] = am_url(&s->mem, ls, nls)))
                return KILN_ENOMEM;
            continue;
        }
        const char *addr = label_get(out, nout, "__address__");
        if (!*addr || strchr(addr, '/')) {
            LOG_WARN("Skipping Alertmanager with an invalid address", "address=%s", addr);
            continue;
        }
        char *url = am_url(&s->mem, out, nout);
        if (!url)
            return KILN_ENOMEM;
        int seen = 0;
        for (size_t i = 0; i < set->nams && !seen; i++)
            seen = strcmp(set->ams[i].url, url) == 0;
        if (seen)
            continue;
        if (array_grow((void **)&set->ams, cap_ams, set->nams + 1, sizeof *set->ams))
            return KILN_ENOMEM;
        am *a = &set->ams[set->nams];
        const char *v[1] = {url};
        a->url = url;
        a->sent = metric_with(n->m_sent, v);
        a->errors = metric_with(n->m_errors, v);
        a->latency = metric_with(n->m_latency, v);
        if (!a->sent || !a->errors || !a->latency)
            return KILN_ENOMEM;
        set->nams++;
    }
    return 0;
}

/* The signature of the file SD files of c: their names, sizes and mtimes.
 * Also sets *refresh to the shortest refresh interval (0 without file SD). */
static uint64_t sd_signature(const config *c, int64_t *refresh) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    *refresh = 0;
    for (size_t i = 0; i < c->alerting.nalertmanagers; i++) {
        const config_alertmanager *cfg = &c->alerting.alertmanagers[i];
        for (size_t f = 0; f < cfg->nfile_sd_configs; f++) {
            const config_file_sd *fsd = &cfg->file_sd_configs[f];
            if (fsd->refresh_interval_ms > 0 && (*refresh == 0 || fsd->refresh_interval_ms < *refresh))
                *refresh = fsd->refresh_interval_ms;
            for (size_t p = 0; p < fsd->nfiles; p++) {
                glob_t gl;
                if (glob(fsd->files[p], 0, NULL, &gl) != 0)
                    continue;
                for (size_t k = 0; k < gl.gl_pathc; k++) {
                    struct stat st;
                    int64_t v[3] = {0, 0, -1};
                    if (stat(gl.gl_pathv[k], &st) == 0) {
                        v[0] = st.st_mtim.tv_sec;
                        v[1] = st.st_mtim.tv_nsec;
                        v[2] = st.st_size;
                    }
                    for (const char *q = gl.gl_pathv[k]; *q; q++)
                        h = (h ^ (unsigned char)*q) * 1099511628211ull;
                    for (size_t b = 0; b < sizeof v; b++)
                        h = (h ^ ((const unsigned char *)v)[b]) * 1099511628211ull;
                }
                globfree(&gl);
            }
        }
    }
    return h;
}

/* Adds the target groups of cfg's file SD files to set.  A file that does
 * not load is logged and, when `strict`, fails the build (KILN_EINVAL). */
static int add_file_sd(notifier *n, am_sets *s, am_set *set, int strict, size_t *cap_ams,
                       size_t *cap_dropped) {
    int rc = 0;
    for (size_t f = 0; f < set->cfg->nfile_sd_configs && rc == 0; f++) {
        const config_file_sd *fsd = &set->cfg->file_sd_configs[f];
        for (size_t p = 0; p < fsd->nfiles && rc == 0; p++) {
            glob_t gl;
            if (glob(fsd->files[p], 0, NULL, &gl) != 0)
                continue;
            for (size_t k = 0; k < gl.gl_pathc && rc == 0; k++) {
                config_static *groups;
                size_t ng;
                kiln_err err = {0};
                const char *file = arena_strndup(&s->mem, gl.gl_pathv[k], strlen(gl.gl_pathv[k]));
                if (!file) {
                    rc = KILN_ENOMEM;
                    break;
                }
                int lrc = config_load_targets(file, &s->mem, &groups, &ng, &err);
                if (lrc != 0) {
                    LOG_ERROR("Error reading Alertmanager file SD file", "file=%s err=%s", file, err.msg);
                    if (strict || lrc == KILN_ENOMEM)
                        rc = lrc;
                    continue;
                }
                for (size_t g = 0; g < ng && rc == 0; g++)
                    rc = add_group(n, s, set, &groups[g], file, cap_ams, cap_dropped);
            }
            globfree(&gl);
        }
    }
    return rc;
}

/* Copies the arrays grown with realloc into the arena, so the sets are freed at once. */
static int set_settle(am_sets *s, am_set *set) {
    am *ams = set->nams ? arena_alloc(&s->mem, set->nams * sizeof *ams) : NULL;
    char **dropped = set->ndropped ? arena_alloc(&s->mem, set->ndropped * sizeof *dropped) : NULL;
    if ((set->nams && !ams) || (set->ndropped && !dropped)) {
        free(set->ams);
        free(set->dropped);
        set->ams = NULL;
        set->dropped = NULL;
        set->nams = set->ndropped = 0;
        return KILN_ENOMEM;
    }
    if (set->nams)
        memcpy(ams, set->ams, set->nams * sizeof *ams);
    if (set->ndropped)
        memcpy(dropped, set->dropped, set->ndropped * sizeof *dropped);
    free(set->ams);
    free(set->dropped);
    set->ams = ams;
    set->dropped = dropped;
    return 0;
}

/*
 * Builds the Alertmanager sets of c (NULL: none).  `strict` (file SD
 * refresh) fails on a file that does not load, so the previous sets stay.
 * 0 and *out with one reference, or KILN_EINVAL (err) / KILN_ENOMEM.
 */
static int sets_build(notifier *n, const config *c, int strict, am_sets **out, kiln_err *err) {
    am_sets *s = calloc(1, sizeof *s);
    if (!s)
        return KILN_ENOMEM;
    arena_init(&s->mem, 0);
    s->refs = 1;
    int rc = 0;
    if (c) {
        const config_alerting *al = &c->alerting;
        int needs_relabel = al->nalert_relabel_configs > 0;
        for (size_t i = 0; i < al->nalertmanagers; i++)
            needs_relabel |=
                al->alertmanagers[i].nrelabel_configs || al->alertmanagers[i].nalert_relabel_configs;
        if (needs_relabel && !n->opts.relabel) {
            rc = kiln_err_set(err, KILN_EINVAL, "%s: alerting: relabel_configs need a relabel function",
                              c->name ? c->name : "config");
            goto fail;
        }
        s->cfg = config_retain((config *)c);
        s->sd_sig = sd_signature(c, &s->sd_refresh_ms);
        s->sd_read_ms = time_now_ms();
        s->nsets = al->nalertmanagers;
        if (s->nsets && !(s->sets = arena_alloc(&s->mem, s->nsets * sizeof *s->sets))) {
            rc = KILN_ENOMEM;
            goto fail;
        }
        for (size_t i = 0; i < s->nsets && rc == 0; i++) {
            am_set *set = &s->sets[i];
            size_t cap_ams = 0, cap_dropped = 0;
            set->cfg = &al->alertmanagers[i];
            for (size_t g = 0; g < set->cfg->nstatic_configs && rc == 0; g++)
                rc = add_group(n, s, set, &set->cfg->static_configs[g], NULL, &cap_ams, &cap_dropped);
            if (rc == 0)
                rc = add_file_sd(n, s, set, strict, &cap_ams, &cap_dropped);
            int src = set_settle(s, set);
            rc = rc ? rc : src;
        }
        if (rc == KILN_ENOMEM)
            kiln_err_set(err, rc, "out of memory building the Alertmanager list");
        else if (rc)
            kiln_err_set(err, rc, "an Alertmanager file SD file did not load");
        if (rc)
            goto fail;
    }
    *out = s;
    return 0;
fail:
    config_free(s->cfg);
    arena_free(&s->mem);
    free(s);
    return rc;
}

static size_t sets_count(const am_sets *s) {
    size_t k = 0;
    for (size_t i = 0; i < s->nsets; i++)
        k += s->sets[i].nams;
    return k;
}

/* Swaps s in (taking its reference) and releases the old sets. */
static void sets_swap(notifier *n, am_sets *s) {
    pthread_mutex_lock(&n->mu);
    am_sets *old = n->sets;
    n->sets = s;
    pthread_mutex_unlock(&n->mu);
    metric_set(n->c_discovered, (double)sets_count(s));
    if (old)
        sets_release(n, old);
}

int notifier_apply_config(notifier *n, const config *c, kiln_err *err) {
    am_sets *s;
    int rc = sets_build(n, c, 0, &s, err);
    if (rc)
        return rc;
    sets_swap(n, s);
    return 0;
}

/* Builds the sets again when a file SD file changed or the refresh interval
 * passed.  Sender thread. */
static void sd_poll(notifier *n) {
    am_sets *cur = sets_acquire(n);
    int64_t refresh, now = time_now_ms();
    uint64_t sig = cur->cfg ? sd_signature(cur->cfg, &refresh) : 0;
    if (cur->cfg && cur->sd_refresh_ms &&
        (sig != cur->sd_sig || now - cur->sd_read_ms >= cur->sd_refresh_ms)) {
        am_sets *s;
        kiln_err err = {0};
        if (sets_build(n, cur->cfg, 1, &s, &err) == 0)
            sets_swap(n, s);
        else
            LOG_WARN("Keeping the previous Alertmanagers", "err=%s", err.msg);
    }
    sets_release(n, cur);
}

/* ---- sending ------------------------------------------------------------------------------------ */

/* The file's contents without surrounding white space (Go's
 * strings.TrimSpace of os.ReadFile) in out; 0 or -1. */
static int read_secret(const char *path, buf *out) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char tmp[4096];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0 && out->len < SECRET_MAX)
        buf_append(out, tmp, k);
    fclose(f);
    size_t s = 0, e = out->len;
    while (s < e && strchr(" \t\r\n\v\f", out->data[s]))
        s++;
    while (e > s && strchr(" \t\r\n\v\f", out->data[e - 1]))
        e--;
    if (out->data) {
        memmove(out->data, out->data + s, e - s);
        out->len = e - s;
        out->data[out->len] = 0;
    }
    return buf_error(out) ? -1 : 0;
}

/* One request in flight and what it owns. */
typedef struct req {
    CURL *e;
    am *a;
    size_t nalerts;
    struct curl_slist *headers, *connect_to; /* connect_to: tls_config.server_name (util/curltls.c) */
    buf user, pass, auth;
    double begin;
} req;

static size_t discard_body(char *p, size_t size, size_t nmemb, void *data) {
    (void)p;
    (void)data;
    return size * nmemb;
}

/* Sets up r's easy handle to POST body to r->a with the set's client
 * settings; 0 or -1 (logged). */
static int req_setup(req *r, const config_alertmanager *cfg, const buf *body) {
    const config_http *h = &cfg->http;
    CURL *e = r->e = curl_easy_init();
    if (!e)
        return -1;
    r->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (h->has_authorization) {
        const char *type = h->auth_type ? h->auth_type : "Bearer";
        buf cred = BUF_INIT;
        if (h->credentials_file) {
            if (read_secret(h->credentials_file, &cred) != 0)
                LOG_ERROR("Cannot read credentials_file", "file=%s", h->credentials_file);
        } else if (h->credentials) {
            buf_puts(&cred, h->credentials);
        }
        buf_printf(&r->auth, "Authorization: %s %s", type, cred.data ? cred.data : "");
        buf_free(&cred);
        if (!buf_error(&r->auth))
            r->headers = curl_slist_append(r->headers, r->auth.data);
    }
    if (!r->headers)
        return -1;
    if (h->has_basic_auth) {
        buf_puts(&r->user, h->username ? h->username : "");
        if (h->password_file) {
            if (read_secret(h->password_file, &r->pass) != 0)
                LOG_ERROR("Cannot read password_file", "file=%s", h->password_file);
        } else {
            buf_puts(&r->pass, h->password ? h->password : "");
        }
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, r->user.data ? r->user.data : "");
        curl_easy_setopt(e, CURLOPT_PASSWORD, r->pass.data ? r->pass.data : "");
    }
    const config_tls *tls = &h->tls;
    const struct {
        const char *path;
        CURLoption opt;
    } tls_files[] = {
        {tls->ca_file, CURLOPT_CAINFO}, {tls->cert_file, CURLOPT_SSLCERT}, {tls->key_file, CURLOPT_SSLKEY}};
    for (size_t i = 0; i < sizeof tls_files / sizeof tls_files[0]; i++)
        if (tls_files[i].path)
            curl_easy_setopt(e, tls_files[i].opt, tls_files[i].path);
    long verify = tls->insecure_skip_verify ? 0L : 1L;
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, verify);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
    if (h->proxy_url)
        curl_easy_setopt(e, CURLOPT_PROXY, h->proxy_url);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, h->follow_redirects ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_URL, r->a->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    if (curltls_apply(e, r->a->url, tls->server_name, config_tls_version(tls->min_version), &r->headers,
                      &r->connect_to) != 0)
        return -1;
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body->data);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "kiln/" KILN_VERSION);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
    return 0;
}

static void req_free(req *r) {
    if (r->e)
        curl_easy_cleanup(r->e);
    curl_slist_free_all(r->headers);
    curl_slist_free_all(r->connect_to);
    buf_free(&r->user);
    buf_free(&r->pass);
    buf_free(&r->auth);
}

/*
 * alerts[0..count) relabeled by set's alert_relabel_configs into *out
 * (memory from a); *nout may be 0.  0 or KILN_ENOMEM.
 */
static int relabel_for_set(notifier *n, const config_alertmanager *cfg, notifier_alert *const *alerts,
                           size_t count, arena *a, notifier_alert **out, size_t *nout) {
    *nout = 0;
    notifier_alert *v = arena_alloc(a, (count ? count : 1) * sizeof *v);
    if (!v)
        return KILN_ENOMEM;
    for (size_t i = 0; i < count; i++) {
        label *ls;
        size_t nls;
        int keep = n->opts.relabel(cfg->alert_relabel_configs, cfg->nalert_relabel_configs, alerts[i]->labels,
                                   alerts[i]->nlabels, a, &ls, &nls);
        if (keep < 0)
            return keep;
        if (!keep || nls == 0)
            continue;
        v[*nout] = *alerts[i];
        v[*nout].labels = ls;
        v[*nout].nlabels = nls;
        (*nout)++;
    }
    *out = v;
    return 0;
}

/* Sends alerts[0..count) to every Alertmanager of s at once; returns the
 * number that answered 2xx.  Sender thread. */
static size_t send_all(notifier *n, am_sets *s, notifier_alert *const *alerts, size_t count) {
    arena a;
    arena_init(&a, 0);
    buf *bodies = calloc(s->nsets + 1, sizeof *bodies); /* [nsets]: the batch as it is */
    size_t *counts = calloc(s->nsets + 1, sizeof *counts);
    size_t nreq = 0, ok = 0;
    req *reqs = calloc(sets_count(s) + 1, sizeof *reqs);
    notifier_alert *plain = arena_alloc(&a, (count ? count : 1) * sizeof *plain);
    if (!bodies || !counts || !reqs || !plain)
        goto out;
    for (size_t i = 0; i < count; i++)
        plain[i] = *alerts[i];
    notifier_encode(&bodies[s->nsets], plain, count);
    counts[s->nsets] = count;
    double begin = time_mono_sec();
    for (size_t i = 0; i < s->nsets; i++) {
        am_set *set = &s->sets[i];
        size_t b = s->nsets;
        if (set->cfg->nalert_relabel_configs && set->nams) {
            notifier_alert *v;
            size_t nv;
            if (relabel_for_set(n, set->cfg, alerts, count, &a, &v, &nv) != 0)
                continue;
            if (nv == 0)
                continue;
            notifier_encode(&bodies[i], v, nv);
            counts[i] = nv;
            b = i;
        }
        if (buf_error(&bodies[b]))
            continue;
        for (size_t k = 0; k < set->nams; k++) {
            req *r = &reqs[nreq];
            r->a = &set->ams[k];
            r->nalerts = counts[b];
            r->begin = begin;
            if (req_setup(r, set->cfg, &bodies[b]) != 0 ||
                curl_multi_add_handle(n->multi, r->e) != CURLM_OK) {
                LOG_ERROR("Cannot set up a request to Alertmanager", "alertmanager=%s", r->a->url);
                metric_add(r->a->errors, 1);
                req_free(r);
                memset(r, 0, sizeof *r);
                continue;
            }
            nreq++;
        }
    }
    int running = (int)nreq;
    while (running > 0 && !atomic_load(&n->stopping)) {
        if (curl_multi_perform(n->multi, &running) != CURLM_OK)
            break;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(n->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            req *r = NULL;
            long code = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
            CURLcode res = msg->data.result;
            if (res == CURLE_OK && code / 100 == 2) {
                ok++;
            } else {
                char why[160];
                if (res != CURLE_OK)
                    snprintf(why, sizeof why, "%s", curl_easy_strerror(res));
                else
                    snprintf(why, sizeof why, "bad response status %ld %s", code,
                             http_status_text((int)code, ""));
                LOG_ERROR("Error sending alert", "alertmanager=%s count=%zu err=%s", r->a->url, r->nalerts,
                          why);
                metric_add(r->a->errors, 1);
            }
            metric_observe(r->a->latency, time_mono_sec() - r->begin);
            metric_add(r->a->sent, (double)r->nalerts);
        }
        if (running > 0)
            curl_multi_poll(n->multi, NULL, 0, 1000, NULL);
    }
    for (size_t i = 0; i < nreq; i++) {
        if (reqs[i].e)
            curl_multi_remove_handle(n->multi, reqs[i].e);
        req_free(&reqs[i]);
    }
out:
    for (size_t i = 0; bodies && i <= s->nsets; i++)
        buf_free(&bodies[i]);
    free(bodies);
    free(counts);
    free(reqs);
    arena_free(&a);
    return ok;
}

/* ---- the queue and the sender thread --------------------------------------------------------- */

/* Frees the k oldest queued alerts.  Under n->mu. */
static void queue_drop(notifier *n, size_t k) {
    for (size_t i = 0; i < k; i++) {
        free(n->ring[n->qhead]);
        n->qhead = (n->qhead + 1) % n->cap;
    }
    n->qlen -= k;
}

static void *sender_main(void *arg) {
    notifier *n = arg;
    size_t max = n->opts.max_batch;
    notifier_alert **batch = calloc(max, sizeof *batch);
    int64_t next_poll = time_now_ms() + SD_POLL_MS;
    pthread_mutex_lock(&n->mu);
    while (!atomic_load(&n->stopping) && batch) {
        if (n->qlen == 0 && time_now_ms() < next_poll) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += SD_POLL_MS / 1000;
            pthread_cond_timedwait(&n->more, &n->mu, &ts);
            continue;
        }
        if (time_now_ms() >= next_poll) {
            pthread_mutex_unlock(&n->mu);
            sd_poll(n);
            next_poll = time_now_ms() + SD_POLL_MS;
            pthread_mutex_lock(&n->mu);
            continue;
        }
        size_t k = n->qlen < max ? n->qlen : max;
        for (size_t i = 0; i < k; i++) {
            batch[i] = n->ring[n->qhead];
            n->qhead = (n->qhead + 1) % n->cap;
        }
        n->qlen -= k;
        metric_set(n->c_qlen, (double)n->qlen);
        am_sets *s = n->sets;
        s->refs++;
        pthread_mutex_unlock(&n->mu);
        if (send_all(n, s, batch, k) == 0)
            metric_add(n->c_dropped, (double)k);
        for (size_t i = 0; i < k; i++)
            free(batch[i]);
        sets_release(n, s);
        pthread_mutex_lock(&n->mu);
    }
    pthread_mutex_unlock(&n->mu);
    free(batch);
    return NULL;
}

/* The labels of a with the external labels added where a has none (or an
 * empty value), then the global alert relabeling; 1 and *out and *nout (memory
 * from ar), 0 when dropped, KILN_ENOMEM. */
static int alert_labels(notifier *n, const config *c, const notifier_alert *a, arena *ar, label **out,
                        size_t *nout) {
    size_t next = c ? c->global.nexternal_labels : 0;
    label *ls = arena_alloc(ar, (a->nlabels + next + 1) * sizeof *ls);
    if (!ls)
        return KILN_ENOMEM;
    size_t nls = a->nlabels;
    memcpy(ls, a->labels, nls * sizeof *ls);
    for (size_t i = 0; i < next; i++) {
        const config_label *e = &c->global.external_labels[i];
        if (*label_get(ls, nls, e->name) == 0)
            label_put(ls, &nls, e->name, e->value);
    }
    *out = ls;
    *nout = nls;
    if (c && c->alerting.nalert_relabel_configs) {
        int keep = n->opts.relabel(c->alerting.alert_relabel_configs, c->alerting.nalert_relabel_configs, ls,
                                   nls, ar, out, nout);
        if (keep <= 0)
            return keep;
    }
    return *nout > 0;
}

int notifier_send(notifier *n, const notifier_alert *alerts, size_t count) {
    if (count == 0)
        return 0;
    notifier_alert **copies = calloc(count, sizeof *copies);
    if (!copies)
        return KILN_ENOMEM;
    am_sets *s = sets_acquire(n);
    arena ar;
    arena_init(&ar, 0);
    int rc = 0;
    size_t k = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        label *ls;
        size_t nls;
        int keep = alert_labels(n, s->cfg, &alerts[i], &ar, &ls, &nls);
        if (keep < 0)
            rc = keep;
        else if (keep && !(copies[k++] = alert_copy(&alerts[i], ls, nls)))
            rc = KILN_ENOMEM;
    }
    arena_free(&ar);
    sets_release(n, s);
    if (rc) {
        for (size_t i = 0; i < k; i++)
            free(copies[i]);
        free(copies);
        return rc;
    }
    size_t first = 0, dropped = 0;
    if (k > n->cap) { /* a batch larger than the queue keeps its newest */
        first = k - n->cap;
        for (size_t i = 0; i < first; i++)
            free(copies[i]);
        dropped += first;
    }
    pthread_mutex_lock(&n->mu);
    if (n->qlen + (k - first) > n->cap) {
        size_t d = n->qlen + (k - first) - n->cap;
        queue_drop(n, d);
        dropped += d;
    }
    for (size_t i = first; i < k; i++)
        n->ring[(n->qhead + n->qlen++) % n->cap] = copies[i];
    metric_set(n->c_qlen, (double)n->qlen);
    pthread_cond_signal(&n->more);
    pthread_mutex_unlock(&n->mu);
    free(copies);
    if (dropped) {
        metric_add(n->c_dropped, (double)dropped);
        LOG_WARN("Alert notification queue full, dropping alerts", "num_dropped=%zu", dropped);
    }
    return 0;
}

size_t notifier_queue_length(notifier *n) {
    pthread_mutex_lock(&n->mu);
    size_t k = n->qlen;
    pthread_mutex_unlock(&n->mu);
    return k;
}

/* ---- lifecycle and views ------------------------------------------------------------------------ */

int notifier_new(const config *c, const notifier_options *opts, notifier **out, kiln_err *err) {
    *out = NULL;
    notifier *n = calloc(1, sizeof *n);
    if (!n)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    if (opts)
        n->opts = *opts;
    if (!n->opts.queue_capacity)
        n->opts.queue_capacity = NOTIFIER_DEFAULT_QUEUE_CAPACITY;
    if (!n->opts.max_batch)
        n->opts.max_batch = NOTIFIER_MAX_BATCH;
    n->cap = n->opts.queue_capacity;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->more, NULL);
    int rc = KILN_ENOMEM;
    if (!(n->ring = calloc(n->cap, sizeof *n->ring)))
        goto fail;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = KILN_EIO;
        goto fail;
    }
    if (!(n->multi = curl_multi_init())) {
        curl_global_cleanup();
        rc = KILN_EIO;
        goto fail;
    }
    n->m_sent = metric_new(METRIC_COUNTER, "kiln_notifications_sent_total", "Total number of alerts sent.",
                           "alertmanager", NULL, 0);
    n->m_errors = metric_new(METRIC_COUNTER, "kiln_notifications_errors_total",
                             "Total number of errors sending alert notifications.", "alertmanager", NULL, 0);
    n->m_latency = metric_new(METRIC_HISTOGRAM, "kiln_notifications_latency_seconds",
                              "Latency of sending alert notifications.", "alertmanager", NULL, 0);
    metric *dr = metric_new(METRIC_COUNTER, "kiln_notifications_dropped_total",
                            "Total number of alerts dropped due to errors when sending to Alertmanager.",
                            NULL, NULL, 0);
    metric *ql = metric_new(METRIC_GAUGE, "kiln_notifications_queue_length",
                            "The number of alert notifications in the queue.", NULL, NULL, 0);
    metric *qc = metric_new(METRIC_GAUGE, "kiln_notifications_queue_capacity",
                            "The capacity of the alert notifications queue.", NULL, NULL, 0);
    metric *di = metric_new(METRIC_GAUGE, "kiln_notifications_alertmanagers_discovered",
                            "The number of alertmanagers discovered and active.", NULL, NULL, 0);
    if (!n->m_sent || !n->m_errors || !n->m_latency || !dr || !ql || !qc || !di ||
        !(n->c_dropped = metric_default(dr)) || !(n->c_qlen = metric_default(ql)) ||
        !(n->c_qcap = metric_default(qc)) || !(n->c_discovered = metric_default(di)))
        goto fail_curl;
    metric_set(n->c_qcap, (double)n->cap);
    am_sets *s;
    if ((rc = sets_build(n, c, 0, &s, err)) != 0)
        goto fail_curl;
    sets_swap(n, s);
    *out = n;
    return 0;
fail_curl:
    curl_multi_cleanup(n->multi);
    curl_global_cleanup();
fail:
    if (rc == KILN_ENOMEM)
        kiln_err_set(err, rc, "out of memory");
    else if (rc == KILN_EIO && !n->multi)
        kiln_err_set(err, rc, "libcurl did not start");
    free(n->ring);
    pthread_cond_destroy(&n->more);
    pthread_mutex_destroy(&n->mu);
    free(n);
    return rc;
}

int notifier_run(notifier *n) {
    if (n->running)
        return 0;
    if (pthread_create(&n->thread, NULL, sender_main, n) != 0)
        return KILN_EIO;
    n->running = 1;
    return 0;
}

void notifier_free(notifier *n) {
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    atomic_store(&n->stopping, 1);
    pthread_cond_signal(&n->more);
    pthread_mutex_unlock(&n->mu);
    if (n->running) {
        curl_multi_wakeup(n->multi);
        pthread_join(n->thread, NULL);
    }
    queue_drop(n, n->qlen);
    sets_release(n, n->sets);
    curl_multi_cleanup(n->multi);
    curl_global_cleanup();
    free(n->ring);
    pthread_cond_destroy(&n->more);
    pthread_mutex_destroy(&n->mu);
    free(n);
}

/* A NULL-terminated malloc'd copy of urls[0..k); NULL when out of memory. */
static char **urls_dup(char *const *urls, size_t k) {
    char **v = calloc(k + 1, sizeof *v);
    for (size_t i = 0; v && i < k; i++)
        if (!(v[i] = strdup(urls[i]))) {
            notifier_urls_free(v);
            return NULL;
        }
    return v;
}

int notifier_alertmanagers(notifier *n, char ***active, size_t *nactive, char ***dropped, size_t *ndropped) {
    am_sets *s = sets_acquire(n);
    size_t na = sets_count(s), nd = 0;
    for (size_t i = 0; i < s->nsets; i++)
        nd += s->sets[i].ndropped;
    char **a = calloc(na + 1, sizeof *a), **d = calloc(nd + 1, sizeof *d);
    char **va = NULL, **vd = NULL;
    size_t ia = 0, id = 0;
    if (a && d) {
        for (size_t i = 0; i < s->nsets; i++) {
            for (size_t k = 0; k < s->sets[i].nams; k++)
                a[ia++] = s->sets[i].ams[k].url;
            for (size_t k = 0; k < s->sets[i].ndropped; k++)
                d[id++] = s->sets[i].dropped[k];
        }
        va = urls_dup(a, na);
        vd = urls_dup(d, nd);
    }
    free(a);
    free(d);
    sets_release(n, s);
    if (!va || !vd) {
        notifier_urls_free(va);
        notifier_urls_free(vd);
        return KILN_ENOMEM;
    }
    *active = va;
    *nactive = na;
    *dropped = vd;
    *ndropped = nd;
    return 0;
}

void notifier_urls_free(char **urls) {
    for (size_t i = 0; urls && urls[i]; i++)
        free(urls[i]);
    free(urls);
}
