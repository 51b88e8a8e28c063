/*
 * test_rules_unittest.c - `kiln test rules`: the series notation
 * (rules/unittest_series.c), the test-file decoder (config/ruletest.c), Go's
 * quoting (util's go_quote) and the runner's report on small files
 * (rules/unittest.c).
 *
 * Every expected error text below is what Prometheus 2.42's promtool printed
 * for the same input (Debian's promtool 2.42.0+ds, `promtool test rules`).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "rules/rules.h"
#include "rules/unittest.h"

#define KILN_TEST_MAIN
#include "testutil.h"

/* Parses line as a series; returns the values as text ("1 _ S 3": S a stale
 * marker, N another NaN) or the error. */
static char *series_text(const char *line, char *labels_out, size_t nlabels_out) {
    static char out[4096];
    arena a;
    buf msg = BUF_INIT;
    ut_series s;
    arena_init(&a, 0);
    int rc = ut_parse_series(line, strlen(line), &a, &s, &msg);
    if (rc != 0) {
        snprintf(out, sizeof out, "ERR %s", msg.data ? msg.data : "");
    } else {
        size_t k = 0;
        out[0] = 0;
        for (size_t i = 0; i < s.nvals && k < sizeof out - 32; i++) {
            const ut_value *v = &s.vals[i];
            if (v->omitted)
                k += (size_t)snprintf(out + k, sizeof out - k, "%s_", i ? " " : "");
            else if (value_is_stale(v->v))
                k += (size_t)snprintf(out + k, sizeof out - k, "%sS", i ? " " : "");
            else if (isnan(v->v))
                k += (size_t)snprintf(out + k, sizeof out - k, "%sN", i ? " " : "");
            else
                k += (size_t)snprintf(out + k, sizeof out - k, "%s%g", i ? " " : "", v->v);
        }
        if (labels_out) {
            buf b = BUF_INIT;
            labels_format(&b, s.ls, s.nls);
            snprintf(labels_out, nlabels_out, "%s", b.data ? b.data : "");
            buf_free(&b);
        }
    }
    buf_free(&msg);
    arena_free(&a);
    return out;
}

static const struct {
    const char *line, *want;
} series_cases[] = {
    /* the expanding notation, as documented */
    {"up -2+4x3", "-2 2 6 10"},
    {"up 1-2x4", "1 -1 -3 -5 -7"},
    {"up 1x4", "1 1 1 1 1"},
    {"up 1 _x3 stale", "1 _ _ _ S"},
    {"up _ _x2", "_ _ _"},
    {"up 010 0x1 1e3 .5 -Inf", "8 0 0 1000 0.5 -inf"},
    {"up 08", "8"},
    {"up stale+1x1", "S N"},
    {"up", ""},
    {"up{a=\"b\"} 1 ", "1"},
    {"{a=\"b\"} 1", "1"},
    {"sum 1", "1"},
    {"a:b\t2", "2"},
    /* promtool 2.42's errors, column counted from the line's start */
    {"up{a=\"b\"} 1 a 2",
     "ERR 1:13: parse error: unexpected identifier \"a\" in series values, expected number or "
     "\"stale\""},
    {"up{a=\"b\" 1 2", "ERR 1:10: parse error: unexpected character inside braces: '1'"},
    {"up{a=b} 1 2", "ERR 1:6: parse error: unexpected identifier \"b\" in label set, expected string"},
    {"up 1+x3", "ERR 1:6: parse error: unexpected \"x\" in series values"},
    {"up 1 _+1x3", "ERR 1:7: parse error: unexpected <op:+>"},
    {"up 1x-2", "ERR 1:6: parse error: unexpected <op:-> in series values"},
    {"up 1x2.5",
     "ERR 1:6: parse error: invalid repetition in series values: strconv.ParseUint: parsing \"2.5\": "
     "invalid syntax"},
    {"up Inf -Inf NaN +3 -2 0x1F", "ERR 1:25: parse error: bad number syntax: \"1\""},
    {"1", "ERR 1:1: parse error: unexpected number \"1\" in series values"},
    {"up{a!=\"b\"} 1", "ERR 1:5: parse error: unexpected <op:!=> in label set, expected \"=\""},
    {"1up 1", "ERR 1:1: parse error: bad number or duration syntax: \"1\""},
    {"up 1 2 # comment", "ERR 1:8: parse error: unexpected character in series sequence: '#'"},
    {"up 1x3x4", "ERR 1:7: parse error: unexpected \"x\""},
    {"ignoring 1", "ERR 1:1: parse error: unexpected <ignoring> in series values"},
    {"up{a=\"\\q\"} 1", "ERR 1:6: parse error: unknown escape sequence U+0071 'q'"},
    {"up 1 sum", "ERR 1:6: parse error: unexpected <aggr:sum>"},
    {"up{,} 1", "ERR 1:4: parse error: unexpected \",\" in label set, expected identifier or \"}\""},
    {"up{a} 1", "ERR 1:5: parse error: unexpected \"}\" in label set, expected \"=\""},
    {"up{ 1", "ERR 1:5: parse error: unexpected character inside braces: '1'"},
    {"a 1+2", "ERR 1:6: parse error: unexpected end of input in series values"},
    {"@ 1", "ERR 1:1: parse error: unexpected \"<Item 57385>\" <op:@> in series values"},
    {"up 1e",
     "ERR 1:4: parse error: error parsing number: strconv.ParseFloat: parsing \"1e\": invalid syntax"},
    {"up 1x99999999999999999999",
     "ERR 1:6: parse error: invalid repetition in series values: strconv.ParseUint: parsing "
     "\"99999999999999999999\": value out of range"},
    /* kiln's bound, where promtool runs out of memory */
    {"up 1x100000000", "ERR 1:6: parse error: invalid repetition in series values: more than kiln's limit of "
                       "values"},
};

