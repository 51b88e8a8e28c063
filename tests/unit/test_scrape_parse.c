/*
 * test_scrape_parse.c - the exposition parsers (scrape/parse.c): every kind
 * of line in the text format 0.0.4 and OpenMetrics 1.0, escapes, values and
 * timestamps, the errors with their line numbers, where the two formats
 * differ, and large bodies.
 *
 * The files tests/openmetrics/{good,bad}/NAME.om are the OpenMetrics cases of every rule
 * of the spec's ABNF and MUST sentences: each good one must parse, each bad
 * one fail with the message in its .err file (the line and the rule).
 *
 * Most cases are tables: a body and the dump of what the parser returned,
 * one line per entry (see dump()), or the error message.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scrape/parse.h"
#include "util/util.h"

#define KILN_TEST_MAIN
#include "testutil.h"

#define TXT EXPO_TEXT
#define OM EXPO_OPENMETRICS

static void put_escaped(buf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            buf_puts(b, "\\n");
        else if (s[i] == '\\')
            buf_puts(b, "\\\\");
        else if (s[i] == '"')
            buf_puts(b, "\\\"");
        else if (s[i] == 0)
            buf_puts(b, "\\0");
        else
            buf_putc(b, s[i]);
    }
}

static void put_value(buf *b, double v) {
    if (isnan(v))
        buf_puts(b, "NaN");
    else if (isinf(v))
        buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    else
        buf_printf(b, "%.17g", v);
}

static const char *const type_names[] = {"untyped",        "counter", "gauge", "histogram",
                                         "gaugehistogram", "summary", "info",  "stateset"};

/*
 * Parses body and writes one line per entry:
 *   S <series> <metric> {name="value",...} <value> [@<ts>]
 *   H <metric> <text>      T <metric> <type>      U <metric> <unit>      C <text>
 * and "E <message>" on an error (which ends the dump).
 */
static char *dump(expo_format f, const char *body, size_t len) {
    buf b = BUF_INIT;
    expo_parser *p = expo_parser_new(f, body, len);
    ck_assert_ptr_nonnull(p);
    expo_entry kind;
    kiln_err err = {0};
    int rc;
    size_t n;
    const char *s;
    while ((rc = expo_next(p, &kind, &err)) == 1) {
        switch (kind) {
        case EXPO_SAMPLE: {
            s = expo_series(p, &n);
            buf_puts(&b, "S ");
            buf_append(&b, s, n);
            s = expo_metric(p, &n);
            buf_putc(&b, ' ');
            buf_append(&b, s, n);
            const expo_label *ls;
            size_t nl = expo_labels(p, &ls);
            buf_puts(&b, " {");
            for (size_t i = 0; i < nl; i++) {
                buf_puts(&b, i ? "," : "");
                buf_append(&b, ls[i].name, ls[i].name_len);
                buf_puts(&b, "=\"");
                put_escaped(&b, ls[i].value, ls[i].value_len);
                buf_putc(&b, '"');
            }
            buf_puts(&b, "} ");
            put_value(&b, expo_value(p));
            int64_t ts = 0;
            int has_ts = expo_timestamp(p, &ts);
            if (has_ts > 0)
                buf_printf(&b, " @%lld", (long long)ts);
            else if (has_ts < 0)
                buf_puts(&b, " @out-of-range");
            double ev;
            const expo_label *exl;
            size_t nex;
            int ex_has_ts;
            if (expo_exemplar(p, &exl, &nex, &ev, &ex_has_ts, &ts)) {
                buf_printf(&b, " # %zu labels ", nex);
                put_value(&b, ev);
                if (ex_has_ts)
                    buf_printf(&b, " @%lld", ex_has_ts > 0 ? (long long)ts : -1LL);
            }
            break;
        }
        case EXPO_HELP:
        case EXPO_UNIT:
            s = expo_metric(p, &n);
            buf_puts(&b, kind == EXPO_HELP ? "H " : "U ");
            buf_append(&b, s, n);
            buf_putc(&b, ' ');
            s = expo_text(p, &n);
            put_escaped(&b, s, n);
            break;
        case EXPO_TYPE:
            s = expo_metric(p, &n);
            buf_puts(&b, "T ");
            buf_append(&b, s, n);
            buf_printf(&b, " %s", type_names[expo_metric_type(p)]);
            break;
        case EXPO_COMMENT:
            s = expo_text(p, &n);
            buf_puts(&b, "C ");
            put_escaped(&b, s, n);
            break;
        }
        buf_putc(&b, '\n');
    }
    if (rc < 0) {
        ck_assert_int_eq(rc, KILN_EINVAL);
        ck_assert_int_eq(err.code, KILN_EINVAL);
        buf_printf(&b, "E %s\n", err.msg);
        /* a failed parser stays failed, with the same message */
        kiln_err again = {0};
        ck_assert_int_eq(expo_next(p, &kind, &again), KILN_EINVAL);
        ck_assert_str_eq(again.msg, err.msg);
    } else {
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(expo_next(p, &kind, &err), 0);
    }
    expo_parser_free(p);
    buf_putc(&b, 0);
    return buf_steal(&b);
}

typedef struct {
    expo_format f;
    const char *in;
    const char *want;
} dump_case;

static void run_cases(const dump_case *cs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char *got = dump(cs[i].f, cs[i].in, strlen(cs[i].in));
        ck_assert_msg(strcmp(got, cs[i].want) == 0, "case %zu (%s):\n%s\ngot:\n%s\nwant:\n%s", i,
                      cs[i].f == OM ? "om" : "text", cs[i].in, got, cs[i].want);
        free(got);
    }
}

#define RUN(cases) run_cases(cases, sizeof cases / sizeof cases[0])

/* ---- text format ------------------------------------------------------ */

