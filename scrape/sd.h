/*
 * sd.h - private to scrape/: the service discovery runtime (sd.c) and what
 * its providers (sd_http.c, sd_dns.c, sd_consul.c, sd_kubernetes.c) share.
 *
 * A provider is one *_sd_config of a pool.  It runs on the SD thread (one
 * per scrape manager), which drives every provider's timers, its HTTP
 * requests (a libcurl multi handle of its own, curl_multi_poll) and its
 * other sockets (c-ares'), so discovery never blocks the loop thread and
 * its CPU is counted on one thread.  A provider keeps its target groups in
 * an sd_set keyed by source; when the set changed it is published: the
 * provider's snapshot (an array of references to immutable groups) is
 * swapped under rt->mu, and the loop thread is woken.  The pool (scrape.c,
 * on the loop thread) takes the snapshots of its providers at most every
 * SD_SYNC_MS and syncs its targets with them.
 *
 * Ownership: a group (sd_tg) is reference counted; a set, a snapshot and a
 * pool each hold references.  A provider belongs to the SD thread; the
 * pool that made it lets go with sd_provider_release and never touches it
 * again.
 *
 * Threads: the SD thread for everything a provider does; the loop thread
 * for sd_runtime_new/stop, sd_provider_new/release and sd_take; rt->mu
 * guards the handover between them (marked "rt->mu" below).
 */
#ifndef KILN_SCRAPE_SD_H
#define KILN_SCRAPE_SD_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "scrape/internal.h"

/* The least time between two syncs of a pool from its discoveries
 * (Prometheus' discovery manager sends updates every 5s). */
#define SD_SYNC_MS 5000
/* A pool whose new providers have not all answered once keeps its previous
 * groups at most this long. */
#define SD_READY_WAIT_MS 30000

/* ---- target groups -------------------------------------------------------- */

/* One target of a group: its own labels (__address__ among them). */
typedef struct sd_target {
    label *ls;
    size_t n;
} sd_target;

/* An immutable target group, one allocation, shared by reference. */
typedef struct sd_tg {
    int refs; /* atomic */
    uint64_t hash;
    char *source;
    label *ls; /* the group's labels (meta labels) */
    size_t nls;
    sd_target *t;
    size_t nt;
} sd_tg;

/* Builds a group: labels and targets added one by one (copied), then
 * sd_gb_done.  Out of memory is sticky: sd_gb_done returns NULL. */
typedef struct sd_gb {
    buf strs;   /* the strings, NUL-terminated, as offsets */
    size_t *lv; /* pairs of offsets: the group's labels */
    size_t nl, capl;
    size_t *tv; /* pairs of offsets per target label, targets split by tstart */
    size_t ntl, captl;
    size_t *tstart; /* index in tv (in pairs) where each target starts */
    size_t nt, capt;
    int oom;
} sd_gb;

void sd_gb_init(sd_gb *b);
void sd_gb_free(sd_gb *b);
/* Empties b for the next group (keeps its memory). */
void sd_gb_reset(sd_gb *b);
/* A label of the group (an empty value is left out, as Prometheus does). */
void sd_gb_label(sd_gb *b, const char *name, const char *value);
/* The same with the name prefix + name sanitised to a label name (every
 * character outside [a-zA-Z0-9_] becomes "_"). */
void sd_gb_label_san(sd_gb *b, const char *prefix, const char *name, const char *value);
/* Starts a target with __address__ addr. */
void sd_gb_target(sd_gb *b, const char *addr);
/* A label of the target started last. */
void sd_gb_tlabel(sd_gb *b, const char *name, const char *value);
void sd_gb_tlabel_san(sd_gb *b, const char *prefix, const char *name, const char *value);
/* Marks the last target's labels: sd_gb_copy_last copies them into a new
 * target (the same container's ports, say). */
