/*
 * internal.h - what the files of scrape/ share (private to scrape/; others
 * include scrape.h): the target, pool and manager structs and the functions
 * one file calls in another.
 *
 *   scrape.c        the manager and its pools: new/stop/free, applying a
 *                   config, syncing a pool's targets with its groups
 *   target.c        a target: built from a group address (labels, URL), its
 *                   loop (timer -> fetch -> work -> done) and its end
 *   fetch.c         the HTTP fetch: libcurl's multi-socket API on libuv
 *   append.c        a scrape's samples into storage: the series cache,
 *                   limits, stale markers, the report series
 *   protocols.c     scrape_protocols: the Accept header, the format of a
 *                   response's Content-Type
 *   protoexpo.c     the protobuf exposition format (protoexpo.h)
 *   filesd.c        file_sd_configs: reading and polling the target files
 *   sd.c, sd_*.c    the other service discoveries, on a thread of their own
 *                   (see sd.h)
 *   targets_json.c  the API's views: /api/v1/targets, .../targets/metadata,
 *                   /api/v1/metadata
 *
 * Threads and what each may touch:
 *   - the loop thread (libuv's): timers, curl's sockets, every list of
 *     pools and targets and every field not marked otherwise; it writes the
 *     lists under m->mu, so it may read them without it.
 *   - a worker thread of libuv's pool, one per target at a time (the
 *     target's state is T_WORKING): the work fields, the series cache, the
 *     report refs, the scratch memory and the labels builder of that target.
 *   - any thread (the API's): the lists and the fields marked "m->mu",
 *     under m->mu only.
 */
#ifndef KILN_SCRAPE_INTERNAL_H
#define KILN_SCRAPE_INTERNAL_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "scrape/scrape.h"

enum { T_IDLE, T_FETCHING, T_WORKING }; /* target.state */
enum { JOB_SCRAPE, JOB_STALE };         /* target.job: what the work does */
enum { H_UNKNOWN, H_UP, H_DOWN };       /* target.health */
/* The report series, in the order of target.rep and target.rep_ref. */
enum { REP_UP, REP_DURATION, REP_SCRAPED, REP_POST, REP_ADDED, NREP };

/* ---- the series cache (append.c) ------------------------------------------ */

/*
 * Entries are kept in the order their lines were first seen, keys in one
 * arena in the same order, and a scrape is expected to list its series in
 * the same order as the last one: the next entry is tried first (no hash, a
 * sequential walk through memory), the hash index only when the body
 * changed order or gained lines.
 */
typedef struct centry {
    const char *key; /* the series as written, in the cache's key arena */
    uint32_t klen;
    uint32_t seen; /* last scrape iteration with this line */
    uint64_t hash;
    uint64_t ref;        /* storage reference; 0 with dropped */
    uint8_t dropped;     /* metric relabeling drops it */
    uint8_t explicit_ts; /* the last sample had its own timestamp */
    uint8_t in_last;     /* has a live sample in the last stored scrape */
    uint8_t is_hist;     /* its last sample was a native histogram */
} centry;

typedef struct scache {
    centry *v; /* in first-seen order */
    size_t n, capv;
    uint32_t *idx; /* open addressing over v: index + 1, 0 empty; capi a power of two */
    size_t capi;
    arena keys;
    size_t cursor; /* the entry the next line is expected to be */
} scache;

/* ---- metadata ------------------------------------------------------------- */

/* A metric's # TYPE, # HELP and # UNIT as a target last wrote them. */
typedef struct mentry {
    char *name;
    int type; /* expo_type */
    char *help, *unit;
} mentry;

/* ---- targets and pools ---------------------------------------------------- */

typedef struct pool pool;

