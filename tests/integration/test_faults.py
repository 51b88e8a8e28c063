"""kiln when the disk fails under it: a full disk (a small tmpfs, filled by
remote writes) and injected I/O errors (KILN_FAULTS, see util/fault.c).

Writes that cannot be made durable are refused with a 5xx (the sender
retries), kiln keeps serving, writes are accepted again once space returns,
and after a restart every acknowledged sample is there.  CI runs as root;
the tmpfs is mounted and unmounted by the test."""
import os
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from kilntest import Kiln
from rwproto import write_body

HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
           "X-Prometheus-Remote-Write-Version": "0.1.0"}


def batch(k, t, nseries=200, pad=300):
    """nseries series with long label values (so the disk fills fast), one sample each at t."""
    return write_body([([("__name__", "fill"), ("i", f"{i}"), ("pad", os.urandom(pad // 2).hex())],
                        [(float(k), t)]) for i in range(nseries)])


def count_samples(kn, t0):
    q = urllib.parse.urlencode({"query": "sum(count_over_time(fill[1h]))", "time": t0 / 1000 + 1800})
    st, js = kn.get_json("/api/v1/query?" + q)
    assert st == 200, js
    r = js["data"]["result"]
    return int(float(r[0]["value"][1])) if r else 0


class FullDisk(unittest.TestCase):
    def test_full_disk_refuses_then_recovers(self):
        mnt = tempfile.mkdtemp(prefix="kiln-tmpfs-")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt], check=True)
        kn = Kiln(data_dir=os.path.join(mnt, "data"), config="global:\n  scrape_interval: 1h\n")
        try:
            kn.start()
            t0 = int(time.time() * 1000) - 600_000
            acked, refused, k = 0, 0, 0
            codes = set()
            # fill the disk: each request adds ~100 KB of series records
            while refused < 3 and k < 400:
                st, _, body = kn.post("/api/v1/write", batch(k, t0 + k * 1000), headers=HEADERS)
                codes.add(st)
                if st == 204:
                    acked += 200
                else:
                    self.assertGreaterEqual(st, 500, f"a full disk must be a retryable 5xx, got {st}: {body!r}")
                    refused += 1
                k += 1
            self.assertEqual(refused, 3, f"the disk never filled: {k} requests, codes {codes}")
            # still serving
            st, _, _ = kn.get("/-/healthy")
            self.assertEqual(st, 200)
            self.assertEqual(count_samples(kn, t0), acked)
            # space returns: writes are accepted again
            subprocess.run(["mount", "-o", "remount,size=64m", mnt], check=True)
            for j in range(5):
                st, _, body = kn.post("/api/v1/write", batch(k, t0 + k * 1000), headers=HEADERS)
                self.assertEqual(st, 204, body)
                acked += 200
                k += 1
            self.assertEqual(count_samples(kn, t0), acked)
            # and after a restart every acknowledged sample is there
            self.assertEqual(kn.stop(), 0, kn.read_log()[-3000:])
            kn.start()
            self.assertEqual(count_samples(kn, t0), acked)
            self.assertEqual(kn.stop(), 0)
        finally:
            kn.cleanup()
            subprocess.run(["umount", mnt], check=False)
            os.rmdir(mnt)


class InjectedErrors(unittest.TestCase):
    def test_fsync_errors_refuse_writes_and_lose_nothing(self):
        """With --storage.tsdb.wal-fsync=always, the 21st fsync and every one
        after it fail with EIO: the writes from then on are refused with 5xx,
        and those acknowledged before are all there after a restart."""
        kn = Kiln(args=["--storage.tsdb.wal-fsync=always"], config="global:\n  scrape_interval: 1h\n")
        try:
            os.environ["KILN_FAULTS"] = "fsync:20:-1:EIO"
            try:
                kn.start()
            finally:
                del os.environ["KILN_FAULTS"]
            t0 = int(time.time() * 1000) - 600_000
            acked, refused = 0, 0
            for k in range(60):
                st, _, _ = kn.post("/api/v1/write", batch(k, t0 + k * 1000, nseries=10, pad=0), headers=HEADERS)
                if st == 204:
                    self.assertEqual(refused, 0, "a write was acknowledged after fsync started failing")
                    acked += 10
                else:
                    self.assertGreaterEqual(st, 500)
                    refused += 1
            self.assertGreater(acked, 0)
            self.assertGreater(refused, 0)
            st, _, _ = kn.get("/-/healthy")
            self.assertEqual(st, 200)
            kn.stop(timeout=20)
            kn.start()
            self.assertGreaterEqual(count_samples(kn, t0), acked)
            self.assertEqual(kn.stop(), 0)
        finally:
            kn.cleanup()


if __name__ == "__main__":
    unittest.main()
