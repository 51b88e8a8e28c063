/*
 * test_labels.c - unit tests for storage/labels.c: label sets (hash, order,
 * lookup, sort, check, format, copy), the builder, and matchers.  Regex
 * matchers are compared against PCRE2 used directly with Prometheus'
 * anchoring, so every fast path is checked against the real engine; a
 * regex over PCRE2's limits is an error, and a guard stops long runs of
 * matches at a deadline or cancellation.
 */
#include "storage/storage.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <xxhash.h>

#define KILN_TEST_MAIN
#include "testutil.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- hash --------------------------------------------------------------- */

START_TEST(test_hash) {
    label a[] = {{"__name__", "up"}, {"job", "x"}};
    label b[] = {{"__name__", "up"}, {"job", "x"}};
    label c[] = {{"__name__", "up"}, {"job", "y"}};
    label d[] = {{"__name__", "upjob"}, {"x", ""}}; /* same bytes without separators */
    label e[] = {{"__name__", "u"}, {"pjob", "x"}};
    /* computed once with XXH3_64bits over "__name__\xffup\xffjob\xffx\xff";
     * series hashes must not change between releases */
    ck_assert_uint_eq(labels_hash(a, 2), 0xb1e966065e3c83c8ULL);
    ck_assert_uint_eq(labels_hash(NULL, 0), 0x2d06800538d394c2ULL);
    ck_assert_uint_eq(labels_hash(a, 2), labels_hash(b, 2));
    ck_assert_uint_ne(labels_hash(a, 2), labels_hash(c, 2));
    ck_assert_uint_ne(labels_hash(a, 2), labels_hash(d, 2));
    ck_assert_uint_ne(labels_hash(a, 2), labels_hash(e, 2));
    ck_assert_uint_ne(labels_hash(a, 2), labels_hash(a, 1));

    /* sets larger than the stack buffer take the streaming path: same hash
     * as one call over the concatenation */
    char *big = malloc(3000);
    ck_assert_ptr_nonnull(big);
    memset(big, 'v', 2999);
    big[2999] = 0;
    label l[] = {{"a", "1"}, {"b", big}, {"c", "3"}};
    buf s = BUF_INIT;
    for (size_t i = 0; i < N(l); i++) {
        buf_puts(&s, l[i].name);
        buf_putc(&s, (char)0xff);
        buf_puts(&s, l[i].value);
        buf_putc(&s, (char)0xff);
    }
    ck_assert_uint_eq(labels_hash(l, 3), XXH3_64bits(s.data, s.len));
    /* a set that just fits the buffer, and one byte more */
    big[1021] = 0; /* "b" 0xff value 0xff == 1024 bytes */
    label f[] = {{"b", big}};
    buf_reset(&s);
    buf_puts(&s, "b\xff");
    buf_puts(&s, big);
    buf_putc(&s, (char)0xff);
    ck_assert_uint_eq(s.len, 1024);
    ck_assert_uint_eq(labels_hash(f, 1), XXH3_64bits(s.data, s.len));
    big[1021] = 'v';
    big[1022] = 0;
    buf_reset(&s);
    buf_puts(&s, "b\xff");
    buf_puts(&s, big);
    buf_putc(&s, (char)0xff);
    ck_assert_uint_eq(labels_hash(f, 1), XXH3_64bits(s.data, s.len));
    buf_free(&s);
    free(big);
}
END_TEST

/* ---- ordering and lookup ------------------------------------------------ */

START_TEST(test_cmp) {
    label a[] = {{"a", "1"}, {"b", "2"}};
    label a2[] = {{"a", "1"}, {"b", "2"}};
    label bval[] = {{"a", "1"}, {"b", "3"}};
    label bname[] = {{"a", "1"}, {"c", "0"}};
    label shorter[] = {{"a", "1"}};
    label longer[] = {{"a", "1"}, {"b", "2"}, {"c", "3"}};
    label aa[] = {{"a", "2"}}; /* value beats the rest */
    label z[] = {{"__name__", "zzz"}};
    ck_assert_int_eq(labels_cmp(a, 2, a2, 2), 0);
    ck_assert_int_eq(labels_cmp(NULL, 0, NULL, 0), 0);
    ck_assert_int_lt(labels_cmp(a, 2, bval, 2), 0);
    ck_assert_int_gt(labels_cmp(bval, 2, a, 2), 0);
    ck_assert_int_lt(labels_cmp(a, 2, bname, 2), 0);
    ck_assert_int_lt(labels_cmp(shorter, 1, a, 2), 0);
    ck_assert_int_gt(labels_cmp(a, 2, shorter, 1), 0);
    ck_assert_int_lt(labels_cmp(a, 2, longer, 3), 0);
    ck_assert_int_gt(labels_cmp(aa, 1, longer, 3), 0);
    ck_assert_int_lt(labels_cmp(NULL, 0, shorter, 1), 0);
    ck_assert_int_lt(labels_cmp(z, 1, a, 2), 0); /* "__name__" < "a" */
}
END_TEST

