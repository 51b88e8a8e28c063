/*
 * compact.c - what keeps the storage's size in bounds and its data where it
 * belongs: head truncation (with the WAL checkpoint), compaction of the
 * head into blocks, merging blocks (leveled and vertical compaction, as
 * Prometheus plans them), retention by time and size, deletion
 * (tombstones, and rewriting blocks without deleted data), and snapshots.
 *
 * Called by cmd/ (storage_compact from a worker thread, periodically) and
 * api/ (the admin endpoints: delete_series, clean_tombstones, snapshot)
 * through storage.h; storage_truncate also by tests.
 *
 * Invariants:
 *   - compact_mu is held by every pass that changes the block list
 *     (compaction, merging, retention, rewriting, loading new blocks) and by
 *     deletion, so the list only changes under it, and always under the gc
 *     write lock too: a thread holding compact_mu reads the list unlocked;
 *   - a block is written in a temporary directory and renamed into place
 *     (block.c), then published (added to the list under gc), and only then
 *     are its sources closed and deleted; a crash between the two leaves
 *     both on disk, and the next start deletes the sources (storage.c);
 *   - the head is truncated only after its data is in a published block.
 *
 * Threading: any thread; these block on disk I/O, so never the loop thread.
 * Appends and queries go on meanwhile: they wait only for the gc write
 * lock's short holds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storage/histchunk.h"
#include "storage/storage_int.h"
#include "storage/walrec.h"
#include "storage/xorchunk.h"

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
    lockrank_wrlock(&s->gc, LOCK_RANK_GC);
    int rc = head_truncate(s->h, mint, &ts);
    tombstones_truncate(&s->hts, mint);
    kiln_err e2 = {0};
    int rc2 = headchunks_truncate(s->hc, mint, &e2);
    lockrank_rwunlock(&s->gc, LOCK_RANK_GC, 0);
    if (rc)
        return kiln_err_set(err, rc, "head truncation: out of memory");
    if (rc2)
        LOG_WARN("removing old chunks_head files failed", "err=%s", e2.msg);
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

static int acc_hist_chunk(void *ctx, int64_t mint, int64_t maxt, uint8_t enc, const uint8_t *data,
                          size_t len) {
    chunk_acc *c = ctx;
    if (array_grow((void **)&c->v, &c->cap, c->n + 1, sizeof *c->v) != 0)
        return KILN_ENOMEM;
    uint8_t *copy = arena_alloc_nz(c->a, len ? len : 1);
    if (!copy)
        return KILN_ENOMEM;
    memcpy(copy, data, len);
    c->v[c->n++] = (block_chunk){mint, maxt, copy, len, enc};
    return 0;
}

static int acc_chunk(void *ctx, int64_t mint, int64_t maxt, const uint8_t *data, size_t len) {
    return acc_hist_chunk(ctx, mint, maxt, 1, data, len);
}

static int cmp_bchunk(const void *a, const void *b);

/* Writes the head's chunks within [mint, maxt) as a block; *written 0 when
 * the range holds nothing. */
KILN_MUST_CHECK static int write_head_block(storage *s, const char *dir, int64_t mint, int64_t maxt,
                                            block **out, char *ulid_out, kiln_err *err) {
    refvec refs = {0};
    hs_ref *v = NULL;
    chunk_acc acc = {0};
    arena a;
    arena_init(&a, 0);
    block_writer *w = NULL;
    if (out)
        *out = NULL;
    lockrank_rdlock(&s->gc, LOCK_RANK_GC);
    int rc = head_postings(s->h, NULL, 0, NULL, &refs, err);
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
        size_t nfloat = 0;
        if ((rc = head_series_chunks(s->h, v[i].s, mint, maxt, acc_chunk, &acc)) != 0 ||
            (nfloat = acc.n, rc = head_series_hist_chunks(s->h, v[i].s, mint, maxt, acc_hist_chunk, &acc)) !=
                0) {
            kiln_err_set(err, rc, "compaction: reading the head's chunks failed");
            break;
        }
        if (nfloat && acc.n > nfloat) /* a series of floats and histograms: its chunks in time order */
            qsort(acc.v, acc.n, sizeof *acc.v, cmp_bchunk);
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
    lockrank_rwunlock(&s->gc, LOCK_RANK_GC, 1);
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
KILN_MUST_CHECK static int publish_block(storage *s, block *b, size_t first, size_t count, kiln_err *err) {
    lockrank_wrlock(&s->gc, LOCK_RANK_GC);
    if (count) {
        memmove(s->blocks + first, s->blocks + first + count,
                (s->nblocks - first - count) * sizeof *s->blocks);
        s->nblocks -= count;
    }
    int rc = b ? storage__add_block(s, b) : 0;
    lockrank_rwunlock(&s->gc, LOCK_RANK_GC, 0);
    if (rc) {
        block_close(b);
        kiln_err_set(err, rc, "compaction: out of memory");
    }
    return rc;
}

/* Keeps the last of each run of equal times in v[0..n) (sorted by time;
 * elements of sz bytes, each starting with its int64_t time); the count
 * kept. */
static size_t keep_last_by_time(void *v, size_t n, size_t sz) {
    char *p = v;
    size_t k = 0;
    int64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t t;
        memcpy(&t, p + i * sz, sizeof t);
        if (k > 0 && t == prev)
            k--; /* the same time again: the later one wins */
        memmove(p + k++ * sz, p + i * sz, sz);
        prev = t;
    }
    return k;
}

