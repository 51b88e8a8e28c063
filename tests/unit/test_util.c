/*
 * test_util.c - durations, float formatting, buffers, arena, slab, UTF-8, errors, log quoting.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/endian.h"
#include "util/util.h"

#define KILN_TEST_MAIN
#include "testutil.h"

START_TEST(test_duration_parse) {
    static const struct {
        const char *in;
        int64_t ms;
        int ok;
    } cases[] = {
        {"0", 0, 1},
        {"1s", 1000, 1},
        {"1m30s", 90000, 1},
        {"1h30m", 5400000, 1},
        {"500ms", 500, 1},
        {"1d", 86400000, 1},
        {"2w", 1209600000, 1},
        {"1y", 31536000000LL, 1},
        {"1h1ms", 3600001, 1},
        {"", 0, 0},
        {"1", 0, 0},
        {"1x", 0, 0},
        {"30s1m", 0, 0},
        {"1m1m", 0, 0},
        {"-1s", 0, 0},
        {"1.5s", 0, 0},
        {"99999999999999999999y", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ms = -1;
        kiln_err err = {0};
        int rc = duration_parse(cases[i].in, &ms, &err);
        if (cases[i].ok) {
            ck_assert_msg(rc == 0, "%s: %s", cases[i].in, err.msg);
            ck_assert_int_eq(ms, cases[i].ms);
        } else {
            ck_assert_msg(rc < 0, "%s accepted", cases[i].in);
            ck_assert_msg(err.msg[0] != 0, "no message for %s", cases[i].in);
        }
    }
}
END_TEST

START_TEST(test_duration_format) {
    char out[64];
    duration_format(90000, out, sizeof out);
    ck_assert_str_eq(out, "1m30s");
    duration_format(0, out, sizeof out);
    ck_assert_str_eq(out, "0s");
    duration_format(15000, out, sizeof out);
    ck_assert_str_eq(out, "15s");
    duration_format(86400000LL * 14, out, sizeof out);
    ck_assert_str_eq(out, "2w");
    duration_format(3600001, out, sizeof out);
    ck_assert_str_eq(out, "1h1ms");
}
END_TEST

START_TEST(test_fmt_double) {
    static const struct {
        double v;
        const char *f, *g;
    } cases[] = {
        {0, "0", "0"},
        {1, "1", "1"},
        {-1.5, "-1.5", "-1.5"},
        {0.1, "0.1", "0.1"},
        {1e21, "1000000000000000000000", "1e+21"},
        {1234567, "1234567", "1.234567e+06"},
        {123456, "123456", "123456"},
        {1e-7, "0.0000001", "1e-07"},
        {0.0001, "0.0001", "0.0001"},
        {1.7e9, "1700000000", "1.7e+09"},
        {0.3333333333333333, "0.3333333333333333", "0.3333333333333333"},
        {5e-324, NULL, "5e-324"},
        {1.7976931348623157e308, NULL, "1.7976931348623157e+308"},
    };
    char out[FMT_DOUBLE_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].f) {
            fmt_double_f(cases[i].v, out);
            ck_assert_str_eq(out, cases[i].f);
        }
        fmt_double_g(cases[i].v, out);
        ck_assert_str_eq(out, cases[i].g);
    }
    fmt_double_f(NAN, out);
    ck_assert_str_eq(out, "NaN");
    fmt_double_f(INFINITY, out);
    ck_assert_str_eq(out, "+Inf");
    fmt_double_g(-INFINITY, out);
    ck_assert_str_eq(out, "-Inf");
    /* the longest 'f' form fits the documented bound */
    int n = fmt_double_f(5e-324, out);
    ck_assert_int_lt(n, FMT_DOUBLE_MAX);
    ck_assert(strncmp(out, "0.000", 5) == 0);
}
END_TEST

START_TEST(test_buf_and_arena) {
    buf b = BUF_INIT;
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(buf_printf(&b, "%d,", i), 0);
    ck_assert(strncmp(b.data, "0,1,2,", 6) == 0);
    ck_assert_uint_eq(b.len, strlen(b.data));
    buf_free(&b);

    arena a;
    arena_init(&a, 1 << 20);
    char *s = arena_strndup(&a, "hello world", 5);
    ck_assert_str_eq(s, "hello");
    void *big = arena_alloc(&a, 200000);
    ck_assert_ptr_nonnull(big);
    ck_assert_ptr_null(arena_alloc(&a, 2 << 20)); /* over the limit */
    ck_assert(((uintptr_t)arena_alloc(&a, 3) & 15) == 0);
    arena_free(&a);
}
END_TEST

