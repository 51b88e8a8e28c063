/*
 * block.h - persistent blocks in Prometheus' format (private to storage/):
 * `<ULID>/meta.json`, `index` (format 2), `chunks/000001...`, `tombstones`.
 *
 * A block_writer (blockwriter.c) streams chunks into the segment files as
 * series are added (in label order) and writes the index, meta.json and
 * tombstones at commit, all under `<ULID>.tmp-for-creation`, fsynced, then
 * renamed: a crash leaves either the whole block or a temporary directory
 * that block_list removes at start-up.
 *
 * A block (block.c) is read through read-only maps of the index and chunk
 * files: postings lookups, series labels and chunk metas, chunk bytes (CRC
 * checked).  An open block is immutable and may be read from any thread.
 *
 * A chunk segment file: magic BE32 | format 1 | 3 zero bytes, then chunks:
 *
 *   | field    | size        | meaning                                   |
 *   |----------|-------------|-------------------------------------------|
 *   | len      | uvarint     | bytes of data                             |
 *   | encoding | 1           | 1 XOR, 2 histogram, 3 float histogram     |
 *   | data     | len         | the chunk (its sample count first, BE16)  |
 *   | crc      | 4           | CRC32C of encoding and data, big-endian   |
 *
 * A chunk's reference is (segment number - 1) << 32 | its offset in the file.
 */
#ifndef KILN_STORAGE_BLOCK_H
#define KILN_STORAGE_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "storage/storage.h"
#include "util/util.h"

#define BLOCK_ULID_LEN ULID_LEN

#define BLOCK_INDEX_MAGIC 0xBAAAD700u
#define BLOCK_CHUNKS_MAGIC 0x85BD40DDu
#define BLOCK_SEGMENT_MAX (512u << 20) /* bytes of a chunk segment file, at most */
#define BLOCK_TOC_LEN (6 * 8 + 4)      /* the index's table of contents: 6 offsets and a CRC */

typedef struct block_chunk {
    int64_t mint, maxt;  /* first and last sample */
    const uint8_t *data; /* chunk bytes (num_samples first) */
    size_t len;
    uint8_t enc; /* 2, 3: histogram chunks (histchunk.h); 0 or 1: XOR */
} block_chunk;

typedef struct block_writer block_writer;

/* A new block for [mint, maxt) (maxt exclusive, as meta.json has it) under dir. */
KILN_MUST_CHECK int block_writer_new(const char *dir, int64_t mint, int64_t maxt, block_writer **out,
                                     kiln_err *err);
/* Adds a series; series come in labels_cmp order, chunks in time order. */
KILN_MUST_CHECK int block_writer_add(block_writer *w, const label *ls, size_t nls, const block_chunk *c,
                                     size_t nc, kiln_err *err);
/* Writes index, meta.json, tombstones; fsyncs; renames into place.  Frees w
 * whatever happens; ulid receives the new block's name. */
KILN_MUST_CHECK int block_writer_commit(block_writer *w, char ulid[BLOCK_ULID_LEN + 1], kiln_err *err);
/* Drops an unfinished block (its temporary directory) and frees w. */
void block_writer_abort(block_writer *w);

typedef struct block block;

typedef struct block_meta {
    char ulid[BLOCK_ULID_LEN + 1];
    int64_t mint, maxt; /* maxt exclusive */
    uint64_t samples, series, chunks;
    int level;
} block_meta;

/* A block made by merging others: its level is one more than theirs, and
 * meta.json lists them as parents (so a crash before they are deleted is
 * cleaned up at the next start). */
KILN_MUST_CHECK int block_writer_set_parents(block_writer *w, const block_meta *parents, size_t n);
/* Overrides the level (a block rewritten alone keeps its own). */
void block_writer_set_level(block_writer *w, int level);

/* Opens dir/<ulid>; a damaged index or meta.json is KILN_ECORRUPT naming the file. */
KILN_MUST_CHECK int block_open(const char *dir, const char *ulid, block **out, kiln_err *err);
void block_close(block *b);
const block_meta *block_get_meta(const block *b);
/* Bytes on disk (index + chunks + meta + tombstones). */
uint64_t block_size(const block *b);

/*
 * The series matching all of ms with data in [mint, maxt], samples (and
 * histogram samples, h copied) in that range appended to out (allocated in out->mem; out->v grown with
 * realloc through the callback below).  labels_only: series with a chunk in range, no samples.  The matchers'
 * errors (KILN_ELIMIT for a regex over PCRE2's limits, g's KILN_ETIMEOUT / KILN_ECANCELED; g may be NULL)
 * come back with err set.
 */
typedef int (*block_series_fn)(void *ctx, const label *ls, size_t nls, const sample *s, size_t n,
                               const hsample *hs, size_t nh);
KILN_MUST_CHECK int block_select(block *b, const matcher *ms, size_t nms, match_guard *g, int64_t mint,
                                 int64_t maxt, int labels_only, arena *mem, block_series_fn fn, void *ctx,
                                 kiln_err *err);

/* Calls fn for every series in label order with all its chunks (bytes in
 * the block's maps, checksums checked), its tombstones applied: chunks with
 * deleted samples are encoded again into mem, a series left with nothing is
 * skipped. */
typedef int (*block_chunks_fn)(void *ctx, const label *ls, size_t nls, const block_chunk *c, size_t nc);
KILN_MUST_CHECK int block_foreach_series(block *b, arena *mem, block_chunks_fn fn, void *ctx, kiln_err *err);

/* ---- deletion: the block's `tombstones` file -------------------------------- */

struct tombstones;
/* The number of deleted intervals the block holds. */
size_t block_tombstones(const block *b);
/*
 * Marks [mint, maxt] of the series matching ms as deleted: writes the block's
 * new tombstones file (atomically) and returns the whole new set in next
 * (empty when no series matched: nothing written).  The block keeps serving
 * its old set until block_set_tombstones, which the caller runs where no
 * select is reading b (storage: under the gc write lock).
 */
KILN_MUST_CHECK int block_delete_series(block *b, const matcher *ms, size_t nms, int64_t mint, int64_t maxt,
                                        struct tombstones *next, kiln_err *err);
/* Makes t the block's set (t is emptied; the old set freed). */
void block_set_tombstones(block *b, struct tombstones *t);

/* 1 when ulid is one of the blocks b was merged from. */
int block_is_parent_of(const block *b, const char *ulid);

/* Every label name, or every value of one name, present in the block. */
KILN_MUST_CHECK int block_label_names(block *b, int (*fn)(const char *s, void *ctx), void *ctx);
KILN_MUST_CHECK int block_label_values(block *b, const char *name, int (*fn)(const char *s, void *ctx),
                                       void *ctx);

/* The block directories (ULID names) under dir, oldest name first; with
 * clean (at start-up only: another writer may be at work later) removes
 * leftover `*.tmp-for-creation` / `*.tmp-for-deletion` directories. */
KILN_MUST_CHECK int block_list(const char *dir, int clean, char ***ulids, size_t *n, kiln_err *err);
/* Removes a block directory (renamed aside first, so a crash leaves no half block). */
KILN_MUST_CHECK int block_delete(const char *dir, const char *ulid, kiln_err *err);

#endif
