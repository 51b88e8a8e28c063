/*
 * test_relabel.c - relabeling as Prometheus 2.42 does it: every action,
 * Go's template expansion rules, hashmod values (MD5 checked against
 * md5sum(1)), Unicode case mapping, invalid UTF-8, chains, drops, the array
 * helper, a JIT stack overflow and several threads at once.  The steps come
 * from the real config loader so the regexes are compiled as in production.
 *
 * Most cases are a table row: YAML relabel steps, an input label set
 * "a=1,b=2" (any order) and the expected result, sorted, or "DROPPED".
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "scrape/relabel.h"
#include "storage/storage.h"
#define KILN_TEST_MAIN
#include "testutil.h"

typedef struct rcase {
    const char *steps; /* YAML list items under relabel_configs */
    const char *in;
    const char *want;
} rcase;

/* Loads one scrape job whose relabel_configs are `steps`. */
static config *load_steps(const char *steps) {
    char y[8192];
    snprintf(y, sizeof y, "scrape_configs:\n  - job_name: j\n    relabel_configs:\n%s", steps);
    config *c = NULL;
    kiln_err err = {0};
    ck_assert_msg(config_load_string("t.yml", y, strlen(y), &c, &err) == 0, "%s\n%s", err.msg, y);
    return c;
}

/* Fills b from "a=1,b=2" (strings from a). */
static void parse_in(const char *in, labels_builder *b, arena *a) {
    char *tmp = arena_strndup(a, in, strlen(in));
    for (char *save = NULL, *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        ck_assert_ptr_nonnull(eq);
        *eq = 0;
        ck_assert_int_eq(lb_set(b, tok, eq + 1), 0);
    }
}

/* "a=1,b=2" for the builder's set. */
static void format_out(labels_builder *b, char *out, size_t n) {
    size_t nl;
    const label *ls = lb_labels(b, &nl);
    out[0] = 0;
    for (size_t i = 0; i < nl; i++) {
        size_t len = strlen(out);
        snprintf(out + len, n - len, "%s%s=%s", i ? "," : "", ls[i].name, ls[i].value);
    }
}

/* Runs the steps over `in`; the result in out, or "DROPPED". */
static void run(const char *steps, const char *in, char *out, size_t n) {
    config *c = load_steps(steps);
    arena a;
    arena_init(&a, 0);
    labels_builder b;
    lb_init(&b);
    parse_in(in, &b, &a);
    const scrape_config *sc = &c->scrape_configs[0];
    int rc = relabel_apply(sc->relabel_configs, sc->nrelabel_configs, &b, &a);
    ck_assert_int_ge(rc, 0);
    if (rc == 0)
        snprintf(out, n, "DROPPED");
    else
        format_out(&b, out, n);
    lb_free(&b);
    arena_free(&a);
    config_free(c);
}

static void run_table(const rcase *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char got[4096];
        run(t[i].steps, t[i].in, got, sizeof got);
        ck_assert_msg(strcmp(got, t[i].want) == 0, "case %zu\nsteps:\n%sin:   %s\nwant: %s\ngot:  %s", i,
                      t[i].steps, t[i].in, t[i].want, got);
    }
}

#define RUN_TABLE(t) run_table(t, sizeof t / sizeof t[0])

/* ---- replace --------------------------------------------------------------- */