START_TEST(test_series) {
    for (size_t i = 0; i < sizeof series_cases / sizeof *series_cases; i++)
        ck_assert_msg(strcmp(series_text(series_cases[i].line, NULL, 0), series_cases[i].want) == 0,
                      "%s: got <%s> want <%s>", series_cases[i].line,
                      series_text(series_cases[i].line, NULL, 0), series_cases[i].want);
}
END_TEST

/* Labels as Prometheus' parser leaves them: sorted; with a metric name,
 * empty values and a __name__ in the braces dropped; without, kept. */
START_TEST(test_series_labels) {
    char ls[256];
    series_text("up{b=\"2\",a=\"1\",c=\"\",__name__=\"x\"} 1", ls, sizeof ls);
    ck_assert_str_eq(ls, "{__name__=\"up\", a=\"1\", b=\"2\"}");
    series_text("{b=\"2\",a=\"\\u00e9\\x41\\101\"} 1", ls, sizeof ls);
    ck_assert_str_eq(ls, "{a=\"éAA\", b=\"2\"}");
    series_text("{a='s',b=`r\\n`} 1", ls, sizeof ls);
    ck_assert_str_eq(ls, "{a=\"s\", b=\"r\\\\n\"}");
}
END_TEST

static char *metric_text(const char *s) {
    static char out[512];
    arena a;
    buf msg = BUF_INIT, b = BUF_INIT;
    ut_series m;
    arena_init(&a, 0);
    if (ut_parse_metric(s, strlen(s), &a, &m, &msg) != 0) {
        snprintf(out, sizeof out, "ERR %s", msg.data ? msg.data : "");
    } else {
        labels_format(&b, m.ls, m.nls);
        snprintf(out, sizeof out, "%s", b.data ? b.data : "");
        ck_assert_uint_eq(m.nvals, 0);
    }
    buf_free(&b);
    buf_free(&msg);
    arena_free(&a);
    return out;
}

START_TEST(test_metric) {
    ck_assert_str_eq(metric_text("go_goroutines{job=\"prometheus\",instance=\"localhost:9090\"}"),
                     "{__name__=\"go_goroutines\", instance=\"localhost:9090\", job=\"prometheus\"}");
    ck_assert_str_eq(metric_text(""), "{}");
    ck_assert_str_eq(metric_text("up {a=\"b\"}"), "{__name__=\"up\", a=\"b\"}");
    ck_assert_str_eq(metric_text("up 1"), "ERR 1:4: parse error: unexpected number \"1\"");
    ck_assert_str_eq(metric_text("up{a=\"b\""),
                     "ERR 1:9: parse error: unexpected end of input inside braces");
    ck_assert_str_eq(metric_text(")"), "ERR 1:2: parse error: unexpected right parenthesis ')'");
    ck_assert_str_eq(metric_text("up 5m"), "ERR 1:4: parse error: unexpected duration \"5m\"");
    ck_assert_str_eq(metric_text("up \"a very long string\""),
                     "ERR 1:4: parse error: unexpected string \"\\\"a very lo\"...");
}
END_TEST

START_TEST(test_go_quote) {
    buf b = BUF_INIT;
    const char s[] = "a\"b\\c\n\x01\x7f\xff\xc3\xa9\xc2\x85";
    go_quote(&b, s, sizeof s - 1, '"');
    ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\\x01\\x7f\\xffé\\u0085\"");
    buf_reset(&b);
    go_quote(&b, "'\"", 2, '\'');
    ck_assert_str_eq(b.data, "'\\'\"'");
    buf_free(&b);
}
END_TEST

