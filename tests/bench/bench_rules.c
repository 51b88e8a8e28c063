/*
 * bench_rules.c - recording-rule evaluation speed and rule-state memory, in
 * process (no scheduler, no HTTP).
 *
 *   bench_rules [series] [rules] [groups] [rounds]
 *
 * Loads `series` (default 100000) http_requests_total counters (labels svc,
 * instance, code) x 41 samples at 15 s into a storage on a temporary
 * directory, then `rules` (default 10000) recording rules
 *   sum by (svc, code) (rate(http_requests_total{svc="svc-K"}[5m]))
 * split evenly into `groups` (default 100) groups, each rule reading
 * series/rules series and writing two.  Each round (default 5) appends one
 * more sample to every series and evaluates every group at the next 15 s
 * step; it prints each round's evaluation time (the sum over the groups, as
 * kiln_rule_group_last_duration_seconds adds up), the median, and the
 * resident memory the groups added (created, and after the first round:
 * their rule state, including the series references of the output).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rules/group.h"

#define BR_T0_MS 1700000000000LL
#define BR_STEP_MS 15000LL
#define BR_SAMPLES 41

static double clock_sec(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_sec(void) {
    return clock_sec(CLOCK_MONOTONIC);
}

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = atol(line + 6);
    if (f)
        fclose(f);
    return v;
}

/* The bytes the groups' rule state asks of malloc (structures, label
 * arrays, the last output's hashes and references),
 * without the allocator's own overhead; the rule file's text is not counted. */