static const rcase replace_cases[] = {
    /* defaults: regex (.*), replacement $1, separator ; */
    {"      - {source_labels: [a, b], target_label: c}\n", "a=x,b=y", "a=x,b=y,c=x;y"},
    {"      - {source_labels: [a, b], separator: '-', target_label: c}\n", "a=x,b=y", "a=x,b=y,c=x-y"},
    {"      - {source_labels: [a, b], separator: '', target_label: c}\n", "a=x,b=y", "a=x,b=y,c=xy"},
    /* a missing source label is "" */
    {"      - {source_labels: [a, zz], target_label: c}\n", "a=x", "a=x,c=x;"},
    /* no source labels: the value is "", (.*) matches it; the replacement is literal */
    {"      - {target_label: c, replacement: v}\n", "a=x", "a=x,c=v"},
    /* no match: nothing changes */
    {"      - {source_labels: [a], regex: 'y.*', target_label: c, replacement: z}\n", "a=x", "a=x"},
    /* anchored at both ends */
    {"      - {source_labels: [a], regex: 'x', target_label: c, replacement: z}\n", "a=xx", "a=xx"},
    {"      - {source_labels: [a], regex: 'x', target_label: c, replacement: z}\n", "a=ax", "a=ax"},
    {"      - {source_labels: [a], regex: 'x|y', target_label: c, replacement: z}\n", "a=xy", "a=xy"},
    /* an existing target is overwritten */
    {"      - {source_labels: [a], target_label: b}\n", "a=x,b=y", "a=x,b=x"},
    /* groups by number */
    {"      - {source_labels: [a], regex: '(\\w+):(\\d+)', target_label: host, replacement: '$1'}\n",
     "a=h1:9100", "a=h1:9100,host=h1"},
    {"      - {source_labels: [a], regex: '(\\w+):(\\d+)', target_label: c, replacement: '${2}x'}\n",
     "a=h1:9100", "a=h1:9100,c=9100x"},
    {"      - {source_labels: [a], regex: '(\\w+):(\\d+)', target_label: c, replacement: '$2.$1-$0'}\n",
     "a=h1:9100", "a=h1:9100,c=9100.h1-h1:9100"},
    /* $2x is the group named "2x", which does not exist: "" deletes the target */
    {"      - {source_labels: [a], regex: '(\\w+):(\\d+)', target_label: a, replacement: '$2x'}\n",
     "a=h1:9100", ""},
    {"      - {source_labels: [a], regex: '(\\w+):(\\d+)', target_label: c, replacement: '<$1_>'}\n",
     "a=h1:9100", "a=h1:9100,c=<>"},
    /* a non-ASCII letter continues a name too: $1é is the group "1é" */
    {"      - {source_labels: [a], regex: '(x)', target_label: c, replacement: '<$1é>'}\n", "a=x",
     "a=x,c=<>"},
    {"      - {source_labels: [a], regex: '(x)', target_label: c, replacement: '<${1}é>'}\n", "a=x",
     "a=x,c=<xé>"},
    /* no leading zeros: $01 is not group 1; beyond the last group is "" */
    {"      - {source_labels: [a], regex: '(x)', target_label: c, replacement: '<$01|${01}|$10|$2>'}\n",
     "a=x", "a=x,c=<|||>"},
    /* a group that took no part is "" */
    {"      - {source_labels: [a], regex: '(x)?(y)', target_label: c, replacement: '<$1|$2>'}\n", "a=y",
     "a=y,c=<|y>"},
    /* named groups */
    {"      - {source_labels: [a], regex: '(?P<host>\\w+):(?P<port>\\d+)', target_label: c, replacement: "
     "'${port}@${host}'}\n",
     "a=h1:9100", "a=h1:9100,c=9100@h1"},
    {"      - {source_labels: [a], regex: '(?P<host>\\w+):(\\d+)', target_label: c, replacement: "
     "'$host/$2'}\n",
     "a=h1:9100", "a=h1:9100,c=h1/9100"},
    {"      - {source_labels: [a], regex: '(?P<host>\\w+)', target_label: c, replacement: '<$hostx>'}\n",
     "a=h1", "a=h1,c=<>"},
    /* $$ is $; a $ without a name, or ${ without }, is literal */
    {"      - {source_labels: [a], target_label: c, replacement: 'cost $$5 $'}\n", "a=x", "a=x,c=cost $5 $"},
    {"      - {source_labels: [a], target_label: c, replacement: '$$1=$1'}\n", "a=x", "a=x,c=$1=x"},
    {"      - {source_labels: [a], target_label: c, replacement: '${1'}\n", "a=x", "a=x,c=${1"},
    {"      - {source_labels: [a], target_label: c, replacement: '${}$-$.${1}'}\n", "a=x", "a=x,c=${}$-$.x"},
    {"      - {source_labels: [a], target_label: c, replacement: '${1 }'}\n", "a=x", "a=x,c=${1 }"},
    /* the target is a template too */
    {"      - {source_labels: [a], regex: '(\\w+)=(\\w+)', target_label: '${1}', replacement: '$2'}\n",
     "a=env=prod", "a=env=prod,env=prod"},
    {"      - {source_labels: [a], regex: '(\\w+)=(\\w+)', target_label: 'l_$1', replacement: '$2'}\n",
     "a=env=prod", "a=env=prod,l_env=prod"},
    /* an invalid name after expansion: nothing is set */
    {"      - {source_labels: [a], regex: '(.*)', target_label: '${1}', replacement: v}\n", "a=1bad",
     "a=1bad"},
    {"      - {source_labels: [a], regex: '(.*)', target_label: '${1}', replacement: v}\n", "a=a-b", "a=a-b"},
    {"      - {source_labels: [a], regex: '(x)?.*', target_label: '$1', replacement: v}\n", "a=y", "a=y"},
    {"      - {source_labels: [a], regex: '(.*)', target_label: 'ok_${1}', replacement: v}\n", "a=é", "a=é"},
    /* an empty replacement deletes the target */
    {"      - {source_labels: [a], regex: '.*', target_label: b, replacement: ''}\n", "a=x,b=y", "a=x"},
    {"      - {source_labels: [a], regex: '(x*)y', target_label: b}\n", "a=y,b=old", "a=y"},
    {"      - {source_labels: [a], regex: '(x*)y', target_label: a}\n", "a=y", ""},
    /* the regex sees newlines with . (DOTALL), and $ is the very end */
    {"      - {source_labels: [a], regex: 'x(.*)', target_label: b}\n", "a=x\n1", "a=x\n1,b=\n1"},
    {"      - {source_labels: [a], regex: 'x', target_label: b, replacement: hit}\n", "a=x\n", "a=x\n"},
};

