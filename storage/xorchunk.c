/*
 * xorchunk.c - Prometheus' XOR float chunk encoder and iterator (format in
 * xorchunk.h).
 *
 * The writer keeps the unused tail of the byte array zeroed and ORs bits in;
 * the reader loads 64 bits at a time when 8 bytes remain and falls back to a
 * bounds-checked byte loop at the end of the chunk.
 *
 * Called by the head (appends, the replay's runs of samples, queries of open
 * chunks), by block.c and the storage's querier (iterating chunks read from
 * blocks and chunks_head) and by tombstones.c (chunks re-encoded without
 * deleted samples).
 *
 * Threading: none; the caller locks.
 */
#include "storage/xorchunk.h"

#include "storage/storage.h"

#include <stdlib.h>
#include <string.h>

#include "util/endian.h"

#define INITIAL_CAP 32

void xorchunk_init(xorchunk *c) {
    memset(c, 0, sizeof *c);
    c->leading = 0xff;
}

void xorchunk_use_slab(xorchunk *c) {
    c->slabbed = 1;
}

void xorchunk_free(xorchunk *c) {
    uint8_t slabbed = c->slabbed;
    uint64_t v = c->v;
    if (slabbed)
        slab_free(c->b, c->cap);
    else
        free(c->b);
    xorchunk_init(c);
    c->slabbed = slabbed;
    c->v = v;
}

/* Moves the bytes to an allocation of n bytes, zero beyond the old ones; 0 or
 * KILN_ENOMEM (the chunk unchanged). */
static int set_cap(xorchunk *c, size_t n) {
    uint8_t *nb = c->slabbed ? slab_realloc(c->b, c->cap, n) : realloc(c->b, n);
    if (!nb)
        return KILN_ENOMEM;
    if (n > c->cap)
        memset(nb + c->cap, 0, n - c->cap);
    c->b = nb;
    c->cap = (uint32_t)n;
    return 0;
}

void xorchunk_reuse(xorchunk *c, size_t want) {
    if (!c->b || c->cap < want - want / 8 || c->cap > want + want / 4) {
        xorchunk_free(c);
        return;
    }
    uint8_t *b = c->b;
    uint32_t cap = c->cap;
    uint8_t slabbed = c->slabbed;
    uint64_t v = c->v;
    memset(b, 0, (c->nbits + 7) / 8);
    xorchunk_init(c);
    c->b = b;
    c->cap = cap;
    c->slabbed = slabbed;
    c->v = v;
}

int64_t xorchunk_first_time(const xorchunk *c) {
    if (!c->count)
        return INT64_MIN;
    /* the zigzag varint after the 16-bit count, byte-aligned */
    uint64_t zz = 0;
    for (uint32_t i = 2, shift = 0; i < c->cap && shift < 64; i++, shift += 7) {
        zz |= (uint64_t)(c->b[i] & 0x7f) << shift;
        if (!(c->b[i] & 0x80))
            break;
    }
    return (int64_t)(zz >> 1) ^ -(int64_t)(zz & 1);
}

const uint8_t *xorchunk_data(const xorchunk *c, size_t *len) {
    *len = c->count ? (c->nbits + 7) / 8 : 0;
    return c->count ? c->b : NULL;
}

int xorchunk_shrink(xorchunk *c) {
    size_t len = (c->nbits + 7) / 8;
    if (!c->b || len == c->cap)
        return 0;
    return set_cap(c, len);
}

int xorchunk_fit(xorchunk *c) {
    if (!c->b || !c->count)
        return 0;
    size_t n = (c->nbits + 7) / 8 + 9; /* put_bits' spare bytes, as has_room counts them */
    if (c->slabbed)
        n = slab_size(n); /* the slab's grain is the chunk's either way */
    if (n >= c->cap)
        return 0;
    return set_cap(c, n);
}

void xorchunk_presize(xorchunk *c, size_t bytes) {
    if (c->b || bytes == 0)
        return;
    if (bytes > 65536)
        bytes = 65536;
    /* a hint only: out of memory, the first append grows the chunk and reports it */
    (void)set_cap(c, bytes);
}