START_TEST(test_get) {
    static const char *names[] = {"__name__", "a", "b", "c", "d", "e", "f",
                                  "g",        "h", "i", "j", "k", "l", "m"};
    label ls[N(names)];
    for (size_t i = 0; i < N(names); i++)
        ls[i] = (label){names[i], names[i]};
    /* every size from 0 to 14 covers both the linear and the binary search */
    for (size_t n = 0; n <= N(names); n++) {
        for (size_t i = 0; i < N(names); i++) {
            const char *v = labels_get(ls, n, names[i]);
            if (i < n)
                ck_assert_ptr_eq(v, names[i]);
            else
                ck_assert_ptr_null(v);
        }
        ck_assert_ptr_null(labels_get(ls, n, "zz"));
        ck_assert_ptr_null(labels_get(ls, n, "0"));
        ck_assert_ptr_null(labels_get(ls, n, "bb"));
        ck_assert_ptr_null(labels_get(ls, n, ""));
    }
}
END_TEST

static void check_sorted_stable(const label *ls, size_t n) {
    for (size_t i = 1; i < n; i++) {
        int c = strcmp(ls[i - 1].name, ls[i].name);
        ck_assert_int_le(c, 0);
        /* values hold the original position: equal names keep their order */
        if (c == 0)
            ck_assert_int_lt(atoi(ls[i - 1].value), atoi(ls[i].value));
    }
}

START_TEST(test_sort) {
    static const char *names[] = {"job", "a", "__name__", "z", "instance", "b", "a", "job", "m", "c"};
    static char vals[200][24];
    label ls[200];
    size_t sizes[] = {0, 1, 2, 5, 16, 17, 33, 100, 200};
    unsigned seed = 12345;
    for (size_t si = 0; si < N(sizes); si++) {
        size_t n = sizes[si];
        for (int round = 0; round < 5; round++) {
            for (size_t i = 0; i < n; i++) {
                seed = seed * 1103515245u + 12345u;
                snprintf(vals[i], sizeof vals[i], "%zu", i);
                ls[i] = (label){names[(seed >> 16) % N(names)], vals[i]};
            }
            labels_sort(ls, n);
            check_sorted_stable(ls, n);
        }
    }
    /* reverse order and already sorted, on the merge path */
    char nm[40][8];
    for (size_t i = 0; i < 40; i++) {
        snprintf(nm[i], sizeof nm[i], "n%02zu", 39 - i);
        snprintf(vals[i], sizeof vals[i], "%zu", i);
        ls[i] = (label){nm[i], vals[i]};
    }
    labels_sort(ls, 40);
    check_sorted_stable(ls, 40);
    ck_assert_str_eq(ls[0].name, "n00");
    ck_assert_str_eq(ls[39].name, "n39");
    labels_sort(ls, 40);
    ck_assert_str_eq(ls[0].name, "n00");
    ck_assert_str_eq(ls[39].name, "n39");
}
END_TEST

/* ---- check ---------------------------------------------------------------- */

START_TEST(test_check) {
    static const struct {
        label ls[3];
        size_t n;
        const char *msg; /* NULL: valid */
    } cases[] = {
        {{{0}}, 0, NULL},
        {{{"__name__", "up"}, {"job", "x"}}, 2, NULL},
        {{{"a", "é"}}, 1, NULL},
        {{{"", "x"}}, 1, "empty label name"},
        {{{"1a", "x"}}, 1, "invalid label name \"1a\""},
        {{{"a-b", "x"}}, 1, "invalid label name \"a-b\""},
        {{{"a\"b", "x"}}, 1, "invalid label name \"a\\\"b\""},
        {{{"a\nb", "x"}}, 1, "invalid label name \"a\\x0ab\""},
        {{{"job", "a"}, {"job", "b"}}, 2, "duplicate label name \"job\""},
        {{{"b", "1"}, {"a", "2"}}, 2, "labels not sorted: \"b\" before \"a\""},
        {{{"a", "1"}, {"c", "2"}, {"b", "3"}}, 3, "labels not sorted: \"c\" before \"b\""},
        {{{"x", ""}}, 1, "empty value for label \"x\""},
        {{{"a", "1"}, {"x", ""}}, 2, "empty value for label \"x\""},
        {{{"x", "\xff"}}, 1, "invalid UTF-8 in the value of label \"x\""},
        {{{"x", "a\xed\xa0\x80"}}, 1, "invalid UTF-8 in the value of label \"x\""},
    };
    for (size_t i = 0; i < N(cases); i++) {
        kiln_err err = {0};
        int rc = labels_check(cases[i].ls, cases[i].n, &err);
        if (!cases[i].msg) {
            ck_assert_msg(rc == 0, "case %zu: %s", i, err.msg);
            continue;
        }
        ck_assert_msg(rc == KILN_EINVAL, "case %zu: rc %d", i, rc);
        ck_assert_str_eq(err.msg, cases[i].msg);
        ck_assert_int_eq(labels_check(cases[i].ls, cases[i].n, NULL), KILN_EINVAL);
    }
}
END_TEST

