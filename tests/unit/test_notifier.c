/*
 * test_notifier.c - rules/notifier.c: the Alertmanager v2 JSON byte for
 * byte, the queue dropping its oldest alerts, batches of 64, external labels
 * and every kind of relabeling, HTTP client settings, against a small
 * in-process HTTP server that records what it is sent; then against the
 * real Debian prometheus-alertmanager: alerts posted and read back with
 * GET /api/v2/alerts, and an Alertmanager that is down and then comes up.
 *
 * The real Alertmanagers: the unchecked fixture (run in the runner's own
 * process, before and after the forked tests, whether they fail or not)
 * makes a temporary directory, starts one Alertmanager and, at the end,
 * kills it and removes the directory.  The down-then-up test starts a second
 * one itself, with PR_SET_PDEATHSIG so it dies with the test's process
 * even when the test fails; the fixture removes its directory too.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "rules/notifier.h"
#include "scrape/relabel.h"
#include "storage/storage.h"
#define KILN_TEST_MAIN
#include "testutil.h"

#define AM_BIN "/usr/bin/prometheus-alertmanager"

/* ---- helpers ---------------------------------------------------------------------------------- */

static config *load(const char *yaml) {
    config *c = NULL;
    kiln_err err = {0};
    ck_assert_msg(config_load_string("t.yml", yaml, strlen(yaml), &c, &err) == 0, "%s\n%s", err.msg, yaml);
    return c;
}

static notifier *make(const config *c, size_t cap) {
    notifier_options o = {.queue_capacity = cap, .relabel = relabel_process};
    notifier *n = NULL;
    kiln_err err = {0};
    ck_assert_msg(notifier_new(c, &o, &n, &err) == 0, "%s", err.msg);
    return n;
}

/* Sends one alert alertname=name (plus extra labels "k=v" pairs, NULL-ended). */
static void send_named(notifier *n, const char *name, const char *k, const char *v) {
    label ls[2] = {{"alertname", name}, {k, v}};
    notifier_alert a = {.labels = ls, .nlabels = k ? 2 : 1, .starts_at_ms = 1000, .ends_at_ms = 2000};
    ck_assert_int_eq(notifier_send(n, &a, 1), 0);
}

static int count_of(const char *hay, const char *needle) {
    int k = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        k++;
    return k;
}

static double metric_text_value(const char *line_prefix) {
    buf b = BUF_INIT;
    ck_assert_int_eq(metrics_write_text(&b), 0);
    double v = -1;
    for (const char *p = b.data; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, line_prefix, strlen(line_prefix)) == 0) {
            v = strtod(p + strlen(line_prefix), NULL);
            break;
        }
    buf_free(&b);
    return v;
}

/* A port on 127.0.0.1 free a moment ago. */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* The tests' files live below tmp_root, which the unchecked fixtures make
 * and remove in the runner's process, so it goes even when a test fails. */
static char tmp_root[64];

static void root_setup(void) {
    snprintf(tmp_root, sizeof tmp_root, "/tmp/kiln-notifier-XXXXXX");
    if (!mkdtemp(tmp_root))
        tmp_root[0] = 0;
}

static void root_teardown(void) {
    kiln_err err = {0};
    if (tmp_root[0] && fileio_rm_rf(tmp_root, &err) != 0)
        fprintf(stderr, "%s\n", err.msg);
}

/* A new directory tmp_root/name in dir[256]. */
static void tmp_dir(const char *name, char *dir) {
    ck_assert_msg(tmp_root[0], "no temporary directory");
    snprintf(dir, 256, "%s/%s", tmp_root, name);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
}

/* A configuration with one Alertmanager, 127.0.0.1:port, in one static config. */
static config *load_one_am(int port, const char *extra) {
    char y[512];
    snprintf(y, sizeof y,
             "alerting:\n  alertmanagers:\n    - %sstatic_configs:\n        - targets: ['127.0.0.1:%d']\n",
             extra, port);
    return load(y);
}

