/*
 * notifier.h - sends alerts to Alertmanager as Prometheus' notifier does.
 * Private to rules/ for now: the rule manager (rules/) feeds it, and
 * cmd/kiln/main.c will create it and apply each configuration once the
 * rules are wired in; /api/v1/alertmanagers will read notifier_alertmanagers.
 *
 * What it does:
 * - The Alertmanagers come from the configuration's `alerting.alertmanagers`:
 *   each entry is a set, its targets from static_configs and file_sd_configs
 *   (globs, read again when a file's name, size or mtime changes or the
 *   refresh_interval passes; a file that does not load keeps the set's
 *   previous targets).  A target's labels are its own, `__scheme__`,
 *   `__alerts_path__` (path_prefix + "/api/v2/alerts", cleaned like Go's
 *   path.Join) and its group's; the set's relabel_configs may drop it or
 *   rewrite them; the URL is `<__scheme__>://<__address__><__alerts_path__>`.
 *   The same URL twice in one set is sent to once.
 * - notifier_send adds the external labels (global.external_labels) to each
 *   alert's labels where the alert has no such label, applies
 *   `alerting.alert_relabel_configs` (an alert whose labels are dropped or
 *   become empty is not sent), and queues the alerts.  The queue holds at most
 *   `queue_capacity` alerts; when full the oldest are dropped and counted.
 * - The sender thread takes up to `max_batch` alerts (64) at a time, encodes
 *   them as Alertmanager's v2 JSON and POSTs them to every Alertmanager of
 *   every set at once (libcurl multi), each with its set's timeout, HTTP
 *   client settings (basic auth, authorization/bearer, TLS files, proxy,
 *   follow_redirects) and, when the set has alert_relabel_configs, the batch
 *   relabeled for that set.  A non-2xx answer or a transport error is logged
 *   and counted for that Alertmanager.
 * - Retries: as in Prometheus, a batch that failed is not queued again.  The
 *   rule manager sends every active alert again each resend delay
 *   (--rules.alert.resend-delay, 1m), and that is the retry: an Alertmanager
 *   that was down receives the alerts at the first resend after it is back.
 *   A batch that no Alertmanager accepted counts as dropped.
 *
 * Relabeling is Prometheus' (scrape/relabel.c implements it); rules/ may not
 * include scrape/, so the caller passes that function in the options (its
 * signature is relabel_process's).  A configuration with relabel steps and
 * no such function is refused.
 *
 * Metrics (util/metrics.c), as prometheus_notifications_* in 2.42:
 * kiln_notifications_sent_total{alertmanager} (alerts in every request,
 * failed or not), kiln_notifications_errors_total{alertmanager} (failed
 * requests), kiln_notifications_latency_seconds{alertmanager} (a histogram,
 * where Prometheus has a summary), kiln_notifications_dropped_total,
 * kiln_notifications_queue_length, kiln_notifications_queue_capacity,
 * kiln_notifications_alertmanagers_discovered.  They are registered by
 * notifier_new: create one notifier per process.
 *
 * Threads and locks: notifier_send, notifier_apply_config,
 * notifier_alertmanagers and notifier_queue_length may be called from any
 * thread, at once.  notifier_new, notifier_run and notifier_free from one
 * owner thread.  One mutex (the notifier's) guards the queue and the current
 * Alertmanager sets; it is never held across I/O, relabeling or encoding
 * (the sets are reference-counted: a sender or send keeps the ones it took
 * while a reload swaps in new ones).  The sender thread is the only one that
 * talks HTTP.  The notifier takes no other lock while holding its own, so
 * it sits last in any lock order.
 */
#ifndef KILN_RULES_NOTIFIER_H
#define KILN_RULES_NOTIFIER_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "storage/storage.h"
#include "util/util.h"

#define NOTIFIER_DEFAULT_QUEUE_CAPACITY 10000 /* --alertmanager.notification-queue-capacity */
#define NOTIFIER_MAX_BATCH 64                 /* Prometheus' maxBatchSize */

/* A time field left unset: encoded as Go's zero time, "0001-01-01T00:00:00.000Z". */
#define NOTIFIER_TIME_ZERO INT64_MIN

