/*
 * alert.c - alerting rules: the alerts of a rule's query result, their
 * labels and annotations from templates, the state machine, the ALERTS and
 * ALERTS_FOR_STATE series, sending to the notifier, and the restore of the
 * `for` state after a restart.  As Prometheus' rules.AlertingRule (2.42 and
 * 3.x alike where they agree).
 *
 * Called by group.c on the evaluating thread; readers see the alerts under
 * the group's mutex (group.h).
 *
 * States of an alert, each transition made in alert_rule_eval:
 *   new in the result            -> PENDING, active_at = ts
 *   PENDING, ts - active_at >= for -> FIRING, fired_at = ts
 *   PENDING, gone from the result  -> deleted
 *   FIRING, gone from the result   -> INACTIVE, resolved_at = ts, unless
 *     keep_firing_for has not passed since it first went missing
 *   INACTIVE for more than 15 minutes (resolvedRetention) -> deleted
 *   INACTIVE, back in the result   -> replaced by a new PENDING alert
 * The rule's limit counts the alerts left pending or firing: beyond it every
 * alert is dropped (none is sent as resolved) and the rule fails.
 */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "rules/group.h"

#define RESOLVED_RETENTION_MS (15 * 60 * 1000) /* Prometheus' resolvedRetention */
#define TZERO NOTIFIER_TIME_ZERO

static const char dup_alert_msg[] =
    "vector contains metrics with the same labelset after applying alert labels";

/* ---- setup ------------------------------------------------------------- */

static int cmp_config_label(const void *a, const void *b) {
    return strcmp(((const label *)a)->name, ((const label *)b)->name);
}

int alert_rule_init(rule_group *g, rule *r, kiln_err *err) {
    const rulefile_rule *d = r->def;
    size_t nl = strlen(d->name) + 9;
    char *name = malloc(nl);
    if (!name)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    snprintf(name, nl, "__alert_%s", d->name);
    int rc = KILN_ENOMEM;
    rule_alerting *al = r->al = calloc(1, sizeof *r->al);
    if (!al)
        goto oom;
    al->label_tmpl = calloc(r->nlabels + 1, sizeof *al->label_tmpl);
    al->annotations = calloc(d->nannotations + 1, sizeof *al->annotations);
    al->ann_tmpl = calloc(d->nannotations + 1, sizeof *al->ann_tmpl);
    if (!al->label_tmpl || !al->annotations || !al->ann_tmpl)
        goto oom;
    for (size_t i = 0; i < d->nannotations; i++)
        al->annotations[i] = (label){d->annotations[i].name, d->annotations[i].value};
    al->nannotations = d->nannotations;
    qsort(al->annotations, al->nannotations, sizeof *al->annotations, cmp_config_label);
    for (size_t i = 0; i < r->nlabels + al->nannotations; i++) {
        const label *l = i < r->nlabels ? &r->labels[i] : &al->annotations[i - r->nlabels];
        tmpl **t = i < r->nlabels ? &al->label_tmpl[i] : &al->ann_tmpl[i - r->nlabels];
        if ((rc = tmpl_parse(l->value, name, t, err)) != 0) {
            if (rc != KILN_ENOMEM)
                kiln_err_prefix(err, "group \"%s\", rule \"%s\", %s \"%s\": ", g->def->name, d->name,
                                i < r->nlabels ? "label" : "annotation", l->name);
            goto fail;
        }
    }
    buf q = BUF_INIT, u = BUF_INIT;
    rule_query_format(r, &q);
    buf_puts(&u, g->env->external_url ? g->env->external_url : "");
    buf_puts(&u, "/graph?g0.expr=");
    if (q.len)
        tmpl_query_escape(&u, q.data, q.len);
    buf_puts(&u, "&g0.tab=1");
    int bad = buf_error(&q) != 0 || buf_error(&u) != 0;
    buf_free(&q);
    if (bad) {
        buf_free(&u);
        goto oom;
    }
    al->generator_url = buf_steal(&u);
    free(name);
    return 0;
oom:
    rc = kiln_err_set(err, KILN_ENOMEM, "out of memory");
fail:
    free(name);
    return rc;
}

void alert_free(rule_alert *a) {
    if (!a)
        return;
    free(a->labels);
    free(a->annotations);
    free(a);
}

