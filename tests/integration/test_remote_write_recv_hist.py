"""Native histograms through POST /api/v1/write, kiln as the receiver: hand-built remote write
1.0 and 2.0 bodies (integer histograms with deltas, float ones with counts, reset hints, stale markers, samples out of
order, duplicates, spans that disagree with the buckets), read back through remote read; and
Debian's Prometheus 2.42 as the sender (it scrapes a protobuf target with
--enable-feature=native-histograms and remote-writes with send_native_histograms), its histograms
compared with what it answers to its own queries."""
import math
import struct
import time
import unittest
import urllib.parse

import protoexpo
from kilntest import KilnTestCase, Prometheus, wait_for
from rwproto import field, pb_histogram, snappy, varint, write_body_hist
from test_remote_read import fields, labels_of, read_varint
from test_scrape_proto import buckets, remote_read, same_value

HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
           "X-Prometheus-Remote-Write-Version": "0.1.0"}
V2_HEADERS = {"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
              "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "2.0.0"}


def stale_sum():
    """Prometheus' stale marker NaN (0x7ff0000000000002) as a histogram's sum."""
    return struct.unpack("<d", (0x7FF0000000000002).to_bytes(8, "little"))[0]


class RemoteWriteHistograms(KilnTestCase):
    kiln_config = "global:\n  scrape_interval: 1h\n"

    def write(self, series, headers=HEADERS):
        return self.kiln.post("/api/v1/write", write_body_hist(series), headers=headers)

    def read(self, name, t0, t1):
        got = remote_read(self.kiln, [(0, "__name__", name)], t0, t1)
        self.assertEqual(len(got), 1, got)
        return list(got.values())[0]

    def test_integer_and_float(self):
        t = int(time.time() * 1000) - 120000
        ls = [("__name__", "rwh_int"), ("job", "a")]
        # deltas 1+i, 2, -1 -> counts 1+i, 3+i, 2+i at indices 0, 1 and 5 (spans 0:2, 3:1); negative -2: 4
        hs = [pb_histogram(t + i * 1000, 2, [(0, 2), (3, 1)], deltas=[1 + i, 2, -1], neg_spans=[(-2, 1)],
                           neg_deltas=[4], count=11 + 3 * i, total=10.5 + i, zero_threshold=0.001, zero_count=1,
                           hint=2 if i else 0) for i in range(3)]
        fl = [pb_histogram(t + i * 1000, -1, [(1, 2)], counts=[0.5, 2.5 + i], count=3.0 + i, total=1.25,
                           hint=3) for i in range(2)]
        st, _, body = self.write([(ls, [], hs), ([("__name__", "rwh_float")], [], fl)])
        self.assertEqual(st, 204, body)
        got = self.read("rwh_int", t - 1, t + 10000)
        self.assertEqual([h["t"] for h in got], [t, t + 1000, t + 2000])
        h = got[1]
        self.assertTrue(h["int"])
        self.assertEqual((h["schema"], h["count"], h["sum"], h["zt"], h["zc"]), (2, 14, 11.5, 0.001, 1))
        self.assertEqual((h["pos_spans"], h["pos"]), ([(0, 2), (3, 1)], [2, 4, 3]))
        self.assertEqual((h["neg_spans"], h["neg"]), ([(-2, 1)], [4]))
        f = self.read("rwh_float", t - 1, t + 10000)
        self.assertEqual(len(f), 2)
        self.assertFalse(f[0]["int"])
        self.assertEqual((f[1]["schema"], f[1]["count"], f[1]["pos"], f[1]["hint"]), (-1, 4.0, [0.5, 3.5], 3))
        st, js = self.kiln.get_json("/api/v1/series?" + urllib.parse.urlencode({"match[]": "rwh_int"}))
        self.assertEqual(js["data"], [{"__name__": "rwh_int", "job": "a"}])

    def test_rejections(self):
        t = int(time.time() * 1000) - 60000
        ls = [("__name__", "rwh_rej")]
        ok = pb_histogram(t, 0, [(0, 1)], deltas=[3], count=3, total=1.0)
        st, _, body = self.write([(ls, [], [ok])])
        self.assertEqual(st, 204, body)
        older = pb_histogram(t - 5000, 0, [(0, 1)], deltas=[1], count=1, total=1.0)
        dup = pb_histogram(t, 0, [(0, 1)], deltas=[4], count=4, total=1.0)
        newer = pb_histogram(t + 1000, 0, [(0, 1)], deltas=[5], count=5, total=2.0)
        bad = pb_histogram(t + 2000, 0, [(0, 2)], deltas=[5], count=5, total=2.0)  # 2 buckets, 1 delta
        st, _, body = self.write([(ls, [], [older, dup, newer, bad])])
        self.assertEqual(st, 400, body)
        self.assertIn(b"out of order", body)
        self.assertIn(b"3 of 4 histograms rejected", body)
        got = self.read("rwh_rej", t - 10000, t + 10000)
        self.assertEqual([(h["t"], h["count"]) for h in got], [(t, 3), (t + 1000, 5)])
        st, _, body = self.write([(ls, [], [bad])])
        self.assertEqual(st, 400, body)
        self.assertIn(b"histogram spans and deltas disagree", body)
        m = self.kiln.metrics()
        self.assertGreaterEqual(m["kiln_remote_write_histograms_received_total"], 6)

    def test_stale_marker(self):
        t = int(time.time() * 1000) - 30000
        ls = [("__name__", "rwh_stale")]
        h1 = pb_histogram(t, 0, [(0, 1)], deltas=[1], count=1, total=1.0)
        h2 = pb_histogram(t + 1000, 0, [], count=0, total=stale_sum())
        st, _, body = self.write([(ls, [], [h1, h2])])
        self.assertEqual(st, 204, body)
        got = self.read("rwh_stale", t - 1, t + 5000)
        self.assertEqual(len(got), 2)
        self.assertTrue(math.isnan(got[1]["sum"]))

    def test_v2_histograms_written(self):
        t = int(time.time() * 1000) - 20000
        symbols = ["", "__name__", "rwh_v2", "job", "x"]
        h = pb_histogram(t, 3, [(2, 2)], deltas=[1, 1], count=3, total=0.5)
        ts = field(1, b"".join(varint(v) for v in [1, 2, 3, 4])) + field(3, h)
        body = snappy(b"".join(field(4, s.encode()) for s in symbols) + field(5, ts))
        st, hd, out = self.kiln.post("/api/v1/write", body, headers=V2_HEADERS)
        self.assertEqual(st, 204, out)
        self.assertEqual(hd["x-prometheus-remote-write-histograms-written"], "1")
        self.assertEqual(hd["x-prometheus-remote-write-samples-written"], "0")
        got = self.read("rwh_v2", t - 1, t + 1000)
        self.assertEqual((got[0]["schema"], got[0]["pos"]), (3, [1, 2]))


class FederateHistograms(KilnTestCase):
    """/federate carries native histograms in the protobuf format only, as Prometheus does; Prometheus
    2.42 federating from kiln gets the histogram kiln holds."""
    kiln_config = "global:\n  scrape_interval: 1h\n"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.t = int(time.time() * 1000) - 10000
        h = pb_histogram(cls.t, 1, [(0, 2), (2, 1)], deltas=[2, 1, -2], neg_spans=[(-1, 1)], neg_deltas=[3],
                         count=11, total=4.5, zero_threshold=0.001, zero_count=2)
        st, _, body = cls.kiln.post("/api/v1/write", write_body_hist([
            ([("__name__", "fed_h"), ("job", "a")], [], [h]),
            ([("__name__", "fed_f"), ("job", "a")], [(1.5, cls.t)], [])]), headers=HEADERS)
        assert st == 204, body

    def test_text_leaves_histograms_out(self):
        st, h, body = self.kiln.get("/federate?" + urllib.parse.urlencode({"match[]": '{job="a"}'}))
        self.assertEqual(st, 200)
        self.assertEqual(body.decode(), f'# TYPE fed_f untyped\nfed_f{{job="a"}} 1.5 {self.t}\n')

    def test_protobuf(self):
        st, h, body = self.kiln.get("/federate?" + urllib.parse.urlencode({"match[]": '{job="a"}'}), headers={
            "Accept": protoexpo.MEDIA_TYPE.replace(" ", "")})
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("application/vnd.google.protobuf"), h)
        fams, i = [], 0
        while i < len(body):
            n, i = read_varint(body, i)
            fams.append(fields(body[i:i + n]))
            i += n
        got = {}
        for fam in fams:
            f = {k: v for k, _, v in fam if k != 4}
            (metric,) = [v for k, _, v in fam if k == 4]
            mf = fields(metric)
            got[f[1].decode()] = (f[3], labels_of(mf), {k: v for k, _, v in mf if k != 1})
        self.assertEqual(sorted(got), ["fed_f", "fed_h"])
        self.assertEqual(got["fed_f"][0], 3)  # untyped
        self.assertEqual(got["fed_h"][0], 4)  # histogram
        self.assertEqual(got["fed_h"][1], {"job": "a"})
        self.assertEqual(got["fed_h"][2][6], self.t)
        hf = {k: v for k, _, v in fields(got["fed_h"][2][7])}
        self.assertEqual(struct.unpack("<d", hf[4])[0], 11.0)  # sample_count_float
        self.assertEqual(struct.unpack("<d", hf[2])[0], 4.5)
        self.assertEqual(struct.unpack("<3d", hf[14]), (2.0, 3.0, 1.0))  # positive_count, absolute
        self.assertEqual(struct.unpack("<d", hf[11]), (3.0,))

    def test_prometheus_federates_from_kiln(self):
        cfg = f"""global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: federate
    honor_labels: true
    metrics_path: /federate
    params: {{"match[]": ['{{job="a"}}']}}
    static_configs: [{{targets: ["{self.kiln.addr}"]}}]
"""
        with Prometheus(cfg, args=["--enable-feature=native-histograms"]) as prom:
            q = "/api/v1/query?" + urllib.parse.urlencode({"query": "fed_h", "time": self.t / 1000})
            res = wait_for(lambda: prom.query(q)["result"], timeout=30)
            self.assertTrue(res, "Prometheus got no histogram")
            ph = res[0]["histogram"][1]
            self.assertEqual((ph["count"], ph["sum"]), ("11", "4.5"))
            want = [(-(2 ** -0.5), -0.5, 3.0), (-0.001, 0.001, 2.0), (1 / 2 ** 0.5, 1.0, 2.0), (1.0, 2 ** 0.5, 3.0),
                    (2 ** 1.5, 4.0, 1.0)]
            pb = sorted((float(lo), float(hi), float(c)) for _, lo, hi, c in ph["buckets"])
            self.assertEqual(len(pb), len(want), pb)
            for a, b in zip(pb, want):
                self.assertTrue(all(math.isclose(x, y, rel_tol=1e-12) for x, y in zip(a, b)), (pb, want))
            fv = prom.query("/api/v1/query?" + urllib.parse.urlencode({"query": "fed_f", "time": self.t / 1000}))
            self.assertEqual(fv["result"][0]["value"][1], "1.5")


