/*
 * test_config.c - the configuration loader: a full file with every
 * supported key, defaults, inheritance from global, a table of bad files
 * with their exact file:line:col messages, the relabel regex semantics,
 * the input bounds, file loading, the round trip through config_to_yaml
 * (and its exact text) and equality over every scrape key.  An error of
 * each kind in each section and the keys kiln parses but does not act on
 * are in test_config_errors.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

#define KILN_TEST_MAIN
#include "testutil.h"

#include "config_testutil.h"

static const char full_yaml[] = "global:\n"
                                "  scrape_interval: 30s\n"
                                "  scrape_timeout: 20s\n"
                                "  evaluation_interval: 45s\n"
                                "  rule_query_offset: 10s\n"
                                "  external_labels:\n"
                                "    region: eu-west\n"
                                "    env: \"${KILN_TEST_ENV}-x\"\n"
                                "  scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0]\n"
                                "  body_size_limit: 10MB\n"
                                "  sample_limit: 1000\n"
                                "  label_limit: 30\n"
                                "  label_name_length_limit: 200\n"
                                "  label_value_length_limit: 2048\n"
                                "  target_limit: 50\n"
                                "  query_log_file: queries.log\n"
                                "\n"
                                "rule_files:\n"
                                "  - rules/*.yml\n"
                                "  - /etc/kiln/alerts.yml\n"
                                "\n"
                                "scrape_configs:\n"
                                "  - job_name: node\n"
                                "    honor_labels: true\n"
                                "    honor_timestamps: false\n"
                                "    track_timestamps_staleness: true\n"
                                "    scrape_interval: 1m\n"
                                "    scrape_timeout: 5s\n"
                                "    scrape_protocols: [OpenMetricsText1.0.0]\n"
                                "    metrics_path: /probe\n"
                                "    scheme: https\n"
                                "    params:\n"
                                "      module: [http_2xx, tcp]\n"
                                "      target: [\"example.com\"]\n"
                                "    basic_auth:\n"
                                "      username: admin\n"
                                "      password: hunter2\n"
                                "    tls_config:\n"
                                "      ca_file: ca.pem\n"
                                "      cert_file: /certs/c.pem\n"
                                "      key_file: /certs/k.pem\n"
                                "      server_name: node.local\n"
                                "      insecure_skip_verify: true\n"
                                "      min_version: TLS12\n"
                                "    proxy_url: http://proxy:3128\n"
                                "    follow_redirects: false\n"
                                "    enable_http2: false\n"
                                "    body_size_limit: 1GB\n"
                                "    sample_limit: 5000\n"
                                "    label_limit: 10\n"
                                "    label_name_length_limit: 100\n"
                                "    label_value_length_limit: 1000\n"
                                "    target_limit: 7\n"
                                "    static_configs:\n"
                                "      - targets: ['localhost:9100', 'db:9100']\n"
                                "        labels:\n"
                                "          team: infra\n"
                                "      - targets: [\"[::1]:9100\"]\n"
                                "    file_sd_configs:\n"
                                "      - files: [targets/*.json, more.yml]\n"
                                "        refresh_interval: 2m\n"
                                "    relabel_configs:\n"
                                "      - source_labels: [__address__]\n"
                                "        target_label: __param_target\n"
                                "      - source_labels: [__param_target]\n"
                                "        target_label: instance\n"
                                "      - target_label: __address__\n"
                                "        replacement: blackbox:9115\n"
                                "      - source_labels: [__address__]\n"
                                "        modulus: 8\n"
                                "        target_label: __tmp_hash\n"
                                "        action: hashmod\n"
                                "      - source_labels: [__tmp_hash]\n"
                                "        regex: \"^1$\"\n"
                                "        action: keep\n"
                                "      - regex: \"__meta_(.+)\"\n"
                                "        action: labelmap\n"
                                "        replacement: \"meta_$1\"\n"
                                "      - regex: \"tmp_.*\"\n"
                                "        action: LabelDrop\n"
                                "      - source_labels: [a, b]\n"
                                "        target_label: c\n"
                                "        action: keepequal\n"
                                "      - source_labels: [a, b]\n"
                                "        separator: \"|\"\n"
                                "        target_label: ab\n"
                                "      - source_labels: [job]\n"
                                "        target_label: job_lower\n"
                                "        action: lowercase\n"
                                "    metric_relabel_configs:\n"
                                "      - source_labels: [__name__]\n"
                                "        regex: \"go_.*\"\n"
                                "        action: drop\n"
                                "  - job_name: bearer\n"
                                "    bearer_token: s3cret\n"
                                "    static_configs: [{targets: [a:1]}]\n"
                                "  - job_name: authz\n"
                                "    authorization:\n"
                                "      credentials_file: /run/token\n"
                                "    metrics_path: /m\n"
                                "\n"
                                "alerting:\n"
                                "  alert_relabel_configs:\n"
                                "    - regex: replica\n"
                                "      action: labeldrop\n"
                                "  alertmanagers:\n"
                                "    - scheme: https\n"
                                "      path_prefix: /am\n"
                                "      timeout: 5s\n"
                                "      api_version: v2\n"
                                "      static_configs:\n"
                                "        - targets: [am1:9093, am2:9093]\n"
                                "\n"
                                "remote_write:\n"
                                "  - url: https://remote.example/api/v1/write\n"
                                "    name: primary\n"
                                "    remote_timeout: 10s\n"
                                "    headers:\n"
                                "      X-Scope-OrgID: tenant1\n"
                                "    write_relabel_configs:\n"
                                "      - source_labels: [__name__]\n"
                                "        regex: expensive_.*\n"
                                "        action: drop\n"
                                "    send_exemplars: true\n"
                                "    protobuf_message: io.prometheus.write.v2.Request\n"
                                "    authorization:\n"
                                "      type: Token\n"
                                "      credentials: abc\n"
                                "    queue_config:\n"
                                "      capacity: 2500\n"
                                "      max_shards: 10\n"
                                "      min_shards: 2\n"
                                "      max_samples_per_send: 500\n"
                                "      batch_send_deadline: 10s\n"
                                "      min_backoff: 100ms\n"
                                "      max_backoff: 10s\n"
                                "      retry_on_http_429: true\n"
                                "      sample_age_limit: 1h\n"
                                "    metadata_config:\n"
                                "      send: false\n"
                                "      send_interval: 2m\n"
                                "      max_samples_per_send: 100\n"
                                "\n"
                                "remote_read:\n"
                                "  - url: http://remote.example:9201/read\n"
                                "    name: r1\n"
                                "    read_recent: true\n"
                                "    required_matchers:\n"
                                "      job: node\n"
                                "    remote_timeout: 20s\n"
                                "    filter_external_labels: false\n";

static int re_match(const pcre2_code *re, const char *s) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

START_TEST(test_empty_is_defaults) {
    static const char *const docs[] = {"",
                                       "\n\n",
                                       "# only a comment\n",
                                       "~\n",
                                       "---\n",
                                       "global:\n",
                                       "scrape_configs: []\nremote_write: []\nremote_read:\n"};
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        config *c = load_ok(docs[i]);
        ck_assert_int_eq(c->global.scrape_interval_ms, 60000);
        ck_assert_int_eq(c->global.scrape_timeout_ms, 10000);
        ck_assert_int_eq(c->global.evaluation_interval_ms, 60000);
        ck_assert_uint_eq(c->global.nscrape_protocols, 4);
        ck_assert_str_eq(c->global.scrape_protocols[0], "OpenMetricsText1.0.0");
        ck_assert_str_eq(c->global.scrape_protocols[3], "PrometheusText0.0.4");
        ck_assert_uint_eq(c->nscrape_configs, 0);
        ck_assert_uint_eq(c->nrule_files, 0);
        ck_assert_uint_eq(c->nremote_write, 0);
        ck_assert_uint_eq(c->source_len, strlen(docs[i]));
        ck_assert_str_eq(c->name, "kiln.yml");
        config_free(c);
    }
}
END_TEST

START_TEST(test_embedded_default) {
    const char *y = config_default_yaml();
    config *c = load_ok(y);
    ck_assert_int_eq(c->global.scrape_interval_ms, 15000);
    ck_assert_int_eq(c->global.evaluation_interval_ms, 15000);
    ck_assert_uint_eq(c->nscrape_configs, 1);
    scrape_config *s = &c->scrape_configs[0];
    ck_assert_str_eq(s->job_name, "kiln");
    ck_assert_int_eq(s->scrape_interval_ms, 15000);
    ck_assert_int_eq(s->scrape_timeout_ms, 10000);
    ck_assert_str_eq(s->metrics_path, "/metrics");
    ck_assert_str_eq(s->scheme, "http");
    ck_assert_uint_eq(s->nstatic_configs, 1);
    ck_assert_uint_eq(s->static_configs[0].ntargets, 1);
    ck_assert_str_eq(s->static_configs[0].targets[0], "localhost:9090");
    config_free(c);
}
END_TEST

START_TEST(test_full_example) {
    setenv("KILN_TEST_ENV", "prod", 1);
    config *c = load_ok(full_yaml);
    const config_global *g = &c->global;
    ck_assert_int_eq(g->scrape_interval_ms, 30000);
    ck_assert_int_eq(g->scrape_timeout_ms, 20000);
    ck_assert_int_eq(g->evaluation_interval_ms, 45000);
    ck_assert_int_eq(g->rule_query_offset_ms, 10000);
    ck_assert_uint_eq(g->nexternal_labels, 2);
    ck_assert_str_eq(g->external_labels[0].name, "region");
    ck_assert_str_eq(g->external_labels[0].value, "eu-west");
    ck_assert_str_eq(g->external_labels[1].value, "prod-x"); /* ${KILN_TEST_ENV} expanded */
    ck_assert_uint_eq(g->nscrape_protocols, 2);
    ck_assert_str_eq(g->scrape_protocols[0], "PrometheusText0.0.4");
    ck_assert_uint_eq(g->body_size_limit, 10ull << 20);
    ck_assert_uint_eq(g->sample_limit, 1000);
    ck_assert_uint_eq(g->label_limit, 30);
    ck_assert_uint_eq(g->label_name_length_limit, 200);
    ck_assert_uint_eq(g->label_value_length_limit, 2048);
    ck_assert_uint_eq(g->target_limit, 50);
    ck_assert_str_eq(g->query_log_file, "queries.log"); /* load_string resolves no paths */

    ck_assert_uint_eq(c->nrule_files, 2);
    ck_assert_str_eq(c->rule_files[0], "rules/*.yml");
    ck_assert_str_eq(c->rule_files[1], "/etc/kiln/alerts.yml");

    ck_assert_uint_eq(c->nscrape_configs, 3);
    const scrape_config *s = &c->scrape_configs[0];
    ck_assert_str_eq(s->job_name, "node");
    ck_assert_int_eq(s->honor_labels, 1);
    ck_assert_int_eq(s->honor_timestamps, 0);
    ck_assert_int_eq(s->track_timestamps_staleness, 1);
    ck_assert_int_eq(s->scrape_interval_ms, 60000);
    ck_assert_int_eq(s->scrape_timeout_ms, 5000);
    ck_assert_uint_eq(s->nscrape_protocols, 1);
    ck_assert_str_eq(s->scrape_protocols[0], "OpenMetricsText1.0.0");
    ck_assert_str_eq(s->metrics_path, "/probe");
    ck_assert_str_eq(s->scheme, "https");
    ck_assert_uint_eq(s->nparams, 2);
    ck_assert_str_eq(s->params[0].name, "module");
    ck_assert_uint_eq(s->params[0].nvalues, 2);
    ck_assert_str_eq(s->params[0].values[1], "tcp");
    ck_assert_str_eq(s->params[1].values[0], "example.com");
    ck_assert_int_eq(s->http.has_basic_auth, 1);
    ck_assert_str_eq(s->http.username, "admin");
    ck_assert_str_eq(s->http.password, "hunter2");
    ck_assert_ptr_null(s->http.password_file);
    ck_assert_int_eq(s->http.has_authorization, 0);
    ck_assert_str_eq(s->http.tls.ca_file, "ca.pem");
    ck_assert_str_eq(s->http.tls.cert_file, "/certs/c.pem");
    ck_assert_str_eq(s->http.tls.key_file, "/certs/k.pem");
    ck_assert_str_eq(s->http.tls.server_name, "node.local");
    ck_assert_int_eq(s->http.tls.insecure_skip_verify, 1);
    ck_assert_str_eq(s->http.tls.min_version, "TLS12");
    ck_assert_str_eq(s->http.proxy_url, "http://proxy:3128");
    ck_assert_int_eq(s->http.follow_redirects, 0);
    ck_assert_int_eq(s->http.enable_http2, 0);
    ck_assert_uint_eq(s->body_size_limit, 1ull << 30);
    ck_assert_uint_eq(s->sample_limit, 5000);
    ck_assert_uint_eq(s->label_limit, 10);
    ck_assert_uint_eq(s->label_name_length_limit, 100);
    ck_assert_uint_eq(s->label_value_length_limit, 1000);
    ck_assert_uint_eq(s->target_limit, 7);
    ck_assert_uint_eq(s->nstatic_configs, 2);
    ck_assert_uint_eq(s->static_configs[0].ntargets, 2);
    ck_assert_str_eq(s->static_configs[0].targets[1], "db:9100");
    ck_assert_uint_eq(s->static_configs[0].nlabels, 1);
    ck_assert_str_eq(s->static_configs[0].labels[0].name, "team");
    ck_assert_str_eq(s->static_configs[0].labels[0].value, "infra");
    ck_assert_str_eq(s->static_configs[1].targets[0], "[::1]:9100");
    ck_assert_uint_eq(s->nfile_sd_configs, 1);
    ck_assert_uint_eq(s->file_sd_configs[0].nfiles, 2);
    ck_assert_str_eq(s->file_sd_configs[0].files[0], "targets/*.json");
    ck_assert_int_eq(s->file_sd_configs[0].refresh_interval_ms, 120000);

    ck_assert_uint_eq(s->nrelabel_configs, 10);
    const config_relabel *r = s->relabel_configs;
    ck_assert_uint_eq(r[0].nsource_labels, 1);
    ck_assert_str_eq(r[0].source_labels[0], "__address__");
    ck_assert_str_eq(r[0].target_label, "__param_target");
    ck_assert_str_eq(r[0].separator, ";");
    ck_assert_str_eq(r[0].regex, "(.*)");
    ck_assert_str_eq(r[0].replacement, "$1");
    ck_assert_int_eq(r[0].action, CONFIG_RELABEL_REPLACE);
    ck_assert_str_eq(r[2].replacement, "blackbox:9115");
    ck_assert_int_eq(r[3].action, CONFIG_RELABEL_HASHMOD);
    ck_assert_uint_eq(r[3].modulus, 8);
    ck_assert_int_eq(r[4].action, CONFIG_RELABEL_KEEP);
    ck_assert_str_eq(r[4].regex, "^1$");
    ck_assert_int_eq(r[5].action, CONFIG_RELABEL_LABELMAP);
    ck_assert_str_eq(r[5].replacement, "meta_$1");
    ck_assert_int_eq(r[6].action, CONFIG_RELABEL_LABELDROP); /* "LabelDrop": case-insensitive */
    ck_assert_int_eq(r[7].action, CONFIG_RELABEL_KEEPEQUAL);
    ck_assert_str_eq(r[8].separator, "|");
    ck_assert_int_eq(r[9].action, CONFIG_RELABEL_LOWERCASE);
    for (size_t i = 0; i < s->nrelabel_configs; i++)
        ck_assert_ptr_nonnull(r[i].re);
    ck_assert_uint_eq(s->nmetric_relabel_configs, 1);
    ck_assert_int_eq(s->metric_relabel_configs[0].action, CONFIG_RELABEL_DROP);
    ck_assert(re_match(s->metric_relabel_configs[0].re, "go_goroutines"));
    ck_assert(!re_match(s->metric_relabel_configs[0].re, "process_go_x"));

    /* legacy bearer_token becomes authorization: Bearer */
    const scrape_config *b = &c->scrape_configs[1];
    ck_assert_int_eq(b->http.has_authorization, 1);
    ck_assert_str_eq(b->http.auth_type, "Bearer");
    ck_assert_str_eq(b->http.credentials, "s3cret");
    /* inherited from global */
    ck_assert_int_eq(b->scrape_interval_ms, 30000);
    ck_assert_int_eq(b->scrape_timeout_ms, 20000);
    ck_assert_uint_eq(b->nscrape_protocols, 2);
    ck_assert_uint_eq(b->sample_limit, 1000);
    ck_assert_uint_eq(b->body_size_limit, 10ull << 20);
    ck_assert_int_eq(b->honor_timestamps, 1);
    ck_assert_int_eq(b->http.follow_redirects, 1);
    ck_assert_int_eq(b->http.enable_http2, 1);
    const scrape_config *az = &c->scrape_configs[2];
    ck_assert_str_eq(az->http.auth_type, "Bearer");
    ck_assert_str_eq(az->http.credentials_file, "/run/token");
    ck_assert_ptr_null(az->http.credentials);

    const config_alerting *al = &c->alerting;
    ck_assert_uint_eq(al->nalert_relabel_configs, 1);
    ck_assert_int_eq(al->alert_relabel_configs[0].action, CONFIG_RELABEL_LABELDROP);
    ck_assert_uint_eq(al->nalertmanagers, 1);
    ck_assert_str_eq(al->alertmanagers[0].scheme, "https");
    ck_assert_str_eq(al->alertmanagers[0].path_prefix, "/am");
    ck_assert_int_eq(al->alertmanagers[0].timeout_ms, 5000);
    ck_assert_str_eq(al->alertmanagers[0].api_version, "v2");
    ck_assert_uint_eq(al->alertmanagers[0].nstatic_configs, 1);
    ck_assert_str_eq(al->alertmanagers[0].static_configs[0].targets[1], "am2:9093");

    ck_assert_uint_eq(c->nremote_write, 1);
    const config_remote_write *w = &c->remote_write[0];
    ck_assert_str_eq(w->url, "https://remote.example/api/v1/write");
    ck_assert_str_eq(w->name, "primary");
    ck_assert_int_eq(w->remote_timeout_ms, 10000);
    ck_assert_uint_eq(w->nheaders, 1);
    ck_assert_str_eq(w->headers[0].name, "X-Scope-OrgID");
    ck_assert_str_eq(w->headers[0].value, "tenant1");
    ck_assert_uint_eq(w->nwrite_relabel_configs, 1);
    ck_assert_int_eq(w->send_exemplars, 1);
    ck_assert_int_eq(w->send_native_histograms, 0);
    ck_assert_str_eq(w->protobuf_message, "io.prometheus.write.v2.Request");
    ck_assert_str_eq(w->http.auth_type, "Token");
    ck_assert_str_eq(w->http.credentials, "abc");
    ck_assert_int_eq(w->http.enable_http2, 0);
    ck_assert_uint_eq(w->queue.capacity, 2500);
    ck_assert_uint_eq(w->queue.max_shards, 10);
    ck_assert_uint_eq(w->queue.min_shards, 2);
    ck_assert_uint_eq(w->queue.max_samples_per_send, 500);
    ck_assert_int_eq(w->queue.batch_send_deadline_ms, 10000);
    ck_assert_int_eq(w->queue.min_backoff_ms, 100);
    ck_assert_int_eq(w->queue.max_backoff_ms, 10000);
    ck_assert_int_eq(w->queue.retry_on_http_429, 1);
    ck_assert_int_eq(w->queue.sample_age_limit_ms, 3600000);
    ck_assert_int_eq(w->metadata.send, 0);
    ck_assert_int_eq(w->metadata.send_interval_ms, 120000);
    ck_assert_uint_eq(w->metadata.max_samples_per_send, 100);

    ck_assert_uint_eq(c->nremote_read, 1);
    const config_remote_read *rr = &c->remote_read[0];
    ck_assert_str_eq(rr->url, "http://remote.example:9201/read");
    ck_assert_str_eq(rr->name, "r1");
    ck_assert_int_eq(rr->read_recent, 1);
    ck_assert_uint_eq(rr->nrequired_matchers, 1);
    ck_assert_str_eq(rr->required_matchers[0].name, "job");
    ck_assert_str_eq(rr->required_matchers[0].value, "node");
    ck_assert_int_eq(rr->remote_timeout_ms, 20000);
    ck_assert_int_eq(rr->filter_external_labels, 0);

    ck_assert_uint_eq(c->source_len, strlen(full_yaml));
    ck_assert_str_eq(c->source, full_yaml);
    config_free(c);
}
END_TEST

