/*
 * fuzz_promql.c - libFuzzer harness for the PromQL parser and printer.
 *
 * The input (at most 4 KiB, cut at the first NUL) is parsed; a query that
 * parses is printed, the printed text must parse again, and printing that
 * second tree must give the same text (the canonical form is a fixed point).
 * A rejected query must come with a "line:col: parse error: " message.
 * Deep nesting must end in an error, not a stack overflow.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/ast.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096)
        size = 4096;
    char *q = malloc(size + 1);
    if (q == NULL)
        return 0;
    memcpy(q, data, size);
    q[size] = 0;

    promql_ast *a = NULL, *b = NULL;
    kiln_err err = {0};
    buf first = BUF_INIT, second = BUF_INIT;
    int rc = promql_parse(q, &a, &err);
    if (rc < 0) {
        if (a != NULL)
            abort();
        if (rc == KILN_EINVAL && strstr(err.msg, ": parse error: ") == NULL)
            abort();
        goto done;
    }
    (void)promql_expr_type(a->root);
    if (promql_format(&first, a->root) < 0)
        goto done;
    kiln_err err2 = {0};
    if (promql_parse(first.data, &b, &err2) < 0) {
        fprintf(stderr, "printed form does not parse:\n  %s\n  %s\n", first.data, err2.msg);
        abort();
    }
    if (promql_format(&second, b->root) < 0)
        goto done;
    if (strcmp(first.data, second.data) != 0) {
        fprintf(stderr, "print is not a fixed point:\n  %s\n  %s\n", first.data, second.data);
        abort();
    }
done:
    buf_free(&first);
    buf_free(&second);
    promql_ast_free(a);
    promql_ast_free(b);
    free(q);
    return 0;
}