/* Loads a test file; the error text, or "" when it loads. */
static char *load_text(const char *yaml, ruletest_file **out) {
    static char err[1024];
    buf msg = BUF_INIT;
    ruletest_file *t = NULL;
    int rc = ruletest_load_string(yaml, strlen(yaml), &t, &msg);
    snprintf(err, sizeof err, "%s", rc == 0 ? "" : msg.data ? msg.data : "?");
    buf_free(&msg);
    if (out)
        *out = t;
    else
        ruletest_free(t);
    return err;
}

START_TEST(test_load) {
    ruletest_file *t;
    ck_assert_str_eq(load_text("rule_files: [a.yml, 'b*.yml']\nevaluation_interval: 30s\n"
                               "group_eval_order: [g2, g1]\ntests:\n"
                               "  - interval: 1m\n    name: t1\n    external_labels: {cluster: c1}\n"
                               "    external_url: http://x\n"
                               "    input_series:\n      - series: up\n        values: 1 2\n"
                               "    alert_rule_test:\n      - eval_time: 5m\n        alertname: A\n"
                               "        exp_alerts:\n          - exp_labels: {job: j}\n"
                               "            exp_annotations: {s: '5'}\n"
                               "    promql_expr_test:\n      - expr: up\n        eval_time: 1h30m\n"
                               "        exp_samples:\n          - labels: up\n            value: 0x10\n"
                               "          - value: .inf\n",
                               &t),
                     "");
    ck_assert_uint_eq(t->nrule_files, 2);
    ck_assert_str_eq(t->rule_files[1], "b*.yml");
    ck_assert_int_eq(t->evaluation_interval_ms, 30000);
    ck_assert_uint_eq(t->ngroup_eval_order, 2);
    ck_assert_uint_eq(t->ntests, 1);
    const ruletest_group *g = &t->tests[0];
    ck_assert_int_eq(g->interval_ms, 60000);
    ck_assert_str_eq(g->name, "t1");
    ck_assert_str_eq(g->external_url, "http://x");
    ck_assert_str_eq(g->external_labels[0].value, "c1");
    ck_assert_str_eq(g->input_series[0].values, "1 2");
    ck_assert_int_eq(g->alert_rule_test[0].eval_time_ms, 300000);
    ck_assert_str_eq(g->alert_rule_test[0].exp_alerts[0].annotations[0].value, "5");
    ck_assert_int_eq(g->promql_expr_test[0].eval_time_ms, 5400000);
    ck_assert(g->promql_expr_test[0].exp_samples[0].value == 16);
    ck_assert(isinf(g->promql_expr_test[0].exp_samples[1].value));
    ck_assert_str_eq(g->promql_expr_test[0].exp_samples[1].labels, "");
    ruletest_free(t);

    /* yaml.v2's words */
    ck_assert_str_eq(load_text("rule_files: [alerts.yml\ntests: x", NULL),
                     "yaml: line 1: did not find expected ',' or ']'");
    ck_assert_str_eq(load_text("rule_files: [alerts.yml]\nfoo: 1\ntests:\n  - interval: 1m\n    bar: 2\n"
                               "    input_series:\n      - series: up\n        values: 1\n        baz: 3",
                               NULL),
                     "yaml: unmarshal errors:\n  line 2: field foo not found in type main.unitTestFile\n"
                     "  line 5: field bar not found in type main.testGroup\n"
                     "  line 9: field baz not found in type main.series");
    ck_assert_str_eq(
        load_text("tests:\n  - input_series:\n      - series: [up]\n    promql_expr_test:\n"
                  "      - exp_samples:\n          - value: abc\n          - value: abcdefghijklmnop",
                  NULL),
        "yaml: unmarshal errors:\n  line 3: cannot unmarshal !!seq into string\n"
        "  line 6: cannot unmarshal !!str `abc` into float64\n"
        "  line 7: cannot unmarshal !!str `abcdefg...` into float64");
    ck_assert_str_eq(load_text("evaluation_interval: 5x\ntests: [1]", NULL),
                     "not a valid duration string: \"5x\"");
    ck_assert_str_eq(load_text("evaluation_interval: ''", NULL), "empty duration string");
    ck_assert_str_eq(load_text("tests: 5", NULL),
                     "yaml: unmarshal errors:\n  line 1: cannot unmarshal !!int `5` into []main.testGroup");
    ck_assert_str_eq(load_text("tests:\n  - name: *y", NULL), "yaml: unknown anchor 'y' referenced");
    ck_assert_str_eq(load_text("---\ntests: []\n---\nfoo: 1", NULL), "");
    ck_assert_str_eq(
        load_text("tests:\n  - name: a\n    name: b\n    foo: 1\n    external_labels: {a: b, a: c}", NULL),
        "yaml: unmarshal errors:\n  line 3: field name already set in type main.testGroup\n"
        "  line 4: field foo not found in type main.testGroup\n"
        "  line 5: key \"a\" already set in map");
    ck_assert_str_eq(load_text("tests:\n  - &g\n    interval: 1m\n  - <<: *g\n    interval: 2m", NULL), "");
    ck_assert_str_eq(load_text("", NULL), "");
}
END_TEST

