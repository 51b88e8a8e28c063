/*
 * fuzz_http_request.c - bytes a client sends on a connection, through the
 * HTTP server's request parsing (api/http.c's http-parser callbacks, the
 * header accumulation and the limits) without a socket.  The first byte
 * picks the limits and how the input is cut into reads, so that callbacks
 * split across reads and limits hit at every point are explored; the rest
 * is the connection's input.  http_parse_requests asserts the invariants:
 * the stored headers walk back exactly, nothing stays counted as pending.
 */
#include <stdint.h>
#include <string.h>

#include "api/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    uint8_t knobs = data[0];
    http_server_opts o;
    http_server_opts_default(&o);
    /* header limits of 64 B to 8 KiB, bodies of 256 B to 2 KiB, a pending
     * budget of one or two of the largest requests */
    o.max_header_bytes = (size_t)64 << (knobs & 7);
    o.max_body_bytes = (size_t)256 << ((knobs >> 3) & 3);
    o.max_pending_bytes = (knobs & 0x20) ? 2 * (o.max_body_bytes + 2 * o.max_header_bytes) : 0;
    static const size_t pieces[] = {0, 1, 7, 4096};
    size_t piece = pieces[(knobs >> 6) & 3];
    size_t nheaders = 0;
    int r = http_parse_requests(&o, (const char *)data + 1, size - 1, piece, &nheaders);
    /* a refusal is one of the server's answers */
    if (r < 0 && r != -400 && r != -413 && r != -431 && r != -500 && r != -503)
        __builtin_trap();
    /* every header received costs at least "X:\n" (3 bytes) of the limit */
    if (nheaders > o.max_header_bytes / 3 + 1)
        __builtin_trap();
    return 0;
}