START_TEST(test_replace) {
    RUN_TABLE(replace_cases);
}
END_TEST

/* ---- keep, drop, keepequal, dropequal -------------------------------------- */

static const rcase keep_drop_cases[] = {
    {"      - {source_labels: [a], regex: 'x.*', action: keep}\n", "a=xyz", "a=xyz"},
    {"      - {source_labels: [a], regex: 'x.*', action: keep}\n", "a=yxz", "DROPPED"},
    {"      - {source_labels: [a], regex: 'x.*', action: drop}\n", "a=xyz", "DROPPED"},
    {"      - {source_labels: [a], regex: 'x.*', action: drop}\n", "a=yxz", "a=yxz"},
    {"      - {source_labels: [a], regex: 'x', action: drop}\n", "a=xx", "a=xx"},
    /* KEEP is matched case-insensitively; the default regex (.*) matches anything */
    {"      - {source_labels: [a], action: Drop}\n", "a=1", "DROPPED"},
    {"      - {source_labels: [a], action: KEEP}\n", "b=1", "b=1"},
    /* a missing label is "" */
    {"      - {source_labels: [zz], regex: '', action: keep}\n", "a=1", "a=1"},
    {"      - {source_labels: [zz], regex: '.+', action: keep}\n", "a=1", "DROPPED"},
    /* joined by the separator */
    {"      - {source_labels: [a, b], regex: '1;2', action: keep}\n", "a=1,b=2", "a=1,b=2"},
    {"      - {source_labels: [a, b], separator: '|', regex: '1\\|2', action: drop}\n", "a=1,b=2", "DROPPED"},
    {"      - {source_labels: [a, b], regex: '1;', action: keep}\n", "a=1", "a=1"},
    /* equal: the joined value against target_label's */
    {"      - {source_labels: [a], target_label: b, action: keepequal}\n", "a=1,b=1", "a=1,b=1"},
    {"      - {source_labels: [a], target_label: b, action: keepequal}\n", "a=1,b=2", "DROPPED"},
    {"      - {source_labels: [a], target_label: b, action: dropequal}\n", "a=1,b=1", "DROPPED"},
    {"      - {source_labels: [a], target_label: b, action: dropequal}\n", "a=1,b=2", "a=1,b=2"},
    {"      - {source_labels: [a, c], target_label: b, action: keepequal}\n", "a=1,b=1;2,c=2",
     "a=1,b=1;2,c=2"},
    /* both missing: "" equals "" */
    {"      - {source_labels: [zz], target_label: yy, action: keepequal}\n", "a=1", "a=1"},
    {"      - {source_labels: [zz], target_label: yy, action: dropequal}\n", "a=1", "DROPPED"},
    {"      - {source_labels: [zz], target_label: a, action: keepequal}\n", "a=1", "DROPPED"},
};

START_TEST(test_keep_drop) {
    RUN_TABLE(keep_drop_cases);
}
END_TEST

/* ---- hashmod --------------------------------------------------------------- */

