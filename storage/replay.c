/*
 * replay.c - WAL replay: at open, the head is rebuilt from chunks_head (the
 * full chunks, attached to their series as these are created) and the WAL
 * (checkpoint, then segments: series records, samples, tombstones, and
 * exemplars into the exemplar store when it is on).
 *
 * Called by storage_open (storage.c) alone, through storage__replay, before
 * anything else can reach the head.
 *
 * Threads: three kinds, for the time replay takes.  A read-ahead thread
 * reads records (CRC, reassembly, decompression) into blocks of about a
 * megabyte; the calling thread decodes them, creates the series (alone:
 * references must be known before samples name them), and splits samples
 * by series into batches; workers (replay_threads, at most
 * REPLAY_MAX_WORKERS) append a batch's parts, each to its own series with
 * no lock (head_append_owned_run).  Two mutex/condvar pairs hand blocks and
 * batches over (rank LOCK_RANK_REPLAY: nothing is taken under them).
 *
 * Invariants:
 *   - a series goes to one worker (reference modulo the workers), so its
 *     samples are appended in WAL order;
 *   - a sample is dispatched only once its series record was read (else
 *     it counts as an unknown reference, and is dropped as Prometheus does);
 *   - samples older than the head's min valid time are in blocks, those up
 *     to a series' last chunk from chunks_head are in that chunk: both are
 *     skipped, not appended again;
 *   - samples (and chunks_head chunks) more than STORAGE_MAX_FUTURE_MS after
 *     the clock at open are dropped with a warning: a WAL written before the
 *     bound existed may hold one, and it would move the head's range into
 *     the future, making every current sample out of bounds.
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/storage_int.h"
#include "storage/walrec.h"

/* WAL references that name a series already created under another
 * reference (Prometheus may log the same labels twice). */
typedef struct ref_alias {
    struct {
        uint64_t from, to;
    } * v;
    size_t n, cap;
} ref_alias;

static uint64_t alias_lookup(const ref_alias *a, uint64_t ref) {
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].from == ref)
            return a->v[i].to;
    return ref;
}

KILN_MUST_CHECK static int alias_add(ref_alias *a, uint64_t from, uint64_t to) {
    if (array_grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v) != 0)
        return KILN_ENOMEM;
    a->v[a->n].from = from;
    a->v[a->n++].to = to;
    return 0;
}

typedef struct replay_stats {
    uint64_t series, samples, unknown_refs, rejected, records, mmapped, in_blocks, in_chunks, future;
    uint64_t exemplars;   /* added to the exemplar store */
    int64_t first_future; /* the timestamp of the first future sample or chunk dropped */
} replay_stats;

/* Full chunks found in chunks_head at start, sorted by series then file
 * position (which is time order). */
typedef struct mmchunk {
    uint64_t sref;
    int64_t mint, maxt;
    uint64_t cref;
    uint8_t enc; /* 1 XOR, 2 or 3 histograms */
} mmchunk;

typedef struct mmchunks {
    mmchunk *v;
    size_t n, cap;
    int64_t minv;    /* chunks ending before it are in blocks already */
    int64_t maxv;    /* chunks (and samples) ending after it are too far in the future */
    uint64_t future; /* chunks dropped for it */
    int64_t first_future;
    uint64_t ooo; /* out-of-order chunks seen (left to ooostore.c) */
    /* by series reference (below MM_REFS), the end of its chunks: WAL samples
     * up to there are in them already, and replay drops them on reading */
    int64_t *end;
    size_t nend;
} mmchunks;

#define MM_REFS ((size_t)1 << 24)

/* The references of the series replay created, as bits (those below
 * KNOWN_REFS): checking each sample's series in the head's table of
 * pointers cost more.  A reference not in it may still be the head's. */
typedef struct refset {
    uint64_t *w;
    size_t n, cap; /* words set up, words allocated */
} refset;

#define KNOWN_REFS ((uint64_t)1 << 26)

static void refset_add(refset *k, uint64_t ref) {
    size_t i = (size_t)(ref / 64);
    if (ref >= KNOWN_REFS)
        return;
    if (i >= k->n) {
        if (array_grow((void **)&k->w, &k->cap, i + 1, sizeof *k->w) != 0)
            return; /* out of memory: the slower check stands in */
        memset(k->w + k->n, 0, (i + 1 - k->n) * sizeof *k->w);
        k->n = i + 1;
    }
    k->w[i] |= (uint64_t)1 << (ref % 64);
}

static int refset_has(const refset *k, uint64_t ref) {
    return ref / 64 < k->n && (k->w[ref / 64] >> (ref % 64) & 1);
}

/* Notes that the series of reference ref has chunks up to maxt. */
static void mm_note_end(mmchunks *m, uint64_t ref, int64_t maxt) {
    if (ref >= MM_REFS)
        return;
    if (ref >= m->nend) {
        size_t old = m->nend;
        if (array_grow((void **)&m->end, &m->nend, ref + 1, sizeof *m->end) != 0)
            return; /* a filter only: without it those samples are dropped on appending */
        for (size_t i = old; i < m->nend; i++)
            m->end[i] = INT64_MIN;
    }
    m->end[ref] = maxt;
}

