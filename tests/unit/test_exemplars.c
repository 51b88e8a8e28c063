/*
 * test_exemplars.c - the exemplar store (storage/exemplars.c): the circular
 * buffer evicting the oldest exemplar of all series, series leaving the index
 * with their last exemplar, Prometheus' duplicate and out-of-order rules, the
 * 128-character limit, selects by matchers and time, and resizing; and
 * exemplars in the WAL: an appender's exemplars written as a type 4 record
 * with its samples, replayed at open (after a kill -9 of the writer too),
 * and kept by checkpoints for live series only.
 */
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "storage/storage.h"
#include "storage/wal.h"
#include "storage/walrec.h"

#define KILN_TEST_MAIN
#include "testutil.h"

typedef struct got {
    char text[4096];
    size_t len;
} got;

/* Writes "<series value of a>:<ex value>@<t>," for each exemplar. */
static int collect(void *ctx, const label *ls, size_t n, const exemplar *ex, size_t nex) {
    got *g = ctx;
    for (size_t i = 0; i < nex; i++)
        g->len += (size_t)snprintf(g->text + g->len, sizeof g->text - g->len, "%s:%g@%lld,",
                                   labels_get(ls, n, "a"), ex[i].v, (long long)ex[i].t);
    return 0;
}

/* Everything in [mint, maxt] of series matching a=~re, series in index order. */
static const char *sel(exemplar_store *es, const char *re, int64_t mint, int64_t maxt, got *g) {
    matcher m;
    kiln_err err = {0};
    ck_assert_int_eq(matcher_init(&m, MATCH_RE, "a", re, &err), 0);
    exemplar_matchers set = {&m, 1};
    memset(g, 0, sizeof *g);
    ck_assert_int_eq(exemplar_select(es, mint, maxt, &set, 1, collect, g), 0);
    matcher_free(&m);
    return g->text;
}

static int add(exemplar_store *es, const char *sname, double v, int64_t t, int has_ts) {
    label s[] = {{"a", sname}};
    label e[] = {{"trace_id", "x"}};
    exemplar ex = {e, 1, v, t, has_ts};
    kiln_err err = {0};
    return exemplar_add(es, s, 1, &ex, &err);
}

START_TEST(test_circular_buffer) {
    exemplar_store *es = exemplar_store_new(3);
    got g;
    ck_assert_int_eq(add(es, "1", 1, 10, 1), 0);
    ck_assert_int_eq(add(es, "2", 2, 11, 1), 0);
    ck_assert_int_eq(add(es, "1", 3, 12, 1), 0);
    ck_assert_str_eq(sel(es, ".*", 0, 100, &g), "1:1@10,1:3@12,2:2@11,");
    /* the fourth takes the oldest slot (series 1's first) */
    ck_assert_int_eq(add(es, "3", 4, 13, 1), 0);
    ck_assert_str_eq(sel(es, ".*", 0, 100, &g), "1:3@12,2:2@11,3:4@13,");
    /* series 2 loses its only exemplar and leaves the index */
    size_t nser = 0;
    ck_assert_int_eq(add(es, "3", 5, 14, 1), 0);
    ck_assert_uint_eq(exemplar_store_size(es, &nser), 3);
    ck_assert_uint_eq(nser, 2);
    ck_assert_str_eq(sel(es, ".*", 0, 100, &g), "1:3@12,3:4@13,3:5@14,");
    /* matchers and time */
    ck_assert_str_eq(sel(es, "3", 0, 100, &g), "3:4@13,3:5@14,");
    ck_assert_str_eq(sel(es, ".*", 13, 13, &g), "3:4@13,");
    ck_assert_str_eq(sel(es, "9", 0, 100, &g), "");
    /* many series through a small buffer: the index stays consistent */
    char name[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "s%d", i % 37);
        ck_assert_int_eq(add(es, name, i, 100 + i, 1), 0);
    }
    ck_assert_uint_eq(exemplar_store_size(es, &nser), 3);
    ck_assert_uint_eq(nser, 3);
    ck_assert_str_eq(sel(es, ".*", 0, 10000, &g), "s35:997@1097,s0:999@1099,s36:998@1098,");
    exemplar_store_free(es);
}
END_TEST

