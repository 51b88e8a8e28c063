/*
 * remotewrite.c - the remote write 1.0 receiver, POST /api/v1/write.
 *
 * A request body is a snappy *block* (not framed) holding a protobuf
 * WriteRequest (api/remote.proto).  One request goes through three steps:
 *
 *   1. decompress   snappy_uncompressed_length() first: a body claiming more
 *                   than max_decompressed_bytes gets 413 before anything is
 *                   allocated; the output goes to one malloc'd buffer.
 *   2. decode       protobuf-c unpacks into the request arena through a bump
 *                   allocator (no malloc per field), bounded at
 *                   RW_DECODE_FACTOR times the decompressed size; then each
 *                   series is validated into a batch (labels checked in one
 *                   pass, empty values dropped, bad series set aside with the
 *                   reason of the first).
 *   3. append       every sample of the valid series into one storage
 *                   appender, then one commit (one WAL write) before the ack.
 *
 * Answers, as the spec and Prometheus want them:
 *
 *   | outcome                                            | status        |
 *   |----------------------------------------------------|---------------|
 *   | all samples stored (or nothing to store)            | 204           |
 *   | not snappy, not protobuf                            | 400           |
 *   | a series with bad labels (unsorted, duplicate,      | 400, the rest |
 *   |   empty or invalid name, no __name__, bad UTF-8)    |   is stored   |
 *   | samples out of order / duplicate / out of bounds    | 400, the rest |
 *   |   (against the head or earlier in the request; a    |   is stored   |
 *   |   sample over STORAGE_MAX_FUTURE_MS ahead: bounds)  |               |
 *   | decompressed body or decoded size over the bound    | 413           |
 *   | Content-Encoding not snappy, remote write 2.0 type  | 415           |
 *   | kiln failed (out of memory, WAL error)              | 500: retry    |
 *
 * A 400 body is one line naming the first rejected series and the count of
 * rejected samples.  Stale markers (NaN 0x7ff0000000000002, or a histogram
 * whose sum is that NaN) are stored as sent.  Native histograms (1.0's and
 * 2.0's Histogram, integer or float) go to appender_append_histogram as
 * absolute counts (rw_histogram turns the deltas of an integer one into
 * counts), after a series' float samples, under the same rules (out of
 * order, duplicate, out of bounds; an invalid histogram is rejected like bad
 * labels).  Exemplars (1.0's, and 2.0's resolved into the 1.0 shape) are
 * staged with their series' samples, so they reach the WAL and exemplar
 * storage with them (dropped and counted when exemplar storage is off);
 * metadata is counted.
 *
 * Called by cmd/kiln/main.c (remotewrite_new, remotewrite_free) and by the
 * HTTP server for POST /api/v1/write (remotewrite_handle, through main.c's
 * route, which answers 503 until the WAL replay is done).
 *
 * Threading: remotewrite_handle runs on HTTP worker threads, any number at
 * once; the receiver is read-only after remotewrite_new and the metrics are
 * atomic.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "api/remote.pb-c.h"
#include "storage/storage.h"

/* Decode memory bound: decoded structs are larger than their wire form (a
 * 2-byte empty Label becomes a pointer and a 56-byte struct); real requests
 * stay under 8x, this leaves room and still bounds hostile input. */
#define RW_DECODE_FACTOR 16
#define RW_DECODE_SLACK ((size_t)1 << 20)
#define RW_CHUNK ((size_t)256 << 10)
/* Per worker thread, the decode memory and the decompression buffer of one
 * request are kept for the next (no page faults, no zeroing) up to: */
#define RW_CACHE_SLAB_MAX ((size_t)4 << 20)
#define RW_CACHE_RAW_MAX ((size_t)2 << 20)

/* Response messages: one line, bounded whatever the input. */
#define RW_MSG_MAX 1024
#define RW_SERIES_SHOW_LABELS 12
#define RW_SERIES_SHOW_VALUE 96

enum { RW_CODE_204, RW_CODE_400, RW_CODE_404, RW_CODE_413, RW_CODE_415, RW_CODE_500, RW_NCODES };
static const char *const rw_code_names[RW_NCODES] = {"204", "400", "404", "413", "415", "500"};
static const int rw_code_status[RW_NCODES] = {204, 400, 404, 413, 415, 500};

enum { RW_REJ_INVALID, RW_REJ_ORDER, RW_REJ_DUPLICATE, RW_REJ_BOUNDS, RW_NREJ };
static const char *const rw_rej_names[RW_NREJ] = {"invalid_labels", "out_of_order", "duplicate",
                                                  "out_of_bounds"};

struct remotewrite {
    storage *st;
    remotewrite_opts opts;
    metric_child *requests[RW_NCODES];
    metric_child *rejected[RW_NREJ];
    metric_child *received;
    metric_child *exemplars_dropped;
    metric_child *histograms_received;
    metric_child *metadata_received;
    metric_child *decode_seconds;
};

/* ---- a bump allocator for protobuf-c on the request arena ---------------- */

enum { RW_OVER_LIMIT = 1, RW_OVER_NOMEM = 2 };

typedef struct rw_alloc {
    arena *a;
    char *cur;
    size_t left;
    size_t taken; /* bytes of the thread's slab and of chunks taken from the arena */
    size_t used;  /* bytes handed out */
    size_t limit;
    int over; /* an allocation failed: RW_OVER_LIMIT or RW_OVER_NOMEM */
} rw_alloc;

/*
 * Every allocation gets one byte more, set to 0: protobuf-c copies a `bytes`
 * field into an allocation of exactly its length, so the byte after it makes
 * the label strings NUL-terminated without another copy.
 */
