/*
 * scrape.c - the scrape manager and its pools (see scrape.h): the
 * manager's life (new, stop, free), applying a configuration, and keeping
 * each pool's targets in line with its groups.
 *
 * A pool is one scrape_config (a job).  Applying a config (on the loop
 * thread, woken by scrape_manager_apply through an async handle) removes the
 * pools no longer configured, and syncs each pool: its targets are built
 * anew from the static and file_sd groups (target.c), and a target whose
 * hash (labels and URL) matches a running one keeps the running one, so an
 * unchanged target scrapes on without a gap or a duplicate; the others stop
 * with stale markers or start.  A stop closes every handle and calls the
 * caller's done once the last one is closed and no work runs.
 *
 * Callers: cmd/kiln/main.c (new, apply, stop, free); filesd.c (a pool's
 * files changed: scrape_sync_pool); the files that close handles or end a
 * work item (scrape_handle_gone, scrape_check_stopped).
 *
 * Threading: the loop thread, except scrape_manager_apply (any thread).
 * m->mu guards the pool and target lists against the API's readers and
 * m->pending against scrape_manager_apply.
 */
#include "scrape/scrape.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "scrape/internal.h"
#include "scrape/sd.h"

/* ---- pools (loop thread) ------------------------------------------------ */

static void pool_destroy(pool *p) {
    config_free(p->cfg);
    arena_free(&p->dmem);
    filesd_free(p);
    free(p->dropped);
    free(p->job);
    free(p);
}

static void sd_timer_closed(uv_handle_t *h) {
    pool *p = h->data;
    scrape_manager *m = p->m;
    pool_destroy(p);
    scrape_handle_gone(m);
}

static void pool_free(pool *p) {
    sd_pool_free(p);
    if (p->sd_timer_on) {
        uv_timer_stop(&p->sd_timer);
        uv_close((uv_handle_t *)&p->sd_timer, sd_timer_closed);
    } else {
        pool_destroy(p);
    }
}

/* Moves the targets of list to the front of *to (reversing their order). */
static void prepend_all(target **to, target *list) {
    while (list) {
        target *n = list->next;
        list->next = *to;
        *to = list;
        list = n;
    }
}

/* target_remove for each target of list (unlinked from its pool). */
static void remove_all(target *list, int stale) {
    while (list) {
        target *n = list->next;
        target_remove(list, stale);
        list = n;
    }
}

/* The targets a sync builds, indexed by hash (open addressing, cap a power
 * of two), in the order they were built. */
typedef struct sync_ctx {
    scrape_manager *m;
    pool *p;
    const scrape_config *sc;
    target **made; /* dead set once matched with a running one */
    size_t nmade, capmade;
    target **idx;
    size_t capidx;
    arena dmem;
    dropped *drops;
    size_t ndrops, capdrops;
    labels_builder lb;
} sync_ctx;

static target **idx_slot(sync_ctx *c, uint64_t h) {
    size_t i = (size_t)h & (c->capidx - 1);
    while (c->idx[i] && c->idx[i]->hash != h)
        i = (i + 1) & (c->capidx - 1);
    return &c->idx[i];
}

/* Builds the target whose labels are in c->lb (what: its address, for a
 * message) and keeps it, or its discovered labels when relabeling drops it. */
static void sync_add(sync_ctx *c, const char *what) {
    target *t = target_new(c->m, c->p);
    if (!t)
        return;
    t->sc = c->sc;
    kiln_err err = {0};
    label *disc = NULL;
    size_t ndisc = 0;
    int rc = target_build(c->sc, &t->mem, &c->lb, &disc, &ndisc, t, &err);
    if (rc == 1) {
        t->disc = disc;
        t->ndisc = ndisc;
        /* duplicates of a target in one pool scrape once */
        target **slot = idx_slot(c, t->hash);
        if (!*slot && c->nmade < c->capmade) {
            *slot = t;
            c->made[c->nmade++] = t;
            return;
        }
    } else if (rc == 0) {
        /* out of memory: the dropped target is not listed */
        label *dl = array_grow((void **)&c->drops, &c->capdrops, c->ndrops + 1, sizeof *c->drops) == 0
                        ? labels_copy(&c->dmem, disc, ndisc)
                        : NULL;
        if (dl)
            c->drops[c->ndrops++] = (dropped){dl, ndisc};
    } else {
        LOG_WARN("Creating target failed", "scrape_pool=%s target=%s err=%s", c->sc->job_name, what, err.msg);
    }
    target_discard(t);
}

