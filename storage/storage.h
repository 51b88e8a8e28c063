/*
 * storage.h - the public interface of kiln's storage: label sets, matchers,
 * the appender that ingests samples, and the querier that reads them back.
 *
 * Every other subsystem (api, scrape, rules, query) includes only this
 * header.  Everything else in storage/ is private to it.
 *
 * Labels
 *   A label set is an array of `label` sorted by name, names unique, all
 *   strings NUL-terminated UTF-8.  An empty value means "no such label": label
 *   sets never hold one.  The strings are borrowed from whoever owns the array.
 *
 * Appending
 *   storage_appender() hands out a batch.  appender_append() checks a sample
 *   against the head at once (order, duplicate, bounds) and stages it; a
 *   rejected sample returns its error and the batch goes on without it.
 *   appender_commit() writes the batch to the WAL (series records for new
 *   series first, then the samples) and only then makes it visible to
 *   queries; when it returns 0 the samples survive a crash.
 *
 * Querying
 *   storage_querier() takes a consistent view of [mint, maxt]: samples
 *   appended after it was opened stay invisible to it.  querier_select()
 *   returns the matching series sorted by labels, with their samples in
 *   [hints.mint, hints.maxt] copied out (stale markers included), so the
 *   caller owns everything it got and may keep it after closing the querier.
 *   Blocks on disk and the head are merged behind the same calls.
 *
 * Errors: a function returning int returns 0 or a negative KILN_E* code and
 * is KILN_MUST_CHECK, except labels_format and labels_json, which append to
 * a buf whose out-of-memory is sticky (check buf_error when it is done).
 *
 * Threading: storage, appenders and queriers may be used from any thread;
 * one appender or querier must be used by one thread at a time.  An
 * appender holds the gc read lock from storage_appender to its commit or
 * rollback: a thread with an open appender must not truncate or compact.
 *
 * Lock order.  Every mutex and rwlock of the storage (storage.c, replay.c,
 * querier.c, compact.c) and of the head (head.c) has a rank; a thread takes
 * them in increasing rank only: it may hold a lock while taking one of a
 * higher rank, never the reverse, and holds one lock of a rank at a time
 * (it may read-lock a rwlock of a rank it holds for reading only).  Built
 * with -DKILN_LOCK_DEBUG (the sanitized builds: unit and integration
 * tests) every acquisition is checked (lockrank.h) and a violation aborts;
 * the optimised build takes the locks bare.
 *
 *   | rank | lock                       | kind   | guards; held by                            |
 *   |------|----------------------------|--------|--------------------------------------------|
 *   | 1    | storage.compact_mu         | mutex  | one compaction, merge, retention pass,     |
 *   |      |                            |        | block rewrite or deletion at a time        |
 *   | 2    | storage.gc                 | rwlock | series and blocks against freeing: read by |
 *   |      |                            |        | appenders, selects, label lookups, block   |
 *   |      |                            |        | writing; written by head truncation and    |
 *   |      |                            |        | changes to the block list and tombstones   |
 *   | 3    | head shard lock (64)       | rwlock | a series-map shard: lookups (read),        |
 *   |      |                            |        | creation and truncation (write)            |
 *   | 4    | head.index_lock            | rwlock | the postings and the next reference        |
 *   | 5    | head.intern_lock           | mutex  | the interned label strings                 |
 *   | 6    | head stripe mutex (1024)   | mutex  | a series' samples and chunks               |
 *   | 7    | storage.unlogged_mu        | mutex  | series whose records a failed commit could |
 *   |      |                            |        | not log yet                                |
 *   | 8    | replay hand-over mutexes   | mutex  | the replay's read-ahead blocks and batches |
 *
 *   Outside the ranks, and taken last: the WAL writer's mutexes (wal.c,
 *   under gc by a commit, under compact_mu by a deletion), chunks_head's
 *   (headchunks.c, under a stripe when a chunk is cut or read, under gc by
 *   truncation) and the slab allocator's (util/slab.c); none of them is
 *   held while a ranked lock is taken.  Before them all: the metrics
 *   registry's mutex (util/metrics.c), held while /metrics reads the
 *   storage's gauges, which take gc.
 */
#ifndef KILN_STORAGE_H
#define KILN_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* ---- labels ------------------------------------------------------------ */

typedef struct label {
    const char *name;
    const char *value;
} label;

#define LABEL_NAME "__name__"

/* Bounds on one label set, checked by labels_check (and so by every appender). */
#define LABELS_MAX_COUNT 256
#define LABEL_NAME_MAX_LEN 1024
#define LABEL_VALUE_MAX_LEN 65536

