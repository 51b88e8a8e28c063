/*
 * v1.h - internal to api/: what the /api/v1 handler files share (v1.c,
 * params.c, query_api.c, metadata.c, tsdb_status.c, admin.c): the handlers'
 * context, the answer envelope, parameter parsing, and route tables.  Names
 * carry the v1_ prefix.
 *
 * Every answer is Prometheus' JSON envelope
 *
 *     {"status":"success","data":<data>[,"warnings":[...]][,"infos":[...]]}
 *     {"status":"error","errorType":"bad_data","error":"..."}
 *
 * with its status codes (400 bad_data, 422 execution, 499 canceled, 503
 * timeout/unavailable, 500 internal) and its error texts, which wrap the
 * cause with the parameter's name: `invalid parameter "start": ...`.
 * Results are written straight into the response body as they are walked:
 * no intermediate copy of a large result is built.  A body that lost an
 * append to out-of-memory is never sent: the server answers 500 instead
 * (api/http.c checks it once, before the answer is written).
 *
 * Threading: the handlers run on worker threads (the HTTP server's query
 * pool for the QUEUED routes, its lookup pool for the LOOKUP routes, libuv's
 * pool for the others), any number at once.  The api_v1 context is
 * read-only after api_v1_new except for the storage, scrape and rules
 * pointers, which are atomic.
 */
#ifndef KILN_API_V1_H
#define KILN_API_V1_H

#include <stdatomic.h>

#include "api/api.h"
#include "query/query.h"
#include "storage/storage.h"

struct api_v1 {
    query_engine engine;
    int enable_admin;
    int max_concurrency;
    size_t read_sample_limit;
    int read_concurrency;
    size_t read_max_frame_bytes;
    storage *_Atomic st;
    api_v1_scrape *_Atomic scrape;           /* NULL until scraping runs */
    _Atomic api_v1_ext_labels_fn ext_labels; /* NULL: no external labels */
    void *ext_labels_data;
    struct rules_manager *_Atomic rules; /* NULL until the rule manager runs */
    query_rcache *rcache;                /* query_range's results cache (query/rcache.c) */
};

/* ---- the envelope (v1.c) ------------------------------------------------ */

/* The warning of an answer cut at its limit parameter. */
#define V1_TRUNCATED "results truncated due to limit"

/* Warnings and infos gathered while answering; strings borrowed. */
typedef struct v1_notes {
    const char *const *w;
    size_t nw;
    const char *const *i;
    size_t ni;
    const char *extra; /* one more warning (truncation) */
} v1_notes;

/* Ends an answer begun with http_resp_json_begin, with the notes (NULL:
 * none) as "warnings" and "infos". */
void v1_end_success(http_resp *resp, const v1_notes *nt);

/* 400 bad_data with the formatted message. */
void v1_bad_data(http_resp *resp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 400 bad_data: `invalid parameter "<param>": <err>`. */
void v1_invalid_param(http_resp *resp, const char *param, const kiln_err *err);
/* 500 internal with msg (err->msg, else the code's name). */
void v1_internal(http_resp *resp, int rc, const kiln_err *err);

/* The data written into b by a scrape view: 500 when rc or the buffer
 * failed, else the success envelope around it.  Frees b. */
void v1_send_buf(http_resp *resp, buf *b, int rc);

/* The storage, or NULL with 503 unavailable answered (the WAL replay is
 * not done yet). */
storage *v1_storage(api_v1 *a, http_resp *resp);

/* A querier over [mint, maxt]; -1 with 500 answered when it cannot open. */
KILN_MUST_CHECK int v1_open_querier(http_resp *resp, storage *st, int64_t mint, int64_t maxt, querier **q);

/* ---- parameters (params.c) ---------------------------------------------- */

/* Each of these returns 0, or -1 when the parameter is bad and the 400
 * answer is written. */

/* The value of a parameter, "" when absent. */
const char *v1_param(http_req *req, const char *name);

/* The time parameter `name`, or def when absent or empty.  Prometheus wraps
 * the cause: `invalid parameter "start": Invalid time value for 'start': ...`. */
KILN_MUST_CHECK int v1_time_param(http_req *req, http_resp *resp, const char *name, int64_t def,
                                  int64_t *out);
/* start and end (absent: Prometheus' MinTime and MaxTime). */
KILN_MUST_CHECK int v1_range_params(http_req *req, http_resp *resp, int64_t *start, int64_t *end);
/* The limit parameter: absent or empty is 0 (no limit). */
KILN_MUST_CHECK int v1_limit_param(http_req *req, http_resp *resp, size_t *out);
/* A non-negative integer parameter (Prometheus' strconv.Atoi), -1 when
 * absent; 0 or below also -1 (no limit). */
KILN_MUST_CHECK int v1_int_param(http_req *req, http_resp *resp, const char *name, long *out);

#define V1_MAX_MATCH_SETS 1024

/* The series selectors of the match[] parameters. */
typedef struct v1_match_sets {
    query_selector sel[V1_MAX_MATCH_SETS];
    size_t n;
} v1_match_sets;

/*
 * Parses every match[] as a series selector (Prometheus' parseMatchersParam)
 * into m (free with v1_match_sets_free once it returned 0).  A parse error
 * is `invalid parameter "match[]": <parse error>` when `wrap` (series,
 * delete_series), the bare parse error otherwise (labels, label values); a
 * set whose matchers all match "" is `match[] must contain at least one
 * non-empty matcher`.
 */
KILN_MUST_CHECK int v1_match_param(http_req *req, http_resp *resp, v1_match_sets *m, int wrap);
/* The same without answering: 0, or KILN_EINVAL with Prometheus' message
 * (unwrapped) in err, or KILN_ENOMEM. */
KILN_MUST_CHECK int v1_match_parse(http_req *req, v1_match_sets *m, kiln_err *err);
void v1_match_sets_free(v1_match_sets *m);

/* ---- routes ------------------------------------------------------------- */

/* One row of a route table (see http_route). */
typedef struct v1_route {
    const char *methods, *path;
    http_handler_fn fn;
    const char *label; /* NULL: the path */
    unsigned flags;
} v1_route;

/* Registers the n routes of the table with a as their data (v1.c). */
KILN_MUST_CHECK int v1_register_routes(http_server *s, api_v1 *a, const v1_route *r, size_t n);

/* Each handler file registers its routes (api_v1_register calls them). */
KILN_MUST_CHECK int v1_register_query(http_server *s, api_v1 *a);     /* query_api.c */
KILN_MUST_CHECK int v1_register_metadata(http_server *s, api_v1 *a);  /* metadata.c */
KILN_MUST_CHECK int v1_register_tsdb(http_server *s, api_v1 *a);      /* tsdb_status.c */
KILN_MUST_CHECK int v1_register_admin(http_server *s, api_v1 *a);     /* admin.c */
KILN_MUST_CHECK int v1_register_federate(http_server *s, api_v1 *a);  /* federate.c */
KILN_MUST_CHECK int v1_register_read(http_server *s, api_v1 *a);      /* remoteread.c */
KILN_MUST_CHECK int v1_register_exemplars(http_server *s, api_v1 *a); /* exemplars.c */

#define V1_ROUTES(table) (table), sizeof(table) / sizeof((table)[0])

#endif
