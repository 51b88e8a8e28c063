/*
 * checkpoint.c - WAL checkpoints (wal_checkpoint): what closed segments
 * still hold that matters, written into wal/checkpoint.N so the segments can
 * be deleted, as Prometheus' wlog.Checkpoint does.
 *
 * Called by the storage's head truncation (after a block is written: series
 * still in the head, samples at or after the new head start), then followed
 * by wal_truncate_before.  It reads the newest checkpoint and the segments
 * with a wal_reader, filters each record by type (walrec.h), and writes the
 * kept ones with a wal writer of its own into checkpoint.N.tmp, renamed into
 * place once fsynced.
 *
 * Threading: the calling thread only (a background worker: it blocks on disk
 * I/O).  It touches closed segments only, so the WAL's writer may append to
 * a later segment meanwhile.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/wal_int.h"
#include "storage/walrec.h"

typedef struct cp_state {
    wal_keep_fn keep;
    void *data;
    int64_t mint;
    wal_checkpoint_stats st;
    arena a;            /* series and exemplars decoded (freed after each record) */
    buf out;            /* the filtered record */
    void *scratch;      /* samples or tombstones decoded */
    size_t scratch_cap; /* bytes */
} cp_state;

/* Room for n entries of `size` bytes in cs->scratch, or NULL. */
static void *scratch(cp_state *cs, size_t n, size_t size) {
    return array_grow(&cs->scratch, &cs->scratch_cap, n * size, 1) ? NULL : cs->scratch;
}

/* Adds a record's n entries, k of them kept, to a pair of counters. */
static void tally(uint64_t *kept, uint64_t *dropped, size_t n, size_t k) {
    *kept += k;
    *dropped += n - k;
}

/* Filters one record into cs->out (left empty when nothing is kept). */
KILN_MUST_CHECK static int cp_filter(cp_state *cs, const uint8_t *rec, size_t len, kiln_err *err) {
    buf_reset(&cs->out);
    int type = walrec_type(rec, len);
    size_t n = 0, k = 0, max;
    int rc = 0;
    switch (type) {
    case WALREC_SERIES: {
        walrec_series *s;
        if ((rc = walrec_decode_series(rec, len, &cs->a, &s, &n, err)))
            return rc;
        for (size_t i = 0; i < n; i++)
            if (cs->keep(s[i].ref, cs->data))
                s[k++] = s[i];
        tally(&cs->st.series_kept, &cs->st.series_dropped, n, k);
        rc = k ? walrec_encode_series(&cs->out, s, k) : 0;
        break;
    }
    case WALREC_SAMPLES: {
        walrec_sample *v = scratch(cs, max = walrec_samples_max(len), sizeof *v);
        if (!v)
            return kiln_err_set(err, KILN_ENOMEM, "wal: checkpoint: out of memory");
        if ((rc = walrec_decode_samples(rec, len, v, max, &n, err)))
            return rc;
        for (size_t i = 0; i < n; i++)
            if (v[i].t >= cs->mint)
                v[k++] = v[i];
        tally(&cs->st.samples_kept, &cs->st.samples_dropped, n, k);
        rc = k ? walrec_encode_samples(&cs->out, v, k) : 0;
        break;
    }
    case WALREC_TOMBSTONES: {
        walrec_tombstone *v = scratch(cs, max = walrec_tombstones_max(len), sizeof *v);
        if (!v)
            return kiln_err_set(err, KILN_ENOMEM, "wal: checkpoint: out of memory");
        if ((rc = walrec_decode_tombstones(rec, len, v, max, &n, err)))
            return rc;
        /* a deletion matters while its series lives and it reaches mint */
        for (size_t i = 0; i < n; i++)
            if (v[i].maxt >= cs->mint && cs->keep(v[i].ref, cs->data))
                v[k++] = v[i];
        tally(&cs->st.tombstones_kept, &cs->st.tombstones_dropped, n, k);
        rc = k ? walrec_encode_tombstones(&cs->out, v, k) : 0;
        break;
    }
    case WALREC_EXEMPLARS: {
        walrec_exemplar *e;
        if ((rc = walrec_decode_exemplars(rec, len, &cs->a, &e, &n, err)))
            return rc;
        /* those of live series at or after mint, as Prometheus keeps them */
        for (size_t i = 0; i < n; i++)
            if (e[i].t >= cs->mint && cs->keep(e[i].ref, cs->data))
                e[k++] = e[i];
        tally(&cs->st.exemplars_kept, &cs->st.exemplars_dropped, n, k);
        rc = k ? walrec_encode_exemplars(&cs->out, e, k) : 0;
        break;
    }
    case WALREC_METADATA:
    case WALREC_HISTOGRAM_SAMPLES:
    case WALREC_FLOAT_HISTOGRAM_SAMPLES:
    case WALREC_CUSTOM_BUCKETS_HISTOGRAM_SAMPLES:
    case WALREC_CUSTOM_BUCKETS_FLOAT_HISTOGRAM_SAMPLES:
        /* filtered without decoding into structs; the counts go to other_* */
        if (type == WALREC_METADATA)
            return walrec_filter_metadata(rec, len, cs->keep, cs->data, &cs->out, &cs->st.other_kept,
                                          &cs->st.other_dropped, err);
        return walrec_filter_histograms(rec, len, cs->mint, &cs->out, &cs->st.other_kept,
                                        &cs->st.other_dropped, err);
    default:
        cs->st.other_dropped++;
        return 0;
    }
    if (rc)
        return kiln_err_set(err, KILN_ENOMEM, "wal: checkpoint: out of memory");
    return 0;
}