static size_t state_bytes(rule_group **gs, long n) {
    size_t b = 0;
    for (long i = 0; i < n; i++) {
        b += sizeof *gs[i] + gs[i]->nrules * sizeof(rule) + gs[i]->caplab * sizeof(label) +
             gs[i]->capout * sizeof(rule_out);
        for (size_t k = 0; k < gs[i]->nrules; k++) {
            const rule *r = &gs[i]->rules[k];
            b += (r->nlabels + 1) * sizeof(label) + r->nprev * sizeof(rule_series);
        }
    }
    return b;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Appends sample i of every series (refs remembered across calls). */
static void load(storage *st, long nseries, long rules, uint64_t *refs, int i) {
    appender *a = storage_appender(st);
    kiln_err err = {0};
    for (long j = 0; j < nseries; j++) {
        char svc[32], inst[32];
        snprintf(svc, sizeof svc, "svc-%ld", j % rules);
        snprintf(inst, sizeof inst, "i-%ld", j / rules);
        label ls[] = {{"__name__", "http_requests_total"},
                      {"code", j / rules % 5 ? "200" : "500"},
                      {"instance", inst},
                      {"svc", svc}};
        double v = (double)(i * (j % 7 + 1));
        if (appender_append(a, &refs[j], refs[j] ? NULL : ls, refs[j] ? 0 : 4, BR_T0_MS + i * BR_STEP_MS, v,
                            &err) != 0) {
            fprintf(stderr, "append: %s\n", err.msg);
            exit(1);
        }
        if (j % 10000 == 9999) {
            if (appender_commit(a, &err) != 0) {
                fprintf(stderr, "commit: %s\n", err.msg);
                exit(1);
            }
            a = storage_appender(st);
        }
    }
    if (appender_commit(a, &err) != 0) {
        fprintf(stderr, "commit: %s\n", err.msg);
        exit(1);
    }
}

int main(int argc, char **argv) {
    long nseries = argc > 1 ? atol(argv[1]) : 100000;
    long rules = argc > 2 ? atol(argv[2]) : 10000;
    long ngroups = argc > 3 ? atol(argv[3]) : 100;
    int rounds = argc > 4 ? atoi(argv[4]) : 5;
    if (nseries <= 0 || rules <= 0 || ngroups <= 0 || rounds <= 0 || rules % ngroups) {
        fprintf(stderr, "usage: bench_rules [series] [rules] [groups (dividing rules)] [rounds]\n");
        return 2;
    }
    char dir[] = "/tmp/kiln-bench-rules-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    storage_opts so = storage_opts_default();
    so.dir = dir;
    storage *st;
    kiln_err err = {0};
    if (storage_open(&so, &st, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return 1;
    }
    uint64_t *refs = calloc((size_t)nseries, sizeof *refs);
    double t0 = now_sec();
    for (int i = 0; i < BR_SAMPLES; i++)
        load(st, nseries, rules, refs, i);
    printf("loaded %ld series x %d samples in %.1f s\n", nseries, BR_SAMPLES, now_sec() - t0);

    buf y = BUF_INIT;
    buf_puts(&y, "groups:\n");
    for (long gi = 0; gi < ngroups; gi++) {
        buf_printf(&y, "  - name: g%ld\n    interval: 15s\n    rules:\n", gi);
        for (long k = gi * (rules / ngroups); k < (gi + 1) * (rules / ngroups); k++)
            buf_printf(&y,
                       "      - record: svc_code:http_requests:rate5m\n"
                       "        expr: sum by (svc, code) (rate(http_requests_total{svc=\"svc-%ld\"}[5m]))\n",
                       k);
    }
    if (buf_error(&y) != 0)
        return 1;
    rulefile_set *set = NULL;
    if (rulefile_load_string("bench.yml", y.data, y.len, NULL, &set, &err) != 0) {
        fprintf(stderr, "rules: %s\n", err.msg);
        return 1;
    }
    buf_free(&y);

    rules_env env = {.st = st, .outage_tolerance_ms = 3600000, .for_grace_period_ms = 600000};
    query_engine_init(&env.engine, NULL);
    config_global global = {.evaluation_interval_ms = 15000};
    long rss0 = rss_kib();
    rule_group **gs = calloc((size_t)ngroups, sizeof *gs);
    for (long gi = 0; gi < ngroups; gi++)
        if (rule_group_new(&set->groups[gi], &global, &env, &gs[gi], &err) != 0) {
            fprintf(stderr, "group: %s\n", err.msg);
            return 1;
        }
    long rss1 = rss_kib();
    double *ms = calloc((size_t)rounds, sizeof *ms), *cpu = calloc((size_t)rounds, sizeof *cpu);
    long rss2 = 0;
    for (int r = 0; r < rounds; r++) {
        load(st, nseries, rules, refs, BR_SAMPLES + r);
        int64_t ts = BR_T0_MS + (BR_SAMPLES + r) * BR_STEP_MS;
        double total = 0, cpu0 = clock_sec(CLOCK_PROCESS_CPUTIME_ID);
        for (long gi = 0; gi < ngroups; gi++) {
            double a = now_sec();
            if (rule_group_eval(gs[gi], ts) != 0)
                return 1;
            total += now_sec() - a;
        }
        ms[r] = total * 1000;
        cpu[r] = (clock_sec(CLOCK_PROCESS_CPUTIME_ID) - cpu0) * 1000;
        if (r == 0)
            rss2 = rss_kib();
        printf("round %d: %.1f ms for %ld rules (%.2f us a rule)\n", r, ms[r], rules,
               ms[r] * 1000 / (double)rules);
    }
    rule_group_stats s;
    uint64_t failures = 0, samples = 0;
    for (long gi = 0; gi < ngroups; gi++) {
        rule_group_stats_get(gs[gi], &s);
        failures += s.failures;
        samples += s.last_samples;
    }
    qsort(ms, (size_t)rounds, sizeof *ms, cmp_double);
    qsort(cpu, (size_t)rounds, sizeof *cpu, cmp_double);
    printf("median %.1f ms (%.1f ms of CPU); %llu samples written a round, %llu failures\n", ms[rounds / 2],
           cpu[rounds / 2], (unsigned long long)samples, (unsigned long long)failures);
    printf("rss: groups created +%ld KiB, after the first round +%ld KiB (total %ld KiB)\n", rss1 - rss0,
           rss2 - rss0, rss2);
    size_t sb = state_bytes(gs, ngroups);
    printf("rule state: %zu bytes, %.1f a rule\n", sb, (double)sb / (double)rules);
    for (long gi = 0; gi < ngroups; gi++)
        rule_group_free(gs[gi]);
    rulefile_free(set);
    free(gs);
    free(ms);
    free(cpu);
    free(refs);
    if (storage_close(st, &err) != 0)
        fprintf(stderr, "close: %s\n", err.msg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