void alert_rule_free(rule *r) {
    rule_alerting *al = r->al;
    if (!al)
        return;
    for (size_t i = 0; al->label_tmpl && i < r->nlabels; i++)
        tmpl_free(al->label_tmpl[i]);
    for (size_t i = 0; al->ann_tmpl && i < al->nannotations; i++)
        tmpl_free(al->ann_tmpl[i]);
    free(al->label_tmpl);
    free(al->ann_tmpl);
    free(al->annotations);
    for (size_t i = 0; i < al->nalerts; i++)
        alert_free(al->alerts[i]);
    free(al->alerts);
    free(al->generator_url);
    free(al);
    r->al = NULL;
}

/* ---- label sets owned by an alert -------------------------------------- */

/* One allocation holding the array and its strings; NULL when out of memory. */
static label *labels_dup(const label *ls, size_t n) {
    size_t sz = n * sizeof(label);
    for (size_t i = 0; i < n; i++)
        sz += strlen(ls[i].name) + strlen(ls[i].value) + 2;
    label *v = malloc(sz ? sz : 1);
    if (!v)
        return NULL;
    char *p = (char *)(v + n);
    for (size_t i = 0; i < n; i++) {
        size_t a = strlen(ls[i].name) + 1, b = strlen(ls[i].value) + 1;
        v[i].name = memcpy(p, ls[i].name, a);
        v[i].value = memcpy(p + a, ls[i].value, b);
        p += a + b;
    }
    return v;
}

/* ---- templates ----------------------------------------------------------- */

/* A query result handed to a template: the result and its samples. */
typedef struct tquery {
    query_result res;
    tmpl_label *labels;
    tmpl_sample s[];
} tquery;

static int template_query(void *data, const char *expr, int64_t ts_ms, tmpl_sample **out, size_t *n,
                          kiln_err *err) {
    rule_group *g = data;
    query_result res;
    int rc = rules_query(g, expr, ts_ms, &res, err);
    if (rc != 0)
        return rc;
    size_t ns = res.type == QUERY_SCALAR ? 1 : res.nseries, nl = 0;
    for (size_t i = 0; res.type == QUERY_VECTOR && i < ns; i++)
        nl += res.series[i].nls;
    tquery *q = malloc(sizeof *q + ns * sizeof q->s[0]);
    tmpl_label *labels = malloc((nl ? nl : 1) * sizeof *labels);
    if (!q || !labels) {
        free(q);
        free(labels);
        query_result_free(&res);
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    }
    q->res = res;
    q->labels = labels;
    if (res.type == QUERY_SCALAR)
        q->s[0] = (tmpl_sample){NULL, 0, res.scalar};
    for (size_t i = 0, k = 0; res.type == QUERY_VECTOR && i < ns; i++) {
        const query_series *s = &res.series[i];
        q->s[i] = (tmpl_sample){labels + k, s->nls, s->npts ? s->pts[0].v : NAN};
        for (size_t j = 0; j < s->nls; j++)
            labels[k++] = (tmpl_label){s->ls[j].name, s->ls[j].value};
    }
    *out = q->s;
    *n = ns;
    return 0;
}

static void template_query_free(void *data, tmpl_sample *v, size_t n) {
    (void)data;
    (void)n;
    tquery *q = (tquery *)((char *)v - offsetof(tquery, s));
    query_result_free(&q->res);
    free(q->labels);
    free(q);
}

/* Expands t into a string of a; NULL when out of memory. */
static const char *expand(const tmpl *t, const tmpl_data *d, buf *b, arena *a) {
    buf_reset(b);
    if (tmpl_expand(t, d, b) != 0)
        return NULL;
    return arena_strndup(a, b->data ? b->data : "", b->len);
}

/* ---- evaluation ---------------------------------------------------------- */

/* A result element made an alert candidate: its labels are g->out[i]'s. */
typedef struct cand {
    label *annotations; /* in the evaluation's arena */
} cand;

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_alert(const void *a, const void *b) {
    const rule_alert *x = *(rule_alert *const *)a, *y = *(rule_alert *const *)b;
    return labels_cmp(x->labels, x->nlabels, y->labels, y->nlabels);
}

/* The index of the alert with labels ls among the first nsorted, or
 * -(insertion point) - 1. */
