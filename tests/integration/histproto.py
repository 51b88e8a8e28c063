"""Native histograms for the integration tests, encoded by hand: remote
write 1.0's prometheus.Histogram (types.proto, field numbers there) inside
rwproto's TimeSeries, and a test series generator.  No extra Python
packages."""
import struct

from rwproto import field, pb_label, snappy, varint


def zigzag(n):
    return (n << 1) ^ (n >> 63)


def _spans(num, spans):
    out = b""
    for off, length in spans:
        out += field(num, b"\x08" + varint(zigzag(off)) + b"\x10" + varint(length))
    return out


def pb_histogram(h, ts):
    """h: dict with schema, zero_threshold, zero_count, count, sum,
    pos_spans [(offset, length)], pos (absolute counts), neg_spans, neg,
    is_int, hint.  Integer histograms go as deltas, float ones as counts."""
    out = b""
    if h["is_int"]:
        out += b"\x08" + varint(int(h["count"]))
    else:
        out += b"\x11" + struct.pack("<d", h["count"])
    out += b"\x19" + struct.pack("<d", h["sum"])
    out += b"\x20" + varint(zigzag(h["schema"]) & 0xFFFFFFFF)
    out += b"\x29" + struct.pack("<d", h["zero_threshold"])
    if h["is_int"]:
        out += b"\x30" + varint(int(h["zero_count"]))
    else:
        out += b"\x39" + struct.pack("<d", h["zero_count"])
    for side, (sp_field, d_field, c_field) in (("neg", (8, 9, 10)), ("pos", (11, 12, 13))):
        out += _spans(sp_field, h[side + "_spans"])
        vals = h[side]
        if not vals:
            continue
        if h["is_int"]:
            prev, packed = 0, b""
            for v in vals:
                packed += varint(zigzag(int(v) - prev))
                prev = int(v)
            out += field(d_field, packed)
        else:
            out += field(c_field, b"".join(struct.pack("<d", v) for v in vals))
    if h.get("hint"):
        out += b"\x70" + varint(h["hint"])
    out += b"\x78" + varint(ts)
    return out


def pb_series_hist(labels, hists):
    """A TimeSeries with histograms: hists is [(h, ts_ms)]."""
    return b"".join(field(1, pb_label(n, v)) for n, v in labels) + b"".join(
        field(4, pb_histogram(h, t)) for h, t in hists)


def write_body_hist(series):
    """series: [(labels, [(h, ts)])] -> a snappy WriteRequest body."""
    return snappy(b"".join(field(1, pb_series_hist(ls, hs)) for ls, hs in series))


def make_hist(i, nbuckets=8, schema=3, is_int=True, seed=0, reset_at=None, offset=-3):
    """The i-th sample of a growing histogram: buckets grow by varying
    amounts; at reset_at (and after) they start over."""
    k = i if reset_at is None or i < reset_at else i - reset_at
    pos = []
    for b in range(nbuckets):
        inc = (b * 7 + seed * 3 + 1) % 5 + (b % 3)
        pos.append(float(k * inc + (b + seed) % 4))
    neg = [float(k + 1), float(2 * k)]
    zc = float(k // 2)
    count = sum(pos) + sum(neg) + zc
    if not is_int:
        pos = [v * 0.5 for v in pos]
        neg = [v * 0.5 for v in neg]
        zc *= 0.5
        count = sum(pos) + sum(neg) + zc
    half = nbuckets // 2
    return {
        "schema": schema, "zero_threshold": 2.0 ** -128, "zero_count": zc, "count": count,
        "sum": 1.25 * k + seed, "is_int": is_int, "hint": 0,
        "pos_spans": [(offset, half), (2, nbuckets - half)], "pos": pos,
        "neg_spans": [(0, 2)], "neg": neg,
    }
