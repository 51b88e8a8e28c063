/*
 * headchunks.h - full head chunks on disk (private to storage/), in
 * Prometheus' chunks_head format so Prometheus opens kiln's data directory:
 *
 *   file <dir>/chunks_head/NNNNNN (6 digits, from 000001), at most 128 MiB:
 *   | magic 0x0130BC91 BE32 | version 1 | 3 zero bytes |
 *   then chunks:
 *   | series ref BE64 | mint BE64 | maxt BE64 | encoding 1 byte (1 XOR, 2, 3 histograms) |
 *   | len uvarint | data | CRC32C BE32 over everything before it in the chunk |
 *
 * A chunk reference is (file number << 32) | offset of the chunk in the file.
 *
 * Chunks are written with write(2) through a buffer (never through the
 * mapping, so written data does not stay in kiln's resident memory) and read
 * through a read-only mapping of each file: a query touches only the pages it
 * reads.  Reading a chunk still in the buffer flushes the buffer first.
 *
 * The files are a cache of the WAL: every sample in them is also in the WAL
 * until the head is truncated.  At start the existing files are checked
 * chunk by chunk (CRC); a file is cut at its first bad chunk.
 *
 * Threading: all functions are safe from any thread (one mutex for the
 * writer; the mappings are published atomically).
 */
#ifndef KILN_STORAGE_HEADCHUNKS_H
#define KILN_STORAGE_HEADCHUNKS_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

typedef struct headchunks headchunks;

/* Opens <dir> (created when missing) and maps the files already there. */
KILN_MUST_CHECK int headchunks_open(const char *dir, headchunks **out, kiln_err *err);

/* Flushes, trims the current file to its used size, unmaps, frees. */
KILN_MUST_CHECK int headchunks_close(headchunks *hc, kiln_err *err);

/* Calls fn for every valid chunk in the files that existed at open, in file
 * order, with its encoding (1 XOR, 2 histogram, 3 float histogram; | 0x80
 * for an out-of-order chunk, ooo.h); cuts a
 * file at its first damaged chunk (logged). */
typedef int (*headchunks_fn)(uint64_t series_ref, int64_t mint, int64_t maxt, uint64_t cref, uint8_t enc,
                             void *data);
KILN_MUST_CHECK int headchunks_iterate(headchunks *hc, headchunks_fn fn, void *data, kiln_err *err);

/* Deletes the finished files whose chunks all end before mint (the head
 * has dropped them).  No reader may hold a reference into them. */
KILN_MUST_CHECK int headchunks_truncate(headchunks *hc, int64_t mint, kiln_err *err);

/* Drops the pages the start-up scan touched from kiln's resident set (they
 * stay in the page cache; a query maps them back as it reads). */
void headchunks_release(headchunks *hc);

/* Appends a chunk (XOR-encoded bytes, count header included); *cref is its
 * reference. */
KILN_MUST_CHECK int headchunks_write(headchunks *hc, uint64_t series_ref, int64_t mint, int64_t maxt,
                                     const uint8_t *data, size_t len, uint64_t *cref, kiln_err *err);

/* headchunks_write of a chunk of another encoding (1 XOR, 2 histogram, 3
 * float histogram). */
KILN_MUST_CHECK int headchunks_write_enc(headchunks *hc, uint64_t series_ref, int64_t mint, int64_t maxt,
                                         uint8_t enc, const uint8_t *data, size_t len, uint64_t *cref,
                                         kiln_err *err);

/* The bytes of a chunk (borrowed from the mapping, valid until close). */
KILN_MUST_CHECK int headchunks_read(headchunks *hc, uint64_t cref, const uint8_t **data, size_t *len);

#endif
