/*
 * ooostore.c - out-of-order ingestion in the storage (see ooo.h for the
 * head's side, wbl.h for the log): the window, the commit of out-of-order
 * samples and their WBL records, the replay at open (chunks_head's
 * out-of-order chunks, then wbl/), the compaction of out-of-order data into
 * blocks, and the metrics.
 *
 * Durability, as Prometheus: a commit logs every sample to the WAL first
 * (where replay drops the out-of-order ones as out of order), then inserts
 * the out-of-order ones into the head and logs them, with the m-map
 * markers of the head chunks their inserts cut, to wbl/ before the commit
 * is acknowledged.  At compaction the WBL's segments are deleted once the
 * samples they hold are in blocks or in m-mapped chunks.
 *
 * Compaction: when the head was compacted into a block ending at B, and
 * before it is truncated there (chunks_head files holding out-of-order
 * chunks may go then), the out-of-order samples older than B go to blocks of their own, one
 * a block range (aligned as the head's), which overlap the in-order blocks
 * and are merged with them by compact.c's planner (overlapping blocks
 * first); the head keeps those at or after B.
 *
 * Called by storage.c (open, close, commit, metrics) and compact.c.
 * Threading: commits on any thread; compaction under compact_mu; the window
 * is an atomic, the WBL writer is opened once under compact_mu.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/ooo.h"
#include "storage/storage_int.h"
#include "storage/wbl.h"
#include "storage/xorchunk.h"

/* ---- open and close ------------------------------------------------------ */

typedef struct replay_ctx {
    storage *s;
    int64_t minv;
    uint64_t attached, samples, dropped;
} replay_ctx;

static int attach_chunk(uint64_t sref, int64_t mint, int64_t maxt, uint64_t cref, uint8_t enc, void *data) {
    replay_ctx *c = data;
    (void)mint;
    if (!(enc & OOO_ENC_BIT) || maxt < c->minv)
        return 0;
    hseries *hs = head_series(c->s->h, sref);
    if (!hs)
        return 0;
    c->attached++;
    return ooo_attach(c->s->ooo, hs, mint, maxt, cref);
}

static int replay_samples(void *ctx, const walrec_sample *v, size_t n) {
    replay_ctx *c = ctx;
    for (size_t i = 0; i < n; i++) {
        hseries *hs = head_series(c->s->h, v[i].ref);
        uint64_t marker;
        if (!hs || v[i].t < c->minv) {
            c->dropped++;
            continue;
        }
        int rc = ooo_insert(c->s->ooo, hs, v[i].t, v[i].v, &marker);
        if (rc < 0)
            return rc;
        c->samples += rc == 0;
    }
    return 0;
}

static int replay_markers(void *ctx, const wbl_marker *m, size_t n) {
    replay_ctx *c = ctx;
    for (size_t i = 0; i < n; i++) {
        hseries *hs = head_series(c->s->h, m[i].ref);
        if (hs)
            ooo_replay_marker(c->s->ooo, hs, m[i].cref);
    }
    return 0;
}

/* Opens the WBL writer (continuing in a new segment); compact_mu held or s owned. */
KILN_MUST_CHECK static int open_writer(storage *s, kiln_err *err) {
    if (s->wbl)
        return 0;
    wal_opts wo = wal_opts_default();
    wo.compression = s->o.wal_compression;
    wal *w;
    int rc = wal_open(s->wbldir, &wo, &w, err);
    if (rc == 0)
        __atomic_store_n(&s->wbl, w, __ATOMIC_RELEASE);
    return rc;
}

int storage__ooo_open(storage *s, kiln_err *err) {
    int rc;
    if ((size_t)snprintf(s->wbldir, sizeof s->wbldir, "%s/wbl", s->dir) >= sizeof s->wbldir)
        return kiln_err_set(err, KILN_EINVAL, "storage: data directory path too long");
    if ((rc = ooo_new(s->h, s->hc, &s->ooo)) != 0)
        return kiln_err_set(err, rc, "storage: out of memory");
    ooo_set_window(s->ooo, s->o.ooo_window_ms);
    replay_ctx c = {s, head_min_valid(s->h), 0, 0, 0};
    if (s->replay_ooo_chunks && (rc = headchunks_iterate(s->hc, attach_chunk, &c, err)) != 0)
        return rc;
    double t0 = time_mono_sec();
    wbl_visitor v = {replay_samples, replay_markers, &c};
    wbl_read_stats st;
    if ((rc = wbl_read(s->wbldir, &v, 1, &st, err)) != 0)
        return rc;
    struct stat sb;
    if (st.records || c.attached)
        LOG_INFO("WBL replay completed",
                 "records=%llu chunks_from_disk=%llu samples=%llu dropped=%llu duration=%.3fs",
                 (unsigned long long)st.records, (unsigned long long)c.attached,
                 (unsigned long long)c.samples, (unsigned long long)c.dropped, time_mono_sec() - t0);
    s->wbl_corruptions = st.corrupt + st.undecodable;
    /* as Prometheus: the log is written when the window is on, or was */
    if (s->o.ooo_window_ms > 0 || stat(s->wbldir, &sb) == 0)
        rc = open_writer(s, err);
    return rc;
}