START_TEST(test_text_lines) {
    static const dump_case cases[] = {
        {TXT, "", ""},
        {TXT, "\n\n  \t\n", ""},
        {TXT, "a 1\n", "S a a {} 1\n"},
        {TXT, "a 1", "S a a {} 1\n"}, /* no final newline */
        {TXT, "a_b:c 1.5 123\n", "S a_b:c a_b:c {} 1.5 @123\n"},
        {TXT, "a{} 1\n", "S a{} a {} 1\n"},
        {TXT, "a{b=\"c\",d=\"e\"} 2\n", "S a{b=\"c\",d=\"e\"} a {b=\"c\",d=\"e\"} 2\n"},
        /* labels in written order, duplicates left to the caller */
        {TXT, "a{z=\"1\",b=\"2\",z=\"3\"} 0\n",
         "S a{z=\"1\",b=\"2\",z=\"3\"} a {z=\"1\",b=\"2\",z=\"3\"} 0\n"},
        /* Prometheus' text parser: whitespace around tokens, trailing or missing commas */
        {TXT, "  a { b = \"c\" , d=\"e\" , } \t 2 \t 7 \t\n",
         "S a { b = \"c\" , d=\"e\" , } a {b=\"c\",d=\"e\"} 2 @7\n"},
        {TXT, "a{b=\"c\" d=\"e\"} 1\n", "S a{b=\"c\" d=\"e\"} a {b=\"c\",d=\"e\"} 1\n"},
        {TXT, "a{b=\"c\"}1\n", "S a{b=\"c\"} a {b=\"c\"} 1\n"},
        {TXT, "a{b=\"\"} 1\n", "S a{b=\"\"} a {b=\"\"} 1\n"},
        {TXT, "_x{_y=\"}{,=\"} -1\n", "S _x{_y=\"}{,=\"} _x {_y=\"}{,=\"} -1\n"},
        {TXT, "a{b=\"\xe2\x82\xac \xf0\x9f\x98\x80\"} 1\n",
         "S a{b=\"\xe2\x82\xac \xf0\x9f\x98\x80\"} a {b=\"\xe2\x82\xac \xf0\x9f\x98\x80\"} 1\n"},
        /* comments and metadata */
        {TXT, "# just a comment\n#no space\n#\n", "C # just a comment\nC #no space\nC #\n"},
        {TXT, "# HELP\n# HELPx y\n# TYPEs\n", "C # HELP\nC # HELPx y\nC # TYPEs\n"},
        {TXT, "# HELP a Some help.\n", "H a Some help.\n"},
        {TXT, "#\tHELP\ta\ttabs ok \n", "H a tabs ok \n"},
        {TXT, "# HELP a\n# HELP b \n", "H a \nH b \n"},
        {TXT, "# HELP a  two spaces\n", "H a  two spaces\n"},
        {TXT, "  # HELP a indented\n", "H a indented\n"},
        {TXT, "# TYPE a counter\n# TYPE b gauge\n# TYPE c histogram\n# TYPE d summary\n# TYPE e untyped\n",
         "T a counter\nT b gauge\nT c histogram\nT d summary\nT e untyped\n"},
        {TXT, "# TYPE a COUNTER\n# TYPE b Gauge  \t\n", "T a counter\nT b gauge\n"},
        {TXT, "# EOF\n", "C # EOF\n"},
        {TXT,
         "# HELP http_requests_total The total number of HTTP requests.\n"
         "# TYPE http_requests_total counter\n"
         "http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n"
         "http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n"
         "\n"
         "# Minimalistic line:\n"
         "metric_without_timestamp_and_labels 12.47\n"
         "# A histogram\n"
         "# TYPE h histogram\n"
         "h_bucket{le=\"0.05\"} 24054\n"
         "h_bucket{le=\"+Inf\"} 144320\n"
         "h_sum 53423\n"
         "h_count 144320\n",
         "H http_requests_total The total number of HTTP requests.\n"
         "T http_requests_total counter\n"
         "S http_requests_total{method=\"post\",code=\"200\"} http_requests_total "
         "{method=\"post\",code=\"200\"} "
         "1027 @1395066363000\n"
         "S http_requests_total{method=\"post\",code=\"400\"} http_requests_total "
         "{method=\"post\",code=\"400\"} "
         "3 @1395066363000\n"
         "C # Minimalistic line:\n"
         "S metric_without_timestamp_and_labels metric_without_timestamp_and_labels {} 12.470000000000001\n"
         "C # A histogram\n"
         "T h histogram\n"
         "S h_bucket{le=\"0.05\"} h_bucket {le=\"0.05\"} 24054\n"
         "S h_bucket{le=\"+Inf\"} h_bucket {le=\"+Inf\"} 144320\n"
         "S h_sum h_sum {} 53423\n"
         "S h_count h_count {} 144320\n"},
    };
    RUN(cases);
}
END_TEST

START_TEST(test_text_escapes) {
    static const dump_case cases[] = {
        {TXT, "a{b=\"x\\\\y\"} 1\n", "S a{b=\"x\\\\y\"} a {b=\"x\\\\y\"} 1\n"},
        {TXT, "a{b=\"x\\\"y\"} 1\n", "S a{b=\"x\\\"y\"} a {b=\"x\\\"y\"} 1\n"},
        {TXT, "a{b=\"x\\ny\"} 1\n", "S a{b=\"x\\ny\"} a {b=\"x\\ny\"} 1\n"},
        /* an undefined escape stays as written, as in Prometheus */
        {TXT, "a{b=\"\\t\\q\"} 1\n", "S a{b=\"\\t\\q\"} a {b=\"\\\\t\\\\q\"} 1\n"},
        {TXT, "a{b=\"\\\\n\"} 1\n", "S a{b=\"\\\\n\"} a {b=\"\\\\n\"} 1\n"},
        {TXT, "a{b=\"\\\\\",c=\"\\\"\"} 1\n", "S a{b=\"\\\\\",c=\"\\\"\"} a {b=\"\\\\\",c=\"\\\"\"} 1\n"},
        /* HELP in the text format: \\ and \n only; \" stays */
        {TXT, "# HELP a x\\\\y\\nz\\\"q\\t\n", "H a x\\\\y\\nz\\\\\\\"q\\\\t\n"},
        {TXT, "# HELP a trailing \\\n", "H a trailing \\\\\n"},
    };
    RUN(cases);
}
END_TEST

START_TEST(test_text_timestamps) {
    static const dump_case cases[] = {
        {TXT, "a 1 0\n", "S a a {} 1 @0\n"},
        {TXT, "a 1 9223372036854775807\n", "S a a {} 1 @9223372036854775807\n"},
        {TXT, "a 1 9223372036854775808\n", "E line 1: timestamp out of range\n"},
        {TXT, "a 1 -5\n", "E line 1: expected timestamp or end of line, got \"-5\"\n"},
        {TXT, "a 1 1.5\n", "E line 1: expected end of line after timestamp, got \".5\"\n"},
        {TXT, "a 1 12 3\n", "E line 1: expected end of line after timestamp, got \"3\"\n"},
        {TXT, "a 1 12x\n", "E line 1: expected end of line after timestamp, got \"x\"\n"},
    };
    RUN(cases);
}
END_TEST

START_TEST(test_text_errors) {
    static const dump_case cases[] = {
        {TXT, "a 1\nb\n", "S a a {} 1\nE line 2: expected value after metric, got end of line\n"},
        {TXT, "a 1\n\n{b=\"c\"} 1\n", "S a a {} 1\nE line 3: expected metric name or \"#\", got \"{\"\n"},
        {TXT, "1a 1\n", "E line 1: expected metric name or \"#\", got \"1a\"\n"},
        {TXT, "a+1\n", "E line 1: expected whitespace or \"{\" after metric name, got \"+1\"\n"},
        {TXT, "a{b=\"c\"}\n", "E line 1: expected value after metric, got end of line\n"},
        {TXT, "a{b=x} 1\n", "E line 1: expected label value, got \"x\"\n"},
        {TXT, "a{b} 1\n", "E line 1: expected \"=\" after label name, got \"}\"\n"},
        {TXT, "a{1b=\"c\"} 1\n", "E line 1: expected label name, got \"1b\"\n"},
        {TXT, "a{,} 1\n", "E line 1: expected label name, got \",\"\n"},
        {TXT, "a{b=\"c\"\n", "E line 1: expected label name, got end of line\n"},
        {TXT, "a{b=\"c} 1\n", "E line 1: label value of \"b\" not closed before the end of the line\n"},
        {TXT, "a{b=\"c\\\"} 1\n", "E line 1: label value of \"b\" not closed before the end of the line\n"},
        {TXT, "a{b=\"x\ny\"} 1\n", "E line 1: label value of \"b\" not closed before the end of the line\n"},
        {TXT, "a{b=\"\xff\"} 1\n", "E line 1: invalid UTF-8 in the value of label \"b\"\n"},
        {TXT, "a{b=\"\xc0\xaf\"} 1\n", "E line 1: invalid UTF-8 in the value of label \"b\"\n"},
        {TXT, "a{b=\"\xed\xa0\x80\"} 1\n", "E line 1: invalid UTF-8 in the value of label \"b\"\n"},
        {TXT, "a{b=\"\xe2\x82\"} 1\n", "E line 1: invalid UTF-8 in the value of label \"b\"\n"},
        {TXT, "a x\n", "E line 1: invalid number while parsing value \"x\"\n"},
        {TXT, "a 1e999\n", "E line 1: value out of range while parsing value \"1e999\"\n"},
        {TXT, "a 1\r\n", "E line 1: invalid number while parsing value \"1\r\"\n"},
        {TXT, "a 1 {\n", "E line 1: expected timestamp or end of line, got \"{\"\n"},
        {TXT, "# HELP 1a x\n", "E line 1: expected metric name after HELP, got \"1a\"\n"},
        {TXT, "# TYPE \n", "E line 1: expected metric name after TYPE, got end of line\n"},
        {TXT, "# HELP a-b x\n", "E line 1: expected whitespace after metric name, got \"-b\"\n"},
        {TXT, "# TYPE a counter\n# TYPE a bogus\n", "T a counter\nE line 2: invalid metric type \"bogus\"\n"},
        {TXT, "# TYPE a\n", "E line 1: invalid metric type \"\"\n"},
        /* types only OpenMetrics has */
        {TXT, "# TYPE a info\n", "E line 1: invalid metric type \"info\"\n"},
        {TXT, "# TYPE a unknown\n", "E line 1: invalid metric type \"unknown\"\n"},
        {TXT, "# HELP a \xff\n", "E line 1: help text is not valid UTF-8\n"},
        {TXT, "a{b=\"c\"} 1\n\n\n# x\nb{\"c\"} 2\n",
         "S a{b=\"c\"} a {b=\"c\"} 1\nC # x\nE line 5: expected label name, got \"\\\"\"\n"},
    };
    RUN(cases);
}
END_TEST

