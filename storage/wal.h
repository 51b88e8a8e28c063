/*
 * wal.h - kiln's write-ahead log, in Prometheus' on-disk WAL format
 * (tsdb/wlog), so Prometheus and promtool read a kiln data dir and kiln
 * reads theirs.  wal.c holds the segment directory and the writer,
 * walreader.c the reader and repair, checkpoint.c the checkpoints.
 *
 * Layout of a WAL directory (`<data>/wal`):
 *
 *   00000000 00000001 ...   segments, 8-digit decimal names, 128 MiB at most by default
 *   checkpoint.00000041/    a checkpoint: segments 00000000... of its own, holding what
 *                           segments <= 41 held that is still needed
 *
 * A segment is a sequence of 32 KiB pages with no header.  A record (an
 * opaque byte slice; see walrec.h for what kiln puts in them) is compressed
 * as a whole, then split into fragments that never cross a page; each
 * fragment has a 7-byte header:
 *
 *   | offset | size | field                                                      |
 *   |--------|------|------------------------------------------------------------|
 *   | 0      | 1    | type: bits 0-2 fragment type, bit 3 snappy, bit 4 zstd,     |
 *   |        |      | bits 5-7 reserved (0)                                       |
 *   | 1      | 2    | length of the data, big-endian                             |
 *   | 3      | 4    | CRC32C (Castagnoli) of the data, big-endian                |
 *   | 7      | len  | data                                                       |
 *
 * Fragment types: 0 page padding (the rest of the page is zero), 1 FULL,
 * 2 FIRST, 3 MIDDLE, 4 LAST.  When fewer than 7 bytes are left in a page the
 * rest is zero-padded.  A record never crosses a segment; a record bigger
 * than a segment gets a segment of its own, bigger than the limit.  The
 * writer pads the last page of a segment when it moves to the next one and
 * on close; a crash leaves a partial page, which the reader accepts.
 *
 * Durability: wal_log() returns after write(2) handed the bytes to the
 * operating system: that is the acknowledgement point (survives kill -9, not
 * a power loss).  Reaching the disk is the fsync policy's business (see
 * wal_opts.fsync_policy) or an explicit wal_sync().
 *
 * Start-up order (as in Prometheus): read everything with a wal_reader; on
 * KILN_ECORRUPT log it, wal_repair at the reported position (everything read
 * before it is good and already applied); only then wal_open, which starts a
 * new segment.  Opening the writer first and repairing later would delete
 * the segments written since.
 *
 * Typical head commit hook: encode the batch's new series (walrec series
 * record) and samples (walrec samples record) into bufs, wal_log_batch them,
 * acknowledge on 0.
 *
 * Threading: a wal handle is safe for concurrent wal_log / wal_log_batch /
 * wal_sync / wal_next_segment / wal_truncate_before and the stats getter
 * (one mutex orders the writes; fsync runs outside it).  wal_sync blocks on
 * disk I/O: never call it on the event-loop thread.  A wal_reader belongs to
 * one thread at a time.  wal_repair and wal_checkpoint work on files only
 * and must not run while a writer appends to the segments they touch
 * (checkpointing closed segments while the writer appends to a later one is
 * fine, as in Prometheus).
 */
#ifndef KILN_STORAGE_WAL_H
#define KILN_STORAGE_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

#define WAL_PAGE_SIZE 32768
#define WAL_HEADER_SIZE 7
#define WAL_DEFAULT_SEGMENT_SIZE (128 * 1024 * 1024)

/* Fragment types 0..4 (the table above), and the compression flags of the
 * type byte. */
enum { WAL_FRAG_PAGE_TERM, WAL_FRAG_FULL, WAL_FRAG_FIRST, WAL_FRAG_MIDDLE, WAL_FRAG_LAST };
enum { WAL_FLAG_SNAPPY = 0x08, WAL_FLAG_ZSTD = 0x10 };

