/*
 * head.h - the in-memory head block (private to storage/): the series map,
 * the inverted index, and each series' chunks.
 *
 * A series (hseries) is created once and never moves; its labels are
 * interned strings and never change, so they are read without a lock.  Its
 * chunks are guarded by a stripe lock chosen by its reference.
 *
 * References are assigned 1, 2, 3, ... (or given by the WAL on replay) and
 * fit in 32 bits; the index keeps postings lists (sorted references) per
 * label pair.
 *
 * Threading: every function is safe from any thread.  Series creation takes
 * a map shard's write lock, then the index write lock; queries take the index
 * read lock, then stripe locks one series at a time.  The full order is
 * storage.h's lock table.
 *
 * Functions returning int return 0 (or a HEAD_APPEND_* result) or a
 * negative KILN_E* code, and are KILN_MUST_CHECK.
 */
#ifndef KILN_STORAGE_HEAD_H
#define KILN_STORAGE_HEAD_H

#include <stdint.h>

#include "storage/headhist.h"
#include "storage/storage.h"

typedef struct head head;
typedef struct hseries hseries;

/* A sorted set of series references. */
typedef struct refvec {
    uint32_t *v;
    size_t n, cap;
} refvec;

void refvec_free(refvec *r);
/* Keeps in a the references also in b (both sorted). */
void refvec_intersect(refvec *a, const refvec *b);

struct headchunks;

/* A head whose full chunks go to hc (borrowed; must outlive the head). */
KILN_MUST_CHECK int head_new(int64_t chunk_range_ms, struct headchunks *hc, head **out, kiln_err *err);
void head_free(head *h);

/*
 * Finds the series with labels ls (sorted, checked by the caller) or creates
 * it.  want_ref 0 assigns the next reference; a WAL replay passes the
 * series' recorded reference.  *created tells whether it is new.
 */
KILN_MUST_CHECK int head_get_or_create(head *h, const label *ls, size_t n, uint64_t want_ref, hseries **out,
                                       int *created, kiln_err *err);

/* The series with this reference, or NULL. */
hseries *head_series(head *h, uint64_t ref);

uint64_t hseries_ref(const hseries *s);

/* Cache hints for batch appends: deep = 0 fetches the series struct, 1 (a
 * few samples later) the place its open chunk grows; no effect on results. */
void hseries_prefetch(const hseries *s, int deep);
const label *hseries_labels(const hseries *s, size_t *n);

enum { HEAD_APPEND_OK = 0, HEAD_APPEND_SAME = 1 };

/*
 * Checks whether (t, v) may be appended to s now: HEAD_APPEND_OK,
 * HEAD_APPEND_SAME (identical to the last sample: nothing to do),
 * KILN_EORDER, KILN_EEXIST or KILN_ERANGE (with Prometheus' error texts).
 */
KILN_MUST_CHECK int head_append_check(head *h, hseries *s, int64_t t, double v, kiln_err *err);

/* Appends to the series' chunks (order re-checked under its lock).  Returns
 * 0, HEAD_APPEND_SAME, KILN_EORDER/KILN_EEXIST (sample dropped) or
 * KILN_ENOMEM.  The head's time range is left alone: the caller publishes
 * the range of what it appended with head_note_range. */
KILN_MUST_CHECK int head_append(head *h, hseries *s, int64_t t, double v);

/* head_append without the series lock, for a thread that owns s while
 * nothing else can reach the head (WAL replay); widens [*mint, *maxt]
 * instead of the head's range, which head_note_range then publishes. */
KILN_MUST_CHECK int head_append_owned(head *h, hseries *s, int64_t t, double v, int64_t *mint, int64_t *maxt);
/* head_append_owned of n samples of s in turn (borrows v for the call); adds
 * the samples taken to *taken and those dropped to *dropped.  Returns 0, or
 * KILN_ENOMEM when one at least could not be stored. */
KILN_MUST_CHECK int head_append_owned_run(head *h, hseries *s, const sample *v, size_t n, int64_t *mint,
                                          int64_t *maxt, uint64_t *taken, uint64_t *dropped);
void head_note_range(head *h, int64_t mint, int64_t maxt);

/* head_append_check for a histogram sample: at the last sample's time the
 * same histogram is HEAD_APPEND_SAME, anything else KILN_EEXIST. */
KILN_MUST_CHECK int head_append_histogram_check(head *h, hseries *s, int64_t t, const histogram *hg,
                                                kiln_err *err);
/* head_append for a histogram (valid: histogram_validate; copied): cuts
 * the series' float chunk, cuts or recodes its histogram chunk as
 * Prometheus does (headhist.h).  0, HEAD_APPEND_SAME, KILN_EORDER,
 * KILN_EEXIST, KILN_ENOMEM.  A stale float marker appended to a series
 * whose last sample is a histogram becomes a histogram stale marker. */
KILN_MUST_CHECK int head_append_histogram(head *h, hseries *s, int64_t t, const histogram *hg);
/* The histogram samples of s within [mint, maxt], copied into a (*out an
 * array in a; NULL and *n 0 when none).  0, KILN_ENOMEM, KILN_ECORRUPT. */
KILN_MUST_CHECK int head_series_histograms(head *h, hseries *s, int64_t mint, int64_t maxt, arena *a,
                                           hsample **out, size_t *n);

/* Whether the series' last sample is a histogram (then *is_float tells its kind). */
int head_series_last_histogram(head *h, hseries *s, int *is_float);
/* head_series_chunks for the histogram chunks of s, with their encoding
 * (headhist.h). */
KILN_MUST_CHECK int head_series_hist_chunks(head *h, hseries *s, int64_t mint, int64_t maxt,
                                            headhist_chunk_fn fn, void *ctx);