/* Runs `kiln test rules` on files written to a temporary directory. */
static int run_files(const char *const *names, const char *const *texts, size_t n, char *out, size_t nout,
                     char *err, size_t nerr) {
    char dir[] = "/tmp/kiln-test-rules-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char *paths[8];
    for (size_t i = 0; i < n; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        FILE *f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fputs(texts[i], f);
        fclose(f);
        paths[i] = strdup(p);
    }
    FILE *o = tmpfile(), *e = tmpfile();
    int rc = rules_test_main(1, &paths[n - 1], o, e);
    rewind(o);
    rewind(e);
    size_t k = fread(out, 1, nout - 1, o);
    out[k] = 0;
    k = fread(err, 1, nerr - 1, e);
    err[k] = 0;
    fclose(o);
    fclose(e);
    kiln_err ke;
    ck_assert_int_eq(fileio_rm_rf(dir, &ke), 0);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    return rc;
}

/* The head of both test files below: the rule file and one series. */
#define TEST_HEAD(name)                                                                                      \
    "rule_files: [rules.yml]\ntests:\n  - interval: 1m\n" name "    input_series:\n"                         \
    "      - series: 'up{job=\"a\"}'\n        values: '1 0 0 0 0'\n"

static const char *const rules_yml =
    "groups:\n- name: g\n  rules:\n  - record: job:up:sum\n    expr: sum by (job) (up)\n"
    "  - alert: Down\n    expr: up == 0\n    for: 2m\n    labels: {severity: page}\n"
    "    annotations: {summary: '{{ $labels.job }} down, {{ $value }}'}\n";

START_TEST(test_run_success) {
    const char *names[] = {"rules.yml", "t.yml"};
    const char *texts[] = {
        rules_yml,
        TEST_HEAD(
            "") "    alert_rule_test:\n      - eval_time: 2m\n        alertname: Down\n"
                "      - eval_time: 3m30s\n        alertname: Down\n        exp_alerts:\n"
                "          - exp_labels: {job: a, severity: page}\n"
                "            exp_annotations: {summary: 'a down, 0'}\n"
                "    promql_expr_test:\n      - expr: job:up:sum\n        eval_time: 1m\n"
                "        exp_samples:\n          - labels: 'job:up:sum{job=\"a\"}'\n            value: 0\n"};
    char out[4096], err[4096];
    ck_assert_int_eq(run_files(names, texts, 2, out, sizeof out, err, sizeof err), 0);
    ck_assert_str_eq(err, "");
    ck_assert(strstr(out, "t.yml\n  SUCCESS\n\n") != NULL);
}
END_TEST

START_TEST(test_run_failures) {
    const char *names[] = {"rules.yml", "t.yml"};
    const char *texts[] = {
        rules_yml,
        TEST_HEAD(
            "    name: n1\n") "    alert_rule_test:\n      - eval_time: 3m\n        alertname: Down\n"
                              "    promql_expr_test:\n      - expr: job:up:sum / 3\n        eval_time: 1m\n"
                              "        exp_samples:\n          - labels: '{job=\"a\"}'\n            value: "
                              "1\n"
                              "  - interval: 1m\n    input_series:\n      - series: up\n        values: '1 "
                              "x'\n"};
    char out[4096], err[4096];
    ck_assert_int_eq(run_files(names, texts, 2, out, sizeof out, err, sizeof err), 1);
    ck_assert_str_eq(
        err, "  FAILED:\n"
             "    name: n1,\n    alertname: Down, time: 3m, \n        exp:[], \n        got:[\n"
             "            0:\n              Labels:{alertname=\"Down\", job=\"a\", severity=\"page\"}\n"
             "              Annotations:{summary=\"a down, 0\"}\n            ]\n"
             "    expr: \"job:up:sum / 3\", time: 1m,\n        exp: {job=\"a\"} 1E+00\n"
             "        got: {job=\"a\"} 0E+00\n"
             "1:6: parse error: unexpected \"x\"\n");
    ck_assert(strstr(out, "t.yml\n\n\n\n\n") != NULL);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("rules_unittest");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_series);
    tcase_add_test(tc, test_series_labels);
    tcase_add_test(tc, test_metric);
    tcase_add_test(tc, test_go_quote);
    tcase_add_test(tc, test_load);
    tcase_add_test(tc, test_run_success);
    tcase_add_test(tc, test_run_failures);
    suite_add_tcase(s, tc);
    return s;
}
