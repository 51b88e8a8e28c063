/*
 * fuzz_httpparams.c - query strings and urlencoded form bodies through the
 * parameter parser the API handlers use.  The input is split at the first
 * NUL: the part before is the query string, the rest a form body.
 */
#include <stdint.h>
#include <string.h>

#include "api/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    arena a;
    arena_init(&a, 0);
    const uint8_t *nul = memchr(data, 0, size);
    size_t qlen = nul ? (size_t)(nul - data) : size;
    http_header hdr = {"Content-Type", "application/x-www-form-urlencoded"};
    http_req req;
    memset(&req, 0, sizeof req);
    req.method = "POST";
    req.arena = &a;
    req.query = arena_strndup(&a, (const char *)data, qlen);
    req.body = nul ? arena_strndup(&a, (const char *)nul + 1, size - qlen - 1) : arena_strndup(&a, "", 0);
    req.body_len = nul ? size - qlen - 1 : 0;
    req.headers = &hdr;
    req.nheaders = 1;
    const char *vals[8];
    size_t n = http_req_params(&req, "match[]", vals, 8);
    for (size_t i = 0; i < n && i < 8; i++)
        (void)strlen(vals[i]);
    const char *q = http_req_param(&req, "query");
    if (q)
        (void)strlen(q);
    arena_free(&a);
    return 0;
}
