"""Durability of kiln's storage with real peers.

- kill -9 in the middle of a stream of remote writes, restart: every
  acknowledged (204) sample is there, read back by Prometheus' own code
  (`promtool tsdb dump`, which replays the WAL kiln wrote).
- Prometheus itself starts on a copy of kiln's data directory and answers
  count_over_time over the data with the number of samples kiln acknowledged
  (and with kiln's own answer when kiln's query API is there).
"""
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import unittest
import urllib.parse
import urllib.request

from kilntest import Kiln, free_port, require
from rwproto import write_body

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")

T0 = 1700000000000  # fixed timestamps: the test does not depend on the clock
SERIES = 20


def batch_body(k):
    """Request k: one sample for each of SERIES series at T0 + k*1000."""
    return write_body([([("__name__", "dur_test"), ("i", str(i)), ("job", "dur")],
                        [(float(k * 100 + i), T0 + k * 1000)]) for i in range(SERIES)])


def dump(data_dir):
    """{(i, t): v} for dur_test as promtool reads kiln's data directory."""
    out = subprocess.run([PROMTOOL, "tsdb", "dump", data_dir], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=300)
    assert out.returncode == 0, out.stderr.decode()
    got = {}
    for line in out.stdout.decode().splitlines():
        if not line.startswith('{__name__="dur_test"'):
            continue
        labels, v, t = line.rsplit(" ", 2)
        i = int(labels.split('i="')[1].split('"')[0])
        got[(i, int(t))] = float(v)
    return got


class TestKillNine(unittest.TestCase):
    def test_acknowledged_samples_survive_kill_9(self):
        require("promtool")
        k = Kiln(config="global:\n  scrape_interval: 1h\n").start()
        acked = []
        stop = threading.Event()

        def pusher():
            n = 0
            while not stop.is_set():
                try:
                    st, _, _ = k.post("/api/v1/write", batch_body(n),
                                      headers={"Content-Encoding": "snappy",
                                               "Content-Type": "application/x-protobuf"}, timeout=5)
                except OSError:
                    return
                if st == 204:
                    acked.append(n)
                n += 1

        th = threading.Thread(target=pusher)
        th.start()
        try:
            deadline = time.time() + 30
            while len(acked) < 300 and time.time() < deadline:
                time.sleep(0.01)
            k.proc.send_signal(signal.SIGKILL)  # mid-stream
            k.proc.wait()
        finally:
            stop.set()
            th.join()
        self.assertGreaterEqual(len(acked), 300)

        # restart on the same directory: replay, then a clean stop
        k2 = Kiln(config="global:\n  scrape_interval: 1h\n", data_dir=k.data).start()
        self.assertEqual(k2.stop(), 0, k2.read_log())
        self.assertIn("WAL replay completed", k2.read_log())

        got = dump(k.data)
        missing = [(i, n) for n in acked for i in range(SERIES) if (i, T0 + n * 1000) not in got]
        self.assertEqual(missing[:10], [], f"{len(missing)} acknowledged samples lost")
        for n in acked:
            for i in range(SERIES):
                self.assertEqual(got[(i, T0 + n * 1000)], float(n * 100 + i))
        shutil.rmtree(k.tmp, ignore_errors=True)
        shutil.rmtree(k2.tmp, ignore_errors=True)


class TestStorageMetrics(unittest.TestCase):
    def test_tsdb_metrics_follow_appends(self):
        k = Kiln(config="global:\n  scrape_interval: 1h\n").start()
        try:
            m = k.metrics()
            for name in ("kiln_tsdb_head_series", "kiln_tsdb_head_chunks", "kiln_tsdb_head_samples_appended_total",
                         "kiln_tsdb_out_of_order_samples_total", "kiln_tsdb_wal_fsyncs_total",
                         "kiln_tsdb_wal_segment_current", "kiln_tsdb_wal_writes_failed_total",
                         "kiln_tsdb_wal_corruptions_total", "kiln_tsdb_head_min_time", "kiln_tsdb_head_max_time"):
                self.assertIn(name, m)
            base = m["kiln_tsdb_head_samples_appended_total"]
            for n in range(5):
                st, _, body = k.post("/api/v1/write", batch_body(n))
                self.assertEqual(st, 204, body)
            m = k.metrics()
            self.assertEqual(m["kiln_tsdb_head_samples_appended_total"] - base, 5 * SERIES)
            self.assertGreaterEqual(m["kiln_tsdb_head_series"], SERIES)
            self.assertEqual(m["kiln_tsdb_head_max_time"], T0 + 4000)
            # the head's memory: at least a series struct and a chunk's bytes each, in pages that hold it
            self.assertGreater(m["kiln_tsdb_head_memory_bytes"], SERIES * 100)
            self.assertGreaterEqual(m["kiln_tsdb_head_memory_pages_bytes"], m["kiln_tsdb_head_memory_bytes"])
            # an old sample is rejected as out of order and counted
            st, _, body = k.post("/api/v1/write", batch_body(1))
            self.assertEqual(st, 400)
            self.assertIn(b"out of order", body)
            m = k.metrics()
            self.assertEqual(m["kiln_tsdb_out_of_order_samples_total"], SERIES)
            self.assertEqual(m["kiln_tsdb_head_samples_appended_total"] - base, 5 * SERIES)
            self.assertEqual(k.stop(), 0)
        finally:
            k.stop()
            shutil.rmtree(k.tmp, ignore_errors=True)


def prom_query(port, q, t):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": t})
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


class TestPrometheusReadsKilnWAL(unittest.TestCase):
    def test_prometheus_opens_kiln_data_dir(self):
        require("prometheus")
        k = Kiln(config="global:\n  scrape_interval: 1h\n").start()
        nreq = 200
        for n in range(nreq):
            st, _, body = k.post("/api/v1/write", batch_body(n))
            self.assertEqual(st, 204, body)
        # kiln's own answer
        eval_t = (T0 + nreq * 1000) / 1000.0
        q = "count_over_time(dur_test[1h])"
        st, _, body = k.get("/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": eval_t}))
        self.assertEqual(st, 200, body)
        kiln_answer = json.loads(body)
        self.assertEqual(k.stop(), 0, k.read_log())

        copy = os.path.join(k.tmp, "promdata")
        shutil.copytree(k.data, copy)
        os.remove(os.path.join(copy, "lock")) if os.path.exists(os.path.join(copy, "lock")) else None
        port = free_port()
        cfg = os.path.join(k.tmp, "prom.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1h\n")
        log = open(os.path.join(k.tmp, "prom.log"), "wb")
        p = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={copy}",
                              f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y"],
                             stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 60
            ready = False
            while time.time() < deadline and not ready:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
                        ready = r.status == 200
                except Exception:
                    time.sleep(0.1)
            self.assertTrue(ready, "prometheus did not start on kiln's data dir")
            res = prom_query(port, q, eval_t)
            self.assertEqual(res["status"], "success")
            counts = {r["metric"]["i"]: r["value"][1] for r in res["data"]["result"]}
            self.assertEqual(len(counts), SERIES)
            self.assertEqual(set(counts.values()), {str(nreq)})
            mine = {r["metric"]["i"]: r["value"][1] for r in kiln_answer["data"]["result"]}
            self.assertEqual(mine, counts)
            # and the values themselves
            res = prom_query(port, "dur_test", eval_t)
            vals = {r["metric"]["i"]: r["value"][1] for r in res["data"]["result"]}
            self.assertEqual(vals, {str(i): str((nreq - 1) * 100 + i) for i in range(SERIES)})
        finally:
            p.terminate()
            p.wait(30)
            log.close()
            shutil.rmtree(k.tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