static long alert_find(const rule *r, size_t nsorted, const label *ls, size_t n) {
    size_t lo = 0, hi = nsorted;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = labels_cmp(r->al->alerts[mid]->labels, r->al->alerts[mid]->nlabels, ls, n);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

/* Builds g->out[0..n) (labels and hash of each alert) and cands[i] from the
 * query result.  0, KILN_ENOMEM, or KILN_EINVAL for duplicates. */
static int build_candidates(rule_group *g, rule *r, const query_result *res, int64_t ts, arena *a, cand **out,
                            kiln_err *err) {
    size_t ns = res->type == QUERY_SCALAR ? 1 : res->nseries;
    cand *cands = arena_alloc(a, (ns ? ns : 1) * sizeof *cands);
    label *ov = arena_alloc(a, (r->nlabels + 2) * sizeof *ov);
    tmpl_label *tl = NULL;
    size_t ntl = 0;
    buf b = BUF_INIT;
    if (!cands || !ov)
        goto oom;
    g->nlab = g->nout = 0;
    for (size_t i = 0; i < ns; i++) {
        const label *ls = res->type == QUERY_SCALAR ? NULL : res->series[i].ls;
        size_t nls = res->type == QUERY_SCALAR ? 0 : res->series[i].nls;
        double v = res->type == QUERY_SCALAR ? res->scalar
                   : res->series[i].npts     ? res->series[i].pts[0].v
                                             : NAN;
        if (nls > ntl) {
            if (!(tl = arena_alloc(a, nls * sizeof *tl)))
                goto oom;
            ntl = nls;
        }
        for (size_t k = 0; k < nls; k++)
            tl[k] = (tmpl_label){ls[k].name, ls[k].value};
        tmpl_data d = {
            .labels = tl,
            .nlabels = nls,
            .ext_labels = g->ext,
            .next_labels = g->env->nexternal_labels,
            .external_url = g->env->external_url,
            .value = v,
            .ts_ms = ts,
            .query = template_query,
            .query_free = template_query_free,
            .query_data = g,
        };
        /* the overrides: the rule's labels expanded, __name__ removed,
         * alertname set (sorted: "__name__" and "alertname" go in place) */
        size_t nov = 0;
        int named = 0, alerted = 0;
        for (size_t k = 0; k <= r->nlabels; k++) {
            const char *nm = k < r->nlabels ? r->labels[k].name : NULL;
            if (!named && (!nm || strcmp(nm, LABEL_NAME) >= 0)) {
                ov[nov++] = (label){LABEL_NAME, ""};
                named = 1;
            }
            if (!alerted && (!nm || strcmp(nm, "alertname") >= 0)) {
                ov[nov++] = (label){"alertname", r->def->name};
                alerted = 1;
            }
            if (!nm || strcmp(nm, "alertname") == 0 || strcmp(nm, LABEL_NAME) == 0)
                continue;
            const char *val = expand(r->al->label_tmpl[k], &d, &b, a);
            if (!val)
                goto oom;
            ov[nov++] = (label){nm, val};
        }
        label *ann = arena_alloc(a, (r->al->nannotations ? r->al->nannotations : 1) * sizeof *ann);
        if (!ann)
            goto oom;
        for (size_t k = 0; k < r->al->nannotations; k++) {
            const char *val = expand(r->al->ann_tmpl[k], &d, &b, a);
            if (!val)
                goto oom;
            ann[k] = (label){r->al->annotations[k].name, val};
        }
        cands[i].annotations = ann;
        if (rules_out_push(g, ls, nls, ov, nov, v) != 0)
            goto oom;
    }
    buf_free(&b);
    /* duplicates: equal hashes side by side in a sorted copy */
    uint64_t *h = arena_alloc(a, (ns ? ns : 1) * sizeof *h);
    if (!h)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    for (size_t i = 0; i < ns; i++)
        h[i] = g->out[i].hash;
    if (ns > 1)
        qsort(h, ns, sizeof *h, cmp_u64);
    for (size_t i = 1; i < ns; i++)
        if (h[i] == h[i - 1])
            return kiln_err_set(err, KILN_EINVAL, "%s", dup_alert_msg);
    *out = cands;
    return 0;
oom:
    buf_free(&b);
    return kiln_err_set(err, KILN_ENOMEM, "out of memory");
}

/* Merges the candidates into r->al->alerts (under the group's mutex). */
static int merge_candidates(rule_group *g, rule *r, const cand *cands, int64_t ts) {
    /* new alerts go after the sorted ones, then all are sorted once */
    size_t nsorted = r->al->nalerts;
    int rc = 0;
    for (size_t i = 0; i < g->nout && rc == 0; i++) {
        const label *ls = g->lab + g->out[i].off;
        size_t n = g->out[i].n;
        label *ann = labels_dup(cands[i].annotations, r->al->nannotations);
        if (!ann) {
            rc = KILN_ENOMEM;
            break;
        }
        long at = alert_find(r, nsorted, ls, n);
        rule_alert *a = at >= 0 ? r->al->alerts[at] : NULL;
        if (a && a->state != RULE_ALERT_INACTIVE) {
            a->value = g->out[i].v;
            free(a->annotations);
            a->annotations = ann;
            a->in_result = 1;
            continue;
        }
        rule_alert *na = calloc(1, sizeof *na);
        if (!na || !(na->labels = labels_dup(ls, n)) ||
            (at < 0 && array_grow((void **)&r->al->alerts, &r->al->capalerts, r->al->nalerts + 1,
                                  sizeof *r->al->alerts) != 0)) {
            free(ann);
            alert_free(na);
            rc = KILN_ENOMEM;
            break;
        }
        na->hash = g->out[i].hash;
        na->nlabels = n;
        na->annotations = ann;
        na->nannotations = r->al->nannotations;
        na->state = RULE_ALERT_PENDING;
        na->value = g->out[i].v;
        na->active_at = ts;
        na->fired_at = na->resolved_at = na->last_sent = na->valid_until = na->keep_firing_since = TZERO;
        na->in_result = 1;
        if (at >= 0) {
            alert_free(a);
            r->al->alerts[at] = na;
        } else {
            r->al->alerts[r->al->nalerts++] = na;
        }
    }
    if (r->al->nalerts > nsorted)
        qsort(r->al->alerts, r->al->nalerts, sizeof *r->al->alerts, cmp_alert);
    return rc;
}

/* Advances every alert's state at ts; returns the number left pending or
 * firing.  Under the group's mutex. */
static size_t advance(rule *r, int64_t ts) {
    size_t nactive = 0, k = 0;
    int64_t kff = r->def->keep_firing_for_ms;
    for (size_t i = 0; i < r->al->nalerts; i++) {
        rule_alert *a = r->al->alerts[i];
        int in = a->in_result;
        a->in_result = 0;
        if (!in) {
            int keep = 0;
            if (a->state == RULE_ALERT_FIRING && kff > 0) {
                if (a->keep_firing_since == TZERO)
                    a->keep_firing_since = ts;
                keep = ts - a->keep_firing_since < kff;
            }
            if (a->state == RULE_ALERT_PENDING ||
                (a->resolved_at != TZERO && ts - a->resolved_at > RESOLVED_RETENTION_MS)) {
                alert_free(a);
                continue;
            }
            if (a->state != RULE_ALERT_INACTIVE && !keep) {
                a->state = RULE_ALERT_INACTIVE;
                a->resolved_at = ts;
            }
            r->al->alerts[k++] = a;
            if (!keep)
                continue;
        } else {
            a->keep_firing_since = TZERO;
            r->al->alerts[k++] = a;
        }
        nactive++;
        if (a->state == RULE_ALERT_PENDING && ts - a->active_at >= r->def->for_ms) {
            a->state = RULE_ALERT_FIRING;
            a->fired_at = ts;
        }
    }
    r->al->nalerts = k;
    return nactive;
}

/* The labels of an alert's ALERTS / ALERTS_FOR_STATE series into dst (room
 * for r->nlabels + a->nlabels + 3): the rule's labels as written, the
 * alert's over them, then __name__, alertname and (ALERTS) alertstate. */
static size_t series_labels(const rule *r, const rule_alert *a, int for_state, label *tmp, label *dst) {
    size_t n = rules_labels_merge(tmp, r->labels, r->nlabels, a->labels, a->nlabels);
    label ov[3] = {{LABEL_NAME, for_state ? "ALERTS_FOR_STATE" : "ALERTS"},
                   {"alertname", r->def->name},
                   {"alertstate", a->state == RULE_ALERT_FIRING ? "firing" : "pending"}};
    return rules_labels_merge(dst, tmp, n, ov, for_state ? 2 : 3);
}

/* Go's time.Unix(): seconds, rounded down. */
static double unix_sec(int64_t ms) {
    int64_t s = ms / 1000;
    if (ms % 1000 < 0)
        s--;
    return (double)s;
}

/* Pushes the ALERTS and ALERTS_FOR_STATE samples of the active alerts. */
static int push_series(rule_group *g, rule *r) {
    g->nlab = g->nout = 0;
    size_t max = 0;
    for (size_t i = 0; i < r->al->nalerts; i++)
        if (r->al->alerts[i]->nlabels > max)
            max = r->al->alerts[i]->nlabels;
    label *tmp = malloc((r->nlabels + max + 3) * 2 * sizeof *tmp);
    if (!tmp)
        return KILN_ENOMEM;
    label *ls = tmp + r->nlabels + max + 3;
    int rc = 0;
    for (size_t i = 0; i < r->al->nalerts && rc == 0; i++) {
        const rule_alert *a = r->al->alerts[i];
        if (a->state == RULE_ALERT_INACTIVE)
            continue;
        size_t n = series_labels(r, a, 0, tmp, ls);
        rc = rules_out_push(g, ls, n, NULL, 0, 1);
        n = series_labels(r, a, 1, tmp, ls);
        if (rc == 0)
            rc = rules_out_push(g, ls, n, NULL, 0, unix_sec(a->active_at));
    }
    free(tmp);
    return rc;
}

static int needs_sending(const rule_alert *a, int64_t ts, int64_t resend_delay) {
    if (a->state == RULE_ALERT_PENDING)
        return 0;
    if (a->resolved_at != TZERO && (a->last_sent == TZERO || a->resolved_at > a->last_sent))
        return 1;
    return a->last_sent == TZERO || a->last_sent + resend_delay < ts;
}

/* Sends the alerts due at ts (Prometheus' sendAlerts). */
static void send_alerts(rule_group *g, rule *r, int64_t ts) {
    notifier *nf = g->env->notify;
    if (!nf || !r->al->nalerts)
        return;
    notifier_alert *v = malloc(r->al->nalerts * sizeof *v);
    if (!v) {
        LOG_ERROR("sending alerts failed", "group=%s name=%s err=\"out of memory\"", g->def->name,
                  r->def->name);
        return;
    }
    int64_t delta = g->env->resend_delay_ms > g->interval_ms ? g->env->resend_delay_ms : g->interval_ms;
    size_t n = 0;
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < r->al->nalerts; i++) {
        rule_alert *a = r->al->alerts[i];
        if (!needs_sending(a, ts, g->env->resend_delay_ms))
            continue;
        a->last_sent = ts;
        a->valid_until = ts + 4 * delta;
        v[n++] = (notifier_alert){
            a->labels,           a->nlabels,  a->annotations,
            a->nannotations,     a->fired_at, a->resolved_at != TZERO ? a->resolved_at : a->valid_until,
            r->al->generator_url};
    }
    pthread_mutex_unlock(&g->mu);
    /* only this thread frees alerts: v stays valid without the mutex */
    if (n && notifier_send(nf, v, n) != 0)
        LOG_ERROR("sending alerts failed", "group=%s name=%s err=\"out of memory\"", g->def->name,
                  r->def->name);
    free(v);
}

