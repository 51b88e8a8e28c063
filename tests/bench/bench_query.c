/*
 * bench_query.c - PromQL range-query speed on a dashboard-shaped workload,
 * in process (no HTTP).
 *
 *   bench_query [--native] [--ab] [series] [reps] [dump-file]
 *
 * Loads `series` (default 20000) node_cpu_seconds_total-like counters
 * (labels cpu, mode, instance, job) x 240 samples at 15 s into a storage on
 * a temporary directory through the public appender, then runs each panel
 * query of PANELS as a range query over the hour at a 15 s step, `reps`
 * times (default 5), and prints the median milliseconds per query.  With a
 * dump file, the last result of each query is written there in a plain
 * form tests/bench/query_vs_prometheus.py compares with Prometheus':
 *
 *   Q <index> <query>
 *   S name=value,name=value,...      (labels sorted by name)
 *   <t_ms> <value %.17g>             (one line a point)
 *
 * The data is a pure function of the series index and the sample index
 * (gen_value), which query_vs_prometheus.py repeats exactly to write the
 * same samples as OpenMetrics for Prometheus.
 *
 * With --ab each run is made twice, on one thread (parfor_set_width(1))
 * and then on every core, and both medians are printed, wall and CPU: the
 * process's CPU time, and the query thread's (what the wall time comes to
 * on an idle machine, where the helpers run beside it; on a loaded one
 * the wall time is mostly waiting for a core).
 *
 * With --native the series are integer native histograms instead
 * (http_request_duration_seconds: schema 3, 40 buckets, gen_hist) and the
 * queries NATIVE_PANELS, as nhist_query_vs_prometheus.py makes and asks
 * them of Prometheus (keep in step).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "query/query.h"
#include "storage/storage.h"

#define BQ_T0_MS 1700000000000LL /* first sample; the end of the data is +1h */
#define BQ_STEP_MS 15000LL
#define BQ_SAMPLES 240
#define BQ_MODES 8
#define BQ_CPUS 25 /* series per instance = BQ_MODES * BQ_CPUS = 200 */

static const char *const bq_modes[BQ_MODES] = {"idle", "user",    "system", "iowait",
                                               "irq",  "softirq", "steal",  "nice"};

/* The Grafana-panel queries, shared with query_vs_prometheus.py (keep in step). */
static const char *const PANELS[] = {
    "sum by (mode) (rate(node_cpu_seconds_total[5m]))",
    "topk(5, rate(node_cpu_seconds_total[5m]))",
    "quantile(0.9, rate(node_cpu_seconds_total[5m]))",
    "sum by (instance) (irate(node_cpu_seconds_total{mode!=\"idle\"}[5m]))",
    "1 - avg by (instance) (rate(node_cpu_seconds_total{mode=\"idle\"}[5m]))",
    "sum by (instance) (rate(node_cpu_seconds_total{mode=~\"user|system\", "
    "instance=~\"host-00[0-4].*\"}[5m]))",
};
#define NPANELS (sizeof PANELS / sizeof PANELS[0])

static const char *const NATIVE_PANELS[] = {
    "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds[5m])))",
    "histogram_quantile(0.99, sum by (job) (rate(http_request_duration_seconds[5m])))",
    "histogram_quantile(0.9, rate(http_request_duration_seconds{instance=~\"host-00[0-4].*\"}[5m]))",
    "histogram_count(sum(rate(http_request_duration_seconds[5m])))",
};
#define NNATIVE (sizeof NATIVE_PANELS / sizeof NATIVE_PANELS[0])
#define BQ_NH_SCHEMA 3
#define BQ_NH_BUCKETS 40

static const char *const *panels = PANELS;
static size_t npanels = NPANELS;

/* Series j's labels; `inst` and `cpu` are caller buffers. */
static void gen_labels(long j, char *inst, size_t ninst, char *cpu, size_t ncpu, label ls[5]) {
    long per_inst = BQ_MODES * BQ_CPUS;
    snprintf(inst, ninst, "host-%04ld:9100", j / per_inst);
    snprintf(cpu, ncpu, "%ld", (j % per_inst) / BQ_MODES);
    ls[0] = (label){"__name__", "node_cpu_seconds_total"};
    ls[1] = (label){"cpu", cpu};
    ls[2] = (label){"instance", inst};
    ls[3] = (label){"job", "node"};
    ls[4] = (label){"mode", bq_modes[j % BQ_MODES]};
}

/*
 * The next value of series j at sample k, from its previous value: a
 * counter growing by a varying amount (no two of the first 997000 series
 * alike, so topk has no ties); every 37th series resets to 0 at the middle
 * of the hour.  Same float operations, same order, as the Python
 * driver's, so both sides hold bit-identical samples.
 */
static double gen_value(long j, long k, double prev) {
    if (j % 37 == 0 && k == BQ_SAMPLES / 2)
        return 0.0;
    return prev + ((double)((j * 7 + k * 13) % 100) / 100.0 + (double)(j % 997) / 10000.0);
}

