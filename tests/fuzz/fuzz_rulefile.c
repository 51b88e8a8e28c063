/*
 * fuzz_rulefile.c - arbitrary bytes through the rule-file loader
 * (config/rulefile.c), with query/'s parser as the PromQL hook.
 *
 * Loaded twice, once stopping at the first error and once reporting every
 * error: the verdicts must agree, a failure must say why (the first
 * reported error is err's), and nothing may leak.  A set that loads must
 * hold what the checks promise: one of record or alert, valid recording
 * names, unique non-empty group names, balanced templates, positions.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "query/query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void count(void *data, const char *msg) {
    if (!msg[0] || !strstr(msg, "fuzz.yml"))
        abort(); /* every error names the file */
    (*(int *)data)++;
}

static int parse_expr(const char *expr, kiln_err *err) {
    return query_parse_check(expr, err);
}

static void check_set(const rulefile_set *s) {
    size_t nrules = 0;
    for (size_t i = 0; i < s->ngroups; i++) {
        const rulefile_group *g = &s->groups[i];
        if (!g->name[0] || g->line < 1 || g->col < 1 || g->file != s->files[0])
            abort();
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->groups[j].name, g->name) == 0)
                abort();
        for (size_t j = 0; j < g->nrules; j++) {
            const rulefile_rule *r = &g->rules[j];
            if (!r->name[0] || !r->expr[0] || r->line < 1)
                abort();
            if (r->kind == RULEFILE_RECORD &&
                (!metric_name_valid(r->name, strlen(r->name)) || r->for_ms || r->nannotations))
                abort();
            if (r->kind != RULEFILE_RECORD && r->kind != RULEFILE_ALERT)
                abort();
            for (size_t k = 0; r->kind == RULEFILE_ALERT && k < r->nannotations; k++)
                if (rulefile_template_balanced("t", r->annotations[k].value, NULL) != 0)
                    abort();
        }
        nrules += g->nrules;
    }
    if (nrules != s->nrules)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rulefile_set *s = NULL, *s2 = NULL;
    kiln_err err = {0}, err2 = {0};
    int nerr = 0;
    rulefile_opts first = {.check_expr = parse_expr},
                  all = {.check_expr = parse_expr, .report = count, .data = &nerr};
    int rc = rulefile_load_string("fuzz.yml", (const char *)data, size, &first, &s, &err);
    int rc2 = rulefile_load_string("fuzz.yml", (const char *)data, size, &all, &s2, &err2);
    if ((rc == 0) != (rc2 == 0))
        abort(); /* the same verdict either way */
    if (rc != 0) {
        if (s || s2 || !err.msg[0] || nerr < 1 || strcmp(err.msg, err2.msg) != 0)
            abort();
        return 0;
    }
    if (nerr != 0 || !s || !s2 || s->nrules != s2->nrules || s->nfiles != 1)
        abort();
    check_set(s);
    rulefile_free(s);
    rulefile_free(s2);
    return 0;
}
