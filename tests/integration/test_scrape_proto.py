"""Scraping the protobuf exposition format: a target serving hand-encoded MetricFamily bodies
(protoexpo.py) scraped by kiln under scrape_protocols negotiation, native histograms stored
(checked through remote read, which returns them as Histogram messages), classic histograms kept
with always_scrape_classic_histograms, the bucket limit and bucket factor lowering the schema,
fallback_scrape_protocol for a blank Content-Type, scrape_failure_log_file and enable_compression;
and the same target scraped by Debian's Prometheus 2.42 (--enable-feature=native-histograms) and
by kiln gives the same series and the same values: the JSON of /api/v1/query, floats and native
histograms alike, and the histograms kiln's remote read returns."""
import json
import math
import os
import struct
import tempfile
import time
import unittest
import urllib.parse

import protoexpo
from kilntest import Kiln, Prometheus, wait_for
from rwproto import field, unsnappy, varint, snappy
from test_remote_read import fields, labels_of, read_varint

READ_HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                "X-Prometheus-Remote-Read-Version": "0.1.0"}

PROTO_FIRST_ACCEPT = (
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,"
    "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=1.0.0;escaping=underscores;q=0.3,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1")


def signed(v):
    return (v >> 1) ^ -(v & 1)


def packed_varints(b):
    out, i = [], 0
    while i < len(b):
        v, i = read_varint(b, i)
        out.append(v)
    return out


def decode_histogram(b):
    """A remote.proto Histogram into a dict with absolute counts."""
    h = {"neg_spans": [], "pos_spans": [], "neg": [], "pos": [], "hint": 0}
    deltas = {9: [], 12: []}
    counts = {10: [], 13: []}
    for f, wt, v in fields(b):
        if f == 1:
            h["count"], h["int"] = v, True
        elif f == 2:
            h["count"], h["int"] = struct.unpack("<d", v)[0], False
        elif f == 3:
            h["sum"] = struct.unpack("<d", v)[0]
        elif f == 4:
            h["schema"] = signed(v)
        elif f == 5:
            h["zt"] = struct.unpack("<d", v)[0]
        elif f in (6, 7):
            h["zc"] = v if f == 6 else struct.unpack("<d", v)[0]
        elif f in (8, 11):
            sp = dict((k, x) for k, _, x in fields(v))
            h["neg_spans" if f == 8 else "pos_spans"].append((signed(sp.get(1, 0)), sp.get(2, 0)))
        elif f in (9, 12):
            deltas[f] += [signed(x) for x in packed_varints(v)]
        elif f in (10, 13):
            counts[f] += [struct.unpack("<d", v[i:i + 8])[0] for i in range(0, len(v), 8)]
        elif f == 14:
            h["hint"] = v
        elif f == 15:
            h["t"] = v
    for side, d, c in (("neg", 9, 10), ("pos", 12, 13)):
        if h["int"]:
            acc = 0
            for x in deltas[d]:
                acc += x
                h[side].append(acc)
        else:
            h[side] = counts[c]
    h.setdefault("zc", 0)
    h.setdefault("zt", 0.0)
    h.setdefault("sum", 0.0)
    return h


def buckets(h):
    """[(lower, upper, count)] of the non-empty buckets, as Prometheus' JSON lists them (zero bucket
    [-zt, zt], negative ones mirrored), sorted."""
    base = 2 ** (2 ** -h["schema"])
    out = []
    for side, sign in (("pos", 1), ("neg", -1)):
        idx, k = 0, 0
        for off, n in h[side + "_spans"]:
            idx += off
            for _ in range(n):
                c = h[side][k]
                k += 1
                if c:
                    lo, hi = base ** (idx - 1), base ** idx
                    out.append((lo, hi, c) if sign > 0 else (-hi, -lo, c))
                idx += 1
    if h["zc"]:
        out.append((-h["zt"], h["zt"], h["zc"]))
    return sorted(out)


def read_request(matchers, start, end):
    q = b"\x08" + varint(start) + b"\x10" + varint(end)
    for t, n, v in matchers:
        q += field(3, (b"\x08" + varint(t) if t else b"") + field(2, n.encode()) + field(3, v.encode()))
    return snappy(field(1, q))


def remote_read(kiln, matchers, start, end):
    """{job: [histogram dicts]} of the series matching (SAMPLES answer)."""
    st, h, body = kiln.post("/api/v1/read", read_request(matchers, start, end), headers=READ_HEADERS)
    assert st == 200, body
    out = {}
    for f, _, qr in fields(unsnappy(body)):
        for f2, _, ts in fields(qr):
            tf = fields(ts)
            ls = labels_of(tf)
            out[tuple(sorted(ls.items()))] = [decode_histogram(hb) for f3, _, hb in tf if f3 == 4]
    return out


