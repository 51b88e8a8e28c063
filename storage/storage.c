/*
 * storage.c - the storage as the rest of kiln sees it (storage.h): opening
 * a data directory (its blocks, then the WAL replayed into the head by
 * replay.c) and closing it, the list of blocks, appenders that write the
 * WAL before anything becomes visible, statistics and metrics.  Queriers
 * are in querier.c; truncation, compaction, retention, deletion and
 * snapshots in compact.c.
 *
 * Data directory:
 *   <dir>/wal/            the write-ahead log (wal.h), Prometheus' format
 *   <dir>/chunks_head/    full head chunks (headchunks.h)
 *   <dir>/<ULID>/         blocks (block.h)
 *
 * Commit order: new series records and the samples record of a batch go to
 * the WAL in one write; only when that succeeded are the samples put into
 * the head (so a query never sees a sample a crash could lose).  A series
 * exists in the head from the append that creates it, before its record
 * is logged: when the commit fails, or the batch is rolled back, its new
 * series' records are logged all the same (as Prometheus' rollback does),
 * and when even that fails the next commit logs them first.  Otherwise a
 * later batch's samples of such a series (found by its labels or by a
 * cached reference) would be logged against a series the WAL never saw,
 * and dropped at replay.
 *
 * Called by api/ (remote write), scrape/, rules and cmd/ through storage.h.
 * Threading: see storage.h (appenders, queriers, the lock order); counters
 * are atomics.
 */
#include "storage/storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage_int.h"
#include "storage/walrec.h"

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

int storage__add_block(storage *s, block *b) {
    block **nv = realloc(s->blocks, (s->nblocks + 1) * sizeof *nv);
    if (!nv)
        return KILN_ENOMEM;
    s->blocks = nv;
    s->blocks[s->nblocks++] = b;
    qsort(s->blocks, s->nblocks, sizeof *s->blocks, cmp_block);
    head_set_min_valid(s->h, block_get_meta(b)->maxt);
    return 0;
}

int storage__delete_block(storage *s, block *b, const char *failed) {
    char ulid[BLOCK_ULID_LEN + 1];
    kiln_err e = {0};
    snprintf(ulid, sizeof ulid, "%s", block_get_meta(b)->ulid);
    block_close(b);
    int rc = block_delete(s->dir, ulid, &e);
    if (rc != 0)
        LOG_WARN(failed, "block=%s err=%s", ulid, e.msg);
    return rc;
}

static int have_block(storage *s, const char *ulid) {
    for (size_t i = 0; i < s->nblocks; i++)
        if (strcmp(block_get_meta(s->blocks[i])->ulid, ulid) == 0)
            return 1;
    return 0;
}

/* A damaged block is remembered as skipped by its name; the list changes
 * under the gc write lock once the storage is open. */
int storage__load_blocks_from(storage *s, int at_start, kiln_err *err) {
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
            LOG_ERROR("Skipping a damaged block", "block=%s err=%s", ul[i], e.msg);
            char **nb = realloc(s->bad, (s->nbad + 1) * sizeof *nb);
            if (nb) {
                s->bad = nb;
                s->bad[s->nbad++] = ul[i];
                ul[i] = NULL;
            }
        } else if (rc == 0 && !skip) {
            if (!at_start)
                lockrank_wrlock(&s->gc, LOCK_RANK_GC);
            rc = storage__add_block(s, b);
            if (!at_start)
                lockrank_rwunlock(&s->gc, LOCK_RANK_GC, 0);
            if (rc) {
                block_close(b);
                kiln_err_set(err, rc, "storage: out of memory");
            } else if (!at_start) {
                LOG_INFO("Loaded a new block from the data directory", "block=%s", ul[i]);
                storage__changed(s, block_get_meta(b)->mint);
            }
        }
        free(ul[i]);
    }
    free(ul);
    return rc;
}

