/*
 * target.c - a scrape target: how it is built from an address of a target
 * group, and its life.
 *
 * Building (target_build, called by the pool sync in scrape.c) follows
 * Prometheus' populateLabels: the group's labels and the job's defaults
 * (job, __scrape_interval__, __scrape_timeout__, __metrics_path__,
 * __scheme__, __param_*), relabel_configs, a default port, the interval and
 * timeout checked, __meta_* dropped, instance defaulted to the address; then
 * the URL (with __param_ overrides, sorted as Go's url.Values.Encode) and
 * the hash that identifies the target across reloads and offsets its
 * scrapes in the interval.
 *
 * Life of a scrape: the target's timer fires (on_target_timer) ->
 * fetch_start (fetch.c) -> the transfer ends and target_queue_job hands the
 * target to a worker thread (work_run: append_scrape, append.c) -> the
 * result is published under m->mu (work_done).  A target is in one of
 * three states (T_IDLE, T_FETCHING, T_WORKING); a timer that fires while
 * the previous scrape still runs counts a missed scrape.  A removed target
 * gets a last work item that writes stale markers for its series
 * (JOB_STALE), and is freed once its timer is closed and no work runs.
 *
 * Threading: the loop thread, except work_run (a worker thread).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "scrape/internal.h"
#include "scrape/relabel.h"

static const char *const rep_names[NREP] = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                                            "scrape_samples_post_metric_relabeling", "scrape_series_added"};

/* ---- building ------------------------------------------------------------ */

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
    char *u = b.data && buf_error(&b) == 0 ? arena_strndup(a, b.data, b.len) : NULL;
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

int target_build(const scrape_config *sc, arena *a, labels_builder *lb, label **disc, size_t *ndisc,
                 target *t, kiln_err *err) {
    char ival[32], tval[32];
    duration_format(sc->scrape_interval_ms, ival, sizeof ival);
    duration_format(sc->scrape_timeout_ms, tval, sizeof tval);
    int rc = 0;
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

/* ---- the loop ----------------------------------------------------------- */

static void work_run(uv_work_t *w) {
    target *t = w->data;
    if (t->job == JOB_STALE)
        append_stale(t);
    else
        append_scrape(t);
}

static void target_destroy(target *t) {
    scrape_manager *m = t->m;
    fetch_target_free(t);
    buf_free(&t->body);
    append_cache_free(&t->cache);
    for (size_t i = 0; i < t->nmeta; i++) {
        free(t->meta[i].name);
        free(t->meta[i].help);
        free(t->meta[i].unit);
    }
    free(t->meta);
    target_discard(t);
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
        target_queue_job(t, JOB_STALE);
        return;
    }
    if (t->dead)
        maybe_destroy(t);
    scrape_check_stopped(m); /* a finished work may be the last thing a stop waits for */
}

void target_queue_job(target *t, int job) {
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
void target_start(target *t) {
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
    scrape_handle_gone(m);
}

/* Takes a target out (caller holds nothing; the target is already unlinked). */
void target_remove(target *t, int stale) {
    scrape_manager *m = t->m;
    t->dead = 1;
    uv_timer_stop(&t->timer);
    if (t->state == T_FETCHING) {
        fetch_cancel(t);
        config_free(t->job_cfg);
        t->job_cfg = NULL;
        t->state = T_IDLE;
    }
    if (t->state == T_IDLE && stale && !m->stopping)
        target_queue_job(t, JOB_STALE);
    else if (t->state == T_WORKING)
        t->stale_pending = stale;
    uv_close((uv_handle_t *)&t->timer, timer_closed);
}

target *target_new(scrape_manager *m, pool *p) {
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

void target_discard(target *t) {
    free(t->disc_own);
    lb_free(&t->lb);
    arena_free(&t->mem);
    arena_free(&t->scratch);
    free(t);
}