int alert_rule_eval(rule_group *g, rule *r, int64_t ts, kiln_err *err) {
    int64_t t = ts - g->query_offset_ms;
    query_result res;
    int rc = rules_query(g, r->def->expr, t, &res, err);
    if (rc != 0)
        return rc;
    arena a;
    arena_init(&a, 0);
    cand *cands = NULL;
    rc = build_candidates(g, r, &res, ts, &a, &cands, err);
    if (rc == 0) {
        pthread_mutex_lock(&g->mu);
        rc = merge_candidates(g, r, cands, ts);
        size_t nactive = advance(r, ts);
        if (rc == 0 && g->def->limit > 0 && nactive > (uint64_t)g->def->limit) {
            for (size_t i = 0; i < r->al->nalerts; i++)
                alert_free(r->al->alerts[i]);
            r->al->nalerts = 0;
            rc = kiln_err_set(err, KILN_EINVAL, "exceeded limit of %lld with %zu alerts",
                              (long long)g->def->limit, nactive);
        }
        pthread_mutex_unlock(&g->mu);
        if (rc == KILN_ENOMEM)
            kiln_err_set(err, rc, "out of memory");
    }
    arena_free(&a);
    query_result_free(&res);
    if (rc != 0)
        return rc;
    send_alerts(g, r, ts);
    g->nlab = g->nout = 0;
    if (r->restored && push_series(g, r) != 0)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    return rules_out_write(g, r, t, 0, dup_alert_msg, err);
}

