/*
 * wal_int.h - what the WAL's files share (private to them; the rest of
 * storage/ includes wal.h):
 *
 *   wal.c         the segment directory (names, listing, the newest
 *                 checkpoint) and the writer
 *   walreader.c   the reader, with its corruption report, and repair
 *   checkpoint.c  checkpoints: closed segments filtered into checkpoint.N
 *
 * Threading: nothing here holds state; see wal.h for the handles.
 */
#ifndef KILN_STORAGE_WAL_INT_H
#define KILN_STORAGE_WAL_INT_H

#include <stddef.h>
#include <stdio.h>

#include "storage/wal.h"

/* The path of segment `seg` of dir: "<dir>/00000042". */
static inline void wal__segment_path(char *out, size_t n, const char *dir, int seg) {
    snprintf(out, n, "%s/%08d", dir, seg);
}

/* The sorted segment numbers in dir: *segs is malloc'd (the caller frees it;
 * NULL when *n is 0).  0, or KILN_ENOENT / KILN_EIO / KILN_ENOMEM. */
KILN_MUST_CHECK int wal__list_segments(const char *dir, int **segs, size_t *n, kiln_err *err);

/* 1 when s is "checkpoint.<digits>" exactly (a .tmp one is not a
 * checkpoint), with its index in *idx; else 0. */
int wal__parse_checkpoint_name(const char *s, int *idx);

/*
 * A reader over the checkpoint directory cpdir (index cp_index; NULL and -1
 * for none), then the segments of dir numbered from..to (to < 0: to the
 * last), which must follow each other from `expect` (< 0: from the first one
 * found).  *out is new: free with wal_reader_close.
 */
KILN_MUST_CHECK int wal__reader_open_at(const char *dir, const char *cpdir, int cp_index, int from, int to,
                                        int expect, wal_reader **out, kiln_err *err);

#endif