static void *rw_alloc_fn(void *data, size_t n) {
    rw_alloc *al = data;
    if (n > al->limit) {
        al->over = RW_OVER_LIMIT;
        return NULL;
    }
    size_t need = (n + 1 + 7) & ~(size_t)7;
    if (need > al->left) {
        size_t chunk = need > RW_CHUNK ? need : RW_CHUNK;
        if (chunk > al->limit - al->taken) {
            if (need > al->limit - al->taken) {
                al->over = RW_OVER_LIMIT;
                return NULL;
            }
            chunk = need;
        }
        char *c = arena_alloc(al->a, chunk);
        if (!c) {
            al->over = RW_OVER_NOMEM;
            return NULL;
        }
        al->taken += chunk;
        al->cur = c;
        al->left = chunk;
    }
    char *p = al->cur;
    al->cur += need;
    al->left -= need;
    al->used += need;
    p[n] = 0;
    return p;
}

static void rw_free_fn(void *data, void *p) {
    (void)data, (void)p; /* the arena frees everything with the request */
}

/*
 * A worker thread's memory kept between requests: the slab the allocator
 * starts from (then it takes chunks from the request arena), and the buffer
 * snappy decompresses into.  Freed when the thread exits.
 */
typedef struct rw_cache {
    char *slab;
    size_t slab_cap;
    char *raw;
    size_t raw_cap;
} rw_cache;

static pthread_key_t rw_cache_key;
static pthread_once_t rw_cache_once = PTHREAD_ONCE_INIT;
static int rw_cache_ok;

static void rw_cache_destroy(void *p) {
    rw_cache *c = p;
    free(c->slab);
    free(c->raw);
    free(c);
}

static void rw_cache_init(void) {
    rw_cache_ok = pthread_key_create(&rw_cache_key, rw_cache_destroy) == 0;
}

/* This thread's cache, or NULL (out of memory: requests then use the arena only). */
static rw_cache *rw_cache_get(void) {
    pthread_once(&rw_cache_once, rw_cache_init);
    if (!rw_cache_ok)
        return NULL;
    rw_cache *c = pthread_getspecific(rw_cache_key);
    if (!c && (c = calloc(1, sizeof *c)) && pthread_setspecific(rw_cache_key, c) != 0) {
        free(c);
        c = NULL;
    }
    return c;
}

/* Grows the slab to what the last request needed, within the bound; called
 * when nothing of that request is in use any more. */
static void rw_cache_fit(rw_cache *c, size_t used) {
    if (!c || used <= c->slab_cap || c->slab_cap == RW_CACHE_SLAB_MAX)
        return;
    size_t cap = used + used / 4;
    if (cap > RW_CACHE_SLAB_MAX)
        cap = RW_CACHE_SLAB_MAX;
    char *p = malloc(cap);
    if (!p)
        return;
    free(c->slab);
    c->slab = p;
    c->slab_cap = cap;
}

/* ---- one-line messages ----------------------------------------------------- */

typedef struct rw_msg {
    char s[RW_MSG_MAX];
    size_t n;
} rw_msg;

static void msg_putn(rw_msg *m, const char *s, size_t n) {
    size_t room = sizeof m->s - 1 - m->n;
    if (n > room)
        n = room;
    memcpy(m->s + m->n, s, n);
    m->n += n;
    m->s[m->n] = 0;
}

static void msg_puts(rw_msg *m, const char *s) {
    msg_putn(m, s, strlen(s));
}

static void msg_printf(rw_msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg_printf(rw_msg *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = sizeof m->s - m->n;
    int k = vsnprintf(m->s + m->n, room, fmt, ap);
    va_end(ap);
    if (k > 0)
        m->n += (size_t)k < room ? (size_t)k : room - 1;
}

/*
 * Appends s[0..n) quoted, at most max bytes of it: quotes, backslashes and
 * control bytes escaped; bytes >= 0x80 kept when the string is valid UTF-8
 * (cut on a character boundary), else escaped as \xHH.
 */
static void msg_quoted(rw_msg *m, const char *s, size_t n, size_t max) {
    static const char hex[] = "0123456789abcdef";
    int utf8 = utf8_valid(s, n);
    size_t show = n;
    if (show > max) {
        show = max;
        while (utf8 && show > 0 && ((unsigned char)s[show] & 0xC0) == 0x80)
            show--;
    }
    msg_putn(m, "\"", 1);
    for (size_t i = 0; i < show; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            msg_putn(m, e, 2);
        } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) {
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            msg_putn(m, e, 4);
        } else {
            msg_putn(m, (const char *)&c, 1);
        }
    }
    msg_putn(m, "\"", 1);
    if (show < n)
        msg_printf(m, "...(%zu bytes)", n);
}

static const char *bin_str(const ProtobufCBinaryData *b) {
    return b->data ? (const char *)b->data : "";
}

/* Appends a series like Prometheus prints it: {__name__="up", job="x"}. */
static void msg_series(rw_msg *m, Kiln__Remote__Label *const *ls, size_t n) {
    msg_putn(m, "{", 1);
    for (size_t i = 0; i < n && i < RW_SERIES_SHOW_LABELS; i++) {
        if (i)
            msg_putn(m, ", ", 2);
        const ProtobufCBinaryData *nm = &ls[i]->name, *v = &ls[i]->value;
        if (nm->len && label_name_valid(bin_str(nm), nm->len))
            msg_putn(m, bin_str(nm), nm->len);
        else
            msg_quoted(m, bin_str(nm), nm->len, 64);
        msg_putn(m, "=", 1);
        msg_quoted(m, bin_str(v), v->len, RW_SERIES_SHOW_VALUE);
    }
    if (n > RW_SERIES_SHOW_LABELS)
        msg_printf(m, ", ...%zu more labels", n - RW_SERIES_SHOW_LABELS);
    msg_putn(m, "}", 1);
}

/* ---- validation ------------------------------------------------------------ */

/* Word-at-a-time ASCII check before the full UTF-8 decoder. */
static int rw_utf8_valid(const char *s, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull)
            return utf8_valid(s + i, n - i);
    }
    for (; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return utf8_valid(s + i, n - i);
    return 1;
}