/* ---- a recording HTTP server ------------------------------------------------------------------- */

#define SRV_MAX 64

typedef struct srv {
    int fd, port, status;
    pthread_t th;
    pthread_mutex_t mu;
    int nreq;
    char *req[SRV_MAX]; /* each request whole: request line, headers, body */
} srv;

static void *srv_main(void *arg) {
    srv *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        buf in = BUF_INIT;
        char tmp[4096];
        for (;;) { /* requests on this connection, one at a time */
            char *end;
            while (!(end = in.data ? strstr(in.data, "\r\n\r\n") : NULL)) {
                ssize_t k = read(c, tmp, sizeof tmp);
                if (k <= 0)
                    goto next;
                buf_append(&in, tmp, (size_t)k);
            }
            size_t head = (size_t)(end - in.data) + 4;
            const char *cl = strcasestr(in.data, "Content-Length:");
            size_t body = cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
            while (in.len < head + body) {
                ssize_t k = read(c, tmp, sizeof tmp);
                if (k <= 0)
                    goto next;
                buf_append(&in, tmp, (size_t)k);
            }
            pthread_mutex_lock(&s->mu);
            if (s->nreq < SRV_MAX)
                s->req[s->nreq++] = strndup(in.data, head + body);
            int status = s->status;
            pthread_mutex_unlock(&s->mu);
            char resp[128];
            int rl = snprintf(resp, sizeof resp, "HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\nok", status);
            if (write(c, resp, (size_t)rl) != rl)
                goto next;
            memmove(in.data, in.data + head + body, in.len - head - body);
            in.len -= head + body;
            in.data[in.len] = 0;
        }
    next:
        buf_free(&in);
        close(c);
    }
}

static void srv_start(srv *s, int status) {
    memset(s, 0, sizeof *s);
    s->status = status;
    pthread_mutex_init(&s->mu, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    ck_assert_int_eq(bind(s->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(s->fd, 16), 0);
    ck_assert_int_eq(getsockname(s->fd, (struct sockaddr *)&sa, &sl), 0);
    s->port = ntohs(sa.sin_port);
    ck_assert_int_eq(pthread_create(&s->th, NULL, srv_main, s), 0);
}

/* Stops the server once its clients have closed their connections. */
static void srv_stop(srv *s) {
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->th, NULL);
    close(s->fd);
    for (int i = 0; i < s->nreq; i++)
        free(s->req[i]);
    pthread_mutex_destroy(&s->mu);
}

/* Waits up to 10 s until the server has recorded `want` requests. */
static int srv_wait(srv *s, int want) {
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&s->mu);
        int k = s->nreq;
        pthread_mutex_unlock(&s->mu);
        if (k >= want)
            return k;
        usleep(10000);
    }
    return -1;
}

/* The server's requests, only after srv_wait. */
static const char *srv_req(srv *s, int i) {
    pthread_mutex_lock(&s->mu);
    const char *r = i < s->nreq ? s->req[i] : NULL;
    pthread_mutex_unlock(&s->mu);
    ck_assert_ptr_nonnull(r);
    return r;
}

/* ---- the JSON encoding --------------------------------------------------------------------------- */