static int mm_collect(uint64_t sref, int64_t mint, int64_t maxt, uint64_t cref, uint8_t enc, void *data) {
    mmchunks *m = data;
    if (maxt < m->minv)
        return 0;
    if (enc & 0x80) { /* out of order: attached by ooostore.c after the replay */
        m->ooo++;
        return 0;
    }
    if (maxt > m->maxv) {
        if (m->future++ == 0)
            m->first_future = maxt;
        return 0;
    }
    if (array_grow((void **)&m->v, &m->cap, m->n + 1, sizeof *m->v) != 0)
        return KILN_ENOMEM;
    m->v[m->n++] = (mmchunk){sref, mint, maxt, cref, enc};
    return 0;
}

static int mm_cmp(const void *a, const void *b) {
    const mmchunk *x = a, *y = b;
    if (x->sref != y->sref)
        return x->sref < y->sref ? -1 : 1;
    return x->cref < y->cref ? -1 : x->cref > y->cref;
}

/* bsearch's comparison: a series reference against a chunk's. */
static int mm_find(const void *key, const void *elem) {
    uint64_t ref = *(const uint64_t *)key, at = ((const mmchunk *)elem)->sref;
    return ref < at ? -1 : ref > at;
}

/* Gives a new series its chunks from chunks_head. */
static void mm_attach(storage *s, mmchunks *m, hseries *hs, uint64_t sref, replay_stats *st) {
    const mmchunk *hit = bsearch(&sref, m->v, m->n, sizeof *m->v, mm_find);
    if (!hit)
        return;
    size_t lo = (size_t)(hit - m->v);
    while (lo > 0 && m->v[lo - 1].sref == sref)
        lo--;
    for (size_t i = lo; i < m->n && m->v[i].sref == sref; i++) {
        int last = i + 1 == m->n || m->v[i + 1].sref != sref, rc;
        if (m->v[i].enc == 1)
            rc = head_attach_chunk(s->h, hs, m->v[i].mint, m->v[i].maxt, m->v[i].cref, last);
        else
            rc = head_attach_hist_chunk(s->h, hs, m->v[i].mint, m->v[i].maxt, m->v[i].cref, m->v[i].enc);
        if (rc == 0) {
            st->mmapped++;
            mm_note_end(m, hseries_ref(hs), m->v[i].maxt);
        }
    }
}

/*
 * A series record.  Its label strings are used where they lie: once the
 * record is decoded, the byte after each string (the next length, or the
 * block's padding after the last) is made its terminating NUL.
 */
KILN_MUST_CHECK static int replay_series(storage *s, uint8_t *rec, size_t len, arena *a, ref_alias *al,
                                         mmchunks *mm, refset *known, replay_stats *st, kiln_err *err) {
    walrec_series *ser;
    size_t n;
    int rc = walrec_decode_series(rec, len, a, &ser, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        label *ls = arena_alloc_nz(a, (ser[i].nlabels + 1) * sizeof *ls);
        if (!ls)
            return kiln_err_set(err, KILN_ENOMEM, "replay: out of memory");
        for (size_t j = 0; j < ser[i].nlabels; j++) {
            const walrec_label *wl = &ser[i].labels[j];
            ls[j].name = wl->name;
            ls[j].value = wl->value;
            ((char *)wl->name)[wl->name_len] = 0;
            ((char *)wl->value)[wl->value_len] = 0;
        }
        hseries *hs;
        int created;
        kiln_err e2;
        if (head_get_or_create(s->h, ls, ser[i].nlabels, ser[i].ref, &hs, &created, &e2) != 0) {
            LOG_WARN("WAL replay: series record skipped", "ref=%llu err=%s", (unsigned long long)ser[i].ref,
                     e2.msg);
            continue;
        }
        if (!created && hseries_ref(hs) != ser[i].ref && alias_add(al, ser[i].ref, hseries_ref(hs)) != 0)
            return kiln_err_set(err, KILN_ENOMEM, "replay: out of memory");
        if (created && mm->n)
            mm_attach(s, mm, hs, ser[i].ref, st);
        refset_add(known, hseries_ref(hs));
        st->series++;
    }
    return 0;
}

/*
 * Parallel sample replay.  The reading thread decodes records and splits
 * their samples by series (reference modulo the number of workers) into a
 * batch; workers append their part, prefetching series a few samples ahead
 * (their memory is cold: replay runs in time order across all series).  Two
 * batches alternate, so decoding overlaps appending.  A series always goes
 * to the same worker, so its samples stay in order.
 */
#define REPLAY_MAX_WORKERS 8
#define REPLAY_BATCH ((size_t)1 << 20)

typedef sample rsample;

/* A part: the samples of one worker's series, and their references. */
typedef struct rpart {
    rsample *e;
    uint32_t *ref;
    size_t n, cap, refcap;
} rpart;

/* The samples of one series in a sorted part end at `end`. */
typedef struct rrun {
    hseries *hs;
    size_t end;
} rrun;

typedef struct rbatch {
    rpart part[REPLAY_MAX_WORKERS];
    size_t n;
} rbatch;

typedef struct replayer replayer;

