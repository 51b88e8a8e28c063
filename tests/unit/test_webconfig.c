/*
 * test_webconfig.c - config/webconfig.c: the web configuration file's
 * model (defaults, TLS settings, headers, users, paths resolved against the
 * file's directory, the keys not acted on) and its errors, each with
 * file:line:col in promtool's words where promtool has them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

#define KILN_TEST_MAIN
#include "testutil.h"

/* A hash of "pass" at cost 4. */
#define HASH "$2b$04$krzehWPSv19FlxprwuheS.J7gVenjQbT25s9ISt5rHR9jqt5b3zEa"

static config_web *load_ok(const char *yaml) {
    config_web *w = NULL;
    kiln_err e = {0};
    int rc = config_web_load_string("web.yml", "/etc/kiln", yaml, strlen(yaml), &w, &e);
    ck_assert_msg(rc == 0, "%s: %s", yaml, e.msg);
    ck_assert_ptr_nonnull(w);
    return w;
}

START_TEST(test_defaults) {
    config_web *w = load_ok("");
    ck_assert_int_eq(w->tls.enabled, 0);
    ck_assert_str_eq(w->tls.min_version, "TLS12");
    ck_assert_str_eq(w->tls.max_version, "TLS13");
    ck_assert_int_eq(w->tls.prefer_server_cipher_suites, 1);
    ck_assert_int_eq(w->http2, 1);
    ck_assert_uint_eq(w->nusers, 0);
    ck_assert_uint_eq(w->nheaders, 0);
    ck_assert_uint_eq(w->nunused_keys, 0);
    config_web_free(w);
    /* empty sections keep the defaults too */
    w = load_ok("tls_server_config:\nhttp_server_config:\nbasic_auth_users:\n");
    ck_assert_int_eq(w->tls.enabled, 0);
    ck_assert_int_eq(w->http2, 1);
    config_web_free(w);
}
END_TEST

START_TEST(test_full) {
    config_web *w =
        load_ok("tls_server_config:\n"
                "  cert_file: server.crt\n"
                "  key_file: /abs/server.key\n"
                "  client_auth_type: RequireAndVerifyClientCert\n"
                "  client_ca_file: ca.crt\n"
                "  min_version: TLS13\n"
                "  max_version: TLS13\n"
                "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]\n"
                "  curve_preferences: [X25519, CurveP256]\n"
                "  prefer_server_cipher_suites: false\n"
                "  client_allowed_sans: [client.example]\n"
                "http_server_config:\n"
                "  http2: false\n"
                "  headers:\n"
                "    X-Frame-Options: deny\n"
                "    Strict-Transport-Security: max-age=31536000\n"
                "basic_auth_users:\n"
                "  alice: " HASH "\n"
                "  bob: " HASH "\n");
    const config_web_tls *t = &w->tls;
    ck_assert_int_eq(t->enabled, 1);
    ck_assert_str_eq(t->cert_file, "/etc/kiln/server.crt");
    ck_assert_str_eq(t->key_file, "/abs/server.key");
    ck_assert_str_eq(t->client_ca_file, "/etc/kiln/ca.crt");
    ck_assert_int_eq(t->client_auth, CONFIG_CLIENT_AUTH_REQUIRE_AND_VERIFY);
    ck_assert_int_eq(config_tls_version(t->min_version), 0x0304);
    ck_assert_uint_eq(t->ncipher_suites, 2);
    ck_assert_str_eq(config_web_cipher_openssl(t->cipher_suites[0]), "ECDHE-RSA-AES128-GCM-SHA256");
    ck_assert_str_eq(config_web_cipher_openssl(t->cipher_suites[1]), "");
    ck_assert_uint_eq(t->ncurve_preferences, 2);
    ck_assert_str_eq(config_web_curve_openssl(t->curve_preferences[1]), "P-256");
    ck_assert_int_eq(t->prefer_server_cipher_suites, 0);
    ck_assert_uint_eq(t->nclient_allowed_sans, 1);
    ck_assert_int_eq(w->http2, 0);
    ck_assert_uint_eq(w->nheaders, 2);
    ck_assert_str_eq(w->headers[1].name, "Strict-Transport-Security");
    ck_assert_uint_eq(w->nusers, 2);
    ck_assert_str_eq(w->users[1].name, "bob");
    ck_assert_str_eq(w->users[1].value, HASH);
    /* http2 is the one key not acted on */
    ck_assert_uint_eq(w->nunused_keys, 1);
    ck_assert_str_eq(w->unused_keys[0].path, "http_server_config.http2");
    ck_assert_int_eq(w->unused_keys[0].line, 13);
    config_web_free(w);
}
END_TEST

