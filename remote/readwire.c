/*
 * readwire.c - the bytes of remote read as a client sends and receives
 * them (remote.proto in Prometheus' prompb), by hand:
 *
 *   ReadRequest  { repeated Query queries = 1;
 *                  repeated ResponseType accepted_response_types = 2; }
 *   Query        { int64 start_timestamp_ms = 1; int64 end_timestamp_ms = 2;
 *                  repeated LabelMatcher matchers = 3; ReadHints hints = 4; }
 *   LabelMatcher { Type type = 1; string name = 2; string value = 3; }
 *   ReadHints    { ...; int64 start_ms = 3; int64 end_ms = 4; ... }
 *
 *   ReadResponse { repeated QueryResult results = 1; }
 *   QueryResult  { repeated TimeSeries timeseries = 1; }
 *   TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; ... }
 *
 * or, STREAMED_XOR_CHUNKS (asked first; a server that cannot answers
 * samples): frames of uvarint length | CRC32C of the message, big-endian |
 * ChunkedReadResponse, not compressed:
 *
 *   ChunkedReadResponse { repeated ChunkedSeries chunked_series = 1; int64 query_index = 2; }
 *   ChunkedSeries { repeated Label labels = 1; repeated Chunk chunks = 2; }
 *   Chunk         { int64 min_time_ms = 1; int64 max_time_ms = 2; Encoding type = 3; bytes data = 4; }
 *
 * A series too large for a frame comes in several, its labels repeated:
 * consecutive ones with the same labels are joined.  XOR chunks (type 1)
 * are decoded (storage_xor_decode); histogram chunks are skipped, as the
 * samples response's histograms are.
 *
 * The decoder takes any bytes (a libFuzzer harness feeds it): a malformed
 * message is KILN_EINVAL with a message, never a crash; unknown fields
 * (exemplars, histograms) are skipped.
 *
 * Called by read.c on query threads; no state.
 */
#include <stdlib.h>
#include <string.h>

#include "remote/remote_int.h"

/* ---- encoding ---- */

static void put_varint_field(buf *b, uint8_t tag, uint64_t v) {
    buf_putc(b, (char)tag);
    buf_put_uvarint(b, v);
}

void rr_encode_request(buf *out, const matcher *ms, size_t nms, int64_t mint, int64_t maxt) {
    buf q = BUF_INIT, m = BUF_INIT;
    int oom = 0;
    put_varint_field(&q, 0x08, (uint64_t)mint); /* Query.start_timestamp_ms */
    put_varint_field(&q, 0x10, (uint64_t)maxt); /* Query.end_timestamp_ms */
    for (size_t i = 0; i < nms; i++) {
        oom |= m.oom;
        buf_reset(&m);
        if (ms[i].type != MATCH_EQ) /* EQ = 0, NEQ, RE, NRE: match_type's order */
            put_varint_field(&m, 0x08, (uint64_t)ms[i].type);
        wire_bytes(&m, 0x12, ms[i].name, strlen(ms[i].name));
        wire_bytes(&m, 0x1a, ms[i].value, strlen(ms[i].value));
        wire_bytes(&q, 0x1a, m.data, m.len); /* Query.matchers */
    }
    oom |= m.oom;
    buf_reset(&m);
    put_varint_field(&m, 0x18, (uint64_t)mint); /* ReadHints.start_ms */
    put_varint_field(&m, 0x20, (uint64_t)maxt); /* ReadHints.end_ms */
    wire_bytes(&q, 0x22, m.data, m.len);        /* Query.hints */
    wire_bytes(out, 0x0a, q.data, q.len);       /* ReadRequest.queries */
    put_varint_field(out, 0x10, 1);             /* accepted_response_types: STREAMED_XOR_CHUNKS, */
    put_varint_field(out, 0x10, 0);             /* then SAMPLES */
    if (oom || q.oom || m.oom)
        out->oom = 1;
    buf_free(&q);
    buf_free(&m);
}

/* ---- decoding ---- */

typedef struct pbr {
    const uint8_t *p, *e;
} pbr;

