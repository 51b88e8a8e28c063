/*
 * walrec.c - Prometheus WAL record encoding and decoding (see walrec.h for
 * the byte layouts).
 *
 * Called by the storage (the appender's commit encodes series, samples and
 * tombstones; the replay decodes them), by checkpoint.c (decode, filter,
 * encode again) and by tombstones.c (the varints of the block file).
 *
 * Decoding walks a cursor over the record; the cursor's first failure sticks
 * (like Go's encoding.Decbuf) and carries the offset where it happened, so a
 * loop can decode a whole entry and check once.  Nothing here allocates
 * except from the caller's arena or buf.
 *
 * Threading: stateless; any thread.
 */
#include <stdint.h>
#include <string.h>

#include "storage/walrec.h"
#include "util/endian.h"

/* ---- varints ------------------------------------------------------------ */

size_t walrec_put_uvarint(uint8_t *p, uint64_t v) {
    size_t i = 0;
    while (v >= 0x80) {
        p[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[i++] = (uint8_t)v;
    return i;
}

size_t walrec_put_varint(uint8_t *p, int64_t v) {
    uint64_t u = (uint64_t)v << 1;
    if (v < 0)
        u = ~u;
    return walrec_put_uvarint(p, u);
}

size_t walrec_get_uvarint(const uint8_t *p, size_t n, uint64_t *v) {
    uint64_t x = 0;
    unsigned s = 0;
    for (size_t i = 0; i < n && i < 10; i++) {
        uint8_t b = p[i];
        if (b < 0x80) {
            if (i == 9 && b > 1)
                return 0; /* overflows 64 bits */
            *v = x | (uint64_t)b << s;
            return i + 1;
        }
        x |= (uint64_t)(b & 0x7f) << s;
        s += 7;
    }
    return 0;
}

size_t walrec_get_varint(const uint8_t *p, size_t n, int64_t *v) {
    uint64_t u;
    size_t k = walrec_get_uvarint(p, n, &u);
    if (k) {
        uint64_t x = u >> 1;
        if (u & 1)
            x = ~x;
        *v = (int64_t)x;
    }
    return k;
}

/* ---- type names ----------------------------------------------------------- */

int walrec_type(const void *rec, size_t len) {
    if (len == 0)
        return WALREC_UNKNOWN;
    uint8_t t = *(const uint8_t *)rec;
    return t >= 1 && t <= 10 ? t : WALREC_UNKNOWN;
}

static const char *const type_names[] = {
    [WALREC_UNKNOWN] = "unknown",
    [WALREC_SERIES] = "series",
    [WALREC_SAMPLES] = "samples",
    [WALREC_TOMBSTONES] = "tombstones",
    [WALREC_EXEMPLARS] = "exemplars",
    [WALREC_MMAP_MARKERS] = "mmap markers",
    [WALREC_METADATA] = "metadata",
    [WALREC_HISTOGRAM_SAMPLES] = "histogram samples",
    [WALREC_FLOAT_HISTOGRAM_SAMPLES] = "float histogram samples",
    [WALREC_CUSTOM_BUCKETS_HISTOGRAM_SAMPLES] = "custom buckets histogram samples",
    [WALREC_CUSTOM_BUCKETS_FLOAT_HISTOGRAM_SAMPLES] = "custom buckets float histogram samples",
};

const char *walrec_type_name(int type) {
    return type > 0 && type < (int)(sizeof type_names / sizeof *type_names) ? type_names[type] : "unknown";
}

/* ---- encoding --------------------------------------------------------------- */

/* Worst case of one uvarint-length string. */
#define STR_MAX(n) (10 + (n))

static size_t labels_max(const walrec_label *l, size_t n) {
    size_t sz = 10;
    for (size_t i = 0; i < n; i++)
        sz += STR_MAX(l[i].name_len) + STR_MAX(l[i].value_len);
    return sz;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t n) {
    p += walrec_put_uvarint(p, n);
    if (n)
        memcpy(p, s, n);
    return p + n;
}

/* A label value: kiln's C0 80 as the NUL byte Prometheus writes (util/strnul.c). */
static uint8_t *put_value(uint8_t *p, const char *s, size_t n) {
    size_t k = nul_out_len(s, n);
    if (k == n)
        return put_str(p, s, n);
    p += walrec_put_uvarint(p, k);
    return p + nul_out((char *)p, s, n);
}

static uint8_t *put_labels(uint8_t *p, const walrec_label *l, size_t n) {
    p += walrec_put_uvarint(p, n);
    for (size_t i = 0; i < n; i++) {
        p = put_str(p, l[i].name, l[i].name_len);
        p = put_value(p, l[i].value, l[i].value_len);
    }
    return p;
}

/* Room for `need` more bytes in out and the record's type byte written:
 * returns where the rest goes, or NULL when out of memory. */
static inline uint8_t *enc_begin(buf *out, size_t need, int type) {
    if (buf_reserve(out, need))
        return NULL;
    uint8_t *p = (uint8_t *)out->data + out->len;
    *p = (uint8_t)type;
    return p + 1;
}

/* Ends the record being written at p. */
static inline int enc_end(buf *out, const uint8_t *p) {
    out->len = (size_t)(p - (uint8_t *)out->data);
    out->data[out->len] = 0;
    return 0;
}

/* The base reference and time of a samples, exemplars or histogram record. */
static inline uint8_t *put_bases(uint8_t *p, uint64_t ref0, uint64_t t0) {
    be64_put(p, ref0);
    be64_put(p + 8, t0);
    return p + 16;
}

/* An entry's reference and time as deltas from the bases (unsigned
 * differences: wrap-around is what Go's int64 arithmetic does). */
static inline uint8_t *put_deltas(uint8_t *p, uint64_t ref, uint64_t t, uint64_t ref0, uint64_t t0) {
    p += walrec_put_varint(p, (int64_t)(ref - ref0));
    return p + walrec_put_varint(p, (int64_t)(t - t0));
}

/* A sample's (or exemplar's) deltas and its value's bits. */
static inline uint8_t *put_sample(uint8_t *p, uint64_t ref, int64_t t, double v, uint64_t ref0, uint64_t t0) {
    p = put_deltas(p, ref, (uint64_t)t, ref0, t0);
    be64_put(p, double_to_bits(v));
    return p + 8;
}

int walrec_encode_series(buf *out, const walrec_series *s, size_t n) {
    size_t need = 1;
    for (size_t i = 0; i < n; i++)
        need += 8 + labels_max(s[i].labels, s[i].nlabels);
    uint8_t *p = enc_begin(out, need, WALREC_SERIES);
    if (!p)
        return KILN_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        be64_put(p, s[i].ref);
        p = put_labels(p + 8, s[i].labels, s[i].nlabels);
    }
    return enc_end(out, p);
}

int walrec_encode_samples(buf *out, const walrec_sample *s, size_t n) {
    uint8_t *p = enc_begin(out, 17 + n * 28, WALREC_SAMPLES);
    if (!p)
        return KILN_ENOMEM;
    if (n) {
        uint64_t ref0 = s[0].ref, t0 = (uint64_t)s[0].t;
        p = put_bases(p, ref0, t0);
        for (size_t i = 0; i < n; i++)
            p = put_sample(p, s[i].ref, s[i].t, s[i].v, ref0, t0);
    }
    return enc_end(out, p);
}

int walrec_encode_tombstones(buf *out, const walrec_tombstone *t, size_t n) {
    uint8_t *p = enc_begin(out, 1 + n * 28, WALREC_TOMBSTONES);
    if (!p)
        return KILN_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        be64_put(p, t[i].ref);
        p += 8;
        p += walrec_put_varint(p, t[i].mint);
        p += walrec_put_varint(p, t[i].maxt);
    }
    return enc_end(out, p);
}

