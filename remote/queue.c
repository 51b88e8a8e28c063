/*
 * queue.c - one remote_write queue, as Prometheus' QueueManager with its WAL
 * watcher: the queue follows kiln's WAL (storage_wal_tail_*), keeps a cache
 * of the series it has seen (WAL ref -> the series' labels after external
 * labels and write_relabel_configs, already encoded as protobuf), and hands
 * each sample to a shard (ref modulo the shard count, so one series' samples
 * stay in order).  A shard sends a batch when it holds max_samples_per_send
 * samples or its oldest has waited batch_send_deadline; one batch at a time a
 * shard, through the sender's libcurl multi handle.
 *
 * States of a shard: idle (samples wait in its ring) -> sending (a batch in
 * flight, its samples out of the ring, in `body`) -> idle on 2xx or a 4xx
 * other than 429 (dropped), or -> waiting (retry_at) on 5xx, 429 with
 * retry_on_http_429, or a transport error, then sending the same body again.
 *
 * Invariants:
 *   1. The watcher reads the next record only when the current one is placed
 *      whole; one a full shard stops stays current (rec, rec_i) until the
 *      shards drain: memory is bounded by
 *      shards x capacity, the backlog stays in the WAL.
 *   2. Samples carry a sequence number in read order; `marks` maps sequence
 *      numbers to the WAL position after their record.  The progress written
 *      is the position of the newest mark whose samples are all acknowledged
 *      (or dropped): a restart sends again at most what was in flight.
 *   3. The shard count changes only while every shard is empty and idle
 *      (resharding stops the watcher until then), so no series' samples are
 *      ever reordered.
 *
 * Shards follow the backlog as Prometheus' calculateDesiredShards does:
 * every 10 s, the time spent sending a sample times the rate samples come in
 * (plus 5% of the backlog a second), changed only when it differs by more
 * than 30% from the current count, bounded by min_shards and max_shards.
 *
 * Threading: a queue belongs to the sender thread (remote.c).
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "remote/remote_int.h"

#define RW_MARKS 4096             /* progress marks kept (the oldest are merged) */
#define RW_PROGRESS_EVERY_MS 1000 /* the progress is also written this often (marks without samples) */
#define RW_RESHARD_EVERY_MS 10000
#define RW_GC_EVERY_MS 5000  /* how often the queue looks for a new checkpoint */
#define RW_META_MISS_MS 5000 /* 2.0: the metadata table made again this often while series miss theirs */

typedef struct rw_series {
    uint8_t *lbl; /* encoded labels, NULL when relabeling dropped the series */
    uint32_t len;
    int32_t seg;       /* the segment of its series record (-1: a checkpoint) */
    int32_t meta;      /* 2.0: its family's entry in q->v2meta (-1 none), when meta_gen is q's */
    uint32_t meta_gen; /* 0: not looked up */
} rw_series;

/* A family's metadata for 2.0's TimeSeries (strings in q->v2mem). */
typedef struct rw_meta {
    const char *name;
    wire_v2_meta md;
} rw_meta;

/* A cache entry the series GC removed, freed once no pending sample can
 * refer to it (every sample numbered below seq is acknowledged). */
typedef struct rw_dead {
    uint32_t idx;
    uint64_t seq;
} rw_dead;

typedef struct rw_sample {
    uint64_t seq;
    uint32_t series; /* index in q->series */
    uint32_t hlen;
    int64_t t;
    double v;
    uint8_t *h; /* a histogram sample: its wire_histogram bytes; an exemplar: its labels'
                   wire_labels bytes (owned); else NULL */
    int ex;     /* an exemplar (send_exemplars) */
} rw_sample;

typedef struct rw_shard {
    rw_queue *q;
    rw_sample *ring; /* capacity q->capacity */
    size_t head, n;
    int64_t oldest_ms; /* when the oldest sample in the ring was queued */
    CURL *e;
    struct curl_slist *headers, *connect_to;
    int sending;      /* a transfer is in the multi handle */
    int64_t retry_at; /* > 0: waiting to send body again */
    int64_t backoff_ms;
    buf body; /* the batch being sent (compressed) */
    size_t nbatch;
    uint64_t batch_seq; /* the smallest sequence number in the batch */
    int64_t batch_max_t, sent_at;
} rw_shard;

typedef struct rw_mark {
    uint64_t seq; /* samples with a smaller sequence number are before pos */
    storage_wal_pos pos;
} rw_mark;

struct rw_queue {
    const config_remote_write *cfg;
    const config_label *ext;
    size_t next;
    remote_options o;
    CURLM *multi;
    rw_metrics m;
    char dir[PATH_MAX]; /* <data>/remote/<key> */
    rhttp_creds creds;
    int v2;        /* protobuf_message: io.prometheus.write.v2.Request */
    wire_v2 v2req; /* its request being built */

    storage_wal_tail *tail;
    storage_wal_record rec; /* the record being placed (invariant 1) */
    size_t rec_i;
    int have_rec;
    int64_t wal_retry_at; /* after a WAL error */

    /* series cache: open addressing, ref -> index in series */
    uint64_t *keys; /* ref + 1; 0 is empty */
    uint32_t *vals;
    size_t kcap, kn;
    rw_series *series;
    size_t nseries, capseries;
    /* series GC (series_gc: as Prometheus' watcher, the series a new
     * checkpoint no longer holds leave the cache) */
    int gc_checkpoint; /* the newest checkpoint handled */
    int64_t gc_at;
    rw_dead *dead;
    size_t ndead, capdead;
    /* metadata_config: a round every send_interval, in requests of
     * max_samples_per_send entries, one at a time through `meta` */
    rw_shard meta;
    buf meta_enc;      /* the round's MetricMetadata entries, encoded */
    size_t *meta_ends; /* where each entry ends in meta_enc */
    size_t meta_n, meta_cap, meta_next;
    int64_t meta_at;
    /* 2.0: every TimeSeries carries its family's metadata (as Prometheus'
     * 2.0 sender), looked up in this table, sorted by name, made again
     * every send_interval (meta_gen counts the tables) */
    rw_meta *v2meta;
    size_t nv2meta, capv2meta;
    arena v2mem;
    uint32_t meta_gen;
    int meta_miss;        /* a series found no metadata: look again sooner (RW_META_MISS_MS) */
    int64_t meta_done_at; /* when the table was made */
    uint32_t *free_idx;   /* entries to reuse */
    size_t nfree, capfree;