START_TEST(test_duplicates_and_order) {
    exemplar_store *es = exemplar_store_new(10);
    got g;
    ck_assert_int_eq(add(es, "1", 1, 10, 1), 0);
    ck_assert_int_eq(add(es, "1", 1, 10, 1), KILN_EEXIST); /* the same one scraped again */
    ck_assert_int_eq(add(es, "1", 2, 10, 1), KILN_EORDER); /* same time, other value */
    ck_assert_int_eq(add(es, "1", 2, 9, 1), KILN_EORDER);
    /* without a timestamp: equal labels and value are the same exemplar, whatever the scrape time */
    ck_assert_int_eq(add(es, "2", 5, 20, 0), 0);
    ck_assert_int_eq(add(es, "2", 5, 30, 0), KILN_EEXIST);
    ck_assert_int_eq(add(es, "2", 6, 30, 0), 0);
    ck_assert_str_eq(sel(es, ".*", 0, 100, &g), "1:1@10,2:5@20,2:6@30,");
    /* 128 characters of names and values at most */
    char v[200];
    memset(v, 'x', sizeof v);
    v[120] = 0;
    label s[] = {{"a", "3"}};
    label e[] = {{"trace_id", v}};
    exemplar ex = {e, 1, 1, 50, 1};
    kiln_err err = {0};
    ck_assert_int_eq(exemplar_add(es, s, 1, &ex, &err), 0); /* 8 + 120 */
    v[120] = 'x';
    v[121] = 0;
    ex.t = 51;
    ck_assert_int_eq(exemplar_add(es, s, 1, &ex, &err), KILN_EINVAL);
    exemplar_store_free(es);
}
END_TEST

START_TEST(test_resize) {
    exemplar_store *es = exemplar_store_new(4);
    got g;
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(add(es, i % 2 ? "odd" : "even", i, 10 + i, 1), 0);
    /* smaller: the newest two stay */
    ck_assert_int_eq(exemplar_store_resize(es, 2), 0);
    ck_assert_str_eq(sel(es, ".*", 0, 100, &g), "even:2@12,odd:3@13,");
    /* larger: nothing lost, and room for more */
    ck_assert_int_eq(exemplar_store_resize(es, 5), 0);
    ck_assert_int_eq(add(es, "odd", 9, 20, 1), 0);
    ck_assert_int_eq(add(es, "new", 8, 21, 1), 0);
    ck_assert_str_eq(sel(es, ".*", 0, 100, &g), "even:2@12,odd:3@13,odd:9@20,new:8@21,");
    /* 0: nothing is kept or stored */
    size_t nser = 0;
    ck_assert_int_eq(exemplar_store_resize(es, 0), 0);
    ck_assert_uint_eq(exemplar_store_size(es, &nser), 0);
    ck_assert_uint_eq(nser, 0);
    ck_assert_int_eq(add(es, "odd", 10, 30, 1), 0);
    ck_assert_str_eq(sel(es, ".*", 0, 100, &g), "");
    exemplar_store_free(es);
}
END_TEST

/* ---- in the WAL ------------------------------------------------------------ */

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb;
    (void)flag;
    (void)f;
    return remove(p);
}

static char *tmp_dir(void) {
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/kiln-test-exwal-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}

static storage *open_ex(const char *dir) {
    storage_opts o = storage_opts_default();
    o.dir = dir;
    o.max_exemplars = 100;
    storage *s = NULL;
    kiln_err err = {0};
    ck_assert_msg(storage_open(&o, &s, &err) == 0, "open: %s", err.msg);
    return s;
}

/* One batch: a sample at t for {a=name} and, when tid, an exemplar (tid, v, t); the exemplar's result. */
static int put_ex(storage *s, const char *name, int64_t t, const char *tid, double v) {
    label ls[] = {{"__name__", "m"}, {"a", name}};
    label el[] = {{"trace_id", tid}};
    appender *a = storage_appender(s);
    uint64_t ref = 0;
    kiln_err err = {0};
    int src =
        appender_append(a, &ref, ls, 2, t, 1, &err); /* an old sample is refused, its exemplar judged apart */
    ck_assert(src == 0 || src == KILN_EORDER);
    exemplar e = {el, 1, v, t, 1};
    int rc = tid ? appender_append_exemplar(a, ref, &e, &err) : 0;
    ck_assert_int_eq(appender_commit(a, &err), 0);
    return rc;
}