START_TEST(test_section_defaults) {
    config *c = load_ok("scrape_configs:\n"
                        "  - job_name: j\n"
                        "    relabel_configs:\n"
                        "      - target_label: x\n"
                        "    file_sd_configs:\n"
                        "      - files: [a.json]\n"
                        "alerting:\n"
                        "  alertmanagers:\n"
                        "    - static_configs: [{targets: ['am:9093']}]\n"
                        "remote_write:\n"
                        "  - url: http://w/\n"
                        "remote_read:\n"
                        "  - url: http://r/\n");
    const scrape_config *s = &c->scrape_configs[0];
    ck_assert_int_eq(s->honor_labels, 0);
    ck_assert_int_eq(s->honor_timestamps, 1);
    ck_assert_int_eq(s->track_timestamps_staleness, 0);
    ck_assert_int_eq(s->http.follow_redirects, 1);
    ck_assert_int_eq(s->http.enable_http2, 1);
    ck_assert_int_eq(s->http.has_basic_auth, 0);
    ck_assert_ptr_null(s->http.proxy_url);
    ck_assert_uint_eq(s->sample_limit, 0);
    ck_assert_int_eq(s->file_sd_configs[0].refresh_interval_ms, 300000);
    const config_relabel *r = &s->relabel_configs[0];
    ck_assert_str_eq(r->separator, ";");
    ck_assert_str_eq(r->regex, "(.*)");
    ck_assert_str_eq(r->replacement, "$1");
    ck_assert_int_eq(r->action, CONFIG_RELABEL_REPLACE);
    ck_assert_uint_eq(r->modulus, 0);
    const config_alertmanager *am = &c->alerting.alertmanagers[0];
    ck_assert_int_eq(am->timeout_ms, 10000);
    ck_assert_str_eq(am->api_version, "v2");
    ck_assert_str_eq(am->path_prefix, "/");
    ck_assert_str_eq(am->scheme, "http");
    const config_remote_write *w = &c->remote_write[0];
    ck_assert_int_eq(w->remote_timeout_ms, 30000);
    ck_assert_ptr_null(w->name);
    ck_assert_str_eq(w->protobuf_message, "prometheus.WriteRequest");
    ck_assert_int_eq(w->http.enable_http2, 0);
    ck_assert_uint_eq(w->queue.capacity, 10000);
    ck_assert_uint_eq(w->queue.max_shards, 50);
    ck_assert_uint_eq(w->queue.min_shards, 1);
    ck_assert_uint_eq(w->queue.max_samples_per_send, 2000);
    ck_assert_int_eq(w->queue.batch_send_deadline_ms, 5000);
    ck_assert_int_eq(w->queue.min_backoff_ms, 30);
    ck_assert_int_eq(w->queue.max_backoff_ms, 5000);
    ck_assert_int_eq(w->metadata.send, 1);
    ck_assert_int_eq(w->metadata.send_interval_ms, 60000);
    const config_remote_read *rr = &c->remote_read[0];
    ck_assert_int_eq(rr->remote_timeout_ms, 60000);
    ck_assert_int_eq(rr->read_recent, 0);
    ck_assert_int_eq(rr->filter_external_labels, 1);
    ck_assert_int_eq(rr->http.enable_http2, 1);
    config_free(c);
}
END_TEST

