/*
 * test_rules.c - rule groups (rules/group.c, alert.c, rules_json.c) over a
 * real storage in a temporary directory: recording rules' output, order,
 * scalars, stale markers, limit and duplicate errors; alerts pending to
 * firing, keep_firing_for, resolved alerts kept 15 minutes, ALERTS and
 * ALERTS_FOR_STATE, templates, sending through a notifier's queue, the
 * restore of the `for` state after a restart; reload's state copy; the
 * schedule (offsets checked against Prometheus 2.42's); the JSON.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "query/query.h"
#include "rules/group.h"
#include "rules/template.h"

#define KILN_TEST_MAIN
#include "testutil.h"

#define MIN (60 * 1000)

static storage *st;
static char dir[64];
static rules_env env;
static config_global global;
static rulefile_set *sets[4];
static int nsets;

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/kiln-test-rules-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    storage_opts o = storage_opts_default();
    o.dir = dir;
    kiln_err err = {0};
    ck_assert_int_eq(storage_open(&o, &st, &err), 0);
    memset(&env, 0, sizeof env);
    env.st = st;
    query_engine_init(&env.engine, NULL);
    env.external_url = "http://kiln.example:9090";
    env.outage_tolerance_ms = 60 * MIN;
    env.for_grace_period_ms = 10 * MIN;
    env.resend_delay_ms = MIN;
    memset(&global, 0, sizeof global);
    global.evaluation_interval_ms = MIN;
    nsets = 0;
}

static void teardown(void) {
    for (int i = 0; i < nsets; i++)
        rulefile_free(sets[i]);
    kiln_err err = {0};
    ck_assert_msg(storage_close(st, &err) == 0, "close: %s", err.msg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static int check_expr(const char *expr, kiln_err *err) {
    return query_parse_check(expr, err);
}

/* The first group of a rule file (the set is freed at teardown). */
static rule_group *group(const char *yaml) {
    rulefile_opts o = {.check_expr = check_expr, .check_template = tmpl_check};
    kiln_err err = {0};
    rulefile_set *s = NULL;
    ck_assert_msg(rulefile_load_string("rules.yml", yaml, strlen(yaml), &o, &s, &err) == 0, "load: %s",
                  err.msg);
    ck_assert_int_lt(nsets, 4);
    sets[nsets++] = s;
    rule_group *g = NULL;
    ck_assert_msg(rule_group_new(&s->groups[0], &global, &env, &g, &err) == 0, "new: %s", err.msg);
    return g;
}

static void eval(rule_group *g, int64_t ts) {
    ck_assert_int_eq(rule_group_eval(g, ts), 0);
}

/* Appends name{k="v"} = val at t. */
static void put(const char *name, const char *k, const char *v, int64_t t, double val) {
    label ls[] = {{LABEL_NAME, name}, {k, v}};
    kiln_err err = {0};
    appender *a = storage_appender(st);
    uint64_t ref = 0;
    ck_assert_msg(appender_append(a, &ref, ls, 2, t, val, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(appender_commit(a, &err), 0);
}

/* The vector of expr at t as text: one "{labels} value" a line, sorted. */
static char out[4096];
static const char *q(const char *expr, int64_t t) {
    query_result r;
    kiln_err err = {0};
    ck_assert_msg(query_instant(&env.engine, st, expr, t, NULL, &r, &err) == 0, "%s: %s", expr, err.msg);
    ck_assert_int_eq(r.type, QUERY_VECTOR);
    char lines[16][256];
    size_t n = r.nseries < 16 ? r.nseries : 16;
    for (size_t i = 0; i < n; i++) {
        buf b = BUF_INIT;
        ck_assert_int_eq(labels_format(&b, r.series[i].ls, r.series[i].nls), 0);
        char v[FMT_DOUBLE_MAX];
        fmt_double_g(r.series[i].pts[0].v, v);
        snprintf(lines[i], sizeof lines[i], "%.190s %.60s", b.data ? b.data : "{}", v);
        buf_free(&b);
    }
    qsort(lines, n, sizeof lines[0], (int (*)(const void *, const void *))strcmp);
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        strcat(out, lines[i]);
        strcat(out, "\n");
    }
    query_result_free(&r);
    return out;
}

/* The raw samples of the series matching sel in [mint, maxt]: "t=v" each,
 * "stale" for a stale marker; series separated by "|". */
static const char *raw(const char *sel, int64_t mint, int64_t maxt) {
    query_selector s;
    kiln_err err = {0};
    ck_assert_msg(query_selector_parse(sel, &s, &err) == 0, "%s", err.msg);
    querier *qr;
    ck_assert_int_eq(storage_querier(st, mint, maxt, &qr, &err), 0);
    series_set set = {0};
    select_hints h = {.mint = mint, .maxt = maxt};
    ck_assert_int_eq(querier_select(qr, s.ms, s.nms, &h, &set, &err), 0);
    out[0] = 0;
    size_t len = 0;
    for (size_t i = 0; i < set.n; i++) {
        if (i)
            len += (size_t)snprintf(out + len, sizeof out - len, "|");
        for (size_t k = 0; k < set.v[i].n; k++) {
            sample p = set.v[i].s[k];
            char v[FMT_DOUBLE_MAX];
            if (value_is_stale(p.v))
                strcpy(v, "stale");
            else
                fmt_double_g(p.v, v);
            len +=
                (size_t)snprintf(out + len, sizeof out - len, "%s%lld=%s", k ? " " : "", (long long)p.t, v);
        }
    }
    series_set_free(&set);
    querier_close(qr);
    query_selector_free(&s);
    return out;
}

static const char *json(rule_group *g) {
    buf b = BUF_INIT;
    int empty;
    ck_assert_int_eq(rule_group_json(g, NULL, &b, &empty), 0);
    ck_assert_int_eq(empty, 0);
    snprintf(out, sizeof out, "%s", b.data);
    buf_free(&b);
    return out;
}

/* The group's alerts as text, "name state active_at {labels} {annotations}" a line. */
static int alert_line(void *data, const rule_alert_view *a) {
    buf *b = data;
    static const char *states[] = {"inactive", "pending", "firing"};
    buf_printf(b, "%s %s %lld ", a->rule_name, states[a->state], (long long)a->active_at_ms);
    labels_format(b, a->labels, a->nlabels);
    buf_putc(b, ' ');
    labels_format(b, a->annotations, a->nannotations);
    buf_putc(b, '\n');
    return 0;
}

static const char *alerts(rule_group *g) {
    buf b = BUF_INIT;
    ck_assert_int_eq(rule_group_foreach_alert(g, alert_line, &b), 0);
    snprintf(out, sizeof out, "%s", b.data ? b.data : "");
    buf_free(&b);
    return out;
}

/* ---- recording rules ---------------------------------------------------- */

START_TEST(test_recording) {
    put("m", "job", "a", 0, 1);
    put("m", "job", "b", 0, 2);
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    labels: {team: core, env: prod}\n"
                          "    rules:\n"
                          "      - record: job:m:x2\n"
                          "        expr: m * 2\n"
                          "        labels: {team: rec, env: ''}\n"
                          "      - record: job:m:x2_plus1\n"
                          "        expr: job:m:x2 + 1\n"
                          "      - record: three\n"
                          "        expr: '3'\n");
    eval(g, MIN);
    ck_assert_str_eq(q("job:m:x2", MIN), "{__name__=\"job:m:x2\", job=\"a\", team=\"rec\"} 2\n"
                                         "{__name__=\"job:m:x2\", job=\"b\", team=\"rec\"} 4\n");
    /* the second rule read the first one's output of the same evaluation */
    ck_assert_str_eq(q("job:m:x2_plus1", MIN),
                     "{__name__=\"job:m:x2_plus1\", env=\"prod\", job=\"a\", team=\"core\"} 3\n"
                     "{__name__=\"job:m:x2_plus1\", env=\"prod\", job=\"b\", team=\"core\"} 5\n");
    ck_assert_str_eq(q("three", MIN), "{__name__=\"three\", env=\"prod\", team=\"core\"} 3\n");
    ck_assert_str_eq(raw("three", 0, 10 * MIN), "60000=3");
    eval(g, 2 * MIN);
    ck_assert_str_eq(raw("job:m:x2{job=\"a\"}", 0, 10 * MIN), "60000=2 120000=2");
    rule_group_free(g);
}
END_TEST