/* 64-bit hash of a sorted label set (xxh3 over name 0xff value 0xff ...);
 * stable across runs. */
uint64_t labels_hash(const label *ls, size_t n);

/* Orders label sets like Prometheus: pairwise by name then value, then the
 * shorter set first.  <0, 0, >0. */
int labels_cmp(const label *a, size_t na, const label *b, size_t nb);

/* The value of `name`, or NULL when the set has no such label. */
const char *labels_get(const label *ls, size_t n, const char *name);

/* Sorts by name in place (stable for equal names, so duplicates stay visible
 * to labels_check). */
void labels_sort(label *ls, size_t n);

/*
 * Checks a label set that should be sorted: names non-empty, valid
 * ([a-zA-Z_][a-zA-Z0-9_]*), unique, sorted; values valid UTF-8 and
 * non-empty; the bounds above.  KILN_EINVAL with a message naming the label,
 * e.g. `duplicate label name "job"`, `invalid UTF-8 in the value of label
 * "x"`, `empty label name`.
 */
KILN_MUST_CHECK int labels_check(const label *ls, size_t n, kiln_err *err);

/* Appends `{__name__="up", job="x"}` (Prometheus' String() form) to out;
 * buf's result (sticky: buf_error). */
int labels_format(buf *out, const label *ls, size_t n);

/* Appends the set as a JSON object {"name":"value",...} (the API's form). */
int labels_json(buf *b, const label *ls, size_t n);

/* Copies the set and its strings into `a`; NULL when out of memory. */
label *labels_copy(arena *a, const label *ls, size_t n);

/*
 * A scratch builder for label sets (relabeling, aggregation, ...).  Strings
 * are borrowed; lb_set with an empty value deletes.  lb_labels sorts and
 * returns the current set (valid until the next change).
 */
typedef struct labels_builder {
    label *v;
    size_t n, cap;
} labels_builder;

void lb_init(labels_builder *b);
void lb_reset(labels_builder *b);
KILN_MUST_CHECK int lb_set(labels_builder *b, const char *name, const char *value); /* 0 or KILN_ENOMEM */
void lb_del(labels_builder *b, const char *name);
/* Starts from an existing set (copies the array, not the strings). */
KILN_MUST_CHECK int lb_from(labels_builder *b, const label *ls, size_t n);
const label *lb_labels(labels_builder *b, size_t *n);
void lb_free(labels_builder *b);

/* ---- matchers ---------------------------------------------------------- */

typedef enum match_type { MATCH_EQ = 0, MATCH_NEQ, MATCH_RE, MATCH_NRE } match_type;

typedef struct matcher {
    match_type type;
    char *name;  /* owned */
    char *value; /* owned; the regex text for RE/NRE */
    void *re;    /* compiled pattern (private) */
} matcher;

/*
 * Builds a matcher; a regex is anchored at both ends ("^(?s:...)$") like
 * Prometheus and compiled with JIT.  A bad regex is KILN_EINVAL naming the
 * pattern and the offset of the error.
 */
KILN_MUST_CHECK int matcher_init(matcher *m, match_type type, const char *name, const char *value,
                                 kiln_err *err);
void matcher_free(matcher *m);

/*
 * What a long run of matches (a select over the values of a label) checks
 * as it goes: the deadline and cancellation of the query it serves.  A
 * zeroed guard, or none (NULL), checks nothing.  Used by one thread at a
 * time.
 */
typedef struct match_guard {
    double deadline;           /* time_mono_sec() past which matching stops: KILN_ETIMEOUT; 0 = none */
    int (*cancel)(void *data); /* returns non-zero to stop: KILN_ECANCELED; NULL = none */
    void *cancel_data;
    unsigned work; /* private: units charged since the last check */
} match_guard;

/* Units between checks; a literal comparison costs 1, a PCRE2 match
 * MATCH_GUARD_PCRE_COST (a match may take up to PCRE2's match limit, ~25 ms:
 * the deadline is checked every 16 of them). */
#define MATCH_GUARD_EVERY 256u
#define MATCH_GUARD_PCRE_COST 16u

/* Checks the deadline and the cancel callback now: 0, or KILN_ETIMEOUT /
 * KILN_ECANCELED with err set ("timed out while matching label values"). */
KILN_MUST_CHECK int match_guard_check(match_guard *g, kiln_err *err);

/* Charges `cost` units and checks g when they add up to MATCH_GUARD_EVERY. */
KILN_MUST_CHECK static inline int match_guard_tick(match_guard *g, unsigned cost, kiln_err *err) {
    return (g->work += cost) >= MATCH_GUARD_EVERY ? match_guard_check(g, err) : 0;
}

