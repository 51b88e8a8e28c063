/*
 * test_manager.c - the rule manager (rules/manager.c) through rules.h over a
 * real storage in a temporary directory: rules_load's checks and its
 * every-error report; groups evaluated on their schedule by the manager's
 * threads; a reload that keeps the state of an unchanged group, adds and
 * removes groups (their metrics go with them); the API's views and the
 * /api/v1/rules filters.  Evaluations run at 1 s intervals: a test waits
 * for a few of them, never for a fixed time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "query/query.h"
#include "rules/rules.h"
#include "rules/rules_int.h"

#define KILN_TEST_MAIN
#include "testutil.h"

static storage *st;
static char dir[64];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/kiln-test-manager-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    storage_opts o = storage_opts_default();
    o.dir = dir;
    kiln_err err = {0};
    ck_assert_int_eq(storage_open(&o, &st, &err), 0);
}

static void teardown(void) {
    kiln_err err = {0};
    ck_assert_msg(storage_close(st, &err) == 0, "close: %s", err.msg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    metrics_shutdown();
}

/* Writes text to dir/name; the path in path. */
static void write_file(const char *name, const char *text, char *path, size_t n) {
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* A configuration whose rule_files is dir/<glob>, with `extra` appended. */
static config *load_config(const char *glob, const char *extra) {
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "global:\n  evaluation_interval: 1s\nrule_files: ['%s/%s']\n%s", dir, glob,
             extra);
    config *c = NULL;
    kiln_err err = {0};
    ck_assert_msg(config_load_string("kiln.yml", yaml, strlen(yaml), &c, &err) == 0, "%s", err.msg);
    return c;
}

static char *json_of(rules_manager *m, int which, const rules_filter *f) {
    buf b = BUF_INIT;
    int rc = which == 0   ? rules_manager_rules_json(m, f, &b)
             : which == 1 ? rules_manager_alerts_json(m, &b)
                          : rules_manager_alertmanagers_json(m, &b);
    ck_assert_int_eq(rc, 0);
    return buf_steal(&b);
}

/* The value of a series line of /metrics ("name{labels}"), -1 when absent. */
static double metric_of(const char *want) {
    buf b = BUF_INIT;
    ck_assert_int_eq(metrics_write_text(&b), 0);
    double v = -1;
    size_t n = strlen(want);
    for (const char *p = b.data; p && *p;) {
        const char *nl = strchr(p, '\n');
        if (strncmp(p, want, n) == 0 && p[n] == ' ')
            v = strtod(p + n + 1, NULL);
        p = nl ? nl + 1 : NULL;
    }
    buf_free(&b);
    return v;
}

/* Waits up to 15 s for the metric to reach at least min. */
static int wait_metric(const char *want, double min) {
    for (int i = 0; i < 300; i++) {
        if (metric_of(want) >= min)
            return 1;
        usleep(50000);
    }
    return 0;
}

static void put(const char *name, int64_t t, double v) {
    label ls[] = {{LABEL_NAME, name}, {"job", "j"}};
    appender *a = storage_appender(st);
    uint64_t ref = 0;
    kiln_err err = {0};
    ck_assert_int_eq(appender_append(a, &ref, ls, 2, t, v, &err), 0);
    ck_assert_int_eq(appender_commit(a, &err), 0);
}

/* ---- the schedule -------------------------------------------------------------------------- */

/* After an evaluation at ts that took longer than the interval, the slots it
 * passed are missed and the latest one is evaluated at once, as Prometheus'
 * ticker does. */
START_TEST(test_next_slot_counts_missed) {
    static const struct {
        int64_t ts, iv, now, next, missed;
    } cases[] = {
        {10000, 1000, 10500, 11000, 0}, /* in time: the next slot */
        {10000, 1000, 10999, 11000, 0},
        {10000, 1000, 11000, 11000, 0}, /* ended on the next slot: due now, nothing missed */
        {10000, 1000, 11700, 11000, 0},
        {10000, 1000, 12000, 12000, 1}, /* the slot at 11000 passed */
        {10000, 1000, 13500, 13000, 2},
        {10000, 60000, 250000, 250000, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t missed = -1;
        int64_t next = rules_next_slot(cases[i].ts, cases[i].iv, cases[i].now, &missed);
        ck_assert_msg(next == cases[i].next && missed == cases[i].missed, "case %zu: next %lld missed %lld",
                      i, (long long)next, (long long)missed);
    }
}
END_TEST

/* ---- rules_load ----------------------------------------------------------------------------- */

START_TEST(test_load_reports_every_error) {
    char path[256];
    write_file("bad.yml",
               "groups:\n"
               "  - name: g\n"
               "    rules:\n"
               "      - record: 'bad name'\n"
               "        expr: up\n"
               "      - alert: A\n"
               "        expr: sum(up\n"
               "      - alert: B\n"
               "        expr: up\n"
               "        annotations: {x: '{{ nosuchfunc }}'}\n",
               path, sizeof path);
    config *c = load_config("*.yml", "");
    rulefile_set *s = (rulefile_set *)1;
    kiln_err err = {0};
    ck_assert_int_eq(rules_load(c, &s, &err), KILN_EINVAL);
    ck_assert_ptr_null(s);
    /* one line each: the record name, the PromQL parser's error, the template engine's */
    ck_assert_msg(strstr(err.msg, "bad.yml:4:") && strstr(err.msg, "invalid recording rule name: bad name"),
                  "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "\n") && strstr(err.msg, "bad.yml:7:"), "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "function \"nosuchfunc\" not defined"), "%s", err.msg);
    config_free(c);

    /* no rule files: an empty set */
    c = load_config("none-*.yml", "");
    ck_assert_int_eq(rules_load(c, &s, &err), 0);
    ck_assert_uint_eq(s->ngroups, 0);
    rulefile_free(s);
    config_free(c);
}
END_TEST

