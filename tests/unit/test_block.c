/*
 * test_block.c - blocks: written, read back through postings and chunk
 * refs, read by Prometheus' own promtool (analyze and dump, every sample
 * compared), and damaged index and chunk files reported.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/block.h"
#include "storage/xorchunk.h"
#define KILN_TEST_MAIN
#include "testutil.h"

#define NSERIES 300
#define NCHUNKS 3
#define PER 120
#define T0 1700000000000LL
#define STEP 15000LL

static double value_of(int s, int k) {
    return s * 1000.0 + k * 0.5;
}

/* Writes the test block into a new temporary directory. */
static void write_block(char *dir, char ulid[BLOCK_ULID_LEN + 1]) {
    strcpy(dir, "/tmp/kiln_block_test_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    block_writer *w = NULL;
    kiln_err err = {0};
    int64_t maxt = T0 + (int64_t)NCHUNKS * PER * STEP;
    ck_assert_msg(block_writer_new(dir, T0, maxt, &w, &err) == 0, "%s", err.msg);
    /* labels_cmp order: i is zero-padded */
    for (int s = 0; s < NSERIES; s++) {
        char iv[16];
        snprintf(iv, sizeof iv, "%04d", s);
        label ls[3] = {{"__name__", "m"}, {"even", s % 2 ? "0" : "1"}, {"i", iv}};
        xorchunk xc[NCHUNKS];
        block_chunk bc[NCHUNKS];
        for (int c = 0; c < NCHUNKS; c++) {
            xorchunk_init(&xc[c]);
            for (int k = 0; k < PER; k++) {
                int kk = c * PER + k;
                ck_assert_int_eq(xorchunk_append(&xc[c], T0 + kk * STEP, value_of(s, kk)), 0);
            }
            bc[c].data = xorchunk_data(&xc[c], &bc[c].len);
            bc[c].mint = T0 + (int64_t)c * PER * STEP;
            bc[c].maxt = bc[c].mint + (PER - 1) * STEP;
            bc[c].enc = 1; /* XOR */
        }
        ck_assert_msg(block_writer_add(w, ls, 3, bc, NCHUNKS, &err) == 0, "%s", err.msg);
        for (int c = 0; c < NCHUNKS; c++)
            xorchunk_free(&xc[c]);
    }
    ck_assert_msg(block_writer_commit(w, ulid, &err) == 0, "%s", err.msg);
}

static void rm_dir(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

typedef struct got {
    int nseries;
    size_t nsamples;
    int bad;
} got;

static int collect(void *ctx, const label *ls, size_t nls, const sample *s, size_t n, const hsample *hs,
                   size_t nh) {
    got *g = ctx;
    (void)hs;
    ck_assert_uint_eq(nh, 0);
    const char *iv = labels_get(ls, nls, "i");
    int si = iv ? atoi(iv) : -1;
    for (size_t k = 0; k < n; k++) {
        int kk = (int)((s[k].t - T0) / STEP);
        if (s[k].v != value_of(si, kk))
            g->bad++;
    }
    g->nseries++;
    g->nsamples += n;
    return 0;
}

START_TEST(test_write_read) {
    char dir[64], ulid[BLOCK_ULID_LEN + 1];
    write_block(dir, ulid);
    block *b = NULL;
    kiln_err err = {0};
    ck_assert_msg(block_open(dir, ulid, &b, &err) == 0, "%s", err.msg);
    const block_meta *m = block_get_meta(b);
    ck_assert_int_eq(m->series, NSERIES);
    ck_assert_int_eq(m->chunks, NSERIES * NCHUNKS);
    ck_assert_int_eq(m->samples, NSERIES * NCHUNKS * PER);
    ck_assert(m->mint == T0);

    matcher ms[3];
    ck_assert_int_eq(matcher_init(&ms[0], MATCH_EQ, "__name__", "m", &err), 0);
    ck_assert_int_eq(matcher_init(&ms[1], MATCH_EQ, "even", "1", &err), 0);
    arena a;
    arena_init(&a, 0);
    got g = {0};
    ck_assert_int_eq(block_select(b, ms, 2, NULL, INT64_MIN, INT64_MAX, 0, &a, collect, &g, &err), 0);
    ck_assert_int_eq(g.nseries, NSERIES / 2);
    ck_assert_uint_eq(g.nsamples, (size_t)NSERIES / 2 * NCHUNKS * PER);
    ck_assert_int_eq(g.bad, 0);
    /* a time range inside the second chunk */
    memset(&g, 0, sizeof g);
    int64_t from = T0 + (PER + 10) * STEP, to = T0 + (PER + 19) * STEP;
    ck_assert_int_eq(block_select(b, ms, 1, NULL, from, to, 0, &a, collect, &g, &err), 0);
    ck_assert_int_eq(g.nseries, NSERIES);
    ck_assert_uint_eq(g.nsamples, (size_t)NSERIES * 10);
    /* regexes, and a matcher that matches series without the label */
    matcher_free(&ms[1]);
    ck_assert_int_eq(matcher_init(&ms[1], MATCH_RE, "i", "00[0-4].", &err), 0);
    ck_assert_int_eq(matcher_init(&ms[2], MATCH_EQ, "missing", "", &err), 0);
    memset(&g, 0, sizeof g);
    ck_assert_int_eq(block_select(b, ms, 3, NULL, INT64_MIN, INT64_MAX, 1, &a, collect, &g, &err), 0);
    ck_assert_int_eq(g.nseries, 50);
    ck_assert_uint_eq(g.nsamples, 0);
    /* out of the block's range: nothing */
    memset(&g, 0, sizeof g);
    ck_assert_int_eq(block_select(b, ms, 1, NULL, 0, T0 - 1, 0, &a, collect, &g, &err), 0);
    ck_assert_int_eq(g.nseries, 0);
    for (int i = 0; i < 3; i++)
        matcher_free(&ms[i]);
    arena_free(&a);
    block_close(b);

    char **list = NULL;
    size_t n = 0;
    ck_assert_int_eq(block_list(dir, 1, &list, &n, &err), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(list[0], ulid);
    free(list[0]);
    free(list);
    rm_dir(dir);
}
END_TEST

START_TEST(test_promtool_reads_it) {
    if (access("/usr/bin/promtool", X_OK) != 0) {
        fprintf(stderr, "promtool missing: `make deps` installs it\n");
        ck_abort_msg("promtool is needed for this test");
    }
    char dir[64], ulid[BLOCK_ULID_LEN + 1], cmd[512];
    write_block(dir, ulid);
    snprintf(cmd, sizeof cmd, "promtool tsdb analyze %s %s > %s/analyze.txt 2>&1", dir, ulid, dir);
    ck_assert_msg(system(cmd) == 0, "promtool tsdb analyze failed");
    snprintf(cmd, sizeof cmd, "%s/analyze.txt", dir);
    FILE *f = fopen(cmd, "r");
    char line[512];
    int saw_series = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "Series: 300"))
            saw_series = 1;
    fclose(f);
    ck_assert_msg(saw_series, "analyze did not report 300 series");
    /* every sample through promtool's reader (it opens the directory as a
     * database, which wants a wal/ directory) */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/wal", dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "promtool tsdb dump %s > %s/dump.txt 2>%s/dump.err", dir, dir, dir);
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof cmd, "cat %s/dump.err >&2", dir);
        ck_assert_int_eq(system(cmd), 0);
        ck_abort_msg("promtool tsdb dump failed");
    }
    snprintf(cmd, sizeof cmd, "%s/dump.txt", dir);
    f = fopen(cmd, "r");
    size_t lines = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        /* {__name__="m", even="1", i="0007"} 7000.5 1700000015000 */
        char *ip = strstr(line, "i=\"");
        char *close = strchr(line, '}');
        if (!ip || !close) {
            bad++;
            continue;
        }
        int si = atoi(ip + 3);
        double v = strtod(close + 1, NULL);
        long long t = atoll(strrchr(line, ' ') + 1);
        int kk = (int)((t - T0) / STEP);
        if (v != value_of(si, kk))
            bad++;
        lines++;
    }
    fclose(f);
    ck_assert_uint_eq(lines, (size_t)NSERIES * NCHUNKS * PER);
    ck_assert_uint_eq(bad, 0);
    rm_dir(dir);
}
END_TEST