    rw_shard *shards;
    size_t nshards, capacity, desired;
    size_t max_send; /* max_samples_per_send (0 taken as 1) */
    uint64_t next_seq;
    rw_mark marks[RW_MARKS];
    size_t nmarks;
    storage_wal_pos progress;
    int64_t progress_at, reshard_at;

    /* rates for resharding (over the last period) */
    uint64_t in_period, out_period;
    double out_secs_period, in_rate, out_rate, out_secs_rate;
    int64_t highest_in_ms, highest_sent_ms;

    buf raw, scratch;
    arena tmp;
};

/* ---- series cache --------------------------------------------------------------------------- */

static size_t slot_of(const rw_queue *q, uint64_t ref) {
    return (size_t)(XXH3_64bits(&ref, sizeof ref) & (q->kcap - 1));
}

/* The cache index of ref, or -1. */
static long cache_get(const rw_queue *q, uint64_t ref) {
    if (!q->kcap)
        return -1;
    for (size_t i = slot_of(q, ref);; i = (i + 1) & (q->kcap - 1)) {
        if (q->keys[i] == 0)
            return -1;
        if (q->keys[i] == ref + 1)
            return q->vals[i];
    }
}

KILN_MUST_CHECK static int cache_put(rw_queue *q, uint64_t ref, uint32_t idx) {
    if ((q->kn + 1) * 2 > q->kcap) {
        size_t ncap = q->kcap ? q->kcap * 2 : 1024;
        uint64_t *ok = q->keys;
        uint32_t *ov = q->vals;
        size_t ocap = q->kcap;
        q->keys = calloc(ncap, sizeof *q->keys);
        q->vals = calloc(ncap, sizeof *q->vals);
        if (!q->keys || !q->vals) {
            free(q->keys);
            free(q->vals);
            q->keys = ok;
            q->vals = ov;
            return KILN_ENOMEM;
        }
        q->kcap = ncap;
        q->kn = 0;
        for (size_t i = 0; i < ocap; i++)
            if (ok[i] && cache_put(q, ok[i] - 1, ov[i]))
                return KILN_ENOMEM; /* not reached: the table was just grown */
        free(ok);
        free(ov);
    }
    for (size_t i = slot_of(q, ref);; i = (i + 1) & (q->kcap - 1)) {
        if (q->keys[i] == 0 || q->keys[i] == ref + 1) {
            q->kn += q->keys[i] == 0;
            q->keys[i] = ref + 1;
            q->vals[i] = idx;
            return 0;
        }
    }
}

static int label_cmp(const void *a, const void *b) {
    return strcmp(((const label *)a)->name, ((const label *)b)->name);
}

/* A series record's series: external labels the series lacks added, then
 * write_relabel_configs, sorted, encoded once. */
KILN_MUST_CHECK static int store_series(rw_queue *q, const storage_wal_series *s) {
    arena_free(&q->tmp);
    arena_init(&q->tmp, 0);
    label *ls = arena_alloc_nz(&q->tmp, (s->nls + q->next + 1) * sizeof *ls);
    if (!ls)
        return KILN_ENOMEM;
    memcpy(ls, s->ls, s->nls * sizeof *ls);
    size_t n = s->nls;
    for (size_t i = 0; i < q->next; i++) {
        size_t j = 0;
        while (j < s->nls && strcmp(s->ls[j].name, q->ext[i].name) != 0)
            j++;
        if (j == s->nls)
            ls[n++] = (label){q->ext[i].name, q->ext[i].value};
    }
    label *out = ls;
    size_t nout = n;
    int keep = 1;
    if (q->cfg->nwrite_relabel_configs && q->o.relabel) {
        keep = q->o.relabel(q->cfg->write_relabel_configs, q->cfg->nwrite_relabel_configs, ls, n, &q->tmp,
                            &out, &nout);
        if (keep < 0)
            return keep;
    }
    long idx = cache_get(q, s->ref);
    if (idx < 0) {
        if (q->nfree)
            idx = (long)q->free_idx[--q->nfree];
        else if (array_grow((void **)&q->series, &q->capseries, q->nseries + 1, sizeof *q->series))
            return KILN_ENOMEM;
        else
            idx = (long)q->nseries++;
        q->series[idx] = (rw_series){0};
        if (cache_put(q, s->ref, (uint32_t)idx))
            return KILN_ENOMEM;
    }
    rw_series *e = &q->series[idx];
    free(e->lbl);
    *e = (rw_series){0};
    e->seg = q->rec.pos.segment;
    if (!keep || nout == 0)
        return 0;
    qsort(out, nout, sizeof *out, label_cmp);
    buf b = BUF_INIT;
    wire_labels(&b, out, nout);
    if (buf_error(&b)) {
        buf_free(&b);
        return KILN_ENOMEM;
    }
    e->len = (uint32_t)b.len;
    e->lbl = (uint8_t *)buf_steal(&b);
    return 0;
}

/* ---- HTTP ------------------------------------------------------------------------------------ */

static size_t drop_body(char *p, size_t size, size_t nmemb, void *data) {
    (void)p;
    (void)data;
    return size * nmemb;
}

/* The shard's easy handle, set up once: the connection is kept between batches. */
KILN_MUST_CHECK static int shard_handle(rw_shard *sh) {
    rw_queue *q = sh->q;
    const config_remote_write *c = q->cfg;
    CURL *e = sh->e = curl_easy_init();
    if (!e)
        return KILN_ENOMEM;
    static const char *const fixed1[] = {"Content-Encoding: snappy", "Content-Type: application/x-protobuf",
                                         "X-Prometheus-Remote-Write-Version: 0.1.0", "Expect:"};
    static const char *const fixed2[] = {
        "Content-Encoding: snappy",
        "Content-Type: application/x-protobuf;proto=io.prometheus.write.v2.Request",
        "X-Prometheus-Remote-Write-Version: 2.0.0", "Expect:"};
    const char *const *fixed = q->v2 ? fixed2 : fixed1;
    /* HTTP/1.1 unless enable_http2 (false by default for remote write, as in Prometheus) */
    rhttp_endpoint ep = {c->url, &c->http, c->headers, c->nheaders, c->remote_timeout_ms};
    int rc = rhttp_setup(e, &ep, &q->creds, fixed, sizeof fixed1 / sizeof fixed1[0], &sh->headers,
                         &sh->connect_to);
    if (rc < 0)
        return rc;
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, drop_body);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)sh);
    return 0;
}