/* The exemplars of the WAL's type 4 records as "<ref>:<trace_id>=<v>@<t>,". */
static void wal_exemplars(const char *dir, got *g) {
    char wd[128];
    snprintf(wd, sizeof wd, "%s/wal", dir);
    wal_reader *r;
    kiln_err err = {0};
    ck_assert_int_eq(wal_reader_open(wd, &r, &err), 0);
    memset(g, 0, sizeof *g);
    const uint8_t *rec;
    size_t len;
    arena a;
    arena_init(&a, 0);
    while (wal_reader_next(r, &rec, &len, &err) == 1) {
        if (walrec_type(rec, len) != WALREC_EXEMPLARS)
            continue;
        walrec_exemplar *e;
        size_t n;
        ck_assert_int_eq(walrec_decode_exemplars(rec, len, &a, &e, &n, &err), 0);
        for (size_t i = 0; i < n; i++) {
            ck_assert_uint_eq(e[i].nlabels, 1);
            g->len += (size_t)snprintf(g->text + g->len, sizeof g->text - g->len, "%llu:%.*s=%g@%lld,",
                                       (unsigned long long)e[i].ref, (int)e[i].labels[0].value_len,
                                       e[i].labels[0].value, e[i].v, (long long)e[i].t);
        }
    }
    arena_free(&a);
    wal_reader_close(r);
}

START_TEST(test_appender_logs_and_replays) {
    char *dir = tmp_dir();
    storage *s = open_ex(dir);
    got g;
    ck_assert_int_eq(put_ex(s, "x", 1000, "t1", 0.5), 0);
    ck_assert_int_eq(put_ex(s, "y", 1000, "t2", 7), 0);
    ck_assert_int_eq(put_ex(s, "x", 2000, "t1", 0.75), 0);
    ck_assert_int_eq(put_ex(s, "x", 2000, "t1", 0.75), KILN_EEXIST); /* the same again */
    ck_assert_int_eq(put_ex(s, "y", 500, "t3", 1), KILN_EORDER);
    /* two of one series in one batch: checked against the one staged before */
    label ls[] = {{"__name__", "m"}, {"a", "z"}};
    label el[] = {{"trace_id", "t4"}};
    appender *a = storage_appender(s);
    uint64_t ref = 0;
    kiln_err err = {0};
    ck_assert_int_eq(appender_append(a, &ref, ls, 2, 3000, 1, &err), 0);
    exemplar e = {el, 1, 4, 3000, 1};
    ck_assert_int_eq(appender_append_exemplar(a, ref, &e, &err), 0);
    ck_assert_int_eq(appender_append_exemplar(a, ref, &e, &err), KILN_EEXIST);
    e.t = 2999;
    ck_assert_int_eq(appender_append_exemplar(a, ref, &e, &err), KILN_EORDER);
    ck_assert_int_eq(appender_append_exemplar(a, 987654, &e, &err), KILN_EINVAL); /* no such series */
    ck_assert_int_eq(appender_commit(a, &err), 0);
    /* a rolled-back batch logs and stores nothing */
    a = storage_appender(s);
    ck_assert_int_eq(appender_append(a, &ref, ls, 2, 4000, 1, &err), 0);
    e.t = 4000;
    ck_assert_int_eq(appender_append_exemplar(a, ref, &e, &err), 0);
    appender_rollback(a);
    const char *want = "x:0.5@1000,x:0.75@2000,y:7@1000,z:4@3000,";
    ck_assert_str_eq(sel(storage_exemplars(s), ".*", 0, 10000, &g), want);
    ck_assert_int_eq(storage_close(s, &err), 0);
    wal_exemplars(dir, &g);
    ck_assert_str_eq(g.text, "1:t1=0.5@1000,2:t2=7@1000,1:t1=0.75@2000,3:t4=4@3000,");
    s = open_ex(dir);
    ck_assert_str_eq(sel(storage_exemplars(s), ".*", 0, 10000, &g), want);
    /* replayed exemplars count as the newest: the same scraped again is a duplicate */
    ck_assert_int_eq(put_ex(s, "x", 2000, "t1", 0.75), KILN_EEXIST);
    ck_assert_int_eq(storage_close(s, &err), 0);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}
END_TEST