/* Opens the blocks in the data directory at start. */
KILN_MUST_CHECK static int load_blocks(storage *s, kiln_err *err) {
    int rc = storage__load_blocks_from(s, 1, err);
    /* a merge that crashed before deleting its sources: the merged block wins */
    for (size_t i = 0; rc == 0 && i < s->nblocks;) {
        int replaced = 0;
        for (size_t j = 0; j < s->nblocks && !replaced; j++)
            replaced = j != i && block_is_parent_of(s->blocks[j], block_get_meta(s->blocks[i])->ulid);
        if (!replaced) {
            i++;
            continue;
        }
        block *merged = s->blocks[i];
        memmove(s->blocks + i, s->blocks + i + 1, (s->nblocks - i - 1) * sizeof *s->blocks);
        s->nblocks--;
        LOG_INFO("Deleting a block already merged into another", "block=%s", block_get_meta(merged)->ulid);
        storage__delete_block(s, merged, "Deleting a merged block failed"); /* the next start retries */
    }
    if (rc == 0 && s->nblocks)
        LOG_INFO("Blocks loaded", "blocks=%zu", s->nblocks);
    return rc;
}

/* ---- open / close ---------------------------------------------------------- */

/* Frees what storage_open set up but the WAL writer; the result of closing
 * chunks_head (its last chunks are flushed). */
static int free_storage(storage *s, kiln_err *err) {
    exemplar_store_free(s->exemplars);
    kiln_err e2;
    if (storage__ooo_close(s, &e2) != 0)
        LOG_WARN("closing the WBL failed", "err=%s", e2.msg);
    close_blocks(s);
    tombstones_free(&s->hts);
    head_free(s->h);
    int rc = headchunks_close(s->hc, err);
    free(s->unlogged);
    pthread_mutex_destroy(&s->unlogged_mu);
    pthread_mutex_destroy(&s->compact_mu);
    pthread_rwlock_destroy(&s->gc);
    free(s->dir);
    free(s);
    return rc;
}

int storage_open(const storage_opts *opts, storage **out, kiln_err *err) {
    storage *s = calloc(1, sizeof *s);
    int rc;
    if (!s)
        return kiln_err_set(err, KILN_ENOMEM, "storage: out of memory");
    s->o = *opts;
    s->watch_t = INT64_MIN;
    if (!(s->dir = strdup(opts->dir && *opts->dir ? opts->dir : "data"))) {
        free(s);
        return kiln_err_set(err, KILN_ENOMEM, "storage: out of memory");
    }
    s->o.dir = s->dir;
    pthread_rwlock_init(&s->gc, NULL);
    pthread_mutex_init(&s->compact_mu, NULL);
    pthread_mutex_init(&s->unlogged_mu, NULL);
    if ((size_t)snprintf(s->waldir, sizeof s->waldir, "%s/wal", s->dir) >= sizeof s->waldir) {
        rc = kiln_err_set(err, KILN_EINVAL, "storage: data directory path too long");
        goto fail;
    }
    if ((rc = fileio_mkdir_p(s->waldir, err)) != 0) {
        kiln_err_prefix(err, "storage");
        goto fail;
    }
    char hcdir[4200];
    snprintf(hcdir, sizeof hcdir, "%s/chunks_head", s->dir);
    if ((rc = headchunks_open(hcdir, &s->hc, err)) != 0)
        goto fail;
    if ((rc = head_new(opts->block_range_ms, s->hc, &s->h, err)) != 0)
        goto fail;
    if ((rc = load_blocks(s, err)) != 0)
        goto fail;
    /* before the replay, which adds the WAL's exemplars */
    if (opts->max_exemplars > 0 && !(s->exemplars = exemplar_store_new(opts->max_exemplars))) {
        rc = kiln_err_set(err, KILN_ENOMEM, "storage: out of memory");
        goto fail;
    }
    if ((rc = storage__replay(s, err)) != 0 || (rc = storage__ooo_open(s, err)) != 0)
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
    /* the error that made opening fail is the one reported */
    free_storage(s, NULL);
    return rc;
}

int storage_close(storage *s, kiln_err *err) {
    if (!s)
        return 0;
    int rc = wal_close(s->w, err);
    kiln_err e2;
    int rc2 = free_storage(s, &e2);
    if (rc2 && !rc) {
        rc = rc2;
        if (err)
            *err = e2;
    }
    return rc;
}

exemplar_store *storage_exemplars(storage *s) {
    return s->exemplars;
}

void storage_get_stats(storage *s, storage_stats *out) {
    head_counts hc;
    head_get_counts(s->h, &hc);
    out->head_series = hc.series;
    out->head_chunks = hc.chunks;
    head_time_range(s->h, &out->head_min_time, &out->head_max_time);
    out->samples_appended = __atomic_load_n(&s->samples_appended, __ATOMIC_RELAXED);
    out->replay_unknown_refs = s->replay_unknown_refs;
}

