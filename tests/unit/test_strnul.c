/*
 * test_strnul.c - unit tests of util/strnul.c: a NUL byte held as C0 80
 * inside kiln (nul_in), written back as a NUL byte (nul_out), sorted as a NUL
 * (str_nulcmp) and written as \u0000 in JSON (json_strn).
 */
#include <string.h>

#include "util/util.h"

#define KILN_TEST_MAIN
#include "testutil.h"

START_TEST(test_nul_in_and_out) {
    static const char raw[] = "x \0 y\0";
    size_t n = sizeof raw - 1; /* "x ", NUL, " y", NUL */
    ck_assert_uint_eq(nul_in_len(raw, n), n + 2);
    char in[32];
    size_t k = nul_in(in, raw, n);
    ck_assert_uint_eq(k, 8);
    ck_assert_int_eq(memcmp(in, "x \xc0\x80 y\xc0\x80", 8), 0);
    ck_assert_uint_eq(nul_out_len(in, k), n);
    char out[32];
    ck_assert_uint_eq(nul_out(out, in, k), n);
    ck_assert_int_eq(memcmp(out, raw, n), 0);
    /* nothing to convert: the same bytes, the same length */
    ck_assert_uint_eq(nul_in_len("abc", 3), 3);
    ck_assert_uint_eq(nul_out_len("abc", 3), 3);
    ck_assert_uint_eq(nul_in_len("", 0), 0);
    /* a lone C0 (not kiln's) and a valid two-byte rune stay as they are */
    ck_assert_uint_eq(nul_out_len("a\xc0", 2), 2);
    ck_assert_uint_eq(nul_out(out, "\xc3\xa9\xc0z", 4), 4);
    ck_assert_int_eq(memcmp(out, "\xc3\xa9\xc0z", 4), 0);
    /* in place (out == s) works for nul_out, which only shrinks */
    memcpy(out, "\xc0\x80\xc0\x80q", 5);
    ck_assert_uint_eq(nul_out(out, out, 5), 3);
    ck_assert_int_eq(memcmp(out, "\0\0q", 3), 0);
}
END_TEST

START_TEST(test_arena_and_buf) {
    arena a;
    arena_init(&a, 0);
    char *s = arena_strndup_nul(&a, "a\0b", 3);
    ck_assert_str_eq(s, "a\xc0\x80"
                        "b");
    ck_assert_str_eq(arena_strndup_nul(&a, "plain", 5), "plain");
    buf b = BUF_INIT;
    ck_assert_int_eq(buf_append_nul_out(&b, s, strlen(s)), 0);
    ck_assert_uint_eq(b.len, 3);
    ck_assert_int_eq(memcmp(b.data, "a\0b", 3), 0);
    buf_reset(&b);
    json_str(&b, s);
    ck_assert_str_eq(b.data, "\"a\\u0000b\"");
    buf_reset(&b);
    json_str(&b, "\xc0\x80<");
    ck_assert_str_eq(b.data, "\"\\u0000\\u003c\"");
    ck_assert_int_eq(buf_error(&b), 0);
    buf_free(&b);
    arena_free(&a);
}
END_TEST

START_TEST(test_order_is_prometheus_order) {
    /* Go compares "x\x00" < "x\x01" < "x " < "xa" < "x\u00e9"; and "x" < "x\x00" */
    const char *v[] = {"x", "x\xc0\x80", "x\xc0\x80\xc0\x80", "x\x01", "x ", "xa", "x\xc3\xa9"};
    size_t n = sizeof v / sizeof v[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            int c = str_nulcmp(v[i], v[j]);
            ck_assert_msg(i < j ? c < 0 : i > j ? c > 0 : c == 0, "%zu vs %zu: %d", i, j, c);
        }
    ck_assert_int_gt(strcmp("x\xc0\x80", "x "), 0); /* what plain strcmp would get wrong */
}
END_TEST

START_TEST(test_utf8_valid_nul) {
    ck_assert(utf8_valid_nul("", 0));
    ck_assert(utf8_valid_nul("\xc0\x80", 2));
    ck_assert(utf8_valid_nul("a\xc0\x80\xc3\xa9\xc0\x80z", 8));
    ck_assert(!utf8_valid("a\xc0\x80", 3)); /* the plain check refuses it */
    ck_assert(!utf8_valid_nul("a\xc0", 2));
    ck_assert(!utf8_valid_nul("\xc0\xaf", 2));
    ck_assert(!utf8_valid_nul("\xc0\x80\xff", 3));
    ck_assert(!utf8_valid_nul("\xff\xc0\x80", 3));
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("strnul");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_nul_in_and_out);
    tcase_add_test(tc, test_arena_and_buf);
    tcase_add_test(tc, test_order_is_prometheus_order);
    tcase_add_test(tc, test_utf8_valid_nul);
    suite_add_tcase(s, tc);
    return s;
}
