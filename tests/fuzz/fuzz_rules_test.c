/*
 * fuzz_rules_test.c - arbitrary bytes through the parsers of `kiln test
 * rules`: the test-file decoder (config/ruletest.c) and the series notation
 * of input_series and exp_samples (rules/unittest_series.c).
 *
 * The whole input is decoded as a test file; then every series and values
 * of the file that loaded, or else the input's first line, goes through the
 * series parser, and each exp_samples' labels (or the first line) through
 * the metric parser.  What must hold: a failure says why, and in
 * Prometheus' form for the series ("1:COL: parse error: ..." with COL within
 * the line, at most one past its end); a success gives sorted labels and at
 * most UT_MAX_VALUES values; nothing leaks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "rules/unittest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_one(const char *s, size_t n, int series) {
    arena a;
    buf msg = BUF_INIT;
    ut_series out;
    arena_init(&a, 0);
    int rc = series ? ut_parse_series(s, n, &a, &out, &msg) : ut_parse_metric(s, n, &a, &out, &msg);
    if (rc == KILN_EINVAL) {
        unsigned long col = 0;
        if (!msg.data || strncmp(msg.data, "1:", 2) != 0 || !strstr(msg.data, ": parse error: "))
            abort();
        col = strtoul(msg.data + 2, NULL, 10);
        if (col < 1 || col > n + 1)
            abort();
    } else if (rc == 0) {
        if (out.nvals > UT_MAX_VALUES || (!series && out.nvals))
            abort();
        for (size_t i = 1; i < out.nls; i++)
            if (strcmp(out.ls[i - 1].name, out.ls[i].name) > 0)
                abort();
    } else if (rc != KILN_ENOMEM) {
        abort();
    }
    buf_free(&msg);
    arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    buf msg = BUF_INIT;
    ruletest_file *t = NULL;
    int rc = ruletest_load_string(s, size, &t, &msg);
    if (rc == KILN_EINVAL && (!msg.data || !msg.len))
        abort(); /* a failure says why */
    if (rc == 0) {
        for (size_t i = 0; i < t->ntests; i++) {
            const ruletest_group *g = &t->tests[i];
            for (size_t k = 0; k < g->ninput_series; k++) {
                buf line = BUF_INIT;
                buf_printf(&line, "%s %s", g->input_series[k].series, g->input_series[k].values);
                if (!buf_error(&line))
                    check_one(line.data, line.len, 1);
                buf_free(&line);
            }
            for (size_t k = 0; k < g->npromql_expr_test; k++)
                for (size_t j = 0; j < g->promql_expr_test[k].nexp_samples; j++) {
                    const char *l = g->promql_expr_test[k].exp_samples[j].labels;
                    check_one(l, strlen(l), 0);
                }
        }
    }
    ruletest_free(t);
    buf_free(&msg);
    const char *nl = memchr(s, '\n', size);
    size_t n = nl ? (size_t)(nl - s) : size;
    check_one(s, n, 1);
    check_one(s, n, 0);
    return 0;
}