START_TEST(test_encode_exact) {
    label l1[] = {{"severity", "page"}, {"alertname", "High<Errors>"}, {"job", "a\"b\n"}};
    label a1[] = {{"summary", "rate is 5 & rising"}, {"description", "ünïcode"}};
    label l2[] = {{"alertname", "B"}};
    notifier_alert alerts[] = {
        {.labels = l1,
         .nlabels = 3,
         .annotations = a1,
         .nannotations = 2,
         .starts_at_ms = 1700000000123,
         .ends_at_ms = 1700000300000,
         .generator_url = "http://kiln:9090/graph?g0.expr=up"},
        {.labels = l2, .nlabels = 1, .starts_at_ms = 0, .ends_at_ms = NOTIFIER_TIME_ZERO},
    };
    buf b = BUF_INIT;
    notifier_encode(&b, alerts, 2);
    ck_assert_int_eq(buf_error(&b), 0);
    ck_assert_str_eq(
        b.data, "[{\"annotations\":{\"description\":\"ünïcode\",\"summary\":\"rate is 5 \\u0026 rising\"},"
                "\"endsAt\":\"2023-11-14T22:18:20.000Z\",\"startsAt\":\"2023-11-14T22:13:20.123Z\","
                "\"generatorURL\":\"http://kiln:9090/graph?g0.expr=up\","
                "\"labels\":{\"alertname\":\"High\\u003cErrors\\u003e\",\"job\":\"a\\\"b\\n\","
                "\"severity\":\"page\"}},"
                "{\"endsAt\":\"0001-01-01T00:00:00.000Z\",\"startsAt\":\"1970-01-01T00:00:00.000Z\","
                "\"labels\":{\"alertname\":\"B\"}}]");
    buf_reset(&b);
    notifier_encode(&b, alerts, 0);
    ck_assert_str_eq(b.data, "[]");
    /* before the epoch: the millisecond part stays positive */
    notifier_alert old = {.labels = l2, .nlabels = 1, .starts_at_ms = -1, .ends_at_ms = -1500};
    buf_reset(&b);
    notifier_encode(&b, &old, 1);
    ck_assert_str_eq(b.data,
                     "[{\"endsAt\":\"1969-12-31T23:59:58.500Z\",\"startsAt\":\"1969-12-31T23:59:59.999Z\","
                     "\"labels\":{\"alertname\":\"B\"}}]");
    buf_free(&b);
}
END_TEST

/* ---- the queue and batches ---------------------------------------------------------------------- */

/* A notifier (queue capacity cap, not running) sending to a recording server. */
typedef struct one_am {
    srv s;
    config *c;
    notifier *n;
} one_am;

static void one_am_start(one_am *f, size_t cap) {
    srv_start(&f->s, 200);
    f->c = load_one_am(f->s.port, "");
    f->n = make(f->c, cap);
}

static void one_am_stop(one_am *f) {
    notifier_free(f->n);
    config_free(f->c);
    srv_stop(&f->s);
}

/* Sends alerts alertname=<fmt % i> for i in [from, to), one call each. */
static void send_numbered(notifier *n, const char *fmt, int from, int to) {
    char name[32];
    for (int i = from; i < to; i++) {
        snprintf(name, sizeof name, fmt, i);
        send_named(n, name, NULL, NULL);
    }
}

START_TEST(test_queue_drops_oldest) {
    one_am f;
    one_am_start(&f, 3);
    notifier *n = f.n;
    srv *s = &f.s;
    double dropped0 = metric_text_value("kiln_notifications_dropped_total ");
    send_numbered(n, "a%d", 1, 6);
    ck_assert_uint_eq(notifier_queue_length(n), 3);
    ck_assert_double_eq(metric_text_value("kiln_notifications_dropped_total ") - dropped0, 2);
    ck_assert_double_eq(metric_text_value("kiln_notifications_queue_length "), 3);
    ck_assert_double_eq(metric_text_value("kiln_notifications_queue_capacity "), 3);
    /* one call with more than the capacity keeps its newest */
    label ls[5][1];
    notifier_alert many[5];
    const char *names[5] = {"b1", "b2", "b3", "b4", "b5"};
    for (int i = 0; i < 5; i++) {
        ls[i][0] = (label){"alertname", names[i]};
        many[i] = (notifier_alert){.labels = ls[i], .nlabels = 1};
    }
    ck_assert_int_eq(notifier_send(n, many, 5), 0);
    ck_assert_uint_eq(notifier_queue_length(n), 3);
    ck_assert_double_eq(metric_text_value("kiln_notifications_dropped_total ") - dropped0, 7);
    ck_assert_int_eq(notifier_run(n), 0);
    ck_assert_int_eq(srv_wait(s, 1), 1);
    const char *r = srv_req(s, 0);
    ck_assert_int_eq(count_of(r, "\"labels\":"), 3);
    ck_assert_ptr_null(strstr(r, "\"b2\""));
    ck_assert_ptr_nonnull(strstr(r, "\"b3\""));
    ck_assert_ptr_nonnull(strstr(r, "\"b5\""));
    ck_assert_ptr_nonnull(strstr(r, "POST /api/v2/alerts HTTP/1.1"));
    ck_assert_ptr_nonnull(strstr(r, "Content-Type: application/json"));
    one_am_stop(&f);
}
END_TEST