START_TEST(test_check_bounds) {
    kiln_err err = {0};
    static label ls[LABELS_MAX_COUNT + 1];
    static char names[LABELS_MAX_COUNT + 1][8];
    for (size_t i = 0; i < N(ls); i++) {
        snprintf(names[i], sizeof names[i], "l%04zu", i);
        ls[i] = (label){names[i], "v"};
    }
    ck_assert_int_eq(labels_check(ls, LABELS_MAX_COUNT, &err), 0);
    ck_assert_int_eq(labels_check(ls, LABELS_MAX_COUNT + 1, &err), KILN_EINVAL);
    ck_assert_str_eq(err.msg, "too many labels: 257 (at most 256)");

    char *name = malloc(LABEL_NAME_MAX_LEN + 2);
    char *value = malloc(LABEL_VALUE_MAX_LEN + 2);
    ck_assert(name && value);
    memset(name, 'n', LABEL_NAME_MAX_LEN + 1);
    name[LABEL_NAME_MAX_LEN] = 0;
    memset(value, 'v', LABEL_VALUE_MAX_LEN + 1);
    value[LABEL_VALUE_MAX_LEN] = 0;
    label one[] = {{name, value}};
    ck_assert_int_eq(labels_check(one, 1, &err), 0); /* both at their bound */

    name[LABEL_NAME_MAX_LEN] = 'n';
    name[LABEL_NAME_MAX_LEN + 1] = 0;
    ck_assert_int_eq(labels_check(one, 1, &err), KILN_EINVAL);
    ck_assert_msg(strncmp(err.msg, "label name \"nnnn", 16) == 0, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "...\" is longer than 1024 bytes") != NULL, "%s", err.msg);

    name[LABEL_NAME_MAX_LEN] = 0;
    value[LABEL_VALUE_MAX_LEN] = 'v';
    value[LABEL_VALUE_MAX_LEN + 1] = 0;
    label x[] = {{"x", value}};
    ck_assert_int_eq(labels_check(x, 1, &err), KILN_EINVAL);
    ck_assert_str_eq(err.msg, "the value of label \"x\" is longer than 65536 bytes");
    free(name);
    free(value);
}
END_TEST

/* ---- format and copy ------------------------------------------------------ */

START_TEST(test_format) {
    static const struct {
        label ls[3];
        size_t n;
        const char *want;
    } cases[] = {
        {{{0}}, 0, "{}"},
        {{{"__name__", "up"}, {"job", "x"}}, 2, "{__name__=\"up\", job=\"x\"}"},
        {{{"a", "q\"b\\s"}}, 1, "{a=\"q\\\"b\\\\s\"}"},
        {{{"a", "l1\nl2\tt\rr"}}, 1, "{a=\"l1\\nl2\\tt\\rr\"}"},
        {{{"a", "\a\b\f\v"}}, 1, "{a=\"\\a\\b\\f\\v\"}"},
        {{{"a", "\x01\x1f\x7f"}}, 1, "{a=\"\\x01\\x1f\\x7f\"}"},
        {{{"a", "é ü 日本 \xf0\x9f\x98\x80"}}, 1, "{a=\"é ü 日本 \xf0\x9f\x98\x80\"}"},
        {{{"a", "x\xc2\xa0y"}}, 1, "{a=\"x\\u00a0y\"}"},         /* no-break space */
        {{{"a", "\xe2\x80\x8b"}}, 1, "{a=\"\\u200b\"}"},         /* zero-width space */
        {{{"a", "\xc2\x85"}}, 1, "{a=\"\\u0085\"}"},             /* C1 control */
        {{{"a", "\xf3\xa0\x80\x81"}}, 1, "{a=\"\\U000e0001\"}"}, /* language tag */
        {{{"a", "\xff"
                "a\xc3"}},
         1,
         "{a=\"\\xffa\\xc3\"}"},                                       /* invalid UTF-8 */
        {{{"a-b", "x"}, {"ok", "y"}}, 2, "{\"a-b\"=\"x\", ok=\"y\"}"}, /* names quoted when not legacy */
    };
    for (size_t i = 0; i < N(cases); i++) {
        buf b = BUF_INIT;
        ck_assert_int_eq(labels_format(&b, cases[i].ls, cases[i].n), 0);
        ck_assert_str_eq(b.data, cases[i].want);
        buf_free(&b);
    }
    /* appends */
    buf b = BUF_INIT;
    buf_puts(&b, "series ");
    label one[] = {{"a", "b"}};
    ck_assert_int_eq(labels_format(&b, one, 1), 0);
    ck_assert_str_eq(b.data, "series {a=\"b\"}");
    buf_free(&b);
}
END_TEST