/* ---- shards ------------------------------------------------------------------------------------ */

static void shard_release(rw_queue *q, rw_shard *sh) {
    if (sh->e) {
        if (sh->sending)
            curl_multi_remove_handle(q->multi, sh->e);
        curl_easy_cleanup(sh->e);
    }
    curl_slist_free_all(sh->headers);
    curl_slist_free_all(sh->connect_to);
    buf_free(&sh->body);
    for (size_t i = 0; sh->ring && i < sh->n; i++)
        free(sh->ring[(sh->head + i) % q->capacity].h);
    free(sh->ring);
}

static void shards_free(rw_queue *q) {
    for (size_t i = 0; i < q->nshards; i++)
        shard_release(q, &q->shards[i]);
    free(q->shards);
    q->shards = NULL;
    q->nshards = 0;
}

KILN_MUST_CHECK static int shards_make(rw_queue *q, size_t n) {
    shards_free(q);
    if (!(q->shards = calloc(n, sizeof *q->shards)))
        return KILN_ENOMEM;
    q->nshards = n;
    for (size_t i = 0; i < n; i++) {
        rw_shard *sh = &q->shards[i];
        sh->q = q;
        if (!(sh->ring = malloc(q->capacity * sizeof *sh->ring)))
            return KILN_ENOMEM;
        int rc = shard_handle(sh);
        if (rc)
            return rc;
    }
    metric_set(q->m.shards, (double)n);
    return 0;
}

/* The smallest sequence number not yet acknowledged (or dropped). */
static uint64_t low_water(const rw_queue *q) {
    uint64_t low = q->next_seq;
    if (q->have_rec)
        low = q->next_seq; /* the current record's placed samples are above its mark anyway */
    for (size_t i = 0; i < q->nshards; i++) {
        const rw_shard *sh = &q->shards[i];
        if ((sh->sending || sh->retry_at) && sh->batch_seq < low)
            low = sh->batch_seq;
        if (sh->n && sh->ring[sh->head].seq < low)
            low = sh->ring[sh->head].seq;
    }
    return low;
}

/* Writes the progress file when it moved (atomically: a temporary file
 * renamed over it). */
static void progress_write(rw_queue *q) {
    uint64_t low = low_water(q);
    size_t k = 0;
    while (k < q->nmarks && q->marks[k].seq <= low)
        k++;
    if (k == 0)
        return;
    storage_wal_pos p = q->marks[k - 1].pos;
    memmove(q->marks, q->marks + k, (q->nmarks - k) * sizeof *q->marks);
    q->nmarks -= k;
    if (p.segment == q->progress.segment && p.offset == q->progress.offset)
        return;
    q->progress = p;
    char path[PATH_MAX + 16], tmp[PATH_MAX + 16], text[64];
    snprintf(path, sizeof path, "%s/progress", q->dir);
    snprintf(tmp, sizeof tmp, "%s/progress.tmp", q->dir);
    int n = snprintf(text, sizeof text, "%d %lld\n", p.segment, (long long)p.offset);
    /* no fsync: written after every acknowledged batch, it survives kill -9 in the page cache;
     * after a power cut an older one resends a little more (at least once) */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int ok = fd >= 0 && fileio_write_all(fd, text, (size_t)n) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0)
        LOG_WARN("remote write: cannot write the progress", "dir=%s err=%s", q->dir, strerror(errno));
}

/* Adds a mark after a record's samples are all placed. */
static void mark(rw_queue *q, storage_wal_pos pos) {
    if (pos.segment < 0)
        return;                  /* inside a checkpoint: the first segment's mark comes soon */
    if (q->nmarks == RW_MARKS) { /* merge: keep every other mark */
        for (size_t i = 0; i < RW_MARKS / 2; i++)
            q->marks[i] = q->marks[2 * i + 1];
        q->nmarks = RW_MARKS / 2;
    }
    q->marks[q->nmarks++] = (rw_mark){q->next_seq, pos};
}

/* Places the current record's samples (or histograms, or exemplars) in the
 * shards; 1 when all are placed, 0 when a shard is full (invariant 1). */
static int place(rw_queue *q, int64_t now_ms) {
    const storage_wal_record *r = &q->rec;
    int ex = r->nexemplars > 0;     /* a record of exemplars (send_exemplars) */
    int hist = !r->nsamples && !ex; /* a record of histogram samples (send_native_histograms) */
    size_t n = ex ? r->nexemplars : hist ? r->nhistograms : r->nsamples;
    for (; q->rec_i < n; q->rec_i++) {
        uint64_t ref = ex     ? r->exemplars[q->rec_i].ref
                       : hist ? r->histograms[q->rec_i].ref
                              : r->samples[q->rec_i].ref;
        int64_t t = ex ? r->exemplars[q->rec_i].t : hist ? r->histograms[q->rec_i].t : r->samples[q->rec_i].t;
        long idx = cache_get(q, ref);
        if (idx < 0 || !q->series[idx].lbl) { /* unknown or dropped by relabeling */
            metric_add(q->m.dropped, 1);
            continue;
        }
        if (q->cfg->queue.sample_age_limit_ms > 0 && t < now_ms - q->cfg->queue.sample_age_limit_ms) {
            metric_add(q->m.dropped, 1); /* too old to be worth sending (sample_age_limit) */
            continue;
        }
        rw_shard *sh = &q->shards[ref % q->nshards];
        if (sh->n == q->capacity)
            return 0;
        double v = ex ? r->exemplars[q->rec_i].v : hist ? 0 : r->samples[q->rec_i].v;
        rw_sample e = {q->next_seq, (uint32_t)idx, 0, t, v, NULL, ex};
        if (hist || ex) { /* encoded now: the record's memory is the follower's */
            buf b = BUF_INIT;
            if (ex)
                wire_labels(&b, r->exemplars[q->rec_i].ls, r->exemplars[q->rec_i].nls);
            if ((hist && wire_histogram(&b, r->histograms[q->rec_i].h, t) != 0) || buf_error(&b)) {
                buf_free(&b);
                metric_add(q->m.dropped, 1);
                continue;
            }
            e.hlen = (uint32_t)b.len;
            e.h = (uint8_t *)buf_steal(&b);
        }
        if (sh->n == 0)
            sh->oldest_ms = now_ms;
        q->next_seq++;
        sh->ring[(sh->head + sh->n++) % q->capacity] = e;
        q->in_period++;
        if (!ex && t > q->highest_in_ms)
            q->highest_in_ms = t;
    }
    return 1;
}