START_TEST(test_batches_of_64) {
    one_am f;
    one_am_start(&f, 0);
    notifier *n = f.n;
    srv *s = &f.s;
    send_numbered(n, "a%03d", 0, 150);
    ck_assert_int_eq(notifier_run(n), 0);
    ck_assert_int_eq(srv_wait(s, 3), 3);
    usleep(100000);
    ck_assert_int_eq(srv_wait(s, 3), 3); /* and no fourth */
    ck_assert_int_eq(count_of(srv_req(s, 0), "\"labels\":"), 64);
    ck_assert_int_eq(count_of(srv_req(s, 1), "\"labels\":"), 64);
    ck_assert_int_eq(count_of(srv_req(s, 2), "\"labels\":"), 22);
    ck_assert_ptr_nonnull(strstr(srv_req(s, 0), "\"a000\""));
    ck_assert_ptr_nonnull(strstr(srv_req(s, 2), "\"a149\""));
    ck_assert_uint_eq(notifier_queue_length(n), 0);
    char line[128];
    snprintf(line, sizeof line,
             "kiln_notifications_sent_total{alertmanager=\"http://127.0.0.1:%d/api/v2/alerts\"} ", s->port);
    ck_assert_double_eq(metric_text_value(line), 150);
    one_am_stop(&f);
}
END_TEST

/* ---- targets, labels and HTTP settings ------------------------------------------------------------ */

