/*
 * rules_json.c - a rule group and its alerts as Prometheus' /api/v1/rules
 * and /api/v1/alerts show them (web/api/v1's RuleGroup, AlertingRule,
 * RecordingRule and Alert, encoded by json-iterator): the same members in
 * the same order, floats as Go encodes them, times as RFC 3339 with
 * nanoseconds ("0001-01-01T00:00:00Z" for a rule never evaluated).
 *
 * Called by manager.c (rules_manager_rules_json, _alerts_json) from the
 * API's worker threads; reads the group under its mutex (group.h).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rules/group.h"

/* Go's time.Time MarshalJSON (RFC3339Nano, UTC) of sec + ns since the
 * epoch; unset is Go's zero time. */
static void json_time_ns(buf *b, int64_t ns, int64_t sec, int unset) {
    char tmp[TIME_RFC3339_MAX];
    buf_putc(b, '"');
    if (unset)
        buf_puts(b, "0001-01-01T00:00:00Z");
    else
        buf_append(b, tmp, (size_t)time_format_rfc3339(tmp, sec, ns, -1));
    buf_putc(b, '"');
}

static void json_time_ms(buf *b, int64_t ms) {
    json_time_ns(b, ms % 1000 * 1000000, ms / 1000, ms == NOTIFIER_TIME_ZERO);
}

/* A float as json-iterator writes it: Go's 'f' form, 'e' below 1e-6 and
 * from 1e21, an exponent's leading zero dropped ("1e-7"). */
static void json_float(buf *b, double v) {
    char tmp[FMT_DOUBLE_MAX + 1];
    double a = fabs(v);
    int n;
    if (a != 0 && (a < 1e-6 || a >= 1e21)) {
        n = fmt_double_e(v, tmp);
        if (n >= 4 && tmp[n - 4] == 'e' && tmp[n - 3] == '-' && tmp[n - 2] == '0') {
            tmp[n - 2] = tmp[n - 1];
            n--;
        }
    } else {
        n = fmt_double_f(v, tmp);
    }
    buf_append(b, tmp, (size_t)n);
}

static const char *state_name(int s) {
    return s == RULE_ALERT_FIRING ? "firing" : s == RULE_ALERT_PENDING ? "pending" : "inactive";
}

void rule_alert_json(const rule_alert_view *a, buf *out) {
    buf_puts(out, "{\"labels\":");
    labels_json(out, a->labels, a->nlabels);
    buf_puts(out, ",\"annotations\":");
    labels_json(out, a->annotations, a->nannotations);
    buf_printf(out, ",\"state\":\"%s\",\"activeAt\":", state_name(a->state));
    json_time_ms(out, a->active_at_ms);
    if (a->keep_firing_since_ms != NOTIFIER_TIME_ZERO) {
        buf_puts(out, ",\"keepFiringSince\":");
        json_time_ms(out, a->keep_firing_since_ms);
    }
    char v[FMT_DOUBLE_MAX + 1];
    int n = fmt_double_e(a->value, v);
    buf_puts(out, ",\"value\":\"");
    buf_append(out, v, (size_t)n);
    buf_puts(out, "\"}");
}

/* A recording rule's labels, without the __name__ they carry. */
static void rule_labels_json(buf *b, const rule *r) {
    buf_putc(b, '{');
    for (size_t i = 0, first = 1; i < r->nlabels; i++) {
        if (strcmp(r->labels[i].name, LABEL_NAME) == 0)
            continue;
        if (!first)
            buf_putc(b, ',');
        first = 0;
        json_str(b, r->labels[i].name);
        buf_putc(b, ':');
        json_str(b, r->labels[i].value);
    }
    buf_putc(b, '}');
}

static int in_list(const char *s, const char *const *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, v[i]) == 0)
            return 1;
    return 0;
}

/* "query": the rule's expression as Prometheus prints it. */
static void query_json(buf *b, const rule *r) {
    buf q = BUF_INIT;
    rule_query_format(r, &q);
    if (buf_error(&q) != 0)
        b->oom = 1; /* sticky: the response is not sent */
    else
        json_strn(b, q.data, q.len);
    buf_free(&q);
}

