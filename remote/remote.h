/*
 * remote.h - the remote-write sender (`remote_write` in prometheus.yml),
 * built as Prometheus builds it: per remote_write entry a queue whose
 * watcher follows kiln's own WAL (storage_wal_tail_*: series records fill a
 * ref -> labels cache, samples records become samples to send), applies
 * external labels and write_relabel_configs, spreads the samples over
 * shards (min_shards..max_shards, following the backlog), and sends batches
 * of up to max_samples_per_send (or after batch_send_deadline) as
 * snappy-compressed prometheus.WriteRequest (remote write 1.0), retrying
 * 5xx (and 429 with retry_on_http_429) with exponential backoff.  Each queue
 * writes its progress (a WAL position) under <data>/remote/, so a restart
 * resumes where it was; a first start begins at the end of the WAL.
 *
 * Threads: one sender thread runs every queue (the WAL reading, batching
 * and all HTTP through one libcurl multi handle); remote_apply and
 * remote_free are called from the daemon's threads (a reload worker, the
 * loop thread at exit).
 */
#ifndef KILN_REMOTE_REMOTE_H
#define KILN_REMOTE_REMOTE_H

#include <stddef.h>

#include "config/config.h"
#include "storage/storage.h"
#include "util/util.h"

/* Prometheus relabeling of ls[0..n) by steps: 1 and the result (memory from
 * a) in *out and *nout, 0 when dropped, or KILN_ENOMEM.  scrape/'s
 * relabel_process is one; the daemon passes it in (remote/ does not include
 * scrape/). */
typedef int (*remote_relabel_fn)(const config_relabel *steps, size_t nsteps, const label *ls, size_t n,
                                 arena *a, label **out, size_t *nout);

/* The metadata of the scraped families (metadata_config): appends the data
 * object of GET /api/v1/metadata ({"name":[{"type","help","unit"}...]}) to
 * out; 0 or KILN_ENOMEM.  Called on the sender thread. */
typedef int (*remote_metadata_fn)(void *data, buf *out);

typedef struct remote_options {
    const char *data_dir;        /* holds wal/ and (created) remote/; copied */
    remote_relabel_fn relabel;   /* write_relabel_configs */
    remote_metadata_fn metadata; /* NULL: no metadata is sent */
    void *metadata_data;
} remote_options;

typedef struct remote remote;

/* Starts the sender thread (idle until remote_apply gives it queues).
 * *out is new: free with remote_free. */
KILN_MUST_CHECK int remote_new(const remote_options *o, remote **out, kiln_err *err);

/*
 * Hands the sender a configuration (retained until the next one): queues of
 * remote_write entries equal to the running ones (and with the same
 * external labels) keep running, the others stop and the new ones start
 * from their progress.  Returns at once (the sender thread does the work);
 * 0 or KILN_ENOMEM.
 */
KILN_MUST_CHECK int remote_apply(remote *r, config *c);

/* The lowest of the queues' newest acknowledged sample time (ms), as
 * Prometheus' LowestSentTimestamp: what agent mode truncates the WAL by.
 * 0 while a queue has sent nothing; INT64_MAX without queues.  Any thread. */
int64_t remote_lowest_sent_ms(remote *r);

/* Agent mode's truncation point, as Prometheus' agent computes it: what
 * every queue has sent (lowest_sent) less min_age, yet at least now -
 * max_age (an outage does not keep data forever), and at most now - min_age
 * (appends before it are refused afterwards). */
int64_t remote_wal_keep_from(int64_t lowest_sent, int64_t now, int64_t min_age, int64_t max_age);

/* Stops the sender (in-flight requests are abandoned; progress is written:
 * what was not acknowledged is sent again at the next start) and frees it.
 * NULL is a no-op. */
void remote_free(remote *r);

/* ---- remote read (remote_read; read.c) ---------------------------------- */

/*
 * The remote read client: kiln's query engine reads other servers' data
 * through it, merged with the local data (storage_set_source).  Each select
 * asks every remote_read entry whose required_matchers the selector has
 * (equality matchers), and, without read_recent, only for a range older than
 * the local data's start (clipped to it), as Prometheus does; external
 * labels are added as equality matchers (filter_external_labels) and
 * removed from the answer.  One snappy-compressed ReadRequest a select and
 * entry (SAMPLES response), on the querying thread, within remote_timeout.
 * A failing endpoint makes a warning of the query, not an error.
 *
 * Threading: any number of query threads select at once; remote_reader_apply
 * from any thread.
 */
typedef struct remote_reader remote_reader;

KILN_MUST_CHECK int remote_reader_new(remote_reader **out);

/* Hands the reader a configuration (retained until the next one; the
 * credentials files are read now).  0 or KILN_ENOMEM. */
KILN_MUST_CHECK int remote_reader_apply(remote_reader *r, config *c);

/* The source to hand the storage (storage_set_source); valid while r is. */
storage_source remote_reader_source(remote_reader *r);

/* Frees r once no query uses it (after the storage is closed).  NULL: no-op. */
void remote_reader_free(remote_reader *r);

#endif
