/*
 * histchunk.c - Prometheus' histogram and float-histogram chunk encoders
 * and iterator (format in histchunk.h).
 *
 * The writer reserves room for a whole sample before writing any of it, so
 * a failed allocation leaves the chunk as it was; the unused tail of the
 * byte array stays zeroed and bits are ORed in.  The reader checks every
 * read against the chunk's length.
 *
 * Recoding (new buckets in a counter histogram, or a gauge's buckets
 * coming and going) decodes the chunk and appends every sample again on
 * the wider layout: the bytes equal those of Prometheus' Recode, which
 * inserts zero buckets the same way.
 *
 * Called by the head (appends, queries of open chunks), the querier and
 * block reader (chunks from chunks_head and blocks), compaction.
 *
 * Threading: none; the caller locks.
 */
#include "storage/histchunk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"

#define HDR_BYTES 3
#define ITEM_BITS 80 /* an upper bound on one varbit or XOR-coded value */

/* ---- writing bits ------------------------------------------------------ */

KILN_MUST_CHECK static int reserve(histchunk *c, uint64_t bits) {
    uint64_t need = ((uint64_t)c->nbits + bits + 7) / 8 + 1;
    if (need <= c->cap)
        return 0;
    /* small steps: a series' open chunk is most of its memory, and half of a
     * geometric step's slack would be a sixth of it on average */
    uint64_t nc = c->cap + c->cap / 8 + 64;
    if (nc < need)
        nc = need + need / 8;
    if (nc > UINT32_MAX)
        return KILN_ENOMEM;
    uint8_t *nb = realloc(c->b, (size_t)nc);
    if (!nb)
        return KILN_ENOMEM;
    memset(nb + c->cap, 0, (size_t)nc - c->cap);
    c->b = nb;
    c->cap = (uint32_t)nc;
    return 0;
}

/* Writes the low n bits of v (1 <= n <= 64), most significant first. */
static void put_bits(histchunk *c, uint64_t v, int n) {
    while (n > 0) {
        int off = (int)(c->nbits & 7), room = 8 - off, take = n < room ? n : room;
        uint8_t bits = (uint8_t)((v >> (n - take)) & ((1u << take) - 1));
        c->b[c->nbits >> 3] |= (uint8_t)(bits << (room - take));
        c->nbits += (uint32_t)take;
        n -= take;
    }
}

/* The bucketing varbit_int and varbit_uint share: prefix ones, then sz bits. */
static const struct {
    uint8_t prefix, plen, sz;
} VARBIT[] = {{0x2, 2, 3},   {0x6, 3, 6},   {0xe, 4, 9},  {0x1e, 5, 12},
              {0x3e, 6, 18}, {0x7e, 7, 25}, {0xfe, 8, 56}};

static void put_varbit_int(histchunk *c, int64_t v) {
    if (v == 0) {
        put_bits(c, 0, 1);
        return;
    }
    for (size_t i = 0; i < sizeof VARBIT / sizeof *VARBIT; i++) {
        int64_t lim = (int64_t)1 << (VARBIT[i].sz - 1);
        if (-(lim - 1) <= v && v <= lim) {
            put_bits(c, VARBIT[i].prefix, VARBIT[i].plen);
            put_bits(c, (uint64_t)v, VARBIT[i].sz);
            return;
        }
    }
    put_bits(c, 0xff, 8);
    put_bits(c, (uint64_t)v, 64);
}

static void put_varbit_uint(histchunk *c, uint64_t v) {
    if (v == 0) {
        put_bits(c, 0, 1);
        return;
    }
    for (size_t i = 0; i < sizeof VARBIT / sizeof *VARBIT; i++) {
        if (v < (1ULL << VARBIT[i].sz)) {
            put_bits(c, VARBIT[i].prefix, VARBIT[i].plen);
            put_bits(c, v, VARBIT[i].sz);
            return;
        }
    }
    put_bits(c, 0xff, 8);
    put_bits(c, v, 64);
}

/* The XOR chunk's value encoding (xorWrite): '0' same; '10' + bits in the
 * old window; '11' + 5 bits leading + 6 bits length (64 as 0) + bits. */
static void put_xor(histchunk *c, double nv, histchunk_xor *x) {
    uint64_t delta = double_to_bits(nv) ^ double_to_bits(x->v);
    x->v = nv;
    if (delta == 0) {
        put_bits(c, 0, 1);
        return;
    }
    uint8_t lead = (uint8_t)__builtin_clzll(delta), trail = (uint8_t)__builtin_ctzll(delta);
    if (lead >= 32)
        lead = 31;
    if (x->leading != 0xff && lead >= x->leading && trail >= x->trailing) {
        put_bits(c, 2, 2);
        put_bits(c, delta >> x->trailing, 64 - x->leading - x->trailing);
        return;
    }
    x->leading = lead;
    x->trailing = trail;
    int sig = 64 - lead - trail;
    put_bits(c, 3, 2);
    put_bits(c, lead, 5);
    put_bits(c, (uint64_t)sig & 63, 6);
    put_bits(c, delta >> trail, sig);
}

static void put_zero_threshold(histchunk *c, double th) {
    int exp;
    double frac = frexp(th, &exp);
    if (th == 0) {
        put_bits(c, 0, 8);
    } else if (frac != 0.5 || exp < -242 || exp > 11) {
        put_bits(c, 255, 8);
        put_bits(c, double_to_bits(th), 64);
    } else {
        put_bits(c, (uint64_t)(exp + 243), 8);
    }
}