/* ---- values ----------------------------------------------------------- */

static int value_of(expo_format f, const char *v, double *out, kiln_err *err) {
    char body[1024];
    snprintf(body, sizeof body, f == OM ? "a %s\n# EOF\n" : "a %s\n", v);
    expo_parser *p = expo_parser_new(f, body, strlen(body));
    expo_entry kind;
    int rc = expo_next(p, &kind, err);
    if (rc == 1) {
        ck_assert_int_eq(kind, EXPO_SAMPLE);
        *out = expo_value(p);
    }
    expo_parser_free(p);
    return rc;
}

START_TEST(test_values) {
    static const struct {
        const char *in;
        double want;
    } ok[] = {
        {"0", 0},
        {"-0", -0.0},
        {"1", 1},
        {"+1", 1},
        {"-1.5", -1.5},
        {"1e3", 1000},
        {"1E+3", 1000},
        {"2.5e-3", 0.0025},
        {".5", 0.5},
        {"5.", 5},
        {"-.5e1", -5},
        {"007", 7},
        {"1e-400", 0}, /* underflow is not an error in Go */
        {"1.7976931348623157e308", 1.7976931348623157e308},
        {"123456789012345678901234567890", 123456789012345678901234567890.0},
        {"0.1000000000000000055511151231257827021181583404541015625", 0.1},
        {"+Inf", INFINITY},
        {"-Inf", -INFINITY},
        {"Inf", INFINITY},
        {"inf", INFINITY},
        {"INF", INFINITY},
        {"infinity", INFINITY},
        {"+Infinity", INFINITY},
        {"-INFINITY", -INFINITY},
    };
    static const char *const nan_ok[] = {"NaN", "nan", "NAN", "nAn"};
    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"+NaN", "invalid number"},       {"-nan", "invalid number"},  {"infin", "invalid number"},
        {"infinityy", "invalid number"},  {"0x1p3", "invalid number"}, {"0x10", "invalid number"},
        {"1_000", "invalid number"},      {"1e", "invalid number"},    {"1e+", "invalid number"},
        {".", "invalid number"},          {"-", "invalid number"},     {"e5", "invalid number"},
        {"1.2.3", "invalid number"},      {"1,5", "invalid number"},   {"1e400", "value out of range"},
        {"-1e400", "value out of range"}, {"true", "invalid number"},  {"Nan1", "invalid number"},
    };
    for (int f = 0; f < 2; f++) {
        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
            double v = 42;
            kiln_err err = {0};
            ck_assert_msg(value_of((expo_format)f, ok[i].in, &v, &err) == 1, "%s: %s", ok[i].in, err.msg);
            ck_assert_msg(v == ok[i].want && signbit(v) == signbit(ok[i].want), "%s: got %.17g", ok[i].in, v);
        }
        for (size_t i = 0; i < sizeof nan_ok / sizeof nan_ok[0]; i++) {
            double v = 0;
            kiln_err err = {0};
            ck_assert_int_eq(value_of((expo_format)f, nan_ok[i], &v, &err), 1);
            uint64_t bits;
            memcpy(&bits, &v, sizeof bits);
            /* Prometheus' canonical NaN, never the stale marker 0x7ff0000000000002 */
            ck_assert_uint_eq(bits, 0x7ff8000000000001ULL);
        }
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            double v = 0;
            kiln_err err = {0};
            ck_assert_msg(value_of((expo_format)f, bad[i].in, &v, &err) == KILN_EINVAL, "%s accepted",
                          bad[i].in);
            char want[128];
            snprintf(want, sizeof want, "line 1: %s while parsing value \"%s\"", bad[i].msg, bad[i].in);
            ck_assert_str_eq(err.msg, want);
        }
    }
    /* a number longer than the stack copy goes through the parser's buffer */
    char big[700];
    memset(big, '1', 600);
    memcpy(big + 600, ".5e-599", 8);
    double v = 0;
    kiln_err err = {0};
    ck_assert_int_eq(value_of(TXT, big, &v, &err), 1);
    ck_assert_double_eq_tol(v, 1.1111111111111112, 1e-15);
}
END_TEST

/* ---- OpenMetrics ------------------------------------------------------ */

