/*
 * test_http.c - the request helpers handlers use: parameters from the query
 * string and urlencoded bodies, headers, and the JSON writer; and, through a
 * real server on the loopback, that an answer which lost an append to
 * out-of-memory is sent as a 500, never as a truncated 200, and that query
 * routes run on the server's own pool: with it full, worker and lookup
 * routes still answer, waiting requests are bounded and time out.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

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

/* ---- a lost append becomes a 500 ------------------------------------------ */

/* A handler that writes a 200 answer, then loses an append (buf's sticky
 * out-of-memory, as a failed realloc leaves it). */
static void h_lost_body(http_req *req, http_resp *resp, void *data) {
    (void)req, (void)data;
    http_resp_json_success(resp, "[1,2,3]", 7);
    resp->body.oom = 1;
}

static void h_lost_header(http_req *req, http_resp *resp, void *data) {
    (void)req, (void)data;
    http_resp_text(resp, 200, "fine\n");
    http_resp_header(resp, "X-Kiln", "1");
    resp->headers.oom = 1;
}

typedef struct client {
    int port;
    const char *path;
    const char *raw; /* sent instead of a GET of path when set */
    size_t raw_len;
    char answer[2048];
    atomic_int done;
} client;

/* A connection to the loopback port, or -1. */
static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Writes all of data (the socket is blocking); 0 or -1. */
static int write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w <= 0)
            return -1;
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Sends one GET (or c->raw) on a new connection and reads the answer until
 * the server closes it (Connection: close). */
static void *client_run(void *p) {
    client *c = p;
    int fd = connect_to(c->port);
    size_t got = 0;
    if (fd >= 0) {
        char req[256];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", c->path);
        if (write_all(fd, c->raw ? c->raw : req, c->raw ? c->raw_len : (size_t)n) == 0) {
            ssize_t r;
            while (got < sizeof c->answer - 1 &&
                   (r = read(fd, c->answer + got, sizeof c->answer - 1 - got)) > 0)
                got += (size_t)r;
        }
    }
    c->answer[got] = 0;
    if (fd >= 0)
        close(fd);
    atomic_store(&c->done, 1);
    return NULL;
}

/* A port free a moment ago on the loopback. */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void on_down(void *data) {
    *(int *)data = 1;
}

/* A server on a free loopback port of loop, with o's limits (NULL: the
 * defaults); routes are added before server_listen. */
static http_server *server_new(uv_loop_t *loop, const http_server_opts *o, int *port, char *addr) {
    ck_assert_int_eq(uv_loop_init(loop), 0);
    http_server_opts d;
    if (o)
        d = *o;
    else
        http_server_opts_default(&d);
    *port = free_port();
    snprintf(addr, 64, "127.0.0.1:%d", *port);
    d.listen_address = addr;
    http_server *s = NULL;
    kiln_err err = {0};
    ck_assert_int_eq(http_server_new(loop, &d, &s, &err), 0);
    return s;
}

static void server_listen(http_server *s) {
    kiln_err err = {0};
    ck_assert_int_eq(http_server_listen(s, &err), 0);
}

/* Shuts s down, frees it and checks the loop holds nothing more. */
static void server_free(uv_loop_t *loop, http_server *s) {
    int down = 0;
    http_server_shutdown(s, on_down, &down);
    while (!down)
        uv_run(loop, UV_RUN_ONCE);
    http_server_free(s);
    ck_assert_int_eq(uv_loop_close(loop), 0);
}

/* Runs the loop until *flag reaches want (or 10 s pass: the test then fails
 * on what it finds). */