/* ---- the manager ---------------------------------------------------------------------------- */

/* The group "keep", the same in both versions. */
#define KEEP_GROUP                                                                                           \
    "  - name: keep\n"                                                                                       \
    "    interval: 1s\n"                                                                                     \
    "    rules:\n"                                                                                           \
    "      - record: job:x:double\n"                                                                         \
    "        expr: x * 2\n"                                                                                  \
    "      - alert: XHigh\n"                                                                                 \
    "        expr: x > 1\n"                                                                                  \
    "        for: 1h\n"                                                                                      \
    "        labels: {severity: page}\n"                                                                     \
    "        annotations: {summary: 'x is {{ $value }}'}\n"

static const char *const RULES_V1 = "groups:\n" KEEP_GROUP "  - name: gone\n"
                                    "    interval: 1s\n"
                                    "    rules:\n"
                                    "      - record: job:x:triple\n"
                                    "        expr: x * 3\n";

static const char *const RULES_V2 = "groups:\n" KEEP_GROUP "  - name: new\n"
                                    "    interval: 1s\n"
                                    "    rules:\n"
                                    "      - record: job:x:half\n"
                                    "        expr: x / 2\n";

/* The activeAt of the first alert in the JSON (a copy), or "" when none. */
static void active_at(const char *json, char *out, size_t n) {
    const char *p = strstr(json, "\"activeAt\":\"");
    out[0] = 0;
    if (p) {
        p += 12;
        const char *e = strchr(p, '"');
        snprintf(out, n, "%.*s", (int)(e - p), p);
    }
}

