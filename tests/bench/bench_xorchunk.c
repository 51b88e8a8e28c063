/*
 * bench_xorchunk.c - XOR chunk encode and decode speed and size.
 *
 *   build/opt/tests/bench/bench_xorchunk [samples]
 *
 * Default 10,000,000 samples.  A pool of about a million samples is made up
 * front (chunks of 120 samples, a 15 s scrape interval with a few ms of
 * jitter; a third each counters, float gauges and constant values), then
 * encoded and decoded again and again until `samples` are done, so the
 * timing excludes making the samples.  Prints samples/s for encode (append
 * + shrink), decode (xoriter_next over every chunk) and bytes/sample per
 * kind and overall.  The first decode pass is checked against the pool.
 * The jitter alone costs about 2 bytes per sample (most deltas of deltas
 * land in the '10' + 14 bits bucket), so a constant series is ~2 bytes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/xorchunk.h"
#include "util/util.h"

#define PER_CHUNK 120
#define POOL_CHUNKS 8334 /* ~1M samples */

enum { KIND_COUNTER, KIND_GAUGE, KIND_CONST, KINDS };
static const char *const kind_names[KINDS] = {"counter", "gauge", "constant"};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Fills one chunk's samples of the given kind. */
static void make_chunk(int kind, int64_t *ts, double *vs) {
    int64_t t = 1700000000000LL + (int64_t)(rng() % 15000);
    double v = kind == KIND_CONST ? (double)(rng() % 4) : (double)(rng() % 100000);
    for (int i = 0; i < PER_CHUNK; i++) {
        t += 15000 + (int64_t)(rng() % 11) - 5;
        if (kind == KIND_COUNTER)
            v += (double)(rng() % 50); /* integer increments, sometimes none */
        else if (kind == KIND_GAUGE)
            v += ((double)(rng() % 2001) - 1000.0) / 100.0; /* two decimals */
        ts[i] = t;
        vs[i] = v;
    }
}

int main(int argc, char **argv) {
    size_t want = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
    int64_t *ts = malloc((size_t)POOL_CHUNKS * PER_CHUNK * sizeof *ts);
    double *vs = malloc((size_t)POOL_CHUNKS * PER_CHUNK * sizeof *vs);
    xorchunk *cs = calloc(POOL_CHUNKS, sizeof *cs);
    if (!ts || !vs || !cs || want == 0) {
        fprintf(stderr, "usage: bench_xorchunk [samples]\n");
        return 1;
    }
    for (size_t k = 0; k < POOL_CHUNKS; k++)
        make_chunk((int)(k % KINDS), ts + k * PER_CHUNK, vs + k * PER_CHUNK);
    const size_t pool = (size_t)POOL_CHUNKS * PER_CHUNK;
    size_t passes = (want + pool - 1) / pool;

    /* encode: the chunks of the last pass are kept for decoding */
    double t0 = time_mono_sec();
    for (size_t p = 0; p < passes; p++) {
        for (size_t k = 0; k < POOL_CHUNKS; k++) {
            xorchunk *c = &cs[k];
            xorchunk_free(c);
            xorchunk_init(c);
            const int64_t *ct = ts + k * PER_CHUNK;
            const double *cv = vs + k * PER_CHUNK;
            for (int i = 0; i < PER_CHUNK; i++) {
                if (xorchunk_append(c, ct[i], cv[i])) {
                    fprintf(stderr, "bench_xorchunk: out of memory\n");
                    return 1;
                }
            }
            if (xorchunk_shrink(c)) {
                fprintf(stderr, "bench_xorchunk: out of memory\n");
                return 1;
            }
        }
    }
    double enc = time_mono_sec() - t0;

    size_t bytes[KINDS] = {0}, samples[KINDS] = {0};
    for (size_t k = 0; k < POOL_CHUNKS; k++) {
        size_t len;
        xorchunk_data(&cs[k], &len);
        bytes[k % KINDS] += len;
        samples[k % KINDS] += PER_CHUNK;
    }

    /* check one pass, untimed */
    for (size_t k = 0; k < POOL_CHUNKS; k++) {
        size_t len;
        const uint8_t *d = xorchunk_data(&cs[k], &len);
        xoriter it;
        xoriter_init(&it, d, len);
        for (int i = 0; i < PER_CHUNK; i++) {
            if (xoriter_next(&it) != 1 || it.t != ts[k * PER_CHUNK + i] ||
                memcmp(&it.v, &vs[k * PER_CHUNK + i], sizeof it.v) != 0) {
                fprintf(stderr, "bench_xorchunk: chunk %zu sample %d decodes wrong\n", k, i);
                return 1;
            }
        }
        if (xoriter_next(&it) != 0) {
            fprintf(stderr, "bench_xorchunk: chunk %zu has extra samples\n", k);
            return 1;
        }
    }

    /* decode */
    uint64_t sink = 0;
    size_t decoded = 0;
    t0 = time_mono_sec();
    for (size_t p = 0; p < passes; p++) {
        for (size_t k = 0; k < POOL_CHUNKS; k++) {
            size_t len;
            const uint8_t *d = xorchunk_data(&cs[k], &len);
            xoriter it;
            xoriter_init(&it, d, len);
            while (xoriter_next(&it) == 1) {
                uint64_t vb;
                memcpy(&vb, &it.v, sizeof vb);
                sink += (uint64_t)it.t ^ vb;
                decoded++;
            }
        }
    }
    double dec = time_mono_sec() - t0;

    size_t total = passes * pool, allb = 0, alls = 0;
    printf("bench_xorchunk: %zu samples in chunks of %d\n", total, PER_CHUNK);
    printf("  encode  %8.1f M samples/s (%.3f s)\n", (double)total / enc / 1e6, enc);
    printf("  decode  %8.1f M samples/s (%.3f s)\n", (double)decoded / dec / 1e6, dec);
    for (int k = 0; k < KINDS; k++) {
        printf("  %-9s %6.3f bytes/sample\n", kind_names[k], (double)bytes[k] / (double)samples[k]);
        allb += bytes[k];
        alls += samples[k];
    }
    printf("  all       %6.3f bytes/sample (checksum %016" PRIx64 ")\n", (double)allb / (double)alls, sink);
    for (size_t k = 0; k < POOL_CHUNKS; k++)
        xorchunk_free(&cs[k]);
    free(cs);
    free(ts);
    free(vs);
    return 0;
}
