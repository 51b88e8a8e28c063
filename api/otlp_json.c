/*
 * otlp_json.c - OTLP/HTTP's JSON bodies (Content-Type: application/json)
 * decoded into the same protobuf-c structs the protobuf path gives
 * api/otlp.c, so one translation serves both.
 *
 * The decoder walks the JSON once, driven by the messages' protobuf-c
 * descriptors (api/otlp.proto): an object is a message, a key names a field
 * by its lowerCamelCase JSON name or its proto name, an array fills a
 * repeated field.  The OTLP/HTTP rules on top of proto3's JSON mapping:
 *
 *   | field type                    | JSON                                     |
 *   |-------------------------------|------------------------------------------|
 *   | int64, uint64, fixed64        | "123" or 123                             |
 *   | int32, uint32, sint32         | 123 (or "123")                           |
 *   | double                        | 1.5, or "NaN", "Infinity", "-Infinity"   |
 *   | enum (temporality: an int32)  | 2, or "AGGREGATION_TEMPORALITY_CUMULATIVE" |
 *   | bytes trace_id, span_id       | hex                                      |
 *   | other bytes                   | base64 (standard or URL-safe)            |
 *   | unknown key                   | ignored                                  |
 *   | null                          | the field's default                      |
 *
 * Every struct, array and string comes from the caller's allocator (the
 * request arena, bounded): nothing is freed here.  Nesting is bounded at
 * JD_MAX_DEPTH.
 *
 * Called by api/otlp.c (otlp_handle) on HTTP worker threads, any number at
 * once; no state outside the call.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/otlp_private.h"
#include "util/util.h"

#define JD_MAX_DEPTH 64

typedef struct jd {
    const char *s, *p, *end;
    ProtobufCAllocator *al;
    char *msg;
    size_t cap;
    int rc; /* 0, or the first failure */
} jd;