START_TEST(test_evaluate_reload_and_views) {
    char path[256], sname[512];
    write_file("rules.yml", RULES_V1, path, sizeof path);
    /* x for the next 9 minutes, so every evaluation finds it (the storage
     * refuses samples more than 10 minutes ahead) */
    int64_t now = time_now_ms();
    for (int64_t t = now - 10000; t < now + 540 * 1000; t += 10000)
        put("x", t, 5);
    config *c = load_config("rules.yml", "");
    rulefile_set *s = NULL;
    kiln_err err = {0};
    ck_assert_msg(rules_load(c, &s, &err) == 0, "%s", err.msg);

    rules_options o = rules_options_default();
    o.eval_threads = 2;
    rules_manager *m = NULL;
    ck_assert_int_eq(rules_manager_new(st, &o, &m, &err), 0);
    /* before any apply: the empty views */
    char *j = json_of(m, 0, NULL);
    ck_assert_str_eq(j, "{\"groups\":[]}");
    free(j);
    ck_assert_int_eq(rules_manager_apply(m, c, s, &err), 0);
    ck_assert_int_eq(rules_manager_run(m), 0);

    snprintf(sname, sizeof sname, "kiln_rule_group_iterations_total{rule_group=\"%s;keep\"}", path);
    ck_assert_msg(wait_metric(sname, 2), "the group was not evaluated twice");
    snprintf(sname, sizeof sname, "kiln_rule_evaluations_total{rule_group=\"%s;keep\"}", path);
    ck_assert_double_ge(metric_of(sname), 4); /* two rules, at least twice */
    snprintf(sname, sizeof sname, "kiln_rule_evaluation_failures_total{rule_group=\"%s;keep\"}", path);
    ck_assert_double_eq(metric_of(sname), 0);
    snprintf(sname, sizeof sname, "kiln_rule_group_interval_seconds{rule_group=\"%s;gone\"}", path);
    ck_assert_double_eq(metric_of(sname), 1);
    snprintf(sname, sizeof sname, "kiln_rule_group_rules{rule_group=\"%s;keep\"}", path);
    ck_assert_double_eq(metric_of(sname), 2);

    /* the recording rule's output is in the storage */
    query_engine e;
    query_engine_init(&e, NULL);
    query_result r;
    ck_assert_int_eq(query_instant(&e, st, "job:x:double", time_now_ms(), NULL, &r, &err), 0);
    ck_assert_uint_eq(r.nseries, 1);
    ck_assert_double_eq(r.series[0].pts[0].v, 10);
    query_result_free(&r);

    /* the alert is pending (for: 1h) */
    char *alerts = json_of(m, 1, NULL);
    ck_assert_msg(
        strstr(alerts, "\"labels\":{\"alertname\":\"XHigh\",\"job\":\"j\",\"severity\":\"page\"}") &&
            strstr(alerts, "\"annotations\":{\"summary\":\"x is 5\"}") &&
            strstr(alerts, "\"state\":\"pending\"") && strstr(alerts, "\"value\":\"5e+00\""),
        "%s", alerts);
    char before[64], after[64];
    active_at(alerts, before, sizeof before);
    ck_assert_str_ne(before, "");
    free(alerts);

    /* the filters */
    const char *const keep[] = {"keep"}, *const xhigh[] = {"XHigh"}, *const nofile[] = {"/nonexistent"};
    rules_filter f = {.rule_groups = keep, .nrule_groups = 1};
    j = json_of(m, 0, &f);
    ck_assert_msg(strstr(j, "\"name\":\"keep\"") && !strstr(j, "\"name\":\"gone\""), "%s", j);
    free(j);
    f = (rules_filter){.type = RULEFILE_RECORD};
    j = json_of(m, 0, &f);
    ck_assert_msg(strstr(j, "job:x:double") && strstr(j, "job:x:triple") && !strstr(j, "XHigh"), "%s", j);
    free(j);
    f = (rules_filter){.rule_names = xhigh, .nrule_names = 1};
    j = json_of(m, 0, &f);
    /* the group "gone" has no rule left: left out */
    ck_assert_msg(strstr(j, "XHigh") && !strstr(j, "job:x:double") && !strstr(j, "\"gone\""), "%s", j);
    free(j);
    f = (rules_filter){.files = nofile, .nfiles = 1};
    j = json_of(m, 0, &f);
    ck_assert_str_eq(j, "{\"groups\":[]}");
    free(j);
    j = json_of(m, 2, NULL);
    ck_assert_str_eq(j, "{\"activeAlertmanagers\":[],\"droppedAlertmanagers\":[]}");
    free(j);

    /* a reload: "keep" unchanged (its alert keeps its activeAt), "gone" removed, "new" added */
    write_file("rules.yml", RULES_V2, path, sizeof path);
    config *c2 = load_config(
        "rules.yml", "alerting:\n  alertmanagers:\n    - static_configs: [{targets: ['127.0.0.1:1']}]\n");
    ck_assert_msg(rules_load(c2, &s, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(rules_manager_apply(m, c2, s, &err), 0);
    alerts = json_of(m, 1, NULL);
    active_at(alerts, after, sizeof after);
    ck_assert_str_eq(after, before);
    free(alerts);
    snprintf(sname, sizeof sname, "kiln_rule_group_interval_seconds{rule_group=\"%s;gone\"}", path);
    ck_assert_double_eq(metric_of(sname), -1); /* its metrics went with it */
    snprintf(sname, sizeof sname, "kiln_rule_group_iterations_total{rule_group=\"%s;new\"}", path);
    ck_assert_msg(wait_metric(sname, 1), "the new group was not evaluated");
    j = json_of(m, 0, NULL);
    ck_assert_msg(strstr(j, "\"name\":\"new\"") && !strstr(j, "\"name\":\"gone\""), "%s", j);
    free(j);
    j = json_of(m, 2, NULL);
    ck_assert_str_eq(j, "{\"activeAlertmanagers\":[{\"url\":\"http://127.0.0.1:1/api/v2/alerts\"}],"
                        "\"droppedAlertmanagers\":[]}");
    free(j);

    rules_manager_free(m);
    config_free(c2);
    config_free(c);
}
END_TEST

/* An alerting section the notifier refuses (relabel steps without a relabel
 * function) leaves everything as it was. */
START_TEST(test_apply_error_changes_nothing) {
    char path[256];
    write_file("rules.yml", RULES_V1, path, sizeof path);
    config *c = load_config("rules.yml", "");
    config *bad =
        load_config("rules.yml", "alerting:\n  alert_relabel_configs: [{action: labeldrop, regex: x}]\n");
    rulefile_set *s = NULL, *s2 = NULL;
    kiln_err err = {0};
    ck_assert_int_eq(rules_load(c, &s, &err), 0);
    ck_assert_int_eq(rules_load(bad, &s2, &err), 0);
    rules_manager *m = NULL;
    ck_assert_int_eq(rules_manager_new(st, NULL, &m, &err), 0);
    ck_assert_int_eq(rules_manager_apply(m, c, s, &err), 0);
    ck_assert_int_eq(rules_manager_apply(m, bad, s2, &err), KILN_EINVAL);
    char *j = json_of(m, 0, NULL);
    ck_assert_msg(strstr(j, "\"name\":\"gone\""), "%s", j);
    free(j);
    rules_manager_free(m); /* never run: nothing to stop */
    config_free(bad);
    config_free(c);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("manager");
    TCase *tc = tcase_create("manager");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_next_slot_counts_missed);
    tcase_add_test(tc, test_load_reports_every_error);
    tcase_add_test(tc, test_evaluate_reload_and_views);
    tcase_add_test(tc, test_apply_error_changes_nothing);
    suite_add_tcase(s, tc);
    return s;
}