/* A native histogram result is recorded as a native histogram; a series
 * gone from the result gets a histogram stale marker. */
START_TEST(test_recording_histograms) {
    hist_span sp = {0, 2};
    double c[2] = {1, 2};
    histogram h = {.schema = 0,
                   .is_int = 1,
                   .count = 3,
                   .sum = 4,
                   .pos_spans = &sp,
                   .npos_spans = 1,
                   .pos = c,
                   .npos = 2};
    kiln_err err = {0};
    for (int k = 0; k < 2; k++) {
        label ls[] = {{LABEL_NAME, "lat"}, {"job", k ? "b" : "a"}};
        appender *a = storage_appender(st);
        uint64_t ref = 0;
        ck_assert_msg(appender_append_histogram(a, &ref, ls, 2, 0, &h, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(appender_commit(a, &err), 0);
    }
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    rules:\n"
                          "      - record: lat:sum\n"
                          "        expr: sum(lat)\n"
                          "      - record: lat:count\n"
                          "        expr: histogram_count(lat:sum)\n");
    eval(g, MIN);
    ck_assert_str_eq(q("lat:count", MIN), "{__name__=\"lat:count\"} 6\n");
    querier *qr;
    ck_assert_int_eq(storage_querier(st, 0, 10 * MIN, &qr, &err), 0);
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_EQ, LABEL_NAME, "lat:sum", &err), 0);
    series_set set = {0};
    select_hints hints = {.mint = 0, .maxt = 10 * MIN};
    ck_assert_int_eq(querier_select(qr, &m, 1, &hints, &set, &err), 0);
    ck_assert_uint_eq(set.n, 1);
    ck_assert_uint_eq(set.v[0].n, 0); /* no float sample */
    ck_assert_uint_eq(set.v[0].nh, 1);
    ck_assert_int_eq(set.v[0].hs[0].t, MIN);
    ck_assert(set.v[0].hs[0].h->count == 6 && set.v[0].hs[0].h->sum == 8);
    ck_assert_uint_eq(set.v[0].hs[0].h->npos, 2);
    ck_assert(set.v[0].hs[0].h->pos[0] == 2 && set.v[0].hs[0].h->pos[1] == 4);
    series_set_free(&set);
    matcher_free(&m);
    querier_close(qr);
    rule_group_free(g);
}
END_TEST

START_TEST(test_query_offset) {
    put("m", "job", "a", 0, 1);
    put("m", "job", "a", MIN, 5);
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    query_offset: 30s\n"
                          "    rules:\n"
                          "      - record: r\n"
                          "        expr: m\n");
    eval(g, MIN);
    /* queried at 30s (m was 1) and written at 30s */
    ck_assert_str_eq(raw("r", 0, 10 * MIN), "30000=1");
    global.rule_query_offset_ms = 10000;
    rule_group *g2 = group("groups:\n"
                           "  - name: g\n"
                           "    rules:\n"
                           "      - record: r2\n"
                           "        expr: m\n");
    eval(g2, 2 * MIN);
    ck_assert_str_eq(raw("r2", 0, 10 * MIN), "110000=5");
    rule_group_free(g);
    rule_group_free(g2);
}
END_TEST

START_TEST(test_stale_markers) {
    put("m", "job", "a", 0, 10);
    put("m", "job", "b", 0, 10);
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    rules:\n"
                          "      - record: big\n"
                          "        expr: m > 5\n");
    eval(g, MIN);
    put("m", "job", "b", MIN + 1, 0);
    eval(g, 2 * MIN);
    ck_assert_str_eq(raw("big{job=\"b\"}", 0, 10 * MIN), "60000=10 120000=stale");
    ck_assert_str_eq(raw("big{job=\"a\"}", 0, 10 * MIN), "60000=10 120000=10");
    ck_assert_str_eq(q("big", 2 * MIN), "{__name__=\"big\", job=\"a\"} 10\n");
    /* written once: no second marker */
    eval(g, 3 * MIN);
    ck_assert_str_eq(raw("big{job=\"b\"}", 0, 10 * MIN), "60000=10 120000=stale");
    /* and back */
    put("m", "job", "b", 3 * MIN + 1, 7);
    eval(g, 4 * MIN);
    ck_assert_str_eq(raw("big{job=\"b\"}", 0, 10 * MIN), "60000=10 120000=stale 240000=7");
    rule_group_free(g);
}
END_TEST