/* Byte-wise order of two names, like Go's string comparison. */
static int name_cmp(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b) {
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->data, b->data, n) : 0;
    if (c)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

/*
 * Checks the labels of one series and fills out[] (room for ts->n_labels)
 * with the non-empty ones, in order (a NUL byte in a value as C0 80, in
 * memory from al).  Returns the count, -1 with the reason in why, or -2
 * when al is out of memory.
 */
static long series_labels(const Kiln__Remote__TimeSeries *ts, label *out, rw_alloc *al, rw_msg *why) {
    size_t n = ts->n_labels, k = 0;
    int has_name = 0;
    if (n == 0) {
        msg_puts(why, "series without labels");
        return -1;
    }
    if (n > LABELS_MAX_COUNT) {
        msg_printf(why, "%zu labels, more than the limit of %d", n, LABELS_MAX_COUNT);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const ProtobufCBinaryData *nm = &ts->labels[i]->name, *v = &ts->labels[i]->value;
        const char *name = bin_str(nm), *value = bin_str(v);
        if (nm->len == 0) {
            msg_puts(why, "empty label name");
            return -1;
        }
        if (nm->len > LABEL_NAME_MAX_LEN) {
            msg_printf(why, "label name of %zu bytes, more than the limit of %d", nm->len,
                       LABEL_NAME_MAX_LEN);
            return -1;
        }
        if (!label_name_valid(name, nm->len)) {
            msg_puts(why, "invalid label name ");
            msg_quoted(why, name, nm->len, 64);
            return -1;
        }
        if (i > 0) {
            int c = name_cmp(&ts->labels[i - 1]->name, nm);
            if (c == 0) {
                msg_printf(why, "duplicate label name \"%s\"", name);
                return -1;
            }
            if (c > 0) {
                msg_printf(why, "labels not sorted by name: \"%s\" before \"%s\"",
                           bin_str(&ts->labels[i - 1]->name), name);
                return -1;
            }
        }
        if (v->len > LABEL_VALUE_MAX_LEN) {
            msg_printf(why, "value of label \"%s\" is %zu bytes, more than the limit of %d", name, v->len,
                       LABEL_VALUE_MAX_LEN);
            return -1;
        }
        if (!rw_utf8_valid(value, v->len)) {
            msg_printf(why, "invalid UTF-8 in the value of label \"%s\"", name);
            return -1;
        }
        if (nm->len == sizeof LABEL_NAME - 1 && !memcmp(name, LABEL_NAME, nm->len)) {
            if (v->len == 0)
                break; /* reported as missing below */
            if (!metric_name_valid(value, v->len)) {
                msg_puts(why, "invalid metric name ");
                msg_quoted(why, value, v->len, RW_SERIES_SHOW_VALUE);
                return -1;
            }
            has_name = 1;
        }
        if (v->len == 0)
            continue; /* an empty value means the label is absent */
        out[k].name = name;
        out[k].value = value;
        if (memchr(value, 0, v->len)) { /* a NUL byte: C0 80 inside kiln (util/strnul.c) */
            char *c = rw_alloc_fn(al, nul_in_len(value, v->len) + 1);
            if (!c)
                return -2;
            c[nul_in(c, value, v->len)] = 0;
            out[k].value = c;
        }
        k++;
    }
    if (!has_name) {
        msg_puts(why, "missing metric name (__name__ label)");
        return -1;
    }
    return (long)k;
}

/* ---- the batch --------------------------------------------------------------- */

typedef struct rw_series {
    const label *ls;
    size_t nls;
    Kiln__Remote__Sample *const *samples;
    size_t nsamples;
    histogram *hists; /* converted; NULL where the message was invalid */
    const char **hist_why;
    Kiln__Remote__Histogram *const *hraw;
    size_t nhists;
    Kiln__Remote__Label *const *raw; /* for messages */
    size_t nraw;
    Kiln__Remote__Exemplar *const *exemplars; /* 2.0's in the 1.0 shape (v2_series) */
    size_t nexemplars;
} rw_series;

typedef struct rw_batch {
    rw_series *v; /* the valid series, in request order */
    size_t n;
    size_t samples;         /* in the whole request */
    size_t invalid_samples; /* in series with bad labels */
    size_t invalid_histograms;
    size_t exemplars, histograms, metadata;
    rw_msg first; /* the first problem, empty when none */
} rw_batch;

/*
 * One side of a remote write histogram into absolute counts: the deltas of
 * an integer histogram summed, a float one's counts as they are.  Returns
 * the count array (from al; NULL for none), or sets *why.
 */
static double *rw_side(rw_alloc *al, Kiln__Remote__BucketSpan *const *sp, size_t nsp, const int64_t *deltas,
                       size_t nd, const double *counts, size_t nc, int is_int, hist_span **spans,
                       uint32_t *nspans, uint32_t *n, const char **why) {
    uint64_t want = 0;
    *spans = NULL;
    *nspans = *n = 0;
    if (nsp && !(*spans = rw_alloc_fn(al, nsp * sizeof **spans)))
        return NULL;
    for (size_t i = 0; i < nsp; i++) {
        (*spans)[i].offset = sp[i]->offset;
        (*spans)[i].length = sp[i]->length;
        want += sp[i]->length;
    }
    *nspans = (uint32_t)nsp;
    size_t have = is_int ? nd : nc;
    if (want != have || (is_int ? nc : nd) != 0) {
        *why = is_int ? "histogram spans and deltas disagree (or counts given in an integer histogram)"
                      : "histogram spans and counts disagree (or deltas given in a float histogram)";
        return NULL;
    }
    if (!have)
        return NULL;
    double *out = rw_alloc_fn(al, have * sizeof *out);
    if (!out)
        return NULL;
    int64_t abs = 0;
    for (size_t i = 0; i < have; i++) {
        if (is_int) {
            abs = (int64_t)((uint64_t)abs + (uint64_t)deltas[i]); /* Go's wrapping int64 sum */
            out[i] = (double)abs;
        } else {
            out[i] = counts[i];
        }
    }
    *n = (uint32_t)have;
    return out;
}