static void fail(jd *j, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(jd *j, int rc, const char *fmt, ...) {
    if (j->rc)
        return;
    j->rc = rc;
    if (rc != KILN_EINVAL) {
        snprintf(j->msg, j->cap, "out of memory decoding the JSON body");
        return;
    }
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(j->msg, j->cap, "JSON: %s at byte %zu", what, (size_t)(j->p - j->s));
}

static void *jalloc(jd *j, size_t n) {
    void *p = j->al->alloc(j->al->allocator_data, n ? n : 1);
    if (!p)
        fail(j, KILN_ENOMEM, "out of memory");
    return p;
}

static void ws(jd *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* Consumes c (after blanks) or fails. */
static int expect(jd *j, char c) {
    ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 0;
    }
    fail(j, KILN_EINVAL, j->p < j->end ? "expected '%c'" : "expected '%c', found the end", c);
    return -1;
}

/* 1 and consumes c when it comes next (after blanks), else 0. */
static int accept(jd *j, char c) {
    ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

static int hexval(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int hex4(jd *j, const char *q, uint32_t *cp) {
    *cp = 0;
    for (int i = 0; i < 4; i++) {
        int v = q + i < j->end ? hexval(q[i]) : -1;
        if (v < 0)
            return -1;
        *cp = *cp << 4 | (uint32_t)v;
    }
    return 0;
}

/*
 * A JSON string (the opening quote next), unescaped and NUL-terminated in
 * the allocator: *out, *len.  A string holding NUL (\u0000) is refused: the
 * translation reads C strings.  0 or -1 (failed).
 */
static int jstring(jd *j, char **out, size_t *len) {
    if (expect(j, '"') != 0)
        return -1;
    const char *q = j->p;
    int escaped = 0;
    while (q < j->end && *q != '"') {
        if ((unsigned char)*q < 0x20) {
            j->p = q;
            fail(j, KILN_EINVAL, "control character in a string");
            return -1;
        }
        if (*q == '\\') {
            escaped = 1;
            q++;
        }
        q++;
    }
    if (q >= j->end) {
        fail(j, KILN_EINVAL, "unterminated string");
        return -1;
    }
    size_t raw = (size_t)(q - j->p);
    char *o = jalloc(j, raw + 1);
    if (!o)
        return -1;
    if (!escaped) {
        memcpy(o, j->p, raw);
        o[raw] = 0;
        *out = o;
        *len = raw;
        j->p = q + 1;
        return 0;
    }
    size_t n = 0;
    const char *r = j->p;
    while (r < q) {
        if (*r != '\\') {
            o[n++] = *r++;
            continue;
        }
        r++;
        char c = *r++;
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *simple = c && c != 'u' ? strchr(from, c) : NULL;
        if (simple) {
            o[n++] = to[simple - from];
            continue;
        }
        switch (c) {
        case 'u': {
            uint32_t cp, lo;
            if (hex4(j, r, &cp) != 0) {
                j->p = r;
                fail(j, KILN_EINVAL, "bad \\u escape");
                return -1;
            }
            r += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && r + 6 <= q && r[0] == '\\' && r[1] == 'u' &&
                hex4(j, r + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                r += 6;
            } else if (cp >= 0xD800 && cp < 0xE000) {
                cp = 0xFFFD; /* a lone surrogate */
            }
            if (cp == 0) {
                j->p = r;
                fail(j, KILN_EINVAL, "NUL character in a string");
                return -1;
            }
            /* an escape is 6 bytes and its UTF-8 at most 4 (a pair: 12 and 4) */
            n += put_utf8(o + n, cp);
            break;
        }
        default:
            j->p = r - 1;
            fail(j, KILN_EINVAL, "bad escape '\\%c'", c);
            return -1;
        }
    }
    o[n] = 0;
    *out = o;
    *len = n;
    j->p = q + 1;
    return 0;
}

/* The characters of a number token (not consumed), its length in *n. */
static const char *number_token(jd *j, size_t *n) {
    ws(j);
    const char *q = j->p;
    while (q < j->end && ((*q && strchr("+-.eE", *q)) || (*q >= '0' && *q <= '9')))
        q++;
    *n = (size_t)(q - j->p);
    return j->p;
}

static int is_literal(jd *j, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) >= n && !memcmp(j->p, lit, n)) {
        j->p += n;
        return 1;
    }
    return 0;
}

static void skip_value(jd *j, int depth);

static void skip_container(jd *j, char close, int depth) {
    j->p++;
    if (accept(j, close))
        return;
    do {
        if (close == '}') {
            char *k;
            size_t kl;
            if (jstring(j, &k, &kl) != 0 || expect(j, ':') != 0)
                return;
        }
        skip_value(j, depth + 1);
    } while (!j->rc && accept(j, ','));
    if (!j->rc)
        expect(j, close);
}

/* Any JSON value, checked and dropped (unknown keys). */
static void skip_value(jd *j, int depth) {
    ws(j);
    if (depth > JD_MAX_DEPTH) {
        fail(j, KILN_EINVAL, "nested deeper than %d", JD_MAX_DEPTH);
        return;
    }
    if (j->p >= j->end) {
        fail(j, KILN_EINVAL, "expected a value, found the end");
        return;
    }
    char *s;
    size_t n;
    switch (*j->p) {
    case '{':
        skip_container(j, '}', depth);
        return;
    case '[':
        skip_container(j, ']', depth);
        return;
    case '"':
        jstring(j, &s, &n);
        return;
    default:
        if (is_literal(j, "true") || is_literal(j, "false") || is_literal(j, "null"))
            return;
        number_token(j, &n);
        if (n == 0) {
            fail(j, KILN_EINVAL, "unexpected character '%c'", *j->p);
            return;
        }
        j->p += n;
    }
}

/* ---- scalars ------------------------------------------------------------------- */

size_t otlp_field_size(ProtobufCType t) {
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 8;
}

/* Enum names of OTLP's int32 fields (aggregation temporality). */
static const struct {
    const char *name;
    int value;
} enum_names[] = {
    {"AGGREGATION_TEMPORALITY_UNSPECIFIED", 0},
    {"AGGREGATION_TEMPORALITY_DELTA", 1},
    {"AGGREGATION_TEMPORALITY_CUMULATIVE", 2},
};

/* A number from a JSON number or string token tok[n]: an integer kind
 * (signed: 1, unsigned: 2) or a double (0).  0 or -1. */
static int parse_number(const char *tok, size_t n, int kind, int64_t *i, uint64_t *u, double *d) {
    char tmp[64];
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, tok, n);
    tmp[n] = 0;
    char *e;
    errno = 0;
    if (kind == 0) {
        if (!strcmp(tmp, "NaN") || !strcmp(tmp, "Infinity") || !strcmp(tmp, "-Infinity")) {
            *d = tmp[0] == 'N' ? NAN : tmp[0] == '-' ? -INFINITY : INFINITY;
            return 0;
        }
        *d = strtod(tmp, &e);
        return *e || !(tmp[0] == '-' || (tmp[0] >= '0' && tmp[0] <= '9')) ? -1 : 0;
    }
    if (!(tmp[0] == '-' || (tmp[0] >= '0' && tmp[0] <= '9')))
        return -1;
    if (kind == 1)
        *i = strtoll(tmp, &e, 10);
    else if (tmp[0] == '-')
        return -1;
    else
        *u = strtoull(tmp, &e, 10);
    if (*e == 0)
        return errno ? -1 : 0;
    /* 1e3, 5.0: integral values written as floating point */
    double v = strtod(tmp, &e);
    if (*e || v != floor(v) || fabs(v) > 9007199254740992.0 || (kind == 2 && v < 0))
        return -1;
    *i = (int64_t)v;
    *u = (uint64_t)(v < 0 ? 0 : v);
    return 0;
}