enum { WAL_COMPRESS_NONE = 0, WAL_COMPRESS_SNAPPY = 1, WAL_COMPRESS_ZSTD = 2 };

/*
 * fsync policies:
 *   WAL_FSYNC_NONE      never on its own: data reaches the disk when the kernel
 *                       writes it back, or when the caller runs wal_sync()
 *                       (and at wal_close).  Prometheus' behaviour, and the default.
 *   WAL_FSYNC_PERIODIC  a background thread of the wal runs the equivalent of
 *                       wal_sync() every fsync_interval_ms (default 1000):
 *                       at most that much acknowledged data is lost on a power cut.
 *   WAL_FSYNC_ALWAYS    every wal_log / wal_log_batch fsyncs before returning
 *                       (under the mutex: concurrent loggers wait): nothing
 *                       acknowledged is lost; slowest.
 * Whatever the policy, a segment that is finished (the writer moved on) is
 * fsynced before the next wal_sync returns, and wal_close fsyncs.
 */
enum { WAL_FSYNC_NONE = 0, WAL_FSYNC_PERIODIC = 1, WAL_FSYNC_ALWAYS = 2 };

typedef struct wal_opts {
    size_t segment_size;   /* bytes; 0 = WAL_DEFAULT_SEGMENT_SIZE; rounded up to whole pages */
    int compression;       /* WAL_COMPRESS_*; a zeroed struct means none, wal_opts_default snappy */
    int zstd_level;        /* 0 = 3 */
    int fsync_policy;      /* WAL_FSYNC_* */
    int fsync_interval_ms; /* WAL_FSYNC_PERIODIC; 0 = 1000 */
} wal_opts;

/* The defaults kiln uses: 128 MiB segments, snappy, WAL_FSYNC_NONE. */
wal_opts wal_opts_default(void);

typedef struct wal wal;

/* A snapshot of a writer's counters (each read atomically). */
typedef struct wal_stats {
    uint64_t fsyncs;          /* fsync calls made */
    uint64_t fsync_ns;        /* their total duration */
    int64_t segment_current;  /* the segment being written */
    uint64_t writes_failed;   /* wal_log / wal_log_batch calls that failed */
    uint64_t records_written; /* records acknowledged */
    uint64_t bytes_written;   /* bytes handed to write(2), headers and padding included */
    uint64_t record_bytes;    /* record bytes before compression */
    uint64_t corruptions;     /* counted by wal_count_corruption (replay findings) */
} wal_stats;

/*
 * Opens the WAL in `dir` for writing, creating the directory when needed.
 * Like Prometheus, writing always continues in a new segment after the last
 * existing one (00000000 when there is none); existing segments are not
 * touched.  `opts` may be NULL for wal_opts_default().  On success *out is a
 * new handle: close it with wal_close.
 */
KILN_MUST_CHECK int wal_open(const char *dir, const wal_opts *opts, wal **out, kiln_err *err);

/*
 * Appends one record (`len` bytes, len may be 0) and returns once it has been
 * written to the operating system (or fsynced too, under WAL_FSYNC_ALWAYS).
 * Borrows `rec` for the call.  On failure the record is not in the WAL (the
 * segment is cut back to where it was, or the writer moves to a new segment
 * on the next call) and KILN_EIO / KILN_ENOMEM is returned.
 */
KILN_MUST_CHECK int wal_log(wal *w, const void *rec, size_t len, kiln_err *err);

/* One record of a batch. */
typedef struct wal_rec {
    const void *data;
    size_t len;
} wal_rec;

/* Appends n records with one write(2) where they fit in the segment (a
 * segment switch in the middle costs a second write).  On failure none of
 * them counts as acknowledged, though those written before a segment switch
 * in the middle of the batch stay in the WAL and are replayed. */
KILN_MUST_CHECK int wal_log_batch(wal *w, const wal_rec *recs, size_t n, kiln_err *err);

