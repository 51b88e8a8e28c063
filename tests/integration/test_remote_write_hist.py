"""send_native_histograms: kiln forwards the native histogram samples of its
WAL by remote write.  Debian's Prometheus 2.42 (--enable-feature=
native-histograms) takes histfixture.py's histogram series (steady growth,
a counter reset and a stale marker, a layout and a schema change, float
histograms) and answers the reference; kiln opens its directory (the WAL
with histogram records), its queue is pointed at the WAL's start, and a
second Prometheus receiving from kiln must answer the reference exactly.
Without send_native_histograms nothing of them is sent."""
import glob
import json
import os
import shutil
import tempfile
import time
import unittest

from histfixture import N, STEP, send, series_samples, start_t0
from kilntest import PROMETHEUS, Kiln, require, wait_for
from test_hist_storage import query_range, start_prometheus


class SendNativeHistograms(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require(PROMETHEUS)
        cls.tmp = tempfile.mkdtemp(prefix="kiln-test-rwhist-")
        cls.t0 = start_t0()
        cls.series = series_samples(cls.t0)
        cls.names = [name for name, _ in cls.series]
        cls.end = cls.t0 + (N - 1) * STEP
        cls.prom_dir = os.path.join(cls.tmp, "prom")
        p, url = start_prometheus(cls.prom_dir, cls.tmp)
        try:
            for lo in range(0, N, 10):
                send(url + "/api/v1/write", cls.series, lo, lo + 10)
            cls.want = {n: query_range(url, n, cls.t0, cls.end) for n in cls.names}
        finally:
            p.stop()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def forward(self, send_hist):
        """kiln on a copy of the reference's directory, its queue at the WAL's
        start, sending to a fresh Prometheus: (that Prometheus' url, its process, kiln)."""
        kiln_dir = os.path.join(self.tmp, f"kiln-{send_hist}")
        shutil.copytree(self.prom_dir, kiln_dir, ignore=shutil.ignore_patterns("snapshots", "lock"))
        p, url = start_prometheus(os.path.join(self.tmp, f"recv-{send_hist}"), self.tmp)
        self.addCleanup(p.stop)
        cfg = f"""remote_write:
  - url: {url}/api/v1/write
    send_native_histograms: {str(send_hist).lower()}
    queue_config: {{max_shards: 1, batch_send_deadline: 500ms}}
"""
        k = Kiln(config=cfg, data_dir=kiln_dir)
        self.addCleanup(k.cleanup)
        k.start()
        # the queue writes its progress file once it runs: a loaded machine may take a while
        pattern = os.path.join(kiln_dir, "remote", "*", "progress")
        wait_for(lambda: glob.glob(pattern), timeout=60, step=0.2)
        self.assertEqual(k.stop(), 0)
        (progress,) = glob.glob(pattern)
        with open(progress, "w") as f:
            f.write("0 0\n")  # from the WAL's first record on
        k.start()
        return url, k

    def test_forwarded_histograms_equal_the_reference(self):
        url, k = self.forward(True)
        ok = wait_for(lambda: all(query_range(url, n, self.t0, self.end) == self.want[n] for n in self.names),
                      timeout=60, step=0.5)
        for n in self.names:
            self.assertEqual(query_range(url, n, self.t0, self.end), self.want[n], n)
        self.assertTrue(ok)
        m = k.metrics()
        failed = sum(v for key, v in m.items() if key.startswith("kiln_remote_storage_samples_failed_total"))
        self.assertEqual(failed, 0)
        self.assertEqual(k.stop(), 0)

    def test_not_sent_without_the_option(self):
        url, k = self.forward(False)
        time.sleep(3)  # the queue has read the WAL (what it has is sent after 500 ms)
        for n in self.names:
            self.assertEqual(query_range(url, n, self.t0, self.end)["result"], [], n)
        self.assertEqual(k.stop(), 0)


if __name__ == "__main__":
    unittest.main()