/* ---- appending ------------------------------------------------------------- */

/* A staged histogram sample; h is a copy in the appender's arena. */
typedef struct hstaged {
    hseries *s;
    int64_t t;
    const histogram *h;
} hstaged;

/*
 * Within a batch, a series' samples must be in order too: head_append_check
 * sees only what is committed, so the appender compares a sample with the
 * last one it staged for the series.  The staged samples of a series form
 * runs (consecutive entries of v).  Within a run the previous entry is the
 * one to compare with.  When a series starts a run, `runs` (an open-
 * addressing set of indexes into v, 0 empty, else index + 1, keyed by the
 * entry's series) gives the start of its latest run, if any, whose end is
 * then found by walking it; the new run's start replaces it once its first
 * sample is staged.  So a batch of one sample per series costs one probe a
 * sample, and each run is walked at most once.
 */
struct appender {
    storage *st;
    int trusted;   /* labels were checked by the caller */
    int64_t max_t; /* later samples are too far in the future (STORAGE_MAX_FUTURE_MS) */
    staged *v;
    size_t n, cap;
    uint32_t *runs; /* see above; capacity a power of two, at most half full */
    size_t nruns, capruns;
    size_t run_slot; /* the slot to point at the next staged entry, or SIZE_MAX */
    /* the series this appender created (and, at commit, those failed
     * commits left unlogged): their records go to the WAL whatever happens */
    hseries **created;
    size_t ncreated, capcreated;
    /* histogram samples, committed after the floats as Prometheus does */
    hstaged *hv;
    size_t nh, caph;
    arena hmem;
    exbatch ex; /* exemplars, logged after the samples (exemplars.c) */
    /* samples for the out-of-order head (ooostore.c), committed after the rest */
    staged *ov;
    size_t no, capo;
};

appender *storage_appender(storage *s) {
    appender *a = calloc(1, sizeof *a);
    if (a) {
        a->st = s;
        a->max_t = time_now_ms() + STORAGE_MAX_FUTURE_MS;
        arena_init(&a->hmem, 0);
        lockrank_rdlock(&s->gc, LOCK_RANK_GC);
    }
    return a;
}

/* The slot holding hs in a->runs, or the empty slot where it would go. */
static size_t runs_find(const appender *a, const hseries *hs) {
    size_t mask = a->capruns - 1,
           i = (size_t)(((uint64_t)(uintptr_t)hs * 0x9E3779B97F4A7C15ULL) >> 32) & mask;
    while (a->runs[i] && a->v[a->runs[i] - 1].s != hs)
        i = (i + 1) & mask;
    return i;
}

/* Room for one more series in a->runs. */
KILN_MUST_CHECK static int runs_reserve(appender *a) {
    if ((a->nruns + 1) * 2 <= a->capruns)
        return 0;
    size_t nc = a->capruns ? a->capruns * 2 : 512, oc = a->capruns;
    uint32_t *old = a->runs, *nv = calloc(nc, sizeof *nv);
    if (!nv)
        return KILN_ENOMEM;
    a->runs = nv;
    a->capruns = nc;
    for (size_t i = 0; i < oc; i++)
        if (old[i])
            a->runs[runs_find(a, a->v[old[i] - 1].s)] = old[i];
    free(old);
    return 0;
}

/* The sample staged last for hs in this batch (NULL: none); when hs starts
 * a run, notes the slot that its first staged entry goes to. */
KILN_MUST_CHECK static int staged_last(appender *a, const hseries *hs, const staged **out) {
    *out = NULL;
    a->run_slot = SIZE_MAX;
    if (a->n && a->v[a->n - 1].s == hs) {
        *out = &a->v[a->n - 1];
        return 0;
    }
    if (a->n >= UINT32_MAX || runs_reserve(a) != 0)
        return KILN_ENOMEM;
    size_t i = runs_find(a, hs);
    if (a->runs[i]) {
        size_t k = a->runs[i] - 1;
        while (k + 1 < a->n && a->v[k + 1].s == hs)
            k++;
        *out = &a->v[k];
    }
    a->run_slot = i;
    return 0;
}

static int same_value(double x, double y) {
    uint64_t a, b;
    memcpy(&a, &x, sizeof a);
    memcpy(&b, &y, sizeof b);
    return a == b;
}

