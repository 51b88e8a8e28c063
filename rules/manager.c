/*
 * manager.c - the rule manager: loads the rule files of a configuration,
 * keeps the running set of groups, evaluates each on its own schedule on a
 * pool of threads, hands alerts to the notifier, and answers the API's
 * views (rules.h is its interface).
 *
 * Called by cmd/kiln/main.c (new, run, apply at start and at each reload,
 * free) and api/ (the JSON views, on HTTP worker threads).
 *
 * Design.  Each rules_manager_apply builds a generation: the rule file set,
 * the configuration (retained), the rules_env its groups borrow (external
 * labels, external URL, the notifier) and one slot per group.  The running
 * generation is swapped under the manager's mutex while no group evaluates;
 * the old one is freed then, or, when the new one left groups out, once
 * their stale markers are written two intervals later (a retired
 * generation), as Prometheus marks the series of a removed group.  One scheduler thread sleeps until the
 * earliest slot is due and queues it; eval_threads workers take queued slots
 * and evaluate them at their scheduled timestamp.  Prometheus' schedule:
 * a group's timestamps are multiples of its interval plus its hash offset
 * (rule_group_next_eval_ms); after an evaluation that overran, the slots it
 * passed are counted missed and the latest one passed is evaluated at once
 * (rules_next_slot).
 *
 * States of a slot: idle (waiting for next_ms) -> queued -> running -> idle;
 * a removed group's slot: retiring (waiting for stale_ms) -> queued ->
 * running (rule_group_mark_stale) -> done.
 *
 * Invariants:
 *  1. A slot is queued or running at most once: a group never runs twice at
 *     once (the scheduler skips slots that are queued or running).
 *  2. Only slots of the running generation and retiring slots of retired
 *     ones are in the queue; apply empties it.
 *  3. apply swaps generations only while no slot runs (m->paused stops the
 *     workers and the scheduler; apply waits for nrunning == 0), so
 *     rule_group_copy_state and rule_group_free never meet an evaluation.
 *  4. A metric child of a group key is removed only when no group of the new
 *     generation has that key.
 *
 * Threads and locks: m->mu guards the generation pointer, the queue, the
 * slots' scheduling fields and the flags; the API's readers hold it while
 * they walk the groups (so a generation cannot be freed under them).  Lock
 * order: m->mu, then a group's mutex (taken inside rule_group_json and
 * rule_group_foreach_alert), then the notifier's.  An evaluation holds no
 * manager lock.
 */
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rules/group.h"
#include "rules/rules_int.h"
#include "rules/template.h"

/* What the arena pool keeps when the workers go idle: the smallest blocks,
 * with which every query starts.  A group's queries map the rest afresh,
 * which costs page faults (a few % of an evaluation) and saves the working
 * memory of the busiest group between evaluations (the pool's blocks are
 * mapped: what it drops is returned at once; 4 MB kept was a third of the
 * rules' resident memory in tests/bench/rules_vs_prometheus.py). */
#define RULES_IDLE_POOL_KEEP ((size_t)1 << 20)

/* ---- loading -------------------------------------------------------------- */

rules_options rules_options_default(void) {
    rules_options o = {0};
    o.engine = query_engine_opts_default();
    o.outage_tolerance_ms = 3600 * 1000;
    o.for_grace_period_ms = 600 * 1000;
    o.resend_delay_ms = 60 * 1000;
    o.queue_capacity = NOTIFIER_DEFAULT_QUEUE_CAPACITY;
    o.external_url = "http://localhost:9090";
    return o;
}

static void load_report(void *data, const char *msg) {
    buf *b = data;
    if (b->len)
        buf_putc(b, '\n');
    buf_puts(b, msg);
}

int rules_load(const config *c, rulefile_set **out, kiln_err *err) {
    buf errs = BUF_INIT;
    rulefile_opts o = {
        .check_expr = query_parse_check, .check_template = tmpl_check, .report = load_report, .data = &errs};
    *out = NULL;
    int rc = rulefile_load_globs((const char *const *)c->rule_files, c->nrule_files, &o, out, err);
    if (rc != 0 && errs.len && buf_error(&errs) == 0)
        kiln_err_set(err, rc, "%s", errs.data);
    buf_free(&errs);
    return rc;
}