/*
 * Whether `value` (NULL or "" for a label the series lacks) satisfies the
 * matcher: 1 or 0, or < 0 with err set:
 *   KILN_ELIMIT     the regex hit one of PCRE2's limits on this value (it
 *                   backtracks too much): the message names the regex, the
 *                   label and the limit
 *   KILN_ETIMEOUT, KILN_ECANCELED  from g (may be NULL)
 *   KILN_ENOMEM
 * Selects use this one.
 */
KILN_MUST_CHECK int matcher_match(const matcher *m, const char *value, match_guard *g, kiln_err *err);
/* matcher_match without a guard, as a bool, for callers with no error path
 * (the parser's checks on "", the targets API): an error counts as no
 * match. */
int matcher_matches(const matcher *m, const char *value);
/* Whether the matcher matches the empty string (so series lacking the label). */
int matcher_matches_empty(const matcher *m);
/*
 * pcre2_match for kiln's other regexes (label_replace): `code` a
 * pcre2_code * (8-bit), `md` pcre2_match_data * for it; run under the
 * limits matchers use.  Returns pcre2_match's count (> 0) on a match, 0 on
 * none, or KILN_ELIMIT / KILN_ENOMEM with err naming the regex `re` and the
 * label `name` whose value v is.
 */
KILN_MUST_CHECK int matcher_pcre2_match(const void *code, const char *re, const char *name, const char *v,
                                        void *md, kiln_err *err);
/* "=", "!=", "=~", "!~". */
const char *match_type_str(match_type t);

/* ---- the storage ------------------------------------------------------- */

typedef struct storage storage;

/* Values of storage_opts.wal_compression (equal to wal.h's WAL_COMPRESS_*). */
enum { STORAGE_WAL_NONE = 0, STORAGE_WAL_SNAPPY = 1, STORAGE_WAL_ZSTD = 2 };

typedef struct storage_opts {
    const char *dir;            /* data directory (holds wal/, chunks_head/, blocks) */
    int wal_compression;        /* STORAGE_WAL_*, default snappy */
    int wal_fsync_every_commit; /* 1: fsync before every ack; 0: periodic (default) */
    int64_t wal_fsync_interval_ms;
    int64_t block_range_ms;     /* head chunk range, default 2h */
    int64_t retention_ms;       /* 0 = none (default 15d) */
    uint64_t retention_bytes;   /* 0 = none */
    int64_t max_block_range_ms; /* blocks are merged up to this span (and 10% of the retention); 0: 31 d */
    int replay_threads;         /* 0 = number of cores */
    size_t max_exemplars;       /* > 0: exemplar storage of this size (exemplars.c) */
    int64_t ooo_window_ms;      /* storage.tsdb.out_of_order_time_window; 0: out-of-order samples refused */
} storage_opts;

storage_opts storage_opts_default(void);

/*
 * Opens (creating) the storage under opts->dir and replays the WAL into the
 * head: this may take a while and logs its progress.  A corrupt WAL tail is
 * truncated at the last good record with a warning.
 */
KILN_MUST_CHECK int storage_open(const storage_opts *opts, storage **out, kiln_err *err);

/* Flushes and syncs the WAL, closes everything.  NULL is a no-op. */
KILN_MUST_CHECK int storage_close(storage *s, kiln_err *err);

typedef struct storage_stats {
    uint64_t head_series;
    uint64_t head_chunks;
    int64_t head_min_time; /* INT64_MAX / INT64_MIN when empty */
    int64_t head_max_time;
    uint64_t samples_appended;
    uint64_t replay_unknown_refs; /* samples and tombstones the replay at open dropped: no series record */
} storage_stats;

void storage_get_stats(storage *s, storage_stats *out);

/* Sets storage.tsdb.out_of_order_time_window (a reload): samples older than
 * their series' last one, or than the head's first valid time, are taken
 * when no older than the head's newest time less ms (0: refused, "out of
 * order sample"), else refused as "too old sample".  Opens wbl/ the first
 * time ms > 0.  0, or the WBL's open error (the window is unchanged). */
KILN_MUST_CHECK int storage_set_ooo_window(storage *s, int64_t ms, kiln_err *err);
int64_t storage_ooo_window(storage *s);

/* Registers the kiln_tsdb_* metrics (reading s's counters) in the process
 * registry; call once, in the daemon, and keep s open while /metrics serves. */
KILN_MUST_CHECK int storage_register_metrics(storage *s);

/*
 * Drops the head's data wholly before mint (once it is safe in a block):
 * old chunks, series left empty, chunks_head files, and WAL segments (their
 * live series and samples >= mint go to wal/checkpoint.N first).  Appends
 * older than mint are out of bounds afterwards.  Waits for running appenders
 * and selects; blocking (disk I/O): call it from a background thread.
 */