/* scrape_interval/scrape_timeout inheritance, as Prometheus applies it */
START_TEST(test_inheritance) {
    static const struct {
        const char *global, *job;
        int64_t g_interval, g_timeout, interval, timeout;
    } cases[] = {
        {"", "", 60000, 10000, 60000, 10000},
        {"scrape_interval: 5s", "", 5000, 5000, 5000, 5000},
        {"scrape_interval: 1m\n  scrape_timeout: 30s", "scrape_interval: 20s", 60000, 30000, 20000, 20000},
        {"scrape_interval: 1m\n  scrape_timeout: 30s", "scrape_interval: 45s", 60000, 30000, 45000, 30000},
        {"", "scrape_interval: 5s", 60000, 10000, 5000, 5000},
        {"", "scrape_timeout: 3s", 60000, 10000, 60000, 3000},
        {"scrape_interval: 2m", "scrape_timeout: 90s", 120000, 10000, 120000, 90000},
        {"scrape_interval: 0", "scrape_interval: 0", 60000, 10000, 60000, 10000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char y[512];
        snprintf(y, sizeof y, "global:\n  %s\nscrape_configs:\n  - job_name: j\n    %s\n", cases[i].global,
                 cases[i].job);
        config *c = load_ok(y);
        ck_assert_msg(c->global.scrape_interval_ms == cases[i].g_interval, "case %zu", i);
        ck_assert_msg(c->global.scrape_timeout_ms == cases[i].g_timeout, "case %zu", i);
        ck_assert_msg(c->scrape_configs[0].scrape_interval_ms == cases[i].interval, "case %zu: %lld", i,
                      (long long)c->scrape_configs[0].scrape_interval_ms);
        ck_assert_msg(c->scrape_configs[0].scrape_timeout_ms == cases[i].timeout, "case %zu: %lld", i,
                      (long long)c->scrape_configs[0].scrape_timeout_ms);
        config_free(c);
    }
    /* limits: the job's own value wins, 0 inherits */
    config *c = load_ok("global:\n  sample_limit: 100\n  target_limit: 3\n"
                        "scrape_configs:\n  - job_name: a\n  - job_name: b\n    sample_limit: 5\n");
    ck_assert_uint_eq(c->scrape_configs[0].sample_limit, 100);
    ck_assert_uint_eq(c->scrape_configs[0].target_limit, 3);
    ck_assert_uint_eq(c->scrape_configs[1].sample_limit, 5);
    config_free(c);
    /* native histograms: the job's own setting wins, else global's; the default protocol list is
     * PrometheusProto first where they are on; a list global writes is kept; the failure log is
     * global's unless the job names one */
    c = load_ok("global:\n  scrape_native_histograms: true\n  scrape_failure_log_file: /g.log\n"
                "scrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_native_histograms: false\n"
                "    scrape_failure_log_file: /b.log\n");
    ck_assert_int_eq(c->scrape_configs[0].scrape_native_histograms, 1);
    ck_assert_str_eq(c->scrape_configs[0].scrape_protocols[0], "PrometheusProto");
    ck_assert_uint_eq(c->scrape_configs[0].nscrape_protocols, 5);
    ck_assert_str_eq(c->scrape_configs[0].scrape_failure_log_file, "/g.log");
    ck_assert_int_eq(c->scrape_configs[1].scrape_native_histograms, 0);
    ck_assert_str_eq(c->scrape_configs[1].scrape_protocols[0], "OpenMetricsText1.0.0");
    ck_assert_uint_eq(c->scrape_configs[1].nscrape_protocols, 4);
    ck_assert_str_eq(c->scrape_configs[1].scrape_failure_log_file, "/b.log");
    ck_assert_int_eq(c->scrape_configs[1].enable_compression, 1);
    config_free(c);
    c = load_ok("global:\n  scrape_protocols: [PrometheusText0.0.4]\n"
                "scrape_configs:\n  - job_name: a\n    scrape_native_histograms: true\n");
    ck_assert_uint_eq(c->scrape_configs[0].nscrape_protocols, 1);
    ck_assert_str_eq(c->scrape_configs[0].scrape_protocols[0], "PrometheusText0.0.4");
    config_free(c);
    /* --enable-feature=native-histograms: global's default turns on */
    config_set_native_histograms_default(1);
    c = load_ok("scrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_native_histograms: false\n");
    config_set_native_histograms_default(0);
    ck_assert_int_eq(c->global.scrape_native_histograms, 1);
    ck_assert_str_eq(c->global.scrape_protocols[0], "PrometheusProto");
    ck_assert_int_eq(c->scrape_configs[0].scrape_native_histograms, 1);
    ck_assert_str_eq(c->scrape_configs[1].scrape_protocols[0], "OpenMetricsText1.0.0");
    config_free(c);
}
END_TEST

static const struct {
    const char *yaml;
    const char *msg;
} bad_cases[] = {
    {"global:\n  scrape_intervl: 1m\n", "kiln.yml:2:3: unknown key \"scrape_intervl\" in global"},
    {"global:\n  scrape_interval: 1x\n", "kiln.yml:2:20: not a valid duration string: \"1x\""},
    {"scrape_configs:\n  - job_name: a\n    scrape_intervl: 5s\n",
     "kiln.yml:3:5: unknown key \"scrape_intervl\" in scrape_config"},
    {"scrape_configs:\n  - job_name: a\n  - job_name: a\n",
     "kiln.yml:3:5: found multiple scrape configs with job name \"a\""},
    {"scrape_configs:\n  - job_name: a\n  - job_name: b\n  - job_name: c\n  - job_name: b\n  - job_name: a\n",
     "kiln.yml:5:5: found multiple scrape configs with job name \"b\""},
    {"scrape_configs:\n  - scrape_interval: 5s\n", "kiln.yml:2:5: job_name is empty"},
    {"scrape_configs:\n  - job_name: ''\n", "kiln.yml:2:5: job_name is empty"},
    {"scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n",
     "kiln.yml:4:21: scrape timeout greater than scrape interval for scrape config with job name \"a\""},
    {"global:\n  scrape_interval: 5s\n  scrape_timeout: 6s\n",
     "kiln.yml:3:19: global scrape timeout greater than scrape interval"},
    {"scrape_configs:\n  job_name: a\n", "kiln.yml:2:3: expected a list for scrape_configs, got a map"},
    {"scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: {a: b}\n",
     "kiln.yml:4:18: expected a list for targets, got a map"},
    {"scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [a/b]\n",
     "kiln.yml:4:19: \"a/b\" is not a valid hostname"},
    {"scrape_configs:\n  - job_name: a\n    static_configs:\n      - labels: {0x: y}\n",
     "kiln.yml:4:18: \"0x\" is not a valid label name"},
    {"global:\n  external_labels:\n    1bad: x\n", "kiln.yml:3:5: \"1bad\" is not a valid label name"},
    {"global:\n  external_labels: [a]\n", "kiln.yml:2:20: expected a map for external_labels, got a list"},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - target_label: a-b\n",
     "kiln.yml:4:9: \"a-b\" is invalid 'target_label' for replace action"},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [a]\n        action: "
     "hashmod\n        target_label: h\n",
     "kiln.yml:5:17: relabel configuration for hashmod requires non-zero modulus"},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [a]\n",
     "kiln.yml:4:9: relabel configuration for replace action requires 'target_label' value"},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: foo\n",
     "kiln.yml:4:17: unknown relabel action \"foo\""},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: ''\n",
     "kiln.yml:4:17: relabel action cannot be empty"},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - regex: '('\n        action: keep\n",
     "kiln.yml:4:16: invalid regular expression \"(\": missing closing parenthesis"},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [a-b]\n        action: "
     "keep\n",
     "kiln.yml:4:25: \"a-b\" is not a valid label name"},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: a\n",
     "kiln.yml:4:24: expected a list for source_labels, got a string"},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - regex: x\n        action: labeldrop\n  "
     "      source_labels: [a]\n",
     "kiln.yml:4:9: labeldrop action requires only 'regex', and no other fields"},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - target_label: x\n        action: "
     "lowercase\n        replacement: y\n",
     "kiln.yml:4:9: 'replacement' can not be set for lowercase action"},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - target_label: x\n        action: "
     "dropequal\n        regex: y\n",
     "kiln.yml:4:9: dropequal action requires only 'source_labels' and `target_label`, and no other fields"},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: labelmap\n        replacement: "
     "'a-b'\n",
     "kiln.yml:4:9: \"a-b\" is invalid 'replacement' for labelmap action"},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: uppercase\n",
     "kiln.yml:4:9: relabel configuration for uppercase action requires 'target_label' value"},
    {"scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - modulus: -3\n",
     "kiln.yml:4:18: expected a non-negative integer for \"modulus\", got \"-3\""},
    {"remote_write:\n  - name: x\n", "kiln.yml:2:5: url for remote_write is empty"},
    {"remote_write:\n  - url: not a url\n",
     "kiln.yml:2:10: url for remote_write is not a valid http or https URL: \"not a url\""},
    {"remote_write:\n  - url: ftp://x/\n",
     "kiln.yml:2:10: url for remote_write is not a valid http or https URL: \"ftp://x/\""},
    {"remote_write:\n  - url: http://:80/\n",
     "kiln.yml:2:10: url for remote_write is not a valid http or https URL: \"http://:80/\""},
    {"remote_write:\n  - url: http://a/\n    name: n\n  - url: http://b/\n    name: n\n",
     "kiln.yml:4:5: found multiple remote write configs with job name \"n\""},
    {"remote_write:\n  - url: http://a/\n    headers: {Content-Type: x}\n",
     "kiln.yml:3:15: Content-Type is a reserved header. It must not be changed"},
    {"remote_write:\n  - url: http://a/\n    protobuf_message: foo\n",
     "kiln.yml:3:23: unknown remote write protobuf message foo, supported: prometheus.WriteRequest, "
     "io.prometheus.write.v2.Request"},
    {"remote_write:\n  - url: http://a/\n    queue_config: {capacty: 1}\n",
     "kiln.yml:3:20: unknown key \"capacty\" in queue_config"},
    {"remote_read:\n  - {}\n", "kiln.yml:2:5: url for remote_read is empty"},
    {"remote_read:\n  - url: http://a/\n    name: n\n  - url: http://b/\n    name: n\n",
     "kiln.yml:4:5: found multiple remote read configs with job name \"n\""},
    {"scrape_configs:\n  - job_name: a\n    honor_labels: maybe\n",
     "kiln.yml:3:19: expected true or false for \"honor_labels\", got \"maybe\""},
    {"scrape_configs:\n  - job_name: a\n    honor_labels: 'true'\n",
     "kiln.yml:3:19: expected true or false for \"honor_labels\", got \"true\""},
    {"scrape_configs:\n  - job_name: a\n    scheme: ftp\n",
     "kiln.yml:3:13: scheme must be \"http\" or \"https\", got \"ftp\""},
    {"scrape_configs:\n  - job_name: a\n    ec2_sd_configs: []\n",
     "kiln.yml:3:5: key \"ec2_sd_configs\" in scrape_config is not supported by kiln"},
    {"scrape_configs:\n  - job_name: a\n    sample_limit: -1\n",
     "kiln.yml:3:19: expected a non-negative integer for \"sample_limit\", got \"-1\""},
    {"scrape_configs:\n  - job_name: a\n    body_size_limit: 10\n",
     "kiln.yml:3:22: not a valid size for \"body_size_limit\": \"10\" (a unit is required: B, KB, MB, GB, "
     "TB, PB, EB)"},
    {"scrape_configs:\n  - job_name: a\n    metrics_path: [a]\n",
     "kiln.yml:3:19: expected a string for \"metrics_path\", got a list"},
    {"scrape_configs:\n  - job_name: a\n    scrape_protocols: [Foo]\n",
     "kiln.yml:3:24: unknown scrape protocol Foo, supported: [PrometheusProto OpenMetricsText0.0.1 "
     "OpenMetricsText1.0.0 PrometheusText0.0.4 PrometheusText1.0.0]"},
    {"scrape_configs:\n  - job_name: a\n    scrape_protocols: [PrometheusProto, PrometheusProto]\n",
     "kiln.yml:3:41: duplicated protocol in scrape_protocols, got PrometheusProto"},
    {"scrape_configs:\n  - job_name: a\n    fallback_scrape_protocol: Text\n",
     "kiln.yml:3:31: unknown fallback_scrape_protocol Text, supported: [PrometheusProto OpenMetricsText0.0.1 "
     "OpenMetricsText1.0.0 PrometheusText0.0.4 PrometheusText1.0.0]"},
    {"scrape_configs:\n  - job_name: a\n    native_histogram_min_bucket_factor: x1\n",
     "kiln.yml:3:41: native_histogram_min_bucket_factor must be a number of 0 or more, got x1"},
    {"scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: [a.txt]\n",
     "kiln.yml:4:17: path name \"a.txt\" is not valid for file discovery"},
    {"scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - refresh_interval: 1m\n",
     "kiln.yml:4:9: file service discovery config must contain at least one path name"},
    {"scrape_configs:\n  - job_name: a\n    basic_auth: {username: u}\n    bearer_token: t\n",
     "kiln.yml:4:5: at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"},
    {"scrape_configs:\n  - job_name: a\n    bearer_token: t\n    bearer_token_file: f\n",
     "kiln.yml:4:5: at most one of bearer_token & bearer_token_file must be configured"},
    {"scrape_configs:\n  - job_name: a\n    authorization: {credentials: c}\n    bearer_token: t\n",
     "kiln.yml:4:5: authorization is not compatible with bearer_token & bearer_token_file"},
    {"scrape_configs:\n  - job_name: a\n    basic_auth: {username: u}\n    authorization: {credentials: c}\n",
     "kiln.yml:4:5: at most one of basic_auth, oauth2 & authorization must be configured"},
    {"scrape_configs:\n  - job_name: a\n    authorization: {type: Basic}\n",
     "kiln.yml:3:27: authorization type cannot be set to \"basic\", use \"basic_auth\" instead"},
    {"scrape_configs:\n  - job_name: a\n    authorization: {credentials: a, credentials_file: b}\n",
     "kiln.yml:3:37: at most one of authorization credentials & credentials_file must be configured"},
    {"scrape_configs:\n  - job_name: a\n    basic_auth: {password: a, password_file: b}\n",
     "kiln.yml:3:31: at most one of basic_auth password & password_file must be configured"},
    {"scrape_configs:\n  - job_name: a\n    tls_config: {min_version: TLS9}\n",
     "kiln.yml:3:31: unknown TLS version: TLS9"},
    {"scrape_configs:\n  - job_name: a\n    proxy_url: 'no'\n", "kiln.yml:3:16: invalid proxy_url \"no\""},
    {"alerting:\n  alertmanagers:\n    - api_version: v1\n",
     "kiln.yml:3:20: expected Alertmanager api version to be one of [v2] but got v1"},
    {"alerting:\n  alertmanagers:\n    - timeout: soon\n",
     "kiln.yml:3:16: not a valid duration string: \"soon\""},
    {"alerting:\n  alertmanager: []\n", "kiln.yml:2:3: unknown key \"alertmanager\" in alerting"},
    {"rule_files: rules.yml\n", "kiln.yml:1:13: expected a list for rule_files, got a string"},
    {"rule_files: ['[a.yml']\n", "kiln.yml:1:14: invalid rule file path \"[a.yml\""},
    {"foo: 1\n", "kiln.yml:1:1: unknown key \"foo\" in the configuration"},
    {"storage: {tsdb: {out_of_order_time_window: soon}}\n",
     "kiln.yml:1:44: not a valid duration string: \"soon\""},
    {"storage: {tsdb: {out_of_order_cap_max: 32}}\n",
     "kiln.yml:1:18: unknown key \"out_of_order_cap_max\" in tsdb"},
    {"storage: {exemplars: {max_exemplars: -1}}\n",
     "kiln.yml:1:38: expected a non-negative integer for \"max_exemplars\", got \"-1\""},
    {"- a\n", "kiln.yml:1:1: expected a map at the top level, got a list"},
    {"global:\n  scrape_interval: 1m\n  scrape_interval: 2m\n",
     "kiln.yml:3:3: duplicate key \"scrape_interval\""},
    {"scrape_configs:\n  -\n", "kiln.yml:2:4: empty or null scrape config section"},
    {"global: {}\n---\nglobal: {}\n", "kiln.yml:2:1: only one YAML document is allowed"},
    {"rule_files: [*nope]\n", "kiln.yml:1:14: unknown anchor nope"},
    {"global: [\n", "kiln.yml:2:1: did not find expected node content while parsing a flow node"},
    {"global:\n  a: b\n c: d\n", "kiln.yml:3:2: did not find expected key while parsing a block mapping"},
    {"global:\n\tscrape_interval: 1m\n",
     "kiln.yml:2:1: found character that cannot start any token while scanning for the next token"},
    {"? [a]\n: b\n", "kiln.yml:1:3: map keys must be strings, got a list"},
};

