/*
 * test_metrics.c - the metrics registry and its text exposition, and logging.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

#define KILN_TEST_MAIN
#include "testutil.h"

static double seven(void *d) {
    (void)d;
    return 7;
}

START_TEST(test_counter_gauge_text) {
    metric *c = metric_new(METRIC_COUNTER, "t_requests_total", "Requests.\nSecond line \\ here.",
                           "handler,code", NULL, 0);
    metric *g = metric_new(METRIC_GAUGE, "t_temp", "Temp.", NULL, NULL, 0);
    metric_new_func(METRIC_GAUGE, "t_func", "From a function.", seven, NULL);
    const char *lv1[2] = {"/a", "200"};
    const char *lv2[2] = {"/b\"q", "500"};
    metric_add(metric_with(c, lv1), 2);
    metric_add(metric_with(c, lv1), 1);
    metric_add(metric_with(c, lv2), 1);
    metric_set(metric_default(g), 1.5e9);
    ck_assert(metric_with(c, lv1) == metric_with(c, lv1));
    ck_assert_double_eq(metric_value(metric_with(c, lv1)), 3);
    buf b = BUF_INIT;
    ck_assert_int_eq(metrics_write_text(&b), 0);
    ck_assert_ptr_nonnull(strstr(b.data, "# HELP t_requests_total Requests.\\nSecond line \\\\ here.\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "# TYPE t_requests_total counter\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "t_requests_total{handler=\"/a\",code=\"200\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "t_requests_total{handler=\"/b\\\"q\",code=\"500\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "t_temp 1.5e+09\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "t_func 7\n"));
    buf_free(&b);
    metrics_shutdown();
}
END_TEST

START_TEST(test_histogram) {
    static const double bounds[] = {0.1, 1, 10};
    metric *h = metric_new(METRIC_HISTOGRAM, "t_latency_seconds", "Latency.", "handler", bounds, 3);
    const char *lv[1] = {"/q"};
    metric_child *ch = metric_with(h, lv);
    metric_observe(ch, 0.05);
    metric_observe(ch, 0.1); /* upper bounds are inclusive */
    metric_observe(ch, 5);
    metric_observe(ch, 100);
    uint64_t n;
    double sum;
    metric_hist_read(ch, &n, &sum);
    ck_assert_uint_eq(n, 4);
    ck_assert_double_eq_tol(sum, 105.15, 1e-9);
    buf b = BUF_INIT;
    ck_assert_int_eq(metrics_write_text(&b), 0);
    ck_assert_ptr_nonnull(strstr(b.data, "t_latency_seconds_bucket{handler=\"/q\",le=\"0.1\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "t_latency_seconds_bucket{handler=\"/q\",le=\"1\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "t_latency_seconds_bucket{handler=\"/q\",le=\"10\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "t_latency_seconds_bucket{handler=\"/q\",le=\"+Inf\"} 4\n"));
    ck_assert_ptr_nonnull(strstr(b.data, "t_latency_seconds_count{handler=\"/q\"} 4\n"));
    buf_free(&b);
    metrics_shutdown();
}
END_TEST

/* Children removed from the head, the middle and the tail of a family; one
 * created after them is listed (the tail pointer follows the removals). */
START_TEST(test_remove_child) {
    metric *g = metric_new(METRIC_GAUGE, "t_group", "Per group.", "g", NULL, 0);
    const char *v[5][1] = {{"a"}, {"b"}, {"c"}, {"d"}, {"e"}};
    metric_child *c[4];
    for (int i = 0; i < 4; i++)
        metric_set(c[i] = metric_with(g, v[i]), i + 1);
    metric_remove(c[0]);
    metric_remove(c[2]);
    metric_remove(c[3]);
    metric_remove(NULL);
    metric_set(metric_with(g, v[4]), 5);
    buf b = BUF_INIT;
    ck_assert_int_eq(metrics_write_text(&b), 0);
    ck_assert_msg(strstr(b.data, "# TYPE t_group gauge\nt_group{g=\"b\"} 2\nt_group{g=\"e\"} 5\n"), "%s",
                  b.data);
    buf_free(&b);
    /* a removed combination comes back as a new child */
    ck_assert_double_eq(metric_value(metric_with(g, v[0])), 0);
}
END_TEST

static metric_child *shared_child;

static void *adder(void *arg) {
    (void)arg;
    for (int i = 0; i < 100000; i++)
        metric_add(shared_child, 1);
    return NULL;
}

START_TEST(test_concurrent_adds_are_not_lost) {
    metric *c = metric_new(METRIC_COUNTER, "t_adds_total", "Adds.", NULL, NULL, 0);
    shared_child = metric_default(c);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, adder, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ck_assert_double_eq(metric_value(shared_child), 400000);
    metrics_shutdown();
}
END_TEST

static void capture_log(int format, const char *msg, char *out, size_t n) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    log_set_fd(fds[1]);
    log_setup(LOG_DEBUG, format);
    log_at(LOG_WARN, "dir/file.c", 42, msg, "segment=%d path=%s", 3, "a b");
    log_at(LOG_DEBUG, "dir/file.c", 43, "dbg", NULL);
    close(fds[1]);
    ssize_t r = read(fds[0], out, n - 1);
    out[r > 0 ? r : 0] = 0;
    close(fds[0]);
    log_set_fd(2);
    log_setup(LOG_INFO, LOG_FORMAT_LOGFMT);
}

START_TEST(test_log_formats) {
    char out[2048];
    capture_log(LOG_FORMAT_LOGFMT, "WAL segment done", out, sizeof out);
    ck_assert_msg(
        strstr(out, " level=warn caller=file.c:42 msg=\"WAL segment done\" segment=3 path=\"a b\"\n"), "%s",
        out);
    ck_assert(strncmp(out, "ts=", 3) == 0);
    ck_assert_ptr_nonnull(strstr(out, "level=debug caller=file.c:43 msg=dbg\n"));
    capture_log(LOG_FORMAT_JSON, "say \"hi\"", out, sizeof out);
    ck_assert_msg(strstr(out, "\"level\":\"warn\",\"caller\":\"file.c:42\",\"msg\":\"say \\\"hi\\\"\","
                              "\"segment\":\"3\",\"path\":\"a b\"}\n"),
                  "%s", out);
    ck_assert_int_eq(log_level_parse("warn"), LOG_WARN);
    ck_assert_int_eq(log_level_parse("loud"), -1);
    ck_assert_int_eq(log_format_parse("json"), LOG_FORMAT_JSON);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_counter_gauge_text);
    tcase_add_test(tc, test_histogram);
    tcase_add_test(tc, test_remove_child);
    tcase_add_test(tc, test_concurrent_adds_are_not_lost);
    tcase_add_test(tc, test_log_formats);
    suite_add_tcase(s, tc);
    return s;
}
