/*
 * group.c - a rule group: its schedule, the evaluation of its rules in
 * order at one timestamp, recording rules, and writing a rule's output to
 * the storage with stale markers for the series that went away.
 *
 * Called by manager.c (its evaluation threads, one group at a time) and by
 * unittest.c (`kiln test rules`, stepping groups through time over a
 * storage of its own); the readers (rule_group_foreach_alert, the JSON) may
 * run on any thread meanwhile.  See group.h for the invariants.
 *
 * As Prometheus' rules package does:
 *  - The schedule: evaluations at k * interval + offset, the offset being
 *    labels.Hash({file, name}) modulo the interval in nanoseconds.
 *  - A rule's query runs at ts - query_offset, and its samples are written
 *    at that time; each rule's appends are committed before the next rule
 *    runs, so a later rule reads what an earlier one wrote.
 *  - A rule that fails (query error, duplicate label sets, limit) keeps its
 *    previous series: no stale markers are written for them.  A sample the
 *    storage refuses (out of order, ...) is skipped, the rule's health set
 *    to err with the storage's message, and the rest is written.
 *
 * Memory: per series a rule wrote, 16 bytes (hash and reference) where
 * Prometheus keeps a map of the label sets; the references spare the
 * storage's lookup by labels on every evaluation.  A label-set hash
 * collision (64 bits) would make two series one, as it would in
 * Prometheus' duplicate check.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "rules/group.h"

int64_t rules_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void rules_set_health(rule_group *g, rule *r, const char *msg) {
    char *copy = msg ? strdup(msg) : NULL;
    pthread_mutex_lock(&g->mu);
    char *old = r->last_error;
    r->health = msg ? RULE_HEALTH_ERR : RULE_HEALTH_OK;
    r->last_error = copy;
    pthread_mutex_unlock(&g->mu);
    free(old);
}

int rules_query(rule_group *g, const char *expr, int64_t t, query_result *res, kiln_err *err) {
    int rc = query_instant(&g->env->engine, g->env->st, expr, t, NULL, res, err);
    if (rc != 0)
        return rc;
    if (res->type != QUERY_VECTOR && res->type != QUERY_SCALAR) {
        query_result_free(res);
        return kiln_err_set(err, KILN_EINVAL, "rule result is not a vector or scalar");
    }
    return 0;
}

void rule_query_format(const rule *r, buf *out) {
    size_t len = out->len;
    kiln_err e;
    /* the expression parsed when the group was made: only memory fails */
    if (query_parse_format(r->def->expr, out, &e) != 0 && buf_error(out) == 0) {
        out->len = len;
        buf_puts(out, r->def->expr);
    }
}

/* ---- output ------------------------------------------------------------ */

size_t rules_labels_merge(label *dst, const label *base, size_t nbase, const label *ov, size_t nov) {
    size_t i = 0, j = 0;
    label *o = dst;
    while (i < nbase || j < nov) {
        int c = i == nbase ? 1 : j == nov ? -1 : strcmp(base[i].name, ov[j].name);
        if (c < 0) {
            *o++ = base[i++];
            continue;
        }
        if (ov[j].value[0])
            *o++ = ov[j];
        i += c == 0;
        j++;
    }
    return (size_t)(o - dst);
}

int rules_out_push(rule_group *g, const label *base, size_t nbase, const label *ov, size_t nov, double v) {
    if (array_grow((void **)&g->lab, &g->caplab, g->nlab + nbase + nov, sizeof *g->lab) != 0 ||
        array_grow((void **)&g->out, &g->capout, g->nout + 1, sizeof *g->out) != 0)
        return KILN_ENOMEM;
    size_t off = g->nlab, n = rules_labels_merge(g->lab + off, base, nbase, ov, nov);
    g->nlab += n;
    g->out[g->nout++] = (rule_out){labels_hash(g->lab + off, n), 0, off, n, v, NULL};
    return 0;
}

/* Appends one output item, a float or a native histogram. */
static int out_append(appender *a, uint64_t *ref, const label *ls, size_t n, int64_t t, const rule_out *o,
                      kiln_err *e) {
    if (o->h)
        return appender_append_histogram(a, ref, ls, n, t, o->h, e);
    return appender_append(a, ref, ls, n, t, o->v, e);
}

static int cmp_out(const void *a, const void *b) {
    uint64_t x = ((const rule_out *)a)->hash, y = ((const rule_out *)b)->hash;
    return x < y ? -1 : x > y;
}

