"""POST /api/v1/read: Debian's Prometheus 2.42 querying kiln through
remote_read gets kiln's answers; the streamed XOR-chunk response decoded here
frame by frame (CRC32C, protobuf, Gorilla XOR) gives back every sample; the
external labels, the sample limit and bad requests; native histograms
streamed as HISTOGRAM / FLOAT_HISTOGRAM chunks decoded here (Prometheus'
histogram chunk encoding) give back every histogram, floats and histograms
of one series in time order."""
import struct
import time
import unittest
import urllib.parse

from kilntest import Kiln, KilnTestCase, Prometheus
from rwproto import field, pb_histogram, read_varint, snappy, varint, write_body, write_body_hist

HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
           "X-Prometheus-Remote-Write-Version": "0.1.0"}
READ_HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                "X-Prometheus-Remote-Read-Version": "0.1.0"}

# ---- protobuf and friends, just enough to read the answers ----


def fields(b):
    """[(field number, wire type, value)] of a protobuf message."""
    out, i = [], 0
    while i < len(b):
        key, i = read_varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = read_varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError(f"wire type {wt}")
        out.append((f, wt, v))
    return out


def labels_of(msg_fields, num=1):
    return {dict((f, v) for f, _, v in fields(lb))[1].decode(): dict((f, v) for f, _, v in fields(lb))[2].decode()
            for f, _, lb in msg_fields if f == num}


_CRC = []