def query(kiln, q, t=None):
    path = "/api/v1/query?" + urllib.parse.urlencode({"query": q, **({"time": t} if t else {})})
    st, js = kiln.get_json(path)
    assert st == 200, js
    return {tuple(sorted(r["metric"].items())): (r["value"] if "value" in r else r["histogram"])[1]
            for r in js["data"]["result"]}


def same_value(k, p):
    """kiln's and Prometheus' JSON of one value: the same strings throughout, bucket boundaries
    included (kiln takes them from the table of Prometheus' own fractions, query/nhbounds.h)."""
    return k == p


def job_config(name, port, extra=""):
    return f"""  - job_name: {name}
    scrape_interval: 1s
    scrape_timeout: 900ms
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
{extra}"""


class ScrapeProto(unittest.TestCase):
    """One kiln, one changing protobuf target, several jobs with different settings."""

    @classmethod
    def setUpClass(cls):
        cls.target = protoexpo.Target(protoexpo.sample_body)
        cls.blank = protoexpo.Target(lambda step: protoexpo.sample_body(0), force_type="")
        cls.tmp = tempfile.mkdtemp(prefix="kiln-proto-")
        cls.faillog = os.path.join(cls.tmp, "failures.log")
        p, b = cls.target.port, cls.blank.port
        cfg = "scrape_configs:\n" + "".join([
            job_config("native", p, "    scrape_native_histograms: true\n    always_scrape_classic_histograms: true\n"),
            job_config("classic", p, "    scrape_protocols: [PrometheusProto]\n    enable_compression: false\n"),
            job_config("limit", p, "    scrape_native_histograms: true\n    native_histogram_bucket_limit: 4\n"),
            job_config("factor", p, "    scrape_native_histograms: true\n    native_histogram_min_bucket_factor: 4\n"),
            job_config("tight", p, "    scrape_native_histograms: true\n    native_histogram_bucket_limit: 1\n"),
            job_config("blank", b, f"    scrape_failure_log_file: {cls.faillog}\n"),
            job_config("fallback", b, "    fallback_scrape_protocol: PrometheusProto\n"),
        ])
        cls.kiln = Kiln(config=cfg)
        cls.kiln.start()
        ok = wait_for(lambda: len(query(cls.kiln, "up")) == 7 and cls.target.scrapes >= 25, timeout=60)
        assert ok, query(cls.kiln, "up")

    @classmethod
    def tearDownClass(cls):
        code = cls.kiln.stop()
        log = cls.kiln.read_log()
        cls.kiln.cleanup()
        cls.target.close()
        cls.blank.close()
        if code != 0:
            raise AssertionError(f"kiln exited with {code}:\n{log[-3000:]}")

    def up(self):
        return {dict(k)["job"]: v for k, v in query(self.kiln, "up").items()}

    def last_error(self, job):
        st, js = self.kiln.get_json("/api/v1/targets")
        for t in js["data"]["activeTargets"]:
            if t["labels"]["job"] == job:
                return t["lastError"]
        return None

    def hist(self, job, name="demo_latency_seconds"):
        now = int(time.time() * 1000)
        got = remote_read(self.kiln, [(0, "__name__", name), (0, "job", job)], now - 60000, now + 1000)
        self.assertEqual(len(got), 1, got)
        hs = list(got.values())[0]
        self.assertGreaterEqual(len(hs), 2)
        return hs[-1]

    def test_up_and_errors(self):
        up = self.up()
        self.assertEqual({j: up[j] for j in ("native", "classic", "limit", "factor", "fallback")},
                         {j: "1" for j in ("native", "classic", "limit", "factor", "fallback")})
        self.assertEqual(up["tight"], "0")
        self.assertEqual(self.last_error("tight"), "histogram bucket limit exceeded")
        self.assertEqual(up["blank"], "0")
        self.assertEqual(self.last_error("blank"), "non-compliant scrape target sending blank Content-Type and no "
                                                   "fallback_scrape_protocol specified for target")

    def test_accept_header(self):
        self.assertIn(PROTO_FIRST_ACCEPT, self.target.accepts)
        self.assertIn("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;"
                      "q=0.6,*/*;q=0.5", self.target.accepts)

    def test_float_series(self):
        # the counter, gauge, summary and classic histogram of the last scrape
        for job in ("native", "classic"):
            got = query(self.kiln, f'{{job="{job}",__name__=~"demo_(requests_total|temperature|rpc_seconds.*|classic.*)"}}')
            names = {dict(k)["__name__"] for k in got}
            self.assertEqual(names, {"demo_requests_total", "demo_temperature", "demo_rpc_seconds",
                                     "demo_rpc_seconds_count", "demo_rpc_seconds_sum", "demo_classic_seconds_count",
                                     "demo_classic_seconds_sum", "demo_classic_seconds_bucket"})
            les = sorted(dict(k).get("le") for k in got if dict(k)["__name__"] == "demo_classic_seconds_bucket")
            self.assertEqual(les, ["+Inf", "0.1", "1.0"])
            qs = sorted(dict(k).get("quantile") for k in got if dict(k)["__name__"] == "demo_rpc_seconds")
            self.assertEqual(qs, ["0.5", "0.99"])
            byname = {(dict(k)["__name__"], dict(k).get("code")): float(v) for k, v in got.items()}
            # values move together: requests{code=200} is 100 * k, temperature 21.5 + k - 1
            k = byname[("demo_requests_total", "200")] / 100
            self.assertEqual(k, int(k))
            self.assertEqual(byname[("demo_requests_total", "500")], 3 * k)

    def test_native_histogram(self):
        h = self.hist("native")
        k = h["sum"] / 42.5
        self.assertEqual(k, int(k))
        k = int(k)
        self.assertTrue(h["int"])
        self.assertEqual((h["schema"], h["zt"], h["zc"], h["count"]), (1, 0.001, 2, 9 * k + 4))
        self.assertEqual(h["pos_spans"], [(0, 2), (2, 2)])
        self.assertEqual(h["pos"], [2 * k, 2 * k + 1, 2 * k - 1, 2 * k + 2])
        self.assertEqual((h["neg_spans"], h["neg"]), ([(-1, 1)], [k]))
        # the float gauge histogram
        f = self.hist("native", "demo_float_hist")
        self.assertFalse(f["int"])
        self.assertEqual(f["hint"], 3)
        self.assertEqual((f["schema"], f["pos_spans"]), (0, [(1, 3)]))
        self.assertEqual(f["count"], 4.0 + (f["pos"][1] - 2.0))
        # always_scrape_classic_histograms: the classic buckets too; the classic job: those only
        for job, native in (("native", True), ("classic", False)):
            got = query(self.kiln, f'{{job="{job}",__name__=~"demo_latency_seconds.*"}}')
            names = sorted({dict(k)["__name__"] for k in got})
            self.assertEqual(names, (["demo_latency_seconds"] if native else []) + [
                "demo_latency_seconds_bucket", "demo_latency_seconds_count", "demo_latency_seconds_sum"])
            st, js = self.kiln.get_json("/api/v1/series?" + urllib.parse.urlencode(
                {"match[]": f'{{job="{job}",__name__="demo_latency_seconds"}}'}))
            self.assertEqual(len(js["data"]), 1 if native else 0, js)
        les = sorted(dict(k)["le"] for k in query(self.kiln, 'demo_latency_seconds_bucket{job="native"}'))
        self.assertEqual(les, ["+Inf", "0.5", "1.0"])

    def test_schema_reduction(self):
        # 5 buckets at schema 1; a limit of 4 takes it to schema -1 (as Prometheus' ReduceResolution)
        h = self.hist("limit")
        k = int(h["sum"] / 42.5)
        self.assertEqual((h["schema"], h["pos_spans"], h["neg_spans"]), (-1, [(0, 3)], [(0, 1)]))
        self.assertEqual(h["pos"], [2 * k, (2 * k + 1) + (2 * k - 1), 2 * k + 2])
        # bucket factor 4: schema -1 at most
        f = self.hist("factor")
        self.assertEqual((f["schema"], f["pos_spans"]), (-1, [(0, 3)]))

    def test_fallback_and_failure_log(self):
        got = query(self.kiln, 'demo_requests_total{job="fallback"}')
        self.assertEqual(len(got), 2)
        with open(self.faillog) as f:
            lines = [json.loads(x) for x in f if x.strip()]
        self.assertTrue(lines)
        self.assertEqual(lines[-1]["scrape_pool"], "blank")
        self.assertEqual(lines[-1]["target"], f"http://127.0.0.1:{self.blank.port}/metrics")
        self.assertIn("blank Content-Type", lines[-1]["msg"])

    def test_enable_compression(self):
        st, js = self.kiln.get_json("/api/v1/status/config")
        self.assertIn("enable_compression: false", js["data"]["yaml"])
        self.assertIn("scrape_native_histograms: true", js["data"]["yaml"])