int rules_out_write(rule_group *g, rule *r, int64_t t, int64_t limit, const char *dup_msg, kiln_err *err) {
    rule_out *out = g->out;
    size_t n = g->nout;
    if (n > 1)
        qsort(out, n, sizeof *out, cmp_out);
    for (size_t i = 1; i < n; i++)
        if (out[i].hash == out[i - 1].hash)
            return kiln_err_set(err, KILN_EINVAL, "%s", dup_msg);
    if (limit > 0 && n > (uint64_t)limit)
        return kiln_err_set(err, KILN_EINVAL, "exceeded limit of %lld with %zu series", (long long)limit, n);

    rule_series *next = n ? malloc(n * sizeof *next) : NULL;
    appender *a = storage_appender(g->env->st);
    if ((n && !next) || !a) {
        free(next);
        if (a)
            appender_rollback(a);
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    }
    /* Both sorted by hash: one walk finds the references to reuse and the
     * series gone. */
    size_t nnext = 0, p = 0, refused = 0;
    kiln_err first = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc != KILN_ENOMEM; i++) {
        while (p < r->nprev && r->prev[p].hash < out[i].hash) {
            uint64_t ref = r->prev[p++].ref;
            kiln_err e;
            if (appender_append(a, &ref, NULL, 0, t, stale_nan(), &e) == KILN_ENOMEM)
                rc = KILN_ENOMEM;
        }
        uint64_t ref = 0;
        if (p < r->nprev && r->prev[p].hash == out[i].hash)
            ref = r->prev[p++].ref;
        kiln_err e;
        int arc = out_append(a, &ref, ref ? NULL : g->lab + out[i].off, ref ? 0 : out[i].n, t, &out[i], &e);
        if (arc == KILN_EINVAL && ref) {
            /* the series left the head since (truncated): find it by labels */
            ref = 0;
            arc = out_append(a, &ref, g->lab + out[i].off, out[i].n, t, &out[i], &e);
        }
        if (arc == 0) {
            next[nnext++] = (rule_series){out[i].hash, ref};
        } else if (arc == KILN_ENOMEM) {
            rc = KILN_ENOMEM;
        } else {
            if (!refused++)
                first = e;
        }
    }
    while (p < r->nprev && rc != KILN_ENOMEM) {
        uint64_t ref = r->prev[p++].ref;
        kiln_err e;
        if (appender_append(a, &ref, NULL, 0, t, stale_nan(), &e) == KILN_ENOMEM)
            rc = KILN_ENOMEM;
    }
    if (rc != 0) {
        appender_rollback(a);
        free(next);
        return kiln_err_set(err, rc, "out of memory");
    }
    kiln_err ce = {0};
    if (appender_commit(a, &ce) != 0) {
        /* the caller logs it and counts a failure, as Prometheus does */
        free(next);
        return kiln_err_set(err, KILN_EIO, "%s", ce.msg);
    }
    free(r->prev);
    r->prev = next;
    r->nprev = nnext;
    g->eval_samples += n;
    if (refused) {
        LOG_WARN("rule evaluation result discarded", "group=%s name=%s samples=%zu err=%s", g->def->name,
                 r->def->name, refused, first.msg);
        rules_set_health(g, r, first.msg);
    } else {
        rules_set_health(g, r, NULL);
    }
    return 0;
}

/* ---- recording rules ---------------------------------------------------- */

static int record_eval(rule_group *g, rule *r, int64_t ts, kiln_err *err) {
    int64_t t = ts - g->query_offset_ms;
    query_result res;
    int rc = rules_query(g, r->def->expr, t, &res, err);
    if (rc != 0)
        return rc;
    g->nlab = g->nout = 0;
    if (res.type == QUERY_SCALAR)
        rc = rules_out_push(g, NULL, 0, r->labels, r->nlabels, res.scalar);
    for (size_t i = 0; i < res.nseries && rc == 0; i++) {
        if (!res.series[i].npts)
            continue;
        /* a native histogram result is recorded as one, as Prometheus does */
        const histogram *h = res.series[i].hist ? res.series[i].hist[0] : NULL;
        rc = rules_out_push(g, res.series[i].ls, res.series[i].nls, r->labels, r->nlabels,
                            h ? 0 : res.series[i].pts[0].v);
        if (rc == 0)
            g->out[g->nout - 1].h = h;
    }
    if (rc == 0)
        rc =
            rules_out_write(g, r, t, g->def->limit,
                            "vector contains metrics with the same labelset after applying rule labels", err);
    else
        kiln_err_set(err, rc, "out of memory");
    query_result_free(&res);
    return rc;
}

/* ---- the group ----------------------------------------------------------- */