typedef struct rworker {
    pthread_t th;
    int id;
    replayer *rp;
    uint64_t samples, rejected;
    int nomem;
    rsample *sorted; /* the part's samples ordered by series (a bigbuf: written all over) */
    rrun *runs;      /* and where each series' samples end */
    size_t nruns;
    uint32_t *order, *tmp; /* sample order, for references too sparse to count */
    uint32_t *count;       /* counting-sort buckets */
    size_t scap, rcap, ocap, tcap, ccap;
} rworker;

struct replayer {
    storage *s;
    int nw;
    rworker w[REPLAY_MAX_WORKERS];
    rbatch b[2];
    int fill; /* the batch being filled */
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    rbatch *cur;
    uint64_t gen;
    int pending, quit;
};

static void rpart_free(rpart *p) {
    free(p->e);
    free(p->ref);
}

/* Room for n more samples. */
KILN_MUST_CHECK static int rpart_reserve(rpart *p, size_t n) {
    if (array_grow((void **)&p->e, &p->cap, p->n + n, sizeof *p->e) != 0 ||
        array_grow((void **)&p->ref, &p->refcap, p->n + n, sizeof *p->ref) != 0)
        return KILN_ENOMEM;
    return 0;
}

/*
 * Orders a part's samples by series into w->sorted, keeping each series'
 * samples in arrival (time) order.  A batch then touches each series once for
 * all its samples instead of once per sample, which is what replay time is
 * made of.  References are dense in practice (Prometheus and kiln number
 * series from 1), and a part holds one residue modulo the number of workers:
 * a stable counting sort on (ref - min) / nw does it in one pass that moves
 * the samples themselves.  Sparse references fall back to a radix sort of
 * indexes, 16 bits a pass.
 */
#define REPLAY_COUNT_MAX (1u << 20)

