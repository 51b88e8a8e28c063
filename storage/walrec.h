/*
 * walrec.h - encoding and decoding of the records kiln writes into its WAL,
 * byte for byte the record types of Prometheus' TSDB (tsdb/record).
 *
 * A record is an opaque byte slice to the WAL layer (storage/wal.h); its first
 * byte names its type.  This file knows the types and their payloads.  It
 * depends on util and storage.h's histogram type only: labels are plain (pointer, length) pairs of its own
 * type, so the head can hand over whatever label storage it has.
 *
 * Integers: "BE64" is 8 bytes big-endian; "uvarint" is LEB128 (Go's
 * binary.Uvarint, at most 10 bytes); "varint" is the zig-zag signed form
 * (Go's binary.Varint); strings are uvarint length + bytes.
 *
 *   type 1 series      | 0x01 | { ref BE64 | nlabels uvarint | (name str, value str) x nlabels } ...
 *   type 2 samples     | 0x02 | ref0 BE64 | t0 BE64 | { dref varint | dt varint | value BE64 } ...
 *                        (every sample, the first included, as deltas from ref0/t0; value is the
 *                        IEEE 754 bit pattern)
 *   type 3 tombstones  | 0x03 | { ref BE64 | mint varint | maxt varint } ...  (one entry an interval)
 *   type 4 exemplars   | 0x04 | ref0 BE64 | t0 BE64 | { dref varint | dt varint | value BE64 |
 *                        nlabels uvarint | (name str, value str) x nlabels } ...
 *   type 7 histograms  | 0x07 | ref0 BE64 | t0 BE64 | { dref varint | dt varint | hint byte | schema varint |
 *                        zero_threshold BE64 | zero_count uvarint | count uvarint | sum BE64 |
 *                        npos_spans uvarint | (offset varint, length uvarint) ... | the negative
 *                        spans alike | npos uvarint | bucket deltas varint ... | the negative
 *                        buckets alike } ...
 *   type 8 float histograms: type 7 with zero_count, count and each bucket's absolute count BE64
 *   types 9, 10: types 7, 8 of schema -53 with | ncustom uvarint | bound BE64 ... | at the end
 *                        (hint: the counter-reset hint, 0 unknown .. 3 gauge)
 *   type 5 mmap markers, 6 metadata: recognised; metadata records can be filtered (for
 *   checkpoints) without being decoded into structs.
 *
 * An empty series/samples/tombstones record (type byte alone) is valid and holds nothing.
 *
 * Decoders check every bound and fail with KILN_ECORRUPT and a message naming
 * the record type and the byte offset.  Decoded labels point into the record
 * bytes (zero copy): the record must outlive them.
 *
 * Threading: no state; every function is safe from any thread.
 */
#ifndef KILN_STORAGE_WALREC_H
#define KILN_STORAGE_WALREC_H

#include <stddef.h>
#include <stdint.h>

#include "storage/storage.h"
#include "util/util.h"

enum {
    WALREC_UNKNOWN = 0, /* empty record or a type byte this file does not know */
    WALREC_SERIES = 1,
    WALREC_SAMPLES = 2,
    WALREC_TOMBSTONES = 3,
    WALREC_EXEMPLARS = 4,
    WALREC_MMAP_MARKERS = 5,
    WALREC_METADATA = 6,
    WALREC_HISTOGRAM_SAMPLES = 7,
    WALREC_FLOAT_HISTOGRAM_SAMPLES = 8,
    WALREC_CUSTOM_BUCKETS_HISTOGRAM_SAMPLES = 9,
    WALREC_CUSTOM_BUCKETS_FLOAT_HISTOGRAM_SAMPLES = 10,
};

/* One label.  Not NUL-terminated; the bytes are borrowed. */
typedef struct walrec_label {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} walrec_label;

typedef struct walrec_series {
    uint64_t ref;
    const walrec_label *labels; /* sorted by name, as Prometheus writes them */
    size_t nlabels;
} walrec_series;

typedef struct walrec_sample {
    uint64_t ref;
    int64_t t; /* milliseconds */
    double v;
} walrec_sample;

typedef struct walrec_tombstone {
    uint64_t ref;
    int64_t mint, maxt; /* closed interval of deleted time */
} walrec_tombstone;

typedef struct walrec_exemplar {
    uint64_t ref;
    int64_t t;
    double v;
    const walrec_label *labels;
    size_t nlabels;
} walrec_exemplar;

/* A native histogram sample (types 7-10). */
typedef struct walrec_histogram {
    uint64_t ref;
    int64_t t;
    histogram h;
} walrec_histogram;

/* The type of a record (its first byte) when it is one of the known types
 * 1..10, else WALREC_UNKNOWN (also for an empty record). */
