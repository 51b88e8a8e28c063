/*
 * fuzz_template.c - libFuzzer harness for the alert template engine.
 *
 * The input (at most 4 KiB, cut at the first NUL) is parsed as a template; a
 * rejected one must come with a "line:col: " message and no template.  One
 * that parses is expanded twice with fixed alert data and a fake query
 * engine; the two outputs must be equal (expansion keeps no state), a
 * runtime error must be the whole output, and every query result must be
 * given back.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tmpl_label up_a[] = {{"__name__", "up"}, {"instance", "a:1"}};
static tmpl_label up_b[] = {{"__name__", "up"}, {"instance", "b:1"}, {"__value__", "x"}};
static int outstanding;

static int query(void *d, const char *expr, int64_t ts, tmpl_sample **out, size_t *n, kiln_err *err) {
    (void)d;
    (void)ts;
    if (strchr(expr, '('))
        return kiln_err_set(err, KILN_EINVAL, "1:1: parse error");
    tmpl_sample *v = malloc(2 * sizeof *v);
    if (!v)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    v[0] = (tmpl_sample){up_a, 2, 0.5};
    v[1] = (tmpl_sample){up_b, 3, 1e21};
    *out = v;
    *n = strlen(expr) % 3;
    outstanding++;
    return 0;
}

static void query_free(void *d, tmpl_sample *v, size_t n) {
    (void)d;
    (void)n;
    outstanding--;
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096)
        size = 4096;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    tmpl *t = NULL;
    kiln_err err = {0};
    int rc = tmpl_parse(text, "__alert_fuzz", &t, &err);
    if (rc < 0) {
        int line, col;
        if (t != NULL || (rc == KILN_EINVAL && sscanf(err.msg, "%d:%d: ", &line, &col) != 2))
            abort();
        free(text);
        return 0;
    }
    static tmpl_label labels[] = {{"job", "api"}, {"instance", "host.example.com:9090"}, {"__name__", "m"}};
    static tmpl_label ext[] = {{"cluster", "c1"}};
    tmpl_data d = {labels, 3, ext, 1, "http://x:9090/p", 1234.5678, 1700000000000, query, query_free, NULL};
    buf a = BUF_INIT, b = BUF_INIT;
    if (tmpl_expand(t, &d, &a) == 0 && tmpl_expand(t, &d, &b) == 0) {
        if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
            abort();
        const char *e =
            a.len ? strstr(a.data, "<error expanding template: error executing template __alert_fuzz: ")
                  : NULL;
        if (e && e != a.data && a.data[a.len - 1] == '>' && !strstr(text, "<error"))
            abort(); /* an error replaces what the expansion printed before it */
    }
    if (outstanding != 0)
        abort();
    buf_free(&a);
    buf_free(&b);
    tmpl_free(t);
    free(text);
    return 0;
}