/* Deletes the checkpoints of dir older than index `keep` (now redundant);
 * a failure is only logged: the next checkpoint tries again. */
static void remove_old_checkpoints(const char *dir, int keep) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int idx;
        if (!wal__parse_checkpoint_name(e->d_name, &idx) || idx >= keep)
            continue;
        char p[PATH_MAX];
        kiln_err e2 = {0};
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (fileio_rm_rf(p, &e2))
            LOG_WARN("wal: checkpoint: cannot delete an old checkpoint", "dir=%s err=%s", p, e2.msg);
    }
    closedir(d);
}

int wal_checkpoint(const char *dir, int from_seg, int to_seg, wal_keep_fn keep, void *data,
                   const wal_checkpoint_opts *opts, wal_checkpoint_stats *stats, kiln_err *err) {
    cp_state cs;
    memset(&cs, 0, sizeof cs);
    cs.keep = keep;
    cs.data = data;
    cs.mint = opts ? opts->mint : INT64_MIN;
    arena_init(&cs.a, 0);
    wal_reader *r = NULL;
    wal *w = NULL;
    char tmp[PATH_MAX], final[PATH_MAX], prev[PATH_MAX];
    int rc, prev_idx = -1;
    snprintf(final, sizeof final, "%s/checkpoint.%08d", dir, to_seg);
    snprintf(tmp, sizeof tmp, "%s/checkpoint.%08d.tmp", dir, to_seg);

    if (from_seg < 0 || to_seg < 0)
        return kiln_err_set(err, KILN_EINVAL, "wal: checkpoint: bad range %d..%d", from_seg, to_seg);
    if (wal_last_checkpoint(dir, &prev_idx, prev, sizeof prev, NULL) == 0) {
        if (from_seg > prev_idx + 1)
            return kiln_err_set(err, KILN_EINVAL,
                                "wal: checkpoint: gap between checkpoint.%08d and segment %d", prev_idx,
                                from_seg);
        if (prev_idx >= to_seg)
            return kiln_err_set(err, KILN_EEXIST,
                                "wal: checkpoint: checkpoint.%08d already covers segment %d", prev_idx,
                                to_seg);
        from_seg = prev_idx + 1;
    }
    if (from_seg > to_seg)
        return kiln_err_set(err, KILN_EINVAL, "wal: checkpoint: bad range %d..%d", from_seg, to_seg);
    if ((rc = wal__reader_open_at(dir, prev_idx >= 0 ? prev : NULL, prev_idx, from_seg, to_seg, from_seg, &r,
                                  err)))
        goto out;
    if ((rc = fileio_rm_rf(tmp, err))) {
        kiln_err_prefix(err, "wal: checkpoint: remove stale %s", tmp);
        goto out;
    }
    wal_opts wo = wal_opts_default();
    wo.compression = opts ? opts->compression : WAL_COMPRESS_SNAPPY;
    if ((rc = wal_open(tmp, &wo, &w, err)))
        goto out;
    for (;;) {
        const uint8_t *rec;
        size_t len;
        rc = wal_reader_next(r, &rec, &len, err);
        if (rc == 0)
            break;
        if (rc < 0) {
            kiln_err_prefix(err, "wal: checkpoint");
            goto out;
        }
        if ((rc = cp_filter(&cs, rec, len, err))) {
            int seg;
            int64_t off;
            wal_reader_position(r, &seg, &off);
            kiln_err_prefix(err, "wal: checkpoint: segment %08d", seg);
            goto out;
        }
        arena_free(&cs.a);
        if (cs.out.len && (rc = wal_log(w, cs.out.data, cs.out.len, err)))
            goto out;
    }
    rc = wal_close(w, err);
    w = NULL;
    if (rc)
        goto out;
    if (fault_rename(tmp, final) < 0) {
        rc = kiln_err_set(err, KILN_EIO, "wal: checkpoint: rename %s: %s", tmp, strerror(errno));
        goto out;
    }
    if ((rc = fileio_fsync_dir(dir, err))) {
        kiln_err_prefix(err, "wal: checkpoint");
        goto out;
    }
    remove_old_checkpoints(dir, to_seg);
    if (stats)
        *stats = cs.st;
out:
    if (rc) {
        /* the partial output goes; the caller gets the first error, these
         * are only logged (a leftover .tmp is removed by the next try) */
        kiln_err e2 = {0};
        if (wal_close(w, &e2))
            LOG_WARN("wal: checkpoint: closing the partial checkpoint failed", "err=%s", e2.msg);
        if (fileio_rm_rf(tmp, &e2))
            LOG_WARN("wal: checkpoint: cannot remove the partial checkpoint", "err=%s", e2.msg);
    }
    wal_reader_close(r);
    arena_free(&cs.a);
    buf_free(&cs.out);
    free(cs.scratch);
    return rc;
}