class TrackTimestampsStaleness(unittest.TestCase):
    """A series with its own timestamps that goes away: stale at once with
    track_timestamps_staleness: true, left to the lookback without it (Prometheus' default)."""

    def test_track_timestamps_staleness(self):
        def body(step):
            fams = [protoexpo.family("always", protoexpo.GAUGE, [protoexpo.metric(gauge=1.0)])]
            if step < 3:
                fams.append(protoexpo.family("ts_series", protoexpo.GAUGE, [
                    protoexpo.metric(gauge=float(step), ts_ms=int(time.time() * 1000))]))
            return b"".join(fams)
        on, off = protoexpo.Target(body), protoexpo.Target(body)
        cfg = "scrape_configs:\n" + job_config("track", on.port, "    track_timestamps_staleness: true\n") + \
            job_config("notrack", off.port)
        kiln = Kiln(config=cfg)
        try:
            kiln.start()
            self.assertTrue(wait_for(lambda: on.scrapes >= 6 and off.scrapes >= 6, timeout=30))
            time.sleep(1)
            got = {dict(k)["job"] for k in query(kiln, "ts_series")}
            self.assertEqual(got, {"notrack"})
            self.assertEqual(len(query(kiln, "always")), 2)
        finally:
            kiln.stop()
            kiln.cleanup()
            on.close()
            off.close()


