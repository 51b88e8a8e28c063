/*
 * tombstones.h - deleted time ranges of series (private to storage/).
 *
 * POST /api/v1/admin/tsdb/delete_series does not rewrite data: it records,
 * per series reference, closed intervals [mint, maxt] whose samples are to
 * be treated as gone.  Queries filter them out; compaction and
 * clean_tombstones write blocks without them.  The head keeps its set in
 * memory (logged to the WAL as type 3 records); a block keeps its set in the
 * `tombstones` file, in Prometheus' format:
 *
 *   | magic 0x0130BA30 BE32 | version 1 | { ref uvarint | mint varint | maxt varint } ... | CRC32C BE32 |
 *
 * The CRC covers the entries (not the magic or the version byte).
 *
 * A set is kept sorted by reference, then mint, with the intervals of a
 * reference disjoint and not touching (tombstones_add merges).
 *
 * Threading: none; the owner locks.
 */
#ifndef KILN_STORAGE_TOMBSTONES_H
#define KILN_STORAGE_TOMBSTONES_H

#include <stddef.h>
#include <stdint.h>

#include "storage/block.h"
#include "storage/storage.h"
#include "util/util.h"

typedef struct tstone {
    uint64_t ref;
    int64_t mint, maxt; /* both inclusive */
} tstone;

typedef struct tombstones {
    tstone *v;
    size_t n, cap;
} tombstones;

/* Adds [mint, maxt] for ref, merged with the intervals it overlaps or
 * touches.  0 or KILN_ENOMEM (the set unchanged then). */
KILN_MUST_CHECK int tombstones_add(tombstones *t, uint64_t ref, int64_t mint, int64_t maxt);
/* The intervals of ref (in mint order): a pointer into t and their count. */
const tstone *tombstones_of(const tombstones *t, uint64_t ref, size_t *n);
/* Drops intervals that end before mint (data that no longer exists). */
void tombstones_truncate(tombstones *t, int64_t mint);
/* A copy of src into dst (dst's own memory freed first); 0 or KILN_ENOMEM. */
KILN_MUST_CHECK int tombstones_copy(tombstones *dst, const tombstones *src);
void tombstones_free(tombstones *t);

/* 1 when one of iv[0..n) holds t. */
int tombstones_hit(const tstone *iv, size_t n, int64_t t);
/* 1 when [mint, maxt] lies wholly inside one of iv[0..n). */
int tombstones_cover(const tstone *iv, size_t n, int64_t mint, int64_t maxt);
/* Removes the samples inside iv[0..n) from s[0..ns) in place; the count left. */
size_t tombstones_filter(const tstone *iv, size_t n, sample *s, size_t ns);

/* The file form of t appended to out; 0 or KILN_ENOMEM. */
KILN_MUST_CHECK int tombstones_encode(const tombstones *t, buf *out);
/* Parses a tombstones file's bytes into t (empty first); KILN_ECORRUPT with
 * a message naming what is wrong, KILN_ENOMEM. */
KILN_MUST_CHECK int tombstones_decode(const uint8_t *p, size_t len, tombstones *t, kiln_err *err);

/*
 * Chunks c[0..nc) (time order, not overlapping; XOR and histogram chunks)
 * without the samples inside iv[0..niv): chunks untouched by the intervals
 * are passed through, chunks wholly inside one dropped, the rest decoded,
 * filtered and encoded again (120 samples a chunk) into memory from mem.  *out is c itself when nothing
 * changed, else an array in mem.  0, KILN_ECORRUPT (a damaged chunk),
 * KILN_ENOMEM.
 */
KILN_MUST_CHECK int tombstones_apply(const block_chunk *c, size_t nc, const tstone *iv, size_t niv,
                                     arena *mem, const block_chunk **out, size_t *nout);

/* tombstones_filter for histogram samples. */
size_t tombstones_filter_hist(const tstone *iv, size_t n, hsample *s, size_t ns);

/* Encodes histogram samples s[0..n) (time order, distinct times) as
 * histogram chunks (the kind of each sample's), cut at 120 samples and where
 * Prometheus' appending would cut (counter resets, layout changes), in
 * memory from mem.  0, KILN_ENOMEM, KILN_ECORRUPT (a sample that does not
 * encode). */
KILN_MUST_CHECK int chunks_from_hist_samples(const hsample *s, size_t n, arena *mem, block_chunk **out,
                                             size_t *nout);

/* Encodes s[0..n) (time order, distinct times) as chunks of 120 samples in
 * memory from mem; *out an array in mem.  0 or KILN_ENOMEM. */
KILN_MUST_CHECK int chunks_from_samples(const sample *s, size_t n, arena *mem, block_chunk **out,
                                        size_t *nout);

#endif
