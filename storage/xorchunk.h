/*
 * xorchunk.h - Prometheus' XOR float chunk (private to storage/), bit-exact
 * with tsdb/chunkenc's XOR encoding so blocks and head chunk files hold the
 * same bytes Prometheus writes.
 *
 *   | num_samples uint16 BE | t0 varint | v0 64 bits | t1-t0 uvarint | v1 xor |
 *   | dod2 varbit | v2 xor | ... | padding to a byte |
 *
 * Bits are written most significant first.  Delta-of-delta of timestamps:
 *   0                  '0'
 *   [-8191, 8192]      '10'   + 14 bits
 *   [-65535, 65536]    '110'  + 17 bits
 *   [-524287, 524288]  '1110' + 20 bits
 *   otherwise          '1111' + 64 bits
 * Value XOR with the previous value:
 *   0                  '0'
 *   fits the window    '10' + (64 - leading - trailing) bits
 *   new window         '11' + leading (5 bits, at most 31) + sigbits (6 bits, 64 as 0) + bits
 *
 * An open chunk grows its byte array geometrically from 32 bytes (by half,
 * then by an eighth past 256); xorchunk_shrink trims it when the chunk is
 * full, xorchunk_fit while it is still open.
 *
 * Threading: none; the caller locks.
 */
#ifndef KILN_STORAGE_XORCHUNK_H
#define KILN_STORAGE_XORCHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

typedef struct xorchunk {
    uint8_t *b;     /* header + bit stream, zero beyond nbits */
    uint32_t cap;   /* bytes allocated */
    uint32_t nbits; /* bits written, the 16 header bits included */
    int64_t t;      /* last sample */
    uint64_t v;     /* its value's bits; kept when the chunk is emptied (reuse, free) */
    uint64_t tdelta;
    uint16_t count;
    uint8_t leading, trailing;
    uint8_t slabbed; /* its bytes come from slab_alloc */
} xorchunk;

/* An empty chunk; allocates nothing. */
void xorchunk_init(xorchunk *c);
/* Makes an empty chunk take its bytes from the slab allocator (util.h), for
 * chunks that live long and in numbers: the head's. */
void xorchunk_use_slab(xorchunk *c);
/* Appends a sample (t must be greater than the last one: the caller checks).
 * 0 or KILN_ENOMEM (the chunk is unchanged then). */
KILN_MUST_CHECK int xorchunk_append(xorchunk *c, int64_t t, double v);
struct sample;
/* Appends samples from v[0..n) to a chunk of two samples or more while
 * their times ascend, stay before `until`, and the chunk holds fewer than
 * `upto`: a run of one series' samples in a loop that keeps the chunk in
 * registers.  Returns how many it appended (0 when the chunk has fewer than
 * two, or out of memory: xorchunk_append then tells). */
int xorchunk_append_run(xorchunk *c, const struct sample *v, size_t n, int64_t until, unsigned upto);
/* Allocates `bytes` up front for an empty chunk (a hint: e.g. the size of
 * the series' previous chunk), sparing the growth steps.  Out of memory, it
 * does nothing: the appends grow the chunk, and report the failure. */
void xorchunk_presize(xorchunk *c, size_t bytes);
/* Grows the buffer once to hold about `total` samples at the rate of the
 * samples so far (needs two at least; else does nothing), so a chunk does not
 * grow by many small reallocations.  A hint like xorchunk_presize: out of
 * memory, it does nothing. */
void xorchunk_expect(xorchunk *c, unsigned total);
static inline uint16_t xorchunk_count(const xorchunk *c) {
    return c->count;
}
/* The time of the first sample, read from the bytes; INT64_MIN when empty. */
int64_t xorchunk_first_time(const xorchunk *c);
/* The encoded bytes (header included), borrowed; NULL/0 when empty. */
const uint8_t *xorchunk_data(const xorchunk *c, size_t *len);
/* Trims the allocation to the encoded size; 0 or KILN_ENOMEM. */
KILN_MUST_CHECK int xorchunk_shrink(xorchunk *c);
/* Trims the allocation of a chunk still being appended to, to its encoded
 * bytes and the few spare ones appending needs (memory after a replay: the
 * next samples grow it by what they need).  0 or KILN_ENOMEM (unchanged). */
KILN_MUST_CHECK int xorchunk_fit(xorchunk *c);
/* Empties the chunk for new samples.  Its bytes are kept when their size
 * suits a chunk of `want` bytes (an eighth less to a quarter more), and
 * freed otherwise: chunks of many series are cut at the same moment, and
 * freeing them all to allocate them again scatters their memory. */
void xorchunk_reuse(xorchunk *c, size_t want);
/* Frees the bytes: the chunk is empty again, and keeps using the slab
 * allocator if it did.  Like xorchunk_reuse it keeps c->v, the last value's
 * bits, for an owner that checks the next sample against it (the head). */
void xorchunk_free(xorchunk *c);
/* Rebuilds a chunk from encoded bytes so appending can continue; copies
 * them.  KILN_ECORRUPT (with a message) on bad bytes, KILN_ENOMEM. */
KILN_MUST_CHECK int xorchunk_load(xorchunk *c, const uint8_t *b, size_t len, kiln_err *err);

typedef struct xoriter {
    const uint8_t *b;
    size_t len; /* bytes */
    size_t pos; /* bit position */
    uint16_t total, read;
    uint8_t leading, trailing;
    uint8_t window; /* a leading/trailing window was read */
    int cur;        /* a sample is in t/v */
    uint64_t tdelta;
    uint64_t vbits;
    int64_t t;
    double v;
} xoriter;

/* Starts iterating encoded bytes (borrowed for the iterator's life). */
void xoriter_init(xoriter *it, const uint8_t *b, size_t len);
/* 1: the next sample is in it->t / it->v; 0: the end; KILN_ECORRUPT: bad
 * bytes (never reads outside b[0..len)). */
KILN_MUST_CHECK int xoriter_next(xoriter *it);
/* Moves to the first sample with t >= t (staying put when the current one
 * qualifies); same results as xoriter_next. */
KILN_MUST_CHECK int xoriter_seek(xoriter *it, int64_t t);

#endif