/* Reads WAL records while the shards take them; 1 when it stopped with
 * more to read and room to place it (the sender thread should not wait). */
static int watch(rw_queue *q, int64_t now_ms) {
    if (now_ms < q->wal_retry_at || q->desired != q->nshards)
        return 0;
    for (int budget = 256; budget > 0; budget--) {
        if (q->have_rec) {
            if (!place(q, now_ms))
                return 0;
            q->have_rec = 0;
            mark(q, q->rec.pos);
        }
        kiln_err err = {0};
        int rc = storage_wal_tail_next(q->tail, &q->rec, &err);
        if (rc == 0)
            return 0;
        if (rc < 0) {
            LOG_ERROR("remote write: reading the WAL", "url=%s err=%s", q->cfg->url, err.msg);
            q->wal_retry_at = now_ms + 1000;
            return 0;
        }
        for (size_t i = 0; i < q->rec.nseries; i++)
            if (store_series(q, &q->rec.series[i]) != 0) {
                LOG_ERROR("remote write: out of memory caching a series", "url=%s", q->cfg->url);
                q->wal_retry_at = now_ms + 1000;
            }
        q->rec_i = 0;
        q->have_rec = q->rec.nsamples > 0 || (q->rec.nhistograms > 0 && q->cfg->send_native_histograms) ||
                      (q->rec.nexemplars > 0 && q->cfg->send_exemplars);
        if (!q->have_rec)
            mark(q, q->rec.pos);
    }
    return 1;
}

static int meta_cmp(const void *a, const void *b) {
    return strcmp(((const rw_meta *)a)->name, ((const rw_meta *)b)->name);
}

/* The table entry of family name[0..n), or -1. */
static int32_t meta_find(const rw_queue *q, const char *name, size_t n) {
    char key[256];
    if (n >= sizeof key || !q->nv2meta)
        return -1;
    memcpy(key, name, n);
    key[n] = 0;
    rw_meta k = {.name = key};
    const rw_meta *e = bsearch(&k, q->v2meta, q->nv2meta, sizeof *q->v2meta, meta_cmp);
    return e ? (int32_t)(e - q->v2meta) : -1;
}

/* The metadata of a series' family (by its __name__, then without a
 * _total/_bucket/_count/_sum/_created/_info suffix), or NULL. */
static const wire_v2_meta *series_meta(rw_queue *q, rw_series *se) {
    if (!q->meta_gen)
        return NULL;
    if (se->meta_gen != q->meta_gen) {
        se->meta_gen = q->meta_gen;
        se->meta = -1;
        /* wire_labels' bytes: per label 0a L 0a nl name 12 vl value (short labels: one-byte lengths) */
        for (size_t i = 0; i + 4 < se->len && se->meta < 0;) {
            size_t l = se->lbl[i + 1], nl = se->lbl[i + 3];
            if (se->lbl[i + 1] >= 0x80 || se->lbl[i + 3] >= 0x80)
                break;
            if (nl == 8 && i + 14 <= se->len && !memcmp(se->lbl + i + 4, "__name__", 8) &&
                se->lbl[i + 13] < 0x80 && i + 14 + se->lbl[i + 13] <= se->len) {
                const char *v = (const char *)se->lbl + i + 14;
                size_t vl = se->lbl[i + 13];
                static const char *const sfx[] = {"_total", "_bucket", "_count", "_sum", "_created", "_info"};
                se->meta = meta_find(q, v, vl);
                for (size_t k = 0; se->meta < 0 && k < sizeof sfx / sizeof *sfx; k++) {
                    size_t sl = strlen(sfx[k]);
                    if (vl > sl && !memcmp(v + vl - sl, sfx[k], sl))
                        se->meta = meta_find(q, v, vl - sl);
                }
                break;
            }
            i += 2 + l;
        }
    }
    q->meta_miss |= se->meta < 0;
    return se->meta >= 0 ? &q->v2meta[se->meta].md : NULL;
}

/* Takes up to max_samples_per_send samples out of the ring into a request. */
static void start_batch(rw_queue *q, rw_shard *sh, int64_t now_ms) {
    size_t n = sh->n < q->max_send ? sh->n : q->max_send;
    buf_reset(&q->raw);
    sh->batch_seq = sh->ring[sh->head].seq;
    sh->batch_max_t = INT64_MIN;
    if (q->v2)
        wire_v2_reset(&q->v2req);
    for (size_t i = 0; i < n; i++) {
        rw_sample *s = &sh->ring[(sh->head + i) % q->capacity];
        const rw_series *se = &q->series[s->series];
        const wire_v2_meta *md = q->v2 ? series_meta(q, &q->series[s->series]) : NULL;
        if (q->v2 && s->ex)
            wire_v2_exemplar(&q->v2req, se->lbl, se->len, s->h, s->hlen, s->t, s->v, md);
        else if (q->v2)
            wire_v2_timeseries(&q->v2req, se->lbl, se->len, s->t, s->v, s->h, s->hlen, md);
        else if (s->ex)
            wire_timeseries_exemplar(&q->raw, se->lbl, se->len, s->h, s->hlen, s->t, s->v);
        else if (s->h)
            wire_timeseries_hist(&q->raw, se->lbl, se->len, s->h, s->hlen);
        else
            wire_timeseries(&q->raw, se->lbl, se->len, s->t, s->v);
        if (!s->ex && s->t > sh->batch_max_t)
            sh->batch_max_t = s->t;
    }
    if (q->v2)
        wire_v2_finish(&q->v2req, &q->raw);
    for (size_t i = 0; i < n; i++) { /* copied into the request (2.0's symbols borrowed them until now) */
        rw_sample *s = &sh->ring[(sh->head + i) % q->capacity];
        free(s->h);
        s->h = NULL;
    }
    sh->head = (sh->head + n) % q->capacity;
    sh->n -= n;
    sh->oldest_ms = now_ms;
    sh->nbatch = n;
    sh->backoff_ms = q->cfg->queue.min_backoff_ms;
    if (wire_snappy(&q->raw, &q->scratch) != 0) {
        LOG_ERROR("remote write: out of memory building a request", "url=%s", q->cfg->url);
        metric_add(q->m.failed, (double)n);
        sh->nbatch = 0;
        return;
    }
    buf t = sh->body;
    sh->body = q->raw;
    q->raw = t;
    sh->retry_at = now_ms; /* sent below */
}