/* arena_adopt: what src held stays readable, is dst's to free (no leak
 * under the sanitizers), and dst goes on allocating from its own block. */
START_TEST(test_arena_adopt) {
    arena dst, src, empty;
    arena_init(&dst, 0);
    arena_init(&src, 0);
    arena_init(&empty, 0);
    char *d = arena_strndup(&dst, "dst", 3);
    char *ss[50];
    for (int i = 0; i < 50; i++) { /* several blocks, a one-off among them */
        ss[i] = arena_alloc(&src, i == 25 ? 3 << 20 : 40000);
        ck_assert_ptr_nonnull(ss[i]);
        ss[i][0] = (char)i;
    }
    size_t used = dst.used_total + src.used_total;
    arena_adopt(&dst, &src);
    arena_adopt(&dst, &empty);
    ck_assert_ptr_null(src.head);
    ck_assert_uint_eq(src.used_total, 0);
    ck_assert_uint_eq(dst.used_total, used);
    ck_assert_str_eq(d, "dst");
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(ss[i][0], i);
    ck_assert_ptr_nonnull(arena_strndup(&dst, "more", 4));
    arena_adopt(&src, &dst); /* into an empty arena */
    ck_assert_str_eq(d, "dst");
    arena_free(&src);
    arena_free(&dst);
}
END_TEST

START_TEST(test_utf8_and_names) {
    ck_assert(utf8_valid("h\xc3\xa9llo", 6));
    ck_assert(!utf8_valid("\xc3", 1));
    ck_assert(!utf8_valid("\xc0\xaf", 2));     /* overlong */
    ck_assert(!utf8_valid("\xed\xa0\x80", 3)); /* surrogate */
    ck_assert(label_name_valid("job", 3));
    ck_assert(!label_name_valid("1job", 4));
    ck_assert(!label_name_valid("a:b", 3));
    ck_assert(metric_name_valid("a:b", 3));
    ck_assert(!metric_name_valid("", 0));
}
END_TEST

START_TEST(test_err) {
    kiln_err err = {0};
    ck_assert_int_eq(kiln_err_set(&err, KILN_EINVAL, "bad %s", "thing"), KILN_EINVAL);
    kiln_err_prefix(&err, "kiln.yml:%d:%d", 3, 5);
    ck_assert_str_eq(err.msg, "kiln.yml:3:5: bad thing");
    ck_assert_int_eq(kiln_err_set(NULL, KILN_EIO, "x"), KILN_EIO);
    ck_assert_str_eq(kiln_strerror(KILN_OK), "ok");
    ck_assert_str_eq(kiln_strerror(KILN_ENOMEM), "out of memory");
    ck_assert_str_eq(kiln_strerror(KILN_EORDER), "out of order");
    ck_assert_str_eq(kiln_strerror(-99), "unknown error");
    ck_assert_str_eq(kiln_strerror(3), "unknown error");
}
END_TEST

/* Objects stay distinct and intact; pages emptied by one size serve another. */
/* bigbuf_grow keeps the elements across moves and fills whole 2 MiB pieces. */
START_TEST(test_bigbuf) {
    uint64_t *v = NULL;
    size_t cap = 0;
    ck_assert_int_eq(bigbuf_grow((void **)&v, &cap, 10, sizeof *v), 0);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(cap, ((size_t)2 << 20) / sizeof *v); /* a whole huge page's worth */
    for (size_t i = 0; i < cap; i++)
        v[i] = i * 7;
    size_t old = cap;
    ck_assert_int_eq(bigbuf_grow((void **)&v, &cap, old + 1, sizeof *v), 0);
    ck_assert_uint_eq(cap, 2 * old);
    for (size_t i = 0; i < old; i++)
        ck_assert_uint_eq(v[i], i * 7);
    v[cap - 1] = 1;
    /* no room needed: nothing moves */
    uint64_t *same = v;
    ck_assert_int_eq(bigbuf_grow((void **)&v, &cap, 5, sizeof *v), 0);
    ck_assert_ptr_eq(v, same);
    /* a size that overflows fails and leaves the array */
    ck_assert_int_eq(bigbuf_grow((void **)&v, &cap, SIZE_MAX / 4, sizeof *v), KILN_ENOMEM);
    ck_assert_ptr_eq(v, same);
    ck_assert_uint_eq(v[3], 21);
    bigbuf_free(v, cap, sizeof *v);
    bigbuf_free(NULL, 0, 8);
}
END_TEST

