/*
 * test_rulefile.c - rule files (config/rulefile.c): a table of good and bad
 * files with every error kiln reports (file:line:col, group, rule) and the
 * verdict of Debian's promtool 2.42 on the same file; the model a good file
 * loads into; stopping at the first error without a report hook; the
 * PromQL and template hooks; the built-in `{{ }}` check; files, globs and
 * the rule_files of a configuration file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "query/query.h"

#define KILN_TEST_MAIN
#include "testutil.h"

/* Every error of a load, one a line. */
static void collect(void *data, const char *msg) {
    buf *b = data;
    buf_printf(b, "%s\n", msg);
}

static int parse_expr(const char *expr, kiln_err *err) {
    return query_parse_check(expr, err);
}

/*
 * promtool's verdicts were recorded with Debian's promtool 2.42.0+ds, each
 * case written to NAME.yml and checked with
 *     promtool check rules NAME.yml; echo $?
 * (0: SUCCESS, 1: FAILED).  Where kiln differs, `differs` says why; every
 * other row must agree with promtool.  `errors` is what kiln reports (the
 * positions are ours: promtool gives none for label names and templates,
 * 0:0 for a missing key, and points at `record` for `for`,
 * `keep_firing_for` and `annotations` in a recording rule; the rest are
 * promtool's own line:col).
 */