START_TEST(test_replay_after_kill9) {
    char *dir = tmp_dir();
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* the writer: commits, says so, and is killed with its storage open */
        storage *s = open_ex(dir);
        char tid[16];
        for (int i = 0; i < 50; i++) {
            snprintf(tid, sizeof tid, "t%d", i);
            if (put_ex(s, i % 2 ? "odd" : "even", 1000 + i, tid, i) != 0)
                _exit(3);
        }
        if (write(p[1], "k", 1) != 1)
            _exit(4);
        for (;;)
            pause();
    }
    close(p[1]);
    char c;
    ck_assert_int_eq(read(p[0], &c, 1), 1);
    close(p[0]);
    kill(pid, SIGKILL);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    storage *s = open_ex(dir);
    got g;
    sel(storage_exemplars(s), "odd", 0, 10000, &g);
    /* 25 exemplars of odd at 1001, 1003, ... 1049 */
    ck_assert_uint_eq(strlen(g.text), strlen("odd:1@1001,") * 5 + strlen("odd:11@1011,") * 20);
    ck_assert(strncmp(g.text, "odd:1@1001,odd:3@1003,", 22) == 0);
    ck_assert_ptr_nonnull(strstr(g.text, "odd:49@1049,"));
    size_t nser;
    ck_assert_uint_eq(exemplar_store_size(storage_exemplars(s), &nser), 50);
    ck_assert_uint_eq(nser, 2);
    kiln_err err;
    ck_assert_int_eq(storage_close(s, &err), 0);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}
END_TEST

static int keep_odd(uint64_t ref, void *d) {
    (void)d;
    return ref & 1;
}

START_TEST(test_checkpoint_keeps_live_series) {
    char *dir = tmp_dir();
    wal *w;
    kiln_err err = {0};
    ck_assert_int_eq(wal_open(dir, NULL, &w, &err), 0);
    walrec_label l[] = {{"trace_id", 8, "abc", 3}};
    /* series 1 (live) and 2 (dead), exemplars before and after mint 100 */
    walrec_exemplar e[] = {{1, 50, 1, l, 1}, {1, 150, 2, l, 1}, {2, 150, 3, l, 1}, {1, 200, 4, NULL, 0}};
    buf b = BUF_INIT;
    ck_assert_int_eq(walrec_encode_exemplars(&b, e, 4), 0);
    ck_assert_int_eq(wal_log(w, b.data, b.len, &err), 0);
    int cut = wal_next_segment(w, &err);
    ck_assert_int_ge(cut, 1);
    wal_checkpoint_opts co = {.mint = 100};
    wal_checkpoint_stats st;
    ck_assert_msg(wal_checkpoint(dir, 0, cut - 1, keep_odd, NULL, &co, &st, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(st.exemplars_kept, 2);
    ck_assert_uint_eq(st.exemplars_dropped, 2);
    ck_assert_int_eq(wal_truncate_before(w, cut, &err), 0);
    ck_assert_int_eq(wal_close(w, &err), 0);
    /* what the checkpoint holds, read back */
    wal_reader *r;
    ck_assert_int_eq(wal_reader_open(dir, &r, &err), 0);
    const uint8_t *rec;
    size_t len, n, total = 0;
    arena a;
    arena_init(&a, 0);
    while (wal_reader_next(r, &rec, &len, &err) == 1) {
        walrec_exemplar *x;
        ck_assert_int_eq(walrec_decode_exemplars(rec, len, &a, &x, &n, &err), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert(x[0].ref == 1 && x[0].t == 150 && x[0].v == 2 && x[0].nlabels == 1);
        ck_assert(x[1].ref == 1 && x[1].t == 200 && x[1].v == 4 && x[1].nlabels == 0);
        ck_assert(memcmp(x[0].labels[0].value, "abc", 3) == 0);
        total += n;
    }
    ck_assert_uint_eq(total, 2);
    arena_free(&a);
    wal_reader_close(r);
    buf_free(&b);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("exemplars");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_circular_buffer);
    tcase_add_test(tc, test_duplicates_and_order);
    tcase_add_test(tc, test_resize);
    tcase_add_test(tc, test_appender_logs_and_replays);
    tcase_add_test(tc, test_replay_after_kill9);
    tcase_add_test(tc, test_checkpoint_keeps_live_series);
    suite_add_tcase(s, tc);
    return s;
}