static void flip(const char *path, long off) {
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    unsigned char c;
    ck_assert_int_eq(pread(fd, &c, 1, off), 1);
    c ^= 0x55;
    ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

START_TEST(test_damage_is_reported) {
    char dir[64], ulid[BLOCK_ULID_LEN + 1], p[256];
    kiln_err err = {0};
    block *b = NULL;
    /* a byte inside the series section */
    write_block(dir, ulid);
    snprintf(p, sizeof p, "%s/%s/index", dir, ulid);
    flip(p, 4096);
    ck_assert_int_eq(block_open(dir, ulid, &b, &err), KILN_ECORRUPT);
    ck_assert_msg(strstr(err.msg, ulid) != NULL, "%s", err.msg);
    rm_dir(dir);
    /* a byte inside a chunk: open works, reading that chunk fails */
    write_block(dir, ulid);
    snprintf(p, sizeof p, "%s/%s/chunks/000001", dir, ulid);
    flip(p, 100);
    ck_assert_int_eq(block_open(dir, ulid, &b, &err), 0);
    matcher m;
    ck_assert_int_eq(matcher_init(&m, MATCH_EQ, "__name__", "m", &err), 0);
    arena a;
    arena_init(&a, 0);
    got g = {0};
    ck_assert_int_eq(block_select(b, &m, 1, NULL, INT64_MIN, INT64_MAX, 0, &a, collect, &g, &err),
                     KILN_ECORRUPT);
    ck_assert_msg(strstr(err.msg, "damaged") != NULL, "%s", err.msg);
    matcher_free(&m);
    arena_free(&a);
    block_close(b);
    /* a half-written block (crash before the rename) is cleaned up */
    snprintf(p, sizeof p, "mkdir -p %s/01ABCDEFGHJKMNPQRSTVWXYZ00.tmp-for-creation/chunks", dir);
    ck_assert_int_eq(system(p), 0);
    char **list = NULL;
    size_t n = 0;
    ck_assert_int_eq(block_list(dir, 1, &list, &n, &err), 0);
    ck_assert_uint_eq(n, 1);
    free(list[0]);
    free(list);
    snprintf(p, sizeof p, "%s/01ABCDEFGHJKMNPQRSTVWXYZ00.tmp-for-creation", dir);
    ck_assert_int_ne(access(p, F_OK), 0);
    ck_assert_int_eq(block_delete(dir, ulid, &err), 0);
    ck_assert_int_eq(block_list(dir, 1, &list, &n, &err), 0);
    ck_assert_uint_eq(n, 0);
    free(list);
    rm_dir(dir);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("block");
    TCase *tc = tcase_create("block");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_write_read);
    tcase_add_test(tc, test_promtool_reads_it);
    tcase_add_test(tc, test_damage_is_reported);
    suite_add_tcase(s, tc);
    return s;
}