START_TEST(test_errors_keep_series) {
    put("m", "job", "a", 0, 1);
    put("m", "job", "b", 0, 2);
    rule_group *g =
        group("groups:\n"
              "  - name: g\n"
              "    limit: 1\n"
              "    rules:\n"
              "      - record: lim\n"
              "        expr: m\n"
              "      - record: dup\n"
              "        expr: m{job=\"a\"} or label_replace(m{job=\"b\"}, \"x\", \"1\", \"\", \"\")\n"
              "        labels: {job: same, x: ''}\n"
              "      - record: bad\n"
              "        expr: m * on() group_left m\n"
              "      - record: ok\n"
              "        expr: m{job=\"a\"}\n");
    eval(g, MIN);
    ck_assert_str_eq(raw("{__name__=~\"lim|dup\"}", 0, 10 * MIN), "");
    ck_assert_str_eq(raw("ok", 0, 10 * MIN), "60000=1");
    rule *r = &g->rules[0];
    ck_assert_int_eq(r->health, RULE_HEALTH_ERR);
    ck_assert_str_eq(r->last_error, "exceeded limit of 1 with 2 series");
    ck_assert_int_eq(g->rules[1].health, RULE_HEALTH_ERR);
    ck_assert_str_eq(g->rules[1].last_error,
                     "vector contains metrics with the same labelset after applying rule labels");
    ck_assert_int_eq(g->rules[2].health, RULE_HEALTH_ERR);
    ck_assert_int_eq(g->rules[3].health, RULE_HEALTH_OK);
    ck_assert_ptr_null(g->rules[3].last_error);
    rule_group_stats s;
    rule_group_stats_get(g, &s);
    ck_assert_uint_eq(s.evaluations, 4);
    ck_assert_uint_eq(s.failures, 3);
    ck_assert_uint_eq(s.last_samples, 1);
    rule_group_free(g);
}
END_TEST

START_TEST(test_failed_eval_keeps_series) {
    put("m", "job", "a", 0, 1);
    put("m", "job", "b", 0, 2);
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    rules:\n"
                          "      - record: r\n"
                          "        expr: label_replace(m > 0, \"job\", \"same\", \"job\", \"b\")\n");
    eval(g, MIN);
    ck_assert_str_eq(raw("r{job=\"same\"}", 0, 10 * MIN), "60000=2");
    put("m", "job", "same", 2 * MIN - 1, 5);
    eval(g, 2 * MIN);
    ck_assert_int_eq(g->rules[0].health, RULE_HEALTH_ERR);
    /* the failed evaluation writes no stale marker; the next good one does */
    ck_assert_str_eq(raw("r{job=\"same\"}", 0, 10 * MIN), "60000=2");
    put("m", "job", "same", 3 * MIN - 1, 0);
    put("m", "job", "b", 3 * MIN - 1, 0);
    eval(g, 3 * MIN);
    ck_assert_int_eq(g->rules[0].health, RULE_HEALTH_OK);
    ck_assert_str_eq(raw("r{job=\"same\"}", 0, 10 * MIN), "60000=2 180000=stale");
    ck_assert_str_eq(raw("r{job=\"a\"}", 0, 10 * MIN), "60000=1 180000=1");
    rule_group_free(g);
}
END_TEST

START_TEST(test_out_of_order_sample) {
    put("m", "job", "a", 0, 1);
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    rules:\n"
                          "      - record: r\n"
                          "        expr: m\n");
    eval(g, 2 * MIN);
    eval(g, MIN);
    ck_assert_int_eq(g->rules[0].health, RULE_HEALTH_ERR);
    ck_assert_str_eq(g->rules[0].last_error, "out of order sample");
    eval(g, 3 * MIN);
    ck_assert_int_eq(g->rules[0].health, RULE_HEALTH_OK);
    ck_assert_str_eq(raw("r", 0, 10 * MIN), "120000=1 180000=1");
    rule_group_free(g);
}
END_TEST

START_TEST(test_large_output) {
    /* more series than the scratch a group keeps between evaluations */
    enum { N = 66000 };
    appender *a = storage_appender(st);
    kiln_err err = {0};
    for (int i = 0; i < N; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        label ls[] = {{LABEL_NAME, "m"}, {"i", v}};
        uint64_t ref = 0;
        ck_assert_int_eq(appender_append(a, &ref, ls, 2, 0, i, &err), 0);
    }
    ck_assert_int_eq(appender_commit(a, &err), 0);
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    rules:\n"
                          "      - record: r\n"
                          "        expr: m\n");
    eval(g, MIN);
    ck_assert_uint_eq(g->caplab, 0);
    ck_assert_uint_eq(g->rules[0].nprev, N);
    eval(g, 2 * MIN);
    ck_assert_str_eq(q("count(r)", 2 * MIN), "{} 66000\n");
    ck_assert_str_eq(raw("r{i=\"65999\"}", 0, 10 * MIN), "60000=65999 120000=65999");
    rule_group_free(g);
}
END_TEST

/* ---- alerting rules ------------------------------------------------------ */