static void send_body(rw_queue *q, rw_shard *sh, int64_t now_ms) {
    curl_easy_setopt(sh->e, CURLOPT_POSTFIELDS, sh->body.data);
    curl_easy_setopt(sh->e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)sh->body.len);
    if (curl_multi_add_handle(q->multi, sh->e) != CURLM_OK) {
        sh->retry_at = now_ms + 1000;
        return;
    }
    sh->retry_at = 0;
    sh->sending = 1;
    sh->sent_at = now_ms;
}

size_t rw_shards_desired(size_t cur, size_t min, size_t max, double in_rate, double out_rate,
                         double out_secs_rate, double lag_s) {
    size_t desired = cur;
    if (out_rate > 0) {
        double per_sample = out_secs_rate / out_rate; /* seconds of sending a sample takes */
        double backlog = lag_s > 0 ? lag_s * in_rate : 0;
        double want = per_sample * (in_rate + 0.05 * backlog);
        if (want < (double)cur * 0.7 || want > (double)cur * 1.3)
            desired = (size_t)ceil(want);
    }
    if (desired < min)
        desired = min;
    if (desired > max)
        desired = max;
    return desired < 1 ? 1 : desired;
}

int rw_batch_due(size_t n, size_t max_send, size_t capacity, int64_t oldest_ms, int64_t deadline_ms,
                 int64_t now_ms) {
    return n > 0 && (n >= max_send || n >= capacity || now_ms - oldest_ms >= deadline_ms);
}

int64_t rw_backoff_next(int64_t cur, int64_t max) {
    int64_t next = cur > 0 ? cur * 2 : 30;
    return next > max ? max : next;
}

/* Prometheus' calculateDesiredShards, every RW_RESHARD_EVERY_MS. */
static void reshard_check(rw_queue *q, int64_t now_ms) {
    if (now_ms < q->reshard_at)
        return;
    double secs = (double)(now_ms - q->reshard_at + RW_RESHARD_EVERY_MS) / 1000.0;
    q->reshard_at = now_ms + RW_RESHARD_EVERY_MS;
    const double a = 0.2; /* EWMA weight of the last period, as Prometheus' */
    q->in_rate = a * ((double)q->in_period / secs) + (1 - a) * q->in_rate;
    q->out_rate = a * ((double)q->out_period / secs) + (1 - a) * q->out_rate;
    q->out_secs_rate = a * (q->out_secs_period / secs) + (1 - a) * q->out_secs_rate;
    q->in_period = q->out_period = 0;
    q->out_secs_period = 0;
    int failing = 0;
    for (size_t i = 0; i < q->nshards; i++)
        failing |= q->shards[i].retry_at != 0;
    /* while sends fail, more shards would not drain anything (Prometheus' shouldReshard) */
    size_t desired = failing ? q->nshards
                             : rw_shards_desired(q->nshards, (size_t)q->cfg->queue.min_shards,
                                                 (size_t)q->cfg->queue.max_shards, q->in_rate, q->out_rate,
                                                 q->out_secs_rate,
                                                 (double)(q->highest_in_ms - q->highest_sent_ms) / 1000.0);
    q->desired = desired;
    metric_set(q->m.shards_desired, (double)desired);
}

/* ---- metadata ------------------------------------------------------------------------------- */

/* A new round: the scraped families' metadata, encoded into meta_enc.  0
 * or < 0 (the round is skipped). */
static int meta_collect(rw_queue *q) {
    buf js = BUF_INIT;
    arena a;
    arena_init(&a, 0);
    json_val *v = NULL;
    kiln_err err = {0};
    buf_reset(&q->meta_enc);
    q->meta_n = q->meta_next = 0;
    int rc = q->o.metadata(q->o.metadata_data, &js);
    if (rc == 0 && (rc = buf_error(&js)) == 0)
        rc = json_parse(js.data ? js.data : "{}", js.len ? js.len : 2, &a, &v, &err);
    for (size_t i = 0; rc == 0 && v && v->type == JSON_OBJ && i < v->n; i++) {
        const json_val *list = &v->kids[i];
        for (size_t j = 0; rc == 0 && list->type == JSON_ARR && j < list->n; j++) {
            const json_val *e = &list->kids[j];
            rc = wire_metadata(&q->meta_enc, v->keys[i], json_get_str(e, "type"), json_get_str(e, "help"),
                               json_get_str(e, "unit"));
            if (rc == 0 && (rc = array_grow((void **)&q->meta_ends, &q->meta_cap, q->meta_n + 1,
                                            sizeof *q->meta_ends)) == 0)
                q->meta_ends[q->meta_n++] = q->meta_enc.len;
        }
    }
    buf_free(&js);
    arena_free(&a);
    if (rc < 0) {
        LOG_ERROR("remote write: cannot collect the metadata", "url=%s err=%s", q->cfg->url,
                  err.msg[0] ? err.msg : "out of memory");
        q->meta_n = 0;
    }
    return rc;
}

/* The families' metadata into q->v2meta (2.0): a failure leaves the table empty. */
static void meta_collect_v2(rw_queue *q) {
    buf js = BUF_INIT;
    arena a;
    arena_init(&a, 0);
    arena_free(&q->v2mem);
    arena_init(&q->v2mem, 0);
    q->nv2meta = 0;
    q->meta_gen++;
    json_val *v = NULL;
    kiln_err err = {0};
    static const char *const types[] = {"",        "counter", "gauge",   "histogram", "gaugehistogram",
                                        "summary", "info",    "stateset"};
    int rc = q->o.metadata(q->o.metadata_data, &js);
    if (rc == 0 && (rc = buf_error(&js)) == 0)
        rc = json_parse(js.data ? js.data : "{}", js.len ? js.len : 2, &a, &v, &err);
    for (size_t i = 0; rc == 0 && v && v->type == JSON_OBJ && i < v->n; i++) {
        const json_val *list = &v->kids[i];
        if (list->type != JSON_ARR || list->n == 0)
            continue;
        const json_val *e = &list->kids[0]; /* the first of a family's (as the 1.0 entries' first) */
        const char *ty = json_get_str(e, "type"), *help = json_get_str(e, "help"),
                   *unit = json_get_str(e, "unit");
        rw_meta m = {arena_strndup(&q->v2mem, v->keys[i], strlen(v->keys[i])), {0, NULL, NULL}};
        for (int k = 1; ty && k < 8; k++)
            if (!strcmp(ty, types[k]))
                m.md.type = k;
        m.md.help = help ? arena_strndup(&q->v2mem, help, strlen(help)) : NULL;
        m.md.unit = unit ? arena_strndup(&q->v2mem, unit, strlen(unit)) : NULL;
        if (!m.name || (help && !m.md.help) || (unit && !m.md.unit) ||
            array_grow((void **)&q->v2meta, &q->capv2meta, q->nv2meta + 1, sizeof *q->v2meta))
            rc = KILN_ENOMEM;
        else
            q->v2meta[q->nv2meta++] = m;
    }
    buf_free(&js);
    arena_free(&a);
    if (rc < 0) {
        LOG_ERROR("remote write: cannot collect the metadata", "url=%s err=%s", q->cfg->url,
                  err.msg[0] ? err.msg : "out of memory");
        q->nv2meta = 0;
    }
    if (q->nv2meta)
        qsort(q->v2meta, q->nv2meta, sizeof *q->v2meta, meta_cmp);
}

