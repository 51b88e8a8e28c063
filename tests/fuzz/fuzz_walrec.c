/*
 * fuzz_walrec.c - arbitrary bytes through every WAL record decoder and
 * filter (storage/walrec.h).  The input's first byte is overwritten with
 * each known type in turn, so one input exercises all of them.  Beyond not
 * crashing, a samples record that decodes must decode to the same samples
 * again after re-encoding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/walrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int keep_even(uint64_t ref, void *d) {
    (void)d;
    return !(ref & 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0 || size > (1 << 20))
        return 0;
    uint8_t *rec = malloc(size);
    memcpy(rec, data, size);
    static const uint8_t types[] = {1, 2, 3, 4, 6, 7, 8, 9, 10};
    arena a;
    arena_init(&a, 0);
    buf out = BUF_INIT, again = BUF_INIT;
    kiln_err err;
    for (size_t k = 0; k < sizeof types; k++) {
        rec[0] = types[k];
        size_t n = 0;
        switch (types[k]) {
        case WALREC_SERIES: {
            walrec_series *s;
            if (walrec_decode_series(rec, size, &a, &s, &n, &err) == 0) {
                buf_reset(&out);
                if (walrec_encode_series(&out, s, n) != 0)
                    __builtin_trap(); /* what decodes encodes again */
            }
            break;
        }
        case WALREC_SAMPLES: {
            size_t cap = walrec_samples_max(size);
            walrec_sample *s = malloc((cap ? cap : 1) * sizeof *s);
            walrec_sample *s2 = malloc((cap ? cap : 1) * sizeof *s2);
            if (walrec_decode_samples(rec, size, s, cap, &n, &err) == 0) {
                buf_reset(&out);
                size_t n2 = 0;
                if (walrec_encode_samples(&out, s, n) != 0 ||
                    walrec_decode_samples(out.data, out.len, s2, cap, &n2, &err) != 0 || n2 != n ||
                    (n && memcmp(s, s2, n * sizeof *s)))
                    __builtin_trap();
            }
            free(s);
            free(s2);
            break;
        }
        case WALREC_TOMBSTONES: {
            size_t cap = walrec_tombstones_max(size);
            walrec_tombstone *t = malloc((cap ? cap : 1) * sizeof *t);
            (void)walrec_decode_tombstones(rec, size, t, cap, &n, &err);
            free(t);
            break;
        }
        case WALREC_EXEMPLARS: {
            walrec_exemplar *e;
            if (walrec_decode_exemplars(rec, size, &a, &e, &n, &err) == 0) {
                buf_reset(&out);
                if (walrec_encode_exemplars(&out, e, n) != 0)
                    __builtin_trap();
            }
            break;
        }
        case WALREC_METADATA:
            buf_reset(&out);
            (void)walrec_filter_metadata(rec, size, keep_even, NULL, &out, NULL, NULL, &err);
            break;
        default:
            buf_reset(&out);
            if (walrec_filter_histograms(rec, size, (int64_t)size * 1000, &out, NULL, NULL, &err) == 0 &&
                out.len) {
                /* what the filter wrote must filter again to itself */
                buf_reset(&again);
                if (walrec_filter_histograms(out.data, out.len, INT64_MIN, &again, NULL, NULL, &err) != 0 ||
                    again.len != out.len || memcmp(again.data, out.data, out.len))
                    __builtin_trap();
            }
            break;
        }
        arena_free(&a);
    }
    buf_free(&out);
    buf_free(&again);
    free(rec);
    return 0;
}
