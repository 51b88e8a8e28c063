/*
 * storage_int.h - what the files behind storage.h share, private to
 * storage/ (and its unit tests): the storage struct, the block list, and
 * the cross-file functions, marked storage__ as libuv marks uv__.
 *
 *   storage.c   opening and closing, the block list, appending, metrics
 *   replay.c    WAL replay into the head at open
 *   querier.c   selects and label lookups over the head and the blocks
 *   compact.c   head truncation, compaction, block merging, retention,
 *               deletion, snapshots
 *
 * Threading: the lock order and what each lock guards are in storage.h;
 * counters are atomics.
 */
#ifndef KILN_STORAGE_STORAGE_INT_H
#define KILN_STORAGE_STORAGE_INT_H

#include <pthread.h>

#include "storage/block.h"
#include "storage/head.h"
#include "storage/headchunks.h"
#include "storage/lockrank.h"
#include "storage/ooo.h"
#include "storage/storage.h"
#include "storage/tombstones.h"
#include "storage/wal.h"

struct storage {
    storage_opts o;
    char *dir;
    char waldir[4096];
    head *h;
    headchunks *hc;
    wal *w;
    /* Read-held by appenders (creation to commit) and selects, write-held by
     * head truncation, which frees series. */
    pthread_rwlock_t gc;
    /* persistent blocks, by mint; the list changes under the gc write lock
     * (and compact_mu) */
    block **blocks;
    size_t nblocks;
    /* the head's deleted ranges (by series reference); changed under the gc
     * write lock, read under the read lock */
    tombstones hts;
    pthread_mutex_t compact_mu; /* one compaction (or deletion) at a time */
    char **bad;                 /* blocks skipped as damaged (names) */
    size_t nbad;
    /* References of series created by appenders whose commit failed and
     * whose series records could not be logged after it either: the next
     * commit logs them before its samples, which may be theirs.  Under
     * unlogged_mu; nunlogged is also read without it, as a hint. */
    pthread_mutex_t unlogged_mu;
    uint64_t *unlogged;
    size_t nunlogged, capunlogged;
    exemplar_store *exemplars; /* NULL unless o.max_exemplars > 0 */
    storage_source source;     /* remote_read (source.c); set before queries run */
    /* out-of-order samples (ooostore.c): the head's, and the WBL writer
     * (NULL until the window is first on; set once, under compact_mu) */
    ooo_head *ooo;
    wal *wbl;
    char wbldir[4096];
    int fail_wal_writes; /* test hook (atomic): so many of the appenders' next WAL writes fail */
    /* counters (atomics) */
    uint64_t compactions, compactions_failed, blocks_deleted;
    uint64_t compaction_us;
    uint64_t samples_appended;
    uint64_t rejected_ooo, rejected_dup, rejected_oob, rejected_too_old;
    uint64_t ooo_appended;
    uint64_t commits_failed;
    /* the change hook (storage_set_change_hook): fn atomic, data set
     * before it; the watch (storage_watch_raise, atomic), INT64_MIN: none */
    storage_change_fn change_fn;
    void *change_data;
    int64_t watch_t;
    /* set by the replay at open */
    uint64_t replay_corruptions;
    uint64_t replay_unknown_refs;
    uint64_t replay_ooo_chunks; /* out-of-order chunks seen in chunks_head, attached by ooostore.c */
    uint64_t wbl_corruptions;
    double replay_seconds;
};

/*
 * The exemplars an appender stages (exemplars.c).  _add checks e against the
 * series' newest (staged or stored: KILN_EEXIST, KILN_EORDER, KILN_EINVAL
 * as exemplar_add) and copies it; _encode appends the type 4 WAL record of
 * the batch (nothing when empty; 0 or KILN_ENOMEM); _commit adds the batch
 * to the store once logged (returns how many were added).  Zeroed is empty.
 */
typedef struct exbatch_entry exbatch_entry;
typedef struct exbatch {
    exbatch_entry *v;
    size_t n, cap;
    arena mem;
    int mem_init;
} exbatch;
KILN_MUST_CHECK int storage__exbatch_add(exbatch *b, exemplar_store *es, const hseries *hs, const exemplar *e,
                                         kiln_err *err);
KILN_MUST_CHECK int storage__exbatch_encode(const exbatch *b, buf *out);
size_t storage__exbatch_commit(const exbatch *b, exemplar_store *es);
void storage__exbatch_free(exbatch *b);

/* A staged float sample of an appender. */
typedef struct staged {
    hseries *s;
    int64_t t;
    double v;
} staged;

/* Replays the WAL (and chunks_head) into the empty head at open; replay.c. */
KILN_MUST_CHECK int storage__replay(storage *s, kiln_err *err);

/* Adds an open block to the list, by mint, and makes appends before its
 * end out of bounds; the caller holds the gc write lock or owns s.  0 or
 * KILN_ENOMEM (b is not taken then). */
KILN_MUST_CHECK int storage__add_block(storage *s, block *b);

/* Closes b (already out of the list) and deletes its directory.  A failure
 * is logged as `failed` (a message such as "Deleting a merged block
 * failed") and returned, for callers that log success: ignoring it is
 * fine, the block is out of use either way. */
int storage__delete_block(storage *s, block *b, const char *failed);

/* Opens the blocks in the data directory not open yet (at start, all;
 * later, blocks a backfill dropped in); a damaged one is logged and
 * skipped, once.  The caller holds compact_mu or owns s. */
KILN_MUST_CHECK int storage__load_blocks_from(storage *s, int at_start, kiln_err *err);

/* Tells the change hook (storage_set_change_hook) that data from mint on
 * changed; call after the change is visible, holding no storage lock. */
void storage__changed(storage *s, int64_t mint);

/* Test hook: the next n WAL writes of appenders (commits, and the series
 * records a failed one logs) fail with KILN_EIO as a full disk would make
 * them, before anything is written. */
void storage__fail_wal_writes(storage *s, int n);

/* ---- out-of-order samples (ooostore.c) ---- */

/* After the replay: the head's out-of-order state from chunks_head and
 * wbl/, and the WBL writer when the window is on or wbl/ exists. */
KILN_MUST_CHECK int storage__ooo_open(storage *s, kiln_err *err);
/* Closes the WBL writer and frees the out-of-order state. */
int storage__ooo_close(storage *s, kiln_err *err);

enum { STORAGE__OOO = 2 }; /* a sample for the out-of-order head */

/* A sample at t the head refused as out of order or out of bounds (or
 * older than newest, a sample of its series staged before it in the
 * batch; INT64_MIN: none): STORAGE__OOO when the window takes it, else
 * KILN_ERANGE "too old sample" (counted).  The window counts back from the
 * head's newest time, or newest when later (the head's first commit). */
KILN_MUST_CHECK int storage__ooo_classify(storage *s, int64_t t, int64_t newest, kiln_err *err);

/* Inserts the out-of-order samples v[0..n) and logs them to the WBL; adds
 * those taken to *added.  0, KILN_ENOMEM, KILN_EIO. */
KILN_MUST_CHECK int storage__ooo_commit(storage *s, const staged *v, size_t n, uint64_t *added,
                                        kiln_err *err);

/* Writes the out-of-order samples older than b (the end of the block the
 * head was just compacted into) into blocks of their own, before the head
 * is truncated at b (chunks_head files holding them may go then); caller
 * holds compact_mu.  See ooostore.c. */
KILN_MUST_CHECK int storage__ooo_compact(storage *s, int64_t b, kiln_err *err);

KILN_MUST_CHECK int storage__ooo_register_metrics(storage *s);

#endif