static int cmp_hsample_t(const void *a, const void *b) {
    const hsample *x = a, *y = b;
    return x->t < y->t ? -1 : x->t > y->t;
}

/* The histogram chunks of c[0..nc) decoded, merged by time (a time present
 * twice kept once) and encoded again into *out (arrays in a); floats left. */
KILN_MUST_CHECK static int reencode_hist(const block_chunk *c, size_t nc, size_t total, arena *a,
                                         block_chunk **out, size_t *nout) {
    hsample *v = malloc((total + 1) * sizeof *v);
    size_t n = 0;
    int rc = v ? 0 : KILN_ENOMEM;
    for (size_t i = 0; i < nc && rc == 0; i++)
        if (c[i].enc > 1)
            rc = histchunk_fill(c[i].data, c[i].len, c[i].enc == HISTCHUNK_ENC_FLOAT, INT64_MIN, INT64_MAX, a,
                                v, total, &n);
    if (rc == 0) {
        qsort(v, n, sizeof *v, cmp_hsample_t);
        rc = chunks_from_hist_samples(v, keep_last_by_time(v, n, sizeof *v), a, out, nout);
    }
    free(v);
    return rc;
}

/* Chunks that overlap in time (overlapping blocks): decoded, merged (a
 * time present twice kept once), encoded again 120 samples a chunk. */
