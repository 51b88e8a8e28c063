/*
 * test_relabel.c - relabeling: every action, templates, hashmod values
 * (checked against Python's hashlib MD5), chains and drops.  The steps come
 * from the real config loader so the regexes are compiled as in production.
 */
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "scrape/relabel.h"
#include "storage/storage.h"
#define KILN_TEST_MAIN
#include "testutil.h"

/* Loads one scrape job whose relabel_configs are `steps` (YAML list items). */
static config *load_steps(const char *steps) {
    char y[4096];
    snprintf(y, sizeof y, "scrape_configs:\n  - job_name: j\n    relabel_configs:\n%s", steps);
    config *c = NULL;
    kiln_err err = {0};
    ck_assert_msg(config_load_string("t.yml", y, strlen(y), &c, &err) == 0, "%s\n%s", err.msg, y);
    return c;
}

/*
 * Runs the steps over `in` ("a=1,b=2") and returns the result as
 * "a=1,b=2" (sorted) in out, or "DROPPED".
 */
static void run(const char *steps, const char *in, char *out, size_t n) {
    config *c = load_steps(steps);
    arena a;
    arena_init(&a, 0);
    labels_builder b;
    lb_init(&b);
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", in);
    for (char *tok = strtok(tmp, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        *eq = 0;
        ck_assert_int_eq(lb_set(&b, arena_strndup(&a, tok, strlen(tok)), arena_strndup(&a, eq + 1, strlen(eq + 1))),
                         0);
    }
    const scrape_config *sc = &c->scrape_configs[0];
    int rc = relabel_apply(sc->relabel_configs, sc->nrelabel_configs, &b, &a);
    ck_assert_int_ge(rc, 0);
    out[0] = 0;
    if (rc == 0) {
        snprintf(out, n, "DROPPED");
    } else {
        size_t nl;
        const label *ls = lb_labels(&b, &nl);
        for (size_t i = 0; i < nl; i++) {
            size_t len = strlen(out);
            snprintf(out + len, n - len, "%s%s=%s", i ? "," : "", ls[i].name, ls[i].value);
        }
    }
    lb_free(&b);
    arena_free(&a);
    config_free(c);
}

#define CHECK(steps, in, want)                                                                                     \
    do {                                                                                                           \
        char got_[1024];                                                                                           \
        run(steps, in, got_, sizeof got_);                                                                         \
        ck_assert_msg(strcmp(got_, want) == 0, "steps:\n%sin:   %s\nwant: %s\ngot:  %s", steps, in, want, got_); \
    } while (0)

START_TEST(test_replace) {
    /* default: regex (.*), replacement $1, separator ; */
    CHECK("      - {source_labels: [a, b], target_label: c}\n", "a=x,b=y", "a=x,b=y,c=x;y");
    CHECK("      - {source_labels: [a, b], separator: '-', target_label: c}\n", "a=x,b=y", "a=x,b=y,c=x-y");
    /* a missing source label is "" */
    CHECK("      - {source_labels: [a, zz], target_label: c}\n", "a=x", "a=x,c=x;");
    /* no match: nothing changes */
    CHECK("      - {source_labels: [a], regex: 'y.*', target_label: c, replacement: z}\n", "a=x", "a=x");
    /* anchored: 'x' does not match 'xx' */
    CHECK("      - {source_labels: [a], regex: 'x', target_label: c, replacement: z}\n", "a=xx", "a=xx");
    /* groups: $1, ${1}, named, $$ and a literal $ */
    CHECK("      - {source_labels: [a], regex: '(\\w+):(\\d+)', target_label: host, replacement: '$1'}\n",
          "a=h1:9100", "a=h1:9100,host=h1");
    CHECK("      - {source_labels: [a], regex: '(\\w+):(\\d+)', target_label: c, replacement: '${2}x'}\n",
          "a=h1:9100", "a=h1:9100,c=9100x");
    /* $2x is the group named "2x": empty, so the label is deleted */
    CHECK("      - {source_labels: [a], regex: '(\\w+):(\\d+)', target_label: a, replacement: '$2x'}\n",
          "a=h1:9100", "");
    CHECK("      - {source_labels: [a], regex: '(?P<host>\\w+):(\\d+)', target_label: c, replacement: 'h=${host}'}\n",
          "a=h1:9100", "a=h1:9100,c=h=h1");
    CHECK("      - {source_labels: [a], target_label: c, replacement: 'cost $$5 $'}\n", "a=x", "a=x,c=cost $5 $");
    /* target_label is a template too */
    CHECK("      - {source_labels: [a], regex: '(\\w+)=(\\w+)', target_label: '${1}', replacement: '$2'}\n",
          "a=env=prod", "a=env=prod,env=prod");
    /* an invalid target name after expansion: the unexpanded target is deleted */
    CHECK("      - {source_labels: [a], regex: '(.*)', target_label: '${1}', replacement: v}\n", "a=1bad", "a=1bad");
    /* an empty replacement deletes the target */
    CHECK("      - {source_labels: [a], regex: '.*', target_label: b, replacement: ''}\n", "a=x,b=y", "a=x");
}
END_TEST

START_TEST(test_keep_drop) {
    CHECK("      - {source_labels: [a], regex: 'x.*', action: keep}\n", "a=xyz", "a=xyz");
    CHECK("      - {source_labels: [a], regex: 'x.*', action: keep}\n", "a=yxz", "DROPPED");
    CHECK("      - {source_labels: [a], regex: 'x.*', action: drop}\n", "a=xyz", "DROPPED");
    CHECK("      - {source_labels: [a], regex: 'x.*', action: drop}\n", "a=yxz", "a=yxz");
    /* keep on a missing label matches against "" */
    CHECK("      - {source_labels: [zz], regex: '', action: keep}\n", "a=1", "a=1");
    CHECK("      - {source_labels: [a], target_label: b, action: keepequal}\n", "a=1,b=1", "a=1,b=1");
    CHECK("      - {source_labels: [a], target_label: b, action: keepequal}\n", "a=1,b=2", "DROPPED");
    CHECK("      - {source_labels: [a], target_label: b, action: dropequal}\n", "a=1,b=1", "DROPPED");
    CHECK("      - {source_labels: [a], target_label: b, action: dropequal}\n", "a=1,b=2", "a=1,b=2");
}
END_TEST

START_TEST(test_hashmod) {
    /* expected: int.from_bytes(md5(s)[8:16], 'big') % 7 (Python hashlib) */
    ck_assert(relabel_md5_sum64("", 0) == 16825458760271544958ULL);
    ck_assert(relabel_md5_sum64("a", 1) == 3585878926028121697ULL);
    ck_assert(relabel_md5_sum64("host-1:9100", 11) == 4174877465508138772ULL);
    char hundred[101];
    memset(hundred, 'x', 100);
    hundred[100] = 0;
    ck_assert(relabel_md5_sum64(hundred, 100) == 7299307477690304434ULL);
    CHECK("      - {source_labels: [__address__], modulus: 7, target_label: shard, action: hashmod}\n",
          "__address__=host-1:9100", "__address__=host-1:9100,shard=5");
    CHECK("      - {source_labels: [a], modulus: 7, target_label: shard, action: hashmod}\n", "a=a", "a=a,shard=2");
}
END_TEST

START_TEST(test_label_actions) {
    CHECK("      - {regex: '__meta_(\\w+)', action: labelmap}\n", "__meta_zone=a,__meta_rack=b,x=1",
          "__meta_rack=b,__meta_zone=a,rack=b,x=1,zone=a");
    CHECK("      - {regex: 'm_(.*)', replacement: 'n_${1}_x', action: labelmap}\n", "m_a=1", "m_a=1,n_a_x=1");
    CHECK("      - {regex: 'tmp_.*', action: labeldrop}\n", "tmp_a=1,tmp_b=2,keep=3", "keep=3");
    CHECK("      - {regex: 'job|instance', action: labelkeep}\n", "job=j,instance=i,other=o", "instance=i,job=j");
    CHECK("      - {source_labels: [a], target_label: b, action: lowercase}\n", "a=MiXeD", "a=MiXeD,b=mixed");
    CHECK("      - {source_labels: [a], target_label: a, action: uppercase}\n", "a=MiXeD", "a=MIXED");
}
END_TEST

START_TEST(test_chains) {
    /* each step sees the previous one's result */
    CHECK("      - {source_labels: [a], target_label: b}\n"
          "      - {source_labels: [b], regex: 'x', action: drop}\n",
          "a=x", "DROPPED");
    CHECK("      - {source_labels: [a], target_label: b}\n"
          "      - {source_labels: [b], target_label: c, replacement: '${1}${1}'}\n"
          "      - {regex: 'a', action: labeldrop}\n",
          "a=x", "b=x,c=xx");
    /* a drop stops the chain */
    CHECK("      - {source_labels: [a], action: drop}\n"
          "      - {target_label: never, replacement: v}\n",
          "a=", "DROPPED");
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("relabel");
    TCase *tc = tcase_create("relabel");
    tcase_add_test(tc, test_replace);
    tcase_add_test(tc, test_keep_drop);
    tcase_add_test(tc, test_hashmod);
    tcase_add_test(tc, test_label_actions);
    tcase_add_test(tc, test_chains);
    suite_add_tcase(s, tc);
    return s;
}