START_TEST(test_md5) {
    /* want: the last 16 hex digits of `printf %s <input> | md5sum` */
    static const struct {
        const char *in;
        size_t xs; /* or this many 'x' */
        uint64_t want;
    } t[] = {
        {"", 0, 0xe9800998ecf8427eULL},
        {"a", 0, 0x31c399e269772661ULL},
        {"host-1:9100", 0, 0x39f024ef78654f14ULL},
        {"10.0.0.1:9100;node", 0, 0x0a09db3f6b3d6d00ULL},
        /* lengths around the 64-byte block and its 56-byte padding limit */
        {NULL, 55, 0xd958a70738aa8f72ULL},
        {NULL, 56, 0x62dabcafad6db14bULL},
        {NULL, 63, 0x03567bdff99d8981ULL},
        {NULL, 64, 0x7947682aeb252456ULL},
        {NULL, 65, 0xbdec39795fe00cf6ULL},
        {NULL, 100, 0x654c597a421547b2ULL},
        {NULL, 119, 0xcfcddc633f12c24fULL},
        {NULL, 120, 0x2620b64f46e1c5b5ULL},
        {NULL, 128, 0x676eb0d4b90edbcbULL},
        {NULL, 1000, 0x64b1f64cb10c4b63ULL},
    };
    char xs[1001];
    memset(xs, 'x', sizeof xs);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const char *s = t[i].in ? t[i].in : xs;
        size_t n = t[i].in ? strlen(s) : t[i].xs;
        uint64_t got = relabel_md5_sum64(s, n);
        ck_assert_msg(got == t[i].want, "case %zu: %016llx, want %016llx", i, (unsigned long long)got,
                      (unsigned long long)t[i].want);
    }
}
END_TEST

static const rcase hashmod_cases[] = {
    /* 0x39f024ef78654f14 % 7 = 5 */
    {"      - {source_labels: [__address__], modulus: 7, target_label: shard, action: hashmod}\n",
     "__address__=host-1:9100", "__address__=host-1:9100,shard=5"},
    {"      - {source_labels: [a], modulus: 7, target_label: shard, action: hashmod}\n", "a=a",
     "a=a,shard=2"},
    /* joined: md5("10.0.0.1:9100;node") % 1000 = 568, with "/" 269 */
    {"      - {source_labels: [a, b], modulus: 1000, target_label: s, action: hashmod}\n",
     "a=10.0.0.1:9100,b=node", "a=10.0.0.1:9100,b=node,s=568"},
    {"      - {source_labels: [a, b], separator: /, modulus: 1000, target_label: s, action: hashmod}\n",
     "a=10.0.0.1:9100,b=node", "a=10.0.0.1:9100,b=node,s=269"},
    /* missing: md5("") % 1000 = 958; overwrites the target */
    {"      - {source_labels: [zz], modulus: 1000, target_label: a, action: hashmod}\n", "a=1", "a=958"},
    /* modulus 1: always 0; a modulus above the hash: the whole 64-bit value */
    {"      - {source_labels: [a], modulus: 1, target_label: s, action: hashmod}\n", "a=a", "a=a,s=0"},
    {"      - {source_labels: [a], modulus: 18446744073709551609, target_label: s, action: hashmod}\n", "a=a",
     "a=a,s=3585878926028121697"},
    /* the usual sharding pair */
    {"      - {source_labels: [__address__], modulus: 7, target_label: __tmp_hash, action: hashmod}\n"
     "      - {source_labels: [__tmp_hash], regex: '5', action: keep}\n",
     "__address__=host-1:9100", "__address__=host-1:9100,__tmp_hash=5"},
    {"      - {source_labels: [__address__], modulus: 7, target_label: __tmp_hash, action: hashmod}\n"
     "      - {source_labels: [__tmp_hash], regex: '4', action: keep}\n",
     "__address__=host-1:9100", "DROPPED"},
};

START_TEST(test_hashmod) {
    RUN_TABLE(hashmod_cases);
}
END_TEST

/* ---- labelmap, labeldrop, labelkeep --------------------------------------- */