KILN_MUST_CHECK static int add_reencoded(block_writer *w, const label *ls, size_t nls, const block_chunk *c,
                                         size_t nc, kiln_err *err) {
    size_t total = 0;
    for (size_t i = 0; i < nc; i++)
        total += c[i].len >= 2 ? (size_t)(c[i].data[0] << 8 | c[i].data[1]) : 0;
    sample *v = malloc((total + 1) * sizeof *v);
    if (!v)
        return kiln_err_set(err, KILN_ENOMEM, "compaction: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < nc; i++) {
        if (c[i].enc > 1)
            continue;
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
    size_t k = keep_last_by_time(v, n, sizeof *v);
    arena a;
    arena_init(&a, 0);
    block_chunk *bc, *hc = NULL, *all = NULL;
    size_t nchunks, nh = 0;
    int rc = chunks_from_samples(v, k, &a, &bc, &nchunks);
    if (rc == 0)
        rc = reencode_hist(c, nc, total, &a, &hc, &nh);
    if (rc == 0 && !(all = arena_alloc_nz(&a, (nchunks + nh + 1) * sizeof *all)))
        rc = KILN_ENOMEM;
    if (rc) {
        kiln_err_set(err, rc,
                     rc == KILN_ENOMEM ? "compaction: out of memory" : "compaction: a damaged chunk");
    } else {
        memcpy(all, bc, nchunks * sizeof *all);
        if (nh)
            memcpy(all + nchunks, hc, nh * sizeof *all);
        qsort(all, nchunks + nh, sizeof *all, cmp_bchunk);
        rc = block_writer_add(w, ls, nls, all, nchunks + nh, err);
    }
    arena_free(&a);
    free(v);
    return rc;
}

/* Writes one block holding everything of src[0..n) (their deleted samples
 * left out), a level above them, or at src[0]'s level with same_level (a
 * block rewritten alone).  *out is NULL when nothing is left. */
KILN_MUST_CHECK static int merge_blocks(storage *s, block **src, size_t n, int same_level, block **out,
                                        kiln_err *err) {
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
KILN_MUST_CHECK static int merge_planned(storage *s, kiln_err *err) {
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
            LOG_ERROR("Merging blocks failed", "blocks=%zu err=%s", count, err->msg);
            break;
        }
        /* on failure the merged block is on disk with its parents listed: the next start sorts it out */
        if ((rc = publish_block(s, b, first, count, err)) != 0)
            break;
        if (b)
            LOG_INFO("Merged blocks", "block=%s sources=%zu mint=%lld maxt=%lld level=%d duration=%.3fs",
                     block_get_meta(b)->ulid, count, (long long)block_get_meta(b)->mint,
                     (long long)block_get_meta(b)->maxt, block_get_meta(b)->level, time_mono_sec() - t0);
        for (size_t i = 0; i < count; i++)
            storage__delete_block(s, src[i], "Deleting a merged block failed"); /* the next start retries */
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
    lockrank_wrlock(&s->gc, LOCK_RANK_GC);
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
    lockrank_rwunlock(&s->gc, LOCK_RANK_GC, 0);
    if (ngone)
        storage__changed(s, INT64_MIN);
    for (size_t i = 0; i < ngone; i++) {
        char ulid[BLOCK_ULID_LEN + 1];
        snprintf(ulid, sizeof ulid, "%s", block_get_meta(gone[i])->ulid);
        if (storage__delete_block(s, gone[i], "Deleting a block past the retention failed") == 0)
            LOG_INFO("Deleted a block past the retention (time or size)", "block=%s", ulid);
        __atomic_add_fetch(&s->blocks_deleted, 1, __ATOMIC_RELAXED);
    }
}

/* The first sample time in the head (its recorded mint only grows with
 * truncation, so after a gap in the data it lies before the real one). */
static int64_t head_first_time(storage *s) {
    refvec refs = {0};
    int64_t t = INT64_MAX;
    lockrank_rdlock(&s->gc, LOCK_RANK_GC);
    if (head_postings(s->h, NULL, 0, NULL, &refs, NULL) == 0)
        for (size_t i = 0; i < refs.n; i++) {
            hseries *hs = head_series(s->h, refs.v[i]);
            int64_t x = INT64_MAX, last;
            if (hs)
                head_series_time_range(s->h, hs, &x, &last);
            if (x < t)
                t = x;
        }
    lockrank_rwunlock(&s->gc, LOCK_RANK_GC, 1);
    refvec_free(&refs);
    return t;
}

KILN_MUST_CHECK static int rewrite_deleted(storage *s, int all, kiln_err *err);

int storage_compact(storage *s, kiln_err *err) {
    int rc = 0;
    lockrank_mutex_lock(&s->compact_mu, LOCK_RANK_COMPACT);
    kiln_err e = {0};
    if (storage__load_blocks_from(s, 0, &e) != 0)
        LOG_WARN("Looking for new blocks failed", "err=%s", e.msg);
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
            LOG_ERROR("Compaction failed", "mint=%lld maxt=%lld err=%s", (long long)mint, (long long)maxt,
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
        /* as Prometheus, out-of-order data follows the head's compaction;
         * before the truncation, which may delete chunks_head files holding it */
        if ((rc = storage__ooo_compact(s, maxt, err)) != 0 || (rc = storage_truncate(s, maxt, err)) != 0)
            break;
        __atomic_add_fetch(&s->compaction_us, (uint64_t)((time_mono_sec() - t0) * 1e6), __ATOMIC_RELAXED);
    }
    if (rc == 0)
        rc = merge_planned(s, err);
    if (rc == 0)
        rc = rewrite_deleted(s, 0, err);
    apply_retention(s);
    lockrank_mutex_unlock(&s->compact_mu, LOCK_RANK_COMPACT);
    return rc;
}

/* ---- deletion ------------------------------------------------------------------ */

/* The head's part of a deletion: the matching series' stones, logged to
 * the WAL (synced) before they take effect. */
KILN_MUST_CHECK static int delete_in_head(storage *s, const matcher *ms, size_t nms, int64_t mint,
                                          int64_t maxt, kiln_err *err) {
    refvec refs = {0};
    walrec_tombstone *v = NULL;
    size_t n = 0, cap = 0;
    lockrank_rdlock(&s->gc, LOCK_RANK_GC);
    int rc = head_postings(s->h, ms, nms, NULL, &refs, err);
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
    lockrank_rwunlock(&s->gc, LOCK_RANK_GC, 1);
    buf rec = BUF_INIT;
    if (rc == 0 && n) {
        if (walrec_encode_tombstones(&rec, v, n) != 0)
            rc = kiln_err_set(err, KILN_ENOMEM, "deleting: out of memory");
        else if ((rc = wal_log(s->w, rec.data, rec.len, err)) == 0)
            rc = wal_sync(s->w, err);
    }
    if (rc == 0 && n) {
        tombstones next = {0};
        lockrank_wrlock(&s->gc, LOCK_RANK_GC);
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
        lockrank_rwunlock(&s->gc, LOCK_RANK_GC, 0);
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
    lockrank_mutex_lock(&s->compact_mu, LOCK_RANK_COMPACT);
    int rc = 0;
    /* the blocks (their list changes only under compact_mu, held here) */
    for (size_t i = 0; rc == 0 && i < s->nblocks; i++) {
        tombstones next;
        if ((rc = block_delete_series(s->blocks[i], ms, nms, mint, maxt, &next, err)) != 0)
            break;
        if (next.n) {
            lockrank_wrlock(&s->gc, LOCK_RANK_GC);
            block_set_tombstones(s->blocks[i], &next);
            lockrank_rwunlock(&s->gc, LOCK_RANK_GC, 0);
        }
    }
    if (rc == 0)
        rc = delete_in_head(s, ms, nms, mint, maxt, err);
    lockrank_mutex_unlock(&s->compact_mu, LOCK_RANK_COMPACT);
    storage__changed(s, mint); /* also after a failure: some may be deleted */
    if (rc == 0)
        LOG_INFO("Series deleted", "matchers=%zu mint=%lld maxt=%lld", nms, (long long)mint, (long long)maxt);
    return rc;
}

/* Rewrites the blocks with tombstones: all, or as Prometheus' planner does,
 * those spanning at least the middle one of the block ranges (2 h, 6 h, 18 h,
 * ... up to the largest) whose tombstones outnumber 5% of their series.
 * Caller holds compact_mu. */
KILN_MUST_CHECK static int rewrite_deleted(storage *s, int all, kiln_err *err) {
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
        storage__delete_block(s, old, "Deleting a rewritten block failed"); /* the next start retries */
        if (b)
            i++;
    }
    return rc;
}

int storage_clean_tombstones(storage *s, kiln_err *err) {
    lockrank_mutex_lock(&s->compact_mu, LOCK_RANK_COMPACT);
    int rc = rewrite_deleted(s, 1, err);
    lockrank_mutex_unlock(&s->compact_mu, LOCK_RANK_COMPACT);
    return rc;
}

/* ---- snapshots ------------------------------------------------------------------ */

KILN_MUST_CHECK static int link_file(const char *from_dir, const char *to_dir, const char *name,
                                     kiln_err *err) {
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
    int rc = fileio_mkdir_p(dst, err);
    if (rc) {
        kiln_err_prefix(err, "snapshot");
        return rc;
    }
    size_t nblocks;
    /* the blocks are immutable: hard links */
    lockrank_rdlock(&s->gc, LOCK_RANK_GC);
    for (size_t i = 0; i < s->nblocks && rc == 0; i++) {
        const char *ulid = block_get_meta(s->blocks[i])->ulid;
        char src[4400];
        snprintf(src, sizeof src, "%s/%s", s->dir, ulid);
        snprintf(sub, sizeof sub, "%s/%s/chunks", dst, ulid);
        if ((rc = fileio_mkdir_p(sub, err)) != 0) {
            kiln_err_prefix(err, "snapshot");
            break;
        }
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
    nblocks = s->nblocks;
    lockrank_rwunlock(&s->gc, LOCK_RANK_GC, 1);
    /* the head as one more block */
    int64_t hmin, hmax;
    head_time_range(s->h, &hmin, &hmax);
    if (rc == 0 && with_head && hmin <= hmax)
        rc = write_head_block(s, dst, hmin, hmax + 1, NULL, NULL, err);
    if (rc == 0)
        LOG_INFO("Snapshot created", "name=%s blocks=%zu head=%d", name, nblocks, with_head);
    return rc;
}
