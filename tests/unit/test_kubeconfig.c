/*
 * test_kubeconfig.c - kubeconfig files as kubernetes_sd_configs'
 * kubeconfig_file reads them (config/kubeconfig.c): the current context's
 * cluster and user, inline data decoded, files made the kubeconfig's
 * directory's, and each refusal with what it says.
 */
#include <string.h>

#include "config/config.h"

#define KILN_TEST_MAIN
#include "testutil.h"

static config_kubeconfig *parse(const char *yaml, kiln_err *err) {
    config_kubeconfig *k = NULL;
    memset(err, 0, sizeof *err);
    int rc = config_kubeconfig_parse("kc.yml", "/etc/kube", yaml, strlen(yaml), &k, err);
    ck_assert_int_eq(rc == 0, k != NULL);
    return k;
}

/* "-----BEGIN X-----\n" */
#define PEM_B64 "LS0tLS1CRUdJTiBYLS0tLS0K"

START_TEST(test_current_context) {
    kiln_err err;
    config_kubeconfig *k = parse("apiVersion: v1\n"
                                 "kind: Config\n"
                                 "current-context: right\n"
                                 "clusters:\n"
                                 "- name: a\n"
                                 "  cluster: {server: 'https://a:6443'}\n"
                                 "- name: b\n"
                                 "  cluster:\n"
                                 "    server: 10.0.0.1:6443/k8s/\n"
                                 "    certificate-authority: ca.crt\n"
                                 "    certificate-authority-data: " PEM_B64 "\n"
                                 "    tls-server-name: api.internal\n"
                                 "    proxy-url: http://proxy:3128\n"
                                 "contexts:\n"
                                 "- {name: wrong, context: {cluster: a, user: u}}\n"
                                 "- {name: right, context: {cluster: b, user: u, namespace: x}}\n"
                                 "users:\n"
                                 "- name: u\n"
                                 "  user:\n"
                                 "    client-certificate: certs/me.crt\n"
                                 "    client-key: /abs/me.key\n"
                                 "    tokenFile: tok\n"
                                 "    token: ignored-with-a-file\n"
                                 "    unknown-key: ignored\n",
                                 &err);
    ck_assert_msg(k != NULL, "%s", err.msg);
    ck_assert_str_eq(k->server, "https://10.0.0.1:6443/k8s/"); /* https:// when no scheme */
    ck_assert_str_eq(k->ca_data, "-----BEGIN X-----\n");       /* the data wins over the file */
    ck_assert_uint_eq(k->ca_len, 18);
    ck_assert_ptr_null(k->ca_file);
    ck_assert_str_eq(k->cert_file, "/etc/kube/certs/me.crt");
    ck_assert_str_eq(k->key_file, "/abs/me.key");
    ck_assert_str_eq(k->token_file, "/etc/kube/tok");
    ck_assert_ptr_null(k->token);
    ck_assert_str_eq(k->server_name, "api.internal");
    ck_assert_str_eq(k->proxy_url, "http://proxy:3128");
    ck_assert_int_eq(k->insecure_skip_verify, 0);
    config_kubeconfig_free(k);

    /* a user with a password; no user at all; insecure */
    k = parse("current-context: c\n"
              "clusters: [{name: p, cluster: {server: 'http://h:80', insecure-skip-tls-verify: true}}]\n"
              "users: [{name: b, user: {username: me, password: pw}}]\n"
              "contexts: [{name: c, context: {cluster: p, user: b}}]\n",
              &err);
    ck_assert_msg(k != NULL, "%s", err.msg);
    ck_assert_str_eq(k->server, "http://h:80");
    ck_assert_int_eq(k->insecure_skip_verify, 1);
    ck_assert_str_eq(k->username, "me");
    ck_assert_str_eq(k->password, "pw");
    config_kubeconfig_free(k);
    k = parse("current-context: c\n"
              "clusters: [{name: p, cluster: {server: 'https://h'}}]\n"
              "contexts: [{name: c, context: {cluster: p}}]\n",
              &err);
    ck_assert_msg(k != NULL, "%s", err.msg);
    ck_assert_ptr_null(k->token);
    ck_assert_ptr_null(k->cert_file);
    config_kubeconfig_free(k);
}
END_TEST

START_TEST(test_refused) {
#define CL "clusters: [{name: p, cluster: {server: 'https://h'}}]\n"
#define CTX "contexts: [{name: c, context: {cluster: p, user: u}}]\ncurrent-context: c\n"
    static const char *const cases[][2] = {
        {"- a list\n", "not a kubeconfig"},
        {CL "contexts: [{name: c, context: {cluster: p}}]\n", "no current-context"},
        {CL "current-context: nope\ncontexts: [{name: c, context: {cluster: p}}]\n",
         "context \"nope\" (the current-context) not found"},
        {"clusters: []\ncurrent-context: c\ncontexts: [{name: c, context: {cluster: p}}]\n",
         "cluster \"p\" of the current context not found"},
        {CL CTX "users: []\n", "user \"u\" of the current context not found"},
        {"clusters: [{name: p, cluster: {insecure-skip-tls-verify: true}}]\n" CTX "users: [{name: u}]\n",
         "cluster \"p\" has no server"},
        {"clusters: [{name: p, cluster: {server: 'https://h', insecure-skip-tls-verify: true, "
         "certificate-authority: ca}}]\n" CTX "users: [{name: u}]\n",
         "together with insecure-skip-tls-verify"},
        {CL CTX "users: [{name: u, user: {exec: {command: aws}}}]\n", "kubeconfig kc.yml:4:32: user: exec"},
        {CL CTX "users: [{name: u, user: {exec: {command: aws}}}]\n",
         "exec credential plugins are not supported"},
        {CL CTX "users: [{name: u, user: {auth-provider: {name: gcp}}}]\n",
         "auth-provider credential plugins are not supported"},
        {CL CTX "users: [{name: u, user: {as: admin, token: t}}]\n", "impersonation (as) is not supported"},
        {CL CTX "users: [{name: u, user: {client-certificate: c.crt}}]\n",
         "client-key-data or client-key must be given"},
        {CL CTX "users: [{name: u, user: {client-key-data: " PEM_B64 "}}]\n",
         "client-certificate-data or client-certificate must be given"},
        {CL CTX "users: [{name: u, user: {token: t, username: me}}]\n",
         "username/password or bearer token may be set, but not both"},
        {CL CTX "users: [{name: u, user: {client-certificate-data: 'not base64!', client-key: k}}]\n",
         "client-certificate-data is not valid base64"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kiln_err err;
        config_kubeconfig *k = parse(cases[i][0], &err);
        ck_assert_msg(k == NULL, "accepted %s", cases[i][0]);
        ck_assert_msg(strstr(err.msg, cases[i][1]), "%s: %s", cases[i][0], err.msg);
    }
}
END_TEST

/* A file that is not there: its error, and nothing made. */
START_TEST(test_missing_file) {
    kiln_err err = {0};
    config_kubeconfig *k = NULL;
    ck_assert_int_eq(config_kubeconfig_load("/nonexistent/kubeconfig", &k, &err), KILN_ENOENT);
    ck_assert_ptr_null(k);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/kubeconfig"));
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("kubeconfig");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_current_context);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_missing_file);
    suite_add_tcase(s, tc);
    return s;
}