/* ---- the manager ---------------------------------------------------------- */

/* A group's metrics, per rule_group="<file>;<name>" as Prometheus labels them. */
enum {
    GM_LAST_DURATION,
    GM_INTERVAL,
    GM_LAST_EVAL,
    GM_RULES,
    GM_ITERATIONS,
    GM_MISSED,
    GM_EVALS,
    GM_FAILURES,
    GM_COUNT
};

typedef struct mgr_slot {
    rule_group *g;
    const rulefile_group *def;
    char *key;       /* "<file>;<name>" */
    int64_t next_ms; /* the timestamp of its next evaluation */
    int queued, running;
    int64_t stale_ms, stop_ms; /* removed by a reload: stale markers at stop_ms, written at stale_ms */
    struct mgr_gen *gen;
    uint64_t seen_evals, seen_failures; /* the group's counters already added to the metrics */
    metric_child *c[GM_COUNT];
} mgr_slot;

/* What one apply made running: everything its groups borrow. */
typedef struct mgr_gen {
    rulefile_set *set;
    config *cfg; /* retained */
    rules_env env;
    label *ext; /* env.external_labels: strings of cfg */
    mgr_slot *slots;
    size_t nslots;
    size_t nretiring; /* slots whose stale markers are still to be written */
} mgr_gen;

struct rules_manager {
    storage *st;
    rules_options opts;
    char *external_url;
    notifier *notify;
    metric *fam[GM_COUNT];
    metric_child *group_duration, *rule_duration;

    pthread_mutex_t mu;
    pthread_cond_t sched_cv; /* the scheduler: the slots or the flags changed */
    pthread_cond_t work_cv;  /* the workers: the queue or the flags changed */
    pthread_cond_t idle_cv;  /* apply: nrunning fell to 0 */
    mgr_gen *gen;            /* NULL before the first apply */
    mgr_gen **retired;       /* replaced generations with removed groups still to mark stale */
    size_t nretired, capretired;
    int applied; /* an apply succeeded: later generations do not restore */
    int stopping, paused, started;
    size_t nrunning;
    mgr_slot **queue; /* FIFO of due slots: queue[qhead .. qhead+nqueue) modulo capqueue */
    size_t qhead, nqueue, capqueue;
    pthread_t sched;
    pthread_t *workers;
    int nworkers;
};

int64_t rules_next_slot(int64_t ts_ms, int64_t interval_ms, int64_t now_ms, int64_t *missed) {
    *missed = 0;
    if (interval_ms <= 0 || now_ms < ts_ms + interval_ms)
        return ts_ms + (interval_ms > 0 ? interval_ms : 1000);
    int64_t k = (now_ms - ts_ms) / interval_ms;
    *missed = k - 1;
    return ts_ms + k * interval_ms;
}

static int label_cmp(const void *a, const void *b) {
    return strcmp(((const label *)a)->name, ((const label *)b)->name);
}

static void gen_free(mgr_gen *gen) {
    if (!gen)
        return;
    for (size_t i = 0; i < gen->nslots; i++) {
        rule_group_free(gen->slots[i].g);
        free(gen->slots[i].key);
    }
    free(gen->slots);
    free(gen->ext);
    rulefile_free(gen->set);
    config_free(gen->cfg);
    free(gen);
}

/* The metric children of a slot's key. */
static int slot_metrics(rules_manager *m, mgr_slot *s) {
    const char *v[1] = {s->key};
    for (int i = 0; i < GM_COUNT; i++)
        if (!(s->c[i] = metric_with(m->fam[i], v)))
            return KILN_ENOMEM;
    metric_set(s->c[GM_INTERVAL], (double)rule_group_interval_ms(s->g) / 1000.0);
    metric_set(s->c[GM_RULES], (double)s->def->nrules);
    return 0;
}