int walrec_type(const void *rec, size_t len);

/* A constant name for a type ("series", "samples", ...; "unknown"). */
const char *walrec_type_name(int type);

/*
 * Encoders: each appends one complete record (type byte first) to `out`; the
 * caller resets `out` between records it logs separately.  They return 0 or
 * KILN_ENOMEM (out then holds a partial record: reset it).  The inputs are
 * only read.
 */
KILN_MUST_CHECK int walrec_encode_series(buf *out, const walrec_series *s, size_t n);
KILN_MUST_CHECK int walrec_encode_samples(buf *out, const walrec_sample *s, size_t n);
KILN_MUST_CHECK int walrec_encode_tombstones(buf *out, const walrec_tombstone *t, size_t n);
KILN_MUST_CHECK int walrec_encode_exemplars(buf *out, const walrec_exemplar *e, size_t n);
/* Histograms of one record type (walrec_histogram_type of each). */
KILN_MUST_CHECK int walrec_encode_histograms(buf *out, const walrec_histogram *h, size_t n, int type);
/* The record type a histogram goes in: 7 integer, 8 float, 9/10 those of schema -53. */
int walrec_histogram_type(const histogram *h);

/*
 * Series decoder.  Parses a type 1 record; the series array and each label
 * array come from `a` (freed with the arena), the label bytes point into
 * `rec`.  Returns 0 with *out and *n set, KILN_ECORRUPT (message with offset),
 * or KILN_ENOMEM when the arena is exhausted.
 */
KILN_MUST_CHECK int walrec_decode_series(const void *rec, size_t len, arena *a, walrec_series **out,
                                         size_t *n, kiln_err *err);

/* Upper bounds on the entries a samples / tombstones record of `len` bytes
 * can hold: size the caller's array with them. */
size_t walrec_samples_max(size_t len);
size_t walrec_tombstones_max(size_t len);

/*
 * Samples decoder: writes the samples of a type 2 record into the caller's
 * array out[0..cap).  Returns 0 with *n set, KILN_ERANGE when cap is too small
 * (cap >= walrec_samples_max(len) never is), or KILN_ECORRUPT.  This is the
 * replay hot path: no allocation.
 */
KILN_MUST_CHECK int walrec_decode_samples(const void *rec, size_t len, walrec_sample *out, size_t cap,
                                          size_t *n, kiln_err *err);

/* Tombstones decoder, like walrec_decode_samples for a type 3 record. */
KILN_MUST_CHECK int walrec_decode_tombstones(const void *rec, size_t len, walrec_tombstone *out, size_t cap,
                                             size_t *n, kiln_err *err);

/* Histograms decoder (types 7-10): entries and their arrays from `a`
 * (integer buckets made absolute). */
KILN_MUST_CHECK int walrec_decode_histograms(const void *rec, size_t len, arena *a, walrec_histogram **out,
                                             size_t *n, kiln_err *err);

/* Exemplars decoder, like walrec_decode_series: arrays from `a`, label
 * bytes borrowed from `rec`. */
KILN_MUST_CHECK int walrec_decode_exemplars(const void *rec, size_t len, arena *a, walrec_exemplar **out,
                                            size_t *n, kiln_err *err);

/*
 * Checkpoint filters for the types kiln does not decode into structs.  Each
 * parses the record of its type, appends to `out` a record of the same type
 * holding only the kept entries (entries are re-based, not re-encoded), and
 * adds to *kept and *dropped (either may be NULL).  When nothing is kept `out`
 * is left unchanged.  Return 0, KILN_ECORRUPT or KILN_ENOMEM.
 */
/* Metadata (type 6): keeps the entries whose series keep(ref, data) accepts. */
KILN_MUST_CHECK int walrec_filter_metadata(const void *rec, size_t len, int (*keep)(uint64_t ref, void *data),
                                           void *data, buf *out, uint64_t *kept, uint64_t *dropped,
                                           kiln_err *err);
/* Native histograms (types 7-10): keeps the entries with t >= mint. */
KILN_MUST_CHECK int walrec_filter_histograms(const void *rec, size_t len, int64_t mint, buf *out,
                                             uint64_t *kept, uint64_t *dropped, kiln_err *err);

/* Varint helpers shared with tombstones.c, blockwriter.c and the tests.  put_* return the
 * bytes written (buffers need 10); get_* return the bytes read, 0 when the
 * input ends or the value overflows 64 bits. */
size_t walrec_put_uvarint(uint8_t *p, uint64_t v);
size_t walrec_put_varint(uint8_t *p, int64_t v);
size_t walrec_get_uvarint(const uint8_t *p, size_t n, uint64_t *v);
size_t walrec_get_varint(const uint8_t *p, size_t n, int64_t *v);

#endif