START_TEST(test_copy) {
    char n1[] = "job", v1[] = "api", n2[] = "zone", v2[] = "eu";
    label src[] = {{n1, v1}, {n2, v2}};
    arena a;
    arena_init(&a, 0);
    label *c = labels_copy(&a, src, 2);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_ne(c, src);
    ck_assert_ptr_ne(c[0].name, n1);
    ck_assert_ptr_ne(c[1].value, v2);
    n1[0] = 'X';
    v1[0] = 'X';
    v2[0] = 'X';
    ck_assert_str_eq(c[0].name, "job");
    ck_assert_str_eq(c[0].value, "api");
    ck_assert_str_eq(c[1].name, "zone");
    ck_assert_str_eq(c[1].value, "eu");
    ck_assert_ptr_nonnull(labels_copy(&a, NULL, 0));
    arena_free(&a);

    /* a limited arena that cannot hold the set: NULL, no crash */
    arena small;
    arena_init(&small, 8);
    ck_assert_ptr_null(labels_copy(&small, src, 2));
    arena_free(&small);
}
END_TEST

/* ---- builder -------------------------------------------------------------- */

static void want_labels(labels_builder *b, const char *want) {
    size_t n = 99;
    const label *ls = lb_labels(b, &n);
    buf out = BUF_INIT;
    ck_assert_int_eq(labels_format(&out, ls, n), 0);
    ck_assert_str_eq(out.data, want);
    buf_free(&out);
}

START_TEST(test_builder) {
    labels_builder b;
    lb_init(&b);
    want_labels(&b, "{}");
    ck_assert_int_eq(lb_set(&b, "job", "api"), 0);
    ck_assert_int_eq(lb_set(&b, "__name__", "up"), 0);
    ck_assert_int_eq(lb_set(&b, "instance", "h:1"), 0);
    want_labels(&b, "{__name__=\"up\", instance=\"h:1\", job=\"api\"}");
    ck_assert_int_eq(lb_set(&b, "job", "db"), 0); /* replace */
    want_labels(&b, "{__name__=\"up\", instance=\"h:1\", job=\"db\"}");
    ck_assert_int_eq(lb_set(&b, "instance", ""), 0); /* empty deletes */
    want_labels(&b, "{__name__=\"up\", job=\"db\"}");
    ck_assert_int_eq(lb_set(&b, "missing", ""), 0);
    lb_del(&b, "__name__");
    lb_del(&b, "nothing");
    want_labels(&b, "{job=\"db\"}");
    lb_reset(&b);
    want_labels(&b, "{}");

    label base[] = {{"a", "1"}, {"b", "2"}, {"c", "3"}};
    ck_assert_int_eq(lb_from(&b, base, 3), 0);
    ck_assert_int_eq(lb_set(&b, "b", "two"), 0);
    ck_assert_int_eq(lb_set(&b, "_0", "zero"), 0);
    lb_del(&b, "c");
    want_labels(&b, "{_0=\"zero\", a=\"1\", b=\"two\"}");
    ck_assert_str_eq(base[1].value, "2"); /* the source array is untouched */

    /* lb_from drops empty values; lb_from of our own labels keeps them */
    label holes[] = {{"a", "1"}, {"b", ""}, {"c", "3"}};
    ck_assert_int_eq(lb_from(&b, holes, 3), 0);
    want_labels(&b, "{a=\"1\", c=\"3\"}");
    size_t n = 0;
    const label *own = lb_labels(&b, &n);
    ck_assert_int_eq(lb_from(&b, own, n), 0);
    want_labels(&b, "{a=\"1\", c=\"3\"}");

    /* growth past the first allocation */
    static char names[100][16];
    lb_reset(&b);
    for (int i = 99; i >= 0; i--) {
        snprintf(names[i], sizeof names[i], "n%02d", i);
        ck_assert_int_eq(lb_set(&b, names[i], "v"), 0);
    }
    const label *ls = lb_labels(&b, &n);
    ck_assert_uint_eq(n, 100);
    ck_assert_int_eq(labels_check(ls, n, NULL), 0);
    ck_assert_str_eq(ls[0].name, "n00");
    lb_free(&b);
    lb_free(&b); /* idempotent */
}
END_TEST

