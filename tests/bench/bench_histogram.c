/*
 * bench_histogram.c - native histogram head benchmarks, no HTTP.
 *
 *   bench_histogram gen <dir> <series> <samples-per-series> [buckets]
 *       Appends integer native histograms of schema 3 with `buckets` (40)
 *       populated buckets in one span, one sample every 15 s, in batches of
 *       one scrape of 1000 series, through the public appender (head + WAL):
 *       prints samples/s.  Each scrape adds 20 to 200 observations a series,
 *       spread over the buckets by a bell-shaped weight with a little noise,
 *       as a request-latency histogram would see them.  The samples start at
 *       the start of a 2 h chunk range, so 480 of them leave each series
 *       with a full open chunk of 120.
 *   bench_histogram replay <dir>
 *       Opens the storage (replays the WAL, attaches chunks_head) and prints
 *       the resident memory and the memory per series.
 *
 * tests/bench/nhist_memory_vs_prometheus.py runs it and Prometheus side by
 * side (Prometheus replays the same WAL: kiln writes Prometheus' format).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"

#define PER_TARGET 1000
#define MAX_BUCKETS 160

/* A small deterministic generator (xorshift64*), so both servers see the same data. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rng(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static int gen(const char *dir, long nseries, long nsamples, int nb) {
    storage_opts o = storage_opts_default();
    o.dir = dir;
    storage *s;
    kiln_err err = {0};
    if (storage_open(&o, &s, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return 1;
    }
    uint64_t *refs = calloc((size_t)nseries, sizeof *refs);
    double *counts = calloc((size_t)nseries * (size_t)nb, sizeof *counts);
    double *sums = calloc((size_t)nseries, sizeof *sums);
    double weight[MAX_BUCKETS], wsum = 0;
    for (int b = 0; b < nb; b++) {
        double x = (b - nb / 2.0) / (nb / 5.0);
        weight[b] = exp(-x * x / 2) + 0.01;
        wsum += weight[b];
    }
    /* from the start of a chunk range (2 h) in the past: 480 samples fill its
     * four chunks, the last one open and full when the data ends (the most
     * memory a series' head holds) */
    const int64_t range = 2 * 3600 * 1000;
    int64_t t0 = (time_now_ms() - nsamples * 15000 - range) / range * range;
    double start = time_mono_sec();
    uint64_t total = 0;
    for (long k = 0; k < nsamples; k++) {
        for (long first = 0; first < nseries; first += PER_TARGET) {
            appender *a = storage_appender(s);
            for (long j = first; j < first + PER_TARGET && j < nseries; j++) {
                char handler[32], inst[32], job[16];
                snprintf(handler, sizeof handler, "/api/v1/h%ld", j % 20);
                snprintf(inst, sizeof inst, "host-%04ld:9090", j / 100);
                snprintf(job, sizeof job, "api-%ld", j % 7);
                label ls[4] = {{"__name__", "http_request_duration_seconds"},
                               {"handler", handler},
                               {"instance", inst},
                               {"job", job}};
                double *c = counts + (size_t)j * (size_t)nb;
                double obs = 20 + (double)(rng() % 181), zero = 0, cnt = 0;
                for (int b = 0; b < nb; b++) {
                    double mean = obs * weight[b] / wsum;
                    double add = floor(mean + (double)(rng() % 1000) / 1000.0 * (1 + mean / 4));
                    c[b] += add;
                    sums[j] += add * pow(2, (b - 20) / 8.0);
                    cnt += c[b];
                }
                hist_span sp = {-20, (uint32_t)nb};
                histogram h = {.schema = 3,
                               .is_int = 1,
                               .zero_threshold = 0x1p-128,
                               .zero_count = zero,
                               .count = cnt,
                               .sum = sums[j],
                               .pos_spans = &sp,
                               .npos_spans = 1,
                               .pos = c,
                               .npos = (uint32_t)nb};
                if (appender_append_histogram(a, &refs[j], refs[j] ? NULL : ls, refs[j] ? 0 : 4,
                                              t0 + k * 15000, &h, &err) != 0) {
                    fprintf(stderr, "append: %s\n", err.msg);
                    return 1;
                }
                total++;
            }
            if (appender_commit(a, &err) != 0) {
                fprintf(stderr, "commit: %s\n", err.msg);
                return 1;
            }
        }
    }
    double secs = time_mono_sec() - start;
    printf("gen: %llu histogram samples, %ld series in %.2fs: %.0f samples/s (head + WAL, one thread)\n",
           (unsigned long long)total, nseries, secs, (double)total / secs);
    printf("gen_rss_bytes %.0f\n", (double)process_resident_bytes());
    free(refs);
    free(counts);
    free(sums);
    if (storage_close(s, &err) != 0) {
        fprintf(stderr, "close: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static int replay(const char *dir) {
    double before = (double)process_resident_bytes();
    storage_opts o = storage_opts_default();
    o.dir = dir;
    storage *s;
    kiln_err err = {0};
    double start = time_mono_sec();
    if (storage_open(&o, &s, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return 1;
    }
    double secs = time_mono_sec() - start;
    storage_stats st;
    storage_get_stats(s, &st);
    double rss = (double)process_resident_bytes();
    printf("replay_seconds %.3f\n", secs);
    printf("series %llu\n", (unsigned long long)st.head_series);
    printf("rss_bytes %.0f\n", rss);
    printf("bytes_per_series %.0f\n", st.head_series ? (rss - before) / (double)st.head_series : 0);
    return storage_close(s, &err) != 0;
}

int main(int argc, char **argv) {
    log_setup(LOG_WARN, LOG_FORMAT_LOGFMT);
    if (argc >= 5 && strcmp(argv[1], "gen") == 0)
        return gen(argv[2], atol(argv[3]), atol(argv[4]), argc >= 6 ? atoi(argv[5]) : 40);
    if (argc >= 3 && strcmp(argv[1], "replay") == 0)
        return replay(argv[2]);
    fprintf(stderr, "usage: bench_histogram gen <dir> <series> <samples> [buckets] | replay <dir>\n");
    return 2;
}