START_TEST(test_om_lines) {
    static const dump_case cases[] = {
        {OM, "# EOF\n", ""},
        {OM, "# EOF", ""},
        {OM, "a 1\n# EOF\n", "S a a {} 1\n"},
        {OM,
         "# TYPE acme_http_router_request_seconds summary\n"
         "# UNIT acme_http_router_request_seconds seconds\n"
         "# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.\n"
         "acme_http_router_request_seconds_sum{path=\"/api/v1\",method=\"GET\"} 9036.32\n"
         "acme_http_router_request_seconds_count{path=\"/api/v1\",method=\"GET\"} 807283.0\n"
         "acme_http_router_request_seconds_created{path=\"/api/v1\",method=\"GET\"} 1605281325.0\n"
         "# TYPE go_goroutines gauge\n"
         "# HELP go_goroutines Number of goroutines that currently exist.\n"
         "go_goroutines 69\n"
         "# TYPE process_cpu_seconds counter\n"
         "# UNIT process_cpu_seconds seconds\n"
         "# HELP process_cpu_seconds Total user and system CPU time spent in seconds.\n"
         "process_cpu_seconds_total 4.20072246e+06\n"
         "# EOF\n",
         "T acme_http_router_request_seconds summary\n"
         "U acme_http_router_request_seconds seconds\n"
         "H acme_http_router_request_seconds Latency though all of ACME's HTTP request router.\n"
         "S acme_http_router_request_seconds_sum{path=\"/api/v1\",method=\"GET\"} "
         "acme_http_router_request_seconds_sum {path=\"/api/v1\",method=\"GET\"} 9036.3199999999997\n"
         "S acme_http_router_request_seconds_count{path=\"/api/v1\",method=\"GET\"} "
         "acme_http_router_request_seconds_count {path=\"/api/v1\",method=\"GET\"} 807283\n"
         "S acme_http_router_request_seconds_created{path=\"/api/v1\",method=\"GET\"} "
         "acme_http_router_request_seconds_created {path=\"/api/v1\",method=\"GET\"} 1605281325\n"
         "T go_goroutines gauge\n"
         "H go_goroutines Number of goroutines that currently exist.\n"
         "S go_goroutines go_goroutines {} 69\n"
         "T process_cpu_seconds counter\n"
         "U process_cpu_seconds seconds\n"
         "H process_cpu_seconds Total user and system CPU time spent in seconds.\n"
         "S process_cpu_seconds_total process_cpu_seconds_total {} 4200722.46\n"},
        /* every type with its suffixes */
        {OM,
         "# TYPE c counter\nc_total 3\nc_created 1.5e9\n"
         "# TYPE h histogram\nh_bucket{le=\"1.0\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 3.5\n"
         "h_created 1\n"
         "# TYPE gh gaugehistogram\ngh_bucket{le=\"-1\"} 1\ngh_bucket{le=\"+Inf\"} 2\ngh_gcount 2\ngh_gsum "
         "-3\n"
         "# TYPE s summary\ns{quantile=\"0.5\"} NaN\ns{quantile=\"1\"} 7\ns_sum 4\ns_count 9\ns_created 1\n"
         "# TYPE i info\ni_info{version=\"1.2\"} 1\n"
         "# TYPE ss stateset\nss{ss=\"a\"} 1\nss{ss=\"b\"} 0\n"
         "# TYPE u unknown\nu 4\n"
         "# TYPE g gauge\ng -5\n"
         "# EOF\n",
         "T c counter\nS c_total c_total {} 3\nS c_created c_created {} 1500000000\n"
         "T h histogram\nS h_bucket{le=\"1.0\"} h_bucket {le=\"1.0\"} 1\n"
         "S h_bucket{le=\"+Inf\"} h_bucket {le=\"+Inf\"} 2\nS h_count h_count {} 2\nS h_sum h_sum {} 3.5\n"
         "S h_created h_created {} 1\n"
         "T gh gaugehistogram\nS gh_bucket{le=\"-1\"} gh_bucket {le=\"-1\"} 1\n"
         "S gh_bucket{le=\"+Inf\"} gh_bucket {le=\"+Inf\"} 2\nS gh_gcount gh_gcount {} 2\n"
         "S gh_gsum gh_gsum {} -3\n"
         "T s summary\nS s{quantile=\"0.5\"} s {quantile=\"0.5\"} NaN\nS s{quantile=\"1\"} s "
         "{quantile=\"1\"} 7\n"
         "S s_sum s_sum {} 4\nS s_count s_count {} 9\nS s_created s_created {} 1\n"
         "T i info\nS i_info{version=\"1.2\"} i_info {version=\"1.2\"} 1\n"
         "T ss stateset\nS ss{ss=\"a\"} ss {ss=\"a\"} 1\nS ss{ss=\"b\"} ss {ss=\"b\"} 0\n"
         "T u untyped\nS u u {} 4\n"
         "T g gauge\nS g g {} -5\n"},
        /* samples without metadata are families of type unknown */
        {OM, "a 1\nb_total 2\nc_bucket 3\n# EOF\n",
         "S a a {} 1\nS b_total b_total {} 2\nS c_bucket c_bucket {} 3\n"},
        /* a sample that does not fit the family starts a new one */
        {OM, "# TYPE a counter\na_total 1\na_count 2\n# EOF\n",
         "T a counter\nS a_total a_total {} 1\nS a_count a_count {} 2\n"},
        /* metadata only, empty HELP and UNIT */
        {OM, "# HELP a \n# UNIT a \n# TYPE a gauge\n# EOF\n", "H a \nU a \nT a gauge\n"},
        {OM, "# HELP a x\\\\y\\nz\\\"q\\t\n# EOF\n", "H a x\\\\y\\nz\\\"q\\\\t\n"},
        {OM, "a{b=\"x\\\\y\\nz\\\"q\\t\"} 1\n# EOF\n",
         "S a{b=\"x\\\\y\\nz\\\"q\\t\"} a {b=\"x\\\\y\\nz\\\"q\\\\t\"} 1\n"},
        /* \n in a label value */
        {OM, "a{b=\"x\\ny\"} 1\n# EOF\n", "S a{b=\"x\\ny\"} a {b=\"x\\ny\"} 1\n"},
        /* timestamps: float seconds, truncated to ms like Prometheus */
        {OM, "a 1 1520879607.789\n# EOF\n", "S a a {} 1 @1520879607789\n"},
        {OM, "a 1 1.5\nb 1 -1.5\nc 1 0\nd 1 1e3\ne 1 0.0009\nf 1 -0.0009\n# EOF\n",
         "S a a {} 1 @1500\nS b b {} 1 @-1500\nS c c {} 1 @0\nS d d {} 1 @1000000\nS e e {} 1 @0\n"
         "S f f {} 1 @0\n"},
        /* exemplars: the count of labels, the value and timestamp */
        {OM,
         "# TYPE foo histogram\n"
         "foo_bucket{le=\"0.01\"} 0\n"
         "foo_bucket{le=\"0.1\"} 8 # {} 0.054\n"
         "foo_bucket{le=\"1\"} 11 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n"
         "foo_bucket{le=\"10\"} 17 # {trace_id=\"oHg5SJYRHA0\"} 9.8 1520879607.789\n"
         "foo_bucket{le=\"+Inf\"} 17 # {a=\"b\",c=\"\\\"\"} 1\n"
         "foo_count 17\n"
         "foo_sum 324789.3\n"
         "foo_created 1520430000.123\n"
         "# TYPE bar counter\n"
         "bar_total 5 # {x=\"y\"} 1 -1.5\n"
         "# EOF\n",
         "T foo histogram\n"
         "S foo_bucket{le=\"0.01\"} foo_bucket {le=\"0.01\"} 0\n"
         "S foo_bucket{le=\"0.1\"} foo_bucket {le=\"0.1\"} 8 # 0 labels 0.053999999999999999\n"
         "S foo_bucket{le=\"1\"} foo_bucket {le=\"1\"} 11 # 1 labels 0.67000000000000004\n"
         "S foo_bucket{le=\"10\"} foo_bucket {le=\"10\"} 17 # 1 labels 9.8000000000000007 @1520879607789\n"
         "S foo_bucket{le=\"+Inf\"} foo_bucket {le=\"+Inf\"} 17 # 2 labels 1\n"
         "S foo_count foo_count {} 17\n"
         "S foo_sum foo_sum {} 324789.29999999999\n"
         "S foo_created foo_created {} 1520430000.1229999\n"
         "T bar counter\n"
         "S bar_total bar_total {} 5 # 1 labels 1 @-1500\n"},
    };
    RUN(cases);
}
END_TEST

START_TEST(test_nul_in_label_value) {
    /* NUL is valid UTF-8 (OpenMetrics: "NULL MUST be supported"); lengths carry it */
    static const char body[] = "a{b=\"x\0y\"} 1\n# EOF\n";
    for (int f = 0; f < 2; f++) {
        expo_parser *p = expo_parser_new((expo_format)f, body, f == OM ? sizeof body - 1 : sizeof body - 7);
        expo_entry kind;
        kiln_err err = {0};
        ck_assert_int_eq(expo_next(p, &kind, &err), 1);
        const expo_label *ls;
        ck_assert_uint_eq(expo_labels(p, &ls), 1);
        ck_assert_uint_eq(ls[0].value_len, 3);
        ck_assert_int_eq(memcmp(ls[0].value, "x\0y", 3), 0);
        size_t n;
        expo_series(p, &n);
        ck_assert_uint_eq(n, 10);
        ck_assert_int_eq(expo_next(p, &kind, &err), 0);
        expo_parser_free(p);
    }
    /* outside a label value it is an error */
    static const char bad[] = "a 1\n\0\n";
    expo_parser *p = expo_parser_new(TXT, bad, sizeof bad - 1);
    expo_entry kind;
    kiln_err err = {0};
    ck_assert_int_eq(expo_next(p, &kind, &err), 1);
    ck_assert_int_eq(expo_next(p, &kind, &err), KILN_EINVAL);
    ck_assert_str_eq(err.msg, "line 2: expected metric name or \"#\", got \"\\x00\"");
    expo_parser_free(p);
}
END_TEST

