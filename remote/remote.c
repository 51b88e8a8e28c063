/*
 * remote.c - the remote-write sender (remote.h): one thread that runs every
 * queue (queue.c) and all their HTTP through one libcurl multi handle, the
 * swap of queues on a reload, and the metrics, named as Prometheus'
 * prometheus_remote_storage_* with the kiln_ prefix and the labels
 * remote_name and url, so existing dashboards work with the prefix changed.
 *
 * The thread loops: apply a configuration handed over by remote_apply (under
 * the mutex), step each queue (read the WAL, start due batches), let libcurl
 * run the transfers, hand the finished ones to their queues, then wait in
 * curl_multi_poll for socket activity, the earliest deadline a queue asked
 * for, or a curl_multi_wakeup from remote_apply / remote_free.
 *
 * Threading: remote_apply and remote_free run on the daemon's threads and
 * only touch `mu`'s fields; everything else belongs to the sender thread.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote/remote_int.h"

typedef struct rw_run {
    rw_queue *q;
    rw_metrics m;
    char name[64];
} rw_run;

/* The metric families: each fills one field of rw_metrics. */
#define METADATA_HELP(what) "Total number of metadata entries " what
static const struct {
    size_t off;
    int type;
    const char *name, *help;
} fams[] = {
    {offsetof(rw_metrics, samples), METRIC_COUNTER, "samples_total",
     "Total number of samples sent to remote storage."},
    {offsetof(rw_metrics, failed), METRIC_COUNTER, "samples_failed_total",
     "Total number of samples which failed on send to remote storage, non-recoverable errors."},
    {offsetof(rw_metrics, retried), METRIC_COUNTER, "samples_retried_total",
     "Total number of samples which failed on send to remote storage but were retried because the send error "
     "was "
     "recoverable."},
    {offsetof(rw_metrics, dropped), METRIC_COUNTER, "samples_dropped_total",
     "Total number of samples which were dropped after being read from the WAL before being sent via remote "
     "write, "
     "either via relabelling or unintentionally because of an unknown reference ID."},
    {offsetof(rw_metrics, pending), METRIC_GAUGE, "samples_pending",
     "The number of samples pending in the queues shards to be sent to the remote storage."},
    {offsetof(rw_metrics, highest_in), METRIC_GAUGE, "highest_timestamp_in_seconds",
     "Highest timestamp that has come into the remote storage via the WAL, in seconds since epoch."},
    {offsetof(rw_metrics, highest_sent), METRIC_GAUGE, "queue_highest_sent_timestamp_seconds",
     "Timestamp from a WAL sample, the highest timestamp successfully sent by this queue, in seconds since "
     "epoch."},
    {offsetof(rw_metrics, shards), METRIC_GAUGE, "shards",
     "The number of shards used for parallel sending to the remote storage."},
    {offsetof(rw_metrics, shards_desired), METRIC_GAUGE, "shards_desired",
     "The number of shards that the queues shard calculation wants to run based on the rate of samples in "
     "vs. "
     "samples out."},
    {offsetof(rw_metrics, shards_min), METRIC_GAUGE, "shards_min",
     "The minimum number of shards that the queue is allowed to run."},
    {offsetof(rw_metrics, shards_max), METRIC_GAUGE, "shards_max",
     "The maximum number of shards that the queue is allowed to run."},
    {offsetof(rw_metrics, bytes), METRIC_COUNTER, "bytes_total",
     "The total number of bytes of data (not metadata) sent by the queue after compression."},
    {offsetof(rw_metrics, duration), METRIC_HISTOGRAM, "sent_batch_duration_seconds",
     "Duration of send calls to the remote storage."},
    /* metadata_config's, with Prometheus' help */
    {offsetof(rw_metrics, metadata), METRIC_COUNTER, "metadata_total",
     METADATA_HELP("sent to remote storage.")},
    {offsetof(rw_metrics, metadata_failed), METRIC_COUNTER, "metadata_failed_total",
     METADATA_HELP("which failed on send to remote storage, non-recoverable errors.")},
    {offsetof(rw_metrics, metadata_bytes), METRIC_COUNTER, "metadata_bytes_total",
     "The total number of bytes of metadata sent by the queue after compression."},
};
#define RW_NFAMS (sizeof fams / sizeof fams[0])

