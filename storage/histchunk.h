/*
 * histchunk.h - Prometheus' histogram and float-histogram chunks (private to
 * storage/), bit-exact with tsdb/chunkenc's EncHistogram (2) and
 * EncFloatHistogram (3) so blocks and chunks_head hold the bytes Prometheus
 * writes.
 *
 *   | num_samples BE16 | flags byte | zero_threshold 1 or 9 bytes |
 *   | schema varbit_int | positive spans | negative spans |
 *   | custom bounds (schema -53 only) | samples ... | padding to a byte |
 *
 * flags' top two bits: 10 counter reset before this chunk, 01 none, 00
 * unknown, 11 gauge histogram.  Spans: varbit_uint count, then per span
 * varbit_uint length and varbit_int offset.  The zero threshold is one byte
 * 0 for 0, one byte 1..254 for a power of two 2^-243..2^10 (exp + 243 of
 * frexp), else 255 and the float64.
 *
 * varbit_int / varbit_uint: prefix 0 (the value 0), 10 + 3 bits, 110 + 6,
 * 1110 + 9, 11110 + 12, 111110 + 18, 1111110 + 25, 11111110 + 56,
 * 11111111 + 64; a signed n-bit field holds -(2^(n-1) - 1) .. 2^(n-1).
 *
 * Integer samples (buckets as deltas from the bucket before, the first of
 * each side absolute):
 *   first:  t varbit_int | count varbit_uint | zero_count varbit_uint |
 *           sum float64 | each bucket varbit_int
 *   later:  t dod | count dod | zero_count dod (varbit_int) | sum XOR (as
 *           the XOR chunk's value) | each bucket's delta-of-delta
 * Float samples:
 *   first:  t varbit_int | count, zero_count, sum, each bucket float64
 *   later:  t dod varbit_int | count, zero_count, sum, each bucket XOR
 *           against its own previous value, each with its own window
 * A stale marker (sum = stale NaN) writes no buckets; only stale markers
 * may follow one in a chunk.
 *
 * A chunk's layout (schema, zero threshold, spans, bounds) is its first
 * sample's; histchunk_appendable says whether a histogram fits, needs the
 * chunk recoded to more buckets first, or needs a new chunk (and whether
 * that is a counter reset), as Prometheus' Appendable/AppendableGauge do.
 *
 * Threading: none; the caller locks.
 */
#ifndef KILN_STORAGE_HISTCHUNK_H
#define KILN_STORAGE_HISTCHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "storage/storage.h"

#define HISTCHUNK_ENC_INT 2   /* chunkenc.EncHistogram */
#define HISTCHUNK_ENC_FLOAT 3 /* chunkenc.EncFloatHistogram */

/* The counter-reset bits of the flags byte (byte 2). */
enum {
    HISTCHUNK_UNKNOWN = 0x00,
    HISTCHUNK_RESET = 0x80,
    HISTCHUNK_NOT_RESET = 0x40,
    HISTCHUNK_GAUGE = 0xc0,
};

/* A value XOR-encoded against its previous one, with its window. */
typedef struct histchunk_xor {
    double v;
    uint8_t leading, trailing;
} histchunk_xor;

typedef struct histchunk {
    uint8_t *b; /* header + bit stream, zero beyond nbits */
    uint32_t cap, nbits;
    uint16_t count;
    uint8_t is_float;
    uint8_t leading, trailing; /* integer chunks: the sum's window */
    int32_t schema;
    double zthresh;
    hist_span *spans; /* npspans positive, then nnspans negative */
    uint32_t npspans, nnspans;
    uint32_t npb, nnb; /* buckets of each side */
    double *custom;
    uint32_t ncustom;
    int64_t t, tdelta;
    /* integer chunks */
    int64_t cnt, zcnt, cntdelta, zcntdelta;
    double sum;
    int64_t *ib; /* npb + nnb delta-coded bucket values, then their deltas */
    /* float chunks */
    histchunk_xor fcnt, fzcnt, fsum;
    histchunk_xor *fb; /* npb + nnb */
} histchunk;

/* An empty chunk of the kind (allocates nothing). */
void histchunk_init(histchunk *c, int is_float);
void histchunk_free(histchunk *c);

enum {
    HISTCHUNK_APPEND = 0,    /* fits the chunk as it is */
    HISTCHUNK_RECODE = 1,    /* fits once the chunk is recoded to its buckets (histchunk_recode) */
    HISTCHUNK_CUT = 2,       /* needs a new chunk (layout changed, or a gauge/counter switch) */
    HISTCHUNK_CUT_RESET = 3, /* needs a new chunk: a counter reset */
};