static const struct rf_case {
    const char *name;
    const char *yaml;
    size_t nrules;       /* when it loads */
    const char *errors;  /* NULL: it loads */
    int promtool_failed; /* recorded */
    const char *differs; /* why kiln's verdict is not promtool's, or NULL */
} cases[] = {
    {"good",
     "groups:\n"
     "  - name: example\n"
     "    interval: 30s\n"
     "    limit: 10\n"
     "    rules:\n"
     "      - record: job:http_requests:rate5m\n"
     "        expr: sum by (job) (rate(http_requests_total[5m]))\n"
     "        labels:\n"
     "          team: a\n"
     "      - alert: HighErrorRate\n"
     "        expr: job:http_requests:rate5m > 0.5\n"
     "        for: 10m\n"
     "        keep_firing_for: 5m\n"
     "        labels:\n"
     "          severity: page\n"
     "        annotations:\n"
     "          summary: \"High rate on {{ $labels.instance }}: {{ $value | humanize }}\"\n"
     "          description: '{{ if gt $value 1.0 }}over{{ else }}under{{ end }} {{ \"}}\" }}'\n"
     "",
     2, NULL, 0, NULL},
    {"empty", "", 0, NULL, 0, NULL},
    {"groups_null", "groups:\n", 0, NULL, 0, NULL},
    {"rules_null", "groups:\n  - name: x\n", 0, NULL, 0, NULL},
    {"zero_interval_negative_limit", "groups:\n  - name: x\n    interval: 0s\n    limit: -1\n    rules: []\n",
     0, NULL, 0, NULL},
    {"record_null_expr_number",
     "groups:\n  - name: x\n    rules:\n      - record: null\n        expr: 1\n      - alert: 5\n        "
     "expr: 1\n",
     2, NULL, 0, NULL},
    {"alert_name_spaces",
     "groups:\n  - name: x\n    rules:\n      - alert: High Error Rate!\n        expr: up == 0\n        "
     "annotations:\n          __name__: x\n",
     1, NULL, 0, NULL},
    {"v3_group_labels_offset",
     "groups:\n  - name: x\n    query_offset: 1m\n    labels:\n      team: a\n    rules:\n      - record: "
     "r\n        expr: up\n",
     1, NULL, 1, "Prometheus 3's group keys; promtool 2.42 does not know them"},
    {"multi_doc", "groups: []\n---\ngroups: []\n", 0,
     "multi_doc.yml:2:1: only one YAML document is allowed\n", 0,
     "one YAML document only; promtool 2.42 reads the first"},
    {"bad_record_name", "groups:\n  - name: a\n    rules:\n      - record: \"bad name\"\n        expr: up\n",
     0,
     "bad_record_name.yml:4:17: group \"a\", rule 1, \"bad name\": invalid recording rule name: bad name\n",
     1, NULL},
    {"record_and_alert",
     "groups:\n  - name: a\n    rules:\n      - record: x\n        alert: y\n        expr: up\n", 0,
     "record_and_alert.yml:4:17: group \"a\", rule 1, \"y\": only one of 'record' and 'alert' must be set\n",
     1, NULL},
    {"neither", "groups:\n  - name: a\n    rules:\n      - expr: up\n", 0,
     "neither.yml:4:9: group \"a\", rule 1, \"\": one of 'record' or 'alert' must be set\n", 1, NULL},
    {"bad_expr", "groups:\n  - name: a\n    rules:\n      - record: r\n        expr: \"sum(\"\n", 0,
     "bad_expr.yml:5:15: group \"a\", rule 1, \"r\": could not parse expression: 1:5: parse error: unclosed "
     "left parenthesis\n",
     1, NULL},
    {"for_on_record",
     "groups:\n  - name: a\n    rules:\n      - record: r\n        expr: up\n        for: 5m\n", 0,
     "for_on_record.yml:6:9: group \"a\", rule 1, \"r\": invalid field 'for' in recording rule\n", 1, NULL},
    {"keep_firing_annotations_on_record",
     "groups:\n  - name: a\n    rules:\n      - record: r\n        expr: up\n        annotations:\n          "
     "a: b\n        keep_firing_for: 1m\n",
     0,
     "keep_firing_annotations_on_record.yml:6:9: group \"a\", rule 1, \"r\": invalid field 'annotations' in "
     "recording rule\nkeep_firing_annotations_on_record.yml:8:9: group \"a\", rule 1, \"r\": invalid field "
     "'keep_firing_for' in recording rule\n",
     1, NULL},
    {"bad_label_names",
     "groups:\n  - name: a\n    rules:\n      - {alert: A, expr: up, labels: {0bad: x, __name__: y}}\n", 0,
     "bad_label_names.yml:4:39: group \"a\", rule 1, \"A\": invalid label name: "
     "0bad\nbad_label_names.yml:4:48: group \"a\", rule 1, \"A\": invalid label name: __name__\n",
     1, NULL},
    {"bad_annotation_name",
     "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        annotations:\n          "
     "a-b: x\n",
     0, "bad_annotation_name.yml:7:11: group \"a\", rule 1, \"A\": invalid annotation name: a-b\n", 1, NULL},
    {"unclosed_action",
     "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        annotations:\n          "
     "x: \"{{ .Foo\"\n",
     0,
     "unclosed_action.yml:7:14: group \"a\", rule 1, \"A\": annotation \"x\": template: __alert_A:1: "
     "unclosed action\n",
     1, NULL},
    {"unterminated_string",
     "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        labels:\n          x: "
     "'{{ \"abc }}'\n",
     0,
     "unterminated_string.yml:7:14: group \"a\", rule 1, \"A\": label \"x\": template: __alert_A:1: "
     "unterminated quoted string\n",
     1, NULL},
    {"record_labels_not_templates",
     "groups:\n  - name: a\n    rules:\n      - record: r\n        expr: up\n        labels:\n          x: "
     "\"{{ .Foo\"\n",
     1, NULL, 0, NULL},
    {"dup_group",
     "groups:\n  - name: a\n    rules: []\n  - name: b\n    rules: []\n  - name: a\n    rules: []\n", 0,
     "dup_group.yml:6:5: groupname: \"a\" is repeated in the same file\n", 1, NULL},
    {"empty_group_name", "groups:\n  - name: \"\"\n    rules: []\n  - rules: []\n", 0,
     "empty_group_name.yml:2:5: Groupname must not be empty\nempty_group_name.yml:4:5: Groupname must not be "
     "empty\nempty_group_name.yml:4:5: groupname: \"\" is repeated in the same file\n",
     1, NULL},
    {"no_expr", "groups:\n  - name: a\n    rules:\n      - alert: A\n", 0,
     "no_expr.yml:4:9: group \"a\", rule 1, \"A\": field 'expr' must be set in rule\n", 1, NULL},
    {"unknown_rule_field",
     "groups:\n  - name: a\n    rules:\n      - record: r\n        expr: up\n        foo: 1\n", 0,
     "unknown_rule_field.yml:6:9: unknown key \"foo\" in rule\n", 1, NULL},
    {"unknown_group_field", "groups:\n  - name: a\n    evaluation_interval: 1m\n    rules: []\n", 0,
     "unknown_group_field.yml:3:5: unknown key \"evaluation_interval\" in rule group\n", 1, NULL},
    {"unknown_top_field", "groups: []\nfoo: 1\n", 0,
     "unknown_top_field.yml:2:1: unknown key \"foo\" in the rule file\n", 1, NULL},
    {"bad_for", "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        for: 5\n", 0,
     "bad_for.yml:6:14: not a valid duration string: \"5\"\n", 1, NULL},
    {"bad_interval", "groups:\n  - name: a\n    interval: 1h1h\n    rules: []\n", 0,
     "bad_interval.yml:3:15: not a valid duration string: \"1h1h\"\n", 1, NULL},
    {"bad_limit", "groups:\n  - name: a\n    limit: abc\n    rules: []\n", 0,
     "bad_limit.yml:3:12: expected an integer for \"limit\", got \"abc\"\n", 1, NULL},
    {"rules_map", "groups:\n  - name: a\n    rules: {a: 1}\n", 0,
     "rules_map.yml:3:12: expected a list for rules, got a map\n", 1, NULL},
    {"name_list", "groups:\n  - name: [a]\n    rules: []\n", 0,
     "name_list.yml:2:11: expected a string for \"name\", got a list\n", 1, NULL},
    {"dup_key", "groups:\n  - name: a\n    name: b\n    rules: []\n", 0,
     "dup_key.yml:3:5: duplicate key \"name\"\n", 1, NULL},
    {"yaml_syntax", "groups:\n  - name: x\n   rules: [\n", 0,
     "yaml_syntax.yml:3:4: did not find expected '-' indicator while parsing a block collection\n", 1, NULL},
    {"top_list", "- a\n- b\n", 0, "top_list.yml:1:1: expected a map at the top level, got a list\n", 1, NULL},
    {"many_errors",
     "groups:\n  - name: g\n    rules:\n      - record: \"a b\"\n        expr: up\n      - alert: ok\n       "
     " expr: up)\n      - record: r\n        expr: up\n        for: 1m\n  - name: g\n    rules: []\n",
     0,
     "many_errors.yml:4:17: group \"g\", rule 1, \"a b\": invalid recording rule name: a "
     "b\nmany_errors.yml:7:15: group \"g\", rule 2, \"ok\": could not parse expression: 1:4: parse error: "
     "unexpected right parenthesis ')'\nmany_errors.yml:10:9: group \"g\", rule 3, \"r\": invalid field "
     "'for' in recording rule\nmany_errors.yml:11:5: groupname: \"g\" is repeated in the same file\n",
     1, NULL},
};

