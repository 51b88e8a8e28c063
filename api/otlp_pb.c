/*
 * otlp_pb.c - OTLP's protobuf bodies decoded in one pass into the
 * protobuf-c structs of api/otlp.proto (what api/otlp.c translates), in
 * place of protobuf_c_message_unpack, which took a quarter of the
 * receiver's time: it reads every message twice (a scan that records each
 * field, then the copy), and an OTLP data point is some fifteen messages
 * (Metric, Gauge, NumberDataPoint, a KeyValue and an AnyValue per
 * attribute).
 *
 * Driven by the same protobuf-c descriptors: a field is found by its number
 * (the descriptors list fields by number, so mostly fields[number - 1]), a
 * repeated message field grows an array of pointers by doubling in the
 * allocator, a packed repeated number knows its count from its length
 * (fixed widths) or one scan of its varints.  What protobuf-c does that this
 * does too: last value wins for a scalar, a message given twice is merged,
 * numbers are accepted packed and unpacked, unknown fields are skipped (not
 * kept), a wire type that does not fit its field is an error (but a bool
 * takes any, as protobuf-c reads it), as are
 * truncated fields, varints over 10 bytes and groups.  Strings and bytes are
 * copied (NUL-terminated) into the allocator, equal short strings mostly
 * into one copy (str_copy: the message's strings are read-only); nesting is
 * bounded at PB_MAX_DEPTH.
 *
 * Called by api/otlp.c (otlp_handle) on HTTP worker threads, any number at
 * once; no state outside the call.
 */
#include <string.h>

#include "api/otlp_private.h"

#define PB_MAX_DEPTH 64

/* Memory is taken from the caller's allocator PB_CHUNK bytes at a time and
 * handed out here: a call through the allocator for every struct and
 * string cost more than the decoding. */
#define PB_CHUNK ((size_t)32 << 10)

/* Short strings (attribute keys, metric names and units) are kept once a
 * request: a table of the last of each hash slot. */
#define PB_INTERN 256
#define PB_INTERN_MAX 64

typedef struct pb {
    ProtobufCAllocator *al;
    char *cur;
    size_t left;
    int rc; /* 0, KILN_EINVAL (malformed), KILN_ENOMEM (the allocator failed) */
    struct {
        const char *s;
        uint64_t a, b; /* str_words */
        size_t n;
    } interned[PB_INTERN];
} pb;

static void *palloc(pb *d, size_t n) {
    n = ((n ? n : 1) + 7) & ~(size_t)7;
    if (n > d->left) {
        size_t piece = n > PB_CHUNK / 4 ? n : PB_CHUNK; /* a big array gets its own piece */
        char *p = d->al->alloc(d->al->allocator_data, piece);
        if (!p) {
            if (!d->rc)
                d->rc = KILN_ENOMEM;
            return NULL;
        }
        if (piece != PB_CHUNK)
            return p;
        d->cur = p;
        d->left = piece;
    }
    void *p = d->cur;
    d->cur += n;
    d->left -= n;
    return p;
}

/* s[n] as a NUL-terminated string in the allocator, or NULL.  A short one
 * is the same copy as the last equal one in its slot: the keys of every
 * point's attributes and the metric names come back again and again, and
 * api/otlp.c finds its cached translations of them by the pointer. */
static char *str_copy(pb *d, const uint8_t *s, size_t n) {
    size_t slot = 0;
    uint64_t a = 0, b = 0;
    if (n <= PB_INTERN_MAX) {
        /* two words that are the whole string up to 16 bytes: its first and last 8 (4; 1) */
        if (n >= 8) {
            memcpy(&a, s, 8);
            memcpy(&b, s + n - 8, 8);
        } else if (n >= 4) {
            uint32_t x, y;
            memcpy(&x, s, 4);
            memcpy(&y, s + n - 4, 4);
            a = x;
            b = y;
        } else if (n) {
            a = (uint64_t)s[0] | (uint64_t)s[n / 2] << 8 | (uint64_t)s[n - 1] << 16;
        }
        slot = (size_t)(((a * 0x9e3779b97f4a7c15u) ^ ((b + n) * 0xc2b2ae3d27d4eb4fu)) >> 56) % PB_INTERN;
        if (d->interned[slot].s && d->interned[slot].n == n && d->interned[slot].a == a &&
            d->interned[slot].b == b && (n <= 16 || !memcmp(d->interned[slot].s, s, n)))
            return (char *)d->interned[slot].s;
    }
    char *c = palloc(d, n + 1);
    if (!c)
        return NULL;
    memcpy(c, s, n);
    c[n] = 0;
    if (n <= PB_INTERN_MAX) {
        d->interned[slot].s = c;
        d->interned[slot].a = a;
        d->interned[slot].b = b;
        d->interned[slot].n = n;
    }
    return c;
}