static void put_spans(histchunk *c, const hist_span *sp, uint32_t n) {
    put_varbit_uint(c, n);
    for (uint32_t i = 0; i < n; i++) {
        put_varbit_uint(c, sp[i].length);
        put_varbit_int(c, sp[i].offset);
    }
}

/* A custom bucket bound: y = x * 1000 as varbit_uint y + 1 when integral in
 * [0, 33554430], else varbit_uint 0 and the float64. */
static void put_custom_bound(histchunk *c, double x) {
    double y = x * 1000;
    if (y < 0 || y > 33554430 || floor(y) != y) {
        put_bits(c, 0, 1);
        put_bits(c, double_to_bits(x), 64);
        return;
    }
    put_varbit_uint(c, (uint64_t)y + 1);
}

/* ---- reading bits ------------------------------------------------------ */

KILN_MUST_CHECK static int get_bits(histiter *it, int n, uint64_t *out) {
    if (it->pos + (size_t)n > it->len * 8)
        return KILN_ECORRUPT;
    uint64_t v = 0;
    while (n > 0) {
        int off = (int)(it->pos & 7), room = 8 - off, take = n < room ? n : room;
        uint8_t byte = it->b[it->pos >> 3];
        v = v << take | (uint64_t)((byte >> (room - take)) & ((1u << take) - 1));
        it->pos += (size_t)take;
        n -= take;
    }
    *out = v;
    return 0;
}

/* Reads a varbit prefix: the index into VARBIT, -1 for 0, 7 for the 64-bit form. */
KILN_MUST_CHECK static int get_prefix(histiter *it, int *which) {
    int ones = 0;
    uint64_t bit;
    while (ones < 8) {
        if (get_bits(it, 1, &bit) != 0)
            return KILN_ECORRUPT;
        if (!bit)
            break;
        ones++;
    }
    *which = ones - 1; /* 0 ones: the value 0 (-1); 1..7: VARBIT[ones-1]; 8: 64 bits */
    return 0;
}

KILN_MUST_CHECK static int get_varbit_int(histiter *it, int64_t *out) {
    int w;
    uint64_t b;
    if (get_prefix(it, &w) != 0)
        return KILN_ECORRUPT;
    if (w < 0) {
        *out = 0;
        return 0;
    }
    int sz = w == 7 ? 64 : VARBIT[w].sz;
    if (get_bits(it, sz, &b) != 0)
        return KILN_ECORRUPT;
    if (sz < 64 && b > (1ULL << (sz - 1)))
        b -= 1ULL << sz;
    *out = (int64_t)b;
    return 0;
}

KILN_MUST_CHECK static int get_varbit_uint(histiter *it, uint64_t *out) {
    int w;
    if (get_prefix(it, &w) != 0)
        return KILN_ECORRUPT;
    if (w < 0) {
        *out = 0;
        return 0;
    }
    return get_bits(it, w == 7 ? 64 : VARBIT[w].sz, out);
}

KILN_MUST_CHECK static int get_xor(histiter *it, histchunk_xor *x) {
    uint64_t bit, bits;
    if (get_bits(it, 1, &bit) != 0)
        return KILN_ECORRUPT;
    if (!bit)
        return 0;
    if (get_bits(it, 1, &bit) != 0)
        return KILN_ECORRUPT;
    if (bit) {
        uint64_t lead, sig;
        if (get_bits(it, 5, &lead) != 0 || get_bits(it, 6, &sig) != 0)
            return KILN_ECORRUPT;
        if (sig == 0)
            sig = 64;
        if (lead + sig > 64)
            return KILN_ECORRUPT;
        x->leading = (uint8_t)lead;
        x->trailing = (uint8_t)(64 - lead - sig);
    } else if (x->leading == 0xff) {
        return KILN_ECORRUPT; /* no window yet */
    }
    int m = 64 - x->leading - x->trailing;
    if (m <= 0 || get_bits(it, m, &bits) != 0)
        return KILN_ECORRUPT;
    x->v = double_from_bits(double_to_bits(x->v) ^ bits << x->trailing);
    return 0;
}

/* ---- the chunk --------------------------------------------------------- */

void histchunk_init(histchunk *c, int is_float) {
    memset(c, 0, sizeof *c);
    c->is_float = (uint8_t)(is_float != 0);
    c->leading = 0xff;
}

/* Frees the layout and the encoder's state. */
static void free_layout(histchunk *c) {
    free(c->spans);
    free(c->custom);
    free(c->ib);
    free(c->fb);
    c->spans = NULL;
    c->custom = NULL;
    c->ib = NULL;
    c->fb = NULL;
}

void histchunk_free(histchunk *c) {
    free_layout(c);
    free(c->b);
    histchunk_init(c, c->is_float);
}

void histchunk_set_header(histchunk *c, uint8_t bits) {
    if (c->cap >= HDR_BYTES)
        c->b[2] = (uint8_t)((c->b[2] & 0x3f) | (bits & 0xc0));
}

uint8_t histchunk_new_header(const histogram *h, int verdict, int had) {
    if (h->hint == HIST_HINT_GAUGE)
        return HISTCHUNK_GAUGE;
    if (verdict == HISTCHUNK_CUT_RESET)
        return HISTCHUNK_RESET;
    return had && verdict <= HISTCHUNK_RECODE ? HISTCHUNK_NOT_RESET : HISTCHUNK_UNKNOWN;
}

uint8_t histchunk_header(const histchunk *c) {
    return c->count ? (uint8_t)(c->b[2] & 0xc0) : 0;
}