/* Chunk cutting's arithmetic, Prometheus': the end of the chunk range
 * holding t (ranges aligned to multiples of width), and the predicted end
 * of a chunk from start that reached cur after a quarter of its samples. */
int64_t head_range_end(int64_t t, int64_t width);
int64_t head_chunk_end_time(int64_t start, int64_t cur, int64_t max);

/* Time range of the samples in the head; mint > maxt when empty. */
void head_time_range(head *h, int64_t *mint, int64_t *maxt);

typedef struct head_counts {
    uint64_t series;
    uint64_t chunks;         /* closed + open */
    uint64_t chunks_created; /* ever */
} head_counts;

void head_get_counts(head *h, head_counts *out);

/* Trims the head's allocations (open chunks, postings lists) to what they hold: after a replay (headfit.c).
 * Never fails (out of memory, what cannot move keeps its slack); head_truncate must not run meanwhile. */
void head_fit(head *h);

/* The references of the series matching all of ms (see storage.h); the
 * matchers' errors (KILN_ELIMIT for a regex over PCRE2's limits, g's
 * KILN_ETIMEOUT / KILN_ECANCELED; g may be NULL) with err set. */
KILN_MUST_CHECK int head_postings(head *h, const matcher *ms, size_t nms, match_guard *g, refvec *out,
                                  kiln_err *err);

/* Decodes the samples of s within [mint, maxt] straight into an array that
 * alloc(ctx, bound) provides (bound >= the samples in range; called under
 * the series' lock, so it must not call back into the head).  *out is NULL
 * and *n 0 when no chunk overlaps the range.  Returns 0 or a negative error
 * (KILN_ENOMEM, or a corrupt chunk). */
typedef sample *(*head_alloc_fn)(void *ctx, size_t n);
KILN_MUST_CHECK int head_series_samples(head *h, hseries *s, int64_t mint, int64_t maxt, head_alloc_fn alloc,
                                        void *ctx, sample **out, size_t *n);
/* Calls fn for each chunk of s lying wholly within [mint, maxt) (maxt
 * exclusive), full ones then the open one, under the series' lock (fn must
 * not call back into the head).  Stops at fn's first non-zero result. */
typedef int (*head_chunk_fn)(void *ctx, int64_t mint, int64_t maxt, const uint8_t *data, size_t len);
KILN_MUST_CHECK int head_series_chunks(head *h, hseries *s, int64_t mint, int64_t maxt, head_chunk_fn fn,
                                       void *ctx);

/* The times of the series' first and last sample in the head; 0 (and
 * *mint INT64_MAX) when it has none. */
int head_series_time_range(head *h, hseries *s, int64_t *mint, int64_t *maxt);

/* Appends below t become out of bounds (blocks cover the time before it). */
void head_set_min_valid(head *h, int64_t t);
/* The time below which appends are out of bounds (INT64_MIN at first). */
int64_t head_min_valid(head *h);

/* 1 when s has at least one sample within [mint, maxt]. */
int head_series_has_data(head *h, hseries *s, int64_t mint, int64_t maxt);

/* Every label name with a series, or every value of one name; strings are
 * interned and live as long as the head.  Callbacks run under the index read
 * lock and must not call back into the head. */
KILN_MUST_CHECK int head_label_names(head *h, int (*fn)(const char *name, void *data), void *data);
KILN_MUST_CHECK int head_label_values(head *h, const char *name, int (*fn)(const char *value, void *data),
                                      void *data);

/*
 * For each value of label `name` (interned, living as long as the head),
 * calls fn(value, ref, data) for the references of the value's postings
 * that are also in `among` (sorted), in increasing order, until fn returns
 * non-zero: 1 moves on to the next value, a negative code stops and is
 * returned (KILN_ENOMEM when a bitmap of among cannot be had).  A label
 * values lookup with matchers (among their postings) so settles a value at
 * its first visible series without reading every matched series' labels.
 * fn runs under the index read lock: it may call head_series and the
 * head_series_* readers (their stripe locks rank after it), nothing that
 * creates series.
 */
KILN_MUST_CHECK int head_label_values_among(head *h, const char *name, const refvec *among,
                                            int (*fn)(const char *value, uint32_t ref, void *data),
                                            void *data);

/* For start-up: gives s a full chunk found in chunks_head (time order, each
 * after the last).  KILN_EORDER when it overlaps what s holds (ignored).
 * Only the series' last chunk (last != 0) is read, for its last sample;
 * KILN_ECORRUPT when that does not decode. */
KILN_MUST_CHECK int head_attach_chunk(head *h, hseries *s, int64_t mint, int64_t maxt, uint64_t cref,
                                      int last);

/* head_attach_chunk for a histogram chunk (enc 2 or 3); its maxt is its
 * last sample's time.  KILN_EORDER when it overlaps what s holds. */
KILN_MUST_CHECK int head_attach_hist_chunk(head *h, hseries *s, int64_t mint, int64_t maxt, uint64_t cref,
                                           uint8_t enc);

typedef struct head_truncate_stats {
    uint64_t series_removed, chunks_removed;
} head_truncate_stats;

/*
 * Drops what lies wholly before mint (after it was written to a block):
 * full chunks ending before it, open chunks of series idle since, and the
 * series left with nothing (from the map, the reference table and the
 * postings).  Appends older than mint become out of bounds.  The caller
 * guarantees no appender or query holds series pointers meanwhile (the
 * storage's gc lock); interned label strings stay.
 */
KILN_MUST_CHECK int head_truncate(head *h, int64_t mint, head_truncate_stats *st);

/* For replay: the next reference to assign becomes at least ref + 1. */
void head_bump_ref(head *h, uint64_t ref);

#endif