int storage__ooo_close(storage *s, kiln_err *err) {
    int rc = wal_close(s->wbl, err);
    s->wbl = NULL;
    ooo_free(s->ooo);
    s->ooo = NULL;
    return rc;
}

int storage_set_ooo_window(storage *s, int64_t ms, kiln_err *err) {
    int rc = 0;
    if (ms > 0 && !__atomic_load_n(&s->wbl, __ATOMIC_ACQUIRE)) {
        lockrank_mutex_lock(&s->compact_mu, LOCK_RANK_COMPACT);
        rc = open_writer(s, err);
        lockrank_mutex_unlock(&s->compact_mu, LOCK_RANK_COMPACT);
    }
    if (rc == 0)
        ooo_set_window(s->ooo, ms);
    return rc;
}

int64_t storage_ooo_window(storage *s) {
    return ooo_window(s->ooo);
}

/* ---- appending ------------------------------------------------------------- */

int storage__ooo_classify(storage *s, int64_t t, int64_t newest, kiln_err *err) {
    int64_t w = ooo_window(s->ooo), hmin, hmax;
    head_time_range(s->h, &hmin, &hmax);
    hmax = newest > hmax ? newest : hmax;
    if (w > 0 && hmax != INT64_MIN && t >= hmax - w)
        return STORAGE__OOO;
    __atomic_add_fetch(&s->rejected_too_old, 1, __ATOMIC_RELAXED);
    return kiln_err_set(err, KILN_ERANGE, "too old sample");
}

/* The WBL's records of a commit: samples, and the markers cut between them. */
typedef struct wblbatch {
    buf b[16];
    wal_rec recs[16];
    size_t nrec;
    walrec_sample *pend;
    size_t npend;
} wblbatch;

/* Closes the pending samples into a record; 0 or KILN_ENOMEM (or too many
 * records: the caller logs what it has and goes on). */
KILN_MUST_CHECK static int batch_flush(wblbatch *wb) {
    if (!wb->npend)
        return 0;
    buf *b = &wb->b[wb->nrec];
    int rc = walrec_encode_samples(b, wb->pend, wb->npend);
    if (rc)
        return rc;
    wb->recs[wb->nrec++] = (wal_rec){b->data, b->len};
    wb->npend = 0;
    return 0;
}

KILN_MUST_CHECK static int batch_write(storage *s, wblbatch *wb, kiln_err *err) {
    int rc = batch_flush(wb);
    if (rc == 0 && wb->nrec)
        rc = wal_log_batch(s->wbl, wb->recs, wb->nrec, err);
    else if (rc)
        kiln_err_set(err, rc, "out of memory encoding the WBL records");
    for (size_t i = 0; i < wb->nrec; i++)
        buf_reset(&wb->b[i]);
    wb->nrec = 0;
    return rc;
}

int storage__ooo_commit(storage *s, const staged *v, size_t n, uint64_t *added, kiln_err *err) {
    wblbatch wb = {0};
    int rc = 0;
    uint64_t ok = 0;
    if (!(wb.pend = malloc((n ? n : 1) * sizeof *wb.pend)))
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint64_t marker;
        int r = ooo_insert(s->ooo, v[i].s, v[i].t, v[i].v, &marker);
        if (r < 0) {
            rc = kiln_err_set(err, r, "out of memory inserting out-of-order samples");
            break;
        }
        if (marker) {
            /* the samples before the cut, then its marker (room for both, else write out) */
            if (wb.nrec + 3 > sizeof wb.b / sizeof *wb.b && (rc = batch_write(s, &wb, err)) != 0)
                break;
            if ((rc = batch_flush(&wb)) != 0) {
                rc = kiln_err_set(err, rc, "out of memory encoding the WBL records");
                break;
            }
            wbl_marker m = {hseries_ref(v[i].s), marker};
            buf *b = &wb.b[wb.nrec];
            wbl_encode_markers(b, &m, 1);
            if (buf_error(b)) {
                rc = kiln_err_set(err, KILN_ENOMEM, "out of memory encoding the WBL records");
                break;
            }
            wb.recs[wb.nrec++] = (wal_rec){b->data, b->len};
        }
        if (r == 0) {
            wb.pend[wb.npend++] = (walrec_sample){hseries_ref(v[i].s), v[i].t, v[i].v};
            ok++;
        }
    }
    int r2 = batch_write(s, &wb, err);
    rc = rc ? rc : r2;
    for (size_t i = 0; i < sizeof wb.b / sizeof *wb.b; i++)
        buf_free(&wb.b[i]);
    free(wb.pend);
    __atomic_add_fetch(&s->ooo_appended, ok, __ATOMIC_RELAXED);
    *added += ok;
    return rc;
}

