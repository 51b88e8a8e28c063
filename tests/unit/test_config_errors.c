/*
 * test_config_errors.c - config/: the decoder's error for each kind of bad
 * key in each section (file:line:col and the key's name), and the keys kiln
 * parses but does not act on.  The rest of config/ is in test_config.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

#define KILN_TEST_MAIN
#include "testutil.h"

#include "config_testutil.h"

/* One error of each kind in each section: the table-driven decoder names
 * the key, its section and its file:line:col as the hand-written one did. */
static const struct {
    const char *yaml;
    const char *msg;
} section_bad_cases[] = {
    {"scrape_configs:\n  - job_name: a\n    tls_config: {ca_fil: x}\n",
     "kiln.yml:3:18: unknown key \"ca_fil\" in tls_config"},
    {"scrape_configs:\n  - job_name: a\n    tls_config: [x]\n",
     "kiln.yml:3:17: expected a map for tls_config, got a list"},
    {"scrape_configs:\n  - job_name: a\n    tls_config: {cert_file: c}\n",
     "kiln.yml:3:17: exactly one of key or key_file must be configured when a client certificate is "
     "configured"},
    {"scrape_configs:\n  - job_name: a\n    basic_auth: {user: u}\n",
     "kiln.yml:3:18: unknown key \"user\" in basic_auth"},
    {"scrape_configs:\n  - job_name: a\n    authorization: {kind: Bearer}\n",
     "kiln.yml:3:21: unknown key \"kind\" in authorization"},
    {"scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [a:1], label: {a: b}}]\n",
     "kiln.yml:3:39: unknown key \"label\" in static_config"},
    {"scrape_configs:\n  - job_name: a\n    static_configs: [~]\n",
     "kiln.yml:3:22: expected a map for static_config, got nothing"},
    {"scrape_configs:\n  - job_name: a\n    file_sd_configs: [{files: [a.yml], refresh: 1m}]\n",
     "kiln.yml:3:40: unknown key \"refresh\" in file_sd_config"},
    {"scrape_configs:\n  - job_name: a\n    file_sd_configs: [x]\n",
     "kiln.yml:3:23: expected a map for file_sd_config, got a string"},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs: [{target_label: a, replace: b}]\n",
     "kiln.yml:3:41: unknown key \"replace\" in relabel_config"},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs: [~]\n",
     "kiln.yml:3:23: expected a map for relabel_config, got nothing"},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs: {a: b}\n",
     "kiln.yml:3:22: expected a list for relabel_configs, got a map"},
    {"scrape_configs:\n  - job_name: a\n    params: [a]\n",
     "kiln.yml:3:13: expected a map for params, got a list"},
    {"scrape_configs:\n  - job_name: a\n    params: {a: b}\n",
     "kiln.yml:3:17: expected a list for a, got a string"},
    {"scrape_configs:\n  - job_name: a\n    scrape_interval: [1m]\n",
     "kiln.yml:3:22: expected a duration for \"scrape_interval\", got a list"},
    {"scrape_configs:\n  - job_name: a\n    sample_limit: 99999999999999999999\n",
     "kiln.yml:3:19: integer out of range for \"sample_limit\": \"99999999999999999999\""},
    {"scrape_configs:\n  - job_name: a\n    body_size_limit: 20EB\n",
     "kiln.yml:3:22: size out of range for \"body_size_limit\": \"20EB\""},
    {"scrape_configs:\n  - job_name: a\n    body_size_limit: {a: b}\n",
     "kiln.yml:3:22: expected a size for \"body_size_limit\", got a map"},
    {"scrape_configs:\n  - job_name: a\n    honor_labels: [x]\n",
     "kiln.yml:3:19: expected true or false for \"honor_labels\", got a list"},
    {"scrape_configs:\n  - job_name: a\n    oauth2: {}\n",
     "kiln.yml:3:5: key \"oauth2\" in scrape_config is not supported by kiln"},
    {"scrape_configs:\n  - job_name: a\n    bearer_token: [x]\n",
     "kiln.yml:3:19: expected a string for \"bearer_token\", got a list"},
    {"scrape_configs:\n  - job_name: a\n    static_configs:\n      - labels: {a: [b]}\n",
     "kiln.yml:4:21: expected a string for \"labels\", got a list"},
    {"alerting: [x]\n", "kiln.yml:1:11: expected a map for alerting, got a list"},
    {"alerting:\n  alertmanagers:\n    - scheme: ftp\n",
     "kiln.yml:3:15: scheme must be \"http\" or \"https\", got \"ftp\""},
    {"alerting:\n  alertmanagers:\n    - timeot: 1s\n",
     "kiln.yml:3:7: unknown key \"timeot\" in alertmanager_config"},
    {"alerting:\n  alertmanagers:\n    -\n",
     "kiln.yml:3:6: expected a map for alertmanager_config, got nothing"},
    {"alerting:\n  alertmanagers:\n    - relabel_configs: [{action: drop, regex: '('}]\n",
     "kiln.yml:3:47: invalid regular expression \"(\": missing closing parenthesis"},
    {"remote_write:\n  - url: http://a/\n    metadata_config: {sendd: true}\n",
     "kiln.yml:3:23: unknown key \"sendd\" in metadata_config"},
    {"remote_write:\n  - url: http://a/\n    queue_config: [a]\n",
     "kiln.yml:3:19: expected a map for queue_config, got a list"},
    {"remote_write:\n  - url: http://a/\n    queue_config: {capacity: x}\n",
     "kiln.yml:3:30: expected a non-negative integer for \"capacity\", got \"x\""},
    {"remote_write:\n  - url: http://a/\n    headers: {Authorization: x}\n",
     "kiln.yml:3:15: authorization header must be changed via the basic_auth or authorization parameter"},
    {"remote_write:\n  - url: http://a/\n    headers: {\"a b\": x}\n",
     "kiln.yml:3:15: \"a b\" is not a valid header name"},
    {"remote_write:\n  - url: http://a/\n    bearer_token: a\n    basic_auth: {username: u}\n",
     "kiln.yml:3:5: at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"},
    {"remote_write:\n  - url: http://a/\n    sigv4: {}\n",
     "kiln.yml:3:5: key \"sigv4\" in remote_write is not supported by kiln"},
    {"remote_write:\n  -\n", "kiln.yml:2:4: expected a map for remote_write, got nothing"},
    {"remote_read:\n  - url: http://a/\n    read_recnt: true\n",
     "kiln.yml:3:5: unknown key \"read_recnt\" in remote_read"},
    {"remote_read:\n  - url: http://a/\n    required_matchers: {1a: b}\n",
     "kiln.yml:3:25: \"1a\" is not a valid label name"},
    {"remote_read:\n  - url: http://a/\n    tls_config: {min_version: TLS1}\n",
     "kiln.yml:3:31: unknown TLS version: TLS1"},
    {"global:\n  external_labels: {a: [b]}\n",
     "kiln.yml:2:24: expected a string for \"external_labels\", got a list"},
    {"global:\n  query_log_file: [a]\n",
     "kiln.yml:2:19: expected a string for \"query_log_file\", got a list"},
    {"global:\n  evaluation_interval: 1x\n", "kiln.yml:2:24: not a valid duration string: \"1x\""},
    {"global:\n  scrape_protocols: [PrometheusText0.0.4, PrometheusText0.0.4]\n",
     "kiln.yml:2:43: duplicated protocol in scrape_protocols, got PrometheusText0.0.4"},
    {"global: [a]\n", "kiln.yml:1:9: expected a map for global, got a list"},
    {"rule_files: [[a]]\n", "kiln.yml:1:14: expected a string for \"rule_files\", got a list"},
    {"scrape_configs: [[a]]\n", "kiln.yml:1:18: expected a map for scrape_config, got a list"},
    {"scrape_configs:\n  - job_name: a\n    ? [k]\n    : v\n",
     "kiln.yml:3:7: map keys must be strings, got a list"},
};