int walrec_encode_exemplars(buf *out, const walrec_exemplar *e, size_t n) {
    size_t need = 17;
    for (size_t i = 0; i < n; i++)
        need += 28 + labels_max(e[i].labels, e[i].nlabels);
    uint8_t *p = enc_begin(out, need, WALREC_EXEMPLARS);
    if (!p)
        return KILN_ENOMEM;
    if (n) {
        uint64_t ref0 = e[0].ref, t0 = (uint64_t)e[0].t;
        p = put_bases(p, ref0, t0);
        for (size_t i = 0; i < n; i++) {
            p = put_sample(p, e[i].ref, e[i].t, e[i].v, ref0, t0);
            p = put_labels(p, e[i].labels, e[i].nlabels);
        }
    }
    return enc_end(out, p);
}

/* ---- decoding cursor -------------------------------------------------------- */

typedef struct dec {
    const uint8_t *base;
    size_t len, off;
    const char *what; /* the record type, for messages */
    const char *bad;  /* first failure, or NULL */
    size_t bad_off;
} dec;

static inline void dec_fail(dec *d, const char *why) {
    if (!d->bad) {
        d->bad = why;
        d->bad_off = d->off;
    }
}

static inline size_t dec_left(const dec *d) {
    return d->bad ? 0 : d->len - d->off;
}

