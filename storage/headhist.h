/*
 * headhist.h - the head's native histogram samples (private to storage/):
 * per series, an open histogram or float-histogram chunk and the list of
 * its full ones in chunks_head, looked up by series reference.
 *
 * A series that never had a histogram has no entry (no memory).  A series
 * holds floats and histograms at different times: the head cuts the open
 * chunk of one kind when a sample of the other arrives, so the chunks of
 * both kinds never overlap in time, as Prometheus' single chunk list.
 *
 * Chunk cutting follows Prometheus 2.42's memSeries.appendHistogram: the
 * float chunks' rules (chunk range, end predicted at 30 samples, 240 at
 * most) and a cut when the histogram does not fit (histchunk_appendable);
 * a new chunk's flags say counter reset, not reset (it would have fitted),
 * unknown (nothing to compare with, a layout change), or gauge.
 *
 * Threading: every function but init/free is called under the series'
 * stripe lock (head.c); the page table grows with atomic stores.
 */
#ifndef KILN_STORAGE_HEADHIST_H
#define KILN_STORAGE_HEADHIST_H

#include <stdint.h>

#include "storage/headchunks.h"
#include "storage/storage.h"

#define HEADHIST_PAGE_BITS 12
#define HEADHIST_PAGES (1u << 20) /* 2^32 references */

typedef struct hhist hhist;

typedef struct headhist {
    hhist **pages[HEADHIST_PAGES];
    headchunks *hc;
    int64_t chunk_range;
    uint64_t *nchunks, *chunks_created; /* the head's counters (atomics) */
    uint64_t bytes;                     /* atomic: memory of open chunks and state */
} headhist;

void headhist_init(headhist *hh, headchunks *hc, int64_t chunk_range, uint64_t *nchunks,
                   uint64_t *chunks_created);
void headhist_free(headhist *hh);

/* Whether (t, h) at the time of the series' last sample, a histogram, is
 * the same sample: HEAD_APPEND_SAME (1), else KILN_EEXIST. */
int headhist_same(headhist *hh, uint32_t ref, const histogram *h);

/* Appends (t, h) (valid, t after the series' last sample): cuts, recodes,
 * sets the new chunk's flags.  0 or KILN_ENOMEM (nothing appended). */
KILN_MUST_CHECK int headhist_append(headhist *hh, uint32_t ref, int64_t t, const histogram *h);

/* Moves the open chunk to chunks_head (a float sample follows). */
void headhist_close(headhist *hh, uint32_t ref);

/* Whether the open chunk holds samples and its kind (1 float, 0 integer). */
int headhist_open(headhist *hh, uint32_t ref, int *is_float);

/* The samples within [mint, maxt], each copied into a: *out an array in a
 * (NULL and *n 0 when none).  0, KILN_ENOMEM, KILN_ECORRUPT. */
KILN_MUST_CHECK int headhist_read(headhist *hh, uint32_t ref, int64_t mint, int64_t maxt, arena *a,
                                  hsample **out, size_t *n);

/* The first sample's time (INT64_MAX when none). */
int64_t headhist_mint(headhist *hh, uint32_t ref);

/* Whether a chunk overlapping [mint, maxt] exists (bounds only). */
int headhist_overlaps(headhist *hh, uint32_t ref, int64_t mint, int64_t maxt);

/* Calls fn for each chunk lying wholly within [mint, maxt) with its
 * encoding (HISTCHUNK_ENC_*), full ones then the open one. */
typedef int (*headhist_chunk_fn)(void *ctx, int64_t mint, int64_t maxt, uint8_t enc, const uint8_t *data,
                                 size_t len);
KILN_MUST_CHECK int headhist_chunks(headhist *hh, uint32_t ref, int64_t mint, int64_t maxt,
                                    headhist_chunk_fn fn, void *ctx);

/* For start-up: a full chunk from chunks_head (after the others); 0,
 * KILN_ENOMEM. */
KILN_MUST_CHECK int headhist_attach(headhist *hh, uint32_t ref, int64_t mint, int64_t maxt, uint64_t cref,
                                    uint8_t enc);

/* Drops full chunks ending before mint, and the open one when idle (the
 * series' last sample is before mint); the count dropped.  *left: 1 when
 * the series still has histogram chunks (the entry is freed otherwise). */
uint64_t headhist_truncate(headhist *hh, uint32_t ref, int64_t mint, int idle, int *left);

/* Frees the series' entry (the series goes). */
void headhist_drop(headhist *hh, uint32_t ref);

#endif