START_TEST(test_om_exemplar_limit) {
    /* 128 code points of names and values is the most; escapes count once */
    char v[400];
    memset(v, 'x', 127);
    v[127] = 0; /* "a" + 127 = 128 */
    char body[512];
    snprintf(body, sizeof body, "# TYPE a counter\na_total 1 # {a=\"%s\"} 1\n# EOF\n", v);
    char *got = dump(OM, body, strlen(body));
    ck_assert_str_eq(got, "T a counter\nS a_total a_total {} 1 # 1 labels 1\n");
    free(got);
    snprintf(body, sizeof body, "# TYPE a counter\na_total 1 # {a=\"%sx\"} 1\n# EOF\n", v);
    got = dump(OM, body, strlen(body));
    ck_assert_str_eq(got, "T a counter\nE line 2: exemplar labels have 129 characters, more than 128\n");
    free(got);
    /* 125 x + "\\" + "\n" + "a" = 128 characters */
    memset(v, 'x', 125);
    memcpy(v + 125, "\\\\\\n", 5);
    snprintf(body, sizeof body, "# TYPE a counter\na_total 1 # {a=\"%s\"} 1\n# EOF\n", v);
    got = dump(OM, body, strlen(body));
    ck_assert_str_eq(got, "T a counter\nS a_total a_total {} 1 # 1 labels 1\n");
    free(got);
    /* multi-byte characters count once: "ab" + 126 euro signs (378 bytes) */
    for (int extra = 0; extra < 2; extra++) {
        char *w = v;
        for (int i = 0; i < 126 + extra; i++, w += 3)
            memcpy(w, "\xe2\x82\xac", 3);
        *w = 0;
        snprintf(body, sizeof body, "# TYPE a counter\na_total 1 # {ab=\"%s\"} 1\n# EOF\n", v);
        got = dump(OM, body, strlen(body));
        ck_assert_str_eq(got,
                         extra ? "T a counter\nE line 2: exemplar labels have 129 characters, more than 128\n"
                               : "T a counter\nS a_total a_total {} 1 # 1 labels 1\n");
        free(got);
    }
}
END_TEST

START_TEST(test_om_errors) {
    static const dump_case cases[] = {
        /* # EOF */
        {OM, "", "E line 1: data does not end with # EOF\n"},
        {OM, "a 1\n", "S a a {} 1\nE line 2: data does not end with # EOF\n"},
        {OM, "a 1", "E line 1: data does not end with # EOF\n"},
        {OM, "a 1\n# EOF\n\n", "S a a {} 1\nE line 2: unexpected data after # EOF\n"},
        {OM, "# EOF\na 1\n", "E line 1: unexpected data after # EOF\n"},
        {OM, "# EOF \n",
         "E line 1: expected \"# HELP\", \"# TYPE\", \"# UNIT\" or \"# EOF\", got \"# EOF \"\n"},
        /* whitespace, blank lines, comments */
        {OM, "a 1\n\nb 1\n# EOF\n", "S a a {} 1\nE line 2: blank line (not allowed in OpenMetrics)\n"},
        {OM, "a  1\n# EOF\n", "E line 1: expected value, got \" \"\n"},
        {OM, "a 1 \n# EOF\n", "E line 1: expected timestamp, got end of line\n"},
        {OM, " a 1\n# EOF\n", "E line 1: expected metric name or \"#\", got \" \"\n"},
        {OM, "a\t1\n# EOF\n", "E line 1: expected a space and the value after the metric, got \"\\x09\"\n"},
        {OM, "a { b=\"c\"} 1\n# EOF\n", "E line 1: invalid number while parsing value \"{\"\n"},
        {OM, "a{ b=\"c\"} 1\n# EOF\n", "E line 1: expected label name, got \" \"\n"},
        {OM, "a{b=\"c\" ,d=\"e\"} 1\n# EOF\n",
         "E line 1: expected \",\" or \"}\" after label value, got \" \"\n"},
        {OM, "a{b=\"c\"d=\"e\"} 1\n# EOF\n",
         "E line 1: expected \",\" or \"}\" after label value, got \"d\"\n"},
        {OM, "a{,} 1\n# EOF\n", "E line 1: expected label name, got \",\"\n"},
        {OM, "a{b=\"c\",,} 1\n# EOF\n", "E line 1: expected label name, got \",\"\n"},
        {OM, "# a comment\n# EOF\n",
         "E line 1: expected \"# HELP\", \"# TYPE\", \"# UNIT\" or \"# EOF\", got \"# a comment\"\n"},
        {OM, "#HELP a x\n# EOF\n",
         "E line 1: expected \"# HELP\", \"# TYPE\", \"# UNIT\" or \"# EOF\", got \"#HELP a x\"\n"},
        {OM, "a 1\r\n# EOF\n",
         "E line 1: line ends in a carriage return (line endings MUST be a line feed alone)\n"},
        /* metadata */
        {OM, "# HELP a\n# EOF\n", "E line 1: expected a space after the metric name, got end of line\n"},
        {OM, "# HELP  a x\n# EOF\n", "E line 1: expected metric name after HELP, got \" \"\n"},
        {OM, "# TYPE a Counter\n# EOF\n", "E line 1: invalid metric type \"Counter\"\n"},
        {OM, "# TYPE a untyped\n# EOF\n", "E line 1: invalid metric type \"untyped\"\n"},
        {OM, "# TYPE a gauge \n# EOF\n", "E line 1: invalid metric type \"gauge \"\n"},
        {OM, "# TYPE a gauge\n# TYPE a gauge\n# EOF\n",
         "T a gauge\nE line 2: second TYPE line for \"a\" (one of each at most)\n"},
        {OM, "# HELP a x\n# HELP a y\n# EOF\n",
         "H a x\nE line 2: second HELP line for \"a\" (one of each at most)\n"},
        {OM, "# TYPE a gauge\na 1\n# HELP a x\n# EOF\n",
         "T a gauge\nS a a {} 1\nE line 3: HELP line for \"a\" after its samples (metadata comes first)\n"},
        {OM, "a 1\n# TYPE a gauge\n# EOF\n",
         "S a a {} 1\nE line 2: TYPE line for \"a\" after its samples (metadata comes first)\n"},
        {OM, "# UNIT a_seconds bytes\n# EOF\n",
         "E line 1: unit \"bytes\" is not a suffix of metric \"a_seconds\" (it MUST be, after an "
         "underscore)\n"},
        {OM, "# UNIT aseconds seconds\n# EOF\n",
         "E line 1: unit \"seconds\" is not a suffix of metric \"aseconds\" (it MUST be, after an "
         "underscore)\n"},
        {OM, "# UNIT seconds seconds\n# EOF\n",
         "E line 1: unit \"seconds\" is not a suffix of metric \"seconds\" (it MUST be, after an "
         "underscore)\n"},
        {OM, "# UNIT a_s s-x\n# EOF\n", "E line 1: invalid character in unit, got \"-x\"\n"},
        {OM, "# TYPE a_b info\n# UNIT a_b b\n# EOF\n",
         "T a_b info\nE line 2: info \"a_b\" cannot have a unit (its unit MUST be empty)\n"},
        {OM, "# UNIT a_b \n# TYPE a_b stateset\n# EOF\n", "U a_b \nT a_b stateset\n"},
        {OM, "# UNIT a_b b\n# TYPE a_b stateset\n# EOF\n",
         "U a_b b\nE line 2: stateset \"a_b\" cannot have a unit (its unit MUST be empty)\n"},
        {OM, "# HELP a \xff\n# EOF\n", "E line 1: help text is not valid UTF-8\n"},
        /* interleaved families */
        {OM, "a 1\nb 1\na{x=\"1\"} 1\n# EOF\n",
         "S a a {} 1\nS b b {} 1\nE line 3: metric family \"a\" appears again after another family (first on "
         "line 1; families MUST NOT be interleaved)\n"},
        {OM, "# TYPE a gauge\n# TYPE b gauge\n# HELP a x\n# EOF\n",
         "T a gauge\nT b gauge\nE line 3: metric family \"a\" appears again after another family (first on "
         "line 1; families MUST NOT be interleaved)\n"},
        /* suffixes and labels per type */
        {OM, "# TYPE a counter\na 1\n# EOF\n",
         "T a counter\nE line 2: counter \"a\" cannot have a sample named \"a\"\n"},
        {OM, "# TYPE a counter\na_total -1\n# EOF\n",
         "T a counter\nE line 2: counter \"a\" total must not be NaN or negative\n"},
        {OM, "# TYPE a counter\na_total NaN\n# EOF\n",
         "T a counter\nE line 2: counter \"a\" total must not be NaN or negative\n"},
        {OM, "# TYPE a histogram\na_bucket 1\n# EOF\n",
         "T a histogram\nE line 2: histogram \"a\" bucket without an \"le\" label (every bucket MUST have a "
         "threshold)\n"},
        {OM, "# TYPE a histogram\na_bucket{le=\"x\"} 1\n# EOF\n",
         "T a histogram\nE line 2: histogram \"a\" bucket has an invalid \"le\" value \"x\" (a number, not "
         "NaN)\n"},
        {OM, "# TYPE a histogram\na_bucket{le=\"NaN\"} 1\n# EOF\n",
         "T a histogram\nE line 2: histogram \"a\" bucket has an invalid \"le\" value \"NaN\" (a number, not "
         "NaN)\n"},
        {OM, "# TYPE a histogram\na_bucket{le=\"1\"} -1\n# EOF\n",
         "T a histogram\nE line 2: histogram \"a\" sample \"a_bucket\" must not be NaN or negative\n"},
        {OM, "# TYPE a histogram\na_count{le=\"1\"} 1\n# EOF\n",
         "T a histogram\nE line 2: histogram \"a\" sample \"a_count\" must not have an \"le\" label\n"},
        {OM, "# TYPE a histogram\na_count NaN\n# EOF\n",
         "T a histogram\nE line 2: histogram \"a\" sample \"a_count\" must not be NaN or negative\n"},
        {OM, "# TYPE a histogram\na_sum NaN\n# EOF\n",
         "T a histogram\nE line 2: histogram \"a\" sample \"a_sum\" must not be NaN or negative (a sum is a "
         "counter)\n"},
        {OM, "# TYPE a histogram\na 1\n# EOF\n",
         "T a histogram\nE line 2: histogram \"a\" cannot have a sample named \"a\"\n"},
        {OM, "# TYPE a gaugehistogram\na_bucket{x=\"1\"} 1\n# EOF\n",
         "T a gaugehistogram\nE line 2: gaugehistogram \"a\" bucket without an \"le\" label (every bucket "
         "MUST have a threshold)\n"},
        {OM, "# TYPE a gaugehistogram\na_gcount -2\n# EOF\n",
         "T a gaugehistogram\nE line 2: gaugehistogram \"a\" sample \"a_gcount\" must not be NaN or "
         "negative\n"},
        {OM, "# TYPE a summary\na 1\n# EOF\n",
         "T a summary\nE line 2: summary \"a\" quantile without a \"quantile\" label\n"},
        {OM, "# TYPE a summary\na{quantile=\"1.5\"} 1\n# EOF\n",
         "T a summary\nE line 2: summary \"a\" has an invalid \"quantile\" value \"1.5\" (quantiles MUST be "
         "between 0 and 1)\n"},
        {OM, "# TYPE a summary\na_sum{quantile=\"0.5\"} 1\n# EOF\n",
         "T a summary\nE line 2: summary \"a\" sample \"a_sum\" must not have a \"quantile\" label\n"},
        {OM, "# TYPE a summary\na_count -1\n# EOF\n",
         "T a summary\nE line 2: summary \"a\" count must not be NaN or negative and MUST be an integer\n"},
        {OM, "# TYPE a stateset\na{b=\"x\"} 1\n# EOF\n",
         "T a stateset\nE line 2: stateset \"a\" sample without a \"a\" label\n"},
        {OM, "# TYPE a stateset\na{a=\"x\"} 2\n# EOF\n",
         "T a stateset\nE line 2: stateset \"a\" value must be 0 or 1\n"},
        {OM, "# TYPE a info\na_info 0\n# EOF\n", "T a info\nE line 2: info \"a\" value must be 1\n"},
        {OM, "# TYPE a info\na 1\n# EOF\n",
         "T a info\nE line 2: info \"a\" cannot have a sample named \"a\"\n"},
        /* timestamps */
        {OM, "a 1 NaN\n# EOF\n", "E line 1: invalid timestamp \"NaN\" (a timestamp is a real number)\n"},
        {OM, "a 1 +Inf\n# EOF\n", "E line 1: invalid timestamp \"+Inf\" (a timestamp is a real number)\n"},
        {OM, "a 1 1e300\n# EOF\n", "S a a {} 1 @out-of-range\n"},
        {OM, "a 1 x\n# EOF\n", "E line 1: invalid number while parsing timestamp \"x\"\n"},
        {OM, "a 1 2 3\n# EOF\n",
         "E line 1: expected end of line or an exemplar after the timestamp, got \"3\"\n"},
        /* exemplars */
        {OM, "a_total 1 #\n# EOF\n", "E line 1: invalid number while parsing timestamp \"#\"\n"},
        {OM, "a_total 1 # {}\n# EOF\n",
         "E line 1: expected a space after the exemplar labels, got end of line\n"},
        {OM, "a_total 1 # {} \n# EOF\n", "E line 1: expected exemplar value, got end of line\n"},
        {OM, "a_total 1 # {} x\n# EOF\n", "E line 1: invalid number while parsing exemplar value \"x\"\n"},
        {OM, "a_total 1 # {} 1 NaN\n# EOF\n",
         "E line 1: invalid exemplar timestamp \"NaN\" (a timestamp is a real number)\n"},
        {OM, "a_total 1 # {} 1 2 3\n# EOF\n",
         "E line 1: expected end of line after the exemplar timestamp, got \"3\"\n"},
        {OM, "a_total 1 # {a=b} 1\n# EOF\n", "E line 1: expected label value, got \"b\"\n"},
        {OM, "a_total 1 # {a=\"\xff\"} 1\n# EOF\n", "E line 1: invalid UTF-8 in the value of label \"a\"\n"},
        {OM, "a_total 1 # {} 1 # {} 2\n# EOF\n",
         "E line 1: invalid number while parsing exemplar timestamp \"#\"\n"},
        /* labels */
        {OM, "a{b=\"\xf4\x90\x80\x80\"} 1\n# EOF\n", "E line 1: invalid UTF-8 in the value of label \"b\"\n"},
        {OM, "a{b=\"c} 1\n# EOF\n", "E line 1: label value of \"b\" not closed before the end of the line\n"},
    };
    RUN(cases);
}
END_TEST