KILN_MUST_CHECK int storage_truncate(storage *s, int64_t mint, kiln_err *err);

/*
 * Compaction: while the head spans more than 1.5 block ranges, writes its
 * oldest range as a block (atomically: a temporary directory renamed into
 * place), then truncates the head and the WAL before it; then deletes the
 * blocks wholly older than the retention.  Appends and queries go on
 * meanwhile; the daemon calls it periodically from a worker thread.
 */
KILN_MUST_CHECK int storage_compact(storage *s, kiln_err *err);

/*
 * A snapshot under <dir>/snapshots/<name>: hard links to every block, and
 * with with_head the head's data written as one more block.  name gets
 * `20261125T101500Z-<16 hex digits>`.  The snapshot is a data directory
 * kiln or Prometheus can start on.
 */
KILN_MUST_CHECK int storage_snapshot(storage *s, int with_head, char *name, size_t namelen, kiln_err *err);

/*
 * Deletion (POST /api/v1/admin/tsdb/delete_series): the samples in
 * [mint, maxt] of the series matching all of ms (at least one matcher) are
 * marked deleted, as Prometheus does: each block touched gets a new
 * `tombstones` file, the head a tombstones record in the WAL (synced).
 * Queries stop seeing them at once; compaction leaves them out of new
 * blocks.  Label names and values may still list the series.
 */
KILN_MUST_CHECK int storage_delete_series(storage *s, const matcher *ms, size_t nms, int64_t mint,
                                          int64_t maxt, kiln_err *err);
/* Rewrites every block that has tombstones without the deleted data
 * (a block left empty is removed).  The head's deletions go with the head's
 * next compaction. */
KILN_MUST_CHECK int storage_clean_tombstones(storage *s, kiln_err *err);

/* ---- native histograms -------------------------------------------------- */

/*
 * A native histogram sample (specs/native_histograms.md), in the form every
 * layer above storage works with: absolute bucket counts as doubles.  An
 * integer histogram (remote write's count_int, the protobuf exposition's
 * integer counts) is the same struct with `is_int` set and integral counts;
 * storage keeps it in Prometheus' histogram chunk, a float one in the
 * float-histogram chunk.
 *
 * Buckets: for the exponential schemas (-4..8) bucket index i of the
 * positive side holds (base^(i-1), base^i] with base = 2^(2^-schema); the
 * spans say which indices are present: the first span's offset is the first
 * index, each later offset is the gap after the previous span, and
 * pos[] holds the counts of all spans' buckets in order (the sum of the span
 * lengths).  The negative side mirrors it.  Schema -53 (HIST_SCHEMA_CUSTOM)
 * uses custom_values as the buckets' upper bounds (pos spans index into it,
 * no negative buckets, no zero bucket).
 */
#define HIST_SCHEMA_MIN (-4)
#define HIST_SCHEMA_MAX 8
#define HIST_SCHEMA_CUSTOM (-53)

typedef enum hist_reset_hint {
    HIST_HINT_UNKNOWN = 0, /* as Prometheus' CounterResetHint values */
    HIST_HINT_RESET = 1,
    HIST_HINT_NOT_RESET = 2,
    HIST_HINT_GAUGE = 3,
} hist_reset_hint;

typedef struct hist_span {
    int32_t offset;
    uint32_t length;
} hist_span;

typedef struct histogram {
    int32_t schema;
    uint8_t hint;   /* hist_reset_hint */
    uint8_t is_int; /* counts are integers (stored in an integer histogram chunk) */
    double zero_threshold;
    double zero_count;
    double count; /* all observations, NaN ones included */
    double sum;   /* a stale marker is a histogram whose sum is stale_nan() */
    hist_span *pos_spans, *neg_spans;
    uint32_t npos_spans, nneg_spans;
    double *pos, *neg; /* absolute counts, one per bucket the spans cover */
    uint32_t npos, nneg;
    double *custom_values; /* schema -53 only: upper bounds, ascending */
    uint32_t ncustom;
} histogram;

/* Helpers on histograms (histogram.c); any thread. */

/* Prometheus' ValidateHistogram: spans against counts (offsets after the
 * first non-negative), counts non-negative, count at least the buckets' and
 * the zero bucket's sum, the schema in range, integral counts when is_int,
 * custom bounds ascending (schema -53) and none otherwise.  0, or
 * KILN_EINVAL with Prometheus' message ("positive side: spans need 3
 * buckets, have 2 buckets: ...").  A stale marker is always valid. */