static int bad(pb *d) {
    if (!d->rc)
        d->rc = KILN_EINVAL;
    return -1;
}

/* A varint at *p (below end) into *v, *p past it.  0 or -1. */
static inline int varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    const uint8_t *q = *p;
    if (q < end && *q < 0x80) {
        *v = *q;
        *p = q + 1;
        return 0;
    }
    uint64_t r = 0;
    for (int shift = 0; shift < 70 && q < end; shift += 7) {
        uint8_t b = *q++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            *v = r;
            *p = q;
            return 0;
        }
    }
    return -1;
}

static const ProtobufCFieldDescriptor *field_of(const ProtobufCMessageDescriptor *md, uint32_t id) {
    if (id && id <= md->n_fields && md->fields[id - 1].id == id)
        return &md->fields[id - 1];
    for (unsigned i = 0; i < md->n_fields; i++)
        if (md->fields[i].id == id)
            return &md->fields[i];
    return NULL;
}

static int wire_of(ProtobufCType t) {
    switch (t) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return PROTOBUF_C_WIRE_TYPE_32BIT;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return PROTOBUF_C_WIRE_TYPE_64BIT;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    default:
        return PROTOBUF_C_WIRE_TYPE_VARINT;
    }
}

/* One number of type t from *p into dst (its C type's width).  0 or -1. */
static int number(const uint8_t **p, const uint8_t *end, ProtobufCType t, void *dst) {
    uint64_t v;
    switch (wire_of(t)) {
    case PROTOBUF_C_WIRE_TYPE_32BIT:
        if (end - *p < 4)
            return -1;
        memcpy(dst, *p, 4); /* little-endian hosts only, as kiln's WAL */
        *p += 4;
        return 0;
    case PROTOBUF_C_WIRE_TYPE_64BIT:
        if (end - *p < 8)
            return -1;
        memcpy(dst, *p, 8);
        *p += 8;
        return 0;
    }
    if (varint(p, end, &v) != 0)
        return -1;
    switch (t) {
    case PROTOBUF_C_TYPE_SINT32:
        *(int32_t *)dst = (int32_t)((uint32_t)(v >> 1) ^ -(uint32_t)(v & 1));
        break;
    case PROTOBUF_C_TYPE_SINT64:
        *(int64_t *)dst = (int64_t)((v >> 1) ^ -(v & 1));
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
        *(uint64_t *)dst = v;
        break;
    case PROTOBUF_C_TYPE_BOOL:
        *(protobuf_c_boolean *)dst = v != 0;
        break;
    default: /* int32, uint32, enum: the low 32 bits */
        *(uint32_t *)dst = (uint32_t)v;
    }
    return 0;
}

static int message_into(pb *d, const ProtobufCMessageDescriptor *md, char *m, const uint8_t *p,
                        const uint8_t *end, int depth);

/* Appends n elements' room to the repeated field f of m; returns the first
 * new element, or NULL.  Arrays grow by doubling (the old one is left in the
 * allocator): the capacity is the count rounded up to a power of two. */
static char *grow(pb *d, const ProtobufCFieldDescriptor *f, char *m, size_t n) {
    size_t *count = (size_t *)(m + f->quantifier_offset);
    char **arr = (char **)(m + f->offset);
    size_t esz = otlp_field_size(f->type), have = *count, cap = 4;
    while (cap < have)
        cap <<= 1;
    if (!have || have + n > cap) {
        size_t nc = cap;
        while (nc < have + n)
            nc <<= 1;
        if (nc > ((size_t)1 << 40) / esz)
            return bad(d), NULL;
        char *na = palloc(d, nc * esz);
        if (!na)
            return NULL;
        if (have)
            memcpy(na, *arr, have * esz);
        *arr = na;
    }
    *count = have + n;
    return *arr + have * esz;
}

/*
 * The common attribute, KeyValue{key: short string, value: AnyValue{
 * string_value: short string}} encoded in the one usual way (each field
 * once, in order, lengths under 128), decoded as message_into would into
 * one allocation: a data point has one per label, and the generic path
 * (two messages, a lookup, an init call and an allocation per field) was
 * most of the decoder's time.  1 when p[len] is not of that form (the
 * caller decodes it the generic way), 0 done, -1 no memory.
 */