/* ---- matchers ------------------------------------------------------------- */

START_TEST(test_match_type_str) {
    ck_assert_str_eq(match_type_str(MATCH_EQ), "=");
    ck_assert_str_eq(match_type_str(MATCH_NEQ), "!=");
    ck_assert_str_eq(match_type_str(MATCH_RE), "=~");
    ck_assert_str_eq(match_type_str(MATCH_NRE), "!~");
    ck_assert_str_eq(match_type_str((match_type)9), "?");
}
END_TEST

START_TEST(test_matchers) {
    static const struct {
        match_type t;
        const char *pattern, *value;
        int want;
    } cases[] = {
        {MATCH_EQ, "a", "a", 1},
        {MATCH_EQ, "a", "b", 0},
        {MATCH_EQ, "a", "", 0},
        {MATCH_EQ, "", "", 1},
        {MATCH_NEQ, "a", "a", 0},
        {MATCH_NEQ, "a", "b", 1},
        {MATCH_NEQ, "a", "", 1},
        {MATCH_RE, "foo", "foo", 1},
        {MATCH_RE, "foo", "foobar", 0}, /* anchored at the end */
        {MATCH_RE, "foo", "xfoo", 0},   /* and at the start */
        {MATCH_RE, "foo", "foo\n", 0},  /* $ is the end of text, as in Go */
        {MATCH_RE, "fo+", "foo\n", 0},
        {MATCH_RE, "fo+$", "foo\n", 0},
        {MATCH_RE, "a.b", "a\nb", 1}, /* . matches newline */
        {MATCH_RE, "a.b",
         "a\xc3\xa9"
         "b",
         1}, /* . is one character, not one byte */
        {MATCH_RE, ".*", "", 1},
        {MATCH_RE, ".*", "\n\n", 1},
        {MATCH_RE, ".+", "", 0},
        {MATCH_RE, ".+", "\n", 1},
        {MATCH_RE, "", "", 1},
        {MATCH_RE, "", "a", 0},
        {MATCH_RE, "foo|", "", 1},
        {MATCH_RE, "foo|", "foo", 1},
        {MATCH_RE, "a|ab", "ab", 1}, /* the later alternative when the first does not reach the end */
        {MATCH_RE, "(?i)foo", "FoO", 1},
        {MATCH_RE, "[0-9]+", "123", 1},
        {MATCH_RE, "[0-9]+", "12a", 0},
        {MATCH_RE, "(a)(b)(c)(d)", "abcd", 1}, /* more groups than our match data holds */
        {MATCH_RE, "é.*", "éa", 1},
        {MATCH_RE, "^foo$", "foo", 1},
        {MATCH_NRE, "foo", "foo", 0},
        {MATCH_NRE, "foo", "foobar", 1},
        {MATCH_NRE, "a|b", "b", 0},
        {MATCH_NRE, "a|b", "c", 1},
        {MATCH_NRE, ".*", "x", 0},
        {MATCH_NRE, ".+", "", 1},
        {MATCH_NRE, "[0-9]+", "12a", 1},
        {MATCH_NRE, "[0-9]+", "12", 0},
    };
    for (size_t i = 0; i < N(cases); i++) {
        matcher m;
        kiln_err err = {0};
        ck_assert_msg(matcher_init(&m, cases[i].t, "l", cases[i].pattern, &err) == 0, "case %zu: %s", i,
                      err.msg);
        ck_assert_str_eq(m.name, "l");
        ck_assert_str_eq(m.value, cases[i].pattern);
        ck_assert_int_eq(m.type, cases[i].t);
        ck_assert_msg(matcher_matches(&m, cases[i].value) == cases[i].want, "case %zu: %s%s\"%s\" on \"%s\"",
                      i, m.name, match_type_str(m.type), cases[i].pattern, cases[i].value);
        matcher_free(&m);
        matcher_free(&m); /* safe twice */
    }
    /* NULL value is the missing label */
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_NEQ, "l", "x", NULL), 0);
    ck_assert(matcher_matches(&m, NULL));
    matcher_free(&m);
}
END_TEST