size_t sd_gb_ntargets(const sd_gb *b);
/* The group (one reference), or NULL when out of memory.  b is reset. */
sd_tg *sd_gb_done(sd_gb *b, const char *source);

sd_tg *sd_tg_ref(sd_tg *g);
void sd_tg_unref(sd_tg *g);

/* A set of groups keyed by source (the SD thread's). */
typedef struct sd_set {
    sd_tg **v; /* open addressing, cap a power of two; NULL empty, SD_TOMB removed */
    size_t cap, n, used;
} sd_set;

void sd_set_free(sd_set *s);
/* Puts g (taking its reference) in place of the group of the same source;
 * 1 when the set changed (a new source or different content), 0 when equal
 * (g is released), KILN_ENOMEM (g released). */
int sd_set_put(sd_set *s, sd_tg *g);
/* The group of source (borrowed), or NULL. */
sd_tg *sd_set_get(const sd_set *s, const char *source);
/* Removes the group of source; 1 when there was one. */
int sd_set_del(sd_set *s, const char *source);
/* Replaces the whole set with gs[0..n) (taking their references): 1 when
 * it changed, 0 when equal, KILN_ENOMEM (the set unchanged, gs released). */
int sd_set_replace(sd_set *s, sd_tg **gs, size_t n);

/* ---- HTTP requests on the SD thread ------------------------------------------ */

typedef struct sd_runtime sd_runtime;
typedef struct sd_req sd_req;

struct sd_req {
    CURL *easy;
    struct curl_slist *hdrs, *connect_to;
    buf body;
    buf hdr; /* the response's header lines */
    long code;
    int active;
    size_t limit; /* of the body; 0: SD_BODY_MAX */
    /* optional: called with each piece of the body as it comes (the body
     * is then not kept); return 0 to go on, nonzero to abort the transfer */
    int (*on_data)(sd_req *r, const char *p, size_t n);
    void (*done)(sd_req *r, CURLcode res); /* the transfer ended (not after sd_req_cancel) */
    void *data;
    char err[256]; /* set by sd_req_error */
};

#define SD_BODY_MAX ((size_t)256 << 20)

/*
 * Starts a GET of url with the client settings h (auth, TLS, proxy); hdrs
 * are extra header lines ("Name: value", NULL-terminated list or NULL);
 * timeout_ms 0: none (a watch).  0, or KILN_ENOMEM / KILN_EINVAL (err in
 * r->err).  r must stay valid until done is called or sd_req_cancel.
 */
KILN_MUST_CHECK int sd_req_start(sd_runtime *rt, sd_req *r, const char *url, const config_http *h,
                                 const char *const *hdrs, int64_t timeout_ms);
/* Ends r's transfer without calling done. */
void sd_req_cancel(sd_runtime *rt, sd_req *r);
/* Frees r's memory (cancel first when active). */
void sd_req_free(sd_runtime *rt, sd_req *r);
/* The failure of a finished request as text ("server returned HTTP status
 * 500", curl's message), or NULL when it answered 200. */
const char *sd_req_error(sd_req *r, CURLcode res);
/* A response header's value seen by the last transfer (NULL when absent). */
const char *sd_req_header(sd_req *r, const char *name);

/* ---- providers ------------------------------------------------------------- */

typedef struct sd_provider sd_provider;

/* What a mechanism does; every hook runs on the SD thread. */
typedef struct sd_ops {
    const char *mechanism; /* "http", "dns", "consul", "kubernetes" */
    /* first called when the provider joins the SD thread; returns 0 or an
     * error (logged; the provider then does nothing) */
    int (*start)(sd_provider *p);
    /* p->due_ms passed */
    void (*tick)(sd_provider *p);
    /* sockets of the provider's own to poll besides curl's (c-ares'); fills
     * fds (at most max) and returns how many; lowers *timeout_ms when it needs
     * a call sooner.  NULL: none. */
    size_t (*poll_fds)(sd_provider *p, struct curl_waitfd *fds, size_t max, int64_t *timeout_ms);
    /* after a poll: fds as filled by poll_fds with their revents */
    void (*poll_done)(sd_provider *p, struct curl_waitfd *fds, size_t n);
    /* frees p->state (cancelling its requests) */
    void (*free)(sd_provider *p);
} sd_ops;