static inline uint64_t dec_be64(dec *d) {
    if (dec_left(d) < 8) {
        dec_fail(d, "truncated 8-byte field");
        return 0;
    }
    uint64_t v = be64_get(d->base + d->off);
    d->off += 8;
    return v;
}

static inline uint8_t dec_byte(dec *d) {
    if (dec_left(d) < 1) {
        dec_fail(d, "truncated byte field");
        return 0;
    }
    return d->base[d->off++];
}

static inline uint64_t dec_uvarint(dec *d) {
    uint64_t v = 0;
    size_t k = walrec_get_uvarint(d->base + d->off, dec_left(d), &v);
    if (!k) {
        dec_fail(d, "truncated or overlong varint");
        return 0;
    }
    d->off += k;
    return v;
}

/* The zig-zag signed form (Go's binary.Varint). */
static inline int64_t dec_varint(dec *d) {
    uint64_t u = dec_uvarint(d);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

/* A uvarint-length string; returns a pointer into the record. */
static inline const char *dec_str(dec *d, size_t *n) {
    uint64_t l = dec_uvarint(d);
    if (l > dec_left(d)) {
        dec_fail(d, "string length beyond the record");
        *n = 0;
        return "";
    }
    const char *s = (const char *)d->base + d->off;
    d->off += (size_t)l;
    *n = (size_t)l;
    return s;
}

KILN_MUST_CHECK static int dec_error(const dec *d, kiln_err *err) {
    return kiln_err_set(err, KILN_ECORRUPT, "walrec: %s record: offset %zu: %s", d->what, d->bad_off, d->bad);
}

/* Starts decoding a record that must be of `type` (its type byte read). */
KILN_MUST_CHECK static inline int dec_start(dec *d, const void *rec, size_t len, int type, kiln_err *err) {
    *d = (dec){rec, len, 0, walrec_type_name(type), NULL, 0};
    if (len == 0)
        return kiln_err_set(err, KILN_ECORRUPT, "walrec: %s record: offset 0: empty record", d->what);
    if (d->base[0] != type)
        return kiln_err_set(err, KILN_ECORRUPT, "walrec: %s record: offset 0: type byte is %u, want %d",
                            d->what, d->base[0], type);
    d->off = 1;
    return 0;
}

/* The base reference and time a samples, exemplars or histogram record
 * starts with: 1 with them read, 0 for a record without entries, or
 * KILN_ECORRUPT. */
KILN_MUST_CHECK static inline int dec_bases(dec *d, uint64_t *ref0, uint64_t *t0, kiln_err *err) {
    if (dec_left(d) == 0)
        return 0;
    *ref0 = dec_be64(d);
    *t0 = dec_be64(d);
    return d->bad ? dec_error(d, err) : 1;
}

/* Before the k-th entry of a record holding `max` at most, each at least
 * `min` bytes: 0, or KILN_ECORRUPT when the rest cannot be one. */
KILN_MUST_CHECK static int dec_entry(dec *d, size_t min, size_t k, size_t max, kiln_err *err) {
    if (dec_left(d) >= min && k < max)
        return 0;
    dec_fail(d, "truncated entry");
    return dec_error(d, err);
}

/* An entry's labels into an arena array (*l, *nl); each label is at least
 * 2 bytes, so a count beyond half of what is left is corrupt (and would be
 * a huge allocation).  0, KILN_ENOMEM or KILN_ECORRUPT. */
KILN_MUST_CHECK static int dec_labels(dec *d, arena *a, const walrec_label **l, size_t *nl, kiln_err *err) {
    uint64_t n = dec_uvarint(d);
    *l = NULL;
    *nl = 0;
    if (!d->bad && n > dec_left(d) / 2)
        dec_fail(d, "label count beyond the record");
    if (d->bad)
        return dec_error(d, err);
    walrec_label *v = NULL;
    if (n && !(v = arena_alloc_nz(a, (size_t)n * sizeof *v))) /* every entry is set below */
        return kiln_err_set(err, KILN_ENOMEM, "walrec: %s record: out of memory", d->what);
    for (size_t i = 0; i < n; i++) {
        v[i].name = dec_str(d, &v[i].name_len);
        v[i].value = dec_str(d, &v[i].value_len);
        if (v[i].value_len && memchr(v[i].value, 0, v[i].value_len)) { /* a NUL byte: C0 80 in kiln */
            char *c = arena_alloc(a, nul_in_len(v[i].value, v[i].value_len) + 1); /* room for a NUL */
            if (!c)
                return kiln_err_set(err, KILN_ENOMEM, "walrec: %s record: out of memory", d->what);
            v[i].value_len = nul_in(c, v[i].value, v[i].value_len);
            v[i].value = c;
        }
    }
    if (d->bad)
        return dec_error(d, err);
    *l = v;
    *nl = (size_t)n;
    return 0;
}

int walrec_decode_series(const void *rec, size_t len, arena *a, walrec_series **out, size_t *n,
                         kiln_err *err) {
    dec d;
    *out = NULL;
    *n = 0;
    int rc = dec_start(&d, rec, len, WALREC_SERIES, err);
    if (rc)
        return rc;
    size_t max = (len - 1) / 9; /* ref + label count at least */
    walrec_series *s = NULL;
    /* the first k entries are set, and only they are used */
    if (max && !(s = arena_alloc_nz(a, max * sizeof *s)))
        return kiln_err_set(err, KILN_ENOMEM, "walrec: series record: out of memory");
    size_t k = 0;
    for (; dec_left(&d) > 0; k++) {
        if ((rc = dec_entry(&d, 9, k, max, err)))
            return rc;
        s[k].ref = dec_be64(&d);
        if ((rc = dec_labels(&d, a, &s[k].labels, &s[k].nlabels, err)))
            return rc;
    }
    *out = s;
    *n = k;
    return 0;
}

size_t walrec_samples_max(size_t len) {
    return len <= 17 ? 0 : (len - 17) / 10 + 1;
}

size_t walrec_tombstones_max(size_t len) {
    return len <= 1 ? 0 : (len - 1) / 10 + 1;
}

int walrec_decode_samples(const void *rec, size_t len, walrec_sample *out, size_t cap, size_t *n,
                          kiln_err *err) {
    dec d;
    uint64_t ref0, t0;
    *n = 0;
    int rc = dec_start(&d, rec, len, WALREC_SAMPLES, err);
    if (rc || (rc = dec_bases(&d, &ref0, &t0, err)) <= 0)
        return rc;
    size_t k = 0;
    const uint8_t *p = d.base;
    while (d.off < len) {
        if (k == cap)
            return kiln_err_set(err, KILN_ERANGE, "walrec: samples record: more than %zu samples", cap);
        /* fast path: both deltas fit three bytes each (the common case: references ascend
         * by small steps within a record, times are mostly equal), no bounds checks needed */
        if (len - d.off >= 14) {
            const uint8_t *q = p + d.off;
            uint64_t ur, ut;
            size_t a;
            if (q[0] < 0x80)
                ur = q[0], a = 1;
            else if (q[1] < 0x80)
                ur = (q[0] & 0x7fu) | (uint64_t)q[1] << 7, a = 2;
            else if (q[2] < 0x80)
                ur = (q[0] & 0x7fu) | (uint64_t)(q[1] & 0x7f) << 7 | (uint64_t)q[2] << 14, a = 3;
            else
                goto slow;
            if (q[a] < 0x80)
                ut = q[a], a += 1;
            else if (q[a + 1] < 0x80)
                ut = (q[a] & 0x7fu) | (uint64_t)q[a + 1] << 7, a += 2;
            else if (q[a + 2] < 0x80)
                ut = (q[a] & 0x7fu) | (uint64_t)(q[a + 1] & 0x7f) << 7 | (uint64_t)q[a + 2] << 14, a += 3;
            else
                goto slow;
            int64_t dr = (int64_t)(ur >> 1) ^ -(int64_t)(ur & 1);
            int64_t dt = (int64_t)(ut >> 1) ^ -(int64_t)(ut & 1);
            out[k].ref = ref0 + (uint64_t)dr;
            out[k].t = (int64_t)(t0 + (uint64_t)dt);
            out[k].v = double_from_bits(be64_get(q + a));
            d.off += a + 8;
            k++;
            continue;
        }
    slow:;
        int64_t dr = dec_varint(&d);
        int64_t dt = dec_varint(&d);
        uint64_t v = dec_be64(&d);
        if (d.bad) {
            *n = k;
            return dec_error(&d, err);
        }
        out[k].ref = ref0 + (uint64_t)dr;
        out[k].t = (int64_t)(t0 + (uint64_t)dt);
        out[k].v = double_from_bits(v);
        k++;
    }
    *n = k;
    return 0;
}

int walrec_decode_tombstones(const void *rec, size_t len, walrec_tombstone *out, size_t cap, size_t *n,
                             kiln_err *err) {
    dec d;
    *n = 0;
    int rc = dec_start(&d, rec, len, WALREC_TOMBSTONES, err);
    if (rc)
        return rc;
    size_t k = 0;
    while (dec_left(&d) > 0) {
        if (k == cap)
            return kiln_err_set(err, KILN_ERANGE, "walrec: tombstones record: more than %zu entries", cap);
        out[k].ref = dec_be64(&d);
        out[k].mint = dec_varint(&d);
        out[k].maxt = dec_varint(&d);
        if (d.bad)
            return dec_error(&d, err);
        k++;
    }
    *n = k;
    return 0;
}

int walrec_decode_exemplars(const void *rec, size_t len, arena *a, walrec_exemplar **out, size_t *n,
                            kiln_err *err) {
    dec d;
    uint64_t ref0, t0;
    *out = NULL;
    *n = 0;
    int rc = dec_start(&d, rec, len, WALREC_EXEMPLARS, err);
    if (rc || (rc = dec_bases(&d, &ref0, &t0, err)) <= 0)
        return rc;
    size_t max = (len - d.off) / 11 + 1; /* 2 deltas + value + label count */
    walrec_exemplar *e = arena_alloc(a, max * sizeof *e);
    if (!e)
        return kiln_err_set(err, KILN_ENOMEM, "walrec: exemplars record: out of memory");
    size_t k = 0;
    for (; dec_left(&d) > 0; k++) {
        if ((rc = dec_entry(&d, 11, k, max, err)))
            return rc;
        e[k].ref = ref0 + (uint64_t)dec_varint(&d);
        e[k].t = (int64_t)(t0 + (uint64_t)dec_varint(&d));
        e[k].v = double_from_bits(dec_be64(&d));
        if ((rc = dec_labels(&d, a, &e[k].labels, &e[k].nlabels, err)))
            return rc;
    }
    *out = e;
    *n = k;
    return 0;
}

/* ---- filters ------------------------------------------------------------------ */

/* A checkpoint filter's output: a record of the input's type, started at the
 * first kept entry, appended to `out` from `start` on. */
typedef struct filt {
    buf *out;
    size_t start;
    size_t nk, nd; /* entries kept, dropped */
} filt;

/* Ends a filter: adds the counts, or on a decoding error in d or a lost
 * append takes back what the filter appended. */
KILN_MUST_CHECK static int filt_end(filt *f, const dec *d, uint64_t *kept, uint64_t *dropped, kiln_err *err) {
    int rc = d->bad ? dec_error(d, err) : 0;
    if (!rc && buf_error(f->out))
        rc = kiln_err_set(err, KILN_ENOMEM, "walrec: %s record: out of memory", d->what);
    if (rc) {
        f->out->len = f->start;
        return rc;
    }
    if (kept)
        *kept += f->nk;
    if (dropped)
        *dropped += f->nd;
    return 0;
}

int walrec_filter_metadata(const void *rec, size_t len, int (*keep)(uint64_t ref, void *data), void *data,
                           buf *out, uint64_t *kept, uint64_t *dropped, kiln_err *err) {
    dec d;
    int rc = dec_start(&d, rec, len, WALREC_METADATA, err);
    if (rc)
        return rc;
    filt f = {out, out->len, 0, 0};
    while (dec_left(&d) > 0) {
        size_t e0 = d.off;
        uint64_t ref = dec_uvarint(&d);
        (void)dec_byte(&d); /* metric type */
        uint64_t nf = dec_uvarint(&d);
        for (uint64_t i = 0; i < nf && !d.bad; i++) {
            size_t sl;
            (void)dec_str(&d, &sl);
            (void)dec_str(&d, &sl);
        }
        if (d.bad)
            break;
        if (!keep(ref, data)) {
            f.nd++;
            continue;
        }
        if (f.nk++ == 0)
            buf_putc(out, WALREC_METADATA);
        buf_append(out, d.base + e0, d.off - e0);
    }
    return filt_end(&f, &d, kept, dropped, err);
}

/* A count of entries of `min` bytes or more each that must fit in the rest
 * of the record, and an array of them from a (NULL: none wanted, or none).
 * Failures mark d. */
static void *dec_array(dec *d, uint64_t *n, size_t min, size_t size, arena *a) {
    *n = dec_uvarint(d);
    if (*n > dec_left(d) / min) {
        dec_fail(d, "entry count beyond the record");
        return NULL;
    }
    void *v = a && *n ? arena_alloc_nz(a, (size_t)*n * size) : NULL;
    if (a && *n && !v)
        dec_fail(d, "out of memory");
    return v;
}

/*
 * One histogram entry's body (after the two deltas), into h when not NULL (arrays from a; integer buckets,
 * written as deltas, made absolute), else only skipped.  Failures mark d.
 */
static void read_histogram(dec *d, int is_float, int custom, arena *a, histogram *h) {
    uint8_t hint = dec_byte(d);
    int64_t schema = dec_varint(d);
    double zt = double_from_bits(dec_be64(d)), zc, cnt;
    if (is_float) {
        zc = double_from_bits(dec_be64(d));
        cnt = double_from_bits(dec_be64(d));
    } else {
        zc = (double)dec_uvarint(d);
        cnt = (double)dec_uvarint(d);
    }
    double sum = double_from_bits(dec_be64(d));
    if (h) {
        memset(h, 0, sizeof *h);
        h->hint = hint <= HIST_HINT_GAUGE ? hint : 0;
        h->schema = schema >= INT32_MIN && schema <= INT32_MAX ? (int32_t)schema : INT32_MIN;
        h->is_int = (uint8_t)!is_float;
        h->zero_threshold = zt;
        h->zero_count = zc;
        h->count = cnt;
        h->sum = sum;
    }
    for (int side = 0; side < 2; side++) {
        uint64_t ns;
        hist_span *sp = dec_array(d, &ns, 2, sizeof *sp, h ? a : NULL);
        if (d->bad)
            return;
        for (uint64_t i = 0; i < ns && !d->bad; i++) {
            int64_t off = dec_varint(d);
            uint64_t l = dec_uvarint(d);
            if (sp) {
                sp[i].offset = (int32_t)off;
                sp[i].length = (uint32_t)l;
            }
            if (off < INT32_MIN || off > INT32_MAX || l > UINT32_MAX)
                dec_fail(d, "span out of range");
        }
        if (h && side == 0) {
            h->pos_spans = sp;
            h->npos_spans = (uint32_t)ns;
        } else if (h) {
            h->neg_spans = sp;
            h->nneg_spans = (uint32_t)ns;
        }
    }
    for (int side = 0; side < 2; side++) {
        uint64_t nb;
        double *v = dec_array(d, &nb, is_float ? 8 : 1, sizeof *v, h ? a : NULL);
        if (d->bad)
            return;
        int64_t run = 0;
        for (uint64_t i = 0; i < nb && !d->bad; i++) {
            double x;
            if (is_float) {
                x = double_from_bits(dec_be64(d));
            } else {
                run = (int64_t)((uint64_t)run + (uint64_t)dec_varint(d));
                x = (double)run;
            }
            if (v)
                v[i] = x;
        }
        if (h && side == 0) {
            h->pos = v;
            h->npos = (uint32_t)nb;
        } else if (h) {
            h->neg = v;
            h->nneg = (uint32_t)nb;
        }
    }
    if (custom) {
        uint64_t nc;
        double *v = dec_array(d, &nc, 8, sizeof *v, h ? a : NULL);
        if (d->bad)
            return;
        for (uint64_t i = 0; i < nc && !d->bad; i++) {
            double x = double_from_bits(dec_be64(d));
            if (v)
                v[i] = x;
        }
        if (h) {
            h->custom_values = v;
            h->ncustom = (uint32_t)nc;
        }
    }
}

static int hist_type_is_float(int type) {
    return type == WALREC_FLOAT_HISTOGRAM_SAMPLES || type == WALREC_CUSTOM_BUCKETS_FLOAT_HISTOGRAM_SAMPLES;
}

static int hist_type_is_custom(int type) {
    return type >= WALREC_CUSTOM_BUCKETS_HISTOGRAM_SAMPLES;
}

int walrec_histogram_type(const histogram *h) {
    int custom = h->schema == HIST_SCHEMA_CUSTOM;
    if (h->is_int)
        return custom ? WALREC_CUSTOM_BUCKETS_HISTOGRAM_SAMPLES : WALREC_HISTOGRAM_SAMPLES;
    return custom ? WALREC_CUSTOM_BUCKETS_FLOAT_HISTOGRAM_SAMPLES : WALREC_FLOAT_HISTOGRAM_SAMPLES;
}

int walrec_encode_histograms(buf *out, const walrec_histogram *v, size_t n, int type) {
    int is_float = hist_type_is_float(type), custom = hist_type_is_custom(type);
    size_t need = 17;
    for (size_t i = 0; i < n; i++)
        need += 20 + 10 + 8 * 4 + 20 + 2 * 10 + (v[i].h.npos_spans + v[i].h.nneg_spans) * 15 + 2 * 10 +
                (v[i].h.npos + v[i].h.nneg) * 10 + 10 + v[i].h.ncustom * 8;
    uint8_t *p = enc_begin(out, need, type);
    if (!p)
        return KILN_ENOMEM;
    if (n) {
        uint64_t ref0 = v[0].ref, t0 = (uint64_t)v[0].t;
        p = put_bases(p, ref0, t0);
        for (size_t i = 0; i < n; i++) {
            const histogram *h = &v[i].h;
            p = put_deltas(p, v[i].ref, (uint64_t)v[i].t, ref0, t0);
            *p++ = h->hint;
            p += walrec_put_varint(p, h->schema);
            be64_put(p, double_to_bits(h->zero_threshold));
            p += 8;
            if (is_float) {
                be64_put(p, double_to_bits(h->zero_count));
                be64_put(p + 8, double_to_bits(h->count));
                p += 16;
            } else {
                p += walrec_put_uvarint(p, (uint64_t)h->zero_count);
                p += walrec_put_uvarint(p, (uint64_t)h->count);
            }
            be64_put(p, double_to_bits(h->sum));
            p += 8;
            const hist_span *sp[2] = {h->pos_spans, h->neg_spans};
            const uint32_t nsp[2] = {h->npos_spans, h->nneg_spans};
            for (int side = 0; side < 2; side++) {
                p += walrec_put_uvarint(p, nsp[side]);
                for (uint32_t k = 0; k < nsp[side]; k++) {
                    p += walrec_put_varint(p, sp[side][k].offset);
                    p += walrec_put_uvarint(p, sp[side][k].length);
                }
            }
            const double *bv[2] = {h->pos, h->neg};
            const uint32_t nb[2] = {h->npos, h->nneg};
            for (int side = 0; side < 2; side++) {
                p += walrec_put_uvarint(p, nb[side]);
                int64_t prev = 0;
                for (uint32_t k = 0; k < nb[side]; k++) {
                    if (is_float) {
                        be64_put(p, double_to_bits(bv[side][k]));
                        p += 8;
                    } else {
                        p += walrec_put_varint(p, (int64_t)bv[side][k] - prev);
                        prev = (int64_t)bv[side][k];
                    }
                }
            }
            if (custom) {
                p += walrec_put_uvarint(p, h->ncustom);
                for (uint32_t k = 0; k < h->ncustom; k++, p += 8)
                    be64_put(p, double_to_bits(h->custom_values[k]));
            }
        }
    }
    return enc_end(out, p);
}

/* A histogram record being read: the cursor, its type and bases. */
typedef struct hdec {
    dec d;
    int type;
    uint64_t ref0, t0;
} hdec;

/* Starts a histogram record (types 7-10): 1 with its bases read, 0 when it
 * has no entries, or KILN_ECORRUPT. */
KILN_MUST_CHECK static int hist_dec_start(hdec *h, const void *rec, size_t len, kiln_err *err) {
    h->type = walrec_type(rec, len);
    if (h->type < WALREC_HISTOGRAM_SAMPLES)
        return kiln_err_set(err, KILN_ECORRUPT, "walrec: histogram samples record: offset 0: type %d",
                            len ? ((const uint8_t *)rec)[0] : -1);
    int rc = dec_start(&h->d, rec, len, h->type, err);
    return rc ? rc : dec_bases(&h->d, &h->ref0, &h->t0, err);
}

int walrec_decode_histograms(const void *rec, size_t len, arena *a, walrec_histogram **out, size_t *n,
                             kiln_err *err) {
    hdec hd;
    *out = NULL;
    *n = 0;
    int rc = hist_dec_start(&hd, rec, len, err);
    if (rc <= 0)
        return rc;
    size_t cap = dec_left(&hd.d) / 8 + 1; /* an entry takes 8 bytes at least */
    walrec_histogram *v = arena_alloc_nz(a, cap * sizeof *v);
    if (!v)
        return kiln_err_set(err, KILN_ENOMEM, "walrec: out of memory");
    while (dec_left(&hd.d) > 0 && *n < cap) {
        walrec_histogram *e = &v[*n];
        e->ref = hd.ref0 + (uint64_t)dec_varint(&hd.d);
        e->t = (int64_t)(hd.t0 + (uint64_t)dec_varint(&hd.d));
        read_histogram(&hd.d, hist_type_is_float(hd.type), hist_type_is_custom(hd.type), a, &e->h);
        if (hd.d.bad)
            break;
        (*n)++;
    }
    if (hd.d.bad)
        return strcmp(hd.d.bad, "out of memory") == 0
                   ? kiln_err_set(err, KILN_ENOMEM, "walrec: out of memory")
                   : dec_error(&hd.d, err);
    *out = v;
    return 0;
}

int walrec_filter_histograms(const void *rec, size_t len, int64_t mint, buf *out, uint64_t *kept,
                             uint64_t *dropped, kiln_err *err) {
    hdec hd;
    int rc = hist_dec_start(&hd, rec, len, err);
    if (rc <= 0)
        return rc;
    dec d = hd.d;
    uint64_t ref0 = hd.ref0, t0 = hd.t0;
    int is_float = hist_type_is_float(hd.type), custom = hist_type_is_custom(hd.type), type = hd.type;
    filt f = {out, out->len, 0, 0};
    uint64_t nref0 = 0, nt0 = 0;
    while (dec_left(&d) > 0) {
        uint64_t ref = ref0 + (uint64_t)dec_varint(&d);
        int64_t t = (int64_t)(t0 + (uint64_t)dec_varint(&d));
        size_t body = d.off;
        read_histogram(&d, is_float, custom, NULL, NULL);
        if (d.bad)
            break;
        if (t < mint) {
            f.nd++;
            continue;
        }
        uint8_t hdr[20];
        if (f.nk++ == 0) {
            /* the kept entries are re-based on the first of them */
            nref0 = ref;
            nt0 = (uint64_t)t;
            hdr[0] = (uint8_t)type;
            buf_append(out, hdr, (size_t)(put_bases(hdr + 1, nref0, nt0) - hdr));
        }
        buf_append(out, hdr, (size_t)(put_deltas(hdr, ref, (uint64_t)t, nref0, nt0) - hdr));
        buf_append(out, d.base + body, d.off - body);
    }
    return filt_end(&f, &d, kept, dropped, err);
}