START_TEST(test_client_auth_names) {
    /* each name and the policy it sets, in CONFIG_CLIENT_AUTH_* order but for the old name */
    const char *names[] = {"NoClientCert",      "RequestClientCert",       "RequireAnyClientCert",
                           "RequireClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"};
    const int policies[] = {CONFIG_CLIENT_AUTH_NONE,
                            CONFIG_CLIENT_AUTH_REQUEST,
                            CONFIG_CLIENT_AUTH_REQUIRE_ANY,
                            CONFIG_CLIENT_AUTH_REQUIRE_ANY,
                            CONFIG_CLIENT_AUTH_VERIFY_IF_GIVEN,
                            CONFIG_CLIENT_AUTH_REQUIRE_AND_VERIFY};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char y[256];
        snprintf(y, sizeof y, "tls_server_config: {cert_file: c, key_file: k, client_auth_type: %s}\n",
                 names[i]);
        config_web *w = load_ok(y);
        ck_assert_int_eq(w->tls.client_auth, policies[i]);
        ck_assert_ptr_null(w->tls.client_ca_file);
        config_web_free(w);
    }
}
END_TEST

/* Each error with its place; the words after the place are promtool 2.42's
 * where it has them (`promtool check web-config` on the same file). */
static const struct {
    const char *yaml;
    const char *msg;
} bad[] = {
    {"x: 1\n", "web.yml:1:1: unknown key \"x\" in the web configuration"},
    {"[]\n", "web.yml:1:1: expected a map at the top level, got a list"},
    {"tls_server_config: []\n", "web.yml:1:20: expected a map for tls_server_config, got a list"},
    {"tls_server_config:\n  foo: 1\n", "web.yml:2:3: unknown key \"foo\" in tls_server_config"},
    {"tls_server_config:\n  min_version: TLS14\n", "web.yml:2:16: unknown TLS version: TLS14"},
    {"tls_server_config:\n  max_version: 12\n", "web.yml:2:16: unknown TLS version: 12"},
    {"tls_server_config:\n  min_version: \"\"\n", "web.yml:2:16: unknown TLS version: "},
    {"tls_server_config:\n  cipher_suites: [TLS_AES_128_GCM_SHA256, TLS_RSA_WITH_RC4_128_SHA]\n",
     "web.yml:2:43: unknown cipher: TLS_RSA_WITH_RC4_128_SHA"},
    {"tls_server_config:\n  cipher_suites: [TLS_RSA_WITH_3DES_EDE_CBC_SHA]\n",
     "web.yml:2:19: unknown cipher: TLS_RSA_WITH_3DES_EDE_CBC_SHA"},
    {"tls_server_config:\n  curve_preferences: [X25519, CurveP224]\n",
     "web.yml:2:31: unknown curve: CurveP224"},
    {"tls_server_config:\n  curve_preferences: X25519\n",
     "web.yml:2:22: expected a list for curve_preferences, got a string"},
    {"tls_server_config:\n  prefer_server_cipher_suites: maybe\n",
     "web.yml:2:32: expected true or false for \"prefer_server_cipher_suites\", got \"maybe\""},
    {"tls_server_config:\n  client_auth_type: Bogus\n", "web.yml:2:3: missing cert_file"},
    {"tls_server_config:\n  client_ca_file: ca\n", "web.yml:2:3: missing cert_file"},
    {"tls_server_config:\n  cert_file: a\n", "web.yml:2:3: missing key_file"},
    {"tls_server_config:\n  key_file: a\n", "web.yml:2:3: missing cert_file"},
    {"tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Bogus\n",
     "web.yml:4:21: Invalid ClientAuth: Bogus"},
    {"tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
     "web.yml:2:3: Client CA's have been configured without a Client Auth Policy"},
    {"tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n  client_auth_type: "
     "NoClientCert\n",
     "web.yml:2:3: Client CA's have been configured without a Client Auth Policy"},
    {"http_server_config:\n  foo: 1\n", "web.yml:2:3: unknown key \"foo\" in http_server_config"},
    {"http_server_config:\n  http2: 2\n", "web.yml:2:10: expected true or false for \"http2\", got \"2\""},
    {"http_server_config:\n  headers:\n    Server: x\n",
     "web.yml:3:5: HTTP header \"Server\" can not be configured"},
    {"http_server_config:\n  headers:\n    x-frame-options: deny\n",
     "web.yml:3:5: HTTP header \"x-frame-options\" can not be configured"},
    {"http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
     "web.yml:3:22: invalid value for X-Frame-Options. Expected one of: [\"deny\" \"sameorigin\"], but got: "
     "\"allow\""},
    {"http_server_config:\n  headers:\n    X-Frame-Options:\n",
     "web.yml:3:21: invalid value for X-Frame-Options. Expected one of: [\"deny\" \"sameorigin\"], but got: "
     "\"\""},
    {"http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
     "web.yml:3:29: invalid value for X-Content-Type-Options. Expected one of: [\"nosniff\"], but got: "
     "\"sniff\""},
    {"http_server_config:\n  headers:\n    Content-Security-Policy: \"a\\r\\nSet-Cookie: x\"\n",
     "web.yml:3:30: the value of HTTP header Content-Security-Policy holds a control character"},
    {"basic_auth_users: []\n", "web.yml:1:19: expected a map for basic_auth_users, got a list"},
    {"basic_auth_users:\n  a:\n",
     "web.yml:2:5: crypto/bcrypt: hashedSecret too short to be a bcrypted password"},
    {"basic_auth_users:\n  a: x2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n",
     "web.yml:2:6: crypto/bcrypt: bcrypt hashes must start with '$', but hashedSecret started with 'x'"},
    {"basic_auth_users:\n  a: $3y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n",
     "web.yml:2:6: crypto/bcrypt: bcrypt algorithm version '3' requested is newer than current version '2'"},
    {"basic_auth_users:\n  a: $2y$1x$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n",
     "web.yml:2:6: strconv.Atoi: parsing \"1x\": invalid syntax"},
    {"basic_auth_users:\n  a: $2y$03$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n",
     "web.yml:2:6: crypto/bcrypt: cost 3 is outside allowed range (4,31)"},
    {"basic_auth_users:\n  a: $2y$32$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n",
     "web.yml:2:6: crypto/bcrypt: cost 32 is outside allowed range (4,31)"},
    {"basic_auth_users:\n  a: $2y$-5$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n",
     "web.yml:2:6: crypto/bcrypt: cost -5 is outside allowed range (4,31)"},
    /* promtool accepts these two; libcrypt cannot check them */
    {"basic_auth_users:\n  a: $2z$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n",
     "web.yml:2:6: kiln checks bcrypt hashes of the forms $2a$, $2b$ and $2y$ only, got \"$2z$\""},
    {"basic_auth_users:\n  a: $2$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSix\n",
     "web.yml:2:6: kiln checks bcrypt hashes of the forms $2a$, $2b$ and $2y$ only, got \"$2$1\""},
    {"basic_auth_users:\n  a: " HASH "\n  a: " HASH "\n", "web.yml:3:3: duplicate key \"a\""},
    {"tls_server_config: {cert_file: [a]}\n",
     "web.yml:1:32: expected a string for \"cert_file\", got a list"},
};

