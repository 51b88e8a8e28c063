"""Native histograms in the data directory, interchanged with Debian's
Prometheus 2.42 (--enable-feature=native-histograms).

Prometheus takes histogram series by remote write (histfixture.py's cases:
steady growth, a counter reset and a stale marker, a layout and a schema
change, float histograms) and a float series; its answers to range queries
are the reference.  kiln then opens Prometheus' directory (its WAL, with
histogram records, and chunks_head, with histogram chunks), answers the
same queries alike, and writes what it read as a block (a snapshot with the
head).  A second Prometheus opens
kiln's block: its answers must be the reference exactly, and
`promtool tsdb dump` of kiln's block must list what Prometheus' own block
of the same data lists.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from histfixture import N, STEP, send, series_samples, start_t0  # noqa: E402
from kilntest import PROMETHEUS, Kiln, Process, free_port, http_get, require, wait_for  # noqa: E402
from rwproto import pb_request, pb_series, snappy  # noqa: E402

FLOAT = "f_gauge"


def start_prometheus(data, tmp, *extra):
    port = free_port()
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global: {scrape_interval: 1h}\n")
    p = Process([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={data}",
                 f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=native-histograms",
                 "--web.enable-remote-write-receiver", "--web.enable-admin-api"] + list(extra),
                os.path.join(tmp, f"prometheus-{port}.log"))
    url = f"http://127.0.0.1:{port}"
    if not wait_for(lambda: http_get(url + "/-/ready", timeout=2)[0] == 200, timeout=60):
        p.stop()
        raise RuntimeError("prometheus did not become ready:\n" + p.read_log()[-3000:])
    return p, url


def query_range(url, q, start, end):
    qs = urllib.parse.urlencode({"query": q, "start": start / 1000, "end": end / 1000, "step": STEP / 1000})
    st, body = http_get(f"{url}/api/v1/query_range?{qs}", timeout=60)
    if st != 200:
        raise AssertionError(f"query_range {q}: {st} {body[:300]!r}")
    return json.loads(body)["data"]


def dump(path):
    """promtool tsdb dump's lines for a directory of blocks, sorted (exit
    status checked); promtool wants a wal/ beside them."""
    os.makedirs(os.path.join(path, "wal"), exist_ok=True)
    out = subprocess.run(["promtool", "tsdb", "dump", path], capture_output=True, timeout=120)
    if out.returncode != 0:
        raise AssertionError(f"promtool tsdb dump {path}: {out.stderr.decode()[-2000:]}")
    return sorted(out.stdout.decode().splitlines())


class HistogramInterchange(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require("promtool", PROMETHEUS)
        cls.tmp = tempfile.mkdtemp(prefix="kiln-test-hist-")
        cls.t0 = start_t0()
        cls.series = series_samples(cls.t0, gauge=False)
        cls.names = [name for name, _ in cls.series] + [FLOAT]
        cls.end = cls.t0 + (N - 1) * STEP
        prom_dir = os.path.join(cls.tmp, "prom")
        p, url = start_prometheus(prom_dir, cls.tmp)
        try:
            for lo in range(0, N, 10):
                send(url + "/api/v1/write", cls.series, lo, lo + 10)
                floats = pb_series([("__name__", FLOAT), ("job", "fixture")],
                                   [(float(i % 17), cls.t0 + i * STEP) for i in range(lo, min(lo + 10, N))])
                st, body = cls.post(url + "/api/v1/write", snappy(pb_request([floats])))
                assert st // 100 == 2, (st, body)
            cls.want = {n: query_range(url, n, cls.t0, cls.end) for n in cls.names}
            # Prometheus' own block of the same data, for promtool's view of it
            st, body = cls.post(url + "/api/v1/admin/tsdb/snapshot", b"")
            assert st == 200, (st, body)
            cls.prom_snapshot = os.path.join(prom_dir, "snapshots", json.loads(body)["data"]["name"])
        finally:
            p.stop()
        cls.prom_dir = prom_dir

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @staticmethod
    def post(url, body):
        import urllib.request
        req = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
            "X-Prometheus-Remote-Write-Version": "0.1.0"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def test_reference_has_histograms(self):
        for name, _ in self.series:
            res = self.want[name]["result"]
            self.assertEqual(len(res), 1, name)
            self.assertIn("histograms", res[0], name)
            self.assertGreater(len(res[0]["histograms"]), 100, name)

    def test_kiln_reads_prometheus_and_prometheus_reads_kiln(self):
        kiln_dir = os.path.join(self.tmp, "kiln")
        shutil.copytree(self.prom_dir, kiln_dir, ignore=shutil.ignore_patterns("snapshots", "lock"))
        k = Kiln(args=["--web.enable-admin-api"], data_dir=kiln_dir)
        try:
            k.start()
            # kiln answers from Prometheus' WAL and chunks_head as Prometheus did
            for n in self.names:
                self.assertEqual(query_range(f"http://{k.addr}", n, self.t0, self.end), self.want[n], n)
            st, _, body = k.post("/api/v1/admin/tsdb/snapshot")
            self.assertEqual(st, 200, body)
            name = json.loads(body)["data"]["name"]
            self.assertEqual(k.stop(), 0, k.read_log()[-3000:])
        finally:
            k.cleanup()
        snap = os.path.join(kiln_dir, "snapshots", name)
        blocks = [d for d in os.listdir(snap) if len(d) == 26]
        self.assertEqual(len(blocks), 1, os.listdir(snap))
        # promtool reads kiln's block as it reads Prometheus' own
        self.assertEqual(dump(snap), dump(self.prom_snapshot))
        self.assertGreater(len([ln for ln in dump(snap) if FLOAT in ln]), N - 1)
        read_dir = os.path.join(self.tmp, "prom-reads-kiln")
        shutil.copytree(snap, read_dir)
        p, url = start_prometheus(read_dir, self.tmp)
        try:
            for n in self.names:
                self.assertEqual(query_range(url, n, self.t0, self.end), self.want[n], n)
        finally:
            p.stop()

    def test_prometheus_reads_kilns_own_directory(self):
        """kiln takes the same histograms by remote write and writes its own
        WAL and chunks_head; Prometheus started on kiln's directory answers
        as the reference."""
        kiln_dir = os.path.join(self.tmp, "kiln-own")
        k = Kiln(args=["--web.enable-remote-write-receiver"], data_dir=kiln_dir)
        try:
            k.start()
            for lo in range(0, N, 10):
                send(f"http://{k.addr}/api/v1/write", self.series, lo, lo + 10)
            self.assertEqual(k.stop(), 0, k.read_log()[-3000:])
        finally:
            k.cleanup()  # kiln_dir is the test's, not kiln's temporary directory: it stays
        self.assertTrue(os.listdir(os.path.join(kiln_dir, "chunks_head")), "no full chunk written")
        p, url = start_prometheus(kiln_dir, self.tmp)
        try:
            for n, _ in self.series:
                self.assertEqual(query_range(url, n, self.t0, self.end), self.want[n], n)
        finally:
            p.stop()


if __name__ == "__main__":
    unittest.main()
