"""POST /api/v1/write as senders use it: a real Prometheus scraping a real
node exporter and remote-writing to kiln, and every kind of bad body a
broken or hostile sender can post.

Bodies are built here by hand (a few lines of protobuf and snappy encoding;
the snappy encoder writes literals only, which every decoder reads), so the
test needs nothing beyond the Python standard library.
"""
import json
import os
import shutil
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

from kilntest import NODE_EXPORTER, PROMETHEUS, Kiln, KilnTestCase, Process, free_port, http_get, require, wait_for
from rwproto import pb_request, pb_series, snappy, varint

HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "User-Agent": "kiln-integration-test",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}

# ---- encoding --------------------------------------------------------------


def now_ms():
    return int(time.time() * 1000)


def good_body(name="rw_test_metric", value=1.0, ts=None):
    ts = now_ms() if ts is None else ts
    return snappy(pb_request([pb_series([("__name__", name), ("job", "rwtest")], [(value, ts)])]))


def vm_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


# ---- bad input ------------------------------------------------------------


class TestRemoteWriteBadInput(KilnTestCase):
    """Each bad body gets its 4xx and a one-line reason; kiln keeps serving."""

    def post(self, body, headers=HEADERS):
        return self.kiln.post("/api/v1/write", body=body, headers=headers)

    def assert_rejected(self, body, status, *words):
        st, _, text = self.post(body)
        text = text.decode("utf-8", "replace")
        self.assertEqual(st, status, text)
        self.assertTrue(text.endswith("\n"), repr(text))
        self.assertNotIn("\n", text[:-1], "more than one line: %r" % text[:200])
        self.assertLess(len(text), 2048)
        for w in words:
            self.assertIn(w, text)
        # still serving, and still storing
        self.assertEqual(self.kiln.get("/-/healthy")[0], 200)
        st, _, good = self.post(good_body())
        self.assertEqual(st, 204, good)
        return text

    def test_valid_then_counters(self):
        st, _, body = self.post(good_body("rw_counter_check", 3.5))
        self.assertEqual(st, 204, body)
        self.assertEqual(body, b"")
        m = self.kiln.metrics()
        self.assertGreaterEqual(m.get('kiln_remote_write_requests_total{code="204"}', 0), 1)
        self.assertGreaterEqual(m.get("kiln_remote_write_samples_received_total", 0), 1)
        self.assertGreaterEqual(m.get("kiln_remote_write_decode_duration_seconds_count", 0), 1)

    def test_empty_request(self):
        st, _, body = self.post(snappy(b""))
        self.assertEqual(st, 204, body)

    def test_not_snappy(self):
        self.assert_rejected(pb_request([pb_series([("__name__", "x")], [(1, now_ms())])]), 400, "snappy")

    def test_truncated_snappy(self):
        body = good_body()
        self.assert_rejected(body[:len(body) // 2], 400, "snappy")

    def test_garbage_protobuf(self):
        self.assert_rejected(snappy(b"\xff\xfe\xfd this is not protobuf"), 400, "protobuf")

    def test_huge_varint(self):
        self.assert_rejected(snappy(b"\x0a\x0c\x12\x0a\x10" + b"\xff" * 10 + b"\x01"), 400, "protobuf")
        self.assert_rejected(snappy(b"\x0a" + b"\x80" * 9 + b"\x40"), 400, "protobuf")

    def test_megabyte_label_value(self):
        series = pb_series([("__name__", "x"), ("blob", "v" * (1 << 20))], [(1, now_ms())])
        self.assert_rejected(snappy(pb_request([series])), 400, "blob", "1048576 bytes", "limit")

    def test_ten_thousand_labels(self):
        labels = [("__name__", "x")] + [("l%05d" % i, "v") for i in range(1, 10000)]
        series = pb_series(labels, [(1, now_ms())])
        self.assert_rejected(snappy(pb_request([series])), 400, "10000 labels")

    def test_claims_one_gigabyte(self):
        before = vm_kib(self.kiln.proc.pid, "VmHWM")
        body = varint(1 << 30) + b"\x00\x01\x02\x03"
        self.assert_rejected(body, 413, "1073741824")
        # refused before decompressing: the peak resident size did not grow by the claim
        self.assertLess(vm_kib(self.kiln.proc.pid, "VmHWM") - before, 256 * 1024)

    def test_bad_labels(self):
        t = now_ms()
        cases = [
            ([("job", "a"), ("__name__", "x")], "not sorted"),
            ([("__name__", "x"), ("job", "a"), ("job", "b")], "duplicate label name"),
            ([("", "v"), ("__name__", "x")], "empty label name"),
            ([("job", "a")], "missing metric name"),
            ([("__name__", "x"), ("job", b"\xff\xfe")], "invalid UTF-8"),
        ]
        for labels, why in cases:
            with self.subTest(why=why):
                good = pb_series([("__name__", "rw_good_neighbour"), ("case", why)], [(1, t)])
                bad = pb_series(labels, [(1, t), (2, t + 1)])
                text = self.assert_rejected(snappy(pb_request([good, bad])), 400, why)
                self.assertTrue(text.startswith("invalid series {"), text)

    def test_out_of_order_keeps_the_rest(self):
        t = now_ms()
        name = "rw_ooo_%d" % t
        st, _, text = self.post(snappy(pb_request([pb_series([("__name__", name)], [(1, t)])])))
        self.assertEqual(st, 204, text)
        body = snappy(pb_request([
            pb_series([("__name__", name)], [(0.5, t - 60000), (2, t + 1000)]),
            pb_series([("__name__", name + "_other")], [(7, t)]),
        ]))
        st, _, text = self.post(body)
        text = text.decode()
        self.assertEqual(st, 400, text)
        self.assertIn(name, text)
        self.assertIn("1 of 3 samples rejected", text)
        m = self.kiln.metrics()
        rejected = sum(v for k, v in m.items() if k.startswith("kiln_remote_write_samples_rejected_total"))
        self.assertGreaterEqual(rejected, 1)

    def test_content_encoding_and_version(self):
        st, _, text = self.post(good_body(), headers=dict(HEADERS, **{"Content-Encoding": "gzip"}))
        self.assertEqual(st, 415, text)
        st, _, text = self.post(good_body(), headers=dict(
            HEADERS, **{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v3.Request"}))
        self.assertEqual(st, 415, text)

    def test_get_is_not_allowed(self):
        self.assertEqual(self.kiln.get("/api/v1/write")[0], 405)


class TestRemoteWriteBounds(unittest.TestCase):
    """Issue 16: a far-future sample must not stop ingestion (findings 6), and
    out of order or duplicate samples within one request answer 400 (7)."""

    def setUp(self):
        self.kiln = Kiln().start()

    def tearDown(self):
        code = self.kiln.stop()
        log = self.kiln.read_log()
        self.kiln.cleanup()
        self.assertEqual(code, 0, log[-3000:])

    def post(self, series):
        st, _, text = self.kiln.post("/api/v1/write", body=snappy(pb_request(series)), headers=HEADERS)
        return st, text.decode()

    def count(self, q):
        st, doc = self.kiln.get_json("/api/v1/query?" + urllib.parse.urlencode({"query": q}))
        self.assertEqual(st, 200, doc)
        return len(doc["data"]["result"])

    def test_far_future_sample_refused_and_ingestion_goes_on(self):
        t = now_ms()
        far = t + 100 * 365 * 86400 * 1000
        st, text = self.post([pb_series([("__name__", "rw_far")], [(1, far)]),
                              pb_series([("__name__", "rw_near")], [(1, t)])])
        self.assertEqual(st, 400, text)
        self.assertIn('for series {__name__="rw_far"} at timestamp %d' % far, text)
        self.assertIn("future", text)
        self.assertIn("1 of 2 samples rejected", text)
        m = self.kiln.metrics()
        self.assertEqual(m['kiln_remote_write_samples_rejected_total{reason="out_of_bounds"}'], 1)
        self.assertLess(m["kiln_tsdb_head_max_time"], now_ms() + 600000)
        # every later current-time sample is still taken, before and after a restart
        for k in range(2):
            st, text = self.post([pb_series([("__name__", "rw_near")], [(2, now_ms() + 1000 * k)])])
            self.assertEqual(st, 204, text)
            if k == 0:
                self.assertEqual(self.kiln.stop(), 0)
                self.kiln.start()
        self.assertEqual(self.count("rw_near"), 1)
        self.assertEqual(self.count("rw_far"), 0)
        # within the bound (10m) is fine: clocks differ
        st, text = self.post([pb_series([("__name__", "rw_soon")], [(1, now_ms() + 300000)])])
        self.assertEqual(st, 204, text)

    def test_out_of_order_and_duplicates_within_one_request(self):
        t = now_ms()
        st, text = self.post([pb_series([("__name__", "rw_inreq")], [(1, t), (2, t - 1000), (3, t + 1000)]),
                              pb_series([("__name__", "rw_inreq_ok")], [(1, t)])])
        self.assertEqual(st, 400, text)
        self.assertIn('out of order sample for series {__name__="rw_inreq"} at timestamp %d' % (t - 1000), text)
        self.assertIn("1 of 4 samples rejected", text)
        st, text = self.post([pb_series([("__name__", "rw_inreq_dup")], [(1, t), (2, t)])])
        self.assertEqual(st, 400, text)
        self.assertIn('duplicate sample for timestamp for series {__name__="rw_inreq_dup"} at timestamp %d' % t,
                      text)
        # the same sample twice is no error (as Prometheus takes it)
        st, text = self.post([pb_series([("__name__", "rw_inreq_same")], [(1, t), (1, t)])])
        self.assertEqual(st, 204, text)
        # the valid samples of a rejected request are stored
        st, doc = self.kiln.get_json("/api/v1/query?" + urllib.parse.urlencode(
            {"query": "count_over_time(rw_inreq[5m])", "time": (t + 2000) / 1000}))
        self.assertEqual(doc["data"]["result"][0]["value"][1], "2")
        self.assertEqual(self.count("rw_inreq_ok"), 1)
        m = self.kiln.metrics()
        self.assertEqual(m['kiln_remote_write_samples_rejected_total{reason="out_of_order"}'], 1)
        self.assertEqual(m['kiln_remote_write_samples_rejected_total{reason="duplicate"}'], 1)


class TestScrapeFutureBound(unittest.TestCase):
    """Issue 16, finding 6, on the scrape side: an exposed sample with a timestamp far in the
    future is dropped and counted as out of bounds, as Prometheus counts those; the target's
    other samples and later scrapes go on."""

    def test_far_future_exposed_sample_is_dropped_and_counted(self):
        import http.server
        import threading
        far = now_ms() + 100 * 365 * 86400 * 1000

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = ("scr_far 1 %d\nscr_near 2\n" % far).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        k = Kiln(config="global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: fut\n"
                        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n" % srv.server_address[1]).start()
        try:
            def count(q):
                st, doc = k.get_json("/api/v1/query?" + urllib.parse.urlencode({"query": q}))
                return len(doc["data"]["result"]) if st == 200 else -1
            self.assertTrue(wait_for(lambda: k.metrics().get(
                "kiln_target_scrapes_sample_out_of_bounds_total", 0) >= 2, 20), k.read_log()[-2000:])
            self.assertEqual(count('scr_near{job="fut"}'), 1)
            self.assertEqual(count('up{job="fut"} == 1'), 1)
            self.assertEqual(count("scr_far"), 0)
            self.assertLess(k.metrics()["kiln_tsdb_head_max_time"], now_ms() + 600000)
            self.assertEqual(k.stop(), 0)
        finally:
            k.cleanup()
            srv.shutdown()


class TestRemoteWriteDisabled(KilnTestCase):
    kiln_args = ("--web.disable-remote-write-receiver",)

    def test_404_naming_the_flag(self):
        st, _, text = self.kiln.post("/api/v1/write", body=good_body(), headers=HEADERS)
        self.assertEqual(st, 404, text)
        self.assertIn(b"disable-remote-write-receiver", text)


class TestRemoteWriteCompatFlag(KilnTestCase):
    kiln_args = ("--web.enable-remote-write-receiver",)

    def test_prometheus_flag_is_accepted(self):
        st, _, text = self.kiln.post("/api/v1/write", body=good_body(), headers=HEADERS)
        self.assertEqual(st, 204, text)


# ---- a real sender -----------------------------------------------------------


def parse_metrics(text):
    out = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


class TestPrometheusSender(unittest.TestCase):
    """Prometheus scrapes a node exporter every second and remote-writes to
    kiln; what kiln holds must be what Prometheus holds."""

    @classmethod
    def setUpClass(cls):
        require(PROMETHEUS, NODE_EXPORTER)
        cls.tmp = tempfile.mkdtemp(prefix="kiln-rw-")
        cls.kiln = None
        cls.procs = []
        try:
            cls.kiln = Kiln().start()
            cls.ne_port = free_port()
            cls.procs.append(Process([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{cls.ne_port}"],
                                     os.path.join(cls.tmp, "node_exporter.log")))
            cls.prom_port = free_port()
            cfg = os.path.join(cls.tmp, "prometheus.yml")
            with open(cfg, "w") as f:
                f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["127.0.0.1:{cls.ne_port}"]
remote_write:
  - url: http://127.0.0.1:{cls.kiln.port}/api/v1/write
    queue_config:
      batch_send_deadline: 1s
      max_samples_per_send: 2000
    metadata_config:
      send_interval: 2s
""")
            cls.prom = Process([PROMETHEUS, f"--config.file={cfg}",
                                f"--storage.tsdb.path={os.path.join(cls.tmp, 'prom-data')}",
                                f"--web.listen-address=127.0.0.1:{cls.prom_port}"],
                               os.path.join(cls.tmp, "prometheus.log"))
            cls.procs.append(cls.prom)
            ok = wait_for(lambda: http_get(f"http://127.0.0.1:{cls.prom_port}/-/ready")[0] == 200, 30)
            if not ok:
                raise RuntimeError("prometheus did not become ready:\n" + cls.prom.read_log()[-3000:])
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for p in reversed(cls.procs):
            p.stop()
        if cls.kiln:
            code = cls.kiln.stop()
            log = cls.kiln.read_log()
            cls.kiln.cleanup()
            cls.kiln = None
            if code != 0:
                raise AssertionError(f"kiln exited with {code}:\n{log[-4000:]}")
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def prom_query(self, q, t=None):
        params = {"query": q}
        if t is not None:
            params["time"] = "%.3f" % t
        st, body = http_get(f"http://127.0.0.1:{self.prom_port}/api/v1/query?" + urllib.parse.urlencode(params))
        self.assertEqual(st, 200, body)
        return json.loads(body)["data"]["result"]

    def prom_scalar(self, q):
        r = self.prom_query(q)
        return float(r[0]["value"][1]) if r else 0.0

    def prom_self(self, name):
        """The sum of a metric of Prometheus' own (from its /metrics)."""
        st, body = http_get(f"http://127.0.0.1:{self.prom_port}/metrics")
        self.assertEqual(st, 200)
        return sum(v for k, v in parse_metrics(body).items() if k == name or k.startswith(name + "{"))

    def test_prometheus_remote_writes_to_kiln(self):
        # a few scrapes, all sent
        def caught_up():
            scrapes = self.prom_scalar('count_over_time(up{job="node"}[1m])')
            sent = self.prom_self("prometheus_remote_storage_samples_total")
            return scrapes >= 5 and sent > 0
        self.assertTrue(wait_for(caught_up, 60), self.prom.read_log()[-3000:])
        # a point in time the queue has certainly sent past
        t_check = time.time() - 2
        self.assertTrue(wait_for(lambda: self.prom_self(
            "prometheus_remote_storage_queue_highest_sent_timestamp_seconds") > t_check + 1, 30))

        m = self.kiln.metrics()
        self.assertGreater(m.get('kiln_remote_write_requests_total{code="204"}', 0), 0, m)
        self.assertEqual(m.get('kiln_remote_write_requests_total{code="400"}', 0), 0)
        self.assertEqual(m.get('kiln_remote_write_requests_total{code="500"}', 0), 0)
        received = m.get("kiln_remote_write_samples_received_total", 0)
        sent = self.prom_self("prometheus_remote_storage_samples_total")
        self.assertGreaterEqual(received, 1000)
        self.assertLessEqual(received, sent + 1)  # kiln saw no sample Prometheus did not send
        rejected = sum(v for k, v in m.items() if k.startswith("kiln_remote_write_samples_rejected_total"))
        self.assertEqual(rejected, 0)
        self.assertEqual(self.prom_self("prometheus_remote_storage_samples_failed_total"), 0)
        self.assertEqual(self.prom_self("prometheus_remote_storage_samples_retried_total"), 0)
        self.assertGreater(m.get("kiln_remote_write_metadata_received_total", 0), 0)

        # the series and their values at t_check must be Prometheus' own
        sel = '{job="node"}'
        st, _, body = self.kiln.get("/api/v1/series?" + urllib.parse.urlencode(
            {"match[]": sel, "start": "%.3f" % (t_check - 30), "end": "%.3f" % t_check}))
        self.assertEqual(st, 200, body)
        pst, pbody = http_get(f"http://127.0.0.1:{self.prom_port}/api/v1/series?" + urllib.parse.urlencode(
            {"match[]": sel, "start": "%.3f" % (t_check - 30), "end": "%.3f" % t_check}))
        self.assertEqual(pst, 200)
        ours = {json.dumps(s, sort_keys=True) for s in json.loads(body)["data"]}
        theirs = {json.dumps(s, sort_keys=True) for s in json.loads(pbody)["data"]}
        self.assertGreater(len(theirs), 100)
        self.assertEqual(ours, theirs)
        st, _, body = self.kiln.get("/api/v1/query?" + urllib.parse.urlencode(
            {"query": sel, "time": "%.3f" % t_check}))
        self.assertEqual(st, 200, body)
        ours = {json.dumps(r["metric"], sort_keys=True): r["value"] for r in json.loads(body)["data"]["result"]}
        theirs = {json.dumps(r["metric"], sort_keys=True): r["value"] for r in self.prom_query(sel, t_check)}
        self.assertGreater(len(theirs), 100)
        self.assertEqual(set(ours), set(theirs))
        for k, v in theirs.items():
            self.assertEqual(ours[k], v, k)


if __name__ == "__main__":
    unittest.main()