START_TEST(test_alert_pending_firing) {
    put("m", "job", "a", 0, 3);
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    labels: {team: core}\n"
                          "    rules:\n"
                          "      - alert: High\n"
                          "        expr: m > 1\n"
                          "        for: 2m\n"
                          "        labels:\n"
                          "          severity: '{{ if gt $value 2.0 }}page{{ end }}'\n"
                          "          value: '{{ $value }}'\n"
                          "        annotations:\n"
                          "          summary: '{{ $labels.job }} is {{ $value }} ({{ $labels.__name__ }})'\n"
                          "          where: '{{ $externalURL }}'\n");
    eval(g, MIN);
    ck_assert_str_eq(alerts(g), "High pending 60000 {alertname=\"High\", job=\"a\", severity=\"page\", "
                                "team=\"core\", value=\"3\"} {summary=\"a is 3 (m)\", "
                                "where=\"http://kiln.example:9090\"}\n");
    ck_assert_str_eq(raw("ALERTS", 0, 10 * MIN), "60000=1");
    ck_assert_str_eq(q("ALERTS", MIN), "{__name__=\"ALERTS\", alertname=\"High\", alertstate=\"pending\", "
                                       "job=\"a\", severity=\"page\", team=\"core\", value=\"3\"} 1\n");
    ck_assert_str_eq(raw("ALERTS_FOR_STATE", 0, 10 * MIN), "60000=60");
    eval(g, 2 * MIN);
    ck_assert_str_eq(alerts(g), "High pending 60000 {alertname=\"High\", job=\"a\", severity=\"page\", "
                                "team=\"core\", value=\"3\"} {summary=\"a is 3 (m)\", "
                                "where=\"http://kiln.example:9090\"}\n");
    eval(g, 3 * MIN);
    ck_assert_int_eq(g->rules[0].al->alerts[0]->state, RULE_ALERT_FIRING);
    ck_assert_int_eq(g->rules[0].al->alerts[0]->fired_at, 3 * MIN);
    /* the pending series ends with a stale marker, the firing one begins */
    ck_assert_str_eq(raw("ALERTS{alertstate=\"pending\"}", 0, 10 * MIN), "60000=1 120000=1 180000=stale");
    ck_assert_str_eq(raw("ALERTS{alertstate=\"firing\"}", 0, 10 * MIN), "180000=1");
    ck_assert_str_eq(raw("ALERTS_FOR_STATE", 0, 10 * MIN), "60000=60 120000=60 180000=60");
    /* the value changes: a label templated on it makes another alert, and
     * an empty expansion removes the label */
    put("m", "job", "a", 3 * MIN + 1, 1.5);
    eval(g, 4 * MIN);
    ck_assert_str_eq(alerts(g),
                     "High inactive 60000 {alertname=\"High\", job=\"a\", severity=\"page\", "
                     "team=\"core\", value=\"3\"} {summary=\"a is 3 (m)\", "
                     "where=\"http://kiln.example:9090\"}\n"
                     "High pending 240000 {alertname=\"High\", job=\"a\", team=\"core\", "
                     "value=\"1.5\"} {summary=\"a is 1.5 (m)\", where=\"http://kiln.example:9090\"}\n");
    /* as Prometheus, ALERTS starts from the rule's labels as written */
    ck_assert_str_eq(q("ALERTS", 4 * MIN),
                     "{__name__=\"ALERTS\", alertname=\"High\", alertstate=\"pending\", job=\"a\", "
                     "severity=\"{{ if gt $value 2.0 }}page{{ end }}\", team=\"core\", value=\"1.5\"} 1\n");
    ck_assert_str_eq(raw("ALERTS{alertstate=\"firing\"}", 0, 10 * MIN), "180000=1 240000=stale");
    rule_group_free(g);
}
END_TEST

START_TEST(test_alert_for_zero_and_resolve) {
    put("m", "job", "a", 0, 3);
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    rules:\n"
                          "      - alert: Now\n"
                          "        expr: m > 1\n");
    eval(g, MIN);
    ck_assert_int_eq(g->rules[0].al->alerts[0]->state, RULE_ALERT_FIRING);
    put("m", "job", "a", MIN + 1, 0);
    eval(g, 2 * MIN);
    rule_alert *a = g->rules[0].al->alerts[0];
    ck_assert_int_eq(a->state, RULE_ALERT_INACTIVE);
    ck_assert_int_eq(a->resolved_at, 2 * MIN);
    /* kept 15 minutes after it resolved, then dropped */
    eval(g, 17 * MIN);
    ck_assert_uint_eq(g->rules[0].al->nalerts, 1);
    eval(g, 17 * MIN + 1);
    ck_assert_uint_eq(g->rules[0].al->nalerts, 0);
    ck_assert_str_eq(raw("ALERTS", 0, 20 * MIN), "60000=1 120000=stale");
    rule_group_free(g);
}
END_TEST

START_TEST(test_alert_pending_gone) {
    put("m", "job", "a", 0, 3);
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    rules:\n"
                          "      - alert: Slow\n"
                          "        expr: m > 1\n"
                          "        for: 5m\n");
    eval(g, MIN);
    put("m", "job", "a", MIN + 1, 0);
    eval(g, 2 * MIN);
    ck_assert_uint_eq(g->rules[0].al->nalerts, 0);
    ck_assert_str_eq(alerts(g), "");
    rule_group_free(g);
}
END_TEST

START_TEST(test_keep_firing_for) {
    put("m", "job", "a", 0, 3);
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    rules:\n"
                          "      - alert: Sticky\n"
                          "        expr: m > 1\n"
                          "        keep_firing_for: 3m\n");
    eval(g, MIN);
    put("m", "job", "a", MIN + 1, 0);
    eval(g, 2 * MIN);
    rule_alert *a = g->rules[0].al->alerts[0];
    ck_assert_int_eq(a->state, RULE_ALERT_FIRING);
    ck_assert_int_eq(a->keep_firing_since, 2 * MIN);
    eval(g, 4 * MIN);
    ck_assert_int_eq(a->state, RULE_ALERT_FIRING);
    eval(g, 5 * MIN);
    ck_assert_int_eq(a->state, RULE_ALERT_INACTIVE);
    ck_assert_int_eq(a->resolved_at, 5 * MIN);
    ck_assert_str_eq(raw("ALERTS", 0, 10 * MIN), "60000=1 120000=1 240000=1 300000=stale");
    /* back in the result while kept firing: keep_firing_since is cleared */
    put("m", "job", "a", 5 * MIN + 1, 3);
    eval(g, 6 * MIN);
    a = g->rules[0].al->alerts[0];
    ck_assert_int_eq(a->state, RULE_ALERT_FIRING);
    ck_assert_int_eq(a->active_at, 6 * MIN);
    put("m", "job", "a", 6 * MIN + 1, 0);
    eval(g, 7 * MIN);
    put("m", "job", "a", 7 * MIN + 1, 3);
    eval(g, 8 * MIN);
    ck_assert_int_eq(a->keep_firing_since, NOTIFIER_TIME_ZERO);
    ck_assert_int_eq(a->active_at, 6 * MIN);
    rule_group_free(g);
}
END_TEST