/* A generation for c and set (taken over: freed with it on error). */
static int gen_build(rules_manager *m, const config *c, rulefile_set *set, mgr_gen **out, kiln_err *err) {
    mgr_gen *gen = calloc(1, sizeof *gen);
    if (!gen) {
        rulefile_free(set);
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    }
    gen->set = set;
    gen->cfg = config_retain((config *)c);
    int rc = KILN_ENOMEM;
    size_t next = c->global.nexternal_labels;
    if (next && !(gen->ext = calloc(next, sizeof *gen->ext)))
        goto fail;
    for (size_t i = 0; i < next; i++)
        gen->ext[i] = (label){c->global.external_labels[i].name, c->global.external_labels[i].value};
    if (next)
        qsort(gen->ext, next, sizeof *gen->ext, label_cmp);
    rules_env *e = &gen->env;
    e->st = m->st;
    query_engine_init(&e->engine, &m->opts.engine);
    e->external_labels = gen->ext;
    e->nexternal_labels = next;
    e->external_url = m->external_url;
    e->outage_tolerance_ms = m->opts.outage_tolerance_ms;
    e->for_grace_period_ms = m->opts.for_grace_period_ms;
    e->resend_delay_ms = m->opts.resend_delay_ms;
    e->notify = m->notify;
    e->restore_state = !m->applied;
    if (set->ngroups && !(gen->slots = calloc(set->ngroups, sizeof *gen->slots)))
        goto fail;
    for (size_t i = 0; i < set->ngroups; i++) {
        mgr_slot *s = &gen->slots[gen->nslots];
        s->gen = gen;
        s->def = &set->groups[i];
        if ((rc = rule_group_new(s->def, &c->global, e, &s->g, err)) != 0)
            goto fail_err;
        gen->nslots++;
        size_t klen = strlen(s->def->file) + strlen(s->def->name) + 2;
        rc = KILN_ENOMEM;
        if (!(s->key = malloc(klen)))
            goto fail;
        snprintf(s->key, klen, "%s;%s", s->def->file, s->def->name);
        if (slot_metrics(m, s) != 0)
            goto fail;
    }
    *out = gen;
    return 0;
fail:
    kiln_err_set(err, rc, "out of memory");
fail_err:
    gen_free(gen);
    return rc;
}

static mgr_slot *gen_find(mgr_gen *gen, const char *key) {
    for (size_t i = 0; gen && i < gen->nslots; i++)
        if (strcmp(gen->slots[i].key, key) == 0)
            return &gen->slots[i];
    return NULL;
}

/* ---- threads -------------------------------------------------------------- */

static int queue_push(rules_manager *m, mgr_slot *s) {
    if (m->nqueue == m->capqueue) {
        size_t cap = m->capqueue ? m->capqueue * 2 : 64;
        mgr_slot **q = malloc(cap * sizeof *q);
        if (!q)
            return KILN_ENOMEM;
        for (size_t i = 0; i < m->nqueue; i++)
            q[i] = m->queue[(m->qhead + i) % m->capqueue];
        free(m->queue);
        m->queue = q;
        m->capqueue = cap;
        m->qhead = 0;
    }
    m->queue[(m->qhead + m->nqueue) % m->capqueue] = s;
    m->nqueue++;
    return 0;
}

static mgr_slot *queue_pop(rules_manager *m) {
    mgr_slot *s = m->queue[m->qhead];
    m->qhead = (m->qhead + 1) % m->capqueue;
    m->nqueue--;
    return s;
}

static void wait_until_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms) {
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    pthread_cond_timedwait(cv, mu, &ts);
}

/* Queues s when due at due_ms (1), else lowers *earliest to due_ms (0). */
static int schedule_slot(rules_manager *m, mgr_slot *s, int64_t due_ms, int64_t now, int64_t *earliest) {
    if (s->queued || s->running)
        return 0;
    if (due_ms > now) {
        if (due_ms < *earliest)
            *earliest = due_ms;
        return 0;
    }
    if (queue_push(m, s) != 0) {
        /* out of memory: try again in a second */
        if (now + 1000 < *earliest)
            *earliest = now + 1000;
        return 0;
    }
    s->queued = 1;
    return 1;
}

