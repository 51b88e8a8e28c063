/*
 * remote_int.h - what remote/'s files share (private to them):
 *
 *   wire.c      prometheus.WriteRequest (remote write 1.0) encoding, snappy
 *   queue.c     one remote_write queue: series cache, shards, sending, progress
 *   remote.c    the sender thread, its libcurl multi handle, reloads, metrics
 *   http.c      an endpoint's HTTP client settings on a libcurl handle
 *   readwire.c  remote read's ReadRequest and ReadResponse bytes
 *   read.c      the remote read client (remote_read), a storage_source
 *
 * Threading: a queue belongs to the sender thread; the read client runs on
 * the query threads that ask it.
 */
#ifndef KILN_REMOTE_REMOTE_INT_H
#define KILN_REMOTE_REMOTE_INT_H

#include <stdint.h>

#include "remote/remote.h"

/* ---- wire.c ---------------------------------------------------------------- */

/* Appends the TimeSeries' repeated `labels` fields for ls[0..n) (each a
 * prometheus.Label) to out: what a series contributes to every sample sent. */
void wire_labels(buf *out, const label *ls, size_t n);

/* Appends one WriteRequest.timeseries entry: the encoded labels and one
 * sample. */
void wire_timeseries(buf *out, const uint8_t *labels, size_t len, int64_t t, double v);

/* Appends one WriteRequest.metadata entry (a MetricMetadata): the family's
 * name, its type by the exposition's word ("counter", ...; another word is
 * UNKNOWN), help and unit (NULL or "" left out).  0 or KILN_ENOMEM. */
KILN_MUST_CHECK int wire_metadata(buf *out, const char *family, const char *type, const char *help,
                                  const char *unit);

/* Appends a native histogram sample as a Histogram message's fields (the
 * same in 1.0 and 2.0): integer counts as deltas, float ones absolute.  0 or
 * KILN_ENOMEM. */
KILN_MUST_CHECK int wire_histogram(buf *out, const histogram *h, int64_t t);

/* Appends one WriteRequest.timeseries entry with one histogram sample (h:
 * wire_histogram's bytes). */
void wire_timeseries_hist(buf *out, const uint8_t *labels, size_t len, const uint8_t *h, size_t hlen);

/* Appends one WriteRequest.timeseries entry with one exemplar: the
 * series' labels, the exemplar's (wire_labels' bytes), its value and time. */
void wire_timeseries_exemplar(buf *out, const uint8_t *labels, size_t len, const uint8_t *elabels,
                              size_t elen, int64_t t, double v);

/* Replaces raw's bytes by their snappy block compression (scratch is
 * reused); 0 or KILN_ENOMEM. */
KILN_MUST_CHECK int wire_snappy(buf *raw, buf *scratch);

/*
 * A remote write 2.0 request (io.prometheus.write.v2.Request) being built:
 * its symbols table (strings interned once a request, "" first) and its
 * TimeSeries, one sample each, whose labels come as wire_labels' bytes.
 */
typedef struct wire_v2_sym {
    const uint8_t *p; /* borrowed from the labels given, valid for the request */
    size_t n;
    uint32_t ref;
} wire_v2_sym;

typedef struct wire_v2 {
    wire_v2_sym *tab; /* open addressing, cap a power of two */
    size_t cap, nsyms;
    buf symbols, series, refs, xrefs, xmsg, md;
    int oom;
} wire_v2;

/* A series' metadata in 2.0 (metadata_config): Metadata.MetricType (0
 * unspecified, 1 counter, 2 gauge, 3 histogram, 4 gaugehistogram, 5
 * summary, 6 info, 7 stateset), help and unit (NULL or "" left out; borrowed
 * until wire_v2_finish). */
typedef struct wire_v2_meta {
    int type;
    const char *help, *unit;
} wire_v2_meta;

/* Starts a new request (w zeroed at first). */
void wire_v2_reset(wire_v2 *w);
/* One TimeSeries: labels (wire_labels' bytes, kept until wire_v2_finish) and
 * a sample, or (h not NULL) a histogram sample's wire_histogram bytes, with
 * md's metadata (md NULL: none). */
void wire_v2_timeseries(wire_v2 *w, const uint8_t *labels, size_t len, int64_t t, double v, const uint8_t *h,
                        size_t hlen, const wire_v2_meta *md);
/* One TimeSeries with one exemplar: the series' labels and the exemplar's
 * (both wire_labels' bytes, kept until wire_v2_finish), its value and time. */
void wire_v2_exemplar(wire_v2 *w, const uint8_t *labels, size_t len, const uint8_t *elabels, size_t elen,
                      int64_t t, double v, const wire_v2_meta *md);
/* The request's bytes into out (replacing them); out's sticky out-of-memory
 * tells a failure. */
void wire_v2_finish(wire_v2 *w, buf *out);
void wire_v2_free(wire_v2 *w);

/* A length-delimited protobuf field (tag < 128): tag, length, bytes. */
void wire_bytes(buf *out, uint8_t tag, const void *p, size_t n);

/* ---- http.c ---------------------------------------------------------------- */

/* An endpoint's credentials, read once when it starts. */
typedef struct rhttp_creds {
    buf user, pass; /* basic_auth, NUL-terminated */
    buf auth;       /* "Authorization: <type> <credentials>" */
} rhttp_creds;

/* Reads h's credentials (their files too) into c (zeroed first by the
 * caller); a file that cannot be read is logged (what names the component). */