/* Whether `bits` more bits fit: put_bits touches up to 9 bytes past the end. */
static inline int has_room(const xorchunk *c, uint32_t bits) {
    return (c->nbits + bits + 7) / 8 + 9 <= c->cap;
}

/* Room for `bits` more bits (at most 64 + 77 per sample). */
KILN_MUST_CHECK static int reserve(xorchunk *c, uint32_t bits) {
    if (has_room(c, bits))
        return 0;
    size_t need = (c->nbits + bits + 7) / 8 + 9;
    /* by half while small, then by an eighth: a chunk trimmed by xorchunk_fit
     * (or presized a little short) grows back by what its next samples need,
     * not by half its size */
    size_t nc = c->cap ? c->cap : INITIAL_CAP;
    while (nc < need)
        nc += (nc < 256 ? nc / 2 : nc / 8) + 8;
    if (nc > UINT32_MAX)
        return KILN_ENOMEM;
    return set_cap(c, nc);
}

void xorchunk_expect(xorchunk *c, unsigned total) {
    if (c->count < 2 || total <= c->count)
        return;
    /* the first sample is a varint time and 64 bits of value after the 16-bit count */
    uint32_t first = 16 + 64, k = 2;
    while (k < c->cap && (c->b[k] & 0x80)) {
        first += 8;
        k++;
    }
    first += 8;
    if (c->nbits <= first)
        return;
    uint64_t per = (c->nbits - first + c->count - 2) / (c->count - 1);
    uint64_t bits = (uint64_t)c->nbits + per * (total - c->count);
    uint64_t bytes = (bits + 7) / 8 + bits / 64 + 16; /* a little more for varying samples */
    if (bytes > 65536)
        bytes = 65536;
    if (bytes <= c->cap)
        return;
    /* a hint only: out of memory, the chunk grows step by step and an append reports it */
    (void)set_cap(c, (size_t)bytes);
}

/* Writes the low n bits of v (1 <= n <= 64), most significant first, with
 * a one-byte read and a 64-bit write (and a byte more at most); reserve()
 * keeps 9 spare bytes. */
static inline void put_bits(xorchunk *c, uint64_t v, int n) {
    if (n < 64)
        v &= (1ULL << n) - 1;
    uint8_t *p = c->b + (c->nbits >> 3);
    int off = (int)(c->nbits & 7), total = off + n;
    /* Only the first byte holds bits already (the bytes past nbits are zero).
     * Reading just it, not the 8 bytes around it, matters: the last write
     * covered this byte at another offset, and a load overlapping a store
     * only partly waits for that store to reach the cache. */
    uint64_t first = (uint64_t)p[0] << 56;
    if (total <= 64) {
        be64_put(p, first | v << (64 - total));
    } else {
        int low = total - 64; /* 1..7 bits into the ninth byte */
        be64_put(p, first | v >> low);
        p[8] = (uint8_t)(v << (8 - low));
    }
    c->nbits += (uint32_t)n;
}

static void put_uvarint(xorchunk *c, uint64_t x) {
    while (x >= 0x80) {
        put_bits(c, (x & 0x7f) | 0x80, 8);
        x >>= 7;
    }
    put_bits(c, x, 8);
}

static int fits(int64_t x, int nbits) {
    int64_t lim = (int64_t)1 << (nbits - 1);
    return -(lim - 1) <= x && x <= lim;
}

/* Up to 64 bits to write: the low n of v. */
typedef struct xbits {
    uint64_t v;
    int n;
} xbits;

static inline xbits mask_bits(uint64_t v, int n) {
    return (xbits){n < 64 ? v & ((1ULL << n) - 1) : v, n};
}

/* Writes a then b, as one write when they fit 64 bits together. */
static inline void put2(xorchunk *c, xbits a, xbits b) {
    if (a.n + b.n <= 64) {
        put_bits(c, b.n < 64 ? a.v << b.n | b.v : b.v, a.n + b.n);
    } else {
        put_bits(c, a.v, a.n);
        put_bits(c, b.v, b.n);
    }
}

/*
 * The value part of a sample after the second: '0' for the same value;
 * '10' and the XOR's meaningful bits in the previous window; '11', 5 bits of
 * leading zeros, 6 of length and the meaningful bits in a new window.  The
 * time part `tb` (delta of delta) goes in front; as one write when it all
 * fits 64 bits, which it mostly does.
 */