START_TEST(test_table) {
    const struct rf_case *c = &cases[_i];
    char name[128];
    snprintf(name, sizeof name, "%s.yml", c->name);
    buf errs = BUF_INIT;
    rulefile_opts o = {.check_expr = parse_expr, .report = collect, .data = &errs};
    rulefile_set *s = NULL;
    kiln_err err = {0};
    int rc = rulefile_load_string(name, c->yaml, strlen(c->yaml), &o, &s, &err);
    ck_assert_int_eq(buf_error(&errs), 0);
    if (c->errors) {
        ck_assert_msg(rc != 0, "%s: loaded", c->name);
        ck_assert_ptr_null(s);
        ck_assert_str_eq(errs.data, c->errors);
        /* err holds the first of them */
        ck_assert_msg(strncmp(c->errors, err.msg, strlen(err.msg)) == 0 && c->errors[strlen(err.msg)] == '\n',
                      "%s: err \"%s\"", c->name, err.msg);
    } else {
        ck_assert_msg(rc == 0, "%s: %s", c->name, err.msg);
        ck_assert_uint_eq(errs.len, 0);
        ck_assert_uint_eq(s->nrules, c->nrules);
        ck_assert_uint_eq(s->nfiles, 1);
        ck_assert_str_eq(s->files[0], name);
    }
    int failed = c->errors != NULL;
    if (c->differs)
        ck_assert_msg(failed != c->promtool_failed, "%s agrees with promtool now: drop `differs`", c->name);
    else
        ck_assert_msg(failed == c->promtool_failed, "%s: kiln %s, promtool %s", c->name,
                      failed ? "fails" : "passes", c->promtool_failed ? "fails" : "passes");
    buf_free(&errs);
    rulefile_free(s);
}
END_TEST