static int pb_varint(pbr *r, uint64_t *v) {
    uint64_t x = 0;
    for (unsigned sh = 0; sh < 64; sh += 7) {
        if (r->p == r->e)
            return -1;
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << sh;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* The next field of r: its number and wire type, the value of a varint or
 * fixed64, the bytes of a length-delimited one in *sub.  0 or -1. */
static int pb_field(pbr *r, unsigned *field, unsigned *wt, uint64_t *v, pbr *sub) {
    uint64_t key, len;
    if (pb_varint(r, &key) || key >> 3 == 0 || key >> 3 > UINT32_MAX)
        return -1;
    *field = (unsigned)(key >> 3);
    *wt = (unsigned)(key & 7);
    switch (*wt) {
    case 0:
        return pb_varint(r, v);
    case 1:
        if (r->e - r->p < 8)
            return -1;
        *v = 0;
        for (int i = 7; i >= 0; i--)
            *v = *v << 8 | r->p[i];
        r->p += 8;
        return 0;
    case 2:
        if (pb_varint(r, &len) || len > (uint64_t)(r->e - r->p))
            return -1;
        sub->p = r->p;
        sub->e = r->p + len;
        r->p += len;
        return 0;
    case 5:
        if (r->e - r->p < 4)
            return -1;
        r->p += 4;
        return 0;
    default:
        return -1;
    }
}

#define BAD(what) kiln_err_set(err, KILN_EINVAL, "remote read: cannot decode the response: %s", what)

/* A Label's name and value, copied into a (NULL when the label is absent:
 * an empty value). */
KILN_MUST_CHECK static int decode_label(pbr r, arena *a, label *out, kiln_err *err) {
    pbr name = {0, 0}, value = {0, 0}, sub;
    unsigned f, wt;
    uint64_t v;
    while (r.p < r.e) {
        if (pb_field(&r, &f, &wt, &v, &sub))
            return BAD("malformed label");
        if (wt == 2 && f == 1)
            name = sub;
        else if (wt == 2 && f == 2)
            value = sub;
    }
    size_t nn = (size_t)(name.e - name.p), nv = (size_t)(value.e - value.p);
    if ((nn && memchr(name.p, 0, nn)) || (nv && memchr(value.p, 0, nv)))
        return BAD("a NUL byte in a label");
    out->name = arena_strndup(a, nn ? (const char *)name.p : "", nn);
    out->value = arena_strndup(a, nv ? (const char *)value.p : "", nv);
    if (!out->name || !out->value)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    return 0;
}

static int sample_cmp(const void *a, const void *b) {
    const sample *x = a, *y = b;
    return x->t < y->t ? -1 : x->t > y->t;
}

/* One TimeSeries into *out: labels without the empty ones and those named
 * in drop, sorted and checked; samples sorted by time, one a time. */
/* A Chunk's XOR bytes in *data (NULL for another encoding); 0 or -1 malformed. */
static int chunk_xor(pbr r, pbr *data) {
    unsigned f, wt;
    uint64_t v, type = 0;
    pbr sub;
    data->p = data->e = NULL;
    while (r.p < r.e) {
        if (pb_field(&r, &f, &wt, &v, &sub))
            return -1;
        if (f == 3 && wt == 0)
            type = v;
        else if (f == 4 && wt == 2)
            *data = sub;
    }
    if (type != 1) /* XOR */
        data->p = data->e = NULL;
    return 0;
}

KILN_MUST_CHECK static int decode_series(pbr r, int chunked, const char *const *drop, size_t ndrop, arena *a,
                                         series *out, kiln_err *err) {
    size_t nl = 0, ns = 0;
    unsigned f, wt;
    uint64_t v;
    pbr sub, c = r, xd;
    while (c.p < c.e) {
        if (pb_field(&c, &f, &wt, &v, &sub))
            return BAD("malformed time series");
        nl += wt == 2 && f == 1;
        if (wt == 2 && f == 2 && chunked && chunk_xor(sub, &xd))
            return BAD("malformed chunk");
        if (wt == 2 && f == 2 && chunked) {
            /* the count a chunk claims, bounded by its bytes (a sample takes two bits or more) */
            size_t k = storage_xor_count(xd.p, (size_t)(xd.e - xd.p)), lim = 4 * (size_t)(xd.e - xd.p) + 2;
            ns += k < lim ? k : lim;
        } else if (wt == 2 && f == 2) {
            ns++;
        }
    }
    if (nl > LABELS_MAX_COUNT * 4)
        return BAD("too many labels in a series");
    label *ls = arena_alloc(a, (nl + 1) * sizeof *ls);
    sample *s = arena_alloc_nz(a, (ns + 1) * sizeof *s);
    if (!ls || !s)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    size_t il = 0, is = 0;
    while (r.p < r.e) {
        if (pb_field(&r, &f, &wt, &v, &sub))
            return BAD("malformed time series");
        if (wt != 2)
            continue;
        if (f == 1) {
            int rc = decode_label(sub, a, &ls[il], err);
            if (rc < 0)
                return rc;
            int keep = ls[il].value[0] != 0;
            for (size_t k = 0; keep && k < ndrop; k++)
                keep = strcmp(ls[il].name, drop[k]) != 0;
            il += keep;
        } else if (f == 2 && chunked) {
            size_t got = 0;
            if (chunk_xor(sub, &xd) == 0 && xd.p &&
                storage_xor_decode(xd.p, (size_t)(xd.e - xd.p), s + is, ns - is, &got) != 0)
                return BAD("a chunk that does not decode");
            is += got;
        } else if (f == 2) {
            sample *d = &s[is++];
            d->t = 0;
            d->v = 0;
            while (sub.p < sub.e) {
                pbr unused;
                if (pb_field(&sub, &f, &wt, &v, &unused))
                    return BAD("malformed sample");
                if (f == 1 && wt == 1)
                    d->v = double_from_bits(v);
                else if (f == 2 && wt == 0)
                    d->t = (int64_t)v;
            }
        }
    }
    labels_sort(ls, il);
    int rc = labels_check(ls, il, err);
    if (rc < 0)
        return rc;
    int sorted = 1;
    for (size_t i = 1; i < is && sorted; i++)
        sorted = s[i].t > s[i - 1].t;
    if (!sorted) {
        qsort(s, is, sizeof *s, sample_cmp);
        size_t m = 0;
        for (size_t i = 0; i < is; i++)
            if (!m || s[i].t != s[m - 1].t)
                s[m++] = s[i];
        is = m;
    }
    memset(out, 0, sizeof *out);
    out->ls = ls;
    out->nls = il;
    out->s = s;
    out->n = is;
    return 0;
}

int rr_decode_response(const uint8_t *p, size_t n, const char *const *drop, size_t ndrop, arena *a,
                       series **v, size_t *nv, size_t *cap, kiln_err *err) {
    pbr r = {p, p + n}, res, ts;
    unsigned f, wt;
    uint64_t x;
    while (r.p < r.e) {
        if (pb_field(&r, &f, &wt, &x, &res))
            return BAD("malformed ReadResponse");
        if (f != 1 || wt != 2)
            continue;
        while (res.p < res.e) {
            if (pb_field(&res, &f, &wt, &x, &ts))
                return BAD("malformed QueryResult");
            if (f != 1 || wt != 2)
                continue;
            if (*nv == *cap && array_grow((void **)v, cap, *nv + 1, sizeof **v) < 0)
                return kiln_err_set(err, KILN_ENOMEM, "out of memory");
            int rc = decode_series(ts, 0, drop, ndrop, a, &(*v)[*nv], err);
            if (rc < 0)
                return rc;
            (*nv)++;
        }
    }
    return 0;
}

/* Joins series b to a (the same labels, b's samples after a's). */
KILN_MUST_CHECK static int join_series(series *sa, const series *sb, arena *a, kiln_err *err) {
    sample *s = arena_alloc_nz(a, (sa->n + sb->n + 1) * sizeof *s);
    if (!s)
        return kiln_err_set(err, KILN_ENOMEM, "out of memory");
    memcpy(s, sa->s, sa->n * sizeof *s);
    size_t n = sa->n;
    for (size_t i = 0; i < sb->n; i++)
        if (!n || sb->s[i].t > s[n - 1].t)
            s[n++] = sb->s[i];
    sa->s = s;
    sa->n = n;
    return 0;
}

int rr_decode_chunked(const uint8_t *p, size_t n, const char *const *drop, size_t ndrop, arena *a, series **v,
                      size_t *nv, size_t *cap, kiln_err *err) {
    pbr r = {p, p + n}, cs;
    unsigned f, wt;
    uint64_t x, len;
    size_t first = *nv; /* series before are another entry's: never joined */
    while (r.p < r.e) {
        if (pb_varint(&r, &len) || r.e - r.p < 4 || len > (uint64_t)(r.e - r.p - 4))
            return BAD("a truncated frame");
        uint32_t want = (uint32_t)r.p[0] << 24 | (uint32_t)r.p[1] << 16 | (uint32_t)r.p[2] << 8 | r.p[3];
        pbr m = {r.p + 4, r.p + 4 + len};
        r.p = m.e;
        if (crc32c(0, m.p, (size_t)len) != want)
            return BAD("a frame's CRC32C does not match");
        while (m.p < m.e) {
            if (pb_field(&m, &f, &wt, &x, &cs))
                return BAD("malformed ChunkedReadResponse");
            if (f != 1 || wt != 2)
                continue;
            if (*nv == *cap && array_grow((void **)v, cap, *nv + 1, sizeof **v) < 0)
                return kiln_err_set(err, KILN_ENOMEM, "out of memory");
            series *cur = &(*v)[*nv];
            int rc = decode_series(cs, 1, drop, ndrop, a, cur, err);
            if (rc < 0)
                return rc;
            series *prev = *nv > first ? cur - 1 : NULL;
            if (prev && labels_cmp(prev->ls, prev->nls, cur->ls, cur->nls) == 0)
                rc = join_series(prev, cur, a, err);
            else
                (*nv)++;
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}