START_TEST(test_relabel_and_client) {
    srv s, bad;
    srv_start(&s, 200);
    srv_start(&bad, 500);
    char dir[256];
    tmp_dir("relabel", dir);
    char sd[300], secret[300], y[4096];
    snprintf(sd, sizeof sd, "%s/ams.yml", dir);
    snprintf(secret, sizeof secret, "%s/pw", dir);
    FILE *f = fopen(sd, "w");
    fprintf(f, "- targets: ['127.0.0.1:%d']\n  labels: {role: bad}\n", bad.port);
    fclose(f);
    f = fopen(secret, "w");
    fprintf(f, "  s3cret\n");
    fclose(f);
    snprintf(y, sizeof y,
             "global:\n  external_labels: {region: eu, severity: low}\n"
             "alerting:\n"
             "  alert_relabel_configs:\n"
             "    - {source_labels: [alertname], regex: Drop.*, action: drop}\n"
             "    - {target_label: team, replacement: core}\n"
             "  alertmanagers:\n"
             "    - path_prefix: /am/\n"
             "      basic_auth: {username: u, password_file: %s}\n"
             "      static_configs:\n"
             "        - targets: ['127.0.0.1:%d', 'dropme:1', '127.0.0.1:%d']\n"
             "      relabel_configs:\n"
             "        - {source_labels: [__address__], regex: 'dropme:.*', action: drop}\n"
             "      alert_relabel_configs:\n"
             "        - {target_label: set, replacement: one}\n"
             "    - authorization: {credentials: tok}\n"
             "      timeout: 2s\n"
             "      file_sd_configs:\n"
             "        - files: ['%s/*.yml']\n",
             secret, s.port, s.port, dir);
    config *c = load(y);
    notifier *n = make(c, 0);

    char **act, **drop;
    size_t na, nd;
    ck_assert_int_eq(notifier_alertmanagers(n, &act, &na, &drop, &nd), 0);
    ck_assert_uint_eq(na, 2); /* the same URL twice in one set counts once */
    ck_assert_uint_eq(nd, 1);
    char want[128];
    snprintf(want, sizeof want, "http://127.0.0.1:%d/am/api/v2/alerts", s.port);
    ck_assert_str_eq(act[0], want);
    snprintf(want, sizeof want, "http://127.0.0.1:%d/api/v2/alerts", bad.port);
    ck_assert_str_eq(act[1], want);
    ck_assert_ptr_null(act[2]);
    ck_assert_str_eq(drop[0], "http://dropme:1/am/api/v2/alerts");
    notifier_urls_free(act);
    notifier_urls_free(drop);
    ck_assert_double_eq(metric_text_value("kiln_notifications_alertmanagers_discovered "), 2);

    send_named(n, "DropMe", NULL, NULL);
    send_named(n, "Keep", "severity", "page");
    ck_assert_uint_eq(notifier_queue_length(n), 1);
    ck_assert_int_eq(notifier_run(n), 0);
    ck_assert_int_eq(srv_wait(&s, 1), 1);
    ck_assert_int_eq(srv_wait(&bad, 1), 1);
    const char *r = srv_req(&s, 0);
    ck_assert_ptr_nonnull(strstr(r, "POST /am/api/v2/alerts HTTP/1.1"));
    ck_assert_ptr_nonnull(strstr(r, "Authorization: Basic dTpzM2NyZXQ=")); /* u:s3cret */
    ck_assert_ptr_nonnull(strstr(r, "\"labels\":{\"alertname\":\"Keep\",\"region\":\"eu\",\"set\":\"one\","
                                    "\"severity\":\"page\",\"team\":\"core\"}"));
    r = srv_req(&bad, 0);
    ck_assert_ptr_nonnull(strstr(r, "Authorization: Bearer tok"));
    ck_assert_ptr_nonnull(strstr(r, "\"labels\":{\"alertname\":\"Keep\",\"region\":\"eu\","
                                    "\"severity\":\"page\",\"team\":\"core\"}"));
    /* the 500 is counted as an error for that Alertmanager only */
    char line[160];
    snprintf(line, sizeof line,
             "kiln_notifications_errors_total{alertmanager=\"http://127.0.0.1:%d/api/v2/alerts\"} ",
             bad.port);
    for (int i = 0; i < 500 && metric_text_value(line) < 1; i++)
        usleep(10000);
    ck_assert_double_eq(metric_text_value(line), 1);
    snprintf(line, sizeof line,
             "kiln_notifications_errors_total{alertmanager=\"http://127.0.0.1:%d/am/api/v2/alerts\"} ",
             s.port);
    ck_assert_double_eq(metric_text_value(line), 0);

    /* a reload to no Alertmanagers */
    config *c2 = load("alerting:\n  alertmanagers: []\n");
    kiln_err err = {0};
    ck_assert_int_eq(notifier_apply_config(n, c2, &err), 0);
    ck_assert_int_eq(notifier_alertmanagers(n, &act, &na, &drop, &nd), 0);
    ck_assert_uint_eq(na + nd, 0);
    notifier_urls_free(act);
    notifier_urls_free(drop);
    notifier_free(n);
    config_free(c2);
    config_free(c);
    srv_stop(&s);
    srv_stop(&bad);
}
END_TEST

