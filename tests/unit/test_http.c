/*
 * test_http.c - the request helpers handlers use: parameters from the query
 * string and urlencoded bodies, headers, and the JSON writer.
 */
#include <string.h>

#include "api/api.h"

#define KILN_TEST_MAIN
#include "testutil.h"

static http_req make_req(arena *a, const char *method, const char *query, const char *body, const char *ct) {
    static http_header hdr[1];
    http_req r;
    memset(&r, 0, sizeof r);
    r.method = method;
    r.arena = a;
    r.query = arena_strndup(a, query, strlen(query));
    r.body = arena_strndup(a, body, strlen(body));
    r.body_len = strlen(body);
    hdr[0].name = "content-type";
    hdr[0].value = (char *)ct;
    r.headers = hdr;
    r.nheaders = ct ? 1 : 0;
    return r;
}

START_TEST(test_params) {
    arena a;
    arena_init(&a, 0);
    http_req r =
        make_req(&a, "POST", "query=sum%28x%29+by+%28a%29&time=1.5&match[]=a",
                 "match%5B%5D=%7Bb%3D%22c%22%7D&step=15&empty=&bare", "application/x-www-form-urlencoded");
    ck_assert_str_eq(http_req_param(&r, "query"), "sum(x) by (a)");
    ck_assert_str_eq(http_req_param(&r, "time"), "1.5");
    ck_assert_str_eq(http_req_param(&r, "step"), "15");
    ck_assert_str_eq(http_req_param(&r, "empty"), "");
    ck_assert_str_eq(http_req_param(&r, "bare"), "");
    ck_assert_ptr_null(http_req_param(&r, "missing"));
    const char *v[4];
    ck_assert_uint_eq(http_req_params(&r, "match[]", v, 4), 2);
    ck_assert_str_eq(v[0], "a");
    ck_assert_str_eq(v[1], "{b=\"c\"}");
    ck_assert_str_eq(http_req_header(&r, "Content-Type"), "application/x-www-form-urlencoded");
    arena_free(&a);

    /* a GET body or a non-form body is not read as parameters; bad escapes stay as they are */
    arena_init(&a, 0);
    r = make_req(&a, "POST", "a=%zz%4", "b=1", "application/json");
    ck_assert_str_eq(http_req_param(&r, "a"), "%zz%4");
    ck_assert_ptr_null(http_req_param(&r, "b"));
    arena_free(&a);
}
END_TEST

START_TEST(test_json_str) {
    buf b = BUF_INIT;
    json_str(&b, "a\"b\\c\n\t<x>&\x01");
    ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\\t\\u003cx\\u003e\\u0026\\u0001\"");
    buf_free(&b);
    http_resp resp;
    memset(&resp, 0, sizeof resp);
    http_resp_json_error(&resp, 400, "bad_data", "invalid parameter \"query\"");
    ck_assert_int_eq(resp.status, 400);
    ck_assert_str_eq(
        resp.body.data,
        "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"invalid parameter \\\"query\\\"\"}");
    http_resp_json_success(&resp, "[]", 2);
    ck_assert_str_eq(resp.body.data, "{\"status\":\"success\",\"data\":[]}");
    buf_free(&resp.body);
    buf_free(&resp.headers);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_params);
    tcase_add_test(tc, test_json_str);
    suite_add_tcase(s, tc);
    return s;
}
