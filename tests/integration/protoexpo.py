"""protoexpo.py - hand-encoded protobuf exposition bodies (io.prometheus.client.MetricFamily,
length-delimited) for the scrape tests, and a tiny HTTP target serving them.

The encoder writes the fields of client_metrics.proto that targets send: families with help,
type, unit; metrics with labels and timestamp_ms; counters (with an exemplar), gauges, untyped,
summaries, classic buckets and native histograms (integer deltas or float counts, spans,
zero bucket). Used by test_scrape_proto.py and to write the fuzz seed corpus
(`python3 tests/integration/protoexpo.py tests/fuzz/corpus/protoexpo`).
"""

import http.server
import math
import os
import struct
import sys
import threading

from rwproto import varint as uvarint

MEDIA_TYPE = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"

COUNTER, GAUGE, SUMMARY, UNTYPED, HISTOGRAM, GAUGE_HISTOGRAM = range(6)


def zigzag(v):
    return (v << 1) ^ (v >> 63)


def tag(f, wt):
    return uvarint(f << 3 | wt)


def f_uint(f, v):
    return tag(f, 0) + uvarint(v)


def f_sint(f, v):
    return tag(f, 0) + uvarint(zigzag(v) & 0xFFFFFFFFFFFFFFFF)


def f_double(f, v):
    return tag(f, 1) + struct.pack("<d", v)


def f_bytes(f, b):
    if isinstance(b, str):
        b = b.encode()
    return tag(f, 2) + uvarint(len(b)) + b


def label_pair(name, value):
    return f_bytes(1, name) + f_bytes(2, value)


def exemplar(labels, value, ts=None):
    b = b"".join(f_bytes(1, label_pair(k, v)) for k, v in labels.items()) + f_double(2, value)
    if ts is not None:
        sec = int(ts)
        b += f_bytes(3, f_uint(1, sec) + f_uint(2, int(round((ts - sec) * 1e9))))
    return b


def span(offset, length):
    return f_sint(1, offset) + f_uint(2, length)


def side(first_field, spans, deltas, counts):
    """One side of a native histogram: spans, then packed deltas or packed counts."""
    b = b"".join(f_bytes(first_field, span(o, n)) for o, n in spans)
    if deltas:
        b += f_bytes(first_field + 1, b"".join(uvarint(zigzag(d)) for d in deltas))
    if counts:
        b += f_bytes(first_field + 2, b"".join(struct.pack("<d", c) for c in counts))
    return b


def native(schema, spans, deltas=None, counts=None, neg_spans=(), neg_deltas=None, neg_counts=None,
           zero_threshold=0.0, zero_count=0, count=0, total=0.0, buckets=(), exemplars=()):
    """A Histogram message. deltas: integer histogram (count an int); counts: float histogram
    (count and zero_count floats). buckets: classic (upper_bound, cumulative_count) pairs."""
    is_float = counts is not None
    b = f_double(2, total)
    b += f_double(4, count) if is_float else f_uint(1, count)
    for ub, cum in buckets:
        b += f_bytes(3, f_uint(1, cum) + f_double(2, ub))
    b += f_sint(5, schema) + f_double(6, zero_threshold)
    b += f_double(8, zero_count) if is_float else f_uint(7, zero_count)
    b += side(9, neg_spans, neg_deltas, neg_counts) + side(12, spans, deltas, counts)
    for e in exemplars:
        b += f_bytes(16, e)
    return b


def classic(count, total, buckets):
    b = f_uint(1, count) + f_double(2, total)
    for ub, cum in buckets:
        b += f_bytes(3, f_uint(1, cum) + f_double(2, ub))
    return b


def metric(labels=None, counter=None, gauge=None, untyped=None, summary=None, histogram=None, ts_ms=None,
           counter_exemplar=None):
    b = b"".join(f_bytes(1, label_pair(k, v)) for k, v in (labels or {}).items())
    if counter is not None:
        c = f_double(1, counter)
        if counter_exemplar is not None:
            c += f_bytes(2, counter_exemplar)
        b += f_bytes(3, c)
    if gauge is not None:
        b += f_bytes(2, f_double(1, gauge))
    if untyped is not None:
        b += f_bytes(5, f_double(1, untyped))
    if summary is not None:
        count, total, quantiles = summary
        s = f_uint(1, count) + f_double(2, total)
        for q, v in quantiles:
            s += f_bytes(3, f_double(1, q) + f_double(2, v))
        b += f_bytes(4, s)
    if histogram is not None:
        b += f_bytes(7, histogram)
    if ts_ms is not None:
        b += f_uint(6, ts_ms)
    return b