static inline void put_value(xorchunk *c, xbits tb, uint64_t vbits) {
    uint64_t delta = vbits ^ c->v;
    if (delta == 0) {
        put2(c, tb, (xbits){0, 1});
        return;
    }
    uint8_t lead = (uint8_t)__builtin_clzll(delta), trail = (uint8_t)__builtin_ctzll(delta);
    if (lead >= 32)
        lead = 31;
    if (c->leading != 0xff && lead >= c->leading && trail >= c->trailing) {
        int sig = 64 - c->leading - c->trailing;
        if (sig <= 62) {
            put2(c, tb, mask_bits(2ULL << sig | delta >> c->trailing, sig + 2));
        } else {
            put2(c, tb, (xbits){2, 2});
            put_bits(c, delta >> c->trailing, sig);
        }
        return;
    }
    c->leading = lead;
    c->trailing = trail;
    int sig = 64 - lead - trail;
    /* '11', 5 bits of leading zeros, 6 of length (64 is written as 0) */
    uint64_t head = 3ULL << 11 | (uint64_t)lead << 6 | ((uint64_t)sig & 63);
    if (sig <= 51) {
        put2(c, tb, mask_bits(head << sig | delta >> trail, 13 + sig));
    } else {
        put2(c, tb, (xbits){head, 13});
        put_bits(c, delta >> trail, sig);
    }
}

/* A sample after the second: the delta of delta of its time, then its value.
 * Room reserved; the header's count is the caller's to write. */
static inline void append_steady(xorchunk *c, int64_t t, uint64_t vbits) {
    uint64_t tdelta = (uint64_t)t - (uint64_t)c->t;
    int64_t dod = (int64_t)(tdelta - c->tdelta);
    xbits tb;
    if (dod == 0) {
        tb = (xbits){0, 1};
    } else if (fits(dod, 14)) {
        tb = mask_bits(0x2ULL << 14 | ((uint64_t)dod & 0x3fff), 16);
    } else if (fits(dod, 17)) {
        tb = mask_bits(0x6ULL << 17 | ((uint64_t)dod & 0x1ffff), 20);
    } else if (fits(dod, 20)) {
        tb = mask_bits(0xeULL << 20 | ((uint64_t)dod & 0xfffff), 24);
    } else {
        put_bits(c, 0xf, 4);
        put_bits(c, (uint64_t)dod, 64);
        tb = (xbits){0, 0};
    }
    put_value(c, tb, vbits);
    c->t = t;
    c->v = vbits;
    c->tdelta = tdelta;
    c->count++;
}

#define STEADY_BITS (68 + 77) /* a sample after the second takes this many at most */

int xorchunk_append(xorchunk *c, int64_t t, double v) {
    uint64_t vbits = double_to_bits(v);
    if (c->count == UINT16_MAX || reserve(c, c->count == 0 ? 16 + 80 + 64 : STEADY_BITS) != 0)
        return KILN_ENOMEM;
    if (c->count >= 2) {
        append_steady(c, t, vbits);
    } else if (c->count == 0) {
        c->nbits = 16;
        uint64_t zz = ((uint64_t)t << 1) ^ (uint64_t)(t >> 63);
        put_uvarint(c, zz);
        put_bits(c, vbits, 64);
        c->t = t;
        c->v = vbits;
        c->tdelta = 0;
        c->count = 1;
    } else {
        c->tdelta = (uint64_t)t - (uint64_t)c->t;
        put_uvarint(c, c->tdelta);
        put_value(c, (xbits){0, 0}, vbits);
        c->t = t;
        c->v = vbits;
        c->count = 2;
    }
    c->b[0] = (uint8_t)(c->count >> 8);
    c->b[1] = (uint8_t)c->count;
    return 0;
}