const uint8_t *histchunk_data(const histchunk *c, size_t *len) {
    *len = c->count ? (c->nbits + 7) / 8 : 0;
    return c->count ? c->b : NULL;
}

int histchunk_shrink(histchunk *c) {
    size_t len = (c->nbits + 7) / 8;
    if (!c->b || len + 1 >= c->cap)
        return 0;
    uint8_t *nb = realloc(c->b, len + 1);
    if (!nb)
        return KILN_ENOMEM;
    c->b = nb;
    c->cap = (uint32_t)(len + 1);
    return 0;
}

size_t histchunk_mem(const histchunk *c) {
    size_t nb = (size_t)c->npb + c->nnb;
    return c->cap + (c->npspans + c->nnspans) * sizeof(hist_span) + c->ncustom * sizeof(double) +
           (c->ib ? 2 * nb * sizeof(int64_t) : 0) + (c->fb ? nb * sizeof(histchunk_xor) : 0);
}

static int histogram_stale_empty(const histogram *h, histogram *empty) {
    if (!histogram_is_stale(h))
        return 0;
    memset(empty, 0, sizeof *empty);
    empty->sum = h->sum;
    empty->is_int = h->is_int;
    return 1;
}

int histchunk_last_stale(const histchunk *c) {
    if (!c->count)
        return 0;
    return value_is_stale(c->is_float ? c->fsum.v : c->sum);
}

/* The chunk's last absolute count of bucket k (0-based over both sides);
 * integer chunks keep deltas from the bucket before: *run carries the sum
 * along one side, reset to 0 at the start of each side by the caller. */
static double last_count(const histchunk *c, uint32_t k, int64_t *run) {
    if (c->is_float)
        return c->fb[k].v;
    *run += c->ib[k];
    return (double)*run;
}

/* Compares one side of the chunk's last sample (buckets from `first`) with
 * h's: *missing when a chunk bucket is absent from h, *extra when h has a
 * bucket the chunk lacks, *fell when a common bucket's count fell. */
static void compare_side(const histchunk *c, const hist_span *cs, uint32_t ncs, uint32_t first,
                         const hist_span *hs, uint32_t nhs, const double *hv, int *missing, int *extra,
                         int *fell) {
    histogram_span_iter a, b;
    histogram_span_iter_init(&a, cs, ncs);
    histogram_span_iter_init(&b, hs, nhs);
    int32_t ia = 0, ib = 0;
    int64_t run = 0;
    uint32_t ka = 0, kb = 0;
    int ha = histogram_span_iter_next(&a, &ia), hb = histogram_span_iter_next(&b, &ib);
    while (ha || hb) {
        if (ha && (!hb || ia < ib)) {
            *missing = 1;
            (void)last_count(c, first + ka++, &run);
            ha = histogram_span_iter_next(&a, &ia);
        } else if (hb && (!ha || ib < ia)) {
            *extra = 1;
            kb++;
            hb = histogram_span_iter_next(&b, &ib);
        } else {
            if (hv[kb] < last_count(c, first + ka, &run))
                *fell = 1;
            ka++;
            kb++;
            ha = histogram_span_iter_next(&a, &ia);
            hb = histogram_span_iter_next(&b, &ib);
        }
    }
}

static int same_custom(const histchunk *c, const histogram *h) {
    if (c->ncustom != h->ncustom)
        return 0;
    for (uint32_t i = 0; i < c->ncustom; i++)
        if (c->custom[i] != h->custom_values[i])
            return 0;
    return 1;
}

int histchunk_appendable(const histchunk *c, const histogram *h) {
    if (!c->count)
        return HISTCHUNK_APPEND;
    int gauge_chunk = histchunk_header(c) == HISTCHUNK_GAUGE, gauge = h->hint == HIST_HINT_GAUGE;
    if (gauge_chunk != gauge)
        return HISTCHUNK_CUT;
    if (histogram_is_stale(h))
        return HISTCHUNK_APPEND;
    if (histchunk_last_stale(c))
        return HISTCHUNK_CUT;
    double cnt = c->is_float ? c->fcnt.v : (double)(uint64_t)c->cnt;
    double zcnt = c->is_float ? c->fzcnt.v : (double)(uint64_t)c->zcnt;
    if (!gauge && (h->hint == HIST_HINT_RESET || h->count < cnt))
        return HISTCHUNK_CUT_RESET;
    if (h->schema != c->schema || h->zero_threshold != c->zthresh || !same_custom(c, h))
        return HISTCHUNK_CUT;
    if (!gauge && h->zero_count < zcnt)
        return HISTCHUNK_CUT_RESET;
    int missing = 0, extra = 0, fell = 0;
    compare_side(c, c->spans, c->npspans, 0, h->pos_spans, h->npos_spans, h->pos, &missing, &extra, &fell);
    compare_side(c, c->spans + c->npspans, c->nnspans, c->npb, h->neg_spans, h->nneg_spans, h->neg, &missing,
                 &extra, &fell);
    if (gauge)
        return missing || extra ? HISTCHUNK_RECODE : HISTCHUNK_APPEND;
    if (missing || fell)
        return HISTCHUNK_CUT_RESET;
    return extra ? HISTCHUNK_RECODE : HISTCHUNK_APPEND;
}