struct sd_provider {
    const sd_ops *ops;
    sd_runtime *rt;
    config *cfg;      /* retained: conf points into it */
    const void *conf; /* the config_*_sd */
    char *job;
    char name[64]; /* "http/0": the mechanism and the index of its config in the job */
    void *state;   /* the mechanism's */
    struct sd_provider *next;

    /* the SD thread's */
    int64_t due_ms; /* when tick is due; INT64_MAX: not */
    sd_set cur;
    int dirty; /* cur changed since the last publish */
    int started;
    size_t fd_off, fd_n; /* its sockets in the thread's poll list */

    /* rt->mu */
    int dead;     /* released by its pool */
    int changed;  /* published since the pool took it */
    int ready;    /* refreshed once, well or not */
    sd_tg **snap; /* the published groups (references) */
    size_t nsnap;
};

/* Publishes p->cur when it changed, and marks p ready (call after each
 * refresh, good or failed). */
void sd_publish(sd_provider *p);
/* Counts a refresh of p's mechanism, failed or not. */
void sd_count_refresh(sd_provider *p, int failed);
/* The runtime's metric families for the mechanisms' own counters. */
metric_child *sd_metric(sd_runtime *rt, const char *family, const char *const *values);

/* The mechanisms (each sd_<name>.c). */
extern const sd_ops sd_http_ops, sd_dns_ops, sd_consul_ops, sd_kube_ops;

/* HTTP SD's answer (a JSON list of static configs) as groups with
 * __meta_url, sources "<url>:<index>": 0 with *out a malloc'd array of n
 * references, or KILN_EINVAL (err says why) / KILN_ENOMEM.  Any thread. */
KILN_MUST_CHECK int sd_http_decode(const char *body, size_t len, const char *url, sd_tg ***out, size_t *n,
                                   kiln_err *err);

/* ---- the runtime (loop thread) --------------------------------------------------- */

/* Starts the SD thread of m; 0 or KILN_ENOMEM / KILN_EIO. */
KILN_MUST_CHECK int sd_runtime_new(scrape_manager *m, sd_runtime **out);
/* Ends the thread and frees every provider left; the async handle is closed
 * (one of m's handles). */
void sd_runtime_stop(sd_runtime *rt);
void sd_runtime_free(sd_runtime *rt);

/* Makes p's providers match sc's *_sd_configs (kept when they are equal to
 * the running ones).  cfg owns sc. */
void sd_setup(scrape_manager *m, pool *p, const scrape_config *sc, config *cfg);
/* Lets go of p's providers and groups (the pool goes away). */
void sd_pool_free(pool *p);
/* Called by the runtime's async on the loop thread: syncs the pools whose
 * providers published, at most every SD_SYNC_MS a pool. */
void sd_on_published(scrape_manager *m);

/* ---- DNS (sd_dns.c) ------------------------------------------------------------ */

#define SD_DNS_MAX_DOMAINS 6

/* What kiln reads of a resolv.conf. */
typedef struct sd_dns_conf {
    char servers[1024]; /* c-ares' host:port list, "127.0.0.1:53,[::1]:5353" */
    size_t nservers;
    char domains[SD_DNS_MAX_DOMAINS][256]; /* search (or domain) */
    size_t ndomains;
    int ndots; /* default 1 */
} sd_dns_conf;

/* Reads resolv.conf text (nameserver with an optional port, search,
 * domain, options ndots:N): 0 or KILN_ENOMEM.  Any thread. */