static int is_id_field(const ProtobufCFieldDescriptor *f) {
    return !strcmp(f->name, "trace_id") || !strcmp(f->name, "span_id");
}

static int b64val(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' || c == '-' ? 62 : c == '/' || c == '_' ? 63 : -1;
}

/* s[n] decoded in place (the output is never longer) as hex (ids) or
 * base64 into *b.  0 or -1. */
static int decode_bytes(char *s, size_t n, int hex, ProtobufCBinaryData *b) {
    size_t o = 0;
    if (hex) {
        if (n % 2)
            return -1;
        for (size_t i = 0; i < n; i += 2) {
            int hi = hexval(s[i]), lo = hexval(s[i + 1]);
            if (hi < 0 || lo < 0)
                return -1;
            s[o++] = (char)(hi << 4 | lo);
        }
    } else {
        while (n && s[n - 1] == '=')
            n--;
        uint32_t acc = 0;
        int bits = 0;
        for (size_t i = 0; i < n; i++) {
            int v = b64val(s[i]);
            if (v < 0)
                return -1;
            acc = acc << 6 | (uint32_t)v;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                s[o++] = (char)(acc >> bits);
                acc &= (1u << bits) - 1;
            }
        }
        if (bits >= 6)
            return -1; /* one character over a whole group */
    }
    b->data = (uint8_t *)s;
    b->len = o;
    return 0;
}

static void message(jd *j, const ProtobufCMessageDescriptor *d, ProtobufCMessage **out, int depth);

/* One value of field f into dst (an element: repeated fields call this per
 * item).  Returns 0, 1 for null (dst untouched), -1 failed. */
static int value(jd *j, const ProtobufCFieldDescriptor *f, void *dst, int depth) {
    ws(j);
    if (is_literal(j, "null"))
        return 1;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        message(j, f->descriptor, (ProtobufCMessage **)dst, depth + 1);
        return j->rc ? -1 : 0;
    }
    if (f->type == PROTOBUF_C_TYPE_BOOL) {
        int t = is_literal(j, "true");
        if (t || is_literal(j, "false")) {
            *(protobuf_c_boolean *)dst = t;
            return 0;
        }
        fail(j, KILN_EINVAL, "field \"%s\": expected true or false", f->name);
        return -1;
    }
    const char *tok;
    size_t n;
    char *str = NULL;
    if (j->p < j->end && *j->p == '"') {
        if (jstring(j, &str, &n) != 0)
            return -1;
        tok = str;
    } else {
        tok = number_token(j, &n);
        j->p += n;
    }
    if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_BYTES) {
        if (!str) {
            fail(j, KILN_EINVAL, "field \"%s\": expected a string", f->name);
            return -1;
        }
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            *(char **)dst = str;
        } else if (decode_bytes(str, n, is_id_field(f), dst) != 0) {
            fail(j, KILN_EINVAL, "field \"%s\": not %s", f->name, is_id_field(f) ? "hex" : "base64");
            return -1;
        }
        return 0;
    }
    int64_t i = 0;
    uint64_t u = 0;
    double dv = 0;
    int kind = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        kind = 2;
        break;
    default:
        kind = 1;
    }
    int ok = parse_number(tok, n, kind, &i, &u, &dv) == 0;
    if (!ok && str && (f->type == PROTOBUF_C_TYPE_INT32 || f->type == PROTOBUF_C_TYPE_ENUM)) {
        for (size_t k = 0; k < sizeof enum_names / sizeof enum_names[0] && !ok; k++)
            if (!strcmp(str, enum_names[k].name))
                i = enum_names[k].value, ok = 1;
    }
    if (!ok) {
        fail(j, KILN_EINVAL, "field \"%s\": bad number \"%.40s\"", f->name, n ? tok : "");
        return -1;
    }
    switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT:
        *(float *)dst = (float)dv;
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        *(double *)dst = dv;
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (u > UINT32_MAX)
            goto range;
        *(uint32_t *)dst = (uint32_t)u;
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        *(uint64_t *)dst = u;
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        *(int64_t *)dst = i;
        break;
    default: /* 32-bit signed and enums */
        if (i < INT32_MIN || i > INT32_MAX)
            goto range;
        *(int32_t *)dst = (int32_t)i;
    }
    return 0;