static int key_value_fast(pb *d, char **slot, const uint8_t *p, size_t len) {
    static const Kiln__Otlp__KeyValue kv0 = KILN__OTLP__KEY_VALUE__INIT;
    static const Kiln__Otlp__AnyValue av0 = KILN__OTLP__ANY_VALUE__INIT;
    if (len < 6 || p[0] != 0x0a || p[1] >= 0x80 || (size_t)p[1] + 6 > len)
        return 1;
    size_t kl = p[1];
    const uint8_t *q = p + 2 + kl;
    if (q[0] != 0x12 || q[1] >= 0x80 || q[2] != 0x0a || q[3] >= 0x80 || (size_t)q[3] + 2 != q[1] ||
        (size_t)(q + 4 + q[3] - p) != len)
        return 1;
    size_t vl = q[3];
    size_t kvs = (sizeof kv0 + 7) & ~(size_t)7, avs = (sizeof av0 + 7) & ~(size_t)7;
    char *key = str_copy(d, p + 2, kl), *b = key ? palloc(d, kvs + avs + vl + 1) : NULL;
    if (!b)
        return -1;
    Kiln__Otlp__KeyValue *kv = (Kiln__Otlp__KeyValue *)b;
    Kiln__Otlp__AnyValue *av = (Kiln__Otlp__AnyValue *)(b + kvs);
    char *val = b + kvs + avs;
    memcpy(val, q + 4, vl);
    val[vl] = 0;
    *kv = kv0;
    *av = av0;
    av->value_case = KILN__OTLP__ANY_VALUE__VALUE_STRING_VALUE;
    av->string_value = val;
    kv->key = key;
    kv->value = av;
    *slot = b;
    return 0;
}

/* A length-delimited field: string, bytes, message or packed numbers. */
static int delimited(pb *d, const ProtobufCFieldDescriptor *f, char *m, const uint8_t *p, size_t len,
                     int depth) {
    int rep = f->label == PROTOBUF_C_LABEL_REPEATED;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        const ProtobufCMessageDescriptor *sub = f->descriptor;
        if (rep && sub == &kiln__otlp__key_value__descriptor && depth + 2 <= PB_MAX_DEPTH) {
            char **slot = (char **)grow(d, f, m, 1);
            if (!slot)
                return -1;
            int rc = key_value_fast(d, slot, p, len);
            if (rc <= 0)
                return rc;
            if (!(*slot = palloc(d, sub->sizeof_message)))
                return -1;
            sub->message_init((ProtobufCMessage *)*slot);
            return message_into(d, sub, *slot, p, p + len, depth + 1);
        }
        char **slot = (char **)(rep ? grow(d, f, m, 1) : m + f->offset);
        if (!slot)
            return -1;
        /* a oneof's members share their storage: another member's struct is not this one's */
        int other =
            (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *(uint32_t *)(m + f->quantifier_offset) != f->id;
        if (rep || !*slot || other) {
            if (!(*slot = palloc(d, sub->sizeof_message)))
                return -1;
            sub->message_init((ProtobufCMessage *)*slot);
        }
        return message_into(d, sub, *slot, p, p + len, depth + 1);
    }
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        char *s = str_copy(d, p, len);
        void *dst = s ? (rep ? grow(d, f, m, 1) : m + f->offset) : NULL;
        if (!dst)
            return -1;
        *(char **)dst = s;
        return 0;
    }
    if (f->type == PROTOBUF_C_TYPE_BYTES) {
        char *s = palloc(d, len + 1);
        if (!s)
            return -1;
        memcpy(s, p, len);
        s[len] = 0;
        void *dst = rep ? grow(d, f, m, 1) : m + f->offset;
        if (!dst)
            return -1;
        ((ProtobufCBinaryData *)dst)->data = (uint8_t *)s;
        ((ProtobufCBinaryData *)dst)->len = len;
        return 0;
    }
    if (!rep && f->type == PROTOBUF_C_TYPE_BOOL) {
        /* protobuf-c reads a bool of any wire type as "a byte of it, length prefix included, is not 0" */
        *(protobuf_c_boolean *)(m + f->offset) = len != 0;
        return 0;
    }
    if (!rep)
        return bad(d); /* a number cannot be length-delimited */
    const uint8_t *end = p + len;
    size_t n;
    int w = wire_of(f->type);
    if (w == PROTOBUF_C_WIRE_TYPE_64BIT || w == PROTOBUF_C_WIRE_TYPE_32BIT) {
        size_t width = w == PROTOBUF_C_WIRE_TYPE_64BIT ? 8 : 4;
        if (len % width)
            return bad(d);
        n = len / width;
    } else {
        n = 0;
        for (const uint8_t *q = p; q < end; q++)
            n += *q < 0x80;
        if (len && end[-1] >= 0x80)
            return bad(d);
    }
    if (n == 0)
        return 0;
    char *dst = grow(d, f, m, n);
    if (!dst)
        return -1;
    size_t esz = otlp_field_size(f->type);
    for (size_t i = 0; i < n; i++)
        if (number(&p, end, f->type, dst + i * esz) != 0)
            return bad(d);
    return p == end ? 0 : bad(d);
}

