/*
 * test_webauth.c - api/webauth.c: basic authentication against the web
 * configuration's users (the cache of verdicts, bcrypt on the verify path,
 * malformed credentials), the 401 answer, the headers line, and web_new's
 * errors for TLS files that cannot be loaded.
 */
#include <string.h>

#include "api/web.h"

#define KILN_TEST_MAIN
#include "testutil.h"

/* bcrypt (cost 4) of "pass" */
#define HASH "$2b$04$krzehWPSv19FlxprwuheS.J7gVenjQbT25s9ISt5rHR9jqt5b3zEa"

static config_web *load(const char *yaml) {
    config_web *w = NULL;
    kiln_err e = {0};
    ck_assert_msg(config_web_load_string("web.yml", NULL, yaml, strlen(yaml), &w, &e) == 0, "%s", e.msg);
    return w;
}

/* A request carrying only an Authorization header (NULL: none). */
static http_req req_with(http_header *h, const char *auth) {
    http_req r;
    memset(&r, 0, sizeof r);
    h->name = "authorization";
    h->value = (char *)auth;
    r.headers = h;
    r.nheaders = auth ? 1 : 0;
    return r;
}

/* check, and verify when check cannot tell: the verdict a request gets. */
static int verdict(web *a, const char *auth, int *checked) {
    http_header h;
    http_req r = req_with(&h, auth);
    *checked = web_auth_check(a, &r);
    return *checked == WEB_AUTH_VERIFY ? web_auth_verify(a, &r) : *checked;
}

START_TEST(test_users) {
    config_web *w = load("basic_auth_users:\n  alice: " HASH "\n  bob: " HASH "\n");
    web *a = NULL;
    kiln_err e = {0};
    ck_assert_int_eq(web_new(w, &a, &e), 0);
    ck_assert_ptr_null(a->tls);
    int checked;
    /* "alice:pass": bcrypt the first time, the cache after */
    ck_assert_int_eq(verdict(a, "Basic YWxpY2U6cGFzcw==", &checked), WEB_AUTH_OK);
    ck_assert_int_eq(checked, WEB_AUTH_VERIFY);
    ck_assert_int_eq(verdict(a, "Basic YWxpY2U6cGFzcw==", &checked), WEB_AUTH_OK);
    ck_assert_int_eq(checked, WEB_AUTH_OK);
    /* the scheme's case does not matter, as in Go */
    ck_assert_int_eq(verdict(a, "basic YWxpY2U6cGFzcw==", &checked), WEB_AUTH_OK);
    /* "alice:pasS": wrong, and remembered as wrong */
    ck_assert_int_eq(verdict(a, "Basic YWxpY2U6cGFzUw==", &checked), WEB_AUTH_DENIED);
    ck_assert_int_eq(checked, WEB_AUTH_VERIFY);
    ck_assert_int_eq(verdict(a, "Basic YWxpY2U6cGFzUw==", &checked), WEB_AUTH_DENIED);
    ck_assert_int_eq(checked, WEB_AUTH_DENIED);
    /* "bob:pass" is bob's own entry; "eve:pass" names no user although the hash would match */
    ck_assert_int_eq(verdict(a, "Basic Ym9iOnBhc3M=", &checked), WEB_AUTH_OK);
    ck_assert_int_eq(verdict(a, "Basic ZXZlOnBhc3M=", &checked), WEB_AUTH_DENIED);
    /* missing or malformed credentials are refused without bcrypt */
    static const char *const bad[] = {NULL,
                                      "",
                                      "Bearer YWxpY2U6cGFzcw==",
                                      "Basic",
                                      "Basic !!!!",
                                      "Basic YWxpY2U=" /* no colon */,
                                      "Basic YWxpY2U6cGFzcw"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(verdict(a, bad[i], &checked), WEB_AUTH_DENIED);
        ck_assert_msg(checked == WEB_AUTH_DENIED, "case %zu", i);
    }
    web_free(a);
    config_web_free(w);
}
END_TEST

START_TEST(test_no_users_and_headers) {
    config_web *w = load("http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
                         "    Content-Security-Policy: \"\"\n");
    web *a = NULL;
    kiln_err e = {0};
    ck_assert_int_eq(web_new(w, &a, &e), 0);
    int checked;
    ck_assert_int_eq(verdict(a, NULL, &checked), WEB_AUTH_OK);
    /* an empty value sets nothing */
    ck_assert_str_eq(a->headers.data, "X-Frame-Options: deny\r\n");
    web_free(a);
    config_web_free(w);
    ck_assert_int_eq(web_auth_check(NULL, NULL), WEB_AUTH_OK);
}
END_TEST

START_TEST(test_deny) {
    http_resp r;
    memset(&r, 0, sizeof r);
    web_auth_deny(&r);
    ck_assert_int_eq(r.status, 401);
    ck_assert_str_eq(r.body.data, "Unauthorized\n");
    ck_assert_ptr_nonnull(strstr(r.headers.data, "WWW-Authenticate: Basic\r\n"));
    buf_free(&r.body);
    buf_free(&r.headers);
}
END_TEST

START_TEST(test_tls_files) {
    config_web *w =
        load("tls_server_config:\n  cert_file: /nonexistent/s.crt\n  key_file: /nonexistent/s.key\n");
    web *a = (web *)1;
    kiln_err e = {0};
    ck_assert_int_ne(web_new(w, &a, &e), 0);
    ck_assert_ptr_null(a);
    ck_assert_msg(strncmp(e.msg, "web.yml: failed to load X509KeyPair: cert_file /nonexistent/s.crt", 65) ==
                      0,
                  "%s", e.msg);
    config_web_free(w);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("webauth");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_users);
    tcase_add_test(tc, test_no_users_and_headers);
    tcase_add_test(tc, test_deny);
    tcase_add_test(tc, test_tls_files);
    suite_add_tcase(s, tc);
    return s;
}