/* ---- compaction ------------------------------------------------------------- */

/* Series by their labels (a block's order). */
static int cmp_series(const void *a, const void *b) {
    size_t na, nb;
    const label *la = hseries_labels(*(hseries *const *)a, &na),
                *lb = hseries_labels(*(hseries *const *)b, &nb);
    return labels_cmp(la, na, lb, nb);
}

/* Writes the out-of-order samples of v[0..n) within [mint, maxt) as a block
 * and publishes it. */
KILN_MUST_CHECK static int write_block(storage *s, hseries *const *v, size_t n, int64_t mint, int64_t maxt,
                                       kiln_err *err) {
    block_writer *w = NULL;
    arena a;
    arena_init(&a, 0);
    size_t written = 0;
    int rc = block_writer_new(s->dir, mint, maxt, &w, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sample *got;
        size_t k, nc, ndel;
        block_chunk *bc;
        size_t nls;
        const label *ls = hseries_labels(v[i], &nls);
        if ((rc = ooo_samples(s->ooo, v[i], mint, maxt - 1, &a, &got, &k)) != 0) {
            kiln_err_set(err, rc, "out-of-order compaction: reading the head's chunks failed");
            break;
        }
        const tstone *del = tombstones_of(&s->hts, hseries_ref(v[i]), &ndel);
        k = tombstones_filter(del, ndel, got, k);
        if (!k)
            continue;
        if ((rc = chunks_from_samples(got, k, &a, &bc, &nc)) != 0 ||
            (rc = block_writer_add(w, ls, nls, bc, nc, err)) != 0) {
            kiln_err_set(err, rc, "out-of-order compaction: out of memory");
            break;
        }
        written++;
        if (a.used_total > (64u << 20)) {
            arena_free(&a);
            arena_init(&a, 0);
        }
    }
    arena_free(&a);
    if (rc || !written) {
        block_writer_abort(w);
        return rc;
    }
    char ulid[BLOCK_ULID_LEN + 1];
    block *b;
    if ((rc = block_writer_commit(w, ulid, err)) != 0 || (rc = block_open(s->dir, ulid, &b, err)) != 0)
        return rc;
    lockrank_wrlock(&s->gc, LOCK_RANK_GC);
    rc = storage__add_block(s, b);
    lockrank_rwunlock(&s->gc, LOCK_RANK_GC, 0);
    if (rc) {
        block_close(b);
        return kiln_err_set(err, rc, "out-of-order compaction: out of memory");
    }
    LOG_INFO("Compacted out-of-order samples into a block", "block=%s mint=%lld maxt=%lld series=%zu", ulid,
             (long long)mint, (long long)maxt, written);
    return 0;
}