/* ---- restore ------------------------------------------------------------- */

/* The last sample of ALERTS_FOR_STATE with exactly labels ls in q: 1 and
 * *t, *v, or 0 when there is none. */
static int last_for_state(querier *q, const label *ls, size_t n, int64_t mint, int64_t maxt, int64_t *t,
                          double *v) {
    matcher *ms = calloc(n ? n : 1, sizeof *ms);
    if (!ms)
        return 0;
    size_t nms = 0;
    int found = 0;
    kiln_err e;
    for (; nms < n; nms++)
        if (matcher_init(&ms[nms], MATCH_EQ, ls[nms].name, ls[nms].value, &e) != 0)
            goto done;
    series_set set = {0};
    select_hints h = {.mint = mint, .maxt = maxt};
    if (querier_select(q, ms, nms, &h, &set, &e) != 0) {
        LOG_ERROR("failed to restore 'for' state", "stage=Select err=%s", e.msg);
        goto done;
    }
    for (size_t i = 0; i < set.n; i++)
        if (set.v[i].nls == n && set.v[i].n) {
            *t = set.v[i].s[set.v[i].n - 1].t;
            *v = set.v[i].s[set.v[i].n - 1].v;
            found = 1;
            break;
        }
    series_set_free(&set);
done:
    for (size_t i = 0; i < nms; i++)
        matcher_free(&ms[i]);
    free(ms);
    return found;
}

