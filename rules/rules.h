/*
 * rules.h - the public interface of kiln's rule manager: recording and
 * alerting rules evaluated on a schedule, alerts sent to Alertmanager, the
 * JSON of /api/v1/rules, /api/v1/alerts and /api/v1/alertmanagers, and
 * promtool's rule unit tests (`kiln test rules`).
 *
 * Loading.  rules_load reads the configuration's rule_files with every
 * check promtool makes (PromQL parsed by query/, templates by rules/'s
 * template engine) and reports every error.  The daemon loads the rules of
 * a new configuration before it swaps anything in: a bad rule file keeps the
 * old configuration and rules.
 *
 * Evaluation.  Each group has its own schedule: every `interval`, offset
 * within it by a hash of the group's file and name as Prometheus does, its
 * rules evaluated in order at the same timestamp (minus query_offset), so a
 * rule sees the output of the rules before it.  Recording rules append
 * through the storage's appender (WAL first) and write stale markers for
 * series that disappear; alerting rules keep their alerts' state (pending,
 * firing, resolved), write ALERTS and ALERTS_FOR_STATE, and send active
 * and recently resolved alerts to the notifier.  A reload keeps the state of
 * the rules that did not change.
 *
 * Used by cmd/kiln/main.c (create, apply at start and at each reload, stop)
 * and api/ (the JSON views).  Threads: the manager runs its own scheduler
 * and evaluation threads; every function here may be called from any
 * thread, except rules_manager_free (the owner, once).
 */
#ifndef KILN_RULES_H
#define KILN_RULES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "query/query.h"
#include "storage/storage.h"
#include "util/util.h"

/*
 * Prometheus relabeling of ls[0..n) by steps[0..nsteps): returns 1 and the
 * result (any order, memory from a) in *out and *nout, 0 when dropped, or
 * KILN_ENOMEM.  scrape/'s relabel_process is one; rules/ may not include
 * scrape/, so the daemon passes it in.
 */
typedef int (*rules_relabel_fn)(const config_relabel *steps, size_t nsteps, const label *ls, size_t n,
                                arena *a, label **out, size_t *nout);

typedef struct rules_options {
    query_engine_opts engine;    /* the --query.* flags rule queries run with */
    int64_t outage_tolerance_ms; /* --rules.alert.for-outage-tolerance, default 1h */
    int64_t for_grace_period_ms; /* --rules.alert.for-grace-period, default 10m */
    int64_t resend_delay_ms;     /* --rules.alert.resend-delay, default 1m */
    size_t queue_capacity;       /* --alertmanager.notification-queue-capacity, default 10000 */
    const char *external_url;    /* --web.external-url: generatorURL, templates' externalURL (copied) */
    rules_relabel_fn relabel;    /* alert and Alertmanager relabeling */
    int eval_threads;            /* groups evaluated at once; 0: the number of cores */
} rules_options;

/* The defaults above (external_url "http://localhost:9090", relabel NULL). */
rules_options rules_options_default(void);

/*
 * Loads c's rule_files (globs already resolved against the configuration
 * file's directory) with promtool's checks.  On success *out is the set
 * (free with rulefile_free, or hand it to rules_manager_apply); otherwise a
 * negative KILN_E* code and err holds every error, one per line
 * ("rules.yml:4:17: group \"g\", rule 1, \"bad name\": invalid recording rule
 * name: bad name").
 */
KILN_MUST_CHECK int rules_load(const config *c, rulefile_set **out, kiln_err *err);

/* The template check of rule files (rulefile_opts.check_template), as
 * rules_load makes it: template.c's, declared here for `kiln --check-rules`. */
KILN_MUST_CHECK int tmpl_check(const char *name, const char *text, kiln_err *err);

typedef struct rules_manager rules_manager;

/*
 * A manager evaluating against st (borrowed; it must outlive the manager),
 * with no rules yet; its threads start with rules_manager_run.  Registers
 * the kiln_rule_* and kiln_notifications_* metrics: create one per process.
 * 0 and *out, or KILN_ENOMEM / KILN_EIO with err.
 */
KILN_MUST_CHECK int rules_manager_new(storage *st, const rules_options *o, rules_manager **out,
                                      kiln_err *err);

/* Starts the scheduler, the evaluation threads and the notifier's sender.
 * Restores the `for` state of alerts from ALERTS_FOR_STATE at the first
 * evaluation of each alerting rule.  0 or KILN_EIO. */
KILN_MUST_CHECK int rules_manager_run(rules_manager *m);

/*
 * Makes c (global.evaluation_interval, rule_query_offset, external_labels,
 * the alerting section) and the rules of `set` the running ones.  Takes
 * ownership of set (also on error).  Groups whose file, name and rules are
 * unchanged keep their alerts and schedule; a group in evaluation finishes
 * first.  On error nothing changes: KILN_EINVAL with err (the alerting
 * section cannot be applied), or KILN_ENOMEM.  Retains c.
 */
KILN_MUST_CHECK int rules_manager_apply(rules_manager *m, const config *c, rulefile_set *set, kiln_err *err);

/* Stops the threads (an evaluation in progress finishes) and frees
 * everything.  NULL is fine. */
void rules_manager_free(rules_manager *m);

/* ---- the API's views (JSON `data` objects, as Prometheus 2.42 writes them) ---- */

/* The filters of GET /api/v1/rules; NULL arrays and zero counts: no filter. */
typedef struct rules_filter {
    int type; /* 0: both, RULEFILE_RECORD or RULEFILE_ALERT */
    const char *const *rule_names;
    size_t nrule_names;
    const char *const *rule_groups;
    size_t nrule_groups;
    const char *const *files;
    size_t nfiles;
    int exclude_alerts;
} rules_filter;

/* Appends {"groups":[...]} to out.  0, or KILN_ENOMEM (do not send out). */
KILN_MUST_CHECK int rules_manager_rules_json(rules_manager *m, const rules_filter *f, buf *out);
/* Appends {"alerts":[...]} (the active alerts, pending and firing). */
KILN_MUST_CHECK int rules_manager_alerts_json(rules_manager *m, buf *out);
/* Appends {"activeAlertmanagers":[{"url":...}],"droppedAlertmanagers":[...]}. */
KILN_MUST_CHECK int rules_manager_alertmanagers_json(rules_manager *m, buf *out);

/* ---- promtool's rule unit tests ------------------------------------------ */

/*
 * `kiln test rules FILE...`: runs each test file in promtool's format
 * (rule_files, evaluation_interval, group_eval_order, tests[] with
 * input_series, alert_rule_test, promql_expr_test, external_labels,
 * external_url) against an empty storage of its own, and writes what
 * promtool writes ("Unit Testing:  FILE", "  SUCCESS" or "  FAILED:" and each
 * failure) to out and errout.  Returns the process exit code: 0 when every
 * test passed, 1 otherwise.
 */
int rules_test_main(int nfiles, char **files, FILE *out, FILE *errout);

#endif