/* Skips an unknown field of wire type w.  0 or -1. */
static int skip(const uint8_t **p, const uint8_t *end, int w) {
    uint64_t v;
    switch (w) {
    case PROTOBUF_C_WIRE_TYPE_VARINT:
        return varint(p, end, &v);
    case PROTOBUF_C_WIRE_TYPE_64BIT:
        if (end - *p < 8)
            return -1;
        *p += 8;
        return 0;
    case PROTOBUF_C_WIRE_TYPE_32BIT:
        if (end - *p < 4)
            return -1;
        *p += 4;
        return 0;
    case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED:
        if (varint(p, end, &v) != 0 || v > (uint64_t)(end - *p))
            return -1;
        *p += v;
        return 0;
    }
    return -1; /* groups (3, 4) and the unused 6, 7 */
}

/* The fields of one message, p to end, into m (initialized). */
static int message_into(pb *d, const ProtobufCMessageDescriptor *md, char *m, const uint8_t *p,
                        const uint8_t *end, int depth) {
    if (depth > PB_MAX_DEPTH)
        return bad(d);
    while (p < end) {
        uint64_t key;
        if (varint(&p, end, &key) != 0 || key >> 3 == 0 || key >> 3 > 0x1fffffff)
            return bad(d);
        int w = (int)(key & 7);
        const ProtobufCFieldDescriptor *f = field_of(md, (uint32_t)(key >> 3));
        if (!f) {
            if (skip(&p, end, w) != 0)
                return bad(d);
            continue;
        }
        if (w == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) {
            uint64_t len;
            if (varint(&p, end, &len) != 0 || len > (uint64_t)(end - p))
                return bad(d);
            if (delimited(d, f, m, p, (size_t)len, depth) != 0)
                return -1;
            p += len;
        } else {
            int fixed_bool = f->type == PROTOBUF_C_TYPE_BOOL &&
                             (w == PROTOBUF_C_WIRE_TYPE_64BIT || w == PROTOBUF_C_WIRE_TYPE_32BIT);
            if (w != wire_of(f->type) && !fixed_bool)
                return bad(d);
            void *dst = f->label == PROTOBUF_C_LABEL_REPEATED ? grow(d, f, m, 1) : m + f->offset;
            if (!dst)
                return -1;
            if (fixed_bool) { /* as protobuf-c: true when a byte has one of its low 7 bits set */
                size_t width = w == PROTOBUF_C_WIRE_TYPE_64BIT ? 8 : 4;
                if ((size_t)(end - p) < width)
                    return bad(d);
                protobuf_c_boolean v = 0;
                for (size_t i = 0; i < width; i++)
                    v |= (p[i] & 0x7f) != 0;
                *(protobuf_c_boolean *)dst = v;
                p += width;
            } else if (number(&p, end, f->type, dst) != 0) {
                return bad(d);
            }
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            *(uint32_t *)(m + f->quantifier_offset) = f->id;
        else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
                 f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING)
            *(protobuf_c_boolean *)(m + f->quantifier_offset) = 1;
    }
    return 0;
}

int otlp_pb_decode(const uint8_t *s, size_t n, const ProtobufCMessageDescriptor *md, ProtobufCAllocator *al,
                   ProtobufCMessage **out) {
    pb d = {.al = al, .cur = NULL, .left = 0, .rc = 0};
    *out = NULL;
    char *m = palloc(&d, md->sizeof_message);
    if (!m)
        return d.rc;
    md->message_init((ProtobufCMessage *)m);
    if (message_into(&d, md, m, s, s + n, 0) != 0)
        return d.rc ? d.rc : KILN_EINVAL;
    *out = (ProtobufCMessage *)m;
    return 0;
}