def family(name, typ, metrics, help_text="", unit=""):
    b = f_bytes(1, name)
    if help_text:
        b += f_bytes(2, help_text)
    b += f_uint(3, typ)
    for m in metrics:
        b += f_bytes(4, m)
    if unit:
        b += f_bytes(5, unit)
    return uvarint(len(b)) + b


def sample_body(step=0, gauge_hist=True):
    """A body with one of each kind; `step` moves the values (a later scrape).  gauge_hist: the
    float histogram is a gauge histogram (Prometheus 2.42 adds a stray classic +Inf series to those)."""
    k = step + 1
    return b"".join([
        family("demo_requests_total", COUNTER,
               [metric({"code": "200"}, counter=100.0 * k,
                       counter_exemplar=exemplar({"trace_id": "t%d" % k}, 0.5, 1700000000.25)),
                metric({"code": "500"}, counter=3.0 * k)], help_text="Requests."),
        family("demo_temperature", GAUGE, [metric(gauge=21.5 + step)], unit="celsius"),
        family("demo_rpc_seconds", SUMMARY, [metric(summary=(10 * k, 2.5 * k, [(0.5, 0.2), (0.99, 0.9)]))]),
        family("demo_classic_seconds", HISTOGRAM,
               [metric(histogram=classic(5 * k, 1.5 * k, [(0.1, 1 * k), (1.0, 4 * k)]))]),
        # schema 1: buckets at 0,1 and 4,5; negative -1; zero bucket
        family("demo_latency_seconds", HISTOGRAM,
               [metric({"path": "/a"},
                       histogram=native(1, [(0, 2), (2, 2)], deltas=[2 * k, 1, -2, 3], neg_spans=[(-1, 1)],
                                        neg_deltas=[k], zero_threshold=0.001, zero_count=2, count=9 * k + 4,
                                        total=42.5 * k, buckets=[(0.5, 2 * k), (1.0, 4 * k)]))]),
        family("demo_float_hist", GAUGE_HISTOGRAM if gauge_hist else HISTOGRAM,
               [metric(histogram=native(0, [(1, 3)], counts=[1.5, 2.0 + step, 0.5], count=4.0 + step,
                                        total=7.25, zero_count=0.0, zero_threshold=1e-128))]),
    ])


class Target:
    """Serves bodies over HTTP on a free port: a protobuf body when the Accept header allows it
    (or always, with force_type), else a text body. Records the Accept headers it saw."""

    def __init__(self, body_fn, text_fn=None, force_type=None):
        self.body_fn = body_fn
        self.text_fn = text_fn
        self.force_type = force_type
        self.accepts = []
        self.scrapes = 0
        target = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                accept = self.headers.get("Accept", "")
                target.accepts.append(accept)
                step = target.scrapes
                target.scrapes += 1
                if target.force_type is not None:
                    body, ctype = target.body_fn(step), target.force_type
                elif "application/vnd.google.protobuf" in accept or target.text_fn is None:
                    body, ctype = target.body_fn(step), MEDIA_TYPE
                else:
                    body, ctype = target.text_fn(step), "text/plain; version=0.0.4"
                self.send_response(200)
                if ctype:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def write_corpus(d):
    os.makedirs(d, exist_ok=True)
    seeds = {
        "all_native": b"\x01" + sample_body(0),
        "all_classic": b"\x00" + sample_body(1),
        "native_and_classic_limit4": b"\x13" + sample_body(2),
        "empty": b"\x01",
        "truncated": b"\x01" + sample_body(0)[:57],
        "high_schema": b"\x05" + family("h", HISTOGRAM, [metric(histogram=native(
            7, [(-3, 4), (5, 3)], deltas=[1, 2, -1, 0, 4, -3, 1], count=20, total=3.0))]),
        "float_neg": b"\x09" + family("f", GAUGE_HISTOGRAM, [metric(histogram=native(
            2, [(0, 1)], counts=[2.5], neg_spans=[(-4, 2)], neg_counts=[1.0, math.inf], count=5.0))]),
    }
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write_corpus(sys.argv[1])