/* Counts the alerts and checks they come sorted by labels. */
static int count_sorted(void *data, const rule_alert_view *a) {
    static char prev[64];
    int *n = data;
    const char *job = labels_get(a->labels, a->nlabels, "job");
    if (*n)
        ck_assert_str_lt(prev, job);
    snprintf(prev, sizeof prev, "%s", job);
    (*n)++;
    return 0;
}

START_TEST(test_many_alerts) {
    for (int i = 300; i-- > 0;) {
        char job[16];
        snprintf(job, sizeof job, "j%03d", i);
        put("m", "job", job, 0, 1);
    }
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    rules:\n"
                          "      - alert: Many\n"
                          "        expr: m > 0\n"
                          "        for: 1m\n");
    eval(g, MIN);
    int n = 0;
    ck_assert_int_eq(rule_group_foreach_alert(g, count_sorted, &n), 0);
    ck_assert_int_eq(n, 300);
    for (int i = 0; i < 300; i += 2) {
        char job[16];
        snprintf(job, sizeof job, "j%03d", i);
        put("m", "job", job, MIN + 1, 0);
    }
    eval(g, 2 * MIN);
    n = 0;
    ck_assert_int_eq(rule_group_foreach_alert(g, count_sorted, &n), 0);
    ck_assert_int_eq(n, 150);
    ck_assert_int_eq(g->rules[0].al->alerts[0]->state, RULE_ALERT_FIRING);
    ck_assert_str_eq(labels_get(g->rules[0].al->alerts[0]->labels, g->rules[0].al->alerts[0]->nlabels, "job"),
                     "j001");
    /* the even ones back: new pending alerts among the firing ones */
    for (int i = 0; i < 300; i += 2) {
        char job[16];
        snprintf(job, sizeof job, "j%03d", i);
        put("m", "job", job, 2 * MIN + 1, 1);
    }
    eval(g, 3 * MIN);
    n = 0;
    ck_assert_int_eq(rule_group_foreach_alert(g, count_sorted, &n), 0);
    ck_assert_int_eq(n, 300);
    ck_assert_int_eq(g->rules[0].al->alerts[0]->state, RULE_ALERT_PENDING);
    ck_assert_int_eq(g->rules[0].al->alerts[1]->state, RULE_ALERT_FIRING);
    rule_group_free(g);
}
END_TEST

START_TEST(test_alert_errors) {
    put("m", "job", "a", 0, 3);
    put("m", "job", "b", 0, 3);
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    limit: 1\n"
                          "    rules:\n"
                          "      - alert: Many\n"
                          "        expr: m > 1\n"
                          "      - alert: Dup\n"
                          "        expr: m > 1\n"
                          "        labels: {job: x}\n"
                          "      - alert: One\n"
                          "        expr: m{job=\"a\"} > 1\n");
    eval(g, MIN);
    ck_assert_str_eq(g->rules[0].last_error, "exceeded limit of 1 with 2 alerts");
    ck_assert_uint_eq(g->rules[0].al->nalerts, 0);
    ck_assert_str_eq(g->rules[1].last_error,
                     "vector contains metrics with the same labelset after applying alert labels");
    ck_assert_int_eq(g->rules[2].health, RULE_HEALTH_OK);
    ck_assert_str_eq(alerts(g), "One firing 60000 {alertname=\"One\", job=\"a\"} {}\n");
    ck_assert_str_eq(q("ALERTS", MIN), "{__name__=\"ALERTS\", alertname=\"One\", alertstate=\"firing\", "
                                       "job=\"a\"} 1\n");
    rule_group_free(g);
}
END_TEST

START_TEST(test_template_query_and_external_labels) {
    put("m", "job", "a", 0, 3);
    put("up", "job", "a", 0, 1);
    label ext[] = {{"cluster", "eu-1"}};
    env.external_labels = ext;
    env.nexternal_labels = 1;
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    rules:\n"
                          "      - alert: Q\n"
                          "        expr: m > 1\n"
                          "        annotations:\n"
                          "          up: '{{ with query \"up\" }}{{ . | first | value }}{{ end }}'\n"
                          "          cluster: '{{ $externalLabels.cluster }}'\n"
                          "          bad: '{{ query \"rate(\" }}'\n");
    eval(g, MIN);
    rule_alert *a = g->rules[0].al->alerts[0];
    ck_assert_uint_eq(a->nannotations, 3);
    ck_assert_str_eq(a->annotations[0].name, "bad");
    ck_assert_ptr_nonnull(strstr(a->annotations[0].value, "<error expanding template:"));
    ck_assert_str_eq(a->annotations[1].value, "eu-1");
    ck_assert_str_eq(a->annotations[2].value, "1");
    /* external labels are the notifier's to add, not the alert's */
    ck_assert_ptr_null(labels_get(a->labels, a->nlabels, "cluster"));
    rule_group_free(g);
}
END_TEST

START_TEST(test_sending) {
    put("m", "job", "a", 0, 3);
    notifier *nf = NULL;
    kiln_err err = {0};
    ck_assert_int_eq(notifier_new(NULL, NULL, &nf, &err), 0);
    env.notify = nf;
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    interval: 30s\n"
                          "    rules:\n"
                          "      - alert: S\n"
                          "        expr: m > 1\n"
                          "        for: 1m\n");
    eval(g, MIN);
    ck_assert_uint_eq(notifier_queue_length(nf), 0); /* pending is not sent */
    eval(g, 2 * MIN);
    ck_assert_uint_eq(notifier_queue_length(nf), 1);
    rule_alert *a = g->rules[0].al->alerts[0];
    ck_assert_int_eq(a->last_sent, 2 * MIN);
    ck_assert_int_eq(a->valid_until, 2 * MIN + 4 * MIN); /* 4 x max(resend delay, interval) */
    /* again once the resend delay has passed, strictly */
    eval(g, 3 * MIN);
    ck_assert_uint_eq(notifier_queue_length(nf), 1);
    eval(g, 3 * MIN + 1);
    ck_assert_uint_eq(notifier_queue_length(nf), 2);
    /* resolved: at once, then each resend delay while kept */
    put("m", "job", "a", 3 * MIN + 2, 0);
    eval(g, 3 * MIN + 3);
    ck_assert_uint_eq(notifier_queue_length(nf), 3);
    eval(g, 4 * MIN);
    ck_assert_uint_eq(notifier_queue_length(nf), 3);
    eval(g, 5 * MIN);
    ck_assert_uint_eq(notifier_queue_length(nf), 4);
    ck_assert_str_eq(g->rules[0].al->generator_url,
                     "http://kiln.example:9090/graph?g0.expr=m+%3E+1&g0.tab=1");
    rule_group_free(g);
    notifier_free(nf);
}
END_TEST