/* Registered once a process (the registry is process-wide). */
static metric *fam[RW_NFAMS];
static pthread_once_t fam_once = PTHREAD_ONCE_INIT;

static void fam_register(void) {
    static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                     2.5,   5,    10,    25,   60,  120,  300};
    for (size_t i = 0; i < RW_NFAMS; i++) {
        char name[96];
        snprintf(name, sizeof name, "kiln_remote_storage_%s", fams[i].name);
        int h = fams[i].type == METRIC_HISTOGRAM;
        fam[i] = metric_new(fams[i].type, name, fams[i].help, "remote_name,url", h ? buckets : NULL,
                            h ? sizeof buckets / sizeof buckets[0] : 0);
    }
}

static metric_child **run_child(rw_run *r, size_t i) {
    return (metric_child **)(void *)((char *)&r->m + fams[i].off);
}

struct remote {
    remote_options o;
    char *data_dir;
    pthread_t thread;
    int started;
    CURLM *multi;

    pthread_mutex_t mu;
    config *next; /* handed over by remote_apply, taken by the thread */
    int have_next, stop;

    _Atomic int64_t lowest_sent; /* remote_lowest_sent_ms, set by the thread */

    config *cfg; /* the configuration the queues borrow from (thread) */
    rw_run *runs;
    size_t nruns;
};

static void run_metrics(rw_run *r, const config_remote_write *c) {
    const char *v[2] = {r->name, c->url};
    for (size_t i = 0; i < RW_NFAMS; i++)
        *run_child(r, i) = fam[i] ? metric_with(fam[i], v) : NULL;
}

static void run_stop(rw_run *r) {
    rw_queue_free(r->q);
    r->q = NULL;
    for (size_t i = 0; i < RW_NFAMS; i++)
        metric_remove(*run_child(r, i));
}

static int labels_equal(const config *a, const config *b) {
    if (a->global.nexternal_labels != b->global.nexternal_labels)
        return 0;
    for (size_t i = 0; i < a->global.nexternal_labels; i++)
        if (strcmp(a->global.external_labels[i].name, b->global.external_labels[i].name) != 0 ||
            strcmp(a->global.external_labels[i].value, b->global.external_labels[i].value) != 0)
            return 0;
    return 1;
}

/* Swaps in configuration c (sender thread): unchanged queues keep running. */
static void apply(remote *r, config *c) {
    rw_run *runs = c->nremote_write ? calloc(c->nremote_write, sizeof *runs) : NULL;
    if (c->nremote_write && !runs) {
        LOG_ERROR("remote write: out of memory applying the configuration", "queues=%zu", c->nremote_write);
        config_free(c);
        return;
    }
    int same_ext = r->cfg && labels_equal(r->cfg, c);
    for (size_t i = 0; i < c->nremote_write; i++) {
        const config_remote_write *w = &c->remote_write[i];
        for (size_t j = 0; j < r->nruns && same_ext; j++)
            if (r->runs[j].q && config_remote_write_equal(rw_queue_config(r->runs[j].q), w)) {
                runs[i] = r->runs[j];
                r->runs[j].q = NULL;
                break;
            }
    }
    /* the old configuration's queues that go, before the new ones start from the progress they write */
    for (size_t j = 0; j < r->nruns; j++)
        if (r->runs[j].q)
            run_stop(&r->runs[j]);
    free(r->runs);
    for (size_t i = 0; i < c->nremote_write; i++) {
        const config_remote_write *w = &c->remote_write[i];
        if (runs[i].q) { /* kept: it borrows from c now (equal to what it had) */
            rw_queue_rebind(runs[i].q, w, c->global.external_labels);
            continue;
        }
        if (w->name)
            snprintf(runs[i].name, sizeof runs[i].name, "%s", w->name);
        else { /* Prometheus names it by the config's hash, 6 digits */
            rw_queue_key(w, runs[i].name);
            runs[i].name[6] = 0;
        }
        run_metrics(&runs[i], w);
        kiln_err err = {0};
        if (rw_queue_new(w, c->global.external_labels, c->global.nexternal_labels, &r->o, r->multi,
                         &runs[i].m, &runs[i].q, &err) != 0)
            LOG_ERROR("remote write: cannot start the queue", "url=%s err=%s", w->url, err.msg);
    }
    r->runs = runs;
    r->nruns = c->nremote_write;
    config_free(r->cfg);
    r->cfg = c;
}