KILN_MUST_CHECK int histogram_validate(const histogram *h, kiln_err *err);
/* A deep copy of h in a (its arrays too); NULL when out of memory. */
histogram *histogram_copy(arena *a, const histogram *h);
/* Whether a and b are the same sample, bit for bit (the duplicate check). */
int histogram_equal(const histogram *a, const histogram *b);
/* Whether h is a stale marker (its sum is stale_nan()). */
int histogram_is_stale(const histogram *h);
/* The buckets n spans cover (the sum of their lengths). */
uint32_t histogram_nbuckets(const hist_span *sp, uint32_t n);

/* Walks the absolute bucket indices a list of spans covers, in order. */
typedef struct histogram_span_iter {
    const hist_span *sp;
    uint32_t n, si, li;
    int64_t next;
} histogram_span_iter;
void histogram_span_iter_init(histogram_span_iter *it, const hist_span *sp, uint32_t n);
/* 1 with *idx the next index, 0 at the end. */
int histogram_span_iter_next(histogram_span_iter *it, int32_t *idx);

/* Moves the counts v of layout sp onto the wider layout `to` (nout
 * buckets), zero where sp has no bucket: 0, or -1 when sp has a bucket `to`
 * lacks (v NULL: all zero). */
int histogram_fit(const hist_span *sp, uint32_t nsp, const double *v, const hist_span *to, uint32_t nto,
                  double *out, uint32_t nout);

/* ---- appending --------------------------------------------------------- */

typedef struct appender appender;

/*
 * How far ahead of the clock a sample may be: a later one is out of bounds
 * (KILN_ERANGE), and the replay drops such samples from an older WAL.  One
 * such sample would otherwise move the head's range into the future and make
 * every current sample out of bounds.  10 minutes, the grace Mimir and Cortex
 * give (Prometheus' docs state no bound).
 */
#define STORAGE_MAX_FUTURE_MS ((int64_t)10 * 60 * 1000)

/* A new batch; NULL when out of memory. */
appender *storage_appender(storage *s);

/*
 * Stages one sample.  `*ref` 0 means "find or create the series from ls";
 * on success *ref holds the series' reference, which a later call may pass
 * with ls = NULL to skip the lookup (a scrape cache does this).  ls must be
 * sorted (labels_sort) and is checked with labels_check.
 *
 * Errors (the sample is skipped, the batch goes on):
 *   KILN_EORDER  "out of order sample"
 *   KILN_EEXIST  "duplicate sample for timestamp"
 *   KILN_ERANGE  "out of bounds"
 *   KILN_EINVAL  bad labels (the message names the label), or an unknown ref
 *   KILN_ENOMEM
 */
KILN_MUST_CHECK int appender_append(appender *a, uint64_t *ref, const label *ls, size_t n, int64_t t,
                                    double v, kiln_err *err);

/*
 * Stages one native histogram sample, as appender_append does a float (same
 * ref, label and error rules; a series may hold floats and histograms at
 * different times).  h is copied; its arrays are the caller's.  Errors as
 * appender_append's, and KILN_EINVAL for a histogram that is not valid (the
 * message says why: spans and counts disagree, a negative count, a schema
 * out of range, count below the buckets' sum).
 */
KILN_MUST_CHECK int appender_append_histogram(appender *a, uint64_t *ref, const label *ls, size_t n,
                                              int64_t t, const histogram *h, kiln_err *err);

/* Tells the appender that every label set it gets has passed labels_check
 * already (a receiver that validates itself), so it skips the check. */
void appender_trust_labels(appender *a);

/* Writes the batch to the WAL, then makes it visible; frees the appender
 * whatever the outcome.  An error means nothing of the batch was
 * acknowledged; the records of the series it created are logged all the
 * same (or, when the WAL fails again, by the next commit), since they are
 * in the head and later batches may append to them. */
KILN_MUST_CHECK int appender_commit(appender *a, kiln_err *err);

/* Drops the batch and frees the appender; the series it created are
 * logged as appender_commit's failure does. */
void appender_rollback(appender *a);

/* ---- querying ---------------------------------------------------------- */

typedef struct sample {
    int64_t t;
    double v;
} sample;

/* Prometheus' stale marker: the NaN with these bits, appended when a series
 * ends (a target or a rule's output is gone); a query treats the series as
 * absent from that point. */
#define STALE_NAN_BITS 0x7ff0000000000002ULL

static inline int value_is_stale(double v) {
    return double_to_bits(v) == STALE_NAN_BITS;
}
static inline double stale_nan(void) {
    return double_from_bits(STALE_NAN_BITS);
}

/* A histogram sample of a select's result; h lives in the set's arena. */
typedef struct hsample {
    int64_t t;
    histogram *h;
} hsample;

