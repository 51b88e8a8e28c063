/*
 * ooo.h - the head's out-of-order samples (private to storage/), kept apart
 * from each series' in-order chunks as Prometheus keeps them (2.39 on):
 *
 *   - a sample older than its series' last one, or older than the time
 *     below which the head takes no in-order samples, but no older than
 *     the head's newest time less storage.tsdb.out_of_order_time_window,
 *     goes to the series' out-of-order head chunk: up to OOO_CAP samples
 *     kept sorted by time in memory (a sample at a time already there is
 *     dropped: the first one wins, as in Prometheus' OOOChunk.Insert);
 *   - a full head chunk is encoded as XOR and written to chunks_head with
 *     the out-of-order bit of the encoding byte set (0x81, Prometheus'
 *     EncOOOXOR): an "m-mapped" out-of-order chunk, which may overlap the
 *     series' other chunks of either kind;
 *   - queries merge a series' out-of-order samples with its in-order ones
 *     (querier.c); a time in both is answered with the in-order sample;
 *   - compaction (ooocompact.c) writes those older than the head's first
 *     valid time into blocks of their own, which overlap the in-order ones
 *     and are merged with them as Prometheus' vertical compaction does.
 *
 * A series with out-of-order data has HS_OOO in its flags; its entry lives
 * in a table of its stripe (the series' stripe lock guards both), so the
 * series struct carries nothing for it.
 *
 * Threading: every function takes the series' stripe lock itself unless it
 * says otherwise; ooo_new/ooo_free own the head.
 */
#ifndef KILN_STORAGE_OOO_H
#define KILN_STORAGE_OOO_H

#include <stdint.h>

#include "storage/head.h"
#include "storage/headchunks.h"

/* Samples of an out-of-order head chunk (Prometheus' out_of_order_cap_max default). */
#define OOO_CAP 32
/* The out-of-order bit of a chunks_head chunk's encoding byte. */
#define OOO_ENC_BIT 0x80

typedef struct ooo_head ooo_head;

/* Out-of-order state for the head h (borrowed; chunks go to hc). */
KILN_MUST_CHECK int ooo_new(head *h, headchunks *hc, ooo_head **out);
void ooo_free(ooo_head *o);

/* storage.tsdb.out_of_order_time_window in ms (0: out-of-order samples are
 * refused, the default); atomic, changed by a configuration reload. */
void ooo_set_window(ooo_head *o, int64_t ms);
int64_t ooo_window(const ooo_head *o);

/*
 * Inserts (t, v) into the series' out-of-order head chunk.  When the chunk
 * is full it is m-mapped first: *marker then holds its chunks_head
 * reference (the WBL logs an m-map marker for it), else 0.  Returns 0,
 * HEAD_APPEND_SAME (a sample at t is in the head chunk: dropped) or
 * KILN_ENOMEM.
 */
KILN_MUST_CHECK int ooo_insert(ooo_head *o, hseries *s, int64_t t, double v, uint64_t *marker);

/* For WBL replay: an m-map marker of s: the head chunk's samples are in the
 * m-mapped chunk cref, so the head chunk is emptied, when that chunk was
 * found in chunks_head (a kill -9 loses the chunks still in chunks_head's
 * buffer; their samples then stay in the head chunk). */
void ooo_replay_marker(ooo_head *o, hseries *s, uint64_t cref);

/* For start-up: an out-of-order chunk found in chunks_head.  0 or KILN_ENOMEM. */
KILN_MUST_CHECK int ooo_attach(ooo_head *o, hseries *s, int64_t mint, int64_t maxt, uint64_t cref);

/* Whether s has out-of-order samples (a hint: read without its lock). */
int ooo_series_has(const hseries *s);

/*
 * The out-of-order samples of s within [mint, maxt], time-sorted, each time
 * once (the first written wins), into an array from a (*out NULL, *n 0
 * when none).  0, KILN_ENOMEM, or KILN_ECORRUPT (an m-mapped chunk does
 * not decode).
 */
KILN_MUST_CHECK int ooo_samples(ooo_head *o, hseries *s, int64_t mint, int64_t maxt, arena *a, sample **out,
                                size_t *n);

/* 1 when s has an out-of-order sample within [mint, maxt] (chunk bounds). */
int ooo_has_data(ooo_head *o, hseries *s, int64_t mint, int64_t maxt);

/* The oldest and newest out-of-order times ever inserted since the last
 * compaction (mint > maxt when none). */
void ooo_time_range(ooo_head *o, int64_t *mint, int64_t *maxt);

typedef struct ooo_counts {
    uint64_t series;  /* series with out-of-order data */
    uint64_t mmapped; /* m-mapped out-of-order chunks */
    uint64_t samples; /* samples in head chunks */
} ooo_counts;

void ooo_get_counts(ooo_head *o, ooo_counts *out);

/* ---- compaction (ooocompact.c), under the storage's compact_mu --------- */

/* The series with out-of-order data: *out a new array (free it), in no
 * order.  0 or KILN_ENOMEM. */
KILN_MUST_CHECK int ooo_series_list(ooo_head *o, hseries ***out, size_t *n);

/* M-maps every non-empty head chunk, flushed to the files before return
 * (the WBL records of their samples may then go).  0, KILN_ENOMEM,
 * KILN_EIO. */
KILN_MUST_CHECK int ooo_mmap_all(ooo_head *o);

/* Drops the out-of-order samples of s older than t from its m-mapped
 * chunks (a chunk that straddles t is written again with those at or after
 * t); forgets a series left empty.  Called for every series after their
 * samples before t went to blocks.  0, KILN_ENOMEM, KILN_EIO. */
KILN_MUST_CHECK int ooo_drop_before(ooo_head *o, int64_t t);

#endif
