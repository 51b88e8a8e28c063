"""Remote-write request encoding for the integration tests: protobuf
WriteRequest by hand (field numbers from the remote-write spec) and the
snappy block format with literal elements only (valid snappy, no
compression), so the tests need no extra Python packages."""
import struct


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def pb_label(name, value):
    n = name.encode() if isinstance(name, str) else name
    v = value.encode() if isinstance(value, str) else value
    return field(1, n) + field(2, v)


def pb_sample(value, ts):
    return b"\x09" + struct.pack("<d", value) + b"\x10" + varint(ts)


def pb_series(labels, samples):
    return b"".join(field(1, pb_label(n, v)) for n, v in labels) + b"".join(
        field(2, pb_sample(v, t)) for v, t in samples)


def pb_request(series):
    return b"".join(field(1, s) for s in series)


def snappy(data):
    """Snappy block format, literals only."""
    out = bytearray(varint(len(data)))
    for i in range(0, len(data), 65536):
        chunk = data[i:i + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        elif n < 65536:
            out += bytes([61 << 2]) + struct.pack("<H", n)
        else:
            out += bytes([62 << 2]) + struct.pack("<I", n)[:3]
        out += chunk
    return bytes(out)


def write_body(series):
    """series: [(labels [(name, value)], samples [(value, ts_ms)])] -> request body."""
    return snappy(pb_request([pb_series(ls, ss) for ls, ss in series]))


def read_varint(b, i):
    """The uvarint at b[i:]: (value, the index after it)."""
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7f) << s
        s += 7
        if c < 0x80:
            return v, i


def unsnappy(data):
    """Decodes the snappy block format (what kiln's remote read answers hold)."""
    n, i = read_varint(data, 0)
    out = bytearray()
    while i < len(data):
        tag = data[i]
        i += 1
        kind = tag & 3
        if kind == 0:
            ln = tag >> 2
            if ln >= 60:
                k = ln - 59
                ln = int.from_bytes(data[i:i + k], "little")
                i += k
            ln += 1
            out += data[i:i + ln]
            i += ln
            continue
        if kind == 1:
            ln = ((tag >> 2) & 7) + 4
            off = ((tag >> 5) << 8) | data[i]
            i += 1
        elif kind == 2:
            ln = (tag >> 2) + 1
            off = int.from_bytes(data[i:i + 2], "little")
            i += 2
        else:
            ln = (tag >> 2) + 1
            off = int.from_bytes(data[i:i + 4], "little")
            i += 4
        for _ in range(ln):
            out.append(out[-off])
    assert len(out) == n, (len(out), n)
    return bytes(out)


def zigzag(v):
    return ((v << 1) ^ (v >> 63)) & (2**64 - 1)


def pb_histogram(ts, schema, spans, deltas=None, counts=None, neg_spans=(), neg_deltas=None, neg_counts=None,
                 count=0, total=0.0, zero_threshold=0.0, zero_count=0, hint=0):
    """A remote write Histogram message: integer (deltas; count and zero_count ints) or float (counts)."""
    is_float = counts is not None
    b = (b"\x11" + struct.pack("<d", count)) if is_float else (b"\x08" + varint(count))
    b += b"\x19" + struct.pack("<d", total) + b"\x20" + varint(zigzag(schema))
    b += b"\x29" + struct.pack("<d", zero_threshold)
    b += (b"\x39" + struct.pack("<d", zero_count)) if is_float else (b"\x30" + varint(zero_count))
    for first, sp, ds, cs in ((8, neg_spans, neg_deltas, neg_counts), (11, spans, deltas, counts)):
        for o, n in sp:
            b += field(first, b"\x08" + varint(zigzag(o)) + b"\x10" + varint(n))
        if ds:
            b += field(first + 1, b"".join(varint(zigzag(d)) for d in ds))
        if cs:
            b += field(first + 2, b"".join(struct.pack("<d", c) for c in cs))
    if hint:
        b += b"\x70" + varint(hint)
    return b + b"\x78" + varint(ts)


def write_body_hist(series):
    """series: [(labels [(name, value)], samples [(value, ts_ms)], histograms [pb_histogram bytes])]."""
    return snappy(pb_request([b"".join(field(1, pb_label(n, v)) for n, v in ls)
                              + b"".join(field(2, pb_sample(v, t)) for v, t in ss)
                              + b"".join(field(4, h) for h in hs) for ls, ss, hs in series]))