/* Starts the metadata round's next request when it is time. */
static void meta_step(rw_queue *q, int64_t now_ms) {
    rw_shard *m = &q->meta;
    const config_metadata *mc = &q->cfg->metadata;
    if (!q->o.metadata || !mc->send || m->sending)
        return;
    if (q->v2) { /* no requests of its own: the table the TimeSeries take theirs from */
        if (now_ms >= q->meta_at || (q->meta_miss && now_ms >= q->meta_done_at + RW_META_MISS_MS)) {
            q->meta_at = now_ms + (mc->send_interval_ms > 0 ? mc->send_interval_ms : 60000);
            q->meta_done_at = now_ms;
            q->meta_miss = 0;
            meta_collect_v2(q);
        }
        return;
    }
    if (m->retry_at) {
        if (m->retry_at <= now_ms)
            send_body(q, m, now_ms);
        return;
    }
    if (q->meta_next >= q->meta_n) {
        if (now_ms < q->meta_at)
            return;
        q->meta_at = now_ms + (mc->send_interval_ms > 0 ? mc->send_interval_ms : 60000);
        if (meta_collect(q) != 0 || !q->meta_n)
            return;
    }
    size_t max = mc->max_samples_per_send ? (size_t)mc->max_samples_per_send : 2000;
    size_t a = q->meta_next, b = q->meta_n - a > max ? a + max : q->meta_n;
    size_t from = a ? q->meta_ends[a - 1] : 0;
    buf_reset(&m->body);
    buf_append(&m->body, q->meta_enc.data + from, q->meta_ends[b - 1] - from);
    q->meta_next = b;
    m->q = q;
    if (wire_snappy(&m->body, &q->scratch) != 0 || (!m->e && shard_handle(m) != 0)) {
        LOG_ERROR("remote write: cannot send the metadata", "url=%s", q->cfg->url);
        metric_add(q->m.metadata_failed, (double)(b - a));
        return;
    }
    m->nbatch = b - a;
    m->backoff_ms = q->cfg->queue.min_backoff_ms;
    send_body(q, m, now_ms);
}

/* The metadata request finished: the next one at the next step, the same
 * again after a backoff on a recoverable error, dropped on a 4xx. */
static void meta_done(rw_queue *q, int curl_code, long status, int64_t now_ms) {
    rw_shard *m = &q->meta;
    curl_multi_remove_handle(q->multi, m->e);
    m->sending = 0;
    m->retry_at = 0;
    if (curl_code == CURLE_OK && status / 100 == 2) {
        metric_add(q->m.metadata, (double)m->nbatch);
        metric_add(q->m.metadata_bytes, (double)m->body.len);
    } else if (curl_code == CURLE_OK && status / 100 == 4 &&
               !(status == 429 && q->cfg->queue.retry_on_http_429)) {
        LOG_ERROR("remote write: non-recoverable error, metadata dropped", "url=%s status=%ld entries=%zu",
                  q->cfg->url, status, m->nbatch);
        metric_add(q->m.metadata_failed, (double)m->nbatch);
    } else {
        m->retry_at = now_ms + (m->backoff_ms > 0 ? m->backoff_ms : 30);
        m->backoff_ms = rw_backoff_next(m->backoff_ms, q->cfg->queue.max_backoff_ms);
    }
}

/* ---- series GC ------------------------------------------------------------------------------- */

/* The number of the newest wal/checkpoint.N, or -1. */
static int newest_checkpoint(const char *data_dir) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/wal", data_dir);
    DIR *d = opendir(path);
    int best = -1;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));) {
        int n, end = 0;
        if (sscanf(e->d_name, "checkpoint.%d%n", &n, &end) == 1 && e->d_name[end] == 0 && n > best)
            best = n;
    }
    closedir(d);
    return best;
}

static uint64_t *set_slot(uint64_t *set, size_t cap, uint64_t ref) {
    size_t i = (size_t)(XXH3_64bits(&ref, sizeof ref) & (cap - 1));
    while (set[i] && set[i] != ref + 1)
        i = (i + 1) & (cap - 1);
    return &set[i];
}

/* The series references of the newest checkpoint: an open-addressing set of
 * ref + 1 (*cap a power of two); NULL on an error. */
static uint64_t *checkpoint_refs(rw_queue *q, size_t *cap) {
    storage_wal_tail *t = NULL;
    kiln_err err = {0};
    if (storage_wal_tail_open(q->o.data_dir, (storage_wal_pos){-1, 0}, &t, &err) != 0)
        return NULL;
    size_t n = 0;
    *cap = 1024;
    uint64_t *set = calloc(*cap, sizeof *set);
    storage_wal_record r;
    int rc = 0;
    while (set && (rc = storage_wal_tail_next(t, &r, &err)) > 0 && r.pos.segment < 0) {
        for (size_t i = 0; set && i < r.nseries; i++) {
            if ((n + 1) * 2 > *cap) { /* grow: rehash */
                uint64_t *big = calloc(*cap * 2, sizeof *big);
                for (size_t j = 0; big && j < *cap; j++)
                    if (set[j])
                        *set_slot(big, *cap * 2, set[j] - 1) = set[j];
                free(set);
                set = big;
                *cap *= 2;
                if (!set)
                    break;
            }
            uint64_t *slot = set_slot(set, *cap, r.series[i].ref);
            n += *slot == 0;
            *slot = r.series[i].ref + 1;
        }
    }
    storage_wal_tail_close(t);
    if (set && rc < 0) {
        free(set);
        return NULL;
    }
    return set;
}