/*
 * A remote write Histogram (1.0 and 2.0 share it) into h, with memory from
 * al: 0, -1 with *why for a histogram that cannot be one (spans that do not
 * match the buckets), or -2 when al ran out (al->over says why).
 */
static int rw_histogram(rw_alloc *al, const Kiln__Remote__Histogram *hp, histogram *h, const char **why) {
    memset(h, 0, sizeof *h);
    int is_int = hp->count_case != KILN__REMOTE__HISTOGRAM__COUNT_COUNT_FLOAT;
    h->schema = hp->schema;
    h->hint =
        hp->reset_hint >= 0 && (int)hp->reset_hint <= (int)HIST_HINT_GAUGE ? (uint8_t)hp->reset_hint : 0;
    h->is_int = (uint8_t)is_int;
    h->zero_threshold = hp->zero_threshold;
    h->count = is_int ? (double)hp->count_int : hp->count_float;
    h->zero_count = hp->zero_count_case == KILN__REMOTE__HISTOGRAM__ZERO_COUNT_ZERO_COUNT_FLOAT
                        ? hp->zero_count_float
                        : (double)(hp->zero_count_case == KILN__REMOTE__HISTOGRAM__ZERO_COUNT_ZERO_COUNT_INT
                                       ? hp->zero_count_int
                                       : 0);
    h->sum = hp->sum;
    *why = NULL;
    h->pos = rw_side(al, hp->positive_spans, hp->n_positive_spans, hp->positive_deltas, hp->n_positive_deltas,
                     hp->positive_counts, hp->n_positive_counts, is_int, &h->pos_spans, &h->npos_spans,
                     &h->npos, why);
    if (!*why && !al->over)
        h->neg = rw_side(al, hp->negative_spans, hp->n_negative_spans, hp->negative_deltas,
                         hp->n_negative_deltas, hp->negative_counts, hp->n_negative_counts, is_int,
                         &h->neg_spans, &h->nneg_spans, &h->nneg, why);
    if (al->over)
        return -2;
    if (*why)
        return -1;
    h->custom_values = hp->custom_values;
    h->ncustom = (uint32_t)hp->n_custom_values;
    return 0;
}

KILN_MUST_CHECK static int decode_mem_error(const rw_alloc *al, rw_msg *msg) {
    if (al->over == RW_OVER_LIMIT) {
        msg_printf(msg, "decoding the request needs more than %zu bytes of memory", al->limit);
        return KILN_ELIMIT;
    }
    msg_puts(msg, "out of memory decoding the request");
    return KILN_ENOMEM;
}

/*
 * Decompresses and decodes body into b, all memory from al (set up by the
 * caller with the request arena and maybe the thread's slab) and the
 * thread's buffer or a temporary one.  Returns 0 (b may still hold invalid
 * series), KILN_EINVAL (400), KILN_ELIMIT (413) or KILN_ENOMEM, with msg set.
 */
/*
 * Remote write 2.0: resolves each series' label references through the
 * symbols table into the 1.0 shape (Label messages) that the rest of the
 * receiver checks and appends, with memory from al.  The samples and
 * histograms are the same messages in both.  Returns 0 with *out and *n, or
 * KILN_EINVAL (a reference outside the table, an odd count, a table whose
 * first symbol is not empty: 400, nothing stored) / the allocator's error.
 */
/* Resolves nl pairs of label references (name, value) of series i into
 * Label messages from al (*out; NULL for none). */
KILN_MUST_CHECK static int v2_labels(const Kiln__Remote__V2Request *r, const uint32_t *refs, size_t nl,
                                     rw_alloc *al, Kiln__Remote__Label ***out, size_t i, rw_msg *msg) {
    Kiln__Remote__Label **lp = nl ? rw_alloc_fn(al, nl * sizeof *lp) : NULL;
    Kiln__Remote__Label *lv = nl ? rw_alloc_fn(al, nl * sizeof *lv) : NULL;
    if (nl && (!lp || !lv))
        return decode_mem_error(al, msg);
    for (size_t k = 0; k < nl; k++) {
        uint32_t nr = refs[2 * k], vr = refs[2 * k + 1];
        if (nr >= r->n_symbols || vr >= r->n_symbols) {
            msg_printf(msg,
                       "invalid remote write 2.0 request: series %zu refers to symbol %u, beyond the "
                       "table's %zu",
                       i, nr >= r->n_symbols ? nr : vr, r->n_symbols);
            return KILN_EINVAL;
        }
        kiln__remote__label__init(&lv[k]);
        lv[k].name = r->symbols[nr];
        lv[k].value = r->symbols[vr];
        lp[k] = &lv[k];
    }
    *out = lp;
    return 0;
}