KILN_MUST_CHECK static int sort_by_series(rworker *w, const rpart *p) {
    head *h = w->rp->s->h;
    w->nruns = 0;
    if (p->n == 0)
        return 0;
    if (bigbuf_grow((void **)&w->sorted, &w->scap, p->n, sizeof *w->sorted) != 0 ||
        array_grow((void **)&w->runs, &w->rcap, p->n, sizeof *w->runs) != 0)
        return KILN_ENOMEM;
    uint32_t minref = UINT32_MAX, maxref = 0;
    for (size_t i = 0; i < p->n; i++) {
        uint32_t r = p->ref[i];
        minref = r < minref ? r : minref;
        maxref = r > maxref ? r : maxref;
    }
    uint32_t nw = (uint32_t)w->rp->nw;
    /* a shift for the usual power-of-two number of workers: a division per sample costs */
    int sh = (nw & (nw - 1)) == 0 ? __builtin_ctz(nw) : -1;
#define RKEY(r) (sh >= 0 ? ((r)-minref) >> sh : ((r)-minref) / nw)
    size_t range = (size_t)RKEY(maxref) + 1;
    if (range <= REPLAY_COUNT_MAX) {
        if (array_grow((void **)&w->count, &w->ccap, range, sizeof *w->count) != 0)
            return KILN_ENOMEM;
        uint32_t *cnt = w->count;
        memset(cnt, 0, range * sizeof *cnt);
        for (size_t i = 0; i < p->n; i++)
            cnt[RKEY(p->ref[i])]++;
        uint32_t sum = 0;
        for (size_t d = 0; d < range; d++) {
            uint32_t c = cnt[d];
            cnt[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < p->n; i++)
            w->sorted[cnt[RKEY(p->ref[i])]++] = p->e[i];
        /* each bucket's count is its end now */
        size_t at = 0;
        for (size_t d = 0; d < range; d++) {
            if (cnt[d] == at)
                continue;
            at = cnt[d];
            w->runs[w->nruns++] = (rrun){head_series(h, minref + (uint64_t)d * nw), at};
        }
        return 0;
    }
#undef RKEY
    if (bigbuf_grow((void **)&w->order, &w->ocap, p->n, sizeof *w->order) != 0 ||
        bigbuf_grow((void **)&w->tmp, &w->tcap, p->n, sizeof *w->tmp) != 0 ||
        array_grow((void **)&w->count, &w->ccap, 65536, sizeof *w->count) != 0)
        return KILN_ENOMEM;
    for (size_t i = 0; i < p->n; i++)
        w->order[i] = (uint32_t)i;
    for (int shift = 0; shift < 32 && (shift == 0 || (maxref >> shift)); shift += 16) {
        memset(w->count, 0, 65536 * sizeof *w->count);
        for (size_t i = 0; i < p->n; i++)
            w->count[(p->ref[w->order[i]] >> shift) & 0xffff]++;
        uint32_t sum = 0;
        for (size_t d = 0; d < 65536; d++) {
            uint32_t c = w->count[d];
            w->count[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < p->n; i++) {
            uint32_t o = w->order[i];
            w->tmp[w->count[(p->ref[o] >> shift) & 0xffff]++] = o;
        }
        uint32_t *x = w->order;
        size_t xc = w->ocap;
        w->order = w->tmp;
        w->ocap = w->tcap;
        w->tmp = x;
        w->tcap = xc;
    }
    for (size_t i = 0; i < p->n; i++) {
        uint32_t ref = p->ref[w->order[i]];
        w->sorted[i] = p->e[w->order[i]];
        if (i + 1 == p->n || p->ref[w->order[i + 1]] != ref)
            w->runs[w->nruns++] = (rrun){head_series(h, ref), i + 1};
    }
    return 0;
}

static void replay_part(rworker *w, const rpart *p) {
    head *h = w->rp->s->h;
    int64_t mint = INT64_MAX, maxt = INT64_MIN;
    if (sort_by_series(w, p) != 0) {
        w->nomem = 1;
        return;
    }
    const rsample *e = w->sorted;
    const rrun *run = w->runs;
    size_t nr = w->nruns;
    enum { AHEAD = 8, DEEP = 4 };
    for (size_t j = 0; j < nr && j < AHEAD; j++)
        hseries_prefetch(run[j].hs, 0);
    size_t i = 0;
    for (size_t j = 0; j < nr; j++) {
        if (j + AHEAD < nr)
            hseries_prefetch(run[j + AHEAD].hs, 0);
        if (j + DEEP < nr)
            hseries_prefetch(run[j + DEEP].hs, 1);
        /* the series belongs to this worker alone, and nothing else runs yet */
        if (head_append_owned_run(h, run[j].hs, e + i, run[j].end - i, &mint, &maxt, &w->samples,
                                  &w->rejected) != 0)
            w->nomem = 1;
        i = run[j].end;
    }
    head_note_range(h, mint, maxt);
}

static void *replay_worker(void *arg) {
    rworker *w = arg;
    replayer *rp = w->rp;
    uint64_t seen = 0;
    for (;;) {
        lockrank_mutex_lock(&rp->mu, LOCK_RANK_REPLAY);
        while (rp->gen == seen && !rp->quit)
            pthread_cond_wait(&rp->cv_work, &rp->mu);
        if (rp->gen == seen) {
            lockrank_mutex_unlock(&rp->mu, LOCK_RANK_REPLAY);
            return NULL;
        }
        seen = rp->gen;
        rbatch *b = rp->cur;
        lockrank_mutex_unlock(&rp->mu, LOCK_RANK_REPLAY);
        replay_part(w, &b->part[w->id]);
        lockrank_mutex_lock(&rp->mu, LOCK_RANK_REPLAY);
        if (--rp->pending == 0)
            pthread_cond_signal(&rp->cv_done);
        lockrank_mutex_unlock(&rp->mu, LOCK_RANK_REPLAY);
    }
}

static void replayer_wait(replayer *rp) {
    lockrank_mutex_lock(&rp->mu, LOCK_RANK_REPLAY);
    while (rp->pending > 0)
        pthread_cond_wait(&rp->cv_done, &rp->mu);
    lockrank_mutex_unlock(&rp->mu, LOCK_RANK_REPLAY);
}

/* Hands the filled batch to the workers and switches to the other one. */
static void replayer_dispatch(replayer *rp) {
    rbatch *b = &rp->b[rp->fill];
    if (b->n == 0)
        return;
    replayer_wait(rp);
    lockrank_mutex_lock(&rp->mu, LOCK_RANK_REPLAY);
    rp->cur = b;
    rp->gen++;
    rp->pending = rp->nw;
    pthread_cond_broadcast(&rp->cv_work);
    lockrank_mutex_unlock(&rp->mu, LOCK_RANK_REPLAY);
    rp->fill ^= 1;
    rbatch *next = &rp->b[rp->fill];
    /* the other batch was finished before this dispatch began */
    for (int i = 0; i < rp->nw; i++)
        next->part[i].n = 0;
    next->n = 0;
}

KILN_MUST_CHECK static int replayer_start(replayer *rp, storage *s, int nw) {
    memset(rp, 0, sizeof *rp);
    rp->s = s;
    rp->nw = nw < 1 ? 1 : nw > REPLAY_MAX_WORKERS ? REPLAY_MAX_WORKERS : nw;
    pthread_mutex_init(&rp->mu, NULL);
    pthread_cond_init(&rp->cv_work, NULL);
    pthread_cond_init(&rp->cv_done, NULL);
    for (int i = 0; i < rp->nw; i++) {
        rp->w[i].id = i;
        rp->w[i].rp = rp;
        if (pthread_create(&rp->w[i].th, NULL, replay_worker, &rp->w[i]) != 0) {
            rp->nw = i;
            return i > 0 ? 0 : KILN_ENOMEM;
        }
    }
    return 0;
}

/* Replays what is left, stops the workers, adds up their counts. */
static int replayer_finish(replayer *rp, replay_stats *st) {
    replayer_dispatch(rp);
    replayer_wait(rp);
    lockrank_mutex_lock(&rp->mu, LOCK_RANK_REPLAY);
    rp->quit = 1;
    pthread_cond_broadcast(&rp->cv_work);
    lockrank_mutex_unlock(&rp->mu, LOCK_RANK_REPLAY);
    int nomem = 0;
    for (int i = 0; i < rp->nw; i++) {
        pthread_join(rp->w[i].th, NULL);
        st->samples += rp->w[i].samples;
        st->rejected += rp->w[i].rejected;
        nomem |= rp->w[i].nomem;
        rworker *w = &rp->w[i];
        bigbuf_free(w->sorted, w->scap, sizeof *w->sorted);
        free(w->runs);
        bigbuf_free(w->order, w->ocap, sizeof *w->order);
        bigbuf_free(w->tmp, w->tcap, sizeof *w->tmp);
        free(w->count);
    }
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < REPLAY_MAX_WORKERS; i++)
            rpart_free(&rp->b[k].part[i]);
    pthread_mutex_destroy(&rp->mu);
    pthread_cond_destroy(&rp->cv_work);
    pthread_cond_destroy(&rp->cv_done);
    return nomem ? KILN_ENOMEM : 0;
}

KILN_MUST_CHECK static int replay_samples(replayer *rp, const uint8_t *rec, size_t len, walrec_sample **sbuf,
                                          size_t *scap, const ref_alias *al, const mmchunks *mm,
                                          const refset *known, replay_stats *st, kiln_err *err) {
    size_t need = walrec_samples_max(len), n;
    if (need > *scap) {
        walrec_sample *nv = realloc(*sbuf, need * sizeof *nv);
        if (!nv)
            return kiln_err_set(err, KILN_ENOMEM, "replay: out of memory");
        *sbuf = nv;
        *scap = need;
    }
    int rc = walrec_decode_samples(rec, len, *sbuf, *scap, &n, err);
    if (rc)
        return rc;
    rbatch *b = &rp->b[rp->fill];
    uint32_t nw = (uint32_t)rp->nw, mask = (nw & (nw - 1)) == 0 ? nw - 1 : 0;
    for (uint32_t k = 0; k < nw; k++)
        if (rpart_reserve(&b->part[k], n) != 0)
            return kiln_err_set(err, KILN_ENOMEM, "replay: out of memory");
    head *h = rp->s->h;
    const walrec_sample *x = *sbuf;
    int64_t minv = head_min_valid(h); /* older samples are in blocks already */
    for (size_t i = 0; i < n; i++) {
        if (x[i].t < minv) {
            st->in_blocks++;
            continue;
        }
        if (x[i].t > mm->maxv) {
            if (st->future++ == 0)
                st->first_future = x[i].t;
            continue;
        }
        uint64_t ref = al->n ? alias_lookup(al, x[i].ref) : x[i].ref;
        if (ref < mm->nend && x[i].t <= mm->end[ref]) {
            st->in_chunks++;
            continue;
        }
        /* known now (a series record comes first); the worker looks the series up once a batch */
        if (!refset_has(known, ref) && !head_series(h, ref)) {
            st->unknown_refs++;
            continue;
        }
        uint32_t r32 = (uint32_t)ref; /* head_series knows references below 2^32 only */
        rpart *p = &b->part[mask ? r32 & mask : r32 % nw];
        p->ref[p->n] = r32;
        p->e[p->n++] = (rsample){x[i].t, x[i].v};
        b->n++;
    }
    /* the first batches are smaller: the workers wait for the first one */
    if (b->n >= (rp->gen >= 3 ? REPLAY_BATCH : REPLAY_BATCH >> (3 - rp->gen)))
        replayer_dispatch(rp);
    return 0;
}

/*
 * Histogram samples: appended by the replaying thread itself, after the
 * float samples dispatched so far are in (so a series' samples stay in WAL
 * order and no worker touches its series meanwhile), under the series'
 * lock.  Skipped as float samples are: before the head's min valid time,
 * too far in the future, of unknown series.
 */
KILN_MUST_CHECK static int replay_histograms(replayer *rp, const uint8_t *rec, size_t len, arena *a,
                                             const ref_alias *al, const mmchunks *mm, const refset *known,
                                             replay_stats *st, kiln_err *err) {
    walrec_histogram *v;
    size_t n;
    int rc = walrec_decode_histograms(rec, len, a, &v, &n, err);
    if (rc)
        return rc;
    replayer_dispatch(rp);
    replayer_wait(rp);
    head *h = rp->s->h;
    int64_t minv = head_min_valid(h), lo = INT64_MAX, hi = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        if (v[i].t < minv) {
            st->in_blocks++;
            continue;
        }
        if (v[i].t > mm->maxv) {
            if (st->future++ == 0)
                st->first_future = v[i].t;
            continue;
        }
        uint64_t ref = al->n ? alias_lookup(al, v[i].ref) : v[i].ref;
        if (ref < mm->nend && v[i].t <= mm->end[ref]) {
            st->in_chunks++;
            continue;
        }
        hseries *hs = refset_has(known, ref) || head_series(h, ref) ? head_series(h, ref) : NULL;
        if (!hs) {
            st->unknown_refs++;
            continue;
        }
        kiln_err e2;
        int r = histogram_validate(&v[i].h, &e2) == 0 ? head_append_histogram(h, hs, v[i].t, &v[i].h)
                                                      : KILN_EINVAL;
        if (r == KILN_ENOMEM)
            return kiln_err_set(err, r, "replay: out of memory");
        if (r == HEAD_APPEND_OK) {
            st->samples++;
            lo = v[i].t < lo ? v[i].t : lo;
            hi = v[i].t > hi ? v[i].t : hi;
        } else if (r < 0) {
            st->rejected++;
        }
    }
    head_note_range(h, lo, hi);
    return 0;
}

