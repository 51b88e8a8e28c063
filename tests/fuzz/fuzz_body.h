/*
 * fuzz_body.h - the request body of the remote write and remote read
 * harnesses, from the fuzzer's input: byte 0 picks the mode, the rest is the
 * payload.  Mode odd: the payload is the body as sent.  Mode even: the
 * payload is the protobuf message, snappy-compressed here, so the fuzzer
 * works on protobuf.  The body is NUL-terminated (as the HTTP server's are)
 * and freed by the caller.  size must be at least 1.
 */
#ifndef KILN_FUZZ_BODY_H
#define KILN_FUZZ_BODY_H

#include <snappy-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline char *fuzz_body(const uint8_t *data, size_t size, size_t *blen) {
    char *body;
    if (data[0] & 1) {
        *blen = size - 1;
        body = malloc(*blen + 1);
        if (!body)
            __builtin_trap();
        memcpy(body, data + 1, *blen);
    } else {
        size_t cap = snappy_max_compressed_length(size - 1);
        body = malloc(cap + 1);
        *blen = cap;
        if (!body || snappy_compress((const char *)data + 1, size - 1, body, blen) != SNAPPY_OK)
            __builtin_trap();
    }
    body[*blen] = 0;
    return body;
}

#endif