START_TEST(test_matches_empty) {
    static const struct {
        match_type t;
        const char *pattern;
        int want;
    } cases[] = {
        {MATCH_EQ, "", 1},    {MATCH_EQ, "a", 0},    {MATCH_NEQ, "", 0},   {MATCH_NEQ, "a", 1},
        {MATCH_RE, ".*", 1},  {MATCH_RE, ".+", 0},   {MATCH_RE, "a|", 1},  {MATCH_RE, "a|b", 0},
        {MATCH_RE, "a*", 1},  {MATCH_RE, "a+", 0},   {MATCH_RE, "", 1},    {MATCH_RE, "a.*", 0},
        {MATCH_NRE, ".+", 1}, {MATCH_NRE, "", 0},    {MATCH_NRE, ".*", 0}, {MATCH_NRE, "a", 1},
        {MATCH_NRE, "a*", 0}, {MATCH_RE, "(a|)", 1},
    };
    for (size_t i = 0; i < N(cases); i++) {
        matcher m;
        ck_assert_int_eq(matcher_init(&m, cases[i].t, "l", cases[i].pattern, NULL), 0);
        ck_assert_msg(matcher_matches_empty(&m) == cases[i].want, "case %zu: %s\"%s\"", i,
                      match_type_str(cases[i].t), cases[i].pattern);
        matcher_free(&m);
    }
}
END_TEST

#define BAD_UTF8_PREFIX "invalid regular expression \"\\xff\": "

START_TEST(test_matcher_errors) {
    static const struct {
        const char *pattern, *msg;
    } cases[] = {
        {"a(", "invalid regular expression \"a(\": missing closing parenthesis at offset 2"},
        /* would close the "^(?s:" group if the pattern were pasted into it */
        {"a)(", "invalid regular expression \"a)(\": unmatched closing parenthesis at offset 1"},
        {"*", "invalid regular expression \"*\": quantifier does not follow a repeatable item at offset 0"},
        {"[a", "invalid regular expression \"[a\": missing terminating ] for character class at offset 2"},
        {"a\\", "invalid regular expression \"a\\\\\": \\ at end of pattern at offset 2"},
        {"\xff", NULL}, /* invalid UTF-8: some PCRE2 message */
    };
    for (size_t i = 0; i < N(cases); i++) {
        for (match_type t = MATCH_RE; t <= MATCH_NRE; t++) {
            matcher m;
            kiln_err err = {0};
            ck_assert_int_eq(matcher_init(&m, t, "l", cases[i].pattern, &err), KILN_EINVAL);
            if (cases[i].msg)
                ck_assert_str_eq(err.msg, cases[i].msg);
            else
                ck_assert_msg(strncmp(err.msg, BAD_UTF8_PREFIX, strlen(BAD_UTF8_PREFIX)) == 0, "%s", err.msg);
            ck_assert_ptr_null(m.name);
            ck_assert_ptr_null(m.value);
            ck_assert_ptr_null(m.re);
            matcher_free(&m);
        }
        /* the same text is fine for an equality matcher */
        matcher m;
        ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "l", cases[i].pattern, NULL), 0);
        ck_assert(matcher_matches(&m, cases[i].pattern));
        matcher_free(&m);
    }
    matcher m;
    kiln_err err = {0};
    ck_assert_int_eq(matcher_init(&m, (match_type)7, "l", "x", &err), KILN_EINVAL);
    ck_assert_str_eq(err.msg, "unknown match type 7");
    matcher_free(&m);
}
END_TEST

/* PCRE2 with Prometheus' anchoring (and Go's end-of-text `$`), as the
 * reference the matcher must agree with. */
static pcre2_code *reference_re(const char *pattern) {
    buf p = BUF_INIT;
    buf_printf(&p, "^(?s:%s)\\z", pattern);
    int ec = 0;
    PCRE2_SIZE eo = 0;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)p.data, p.len, PCRE2_UTF, &ec, &eo, NULL);
    buf_free(&p);
    ck_assert_msg(c != NULL, "reference for \"%s\" does not compile", pattern);
    return c;
}