/* Deleted ranges (the replayed head filters them out like the live one). */
KILN_MUST_CHECK static int replay_tombstones(storage *s, const uint8_t *rec, size_t len, const ref_alias *al,
                                             kiln_err *err) {
    walrec_tombstone *v = malloc((walrec_tombstones_max(len) + 1) * sizeof *v);
    size_t n = 0;
    if (!v)
        return kiln_err_set(err, KILN_ENOMEM, "replay: out of memory");
    int rc = walrec_decode_tombstones(rec, len, v, walrec_tombstones_max(len), &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint64_t ref = al->n ? alias_lookup(al, v[i].ref) : v[i].ref;
        if (tombstones_add(&s->hts, ref, v[i].mint, v[i].maxt) != 0)
            rc = kiln_err_set(err, KILN_ENOMEM, "replay: out of memory");
    }
    free(v);
    return rc;
}

/* Exemplars into the exemplar store, as Prometheus' replay: those of
 * unknown series, out of order or repeated are skipped. */
KILN_MUST_CHECK static int replay_exemplars(storage *s, const uint8_t *rec, size_t len, arena *a,
                                            const ref_alias *al, replay_stats *st, kiln_err *err) {
    walrec_exemplar *v;
    size_t n;
    int rc = walrec_decode_exemplars(rec, len, a, &v, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        hseries *hs = head_series(s->h, al->n ? alias_lookup(al, v[i].ref) : v[i].ref);
        if (!hs) {
            st->unknown_refs++;
            continue;
        }
        label *ls = arena_alloc_nz(a, (v[i].nlabels ? v[i].nlabels : 1) * sizeof *ls);
        if (!ls)
            return kiln_err_set(err, KILN_ENOMEM, "replay: out of memory");
        for (size_t j = 0; j < v[i].nlabels; j++) {
            const walrec_label *l = &v[i].labels[j];
            ls[j] = (label){arena_strndup(a, l->name, l->name_len), arena_strndup(a, l->value, l->value_len)};
            if (!ls[j].name || !ls[j].value)
                return kiln_err_set(err, KILN_ENOMEM, "replay: out of memory");
        }
        size_t ns;
        const label *sls = hseries_labels(hs, &ns);
        /* undated, as Prometheus replays them: the same one scraped again is a duplicate */
        exemplar e = {ls, v[i].nlabels, v[i].v, v[i].t, 0};
        kiln_err e2;
        int r = exemplar_add(s->exemplars, sls, ns, &e, &e2);
        if (r == KILN_ENOMEM)
            return kiln_err_set(err, r, "replay: out of memory");
        st->exemplars += r == 0;
    }
    return rc;
}