/* Reads a whole file into a malloc'd buffer (*n bytes). */
static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    ck_assert_int_ge(len, 0);
    rewind(f);
    char *data = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_eq(fread(data, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    data[len] = 0;
    *n = (size_t)len;
    return data;
}

/* Every case file of tests/openmetrics/<kind>: the verdict and, for a bad
 * one, the message.  Returns how many there were. */
static int run_case_dir(const char *kind) {
    char dir[256];
    snprintf(dir, sizeof dir, "tests/openmetrics/%s", kind);
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl < 4 || strcmp(de->d_name + nl - 3, ".om") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t n;
        char *body = slurp(path, &n);
        expo_parser *p = expo_parser_new(OM, body, n);
        expo_entry kind_;
        kiln_err err = {0};
        int rc;
        while ((rc = expo_next(p, &kind_, &err)) == 1)
            ;
        expo_parser_free(p);
        free(body);
        if (strcmp(kind, "good") == 0) {
            ck_assert_msg(rc == 0, "%s: %s", path, err.msg);
        } else {
            ck_assert_msg(rc == KILN_EINVAL, "%s: accepted", path);
            snprintf(path + strlen(path) - 3, 5, ".err");
            char *want = slurp(path, &n);
            while (n > 0 && want[n - 1] == '\n')
                want[--n] = 0;
            ck_assert_msg(strcmp(err.msg, want) == 0, "%s:\ngot:  %s\nwant: %s", path, err.msg, want);
            free(want);
        }
        count++;
    }
    closedir(d);
    return count;
}

START_TEST(test_om_case_files) {
    ck_assert_int_ge(run_case_dir("good"), 40);
    ck_assert_int_ge(run_case_dir("bad"), 100);
}
END_TEST