static void rule_json(buf *b, const rule *r, int exclude_alerts) {
    int alerting = r->def->kind == RULEFILE_ALERT;
    if (alerting) {
        buf_printf(b, "{\"state\":\"%s\",\"name\":", state_name(alert_rule_state(r)));
        json_str(b, r->def->name);
        buf_puts(b, ",\"query\":");
        query_json(b, r);
        buf_puts(b, ",\"duration\":");
        json_float(b, (double)r->def->for_ms / 1000);
        buf_puts(b, ",\"keepFiringFor\":");
        json_float(b, (double)r->def->keep_firing_for_ms / 1000);
        buf_puts(b, ",\"labels\":");
        labels_json(b, r->labels, r->nlabels);
        buf_puts(b, ",\"annotations\":");
        labels_json(b, r->al->annotations, r->al->nannotations);
        if (exclude_alerts) {
            buf_puts(b, ",\"alerts\":null");
        } else {
            buf_puts(b, ",\"alerts\":[");
            for (size_t i = 0, first = 1; i < r->al->nalerts; i++) {
                if (r->al->alerts[i]->state == RULE_ALERT_INACTIVE)
                    continue;
                if (!first)
                    buf_putc(b, ',');
                first = 0;
                rule_alert_view v;
                alert_view(r, r->al->alerts[i], &v);
                rule_alert_json(&v, b);
            }
            buf_putc(b, ']');
        }
    } else {
        buf_puts(b, "{\"name\":");
        json_str(b, r->def->name);
        buf_puts(b, ",\"query\":");
        query_json(b, r);
        if (r->nlabels > 1) {
            buf_puts(b, ",\"labels\":");
            rule_labels_json(b, r);
        }
    }
    buf_printf(b, ",\"health\":\"%s\"",
               r->health == RULE_HEALTH_OK    ? "ok"
               : r->health == RULE_HEALTH_ERR ? "err"
                                              : "unknown");
    if (r->last_error && r->last_error[0]) {
        buf_puts(b, ",\"lastError\":");
        json_str(b, r->last_error);
    }
    buf_puts(b, ",\"evaluationTime\":");
    json_float(b, (double)r->eval_ns / 1e9);
    buf_puts(b, ",\"lastEvaluation\":");
    json_time_ns(b, r->last_eval_ns, 0, r->last_eval_ns == 0);
    buf_printf(b, ",\"type\":\"%s\"}", alerting ? "alerting" : "recording");
}

int rule_group_json(rule_group *g, const rules_filter *f, buf *out, int *empty) {
    const rulefile_group *d = g->def;
    *empty = 1;
    if (f && f->nrule_groups && !in_list(d->name, f->rule_groups, f->nrule_groups))
        return 0;
    if (f && f->nfiles && !in_list(d->file ? d->file : "", f->files, f->nfiles))
        return 0;
    size_t start = out->len;
    buf_puts(out, "{\"name\":");
    json_str(out, d->name);
    buf_puts(out, ",\"file\":");
    json_str(out, d->file ? d->file : "");
    buf_puts(out, ",\"rules\":[");
    size_t nshown = 0;
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < g->nrules; i++) {
        const rule *r = &g->rules[i];
        if (f && f->type && r->def->kind != f->type)
            continue;
        if (f && f->nrule_names && !in_list(r->def->name, f->rule_names, f->nrule_names))
            continue;
        if (nshown++)
            buf_putc(out, ',');
        rule_json(out, r, f && f->exclude_alerts);
    }
    buf_puts(out, "],\"interval\":");
    json_float(out, (double)g->interval_ms / 1000);
    buf_printf(out, ",\"limit\":%lld,\"evaluationTime\":", (long long)d->limit);
    json_float(out, (double)g->eval_ns / 1e9);
    buf_puts(out, ",\"lastEvaluation\":");
    json_time_ns(out, g->last_eval_ns, 0, g->last_eval_ns == 0);
    pthread_mutex_unlock(&g->mu);
    buf_putc(out, '}');
    if (!nshown) {
        out->len = start;
        if (out->data)
            out->data[start] = 0;
        return buf_error(out);
    }
    *empty = 0;
    return buf_error(out);
}