def crc32c(data):
    if not _CRC:
        for n in range(256):
            c = n
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            _CRC.append(c)
    c = 0xFFFFFFFF
    for x in data:
        c = _CRC[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def signed(v, bits):
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


class Bits:
    def __init__(self, b):
        self.b, self.pos = b, 0

    def bit(self):
        v = (self.b[self.pos >> 3] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return v

    def bits(self, n):
        v = 0
        for _ in range(n):
            v = v << 1 | self.bit()
        return v

    def uvarint(self):
        v = s = 0
        while True:
            c = self.bits(8)
            v |= (c & 0x7f) << s
            s += 7
            if c < 0x80:
                return v

    def varint(self):
        u = self.uvarint()
        return (u >> 1) ^ -(u & 1)


def xor_decode(b):
    """Prometheus' XOR chunk -> [(t, v)]."""
    n = struct.unpack(">H", b[:2])[0]
    r = Bits(b[2:])
    out = []
    t = r.varint()
    vb = r.bits(64)
    out.append((t, vb))
    delta = lead = trail = 0
    for k in range(1, n):
        if k == 1:
            delta = r.uvarint()
        else:
            if r.bit() == 0:
                dod = 0
            elif r.bit() == 0:
                dod = signed(r.bits(14), 14)
            elif r.bit() == 0:
                dod = signed(r.bits(17), 17)
            elif r.bit() == 0:
                dod = signed(r.bits(20), 20)
            else:
                dod = signed(r.bits(64), 64)
            delta += dod
        t += delta
        if r.bit() == 1:
            if r.bit() == 1:
                lead = r.bits(5)
                sig = r.bits(6) or 64
                trail = 64 - lead - sig
            vb ^= r.bits(64 - lead - trail) << trail
        out.append((t, vb))
    return [(t, struct.unpack("<d", struct.pack("<Q", v))[0]) for t, v in out]


def varbit(r, signed_=True):
    """Prometheus' varbit_int / varbit_uint."""
    n = 0
    while n < 8 and r.bit() == 1:
        n += 1
    sz = [0, 3, 6, 9, 12, 18, 25, 56, 64][n]
    if sz == 0:
        return 0
    v = r.bits(sz)
    if signed_ and sz < 64 and v > 1 << (sz - 1):
        v -= 1 << sz
    elif signed_ and sz == 64 and v >= 1 << 63:
        v -= 1 << 64
    return v


def f64(b):
    return struct.unpack("<d", struct.pack("<Q", b))[0]


class Xor:
    """One XOR-coded value with its window."""

    def __init__(self, bits):
        self.v, self.lead, self.trail = bits, 0, 0

    def next(self, r):
        if r.bit() == 1:
            if r.bit() == 1:
                self.lead = r.bits(5)
                sig = r.bits(6) or 64
                self.trail = 64 - self.lead - sig
            self.v ^= r.bits(64 - self.lead - self.trail) << self.trail
        return self.v


def hist_decode(b, is_float):
    """Prometheus' histogram (2) or float histogram (3) chunk -> [(t, dict)]."""
    n = struct.unpack(">H", b[:2])[0]
    r = Bits(b[3:])
    zb = r.bits(8)
    zt = 0.0 if zb == 0 else f64(r.bits(64)) if zb == 255 else 2.0 ** (zb - 243 - 1)
    schema = varbit(r)
    sides = []
    for _ in range(2):
        spans = []
        for _ in range(varbit(r, False)):
            length = varbit(r, False)
            spans.append((varbit(r), length))
        sides.append(spans)
    npos, nneg = (sum(ln for _, ln in sp) for sp in sides)
    out, t = [], 0
    if is_float:
        t = varbit(r)
        xs = [Xor(r.bits(64)) for _ in range(3 + npos + nneg)]
        vals = [x.v for x in xs]
        tdelta = 0
        for k in range(n):
            if k:
                tdelta += varbit(r)
                t += tdelta
                vals = [x.next(r) for x in xs]
            fv = [f64(v) for v in vals]
            out.append((t, {"schema": schema, "zt": zt, "count": fv[0], "zc": fv[1], "sum": fv[2],
                            "pos_spans": sides[0], "pos": fv[3:3 + npos], "neg_spans": sides[1],
                            "neg": fv[3 + npos:]}))
        return out
    t, cnt, zc = varbit(r), varbit(r, False), varbit(r, False)
    s = Xor(r.bits(64))
    bk = [varbit(r) for _ in range(npos + nneg)]
    d = [0] * (3 + npos + nneg)
    for k in range(n):
        if k:
            d[0] += varbit(r)
            d[1] += varbit(r)
            d[2] += varbit(r)
            t, cnt, zc = t + d[0], cnt + d[1], zc + d[2]
            s.next(r)
            for i in range(npos + nneg):
                d[3 + i] += varbit(r)
                bk[i] += d[3 + i]
        absb, acc = [], 0
        for i, v in enumerate(bk):
            acc = v if i in (0, npos) else acc + v
            absb.append(float(acc))
        out.append((t, {"schema": schema, "zt": zt, "count": float(cnt), "zc": float(zc), "sum": f64(s.v),
                        "pos_spans": sides[0], "pos": absb[:npos], "neg_spans": sides[1], "neg": absb[npos:]}))
    return out


def read_streamed(test, body):
    """{series labels (tuple): [(chunk type, min, max, [(t, value)])]} of a streamed answer."""
    got, i = {}, 0
    while i < len(body):
        n, i = read_varint(body, i)
        crc = struct.unpack(">I", body[i:i + 4])[0]
        msg = body[i + 4:i + 4 + n]
        i += 4 + n
        test.assertEqual(crc, crc32c(msg), "frame checksum")
        for f, _, cs in fields(msg):
            if f != 1:
                continue
            cf = fields(cs)
            key = tuple(sorted(labels_of(cf).items()))
            for f2, _, ch in cf:
                if f2 == 2:
                    c = {f3: v for f3, _, v in fields(ch)}
                    pts = xor_decode(c[4]) if c[3] == 1 else hist_decode(c[4], c[3] == 3)
                    got.setdefault(key, []).append((c[3], c[1], c[2], pts))
    return got


def read_request(queries, streamed):
    """queries: [(start, end, [(type, name, value)])]."""
    body = b""
    for start, end, ms in queries:
        q = b"\x08" + varint(start & (2**64 - 1)) + b"\x10" + varint(end & (2**64 - 1))
        for t, n, v in ms:
            m = (b"\x08" + varint(t) if t else b"") + field(2, n.encode()) + field(3, v.encode())
            q += field(3, m)
        body += field(1, q)
    if streamed:
        body += b"\x10\x01"
    return snappy(body)


CONFIG = """global:
  scrape_interval: 1h
  external_labels: {region: eu}
"""


class RemoteRead(KilnTestCase):
    kiln_config = CONFIG

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.t0 = (int(time.time()) - 3600) * 1000
        # 300 samples each (three chunks of at most 120), irregular steps and values
        cls.data = {}
        series = []
        for job in ("a", "b"):
            pts = [(cls.t0 + k * 10000 + (k % 7) * 13, (k * 0.37 if job == "a" else 1e6 - k * k))
                   for k in range(300)]
            cls.data[job] = pts
            series.append(([("__name__", "rr"), ("job", job)], [(v, t) for t, v in pts]))
        st, _, body = cls.kiln.post("/api/v1/write", write_body(series), headers=HEADERS)
        assert st == 204, body

    def read(self, queries, streamed):
        return self.kiln.post("/api/v1/read", read_request(queries, streamed), headers=READ_HEADERS)

    def test_streamed_chunks(self):
        st, h, body = self.read([(self.t0, self.t0 + 3600_000, [(0, "__name__", "rr"), (2, "job", "a|b")])], True)
        self.assertEqual(st, 200, body)
        self.assertEqual(h["content-type"], "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse")
        got = {}
        for key, chunks in read_streamed(self, body).items():
            ls = dict(key)
            self.assertEqual(ls["region"], "eu")
            for enc, mint, maxt, pts in chunks:
                self.assertEqual(enc, 1)  # XOR
                self.assertLessEqual(len(pts), 120)
                self.assertEqual((mint, maxt), (pts[0][0], pts[-1][0]))
                got.setdefault(ls["job"], []).extend(pts)
        self.assertEqual(sorted(got), ["a", "b"])
        for job in ("a", "b"):
            self.assertEqual(got[job], self.data[job])

    def test_external_label_matcher(self):
        # region="eu" is kiln's external label: it matches the stored series that lack it
        st, _, body = self.read([(self.t0, self.t0 + 3600_000, [(0, "region", "eu"), (0, "job", "a")])], True)
        self.assertEqual(st, 200)
        self.assertGreater(len(body), 100)
        st, _, body = self.read([(self.t0, self.t0 + 3600_000, [(0, "region", "us"), (0, "job", "a")])], True)
        self.assertEqual((st, body), (200, b""))

    def test_errors(self):
        st, _, body = self.kiln.post("/api/v1/read", b"\xff\xff\xff\xff", headers=READ_HEADERS)
        self.assertEqual(st, 400)
        self.assertIn(b"snappy", body)
        st, _, body = self.read([(self.t0, self.t0 + 1000, [])], False)
        self.assertEqual(st, 400)
        self.assertIn(b"no matchers", body)
        st, _, body = self.read([(self.t0, self.t0 + 1000, [(2, "job", "(")])], False)
        self.assertEqual(st, 400)

    def test_sample_limit(self):
        kn = Kiln(args=["--storage.remote.read-sample-limit=100"], config=CONFIG)
        try:
            kn.start()
            st, _, _ = kn.post("/api/v1/write", write_body(
                [([("__name__", "rr"), ("job", "a")], [(1.0, self.t0 + k * 1000) for k in range(150)])]),
                headers=HEADERS)
            self.assertEqual(st, 204)
            st, _, body = kn.post("/api/v1/read", read_request(
                [(self.t0, self.t0 + 3600_000, [(0, "__name__", "rr")])], False), headers=READ_HEADERS)
            self.assertEqual((st, body), (400, b"exceeded sample limit (100)\n"))
            # streamed answers are not bounded by it
            st, _, _ = kn.post("/api/v1/read", read_request(
                [(self.t0, self.t0 + 3600_000, [(0, "__name__", "rr")])], True), headers=READ_HEADERS)
            self.assertEqual(st, 200)
        finally:
            kn.stop()
            kn.cleanup()

    def test_prometheus_remote_read(self):
        cfg = f"""remote_read:
  - url: http://{self.kiln.addr}/api/v1/read
    read_recent: true
"""
        q = "/api/v1/query_range?" + urllib.parse.urlencode(
            {"query": "rr", "start": self.t0 / 1000, "end": self.t0 / 1000 + 3000, "step": 60})
        with Prometheus(cfg) as p:
            theirs = p.query(q)["result"]
        mine = self.kiln.get_json(q)[1]["data"]["result"]
        for m in mine:
            m["metric"]["region"] = "eu"  # added by the remote read answer
        key = lambda r: sorted(r["metric"].items())  # noqa: E731
        self.assertEqual(len(theirs), 2)
        self.assertEqual(sorted(theirs, key=key), sorted(mine, key=key))


class RemoteReadHistograms(KilnTestCase):
    """Native histograms in the streamed answer: HISTOGRAM and FLOAT_HISTOGRAM chunks."""
    kiln_config = CONFIG

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.t0 = t0 = (int(time.time()) - 3600) * 1000
        cls.want = {}
        # 150 integer histograms: a third bucket from the 60th (the chunk recoded), a counter reset at
        # the 100th (a new chunk)
        ints, want = [], []
        for k in range(150):
            base = k if k < 100 else k - 100
            counts = [base + 1, 2 * base + 1] + ([base] if k >= 60 else [])
            spans = [(0, len(counts))]
            deltas = [counts[0]] + [counts[j] - counts[j - 1] for j in range(1, len(counts))]
            t = t0 + k * 10000 + (k % 7) * 13
            ints.append(pb_histogram(t, 0, spans, deltas=deltas, neg_spans=[(-1, 1)], neg_deltas=[base],
                                     count=sum(counts) + base + 2, total=base * 1.5, zero_threshold=0.001,
                                     zero_count=2))
            want.append((t, {"schema": 0, "zt": 0.001, "count": float(sum(counts) + base + 2), "zc": 2.0,
                             "sum": base * 1.5, "pos_spans": spans, "pos": [float(c) for c in counts],
                             "neg_spans": [(-1, 1)], "neg": [float(base)]}))
        cls.want["rrh_int"] = want
        floats, want = [], []
        for k in range(30):
            counts = [0.5 + k, 2.25 * k]
            t = t0 + k * 10000
            floats.append(pb_histogram(t, 1, [(1, 2)], counts=counts, count=sum(counts), total=k * 0.1))
            want.append((t, {"schema": 1, "zt": 0.0, "count": sum(counts), "zc": 0.0, "sum": k * 0.1,
                             "pos_spans": [(1, 2)], "pos": counts, "neg_spans": [], "neg": []}))
        cls.want["rrh_float"] = want
        for ls, hs in ((("rrh_int", "a"), ints), (("rrh_float", "a"), floats)):
            st, _, body = cls.kiln.post("/api/v1/write", write_body_hist(
                [([("__name__", ls[0]), ("job", ls[1])], [], hs)]), headers=HEADERS)
            assert st == 204, body
        # one series: floats, then integer histograms, then floats again (written in time order)
        mix = [("__name__", "rrh_mix"), ("job", "a")]
        parts = ([([(k * 1.0, t0 + k * 10000) for k in range(10)], [])],
                 [([], [pb_histogram(t0 + k * 10000, 0, [(0, 1)], deltas=[k], count=k, total=1.0)
                        for k in range(10, 20)])],
                 [([(k * 1.0, t0 + k * 10000) for k in range(20, 25)], [])])
        for (ss, hs), in parts:
            st, _, body = cls.kiln.post("/api/v1/write", write_body_hist([(mix, ss, hs)]), headers=HEADERS)
            assert st == 204, body

    def read(self, name):
        st, h, body = self.kiln.post("/api/v1/read", read_request(
            [(self.t0, self.t0 + 3600_000, [(0, "__name__", name)])], True), headers=READ_HEADERS)
        self.assertEqual(st, 200, body)
        got = read_streamed(self, body)
        self.assertEqual(len(got), 1, got.keys())
        return list(got.values())[0]

    def test_integer_histograms(self):
        chunks = self.read("rrh_int")
        self.assertEqual({c[0] for c in chunks}, {2})
        # cut at the counter reset (sample 100) and at 120 samples at most
        self.assertEqual([len(c[3]) for c in chunks], [100, 50])
        for _, mint, maxt, pts in chunks:
            self.assertEqual((mint, maxt), (pts[0][0], pts[-1][0]))
        # the first chunk was recoded to the third bucket (as Prometheus does): an empty bucket before it
        want = [(t, dict(h, pos_spans=[(0, 3)], pos=h["pos"] + [0.0]) if k < 60 else h)
                for k, (t, h) in enumerate(self.want["rrh_int"])]
        self.assertEqual(sum((c[3] for c in chunks), []), want)

    def test_float_histograms(self):
        chunks = self.read("rrh_float")
        self.assertEqual([(c[0], len(c[3])) for c in chunks], [(3, 30)])
        self.assertEqual(chunks[0][3], self.want["rrh_float"])

    def test_floats_and_histograms_in_time_order(self):
        chunks = self.read("rrh_mix")
        self.assertEqual([(c[0], len(c[3])) for c in chunks], [(1, 10), (2, 10), (1, 5)])
        self.assertEqual([t for c in chunks for t, _ in c[3]], [self.t0 + k * 10000 for k in range(25)])
        self.assertEqual([h["count"] for _, h in chunks[1][3]], [float(k) for k in range(10, 20)])


if __name__ == "__main__":
    unittest.main()
