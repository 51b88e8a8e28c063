/*
 * wire.c - the bytes of a remote write 1.0 request: prometheus.WriteRequest
 * (remote.proto in Prometheus' prompb) encoded by hand, then compressed with
 * snappy's block format, as the spec asks.  Only the fields the sender
 * fills are written:
 *
 *   WriteRequest { repeated TimeSeries timeseries = 1; }
 *   TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
 *   Label        { string name = 1; string value = 2; }
 *   Sample       { double value = 1; int64 timestamp = 2; }
 *
 * A series' labels are encoded once (wire_labels) and copied into every
 * TimeSeries that carries one of its samples (one sample a TimeSeries, as
 * Prometheus' queue manager sends them).
 *
 * Called by queue.c on the sender thread; no state.
 */
#include <snappy-c.h>
#include <string.h>

#include "remote/remote_int.h"

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

void wire_bytes(buf *out, uint8_t tag, const void *p, size_t n) {
    buf_putc(out, (char)tag);
    buf_put_uvarint(out, n);
    buf_append(out, p, n);
}

void wire_labels(buf *out, const label *ls, size_t n) {
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(ls[i].name), vl = strlen(ls[i].value);
        buf_putc(out, 0x0a); /* TimeSeries.labels */
        buf_put_uvarint(out, 1 + varint_len(nl) + nl + 1 + varint_len(vl) + vl);
        wire_bytes(out, 0x0a, ls[i].name, nl);
        wire_bytes(out, 0x12, ls[i].value, vl);
    }
}

void wire_timeseries(buf *out, const uint8_t *labels, size_t len, int64_t t, double v) {
    uint8_t smp[1 + 8 + 1 + 10];
    size_t sn = 0;
    uint64_t bits = double_to_bits(v);
    smp[sn++] = 0x09; /* Sample.value, fixed64 little-endian */
    for (int i = 0; i < 8; i++)
        smp[sn++] = (uint8_t)(bits >> (8 * i));
    smp[sn++] = 0x10; /* Sample.timestamp, varint (two's complement when negative) */
    uint64_t u = (uint64_t)t;
    while (u >= 0x80) {
        smp[sn++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    smp[sn++] = (uint8_t)u;
    size_t ts_len = len + 1 + varint_len(sn) + sn;
    buf_putc(out, 0x0a); /* WriteRequest.timeseries */
    buf_put_uvarint(out, ts_len);
    buf_append(out, labels, len);
    wire_bytes(out, 0x12, smp, sn); /* TimeSeries.samples */
}

int wire_snappy(buf *raw, buf *scratch) {
    if (buf_error(raw))
        return KILN_ENOMEM;
    size_t n = snappy_max_compressed_length(raw->len);
    buf_reset(scratch);
    if (buf_reserve(scratch, n))
        return KILN_ENOMEM;
    if (snappy_compress(raw->data ? raw->data : "", raw->len, scratch->data, &n) != SNAPPY_OK)
        return KILN_ENOMEM;
    scratch->len = n;
    buf tmp = *raw;
    *raw = *scratch;
    *scratch = tmp;
    return 0;
}