/* Copies h's layout into the empty chunk and allocates the encoder's state. */
KILN_MUST_CHECK static int set_layout(histchunk *c, const histogram *h) {
    uint32_t nsp = h->npos_spans + h->nneg_spans, nb = h->npos + h->nneg;
    hist_span *sp = nsp ? malloc(nsp * sizeof *sp) : NULL;
    double *cu = h->ncustom ? malloc(h->ncustom * sizeof *cu) : NULL;
    int64_t *ib = !c->is_float && nb ? calloc(2 * (size_t)nb, sizeof *ib) : NULL;
    histchunk_xor *fb = c->is_float && nb ? calloc(nb, sizeof *fb) : NULL;
    if ((nsp && !sp) || (h->ncustom && !cu) || (nb && !ib && !fb)) {
        free(sp);
        free(cu);
        free(ib);
        free(fb);
        return KILN_ENOMEM;
    }
    if (h->npos_spans)
        memcpy(sp, h->pos_spans, h->npos_spans * sizeof *sp);
    if (h->nneg_spans)
        memcpy(sp + h->npos_spans, h->neg_spans, h->nneg_spans * sizeof *sp);
    if (h->ncustom)
        memcpy(cu, h->custom_values, h->ncustom * sizeof *cu);
    free_layout(c);
    c->spans = sp;
    c->npspans = h->npos_spans;
    c->nnspans = h->nneg_spans;
    c->custom = cu;
    c->ncustom = h->ncustom;
    c->npb = h->npos;
    c->nnb = h->nneg;
    c->ib = ib;
    c->fb = fb;
    c->schema = h->schema;
    c->zthresh = h->zero_threshold;
    return 0;
}

/* The count of bucket k of both sides (positive first), of arrays in the
 * chunk's layout. */
static double bucket_at(const double *pos, const double *neg, uint32_t npb, uint32_t k) {
    return k < npb ? pos[k] : neg[k - npb];
}

/* The buckets of an integer sample: each the delta from the bucket before
 * (restarting on the negative side); the first sample writes them, later
 * ones their delta of delta. */
static void put_int_buckets(histchunk *c, const double *pos, const double *neg, uint32_t nb, int first) {
    uint32_t all = c->npb + c->nnb;
    int64_t prev = 0;
    for (uint32_t k = 0; k < nb; k++) {
        if (k == c->npb)
            prev = 0;
        int64_t abs = (int64_t)bucket_at(pos, neg, c->npb, k), v = abs - prev;
        prev = abs;
        int64_t delta = v - c->ib[k];
        put_varbit_int(c, first ? v : delta - c->ib[all + k]);
        c->ib[all + k] = first ? 0 : delta; /* the second sample's dod is its delta */
        c->ib[k] = v;
    }
}

/* Writes a sample on the chunk's layout: pos/neg hold npb/nnb counts (none
 * for a stale marker).  Room reserved by the caller. */
static void write_sample(histchunk *c, int64_t t, const histogram *h, const double *pos, const double *neg,
                         int stale) {
    uint32_t nb = stale ? 0 : c->npb + c->nnb;
    int first = c->count == 0;
    if (c->is_float) {
        if (first) {
            put_varbit_int(c, t);
            c->fcnt = (histchunk_xor){h->count, 0xff, 0};
            c->fzcnt = (histchunk_xor){h->zero_count, 0xff, 0};
            c->fsum = (histchunk_xor){h->sum, 0xff, 0};
            put_bits(c, double_to_bits(h->count), 64);
            put_bits(c, double_to_bits(h->zero_count), 64);
            put_bits(c, double_to_bits(h->sum), 64);
            for (uint32_t k = 0; k < nb; k++) {
                double v = bucket_at(pos, neg, c->npb, k);
                c->fb[k] = (histchunk_xor){v, 0xff, 0};
                put_bits(c, double_to_bits(v), 64);
            }
            c->tdelta = 0;
        } else {
            int64_t tdelta = (int64_t)((uint64_t)t - (uint64_t)c->t);
            put_varbit_int(c, (int64_t)((uint64_t)tdelta - (uint64_t)c->tdelta));
            put_xor(c, h->count, &c->fcnt);
            put_xor(c, h->zero_count, &c->fzcnt);
            put_xor(c, h->sum, &c->fsum);
            for (uint32_t k = 0; k < nb; k++)
                put_xor(c, bucket_at(pos, neg, c->npb, k), &c->fb[k]);
            c->tdelta = tdelta;
        }
        c->t = t;
        return;
    }
    int64_t cnt = (int64_t)(uint64_t)h->count, zcnt = (int64_t)(uint64_t)h->zero_count;
    if (first) {
        put_varbit_int(c, t);
        put_varbit_uint(c, (uint64_t)cnt);
        put_varbit_uint(c, (uint64_t)zcnt);
        put_bits(c, double_to_bits(h->sum), 64);
        put_int_buckets(c, pos, neg, nb, 1);
        c->tdelta = c->cntdelta = c->zcntdelta = 0;
    } else {
        int64_t tdelta = (int64_t)((uint64_t)t - (uint64_t)c->t);
        int64_t cntdelta = (int64_t)((uint64_t)cnt - (uint64_t)c->cnt);
        int64_t zcntdelta = (int64_t)((uint64_t)zcnt - (uint64_t)c->zcnt);
        put_varbit_int(c, (int64_t)((uint64_t)tdelta - (uint64_t)c->tdelta));
        put_varbit_int(c, stale ? 0 : (int64_t)((uint64_t)cntdelta - (uint64_t)c->cntdelta));
        put_varbit_int(c, stale ? 0 : (int64_t)((uint64_t)zcntdelta - (uint64_t)c->zcntdelta));
        histchunk_xor s = {c->sum, c->leading, c->trailing};
        put_xor(c, h->sum, &s);
        c->leading = s.leading;
        c->trailing = s.trailing;
        put_int_buckets(c, pos, neg, nb, 0);
        c->cntdelta = cntdelta;
        c->zcntdelta = zcntdelta;
        c->tdelta = tdelta;
    }
    c->sum = h->sum;
    c->cnt = cnt;
    c->zcnt = zcnt;
    c->t = t;
}

