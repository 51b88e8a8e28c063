"""Blocks: 8 h of past data sent by remote write is compacted into
Prometheus-format blocks; kiln restarted answers the same; promtool analyzes
the blocks; Debian's Prometheus opened on a copy of kiln's data directory
answers the same; and blocks made by `promtool tsdb create-blocks-from
openmetrics` are served by kiln.
"""
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from kilntest import NODE_EXPORTER, PROMETHEUS, Kiln, Process, free_port, http_get, require, wait_for
from rwproto import write_body

PROMTOOL = shutil.which("promtool")
H = 3600 * 1000
T0 = 1700000000000 // (2 * H) * (2 * H)  # block-aligned, in the past
HOURS = 8
STEP = 60000
SERIES = 30
END = T0 + HOURS * H - STEP  # the last sample
CONFIG = "global:\n  scrape_interval: 1h\n"


def value(i, k):
    return i * 10000.0 + k


def send_all(kiln):
    per = 30  # samples per series and request
    for k0 in range(0, HOURS * H // STEP, per):
        body = write_body([([("__name__", "blk"), ("i", "%02d" % i), ("job", "b")],
                            [(value(i, k), T0 + k * STEP) for k in range(k0, k0 + per)]) for i in range(SERIES)])
        st, _, text = kiln.post("/api/v1/write", body)
        assert st == 204, text


def query(port, q, t):
    st, body = http_get(f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": t}))
    assert st == 200, body
    return {r["metric"].get("i", ""): r["value"][1] for r in json.loads(body)["data"]["result"]}


def answers(port):
    t = END / 1000.0
    return {
        "count": query(port, "count_over_time(blk[8h])", t),
        "sum": query(port, "sum(sum_over_time(blk[8h]))", t),
        "early": query(port, "blk", (T0 + 30 * 60000) / 1000.0),
    }


def http_post(port, path, form):
    """POSTs form (values may be lists) as application/x-www-form-urlencoded."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        c.request("POST", path, body=urllib.parse.urlencode(form, doseq=True),
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def blocks_in(d):
    return sorted(x for x in os.listdir(d) if len(x) == 26 and os.path.isdir(os.path.join(d, x)))


def start_prometheus(data, tmp, *extra):
    port = free_port()
    cfg = os.path.join(tmp, "prom.yml")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    log = open(os.path.join(tmp, "prom.log"), "wb")
    p = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={data}",
                          f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y", *extra],
                         stdout=log, stderr=subprocess.STDOUT)
    ok = wait_for(lambda: http_get(f"http://127.0.0.1:{port}/-/ready")[0] == 200, 60)
    return p, port, log, ok


class TestBlocks(unittest.TestCase):
    def test_compaction_restart_and_prometheus(self):
        k = Kiln(config=CONFIG, args=("--storage.tsdb.retention.time=100y", "--web.enable-admin-api")).start()
        try:
            send_all(k)
            # 8 h in the head: three 2 h ranges are compacted (the head then spans no more
            # than 3 h); the older two lie in one aligned 18 h span and are merged
            self.assertTrue(wait_for(lambda: k.metrics().get("kiln_tsdb_compactions_total", 0) >= 4, 30),
                            k.read_log())
            nblocks = len(blocks_in(k.data))
            self.assertEqual(nblocks, 2)
            m = k.metrics()
            self.assertEqual(m["kiln_tsdb_blocks_loaded"], nblocks)
            self.assertGreater(m["kiln_tsdb_storage_blocks_bytes"], 0)
            before = answers(k.port)
            want_count = {"%02d" % i: str(HOURS * H // STEP) for i in range(SERIES)}
            self.assertEqual(before["count"], want_count)
            total = sum(value(i, kk) for i in range(SERIES) for kk in range(HOURS * H // STEP))
            self.assertEqual(float(before["sum"][""]), total)
            self.assertEqual(before["early"]["07"], str(int(value(7, 30))))
            # a snapshot: the blocks linked, the head written as one more block; a
            # kiln started on it answers the same
            st, _, body = k.post("/api/v1/admin/tsdb/snapshot")
            self.assertEqual(st, 200, body)
            snap = os.path.join(k.data, "snapshots", json.loads(body)["data"]["name"])
            self.assertEqual(len(blocks_in(snap)), nblocks + 1)
            k2 = Kiln(config=CONFIG, data_dir=snap, args=("--storage.tsdb.retention.time=100y",)).start()
            try:
                self.assertEqual(answers(k2.port), before)
                st, _, body = k2.post("/api/v1/admin/tsdb/snapshot")
                self.assertEqual(st, 503, body)
                self.assertIn(b"admin APIs disabled", body)
                self.assertEqual(k2.stop(), 0, k2.read_log())
            finally:
                k2.cleanup()
            # restarted: blocks are loaded, the rest comes from the WAL
            self.assertEqual(k.stop(), 0, k.read_log())
            k.start()
            self.assertEqual(answers(k.port), before)
            self.assertEqual(k.stop(), 0, k.read_log())
            require("promtool", PROMETHEUS)
            r = subprocess.run([PROMTOOL, "tsdb", "analyze", k.data], capture_output=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertIn(b"Series: 30", r.stdout)
            copy = os.path.join(k.tmp, "promdata")
            shutil.copytree(k.data, copy)
            if os.path.exists(os.path.join(copy, "lock")):
                os.remove(os.path.join(copy, "lock"))
            p, port, log, ok = start_prometheus(copy, k.tmp)
            try:
                self.assertTrue(ok, "prometheus did not start on kiln's data directory")
                self.assertEqual(answers(port), before)
            finally:
                p.terminate()
                p.wait(30)
                log.close()
        finally:
            k.cleanup()

    def test_kill_9_during_compaction(self):
        """kill -9 while a block is being written: the next start cleans up
        and serves everything that was acknowledged."""
        k = Kiln(config=CONFIG, args=("--storage.tsdb.retention.time=100y",)).start()
        try:
            nseries, per = 1000, 60
            n = HOURS * H // STEP
            for k0 in range(0, n, per):
                body = write_body([([("__name__", "kb"), ("i", str(i))],
                                    [(float(kk), T0 + kk * STEP) for kk in range(k0, k0 + per)]) for i in range(nseries)])
                st, _, text = k.post("/api/v1/write", body)
                self.assertEqual(st, 204, text)

            def compacting():
                return any(x.endswith(".tmp-for-creation") or len(x) == 26 for x in os.listdir(k.data))
            deadline = time.time() + 30
            while time.time() < deadline and not compacting():
                time.sleep(0.001)
            self.assertTrue(compacting(), "no compaction started")
            k.proc.kill()
            k.proc.wait()
            k.start()
            self.assertFalse([x for x in os.listdir(k.data) if ".tmp-for-" in x])
            got = query(k.port, "count_over_time(kb[8h])", END / 1000.0)
            self.assertEqual(len(got), nseries)
            self.assertEqual(set(got.values()), {str(n)})
            self.assertEqual(k.stop(), 0, k.read_log())
        finally:
            k.cleanup()

    def test_delete_series_like_prometheus(self):
        """delete_series over blocks and head answers as Prometheus does after
        the same deletion; each reads the other's tombstones (block files and
        WAL records); clean_tombstones rewrites the blocks and changes no answer."""
        require(PROMETHEUS)
        k = Kiln(config=CONFIG, args=("--storage.tsdb.retention.time=100y", "--web.enable-admin-api")).start()
        dirs = []
        try:
            send_all(k)
            self.assertTrue(wait_for(lambda: k.metrics().get("kiln_tsdb_compactions_total", 0) >= 4, 30),
                            k.read_log())
            self.assertEqual(k.stop(), 0, k.read_log())

            def copy_of(src, name):
                d = os.path.join(k.tmp, name)
                shutil.copytree(src, d, ignore=shutil.ignore_patterns("lock"))
                dirs.append(d)
                return d
            # all of series 03; 1 h .. 6 h of series 05 (both blocks and the head)
            deletions = [{"match[]": 'blk{i="03"}'},
                         {"match[]": ['blk{i="05"}', 'blk{i="nomatch"}'],
                          "start": str((T0 + H) / 1000), "end": str((T0 + 6 * H) / 1000)}]
            # Prometheus deletes on a copy of the same data: the reference answers
            promdir = copy_of(k.data, "prom-deleted")
            p, port, log, ok = start_prometheus(promdir, k.tmp, "--web.enable-admin-api")
            try:
                self.assertTrue(ok, "prometheus did not start")
                for d in deletions:
                    st, _ = http_post(port, "/api/v1/admin/tsdb/delete_series", d)
                    self.assertEqual(st, 204)
                want = answers(port)
            finally:
                p.terminate()
                p.wait(30)
                log.close()
            self.assertNotIn("03", want["count"])
            self.assertEqual(want["count"]["05"], str(HOURS * H // STEP - 301))

            k.start()
            # bad requests first: nothing is deleted by them
            st, body = http_post(k.port, "/api/v1/admin/tsdb/delete_series", {})
            self.assertEqual((st, json.loads(body)["error"]), (400, "no match[] parameter provided"))
            st, body = http_post(k.port, "/api/v1/admin/tsdb/delete_series", {"match[]": "blk{"})
            self.assertEqual(st, 400)
            self.assertEqual(json.loads(body)["errorType"], "bad_data")
            st, body = http_post(k.port, "/api/v1/admin/tsdb/delete_series", {"match[]": "blk", "start": "x"})
            self.assertEqual(st, 400)
            st, _, _ = k.get("/api/v1/admin/tsdb/delete_series?match[]=blk")
            self.assertEqual(st, 405)
            for d in deletions:
                st, body = http_post(k.port, "/api/v1/admin/tsdb/delete_series", d)
                self.assertEqual(st, 204, body)
            self.assertEqual(answers(k.port), want)
            self.assertEqual(k.stop(), 0, k.read_log())
            k.start()
            self.assertEqual(answers(k.port), want)
            self.assertEqual(k.stop(), 0, k.read_log())

            # Prometheus reads kiln's tombstones, kiln reads Prometheus'
            p, port, log, ok = start_prometheus(copy_of(k.data, "kiln-deleted"), k.tmp)
            try:
                self.assertTrue(ok, "prometheus did not start on kiln's data directory")
                self.assertEqual(answers(port), want)
            finally:
                p.terminate()
                p.wait(30)
                log.close()
            k2 = Kiln(config=CONFIG, data_dir=copy_of(promdir, "prom-deleted-2"),
                      args=("--storage.tsdb.retention.time=100y",)).start()
            try:
                self.assertEqual(answers(k2.port), want)
                self.assertEqual(k2.stop(), 0, k2.read_log())
            finally:
                k2.cleanup()

            # clean_tombstones: new blocks without the deleted data, the same answers
            k.start()
            before = blocks_in(k.data)
            self.assertTrue(any(os.path.getsize(os.path.join(k.data, b, "tombstones")) > 9 for b in before))
            st, _ = http_post(k.port, "/api/v1/admin/tsdb/clean_tombstones", {})
            self.assertEqual(st, 204)
            after = blocks_in(k.data)
            self.assertEqual(len(after), len(before))
            self.assertNotEqual(after, before)
            self.assertTrue(all(os.path.getsize(os.path.join(k.data, b, "tombstones")) == 9 for b in after))
            self.assertEqual(answers(k.port), want)
            self.assertEqual(k.stop(), 0, k.read_log())
        finally:
            k.cleanup()
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)

    def test_backfilled_blocks_are_served(self):
        require("promtool")
        tmp = tempfile.mkdtemp(prefix="kiln-backfill-")
        try:
            om = os.path.join(tmp, "data.om")
            with open(om, "w") as f:
                f.write("# TYPE bf gauge\n")
                for i in range(5):
                    for kk in range(0, 240):
                        f.write(f'bf{{i="{i}"}} {i * 100 + kk} {(T0 + kk * STEP) / 1000:.3f}\n')
                f.write("# EOF\n")
            data = os.path.join(tmp, "data")
            os.makedirs(data)
            r = subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", om, data],
                               capture_output=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertGreaterEqual(len(blocks_in(data)), 1)
            k = Kiln(config=CONFIG, data_dir=data, args=("--storage.tsdb.retention.time=100y",)).start()
            try:
                t = (T0 + 239 * STEP) / 1000.0
                self.assertEqual(query(k.port, "count_over_time(bf[4h])", t), {str(i): "240" for i in range(5)})
                self.assertEqual(query(k.port, "bf", t), {str(i): str(i * 100 + 239) for i in range(5)})
                st, body = k.get_json("/api/v1/label/i/values")
                self.assertEqual(body["data"], [str(i) for i in range(5)])
                # a backfill into the running kiln's directory is picked up (checked every 5 s)
                om2 = os.path.join(tmp, "more.om")
                with open(om2, "w") as f:
                    f.write("# TYPE bf2 gauge\n")
                    for kk in range(0, 120):
                        f.write(f"bf2 {kk} {(T0 + kk * STEP) / 1000:.3f}\n")
                    f.write("# EOF\n")
                r = subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", om2, data],
                                   capture_output=True, timeout=120)
                self.assertEqual(r.returncode, 0, r.stderr.decode())
                self.assertTrue(wait_for(lambda: query(k.port, "bf2", (T0 + 119 * STEP) / 1000.0) == {"": "119"}, 15),
                                k.read_log())
                self.assertEqual(k.stop(), 0, k.read_log())
            finally:
                k.cleanup()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class TestPrometheusDirectory(unittest.TestCase):
    def test_kiln_serves_what_prometheus_wrote(self):
        """Prometheus scrapes a node exporter for a few seconds and stops; kiln
        started on its directory (WAL, chunks_head) answers as Prometheus did."""
        require(PROMETHEUS, NODE_EXPORTER)
        tmp = tempfile.mkdtemp(prefix="kiln-promdir-")
        procs = []
        try:
            ne_port = free_port()
            procs.append(Process([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{ne_port}"],
                                 os.path.join(tmp, "ne.log")))
            cfg = os.path.join(tmp, "prom.yml")
            with open(cfg, "w") as f:
                f.write(f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node\n"
                        f"    static_configs: [{{targets: ['127.0.0.1:{ne_port}']}}]\n")
            data = os.path.join(tmp, "data")
            port = free_port()
            plog = open(os.path.join(tmp, "prom.log"), "wb")
            p = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={data}",
                                  f"--web.listen-address=127.0.0.1:{port}"], stdout=plog, stderr=subprocess.STDOUT)
            self.assertTrue(wait_for(lambda: http_get(f"http://127.0.0.1:{port}/-/ready")[0] == 200, 60))
            self.assertTrue(wait_for(lambda: len(query(port, "count_over_time(up[1h])", time.time())) == 1
                                     and int(query(port, "count_over_time(up[1h])", time.time())[""]) >= 4, 30))
            t = time.time()
            queries = ["count_over_time(up[1h])", "count(node_cpu_seconds_total)",
                       "sum(count_over_time(node_cpu_seconds_total[1h]))", "count(count by (__name__) ({job=\"node\"}))"]
            p.terminate()
            p.wait(30)
            plog.close()
            # Prometheus' answers from its own data, then kiln's on the same directory
            p2, port2, log2, ok2 = start_prometheus(data, tmp)
            try:
                self.assertTrue(ok2)
                want = {q: query(port2, q, t) for q in queries}
            finally:
                p2.terminate()
                p2.wait(30)
                log2.close()
            if os.path.exists(os.path.join(data, "lock")):
                os.remove(os.path.join(data, "lock"))
            k = Kiln(config=CONFIG, data_dir=data, args=("--storage.tsdb.retention.time=100y",)).start()
            try:
                for q in queries:
                    self.assertEqual(query(k.port, q, t), want[q], q)
                self.assertEqual(k.stop(), 0, k.read_log())
            finally:
                k.cleanup()
        finally:
            for pr in procs:
                pr.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