static const rcase label_cases[] = {
    {"      - {regex: '__meta_(\\w+)', action: labelmap}\n", "__meta_zone=a,__meta_rack=b,x=1",
     "__meta_rack=b,__meta_zone=a,rack=b,x=1,zone=a"},
    {"      - {regex: 'm_(.*)', replacement: 'n_${1}_x', action: labelmap}\n", "m_a=1", "m_a=1,n_a_x=1"},
    {"      - {regex: '(m)_(.*)', replacement: '$2$1', action: labelmap}\n", "m_a=1,q=2", "am=1,m_a=1,q=2"},
    /* the whole name must match */
    {"      - {regex: 'm', replacement: 'z', action: labelmap}\n", "mm=1,m=2", "m=2,mm=1,z=2"},
    /* an existing label is overwritten by the mapped value */
    {"      - {regex: 'src_(.*)', action: labelmap}\n", "src_a=new,a=old", "a=new,src_a=new"},
    /* labels made by the step are not mapped again */
    {"      - {regex: '(.*)', replacement: 'x_$1', action: labelmap}\n", "a=1", "a=1,x_a=1"},
    /* a literal replacement: every match lands on one name, the last (in name order) wins */
    {"      - {regex: 'k(.)', replacement: 'one', action: labelmap}\n", "ka=1,kb=2", "ka=1,kb=2,one=2"},
    {"      - {regex: 'tmp_.*', action: labeldrop}\n", "tmp_a=1,tmp_b=2,keep=3", "keep=3"},
    {"      - {regex: 'tmp', action: labeldrop}\n", "tmp_a=1,tmp=2", "tmp_a=1"},
    {"      - {regex: 'job|instance', action: labelkeep}\n", "job=j,instance=i,other=o", "instance=i,job=j"},
    {"      - {regex: '__.*', action: labelkeep}\n", "__name__=up,__x=1,a=2", "__name__=up,__x=1"},
    /* labelkeep that keeps nothing: an empty set, kept */
    {"      - {regex: 'nothing', action: labelkeep}\n", "a=1,b=2", ""},
    {"      - {regex: '.*', action: labeldrop}\n", "a=1,b=2", ""},
};

START_TEST(test_label_actions) {
    RUN_TABLE(label_cases);
}
END_TEST

/* ---- lowercase, uppercase -------------------------------------------------- */

static const rcase case_cases[] = {
    {"      - {source_labels: [a], target_label: b, action: lowercase}\n", "a=MiXeD", "a=MiXeD,b=mixed"},
    {"      - {source_labels: [a], target_label: a, action: uppercase}\n", "a=MiXeD", "a=MIXED"},
    {"      - {source_labels: [a, b], target_label: c, action: uppercase}\n", "a=x,b=y-1",
     "a=x,b=y-1,c=X;Y-1"},
    /* Unicode simple case mapping, as Go's strings.ToLower / ToUpper */
    {"      - {source_labels: [a], target_label: b, action: lowercase}\n", "a=ÉCOLE ΣΟΦΊΑ Ж",
     "a=ÉCOLE ΣΟΦΊΑ Ж,b=école σοφία ж"},
    {"      - {source_labels: [a], target_label: b, action: uppercase}\n", "a=straße ǆ ı ſ",
     "a=straße ǆ ı ſ,b=STRAßE Ǆ I S"},
    /* İ lowercases to i; ⱥ (3 bytes) uppercases to Ⱥ (2 bytes) and back */
    {"      - {source_labels: [a], target_label: b, action: lowercase}\n", "a=İȺ", "a=İȺ,b=iⱥ"},
    {"      - {source_labels: [a], target_label: b, action: uppercase}\n", "a=ⱥ𐐨", "a=ⱥ𐐨,b=Ⱥ𐐀"},
    /* invalid UTF-8: each bad byte becomes U+FFFD (Go's strings.Map) */
    {"      - {source_labels: [a], target_label: b, action: lowercase}\n",
     "a=A\xff\xe2\x82"
     "B",
     "a=A\xff\xe2\x82"
     "B,b=a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
     "b"},
    /* an empty result deletes the target */
    {"      - {source_labels: [zz], target_label: a, action: lowercase}\n", "a=1,b=2", "b=2"},
};

START_TEST(test_case) {
    RUN_TABLE(case_cases);
}
END_TEST

/* ---- invalid UTF-8 is matched as Go sees it ---------------------------------- */

static const rcase utf8_cases[] = {
    /* the bad byte is one character (U+FFFD) for the regex */
    {"      - {source_labels: [a], regex: 'a.b', action: keep}\n",
     "a=a\xff"
     "b",
     "a=a\xff"
     "b"},
    {"      - {source_labels: [a], regex: 'a..b', action: keep}\n",
     "a=a\xff"
     "b",
     "DROPPED"},
    {"      - {source_labels: [a], regex: 'a\\x{FFFD}b', action: drop}\n",
     "a=a\xff"
     "b",
     "DROPPED"},
    {"      - {source_labels: [a], regex: 'a(.)b', target_label: c, replacement: '<$1>'}\n",
     "a=a\xc0"
     "b",
     "a=a\xc0"
     "b,c=<\xef\xbf\xbd>"},
    /* valid multi-byte text is one character per rune */
    {"      - {source_labels: [a], regex: '.', action: keep}\n", "a=é", "a=é"},
};