static int same_span_list(const hist_span *a, uint32_t na, const hist_span *b, uint32_t nb) {
    if (na != nb)
        return 0;
    for (uint32_t i = 0; i < na; i++)
        if (a[i].offset != b[i].offset || a[i].length != b[i].length)
            return 0;
    return 1;
}

int histchunk_append(histchunk *c, int64_t t, const histogram *h) {
    histogram empty;
    int stale = histogram_stale_empty(h, &empty);
    if (stale)
        h = &empty;
    if (c->count == UINT16_MAX)
        return KILN_ENOMEM;
    int first = c->count == 0;
    uint64_t items = 8 + (uint64_t)h->npos + h->nneg + 2ULL * (h->npos_spans + h->nneg_spans) + h->ncustom;
    if (!first)
        items = 8 + (stale ? 0 : (uint64_t)c->npb + c->nnb);
    if (reserve(c, items * ITEM_BITS + 8 * (HDR_BYTES + 9)) != 0)
        return KILN_ENOMEM;
    const double *pos = h->pos, *neg = h->neg;
    double *tmp = NULL;
    if (first) {
        if (set_layout(c, h) != 0)
            return KILN_ENOMEM;
        c->nbits = 8 * HDR_BYTES;
        put_zero_threshold(c, c->zthresh);
        put_varbit_int(c, c->schema);
        put_spans(c, c->spans, c->npspans);
        put_spans(c, c->spans + c->npspans, c->nnspans);
        if (c->schema == HIST_SCHEMA_CUSTOM) {
            put_varbit_uint(c, c->ncustom);
            for (uint32_t i = 0; i < c->ncustom; i++)
                put_custom_bound(c, c->custom[i]);
        }
    } else if (!stale && !(same_span_list(c->spans, c->npspans, h->pos_spans, h->npos_spans) &&
                           same_span_list(c->spans + c->npspans, c->nnspans, h->neg_spans, h->nneg_spans))) {
        /* another spelling of the layout, or a gauge's fewer buckets: onto the chunk's */
        uint32_t nb = c->npb + c->nnb;
        tmp = malloc((nb ? nb : 1) * sizeof *tmp);
        if (!tmp)
            return KILN_ENOMEM;
        if (histogram_fit(h->pos_spans, h->npos_spans, h->pos, c->spans, c->npspans, tmp, c->npb) != 0 ||
            histogram_fit(h->neg_spans, h->nneg_spans, h->neg, c->spans + c->npspans, c->nnspans,
                          tmp + c->npb, c->nnb) != 0) {
            free(tmp);
            return KILN_EINVAL;
        }
        pos = tmp;
        neg = tmp + c->npb;
    } else if (!stale && (h->npos != c->npb || h->nneg != c->nnb)) {
        return KILN_EINVAL;
    }
    write_sample(c, t, h, pos, neg, stale);
    free(tmp);
    c->count++;
    c->b[0] = (uint8_t)(c->count >> 8);
    c->b[1] = (uint8_t)c->count;
    return 0;
}

int histchunk_last_equal(const histchunk *c, const histogram *h) {
    if (!c->count)
        return 0;
    size_t len;
    const uint8_t *d = histchunk_data(c, &len);
    histiter it;
    histiter_init(&it, d, len, c->is_float);
    int rc, eq = 0;
    while ((rc = histiter_next(&it)) == 1)
        if (it.read == c->count)
            eq = histogram_equal(&it.h, h);
    histiter_free(&it);
    return rc == 0 && eq;
}

/* The union of two span lists' indices as spans (malloc'd, *n set). */
KILN_MUST_CHECK static int span_union(const hist_span *a, uint32_t na, const hist_span *b, uint32_t nb,
                                      hist_span **out, uint32_t *n) {
    uint64_t most = (uint64_t)histogram_nbuckets(a, na) + histogram_nbuckets(b, nb);
    hist_span *v = malloc((most ? most : 1) * sizeof *v);
    if (!v)
        return KILN_ENOMEM;
    histogram_span_iter x, y;
    histogram_span_iter_init(&x, a, na);
    histogram_span_iter_init(&y, b, nb);
    int32_t ix = 0, iy = 0, idx;
    int hx = histogram_span_iter_next(&x, &ix), hy = histogram_span_iter_next(&y, &iy);
    uint32_t k = 0;
    int64_t end = 0; /* one past the last index taken */
    while (hx || hy) {
        if (hx && (!hy || ix <= iy)) {
            idx = ix;
            if (hy && iy == ix)
                hy = histogram_span_iter_next(&y, &iy);
            hx = histogram_span_iter_next(&x, &ix);
        } else {
            idx = iy;
            hy = histogram_span_iter_next(&y, &iy);
        }
        if (k > 0 && idx == end) {
            v[k - 1].length++;
        } else {
            v[k].offset = (int32_t)(k == 0 ? idx : idx - end);
            v[k].length = 1;
            k++;
        }
        end = (int64_t)idx + 1;
    }
    *out = v;
    *n = k;
    return 0;
}