/* Writes the ALERTS_FOR_STATE of a 10m alert active since 0, evaluated to 5m. */
static void before_restart(void) {
    put("m", "job", "a", 0, 3);
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    rules:\n"
                          "      - alert: Long\n"
                          "        expr: m > 1\n"
                          "        for: 10m\n");
    for (int i = 0; i <= 5; i++) {
        put("m", "job", "a", i * MIN, 3);
        eval(g, i * MIN);
    }
    ck_assert_str_eq(raw("ALERTS_FOR_STATE", 0, 10 * MIN), "0=0 60000=0 120000=0 180000=0 240000=0 300000=0");
    rule_group_free(g);
}

static rule_group *after_restart(void) {
    env.restore_state = 1;
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    rules:\n"
                          "      - alert: Long\n"
                          "        expr: m > 1\n"
                          "        for: 10m\n");
    put("m", "job", "a", 7 * MIN, 3);
    eval(g, 7 * MIN);
    /* the first evaluation writes no ALERTS: the restore comes after it */
    ck_assert_str_eq(raw("ALERTS_FOR_STATE", 6 * MIN, 10 * MIN), "");
    return g;
}

START_TEST(test_restore_shifted_by_downtime) {
    before_restart();
    env.for_grace_period_ms = MIN;
    rule_group *g = after_restart();
    /* 5m spent pending, 5m left >= the grace period: the active time moves
     * by the 2m of downtime */
    rule_alert *a = g->rules[0].al->alerts[0];
    ck_assert_int_eq(a->active_at, 2 * MIN);
    ck_assert_int_eq(a->state, RULE_ALERT_PENDING);
    put("m", "job", "a", 11 * MIN, 3);
    eval(g, 11 * MIN);
    ck_assert_int_eq(a->state, RULE_ALERT_PENDING);
    ck_assert_str_eq(raw("ALERTS_FOR_STATE", 6 * MIN, 20 * MIN), "660000=120");
    put("m", "job", "a", 12 * MIN, 3);
    eval(g, 12 * MIN);
    ck_assert_int_eq(a->state, RULE_ALERT_FIRING);
    rule_group_free(g);
}
END_TEST

START_TEST(test_restore_grace_period) {
    before_restart();
    rule_group *g = after_restart();
    /* 5m left < the 10m grace period: it fires a grace period from now */
    ck_assert_int_eq(g->rules[0].al->alerts[0]->active_at, 7 * MIN);
    rule_group_free(g);
}
END_TEST

START_TEST(test_restore_was_firing) {
    put("m", "job", "a", 0, 3);
    const char *yaml = "groups:\n"
                       "  - name: g\n"
                       "    rules:\n"
                       "      - alert: Long\n"
                       "        expr: m > 1\n"
                       "        for: 10m\n";
    rule_group *g0 = group(yaml);
    for (int i = 0; i <= 12; i++) {
        put("m", "job", "a", i * MIN, 3);
        eval(g0, i * MIN);
    }
    ck_assert_int_eq(g0->rules[0].al->alerts[0]->state, RULE_ALERT_FIRING);
    rule_group_free(g0);
    env.restore_state = 1;
    rule_group *g = group(yaml);
    put("m", "job", "a", 15 * MIN, 3);
    eval(g, 15 * MIN);
    /* it was firing when the server stopped: its active time stays */
    ck_assert_int_eq(g->rules[0].al->alerts[0]->active_at, 0);
    put("m", "job", "a", 16 * MIN, 3);
    eval(g, 16 * MIN);
    ck_assert_int_eq(g->rules[0].al->alerts[0]->state, RULE_ALERT_FIRING);
    rule_group_free(g);
}
END_TEST

START_TEST(test_restore_outage_tolerance) {
    before_restart();
    env.outage_tolerance_ms = MIN;
    rule_group *g = after_restart();
    /* the last ALERTS_FOR_STATE (5m) is older than 7m - 1m: nothing restored */
    ck_assert_int_eq(g->rules[0].al->alerts[0]->active_at, 7 * MIN);
    rule_group_free(g);
}
END_TEST

/* ---- reload -------------------------------------------------------------- */

START_TEST(test_copy_state) {
    put("m", "job", "a", 0, 3);
    rule_group *old = group("groups:\n"
                            "  - name: g\n"
                            "    rules:\n"
                            "      - alert: A\n"
                            "        expr: m > 1\n"
                            "        for: 5m\n"
                            "      - record: gone\n"
                            "        expr: m\n"
                            "      - record: kept\n"
                            "        expr: m\n");
    eval(old, MIN);
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    rules:\n"
                          "      - record: kept\n"
                          "        expr: m + 0\n"
                          "      - alert: A\n"
                          "        expr: m > 2\n"
                          "        for: 5m\n");
    rule_group_copy_state(g, old);
    rule_group_free(old);
    ck_assert_str_eq(alerts(g), "A pending 60000 {alertname=\"A\", job=\"a\"} {}\n");
    put("m", "job", "a", 2 * MIN, 3);
    eval(g, 2 * MIN);
    ck_assert_str_eq(alerts(g), "A pending 60000 {alertname=\"A\", job=\"a\"} {}\n");
    ck_assert_str_eq(raw("gone", 0, 10 * MIN), "60000=3 120000=stale");
    ck_assert_str_eq(raw("kept", 0, 10 * MIN), "60000=3 120000=3");
    /* a group removed: stale markers for everything it wrote */
    ck_assert_int_eq(rule_group_mark_stale(g, 3 * MIN), 0);
    ck_assert_str_eq(raw("kept", 0, 10 * MIN), "60000=3 120000=3 180000=stale");
    ck_assert_str_eq(raw("ALERTS", 0, 10 * MIN), "60000=1 120000=1 180000=stale");
    rule_group_free(g);
}
END_TEST