/* The scheduler: queues every idle slot that is due, then sleeps until the
 * next one is (or until woken by apply, a finished evaluation, or stop). */
static void *scheduler_main(void *arg) {
    rules_manager *m = arg;
    pthread_mutex_lock(&m->mu);
    while (!m->stopping) {
        if (m->paused || !m->gen) {
            pthread_cond_wait(&m->sched_cv, &m->mu);
            continue;
        }
        int64_t now = time_now_ms(), earliest = INT64_MAX;
        int queued = 0;
        for (size_t i = 0; i < m->gen->nslots; i++)
            queued |= schedule_slot(m, &m->gen->slots[i], m->gen->slots[i].next_ms, now, &earliest);
        for (size_t r = 0; r < m->nretired; r++)
            for (size_t i = 0; i < m->retired[r]->nslots; i++)
                if (m->retired[r]->slots[i].stale_ms)
                    queued |= schedule_slot(m, &m->retired[r]->slots[i], m->retired[r]->slots[i].stale_ms,
                                            now, &earliest);
        if (queued)
            pthread_cond_broadcast(&m->work_cv);
        if (earliest == INT64_MAX)
            pthread_cond_wait(&m->sched_cv, &m->mu);
        else
            wait_until_ms(&m->sched_cv, &m->mu, earliest);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* Evaluates s's group at ts and records the metrics (no lock held). */
static void slot_eval(rules_manager *m, mgr_slot *s, int64_t ts) {
    double t0 = time_mono_sec();
    int rc = rule_group_eval(s->g, ts);
    double dur = time_mono_sec() - t0;
    if (rc != 0)
        LOG_WARN("Rule group evaluation failed", "group=%s err=%s", s->key, kiln_strerror(rc));
    metric_add(s->c[GM_ITERATIONS], 1);
    metric_set(s->c[GM_LAST_DURATION], dur);
    metric_set(s->c[GM_LAST_EVAL], (double)ts / 1000.0);
    metric_observe(m->group_duration, dur);
    rule_group_stats st;
    rule_group_stats_get(s->g, &st);
    if (st.evaluations > s->seen_evals)
        metric_add(s->c[GM_EVALS], (double)(st.evaluations - s->seen_evals));
    if (st.failures > s->seen_failures)
        metric_add(s->c[GM_FAILURES], (double)(st.failures - s->seen_failures));
    s->seen_evals = st.evaluations;
    s->seen_failures = st.failures;
    /* each rule's time, as Prometheus' prometheus_rule_evaluation_duration_seconds */
    pthread_mutex_lock(&s->g->mu);
    for (size_t i = 0; i < s->g->nrules; i++)
        metric_observe(m->rule_duration, (double)s->g->rules[i].eval_ns / 1e9);
    pthread_mutex_unlock(&s->g->mu);
}

/* Writes the stale markers of a removed group (no lock held, s running);
 * its generation is freed with its last such slot. */
static void retire_slot(rules_manager *m, mgr_slot *s) {
    if (rule_group_mark_stale(s->g, s->stop_ms) != 0)
        LOG_WARN("Writing stale markers of a removed rule group failed", "group=%s", s->key);
    mgr_gen *gen = s->gen, *done = NULL;
    pthread_mutex_lock(&m->mu);
    s->running = 0;
    s->stale_ms = 0;
    if (--gen->nretiring == 0) {
        for (size_t r = 0; r < m->nretired; r++)
            if (m->retired[r] == gen) {
                m->retired[r] = m->retired[--m->nretired];
                done = gen;
                break;
            }
    }
    if (--m->nrunning == 0)
        pthread_cond_broadcast(&m->idle_cv);
    pthread_cond_signal(&m->sched_cv);
    pthread_mutex_unlock(&m->mu);
    gen_free(done);
}

static void *worker_main(void *arg) {
    rules_manager *m = arg;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (!m->stopping && (m->paused || m->nqueue == 0))
            pthread_cond_wait(&m->work_cv, &m->mu);
        if (m->stopping)
            break;
        mgr_slot *s = queue_pop(m);
        assert(s->queued && !s->running); /* invariant 1 */
        s->queued = 0;
        s->running = 1;
        m->nrunning++;
        int64_t ts = s->next_ms, iv = rule_group_interval_ms(s->g);
        pthread_mutex_unlock(&m->mu);
        if (s->stale_ms) {
            retire_slot(m, s);
            pthread_mutex_lock(&m->mu);
            continue;
        }
        slot_eval(m, s, ts);
        int64_t missed = 0, next = rules_next_slot(ts, iv, time_now_ms(), &missed);
        if (missed > 0) {
            metric_add(s->c[GM_MISSED], (double)missed);
            metric_add(s->c[GM_ITERATIONS], (double)missed);
        }
        pthread_mutex_lock(&m->mu);
        s->running = 0;
        s->next_ms = next;
        int idle = --m->nrunning == 0;
        if (idle)
            pthread_cond_broadcast(&m->idle_cv);
        pthread_cond_signal(&m->sched_cv);
        if (idle && m->nqueue == 0) {
            /* The burst is over: what the groups' queries left in the arena
             * pool and the heap goes back to the kernel until the next one. */
            pthread_mutex_unlock(&m->mu);
            arena_pool_trim(RULES_IDLE_POOL_KEEP);
            pthread_mutex_lock(&m->mu);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------ */

static int register_metrics(rules_manager *m) {
    static const struct {
        int type;
        const char *name, *help;
    } fams[GM_COUNT] = {
        [GM_LAST_DURATION] = {METRIC_GAUGE, "kiln_rule_group_last_duration_seconds",
                              "The duration of the last rule group evaluation."},
        [GM_INTERVAL] = {METRIC_GAUGE, "kiln_rule_group_interval_seconds", "The interval of a rule group."},
        [GM_LAST_EVAL] = {METRIC_GAUGE, "kiln_rule_group_last_evaluation_timestamp_seconds",
                          "The timestamp of the last rule group evaluation in seconds."},
        [GM_RULES] = {METRIC_GAUGE, "kiln_rule_group_rules", "The number of rules."},
        [GM_ITERATIONS] =
            {METRIC_COUNTER, "kiln_rule_group_iterations_total",
             "The total number of scheduled rule group evaluations, whether executed or missed."},
        [GM_MISSED] =
            {METRIC_COUNTER, "kiln_rule_group_iterations_missed_total",
             "The total number of rule group evaluations missed due to slow rule group evaluation."},
        [GM_EVALS] = {METRIC_COUNTER, "kiln_rule_evaluations_total", "The total number of rule evaluations."},
        [GM_FAILURES] = {METRIC_COUNTER, "kiln_rule_evaluation_failures_total",
                         "The total number of rule evaluation failures."},
    };
    for (int i = 0; i < GM_COUNT; i++)
        if (!(m->fam[i] = metric_new(fams[i].type, fams[i].name, fams[i].help, "rule_group", NULL, 0)))
            return KILN_ENOMEM;
    metric *gd = metric_new(METRIC_HISTOGRAM, "kiln_rule_group_duration_seconds",
                            "The duration of rule group evaluations.", NULL, METRIC_DEFAULT_BUCKETS,
                            METRIC_DEFAULT_NBUCKETS);
    metric *rd = metric_new(METRIC_HISTOGRAM, "kiln_rule_evaluation_duration_seconds",
                            "The duration for a rule to execute.", NULL, METRIC_DEFAULT_BUCKETS,
                            METRIC_DEFAULT_NBUCKETS);
    if (!gd || !rd || !(m->group_duration = metric_default(gd)) || !(m->rule_duration = metric_default(rd)))
        return KILN_ENOMEM;
    return 0;
}

int rules_manager_new(storage *st, const rules_options *o, rules_manager **out, kiln_err *err) {
    rules_manager *m = calloc(1, sizeof *m);
    if (!m)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    m->st = st;
    m->opts = o ? *o : rules_options_default();
    m->external_url = strdup(m->opts.external_url ? m->opts.external_url : "");
    m->opts.external_url = m->external_url;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->sched_cv, NULL);
    pthread_cond_init(&m->work_cv, NULL);
    pthread_cond_init(&m->idle_cv, NULL);
    if (!m->external_url || register_metrics(m) != 0) {
        rules_manager_free(m);
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    }
    notifier_options no = {.queue_capacity = m->opts.queue_capacity, .relabel = m->opts.relabel};
    int rc = notifier_new(NULL, &no, &m->notify, err);
    if (rc != 0) {
        rules_manager_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int rules_manager_run(rules_manager *m) {
    if (notifier_run(m->notify) != 0)
        return KILN_EIO;
    int n = m->opts.eval_threads;
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (int)cores : 1;
    }
    if (!(m->workers = calloc((size_t)n, sizeof *m->workers)))
        return KILN_EIO;
    if (pthread_create(&m->sched, NULL, scheduler_main, m) != 0)
        return KILN_EIO;
    m->started = 1;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&m->workers[i], NULL, worker_main, m) != 0)
            return KILN_EIO;
        m->nworkers++;
    }
    return 0;
}

int rules_manager_apply(rules_manager *m, const config *c, rulefile_set *set, kiln_err *err) {
    mgr_gen *gen = NULL;
    int rc = gen_build(m, c, set, &gen, err);
    if (rc != 0)
        return rc;
    if ((rc = notifier_apply_config(m->notify, c, err)) != 0) {
        gen_free(gen);
        return rc;
    }
    int64_t now = time_now_ms();
    pthread_mutex_lock(&m->mu);
    m->paused = 1;
    while (m->nrunning > 0)
        pthread_cond_wait(&m->idle_cv, &m->mu);
    assert(m->nrunning == 0); /* invariant 3 */
    mgr_gen *old = m->gen;
    for (size_t i = 0; i < gen->nslots; i++) {
        mgr_slot *s = &gen->slots[i], *o = gen_find(old, s->key);
        s->next_ms = rule_group_next_eval_ms(s->g, now);
        if (!o)
            continue;
        rule_group_copy_state(s->g, o->g);
        rule_group_stats st;
        rule_group_stats_get(s->g, &st);
        s->seen_evals = st.evaluations;
        s->seen_failures = st.failures;
        /* the same schedule: a slot that was due stays due */
        if (rule_group_interval_ms(o->g) == rule_group_interval_ms(s->g))
            s->next_ms = o->next_ms;
    }
    m->gen = gen;
    /* the queue held only old's slots (and retired ones): what is due is queued again */
    m->qhead = m->nqueue = 0;
    for (size_t r = 0; r < m->nretired; r++)
        for (size_t i = 0; i < m->retired[r]->nslots; i++)
            m->retired[r]->slots[i].queued = 0;
    m->applied = 1;
    /* Prometheus writes the stale markers of a removed group's series two
     * intervals after it stopped, giving a renamed rule time to write */
    for (size_t i = 0; old && i < old->nslots; i++) {
        mgr_slot *s = &old->slots[i];
        if (gen_find(gen, s->key))
            continue;
        for (int k = 0; k < GM_COUNT; k++) {
            metric_remove(s->c[k]);
            s->c[k] = NULL;
        }
        s->queued = 0;
        s->stop_ms = now;
        s->stale_ms = now + 2 * rule_group_interval_ms(s->g);
        old->nretiring++;
    }
    if (old && old->nretiring) {
        if (array_grow((void **)&m->retired, &m->capretired, m->nretired + 1, sizeof *m->retired) == 0)
            m->retired[m->nretired++] = old;
        else
            old->nretiring = 0; /* out of memory: freed at once, without the markers */
    }
    if (old && old->nretiring)
        old = NULL;
    m->paused = 0;
    pthread_cond_broadcast(&m->sched_cv);
    pthread_cond_broadcast(&m->work_cv);
    pthread_mutex_unlock(&m->mu);
    gen_free(old);
    return 0;
}

void rules_manager_free(rules_manager *m) {
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->stopping = 1;
    pthread_cond_broadcast(&m->sched_cv);
    pthread_cond_broadcast(&m->work_cv);
    pthread_mutex_unlock(&m->mu);
    if (m->started)
        pthread_join(m->sched, NULL);
    for (int i = 0; i < m->nworkers; i++)
        pthread_join(m->workers[i], NULL);
    free(m->workers);
    gen_free(m->gen);
    for (size_t r = 0; r < m->nretired; r++)
        gen_free(m->retired[r]);
    free(m->retired);
    notifier_free(m->notify);
    free(m->queue);
    free(m->external_url);
    pthread_cond_destroy(&m->idle_cv);
    pthread_cond_destroy(&m->work_cv);
    pthread_cond_destroy(&m->sched_cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* ---- the API's views ------------------------------------------------------ */

static int str_in(const char *s, const char *const *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, v[i]) == 0)
            return 1;
    return 0;
}

int rules_manager_rules_json(rules_manager *m, const rules_filter *f, buf *out) {
    int rc = 0, first = 1;
    buf_puts(out, "{\"groups\":[");
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; m->gen && i < m->gen->nslots && rc == 0; i++) {
        mgr_slot *s = &m->gen->slots[i];
        if (f && f->nrule_groups && !str_in(s->def->name, f->rule_groups, f->nrule_groups))
            continue;
        if (f && f->nfiles && !str_in(s->def->file, f->files, f->nfiles))
            continue;
        size_t mark = out->len;
        if (!first)
            buf_putc(out, ',');
        int empty = 0;
        rc = rule_group_json(s->g, f, out, &empty);
        if (empty && out->len >= mark)
            out->len = mark;
        else
            first = 0;
    }
    pthread_mutex_unlock(&m->mu);
    buf_puts(out, "]}");
    return rc ? rc : buf_error(out);
}