START_TEST(test_file_sd_changes) {
    srv s;
    srv_start(&s, 200);
    char dir[256];
    tmp_dir("filesd", dir);
    char y[512];
    snprintf(y, sizeof y,
             "alerting:\n  alertmanagers:\n    - file_sd_configs:\n        - files: ['%s/*.json']\n", dir);
    config *c = load(y);
    notifier *n = make(c, 0);
    char **act, **drop;
    size_t na, nd;
    ck_assert_int_eq(notifier_alertmanagers(n, &act, &na, &drop, &nd), 0);
    ck_assert_uint_eq(na, 0);
    notifier_urls_free(act);
    notifier_urls_free(drop);
    ck_assert_int_eq(notifier_run(n), 0);
    char path[300];
    snprintf(path, sizeof path, "%s/a.json", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "[{\"targets\": [\"127.0.0.1:%d\"]}]", s.port);
    fclose(f);
    /* the sender looks at the files every 5 s */
    for (int i = 0; i < 800 && na == 0; i++) {
        usleep(10000);
        ck_assert_int_eq(notifier_alertmanagers(n, &act, &na, &drop, &nd), 0);
        notifier_urls_free(act);
        notifier_urls_free(drop);
    }
    ck_assert_uint_eq(na, 1);
    send_named(n, "Found", NULL, NULL);
    ck_assert_int_eq(srv_wait(&s, 1), 1);
    ck_assert_ptr_nonnull(strstr(srv_req(&s, 0), "\"Found\""));
    notifier_free(n);
    config_free(c);
    srv_stop(&s);
}
END_TEST

/* The URLs of /api/v1/alertmanagers: path_prefix cleaned as Go's path.Join,
 * the scheme, relabeled __scheme__/__alerts_path__/__address__, group labels,
 * and an address with a slash left out. */
START_TEST(test_alertmanager_urls) {
    config *c = load("alerting:\n  alertmanagers:\n"
                     "    - scheme: https\n      path_prefix: a/./b/../c//\n"
                     "      static_configs: [{targets: ['h1:9093', 'h3:1']}]\n"
                     "      relabel_configs:\n"
                     "        - {source_labels: [__address__], regex: 'h3:1', target_label: __address__,"
                     " replacement: 'bad/x:1'}\n"
                     "    - path_prefix: /../\n"
                     "      static_configs: [{targets: ['h2:9093'], labels: {__scheme__: https, dc: x}}]\n"
                     "      relabel_configs:\n"
                     "        - {source_labels: [dc], target_label: __alerts_path__, replacement: 'p/$1'}\n"
                     "        - {source_labels: [__address__], regex: '(.*):9093', target_label: __address__,"
                     " replacement: '$1.example:80'}\n");
    notifier *n = make(c, 0);
    char **act, **drop;
    size_t na, nd;
    ck_assert_int_eq(notifier_alertmanagers(n, &act, &na, &drop, &nd), 0);
    ck_assert_uint_eq(na, 2);
    ck_assert_uint_eq(nd, 0);
    ck_assert_str_eq(act[0], "https://h1:9093/a/c/api/v2/alerts");
    ck_assert_str_eq(act[1], "https://h2.example:80/p/x");
    notifier_urls_free(act);
    notifier_urls_free(drop);
    notifier_free(n);
    config_free(c);
}
END_TEST

START_TEST(test_needs_relabel_fn) {
    config *c = load("alerting:\n  alert_relabel_configs:\n    - {target_label: a, replacement: b}\n");
    notifier *n = NULL;
    kiln_err err = {0};
    ck_assert_int_eq(notifier_new(c, NULL, &n, &err), KILN_EINVAL);
    ck_assert_ptr_null(n);
    ck_assert_ptr_nonnull(strstr(err.msg, "relabel"));
    /* without relabel steps it needs none, and no configuration at all is fine */
    ck_assert_int_eq(notifier_new(NULL, NULL, &n, &err), 0);
    send_named(n, "x", NULL, NULL);
    ck_assert_int_eq(notifier_apply_config(n, c, &err), KILN_EINVAL);
    notifier_free(n);
    config_free(c);
}
END_TEST