int xorchunk_append_run(xorchunk *c, const struct sample *v, size_t n, int64_t until, unsigned upto) {
    if (c->count < 2)
        return 0;
    if (upto > UINT16_MAX)
        upto = UINT16_MAX;
    /* on a copy, which the compiler keeps in registers: through c, each
     * write to the bytes would make it load the chunk's fields again */
    xorchunk w = *c;
    size_t i = 0;
    for (; i < n; i++) {
        int64_t t = v[i].t;
        if (t <= w.t || t >= until || w.count >= upto)
            break;
        if (!has_room(&w, STEADY_BITS)) {
            *c = w;
            if (reserve(c, STEADY_BITS) != 0)
                break; /* the caller's next append reports it */
            w = *c;
        }
        append_steady(&w, t, double_to_bits(v[i].v));
    }
    if (i) {
        w.b[0] = (uint8_t)(w.count >> 8);
        w.b[1] = (uint8_t)w.count;
    }
    *c = w;
    return (int)i;
}

/* ---- iterator ---------------------------------------------------------------- */

void xoriter_init(xoriter *it, const uint8_t *b, size_t len) {
    memset(it, 0, sizeof *it);
    it->b = b;
    it->len = len;
    if (len >= 2) {
        it->total = (uint16_t)(b[0] << 8 | b[1]);
        it->pos = 16;
    }
}

/* Reads n bits (1..64); -1 past the end. */
static inline int get_bits(xoriter *it, int n, uint64_t *out) {
    size_t pos = it->pos;
    if (pos + (size_t)n > it->len * 8)
        return -1;
    size_t byte = pos >> 3;
    unsigned off = pos & 7;
    if (byte + 8 <= it->len && off + (unsigned)n <= 64) {
        uint64_t w = be64_get(it->b + byte) << off;
        *out = w >> (64 - n);
        it->pos = pos + (size_t)n;
        return 0;
    }
    uint64_t r = 0;
    int left = n;
    while (left > 0) {
        unsigned o = pos & 7, avail = 8 - o;
        int take = left < (int)avail ? left : (int)avail;
        r = (r << take) | ((uint64_t)(it->b[pos >> 3] >> (avail - (unsigned)take)) & ((1u << take) - 1));
        pos += (size_t)take;
        left -= take;
    }
    it->pos = pos;
    *out = r;
    return 0;
}

static int get_uvarint(xoriter *it, uint64_t *out) {
    uint64_t x = 0, b;
    for (int i = 0, s = 0; i < 10; i++, s += 7) {
        if (get_bits(it, 8, &b) != 0)
            return -1;
        if (b < 0x80) {
            if (i == 9 && b > 1)
                return -1; /* overflow */
            *out = x | b << s;
            return 0;
        }
        x |= (b & 0x7f) << s;
    }
    return -1;
}

static int read_value(xoriter *it) {
    uint64_t bit, bits;
    if (get_bits(it, 1, &bit) != 0)
        return -1;
    if (bit == 0)
        return 0;
    if (get_bits(it, 1, &bit) != 0)
        return -1;
    if (bit == 1) {
        uint64_t lead, sig;
        if (get_bits(it, 5, &lead) != 0 || get_bits(it, 6, &sig) != 0)
            return -1;
        if (sig == 0)
            sig = 64;
        if (lead + sig > 64)
            return -1;
        it->leading = (uint8_t)lead;
        it->trailing = (uint8_t)(64 - lead - sig);
        it->window = 1;
    }
    int m = 64 - it->leading - it->trailing;
    if (m <= 0 || m > 64)
        return -1;
    if (get_bits(it, m, &bits) != 0)
        return -1;
    it->vbits ^= bits << it->trailing;
    return 0;
}