KILN_MUST_CHECK static int v2_series(const Kiln__Remote__V2Request *r, rw_alloc *al,
                                     Kiln__Remote__TimeSeries ***out, size_t *n, size_t *metadata,
                                     rw_msg *msg) {
    int rc;
    *n = 0;
    if (r->n_timeseries == 0)
        return 0;
    if (r->n_symbols == 0 || r->symbols[0].len != 0) {
        msg_puts(msg, "invalid remote write 2.0 request: symbols[0] must be the empty string");
        return KILN_EINVAL;
    }
    Kiln__Remote__TimeSeries **v = rw_alloc_fn(al, r->n_timeseries * sizeof *v);
    if (!v)
        return decode_mem_error(al, msg);
    for (size_t i = 0; i < r->n_timeseries; i++) {
        const Kiln__Remote__V2TimeSeries *ts = r->timeseries[i];
        if (ts->n_labels_refs % 2) {
            msg_printf(
                msg,
                "invalid remote write 2.0 request: series %zu has an odd number (%zu) of label references", i,
                ts->n_labels_refs);
            return KILN_EINVAL;
        }
        size_t nl = ts->n_labels_refs / 2;
        Kiln__Remote__TimeSeries *t = rw_alloc_fn(al, sizeof *t);
        Kiln__Remote__Label **lp = NULL;
        if (!t)
            return decode_mem_error(al, msg);
        kiln__remote__time_series__init(t);
        if ((rc = v2_labels(r, ts->labels_refs, nl, al, &lp, i, msg)) != 0)
            return rc;
        t->n_labels = nl;
        t->labels = lp;
        t->n_samples = ts->n_samples;
        t->samples = ts->samples;
        t->n_histograms = ts->n_histograms;
        t->histograms = ts->histograms;
        if (ts->n_exemplars) {
            /* in the 1.0 shape too: staged with the samples (rw_stage_exemplars) */
            Kiln__Remote__Exemplar **xp = rw_alloc_fn(al, ts->n_exemplars * sizeof *xp);
            Kiln__Remote__Exemplar *xv = rw_alloc_fn(al, ts->n_exemplars * sizeof *xv);
            if (!xp || !xv)
                return decode_mem_error(al, msg);
            for (size_t k = 0; k < ts->n_exemplars; k++) {
                const Kiln__Remote__V2Exemplar *x = ts->exemplars[k];
                kiln__remote__exemplar__init(&xv[k]);
                if (x->n_labels_refs % 2) {
                    msg_printf(msg,
                               "invalid remote write 2.0 request: exemplar %zu of series %zu has an odd "
                               "number (%zu) of label references",
                               k, i, x->n_labels_refs);
                    return KILN_EINVAL;
                }
                if ((rc = v2_labels(r, x->labels_refs, x->n_labels_refs / 2, al, &xv[k].labels, i, msg)) != 0)
                    return rc;
                xv[k].n_labels = x->n_labels_refs / 2;
                xv[k].value = x->value;
                xv[k].timestamp = x->timestamp;
                xp[k] = &xv[k];
            }
            t->exemplars = xp;
        }
        t->n_exemplars = ts->n_exemplars;
        const Kiln__Remote__V2Metadata *md = ts->metadata;
        if (md && (md->type || md->help_ref || md->unit_ref))
            (*metadata)++;
        v[i] = t;
    }
    *out = v;
    *n = r->n_timeseries;
    return 0;
}

KILN_MUST_CHECK static int rw_decode(const char *body, size_t len, size_t max_decompressed, int v2,
                                     rw_cache *cache, rw_alloc *al, rw_batch *b, rw_msg *msg) {
    char *raw = NULL, *tmp = NULL;
    int rc = 0;
    memset(b, 0, sizeof *b);

    size_t ulen = 0;
    if (snappy_uncompressed_length(body, len, &ulen) != SNAPPY_OK) {
        msg_puts(msg, "snappy: corrupt input (the body must be snappy block format)");
        rc = KILN_EINVAL;
        goto fail;
    }
    if (ulen > max_decompressed) {
        msg_printf(msg, "request body decompresses to %zu bytes, more than the limit of %zu bytes", ulen,
                   max_decompressed);
        rc = KILN_ELIMIT;
        goto fail;
    }
    if (cache && cache->raw && ulen <= cache->raw_cap) {
        raw = cache->raw;
    } else if (cache && ulen <= RW_CACHE_RAW_MAX && (raw = malloc(ulen ? ulen : 1))) {
        free(cache->raw);
        cache->raw = raw;
        cache->raw_cap = ulen;
    } else {
        raw = tmp = malloc(ulen ? ulen : 1);
    }
    if (!raw) {
        msg_printf(msg, "out of memory decompressing %zu bytes", ulen);
        rc = KILN_ENOMEM;
        goto fail;
    }
    size_t got = ulen;
    if (snappy_uncompress(body, len, raw, &got) != SNAPPY_OK || got != ulen) {
        msg_puts(msg, "snappy: corrupt input (the body must be snappy block format)");
        rc = KILN_EINVAL;
        goto fail;
    }

    al->limit = ulen * RW_DECODE_FACTOR + RW_DECODE_SLACK;
    if (cache && cache->slab) {
        al->cur = cache->slab;
        al->left = cache->slab_cap < al->limit ? cache->slab_cap : al->limit;
        al->taken = al->left;
    }
    ProtobufCAllocator pa = {.alloc = rw_alloc_fn, .free = rw_free_fn, .allocator_data = al};
    Kiln__Remote__TimeSeries **sers = NULL;
    size_t nseries = 0;
    void *decoded;
    if (v2) {
        Kiln__Remote__V2Request *r = kiln__remote__v2_request__unpack(&pa, ulen, (const uint8_t *)raw);
        decoded = r;
        if (r && (rc = v2_series(r, al, &sers, &nseries, &b->metadata, msg)) != 0)
            goto fail;
    } else {
        Kiln__Remote__WriteRequest *wr = kiln__remote__write_request__unpack(&pa, ulen, (const uint8_t *)raw);
        decoded = wr;
        if (wr) {
            sers = wr->timeseries;
            nseries = wr->n_timeseries;
            b->metadata = wr->n_metadata;
        }
    }
    free(tmp);
    tmp = NULL;
    if (!decoded) {
        if (al->over) {
            rc = decode_mem_error(al, msg);
        } else {
            msg_puts(
                msg,
                v2 ? "protobuf: cannot decode the body as a remote write 2.0 io.prometheus.write.v2.Request"
                   : "protobuf: cannot decode the body as a remote write WriteRequest");
            rc = KILN_EINVAL;
        }
        goto fail;
    }

    b->v = nseries ? rw_alloc_fn(al, nseries * sizeof *b->v) : NULL;
    if (nseries && !b->v)
        goto nomem;
    for (size_t i = 0; i < nseries; i++) {
        const Kiln__Remote__TimeSeries *ts = sers[i];
        b->samples += ts->n_samples;
        b->exemplars += ts->n_exemplars;
        b->histograms += ts->n_histograms;
        if (ts->n_samples == 0 && ts->n_histograms == 0)
            continue; /* exemplars only: nothing for storage */
        label *ls = NULL;
        if (ts->n_labels && ts->n_labels <= LABELS_MAX_COUNT &&
            !(ls = rw_alloc_fn(al, ts->n_labels * sizeof *ls)))
            goto nomem;
        rw_msg why; /* not zeroed: 1 KiB a series would show */
        why.n = 0;
        why.s[0] = 0;
        long k = series_labels(ts, ls, al, &why);
        if (k == -2)
            goto nomem;
        if (k < 0) {
            b->invalid_samples += ts->n_samples;
            b->invalid_histograms += ts->n_histograms;
            if (b->first.n == 0) {
                msg_puts(&b->first, "invalid series ");
                msg_series(&b->first, ts->labels, ts->n_labels);
                msg_puts(&b->first, ": ");
                msg_puts(&b->first, why.s);
            }
            continue;
        }
        rw_series *s = &b->v[b->n++];
        s->ls = ls;
        s->nls = (size_t)k;
        s->samples = ts->samples;
        s->nsamples = ts->n_samples;
        s->hists = NULL;
        s->hist_why = NULL;
        s->hraw = ts->histograms;
        s->nhists = ts->n_histograms;
        if (s->nhists) {
            s->hists = rw_alloc_fn(al, s->nhists * sizeof *s->hists);
            s->hist_why = rw_alloc_fn(al, s->nhists * sizeof *s->hist_why);
            if (!s->hists || !s->hist_why)
                goto nomem;
            for (size_t j = 0; j < s->nhists; j++)
                if (rw_histogram(al, ts->histograms[j], &s->hists[j], &s->hist_why[j]) == -2)
                    goto nomem;
        }
        s->raw = ts->labels;
        s->nraw = ts->n_labels;
        s->exemplars = ts->exemplars;
        s->nexemplars = ts->exemplars ? ts->n_exemplars : 0;
    }
    return 0;

nomem:
    return decode_mem_error(al, msg);
fail:
    free(tmp);
    return rc;
}

