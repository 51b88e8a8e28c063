"""Out-of-order ingestion (storage.tsdb.out_of_order_time_window), against
Debian's Prometheus 2.42 configured with the same window.

Five series are remote-written every 10 s over 20 minutes, then the 5 s
points between them late, newest first (out of order, within the 30 m
window), and one sample older than the window ("too old sample", 400).
The same requests go to Prometheus.  The raw samples (`m[30m]`) and a
range query must be equal everywhere: kiln live; kiln after a reload that
turns the window off (refusing "out of order sample") and on again; kiln
after kill -9 (the WBL replayed); Prometheus 2.42 opening kiln's data
directory (its wbl/ and 0x81 chunks in chunks_head); and kiln opening
Prometheus' directory.
"""
import http.client
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import Kiln, Prometheus, http_get, require  # noqa: E402
from rwproto import write_body  # noqa: E402

CONFIG = "storage:\n  tsdb:\n    out_of_order_time_window: 30m\n"
NSERIES, NPOINTS, STEP = 5, 120, 10_000


RW_HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
              "X-Prometheus-Remote-Write-Version": "0.1.0"}


def post(url, series):
    """Remote-writes series ([(labels, [(value, ts)])]) to the server at url; (status, body)."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        c.request("POST", "/api/v1/write", write_body(series), RW_HEADERS)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def labels(i):
    return [("__name__", "m"), ("i", str(i)), ("job", "ooo")]


def value(i, t):
    return i * 1000 + (t // 1000) % 100000 / 10


def load(url, base):
    """The in-order points, then the late ones; the status of each request."""
    codes = []
    for lo in range(0, NPOINTS, 20):
        codes.append(post(url, [(labels(i), [(value(i, base + k * STEP), base + k * STEP)
                                              for k in range(lo, lo + 20)]) for i in range(NSERIES)])[0])
    late = [base + k * STEP + STEP // 2 for k in reversed(range(NPOINTS - 1))]
    for lo in range(0, len(late), 17):
        codes.append(post(url, [(labels(i), [(value(i, t), t) for t in late[lo:lo + 17]])
                                for i in range(NSERIES)])[0])
    return codes


def answers(url, base):
    """The raw samples of every series and a range query, as JSON values."""
    end = (base + NPOINTS * STEP) / 1000
    qs = urllib.parse.urlencode({"query": "m[30m]", "time": end})
    st, body = http_get(f"{url}/api/v1/query?{qs}", timeout=30)
    assert st == 200, (st, body[:300])
    raw = sorted((r["metric"]["i"], r["values"]) for r in json.loads(body)["data"]["result"])
    qs = urllib.parse.urlencode({"query": "sum by (job) (m)", "start": base / 1000, "end": end, "step": 5})
    st, body = http_get(f"{url}/api/v1/query_range?{qs}", timeout=30)
    assert st == 200, (st, body[:300])
    return raw, json.loads(body)["data"]["result"]


def prometheus(data):
    """kilntest's Prometheus peer with the window and the remote-write receiver,
    on the data directory `data` (kept when it stops)."""
    p = Prometheus(CONFIG, args=("--web.enable-remote-write-receiver",))
    os.makedirs(data, exist_ok=True)
    os.symlink(data, os.path.join(p.dir, "data"))
    return p


class OutOfOrderTest(unittest.TestCase):
    def setUp(self):
        require("prometheus")
        self.tmp = tempfile.mkdtemp(prefix="kiln-test-ooo-")
        now = int(time.time() * 1000)
        self.base = (now - 25 * 60 * 1000) // STEP * STEP

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_ooo_with_prometheus(self):
        base = self.base
        pdata = os.path.join(self.tmp, "prom")
        with prometheus(pdata) as prom:
            self.assertEqual(set(load(prom.url, base)), {204})
            ref = answers(prom.url, base)
        raw, _ = ref
        self.assertEqual(len(raw), NSERIES)
        self.assertEqual([len(v) for _, v in raw], [2 * NPOINTS - 1] * NSERIES)

        k = Kiln(config=CONFIG, args=("--web.enable-lifecycle",)).start()
        try:
            url = f"http://{k.addr}"
            self.assertEqual(set(load(url, base)), {204})
            self.assertEqual(answers(url, base), ref)
            m = k.metrics()
            self.assertEqual(m["kiln_tsdb_out_of_order_samples_appended_total"], NSERIES * (NPOINTS - 1))
            self.assertEqual(m["kiln_tsdb_out_of_order_time_window_seconds"], 1800)
            # older than the window: refused, as Prometheus does
            st, body = post(url, [(labels(0), [(1, base - 40 * 60 * 1000)])])
            self.assertEqual(st, 400)
            self.assertIn(b"too old sample", body)
            self.assertEqual(k.metrics()["kiln_tsdb_too_old_samples_total"], 1)
            # a reload turns the window off, then on again
            with open(k.config_path, "w") as f:
                f.write("global: {scrape_interval: 1m}\n")
            self.assertEqual(k.post("/-/reload")[0], 200)
            st, body = post(url, [(labels(0), [(1, base + 1)])])
            self.assertEqual((st, b"out of order sample" in body), (400, True))
            with open(k.config_path, "w") as f:
                f.write(CONFIG)
            self.assertEqual(k.post("/-/reload")[0], 200)
            self.assertEqual(k.metrics()["kiln_tsdb_out_of_order_time_window_seconds"], 1800)
            # kill -9: the WBL brings the late samples back
            k.stop(sig=signal.SIGKILL)
            k2 = Kiln(config=CONFIG, data_dir=k.data).start()
            try:
                self.assertEqual(answers(f"http://{k2.addr}", base), ref)
            finally:
                self.assertEqual(k2.stop(), 0, k2.read_log()[-3000:])
                k2.cleanup()
            self.assertTrue(os.listdir(os.path.join(k.data, "wbl")))
            # Prometheus 2.42 opens kiln's directory
            with prometheus(k.data) as prom:
                self.assertEqual(answers(prom.url, base), ref)
        finally:
            k.cleanup()

        # kiln opens Prometheus' directory (its wbl/ and out-of-order chunks)
        k = Kiln(config=CONFIG, data_dir=pdata).start()
        try:
            self.assertEqual(answers(f"http://{k.addr}", base), ref)
        finally:
            k.finish()


if __name__ == "__main__":
    unittest.main()
