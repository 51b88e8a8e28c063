/*
 * test_remote_queue.c - the decisions of remote/queue.c that do not need a
 * receiver: when a shard sends a batch, how the backoff grows, and the shard
 * count Prometheus' calculateDesiredShards arrives at.
 */
#include "remote/remote_int.h"

#define KILN_TEST_MAIN
#include "testutil.h"

START_TEST(test_batch_due) {
    static const struct {
        size_t n, max_send, capacity;
        int64_t oldest, deadline, now;
        int due;
    } cases[] = {
        {0, 10, 100, 0, 5000, 99999, 0},  /* nothing to send, however late */
        {9, 10, 100, 0, 5000, 4999, 0},   /* not full, deadline not reached */
        {10, 10, 100, 0, 5000, 1, 1},     /* a full batch */
        {9, 10, 100, 0, 5000, 5000, 1},   /* the deadline */
        {5, 10, 5, 1000, 5000, 1001, 1},  /* the shard is full (capacity < max_samples_per_send) */
        {1, 2000, 10000, 100, 0, 100, 1}, /* batch_send_deadline 0: at once */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(rw_batch_due(cases[i].n, cases[i].max_send, cases[i].capacity, cases[i].oldest,
                                   cases[i].deadline, cases[i].now) == cases[i].due,
                      "case %zu", i);
}
END_TEST

START_TEST(test_backoff) {
    int64_t b = 30, seen[8];
    for (int i = 0; i < 8; i++)
        seen[i] = b = rw_backoff_next(b, 1000);
    ck_assert_int_eq(seen[0], 60);
    ck_assert_int_eq(seen[3], 480);
    ck_assert_int_eq(seen[4], 960);
    ck_assert_int_eq(seen[5], 1000); /* capped at max_backoff */
    ck_assert_int_eq(seen[7], 1000);
    ck_assert_int_eq(rw_backoff_next(0, 5000), 30);
}
END_TEST

START_TEST(test_shards_desired) {
    /* nothing sent yet: keep */
    ck_assert_uint_eq(rw_shards_desired(3, 1, 50, 1000, 0, 0, 0), 3);
    /* 10,000 samples/s in; a sample takes 1 ms to send: 10 shards */
    ck_assert_uint_eq(rw_shards_desired(1, 1, 50, 10000, 1000, 1.0, 0), 10);
    /* within 30% of the current count: unchanged */
    ck_assert_uint_eq(rw_shards_desired(9, 1, 50, 10000, 1000, 1.0, 0), 9);
    ck_assert_uint_eq(rw_shards_desired(12, 1, 50, 10000, 1000, 1.0, 0), 12);
    /* a backlog of 100 s adds 5% of it a second: 10 x (1 + 0.05 x 100) = 60, capped at max_shards */
    ck_assert_uint_eq(rw_shards_desired(10, 1, 50, 10000, 1000, 1.0, 100), 50);
    ck_assert_uint_eq(rw_shards_desired(10, 1, 200, 10000, 1000, 1.0, 100), 60);
    /* little load: down to min_shards, never 0 */
    ck_assert_uint_eq(rw_shards_desired(10, 2, 50, 10, 1000, 0.001, 0), 2);
    ck_assert_uint_eq(rw_shards_desired(10, 0, 50, 10, 1000, 0.001, 0), 1);
}
END_TEST

/* Agent mode's truncation point: sent less min_age, clamped to
 * [now - max_age, now - min_age]. */
START_TEST(test_wal_keep_from) {
    const int64_t now = 1700000000000, min = 300000, max = 14400000;
    ck_assert_int_eq(remote_wal_keep_from(now - 60000, now, min, max),
                     now - 60000 - min);                                 /* sent a minute ago */
    ck_assert_int_eq(remote_wal_keep_from(0, now, min, max), now - max); /* nothing sent: by age */
    ck_assert_int_eq(remote_wal_keep_from(now - 2 * max, now, min, max), now - max); /* a long outage */
    ck_assert_int_eq(remote_wal_keep_from(INT64_MAX, now, min, max), now - min);     /* no queue */
    ck_assert_int_eq(remote_wal_keep_from(now + 1000, now, min, max),
                     now - min); /* sent ahead of the clock */
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("remote_queue");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_batch_due);
    tcase_add_test(tc, test_backoff);
    tcase_add_test(tc, test_shards_desired);
    tcase_add_test(tc, test_wal_keep_from);
    suite_add_tcase(s, tc);
    return s;
}
