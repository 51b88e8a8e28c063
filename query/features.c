/*
 * features.c - the PromQL part of GET /api/v1/features (api.md
 * "Features", Prometheus 3.8): which language features, functions and
 * operators this engine offers with a given --enable-feature set.
 *
 * Writes three members of the answer's data object, each a map of
 * snake_case names to booleans:
 *   "promql"            language features (at_modifier, anchored, ...)
 *   "promql_functions"  every function, false when experimental and off
 *   "promql_operators"  binary, matching, set and aggregation operators
 *
 * Called by api/v1.c.  Threading: any thread; no state.
 */
#include <string.h>

#include "query/ast.h"
#include "query/query.h"

static void member(buf *out, int *first, const char *name, int on) {
    buf_printf(out, "%s\"%s\":%s", *first ? "" : ",", name, on ? "true" : "false");
    *first = 0;
}

int query_features_json(uint32_t features, buf *out) {
    int ext = (features & FEATURE_PROMQL_EXTENDED_RANGE_SELECTORS) != 0;
    int exp = (features & FEATURE_PROMQL_EXPERIMENTAL_FUNCTIONS) != 0;
    const struct {
        const char *name;
        int on;
    } lang[] = {
        {"anchored", ext},
        {"at_modifier", 1},
        {"binop_fill_modifiers", (features & FEATURE_PROMQL_BINOP_FILL_MODIFIERS) != 0},
        {"delayed_name_removal", (features & FEATURE_PROMQL_DELAYED_NAME_REMOVAL) != 0},
        {"duration_expr", (features & FEATURE_PROMQL_DURATION_EXPR) != 0},
        {"negative_offset", 1},
        {"per_query_lookback_delta", 1},
        {"smoothed", ext},
        {"subqueries", 1},
    };
    int first = 1;
    buf_puts(out, "\"promql\":{");
    for (size_t i = 0; i < sizeof lang / sizeof lang[0]; i++)
        member(out, &first, lang[i].name, lang[i].on);
    buf_puts(out, "},\"promql_functions\":{");
    first = 1;
    for (size_t i = 0; i < PROMQL_FN_COUNT_; i++) {
        const promql_func *f = promql_func_by_id((promql_func_id)i);
        if (f && f->name)
            member(out, &first, f->name, !f->experimental || exp);
    }
    buf_puts(out, "},\"promql_operators\":{");
    first = 1;
    static const char *const matchers[] = {"=", "!=", "=~", "!~"};
    for (size_t i = 0; i < sizeof matchers / sizeof matchers[0]; i++)
        member(out, &first, matchers[i], 1);
    for (int op = PROMQL_OP_ADD; op <= PROMQL_OP_TRIM_LOWER; op++)
        member(out, &first, promql_binop_str((promql_binop)op), 1);
    for (int op = PROMQL_AGG_SUM; op <= PROMQL_AGG_LIMIT_RATIO; op++)
        member(out, &first, promql_aggop_str((promql_aggop)op),
               exp || (op != PROMQL_AGG_LIMITK && op != PROMQL_AGG_LIMIT_RATIO));
    buf_putc(out, '}');
    return buf_error(out);
}