/* Native histogram series j at sample k: each of the 40 buckets (one span
 * at offset -20 + j % 9) grows by (j*7 + k*13 + b*5) % 11 a sample, and
 * every 37th series starts over half-way; the sum puts each observation
 * at its bucket's upper bound.  counts[] carries the state. */
static void gen_hist(long j, long k, double *counts, hist_span *sp, histogram *h) {
    int32_t off = -20 + (int32_t)(j % 9);
    double total = 0, sum = 0;
    for (long b = 0; b < BQ_NH_BUCKETS; b++) {
        if (j % 37 == 0 && k == BQ_SAMPLES / 2)
            counts[b] = 0;
        else
            counts[b] += (double)((j * 7 + k * 13 + b * 5) % 11);
        total += counts[b];
        sum += counts[b] * pow(2, (double)(off + b) / (1 << BQ_NH_SCHEMA));
    }
    *sp = (hist_span){off, BQ_NH_BUCKETS};
    memset(h, 0, sizeof *h);
    h->schema = BQ_NH_SCHEMA;
    h->is_int = 1;
    h->zero_threshold = ldexp(1, -128);
    h->count = total;
    h->sum = sum;
    h->pos_spans = sp;
    h->npos_spans = 1;
    h->pos = counts;
    h->npos = BQ_NH_BUCKETS;
}

static void gen_native_labels(long j, char *handler, char *inst, char *job, label ls[4]) {
    snprintf(handler, 16, "/api/%ld", j % 10);
    snprintf(inst, 32, "host-%04ld:8080", j / 10);
    snprintf(job, 16, "api-%ld", j % 4);
    ls[0] = (label){"__name__", "http_request_duration_seconds"};
    ls[1] = (label){"handler", handler};
    ls[2] = (label){"instance", inst};
    ls[3] = (label){"job", job};
}

/* One sample of series j at k: a float, or (native) a histogram; state is
 * the series' running value(s). */
static int append_one(appender *a, uint64_t *ref, long j, long k, double *state, int native, kiln_err *err) {
    int64_t t = BQ_T0_MS + k * BQ_STEP_MS;
    char b1[32], b2[32], b3[32];
    label ls[5];
    size_t nls = 0;
    if (!*ref && native) {
        gen_native_labels(j, b1, b2, b3, ls);
        nls = 4;
    } else if (!*ref) {
        gen_labels(j, b1, sizeof b1, b2, sizeof b2, ls);
        nls = 5;
    }
    if (!native) {
        state[0] = gen_value(j, k, state[0]);
        return appender_append(a, ref, nls ? ls : NULL, nls, t, state[0], err);
    }
    hist_span sp;
    histogram h;
    gen_hist(j, k, state, &sp, &h);
    return appender_append_histogram(a, ref, nls ? ls : NULL, nls, t, &h, err);
}