START_TEST(test_om_exemplars_and_drops) {
    static const char body[] = "# TYPE a counter\n"
                               "a_total 1 # {trace_id=\"x\\\"y\",b=\"\"} 0.5 1520879607.789\n"
                               "# TYPE h histogram\n"
                               "h_bucket{le=\"1\"} 1 # {} 1\n"
                               "h_bucket{le=\"+Inf\"} 1 # {z=\"1\"} 7 1e300\n"
                               "g 1 1e300\n"
                               "# EOF\n";
    expo_parser *p = expo_parser_new(OM, body, sizeof body - 1);
    expo_entry kind;
    kiln_err err = {0};
    const expo_label *ls;
    size_t n;
    double v;
    int has_ts;
    int64_t ts = 0;
    ck_assert_int_eq(expo_next(p, &kind, &err), 1); /* TYPE */
    ck_assert_int_eq(expo_next(p, &kind, &err), 1);
    ck_assert_int_eq(expo_exemplar(p, &ls, &n, &v, &has_ts, &ts), 1);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(memcmp(ls[0].name, "trace_id", 8), 0);
    ck_assert_uint_eq(ls[0].value_len, 3);
    ck_assert_int_eq(memcmp(ls[0].value, "x\"y", 3), 0);
    ck_assert_uint_eq(ls[1].value_len, 0);
    ck_assert(v == 0.5);
    ck_assert_int_eq(has_ts, 1);
    ck_assert_int_eq(ts, 1520879607789);
    ck_assert_int_eq(expo_timestamp(p, &ts), 0);
    ck_assert_int_eq(expo_next(p, &kind, &err), 1); /* TYPE */
    ck_assert_int_eq(expo_next(p, &kind, &err), 1);
    ck_assert_int_eq(expo_exemplar(p, &ls, &n, &v, &has_ts, &ts), 1);
    ck_assert_uint_eq(n, 0);
    ck_assert(v == 1);
    ck_assert_int_eq(has_ts, 0);
    ck_assert_int_eq(expo_next(p, &kind, &err), 1);
    /* an exemplar timestamp out of range: the exemplar says so */
    ck_assert_int_eq(expo_exemplar(p, &ls, &n, &v, &has_ts, &ts), 1);
    ck_assert_int_eq(has_ts, -1);
    ck_assert_uint_eq(n, 1);
    /* a sample timestamp out of range: kept, marked for the caller to drop */
    ck_assert_int_eq(expo_next(p, &kind, &err), 1);
    ck_assert_int_eq(kind, EXPO_SAMPLE);
    ck_assert_int_eq(expo_exemplar(p, &ls, &n, &v, &has_ts, &ts), 0);
    ck_assert_int_eq(expo_timestamp(p, &ts), -1);
    ck_assert_int_eq(expo_next(p, &kind, &err), 0);
    expo_parser_free(p);
}
END_TEST

START_TEST(test_om_created) {
    static const char body[] = "# TYPE c counter\n"
                               "c_total{a=\"1\"} 1\n"
                               "c_created{a=\"1\"} 1.5\n"
                               "c_total{a=\"2\"} 1\n"
                               "# TYPE h histogram\n"
                               "h_created 7\n"
                               "h_bucket{le=\"+Inf\"} 1\n"
                               "h_count 1\n"
                               "h_sum 1\n"
                               "# TYPE g gauge\n"
                               "g 1\n"
                               "# EOF\n";
    expo_parser *p = expo_parser_new(OM, body, sizeof body - 1);
    expo_entry kind;
    kiln_err err = {0};
    int64_t ct = 0;
    /* per sample: its created timestamp (-1: none), and whether it is a _created */
    static const int64_t want_ct[] = {1500, -1, -1, -1, 7000, 7000, 7000, -1};
    static const int want_is[] = {0, 1, 0, 1, 0, 0, 0, 0};
    size_t i = 0;
    while (expo_next(p, &kind, &err) == 1) {
        if (kind != EXPO_SAMPLE)
            continue;
        ck_assert_uint_lt(i, 8);
        ck_assert_int_eq(expo_is_created(p), want_is[i]);
        int has = expo_created(p, &ct);
        ck_assert_msg(has == (want_ct[i] >= 0) && (!has || ct == want_ct[i]), "sample %zu: %d %lld", i, has,
                      (long long)ct);
        i++;
    }
    ck_assert_uint_eq(i, 8);
    ck_assert_str_eq(err.msg, "");
    expo_parser_free(p);
}
END_TEST

/* ---- the two formats side by side ------------------------------------- */

START_TEST(test_text_vs_om) {
    static const dump_case cases[] = {
        /* timestamps: integer ms vs float seconds */
        {TXT, "a 1 1500\n", "S a a {} 1 @1500\n"},
        {OM, "a 1 1500\n# EOF\n", "S a a {} 1 @1500000\n"},
        {TXT, "a 1 1.5\n", "E line 1: expected end of line after timestamp, got \".5\"\n"},
        /* comments */
        {TXT, "# hi\n", "C # hi\n"},
        {OM, "# hi\n# EOF\n",
         "E line 1: expected \"# HELP\", \"# TYPE\", \"# UNIT\" or \"# EOF\", got \"# hi\"\n"},
        /* # EOF is a comment in the text format, and data may follow */
        {TXT, "# EOF\na 1\n", "C # EOF\nS a a {} 1\n"},
        /* UNIT is a comment in the text format */
        {TXT, "# UNIT a_s s\n", "C # UNIT a_s s\n"},
        /* \" in HELP */
        {TXT, "# HELP a \\\"\n", "H a \\\\\\\"\n"},
        {OM, "# HELP a \\\"\n# EOF\n", "H a \\\"\n"},
        /* types */
        {TXT, "# TYPE a untyped\n", "T a untyped\n"},
        {OM, "# TYPE a unknown\n# EOF\n", "T a untyped\n"},
        {TXT, "# TYPE a gaugehistogram\n", "E line 1: invalid metric type \"gaugehistogram\"\n"},
        {OM, "# TYPE a gaugehistogram\n# EOF\n", "T a gaugehistogram\n"},
        /* whitespace */
        {TXT, "a  1  \n", "S a a {} 1\n"},
        {OM, "a  1\n# EOF\n", "E line 1: expected value, got \" \"\n"},
        /* exemplars are not part of the text format */
        {TXT, "a 1 # {} 1\n", "E line 1: expected timestamp or end of line, got \"#\"\n"},
        /* the text format does not check families */
        {TXT, "# TYPE a counter\na 1\na_total -1\nb 1\na 2\n",
         "T a counter\nS a a {} 1\nS a_total a_total {} -1\nS b b {} 1\nS a a {} 2\n"},
        /* a counter without a _total sample is fine in the text format */
        {TXT, "# TYPE a histogram\na_bucket 1\n", "T a histogram\nS a_bucket a_bucket {} 1\n"},
    };
    RUN(cases);
}
END_TEST