KILN_MUST_CHECK int sd_dns_resolv(const char *text, sd_dns_conf *out);
/* Adds to b one target per record of type (SRV, A, AAAA, MX, NS) in the DNS
 * answer abuf[0..alen) for name, with its meta labels; port is the config's
 * (not SRV).  0 (an answer without such records adds none), KILN_EINVAL for
 * an answer c-ares cannot read, KILN_ENOMEM.  Any thread. */
KILN_MUST_CHECK int sd_dns_decode(const char *type, const char *name, unsigned port,
                                  const unsigned char *abuf, int alen, sd_gb *b);

/* ---- Consul (sd_consul.c) --------------------------------------------------------- */

/* GET /v1/catalog/services' answer: the services' names and their tag lists
 * (JSON_ARR of strings, or JSON_NULL), in a: 0, KILN_EINVAL (err) or
 * KILN_ENOMEM.  Any thread. */
KILN_MUST_CHECK int sd_consul_services(const char *body, size_t len, arena *a, const char ***names,
                                       const json_val ***tags, size_t *n, kiln_err *err);
/* GET /v1/health/service/<service>'s answer as the service's group (one
 * reference in *out; b is scratch) with Prometheus' meta labels: 0,
 * KILN_EINVAL (err) or KILN_ENOMEM.  Any thread. */
KILN_MUST_CHECK int sd_consul_health(const char *body, size_t len, const char *service, const char *dc,
                                     const char *sep, sd_gb *b, sd_tg **out, kiln_err *err);

/* ---- Kubernetes (sd_kube_roles.c, sd_kubernetes.c) ------------------------------------- */

/* The objects a role's object refers to, looked up in the watched stores:
 * each parses into a and returns the object, or NULL. */
typedef struct sd_kube_ctx {
    const json_val *(*node)(void *data, const char *name, arena *a);
    const json_val *(*service)(void *data, const char *ns, const char *name, arena *a);
    const json_val *(*pod)(void *data, const char *ns, const char *name, arena *a);
    void *data;
    int attach_node; /* attach_metadata.node */
    /* attach_metadata.namespace: the namespace object of that name */
    const json_val *(*ns)(void *data, const char *name, arena *a);
    int attach_namespace;
    /* attach_metadata.deployment, .job and .cronjob (role pod): the pod's
     * controller of that resource ("replicasets", "jobs") */
    const json_val *(*owner)(void *data, const char *resource, const char *ns, const char *name, arena *a);
    int attach_deployment, attach_job, attach_cronjob;
} sd_kube_ctx;

/* The target group of one API object of role (node, pod, service,
 * endpoints, endpointslice, ingress) with Prometheus' meta labels: 0 with
 * *out (one reference), KILN_EINVAL (not an object with metadata.name, or
 * an unknown role) or KILN_ENOMEM.  ctx may be NULL; b is scratch.  Any
 * thread. */
KILN_MUST_CHECK int sd_kube_build(const char *role, const json_val *obj, const sd_kube_ctx *ctx, sd_gb *b,
                                  arena *a, sd_tg **out);
/* The source of role's object ns/name ("pod/ns/name", "node/name"); malloc'd, NULL when out of memory. */
char *sd_kube_source(const char *role, const char *ns, const char *name);
/* obj's controller: its metadata.ownerReferences[] entry with controller
 * true, or NULL. */
const json_val *sd_kube_controller(const json_val *obj);

enum { SD_KUBE_ADDED = 1, SD_KUBE_MODIFIED, SD_KUBE_DELETED, SD_KUBE_BOOKMARK, SD_KUBE_ERROR };

/* One line of a watch stream, {"type": ..., "object": {...}}, parsed into a:
 * 0 with *type (SD_KUBE_*) and *obj; for ERROR, *code is the Status' code
 * (410: the resource version is gone).  KILN_EINVAL (err) for a line that is
 * not an event.  Any thread. */
KILN_MUST_CHECK int sd_kube_event(const char *line, size_t len, arena *a, int *type, const json_val **obj,
                                  long *code, kiln_err *err);

#endif