typedef struct series {
    label *ls;
    size_t nls;
    sample *s; /* float samples, sorted by t, no duplicates */
    size_t n;
    hsample *hs; /* histogram samples, sorted by t; no t is in both s and hs */
    size_t nh;
} series;

/* The result of a select; everything lives in `mem`. */
typedef struct series_set {
    series *v;
    size_t n;
    arena mem;
} series_set;

void series_set_free(series_set *set);

/*
 * Encodes s[0..n) (sorted by t, no duplicates) as Prometheus XOR chunks of
 * at most `per_chunk` samples (120 is Prometheus' size), the bytes blocks
 * and remote read's streamed chunks carry: calls fn once a chunk, in order,
 * with its first and last timestamps and its bytes (borrowed for the call).
 * Returns 0, fn's first non-zero result, or KILN_ENOMEM.  Any thread.
 */
KILN_MUST_CHECK int storage_xor_chunks(const sample *s, size_t n, unsigned per_chunk,
                                       int (*fn)(void *data, int64_t mint, int64_t maxt, const uint8_t *b,
                                                 size_t len),
                                       void *data);

/*
 * Decodes an XOR chunk's bytes b[0..len) (remote read's streamed chunks)
 * into out[0..cap): 0 with *n set, KILN_ECORRUPT for bad bytes, KILN_ERANGE
 * when it holds more than cap samples (its first two bytes, big-endian,
 * say how many: storage_xor_count).  Any thread.
 */
KILN_MUST_CHECK int storage_xor_decode(const uint8_t *b, size_t len, sample *out, size_t cap, size_t *n);
size_t storage_xor_count(const uint8_t *b, size_t len);

/*
 * The same for histogram samples s[0..n) (sorted by t): Prometheus'
 * histogram (enc 2) and float-histogram (enc 3) chunks, cut at `per_chunk`
 * samples, on a change of kind, and where the encoder needs a new chunk
 * (a layout change or counter reset), each with its counter-reset header as
 * the head writes it.  Returns 0, fn's first non-zero result, KILN_ENOMEM or
 * KILN_EINVAL (a histogram the encoder cannot take).  Any thread.
 */
KILN_MUST_CHECK int storage_hist_chunks(const hsample *s, size_t n, unsigned per_chunk,
                                        int (*fn)(void *data, int64_t mint, int64_t maxt, int enc,
                                                  const uint8_t *b, size_t len),
                                        void *data);

typedef struct select_hints {
    int64_t mint, maxt; /* samples wanted, inclusive */
    int labels_only;    /* no samples: series with data in [mint, maxt] */
    size_t max_samples; /* 0 = unbounded; beyond it: KILN_ELIMIT */
} select_hints;

typedef struct querier querier;

KILN_MUST_CHECK int storage_querier(storage *s, int64_t mint, int64_t maxt, querier **out, kiln_err *err);
void querier_close(querier *q);

/* Makes q's later selects and label lookups check g (copied; NULL: none)
 * while their matchers run over label values and postings: past its
 * deadline they fail with KILN_ETIMEOUT, canceled with KILN_ECANCELED. */
void querier_set_guard(querier *q, const match_guard *g);

/* Series matching all of ms (at least one matcher must not match "").
 * Errors: KILN_ELIMIT for hints.max_samples ("query processing would load
 * too many samples into memory in query execution") or for a regex that
 * hit PCRE2's limits (the message names it); the guard's KILN_ETIMEOUT /
 * KILN_ECANCELED; KILN_ENOMEM, KILN_ECORRUPT. */
KILN_MUST_CHECK int querier_select(querier *q, const matcher *ms, size_t nms, const select_hints *h,
                                   series_set *out, kiln_err *err);

/* ---- other sources of series (remote_read; source.c) -------------------- */

/*
 * A source of series besides the local data: kiln's remote_read client
 * (remote/), which the daemon hands the storage, so the query engine merges
 * what other servers hold into its selects without including remote/.
 * Only the query engine asks it (storage_source_merge); querier_select,
 * remote read's server and /federate keep to the local data, as in
 * Prometheus (whose fanout storage is the engine's, not theirs).
 */
typedef struct storage_source_query {
    const matcher *ms;
    size_t nms;
    int64_t mint, maxt; /* inclusive */
    /* where the local data begins, as Prometheus' readyStorage.StartTime
     * gives it to read_recent: the oldest block's start (now when there is
     * none) plus two block ranges */
    int64_t local_start;
} storage_source_query;