START_TEST(test_format_of) {
    ck_assert_int_eq(expo_format_of(NULL), EXPO_TEXT);
    ck_assert_int_eq(expo_format_of(""), EXPO_TEXT);
    ck_assert_int_eq(expo_format_of("text/plain; version=0.0.4; charset=utf-8"), EXPO_TEXT);
    ck_assert_int_eq(expo_format_of("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                     EXPO_OPENMETRICS);
    ck_assert_int_eq(expo_format_of("application/openmetrics-text"), EXPO_OPENMETRICS);
    ck_assert_int_eq(expo_format_of(" Application/OpenMetrics-Text;version=0.0.1"), EXPO_OPENMETRICS);
    ck_assert_int_eq(expo_format_of("application/openmetrics-textx"), EXPO_TEXT);
    ck_assert_int_eq(expo_format_of("application/json"), EXPO_TEXT);
}
END_TEST

/* Names and values without escapes point into the body; line numbers. */
START_TEST(test_zero_copy_and_lines) {
    static const char body[] = "# HELP a x\n\na{b=\"c\",d=\"e\\\\f\"} 1\n  \n# c\na 2\n";
    expo_parser *p = expo_parser_new(TXT, body, sizeof body - 1);
    expo_entry kind;
    kiln_err err = {0};
    ck_assert_int_eq(expo_next(p, &kind, &err), 1);
    ck_assert_int_eq(kind, EXPO_HELP);
    ck_assert_uint_eq(expo_line(p), 1);
    size_t n;
    const char *s = expo_text(p, &n);
    ck_assert_ptr_eq(s, body + 9);
    ck_assert_int_eq(expo_next(p, &kind, &err), 1);
    ck_assert_int_eq(kind, EXPO_SAMPLE);
    ck_assert_uint_eq(expo_line(p), 3);
    const expo_label *ls;
    ck_assert_uint_eq(expo_labels(p, &ls), 2);
    ck_assert_ptr_eq(ls[0].name, body + 14);
    ck_assert_ptr_eq(ls[0].value, body + 17);
    ck_assert_ptr_eq(ls[1].name, body + 20);
    ck_assert(ls[1].value < body || ls[1].value >= body + sizeof body); /* unescaped copy */
    ck_assert_uint_eq(ls[1].value_len, 3);
    ck_assert_int_eq(memcmp(ls[1].value, "e\\f", 3), 0);
    s = expo_series(p, &n);
    ck_assert_ptr_eq(s, body + 12);
    ck_assert_uint_eq(n, 17);
    int64_t ts = 99;
    ck_assert_int_eq(expo_timestamp(p, &ts), 0);
    ck_assert_int_eq(ts, 99);
    ck_assert_int_eq(expo_next(p, &kind, &err), 1);
    ck_assert_int_eq(kind, EXPO_COMMENT);
    ck_assert_uint_eq(expo_line(p), 5);
    ck_assert_int_eq(expo_next(p, &kind, &err), 1);
    ck_assert_int_eq(kind, EXPO_SAMPLE);
    ck_assert_uint_eq(expo_line(p), 6);
    ck_assert_uint_eq(expo_labels(p, &ls), 0);
    ck_assert_int_eq(expo_next(p, &kind, &err), 0);
    ck_assert_int_eq(expo_next(p, &kind, &err), 0);
    expo_parser_free(p);

    /* an empty body, and a NULL one */
    p = expo_parser_new(TXT, NULL, 0);
    ck_assert_int_eq(expo_next(p, &kind, &err), 0);
    expo_parser_free(p);
    expo_parser_free(NULL);
}
END_TEST

/* ---- large bodies ----------------------------------------------------- */

static void large(expo_format f) {
    enum { FAMS = 500, PER = 200 };
    buf b = BUF_INIT;
    double want_sum = 0;
    for (int i = 0; i < FAMS; i++) {
        buf_printf(&b, "# HELP fam_%d Family %d with \\\\ escapes.\n# TYPE fam_%d %s\n", i, i, i,
                   i % 2 ? "counter" : "gauge");
        for (int j = 0; j < PER; j++) {
            const char *sfx = i % 2 ? "_total" : "";
            if (f == OM)
                buf_printf(&b,
                           "fam_%d%s{instance=\"host-%d\",path=\"/a\\\"b\\\\c\",le_x=\"%d\"} %d.5 %d.25\n", i,
                           sfx, j, j % 7, j, 1600000000 + j);
            else
                buf_printf(&b, "fam_%d%s{instance=\"host-%d\",path=\"/a\\\"b\\\\c\",le_x=\"%d\"} %d.5 %d\n",
                           i, sfx, j, j % 7, j, 1600000000 + j);
            want_sum += j + 0.5;
        }
    }
    if (f == OM)
        buf_puts(&b, "# EOF\n");
    expo_parser *p = expo_parser_new(f, b.data, b.len);
    expo_entry kind;
    kiln_err err = {0};
    int rc;
    size_t samples = 0, helps = 0, types = 0, lines_seen = 0;
    double sum = 0;
    while ((rc = expo_next(p, &kind, &err)) == 1) {
        lines_seen++;
        ck_assert_uint_eq(expo_line(p), lines_seen);
        if (kind == EXPO_HELP) {
            size_t n;
            const char *t = expo_text(p, &n);
            ck_assert_ptr_nonnull(memchr(t, '\\', n));
            ck_assert_ptr_null(memmem(t, n, "\\\\", 2));
            helps++;
        } else if (kind == EXPO_TYPE) {
            types++;
        } else if (kind == EXPO_SAMPLE) {
            const expo_label *ls;
            ck_assert_uint_eq(expo_labels(p, &ls), 3);
            ck_assert_uint_eq(ls[1].value_len, 6);
            ck_assert_int_eq(memcmp(ls[1].value, "/a\"b\\c", 6), 0);
            int64_t ts = 0;
            ck_assert_int_eq(expo_timestamp(p, &ts), 1);
            int j = (int)(samples % PER);
            ck_assert_int_eq(ts, f == OM ? (1600000000LL + j) * 1000 + 250 : 1600000000LL + j);
            sum += expo_value(p);
            samples++;
        }
    }
    ck_assert_msg(rc == 0, "%s", err.msg);
    ck_assert_uint_eq(samples, FAMS * PER);
    ck_assert_uint_eq(helps, FAMS);
    ck_assert_uint_eq(types, FAMS);
    ck_assert_double_eq(sum, want_sum);
    expo_parser_free(p);
    buf_free(&b);
}

START_TEST(test_large_text) {
    large(TXT);
}
END_TEST

START_TEST(test_large_om) {
    large(OM);
}
END_TEST

/* A long line (labels far beyond the initial scratch size) and many labels. */
START_TEST(test_long_line) {
    buf b = BUF_INIT;
    buf_puts(&b, "a{");
    for (int i = 0; i < 1000; i++)
        buf_printf(&b, "%sl%d=\"v\\n%d\"", i ? "," : "", i, i);
    buf_puts(&b, "} 1\n");
    for (int f = 0; f < 2; f++) {
        buf c = BUF_INIT;
        buf_append(&c, b.data, b.len);
        if (f == OM)
            buf_puts(&c, "# EOF\n");
        expo_parser *p = expo_parser_new((expo_format)f, c.data, c.len);
        expo_entry kind;
        kiln_err err = {0};
        ck_assert_int_eq(expo_next(p, &kind, &err), 1);
        const expo_label *ls;
        ck_assert_uint_eq(expo_labels(p, &ls), 1000);
        for (int i = 0; i < 1000; i++) {
            char want[32];
            int n = snprintf(want, sizeof want, "v\n%d", i);
            ck_assert_uint_eq(ls[i].value_len, (size_t)n);
            ck_assert_int_eq(memcmp(ls[i].value, want, (size_t)n), 0);
        }
        ck_assert_int_eq(expo_next(p, &kind, &err), 0);
        expo_parser_free(p);
        buf_free(&c);
    }
    buf_free(&b);
}
END_TEST

Suite *make_suite(void) {
    Suite *s = suite_create("scrape_parse");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_text_lines);
    tcase_add_test(tc, test_text_escapes);
    tcase_add_test(tc, test_text_timestamps);
    tcase_add_test(tc, test_text_errors);
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_om_lines);
    tcase_add_test(tc, test_nul_in_label_value);
    tcase_add_test(tc, test_om_exemplar_limit);
    tcase_add_test(tc, test_om_errors);
    tcase_add_test(tc, test_om_case_files);
    tcase_add_test(tc, test_om_exemplars_and_drops);
    tcase_add_test(tc, test_om_created);
    tcase_add_test(tc, test_text_vs_om);
    tcase_add_test(tc, test_format_of);
    tcase_add_test(tc, test_zero_copy_and_lines);
    tcase_add_test(tc, test_large_text);
    tcase_add_test(tc, test_large_om);
    tcase_add_test(tc, test_long_line);
    suite_add_tcase(s, tc);
    return s;
}