START_TEST(test_bad_files) {
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        config *c = (config *)1;
        kiln_err err = {0};
        int rc = config_load_string("kiln.yml", bad_cases[i].yaml, strlen(bad_cases[i].yaml), &c, &err);
        ck_assert_msg(rc < 0, "case %zu accepted:\n%s", i, bad_cases[i].yaml);
        ck_assert_ptr_null(c);
        ck_assert_int_eq(err.code, rc);
        ck_assert_msg(strcmp(err.msg, bad_cases[i].msg) == 0, "case %zu:\n got  %s\n want %s", i, err.msg,
                      bad_cases[i].msg);
    }
}
END_TEST

START_TEST(test_relabel_regex_semantics) {
    config *c = load_ok("scrape_configs:\n"
                        "  - job_name: j\n"
                        "    metric_relabel_configs:\n"
                        "      - {regex: 'foo.*', action: keep}\n"
                        "      - {regex: 'a|b', action: keep}\n"
                        "      - {regex: '.*', action: keep}\n"
                        "      - {regex: 'a', action: keep}\n"
                        "      - {action: keep}\n");
    const config_relabel *r = c->scrape_configs[0].metric_relabel_configs;
    /* anchored at both ends */
    ck_assert(re_match(r[0].re, "foobar"));
    ck_assert(!re_match(r[0].re, "xfoobar"));
    /* the alternation is grouped inside the anchors */
    ck_assert(re_match(r[1].re, "a"));
    ck_assert(re_match(r[1].re, "b"));
    ck_assert(!re_match(r[1].re, "ab"));
    ck_assert(!re_match(r[1].re, "xb"));
    /* `.` matches a newline, `$` only at the very end */
    ck_assert(re_match(r[2].re, "a\nb"));
    ck_assert(!re_match(r[3].re, "a\n"));
    /* the default (.*) matches anything, the empty string too */
    ck_assert(re_match(r[4].re, ""));
    ck_assert(re_match(r[4].re, "anything at all"));
    config_free(c);

    /* equal regex texts share one compiled code, across jobs too */
    c = load_ok("scrape_configs:\n"
                "  - job_name: a\n"
                "    metric_relabel_configs: [{regex: 'x+', action: keep}, {regex: 'y', action: keep}]\n"
                "  - job_name: b\n"
                "    relabel_configs: [{regex: 'x+', action: drop}, {target_label: t}]\n"
                "    metric_relabel_configs: [{target_label: u}]\n");
    const scrape_config *s0 = &c->scrape_configs[0], *s1 = &c->scrape_configs[1];
    ck_assert_ptr_eq(s0->metric_relabel_configs[0].re, s1->relabel_configs[0].re);
    ck_assert_ptr_ne(s0->metric_relabel_configs[0].re, s0->metric_relabel_configs[1].re);
    ck_assert_ptr_eq(s1->relabel_configs[1].re, s1->metric_relabel_configs[0].re);
    ck_assert(re_match(s1->relabel_configs[0].re, "xxx"));
    config_free(c);
}
END_TEST