typedef struct storage_source {
    /* Adds the series matching q to out (an empty set, its arena initialised;
     * any order, label sets valid and sorted, samples sorted by t): 0, or a
     * message in warn (out keeps what other endpoints gave; the query goes
     * on with a warning).  Called from any query thread at once. */
    int (*select)(void *data, const storage_source_query *q, series_set *out, kiln_err *warn);
    void *data;
    /* Optional: whether select would ask anything now (remote_read has
     * entries); the results cache keeps nothing while it does. */
    int (*active)(void *data);
} storage_source;

/* Hands s the source (copied; NULL: none).  Call before the storage serves
 * queries: the daemon does it right after storage_open. */
void storage_set_source(storage *s, const storage_source *src);

/*
 * The query engine's select over the source: the source's series matching
 * ms over [h->mint, h->maxt] merged into set (a querier_select result:
 * sorted by labels, it stays so; a series in both gets the samples of both,
 * the local one's kept where both have a timestamp).  Returns 0, or 1 with
 * a message in warn when the source (or the merge, out of memory) failed:
 * set then holds what could be merged.  No source: 0 at once.
 */
int storage_source_merge(storage *s, const matcher *ms, size_t nms, const select_hints *h, series_set *set,
                         kiln_err *warn);

/* Merges the series of add into set as storage_source_merge does (add's
 * contents are copied; add is left for the caller to free); 0 or
 * KILN_ENOMEM (set unchanged). */
KILN_MUST_CHECK int series_set_merge(series_set *set, const series_set *add);

/* ---- changes below the watch (the range-query cache; storage.c) -------- */

/*
 * The range-query cache (query/rcache.c) keeps results of steps up to some
 * time and must hear of every change to data at or before it.  Appends near
 * the head's front (the usual ones) are not reported: only a commit that made
 * a sample visible at or below the watch (one atomic load and compare per
 * batch, against the lowest timestamp the batch added), a deletion (from its
 * mint), a block loaded after start (its mint) and retention dropping blocks
 * (INT64_MIN: everything).  The hook runs after the change is visible to new
 * queriers, on the thread that made it, holding no storage lock.
 */
typedef void (*storage_change_fn)(void *data, int64_t mint);

/* Sets the hook (NULL: none) once; any thread, before or while appends run. */
void storage_set_change_hook(storage *s, storage_change_fn fn, void *data);

/* Raises the watch to t (it never goes down): commits adding a sample at or
 * below it are reported from then on.  Any thread. */
void storage_watch_raise(storage *s, int64_t t);

/* Whether query results depend only on this storage's data (no remote_read
 * source is set, whose data may change unseen). */
int storage_local_only(storage *s);

/* ---- following the WAL (remote write's watcher; waltail.c) ------------- */

/*
 * A follower reads kiln's own WAL (<data>/wal) as it is written, record by
 * record, as Prometheus' remote-write watcher does: series records give the
 * WAL references their labels, samples records the samples to send.  It
 * never touches the storage handle: it reads files, on the caller's thread.
 */
typedef struct storage_wal_tail storage_wal_tail;

/* A place in the WAL: the byte offset after a record of a segment. */
typedef struct storage_wal_pos {
    int segment;
    int64_t offset;
} storage_wal_pos;

typedef struct storage_wal_series {
    uint64_t ref;
    label *ls; /* as written (sorted by name) */
    size_t nls;
} storage_wal_series;

typedef struct storage_wal_sample {
    uint64_t ref;
    int64_t t;
    double v; /* stale markers included */
} storage_wal_sample;

typedef struct storage_wal_histogram {
    uint64_t ref;
    int64_t t;
    const histogram *h; /* stale markers included */
} storage_wal_histogram;

typedef struct storage_wal_exemplar {
    uint64_t ref;
    int64_t t;
    double v;
    const label *ls; /* the exemplar's labels */
    size_t nls;
} storage_wal_exemplar;

/* One record: series, samples, histogram samples or exemplars (the other counts 0). */
typedef struct storage_wal_record {
    const storage_wal_series *series;
    size_t nseries;
    const storage_wal_sample *samples;
    size_t nsamples;
    const storage_wal_histogram *histograms;
    size_t nhistograms;
    const storage_wal_exemplar *exemplars; /* sent with send_exemplars, like samples */
    size_t nexemplars;
    storage_wal_pos pos; /* after the record; segment -1 inside a checkpoint */
} storage_wal_record;

/*
 * Opens a follower of data_dir/wal from its newest checkpoint on.  Every
 * series record is returned; samples records only after `from`:
 *   from.segment < 0   those written after the follower first caught up
 *                      with the writer (a first start: "from now on");
 *   else               those after from (a resume); when from's segment
 *                      was truncated away since, the checkpoint's samples too
 *                      (the follower fell behind a truncation).
 * *out is new: close with storage_wal_tail_close.
 */