class ScrapeProtoVsPrometheus(unittest.TestCase):
    """The same static target scraped by kiln and by Prometheus 2.42 with native histograms."""

    def test_same_series_and_values(self):
        target = protoexpo.Target(lambda step: protoexpo.sample_body(0, gauge_hist=False))
        cfg = "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n" + job_config(
            "proto", target.port)
        kiln = Kiln(config=cfg, args=["--enable-feature=native-histograms"])
        try:
            kiln.start()
            with Prometheus(cfg, args=["--enable-feature=native-histograms"]) as prom:
                wait_for(lambda: len(query(kiln, "up")) == 1 and prom.query("/api/v1/query?query=up")["result"],
                         timeout=60)
                time.sleep(3)
                sel = urllib.parse.urlencode({"match[]": '{job="proto"}'})
                ks = {tuple(sorted(s.items())) for s in kiln.get_json("/api/v1/series?" + sel)[1]["data"]}
                ps = {tuple(sorted(s.items())) for s in prom.query("/api/v1/series?" + sel)}
                self.assertEqual(ks, ps)
                self.assertIn((("__name__", "demo_latency_seconds"), ("instance", f"127.0.0.1:{target.port}"),
                               ("job", "proto"), ("path", "/a")), ks)
                # every value, the report series aside: the JSON of /api/v1/query, floats and
                # native histograms ({"count","sum","buckets":[[rule,"lower","upper","count"]...]})
                q = '{job="proto",__name__=~"demo_.*"}'
                pv = {tuple(sorted(r["metric"].items())): (r["value"] if "value" in r else r["histogram"])[1]
                      for r in prom.query("/api/v1/query?" + urllib.parse.urlencode({"query": q}))["result"]}
                kv = query(kiln, q)
                self.assertEqual(set(kv), set(pv))
                for k in pv:
                    self.assertTrue(same_value(kv[k], pv[k]), (k, kv[k], pv[k]))
                self.assertEqual(len(pv), 14)
                self.assertEqual(sum(isinstance(v, dict) for v in pv.values()), 2)
                # the native histograms: Prometheus' JSON against kiln's remote read
                for name in ("demo_latency_seconds", "demo_float_hist"):
                    res = prom.query("/api/v1/query?" + urllib.parse.urlencode({"query": name}))["result"]
                    self.assertEqual(len(res), 1)
                    ph = res[0]["histogram"][1]
                    now = int(time.time() * 1000)
                    kh = list(remote_read(kiln, [(0, "__name__", name)], now - 30000, now + 1000).values())[0][-1]
                    self.assertEqual(float(ph["count"]), kh["count"])
                    self.assertEqual(float(ph["sum"]), kh["sum"])
                    pb = sorted((float(lo), float(hi), float(c)) for _, lo, hi, c in ph["buckets"])
                    kb = buckets(kh)
                    self.assertEqual(len(pb), len(kb), (pb, kb))
                    for (plo, phi, pc), (klo, khi, kc) in zip(pb, kb):
                        self.assertTrue(math.isclose(plo, klo, rel_tol=1e-12) and math.isclose(phi, khi, rel_tol=1e-12)
                                        and pc == kc, (pb, kb))
        finally:
            kiln.stop()
            kiln.cleanup()
            target.close()


if __name__ == "__main__":
    unittest.main()