/*
 * Once the queue reads past a new checkpoint N, the series whose records
 * were in segments up to N (or in an older checkpoint) and that the new
 * checkpoint no longer holds are gone from the head: their entries leave
 * the cache (so memory follows the live series, not every series ever
 * seen) and are freed once no pending sample refers to them.
 */
static void series_gc(rw_queue *q, int64_t now_ms) {
    uint64_t low = low_water(q);
    size_t keep = 0;
    for (size_t i = 0; i < q->ndead; i++) {
        if (q->dead[i].seq > low) {
            q->dead[keep++] = q->dead[i];
            continue;
        }
        rw_series *e = &q->series[q->dead[i].idx];
        free(e->lbl);
        *e = (rw_series){0};
        if (array_grow((void **)&q->free_idx, &q->capfree, q->nfree + 1, sizeof *q->free_idx) == 0)
            q->free_idx[q->nfree++] = q->dead[i].idx;
    }
    q->ndead = keep;
    if (now_ms < q->gc_at)
        return;
    q->gc_at = now_ms + RW_GC_EVERY_MS;
    int cp = newest_checkpoint(q->o.data_dir);
    if (cp <= q->gc_checkpoint || storage_wal_tail_pos(q->tail).segment <= cp)
        return; /* nothing new, or the queue still reads what the checkpoint replaced */
    size_t cap;
    uint64_t *live = checkpoint_refs(q, &cap);
    if (!live)
        return; /* the next time tries again */
    q->gc_checkpoint = cp;
    size_t removed = 0;
    for (size_t i = 0; i < q->kcap; i++) {
        if (!q->keys[i])
            continue;
        uint32_t idx = q->vals[i];
        if (q->series[idx].seg > cp || *set_slot(live, cap, q->keys[i] - 1))
            continue;
        if (array_grow((void **)&q->dead, &q->capdead, q->ndead + 1, sizeof *q->dead) != 0)
            break;
        q->dead[q->ndead++] = (rw_dead){idx, q->next_seq};
        q->keys[i] = UINT64_MAX; /* removed below */
        removed++;
    }
    free(live);
    /* the table again without the removed keys (open addressing has no delete) */
    uint64_t *ok = q->keys;
    uint32_t *ov = q->vals;
    size_t ocap = q->kcap;
    q->keys = NULL;
    q->vals = NULL;
    q->kcap = q->kn = 0;
    for (size_t i = 0; i < ocap; i++)
        if (ok[i] && ok[i] != UINT64_MAX && cache_put(q, ok[i] - 1, ov[i]) != 0)
            LOG_ERROR("remote write: out of memory rebuilding the series cache", "url=%s", q->cfg->url);
    free(ok);
    free(ov);
    LOG_INFO("remote write: series cache garbage-collected", "url=%s checkpoint=%d removed=%zu kept=%zu",
             q->cfg->url, cp, removed, q->kn);
}

int64_t rw_queue_step(rw_queue *q, int64_t now_ms) {
    reshard_check(q, now_ms);
    series_gc(q, now_ms);
    meta_step(q, now_ms);
    int more = watch(q, now_ms);
    int64_t wait = more ? 0 : 250, pending = 0, deadline = q->cfg->queue.batch_send_deadline_ms;
    int idle = 1;
    for (size_t i = 0; i < q->nshards; i++) {
        rw_shard *sh = &q->shards[i];
        pending += (int64_t)sh->n + (sh->sending || sh->retry_at ? (int64_t)sh->nbatch : 0);
        if (sh->sending) {
            idle = 0;
            continue;
        }
        if (!sh->retry_at &&
            (rw_batch_due(sh->n, q->max_send, q->capacity, sh->oldest_ms, deadline, now_ms) ||
             (sh->n && q->desired != q->nshards)))
            start_batch(q, sh, now_ms);
        if (sh->retry_at && sh->retry_at <= now_ms)
            send_body(q, sh, now_ms);
        if (sh->retry_at || sh->sending)
            idle = 0;
        if (sh->retry_at && sh->retry_at - now_ms < wait)
            wait = sh->retry_at - now_ms;
        if (!sh->sending && !sh->retry_at && sh->n && sh->oldest_ms + deadline - now_ms < wait)
            wait = sh->oldest_ms + deadline - now_ms;
        if (sh->n)
            idle = 0;
    }
    metric_set(q->m.pending, (double)pending);
    metric_set(q->m.highest_in, (double)q->highest_in_ms / 1000.0);
    if (q->desired != q->nshards && idle) {
        if (shards_make(q, q->desired) != 0) {
            LOG_ERROR("remote write: cannot reshard", "url=%s", q->cfg->url);
            q->desired = q->nshards;
        } else {
            LOG_INFO("remote write: resharding", "url=%s shards=%zu", q->cfg->url, q->nshards);
        }
    }
    if (now_ms - q->progress_at >= RW_PROGRESS_EVERY_MS) {
        q->progress_at = now_ms;
        progress_write(q);
    }
    return wait < 0 ? 0 : wait;
}

int rw_queue_owns(const rw_queue *q, void *e) {
    char *p = NULL;
    curl_easy_getinfo((CURL *)e, CURLINFO_PRIVATE, &p);
    return p && ((rw_shard *)(void *)p)->q == q;
}