static void pump_until(uv_loop_t *loop, atomic_int *flag, int want) {
    for (int spins = 0; atomic_load(flag) < want && spins < 10000; spins++) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

static void client_start(client *c, pthread_t *th, int port, const char *path) {
    memset(c, 0, sizeof *c);
    c->port = port;
    c->path = path;
    ck_assert_int_eq(pthread_create(th, NULL, client_run, c), 0);
}

/* GET path (or raw, raw_len bytes, when raw is set) on a new connection,
 * the loop running until it is answered. */
static void exchange_raw(uv_loop_t *loop, int port, const char *path, const char *raw, size_t raw_len,
                         client *c) {
    pthread_t th;
    memset(c, 0, sizeof *c);
    c->port = port;
    c->path = path;
    c->raw = raw;
    c->raw_len = raw_len;
    ck_assert_int_eq(pthread_create(&th, NULL, client_run, c), 0);
    pump_until(loop, &c->done, 1);
    pthread_join(th, NULL);
}

static void exchange(uv_loop_t *loop, int port, const char *path, client *c) {
    exchange_raw(loop, port, path, NULL, 0, c);
}

START_TEST(test_lost_append_is_500) {
    uv_loop_t loop;
    char addr[64];
    int port;
    http_server *s = server_new(&loop, NULL, &port, addr);
    ck_assert_int_eq(http_route(s, "GET", "/inline", HTTP_ROUTE_INLINE, h_lost_body, NULL, NULL), 0);
    ck_assert_int_eq(http_route(s, "GET", "/worker", HTTP_ROUTE_WORKER, h_lost_body, NULL, NULL), 0);
    ck_assert_int_eq(http_route(s, "GET", "/header", HTTP_ROUTE_WORKER, h_lost_header, NULL, NULL), 0);
    server_listen(s);

    static const struct {
        const char *path, *body;
    } cases[] = {
        {"/inline", "{\"status\":\"error\",\"errorType\":\"internal\",\"error\":\"out of memory\"}"},
        {"/worker", "{\"status\":\"error\",\"errorType\":\"internal\",\"error\":\"out of memory\"}"},
        {"/header", "out of memory\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        client c;
        exchange(&loop, port, cases[i].path, &c);
        ck_assert_msg(strncmp(c.answer, "HTTP/1.1 500 ", 13) == 0, "%s: %s", cases[i].path, c.answer);
        ck_assert_ptr_null(strstr(c.answer, "[1,2,3]"));
        ck_assert_ptr_null(strstr(c.answer, "X-Kiln"));
        const char *body = strstr(c.answer, "\r\n\r\n");
        ck_assert_ptr_nonnull(body);
        ck_assert_str_eq(body + 4, cases[i].body);
    }
    server_free(&loop, s);
}
END_TEST

/* ---- the query pool ------------------------------------------------------- */

static atomic_int q_release, q_running, q_ran;

/* A query that runs until released; answers with its thread's nice value.
 * One that timed out in the queue answers that at once. */
static void h_block(http_req *req, http_resp *resp, void *data) {
    (void)data;
    if (req->queue_timed_out) {
        http_resp_json_error(resp, 503, "timeout", "query timed out in query queue");
        return;
    }
    atomic_fetch_add(&q_ran, 1);
    atomic_fetch_add(&q_running, 1);
    while (!atomic_load(&q_release))
        usleep(1000);
    char msg[64];
    snprintf(msg, sizeof msg, "nice=%d\n", getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)));
    http_resp_text(resp, 200, msg);
    atomic_fetch_sub(&q_running, 1);
}

static void h_fast(http_req *req, http_resp *resp, void *data) {
    (void)req, (void)data;
    http_resp_text(resp, 200, "fast\n");
}

/* /t may wait 50 ms for a slot, the others as long as it takes. */
static int64_t wait_deadline(http_req *req, void *data) {
    (void)data;
    return strcmp(req->path, "/t") == 0 ? 50 : 0;
}