KILN_MUST_CHECK int storage_wal_tail_open(const char *data_dir, storage_wal_pos from, storage_wal_tail **out,
                                          kiln_err *err);

/*
 * The next record: 1 with *out filled (its arrays and label strings belong
 * to the follower, valid until the next call), 0 when everything written so
 * far has been read (call again later), or a negative KILN_E* code (a
 * damaged WAL: the follower then starts over from the newest checkpoint on
 * the next call, returning series records again).
 */
KILN_MUST_CHECK int storage_wal_tail_next(storage_wal_tail *t, storage_wal_record *out, kiln_err *err);

/* Where the follower is: after the last record returned (segment -1 inside a
 * checkpoint or before the first record). */
storage_wal_pos storage_wal_tail_pos(const storage_wal_tail *t);

void storage_wal_tail_close(storage_wal_tail *t);

/* A sorted list of unique strings living in mem. */
typedef struct str_list {
    const char **v;
    size_t n;
    arena mem;
} str_list;

void str_list_free(str_list *l);

/* Label names of the series matching ms (all series when nms == 0), sorted. */
KILN_MUST_CHECK int querier_label_names(querier *q, const matcher *ms, size_t nms, str_list *out,
                                        kiln_err *err);

/* Values of label `name` over the series matching ms (all when nms == 0), sorted. */
KILN_MUST_CHECK int querier_label_values(querier *q, const char *name, const matcher *ms, size_t nms,
                                         str_list *out, kiln_err *err);

/* ---- exemplars (exemplars.c) ----------------------------------------------- */

/* Exemplar storage (--enable-feature=exemplar-storage): Prometheus' circular
 * buffer of the newest max_exemplars exemplars, kept through restarts by
 * the WAL (appender_append_exemplar).  The storage holds one when
 * storage_opts.max_exemplars > 0. */
typedef struct exemplar_store exemplar_store;

/* An exemplar: its labels (sorted or not, as given), value and timestamp;
 * has_ts 0 when the exposition gave none (t is then the scrape's time). */
typedef struct exemplar {
    const label *ls;
    size_t n;
    double v;
    int64_t t;
    int has_ts;
} exemplar;

/* One selector's matchers (a series matches when it matches all). */
typedef struct exemplar_matchers {
    const matcher *ms;
    size_t nms;
} exemplar_matchers;

exemplar_store *exemplar_store_new(size_t max);
void exemplar_store_free(exemplar_store *es);
/* The storage's exemplar store, or NULL when exemplar storage is off. */
exemplar_store *storage_exemplars(storage *s);

/* Adds e for the series ls[0..ns) (sorted, copied): 0; KILN_EEXIST when it
 * equals the series' newest (a no-op); KILN_EORDER when not after it;
 * KILN_EINVAL when its labels are over 128 code points; KILN_ENOMEM. */
KILN_MUST_CHECK int exemplar_add(exemplar_store *es, const label *ls, size_t ns, const exemplar *e,
                                 kiln_err *err);

/*
 * Stages exemplar e of the series `ref` names (set by appender_append), as
 * Prometheus' AppendExemplar: written to the WAL in the commit's write after
 * the samples, added to the exemplar store then.  0 (also when exemplar
 * storage is off: nothing is kept); KILN_EEXIST when it repeats the series'
 * newest (a no-op); KILN_EORDER when not after it; KILN_EINVAL for labels
 * over 128 code points or an unknown ref; KILN_ENOMEM.
 */
KILN_MUST_CHECK int appender_append_exemplar(appender *a, uint64_t ref, const exemplar *e, kiln_err *err);

/* Keeps the newest `max` exemplars (a reload changed max_exemplars); 0 turns
 * storing off.  0 or KILN_ENOMEM (the store is then unchanged). */
KILN_MUST_CHECK int exemplar_store_resize(exemplar_store *es, size_t max);

/* Exemplars held, and (nseries not NULL) series that have some. */
size_t exemplar_store_size(exemplar_store *es, size_t *nseries);

/* Called once per series with exemplars in the range, oldest first; a
 * non-zero return stops the select and is returned. */
typedef int (*exemplar_series_fn)(void *ctx, const label *ls, size_t n, const exemplar *ex, size_t nex);

/* The exemplars in [mint, maxt] of the series matching any of sets. */
KILN_MUST_CHECK int exemplar_select(exemplar_store *es, int64_t mint, int64_t maxt,
                                    const exemplar_matchers *sets, size_t nsets, exemplar_series_fn fn,
                                    void *ctx);

#endif