range:
    fail(j, KILN_EINVAL, "field \"%s\": %.40s is out of range", f->name, tok);
    return -1;
}

/* Whether key[n] names f: its proto name, or the lowerCamelCase of it. */
static int key_is(const char *key, size_t n, const ProtobufCFieldDescriptor *f) {
    const char *s = f->name;
    if (strlen(s) == n && !memcmp(s, key, n))
        return 1;
    size_t i = 0;
    for (; *s; s++) {
        char want = *s;
        if (want == '_' && s[1]) {
            s++;
            want = (*s >= 'a' && *s <= 'z') ? (char)(*s - 32) : *s;
        }
        if (i >= n || key[i] != want)
            return 0;
        i++;
    }
    return i == n;
}

/* A repeated field's JSON array into a new array of elements. */
static void repeated(jd *j, const ProtobufCFieldDescriptor *f, char *m, int depth) {
    size_t esz = otlp_field_size(f->type), n = 0, cap = 0;
    char *arr = NULL;
    if (is_literal(j, "null"))
        return;
    if (expect(j, '[') != 0)
        return;
    if (!accept(j, ']')) {
        do {
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 8;
                char *na = jalloc(j, nc * esz);
                if (!na)
                    return;
                if (n)
                    memcpy(na, arr, n * esz);
                arr = na;
                cap = nc;
            }
            memset(arr + n * esz, 0, esz);
            int rc = value(j, f, arr + n * esz, depth);
            if (rc < 0)
                return;
            if (rc == 1 && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                fail(j, KILN_EINVAL, "field \"%s\": null in an array", f->name);
                return;
            }
            n++;
        } while (accept(j, ','));
        if (expect(j, ']') != 0)
            return;
    }
    *(size_t *)(m + f->quantifier_offset) = n;
    *(void **)(m + f->offset) = arr;
}

/* An object into a new message of d. */
static void message(jd *j, const ProtobufCMessageDescriptor *d, ProtobufCMessage **out, int depth) {
    if (depth > JD_MAX_DEPTH) {
        fail(j, KILN_EINVAL, "nested deeper than %d", JD_MAX_DEPTH);
        return;
    }
    char *m = jalloc(j, d->sizeof_message);
    if (!m)
        return;
    d->message_init((ProtobufCMessage *)m);
    *out = (ProtobufCMessage *)m;
    if (expect(j, '{') != 0 || accept(j, '}'))
        return;
    do {
        char *key;
        size_t kn;
        if (jstring(j, &key, &kn) != 0 || expect(j, ':') != 0)
            return;
        const ProtobufCFieldDescriptor *f = NULL;
        for (unsigned i = 0; i < d->n_fields && !f; i++)
            if (key_is(key, kn, &d->fields[i]))
                f = &d->fields[i];
        if (!f) {
            skip_value(j, depth + 1);
            continue;
        }
        ws(j);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            repeated(j, f, m, depth);
            continue;
        }
        int rc = value(j, f, m + f->offset, depth);
        if (rc == 0 && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            *(uint32_t *)(m + f->quantifier_offset) = f->id;
        else if (rc == 0 && f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
                 f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING)
            *(protobuf_c_boolean *)(m + f->quantifier_offset) = 1;
    } while (!j->rc && accept(j, ','));
    if (!j->rc)
        expect(j, '}');
}

int otlp_json_decode(const char *s, size_t n, const ProtobufCMessageDescriptor *d, ProtobufCAllocator *al,
                     ProtobufCMessage **out, char *msg, size_t cap) {
    jd j = {.s = s, .p = s, .end = s + n, .al = al, .msg = msg, .cap = cap};
    *out = NULL;
    ProtobufCMessage *m = NULL;
    message(&j, d, &m, 0);
    ws(&j);
    if (!j.rc && j.p != j.end)
        fail(&j, KILN_EINVAL, "unexpected data after the object");
    if (j.rc)
        return j.rc;
    *out = m;
    return 0;
}