int histchunk_recode(histchunk *c, const histogram *h) {
    hist_span *ps = NULL, *ns = NULL;
    uint32_t nps, nns;
    int gauge = histchunk_header(c) == HISTCHUNK_GAUGE, rc = 0;
    if (gauge) {
        if ((rc = span_union(c->spans, c->npspans, h->pos_spans, h->npos_spans, &ps, &nps)) != 0 ||
            (rc = span_union(c->spans + c->npspans, c->nnspans, h->neg_spans, h->nneg_spans, &ns, &nns)) != 0)
            goto out;
    }
    histogram lay = *h;
    if (gauge) {
        lay.pos_spans = ps;
        lay.npos_spans = nps;
        lay.neg_spans = ns;
        lay.nneg_spans = nns;
    }
    uint32_t npb = histogram_nbuckets(lay.pos_spans, lay.npos_spans);
    uint32_t nnb = histogram_nbuckets(lay.neg_spans, lay.nneg_spans);
    double *cnts = malloc(((size_t)npb + nnb + 1) * sizeof *cnts);
    histchunk nc;
    histchunk_init(&nc, c->is_float);
    histiter it;
    size_t len;
    const uint8_t *d = histchunk_data(c, &len);
    histiter_init(&it, d, len, c->is_float);
    if (!cnts) {
        rc = KILN_ENOMEM;
        goto done;
    }
    while ((rc = histiter_next(&it)) == 1) {
        histogram s = it.h;
        if (!histogram_is_stale(&s)) {
            if (histogram_fit(s.pos_spans, s.npos_spans, s.pos, lay.pos_spans, lay.npos_spans, cnts, npb) !=
                    0 ||
                histogram_fit(s.neg_spans, s.nneg_spans, s.neg, lay.neg_spans, lay.nneg_spans, cnts + npb,
                              nnb) != 0) {
                rc = KILN_ECORRUPT;
                break;
            }
            s.pos_spans = lay.pos_spans;
            s.npos_spans = lay.npos_spans;
            s.neg_spans = lay.neg_spans;
            s.nneg_spans = lay.nneg_spans;
            s.pos = cnts;
            s.npos = npb;
            s.neg = cnts + npb;
            s.nneg = nnb;
        }
        if ((rc = histchunk_append(&nc, it.t, &s)) != 0)
            break;
    }
done:
    if (rc == 0 && nc.count != c->count)
        rc = KILN_ECORRUPT;
    if (rc == 0) {
        histchunk_set_header(&nc, histchunk_header(c));
        histchunk_free(c);
        *c = nc;
    } else {
        histchunk_free(&nc);
    }
    histiter_free(&it);
    free(cnts);
out:
    free(ps);
    free(ns);
    return rc;
}

int histchunk_load(histchunk *c, int is_float, const uint8_t *b, size_t len) {
    histchunk_init(c, is_float);
    if (len < HDR_BYTES)
        return KILN_ECORRUPT;
    histiter it;
    histiter_init(&it, b, len, is_float);
    int rc;
    while ((rc = histiter_next(&it)) == 1) {
        histogram s = it.h;
        s.hint = HIST_HINT_UNKNOWN;
        if ((rc = histchunk_append(c, it.t, &s)) != 0)
            break;
    }
    histiter_free(&it);
    if (rc == 0 && c->count)
        histchunk_set_header(c, b[2]);
    if (rc != 0)
        histchunk_free(c);
    return rc;
}

/* ---- the iterator ------------------------------------------------------ */

int histchunk_fill(const uint8_t *d, size_t len, int is_float, int64_t mint, int64_t maxt, arena *a,
                   hsample *dst, size_t cap, size_t *n) {
    histiter it;
    histiter_init(&it, d, len, is_float);
    int rc;
    while ((rc = histiter_next(&it)) == 1 && it.t <= maxt) {
        if (it.t < mint)
            continue;
        if (*n >= cap)
            break;
        histogram *c = histogram_copy(a, &it.h);
        if (!c) {
            rc = KILN_ENOMEM;
            break;
        }
        dst[(*n)++] = (hsample){it.t, c};
    }
    histiter_free(&it);
    return rc < 0 ? rc : 0;
}

void histiter_init(histiter *it, const uint8_t *b, size_t len, int is_float) {
    memset(it, 0, sizeof *it);
    it->b = b;
    it->len = len;
    it->is_float = (uint8_t)(is_float != 0);
    if (len >= HDR_BYTES) {
        it->total = (uint16_t)(b[0] << 8 | b[1]);
        it->header = b[2] & 0xc0;
    }
    it->pos = 8 * HDR_BYTES;
}

void histiter_free(histiter *it) {
    free(it->spans);
    free(it->custom);
    free(it->ib);
    free(it->fb);
    free(it->abs);
    histiter_init(it, NULL, 0, it->is_float); /* nothing left to read */
}

/* Bounds on what a layout may claim before allocating for it: a chunk's
 * bytes cannot describe more buckets or spans than it has bits. */
KILN_MUST_CHECK static int read_spans(histiter *it, hist_span **sp, uint32_t *n) {
    uint64_t cnt;
    if (get_varbit_uint(it, &cnt) != 0 || cnt > it->len * 8)
        return KILN_ECORRUPT;
    *n = (uint32_t)cnt;
    if (!cnt)
        return 0;
    hist_span *v = malloc((size_t)cnt * sizeof *v);
    if (!v)
        return KILN_ENOMEM;
    *sp = v;
    for (uint64_t i = 0; i < cnt; i++) {
        uint64_t l;
        int64_t o;
        if (get_varbit_uint(it, &l) != 0 || get_varbit_int(it, &o) != 0 || l > it->len * 8 || o > INT32_MAX ||
            o < INT32_MIN)
            return KILN_ECORRUPT;
        v[i].length = (uint32_t)l;
        v[i].offset = (int32_t)o;
    }
    return 0;
}

