/*
 * storage.c - the storage as the rest of kiln sees it (storage.h): opening a
 * data directory and replaying its WAL into the head, appenders that write
 * the WAL before anything becomes visible, queriers, statistics and metrics.
 *
 * Data directory:
 *   <dir>/wal/            the write-ahead log (wal.h), Prometheus' format
 *
 * Commit order: new series records and the samples record of a batch go to
 * the WAL in one write; only when that succeeded are the samples put into
 * the head (so a query never sees a sample a crash could lose).
 *
 * Threading: see storage.h.  Counters are atomics.
 */
#include "storage/storage.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/block.h"
#include "storage/head.h"
#include "storage/headchunks.h"
#include "storage/tombstones.h"
#include "storage/wal.h"
#include "storage/walrec.h"
#include "storage/xorchunk.h"

struct storage {
    storage_opts o;
    char *dir;
    char waldir[4096];
    head *h;
    headchunks *hc;
    wal *w;
    /* Read-held by appenders (creation to commit) and selects, write-held by
     * head truncation, which frees series. */
    pthread_rwlock_t gc;
    /* persistent blocks, by mint; the list changes under the gc write lock */
    block **blocks;
    size_t nblocks;
    /* the head's deleted ranges (by series reference); changed under the gc
     * write lock, read under the read lock */
    tombstones hts;
    pthread_mutex_t compact_mu; /* one compaction (or deletion) at a time */
    char **bad;                 /* blocks skipped as damaged (names) */
    size_t nbad;
    /* counters (atomics) */
    uint64_t compactions, compactions_failed, blocks_deleted;
    uint64_t compaction_us;
    uint64_t samples_appended;
    uint64_t rejected_ooo, rejected_dup, rejected_oob;
    uint64_t commits_failed;
    uint64_t replay_corruptions;
    double replay_seconds;
};

storage_opts storage_opts_default(void) {
    storage_opts o;
    memset(&o, 0, sizeof o);
    o.dir = "data";
    o.wal_compression = STORAGE_WAL_SNAPPY;
    o.wal_fsync_interval_ms = 0;
    o.block_range_ms = 2 * 3600 * 1000;
    o.retention_ms = 15LL * 24 * 3600 * 1000;
    return o;
}

static int mkdir_p(const char *path, kiln_err *err) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp)
        return kiln_err_set(err, KILN_EINVAL, "storage: bad directory path \"%s\"", path);
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
            return kiln_err_set(err, KILN_EIO, "storage: mkdir %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
        return kiln_err_set(err, KILN_EIO, "storage: mkdir %s: %s", tmp, strerror(errno));
    return 0;
}

/* ---- replay -------------------------------------------------------------- */

/* WAL references that name a series already created under another
 * reference (Prometheus may log the same labels twice). */
typedef struct ref_alias {
    uint64_t *from, *to;
    size_t n, cap;
} ref_alias;

static uint64_t alias_lookup(const ref_alias *a, uint64_t ref) {
    for (size_t i = 0; i < a->n; i++)
        if (a->from[i] == ref)
            return a->to[i];
    return ref;
}

static int alias_add(ref_alias *a, uint64_t from, uint64_t to) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 16;
        uint64_t *f = realloc(a->from, nc * sizeof *f);
        if (!f)
            return KILN_ENOMEM;
        a->from = f;
        uint64_t *t = realloc(a->to, nc * sizeof *t);
        if (!t)
            return KILN_ENOMEM;
        a->to = t;
        a->cap = nc;
    }
    a->from[a->n] = from;
    a->to[a->n++] = to;
    return 0;
}

typedef struct replay_stats {
    uint64_t series, samples, unknown_refs, rejected, records, mmapped, in_blocks, in_chunks;
} replay_stats;

/* Full chunks found in chunks_head at start, sorted by series then file
 * position (which is time order). */
typedef struct mmchunk {
    uint64_t sref;
    int64_t mint, maxt;
    uint64_t cref;
} mmchunk;

typedef struct mmchunks {
    mmchunk *v;
    size_t n, cap;
    int64_t minv; /* chunks ending before it are in blocks already */
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

static int mm_collect(uint64_t sref, int64_t mint, int64_t maxt, uint64_t cref, void *data) {
    mmchunks *m = data;
    if (maxt < m->minv)
        return 0;
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 4096;
        mmchunk *nv = realloc(m->v, nc * sizeof *nv);
        if (!nv)
            return KILN_ENOMEM;
        m->v = nv;
        m->cap = nc;
    }
    m->v[m->n++] = (mmchunk){sref, mint, maxt, cref};
    return 0;
}

static int mm_cmp(const void *a, const void *b) {
    const mmchunk *x = a, *y = b;
    if (x->sref != y->sref)
        return x->sref < y->sref ? -1 : 1;
    return x->cref < y->cref ? -1 : x->cref > y->cref;
}

