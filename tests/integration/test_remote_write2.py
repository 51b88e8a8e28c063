"""Remote write 2.0 (io.prometheus.write.v2.Request) into POST /api/v1/write:
the symbols table and label references, the Written headers, the 400s a bad
request gets with nothing stored, and the 415 for a message kiln does not know."""
import struct
import time
import unittest
import urllib.parse

from kilntest import KilnTestCase
from rwproto import field, snappy, varint, write_body

V2_TYPE = "application/x-protobuf;proto=io.prometheus.write.v2.Request"


def packed(num, values):
    return field(num, b"".join(varint(v) for v in values))


def v2_sample(value, ts):
    return b"\x09" + struct.pack("<d", value) + b"\x10" + varint(ts)


def v2_request(symbols, series):
    """series: [(label refs, [(value, ts)], extra bytes)]."""
    body = b"".join(field(4, s.encode()) for s in symbols)
    for refs, samples, extra in series:
        ts = packed(1, refs) + b"".join(field(2, v2_sample(v, t)) for v, t in samples) + extra
        body += field(5, ts)
    return snappy(body)


class RemoteWrite2(KilnTestCase):
    kiln_config = "global:\n  scrape_interval: 1h\n"

    def send(self, body, ctype=V2_TYPE):
        return self.kiln.post("/api/v1/write", body, headers={
            "Content-Type": ctype, "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "2.0.0"})

    def value(self, q, t):
        st, js = self.kiln.get_json("/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": t / 1000}))
        self.assertEqual(st, 200, js)
        return {tuple(sorted(r["metric"].items())): r["value"][1] for r in js["data"]["result"]}

    def test_series_through_symbols(self):
        t = int(time.time() * 1000) - 60000
        symbols = ["", "__name__", "rw2_up", "job", "api", "web", "instance", "a:1", "counter", "help text"]
        metadata = field(5, b"\x08\x01" + b"\x18" + varint(9))  # counter, help "help text"
        exemplar = field(4, packed(1, [3, 4]) + b"\x11" + struct.pack("<d", 1.5) + b"\x18" + varint(t))
        st, h, body = self.send(v2_request(symbols, [
            ([1, 2, 6, 7, 3, 4], [(1.0, t), (2.0, t + 1000)], metadata + exemplar),
            ([1, 2, 3, 5], [(0.5, t)], b""),
        ]))
        self.assertEqual(st, 204, body)
        self.assertEqual(h["x-prometheus-remote-write-samples-written"], "3")
        self.assertEqual(h["x-prometheus-remote-write-histograms-written"], "0")
        self.assertEqual(h["x-prometheus-remote-write-exemplars-written"], "0")
        got = self.value("rw2_up", t + 1000)
        self.assertEqual(got, {(("__name__", "rw2_up"), ("instance", "a:1"), ("job", "api")): "2",
                               (("__name__", "rw2_up"), ("job", "web")): "0.5"})

    def test_bad_requests_store_nothing(self):
        t = int(time.time() * 1000) - 30000
        cases = [
            (["", "__name__", "rw2_bad"], [([1, 9], [(1.0, t)], b"")], b"beyond the table"),
            (["", "__name__", "rw2_bad"], [([1, 2, 1], [(1.0, t)], b"")], b"odd number"),
            (["x", "__name__", "rw2_bad"], [([1, 2], [(1.0, t)], b"")], b"symbols[0] must be the empty string"),
        ]
        for symbols, series, why in cases:
            st, h, body = self.send(v2_request(symbols, series))
            self.assertEqual(st, 400, body)
            self.assertIn(why, body)
            self.assertEqual(h["x-prometheus-remote-write-samples-written"], "0")
        self.assertEqual(self.value("rw2_bad", t), {})

    def test_partial_write_is_400_with_the_count(self):
        t = int(time.time() * 1000) - 20000
        symbols = ["", "__name__", "rw2_part", "k", "a", "b"]
        st, h, body = self.send(v2_request(symbols, [
            ([1, 2, 3, 4], [(1.0, t), (2.0, t - 5000)], b""),  # the second one is out of order
            ([1, 2, 3, 5], [(3.0, t)], b""),
        ]))
        self.assertEqual(st, 400, body)
        self.assertEqual(h["x-prometheus-remote-write-samples-written"], "2")

    def test_unknown_message_and_v1_unchanged(self):
        st, _, body = self.send(b"", ctype="application/x-protobuf;proto=io.prometheus.write.v3.Request")
        self.assertEqual(st, 415)
        self.assertIn(b"io.prometheus.write.v2.Request", body)
        t = int(time.time() * 1000) - 10000
        st, h, _ = self.send(write_body([([("__name__", "rw1_up")], [(1.0, t)])]),
                             ctype="application/x-protobuf;proto=prometheus.WriteRequest")
        self.assertEqual(st, 204)
        self.assertNotIn("x-prometheus-remote-write-samples-written", h)


class RemoteWrite2Exemplars(KilnTestCase):
    """With exemplar storage on, 2.0's exemplars (labels by reference) are
    stored with their series and counted in the Written header."""
    kiln_config = RemoteWrite2.kiln_config
    kiln_args = ("--enable-feature=exemplar-storage",)
    send = RemoteWrite2.send

    def test_exemplars_stored(self):
        t = int(time.time() * 1000) - 60000
        symbols = ["", "__name__", "rw2_ex_total", "trace_id", "abc\x00d", "job", "x"]
        ex = [field(4, packed(1, [3, 4]) + b"\x11" + struct.pack("<d", v) + b"\x18" + varint(t + d))
              for v, d in ((1.5, 0), (2.5, 1000))]
        st, h, body = self.send(v2_request(symbols, [([1, 2, 5, 6], [(1.0, t), (2.0, t + 1000)], b"".join(ex))]))
        self.assertEqual(st, 204, body)
        self.assertEqual(h["x-prometheus-remote-write-exemplars-written"], "2")
        st, js = self.kiln.get_json("/api/v1/query_exemplars?" + urllib.parse.urlencode(
            {"query": "rw2_ex_total", "start": str(t / 1000 - 10), "end": str(t / 1000 + 10)}))
        self.assertEqual(st, 200, js)
        self.assertEqual(js["data"], [{"seriesLabels": {"__name__": "rw2_ex_total", "job": "x"},
                                       "exemplars": [{"labels": {"trace_id": "abc\x00d"}, "value": v,
                                                      "timestamp": (t + d) / 1000}
                                                     for v, d in (("1.5", 0), ("2.5", 1000))]}])
        # a bad reference in an exemplar: 400, nothing stored
        bad = field(4, packed(1, [3, 40]) + b"\x11" + struct.pack("<d", 1) + b"\x18" + varint(t))
        st, h, body = self.send(v2_request(symbols, [([1, 2, 5, 6], [(3.0, t + 2000)], bad)]))
        self.assertEqual(st, 400, body)
        self.assertIn(b"symbol 40", body)


if __name__ == "__main__":
    unittest.main()
