/*
 * process.c - the process_* metrics every Prometheus exporter has:
 * CPU seconds, resident and virtual memory, open and max file descriptors,
 * start time.  Registered by main.c at start; read from /proc when
 * scraped, on whichever thread serves /metrics.
 */
#include <dirent.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util.h"

static double start_time;

static double cpu_seconds(void *d) {
    (void)d;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static double statm_field(int idx) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    unsigned long v[2] = {0, 0};
    int n = fscanf(f, "%lu %lu", &v[0], &v[1]);
    fclose(f);
    if (n != 2)
        return 0;
    return (double)v[idx] * (double)sysconf(_SC_PAGESIZE);
}

double process_resident_bytes(void) {
    return statm_field(1);
}

static double resident(void *d) {
    (void)d;
    return statm_field(1);
}

static double virtual_mem(void *d) {
    (void)d;
    return statm_field(0);
}

static double open_fds(void *d) {
    (void)d;
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n - 1; /* the directory stream's own descriptor */
}

static double max_fds(void *d) {
    (void)d;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    return (double)rl.rlim_cur;
}

static double start_time_fn(void *d) {
    (void)d;
    return start_time;
}

int process_metrics_register(void) {
    start_time = (double)(time_now_ms() / 1000);
    int ok = metric_new_func(METRIC_COUNTER, "process_cpu_seconds_total",
                             "Total user and system CPU time spent in seconds.", cpu_seconds, NULL) &&
             metric_new_func(METRIC_GAUGE, "process_resident_memory_bytes", "Resident memory size in bytes.",
                             resident, NULL) &&
             metric_new_func(METRIC_GAUGE, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
                             virtual_mem, NULL) &&
             metric_new_func(METRIC_GAUGE, "process_open_fds", "Number of open file descriptors.", open_fds,
                             NULL) &&
             metric_new_func(METRIC_GAUGE, "process_max_fds", "Maximum number of open file descriptors.",
                             max_fds, NULL) &&
             metric_new_func(METRIC_GAUGE, "process_start_time_seconds",
                             "Start time of the process since unix epoch in seconds.", start_time_fn, NULL);
    return ok ? 0 : KILN_ENOMEM;
}