/* The series a sample goes to: by *ref, or found or created from ls (then
 * listed for its WAL record).  Refuses a sample too far in the future
 * before a series is made for it. */
KILN_MUST_CHECK static int target_series(appender *a, uint64_t *ref, const label *ls, size_t n, int64_t t,
                                         hseries **out, kiln_err *err) {
    storage *s = a->st;
    hseries *hs;
    int rc;
    if (t > a->max_t) {
        __atomic_add_fetch(&s->rejected_oob, 1, __ATOMIC_RELAXED);
        return kiln_err_set(err, KILN_ERANGE, "out of bounds: more than %lldm in the future",
                            (long long)(STORAGE_MAX_FUTURE_MS / 60000));
    }
    if (*ref) {
        if (!(hs = head_series(s->h, *ref)))
            return kiln_err_set(err, KILN_EINVAL, "unknown series reference %llu", (unsigned long long)*ref);
    } else {
        if (!a->trusted && (rc = labels_check(ls, n, err)) != 0)
            return rc;
        /* room first: a series created but not listed would never be logged */
        if (a->ncreated == a->capcreated &&
            array_grow((void **)&a->created, &a->capcreated, a->ncreated + 1, sizeof *a->created) != 0)
            return kiln_err_set(err, KILN_ENOMEM, "out of memory");
        int created;
        if ((rc = head_get_or_create(s->h, ls, n, 0, &hs, &created, err)) != 0)
            return rc;
        if (created)
            a->created[a->ncreated++] = hs;
        *ref = hseries_ref(hs);
    }
    *out = hs;
    return 0;
}

/* A sample at t (<= prev) after one staged at prev for its series:
 * HEAD_APPEND_SAME when it repeats it (same), else the error. */
static int staged_order(int64_t t, int64_t prev, int same, kiln_err *err) {
    if (t < prev)
        return kiln_err_set(err, KILN_EORDER, "out of order sample");
    return same ? HEAD_APPEND_SAME : kiln_err_set(err, KILN_EEXIST, "duplicate sample for timestamp");
}

/* Counts a refused sample by its error. */
static int count_rejected(storage *s, int rc) {
    uint64_t *c = rc == KILN_EORDER   ? &s->rejected_ooo
                  : rc == KILN_EEXIST ? &s->rejected_dup
                                      : &s->rejected_oob;
    __atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
    return rc;
}

int appender_append(appender *a, uint64_t *ref, const label *ls, size_t n, int64_t t, double v,
                    kiln_err *err) {
    storage *s = a->st;
    hseries *hs;
    int rc = target_series(a, ref, ls, n, t, &hs, err);
    if (rc)
        return rc;
    int is_float;
    if (value_is_stale(v) && head_series_last_histogram(s->h, hs, &is_float)) {
        /* a series of histograms ends with a histogram stale marker, as in Prometheus */
        histogram st = {.sum = v, .is_int = (uint8_t)!is_float};
        return appender_append_histogram(a, ref, NULL, 0, t, &st, err);
    }
    rc = head_append_check(s->h, hs, t, v, err);
    const staged *prev = NULL;
    if (rc >= 0 && staged_last(a, hs, &prev) != 0)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    if (rc >= 0 && prev && t <= prev->t)
        rc = staged_order(t, prev->t, same_value(v, prev->v), err);
    if ((rc == KILN_EORDER || rc == KILN_ERANGE) && storage_ooo_window(s) > 0)
        rc = storage__ooo_classify(s, t, rc == KILN_EORDER && prev ? prev->t : INT64_MIN, err);
    if (rc == STORAGE__OOO)
        return array_grow((void **)&a->ov, &a->capo, a->no + 1, sizeof *a->ov) != 0
                   ? kiln_err_set(err, KILN_ENOMEM, "out of memory")
                   : (a->ov[a->no++] = (staged){hs, t, v}, 0);
    if (rc == HEAD_APPEND_SAME)
        return 0;
    if (rc < 0)
        return rc == KILN_ERANGE && storage_ooo_window(s) > 0 ? rc : count_rejected(s, rc);
    if (array_grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v) != 0)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    if (a->run_slot != SIZE_MAX) { /* a run starts: the set points at it from now on */
        a->nruns += a->runs[a->run_slot] == 0;
        a->runs[a->run_slot] = (uint32_t)a->n + 1;
    }
    a->v[a->n++] = (staged){hs, t, v};
    return 0;
}