KILN_MUST_CHECK static int read_layout(histiter *it) {
    uint64_t byte, bits;
    if (get_bits(it, 8, &byte) != 0)
        return KILN_ECORRUPT;
    if (byte == 0) {
        it->zthresh = 0;
    } else if (byte == 255) {
        if (get_bits(it, 64, &bits) != 0)
            return KILN_ECORRUPT;
        it->zthresh = double_from_bits(bits);
    } else {
        it->zthresh = ldexp(0.5, (int)byte - 243);
    }
    int64_t schema;
    if (get_varbit_int(it, &schema) != 0 || schema < INT32_MIN || schema > INT32_MAX)
        return KILN_ECORRUPT;
    it->schema = (int32_t)schema;
    hist_span *ps = NULL, *ns = NULL;
    uint32_t nps = 0, nns = 0;
    int rc = read_spans(it, &ps, &nps);
    if (rc == 0)
        rc = read_spans(it, &ns, &nns);
    if (rc == 0) {
        hist_span *all = nps + nns ? malloc((nps + nns) * sizeof *all) : NULL;
        if (nps + nns && !all) {
            rc = KILN_ENOMEM;
        } else {
            if (nps)
                memcpy(all, ps, nps * sizeof *all);
            if (nns)
                memcpy(all + nps, ns, nns * sizeof *all);
            it->spans = all;
            it->npspans = nps;
            it->nnspans = nns;
        }
    }
    free(ps);
    free(ns);
    if (rc)
        return rc;
    uint64_t npb = 0, nnb = 0;
    for (uint32_t i = 0; i < nps; i++)
        npb += it->spans[i].length;
    for (uint32_t i = 0; i < nns; i++)
        nnb += it->spans[nps + i].length;
    if (npb + nnb > it->len * 8)
        return KILN_ECORRUPT;
    it->npb = (uint32_t)npb;
    it->nnb = (uint32_t)nnb;
    if (it->schema == HIST_SCHEMA_CUSTOM) {
        uint64_t n;
        if (get_varbit_uint(it, &n) != 0 || n > it->len * 8)
            return KILN_ECORRUPT;
        if (n && !(it->custom = malloc(n * sizeof *it->custom)))
            return KILN_ENOMEM;
        it->ncustom = (uint32_t)n;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t y;
            if (get_varbit_uint(it, &y) != 0)
                return KILN_ECORRUPT;
            if (y == 0) {
                if (get_bits(it, 64, &bits) != 0)
                    return KILN_ECORRUPT;
                it->custom[i] = double_from_bits(bits);
            } else {
                it->custom[i] = (double)(y - 1) / 1000;
            }
        }
    }
    size_t nb = (size_t)npb + nnb;
    if (nb) {
        it->abs = malloc(nb * sizeof *it->abs);
        if (it->is_float)
            it->fb = calloc(nb, sizeof *it->fb);
        else
            it->ib = calloc(2 * nb, sizeof *it->ib);
        if (!it->abs || (!it->fb && !it->ib))
            return KILN_ENOMEM;
    }
    return 0;
}

/* Fills it->h from the state: the layout, absolute counts, the hint. */
static void present(histiter *it, int stale) {
    histogram *h = &it->h;
    memset(h, 0, sizeof *h);
    h->is_int = !it->is_float;
    if (it->header == HISTCHUNK_GAUGE)
        h->hint = HIST_HINT_GAUGE;
    else if (it->read > 0)
        h->hint = HIST_HINT_NOT_RESET;
    else
        h->hint = it->header == HISTCHUNK_RESET       ? HIST_HINT_RESET
                  : it->header == HISTCHUNK_NOT_RESET ? HIST_HINT_NOT_RESET
                                                      : HIST_HINT_UNKNOWN;
    if (it->is_float) {
        h->count = it->fcnt.v;
        h->zero_count = it->fzcnt.v;
        h->sum = it->fsum.v;
    } else {
        h->count = (double)(uint64_t)it->cnt;
        h->zero_count = (double)(uint64_t)it->zcnt;
        h->sum = it->fsum.v;
    }
    if (stale) {
        h->count = h->zero_count = 0;
        return;
    }
    h->schema = it->schema;
    h->zero_threshold = it->zthresh;
    h->pos_spans = it->npspans ? it->spans : NULL;
    h->npos_spans = it->npspans;
    h->neg_spans = it->nnspans ? it->spans + it->npspans : NULL;
    h->nneg_spans = it->nnspans;
    uint32_t nb = it->npb + it->nnb;
    int64_t run = 0;
    for (uint32_t k = 0; k < nb; k++) {
        if (it->is_float) {
            it->abs[k] = it->fb[k].v;
        } else {
            if (k == it->npb)
                run = 0;
            run += it->ib[k];
            it->abs[k] = (double)run;
        }
    }
    h->pos = it->npb ? it->abs : NULL;
    h->npos = it->npb;
    h->neg = it->nnb ? it->abs + it->npb : NULL;
    h->nneg = it->nnb;
    h->custom_values = it->ncustom ? it->custom : NULL;
    h->ncustom = it->ncustom;
}

