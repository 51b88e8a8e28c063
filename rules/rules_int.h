/*
 * rules_int.h - what the files of rules/ share (private to rules/): a rule
 * group that can be evaluated at a given time, synchronously, by whoever
 * holds it.  manager.c schedules groups on its threads; unittest.c (`kiln
 * test rules`) steps them through time over a storage of its own; the JSON
 * views read them.
 *
 * Threads: a rule_group is evaluated by one thread at a time (the manager
 * never runs one group twice at once); rule_group_foreach_alert and the
 * other readers may run on any thread during an evaluation: a group's
 * mutex guards its rules' results and alerts, and is held only while they
 * are read or swapped, never across a query.
 */
#ifndef KILN_RULES_INT_H
#define KILN_RULES_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "rules/notifier.h"
#include "rules/rules.h"

/* What evaluating a group needs; borrowed by the groups, owned by their
 * creator (the manager, or a unit test run). */
typedef struct rules_env {
    storage *st;
    query_engine engine;
    const label *external_labels; /* sorted */
    size_t nexternal_labels;
    const char *external_url;
    int64_t outage_tolerance_ms;
    int64_t for_grace_period_ms;
    int64_t resend_delay_ms;
    notifier *notify;  /* NULL: alerts are not sent (unit tests) */
    int restore_state; /* 1: restore alerts' `for` state from ALERTS_FOR_STATE at the first evaluation */
} rules_env;

enum { RULE_ALERT_INACTIVE = 0, RULE_ALERT_PENDING, RULE_ALERT_FIRING };

/* One alert as the readers see it; everything borrowed from the group for
 * the callback. */
typedef struct rule_alert_view {
    const char *rule_name; /* the alert's rule (`alert:`) */
    const label *labels;   /* sorted; alertname included */
    size_t nlabels;
    const label *annotations; /* sorted by name */
    size_t nannotations;
    int state; /* RULE_ALERT_* (INACTIVE: resolved, still kept to be sent) */
    double value;
    /* Times in ms since the epoch; NOTIFIER_TIME_ZERO (INT64_MIN, Go's zero
     * time) when not set, since 0 is a time `kiln test rules` evaluates at. */
    int64_t active_at_ms; /* when it became pending */
    int64_t fired_at_ms;  /* unset when it never fired */
    int64_t resolved_at_ms;
    int64_t last_sent_ms;
    int64_t valid_until_ms;
    int64_t keep_firing_since_ms;
} rule_alert_view;

typedef struct rule_group rule_group;

/*
 * A group for fg (borrowed: the rulefile_set must outlive the group), its
 * templates parsed, its interval and query offset from fg or else from
 * global.  0 and *out, or KILN_EINVAL (a template does not parse; the set
 * was checked, so only when loaded without the check) / KILN_ENOMEM.
 */
KILN_MUST_CHECK int rule_group_new(const rulefile_group *fg, const config_global *global,
                                   const rules_env *env, rule_group **out, kiln_err *err);
void rule_group_free(rule_group *g);

int64_t rule_group_interval_ms(const rule_group *g);
/* Prometheus' schedule: the first evaluation at or after now_ms
 * (a multiple of the interval plus the group's hash offset). */
int64_t rule_group_next_eval_ms(const rule_group *g, int64_t now_ms);

/*
 * Evaluates every rule in order at ts_ms (each query at ts_ms minus the
 * query offset): recording rules' samples appended and committed, stale
 * markers for series gone since the last evaluation, alerts' states
 * advanced, ALERTS and ALERTS_FOR_STATE appended, alerts due sent to
 * env->notify.  A rule's failure (query error, duplicate series, limit) is
 * kept as its health and lastError and the group goes on.  Returns 0, or
 * KILN_ENOMEM / KILN_EIO when the group could not be evaluated at all.
 */
KILN_MUST_CHECK int rule_group_eval(rule_group *g, int64_t ts_ms);

/* Moves the state of the rules of `old` into the rules of g with the same
 * name and labels (the group's and the rule's), as Prometheus' reload does
 * (Group.CopyState: the expression may differ); each rule of old matches
 * once, in order.  The series of the rules of old that matched nothing get
 * stale markers at g's next evaluation.  old is left without them; free it
 * after.  Neither group may be in evaluation. */
void rule_group_copy_state(rule_group *g, rule_group *old);

/*
 * Calls fn for every alert of the group's alerting rules, in rule order and
 * each rule's alerts sorted by labels, inactive (resolved) ones included.
 * Stops at fn's first non-zero return and returns it.  fn runs under the
 * group's mutex: it must not call the group's functions.
 */
int rule_group_foreach_alert(rule_group *g, int (*fn)(void *data, const rule_alert_view *a), void *data);

/* The group's schedule offset within its interval (ms). */
int64_t rule_group_offset_ms(const rule_group *g);

/*
 * Stale markers at ts_ms - query offset for every series the group's rules
 * wrote at their last evaluation (and those of rules removed at a reload),
 * for a group that a reload removed: Prometheus writes them two intervals
 * after the group stopped.  Not during an evaluation of g.  0, or
 * KILN_ENOMEM / the commit's error.
 */
KILN_MUST_CHECK int rule_group_mark_stale(rule_group *g, int64_t ts_ms);

/* What the manager's metrics (Prometheus' prometheus_rule_*) read of a group. */
typedef struct rule_group_stats {
    double last_duration_sec;  /* wall time of the last evaluation */
    double last_eval_wall_sec; /* when it started (wall clock, s since the epoch); 0 before the first */
    int64_t last_eval_ts_ms;   /* the ts_ms it was given */
    uint64_t evaluations;      /* rule evaluations, all time (prometheus_rule_evaluations_total) */
    uint64_t failures;         /* rule evaluations that failed (..._evaluation_failures_total) */
    uint64_t last_samples;     /* samples its rules returned at the last evaluation */
    size_t nrules;
} rule_group_stats;

/* Any thread. */
void rule_group_stats_get(rule_group *g, rule_group_stats *out);

/*
 * Appends one alert as /api/v1/alerts and /api/v1/rules show it:
 * {"labels":{..},"annotations":{..},"state":"firing","activeAt":"<RFC 3339>",
 * "value":"1e+00"} (keepFiringSince after activeAt when set).  Check
 * buf_error on out afterwards.
 */
void rule_alert_json(const rule_alert_view *a, buf *out);

/* Appends the group as one element of /api/v1/rules' "groups" (filtered by f;
 * *empty is set when no rule passed the filter, and nothing is appended). */
KILN_MUST_CHECK int rule_group_json(rule_group *g, const rules_filter *f, buf *out, int *empty);

/*
 * The manager's schedule (manager.c) after an evaluation at ts_ms that ended
 * at now_ms, as Prometheus' ticker: the next slot, ts + interval, while it
 * is ahead; else the latest slot already passed (evaluated at once), the
 * slots between counted in *missed.
 */
int64_t rules_next_slot(int64_t ts_ms, int64_t interval_ms, int64_t now_ms, int64_t *missed);

#endif