int appender_append_histogram(appender *a, uint64_t *ref, const label *ls, size_t n, int64_t t,
                              const histogram *h, kiln_err *err) {
    storage *s = a->st;
    hseries *hs;
    int rc = histogram_validate(h, err);
    if (rc == 0)
        rc = target_series(a, ref, ls, n, t, &hs, err);
    if (rc)
        return rc;
    rc = head_append_histogram_check(s->h, hs, t, h, err);
    /* within the batch: against the series' histogram staged just before, the common case */
    const hstaged *prev = a->nh ? &a->hv[a->nh - 1] : NULL;
    if (rc >= 0 && prev && prev->s == hs && t <= prev->t)
        rc = staged_order(t, prev->t, histogram_equal(h, prev->h), err);
    if (rc == HEAD_APPEND_SAME)
        return 0;
    if (rc < 0)
        return count_rejected(s, rc);
    histogram *c = histogram_copy(&a->hmem, h);
    if (!c || array_grow((void **)&a->hv, &a->caph, a->nh + 1, sizeof *a->hv) != 0)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    a->hv[a->nh++] = (hstaged){hs, t, c};
    return 0;
}

int appender_append_exemplar(appender *a, uint64_t ref, const exemplar *e, kiln_err *err) {
    if (!a->st->exemplars)
        return 0;
    hseries *hs = ref ? head_series(a->st->h, ref) : NULL;
    if (!hs)
        return kiln_err_set(err, KILN_EINVAL, "unknown series reference %llu", (unsigned long long)ref);
    return storage__exbatch_add(&a->ex, a->st->exemplars, hs, e, err);
}

void appender_trust_labels(appender *a) {
    a->trusted = 1;
}

static void appender_free(appender *a) {
    lockrank_rwunlock(&a->st->gc, LOCK_RANK_GC, 1);
    free(a->runs);
    free(a->v);
    free(a->created);
    free(a->hv);
    free(a->ov);
    arena_free(&a->hmem);
    storage__exbatch_free(&a->ex);
    free(a);
}