/* fsyncs everything written so far (finished segments, the current one and,
 * after a segment was created, the directory).  Blocking: call it from a
 * worker thread. */
KILN_MUST_CHECK int wal_sync(wal *w, kiln_err *err);

/* Pads and finishes the current segment and starts the next one; returns the
 * new segment's number (>= 0) or a negative KILN_E* code.  The head calls it
 * before a checkpoint so that every earlier segment is closed. */
KILN_MUST_CHECK int wal_next_segment(wal *w, kiln_err *err);

/* Deletes the segments numbered below `segment` (never the current one).
 * Returns 0 or KILN_EIO (the first failure; it still tries the rest). */
KILN_MUST_CHECK int wal_truncate_before(wal *w, int segment, kiln_err *err);

/* Counters; safe from any thread. */
void wal_get_stats(wal *w, wal_stats *out);

/* Adds n to the `corruptions` counter (the replayer reports what it found). */
void wal_count_corruption(wal *w, uint64_t n);

/* The directory the handle writes to (borrowed, lives as long as w). */
const char *wal_dir(const wal *w);

/* Pads the last page, fsyncs, closes and frees.  NULL is a no-op.  Returns
 * 0 or the first error (the handle is freed anyway). */
KILN_MUST_CHECK int wal_close(wal *w, kiln_err *err);

/*
 * The first and last segment numbers in `dir` (files named by digits only);
 * both -1 when there is none.  Returns 0, or KILN_EIO/KILN_ENOENT when the
 * directory cannot be read.
 */
KILN_MUST_CHECK int wal_segments(const char *dir, int *first, int *last, kiln_err *err);

/* The newest complete checkpoint in `dir`: its index in *index and its path
 * in path (size n); KILN_ENOENT when there is none. */
KILN_MUST_CHECK int wal_last_checkpoint(const char *dir, int *index, char *path, size_t n, kiln_err *err);

/* ---- reading -------------------------------------------------------------- */

typedef struct wal_reader wal_reader;

/* Where a reader found damage. */
typedef struct wal_corruption {
    int segment;       /* segment number */
    int in_checkpoint; /* 1 when the segment is inside checkpoint.<checkpoint> */
    int checkpoint;    /* the checkpoint index, or -1 */
    int64_t offset;    /* byte offset in the segment of the first record not read:
                          everything before it was returned intact */
    char reason[160];
} wal_corruption;

/*
 * Opens a reader over everything `dir` holds, in replay order: the newest
 * checkpoint (checkpoint.N) if present, then the segments numbered from N+1
 * (or the first one) to the last.  A gap in the segment numbers is reported
 * as corruption at the start of the segment after the gap.  *out is new:
 * free with wal_reader_close.
 */
KILN_MUST_CHECK int wal_reader_open(const char *dir, wal_reader **out, kiln_err *err);

/*
 * A reader that follows the WAL as it is written (tail mode): from
 * (segment, offset) when segment >= 0 (offset: the end of a record, as
 * wal_reader_position gives), else from the newest checkpoint and the
 * segments after it.  wal_reader_next returns 0 when it has read everything
 * written so far and may be called again later; it moves on to a new segment
 * once the writer has created it.  A start segment deleted since shows as
 * corruption at its offset 0.  Reads with pread.
 */
KILN_MUST_CHECK int wal_reader_open_tail(const char *dir, int segment, int64_t offset, wal_reader **out,
                                         kiln_err *err);

/* A reader over segments first..last of `dir` only (no checkpoint). */
KILN_MUST_CHECK int wal_reader_open_range(const char *dir, int first, int last, wal_reader **out,
                                          kiln_err *err);

/*
 * The next record.  Returns 1 with *rec / *len set, 0 at the end, or a
 * negative code: KILN_ECORRUPT when the WAL is damaged (details from
 * wal_reader_corruption; the reader stays at the damage and returns the same
 * error again), KILN_EIO / KILN_ENOMEM otherwise.
 *
 * The slice is decompressed and owned by the reader, valid until the next
 * call or wal_reader_close.  To decode on other threads, copy it (copying
 * costs far less than decoding) and hand the copy over.
 */