static int reference_match(pcre2_code *c, const char *v) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(c, NULL);
    ck_assert_ptr_nonnull(md);
    int rc = pcre2_match(c, (PCRE2_SPTR)v, strlen(v), 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

/* The last patterns are issue 22's selector shapes (a literal prefix, a set
 * of literals, a prefix alternation left to PCRE2). */
START_TEST(test_fast_paths_agree) {
    static const char *patterns[] = {
        "a|b",        "a\\.b",   "(a|b)",    "(?:a|b)",   "a.*",
        ".*a",        ".*a.*",   "",         "foo|",      "|",
        ".*",         ".+",      "(.*)",     "(.+)",      "a\\|b",
        "\\(a\\)",    "a.*|b",   "a.*b",     "(a)|(b)",   "é|ü",
        "a\\-b",      ".*.*",    "()",       "x\\*",      "a\\.*",
        ".*\\.",      "a|b|ab",  "(a|)",     "a..*",      "foo.*bar",
        ".*foo.*bar", "\\.*",    "(?:)",     "a.+",       "a\\\\b",
        "\\d",        "(?i)a",   "[ab]",     "a{2}",      "a}",
        "#a",         ".*é.*",   "\\ a",     "\\Qa.b\\E", "api-.*",
        "host-1.*",   "node_.*", "(api-.*)", "j7|j8|j17", "node_.*|api-.*",
        ".*-1",
    };
    static const char *values[] = {
        "",       "a",          "b",     "ab",   "ba",       "a.b", "aXb",    "a|b",     "(a)",
        "foo",    "foobar",     "bar",   "\n",   "a\n",      "\na", "é",      "ü",       "a-b",
        "x*",     "xa",         "aaa",   "a.",   "a...",     "A",   "a\\b",   "foo-bar", "xfoobarx",
        ".",      "..",         "\\",    "1",    "aa",       "a}",  "#a",     "xéx",     " a",
        "é|ü",    "a.",         "x",     "api-", "api-7f9c", "api", "xapi-1", "host-1",  "host-10:9100",
        "host-2", "node_load1", "node_", "j7",   "j17",      "j1",  "j77",    "api-\n",
    };
    for (size_t i = 0; i < N(patterns); i++) {
        kiln_err err = {0};
        matcher re, nre;
        ck_assert_msg(matcher_init(&re, MATCH_RE, "l", patterns[i], &err) == 0, "%s: %s", patterns[i],
                      err.msg);
        ck_assert_int_eq(matcher_init(&nre, MATCH_NRE, "l", patterns[i], &err), 0);
        pcre2_code *ref = reference_re(patterns[i]);
        for (size_t j = 0; j < N(values); j++) {
            int want = reference_match(ref, values[j]);
            ck_assert_msg(matcher_matches(&re, values[j]) == want, "\"%s\" on \"%s\": want %d", patterns[i],
                          values[j], want);
            ck_assert_msg(matcher_matches(&nre, values[j]) == !want, "!~\"%s\" on \"%s\"", patterns[i],
                          values[j]);
        }
        ck_assert_int_eq(matcher_matches_empty(&re), reference_match(ref, ""));
        pcre2_code_free(ref);
        matcher_free(&re);
        matcher_free(&nre);
    }
}
END_TEST

/* A matcher shared by threads, each with its own cached match data (freed at
 * thread exit, which the leak checker verifies). */
typedef struct thread_arg {
    const matcher *m;
    int ok;
} thread_arg;

static void *match_thread(void *p) {
    thread_arg *a = p;
    char v[32];
    a->ok = 1;
    for (int i = 0; i < 2000; i++) {
        snprintf(v, sizeof v, "host-%d", i);
        int want = (i % 10) == 7;
        if (matcher_matches(a->m, v) != want)
            a->ok = 0;
    }
    return NULL;
}

START_TEST(test_matcher_threads) {
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_RE, "instance", "host-[0-9]*7", NULL), 0);
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){&m, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, match_thread, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert(args[i].ok);
    }
    /* and on this thread too */
    ck_assert(matcher_matches(&m, "host-17"));
    ck_assert(!matcher_matches(&m, "host-18"));
    matcher_free(&m);
}
END_TEST

/* A value deep enough to need more than JIT's default stack still matches. */
START_TEST(test_matcher_deep) {
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_RE, "l", "(a|b)*c", NULL), 0);
    size_t n = 60000;
    char *v = malloc(n + 2);
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < n; i++)
        v[i] = i % 2 ? 'a' : 'b';
    v[n] = 'c';
    v[n + 1] = 0;
    ck_assert(matcher_matches(&m, v));
    v[n] = 'd';
    ck_assert(!matcher_matches(&m, v));
    free(v);
    matcher_free(&m);
}
END_TEST

/* A regex that hits PCRE2's match limit is an error naming it, for =~ and
 * !~ alike: never a silent non-match (nor, for !~, a silent match). */
START_TEST(test_matcher_limit) {
    char v[64];
    memset(v, 'a', 40);
    strcpy(v + 40, "c");
    for (int nre = 0; nre < 2; nre++) {
        matcher m;
        kiln_err err = {0};
        ck_assert_int_eq(matcher_init(&m, nre ? MATCH_NRE : MATCH_RE, "v", "(a+)+b|a*c", &err), 0);
        ck_assert_int_eq(matcher_match(&m, v, NULL, &err), KILN_ELIMIT);
        ck_assert_msg(strstr(err.msg, "regular expression \"(a+)+b|a*c\" on label \"v\"") &&
                          strstr(err.msg, "PCRE2's match limit"),
                      "%s", err.msg);
        /* values it settles at once */
        ck_assert_int_eq(matcher_match(&m, "aac", NULL, &err), !nre);
        ck_assert_int_eq(matcher_match(&m, "x", NULL, &err), nre);
        /* the bool form has no error path: no match */
        ck_assert_int_eq(matcher_matches(&m, v), 0);
        matcher_free(&m);
    }
    /* the same limits for label_replace's regexes */
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR) "^(?s:(a+)+b|a*c)$", PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &eo, NULL);
    ck_assert_ptr_nonnull(re);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    kiln_err err = {0};
    ck_assert_int_eq(matcher_pcre2_match(re, "(a+)+b|a*c", "src", v, md, &err), KILN_ELIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "\"(a+)+b|a*c\" on label \"src\""));
    ck_assert_int_eq(matcher_pcre2_match(re, "(a+)+b|a*c", "src", "aab", md, &err), 2);
    ck_assert_int_eq(matcher_pcre2_match(re, "(a+)+b|a*c", "src", "x", md, &err), 0);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
}
END_TEST