/* Prometheus' labels.Hash of {file=<file>, name=<name>}. */
static uint64_t group_hash(const char *file, const char *name) {
    XXH64_state_t *st = XXH64_createState();
    if (!st)
        return 0;
    static const char sep = (char)0xff;
    const char *parts[4] = {"file", file, "name", name};
    XXH64_reset(st, 0);
    for (int i = 0; i < 4; i++) {
        XXH64_update(st, parts[i], strlen(parts[i]));
        XXH64_update(st, &sep, 1);
    }
    uint64_t h = XXH64_digest(st);
    XXH64_freeState(st);
    return h;
}

static int cmp_label(const void *a, const void *b) {
    return strcmp(((const label *)a)->name, ((const label *)b)->name);
}

/* r->labels: the group's labels, then the rule's (which win), sorted; for a
 * recording rule __name__ = record too.  The key reloads match rules by. */
static int rule_labels(rule_group *g, rule *r) {
    const rulefile_group *fg = g->def;
    const rulefile_rule *d = r->def;
    size_t cap = fg->nlabels + d->nlabels + 1, n = 0;
    r->labels = calloc(cap, sizeof *r->labels);
    if (!r->labels)
        return KILN_ENOMEM;
    for (int pass = 0; pass < 2; pass++) {
        const config_label *src = pass ? d->labels : fg->labels;
        size_t ns = pass ? d->nlabels : fg->nlabels;
        for (size_t i = 0; i < ns; i++) {
            size_t k = 0;
            while (k < n && strcmp(r->labels[k].name, src[i].name) != 0)
                k++;
            r->labels[k] = (label){src[i].name, src[i].value};
            n += k == n;
        }
    }
    if (d->kind == RULEFILE_RECORD)
        r->labels[n++] = (label){LABEL_NAME, d->name};
    qsort(r->labels, n, sizeof *r->labels, cmp_label);
    r->nlabels = n;
    XXH64_state_t *st = XXH64_createState();
    if (!st)
        return KILN_ENOMEM;
    XXH64_reset(st, (uint64_t)d->kind);
    XXH64_update(st, d->name, strlen(d->name) + 1);
    for (size_t i = 0; i < n; i++) {
        XXH64_update(st, r->labels[i].name, strlen(r->labels[i].name) + 1);
        XXH64_update(st, r->labels[i].value, strlen(r->labels[i].value) + 1);
    }
    r->key = XXH64_digest(st);
    XXH64_freeState(st);
    return 0;
}

static void rule_free(rule *r) {
    alert_rule_free(r);
    free(r->labels);
    free(r->prev);
    free(r->last_error);
}

int rule_group_new(const rulefile_group *fg, const config_global *global, const rules_env *env,
                   rule_group **out, kiln_err *err) {
    *out = NULL;
    rule_group *g = calloc(1, sizeof *g);
    if (!g)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    pthread_mutex_init(&g->mu, NULL);
    g->def = fg;
    g->env = env;
    g->interval_ms = fg->interval_ms > 0 ? fg->interval_ms : global->evaluation_interval_ms;
    if (g->interval_ms <= 0)
        g->interval_ms = 60000;
    g->query_offset_ms = fg->has_query_offset ? fg->query_offset_ms : global->rule_query_offset_ms;
    g->hash = group_hash(fg->file ? fg->file : "", fg->name);
    g->should_restore = env->restore_state;
    int rc = KILN_ENOMEM;
    if (env->nexternal_labels) {
        if (!(g->ext = calloc(env->nexternal_labels, sizeof *g->ext)))
            goto fail;
        for (size_t i = 0; i < env->nexternal_labels; i++)
            g->ext[i] = (tmpl_label){env->external_labels[i].name, env->external_labels[i].value};
    }
    if (fg->nrules && !(g->rules = calloc(fg->nrules, sizeof *g->rules)))
        goto fail;
    for (size_t i = 0; i < fg->nrules; i++) {
        rule *r = &g->rules[i];
        r->def = &fg->rules[i];
        r->restored = !g->should_restore;
        g->nrules = i + 1;
        if ((rc = rule_labels(g, r)) != 0)
            goto fail;
        if ((rc = query_parse_check(r->def->expr, err)) != 0) {
            if (rc != KILN_ENOMEM)
                kiln_err_prefix(err, "group \"%s\", rule %zu, \"%s\": ", fg->name, i + 1, r->def->name);
            goto fail_err;
        }
        if (r->def->kind == RULEFILE_ALERT && (rc = alert_rule_init(g, r, err)) != 0)
            goto fail_err;
    }
    *out = g;
    return 0;
fail:
    kiln_err_set(err, rc, "out of memory");
fail_err:
    rule_group_free(g);
    return rc;
}