START_TEST(test_section_errors) {
    for (size_t i = 0; i < sizeof section_bad_cases / sizeof section_bad_cases[0]; i++) {
        config *c = (config *)1;
        kiln_err err = {0};
        int rc = config_load_string("kiln.yml", section_bad_cases[i].yaml, strlen(section_bad_cases[i].yaml),
                                    &c, &err);
        ck_assert_msg(rc == KILN_EINVAL, "case %zu: rc %d:\n%s", i, rc, section_bad_cases[i].yaml);
        ck_assert_ptr_null(c);
        ck_assert_msg(strcmp(err.msg, section_bad_cases[i].msg) == 0, "case %zu:\n got  %s\n want %s", i,
                      err.msg, section_bad_cases[i].msg);
    }
}
END_TEST

START_TEST(test_unused_keys) {
    static const struct {
        const char *path;
        int line, col;
    } want[] = {
        /* tls_config's server_name and min_version, remote_write and remote_read: acted on, not listed */
        {"global.query_log_file", 5, 3},
    };
    config *c = load_ok("global:\n"
                        "  scrape_interval: 15s\n"
                        "  evaluation_interval: 30s\n"
                        "  external_labels: {a: b}\n"
                        "  query_log_file: q.log\n"
                        "rule_files: [a.yml]\n"
                        "scrape_configs:\n"
                        "  - job_name: a\n"
                        "    tls_config: {server_name: x, ca_file: c}\n"
                        "  - job_name: b\n"
                        "    tls_config: {server_name: y, min_version: TLS12}\n"
                        "alerting:\n"
                        "  alertmanagers:\n"
                        "    - tls_config: {server_name: z}\n"
                        "remote_write:\n"
                        "  - url: http://w/\n"
                        "    queue_config: {capacity: 5}\n"
                        "remote_read:\n"
                        "  - url: http://r/\n");
    ck_assert_uint_eq(c->nunused_keys, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < c->nunused_keys; i++) {
        ck_assert_str_eq(c->unused_keys[i].path, want[i].path);
        ck_assert_msg(c->unused_keys[i].line == want[i].line && c->unused_keys[i].col == want[i].col,
                      "%s at %d:%d", want[i].path, c->unused_keys[i].line, c->unused_keys[i].col);
    }

    /* logged as warnings */
    char path[] = "/tmp/kiln_unused_log_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    log_set_fd(fd);
    config_log_unused(c);
    log_set_fd(2);
    char text[4096] = {0};
    ck_assert_int_gt(pread(fd, text, sizeof text - 1, 0), 0);
    close(fd);
    unlink(path);
    ck_assert_msg(strstr(text, "level=warn") &&
                      strstr(text,
                             "msg=\"configuration key is parsed but not acted on\" key=global.query_log_file "
                             "at=kiln.yml:5:3") &&
                      !strstr(text, "tls_config"),
                  "%s", text);
    config_free(c);

    /* the embedded default sets none (rules, alerting and external labels are acted on) */
    c = load_ok(config_default_yaml());
    ck_assert_uint_eq(c->nunused_keys, 0);
    config_free(c);

    /* none: keys kiln acts on, and unused keys left empty or null */
    static const char *const none[] = {
        "",
        "scrape_configs: []\nremote_write: []\nremote_read:\n",
        "alerting:\nrule_files: []\nglobal: {evaluation_interval: ~, external_labels: {}, query_log_file: "
        "''}\n",
        "global: {scrape_interval: 1m, scrape_timeout: 5s, sample_limit: 3, scrape_protocols: "
        "[PrometheusText0.0.4]}\n"
        "scrape_configs:\n"
        "  - job_name: a\n"
        "    tls_config: {ca_file: c, insecure_skip_verify: true}\n"
        "    proxy_url: http://p:1\n"
        "    follow_redirects: false\n"
        "    enable_http2: false\n"
        "    track_timestamps_staleness: true\n"
        "    basic_auth: {username: u, password_file: f}\n"
        "    relabel_configs: [{target_label: x}]\n"
        "    file_sd_configs: [{files: [a.json]}]\n"
        "    static_configs: [{targets: [a:1], labels: {x: y}}]\n",
    };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        c = load_ok(none[i]);
        ck_assert_msg(c->nunused_keys == 0, "doc %zu: %s", i, c->nunused_keys ? c->unused_keys[0].path : "");
        config_free(c);
    }
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("config_errors");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_section_errors);
    tcase_add_test(tc, test_unused_keys);
    suite_add_tcase(s, tc);
    return s;
}
