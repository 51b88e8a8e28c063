"""GET /federate: the exact answer for known data, its errors, and Debian's
Prometheus 2.42 scraping it (honor_labels) ending up with the same series and
values as kiln holds."""
import time
import unittest
import urllib.parse

from kilntest import KilnTestCase, Prometheus, wait_for
from rwproto import write_body

HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
           "X-Prometheus-Remote-Write-Version": "0.1.0"}


def stale():
    import struct
    return struct.unpack("<d", struct.pack("<Q", 0x7ff0000000000002))[0]


CONFIG = """global:
  scrape_interval: 1h
  external_labels: {region: eu, job: ext}
"""


class Federate(KilnTestCase):
    kiln_config = CONFIG

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        now = int(time.time() * 1000)
        cls.now = now
        series = [
            ([("__name__", "fed_a"), ("job", "api"), ("x", 'q"uo\\te\nnl')], [(1.0, now - 60000), (2.5, now - 1000)]),
            ([("__name__", "fed_a"), ("job", "web")], [(1e-05, now - 2000)]),
            ([("__name__", "fed_b")], [(7.0, now - 3000)]),
            # last sample a stale marker: left out
            ([("__name__", "fed_b"), ("gone", "yes")], [(1.0, now - 5000), (stale(), now - 4000)]),
            # older than the lookback (5m): left out
            ([("__name__", "fed_c"), ("old", "yes")], [(3.0, now - 400000)]),
        ]
        st, _, body = cls.kiln.post("/api/v1/write", write_body(series), headers=HEADERS)
        assert st == 204, body

    def get(self, query, accept=None):
        return self.kiln.get("/federate?" + query, headers={"Accept": accept} if accept else None)

    def test_exact_answer(self):
        st, h, body = self.get("match[]=" + urllib.parse.quote('{__name__=~"fed_.*"}') + "&match[]=fed_b")
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        n = self.now
        want = (
            "# TYPE fed_a untyped\n"
            f'fed_a{{job="api",x="q\\"uo\\\\te\\nnl",region="eu"}} 2.5 {n - 1000}\n'
            f'fed_a{{job="web",region="eu"}} 1e-05 {n - 2000}\n'
            "# TYPE fed_b untyped\n"
            f'fed_b{{job="ext",region="eu"}} 7 {n - 3000}\n')
        self.assertEqual(body.decode(), want)

    def test_openmetrics(self):
        st, h, body = self.get("match[]=fed_b", accept="application/openmetrics-text;version=1.0.0")
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("application/openmetrics-text; version=1.0.0"))
        lines = body.decode().splitlines()
        self.assertEqual(lines[0], "# TYPE fed_b unknown")
        self.assertTrue(lines[1].startswith('fed_b{job="ext",region="eu"} 7 '))
        self.assertAlmostEqual(float(lines[1].split()[-1]), (self.now - 3000) / 1000, places=2)
        self.assertEqual(lines[-1], "# EOF")

    def test_errors(self):
        st, h, body = self.get("match[]=" + urllib.parse.quote("up{"))
        self.assertEqual(st, 400)
        self.assertEqual(body.decode(), "1:4: parse error: unexpected end of input inside braces\n")
        st, _, body = self.get("")
        self.assertEqual((st, body), (200, b""))
        st, _, body = self.get("match[]=" + urllib.parse.quote('{x=~".*"}'))
        self.assertEqual(st, 400)
        self.assertIn(b"at least one non-empty matcher", body)

    def test_prometheus_scrapes_federate(self):
        cfg = f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: federate
    honor_labels: true
    metrics_path: /federate
    params:
      'match[]': ['{{__name__=~"fed_.*"}}']
    static_configs: [{{targets: ['{self.kiln.addr}']}}]
"""

        def series(get):
            res = get("/api/v1/query?" + urllib.parse.urlencode({"query": '{__name__=~"fed_.*"}'}))["result"]
            return sorted((tuple(sorted((k, v) for k, v in x["metric"].items() if k != "instance")), x["value"][1])
                          for x in res)

        with Prometheus(cfg) as p:
            got = []

            def scraped():
                got[:] = series(p.query)
                return len(got) == 3
            wait_for(scraped, timeout=30)
            mine = series(lambda path: self.kiln.get_json(path)[1]["data"])
            # Prometheus holds kiln's series with the external labels added
            want = sorted((tuple(sorted(dict(m, region="eu", **({} if "job" in dict(m) else {"job": "ext"}))
                                        .items())), v) for m, v in mine)
            self.assertEqual(got, want)


if __name__ == "__main__":
    unittest.main()