static int load(storage *s, long nseries, int native) {
    kiln_err err = {0};
    uint64_t *refs = calloc((size_t)nseries, sizeof *refs);
    size_t per = native ? BQ_NH_BUCKETS : 1;
    double *vals = calloc((size_t)nseries * per, sizeof *vals);
    if (!refs || !vals)
        return -1;
    const long per_batch = 1000;
    for (long k = 0; k < BQ_SAMPLES; k++) {
        for (long b = 0; b < nseries; b += per_batch) {
            appender *a = storage_appender(s);
            if (!a)
                return -1;
            for (long j = b; j < b + per_batch && j < nseries; j++) {
                if (append_one(a, &refs[j], j, k, vals + (size_t)j * per, native, &err) != 0) {
                    fprintf(stderr, "append: %s\n", err.msg);
                    return -1;
                }
            }
            if (appender_commit(a, &err) != 0) {
                fprintf(stderr, "commit: %s\n", err.msg);
                return -1;
            }
        }
    }
    free(refs);
    free(vals);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void dump(FILE *f, size_t qi, const query_result *r) {
    fprintf(f, "Q %zu %s\n", qi, panels[qi]);
    for (size_t i = 0; i < r->nseries; i++) {
        const query_series *qs = &r->series[i];
        fputs("S ", f);
        for (size_t l = 0; l < qs->nls; l++)
            fprintf(f, "%s%s=%s", l ? "," : "", qs->ls[l].name, qs->ls[l].value);
        fputc('\n', f);
        for (size_t p = 0; p < qs->npts; p++)
            fprintf(f, "%lld %.17g\n", (long long)qs->pts[p].t, qs->pts[p].v);
    }
}

static double cpu_ms(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* CPU milliseconds of the last run_once: the process's (every thread) and
 * the calling thread's (on an idle machine, about its wall time). */
static double last_proc_ms, last_thread_ms;

/* One run of query qi: its wall milliseconds, the result's series count. */
static int run_once(query_engine *eng, storage *s, size_t qi, FILE *df, double *ms, size_t *nres) {
    double p0 = cpu_ms(CLOCK_PROCESS_CPUTIME_ID), t0 = cpu_ms(CLOCK_THREAD_CPUTIME_ID);
    int64_t start = BQ_T0_MS + BQ_STEP_MS / 2, end = start + (BQ_SAMPLES - 1) * BQ_STEP_MS;
    query_result res = {0};
    kiln_err err = {0};
    double t = time_mono_sec();
    if (query_range(eng, s, panels[qi], start, end, BQ_STEP_MS, NULL, &res, &err) != 0) {
        fprintf(stderr, "%s: %s\n", panels[qi], err.msg);
        return -1;
    }
    *ms = (time_mono_sec() - t) * 1e3;
    last_proc_ms = cpu_ms(CLOCK_PROCESS_CPUTIME_ID) - p0;
    last_thread_ms = cpu_ms(CLOCK_THREAD_CPUTIME_ID) - t0;
    *nres = res.nseries;
    if (df)
        dump(df, qi, &res);
    query_result_free(&res);
    return 0;
}

int main(int argc, char **argv) {
    int native = 0, ab = 0;
    while (argc > 1 && strncmp(argv[1], "--", 2) == 0) {
        if (strcmp(argv[1], "--native") == 0) {
            native = 1;
            panels = NATIVE_PANELS;
            npanels = NNATIVE;
        } else if (strcmp(argv[1], "--ab") == 0) {
            ab = 1; /* each run on one thread, then on every core (parfor), side by side */
        } else {
            break;
        }
        argv++;
        argc--;
    }
    long nseries = argc > 1 ? atol(argv[1]) : 20000;
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    const char *dump_path = argc > 3 ? argv[3] : NULL;
    if (nseries <= 0 || reps <= 0 || reps > 100) {
        fprintf(stderr, "usage: bench_query [--native] [--ab] [series] [reps] [dump-file]\n");
        return 2;
    }
    log_setup(LOG_WARN, LOG_FORMAT_LOGFMT);

    char dir[] = "/tmp/kiln-bench-query-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    storage_opts so = storage_opts_default();
    so.dir = dir;
    storage *s = NULL;
    kiln_err err = {0};
    int rc = 1;
    FILE *df = NULL;
    if (storage_open(&so, &s, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        goto out;
    }
    double t_load = time_mono_sec();
    if (load(s, nseries, native) != 0)
        goto out;
    printf("loaded %ld series x %d samples in %.2fs\n", nseries, BQ_SAMPLES, time_mono_sec() - t_load);

    if (dump_path && !(df = fopen(dump_path, "w"))) {
        perror(dump_path);
        goto out;
    }
    query_engine eng;
    query_engine_init(&eng, NULL);
    /* Steps half-way between samples (run_once): no sample on a window's
     * edge, so Prometheus 2.42's closed windows and kiln's left-open ones
     * agree. */
    double logsum = 0, logone = 0, logc1 = 0, logcp = 0, logthr = 0;
    for (size_t qi = 0; qi < npanels; qi++) {
        double ms[100], one[100], cpu1[100], cpup[100], thr[100];
        size_t nres = 0;
        for (int r = 0; r < reps; r++) {
            if (ab) {
                parfor_set_width(1);
                if (run_once(&eng, s, qi, NULL, &one[r], &nres) != 0)
                    goto out;
                cpu1[r] = last_proc_ms;
                parfor_set_width(0);
            }
            if (run_once(&eng, s, qi, r == reps - 1 ? df : NULL, &ms[r], &nres) != 0)
                goto out;
            cpup[r] = last_proc_ms;
            thr[r] = last_thread_ms;
        }
        qsort(ms, (size_t)reps, sizeof ms[0], cmp_double);
        double med = ms[reps / 2];
        logsum += log(med);
        if (ab) {
            qsort(one, (size_t)reps, sizeof one[0], cmp_double);
            qsort(cpu1, (size_t)reps, sizeof cpu1[0], cmp_double);
            qsort(cpup, (size_t)reps, sizeof cpup[0], cmp_double);
            qsort(thr, (size_t)reps, sizeof thr[0], cmp_double);
            logone += log(one[reps / 2]);
            logc1 += log(cpu1[reps / 2]);
            logthr += log(thr[reps / 2]);
            logcp += log(cpup[reps / 2]);
            printf("%9.1f ms wall (one thread %.1f); CPU ms: one thread %.1f, every core %.1f of which the "
                   "query's thread %.1f  %4zu series  %s\n",
                   med, one[reps / 2], cpu1[reps / 2], cpup[reps / 2], thr[reps / 2], nres, panels[qi]);
        } else {
            printf("%9.1f ms  %4zu series  %s\n", med, nres, panels[qi]);
        }
    }
    printf("geomean %.1f ms over %zu queries (median of %d runs each, 1h at 15s step)\n",
           exp(logsum / (double)npanels), npanels, reps);
    if (ab)
        printf("geomean on one thread %.1f ms wall; CPU ms: one thread %.1f, every core %.1f of which the "
               "query's "
               "thread %.1f (%.2f of one thread's)\n",
               exp(logone / (double)npanels), exp(logc1 / (double)npanels), exp(logcp / (double)npanels),
               exp(logthr / (double)npanels), exp((logthr - logc1) / (double)npanels));
    rc = 0;
out:
    if (df)
        fclose(df);
    if (s && storage_close(s, &err) != 0) {
        fprintf(stderr, "close: %s\n", err.msg);
        rc = 1;
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