/* {a=1,b=2}, in the set's order */
static void describe_labels(buf *b, const config_label *ls, size_t n) {
    buf_putc(b, '{');
    for (size_t i = 0; i < n; i++)
        buf_printf(b, "%s%s=%s", i ? "," : "", ls[i].name, ls[i].value);
    buf_putc(b, '}');
}

START_TEST(test_model) {
    static const char yaml[] = "groups:\n"
                               "  - name: apm\n"
                               "    interval: 30s\n"
                               "    limit: 10\n"
                               "    query_offset: 1m\n"
                               "    labels:\n"
                               "      team: checkout\n"
                               "    rules:\n"
                               "      - record: job:errors:ratio5m\n"
                               "        expr: sum by (job) (rate(errors_total[5m]))\n"
                               "        labels: {b: \"2\", a: \"1\"}\n"
                               "      - alert: HighErrors\n"
                               "        expr: job:errors:ratio5m > 0.05\n"
                               "        for: 10m\n"
                               "        keep_firing_for: 5m\n"
                               "        labels:\n"
                               "          severity: page\n"
                               "        annotations:\n"
                               "          summary: \"{{ $labels.job }} fails\"\n"
                               "  - name: other\n"
                               "    query_offset: ~\n"
                               "    rules:\n"
                               "      - alert: Down\n"
                               "        expr: up == 0\n";
    static const char *const want[] = {
        "group apm apm.yml@2:5 interval=30000 limit=10 offset=60000 {team=checkout}",
        "record job:errors:ratio5m@9:9 `sum by (job) (rate(errors_total[5m]))` for=0/0 {b=2,a=1} {}",
        "alert HighErrors@12:9 `job:errors:ratio5m > 0.05` for=600000/300000 {severity=page} "
        "{summary={{ $labels.job }} fails}",
        /* no interval (global's), no limit, a null offset is no offset */
        "group other apm.yml@20:5 interval=0 limit=0 offset=none {}",
        "alert Down@23:9 `up == 0` for=0/0 {} {}",
    };
    rulefile_set *s = NULL;
    kiln_err err = {0};
    ck_assert_int_eq(rulefile_load_string("apm.yml", yaml, sizeof yaml - 1, NULL, &s, &err), 0);
    ck_assert_uint_eq(s->nrules, 3);
    ck_assert_uint_eq(s->nfiles, 1);
    size_t n = 0;
    for (size_t i = 0; i < s->ngroups; i++) {
        const rulefile_group *g = &s->groups[i];
        buf b = BUF_INIT;
        ck_assert_ptr_eq(g->file, s->files[0]);
        buf_printf(&b, "group %s %s@%d:%d interval=%lld limit=%lld offset=", g->name, g->file, g->line,
                   g->col, (long long)g->interval_ms, (long long)g->limit);
        buf_printf(&b, g->has_query_offset ? "%lld " : "none ", (long long)g->query_offset_ms);
        describe_labels(&b, g->labels, g->nlabels);
        ck_assert_uint_lt(n, sizeof want / sizeof want[0]);
        ck_assert_str_eq(b.data, want[n++]);
        for (size_t j = 0; j < g->nrules; j++) {
            const rulefile_rule *r = &g->rules[j];
            buf_reset(&b);
            buf_printf(&b, "%s %s@%d:%d `%s` for=%lld/%lld ", r->kind == RULEFILE_RECORD ? "record" : "alert",
                       r->name, r->line, r->col, r->expr, (long long)r->for_ms,
                       (long long)r->keep_firing_for_ms);
            describe_labels(&b, r->labels, r->nlabels);
            buf_putc(&b, ' ');
            describe_labels(&b, r->annotations, r->nannotations);
            ck_assert_uint_lt(n, sizeof want / sizeof want[0]);
            ck_assert_str_eq(b.data, want[n++]);
        }
        buf_free(&b);
    }
    ck_assert_uint_eq(n, sizeof want / sizeof want[0]);
    rulefile_free(s);
}
END_TEST