typedef struct target {
    scrape_manager *m;
    pool *p;
    struct target *next;
    arena mem;
    label *ls; /* target labels (no "__" names), sorted */
    size_t nls;
    label *full; /* after relabeling, with the "__" names; sorted */
    size_t nfull;
    label *disc; /* discovered labels (m->mu: a sync may replace them) */
    size_t ndisc;
    void *disc_own;   /* when replaced: their malloc'd block */
    label *rep[NREP]; /* the report series' label sets */
    char *url;
    uint64_t hash;
    int64_t interval_ms, timeout_ms;
    const scrape_config *sc; /* the pool's config when the target was (re)configured */

    /* the loop thread's */
    uv_timer_t timer;
    int timer_closed, dead, stale_pending, state, configured;
    int64_t next_due_ms;
    CURL *easy;
    struct curl_slist *hdrs;
    struct curl_slist *connect_to; /* tls_config.server_name (util/curltls.c) */
    buf body;
    int body_over;
    char ctype[128];
    int64_t start_ms;
    double start_mono;

    /* the work item: set on the loop thread before the work is queued,
     * job_result and job_ok written by the worker and read back in work_done */
    uv_work_t work;
    int job;
    const scrape_config *job_sc;
    config *job_cfg;
    char job_err[512];
    double job_duration;
    char job_result[512];
    int job_ok;

    /* owned by the thread running the work */
    scache cache;
    uint32_t iter;
    uint64_t rep_ref[NREP];
    arena scratch;
    labels_builder lb;

    /* guarded by m->mu */
    char last_error[512];
    int64_t last_scrape_ms;
    double last_duration;
    int health;
    mentry *meta;
    size_t nmeta, capmeta;
} target;

typedef struct dropped {
    label *ls;
    size_t n;
} dropped;

struct pool {
    pool *next;
    char *job;
    const scrape_config *sc;
    config *cfg; /* retained */
    target *targets;
    arena dmem; /* dropped targets' discovered labels */
    dropped *dropped;
    size_t ndropped, capdropped;
    /* file_sd_configs: the groups read last, and what the files looked like */
    scrape_manager *m;
    uv_timer_t sd_timer;
    int sd_timer_on;
    arena sd_mem;
    config_static *sd_groups;
    const char **sd_files; /* the file of each group */
    size_t nsd;
    uint64_t sd_sig;
    int64_t sd_read_ms;
    /* the other service discoveries (sd.c): the providers, and the groups
     * the targets were last synced with (references) */
    struct sd_provider **sdp;
    size_t nsdp;
    struct sd_tg **sd_snap;
    size_t nsd_snap;
    int64_t sd_since_ms;  /* the providers were made */
    int64_t sd_synced_ms; /* the groups were taken */
    metric_child *sd_metric;
};

struct scrape_manager {
    uv_loop_t *loop;
    storage *st;
    uint32_t features; /* --enable-feature (read-only once scraping runs) */
    CURLM *multi;
    uv_timer_t ctimer;
    uv_async_t async;
    pthread_mutex_t mu;
    config *pending; /* the config to apply next (mu) */
    config *cfg;     /* the config applied last (retained) */
    pool *pools;
    struct sd_runtime *sd; /* the service discoveries' thread (sd.c) */
    struct csock *socks;   /* polled sockets */
    int stopping, handles, works, multi_closed;
    void (*done)(void *);
    void *done_data;
    metric_child *m_missed, *m_late, *m_scrapes, *m_failed, *m_sample_limit, *m_ooo, *m_dup, *m_oob,
        *m_ex_ooo, *m_targets, *m_pools, *m_reloads;
};

/* ---- scrape.c ------------------------------------------------------------- */

/* Calls the stop's done callback once nothing is left running (loop thread). */
void scrape_check_stopped(scrape_manager *m);
/* One of the manager's handles has closed (its close callback calls this). */
void scrape_handle_gone(scrape_manager *m);
/* The close callback of a handle whose data is the manager. */
void scrape_handle_closed(uv_handle_t *h);
/* Brings p's targets in line with sc's groups and the file_sd groups
 * (loop thread); p then holds a reference to cfg, which owns sc. */
