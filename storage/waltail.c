/*
 * waltail.c - following kiln's WAL as it is written (storage_wal_tail_*,
 * declared in storage.h): remote write's watcher reads series and samples
 * records from here, the way Prometheus' remote-write watcher reads the TSDB's
 * WAL, so that what is sent is never held twice in memory and a restart
 * resumes from a WAL position.
 *
 * It wraps a tail-mode wal_reader (walreader.c) over the newest checkpoint
 * and the segments after it, decodes series, samples, histogram and
 * exemplar records (walrec.c)
 * and decides which samples the caller gets (see storage_wal_tail_open).
 * When the reader finds the WAL damaged (or a segment it was about to read
 * truncated away), the follower starts over from the newest checkpoint, as
 * one that fell behind: the samples there are returned again (at least once).
 *
 * Threading: a follower belongs to one thread (the remote-write sender's);
 * it reads files only, concurrently with the WAL's writer and truncation.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"
#include "storage/wal.h"
#include "storage/walrec.h"

struct storage_wal_tail {
    char dir[PATH_MAX];
    storage_wal_pos from; /* samples after it; segment -1: after the first catch-up */
    int caught_up;        /* the reader has reached the writer once */
    int restart;          /* reopen before the next read */
    wal_reader *r;
    arena mem; /* the last series record's arrays and strings */
    storage_wal_series *series;
    storage_wal_sample *samples;
    walrec_sample *raw;
    size_t cap_series, cap_samples, cap_raw;
    arena hmem; /* the last histogram record's entries and arrays */
    storage_wal_histogram *hist;
    size_t cap_hist;
    storage_wal_exemplar *ex; /* the last exemplar record's, their labels in hmem */
    size_t cap_ex;
};

/* Opens the reader over the newest checkpoint and the segments after it. */
KILN_MUST_CHECK static int tail_reopen(storage_wal_tail *t, kiln_err *err) {
    wal_reader_close(t->r);
    t->r = NULL;
    t->restart = 0;
    return wal_reader_open_tail(t->dir, -1, 0, &t->r, err);
}