/* Without a report hook the first error ends the load, and only it is in err. */
START_TEST(test_first_error_only) {
    static const char yaml[] = "groups:\n"
                               "  - name: g\n"
                               "    rules:\n"
                               "      - record: \"a b\"\n"
                               "        expr: up\n"
                               "      - record: r\n"
                               "        expr: up\n"
                               "        for: 1m\n";
    rulefile_set *s = (rulefile_set *)1;
    kiln_err err = {0};
    ck_assert_int_eq(rulefile_load_string("x.yml", yaml, sizeof yaml - 1, NULL, &s, &err), KILN_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_str_eq(err.msg, "x.yml:4:17: group \"g\", rule 1, \"a b\": invalid recording rule name: a b");
    /* NULL err is fine */
    ck_assert_int_eq(rulefile_load_string("x.yml", yaml, sizeof yaml - 1, NULL, &s, NULL), KILN_EINVAL);
}
END_TEST

static int template_calls;
static char template_seen[256];

static int fake_template(const char *name, const char *text, kiln_err *err) {
    template_calls++;
    snprintf(template_seen, sizeof template_seen, "%s|%s", name, text);
    if (strstr(text, "nosuchfunc"))
        return kiln_err_set(err, KILN_EINVAL, "template: %s:1: function \"nosuchfunc\" not defined", name);
    return 0;
}

static int expr_calls;

static int count_expr(const char *expr, kiln_err *err) {
    (void)expr;
    (void)err;
    expr_calls++;
    return 0;
}

/* The template hook replaces the {{ }} check and names the alert's
 * template; an unparseable expr passes when no PromQL hook is set. */
START_TEST(test_hooks) {
    static const char yaml[] = "groups:\n"
                               "  - name: g\n"
                               "    rules:\n"
                               "      - alert: A\n"
                               "        expr: \"sum(\"\n"
                               "        annotations:\n"
                               "          d: \"{{ nosuchfunc }}\"\n"
                               "      - record: r\n"
                               "        expr: up\n"
                               "        labels:\n"
                               "          x: \"{{ nosuchfunc }}\"\n";
    rulefile_set *s = NULL;
    kiln_err err = {0};
    rulefile_opts o = {.check_template = fake_template};
    ck_assert_int_eq(rulefile_load_string("h.yml", yaml, sizeof yaml - 1, &o, &s, &err), KILN_EINVAL);
    ck_assert_str_eq(err.msg,
                     "h.yml:7:14: group \"g\", rule 1, \"A\": annotation \"d\": template: __alert_A:1: "
                     "function \"nosuchfunc\" not defined");
    ck_assert_int_eq(template_calls, 1); /* a recording rule's labels are not templates */
    ck_assert_str_eq(template_seen, "__alert_A|{{ nosuchfunc }}");

    /* a template the hook accepts even unbalanced; expr checked by the hook once a rule */
    static const char ok[] = "groups:\n"
                             "  - name: g\n"
                             "    rules:\n"
                             "      - alert: A\n"
                             "        expr: \"sum(\"\n"
                             "        labels: {x: \"{{ .Foo\"}\n"
                             "      - record: r\n"
                             "        expr: up\n";
    o.check_expr = count_expr;
    ck_assert_int_eq(rulefile_load_string("h.yml", ok, sizeof ok - 1, &o, &s, &err), 0);
    ck_assert_int_eq(expr_calls, 2);
    ck_assert_uint_eq(s->nrules, 2);
    rulefile_free(s);
}
END_TEST

START_TEST(test_template_balanced) {
    static const struct {
        const char *text, *err; /* NULL: balanced */
    } t[] = {
        {"", NULL},
        {"plain }} text", NULL}, /* a lone }} is text in Go */
        {"{{ $labels.job }} and {{ $value | humanize }}", NULL},
        {"{{ \"}}\" }}", NULL},
        {"{{ `}}\n{{` }}", NULL},
        {"{{ '}' }}", NULL},
        {"{{/* }} */}}", NULL},
        {"{{- /* c */ -}}", NULL},
        {"{{ .Foo", "template: T:1: unclosed action"},
        {"a\nb\n{{ if .X }}\n{{ end", "template: T:4: unclosed action"},
        {"{{ \"abc }}", "template: T:1: unterminated quoted string"},
        {"{{ \"a\nb\" }}", "template: T:1: unterminated quoted string"},
        {"{{ `abc }}", "template: T:1: unterminated raw quoted string"},
        {"{{ 'a }}", "template: T:1: unterminated character constant"},
        {"{{/* }}", "template: T:1: unclosed comment"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        kiln_err err = {0};
        int rc = rulefile_template_balanced("T", t[i].text, &err);
        if (t[i].err) {
            ck_assert_msg(rc == KILN_EINVAL, "%zu: balanced", i);
            ck_assert_str_eq(err.msg, t[i].err);
        } else {
            ck_assert_msg(rc == 0, "%zu: %s", i, err.msg);
        }
    }
}
END_TEST

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static const char one_rule[] = "groups:\n"
                               "  - name: %s\n"
                               "    rules:\n"
                               "      - record: r\n"
                               "        expr: up\n";

static void write_group(const char *dir, const char *file, const char *group) {
    char path[512], text[256];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    snprintf(text, sizeof text, one_rule, group);
    write_file(path, text);
}

START_TEST(test_files_and_globs) {
    char dir[] = "/tmp/kiln-rulefile-XXXXXX", sub[600], g1[600], g2[600], g3[600], bad[600];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sub, sizeof sub, "%s/sub", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    write_group(dir, "b.yml", "b");
    write_group(dir, "a.yml", "a");
    write_group(dir, ".hidden.yml", "h");
    write_group(dir, "sub/c.yml", "c");
    write_group(dir, "a.txt", "t");

    snprintf(g1, sizeof g1, "%s/*.yml", dir);
    snprintf(g2, sizeof g2, "%s/a.yml", dir); /* again: loaded once */
    snprintf(g3, sizeof g3, "%s/none-*.yml", dir);
    const char *globs[] = {g1, g2, g3};
    rulefile_set *s = NULL;
    kiln_err err = {0};
    ck_assert_int_eq(rulefile_load_globs(globs, 3, NULL, &s, &err), 0);
    ck_assert_uint_eq(s->nfiles, 3); /* sorted, dotfiles matched as Go does */
    ck_assert_uint_eq(s->ngroups, 3);
    ck_assert_str_eq(s->groups[0].name, "h");
    ck_assert_str_eq(s->groups[1].name, "a");
    ck_assert_str_eq(s->groups[2].name, "b");
    char want[600];
    snprintf(want, sizeof want, "%s/a.yml", dir);
    ck_assert_str_eq(s->groups[1].file, want);
    ck_assert_uint_eq(s->nrules, 3);
    rulefile_free(s);

    /* no globs, or none matching: an empty set */
    ck_assert_int_eq(rulefile_load_globs(globs + 2, 1, NULL, &s, &err), 0);
    ck_assert_uint_eq(s->ngroups + s->nfiles, 0);
    rulefile_free(s);

    /* a bad file fails the load; with a report hook every file's errors are listed */
    snprintf(bad, sizeof bad, "%s/sub/d.yml", dir);
    write_file(bad,
               "groups:\n  - name: d\n    rules:\n      - record: r\n        expr: up\n        for: 1m\n");
    write_group(dir, "sub/e.yml", "");
    snprintf(g1, sizeof g1, "%s/sub/*.yml", dir);
    ck_assert_int_eq(rulefile_load_globs(globs, 1, NULL, &s, &err), KILN_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err.msg, "/sub/d.yml:6:9: group \"d\", rule 1, \"r\": invalid field 'for'"));
    buf errs = BUF_INIT;
    rulefile_opts o = {.report = collect, .data = &errs};
    ck_assert_int_eq(rulefile_load_globs(globs, 1, &o, &s, &err), KILN_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(errs.data, "/sub/d.yml:6:9: "));
    ck_assert_ptr_nonnull(strstr(errs.data, "/sub/e.yml:2:5: Groupname must not be empty\n"));
    ck_assert_ptr_nonnull(strstr(err.msg, "/sub/d.yml:6:9: ")); /* the first */
    buf_free(&errs);

    /* missing files and directories */
    snprintf(want, sizeof want, "%s/nope.yml", dir);
    ck_assert_int_eq(rulefile_load_file(want, NULL, &s, &err), KILN_ENOENT);
    ck_assert_ptr_nonnull(strstr(err.msg, "nope.yml"));
    ck_assert_int_ne(rulefile_load_file(sub, NULL, &s, &err), 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "not a regular file"));
    ck_assert_int_eq(rulefile_load_file(bad, NULL, &s, &err), KILN_EINVAL);
    snprintf(want, sizeof want, "%s/sub/c.yml", dir);
    ck_assert_int_eq(rulefile_load_file(want, NULL, &s, &err), 0);
    ck_assert_str_eq(s->groups[0].name, "c");
    rulefile_free(s);
    ck_assert_int_eq(fileio_rm_rf(dir, &err), 0);
}
END_TEST