/* Whether h (valid, of the chunk's kind) can follow the chunk's last sample
 * (see above).  An empty chunk takes anything. */
int histchunk_appendable(const histchunk *c, const histogram *h);

/*
 * Re-encodes the chunk's samples on the layout h needs: h's spans for a
 * counter histogram (a superset of the chunk's), the union of both for a
 * gauge.  The flags byte is kept.  0, KILN_ENOMEM or KILN_ECORRUPT (the
 * chunk unchanged then).
 */
KILN_MUST_CHECK int histchunk_recode(histchunk *c, const histogram *h);

/*
 * Appends (t, h): t after the last sample; h's layout the chunk's (or any,
 * for the first sample or a stale marker), else h's counts are moved onto
 * the chunk's buckets (a gauge after histchunk_recode).  0, KILN_ENOMEM or
 * KILN_EINVAL (h's buckets do not fit the layout); the chunk is unchanged on
 * error.
 */
KILN_MUST_CHECK int histchunk_append(histchunk *c, int64_t t, const histogram *h);

/* The counter-reset bits of a new chunk starting with h: gauge for a gauge
 * histogram, else from the verdict on the chunk before (had: one of h's kind
 * was there): reset after HISTCHUNK_CUT_RESET, not-reset after a cut of a
 * chunk h fitted (full), unknown otherwise. */
uint8_t histchunk_new_header(const histogram *h, int verdict, int had);

/* The flags byte's counter-reset bits (HISTCHUNK_*), set on the first sample's chunk. */
void histchunk_set_header(histchunk *c, uint8_t bits);
uint8_t histchunk_header(const histchunk *c);

/* Whether h equals the last sample (the duplicate check); 0 when empty. */
int histchunk_last_equal(const histchunk *c, const histogram *h);
/* Whether the last sample is a stale marker. */
int histchunk_last_stale(const histchunk *c);

/* The encoded bytes (borrowed); NULL/0 when empty. */
const uint8_t *histchunk_data(const histchunk *c, size_t *len);
/* Trims the allocation to the encoded size; 0 or KILN_ENOMEM. */
KILN_MUST_CHECK int histchunk_shrink(histchunk *c);
/* Bytes held (the encoding, the layout and the encoder's state). */
size_t histchunk_mem(const histchunk *c);

/* Rebuilds a chunk from encoded bytes so appending can continue (samples
 * re-appended: the bytes come out the same).  KILN_ECORRUPT, KILN_ENOMEM. */
KILN_MUST_CHECK int histchunk_load(histchunk *c, int is_float, const uint8_t *b, size_t len);

/* An iterator over encoded bytes (borrowed for its life). */
typedef struct histiter {
    const uint8_t *b;
    size_t len, pos; /* bytes; bit position */
    uint16_t total, read;
    uint8_t is_float, header;
    uint8_t leading, trailing;
    int32_t schema;
    double zthresh;
    hist_span *spans;
    uint32_t npspans, nnspans, npb, nnb;
    double *custom;
    uint32_t ncustom;
    int64_t t, tdelta;
    int64_t cnt, zcnt, cntdelta, zcntdelta;
    histchunk_xor fcnt, fzcnt, fsum;
    int64_t *ib;
    histchunk_xor *fb;
    double *abs; /* the current sample's absolute bucket counts */
    histogram h; /* the current sample; its arrays are the iterator's */
} histiter;

void histiter_init(histiter *it, const uint8_t *b, size_t len, int is_float);
/* 1: the next sample is in it->t / it->h (its hint set as Prometheus'
 * iterator sets it: the chunk's for the first sample, not-reset after, gauge
 * throughout a gauge chunk); 0: the end; KILN_ECORRUPT on bad bytes (never
 * reads outside them); KILN_ENOMEM. */
KILN_MUST_CHECK int histiter_next(histiter *it);
void histiter_free(histiter *it);

/* Decodes the samples of encoded bytes within [mint, maxt] into
 * dst[*n..cap), each histogram copied into a.  0, KILN_ECORRUPT, KILN_ENOMEM. */
KILN_MUST_CHECK int histchunk_fill(const uint8_t *d, size_t len, int is_float, int64_t mint, int64_t maxt,
                                   arena *a, hsample *dst, size_t cap, size_t *n);

#endif
