/*
 * fuzz_remoteread_resp.c - arbitrary bytes through the remote read client's
 * decoders (remote/readwire.c), the ReadResponse one and the streamed
 * chunks one (frames of ChunkedReadResponse), with an external label to drop.
 * Beyond not crashing: every series decoded has valid, sorted labels
 * without the dropped one, and samples strictly ordered by time.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "remote/remote_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1 << 20))
        return 0;
    static const char *const drop[] = {"region", "dc"};
    for (int streamed = 0; streamed < 2; streamed++) {
        kiln_err err;
        series *v = NULL;
        size_t nv = 0, cap = 0;
        arena a;
        arena_init(&a, 0);
        int rc = streamed ? rr_decode_chunked(data, size, drop, 2, &a, &v, &nv, &cap, &err)
                          : rr_decode_response(data, size, drop, 2, &a, &v, &nv, &cap, &err);
        if (rc == 0) {
            for (size_t i = 0; i < nv; i++) {
                if (labels_check(v[i].ls, v[i].nls, &err) != 0 || labels_get(v[i].ls, v[i].nls, "region") ||
                    labels_get(v[i].ls, v[i].nls, "dc"))
                    __builtin_trap();
                for (size_t j = 1; j < v[i].n; j++)
                    if (v[i].s[j].t <= v[i].s[j - 1].t)
                        __builtin_trap();
            }
        }
        free(v);
        arena_free(&a);
    }
    return 0;
}
