/*
 * scrape.h - the scrape manager: targets from scrape_configs, one scrape
 * loop per target on a libuv timer, fetches through libcurl's multi-socket
 * API on the same loop, parsing and appending on worker threads.
 *
 * Per target and scrape: every sample of the body goes into one appender
 * batch together with the report series (up, scrape_duration_seconds,
 * scrape_samples_scraped, scrape_samples_post_metric_relabeling,
 * scrape_series_added); series that were in the previous scrape and are
 * not in this one get a stale marker, and so does every series of a target
 * that goes away (reload).  A failed scrape stores up 0 and the report
 * series only.  A series cache per target, keyed by the series text as
 * written, maps a line to its storage reference so that the steady state
 * does no label work and no allocation per sample.
 *
 * Callers: cmd/kiln/main.c makes, applies, stops and frees the manager and
 * hands the JSON functions to the API as hooks.  The files behind this
 * header are listed in scrape/internal.h.
 *
 * Threading: scrape_manager_new, _stop and _free run on the loop thread;
 * scrape_manager_apply and the JSON functions may be called from any thread.
 */
#ifndef KILN_SCRAPE_SCRAPE_H
#define KILN_SCRAPE_SCRAPE_H

#include <uv.h>

#include "config/config.h"
#include "storage/storage.h"
#include "util/util.h"

typedef struct scrape_manager scrape_manager;

/* A manager appending into st (borrowed; it must outlive the manager): 0 with
 * *out set (free with scrape_manager_free), or KILN_EIO / KILN_ENOMEM with
 * err set. */
KILN_MUST_CHECK int scrape_manager_new(uv_loop_t *loop, storage *st, scrape_manager **out, kiln_err *err);

/*
 * Makes cfg's scrape_configs the running ones (the manager holds a
 * config_retain reference).  Pools and targets whose configuration and
 * labels did not change keep running untouched: no gap, no duplicate
 * scrape.  Applied on the loop thread soon after the call.
 */
void scrape_manager_apply(scrape_manager *m, config *cfg);

/* The --enable-feature set (util.h's FEATURE_*: created-timestamp-zero-
 * ingestion is read by the appends); set before the first apply. */
void scrape_manager_set_features(scrape_manager *m, uint32_t features);

/* Stops every loop and fetch, and calls done(data) on the loop thread once
 * the manager holds no more handles (in-flight appends finish first). */
void scrape_manager_stop(scrape_manager *m, void (*done)(void *data), void *data);

/* Frees the manager after stop completed (or when it never ran). */
void scrape_manager_free(scrape_manager *m);

/*
 * The data of GET /api/v1/targets: {"activeTargets":[...],"droppedTargets":[...]}.
 * state: "active", "dropped", "any" or NULL (any); pool: a job name or NULL.
 * Appends to out; 0, or KILN_ENOMEM when out lost an append (do not send it).
 */
KILN_MUST_CHECK int scrape_targets_json(scrape_manager *m, const char *state, const char *pool, buf *out);

/*
 * The data of GET /api/v1/targets/metadata: one entry per target and
 * metric, filtered by the target matchers (match_target, a label selector
 * like `{job="x"}` or NULL), the metric name (NULL: all) and limit (< 0: no
 * limit).  Appends to out; 0, or KILN_ENOMEM when out lost an append.  err
 * is not used: the caller parses the selector.
 */
KILN_MUST_CHECK int scrape_targets_metadata_json(scrape_manager *m, const matcher *ms, size_t nms,
                                                 const char *name, long limit, buf *out, kiln_err *err);

/*
 * The data of GET /api/v1/metadata: {"name":[{"type","help","unit"}...]},
 * distinct entries per metric over every target; limit caps the metrics,
 * limit_per_metric the entries of one metric (< 0: no limit).  Appends to
 * out; 0, or KILN_ENOMEM.
 */
KILN_MUST_CHECK int scrape_metadata_json(scrape_manager *m, const char *name, long limit,
                                         long limit_per_metric, buf *out);

/* Prometheus' relabeling of a label set (relabel.c, see relabel.h): the
 * daemon hands it to the rule manager for alert and Alertmanager relabeling. */
KILN_MUST_CHECK int relabel_process(const config_relabel *steps, size_t nsteps, const label *ls, size_t n,
                                    arena *a, label **out, size_t *nout);

#endif
