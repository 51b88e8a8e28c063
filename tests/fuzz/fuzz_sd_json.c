/*
 * fuzz_sd_json.c - arbitrary bytes through the strict JSON reader the
 * service discoveries share (util/json.c).
 *
 * A failure must say "json: ... at offset N" and give no tree; a tree must
 * be whole: every string valid UTF-8 of its stated length, every container
 * with its members, objects with a name per member.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const json_val *v, int depth) {
    if (depth > JSON_MAX_DEPTH + 1)
        abort();
    switch (v->type) {
    case JSON_STR:
        if (!v->str || !utf8_valid(v->str, v->len) || v->str[v->len] != 0)
            abort();
        break;
    case JSON_NUM:
        if (!v->str || v->len == 0)
            abort();
        break;
    case JSON_ARR:
    case JSON_OBJ:
        if (v->n && !v->kids)
            abort();
        for (size_t i = 0; i < v->n; i++) {
            if (v->type == JSON_OBJ && (!v->keys || !v->keys[i]))
                abort();
            walk(&v->kids[i], depth + 1);
        }
        break;
    case JSON_NULL:
    case JSON_BOOL:
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    arena a;
    arena_init(&a, 0);
    json_val *v = NULL;
    kiln_err err = {0};
    int rc = json_parse((const char *)data, size, &a, &v, &err);
    if (rc == KILN_EINVAL && (v || strncmp(err.msg, "json: ", 6) != 0 || !strstr(err.msg, " at offset ")))
        abort();
    if (rc == 0)
        walk(v, 0);
    arena_free(&a);
    return 0;
}