int histiter_next(histiter *it) {
    if (it->read >= it->total)
        return 0;
    uint64_t bits;
    int rc = KILN_ECORRUPT;
    uint32_t nb;
    int stale;
    if (it->read == 0) {
        if ((rc = read_layout(it)) != 0)
            goto fail;
        rc = KILN_ECORRUPT;
        if (get_varbit_int(it, &it->t) != 0)
            goto fail;
        if (it->is_float) {
            uint64_t v[3];
            for (int i = 0; i < 3; i++)
                if (get_bits(it, 64, &v[i]) != 0)
                    goto fail;
            it->fcnt = (histchunk_xor){double_from_bits(v[0]), 0xff, 0};
            it->fzcnt = (histchunk_xor){double_from_bits(v[1]), 0xff, 0};
            it->fsum = (histchunk_xor){double_from_bits(v[2]), 0xff, 0};
        } else {
            uint64_t cnt, zcnt;
            if (get_varbit_uint(it, &cnt) != 0 || get_varbit_uint(it, &zcnt) != 0 ||
                get_bits(it, 64, &bits) != 0)
                goto fail;
            it->cnt = (int64_t)cnt;
            it->zcnt = (int64_t)zcnt;
            it->fsum = (histchunk_xor){double_from_bits(bits), 0xff, 0};
        }
        stale = value_is_stale(it->fsum.v);
        nb = stale ? 0 : it->npb + it->nnb;
        for (uint32_t k = 0; k < nb; k++) {
            if (it->is_float) {
                if (get_bits(it, 64, &bits) != 0)
                    goto fail;
                it->fb[k] = (histchunk_xor){double_from_bits(bits), 0xff, 0};
            } else if (get_varbit_int(it, &it->ib[k]) != 0) {
                goto fail;
            }
        }
    } else {
        int64_t dod;
        if (get_varbit_int(it, &dod) != 0)
            goto fail;
        it->tdelta = (int64_t)((uint64_t)it->tdelta + (uint64_t)dod);
        it->t = (int64_t)((uint64_t)it->t + (uint64_t)it->tdelta);
        if (it->is_float) {
            if (get_xor(it, &it->fcnt) != 0 || get_xor(it, &it->fzcnt) != 0 || get_xor(it, &it->fsum) != 0)
                goto fail;
        } else {
            int64_t cd, zd;
            if (get_varbit_int(it, &cd) != 0 || get_varbit_int(it, &zd) != 0)
                goto fail;
            it->cntdelta = (int64_t)((uint64_t)it->cntdelta + (uint64_t)cd);
            it->cnt = (int64_t)((uint64_t)it->cnt + (uint64_t)it->cntdelta);
            it->zcntdelta = (int64_t)((uint64_t)it->zcntdelta + (uint64_t)zd);
            it->zcnt = (int64_t)((uint64_t)it->zcnt + (uint64_t)it->zcntdelta);
            histchunk_xor s = {it->fsum.v, it->leading, it->trailing};
            if (it->read == 1)
                s.leading = 0xff;
            if (get_xor(it, &s) != 0)
                goto fail;
            it->fsum.v = s.v;
            it->leading = s.leading;
            it->trailing = s.trailing;
        }
        stale = value_is_stale(it->fsum.v);
        nb = stale ? 0 : it->npb + it->nnb;
        uint32_t all = it->npb + it->nnb;
        for (uint32_t k = 0; k < nb; k++) {
            if (it->is_float) {
                if (get_xor(it, &it->fb[k]) != 0)
                    goto fail;
            } else {
                if (get_varbit_int(it, &dod) != 0)
                    goto fail;
                it->ib[all + k] = (int64_t)((uint64_t)it->ib[all + k] + (uint64_t)dod);
                it->ib[k] = (int64_t)((uint64_t)it->ib[k] + (uint64_t)it->ib[all + k]);
            }
        }
    }
    present(it, stale);
    it->read++;
    return 1;
fail:
    it->read = it->total;
    return rc;
}

/* ---- storage_hist_chunks (storage.h) ------------------------------------- */

int storage_hist_chunks(const hsample *s, size_t n, unsigned per_chunk,
                        int (*fn)(void *data, int64_t mint, int64_t maxt, int enc, const uint8_t *b,
                                  size_t len),
                        void *data) {
    histchunk c;
    histchunk_init(&c, 0);
    int rc = 0;
    size_t first = 0;
    if (per_chunk == 0)
        per_chunk = 120;
    for (size_t i = 0; i <= n && rc == 0; i++) {
        /* the head's rules (headhist_append): cut when full, on a change of
         * kind, or when the encoder says the histogram needs a new chunk */
        const histogram *h = i < n ? s[i].h : NULL;
        int is_float = h && !h->is_int, same = h && c.count && c.is_float == is_float;
        int verdict = same ? histchunk_appendable(&c, h) : HISTCHUNK_CUT;
        if (c.count && (!h || c.count >= per_chunk || verdict >= HISTCHUNK_CUT)) {
            size_t len;
            const uint8_t *b = histchunk_data(&c, &len);
            rc = fn(data, s[first].t, s[i - 1].t, c.is_float ? HISTCHUNK_ENC_FLOAT : HISTCHUNK_ENC_INT, b,
                    len);
            histchunk_free(&c);
        }
        if (!h || rc != 0)
            break;
        if (c.count == 0) {
            histchunk_init(&c, is_float);
            first = i;
            rc = histchunk_append(&c, s[i].t, h);
            histchunk_set_header(&c, histchunk_new_header(h, verdict, same));
        } else {
            if (verdict == HISTCHUNK_RECODE)
                rc = histchunk_recode(&c, h);
            if (rc == 0)
                rc = histchunk_append(&c, s[i].t, h);
        }
    }
    histchunk_free(&c);
    return rc;
}