START_TEST(test_anchors_and_merge) {
    config *c = load_ok("scrape_configs:\n"
                        "  - &base\n"
                        "    job_name: a\n"
                        "    scrape_interval: 5s\n"
                        "    static_configs: &targets\n"
                        "      - targets: [x:1, y:2]\n"
                        "  - <<: *base\n"
                        "    job_name: b\n"
                        "  - job_name: c\n"
                        "    static_configs: *targets\n");
    ck_assert_uint_eq(c->nscrape_configs, 3);
    ck_assert_str_eq(c->scrape_configs[1].job_name, "b");
    ck_assert_int_eq(c->scrape_configs[1].scrape_interval_ms, 5000);
    ck_assert_uint_eq(c->scrape_configs[1].static_configs[0].ntargets, 2);
    ck_assert_str_eq(c->scrape_configs[2].static_configs[0].targets[1], "y:2");
    ck_assert_int_eq(c->scrape_configs[2].scrape_interval_ms, 60000);
    config_free(c);
}
END_TEST

START_TEST(test_bounds) {
    kiln_err err = {0};
    config *c = NULL;
    /* billion laughs: ten levels of ten aliases each */
    buf b = BUF_INIT;
    buf_puts(&b, "rule_files:\n  - &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 10; i++)
        buf_printf(&b, "  - &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i - 1,
                   i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    int rc = config_load_string("kiln.yml", b.data, b.len, &c, &err);
    ck_assert_int_eq(rc, KILN_ELIMIT);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err.msg, "kiln.yml:") == err.msg && strstr(err.msg, "expands to more than"), "%s",
                  err.msg);
    buf_free(&b);

    /* nesting beyond 64 levels */
    buf_puts(&b, "rule_files: ");
    for (int i = 0; i < 100; i++)
        buf_putc(&b, '[');
    for (int i = 0; i < 100; i++)
        buf_putc(&b, ']');
    buf_putc(&b, '\n');
    rc = config_load_string("kiln.yml", b.data, b.len, &c, &err);
    ck_assert_int_eq(rc, KILN_ELIMIT);
    ck_assert_str_eq(err.msg, "kiln.yml:1:76: nesting deeper than 64 levels");
    buf_free(&b);

    /* over 8 MiB */
    size_t big = CONFIG_MAX_BYTES + 1;
    char *p = malloc(big);
    ck_assert_ptr_nonnull(p);
    memset(p, '#', big);
    rc = config_load_string("kiln.yml", p, big, &c, &err);
    ck_assert_int_eq(rc, KILN_ELIMIT);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err.msg, "more than the limit") != NULL, "%s", err.msg);
    free(p);
}
END_TEST

