/*
 * wbl.h - the write-behind log of out-of-order samples (private to
 * storage/), Prometheus' `wbl/` directory (2.39 on) so Prometheus replays
 * what kiln wrote and kiln what Prometheus wrote.
 *
 * The directory holds segments in the WAL's format (wal.h: 8-digit names,
 * 32 KiB pages, fragments with CRC32C, snappy or zstd); kiln writes it with
 * the WAL's own writer.  Its records are WAL records (walrec.h) of two
 * types:
 *
 *   type 2 samples       the out-of-order samples of a commit, after the
 *                        head took them (the WAL holds them too, where
 *                        the in-order replay drops them as out of order)
 *   type 5 m-map markers | 0x05 | { series ref BE64 | chunk ref BE64 } ... |
 *                        the series' out-of-order head chunk was written to
 *                        chunks_head as that chunk: at replay, the samples
 *                        of the series read before the marker are in it
 *
 * A commit logs its samples up to a cut, the markers of the cut, then the
 * samples after it, so replaying in order (chunks_head's out-of-order
 * chunks attached first) rebuilds each head chunk exactly.
 *
 * Threading: none of its own; wbl_read belongs to the calling thread.
 */
#ifndef KILN_STORAGE_WBL_H
#define KILN_STORAGE_WBL_H

#include <stddef.h>
#include <stdint.h>

#include "storage/walrec.h"

typedef struct wbl_marker {
    uint64_t ref;  /* the series */
    uint64_t cref; /* its chunk in chunks_head */
} wbl_marker;

/* Appends an m-map markers record of m[0..n) to out (buf's sticky
 * out-of-memory: check buf_error). */
void wbl_encode_markers(buf *out, const wbl_marker *m, size_t n);

/* The markers a record of len bytes can hold at most. */
size_t wbl_markers_max(size_t len);

/* Decodes an m-map markers record into out[0..cap): 0 with *n set, or
 * KILN_ECORRUPT (err says where). */
KILN_MUST_CHECK int wbl_decode_markers(const void *rec, size_t len, wbl_marker *out, size_t cap, size_t *n,
                                       kiln_err *err);

/* What wbl_read hands over, in log order; a non-zero result stops it. */
typedef struct wbl_visitor {
    int (*samples)(void *ctx, const walrec_sample *v, size_t n);
    int (*markers)(void *ctx, const wbl_marker *m, size_t n);
    void *ctx;
} wbl_visitor;

typedef struct wbl_read_stats {
    uint64_t records, samples, markers;
    uint64_t undecodable; /* records that passed their CRC but did not decode: skipped */
    int corrupt;          /* the log was damaged and cut at the last good record */
} wbl_read_stats;

/*
 * Reads the WBL in dir (a missing directory is an empty log) and hands
 * every samples and markers record to v; other record types are skipped.
 * A damaged segment is repaired as the WAL's are (cut at the last good
 * record, later segments deleted) when repair is set, else reported.
 * Returns 0, a visitor's non-zero result, KILN_ENOMEM or KILN_EIO.
 */
KILN_MUST_CHECK int wbl_read(const char *dir, const wbl_visitor *v, int repair, wbl_read_stats *st,
                             kiln_err *err);

#endif