START_TEST(test_invalid_utf8) {
    RUN_TABLE(utf8_cases);
}
END_TEST

/* ---- chains ------------------------------------------------------------------ */

static const rcase chain_cases[] = {
    /* each step sees the previous one's result */
    {"      - {source_labels: [a], target_label: b}\n"
     "      - {source_labels: [b], regex: 'x', action: drop}\n",
     "a=x", "DROPPED"},
    {"      - {source_labels: [a], target_label: b}\n"
     "      - {source_labels: [b], target_label: c, replacement: '${1}${1}'}\n"
     "      - {regex: 'a', action: labeldrop}\n",
     "a=x", "b=x,c=xx"},
    /* a drop stops the chain */
    {"      - {source_labels: [a], action: drop}\n"
     "      - {target_label: never, replacement: v}\n",
     "a=", "DROPPED"},
    /* the Kubernetes address rewrite, a labelmap and a clean-up */
    {"      - source_labels: [__address__, __meta_port]\n"
     "        regex: '([^:]+)(?::\\d+)?;(\\d+)'\n"
     "        replacement: '$1:$2'\n"
     "        target_label: __address__\n"
     "      - {regex: '__meta_label_(.+)', action: labelmap}\n"
     "      - {source_labels: [app], target_label: app, action: uppercase}\n"
     "      - {regex: '__meta_.*', action: labeldrop}\n",
     "__address__=10.1.2.3:80,__meta_port=9100,__meta_label_app=web,__meta_other=o",
     "__address__=10.1.2.3:9100,app=WEB"},
    /* a label made by labelmap feeds keepequal */
    {"      - {regex: 'src_(.*)', action: labelmap}\n"
     "      - {source_labels: [a], target_label: b, action: keepequal}\n",
     "src_a=1,b=1", "a=1,b=1,src_a=1"},
    {"      - {regex: 'src_(.*)', action: labelmap}\n"
     "      - {source_labels: [a], target_label: b, action: keepequal}\n",
     "src_a=1,b=2", "DROPPED"},
};

START_TEST(test_chains) {
    RUN_TABLE(chain_cases);
}
END_TEST

/* ---- more groups than the per-thread match data had, deep JIT stacks --------- */

START_TEST(test_many_groups) {
    /* a small regex first, so the thread's match data has to grow */
    char got[1024];
    run("      - {source_labels: [a], regex: '(x)', target_label: b}\n", "a=x", got, sizeof got);
    ck_assert_str_eq(got, "a=x,b=x");
    char steps[1024], in[128], want[256];
    int len = snprintf(steps, sizeof steps, "      - {source_labels: [a], regex: '");
    for (int i = 0; i < 40; i++)
        len += snprintf(steps + len, sizeof steps - (size_t)len, "(.)");
    snprintf(steps + len, sizeof steps - (size_t)len, "', target_label: b, replacement: '$40$1${39}'}\n");
    snprintf(in, sizeof in, "a=abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN");
    snprintf(want, sizeof want, "%s,b=NaM", in);
    run(steps, in, got, sizeof got);
    ck_assert_str_eq(got, want);
}
END_TEST

START_TEST(test_jit_stack) {
    /* (a|b)* over 100k characters overflows JIT's stack; the interpreter
     * fallback still answers as Go would */
    config *c = load_steps("      - {source_labels: [a], regex: '(a|b)*', action: keep}\n"
                           "      - {source_labels: [a], regex: '(a|b)*', target_label: last}\n");
    const scrape_config *sc = &c->scrape_configs[0];
    size_t n = 100000;
    char *v = malloc(n + 1);
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < n; i++)
        v[i] = "ab"[i % 2];
    v[n] = 0;
    arena a;
    arena_init(&a, 0);
    labels_builder b;
    lb_init(&b);
    ck_assert_int_eq(lb_set(&b, "a", v), 0);
    ck_assert_int_eq(relabel_apply(sc->relabel_configs, sc->nrelabel_configs, &b, &a), 1);
    size_t nl;
    const label *ls = lb_labels(&b, &nl);
    ck_assert_str_eq(labels_get(ls, nl, "last"), "b");
    v[n / 2] = 'c';
    lb_reset(&b);
    ck_assert_int_eq(lb_set(&b, "a", v), 0);
    ck_assert_int_eq(relabel_apply(sc->relabel_configs, sc->nrelabel_configs, &b, &a), 0);
    lb_free(&b);
    arena_free(&a);
    free(v);
    config_free(c);
}
END_TEST