START_TEST(test_load_targets) {
    char dir[] = "/tmp/kiln_sd_test_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char yml[256], json[256], bad[256];
    snprintf(yml, sizeof yml, "%s/a.yml", dir);
    snprintf(json, sizeof json, "%s/b.json", dir);
    snprintf(bad, sizeof bad, "%s/c.yml", dir);
    FILE *f = fopen(yml, "w");
    fputs("- targets: [\"h1:9100\", \"h2:9100\"]\n  labels: {dc: x}\n- targets: [h3:1]\n", f);
    fclose(f);
    f = fopen(json, "w");
    fputs("[{\"targets\": [\"j1:80\"], \"labels\": {\"env\": \"prod\"}}]", f);
    fclose(f);
    f = fopen(bad, "w");
    fputs("- targets: [a:1]\n  colour: blue\n", f);
    fclose(f);

    arena a;
    arena_init(&a, 0);
    config_static *g = NULL;
    size_t n = 0;
    kiln_err err = {0};
    ck_assert_msg(config_load_targets(yml, &a, &g, &n, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(g[0].ntargets, 2);
    ck_assert_str_eq(g[0].targets[1], "h2:9100");
    ck_assert_uint_eq(g[0].nlabels, 1);
    ck_assert_str_eq(g[0].labels[0].name, "dc");
    ck_assert_str_eq(g[1].targets[0], "h3:1");
    ck_assert_msg(config_load_targets(json, &a, &g, &n, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(g[0].labels[0].value, "prod");
    ck_assert_int_eq(config_load_targets(bad, &a, &g, &n, &err), KILN_EINVAL);
    ck_assert_msg(strstr(err.msg, "c.yml:2") && strstr(err.msg, "colour"), "%s", err.msg);
    snprintf(bad, sizeof bad, "%s/missing.yml", dir);
    ck_assert_int_eq(config_load_targets(bad, &a, &g, &n, &err), KILN_ENOENT);
    arena_free(&a);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_load_file) {
    char dir[] = "/tmp/kiln_config_test_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/kiln.yml", dir);
    const char *y = "rule_files: [rules/*.yml, /abs/r.yml]\n"
                    "scrape_configs:\n"
                    "  - job_name: f\n"
                    "    file_sd_configs: [{files: [sd/*.json]}]\n"
                    "    tls_config: {ca_file: ca.pem}\n"
                    "    basic_auth: {username: u, password_file: pw}\n";
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(y, f);
    fclose(f);

    config *c = NULL;
    kiln_err err = {0};
    ck_assert_msg(config_load_file(path, &c, &err) == 0, "%s", err.msg);
    char want[512];
    snprintf(want, sizeof want, "%s/rules/*.yml", dir);
    ck_assert_str_eq(c->rule_files[0], want);
    ck_assert_str_eq(c->rule_files[1], "/abs/r.yml");
    snprintf(want, sizeof want, "%s/sd/*.json", dir);
    ck_assert_str_eq(c->scrape_configs[0].file_sd_configs[0].files[0], want);
    snprintf(want, sizeof want, "%s/ca.pem", dir);
    ck_assert_str_eq(c->scrape_configs[0].http.tls.ca_file, want);
    snprintf(want, sizeof want, "%s/pw", dir);
    ck_assert_str_eq(c->scrape_configs[0].http.password_file, want);
    ck_assert_str_eq(c->source, y);
    ck_assert_str_eq(c->name, path);

    /* the same text hashes the same, another text differently */
    config *c2 = load_ok(y);
    ck_assert(c->source_hash == c2->source_hash);
    config_free(c2);
    c2 = load_ok("global: {}\n");
    ck_assert(c->source_hash != c2->source_hash);
    config_free(c2);
    config_free(c);

    /* an error in a file names the file */
    f = fopen(path, "w");
    fputs("global:\n  scrape_interval: 1x\n", f);
    fclose(f);
    ck_assert_int_eq(config_load_file(path, &c, &err), KILN_EINVAL);
    snprintf(want, sizeof want, "%s:2:20: not a valid duration string: \"1x\"", path);
    ck_assert_str_eq(err.msg, want);
    unlink(path);
    ck_assert_int_eq(config_load_file(path, &c, &err), KILN_ENOENT);
    ck_assert_ptr_null(c);
    rmdir(dir);
}
END_TEST

START_TEST(test_round_trip) {
    static const char *const docs[] = {
        full_yaml,
        "",
        "scrape_configs:\n"
        "  - job_name: 'quote me: please'\n"
        "    metrics_path: \"/a b#c\"\n"
        "    params: {q: ['true', '123', '', 'x,y', \"tab\\there\", \"nl\\nx\", 'caf\xc3\xa9', "
        "\"\\x85\\u2028\"]}\n"
        "    static_configs: [{targets: ['h:1'], labels: {a: 'null', b: '~', c: '-x', d: ' sp'}}]\n"
        "    relabel_configs:\n"
        "      - source_labels: [a, b_c]\n"
        "        regex: '[a,b]{1,2}: #x'\n"
        "        separator: ', '\n"
        "        target_label: t\n"
        "        replacement: '$1 ${2}'\n"
        "    basic_auth: {}\n",
    };
    setenv("KILN_TEST_ENV", "prod", 1);
    for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
        config *c1 = load_ok(docs[d]);
        buf y1 = BUF_INIT, y2 = BUF_INIT;
        ck_assert_int_eq(config_to_yaml(c1, &y1), 0);
        config *c2 = NULL;
        kiln_err err = {0};
        ck_assert_msg(config_load_string("out.yml", y1.data ? y1.data : "", y1.len, &c2, &err) == 0,
                      "output does not load: %s\n%s", err.msg, y1.data);
        ck_assert_int_eq(config_to_yaml(c2, &y2), 0);
        /* writing the reloaded config gives the same text */
        ck_assert_str_eq(y1.data ? y1.data : "", y2.data ? y2.data : "");
        ck_assert_int_eq(c1->global.scrape_interval_ms, c2->global.scrape_interval_ms);
        ck_assert_int_eq(c1->global.evaluation_interval_ms, c2->global.evaluation_interval_ms);
        ck_assert_uint_eq(c1->nscrape_configs, c2->nscrape_configs);
        for (size_t i = 0; i < c1->nscrape_configs; i++) {
            const scrape_config *a = &c1->scrape_configs[i], *b = &c2->scrape_configs[i];
            /* secrets come back as <secret>, everything else equal */
            int secret =
                (a->http.password && *a->http.password) || (a->http.credentials && *a->http.credentials);
            ck_assert_msg(config_scrape_equal(a, b) == !secret, "doc %zu job %s", d, a->job_name);
        }
        if (d == 2) {
            const scrape_config *b = &c2->scrape_configs[0];
            ck_assert_str_eq(b->job_name, "quote me: please");
            ck_assert_str_eq(b->params[0].values[0], "true");
            ck_assert_str_eq(b->params[0].values[2], "");
            ck_assert_str_eq(b->params[0].values[5], "nl\nx");
            ck_assert_str_eq(b->params[0].values[7], "\xc2\x85\xe2\x80\xa8");
            ck_assert_str_eq(b->static_configs[0].labels[0].value, "null");
            ck_assert_str_eq(b->static_configs[0].labels[3].value, " sp");
            ck_assert_str_eq(b->relabel_configs[0].regex, "[a,b]{1,2}: #x");
            ck_assert_int_eq(b->http.has_basic_auth, 1);
        }
        if (d == 0)
            ck_assert_msg(strstr(y1.data, "password: <secret>") && !strstr(y1.data, "hunter2") &&
                              !strstr(y1.data, "s3cret"),
                          "%s", y1.data);
        buf_free(&y1);
        buf_free(&y2);
        config_free(c1);
        config_free(c2);
    }
}
END_TEST

START_TEST(test_scrape_equal) {
    static const char *const variants[] = {
        "scrape_interval: 30s",
        "scrape_timeout: 5s",
        "metrics_path: /m",
        "scheme: https",
        "honor_labels: true",
        "sample_limit: 1",
        "params: {a: [b]}",
        "static_configs: [{targets: ['other:1']}]",
        "static_configs: [{targets: ['h:1'], labels: {a: b}}]",
        "relabel_configs: [{target_label: x, replacement: y}]",
        "metric_relabel_configs: [{regex: 'b', action: drop}]",
        "basic_auth: {username: u}",
        "tls_config: {insecure_skip_verify: true}",
        "scrape_protocols: [PrometheusText0.0.4]",
    };
    const char *base = "scrape_configs:\n  - job_name: j\n    static_configs: [{targets: ['h:1']}]\n"
                       "    metric_relabel_configs: [{regex: 'a', action: drop}]\n";
    config *a = load_ok(base), *a2 = load_ok(base);
    ck_assert(config_scrape_equal(&a->scrape_configs[0], &a2->scrape_configs[0]));
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        char y[512];
        /* a later key of the same name would be a duplicate: build the variant without the base keys it sets
         */
        snprintf(y, sizeof y, "scrape_configs:\n  - job_name: j\n    %s\n%s%s", variants[i],
                 strncmp(variants[i], "static_configs", 14) ? "    static_configs: [{targets: ['h:1']}]\n"
                                                            : "",
                 strncmp(variants[i], "metric_relabel", 14)
                     ? "    metric_relabel_configs: [{regex: 'a', action: drop}]\n"
                     : "");
        config *b = load_ok(y);
        ck_assert_msg(!config_scrape_equal(&a->scrape_configs[0], &b->scrape_configs[0]), "variant %zu", i);
        config_free(b);
    }
    config_free(a);
    config_free(a2);
}
END_TEST

START_TEST(test_action_names) {
    ck_assert_str_eq(config_relabel_action_name(CONFIG_RELABEL_REPLACE), "replace");
    ck_assert_str_eq(config_relabel_action_name(CONFIG_RELABEL_UPPERCASE), "uppercase");
    ck_assert_str_eq(config_relabel_action_name(99), "unknown");
}
END_TEST

/* config_to_yaml of full_yaml, every key in Prometheus' order, byte for byte. */
static const char full_yaml_out[] = "global:\n"
                                    "  scrape_interval: 30s\n"
                                    "  scrape_timeout: 20s\n"
                                    "  scrape_protocols:\n"
                                    "  - PrometheusText0.0.4\n"
                                    "  - OpenMetricsText1.0.0\n"
                                    "  evaluation_interval: 45s\n"
                                    "  rule_query_offset: 10s\n"
                                    "  external_labels:\n"
                                    "    region: eu-west\n"
                                    "    env: prod-x\n"
                                    "  query_log_file: queries.log\n"
                                    "  body_size_limit: 10MiB\n"
                                    "  sample_limit: 1000\n"
                                    "  label_limit: 30\n"
                                    "  label_name_length_limit: 200\n"
                                    "  label_value_length_limit: 2048\n"
                                    "  target_limit: 50\n"
                                    "  scrape_native_histograms: false\n"
                                    "alerting:\n"
                                    "  alert_relabel_configs:\n"
                                    "  - separator: ;\n"
                                    "    regex: replica\n"
                                    "    replacement: $1\n"
                                    "    action: labeldrop\n"
                                    "  alertmanagers:\n"
                                    "  - follow_redirects: true\n"
                                    "    enable_http2: true\n"
                                    "    scheme: https\n"
                                    "    path_prefix: /am\n"
                                    "    timeout: 5s\n"
                                    "    api_version: v2\n"
                                    "    static_configs:\n"
                                    "    - targets:\n"
                                    "      - am1:9093\n"
                                    "      - am2:9093\n"
                                    "rule_files:\n"
                                    "- rules/*.yml\n"
                                    "- /etc/kiln/alerts.yml\n"
                                    "scrape_configs:\n"
                                    "- job_name: node\n"
                                    "  honor_labels: true\n"
                                    "  honor_timestamps: false\n"
                                    "  track_timestamps_staleness: true\n"
                                    "  params:\n"
                                    "    module:\n"
                                    "    - http_2xx\n"
                                    "    - tcp\n"
                                    "    target:\n"
                                    "    - example.com\n"
                                    "  scrape_interval: 1m\n"
                                    "  scrape_timeout: 5s\n"
                                    "  scrape_protocols:\n"
                                    "  - OpenMetricsText1.0.0\n"
                                    "  scrape_native_histograms: false\n"
                                    "  enable_compression: true\n"
                                    "  metrics_path: /probe\n"
                                    "  scheme: https\n"
                                    "  body_size_limit: 1GiB\n"
                                    "  sample_limit: 5000\n"
                                    "  target_limit: 7\n"
                                    "  label_limit: 10\n"
                                    "  label_name_length_limit: 100\n"
                                    "  label_value_length_limit: 1000\n"
                                    "  basic_auth:\n"
                                    "    username: admin\n"
                                    "    password: <secret>\n"
                                    "  tls_config:\n"
                                    "    ca_file: ca.pem\n"
                                    "    cert_file: /certs/c.pem\n"
                                    "    key_file: /certs/k.pem\n"
                                    "    server_name: node.local\n"
                                    "    insecure_skip_verify: true\n"
                                    "    min_version: TLS12\n"
                                    "  proxy_url: http://proxy:3128\n"
                                    "  follow_redirects: false\n"
                                    "  enable_http2: false\n"
                                    "  relabel_configs:\n"
                                    "  - source_labels: [__address__]\n"
                                    "    separator: ;\n"
                                    "    regex: (.*)\n"
                                    "    target_label: __param_target\n"
                                    "    replacement: $1\n"
                                    "    action: replace\n"
                                    "  - source_labels: [__param_target]\n"
                                    "    separator: ;\n"
                                    "    regex: (.*)\n"
                                    "    target_label: instance\n"
                                    "    replacement: $1\n"
                                    "    action: replace\n"
                                    "  - separator: ;\n"
                                    "    regex: (.*)\n"
                                    "    target_label: __address__\n"
                                    "    replacement: blackbox:9115\n"
                                    "    action: replace\n"
                                    "  - source_labels: [__address__]\n"
                                    "    separator: ;\n"
                                    "    regex: (.*)\n"
                                    "    modulus: 8\n"
                                    "    target_label: __tmp_hash\n"
                                    "    replacement: $1\n"
                                    "    action: hashmod\n"
                                    "  - source_labels: [__tmp_hash]\n"
                                    "    separator: ;\n"
                                    "    regex: ^1$\n"
                                    "    replacement: $1\n"
                                    "    action: keep\n"
                                    "  - separator: ;\n"
                                    "    regex: __meta_(.+)\n"
                                    "    replacement: meta_$1\n"
                                    "    action: labelmap\n"
                                    "  - separator: ;\n"
                                    "    regex: tmp_.*\n"
                                    "    replacement: $1\n"
                                    "    action: labeldrop\n"
                                    "  - source_labels: [a, b]\n"
                                    "    separator: ;\n"
                                    "    regex: (.*)\n"
                                    "    target_label: c\n"
                                    "    replacement: $1\n"
                                    "    action: keepequal\n"
                                    "  - source_labels: [a, b]\n"
                                    "    separator: \"|\"\n"
                                    "    regex: (.*)\n"
                                    "    target_label: ab\n"
                                    "    replacement: $1\n"
                                    "    action: replace\n"
                                    "  - source_labels: [job]\n"
                                    "    separator: ;\n"
                                    "    regex: (.*)\n"
                                    "    target_label: job_lower\n"
                                    "    replacement: $1\n"
                                    "    action: lowercase\n"
                                    "  metric_relabel_configs:\n"
                                    "  - source_labels: [__name__]\n"
                                    "    separator: ;\n"
                                    "    regex: go_.*\n"
                                    "    replacement: $1\n"
                                    "    action: drop\n"
                                    "  file_sd_configs:\n"
                                    "  - files:\n"
                                    "    - targets/*.json\n"
                                    "    - more.yml\n"
                                    "    refresh_interval: 2m\n"
                                    "  static_configs:\n"
                                    "  - targets:\n"
                                    "    - localhost:9100\n"
                                    "    - db:9100\n"
                                    "    labels:\n"
                                    "      team: infra\n"
                                    "  - targets:\n"
                                    "    - \"[::1]:9100\"\n"
                                    "- job_name: bearer\n"
                                    "  honor_timestamps: true\n"
                                    "  track_timestamps_staleness: false\n"
                                    "  scrape_interval: 30s\n"
                                    "  scrape_timeout: 20s\n"
                                    "  scrape_protocols:\n"
                                    "  - PrometheusText0.0.4\n"
                                    "  - OpenMetricsText1.0.0\n"
                                    "  scrape_native_histograms: false\n"
                                    "  enable_compression: true\n"
                                    "  metrics_path: /metrics\n"
                                    "  scheme: http\n"
                                    "  body_size_limit: 10MiB\n"
                                    "  sample_limit: 1000\n"
                                    "  target_limit: 50\n"
                                    "  label_limit: 30\n"
                                    "  label_name_length_limit: 200\n"
                                    "  label_value_length_limit: 2048\n"
                                    "  authorization:\n"
                                    "    type: Bearer\n"
                                    "    credentials: <secret>\n"
                                    "  follow_redirects: true\n"
                                    "  enable_http2: true\n"
                                    "  static_configs:\n"
                                    "  - targets:\n"
                                    "    - a:1\n"
                                    "- job_name: authz\n"
                                    "  honor_timestamps: true\n"
                                    "  track_timestamps_staleness: false\n"
                                    "  scrape_interval: 30s\n"
                                    "  scrape_timeout: 20s\n"
                                    "  scrape_protocols:\n"
                                    "  - PrometheusText0.0.4\n"
                                    "  - OpenMetricsText1.0.0\n"
                                    "  scrape_native_histograms: false\n"
                                    "  enable_compression: true\n"
                                    "  metrics_path: /m\n"
                                    "  scheme: http\n"
                                    "  body_size_limit: 10MiB\n"
                                    "  sample_limit: 1000\n"
                                    "  target_limit: 50\n"
                                    "  label_limit: 30\n"
                                    "  label_name_length_limit: 200\n"
                                    "  label_value_length_limit: 2048\n"
                                    "  authorization:\n"
                                    "    type: Bearer\n"
                                    "    credentials_file: /run/token\n"
                                    "  follow_redirects: true\n"
                                    "  enable_http2: true\n"
                                    "remote_write:\n"
                                    "- url: https://remote.example/api/v1/write\n"
                                    "  remote_timeout: 10s\n"
                                    "  headers:\n"
                                    "    X-Scope-OrgID: tenant1\n"
                                    "  name: primary\n"
                                    "  write_relabel_configs:\n"
                                    "  - source_labels: [__name__]\n"
                                    "    separator: ;\n"
                                    "    regex: expensive_.*\n"
                                    "    replacement: $1\n"
                                    "    action: drop\n"
                                    "  send_exemplars: true\n"
                                    "  send_native_histograms: false\n"
                                    "  protobuf_message: io.prometheus.write.v2.Request\n"
                                    "  authorization:\n"
                                    "    type: Token\n"
                                    "    credentials: <secret>\n"
                                    "  follow_redirects: true\n"
                                    "  enable_http2: false\n"
                                    "  queue_config:\n"
                                    "    capacity: 2500\n"
                                    "    max_shards: 10\n"
                                    "    min_shards: 2\n"
                                    "    max_samples_per_send: 500\n"
                                    "    batch_send_deadline: 10s\n"
                                    "    min_backoff: 100ms\n"
                                    "    max_backoff: 10s\n"
                                    "    retry_on_http_429: true\n"
                                    "    sample_age_limit: 1h\n"
                                    "  metadata_config:\n"
                                    "    send: false\n"
                                    "    send_interval: 2m\n"
                                    "    max_samples_per_send: 100\n"
                                    "remote_read:\n"
                                    "- url: http://remote.example:9201/read\n"
                                    "  remote_timeout: 20s\n"
                                    "  read_recent: true\n"
                                    "  name: r1\n"
                                    "  required_matchers:\n"
                                    "    job: node\n"
                                    "  filter_external_labels: false\n"
                                    "  follow_redirects: true\n"
                                    "  enable_http2: true\n"
                                    "otlp:\n"
                                    "  translation_strategy: UnderscoreEscapingWithSuffixes\n"
                                    "  label_name_underscore_sanitization: true\n"
                                    "  label_name_preserve_multiple_underscores: true\n";

START_TEST(test_emit_exact) {
    setenv("KILN_TEST_ENV", "prod", 1);
    config *c = load_ok(full_yaml);
    buf y = BUF_INIT;
    ck_assert_int_eq(config_to_yaml(c, &y), 0);
    ck_assert_str_eq(y.data, full_yaml_out);
    buf_free(&y);
    config_free(c);

    /* maps: basic_auth given empty is written {}, with only an empty password
     * it is written with nothing under it; queue_config and metadata_config
     * are written even when all zero; tls_config only when something is set */
    c = load_ok("scrape_configs:\n"
                "  - job_name: a\n"
                "    basic_auth: {}\n"
                "    tls_config: {insecure_skip_verify: false}\n"
                "  - job_name: b\n"
                "    basic_auth: {password: ''}\n"
                "remote_write:\n"
                "  - url: http://w/\n"
                "    queue_config: {capacity: 0, max_shards: 0, min_shards: 0, max_samples_per_send: 0,\n"
                "                   batch_send_deadline: 0s, min_backoff: 0s, max_backoff: 0s}\n"
                "    metadata_config: {send: false, send_interval: 0s, max_samples_per_send: 0}\n");
    ck_assert_int_eq(config_to_yaml(c, &y), 0);
    ck_assert_msg(strstr(y.data, "- job_name: a\n") && strstr(y.data, "  basic_auth: {}\n") &&
                      strstr(y.data, "  basic_auth:\n  follow_redirects: true\n") &&
                      !strstr(y.data, "tls_config") && strstr(y.data, "  queue_config:\n    capacity: 0\n") &&
                      strstr(y.data, "  metadata_config:\n    send: false\n    send_interval: 0s\n"),
                  "%s", y.data);
    config *c2 = load_ok(y.data);
    ck_assert_uint_eq(c2->remote_write[0].queue.capacity, 0);
    ck_assert_int_eq(c2->remote_write[0].metadata.send_interval_ms, 0);
    ck_assert_int_eq(c2->scrape_configs[0].http.has_basic_auth, 1);
    ck_assert(config_scrape_equal(&c->scrape_configs[0], &c2->scrape_configs[0]));
    config_free(c2);
    buf_free(&y);
    config_free(c);

    /* out of memory in the caller's buffer is reported */
    c = load_ok(full_yaml);
    y.oom = 1;
    ck_assert_int_eq(config_to_yaml(c, &y), KILN_ENOMEM);
    buf_free(&y);
    config_free(c);
}
END_TEST

/* Every key of a scrape config counts for a reload. */
START_TEST(test_scrape_equal_every_key) {
    static const char *const variants[] = {
        "honor_timestamps: false",
        "track_timestamps_staleness: true",
        "body_size_limit: 1KB",
        "label_limit: 1",
        "label_name_length_limit: 1",
        "label_value_length_limit: 1",
        "target_limit: 1",
        "tls_config: {server_name: s}",
        "tls_config: {min_version: TLS12}",
        "tls_config: {ca_file: c}",
        "tls_config: {cert_file: c, key_file: k}",
        "proxy_url: http://p:1",
        "follow_redirects: false",
        "enable_http2: false",
        "scrape_native_histograms: true",
        "always_scrape_classic_histograms: true",
        "native_histogram_bucket_limit: 10",
        "native_histogram_min_bucket_factor: 1.1",
        "fallback_scrape_protocol: PrometheusText0.0.4",
        "enable_compression: false",
        "scrape_failure_log_file: /tmp/f.log",
        "basic_auth: {}",
        "basic_auth: {password_file: f}",
        "authorization: {credentials_file: f}",
        "authorization: {type: Token}",
        "bearer_token: t",
        "params: {a: [c]}",
        "file_sd_configs: [{files: [a.json], refresh_interval: 1m}]",
        "metric_relabel_configs: [{regex: 'a', action: drop, separator: ','}]",
        "metric_relabel_configs: [{regex: 'a', action: keep}]",
        "metric_relabel_configs: [{source_labels: [x], regex: 'a', action: drop}]",
        "metric_relabel_configs: [{regex: 'a', action: drop, replacement: z}]",
        "metric_relabel_configs: [{regex: 'a', action: drop, modulus: 2}]",
        "metric_relabel_configs: [{regex: 'a', action: drop, target_label: t}]",
    };
    const char *base = "scrape_configs:\n  - job_name: j\n    params: {a: [b]}\n"
                       "    file_sd_configs: [{files: [a.json]}]\n"
                       "    metric_relabel_configs: [{regex: 'a', action: drop}]\n";
    config *a = load_ok(base);
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        char y[512];
        snprintf(y, sizeof y, "scrape_configs:\n  - job_name: j\n    %s\n%s%s%s", variants[i],
                 strncmp(variants[i], "params", 6) ? "    params: {a: [b]}\n" : "",
                 strncmp(variants[i], "file_sd", 7) ? "    file_sd_configs: [{files: [a.json]}]\n" : "",
                 strncmp(variants[i], "metric_relabel", 14)
                     ? "    metric_relabel_configs: [{regex: 'a', action: drop}]\n"
                     : "");
        config *b = load_ok(y);
        ck_assert_msg(!config_scrape_equal(&a->scrape_configs[0], &b->scrape_configs[0]), "variant %zu", i);
        ck_assert_msg(config_scrape_equal(&b->scrape_configs[0], &b->scrape_configs[0]), "variant %zu", i);
        config_free(b);
    }
    config_free(a);
}
END_TEST

/* The keys kiln parses but does not act on are listed, once each, where they
 * are first set; a config that sets none lists none. */
Suite *make_suite(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_empty_is_defaults);
    tcase_add_test(tc, test_embedded_default);
    tcase_add_test(tc, test_full_example);
    tcase_add_test(tc, test_section_defaults);
    tcase_add_test(tc, test_inheritance);
    tcase_add_test(tc, test_bad_files);
    tcase_add_test(tc, test_relabel_regex_semantics);
    tcase_add_test(tc, test_anchors_and_merge);
    tcase_add_test(tc, test_bounds);
    tcase_add_test(tc, test_load_file);
    tcase_add_test(tc, test_load_targets);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_scrape_equal);
    tcase_add_test(tc, test_action_names);
    tcase_add_test(tc, test_emit_exact);
    tcase_add_test(tc, test_scrape_equal_every_key);
    suite_add_tcase(s, tc);
    return s;
}