/* Stages the exemplars of series s (reference ref) in the batch, for
 * exemplar storage and the WAL (appender_append_exemplar; nothing when
 * storage is off), as Prometheus: with their timestamps, out-of-order and
 * repeated ones skipped.  Returns how many were staged. */
static size_t rw_stage_exemplars(appender *app, uint64_t ref, const rw_series *s) {
    size_t staged = 0;
    kiln_err e = {0};
    for (size_t k = 0; ref && k < s->nexemplars; k++) {
        const Kiln__Remote__Exemplar *x = s->exemplars[k];
        label ls[32];
        char text[1200]; /* 128 characters of names and values at most are stored */
        size_t used = 0, j = 0;
        for (; j < x->n_labels && j < 32; j++) {
            const ProtobufCBinaryData *nm = &x->labels[j]->name, *v = &x->labels[j]->value;
            if (used + nm->len + nul_in_len((const char *)v->data, v->len) + 2 > sizeof text)
                break;
            ls[j].name = text + used;
            if (nm->len)
                memcpy(text + used, nm->data, nm->len);
            used += nm->len;
            text[used++] = 0;
            ls[j].value = text + used;
            used += nul_in(text + used, (const char *)v->data, v->len); /* NUL: C0 80 */
            text[used++] = 0;
        }
        if (j < x->n_labels)
            continue; /* over the limit anyway */
        exemplar ex = {ls, x->n_labels, x->value, x->timestamp, 1};
        staged += appender_append_exemplar(app, ref, &ex, &e) == 0;
    }
    return staged;
}

/* ---- appending ---------------------------------------------------------------- */

typedef struct rw_outcome {
    size_t appended;
    size_t exemplars; /* staged, stored with the commit */
    size_t hist_appended, hist_rejected;
    size_t rejected[RW_NREJ];
    size_t rejected_total;
    rw_msg first; /* the first rejected sample */
} rw_outcome;

/*
 * Notes a sample or histogram the appender refused with rc (why: the
 * receiver's own reason, else err's): 0 when the batch goes on, or rc
 * itself when it is an error that fails the whole batch (the appender is
 * then rolled back and msg set).
 */
KILN_MUST_CHECK static int rejected(appender *app, int rc, kiln_err *err, const rw_series *s, int64_t ts,
                                    const char *why, rw_outcome *o, rw_msg *msg) {
    int reason;
    switch (rc) {
    case KILN_EORDER:
        reason = RW_REJ_ORDER;
        break;
    case KILN_EEXIST:
        reason = RW_REJ_DUPLICATE;
        break;
    case KILN_ERANGE:
        reason = RW_REJ_BOUNDS;
        break;
    case KILN_EINVAL:
        reason = RW_REJ_INVALID;
        break;
    default:
        appender_rollback(app);
        msg_printf(msg, "append failed: %s", err->code ? err->msg : kiln_strerror(rc));
        return rc;
    }
    o->rejected[reason]++;
    o->rejected_total++;
    if (o->first.n == 0) {
        msg_puts(&o->first, why ? why : err->code && err->msg[0] ? err->msg : kiln_strerror(rc));
        msg_puts(&o->first, " for series ");
        msg_series(&o->first, s->raw, s->nraw);
        msg_printf(&o->first, " at timestamp %lld", (long long)ts);
    }
    err->code = 0;
    err->msg[0] = 0;
    return 0;
}

/*
 * Appends the batch in one appender and commits it.  Returns 0 when the
 * commit succeeded (o says what was rejected), or the error that made the
 * whole batch fail (nothing acknowledged), with msg set.
 */