int xoriter_next(xoriter *it) {
    if (it->read >= it->total)
        return (it->cur = 0);
    if (it->read == 0) {
        uint64_t zz;
        if (get_uvarint(it, &zz) != 0 || get_bits(it, 64, &it->vbits) != 0)
            goto corrupt;
        it->t = (int64_t)(zz >> 1) ^ -(int64_t)(zz & 1);
    } else if (it->read == 1) {
        if (get_uvarint(it, &it->tdelta) != 0)
            goto corrupt;
        it->t = (int64_t)((uint64_t)it->t + it->tdelta);
        if (read_value(it) != 0)
            goto corrupt;
    } else {
        uint64_t bit;
        int d = 0;
        for (int i = 0; i < 4; i++) {
            if (get_bits(it, 1, &bit) != 0)
                goto corrupt;
            d = d << 1 | (int)bit;
            if (!bit)
                break;
        }
        int sz = 0;
        int64_t dod = 0;
        switch (d) {
        case 0x0:
            break;
        case 0x2:
            sz = 14;
            break;
        case 0x6:
            sz = 17;
            break;
        case 0xe:
            sz = 20;
            break;
        default: {
            uint64_t b64;
            if (get_bits(it, 64, &b64) != 0)
                goto corrupt;
            dod = (int64_t)b64;
        }
        }
        if (sz) {
            uint64_t b;
            if (get_bits(it, sz, &b) != 0)
                goto corrupt;
            if (b > (1ULL << (sz - 1)))
                b -= 1ULL << sz;
            dod = (int64_t)b;
        }
        it->tdelta += (uint64_t)dod; /* wraps like Go's int64, no signed overflow */
        it->t = (int64_t)((uint64_t)it->t + it->tdelta);
        if (read_value(it) != 0)
            goto corrupt;
    }
    it->v = double_from_bits(it->vbits);
    it->read++;
    return (it->cur = 1);
corrupt:
    it->cur = 0;
    it->read = it->total; /* stay at the end */
    return KILN_ECORRUPT;
}

int xoriter_seek(xoriter *it, int64_t t) {
    if (it->cur && it->t >= t)
        return 1;
    for (;;) {
        int rc = xoriter_next(it);
        if (rc != 1 || it->t >= t)
            return rc;
    }
}

int xorchunk_load(xorchunk *c, const uint8_t *b, size_t len, kiln_err *err) {
    xoriter it;
    xoriter_init(&it, b, len);
    if (len < 2)
        return kiln_err_set(err, KILN_ECORRUPT, "chunk: %zu bytes, too short for a header", len);
    int rc;
    while ((rc = xoriter_next(&it)) == 1) {
    }
    if (rc < 0)
        return kiln_err_set(err, KILN_ECORRUPT, "chunk: corrupt after %u of %u samples", it.read, it.total);
    xorchunk_init(c);
    if (it.total == 0)
        return 0;
    size_t used = (it.pos + 7) / 8;
    if (!(c->b = calloc(1, used + 16)))
        return kiln_err_set(err, KILN_ENOMEM, "chunk: out of memory");
    memcpy(c->b, b, used);
    /* clear the padding bits after the last sample */
    if (it.pos & 7)
        c->b[used - 1] &= (uint8_t)(0xff << (8 - (it.pos & 7)));
    c->cap = (uint32_t)(used + 16);
    c->nbits = (uint32_t)it.pos;
    c->t = it.t;
    c->v = it.vbits;
    c->tdelta = it.tdelta;
    c->count = it.total;
    c->leading = it.window ? it.leading : 0xff;
    c->trailing = it.trailing;
    return 0;
}

/* ---- storage_xor_chunks (storage.h) -------------------------------------- */

int storage_xor_chunks(const sample *s, size_t n, unsigned per_chunk,
                       int (*fn)(void *data, int64_t mint, int64_t maxt, const uint8_t *b, size_t len),
                       void *data) {
    xorchunk c;
    xorchunk_init(&c);
    int rc = 0;
    if (per_chunk == 0)
        per_chunk = 120;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t first = i, stop = n - i > per_chunk ? i + per_chunk : n;
        for (; i < stop && rc == 0; i++)
            rc = xorchunk_append(&c, s[i].t, s[i].v);
        if (rc == 0) {
            size_t len;
            const uint8_t *b = xorchunk_data(&c, &len);
            rc = fn(data, s[first].t, s[i - 1].t, b, len);
        }
        xorchunk_reuse(&c, 0);
    }
    xorchunk_free(&c);
    return rc;
}

int storage_xor_decode(const uint8_t *b, size_t len, sample *out, size_t cap, size_t *n) {
    xoriter it;
    xoriter_init(&it, b, len);
    int rc;
    *n = 0;
    while ((rc = xoriter_next(&it)) == 1) {
        if (*n == cap)
            return KILN_ERANGE;
        out[(*n)++] = (sample){it.t, it.v};
    }
    return rc;
}

size_t storage_xor_count(const uint8_t *b, size_t len) {
    return len < 2 ? 0 : (size_t)b[0] << 8 | b[1];
}