/* Retry-After in seconds (Go's http date form is taken as no hint). */
static int64_t retry_after_ms(CURL *e) {
    struct curl_header *h = NULL;
    if (curl_easy_header(e, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h)
        return -1;
    char *end;
    long s = strtol(h->value, &end, 10);
    return end != h->value && s >= 0 ? (int64_t)s * 1000 : -1;
}

void rw_queue_done(rw_queue *q, void *handle, int curl_code, long status, int64_t now_ms) {
    char *p = NULL;
    curl_easy_getinfo((CURL *)handle, CURLINFO_PRIVATE, &p);
    rw_shard *sh = (rw_shard *)(void *)p;
    if (sh == &q->meta) {
        meta_done(q, curl_code, status, now_ms);
        return;
    }
    curl_multi_remove_handle(q->multi, sh->e);
    sh->sending = 0;
    double took = (double)(now_ms - sh->sent_at) / 1000.0;
    metric_observe(q->m.duration, took);
    q->out_secs_period += took;
    int ok = curl_code == CURLE_OK && status / 100 == 2;
    int drop =
        curl_code == CURLE_OK && status / 100 == 4 && !(status == 429 && q->cfg->queue.retry_on_http_429);
    metric_add(q->m.bytes, (double)sh->body.len);
    if (ok || drop) {
        if (ok) {
            metric_add(q->m.samples, (double)sh->nbatch);
            if (sh->batch_max_t > q->highest_sent_ms) {
                q->highest_sent_ms = sh->batch_max_t;
                metric_set(q->m.highest_sent, (double)sh->batch_max_t / 1000.0);
            }
        } else {
            LOG_ERROR("remote write: non-recoverable error, batch dropped", "url=%s status=%ld samples=%zu",
                      q->cfg->url, status, sh->nbatch);
            metric_add(q->m.failed, (double)sh->nbatch);
        }
        q->out_period += sh->nbatch;
        sh->nbatch = 0;
        sh->retry_at = 0;
        progress_write(q); /* a restart resends at most what is still in flight */
        return;
    }
    /* recoverable: the same body again after the backoff (doubled up to max_backoff) */
    int64_t wait = sh->backoff_ms > 0 ? sh->backoff_ms : 30;
    int64_t hint = status == 429 ? retry_after_ms(sh->e) : -1;
    if (hint >= 0)
        wait = hint;
    sh->backoff_ms = rw_backoff_next(sh->backoff_ms, q->cfg->queue.max_backoff_ms);
    metric_add(q->m.retried, (double)sh->nbatch);
    LOG_WARN("remote write: failed to send a batch, retrying", "url=%s status=%ld err=%s wait_ms=%lld",
             q->cfg->url, status, curl_code == CURLE_OK ? "" : curl_easy_strerror((CURLcode)curl_code),
             (long long)wait);
    sh->retry_at = now_ms + (wait > 0 ? wait : 1);
}

void rw_queue_key(const config_remote_write *cfg, char out[17]) {
    XXH3_state_t *st = XXH3_createState();
    uint64_t h = 0;
    if (st) {
        XXH3_64bits_reset(st);
        XXH3_64bits_update(st, cfg->url, strlen(cfg->url) + 1);
        if (cfg->name)
            XXH3_64bits_update(st, cfg->name, strlen(cfg->name));
        h = XXH3_64bits_digest(st);
        XXH3_freeState(st);
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* The saved position, or segment -1 (a first start). */
static storage_wal_pos progress_read(const char *dir) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/progress", dir);
    storage_wal_pos p = {-1, 0};
    FILE *f = fopen(path, "r");
    if (!f)
        return p;
    int seg;
    long long off;
    if (fscanf(f, "%d %lld", &seg, &off) == 2 && seg >= 0 && off >= 0)
        p = (storage_wal_pos){seg, off};
    fclose(f);
    return p;
}

int rw_queue_new(const config_remote_write *cfg, const config_label *ext, size_t next,
                 const remote_options *o, void *multi, const rw_metrics *m, rw_queue **out, kiln_err *err) {
    *out = NULL;
    rw_queue *q = calloc(1, sizeof *q);
    if (!q)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    q->cfg = cfg;
    q->ext = ext;
    q->next = next;
    q->o = *o;
    q->multi = multi;
    q->m = *m;
    arena_init(&q->tmp, 0);
    arena_init(&q->v2mem, 0);
    q->capacity = cfg->queue.capacity ? (size_t)cfg->queue.capacity : 1;
    q->max_send = cfg->queue.max_samples_per_send ? (size_t)cfg->queue.max_samples_per_send : 1;
    char key[17];
    rw_queue_key(cfg, key);
    snprintf(q->dir, sizeof q->dir, "%s/remote/%s", o->data_dir, key);
    int rc = fileio_mkdir_p(q->dir, err);
    if (rc)
        goto fail;
    q->progress = progress_read(q->dir);
    q->gc_checkpoint = newest_checkpoint(o->data_dir); /* the tail reads its series */
    if ((rc = storage_wal_tail_open(o->data_dir, q->progress, &q->tail, err)))
        goto fail;
    rhttp_creds_load(&q->creds, &cfg->http, "remote write", cfg->url);
    q->v2 = cfg->protobuf_message && strcmp(cfg->protobuf_message, "io.prometheus.write.v2.Request") == 0;
    q->desired = cfg->queue.min_shards ? (size_t)cfg->queue.min_shards : 1;
    if ((rc = shards_make(q, q->desired))) {
        kiln_err_set(err, rc, "remote write %s: cannot set up the shards", cfg->url);
        goto fail;
    }
    q->reshard_at = time_now_ms() + RW_RESHARD_EVERY_MS;
    metric_set(q->m.shards_min, (double)cfg->queue.min_shards);
    metric_set(q->m.shards_max, (double)cfg->queue.max_shards);
    metric_set(q->m.shards_desired, (double)q->desired);
    LOG_INFO("remote write: starting", "url=%s segment=%d offset=%lld", cfg->url, q->progress.segment,
             (long long)q->progress.offset);
    *out = q;
    return 0;
fail:
    rw_queue_free(q);
    return rc;
}

int64_t rw_queue_highest_sent(const rw_queue *q) {
    return q->highest_sent_ms;
}

const config_remote_write *rw_queue_config(const rw_queue *q) {
    return q->cfg;
}

void rw_queue_rebind(rw_queue *q, const config_remote_write *cfg, const config_label *ext) {
    q->cfg = cfg;
    q->ext = ext;
}

void rw_queue_free(rw_queue *q) {
    if (!q)
        return;
    if (q->tail)
        progress_write(q);
    shards_free(q);
    shard_release(q, &q->meta);
    buf_free(&q->meta_enc);
    free(q->v2meta);
    arena_free(&q->v2mem);
    free(q->meta_ends);
    storage_wal_tail_close(q->tail);
    for (size_t i = 0; i < q->nseries; i++)
        free(q->series[i].lbl);
    free(q->series);
    free(q->dead);
    free(q->free_idx);
    free(q->keys);
    free(q->vals);
    buf_free(&q->raw);
    buf_free(&q->scratch);
    rhttp_creds_free(&q->creds);
    wire_v2_free(&q->v2req);
    arena_free(&q->tmp);
    free(q);
}