/* config.rule_files are resolved against the configuration file's
 * directory: they go to rulefile_load_globs as they are. */
START_TEST(test_config_rule_files) {
    char dir[] = "/tmp/kiln-rulefile-XXXXXX", path[600], rules[600];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(rules, sizeof rules, "%s/rules", dir);
    ck_assert_int_eq(mkdir(rules, 0755), 0);
    write_group(rules, "apm.yml", "apm");
    snprintf(path, sizeof path, "%s/kiln.yml", dir);
    write_file(path, "rule_files:\n  - rules/*.yml\n  - missing/*.yml\n");
    config *c = NULL;
    kiln_err err = {0};
    ck_assert_int_eq(config_load_file(path, &c, &err), 0);
    rulefile_set *s = NULL;
    ck_assert_int_eq(rulefile_load_globs((const char *const *)c->rule_files, c->nrule_files, NULL, &s, &err),
                     0);
    ck_assert_uint_eq(s->ngroups, 1);
    ck_assert_str_eq(s->groups[0].name, "apm");
    snprintf(path, sizeof path, "%s/rules/apm.yml", dir);
    ck_assert_str_eq(s->groups[0].file, path);
    rulefile_free(s);
    config_free(c);
    ck_assert_int_eq(fileio_rm_rf(dir, &err), 0);
}
END_TEST

/* The configuration loader's size bound holds for rule files (its other
 * bounds, in yamltree, are test_config's). */
START_TEST(test_bounds) {
    rulefile_set *s = NULL;
    kiln_err err = {0};
    size_t n = CONFIG_MAX_BYTES + 1;
    char *big = malloc(n);
    ck_assert_ptr_nonnull(big);
    memset(big, '#', n);
    ck_assert_int_eq(rulefile_load_string("big.yml", big, n, NULL, &s, &err), KILN_ELIMIT);
    free(big);
    ck_assert_ptr_null(s);
}
END_TEST

Suite *make_suite(void) {
    const TTest *const tests[] = {
        test_model,           test_first_error_only,  test_hooks, test_template_balanced,
        test_files_and_globs, test_config_rule_files, test_bounds};
    Suite *s = suite_create("rulefile");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_table, 0, (int)(sizeof cases / sizeof cases[0]));
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return s;
}