/* ---- readers during evaluations -------------------------------------------- */

static int reading; /* atomic */

static int count_alert(void *data, const rule_alert_view *a) {
    (void)a;
    (*(int *)data)++;
    return 0;
}

static void *reader(void *arg) {
    rule_group *g = arg;
    while (__atomic_load_n(&reading, __ATOMIC_ACQUIRE)) {
        buf b = BUF_INIT;
        int empty, n = 0;
        ck_assert_int_eq(rule_group_json(g, NULL, &b, &empty), 0);
        ck_assert_int_eq(rule_group_foreach_alert(g, count_alert, &n), 0);
        rule_group_stats s;
        rule_group_stats_get(g, &s);
        buf_free(&b);
    }
    return NULL;
}

START_TEST(test_readers_during_evaluation) {
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    rules:\n"
                          "      - record: r\n"
                          "        expr: m\n"
                          "      - alert: A\n"
                          "        expr: m > 1\n"
                          "        for: 1m\n"
                          "        annotations: {v: '{{ $value }}'}\n");
    __atomic_store_n(&reading, 1, __ATOMIC_RELEASE);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, reader, g), 0);
    for (int i = 0; i < 40; i++) {
        char job[16];
        snprintf(job, sizeof job, "j%d", i % 7);
        put("m", "job", job, i * 15000, i % 3);
        eval(g, i * 15000);
    }
    __atomic_store_n(&reading, 0, __ATOMIC_RELEASE);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    rule_group_free(g);
}
END_TEST

/* ---- schedule ------------------------------------------------------------ */

START_TEST(test_schedule) {
    rule_group *g = group("groups:\n"
                          "  - name: alpha\n"
                          "    interval: 10s\n"
                          "    rules:\n"
                          "      - record: r\n"
                          "        expr: '1'\n");
    int64_t off = rule_group_offset_ms(g);
    ck_assert_int_ge(off, 0);
    ck_assert_int_lt(off, 10000);
    for (int64_t now = 1700000000000; now < 1700000000000 + 25000; now += 777) {
        int64_t t = rule_group_next_eval_ms(g, now);
        ck_assert_int_ge(t, now);
        ck_assert_int_lt(t - now, 10000);
        ck_assert_int_eq((t - off) % 10000, 0);
    }
    ck_assert_int_eq(rule_group_next_eval_ms(g, 1700000000000 + off), 1700000000000 + off);
    rule_group_free(g);
}
END_TEST

/* The offsets Debian's Prometheus 2.42 gave these groups of
 * /tmp/rcore-prom/rules.yml (a recording rule `time()` in each: its samples'
 * values modulo the interval). */
START_TEST(test_schedule_prometheus) {
    static const struct {
        const char *name;
        int64_t interval_ms, offset_ms;
    } cases[] = {{"alpha", 10000, 6955}, {"beta", 7000, 3879}, {"gamma", 60000, 18693}};
    const char *yaml = "groups:\n"
                       "  - {name: alpha, interval: 10s, rules: [{record: t_alpha, expr: time()}]}\n"
                       "  - {name: beta, interval: 7s, rules: [{record: t_beta, expr: time()}]}\n"
                       "  - {name: gamma, interval: 1m, rules: [{record: t_gamma, expr: time()}]}\n";
    kiln_err err = {0};
    rulefile_set *s = NULL;
    ck_assert_int_eq(rulefile_load_string("/tmp/rcore-prom/rules.yml", yaml, strlen(yaml), NULL, &s, &err),
                     0);
    for (size_t i = 0; i < 3; i++) {
        rule_group *g = NULL;
        ck_assert_int_eq(rule_group_new(&s->groups[i], &global, &env, &g, &err), 0);
        ck_assert_str_eq(s->groups[i].name, cases[i].name);
        ck_assert_int_eq(rule_group_interval_ms(g), cases[i].interval_ms);
        ck_assert_int_eq(rule_group_offset_ms(g), cases[i].offset_ms);
        int64_t now = 1796300560000;
        int64_t t = rule_group_next_eval_ms(g, now);
        ck_assert_int_eq(t % cases[i].interval_ms, cases[i].offset_ms);
        rule_group_free(g);
    }
    rulefile_free(s);
}
END_TEST

/* ---- JSON ------------------------------------------------------------------ */

/* Replaces each RFC 3339 time after "lastEvaluation": and each
 * evaluationTime's number by "T" and "D". */
static char *mask(const char *s) {
    static char m[4096];
    size_t o = 0;
    while (*s && o < sizeof m - 8) {
        if (strncmp(s, "\"lastEvaluation\":\"", 18) == 0 && strncmp(s + 18, "0001-", 5) != 0) {
            memcpy(m + o, s, 18);
            o += 18;
            s += 18;
            m[o++] = 'T';
            s = strchr(s, '"');
        } else if (strncmp(s, "\"evaluationTime\":", 17) == 0) {
            memcpy(m + o, s, 17);
            o += 17;
            s += 17;
            m[o++] = 'D';
            while (*s && *s != ',' && *s != '}')
                s++;
        } else {
            m[o++] = *s++;
        }
    }
    m[o] = 0;
    return m;
}