/* One alert as the rule manager hands it over.  Everything is borrowed for
 * the notifier_send call (the notifier copies what it keeps). */
typedef struct notifier_alert {
    const label *labels; /* any order; names unique */
    size_t nlabels;
    const label *annotations;
    size_t nannotations;
    int64_t starts_at_ms; /* ms since the epoch, or NOTIFIER_TIME_ZERO */
    int64_t ends_at_ms;
    const char *generator_url; /* NULL or "" when none */
} notifier_alert;

/*
 * Prometheus relabeling of ls[0..n) by steps[0..nsteps): returns 1 and the
 * result (any order, memory from a) in *out and *nout, 0 when dropped, or
 * KILN_ENOMEM.  scrape/relabel.c's relabel_process is one.
 */
typedef int (*notifier_relabel_fn)(const config_relabel *steps, size_t nsteps, const label *ls, size_t n,
                                   arena *a, label **out, size_t *nout);

typedef struct notifier_options {
    size_t queue_capacity;       /* 0: NOTIFIER_DEFAULT_QUEUE_CAPACITY */
    size_t max_batch;            /* 0: NOTIFIER_MAX_BATCH */
    notifier_relabel_fn relabel; /* NULL: configurations with relabel steps are refused */
} notifier_options;

typedef struct notifier notifier;

/*
 * A new notifier with c's alerting section applied (c may be NULL: no
 * Alertmanagers yet); the sender thread is not started until notifier_run,
 * so alerts sent before it wait in the queue.  Retains c (config_retain)
 * while it uses it.  Returns 0 and *out (free with notifier_free), or
 * KILN_EINVAL (err says why: relabel steps without a relabel function),
 * KILN_ENOMEM or KILN_EIO (libcurl would not start).
 */
KILN_MUST_CHECK int notifier_new(const config *c, const notifier_options *opts, notifier **out,
                                 kiln_err *err);

/* Starts the sender thread.  0, or KILN_EIO when the thread cannot start. */
KILN_MUST_CHECK int notifier_run(notifier *n);

/*
 * Applies a new configuration (at reload): the Alertmanager sets are built
 * from c (file SD files read now) and swapped in; a send in progress
 * finishes with the old ones.  On error nothing changes: KILN_EINVAL with
 * err, or KILN_ENOMEM.  Retains c.
 */
KILN_MUST_CHECK int notifier_apply_config(notifier *n, const config *c, kiln_err *err);

/*
 * Queues alerts[0..count) (borrowed for the call) with external labels and
 * alert relabeling applied; drops the oldest queued alerts beyond the
 * capacity.  Returns 0 or KILN_ENOMEM (then no alert of this call is queued).
 */
KILN_MUST_CHECK int notifier_send(notifier *n, const notifier_alert *alerts, size_t count);

/* The number of alerts waiting in the queue. */
size_t notifier_queue_length(notifier *n);

/*
 * The URLs of the Alertmanagers alerts go to (*active) and of those the
 * relabel_configs dropped (*dropped), in configuration order, as
 * /api/v1/alertmanagers lists them.  Each array is NULL-terminated and
 * freed with notifier_urls_free.  0 or KILN_ENOMEM.
 */
KILN_MUST_CHECK int notifier_alertmanagers(notifier *n, char ***active, size_t *nactive, char ***dropped,
                                           size_t *ndropped);
void notifier_urls_free(char **urls);

/*
 * Stops the sender (a request in flight is abandoned), drops what is
 * queued, frees everything and releases the configuration.  NULL is fine.
 */
void notifier_free(notifier *n);

/*
 * Appends alerts[0..count) as the Alertmanager v2 POST body, byte for byte
 * what Prometheus sends: `[{"annotations":{...},"endsAt":"...","startsAt":
 * "...","generatorURL":"...","labels":{...}}]`, label sets sorted by name,
 * times as RFC 3339 in UTC with milliseconds, generatorURL left out when
 * empty.  Check buf_error on out afterwards.
 */
void notifier_encode(buf *out, const notifier_alert *alerts, size_t count);

#endif
