/*
 * group.h - the inside of a rule group, shared by the files that evaluate
 * and show it (private to rules/): group.c (creation, schedule, the
 * evaluation loop, recording rules, writing a rule's output with stale
 * markers), alert.c (alerting rules: templates, the alert state machine,
 * ALERTS, sending, restore) and rules_json.c (the API's JSON).
 *
 * Invariants (see rules_int.h for the threads):
 *  1. Only the evaluating thread changes a rule's state; it takes the
 *     group's mutex for each change that readers can see (alerts, health,
 *     last error, times), so it may read its own state without the mutex.
 *  2. rule.prev is sorted by hash, one entry per series the rule wrote at
 *     its last successful evaluation (the output's label-set hash and the
 *     storage's series reference).  It is all that stale markers need: a
 *     series gone is written to through its reference.
 *  3. rule.alerts is sorted by labels; each alert owns its labels and
 *     annotations (one allocation each).
 */
#ifndef KILN_RULES_GROUP_H
#define KILN_RULES_GROUP_H

#include "rules/rules_int.h"
#include "rules/template.h"

enum { RULE_HEALTH_UNKNOWN = 0, RULE_HEALTH_OK, RULE_HEALTH_ERR };

/* A series a rule wrote: the hash of its labels and its storage reference. */
typedef struct rule_series {
    uint64_t hash;
    uint64_t ref;
} rule_series;

/* One alert of an alerting rule.  Times are ms since the epoch,
 * NOTIFIER_TIME_ZERO when unset (Go's zero time). */
typedef struct rule_alert {
    uint64_t hash; /* of labels */
    label *labels; /* sorted, alertname included; owns its strings */
    size_t nlabels;
    label *annotations; /* sorted by name; owns its strings */
    size_t nannotations;
    int state; /* RULE_ALERT_* */
    double value;
    int64_t active_at, fired_at, resolved_at, last_sent, valid_until, keep_firing_since;
    int in_result; /* scratch of an evaluation */
} rule_alert;

/* One item of a rule's output at an evaluation: a sample to append.  Its
 * labels are lab[off .. off+n) of the group's scratch array. */
typedef struct rule_out {
    uint64_t hash;
    uint64_t ref;
    size_t off;
    size_t n;
    double v;
    const histogram *h; /* a native histogram sample instead of v (the query result's) */
} rule_out;

/* What only an alerting rule has. */
typedef struct rule_alerting {
    tmpl **label_tmpl;  /* one per rule.labels[] */
    label *annotations; /* sorted by name; strings of the set */
    size_t nannotations;
    tmpl **ann_tmpl;
    rule_alert **alerts;
    size_t nalerts, capalerts;
    char *generator_url;
} rule_alerting;

typedef struct rule {
    const rulefile_rule *def;
    label *labels; /* group labels then the rule's (the rule's win), sorted; strings of the set */
    size_t nlabels;
    uint64_t key; /* hash of name and labels: what a reload matches rules by */
    rule_series *prev;
    size_t nprev;
    struct rule_alerting *al; /* alerting rules only (NULL for recording rules) */
    int restored; /* alerting: ALERTS and ALERTS_FOR_STATE are written (false until the restore) */
    /* readers' state, under the group's mutex */
    int health;
    char *last_error;     /* NULL when none */
    int64_t eval_ns;      /* duration of the last evaluation */
    int64_t last_eval_ns; /* wall clock at its start, 0 before the first */
} rule;

struct rule_group {
    const rulefile_group *def;
    const rules_env *env;
    int64_t interval_ms, query_offset_ms;
    uint64_t hash; /* Prometheus' labels.Hash of {file, name} */
    int should_restore;
    rule *rules;
    size_t nrules;
    tmpl_label *ext; /* env's external labels for templates */
    /* series of removed rules (from rule_group_copy_state): stale markers at the next evaluation */
    uint64_t *stale_refs;
    size_t nstale_refs;
    pthread_mutex_t mu;
    /* under mu */
    int64_t eval_ns, last_eval_ns, last_ts_ms;
    uint64_t evaluations, failures, samples; /* samples: of the last evaluation */
    /* scratch of the evaluating thread */
    uint64_t eval_samples;
    label *lab;
    size_t nlab, caplab;
    rule_out *out;
    size_t nout, capout;
};

/* Appends the rule's expression as Prometheus prints it (String()), for
 * the API and the alerts' generator URL: formatted when asked, not kept (a
 * copy per rule was 1.9 MB for 10,000 rules).  Check buf_error on out. */
void rule_query_format(const rule *r, buf *out);

/* Wall clock in ns since the epoch. */
int64_t rules_now_ns(void);

/* Sets a rule's health and error (msg NULL: ok) and times under the mutex. */
void rules_set_health(rule_group *g, rule *r, const char *msg);

/* Writes to dst the label set base (sorted) with the overrides ov (sorted
 * by name, names unique; an empty value removes the label) applied; dst has
 * room for nbase + nov.  Returns the count.  Strings are borrowed. */
size_t rules_labels_merge(label *dst, const label *base, size_t nbase, const label *ov, size_t nov);

/*
 * Appends to g->lab the label set `base` (sorted) with the overrides ov
 * (sorted by name, names unique; an empty value removes the label) applied,
 * and pushes an output item for it with value v.  0 or KILN_ENOMEM.
 */
KILN_MUST_CHECK int rules_out_push(rule_group *g, const label *base, size_t nbase, const label *ov,
                                   size_t nov, double v);

/*
 * Writes g->out[0..nout) for rule r at t: sorts by hash (a duplicate label
 * set is an error: dup_msg in *err and nothing written; so is more than
 * `limit` items when limit > 0), reuses the series
 * references of r->prev, appends, writes stale markers for the series of
 * r->prev not in the output, commits and makes the output r->prev.  Sets
 * the rule's health (append errors are reported as Prometheus does: the
 * sample is skipped).  0, or the rule's error (KILN_EINVAL with err).
 */
KILN_MUST_CHECK int rules_out_write(rule_group *g, rule *r, int64_t t, int64_t limit, const char *dup_msg,
                                    kiln_err *err);

/* Runs an instant query at t for the rules (a scalar becomes one sample
 * without labels, anything but a vector or scalar is an error). */
KILN_MUST_CHECK int rules_query(rule_group *g, const char *expr, int64_t t, query_result *res, kiln_err *err);

/* alert.c */
KILN_MUST_CHECK int alert_rule_init(rule_group *g, rule *r, kiln_err *err);
void alert_rule_free(rule *r);
/* Evaluates alerting rule r at ts (query at ts - offset); 0 or the rule's error in err. */
KILN_MUST_CHECK int alert_rule_eval(rule_group *g, rule *r, int64_t ts, kiln_err *err);
/* Restores the `for` state of every alerting rule of g from ALERTS_FOR_STATE at ts. */
void alert_restore(rule_group *g, int64_t ts);
/* The rule's state for the API: the highest of its alerts' (RULE_ALERT_*). */
int alert_rule_state(const rule *r);
/* Fills v from a (rule_name from r). */
void alert_view(const rule *r, const rule_alert *a, rule_alert_view *v);
void alert_free(rule_alert *a);

#endif