class PrometheusSendsHistograms(KilnTestCase):
    kiln_config = "global:\n  scrape_interval: 1h\n"

    def test_prometheus_remote_write(self):
        target = protoexpo.Target(lambda step: protoexpo.sample_body(step, gauge_hist=False))
        cfg = f"""global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: proto
    static_configs: [{{targets: ["127.0.0.1:{target.port}"]}}]
remote_write:
  - url: http://{self.kiln.addr}/api/v1/write
    send_native_histograms: true
    queue_config: {{batch_send_deadline: 1s}}
"""
        try:
            with Prometheus(cfg, args=["--enable-feature=native-histograms"]) as prom:
                def have():
                    now = int(time.time() * 1000)
                    got = remote_read(self.kiln, [(0, "__name__", "demo_latency_seconds")], now - 120000, now)
                    return got if got and len(list(got.values())[0]) >= 3 else None
                got = wait_for(have, timeout=60)
                self.assertTrue(got, "no histograms arrived")
                kh = list(got.values())[0]
                # the last histogram kiln holds is one Prometheus holds at the same time
                last = kh[-1]
                res = prom.query("/api/v1/query?" + urllib.parse.urlencode(
                    {"query": "demo_latency_seconds", "time": last["t"] / 1000}))["result"]
                ph = res[0]["histogram"][1]
                self.assertEqual(float(ph["count"]), last["count"])
                self.assertEqual(float(ph["sum"]), last["sum"])
                pb = sorted((float(lo), float(hi), float(c)) for _, lo, hi, c in ph["buckets"])
                kb = buckets(last)
                self.assertEqual([c for *_, c in pb], [c for *_, c in kb])
                for (plo, phi, _), (klo, khi, _) in zip(pb, kb):
                    self.assertTrue(math.isclose(plo, klo, rel_tol=1e-12) and math.isclose(phi, khi, rel_tol=1e-12))
                # and kiln's /api/v1/query JSON of it is Prometheus'
                st, js = self.kiln.get_json("/api/v1/query?" + urllib.parse.urlencode(
                    {"query": "demo_latency_seconds", "time": last["t"] / 1000}))
                self.assertTrue(same_value(js["data"]["result"][0]["histogram"][1], ph), (js, ph))
                m = self.kiln.metrics()
                self.assertGreaterEqual(m["kiln_remote_write_histograms_received_total"], 3)
                self.assertEqual(m['kiln_remote_write_samples_rejected_total{reason="invalid_labels"}'], 0)
        finally:
            target.close()


if __name__ == "__main__":
    unittest.main()