typedef struct alerts_ctx {
    buf *out;
    int first;
} alerts_ctx;

static int alert_json(void *data, const rule_alert_view *a) {
    alerts_ctx *x = data;
    if (a->state != RULE_ALERT_PENDING && a->state != RULE_ALERT_FIRING)
        return 0;
    buf *out = x->out;
    if (!x->first)
        buf_putc(out, ',');
    x->first = 0;
    rule_alert_json(a, out);
    return buf_error(out);
}

int rules_manager_alerts_json(rules_manager *m, buf *out) {
    alerts_ctx x = {out, 1};
    int rc = 0;
    buf_puts(out, "{\"alerts\":[");
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; m->gen && i < m->gen->nslots && rc == 0; i++)
        rc = rule_group_foreach_alert(m->gen->slots[i].g, alert_json, &x);
    pthread_mutex_unlock(&m->mu);
    buf_puts(out, "]}");
    return rc ? rc : buf_error(out);
}

static void urls_json(buf *out, const char *key, char **urls, size_t n) {
    buf_printf(out, "\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        buf_puts(out, i ? ",{\"url\":" : "{\"url\":");
        json_str(out, urls[i]);
        buf_putc(out, '}');
    }
    buf_putc(out, ']');
}

int rules_manager_alertmanagers_json(rules_manager *m, buf *out) {
    char **act = NULL, **drop = NULL;
    size_t na = 0, nd = 0;
    int rc = notifier_alertmanagers(m->notify, &act, &na, &drop, &nd);
    if (rc != 0)
        return rc;
    buf_putc(out, '{');
    urls_json(out, "activeAlertmanagers", act, na);
    buf_putc(out, ',');
    urls_json(out, "droppedAlertmanagers", drop, nd);
    buf_putc(out, '}');
    notifier_urls_free(act);
    notifier_urls_free(drop);
    return buf_error(out);
}
