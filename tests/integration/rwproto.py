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