/* Encodes the series records of the new series into out. */
KILN_MUST_CHECK static int encode_series(appender *a, buf *out) {
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

void storage__fail_wal_writes(storage *s, int n) {
    __atomic_store_n(&s->fail_wal_writes, n, __ATOMIC_RELAXED);
}

/* The appenders' one way into the WAL, where the test hook fails writes. */
KILN_MUST_CHECK static int wal_write(storage *s, const wal_rec *recs, size_t n, kiln_err *err) {
    int fail = __atomic_load_n(&s->fail_wal_writes, __ATOMIC_RELAXED);
    while (fail > 0 && !__atomic_compare_exchange_n(&s->fail_wal_writes, &fail, fail - 1, 0, __ATOMIC_RELAXED,
                                                    __ATOMIC_RELAXED)) {
    }
    if (fail > 0)
        return kiln_err_set(err, KILN_EIO, "WAL write failed (test hook)");
    return wal_log_batch(s->w, recs, n, err);
}

/* Logs the records of the created series and, with_samples, the staged
 * samples, in one write. */
KILN_MUST_CHECK static int log_batch(appender *a, int with_samples, kiln_err *err) {
    buf sb = BUF_INIT, pb = BUF_INIT, eb = BUF_INIT, hb[4] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
    wal_rec recs[7];
    size_t nrec = 0;
    int rc = 0;
    walrec_sample *ws = NULL;
    walrec_histogram *wh = NULL;
    if (a->ncreated) {
        if ((rc = encode_series(a, &sb)) != 0)
            goto nomem;
        recs[nrec++] = (wal_rec){sb.data, sb.len};
    }
    if (with_samples && a->n + a->no) {
        if (!(ws = malloc((a->n + a->no) * sizeof *ws)))
            goto nomem;
        for (size_t i = 0; i < a->n; i++)
            ws[i] = (walrec_sample){hseries_ref(a->v[i].s), a->v[i].t, a->v[i].v};
        for (size_t i = 0; i < a->no; i++) /* the WAL has them too, as Prometheus' */
            ws[a->n + i] = (walrec_sample){hseries_ref(a->ov[i].s), a->ov[i].t, a->ov[i].v};
        if ((rc = walrec_encode_samples(&pb, ws, a->n + a->no)) != 0)
            goto nomem;
        recs[nrec++] = (wal_rec){pb.data, pb.len};
    }
    /* histograms after the floats, a record a kind (as Prometheus' commit) */
    if (with_samples && a->nh) {
        if (!(wh = malloc(a->nh * sizeof *wh)))
            goto nomem;
        for (int type = WALREC_HISTOGRAM_SAMPLES; type <= WALREC_CUSTOM_BUCKETS_FLOAT_HISTOGRAM_SAMPLES;
             type++) {
            size_t k = 0;
            for (size_t i = 0; i < a->nh; i++)
                if (walrec_histogram_type(a->hv[i].h) == type)
                    wh[k++] = (walrec_histogram){hseries_ref(a->hv[i].s), a->hv[i].t, *a->hv[i].h};
            buf *b = &hb[type - WALREC_HISTOGRAM_SAMPLES];
            if (k && walrec_encode_histograms(b, wh, k, type) != 0)
                goto nomem;
            if (k)
                recs[nrec++] = (wal_rec){b->data, b->len};
        }
    }
    /* exemplars last, as Prometheus' headAppender.log */
    if (with_samples && a->ex.n) {
        if (storage__exbatch_encode(&a->ex, &eb) != 0)
            goto nomem;
        recs[nrec++] = (wal_rec){eb.data, eb.len};
    }
    if (nrec)
        rc = wal_write(a->st, recs, nrec, err);
    goto out;
nomem:
    rc = kiln_err_set(err, KILN_ENOMEM, "out of memory encoding the WAL records");
out:
    free(ws);
    free(wh);
    buf_free(&sb);
    buf_free(&pb);
    buf_free(&eb);
    for (int i = 0; i < 4; i++)
        buf_free(&hb[i]);
    return rc;
}

/* Moves the series failed commits left unlogged into a's created list, so
 * that its write carries their records before its samples.  A reference
 * that resolves to nothing is a series truncation removed since: it needs
 * no record.  0 or KILN_ENOMEM (what was not moved stays listed). */
KILN_MUST_CHECK static int take_unlogged(appender *a) {
    storage *s = a->st;
    int rc = 0;
    size_t i = 0;
    lockrank_mutex_lock(&s->unlogged_mu, LOCK_RANK_UNLOGGED);
    for (; i < s->nunlogged; i++) {
        hseries *hs = head_series(s->h, s->unlogged[i]);
        if (!hs)
            continue;
        if (array_grow((void **)&a->created, &a->capcreated, a->ncreated + 1, sizeof *a->created) != 0) {
            rc = KILN_ENOMEM;
            break;
        }
        a->created[a->ncreated++] = hs;
    }
    memmove(s->unlogged, s->unlogged + i, (s->nunlogged - i) * sizeof *s->unlogged);
    __atomic_store_n(&s->nunlogged, s->nunlogged - i, __ATOMIC_RELAXED);
    lockrank_mutex_unlock(&s->unlogged_mu, LOCK_RANK_UNLOGGED);
    return rc;
}

/*
 * The end of a batch that was not acknowledged (a failed commit, or a
 * rollback): the series it created exist in the head, and a later batch
 * may append to them, so their records are logged all the same; when that
 * write fails too, the next commit logs them.
 */
static void log_created(appender *a) {
    storage *s = a->st;
    kiln_err e = {0};
    if (a->ncreated == 0 || log_batch(a, 0, &e) == 0)
        return;
    LOG_WARN("Logging the series of a failed batch failed; the next commit logs them", "series=%zu err=%s",
             a->ncreated, e.msg);
    lockrank_mutex_lock(&s->unlogged_mu, LOCK_RANK_UNLOGGED);
    size_t n = s->nunlogged;
    if (array_grow((void **)&s->unlogged, &s->capunlogged, n + a->ncreated, sizeof *s->unlogged) == 0) {
        for (size_t i = 0; i < a->ncreated; i++)
            s->unlogged[n++] = hseries_ref(a->created[i]);
        __atomic_store_n(&s->nunlogged, n, __ATOMIC_RELAXED);
    } else {
        LOG_ERROR(
            "Out of memory keeping unlogged series: samples appended to them later are lost at a restart",
            "series=%zu", a->ncreated);
    }
    lockrank_mutex_unlock(&s->unlogged_mu, LOCK_RANK_UNLOGGED);
}

/* Counts the result r of appending a staged sample at t to the head:
 * added, widening [lo, hi], or rejected; KILN_ENOMEM stops the commit. */
static inline int tally(storage *s, int r, int64_t t, uint64_t *added, int64_t *lo, int64_t *hi,
                        kiln_err *err) {
    if (r == HEAD_APPEND_OK) {
        (*added)++;
        *lo = t < *lo ? t : *lo;
        *hi = t > *hi ? t : *hi;
    } else if (r == KILN_ENOMEM) {
        return kiln_err_set(err, r, "out of memory appending to the head");
    } else if (r < 0) {
        (void)count_rejected(s, r);
    }
    return 0;
}

int appender_commit(appender *a, kiln_err *err) {
    storage *s = a->st;
    int rc = 0;
    if (__atomic_load_n(&s->nunlogged, __ATOMIC_RELAXED) && take_unlogged(a) != 0)
        rc = kiln_err_set(err, KILN_ENOMEM, "out of memory");
    if (rc == 0)
        rc = log_batch(a, 1, err);
    if (rc) {
        __atomic_add_fetch(&s->commits_failed, 1, __ATOMIC_RELAXED);
        log_created(a);
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
        if (r == KILN_EORDER && storage_ooo_window(s) > 0 && /* a commit of the series came first */
            array_grow((void **)&a->ov, &a->capo, a->no + 1, sizeof *a->ov) == 0) {
            a->ov[a->no++] = a->v[i];
            continue;
        }
        if ((rc = tally(s, r, t, &added, &lo, &hi, err)) != 0)
            break;
    }
    int64_t changed = INT64_MAX; /* the oldest sample made visible: lo, or an out-of-order one */
    if (rc == 0 && a->no) {
        for (size_t i = 0; i < a->no; i++)
            changed = a->ov[i].t < changed ? a->ov[i].t : changed;
        rc = storage__ooo_commit(s, a->ov, a->no, &added, err);
    }
    for (size_t i = 0; i < a->nh && rc == 0; i++) {
        int64_t t = a->hv[i].t;
        rc = tally(s, head_append_histogram(s->h, a->hv[i].s, t, a->hv[i].h), t, &added, &lo, &hi, err);
    }
    head_note_range(s->h, lo, hi);
    __atomic_add_fetch(&s->samples_appended, added, __ATOMIC_RELAXED);
    if (rc == 0 && a->ex.n)
        (void)storage__exbatch_commit(&a->ex, s->exemplars);
    appender_free(a);
    /* The results cache hears of samples at or below its watch (storage.h):
     * lo must cover every sample this commit made visible, out-of-order ones
     * too.  seq_cst: ordered after they became visible (storage_watch_raise). */
    changed = lo < changed ? lo : changed;
    if (added && changed <= __atomic_load_n(&s->watch_t, __ATOMIC_SEQ_CST))
        storage__changed(s, changed);
    return rc;
}

void appender_rollback(appender *a) {
    if (!a)
        return;
    log_created(a);
    appender_free(a);
}

/* ---- changes below the watch ----------------------------------------------- */

void storage_set_change_hook(storage *s, storage_change_fn fn, void *data) {
    s->change_data = data;
    __atomic_store_n(&s->change_fn, fn, __ATOMIC_RELEASE);
}

/* A query raises the watch before it opens its querier, a commit reads it
 * after its samples are visible: whichever comes second sees the other
 * (both seq_cst), so no sample a cached step lacks goes unreported. */
void storage_watch_raise(storage *s, int64_t t) {
    int64_t cur = __atomic_load_n(&s->watch_t, __ATOMIC_SEQ_CST);
    while (cur < t &&
           !__atomic_compare_exchange_n(&s->watch_t, &cur, t, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        ;
}

int storage_local_only(storage *s) {
    return !s->source.select || (s->source.active && !s->source.active(s->source.data));
}

void storage__changed(storage *s, int64_t mint) {
    storage_change_fn fn = __atomic_load_n(&s->change_fn, __ATOMIC_ACQUIRE);
    if (fn)
        fn(s->change_data, mint);
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
    lockrank_rdlock(&s->gc, LOCK_RANK_GC);
    for (size_t i = 0; i < s->nblocks; i++)
        v += bytes ? (double)block_size(s->blocks[i]) : 1;
    lockrank_rwunlock(&s->gc, LOCK_RANK_GC, 1);
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
    return storage__ooo_register_metrics(s);
}
