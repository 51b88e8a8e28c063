/*
 * fuzz_histchunk.c - libFuzzer harness for the histogram chunk decoder.
 *
 * The first input byte picks the kind (odd: float histogram chunk), the
 * rest are the chunk's bytes.  Every sample is decoded (never reading out
 * of bounds); when the whole chunk decodes, it is rebuilt by appending its
 * samples again (histchunk_load), and the rebuilt chunk must decode to as
 * many samples with the same times.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/histchunk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 65536)
        return 0;
    int is_float = data[0] & 1;
    const uint8_t *b = data + 1;
    size_t len = size - 1;
    histiter it;
    histiter_init(&it, b, len, is_float);
    int rc, n = 0;
    int64_t ts[64];
    while ((rc = histiter_next(&it)) == 1) {
        if (it.h.npos + it.h.nneg != it.npb + it.nnb && !histogram_is_stale(&it.h))
            abort();
        if (n < 64)
            ts[n] = it.t;
        n++;
    }
    histiter_free(&it);
    if (rc != 0)
        return 0;
    histchunk c;
    if (histchunk_load(&c, is_float, b, len) != 0)
        return 0;
    size_t l2;
    const uint8_t *d2 = histchunk_data(&c, &l2);
    histiter_init(&it, d2, l2, is_float);
    int m = 0;
    while ((rc = histiter_next(&it)) == 1) {
        if (m < 64 && m < n && it.t != ts[m])
            abort();
        m++;
    }
    if (rc != 0 || m != n)
        abort();
    histiter_free(&it);
    histchunk_free(&c);
    return 0;
}