static void *sender_main(void *p) {
    remote *r = p;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int stop = r->stop;
        config *c = r->have_next ? r->next : NULL;
        r->have_next = 0;
        r->next = NULL;
        pthread_mutex_unlock(&r->mu);
        if (stop) {
            config_free(c);
            break;
        }
        if (c)
            apply(r, c);
        int64_t now = time_now_ms(), wait = 1000;
        for (size_t i = 0; i < r->nruns; i++)
            if (r->runs[i].q) {
                int64_t w = rw_queue_step(r->runs[i].q, now);
                if (w < wait)
                    wait = w;
            }
        int running = 0;
        curl_multi_perform(r->multi, &running);
        CURLMsg *msg;
        int left;
        now = time_now_ms();
        while ((msg = curl_multi_info_read(r->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *e = msg->easy_handle;
            CURLcode code = msg->data.result;
            long status = 0;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            for (size_t i = 0; i < r->nruns; i++)
                if (r->runs[i].q && rw_queue_owns(r->runs[i].q, e)) {
                    rw_queue_done(r->runs[i].q, e, (int)code, status, now);
                    wait = 0;
                    break;
                }
        }
        int64_t low = INT64_MAX;
        for (size_t i = 0; i < r->nruns; i++)
            if (r->runs[i].q && rw_queue_highest_sent(r->runs[i].q) < low)
                low = rw_queue_highest_sent(r->runs[i].q);
        atomic_store(&r->lowest_sent, low);
        if (wait > 0)
            curl_multi_poll(r->multi, NULL, 0, (int)wait, NULL);
    }
    return NULL;
}

int remote_new(const remote_options *o, remote **out, kiln_err *err) {
    *out = NULL;
    pthread_once(&fam_once, fam_register);
    remote *r = calloc(1, sizeof *r);
    if (!r || !(r->data_dir = strdup(o->data_dir)) || !(r->multi = curl_multi_init())) {
        if (r)
            free(r->data_dir);
        free(r);
        return kiln_err_set(err, KILN_ENOMEM, "remote write: out of memory");
    }
    r->o = *o;
    r->o.data_dir = r->data_dir;
    atomic_init(&r->lowest_sent, 0); /* until the thread has looked */
    pthread_mutex_init(&r->mu, NULL);
    if (pthread_create(&r->thread, NULL, sender_main, r) != 0) {
        remote_free(r);
        return kiln_err_set(err, KILN_ENOMEM, "remote write: cannot start the sender thread");
    }
    r->started = 1;
    *out = r;
    return 0;
}

int64_t remote_wal_keep_from(int64_t lowest_sent, int64_t now, int64_t min_age, int64_t max_age) {
    int64_t ts = lowest_sent > now ? now - min_age : lowest_sent - min_age;
    if (ts < now - max_age)
        ts = now - max_age;
    return ts > now - min_age ? now - min_age : ts;
}

int64_t remote_lowest_sent_ms(remote *r) {
    return atomic_load(&r->lowest_sent);
}

int remote_apply(remote *r, config *c) {
    pthread_mutex_lock(&r->mu);
    config_free(r->next);
    r->next = config_retain(c);
    r->have_next = 1;
    pthread_mutex_unlock(&r->mu);
    curl_multi_wakeup(r->multi);
    return 0;
}

void remote_free(remote *r) {
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_mutex_unlock(&r->mu);
    if (r->started) {
        curl_multi_wakeup(r->multi);
        pthread_join(r->thread, NULL);
    }
    for (size_t i = 0; i < r->nruns; i++)
        run_stop(&r->runs[i]);
    free(r->runs);
    config_free(r->cfg);
    config_free(r->next);
    curl_multi_cleanup(r->multi);
    pthread_mutex_destroy(&r->mu);
    free(r->data_dir);
    free(r);
}