void scrape_sync_pool(scrape_manager *m, pool *p, const scrape_config *sc, config *cfg);

/* ---- target.c (loop thread) ------------------------------------------------ */

/* A new, unstarted target of p (NULL when out of memory); free it with
 * target_discard until target_start has run. */
target *target_new(scrape_manager *m, pool *p);
/* Frees a target that never started. */
void target_discard(target *t);
/*
 * Fills t from the labels of one target of a group, already in lb (the
 * group's, then the target's own, __address__ among them), as Prometheus'
 * populateLabels does: 1 (an active target), 0 (dropped by relabeling:
 * *disc, *ndisc hold its discovered labels, in a) or KILN_EINVAL (err says
 * why) / KILN_ENOMEM.  lb is used up.
 */
KILN_MUST_CHECK int target_build(const scrape_config *sc, arena *a, labels_builder *lb, label **disc,
                                 size_t *ndisc, target *t, kiln_err *err);
/* Starts (or restarts) the target's timer: its first scrape is at an offset
 * in the interval given by its hash. */
void target_start(target *t);
/* Takes a target out (already unlinked from its pool): stops its loop,
 * writes stale markers for its series when stale, frees it when nothing
 * runs for it any more. */
void target_remove(target *t, int stale);
/* Hands the target to a worker thread for job (JOB_SCRAPE after a fetch). */
void target_queue_job(target *t, int job);

/* ---- fetch.c (loop thread) ------------------------------------------------- */

/* Sets up libcurl's multi handle on m's loop; 0 or KILN_EIO / KILN_ENOMEM. */
KILN_MUST_CHECK int fetch_init(scrape_manager *m, kiln_err *err);
/* Starts the target's request; its end queues JOB_SCRAPE. */
void fetch_start(target *t);
/* Drops the target's request in flight. */
void fetch_cancel(target *t);
/* Frees the target's curl handle and headers. */
void fetch_target_free(target *t);
/* Ends every transfer and closes curl's handles (stop). */
void fetch_close(scrape_manager *m);
/* Frees what fetch_init made that fetch_close did not. */
void fetch_free(scrape_manager *m);
/* A secret given inline or in a file (its trailing newlines dropped): 0 with
 * *out a new string to free, or NULL when there is none or the file cannot
 * be read; KILN_ENOMEM.  Any thread. */
KILN_MUST_CHECK int fetch_read_secret(const char *inline_value, const char *file, char **out);

/* ---- append.c (worker thread) ---------------------------------------------- */

/* Appends the fetched body of t (or up 0 when the fetch failed) and the
 * report series, sets t->job_ok and t->job_result. */
void append_scrape(target *t);
/* Stale markers for every series of a target that goes away. */
void append_stale(target *t);
void append_cache_free(scache *c);

/* ---- protocols.c (any thread) ---------------------------------------------- */

/* The formats a scrape's body can be in. */
enum { SCRAPE_FMT_TEXT, SCRAPE_FMT_OM, SCRAPE_FMT_PROTO };

/* Appends the Accept header line ("Accept: ...") for sc's scrape_protocols. */
void protocols_accept(const scrape_config *sc, buf *b);

/*
 * The SCRAPE_FMT_* of a response with Content-Type ctype (NULL or "" when
 * it had none), or -1 when the scrape must fail; why (whyn bytes) then says
 * why, and when the fallback protocol (a scrape_protocols name or NULL) was
 * used instead it says that (for a log line), else it is "".
 */
int protocols_format(const char *ctype, const char *fallback, char *why, size_t whyn);

/* ---- filesd.c (loop thread) ------------------------------------------------ */

/* Reads p's target files for its (new) config sc and starts polling them,
 * or stops when sc has no file_sd_configs. */
void filesd_setup(scrape_manager *m, pool *p, const scrape_config *sc);
/* Frees the groups read from files. */
void filesd_free(pool *p);

#endif