void rule_group_free(rule_group *g) {
    if (!g)
        return;
    for (size_t i = 0; i < g->nrules; i++)
        rule_free(&g->rules[i]);
    free(g->rules);
    free(g->ext);
    free(g->stale_refs);
    free(g->lab);
    free(g->out);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

int64_t rule_group_interval_ms(const rule_group *g) {
    return g->interval_ms;
}

int64_t rule_group_offset_ms(const rule_group *g) {
    /* Prometheus takes the hash modulo the interval in nanoseconds; its
     * millisecond timestamps are that truncated, and the interval is whole
     * milliseconds, so the offset in ms is the ns offset's floor. */
    uint64_t ns = (uint64_t)g->interval_ms * 1000000u;
    return (int64_t)((g->hash % ns) / 1000000u);
}

int64_t rule_group_next_eval_ms(const rule_group *g, int64_t now_ms) {
    int64_t iv = g->interval_ms, off = rule_group_offset_ms(g);
    int64_t adj = now_ms - off;
    int64_t m = adj % iv;
    if (m < 0)
        m += iv;
    int64_t t = adj - m + off;
    return t < now_ms ? t + iv : t;
}

/* Stale markers for the series of rules a reload removed. */
static void write_removed_stale(rule_group *g, int64_t t) {
    appender *a = storage_appender(g->env->st);
    if (!a)
        return;
    for (size_t i = 0; i < g->nstale_refs; i++) {
        uint64_t ref = g->stale_refs[i];
        kiln_err e;
        if (appender_append(a, &ref, NULL, 0, t, stale_nan(), &e) != 0)
            continue;
    }
    kiln_err e = {0};
    if (appender_commit(a, &e) != 0) {
        LOG_WARN("writing stale markers failed", "group=%s err=%s", g->def->name, e.msg);
        return;
    }
    free(g->stale_refs);
    g->stale_refs = NULL;
    g->nstale_refs = 0;
}

int rule_group_eval(rule_group *g, int64_t ts_ms) {
    int64_t start = rules_now_ns();
    uint64_t failures = 0;
    g->eval_samples = 0;
    for (size_t i = 0; i < g->nrules; i++) {
        rule *r = &g->rules[i];
        int64_t t0 = rules_now_ns();
        kiln_err err = {0};
        int rc = r->def->kind == RULEFILE_RECORD ? record_eval(g, r, ts_ms, &err)
                                                 : alert_rule_eval(g, r, ts_ms, &err);
        if (rc != 0) {
            failures++;
            if (rc != KILN_ECANCELED)
                LOG_WARN("evaluating rule failed", "group=%s name=%s err=%s", g->def->name, r->def->name,
                         err.msg);
            rules_set_health(g, r, err.msg);
        }
        int64_t t1 = rules_now_ns();
        pthread_mutex_lock(&g->mu);
        r->eval_ns = t1 - t0;
        r->last_eval_ns = t0;
        pthread_mutex_unlock(&g->mu);
    }
    if (g->nstale_refs)
        write_removed_stale(g, ts_ms - g->query_offset_ms);
    if (g->should_restore) {
        /* As Prometheus: after the first evaluation, which wrote no ALERTS,
         * the alerts found get their active time back. */
        alert_restore(g, ts_ms);
        g->should_restore = 0;
    }
    /* a group whose rules output many series keeps no large scratch
     * between evaluations (64Ki entries: about 1 MB of labels) */
    if (g->caplab > 65536 || g->capout > 65536) {
        free(g->lab);
        free(g->out);
        g->lab = NULL;
        g->out = NULL;
        g->caplab = g->capout = g->nlab = g->nout = 0;
    }
    int64_t end = rules_now_ns();
    pthread_mutex_lock(&g->mu);
    g->eval_ns = end - start;
    g->last_eval_ns = start;
    g->last_ts_ms = ts_ms;
    g->evaluations += g->nrules;
    g->failures += failures;
    g->samples = g->eval_samples;
    pthread_mutex_unlock(&g->mu);
    return 0;
}

void rule_group_stats_get(rule_group *g, rule_group_stats *out) {
    pthread_mutex_lock(&g->mu);
    out->last_duration_sec = (double)g->eval_ns / 1e9;
    out->last_eval_wall_sec = (double)g->last_eval_ns / 1e9;
    out->last_eval_ts_ms = g->last_ts_ms;
    out->evaluations = g->evaluations;
    out->failures = g->failures;
    out->last_samples = g->samples;
    out->nrules = g->nrules;
    pthread_mutex_unlock(&g->mu);
}

void rule_group_copy_state(rule_group *g, rule_group *old) {
    /* As Prometheus' Group.CopyState: rules match by name and labels, the
     * first unmatched rule of old with them for each rule of g in order. */
    char *used = old->nrules ? calloc(old->nrules, 1) : NULL;
    if (old->nrules && !used)
        return;
    pthread_mutex_lock(&g->mu);
    g->eval_ns = old->eval_ns;
    g->last_eval_ns = old->last_eval_ns;
    pthread_mutex_unlock(&g->mu);
    for (size_t i = 0; i < g->nrules; i++) {
        rule *r = &g->rules[i];
        for (size_t k = 0; k < old->nrules; k++) {
            rule *o = &old->rules[k];
            if (used[k] || o->key != r->key || strcmp(o->def->name, r->def->name) != 0)
                continue;
            used[k] = 1;
            free(r->prev);
            r->prev = o->prev;
            r->nprev = o->nprev;
            o->prev = NULL;
            o->nprev = 0;
            if (r->def->kind == RULEFILE_ALERT && o->def->kind == RULEFILE_ALERT) {
                pthread_mutex_lock(&g->mu);
                pthread_mutex_lock(&old->mu);
                rule_alert **v = r->al->alerts;
                size_t n = r->al->nalerts, cap = r->al->capalerts;
                r->al->alerts = o->al->alerts;
                r->al->nalerts = o->al->nalerts;
                r->al->capalerts = o->al->capalerts;
                o->al->alerts = v;
                o->al->nalerts = n;
                o->al->capalerts = cap;
                pthread_mutex_unlock(&old->mu);
                pthread_mutex_unlock(&g->mu);
            }
            break;
        }
    }
    /* The series of old's rules that found no match get stale markers at
     * g's next evaluation, with those old had pending. */
    size_t n = old->nstale_refs;
    for (size_t k = 0; k < old->nrules; k++)
        n += used[k] ? 0 : old->rules[k].nprev;
    uint64_t *refs = n ? realloc(g->stale_refs, (g->nstale_refs + n) * sizeof *refs) : NULL;
    if (refs) {
        g->stale_refs = refs;
        for (size_t i = 0; i < old->nstale_refs; i++)
            refs[g->nstale_refs++] = old->stale_refs[i];
        for (size_t k = 0; k < old->nrules; k++)
            for (size_t j = 0; !used[k] && j < old->rules[k].nprev; j++)
                refs[g->nstale_refs++] = old->rules[k].prev[j].ref;
    }
    free(used);
}

int rule_group_mark_stale(rule_group *g, int64_t ts_ms) {
    appender *a = storage_appender(g->env->st);
    if (!a)
        return KILN_ENOMEM;
    int64_t t = ts_ms - g->query_offset_ms;
    for (size_t i = 0; i < g->nrules; i++)
        for (size_t j = 0; j < g->rules[i].nprev; j++) {
            uint64_t ref = g->rules[i].prev[j].ref;
            kiln_err e;
            if (appender_append(a, &ref, NULL, 0, t, stale_nan(), &e) == KILN_ENOMEM) {
                appender_rollback(a);
                return KILN_ENOMEM;
            }
        }
    for (size_t i = 0; i < g->nstale_refs; i++) {
        uint64_t ref = g->stale_refs[i];
        kiln_err e;
        if (appender_append(a, &ref, NULL, 0, t, stale_nan(), &e) == KILN_ENOMEM) {
            appender_rollback(a);
            return KILN_ENOMEM;
        }
    }
    kiln_err e = {0};
    int rc = appender_commit(a, &e);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < g->nrules; i++) {
        free(g->rules[i].prev);
        g->rules[i].prev = NULL;
        g->rules[i].nprev = 0;
    }
    free(g->stale_refs);
    g->stale_refs = NULL;
    g->nstale_refs = 0;
    return 0;
}

int rule_group_foreach_alert(rule_group *g, int (*fn)(void *data, const rule_alert_view *a), void *data) {
    int rc = 0;
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < g->nrules && rc == 0; i++) {
        rule *r = &g->rules[i];
        for (size_t k = 0; r->al && k < r->al->nalerts && rc == 0; k++) {
            rule_alert_view v;
            alert_view(r, r->al->alerts[k], &v);
            rc = fn(data, &v);
        }
    }
    pthread_mutex_unlock(&g->mu);
    return rc;
}