/* The message of loading yaml, which must fail and leave nothing behind. */
static const char *load_error(const char *yaml, kiln_err *e) {
    config_web *w = (config_web *)1;
    ck_assert_msg(config_web_load_string("web.yml", NULL, yaml, strlen(yaml), &w, e) != 0, "accepted: %s",
                  yaml);
    ck_assert_ptr_null(w);
    return e->msg;
}

START_TEST(test_errors) {
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kiln_err e = {0};
        const char *got = load_error(bad[i].yaml, &e);
        ck_assert_msg(strcmp(got, bad[i].msg) == 0, "case %zu: got\n  %s\nwant\n  %s", i, got, bad[i].msg);
    }
}
END_TEST

START_TEST(test_file) {
    char dir[] = "/tmp/kiln-webconfig-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof path, "%s/web.yml", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("tls_server_config:\n  cert_file: tls/a.crt\n  key_file: a.key\n", f);
    fclose(f);
    config_web *w = NULL;
    kiln_err e = {0};
    ck_assert_int_eq(config_web_load_file(path, &w, &e), 0);
    char want[340];
    snprintf(want, sizeof want, "%s/tls/a.crt", dir);
    ck_assert_str_eq(w->tls.cert_file, want);
    ck_assert_str_eq(w->name, path);
    config_web_free(w);
    unlink(path);
    ck_assert_int_eq(config_web_load_file(path, &w, &e), KILN_ENOENT);
    ck_assert_ptr_null(w);
    ck_assert_ptr_nonnull(strstr(e.msg, "web.yml"));
    rmdir(dir);
}
END_TEST

START_TEST(test_names) {
    ck_assert_int_eq(config_tls_version("TLS10"), 0x0301);
    ck_assert_int_eq(config_tls_version("TLS13"), 0x0304);
    ck_assert_int_eq(config_tls_version("tls12"), 0);
    ck_assert_int_eq(config_tls_version(NULL), 0);
    ck_assert_ptr_null(config_web_cipher_openssl("AES128-SHA"));
    ck_assert_str_eq(config_web_curve_openssl("CurveP521"), "P-521");
    ck_assert_ptr_null(config_web_curve_openssl("P-521"));
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("webconfig");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_full);
    tcase_add_test(tc, test_client_auth_names);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_file);
    tcase_add_test(tc, test_names);
    suite_add_tcase(s, tc);
    return s;
}