/* ---- the real Alertmanager ------------------------------------------------------------------------ */

static int am_port, am2_port;
static pid_t am_pid;

/* Starts an Alertmanager listening on port with its files in tmp_root/<tag>;
 * it dies with the calling process. */
static pid_t am_start(int port, const char *tag) {
    char cfg[512], data[512], listen[64];
    snprintf(data, sizeof data, "--storage.path=%s/%s", tmp_root, tag);
    snprintf(cfg, sizeof cfg, "%s/am.yml", tmp_root);
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", port);
    char cfgflag[600];
    snprintf(cfgflag, sizeof cfgflag, "--config.file=%s", cfg);
    char logf[600];
    snprintf(logf, sizeof logf, "%s/%s.log", tmp_root, tag);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        FILE *lf = freopen(logf, "w", stderr);
        (void)lf;
        execl(AM_BIN, AM_BIN, cfgflag, data, listen, "--cluster.listen-address=", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static size_t collect(char *p, size_t size, size_t nmemb, void *data) {
    buf_append(data, p, size * nmemb);
    return size * nmemb;
}

/* GET http://127.0.0.1:port<path> into out; the status, or 0 when no answer. */
static long http_get(int port, const char *path, buf *out) {
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 2000L);
    long code = 0;
    if (curl_easy_perform(e) == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(e);
    return code;
}

/* Waits up to 20 s for /-/ready; 1 when ready. */
static int am_wait_ready(int port) {
    for (int i = 0; i < 200; i++) {
        buf b = BUF_INIT;
        long code = http_get(port, "/-/ready", &b);
        buf_free(&b);
        if (code == 200)
            return 1;
        usleep(100000);
    }
    return 0;
}

/* Waits up to 10 s until GET /api/v2/alerts holds `needle`; the body in out. */
static int am_wait_alert(int port, const char *needle, buf *out) {
    for (int i = 0; i < 100; i++) {
        buf_reset(out);
        if (http_get(port, "/api/v2/alerts", out) == 200 && out->data && strstr(out->data, needle))
            return 1;
        usleep(100000);
    }
    return 0;
}

static void am_setup(void) {
    root_setup();
    if (!tmp_root[0])
        return;
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s/am.yml", tmp_root);
    FILE *f = fopen(cfg, "w");
    if (!f)
        return;
    fputs("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n", f);
    fclose(f);
    am_port = free_port();
    am2_port = free_port();
    am_pid = am_start(am_port, "one");
}

static void am_teardown(void) {
    if (am_pid > 0) {
        kill(am_pid, SIGTERM);
        waitpid(am_pid, NULL, 0);
    }
    root_teardown();
}

START_TEST(test_real_alertmanager) {
    ck_assert_msg(am_wait_ready(am_port), "alertmanager did not start (see %s/one.log)", tmp_root);
    char y[512];
    snprintf(y, sizeof y,
             "global:\n  external_labels: {cluster: c1}\n"
             "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:%d']\n",
             am_port);
    config *c = load(y);
    notifier *n = make(c, 0);
    ck_assert_int_eq(notifier_run(n), 0);
    int64_t now = time_now_ms() / 1000 * 1000;
    label ls[] = {{"alertname", "HighErrorRate"}, {"service", "checkout"}};
    label an[] = {{"summary", "error ratio 7.5% on checkout"}};
    notifier_alert a = {.labels = ls,
                        .nlabels = 2,
                        .annotations = an,
                        .nannotations = 1,
                        .starts_at_ms = now - 60000,
                        .ends_at_ms = now + 3600000,
                        .generator_url = "http://kiln:9090/graph"};
    ck_assert_int_eq(notifier_send(n, &a, 1), 0);
    buf b = BUF_INIT;
    ck_assert_msg(am_wait_alert(am_port, "HighErrorRate", &b), "not delivered: %s", b.data ? b.data : "");
    ck_assert_ptr_nonnull(strstr(b.data, "\"service\":\"checkout\""));
    ck_assert_ptr_nonnull(strstr(b.data, "\"cluster\":\"c1\""));
    ck_assert_ptr_nonnull(strstr(b.data, "\"summary\":\"error ratio 7.5% on checkout\""));
    ck_assert_ptr_nonnull(strstr(b.data, "\"generatorURL\":\"http://kiln:9090/graph\""));
    buf ts = BUF_INIT;
    notifier_alert only_times = {.starts_at_ms = now - 60000, .ends_at_ms = now + 3600000};
    notifier_encode(&ts, &only_times, 1);
    char want[64];
    const char *st = strstr(ts.data, "\"startsAt\":");
    ck_assert_ptr_nonnull(st);
    snprintf(want, sizeof want, "%.37s", st); /* "startsAt":"2026-...Z" */
    ck_assert_msg(strstr(b.data, want), "%s not in %s", want, b.data);
    buf_free(&ts);
    buf_free(&b);
    notifier_free(n);
    config_free(c);
}
END_TEST

START_TEST(test_alertmanager_down_then_up) {
    config *c = load_one_am(am2_port, "timeout: 1s\n      ");
    notifier *n = make(c, 0);
    ck_assert_int_eq(notifier_run(n), 0);
    char line[160];
    snprintf(line, sizeof line,
             "kiln_notifications_errors_total{alertmanager=\"http://127.0.0.1:%d/api/v2/alerts\"} ",
             am2_port);
    double dropped0 = metric_text_value("kiln_notifications_dropped_total ");
    int64_t now = time_now_ms();
    label ls[] = {{"alertname", "WhileDown"}};
    notifier_alert a = {.labels = ls, .nlabels = 1, .starts_at_ms = now, .ends_at_ms = now + 3600000};
    ck_assert_int_eq(notifier_send(n, &a, 1), 0);
    for (int i = 0; i < 500 && metric_text_value(line) < 1; i++)
        usleep(10000);
    ck_assert_double_eq(metric_text_value(line), 1);
    /* no Alertmanager took the batch: dropped, as in Prometheus */
    ck_assert_double_eq(metric_text_value("kiln_notifications_dropped_total ") - dropped0, 1);
    pid_t pid = am_start(am2_port, "two");
    ck_assert_msg(am_wait_ready(am2_port), "second alertmanager did not start");
    /* the rule manager's resend of the active alert is the retry */
    ck_assert_int_eq(notifier_send(n, &a, 1), 0);
    buf b = BUF_INIT;
    int got = am_wait_alert(am2_port, "WhileDown", &b);
    buf_free(&b);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    ck_assert_msg(got, "the resent alert did not arrive");
    ck_assert_double_eq(metric_text_value(line), 1);
    notifier_free(n);
    config_free(c);
}
END_TEST

Suite *make_suite(void) {
    /* The test cases: name, timeout, fixtures and tests. */
    const struct {
        const char *name;
        int timeout;
        void (*setup)(void), (*teardown)(void);
        const TTest *tests[8];
    } cases[] = {
        {"core",
         30,
         root_setup,
         root_teardown,
         {test_encode_exact, test_queue_drops_oldest, test_batches_of_64, test_relabel_and_client,
          test_file_sd_changes, test_alertmanager_urls, test_needs_relabel_fn}},
        {"alertmanager", 60, am_setup, am_teardown, {test_real_alertmanager, test_alertmanager_down_then_up}},
    };

    Suite *s = suite_create("notifier");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, cases[i].timeout);
        tcase_add_unchecked_fixture(tc, cases[i].setup, cases[i].teardown);
        for (size_t k = 0; k < sizeof cases[i].tests / sizeof cases[i].tests[0] && cases[i].tests[k]; k++)
            tcase_add_test(tc, cases[i].tests[k]);
        suite_add_tcase(s, tc);
    }
    return s;
}
