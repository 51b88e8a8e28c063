/*
 * fuzz_xorchunk.c - arbitrary bytes as an XOR chunk (storage/xorchunk.h).
 * The iterator must never read outside the input; when the input iterates
 * cleanly, re-encoding its samples and iterating again gives the same
 * samples (bit for bit), and loading it then appending must work.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/xorchunk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536)
        return 0;
    /* a private copy so reads past the end are caught exactly */
    uint8_t *b = malloc(size ? size : 1);
    memcpy(b, data, size);
    xoriter it;
    xoriter_init(&it, b, size);
    xorchunk c;
    xorchunk_init(&c);
    int rc, ordered = 1;
    int64_t last = INT64_MIN;
    while ((rc = xoriter_next(&it)) == 1) {
        if (it.t <= last && c.count)
            ordered = 0;
        last = it.t;
        if (ordered && xorchunk_append(&c, it.t, it.v) != 0)
            abort();
    }
    if (rc == 0 && ordered && c.count) {
        size_t len;
        const uint8_t *d = xorchunk_data(&c, &len);
        xoriter a, r;
        xoriter_init(&a, b, size);
        xoriter_init(&r, d, len);
        for (;;) {
            int ra = xoriter_next(&a), rr = xoriter_next(&r);
            if (ra != rr)
                abort();
            if (ra != 1)
                break;
            uint64_t va, vr;
            memcpy(&va, &a.v, 8);
            memcpy(&vr, &r.v, 8);
            if (a.t != r.t || va != vr)
                abort();
        }
        xorchunk l;
        if (xorchunk_load(&l, d, len, NULL) != 0)
            abort();
        if (l.t < INT64_MAX && xorchunk_append(&l, l.t + 1, 1.0) != 0)
            abort();
        xorchunk_free(&l);
    }
    xorchunk_free(&c);
    free(b);
    return 0;
}