/* Gives a new series its chunks from chunks_head. */
static void mm_attach(storage *s, mmchunks *m, hseries *hs, uint64_t sref, replay_stats *st) {
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->v[mid].sref < sref)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < m->n && m->v[i].sref == sref; i++) {
        int last = i + 1 == m->n || m->v[i + 1].sref != sref;
        if (head_attach_chunk(s->h, hs, m->v[i].mint, m->v[i].maxt, m->v[i].cref, last) == 0) {
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
static int replay_series(storage *s, uint8_t *rec, size_t len, arena *a, ref_alias *al, mmchunks *mm,
                         refset *known, replay_stats *st, kiln_err *err) {
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
            LOG_WARN("WAL replay: series record skipped", "ref=%llu err=\"%s\"",
                     (unsigned long long)ser[i].ref, e2.msg);
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
    size_t n, cap;
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
static int rpart_reserve(rpart *p, size_t n) {
    if (p->n + n <= p->cap)
        return 0;
    size_t nc = p->cap ? p->cap * 2 : 4096;
    while (nc < p->n + n)
        nc *= 2;
    rsample *e = realloc(p->e, nc * sizeof *e);
    if (e)
        p->e = e;
    uint32_t *rr = e ? realloc(p->ref, nc * sizeof *rr) : NULL;
    if (!rr)
        return KILN_ENOMEM;
    p->ref = rr;
    p->cap = nc;
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

static int sort_by_series(rworker *w, const rpart *p) {
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
        pthread_mutex_lock(&rp->mu);
        while (rp->gen == seen && !rp->quit)
            pthread_cond_wait(&rp->cv_work, &rp->mu);
        if (rp->gen == seen) {
            pthread_mutex_unlock(&rp->mu);
            return NULL;
        }
        seen = rp->gen;
        rbatch *b = rp->cur;
        pthread_mutex_unlock(&rp->mu);
        replay_part(w, &b->part[w->id]);
        pthread_mutex_lock(&rp->mu);
        if (--rp->pending == 0)
            pthread_cond_signal(&rp->cv_done);
        pthread_mutex_unlock(&rp->mu);
    }
}

static void replayer_wait(replayer *rp) {
    pthread_mutex_lock(&rp->mu);
    while (rp->pending > 0)
        pthread_cond_wait(&rp->cv_done, &rp->mu);
    pthread_mutex_unlock(&rp->mu);
}

/* Hands the filled batch to the workers and switches to the other one. */
static void replayer_dispatch(replayer *rp) {
    rbatch *b = &rp->b[rp->fill];
    if (b->n == 0)
        return;
    replayer_wait(rp);
    pthread_mutex_lock(&rp->mu);
    rp->cur = b;
    rp->gen++;
    rp->pending = rp->nw;
    pthread_cond_broadcast(&rp->cv_work);
    pthread_mutex_unlock(&rp->mu);
    rp->fill ^= 1;
    rbatch *next = &rp->b[rp->fill];
    /* the other batch was finished before this dispatch began */
    for (int i = 0; i < rp->nw; i++)
        next->part[i].n = 0;
    next->n = 0;
}

static int replayer_start(replayer *rp, storage *s, int nw) {
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
    pthread_mutex_lock(&rp->mu);
    rp->quit = 1;
    pthread_cond_broadcast(&rp->cv_work);
    pthread_mutex_unlock(&rp->mu);
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

static int replay_samples(replayer *rp, const uint8_t *rec, size_t len, walrec_sample **sbuf, size_t *scap,
                          const ref_alias *al, const mmchunks *mm, const refset *known, replay_stats *st,
                          kiln_err *err) {
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

/* Deleted ranges (the replayed head filters them out like the live one). */
static int replay_tombstones(storage *s, const uint8_t *rec, size_t len, const ref_alias *al, kiln_err *err) {
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

/*
 * Read-ahead.  Reading a record (from the mapped segment: CRC, reassembly,
 * snappy) costs about as much as decoding and dispatching it, so a thread of its own reads
 * records into blocks of about a megabyte and the replaying thread takes
 * whole blocks: the two overlap.  32 blocks circulate (the reader waits
 * when all are full): while the first records' series are created, which
 * the replaying thread does alone, the reader gets well ahead, and at the
 * end, where reading is what the others wait for, it has less left to do
 * (with 16 it stopped early in the series and was behind at the end: 10M
 * samples after Prometheus ran, 0.683 -> 0.650 s to ready).  Records are
 * decompressed straight into the blocks (see rblock_span for their layout).
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
static int rblock_read(rblock *b, wal_reader *r, kiln_err *err) {
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
        pthread_mutex_lock(&rr->mu);
        while (rr->head - rr->tail == REPLAY_READ_BLOCKS && !rr->quit)
            pthread_cond_wait(&rr->cv, &rr->mu);
        int quit = rr->quit;
        pthread_mutex_unlock(&rr->mu);
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
        pthread_mutex_lock(&rr->mu);
        rr->head++;
        if (end) {
            rr->done = 1;
            rr->rc = rc;
        }
        pthread_cond_broadcast(&rr->cv);
        pthread_mutex_unlock(&rr->mu);
    }
    return NULL;
}

static int rreader_start(rreader *rr, wal_reader *r) {
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
    pthread_mutex_lock(&rr->mu);
    while (rr->head == rr->tail && !rr->done)
        pthread_cond_wait(&rr->cv, &rr->mu);
    rblock *b = rr->head == rr->tail ? NULL : &rr->b[rr->tail % REPLAY_READ_BLOCKS];
    pthread_mutex_unlock(&rr->mu);
    return b;
}

/* Gives the block rreader_take returned back to the reader. */
static void rreader_release(rreader *rr) {
    pthread_mutex_lock(&rr->mu);
    rr->tail++;
    pthread_cond_broadcast(&rr->cv);
    pthread_mutex_unlock(&rr->mu);
}

/* Stops the reader (at its next block) and frees the blocks. */
static void rreader_stop(rreader *rr) {
    pthread_mutex_lock(&rr->mu);
    rr->quit = 1;
    pthread_cond_broadcast(&rr->cv);
    pthread_mutex_unlock(&rr->mu);
    pthread_join(rr->th, NULL);
    for (int i = 0; i < REPLAY_READ_BLOCKS; i++)
        buf_free(&rr->b[i].d);
    pthread_mutex_destroy(&rr->mu);
    pthread_cond_destroy(&rr->cv);
}

static int replay(storage *s, kiln_err *err) {
    int rc0;
    wal_reader *r = NULL;
    ref_alias al = {0};
    walrec_sample *sbuf = NULL;
    size_t scap = 0;
    replay_stats st = {0};
    mmchunks mm = {0};
    refset known = {0};
    mm.minv = head_min_valid(s->h);
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
            }
            if (r2 == KILN_ENOMEM) {
                rc = kiln_err_set(err, r2, "%s", e2.msg);
                goto out;
            }
            if (r2 < 0) {
                /* a record that passed its CRC but does not decode: skip it */
                s->replay_corruptions++;
                LOG_WARN("WAL replay: undecodable record skipped", "err=\"%s\"", e2.msg);
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
        LOG_WARN("WAL is corrupt; truncating at the last good record", "segment=%d offset=%lld reason=\"%s\"",
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
    headchunks_release(s->hc);
    malloc_trim(0); /* replay's batches were large: give the memory back */
    s->replay_seconds = time_mono_sec() - t0;
    LOG_INFO("WAL replay completed",
             "records=%llu series=%llu chunks_from_disk=%llu samples=%llu "
             "skipped=%llu in_blocks=%llu in_chunks=%llu unknown_refs=%llu duration=%.3fs",
             (unsigned long long)st.records, (unsigned long long)st.series, (unsigned long long)st.mmapped,
             (unsigned long long)st.samples, (unsigned long long)st.rejected,
             (unsigned long long)st.in_blocks, (unsigned long long)st.in_chunks,
             (unsigned long long)st.unknown_refs, s->replay_seconds);
out:
    if (rr_running)
        rreader_stop(&rr);
    if (rp_running)
        replayer_finish(&rp, &st);
    free(mm.v);
    free(mm.end);
    wal_reader_close(r);
    free(al.from);
    free(al.to);
    free(known.w);
    free(sbuf);
    arena_free(&a);
    return rc;
}

/* ---- blocks ---------------------------------------------------------------- */

static int cmp_block(const void *a, const void *b) {
    const block_meta *x = block_get_meta(*(block *const *)a), *y = block_get_meta(*(block *const *)b);
    return x->mint < y->mint ? -1 : x->mint > y->mint;
}

static void close_blocks(storage *s) {
    for (size_t i = 0; i < s->nblocks; i++)
        block_close(s->blocks[i]);
    free(s->blocks);
    s->blocks = NULL;
    s->nblocks = 0;
    for (size_t i = 0; i < s->nbad; i++)
        free(s->bad[i]);
    free(s->bad);
    s->bad = NULL;
    s->nbad = 0;
}

/* Adds an open block to the list (caller holds the gc write lock or owns s). */
static int add_block(storage *s, block *b) {
    block **nv = realloc(s->blocks, (s->nblocks + 1) * sizeof *nv);
    if (!nv)
        return KILN_ENOMEM;
    s->blocks = nv;
    s->blocks[s->nblocks++] = b;
    qsort(s->blocks, s->nblocks, sizeof *s->blocks, cmp_block);
    head_set_min_valid(s->h, block_get_meta(b)->maxt);
    return 0;
}

static int have_block(storage *s, const char *ulid) {
    for (size_t i = 0; i < s->nblocks; i++)
        if (strcmp(block_get_meta(s->blocks[i])->ulid, ulid) == 0)
            return 1;
    return 0;
}

/*
 * Opens the blocks in the data directory that are not open yet (at start,
 * all; later, blocks dropped in by a backfill); a damaged one is reported
 * and skipped (once: it is remembered as skipped by its name).  Caller holds
 * compact_mu; the list changes under the gc write lock.
 */
static int load_blocks_from(storage *s, int at_start, kiln_err *err) {
    char **ul = NULL;
    size_t n = 0;
    int rc = block_list(s->dir, at_start, &ul, &n, err);
    for (size_t i = 0; i < n; i++) {
        block *b = NULL;
        kiln_err e = {0};
        int skip = have_block(s, ul[i]);
        for (size_t j = 0; j < s->nbad && !skip; j++)
            skip = strcmp(s->bad[j], ul[i]) == 0;
        if (rc == 0 && !skip && block_open(s->dir, ul[i], &b, &e) != 0) {
            LOG_ERROR("Skipping a damaged block", "block=%s err=\"%s\"", ul[i], e.msg);
            char **nb = realloc(s->bad, (s->nbad + 1) * sizeof *nb);
            if (nb) {
                s->bad = nb;
                s->bad[s->nbad++] = ul[i];
                ul[i] = NULL;
            }
        } else if (rc == 0 && !skip) {
            if (!at_start)
                pthread_rwlock_wrlock(&s->gc);
            rc = add_block(s, b);
            if (!at_start)
                pthread_rwlock_unlock(&s->gc);
            if (rc) {
                block_close(b);
                kiln_err_set(err, rc, "storage: out of memory");
            } else if (!at_start) {
                LOG_INFO("Loaded a new block from the data directory", "block=%s", ul[i]);
            }
        }
        free(ul[i]);
    }
    free(ul);
    return rc;
}

/* Opens the blocks in the data directory at start. */
static int load_blocks(storage *s, kiln_err *err) {
    int rc = load_blocks_from(s, 1, err);
    /* a merge that crashed before deleting its sources: the merged block wins */
    for (size_t i = 0; rc == 0 && i < s->nblocks;) {
        int replaced = 0;
        for (size_t j = 0; j < s->nblocks && !replaced; j++)
            replaced = j != i && block_is_parent_of(s->blocks[j], block_get_meta(s->blocks[i])->ulid);
        if (!replaced) {
            i++;
            continue;
        }
        char ulid[BLOCK_ULID_LEN + 1];
        kiln_err e = {0};
        snprintf(ulid, sizeof ulid, "%s", block_get_meta(s->blocks[i])->ulid);
        block_close(s->blocks[i]);
        memmove(s->blocks + i, s->blocks + i + 1, (s->nblocks - i - 1) * sizeof *s->blocks);
        s->nblocks--;
        LOG_INFO("Deleting a block already merged into another", "block=%s", ulid);
        if (block_delete(s->dir, ulid, &e) != 0)
            LOG_WARN("Deleting a merged block failed", "block=%s err=\"%s\"", ulid, e.msg);
    }
    if (rc == 0 && s->nblocks)
        LOG_INFO("Blocks loaded", "blocks=%zu", s->nblocks);
    return rc;
}

/* ---- open / close ---------------------------------------------------------- */

int storage_open(const storage_opts *opts, storage **out, kiln_err *err) {
    storage *s = calloc(1, sizeof *s);
    int rc;
    if (!s)
        return kiln_err_set(err, KILN_ENOMEM, "storage: out of memory");
    s->o = *opts;
    if (!(s->dir = strdup(opts->dir && *opts->dir ? opts->dir : "data"))) {
        free(s);
        return kiln_err_set(err, KILN_ENOMEM, "storage: out of memory");
    }
    s->o.dir = s->dir;
    pthread_rwlock_init(&s->gc, NULL);
    if ((size_t)snprintf(s->waldir, sizeof s->waldir, "%s/wal", s->dir) >= sizeof s->waldir) {
        rc = kiln_err_set(err, KILN_EINVAL, "storage: data directory path too long");
        goto fail;
    }
    if ((rc = mkdir_p(s->waldir, err)) != 0)
        goto fail;
    char hcdir[4200];
    snprintf(hcdir, sizeof hcdir, "%s/chunks_head", s->dir);
    if ((rc = headchunks_open(hcdir, &s->hc, err)) != 0)
        goto fail;
    if ((rc = head_new(opts->block_range_ms, s->hc, &s->h, err)) != 0)
        goto fail;
    pthread_mutex_init(&s->compact_mu, NULL);
    if ((rc = load_blocks(s, err)) != 0)
        goto fail;
    if ((rc = replay(s, err)) != 0)
        goto fail;
    wal_opts wo = wal_opts_default();
    wo.compression = opts->wal_compression;
    if (opts->wal_fsync_every_commit)
        wo.fsync_policy = WAL_FSYNC_ALWAYS;
    else if (opts->wal_fsync_interval_ms > 0) {
        wo.fsync_policy = WAL_FSYNC_PERIODIC;
        wo.fsync_interval_ms = (int)opts->wal_fsync_interval_ms;
    }
    if ((rc = wal_open(s->waldir, &wo, &s->w, err)) != 0)
        goto fail;
    if (s->replay_corruptions)
        wal_count_corruption(s->w, s->replay_corruptions);
    *out = s;
    return 0;
fail:
    close_blocks(s);
    tombstones_free(&s->hts);
    head_free(s->h);
    headchunks_close(s->hc, NULL);
    pthread_rwlock_destroy(&s->gc);
    free(s->dir);
    free(s);
    return rc;
}

int storage_close(storage *s, kiln_err *err) {
    if (!s)
        return 0;
    int rc = wal_close(s->w, err);
    close_blocks(s);
    tombstones_free(&s->hts);
    pthread_mutex_destroy(&s->compact_mu);
    head_free(s->h);
    kiln_err e2;
    int rc2 = headchunks_close(s->hc, &e2);
    if (rc2 && !rc) {
        rc = rc2;
        if (err)
            *err = e2;
    }
    pthread_rwlock_destroy(&s->gc);
    free(s->dir);
    free(s);
    return rc;
}

void storage_get_stats(storage *s, storage_stats *out) {
    head_counts hc;
    head_get_counts(s->h, &hc);
    out->head_series = hc.series;
    out->head_chunks = hc.chunks;
    head_time_range(s->h, &out->head_min_time, &out->head_max_time);
    out->samples_appended = __atomic_load_n(&s->samples_appended, __ATOMIC_RELAXED);
}

/* ---- appending ------------------------------------------------------------- */

typedef struct staged {
    hseries *s;
    int64_t t;
    double v;
} staged;

struct appender {
    storage *st;
    int trusted; /* labels were checked by the caller */
    staged *v;
    size_t n, cap;
    hseries **created;
    size_t ncreated, capcreated;
};

appender *storage_appender(storage *s) {
    appender *a = calloc(1, sizeof *a);
    if (a) {
        a->st = s;
        pthread_rwlock_rdlock(&s->gc);
    }
    return a;
}

int appender_append(appender *a, uint64_t *ref, const label *ls, size_t n, int64_t t, double v,
                    kiln_err *err) {
    storage *s = a->st;
    hseries *hs;
    int rc;
    if (*ref) {
        if (!(hs = head_series(s->h, *ref)))
            return kiln_err_set(err, KILN_EINVAL, "unknown series reference %llu", (unsigned long long)*ref);
    } else {
        if (!a->trusted && (rc = labels_check(ls, n, err)) != 0)
            return rc;
        int created;
        if ((rc = head_get_or_create(s->h, ls, n, 0, &hs, &created, err)) != 0)
            return rc;
        if (created) {
            if (array_grow((void **)&a->created, &a->capcreated, a->ncreated + 1, sizeof *a->created) != 0)
                return kiln_err_set(err, KILN_ENOMEM, "out of memory");
            a->created[a->ncreated++] = hs;
        }
        *ref = hseries_ref(hs);
    }
    rc = head_append_check(s->h, hs, t, v, err);
    if (rc == HEAD_APPEND_SAME)
        return 0;
    if (rc < 0) {
        uint64_t *c = rc == KILN_EORDER   ? &s->rejected_ooo
                      : rc == KILN_EEXIST ? &s->rejected_dup
                                          : &s->rejected_oob;
        __atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
        return rc;
    }
    if (array_grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v) != 0)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    a->v[a->n++] = (staged){hs, t, v};
    return 0;
}

void appender_trust_labels(appender *a) {
    a->trusted = 1;
}

static void appender_free(appender *a) {
    pthread_rwlock_unlock(&a->st->gc);
    free(a->v);
    free(a->created);
    free(a);
}

/* Encodes the series records of the new series into out. */
static int encode_series(appender *a, buf *out) {
    size_t total = 0;
    for (size_t i = 0; i < a->ncreated; i++) {
        size_t n;
        hseries_labels(a->created[i], &n);
        total += n;
    }
    walrec_series *ws = malloc(a->ncreated * sizeof *ws);
    walrec_label *wl = malloc((total ? total : 1) * sizeof *wl);
    int rc = KILN_ENOMEM;
    if (!ws || !wl)
        goto out;
    size_t k = 0;
    for (size_t i = 0; i < a->ncreated; i++) {
        size_t n;
        const label *ls = hseries_labels(a->created[i], &n);
        ws[i].ref = hseries_ref(a->created[i]);
        ws[i].labels = wl + k;
        ws[i].nlabels = n;
        for (size_t j = 0; j < n; j++, k++)
            wl[k] = (walrec_label){ls[j].name, strlen(ls[j].name), ls[j].value, strlen(ls[j].value)};
    }
    rc = walrec_encode_series(out, ws, a->ncreated);
out:
    free(ws);
    free(wl);
    return rc;
}

static int log_batch(appender *a, int with_samples, kiln_err *err) {
    buf sb = BUF_INIT, pb = BUF_INIT;
    wal_rec recs[2];
    size_t nrec = 0;
    int rc = 0;
    walrec_sample *ws = NULL;
    if (a->ncreated) {
        if ((rc = encode_series(a, &sb)) != 0)
            goto nomem;
        recs[nrec++] = (wal_rec){sb.data, sb.len};
    }
    if (with_samples && a->n) {
        if (!(ws = malloc(a->n * sizeof *ws)))
            goto nomem;
        for (size_t i = 0; i < a->n; i++)
            ws[i] = (walrec_sample){hseries_ref(a->v[i].s), a->v[i].t, a->v[i].v};
        if ((rc = walrec_encode_samples(&pb, ws, a->n)) != 0)
            goto nomem;
        recs[nrec++] = (wal_rec){pb.data, pb.len};
    }
    if (nrec)
        rc = wal_log_batch(a->st->w, recs, nrec, err);
    goto out;
nomem:
    rc = kiln_err_set(err, KILN_ENOMEM, "out of memory encoding the WAL records");
out:
    free(ws);
    buf_free(&sb);
    buf_free(&pb);
    return rc;
}

int appender_commit(appender *a, kiln_err *err) {
    storage *s = a->st;
    int rc = log_batch(a, 1, err);
    if (rc) {
        __atomic_add_fetch(&s->commits_failed, 1, __ATOMIC_RELAXED);
        appender_free(a);
        return rc;
    }
    uint64_t added = 0;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t i = 0; i < a->n; i++) {
        if (i + 16 < a->n)
            hseries_prefetch(a->v[i + 16].s, 0);
        if (i + 8 < a->n)
            hseries_prefetch(a->v[i + 8].s, 1);
        int64_t t = a->v[i].t;
        int r = head_append(s->h, a->v[i].s, t, a->v[i].v);
        if (r == HEAD_APPEND_OK) {
            added++;
            lo = t < lo ? t : lo;
            hi = t > hi ? t : hi;
        } else if (r == KILN_EORDER)
            __atomic_add_fetch(&s->rejected_ooo, 1, __ATOMIC_RELAXED);
        else if (r == KILN_EEXIST)
            __atomic_add_fetch(&s->rejected_dup, 1, __ATOMIC_RELAXED);
        else if (r == KILN_ENOMEM) {
            rc = kiln_err_set(err, r, "out of memory appending to the head");
            break;
        }
    }
    head_note_range(s->h, lo, hi);
    __atomic_add_fetch(&s->samples_appended, added, __ATOMIC_RELAXED);
    appender_free(a);
    return rc;
}

void appender_rollback(appender *a) {
    if (!a)
        return;
    /* the series exist in the head now: log them so references stay known */
    if (a->ncreated)
        log_batch(a, 0, NULL);
    appender_free(a);
}

/* ---- querying --------------------------------------------------------------- */

struct querier {
    storage *st;
    int64_t mint, maxt;
};

int storage_querier(storage *s, int64_t mint, int64_t maxt, querier **out, kiln_err *err) {
    querier *q = calloc(1, sizeof *q);
    if (!q)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    int64_t hmin, hmax;
    head_time_range(s->h, &hmin, &hmax);
    pthread_rwlock_rdlock(&s->gc);
    for (size_t i = 0; i < s->nblocks; i++)
        if (block_get_meta(s->blocks[i])->maxt - 1 > hmax)
            hmax = block_get_meta(s->blocks[i])->maxt - 1;
    pthread_rwlock_unlock(&s->gc);
    q->st = s;
    q->mint = mint;
    q->maxt = maxt < hmax ? maxt : hmax; /* what is appended from now on stays invisible */
    *out = q;
    return 0;
}

void querier_close(querier *q) {
    free(q);
}

void series_set_free(series_set *set) {
    if (!set)
        return;
    arena_free(&set->mem);
    memset(set, 0, sizeof *set);
}

void str_list_free(str_list *l) {
    if (!l)
        return;
    arena_free(&l->mem);
    memset(l, 0, sizeof *l);
}

static int series_cmp(const void *a, const void *b) {
    const series *x = a, *y = b;
    return labels_cmp(x->ls, x->nls, y->ls, y->nls);
}

static int select_locked(querier *q, const matcher *ms, size_t nms, const select_hints *h, int lookup,
                         series_set *out, kiln_err *err);

int querier_select(querier *q, const matcher *ms, size_t nms, const select_hints *h, series_set *out,
                   kiln_err *err) {
    pthread_rwlock_rdlock(&q->st->gc);
    int rc = select_locked(q, ms, nms, h, 0, out, err);
    pthread_rwlock_unlock(&q->st->gc);
    return rc;
}

/* Collects a block's series into a selection (labels copied: the result
 * outlives the querier). */
typedef struct bsel {
    series_set *out;
    size_t *cap;
    size_t total, max;
    int over;
} bsel;

static int block_series(void *ctx, const label *ls, size_t nls, const sample *smp, size_t n) {
    bsel *b = ctx;
    series_set *out = b->out;
    b->total += n;
    if (b->max && b->total > b->max) {
        b->over = 1;
        return KILN_ELIMIT;
    }
    if (out->n == *b->cap) {
        size_t nc = *b->cap ? *b->cap * 2 : 64;
        series *nv = realloc(out->v, nc * sizeof *nv);
        if (!nv)
            return KILN_ENOMEM;
        out->v = nv;
        *b->cap = nc;
    }
    series *se = &out->v[out->n];
    if (!(se->ls = labels_copy(&out->mem, ls, nls)))
        return KILN_ENOMEM;
    se->nls = nls;
    se->s = (sample *)smp;
    se->n = n;
    out->n++;
    return 0;
}

/* Joins neighbours with the same labels (a series in blocks and the head):
 * samples merged by time, a time present twice kept once. */
static int merge_same(series_set *out) {
    size_t w = 0;
    for (size_t i = 0; i < out->n; i++) {
        if (w == 0 || series_cmp(&out->v[w - 1], &out->v[i]) != 0) {
            out->v[w++] = out->v[i];
            continue;
        }
        series *a = &out->v[w - 1];
        const series *b = &out->v[i];
        sample *m = arena_alloc_nz(&out->mem, (a->n + b->n + 1) * sizeof *m);
        if (!m)
            return KILN_ENOMEM;
        size_t x = 0, y = 0, k = 0;
        while (x < a->n || y < b->n) {
            if (y >= b->n || (x < a->n && a->s[x].t < b->s[y].t))
                m[k++] = a->s[x++];
            else if (x >= a->n || b->s[y].t < a->s[x].t)
                m[k++] = b->s[y++];
            else {
                m[k++] = b->s[y++]; /* the same time in both: once */
                x++;
            }
        }
        a->s = m;
        a->n = k;
    }
    out->n = w;
    return 0;
}

/* Sample arrays of a selection live in its arena; decoded straight into it. */
static sample *arena_samples(void *ctx, size_t n) {
    return arena_alloc_nz(ctx, n * sizeof(sample));
}

/*
 * `lookup` is for label lookups, which deduplicate strings themselves and
 * hold the gc lock until they have copied the ones they keep: the series
 * come in any order, one in blocks and the head may come twice, and head
 * labels are borrowed, not copied.
 */
static int select_locked(querier *q, const matcher *ms, size_t nms, const select_hints *h, int lookup,
                         series_set *out, kiln_err *err) {
    storage *s = q->st;
    refvec refs = {0};
    sample *got = NULL;
    size_t total = 0, cap = 0;
    int rc;
    int64_t mint = h && h->mint > q->mint ? h->mint : q->mint;
    int64_t maxt = h && h->maxt < q->maxt ? h->maxt : q->maxt;
    memset(out, 0, sizeof *out);
    arena_init(&out->mem, 0);
    if ((rc = head_postings(s->h, ms, nms, &refs, err)) != 0)
        goto fail;
    for (size_t i = 0; i < refs.n; i++) {
        hseries *hs = head_series(s->h, refs.v[i]);
        if (!hs || mint > maxt)
            continue;
        size_t n = 0, ndel;
        const tstone *del = tombstones_of(&s->hts, refs.v[i], &ndel);
        if (h && h->labels_only && !ndel) {
            if (!head_series_has_data(s->h, hs, mint, maxt))
                continue;
        } else {
            rc = head_series_samples(s->h, hs, mint, maxt, arena_samples, &out->mem, &got, &n);
            if (rc == KILN_ENOMEM)
                goto nomem;
            if (rc < 0) {
                rc = kiln_err_set(err, rc, "reading series %u: corrupt chunk", refs.v[i]);
                goto fail;
            }
            n = tombstones_filter(del, ndel, got, n);
            if (n == 0)
                continue;
            if (h && h->labels_only)
                n = 0;
            total += n;
            if (h && h->max_samples && total > h->max_samples) {
                rc = kiln_err_set(
                    err, KILN_ELIMIT,
                    "query processing would load too many samples into memory in query execution");
                goto fail;
            }
        }
        if (out->n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            series *nv = realloc(out->v, nc * sizeof *nv);
            if (!nv)
                goto nomem;
            out->v = nv;
            cap = nc;
        }
        series *se = &out->v[out->n];
        size_t nls;
        const label *ls = hseries_labels(hs, &nls);
        /* head labels are interned and live as long as the head; copy them
         * so the result outlives a querier */
        if (lookup)
            se->ls = (label *)ls;
        else if (!(se->ls = labels_copy(&out->mem, ls, nls)))
            goto nomem;
        se->nls = nls;
        se->n = n;
        se->s = n ? got : NULL;
        out->n++;
    }
    /* the blocks' series, then one series per label set */
    size_t from_head = out->n;
    if (mint <= maxt) {
        bsel bs = {out, &cap, total, h ? h->max_samples : 0, 0};
        for (size_t i = 0; i < s->nblocks; i++) {
            const block_meta *bm = block_get_meta(s->blocks[i]);
            if (bm->maxt <= mint || bm->mint > maxt)
                continue;
            rc = block_select(s->blocks[i], ms, nms, mint, maxt, h && h->labels_only, &out->mem, block_series,
                              &bs, err);
            if (bs.over)
                rc = kiln_err_set(
                    err, KILN_ELIMIT,
                    "query processing would load too many samples into memory in query execution");
            if (rc == KILN_ENOMEM && !bs.over)
                goto nomem;
            if (rc)
                goto fail;
        }
    }
    /* the series array itself moves into the arena so series_set_free frees all */
    if (out->n) {
        series *v = arena_alloc(&out->mem, out->n * sizeof *v);
        if (!v)
            goto nomem;
        memcpy(v, out->v, out->n * sizeof *v);
        free(out->v);
        out->v = v;
        if (!lookup) {
            qsort(out->v, out->n, sizeof *out->v, series_cmp);
            if (out->n > from_head && (rc = merge_same(out)) != 0)
                goto nomem;
        }
    } else {
        free(out->v);
        out->v = NULL;
    }
    refvec_free(&refs);
    return 0;
nomem:
    rc = kiln_err_set(err, KILN_ENOMEM, "out of memory selecting series");
fail:
    free(out->v);
    out->v = NULL;
    out->n = 0;
    arena_free(&out->mem);
    refvec_free(&refs);
    return rc;
}

typedef struct strs {
    const char **v;
    size_t n, cap;
} strs;

static int strs_add(const char *x, void *data) {
    strs *s = data;
    return array_grow((void **)&s->v, &s->cap, s->n + 1, sizeof *s->v) ? KILN_ENOMEM
                                                                       : ((s->v[s->n++] = x), 0);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts, deduplicates and copies into out. */
static int strs_finish(strs *s, str_list *out, kiln_err *err) {
    memset(out, 0, sizeof *out);
    arena_init(&out->mem, 0);
    if (s->n)
        qsort(s->v, s->n, sizeof *s->v, cmp_str);
    size_t w = 0;
    for (size_t i = 0; i < s->n; i++)
        if (w == 0 || strcmp(s->v[w - 1], s->v[i]) != 0)
            s->v[w++] = s->v[i];
    if (w) {
        out->v = arena_alloc(&out->mem, w * sizeof *out->v);
        if (!out->v)
            goto nomem;
        for (size_t i = 0; i < w; i++)
            if (!(out->v[i] = arena_strndup(&out->mem, s->v[i], strlen(s->v[i]))))
                goto nomem;
    }
    out->n = w;
    free(s->v);
    return 0;
nomem:
    free(s->v);
    arena_free(&out->mem);
    memset(out, 0, sizeof *out);
    return kiln_err_set(err, KILN_ENOMEM, "out of memory listing labels");
}

/*
 * A set of strings by content, open addressing: the label names or values
 * of many series repeat a few strings, so they are deduplicated as they come
 * and only the distinct ones are sorted (sorting them all cost seconds for
 * 250k series).
 */
typedef struct strset {
    const char **slot;
    size_t cap, n; /* cap a power of two, n <= cap / 2 */
} strset;

static uint64_t strset_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

/* Adds s (borrowed) when not there yet; KILN_ENOMEM. */
static int strset_add(strset *set, const char *s) {
    if (2 * (set->n + 1) > set->cap) {
        size_t nc = set->cap ? set->cap * 2 : 64;
        const char **ns = calloc(nc, sizeof *ns);
        if (!ns)
            return KILN_ENOMEM;
        for (size_t i = 0; i < set->cap; i++)
            if (set->slot[i]) {
                size_t j = strset_hash(set->slot[i]) & (nc - 1);
                while (ns[j])
                    j = (j + 1) & (nc - 1);
                ns[j] = set->slot[i];
            }
        free(set->slot);
        set->slot = ns;
        set->cap = nc;
    }
    size_t j = strset_hash(s) & (set->cap - 1);
    while (set->slot[j]) {
        if (strcmp(set->slot[j], s) == 0)
            return 0;
        j = (j + 1) & (set->cap - 1);
    }
    set->slot[j] = s;
    set->n++;
    return 0;
}

static int collect_from_series(querier *q, const char *name, const matcher *ms, size_t nms, str_list *out,
                               kiln_err *err) {
    series_set set;
    select_hints h = {q->mint, q->maxt, 1, 0};
    pthread_rwlock_rdlock(&q->st->gc);
    int rc = select_locked(q, ms, nms, &h, 1, &set, err);
    if (rc) {
        pthread_rwlock_unlock(&q->st->gc);
        return rc;
    }
    strset seen = {0};
    /* the previous series' strings: neighbours often share them */
    const char *last = NULL;
    for (size_t i = 0; i < set.n && rc == 0; i++) {
        if (name) {
            const char *v = labels_get(set.v[i].ls, set.v[i].nls, name);
            if (v && !(last && strcmp(last, v) == 0))
                rc = strset_add(&seen, last = v);
        } else {
            for (size_t j = 0; j < set.v[i].nls && rc == 0; j++)
                rc = strset_add(&seen, set.v[i].ls[j].name);
        }
    }
    strs s = {0};
    for (size_t i = 0; i < seen.cap && rc == 0; i++)
        if (seen.slot[i])
            rc = strs_add(seen.slot[i], &s);
    free(seen.slot);
    if (rc) {
        free(s.v);
        rc = kiln_err_set(err, KILN_ENOMEM, "out of memory listing labels");
    } else {
        rc = strs_finish(&s, out, err); /* copies the strings before the head may drop them */
    }
    pthread_rwlock_unlock(&q->st->gc);
    series_set_free(&set);
    return rc;
}

static int block_overlaps(const querier *q, block *b) {
    const block_meta *m = block_get_meta(b);
    return m->maxt > q->mint && m->mint <= q->maxt;
}

int querier_label_names(querier *q, const matcher *ms, size_t nms, str_list *out, kiln_err *err) {
    if (nms)
        return collect_from_series(q, NULL, ms, nms, out, err);
    strs s = {0};
    int rc = head_label_names(q->st->h, strs_add, &s);
    pthread_rwlock_rdlock(&q->st->gc);
    for (size_t i = 0; i < q->st->nblocks && rc == 0; i++)
        if (block_overlaps(q, q->st->blocks[i]))
            rc = block_label_names(q->st->blocks[i], strs_add, &s);
    /* strs_finish copies the strings before the blocks can go */
    if (rc == 0)
        rc = strs_finish(&s, out, err);
    else
        free(s.v);
    pthread_rwlock_unlock(&q->st->gc);
    return rc ? kiln_err_set(err, KILN_ENOMEM, "out of memory listing labels") : 0;
}

int querier_label_values(querier *q, const char *name, const matcher *ms, size_t nms, str_list *out,
                         kiln_err *err) {
    if (nms)
        return collect_from_series(q, name, ms, nms, out, err);
    strs s = {0};
    int rc = head_label_values(q->st->h, name, strs_add, &s);
    pthread_rwlock_rdlock(&q->st->gc);
    for (size_t i = 0; i < q->st->nblocks && rc == 0; i++)
        if (block_overlaps(q, q->st->blocks[i]))
            rc = block_label_values(q->st->blocks[i], name, strs_add, &s);
    if (rc == 0)
        rc = strs_finish(&s, out, err);
    else
        free(s.v);
    pthread_rwlock_unlock(&q->st->gc);
    return rc ? kiln_err_set(err, KILN_ENOMEM, "out of memory listing labels") : 0;
}

/* ---- truncation ------------------------------------------------------------ */

typedef struct keep_ctx {
    storage *s;
} keep_ctx;

static int keep_series(uint64_t ref, void *data) {
    keep_ctx *k = data;
    return head_series(k->s->h, ref) != NULL;
}

int storage_truncate(storage *s, int64_t mint, kiln_err *err) {
    head_truncate_stats ts;
    double t0 = time_mono_sec();
    pthread_rwlock_wrlock(&s->gc);
    int rc = head_truncate(s->h, mint, &ts);
    tombstones_truncate(&s->hts, mint);
    kiln_err e2 = {0};
    int rc2 = headchunks_truncate(s->hc, mint, &e2);
    pthread_rwlock_unlock(&s->gc);
    if (rc)
        return kiln_err_set(err, rc, "head truncation: out of memory");
    if (rc2)
        LOG_WARN("removing old chunks_head files failed", "err=\"%s\"", e2.msg);
    /* checkpoint every finished segment: series still in the head, samples >= mint */
    int first, last;
    if ((rc = wal_segments(s->waldir, &first, &last, err)) != 0)
        return rc;
    int cur = wal_next_segment(s->w, err);
    if (cur < 0)
        return cur;
    if (first >= 0 && cur - 1 >= first) {
        keep_ctx k = {s};
        wal_checkpoint_opts co = {mint, s->o.wal_compression};
        wal_checkpoint_stats cs;
        if ((rc = wal_checkpoint(s->waldir, first, cur - 1, keep_series, &k, &co, &cs, err)) != 0)
            return rc;
        if ((rc = wal_truncate_before(s->w, cur, err)) != 0)
            return rc;
        LOG_INFO("WAL checkpoint complete", "first=%d last=%d series_kept=%llu samples_kept=%llu", first,
                 cur - 1, (unsigned long long)cs.series_kept, (unsigned long long)cs.samples_kept);
    }
    LOG_INFO("Head GC completed", "mint=%lld series_removed=%llu chunks_removed=%llu duration=%.3fs",
             (long long)mint, (unsigned long long)ts.series_removed, (unsigned long long)ts.chunks_removed,
             time_mono_sec() - t0);
    return 0;
}

/* ---- compaction and retention -------------------------------------------------- */

typedef struct hs_ref {
    hseries *s;
    const label *ls;
    size_t nls;
} hs_ref;

static int cmp_hs(const void *a, const void *b) {
    const hs_ref *x = a, *y = b;
    return labels_cmp(x->ls, x->nls, y->ls, y->nls);
}

/* Chunks of one series for the block being written (copied out of the head). */
typedef struct chunk_acc {
    block_chunk *v;
    size_t n, cap;
    arena *a;
} chunk_acc;

static int acc_chunk(void *ctx, int64_t mint, int64_t maxt, const uint8_t *data, size_t len) {
    chunk_acc *c = ctx;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        block_chunk *nv = realloc(c->v, nc * sizeof *nv);
        if (!nv)
            return KILN_ENOMEM;
        c->v = nv;
        c->cap = nc;
    }
    uint8_t *copy = arena_alloc_nz(c->a, len ? len : 1);
    if (!copy)
        return KILN_ENOMEM;
    memcpy(copy, data, len);
    c->v[c->n++] = (block_chunk){mint, maxt, copy, len};
    return 0;
}

/* Writes the head's chunks within [mint, maxt) as a block; *written 0 when
 * the range holds nothing. */
static int write_head_block(storage *s, const char *dir, int64_t mint, int64_t maxt, block **out,
                            char *ulid_out, kiln_err *err) {
    refvec refs = {0};
    hs_ref *v = NULL;
    chunk_acc acc = {0};
    arena a;
    arena_init(&a, 0);
    block_writer *w = NULL;
    if (out)
        *out = NULL;
    pthread_rwlock_rdlock(&s->gc);
    int rc = head_postings(s->h, NULL, 0, &refs, err);
    if (rc == 0 && !(v = malloc((refs.n + 1) * sizeof *v)))
        rc = kiln_err_set(err, KILN_ENOMEM, "compaction: out of memory");
    size_t n = 0;
    for (size_t i = 0; rc == 0 && i < refs.n; i++) {
        hseries *hs = head_series(s->h, refs.v[i]);
        if (hs) {
            v[n].s = hs;
            v[n].ls = hseries_labels(hs, &v[n].nls);
            n++;
        }
    }
    if (rc == 0) {
        qsort(v, n, sizeof *v, cmp_hs);
        rc = block_writer_new(dir, mint, maxt, &w, err);
    }
    size_t written = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        acc.n = 0;
        acc.a = &a;
        if ((rc = head_series_chunks(s->h, v[i].s, mint, maxt, acc_chunk, &acc)) != 0) {
            kiln_err_set(err, rc, "compaction: reading the head's chunks failed");
            break;
        }
        size_t ndel, nc = acc.n;
        const tstone *del = tombstones_of(&s->hts, hseries_ref(v[i].s), &ndel);
        const block_chunk *live = acc.v;
        if (nc && ndel && (rc = tombstones_apply(acc.v, acc.n, del, ndel, &a, &live, &nc)) != 0) {
            kiln_err_set(err, rc, "compaction: applying deletions failed");
            break;
        }
        if (nc) {
            rc = block_writer_add(w, v[i].ls, v[i].nls, live, nc, err);
            written++;
        }
        if (a.used_total > (64u << 20)) {
            arena_free(&a);
            arena_init(&a, 0);
        }
    }
    pthread_rwlock_unlock(&s->gc);
    char ulid[BLOCK_ULID_LEN + 1];
    if (rc == 0 && written) {
        if ((rc = block_writer_commit(w, ulid, err)) == 0 && out)
            rc = block_open(dir, ulid, out, err);
        if (rc == 0 && ulid_out)
            memcpy(ulid_out, ulid, sizeof ulid);
    } else {
        block_writer_abort(w);
    }
    refvec_free(&refs);
    free(v);
    free(acc.v);
    arena_free(&a);
    return rc;
}

/* ---- merging blocks (leveled and vertical compaction) ---- */

typedef struct mseries {
    const label *ls; /* pointers into the source block's symbols */
    size_t nls;
    block_chunk *c;
    size_t nc;
} mseries;

typedef struct mlist {
    mseries *v;
    size_t n, cap;
    arena *a;
} mlist;

static int collect_series(void *ctx, const label *ls, size_t nls, const block_chunk *c, size_t nc) {
    mlist *l = ctx;
    if (array_grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v))
        return KILN_ENOMEM;
    mseries *m = &l->v[l->n];
    label *cl = arena_alloc_nz(l->a, (nls + 1) * sizeof *cl);
    block_chunk *cc = arena_alloc_nz(l->a, (nc + 1) * sizeof *cc);
    if (!cl || !cc)
        return KILN_ENOMEM;
    memcpy(cl, ls, nls * sizeof *cl);
    memcpy(cc, c, nc * sizeof *cc);
    *m = (mseries){cl, nls, cc, nc};
    l->n++;
    return 0;
}

static int cmp_bchunk(const void *a, const void *b) {
    const block_chunk *x = a, *y = b;
    return x->mint < y->mint ? -1 : x->mint > y->mint;
}

static int cmp_sample_t(const void *a, const void *b) {
    const sample *x = a, *y = b;
    return x->t < y->t ? -1 : x->t > y->t;
}

/* Makes b visible to queries in place of blocks[first..first+count) (none
 * when count is 0; b NULL: they just go, their data all deleted); b is
 * closed when that fails. */
static int publish_block(storage *s, block *b, size_t first, size_t count, kiln_err *err) {
    pthread_rwlock_wrlock(&s->gc);
    if (count) {
        memmove(s->blocks + first, s->blocks + first + count,
                (s->nblocks - first - count) * sizeof *s->blocks);
        s->nblocks -= count;
    }
    int rc = b ? add_block(s, b) : 0;
    pthread_rwlock_unlock(&s->gc);
    if (rc) {
        block_close(b);
        kiln_err_set(err, rc, "compaction: out of memory");
    }
    return rc;
}

/* Chunks that overlap in time (overlapping blocks): decoded, merged (a
 * time present twice kept once), encoded again 120 samples a chunk. */
static int add_reencoded(block_writer *w, const label *ls, size_t nls, const block_chunk *c, size_t nc,
                         kiln_err *err) {
    size_t total = 0;
    for (size_t i = 0; i < nc; i++)
        total += c[i].len >= 2 ? (size_t)(c[i].data[0] << 8 | c[i].data[1]) : 0;
    sample *v = malloc((total + 1) * sizeof *v);
    if (!v)
        return kiln_err_set(err, KILN_ENOMEM, "compaction: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < nc; i++) {
        xoriter it;
        xoriter_init(&it, c[i].data, c[i].len);
        int x;
        while ((x = xoriter_next(&it)) == 1 && n < total)
            v[n++] = (sample){it.t, it.v};
        if (x < 0) {
            free(v);
            return kiln_err_set(err, KILN_ECORRUPT, "compaction: a damaged chunk");
        }
    }
    qsort(v, n, sizeof *v, cmp_sample_t);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || v[k - 1].t != v[i].t)
            v[k++] = v[i];
        else
            v[k - 1] = v[i];
    arena a;
    arena_init(&a, 0);
    block_chunk *bc;
    size_t nchunks;
    int rc = chunks_from_samples(v, k, &a, &bc, &nchunks);
    if (rc)
        kiln_err_set(err, rc, "compaction: out of memory");
    else
        rc = block_writer_add(w, ls, nls, bc, nchunks, err);
    arena_free(&a);
    free(v);
    return rc;
}

/* Writes one block holding everything of src[0..n) (their deleted samples
 * left out), a level above them, or at src[0]'s level with same_level (a
 * block rewritten alone).  *out is NULL when nothing is left. */
static int merge_blocks(storage *s, block **src, size_t n, int same_level, block **out, kiln_err *err) {
    mlist *lists = calloc(n, sizeof *lists);
    size_t *pos = calloc(n, sizeof *pos);
    block_meta *metas = calloc(n, sizeof *metas);
    block_chunk *cs = NULL;
    size_t capcs = 0;
    arena a;
    arena_init(&a, 0);
    block_writer *w = NULL;
    int rc = lists && pos && metas ? 0 : kiln_err_set(err, KILN_ENOMEM, "compaction: out of memory");
    int64_t mint = INT64_MAX, maxt = INT64_MIN;
    for (size_t i = 0; i < n && rc == 0; i++) {
        metas[i] = *block_get_meta(src[i]);
        mint = metas[i].mint < mint ? metas[i].mint : mint;
        maxt = metas[i].maxt > maxt ? metas[i].maxt : maxt;
        lists[i].a = &a;
        rc = block_foreach_series(src[i], &a, collect_series, &lists[i], err);
    }
    *out = NULL;
    size_t nseries = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        nseries += lists[i].n;
    if (rc == 0 && nseries == 0)
        goto done;
    if (rc == 0)
        rc = block_writer_new(s->dir, mint, maxt, &w, err);
    if (rc == 0 && (rc = block_writer_set_parents(w, metas, n)) != 0)
        kiln_err_set(err, rc, "compaction: out of memory");
    if (rc == 0 && same_level)
        block_writer_set_level(w, metas[0].level);
    /* a k-way merge of the label-ordered series lists */
    while (rc == 0) {
        const mseries *min = NULL;
        for (size_t i = 0; i < n; i++)
            if (pos[i] < lists[i].n &&
                (!min || labels_cmp(lists[i].v[pos[i]].ls, lists[i].v[pos[i]].nls, min->ls, min->nls) < 0))
                min = &lists[i].v[pos[i]];
        if (!min)
            break;
        const label *ls = min->ls;
        size_t nls = min->nls, nc = 0;
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (pos[i] >= lists[i].n ||
                labels_cmp(lists[i].v[pos[i]].ls, lists[i].v[pos[i]].nls, ls, nls) != 0)
                continue;
            const mseries *m = &lists[i].v[pos[i]++];
            if (array_grow((void **)&cs, &capcs, nc + m->nc, sizeof *cs)) {
                rc = kiln_err_set(err, KILN_ENOMEM, "compaction: out of memory");
                break;
            }
            memcpy(cs + nc, m->c, m->nc * sizeof *cs);
            nc += m->nc;
        }
        if (rc)
            break;
        qsort(cs, nc, sizeof *cs, cmp_bchunk);
        int overlap = 0;
        for (size_t j = 1; j < nc; j++)
            overlap |= cs[j].mint <= cs[j - 1].maxt;
        rc = overlap ? add_reencoded(w, ls, nls, cs, nc, err) : block_writer_add(w, ls, nls, cs, nc, err);
    }
    char ulid[BLOCK_ULID_LEN + 1];
    if (rc == 0) {
        if ((rc = block_writer_commit(w, ulid, err)) == 0)
            rc = block_open(s->dir, ulid, out, err);
    } else {
        block_writer_abort(w);
    }
done:
    for (size_t i = 0; lists && i < n; i++)
        free(lists[i].v);
    free(lists);
    free(pos);
    free(metas);
    free(cs);
    arena_free(&a);
    return rc;
}

/* The largest block merging makes: --storage.tsdb.max-block-duration, at
 * most 10% of the retention time (31 d when neither is set). */
static int64_t max_block_range(const storage *s) {
    int64_t maxr = s->o.max_block_range_ms > 0 ? s->o.max_block_range_ms : 31LL * 24 * 3600 * 1000;
    if (s->o.retention_ms > 0 && s->o.retention_ms / 10 < maxr)
        maxr = s->o.retention_ms / 10;
    return maxr;
}

/*
 * Which blocks to merge next, as Prometheus plans it: overlapping blocks
 * first; then, for spans of 3, 9, 27, ... block ranges up to the maximum,
 * two or more blocks inside one aligned span (the newest block is left out,
 * so that a fresh block can be backed up before it is merged).
 */
static int plan_merge(storage *s, size_t *first, size_t *count) {
    size_t n = s->nblocks;
    for (size_t i = 0; i + 1 < n; i++) {
        size_t j = i + 1;
        int64_t end = block_get_meta(s->blocks[i])->maxt;
        while (j < n && block_get_meta(s->blocks[j])->mint < end) {
            int64_t e = block_get_meta(s->blocks[j])->maxt;
            end = e > end ? e : end;
            j++;
        }
        if (j - i >= 2) {
            *first = i;
            *count = j - i;
            return 1;
        }
    }
    if (n < 3)
        return 0;
    int64_t r0 = s->o.block_range_ms, maxr = max_block_range(s);
    for (int64_t r = r0 * 3; r0 > 0 && r <= maxr; r *= 3) {
        for (size_t i = 0; i + 1 < n - 1;) {
            const block_meta *m = block_get_meta(s->blocks[i]);
            int64_t g = m->mint >= 0 ? m->mint / r : -((-m->mint + r - 1) / r);
            int64_t gend = (g + 1) * r;
            size_t j = i;
            while (j < n - 1 && block_get_meta(s->blocks[j])->mint >= g * r &&
                   block_get_meta(s->blocks[j])->maxt <= gend)
                j++;
            if (j - i >= 2) {
                *first = i;
                *count = j - i;
                return 1;
            }
            i = j > i ? j : i + 1;
        }
    }
    return 0;
}

/* Merges blocks while the planner finds some (caller holds compact_mu). */
static int merge_planned(storage *s, kiln_err *err) {
    size_t first, count;
    int rc = 0;
    while (rc == 0 && plan_merge(s, &first, &count)) {
        double t0 = time_mono_sec();
        block *b = NULL;
        block *src[64];
        if (count > 64)
            count = 64;
        memcpy(src, s->blocks + first, count * sizeof *src);
        if ((rc = merge_blocks(s, src, count, 0, &b, err)) != 0) {
            __atomic_add_fetch(&s->compactions_failed, 1, __ATOMIC_RELAXED);
            LOG_ERROR("Merging blocks failed", "blocks=%zu err=\"%s\"", count, err->msg);
            break;
        }
        /* on failure the merged block is on disk with its parents listed: the next start sorts it out */
        if ((rc = publish_block(s, b, first, count, err)) != 0)
            break;
        if (b)
            LOG_INFO("Merged blocks", "block=%s sources=%zu mint=%lld maxt=%lld level=%d duration=%.3fs",
                     block_get_meta(b)->ulid, count, (long long)block_get_meta(b)->mint,
                     (long long)block_get_meta(b)->maxt, block_get_meta(b)->level, time_mono_sec() - t0);
        for (size_t i = 0; i < count; i++) {
            char ulid[BLOCK_ULID_LEN + 1];
            kiln_err e = {0};
            snprintf(ulid, sizeof ulid, "%s", block_get_meta(src[i])->ulid);
            block_close(src[i]);
            if (block_delete(s->dir, ulid, &e) != 0)
                LOG_WARN("Deleting a merged block failed", "block=%s err=\"%s\"", ulid, e.msg);
        }
        __atomic_add_fetch(&s->compactions, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&s->compaction_us, (uint64_t)((time_mono_sec() - t0) * 1e6), __ATOMIC_RELAXED);
    }
    return rc;
}

/* Deletes the blocks wholly older than the retention; the gc lock keeps queries off them. */
static void apply_retention(storage *s) {
    if ((s->o.retention_ms <= 0 && !s->o.retention_bytes) || s->nblocks == 0)
        return;
    int64_t hmin, hmax, newest = INT64_MIN;
    head_time_range(s->h, &hmin, &hmax);
    for (size_t i = 0; i < s->nblocks; i++)
        if (block_get_meta(s->blocks[i])->maxt > newest)
            newest = block_get_meta(s->blocks[i])->maxt;
    if (hmax > newest)
        newest = hmax;
    int64_t cut = s->o.retention_ms > 0 ? newest - s->o.retention_ms : INT64_MIN;
    pthread_rwlock_wrlock(&s->gc);
    /* oldest first (the list is by mint): past the time, or while the blocks
     * together are over the size limit (never the newest block) */
    uint64_t total = 0;
    for (size_t i = 0; i < s->nblocks; i++)
        total += block_size(s->blocks[i]);
    size_t w = 0;
    block *gone[64];
    size_t ngone = 0;
    for (size_t i = 0; i < s->nblocks; i++) {
        int old = block_get_meta(s->blocks[i])->maxt <= cut;
        int big = s->o.retention_bytes && total > s->o.retention_bytes && i + 1 < s->nblocks;
        if ((old || big) && ngone < 64) {
            total -= block_size(s->blocks[i]);
            gone[ngone++] = s->blocks[i];
        } else {
            s->blocks[w++] = s->blocks[i];
        }
    }
    s->nblocks = w;
    pthread_rwlock_unlock(&s->gc);
    for (size_t i = 0; i < ngone; i++) {
        char ulid[BLOCK_ULID_LEN + 1];
        kiln_err e = {0};
        snprintf(ulid, sizeof ulid, "%s", block_get_meta(gone[i])->ulid);
        block_close(gone[i]);
        if (block_delete(s->dir, ulid, &e) != 0)
            LOG_WARN("Deleting a block past the retention failed", "block=%s err=\"%s\"", ulid, e.msg);
        else
            LOG_INFO("Deleted a block past the retention (time or size)", "block=%s", ulid);
        __atomic_add_fetch(&s->blocks_deleted, 1, __ATOMIC_RELAXED);
    }
}

/* The first sample time in the head (its recorded mint only grows with
 * truncation, so after a gap in the data it lies before the real one). */
static int64_t head_first_time(storage *s) {
    refvec refs = {0};
    int64_t t = INT64_MAX;
    pthread_rwlock_rdlock(&s->gc);
    if (head_postings(s->h, NULL, 0, &refs, NULL) == 0)
        for (size_t i = 0; i < refs.n; i++) {
            hseries *hs = head_series(s->h, refs.v[i]);
            int64_t x = INT64_MAX, last;
            if (hs)
                head_series_time_range(s->h, hs, &x, &last);
            if (x < t)
                t = x;
        }
    pthread_rwlock_unlock(&s->gc);
    refvec_free(&refs);
    return t;
}

static int rewrite_deleted(storage *s, int all, kiln_err *err);

int storage_compact(storage *s, kiln_err *err) {
    int rc = 0;
    pthread_mutex_lock(&s->compact_mu);
    kiln_err e = {0};
    if (load_blocks_from(s, 0, &e) != 0)
        LOG_WARN("Looking for new blocks failed", "err=\"%s\"", e.msg);
    for (;;) {
        int64_t hmin, hmax, r = s->o.block_range_ms;
        head_time_range(s->h, &hmin, &hmax);
        if (hmin > hmax || r <= 0 || hmax - hmin <= r / 2 * 3)
            break;
        if ((hmin = head_first_time(s)) == INT64_MAX || hmax - hmin <= r / 2 * 3)
            break;
        int64_t mint = hmin >= 0 ? hmin / r * r : -((-hmin + r - 1) / r) * r;
        int64_t maxt = mint + r;
        double t0 = time_mono_sec();
        block *b = NULL;
        if ((rc = write_head_block(s, s->dir, mint, maxt, &b, NULL, err)) != 0) {
            __atomic_add_fetch(&s->compactions_failed, 1, __ATOMIC_RELAXED);
            LOG_ERROR("Compaction failed", "mint=%lld maxt=%lld err=\"%s\"", (long long)mint, (long long)maxt,
                      err->msg);
            break;
        }
        if (b) {
            if ((rc = publish_block(s, b, 0, 0, err)) != 0)
                break;
            LOG_INFO("Compacted the head into a block",
                     "block=%s mint=%lld maxt=%lld series=%llu duration=%.3fs", block_get_meta(b)->ulid,
                     (long long)mint, (long long)maxt, (unsigned long long)block_get_meta(b)->series,
                     time_mono_sec() - t0);
        }
        __atomic_add_fetch(&s->compactions, 1, __ATOMIC_RELAXED);
        if ((rc = storage_truncate(s, maxt, err)) != 0)
            break;
        __atomic_add_fetch(&s->compaction_us, (uint64_t)((time_mono_sec() - t0) * 1e6), __ATOMIC_RELAXED);
    }
    if (rc == 0)
        rc = merge_planned(s, err);
    if (rc == 0)
        rc = rewrite_deleted(s, 0, err);
    apply_retention(s);
    pthread_mutex_unlock(&s->compact_mu);
    return rc;
}

/* ---- deletion ------------------------------------------------------------------ */

/* The head's part of a deletion: the matching series' stones, logged to
 * the WAL (synced) before they take effect. */
static int delete_in_head(storage *s, const matcher *ms, size_t nms, int64_t mint, int64_t maxt,
                          kiln_err *err) {
    refvec refs = {0};
    walrec_tombstone *v = NULL;
    size_t n = 0, cap = 0;
    pthread_rwlock_rdlock(&s->gc);
    int rc = head_postings(s->h, ms, nms, &refs, err);
    for (size_t i = 0; rc == 0 && i < refs.n; i++) {
        hseries *hs = head_series(s->h, refs.v[i]);
        int64_t first, last;
        /* as Prometheus: clamped to the series' own first and last sample */
        if (!hs || !head_series_has_data(s->h, hs, mint, maxt) ||
            !head_series_time_range(s->h, hs, &first, &last))
            continue;
        if (array_grow((void **)&v, &cap, n + 1, sizeof *v))
            rc = kiln_err_set(err, KILN_ENOMEM, "deleting: out of memory");
        else
            v[n++] = (walrec_tombstone){refs.v[i], mint > first ? mint : first, maxt < last ? maxt : last};
    }
    pthread_rwlock_unlock(&s->gc);
    buf rec = BUF_INIT;
    if (rc == 0 && n) {
        if (walrec_encode_tombstones(&rec, v, n) != 0)
            rc = kiln_err_set(err, KILN_ENOMEM, "deleting: out of memory");
        else if ((rc = wal_log(s->w, rec.data, rec.len, err)) == 0)
            rc = wal_sync(s->w, err);
    }
    if (rc == 0 && n) {
        tombstones next = {0};
        pthread_rwlock_wrlock(&s->gc);
        rc = tombstones_copy(&next, &s->hts);
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = tombstones_add(&next, v[i].ref, v[i].mint, v[i].maxt);
        if (rc == 0) {
            tombstones_free(&s->hts);
            s->hts = next;
        } else {
            tombstones_free(&next);
            /* logged but not applied: a restart applies it */
            rc = kiln_err_set(err, KILN_ENOMEM, "deleting: out of memory");
        }
        pthread_rwlock_unlock(&s->gc);
    }
    buf_free(&rec);
    free(v);
    refvec_free(&refs);
    return rc;
}

int storage_delete_series(storage *s, const matcher *ms, size_t nms, int64_t mint, int64_t maxt,
                          kiln_err *err) {
    if (nms == 0)
        return kiln_err_set(err, KILN_EINVAL, "no matchers given");
    pthread_mutex_lock(&s->compact_mu);
    int rc = 0;
    /* the blocks (their list changes only under compact_mu, held here) */
    for (size_t i = 0; rc == 0 && i < s->nblocks; i++) {
        tombstones next;
        if ((rc = block_delete_series(s->blocks[i], ms, nms, mint, maxt, &next, err)) != 0)
            break;
        if (next.n) {
            pthread_rwlock_wrlock(&s->gc);
            block_set_tombstones(s->blocks[i], &next);
            pthread_rwlock_unlock(&s->gc);
        }
    }
    if (rc == 0)
        rc = delete_in_head(s, ms, nms, mint, maxt, err);
    pthread_mutex_unlock(&s->compact_mu);
    if (rc == 0)
        LOG_INFO("Series deleted", "matchers=%zu mint=%lld maxt=%lld", nms, (long long)mint, (long long)maxt);
    return rc;
}

/* Rewrites the blocks with tombstones: all, or as Prometheus' planner does,
 * those spanning at least the middle one of the block ranges (2 h, 6 h, 18 h,
 * ... up to the largest) whose tombstones outnumber 5% of their series.
 * Caller holds compact_mu. */
static int rewrite_deleted(storage *s, int all, kiln_err *err) {
    int rc = 0;
    int64_t maxr = max_block_range(s), big = s->o.block_range_ms;
    int nr = 0;
    for (int64_t r = big; big > 0 && r <= maxr; r *= 3)
        nr++;
    for (int i = 0; i < nr / 2; i++)
        big *= 3;
    for (size_t i = 0; rc == 0 && i < s->nblocks;) {
        block *old = s->blocks[i], *b = NULL;
        const block_meta *m = block_get_meta(old);
        size_t nt = block_tombstones(old);
        if (!nt || (!all && (m->maxt - m->mint < big || (double)nt <= 0.05 * (double)(m->series + 1)))) {
            i++;
            continue;
        }
        double t0 = time_mono_sec();
        char ulid[BLOCK_ULID_LEN + 1];
        snprintf(ulid, sizeof ulid, "%s", block_get_meta(old)->ulid);
        if ((rc = merge_blocks(s, &old, 1, 1, &b, err)) != 0 || (rc = publish_block(s, b, i, 1, err)) != 0)
            break;
        /* the list is by mint: b took old's place, or nothing did */
        LOG_INFO("Rewrote a block without its deleted data", "old=%s new=%s duration=%.3fs", ulid,
                 b ? block_get_meta(b)->ulid : "(none: all deleted)", time_mono_sec() - t0);
        block_close(old);
        kiln_err e = {0};
        if (block_delete(s->dir, ulid, &e) != 0)
            LOG_WARN("Deleting a rewritten block failed", "block=%s err=\"%s\"", ulid, e.msg);
        if (b)
            i++;
    }
    return rc;
}

int storage_clean_tombstones(storage *s, kiln_err *err) {
    pthread_mutex_lock(&s->compact_mu);
    int rc = rewrite_deleted(s, 1, err);
    pthread_mutex_unlock(&s->compact_mu);
    return rc;
}

/* ---- snapshots ------------------------------------------------------------------ */

static int link_file(const char *from_dir, const char *to_dir, const char *name, kiln_err *err) {
    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/%s", from_dir, name);
    snprintf(b, sizeof b, "%s/%s", to_dir, name);
    if (link(a, b) != 0)
        return kiln_err_set(err, KILN_EIO, "snapshot: link %s: %s", a, strerror(errno));
    return 0;
}

int storage_snapshot(storage *s, int with_head, char *name, size_t namelen, kiln_err *err) {
    char dst[4200], sub[4400];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    unsigned rnd = (unsigned)(time_mono_sec() * 1e9) ^ (unsigned)getpid();
    snprintf(name, namelen, "%04d%02d%02dT%02d%02d%02dZ-%08x%08x", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rnd, rnd * 2654435761u);
    snprintf(dst, sizeof dst, "%s/snapshots/%s", s->dir, name);
    int rc = mkdir_p(dst, err);
    if (rc)
        return rc;
    /* the blocks are immutable: hard links */
    pthread_rwlock_rdlock(&s->gc);
    for (size_t i = 0; i < s->nblocks && rc == 0; i++) {
        const char *ulid = block_get_meta(s->blocks[i])->ulid;
        char src[4400];
        snprintf(src, sizeof src, "%s/%s", s->dir, ulid);
        snprintf(sub, sizeof sub, "%s/%s/chunks", dst, ulid);
        if ((rc = mkdir_p(sub, err)) != 0)
            break;
        snprintf(sub, sizeof sub, "%s/%s", dst, ulid);
        rc = link_file(src, sub, "index", err);
        if (rc == 0)
            rc = link_file(src, sub, "meta.json", err);
        char tpath[4500];
        snprintf(tpath, sizeof tpath, "%s/tombstones", src);
        if (rc == 0 && access(tpath, F_OK) == 0)
            rc = link_file(src, sub, "tombstones", err);
        for (unsigned k = 1; rc == 0; k++) {
            char seg[32], probe[4500];
            snprintf(seg, sizeof seg, "chunks/%06u", k);
            snprintf(probe, sizeof probe, "%s/%s", src, seg);
            if (access(probe, F_OK) != 0)
                break;
            rc = link_file(src, sub, seg, err);
        }
    }
    pthread_rwlock_unlock(&s->gc);
    /* the head as one more block */
    int64_t hmin, hmax;
    head_time_range(s->h, &hmin, &hmax);
    if (rc == 0 && with_head && hmin <= hmax)
        rc = write_head_block(s, dst, hmin, hmax + 1, NULL, NULL, err);
    if (rc == 0)
        LOG_INFO("Snapshot created", "name=%s blocks=%zu head=%d", name, s->nblocks, with_head);
    return rc;
}

/* ---- metrics ------------------------------------------------------------------ */

#define LOADU(field) ((double)__atomic_load_n(&((storage *)d)->field, __ATOMIC_RELAXED))

static double m_series(void *d) {
    head_counts c;
    head_get_counts(((storage *)d)->h, &c);
    return (double)c.series;
}
static double m_chunks(void *d) {
    head_counts c;
    head_get_counts(((storage *)d)->h, &c);
    return (double)c.chunks;
}
static double m_chunks_created(void *d) {
    head_counts c;
    head_get_counts(((storage *)d)->h, &c);
    return (double)c.chunks_created;
}
static double m_mint(void *d) {
    int64_t a, b;
    head_time_range(((storage *)d)->h, &a, &b);
    return a == INT64_MAX ? 0 : (double)a;
}
static double m_maxt(void *d) {
    int64_t a, b;
    head_time_range(((storage *)d)->h, &a, &b);
    return b == INT64_MIN ? 0 : (double)b;
}
static double m_appended(void *d) {
    return LOADU(samples_appended);
}
static double m_ooo(void *d) {
    return LOADU(rejected_ooo);
}
static double m_dup(void *d) {
    return LOADU(rejected_dup);
}
static double m_oob(void *d) {
    return LOADU(rejected_oob);
}
static double m_commit_fail(void *d) {
    return LOADU(commits_failed);
}
static double m_replay(void *d) {
    return ((storage *)d)->replay_seconds;
}

/* The slab allocator holds the head's series and open chunks (and nothing else). */
static double m_slab_objects(void *d) {
    (void)d;
    slab_stats st;
    slab_get_stats(&st);
    return (double)st.bytes;
}

static double m_slab_pages(void *d) {
    (void)d;
    slab_stats st;
    slab_get_stats(&st);
    return (double)((st.pages - st.released) * SLAB_PAGE);
}

static wal_stats wstats(void *d) {
    wal_stats ws;
    wal_get_stats(((storage *)d)->w, &ws);
    return ws;
}
static double m_fsyncs(void *d) {
    return (double)wstats(d).fsyncs;
}
static double m_fsync_s(void *d) {
    return (double)wstats(d).fsync_ns / 1e9;
}
static double m_segment(void *d) {
    return (double)wstats(d).segment_current;
}
static double m_wfail(void *d) {
    return (double)wstats(d).writes_failed;
}
static double m_wrecords(void *d) {
    return (double)wstats(d).records_written;
}
static double m_wbytes(void *d) {
    return (double)wstats(d).bytes_written;
}
static double m_corrupt(void *d) {
    return (double)wstats(d).corruptions;
}

static double blocks_sum(storage *s, int bytes) {
    double v = 0;
    pthread_rwlock_rdlock(&s->gc);
    for (size_t i = 0; i < s->nblocks; i++)
        v += bytes ? (double)block_size(s->blocks[i]) : 1;
    pthread_rwlock_unlock(&s->gc);
    return v;
}
static double m_blocks(void *d) {
    return blocks_sum(d, 0);
}
static double m_block_bytes(void *d) {
    return blocks_sum(d, 1);
}
static double m_compactions(void *d) {
    return LOADU(compactions);
}
static double m_compact_fail(void *d) {
    return LOADU(compactions_failed);
}
static double m_compact_s(void *d) {
    return LOADU(compaction_us) / 1e6;
}
static double m_retentions(void *d) {
    return LOADU(blocks_deleted);
}

int storage_register_metrics(storage *s) {
    static const struct {
        int type;
        const char *name, *help;
        double (*fn)(void *);
    } defs[] = {
        {METRIC_GAUGE, "kiln_tsdb_head_series", "Series in the head block.", m_series},
        {METRIC_GAUGE, "kiln_tsdb_head_chunks", "Chunks in the head block.", m_chunks},
        {METRIC_GAUGE, "kiln_tsdb_head_memory_bytes", "Bytes of the head's series and open chunks.",
         m_slab_objects},
        {METRIC_GAUGE, "kiln_tsdb_head_memory_pages_bytes",
         "Bytes of the pages that hold the head's series and open chunks, free room included.", m_slab_pages},
        {METRIC_COUNTER, "kiln_tsdb_head_chunks_created_total", "Chunks created in the head.",
         m_chunks_created},
        {METRIC_GAUGE, "kiln_tsdb_head_min_time", "Lowest timestamp in the head (ms).", m_mint},
        {METRIC_GAUGE, "kiln_tsdb_head_max_time", "Highest timestamp in the head (ms).", m_maxt},
        {METRIC_COUNTER, "kiln_tsdb_head_samples_appended_total", "Samples appended to the head.",
         m_appended},
        {METRIC_COUNTER, "kiln_tsdb_out_of_order_samples_total", "Samples rejected as out of order.", m_ooo},
        {METRIC_COUNTER, "kiln_tsdb_duplicate_samples_total",
         "Samples rejected: same timestamp, different value.", m_dup},
        {METRIC_COUNTER, "kiln_tsdb_out_of_bound_samples_total", "Samples rejected as out of bounds.", m_oob},
        {METRIC_COUNTER, "kiln_tsdb_commits_failed_total", "Append batches that failed to reach the WAL.",
         m_commit_fail},
        {METRIC_GAUGE, "kiln_tsdb_wal_replay_duration_seconds", "Duration of the last WAL replay.", m_replay},
        {METRIC_COUNTER, "kiln_tsdb_wal_fsyncs_total", "WAL fsync calls.", m_fsyncs},
        {METRIC_COUNTER, "kiln_tsdb_wal_fsync_duration_seconds_total", "Total time spent in WAL fsync.",
         m_fsync_s},
        {METRIC_GAUGE, "kiln_tsdb_wal_segment_current", "The WAL segment being written.", m_segment},
        {METRIC_COUNTER, "kiln_tsdb_wal_writes_failed_total", "WAL writes that failed.", m_wfail},
        {METRIC_COUNTER, "kiln_tsdb_wal_records_written_total", "WAL records written.", m_wrecords},
        {METRIC_COUNTER, "kiln_tsdb_wal_bytes_written_total", "Bytes written to the WAL.", m_wbytes},
        {METRIC_COUNTER, "kiln_tsdb_wal_corruptions_total", "WAL corruptions found on replay.", m_corrupt},
        {METRIC_GAUGE, "kiln_tsdb_blocks_loaded", "Persistent blocks open.", m_blocks},
        {METRIC_GAUGE, "kiln_tsdb_storage_blocks_bytes", "Bytes of the persistent blocks.", m_block_bytes},
        {METRIC_COUNTER, "kiln_tsdb_compactions_total", "Head compactions into a block.", m_compactions},
        {METRIC_COUNTER, "kiln_tsdb_compactions_failed_total", "Head compactions that failed.",
         m_compact_fail},
        {METRIC_COUNTER, "kiln_tsdb_compaction_duration_seconds_total", "Time spent compacting.",
         m_compact_s},
        {METRIC_COUNTER, "kiln_tsdb_time_retentions_total", "Blocks deleted past the retention time.",
         m_retentions},
    };
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        if (!metric_new_func(defs[i].type, defs[i].name, defs[i].help, defs[i].fn, s))
            return KILN_ENOMEM;
    return 0;
}