KILN_MUST_CHECK static int rw_append(storage *st, const rw_batch *b, rw_outcome *o, rw_msg *msg) {
    kiln_err err = {0};
    memset(o, 0, sizeof *o);
    if (b->n == 0)
        return 0;
    appender *app = storage_appender(st);
    if (!app) {
        msg_puts(msg, "out of memory: cannot start an append batch");
        return KILN_ENOMEM;
    }
    appender_trust_labels(app); /* rw_labels checked everything labels_check would */
    for (size_t i = 0; i < b->n; i++) {
        const rw_series *s = &b->v[i];
        uint64_t ref = 0;
        for (size_t j = 0; j < s->nsamples; j++) {
            const Kiln__Remote__Sample *smp = s->samples[j];
            int rc = appender_append(app, &ref, ref ? NULL : s->ls, ref ? 0 : s->nls, smp->timestamp,
                                     smp->value, &err);
            if (rc == 0)
                o->appended++;
            else if (rejected(app, rc, &err, s, smp->timestamp, NULL, o, msg) != 0)
                return rc;
        }
        for (size_t j = 0; j < s->nhists; j++) {
            int64_t ts = s->hraw[j]->timestamp;
            int rc = KILN_EINVAL;
            if (!s->hist_why[j])
                rc = appender_append_histogram(app, &ref, ref ? NULL : s->ls, ref ? 0 : s->nls, ts,
                                               &s->hists[j], &err);
            if (rc == 0)
                o->hist_appended++;
            else if (rejected(app, rc, &err, s, ts, s->hist_why[j], o, msg) != 0)
                return rc;
            else
                o->hist_rejected++;
        }
        o->exemplars += s->nexemplars && storage_exemplars(st) ? rw_stage_exemplars(app, ref, s) : 0;
    }
    if (o->appended == 0 && o->hist_appended == 0 && o->exemplars == 0) {
        appender_rollback(app);
        return 0;
    }
    int rc = appender_commit(app, &err);
    if (rc != 0) {
        msg_printf(msg, "storing samples failed: %s", err.code ? err.msg : kiln_strerror(rc));
        return rc < 0 ? rc : KILN_EIO;
    }
    return 0;
}

/* ---- the handler ------------------------------------------------------------ */

/* The value of a media-type parameter (`proto=...`), or NULL. */
static const char *content_type_param(const char *ct, const char *name, size_t *len) {
    size_t nl = strlen(name);
    for (const char *p = strchr(ct, ';'); p; p = strchr(p + 1, ';')) {
        const char *q = p + 1;
        while (*q == ' ' || *q == '\t')
            q++;
        if (!strncasecmp(q, name, nl) && q[nl] == '=') {
            q += nl + 1;
            if (*q == '"')
                q++;
            size_t n = strcspn(q, "\";, \t");
            *len = n;
            return q;
        }
    }
    return NULL;
}

static void respond(remotewrite *rw, http_resp *resp, int code, const char *text) {
    metric_add(rw->requests[code], 1);
    if (rw_code_status[code] == 204) {
        resp->status = 204;
        snprintf(resp->content_type, sizeof resp->content_type, "text/plain; charset=utf-8");
        buf_reset(&resp->body);
        return;
    }
    char line[RW_MSG_MAX + 2];
    snprintf(line, sizeof line, "%s\n", text);
    http_resp_text(resp, rw_code_status[code], line);
}

/* Remote write 2.0's X-Prometheus-Remote-Write-*-Written headers: what was
 * stored of the request. */
static void written_headers(http_resp *resp, int v2, size_t samples, size_t histograms, size_t exemplars) {
    if (!v2)
        return;
    char n[32];
    snprintf(n, sizeof n, "%zu", samples);
    http_resp_header(resp, "X-Prometheus-Remote-Write-Samples-Written", n);
    snprintf(n, sizeof n, "%zu", histograms);
    http_resp_header(resp, "X-Prometheus-Remote-Write-Histograms-Written", n);
    snprintf(n, sizeof n, "%zu", exemplars);
    http_resp_header(resp, "X-Prometheus-Remote-Write-Exemplars-Written", n);
}

static int code_for(int rc) {
    switch (rc) {
    case KILN_EINVAL:
        return RW_CODE_400;
    case KILN_ELIMIT:
        return RW_CODE_413;
    default:
        return RW_CODE_500;
    }
}

