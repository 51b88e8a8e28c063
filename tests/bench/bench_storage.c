/*
 * bench_storage.c - head + WAL benchmarks, no HTTP.
 *
 *   bench_storage gen <dir> <series> <samples-per-series> [labels]
 *       Appends node-exporter-like series (~6 labels) at a 15 s interval, in
 *       batches of one scrape's worth per target (1000 series), through the
 *       public appender: prints samples/s of head + WAL on one thread.
 *   bench_storage replay <dir> [threads]
 *       Opens the storage (replays the WAL) and prints the time it took, the
 *       resident memory and the memory per series.
 *
 * tests/bench/storage_vs_prometheus.py runs both and Prometheus side by side.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"

static double rss_bytes(void) {
    return process_resident_bytes();
}

static int gen(const char *dir, long nseries, long nsamples) {
    storage_opts o = storage_opts_default();
    o.dir = dir;
    storage *s;
    kiln_err err = {0};
    if (storage_open(&o, &s, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return 1;
    }
    static const char *modes[] = {"idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"};
    const long per_target = 1000;
    long ntargets = (nseries + per_target - 1) / per_target;
    uint64_t *refs = calloc((size_t)nseries, sizeof *refs);
    double *vals = calloc((size_t)nseries, sizeof *vals);
    int64_t t0 = 1700000000000LL;
    double start = time_mono_sec();
    uint64_t total = 0;
    for (long k = 0; k < nsamples; k++) {
        int64_t t = t0 + k * 15000;
        for (long tg = 0; tg < ntargets; tg++) {
            appender *a = storage_appender(s);
            for (long j = tg * per_target; j < (tg + 1) * per_target && j < nseries; j++) {
                /* counters that grow by a varying amount, some constant */
                if (j % 3)
                    vals[j] += (double)((j * 7 + k * 13) % 100) / 100.0;
                int rc;
                if (refs[j]) { /* a scrape cache hit: no labels */
                    rc = appender_append(a, &refs[j], NULL, 0, t, vals[j], &err);
                } else {
                    char inst[32], cpu[16], dev[16];
                    snprintf(inst, sizeof inst, "host-%05ld:9100", tg);
                    snprintf(cpu, sizeof cpu, "%ld", (j / 8) % 64);
                    snprintf(dev, sizeof dev, "dev%ld", (j % per_target) / 512);
                    label ls[6] = {{"__name__", "node_cpu_seconds_total"},
                                   {"cpu", cpu},
                                   {"device", dev},
                                   {"instance", inst},
                                   {"job", "node"},
                                   {"mode", modes[j % 8]}};
                    rc = appender_append(a, &refs[j], ls, 6, t, vals[j], &err);
                }
                if (rc != 0) {
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
    double el = time_mono_sec() - start;
    printf("gen: %llu samples, %ld series in %.2fs: %.0f samples/s (head + WAL, one thread)\n",
           (unsigned long long)total, nseries, el, (double)total / el);
    printf("gen_samples_per_sec %.0f\n", (double)total / el);
    printf("gen_rss_bytes_per_series %.0f\n", rss_bytes() / (double)nseries);
    free(refs);
    free(vals);
    if (storage_close(s, &err) != 0) {
        fprintf(stderr, "close: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static int replay(const char *dir, int threads) {
    storage_opts o = storage_opts_default();
    o.dir = dir;
    o.replay_threads = threads;
    storage *s;
    kiln_err err = {0};
    double before = rss_bytes(), start = time_mono_sec();
    if (storage_open(&o, &s, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return 1;
    }
    double el = time_mono_sec() - start;
    storage_stats st;
    storage_get_stats(s, &st);
    double rss = rss_bytes();
    printf("replay: %.3fs for %llu series, rss %.1f MB (%.0f bytes/series over the %.1f MB at start)\n", el,
           (unsigned long long)st.head_series, rss / 1e6, (rss - before) / (double)st.head_series,
           before / 1e6);
    printf("replay_seconds %.3f\nrss_bytes %.0f\nbytes_per_series %.0f\n", el, rss,
           rss / (double)st.head_series);
    printf("head_chunks %llu\n", (unsigned long long)st.head_chunks);
    slab_stats ss;
    slab_get_stats(&ss);
    struct mallinfo2 mi = mallinfo2();
    printf("slab_object_bytes %zu\nslab_page_bytes %zu\nslab_empty_bytes %zu\nmalloc_used_bytes %zu\n"
           "malloc_free_bytes %zu\nmalloc_mmap_bytes %zu\n",
           ss.bytes, ss.pages * SLAB_PAGE, ss.empty * SLAB_PAGE, mi.uordblks, mi.fordblks, mi.hblkhd);
    if (storage_close(s, &err) != 0) {
        fprintf(stderr, "close: %s\n", err.msg);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    log_setup(LOG_WARN, LOG_FORMAT_LOGFMT);
    if (argc >= 5 && strcmp(argv[1], "gen") == 0)
        return gen(argv[2], atol(argv[3]), atol(argv[4]));
    if (argc >= 3 && strcmp(argv[1], "replay") == 0)
        return replay(argv[2], argc >= 4 ? atoi(argv[3]) : 0);
    if (argc == 1) {
        /* `make bench` smoke: a small run in a temp dir */
        char dir[] = "/tmp/kiln-bench-storage-XXXXXX";
        if (!mkdtemp(dir))
            return 1;
        int rc = gen(dir, 2000, 100) || replay(dir, 0);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            return 1;
        return rc;
    }
    fprintf(stderr, "usage: bench_storage gen <dir> <series> <samples> | replay <dir>\n");
    return 2;
}