/* Whether the 4 KiB page at p is resident. */
static int resident(const void *p) {
    unsigned char v = 0;
    ck_assert_int_eq(mincore((void *)((uintptr_t)p & ~(uintptr_t)4095), 4096, &v), 0);
    return v & 1;
}

/* The slab's thread populates the two huge pages after the front, and no more. */
START_TEST(test_slab_populate) {
    const size_t huge = (size_t)2 << 20, region = (size_t)64 << 20;
    void *probe = mmap(NULL, huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(probe, MAP_FAILED);
    int supported = madvise(probe, 4096, 23 /* MADV_POPULATE_WRITE */) == 0;
    munmap(probe, huge);
    if (!supported) {
        /* counted as a skip by tests/run.py (fails make check unless tests/skips.txt lists it) */
        fprintf(stderr, "SKIP test_slab_populate: this kernel has no MADV_POPULATE_WRITE\n");
        return;
    }
    enum { MAX = 1 << 16 };
    static uint8_t *p[MAX];
    size_t n = 0;
    uint8_t *front = NULL;
    slab_stats st;
    slab_get_stats(&st);
    /* objects of 2 KiB until a page is carved at the start of a huge page */
    while (!front && n < MAX) {
        size_t before = st.pages;
        ck_assert_ptr_nonnull(p[n] = slab_alloc(2048));
        slab_get_stats(&st);
        if (st.pages > before && ((uintptr_t)p[n] & (huge - 1)) == 0)
            front = p[n];
        n++;
    }
    ck_assert_ptr_nonnull(front);
    slab_populate_wait();
    ck_assert(resident(front + huge));
    ck_assert(resident(front + 3 * huge - 4096));
    if (((uintptr_t)front & (region - 1)) + 4 * huge <= region)
        ck_assert(!resident(front + 3 * huge)); /* nothing touched it, and nothing asked for it */
    for (size_t i = 0; i < n; i++)
        slab_free(p[i], 2048);
}
END_TEST

START_TEST(test_slab) {
    enum { N = 5000 };
    static uint8_t *p[N];
    ck_assert_uint_eq(slab_size(0), 16);
    ck_assert_uint_eq(slab_size(17), 32);
    ck_assert_uint_eq(slab_size(SLAB_MAX + 1), SLAB_MAX + 1);
    for (size_t i = 0; i < N; i++) {
        p[i] = slab_alloc(40);
        ck_assert_ptr_nonnull(p[i]);
        memset(p[i], (int)(i & 0xff), 40);
    }
    slab_stats st0;
    slab_get_stats(&st0);
    ck_assert_uint_ge(st0.pages, N * 48 / SLAB_PAGE);
    for (size_t i = 0; i < N; i++) {
        for (size_t k = 0; k < 40; k++)
            ck_assert_uint_eq(p[i][k], i & 0xff); /* no object overlaps another */
        /* a move to another size keeps the bytes */
        p[i] = slab_realloc(p[i], 40, 100);
        ck_assert_ptr_nonnull(p[i]);
        ck_assert_uint_eq(p[i][39], i & 0xff);
    }
    /* the 48-byte pages emptied as their objects moved: the 112-byte objects took them */
    slab_stats st1;
    slab_get_stats(&st1);
    ck_assert_uint_lt(st1.pages - st0.pages, N * 112 / SLAB_PAGE);
    for (size_t i = 0; i < N; i++)
        slab_free(p[i], 100);
    slab_stats st2;
    slab_get_stats(&st2);
    ck_assert_uint_ge(st2.empty + st2.released, N * 112 / SLAB_PAGE);
    /* freed memory is handed out again before new pages are taken */
    for (size_t i = 0; i < N; i++)
        ck_assert_ptr_nonnull(p[i] = slab_alloc(2000));
    slab_stats st3;
    slab_get_stats(&st3);
    ck_assert_uint_lt(st3.pages - st2.pages, N * 2000 / SLAB_PAGE);
    for (size_t i = 0; i < N; i++)
        slab_free(p[i], 2000);
    /* beyond a few MB, emptied pages go back to the system, and serve again after */
    slab_stats st4;
    slab_get_stats(&st4);
    ck_assert_uint_gt(st4.released, 0);
    uint8_t *again = slab_alloc(48);
    ck_assert_ptr_nonnull(again);
    memset(again, 1, 48);
    slab_free(again, 48);
    /* above SLAB_MAX: malloc's, resized and freed through the same calls */
    uint8_t *big = slab_alloc(SLAB_MAX + 100);
    ck_assert_ptr_nonnull(big);
    big[SLAB_MAX + 99] = 7;
    big = slab_realloc(big, SLAB_MAX + 100, 3 * SLAB_MAX);
    ck_assert_uint_eq(big[SLAB_MAX + 99], 7);
    big[0] = 9;
    uint8_t *small = slab_realloc(big, 3 * SLAB_MAX, 64);
    ck_assert_ptr_nonnull(small);
    ck_assert_uint_eq(small[0], 9);
    slab_free(small, 64);
    slab_free(NULL, 10);
}
END_TEST

START_TEST(test_buf_oom_sticky) {
    buf b = BUF_INIT;
    ck_assert_int_eq(buf_puts(&b, "ab"), 0);
    ck_assert_int_eq(buf_error(&b), 0);
    /* a request the buffer cannot grow to marks it; later appends are no-ops */
    ck_assert_int_eq(buf_reserve(&b, SIZE_MAX - 8), KILN_ENOMEM);
    ck_assert_int_eq(buf_error(&b), KILN_ENOMEM);
    ck_assert_int_eq(buf_puts(&b, "cd"), KILN_ENOMEM);
    ck_assert_uint_eq(b.len, 2);
    ck_assert_str_eq(b.data, "ab");
    buf_reset(&b);
    ck_assert_int_eq(buf_error(&b), 0);
    ck_assert_int_eq(buf_printf(&b, "%d", 42), 0);
    ck_assert_str_eq(b.data, "42");
    buf_free(&b);
}
END_TEST

START_TEST(test_crc32c_and_endian) {
    ck_assert_uint_eq(crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(crc32c_sw(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    uint8_t p[8];
    be64_put(p, 0x0102030405060708ull);
    ck_assert_uint_eq(p[0], 1);
    ck_assert_uint_eq(p[7], 8);
    ck_assert_uint_eq(be64_get(p), 0x0102030405060708ull);
    ck_assert_uint_eq(be32_get(p + 4), 0x05060708u);
    be16_put(p, 0xA1B2);
    ck_assert_uint_eq(p[0], 0xA1);
    ck_assert_uint_eq(be16_get(p), 0xA1B2);
    be32_put(p, 0xDEADBEEFu);
    ck_assert_uint_eq(be32_get(p), 0xDEADBEEFu);
}
END_TEST

START_TEST(test_fileio) {
    char root[] = "/tmp/kiln_fileio_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(root));
    char deep[256], file[300];
    snprintf(deep, sizeof deep, "%s/a/b/c", root);
    kiln_err err = {0};
    ck_assert_int_eq(fileio_mkdir_p(deep, &err), 0);
    ck_assert_int_eq(fileio_mkdir_p(deep, &err), 0); /* existing: fine */
    snprintf(file, sizeof file, "%s/x", deep);
    ck_assert_int_eq(fileio_write_file(file, "hello", 5, &err), 0);
    struct stat st;
    ck_assert_int_eq(stat(file, &st), 0);
    ck_assert_int_eq(st.st_size, 5);
    ck_assert_int_eq(fileio_fsync_dir(deep, &err), 0);
    /* a directory that does not exist cannot be synced, and says which */
    char missing[300];
    snprintf(missing, sizeof missing, "%s/nope", root);
    ck_assert_int_eq(fileio_fsync_dir(missing, &err), KILN_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "nope"));
    /* a file where a directory must go */
    char under[320];
    snprintf(under, sizeof under, "%s/sub", file);
    ck_assert_int_eq(fileio_mkdir_p(under, &err), KILN_EIO);
    ck_assert_int_eq(fileio_rm_rf(root, &err), 0);
    ck_assert_int_ne(stat(root, &st), 0);
    ck_assert_int_eq(fileio_rm_rf(root, &err), 0); /* already gone: fine */
    ck_assert_int_eq(fileio_mkdir_p("", &err), KILN_EINVAL);
}
END_TEST

START_TEST(test_http_status_text) {
    ck_assert_str_eq(http_status_text(404, "?"), "Not Found");
    ck_assert_str_eq(http_status_text(503, "?"), "Service Unavailable");
    ck_assert_str_eq(http_status_text(299, "?"), "?");
}
END_TEST

START_TEST(test_ulid) {
    char a[ULID_LEN + 1], b[ULID_LEN + 1];
    ulid_new(a);
    usleep(2000);
    ulid_new(b);
    ck_assert(ulid_valid(a));
    ck_assert(ulid_valid(b));
    ck_assert_int_lt(strcmp(a, b), 0);                    /* later ULIDs sort after earlier ones */
    ck_assert(!ulid_valid("01ARZ3NDEKTSV4RRFFQ69G5FA"));  /* 25 characters */
    ck_assert(!ulid_valid("01ARZ3NDEKTSV4RRFFQ69G5FAv")); /* lower case */
}
END_TEST

/* The pairs of one log line at `format`: everything after "msg=..." (logfmt)
 * or after the "msg" member (JSON), read back through a pipe. */
#define LOG_CAPTURE(format, out, ...)                                                                        \
    do {                                                                                                     \
        int fds_[2];                                                                                         \
        ck_assert_int_eq(pipe(fds_), 0);                                                                     \
        log_set_fd(fds_[1]);                                                                                 \
        log_setup(LOG_INFO, format);                                                                         \
        log_at(LOG_ERROR, "x/f.c", 7, __VA_ARGS__);                                                          \
        close(fds_[1]);                                                                                      \
        ssize_t r_ = read(fds_[0], out, sizeof out - 1);                                                     \
        out[r_ > 0 ? r_ : 0] = 0;                                                                            \
        close(fds_[0]);                                                                                      \
        log_set_fd(2);                                                                                       \
        log_setup(LOG_INFO, LOG_FORMAT_LOGFMT);                                                              \
    } while (0)

static const char *after(const char *line, const char *mark) {
    const char *p = strstr(line, mark);
    ck_assert_msg(p != NULL, "%s not in %s", mark, line);
    return p + strlen(mark);
}

START_TEST(test_log_logfmt_quoting) {
    char out[2048];
    /* the migration trial's line: inner quotes escaped, the value one token */
    LOG_CAPTURE(LOG_FORMAT_LOGFMT, out, "Error loading config", "err=%s",
                "kiln.yml:29:22: not a valid duration string: \"10ss\"");
    ck_assert_str_eq(
        after(out, " caller=f.c:7 "),
        "msg=\"Error loading config\" err=\"kiln.yml:29:22: not a valid duration string: \\\"10ss\\\"\"\n");

    static const struct {
        const char *in, *want;
    } cases[] = {
        {"plain", "plain"},
        {"", "\"\""},
        {"a b", "\"a b\""},
        {"k=v", "\"k=v\""},
        {"say \"hi\"", "\"say \\\"hi\\\"\""},
        {"back\\slash", "back\\slash"},               /* a lone backslash stays bare, as slog writes it */
        {"quote\" and \\", "\"quote\\\" and \\\\\""}, /* once quoted, backslashes are escaped */
        {"two\nlines\r\tx", "\"two\\nlines\\r\\tx\""},
        {"bell\x01", "\"bell\\u0001\""},
        {"del\x7f", "\"del\\u007f\""},
        {"h\xc3\xa9llo", "h\xc3\xa9llo"}, /* valid UTF-8 is bare */
        {"bad\xff", "\"bad\\ufffd\""},    /* invalid UTF-8 is quoted and replaced */
        {"cut\xc3", "\"cut\\ufffd\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        LOG_CAPTURE(LOG_FORMAT_LOGFMT, out, "m", "v=%s n=%d", cases[i].in, 5);
        char want[256];
        snprintf(want, sizeof want, "msg=m v=%s n=5\n", cases[i].want);
        ck_assert_str_eq(after(out, " caller=f.c:7 "), want);
    }

    /* conversions: each template formatted alone, literal text kept, the argument list kept in step */
    LOG_CAPTURE(LOG_FORMAT_LOGFMT, out, "m",
                "a=%lld b=%llu c=%zu d=%.3fs e=%*d f=%-3s| g=%% h=%c i=%x j=%s:%d", (long long)-5,
                (unsigned long long)18446744073709551615ULL, (size_t)7, 1.5, 4, 42, "ab", 'z', 255u,
                "kiln.yml", 12);
    ck_assert_str_eq(after(out, " caller=f.c:7 "),
                     "msg=m a=-5 b=18446744073709551615 c=7 d=1.500s e=\"  42\" f=\"ab |\" g=% h=z i=ff "
                     "j=kiln.yml:12\n");
    /* a template in quotes may hold spaces */
    LOG_CAPTURE(LOG_FORMAT_LOGFMT, out, "m", "at=\"%s line %d\" s=%s", "f.yml", 3, "x");
    ck_assert_str_eq(after(out, " caller=f.c:7 "), "msg=m at=\"f.yml line 3\" s=x\n");
    LOG_CAPTURE(LOG_FORMAT_LOGFMT, out, "m", NULL);
    ck_assert_str_eq(after(out, " caller=f.c:7 "), "msg=m\n");
}
END_TEST

START_TEST(test_log_json_members) {
    char out[2048];
    LOG_CAPTURE(LOG_FORMAT_JSON, out, "Error loading config", "err=%s file=%s",
                "kiln.yml:29:22: not a valid duration string: \"10ss\" (see x=y)", "a b");
    ck_assert_msg(out[0] == '{', "%s", out);
    /* the message and the error each in their own key, nothing split into junk keys */
    ck_assert_str_eq(
        after(out, "\"caller\":\"f.c:7\","),
        "\"msg\":\"Error loading config\",\"err\":\"kiln.yml:29:22: not a valid duration string: "
        "\\\"10ss\\\" (see x=y)\",\"file\":\"a b\"}\n");

    /* control bytes, backslashes and invalid UTF-8 still give valid JSON */
    LOG_CAPTURE(LOG_FORMAT_JSON, out, "say \"hi\"\n", "v=%s n=%d e=%s", "a\\b\x01\xff\xe2\x82\xac", -3, "");
    ck_assert_str_eq(after(out, "\"caller\":\"f.c:7\","),
                     "\"msg\":\"say "
                     "\\\"hi\\\"\\n\",\"v\":\"a\\\\b\\u0001\\ufffd\xe2\x82\xac\",\"n\":\"-3\",\"e\":\"\"}\n");
}
END_TEST

/* After a large arena (a large query's) is freed the pool keeps at most
 * 16 MB: the rest goes back to the system (issue 16, finding 7).  Sanitizer
 * builds have no pool; the arena still works across the sizes. */
START_TEST(test_arena_pool_bounded_after_large) {
    arena a;
    for (int round = 0; round < 2; round++) {
        arena_init(&a, 0);
        for (int i = 0; i < 5000; i++) { /* small: the blocks are the standard, pooled ones */
            unsigned char *p = arena_alloc_nz(&a, 16 << 10);
            ck_assert_ptr_nonnull(p);
            p[0] = p[(16 << 10) - 1] = (unsigned char)i;
        }
        ck_assert_uint_ge(a.used_total, (size_t)75 << 20);
        arena_free(&a);
        ck_assert_uint_le(arena_pool_bytes(), (size_t)16 << 20);
    }
    /* a small arena's blocks are kept for the next one */
    arena_init(&a, 0);
    ck_assert_ptr_nonnull(arena_alloc(&a, 1000));
    arena_free(&a);
    ck_assert_uint_le(arena_pool_bytes(), (size_t)16 << 20);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_duration_parse);
    tcase_add_test(tc, test_duration_format);
    tcase_add_test(tc, test_fmt_double);
    tcase_add_test(tc, test_buf_and_arena);
    tcase_add_test(tc, test_utf8_and_names);
    tcase_add_test(tc, test_err);
    tcase_add_test(tc, test_slab);
    tcase_add_test(tc, test_slab_populate);
    tcase_add_test(tc, test_bigbuf);
    tcase_add_test(tc, test_buf_oom_sticky);
    tcase_add_test(tc, test_crc32c_and_endian);
    tcase_add_test(tc, test_fileio);
    tcase_add_test(tc, test_ulid);
    tcase_add_test(tc, test_http_status_text);
    tcase_add_test(tc, test_log_logfmt_quoting);
    tcase_add_test(tc, test_log_json_members);
    tcase_add_test(tc, test_arena_pool_bounded_after_large);
    tcase_add_test(tc, test_arena_adopt);
    suite_add_tcase(s, tc);
    return s;
}
