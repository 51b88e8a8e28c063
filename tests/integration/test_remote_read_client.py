"""remote_read as a client: kiln with remote_read pointing at Debian's
Prometheus 2.42 (holding data kiln lacks) answers PromQL over both, merged
(a series both hold gets the samples of both); required_matchers,
filter_external_labels with the external labels, a reload that drops the
entry, and an unreachable endpoint (a warning, not an error).  kiln asks
for STREAMED_XOR_CHUNKS first: a proxy in front of Prometheus checks the
answers are streamed chunks, and, taking the streamed type out of the
request, that kiln reads a SAMPLES answer the same."""
import http.server
import json
import threading
import time
import unittest
import urllib.parse
import urllib.request

from kilntest import Kiln, Prometheus, free_port, http_get, require, wait_for
from rwproto import snappy, unsnappy, write_body

RW_HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
              "X-Prometheus-Remote-Write-Version": "0.1.0"}


def post(url, body, headers):
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


class ReadProxy(http.server.ThreadingHTTPServer):
    """Forwards POST /read to `target`; with samples_only, the request's
    accepted_response_types lose STREAMED_XOR_CHUNKS.  Records the answers'
    Content-Type."""
    daemon_threads = True

    def __init__(self, target, samples_only):
        self.target, self.samples_only, self.types = target, samples_only, []
        super().__init__(("127.0.0.1", 0), ReadProxyHandler)


class ReadProxyHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.server.samples_only:
            raw = unsnappy(body)
            assert raw.endswith(b"\x10\x01\x10\x00"), raw[-8:]  # STREAMED_XOR_CHUNKS, then SAMPLES
            body = snappy(raw[:-4] + b"\x10\x00")
        hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        req = urllib.request.Request(self.server.target, data=body, headers=hdrs, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            data, ctype = r.read(), r.headers.get("Content-Type")
        self.server.types.append(ctype)
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class RemoteReadClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require("prometheus")
        now = int(time.time() * 1000)
        cls.t0 = now - 30 * 60_000  # within both heads' range
        cls.prom = Prometheus("global:\n  scrape_interval: 1h\n", args=["--web.enable-remote-write-receiver"])
        cls.prom.__enter__()
        t0 = cls.t0
        # first (Prometheus' head then takes the later ones): `ancient`, 8.5 h old
        cls.t_anc = now - int(8.5 * 3600_000)
        st = post(cls.prom.url + "/api/v1/write", write_body(
            [([("__name__", "ancient"), ("region", "eu")], [(float(k), cls.t_anc + k * 60_000) for k in range(10)])]),
            RW_HEADERS)
        assert st == 204, st
        # Prometheus alone holds `old`; both hold `both` (Prometheus the even
        # minutes, kiln the odd ones); region=eu and region=us copies of `ext`.
        # Prometheus' series carry kiln's external label region=eu, as data
        # kiln sent there would: kiln asks for region="eu" and removes it
        series = [
            ([("__name__", "old"), ("job", "p"), ("i", str(i)), ("region", "eu")], [(float(i * 100 + k), t0 + k * 60_000) for k in range(20)])
            for i in range(3)
        ]
        series.append(([("__name__", "both"), ("job", "p"), ("region", "eu")], [(float(k), t0 + k * 60_000) for k in range(0, 20, 2)]))
        for region, v in (("eu", 1.0), ("us", 2.0)):
            series.append(([("__name__", "ext"), ("region", region)], [(v, t0 + k * 60_000) for k in range(20)]))
        st = post(cls.prom.url + "/api/v1/write", write_body(series), RW_HEADERS)
        assert st == 204, st
        cfg = f"""global:
  external_labels:
    region: eu
remote_read:
  - url: {cls.prom.url}/api/v1/read
    name: prom
    remote_timeout: 10s
    headers:
      X-Scope-OrgID: tenant1
"""
        cls.kiln = Kiln(args=["--web.enable-remote-write-receiver", "--web.enable-lifecycle"], config=cfg).start()
        local = [([("__name__", "both"), ("job", "p")], [(float(k), t0 + k * 60_000) for k in range(1, 20, 2)]),
                 ([("__name__", "kiln_only"), ("job", "k")], [(7.0, t0 + k * 60_000) for k in range(20)])]
        st, _, body = cls.kiln.post("/api/v1/write", write_body(local), headers=RW_HEADERS)
        assert st == 204, (st, body)

    @classmethod
    def tearDownClass(cls):
        cls.kiln.stop()
        cls.kiln.cleanup()
        cls.prom.__exit__()

    def range_query(self, q, kn=None):
        return self.range_query_at(kn or self.kiln, q, self.t0 / 1000, self.t0 / 1000 + 19 * 60)

    def test_series_only_the_remote_holds(self):
        d = self.range_query("old")
        res = sorted(d["data"]["result"], key=lambda r: r["metric"]["i"])
        self.assertEqual([r["metric"] for r in res],
                         [{"__name__": "old", "job": "p", "i": str(i)} for i in range(3)])
        for i, r in enumerate(res):
            self.assertEqual([float(v) for _, v in r["values"]], [float(i * 100 + k) for k in range(20)])
        self.assertNotIn("warnings", d)

    def test_merged_with_local(self):
        d = self.range_query("both")
        (r,) = d["data"]["result"]
        self.assertEqual([float(v) for _, v in r["values"]], [float(k) for k in range(20)])
        # an aggregation over local and remote series
        d = self.range_query('count({job=~"p|k"})')
        (r,) = d["data"]["result"]
        self.assertEqual({v for _, v in r["values"]}, {"5"})  # old x3, both, kiln_only

    def test_equal_to_prometheus_answer(self):
        """What kiln answers for the remote's series is what Prometheus answers itself."""
        q = "/api/v1/query_range?" + urllib.parse.urlencode(
            {"query": "rate(old[5m])", "start": self.t0 / 1000 + 300, "end": self.t0 / 1000 + 1100, "step": 30})
        theirs = self.prom.query(q)["result"]
        for r in theirs:
            del r["metric"]["region"]  # kiln's external label, removed from what kiln reads
        mine = self.kiln.get_json(q)[1]["data"]["result"]
        key = lambda r: sorted(r["metric"].items())  # noqa: E731
        self.assertEqual(len(mine), 3)
        self.assertEqual(sorted(mine, key=key), sorted(theirs, key=key))

    def test_filter_external_labels(self):
        # region=eu is added as a matcher and removed from the answer
        d = self.range_query("ext")
        (r,) = d["data"]["result"]
        self.assertEqual(r["metric"], {"__name__": "ext"})
        self.assertEqual({v for _, v in r["values"]}, {"1"})
        # a selector naming the label gets what it asks for, label kept
        d = self.range_query('ext{region="us"}')
        (r,) = d["data"]["result"]
        self.assertEqual(r["metric"], {"__name__": "ext", "region": "us"})

    def test_required_matchers_and_reload(self):
        base = self.kiln.config_path
        with open(base) as f:
            orig = f.read()
        try:
            with open(base, "w") as f:
                f.write(orig + "    required_matchers:\n      job: p\n")
            st, _, body = self.kiln.post("/-/reload")
            self.assertEqual(st, 200, body)
            self.assertEqual(self.range_query("old")["data"]["result"], [])
            self.assertEqual(len(self.range_query('old{job="p"}')["data"]["result"]), 3)
            # without remote_read, only the local data
            with open(base, "w") as f:
                f.write("global:\n  external_labels:\n    region: eu\n")
            st, _, body = self.kiln.post("/-/reload")
            self.assertEqual(st, 200, body)
            self.assertEqual(self.range_query('old{job="p"}')["data"]["result"], [])
            (r,) = self.range_query("both")["data"]["result"]
            self.assertEqual({float(v) for _, v in r["values"]}, {float(k) for k in range(1, 20, 2)})  # kiln's
        finally:
            with open(base, "w") as f:
                f.write(orig)
            st, _, _ = self.kiln.post("/-/reload")
            self.assertEqual(st, 200)

    def test_read_recent(self):
        """Without read_recent, only a range older than where kiln's data starts (its
        oldest block's start plus two block ranges) is read remotely, up to there."""
        cfg = f"""global:
  external_labels:
    region: eu
remote_read:
  - url: {self.prom.url}/api/v1/read
"""
        kn = Kiln(args=["--web.enable-remote-write-receiver", "--web.enable-lifecycle"], config=cfg).start()
        try:
            now = int(time.time() * 1000)
            # a head spanning 10 h: compaction writes its oldest range as a block
            st, _, body = kn.post("/api/v1/write", write_body(
                [([("__name__", "local")], [(1.0, now - 10 * 3600_000), (2.0, now - 60_000)])]), headers=RW_HEADERS)
            self.assertEqual(st, 204, body)
            self.assertTrue(wait_for(lambda: kn.metrics().get("kiln_tsdb_blocks_loaded", 0) >= 1, timeout=60),
                            kn.read_log()[-2000:])

            def rng(q, start, end):
                d = self.range_query_at(kn, q, start, end)
                return d["data"]["result"]

            # older than kiln's data: read remotely
            (r,) = rng("ancient", self.t_anc / 1000, self.t_anc / 1000 + 540)
            self.assertEqual([float(v) for _, v in r["values"]], [float(k) for k in range(10)])
            # recent: kiln's own data only
            self.assertEqual(rng("old", self.t0 / 1000, self.t0 / 1000 + 19 * 60), [])
            with open(kn.config_path, "a") as f:
                f.write("    read_recent: true\n")
            st, _, body = kn.post("/-/reload")
            self.assertEqual(st, 200, body)
            self.assertEqual(len(rng("old", self.t0 / 1000, self.t0 / 1000 + 19 * 60)), 3)
        finally:
            kn.stop()
            kn.cleanup()

    def range_query_at(self, kn, q, start, end):
        path = "/api/v1/query_range?" + urllib.parse.urlencode({"query": q, "start": start, "end": end, "step": 60})
        st, _, body = kn.get(path)
        self.assertEqual(st, 200, body)
        return json.loads(body)

    def test_unreachable_endpoint_is_a_warning(self):
        port = free_port()
        cfg = f"""remote_read:
  - url: http://127.0.0.1:{port}/api/v1/read
    remote_timeout: 2s
"""
        kn = Kiln(args=["--web.enable-remote-write-receiver"], config=cfg).start()
        try:
            st, _, body = kn.post("/api/v1/write", write_body(
                [([("__name__", "kiln_only")], [(3.0, self.t0 + k * 60_000) for k in range(20)])]),
                headers=RW_HEADERS)
            self.assertEqual(st, 204, body)
            d = self.range_query("kiln_only", kn)
            self.assertEqual(d["status"], "success")
            self.assertEqual(len(d["data"]["result"]), 1)
            (w,) = d["warnings"]
            self.assertTrue(w.startswith(f'PromQL warning: error sending request: Post "http://127.0.0.1:{port}/api/v1/read"'), w)
            # the configuration is acted on: no "not acted on" warning for remote_read
            self.assertNotIn("remote_read", kn.read_log())
        finally:
            kn.stop()
            kn.cleanup()

    def test_streamed_chunks_and_samples_fallback(self):
        want = self.range_query("old")["data"]["result"]
        self.assertEqual(len(want), 3)
        for samples_only, ctype in ((False, "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"),
                                    (True, "application/x-protobuf")):
            proxy = ReadProxy(f"{self.prom.url}/api/v1/read", samples_only)
            threading.Thread(target=proxy.serve_forever, daemon=True).start()
            kn = Kiln(config=f"""global:
  external_labels:
    region: eu
remote_read:
  - url: http://127.0.0.1:{proxy.server_address[1]}/read
""").start()
            try:
                got = self.range_query("old", kn)["data"]["result"]
                self.assertEqual(sorted(got, key=lambda r: r["metric"]["i"]),
                                 sorted(want, key=lambda r: r["metric"]["i"]))
                self.assertTrue(proxy.types)
                self.assertEqual(set(proxy.types), {ctype})
            finally:
                kn.stop()
                kn.cleanup()
                proxy.shutdown()
                proxy.server_close()

    def test_prometheus_reads_kiln_not_looping(self):
        """Prometheus reading kiln through remote read gets kiln's local data
        only: kiln's remote read server does not forward to its own remote_read."""
        st, body = http_get(f"http://{self.kiln.addr}/api/v1/query?query=old")
        self.assertEqual(st, 200)
        q = "/api/v1/query_range?" + urllib.parse.urlencode(
            {"query": "kiln_only", "start": self.t0 / 1000, "end": self.t0 / 1000 + 19 * 60, "step": 60})
        with Prometheus(f"""remote_read:
  - url: http://{self.kiln.addr}/api/v1/read
    read_recent: true
""") as p:
            theirs = p.query(q)["result"]
            olds = p.query("/api/v1/query?" + urllib.parse.urlencode({"query": "old", "time": self.t0 / 1000 + 600}))
        (r,) = theirs
        self.assertEqual(r["metric"], {"__name__": "kiln_only", "job": "k", "region": "eu"})
        self.assertEqual(olds["result"], [])


if __name__ == "__main__":
    unittest.main()
