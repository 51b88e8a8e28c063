"""The fractions kiln makes native histogram bucket bounds of (query/nhbounds.h) are the ones
Debian's Prometheus 2.42 writes: histbounds.py measures them from a running Prometheus, and
this test does again and compares every entry of the table, then checks that kiln's own JSON
of the same histograms has Prometheus' bounds, string for string."""
import os
import re
import unittest
import urllib.parse

import histbounds
import protoexpo
from kilntest import Kiln, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def table():
    """{schema: [fractions]} as query/nhbounds.h has them."""
    with open(os.path.join(ROOT, "query", "nhbounds.h")) as f:
        text = f.read()
    out = {}
    for m in re.finditer(r"nh_frac_(\d)\[\] = \{([^}]*)\}", text):
        out[int(m.group(1))] = [float(x) for x in m.group(2).replace("\n", " ").split(",") if x.strip()]
    return out


class HistBoundsTest(unittest.TestCase):
    def test_table_is_prometheus(self):
        want = histbounds.fetch_fractions()
        got = table()
        self.assertEqual(sorted(got), list(range(1, 9)))
        for s in range(1, 9):
            self.assertEqual(got[s], want[s], f"schema {s}")

    def test_kiln_writes_the_same_bounds(self):
        target = protoexpo.Target(histbounds.body)
        kiln = Kiln(args=["--enable-feature=native-histograms"])
        try:
            with open(kiln.config_path, "w") as f:
                f.write(f"scrape_configs:\n  - job_name: b\n    scrape_interval: 1s\n"
                        f"    static_configs: [{{targets: ['127.0.0.1:{target.port}']}}]\n")
            kiln.start()
            fr = table()

            def buckets(s):
                st, body = kiln.get_json("/api/v1/query?" + urllib.parse.urlencode({"query": f"bounds_s{s}"}))
                r = body["data"]["result"] if st == 200 else []
                return r[0]["histogram"][1]["buckets"] if r and "histogram" in r[0] else None
            self.assertTrue(wait_for(lambda: all(buckets(s) for s in range(1, 9)), 30), kiln.read_log()[-2000:])
            for s in range(1, 9):
                uppers = [b[2] for b in buckets(s)]
                # Prometheus' upper bound of index k < 2^s is frac[k] * 2, written shortest
                self.assertEqual(uppers[:-1], [repr(f * 2) for f in fr[s][1:]], f"schema {s}")
                self.assertEqual(uppers[-1], "2")
        finally:
            kiln.stop()
            kiln.cleanup()
            target.close()


if __name__ == "__main__":
    unittest.main()