/* Floor of ms to whole seconds (Go's time.Unix(t/1000, 0) for t >= 0 and
 * the truncation it does below). */
static int64_t sec_ms(int64_t ms) {
    return ms / 1000 * 1000;
}

void alert_restore(rule_group *g, int64_t ts) {
    int64_t mint = ts - g->env->outage_tolerance_ms, grace = g->env->for_grace_period_ms;
    querier *q = NULL;
    kiln_err e;
    if (storage_querier(g->env->st, mint, ts, &q, &e) != 0) {
        LOG_ERROR("failed to get querier", "group=%s err=%s", g->def->name, e.msg);
        return;
    }
    for (size_t i = 0; i < g->nrules; i++) {
        rule *r = &g->rules[i];
        if (r->def->kind != RULEFILE_ALERT)
            continue;
        int64_t hold = r->def->for_ms;
        if (hold < grace) {
            r->restored = 1;
            continue;
        }
        for (size_t k = 0; k < r->al->nalerts; k++) {
            rule_alert *a = r->al->alerts[k];
            label *tmp = malloc((r->nlabels + a->nlabels + 3) * 2 * sizeof *tmp);
            if (!tmp)
                break;
            label *ls = tmp + r->nlabels + a->nlabels + 3;
            size_t n = series_labels(r, a, 1, tmp, ls);
            int64_t t;
            double v;
            int found = last_for_state(q, ls, n, mint, ts, &t, &v);
            free(tmp);
            if (!found || value_is_stale(v))
                continue;
            int64_t down_at = sec_ms(t), active_at = (int64_t)v * 1000;
            int64_t remaining = hold - (down_at - active_at);
            if (remaining <= 0) {
                /* it was firing when the server went down: it has been since */
            } else if (remaining < grace) {
                active_at = ts + grace - hold;
            } else {
                active_at += ts - down_at;
            }
            pthread_mutex_lock(&g->mu);
            a->active_at = active_at;
            pthread_mutex_unlock(&g->mu);
        }
        r->restored = 1;
    }
    querier_close(q);
}

/* ---- readers --------------------------------------------------------------- */

int alert_rule_state(const rule *r) {
    int s = RULE_ALERT_INACTIVE;
    for (size_t i = 0; i < r->al->nalerts; i++)
        if (r->al->alerts[i]->state > s)
            s = r->al->alerts[i]->state;
    return s;
}

void alert_view(const rule *r, const rule_alert *a, rule_alert_view *v) {
    *v = (rule_alert_view){
        .rule_name = r->def->name,
        .labels = a->labels,
        .nlabels = a->nlabels,
        .annotations = a->annotations,
        .nannotations = a->nannotations,
        .state = a->state,
        .value = a->value,
        .active_at_ms = a->active_at,
        .fired_at_ms = a->fired_at,
        .resolved_at_ms = a->resolved_at,
        .last_sent_ms = a->last_sent,
        .valid_until_ms = a->valid_until,
        .keep_firing_since_ms = a->keep_firing_since,
    };
}