/* A running target kept by a sync takes the discovered labels of its new
 * build when they changed (meta labels that relabeling drops), as
 * Prometheus' SetDiscoveredLabels: copied into one block of its own.
 * Called under m->mu. */
static void keep_disc(target *o, const target *t) {
    if (!labels_cmp(o->disc, o->ndisc, t->disc, t->ndisc))
        return;
    size_t size = t->ndisc * sizeof(label);
    for (size_t i = 0; i < t->ndisc; i++)
        size += strlen(t->disc[i].name) + strlen(t->disc[i].value) + 2;
    label *ls = malloc(size ? size : 1);
    if (!ls)
        return;
    char *s = (char *)(ls + t->ndisc);
    for (size_t i = 0; i < t->ndisc; i++) {
        size_t nl = strlen(t->disc[i].name) + 1, vl = strlen(t->disc[i].value) + 1;
        memcpy(s, t->disc[i].name, nl);
        memcpy(s + nl, t->disc[i].value, vl);
        ls[i] = (label){s, s + nl};
        s += nl + vl;
    }
    free(o->disc_own);
    o->disc_own = ls;
    o->disc = ls;
    o->ndisc = t->ndisc;
}

void scrape_sync_pool(scrape_manager *m, pool *p, const scrape_config *sc, config *cfg) {
    int changed = !p->sc || !config_scrape_equal(p->sc, sc);
    sync_ctx c = {.m = m, .p = p, .sc = sc};
    arena_init(&c.dmem, 0);
    lb_init(&c.lb);
    size_t total = 0;
    for (size_t g = 0; g < sc->nstatic_configs; g++)
        total += sc->static_configs[g].ntargets;
    for (size_t g = 0; g < p->nsd; g++)
        total += p->sd_groups[g].ntargets;
    for (size_t g = 0; g < p->nsd_snap; g++)
        total += p->sd_snap[g]->nt;
    c.capidx = 16;
    while (c.capidx < 2 * total)
        c.capidx *= 2;
    c.idx = calloc(c.capidx, sizeof *c.idx);
    c.made = calloc(total ? total : 1, sizeof *c.made);
    c.capmade = c.idx && c.made ? total : 0;
    for (size_t g = 0; g < sc->nstatic_configs + p->nsd && c.capmade; g++) {
        int from_file = g >= sc->nstatic_configs;
        const config_static *grp =
            from_file ? &p->sd_groups[g - sc->nstatic_configs] : &sc->static_configs[g];
        const char *file = from_file ? p->sd_files[g - sc->nstatic_configs] : NULL;
        for (size_t i = 0; i < grp->ntargets; i++) {
            lb_reset(&c.lb);
            int rc = 0;
            for (size_t j = 0; j < grp->nlabels && rc == 0; j++)
                rc = lb_set(&c.lb, grp->labels[j].name, grp->labels[j].value);
            if (file && rc == 0)
                rc = lb_set(&c.lb, "__meta_filepath", file);
            if (rc == 0 && lb_set(&c.lb, "__address__", grp->targets[i]) == 0)
                sync_add(&c, grp->targets[i]);
        }
    }
    for (size_t g = 0; g < p->nsd_snap && c.capmade; g++) {
        const struct sd_tg *grp = p->sd_snap[g];
        for (size_t i = 0; i < grp->nt; i++) {
            lb_reset(&c.lb);
            int rc = 0;
            for (size_t j = 0; j < grp->nls && rc == 0; j++)
                rc = lb_set(&c.lb, grp->ls[j].name, grp->ls[j].value);
            for (size_t j = 0; j < grp->t[i].n && rc == 0; j++)
                rc = lb_set(&c.lb, grp->t[i].ls[j].name, grp->t[i].ls[j].value);
            const char *addr = labels_get(grp->t[i].ls, grp->t[i].n, "__address__");
            if (rc == 0)
                sync_add(&c, addr ? addr : "");
        }
    }
    lb_free(&c.lb);
    if (sc->target_limit && c.nmade > sc->target_limit) {
        LOG_WARN("target_limit exceeded: no target of the pool is scraped",
                 "scrape_pool=%s targets=%zu limit=%llu", sc->job_name, c.nmade,
                 (unsigned long long)sc->target_limit);
        for (size_t i = 0; i < c.nmade; i++)
            target_discard(c.made[i]);
        c.nmade = 0;
        memset(c.idx, 0, c.capidx * sizeof *c.idx);
    }
    /* keep the running targets that are still wanted, start the new ones */
    target *keep = NULL, *gone = NULL, *fresh = NULL;
    pthread_mutex_lock(&m->mu);
    target *old = p->targets;
    p->targets = NULL;
    while (old) {
        target *o = old;
        old = o->next;
        target **slot = c.capidx && c.idx ? idx_slot(&c, o->hash) : NULL;
        if (slot && *slot && !(*slot)->dead) {
            (*slot)->dead = 1; /* matched: discarded below; a second running one of the hash goes */
            keep_disc(o, *slot);
            o->next = keep;
            keep = o;
        } else {
            o->next = gone;
            gone = o;
        }
    }
    for (size_t i = 0; i < c.nmade; i++)
        if (c.made[i]->dead) {
            target_discard(c.made[i]);
        } else {
            c.made[i]->next = fresh;
            fresh = c.made[i];
        }
    free(c.made);
    free(c.idx);
    prepend_all(&p->targets, keep);
    prepend_all(&p->targets, fresh);
    config *old_cfg = p->cfg;
    p->cfg = config_retain(cfg); /* cfg may be p->cfg itself (a file_sd change) */
    config_free(old_cfg);
    p->sc = sc;
    arena_free(&p->dmem);
    free(p->dropped);
    p->dmem = c.dmem;
    p->dropped = c.drops;
    p->ndropped = c.ndrops;
    p->capdropped = c.capdrops;
    pthread_mutex_unlock(&m->mu);

    remove_all(gone, 1);
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
        remove_all(ts, 1);
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
            filesd_setup(m, p, sc);
        sd_setup(m, p, sc, cfg);
        scrape_sync_pool(m, p, sc, cfg);
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

void scrape_manager_set_features(scrape_manager *m, uint32_t features) {
    m->features = features;
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

KILN_MUST_CHECK static int register_metrics(scrape_manager *m) {
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
        {&m->m_ex_ooo, METRIC_COUNTER, "kiln_target_scrapes_exemplar_out_of_order_total",
         "Exemplars rejected as out of order (exemplar storage)."},
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
    scrape_manager *m = calloc(1, sizeof *m);
    if (!m)
        return kiln_err_set(err, KILN_ENOMEM, "scrape: out of memory");
    m->loop = loop;
    m->st = st;
    int rc = fetch_init(m, err);
    if (rc != 0) {
        free(m);
        return rc;
    }
    pthread_mutex_init(&m->mu, NULL);
    uv_async_init(loop, &m->async, on_async);
    m->async.data = m;
    m->handles++;
    if (register_metrics(m) != 0)
        LOG_WARN("could not register the scrape metrics", NULL);
    if (sd_runtime_new(m, &m->sd) != 0)
        LOG_WARN("could not start service discovery", NULL);
    *out = m;
    return 0;
}

void scrape_check_stopped(scrape_manager *m) {
    if (m->stopping && m->handles == 0 && m->works == 0 && m->done) {
        void (*d)(void *) = m->done;
        m->done = NULL;
        d(m->done_data);
    }
}

void scrape_handle_gone(scrape_manager *m) {
    m->handles--;
    scrape_check_stopped(m);
}

void scrape_handle_closed(uv_handle_t *h) {
    scrape_handle_gone(h->data);
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
        remove_all(ts, 0);
        pool_free(p);
    }
    sd_runtime_stop(m->sd);
    fetch_close(m);
    uv_close((uv_handle_t *)&m->async, scrape_handle_closed);
}

void scrape_manager_free(scrape_manager *m) {
    if (!m)
        return;
    config_free(m->pending);
    config_free(m->cfg);
    sd_runtime_free(m->sd);
    fetch_free(m);
    pthread_mutex_destroy(&m->mu);
    free(m);
}