void rhttp_creds_load(rhttp_creds *c, const config_http *h, const char *what, const char *url);
void rhttp_creds_free(rhttp_creds *c);

typedef struct rhttp_endpoint {
    const char *url;
    const config_http *http;
    const config_label *headers;
    size_t nheaders;
    int64_t timeout_ms; /* remote_timeout (0: 30 s) */
} rhttp_endpoint;

/* Sets up easy handle e for ep: the fixed[0..nfixed) header lines, the
 * credentials, `headers`, TLS, proxy, redirects, HTTP version, timeout,
 * User-Agent, URL.  *headers and *connect_to are lists the caller frees
 * once the handle is done.  0, KILN_ENOMEM, or KILN_EINVAL (a url libcurl
 * cannot parse). */
KILN_MUST_CHECK int rhttp_setup(void *e, const rhttp_endpoint *ep, const rhttp_creds *cr,
                                const char *const *fixed, size_t nfixed, struct curl_slist **headers,
                                struct curl_slist **connect_to);

/* ---- readwire.c ------------------------------------------------------------ */

/* Appends a ReadRequest of one query (ms over [mint, maxt], hints with the
 * same range) accepting the STREAMED_XOR_CHUNKS response, then SAMPLES;
 * buf's sticky out-of-memory. */
void rr_encode_request(buf *out, const matcher *ms, size_t nms, int64_t mint, int64_t maxt);

/* Decodes a ReadResponse (after snappy) p[0..n): each TimeSeries becomes a
 * series appended to *v (grown with array_grow, *nv used of *cap), its
 * strings and samples in a, labels named in drop[0..ndrop) and empty ones
 * removed, labels sorted and checked, samples sorted by time.  0,
 * KILN_EINVAL (err says what is wrong) or KILN_ENOMEM. */
KILN_MUST_CHECK int rr_decode_response(const uint8_t *p, size_t n, const char *const *drop, size_t ndrop,
                                       arena *a, series **v, size_t *nv, size_t *cap, kiln_err *err);

/* The same for a STREAMED_XOR_CHUNKS answer p[0..n) (frames, not
 * compressed): a series split over frames is joined; a frame whose CRC32C
 * does not match is KILN_EINVAL. */
KILN_MUST_CHECK int rr_decode_chunked(const uint8_t *p, size_t n, const char *const *drop, size_t ndrop,
                                      arena *a, series **v, size_t *nv, size_t *cap, kiln_err *err);

/* ---- queue.c --------------------------------------------------------------- */

typedef struct rw_queue rw_queue;

/* The metric children of a queue (remote.c creates and removes them). */
typedef struct rw_metrics {
    metric_child *samples, *failed, *retried, *dropped, *pending, *highest_in, *highest_sent, *shards,
        *shards_desired, *shards_min, *shards_max, *bytes, *duration, *metadata, *metadata_failed,
        *metadata_bytes;
} rw_metrics;

/* A queue for cfg (borrowed: the caller keeps the configuration alive) with
 * the global external labels ext[0..next), its progress under
 * <data_dir>/remote/<key>/.  multi is the sender's libcurl multi handle. */
KILN_MUST_CHECK int rw_queue_new(const config_remote_write *cfg, const config_label *ext, size_t next,
                                 const remote_options *o, void *multi, const rw_metrics *m, rw_queue **out,
                                 kiln_err *err);

/* One round on the sender thread: reads the WAL while the shards have
 * room, starts the batches that are due; returns how long the thread may
 * wait (ms) before the next round. */
int64_t rw_queue_step(rw_queue *q, int64_t now_ms);

/* A transfer of this queue completed (handle e, curl code, HTTP status). */
void rw_queue_done(rw_queue *q, void *e, int curl_code, long status, int64_t now_ms);

/* Whether libcurl handle e belongs to q. */
int rw_queue_owns(const rw_queue *q, void *e);

const config_remote_write *rw_queue_config(const rw_queue *q);

/* The newest sample time the receiver acknowledged (0: none yet). */
int64_t rw_queue_highest_sent(const rw_queue *q);

/* After a reload that kept the queue: the equal configuration it borrows
 * from now on (libcurl holds copies of what it was given). */
void rw_queue_rebind(rw_queue *q, const config_remote_write *cfg, const config_label *ext);

/* Writes the progress, removes the transfers from the multi handle, frees. */
void rw_queue_free(rw_queue *q);

/*
 * The shard count Prometheus' calculateDesiredShards arrives at: the
 * seconds a sample takes to send (out_secs_rate / out_rate) times the rate
 * samples come in plus 5% of the backlog (lag_s seconds of input) a second;
 * cur unless that differs by more than 30%; within min..max, at least 1.
 * Rates are per second (EWMA); out_rate 0 keeps cur.
 */
size_t rw_shards_desired(size_t cur, size_t min, size_t max, double in_rate, double out_rate,
                         double out_secs_rate, double lag_s);

/* Whether a shard holding n samples, the oldest queued at oldest_ms, sends
 * a batch now: it holds max_send, or is full, or the deadline passed. */
int rw_batch_due(size_t n, size_t max_send, size_t capacity, int64_t oldest_ms, int64_t deadline_ms,
                 int64_t now_ms);

/* The backoff after one of cur ms: doubled, at most max (30 ms after 0). */
int64_t rw_backoff_next(int64_t cur, int64_t max);

/* The directory name of a queue's progress: a hash of its url and name. */
void rw_queue_key(const config_remote_write *cfg, char out[17]);

#endif