/*
 * Read-ahead.  Reading a record (from the mapped segment: CRC, reassembly,
 * snappy) costs about as much as decoding and dispatching it, so a thread
 * of its own reads records into blocks of about a megabyte and the
 * replaying thread takes whole blocks: the two overlap.  32 blocks
 * circulate (the reader waits when all are full): while the first records'
 * series are created, which the replaying thread does alone, the reader
 * gets well ahead, and at the end, where reading is what the others wait
 * for, it has less left to do (with 16 it stopped early in the series and
 * was behind at the end; docs/benchmarks.md has the replay figures).
 * Records are decompressed straight into the blocks (see rblock_span for
 * their layout).
 */
#define REPLAY_READ_BLOCKS 32
#define REPLAY_READ_BLOCK (1 << 20)

typedef struct rblock {
    buf d;
    int seg; /* the segment of its last record, for progress messages */
} rblock;

typedef struct rreader {
    wal_reader *r;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rblock b[REPLAY_READ_BLOCKS];
    size_t head, tail; /* blocks filled, blocks taken */
    int done, quit;
    int rc; /* wal_reader_next's end: 0, or KILN_ECORRUPT or another error in err */
    kiln_err err;
} rreader;

/* A record's bytes in a block: its length, then it, then 1 to 8 bytes of
 * padding (to 8; replay_series writes a NUL after the record). */
static size_t rblock_span(size_t len) {
    return 8 + ((len + 8) & ~(size_t)7);
}

/* Reads the next record into the block (decompressed in place); wal_reader_next_into's result. */
KILN_MUST_CHECK static int rblock_read(rblock *b, wal_reader *r, kiln_err *err) {
    if (!b->d.cap && buf_reserve(&b->d, REPLAY_READ_BLOCK + 65536))
        return kiln_err_set(err, KILN_ENOMEM, "replay: out of memory");
    size_t at = b->d.len, len;
    uint64_t l = 0;
    if (buf_append(&b->d, &l, 8))
        return kiln_err_set(err, KILN_ENOMEM, "replay: out of memory");
    int rc = wal_reader_next_into(r, &b->d, &len, err);
    if (rc <= 0) {
        b->d.len = at;
        return rc;
    }
    l = len;
    memcpy(b->d.data + at, &l, 8);
    if (buf_append(&b->d, &(uint64_t){0}, rblock_span(len) - 8 - len))
        return kiln_err_set(err, KILN_ENOMEM, "replay: out of memory");
    return 1;
}