static int stop_now(void *data) {
    return ++*(int *)data > 0;
}

/* A guard stops a long run of matches at its deadline or when canceled,
 * within MATCH_GUARD_EVERY units; a zeroed one never does. */
START_TEST(test_matcher_guard) {
    matcher eq, re;
    ck_assert_int_eq(matcher_init(&eq, MATCH_EQ, "l", "x", NULL), 0);
    ck_assert_int_eq(matcher_init(&re, MATCH_RE, "l", "x[0-9]+", NULL), 0);
    kiln_err err = {0};
    match_guard none = {0};
    for (int i = 0; i < 10000; i++) {
        ck_assert_int_eq(matcher_match(&eq, "x", &none, &err), 1);
        ck_assert_int_eq(matcher_match(&re, "x1", &none, &err), 1);
    }
    match_guard past = {time_mono_sec() - 1, NULL, NULL, 0};
    int rc = 0;
    unsigned i;
    for (i = 0; i < MATCH_GUARD_EVERY && rc >= 0; i++)
        rc = matcher_match(&eq, "x", &past, &err);
    ck_assert_int_eq(rc, KILN_ETIMEOUT);
    ck_assert_str_eq(err.msg, "timed out while matching label values");
    int calls = 0;
    match_guard cancel = {0, stop_now, &calls, 0};
    rc = 0;
    for (i = 0; i < MATCH_GUARD_EVERY / MATCH_GUARD_PCRE_COST && rc >= 0; i++)
        rc = matcher_match(&re, "x1", &cancel, &err);
    ck_assert_int_eq(rc, KILN_ECANCELED);
    ck_assert_int_eq(calls, 1);
    matcher_free(&eq);
    matcher_free(&re);
}
END_TEST

/* A long alternation of literals (searched sorted) agrees with PCRE2. */
START_TEST(test_matcher_big_set) {
    buf pat = BUF_INIT;
    for (int i = 0; i < 1000; i++)
        buf_printf(&pat, "%sv%d", i ? "|" : "", (i * 7919) % 1000);
    ck_assert(!buf_error(&pat));
    matcher re, nre;
    ck_assert_int_eq(matcher_init(&re, MATCH_RE, "l", pat.data, NULL), 0);
    ck_assert_int_eq(matcher_init(&nre, MATCH_NRE, "l", pat.data, NULL), 0);
    pcre2_code *ref = reference_re(pat.data);
    static const char *extra[] = {"", "v", "v1000", "v01", "x", "v9999", "w5"};
    char v[16];
    for (int i = 0; i < 1000 + (int)N(extra); i++) {
        const char *s = i < 1000 ? (snprintf(v, sizeof v, "v%d", i), v) : extra[i - 1000];
        int want = reference_match(ref, s);
        ck_assert_msg(matcher_matches(&re, s) == want, "%s", s);
        ck_assert_msg(matcher_matches(&nre, s) == !want, "%s", s);
    }
    pcre2_code_free(ref);
    matcher_free(&re);
    matcher_free(&nre);
    buf_free(&pat);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("labels");
    TCase *tc = tcase_create("labels");
    tcase_add_test(tc, test_hash);
    tcase_add_test(tc, test_cmp);
    tcase_add_test(tc, test_get);
    tcase_add_test(tc, test_sort);
    tcase_add_test(tc, test_check);
    tcase_add_test(tc, test_check_bounds);
    tcase_add_test(tc, test_format);
    tcase_add_test(tc, test_copy);
    tcase_add_test(tc, test_builder);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("matchers");
    tcase_set_timeout(tm, 30);
    tcase_add_test(tm, test_match_type_str);
    tcase_add_test(tm, test_matchers);
    tcase_add_test(tm, test_matches_empty);
    tcase_add_test(tm, test_matcher_errors);
    tcase_add_test(tm, test_fast_paths_agree);
    tcase_add_test(tm, test_matcher_threads);
    tcase_add_test(tm, test_matcher_deep);
    tcase_add_test(tm, test_matcher_limit);
    tcase_add_test(tm, test_matcher_guard);
    tcase_add_test(tm, test_matcher_big_set);
    suite_add_tcase(s, tm);
    return s;
}