void remotewrite_handle(remotewrite *rw, http_req *req, http_resp *resp) {
    rw_msg msg = {.n = 0};
    msg.s[0] = 0;
    if (!rw->opts.enabled) {
        respond(rw, resp, RW_CODE_404,
                "remote write receiver is disabled; start kiln without --web.disable-remote-write-receiver");
        return;
    }
    const char *ce = http_req_header(req, "Content-Encoding");
    if (ce && *ce && strcasecmp(ce, "snappy") != 0) {
        msg_puts(&msg, "unsupported Content-Encoding ");
        msg_quoted(&msg, ce, strlen(ce), 64);
        msg_puts(&msg, ": remote write bodies are snappy block format");
        respond(rw, resp, RW_CODE_415, msg.s);
        return;
    }
    const char *ct = http_req_header(req, "Content-Type");
    size_t plen = 0;
    const char *proto = ct ? content_type_param(ct, "proto", &plen) : NULL;
    static const char V2[] = "io.prometheus.write.v2.Request";
    int v2 = proto && plen == sizeof V2 - 1 && !memcmp(proto, V2, plen);
    if (proto && !v2 && !(plen == 23 && !memcmp(proto, "prometheus.WriteRequest", 23))) {
        msg_puts(&msg, "unsupported remote write message ");
        msg_quoted(&msg, proto, plen, 64);
        msg_puts(&msg,
                 ": kiln accepts prometheus.WriteRequest (1.0) and io.prometheus.write.v2.Request (2.0)");
        respond(rw, resp, RW_CODE_415, msg.s);
        return;
    }

    double t0 = time_mono_sec();
    rw_cache *cache = rw_cache_get();
    rw_alloc al = {.a = req->arena};
    rw_batch b;
    int rc = rw_decode(req->body, req->body_len, rw->opts.max_decompressed_bytes, v2, cache, &al, &b, &msg);
    metric_observe(rw->decode_seconds, time_mono_sec() - t0);
    if (rc != 0) {
        written_headers(resp, v2, 0, 0, 0);
        respond(rw, resp, code_for(rc), msg.s);
        return;
    }
    metric_add(rw->received, (double)b.samples);
    if (b.histograms)
        metric_add(rw->histograms_received, (double)b.histograms);
    if (b.metadata)
        metric_add(rw->metadata_received, (double)b.metadata);
    if (b.invalid_samples + b.invalid_histograms)
        metric_add(rw->rejected[RW_REJ_INVALID], (double)(b.invalid_samples + b.invalid_histograms));

    rw_outcome o;
    rc = rw_append(rw->st, &b, &o, &msg);
    size_t ex_stored = rc == 0 ? o.exemplars : 0;
    if (b.exemplars > ex_stored)
        metric_add(rw->exemplars_dropped, (double)(b.exemplars - ex_stored));
    rw_cache_fit(cache, al.used); /* b is not used beyond this point */
    if (rc != 0) {
        LOG_ERROR("Remote write append failed", "err=%s", msg.s);
        written_headers(resp, v2, 0, 0, 0);
        respond(rw, resp, RW_CODE_500, msg.s);
        return;
    }
    for (int r = 0; r < RW_NREJ; r++)
        if (o.rejected[r])
            metric_add(rw->rejected[r], (double)o.rejected[r]);

    written_headers(resp, v2, o.appended, o.hist_appended, ex_stored);
    size_t rej_samples = b.invalid_samples + o.rejected_total - o.hist_rejected;
    size_t rej_hists = b.invalid_histograms + o.hist_rejected;
    if (b.first.n == 0 && o.first.n == 0) {
        respond(rw, resp, RW_CODE_204, NULL);
        return;
    }
    msg_puts(&msg, b.first.n ? b.first.s : o.first.s);
    msg_printf(&msg, "; %zu of %zu samples rejected", rej_samples, b.samples);
    if (b.histograms)
        msg_printf(&msg, ", %zu of %zu histograms rejected", rej_hists, b.histograms);
    LOG_WARN("Remote write request rejected in part", "err=%s", msg.s);
    respond(rw, resp, RW_CODE_400, msg.s);
}

static void rw_route(http_req *req, http_resp *resp, void *data) {
    remotewrite_handle(data, req, resp);
}

/* ---- lifecycle ---------------------------------------------------------------- */

void remotewrite_opts_default(remotewrite_opts *o) {
    o->enabled = 1;
    o->max_decompressed_bytes = REMOTEWRITE_DEFAULT_MAX_DECOMPRESSED;
}

int remotewrite_new(storage *st, const remotewrite_opts *o, remotewrite **out, kiln_err *err) {
    static const double decode_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                            0.01,   0.025,   0.05,   0.1,   0.25,   1};
    *out = NULL;
    remotewrite *rw = calloc(1, sizeof *rw);
    if (!rw)
        goto nomem;
    rw->st = st;
    rw->opts = *o;
    if (rw->opts.max_decompressed_bytes == 0)
        rw->opts.max_decompressed_bytes = REMOTEWRITE_DEFAULT_MAX_DECOMPRESSED;

    metric *req = metric_new(METRIC_COUNTER, "kiln_remote_write_requests_total",
                             "Remote write requests received, by HTTP status code.", "code", NULL, 0);
    metric *rej = metric_new(METRIC_COUNTER, "kiln_remote_write_samples_rejected_total",
                             "Remote write samples not stored, by reason.", "reason", NULL, 0);
    metric *rcv = metric_new(METRIC_COUNTER, "kiln_remote_write_samples_received_total",
                             "Samples in decoded remote write requests, stored or not.", NULL, NULL, 0);
    metric *exd =
        metric_new(METRIC_COUNTER, "kiln_remote_write_exemplars_dropped_total",
                   "Exemplars received by remote write and not stored (exemplar storage off, out of order).",
                   NULL, NULL, 0);
    metric *hsd = metric_new(METRIC_COUNTER, "kiln_remote_write_histograms_received_total",
                             "Native histogram samples in decoded remote write requests, stored or not.",
                             NULL, NULL, 0);
    metric *mdr = metric_new(METRIC_COUNTER, "kiln_remote_write_metadata_received_total",
                             "Metric metadata entries received by remote write.", NULL, NULL, 0);
    metric *dur = metric_new(METRIC_HISTOGRAM, "kiln_remote_write_decode_duration_seconds",
                             "Time to decompress, decode and validate a remote write request.", NULL,
                             decode_buckets, sizeof decode_buckets / sizeof decode_buckets[0]);
    if (!req || !rej || !rcv || !exd || !hsd || !mdr || !dur)
        goto nomem;
    for (int i = 0; i < RW_NCODES; i++) {
        const char *v[1] = {rw_code_names[i]};
        if (!(rw->requests[i] = metric_with(req, v)))
            goto nomem;
    }
    for (int i = 0; i < RW_NREJ; i++) {
        const char *v[1] = {rw_rej_names[i]};
        if (!(rw->rejected[i] = metric_with(rej, v)))
            goto nomem;
    }
    rw->received = metric_default(rcv);
    rw->exemplars_dropped = metric_default(exd);
    rw->histograms_received = metric_default(hsd);
    rw->metadata_received = metric_default(mdr);
    rw->decode_seconds = metric_default(dur);
    if (!rw->received || !rw->exemplars_dropped || !rw->histograms_received || !rw->metadata_received ||
        !rw->decode_seconds)
        goto nomem;
    *out = rw;
    return 0;
nomem:
    free(rw);
    return kiln_err_set(err, KILN_ENOMEM, "remote write receiver: out of memory");
}

int remotewrite_register(http_server *s, remotewrite *rw) {
    return http_route(s, "POST", "/api/v1/write", HTTP_ROUTE_WORKER, rw_route, rw, "/api/v1/write");
}

void remotewrite_free(remotewrite *rw) {
    free(rw);
}