static void *rreader_main(void *arg) {
    rreader *rr = arg;
    for (int end = 0; !end;) {
        lockrank_mutex_lock(&rr->mu, LOCK_RANK_REPLAY);
        while (rr->head - rr->tail == REPLAY_READ_BLOCKS && !rr->quit)
            pthread_cond_wait(&rr->cv, &rr->mu);
        int quit = rr->quit;
        lockrank_mutex_unlock(&rr->mu, LOCK_RANK_REPLAY);
        if (quit)
            break;
        rblock *b = &rr->b[rr->head % REPLAY_READ_BLOCKS];
        b->d.len = 0;
        int rc = 0;
        while (b->d.len < REPLAY_READ_BLOCK) {
            if ((rc = rblock_read(b, rr->r, &rr->err)) <= 0)
                break;
            int64_t off;
            wal_reader_position(rr->r, &b->seg, &off);
        }
        end = rc <= 0;
        lockrank_mutex_lock(&rr->mu, LOCK_RANK_REPLAY);
        rr->head++;
        if (end) {
            rr->done = 1;
            rr->rc = rc;
        }
        pthread_cond_broadcast(&rr->cv);
        lockrank_mutex_unlock(&rr->mu, LOCK_RANK_REPLAY);
    }
    return NULL;
}

KILN_MUST_CHECK static int rreader_start(rreader *rr, wal_reader *r) {
    memset(rr, 0, sizeof *rr);
    rr->r = r;
    pthread_mutex_init(&rr->mu, NULL);
    pthread_cond_init(&rr->cv, NULL);
    if (pthread_create(&rr->th, NULL, rreader_main, rr) != 0) {
        pthread_mutex_destroy(&rr->mu);
        pthread_cond_destroy(&rr->cv);
        return KILN_ENOMEM;
    }
    return 0;
}

/* The next filled block, or NULL at the end (then rr->rc and rr->err tell why). */
static rblock *rreader_take(rreader *rr) {
    lockrank_mutex_lock(&rr->mu, LOCK_RANK_REPLAY);
    while (rr->head == rr->tail && !rr->done)
        pthread_cond_wait(&rr->cv, &rr->mu);
    rblock *b = rr->head == rr->tail ? NULL : &rr->b[rr->tail % REPLAY_READ_BLOCKS];
    lockrank_mutex_unlock(&rr->mu, LOCK_RANK_REPLAY);
    return b;
}

/* Gives the block rreader_take returned back to the reader. */
static void rreader_release(rreader *rr) {
    lockrank_mutex_lock(&rr->mu, LOCK_RANK_REPLAY);
    rr->tail++;
    pthread_cond_broadcast(&rr->cv);
    lockrank_mutex_unlock(&rr->mu, LOCK_RANK_REPLAY);
}

/* Stops the reader (at its next block) and frees the blocks. */
static void rreader_stop(rreader *rr) {
    lockrank_mutex_lock(&rr->mu, LOCK_RANK_REPLAY);
    rr->quit = 1;
    pthread_cond_broadcast(&rr->cv);
    lockrank_mutex_unlock(&rr->mu, LOCK_RANK_REPLAY);
    pthread_join(rr->th, NULL);
    for (int i = 0; i < REPLAY_READ_BLOCKS; i++)
        buf_free(&rr->b[i].d);
    pthread_mutex_destroy(&rr->mu);
    pthread_cond_destroy(&rr->cv);
}