START_TEST(test_json) {
    put("m", "job", "a", 0, 3);
    rule_group *g = group("groups:\n"
                          "  - name: g\n"
                          "    interval: 30s\n"
                          "    rules:\n"
                          "      - record: job:m:sum\n"
                          "        expr: sum by(job)(m)\n"
                          "        labels: {team: a}\n"
                          "      - record: plain\n"
                          "        expr: m\n"
                          "      - alert: High\n"
                          "        expr: m>1\n"
                          "        for: 90s\n"
                          "        labels: {severity: page}\n"
                          "        annotations: {summary: 'v={{ $value }}'}\n");
    ck_assert_str_eq(
        json(g),
        "{\"name\":\"g\",\"file\":\"rules.yml\",\"rules\":["
        "{\"name\":\"job:m:sum\",\"query\":\"sum by (job) "
        "(m)\",\"labels\":{\"team\":\"a\"},\"health\":\"unknown\","
        "\"evaluationTime\":0,\"lastEvaluation\":\"0001-01-01T00:00:00Z\",\"type\":\"recording\"},"
        "{\"name\":\"plain\",\"query\":\"m\",\"health\":\"unknown\",\"evaluationTime\":0,"
        "\"lastEvaluation\":\"0001-01-01T00:00:00Z\",\"type\":\"recording\"},"
        "{\"state\":\"inactive\",\"name\":\"High\",\"query\":\"m \\u003e "
        "1\",\"duration\":90,\"keepFiringFor\":0,"
        "\"labels\":{\"severity\":\"page\"},\"annotations\":{\"summary\":\"v={{ $value }}\"},\"alerts\":[],"
        "\"health\":\"unknown\",\"evaluationTime\":0,\"lastEvaluation\":\"0001-01-01T00:00:00Z\","
        "\"type\":\"alerting\"}],"
        "\"interval\":30,\"limit\":0,\"evaluationTime\":0,\"lastEvaluation\":\"0001-01-01T00:00:00Z\"}");
    put("m", "job", "a", 1700000000000, 3);
    eval(g, 1700000000123);
    ck_assert_str_eq(
        mask(json(g)),
        "{\"name\":\"g\",\"file\":\"rules.yml\",\"rules\":["
        "{\"name\":\"job:m:sum\",\"query\":\"sum by (job) "
        "(m)\",\"labels\":{\"team\":\"a\"},\"health\":\"ok\","
        "\"evaluationTime\":D,\"lastEvaluation\":\"T\",\"type\":\"recording\"},"
        "{\"name\":\"plain\",\"query\":\"m\",\"health\":\"ok\",\"evaluationTime\":D,"
        "\"lastEvaluation\":\"T\",\"type\":\"recording\"},"
        "{\"state\":\"pending\",\"name\":\"High\",\"query\":\"m \\u003e "
        "1\",\"duration\":90,\"keepFiringFor\":0,"
        "\"labels\":{\"severity\":\"page\"},\"annotations\":{\"summary\":\"v={{ $value }}\"},\"alerts\":["
        "{\"labels\":{\"alertname\":\"High\",\"job\":\"a\",\"severity\":\"page\"},"
        "\"annotations\":{\"summary\":\"v=3\"},\"state\":\"pending\",\"activeAt\":\"2023-11-14T22:13:20."
        "123Z\","
        "\"value\":\"3e+00\"}],"
        "\"health\":\"ok\",\"evaluationTime\":D,\"lastEvaluation\":\"T\",\"type\":\"alerting\"}],"
        "\"interval\":30,\"limit\":0,\"evaluationTime\":D,\"lastEvaluation\":\"T\"}");
    /* filters */
    buf b = BUF_INIT;
    int empty;
    rules_filter f = {.type = RULEFILE_ALERT, .exclude_alerts = 1};
    ck_assert_int_eq(rule_group_json(g, &f, &b, &empty), 0);
    ck_assert_int_eq(empty, 0);
    ck_assert_ptr_nonnull(strstr(b.data, "\"alerts\":null"));
    ck_assert_ptr_null(strstr(b.data, "recording"));
    const char *names[] = {"nope"};
    rules_filter f2 = {.rule_names = names, .nrule_names = 1};
    buf_reset(&b);
    ck_assert_int_eq(rule_group_json(g, &f2, &b, &empty), 0);
    ck_assert_int_eq(empty, 1);
    ck_assert_uint_eq(b.len, 0);
    buf_free(&b);
    rule_group_free(g);
}
END_TEST

START_TEST(test_alert_json) {
    label ls[] = {{"alertname", "X"}, {"job", "a\"b"}};
    rule_alert_view v = {.labels = ls,
                         .nlabels = 2,
                         .state = RULE_ALERT_FIRING,
                         .value = 0.25,
                         .active_at_ms = 0,
                         .keep_firing_since_ms = 1500,
                         .fired_at_ms = NOTIFIER_TIME_ZERO};
    buf b = BUF_INIT;
    rule_alert_json(&v, &b);
    ck_assert_str_eq(b.data, "{\"labels\":{\"alertname\":\"X\",\"job\":\"a\\\"b\"},\"annotations\":{},"
                             "\"state\":\"firing\",\"activeAt\":\"1970-01-01T00:00:00Z\","
                             "\"keepFiringSince\":\"1970-01-01T00:00:01.5Z\",\"value\":\"2.5e-01\"}");
    buf_free(&b);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("rules");
    TCase *tc = tcase_create("rules");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_recording);
    tcase_add_test(tc, test_recording_histograms);
    tcase_add_test(tc, test_query_offset);
    tcase_add_test(tc, test_stale_markers);
    tcase_add_test(tc, test_errors_keep_series);
    tcase_add_test(tc, test_failed_eval_keeps_series);
    tcase_add_test(tc, test_out_of_order_sample);
    tcase_add_test(tc, test_large_output);
    tcase_add_test(tc, test_alert_pending_firing);
    tcase_add_test(tc, test_alert_for_zero_and_resolve);
    tcase_add_test(tc, test_alert_pending_gone);
    tcase_add_test(tc, test_keep_firing_for);
    tcase_add_test(tc, test_many_alerts);
    tcase_add_test(tc, test_alert_errors);
    tcase_add_test(tc, test_template_query_and_external_labels);
    tcase_add_test(tc, test_sending);
    tcase_add_test(tc, test_restore_shifted_by_downtime);
    tcase_add_test(tc, test_restore_grace_period);
    tcase_add_test(tc, test_restore_was_firing);
    tcase_add_test(tc, test_restore_outage_tolerance);
    tcase_add_test(tc, test_copy_state);
    tcase_add_test(tc, test_readers_during_evaluation);
    tcase_add_test(tc, test_schedule);
    tcase_add_test(tc, test_schedule_prometheus);
    tcase_add_test(tc, test_json);
    tcase_add_test(tc, test_alert_json);
    suite_add_tcase(s, tc);
    return s;
}