/* ---- relabel_process --------------------------------------------------------- */

START_TEST(test_process) {
    config *c = load_steps("      - {source_labels: [z], target_label: m, replacement: 'from_$1'}\n"
                           "      - {source_labels: [a], regex: drop, action: drop}\n");
    const scrape_config *sc = &c->scrape_configs[0];
    arena a;
    arena_init(&a, 0);
    label in[] = {{"z", "9"}, {"a", "1"}, {"e", ""}};
    label *out = NULL;
    size_t n = 0;
    ck_assert_int_eq(relabel_process(sc->relabel_configs, sc->nrelabel_configs, in, 3, &a, &out, &n), 1);
    /* sorted; the empty value is no label */
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(out[0].name, "a");
    ck_assert_str_eq(out[1].name, "m");
    ck_assert_str_eq(out[1].value, "from_9");
    ck_assert_str_eq(out[2].name, "z");
    ck_assert_ptr_eq(out[0].value, in[1].value); /* unchanged strings are borrowed */
    in[1].value = "drop";
    ck_assert_int_eq(relabel_process(sc->relabel_configs, sc->nrelabel_configs, in, 3, &a, &out, &n), 0);
    ck_assert_ptr_null(out);
    ck_assert_uint_eq(n, 0);
    /* no steps: the input, sorted */
    ck_assert_int_eq(relabel_process(NULL, 0, in, 2, &a, &out, &n), 1);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(out[0].name, "a");
    arena_free(&a);
    config_free(c);
}
END_TEST

/* ---- threads --------------------------------------------------------------- */

typedef struct thread_arg {
    const scrape_config *sc;
    int id;
    int failures;
} thread_arg;

static void *relabel_thread(void *p) {
    thread_arg *t = p;
    for (int i = 0; i < 2000; i++) {
        arena a;
        arena_init(&a, 0);
        labels_builder b;
        lb_init(&b);
        char addr[64], want[64];
        snprintf(addr, sizeof addr, "h%d-%d:%d", t->id, i, 9000 + i);
        snprintf(want, sizeof want, "%d/h%d-%d", 9000 + i, t->id, i);
        if (lb_set(&b, "__address__", addr) != 0 ||
            relabel_apply(t->sc->relabel_configs, t->sc->nrelabel_configs, &b, &a) != 1) {
            t->failures++;
        } else {
            size_t n;
            const label *ls = lb_labels(&b, &n);
            const char *got = labels_get(ls, n, "x");
            if (!got || strcmp(got, want) != 0)
                t->failures++;
        }
        lb_free(&b);
        arena_free(&a);
    }
    return NULL;
}

START_TEST(test_threads) {
    /* a regex with few groups and one with many, so each thread's match
     * data grows while the others match */
    config *c =
        load_steps("      - {source_labels: [__address__], regex: '([^:]+):(\\d+)', target_label: x, "
                   "replacement: '$2/$1'}\n"
                   "      - {source_labels: [x], regex: '(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)"
                   "(.)(.)(.*)', target_label: y, replacement: '$19'}\n"
                   "      - {source_labels: [x], regex: '[0-9]+/h.*', action: keep}\n");
    enum { NT = 4 };
    pthread_t th[NT];
    thread_arg args[NT];
    for (int i = 0; i < NT; i++) {
        args[i] = (thread_arg){&c->scrape_configs[0], i, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, relabel_thread, &args[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(args[i].failures, 0);
    }
    config_free(c);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("relabel");
    TCase *tc = tcase_create("relabel");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_replace);
    tcase_add_test(tc, test_keep_drop);
    tcase_add_test(tc, test_md5);
    tcase_add_test(tc, test_hashmod);
    tcase_add_test(tc, test_label_actions);
    tcase_add_test(tc, test_case);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_chains);
    tcase_add_test(tc, test_many_groups);
    tcase_add_test(tc, test_jit_stack);
    tcase_add_test(tc, test_process);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    return s;
}