START_TEST(test_query_pool) {
    uv_loop_t loop;
    char addr[64];
    int port;
    http_server *s = server_new(&loop, NULL, &port, addr);
    ck_assert_int_eq(http_route(s, "GET", "/q", HTTP_ROUTE_QUEUED, h_block, NULL, NULL), 0);
    ck_assert_int_eq(http_route(s, "GET", "/t", HTTP_ROUTE_QUEUED, h_block, NULL, NULL), 0);
    ck_assert_int_eq(http_route(s, "GET", "/w", HTTP_ROUTE_WORKER, h_fast, NULL, NULL), 0);
    ck_assert_int_eq(http_route(s, "GET", "/l", HTTP_ROUTE_LOOKUP, h_fast, NULL, NULL), 0);
    /* as many query slots as libuv has threads (4 unless UV_THREADPOOL_SIZE
     * says otherwise): on libuv's pool, running queries would hold them all */
    const char *env = getenv("UV_THREADPOOL_SIZE");
    int nq = env && atoi(env) > 0 && atoi(env) <= 16 ? atoi(env) : 4;
    http_server_set_queue(s, nq, 1, wait_deadline, NULL);
    server_listen(s);
    atomic_store(&q_release, 0);
    atomic_store(&q_running, 0);
    atomic_store(&q_ran, 0);

    client q[17];
    pthread_t qt[17];
    for (int i = 0; i < nq; i++)
        client_start(&q[i], &qt[i], port, "/q");
    pump_until(&loop, &q_running, nq);
    ck_assert_int_eq(atomic_load(&q_running), nq);

    /* every slot is taken: a worker route and a lookup answer all the same */
    static const char *const others[] = {"/w", "/l"};
    for (size_t i = 0; i < 2; i++) {
        client w;
        exchange(&loop, port, others[i], &w);
        ck_assert_msg(strncmp(w.answer, "HTTP/1.1 200 ", 13) == 0, "%s: %s", others[i], w.answer);
        ck_assert_ptr_nonnull(strstr(w.answer, "\r\n\r\nfast\n"));
    }

    /* one that waits past its deadline only answers the error */
    client t;
    exchange(&loop, port, "/t", &t);
    ck_assert_msg(strncmp(t.answer, "HTTP/1.1 503 ", 13) == 0, "%s", t.answer);
    ck_assert_ptr_nonnull(strstr(t.answer, "{\"status\":\"error\",\"errorType\":\"timeout\","
                                           "\"error\":\"query timed out in query queue\"}"));
    ck_assert_int_eq(atomic_load(&q_ran), nq);

    /* one may wait (max_waiting 1); the next is refused at once */
    client_start(&q[nq], &qt[nq], port, "/q");
    for (int spins = 0; spins < 100; spins++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    client r;
    exchange(&loop, port, "/q", &r);
    ck_assert_msg(strncmp(r.answer, "HTTP/1.1 503 ", 13) == 0, "%s", r.answer);
    ck_assert_ptr_nonnull(strstr(r.answer, "\"errorType\":\"unavailable\""));
    ck_assert_ptr_nonnull(strstr(r.answer, "too many queries"));
    ck_assert_int_eq(atomic_load(&q_ran), nq);
    ck_assert_int_eq(atomic_load(&q[nq].done), 0);

    /* released, the running ones answer and the waiting one runs; all of
     * them on query threads, below the loop's and libuv's priority */
    atomic_store(&q_release, 1);
    for (int i = 0; i <= nq; i++) {
        pump_until(&loop, &q[i].done, 1);
        pthread_join(qt[i], NULL);
        ck_assert_msg(strncmp(q[i].answer, "HTTP/1.1 200 ", 13) == 0, "%s", q[i].answer);
        ck_assert_msg(strstr(q[i].answer, "\r\n\r\nnice=10\n") != NULL, "%s", q[i].answer);
    }
    ck_assert_int_eq(atomic_load(&q_ran), nq + 1);

    server_free(&loop, s);
}
END_TEST

/* ---- header and pending-request limits ------------------------------------ */

/* The headers a handler sees, one "name=value;" each. */
static void h_headers(http_req *req, http_resp *resp, void *data) {
    (void)data;
    buf b = BUF_INIT;
    for (size_t i = 0; i < req->nheaders; i++)
        buf_printf(&b, "%s=%s;", req->headers[i].name, req->headers[i].value);
    http_resp_text(resp, 200, b.data ? b.data : "");
    buf_free(&b);
}

/* A request of a line, n copies of hdr, and a blank line, in out. */
static size_t request_with(char *out, size_t cap, const char *hdr, int n) {
    size_t len = (size_t)snprintf(out, cap, "GET /h HTTP/1.1\r\nConnection: close\r\n");
    for (int i = 0; i < n && len + strlen(hdr) + 3 < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s", hdr);
    len += (size_t)snprintf(out + len, cap - len, "\r\n");
    return len;
}

/* The defaults with 1 KiB of headers and 4 KiB of body at most. */
static http_server_opts small_limits(void) {
    http_server_opts o;
    http_server_opts_default(&o);
    o.max_header_bytes = 1024;
    o.max_body_bytes = 4096;
    return o;
}

START_TEST(test_header_bytes_count_everything_received) {
    uv_loop_t loop;
    char addr[64];
    int port;
    http_server_opts o = small_limits();
    http_server *s = server_new(&loop, &o, &port, addr);
    ck_assert_int_eq(http_route(s, "GET", "/h", HTTP_ROUTE_INLINE, h_headers, NULL, NULL), 0);
    server_listen(s);
    static char req[8192];
    client c;

    /* names, values, empty values, and the order they came in */
    size_t len = (size_t)snprintf(
        req, sizeof req, "GET /h HTTP/1.1\r\nConnection: close\r\nA: 1\r\nEmpty:\r\nB:  two words \r\n\r\n");
    exchange_raw(&loop, port, NULL, req, len, &c);
    ck_assert_msg(strstr(c.answer, "\r\n\r\nConnection=close;A=1;Empty=;B=two words ;") != NULL, "%s",
                  c.answer);

    /* 300 empty headers: 1,200 bytes received, 300 of names */
    len = request_with(req, sizeof req, "X:\r\n", 300);
    exchange_raw(&loop, port, NULL, req, len, &c);
    ck_assert_msg(strncmp(c.answer, "HTTP/1.1 431 ", 13) == 0, "%s", c.answer);
    /* 200 of them fit (about 840 bytes) */
    len = request_with(req, sizeof req, "X:\r\n", 200);
    exchange_raw(&loop, port, NULL, req, len, &c);
    ck_assert_msg(strncmp(c.answer, "HTTP/1.1 200 ", 13) == 0, "%s", c.answer);
    /* a NUL byte in a value (http-parser lets one through first) is refused */
    static const char nul_req[] = "GET /h HTTP/1.1\r\nA: \0x\r\n\r\n";
    exchange_raw(&loop, port, NULL, nul_req, sizeof nul_req - 1, &c);
    ck_assert_msg(strncmp(c.answer, "HTTP/1.1 400 ", 13) == 0, "%s", c.answer);
    /* whitespace before a value, which no callback sees, counts too */
    len = (size_t)snprintf(req, sizeof req, "GET /h HTTP/1.1\r\nX:%2000sv\r\n\r\n", "");
    exchange_raw(&loop, port, NULL, req, len, &c);
    ck_assert_msg(strncmp(c.answer, "HTTP/1.1 431 ", 13) == 0, "%s", c.answer);
    server_free(&loop, s);
}
END_TEST

/* Runs the loop a moment (the server reads what was sent). */
static void pump_a_while(uv_loop_t *loop) {
    for (int spins = 0; spins < 100; spins++) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

START_TEST(test_unfinished_requests_are_bounded_in_total) {
    uv_loop_t loop;
    char addr[64];
    int port;
    http_server_opts o = small_limits();
    o.max_pending_bytes = 0; /* the least: one largest request, 2 x (4096 + 2 x 1024) */
    http_server *s = server_new(&loop, &o, &port, addr);
    ck_assert_int_eq(http_route(s, "POST", "/h", HTTP_ROUTE_INLINE, h_headers, NULL, NULL), 0);
    server_listen(s);

    /* two requests with 3,000 of their 4,000 body bytes sent hold about 4 KiB each */
    static char part[3200];
    size_t plen = (size_t)snprintf(part, sizeof part, "POST /h HTTP/1.1\r\nContent-Length: 4000\r\n\r\n");
    memset(part + plen, 'x', 3000);
    plen += 3000;
    int held[2];
    for (int i = 0; i < 2; i++) {
        held[i] = connect_to(port);
        ck_assert_int_ge(held[i], 0);
        ck_assert_int_eq(write_all(held[i], part, plen), 0);
        pump_a_while(&loop);
    }
    /* a third does not fit beside them: 503, and it is closed */
    client c;
    exchange_raw(&loop, port, NULL, part, plen, &c);
    ck_assert_msg(strncmp(c.answer, "HTTP/1.1 503 ", 13) == 0, "%s", c.answer);
    ck_assert_ptr_nonnull(strstr(c.answer, "too much request data in progress"));

    /* one held request gone, what it held is free again: a whole request passes */
    close(held[0]);
    pump_a_while(&loop);
    static char whole[4200];
    size_t wlen = (size_t)snprintf(whole, sizeof whole,
                                   "POST /h HTTP/1.1\r\nConnection: close\r\nContent-Length: 4000\r\n\r\n");
    memset(whole + wlen, 'x', 4000);
    wlen += 4000;
    exchange_raw(&loop, port, NULL, whole, wlen, &c);
    ck_assert_msg(strncmp(c.answer, "HTTP/1.1 200 ", 13) == 0, "%s", c.answer);
    close(held[1]);
    pump_a_while(&loop);
    server_free(&loop, s);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_params);
    tcase_add_test(tc, test_json_str);
    tcase_add_test(tc, test_lost_append_is_500);
    tcase_add_test(tc, test_query_pool);
    tcase_add_test(tc, test_header_bytes_count_everything_received);
    tcase_add_test(tc, test_unfinished_requests_are_bounded_in_total);
    suite_add_tcase(s, tc);
    return s;
}