int storage__replay(storage *s, kiln_err *err) {
    int rc0;
    wal_reader *r = NULL;
    ref_alias al = {0};
    walrec_sample *sbuf = NULL;
    size_t scap = 0;
    replay_stats st = {0};
    mmchunks mm = {0};
    refset known = {0};
    mm.minv = head_min_valid(s->h);
    mm.maxv = time_now_ms() + STORAGE_MAX_FUTURE_MS;
    arena a;
    arena_init(&a, 0);
    if ((rc0 = headchunks_iterate(s->hc, mm_collect, &mm, err)) != 0) {
        free(mm.v);
        return rc0;
    }
    if (mm.n)
        qsort(mm.v, mm.n, sizeof *mm.v, mm_cmp);
    replayer rp;
    int nw = s->o.replay_threads > 0 ? s->o.replay_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (replayer_start(&rp, s, nw) != 0) {
        free(mm.v);
        return kiln_err_set(err, KILN_ENOMEM, "replay: cannot start threads");
    }
    int rp_running = 1, rr_running = 0;
    rreader rr;
    double t0 = time_mono_sec(), last_log = t0;
    int first, last, rc;
    if ((rc = wal_segments(s->waldir, &first, &last, err)) != 0)
        goto out;
    LOG_INFO("Replaying WAL, this may take a while", "dir=%s first_segment=%d last_segment=%d", s->waldir,
             first, last);
    if ((rc = wal_reader_open(s->waldir, &r, err)) != 0)
        goto out;
    if (rreader_start(&rr, r) != 0) {
        rc = kiln_err_set(err, KILN_ENOMEM, "replay: cannot start threads");
        goto out;
    }
    rr_running = 1;
    for (rblock *b; (b = rreader_take(&rr)) != NULL; rreader_release(&rr)) {
        for (size_t at = 0; at < b->d.len;) {
            uint64_t len;
            memcpy(&len, b->d.data + at, 8);
            uint8_t *rec = (uint8_t *)b->d.data + at + 8;
            at += rblock_span((size_t)len);
            st.records++;
            kiln_err e2;
            int type = walrec_type(rec, len), r2 = 0;
            if (type == WALREC_SERIES) {
                r2 = replay_series(s, rec, len, &a, &al, &mm, &known, &st, &e2);
                arena_free(&a);
                arena_init(&a, 0);
            } else if (type == WALREC_SAMPLES) {
                r2 = replay_samples(&rp, rec, len, &sbuf, &scap, &al, &mm, &known, &st, &e2);
            } else if (type == WALREC_TOMBSTONES) {
                r2 = replay_tombstones(s, rec, len, &al, &e2);
            } else if (type == WALREC_EXEMPLARS && s->exemplars) {
                r2 = replay_exemplars(s, rec, len, &a, &al, &st, &e2);
                arena_free(&a);
                arena_init(&a, 0);
            } else if (type >= WALREC_HISTOGRAM_SAMPLES) {
                r2 = replay_histograms(&rp, rec, len, &a, &al, &mm, &known, &st, &e2);
                arena_free(&a);
                arena_init(&a, 0);
            }
            if (r2 == KILN_ENOMEM) {
                rc = kiln_err_set(err, r2, "%s", e2.msg);
                goto out;
            }
            if (r2 < 0) {
                /* a record that passed its CRC but does not decode: skip it */
                s->replay_corruptions++;
                LOG_WARN("WAL replay: undecodable record skipped", "err=%s", e2.msg);
            }
        }
        double now = time_mono_sec();
        if (now - last_log >= 5) {
            LOG_INFO("WAL replay progress", "segment=%d last_segment=%d samples=%llu", b->seg, last,
                     (unsigned long long)st.samples);
            last_log = now;
        }
    }
    rr_running = 0;
    rreader_stop(&rr);
    rc = rr.rc;
    if (rc < 0 && rc != KILN_ECORRUPT) {
        kiln_err_set(err, rc, "%s", rr.err.msg);
        goto out;
    }
    rp_running = 0;
    if (replayer_finish(&rp, &st) != 0) {
        rc = kiln_err_set(err, KILN_ENOMEM, "replay: out of memory");
        goto out;
    }
    if (rc == KILN_ECORRUPT) {
        const wal_corruption *c = wal_reader_corruption(r);
        s->replay_corruptions++;
        LOG_WARN("WAL is corrupt; truncating at the last good record", "segment=%d offset=%lld reason=%s",
                 c->segment, (long long)c->offset, c->reason);
        int seg = c->segment, in_cp = c->in_checkpoint;
        int64_t off = c->offset;
        wal_reader_close(r);
        r = NULL;
        if (in_cp) {
            rc = kiln_err_set(err, KILN_ECORRUPT,
                              "the WAL checkpoint is corrupt; move %s aside to start empty", s->waldir);
            goto out;
        }
        if ((rc = wal_repair(s->waldir, seg, off, err)) != 0)
            goto out;
    }
    rc = 0;
    if (st.future || mm.future)
        LOG_WARN("WAL replay: samples too far in the future dropped (written before kiln bounded them)",
                 "samples=%llu head_chunks=%llu first_timestamp=%lld max_future=%lldm",
                 (unsigned long long)st.future, (unsigned long long)mm.future,
                 (long long)(st.future ? st.first_future : mm.first_future),
                 (long long)(STORAGE_MAX_FUTURE_MS / 60000));
    headchunks_release(s->hc);
    head_fit(s->h);
    malloc_trim(0); /* replay's batches were large: give the memory back */
    s->replay_seconds = time_mono_sec() - t0;
    s->replay_unknown_refs = st.unknown_refs;
    s->replay_ooo_chunks = mm.ooo;
    LOG_INFO("WAL replay completed",
             "records=%llu series=%llu chunks_from_disk=%llu samples=%llu exemplars=%llu "
             "skipped=%llu in_blocks=%llu in_chunks=%llu unknown_refs=%llu duration=%.3fs",
             (unsigned long long)st.records, (unsigned long long)st.series, (unsigned long long)st.mmapped,
             (unsigned long long)st.samples, (unsigned long long)st.exemplars,
             (unsigned long long)st.rejected, (unsigned long long)st.in_blocks,
             (unsigned long long)st.in_chunks, (unsigned long long)st.unknown_refs, s->replay_seconds);
out:
    if (rr_running)
        rreader_stop(&rr);
    if (rp_running)
        replayer_finish(&rp, &st); /* failing already: its out of memory adds nothing to rc */
    free(mm.v);
    free(mm.end);
    wal_reader_close(r);
    free(al.v);
    free(known.w);
    free(sbuf);
    arena_free(&a);
    return rc;
}