int storage_wal_tail_open(const char *data_dir, storage_wal_pos from, storage_wal_tail **out, kiln_err *err) {
    *out = NULL;
    storage_wal_tail *t = calloc(1, sizeof *t);
    if (!t)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    snprintf(t->dir, sizeof t->dir, "%s/wal", data_dir);
    t->from = from;
    arena_init(&t->mem, 0);
    arena_init(&t->hmem, 0);
    int rc = tail_reopen(t, err);
    if (rc) {
        storage_wal_tail_close(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* Whether the samples of the record just read (at pos, in checkpoint cp or
 * not) go to the caller. */
static int tail_wants(const storage_wal_tail *t, int in_cp, int cp, storage_wal_pos pos) {
    if (t->from.segment < 0)
        return t->caught_up;
    if (in_cp) /* behind a truncation: what the checkpoint kept of the segments lost */
        return t->from.segment <= cp;
    return pos.segment > t->from.segment || (pos.segment == t->from.segment && pos.offset > t->from.offset);
}

/* A record's labels as NUL-terminated ones in a, or NULL when out of memory. */
static label *labels_of(arena *a, const walrec_label *wl, size_t n) {
    label *ls = arena_alloc_nz(a, (n ? n : 1) * sizeof *ls);
    for (size_t j = 0; ls && j < n; j++) {
        ls[j].name = arena_strndup(a, wl[j].name, wl[j].name_len);
        ls[j].value = arena_strndup(a, wl[j].value, wl[j].value_len);
        if (!ls[j].name || !ls[j].value)
            return NULL;
    }
    return ls;
}

KILN_MUST_CHECK static int decode_series(storage_wal_tail *t, const uint8_t *rec, size_t len,
                                         storage_wal_record *out, kiln_err *err) {
    arena_free(&t->mem);
    arena_init(&t->mem, 0);
    walrec_series *ws;
    size_t n;
    int rc = walrec_decode_series(rec, len, &t->mem, &ws, &n, err);
    if (rc)
        return rc;
    if (array_grow((void **)&t->series, &t->cap_series, n, sizeof *t->series))
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        label *ls = labels_of(&t->mem, ws[i].labels, ws[i].nlabels);
        if (!ls)
            return kiln_err_set(err, KILN_ENOMEM, "out of memory");
        t->series[i] = (storage_wal_series){ws[i].ref, ls, ws[i].nlabels};
    }
    out->series = t->series;
    out->nseries = n;
    return 0;
}

KILN_MUST_CHECK static int decode_samples(storage_wal_tail *t, const uint8_t *rec, size_t len,
                                          storage_wal_record *out, kiln_err *err) {
    size_t max = walrec_samples_max(len), n;
    if (array_grow((void **)&t->raw, &t->cap_raw, max, sizeof *t->raw) ||
        array_grow((void **)&t->samples, &t->cap_samples, max, sizeof *t->samples))
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    int rc = walrec_decode_samples(rec, len, t->raw, t->cap_raw, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        t->samples[i] = (storage_wal_sample){t->raw[i].ref, t->raw[i].t, t->raw[i].v};
    out->samples = t->samples;
    out->nsamples = n;
    return 0;
}

KILN_MUST_CHECK static int decode_histograms(storage_wal_tail *t, const uint8_t *rec, size_t len,
                                             storage_wal_record *out, kiln_err *err) {
    arena_free(&t->hmem);
    arena_init(&t->hmem, 0);
    walrec_histogram *wh;
    size_t n;
    int rc = walrec_decode_histograms(rec, len, &t->hmem, &wh, &n, err);
    if (rc)
        return rc;
    if (array_grow((void **)&t->hist, &t->cap_hist, n, sizeof *t->hist))
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        t->hist[i] = (storage_wal_histogram){wh[i].ref, wh[i].t, &wh[i].h};
    out->histograms = t->hist;
    out->nhistograms = n;
    return 0;
}

KILN_MUST_CHECK static int decode_exemplars(storage_wal_tail *t, const uint8_t *rec, size_t len,
                                            storage_wal_record *out, kiln_err *err) {
    arena_free(&t->hmem);
    arena_init(&t->hmem, 0);
    walrec_exemplar *we;
    size_t n;
    int rc = walrec_decode_exemplars(rec, len, &t->hmem, &we, &n, err);
    if (rc)
        return rc;
    if (array_grow((void **)&t->ex, &t->cap_ex, n, sizeof *t->ex))
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        label *ls = labels_of(&t->hmem, we[i].labels, we[i].nlabels);
        if (!ls)
            return kiln_err_set(err, KILN_ENOMEM, "out of memory");
        t->ex[i] = (storage_wal_exemplar){we[i].ref, we[i].t, we[i].v, ls, we[i].nlabels};
    }
    out->exemplars = t->ex;
    out->nexemplars = n;
    return 0;
}

int storage_wal_tail_next(storage_wal_tail *t, storage_wal_record *out, kiln_err *err) {
    memset(out, 0, sizeof *out);
    int rc;
    if ((t->restart || !t->r) && (rc = tail_reopen(t, err)))
        return rc;
    for (;;) {
        const uint8_t *rec;
        size_t len;
        rc = wal_reader_next(t->r, &rec, &len, err);
        if (rc == 0) {
            t->caught_up = 1;
            return 0;
        }
        if (rc < 0) {
            /* start over from the checkpoint, as a follower behind the truncation */
            if (rc == KILN_ECORRUPT) {
                storage_wal_pos p = storage_wal_tail_pos(t);
                if (t->from.segment >= 0 || t->caught_up)
                    t->from = p.segment >= 0 ? p : (storage_wal_pos){0, 0};
            }
            t->restart = 1;
            return rc;
        }
        int cp, in_cp = wal_reader_in_checkpoint(t->r, &cp);
        storage_wal_pos pos = storage_wal_tail_pos(t);
        out->pos = pos;
        switch (walrec_type(rec, len)) {
        case WALREC_SERIES:
            if ((rc = decode_series(t, rec, len, out, err)) == 0)
                return 1;
            break;
        case WALREC_SAMPLES:
            if (!tail_wants(t, in_cp, cp, pos))
                continue;
            if ((rc = decode_samples(t, rec, len, out, err)) == 0)
                return 1;
            break;
        case WALREC_HISTOGRAM_SAMPLES:
        case WALREC_FLOAT_HISTOGRAM_SAMPLES:
        case WALREC_CUSTOM_BUCKETS_HISTOGRAM_SAMPLES:
        case WALREC_CUSTOM_BUCKETS_FLOAT_HISTOGRAM_SAMPLES:
            if (!tail_wants(t, in_cp, cp, pos))
                continue;
            if ((rc = decode_histograms(t, rec, len, out, err)) == 0)
                return 1;
            break;
        case WALREC_EXEMPLARS:
            if (!tail_wants(t, in_cp, cp, pos))
                continue;
            if ((rc = decode_exemplars(t, rec, len, out, err)) == 0)
                return 1;
            break;
        default: /* tombstones, metadata...: not sent */
            continue;
        }
        if (rc == KILN_ECORRUPT)
            t->restart = 1;
        return rc;
    }
}

storage_wal_pos storage_wal_tail_pos(const storage_wal_tail *t) {
    int seg, cp;
    int64_t off;
    if (!t->r || wal_reader_in_checkpoint(t->r, &cp))
        return (storage_wal_pos){-1, 0};
    wal_reader_position(t->r, &seg, &off);
    return (storage_wal_pos){seg, off};
}

void storage_wal_tail_close(storage_wal_tail *t) {
    if (!t)
        return;
    wal_reader_close(t->r);
    arena_free(&t->mem);
    free(t->series);
    free(t->samples);
    free(t->raw);
    arena_free(&t->hmem);
    free(t->hist);
    free(t->ex);
    free(t);
}