int storage__ooo_compact(storage *s, int64_t b, kiln_err *err) {
    int64_t omin, omax, r = s->o.block_range_ms;
    ooo_time_range(s->ooo, &omin, &omax);
    if (!s->wbl || omin > omax || omin >= b || r <= 0)
        return 0;
    double t0 = time_mono_sec();
    int seg = wal_next_segment(s->wbl, err);
    if (seg < 0)
        return seg;
    int rc = ooo_mmap_all(s->ooo);
    if (rc)
        return kiln_err_set(err, rc, "out-of-order compaction: writing the head chunks failed");
    hseries **v = NULL;
    size_t n = 0;
    lockrank_rdlock(&s->gc, LOCK_RANK_GC);
    if ((rc = ooo_series_list(s->ooo, &v, &n)) == 0)
        qsort(v, n, sizeof *v, cmp_series);
    lockrank_rwunlock(&s->gc, LOCK_RANK_GC, 1);
    if (rc)
        return kiln_err_set(err, rc, "out-of-order compaction: out of memory");
    /* the series stay (head truncation keeps series with out-of-order data)
     * and so do the head's tombstones: both change under compact_mu, which
     * the caller holds; publishing a block takes the gc write lock */
    int64_t lo = omin >= 0 ? omin / r * r : -((-omin + r - 1) / r) * r;
    for (; rc == 0 && lo < b; lo += r) {
        int64_t hi = lo + r < b ? lo + r : b;
        rc = write_block(s, v, n, lo, hi, err);
    }
    free(v);
    if (rc)
        return rc;
    if ((rc = ooo_drop_before(s->ooo, b)) != 0)
        return kiln_err_set(err, rc, "out-of-order compaction: rewriting the head chunks failed");
    if ((rc = wal_truncate_before(s->wbl, seg, err)) != 0)
        return rc;
    LOG_INFO("Out-of-order compaction done", "before=%lld wbl_segment=%d duration=%.3fs", (long long)b, seg,
             time_mono_sec() - t0);
    return 0;
}

/* ---- metrics ----------------------------------------------------------------- */

#define LOADU(field) ((double)__atomic_load_n(&((storage *)d)->field, __ATOMIC_RELAXED))

static double m_appended(void *d) {
    return LOADU(ooo_appended);
}
static double m_too_old(void *d) {
    return LOADU(rejected_too_old);
}
static double m_window(void *d) {
    return (double)ooo_window(((storage *)d)->ooo) / 1000;
}
static double m_mmapped(void *d) {
    ooo_counts c;
    ooo_get_counts(((storage *)d)->ooo, &c);
    return (double)c.mmapped;
}
static double m_series(void *d) {
    ooo_counts c;
    ooo_get_counts(((storage *)d)->ooo, &c);
    return (double)c.series;
}
static wal_stats wstats(void *d) {
    wal_stats ws = {0};
    wal *w = __atomic_load_n(&((storage *)d)->wbl, __ATOMIC_ACQUIRE);
    if (w)
        wal_get_stats(w, &ws);
    return ws;
}
static double m_wrecords(void *d) {
    return (double)wstats(d).records_written;
}
static double m_wbytes(void *d) {
    return (double)wstats(d).bytes_written;
}
static double m_wfail(void *d) {
    return (double)wstats(d).writes_failed;
}
static double m_segment(void *d) {
    return (double)wstats(d).segment_current;
}
static double m_corrupt(void *d) {
    return (double)((storage *)d)->wbl_corruptions;
}

int storage__ooo_register_metrics(storage *s) {
    static const struct {
        int type;
        const char *name, *help;
        double (*fn)(void *);
    } defs[] = {
        {METRIC_COUNTER, "kiln_tsdb_out_of_order_samples_appended_total",
         "Out-of-order samples appended to the head (within out_of_order_time_window).", m_appended},
        {METRIC_COUNTER, "kiln_tsdb_too_old_samples_total",
         "Samples rejected as older than the head's newest time less out_of_order_time_window.", m_too_old},
        {METRIC_GAUGE, "kiln_tsdb_out_of_order_time_window_seconds", "storage.tsdb.out_of_order_time_window.",
         m_window},
        {METRIC_GAUGE, "kiln_tsdb_head_out_of_order_series", "Series with out-of-order samples in the head.",
         m_series},
        {METRIC_GAUGE, "kiln_tsdb_head_out_of_order_mmapped_chunks",
         "Out-of-order chunks of the head written to chunks_head.", m_mmapped},
        {METRIC_COUNTER, "kiln_tsdb_out_of_order_wbl_records_written_total", "WBL records written.",
         m_wrecords},
        {METRIC_COUNTER, "kiln_tsdb_out_of_order_wbl_bytes_written_total", "Bytes written to the WBL.",
         m_wbytes},
        {METRIC_COUNTER, "kiln_tsdb_out_of_order_wbl_writes_failed_total", "WBL writes that failed.",
         m_wfail},
        {METRIC_GAUGE, "kiln_tsdb_out_of_order_wbl_segment_current", "The WBL segment being written.",
         m_segment},
        {METRIC_COUNTER, "kiln_tsdb_out_of_order_wbl_corruptions_total", "WBL corruptions found on replay.",
         m_corrupt},
    };
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        if (!metric_new_func(defs[i].type, defs[i].name, defs[i].help, defs[i].fn, s))
            return KILN_ENOMEM;
    return 0;
}