KILN_MUST_CHECK int wal_reader_next(wal_reader *r, const uint8_t **rec, size_t *len, kiln_err *err);

/* As wal_reader_next, but the record is appended to out (decompressed
 * straight into it: no copy); *len is its length, from out->len - *len. */
KILN_MUST_CHECK int wal_reader_next_into(wal_reader *r, buf *out, size_t *len, kiln_err *err);

/* Makes the reader read segments with pread instead of mapping them, as it
 * does when mapping fails (tests read both ways).  Call before the first read. */
void wal_reader_use_pread(wal_reader *r);

/* The damage found, or NULL while there is none. */
const wal_corruption *wal_reader_corruption(const wal_reader *r);

/* Where the reader is: the segment and the offset after the last record
 * returned (for logs and progress). */
void wal_reader_position(const wal_reader *r, int *segment, int64_t *offset);

/* 1 while the reader is inside the checkpoint, with its index in *index. */
int wal_reader_in_checkpoint(const wal_reader *r, int *index);

/* Records and decompressed bytes returned so far. */
void wal_reader_counts(const wal_reader *r, uint64_t *records, uint64_t *bytes);

void wal_reader_close(wal_reader *r);

/*
 * Repairs the WAL in `dir` after a reader reported corruption at
 * (segment, offset) as Prometheus does: deletes every segment after
 * `segment` and cuts `segment` to `offset` (deletes it when offset is 0), so
 * that exactly the records read before the damage remain.  Refuses (KILN_EINVAL) a corruption inside a
 * checkpoint: pass c->segment only when !c->in_checkpoint.  Writers must be
 * closed; reopen with wal_open afterwards (it continues in a new segment).
 */
KILN_MUST_CHECK int wal_repair(const char *dir, int segment, int64_t offset, kiln_err *err);

/* ---- checkpoints ----------------------------------------------------------- */

/* Decides whether a series (by its WAL ref) is still alive. */
typedef int (*wal_keep_fn)(uint64_t ref, void *data);

typedef struct wal_checkpoint_opts {
    int64_t mint;    /* samples, exemplars, histograms with t < mint and tombstones with maxt < mint
                        are dropped */
    int compression; /* WAL_COMPRESS_* for the checkpoint's segments */
} wal_checkpoint_opts;

typedef struct wal_checkpoint_stats {
    uint64_t series_kept, series_dropped;
    uint64_t samples_kept, samples_dropped;
    uint64_t tombstones_kept, tombstones_dropped;
    uint64_t exemplars_kept, exemplars_dropped;
    uint64_t other_kept, other_dropped; /* metadata and histogram entries; unknown records dropped */
} wal_checkpoint_stats;

/*
 * Writes checkpoint.<to_seg> in `dir` from the newest existing checkpoint (if
 * any) and segments from_seg..to_seg, as Prometheus' Checkpoint does: series
 * records keep the series keep(ref, data) accepts, samples/exemplars/
 * histograms keep t >= mint, tombstones keep live series with maxt >= mint,
 * metadata keeps live series; other record types are dropped.  The output is
 * built in checkpoint.<to_seg>.tmp, fsynced, renamed into place, the
 * directory fsynced; then older checkpoints are deleted.  When the newest
 * checkpoint is N, from_seg is taken as N+1 (a from_seg beyond N+1 is an
 * error: segments would be lost).  The caller then runs
 * wal_truncate_before(w, to_seg + 1).  stats may be NULL.
 */
KILN_MUST_CHECK int wal_checkpoint(const char *dir, int from_seg, int to_seg, wal_keep_fn keep, void *data,
                                   const wal_checkpoint_opts *opts, wal_checkpoint_stats *stats,
                                   kiln_err *err);

#endif
